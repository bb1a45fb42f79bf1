/* flink-bench checkpoint: checkpoint duration and size, full vs incremental. */
#ifndef FL_BENCH_CKPT_H
#define FL_BENCH_CKPT_H

int fl_bench_checkpoint_main(int argc, char **argv);

#endif
