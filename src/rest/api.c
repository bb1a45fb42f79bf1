/*
 * A subset of Flink's REST API (the paths and JSON field names of Flink's web UI
 * backend), read-only: /config, /jobs, /jobs/overview, /jobs/{id}, /jobs/{id}/plan,
 * /jobs/{id}/checkpoints, /jobs/{id}/metrics?get=..., /jobs/{id}/vertices/{vid}/
 * backpressure and .../watermarks, /jobmanager/config. A vertex is a task (a chain of
 * operators, identified by its head); the job runs in this process, so there is one job.
 * The control calls (savepoints, cancel) are in server.c.
 */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "graph/metrics.h"
#include "rest/rest.h"

static const char *job_state(fl_env_t *env) {
  int st = atomic_load(&env->state);
  if (st == 0) return "CREATED";
  if (st == 1) return atomic_load(&env->stop_requested) ? "CANCELLING" : "RUNNING";
  return atomic_load(&env->stop_requested) ? "CANCELED" : "FINISHED";
}

static const char *job_name(fl_env_t *env) {
  const char *n = atomic_load(&env->job_name);
  return n ? n : "";
}

static bool is_head(const fl_node_t *n) { return fl_node_task_head(n) == n; }

static fl_metrics_t *slot(const fl_node_t *n, int k) {
  fl_metrics_t *m = FL_NODE_METRICS(n);
  return m && k < n->n_metrics ? &m[k] : NULL;
}

/* The time fields every job and vertex object has. */
static void times(json_t *o, fl_env_t *env) {
  int64_t start = atomic_load(&env->start_ms), end = atomic_load(&env->end_ms);
  json_object_set_new(o, "start-time", json_integer(start ? start : -1));
  json_object_set_new(o, "end-time", json_integer(end ? end : -1));
  int64_t now = fl_env_now(env);
  json_object_set_new(o, "duration", json_integer(start ? (end ? end : now) - start : 0));
}

static json_t *task_counts(fl_env_t *env, int n) {
  json_t *t = json_object();
  const char *st = job_state(env);
  static const char *const names[] = {"CREATED",     "SCHEDULED",   "DEPLOYING", "RUNNING",
                                      "FINISHED",    "CANCELING",   "CANCELED",  "FAILED",
                                      "RECONCILING", "INITIALIZING"};
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
    json_object_set_new(t, names[i], json_integer(strcmp(st, names[i]) == 0 ? n : 0));
  return t;
}

static int n_tasks(fl_env_t *env) {
  int n = 0;
  for (size_t i = 0; i < env->n_nodes; i++) n += is_head(env->nodes[i]);
  return n;
}

static json_t *jobs_overview(fl_env_t *env) {
  json_t *j = json_object();
  json_object_set_new(j, "jid", json_string(env->job_id));
  json_object_set_new(j, "name", fl_rest_json_text(job_name(env)));
  json_object_set_new(j, "state", json_string(job_state(env)));
  times(j, env);
  json_object_set_new(j, "last-modification", json_integer(fl_env_now(env)));
  int P = env->conf.parallelism, nt = n_tasks(env) * P;
  json_t *t = task_counts(env, nt);
  json_object_set_new(t, "total", json_integer(nt));
  json_object_set_new(j, "tasks", t);
  return j;
}

