/*
 * What docs/first-job.md promises, through the public API: pointers a state get returns
 * may be passed back into a state write (fl_list_get then fl_list_update, fl_value_get
 * then fl_value_set), list items are 8-byte aligned, and one keyed stream may feed
 * several operators, each of which gets every record and state of its own. On both
 * state backends, with TTL cleanup writing to the backend between the get and the write.
 */
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "fl_test_util.h"
#include "flink.h"

#define KEYS 300 /* fan-out */
#define RECORDS 6000
#define PB_KEYS 100 /* pass-back: a key comes back within the TTL */
#define PB_RECORDS 1500
#define KEEP 3 /* items a list keeps after each update */
#define TTL_MS 400

static fl_env_t *new_env(const char *backend, int parallelism) {
  char par[16];
  snprintf(par, sizeof par, "%d", parallelism);
  const char *kv[] = {"state.backend", backend, "parallelism", par, NULL};
  fl_env_t *env = env_of(kv);
  atomic_store(&g_manual_ms, 1000);
  assert_int_equal(fl_env_set_clock(env, manual_clock, NULL), FL_OK);
  return env;
}

/* n records "k<i % nkeys>" with values of 1..40 bytes that name their index; with
 * one_shots, every tenth record has a key of its own ("u<i>"), whose state expires and is
 * removed by TTL cleanup while the other keys' state is in use. */
static fl_stream_t *source(fl_env_t *env, int n, int nkeys, bool one_shots) {
  fl_record_t *recs = calloc((size_t)n, sizeof *recs);
  char(*keys)[16] = calloc((size_t)n, 16);
  char(*vals)[48] = calloc((size_t)n, 48);
  assert_true(recs && keys && vals);
  for (int i = 0; i < n; i++) {
    int kl = one_shots && i % 10 == 9 ? snprintf(keys[i], 16, "u%d", i)
                                      : snprintf(keys[i], 16, "k%d", i % nkeys);
    int vl = snprintf(vals[i], 48, "v%d:", i);
    while (vl < 1 + i % 40) vals[i][vl++] = (char)('a' + i % 26);
    recs[i] = (fl_record_t){keys[i], (size_t)kl, vals[i], (size_t)vl, 1000 + i};
  }
  fl_stream_t *s = fl_source_collection(env, "src", recs, (size_t)n);
  free(recs);
  free(keys);
  free(vals);
  return s;
}

typedef struct passback {
  fl_state_desc_t *list, *value;
  fl_state_desc_t *plain; /* a list without TTL: its items are 8-byte aligned too */
  fl_state_desc_t *map;
} passback_t;

static int fail_if(fl_context_t *ctx, int bad, const char *what) {
  return bad ? fl_ctx_fail(ctx, "%s", what) : FL_OK;
}

/*
 * Per record: add the value to the key's list, get the list, write back its newest KEEP
 * items in reverse order straight from the views the get returned, and read it again;
 * get the key's value state and set it from the view the get returned, with one byte
 * more; put a map value, get it and put the view under another user key. The clock moves 1 ms per record and the TTL is 400 ms: a "k" key comes back
 * within it, while the one-shot keys expire and incremental cleanup removes them (writes
 * to the backend). Between each get and the write of its views the clock jumps by the
 * TTL, as a wall clock does for items at the edge of their TTL: the items read expire,
 * and the cleanup of the write call may remove the cell the views point into.
 */
