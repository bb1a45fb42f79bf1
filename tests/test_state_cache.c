/*
 * The RocksDB state cache (state.backend.rocksdb.cache.size) through the public API:
 * jobs give the same output on the hashmap backend, on RocksDB without the cache, with
 * the smallest cache (which evicts dirty cells all the time), with the default one, and
 * with the default one writing cells ahead past a dirty limit of 8 KiB, for every
 * state kind, state TTL, timers, and tumbling and session windows; a job stopped right
 * after a checkpoint and restored from it commits exactly the output of a run that never
 * stopped, so the cells the cache held dirty at the barrier, and those it wrote ahead,
 * are in the checkpoint (full and incremental, small and large cache, a dirty limit);
 * and the cache's usage stays
 * within its bound while a job reads and writes many more keys than fit.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

#include "ckpt_job.h"
#include "fl_test_util.h"
#include "run_util.h"

static char g_tmp[256];

static int setup(void **state) {
  snprintf(g_tmp, sizeof g_tmp, "/tmp/fl_state_cache_XXXXXX");
  return mkdtemp(g_tmp) ? 0 : -1;
}
static int teardown(void **state) {
  rm_rf(g_tmp);
  return 0;
}

/* The backends every job runs on: NULL cache size means the hashmap backend. */
typedef struct variant {
  const char *name;
  const char *cache; /* state.backend.rocksdb.cache.size, or NULL: hashmap */
  const char *dirty; /* state.backend.rocksdb.cache.dirty-limit, or NULL: the default */
} variant_t;

static const variant_t VARIANTS[] = {
    {"hashmap", NULL, NULL},
    {"rocksdb, no cache", "0", NULL},
    {"rocksdb, 64kb cache", "64kb", NULL},
    {"rocksdb, 64mb cache", "64mb", NULL},
    {"rocksdb, 64mb cache writing ahead past 8kb dirty", "64mb", "8kb"},
};
#define N_VARIANTS (sizeof VARIANTS / sizeof VARIANTS[0])

static fl_env_t *env_for(const variant_t *v, int parallelism) {
  char p[8];
  snprintf(p, sizeof p, "%d", parallelism);
  const char *kv[] = {"parallelism",
                      p,
                      "state.backend",
                      v->cache ? "rocksdb" : "hashmap",
                      "state.backend.rocksdb.localdir",
                      g_tmp,
                      v->cache ? "state.backend.rocksdb.cache.size" : NULL,
                      v->cache,
                      v->dirty ? "state.backend.rocksdb.cache.dirty-limit" : NULL,
                      v->dirty,
                      NULL};
  fl_env_t *env = env_of(kv);
  return env;
}

/* The sum over the subtasks of operator op of its backend statistic stat, from the
 * metrics document js (-1: none). Asserts nothing: the sampling thread calls it too. */
static int64_t kv_stat_in(const char *js, const char *op, const char *stat) {
  json_t *root = js ? json_loads(js, 0, NULL) : NULL;
  json_t *ops = json_object_get(root, "operators");
  int64_t sum = -1;
  for (size_t i = 0; i < json_array_size(ops); i++) {
    json_t *o = json_array_get(ops, i);
    const char *name = json_string_value(json_object_get(o, "name"));
    if (!name || strcmp(name, op) != 0) continue;
    json_t *subs = json_object_get(o, "subtasks");
    for (size_t k = 0; k < json_array_size(subs); k++) {
      json_t *v = json_object_get(json_object_get(json_array_get(subs, k), "rocksdb"), stat);
      if (json_is_integer(v)) sum = (sum < 0 ? 0 : sum) + (int64_t)json_integer_value(v);
    }
  }
  json_decref(root);
  return sum;
}

static int64_t kv_stat(fl_env_t *env, const char *op, const char *stat) {
  char *js = fl_env_metrics_json(env);
  int64_t v = kv_stat_in(js, op, stat);
  fl_free(js);
  return v;
}

/* The collector's records as sorted "key|value|ts" lines. */
static void lines_of(const collector_t *c, lines_t *out) {
  for (size_t i = 0; i < c->n; i++) {
    char buf[1024];
    int n =
        snprintf(buf, sizeof buf, "%s|%s|%lld", c->r[i].key, c->r[i].value, (long long)c->r[i].ts);
    lines_add(out, buf, (size_t)n);
  }
  lines_sort(out);
}

