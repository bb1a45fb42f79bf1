/*
 * The state cache (src/state/cache*.c) in front of RocksDB: the backend contract and the
 * typed state layer on it (kv_contract.h), once with a cache that holds everything and
 * once with the smallest cache, which evicts all the time; then what only the cache does:
 * dirty cells reach the store at a flush and in a native copy, nothing written is lost
 * when dirty cells are evicted, the bound holds under a scan of more keys than fit,
 * appends to lists it does not hold, values too large to cache, borrowed pointers that
 * survive evictions, map cells it knows completely, an index grown past 2 MiB, and its
 * statistics. The suites run a third time on a large cache with a dirty limit of 64 KiB,
 * which writes cells ahead of the flush all the time; then the limit holds, the cells
 * written ahead are in the store before any flush, and a lent-out value stays dirty;
 * and the idle write-ahead brings the dirty bytes down to a target.
 *
 * Every store gets its own directory under $TMPDIR (or /tmp), removed afterwards.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "fl_test_util.h"
#include "flink.h"
#include "kv_contract.h"
#include "run_util.h"
#include "state/cache.h"
#include "state/kv.h"
#include "state/rocksdb.h"
#include "state/state.h"

/* ---------------------------------------------------------------------------------- */
/* The factory: a RocksDB store in a new directory, wrapped by a cache of its own       */

typedef struct cached_ctx {
  char *base;
  fl_kv_rocksdb_shared_t *sh;
  fl_kv_cache_t *cache;
} cached_ctx_t;

static void cached_close(fl_kv_t *kv, void *ctx) {
  cached_ctx_t *c = ctx;
  fl_kv_destroy(kv);
  if (!c) return;
  fl_kv_cache_destroy(c->cache);
  if (c->sh) fl_kv_rocksdb_shared_destroy(c->sh);
  if (c->base) rm_tree(c->base);
  free(c->base);
  free(c);
}

/* Opens a store at dir (restored from restore, if set) wrapped in cache. */
static int open_cached(cached_ctx_t *c, const char *dir, const char *restore, fl_kv_t *kv) {
  char err[512] = "";
  fl_kv_t inner;
  int rc = fl_kv_rocksdb_new(c->sh, dir, restore, &inner, err, sizeof err);
  if (rc) {
    fprintf(stderr, "fl_kv_rocksdb_new: %s\n", err);
    return rc;
  }
  rc = fl_kv_cache_wrap(c->cache, &inner, kv);
  if (rc) fl_kv_destroy(&inner);
  return rc;
}

static int cached_open_with(size_t cache_bytes, fl_kv_t *kv, void **ctx) {
  char err[256], dir[600];
  cached_ctx_t *c = calloc(1, sizeof *c);
  kv->ops = NULL;
  *ctx = c;
  if (!c || !(c->base = make_tmpdir("fl-kv-cache"))) return FL_ENOMEM;
  /* small RocksDB buffers, so that the larger cases reach SST files */
  fl_kv_rocksdb_opts_t o = {8u << 20, 1u << 20, 2, FL_KV_RDB_SNAPPY, 1, 0};
  int rc = fl_kv_rocksdb_shared_new(&o, &c->sh, err, sizeof err);
  if (rc == FL_OK) rc = fl_kv_cache_new(cache_bytes, &c->cache);
  snprintf(dir, sizeof dir, "%s/db", c->base);
  return rc ? rc : open_cached(c, dir, NULL, kv);
}

static int big_open(fl_kv_t *kv, void **ctx) { return cached_open_with(256u << 20, kv, ctx); }
static int tiny_open(fl_kv_t *kv, void **ctx) {
  return cached_open_with(FL_KV_CACHE_MIN_BYTES, kv, ctx);
}

/* What RocksDB does in the background, now: dirty cells written, the cache emptied (a
 * compaction drops expired cells behind its back), then a compaction. */
static int cached_settle(fl_kv_t *kv) {
  int rc = fl_kv_cache_drop(kv);
  return rc ? rc : fl_kv_rocksdb_compact(fl_kv_cache_inner(kv));
}

/* A cache that holds everything with a dirty limit of 64 KiB: the write-ahead. */
#define AHEAD_LIMIT (64u * 1024u)
static int ahead_open(fl_kv_t *kv, void **ctx) {
  int rc = cached_open_with(256u << 20, kv, ctx);
  if (*ctx) fl_kv_cache_set_dirty_limit(((cached_ctx_t *)*ctx)->cache, AHEAD_LIMIT);
  return rc;
}

static const kvc_backend_t cached_big = {
    "cache(256 MiB) over rocksdb", big_open, cached_close, cached_settle, KVC_ORDERED, 60000u};
static const kvc_backend_t cached_tiny = {
    "cache(64 KiB) over rocksdb", tiny_open, cached_close, cached_settle, KVC_ORDERED, 60000u};
static const kvc_backend_t cached_ahead = {"cache(256 MiB, dirty limit 64 KiB) over rocksdb",
                                           ahead_open,
                                           cached_close,
                                           cached_settle,
                                           KVC_ORDERED,
                                           60000u};

/* ---------------------------------------------------------------------------------- */
/* Helpers                                                                              */

static fl_kv_t *inner_of(kvc_fx_t *f) { return fl_kv_cache_inner(&f->kv); }

static fl_kv_cache_stats_t stats_of(kvc_fx_t *f) {
  fl_kv_cache_stats_t s;
  assert_int_equal(fl_kv_cache_stats(&f->kv, &s), FL_OK);
  return s;
}

static fl_kkey_t key_n(uint64_t *buf, uint64_t i) {
  *buf = i;
  return kk((uint16_t)(i % 128), buf, sizeof *buf, NULL, 0);
}

/* Writes a cell past the others (n + 1), then cells i < n of f's table with i * mult + 1;
 * with lists, also appends i to the list cell "l" of key i for every third i. */