static int passback_process(fl_context_t *ctx, const fl_record_t *in, void *instance) {
  passback_t *p = instance;
  const fl_bytes_t *items, *again;
  fl_bytes_t keep[KEEP];
  char copy[KEEP][48];
  size_t n, m, k;
  const void *v;
  size_t vl;
  char vcopy[64];
  int rc;

  atomic_fetch_add(&g_manual_ms, 1);
  if ((rc = fl_list_add(ctx, p->list, in->value, in->value_len)) != 0) return rc;
  if ((rc = fl_list_get(ctx, p->list, &items, &n)) < 0) return rc;
  if (n < 1 || n > KEEP + 1)
    return fl_ctx_fail(ctx, "list length %zu out of range (rc %d) key %.*s", n, rc,
                       (int)in->key_len, (const char *)in->key);
  for (size_t i = 0; i < n; i++)
    if ((rc = fail_if(ctx, (uintptr_t)items[i].data % 8 != 0, "list item not 8-aligned")) != 0)
      return rc;
  m = n < KEEP ? n : KEEP;
  for (k = 0; k < m; k++) {
    keep[k] = items[n - 1 - k]; /* borrowed from the get */
    memcpy(copy[k], keep[k].data, keep[k].len);
  }
  /* Time passes between the get and the write: the items just read expire, and TTL
   * cleanup may remove the very cell the views point into. */
  atomic_fetch_add(&g_manual_ms, TTL_MS);
  rc = fl_list_update(ctx, p->list, keep, m);
  atomic_fetch_sub(&g_manual_ms, TTL_MS);
  if (rc != 0) return rc;
  if ((rc = fl_list_get(ctx, p->list, &again, &n)) < 0) return rc;
  if ((rc = fail_if(ctx, n != m, "the updated list has another length")) != 0) return rc;
  for (k = 0; k < m; k++)
    if ((rc = fail_if(ctx,
                      again[k].len != keep[k].len || memcmp(again[k].data, copy[k], again[k].len),
                      "the updated list holds other bytes than the views passed back")) != 0)
      return rc;

  rc = fl_value_get(ctx, p->value, &v, &vl);
  if (rc < 0) return rc;
  if (rc == 0) {
    v = "x";
    vl = 1;
  }
  if (vl >= sizeof vcopy - 1) vl = 1; /* keep it short */
  memcpy(vcopy, v, vl);
  vcopy[vl] = 'y';
  /* The view first, then a longer value: the set must copy before it replaces. */
  atomic_fetch_add(&g_manual_ms, TTL_MS);
  rc = fl_value_set(ctx, p->value, v, vl);
  atomic_fetch_sub(&g_manual_ms, TTL_MS);
  if (rc != 0) return rc;
  if ((rc = fl_value_get(ctx, p->value, &v, &vl)) != 1) return rc < 0 ? rc : FL_EUSER;
  if ((rc = fail_if(ctx, memcmp(v, vcopy, vl) != 0, "value set from its own view changed")) != 0)
    return rc;
  if ((rc = fl_value_set(ctx, p->value, vcopy, vl + 1)) != 0) return rc;

  /* A map value read, then put back under another user key from its view. */
  if ((rc = fl_map_put(ctx, p->map, "a", 1, in->value, in->value_len)) != 0) return rc;
  if ((rc = fl_map_get(ctx, p->map, "a", 1, &v, &vl)) != 1) return rc < 0 ? rc : FL_EUSER;
  atomic_fetch_add(&g_manual_ms, TTL_MS);
  rc = fl_map_put(ctx, p->map, "b", 1, v, vl);
  atomic_fetch_sub(&g_manual_ms, TTL_MS);
  if (rc != 0) return rc;
  if ((rc = fl_map_get(ctx, p->map, "b", 1, &v, &vl)) != 1) return rc < 0 ? rc : FL_EUSER;
  if ((rc = fail_if(ctx, vl != in->value_len || memcmp(v, in->value, vl) != 0,
                    "map value put from its own view changed")) != 0)
    return rc;

  if ((rc = fl_list_add(ctx, p->plain, in->value, in->value_len)) != 0) return rc;
  if ((rc = fl_list_get(ctx, p->plain, &items, &n)) < 0) return rc;
  for (size_t i = 0; i < n; i++)
    if ((rc = fail_if(ctx, (uintptr_t)items[i].data % 8 != 0, "list item not 8-aligned")) != 0)
      return rc;
  return fl_emit(ctx, "", 0, copy[0], keep[0].len, fl_ctx_timestamp(ctx));
}

static int passback_open(fl_context_t *ctx, void *opaque, void **instance) {
  (void)ctx;
  *instance = opaque;
  return FL_OK;
}

static void state_views_may_be_passed_back(const char *backend) {
  fl_env_t *env = new_env(backend, 1);
  passback_t p = {fl_state_list(env, "list"), fl_state_value(env, "value"),
                  fl_state_list(env, "plain"), fl_state_map(env, "map")};
  fl_ttl_config_t ttl = {.version = FL_TTL_CONFIG_VERSION,
                         .ttl_ms = TTL_MS,
                         .update = FL_TTL_ON_CREATE_AND_WRITE,
                         .visibility = FL_TTL_NEVER_RETURN_EXPIRED,
                         .incremental_cleanup_size = 8,
                         .cleanup_every_record = 1};
  static const fl_process_fn_t fn = {
      .version = FL_PROCESS_FN_VERSION, .open = passback_open, .process = passback_process};
  collector_t out;
  collector_init(&out);
  assert_int_equal(fl_state_desc_set_ttl(p.list, &ttl), FL_OK);
  assert_int_equal(fl_state_desc_set_ttl(p.value, &ttl), FL_OK);
  assert_int_equal(fl_state_desc_set_ttl(p.map, &ttl), FL_OK);
  fl_stream_t *s = fl_keyed_process(
      fl_stream_key_by(source(env, PB_RECORDS, PB_KEYS, true), NULL, NULL), "passback", &fn, &p);
  assert_int_equal(fl_stream_sink(s, "sink", &collector_sink, &out), FL_OK);
  if (fl_env_execute(env, "passback") != FL_OK) fail_msg("%s: %s", backend, fl_env_error(env));
  assert_int_equal(out.n, PB_RECORDS);
  fl_env_destroy(env);
  collector_free(&out);
}

static void state_views_passed_back_hashmap(void **state) {
  (void)state;
  state_views_may_be_passed_back("hashmap");
}

