/* Two-input operators through the public API: keyed and non-keyed connect, window join
 * (tumbling, sliding, session, processing time, lateness), interval join (bounds,
 * lateness, side outputs, state cleanup) and broadcast state, plus builder errors.
 *
 * Expected outputs are derived by hand from Flink's rules (comments give the watermark
 * reasoning), or computed independently from the inputs by a model in the test.
 *
 * Exact traces need a deterministic interleaving of the two inputs. At parallelism 1
 * with execution.batch-size 1 it is: the worker drains its channels, then polls each
 * source once, and a source emits one record per poll; so per loop iteration source A
 * emits one record, then source B one, and the operator sees them in that order at the
 * next iteration, each followed by its watermark (bounded out-of-orderness D: wm =
 * max_ts - D - 1 after every record). Tests at parallelism 2 and 4 use inputs without
 * late elements, whose output does not depend on the interleaving. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>
#include <jansson.h>

#include "fl_test_util.h"
#include "run_util.h"
#include "operators/two_input.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

/* ---------------------------------------------------------------------------------- */
/* Helpers                                                                              */

typedef struct ev {
  const char *key;
  const char *val;
  int64_t ts;
} ev_t;

/* The state backend of the next environments (NULL: the default). */
static const char *g_backend;

static fl_env_t *new_env(int parallelism, int batch_size) {
  char par[16], batch[16];
  const char *kv[9] = {"parallelism", par, "pipeline.auto-watermark-interval", "0"};
  size_t n = 4;
  snprintf(par, sizeof par, "%d", parallelism);
  if (g_backend) {
    kv[n++] = "state.backend";
    kv[n++] = g_backend;
  }
  if (batch_size > 0) {
    snprintf(batch, sizeof batch, "%d", batch_size);
    kv[n++] = "execution.batch-size";
    kv[n++] = batch;
  }
  return env_of(kv);
}

/* A bounded single-reader source of the events, with bounded out-of-orderness ooo. */
static fl_stream_t *events(fl_env_t *env, const char *name, const ev_t *ev, size_t n, int64_t ooo) {
  fl_record_t *r = calloc(n ? n : 1, sizeof *r);
  assert_non_null(r);
  for (size_t i = 0; i < n; i++) r[i] = rec_str(ev[i].key, ev[i].val, ev[i].ts);
  fl_stream_t *s = fl_source_collection(env, name, r, n);
  free(r);
  char tsname[64];
  snprintf(tsname, sizeof tsname, "%s-ts", name);
  fl_watermark_strategy_t ws = {
      FL_WATERMARK_STRATEGY_VERSION, FL_WATERMARKS_BOUNDED, ooo, 0, NULL, NULL};
  return fl_stream_assign_timestamps(s, tsname, &ws);
}

/* A key selector that is not the identity on the record: the key is the text before
 * '/' in the value when there is one (the second input of some tests carries it
 * there), else the record key. */
static int key_from_value(fl_context_t *ctx, const fl_record_t *in, const void **key,
                          size_t *key_len, void *opaque) {
  (void)ctx;
  (void)opaque;
  const char *v = in->value;
  const char *slash = in->value_len ? memchr(v, '/', in->value_len) : NULL;
  if (slash) {
    *key = v;
    *key_len = (size_t)(slash - v);
  } else {
    *key = in->key;
    *key_len = in->key_len;
  }
  return 0;
}

static char *rec_text(const col_rec_t *r) {
  char *s = malloc(r->key_len + r->value_len + 48);
  assert_non_null(s);
  sprintf(s, "%s|%s|%lld", r->key, r->value, (long long)r->ts);
  return s;
}

static void print_got(const lines_t *got) {
  for (size_t i = 0; i < got->n; i++) print_message("  got[%zu] %s\n", i, got->v[i]);
}

/* The collector holds exactly want ("key|value|ts"): in this order when ordered, else
 * in any order (as multisets, assert_same_lines). */
static void expect_out(collector_t *c, const char *const *want, size_t n, bool ordered) {
  lines_t got = {0};
  for (size_t i = 0; i < c->n; i++) {
    char *s = rec_text(&c->r[i]);
    lines_push(&got, s, strlen(s));
    free(s);
  }
  if (!ordered) {
    assert_same_lines("the records", &got, want, n);
  } else {
    if (got.n != n) {
      print_got(&got);
      fail_msg("got %zu records, want %zu", got.n, n);
    }
    for (size_t i = 0; i < n; i++) {
      if (strcmp(got.v[i], want[i]) != 0) {
        print_got(&got);
        fail_msg("record %zu: got '%s', want '%s'", i, got.v[i], want[i]);
      }
    }
  }
  lines_free(&got);
}

static int discard_write(fl_context_t *ctx, const fl_record_t *in, void *inst) {
  (void)ctx;
  (void)in;
  (void)inst;
  return 0;
}
static const fl_sink_fn_t discard_sink = {.version = FL_SINK_FN_VERSION, .write = discard_write};

static void expect_build_error(fl_env_t *env, const char *needle1, const char *needle2) {
  int rc = fl_env_execute(env, "test_two_input");
  assert_int_equal(rc, FL_EINVAL);
  const char *msg = fl_env_error(env);
  if (!strstr(msg, needle1) || (needle2 && !strstr(msg, needle2)))
    fail_msg("error '%s' does not name '%s' and '%s'", msg, needle1, needle2 ? needle2 : "");
}

static int64_t parse_i64(const void *p, size_t len) {
  char buf[32];
  assert_true(len < sizeof buf);
  memcpy(buf, p, len);
  buf[len] = 0;
  return strtoll(buf, NULL, 10);
}

/* Checks made inside user functions, on worker threads, are counted here and asserted
 * by the test on its own thread once the job has run. */
static atomic_int g_bad;
#define EXPECT_RC(expr, want)                                                             \
  do {                                                                                    \
    int rc_ = (expr);                                                                     \
    if (rc_ != (want)) {                                                                  \
      atomic_fetch_add(&g_bad, 1);                                                        \
      fprintf(stderr, "%s:%d: %s returned %d, want %d\n", __FILE__, __LINE__, #expr, rc_, \
              (int)(want));                                                               \
    }                                                                                     \
  } while (0)

static const char *wm_text(int64_t wm, char *buf) {
  if (wm == FL_TS_NONE) return "none";
  if (wm == FL_TS_MAX) return "max";
  sprintf(buf, "%lld", (long long)wm);
  return buf;
}

/* ---------------------------------------------------------------------------------- */
/* Keyed connect                                                                        */

/* State shared by both inputs: the per-key sums of each input's values. */
typedef struct sums {
  int64_t sum1, sum2, n1, n2;
} sums_t;

static fl_state_desc_t *g_sums;

static int add_sum(fl_context_t *ctx, const fl_record_t *in, int which) {
  sums_t s = {0, 0, 0, 0};
  const void *v = NULL;
  size_t len = 0;
  int rc = fl_value_get(ctx, g_sums, &v, &len);
  if (rc < 0) return rc;
  if (rc == 1) {
    assert_int_equal(len, sizeof s);
    memcpy(&s, v, sizeof s);
  }
  const char *val = in->value;
  const char *slash = memchr(val, '/', in->value_len);
  size_t off = slash ? (size_t)(slash - val) + 1 : 0;
  int64_t x = parse_i64(val + off, in->value_len - off);
  if (which == 1) {
    s.sum1 += x;
    s.n1++;
  } else {
    s.sum2 += x;
    s.n2++;
  }
  rc = fl_value_set(ctx, g_sums, &s, sizeof s);
  if (rc) return rc;
  return fl_timer_register(ctx, FL_EVENT_TIME, 1000);
}

static int sums_p1(fl_context_t *ctx, const fl_record_t *in, void *inst) {
  (void)inst;
  return add_sum(ctx, in, 1);
}
static int sums_p2(fl_context_t *ctx, const fl_record_t *in, void *inst) {
  (void)inst;
  return add_sum(ctx, in, 2);
}

static int sums_timer(fl_context_t *ctx, int64_t ts, fl_time_domain_t d, void *inst) {
  (void)inst;
  assert_int_equal(d, FL_EVENT_TIME);
  assert_true(fl_ctx_timestamp(ctx) == ts);
  const void *v = NULL;
  size_t len = 0;
  assert_int_equal(fl_value_get(ctx, g_sums, &v, &len), 1);
  sums_t s;
  memcpy(&s, v, sizeof s);
  return emitf(ctx, ts, "%lld,%lld,%lld,%lld", (long long)s.n1, (long long)s.sum1, (long long)s.n2,
               (long long)s.sum2);
}