static void put_numbered(kvc_fx_t *f, uint64_t n, uint64_t mult, bool lists) {
  uint64_t kb, val;
  kvc_put(f, f->t, key_n(&kb, n + 1), "x", 1);
  for (uint64_t i = 0; i < n; i++) {
    val = i * mult + 1;
    assert_int_equal(kvc_put(f, f->t, key_n(&kb, i), &val, sizeof val), FL_OK);
    if (lists && i % 3 == 0) {
      uint64_t item = i;
      assert_int_equal(f->kv.ops->append(f->kv.self, f->t,
                                         &(fl_kkey_t){(uint16_t)(i % 128), &i, sizeof i, "l", 1},
                                         &item, sizeof item),
                       FL_OK);
    }
  }
}

/* Checks that the cells i = 0, step, 2 step, ... below n of f's table hold i * mult + 1,
 * read through kv: the cache (&f->kv) or the store behind it (inner_of(f)). */
static void expect_numbered(kvc_fx_t *f, fl_kv_t *kv, uint64_t n, uint64_t step, uint64_t mult) {
  uint64_t kb, val;
  for (uint64_t i = 0; i < n; i += step) {
    val = i * mult + 1;
    kvc_assert_value_in(kv, f->t, key_n(&kb, i), &val, sizeof val);
  }
}

/* A large accumulator: the number of adds in its first 8 bytes. */
static void big_init(void *acc, void *opaque) { memset(acc, 0, sizeof(uint64_t)); }
static int big_add(fl_context_t *ctx, void *acc, const fl_record_t *in, void *opaque) {
  uint64_t n;
  memcpy(&n, acc, sizeof n);
  n++;
  memcpy(acc, &n, sizeof n);
  return 0;
}

/* ---------------------------------------------------------------------------------- */
/* Cases                                                                                */

/* A put stays in the cache (the store does not have it) until a flush writes it. */
static void dirty_cells_reach_the_store_at_a_flush(void **state) {
  kvc_fx_t *f = *state;
  fl_kv_t *in = inner_of(f);
  kvc_put_str(f, kstr(1, "k", ""), "seed"); /* the table's first write goes through */
  assert_int_equal(kvc_put_str(f, kstr(1, "a", ""), "one"), FL_OK);
  assert_int_equal(f->kv.ops->append(f->kv.self, f->t, &(fl_kkey_t){1, "l", 1, NULL, 0}, "x", 1),
                   FL_OK);
  const void *v;
  size_t n;
  fl_kkey_t a = kstr(1, "a", "");
  assert_int_equal(in->ops->get(in->self, f->t, &a, &v, &n), 0);
  assert_true(stats_of(f).dirty_items >= 2);
  assert_int_equal(f->kv.ops->flush(f->kv.self), FL_OK);
  kvc_assert_value_in(in, f->t, a, "one", 3);
  kvc_assert_value_in(in, f->t, kstr(1, "l", ""), "x", 1);
  assert_int_equal(stats_of(f).dirty_items, 0);
  assert_true(stats_of(f).flushes >= 1);
  /* a delete is written back the same way */
  assert_int_equal(f->kv.ops->del(f->kv.self, f->t, &a), FL_OK);
  kvc_assert_absent(f, f->t, a);
  kvc_assert_value_in(in, f->t, a, "one", 3);
  assert_int_equal(f->kv.ops->flush(f->kv.self), FL_OK);
  assert_int_equal(in->ops->get(in->self, f->t, &a, &v, &n), 0);
}

/* Reads of a cached cell are hits; the first read of a cell is a miss. */
static void reads_of_cached_cells_do_not_reach_the_store(void **state) {
  kvc_fx_t *f = *state;
  kvc_put_str(f, kstr(0, "seed", ""), "s");
  for (int i = 0; i < 100; i++) {
    char key[16];
    snprintf(key, sizeof key, "k%d", i);
    assert_int_equal(kvc_put_str(f, kstr(0, key, ""), "v"), FL_OK);
  }
  assert_int_equal(fl_kv_cache_drop(&f->kv), FL_OK);
  fl_kv_cache_stats_t s0 = stats_of(f);
  for (int round = 0; round < 3; round++)
    for (int i = 0; i < 100; i++) {
      char key[16];
      snprintf(key, sizeof key, "k%d", i);
      kvc_assert_str(f, kstr(0, key, ""), "v");
    }
  fl_kv_cache_stats_t s1 = stats_of(f);
  assert_int_equal(s1.misses - s0.misses, 100);
  assert_int_equal(s1.hits - s0.hits, 200);
}

/* More distinct cells than the cache holds, each written once with its own value:
 * every one is in the store afterwards, whether evicted dirty or flushed. */
static void evicting_dirty_cells_loses_nothing(void **state) {
  kvc_fx_t *f = *state;
  const uint64_t n = 20000;
  put_numbered(f, n, 7, true);
  fl_kv_cache_stats_t s = stats_of(f);
  assert_true(s.evicted_dirty > 0);
  assert_true(s.cache_bytes <= s.capacity);
  expect_numbered(f, &f->kv, n, 1, 7); /* through the cache */
  /* and in the store alone, after a flush */
  assert_int_equal(fl_kv_cache_drop(&f->kv), FL_OK);
  expect_numbered(f, inner_of(f), n, 1, 7);
  for (uint64_t i = 0; i < n; i += 3) {
    fl_kkey_t lk = {(uint16_t)(i % 128), &i, sizeof i, "l", 1};
    kvc_assert_value_in(inner_of(f), f->t, lk, &i, sizeof i);
  }
}

static void the_bound_holds_under_a_scan_of_more_keys_than_fit(void **state) {
  kvc_fx_t *f = *state;
  uint64_t kb;
  char val[100];
  memset(val, 'v', sizeof val);
  kvc_put(f, f->t, key_n(&kb, UINT64_MAX), "x", 1);
  size_t peak = 0;
  for (uint64_t i = 0; i < 30000; i++) {
    assert_int_equal(kvc_put(f, f->t, key_n(&kb, i), val, sizeof val), FL_OK);
    fl_kv_cache_stats_t s = stats_of(f);
    if (s.cache_bytes > peak) peak = s.cache_bytes;
  }
  for (uint64_t i = 0; i < 30000; i++) {
    const void *v;
    size_t n;
    assert_int_equal(kvc_get(f, f->t, key_n(&kb, i), &v, &n), 1);
    fl_kv_cache_stats_t s = stats_of(f);
    if (s.cache_bytes > peak) peak = s.cache_bytes;
  }
  fl_kv_cache_stats_t s = stats_of(f);
  assert_true(peak <= s.capacity);
  assert_true(s.items < 30000);
  assert_true(s.evictions > 0);
}

