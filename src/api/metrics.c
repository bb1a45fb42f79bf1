/* Per-operator metrics as JSON. Counters are written by their worker with relaxed
 * stores and read here with relaxed loads: a reader sees each counter at some recent
 * value, never a torn one. */
#include <jansson.h>
#include <stdlib.h>

#include "graph/env.h"
#include "rest/rest.h"

static json_t *wm_json(int64_t wm) {
  return wm == FL_TS_NONE ? json_null() : json_integer((json_int_t)wm);
}

#define LD(f) atomic_load_explicit(&m->f, memory_order_relaxed)

/* Sets o[name] = v, with name made UTF-8 (names are the user's bytes; jansson refuses
 * keys that are not UTF-8). */
static void set_named(json_t *o, const char *name, json_t *v) {
  char *key = fl_rest_utf8_dup(name);
  if (key)
    json_object_set_new(o, key, v);
  else
    json_decref(v);
  free(key);
}

static json_t *hist_json(const fl_hist_t *h, double scale, bool full) {
  fl_hist_stats_t st;
  fl_hist_read(h, &st);
  json_t *o = json_object();
  json_object_set_new(o, "count", json_integer((json_int_t)st.count));
  if (full) {
    json_object_set_new(o, "min", json_real(st.min / scale));
    json_object_set_new(o, "mean", json_real(st.mean / scale));
  }
  json_object_set_new(o, "p50", json_real(st.p50 / scale));
  json_object_set_new(o, "p95", json_real(st.p95 / scale));
  json_object_set_new(o, "p99", json_real(st.p99 / scale));
  json_object_set_new(o, "max", json_real(st.max / scale));
  return o;
}

/* Sets the time-per-second fields of o from one subtask's views. */
static void times_json(json_t *o, double busy, double idle, double bp, bool is_bp) {
  json_object_set_new(o, "busy_time_ms_per_second", json_real(busy));
  json_object_set_new(o, "idle_time_ms_per_second", json_real(idle));
  json_object_set_new(o, "back_pressured_time_ms_per_second", json_real(bp));
  json_object_set_new(o, "is_back_pressured", json_boolean(is_bp));
}

/* The latency histograms of one subtask: by source name. NULL when there are none. */
static json_t *latency_json(const fl_env_t *env, const fl_metrics_t *m) {
  if (!m->latency) return NULL;
  json_t *o = json_object();
  int src = 0;
  for (size_t j = 0; j < env->n_nodes && src < m->n_latency; j++) {
    if (env->nodes[j]->kind != FL_NODE_SOURCE) continue;
    const fl_hist_t *h = &m->latency[src++];
    if (atomic_load_explicit(&h->count, memory_order_relaxed))
      set_named(o, env->nodes[j]->name, hist_json(h, 1e6, false));
  }
  if (!json_object_size(o)) {
    json_decref(o);
    return NULL;
  }
  return o;
}

