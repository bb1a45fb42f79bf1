/* The runtime through the public API: chaining, partitioning, side outputs, rolling
 * aggregations, timers, idleness, backpressure, errors, stop, metrics, configuration. */
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <cmocka.h>
#include <jansson.h>
#include <sched.h>
#include <stdatomic.h>

#include "fl_test_util.h"

/* ---------------------------------------------------------------------------------- */

static int parse_int(const fl_record_t *r) {
  char buf[32] = {0};
  memcpy(buf, r->value, r->value_len < 31 ? r->value_len : 31);
  return atoi(buf);
}

static int emit_int(fl_context_t *ctx, const fl_record_t *in, int v) {
  char buf[32];
  int n = snprintf(buf, sizeof buf, "%d", v);
  return fl_emit(ctx, in->key, in->key_len, buf, (size_t)n, in->timestamp);
}

static int times_ten(fl_context_t *ctx, const fl_record_t *in, void *o) {
  return emit_int(ctx, in, parse_int(in) * 10);
}
static int keep_multiple_of_20(fl_context_t *ctx, const fl_record_t *in, void *o) {
  return parse_int(in) % 20 == 0;
}
static int twice(fl_context_t *ctx, const fl_record_t *in, void *o) {
  int rc = fl_emit_record(ctx, in);
  return rc ? rc : fl_emit_record(ctx, in);
}

static void chain_of_map_filter_flat_map_keeps_order(void **state) {
  fl_env_t *env = env_with(1, NULL);
  fl_record_t *recs = int_records("k", 1, 6);
  fl_stream_t *s = fl_source_collection(env, "numbers", recs, 6);
  free(recs);
  s = fl_stream_map(s, "x10", times_ten, NULL);
  s = fl_stream_filter(s, "even", keep_multiple_of_20, NULL);
  s = fl_stream_flat_map(s, "twice", twice, NULL);
  collector_t c;
  sink_into(s, &c);
  execute_ok(env, "chain");
  const char *want[] = {"20", "20", "40", "40", "60", "60"};
  assert_int_equal(c.n, 6);
  for (int i = 0; i < 6; i++) assert_string_equal(c.r[i].value, want[i]);
  assert_int_equal(c.r[0].ts, 1);
  collector_free(&c);
  fl_env_destroy(env);
}

/* ---------------------------------------------------------------------------------- */

static int value_as_double(fl_context_t *ctx, const fl_record_t *in, double *out, void *o) {
  *out = parse_int(in);
  return 0;
}

/* Runs 20,000 records over 97 keys through keyBy + rolling sum and returns, per key, the
 * sequence of running sums as one string. */
static char **rolling_sums(int parallelism, size_t *n_out) {
  enum {
    N = 20000,
    K = 97
  };
  fl_env_t *env = env_with(parallelism, NULL);
  fl_record_t *recs = calloc(N, sizeof *recs);
  char(*keys)[8] = calloc(N, 8);
  char(*vals)[8] = calloc(N, 8);
  for (int i = 0; i < N; i++) {
    snprintf(keys[i], 8, "k%d", (i * 31) % K);
    snprintf(vals[i], 8, "%d", i % 13);
    recs[i] = rec_str(keys[i], vals[i], i);
  }
  fl_stream_t *s = fl_source_collection(env, "src", recs, N);
  fl_keyed_stream_t *ks = fl_stream_key_by(fl_stream_rebalance(s), NULL, NULL);
  fl_stream_t *sum = fl_keyed_sum(ks, "sum", value_as_double, NULL);
  collector_t c;
  sink_into(sum, &c);
  execute_ok(env, "rolling");
  assert_int_equal(c.n, N);
  /* Records of one key keep their order only within one path; after rebalance they come
   * through different subtasks, so compare the multiset of (key, final sum) and the
   * count of updates per key. */
  char **per_key = calloc(K, sizeof *per_key);
  double *final = calloc(K, sizeof *final);
  int *count = calloc(K, sizeof *count);
  for (size_t i = 0; i < c.n; i++) {
    int k = atoi(c.r[i].key + 1);
    double v;
    assert_int_equal(c.r[i].value_len, sizeof v);
    memcpy(&v, c.r[i].value, sizeof v);
    if (v > final[k]) final[k] = v;
    count[k]++;
  }
  for (int k = 0; k < K; k++) {
    per_key[k] = malloc(64);
    snprintf(per_key[k], 64, "%d:%.0f", count[k], final[k]);
  }
  free(final);
  free(count);
  collector_free(&c);
  fl_env_destroy(env);
  free(recs);
  free(keys);
  free(vals);
  *n_out = K;
  return per_key;
}

static void rolling_sum_is_identical_for_parallelism_1_2_4(void **state) {
  size_t n1, n2, n4;
  char **a = rolling_sums(1, &n1), **b = rolling_sums(2, &n2), **d = rolling_sums(4, &n4);
  /* independent computation */
  double expect[97] = {0};
  int cnt[97] = {0};
  for (int i = 0; i < 20000; i++) {
    expect[(i * 31) % 97] += i % 13;
    cnt[(i * 31) % 97]++;
  }
  for (size_t k = 0; k < n1; k++) {
    char want[64];
    snprintf(want, sizeof want, "%d:%.0f", cnt[k], expect[k]);
    assert_string_equal(a[k], want);
    assert_string_equal(b[k], want);
    assert_string_equal(d[k], want);
    free(a[k]);
    free(b[k]);
    free(d[k]);
  }
  free(a);
  free(b);
  free(d);
}

/* ---------------------------------------------------------------------------------- */

static int concat(fl_context_t *ctx, const void *a, size_t al, const void *b, size_t bl,
                  fl_buf_t *out, void *o) {
  fl_buf_set(out, a, al);
  fl_buf_append(out, "+", 1);
  return fl_buf_append(out, b, bl);
}