/* A vertex's records in and out: what enters its head, what leaves its last operator. */
static json_t *vertex_json(fl_env_t *env, const fl_node_t *head) {
  json_t *v = json_object();
  char id[33], name[1024];
  fl_rest_node_id(head, id);
  fl_rest_task_name(env, head, name, sizeof name);
  int P = env->conf.parallelism;
  json_object_set_new(v, "id", json_string(id));
  json_object_set_new(v, "name", fl_rest_json_text(name));
  json_object_set_new(v, "maxParallelism", json_integer(env->conf.max_parallelism));
  json_object_set_new(v, "parallelism", json_integer(P));
  json_object_set_new(v, "status", json_string(job_state(env)));
  times(v, env);
  json_object_set_new(v, "tasks", task_counts(env, P));
  const fl_node_t *last = head;
  for (size_t i = 0; i < env->n_nodes; i++)
    if (fl_node_task_head(env->nodes[i]) == head) last = env->nodes[i];
  uint64_t in = 0, out = 0;
  for (int k = 0; k < P; k++) {
    fl_metrics_t *a = slot(head, k), *b = slot(last, k);
    if (a) in += atomic_load_explicit(&a->records_in, memory_order_relaxed);
    if (b) out += atomic_load_explicit(&b->records_out, memory_order_relaxed);
  }
  json_t *m = json_object();
  json_object_set_new(m, "read-records", json_integer((json_int_t)in));
  json_object_set_new(m, "read-records-complete", json_true());
  json_object_set_new(m, "write-records", json_integer((json_int_t)out));
  json_object_set_new(m, "write-records-complete", json_true());
  json_object_set_new(v, "metrics", m);
  return v;
}

static const char *ship_strategy(fl_partition_t p) {
  switch (p) {
  case FL_PART_FORWARD: return "FORWARD";
  case FL_PART_HASH: return "HASH";
  case FL_PART_REBALANCE: return "REBALANCE";
  case FL_PART_BROADCAST: return "BROADCAST";
  }
  return "UNKNOWN";
}

static json_t *plan_json(fl_env_t *env) {
  json_t *plan = json_object(), *nodes = json_array();
  json_object_set_new(plan, "jid", json_string(env->job_id));
  json_object_set_new(plan, "name", fl_rest_json_text(job_name(env)));
  json_object_set_new(plan, "type", json_string("STREAMING"));
  for (size_t i = 0; i < env->n_nodes; i++) {
    const fl_node_t *n = env->nodes[i];
    if (!is_head(n)) continue;
    char id[33], name[1024];
    fl_rest_node_id(n, id);
    fl_rest_task_name(env, n, name, sizeof name);
    json_t *o = json_object(), *ins = json_array(), *ops = json_array();
    json_object_set_new(o, "id", json_string(id));
    json_object_set_new(o, "parallelism", json_integer(env->conf.parallelism));
    json_object_set_new(o, "operator", json_string(""));
    json_object_set_new(o, "operator_strategy", json_string(""));
    json_object_set_new(o, "description", fl_rest_json_text(name));
    for (size_t k = 0; k < n->n_inputs; k++) {
      json_t *in = json_object();
      char fid[33];
      fl_rest_node_id(fl_node_task_head(n->inputs[k].from), fid);
      json_object_set_new(in, "num", json_integer((json_int_t)k));
      json_object_set_new(in, "id", json_string(fid));
      json_object_set_new(in, "ship_strategy", json_string(ship_strategy(n->inputs[k].part)));
      json_object_set_new(in, "exchange", json_string("pipelined_bounded"));
      json_array_append_new(ins, in);
    }
    /* The operators of the chain (an addition: Flink's plan names only the chain). */
    for (size_t k = 0; k < env->n_nodes; k++) {
      if (fl_node_task_head(env->nodes[k]) != n) continue;
      json_t *op = json_object();
      char oid[33];
      fl_rest_node_id(env->nodes[k], oid);
      json_object_set_new(op, "id", json_string(oid));
      json_object_set_new(op, "index", json_integer(env->nodes[k]->id)); /* as in metrics.json */
      json_object_set_new(op, "name", fl_rest_json_text(env->nodes[k]->name));
      json_array_append_new(ops, op);
    }
    if (json_array_size(ins))
      json_object_set_new(o, "inputs", ins);
    else
      json_decref(ins);
    json_object_set_new(o, "operators", ops);
    json_object_set_new(o, "optimizer_properties", json_object());
    json_array_append_new(nodes, o);
  }
  json_object_set_new(plan, "nodes", nodes);
  return plan;
}