/* 300,000 cells: the index grows past 2 MiB of buckets (held on huge pages where the
 * kernel has them) and still finds every cell, and the store gets every one. */
static void a_large_index_finds_every_cell(void **state) {
  kvc_fx_t *f = *state;
  const uint64_t n = 300000;
  put_numbered(f, n, 3, false);
  fl_kv_cache_stats_t s0 = stats_of(f);
  assert_true(s0.items >= n);
  assert_int_equal(s0.evictions, 0);
  expect_numbered(f, &f->kv, n, 1, 3);
  fl_kv_cache_stats_t s1 = stats_of(f);
  assert_int_equal(s1.misses, s0.misses);
  assert_true(s1.hits >= s0.hits + n);
  assert_true(s1.cache_bytes <= s1.capacity);
  assert_int_equal(fl_kv_cache_drop(&f->kv), FL_OK);
  expect_numbered(f, inner_of(f), n, 7, 3);
}

/* An append to a list the cache does not hold does not read it; a read then puts the
 * store's items in front of the appended ones. */
static void appends_to_an_uncached_list_join_the_stored_list(void **state) {
  kvc_fx_t *f = *state;
  fl_kkey_t k = kstr(3, "list", "w");
  kvc_put_str(f, kstr(3, "seed", ""), "s");
  assert_int_equal(f->kv.ops->append(f->kv.self, f->t, &k, "ab", 2), FL_OK);
  assert_int_equal(fl_kv_cache_drop(&f->kv), FL_OK);
  fl_kv_cache_stats_t s0 = stats_of(f);
  assert_int_equal(f->kv.ops->append(f->kv.self, f->t, &k, "cd", 2), FL_OK);
  assert_int_equal(f->kv.ops->append(f->kv.self, f->t, &k, "ef", 2), FL_OK);
  assert_int_equal(stats_of(f).misses, s0.misses); /* not read */
  kvc_assert_value(f, f->t, k, "abcdef", 6);
  assert_int_equal(f->kv.ops->append(f->kv.self, f->t, &k, "gh", 2), FL_OK);
  kvc_assert_value(f, f->t, k, "abcdefgh", 8);
  assert_int_equal(f->kv.ops->flush(f->kv.self), FL_OK);
  kvc_assert_value_in(inner_of(f), f->t, k, "abcdefgh", 8);
  /* appended, flushed, appended again, then read */
  assert_int_equal(fl_kv_cache_drop(&f->kv), FL_OK);
  assert_int_equal(f->kv.ops->append(f->kv.self, f->t, &k, "ij", 2), FL_OK);
  assert_int_equal(f->kv.ops->flush(f->kv.self), FL_OK);
  assert_int_equal(f->kv.ops->append(f->kv.self, f->t, &k, "kl", 2), FL_OK);
  kvc_assert_value(f, f->t, k, "abcdefghijkl", 12);
  assert_int_equal(f->kv.ops->flush(f->kv.self), FL_OK);
  kvc_assert_value_in(inner_of(f), f->t, k, "abcdefghijkl", 12);
}

/* A value larger than 1/16 of the cache goes to the store directly, and stays right
 * through appends and reads. */
static void values_too_large_to_cache_go_to_the_store(void **state) {
  kvc_fx_t *f = *state;
  fl_kv_cache_stats_t s = stats_of(f);
  size_t big = s.capacity / 16 + 100;
  char *b = malloc(big + 10);
  assert_non_null(b);
  for (size_t i = 0; i < big + 10; i++) b[i] = (char)('a' + i % 26);
  fl_kkey_t k = kstr(0, "big", "");
  kvc_put_str(f, kstr(0, "seed", ""), "s");
  assert_int_equal(kvc_put(f, f->t, k, b, big), FL_OK);
  kvc_assert_value_in(inner_of(f), f->t, k, b, big);
  kvc_assert_value(f, f->t, k, b, big);
  assert_int_equal(f->kv.ops->append(f->kv.self, f->t, &k, b + big, 10), FL_OK);
  kvc_assert_value(f, f->t, k, b, big + 10);
  /* a cached list that outgrows the limit moves to the store */
  fl_kkey_t l = kstr(0, "list", "");
  for (size_t at = 0; at < big + 10; at += 100) {
    size_t n = big + 10 - at < 100 ? big + 10 - at : 100;
    assert_int_equal(f->kv.ops->append(f->kv.self, f->t, &l, b + at, n), FL_OK);
  }
  kvc_assert_value(f, f->t, l, b, big + 10);
  assert_int_equal(f->kv.ops->flush(f->kv.self), FL_OK);
  kvc_assert_value_in(inner_of(f), f->t, l, b, big + 10);
  free(b);
}

/* A value handed out stays valid while later reads evict other cells. */
static void borrowed_values_survive_evictions(void **state) {
  kvc_fx_t *f = *state;
  uint64_t kb;
  kvc_put(f, f->t, key_n(&kb, 999999), "x", 1);
  assert_int_equal(kvc_put(f, f->t, key_n(&kb, 1), "first", 5), FL_OK);
  assert_int_equal(kvc_put(f, f->t, key_n(&kb, 2), "second", 6), FL_OK);
  const void *a, *b;
  size_t al, bl;
  assert_int_equal(kvc_get(f, f->t, key_n(&kb, 1), &a, &al), 1);
  assert_int_equal(kvc_get(f, f->t, key_n(&kb, 2), &b, &bl), 1);
  /* enough new cells to evict the whole cache several times, in one put */
  char val[200];
  memset(val, 'z', sizeof val);
  fl_kv_cache_stats_t s0 = stats_of(f);
  for (uint64_t i = 10; stats_of(f).evictions - s0.evictions < 2000; i++)
    assert_int_equal(kvc_put(f, f->t, key_n(&kb, i), val, sizeof val), FL_OK);
  assert_memory_equal(a, "first", 5);
  assert_memory_equal(b, "second", 6);
  /* and can be written from */
  assert_int_equal(kvc_put(f, f->t, key_n(&kb, 3), b, bl), FL_OK);
  kvc_assert_value(f, f->t, key_n(&kb, 3), "second", 6);
}