/* ---------------------------------------------------------------------------------- */
/* Input: record i has key "u<k>" with k drawn by a fixed generator from KEYS keys, so   */
/* a key's records come at irregular gaps, value i, timestamp 2i (event and processing  */
/* time).                                                                               */

#define N 16000
#define KEYS 1600

static fl_record_t *make_input(int64_t n, int keys) {
  enum {
    W = 32
  };
  fl_record_t *r = malloc((size_t)n * (sizeof *r + 2 * W));
  assert_non_null(r);
  char *text = (char *)(r + n);
  uint64_t x = 0x243F6A8885A308D3ull;
  for (int64_t i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    char *k = text + (size_t)i * 2 * W, *v = k + W;
    snprintf(k, W, "u%llu", (unsigned long long)(x % (uint64_t)keys));
    snprintf(v, W, "%lld", (long long)i);
    r[i] = rec_str(k, v, 2 * i);
  }
  return r;
}

/* The processing-time clock is each record's timestamp, per worker thread (a key's
 * records all reach one subtask, so each key sees its own timeline). */
static _Thread_local int64_t tl_now;
static int64_t rec_clock(void *opaque) { return tl_now; }

static int key_of(fl_context_t *ctx, const fl_record_t *in, const void **key, size_t *len,
                  void *opaque) {
  *key = in->key;
  *len = in->key_len;
  return 0;
}

/* ---------------------------------------------------------------------------------- */
/* Every state kind in one keyed process function                                       */

typedef struct kinds {
  fl_state_desc_t *count, *list, *map, *reduce, *agg, *ttl_value, *ttl_map, *timer_count;
} kinds_t;

typedef struct agg_acc {
  int64_t n, max;
} agg_acc_t;

static void agg_init(void *acc, void *opaque) { memset(acc, 0, sizeof(agg_acc_t)); }
static int agg_add(fl_context_t *ctx, void *acc, const fl_record_t *in, void *opaque) {
  agg_acc_t *a = acc;
  int64_t v = ck_parse(in);
  a->n++;
  if (v > a->max) a->max = v;
  return 0;
}
static void agg_merge(void *acc, const void *other, void *opaque) {
  agg_acc_t *a = acc;
  const agg_acc_t *b = other;
  a->n += b->n;
  if (b->max > a->max) a->max = b->max;
}

static int sum_reduce(fl_context_t *ctx, const void *a, size_t al, const void *b, size_t bl,
                      fl_buf_t *out, void *opaque) {
  int64_t x = 0, y = 0;
  if (al != sizeof x || bl != sizeof y) return FL_EINVAL;
  memcpy(&x, a, sizeof x);
  memcpy(&y, b, sizeof y);
  x += y;
  return fl_buf_set(out, &x, sizeof x);
}

typedef struct map_sum {
  int64_t n, sum;
} map_sum_t;

static int map_sum_cb(const void *uk, size_t ukl, const void *v, size_t len, void *arg) {
  map_sum_t *s = arg;
  int64_t x = 0;
  if (len == sizeof x) memcpy(&x, v, sizeof x);
  s->n++;
  s->sum += x * (int64_t)(ukl + 1);
  return 0;
}

/* What every record does to its key's state; one output line per record telling what
 * the state held, so a lost or stale write shows. */
