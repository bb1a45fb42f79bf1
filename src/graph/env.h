/*
 * The environment (fl_env_t of flink.h): the resolved configuration, the graph the
 * builder made (nodes, streams, tags, state descriptors), the sticky builder error and
 * what any thread may read while the job runs (state, job name, checkpoint counts).
 */
#ifndef FL_GRAPH_ENV_H
#define FL_GRAPH_ENV_H

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "flink.h"
#include "graph/graph.h"
#include "state/kv.h"

struct fl_job;

/* One checkpoint in the history the REST API shows (Flink's web.checkpoints.history). */
#define FL_CKPT_HISTORY 10
typedef enum fl_ckpt_status {
  FL_CKPT_IN_PROGRESS,
  FL_CKPT_COMPLETED,
  FL_CKPT_FAILED
} fl_ckpt_status_t;
typedef struct fl_ckpt_record {
  int64_t id;
  fl_ckpt_status_t status;
  bool savepoint;
  int64_t trigger_ms;   /* wall clock */
  int64_t end_ms;       /* wall clock, 0 while in progress */
  int64_t duration_ms;  /* end - trigger */
  int64_t full_size;    /* bytes the checkpoint references (Flink: stateSize) */
  int64_t checkpointed; /* bytes it wrote (Flink: checkpointedSize) */
  char failure[200];    /* why it failed, or "" */
} fl_ckpt_record_t;

/* Services a higher layer installs in the environment (the REST server, src/rest):
 * fl_env_execute starts them before the job's first attempt and stops them after its
 * last. start failing fails execute with its message. */
typedef struct fl_env_services {
  int (*start)(fl_env_t *env, char *err, size_t err_size);
  void (*stop)(fl_env_t *env);
} fl_env_services_t;

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
  bool rocksdb_timers;     /* RocksDB: timers kept in the store, not on the heap */
  fl_kv_rocksdb_opts_t rocksdb_opts;
  size_t rocksdb_cache_bytes;        /* RocksDB: the state cache of each worker; 0 = none */
  size_t rocksdb_cache_dirty_target; /* idle write-ahead down to this; 0 = none */
  size_t rocksdb_cache_dirty_limit;  /* write-ahead as cells are marked past this; 0 = none */
  const char *ckpt_dir;              /* "" = none */
  int ckpt_retained;
  bool restore_latest;      /* start from the newest complete checkpoint under ckpt_dir */
  int64_t ckpt_interval_ms; /* 0 = no periodic checkpoints */
  int64_t ckpt_min_pause_ms, ckpt_timeout_ms;
  int ckpt_tolerable;
  const char *restore_path; /* "" = start empty */
  fl_restart_conf_t restart;
  /* observability */
  int64_t latency_interval_ms; /* metrics.latency.interval; 0 = off */
  int rest_port;               /* rest.port; -1 = no server, 0 = any free port */
  const char *rest_address;    /* rest.address */
  bool rest_allow_control;     /* rest.allow-control: POST savepoints, PATCH cancel */
  int rest_max_connections;    /* rest.max-connections */
  int prom_port;               /* metrics.reporter.prom.port; -1 = none */
  bool kv_stats[FL_KV_STAT_N]; /* state.backend.rocksdb.metrics.* (and the cheap ones) */
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
    _Atomic int64_t in_progress; /* checkpoints or savepoints triggered and not ended */
    _Atomic int64_t restored_ms; /* wall clock of the last restore, 0: none */
  } ckpt_stats;
  /* the last FL_CKPT_HISTORY checkpoints and savepoints, newest at
   * ckpt_hist[(ckpt_hist_n - 1) % FL_CKPT_HISTORY]; under ckpt_hist_lock */
  pthread_mutex_t ckpt_hist_lock;
  fl_ckpt_record_t ckpt_hist[FL_CKPT_HISTORY];
  uint64_t ckpt_hist_n;
  /* the job as the REST API names it: a 32-hex-digit id, start and end (wall ms) */
  char job_id[33];
  _Atomic int64_t start_ms, end_ms;
  const fl_env_services_t *services;            /* NULL: none */
  _Atomic int rest_bound_port, prom_bound_port; /* while they listen, else 0 */
  void *services_state;                         /* theirs */
  int executed;
};

/* Checkpoint history (coord.c): a checkpoint or savepoint started, ended (rc 0: done,
 * else failed with msg), or could not start at all. Any thread. */
void fl_env_ckpt_begin(fl_env_t *env, int64_t id, bool savepoint);
void fl_env_ckpt_end(fl_env_t *env, int64_t id, int rc, int64_t full_size, int64_t checkpointed,
                     const char *msg);
/* Copies the history, oldest first, into out[FL_CKPT_HISTORY]; returns how many. */
size_t fl_env_ckpt_history(fl_env_t *env, fl_ckpt_record_t *out);

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
