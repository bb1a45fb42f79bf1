/*
 * The in-memory state backend (src/state/hashmap.c) through the kv.h vtable: cells
 * addressed by (table, key group, key, namespace), map cells, and cursor walks, across
 * index doublings (which happen incrementally, so many checks run mid-rehash).
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

#include "flink.h"
#include "state/kv.h"

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

static fl_kkey_t kk(uint16_t kg, const void *key, size_t kl, const void *ns, size_t nl) {
  fl_kkey_t k = {kg, key, kl, ns, nl};
  return k;
}

static fl_kkey_t kstr(uint16_t kg, const char *key, const char *ns) {
  return kk(kg, key, strlen(key), ns, ns ? strlen(ns) : 0);
}

static int get(fx_t *f, uint32_t t, fl_kkey_t k, const void **v, size_t *n) {
  return f->kv.ops->get(f->kv.self, t, &k, v, n);
}

static int put(fx_t *f, uint32_t t, fl_kkey_t k, const void *v, size_t n) {
  return f->kv.ops->put(f->kv.self, t, &k, v, n);
}

static int put_str(fx_t *f, fl_kkey_t k, const char *v) { return put(f, f->t, k, v, strlen(v)); }

static void assert_value(fx_t *f, uint32_t t, fl_kkey_t k, const void *want, size_t wl) {
  const void *v = NULL;
  size_t n = 0;
  assert_int_equal(get(f, t, k, &v, &n), 1);
  assert_int_equal(n, wl);
  if (wl) assert_memory_equal(v, want, wl);
}

static void assert_str(fx_t *f, fl_kkey_t k, const char *want) {
  assert_value(f, f->t, k, want, strlen(want));
}

static void assert_absent(fx_t *f, uint32_t t, fl_kkey_t k) {
  const void *v;
  size_t n;
  assert_int_equal(get(f, t, k, &v, &n), 0);
}

/* ---------------------------------------------------------------------------------- */

static void put_then_get_returns_the_bytes(void **state) {
  fx_t *f = *state;
  assert_int_equal(put_str(f, kstr(1, "alice", ""), "42"), FL_OK);
  assert_str(f, kstr(1, "alice", ""), "42");
  assert_absent(f, f->t, kstr(1, "bob", ""));
  assert_int_equal(f->kv.ops->count(f->kv.self, f->t), 1);
}

static void empty_key_and_empty_value_are_a_cell(void **state) {
  fx_t *f = *state;
  assert_int_equal(put(f, f->t, kk(0, NULL, 0, NULL, 0), NULL, 0), FL_OK);
  const void *v = NULL;
  size_t n = 99;
  assert_int_equal(get(f, f->t, kk(0, NULL, 0, NULL, 0), &v, &n), 1);
  assert_int_equal(n, 0);
  assert_int_equal(f->kv.ops->count(f->kv.self, f->t), 1);
}

static void same_size_put_overwrites_in_place(void **state) {
  fx_t *f = *state;
  fl_kkey_t k = kstr(7, "key", "w1");
  assert_int_equal(put_str(f, k, "aaaa"), FL_OK);
  const void *p1, *p2;
  size_t n;
  assert_int_equal(get(f, f->t, k, &p1, &n), 1);
  assert_int_equal(put_str(f, k, "bbbb"), FL_OK);
  assert_int_equal(get(f, f->t, k, &p2, &n), 1);
  assert_ptr_equal(p1, p2);
  assert_memory_equal(p2, "bbbb", 4);
  assert_int_equal(put_str(f, k, "cc"), FL_OK); /* smaller fits too */
  assert_int_equal(get(f, f->t, k, &p2, &n), 1);
  assert_ptr_equal(p1, p2);
  assert_str(f, k, "cc");
}

