/*
 * The per-record state path: the hashmap's value_ref and prefetch (kv ops version 2),
 * which take a key's hash computed earlier, its prepared lookups (version 4: the table
 * and namespace checked once), and the typed state's in-place reducing and aggregating
 * adds on top of them, which report whether they created the cell.
 *
 * A cell is reached both with a hash the caller gives (value_ref) and with one the
 * backend computes (get, put, del): both must find the same cell, across the index's
 * incremental doublings, for keys of every length and for cells with an empty key that
 * differ only by key group.
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
#include "state/kv.h"
#include "state/state.h"
#include "util/hash.h"

typedef struct fx {
  fl_kv_t kv;
  uint32_t t;
} fx_t;

static int setup(void **state) {
  fx_t *f = calloc(1, sizeof *f);
  if (!f) return -1;
  if (fl_kv_hashmap_new(&f->kv) != FL_OK) return -1;
  if (f->kv.ops->open_table(f->kv.self, "t", &f->t) != FL_OK) return -1;
  *state = f;
  return 0;
}

static int teardown(void **state) {
  fx_t *f = *state;
  fl_kv_destroy(&f->kv);
  free(f);
  return 0;
}

static int ref(fx_t *f, const fl_kkey_t *k, size_t new_len, void **val, size_t *len) {
  return f->kv.ops->value_ref(f->kv.self, f->t, k, fl_hash64(k->key, k->key_len, 0), new_len, val,
                              len);
}

static void hashmap_offers_value_ref_and_prefetch(void **state) {
  fx_t *f = *state;
  assert_true(f->kv.ops->version >= 2);
  assert_non_null(f->kv.ops->value_ref);
  assert_non_null(f->kv.ops->prefetch);
}

static void value_ref_creates_zeroed_then_finds_and_writes_in_place(void **state) {
  fx_t *f = *state;
  fl_kkey_t k = {7, "key-1", 5, "window-ns-16byte", 16};
  void *v = NULL;
  size_t len = 0;
  assert_int_equal(ref(f, &k, 12, &v, &len), 0); /* created */
  assert_int_equal(len, 12);
  assert_int_equal((uintptr_t)v % 16, 0);
  static const uint8_t zero[12];
  assert_memory_equal(v, zero, 12);
  memcpy(v, "hello, world", 12);
  void *v2 = NULL;
  assert_int_equal(ref(f, &k, 99, &v2, &len), 1); /* found: new_len is ignored */
  assert_ptr_equal(v2, v);
  assert_int_equal(len, 12);
  /* the backend's own lookup (its own hash) sees the bytes written in place */
  const void *g = NULL;
  assert_int_equal(f->kv.ops->get(f->kv.self, f->t, &k, &g, &len), 1);
  assert_int_equal(len, 12);
  assert_memory_equal(g, "hello, world", 12);
  assert_int_equal(f->kv.ops->count(f->kv.self, f->t), 1);
}

/* Keys of every length up to 40 bytes, written with put and found by value_ref and the
 * other way round, through several doublings of the index. */
static void value_ref_and_put_address_the_same_cells(void **state) {
  fx_t *f = *state;
  char key[64];
  const int n = 3000;
  for (int i = 0; i < n; i++) {
    size_t kl = (size_t)snprintf(key, sizeof key, "%0*d", 1 + i % 40, i);
    fl_kkey_t k = {(uint16_t)(i % 128), key, kl, i % 3 ? "ns" : NULL, i % 3 ? 2u : 0u};
    if (i % 2) {
      int64_t x = i;
      assert_int_equal(f->kv.ops->put(f->kv.self, f->t, &k, &x, 8), FL_OK);
    } else {
      void *v;
      size_t len;
      assert_int_equal(ref(f, &k, 8, &v, &len), 0);
      int64_t x = i;
      memcpy(v, &x, 8);
    }
  }
  assert_int_equal(f->kv.ops->count(f->kv.self, f->t), n);
  for (int i = 0; i < n; i++) {
    size_t kl = (size_t)snprintf(key, sizeof key, "%0*d", 1 + i % 40, i);
    fl_kkey_t k = {(uint16_t)(i % 128), key, kl, i % 3 ? "ns" : NULL, i % 3 ? 2u : 0u};
    int64_t x;
    if (i % 2) {
      void *v;
      size_t len;
      assert_int_equal(ref(f, &k, 8, &v, &len), 1);
      assert_int_equal(len, 8);
      memcpy(&x, v, 8);
    } else {
      const void *g;
      size_t len;
      assert_int_equal(f->kv.ops->get(f->kv.self, f->t, &k, &g, &len), 1);
      memcpy(&x, g, 8);
    }
    assert_int_equal(x, i);
    /* another key group is another cell */
    k.kg = (uint16_t)(k.kg + 1);
    const void *g;
    size_t len;
    assert_int_equal(f->kv.ops->get(f->kv.self, f->t, &k, &g, &len), 0);
  }
  assert_int_equal(f->kv.ops->count(f->kv.self, f->t), n);
}

