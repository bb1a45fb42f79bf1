/*
 * The in-memory state backend (src/state/hashmap.c): the backend contract and the typed
 * state layer on it (kv_contract.h), then what is the hashmap's own: values written in
 * place, lookups and deletes in the middle of an index doubling (which happens
 * incrementally, so many checks run mid-rehash), and the per-cell check of value and
 * map calls.
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

#include "kv_contract.h"
#include "state/hashmap_internal.h"

static int hm_open(fl_kv_t *kv, void **ctx) {
  *ctx = NULL;
  return fl_kv_hashmap_new(kv);
}

static void hm_close(fl_kv_t *kv, void *ctx) { fl_kv_destroy(kv); }

/* A million cells: the index doubles many times, the walks cross many doublings. */
static const kvc_backend_t hashmap = {"hashmap", hm_open, hm_close, NULL, 0, 1000000u};

/* ---------------------------------------------------------------------------------- */

static void same_size_put_overwrites_in_place(void **state) {
  kvc_fx_t *f = *state;
  fl_kkey_t k = kstr(7, "key", "w1");
  assert_int_equal(kvc_put_str(f, k, "aaaa"), FL_OK);
  const void *p1, *p2;
  size_t n;
  assert_int_equal(kvc_get(f, f->t, k, &p1, &n), 1);
  assert_int_equal(kvc_put_str(f, k, "bbbb"), FL_OK);
  assert_int_equal(kvc_get(f, f->t, k, &p2, &n), 1);
  assert_ptr_equal(p1, p2);
  assert_memory_equal(p2, "bbbb", 4);
  assert_int_equal(kvc_put_str(f, k, "cc"), FL_OK); /* smaller fits too */
  assert_int_equal(kvc_get(f, f->t, k, &p2, &n), 1);
  assert_ptr_equal(p1, p2);
  kvc_assert_str(f, k, "cc");
}

/* Lookups move the incremental rehash along: each one must still return its own
 * entry, whatever the step just did to the index's slots. */
static void every_lookup_during_growth_finds_its_own_entry(void **state) {
  kvc_fx_t *f = *state;
  const uint32_t n = 1500;
  for (uint32_t i = 0; i < n; i++) {
    assert_int_equal(kvc_put_num(f, f->t, i), FL_OK);
    for (uint32_t j = 0; j <= i; j++) kvc_assert_num(f, f->t, j);
  }
}

static void deletes_during_growth_keep_other_entries_reachable(void **state) {
  kvc_fx_t *f = *state;
  const uint32_t n = 200000;
  for (uint32_t i = 0; i < n; i++) {
    assert_int_equal(kvc_put_num(f, f->t, i), FL_OK);
    if (i % 3 == 0 && i > 0) {
      uint32_t d = i - 1; /* delete a recent one, often while an index is draining */
      fl_kkey_t k = knum(&d);
      assert_int_equal(f->kv.ops->del(f->kv.self, f->t, &k), FL_OK);
    }
  }
  size_t live = 0;
  for (uint32_t i = 0; i < n; i++) {
    bool deleted = (i + 1) % 3 == 0 && i + 1 < n;
    if (deleted) {
      kvc_assert_absent(f, f->t, knum(&i));
    } else {
      kvc_assert_num(f, f->t, i);
      live++;
    }
  }
  assert_int_equal(kvc_count(f, f->t), live);
}

/* Stricter than the contract (which keeps value and map cells in separate tables): the
 * hashmap tells them apart per cell. */
static void value_and_map_calls_do_not_mix_on_one_cell(void **state) {
  kvc_fx_t *f = *state;
  fl_kkey_t v = kstr(0, "v", ""), m = kstr(0, "m", "");
  assert_int_equal(kvc_put_str(f, v, "1"), FL_OK);
  assert_int_equal(kvc_mput(f, m, "x", "1"), FL_OK);
  const void *p;
  size_t n;
  assert_int_equal(f->kv.ops->map_get(f->kv.self, f->t, &v, "x", 1, &p, &n), FL_EINVAL);
  assert_int_equal(kvc_mput(f, v, "x", "1"), FL_EINVAL);
  assert_int_equal(kvc_get(f, f->t, m, &p, &n), FL_EINVAL);
  assert_int_equal(kvc_put_str(f, m, "1"), FL_EINVAL);
  assert_int_equal(f->kv.ops->append(f->kv.self, f->t, &m, "1", 1), FL_EINVAL);
}

