/*
 * The kv backend contract (kv_contract.h): the cases every backend passes through the
 * kv.h vtable. The store is the backend's, made by its factory; nothing here knows
 * which backend it is, except for the flags and the optional calls the backend has.
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
#include "util/hash.h"

/* ---------------------------------------------------------------------------------- */
/* Fixture and helpers                                                                  */

int kvc_setup(void **state) {
  const kvc_backend_t *b = *state;
  kvc_fx_t *f = calloc(1, sizeof *f);
  if (!f) return -1;
  f->b = b;
  if (b->open(&f->kv, &f->ctx) != FL_OK || f->kv.ops->open_table(f->kv.self, "t", &f->t) != FL_OK) {
    b->close(&f->kv, f->ctx);
    free(f);
    return -1;
  }
  *state = f;
  return 0;
}

int kvc_teardown(void **state) {
  kvc_fx_t *f = *state;
  f->b->close(&f->kv, f->ctx);
  free(f);
  return 0;
}

int kvc_get(kvc_fx_t *f, uint32_t t, fl_kkey_t k, const void **v, size_t *n) {
  return f->kv.ops->get(f->kv.self, t, &k, v, n);
}

int kvc_put(kvc_fx_t *f, uint32_t t, fl_kkey_t k, const void *v, size_t n) {
  return f->kv.ops->put(f->kv.self, t, &k, v, n);
}

int kvc_put_str(kvc_fx_t *f, fl_kkey_t k, const char *v) {
  return kvc_put(f, f->t, k, v, strlen(v));
}

size_t kvc_count(kvc_fx_t *f, uint32_t t) { return f->kv.ops->count(f->kv.self, t); }

int kvc_put_num(kvc_fx_t *f, uint32_t t, uint32_t i) {
  uint32_t v = i * 3u;
  return kvc_put(f, t, knum(&i), &v, 4);
}

void kvc_assert_num(kvc_fx_t *f, uint32_t t, uint32_t i) {
  uint32_t v = i * 3u;
  kvc_assert_value(f, t, knum(&i), &v, 4);
}

void kvc_put_nums(kvc_fx_t *f, uint32_t t, uint32_t n) {
  for (uint32_t i = 0; i < n; i++) assert_int_equal(kvc_put_num(f, t, i), FL_OK);
}

int kvc_mput(kvc_fx_t *f, fl_kkey_t k, const char *uk, const char *v) {
  return f->kv.ops->map_put(f->kv.self, f->t, &k, uk, strlen(uk), v, strlen(v));
}

void kvc_assert_value_in(fl_kv_t *kv, uint32_t t, fl_kkey_t k, const void *want, size_t wl) {
  const void *v = NULL;
  size_t n = 0;
  assert_int_equal(kv->ops->get(kv->self, t, &k, &v, &n), 1);
  assert_int_equal(n, wl);
  if (wl) assert_memory_equal(v, want, wl);
}

void kvc_assert_value(kvc_fx_t *f, uint32_t t, fl_kkey_t k, const void *want, size_t wl) {
  kvc_assert_value_in(&f->kv, t, k, want, wl);
}

void kvc_assert_str(kvc_fx_t *f, fl_kkey_t k, const char *want) {
  kvc_assert_value(f, f->t, k, want, strlen(want));
}

void kvc_assert_absent(kvc_fx_t *f, uint32_t t, fl_kkey_t k) {
  const void *v;
  size_t n;
  assert_int_equal(kvc_get(f, t, k, &v, &n), 0);
}

void kvc_assert_found(int rc, const void *v, size_t n, const char *want) {
  if (!want) {
    assert_int_equal(rc, 0);
    return;
  }
  assert_int_equal(rc, 1);
  assert_int_equal(n, strlen(want));
  assert_memory_equal(v, want, n);
}

void kvc_assert_mval(kvc_fx_t *f, fl_kkey_t k, const char *uk, const char *want) {
  const void *v = NULL;
  size_t n = 0;
  int rc = f->kv.ops->map_get(f->kv.self, f->t, &k, uk, strlen(uk), &v, &n);
  kvc_assert_found(rc, v, n, want);
}

int kvc_mark_cb(const fl_kkey_t *k, const void *v, size_t n, void *arg) {
  kvc_seen_t *s = arg;
  uint32_t key, val;
  assert_int_equal(k->key_len, 4);
  assert_int_equal(k->ns_len, 0);
  assert_int_equal(n, 4);
  assert_int_equal((uintptr_t)v % 16, 0);
  memcpy(&key, k->key, 4);
  memcpy(&val, v, 4);
  assert_int_equal(val, key * 3u);
  assert_int_equal(k->kg, key % 128);
  if (s->bits[key]) s->dup = 1;
  s->bits[key] = 1;
  s->visits++;
  return FL_KV_NEXT;
}

int kvc_name_cb(const char *name, void *arg) {
  kvc_names_t *s = arg;
  size_t l = strlen(s->buf);
  snprintf(s->buf + l, sizeof s->buf - l, "%s%s", l ? "," : "", name);
  return ++s->n == s->stop_at ? 1 : 0;
}

static void settle(kvc_fx_t *f) {
  if (f->b->settle) assert_int_equal(f->b->settle(&f->kv), FL_OK);
}

/* Walks table t to its end in steps of `step` cells. */
static void walk_all(kvc_fx_t *f, uint32_t t, size_t step,
                     int (*cb)(const fl_kkey_t *k, const void *v, size_t n, void *arg), void *arg) {
  uint64_t cursor = 0;
  do {
    assert_int_equal(f->kv.ops->iterate(f->kv.self, t, &cursor, step, cb, arg), FL_OK);
  } while (cursor != 0);
}

/* ---------------------------------------------------------------------------------- */
/* Value cells                                                                          */

static void put_then_get_returns_the_bytes(void **state) {
  kvc_fx_t *f = *state;
  assert_int_equal(kvc_put_str(f, kstr(1, "alice", ""), "42"), FL_OK);
  kvc_assert_str(f, kstr(1, "alice", ""), "42");
  kvc_assert_absent(f, f->t, kstr(1, "bob", ""));
  assert_int_equal(kvc_count(f, f->t), 1);
}

static void empty_key_and_empty_value_are_a_cell(void **state) {
  kvc_fx_t *f = *state;
  assert_int_equal(kvc_put(f, f->t, kk(0, NULL, 0, NULL, 0), NULL, 0), FL_OK);
  const void *v = NULL;
  size_t n = 99;
  assert_int_equal(kvc_get(f, f->t, kk(0, NULL, 0, NULL, 0), &v, &n), 1);
  assert_int_equal(n, 0);
  assert_non_null(v);
  assert_int_equal(kvc_count(f, f->t), 1);
}

static void values_are_16_byte_aligned(void **state) {
  kvc_fx_t *f = *state;
  for (size_t kl = 0; kl < 40; kl++) {
    char key[40];
    memset(key, 'k', kl);
    fl_kkey_t k = kk(0, key, kl, "ns", 1 + kl % 2);
    assert_int_equal(kvc_put(f, f->t, k, "v", 1), FL_OK);
    const void *v;
    size_t n;
    assert_int_equal(kvc_get(f, f->t, k, &v, &n), 1);
    assert_int_equal((uintptr_t)v % 16, 0);
  }
}