static void values_are_16_byte_aligned(void **state) {
  fx_t *f = *state;
  for (size_t kl = 0; kl < 40; kl++) {
    char key[40];
    memset(key, 'k', kl);
    fl_kkey_t k = kk(0, key, kl, "ns", 1 + kl % 2);
    assert_int_equal(put(f, f->t, k, "v", 1), FL_OK);
    const void *v;
    size_t n;
    assert_int_equal(get(f, f->t, k, &v, &n), 1);
    assert_int_equal((uintptr_t)v % 16, 0);
  }
}

static void growing_put_keeps_the_value_and_other_cells(void **state) {
  fx_t *f = *state;
  assert_int_equal(put_str(f, kstr(0, "a", ""), "x"), FL_OK);
  assert_int_equal(put_str(f, kstr(0, "b", ""), "y"), FL_OK);
  char big[5000];
  for (size_t i = 0; i < sizeof big; i++) big[i] = (char)('a' + i % 26);
  assert_int_equal(put(f, f->t, kstr(0, "a", ""), big, sizeof big), FL_OK);
  assert_value(f, f->t, kstr(0, "a", ""), big, sizeof big);
  assert_str(f, kstr(0, "b", ""), "y");
  /* and shrinking again (gives memory back) */
  assert_int_equal(put_str(f, kstr(0, "a", ""), "z"), FL_OK);
  assert_str(f, kstr(0, "a", ""), "z");
}

static void put_accepts_its_own_value_as_source(void **state) {
  fx_t *f = *state;
  fl_kkey_t k = kstr(0, "self", "");
  assert_int_equal(put_str(f, k, "0123456789"), FL_OK);
  const void *v;
  size_t n;
  assert_int_equal(get(f, f->t, k, &v, &n), 1);
  /* a suffix of the value, written over it */
  assert_int_equal(put(f, f->t, k, (const char *)v + 4, 6), FL_OK);
  assert_str(f, k, "456789");
  /* appending a cell's own value to itself forces a reallocation */
  assert_int_equal(get(f, f->t, k, &v, &n), 1);
  for (int i = 0; i < 6; i++) {
    assert_int_equal(get(f, f->t, k, &v, &n), 1);
    assert_int_equal(f->kv.ops->append(f->kv.self, f->t, &k, v, n), FL_OK);
  }
  assert_int_equal(get(f, f->t, k, &v, &n), 1);
  assert_int_equal(n, 6 * 64);
  for (size_t i = 0; i < n; i += 6) assert_memory_equal((const char *)v + i, "456789", 6);
}

static void append_creates_then_extends(void **state) {
  fx_t *f = *state;
  fl_kkey_t k = kstr(2, "list", "w");
  char want[3000];
  size_t wl = 0;
  for (int i = 0; i < 1000; i++) {
    char item[3] = {(char)('a' + i % 26), (char)('0' + i % 10), '|'};
    assert_int_equal(f->kv.ops->append(f->kv.self, f->t, &k, item, 3), FL_OK);
    memcpy(want + wl, item, 3);
    wl += 3;
  }
  assert_value(f, f->t, k, want, wl);
  assert_int_equal(f->kv.ops->count(f->kv.self, f->t), 1);
}

static void del_removes_only_that_cell(void **state) {
  fx_t *f = *state;
  assert_int_equal(put_str(f, kstr(0, "a", ""), "1"), FL_OK);
  assert_int_equal(put_str(f, kstr(0, "b", ""), "2"), FL_OK);
  fl_kkey_t a = kstr(0, "a", "");
  assert_int_equal(f->kv.ops->del(f->kv.self, f->t, &a), FL_OK);
  assert_absent(f, f->t, a);
  assert_str(f, kstr(0, "b", ""), "2");
  assert_int_equal(f->kv.ops->del(f->kv.self, f->t, &a), FL_OK); /* absent: still 0 */
  assert_int_equal(f->kv.ops->count(f->kv.self, f->t), 1);
}