/* The slab pool under a window's cells (8-byte key, 16-byte namespace, 16-byte
 * accumulator): its slabs and live cells, as the pool counts them. */
static void pool_now(kvc_fx_t *f, size_t *held, size_t *live) {
  fl_hm_pool_stats(&((hm_t *)f->kv.self)->pool, held, live);
}

static int window_cell(kvc_fx_t *f, uint64_t key, uint64_t window, bool *created) {
  unsigned char ns[16] = {0};
  memcpy(ns, &window, sizeof window);
  fl_kkey_t k = kk((uint16_t)(key % 128), &key, sizeof key, ns, sizeof ns);
  void *v;
  size_t n;
  int rc = f->kv.ops->value_ref(f->kv.self, f->t, &k, fl_hash64(&key, sizeof key, 0), 16, &v, &n);
  if (rc < 0) return rc;
  *created = rc == 0;
  memcpy(v, &key, sizeof key); /* write the cell, as an accumulator would be */
  return FL_OK;
}

static int fire_window(kvc_fx_t *f, uint64_t keys, uint64_t window) {
  unsigned char ns[16] = {0};
  memcpy(ns, &window, sizeof window);
  for (uint64_t key = 0; key < keys; key++) {
    fl_kkey_t k = kk((uint16_t)(key % 128), &key, sizeof key, ns, sizeof ns);
    int rc = f->kv.ops->del(f->kv.self, f->t, &k);
    if (rc) return rc;
  }
  return FL_OK;
}

/* A burst of windows: 200,000 cells live at once, then fired. What the pool holds
 * follows what is live: it gives the slabs back when their cells go (one spare slab
 * per size class stays), reuses freed cells before carving new ones, and the next
 * window of the same size takes no more than the first. */
static void pool_memory_follows_the_live_cells(void **state) {
  kvc_fx_t *f = *state;
  const uint64_t keys = 200000;
  size_t held0, live, held_burst, held_after;
  pool_now(f, &held0, &live);
  assert_int_equal(live, 0);
  bool created;
  for (uint64_t key = 0; key < keys; key++) {
    assert_int_equal(window_cell(f, key, 1, &created), FL_OK);
    assert_true(created);
  }
  pool_now(f, &held_burst, &live);
  assert_int_equal(live, keys);
  const hm_pool_t *pool = &((hm_t *)f->kv.self)->pool;
  assert_true(pool->n_arenas > 0); /* a large pool's slabs come from huge-page arenas */
  /* 64-byte cells: 1,023 to a 64 KiB slab; the bound allows the slab headers. */
  assert_true(held_burst >= keys * 64);
  assert_true(held_burst <= (keys / 1000 + 2) * (size_t)HM_SLAB_BYTES);
  assert_int_equal(fire_window(f, keys, 1), FL_OK);
  assert_int_equal(kvc_count(f, f->t), 0);
  pool_now(f, &held_after, &live);
  assert_int_equal(live, 0);
  assert_true(held_after <= HM_SLAB_BYTES); /* the spare */
  assert_true(pool->n_arenas <= 1);         /* the spare's, if it came from one */
  /* the emptied table's index and dense array went too */
  const hm_dict_t *d = &((hm_t *)f->kv.self)->t[f->t].d;
  assert_null(d->ix.slots);
  assert_null(d->dense);
  assert_null(d->hashes);

  /* The next window, twice over: no growth beyond the first burst. */
  for (int round = 2; round <= 3; round++) {
    for (uint64_t key = 0; key < keys; key++)
      assert_int_equal(window_cell(f, key, (uint64_t)round, &created), FL_OK);
    pool_now(f, &held_after, &live);
    assert_int_equal(live, keys);
    assert_true(held_after <= held_burst);
    assert_int_equal(fire_window(f, keys, (uint64_t)round), FL_OK);
  }

  /* Half the cells fire (every other key), then as many new ones come: they fill the
   * freed cells, so the pool does not grow. */
  for (uint64_t key = 0; key < keys; key++)
    assert_int_equal(window_cell(f, key, 4, &created), FL_OK);
  pool_now(f, &held_burst, &live);
  unsigned char ns[16] = {0};
  uint64_t w = 4;
  memcpy(ns, &w, sizeof w);
  for (uint64_t key = 0; key < keys; key += 2) {
    fl_kkey_t k = kk((uint16_t)(key % 128), &key, sizeof key, ns, sizeof ns);
    assert_int_equal(f->kv.ops->del(f->kv.self, f->t, &k), FL_OK);
  }
  for (uint64_t key = 0; key < keys / 2; key++)
    assert_int_equal(window_cell(f, key, 5, &created), FL_OK);
  pool_now(f, &held_after, &live);
  assert_int_equal(live, keys);
  assert_true(held_after <= held_burst);
  /* every cell still holds what was written into it */
  for (uint64_t key = 1; key < keys; key += 2) {
    fl_kkey_t k = kk((uint16_t)(key % 128), &key, sizeof key, ns, sizeof ns);
    const void *v;
    size_t n;
    assert_int_equal(kvc_get(f, f->t, k, &v, &n), 1);
    assert_int_equal(n, 16);
    assert_memory_equal(v, &key, sizeof key);
  }
}