static void rolling_reduce_keeps_per_key_order_through_a_hash_edge(void **state) {
  fl_env_t *env = env_with(3, NULL);
  fl_record_t recs[] = {rec_str("a", "1", 1), rec_str("b", "x", 2), rec_str("a", "2", 3),
                        rec_str("a", "3", 4), rec_str("b", "y", 5)};
  fl_stream_t *s = fl_source_collection(env, "src", recs, 5);
  fl_stream_t *r = fl_keyed_reduce(fl_stream_key_by(s, NULL, NULL), "concat", concat, NULL);
  collector_t c;
  sink_into(r, &c);
  execute_ok(env, "reduce");
  assert_int_equal(c.n, 5);
  /* one key's records take one path: their order is kept */
  const char *wa[] = {"1", "1+2", "1+2+3"}, *wb[] = {"x", "x+y"};
  int ia = 0, ib = 0;
  for (size_t i = 0; i < c.n; i++) {
    if (c.r[i].key[0] == 'a')
      assert_string_equal(c.r[i].value, wa[ia++]);
    else
      assert_string_equal(c.r[i].value, wb[ib++]);
  }
  assert_int_equal(ia, 3);
  assert_int_equal(ib, 2);
  collector_free(&c);
  fl_env_destroy(env);
}

/* ---------------------------------------------------------------------------------- */

static const fl_output_tag_t *g_odd_tag;

static int split_odd(fl_context_t *ctx, const fl_record_t *in, void *inst) {
  if (parse_int(in) % 2) return fl_emit_side(ctx, g_odd_tag, in);
  return fl_emit_record(ctx, in);
}

static void side_output_and_union_deliver_every_record_once(void **state) {
  fl_env_t *env = env_with(2, NULL);
  g_odd_tag = fl_output_tag(env, "odd");
  assert_ptr_equal(g_odd_tag, fl_output_tag(env, "odd"));
  enum {
    N = 1000
  };
  fl_record_t *recs = int_records("", 0, N);
  fl_stream_t *a = fl_source_collection(env, "a", recs, N);
  fl_stream_t *b = fl_source_collection(env, "b", recs, N);
  free(recs);
  fl_process_fn_t fn = {FL_PROCESS_FN_VERSION, NULL, split_odd, NULL, NULL, NULL};
  fl_stream_t *split =
      fl_stream_process(fl_stream_rebalance(fl_stream_union(a, b)), "split", &fn, NULL);
  fl_stream_t *odd = fl_stream_side_output(split, g_odd_tag);
  collector_t even_c, odd_c;
  sink_into(split, &even_c);
  sink_into(odd, &odd_c);
  execute_ok(env, "side");
  assert_int_equal(even_c.n, N);
  assert_int_equal(odd_c.n, N);
  int seen[N] = {0};
  for (size_t i = 0; i < odd_c.n; i++) {
    int v = atoi(odd_c.r[i].value);
    assert_true(v % 2 == 1);
    seen[v]++;
  }
  for (size_t i = 0; i < even_c.n; i++) {
    int v = atoi(even_c.r[i].value);
    assert_true(v % 2 == 0);
    seen[v]++;
  }
  for (int i = 0; i < N; i++) assert_int_equal(seen[i], 2);
  /* rebalance spread the records evenly over both subtasks */
  size_t on1 = 0;
  for (size_t i = 0; i < even_c.n; i++) on1 += even_c.r[i].subtask == 1;
  for (size_t i = 0; i < odd_c.n; i++) on1 += odd_c.r[i].subtask == 1;
  assert_int_equal(on1, N);
  collector_free(&even_c);
  collector_free(&odd_c);
  fl_env_destroy(env);
}

/* ---------------------------------------------------------------------------------- */

static int fail_on_5(fl_context_t *ctx, const fl_record_t *in, void *o) {
  int v = parse_int(in);
  if (v == 5) return fl_ctx_fail(ctx, "cannot handle value %d", v);
  return fl_emit_record(ctx, in);
}

static void user_error_stops_the_job_and_names_the_operator(void **state) {
  for (int p = 1; p <= 2; p++) {
    fl_env_t *env = env_with(p, NULL);
    fl_record_t *recs = int_records("k", 0, 10);
    fl_stream_t *s =
        fl_stream_map(fl_source_collection(env, "src", recs, 10), "validate", fail_on_5, NULL);
    free(recs);
    collector_t c;
    sink_into(s, &c);
    execute_fails(env, "fail", FL_EUSER, "operator 'validate'");
    assert_non_null(strstr(fl_env_error(env), "cannot handle value 5"));
    /* what was emitted before the failure reached the sink */
    assert_int_equal(c.n, 5);
    collector_free(&c);
    fl_env_destroy(env);
  }
}

static int emit_none(fl_context_t *ctx, const fl_record_t *in, void *o) { return 0; }

/* One record through a map named name with fn: the job must fail with code and an
 * error holding needle. */
static void one_map_fails(fl_map_fn fn, const char *name, int code, const char *needle) {
  fl_env_t *env = env_with(1, NULL);
  fl_record_t r = rec_str("k", "v", 1);
  collector_t c;
  sink_into(fl_stream_map(fl_source_collection(env, "src", &r, 1), name, fn, NULL), &c);
  execute_fails(env, name, code, needle);
  collector_free(&c);
  fl_env_destroy(env);
}

static void map_must_emit_exactly_one_record(void **state) {
  one_map_fails(emit_none, "m", FL_EUSER, "emitted 0 records");
}

/* The user functions of chained operators, which the producer's emit calls itself (a
 * filter, flat_map, process function or sink write after a map, its only target or one
 * of two): the instance an open made is the one each call gets, and a failure names
 * the function and the message. */
static int g_instance_marker;

static int third_fails(fl_context_t *ctx, const fl_record_t *in, const char *what) {
  return parse_int(in) == 3 ? fl_ctx_fail(ctx, "%s says no to 3", what) : 0;
}

static int filter_no3(fl_context_t *ctx, const fl_record_t *in, void *o) {
  int rc = third_fails(ctx, in, "the filter");
  return rc < 0 ? rc : 1;
}

static int flat_map_no3(fl_context_t *ctx, const fl_record_t *in, void *o) {
  int rc = third_fails(ctx, in, "the flat_map");
  return rc < 0 ? rc : fl_emit_record(ctx, in);
}

static int marker_open(fl_context_t *ctx, void *opaque, void **instance) {
  *instance = &g_instance_marker;
  return 0;
}