static void keyed_connect_shares_state_and_timers_per_key_at(int parallelism) {
  /* The second input carries its key in the value ("k/value") and a meaningless record
   * key: only its key selector routes it. */
  static const ev_t a[] = {{"k1", "1", 1}, {"k2", "2", 2},  {"k1", "3", 3}, {"k4", "4", 4},
                           {"k3", "5", 5}, {"k1", "6", 6},  {"k5", "7", 7}, {"k2", "8", 8},
                           {"k6", "9", 9}, {"k7", "10", 10}};
  static const ev_t b[] = {{"x", "k1/100", 1}, {"y", "k3/200", 2}, {"z", "k1/300", 3},
                           {"x", "k2/400", 4}, {"x", "k8/500", 5}, {"q", "k7/600", 6}};
  /* The model: per key, count and sum of each input. */
  const char *keys[] = {"k1", "k2", "k3", "k4", "k5", "k6", "k7", "k8"};
  char want[8][64];
  const char *wantp[8];
  for (size_t k = 0; k < N(keys); k++) {
    long long n1 = 0, s1 = 0, n2 = 0, s2 = 0;
    for (size_t i = 0; i < N(a); i++)
      if (strcmp(a[i].key, keys[k]) == 0) n1++, s1 += atoll(a[i].val);
    for (size_t i = 0; i < N(b); i++)
      if (strncmp(b[i].val, keys[k], 2) == 0) n2++, s2 += atoll(b[i].val + 3);
    snprintf(want[k], sizeof want[k], "%s|%lld,%lld,%lld,%lld|1000", keys[k], n1, s1, n2, s2);
    wantp[k] = want[k];
  }

  fl_env_t *env = new_env(parallelism, 0);
  g_sums = fl_state_value(env, "sums");
  fl_keyed_stream_t *ka = fl_stream_key_by(events(env, "a", a, N(a), 0), NULL, NULL);
  fl_keyed_stream_t *kb = fl_stream_key_by(events(env, "b", b, N(b), 0), key_from_value, NULL);
  fl_co_process_fn_t fn = {
      FL_CO_PROCESS_FN_VERSION, NULL, sums_p1, sums_p2, sums_timer, NULL, NULL};
  fl_stream_t *out = fl_keyed_connect_process(ka, kb, "co", &fn, NULL);
  assert_non_null(out);
  collector_t c;
  sink_into(out, &c);
  execute_ok(env, "test_two_input");
  /* One timer per key although every record registered it: one output per key. */
  expect_out(&c, wantp, N(wantp), false);
  assert_int_equal(op_metric(env, "co", "records_in"), N(a) + N(b));
  collector_free(&c);
  fl_env_destroy(env);
}

static void keyed_connect_shares_state_and_timers_per_key(void **state) {
  (void)state;
  keyed_connect_shares_state_and_timers_per_key_at(1);
  keyed_connect_shares_state_and_timers_per_key_at(2);
  keyed_connect_shares_state_and_timers_per_key_at(4);
}

/* Trace of calls with the operator's watermark; the timer at 15 is registered by the
 * first input's record at 10. */
static int trace_p1(fl_context_t *ctx, const fl_record_t *in, void *inst) {
  (void)inst;
  char b[32];
  int rc = add_sum(ctx, in, 1);
  if (rc) return rc;
  if (in->timestamp == 10) rc = fl_timer_register(ctx, FL_EVENT_TIME, 15);
  if (rc) return rc;
  return emitf(ctx, in->timestamp, "p1:%lld wm=%s", (long long)in->timestamp,
               wm_text(fl_ctx_watermark(ctx), b));
}

static int trace_p2(fl_context_t *ctx, const fl_record_t *in, void *inst) {
  (void)inst;
  char b[32];
  int rc = add_sum(ctx, in, 2);
  if (rc) return rc;
  return emitf(ctx, in->timestamp, "p2:%lld wm=%s", (long long)in->timestamp,
               wm_text(fl_ctx_watermark(ctx), b));
}

static int trace_timer(fl_context_t *ctx, int64_t ts, fl_time_domain_t d, void *inst) {
  (void)inst;
  (void)d;
  if (ts == 1000) return 0; /* add_sum's timer */
  char b[32];
  const void *v = NULL;
  size_t len = 0;
  assert_int_equal(fl_value_get(ctx, g_sums, &v, &len), 1);
  sums_t s;
  memcpy(&s, v, sizeof s);
  return emitf(ctx, ts, "t:%lld wm=%s sum=%lld", (long long)ts, wm_text(fl_ctx_watermark(ctx), b),
               (long long)(s.sum1 + s.sum2));
}

static void keyed_connect_timer_waits_for_both_watermarks(void **state) {
  (void)state;
  static const ev_t a[] = {{"k", "10", 10}, {"k", "20", 20}, {"k", "30", 30}, {"k", "50", 50}};
  static const ev_t b[] = {{"k", "5", 5}, {"k", "40", 40}};
  fl_env_t *env = new_env(1, 1);
  g_sums = fl_state_value(env, "sums");
  fl_keyed_stream_t *ka = fl_stream_key_by(events(env, "a", a, N(a), 0), NULL, NULL);
  fl_keyed_stream_t *kb = fl_stream_key_by(events(env, "b", b, N(b), 0), NULL, NULL);
  fl_co_process_fn_t fn = {
      FL_CO_PROCESS_FN_VERSION, NULL, trace_p1, trace_p2, trace_timer, NULL, NULL};
  fl_stream_t *out = fl_keyed_connect_process(ka, kb, "co", &fn, NULL);
  collector_t c;
  sink_into(out, &c);
  execute_ok(env, "test_two_input");
  /* Interleaving a10 b5 a20 b40 a30 a50. The first input's watermark passes 15 with
   * a20 (wm 19), but the second's is 4 until b40 (wm 39): only then is the operator's
   * watermark min(19, 39) = 19 and the timer fires, seeing the state both inputs
   * wrote: 10 + 5 + 20 + 40. */
  static const char *const want[] = {
      "k|p1:10 wm=none|10",     "k|p2:5 wm=none|5", "k|p1:20 wm=4|20", "k|p2:40 wm=4|40",
      "k|t:15 wm=19 sum=75|15", "k|p1:30 wm=19|30", "k|p1:50 wm=29|50"};
  expect_out(&c, want, N(want), true);
  collector_free(&c);
  fl_env_destroy(env);
}

/* A source that emits its events, then waits until released (or a real-time deadline,
 * so a broken idleness fails the test instead of hanging it). */
typedef struct ctl_src {
  const ev_t *ev;
  size_t n, next;
  atomic_int *release;
  struct timespec deadline;
} ctl_src_t;

static bool past(const struct timespec *d) {
  struct timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  return now.tv_sec > d->tv_sec || (now.tv_sec == d->tv_sec && now.tv_nsec >= d->tv_nsec);
}

static int ctl_run(fl_context_t *ctx, void *inst) {
  ctl_src_t *s = inst;
  if (s->next < s->n) {
    const ev_t *e = &s->ev[s->next++];
    fl_record_t r = rec_str(e->key, e->val, e->ts);
    int rc = fl_emit_record(ctx, &r);
    return rc ? rc : FL_SOURCE_MORE;
  }
  if (atomic_load(s->release) || past(&s->deadline)) return FL_SOURCE_END;
  return FL_SOURCE_WAIT;
}

static atomic_int g_release;

static int idle_timer(fl_context_t *ctx, int64_t ts, fl_time_domain_t d, void *inst) {
  (void)inst;
  (void)d;
  if (ts == 1000) return 0;
  char b[32];
  atomic_store(&g_release, 1);
  return emitf(ctx, ts, "t:%lld wm=%s", (long long)ts, wm_text(fl_ctx_watermark(ctx), b));
}

static void keyed_connect_idle_input_does_not_hold_the_watermark_at(int parallelism) {
  static const ev_t a[] = {{"k", "10", 10}, {"k", "20", 20}};
  static const ev_t b[] = {{"k", "5", 5}};
  atomic_store(&g_release, 0);
  atomic_store(&g_tick_ms, 0);
  struct timespec dl;
  clock_gettime(CLOCK_MONOTONIC, &dl);
  dl.tv_sec += (time_t)(10 * timeout_scale());
  ctl_src_t sa = {a, N(a), 0, &g_release, dl}, sb = {b, N(b), 0, &g_release, dl};
  fl_env_t *env = new_env(parallelism, 0);
  assert_int_equal(fl_env_set_clock(env, ticking_clock, NULL), 0);
  g_sums = fl_state_value(env, "sums");
  fl_source_fn_t src = {.version = FL_SOURCE_FN_VERSION, .run = ctl_run};
  fl_watermark_strategy_t busy = {
      FL_WATERMARK_STRATEGY_VERSION, FL_WATERMARKS_BOUNDED, 0, 0, NULL, NULL};
  fl_watermark_strategy_t idle = busy;
  idle.idle_timeout_ms = 50; /* of the ticking clock: a few dozen loop iterations */
  fl_stream_t *a_s = fl_stream_assign_timestamps(fl_source(env, "a", &src, &sa, 0), "a-ts", &busy);
  fl_stream_t *b_s = fl_stream_assign_timestamps(fl_source(env, "b", &src, &sb, 0), "b-ts", &idle);
  fl_co_process_fn_t fn = {
      FL_CO_PROCESS_FN_VERSION, NULL, trace_p1, trace_p2, idle_timer, NULL, NULL};
  fl_stream_t *out = fl_keyed_connect_process(fl_stream_key_by(a_s, NULL, NULL),
                                              fl_stream_key_by(b_s, NULL, NULL), "co", &fn, NULL);
  collector_t c;
  sink_into(out, &c);
  execute_ok(env, "test_two_input");
  /* b stays at watermark 4; once it is idle the operator follows a alone (19) and the
   * timer at 15 fires while both sources are still running. Without idleness it would
   * fire only at the end of input (wm=max). */
  bool fired = false;
  for (size_t i = 0; i < c.n; i++) {
    if (strncmp(c.r[i].value, "t:", 2) == 0) {
      assert_string_equal(c.r[i].value, "t:15 wm=19");
      fired = true;
    }
  }
  assert_true(fired);
  collector_free(&c);
  fl_env_destroy(env);
}

