/*
 * feature_pipeline: the real-time ML feature job (see feature_pipeline.c for the tour and
 * docs/feature-pipeline.md for every feature's definition). This header is what the
 * program's files share:
 *
 *   feature_pipeline.c           options, Kafka topics, the run, the report, the benchmark
 *   feature_pipeline_gen.c       the event generator (users, sessions, funnels, disorder)
 *   feature_pipeline_event.c     the event's JSON form: parsing (strict) and printing
 *   feature_pipeline_job.c       the job graph: source, lateness, windows, sink
 *   feature_pipeline_features.c  the per-user feature function (keyed state, timers)
 *   feature_pipeline_monitor.c   latency histogram, live status line, metrics
 *
 * Everything is written against flink.h and librdkafka only, as a user of the library
 * writes a job.
 */
#ifndef FEATURE_PIPELINE_H
#define FEATURE_PIPELINE_H

#include <librdkafka/rdkafka.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "flink.h"

/* ---------------------------------------------------------------------------------- */
/* Topics and constants of the job                                                    */

#define FP_TOPIC_EVENTS "raw.events"
#define FP_TOPIC_FEATURES "features.user"
#define FP_TOPIC_SPEND "features.user_5min_spend"
#define FP_TOPIC_SESSIONS "features.user_session"
#define FP_TOPIC_LATE "events.late"
#define FP_TOPIC_DLQ "events.dlq"

#define FP_OUT_OF_ORDERNESS_MS 3000        /* bounded out-of-orderness of the watermarks */
#define FP_WINDOW_MS (5 * 60 * 1000)       /* tumbling spend windows */
#define FP_ALLOWED_LATENESS_MS 30000       /* of the spend windows */
#define FP_SESSION_GAP_MS (30 * 60 * 1000) /* inactivity that ends a session */
#define FP_SESSION_TTL_MS (24 * 3600 * 1000LL)
#define FP_PRICE_HISTORY 20   /* browsing events in the price features */
#define FP_CART_MAX_LINES 256 /* distinct products a cart holds (state stays bounded) */

/* Event types, in the order of the per-type feature arrays. */
enum {
  FP_VIEW,
  FP_ADD,
  FP_REMOVE,
  FP_CHECKOUT,
  FP_PURCHASE,
  FP_N_TYPES
};
extern const char *const fp_type_names[FP_N_TYPES];

/* Limits of the event schema (a value outside is a malformed event). */
#define FP_USER_MAX 64
#define FP_CATEGORY_MAX ((1 << 29) - 1)
#define FP_PRICE_MAX_CENTS 10000000LL /* 100,000.00 */
#define FP_QUANTITY_MAX 100

/* ---------------------------------------------------------------------------------- */
/* Events                                                                             */

/* One interaction, as parsed from raw.events. */
typedef struct fp_event {
  char user[FP_USER_MAX + 1];
  size_t user_len;
  int type;
  int32_t product;
  int32_t category;
  int64_t price_cents; /* the price rounded to cents */
  int32_t quantity;
  int64_t ts; /* event_time_ms */
} fp_event_t;

/* Parses one raw.events value. 0, or -1 with a message in err naming the field and the
 * cause (the dead-letter header fl.error). */
int fp_event_parse(const char *s, size_t n, fp_event_t *ev, char *err, size_t err_size);
/* The event as JSON (the raw.events form; also what events.late holds). Returns the
 * length, or -1 when out is too small. */
int fp_event_json(const fp_event_t *ev, char *out, size_t size);

/* ---------------------------------------------------------------------------------- */
/* Records inside the job                                                             */
/*
 * Every record's value starts with this header; the payload follows. The tag tells the
 * sink where a record goes: 'V' an event (payload fp_wire_event_t; events.late when it
 * reaches the sink), 'F' a feature vector (JSON), 'S' a spend window (JSON), 'E' a
 * closed session (JSON).
 */
typedef struct fp_wire_hdr {
  uint8_t tag;
  uint8_t behind; /* 'V': behind its partition's watermark, within the allowed lateness */
  uint8_t pad[2];
  int32_t partition;   /* of the input event, -1 for none */
  int64_t offset;      /* of the input event */
  int64_t produced_ms; /* the input event's Kafka timestamp (its produce time) */
} fp_wire_hdr_t;