static int process_no3(fl_context_t *ctx, const fl_record_t *in, void *instance) {
  if (instance != &g_instance_marker) return fl_ctx_fail(ctx, "not the open's instance");
  int rc = third_fails(ctx, in, "the process function");
  return rc < 0 ? rc : fl_emit_record(ctx, in);
}

static int write_no3(fl_context_t *ctx, const fl_record_t *in, void *instance) {
  if (instance != &g_instance_marker) return fl_ctx_fail(ctx, "not the open's instance");
  return third_fails(ctx, in, "the sink");
}

static int identity(fl_context_t *ctx, const fl_record_t *in, void *o) {
  return fl_emit_record(ctx, in);
}

static void chained_user_functions_fail_naming_the_function(void **state) {
  static const fl_process_fn_t pfn = {
      .version = FL_PROCESS_FN_VERSION, .open = marker_open, .process = process_no3};
  static const fl_sink_fn_t sfn = {
      .version = FL_SINK_FN_VERSION, .open = marker_open, .write = write_no3};
  const char *needles[] = {"filter function failed: the filter says no to 3",
                           "flat_map function failed: the flat_map says no to 3",
                           "process function failed: the process function says no to 3",
                           "sink write failed: the sink says no to 3"};
  for (int which = 0; which < 8; which++) {
    fl_env_t *env = env_with(1, NULL);
    fl_record_t *recs = int_records("k", 0, 6);
    fl_stream_t *s =
        fl_stream_map(fl_source_collection(env, "src", recs, 6), "first", identity, NULL);
    free(recs);
    collector_t c = {0}, other;
    if (which >= 4) sink_into(s, &other); /* the map's first target of two */
    if (which % 4 == 0) s = fl_stream_filter(s, "f", filter_no3, NULL);
    if (which % 4 == 1) s = fl_stream_flat_map(s, "f", flat_map_no3, NULL);
    if (which % 4 == 2) s = fl_stream_process(s, "f", &pfn, NULL);
    if (which % 4 == 3) {
      collector_init(&c);
      assert_int_equal(fl_stream_sink(s, "f", &sfn, NULL), FL_OK);
    } else {
      sink_into(s, &c);
    }
    execute_fails(env, "chained", FL_EUSER, needles[which % 4]);
    assert_non_null(strstr(fl_env_error(env), "operator 'f'"));
    /* the records before the failing one went through */
    if (which % 4 < 3) assert_int_equal(c.n, 3);
    if (which >= 4) {
      assert_true(other.n >= 3);
      collector_free(&other);
    }
    collector_free(&c);
    fl_env_destroy(env);
  }
}

static void builder_errors_are_reported_by_execute(void **state) {
  one_map_fails(NULL, "nofn", FL_EINVAL, "operator 'nofn'");
  fl_env_t *env = env_with(1, NULL);
  fl_record_t r = rec_str("k", "v", 1);
  fl_source_collection(env, "src", &r, 1);
  execute_fails(env, "nosink", FL_EPLAN, "no sink");
  assert_int_equal(fl_env_execute(env, "again"), FL_EINVAL);
  fl_env_destroy(env);
}

/* ---------------------------------------------------------------------------------- */
/* Backpressure: a slow sink must hold the source back; memory stays bounded. */

typedef struct {
  _Atomic long produced;
  _Atomic long consumed;
  _Atomic long max_gap;
  long total;
} bp_t;

static int bp_run(fl_context_t *ctx, void *inst) {
  bp_t *b = inst;
  size_t budget = fl_ctx_source_budget(ctx);
  while (budget--) {
    long i = atomic_fetch_add(&b->produced, 1);
    if (i >= b->total) return FL_SOURCE_END;
    long gap = i - atomic_load(&b->consumed);
    long m = atomic_load(&b->max_gap);
    while (gap > m && !atomic_compare_exchange_weak(&b->max_gap, &m, gap)) {}
    char key[16];
    int kl = snprintf(key, sizeof key, "%ld", i % 1000);
    fl_emit(ctx, key, (size_t)kl, "0123456789012345678901234567890123456789", 40, i);
  }
  return FL_SOURCE_MORE;
}

static int bp_slow_write(fl_context_t *ctx, const fl_record_t *in, void *inst) {
  bp_t *b = inst;
  for (volatile int spin = 0; spin < 2000; spin++) {}
  atomic_fetch_add(&b->consumed, 1);
  return 0;
}

static void slow_sink_backpressures_the_source(void **state) {
  static const char *const kv[] = {
      "parallelism", "2", "execution.batch-size", "64", "execution.channel-capacity", "4", NULL};
  fl_env_t *env = env_of(kv);
  bp_t b = {.total = 200000};
  fl_source_fn_t src = {.version = FL_SOURCE_FN_VERSION, .run = bp_run};
  /* one shared counter: a single-reader source */
  fl_stream_t *s = fl_source(env, "fast", &src, &b, 0);
  fl_keyed_stream_t *ks = fl_stream_key_by(s, NULL, NULL);
  fl_process_fn_t pass = {FL_PROCESS_FN_VERSION, NULL, twice, NULL, NULL, NULL};
  fl_stream_t *p = fl_keyed_process(ks, "pass", &pass, NULL);
  fl_sink_fn_t slow = {.version = FL_SINK_FN_VERSION, .write = bp_slow_write};
  fl_stream_sink(p, "slow", &slow, &b);
  execute_ok(env, "bp");
  assert_int_equal(atomic_load(&b.consumed), 2 * b.total);
  /* 2 senders x 2 receivers x (4 ring slots + 1 open + overflow of one record's
   * fan-out) x 64 records, plus the source's own budget: far below the input. */
  long bound = 2 * 2 * 6 * 64 + 64 + 64;
  assert_true(atomic_load(&b.max_gap) <= bound);
  fl_env_destroy(env);
}

/* ---------------------------------------------------------------------------------- */
/* Keys and values of every size across a hash edge: the edge writer copies small ones
 * by hand (by length: 0, 1-3, 4-7, 8, 9-16) and larger ones with memcpy. */

enum {
  SZ_MAX = 40
};

