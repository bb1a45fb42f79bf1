/* Windows through the public API: assignment (tumbling, sliding, offsets, negative and
 * extreme timestamps), session merging, lateness, late side output, watermark edges,
 * window functions, parallelism independence and processing time. Expected outputs are
 * worked out by hand from docs/event-time.md (Flink's rules); the comments
 * next to each input show the watermark it produces (bounded out-of-orderness D:
 * wm = max_ts - D - 1, one watermark after every record). */
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>
#include <pthread.h>

#include "fl_test_util.h"
#include "flink.h"

/* ---------------------------------------------------------------------------------- */
/* Collected records (fl_test_util.h)                                                   */

static int64_t out_i64(const col_rec_t *r) {
  int64_t v;
  assert_int_equal(r->value_len, 8);
  memcpy(&v, r->value, 8);
  return v;
}

static double out_f64(const col_rec_t *r) {
  double v;
  assert_int_equal(r->value_len, 8);
  memcpy(&v, r->value, 8);
  return v;
}

/* ---------------------------------------------------------------------------------- */
/* Window functions                                                                     */

/* Sum of native int64 values. */
static int sum_reduce(fl_context_t *ctx, const void *a, size_t a_len, const void *b, size_t b_len,
                      fl_buf_t *out, void *opaque) {
  (void)ctx;
  (void)opaque;
  int64_t x, y;
  assert_int_equal(a_len, 8);
  assert_int_equal(b_len, 8);
  memcpy(&x, a, 8);
  memcpy(&y, b, 8);
  x += y;
  return fl_buf_set(out, &x, 8);
}

/* Average of int64 values, emitted as a double. */
typedef struct avg_acc {
  int64_t sum;
  int64_t n;
} avg_acc_t;

static void avg_init(void *acc, void *opaque) {
  (void)opaque;
  memset(acc, 0, sizeof(avg_acc_t));
}

/* The value that avg_add refuses: a poison record. */
#define AVG_POISON (-999)

static int avg_add(fl_context_t *ctx, void *acc, const fl_record_t *in, void *opaque) {
  (void)opaque;
  avg_acc_t *a = acc;
  int64_t v;
  assert_int_equal(in->value_len, 8);
  memcpy(&v, in->value, 8);
  if (v == AVG_POISON) return fl_ctx_fail(ctx, "poison value %lld", (long long)v);
  a->sum += v;
  a->n++;
  return 0;
}

static void avg_merge(void *acc, const void *other, void *opaque) {
  (void)opaque;
  avg_acc_t *a = acc;
  const avg_acc_t *b = other;
  a->sum += b->sum;
  a->n += b->n;
}

static int avg_result(fl_context_t *ctx, const fl_window_t *w, const void *acc, void *opaque) {
  (void)opaque;
  const avg_acc_t *a = acc;
  assert_true(a->n > 0);
  assert_true(fl_ctx_timestamp(ctx) == w->end - 1);
  double avg = (double)a->sum / (double)a->n;
  size_t klen = 0;
  const void *key = fl_ctx_key(ctx, &klen);
  return fl_emit(ctx, key, klen, &avg, sizeof avg, fl_ctx_timestamp(ctx));
}

static atomic_int avg_destroyed;
static void avg_destroy(void *opaque) {
  assert_ptr_equal(opaque, &avg_destroyed);
  atomic_fetch_add(&avg_destroyed, 1);
}

static const fl_aggregate_fn_t avg_fn = {FL_AGGREGATE_FN_VERSION,
                                         sizeof(avg_acc_t),
                                         avg_init,
                                         avg_add,
                                         avg_merge,
                                         avg_result,
                                         avg_destroy};

/* Emits "[start,end):v@ts,v@ts,..." with the elements in the order given. */
static int list_process(fl_context_t *ctx, const fl_window_t *w, const fl_record_t *el, size_t n,
                        void *opaque) {
  (void)opaque;
  char buf[1024];
  int off = snprintf(buf, sizeof buf, "[%lld,%lld):", (long long)w->start, (long long)w->end);
  size_t klen = 0;
  const void *key = fl_ctx_key(ctx, &klen);
  for (size_t i = 0; i < n; i++) {
    int64_t v;
    assert_int_equal(el[i].value_len, 8);
    assert_int_equal(el[i].key_len, klen);
    assert_memory_equal(el[i].key, key, klen);
    memcpy(&v, el[i].value, 8);
    off += snprintf(buf + off, sizeof buf - (size_t)off, "%s%lld@%lld", i ? "," : "", (long long)v,
                    (long long)el[i].timestamp);
    assert_true((size_t)off < sizeof buf);
  }
  return fl_emit(ctx, key, klen, buf, (size_t)off, fl_ctx_timestamp(ctx));
}

/* Emits (count, sum) of the window as two int64. */
static int count_process(fl_context_t *ctx, const fl_window_t *w, const fl_record_t *el, size_t n,
                         void *opaque) {
  (void)opaque;
  (void)w;
  int64_t cs[2] = {(int64_t)n, 0};
  for (size_t i = 0; i < n; i++) {
    int64_t v;
    memcpy(&v, el[i].value, 8);
    cs[1] += v;
  }
  size_t klen = 0;
  const void *key = fl_ctx_key(ctx, &klen);
  return fl_emit(ctx, key, klen, cs, sizeof cs, fl_ctx_timestamp(ctx));
}

/* ---------------------------------------------------------------------------------- */
/* Running a job                                                                        */

typedef enum {
  W_TUMBLING,
  W_SLIDING,
  W_SESSION
} wkind_t;
typedef enum {
  FN_SUM,
  FN_CONCAT,
  FN_AVG,
  FN_LIST,
  FN_COUNT
} fnkind_t;

typedef struct spec {
  wkind_t kind;
  fl_time_domain_t domain;
  int64_t size, slide, offset, gap;
  int64_t lateness;
  bool set_lateness;
  int64_t ooo; /* bounded out-of-orderness */
  bool late_output;
  fnkind_t fn;
  int parallelism;
  int64_t (*clock)(void *opaque);
} spec_t;

/* An input event: key, timestamp, and an int64 value (or a string when s is set). */
typedef struct ev {
  const char *key;
  int64_t ts;
  int64_t v;
  const char *s;
} ev_t;

typedef struct result {
  int rc;
  char err[512];
  collector_t main, late;
  int64_t late_dropped;
} result_t;