static void key_groups_and_namespaces_do_not_collide(void **state) {
  fx_t *f = *state;
  assert_int_equal(put_str(f, kstr(0, "k", ""), "kg0"), FL_OK);
  assert_int_equal(put_str(f, kstr(1, "k", ""), "kg1"), FL_OK);
  assert_int_equal(put_str(f, kstr(0, "k", "w1"), "kg0-w1"), FL_OK);
  assert_int_equal(put_str(f, kstr(0, "k", "w2"), "kg0-w2"), FL_OK);
  /* The split between key and namespace is part of the address. */
  assert_int_equal(put_str(f, kstr(0, "ab", "c"), "ab|c"), FL_OK);
  assert_int_equal(put_str(f, kstr(0, "a", "bc"), "a|bc"), FL_OK);
  assert_int_equal(put_str(f, kstr(0, "abc", ""), "abc|"), FL_OK);
  assert_str(f, kstr(0, "k", ""), "kg0");
  assert_str(f, kstr(1, "k", ""), "kg1");
  assert_str(f, kstr(0, "k", "w1"), "kg0-w1");
  assert_str(f, kstr(0, "k", "w2"), "kg0-w2");
  assert_str(f, kstr(0, "ab", "c"), "ab|c");
  assert_str(f, kstr(0, "a", "bc"), "a|bc");
  assert_str(f, kstr(0, "abc", ""), "abc|");
  assert_absent(f, f->t, kstr(2, "k", ""));
  assert_int_equal(f->kv.ops->count(f->kv.self, f->t), 7);
}

static void tables_are_independent_and_named(void **state) {
  fx_t *f = *state;
  uint32_t t2, again;
  assert_int_equal(f->kv.ops->open_table(f->kv.self, "other", &t2), FL_OK);
  assert_int_not_equal(t2, f->t);
  assert_int_equal(f->kv.ops->open_table(f->kv.self, "t", &again), FL_OK);
  assert_int_equal(again, f->t);
  assert_int_equal(put(f, f->t, kstr(0, "k", ""), "one", 3), FL_OK);
  assert_int_equal(put(f, t2, kstr(0, "k", ""), "two", 3), FL_OK);
  assert_value(f, f->t, kstr(0, "k", ""), "one", 3);
  assert_value(f, t2, kstr(0, "k", ""), "two", 3);
  const void *v;
  size_t n;
  fl_kkey_t k = kstr(0, "k", "");
  assert_int_equal(f->kv.ops->get(f->kv.self, 99, &k, &v, &n), FL_EINVAL);
}

/* ---------------------------------------------------------------------------------- */
/* Many entries                                                                         */

#define BIG 1000000u

static fl_kkey_t knum(const uint32_t *key) {
  return kk((uint16_t)(*key % 128), key, sizeof *key, NULL, 0);
}

typedef struct seen {
  uint8_t *bits;
  size_t visits;
  int dup;
} seen_t;

static int mark_cb(const fl_kkey_t *k, const void *v, size_t n, void *arg) {
  seen_t *s = arg;
  uint32_t key, val;
  assert_int_equal(k->key_len, 4);
  assert_int_equal(n, 4);
  memcpy(&key, k->key, 4);
  memcpy(&val, v, 4);
  assert_int_equal(val, key * 3u);
  assert_int_equal(k->kg, key % 128);
  if (s->bits[key]) s->dup = 1;
  s->bits[key] = 1;
  s->visits++;
  return FL_KV_NEXT;
}