/* Cells with an empty key (what an operator keeps per key group) differ only by key
 * group and namespace; each is its own cell. */
static void empty_key_cells_of_each_key_group_are_distinct(void **state) {
  fx_t *f = *state;
  for (int kg = 0; kg < 256; kg++)
    for (int w = 0; w < 4; w++) {
      uint8_t ns[16] = {0};
      ns[15] = (uint8_t)w;
      fl_kkey_t k = {(uint16_t)kg, "", 0, ns, 16};
      int32_t x = kg * 4 + w;
      assert_int_equal(f->kv.ops->append(f->kv.self, f->t, &k, &x, 4), FL_OK);
    }
  assert_int_equal(f->kv.ops->count(f->kv.self, f->t), 256 * 4);
  for (int kg = 0; kg < 256; kg++)
    for (int w = 0; w < 4; w++) {
      uint8_t ns[16] = {0};
      ns[15] = (uint8_t)w;
      fl_kkey_t k = {(uint16_t)kg, NULL, 0, ns, 16};
      const void *g;
      size_t len;
      assert_int_equal(f->kv.ops->get(f->kv.self, f->t, &k, &g, &len), 1);
      assert_int_equal(len, 4);
      int32_t x;
      memcpy(&x, g, 4);
      assert_int_equal(x, kg * 4 + w);
    }
}

static void value_ref_refuses_map_cells_and_bad_keys(void **state) {
  fx_t *f = *state;
  fl_kkey_t k = {1, "m", 1, NULL, 0};
  assert_int_equal(f->kv.ops->map_put(f->kv.self, f->t, &k, "u", 1, "v", 1), FL_OK);
  void *v;
  size_t len;
  assert_int_equal(ref(f, &k, 8, &v, &len), FL_EINVAL);
  fl_kkey_t bad = {1, NULL, 3, NULL, 0};
  assert_int_equal(f->kv.ops->value_ref(f->kv.self, f->t, &bad, 0, 8, &v, &len), FL_EINVAL);
  assert_int_equal(f->kv.ops->value_ref(f->kv.self, f->t + 1, &k, 0, 8, &v, &len), FL_EINVAL);
}

static void prefetch_changes_nothing(void **state) {
  fx_t *f = *state;
  fl_kkey_t k = {3, "abcdefgh", 8, "0123456789abcdef", 16};
  uint64_t h = fl_hash64(k.key, k.key_len, 0);
  fl_kv_ref_prep_t p = {f->t, k.ns, k.ns_len, 8, 0, 0};
  assert_non_null(f->kv.ops->prefetch_prepared);
  assert_int_equal(f->kv.ops->ref_prepare(f->kv.self, &p), FL_OK);
  /* on an empty table, an absent cell, a present one, and a table that does not exist */
  for (int stage = 0; stage < 2; stage++) {
    f->kv.ops->prefetch(f->kv.self, f->t, &k, h, stage);
    f->kv.ops->prefetch_prepared(f->kv.self, &p, k.kg, h, stage);
  }
  assert_non_null(f->kv.ops->prefetch_prepared2);
  f->kv.ops->prefetch_prepared2(f->kv.self, &p, k.kg, h, k.kg, h);
  assert_int_equal(f->kv.ops->count(f->kv.self, f->t), 0);
  void *v;
  size_t len;
  assert_int_equal(ref(f, &k, 8, &v, &len), 0);
  memcpy(v, "12345678", 8);
  for (int stage = 0; stage < 2; stage++) {
    f->kv.ops->prefetch(f->kv.self, f->t, &k, h, stage);
    f->kv.ops->prefetch(f->kv.self, f->t + 5, &k, h, stage);
    f->kv.ops->prefetch_prepared(f->kv.self, &p, k.kg, h, stage);
  }
  f->kv.ops->prefetch_prepared2(f->kv.self, &p, k.kg, h, 9, h ^ 1);
  f->kv.ops->prefetch_prepared2(f->kv.self, &p, 9, h ^ 1, k.kg, h);
  assert_int_equal(f->kv.ops->count(f->kv.self, f->t), 1);
  const void *g;
  assert_int_equal(f->kv.ops->get(f->kv.self, f->t, &k, &g, &len), 1);
  assert_memory_equal(g, "12345678", 8);
}

/* Prepared lookups (ops version 4) find the cells value_ref and put address, across
 * the index's doublings, and check the table and namespace once, when prepared. */
