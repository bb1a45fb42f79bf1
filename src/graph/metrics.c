/* Histogram statistics, user metrics, resetting and freeing metrics slots, and the task a
 * node runs in. */
#include "graph/metrics.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "flink.h"
#include "graph/graph.h"
#include "util/hash.h"

static int cmp_i64(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return (x > y) - (x < y);
}

/* The quantile q of n sorted values, interpolated between the two nearest ranks (as
 * Flink's DescriptiveStatisticsHistogram does through commons-math's default). */
static double quantile(const int64_t *v, size_t n, double q) {
  double pos = q * (double)(n + 1);
  if (pos < 1) return (double)v[0];
  if (pos >= (double)n) return (double)v[n - 1];
  size_t lo = (size_t)pos;
  double frac = pos - (double)lo;
  return (double)v[lo - 1] + frac * (double)(v[lo] - v[lo - 1]);
}

void fl_hist_read(const fl_hist_t *h, fl_hist_stats_t *out) {
  memset(out, 0, sizeof *out);
  if (!h) return;
  int64_t v[FL_HIST_WINDOW];
  uint64_t count = atomic_load_explicit(&h->count, memory_order_acquire);
  size_t n = count < FL_HIST_WINDOW ? (size_t)count : FL_HIST_WINDOW;
  for (size_t i = 0; i < n; i++) v[i] = atomic_load_explicit(&h->v[i], memory_order_relaxed);
  out->count = count;
  out->sum = atomic_load_explicit(&h->sum, memory_order_relaxed);
  out->n = n;
  if (!n) return;
  qsort(v, n, sizeof *v, cmp_i64);
  double sum = 0;
  for (size_t i = 0; i < n; i++) sum += (double)v[i];
  out->mean = sum / (double)n;
  double var = 0;
  for (size_t i = 0; i < n; i++) var += ((double)v[i] - out->mean) * ((double)v[i] - out->mean);
  out->stddev = n > 1 ? sqrt(var / (double)(n - 1)) : 0;
  out->min = (double)v[0];
  out->max = (double)v[n - 1];
  out->p50 = quantile(v, n, 0.5);
  out->p75 = quantile(v, n, 0.75);
  out->p95 = quantile(v, n, 0.95);
  out->p98 = quantile(v, n, 0.98);
  out->p99 = quantile(v, n, 0.99);
  out->p999 = quantile(v, n, 0.999);
}

void fl_hist_reset(fl_hist_t *h) {
  atomic_store(&h->count, 0);
  atomic_store(&h->sum, 0);
}

static uint64_t user_hash(const char *name, size_t len, fl_user_metric_kind_t kind) {
  return fl_hash64(name, len, (uint64_t)kind);
}

/* Puts slot number `slot` with hash h into an index that has room. */
static void index_put(uint32_t *index, size_t cap, uint64_t h, int slot) {
  size_t at = (size_t)h & (cap - 1);
  while (index[at]) at = (at + 1) & (cap - 1);
  index[at] = (uint32_t)slot + 1;
}

fl_user_metric_t *fl_user_metric_get(fl_metrics_t *m, const char *name,
                                     fl_user_metric_kind_t kind) {
  size_t len = name ? strlen(name) : 0;
  if (!len || len >= FL_USER_METRIC_NAME_MAX) return NULL;
  fl_user_metrics_t *u = atomic_load_explicit(&m->user, memory_order_relaxed);
  if (!u) {
    u = calloc(1, sizeof *u);
    if (!u) return NULL;
    atomic_store_explicit(&m->user, u, memory_order_release);
  }
  uint64_t h = user_hash(name, len, kind);
  for (size_t at = (size_t)h & (u->index_cap - 1); u->index_cap && u->index[at];
       at = (at + 1) & (u->index_cap - 1)) {
    fl_user_metric_t *e = fl_user_metric_at(u, (int)u->index[at] - 1);
    if (e->kind == kind && strcmp(e->name, name) == 0) return e;
  }
  /* A new name. */
  int n = atomic_load_explicit(&u->n, memory_order_relaxed);
  if (n == FL_USER_METRICS_MAX) return NULL;
  if ((size_t)(n + 1) * 2 > u->index_cap) {
    size_t cap = u->index_cap ? u->index_cap * 2 : 64;
    uint32_t *index = calloc(cap, sizeof *index);
    if (!index) return NULL;
    for (int i = 0; i < n; i++) {
      const fl_user_metric_t *e = fl_user_metric_at(u, i);
      index_put(index, cap, user_hash(e->name, strlen(e->name), e->kind), i);
    }
    free(u->index);
    u->index = index;
    u->index_cap = cap;
  }
  fl_user_metric_t **chunk = &u->chunk[n / FL_USER_METRICS_CHUNK];
  if (!*chunk && !(*chunk = calloc(FL_USER_METRICS_CHUNK, sizeof **chunk))) return NULL;
  fl_user_metric_t *e = &(*chunk)[n % FL_USER_METRICS_CHUNK];
  if (kind == FL_UM_HISTOGRAM && !e->hist && !(e->hist = calloc(1, sizeof *e->hist))) return NULL;
  memcpy(e->name, name, len + 1);
  e->kind = kind;
  atomic_store_explicit(&e->value, 0, memory_order_relaxed);
  index_put(u->index, u->index_cap, h, n);
  atomic_store_explicit(&u->n, n + 1, memory_order_release);
  return e;
}