static void million_entries_survive_resizes_deletes_and_walks(void **state) {
  fx_t *f = *state;
  for (uint32_t i = 0; i < BIG; i++) {
    uint32_t v = i * 3u;
    assert_int_equal(put(f, f->t, knum(&i), &v, 4), FL_OK);
    /* Earlier keys stay reachable while the index is being doubled. */
    if ((i & 63) == 0) {
      uint32_t j = i / 2, jv = j * 3u;
      assert_value(f, f->t, knum(&j), &jv, 4);
    }
  }
  assert_int_equal(f->kv.ops->count(f->kv.self, f->t), BIG);
  for (uint32_t i = 0; i < BIG; i += 2) {
    fl_kkey_t k = knum(&i);
    assert_int_equal(f->kv.ops->del(f->kv.self, f->t, &k), FL_OK);
  }
  assert_int_equal(f->kv.ops->count(f->kv.self, f->t), BIG / 2);
  for (uint32_t i = 0; i < BIG; i++) {
    const void *v;
    size_t n;
    int rc = get(f, f->t, knum(&i), &v, &n);
    if (i % 2) {
      uint32_t got;
      assert_int_equal(rc, 1);
      memcpy(&got, v, 4);
      assert_int_equal(got, i * 3u);
    } else {
      assert_int_equal(rc, 0);
    }
  }
  /* A walk in steps visits each remaining entry exactly once. */
  seen_t s = {calloc(BIG, 1), 0, 0};
  assert_non_null(s.bits);
  uint64_t cursor = 0;
  size_t calls = 0;
  do {
    assert_int_equal(f->kv.ops->iterate(f->kv.self, f->t, &cursor, 4096, mark_cb, &s), FL_OK);
    calls++;
  } while (cursor != 0);
  assert_int_equal(s.visits, BIG / 2);
  assert_int_equal(s.dup, 0);
  for (uint32_t i = 0; i < BIG; i++) assert_int_equal(s.bits[i], i % 2);
  assert_true(calls >= BIG / 2 / 4096);
  free(s.bits);
}

/* Lookups move the incremental rehash along: each one must still return its own
 * entry, whatever the step just did to the index's slots. */
static void every_lookup_during_growth_finds_its_own_entry(void **state) {
  fx_t *f = *state;
  const uint32_t n = 1500;
  for (uint32_t i = 0; i < n; i++) {
    uint32_t v = i * 3u;
    assert_int_equal(put(f, f->t, knum(&i), &v, 4), FL_OK);
    for (uint32_t j = 0; j <= i; j++) {
      const void *p;
      size_t len;
      uint32_t got;
      assert_int_equal(get(f, f->t, knum(&j), &p, &len), 1);
      memcpy(&got, p, 4);
      assert_int_equal(got, j * 3u);
    }
  }
}

static void deletes_during_growth_keep_other_entries_reachable(void **state) {
  fx_t *f = *state;
  const uint32_t n = 200000;
  for (uint32_t i = 0; i < n; i++) {
    uint32_t v = i * 3u;
    assert_int_equal(put(f, f->t, knum(&i), &v, 4), FL_OK);
    if (i % 3 == 0 && i > 0) {
      uint32_t d = i - 1; /* delete a recent one, often while an index is draining */
      fl_kkey_t k = knum(&d);
      assert_int_equal(f->kv.ops->del(f->kv.self, f->t, &k), FL_OK);
    }
  }
  size_t live = 0;
  for (uint32_t i = 0; i < n; i++) {
    bool deleted = (i + 1) % 3 == 0 && i + 1 < n;
    const void *v;
    size_t len;
    int rc = get(f, f->t, knum(&i), &v, &len);
    assert_int_equal(rc, deleted ? 0 : 1);
    if (!deleted) {
      uint32_t got;
      memcpy(&got, v, 4);
      assert_int_equal(got, i * 3u);
      live++;
    }
  }
  assert_int_equal(f->kv.ops->count(f->kv.self, f->t), live);
}

/* ---------------------------------------------------------------------------------- */
/* Walks                                                                                */

static int delete_odd_cb(const fl_kkey_t *k, const void *v, size_t n, void *arg) {
  uint32_t key;
  (void)v;
  (void)n;
  memcpy(&key, k->key, 4);
  ++*(size_t *)arg;
  return key % 2 ? FL_KV_DELETE : FL_KV_NEXT;
}

static void iterate_delete_removes_visited_entries(void **state) {
  fx_t *f = *state;
  for (uint32_t i = 0; i < 1000; i++) assert_int_equal(put(f, f->t, knum(&i), &i, 4), FL_OK);
  uint64_t cursor = 0;
  size_t visited = 0;
  do {
    assert_int_equal(f->kv.ops->iterate(f->kv.self, f->t, &cursor, 7, delete_odd_cb, &visited),
                     FL_OK);
  } while (cursor != 0);
  assert_int_equal(visited, 1000);
  assert_int_equal(f->kv.ops->count(f->kv.self, f->t), 500);
  for (uint32_t i = 0; i < 1000; i++) {
    const void *v;
    size_t n;
    assert_int_equal(get(f, f->t, knum(&i), &v, &n), i % 2 ? 0 : 1);
  }
}