static void prepared_value_ref_addresses_the_same_cells(void **state) {
  fx_t *f = *state;
  const fl_kv_ops_t *o = f->kv.ops;
  assert_true(o->version >= 4);
  assert_non_null(o->ref_prepare);
  assert_non_null(o->value_ref_prepared);
  fl_kv_ref_prep_t bad = {f->t + 7, "ns", 2, 8, 0, 0};
  assert_int_equal(o->ref_prepare(f->kv.self, &bad), FL_EINVAL);
  bad = (fl_kv_ref_prep_t){f->t, NULL, 2, 8, 0, 0};
  assert_int_equal(o->ref_prepare(f->kv.self, &bad), FL_EINVAL);
  const char *ns[2] = {"0123456789abcdef", "w"};
  fl_kv_ref_prep_t p[2] = {{f->t, ns[0], 16, 8, 0, 0}, {f->t, ns[1], 1, 8, 0, 0}};
  for (int j = 0; j < 2; j++) assert_int_equal(o->ref_prepare(f->kv.self, &p[j]), FL_OK);
  char key[64];
  const int n = 3000;
  for (int i = 0; i < n; i++) {
    size_t kl = (size_t)snprintf(key, sizeof key, "%0*d", 1 + i % 40, i);
    int j = (i + i / 40) % 2; /* every key length in both namespaces */
    fl_kkey_t k = {(uint16_t)(i % 128), key, kl, ns[j], p[j].ns_len};
    int64_t x = i;
    if (i % 3 == 0) {
      assert_int_equal(o->put(f->kv.self, f->t, &k, &x, 8), FL_OK);
    } else {
      void *v;
      size_t len = 99;
      assert_int_equal(
          o->value_ref_prepared(f->kv.self, &p[j], k.kg, key, kl, fl_hash64(key, kl, 0), &v, &len),
          0);
      assert_int_equal(len, 8);
      assert_memory_equal(v, "\0\0\0\0\0\0\0\0", 8);
      memcpy(v, &x, 8);
    }
  }
  assert_int_equal(o->count(f->kv.self, f->t), n);
  for (int i = 0; i < n; i++) {
    size_t kl = (size_t)snprintf(key, sizeof key, "%0*d", 1 + i % 40, i);
    int j = (i + i / 40) % 2; /* every key length in both namespaces */
    fl_kkey_t k = {(uint16_t)(i % 128), key, kl, ns[j], p[j].ns_len};
    void *v;
    size_t len;
    int64_t x;
    assert_int_equal(
        o->value_ref_prepared(f->kv.self, &p[j], k.kg, key, kl, fl_hash64(key, kl, 0), &v, &len),
        1);
    assert_int_equal(len, 8);
    memcpy(&x, v, 8);
    assert_int_equal(x, i);
    assert_int_equal(ref(f, &k, 8, &v, &len), 1);
    memcpy(&x, v, 8);
    assert_int_equal(x, i);
    /* the other namespace and another key group are other cells */
    const void *g;
    k.ns = ns[1 - j];
    k.ns_len = p[1 - j].ns_len;
    assert_int_equal(o->get(f->kv.self, f->t, &k, &g, &len), 0);
    k.ns = ns[j];
    k.ns_len = p[j].ns_len;
    k.kg = (uint16_t)(k.kg + 1);
    assert_int_equal(o->get(f->kv.self, f->t, &k, &g, &len), 0);
  }
  assert_int_equal(o->count(f->kv.self, f->t), n);
  /* an 8-byte key in the 16-byte namespace (compared inline as words) in another key
   * group is another cell: created, then found */
  snprintf(key, sizeof key, "%08d", 47); /* cell 47 is in p[0], key group 47 */
  void *v;
  size_t len;
  assert_int_equal(
      o->value_ref_prepared(f->kv.self, &p[0], 48, key, 8, fl_hash64(key, 8, 0), &v, &len), 0);
  assert_int_equal(
      o->value_ref_prepared(f->kv.self, &p[0], 48, key, 8, fl_hash64(key, 8, 0), &v, &len), 1);
  assert_int_equal(o->count(f->kv.self, f->t), n + 1);
  /* a map cell is refused as by value_ref */
  fl_kkey_t m = {3, "map", 3, ns[0], 16};
  assert_int_equal(o->map_put(f->kv.self, f->t, &m, "u", 1, "v", 1), FL_OK);
  assert_int_equal(
      o->value_ref_prepared(f->kv.self, &p[0], 3, "map", 3, fl_hash64("map", 3, 0), &v, &len),
      FL_EINVAL);
  /* and so is one with an 8-byte key in a 16-byte namespace (the words compared inline) */
  fl_kkey_t m8 = {3, "map-cell", 8, ns[0], 16};
  assert_int_equal(o->map_put(f->kv.self, f->t, &m8, "u", 1, "v", 1), FL_OK);
  assert_int_equal(o->value_ref_prepared(f->kv.self, &p[0], 3, "map-cell", 8,
                                         fl_hash64("map-cell", 8, 0), &v, &len),
                   FL_EINVAL);
}

/* ---------------------------------------------------------------------------------- */
/* Typed state on top: in-place adds                                                    */