static void run(const spec_t *sp, const ev_t *evs, size_t n, result_t *res) {
  memset(res, 0, sizeof *res);
  collector_init(&res->main);
  collector_init(&res->late);
  fl_record_t *recs = calloc(n ? n : 1, sizeof *recs);
  assert_non_null(recs);
  for (size_t i = 0; i < n; i++) {
    recs[i].key = evs[i].key;
    recs[i].key_len = strlen(evs[i].key);
    if (evs[i].s) {
      recs[i].value = evs[i].s;
      recs[i].value_len = strlen(evs[i].s);
    } else {
      recs[i].value = &evs[i].v;
      recs[i].value_len = 8;
    }
    recs[i].timestamp = evs[i].ts;
  }
  char par[16];
  snprintf(par, sizeof par, "%d", sp->parallelism ? sp->parallelism : 1);
  const char *kv[] = {"parallelism", par, "pipeline.auto-watermark-interval", "0", NULL};
  fl_env_t *env = env_of(kv);
  if (sp->clock) assert_int_equal(fl_env_set_clock(env, sp->clock, NULL), 0);

  fl_stream_t *src = fl_source_collection(env, "src", recs, n);
  free(recs); /* copied */
  fl_watermark_strategy_t ws = {
      FL_WATERMARK_STRATEGY_VERSION, FL_WATERMARKS_BOUNDED, sp->ooo, 0, NULL, NULL};
  fl_stream_t *ts = fl_stream_assign_timestamps(src, "ts", &ws);
  fl_keyed_stream_t *ks = fl_stream_key_by(ts, NULL, NULL);
  fl_windowed_stream_t *w = NULL;
  switch (sp->kind) {
  case W_TUMBLING: w = fl_window_tumbling(ks, sp->domain, sp->size, sp->offset); break;
  case W_SLIDING: w = fl_window_sliding(ks, sp->domain, sp->size, sp->slide, sp->offset); break;
  case W_SESSION: w = fl_window_session(ks, sp->domain, sp->gap); break;
  }
  assert_non_null(w);
  if (sp->set_lateness) fl_window_allowed_lateness(w, sp->lateness);
  fl_output_tag_t *tag = NULL;
  if (sp->late_output) {
    tag = fl_output_tag(env, "late");
    fl_window_late_output(w, tag);
  }
  fl_stream_t *out = NULL;
  switch (sp->fn) {
  case FN_SUM: out = fl_window_reduce(w, "win", sum_reduce, NULL); break;
  case FN_CONCAT: out = fl_window_reduce(w, "win", concat_reduce, NULL); break;
  case FN_AVG: out = fl_window_aggregate(w, "win", &avg_fn, &avg_destroyed); break;
  case FN_LIST: out = fl_window_process(w, "win", list_process, NULL); break;
  case FN_COUNT: out = fl_window_process(w, "win", count_process, NULL); break;
  }
  assert_non_null(out);
  fl_stream_sink(out, "sink", &collector_sink, &res->main);
  if (tag)
    fl_stream_sink(fl_stream_side_output(out, tag), "late-sink", &collector_sink, &res->late);
  res->rc = fl_env_execute(env, "test_window");
  snprintf(res->err, sizeof res->err, "%s", fl_env_error(env));
  if (res->rc == 0) res->late_dropped = op_metric(env, "win", "late_records_dropped");
  fl_env_destroy(env);
}

static void run_ok(const spec_t *sp, const ev_t *evs, size_t n, result_t *res) {
  run(sp, evs, n, res);
  if (res->rc != 0) fail_msg("execute: %d %s", res->rc, res->err);
}

static void result_free(result_t *res) {
  collector_free(&res->main);
  collector_free(&res->late);
}

/* Expected (key, int64 value, timestamp). */
typedef struct exp_i {
  const char *key;
  int64_t v;
  int64_t ts;
} exp_i_t;

static void print_out(const collector_t *c) {
  for (size_t i = 0; i < c->n; i++) {
    int64_t v = 0;
    if (c->r[i].value_len == 8) memcpy(&v, c->r[i].value, 8);
    print_message("  out[%zu] key=%s v=%lld ts=%lld\n", i, c->r[i].key, (long long)v,
                  (long long)c->r[i].ts);
  }
}

/* Checks c holds exactly the records e, in this order. */
static void expect_i64(collector_t *c, const exp_i_t *e, size_t n) {
  if (c->n != n) print_out(c);
  assert_int_equal(c->n, n);
  for (size_t i = 0; i < n; i++) {
    if (strcmp(c->r[i].key, e[i].key) != 0 || out_i64(&c->r[i]) != e[i].v ||
        c->r[i].ts != e[i].ts) {
      print_out(c);
      fail_msg("record %zu: want key=%s v=%lld ts=%lld", i, e[i].key, (long long)e[i].v,
               (long long)e[i].ts);
    }
  }
}

typedef struct exp_s {
  const char *key;
  const char *s;
  int64_t ts;
} exp_s_t;

static void expect_str(collector_t *c, const exp_s_t *e, size_t n) {
  if (c->n != n) {
    for (size_t i = 0; i < c->n; i++)
      print_message("  out[%zu] key=%s v=%s ts=%lld\n", i, c->r[i].key, (const char *)c->r[i].value,
                    (long long)c->r[i].ts);
  }
  assert_int_equal(c->n, n);
  for (size_t i = 0; i < n; i++) {
    assert_string_equal(c->r[i].key, e[i].key);
    assert_string_equal((const char *)c->r[i].value, e[i].s);
    assert_true(c->r[i].ts == e[i].ts);
  }
}

#define N(a) (sizeof(a) / sizeof((a)[0]))

/* What a run must give: the main output in this order (sorted by key, then time, first
 * when sorted is set), the late side output, and how many records were dropped as late. */
typedef struct want {
  const exp_i_t *main;
  size_t n_main;
  const exp_i_t *late;
  size_t n_late;
  int64_t dropped;
  bool sorted;
} want_t;

static void check_i64(const spec_t *sp, const ev_t *in, size_t n, const want_t *w) {
  result_t r;
  run_ok(sp, in, n, &r);
  if (w->sorted) collector_sort(&r.main);
  expect_i64(&r.main, w->main, w->n_main);
  expect_i64(&r.late, w->late, w->n_late);
  assert_int_equal(r.late_dropped, w->dropped);
  result_free(&r);
}

/* Runs sp over in and checks the main output holds exactly the strings want, in this
 * order (sorted by key, then time, first when sort is set). */
static void check_str(const spec_t *sp, const ev_t *in, size_t n, bool sort, const exp_s_t *want,
                      size_t n_want) {
  result_t r;
  run_ok(sp, in, n, &r);
  if (sort) collector_sort(&r.main);
  expect_str(&r.main, want, n_want);
  result_free(&r);
}

/* The defaults of every spec: event time, the sum, parallelism 1. */
static spec_t event_time_spec(wkind_t kind, int64_t ooo) {
  spec_t s = {.kind = kind, .domain = FL_EVENT_TIME, .ooo = ooo, .fn = FN_SUM, .parallelism = 1};
  return s;
}

