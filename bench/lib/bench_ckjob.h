/* What the checkpoint and sessions benchmarks share: a scratch directory for the
 * checkpoints and RocksDB's files, the environment of a checkpointing job over it, the
 * job on its own thread, and the checkpoint metrics. */
#ifndef FL_BENCH_CKJOB_H
#define FL_BENCH_CKJOB_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "flink.h"

/* The job's settings besides its scratch directory (strings as configuration values). */
typedef struct bench_ckjob_conf {
  const char *parallelism;
  const char *backend;
  const char *incremental;
  const char *interval;    /* execution.checkpointing.interval, "0": none */
  const char *const *sets; /* --set options, "key=value" */
  int n_sets;
} bench_ckjob_conf_t;

typedef struct bench_ckjob {
  char dir[512], ck[600], rocks[600];
  bool own_dir; /* made here: removed by bench_ckjob_end */
  const char *name;
  fl_env_t *env;
  pthread_t thread;
  int rc;            /* the job's result, once it ended */
  _Atomic int ended; /* set when the job ended (early: a failure) */
} bench_ckjob_t;

/* The scratch directory (dir, or a new /tmp/flink-bench-<name>-<pid>) with checkpoints/
 * and rocksdb/ in it, and the environment of job `name` over it (one checkpoint kept).
 * 0, or the exit status with the message printed. */
int bench_ckjob_init(bench_ckjob_t *j, const char *name, const char *dir,
                     const bench_ckjob_conf_t *c);
/* Runs the job on a thread of its own. */
void bench_ckjob_start(bench_ckjob_t *j);
/* Stops the job and waits for its end, destroys the environment and removes a scratch
 * directory made by bench_ckjob_init: 0 when the job was stopped or ended well, else 1
 * with its error printed. */
int bench_ckjob_end(bench_ckjob_t *j);

/* A figure of the job's "checkpoints" metrics (completed, last_duration_ms, ...). */
int64_t bench_ckpt_metric(fl_env_t *env, const char *name);

#endif