static void keyed_connect_idle_input_does_not_hold_the_watermark(void **state) {
  (void)state;
  keyed_connect_idle_input_does_not_hold_the_watermark_at(1);
  keyed_connect_idle_input_does_not_hold_the_watermark_at(2);
}

/* ---------------------------------------------------------------------------------- */
/* Non-keyed connect                                                                    */

static fl_state_desc_t *g_value;

static int plain_p(fl_context_t *ctx, const fl_record_t *in, int which) {
  const void *v;
  size_t len;
  /* No key context: keyed state and timers are refused. */
  EXPECT_RC(fl_value_get(ctx, g_value, &v, &len), FL_ESTATE);
  EXPECT_RC(fl_timer_register(ctx, FL_EVENT_TIME, 5), FL_ESTATE);
  assert_null(fl_ctx_key(ctx, NULL));
  char buf[64];
  int n = snprintf(buf, sizeof buf, "%d:%.*s", which, (int)in->value_len, (const char *)in->value);
  return fl_emit(ctx, in->key, in->key_len, buf, (size_t)n, fl_ctx_timestamp(ctx));
}
static int plain_p1(fl_context_t *ctx, const fl_record_t *in, void *inst) {
  (void)inst;
  return plain_p(ctx, in, 1);
}
static int plain_p2(fl_context_t *ctx, const fl_record_t *in, void *inst) {
  (void)inst;
  return plain_p(ctx, in, 2);
}

static atomic_int g_opened, g_closed, g_destroyed;
static int count_open(fl_context_t *ctx, void *opaque, void **inst) {
  (void)ctx;
  atomic_fetch_add(&g_opened, 1);
  *inst = opaque;
  return 0;
}
static void count_close(void *inst) {
  (void)inst;
  atomic_fetch_add(&g_closed, 1);
}
static void count_destroy(void *opaque) {
  assert_ptr_equal(opaque, &g_destroyed);
  atomic_fetch_add(&g_destroyed, 1);
}

static void connect_routes_each_input_to_its_function_at(int parallelism) {
  atomic_store(&g_bad, 0);
  static const ev_t a[] = {{"x", "a1", 1}, {"y", "a2", 2}, {"z", "a3", 3}};
  static const ev_t b[] = {{"x", "b1", 1}, {"w", "b2", 2}};
  atomic_store(&g_opened, 0);
  atomic_store(&g_closed, 0);
  atomic_store(&g_destroyed, 0);
  fl_env_t *env = new_env(parallelism, 0);
  g_value = fl_state_value(env, "v");
  fl_co_process_fn_t fn = {
      FL_CO_PROCESS_FN_VERSION, count_open, plain_p1, plain_p2, NULL, count_close, count_destroy};
  /* The second input is rebalanced: each input keeps its own partitioning. */
  fl_stream_t *out = fl_connect_process(events(env, "a", a, N(a), 0),
                                        fl_stream_rebalance(events(env, "b", b, N(b), 0)), "co",
                                        &fn, &g_destroyed);
  collector_t c;
  sink_into(out, &c);
  execute_ok(env, "test_two_input");
  assert_int_equal(atomic_load(&g_bad), 0);
  static const char *const want[] = {"x|1:a1|1", "y|1:a2|2", "z|1:a3|3", "x|2:b1|1", "w|2:b2|2"};
  expect_out(&c, want, N(want), false);
  /* One instance per subtask, closed once each; the table destroyed with the env. */
  assert_int_equal(atomic_load(&g_opened), parallelism);
  assert_int_equal(atomic_load(&g_closed), parallelism);
  assert_int_equal(atomic_load(&g_destroyed), 0);
  collector_free(&c);
  fl_env_destroy(env);
  assert_int_equal(atomic_load(&g_destroyed), 1);
}

static void connect_routes_each_input_to_its_function(void **state) {
  (void)state;
  connect_routes_each_input_to_its_function_at(1);
  connect_routes_each_input_to_its_function_at(2);
}

/* ---------------------------------------------------------------------------------- */
/* Window join                                                                          */

/* Emits "a@ts+b@ts" at fl_ctx_timestamp(). */
static int pair_fn(fl_context_t *ctx, const fl_record_t *a, const fl_record_t *b, void *opaque) {
  (void)opaque;
  size_t kl = 0;
  const void *k = fl_ctx_key(ctx, &kl);
  assert_non_null(k);
  assert_int_equal(a->key_len, kl);
  assert_int_equal(b->key_len, kl);
  assert_memory_equal(a->key, k, kl);
  assert_memory_equal(b->key, k, kl);
  return emitf(ctx, fl_ctx_timestamp(ctx), "%.*s@%lld+%.*s@%lld", (int)a->value_len,
               (const char *)a->value, (long long)a->timestamp, (int)b->value_len,
               (const char *)b->value, (long long)b->timestamp);
}

typedef struct join_run {
  collector_t out;
  int64_t late;
} join_run_t;

static void run_window_join(const ev_t *a, size_t na, const ev_t *b, size_t nb,
                            const fl_window_assigner_t *w, int parallelism, int batch, int64_t ooo,
                            join_run_t *res) {
  fl_env_t *env = new_env(parallelism, batch);
  fl_keyed_stream_t *ka = fl_stream_key_by(events(env, "a", a, na, ooo), NULL, NULL);
  fl_keyed_stream_t *kb = fl_stream_key_by(events(env, "b", b, nb, ooo), key_from_value, NULL);
  fl_stream_t *out = fl_window_join(ka, kb, "join", w, pair_fn, NULL);
  assert_non_null(out);
  collector_init(&res->out);
  assert_int_equal(fl_stream_sink(out, "sink", &collector_sink, &res->out), 0);
  execute_ok(env, "test_two_input");
  res->late = op_metric(env, "join", "late_records_dropped");
  fl_env_destroy(env);
}

static fl_window_assigner_t tumbling(int64_t size) {
  fl_window_assigner_t w = {FL_ASSIGNER_TUMBLING, FL_EVENT_TIME, size, 0, 0, 0};
  return w;
}

static void window_join_tumbling_pairs_same_key_same_window(void **state) {
  (void)state;
  static const ev_t a[] = {{"k1", "a1", 1}, {"k1", "a2", 5}, {"k2", "a3", 3}, {"k1", "a4", 12}};
  static const ev_t b[] = {{"k1", "b1", 2}, {"k1", "b2", 11}, {"k2", "b3", 15}, {"k3", "b4", 4}};
  /* [0,10): k1 a1,a2 x b1; k2 a3 alone (b3 is in [10,20)); k3 b4 alone.
   * [10,20): k1 a4 x b2; k2 b3 alone. Results at window end - 1. */
  static const char *const want[] = {"k1|a1@1+b1@2|9", "k1|a2@5+b1@2|9", "k1|a4@12+b2@11|19"};
  fl_window_assigner_t w = tumbling(10);
  for (int p = 1; p <= 4; p *= 2) {
    join_run_t r;
    run_window_join(a, N(a), b, N(b), &w, p, 0, 100, &r);
    expect_out(&r.out, want, N(want), false);
    assert_int_equal(r.late, 0);
    collector_free(&r.out);
  }
}

static void window_join_sliding_pair_once_per_common_window(void **state) {
  (void)state;
  static const ev_t a[] = {{"k", "a3", 3}, {"k", "a7", 7}};
  static const ev_t b[] = {{"k", "b6", 6}, {"k", "b12", 12}};
  /* Size 10, slide 5. 3: [-5,5) [0,10); 7 and 6: [0,10) [5,15); 12: [5,15) [10,20).
   * [0,10): a3,a7 x b6; [5,15): a7 x b6,b12; the others hold one side only. a7+b6 is
   * in two windows and appears twice. */
  static const char *const want[] = {"k|a3@3+b6@6|9", "k|a7@7+b6@6|9", "k|a7@7+b6@6|14",
                                     "k|a7@7+b12@12|14"};
  fl_window_assigner_t w = {FL_ASSIGNER_SLIDING, FL_EVENT_TIME, 10, 5, 0, 0};
  for (int p = 1; p <= 2; p++) {
    join_run_t r;
    run_window_join(a, N(a), b, N(b), &w, p, 0, 100, &r);
    expect_out(&r.out, want, N(want), false);
    collector_free(&r.out);
  }
}

static void window_join_session_windows_of_both_sides_merge(void **state) {
  (void)state;
  /* Gap 5. k: a0 [0,5) and a8 [8,13) are apart, b4 [4,9) touches both: one session
   * [0,13) with a0, a8 and b4. a20 [20,25) and b30 [30,35) stay apart: no pair.
   * j: a0 [0,5) and b3 [3,8) merge into [0,8). */
  static const ev_t a[] = {{"k", "a0", 0}, {"k", "a8", 8}, {"k", "a20", 20}, {"j", "ja0", 0}};
  static const ev_t b[] = {{"k", "b4", 4}, {"k", "b30", 30}, {"j", "jb3", 3}};
  static const char *const want[] = {"k|a0@0+b4@4|12", "k|a8@8+b4@4|12", "j|ja0@0+jb3@3|7"};
  fl_window_assigner_t w = {FL_ASSIGNER_SESSION, FL_EVENT_TIME, 0, 0, 0, 5};
  for (int p = 1; p <= 4; p *= 2) {
    join_run_t r;
    run_window_join(a, N(a), b, N(b), &w, p, 0, 100, &r);
    expect_out(&r.out, want, N(want), false);
    collector_free(&r.out);
  }
}