typedef struct sfx {
  fx_t kv;
  struct fl_state_desc desc;
  fl_state_scratch_t *s;
  fl_ttl_cleanup_t cl;
  fl_sref_t r;
  int inits;
} sfx_t;

static int sum_reduce(fl_context_t *ctx, const void *a, size_t al, const void *b, size_t bl,
                      fl_buf_t *out, void *opaque) {
  (void)ctx;
  (void)opaque;
  int64_t x, y;
  if (al != 8 || bl != 8) return FL_EINVAL;
  memcpy(&x, a, 8);
  memcpy(&y, b, 8);
  if (y < 0) return FL_EUSER;
  x += y;
  return fl_buf_set(out, &x, 8);
}

typedef struct pair {
  int64_t sum, n;
} pair_t;

static void pair_init(void *acc, void *opaque) {
  ((sfx_t *)opaque)->inits++;
  ((pair_t *)acc)->n = 0;
}

/* Adds the value; a negative one changes the accumulator and then fails, so that the
 * caller's undo is what keeps the cell as it was. */
static int pair_add(fl_context_t *ctx, void *acc, const fl_record_t *in, void *opaque) {
  (void)ctx;
  (void)opaque;
  pair_t *p = acc;
  int64_t v;
  memcpy(&v, in->value, 8);
  p->sum += v;
  p->n++;
  return v < 0 ? FL_EUSER : 0;
}

/* The cell's state: aggregating, with the pair accumulator above. */
static void use_pair_aggregate(sfx_t *f) {
  f->desc.kind = FL_STATE_AGGREGATING;
  f->desc.agg = (fl_aggregate_fn_t){.version = FL_AGGREGATE_FN_VERSION,
                                    .acc_size = sizeof(pair_t),
                                    .init = pair_init,
                                    .add = pair_add};
}

static int sfx_setup(void **state) {
  sfx_t *f = calloc(1, sizeof *f);
  if (!f || fl_kv_hashmap_new(&f->kv.kv) != FL_OK) return -1;
  f->s = fl_state_scratch_new();
  if (!f->s || f->kv.kv.ops->open_table(f->kv.kv.self, "s", &f->r.table) != FL_OK) return -1;
  f->desc.name = "s";
  f->desc.opaque = f;
  f->r.kv = &f->kv.kv;
  f->r.desc = &f->desc;
  f->r.k.kg = 9;
  f->r.k.key = "user-17";
  f->r.k.key_len = 7;
  f->r.k.ns = "0123456789abcdef";
  f->r.k.ns_len = 16;
  f->r.key_hashed = true;
  f->r.key_hash = fl_hash64("user-17", 7, 0);
  f->r.cleanup = &f->cl;
  f->r.scratch = f->s;
  *state = f;
  return 0;
}

static int sfx_teardown(void **state) {
  sfx_t *f = *state;
  fl_state_scratch_destroy(f->s);
  fl_kv_destroy(&f->kv.kv);
  free(f);
  return 0;
}

/* f's backend as one written against an older ops version: a copy of its table with
 * that version in *older takes its place; the caller puts back what this returns. */
static const fl_kv_ops_t *ops_as_version(sfx_t *f, fl_kv_ops_t *older, int version) {
  const fl_kv_ops_t *own = f->kv.kv.ops;
  *older = *own;
  older->version = version;
  f->kv.kv.ops = older;
  return own;
}

static int agg(sfx_t *f, int64_t v, bool *created) {
  fl_record_t in = {NULL, 0, &v, 8, 0};
  return fl_st_aggregating_add_created(&f->r, &in, created);
}

/* One add of v through the path under test: unprepared (p NULL) or prepared. */
typedef int (*agg_step_fn)(sfx_t *f, const fl_st_adds_t *p, int64_t v, bool *created);
typedef int (*red_step_fn)(sfx_t *f, const fl_st_adds_t *p, const void *v, size_t len,
                           bool *created);

static int agg_step(sfx_t *f, const fl_st_adds_t *p, int64_t v, bool *created) {
  (void)p;
  return agg(f, v, created);
}

static int red_step(sfx_t *f, const fl_st_adds_t *p, const void *v, size_t len, bool *created) {
  (void)p;
  return fl_st_reducing_add_created(&f->r, v, len, created);
}

/* The aggregating adds' contract, for either path: the first value is reported, a
 * failing first add leaves no cell behind, a failing later add gives the accumulator its
 * bytes back. The accumulator starts with sum and n (then last, when big). */
static void check_aggregating_adds(sfx_t *f, agg_step_fn add, const fl_st_adds_t *p, bool big) {
  bool created = false;
  assert_int_equal(add(f, p, -1, &created), FL_EUSER);
  const void *acc = NULL;
  assert_int_equal(fl_st_aggregating_get(&f->r, &acc), 0);
  assert_int_equal(add(f, p, 5, &created), FL_OK);
  assert_true(created);
  assert_int_equal(add(f, p, 6, &created), FL_OK);
  assert_false(created);
  assert_int_equal(add(f, p, -100, &created), FL_EUSER);
  assert_int_equal(fl_st_aggregating_get(&f->r, &acc), 1);
  const int64_t *a = acc;
  assert_int_equal(a[0], 11);
  assert_int_equal(a[1], 2);
  if (big) assert_int_equal(a[2], 6);
  assert_int_equal(f->inits, 2); /* the failed first add, then the first one */
}