static spec_t tumbling(int64_t size, int64_t offset, int64_t ooo) {
  spec_t s = event_time_spec(W_TUMBLING, ooo);
  s.size = size;
  s.offset = offset;
  return s;
}

static spec_t sliding(int64_t size, int64_t slide, int64_t offset, int64_t ooo) {
  spec_t s = event_time_spec(W_SLIDING, ooo);
  s.size = size;
  s.slide = slide;
  s.offset = offset;
  return s;
}

static spec_t session(int64_t gap, int64_t ooo) {
  spec_t s = event_time_spec(W_SESSION, ooo);
  s.gap = gap;
  return s;
}

/* s with an allowed lateness (fl_window_allowed_lateness). */
static spec_t with_lateness(spec_t s, int64_t lateness) {
  s.set_lateness = true;
  s.lateness = lateness;
  return s;
}

/* ---------------------------------------------------------------------------------- */
/* Assignment                                                                           */

static void tumbling_sum_per_key_and_window(void **state) {
  (void)state;
  spec_t sp = tumbling(10, 0, 0);
  const ev_t in[] = {
      {"a", 1, 1, NULL},   /* wm 0 */
      {"a", 5, 2, NULL},   /* wm 4 */
      {"b", 3, 10, NULL},  /* no new wm */
      {"a", 12, 4, NULL},  /* wm 11: [0,10) fires for a and b */
      {"b", 15, 20, NULL}, /* wm 14 */
      {"a", 25, 8, NULL},  /* wm 24: [10,20) fires */
  };
  const exp_i_t want[] = {{"a", 3, 9}, {"b", 10, 9}, {"a", 4, 19}, {"b", 20, 19}, {"a", 8, 29}};
  check_i64(&sp, in, N(in), &(want_t){.main = want, .n_main = N(want), .sorted = true});
}

static void sliding_element_belongs_to_size_over_slide_windows(void **state) {
  (void)state;
  spec_t sp = sliding(30, 10, 0, 1000);
  /* 25 is in [20,50), [10,40), [0,30); 31 in [30,60), [20,50), [10,40). */
  const ev_t in[] = {{"a", 25, 1, NULL}, {"a", 31, 10, NULL}};
  const exp_i_t want[] = {{"a", 1, 29}, {"a", 11, 39}, {"a", 11, 49}, {"a", 10, 59}};
  check_i64(&sp, in, N(in), &(want_t){.main = want, .n_main = N(want)});
}

/* More windows per element than the operator keeps ready per slide (64): each element
 * still goes into every one of its 100 windows, and each window fires once, in order. */
static void sliding_with_a_hundred_windows_per_element(void **state) {
  (void)state;
  spec_t sp = sliding(100, 1, 0, 0);
  ev_t in[10];
  for (int i = 0; i < 10; i++) in[i] = (ev_t){"a", i, (int64_t)1 << i, NULL};
  result_t r;
  run_ok(&sp, in, N(in), &r);
  /* windows [s, s + 100) for s = -99 .. 9, each with the elements s .. s + 99 */
  assert_int_equal(r.main.n, 109);
  for (int64_t s0 = -99; s0 <= 9; s0++) {
    const col_rec_t *o = &r.main.r[s0 + 99];
    int64_t want = 0;
    for (int i = 0; i < 10; i++)
      if (i >= s0 && i < s0 + 100) want += (int64_t)1 << i;
    assert_int_equal(o->ts, s0 + 99);
    assert_int_equal(out_i64(o), want);
  }
  result_free(&r);
}

static void sliding_fires_each_window_at_its_end(void **state) {
  (void)state;
  spec_t sp = sliding(10, 5, 0, 0);
  const ev_t in[] = {
      {"a", 7, 1, NULL},  /* [5,15), [0,10); wm 6 */
      {"a", 12, 2, NULL}, /* [10,20), [5,15); wm 11: [0,10) fires */
  };
  const exp_i_t want[] = {{"a", 1, 9}, {"a", 3, 14}, {"a", 2, 19}};
  check_i64(&sp, in, N(in), &(want_t){.main = want, .n_main = N(want)});
}

static void tumbling_offset_shifts_window_bounds(void **state) {
  (void)state;
  spec_t sp = tumbling(10, 3, 1000);
  /* Windows [-7,3), [3,13), [13,23). */
  const ev_t in[] = {{"a", 2, 1, NULL}, {"a", 3, 2, NULL}, {"a", 12, 4, NULL}, {"a", 13, 8, NULL}};
  const exp_i_t want[] = {{"a", 1, 2}, {"a", 6, 12}, {"a", 8, 22}};
  check_i64(&sp, in, N(in), &(want_t){.main = want, .n_main = N(want)});

  /* Negative offset: windows [-3,7), [7,17). */
  sp = tumbling(10, -3, 1000);
  const ev_t in2[] = {{"a", 6, 1, NULL}, {"a", 7, 2, NULL}, {"a", -3, 4, NULL}, {"a", -4, 8, NULL}};
  const exp_i_t want2[] = {{"a", 8, -4}, {"a", 5, 6}, {"a", 2, 16}};
  check_i64(&sp, in2, N(in2), &(want_t){.main = want2, .n_main = N(want2)});
}

static void sliding_offset_shifts_window_bounds(void **state) {
  (void)state;
  spec_t sp = sliding(10, 5, 2, 1000);
  /* 4 is in [2,12) and [-3,7); 12 in [12,22) and [7,17). */
  const ev_t in[] = {{"a", 4, 1, NULL}, {"a", 12, 10, NULL}};
  const exp_i_t want[] = {{"a", 1, 6}, {"a", 1, 11}, {"a", 10, 16}, {"a", 10, 21}};
  check_i64(&sp, in, N(in), &(want_t){.main = want, .n_main = N(want)});
}

static void negative_timestamps_use_a_non_negative_modulo(void **state) {
  (void)state;
  spec_t sp = tumbling(10, 0, 100);
  /* -11 in [-20,-10); -10 and -1 in [-10,0); 0 in [0,10). */
  const ev_t in[] = {
      {"a", -11, 4, NULL}, {"a", -10, 2, NULL}, {"a", -1, 1, NULL}, {"a", 0, 8, NULL}};
  const exp_i_t want[] = {{"a", 4, -11}, {"a", 3, -1}, {"a", 8, 9}};
  check_i64(&sp, in, N(in), &(want_t){.main = want, .n_main = N(want)});

  sp = sliding(10, 5, 0, 100);
  /* -3 in [-5,5) and [-10,0). */
  const ev_t in2[] = {{"a", -3, 1, NULL}};
  const exp_i_t want2[] = {{"a", 1, -1}, {"a", 1, 4}};
  check_i64(&sp, in2, N(in2), &(want_t){.main = want2, .n_main = N(want2)});
}