static int kinds_process(fl_context_t *ctx, const fl_record_t *in, void *opaque) {
  const kinds_t *s = opaque;
  tl_now = in->timestamp;
  int64_t v = ck_parse(in), count = 0;
  const void *p;
  size_t len;
  int rc = fl_value_get(ctx, s->count, &p, &len);
  if (rc < 0) return rc;
  if (rc == 1) memcpy(&count, p, sizeof count);
  count++;
  if ((rc = fl_value_set(ctx, s->count, &count, sizeof count))) return rc;

  /* list: appended to, read every 3rd record of the key, cut to its last 2 every 7th */
  if ((rc = fl_list_add(ctx, s->list, &v, sizeof v))) return rc;
  int64_t lsum = -1;
  size_t ln = 0;
  if (count % 3 == 0 || count % 7 == 0) {
    const fl_bytes_t *items;
    if ((rc = fl_list_get(ctx, s->list, &items, &ln)) < 0) return rc;
    lsum = 0;
    for (size_t i = 0; i < ln; i++) {
      int64_t x;
      memcpy(&x, items[i].data, sizeof x);
      lsum += x;
    }
    if (count % 7 == 0 && ln > 2 && (rc = fl_list_update(ctx, s->list, items + ln - 2, 2)))
      return rc;
  }

  /* map: a put under v % 5, a removal of (v / 5) % 5, a walk every 4th record, and a
   * clear every 11th */
  char uk[8];
  int ukl = snprintf(uk, sizeof uk, "m%lld", (long long)(v % 5));
  if ((rc = fl_map_put(ctx, s->map, uk, (size_t)ukl, &v, sizeof v))) return rc;
  ukl = snprintf(uk, sizeof uk, "m%lld", (long long)(v / 5 % 5));
  int64_t got = -1;
  if ((rc = fl_map_get(ctx, s->map, uk, (size_t)ukl, &p, &len)) < 0) return rc;
  if (rc == 1) memcpy(&got, p, sizeof got);
  if (v % 3 == 0 && (rc = fl_map_remove(ctx, s->map, uk, (size_t)ukl))) return rc;
  map_sum_t ms = {0, 0};
  if (count % 4 == 0 && (rc = fl_map_foreach(ctx, s->map, map_sum_cb, &ms))) return rc;
  if (count % 11 == 0 && (rc = fl_state_clear(ctx, s->map))) return rc;

  /* reducing and aggregating state */
  if ((rc = fl_reducing_add(ctx, s->reduce, &v, sizeof v))) return rc;
  int64_t red = 0;
  if ((rc = fl_reducing_get(ctx, s->reduce, &p, &len)) < 0) return rc;
  if (rc == 1) memcpy(&red, p, sizeof red);
  if ((rc = fl_aggregating_add(ctx, s->agg, in))) return rc;
  agg_acc_t acc = {0, 0};
  if ((rc = fl_aggregating_get(ctx, s->agg, &p)) < 0) return rc;
  if (rc == 1) memcpy(&acc, p, sizeof acc);

  /* TTL: a value refreshed on read and write, map entries on create and write */
  int64_t last = -1;
  if ((rc = fl_value_get(ctx, s->ttl_value, &p, &len)) < 0) return rc;
  if (rc == 1) memcpy(&last, p, sizeof last);
  if (v % 2 == 0 && (rc = fl_value_set(ctx, s->ttl_value, &v, sizeof v))) return rc;
  int64_t tm = -1;
  if ((rc = fl_map_get(ctx, s->ttl_map, "a", 1, &p, &len)) < 0) return rc;
  if (rc == 1) memcpy(&tm, p, sizeof tm);
  if (count % 2 == 1 && (rc = fl_map_put(ctx, s->ttl_map, "a", 1, &v, sizeof v))) return rc;

  /* an event-time timer 1 s on, firing with the count of the key's records by then */
  if ((rc = fl_timer_register(ctx, FL_EVENT_TIME, in->timestamp + 1000))) return rc;
  return emitf(ctx, in->timestamp, "c%lld l%lld/%zu g%lld w%lld/%lld r%lld a%lld/%lld t%lld m%lld",
               (long long)count, (long long)lsum, ln, (long long)got, (long long)ms.n,
               (long long)ms.sum, (long long)red, (long long)acc.n, (long long)acc.max,
               (long long)last, (long long)tm);
}

static int kinds_timer(fl_context_t *ctx, int64_t ts, fl_time_domain_t domain, void *opaque) {
  const kinds_t *s = opaque;
  const void *p;
  size_t len;
  int64_t fired = 0;
  /* (how many records of the key came before depends on when the watermark moved) */
  int rc = fl_value_get(ctx, s->timer_count, &p, &len);
  if (rc < 0) return rc;
  if (rc == 1) memcpy(&fired, p, sizeof fired);
  fired++;
  if ((rc = fl_value_set(ctx, s->timer_count, &fired, sizeof fired))) return rc;
  return emitf(ctx, ts, "timer f%lld", (long long)fired);
}

