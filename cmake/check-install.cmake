# ctest install_consumer: installs the build into a scratch prefix and builds a user
# program against it, through find_package(flink) (shared and static) and through
# pkg-config (shared, and static with flink.pc's private dependencies).
cmake_minimum_required(VERSION 3.18)
foreach(v BUILD_DIR SOURCE_DIR WORK_DIR LIBDIR INCLUDEDIR BINDIR VERSION C_COMPILER)
  if(NOT DEFINED ${v})
    message(FATAL_ERROR "check-install: ${v} is not set")
  endif()
endforeach()

# Fails the check: the details first, then a one-line reason (the last line before
# CMake's call stack, which scripts/run-ctest.sh shows as the test's summary).
function(fail reason details)
  if(NOT details STREQUAL "")
    message("${details}")
  endif()
  message(FATAL_ERROR "check-install: ${reason}")
endfunction()

# Runs a command; fails the check with its output if it fails. OUT receives stdout.
function(run out)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE o ERROR_VARIABLE e)
  if(NOT rc EQUAL 0)
    string(REPLACE ";" " " cmd "${ARGN}")
    list(GET ARGN 0 prog)
    get_filename_component(prog "${prog}" NAME)
    list(LENGTH ARGN argc)
    if(argc GREATER 1)
      list(GET ARGN 1 arg1)
      if(arg1 MATCHES "^-")
        string(APPEND prog " ${arg1}")
      endif()
    endif()
    fail("${prog} failed (${rc})" "${cmd}\n${o}\n${e}")
  endif()
  string(STRIP "${o}" o)
  set(${out} "${o}" PARENT_SCOPE)
endfunction()

set(prefix ${WORK_DIR}/prefix)
file(REMOVE_RECURSE ${WORK_DIR})
file(MAKE_DIRECTORY ${WORK_DIR})
run(_ ${CMAKE_COMMAND} --install ${BUILD_DIR} --prefix ${prefix})

string(REGEX MATCH "^[0-9]+" major "${VERSION}")
set(expected
  ${INCLUDEDIR}/flink.h
  ${LIBDIR}/libflink.so
  ${LIBDIR}/libflink.so.${major}
  ${LIBDIR}/libflink.so.${VERSION}
  ${LIBDIR}/libflink.a
  ${LIBDIR}/pkgconfig/flink.pc
  ${LIBDIR}/cmake/flink/flinkConfig.cmake
  ${LIBDIR}/cmake/flink/flinkConfigVersion.cmake
  ${LIBDIR}/cmake/flink/flinkTargets.cmake)
if(TOOLS)
  string(REPLACE "," ";" TOOLS "${TOOLS}")
  foreach(t ${TOOLS})
    list(APPEND expected ${BINDIR}/${t})
  endforeach()
endif()
foreach(f ${expected})
  if(NOT EXISTS ${prefix}/${f})
    fail("${f} was not installed" "")
  endif()