static void window_join_drops_and_counts_late_elements_of_both_sides(void **state) {
  (void)state;
  /* Interleaving a1 b2 a25 b26 a3 b4, no out-of-orderness. After b26 the watermark is
   * min(24, 25) = 24 and [0,10) fires with a1+b2. a3 and b4 then fall only into [0,10),
   * whose cleanup time 9 <= 24 (then 25): both are dropped and counted. */
  static const ev_t a[] = {{"k", "a1", 1}, {"k", "a25", 25}, {"k", "a3", 3}};
  static const ev_t b[] = {{"k", "b2", 2}, {"k", "b26", 26}, {"k", "b4", 4}};
  static const char *const want[] = {"k|a1@1+b2@2|9", "k|a25@25+b26@26|29"};
  fl_window_assigner_t w = tumbling(10);
  join_run_t r;
  run_window_join(a, N(a), b, N(b), &w, 1, 1, 0, &r);
  expect_out(&r.out, want, N(want), true);
  assert_int_equal(r.late, 2);
  collector_free(&r.out);
}

static void window_join_processing_time_joins_everything_in_one_window(void **state) {
  (void)state;
  /* An hour-long processing-time window on a clock that starts at 0 and moves 1 ms per
   * read: every element lands in [0, 3600000), which fires at the end of input. */
  static const ev_t a[] = {
      {"k", "a1", FL_TS_NONE}, {"k", "a2", FL_TS_NONE}, {"j", "a3", FL_TS_NONE}};
  static const ev_t b[] = {
      {"k", "b1", FL_TS_NONE}, {"j", "b2", FL_TS_NONE}, {"i", "b3", FL_TS_NONE}};
  for (int p = 1; p <= 2; p++) {
    atomic_store(&g_tick_ms, 0);
    fl_env_t *env = new_env(p, 0);
    assert_int_equal(fl_env_set_clock(env, ticking_clock, NULL), 0);
    fl_record_t ra[3], rb[3];
    for (int i = 0; i < 3; i++) {
      ra[i] = rec_str(a[i].key, a[i].val, a[i].ts);
      rb[i] = rec_str(b[i].key, b[i].val, b[i].ts);
    }
    fl_keyed_stream_t *ka = fl_stream_key_by(fl_source_collection(env, "a", ra, 3), NULL, NULL);
    fl_keyed_stream_t *kb = fl_stream_key_by(fl_source_collection(env, "b", rb, 3), NULL, NULL);
    fl_window_assigner_t w = {FL_ASSIGNER_TUMBLING, FL_PROCESSING_TIME, 3600000, 0, 0, 0};
    fl_stream_t *out = fl_window_join(ka, kb, "join", &w, pair_fn, NULL);
    collector_t c;
    sink_into(out, &c);
    execute_ok(env, "test_two_input");
    static const char *const want[] = {"k|a1@-9223372036854775808+b1@-9223372036854775808|3599999",
                                       "k|a2@-9223372036854775808+b1@-9223372036854775808|3599999",
                                       "j|a3@-9223372036854775808+b2@-9223372036854775808|3599999"};
    expect_out(&c, want, N(want), false);
    collector_free(&c);
    fl_env_destroy(env);
  }
}

/* The model for a random tumbling join: every (a, b) pair with equal keys and equal
 * window start. */
static void window_join_matches_a_model_at_parallelism_1_2_4_and_on_rocksdb(void **state) {
  (void)state;
  enum {
    NA = 300,
    NB = 200
  };
  static ev_t a[NA], b[NB];
  static char keys[NA + NB][8], vals[NA + NB][16];
  uint32_t seed = 12345;
  for (int i = 0; i < NA + NB; i++) {
    seed = seed * 1103515245u + 12345u;
    snprintf(keys[i], sizeof keys[i], "k%u", (seed >> 16) % 13);
    snprintf(vals[i], sizeof vals[i], "%c%d", i < NA ? 'a' : 'b', i);
    ev_t e = {keys[i], vals[i], (int64_t)i * 7 % 500}; /* in-order enough for ooo 600 */
    if (i < NA)
      a[i] = e;
    else
      b[i - NA] = e;
  }
  size_t nwant = 0;
  char **want = NULL;
  for (int i = 0; i < NA; i++)
    for (int j = 0; j < NB; j++)
      if (strcmp(a[i].key, b[j].key) == 0 && a[i].ts / 50 == b[j].ts / 50) {
        want = realloc(want, (nwant + 1) * sizeof *want);
        want[nwant] = malloc(96);
        snprintf(want[nwant], 96, "%s|%s@%lld+%s@%lld|%lld", a[i].key, a[i].val, (long long)a[i].ts,
                 b[j].val, (long long)b[j].ts, (long long)(a[i].ts / 50 * 50 + 49));
        nwant++;
      }
  assert_true(nwant > 100);
  fl_window_assigner_t w = tumbling(50);
  /* p = 8: parallelism 2 on the RocksDB backend */
  for (int p = 1; p <= 8; p *= 2) {
    join_run_t r;
    g_backend = p == 8 ? "rocksdb" : NULL;
    run_window_join(a, NA, b, NB, &w, p == 8 ? 2 : p, 0, 600, &r);
    g_backend = NULL;
    expect_out(&r.out, (const char *const *)want, nwant, false);
    assert_int_equal(r.late, 0);
    collector_free(&r.out);
  }
  for (size_t i = 0; i < nwant; i++) free(want[i]);
  free(want);
}

/* ---------------------------------------------------------------------------------- */
/* Interval join                                                                        */

typedef struct ij_spec {
  int64_t lower, upper;
  int lower_excl, upper_excl;
  bool late_tags;
  int parallelism, batch;
  int64_t ooo;
  fl_join_fn fn;
} ij_spec_t;

typedef struct ij_run {
  collector_t out, left_late, right_late;
  int64_t late;
} ij_run_t;

static void run_interval_join(const ij_spec_t *sp, const ev_t *a, size_t na, const ev_t *b,
                              size_t nb, ij_run_t *res) {
  fl_env_t *env = new_env(sp->parallelism, sp->batch);
  fl_keyed_stream_t *ka = fl_stream_key_by(events(env, "a", a, na, sp->ooo), NULL, NULL);
  fl_keyed_stream_t *kb = fl_stream_key_by(events(env, "b", b, nb, sp->ooo), key_from_value, NULL);
  fl_interval_join_opts_t o = {FL_INTERVAL_JOIN_OPTS_VERSION,
                               sp->lower,
                               sp->upper,
                               sp->lower_excl,
                               sp->upper_excl,
                               NULL,
                               NULL};
  if (sp->late_tags) {
    o.left_late = fl_output_tag(env, "left-late");
    o.right_late = fl_output_tag(env, "right-late");
  }
  fl_stream_t *out = fl_interval_join(ka, kb, "ijoin", &o, sp->fn ? sp->fn : pair_fn, NULL);
  assert_non_null(out);
  collector_init(&res->out);
  collector_init(&res->left_late);
  collector_init(&res->right_late);
  assert_int_equal(fl_stream_sink(out, "sink", &collector_sink, &res->out), 0);
  if (sp->late_tags) {
    fl_stream_sink(fl_stream_side_output(out, o.left_late), "ll", &collector_sink, &res->left_late);
    fl_stream_sink(fl_stream_side_output(out, o.right_late), "rl", &collector_sink,
                   &res->right_late);
  }
  execute_ok(env, "test_two_input");
  res->late = op_metric(env, "ijoin", "late_records_dropped");
  fl_env_destroy(env);
}

static void ij_free(ij_run_t *r) {
  collector_free(&r->out);
  collector_free(&r->left_late);
  collector_free(&r->right_late);
}

static void check_bounds(int64_t lower, int64_t upper, int le, int ue, const char *const *want,
                         size_t n) {
  /* l@10 against r@5..15; half the right elements come before it, half after. */
  static const ev_t a[] = {{"k", "l", 10}, {"j", "jl", 10}};
  static const ev_t b[] = {{"k", "r5", 5},   {"k", "r7", 7},   {"k", "r8", 8},
                           {"k", "r9", 9},   {"k", "r10", 10}, {"k", "r11", 11},
                           {"k", "r12", 12}, {"k", "r13", 13}, {"k", "r15", 15}};
  for (int p = 1; p <= 2; p++) {
    ij_spec_t sp = {lower, upper, le, ue, false, p, 0, 100, NULL};
    ij_run_t r;
    run_interval_join(&sp, a, N(a), b, N(b), &r);
    expect_out(&r.out, want, n, false);
    assert_int_equal(r.late, 0);
    ij_free(&r);
  }
}

static void interval_join_bounds_inclusive_and_exclusive(void **state) {
  (void)state;
  /* [t-2, t+1] = [8, 11]; pair time max(10, r). */
  static const char *const incl[] = {"k|l@10+r8@8|10", "k|l@10+r9@9|10", "k|l@10+r10@10|10",
                                     "k|l@10+r11@11|11"};
  check_bounds(-2, 1, 0, 0, incl, N(incl));
  /* (t-2, t+1] = [9, 11] */
  static const char *const lex[] = {"k|l@10+r9@9|10", "k|l@10+r10@10|10", "k|l@10+r11@11|11"};
  check_bounds(-2, 1, 1, 0, lex, N(lex));
  /* [t-2, t+1) = [8, 10] */
  static const char *const uex[] = {"k|l@10+r8@8|10", "k|l@10+r9@9|10", "k|l@10+r10@10|10"};
  check_bounds(-2, 1, 0, 1, uex, N(uex));
  /* (t-2, t+1) = [9, 10] */
  static const char *const both[] = {"k|l@10+r9@9|10", "k|l@10+r10@10|10"};
  check_bounds(-2, 1, 1, 1, both, N(both));
  /* [t, t]: equal timestamps only */
  static const char *const eq[] = {"k|l@10+r10@10|10"};
  check_bounds(0, 0, 0, 0, eq, N(eq));
  /* (t, t+1) is empty: exclusive bounds one ms apart join nothing */
  check_bounds(0, 1, 1, 1, NULL, 0);
}