static json_t *subtask_json(const fl_env_t *env, fl_metrics_t *m, int s, json_t *agg) {
  json_t *so = json_object();
  json_object_set_new(so, "subtask", json_integer(s));
  json_object_set_new(so, "records_in", json_integer((json_int_t)LD(records_in)));
  json_object_set_new(so, "records_out", json_integer((json_int_t)LD(records_out)));
  json_object_set_new(so, "records_in_per_second", json_real(LD(records_in_per_s)));
  json_object_set_new(so, "records_out_per_second", json_real(LD(records_out_per_s)));
  json_object_set_new(so, "late_records_dropped", json_integer((json_int_t)LD(late_dropped)));
  json_object_set_new(so, "fired_timers", json_integer((json_int_t)LD(fired_timers)));
  json_object_set_new(so, "fired_timers_per_second", json_real(LD(fired_timers_per_s)));
  json_object_set_new(so, "current_input_watermark", wm_json(LD(input_watermark)));
  json_object_set_new(so, "current_output_watermark", wm_json(LD(output_watermark)));
  times_json(so, LD(busy_ms_per_s), LD(idle_ms_per_s), LD(backpressured_ms_per_s),
             LD(backpressured));
  json_object_set_new(so, "checkpoint_alignment_ns", json_integer(LD(alignment_ns)));
  json_object_set_new(so, "checkpoint_sync_ns", json_integer(LD(sync_ns)));
  json_t *lat = latency_json(env, m);
  if (lat) json_object_set_new(so, "latency_ms", lat);
  static const char *const kv_names[] = {
#define FL_KV_STAT_NAME_(e, name, optin) name,
      FL_KV_STATS_MAP(FL_KV_STAT_NAME_)
#undef FL_KV_STAT_NAME_
  };
  json_t *kv = NULL;
  for (int k = 0; k < FL_KV_STAT_N; k++) {
    int64_t v = LD(kv_stats[k]);
    if (v < 0) continue;
    if (!kv) kv = json_object();
    json_object_set_new(kv, kv_names[k], json_integer((json_int_t)v));
  }
  if (kv) json_object_set_new(so, "rocksdb", kv);
  fl_user_metrics_t *u = atomic_load_explicit(&m->user, memory_order_acquire);
  if (u) {
    json_t *um = json_object();
    int nu = atomic_load_explicit(&u->n, memory_order_acquire);
    for (int k = 0; k < nu; k++) {
      const fl_user_metric_t *e = fl_user_metric_at(u, k);
      if (e->kind == FL_UM_HISTOGRAM) {
        set_named(um, e->name, hist_json(e->hist, 1, true));
        continue;
      }
      int64_t v = atomic_load_explicit(&e->value, memory_order_relaxed);
      set_named(um, e->name, json_integer((json_int_t)v));
      /* the operator's value: counters summed, gauges at their maximum */
      char *key = fl_rest_utf8_dup(e->name);
      json_t *prev = key ? json_object_get(agg, key) : NULL;
      if (!key) {
        /* out of memory: the operator's value is left out */
      } else if (!prev) {
        json_object_set_new(agg, key, json_integer((json_int_t)v));
      } else {
        json_int_t p = json_integer_value(prev);
        json_integer_set(prev, e->kind == FL_UM_GAUGE ? (p > v ? p : v) : p + v);
      }
      free(key);
    }
    json_object_set_new(so, "metrics", um);
  }
  return so;
}

static json_t *checkpoints_json(fl_env_t *env) {
  json_t *ck = json_object();
  if (!ck) return NULL;
  json_object_set_new(ck, "completed", json_integer(atomic_load(&env->ckpt_stats.completed)));
  json_object_set_new(ck, "failed", json_integer(atomic_load(&env->ckpt_stats.failed)));
  json_object_set_new(ck, "in_progress", json_integer(atomic_load(&env->ckpt_stats.in_progress)));
  int64_t rid = atomic_load(&env->ckpt_stats.restored_id);
  json_object_set_new(ck, "restored_from", rid ? json_integer(rid) : json_null());
  json_object_set_new(ck, "restarts", json_integer(atomic_load(&env->ckpt_stats.restarts)));
  int64_t last = atomic_load(&env->ckpt_stats.last_id);
  json_object_set_new(ck, "last_id", last ? json_integer(last) : json_null());
  json_object_set_new(ck, "last_duration_ms",
                      json_integer(atomic_load(&env->ckpt_stats.last_duration_ms)));
  json_object_set_new(ck, "last_size_bytes", json_integer(atomic_load(&env->ckpt_stats.last_size)));
  json_object_set_new(ck, "last_new_bytes",
                      json_integer(atomic_load(&env->ckpt_stats.last_new_bytes)));
  return ck;
}

