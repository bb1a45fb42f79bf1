/* flink-bench sessions: peak memory of many open session windows, hashmap vs RocksDB. */
#ifndef FL_BENCH_MEM_H
#define FL_BENCH_MEM_H

int fl_bench_sessions_main(int argc, char **argv);

#endif