static void interval_join_negative_and_positive_intervals(void **state) {
  (void)state;
  /* Entirely before: [t-5, t-3] = [5, 7] */
  static const char *const before[] = {"k|l@10+r5@5|10", "k|l@10+r7@7|10"};
  check_bounds(-5, -3, 0, 0, before, N(before));
  /* Entirely after: [t+2, t+5] = [12, 15] */
  static const char *const after[] = {"k|l@10+r12@12|12", "k|l@10+r13@13|13", "k|l@10+r15@15|15"};
  check_bounds(2, 5, 0, 0, after, N(after));
}

static void interval_join_matches_a_model_at_parallelism_1_2_4_and_on_rocksdb(void **state) {
  (void)state;
  enum {
    NA = 200,
    NB = 200
  };
  static ev_t a[NA], b[NB];
  static char keys[NA + NB][8], vals[NA + NB][24];
  uint32_t seed = 777;
  for (int i = 0; i < NA + NB; i++) {
    seed = seed * 1103515245u + 12345u;
    snprintf(keys[i], sizeof keys[i], "k%u", (seed >> 16) % 7);
    int64_t ts = i / 2 * 3 + (int64_t)((seed >> 8) % 5); /* slightly out of order */
    if (i < NA) {
      snprintf(vals[i], sizeof vals[i], "a%d", i);
      a[i] = (ev_t){keys[i], vals[i], ts};
    } else {
      /* The second input's key travels in the value. */
      snprintf(vals[i], sizeof vals[i], "%.7s/b%d", keys[i], i);
      b[i - NA] = (ev_t){"?", vals[i], ts - 150};
    }
  }
  const int64_t lower = -7, upper = 4;
  size_t nwant = 0;
  char **want = NULL;
  for (int i = 0; i < NA; i++) {
    for (int j = 0; j < NB; j++) {
      size_t kl = strlen(a[i].key);
      if (strncmp(b[j].val, a[i].key, kl) != 0 || b[j].val[kl] != '/') continue;
      if (b[j].ts < a[i].ts + lower || b[j].ts > a[i].ts + upper) continue;
      want = realloc(want, (nwant + 1) * sizeof *want);
      want[nwant] = malloc(96);
      int64_t t = a[i].ts > b[j].ts ? a[i].ts : b[j].ts;
      snprintf(want[nwant], 96, "%s|%s@%lld+%s@%lld|%lld", a[i].key, a[i].val, (long long)a[i].ts,
               b[j].val, (long long)b[j].ts, (long long)t);
      nwant++;
    }
  }
  assert_true(nwant > 20);
  /* p = 8: parallelism 2 on the RocksDB backend, whose map state iterates in key order */
  for (int p = 1; p <= 8; p *= 2) {
    /* ooo 1000: nothing is ever late, whatever the interleaving */
    ij_spec_t sp = {lower, upper, 0, 0, false, p == 8 ? 2 : p, 0, 1000, NULL};
    ij_run_t r;
    g_backend = p == 8 ? "rocksdb" : NULL;
    run_interval_join(&sp, a, NA, b, NB, &r);
    g_backend = NULL;
    expect_out(&r.out, (const char *const *)want, nwant, false);
    assert_int_equal(r.late, 0);
    ij_free(&r);
  }
  for (size_t i = 0; i < nwant; i++) free(want[i]);
  free(want);
}

static void interval_join_late_elements_dropped_counted_or_side_output(void **state) {
  (void)state;
  /* Interleaving a10 b11 a30 b31 a12 b13, no out-of-orderness, bounds [-5, 5].
   * b11 joins a10 (wm none); after b11 wm = min(9, 10) = 9. a30 finds nothing in
   * [25, 35]; wm = min(29, 10) = 10. b31 joins a30; wm = min(29, 30) = 29, which also
   * cleans a10 (t + 5 = 15) and b11 (t + 5 = 16). a12 < 29 is late; a ends (+inf) and
   * wm = 30; b13 < 30 is late. */
  static const ev_t a[] = {{"k", "a10", 10}, {"k", "a30", 30}, {"k", "a12", 12}};
  static const ev_t b[] = {{"k", "b11", 11}, {"k", "b31", 31}, {"k", "b13", 13}};
  static const char *const want[] = {"k|a10@10+b11@11|11", "k|a30@30+b31@31|31"};
  ij_spec_t sp = {-5, 5, 0, 0, false, 1, 1, 0, NULL};
  ij_run_t r;
  run_interval_join(&sp, a, N(a), b, N(b), &r);
  expect_out(&r.out, want, N(want), true);
  assert_int_equal(r.late, 2);
  ij_free(&r);

  sp.late_tags = true;
  run_interval_join(&sp, a, N(a), b, N(b), &r);
  expect_out(&r.out, want, N(want), true);
  static const char *const ll[] = {"k|a12|12"};
  static const char *const rl[] = {"k|b13|13"};
  expect_out(&r.left_late, ll, N(ll), true);
  expect_out(&r.right_late, rl, N(rl), true);
  assert_int_equal(r.late, 2);
  ij_free(&r);
}

static void interval_join_keeps_elements_until_their_last_possible_partner(void **state) {
  (void)state;
  /* Bounds [-5, 5], interleaving a10 b10 ax13 bx13 a14 b14, no out-of-orderness. After
   * bx13 the watermark is 12, past both 10s but before their cleanup time 15 (left:
   * t + upper; right: t - lower). a14 (not late: 14 >= 12) still joins b10, and b14
   * still joins a10 (then a14, in time order). */
  static const ev_t a[] = {{"k", "a10", 10}, {"x", "ax13", 13}, {"k", "a14", 14}};
  static const ev_t b[] = {{"k", "b10", 10}, {"x", "bx13", 13}, {"k", "b14", 14}};
  static const char *const want[] = {"k|a10@10+b10@10|10", "x|ax13@13+bx13@13|13",
                                     "k|a14@14+b10@10|14", "k|a10@10+b14@14|14",
                                     "k|a14@14+b14@14|14"};
  ij_spec_t sp = {-5, 5, 0, 0, false, 1, 1, 0, NULL};
  ij_run_t r;
  run_interval_join(&sp, a, N(a), b, N(b), &r);
  expect_out(&r.out, want, N(want), true);
  assert_int_equal(r.late, 0);
  ij_free(&r);
}

/* Checks, at every pair, how many elements the subtask still buffers. */
static atomic_int g_pairs;
static int counting_pair_fn(fl_context_t *ctx, const fl_record_t *a, const fl_record_t *b,
                            void *opaque) {
  (void)opaque;
  size_t l = 0, r = 0;
  assert_int_equal(fl_interval_join_buffered(ctx, &l, &r), 0);
  /* Pair i joins a(10i) with b(10i); see the test for why 1, then 2 per side. */
  int i = (int)(a->timestamp / 10);
  assert_true(a->timestamp == b->timestamp);
  size_t want = i == 1 ? 1 : 2;
  if (l != want || r != want)
    fail_msg("pair %d: buffered left %zu right %zu, want %zu each", i, l, r, want);
  atomic_fetch_add(&g_pairs, 1);
  return pair_fn(ctx, a, b, opaque);
}

static void interval_join_state_is_cleaned_when_the_watermark_passes(void **state) {
  (void)state;
  /* Interleaving a10 b10 a20 b20 ... with bounds [-1, 1]: each element is kept until
   * the watermark reaches t + 1. When b(10i) arrives and joins a(10i), the watermark is
   * min(10i - 1, 10(i-1) - 1) = 10(i-1) - 1: the elements at 10(i-2) and before
   * (cleanup <= 10(i-2) + 1) are gone, those at 10(i-1) are not yet. So every pair
   * after the first sees exactly 2 elements per side, however long the input. */
  enum {
    NPAIRS = 40
  };
  static ev_t a[NPAIRS], b[NPAIRS];
  static char va[NPAIRS][8], vb[NPAIRS][8];
  for (int i = 0; i < NPAIRS; i++) {
    snprintf(va[i], sizeof va[i], "a%d", i + 1);
    snprintf(vb[i], sizeof vb[i], "b%d", i + 1);
    a[i] = (ev_t){"k", va[i], (int64_t)(i + 1) * 10};
    b[i] = (ev_t){"k", vb[i], (int64_t)(i + 1) * 10};
  }
  atomic_store(&g_pairs, 0);
  ij_spec_t sp = {-1, 1, 0, 0, false, 1, 1, 0, counting_pair_fn};
  ij_run_t r;
  run_interval_join(&sp, a, NPAIRS, b, NPAIRS, &r);
  assert_int_equal(atomic_load(&g_pairs), NPAIRS);
  assert_int_equal(r.out.n, NPAIRS);
  assert_int_equal(r.late, 0);
  ij_free(&r);
}