static void state_views_passed_back_rocksdb(void **state) {
  (void)state;
  state_views_may_be_passed_back("rocksdb");
}

/* Counts the records of each key in a value state and emits "<consumer>:<key>:<count>". */
typedef struct counter {
  const char *name;
  fl_state_desc_t *count;
} counter_t;

static int count_process(fl_context_t *ctx, const fl_record_t *in, void *instance) {
  counter_t *c = instance;
  const void *v;
  size_t vl, kl;
  int64_t n = 0;
  char line[64];
  int rc = fl_value_get(ctx, c->count, &v, &vl);
  if (rc < 0) return rc;
  if (rc == 1) memcpy(&n, v, sizeof n);
  n++;
  if ((rc = fl_value_set(ctx, c->count, &n, sizeof n)) != 0) return rc;
  const char *key = fl_ctx_key(ctx, &kl);
  int len = snprintf(line, sizeof line, "%s:%.*s:%" PRId64, c->name, (int)kl, key, n);
  (void)in;
  return fl_emit(ctx, "", 0, line, (size_t)len, fl_ctx_timestamp(ctx));
}

static int counter_open(fl_context_t *ctx, void *opaque, void **instance) {
  (void)ctx;
  *instance = opaque;
  return FL_OK;
}

static int window_count(fl_context_t *ctx, const fl_window_t *w, const fl_record_t *el, size_t n,
                        void *opaque) {
  size_t kl;
  char line[64];
  const char *key = fl_ctx_key(ctx, &kl);
  int len = snprintf(line, sizeof line, "w:%.*s:%zu", (int)kl, key, n);
  (void)w;
  (void)el;
  (void)opaque;
  return fl_emit(ctx, "", 0, line, (size_t)len, fl_ctx_timestamp(ctx));
}

/* How many records of out start with prefix, and the largest count among them. */
static size_t count_prefix(const collector_t *out, const char *prefix, int64_t *max) {
  size_t n = 0;
  *max = 0;
  for (size_t i = 0; i < out->n; i++) {
    if (strncmp(out->r[i].value, prefix, strlen(prefix)) != 0) continue;
    n++;
    int64_t c = strtoll(strrchr(out->r[i].value, ':') + 1, NULL, 10);
    if (c > *max) *max = c;
  }
  return n;
}

/*
 * One keyed stream feeds two keyed process functions that use the same state
 * descriptor, and a window: each gets every record with its key, and the two counts are
 * independent (each operator has state of its own): both reach RECORDS / KEYS for every
 * key, where a shared state would reach twice that.
 */
static void one_keyed_stream_feeds_several_operators(void **state) {
  (void)state;
  fl_env_t *env = new_env("hashmap", 3);
  fl_state_desc_t *d = fl_state_value(env, "count");
  counter_t a = {"a", d}, b = {"b", d};
  static const fl_process_fn_t fn = {
      .version = FL_PROCESS_FN_VERSION, .open = counter_open, .process = count_process};
  fl_watermark_strategy_t ws = {.version = FL_WATERMARK_STRATEGY_VERSION,
                                .kind = FL_WATERMARKS_MONOTONOUS};
  collector_t out;
  int64_t max;
  collector_init(&out);
  fl_keyed_stream_t *keyed = fl_stream_key_by(
      fl_stream_assign_timestamps(source(env, RECORDS, KEYS, false), "ts", &ws), NULL, NULL);
  assert_int_equal(
      fl_stream_sink(fl_keyed_process(keyed, "a", &fn, &a), "sink-a", &collector_sink, &out),
      FL_OK);
  assert_int_equal(
      fl_stream_sink(fl_keyed_process(keyed, "b", &fn, &b), "sink-b", &collector_sink, &out),
      FL_OK);
  fl_windowed_stream_t *w = fl_window_tumbling(keyed, FL_EVENT_TIME, 1000000, 0);
  assert_int_equal(fl_stream_sink(fl_window_process(w, "w", window_count, NULL), "sink-w",
                                  &collector_sink, &out),
                   FL_OK);
  if (fl_env_execute(env, "fan-out") != FL_OK) fail_msg("%s", fl_env_error(env));
  assert_int_equal(count_prefix(&out, "a:", &max), RECORDS);
  assert_int_equal(max, RECORDS / KEYS);
  assert_int_equal(count_prefix(&out, "b:", &max), RECORDS);
  assert_int_equal(max, RECORDS / KEYS);
  assert_int_equal(count_prefix(&out, "w:", &max), KEYS);
  assert_int_equal(max, RECORDS / KEYS);
  for (size_t i = 0; i < out.n; i++)
    if (out.r[i].value[0] == 'w') assert_int_equal(atoi(strrchr(out.r[i].value, ':') + 1), 20);
  fl_env_destroy(env);
  collector_free(&out);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(state_views_passed_back_hashmap),
      cmocka_unit_test(state_views_passed_back_rocksdb),
      cmocka_unit_test(one_keyed_stream_feeds_several_operators),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