/* Appends to key group cells (an empty key, as a window's lists of the keys of each
 * group) go through a cache of the cell last appended to per group and namespace: the
 * cache must follow the cells as they grow (and move), are removed, taken, replaced by a
 * put or walked away, and as cells of other namespaces take their slot. A model of every
 * cell's bytes is compared after each step. */
#define GC_GROUPS 128
#define GC_WINDOWS 24

static void group_ns(unsigned char ns[16], uint64_t w) {
  memset(ns, 0, 16);
  memcpy(ns, &w, sizeof w);
  uint64_t end = w + 300000;
  memcpy(ns + 8, &end, sizeof end);
}

static int drop_cb(const fl_kkey_t *k, const void *v, size_t n, void *arg) {
  (void)v;
  (void)n;
  const uint64_t *victim = arg;
  uint64_t w;
  memcpy(&w, k->ns, sizeof w);
  return k->kg % 7 == 3 && w == *victim ? FL_KV_DELETE : 0;
}

static void appends_to_group_cells_follow_the_cells(void **state) {
  kvc_fx_t *f = *state;
  static unsigned char model[GC_GROUPS][GC_WINDOWS][2048];
  static size_t mlen[GC_GROUPS][GC_WINDOWS];
  memset(mlen, 0, sizeof mlen);
  uint64_t rnd = 0x1234567;
  unsigned char item[24], ns[16];
  for (int step = 0; step < 200000; step++) {
    rnd = rnd * 6364136223846793005ull + 1442695040888963407ull;
    uint32_t r = (uint32_t)(rnd >> 33);
    uint16_t kg = (uint16_t)(r % GC_GROUPS);
    uint64_t w = (r / GC_GROUPS) % GC_WINDOWS;
    group_ns(ns, w);
    fl_kkey_t k = kk(kg, "", 0, ns, sizeof ns);
    uint32_t op = (r >> 24) % 100;
    if (op < 90 || mlen[kg][w] + sizeof item > sizeof model[0][0]) {
      if (mlen[kg][w] + sizeof item > sizeof model[0][0])
        op = 95; /* full: remove it */
      else {
        size_t len = op < 80 ? 16 : 1 + op % 24;
        for (size_t i = 0; i < len; i++) item[i] = (unsigned char)(step + i);
        assert_int_equal(f->kv.ops->append(f->kv.self, f->t, &k, item, len), FL_OK);
        memcpy(model[kg][w] + mlen[kg][w], item, len);
        mlen[kg][w] += len;
      }
    }
    if (op >= 90 && op < 94) { /* replaced by a put, shorter or longer */
      size_t len = op < 92 ? 3 : 600;
      unsigned char big[600];
      memset(big, (int)op, sizeof big);
      assert_int_equal(kvc_put(f, f->t, k, big, len), FL_OK);
      memcpy(model[kg][w], big, len);
      mlen[kg][w] = len;
    } else if (op >= 94 && op < 98) {
      assert_int_equal(f->kv.ops->del(f->kv.self, f->t, &k), FL_OK);
      mlen[kg][w] = 0;
    } else if (op == 98) { /* taken */
      const void *v;
      size_t n;
      int rc = f->kv.ops->take(f->kv.self, f->t, &k, fl_hash64("", 0, 0), &v, &n);
      assert_int_equal(rc, mlen[kg][w] ? 1 : 0);
      if (rc) assert_int_equal(n, mlen[kg][w]);
      mlen[kg][w] = 0;
    } else if (op == 99) { /* a walk removes the cells of some groups in window w */
      uint64_t cursor = 0;
      do assert_int_equal(f->kv.ops->iterate(f->kv.self, f->t, &cursor, 1000, drop_cb, &w), FL_OK);
      while (cursor);
      for (uint16_t g = 3; g < GC_GROUPS; g += 7) mlen[g][w] = 0;
    }
    if (step % 5000 == 0 || step > 199000) {
      for (uint16_t g = 0; g < GC_GROUPS; g++) {
        for (uint64_t x = 0; x < GC_WINDOWS; x++) {
          group_ns(ns, x);
          fl_kkey_t c = kk(g, "", 0, ns, sizeof ns);
          if (mlen[g][x])
            kvc_assert_value(f, f->t, c, model[g][x], mlen[g][x]);
          else
            kvc_assert_absent(f, f->t, c);
        }
      }
    }
  }
}