static void interval_join_record_without_timestamp_fails_the_job(void **state) {
  (void)state;
  fl_env_t *env = new_env(1, 0);
  fl_record_t ra = rec_str("k", "a", FL_TS_NONE), rb = rec_str("k", "b", FL_TS_NONE);
  fl_keyed_stream_t *ka = fl_stream_key_by(fl_source_collection(env, "a", &ra, 1), NULL, NULL);
  fl_keyed_stream_t *kb = fl_stream_key_by(fl_source_collection(env, "b", &rb, 1), NULL, NULL);
  fl_interval_join_opts_t o = {FL_INTERVAL_JOIN_OPTS_VERSION, -1, 1, 0, 0, NULL, NULL};
  fl_stream_t *out = fl_interval_join(ka, kb, "ijoin", &o, pair_fn, NULL);
  assert_int_equal(fl_stream_sink(out, "sink", &discard_sink, NULL), 0);
  assert_int_equal(fl_env_execute(env, "x"), FL_EINVAL);
  assert_non_null(strstr(fl_env_error(env), "ijoin"));
  assert_non_null(strstr(fl_env_error(env), "timestamp"));
  fl_env_destroy(env);
}

/* ---------------------------------------------------------------------------------- */
/* Broadcast state                                                                      */

static fl_state_desc_t *g_rules, *g_elems;
static atomic_int g_bcast_calls, g_misuse_checked;

/* Broadcast records: "set:name=n" or "del:name". */
static int rules_broadcast(fl_context_t *ctx, const fl_record_t *in, void *inst) {
  (void)inst;
  atomic_fetch_add(&g_bcast_calls, 1);
  /* No key here: keyed state, timers and the key are refused. */
  const void *v;
  size_t len;
  assert_null(fl_ctx_key(ctx, NULL));
  EXPECT_RC(fl_value_get(ctx, g_value, &v, &len), FL_ESTATE);
  EXPECT_RC(fl_list_add(ctx, g_elems, "x", 1), FL_ESTATE);
  EXPECT_RC(fl_timer_register(ctx, FL_EVENT_TIME, 1), FL_ESTATE);
  /* Broadcast state needs a map descriptor. */
  EXPECT_RC(fl_broadcast_put(ctx, g_value, "a", 1, "b", 1), FL_ESTATE);
  EXPECT_RC(fl_broadcast_get(ctx, g_elems, "a", 1, &v, &len), FL_ESTATE);
  const char *s = in->value;
  size_t n = in->value_len;
  if (n > 4 && memcmp(s, "set:", 4) == 0) {
    const char *eq = memchr(s, '=', n);
    assert_non_null(eq);
    int64_t x = parse_i64(eq + 1, n - (size_t)(eq + 1 - s));
    return fl_broadcast_put(ctx, g_rules, s + 4, (size_t)(eq - s - 4), &x, sizeof x);
  }
  if (n > 4 && memcmp(s, "del:", 4) == 0) return fl_broadcast_remove(ctx, g_rules, s + 4, n - 4);
  return fl_ctx_fail(ctx, "bad rule %.*s", (int)n, s);
}

static int rules_element(fl_context_t *ctx, const fl_record_t *in, void *inst) {
  (void)inst;
  /* Read-only here. */
  int64_t x = 1;
  EXPECT_RC(fl_broadcast_put(ctx, g_rules, "zz", 2, &x, sizeof x), FL_ESTATE);
  EXPECT_RC(fl_broadcast_remove(ctx, g_rules, "double", 6), FL_ESTATE);
  atomic_store(&g_misuse_checked, 1);
  int rc = fl_list_add(ctx, g_elems, in->value, in->value_len);
  if (!rc) rc = fl_timer_register(ctx, FL_EVENT_TIME, in->timestamp);
  return rc;
}

typedef struct rule_sum {
  int64_t n, sum;
} rule_sum_t;

static int sum_rules(const void *uk, size_t ukl, const void *v, size_t vl, void *arg) {
  (void)uk;
  (void)ukl;
  rule_sum_t *s = arg;
  int64_t x;
  assert_int_equal(vl, sizeof x);
  memcpy(&x, v, sizeof x);
  s->n++;
  s->sum += x;
  return 0;
}

static int rules_timer(fl_context_t *ctx, int64_t ts, fl_time_domain_t d, void *inst) {
  (void)inst;
  (void)d;
  int64_t x = 1;
  EXPECT_RC(fl_broadcast_put(ctx, g_rules, "zz", 2, &x, sizeof x), FL_ESTATE);
  rule_sum_t s = {0, 0};
  int rc = fl_broadcast_foreach(ctx, g_rules, sum_rules, &s);
  if (rc) return rc;
  const void *v = NULL;
  size_t len = 0;
  int64_t dbl = 0;
  rc = fl_broadcast_get(ctx, g_rules, "double", 6, &v, &len);
  if (rc < 0) return rc;
  if (rc == 1) memcpy(&dbl, v, sizeof dbl);
  const fl_bytes_t *items = NULL;
  size_t n = 0;
  rc = fl_list_get(ctx, g_elems, &items, &n);
  if (rc < 0) return rc;
  int64_t total = 0;
  for (size_t i = 0; i < n; i++) total += parse_i64(items[i].data, items[i].len);
  rc = fl_state_clear(ctx, g_elems);
  if (rc) return rc;
  return emitf(ctx, ts, "rules=%lld sum=%lld double=%lld v=%lld", (long long)s.n, (long long)s.sum,
               (long long)dbl, (long long)(total * (dbl ? dbl : 1)));
}

static void broadcast_rules_reach_every_subtask_at(int parallelism) {
  atomic_store(&g_bad, 0);
  /* Rules at times 1..4 (the last deletes one), elements at 100 of 32 keys: an
   * element's timer fires when the watermark, the minimum of both inputs, passes its
   * time, so after every rule reached this subtask. Rules left: double=3, limit=10,
   * bonus=7. */
  static const ev_t rules[] = {{"", "set:double=3", 1},
                               {"", "set:limit=10", 2},
                               {"", "set:drop=99", 3},
                               {"", "set:bonus=7", 3},
                               {"", "del:drop", 4}};
  static ev_t el[32];
  static char keys[32][8], vals[32][8];
  for (int i = 0; i < 32; i++) {
    snprintf(keys[i], sizeof keys[i], "u%d", i);
    snprintf(vals[i], sizeof vals[i], "%d", i);
    el[i] = (ev_t){keys[i], vals[i], 100};
  }
  atomic_store(&g_bcast_calls, 0);
  atomic_store(&g_misuse_checked, 0);
  atomic_store(&g_opened, 0);
  atomic_store(&g_closed, 0);
  atomic_store(&g_destroyed, 0);
  fl_env_t *env = new_env(parallelism, 0);
  g_rules = fl_state_map(env, "rules");
  g_elems = fl_state_list(env, "elems");
  g_value = fl_state_value(env, "v");
  fl_keyed_stream_t *ks = fl_stream_key_by(events(env, "el", el, N(el), 0), NULL, NULL);
  fl_stream_t *rs = events(env, "rules", rules, N(rules), 0);
  fl_broadcast_process_fn_t fn = {FL_BROADCAST_PROCESS_FN_VERSION,
                                  count_open,
                                  rules_element,
                                  rules_broadcast,
                                  rules_timer,
                                  count_close,
                                  count_destroy};
  fl_stream_t *out = fl_keyed_broadcast_process(ks, rs, "bc", &fn, &g_destroyed);
  collector_t c;
  sink_into(out, &c);
  execute_ok(env, "test_two_input");
  assert_int_equal(atomic_load(&g_bad), 0);
  /* Every subtask processed every rule once. */
  assert_int_equal(atomic_load(&g_bcast_calls), (int)N(rules) * parallelism);
  assert_int_equal(atomic_load(&g_misuse_checked), 1);
  assert_int_equal(atomic_load(&g_opened), parallelism);
  assert_int_equal(atomic_load(&g_closed), parallelism);
  /* Each key's timer, with the full rule set. */
  char want[32][96];
  const char *wantp[32];
  for (int i = 0; i < 32; i++) {
    snprintf(want[i], sizeof want[i], "u%d|rules=3 sum=20 double=3 v=%d|100", i, i * 3);
    wantp[i] = want[i];
  }
  expect_out(&c, wantp, N(wantp), false);
  if (parallelism > 1) {
    /* The keys are spread: rules were read on more than one subtask. */
    bool seen[8] = {false};
    int distinct = 0;
    for (size_t i = 0; i < c.n; i++) {
      if (!seen[c.r[i].subtask]) distinct++;
      seen[c.r[i].subtask] = true;
    }
    assert_true(distinct > 1);
  }
  collector_free(&c);
  fl_env_destroy(env);
  assert_int_equal(atomic_load(&g_destroyed), 1);
}

static void broadcast_rules_reach_every_subtask(void **state) {
  (void)state;
  broadcast_rules_reach_every_subtask_at(1);
  broadcast_rules_reach_every_subtask_at(2);
  broadcast_rules_reach_every_subtask_at(4);
}

/* The rules job of the test above with a checkpoint configuration: the rules, no
 * elements, checkpoints on (the final checkpoint holds the broadcast state); then the
 * elements only, restored from it at another parallelism. */