static json_t *job_details(fl_env_t *env) {
  json_t *j = json_object(), *vs = json_array();
  json_object_set_new(j, "jid", json_string(env->job_id));
  json_object_set_new(j, "name", fl_rest_json_text(job_name(env)));
  json_object_set_new(j, "isStoppable", json_false());
  json_object_set_new(j, "state", json_string(job_state(env)));
  json_object_set_new(j, "job-type", json_string("STREAMING"));
  times(j, env);
  json_object_set_new(j, "maxParallelism", json_integer(env->conf.max_parallelism));
  json_object_set_new(j, "now", json_integer(fl_env_now(env)));
  json_t *ts = json_object();
  json_object_set_new(ts, job_state(env), json_integer(atomic_load(&env->start_ms)));
  json_object_set_new(j, "timestamps", ts);
  for (size_t i = 0; i < env->n_nodes; i++)
    if (is_head(env->nodes[i])) json_array_append_new(vs, vertex_json(env, env->nodes[i]));
  json_object_set_new(j, "vertices", vs);
  json_object_set_new(j, "status-counts", task_counts(env, n_tasks(env)));
  json_object_set_new(j, "plan", plan_json(env));
  return j;
}

/* ---------------------------------------------------------------------------------- */
/* Checkpoints                                                                          */

static const char *ckpt_status(fl_ckpt_status_t s) {
  return s == FL_CKPT_COMPLETED ? "COMPLETED" : s == FL_CKPT_FAILED ? "FAILED" : "IN_PROGRESS";
}

static json_t *ckpt_json(fl_env_t *env, const fl_ckpt_record_t *r) {
  json_t *c = json_object();
  json_object_set_new(c, "className",
                      json_string(r->status == FL_CKPT_COMPLETED ? ".CompletedCheckpointStatistics"
                                  : r->status == FL_CKPT_FAILED  ? ".FailedCheckpointStatistics"
                                                                 : ".PendingCheckpointStatistics"));
  json_object_set_new(c, "id", json_integer(r->id));
  json_object_set_new(c, "status", json_string(ckpt_status(r->status)));
  json_object_set_new(c, "is_savepoint", json_boolean(r->savepoint));
  json_object_set_new(c, "checkpoint_type", json_string(r->savepoint ? "SAVEPOINT" : "CHECKPOINT"));
  json_object_set_new(c, "trigger_timestamp", json_integer(r->trigger_ms));
  json_object_set_new(c, "latest_ack_timestamp", json_integer(r->end_ms ? r->end_ms : -1));
  json_object_set_new(c, "checkpointed_size", json_integer(r->checkpointed));
  json_object_set_new(c, "state_size", json_integer(r->full_size));
  json_object_set_new(c, "end_to_end_duration",
                      json_integer(r->end_ms ? r->duration_ms : fl_env_now(env) - r->trigger_ms));
  json_object_set_new(c, "num_subtasks", json_integer(env->conf.parallelism));
  if (r->status == FL_CKPT_FAILED) {
    json_object_set_new(c, "failure_timestamp", json_integer(r->end_ms));
    json_object_set_new(c, "failure_message", json_string(r->failure));
  }
  return c;
}

static json_t *min_max_avg(const int64_t *v, size_t n) {
  json_t *o = json_object();
  int64_t mn = 0, mx = 0, sum = 0;
  for (size_t i = 0; i < n; i++) {
    if (i == 0 || v[i] < mn) mn = v[i];
    if (i == 0 || v[i] > mx) mx = v[i];
    sum += v[i];
  }
  json_object_set_new(o, "min", json_integer(mn));
  json_object_set_new(o, "max", json_integer(mx));
  json_object_set_new(o, "avg", json_integer(n ? sum / (int64_t)n : 0));
  return o;
}

