/* flink-bench state: state operations per second through the typed state layer, on the
 * hashmap and the RocksDB backends. */
#ifndef FL_BENCH_STATE_H
#define FL_BENCH_STATE_H

/* argv[0] is "state" (an argv whose argv[1] is "state", as flink-bench's main has it,
 * is accepted too); the options follow. Prints one JSON line per (backend, operation).
 * Returns 0, 1 when a run failed or its check did not hold, 2 for bad options. */
int fl_bench_state_main(int argc, char **argv);

#endif