static void run_rules_job(int parallelism, const char *ckpt_key, const char *ckpt_dir,
                          const ev_t *rules, size_t nr, const ev_t *el, size_t ne, collector_t *c) {
  char p[16];
  snprintf(p, sizeof p, "%d", parallelism);
  bool periodic = strcmp(ckpt_key, "state.checkpoints.dir") == 0;
  const char *kv[] = {"parallelism",
                      p,
                      "pipeline.auto-watermark-interval",
                      "0",
                      ckpt_key,
                      ckpt_dir,
                      periodic ? "execution.checkpointing.interval" : NULL,
                      "1h",
                      NULL};
  fl_env_t *env = env_of(kv);
  g_rules = fl_state_map(env, "rules");
  g_elems = fl_state_list(env, "elems");
  g_value = fl_state_value(env, "v");
  fl_keyed_stream_t *ks = fl_stream_key_by(events(env, "el", el, ne, 0), NULL, NULL);
  fl_stream_t *rs = events(env, "rules", rules, nr, 0);
  fl_broadcast_process_fn_t fn = {FL_BROADCAST_PROCESS_FN_VERSION,
                                  NULL,
                                  rules_element,
                                  rules_broadcast,
                                  rules_timer,
                                  NULL,
                                  NULL};
  fl_stream_t *out = fl_keyed_broadcast_process(ks, rs, "bc", &fn, NULL);
  assert_int_equal(fl_stream_sink(out, "sink", &collector_sink, c), 0);
  execute_ok(env, "test_two_input");
  fl_env_destroy(env);
}

static void broadcast_state_survives_a_restore_at_another_parallelism(void **state) {
  (void)state;
  static const ev_t rules[] = {{"", "set:double=3", 1},
                               {"", "set:limit=10", 2},
                               {"", "set:drop=99", 3},
                               {"", "set:bonus=7", 3},
                               {"", "del:drop", 4}};
  static const ev_t el[] = {{"u1", "1", 100}, {"u2", "2", 100}, {"u3", "3", 100},
                            {"u4", "4", 100}, {"u5", "5", 100}, {"u6", "6", 100}};
  char dir[] = "/tmp/fl_two_input_XXXXXX";
  assert_non_null(mkdtemp(dir));
  atomic_store(&g_bad, 0);
  atomic_store(&g_bcast_calls, 0);
  collector_t c1, c2;
  collector_init(&c1);
  collector_init(&c2);
  run_rules_job(2, "state.checkpoints.dir", dir, rules, N(rules), NULL, 0, &c1);
  assert_int_equal(c1.n, 0);
  assert_int_equal(atomic_load(&g_bcast_calls), (int)N(rules) * 2);
  /* The rules source goes on after its last rule: nothing reaches process_broadcast. */
  atomic_store(&g_bcast_calls, 0);
  run_rules_job(3, "execution.savepoint.path", dir, rules, N(rules), el, N(el), &c2);
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  assert_int_equal(system(cmd), 0);
  assert_int_equal(atomic_load(&g_bcast_calls), 0);
  assert_int_equal(atomic_load(&g_bad), 0);
  static const char *const want[] = {
      "u1|rules=3 sum=20 double=3 v=3|100",  "u2|rules=3 sum=20 double=3 v=6|100",
      "u3|rules=3 sum=20 double=3 v=9|100",  "u4|rules=3 sum=20 double=3 v=12|100",
      "u5|rules=3 sum=20 double=3 v=15|100", "u6|rules=3 sum=20 double=3 v=18|100"};
  expect_out(&c2, want, N(want), false);
  collector_free(&c1);
  collector_free(&c2);
}

static int keyed_tries_broadcast(fl_context_t *ctx, const fl_record_t *in, void *inst) {
  (void)inst;
  (void)in;
  const void *v;
  size_t len;
  int64_t x = 1;
  /* Not a broadcast process function. */
  EXPECT_RC(fl_broadcast_get(ctx, g_rules, "a", 1, &v, &len), FL_ESTATE);
  EXPECT_RC(fl_broadcast_put(ctx, g_rules, "a", 1, &x, sizeof x), FL_ESTATE);
  EXPECT_RC(fl_broadcast_remove(ctx, g_rules, "a", 1), FL_ESTATE);
  EXPECT_RC(fl_broadcast_foreach(ctx, g_rules, sum_rules, NULL), FL_ESTATE);
  atomic_store(&g_misuse_checked, 1);
  return 0;
}

static void broadcast_state_outside_a_broadcast_function_is_refused(void **state) {
  atomic_store(&g_bad, 0);
  (void)state;
  atomic_store(&g_misuse_checked, 0);
  fl_env_t *env = new_env(1, 0);
  g_rules = fl_state_map(env, "rules");
  fl_record_t r = rec_str("k", "1", 1);
  fl_keyed_stream_t *ks = fl_stream_key_by(fl_source_collection(env, "s", &r, 1), NULL, NULL);
  fl_process_fn_t fn = {FL_PROCESS_FN_VERSION, NULL, keyed_tries_broadcast, NULL, NULL, NULL};
  fl_stream_t *out = fl_keyed_process(ks, "p", &fn, NULL);
  assert_int_equal(fl_stream_sink(out, "sink", &discard_sink, NULL), 0);
  execute_ok(env, "test_two_input");
  assert_int_equal(atomic_load(&g_bad), 0);
  assert_int_equal(atomic_load(&g_misuse_checked), 1);
  fl_env_destroy(env);
}

/* A foreach callback that tries to change the map it walks. */
static fl_context_t *g_ctx;
static int put_during_walk(const void *uk, size_t ukl, const void *v, size_t vl, void *arg) {
  (void)v;
  (void)vl;
  (void)arg;
  int64_t x = 5;
  EXPECT_RC(fl_broadcast_put(g_ctx, g_rules, uk, ukl, &x, sizeof x), FL_ESTATE);
  return 42; /* stops the walk; returned by foreach */
}

static int walk_broadcast(fl_context_t *ctx, const fl_record_t *in, void *inst) {
  (void)inst;
  int64_t x = 1;
  int rc = fl_broadcast_put(ctx, g_rules, in->value, in->value_len, &x, sizeof x);
  if (rc) return rc;
  g_ctx = ctx;
  EXPECT_RC(fl_broadcast_foreach(ctx, g_rules, put_during_walk, NULL), 42);
  atomic_store(&g_misuse_checked, 1);
  return 0;
}

static int ignore_element(fl_context_t *ctx, const fl_record_t *in, void *inst) {
  (void)ctx;
  (void)in;
  (void)inst;
  return 0;
}

static void broadcast_state_cannot_change_during_foreach(void **state) {
  atomic_store(&g_bad, 0);
  (void)state;
  atomic_store(&g_misuse_checked, 0);
  fl_env_t *env = new_env(1, 0);
  g_rules = fl_state_map(env, "rules");
  fl_record_t r = rec_str("k", "1", 1), rule = rec_str("", "r", 1);
  fl_keyed_stream_t *ks = fl_stream_key_by(fl_source_collection(env, "s", &r, 1), NULL, NULL);
  fl_stream_t *rs = fl_source_collection(env, "rules", &rule, 1);
  fl_broadcast_process_fn_t fn = {
      FL_BROADCAST_PROCESS_FN_VERSION, NULL, ignore_element, walk_broadcast, NULL, NULL, NULL};
  fl_stream_t *out = fl_keyed_broadcast_process(ks, rs, "bc", &fn, NULL);
  assert_int_equal(fl_stream_sink(out, "sink", &discard_sink, NULL), 0);
  execute_ok(env, "test_two_input");
  assert_int_equal(atomic_load(&g_bad), 0);
  assert_int_equal(atomic_load(&g_misuse_checked), 1);
  fl_env_destroy(env);
}

/* ---------------------------------------------------------------------------------- */
/* Builder errors                                                                       */

static int nop_p(fl_context_t *ctx, const fl_record_t *in, void *inst) {
  (void)ctx;
  (void)in;
  (void)inst;
  return 0;
}

typedef enum {
  B_CO_NULL,
  B_CO_VERSION,
  B_CO_NO_P2,
  B_KCO_NULL,
  B_WJ_FN,
  B_WJ_SIZE,
  B_WJ_NULL_ASSIGNER,
  B_WJ_GAP,
  B_WJ_OFFSET,
  B_IJ_BOUNDS,
  B_IJ_VERSION,
  B_IJ_NULL_OPTS,
  B_IJ_FN,
  B_BC_NULL,
  B_BC_NO_BROADCAST,
  B_BC_VERSION
} bad_t;