static int stop_after_3_cb(const fl_kkey_t *k, const void *v, size_t n, void *arg) {
  (void)k;
  (void)v;
  (void)n;
  return ++*(size_t *)arg == 3 ? FL_KV_STOP : FL_KV_NEXT;
}

static void iterate_stop_keeps_the_cursor_after_the_entry(void **state) {
  fx_t *f = *state;
  for (uint32_t i = 0; i < 10; i++) assert_int_equal(put(f, f->t, knum(&i), &i, 4), FL_OK);
  uint64_t cursor = 0;
  size_t visited = 0;
  assert_int_equal(f->kv.ops->iterate(f->kv.self, f->t, &cursor, 100, stop_after_3_cb, &visited),
                   FL_OK);
  assert_int_equal(visited, 3);
  assert_int_not_equal(cursor, 0);
  visited = 100; /* never 3 again */
  assert_int_equal(f->kv.ops->iterate(f->kv.self, f->t, &cursor, 100, stop_after_3_cb, &visited),
                   FL_OK);
  assert_int_equal(visited, 107);
  assert_int_equal(cursor, 0);
}

static void iterate_interleaved_with_inserts_and_deletes_sees_no_entry_twice(void **state) {
  fx_t *f = *state;
  const uint32_t n = 5000;
  for (uint32_t i = 0; i < n; i++)
    assert_int_equal(put(f, f->t, knum(&i), &(uint32_t){i * 3u}, 4), FL_OK);
  seen_t s = {calloc(4 * n, 1), 0, 0};
  assert_non_null(s.bits);
  uint64_t cursor = 0;
  uint32_t next = n, del = 1;
  do {
    assert_int_equal(f->kv.ops->iterate(f->kv.self, f->t, &cursor, 10, mark_cb, &s), FL_OK);
    /* between steps: new keys, and deletes of never-visited odd keys below n */
    for (int j = 0; j < 3; j++, next++)
      assert_int_equal(put(f, f->t, knum(&next), &(uint32_t){next * 3u}, 4), FL_OK);
    while (del < n && s.bits[del]) del += 2;
    if (del < n) {
      fl_kkey_t k = knum(&del);
      assert_int_equal(f->kv.ops->del(f->kv.self, f->t, &k), FL_OK);
      s.bits[del] = 2; /* deleted before being seen */
      del += 2;
    }
  } while (cursor != 0);
  assert_int_equal(s.dup, 0);
  /* Every original key not deleted was seen. */
  for (uint32_t i = 0; i < n; i++) assert_true(s.bits[i] != 0);
  free(s.bits);
}

static int map_table_cb(const fl_kkey_t *k, const void *v, size_t n, void *arg) {
  (void)k;
  assert_null(v);
  assert_int_equal(n, 0);
  ++*(size_t *)arg;
  return FL_KV_NEXT;
}

/* ---------------------------------------------------------------------------------- */
/* Map cells                                                                            */

static int mput(fx_t *f, fl_kkey_t k, const char *uk, const char *v) {
  return f->kv.ops->map_put(f->kv.self, f->t, &k, uk, strlen(uk), v, strlen(v));
}

static void assert_mval(fx_t *f, fl_kkey_t k, const char *uk, const char *want) {
  const void *v;
  size_t n;
  int rc = f->kv.ops->map_get(f->kv.self, f->t, &k, uk, strlen(uk), &v, &n);
  if (!want) {
    assert_int_equal(rc, 0);
    return;
  }
  assert_int_equal(rc, 1);
  assert_int_equal(n, strlen(want));
  assert_memory_equal(v, want, n);
}