static int seen_cb(const void *uk, size_t ukl, const void *val, size_t len, void *arg) {
  char *order = arg;
  size_t at = strlen(order);
  order[at++] = '|';
  memcpy(order + at, uk, ukl);
  order[at + ukl] = '\0';
  return FL_KV_NEXT;
}

/* Once a map cell was deleted the head knows it is empty: reads of its keys do not go
 * to the store, and a walk of it comes from the cache, in the store's order. */
static void a_deleted_map_cell_is_known_completely(void **state) {
  kvc_fx_t *f = *state;
  uint32_t mt;
  assert_int_equal(f->kv.ops->open_table(f->kv.self, "maps", &mt), FL_OK);
  fl_kkey_t m = kstr(2, "m", "");
  assert_int_equal(f->kv.ops->map_put(f->kv.self, mt, &m, "seed", 4, "s", 1), FL_OK);
  assert_int_equal(f->kv.ops->map_put(f->kv.self, mt, &m, "old", 3, "o", 1), FL_OK);
  assert_int_equal(f->kv.ops->del(f->kv.self, mt, &m), FL_OK);
  fl_kv_cache_stats_t s0 = stats_of(f);
  const void *v;
  size_t n;
  assert_int_equal(f->kv.ops->map_get(f->kv.self, mt, &m, "old", 3, &v, &n), 0);
  static const char *keys[] = {"b", "a", "ab", "", "c"};
  for (size_t i = 0; i < 5; i++)
    assert_int_equal(f->kv.ops->map_put(f->kv.self, mt, &m, keys[i], strlen(keys[i]), "v", 1),
                     FL_OK);
  char order[64] = "";
  assert_int_equal(f->kv.ops->map_iter(f->kv.self, mt, &m, seen_cb, order), FL_OK);
  assert_string_equal(order, "||a|ab|b|c");
  assert_int_equal(stats_of(f).misses, s0.misses);
  /* the store agrees after a flush */
  assert_int_equal(fl_kv_cache_drop(&f->kv), FL_OK);
  order[0] = '\0';
  assert_int_equal(f->kv.ops->map_iter(f->kv.self, mt, &m, seen_cb, order), FL_OK);
  assert_string_equal(order, "||a|ab|b|c");
}

/* A native copy taken with dirty cells in the cache holds them. */
static void a_native_copy_holds_the_dirty_cells(void **state) {
  kvc_fx_t *f = *state;
  cached_ctx_t *c = f->ctx;
  kvc_put_str(f, kstr(0, "seed", ""), "s");
  assert_int_equal(kvc_put_str(f, kstr(0, "dirty", ""), "d1"), FL_OK);
  assert_int_equal(f->kv.ops->append(f->kv.self, f->t, &(fl_kkey_t){0, "l", 1, NULL, 0}, "i", 1),
                   FL_OK);
  assert_true(stats_of(f).dirty_items > 0);
  char copy[600], dir2[600];
  snprintf(copy, sizeof copy, "%s/copy", c->base);
  snprintf(dir2, sizeof dir2, "%s/db2", c->base);
  assert_int_equal(f->kv.ops->checkpoint(f->kv.self, copy), FL_OK);
  fl_kv_t kv2;
  assert_int_equal(open_cached(c, dir2, copy, &kv2), FL_OK);
  uint32_t t2;
  assert_int_equal(kv2.ops->open_table(kv2.self, "t", &t2), FL_OK);
  kvc_assert_value_in(&kv2, t2, kstr(0, "dirty", ""), "d1", 2);
  kvc_assert_value_in(&kv2, t2, kstr(0, "l", ""), "i", 1);
  fl_kv_destroy(&kv2);
}

/* The statistics reach the stats op under their FL_KV_STAT names. */
static void the_stats_op_reports_the_cache(void **state) {
  kvc_fx_t *f = *state;
  kvc_put_str(f, kstr(0, "seed", ""), "s");
  kvc_put_str(f, kstr(0, "a", ""), "1");
  kvc_assert_str(f, kstr(0, "a", ""), "1");
  bool want[FL_KV_STAT_N];
  int64_t v[FL_KV_STAT_N];
  for (int i = 0; i < FL_KV_STAT_N; i++) {
    want[i] = true;
    v[i] = -1;
  }
  assert_int_equal(f->kv.ops->stats(f->kv.self, want, v), FL_OK);
  assert_true(v[FL_KV_STAT_CACHE_HIT] >= 1);
  assert_true(v[FL_KV_STAT_CACHE_USAGE] > 0);
  assert_true(v[FL_KV_STAT_CACHE_DIRTY_BYTES] > 0);
  assert_int_equal(v[FL_KV_STAT_CACHE_EVICTIONS], 0);
  assert_true(v[FL_KV_STAT_ESTIMATE_NUM_KEYS] >= 0); /* RocksDB's own, through the cache */
  assert_int_equal(f->kv.ops->flush(f->kv.self), FL_OK);
  assert_int_equal(f->kv.ops->stats(f->kv.self, want, v), FL_OK);
  assert_int_equal(v[FL_KV_STAT_CACHE_DIRTY_BYTES], 0);
  assert_true(v[FL_KV_STAT_CACHE_FLUSH_US] >= 0);
}

/* value_ref hands out the cached copy, which the caller overwrites in place: a read sees
 * it at once and the store after a flush. */
