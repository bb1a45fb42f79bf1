/* Per-operator metrics as JSON. Counters are written by their worker with relaxed
 * stores and read here with relaxed loads: a reader sees each counter at some recent
 * value, never a torn one. */
#include <jansson.h>
#include <stdlib.h>

#include "graph/env.h"

static json_t *wm_json(int64_t wm) {
  return wm == FL_TS_NONE ? json_null() : json_integer((json_int_t)wm);
}

char *fl_env_metrics_json(fl_env_t *env) {
  if (!env) return NULL;
  int st = atomic_load(&env->state);
  json_t *root = json_object();
  json_t *ops = json_array();
  if (!root || !ops) goto fail;
  const char *job_name = atomic_load(&env->job_name);
  json_object_set_new(root, "job", json_string(job_name ? job_name : ""));
  json_object_set_new(root, "state",
                      json_string(st == 0   ? "created"
                                  : st == 1 ? "running"
                                            : "finished"));
  int P = env->conf.parallelism;
  for (size_t i = 0; i < env->n_nodes; i++) {
    fl_node_t *n = env->nodes[i];
    json_t *o = json_object();
    json_t *subs = json_array();
    uint64_t in = 0, out = 0, late = 0;
    int64_t wm = FL_TS_NONE;
    json_t *agg = json_object();
    for (int s = 0; n->metrics && s < P; s++) {
      fl_metrics_t *m = &n->metrics[s];
      uint64_t a = atomic_load_explicit(&m->records_in, memory_order_relaxed);
      uint64_t b = atomic_load_explicit(&m->records_out, memory_order_relaxed);
      uint64_t c = atomic_load_explicit(&m->late_dropped, memory_order_relaxed);
      int64_t w = atomic_load_explicit(&m->input_watermark, memory_order_relaxed);
      in += a;
      out += b;
      late += c;
      /* The operator's watermark is the minimum over its subtasks; FL_TS_NONE is
       * INT64_MIN, so a subtask without a watermark yet keeps it at none. */
      if (s == 0 || w < wm) wm = w;
      json_t *so = json_object();
      json_object_set_new(so, "subtask", json_integer(s));
      json_object_set_new(so, "records_in", json_integer((json_int_t)a));
      json_object_set_new(so, "records_out", json_integer((json_int_t)b));
      json_object_set_new(so, "late_records_dropped", json_integer((json_int_t)c));
      json_object_set_new(so, "current_input_watermark", wm_json(w));
      fl_user_metrics_t *u = atomic_load_explicit(&m->user, memory_order_acquire);
      if (u) {
        json_t *um = json_object();
        int nu = atomic_load_explicit(&u->n, memory_order_acquire);
        for (int k = 0; k < nu; k++) {
          int64_t v = atomic_load_explicit(&u->m[k].value, memory_order_relaxed);
          json_object_set_new(um, u->m[k].name, json_integer((json_int_t)v));
          /* the operator's value: counters summed, gauges at their maximum */
          json_t *prev = json_object_get(agg, u->m[k].name);
          if (!prev) {
            json_object_set_new(agg, u->m[k].name, json_integer((json_int_t)v));
          } else {
            json_int_t p = json_integer_value(prev);
            json_integer_set(prev, u->m[k].gauge ? (p > v ? p : v) : p + v);
          }
        }
        json_object_set_new(so, "metrics", um);
      }
      json_array_append_new(subs, so);
    }
    json_object_set_new(o, "id", json_integer(n->id));
    json_object_set_new(o, "name", json_string(n->name));
    json_object_set_new(o, "parallelism", json_integer(P));
    json_object_set_new(o, "records_in", json_integer((json_int_t)in));
    json_object_set_new(o, "records_out", json_integer((json_int_t)out));
    json_object_set_new(o, "late_records_dropped", json_integer((json_int_t)late));
    json_object_set_new(o, "current_input_watermark", wm_json(wm));
    if (json_object_size(agg))
      json_object_set_new(o, "metrics", agg);
    else
      json_decref(agg);
    json_object_set_new(o, "subtasks", subs);
    json_array_append_new(ops, o);
  }
  json_object_set_new(root, "operators", ops);
  ops = NULL;
  json_t *ck = json_object();
  if (ck) {
    json_object_set_new(ck, "completed", json_integer(atomic_load(&env->ckpt_stats.completed)));
    json_object_set_new(ck, "failed", json_integer(atomic_load(&env->ckpt_stats.failed)));
    int64_t rid = atomic_load(&env->ckpt_stats.restored_id);
    json_object_set_new(ck, "restored_from", rid ? json_integer(rid) : json_null());
    json_object_set_new(ck, "restarts", json_integer(atomic_load(&env->ckpt_stats.restarts)));
    int64_t last = atomic_load(&env->ckpt_stats.last_id);
    json_object_set_new(ck, "last_id", last ? json_integer(last) : json_null());
    json_object_set_new(ck, "last_duration_ms",
                        json_integer(atomic_load(&env->ckpt_stats.last_duration_ms)));
    json_object_set_new(ck, "last_size_bytes",
                        json_integer(atomic_load(&env->ckpt_stats.last_size)));
    json_object_set_new(ck, "last_new_bytes",
                        json_integer(atomic_load(&env->ckpt_stats.last_new_bytes)));
    json_object_set_new(root, "checkpoints", ck);
  }
  char *s = json_dumps(root, JSON_COMPACT);
  json_decref(root);
  return s;
fail:
  json_decref(ops);
  json_decref(root);
  return NULL;
}