static void kinds_build(fl_env_t *env, kinds_t *s, const fl_record_t *in, size_t n,
                        collector_t *c) {
  static const fl_aggregate_fn_t agg = {.version = FL_AGGREGATE_FN_VERSION,
                                        .acc_size = sizeof(agg_acc_t),
                                        .init = agg_init,
                                        .add = agg_add,
                                        .merge = agg_merge};
  static const fl_process_fn_t proc = {
      .version = FL_PROCESS_FN_VERSION, .process = kinds_process, .on_timer = kinds_timer};
  assert_int_equal(fl_env_set_clock(env, rec_clock, NULL), 0);
  s->count = fl_state_value(env, "count");
  s->list = fl_state_list(env, "list");
  s->map = fl_state_map(env, "map");
  s->reduce = fl_state_reducing(env, "reduce", sum_reduce, NULL);
  s->agg = fl_state_aggregating(env, "agg", &agg, NULL);
  s->ttl_value = fl_state_value(env, "ttl-value");
  s->ttl_map = fl_state_map(env, "ttl-map");
  s->timer_count = fl_state_value(env, "fired");
  /* a key comes back about every 2 * KEYS ms: about half of its TTL state expires */
  fl_ttl_config_t rw = {.version = FL_TTL_CONFIG_VERSION,
                        .ttl_ms = 2 * KEYS,
                        .update = FL_TTL_ON_READ_AND_WRITE,
                        .visibility = FL_TTL_NEVER_RETURN_EXPIRED};
  fl_ttl_config_t cw = {.version = FL_TTL_CONFIG_VERSION,
                        .ttl_ms = 3 * KEYS,
                        .update = FL_TTL_ON_CREATE_AND_WRITE,
                        .visibility = FL_TTL_NEVER_RETURN_EXPIRED,
                        .incremental_cleanup_size = 4};
  assert_int_equal(fl_state_desc_set_ttl(s->ttl_value, &rw), 0);
  assert_int_equal(fl_state_desc_set_ttl(s->ttl_map, &cw), 0);
  fl_watermark_strategy_t ws = {.version = FL_WATERMARK_STRATEGY_VERSION,
                                .kind = FL_WATERMARKS_MONOTONOUS};
  fl_stream_t *src =
      fl_stream_assign_timestamps(fl_source_collection(env, "src", in, n), "ts", &ws);
  fl_stream_t *out = fl_keyed_process(fl_stream_key_by(src, key_of, NULL), "kinds", &proc, s);
  sink_into(out, c);
}

/* ---------------------------------------------------------------------------------- */
/* Windows: tumbling event-time windows of 1 s (process: count, sum, first and last     */
/* element) and session windows with a 3 s gap (aggregate: count and max)               */

static int tumbling_fn(fl_context_t *ctx, const fl_window_t *w, const fl_record_t *el, size_t n,
                       void *opaque) {
  int64_t sum = 0;
  for (size_t i = 0; i < n; i++) sum += ck_parse(&el[i]);
  return emitf(ctx, w->end - 1, "tumble %lld n%zu s%lld f%lld l%lld", (long long)w->start, n,
               (long long)sum, (long long)ck_parse(&el[0]), (long long)ck_parse(&el[n - 1]));
}

static int session_result(fl_context_t *ctx, const fl_window_t *w, const void *acc, void *opaque) {
  const agg_acc_t *a = acc;
  return emitf(ctx, w->end - 1, "session %lld-%lld n%lld max%lld", (long long)w->start,
               (long long)w->end, (long long)a->n, (long long)a->max);
}

static void windows_build(fl_env_t *env, const fl_record_t *in, size_t n, collector_t *tc,
                          collector_t *sc) {
  static const fl_aggregate_fn_t agg = {.version = FL_AGGREGATE_FN_VERSION,
                                        .acc_size = sizeof(agg_acc_t),
                                        .init = agg_init,
                                        .add = agg_add,
                                        .merge = agg_merge,
                                        .result = session_result};
  fl_watermark_strategy_t ws = {.version = FL_WATERMARK_STRATEGY_VERSION,
                                .kind = FL_WATERMARKS_MONOTONOUS};
  fl_stream_t *src =
      fl_stream_assign_timestamps(fl_source_collection(env, "src", in, n), "ts", &ws);
  fl_keyed_stream_t *ks = fl_stream_key_by(src, key_of, NULL);
  sink_into(fl_window_process(fl_window_tumbling(ks, FL_EVENT_TIME, 1000, 0), "tumbling",
                              tumbling_fn, NULL),
            tc);
  sink_into(fl_window_aggregate(fl_window_session(ks, FL_EVENT_TIME, 3000), "sessions", &agg, NULL),
            sc);
}

/* ---------------------------------------------------------------------------------- */
/* Same output on every backend                                                         */

