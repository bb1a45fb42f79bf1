/* flink-bench sql: SQL jobs against the same jobs written with the DataStream API. */
#ifndef FL_BENCH_SQL_H
#define FL_BENCH_SQL_H

int fl_bench_sql_main(int argc, char **argv);

#endif