static void value_ref_updates_the_cached_copy(void **state) {
  kvc_fx_t *f = *state;
  fl_kv_t *in = inner_of(f);
  fl_kkey_t k = kstr(4, "acc", "w1");
  void *p;
  size_t n;
  kvc_put_str(f, kstr(4, "seed", ""), "s"); /* the table's kind is known from here */
  assert_int_equal(f->kv.ops->value_ref(f->kv.self, f->t, &k, 0, 8, &p, &n), 0);
  assert_int_equal(n, 8);
  assert_memory_equal(p, "\0\0\0\0\0\0\0\0", 8);
  memcpy(p, "abcdefgh", 8);
  kvc_assert_value(f, f->t, k, "abcdefgh", 8);
  const void *cv;
  size_t cn;
  assert_int_equal(in->ops->get(in->self, f->t, &k, &cv, &cn), 0); /* not yet in the store */
  assert_int_equal(f->kv.ops->flush(f->kv.self), FL_OK);
  kvc_assert_value_in(in, f->t, k, "abcdefgh", 8);
  /* an existing cell, cached or read from the store */
  for (int round = 0; round < 2; round++) {
    if (round == 1) assert_int_equal(fl_kv_cache_drop(&f->kv), FL_OK);
    assert_int_equal(f->kv.ops->value_ref(f->kv.self, f->t, &k, 0, 8, &p, &n), 1);
    assert_int_equal(n, 8);
    ((char *)p)[round] = 'X';
  }
  kvc_assert_value(f, f->t, k, "XXcdefgh", 8);
  assert_int_equal(f->kv.ops->flush(f->kv.self), FL_OK);
  kvc_assert_value_in(in, f->t, k, "XXcdefgh", 8);
  /* a list appended to without being read: the store's items come first */
  fl_kkey_t l = kstr(4, "list", "");
  assert_int_equal(f->kv.ops->append(f->kv.self, f->t, &l, "ab", 2), FL_OK);
  assert_int_equal(fl_kv_cache_drop(&f->kv), FL_OK);
  assert_int_equal(f->kv.ops->append(f->kv.self, f->t, &l, "cd", 2), FL_OK);
  assert_int_equal(f->kv.ops->value_ref(f->kv.self, f->t, &l, 0, 4, &p, &n), 1);
  assert_int_equal(n, 4);
  assert_memory_equal(p, "abcd", 4);
  memcpy(p, "ABCD", 4);
  assert_int_equal(f->kv.ops->flush(f->kv.self), FL_OK);
  kvc_assert_value_in(in, f->t, l, "ABCD", 4);
}

/* Past the dirty limit dirty cells go to the store as cells are written, in sweeps
 * through the key order: the dirty bytes stay under the limit, the cell first in key
 * order is in the store before any flush, and every cell reads back the same through
 * the cache and, after a flush, from the store. */
static void the_dirty_limit_writes_cells_ahead(void **state) {
  kvc_fx_t *f = *state;
  uint64_t kb, first = 1;
  put_numbered(f, 20000, 3, true);
  fl_kv_cache_stats_t s = stats_of(f);
  assert_true(s.dirty_bytes <= AHEAD_LIMIT);
  assert_true(s.written_ahead > 10000);
  assert_true(s.items >= 20000); /* written ahead, still cached */
  kvc_assert_value_in(inner_of(f), f->t, key_n(&kb, 0), &first, sizeof first);
  expect_numbered(f, &f->kv, 20000, 1, 3);
  assert_int_equal(f->kv.ops->flush(f->kv.self), FL_OK);
  expect_numbered(f, inner_of(f), 20000, 1, 3);
  for (uint64_t i = 0; i < 20000; i += 3) {
    uint64_t item = i;
    kvc_assert_value_in(inner_of(f), f->t, (fl_kkey_t){(uint16_t)(i % 128), &i, sizeof i, "l", 1},
                        &item, sizeof item);
  }
}

/* With a dirty target and no limit, writes only mark cells; a worker with nothing else
 * to do then writes them ahead, one write batch a call, down to the target. */
static void idle_write_ahead_brings_the_dirty_bytes_to_the_target(void **state) {
  kvc_fx_t *f = *state;
  fl_kv_cache_t *cache = ((cached_ctx_t *)f->ctx)->cache;
  uint64_t kb, first = 1;
  assert_false(fl_kv_cache_write_ahead_idle(cache)); /* no target yet */
  fl_kv_cache_set_dirty_target(cache, AHEAD_LIMIT);
  put_numbered(f, 20000, 3, true);
  fl_kv_cache_stats_t s = stats_of(f);
  assert_true(s.dirty_bytes > 10 * AHEAD_LIMIT);
  assert_int_equal(s.written_ahead, 0);
  int calls = 0;
  while (fl_kv_cache_write_ahead_idle(cache)) calls++;
  s = stats_of(f);
  assert_true(calls > 10); /* a batch a call */
  assert_true(s.dirty_bytes <= AHEAD_LIMIT);
  assert_true(s.written_ahead > 10000);
  kvc_assert_value_in(inner_of(f), f->t, key_n(&kb, 0), &first, sizeof first);
  expect_numbered(f, &f->kv, 20000, 1, 3);
  assert_int_equal(f->kv.ops->flush(f->kv.self), FL_OK);
  expect_numbered(f, inner_of(f), 20000, 1, 3);
  assert_false(fl_kv_cache_write_ahead_idle(cache));
  assert_false(fl_kv_cache_write_ahead_idle(NULL));
}

/* A value lent out by value_ref may still be written through its pointer: however many
 * cells are written after it, it is not written ahead, and the flush stores what was
 * written through the pointer. */
static void a_lent_value_is_not_written_ahead(void **state) {
  kvc_fx_t *f = *state;
  fl_kkey_t k = kstr(4, "acc", "w1");
  void *p;
  size_t n;
  kvc_put_str(f, kstr(4, "seed", ""), "s"); /* the table's kind is known from here */
  assert_int_equal(f->kv.ops->value_ref(f->kv.self, f->t, &k, 0, 8, &p, &n), 0);
  put_numbered(f, 5000, 1, false); /* far past the limit: cells go ahead */
  assert_true(stats_of(f).written_ahead > 1000);
  memcpy(p, "abcdefgh", 8);
  assert_int_equal(f->kv.ops->flush(f->kv.self), FL_OK);
  kvc_assert_value_in(inner_of(f), f->t, k, "abcdefgh", 8);
}

