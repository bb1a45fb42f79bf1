/*
 * A deterministic checkpointed job for the checkpoint, restart and crash tests, and the
 * independent computation of its exactly-once output.
 *
 * Input: record i (0 <= i < n) has key "k<(i * 7919) % keys>", amount i % 13 + 1 and
 * event time i ms, from a single-reader source whose position is the next index.
 * Job: keyBy key, then two branches, each into an exactly-once file sink:
 *  - "sums": a KeyedProcessFunction keeping count and sum in value state, emitting
 *    "key,count,sum" for every record (so a lost or doubled record changes the output);
 *  - "windows": 1 s tumbling event-time windows summing amounts, "key,start,sum".
 */
#ifndef FL_CKPT_JOB_H
#define FL_CKPT_JOB_H

#include <dirent.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "flink.h"
#include "fl_test_util.h"
#include "run_util.h"

typedef struct ckjob {
  int64_t n;
  int keys;
  /* the source waits before emitting record pause_at until resume is set (-1: never) */
  int64_t pause_at;
  _Atomic int paused;
  _Atomic int resume;
  /* the process function fails once, at this record (-1: never), if fail_flag is 0 */
  int64_t fail_at;
  _Atomic int fail_flag;
  /* records the source emits per run() call (small: more barrier points) */
  size_t budget;
  /* at most this many records per ms of wall time since the instance started (0: no
   * limit): makes a run last long enough to be killed in the middle */
  double rate_per_ms;
  fl_state_desc_t *count, *sum;
} ckjob_t;

typedef struct {
  int64_t next;
  ckjob_t *j;
  double t0_ms;
  int64_t emitted;
} ck_src_t;

static inline void ckjob_key(int64_t i, int keys, char *buf, size_t n) {
  snprintf(buf, n, "k%lld", (long long)((i * 7919) % keys));
}
static inline int64_t ckjob_amount(int64_t i) { return i % 13 + 1; }

static int ck_src_open(fl_context_t *ctx, void *opaque, void **inst) {
  ck_src_t *s = calloc(1, sizeof *s);
  if (!s) return FL_ENOMEM;
  s->j = opaque;
  *inst = s;
  return 0;
}
static int ck_src_run(fl_context_t *ctx, void *inst) {
  ck_src_t *s = inst;
  ckjob_t *j = s->j;
  size_t budget = fl_ctx_source_budget(ctx);
  if (j->budget && budget > j->budget) budget = j->budget;
  if (j->rate_per_ms > 0) {
    budget = paced_budget(budget, j->rate_per_ms, &s->t0_ms, s->emitted);
    if (budget == 0) return FL_SOURCE_WAIT;
    s->emitted += (int64_t)budget;
  }
  for (size_t b = 0; b < budget && s->next < j->n; b++) {
    if (s->next == j->pause_at && !atomic_load(&j->resume)) {
      atomic_store(&j->paused, 1);
      return FL_SOURCE_WAIT; /* no fd: asked again shortly */
    }
    char key[32], val[32];
    ckjob_key(s->next, j->keys, key, sizeof key);
    int vl = snprintf(val, sizeof val, "%lld", (long long)ckjob_amount(s->next));
    int rc = fl_emit(ctx, key, strlen(key), val, (size_t)vl, s->next);
    if (rc) return rc;
    s->next++;
  }
  return s->next < j->n ? FL_SOURCE_MORE : FL_SOURCE_END;
}
static void ck_src_close(void *inst) { free(inst); }
static int ck_src_snapshot(fl_context_t *ctx, void *inst, fl_buf_t *out) {
  ck_src_t *s = inst;
  return fl_buf_append(out, &s->next, sizeof s->next);
}
static int ck_src_restore(fl_context_t *ctx, void *inst, const fl_bytes_t *st, size_t n) {
  ck_src_t *s = inst;
  if (n != 1 || st[0].len != sizeof s->next) return fl_ctx_fail(ctx, "bad source state");
  memcpy(&s->next, st[0].data, sizeof s->next);
  return 0;
}

static int64_t ck_parse(const fl_record_t *in) {
  char buf[32];
  size_t n = in->value_len < sizeof buf - 1 ? in->value_len : sizeof buf - 1;
  memcpy(buf, in->value, n);
  buf[n] = 0;
  return atoll(buf);
}

