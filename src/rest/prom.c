/*
 * The Prometheus text exposition format 0.0.4 of a job's metrics, named as Flink's
 * PrometheusReporter names them, so that dashboards made for Flink work unchanged:
 *
 *   flink_<scope>_<metric>{<scope variables as labels>} value
 *
 * with the scopes jobmanager_job (checkpoints, restarts), taskmanager_job_task (busy,
 * idle and back-pressured time of a task = a chain of operators), taskmanager_job_task_
 * operator (records, watermarks, timers, RocksDB and user metrics) and taskmanager_job_
 * latency_source_id_operator_id_operator_subtask_index (latency markers). Flink exports
 * counters, gauges and meters as gauges and histograms as summaries; so does this. Every
 * family is written once, with HELP and TYPE, followed by all its samples. Label values
 * are escaped as the format requires (backslash, double quote, newline).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "graph/metrics.h"
#include "rest/rest.h"
#include "util/vec.h"

/* Appends a label value with the format's escapes; a byte that is not UTF-8 becomes
 * U+FFFD (Prometheus rejects a scrape with one). */
static bool label_value(fl_buf_t *b, const char *v) {
  bool ok = true;
  for (const unsigned char *p = (const unsigned char *)v; ok && *p;) {
    size_t n = fl_rest_utf8_len(p);
    if (*p == '\\')
      ok = fl_buf_append(b, "\\\\", 2) == FL_OK;
    else if (*p == '"')
      ok = fl_buf_append(b, "\\\"", 2) == FL_OK;
    else if (*p == '\n')
      ok = fl_buf_append(b, "\\n", 2) == FL_OK;
    else if (n == 0)
      ok = fl_buf_append(b, "\xef\xbf\xbd", 3) == FL_OK;
    else
      ok = fl_buf_append(b, p, n) == FL_OK;
    p += n ? n : 1;
  }
  return ok;
}

typedef struct labels {
  char text[2048]; /* k="v",k="v" (escaped) */
} labels_t;

static void labels_add(labels_t *l, const char *k, const char *v) {
  fl_buf_t b;
  fl_buf_init(&b);
  size_t at = strlen(l->text);
  bool ok = fl_rest_printf(&b, "%s%s=\"", at ? "," : "", k) && label_value(&b, v) &&
            fl_buf_append(&b, "\"", 1) == FL_OK;
  if (ok && at + b.len < sizeof l->text) {
    memcpy(l->text + at, b.data, b.len);
    l->text[at + b.len] = '\0';
  }
  fl_buf_free(&b);
}