typedef struct fp_wire_event {
  fp_wire_hdr_t h;
  fp_event_t ev;
} fp_wire_event_t;

/* ---------------------------------------------------------------------------------- */
/* Options                                                                            */

typedef struct fp_options {
  const char *brokers; /* NULL: an in-process mock cluster */
  long rate;           /* events/s */
  long users;
  double seconds; /* of generation */
  double time_scale;
  bool flash_sale;
  uint64_t seed;
  int parallelism;
  int64_t checkpoint_interval_ms;
  const char *checkpoint_dir; /* NULL: a temporary one, removed at the end */
  const char *state_dir;      /* RocksDB working directory; NULL: under /tmp */
  int partitions;             /* of raw.events */
  int out_partitions;         /* of the feature topics */
  bool generate, run_job, bounded;
  bool quiet;          /* no live line */
  bool drain;          /* after generating: wait until everything is committed, then stop */
  const char *set[32]; /* extra library configuration, KEY=VALUE */
  int n_set;
  const char *bench; /* NULL, "rates" */
  long bench_rates[16];
  int n_bench_rates;
  double bench_seconds;
  long preload_bytes; /* state to create per user before the run, 0: none */
  bool at_least_once; /* the sink's guarantee (default: exactly once) */
  int dashboard_port; /* rest.port of the job: 0 any free port, -1 none */
} fp_options_t;

/* ---------------------------------------------------------------------------------- */
/* The generator                                                                      */

typedef struct fp_gen_stats {
  _Atomic int64_t produced, delivered, failed;
  _Atomic int64_t disordered, late, malformed;
  _Atomic int64_t forced;       /* by a user who was not ready (the rate asked for more) */
  _Atomic int64_t max_event_ts; /* the generator's event clock */
  _Atomic int done;
} fp_gen_stats_t;

typedef struct fp_gen fp_gen_t;

/* Creates the generator (users, products, its producer). start_ts: the event clock at
 * the start (ms). NULL with a message on stderr on failure. */
fp_gen_t *fp_gen_new(const fp_options_t *o, const char *brokers, int64_t start_ts);
/* Produces events at o->rate for o->seconds (or until fp_gen_stop), then flushes. */
void fp_gen_run(fp_gen_t *g);
void fp_gen_stop(fp_gen_t *g);
fp_gen_stats_t *fp_gen_stats(fp_gen_t *g);
void fp_gen_free(fp_gen_t *g);

/* The event clock to start from: the newest event_time_ms in raw.events plus one second
 * (a resumed run goes on where the last one ended), or now when the topic is empty. */
int64_t fp_gen_start_clock(const char *brokers);

/* ---------------------------------------------------------------------------------- */
/* The job                                                                            */

typedef struct fp_job fp_job_t;

/* Builds the job on a new environment: NULL with a message on stderr on failure. */
fp_job_t *fp_job_new(const fp_options_t *o, const char *brokers, const char *checkpoint_dir,
                     const char *state_dir);
fl_env_t *fp_job_env(fp_job_t *j);
/* Runs it (fl_env_execute); returns its result. */
int fp_job_run(fp_job_t *j);
void fp_job_free(fp_job_t *j);

/* The per-user feature function and its state (feature_pipeline_features.c). */
typedef struct fp_features fp_features_t;
fp_features_t *fp_features_new(fl_env_t *env, long preload_bytes);
extern const fl_process_fn_t fp_features_fn;
/* A preload record (tag 'P') makes the features function write synthetic state of about
 * preload_bytes for its key (the benchmark's large state). */
#define FP_TAG_PRELOAD 'P'

/* ---------------------------------------------------------------------------------- */
/* Monitoring                                                                         */

/* Latency histogram in whole milliseconds (Kafka timestamps are milliseconds): exact to
 * 10 s, in 10 ms steps to 10 minutes, in 1 s steps to 2 hours; longer counts in the last
 * bucket (the maximum is kept exactly). */