static void map_cells_hold_user_keys(void **state) {
  fx_t *f = *state;
  fl_kkey_t a = kstr(5, "a", ""), b = kstr(5, "b", "");
  assert_int_equal(mput(f, a, "x", "1"), FL_OK);
  assert_int_equal(mput(f, a, "y", "2"), FL_OK);
  assert_int_equal(mput(f, b, "x", "3"), FL_OK);
  assert_int_equal(mput(f, a, "x", "11"), FL_OK);
  assert_mval(f, a, "x", "11");
  assert_mval(f, a, "y", "2");
  assert_mval(f, b, "x", "3");
  assert_mval(f, b, "y", NULL);
  assert_mval(f, kstr(5, "c", ""), "x", NULL);
  assert_int_equal(f->kv.ops->count(f->kv.self, f->t), 2); /* one per map cell */
  assert_int_equal(f->kv.ops->map_del(f->kv.self, f->t, &a, "x", 1), FL_OK);
  assert_mval(f, a, "x", NULL);
  assert_mval(f, a, "y", "2");
  size_t cells = 0;
  uint64_t cursor = 0;
  assert_int_equal(f->kv.ops->iterate(f->kv.self, f->t, &cursor, 100, map_table_cb, &cells), FL_OK);
  assert_int_equal(cells, 2);
}

static void removing_the_last_user_key_removes_the_map_cell(void **state) {
  fx_t *f = *state;
  fl_kkey_t a = kstr(0, "a", "ns");
  assert_int_equal(mput(f, a, "x", "1"), FL_OK);
  assert_int_equal(f->kv.ops->count(f->kv.self, f->t), 1);
  assert_int_equal(f->kv.ops->map_del(f->kv.self, f->t, &a, "nope", 4), FL_OK);
  assert_int_equal(f->kv.ops->count(f->kv.self, f->t), 1);
  assert_int_equal(f->kv.ops->map_del(f->kv.self, f->t, &a, "x", 1), FL_OK);
  assert_int_equal(f->kv.ops->count(f->kv.self, f->t), 0);
}

static void del_of_a_map_cell_removes_every_user_key(void **state) {
  fx_t *f = *state;
  fl_kkey_t a = kstr(0, "a", "");
  for (int i = 0; i < 100; i++) {
    char uk[16];
    snprintf(uk, sizeof uk, "u%d", i);
    assert_int_equal(mput(f, a, uk, "v"), FL_OK);
  }
  assert_int_equal(f->kv.ops->del(f->kv.self, f->t, &a), FL_OK);
  assert_int_equal(f->kv.ops->count(f->kv.self, f->t), 0);
  assert_mval(f, a, "u1", NULL);
}

typedef struct miter {
  uint8_t seen[10000];
  size_t n;
} miter_t;

static int miter_cb(const void *uk, size_t ukl, const void *v, size_t vl, void *arg) {
  miter_t *m = arg;
  uint32_t key, val;
  assert_int_equal(ukl, 4);
  assert_int_equal(vl, 4);
  memcpy(&key, uk, 4);
  memcpy(&val, v, 4);
  assert_int_equal(val, key + 1);
  assert_int_equal(m->seen[key], 0);
  m->seen[key] = 1;
  m->n++;
  return key % 4 == 0 ? FL_KV_DELETE : FL_KV_NEXT;
}

static int delete_all_cb(const void *uk, size_t ukl, const void *v, size_t vl, void *arg) {
  (void)uk;
  (void)ukl;
  (void)v;
  (void)vl;
  ++*(size_t *)arg;
  return FL_KV_DELETE;
}