/* What the cache keeps no copy of, value_ref declines (FL_ENOTSUP) without changing
 * anything, and the typed state falls back to get and put. */
static void value_ref_declines_what_it_does_not_cache(void **state) {
  kvc_fx_t *f = *state;
  void *p;
  size_t n;
  uint32_t fresh;
  fl_kkey_t k = kstr(5, "k", "");
  assert_int_equal(f->kv.ops->open_table(f->kv.self, "fresh", &fresh), FL_OK);
  assert_int_equal(f->kv.ops->value_ref(f->kv.self, fresh, &k, 0, 8, &p, &n), FL_ENOTSUP);
  kvc_put_str(f, kstr(5, "seed", ""), "s");
  size_t big = stats_of(f).capacity / 16 + 1;
  assert_int_equal(f->kv.ops->value_ref(f->kv.self, f->t, &k, 0, big, &p, &n), FL_ENOTSUP);
  kvc_assert_absent(f, f->t, k);

  /* aggregating state whose accumulator is larger than the cache takes, and reducing
   * state whose value grows past it */
  fl_state_scratch_t *scratch = fl_state_scratch_new();
  assert_non_null(scratch);
  struct fl_state_desc desc = {.name = "t", .kind = FL_STATE_REDUCING, .reduce = concat_reduce};
  fl_ttl_cleanup_t cl = {0};
  fl_sref_t r = {.kv = &f->kv, .desc = &desc, .table = f->t, .cleanup = &cl, .scratch = scratch};
  r.k = kstr(6, "reduced", "");
  char chunk[100];
  memset(chunk, 'r', sizeof chunk);
  size_t total = 0;
  while (total <= big + 200) {
    assert_int_equal(fl_st_reducing_add(&r, chunk, sizeof chunk), FL_OK);
    total += sizeof chunk;
  }
  const void *cv;
  size_t cn;
  assert_int_equal(fl_st_reducing_get(&r, &cv, &cn), 1);
  assert_int_equal(cn, total);
  desc.kind = FL_STATE_AGGREGATING;
  desc.agg = (fl_aggregate_fn_t){
      .version = FL_AGGREGATE_FN_VERSION, .acc_size = big + 8, .init = big_init, .add = big_add};
  r.k = kstr(6, "aggregated", "");
  for (int i = 0; i < 5; i++) {
    fl_record_t rec = {"k", 1, "v", 1, i};
    assert_int_equal(fl_st_aggregating_add(&r, &rec), FL_OK);
  }
  const void *acc;
  assert_int_equal(fl_st_aggregating_get(&r, &acc), 1);
  uint64_t adds;
  memcpy(&adds, acc, sizeof adds);
  assert_int_equal(adds, 5);
  assert_int_equal(f->kv.ops->flush(f->kv.self), FL_OK);
  fl_state_scratch_destroy(scratch);
}

/* ---------------------------------------------------------------------------------- */
/* A flush's order: a hashmap store whose write_batch notes each write's place in a     */
/* RocksDB store's key order, and can be told to fail                                   */

static struct {
  fl_kv_ops_t ops;           /* the hashmap's, with write_batch below */
  const fl_kv_ops_t *real;   /* the hashmap's */
  unsigned char (*keys)[64]; /* each write's key as rocksdb_cells.c orders it */
  size_t n, cap;
  int calls, fail_call; /* fail_call: the write_batch call that fails (0: none) */
} g_rec;

/* table | key group | key length, key | namespace length, namespace | user key, each
 * short enough for one length byte: byte order is the store's key order. */
static void rec_note(const fl_kv_write_t *w) {
  if (g_rec.n == g_rec.cap) {
    g_rec.cap = g_rec.cap ? 2 * g_rec.cap : 1024;
    g_rec.keys = realloc(g_rec.keys, g_rec.cap * sizeof *g_rec.keys);
    assert_non_null(g_rec.keys);
  }
  unsigned char *p = g_rec.keys[g_rec.n++];
  size_t at = 0;
  assert_true(w->k.key_len < 16 && w->k.ns_len < 16 && w->ukey_len < 16);
  memset(p, 0, 64);
  p[at++] = (unsigned char)w->table;
  p[at++] = (unsigned char)(w->k.kg >> 8);
  p[at++] = (unsigned char)w->k.kg;
  p[at++] = (unsigned char)w->k.key_len;
  memcpy(p + at, w->k.key, w->k.key_len);
  at += w->k.key_len;
  p[at++] = (unsigned char)w->k.ns_len;
  if (w->k.ns_len) memcpy(p + at, w->k.ns, w->k.ns_len);
  at += w->k.ns_len;
  if (w->ukey_len) memcpy(p + at + 1, w->ukey, w->ukey_len);
  p[at] = (unsigned char)w->ukey_len;
}

static int rec_write_batch(void *self, const fl_kv_write_t *w, size_t n) {
  if (++g_rec.calls == g_rec.fail_call) return FL_EIO;
  int rc = FL_OK;
  for (size_t i = 0; i < n && rc == FL_OK; i++) {
    rec_note(&w[i]);
    rc = fl_kv_write_one(g_rec.real, self, &w[i]);
  }
  return rc;
}

/* A cache over the recording store, its tables v0, v1 (value cells) and m (map cells),
 * each opened with a first write (a table's first write goes through). */
static void rec_open(fl_kv_cache_t **c, fl_kv_t *kv, uint32_t t[3]) {
  fl_kv_t hm;
  assert_int_equal(fl_kv_hashmap_new(&hm), FL_OK);
  memset(&g_rec, 0, sizeof g_rec);
  g_rec.real = hm.ops;
  g_rec.ops = *hm.ops;
  g_rec.ops.write_batch = rec_write_batch;
  hm.ops = &g_rec.ops;
  assert_int_equal(fl_kv_cache_new(256u << 20, c), FL_OK);
  assert_int_equal(fl_kv_cache_wrap(*c, &hm, kv), FL_OK);
  const char *names[3] = {"v0", "v1", "m"};
  for (int i = 0; i < 3; i++) {
    assert_int_equal(kv->ops->open_table(kv->self, names[i], &t[i]), FL_OK);
    fl_kkey_t k = kk(0, "seed", 4, NULL, 0);
    if (i < 2)
      assert_int_equal(kv->ops->put(kv->self, t[i], &k, "s", 1), FL_OK);
    else
      assert_int_equal(kv->ops->map_put(kv->self, t[i], &k, "u", 1, "s", 1), FL_OK);
  }
}