/* A cell holds at most HM_VAL_MAX bytes (its lengths are 32-bit): a put, an append or
 * a created cell past it is refused (FL_ENOMEM) before any byte is read, and the cell
 * keeps what it had; a length of 2^32 + 3 is refused, not taken for 3. */
static void values_past_the_cell_limit_are_refused_and_keep_the_cell(void **state) {
  kvc_fx_t *f = *state;
  const fl_kv_ops_t *o = f->kv.ops;
  const size_t huge[] = {(size_t)HM_VAL_MAX + 1, ((size_t)1 << 32) + 3, SIZE_MAX / 2};
  fl_kkey_t k = kk(3, "key", 3, "ns", 2), fresh = kk(4, "other", 5, "ns", 2);
  assert_int_equal(kvc_put(f, f->t, k, "abc", 3), FL_OK);
  char small[8] = "xyz"; /* never read past 3 bytes: the length is refused first */
  for (size_t i = 0; i < sizeof huge / sizeof huge[0]; i++) {
    assert_int_equal(kvc_put(f, f->t, k, small, huge[i]), FL_ENOMEM);
    assert_int_equal(o->append(f->kv.self, f->t, &k, small, huge[i]), FL_ENOMEM);
    assert_int_equal(kvc_put(f, f->t, fresh, small, huge[i]), FL_ENOMEM);
    void *v;
    size_t n;
    assert_int_equal(
        o->value_ref(f->kv.self, f->t, &fresh, fl_hash64("other", 5, 0), huge[i], &v, &n),
        FL_ENOMEM);
    const void *got;
    assert_int_equal(kvc_get(f, f->t, k, &got, &n), 1);
    assert_int_equal(n, 3);
    assert_memory_equal(got, "abc", 3);
    assert_int_equal(kvc_get(f, f->t, fresh, &got, &n), 0);
    assert_int_equal(kvc_count(f, f->t), 1);
  }
}