static int ck_sum_process(fl_context_t *ctx, const fl_record_t *in, void *inst) {
  ckjob_t *j = inst;
  if (in->timestamp == j->fail_at && atomic_exchange(&j->fail_flag, 1) == 0)
    return fl_ctx_fail(ctx, "injected failure at record %lld", (long long)in->timestamp);
  const void *v;
  size_t vl;
  int64_t count = 0, sum = 0;
  if (fl_value_get(ctx, j->count, &v, &vl) == 1) memcpy(&count, v, sizeof count);
  if (fl_value_get(ctx, j->sum, &v, &vl) == 1) memcpy(&sum, v, sizeof sum);
  count++;
  sum += ck_parse(in);
  int rc = fl_value_set(ctx, j->count, &count, sizeof count);
  if (!rc) rc = fl_value_set(ctx, j->sum, &sum, sizeof sum);
  if (rc) return rc;
  char out[96];
  int n = snprintf(out, sizeof out, "%.*s,%lld,%lld", (int)in->key_len, (const char *)in->key,
                   (long long)count, (long long)sum);
  return fl_emit(ctx, in->key, in->key_len, out, (size_t)n, in->timestamp);
}

static int ck_win_sum(fl_context_t *ctx, const fl_window_t *w, const fl_record_t *el, size_t n,
                      void *opaque) {
  int64_t sum = 0;
  for (size_t i = 0; i < n; i++) sum += ck_parse(&el[i]);
  size_t kl;
  const char *key = fl_ctx_key(ctx, &kl);
  return emitf(ctx, w->end - 1, "%.*s,%lld,%lld", (int)kl, key, (long long)w->start,
               (long long)sum);
}

static int ck_key(fl_context_t *ctx, const fl_record_t *in, const void **key, size_t *len,
                  void *opaque) {
  *key = in->key;
  *len = in->key_len;
  return 0;
}

/* Builds the job on env; sink directories dir/sums and dir/windows. */
/* The job's single-reader source of j's records, named "gen". */
static inline fl_stream_t *ckjob_source(fl_env_t *env, ckjob_t *j) {
  static const fl_source_fn_t src = {.version = FL_SOURCE_FN_VERSION,
                                     .open = ck_src_open,
                                     .run = ck_src_run,
                                     .close = ck_src_close,
                                     .snapshot = ck_src_snapshot,
                                     .restore = ck_src_restore};
  return fl_source(env, "gen", &src, j, 0);
}

static inline void ckjob_build(fl_env_t *env, ckjob_t *j, const char *dir) {
  static const fl_process_fn_t proc = {.version = FL_PROCESS_FN_VERSION, .process = ck_sum_process};
  j->count = fl_state_value(env, "count");
  j->sum = fl_state_value(env, "sum");
  fl_stream_t *s = ckjob_source(env, j);
  fl_watermark_strategy_t ws = {.version = FL_WATERMARK_STRATEGY_VERSION,
                                .kind = FL_WATERMARKS_MONOTONOUS};
  s = fl_stream_assign_timestamps(s, "ts", &ws);
  fl_keyed_stream_t *ks = fl_stream_key_by(s, ck_key, NULL);
  fl_stream_t *sums = fl_keyed_process(ks, "sums", &proc, j);
  char path[4096];
  snprintf(path, sizeof path, "%s/sums", dir);
  fl_stream_sink_files(sums, "sums-sink", path);
  fl_windowed_stream_t *w = fl_window_tumbling(ks, FL_EVENT_TIME, 1000, 0);
  fl_stream_t *wins = fl_window_process(w, "windows", ck_win_sum, NULL);
  snprintf(path, sizeof path, "%s/windows", dir);
  fl_stream_sink_files(wins, "windows-sink", path);
}

/* ---- reading the committed output and the expected one ---- */

/* lines_t and its functions are run_util.h's; lines_add is lines_push under the name
 * these tests use. */
static inline void lines_add(lines_t *l, const char *s, size_t n) { lines_push(l, s, n); }

/* Every line of the committed files (names not starting with '.') of dir, sorted. */
static inline void read_committed(const char *dir, lines_t *out) {
  lines_add_committed(out, dir);
  lines_sort(out);
}

/* The output a run without failures commits, computed without the library. */
static inline void ckjob_expected(int64_t n, int keys, lines_t *sums, lines_t *wins) {
  int64_t *count = calloc((size_t)keys, sizeof *count);
  int64_t *sum = calloc((size_t)keys, sizeof *sum);
  int64_t *wsum = calloc((size_t)keys, sizeof *wsum);
  int64_t wstart = 0;
  char buf[96];
  for (int64_t i = 0; i <= n; i++) {
    if (i == n || i / 1000 * 1000 != wstart) {
      for (int k = 0; k < keys; k++)
        if (wsum[k]) {
          int len =
              snprintf(buf, sizeof buf, "k%d,%lld,%lld", k, (long long)wstart, (long long)wsum[k]);
          lines_add(wins, buf, (size_t)len);
          wsum[k] = 0;
        }
      wstart = i / 1000 * 1000;
    }
    if (i == n) break;
    int k = (int)((i * 7919) % keys);
    count[k]++;
    sum[k] += ckjob_amount(i);
    wsum[k] += ckjob_amount(i);
    int len = snprintf(buf, sizeof buf, "k%d,%lld,%lld", k, (long long)count[k], (long long)sum[k]);
    lines_add(sums, buf, (size_t)len);
  }
  free(count);
  free(sum);
  free(wsum);
  lines_sort(sums);
  lines_sort(wins);
}