/* Byte i of a key (which = 0) or value (1) of record (kl, vl): different for every
 * record, field and position, so a copy from the wrong place or of the wrong length
 * shows. */
static uint8_t sz_byte(int which, size_t kl, size_t vl, size_t i) {
  return (uint8_t)(1 + which * 101 + kl * 7 + vl * 13 + i * 29);
}

static void sz_fill(uint8_t *b, int which, size_t kl, size_t vl, size_t n) {
  for (size_t i = 0; i < n; i++) b[i] = sz_byte(which, kl, vl, i);
}

typedef struct {
  size_t next; /* kl * (SZ_MAX + 1) + vl of the next record */
} sz_src_t;

static int sz_run(fl_context_t *ctx, void *inst) {
  sz_src_t *s = inst;
  size_t budget = fl_ctx_source_budget(ctx);
  for (; budget-- && s->next < (SZ_MAX + 1) * (SZ_MAX + 1); s->next++) {
    size_t kl = s->next / (SZ_MAX + 1), vl = s->next % (SZ_MAX + 1);
    uint8_t k[SZ_MAX], v[SZ_MAX];
    sz_fill(k, 0, kl, vl, kl);
    sz_fill(v, 1, kl, vl, vl);
    int rc = fl_emit(ctx, kl ? k : NULL, kl, vl ? v : NULL, vl, (int64_t)s->next);
    if (rc) return rc;
  }
  return s->next == (SZ_MAX + 1) * (SZ_MAX + 1) ? FL_SOURCE_END : FL_SOURCE_MORE;
}

/* The receiving side: the record's lengths come from its timestamp; its bytes must be
 * those the source made, and the context's key the record's key. */
static int sz_check(fl_context_t *ctx, const fl_record_t *in, void *inst) {
  size_t kl = (size_t)in->timestamp / (SZ_MAX + 1), vl = (size_t)in->timestamp % (SZ_MAX + 1);
  if (in->key_len != kl || in->value_len != vl)
    return fl_ctx_fail(ctx, "record %" PRId64 ": key %zu / value %zu bytes", in->timestamp,
                       in->key_len, in->value_len);
  size_t ck_len = 0;
  const void *ck = fl_ctx_key(ctx, &ck_len);
  if (ck_len != kl || (kl && memcmp(ck, in->key, kl)))
    return fl_ctx_fail(ctx, "record %" PRId64 ": context key differs", in->timestamp);
  for (size_t i = 0; i < kl; i++)
    if (((const uint8_t *)in->key)[i] != sz_byte(0, kl, vl, i))
      return fl_ctx_fail(ctx, "record %" PRId64 ": key byte %zu", in->timestamp, i);
  for (size_t i = 0; i < vl; i++)
    if (((const uint8_t *)in->value)[i] != sz_byte(1, kl, vl, i))
      return fl_ctx_fail(ctx, "record %" PRId64 ": value byte %zu", in->timestamp, i);
  return fl_emit_record(ctx, in);
}

/* Runs s keyed by its key -> keyed process (process, on_timer: may be NULL) -> c; the
 * job must succeed. */
static void run_keyed(fl_env_t *env, fl_stream_t *s,
                      int (*process)(fl_context_t *, const fl_record_t *, void *),
                      int (*on_timer)(fl_context_t *, int64_t, fl_time_domain_t, void *),
                      collector_t *c) {
  fl_process_fn_t fn = {FL_PROCESS_FN_VERSION, NULL, process, on_timer, NULL, NULL};
  sink_into(fl_keyed_process(fl_stream_key_by(s, NULL, NULL), "p", &fn, NULL), c);
  execute_ok(env, "keyed");
}

static void hash_edge_carries_keys_and_values_of_every_size(void **state) {
  for (int p = 1; p <= 2; p++) {
    fl_env_t *env = env_with(p, NULL);
    sz_src_t src_state = {0};
    fl_source_fn_t src = {.version = FL_SOURCE_FN_VERSION, .run = sz_run};
    collector_t c;
    run_keyed(env, fl_source(env, "sizes", &src, &src_state, 0), sz_check, NULL, &c);
    assert_int_equal(c.n, (SZ_MAX + 1) * (SZ_MAX + 1));
    collector_free(&c);
    fl_env_destroy(env);
  }
}

/* ---------------------------------------------------------------------------------- */
/* Records and watermarks keep their order across a keyBy edge at parallelism 1, with
 * channel batches of every fill: ending in a watermark, starting with one, records
 * only. The receiver takes the records after a batch's last control entry as one run
 * without looking at them; this shows it takes no record early or late. */

enum {
  WO_N = 600
};

/* Record i has timestamp 10 i; after every fifth record the source emits the
 * watermarks 10 i - 3 and 10 i (the second supersedes the first in the batch). */
static int wo_run(fl_context_t *ctx, void *inst) {
  int *next = inst;
  size_t budget = fl_ctx_source_budget(ctx);
  for (; budget-- && *next < WO_N; (*next)++) {
    int64_t key = *next % 13;
    int rc = fl_emit(ctx, &key, sizeof key, NULL, 0, 10 * (int64_t)*next);
    if (!rc && *next % 5 == 4) rc = fl_ctx_emit_watermark(ctx, 10 * (int64_t)*next - 3);
    if (!rc && *next % 5 == 4) rc = fl_ctx_emit_watermark(ctx, 10 * (int64_t)*next);
    if (rc) return rc;
  }
  return *next == WO_N ? FL_SOURCE_END : FL_SOURCE_MORE;
}

/* Emits the watermark the keyed operator had when the record arrived. */
static int wo_note(fl_context_t *ctx, const fl_record_t *in, void *inst) {
  int64_t wm = fl_ctx_watermark(ctx);
  return fl_emit(ctx, in->key, in->key_len, &wm, sizeof wm, in->timestamp);
}