static void rec_close(fl_kv_cache_t *c, fl_kv_t *kv) {
  fl_kv_destroy(kv);
  fl_kv_cache_destroy(c);
  free(g_rec.keys);
  memset(&g_rec, 0, sizeof g_rec);
}

/* Cell i, of table index i % 3 (v0, v1, m): key group and 8-byte key (*key) from a
 * generator; every fifth value cell has a window namespace; a map cell gets user key
 * uk = "u<i % 7>". */
static int rec_cell(uint64_t i, uint64_t *key, fl_kkey_t *k, char uk[3]) {
  uint64_t x = (i + 1) * 0x9e3779b97f4a7c15ull;
  x ^= x >> 29;
  *key = x;
  int which = (int)(i % 3);
  bool ns = which < 2 && i % 5 == 0;
  *k = kk((uint16_t)((x >> 48) % 128), key, sizeof *key, ns ? "w1" : NULL, ns ? 2 : 0);
  uk[0] = 'u', uk[1] = (char)('0' + i % 7), uk[2] = 0;
  return which;
}

/* The fixture of the cases below: a cache over the recording store (rec_open) with
 * REC_CELLS cells written through it, cell i with value i. */
#define REC_CELLS 6000u

typedef struct rec_fx {
  fl_kv_cache_t *c;
  fl_kv_t kv;
  uint32_t t[3];
} rec_fx_t;

static int rec_setup(void **state) {
  rec_fx_t *f = calloc(1, sizeof *f);
  assert_non_null(f);
  rec_open(&f->c, &f->kv, f->t);
  for (uint64_t i = 0; i < REC_CELLS; i++) {
    uint64_t key, val = i;
    fl_kkey_t k;
    char uk[3];
    int which = rec_cell(i, &key, &k, uk);
    fl_kv_t *kv = &f->kv;
    if (which < 2)
      assert_int_equal(kv->ops->put(kv->self, f->t[which], &k, &val, sizeof val), FL_OK);
    else
      assert_int_equal(kv->ops->map_put(kv->self, f->t[2], &k, uk, 2, &val, sizeof val), FL_OK);
  }
  *state = f;
  return 0;
}

static int rec_teardown(void **state) {
  rec_fx_t *f = *state;
  rec_close(f->c, &f->kv);
  free(f);
  return 0;
}

static void rec_expect_cells(fl_kv_t *inner, const uint32_t t[3], uint64_t n) {
  for (uint64_t i = 0; i < n; i++) {
    uint64_t key, val = i;
    fl_kkey_t k;
    char uk[3];
    const void *v = NULL;
    size_t len = 0;
    int which = rec_cell(i, &key, &k, uk);
    if (which < 2) {
      kvc_assert_value_in(inner, t[which], k, &val, sizeof val);
    } else {
      assert_int_equal(inner->ops->map_get(inner->self, t[2], &k, uk, 2, &v, &len), 1);
      assert_int_equal(len, sizeof val);
      assert_memory_equal(v, &val, sizeof val);
    }
  }
}

/* A flush of more dirty cells than one write batch takes hands them to the store in
 * key order across all its batches (RocksDB then inserts each near the last one), and
 * every cell once. */
static void a_flush_hands_the_store_its_writes_in_key_order(void **state) {
  rec_fx_t *f = *state;
  assert_int_equal(f->kv.ops->flush(f->kv.self), FL_OK);
  assert_true(g_rec.calls >= 2);
  assert_int_equal(g_rec.n, REC_CELLS);
  for (size_t i = 1; i < g_rec.n; i++)
    if (memcmp(g_rec.keys[i - 1], g_rec.keys[i], 64) >= 0) fail_msg("write %zu out of order", i);
  rec_expect_cells(fl_kv_cache_inner(&f->kv), f->t, REC_CELLS);
}

static int count_entry(const void *ukey, size_t ukey_len, const void *val, size_t len, void *arg) {
  (void)ukey, (void)ukey_len, (void)val, (void)len;
  ++*(int *)arg;
  return 0;
}

/* A flush whose second write batch fails leaves dirty every cell the store did not
 * take (the first batch's are clean); the next flush writes them. */
static void a_failed_flush_keeps_the_cells_it_did_not_write_dirty(void **state) {
  rec_fx_t *f = *state;
  fl_kv_t *kv = &f->kv;
  fl_kv_cache_stats_t s;
  assert_int_equal(fl_kv_cache_stats(kv, &s), FL_OK);
  assert_true(s.dirty_items >= REC_CELLS);
  g_rec.fail_call = 2;
  assert_int_equal(kv->ops->flush(kv->self), FL_EIO);
  assert_true(g_rec.n > 0); /* the first batch, value cells of v0 (first in key order) */
  size_t dirty = s.dirty_items - g_rec.n;
  assert_int_equal(fl_kv_cache_stats(kv, &s), FL_OK);
  assert_int_equal(s.dirty_items, dirty);
  g_rec.fail_call = 0;
  /* a walk of a map cell writes its dirty entries first, one by one (each leaves the
   * dirty array at the place the failed flush left it in) */
  for (uint64_t i = 2; i < 300; i += 3) {
    uint64_t key;
    fl_kkey_t k;
    char uk[3];
    rec_cell(i, &key, &k, uk);
    int count = 0;
    assert_int_equal(kv->ops->map_iter(kv->self, f->t[2], &k, count_entry, &count), FL_OK);
    assert_int_equal(count, 1);
  }
  assert_int_equal(fl_kv_cache_stats(kv, &s), FL_OK);
  assert_int_equal(s.dirty_items, dirty - 100);
  assert_int_equal(kv->ops->flush(kv->self), FL_OK);
  assert_int_equal(fl_kv_cache_stats(kv, &s), FL_OK);
  assert_int_equal(s.dirty_items, 0);
  rec_expect_cells(fl_kv_cache_inner(kv), f->t, REC_CELLS);
}