static void growing_put_keeps_the_value_and_other_cells(void **state) {
  kvc_fx_t *f = *state;
  assert_int_equal(kvc_put_str(f, kstr(0, "a", ""), "x"), FL_OK);
  assert_int_equal(kvc_put_str(f, kstr(0, "b", ""), "y"), FL_OK);
  char big[5000];
  for (size_t i = 0; i < sizeof big; i++) big[i] = (char)('a' + i % 26);
  assert_int_equal(kvc_put(f, f->t, kstr(0, "a", ""), big, sizeof big), FL_OK);
  kvc_assert_value(f, f->t, kstr(0, "a", ""), big, sizeof big);
  kvc_assert_str(f, kstr(0, "b", ""), "y");
  /* and shrinking again (gives memory back) */
  assert_int_equal(kvc_put_str(f, kstr(0, "a", ""), "z"), FL_OK);
  kvc_assert_str(f, kstr(0, "a", ""), "z");
}

static void put_accepts_its_own_value_as_source(void **state) {
  kvc_fx_t *f = *state;
  fl_kkey_t k = kstr(0, "self", "");
  assert_int_equal(kvc_put_str(f, k, "0123456789"), FL_OK);
  const void *v;
  size_t n;
  assert_int_equal(kvc_get(f, f->t, k, &v, &n), 1);
  /* a suffix of the value, written over it */
  assert_int_equal(kvc_put(f, f->t, k, (const char *)v + 4, 6), FL_OK);
  kvc_assert_str(f, k, "456789");
  /* appending a cell's own value to itself (the hashmap reallocates) */
  for (int i = 0; i < 6; i++) {
    assert_int_equal(kvc_get(f, f->t, k, &v, &n), 1);
    assert_int_equal(f->kv.ops->append(f->kv.self, f->t, &k, v, n), FL_OK);
  }
  assert_int_equal(kvc_get(f, f->t, k, &v, &n), 1);
  assert_int_equal(n, 6 * 64);
  for (size_t i = 0; i < n; i += 6) assert_memory_equal((const char *)v + i, "456789", 6);
}

static void append_creates_then_extends(void **state) {
  kvc_fx_t *f = *state;
  fl_kkey_t k = kstr(2, "list", "w");
  char want[3000];
  size_t wl = 0;
  for (int i = 0; i < 1000; i++) {
    char item[3] = {(char)('a' + i % 26), (char)('0' + i % 10), '|'};
    assert_int_equal(f->kv.ops->append(f->kv.self, f->t, &k, item, 3), FL_OK);
    memcpy(want + wl, item, 3);
    wl += 3;
  }
  kvc_assert_value(f, f->t, k, want, wl);
  assert_int_equal(kvc_count(f, f->t), 1);
  /* a put replaces what the appends built; appends go on from it */
  assert_int_equal(kvc_put_str(f, k, "new"), FL_OK);
  assert_int_equal(f->kv.ops->append(f->kv.self, f->t, &k, "+1", 2), FL_OK);
  kvc_assert_str(f, k, "new+1");
  /* and they survive what the backend does later (RocksDB's merge operator folds them) */
  settle(f);
  kvc_assert_str(f, k, "new+1");
}

static void del_removes_only_that_cell(void **state) {
  kvc_fx_t *f = *state;
  assert_int_equal(kvc_put_str(f, kstr(0, "a", ""), "1"), FL_OK);
  assert_int_equal(kvc_put_str(f, kstr(0, "b", ""), "2"), FL_OK);
  fl_kkey_t a = kstr(0, "a", "");
  assert_int_equal(f->kv.ops->del(f->kv.self, f->t, &a), FL_OK);
  kvc_assert_absent(f, f->t, a);
  kvc_assert_str(f, kstr(0, "b", ""), "2");
  assert_int_equal(f->kv.ops->del(f->kv.self, f->t, &a), FL_OK); /* absent: still 0 */
  assert_int_equal(kvc_count(f, f->t), 1);
}

static void key_groups_and_namespaces_do_not_collide(void **state) {
  kvc_fx_t *f = *state;
  static const struct {
    uint16_t kg;
    const char *key, *ns, *val;
  } cells[] = {
      {0, "k", "", "kg0"},
      {1, "k", "", "kg1"},
      {256, "k", "", "kg256"},
      {0, "k", "w1", "kg0-w1"},
      {0, "k", "w2", "kg0-w2"},
      /* The split between key and namespace is part of the address. */
      {0, "ab", "c", "ab|c"},
      {0, "a", "bc", "a|bc"},
      {0, "abc", "", "abc|"},
  };
  const size_t nc = sizeof cells / sizeof cells[0];
  for (size_t i = 0; i < nc; i++)
    assert_int_equal(kvc_put_str(f, kstr(cells[i].kg, cells[i].key, cells[i].ns), cells[i].val),
                     FL_OK);
  /* bytes that look like an encoding's own lengths */
  assert_int_equal(kvc_put(f, f->t, kk(0, "\x01", 1, "\x00", 1), "x", 1), FL_OK);
  assert_int_equal(kvc_put(f, f->t, kk(0, "\x01\x01", 2, NULL, 0), "y", 1), FL_OK);
  for (size_t i = 0; i < nc; i++)
    kvc_assert_str(f, kstr(cells[i].kg, cells[i].key, cells[i].ns), cells[i].val);
  kvc_assert_value(f, f->t, kk(0, "\x01", 1, "\x00", 1), "x", 1);
  kvc_assert_value(f, f->t, kk(0, "\x01\x01", 2, NULL, 0), "y", 1);
  kvc_assert_absent(f, f->t, kstr(2, "k", ""));
  kvc_assert_absent(f, f->t, kk(0, "\x01", 1, NULL, 0));
  assert_int_equal(kvc_count(f, f->t), nc + 2);
}

static void tables_are_independent_and_named(void **state) {
  kvc_fx_t *f = *state;
  uint32_t t2, again;
  assert_int_equal(f->kv.ops->open_table(f->kv.self, "other", &t2), FL_OK);
  assert_int_equal(t2, f->t + 1); /* dense, in order of first open */
  assert_int_equal(f->kv.ops->open_table(f->kv.self, "t", &again), FL_OK);
  assert_int_equal(again, f->t);
  assert_int_equal(kvc_put(f, f->t, kstr(0, "k", ""), "one", 3), FL_OK);
  assert_int_equal(kvc_put(f, t2, kstr(0, "k", ""), "two", 3), FL_OK);
  kvc_assert_value(f, f->t, kstr(0, "k", ""), "one", 3);
  kvc_assert_value(f, t2, kstr(0, "k", ""), "two", 3);
  const void *v;
  size_t n;
  fl_kkey_t k = kstr(0, "k", "");
  assert_int_equal(f->kv.ops->get(f->kv.self, 99, &k, &v, &n), FL_EINVAL);
}