static void watermarks_keep_their_place_among_records_across_a_hash_edge(void **state) {
  const char *sizes[] = {"1", "3", "7", "1024"};
  for (size_t k = 0; k < sizeof sizes / sizeof *sizes; k++) {
    const char *kv[] = {"parallelism", "1", "execution.batch-size", sizes[k], NULL};
    char err[256];
    fl_env_t *env = env_try(kv, err, sizeof err);
    assert_non_null(env);
    int next = 0;
    fl_source_fn_t src = {.version = FL_SOURCE_FN_VERSION, .run = wo_run};
    collector_t c;
    run_keyed(env, fl_source(env, "ordered", &src, &next, 0), wo_note, NULL, &c);
    assert_int_equal(c.n, WO_N);
    for (size_t i = 0; i < c.n; i++) {
      int64_t i_rec = c.r[i].ts / 10, wm, want = FL_TS_NONE;
      assert_int_equal(c.r[i].value_len, sizeof wm);
      memcpy(&wm, c.r[i].value, sizeof wm);
      /* the last watermark emitted before the record: after record j, j % 5 == 4 */
      int64_t j = i_rec - 1 - ((i_rec - 1) % 5 + 1) % 5;
      if (i_rec >= 5) want = 10 * j;
      if (wm != want)
        fail_msg("batch size %s: record %" PRId64 " saw watermark %" PRId64 ", want %" PRId64,
                 sizes[k], i_rec, wm, want);
    }
    collector_free(&c);
    fl_env_destroy(env);
  }
}

/* ---------------------------------------------------------------------------------- */
/* Stop from another thread. */

typedef struct {
  fl_env_t *env;
  _Atomic long seen;
} stop_t;

static int endless_run(fl_context_t *ctx, void *inst) {
  size_t budget = fl_ctx_source_budget(ctx);
  while (budget--) fl_emit(ctx, "k", 1, "v", 1, 0);
  return FL_SOURCE_MORE;
}

static int count_write(fl_context_t *ctx, const fl_record_t *in, void *inst) {
  stop_t *s = inst;
  atomic_fetch_add(&s->seen, 1);
  return 0;
}

static void *stopper(void *arg) {
  stop_t *s = arg;
  while (atomic_load(&s->seen) < 10000) sched_yield();
  fl_env_stop(s->env);
  return NULL;
}

static void stop_from_another_thread_ends_execute_with_ecanceled(void **state) {
  stop_t st = {0};
  st.env = env_with(2, NULL);
  fl_source_fn_t src = {.version = FL_SOURCE_FN_VERSION, .run = endless_run};
  fl_stream_t *s = fl_source(st.env, "endless", &src, NULL, 1);
  fl_sink_fn_t sink = {.version = FL_SINK_FN_VERSION, .write = count_write};
  fl_stream_sink(fl_stream_rebalance(s), "count", &sink, &st);
  pthread_t t;
  pthread_create(&t, NULL, stopper, &st);
  assert_int_equal(fl_env_execute(st.env, "endless"), FL_ECANCELED);
  pthread_join(t, NULL);
  assert_true(atomic_load(&st.seen) >= 10000);
  fl_env_destroy(st.env);
}

/* ---------------------------------------------------------------------------------- */
/* Keyed process: event-time timers deduplicated, deleted, fired in order. */

static int timer_proc(fl_context_t *ctx, const fl_record_t *in, void *inst) {
  int64_t ts = fl_ctx_timestamp(ctx);
  /* registered twice: fires once */
  fl_timer_register(ctx, FL_EVENT_TIME, ts + 10);
  fl_timer_register(ctx, FL_EVENT_TIME, ts + 10);
  /* registered and deleted: never fires */
  fl_timer_register(ctx, FL_EVENT_TIME, ts + 3);
  fl_timer_delete(ctx, FL_EVENT_TIME, ts + 3);
  /* deleting a timer that does not exist changes nothing */
  fl_timer_delete(ctx, FL_EVENT_TIME, ts + 1000);
  return 0;
}

static int timer_fired(fl_context_t *ctx, int64_t ts, fl_time_domain_t d, void *inst) {
  size_t kl;
  const char *k = fl_ctx_key(ctx, &kl);
  char buf[64];
  int n = snprintf(buf, sizeof buf, "%.*s@%lld wm=%lld", (int)kl, k, (long long)ts,
                   (long long)fl_ctx_watermark(ctx));
  return fl_emit(ctx, k, kl, buf, (size_t)n, ts);
}

static void event_timers_fire_once_in_order_when_the_watermark_passes(void **state) {
  /* Parallelism 1: with more subtasks the watermark a timer sees depends on when the
   * other (empty) subtask's end of input arrives, as in Flink. */
  fl_env_t *env = env_with(1, "0");
  fl_record_t recs[] = {rec_str("a", "", 100), rec_str("b", "", 100), rec_str("a", "", 105),
                        rec_str("a", "", 111), rec_str("b", "", 200), rec_str("c", "", 300)};
  fl_stream_t *s = fl_source_collection(env, "src", recs, 6);
  fl_watermark_strategy_t ws = {
      FL_WATERMARK_STRATEGY_VERSION, FL_WATERMARKS_BOUNDED, 0, 0, NULL, NULL};
  collector_t c;
  run_keyed(env, fl_stream_assign_timestamps(s, "wm", &ws), timer_proc, timer_fired, &c);
  /* Watermarks (bounded 0: ts - 1): after 111 -> 110 fires a@110, b@110; after 200 -> 199
   * fires a@115, a@121; end of input fires b@210 and c@310 at +inf. */
  assert_int_equal(c.n, 6);
  int found = 0;
  for (size_t i = 0; i < c.n; i++) {
    const char *v = c.r[i].value;
    if (!strcmp(v, "a@110 wm=110") || !strcmp(v, "b@110 wm=110") || !strcmp(v, "a@115 wm=199") ||
        !strcmp(v, "a@121 wm=199") || !strcmp(v, "b@210 wm=9223372036854775807") ||
        !strcmp(v, "c@310 wm=9223372036854775807"))
      found++;
    else
      fail_msg("unexpected output %s", v);
  }
  assert_int_equal(found, 6);
  collector_free(&c);
  fl_env_destroy(env);
}

/* ---------------------------------------------------------------------------------- */
/* Processing-time timers by an injected clock. */

static _Atomic int g_proc_fired;

typedef struct {
  int stage;
  long spins;
} clocksrc_t;