static int compare_to(const char *what, const variant_t *v, const lines_t *ref,
                      const lines_t *got) {
  if (lines_diff(what, got, ref) == 0) return 0;
  fprintf(stderr, "%s: %s differs from %s\n", what, v->name, VARIANTS[0].name);
  return 1;
}

static void every_state_kind_ttl_and_timers_agree_with_and_without_the_cache(void **state) {
  fl_record_t *in = make_input(N, KEYS);
  lines_t ref = {0};
  int64_t evictions_small = -1, hits_big = -1, ahead = -1;
  for (size_t i = 0; i < N_VARIANTS; i++) {
    const variant_t *v = &VARIANTS[i];
    fl_env_t *env = env_for(v, 2);
    kinds_t s;
    collector_t c;
    kinds_build(env, &s, in, N, &c);
    execute_ok(env, "kinds");
    if (v->cache && strcmp(v->cache, "64kb") == 0)
      evictions_small = kv_stat(env, "kinds", "cache-evictions");
    if (v->cache && strcmp(v->cache, "64mb") == 0 && !v->dirty)
      hits_big = kv_stat(env, "kinds", "cache-hit");
    if (v->dirty) ahead = kv_stat(env, "kinds", "cache-written-ahead");
    lines_t got = {0};
    lines_of(&c, &got);
    assert_true(got.n > N); /* every record and some timers */
    if (i == 0)
      ref = got;
    else {
      assert_int_equal(compare_to("kinds", v, &ref, &got), 0);
      lines_free(&got);
    }
    collector_free(&c);
    fl_env_destroy(env);
  }
  /* the small cache evicted (dirty cells among them); the large one answered reads; the
   * one with a dirty limit wrote cells ahead */
  assert_true(evictions_small > 1000);
  assert_true(hits_big > N);
  assert_true(ahead > 1000);
  lines_free(&ref);
  free(in);
}

static void tumbling_and_session_windows_agree_with_and_without_the_cache(void **state) {
  fl_record_t *in = make_input(N, 500);
  lines_t tref = {0}, sref = {0};
  for (size_t i = 0; i < N_VARIANTS; i++) {
    const variant_t *v = &VARIANTS[i];
    fl_env_t *env = env_for(v, 2);
    collector_t tc, sc;
    windows_build(env, in, N, &tc, &sc);
    execute_ok(env, "windows");
    lines_t t = {0}, s = {0};
    lines_of(&tc, &t);
    lines_of(&sc, &s);
    assert_true(t.n > 1000 && s.n > 500);
    if (i == 0) {
      tref = t;
      sref = s;
    } else {
      assert_int_equal(compare_to("tumbling", v, &tref, &t), 0);
      assert_int_equal(compare_to("sessions", v, &sref, &s), 0);
      lines_free(&t);
      lines_free(&s);
    }
    collector_free(&tc);
    collector_free(&sc);
    fl_env_destroy(env);
  }
  lines_free(&tref);
  lines_free(&sref);
  free(in);
}

/* ---------------------------------------------------------------------------------- */
/* Dirty cells are in the checkpoint                                                     */

#define CK_N 40000
#define CK_KEYS 2000

#define TARGET "state.backend.rocksdb.cache.dirty-target"
#define LIMIT "state.backend.rocksdb.cache.dirty-limit"

static fl_env_t *ck_env(const char *cache, const char *dirty_key, const char *dirty,
                        const char *incremental, const char *root, bool restore) {
  const char *kv[] = {"parallelism",
                      "2",
                      "state.backend",
                      "rocksdb",
                      "state.backend.rocksdb.localdir",
                      g_tmp,
                      "state.backend.rocksdb.cache.size",
                      cache,
                      dirty_key,
                      dirty,
                      "state.backend.incremental",
                      incremental,
                      "state.checkpoints.dir",
                      root,
                      "execution.checkpointing.interval",
                      "20ms",
                      restore ? "execution.savepoint.path" : NULL,
                      root,
                      NULL};
  fl_env_t *env = env_of(kv);
  return env;
}

/* dirty_key: state.backend.rocksdb.cache.dirty-target or -limit, set to dirty. The
 * cells the two runs wrote ahead of their barriers (cache-written-ahead). */