char *fl_env_metrics_json(fl_env_t *env) {
  if (!env) return NULL;
  int st = atomic_load(&env->state);
  json_t *root = json_object();
  json_t *ops = json_array();
  if (!root || !ops) goto fail;
  const char *job_name = atomic_load(&env->job_name);
  json_object_set_new(root, "job", fl_rest_json_text(job_name));
  json_object_set_new(root, "job_id", json_string(env->job_id));
  json_object_set_new(root, "state",
                      json_string(st == 0   ? "created"
                                  : st == 1 ? "running"
                                            : "finished"));
  int P = env->conf.parallelism;
  for (size_t i = 0; i < env->n_nodes; i++) {
    fl_node_t *n = env->nodes[i];
    json_t *o = json_object();
    json_t *subs = json_array();
    uint64_t in = 0, out = 0, late = 0, fired = 0;
    double in_rate = 0, out_rate = 0, fired_rate = 0, busy = 0, idle = 0, bp = 0;
    bool is_bp = false;
    int64_t wm = FL_TS_NONE, owm = FL_TS_NONE;
    json_t *agg = json_object();
    fl_metrics_t *slots = FL_NODE_METRICS(n);
    for (int s = 0; slots && s < P && s < n->n_metrics; s++) {
      fl_metrics_t *m = &slots[s];
      in += LD(records_in);
      out += LD(records_out);
      late += LD(late_dropped);
      fired += LD(fired_timers);
      in_rate += LD(records_in_per_s);
      out_rate += LD(records_out_per_s);
      fired_rate += LD(fired_timers_per_s);
      /* The operator's time is its busiest subtask's (as Flink's web UI shows it). */
      if (s == 0 || LD(busy_ms_per_s) > busy) busy = LD(busy_ms_per_s);
      if (s == 0 || LD(backpressured_ms_per_s) > bp) bp = LD(backpressured_ms_per_s);
      idle = 1000 - busy - bp > 0 ? 1000 - busy - bp : 0;
      is_bp |= LD(backpressured);
      /* The operator's watermark is the minimum over its subtasks; FL_TS_NONE is
       * INT64_MIN, so a subtask without a watermark yet keeps it at none. */
      int64_t w = LD(input_watermark), ow = LD(output_watermark);
      if (s == 0 || w < wm) wm = w;
      if (s == 0 || ow < owm) owm = ow;
      json_array_append_new(subs, subtask_json(env, m, s, agg));
    }
    json_object_set_new(o, "id", json_integer(n->id));
    json_object_set_new(o, "name", fl_rest_json_text(n->name));
    json_object_set_new(o, "task", json_integer(fl_node_task_head(n)->id));
    json_object_set_new(o, "parallelism", json_integer(P));
    json_object_set_new(o, "records_in", json_integer((json_int_t)in));
    json_object_set_new(o, "records_out", json_integer((json_int_t)out));
    json_object_set_new(o, "records_in_per_second", json_real(in_rate));
    json_object_set_new(o, "records_out_per_second", json_real(out_rate));
    json_object_set_new(o, "late_records_dropped", json_integer((json_int_t)late));
    json_object_set_new(o, "fired_timers", json_integer((json_int_t)fired));
    json_object_set_new(o, "fired_timers_per_second", json_real(fired_rate));
    json_object_set_new(o, "current_input_watermark", wm_json(wm));
    json_object_set_new(o, "current_output_watermark", wm_json(owm));
    /* Flink's watermarkLag, for sources (their output) and windows (their input) */
    int64_t lw = n->kind == FL_NODE_SOURCE ? owm : n->kind == FL_NODE_WINDOW ? wm : FL_TS_NONE;
    json_object_set_new(
        o, "watermark_lag_ms",
        lw == FL_TS_NONE || lw == FL_TS_MAX ? json_null() : json_integer(fl_env_now(env) - lw));
    times_json(o, busy, idle, bp, is_bp);
    if (json_object_size(agg))
      json_object_set_new(o, "metrics", agg);
    else
      json_decref(agg);
    json_object_set_new(o, "subtasks", subs);
    json_array_append_new(ops, o);
  }
  json_object_set_new(root, "operators", ops);
  ops = NULL;
  json_t *ck = checkpoints_json(env);
  if (ck) json_object_set_new(root, "checkpoints", ck);
  char *s = json_dumps(root, JSON_COMPACT);
  json_decref(root);
  return s;
fail:
  json_decref(ops);
  json_decref(root);
  return NULL;
}