static int clock_src_run(fl_context_t *ctx, void *inst) {
  clocksrc_t *s = inst;
  if (s->stage == 0) {
    fl_emit(ctx, "k", 1, "v", 1, 0);
    s->stage = 1;
    return FL_SOURCE_MORE;
  }
  if (s->stage == 1) {
    atomic_store(&g_manual_ms, 1000 + 500); /* past the timer at 1000 + 100 */
    s->stage = 2;
    return FL_SOURCE_MORE;
  }
  /* wait (bounded) until the timer fired by the clock, then end */
  if (!atomic_load(&g_proc_fired) && ++s->spins < 50000000) return FL_SOURCE_MORE;
  return FL_SOURCE_END;
}

static int proc_register(fl_context_t *ctx, const fl_record_t *in, void *inst) {
  return fl_timer_register(ctx, FL_PROCESSING_TIME, fl_ctx_processing_time(ctx) + 100);
}

static int proc_fired(fl_context_t *ctx, int64_t ts, fl_time_domain_t d, void *inst) {
  atomic_store(&g_proc_fired, 1);
  char buf[64];
  int n = snprintf(buf, sizeof buf, "%s@%lld now=%lld", d == FL_PROCESSING_TIME ? "proc" : "event",
                   (long long)ts, (long long)fl_ctx_processing_time(ctx));
  return fl_emit(ctx, "k", 1, buf, (size_t)n, ts);
}

static void processing_time_timers_fire_by_the_clock(void **state) {
  atomic_store(&g_manual_ms, 1000);
  atomic_store(&g_proc_fired, 0);
  fl_env_t *env = env_with(1, NULL);
  assert_int_equal(fl_env_set_clock(env, manual_clock, NULL), 0);
  clocksrc_t cs = {0};
  fl_source_fn_t src = {.version = FL_SOURCE_FN_VERSION, .run = clock_src_run};
  collector_t c;
  run_keyed(env, fl_source(env, "clocked", &src, &cs, 0), proc_register, proc_fired, &c);
  assert_int_equal(c.n, 1);
  assert_string_equal(c.r[0].value, "proc@1100 now=1500");
  assert_true(cs.spins < 50000000); /* fired by the clock, not by the end of input */
  collector_free(&c);
  fl_env_destroy(env);
}

/* ---------------------------------------------------------------------------------- */
/* Idleness: a silent input stops holding the watermark back after the idle timeout. */

typedef struct {
  _Atomic int ended;
  long calls;
} quiet_t;

static _Atomic int g_fired_while_quiet_running;

static int quiet_run(fl_context_t *ctx, void *inst) {
  quiet_t *q = inst;
  atomic_fetch_add(&g_manual_ms, 10); /* time passes while it says nothing */
  if (atomic_load(&g_fired_while_quiet_running) || ++q->calls > 20000000) {
    atomic_store(&q->ended, 1);
    return FL_SOURCE_END;
  }
  return FL_SOURCE_MORE;
}

static quiet_t g_quiet;

static int idle_fired(fl_context_t *ctx, int64_t ts, fl_time_domain_t d, void *inst) {
  if (!atomic_load(&g_quiet.ended)) atomic_store(&g_fired_while_quiet_running, 1);
  return fl_emit(ctx, "k", 1, "fired", 5, ts);
}

static int register_event_timer(fl_context_t *ctx, const fl_record_t *in, void *inst) {
  return fl_timer_register(ctx, FL_EVENT_TIME, fl_ctx_timestamp(ctx));
}

static void idle_input_does_not_hold_back_the_watermark(void **state) {
  atomic_store(&g_manual_ms, 0);
  atomic_store(&g_fired_while_quiet_running, 0);
  memset(&g_quiet, 0, sizeof g_quiet);
  fl_env_t *env = env_with(1, "0");
  fl_env_set_clock(env, manual_clock, NULL);
  fl_record_t recs[] = {rec_str("k", "", 100), rec_str("k", "", 200)};
  fl_watermark_strategy_t ws = {
      FL_WATERMARK_STRATEGY_VERSION, FL_WATERMARKS_BOUNDED, 0, 50, NULL, NULL};
  /* The data source ends only after the quiet one: without idleness its watermark
   * (none) would hold event time back until then. */
  fl_source_fn_t qfn = {.version = FL_SOURCE_FN_VERSION, .run = quiet_run};
  fl_stream_t *quiet =
      fl_stream_assign_timestamps(fl_source(env, "quiet", &qfn, &g_quiet, 0), "wm-quiet", &ws);
  fl_stream_t *data =
      fl_stream_assign_timestamps(fl_source_collection(env, "data", recs, 2), "wm-data", &ws);
  /* keep the data source's end from advancing time: route it through a process that
   * waits for nothing; the union operator sees both channels */
  collector_t c;
  run_keyed(env, fl_stream_union(data, quiet), register_event_timer, idle_fired, &c);
  assert_int_equal(c.n, 2);
  assert_true(atomic_load(&g_fired_while_quiet_running));
  collector_free(&c);
  fl_env_destroy(env);
}

/* ---------------------------------------------------------------------------------- */

static void metrics_count_records_per_operator(void **state) {
  fl_env_t *env = env_with(2, NULL);
  fl_record_t *recs = int_records("k", 1, 6);
  fl_stream_t *s = fl_stream_filter(fl_source_collection(env, "src", recs, 6), "even",
                                    keep_multiple_of_20, NULL);
  s = fl_stream_map(fl_source_collection(env, "src2", recs, 6), "x10", times_ten, NULL);
  free(recs);
  s = fl_stream_filter(s, "keep20", keep_multiple_of_20, NULL);
  collector_t c;
  sink_into(s, &c);
  char *before = fl_env_metrics_json(env);
  assert_non_null(strstr(before, "\"state\":\"created\""));
  fl_free(before);
  execute_ok(env, "metrics");
  json_t *root = metrics_of(env);
  assert_string_equal(json_string_value(json_object_get(root, "state")), "finished");
  json_t *x10 = metrics_op(root, "x10"), *keep = metrics_op(root, "keep20");
  assert_true(x10 && keep);
  assert_int_equal(json_integer_value(json_object_get(x10, "records_in")), 6);
  assert_int_equal(json_integer_value(json_object_get(x10, "records_out")), 6);
  assert_int_equal(json_integer_value(json_object_get(keep, "records_in")), 6);
  assert_int_equal(json_integer_value(json_object_get(keep, "records_out")), 3);
  assert_int_equal(json_integer_value(json_object_get(keep, "current_input_watermark")), INT64_MAX);
  assert_int_equal(json_array_size(json_object_get(keep, "subtasks")), 2);
  json_decref(root);
  collector_free(&c);
  fl_env_destroy(env);
}

