/* Per-operator-subtask metrics: written by the subtask's worker with relaxed atomic
 * stores, read by any thread (fl_env_metrics_json) with relaxed loads, so a reader sees
 * every counter at some recent value, never a torn one. */
#ifndef FL_GRAPH_METRICS_H
#define FL_GRAPH_METRICS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* User metrics of one subtask (fl_ctx_counter_add/fl_ctx_gauge_set): written only by
 * the subtask's worker; a slot's name and kind are set before `n` is published with a
 * release store, so a reader that loads `n` with acquire sees them whole. */
#define FL_USER_METRICS_MAX 64
#define FL_USER_METRIC_NAME_MAX 96 /* bytes, with the terminating NUL */

typedef struct fl_user_metric {
  char name[FL_USER_METRIC_NAME_MAX];
  bool gauge;
  _Atomic int64_t value;
} fl_user_metric_t;

typedef struct fl_user_metrics {
  _Atomic int n;
  fl_user_metric_t m[FL_USER_METRICS_MAX];
} fl_user_metrics_t;

typedef struct fl_metrics {
  _Atomic uint64_t records_in;
  _Atomic uint64_t records_out;
  _Atomic uint64_t late_dropped;
  _Atomic int64_t input_watermark;   /* FL_TS_NONE before the first */
  _Atomic(fl_user_metrics_t *) user; /* NULL until the first user metric */
} fl_metrics_t;

/* Frees the user metrics of n metrics slots (NULL-safe). */
void fl_metrics_free_user(fl_metrics_t *m, size_t n);

#endif
