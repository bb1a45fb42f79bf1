/* Per-operator-subtask metrics: written by the subtask's worker with relaxed atomic
 * stores, read by any thread (fl_env_metrics_json, the REST server) with relaxed loads,
 * so a reader sees every counter at some recent value, never a torn one.
 *
 * The record path only increments counters the worker owns (a plain load and store of
 * a relaxed atomic: no lock, no read-modify-write, no allocation). Rates and the
 * busy/idle/back-pressured times per second are views the worker computes about once a
 * second from its own samples (runtime/worker.c) and publishes here; histograms keep
 * the last FL_HIST_WINDOW values in a ring (Flink's latency histograms keep the last
 * metrics.latency.history-size values), from which readers compute quantiles. */
#ifndef FL_GRAPH_METRICS_H
#define FL_GRAPH_METRICS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "state/kv.h"

/* ---- histograms ---- */

#define FL_HIST_WINDOW 128 /* values a histogram keeps (a power of two) */

/* One writer thread; any reader. `count` counts every update since the start (its low
 * bits index the ring), `sum` adds them. */
typedef struct fl_hist {
  _Atomic uint64_t count;
  _Atomic int64_t sum;
  _Atomic int64_t v[FL_HIST_WINDOW];
} fl_hist_t;

/* The writer's update: no lock, no allocation. */
static inline void fl_hist_update(fl_hist_t *h, int64_t value) {
  uint64_t n = atomic_load_explicit(&h->count, memory_order_relaxed);
  atomic_store_explicit(&h->v[n & (FL_HIST_WINDOW - 1)], value, memory_order_relaxed);
  atomic_store_explicit(&h->sum, atomic_load_explicit(&h->sum, memory_order_relaxed) + value,
                        memory_order_relaxed);
  atomic_store_explicit(&h->count, n + 1, memory_order_release);
}

/* What a reader computes from the values in the window (Flink's histogram statistics). */
typedef struct fl_hist_stats {
  uint64_t count; /* every update since the start */
  int64_t sum;
  size_t n; /* values in the window */
  double min, max, mean, stddev;
  double p50, p75, p95, p98, p99, p999;
} fl_hist_stats_t;

/* Reads h (any thread). */
void fl_hist_read(const fl_hist_t *h, fl_hist_stats_t *out);
/* Forgets every value (the owner, before it writes again). */
void fl_hist_reset(fl_hist_t *h);

/* ---- user metrics ---- */

/* User metrics of one subtask (fl_ctx_counter_add/fl_ctx_gauge_set/fl_ctx_histogram_update),
 * written only by the subtask's worker. The slots live in chunks of FL_USER_METRICS_CHUNK,
 * allocated as names are registered and never moved or freed while the job runs, so a
 * reader on another thread may hold a slot at any time. A slot's name and kind, and its
 * chunk, are set before `n` is published with a release store, so a reader that loads `n`
 * with acquire sees them whole (fl_user_metric_at).
 *
 * A subtask holds at most FL_USER_METRICS_MAX names (a Kafka source publishes three per
 * partition: about 1,360 partitions per subtask), so its user metrics take at most 64
 * chunks of 7.5 KiB and an index of 32 KiB. The writer finds a name through `index`, an
 * open-addressing table only it reads: one hash and one comparison per update however
 * many names there are. */
#define FL_USER_METRICS_CHUNK 64
#define FL_USER_METRICS_MAX 4096
#define FL_USER_METRIC_NAME_MAX 96 /* bytes, with the terminating NUL */

typedef enum fl_user_metric_kind {
  FL_UM_COUNTER = 0,
  FL_UM_GAUGE = 1,
  FL_UM_HISTOGRAM = 2
} fl_user_metric_kind_t;

typedef struct fl_user_metric {
  char name[FL_USER_METRIC_NAME_MAX];
  fl_user_metric_kind_t kind;
  _Atomic int64_t value; /* counters and gauges */
  fl_hist_t *hist;       /* histograms: allocated at registration, freed with the slot */
} fl_user_metric_t;

typedef struct fl_user_metrics {
  _Atomic int n;
  fl_user_metric_t *chunk[FL_USER_METRICS_MAX / FL_USER_METRICS_CHUNK];
  /* The writer's: slot numbers + 1 (0: empty), index_cap a power of two, at most half
   * full. */
  uint32_t *index;
  size_t index_cap;
} fl_user_metrics_t;