/* Builds the bad operator named "bad" and a sink for it. */
static void build_bad(fl_env_t *env, bad_t what) {
  fl_record_t r = rec_str("k", "1", 1);
  fl_stream_t *a = fl_source_collection(env, "a", &r, 1);
  fl_stream_t *b = fl_source_collection(env, "b", &r, 1);
  fl_keyed_stream_t *ka = fl_stream_key_by(a, NULL, NULL);
  fl_keyed_stream_t *kb = fl_stream_key_by(b, NULL, NULL);
  fl_co_process_fn_t co = {FL_CO_PROCESS_FN_VERSION, NULL, nop_p, nop_p, NULL, NULL, count_destroy};
  fl_broadcast_process_fn_t bc = {
      FL_BROADCAST_PROCESS_FN_VERSION, NULL, nop_p, nop_p, NULL, NULL, count_destroy};
  fl_window_assigner_t w = tumbling(10);
  fl_interval_join_opts_t o = {FL_INTERVAL_JOIN_OPTS_VERSION, -1, 1, 0, 0, NULL, NULL};
  fl_stream_t *out = NULL;
  switch (what) {
  case B_CO_NULL: out = fl_connect_process(a, b, "bad", NULL, NULL); break;
  case B_CO_VERSION:
    co.version = 99;
    out = fl_connect_process(a, b, "bad", &co, &g_destroyed);
    break;
  case B_CO_NO_P2:
    co.process2 = NULL;
    out = fl_connect_process(a, b, "bad", &co, &g_destroyed);
    break;
  case B_KCO_NULL:
    co.process1 = NULL;
    out = fl_keyed_connect_process(ka, kb, "bad", &co, &g_destroyed);
    break;
  case B_WJ_FN: out = fl_window_join(ka, kb, "bad", &w, NULL, NULL); break;
  case B_WJ_SIZE:
    w.size_ms = 0;
    out = fl_window_join(ka, kb, "bad", &w, pair_fn, NULL);
    break;
  case B_WJ_NULL_ASSIGNER: out = fl_window_join(ka, kb, "bad", NULL, pair_fn, NULL); break;
  case B_WJ_GAP:
    w.kind = FL_ASSIGNER_SESSION;
    out = fl_window_join(ka, kb, "bad", &w, pair_fn, NULL);
    break;
  case B_WJ_OFFSET:
    w.offset_ms = 10;
    out = fl_window_join(ka, kb, "bad", &w, pair_fn, NULL);
    break;
  case B_IJ_BOUNDS:
    o.lower_ms = 5;
    o.upper_ms = 4;
    out = fl_interval_join(ka, kb, "bad", &o, pair_fn, NULL);
    break;
  case B_IJ_VERSION:
    o.version = 0;
    out = fl_interval_join(ka, kb, "bad", &o, pair_fn, NULL);
    break;
  case B_IJ_NULL_OPTS: out = fl_interval_join(ka, kb, "bad", NULL, pair_fn, NULL); break;
  case B_IJ_FN: out = fl_interval_join(ka, kb, "bad", &o, NULL, NULL); break;
  case B_BC_NULL: out = fl_keyed_broadcast_process(ka, b, "bad", NULL, NULL); break;
  case B_BC_NO_BROADCAST:
    bc.process_broadcast = NULL;
    out = fl_keyed_broadcast_process(ka, b, "bad", &bc, &g_destroyed);
    break;
  case B_BC_VERSION:
    bc.version = 2;
    out = fl_keyed_broadcast_process(ka, b, "bad", &bc, &g_destroyed);
    break;
  }
  /* Builders return a stream of the env even for bad arguments. */
  assert_non_null(out);
  assert_int_equal(fl_stream_sink(out, "sink", &discard_sink, NULL), 0);
}

static void builder_errors_name_the_operator_and_the_cause(void **state) {
  (void)state;
  static const struct {
    bad_t what;
    const char *cause;
    bool destroys;
  } cases[] = {{B_CO_NULL, "NULL", false},
               {B_CO_VERSION, "version", true},
               {B_CO_NO_P2, "process2", true},
               {B_KCO_NULL, "process1", true},
               {B_WJ_FN, "join function is NULL", false},
               {B_WJ_SIZE, "size", false},
               {B_WJ_NULL_ASSIGNER, "assigner is NULL", false},
               {B_WJ_GAP, "gap", false},
               {B_WJ_OFFSET, "offset", false},
               {B_IJ_BOUNDS, "lower bound 5 ms is above upper bound 4 ms", false},
               {B_IJ_VERSION, "version", false},
               {B_IJ_NULL_OPTS, "NULL", false},
               {B_IJ_FN, "join function is NULL", false},
               {B_BC_NULL, "NULL", false},
               {B_BC_NO_BROADCAST, "process_broadcast", true},
               {B_BC_VERSION, "version", true}};
  for (size_t i = 0; i < N(cases); i++) {
    atomic_store(&g_destroyed, 0);
    fl_env_t *env = new_env(1, 0);
    build_bad(env, cases[i].what);
    expect_build_error(env, "'bad'", cases[i].cause);
    /* A table that is not kept is released at once, exactly once. */
    assert_int_equal(atomic_load(&g_destroyed), cases[i].destroys ? 1 : 0);
    fl_env_destroy(env);
    assert_int_equal(atomic_load(&g_destroyed), cases[i].destroys ? 1 : 0);
  }
}

static void builders_refuse_null_streams_and_release_the_table(void **state) {
  (void)state;
  atomic_store(&g_destroyed, 0);
  fl_co_process_fn_t co = {FL_CO_PROCESS_FN_VERSION, NULL, nop_p, nop_p, NULL, NULL, count_destroy};
  fl_broadcast_process_fn_t bc = {
      FL_BROADCAST_PROCESS_FN_VERSION, NULL, nop_p, nop_p, NULL, NULL, count_destroy};
  assert_null(fl_connect_process(NULL, NULL, "x", &co, &g_destroyed));
  assert_null(fl_keyed_connect_process(NULL, NULL, "x", &co, &g_destroyed));
  assert_null(fl_keyed_broadcast_process(NULL, NULL, "x", &bc, &g_destroyed));
  assert_int_equal(atomic_load(&g_destroyed), 3);
  assert_null(fl_window_join(NULL, NULL, "x", NULL, pair_fn, NULL));
  assert_null(fl_interval_join(NULL, NULL, "x", NULL, pair_fn, NULL));

  /* Streams of two environments cannot be connected. */
  atomic_store(&g_destroyed, 0);
  fl_env_t *e1 = new_env(1, 0), *e2 = new_env(1, 0);
  fl_record_t r = rec_str("k", "1", 1);
  fl_stream_t *a = fl_source_collection(e1, "a", &r, 1);
  fl_stream_t *b = fl_source_collection(e2, "b", &r, 1);
  assert_null(fl_connect_process(a, b, "x", &co, &g_destroyed));
  assert_int_equal(atomic_load(&g_destroyed), 1);
  assert_int_equal(fl_env_execute(e1, "x"), FL_EINVAL);
  assert_non_null(strstr(fl_env_error(e1), "different environments"));
  fl_env_destroy(e1);
  fl_env_destroy(e2);
}

static void unnamed_two_input_operators_get_a_name(void **state) {
  (void)state;
  fl_env_t *env = new_env(1, 0);
  fl_record_t r = rec_str("k", "1", 1);
  fl_keyed_stream_t *ka = fl_stream_key_by(fl_source_collection(env, "a", &r, 1), NULL, NULL);
  fl_keyed_stream_t *kb = fl_stream_key_by(fl_source_collection(env, "b", &r, 1), NULL, NULL);
  fl_co_process_fn_t co = {FL_CO_PROCESS_FN_VERSION, NULL, nop_p, nop_p, NULL, NULL, NULL};
  fl_stream_t *out = fl_keyed_connect_process(ka, kb, NULL, &co, NULL);
  fl_interval_join_opts_t o = {FL_INTERVAL_JOIN_OPTS_VERSION, -1, 1, 0, 0, NULL, NULL};
  fl_stream_t *ij = fl_interval_join(ka, kb, "", &o, pair_fn, NULL);
  assert_int_equal(fl_stream_sink(fl_stream_union(out, ij), "sink", &discard_sink, NULL), 0);
  execute_ok(env, "test_two_input");
  char *js = fl_env_metrics_json(env);
  assert_non_null(strstr(js, "\"keyed_co_process-"));
  assert_non_null(strstr(js, "\"interval_join-"));
  fl_free(js);
  fl_env_destroy(env);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(keyed_connect_shares_state_and_timers_per_key),
      cmocka_unit_test(keyed_connect_timer_waits_for_both_watermarks),
      cmocka_unit_test(keyed_connect_idle_input_does_not_hold_the_watermark),
      cmocka_unit_test(connect_routes_each_input_to_its_function),
      cmocka_unit_test(window_join_tumbling_pairs_same_key_same_window),
      cmocka_unit_test(window_join_sliding_pair_once_per_common_window),
      cmocka_unit_test(window_join_session_windows_of_both_sides_merge),
      cmocka_unit_test(window_join_drops_and_counts_late_elements_of_both_sides),
      cmocka_unit_test(window_join_processing_time_joins_everything_in_one_window),
      cmocka_unit_test(window_join_matches_a_model_at_parallelism_1_2_4_and_on_rocksdb),
      cmocka_unit_test(interval_join_bounds_inclusive_and_exclusive),
      cmocka_unit_test(interval_join_negative_and_positive_intervals),
      cmocka_unit_test(interval_join_matches_a_model_at_parallelism_1_2_4_and_on_rocksdb),
      cmocka_unit_test(interval_join_late_elements_dropped_counted_or_side_output),
      cmocka_unit_test(interval_join_keeps_elements_until_their_last_possible_partner),
      cmocka_unit_test(interval_join_state_is_cleaned_when_the_watermark_passes),
      cmocka_unit_test(interval_join_record_without_timestamp_fails_the_job),
      cmocka_unit_test(broadcast_rules_reach_every_subtask),
      cmocka_unit_test(broadcast_state_survives_a_restore_at_another_parallelism),
      cmocka_unit_test(broadcast_state_outside_a_broadcast_function_is_refused),
      cmocka_unit_test(broadcast_state_cannot_change_during_foreach),
      cmocka_unit_test(builder_errors_name_the_operator_and_the_cause),
      cmocka_unit_test(builders_refuse_null_streams_and_release_the_table),
      cmocka_unit_test(unnamed_two_input_operators_get_a_name),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