/* Values that outgrow the pool's largest class move to malloc and back. */
static void values_cross_the_pool_limit_both_ways(void **state) {
  kvc_fx_t *f = *state;
  fl_kkey_t k = kstr(3, "grow", "ns");
  unsigned char buf[4096];
  for (size_t i = 0; i < sizeof buf; i++) buf[i] = (unsigned char)(i * 7);
  size_t lens[] = {8, 100, 400, 600, 4096, 300, 16, 2000, 0, 500};
  for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
    assert_int_equal(kvc_put(f, f->t, k, buf, lens[i]), FL_OK);
    kvc_assert_value(f, f->t, k, buf, lens[i]);
  }
  for (size_t i = 0; i < 64; i++) /* appends grow the cell across the limit */
    assert_int_equal(f->kv.ops->append(f->kv.self, f->t, &k, buf + i * 16, 16), FL_OK);
  const void *v;
  size_t n;
  assert_int_equal(kvc_get(f, f->t, k, &v, &n), 1);
  assert_int_equal(n, 500 + 64 * 16);
  assert_memory_equal((const unsigned char *)v + 500, buf, 64 * 16);
  assert_int_equal(f->kv.ops->del(f->kv.self, f->t, &k), FL_OK);
  size_t live;
  pool_now(f, NULL, &live);
  assert_int_equal(live, 0);
}

static void constructor_rejects_null(void **state) {
  assert_int_equal(fl_kv_hashmap_new(NULL), FL_EINVAL);
}

/* A window's cell of an 8-byte key (an id) with an accumulator of up to 16 bytes is one
 * 64-byte cache line, the value 16-byte aligned in it: a record's lookup and add touch
 * one line of the cell. Fails if the entry's header grows. */
static void window_cells_are_one_cache_line(void **state) {
  kvc_fx_t *f = *state;
  unsigned char ns[16] = {7};
  for (size_t acc = 1; acc <= 16; acc++) {
    for (uint64_t key = 0; key < 64; key++) {
      uint64_t id = acc * 1000 + key;
      fl_kkey_t k = kk((uint16_t)(id % 128), &id, sizeof id, ns, sizeof ns);
      void *v;
      size_t n;
      int rc =
          f->kv.ops->value_ref(f->kv.self, f->t, &k, fl_hash64(&id, sizeof id, 0), acc, &v, &n);
      assert_int_equal(rc, 0);
      assert_int_equal((uintptr_t)v % 16, 0);
      uintptr_t line = (uintptr_t)v & ~(uintptr_t)63;
      assert_true((uintptr_t)v + acc <= line + 64);
      /* the key and the namespace are in the same line, before the value */
      const hm_entry_t *e = (const hm_entry_t *)(line);
      assert_int_equal(e->key_len, 8);
      assert_int_equal(e->ns_len, 16);
      assert_memory_equal(e->data, &id, 8);
    }
  }
}

int main(void) {
  const struct CMUnitTest own[] = {
      KVC_CASE(same_size_put_overwrites_in_place, &hashmap),
      KVC_CASE(every_lookup_during_growth_finds_its_own_entry, &hashmap),
      KVC_CASE(deletes_during_growth_keep_other_entries_reachable, &hashmap),
      KVC_CASE(value_and_map_calls_do_not_mix_on_one_cell, &hashmap),
      KVC_CASE(pool_memory_follows_the_live_cells, &hashmap),
      KVC_CASE(window_cells_are_one_cache_line, &hashmap),
      KVC_CASE(appends_to_group_cells_follow_the_cells, &hashmap),
      KVC_CASE(values_cross_the_pool_limit_both_ways, &hashmap),
      KVC_CASE(values_past_the_cell_limit_are_refused_and_keep_the_cell, &hashmap),
      cmocka_unit_test(constructor_rejects_null),
  };
  return kvc_run_all(&hashmap, own, sizeof own / sizeof own[0]);
}