static void extreme_timestamps_saturate_window_bounds(void **state) {
  (void)state;
  spec_t sp = tumbling(10, 0, 0);
  /* INT64_MIN + 1 = -9223372036854775807 = -922337203685477581 * 10 + 3: its window would
   * start 3 ms earlier, before INT64_MIN, so it is [INT64_MIN, INT64_MIN + 8).
   * INT64_MAX - 1 (...806) is in [...800, ...810), which ends at INT64_MAX. */
  const ev_t in[] = {{"a", INT64_MIN + 1, 1, NULL}, {"a", INT64_MAX - 1, 2, NULL}};
  const exp_i_t want[] = {{"a", 1, INT64_MIN + 7}, {"a", 2, INT64_MAX - 1}};
  check_i64(&sp, in, N(in), &(want_t){.main = want, .n_main = N(want)});

  /* A session starting 1 ms before the end of time ends at INT64_MAX. */
  sp = session(10, 0);
  const ev_t in2[] = {{"a", INT64_MAX - 1, 5, NULL}};
  const exp_i_t want2[] = {{"a", 5, INT64_MAX - 1}};
  check_i64(&sp, in2, N(in2), &(want_t){.main = want2, .n_main = N(want2)});
}

/* ---------------------------------------------------------------------------------- */
/* Sessions                                                                             */

static void session_overlapping_windows_merge(void **state) {
  (void)state;
  spec_t sp = session(10, 100);
  /* [1,11) + [5,15) = [1,15); [30,40) stays apart. */
  const ev_t in[] = {{"a", 1, 1, NULL}, {"a", 5, 2, NULL}, {"a", 30, 4, NULL}};
  const exp_i_t want[] = {{"a", 3, 14}, {"a", 4, 39}};
  check_i64(&sp, in, N(in), &(want_t){.main = want, .n_main = N(want)});
}

static void session_windows_that_touch_merge(void **state) {
  (void)state;
  spec_t sp = session(10, 100);
  /* t: [1,11) and [11,21) touch (end == start): one session [1,21).
   * n: [1,11) and [12,22) do not touch: two sessions. */
  const ev_t in[] = {{"t", 1, 1, NULL}, {"t", 11, 2, NULL}, {"n", 1, 1, NULL}, {"n", 12, 2, NULL}};
  const exp_i_t want[] = {{"n", 1, 10}, {"t", 3, 20}, {"n", 2, 21}};
  check_i64(&sp, in, N(in), &(want_t){.main = want, .n_main = N(want), .sorted = true});
}

static void session_element_bridging_two_sessions_merges_all_three(void **state) {
  (void)state;
  spec_t sp = session(10, 100);
  /* [1,11) and [20,30); then [10,20) intersects the first and touches the second. */
  const ev_t in[] = {{"a", 1, 1, NULL}, {"a", 20, 2, NULL}, {"a", 10, 4, NULL}};
  const exp_i_t want[] = {{"a", 7, 29}};
  check_i64(&sp, in, N(in), &(want_t){.main = want, .n_main = N(want)});
}

static void session_late_element_within_lateness_bridges_fired_session(void **state) {
  (void)state;
  spec_t sp = with_lateness(session(10, 0), 100);
  const ev_t in[] = {
      {"a", 1, 1, NULL},  /* [1,11); wm 0 */
      {"a", 21, 2, NULL}, /* [21,31); wm 20: [1,11) fires (1) but is kept for lateness */
      {"a", 11, 4, NULL}, /* [11,21) touches both: cover [1,31) with 1+2+4 */
  };
  const exp_i_t want[] = {{"a", 1, 10}, {"a", 7, 30}};
  check_i64(&sp, in, N(in), &(want_t){.main = want, .n_main = N(want)});
}

static void session_late_element_kept_when_merged_window_is_not_late(void **state) {
  (void)state;
  spec_t sp = session(10, 0);
  const ev_t in[] = {
      {"a", 1, 1, NULL},  /* [1,11); wm 0 */
      {"a", 15, 2, NULL}, /* [15,25); wm 14: [1,11) fires and is removed */
      /* [5,15) alone is late (14 <= 14), but it touches [15,25): the cover [5,25) is
       * not late, so the element is kept. */
      {"a", 5, 4, NULL},
  };
  const exp_i_t want[] = {{"a", 1, 10}, {"a", 6, 24}};
  check_i64(&sp, in, N(in), &(want_t){.main = want, .n_main = N(want)});
}

static void session_merge_concatenates_in_window_start_order(void **state) {
  (void)state;
  spec_t sp = session(10, 100);
  sp.fn = FN_CONCAT;
  /* [1,11) "a" and [20,30) "c" merge through [10,20) "b": the merged contents are the
   * earlier session's, then the later one's, then the new element. */
  const ev_t in[] = {
      {"k", 1, 0, "a"}, {"k", 20, 0, "c"}, {"k", 10, 0, "b"}, {"k", 50, 0, "x"}, {"k", 52, 0, "y"}};
  const exp_s_t want[] = {{"k", "acb", 29}, {"k", "xy", 61}};
  check_str(&sp, in, N(in), false, want, N(want));
}

/* ---------------------------------------------------------------------------------- */
/* Lateness                                                                             */

static void late_element_dropped_and_counted_with_zero_lateness(void **state) {
  (void)state;
  spec_t sp = tumbling(10, 0, 0);
  const ev_t in[] = {
      {"a", 1, 1, NULL},  /* wm 0 */
      {"a", 12, 2, NULL}, /* wm 11: [0,10) fires and is removed */
      {"a", 5, 4, NULL},  /* late: dropped */
  };
  const exp_i_t want[] = {{"a", 1, 9}, {"a", 2, 19}};
  check_i64(&sp, in, N(in), &(want_t){.main = want, .n_main = N(want), .dropped = 1});
}

static void late_elements_within_lateness_refire_and_after_cleanup_go_to_side_output(void **state) {
  (void)state;
  spec_t sp = with_lateness(tumbling(10, 0, 0), 5);
  sp.late_output = true;
  const ev_t in[] = {
      {"a", 1, 1, NULL},   /* wm 0 */
      {"a", 12, 2, NULL},  /* wm 11: [0,10) fires: 1 */
      {"a", 5, 4, NULL},   /* cleanup 14 > 11: added, fires at once: 5 */
      {"a", 3, 8, NULL},   /* again: 13 */
      {"a", 15, 16, NULL}, /* wm 14: cleanup of [0,10) */
      {"a", 4, 32, NULL},  /* [0,10) is gone: late, to the side output */
  };
  const exp_i_t want[] = {{"a", 1, 9}, {"a", 5, 9}, {"a", 13, 9}, {"a", 18, 19}};
  const exp_i_t late[] = {{"a", 32, 4}}; /* the input record, unchanged */
  check_i64(
      &sp, in, N(in),
      &(want_t){.main = want, .n_main = N(want), .late = late, .n_late = N(late), .dropped = 1});
}