static json_t *checkpoints_json(fl_env_t *env) {
  fl_ckpt_record_t h[FL_CKPT_HISTORY];
  size_t n = fl_env_ckpt_history(env, h);
  json_t *o = json_object(), *counts = json_object(), *hist = json_array();
  int64_t done = atomic_load(&env->ckpt_stats.completed);
  int64_t failed = atomic_load(&env->ckpt_stats.failed);
  int64_t inprog = atomic_load(&env->ckpt_stats.in_progress);
  json_object_set_new(counts, "restored",
                      json_integer(atomic_load(&env->ckpt_stats.restored_id) ? 1 : 0));
  json_object_set_new(counts, "total", json_integer(done + failed + inprog));
  json_object_set_new(counts, "in_progress", json_integer(inprog));
  json_object_set_new(counts, "completed", json_integer(done));
  json_object_set_new(counts, "failed", json_integer(failed));
  json_object_set_new(o, "counts", counts);
  int64_t dur[FL_CKPT_HISTORY], size[FL_CKPT_HISTORY], full[FL_CKPT_HISTORY];
  size_t nd = 0;
  json_t *latest = json_object();
  for (size_t i = n; i-- > 0;) {
    json_array_append_new(hist, ckpt_json(env, &h[i])); /* newest first, as Flink */
    if (h[i].status == FL_CKPT_COMPLETED) {
      dur[nd] = h[i].duration_ms;
      size[nd] = h[i].checkpointed;
      full[nd++] = h[i].full_size;
      const char *k = h[i].savepoint ? "savepoint" : "completed";
      if (!json_object_get(latest, k)) json_object_set_new(latest, k, ckpt_json(env, &h[i]));
    } else if (h[i].status == FL_CKPT_FAILED && !json_object_get(latest, "failed")) {
      json_object_set_new(latest, "failed", ckpt_json(env, &h[i]));
    }
  }
  int64_t rid = atomic_load(&env->ckpt_stats.restored_id);
  if (rid) {
    json_t *r = json_object();
    json_object_set_new(r, "id", json_integer(rid));
    json_object_set_new(r, "restore_timestamp",
                        json_integer(atomic_load(&env->ckpt_stats.restored_ms)));
    json_object_set_new(r, "is_savepoint", json_false());
    json_object_set_new(latest, "restored", r);
  }
  json_object_set_new(o, "latest", latest);
  json_t *sum = json_object();
  json_object_set_new(sum, "checkpointed_size", min_max_avg(size, nd));
  json_object_set_new(sum, "state_size", min_max_avg(full, nd));
  json_object_set_new(sum, "end_to_end_duration", min_max_avg(dur, nd));
  json_object_set_new(o, "summary", sum);
  json_object_set_new(o, "history", hist);
  return o;
}

/* ---------------------------------------------------------------------------------- */
/* Vertices: back pressure and watermarks                                               */

static const fl_node_t *find_vertex(fl_env_t *env, const char *vid) {
  for (size_t i = 0; i < env->n_nodes; i++) {
    char id[33];
    fl_rest_node_id(env->nodes[i], id);
    if (is_head(env->nodes[i]) && strcmp(id, vid) == 0) return env->nodes[i];
  }
  return NULL;
}

/* Flink's levels: a ratio above 0.5 is high, above 0.1 low, else ok. */
static const char *bp_level(double ratio) {
  return ratio > 0.5 ? "high" : ratio > 0.1 ? "low" : "ok";
}

static json_t *backpressure_json(fl_env_t *env, const fl_node_t *head) {
  json_t *o = json_object(), *subs = json_array();
  double worst = 0;
  int64_t updated = 0;
  for (int k = 0; k < env->conf.parallelism; k++) {
    fl_metrics_t *m = slot(head, k);
    if (!m) continue;
    double bp = atomic_load(&m->backpressured_ms_per_s) / 1000.0;
    double idle = atomic_load(&m->idle_ms_per_s) / 1000.0;
    double busy = atomic_load(&m->busy_ms_per_s) / 1000.0;
    int64_t u = atomic_load(&m->view_updated_ms);
    if (u > updated) updated = u;
    if (bp > worst) worst = bp;
    json_t *s = json_object();
    json_object_set_new(s, "subtask", json_integer(k));
    json_object_set_new(s, "attempt-number", json_integer(0));
    json_object_set_new(s, "backpressureLevel", json_string(bp_level(bp)));
    json_object_set_new(s, "ratio", json_real(bp));
    json_object_set_new(s, "idleRatio", json_real(idle));
    json_object_set_new(s, "busyRatio", json_real(busy));
    json_array_append_new(subs, s);
  }
  json_object_set_new(o, "status", json_string("ok"));
  json_object_set_new(o, "backpressureLevel", json_string(bp_level(worst)));
  json_object_set_new(o, "end-timestamp", json_integer(updated));
  json_object_set_new(o, "subtasks", subs);
  return o;
}