/* The reducing adds' contract, for either path: the first value is reported, a failing
 * reduce changes nothing, a result of another length is stored, not written in place. */
static void check_reducing_adds(sfx_t *f, red_step_fn add, const fl_st_adds_t *p) {
  f->desc.reduce = sum_reduce;
  bool created = false;
  int64_t x = 4;
  assert_int_equal(add(f, p, &x, 8, &created), FL_OK);
  assert_true(created);
  x = 3;
  assert_int_equal(add(f, p, &x, 8, &created), FL_OK);
  assert_false(created);
  x = -1;
  assert_int_equal(add(f, p, &x, 8, &created), FL_EUSER);
  const void *v;
  size_t len;
  assert_int_equal(fl_st_reducing_get(&f->r, &v, &len), 1);
  memcpy(&x, v, 8);
  assert_int_equal(x, 7);
  f->desc.reduce = concat_reduce;
  assert_int_equal(add(f, p, "abc", 3, &created), FL_OK);
  assert_false(created);
  assert_int_equal(fl_st_reducing_get(&f->r, &v, &len), 1);
  assert_int_equal(len, 11);
  assert_memory_equal((const uint8_t *)v + 8, "abc", 3);
}

static void aggregating_add_reports_the_first_value_and_keeps_cells_on_failure(void **state) {
  sfx_t *f = *state;
  use_pair_aggregate(f);
  check_aggregating_adds(f, agg_step, NULL, false);
  /* the same cell without the carried hash (the backend hashes the key itself) */
  f->r.key_hashed = false;
  bool created = true;
  const void *acc = NULL;
  assert_int_equal(agg(f, 1, &created), FL_OK);
  assert_false(created);
  assert_int_equal(fl_st_aggregating_get(&f->r, &acc), 1);
  assert_int_equal(((const pair_t *)acc)->sum, 12);
}

static void reducing_add_reports_the_first_value_in_place_or_not(void **state) {
  sfx_t *f = *state;
  f->desc.kind = FL_STATE_REDUCING;
  check_reducing_adds(f, red_step, NULL);
}

/* A 24-byte accumulator (beyond the inline undo copy) that fails like pair_add. */
typedef struct triple {
  int64_t sum, n, last;
} triple_t;

static void triple_init(void *acc, void *opaque) {
  ((sfx_t *)opaque)->inits++;
  ((triple_t *)acc)->n = 0;
}

static int triple_add(fl_context_t *ctx, void *acc, const fl_record_t *in, void *opaque) {
  (void)ctx;
  (void)opaque;
  triple_t *t = acc;
  int64_t v;
  memcpy(&v, in->value, 8);
  t->sum += v;
  t->n++;
  t->last = v;
  return v < 0 ? FL_EUSER : 0;
}

static int padd(sfx_t *f, const fl_st_adds_t *p, int64_t v, bool *created) {
  fl_record_t in = {f->r.k.key, f->r.k.key_len, &v, 8, 0};
  return fl_st_adds_aggregate(p, f->r.k.kg, f->r.k.key, f->r.k.key_len, f->r.key_hash, &in,
                              created);
}

/* Prepared aggregating adds mean what fl_st_aggregating_add_created means, for small
 * and large accumulators: the first value is reported, a failing add keeps the cell as
 * it was (no cell after a failing first add), and the cell is the sref's. */
static void prepared_aggregating_adds_are_the_adds(void **state) {
  sfx_t *f = *state;
  f->desc.kind = FL_STATE_AGGREGATING;
  for (int big = 0; big < 2; big++) {
    f->desc.agg = (fl_aggregate_fn_t){.version = FL_AGGREGATE_FN_VERSION,
                                      .acc_size = big ? sizeof(triple_t) : sizeof(pair_t),
                                      .init = big ? triple_init : pair_init,
                                      .add = big ? triple_add : pair_add};
    f->r.k.ns = big ? "fedcba9876543210" : "0123456789abcdef";
    f->inits = 0;
    fl_st_adds_t p;
    assert_int_equal(fl_st_adds_prepare(&f->r, &p), FL_OK);
    check_aggregating_adds(f, padd, &p, big);
    bool created = true;
    const void *acc = NULL;
    /* the unprepared add reaches the same cell */
    assert_int_equal(agg(f, 1, &created), FL_OK);
    assert_false(created);
    assert_int_equal(fl_st_aggregating_get(&f->r, &acc), 1);
    assert_int_equal(((const int64_t *)acc)[0], 12);
  }
}

