# ctest format: every C source and header of the project is as clang-format makes it
# (.clang-format at the top; `make format` rewrites the files in place).
#
#   cmake -DSOURCE_DIR=<top> -DCLANG_FORMAT=<clang-format> -P check-format.cmake
cmake_minimum_required(VERSION 3.18)
if(NOT DEFINED SOURCE_DIR OR NOT DEFINED CLANG_FORMAT)
  message(FATAL_ERROR "check-format: SOURCE_DIR and CLANG_FORMAT must be set")
endif()
if(NOT EXISTS "${CLANG_FORMAT}")
  message(FATAL_ERROR "check-format: clang-format not found (scripts/install-deps.sh installs it)")
endif()

set(files "")
foreach(dir src include tests tools examples bench)
  file(GLOB_RECURSE part "${SOURCE_DIR}/${dir}/*.c" "${SOURCE_DIR}/${dir}/*.h"
       "${SOURCE_DIR}/${dir}/*.cpp")
  list(APPEND files ${part})
endforeach()
list(SORT files)

execute_process(COMMAND "${CLANG_FORMAT}" --dry-run --Werror --style=file ${files}
                WORKING_DIRECTORY "${SOURCE_DIR}"
                RESULT_VARIABLE rc ERROR_VARIABLE out OUTPUT_VARIABLE out2)
if(NOT rc EQUAL 0)
  string(REGEX MATCHALL "[^\n]*error: code should be clang-formatted[^\n]*" hits "${out}")
  set(names "")
  foreach(h ${hits})
    string(REGEX REPLACE "^([^:]+):.*" "\\1" f "${h}")
    list(APPEND names "${f}")
  endforeach()
  list(REMOVE_DUPLICATES names)
  list(JOIN names "\n  " text)
  message(FATAL_ERROR "check-format: not formatted (run `make format`):\n  ${text}")
endif()

list(LENGTH files n_files)
message(STATUS "check-format: ${n_files} files formatted")