static json_t *wm_value(const char *id, int64_t v) {
  json_t *o = json_object();
  char buf[32];
  snprintf(buf, sizeof buf, "%lld", (long long)v);
  json_object_set_new(o, "id", json_string(id));
  json_object_set_new(o, "value", json_string(buf)); /* Flink's metric values are strings */
  return o;
}

static json_t *watermarks_json(fl_env_t *env, const fl_node_t *head) {
  json_t *a = json_array();
  for (int k = 0; k < env->conf.parallelism; k++) {
    fl_metrics_t *m = slot(head, k);
    if (!m) continue;
    char id[64];
    snprintf(id, sizeof id, "%d.currentInputWatermark", k);
    json_array_append_new(a, wm_value(id, atomic_load(&m->input_watermark)));
  }
  return a;
}

/* ---------------------------------------------------------------------------------- */
/* Job metrics by name                                                                  */

static const char *const JOB_METRICS[] = {"lastCheckpointDuration",
                                          "lastCheckpointSize",
                                          "lastCheckpointFullSize",
                                          "lastCompletedCheckpointId",
                                          "numberOfCompletedCheckpoints",
                                          "numberOfFailedCheckpoints",
                                          "numberOfInProgressCheckpoints",
                                          "totalNumberOfCheckpoints",
                                          "numRestarts",
                                          "uptime"};

static bool job_metric(fl_env_t *env, const char *name, int64_t *v) {
  int64_t done = atomic_load(&env->ckpt_stats.completed);
  int64_t failed = atomic_load(&env->ckpt_stats.failed);
  int64_t inprog = atomic_load(&env->ckpt_stats.in_progress);
  int64_t start = atomic_load(&env->start_ms), end = atomic_load(&env->end_ms);
  if (!strcmp(name, "lastCheckpointDuration"))
    *v = atomic_load(&env->ckpt_stats.last_duration_ms);
  else if (!strcmp(name, "lastCheckpointSize"))
    *v = atomic_load(&env->ckpt_stats.last_new_bytes);
  else if (!strcmp(name, "lastCheckpointFullSize"))
    *v = atomic_load(&env->ckpt_stats.last_size);
  else if (!strcmp(name, "lastCompletedCheckpointId"))
    *v = atomic_load(&env->ckpt_stats.last_id);
  else if (!strcmp(name, "numberOfCompletedCheckpoints"))
    *v = done;
  else if (!strcmp(name, "numberOfFailedCheckpoints"))
    *v = failed;
  else if (!strcmp(name, "numberOfInProgressCheckpoints"))
    *v = inprog;
  else if (!strcmp(name, "totalNumberOfCheckpoints"))
    *v = done + failed + inprog;
  else if (!strcmp(name, "numRestarts"))
    *v = atomic_load(&env->ckpt_stats.restarts);
  else if (!strcmp(name, "uptime"))
    *v = start ? (end ? end : fl_env_now(env)) - start : 0;
  else
    return false;
  return true;
}

