/*
 * The environment (fl_env_t of flink.h): the resolved configuration, the graph the
 * builder made (nodes, streams, tags, state descriptors), the sticky builder error and
 * what any thread may read while the job runs (state, job name, checkpoint counts).
 */
#ifndef FL_GRAPH_ENV_H
#define FL_GRAPH_ENV_H

#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "flink.h"
#include "graph/graph.h"
#include "state/kv.h"

struct fl_job;

typedef enum fl_restart_kind {
  FL_RESTART_NONE,
  FL_RESTART_FIXED,
  FL_RESTART_EXPONENTIAL,
  FL_RESTART_FAILURE_RATE
} fl_restart_kind_t;

typedef struct fl_restart_conf {
  fl_restart_kind_t kind;
  int fixed_attempts;
  int64_t fixed_delay_ms;
  int64_t exp_initial_ms, exp_max_ms, exp_reset_ms;
  double exp_multiplier;
  int exp_attempts;
  int rate_max;
  int64_t rate_interval_ms, rate_delay_ms;
} fl_restart_conf_t;

/* Resolved configuration. String members point into env->conf_copy (owned by env). */
typedef struct fl_env_conf {
  int parallelism;
  uint32_t max_parallelism;
  int64_t watermark_interval_ms;
  size_t batch_size;
  size_t channel_capacity;
  bool rocksdb;
  const char *rocksdb_dir; /* "" = /tmp */
  bool incremental;        /* RocksDB: checkpoints upload only new SST files */
  fl_kv_rocksdb_opts_t rocksdb_opts;
  const char *ckpt_dir; /* "" = none */
  int ckpt_retained;
  int64_t ckpt_interval_ms; /* 0 = no periodic checkpoints */
  int64_t ckpt_min_pause_ms, ckpt_timeout_ms;
  int ckpt_tolerable;
  const char *restore_path; /* "" = start empty */
  fl_restart_conf_t restart;
} fl_env_conf_t;

struct fl_env {
  fl_env_conf_t conf;
  fl_config_t *conf_copy; /* backs the strings of conf */
  fl_node_t **nodes;
  size_t n_nodes, cap_nodes;
  fl_stream_t **streams;
  size_t n_streams, cap_streams;
  fl_keyed_stream_t **keyed;
  size_t n_keyed, cap_keyed;
  fl_windowed_stream_t **windowed;
  size_t n_windowed, cap_windowed;
  fl_output_tag_t **tags;
  size_t n_tags, cap_tags;
  struct fl_state_desc **descs;
  size_t n_descs, cap_descs;
  /* builder: sticky error */
  int error;
  char errmsg[1024];
  /* execution */
  int64_t (*clock)(void *opaque);
  void *clock_opaque;
  fl_log_fn log; /* NULL: "flink: <line>" on stderr */
  void *log_opaque;
  _Atomic int stop_requested;
  _Atomic int state;            /* 0 built, 1 running, 2 finished */
  _Atomic(char *) job_name;     /* set once by execute; read by metrics from any thread */
  _Atomic(struct fl_job *) job; /* while running */
  _Atomic int stoppers;         /* fl_env_stop() calls in progress */
  /* checkpoint statistics (Flink's names), across restarts */
  struct {
    _Atomic int64_t completed, failed, restored_id, restarts;
    _Atomic int64_t last_id, last_duration_ms, last_size, last_new_bytes;
  } ckpt_stats;
  int executed;
};

/* Records a sticky builder error (the first one wins). */
void fl_env_fail(fl_env_t *env, int err, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/* Writes one line about the job for the people running it (restarts, skipped
 * checkpoints, failed checkpoint triggers) through fl_env_set_log's function. Any
 * thread. */
void fl_env_log(const fl_env_t *env, fl_log_level_t level, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/* fl_env_log with a va_list, the line starting with prefix (NULL: none). */
void fl_env_vlog(const fl_env_t *env, fl_log_level_t level, const char *prefix, const char *fmt,
                 va_list ap);

/* The processing-time clock (ms), fl_env_set_clock's or the wall clock. */
static inline int64_t fl_env_now(const fl_env_t *env) { return env->clock(env->clock_opaque); }

static inline bool fl_env_running(const fl_env_t *env) { return atomic_load(&env->state) != 0; }

#endif