/* A key whose first element in a window arrives after the window fired (within the
 * lateness) fires at once, re-fires with every further element, and is cleaned up with
 * the window's other keys: its state goes at the cleanup time like theirs. */
static void late_first_element_of_a_key_fires_at_once_and_goes_at_cleanup(void **state) {
  (void)state;
  spec_t sp = with_lateness(tumbling(10, 0, 0), 5);
  sp.late_output = true;
  const ev_t in[] = {
      {"a", 1, 1, NULL},   /* wm 0 */
      {"b", 12, 2, NULL},  /* wm 11: [0,10) fires: a 1 */
      {"c", 5, 4, NULL},   /* c's first element in [0,10): fires at once, c 4 */
      {"c", 3, 8, NULL},   /* c 12 */
      {"a", 4, 16, NULL},  /* a 17 */
      {"b", 15, 32, NULL}, /* wm 14: cleanup of [0,10), for a and c alike */
      {"c", 6, 64, NULL},  /* late */
      {"a", 7, 128, NULL}, /* late */
  };
  const exp_i_t want[] = {{"a", 1, 9}, {"c", 4, 9}, {"c", 12, 9}, {"a", 17, 9}, {"b", 34, 19}};
  const exp_i_t late[] = {{"c", 64, 6}, {"a", 128, 7}};
  check_i64(
      &sp, in, N(in),
      &(want_t){.main = want, .n_main = N(want), .late = late, .n_late = N(late), .dropped = 2});
}

/* A record whose windows all fired and were cleaned up is late even where the window
 * bounds saturate: at the end of time ts + lateness is not behind the watermark
 * (INT64_MAX > INT64_MAX - 1), but the record still goes to the late output, never
 * nowhere. */
static void element_at_the_end_of_time_after_its_window_fired_is_late(void **state) {
  (void)state;
  spec_t sp = tumbling(1000, 0, 0);
  sp.late_output = true;
  const ev_t in[] = {
      {"a", INT64_MAX, 1, NULL}, /* wm INT64_MAX - 1: the last window fires */
      {"b", INT64_MAX, 2, NULL}, /* its window is gone */
  };
  const exp_i_t want[] = {{"a", 1, INT64_MAX - 1}};
  const exp_i_t late[] = {{"b", 2, INT64_MAX}};
  check_i64(
      &sp, in, N(in),
      &(want_t){.main = want, .n_main = N(want), .late = late, .n_late = N(late), .dropped = 1});
}

static void lateness_saturates_at_the_end_of_time(void **state) {
  (void)state;
  spec_t sp = with_lateness(tumbling(10, 0, 0), INT64_MAX);
  const ev_t in[] = {
      {"a", 5, 1, NULL},   /* wm 4 */
      {"a", 100, 2, NULL}, /* wm 99: [0,10) fires: 1 */
      {"a", 3, 4, NULL},   /* cleanup saturates at INT64_MAX: never late; fires: 5 */
  };
  const exp_i_t want[] = {{"a", 1, 9}, {"a", 5, 9}, {"a", 2, 109}};
  check_i64(&sp, in, N(in), &(want_t){.main = want, .n_main = N(want)});
}

/* ---------------------------------------------------------------------------------- */
/* Watermark edges                                                                      */

static void element_one_past_watermark_is_accepted_into_next_window(void **state) {
  (void)state;
  spec_t sp = tumbling(10, 0, 0);
  const ev_t in[] = {
      {"a", 5, 1, NULL},  /* wm 4 */
      {"a", 10, 2, NULL}, /* 10 is in [10,20), not [0,10); wm 9: [0,10) fires */
      {"a", 9, 4, NULL},  /* ts == wm: [0,10) is late: dropped */
      {"a", 10, 8, NULL}, /* ts == wm + 1: accepted */
  };
  const exp_i_t want[] = {{"a", 1, 9}, {"a", 10, 19}};
  check_i64(&sp, in, N(in), &(want_t){.main = want, .n_main = N(want), .dropped = 1});
}

static void window_fires_exactly_when_watermark_reaches_end_minus_one(void **state) {
  (void)state;
  spec_t sp = tumbling(10, 0, 0);
  /* An element at end - 1 = 9 makes wm 8: [0,10) must not fire yet, or the second 9
   * would be dropped. Only wm 9 (from 10) fires it; a 9 after that is late. */
  const ev_t in[] = {
      {"a", 9, 1, NULL},  /* wm 8 */
      {"a", 9, 2, NULL},  /* still accepted */
      {"a", 10, 4, NULL}, /* wm 9: fires 3 */
      {"a", 9, 8, NULL},  /* late */
  };
  const exp_i_t want[] = {{"a", 3, 9}, {"a", 4, 19}};
  check_i64(&sp, in, N(in), &(want_t){.main = want, .n_main = N(want), .dropped = 1});
}

static void end_of_input_fires_every_window_once(void **state) {
  (void)state;
  /* firing and cleanup are separate timers: still one result each */
  spec_t sp = with_lateness(tumbling(10, 0, 1000), 50);
  const ev_t in[] = {{"a", 1, 1, NULL},
                     {"a", 15, 2, NULL},
                     {"b", 27, 4, NULL},
                     {"b", 21, 8, NULL},
                     {"a", 3, 16, NULL}};
  const exp_i_t want[] = {{"a", 17, 9}, {"a", 2, 19}, {"b", 12, 29}};
  check_i64(&sp, in, N(in), &(want_t){.main = want, .n_main = N(want), .sorted = true});

  sp = session(5, 1000);
  const ev_t in2[] = {{"a", 1, 1, NULL}, {"a", 100, 2, NULL}, {"b", 3, 4, NULL}};
  const exp_i_t want2[] = {{"a", 1, 5}, {"b", 4, 7}, {"a", 2, 104}};
  check_i64(&sp, in2, N(in2), &(want_t){.main = want2, .n_main = N(want2), .sorted = true});
}

/* ---------------------------------------------------------------------------------- */
/* Window functions                                                                     */