/* Appends to cached lists, then a flush whose second write batch fails: the next flush
 * does not append the first batch's bytes again. */
static void a_failed_flush_appends_nothing_twice(void **state) {
  rec_fx_t *f = *state;
  fl_kv_t *kv = &f->kv;
  assert_int_equal(kv->ops->flush(kv->self), FL_OK);
  for (uint64_t i = 0; i < REC_CELLS; i++) {
    uint64_t key;
    fl_kkey_t k;
    char uk[3];
    int which = rec_cell(i, &key, &k, uk);
    if (which < 2) assert_int_equal(kv->ops->append(kv->self, f->t[which], &k, "+", 1), FL_OK);
  }
  g_rec.n = 0;
  g_rec.calls = 0;
  g_rec.fail_call = 2;
  assert_int_equal(kv->ops->flush(kv->self), FL_EIO);
  assert_true(g_rec.n > 0);
  g_rec.fail_call = 0;
  assert_int_equal(kv->ops->flush(kv->self), FL_OK);
  fl_kv_t *inner = fl_kv_cache_inner(kv);
  for (uint64_t i = 0; i < REC_CELLS; i++) {
    uint64_t key, val = i;
    fl_kkey_t k;
    char uk[3];
    unsigned char want[sizeof val + 1];
    int which = rec_cell(i, &key, &k, uk);
    if (which == 2) continue;
    memcpy(want, &val, sizeof val);
    want[sizeof val] = '+';
    kvc_assert_value_in(inner, f->t[which], k, want, sizeof want);
  }
}

static void bad_sizes_are_rejected(void **state) {
  (void)state;
  fl_kv_cache_t *c = NULL;
  assert_int_equal(fl_kv_cache_new(FL_KV_CACHE_MIN_BYTES - 1, &c), FL_EINVAL);
  assert_null(c);
  assert_int_equal(fl_kv_cache_new(FL_KV_CACHE_MIN_BYTES, NULL), FL_EINVAL);
  fl_kv_t none = {0};
  assert_int_equal(fl_kv_cache_new(FL_KV_CACHE_MIN_BYTES, &c), FL_OK);
  fl_kv_t out;
  assert_int_equal(fl_kv_cache_wrap(c, &none, &out), FL_EINVAL);
  fl_kv_cache_destroy(c);
}

int main(void) {
  const struct CMUnitTest tiny[] = {
      KVC_CASE(dirty_cells_reach_the_store_at_a_flush, &cached_tiny),
      KVC_CASE(evicting_dirty_cells_loses_nothing, &cached_tiny),
      KVC_CASE(the_bound_holds_under_a_scan_of_more_keys_than_fit, &cached_tiny),
      KVC_CASE(appends_to_an_uncached_list_join_the_stored_list, &cached_tiny),
      KVC_CASE(values_too_large_to_cache_go_to_the_store, &cached_tiny),
      KVC_CASE(borrowed_values_survive_evictions, &cached_tiny),
      KVC_CASE(a_deleted_map_cell_is_known_completely, &cached_tiny),
      KVC_CASE(a_native_copy_holds_the_dirty_cells, &cached_tiny),
      KVC_CASE(value_ref_updates_the_cached_copy, &cached_tiny),
      KVC_CASE(value_ref_declines_what_it_does_not_cache, &cached_tiny),
      cmocka_unit_test(bad_sizes_are_rejected),
      cmocka_unit_test_setup_teardown(a_flush_hands_the_store_its_writes_in_key_order, rec_setup,
                                      rec_teardown),
      cmocka_unit_test_setup_teardown(a_failed_flush_keeps_the_cells_it_did_not_write_dirty,
                                      rec_setup, rec_teardown),
      cmocka_unit_test_setup_teardown(a_failed_flush_appends_nothing_twice, rec_setup,
                                      rec_teardown),
  };
  const struct CMUnitTest big[] = {
      KVC_CASE(dirty_cells_reach_the_store_at_a_flush, &cached_big),
      KVC_CASE(reads_of_cached_cells_do_not_reach_the_store, &cached_big),
      KVC_CASE(appends_to_an_uncached_list_join_the_stored_list, &cached_big),
      KVC_CASE(values_too_large_to_cache_go_to_the_store, &cached_big),
      KVC_CASE(a_deleted_map_cell_is_known_completely, &cached_big),
      KVC_CASE(a_native_copy_holds_the_dirty_cells, &cached_big),
      KVC_CASE(the_stats_op_reports_the_cache, &cached_big),
      KVC_CASE(value_ref_updates_the_cached_copy, &cached_big),
      KVC_CASE(a_large_index_finds_every_cell, &cached_big),
      KVC_CASE(idle_write_ahead_brings_the_dirty_bytes_to_the_target, &cached_big),
  };
  const struct CMUnitTest ahead[] = {
      KVC_CASE(the_dirty_limit_writes_cells_ahead, &cached_ahead),
      KVC_CASE(a_lent_value_is_not_written_ahead, &cached_ahead),
      KVC_CASE(dirty_cells_reach_the_store_at_a_flush, &cached_ahead),
      KVC_CASE(appends_to_an_uncached_list_join_the_stored_list, &cached_ahead),
      KVC_CASE(a_native_copy_holds_the_dirty_cells, &cached_ahead),
      KVC_CASE(value_ref_updates_the_cached_copy, &cached_ahead),
  };
  int failed = kvc_run_all(&cached_tiny, tiny, sizeof tiny / sizeof tiny[0]);
  failed += kvc_run_all(&cached_big, big, sizeof big / sizeof big[0]);
  failed += kvc_run_all(&cached_ahead, ahead, sizeof ahead / sizeof ahead[0]);
  return failed;
}