static json_t *job_metrics_json(fl_env_t *env, const char *get) {
  json_t *a = json_array();
  if (!get) {
    for (size_t i = 0; i < sizeof JOB_METRICS / sizeof JOB_METRICS[0]; i++) {
      json_t *o = json_object();
      json_object_set_new(o, "id", json_string(JOB_METRICS[i]));
      json_array_append_new(a, o);
    }
    return a;
  }
  char names[1024];
  snprintf(names, sizeof names, "%s", get);
  char *save = NULL;
  for (char *t = strtok_r(names, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
    int64_t v;
    if (job_metric(env, t, &v)) json_array_append_new(a, wm_value(t, v));
  }
  return a;
}

static json_t *jobmanager_config(fl_env_t *env) {
  json_t *a = json_array();
  size_t n = 0;
  for (;; n++) {
    const char *k = NULL, *v = NULL;
    if (fl_config_entry(env->conf_copy, n, &k, &v)) break;
    json_t *o = json_object();
    json_object_set_new(o, "key", json_string(k));
    json_object_set_new(o, "value", json_string(fl_rest_secret_key(k) ? "******" : v));
    json_array_append_new(a, o);
  }
  return a;
}

/* ---------------------------------------------------------------------------------- */

bool fl_rest_error(fl_buf_t *out, const char *msg) {
  return fl_rest_printf(out, "{\"errors\":[") && fl_rest_json_str(out, msg) &&
         fl_rest_printf(out, "]}");
}

/* Splits path into at most n segments (modified in place); returns how many, or -1. */
static int split(char *path, char **seg, int n) {
  int k = 0;
  char *save = NULL;
  for (char *p = strtok_r(path, "/", &save); p; p = strtok_r(NULL, "/", &save)) {
    if (k == n) return -1;
    seg[k++] = p;
  }
  return k;
}

bool fl_rest_api_get(fl_env_t *env, const char *path, const char *get, int *status, fl_buf_t *out) {
  char copy[512];
  char *seg[8];
  *status = 200;
  json_t *body = NULL;
  int n = -1;
  if (strlen(path) < sizeof copy) {
    snprintf(copy, sizeof copy, "%s", path);
    n = split(copy, seg, 8);
  }
  bool job = n >= 2 && !strcmp(seg[0], "jobs") && strcmp(seg[1], "overview") != 0;
  if (job && strcmp(seg[1], env->job_id) != 0) {
    *status = 404;
    char msg[160];
    snprintf(msg, sizeof msg, "Job %.64s not found", seg[1]);
    return fl_rest_error(out, msg);
  }
  const fl_node_t *v =
      n == 5 && job && !strcmp(seg[2], "vertices") ? find_vertex(env, seg[3]) : NULL;
  if (n == 1 && !strcmp(seg[0], "config")) {
    body = json_object();
    json_object_set_new(body, "refresh-interval", json_integer(1000));
    json_object_set_new(body, "flink-version", json_string(fl_version_str()));
    json_object_set_new(body, "flink-revision", json_string("libflink"));
  } else if (n == 1 && !strcmp(seg[0], "jobs")) {
    body = json_pack("{s:[{s:s,s:s}]}", "jobs", "id", env->job_id, "status", job_state(env));
  } else if (n == 2 && !strcmp(seg[0], "jobs") && !strcmp(seg[1], "overview")) {
    body = json_pack("{s:[o]}", "jobs", jobs_overview(env));
  } else if (n == 2 && !strcmp(seg[0], "jobmanager") && !strcmp(seg[1], "config")) {
    body = jobmanager_config(env);
  } else if (job && n == 2) {
    body = job_details(env);
  } else if (job && n == 3 && !strcmp(seg[2], "plan")) {
    body = json_pack("{s:o}", "plan", plan_json(env));
  } else if (job && n == 3 && !strcmp(seg[2], "checkpoints")) {
    body = checkpoints_json(env);
  } else if (job && n == 3 && !strcmp(seg[2], "metrics")) {
    body = job_metrics_json(env, get);
  } else if (v && !strcmp(seg[4], "backpressure")) {
    body = backpressure_json(env, v);
  } else if (v && !strcmp(seg[4], "watermarks")) {
    body = watermarks_json(env, v);
  } else {
    *status = 404;
    return fl_rest_error(out, n >= 4 && job && !v ? "Vertex not found" : "Not found");
  }
  char *s = body ? json_dumps(body, JSON_COMPACT) : NULL;
  json_decref(body);
  if (!s) return false;
  bool ok = fl_buf_append(out, s, strlen(s)) == FL_OK;
  free(s);
  return ok;
}