/* ---------------------------------------------------------------------------------- */
/* Sources with their own watermarks and idleness; user metrics                        */

static atomic_int g_sw_fired;     /* the event timer fired */
static atomic_int g_sw_einval;    /* fl_ctx_emit_watermark outside a source: FL_EINVAL */
static atomic_int g_sw_timed_out; /* a source subtask ended by its deadline */

typedef struct sw_src {
  int step;
  int64_t deadline;
} sw_src_t;

static int sw_open(fl_context_t *ctx, void *opaque, void **inst) {
  sw_src_t *s = calloc(1, sizeof *s);
  s->deadline = fl_ctx_processing_time(ctx) + (int64_t)(10000 * timeout_scale());
  *inst = s;
  return 0;
}

static void sw_close(void *inst) { free(inst); }

/* Subtask 0: two records, then its own watermark 1000; subtask 1: nothing, idle. Both
 * keep running until the timer at 999 fired (or the deadline), so only the source's
 * watermark and idleness, not the end of input, can make it fire. */
static int sw_run(fl_context_t *ctx, void *inst) {
  sw_src_t *s = inst;
  int sub = fl_ctx_subtask(ctx);
  if (s->step == 0) {
    s->step = 1;
    if (sub == 0) {
      fl_ctx_mark_idle(ctx, 1); /* then active again with the records and watermark */
      fl_ctx_mark_idle(ctx, 0);
      assert_int_equal(fl_emit(ctx, "k", 1, "a", 1, 100), 0);
      assert_int_equal(fl_emit(ctx, "k", 1, "b", 1, 900), 0);
      assert_int_equal(fl_ctx_emit_watermark(ctx, 1000), 0);
      assert_int_equal(fl_ctx_emit_watermark(ctx, 500), 0); /* not forwarded: smaller */
      fl_ctx_counter_add(ctx, "emitted", 2);
      fl_ctx_gauge_set(ctx, "lag", 5);
    } else {
      assert_int_equal(fl_ctx_mark_idle(ctx, 1), 0);
      fl_ctx_counter_add(ctx, "emitted", 0);
      fl_ctx_counter_add(ctx, "emitted", 1);
      fl_ctx_gauge_set(ctx, "lag", 9);
      fl_ctx_gauge_set(ctx, "lag", 7);
    }
    assert_int_equal(fl_ctx_counter_add(ctx, "", 1), FL_EINVAL);
    return FL_SOURCE_MORE;
  }
  if (atomic_load(&g_sw_fired)) return FL_SOURCE_END;
  if (fl_ctx_processing_time(ctx) > s->deadline) {
    atomic_store(&g_sw_timed_out, 1);
    return FL_SOURCE_END;
  }
  return FL_SOURCE_WAIT;
}

static int sw_process(fl_context_t *ctx, const fl_record_t *in, void *inst) {
  (void)in;
  (void)inst;
  if (fl_ctx_emit_watermark(ctx, 1) == FL_EINVAL && fl_ctx_mark_idle(ctx, 1) == FL_EINVAL)
    atomic_store(&g_sw_einval, 1);
  return fl_timer_register(ctx, FL_EVENT_TIME, 999);
}

static int sw_timer(fl_context_t *ctx, int64_t ts, fl_time_domain_t d, void *inst) {
  (void)inst;
  (void)d;
  atomic_store(&g_sw_fired, 1);
  return fl_emit(ctx, "k", 1, "fired", 5, ts);
}

static void source_watermarks_idleness_and_user_metrics(void **state) {
  (void)state;
  atomic_store(&g_sw_fired, 0);
  atomic_store(&g_sw_einval, 0);
  atomic_store(&g_sw_timed_out, 0);
  fl_env_t *env = env_with(2, NULL);
  fl_source_fn_t sfn = {
      .version = FL_SOURCE_FN_VERSION, .open = sw_open, .run = sw_run, .close = sw_close};
  collector_t c;
  run_keyed(env, fl_source(env, "src", &sfn, NULL, 1), sw_process, sw_timer, &c);
  assert_int_equal(c.n, 1);
  assert_string_equal(c.r[0].value, "fired");
  assert_int_equal(c.r[0].ts, 999);
  assert_true(atomic_load(&g_sw_einval));
  assert_false(atomic_load(&g_sw_timed_out)); /* fired while both sources ran */
  json_t *root = metrics_of(env);
  json_t *src = metrics_op(root, "src");
  assert_non_null(src);
  json_t *m = json_object_get(src, "metrics");
  assert_int_equal(json_integer_value(json_object_get(m, "emitted")), 3); /* summed */
  assert_int_equal(json_integer_value(json_object_get(m, "lag")), 7);     /* max */
  json_t *s1 = json_array_get(json_object_get(src, "subtasks"), 1);
  assert_int_equal(json_integer_value(json_object_get(json_object_get(s1, "metrics"), "emitted")),
                   1);
  json_decref(root);
  collector_free(&c);
  fl_env_destroy(env);
}

/* A sink whose open failed has no instance: the runtime must not flush it (the failure
 * is the open's, named as such). */
static atomic_int g_flushed_without_open;

static int failing_open(fl_context_t *ctx, void *opaque, void **inst) {
  (void)opaque;
  (void)inst;
  return fl_ctx_fail(ctx, "cannot open the test sink");
}
static int never_write(fl_context_t *ctx, const fl_record_t *in, void *inst) {
  (void)ctx;
  (void)in;
  (void)inst;
  return 0;
}
static int flush_counts(fl_context_t *ctx, void *inst) {
  (void)ctx;
  (void)inst;
  atomic_fetch_add(&g_flushed_without_open, 1);
  return 0;
}