static void aggregate_average_with_accumulator(void **state) {
  (void)state;
  atomic_store(&avg_destroyed, 0);
  spec_t sp = tumbling(10, 0, 100);
  sp.fn = FN_AVG;
  const ev_t in[] = {{"a", 1, 2, NULL},
                     {"a", 2, 4, NULL},
                     {"b", 4, 1, NULL},
                     {"a", 3, 9, NULL},
                     {"a", 11, 7, NULL}};
  result_t r;
  run_ok(&sp, in, N(in), &r);
  collector_sort(&r.main);
  assert_int_equal(r.main.n, 3);
  assert_string_equal(r.main.r[0].key, "a");
  assert_true(out_f64(&r.main.r[0]) == 5.0);
  assert_true(r.main.r[0].ts == 9);
  assert_string_equal(r.main.r[1].key, "b");
  assert_true(out_f64(&r.main.r[1]) == 1.0);
  assert_true(r.main.r[1].ts == 9);
  assert_string_equal(r.main.r[2].key, "a");
  assert_true(out_f64(&r.main.r[2]) == 7.0);
  assert_true(r.main.r[2].ts == 19);
  result_free(&r);
  assert_int_equal(atomic_load(&avg_destroyed), 1); /* destroy called exactly once */
}

/* Thousands of keys (8-byte ids): beyond a few thousand cells a run of records loads
 * each record's cell two records ahead, in the lookup before (kv.h's
 * value_ref_prepared_ahead). Every key's average in each of two windows is the
 * model's. */
static void aggregate_over_thousands_of_keys_matches_the_model(void **state) {
  (void)state;
  enum {
    KEYS = 6000,
    ROUNDS = 3
  };
  static char keys[KEYS][9];
  ev_t *in = calloc(KEYS * ROUNDS, sizeof *in);
  assert_non_null(in);
  size_t n = 0;
  for (int r = 0; r < ROUNDS; r++)
    for (int i = 0; i < KEYS; i++) {
      int k = (int)((uint64_t)i * 2654435761u % KEYS); /* another order in each round */
      k = (k + r * 1013) % KEYS;
      snprintf(keys[k], sizeof keys[k], "k%07d", k);
      in[n++] = (ev_t){keys[k], r * 60 + k % 50, (int64_t)k * 10 + r, NULL};
    }
  spec_t sp = tumbling(100, 0, 100);
  sp.fn = FN_AVG;
  result_t res;
  run_ok(&sp, in, n, &res);
  /* window [0, 100) has round 0 and round 1 where it is below 100; [100, 200) the rest */
  assert_int_equal(res.main.n, 2 * KEYS);
  for (size_t i = 0; i < res.main.n; i++) {
    const col_rec_t *o = &res.main.r[i];
    assert_int_equal(o->key_len, 8);
    int k = atoi(o->key + 1);
    bool r1_late = 60 + k % 50 >= 100; /* round 1 in the second window */
    double v0 = k * 10.0, v1 = v0 + 1, v2 = v0 + 2;
    double exp = o->ts == 99 ? (r1_late ? v0 : (v0 + v1) / 2) : (r1_late ? (v1 + v2) / 2 : v2);
    assert_true(o->ts == 99 || o->ts == 199);
    if (out_f64(o) != exp)
      fail_msg("key %d window end %lld: %f, want %f", k, (long long)o->ts, out_f64(o), exp);
  }
  result_free(&res);
  free(in);
}

/* A failing add, on the path that adds a run of records to windows not yet due,
 * fails the job with the function's message; records before it were added. */
static void failing_aggregate_add_fails_the_job_with_its_message(void **state) {
  (void)state;
  for (int sliding_kind = 0; sliding_kind < 2; sliding_kind++) {
    spec_t sp = sliding_kind ? sliding(20, 10, 0, 100) : tumbling(10, 0, 100);
    sp.fn = FN_AVG;
    const ev_t in[] = {{"a", 1, 2, NULL},
                       {"b", 2, 4, NULL},
                       {"a", 3, 6, NULL},
                       {"b", 4, AVG_POISON, NULL},
                       {"a", 5, 1, NULL}};
    result_t r;
    run(&sp, in, N(in), &r);
    assert_int_equal(r.rc, FL_EUSER);
    if (!strstr(r.err, "poison value -999")) fail_msg("error '%s' does not name the cause", r.err);
    result_free(&r);
  }
}

static void aggregate_merges_accumulators_of_sessions(void **state) {
  (void)state;
  atomic_store(&avg_destroyed, 0);
  spec_t sp = session(5, 100);
  sp.fn = FN_AVG;
  /* [1,6) and [8,13), bridged by [5,10): one session [1,13), average (2+4+6)/3. */
  const ev_t in[] = {{"a", 1, 2, NULL}, {"a", 8, 4, NULL}, {"a", 5, 6, NULL}};
  result_t r;
  run_ok(&sp, in, N(in), &r);
  assert_int_equal(r.main.n, 1);
  assert_true(out_f64(&r.main.r[0]) == 4.0);
  assert_true(r.main.r[0].ts == 12);
  result_free(&r);
  assert_int_equal(atomic_load(&avg_destroyed), 1);
}

static void process_function_gets_elements_in_arrival_order(void **state) {
  (void)state;
  spec_t sp = tumbling(10, 0, 100);
  sp.fn = FN_LIST;
  const ev_t in[] = {{"a", 5, 1, NULL}, {"a", 2, 2, NULL}, {"b", 3, 7, NULL},
                     {"a", 8, 3, NULL}, {"a", 1, 4, NULL}, {"a", 14, 5, NULL}};
  const exp_s_t want[] = {
      {"a", "[0,10):1@5,2@2,3@8,4@1", 9}, {"b", "[0,10):7@3", 9}, {"a", "[10,20):5@14", 19}};
  check_str(&sp, in, N(in), true, want, N(want));
}

static void process_function_refires_with_full_contents_within_lateness(void **state) {
  (void)state;
  spec_t sp = with_lateness(tumbling(10, 0, 0), 100);
  sp.fn = FN_LIST;
  const ev_t in[] = {{"a", 5, 1, NULL}, {"a", 20, 2, NULL}, {"a", 3, 3, NULL}};
  const exp_s_t want[] = {
      {"a", "[0,10):1@5", 9}, {"a", "[0,10):1@5,3@3", 9}, {"a", "[20,30):2@20", 29}};
  check_str(&sp, in, N(in), false, want, N(want));
}

static void reduce_output_timestamp_is_window_end_minus_one(void **state) {
  (void)state;
  spec_t sp = tumbling(100, 30, 1000);
  sp.fn = FN_CONCAT;
  /* Windows [-70,30), [30,130); values reduced in arrival order. */
  const ev_t in[] = {{"k", 29, 0, "x"}, {"k", 30, 0, "y"}, {"k", 129, 0, "z"}, {"k", -70, 0, "w"}};
  const exp_s_t want[] = {{"k", "xw", 29}, {"k", "yz", 129}};
  check_str(&sp, in, N(in), false, want, N(want));
}

/* ---------------------------------------------------------------------------------- */
/* Parallelism                                                                          */