/* On a new store: no names; then the names in id order; the callback stops the list. */
static void list_tables_names_the_tables_in_id_order(void **state) {
  kvc_fx_t *f = *state;
  fl_kv_t h;
  void *ctx;
  uint32_t id;
  assert_int_equal(f->b->open(&h, &ctx), FL_OK);
  kvc_names_t s = {"", 0, 0};
  assert_int_equal(h.ops->list_tables(h.self, kvc_name_cb, &s), FL_OK);
  assert_string_equal(s.buf, "");
  assert_int_equal(h.ops->open_table(h.self, "b", &id), FL_OK);
  assert_int_equal(h.ops->open_table(h.self, "a", &id), FL_OK);
  assert_int_equal(h.ops->open_table(h.self, "b", &id), FL_OK);
  assert_int_equal(h.ops->open_table(h.self, "empty/with:odd name", &id), FL_OK);
  assert_int_equal(h.ops->list_tables(h.self, kvc_name_cb, &s), FL_OK);
  assert_string_equal(s.buf, "b,a,empty/with:odd name");
  kvc_names_t c = {"", 0, 1};
  assert_int_equal(h.ops->list_tables(h.self, kvc_name_cb, &c), FL_OK);
  assert_string_equal(c.buf, "b");
  assert_int_equal(h.ops->list_tables(h.self, NULL, NULL), FL_EINVAL);
  f->b->close(&h, ctx);
}

/* ---------------------------------------------------------------------------------- */
/* Many cells and walks                                                                 */

static void many_entries_survive_deletes_and_walks(void **state) {
  kvc_fx_t *f = *state;
  const uint32_t many = f->b->many;
  for (uint32_t i = 0; i < many; i++) {
    assert_int_equal(kvc_put_num(f, f->t, i), FL_OK);
    /* Earlier keys stay reachable while the store grows (the hashmap doubles its index
     * step by step). */
    if ((i & 63) == 0) kvc_assert_num(f, f->t, i / 2);
  }
  assert_int_equal(kvc_count(f, f->t), many);
  for (uint32_t i = 0; i < many; i += 2) {
    fl_kkey_t k = knum(&i);
    assert_int_equal(f->kv.ops->del(f->kv.self, f->t, &k), FL_OK);
  }
  assert_int_equal(kvc_count(f, f->t), many / 2);
  for (uint32_t i = 0; i < many; i++) {
    if (i % 2)
      kvc_assert_num(f, f->t, i);
    else
      kvc_assert_absent(f, f->t, knum(&i));
  }
  /* A walk in steps visits each remaining entry exactly once. */
  kvc_seen_t s = {calloc(many, 1), 0, 0};
  assert_non_null(s.bits);
  uint64_t cursor = 0;
  size_t calls = 0;
  do {
    assert_int_equal(f->kv.ops->iterate(f->kv.self, f->t, &cursor, 4096, kvc_mark_cb, &s), FL_OK);
    calls++;
  } while (cursor != 0);
  assert_int_equal(s.visits, many / 2);
  assert_int_equal(s.dup, 0);
  for (uint32_t i = 0; i < many; i++) assert_int_equal(s.bits[i], i % 2);
  assert_true(calls >= many / 2 / 4096);
  free(s.bits);
}

static int delete_odd_cb(const fl_kkey_t *k, const void *v, size_t n, void *arg) {
  uint32_t key;
  memcpy(&key, k->key, 4);
  ++*(size_t *)arg;
  return key % 2 ? FL_KV_DELETE : FL_KV_NEXT;
}

static void iterate_delete_removes_visited_entries(void **state) {
  kvc_fx_t *f = *state;
  kvc_put_nums(f, f->t, 1000);
  size_t visited = 0;
  walk_all(f, f->t, 7, delete_odd_cb, &visited);
  assert_int_equal(visited, 1000);
  assert_int_equal(kvc_count(f, f->t), 500);
  for (uint32_t i = 0; i < 1000; i++) {
    const void *v;
    size_t n;
    assert_int_equal(kvc_get(f, f->t, knum(&i), &v, &n), i % 2 ? 0 : 1);
  }
}

static int stop_after_3_cb(const fl_kkey_t *k, const void *v, size_t n, void *arg) {
  return ++*(size_t *)arg == 3 ? FL_KV_STOP : FL_KV_NEXT;
}