endforeach()
# Only the one public header.
file(GLOB_RECURSE headers RELATIVE ${prefix} ${prefix}/*.h)
if(NOT headers STREQUAL "${INCLUDEDIR}/flink.h")
  fail("installed headers are '${headers}', expected flink.h only" "")
endif()

# find_package(flink)
set(cbuild ${WORK_DIR}/consumer-cmake)
run(_ ${CMAKE_COMMAND} -S ${SOURCE_DIR}/cmake/consumer -B ${cbuild}
    -DCMAKE_PREFIX_PATH=${prefix} -DCMAKE_C_COMPILER=${C_COMPILER}
    -DFL_EXPECT_VERSION=${VERSION})
run(_ ${CMAKE_COMMAND} --build ${cbuild})
foreach(p consumer_shared consumer_static)
  run(o ${cbuild}/${p})
  message("${p} (find_package): ${o}")
endforeach()
# The shared consumer must really use the installed libflink.so.
run(o ldd ${cbuild}/consumer_shared)
if(NOT o MATCHES "libflink\\.so\\.${major} => ${prefix}/")
  fail("consumer_shared does not load the installed libflink.so" "${o}")
endif()
# Where the library was built with RocksDB's archive (FL_ROCKSDB_STATIC), a program
# linking flink::flink_static names the archive too. Checked on its link line: this
# program calls nothing of RocksDB, so its binary takes nothing from the archive.
if(ROCKSDB_STATIC)
  # ... and the tools the build made have RocksDB inside them (flink-agg runs jobs on
  # it), not librocksdb.so.
  if(EXISTS ${prefix}/${BINDIR}/flink-agg)
    run(o ldd ${prefix}/${BINDIR}/flink-agg)
    if(o MATCHES "librocksdb\\.so")
      fail("flink-agg loads librocksdb.so: the build should link librocksdb.a" "${o}")
    endif()
  endif()
  file(READ ${cbuild}/CMakeFiles/consumer_static.dir/link.txt o)
  if(NOT o MATCHES "librocksdb\\.a" OR o MATCHES "librocksdb\\.so")
    fail("consumer_static is not linked with librocksdb.a: flink::flink_static should name it"
         "${o}")
  endif()
endif()

# pkg-config
find_program(PKG_CONFIG pkg-config REQUIRED)
set(ENV{PKG_CONFIG_PATH} ${prefix}/${LIBDIR}/pkgconfig)
run(v ${PKG_CONFIG} --modversion flink)
if(NOT v STREQUAL VERSION)
  fail("pkg-config --modversion flink is '${v}', expected ${VERSION}" "")
endif()
run(cflags ${PKG_CONFIG} --cflags flink)
if(NOT cflags STREQUAL "-I${prefix}/${INCLUDEDIR}")
  fail("pkg-config --cflags flink is '${cflags}'" "")
endif()
run(libs ${PKG_CONFIG} --libs flink)
run(static_libs ${PKG_CONFIG} --static --libs flink)
foreach(l -lflink -ljansson -lpthread -lm)
  if(NOT " ${static_libs} " MATCHES " ${l} ")
    fail("pkg-config --static --libs flink lacks ${l}: '${static_libs}'" "")
  endif()
endforeach()
# Linking the archive with flink.pc's own private dependencies (Requires.private as
# shared libraries, Libs.private) shows they are complete. `--static --libs` would
# also demand the static dependencies of those libraries (rdkafka's -lsasl2, ...),
# which is about them, not about flink.pc.
run(reqs ${PKG_CONFIG} --print-requires-private flink)
string(REGEX REPLACE "[ \t]*\n[ \t]*" ";" reqs "${reqs}")
run(dep_libs ${PKG_CONFIG} --libs ${reqs})
file(READ ${prefix}/${LIBDIR}/pkgconfig/flink.pc pc)
if(NOT pc MATCHES "\nLibs\.private:([^\n]*)")
  fail("flink.pc has no Libs.private" "")
endif()
set(private_libs "${CMAKE_MATCH_1}")
separate_arguments(cflags UNIX_COMMAND "${cflags}")
separate_arguments(libs UNIX_COMMAND "${libs}")
separate_arguments(dep_libs UNIX_COMMAND "${dep_libs}")
separate_arguments(private_libs UNIX_COMMAND "${private_libs}")
set(static_libs ${libs} ${dep_libs} ${private_libs})
# Force the archive over libflink.so.
list(TRANSFORM static_libs REPLACE "^-lflink$" "-l:libflink.a")
set(def "-DFL_EXPECT_VERSION=\"${VERSION}\"")
set(src ${SOURCE_DIR}/cmake/consumer/consumer.c)
run(_ ${C_COMPILER} ${def} ${cflags} ${src} -o ${WORK_DIR}/pc_shared ${libs}
    -Wl,-rpath,${prefix}/${LIBDIR})
run(_ ${C_COMPILER} ${def} ${cflags} ${src} -o ${WORK_DIR}/pc_static ${static_libs})
foreach(p pc_shared pc_static)
  run(o ${WORK_DIR}/${p})
  message("${p} (pkg-config): ${o}")
endforeach()
foreach(p ${cbuild}/consumer_static ${WORK_DIR}/pc_static)
  run(o ldd ${p})
  if(o MATCHES "libflink\\.so")
    fail("${p} should not load libflink.so" "${o}")
  endif()
endforeach()
run(o ldd ${WORK_DIR}/pc_shared)
if(NOT o MATCHES "libflink\\.so\\.${major} => ${prefix}/")
  fail("pc_shared does not load the installed libflink.so" "${o}")
endif()

message("check-install: ok")