#define NKEYS 200
#define NROUNDS 50

static uint64_t mix64(uint64_t x) {
  x ^= x >> 33;
  x *= UINT64_C(0xff51afd7ed558ccd);
  x ^= x >> 33;
  x *= UINT64_C(0xc4ceb9fe1a85ec53);
  x ^= x >> 33;
  return x;
}

static char g_keys[NKEYS][8];

/* Round i, then key k: ts = 20 i + jitter (0..29). With D = 40 the watermark stays
 * below 20 i, so nothing is late and every parallelism must give the same windows. */
static ev_t *gen_events(size_t *n) {
  ev_t *e = calloc(NKEYS * NROUNDS, sizeof *e);
  assert_non_null(e);
  for (int k = 0; k < NKEYS; k++) snprintf(g_keys[k], sizeof g_keys[k], "k%03d", k);
  size_t m = 0;
  for (int i = 0; i < NROUNDS; i++)
    for (int k = 0; k < NKEYS; k++) {
      e[m].key = g_keys[k];
      e[m].ts = 20 * i + (int64_t)(mix64((uint64_t)k * 1000003u + (uint64_t)i) % 30);
      e[m].v = k * 1000 + i;
      m++;
    }
  *n = m;
  return e;
}

/* Output of the straightforward model: appended to a collector-like array. */
static void model_add(collector_t *c, const char *key, int64_t sum, int64_t ts) {
  fl_record_t rec = {key, strlen(key), &sum, 8, ts};
  assert_int_equal(collector_write(NULL, &rec, c), 0);
}

static int cmp_i64(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return x < y ? -1 : x > y;
}

/* The expected windows, computed per key from the definitions (not the operator's
 * formulas): tumbling 100, sliding 100/30, sessions with gap 25. */
static void model(const ev_t *e, size_t n, wkind_t kind, collector_t *out) {
  int64_t tsv[NROUNDS][2];
  for (int k = 0; k < NKEYS; k++) {
    size_t m = 0;
    for (size_t i = 0; i < n; i++)
      if (e[i].key == g_keys[k]) {
        tsv[m][0] = e[i].ts;
        tsv[m][1] = e[i].v;
        m++;
      }
    assert_int_equal(m, NROUNDS);
    qsort(tsv, m, sizeof tsv[0], cmp_i64);
    if (kind == W_SESSION) {
      int64_t start = tsv[0][0], end = tsv[0][0] + 25, sum = tsv[0][1];
      for (size_t i = 1; i < m; i++) {
        if (tsv[i][0] <= end) { /* [ts, ts+25) intersects or touches [start, end) */
          if (tsv[i][0] + 25 > end) end = tsv[i][0] + 25;
          sum += tsv[i][1];
        } else {
          model_add(out, g_keys[k], sum, end - 1);
          start = tsv[i][0];
          end = start + 25;
          sum = tsv[i][1];
        }
      }
      (void)start;
      model_add(out, g_keys[k], sum, end - 1);
      continue;
    }
    int64_t size = 100, slide = kind == W_SLIDING ? 30 : 100;
    /* Every window start (a multiple of slide) from before the first timestamp. */
    int64_t first = -((size + slide - 1) / slide) * slide;
    for (int64_t s = first; s <= 20 * NROUNDS + 30; s += slide) {
      int64_t sum = 0;
      bool any = false;
      for (size_t i = 0; i < m; i++)
        if (tsv[i][0] >= s && tsv[i][0] < s + size) {
          sum += tsv[i][1];
          any = true;
        }
      if (any) model_add(out, g_keys[k], sum, s + size - 1);
    }
  }
}

static void same_windows_for_parallelism_1_2_4(void **state) {
  (void)state;
  size_t n = 0;
  ev_t *e = gen_events(&n);
  const wkind_t kinds[] = {W_TUMBLING, W_SLIDING, W_SESSION};
  for (size_t ki = 0; ki < N(kinds); ki++) {
    collector_t want;
    collector_init(&want);
    model(e, n, kinds[ki], &want);
    collector_sort(&want);
    assert_true(want.n > NKEYS);
    const int pars[] = {1, 2, 4};
    for (size_t pi = 0; pi < N(pars); pi++) {
      spec_t sp = kinds[ki] == W_SESSION   ? session(25, 40)
                  : kinds[ki] == W_SLIDING ? sliding(100, 30, 0, 40)
                                           : tumbling(100, 0, 40);
      sp.parallelism = pars[pi];
      result_t r;
      run_ok(&sp, e, n, &r);
      collector_sort(&r.main);
      if (r.main.n != want.n)
        fail_msg("kind %d parallelism %d: %zu results, want %zu", (int)kinds[ki], pars[pi],
                 r.main.n, want.n);
      for (size_t i = 0; i < want.n; i++) {
        if (col_rec_compare(&r.main.r[i], &want.r[i]) != 0)
          fail_msg(
              "kind %d parallelism %d: result %zu: key=%s v=%lld ts=%lld, want key=%s "
              "v=%lld ts=%lld",
              (int)kinds[ki], pars[pi], i, r.main.r[i].key, (long long)out_i64(&r.main.r[i]),
              (long long)r.main.r[i].ts, want.r[i].key, (long long)out_i64(&want.r[i]),
              (long long)want.r[i].ts);
      }
      assert_int_equal(r.late_dropped, 0);
      result_free(&r);
    }
    collector_free(&want);
  }
  free(e);
}

/* ---------------------------------------------------------------------------------- */
/* Processing time                                                                      */

static void check_processing_time_counts(wkind_t kind, int parallelism) {
  size_t n = 0;
  ev_t *e = gen_events(&n);
  atomic_store(&g_tick_ms, 1000);
  spec_t sp = kind == W_SESSION ? session(3, 0) : tumbling(7, 0, 0);
  sp.domain = FL_PROCESSING_TIME;
  sp.fn = FN_COUNT;
  sp.clock = ticking_clock;
  sp.parallelism = parallelism;
  result_t r;
  run_ok(&sp, e, n, &r);
  int64_t count = 0, sum = 0, want_sum = 0;
  for (size_t i = 0; i < n; i++) want_sum += e[i].v;
  for (size_t i = 0; i < r.main.n; i++) {
    int64_t cs[2];
    assert_int_equal(r.main.r[i].value_len, sizeof cs);
    memcpy(cs, r.main.r[i].value, sizeof cs);
    assert_true(cs[0] > 0);
    count += cs[0];
    sum += cs[1];
    /* Windows are on the manual clock's scale, after its start. */
    assert_true(r.main.r[i].ts >= 1000);
    if (kind == W_TUMBLING) assert_true((r.main.r[i].ts + 1) % 7 == 0);
  }
  assert_true(count == (int64_t)n); /* every element counted exactly once */
  assert_true(sum == want_sum);
  assert_int_equal(r.late_dropped, 0);
  result_free(&r);
  free(e);
}