static void sink_whose_open_failed_is_not_flushed(void **state) {
  (void)state;
  atomic_store(&g_flushed_without_open, 0);
  fl_env_t *env = env_with(2, NULL);
  fl_record_t recs[] = {rec_str("k", "v", 1)};
  fl_sink_fn_t fn = {.version = FL_SINK_FN_VERSION,
                     .open = failing_open,
                     .write = never_write,
                     .flush = flush_counts};
  fl_stream_sink(fl_source_collection(env, "src", recs, 1), "bad-sink", &fn, NULL);
  execute_fails(env, "open-fails", FL_EUSER, "cannot open the test sink");
  assert_int_equal(atomic_load(&g_flushed_without_open), 0);
  fl_env_destroy(env);
}

/* A subtask holds 4096 metric names; the 4097th is refused and not shown. */
static int many_metrics(fl_context_t *ctx, const fl_record_t *in, void *opaque) {
  (void)opaque;
  char name[32];
  for (int i = 0; i < 4096; i++) {
    snprintf(name, sizeof name, "m%d", i);
    if (fl_ctx_counter_add(ctx, name, 1) != FL_OK) return fl_ctx_fail(ctx, "name %d refused", i);
  }
  if (fl_ctx_gauge_set(ctx, "one-too-many", 1) != FL_ENOMEM)
    return fl_ctx_fail(ctx, "the 4097th name was accepted");
  char long_name[97];
  memset(long_name, 'x', 96);
  long_name[96] = 0;
  if (fl_ctx_counter_add(ctx, long_name, 1) != FL_EINVAL)
    return fl_ctx_fail(ctx, "a 96-byte name was accepted");
  return fl_emit_record(ctx, in);
}

static void user_metrics_are_bounded_per_subtask(void **state) {
  (void)state;
  fl_env_t *env = env_with(1, NULL);
  fl_record_t recs[] = {rec_str("k", "v", 1), rec_str("k", "w", 2)};
  collector_t c;
  sink_into(fl_stream_map(fl_source_collection(env, "src", recs, 2), "metrics", many_metrics, NULL),
            &c);
  execute_ok(env, "metric-cap");
  char *js = fl_env_metrics_json(env);
  assert_non_null(strstr(js, "\"m4095\":2"));
  assert_null(strstr(js, "one-too-many"));
  fl_free(js);
  collector_free(&c);
  fl_env_destroy(env);
}

static void configuration_rejects_unknown_keys_and_bad_values_by_name(void **state) {
  fl_config_t *c = fl_config_new();
  char err[256];
  assert_int_equal(fl_config_set(c, "paralellism", "2", err, sizeof err), FL_ECONFIG);
  assert_non_null(strstr(err, "\"paralellism\""));
  assert_int_equal(fl_config_set(c, "parallelism", "0", err, sizeof err), FL_ECONFIG);
  assert_non_null(strstr(err, "\"parallelism\""));
  assert_int_equal(fl_config_set(c, "pipeline.auto-watermark-interval", "5x", err, sizeof err),
                   FL_ECONFIG);
  assert_non_null(strstr(err, "5x"));
  assert_int_equal(fl_config_set(c, "state.backend", "leveldb", err, sizeof err), FL_ECONFIG);
  assert_int_equal(fl_config_set(c, "parallelism", "8", err, sizeof err), 0);
  assert_int_equal(fl_config_set(c, "pipeline.max-parallelism", "4", err, sizeof err), 0);
  assert_string_equal(fl_config_get(c, "parallelism"), "8");
  fl_env_t *env = NULL;
  assert_int_equal(fl_env_new(&env, c, err, sizeof err), FL_ECONFIG);
  assert_null(env);
  assert_non_null(strstr(err, "max-parallelism"));
  fl_config_destroy(c);
}

static void durations_parse_like_the_cli_documents(void **state) {
  static const struct {
    const char *text;
    int64_t ms;
  } ok[] = {{"250", 250},    {"250ms", 250}, {"5s", 5000}, {"5m", 300000},
            {"1h", 3600000}, {"0", 0},       {"5 s", 5000}};
  static const char *const bad[] = {"-5s", "5 s s", "", "99999999999999999999",
                                    "9223372036854775807h"};
  int64_t ms;
  for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
    ms = -1;
    assert_int_equal(fl_parse_duration(ok[i].text, &ms), 0);
    assert_int_equal(ms, ok[i].ms);
  }
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    assert_int_equal(fl_parse_duration(bad[i], &ms), FL_EINVAL);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(chain_of_map_filter_flat_map_keeps_order),
      cmocka_unit_test(rolling_sum_is_identical_for_parallelism_1_2_4),
      cmocka_unit_test(rolling_reduce_keeps_per_key_order_through_a_hash_edge),
      cmocka_unit_test(side_output_and_union_deliver_every_record_once),
      cmocka_unit_test(user_error_stops_the_job_and_names_the_operator),
      cmocka_unit_test(map_must_emit_exactly_one_record),
      cmocka_unit_test(chained_user_functions_fail_naming_the_function),
      cmocka_unit_test(builder_errors_are_reported_by_execute),
      cmocka_unit_test(slow_sink_backpressures_the_source),
      cmocka_unit_test(hash_edge_carries_keys_and_values_of_every_size),
      cmocka_unit_test(watermarks_keep_their_place_among_records_across_a_hash_edge),
      cmocka_unit_test(stop_from_another_thread_ends_execute_with_ecanceled),
      cmocka_unit_test(event_timers_fire_once_in_order_when_the_watermark_passes),
      cmocka_unit_test(processing_time_timers_fire_by_the_clock),
      cmocka_unit_test(idle_input_does_not_hold_back_the_watermark),
      cmocka_unit_test(metrics_count_records_per_operator),
      cmocka_unit_test(source_watermarks_idleness_and_user_metrics),
      cmocka_unit_test(sink_whose_open_failed_is_not_flushed),
      cmocka_unit_test(user_metrics_are_bounded_per_subtask),
      cmocka_unit_test(configuration_rejects_unknown_keys_and_bad_values_by_name),
      cmocka_unit_test(durations_parse_like_the_cli_documents),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