/* Slot i < n of u (n loaded with acquire by a reader). */
static inline fl_user_metric_t *fl_user_metric_at(const fl_user_metrics_t *u, int i) {
  return &u->chunk[i / FL_USER_METRICS_CHUNK][i % FL_USER_METRICS_CHUNK];
}

/* ---- the metrics of one operator subtask ---- */

typedef struct fl_metrics {
  /* counters (Flink: numRecordsIn, numRecordsOut, numLateRecordsDropped, numFiredTimers) */
  _Atomic uint64_t records_in;
  _Atomic uint64_t records_out;
  _Atomic uint64_t late_dropped;
  _Atomic uint64_t fired_timers;
  _Atomic int64_t input_watermark;  /* FL_TS_NONE before the first */
  _Atomic int64_t output_watermark; /* FL_TS_NONE before the first */
  /* Time of the subtask's task (the chain its operator belongs to), cumulative ns:
   * doing work, and blocked because an output channel is full (back-pressured). */
  _Atomic int64_t busy_ns, backpressured_ns;
  /* Views the worker publishes about once a second, over the last few seconds. */
  _Atomic double records_in_per_s, records_out_per_s, fired_timers_per_s;
  _Atomic double busy_ms_per_s, idle_ms_per_s, backpressured_ms_per_s;
  _Atomic bool backpressured;      /* at the worker's last iteration */
  _Atomic int64_t view_updated_ms; /* wall clock of the last view, 0: none yet */
  /* The last checkpoint's alignment at this subtask (Flink: checkpointAlignmentTime),
   * ns from the first barrier to the last. */
  _Atomic int64_t alignment_ns;
  /* The synchronous part of the last checkpoint at this operator subtask, ns: from its
   * aligned barrier to the barrier forwarded (a state cache's flush, a native copy of
   * RocksDB, the snapshot written); records behind the barrier wait for it. */
  _Atomic int64_t sync_ns;
  /* Latency markers (metrics.latency.interval): one histogram per source node, of the
   * ms from the marker's creation at that source to its arrival here; NULL when latency
   * tracking is off. Indexed by the source's ordinal among the sources. */
  fl_hist_t *latency;
  int n_latency;
  /* Statistics of the subtask's state backend (FL_KV_STATS_MAP), -1 where absent;
   * the worker reads them with its view samples. */
  _Atomic int64_t kv_stats[FL_KV_STAT_N];
  _Atomic(fl_user_metrics_t *) user; /* NULL until the first user metric */
} fl_metrics_t;

/* A node's slots (fl_node_t.metrics) as a reader on any thread sees them: NULL until the
 * first plan publishes them (with a release store, n_metrics set before). */
#define FL_NODE_METRICS(n) __atomic_load_n(&(n)->metrics, __ATOMIC_ACQUIRE)

/* The slot of (name, kind) among m's user metrics, registered at its first use (the
 * only allocations: the table, a chunk, the index, a histogram's ring). The subtask's
 * worker only. NULL when name is empty or has FL_USER_METRIC_NAME_MAX bytes or more, when
 * the subtask holds FL_USER_METRICS_MAX names, or without memory. */
fl_user_metric_t *fl_user_metric_get(fl_metrics_t *m, const char *name, fl_user_metric_kind_t kind);

/* Frees what n metrics slots hold (user metrics, histograms; NULL-safe). */
void fl_metrics_free_user(fl_metrics_t *m, size_t n);

/* Makes n slots ready for an attempt: counters and views to zero, watermarks to none,
 * user metrics kept with zero values, latency histograms for n_sources sources. The
 * slots are reused (never freed while a job runs), so readers on other threads may
 * read them at any time. FL_ENOMEM if the latency histograms cannot be allocated. */
int fl_metrics_reset(fl_metrics_t *m, size_t n, int n_sources);

/* The node that heads the task (Flink's operator chain) a node belongs to: a source or a
 * node with a partitioned input heads its own; a node fed by forward inputs only runs
 * inside its first input's task. */
struct fl_node;
const struct fl_node *fl_node_task_head(const struct fl_node *n);

#endif