void fl_metrics_free_user(fl_metrics_t *m, size_t n) {
  for (size_t i = 0; m && i < n; i++) {
    fl_user_metrics_t *u = atomic_load(&m[i].user);
    if (u) {
      for (size_t c = 0; c < sizeof u->chunk / sizeof u->chunk[0] && u->chunk[c]; c++) {
        for (int k = 0; k < FL_USER_METRICS_CHUNK; k++) free(u->chunk[c][k].hist);
        free(u->chunk[c]);
      }
      free(u->index);
    }
    free(u);
    atomic_store(&m[i].user, NULL);
    free(m[i].latency);
    m[i].latency = NULL;
    m[i].n_latency = 0;
  }
}

int fl_metrics_reset(fl_metrics_t *m, size_t n, int n_sources) {
  for (size_t i = 0; i < n; i++) {
    fl_metrics_t *s = &m[i];
    atomic_store(&s->records_in, 0);
    atomic_store(&s->records_out, 0);
    atomic_store(&s->late_dropped, 0);
    atomic_store(&s->fired_timers, 0);
    atomic_store(&s->input_watermark, FL_TS_NONE);
    atomic_store(&s->output_watermark, FL_TS_NONE);
    atomic_store(&s->busy_ns, 0);
    atomic_store(&s->backpressured_ns, 0);
    atomic_store(&s->records_in_per_s, 0.0);
    atomic_store(&s->records_out_per_s, 0.0);
    atomic_store(&s->fired_timers_per_s, 0.0);
    atomic_store(&s->busy_ms_per_s, 0.0);
    atomic_store(&s->idle_ms_per_s, 0.0);
    atomic_store(&s->backpressured_ms_per_s, 0.0);
    atomic_store(&s->backpressured, false);
    atomic_store(&s->view_updated_ms, 0);
    atomic_store(&s->alignment_ns, 0);
    atomic_store(&s->sync_ns, 0);
    for (int k = 0; k < FL_KV_STAT_N; k++) atomic_store(&s->kv_stats[k], -1);
    /* The latency histograms are allocated once, before the slots are published (plan.c):
     * afterwards a reader may be reading them. */
    if (n_sources > 0 && !s->latency) {
      s->latency = calloc((size_t)n_sources, sizeof *s->latency);
      if (!s->latency) return FL_ENOMEM;
      s->n_latency = n_sources;
    }
    for (int k = 0; k < s->n_latency; k++) fl_hist_reset(&s->latency[k]);
    fl_user_metrics_t *u = atomic_load(&s->user);
    int nu = u ? atomic_load(&u->n) : 0;
    for (int k = 0; k < nu; k++) {
      fl_user_metric_t *e = fl_user_metric_at(u, k);
      atomic_store(&e->value, 0);
      if (e->hist) fl_hist_reset(e->hist);
    }
  }
  return FL_OK;
}

const struct fl_node *fl_node_task_head(const struct fl_node *n) {
  while (n->n_inputs > 0) {
    for (size_t i = 0; i < n->n_inputs; i++)
      if (n->inputs[i].part != FL_PART_FORWARD) return n;
    n = n->inputs[0].from;
  }
  return n;
}