/* padd through the lookup that also loads a cell ahead (kv ops version 8), with some
 * other cell of the namespace as the one ahead. */
static int padd_ahead(sfx_t *f, const fl_st_adds_t *p, int64_t v, bool *created) {
  fl_record_t in = {f->r.k.key, f->r.k.key_len, &v, 8, 0};
  return fl_st_adds_aggregate_ahead(p, f->r.k.kg, f->r.k.key, f->r.k.key_len, f->r.key_hash, &in,
                                    created, p->agg->acc_size, true, (uint16_t)(f->r.k.kg + 1),
                                    (uint64_t)v * 0x9e3779b97f4a7c15u);
}

/* The adds that load a cell ahead mean the same as the others, with the hashmap's
 * value_ref_prepared_ahead and, from a backend of ops version 7 (no such op), through
 * its value_ref_prepared. */
static void prepared_adds_ahead_are_the_adds(void **state) {
  sfx_t *f = *state;
  use_pair_aggregate(f);
  fl_st_adds_t p;
  assert_int_equal(fl_st_adds_prepare(&f->r, &p), FL_OK);
  assert_non_null(p.find_ahead);
  check_aggregating_adds(f, padd_ahead, &p, false);
  assert_int_equal(f->kv.kv.ops->del(f->kv.kv.self, f->r.table, &f->r.k), FL_OK);
  fl_kv_ops_t older;
  const fl_kv_ops_t *own = ops_as_version(f, &older, 7);
  assert_int_equal(fl_st_adds_prepare(&f->r, &p), FL_OK);
  assert_null(p.find_ahead);
  f->inits = 0;
  check_aggregating_adds(f, padd_ahead, &p, false);
  f->kv.kv.ops = own;
}

static int pred(sfx_t *f, const fl_st_adds_t *p, const void *v, size_t len, bool *created) {
  return fl_st_adds_reduce(p, f->r.k.kg, f->r.k.key, f->r.k.key_len, f->r.key_hash, v, len,
                           created);
}

static void prepared_reducing_adds_are_the_adds(void **state) {
  sfx_t *f = *state;
  f->desc.kind = FL_STATE_REDUCING;
  f->desc.reduce = sum_reduce;
  fl_st_adds_t p;
  assert_int_equal(fl_st_adds_prepare(&f->r, &p), FL_OK);
  check_reducing_adds(f, pred, &p);
}

/* A prepared take (ops version 6, fl_st_adds_take) is the take of the sref's cell:
 * the result as it was, the cell gone, an absent cell 0 and nothing changed; the bytes
 * stay valid until the next take. A backend without it says FL_ENOTSUP and changes
 * nothing. */
static void prepared_take_is_the_take(void **state) {
  sfx_t *f = *state;
  use_pair_aggregate(f);
  fl_st_adds_t p;
  assert_int_equal(fl_st_adds_prepare(&f->r, &p), FL_OK);
  assert_non_null(p.take);
  bool created;
  const void *v = NULL;
  size_t len = 0;
  const fl_kkey_t *k = &f->r.k;
  assert_int_equal(fl_st_adds_take(&p, k->kg, k->key, k->key_len, f->r.key_hash, &v, &len), 0);
  assert_int_equal(agg(f, 5, &created), FL_OK);
  assert_int_equal(agg(f, 7, &created), FL_OK);
  /* another key group's cell of the same key and namespace is not taken */
  uint16_t other = (uint16_t)(k->kg + 1);
  assert_int_equal(fl_st_adds_take(&p, other, k->key, k->key_len, f->r.key_hash, &v, &len), 0);
  assert_int_equal(fl_st_adds_take(&p, k->kg, k->key, k->key_len, f->r.key_hash, &v, &len), 1);
  assert_int_equal(len, sizeof(pair_t));
  assert_int_equal(((const int64_t *)v)[0], 12);
  assert_int_equal(f->kv.kv.ops->count(f->kv.kv.self, f->r.table), 0);
  const void *acc;
  assert_int_equal(fl_st_aggregating_get(&f->r, &acc), 0);
  /* the bytes lent stay until the next take: a new cell does not reuse them */
  assert_int_equal(agg(f, 1, &created), FL_OK);
  assert_true(created);
  assert_int_equal(((const int64_t *)v)[0], 12);
  /* a backend without take_prepared: FL_ENOTSUP, nothing taken */
  fl_kv_ops_t older;
  const fl_kv_ops_t *own = ops_as_version(f, &older, 5);
  fl_st_adds_t q;
  assert_int_equal(fl_st_adds_prepare(&f->r, &q), FL_OK);
  assert_int_equal(fl_st_adds_take(&q, k->kg, k->key, k->key_len, f->r.key_hash, &v, &len),
                   FL_ENOTSUP);
  f->kv.kv.ops = own;
  assert_int_equal(f->kv.kv.ops->count(f->kv.kv.self, f->r.table), 1);
  /* a map cell is refused as by take, and stays */
  fl_kkey_t m = {3, "map", 3, k->ns, k->ns_len};
  assert_int_equal(f->kv.kv.ops->map_put(f->kv.kv.self, f->r.table, &m, "u", 1, "v", 1), FL_OK);
  assert_int_equal(fl_st_adds_take(&p, 3, "map", 3, fl_hash64("map", 3, 0), &v, &len), FL_EINVAL);
  assert_int_equal(f->kv.kv.ops->count(f->kv.kv.self, f->r.table), 2);
}