#define FP_HIST_BUCKETS (10000 + 59000 + 6600 + 1)
typedef struct fp_hist {
  int64_t *counts; /* [FP_HIST_BUCKETS] */
  int64_t n, max;
} fp_hist_t;
int fp_hist_init(fp_hist_t *h);
void fp_hist_add(fp_hist_t *h, int64_t ms);
void fp_hist_merge(fp_hist_t *into, const fp_hist_t *from);
void fp_hist_reset(fp_hist_t *h);
int64_t fp_hist_pct(const fp_hist_t *h, double pct);
void fp_hist_free(fp_hist_t *h);

/* What the run measured, for the report and the benchmark. */
typedef struct fp_result {
  int64_t events_in, features_out, spend_out, sessions_out, late, dlq, behind;
  int64_t features_read; /* by the latency reader */
  int64_t lat_p50, lat_p90, lat_p99, lat_p999, lat_max, lat_n;
  int64_t steady_p50, steady_p99, steady_max; /* after the warm-up */
  int64_t ckpt_completed, ckpt_failed, ckpt_min_ms, ckpt_max_ms, ckpt_sum_ms;
  int64_t ckpt_seen; /* completed checkpoints whose duration the monitor saw */
  int64_t ckpt_last_size, ckpt_max_new;
  /* the longest synchronous part of a checkpoint at one operator subtask
   * (checkpointSyncTime): how long records waited behind a barrier there */
  double ckpt_sync_max_ms;
  int64_t lag_max, lag_end, state_bytes, state_bytes_max, rss_max_kb;
  /* about how long RocksDB stopped writes of a subtask (samples 2 s apart), -1: not
   * watched (only runs with preloaded state ask for the metric) */
  int64_t write_stopped_s;
  double seconds, events_per_s;
  double cpu_seconds; /* of the whole process: generator, mock cluster, job, reader */
  char samples[3][4096];
  int n_samples;
} fp_result_t;

typedef struct fp_monitor fp_monitor_t;

/* Starts the monitor thread: the latency reader of features.user and the status line
 * every second (in place on a terminal, a plain line every 5 s otherwise). */
fp_monitor_t *fp_monitor_start(const fp_options_t *o, const char *brokers, fp_job_t *job,
                               fp_gen_stats_t *gen, const char *state_dir);
/* Waits until the job has taken every event produced so far and a checkpoint triggered
 * after that completed and was committed; 0, or -1 when stop_flag was set or max_ms
 * passed first. */
int fp_monitor_wait_drained(fp_monitor_t *m, _Atomic int *stop_flag, const char *ckpt_dir,
                            int64_t max_ms);
/* Whether an operator shows the user metric (a counter or gauge) yet. */
bool fp_monitor_has_metric(fl_env_t *env, const char *op, const char *name);
/* A user counter of an operator (summed over subtasks), 0 when absent. */
int64_t fp_monitor_counter(fl_env_t *env, const char *op, const char *name);
/* A RocksDB metric of an operator's state (subtasks[].rocksdb, its
 * state.backend.rocksdb.metrics.* key switched on), summed over subtasks; -1 when no
 * subtask shows it yet. */
int64_t fp_monitor_rocksdb(fl_env_t *env, const char *op, const char *name);
/* The id of the job's last completed checkpoint (0: none yet) and its duration. */
int64_t fp_monitor_last_checkpoint(fl_env_t *env, int64_t *duration_ms);
/* Stops the thread and fills r. */
void fp_monitor_stop(fp_monitor_t *m, fp_result_t *r);

/* ---------------------------------------------------------------------------------- */
/* Small helpers                                                                      */

int64_t fp_wall_ms(void);
int64_t fp_mono_ms(void);
/* A librdkafka client with bootstrap.servers and the given NULL-terminated pairs. */
rd_kafka_t *fp_kafka_client(rd_kafka_type_t type, const char *brokers, const char *const *kv);
/* Number of partitions of topic, or -1. */
int fp_topic_partitions(rd_kafka_t *rk, const char *topic);
/* Bytes under a directory (the RocksDB state on disk). */
int64_t fp_dir_bytes(const char *path);

#endif