static void processing_time_windows_count_every_element_once(void **state) {
  (void)state;
  check_processing_time_counts(W_TUMBLING, 1);
  check_processing_time_counts(W_TUMBLING, 2);
  check_processing_time_counts(W_SESSION, 1);
  check_processing_time_counts(W_SESSION, 2);
}

/* ---------------------------------------------------------------------------------- */
/* Builder validation                                                                   */

static void expect_build_error(spec_t sp, const char *needle) {
  const ev_t in[] = {{"a", 1, 1, NULL}};
  result_t r;
  run(&sp, in, N(in), &r);
  assert_int_equal(r.rc, FL_EINVAL);
  if (!strstr(r.err, needle)) fail_msg("error '%s' does not name '%s'", r.err, needle);
  result_free(&r);
}

static void invalid_window_parameters_fail_the_job(void **state) {
  (void)state;
  expect_build_error(tumbling(0, 0, 0), "size");
  expect_build_error(tumbling(10, 10, 0), "offset");
  expect_build_error(tumbling(10, -10, 0), "offset");
  expect_build_error(sliding(10, 0, 0, 0), "slide");
  expect_build_error(sliding(0, 5, 0, 0), "size");
  expect_build_error(sliding(10, 5, 5, 0), "offset");
  expect_build_error(session(0, 0), "gap");
  spec_t sp = with_lateness(tumbling(10, 0, 0), -1);
  expect_build_error(sp, "lateness");
  sp = with_lateness(tumbling(10, 0, 0), 5);
  sp.domain = FL_PROCESSING_TIME;
  expect_build_error(sp, "event-time");
}

/* A job of one record keyed by its key, for the build errors below. */
static fl_keyed_stream_t *one_keyed_record(fl_env_t **env) {
  char err[256];
  assert_int_equal(fl_env_new(env, NULL, err, sizeof err), 0);
  static const fl_record_t rec = {"a", 1, "x", 1, 1};
  fl_stream_t *s = fl_source_collection(*env, "src", &rec, 1);
  return fl_stream_key_by(s, NULL, NULL);
}

/* out (a window's output) into a sink: execute fails with FL_EINVAL and an error that
 * holds needle. Destroys env. */
static void execute_fails_with(fl_env_t *env, fl_stream_t *out, const char *needle) {
  assert_non_null(out);
  assert_int_equal(fl_stream_sink(out, "sink", &collector_sink, NULL), 0);
  assert_int_equal(fl_env_execute(env, "x"), FL_EINVAL);
  if (!strstr(fl_env_error(env), needle)) fprintf(stderr, "error: %s\n", fl_env_error(env));
  assert_non_null(strstr(fl_env_error(env), needle));
  fl_env_destroy(env);
}

static void aggregate_without_merge_fails_for_sessions(void **state) {
  (void)state;
  fl_env_t *env = NULL;
  fl_keyed_stream_t *ks = one_keyed_record(&env);
  fl_aggregate_fn_t fn = avg_fn;
  fn.merge = NULL;
  fn.destroy = NULL;
  fl_stream_t *out =
      fl_window_aggregate(fl_window_session(ks, FL_EVENT_TIME, 10), "win", &fn, NULL);
  execute_fails_with(env, out, "merge");
}

/* A NULL reduce or process function fails the job at execute, naming the window and which
 * function is missing. */
static void null_window_functions_fail_naming_them(void **state) {
  (void)state;
  fl_env_t *env = NULL;
  fl_windowed_stream_t *w = fl_window_tumbling(one_keyed_record(&env), FL_EVENT_TIME, 10, 0);
  execute_fails_with(env, fl_window_reduce(w, "win", NULL, NULL),
                     "window 'win': reduce function is NULL");
  w = fl_window_tumbling(one_keyed_record(&env), FL_EVENT_TIME, 10, 0);
  execute_fails_with(env, fl_window_process(w, "win", NULL, NULL),
                     "window 'win': process function is NULL");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(tumbling_sum_per_key_and_window),
      cmocka_unit_test(failing_aggregate_add_fails_the_job_with_its_message),
      cmocka_unit_test(sliding_element_belongs_to_size_over_slide_windows),
      cmocka_unit_test(sliding_with_a_hundred_windows_per_element),
      cmocka_unit_test(sliding_fires_each_window_at_its_end),
      cmocka_unit_test(tumbling_offset_shifts_window_bounds),
      cmocka_unit_test(sliding_offset_shifts_window_bounds),
      cmocka_unit_test(negative_timestamps_use_a_non_negative_modulo),
      cmocka_unit_test(extreme_timestamps_saturate_window_bounds),
      cmocka_unit_test(session_overlapping_windows_merge),
      cmocka_unit_test(session_windows_that_touch_merge),
      cmocka_unit_test(session_element_bridging_two_sessions_merges_all_three),
      cmocka_unit_test(session_late_element_within_lateness_bridges_fired_session),
      cmocka_unit_test(session_late_element_kept_when_merged_window_is_not_late),
      cmocka_unit_test(session_merge_concatenates_in_window_start_order),
      cmocka_unit_test(late_element_dropped_and_counted_with_zero_lateness),
      cmocka_unit_test(late_elements_within_lateness_refire_and_after_cleanup_go_to_side_output),
      cmocka_unit_test(late_first_element_of_a_key_fires_at_once_and_goes_at_cleanup),
      cmocka_unit_test(lateness_saturates_at_the_end_of_time),
      cmocka_unit_test(element_at_the_end_of_time_after_its_window_fired_is_late),
      cmocka_unit_test(element_one_past_watermark_is_accepted_into_next_window),
      cmocka_unit_test(window_fires_exactly_when_watermark_reaches_end_minus_one),
      cmocka_unit_test(end_of_input_fires_every_window_once),
      cmocka_unit_test(aggregate_average_with_accumulator),
      cmocka_unit_test(aggregate_over_thousands_of_keys_matches_the_model),
      cmocka_unit_test(aggregate_merges_accumulators_of_sessions),
      cmocka_unit_test(process_function_gets_elements_in_arrival_order),
      cmocka_unit_test(process_function_refires_with_full_contents_within_lateness),
      cmocka_unit_test(reduce_output_timestamp_is_window_end_minus_one),
      cmocka_unit_test(same_windows_for_parallelism_1_2_4),
      cmocka_unit_test(processing_time_windows_count_every_element_once),
      cmocka_unit_test(invalid_window_parameters_fail_the_job),
      cmocka_unit_test(aggregate_without_merge_fails_for_sessions),
      cmocka_unit_test(null_window_functions_fail_naming_them),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
