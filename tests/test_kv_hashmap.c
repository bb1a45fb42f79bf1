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

static void constructor_rejects_null(void **state) {
  assert_int_equal(fl_kv_hashmap_new(NULL), FL_EINVAL);
}

int main(void) {
  const struct CMUnitTest own[] = {
      KVC_CASE(same_size_put_overwrites_in_place, &hashmap),
      KVC_CASE(every_lookup_during_growth_finds_its_own_entry, &hashmap),
      KVC_CASE(deletes_during_growth_keep_other_entries_reachable, &hashmap),
      KVC_CASE(value_and_map_calls_do_not_mix_on_one_cell, &hashmap),
      cmocka_unit_test(constructor_rejects_null),
  };
  return kvc_run_all(&hashmap, own, sizeof own / sizeof own[0]);
}