static int64_t stop_after_checkpoint_then_restore(const char *cache, const char *dirty_key,
                                                  const char *dirty, const char *incremental) {
  char root[512], out[512];
  const char *kind = strrchr(dirty_key, '-') + 1;
  snprintf(root, sizeof root, "%s/ck-%s-%s-%s-%s", g_tmp, cache, kind, dirty, incremental);
  snprintf(out, sizeof out, "%s/out-%s-%s-%s-%s", g_tmp, cache, kind, dirty, incremental);
  /* first run: to the pause in the middle, a checkpoint there, then stopped */
  fl_env_t *env = ck_env(cache, dirty_key, dirty, incremental, root, false);
  ckjob_t j = {.n = CK_N, .keys = CK_KEYS, .pause_at = CK_N / 2, .fail_at = -1, .budget = 64};
  ckjob_build(env, &j, out);
  bool checkpointed;
  int rc = ckjob_execute_paused(env, &j, root, 1, CKJOB_STOP, "first", &checkpointed);
  if (rc != FL_ECANCELED) fprintf(stderr, "first run: %s\n", fl_env_error(env));
  assert_int_equal(rc, FL_ECANCELED);
  assert_true(checkpointed);
  int64_t ahead = kv_stat(env, "sums", "cache-written-ahead");
  fl_env_destroy(env);
  /* second run: from that checkpoint to the end */
  env = ck_env(cache, dirty_key, dirty, incremental, root, true);
  ckjob_t j2 = {.n = CK_N, .keys = CK_KEYS, .pause_at = -1, .fail_at = -1, .budget = 64};
  ckjob_build(env, &j2, out);
  execute_ok(env, "second");
  int64_t second = kv_stat(env, "sums", "cache-written-ahead");
  fl_env_destroy(env);
  /* every record counted once: nothing the cache held at the barrier was lost */
  assert_int_equal(ckjob_output_diff(out, CK_N, CK_KEYS), 0);
  assert_true(ahead >= 0 && second >= 0);
  return ahead + second;
}

static void dirty_cells_are_in_an_incremental_checkpoint_small_cache(void **state) {
  assert_int_equal(stop_after_checkpoint_then_restore("64kb", TARGET, "0", "true"), 0);
}
static void dirty_cells_are_in_an_incremental_checkpoint_large_cache(void **state) {
  assert_int_equal(stop_after_checkpoint_then_restore("64mb", TARGET, "0", "true"), 0);
}
static void dirty_cells_are_in_a_full_checkpoint_small_cache(void **state) {
  assert_int_equal(stop_after_checkpoint_then_restore("64kb", TARGET, "0", "false"), 0);
}
static void dirty_cells_are_in_a_full_checkpoint_large_cache(void **state) {
  assert_int_equal(stop_after_checkpoint_then_restore("64mb", TARGET, "0", "false"), 0);
}
/* cells written ahead between barriers, the rest at the barrier: together the state
 * (how many a target writes depends on when the workers wait for records) */
static void cells_written_ahead_are_in_an_incremental_checkpoint(void **state) {
  assert_true(stop_after_checkpoint_then_restore("64mb", LIMIT, "8kb", "true") > 0);
  assert_true(stop_after_checkpoint_then_restore("64mb", TARGET, "8kb", "true") >= 0);
}

/* With a dirty target, a worker with nothing to do writes dirty cells ahead. The source
 * stops half-way, with no checkpoints and a cache that holds everything (no evictions),
 * so nothing else writes a cell before the end; a watcher waits until the metric counts
 * cells written ahead, then lets the source go on. The output is the job's. */
typedef struct {
  fl_env_t *env;
  ckjob_t *j;
  int64_t ahead;
} idle_watch_t;

static void *idle_watch(void *arg) {
  idle_watch_t *w = arg;
  int64_t deadline = deadline_in(30000);
  while (!atomic_load(&w->j->paused) && mono_ms() < deadline) pause_ms(1);
  while ((w->ahead = kv_stat(w->env, "sums", "cache-written-ahead")) <= 0 && mono_ms() < deadline)
    pause_ms(5);
  atomic_store(&w->j->resume, 1);
  return NULL;
}

/* One worker on RocksDB with a state cache of cache_size, and the key-value pairs of
 * more (NULL-terminated, at most 3 pairs). */