static void iterate_stop_keeps_the_cursor_after_the_entry(void **state) {
  kvc_fx_t *f = *state;
  kvc_put_nums(f, f->t, 10);
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

typedef struct fail_at {
  int calls, fail_on;
  uint32_t keys[32];
} fail_at_t;

static int fail_at_cb(const fl_kkey_t *k, const void *v, size_t n, void *arg) {
  fail_at_t *a = arg;
  memcpy(&a->keys[a->calls], k->key, 4);
  return ++a->calls == a->fail_on ? FL_EUSER : FL_KV_NEXT;
}

static void iterate_error_leaves_the_cursor_on_the_failing_cell(void **state) {
  kvc_fx_t *f = *state;
  kvc_put_nums(f, f->t, 10);
  fail_at_t a = {0, 4, {0}};
  uint64_t cursor = 0;
  assert_int_equal(f->kv.ops->iterate(f->kv.self, f->t, &cursor, 100, fail_at_cb, &a), FL_EUSER);
  assert_int_not_equal(cursor, 0);
  uint32_t failed = a.keys[3];
  a.fail_on = 0;
  int first = a.calls;
  assert_int_equal(f->kv.ops->iterate(f->kv.self, f->t, &cursor, 100, fail_at_cb, &a), FL_OK);
  assert_int_equal(cursor, 0);
  assert_int_equal(a.keys[first], failed); /* visited again */
  assert_int_equal(a.calls, 11);
}

static void iterate_interleaved_with_inserts_and_deletes_sees_no_entry_twice(void **state) {
  kvc_fx_t *f = *state;
  const uint32_t n = 5000;
  kvc_put_nums(f, f->t, n);
  kvc_seen_t s = {calloc(4 * n, 1), 0, 0};
  assert_non_null(s.bits);
  uint64_t cursor = 0;
  uint32_t next = n, del = 1;
  do {
    assert_int_equal(f->kv.ops->iterate(f->kv.self, f->t, &cursor, 10, kvc_mark_cb, &s), FL_OK);
    /* between steps: new keys, and deletes of never-visited odd keys below n */
    for (int j = 0; j < 3; j++, next++) assert_int_equal(kvc_put_num(f, f->t, next), FL_OK);
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

/* Two walks of two tables, interleaved, keep their own places; many walks paused on one
 * table at once each see every cell once. */
static void walks_of_several_tables_keep_their_own_cursors(void **state) {
  kvc_fx_t *f = *state;
  uint32_t t2;
  assert_int_equal(f->kv.ops->open_table(f->kv.self, "t2", &t2), FL_OK);
  kvc_put_nums(f, f->t, 300);
  kvc_put_nums(f, t2, 300);
  kvc_seen_t s1 = {calloc(300, 1), 0, 0}, s2 = {calloc(300, 1), 0, 0};
  uint64_t c1 = 0, c2 = 0;
  do {
    if (c1 || s1.visits == 0)
      assert_int_equal(f->kv.ops->iterate(f->kv.self, f->t, &c1, 7, kvc_mark_cb, &s1), FL_OK);
    if (c2 || s2.visits == 0)
      assert_int_equal(f->kv.ops->iterate(f->kv.self, t2, &c2, 11, kvc_mark_cb, &s2), FL_OK);
  } while (c1 || c2);
  assert_int_equal(s1.visits, 300);
  assert_int_equal(s2.visits, 300);
  assert_int_equal(s1.dup + s2.dup, 0);
  free(s1.bits);
  free(s2.bits);

  enum {
    W = 100
  };
  uint64_t cur[W] = {0};
  kvc_seen_t sw[W];
  for (int w = 0; w < W; w++) sw[w] = (kvc_seen_t){calloc(300, 1), 0, 0};
  for (int round = 0; round < 8; round++)
    for (int w = 0; w < W; w++)
      if (round == 0 || cur[w])
        assert_int_equal(f->kv.ops->iterate(f->kv.self, f->t, &cur[w], 50, kvc_mark_cb, &sw[w]),
                         FL_OK);
  for (int w = 0; w < W; w++) {
    assert_int_equal(cur[w], 0);
    assert_int_equal(sw[w].visits, 300);
    assert_int_equal(sw[w].dup, 0);
    free(sw[w].bits);
  }
}

/* ---------------------------------------------------------------------------------- */
/* Map cells                                                                            */

static int map_table_cb(const fl_kkey_t *k, const void *v, size_t n, void *arg) {
  assert_null(v);
  assert_int_equal(n, 0);
  ++*(size_t *)arg;
  return FL_KV_NEXT;
}

static void map_cells_hold_user_keys(void **state) {
  kvc_fx_t *f = *state;
  fl_kkey_t a = kstr(5, "a", ""), b = kstr(5, "b", "");
  assert_int_equal(kvc_mput(f, a, "x", "1"), FL_OK);
  assert_int_equal(kvc_mput(f, a, "y", "2"), FL_OK);
  assert_int_equal(kvc_mput(f, b, "x", "3"), FL_OK);
  assert_int_equal(kvc_mput(f, a, "x", "11"), FL_OK);
  assert_int_equal(kvc_mput(f, a, "", "empty"), FL_OK); /* an empty user key is a key */
  kvc_assert_mval(f, a, "x", "11");
  kvc_assert_mval(f, a, "y", "2");
  kvc_assert_mval(f, a, "", "empty");
  kvc_assert_mval(f, b, "x", "3");
  kvc_assert_mval(f, b, "y", NULL);
  kvc_assert_mval(f, b, "", NULL);
  kvc_assert_mval(f, kstr(5, "c", ""), "x", NULL);
  assert_int_equal(kvc_count(f, f->t), 2); /* one per map cell */
  assert_int_equal(f->kv.ops->map_del(f->kv.self, f->t, &a, "x", 1), FL_OK);
  kvc_assert_mval(f, a, "x", NULL);
  kvc_assert_mval(f, a, "y", "2");
  size_t cells = 0;
  uint64_t cursor = 0;
  assert_int_equal(f->kv.ops->iterate(f->kv.self, f->t, &cursor, 100, map_table_cb, &cells), FL_OK);
  assert_int_equal(cells, 2);
  assert_int_equal(cursor, 0);
}

static void removing_the_last_user_key_removes_the_map_cell(void **state) {
  kvc_fx_t *f = *state;
  fl_kkey_t a = kstr(0, "a", "ns");
  assert_int_equal(kvc_mput(f, a, "x", "1"), FL_OK);
  assert_int_equal(kvc_count(f, f->t), 1);
  assert_int_equal(f->kv.ops->map_del(f->kv.self, f->t, &a, "nope", 4), FL_OK);
  assert_int_equal(kvc_count(f, f->t), 1);
  assert_int_equal(f->kv.ops->map_del(f->kv.self, f->t, &a, "x", 1), FL_OK);
  assert_int_equal(kvc_count(f, f->t), 0);
}

static void del_of_a_map_cell_removes_every_user_key(void **state) {
  kvc_fx_t *f = *state;
  fl_kkey_t a = kstr(0, "a", ""), ab = kstr(0, "a", "b"), b = kstr(0, "b", "");
  for (int i = 0; i < 100; i++) {
    char uk[16];
    snprintf(uk, sizeof uk, "u%d", i);
    assert_int_equal(kvc_mput(f, a, uk, "v"), FL_OK);
    assert_int_equal(kvc_mput(f, ab, uk, "w"), FL_OK);
  }
  assert_int_equal(kvc_mput(f, b, "u1", "z"), FL_OK);
  assert_int_equal(f->kv.ops->del(f->kv.self, f->t, &a), FL_OK);
  assert_int_equal(kvc_count(f, f->t), 2);
  kvc_assert_mval(f, a, "u1", NULL);
  kvc_assert_mval(f, ab, "u1", "w"); /* the neighbouring cells stay */
  kvc_assert_mval(f, ab, "u99", "w");
  kvc_assert_mval(f, b, "u1", "z");
}

static int delete_all_cb(const void *uk, size_t ukl, const void *v, size_t vl, void *arg) {
  ++*(size_t *)arg;
  return FL_KV_DELETE;
}

typedef struct miter {
  uint8_t seen[10000];
  size_t n;
  uint32_t last; /* the previous user key, for KVC_ORDERED */
  bool ordered;
} miter_t;

static int miter_cb(const void *uk, size_t ukl, const void *v, size_t vl, void *arg) {
  miter_t *m = arg;
  uint32_t key, val;
  assert_int_equal(ukl, 4);
  assert_int_equal(vl, 4);
  assert_int_equal((uintptr_t)v % 16, 0);
  memcpy(&key, uk, 4);
  memcpy(&val, v, 4);
  assert_int_equal(val, key + 1);
  assert_int_equal(m->seen[key], 0);
  if (m->ordered && m->n) assert_true(memcmp(&m->last, uk, 4) < 0);
  m->last = key;
  m->seen[key] = 1;
  m->n++;
  return key % 4 == 0 ? FL_KV_DELETE : FL_KV_NEXT;
}

static void map_iter_visits_every_user_key_and_deletes_on_request(void **state) {
  kvc_fx_t *f = *state;
  fl_kkey_t a = kstr(1, "big", ""), other = kstr(1, "bigger", "");
  assert_int_equal(kvc_mput(f, other, "x", "y"), FL_OK);
  for (uint32_t i = 0; i < 10000; i++) {
    uint32_t v = i + 1;
    assert_int_equal(f->kv.ops->map_put(f->kv.self, f->t, &a, &i, 4, &v, 4), FL_OK);
  }
  miter_t *m = calloc(1, sizeof *m);
  assert_non_null(m);
  m->ordered = (f->b->flags & KVC_ORDERED) != 0;
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
  assert_int_equal(kvc_count(f, f->t), 1); /* "bigger" */
  kvc_assert_mval(f, other, "x", "y");
}

static int del_cell_cb(const fl_kkey_t *k, const void *v, size_t n, void *arg) {
  ++*(size_t *)arg;
  return k->key_len == 1 && ((const char *)k->key)[0] == 'b' ? FL_KV_DELETE : FL_KV_NEXT;
}

static void iterate_delete_on_a_map_table_removes_the_whole_cell(void **state) {
  kvc_fx_t *f = *state;
  const char *keys[] = {"a", "b", "c"};
  for (int i = 0; i < 3; i++)
    for (int j = 0; j < 50; j++) {
      char uk[8];
      snprintf(uk, sizeof uk, "%d", j);
      assert_int_equal(kvc_mput(f, kstr(0, keys[i], ""), uk, "v"), FL_OK);
    }
  size_t visited = 0;
  walk_all(f, f->t, 1, del_cell_cb, &visited);
  assert_int_equal(visited, 3);
  assert_int_equal(kvc_count(f, f->t), 2);
  kvc_assert_mval(f, kstr(0, "b", ""), "7", NULL);
  kvc_assert_mval(f, kstr(0, "c", ""), "7", "v");
}

/* The contract: a table holds value cells or map cells. (The hashmap checks it per
 * cell, RocksDB per table: test_kv_hashmap.c has the stricter case.) */
static void value_and_map_calls_do_not_mix_in_one_table(void **state) {
  kvc_fx_t *f = *state;
  uint32_t mt;
  assert_int_equal(f->kv.ops->open_table(f->kv.self, "maps", &mt), FL_OK);
  fl_kkey_t v = kstr(0, "v", ""), m = kstr(0, "m", "");
  assert_int_equal(kvc_put_str(f, v, "1"), FL_OK);
  assert_int_equal(f->kv.ops->map_put(f->kv.self, mt, &m, "x", 1, "1", 1), FL_OK);
  const void *p;
  size_t n;
  assert_int_equal(f->kv.ops->map_get(f->kv.self, f->t, &v, "x", 1, &p, &n), FL_EINVAL);
  assert_int_equal(f->kv.ops->map_put(f->kv.self, f->t, &v, "x", 1, "1", 1), FL_EINVAL);
  assert_int_equal(f->kv.ops->get(f->kv.self, mt, &m, &p, &n), FL_EINVAL);
  assert_int_equal(f->kv.ops->put(f->kv.self, mt, &m, "1", 1), FL_EINVAL);
  assert_int_equal(f->kv.ops->append(f->kv.self, mt, &m, "1", 1), FL_EINVAL);
}

static void bad_arguments_are_rejected(void **state) {
  kvc_fx_t *f = *state;
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
  if (f->kv.ops->set_table_ttl) {
    assert_int_equal(f->kv.ops->set_table_ttl(f->kv.self, f->t, 7, 10), FL_EINVAL);
    assert_int_equal(f->kv.ops->set_table_ttl(f->kv.self, f->t, FL_KV_TTL_VALUE, 0), FL_EINVAL);
    assert_int_equal(f->kv.ops->set_table_ttl(f->kv.self, 99, FL_KV_TTL_VALUE, 10), FL_EINVAL);
  }
}

/* ---------------------------------------------------------------------------------- */
/* Optional: retain_key_groups                                                          */

typedef struct kg_walk {
  uint32_t kgs[16];
  int n;
} kg_walk_t;

static int kg_cb(const fl_kkey_t *k, const void *v, size_t n, void *arg) {
  kg_walk_t *w = arg;
  w->kgs[w->n++] = k->kg;
  return FL_KV_NEXT;
}

static int cmp_u32(const void *a, const void *b) {
  uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
  return x < y ? -1 : x > y;
}

/* The key groups of table t's cells, ascending (as walked, for a KVC_ORDERED backend). */
static void walk_kgs(kvc_fx_t *f, uint32_t t, kg_walk_t *w) {
  w->n = 0;
  walk_all(f, t, 100, kg_cb, w);
  if (!(f->b->flags & KVC_ORDERED)) qsort(w->kgs, (size_t)w->n, sizeof w->kgs[0], cmp_u32);
}

static void retain_key_groups_deletes_every_other_key_group(void **state) {
  kvc_fx_t *f = *state;
  uint32_t tm;
  assert_int_equal(f->kv.ops->open_table(f->kv.self, "maps", &tm), FL_OK);
  const uint16_t kgs[] = {0, 1, 4, 5, 6, 7, 255, 256, 0xfffe, 0xffff};
  for (size_t i = 0; i < sizeof kgs / sizeof kgs[0]; i++) {
    fl_kkey_t k = kstr(kgs[i], "key", "ns");
    assert_int_equal(kvc_put_str(f, k, "v"), FL_OK);
    assert_int_equal(f->kv.ops->map_put(f->kv.self, tm, &k, "u", 1, "v", 1), FL_OK);
  }
  assert_int_equal(f->kv.ops->retain_key_groups(f->kv.self, 4, 3), FL_OK);
  kg_walk_t w;
  walk_kgs(f, f->t, &w);
  assert_int_equal(w.n, 3);
  assert_int_equal(w.kgs[0], 4);
  assert_int_equal(w.kgs[1], 5);
  assert_int_equal(w.kgs[2], 6);
  walk_kgs(f, tm, &w);
  assert_int_equal(w.n, 3);
  kvc_assert_str(f, kstr(5, "key", "ns"), "v");
  kvc_assert_absent(f, f->t, kstr(7, "key", "ns"));
  kvc_assert_absent(f, f->t, kstr(0xffff, "key", "ns"));
  /* A range reaching past the last key group keeps the top; an empty one deletes all. */
  for (size_t i = 0; i < sizeof kgs / sizeof kgs[0]; i++)
    assert_int_equal(kvc_put_str(f, kstr(kgs[i], "key", "ns"), "v"), FL_OK);
  assert_int_equal(f->kv.ops->retain_key_groups(f->kv.self, 256, 70000), FL_OK);
  walk_kgs(f, f->t, &w);
  assert_int_equal(w.n, 3);
  assert_int_equal(w.kgs[0], 256);
  assert_int_equal(w.kgs[2], 0xffff);
  assert_int_equal(f->kv.ops->retain_key_groups(f->kv.self, 0, 0), FL_OK);
  assert_int_equal(kvc_count(f, f->t), 0);
  assert_int_equal(kvc_count(f, tm), 0);
  /* the store goes on working after range deletions */
  assert_int_equal(kvc_put_str(f, kstr(5, "key", "ns"), "again"), FL_OK);
  kvc_assert_str(f, kstr(5, "key", "ns"), "again");
}

/* ---------------------------------------------------------------------------------- */
/* Optional: take (kv ops version 5)                                                    */

static int take(kvc_fx_t *f, uint32_t t, fl_kkey_t k, const void **v, size_t *n) {
  return f->kv.ops->take(f->kv.self, t, &k, fl_hash64(k.key, k.key_len, 0), v, n);
}

static void take_removes_the_cell_and_lends_its_value(void **state) {
  kvc_fx_t *f = *state;
  fl_kkey_t k = kstr(5, "key", "w1"), other_ns = kstr(5, "key", "w2");
  fl_kkey_t other_kg = kstr(6, "key", "w1"), other_key = kstr(5, "kez", "w1");
  assert_int_equal(kvc_put_str(f, k, "taken"), FL_OK);
  assert_int_equal(kvc_put_str(f, other_ns, "b"), FL_OK);
  assert_int_equal(kvc_put_str(f, other_kg, "c"), FL_OK);
  assert_int_equal(kvc_put_str(f, other_key, "d"), FL_OK);
  const void *v = NULL;
  size_t n = 0;
  assert_int_equal(take(f, f->t, k, &v, &n), 1);
  kvc_assert_found(1, v, n, "taken");
  assert_int_equal(kvc_count(f, f->t), 3);
  /* lookups change nothing: the lent bytes stay */
  kvc_assert_str(f, other_ns, "b");
  kvc_assert_absent(f, f->t, k);
  kvc_assert_found(1, v, n, "taken");
  kvc_assert_str(f, other_kg, "c");
  kvc_assert_str(f, other_key, "d");
  /* gone: a second take finds nothing and changes nothing */
  assert_int_equal(take(f, f->t, k, &v, &n), 0);
  assert_int_equal(take(f, f->t, kstr(5, "never", "w1"), &v, &n), 0);
  assert_int_equal(kvc_count(f, f->t), 3);
  /* the cell can be made again */
  assert_int_equal(kvc_put_str(f, k, "again"), FL_OK);
  kvc_assert_str(f, k, "again");
  /* an empty value and an empty key are cells too */
  fl_kkey_t empty = kk(0, "", 0, NULL, 0);
  assert_int_equal(kvc_put(f, f->t, empty, "", 0), FL_OK);
  assert_int_equal(take(f, f->t, empty, &v, &n), 1);
  assert_int_equal(n, 0);
  kvc_assert_absent(f, f->t, empty);
}

/* A window's worth of cells taken one by one, as a firing does: each gives its own
 * value, the walks that follow see only what is left, and the table ends empty. */
static void take_of_every_cell_empties_the_table(void **state) {
  kvc_fx_t *f = *state;
  const uint32_t n = f->b->many < 20000 ? f->b->many : 20000;
  kvc_put_nums(f, f->t, n);
  for (uint32_t i = 0; i < n; i++) {
    const void *v;
    size_t len;
    uint32_t key = i;
    assert_int_equal(take(f, f->t, knum(&key), &v, &len), 1);
    assert_int_equal(len, 4);
    uint32_t got;
    memcpy(&got, v, 4);
    assert_int_equal(got, i * 3);
    if (i == n / 2) {
      kvc_seen_t seen = {calloc(n, 1), 0, 0};
      walk_all(f, f->t, 97, kvc_mark_cb, &seen);
      assert_int_equal(seen.visits, n - n / 2 - 1);
      assert_false(seen.dup);
      for (uint32_t j = 0; j < n; j++) assert_int_equal(seen.bits[j] != 0, j > n / 2);
      free(seen.bits);
    }
  }
  assert_int_equal(kvc_count(f, f->t), 0);
  kvc_put_nums(f, f->t, 10);
  kvc_assert_num(f, f->t, 9);
}

static void take_of_a_map_cell_is_refused_and_changes_nothing(void **state) {
  kvc_fx_t *f = *state;
  uint32_t tm;
  assert_int_equal(f->kv.ops->open_table(f->kv.self, "maps", &tm), FL_OK);
  fl_kkey_t k = kstr(2, "m", "ns");
  assert_int_equal(f->kv.ops->map_put(f->kv.self, tm, &k, "u", 1, "v", 1), FL_OK);
  const void *v;
  size_t n;
  assert_int_equal(take(f, tm, k, &v, &n), FL_EINVAL);
  assert_int_equal(kvc_count(f, tm), 1);
  assert_int_equal(f->kv.ops->map_get(f->kv.self, tm, &k, "u", 1, &v, &n), 1);
  assert_int_equal(take(f, 1000, k, &v, &n), FL_EINVAL); /* no such table */
}

/* ---------------------------------------------------------------------------------- */
/* Optional: TTL layouts (set_table_ttl), applied when the backend settles. These check */
/* the raw store, not the state layer, which cleans on access by itself.                 */

static void put_ts_value(kvc_fx_t *f, uint32_t t, fl_kkey_t k, int64_t ts, const char *v) {
  char buf[64];
  memcpy(buf, &ts, 8);
  memcpy(buf + 8, v, strlen(v));
  assert_int_equal(kvc_put(f, t, k, buf, 8 + strlen(v)), FL_OK);
}

/* Settles at processing time now (< 0: no clock set) and checks the cells left. */
static void settle_at(kvc_fx_t *f, int64_t now, uint32_t t, size_t cells_left) {
  if (now >= 0) f->kv.ops->set_time(f->kv.self, now);
  settle(f);
  assert_int_equal(kvc_count(f, t), cells_left);
}

static void ttl_layout_value_drops_expired_cells(void **state) {
  kvc_fx_t *f = *state;
  assert_int_equal(f->kv.ops->set_table_ttl(f->kv.self, f->t, FL_KV_TTL_VALUE, 10), FL_OK);
  for (int i = 0; i < 100; i++) {
    char key[16];
    snprintf(key, sizeof key, "k%d", i);
    put_ts_value(f, f->t, kstr(0, key, ""), i % 2 ? 100 : 50, "v"); /* odd: live at 100 */
  }
  settle_at(f, -1, f->t, 100); /* no clock yet: nothing is dropped */
  settle_at(f, 100, f->t, 50);
  for (int i = 0; i < 100; i++) {
    char key[16];
    snprintf(key, sizeof key, "k%d", i);
    const void *v;
    size_t n;
    assert_int_equal(kvc_get(f, f->t, kstr(0, key, ""), &v, &n), i % 2);
  }
  /* ts + ttl <= now is expired: 100 + 10 at 110 */
  settle_at(f, 109, f->t, 50);
  settle_at(f, 110, f->t, 0);
}

static void ttl_layout_leaves_tables_without_ttl_alone(void **state) {
  kvc_fx_t *f = *state;
  uint32_t other;
  assert_int_equal(f->kv.ops->open_table(f->kv.self, "no-ttl", &other), FL_OK);
  assert_int_equal(f->kv.ops->set_table_ttl(f->kv.self, f->t, FL_KV_TTL_VALUE, 10), FL_OK);
  put_ts_value(f, other, kstr(0, "k", ""), 0, "v");
  put_ts_value(f, f->t, kstr(0, "k", ""), 0, "v");
  settle_at(f, 1000, other, 1);
  assert_int_equal(kvc_count(f, f->t), 0);
}

static void ttl_layout_map_drops_expired_entries(void **state) {
  kvc_fx_t *f = *state;
  assert_int_equal(f->kv.ops->set_table_ttl(f->kv.self, f->t, FL_KV_TTL_MAP, 10), FL_OK);
  fl_kkey_t mixed = kstr(3, "mixed", ""), dead = kstr(3, "dead", "");
  char v[16];
  int64_t old = 0, young = 95;
  memcpy(v, &old, 8);
  memcpy(v + 8, "1", 1);
  assert_int_equal(f->kv.ops->map_put(f->kv.self, f->t, &mixed, "a", 1, v, 9), FL_OK);
  assert_int_equal(f->kv.ops->map_put(f->kv.self, f->t, &dead, "a", 1, v, 9), FL_OK);
  assert_int_equal(f->kv.ops->map_put(f->kv.self, f->t, &dead, "b", 1, v, 9), FL_OK);
  memcpy(v, &young, 8);
  assert_int_equal(f->kv.ops->map_put(f->kv.self, f->t, &mixed, "b", 1, v, 9), FL_OK);
  assert_int_equal(kvc_count(f, f->t), 2);
  settle_at(f, 100, f->t, 1);
  const void *p;
  size_t n;
  assert_int_equal(f->kv.ops->map_get(f->kv.self, f->t, &mixed, "a", 1, &p, &n), 0);
  assert_int_equal(f->kv.ops->map_get(f->kv.self, f->t, &mixed, "b", 1, &p, &n), 1);
  assert_int_equal(n, 9);
  assert_memory_equal((const char *)p + 8, "1", 1);
  assert_int_equal(f->kv.ops->map_get(f->kv.self, f->t, &dead, "b", 1, &p, &n), 0);
}

/* A list item as state.c writes it with TTL: [u32 len][u32 0][i64 ts][bytes][pad]. */
static size_t list_item(unsigned char *p, int64_t ts, const char *s) {
  uint32_t l = (uint32_t)strlen(s), zero = 0;
  size_t padded = (l + 7u) & ~7u;
  memcpy(p, &l, 4);
  memcpy(p + 4, &zero, 4);
  memcpy(p + 8, &ts, 8);
  memset(p + 16, 0, padded);
  memcpy(p + 16, s, l);
  return 16 + padded;
}

/* The raw list of cell k as "item@ts,..." ("" if absent). */
static void raw_list_is(kvc_fx_t *f, fl_kkey_t k, const char *want) {
  const void *v;
  size_t n;
  char got[256] = "";
  int rc = kvc_get(f, f->t, k, &v, &n);
  assert_true(rc >= 0);
  const unsigned char *p = v;
  for (size_t off = 0; rc == 1 && off < n;) {
    uint32_t l;
    int64_t ts;
    memcpy(&l, p + off, 4);
    memcpy(&ts, p + off + 8, 8);
    size_t gl = strlen(got);
    snprintf(got + gl, sizeof got - gl, "%s%.*s@%lld", gl ? "," : "", (int)l,
             (const char *)p + off + 16, (long long)ts);
    off += 16 + ((l + 7u) & ~7u);
  }
  assert_string_equal(got, want);
}

static void append_item(kvc_fx_t *f, fl_kkey_t k, int64_t ts, const char *item) {
  unsigned char buf[64];
  size_t n = list_item(buf, ts, item);
  assert_int_equal(f->kv.ops->append(f->kv.self, f->t, &k, buf, n), FL_OK);
}

static void ttl_layout_list_drops_expired_items(void **state) {
  kvc_fx_t *f = *state;
  assert_int_equal(f->kv.ops->set_table_ttl(f->kv.self, f->t, FL_KV_TTL_LIST, 10), FL_OK);
  unsigned char buf[256];
  size_t n = 0;
  /* written whole (put) */
  n += list_item(buf + n, 0, "old1");
  n += list_item(buf + n, 95, "new-item");
  n += list_item(buf + n, 5, "old2");
  assert_int_equal(kvc_put(f, f->t, kstr(0, "put", ""), buf, n), FL_OK);
  n = list_item(buf, 1, "dead");
  assert_int_equal(kvc_put(f, f->t, kstr(0, "dead", ""), buf, n), FL_OK);
  /* built by appends (RocksDB: merge operands) */
  fl_kkey_t ap = kstr(0, "appended", "");
  append_item(f, ap, 2, "a");
  append_item(f, ap, 96, "b");
  append_item(f, ap, 3, "c");
  append_item(f, ap, 97, "d");
  raw_list_is(f, ap, "a@2,b@96,c@3,d@97");
  /* RocksDB: the first compaction folds the operands into one value, the second
   * filters it. */
  f->kv.ops->set_time(f->kv.self, 100);
  settle(f);
  settle(f);
  raw_list_is(f, kstr(0, "put", ""), "new-item@95");
  raw_list_is(f, kstr(0, "dead", ""), "");
  raw_list_is(f, ap, "b@96,d@97");
  assert_int_equal(kvc_count(f, f->t), 2);
  /* appends after a filtered value go on from it */
  append_item(f, ap, 99, "e");
  raw_list_is(f, ap, "b@96,d@97,e@99");
  f->kv.ops->set_time(f->kv.self, 107);
  settle(f);
  settle(f);
  raw_list_is(f, ap, "e@99");
}

/* ---------------------------------------------------------------------------------- */
/* Optional: append_prepared (kv ops version 7)                                         */

/* A lookup that also loads a cell ahead finds and creates what value_ref_prepared does:
 * two tables side by side, one through each op, over keys of 8 bytes (the inline path)
 * and others, namespaces of 16 bytes and 2, cells present and absent, and ahead cells
 * of any key group and hash, present or not. */
static void value_ref_prepared_ahead_is_value_ref_prepared(void **state) {
  kvc_fx_t *f = *state;
  const fl_kv_ops_t *o = f->kv.ops;
  uint32_t t2;
  assert_int_equal(o->open_table(f->kv.self, "ahead-twin", &t2), FL_OK);
  const char *nss[2] = {"0123456789abcdef", "w1"};
  for (int w = 0; w < 2; w++) {
    fl_kv_ref_prep_t pa = {f->t, nss[w], strlen(nss[w]), 8, 0, 0};
    fl_kv_ref_prep_t pb = {t2, nss[w], strlen(nss[w]), 8, 0, 0};
    assert_int_equal(o->ref_prepare(f->kv.self, &pa), FL_OK);
    assert_int_equal(o->ref_prepare(f->kv.self, &pb), FL_OK);
    for (uint64_t i = 0; i < 3000; i++) {
      uint64_t id = (i * 2654435761u) % 700; /* repeats: found and created */
      char name[24];
      int nl = snprintf(name, sizeof name, "key-%llu", (unsigned long long)id);
      const void *key = i % 3 ? (const void *)&id : name;
      size_t kl = i % 3 ? 8 : (size_t)nl;
      uint16_t kg = (uint16_t)(id % 128);
      uint64_t h = fl_hash64(key, kl, 0);
      void *va = NULL, *vb = NULL;
      size_t la = 0, lb = 0;
      int ra = o->value_ref_prepared_ahead(f->kv.self, &pa, kg, key, kl, h, &va, &la,
                                           (uint16_t)(i * 7 % 128), i * 0x9e3779b97f4a7c15ull);
      int rb = o->value_ref_prepared(f->kv.self, &pb, kg, key, kl, h, &vb, &lb);
      assert_int_equal(ra, rb);
      assert_true(ra == 0 || ra == 1);
      assert_int_equal(la, lb);
      assert_int_equal(la, 8);
      if (ra == 0) { /* created zeroed: count the visits in both */
        assert_memory_equal(va, "\0\0\0\0\0\0\0\0", 8);
        assert_memory_equal(vb, "\0\0\0\0\0\0\0\0", 8);
      }
      uint64_t c;
      memcpy(&c, va, 8);
      assert_memory_equal(va, vb, 8);
      c++;
      memcpy(va, &c, 8);
      memcpy(vb, &c, 8);
    }
  }
  assert_int_equal(kvc_count(f, f->t), kvc_count(f, t2));
  assert_true(kvc_count(f, f->t) > 700);
  /* the cells are where value_ref and get put them: (kg, key, namespace) */
  for (uint64_t id = 0; id < 700; id++) {
    fl_kkey_t a = kk((uint16_t)(id % 128), &id, 8, nss[0], 16), b = a;
    const void *va = NULL, *vb = NULL;
    size_t la = 0, lb = 0;
    int ra = o->get(f->kv.self, f->t, &a, &va, &la);
    uint64_t ca = 0, cb = 0;
    if (ra == 1) memcpy(&ca, va, 8);
    assert_int_equal(o->get(f->kv.self, t2, &b, &vb, &lb), ra);
    if (ra == 1) memcpy(&cb, vb, 8);
    assert_int_equal(ca, cb);
  }
  fl_kkey_t one = kk(1, &(uint64_t){1}, 8, nss[0], 16);
  const void *v;
  size_t n;
  assert_int_equal(o->get(f->kv.self, f->t, &one, &v, &n), 1);
}

/* Appends through a prepared namespace make the cells appends make: to key group cells
 * (an empty key) and keyed ones, of namespaces of 16 bytes (a window) and 2, with items
 * of every length, as the cells outgrow their room; a map cell is refused alike. */
static void append_prepared_is_append(void **state) {
  kvc_fx_t *f = *state;
  const fl_kv_ops_t *o = f->kv.ops;
  const char *nss[2][2] = {{"0123456789abcdef", "fedcba9876543210"}, {"w1", "w2"}};
  const char *keys[3] = {"", "key", "a-longer-key-of-24-bytes"};
  uint8_t item[200];
  for (size_t i = 0; i < sizeof item; i++) item[i] = (uint8_t)(i * 5 + 3);
  for (int w = 0; w < 2; w++) {
    fl_kv_ref_prep_t p = {f->t, nss[w][0], strlen(nss[w][0]), 0, 0, 0};
    assert_int_equal(o->ref_prepare(f->kv.self, &p), FL_OK);
    for (int i = 0; i < 300; i++) {
      size_t len = i % 4 ? 16 : (size_t)(i * 11) % sizeof item;
      uint16_t kg = (uint16_t)(i % 7);
      const char *key = keys[i % 3];
      item[0] = (uint8_t)i;
      assert_int_equal(o->append_prepared(f->kv.self, &p, kg, key, strlen(key), item, len), FL_OK);
      fl_kkey_t b = kstr(kg, key, nss[w][1]);
      assert_int_equal(o->append(f->kv.self, f->t, &b, item, len), FL_OK);
    }
    for (uint16_t kg = 0; kg < 8; kg++) {
      for (int k = 0; k < 3; k++) {
        fl_kkey_t a = kstr(kg, keys[k], nss[w][0]), b = kstr(kg, keys[k], nss[w][1]);
        const void *va = NULL, *vb = NULL;
        size_t la = 0, lb = 0;
        int ra = o->get(f->kv.self, f->t, &a, &va, &la);
        /* (a copy: the next call may move the bytes) */
        uint8_t *copy = ra == 1 && la ? malloc(la) : NULL;
        if (copy) memcpy(copy, va, la);
        assert_int_equal(o->get(f->kv.self, f->t, &b, &vb, &lb), ra);
        assert_int_equal(la, lb);
        if (la) assert_memory_equal(copy, vb, la);
        free(copy);
        assert_int_equal(ra, kg < 7 ? 1 : 0);
      }
    }
  }
  fl_kkey_t m = kstr(2, "map", "0123456789abcdef");
  assert_int_equal(o->map_put(f->kv.self, f->t, &m, "u", 1, "v", 1), FL_OK);
  fl_kv_ref_prep_t p = {f->t, m.ns, m.ns_len, 0, 0, 0};
  assert_int_equal(o->ref_prepare(f->kv.self, &p), FL_OK);
  assert_int_equal(o->append_prepared(f->kv.self, &p, 2, "map", 3, "x", 1),
                   o->append(f->kv.self, f->t, &m, "x", 1));
}

/* ---------------------------------------------------------------------------------- */

/* What a case needs beyond the required calls. */
enum {
  NEEDS_RETAIN = 1,
  NEEDS_TTL = 2, /* set_table_ttl, set_time and a settle hook */
  NEEDS_TAKE = 4,
  NEEDS_APPEND_PREPARED = 8,
  NEEDS_REF_AHEAD = 16,
};

static const struct {
  struct CMUnitTest test;
  unsigned needs;
} cases[] = {
#define C(fn, needs) \
  { cmocka_unit_test_setup_teardown(fn, kvc_setup, kvc_teardown), needs }
    C(put_then_get_returns_the_bytes, 0),
    C(empty_key_and_empty_value_are_a_cell, 0),
    C(values_are_16_byte_aligned, 0),
    C(growing_put_keeps_the_value_and_other_cells, 0),
    C(put_accepts_its_own_value_as_source, 0),
    C(append_creates_then_extends, 0),
    C(del_removes_only_that_cell, 0),
    C(key_groups_and_namespaces_do_not_collide, 0),
    C(tables_are_independent_and_named, 0),
    C(list_tables_names_the_tables_in_id_order, 0),
    C(many_entries_survive_deletes_and_walks, 0),
    C(iterate_delete_removes_visited_entries, 0),
    C(iterate_stop_keeps_the_cursor_after_the_entry, 0),
    C(iterate_error_leaves_the_cursor_on_the_failing_cell, 0),
    C(iterate_interleaved_with_inserts_and_deletes_sees_no_entry_twice, 0),
    C(walks_of_several_tables_keep_their_own_cursors, 0),
    C(map_cells_hold_user_keys, 0),
    C(removing_the_last_user_key_removes_the_map_cell, 0),
    C(del_of_a_map_cell_removes_every_user_key, 0),
    C(map_iter_visits_every_user_key_and_deletes_on_request, 0),
    C(iterate_delete_on_a_map_table_removes_the_whole_cell, 0),
    C(value_and_map_calls_do_not_mix_in_one_table, 0),
    C(bad_arguments_are_rejected, 0),
    C(retain_key_groups_deletes_every_other_key_group, NEEDS_RETAIN),
    C(take_removes_the_cell_and_lends_its_value, NEEDS_TAKE),
    C(take_of_every_cell_empties_the_table, NEEDS_TAKE),
    C(take_of_a_map_cell_is_refused_and_changes_nothing, NEEDS_TAKE),
    C(append_prepared_is_append, NEEDS_APPEND_PREPARED),
    C(value_ref_prepared_ahead_is_value_ref_prepared, NEEDS_REF_AHEAD),
    C(ttl_layout_value_drops_expired_cells, NEEDS_TTL),
    C(ttl_layout_leaves_tables_without_ttl_alone, NEEDS_TTL),
    C(ttl_layout_map_drops_expired_entries, NEEDS_TTL),
    C(ttl_layout_list_drops_expired_items, NEEDS_TTL),
#undef C
};

int kvc_run_all(const kvc_backend_t *b, const struct CMUnitTest *own, size_t n_own) {
  int failed = kvc_run_kv_suite(b);
  failed += kvc_run_state_suite(b);
  return failed + _cmocka_run_group_tests(b->name, own, n_own, NULL, NULL);
}

int kvc_run_kv_suite(const kvc_backend_t *b) {
  const fl_kv_ops_t *ops = NULL;
  fl_kv_t probe;
  void *ctx;
  if (b->open(&probe, &ctx) != FL_OK) {
    fprintf(stderr, "kv contract: cannot open a %s store\n", b->name);
    return 1;
  }
  ops = probe.ops;
  unsigned has =
      (ops->retain_key_groups ? NEEDS_RETAIN : 0u) |
      (ops->set_table_ttl && ops->set_time && b->settle ? NEEDS_TTL : 0u) |
      (ops->version >= 5 && ops->take ? NEEDS_TAKE : 0u) |
      (ops->version >= 7 && ops->append_prepared && ops->ref_prepare ? NEEDS_APPEND_PREPARED : 0u) |
      (ops->version >= 8 && ops->value_ref_prepared_ahead && ops->ref_prepare ? NEEDS_REF_AHEAD
                                                                              : 0u);
  b->close(&probe, ctx);
  const size_t max = sizeof cases / sizeof cases[0];
  struct CMUnitTest tests[sizeof cases / sizeof cases[0]];
  size_t n = 0;
  for (size_t i = 0; i < max; i++) {
    if ((cases[i].needs & has) != cases[i].needs) continue;
    tests[n] = cases[i].test;
    tests[n++].initial_state = (void *)b;
  }
  char name[64];
  snprintf(name, sizeof name, "kv contract: %s", b->name);
  return _cmocka_run_group_tests(name, tests, n, NULL, NULL);
}