/* A family's header. */
static bool family(fl_buf_t *b, const char *name, const char *type, const char *help) {
  return fl_rest_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static bool sample_i(fl_buf_t *b, const char *name, const labels_t *l, int64_t v) {
  return fl_rest_printf(b, "%s{%s} %" PRId64 "\n", name, l->text, v);
}

static bool sample_d(fl_buf_t *b, const char *name, const labels_t *l, double v) {
  return fl_rest_printf(b, "%s{%s} %.6g\n", name, l->text, v);
}

/* What every output of one scrape shares: the job's labels and each node's. */
typedef struct scrape {
  fl_env_t *env;
  labels_t job;   /* job_id, job_name, host */
  labels_t *task; /* [n_nodes * P]: job + tm_id, task ids and names, subtask_index */
  labels_t *oper; /* [n_nodes * P]: task + operator_id, operator_name */
  int P;
} scrape_t;

static bool scrape_init(scrape_t *s, fl_env_t *env) {
  memset(s, 0, sizeof *s);
  s->env = env;
  s->P = env->conf.parallelism;
  char host[256] = "localhost";
  gethostname(host, sizeof host - 1);
  const char *job_name = atomic_load(&env->job_name);
  labels_add(&s->job, "job_id", env->job_id);
  labels_add(&s->job, "job_name", job_name ? job_name : "");
  labels_add(&s->job, "host", host);
  size_t n = env->n_nodes * (size_t)s->P;
  s->task = calloc(n ? n : 1, sizeof *s->task);
  s->oper = calloc(n ? n : 1, sizeof *s->oper);
  if (!s->task || !s->oper) return false;
  for (size_t i = 0; i < env->n_nodes; i++) {
    const fl_node_t *node = env->nodes[i];
    const fl_node_t *head = fl_node_task_head(node);
    char tid[33], oid[33], tname[1024], sub[16];
    fl_rest_node_id(head, tid);
    fl_rest_node_id(node, oid);
    fl_rest_task_name(env, head, tname, sizeof tname);
    for (int k = 0; k < s->P; k++) {
      labels_t *t = &s->task[i * (size_t)s->P + (size_t)k];
      *t = s->job;
      labels_add(t, "tm_id", "local");
      labels_add(t, "task_id", tid);
      labels_add(t, "task_name", tname);
      snprintf(sub, sizeof sub, "%d", k);
      labels_add(t, "subtask_index", sub);
      labels_add(t, "task_attempt_num", "0");
      labels_t *o = &s->oper[i * (size_t)s->P + (size_t)k];
      *o = *t;
      labels_add(o, "operator_id", oid);
      labels_add(o, "operator_name", node->name);
    }
  }
  return true;
}

static void scrape_free(scrape_t *s) {
  free(s->task);
  free(s->oper);
}

static fl_metrics_t *slot(const scrape_t *s, size_t i, int k) {
  const fl_node_t *n = s->env->nodes[i];
  fl_metrics_t *m = FL_NODE_METRICS(n);
  return m && k < n->n_metrics ? &m[k] : NULL;
}

/* ---------------------------------------------------------------------------------- */
/* Operator and task metrics                                                            */

typedef enum {
  V_IN,
  V_OUT,
  V_IN_RATE,
  V_OUT_RATE,
  V_LATE,
  V_IWM,
  V_OWM,
  V_LAG,
  V_FIRED,
  V_FIRED_RATE,
  V_SYNC
} op_value_t;

static const struct {
  op_value_t v;
  const char *name, *help;
} OP_FAMILIES[] = {
    {V_IN, "numRecordsIn", "records this operator subtask received"},
    {V_OUT, "numRecordsOut", "records this operator subtask emitted"},
    {V_IN_RATE, "numRecordsInPerSecond", "records received per second"},
    {V_OUT_RATE, "numRecordsOutPerSecond", "records emitted per second"},
    {V_LATE, "numLateRecordsDropped", "records dropped because they arrived after the watermark"},
    {V_IWM, "currentInputWatermark", "the lowest watermark of the inputs, ms"},
    {V_OWM, "currentOutputWatermark", "the last watermark emitted, ms"},
    {V_LAG, "watermarkLag", "processing time minus the watermark, ms (sources and windows)"},
    {V_FIRED, "numFiredTimers", "timers fired"},
    {V_FIRED_RATE, "numFiredTimersPerSecond", "timers fired per second"},
    {V_SYNC, "checkpointSyncTime",
     "ns the synchronous part of the last checkpoint took at this operator subtask"},
};

/* Writes one operator sample, or nothing where the value does not exist. */
static bool op_sample(const scrape_t *s, fl_buf_t *b, const char *full, op_value_t v, size_t i,
                      int k, int64_t now) {
  fl_metrics_t *m = slot(s, i, k);
  if (!m) return true;
  const fl_node_t *n = s->env->nodes[i];
  const labels_t *l = &s->oper[i * (size_t)s->P + (size_t)k];
#define LD(f) atomic_load_explicit(&m->f, memory_order_relaxed)
  switch (v) {
  case V_IN: return sample_i(b, full, l, (int64_t)LD(records_in));
  case V_OUT: return sample_i(b, full, l, (int64_t)LD(records_out));
  case V_IN_RATE: return sample_d(b, full, l, LD(records_in_per_s));
  case V_OUT_RATE: return sample_d(b, full, l, LD(records_out_per_s));
  case V_LATE: return sample_i(b, full, l, (int64_t)LD(late_dropped));
  case V_IWM: return sample_i(b, full, l, LD(input_watermark));
  case V_OWM: return sample_i(b, full, l, LD(output_watermark));
  case V_LAG: {
    bool src = n->kind == FL_NODE_SOURCE;
    if (!src && n->kind != FL_NODE_WINDOW) return true;
    int64_t wm = src ? LD(output_watermark) : LD(input_watermark);
    if (wm == FL_TS_NONE || wm == FL_TS_MAX) return true;
    return sample_i(b, full, l, now - wm);
  }
  case V_FIRED: return sample_i(b, full, l, (int64_t)LD(fired_timers));
  case V_FIRED_RATE: return sample_d(b, full, l, LD(fired_timers_per_s));
  case V_SYNC: return sample_i(b, full, l, LD(sync_ns));
  }
#undef LD
  return true;
}

static bool operator_metrics(const scrape_t *s, fl_buf_t *b) {
  fl_env_t *env = s->env;
  int64_t now = fl_env_now(env);
  char full[256];
  for (size_t f = 0; f < sizeof OP_FAMILIES / sizeof OP_FAMILIES[0]; f++) {
    snprintf(full, sizeof full, "flink_taskmanager_job_task_operator_%s", OP_FAMILIES[f].name);
    if (!family(b, full, "gauge", OP_FAMILIES[f].help)) return false;
    for (size_t i = 0; i < env->n_nodes; i++)
      for (int k = 0; k < s->P; k++)
        if (!op_sample(s, b, full, OP_FAMILIES[f].v, i, k, now)) return false;
  }
  /* The state backend's statistics, where it has them. */
  static const char *const kv_names[] = {
#define FL_KV_STAT_NAME_(e, name, optin) name,
      FL_KV_STATS_MAP(FL_KV_STAT_NAME_)
#undef FL_KV_STAT_NAME_
  };
  for (int st = 0; st < FL_KV_STAT_N; st++) {
    bool any = false;
    for (size_t i = 0; i < env->n_nodes; i++)
      for (int k = 0; k < s->P; k++) {
        fl_metrics_t *m = slot(s, i, k);
        any |= m && atomic_load_explicit(&m->kv_stats[st], memory_order_relaxed) >= 0;
      }
    if (!any) continue;
    snprintf(full, sizeof full, "flink_taskmanager_job_task_operator_rocksdb_%s", kv_names[st]);
    fl_rest_prom_sanitize(full);
    char help[160];
    snprintf(help, sizeof help, "RocksDB property or statistic %s of this subtask's store",
             kv_names[st]);
    if (!family(b, full, "gauge", help)) return false;
    for (size_t i = 0; i < env->n_nodes; i++)
      for (int k = 0; k < s->P; k++) {
        fl_metrics_t *m = slot(s, i, k);
        int64_t v = m ? atomic_load_explicit(&m->kv_stats[st], memory_order_relaxed) : -1;
        if (v >= 0 && !sample_i(b, full, &s->oper[i * (size_t)s->P + (size_t)k], v)) return false;
      }
  }
  return true;
}

static const struct {
  const char *name, *help;
} TASK_FAMILIES[] = {
    {"busyTimeMsPerSecond", "ms per second the task was doing work"},
    {"idleTimeMsPerSecond", "ms per second the task had nothing to do"},
    {"backPressuredTimeMsPerSecond", "ms per second the task waited for a full output channel"},
    {"isBackPressured", "1 while an output channel of the task is full"},
    {"checkpointAlignmentTime", "ns the last checkpoint barrier alignment took"},
};

static bool task_metrics(const scrape_t *s, fl_buf_t *b) {
  fl_env_t *env = s->env;
  char full[256];
  for (size_t f = 0; f < sizeof TASK_FAMILIES / sizeof TASK_FAMILIES[0]; f++) {
    snprintf(full, sizeof full, "flink_taskmanager_job_task_%s", TASK_FAMILIES[f].name);
    if (!family(b, full, "gauge", TASK_FAMILIES[f].help)) return false;
    for (size_t i = 0; i < env->n_nodes; i++) {
      if (fl_node_task_head(env->nodes[i]) != env->nodes[i]) continue; /* one per task */
      for (int k = 0; k < s->P; k++) {
        fl_metrics_t *m = slot(s, i, k);
        if (!m) continue;
        const labels_t *l = &s->task[i * (size_t)s->P + (size_t)k];
        bool ok;
        switch (f) {
        case 0: ok = sample_d(b, full, l, atomic_load(&m->busy_ms_per_s)); break;
        case 1: ok = sample_d(b, full, l, atomic_load(&m->idle_ms_per_s)); break;
        case 2: ok = sample_d(b, full, l, atomic_load(&m->backpressured_ms_per_s)); break;
        case 3: ok = sample_i(b, full, l, atomic_load(&m->backpressured) ? 1 : 0); break;
        default: ok = sample_i(b, full, l, atomic_load(&m->alignment_ns)); break;
        }
        if (!ok) return false;
      }
    }
  }
  return true;
}

/* ---------------------------------------------------------------------------------- */
/* Histograms, latency and user metrics                                                 */

/* A summary's samples (Flink's histograms: quantiles of the values in the window, the
 * count of all updates, and their sum), each value divided by `scale`. */
static bool summary(fl_buf_t *b, const char *full, const labels_t *l, const fl_hist_t *h,
                    double scale) {
  fl_hist_stats_t st;
  fl_hist_read(h, &st);
  static const char *const q[] = {"0.5", "0.75", "0.95", "0.98", "0.99", "0.999"};
  double v[] = {st.p50, st.p75, st.p95, st.p98, st.p99, st.p999};
  for (int i = 0; i < 6; i++) {
    labels_t lq = *l;
    labels_add(&lq, "quantile", q[i]);
    if (st.n ? !sample_d(b, full, &lq, v[i] / scale)
             : !fl_rest_printf(b, "%s{%s} NaN\n", full, lq.text))
      return false;
  }
  return fl_rest_printf(b, "%s_count{%s} %" PRIu64 "\n%s_sum{%s} %.6g\n", full, l->text, st.count,
                        full, l->text, (double)st.sum / scale);
}

static bool latency_metrics(const scrape_t *s, fl_buf_t *b) {
  fl_env_t *env = s->env;
  const char *full =
      "flink_taskmanager_job_latency_source_id_operator_id_operator_subtask_index_latency";
  bool header = false;
  for (size_t i = 0; i < env->n_nodes; i++) {
    for (int k = 0; k < s->P; k++) {
      fl_metrics_t *m = slot(s, i, k);
      if (!m || !m->latency) continue;
      int src = 0;
      for (size_t j = 0; j < env->n_nodes && src < m->n_latency; j++) {
        const fl_node_t *sn = env->nodes[j];
        if (sn->kind != FL_NODE_SOURCE) continue;
        const fl_hist_t *h = &m->latency[src++];
        if (!atomic_load_explicit(&h->count, memory_order_relaxed)) continue;
        if (!header && !(header = family(b, full, "summary",
                                         "ms from a latency marker's source to this operator")))
          return false;
        labels_t l = s->job;
        char sid[33], oid[33], sub[16];
        fl_rest_node_id(sn, sid);
        fl_rest_node_id(env->nodes[i], oid);
        snprintf(sub, sizeof sub, "%d", k);
        labels_add(&l, "tm_id", "local");
        labels_add(&l, "source_id", sid);
        labels_add(&l, "operator_id", oid);
        labels_add(&l, "operator_subtask_index", sub);
        if (!summary(b, full, &l, h, 1e6)) return false;
      }
    }
  }
  return true;
}

/* The family name of a user metric: its mapped name, or "user_" + it when that is the
 * name of one of the library's families (a second TYPE line for a name would make
 * Prometheus reject the whole scrape). */
static void user_name(const fl_user_metric_t *um, fl_rest_metric_name_t *mn) {
  fl_rest_map_user_metric(um->name, mn);
  bool taken = !strncmp(mn->name, "rocksdb_", 8);
  for (size_t f = 0; f < sizeof OP_FAMILIES / sizeof OP_FAMILIES[0]; f++)
    taken |= !strcmp(mn->name, OP_FAMILIES[f].name);
  if (taken) {
    size_t len = strlen(mn->name);
    if (len > sizeof mn->name - 6) len = sizeof mn->name - 6;
    memmove(mn->name + 5, mn->name, len);
    memcpy(mn->name, "user_", 5);
    mn->name[len + 5] = '\0';
  }
}

/* One user metric of one subtask, with its family name: user_metrics sorts these, so that
 * a scrape costs O(n log n) in the number of metrics (a Kafka source has three per
 * partition), not O(n^2). */
typedef struct user_entry {
  const fl_user_metric_t *um;
  size_t slot; /* i * P + k: the subtask's labels */
  size_t seq;  /* position in the order of nodes, subtasks and registration */
  bool shadowed;
  fl_rest_metric_name_t mn;
} user_entry_t;

static int cmp_series(const void *a, const void *b) {
  const user_entry_t *x = *(user_entry_t *const *)a, *y = *(user_entry_t *const *)b;
  int c = strcmp(x->mn.name, y->mn.name);
  if (!c) c = (x->mn.n_labels > y->mn.n_labels) - (x->mn.n_labels < y->mn.n_labels);
  for (int q = 0; !c && q < x->mn.n_labels; q++) c = strcmp(x->mn.label_v[q], y->mn.label_v[q]);
  return c ? c : (x->seq > y->seq) - (x->seq < y->seq);
}

static int cmp_family(const void *a, const void *b) {
  const user_entry_t *x = *(user_entry_t *const *)a, *y = *(user_entry_t *const *)b;
  int c = strcmp(x->mn.name, y->mn.name);
  return c ? c : (x->seq > y->seq) - (x->seq < y->seq);
}

/* First entries of families, in the order the families first appear. */
static int cmp_seq(const void *a, const void *b) {
  const user_entry_t *x = **(user_entry_t *const *const *)a;
  const user_entry_t *y = **(user_entry_t *const *const *)b;
  return (x->seq > y->seq) - (x->seq < y->seq);
}

/* The user metrics of every subtask. Each distinct mapped name is one family, written
 * where it first appears (in the order of nodes, subtasks and registration) with the
 * type of that first metric, followed by every subtask's metrics of that name and type.
 * A metric with the series of an earlier one of its subtask (a counter and a gauge of
 * one name, or names that differ only in characters Prometheus does not allow) is left
 * out, as a series must appear once. */
static bool user_metrics(const scrape_t *s, fl_buf_t *b) {
  fl_env_t *env = s->env;
  user_entry_t *e = NULL;
  user_entry_t **by = NULL, ***fam = NULL;
  size_t n = 0, cap = 0, n_fam = 0;
  bool ok = false;
  for (size_t i = 0; i < env->n_nodes; i++) {
    for (int k = 0; k < s->P; k++) {
      fl_metrics_t *m = slot(s, i, k);
      fl_user_metrics_t *u = m ? atomic_load_explicit(&m->user, memory_order_acquire) : NULL;
      int nu = u ? atomic_load_explicit(&u->n, memory_order_acquire) : 0;
      if (FL_VEC_RESERVE(e, cap, n + (size_t)nu)) goto done;
      size_t first = n;
      for (int x = 0; x < nu; x++, n++) {
        e[n].um = fl_user_metric_at(u, x);
        e[n].slot = i * (size_t)s->P + (size_t)k;
        e[n].seq = n;
        e[n].shadowed = false;
        user_name(e[n].um, &e[n].mn);
      }
      /* a series that an earlier metric of this subtask has */
      user_entry_t **sub = malloc(((size_t)nu ? (size_t)nu : 1) * sizeof *sub);
      if (!sub) goto done;
      for (int x = 0; x < nu; x++) sub[x] = &e[first + (size_t)x];
      qsort(sub, (size_t)nu, sizeof *sub, cmp_series);
      for (int x = 1; x < nu; x++) {
        const user_entry_t *p = sub[x - 1], *q = sub[x];
        bool same = !strcmp(p->mn.name, q->mn.name) && p->mn.n_labels == q->mn.n_labels;
        for (int l = 0; same && l < q->mn.n_labels; l++)
          same = !strcmp(p->mn.label_v[l], q->mn.label_v[l]);
        sub[x]->shadowed = same;
      }
      free(sub);
    }
  }
  by = malloc((n ? n : 1) * sizeof *by);
  fam = malloc((n ? n : 1) * sizeof *fam);
  if (!by || !fam) goto done;
  for (size_t x = 0; x < n; x++) by[x] = &e[x];
  qsort(by, n, sizeof *by, cmp_family);
  for (size_t x = 0; x < n; x++)
    if (!x || strcmp(by[x - 1]->mn.name, by[x]->mn.name)) fam[n_fam++] = &by[x];
  qsort(fam, n_fam, sizeof *fam, cmp_seq);
  ok = true;
  for (size_t f = 0; ok && f < n_fam; f++) {
    user_entry_t **g = fam[f], **end = by + n;
    const fl_user_metric_t *head = g[0]->um;
    bool hist = head->kind == FL_UM_HISTOGRAM;
    char full[256], help[200];
    snprintf(full, sizeof full, "flink_taskmanager_job_task_operator_%s", g[0]->mn.name);
    snprintf(help, sizeof help, "user %s %s",
             hist                        ? "histogram"
             : head->kind == FL_UM_GAUGE ? "gauge"
                                         : "counter",
             head->name);
    for (char *c = help; *c; c++)
      if (*c == '\\' || *c == '\n') *c = '_';
    ok = family(b, full, hist ? "summary" : "gauge", help);
    for (; ok && g < end && !strcmp((*g)->mn.name, fam[f][0]->mn.name); g++) {
      const user_entry_t *x = *g;
      if (x->shadowed || (x->um->kind == FL_UM_HISTOGRAM) != hist) continue;
      labels_t l = s->oper[x->slot];
      for (int q = 0; q < x->mn.n_labels; q++) labels_add(&l, x->mn.label_k[q], x->mn.label_v[q]);
      if (hist)
        ok = summary(b, full, &l, x->um->hist, 1);
      else
        ok = sample_i(b, full, &l, atomic_load_explicit(&x->um->value, memory_order_relaxed));
    }
  }
done:
  free(e);
  free(by);
  free(fam);
  return ok;
}

/* ---------------------------------------------------------------------------------- */
/* Job metrics                                                                          */

static bool job_metrics(const scrape_t *s, fl_buf_t *b) {
  fl_env_t *env = s->env;
  int64_t start = atomic_load(&env->start_ms), end = atomic_load(&env->end_ms);
  int64_t uptime = start ? (end ? end : fl_env_now(env)) - start : 0;
  const struct {
    const char *name, *help;
    int64_t v;
  } jf[] = {
      {"lastCheckpointDuration", "ms the last completed checkpoint took",
       atomic_load(&env->ckpt_stats.last_duration_ms)},
      {"lastCheckpointSize", "bytes the last completed checkpoint wrote (incremental: new ones)",
       atomic_load(&env->ckpt_stats.last_new_bytes)},
      {"lastCheckpointFullSize", "bytes of state the last completed checkpoint holds",
       atomic_load(&env->ckpt_stats.last_size)},
      {"lastCompletedCheckpointId", "id of the last completed checkpoint",
       atomic_load(&env->ckpt_stats.last_id)},
      {"lastCheckpointRestoreTimestamp", "wall clock ms of the last restore, -1: none",
       atomic_load(&env->ckpt_stats.restored_ms) ? atomic_load(&env->ckpt_stats.restored_ms) : -1},
      {"numberOfCompletedCheckpoints", "checkpoints completed",
       atomic_load(&env->ckpt_stats.completed)},
      {"numberOfFailedCheckpoints", "checkpoints that failed or could not start",
       atomic_load(&env->ckpt_stats.failed)},
      {"numberOfInProgressCheckpoints", "checkpoints and savepoints in progress",
       atomic_load(&env->ckpt_stats.in_progress)},
      {"totalNumberOfCheckpoints", "checkpoints triggered",
       atomic_load(&env->ckpt_stats.completed) + atomic_load(&env->ckpt_stats.failed) +
           atomic_load(&env->ckpt_stats.in_progress)},
      {"numRestarts", "restarts of the job", atomic_load(&env->ckpt_stats.restarts)},
      {"uptime", "ms since the job started", uptime},
  };
  char full[256];
  for (size_t f = 0; f < sizeof jf / sizeof jf[0]; f++) {
    snprintf(full, sizeof full, "flink_jobmanager_job_%s", jf[f].name);
    if (!family(b, full, "gauge", jf[f].help) || !sample_i(b, full, &s->job, jf[f].v)) return false;
  }
  return true;
}

bool fl_rest_prometheus(fl_env_t *env, fl_buf_t *out) {
  scrape_t s;
  bool ok = scrape_init(&s, env) && job_metrics(&s, out) && task_metrics(&s, out) &&
            operator_metrics(&s, out) && latency_metrics(&s, out) && user_metrics(&s, out);
  scrape_free(&s);
  return ok;
}

char *fl_env_metrics_prometheus(fl_env_t *env) {
  if (!env) return NULL;
  fl_buf_t b;
  fl_buf_init(&b);
  if (!fl_rest_prometheus(env, &b) || fl_buf_append(&b, "", 1)) {
    fl_buf_free(&b);
    return NULL;
  }
  return (char *)b.data;
}