static void map_iter_visits_every_user_key_and_deletes_on_request(void **state) {
  fx_t *f = *state;
  fl_kkey_t a = kstr(1, "big", "");
  for (uint32_t i = 0; i < 10000; i++) {
    uint32_t v = i + 1;
    assert_int_equal(f->kv.ops->map_put(f->kv.self, f->t, &a, &i, 4, &v, 4), FL_OK);
  }
  miter_t *m = calloc(1, sizeof *m);
  assert_non_null(m);
  assert_int_equal(f->kv.ops->map_iter(f->kv.self, f->t, &a, miter_cb, m), FL_OK);
  assert_int_equal(m->n, 10000);
  for (uint32_t i = 0; i < 10000; i++) {
    const void *v;
    size_t n;
    int rc = f->kv.ops->map_get(f->kv.self, f->t, &a, &i, 4, &v, &n);
    assert_int_equal(rc, i % 4 == 0 ? 0 : 1);
  }
  free(m);
  size_t n = 0;
  assert_int_equal(f->kv.ops->map_iter(f->kv.self, f->t, &a, delete_all_cb, &n), FL_OK);
  assert_int_equal(n, 7500);
  assert_int_equal(f->kv.ops->count(f->kv.self, f->t), 0);
}

static void value_and_map_calls_do_not_mix_on_one_cell(void **state) {
  fx_t *f = *state;
  fl_kkey_t v = kstr(0, "v", ""), m = kstr(0, "m", "");
  assert_int_equal(put_str(f, v, "1"), FL_OK);
  assert_int_equal(mput(f, m, "x", "1"), FL_OK);
  const void *p;
  size_t n;
  assert_int_equal(f->kv.ops->map_get(f->kv.self, f->t, &v, "x", 1, &p, &n), FL_EINVAL);
  assert_int_equal(mput(f, v, "x", "1"), FL_EINVAL);
  assert_int_equal(get(f, f->t, m, &p, &n), FL_EINVAL);
  assert_int_equal(put_str(f, m, "1"), FL_EINVAL);
  assert_int_equal(f->kv.ops->append(f->kv.self, f->t, &m, "1", 1), FL_EINVAL);
}

static void bad_arguments_are_rejected(void **state) {
  fx_t *f = *state;
  fl_kkey_t nokey = kk(0, NULL, 3, NULL, 0);
  const void *p;
  size_t n;
  assert_int_equal(f->kv.ops->get(f->kv.self, f->t, &nokey, &p, &n), FL_EINVAL);
  assert_int_equal(f->kv.ops->get(f->kv.self, f->t, NULL, &p, &n), FL_EINVAL);
  fl_kkey_t k = kstr(0, "k", "");
  assert_int_equal(f->kv.ops->put(f->kv.self, f->t, &k, NULL, 2), FL_EINVAL);
  uint64_t c = 0;
  assert_int_equal(f->kv.ops->iterate(f->kv.self, f->t, &c, 1, NULL, NULL), FL_EINVAL);
  uint32_t id;
  assert_int_equal(f->kv.ops->open_table(f->kv.self, NULL, &id), FL_EINVAL);
  assert_int_equal(fl_kv_hashmap_new(NULL), FL_EINVAL);
}

int main(void) {
  const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
      T(put_then_get_returns_the_bytes),
      T(empty_key_and_empty_value_are_a_cell),
      T(same_size_put_overwrites_in_place),
      T(values_are_16_byte_aligned),
      T(growing_put_keeps_the_value_and_other_cells),
      T(put_accepts_its_own_value_as_source),
      T(append_creates_then_extends),
      T(del_removes_only_that_cell),
      T(key_groups_and_namespaces_do_not_collide),
      T(tables_are_independent_and_named),
      T(million_entries_survive_resizes_deletes_and_walks),
      T(every_lookup_during_growth_finds_its_own_entry),
      T(deletes_during_growth_keep_other_entries_reachable),
      T(iterate_delete_removes_visited_entries),
      T(iterate_stop_keeps_the_cursor_after_the_entry),
      T(iterate_interleaved_with_inserts_and_deletes_sees_no_entry_twice),
      T(map_cells_hold_user_keys),
      T(removing_the_last_user_key_removes_the_map_cell),
      T(del_of_a_map_cell_removes_every_user_key),
      T(map_iter_visits_every_user_key_and_deletes_on_request),
      T(value_and_map_calls_do_not_mix_on_one_cell),
      T(bad_arguments_are_rejected),
#undef T
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