static fl_env_t *one_worker_env(const char *cache_size, const char *const *more) {
  const char *kv[16] = {"parallelism",
                        "1",
                        "state.backend",
                        "rocksdb",
                        "state.backend.rocksdb.localdir",
                        g_tmp,
                        "state.backend.rocksdb.cache.size",
                        cache_size};
  size_t n = 8;
  while (*more && n < 14) kv[n++] = *more++;
  return env_of(kv);
}

static void a_waiting_worker_writes_cells_ahead(void **state) {
  char out[512];
  snprintf(out, sizeof out, "%s/out-idle", g_tmp);
  const char *target[] = {TARGET, "8kb", NULL};
  fl_env_t *env = one_worker_env("64mb", target);
  ckjob_t j = {.n = CK_N, .keys = CK_KEYS, .pause_at = CK_N / 2, .fail_at = -1, .budget = 64};
  ckjob_build(env, &j, out);
  idle_watch_t w = {env, &j, -1};
  pthread_t t;
  assert_int_equal(pthread_create(&t, NULL, idle_watch, &w), 0);
  execute_ok(env, "idle");
  pthread_join(t, NULL);
  fl_env_destroy(env);
  assert_true(w.ahead > 0);
  assert_int_equal(ckjob_output_diff(out, CK_N, CK_KEYS), 0);
}

/* ---------------------------------------------------------------------------------- */
/* The bound holds under a scan                                                          */

#define SCAN_KEYS 40000
#define SCAN_BOUND (64 * 1024)

typedef struct scan_src {
  int64_t next, t0;
} scan_src_t;

/* Every key once, in order, then every key again: a uniform scan of 2 x SCAN_KEYS
 * records, paced over about 2 s so that the metrics are sampled on the way. */
static int scan_run(fl_context_t *ctx, void *inst) {
  scan_src_t *s = inst;
  if (!s->t0) s->t0 = mono_ms();
  int64_t allowed = (mono_ms() - s->t0 + 1) * 40;
  size_t budget = fl_ctx_source_budget(ctx);
  while (budget-- && s->next < allowed && s->next < 2 * SCAN_KEYS) {
    char key[16];
    int kl = snprintf(key, sizeof key, "s%lld", (long long)(s->next % SCAN_KEYS));
    int rc = fl_emit(ctx, key, (size_t)kl, "0123456789abcdef0123456789abcdef", 32, s->next);
    if (rc) return rc;
    s->next++;
  }
  return s->next < 2 * SCAN_KEYS ? FL_SOURCE_MORE : FL_SOURCE_END;
}

static int scan_open(fl_context_t *ctx, void *opaque, void **inst) {
  *inst = calloc(1, sizeof(scan_src_t));
  return *inst ? 0 : FL_ENOMEM;
}

/* Reads the key's value (the record before, or nothing) and writes the record's. */
static int scan_process(fl_context_t *ctx, const fl_record_t *in, void *opaque) {
  const fl_state_desc_t *d = opaque;
  const void *p;
  size_t len;
  int rc = fl_value_get(ctx, d, &p, &len);
  if (rc < 0) return rc;
  /* the second pass finds what the first wrote */
  if ((in->timestamp >= SCAN_KEYS) != (rc == 1)) return FL_EIO;
  rc = fl_value_set(ctx, d, in->value, in->value_len);
  return rc ? rc : fl_emit(ctx, in->key, in->key_len, "", 0, in->timestamp);
}

typedef struct sampler {
  fl_env_t *env;
  atomic_int done;
  int64_t max_usage;
  int samples;
} sampler_t;

static void *sample_usage(void *arg) {
  sampler_t *s = arg;
  while (!atomic_load(&s->done)) {
    int64_t u = kv_stat(s->env, "scan", "cache-usage");
    if (u >= 0) {
      s->samples++;
      if (u > s->max_usage) s->max_usage = u;
    }
    pause_ms(20);
  }
  return NULL;
}

static const fl_source_fn_t scan_src = {
    .version = FL_SOURCE_FN_VERSION, .open = scan_open, .run = scan_run, .close = free};

/* The scan job on env: the source src, then a keyed process "scan", into c. */
static void build_scan(fl_env_t *env, const fl_source_fn_t *src, collector_t *c) {
  fl_state_desc_t *d = fl_state_value(env, "last");
  static const fl_process_fn_t proc = {.version = FL_PROCESS_FN_VERSION, .process = scan_process};
  fl_stream_t *out = fl_keyed_process(
      fl_stream_key_by(fl_source(env, "src", src, NULL, 0), key_of, NULL), "scan", &proc, d);
  sink_into(out, c);
}

