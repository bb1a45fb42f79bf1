# ctest layers: every folder under src/ is a layer, and a file may include headers of its
# own folder and of lower layers only (docs/architecture.md draws them):
#
#   7 sql         SQL compiled onto the public API: flink.h, util/ and itself only
#   6 io          connectors: flink.h, util/ and runtime/connector.h, nothing else
#   5 api         the builder and configuration
#   4 operators   operator classes              4 rest   HTTP endpoint, Prometheus, dashboard
#   3 runtime     plan, worker loop, edges, barriers, coordinator, restore, context
#   2 checkpoint  store and snapshot format        2 graph   the job graph's data types
#   1 state       kv backends, typed state, timers
#   0 util        buffers, clocks, files, hashes, checksums
#
# Layers of the same rank do not include each other. A folder missing from the table
# fails the check, so a new one must be placed before it is used. No file under src/
# has more than 1,000 lines: a larger one holds more than one module (split it by what
# its parts do, with a <name>_internal.h between them where they share a struct).
#
#   cmake -DSRC=<source dir>/src -P check-layers.cmake
cmake_minimum_required(VERSION 3.18)
if(NOT DEFINED SRC)
  message(FATAL_ERROR "check-layers: SRC is not set")
endif()

set(rank_util 0)
set(rank_state 1)
set(rank_checkpoint 2)
set(rank_graph 2)
set(rank_runtime 3)
set(rank_operators 4)
set(rank_rest 4)
set(rank_api 5)
set(rank_io 6)
set(rank_sql 7)
# What io/ may include besides util/ and itself: the connector interface alone.
set(io_allowed "runtime/connector.h")

file(GLOB_RECURSE files RELATIVE "${SRC}" "${SRC}/*.c" "${SRC}/*.h")
list(SORT files)
set(bad "")
set(n_edges 0)
foreach(f ${files})
  file(READ "${SRC}/${f}" text)
  string(REGEX MATCHALL "\n" newlines "${text}")
  list(LENGTH newlines n_lines)
  if(n_lines GREATER 1000)
    list(APPEND bad "src/${f}: ${n_lines} lines, more than 1000 (split it by what its parts do)")
  endif()
  string(REGEX MATCH "^[^/]+" from "${f}")
  if(NOT DEFINED rank_${from})
    list(APPEND bad "src/${f}: the folder '${from}' is not a layer (add it to cmake/check-layers.cmake)")
    continue()
  endif()
  file(STRINGS "${SRC}/${f}" lines REGEX "^[ \t]*#[ \t]*include[ \t]*\"")
  foreach(line ${lines})
    string(REGEX REPLACE "^[ \t]*#[ \t]*include[ \t]*\"([^\"]+)\".*" "\\1" inc "${line}")
    if(inc STREQUAL "flink.h" OR NOT inc MATCHES "/")
      continue()
    endif()
    math(EXPR n_edges "${n_edges} + 1")
    string(REGEX MATCH "^[^/]+" to "${inc}")
    if(to STREQUAL from)
      continue()
    endif()
    if(NOT DEFINED rank_${to})
      list(APPEND bad "src/${f}: includes \"${inc}\" from '${to}', which is not a layer")
      continue()
    endif()
    if(from STREQUAL "io" AND NOT to STREQUAL "util" AND NOT inc IN_LIST io_allowed)
      list(APPEND bad "src/${f}: includes \"${inc}\"; a connector uses flink.h, util/ and runtime/connector.h only")
    elseif(from STREQUAL "sql" AND NOT to STREQUAL "util")
      list(APPEND bad "src/${f}: includes \"${inc}\"; SQL is compiled onto the public API: flink.h, util/ and sql/ only")
    elseif(NOT rank_${to} LESS rank_${from})
      list(APPEND bad "src/${f}: includes \"${inc}\": ${from}/ (layer ${rank_${from}}) may not include ${to}/ (layer ${rank_${to}})")
    endif()
  endforeach()
endforeach()

if(bad)
  list(LENGTH bad n)
  list(JOIN bad "\n  " text)
  message(FATAL_ERROR "check-layers: ${n} file(s) break the layering or the size rule:\n  ${text}")
endif()
list(LENGTH files n_files)
message(STATUS "check-layers: ${n_files} files, ${n_edges} includes of src/ headers, none upward")