/* 0 when a and b hold the same lines; else prints the first difference. */
static inline int lines_diff(const char *what, const lines_t *a, const lines_t *b) {
  size_t i = 0, j = 0;
  while (i < a->n || j < b->n) {
    int c = i == a->n ? 1 : j == b->n ? -1 : strcmp(a->v[i], b->v[j]);
    if (c != 0) {
      fprintf(
          stderr, "%s: %zu vs %zu lines; first difference: %s '%s'\n", what, a->n, b->n,
          c < 0 ? "only in the output:" : "missing from the output:", c < 0 ? a->v[i] : b->v[j]);
      return 1;
    }
    i++;
    j++;
  }
  return 0;
}

/* 0 when out/sums and out/windows hold exactly what a run over n records of `keys` keys
 * commits (ckjob_expected); else prints the first difference of each. */
static inline int ckjob_output_diff(const char *out, int64_t n, int keys) {
  lines_t sums = {0}, wins = {0}, esums = {0}, ewins = {0};
  char p[4200];
  snprintf(p, sizeof p, "%s/sums", out);
  read_committed(p, &sums);
  snprintf(p, sizeof p, "%s/windows", out);
  read_committed(p, &wins);
  ckjob_expected(n, keys, &esums, &ewins);
  int diff = lines_diff("sums", &sums, &esums);
  diff |= lines_diff("windows", &wins, &ewins);
  lines_free(&sums);
  lines_free(&wins);
  lines_free(&esums);
  lines_free(&ewins);
  return diff;
}

/* A case's checkpoint directory and output in the group's directory (run_util.h):
 * <g_tmpdir>/<name>-ckpts and <g_tmpdir>/<name>-out, each of 512 bytes. */
static inline void ckjob_paths(char *root, char *out, const char *name) {
  snprintf(root, 512, "%s/%s-ckpts", g_tmpdir, name);
  snprintf(out, 512, "%s/%s-out", g_tmpdir, name);
}

static inline void rm_rf(const char *path) {
  char cmd[4200];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", path);
  if (system(cmd) != 0) fprintf(stderr, "cannot remove %s\n", path);
}

/* Waits (up to timeout_ms, scaled) until the job's source waits at its pause and `want`
 * checkpoints under root are complete; whether both happened. The tests that stop,
 * resume or fail a paused job once it is checkpointed call it from a thread of theirs. */
static inline bool ckjob_wait_checkpointed(ckjob_t *j, const char *root, int want,
                                           int64_t timeout_ms) {
  int64_t deadline = deadline_in(timeout_ms);
  while (!atomic_load(&j->paused) && mono_ms() < deadline) pause_ms(1);
  while (complete_checkpoints(root, NULL) < want && mono_ms() < deadline) pause_ms(1);
  return atomic_load(&j->paused) && complete_checkpoints(root, NULL) >= want;
}

/* What ckjob_execute_paused does once the job is paused and checkpointed. */
typedef enum {
  CKJOB_STOP,
  CKJOB_RESUME
} ckjob_then_t;

typedef struct {
  fl_env_t *env;
  ckjob_t *j;
  const char *root;
  int want;
  ckjob_then_t then;
  bool checkpointed;
} ckjob_watch_t;

static inline void *ckjob_watch(void *arg) {
  ckjob_watch_t *w = arg;
  w->checkpointed = ckjob_wait_checkpointed(w->j, w->root, w->want, 30000);
  if (w->then == CKJOB_STOP)
    fl_env_stop(w->env); /* as Ctrl-C would */
  else
    atomic_store(&w->j->resume, 1);
  return NULL;
}

/* Executes env's job (named name, j's job with a pause_at) while a thread of its own waits
 * until the source waits at its pause and `want` checkpoints under root are complete,
 * then stops the job or lets the source go on (then). Returns fl_env_execute's code;
 * *checkpointed tells whether the pause and the checkpoints came in time. */
static inline int ckjob_execute_paused(fl_env_t *env, ckjob_t *j, const char *root, int want,
                                       ckjob_then_t then, const char *name, bool *checkpointed) {
  ckjob_watch_t w = {.env = env, .j = j, .root = root, .want = want, .then = then};
  pthread_t t;
  assert_int_equal(pthread_create(&t, NULL, ckjob_watch, &w), 0);
  int rc = fl_env_execute(env, name);
  pthread_join(t, NULL);
  *checkpointed = w.checkpointed;
  return rc;
}

#endif