static void the_cache_stays_within_its_bound_under_a_scan(void **state) {
  (void)state;
  const char *none[] = {NULL};
  fl_env_t *env = one_worker_env("64kb", none);
  collector_t c;
  build_scan(env, &scan_src, &c);
  sampler_t s = {.env = env};
  pthread_t t;
  pthread_create(&t, NULL, sample_usage, &s);
  execute_ok(env, "scan");
  atomic_store(&s.done, 1);
  pthread_join(t, NULL);
  assert_int_equal(c.n, 2 * SCAN_KEYS);
  int64_t last = kv_stat(env, "scan", "cache-usage");
  int64_t evictions = kv_stat(env, "scan", "cache-evictions");
  if (last > s.max_usage) s.max_usage = last;
  fprintf(stderr, "scan: %d samples, usage at most %lld of %d bytes, %lld evictions\n", s.samples,
          (long long)s.max_usage, SCAN_BOUND, (long long)evictions);
  assert_true(s.max_usage > 0);
  assert_true(s.max_usage <= SCAN_BOUND);
  /* every key was evicted at least once between its two reads */
  assert_true(evictions >= SCAN_KEYS);
  collector_free(&c);
  fl_env_destroy(env);
}

/* ---------------------------------------------------------------------------------- */
/* Compactions at low priority                                                          */

#define BURST_KEYS 10000

/* BURST_KEYS new keys, unpaced. */
static int burst_run(fl_context_t *ctx, void *inst) {
  scan_src_t *s = inst;
  size_t budget = fl_ctx_source_budget(ctx);
  while (budget-- && s->next < BURST_KEYS) {
    char key[16];
    int kl = snprintf(key, sizeof key, "b%lld", (long long)s->next);
    int rc = fl_emit(ctx, key, (size_t)kl, "0123456789abcdef0123456789abcdef", 32, s->next);
    if (rc) return rc;
    s->next++;
  }
  return s->next < BURST_KEYS ? FL_SOURCE_MORE : FL_SOURCE_END;
}

/* state.backend.rocksdb.compaction.low-priority: the compactions of the job's store (64
 * KiB memtables: the evicted cells of 10,000 keys make several table files, enough for a
 * compaction, and few enough that RocksDB never stops the writes while the compactions
 * wait for a busy machine) run at nice 19, where the earlier jobs' ran at normal
 * priority. The last case: RocksDB never raises a compaction thread's priority again. */
static void compactions_run_at_low_priority_when_asked(void **state) {
  (void)state;
  if (own_nice() >= 19) {
    print_message("skipped: the test itself runs at nice 19\n");
    skip();
  }
  assert_int_equal(threads_at_nice("rocksdb:low", 19), 0);
  const char *more[] = {"state.backend.rocksdb.writebuffer.size", "64kb",
                        "state.backend.rocksdb.compaction.low-priority", "true", NULL};
  fl_env_t *env = one_worker_env("64kb", more);
  static const fl_source_fn_t burst = {
      .version = FL_SOURCE_FN_VERSION, .open = scan_open, .run = burst_run, .close = free};
  collector_t c;
  build_scan(env, &burst, &c);
  execute_ok(env, "scan");
  assert_int_equal(c.n, BURST_KEYS);
  assert_true(threads_at_nice("rocksdb:low", 19) >= 1);
  collector_free(&c);
  fl_env_destroy(env);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(every_state_kind_ttl_and_timers_agree_with_and_without_the_cache),
      cmocka_unit_test(tumbling_and_session_windows_agree_with_and_without_the_cache),
      cmocka_unit_test(dirty_cells_are_in_an_incremental_checkpoint_small_cache),
      cmocka_unit_test(dirty_cells_are_in_an_incremental_checkpoint_large_cache),
      cmocka_unit_test(dirty_cells_are_in_a_full_checkpoint_small_cache),
      cmocka_unit_test(dirty_cells_are_in_a_full_checkpoint_large_cache),
      cmocka_unit_test(cells_written_ahead_are_in_an_incremental_checkpoint),
      cmocka_unit_test(a_waiting_worker_writes_cells_ahead),
      cmocka_unit_test(the_cache_stays_within_its_bound_under_a_scan),
      cmocka_unit_test(compactions_run_at_low_priority_when_asked),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