/* The prefetches a prepared add hands to the backend, recorded: (kg, hash, stage). */
static uint64_t pf_seen[4][3];
static int pf_n, pf2_n;

static void pf_record(void *self, const fl_kv_ref_prep_t *p, uint16_t kg, uint64_t h, int stage) {
  (void)self;
  (void)p;
  if (pf_n < 4) {
    pf_seen[pf_n][0] = kg;
    pf_seen[pf_n][1] = h;
    pf_seen[pf_n][2] = (uint64_t)stage;
  }
  pf_n++;
}

static void pf2_record(void *self, const fl_kv_ref_prep_t *p, uint16_t kg0, uint64_t h0,
                       uint16_t kg1, uint64_t h1) {
  pf2_n++;
  pf_record(self, p, kg0, h0, 0);
  pf_record(self, p, kg1, h1, 1);
}

/* fl_st_adds_prefetch2 is the far cell's stage 0 and the near one's stage 1: in one call
 * with ops version 7, as two prefetch_prepared calls before it, and nothing without
 * prefetch_prepared. */
static void prepared_prefetch_pair_is_two_prefetches(void **state) {
  sfx_t *f = *state;
  use_pair_aggregate(f);
  const fl_kv_ops_t *own = f->kv.kv.ops;
  fl_kv_ops_t ops = *own;
  ops.prefetch_prepared = pf_record;
  ops.prefetch_prepared2 = pf2_record;
  f->kv.kv.ops = &ops;
  for (int version = 7; version >= 5; version--) {
    ops.version = version;
    if (version == 5) ops.prefetch_prepared = NULL;
    pf_n = pf2_n = 0;
    memset(pf_seen, 0, sizeof pf_seen);
    fl_st_adds_t p;
    assert_int_equal(fl_st_adds_prepare(&f->r, &p), FL_OK);
    fl_st_adds_prefetch2(&p, 4, 0x1234, 5, 0x5678);
    if (version == 5) {
      assert_int_equal(pf_n, 0);
      continue;
    }
    assert_int_equal(pf2_n, version == 7 ? 1 : 0);
    assert_int_equal(pf_n, 2);
    const uint64_t want[2][3] = {{4, 0x1234, 0}, {5, 0x5678, 1}};
    assert_memory_equal(pf_seen, want, sizeof want);
  }
  f->kv.kv.ops = own;
}

/* f's state at the cell (kg, key) of namespace ns (as long as f's own namespace). */
static fl_sref_t cell_ref(sfx_t *f, uint16_t kg, const char *key, const char *ns) {
  fl_sref_t r = f->r;
  r.k.kg = kg;
  r.k.key = key;
  r.k.key_len = strlen(key);
  r.k.ns = ns;
  r.key_hashed = false;
  return r;
}

/* The items of the list cell (kg, key) at namespace ns, concatenated with their lengths. */
static size_t list_bytes(sfx_t *f, uint16_t kg, const char *key, const char *ns, uint8_t *out,
                         size_t cap) {
  fl_sref_t r = cell_ref(f, kg, key, ns);
  const fl_bytes_t *items = NULL;
  size_t n = 0, off = 0;
  assert_true(fl_st_list_get(&r, &items, &n) >= 0);
  for (size_t i = 0; i < n; i++) {
    assert_true(off + 4 + items[i].len <= cap);
    uint32_t l = (uint32_t)items[i].len;
    memcpy(out + off, &l, 4);
    memcpy(out + off + 4, items[i].data, items[i].len);
    off += 4 + items[i].len;
  }
  return off;
}

/* Prepared appends (ops version 7, fl_st_adds_append) make the lists fl_st_list_add
 * makes: to key group cells (an empty key, the window's key lists) and keyed cells, of
 * items of every length, short and long, as the cells outgrow their room. What cannot be
 * prepared says so: another kind, TTL, a backend without append_prepared. */
/* A preparation (fl_st_adds_prepare, fl_st_appends_prepare) refuses a state of the
 * wrong kind (FL_ESTATE), one with TTL and a backend older than version `older`
 * (FL_ENOTSUP), and prepares the right kind otherwise. */
static void check_prepare_declines(sfx_t *f, int (*prepare)(const fl_sref_t *, fl_st_adds_t *),
                                   fl_state_kind_t wrong, fl_state_kind_t right, int older) {
  fl_st_adds_t p;
  f->desc.kind = wrong;
  assert_int_equal(prepare(&f->r, &p), FL_ESTATE);
  f->desc.kind = right;
  f->desc.has_ttl = 1;
  assert_int_equal(prepare(&f->r, &p), FL_ENOTSUP);
  f->desc.has_ttl = 0;
  fl_kv_ops_t old_ops;
  const fl_kv_ops_t *own = ops_as_version(f, &old_ops, older);
  assert_int_equal(prepare(&f->r, &p), FL_ENOTSUP);
  f->kv.kv.ops = own;
  assert_int_equal(prepare(&f->r, &p), FL_OK);
}

static void prepared_appends_are_list_adds(void **state) {
  sfx_t *f = *state;
  f->desc.kind = FL_STATE_LIST;
  const char *ns_a = "0123456789abcdef", *ns_b = "fedcba9876543210";
  fl_st_adds_t p;
  assert_int_equal(fl_st_appends_prepare(&f->r, &p), FL_OK);
  uint8_t item[100];
  for (size_t i = 0; i < sizeof item; i++) item[i] = (uint8_t)(i * 7 + 1);
  for (int i = 0; i < 400; i++) {
    size_t len = i % 3 ? 8 : (size_t)(i * 13) % sizeof item;
    uint16_t kg = (uint16_t)(i % 5);
    const char *key = i % 7 ? "" : "user-17";
    item[0] = (uint8_t)i;
    assert_int_equal(fl_st_adds_append(&p, kg, key, strlen(key), item, len), FL_OK);
    fl_sref_t r = cell_ref(f, kg, key, ns_b);
    assert_int_equal(fl_st_list_add(&r, item, len), FL_OK);
  }
  static uint8_t a[65536], b[65536];
  for (uint16_t kg = 0; kg < 6; kg++) {
    for (int keyed = 0; keyed < 2; keyed++) {
      const char *key = keyed ? "user-17" : "";
      size_t la = list_bytes(f, kg, key, ns_a, a, sizeof a);
      size_t lb = list_bytes(f, kg, key, ns_b, b, sizeof b);
      assert_int_equal(la, lb);
      assert_memory_equal(a, b, la);
      if (kg < 5) assert_true(la > 0);
    }
  }
  assert_int_equal(fl_st_adds_append(&p, 1, "", 0, NULL, 3), FL_EINVAL);
  check_prepare_declines(f, fl_st_appends_prepare, FL_STATE_REDUCING, FL_STATE_LIST, 6);
}

/* What cannot be prepared says so: TTL (whose timestamps the adds would not renew),
 * a kind without adds, a backend without prepared lookups. */
static void adds_prepare_declines_what_it_cannot_do(void **state) {
  sfx_t *f = *state;
  f->desc.reduce = sum_reduce;
  check_prepare_declines(f, fl_st_adds_prepare, FL_STATE_LIST, FL_STATE_REDUCING, 3);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(hashmap_offers_value_ref_and_prefetch, setup, teardown),
      cmocka_unit_test_setup_teardown(value_ref_creates_zeroed_then_finds_and_writes_in_place,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(value_ref_and_put_address_the_same_cells, setup, teardown),
      cmocka_unit_test_setup_teardown(empty_key_cells_of_each_key_group_are_distinct, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(value_ref_refuses_map_cells_and_bad_keys, setup, teardown),
      cmocka_unit_test_setup_teardown(prefetch_changes_nothing, setup, teardown),
      cmocka_unit_test_setup_teardown(prepared_value_ref_addresses_the_same_cells, setup, teardown),
      cmocka_unit_test_setup_teardown(prepared_prefetch_pair_is_two_prefetches, sfx_setup,
                                      sfx_teardown),
      cmocka_unit_test_setup_teardown(prepared_appends_are_list_adds, sfx_setup, sfx_teardown),
      cmocka_unit_test_setup_teardown(
          aggregating_add_reports_the_first_value_and_keeps_cells_on_failure, sfx_setup,
          sfx_teardown),
      cmocka_unit_test_setup_teardown(reducing_add_reports_the_first_value_in_place_or_not,
                                      sfx_setup, sfx_teardown),
      cmocka_unit_test_setup_teardown(prepared_aggregating_adds_are_the_adds, sfx_setup,
                                      sfx_teardown),
      cmocka_unit_test_setup_teardown(prepared_adds_ahead_are_the_adds, sfx_setup, sfx_teardown),
      cmocka_unit_test_setup_teardown(prepared_reducing_adds_are_the_adds, sfx_setup, sfx_teardown),
      cmocka_unit_test_setup_teardown(prepared_take_is_the_take, sfx_setup, sfx_teardown),
      cmocka_unit_test_setup_teardown(adds_prepare_declines_what_it_cannot_do, sfx_setup,
                                      sfx_teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
