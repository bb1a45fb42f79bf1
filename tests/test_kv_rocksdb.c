/*
 * The RocksDB state backend (src/state/rocksdb.c) through the kv.h vtable: the cases
 * of test_kv_hashmap.c that apply to any backend (cells, map cells, walks with a
 * cursor), then what only this one does: TTL in compaction for the three layouts
 * (checked on the raw store, not through the state layer, which cleans on access),
 * checkpoint and restore, retain_key_groups, list_tables after a restore, more state
 * than the block cache and write buffers hold, error reports, stores made on several
 * threads from one shared part, and the typed state layer (state.c) on a RocksDB store.
 *
 * Every case gets its own directory under $TMPDIR (or /tmp), removed afterwards.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <ftw.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "util/buf.h"
#include "flink.h"
#include "state/kv.h"
#include "state/rocksdb.h"
#include "state/state.h"

/* ---------------------------------------------------------------------------------- */
/* Directories                                                                          */

static int rm_cb(const char *path, const struct stat *sb, int type, struct FTW *ftw) {
  (void)sb;
  (void)ftw;
  return type == FTW_DP ? rmdir(path) : unlink(path);
}

static void rm_tree(const char *path) { nftw(path, rm_cb, 16, FTW_DEPTH | FTW_PHYS); }

static char *make_base(void) {
  const char *tmp = getenv("TMPDIR");
  char tmpl[512];
  snprintf(tmpl, sizeof tmpl, "%s/fl-kv-rocksdb-XXXXXX", tmp && *tmp ? tmp : "/tmp");
  char *d = mkdtemp(tmpl);
  return d ? strdup(d) : NULL;
}

static char *path_in(const char *base, const char *name) {
  size_t n = strlen(base) + strlen(name) + 2;
  char *p = malloc(n);
  assert_non_null(p);
  snprintf(p, n, "%s/%s", base, name);
  return p;
}

/* ---------------------------------------------------------------------------------- */
/* Fixture: one store in base/db, its table "t"                                         */

typedef struct fx {
  char *base;
  char *dir;
  fl_kv_rocksdb_shared_t *sh;
  fl_kv_t kv;
  uint32_t t;
} fx_t;

static int open_store(fx_t *f, const char *dir, const char *restore, fl_kv_t *kv) {
  char err[512] = "";
  int rc = fl_kv_rocksdb_new(f->sh, dir, restore, kv, err, sizeof err);
  if (rc) fprintf(stderr, "fl_kv_rocksdb_new: %s\n", err);
  return rc;
}

static int setup_with(void **state, const fl_kv_rocksdb_opts_t *o) {
  fx_t *f = calloc(1, sizeof *f);
  if (!f || !(f->base = make_base())) return -1;
  f->dir = path_in(f->base, "db");
  char err[256];
  if (fl_kv_rocksdb_shared_new(o, &f->sh, err, sizeof err) != FL_OK) return -1;
  if (open_store(f, f->dir, NULL, &f->kv) != FL_OK) return -1;
  if (f->kv.ops->open_table(f->kv.self, "t", &f->t) != FL_OK) return -1;
  *state = f;
  return 0;
}

static int setup(void **state) {
  /* Small buffers, so that the larger cases reach SST files and compactions. */
  fl_kv_rocksdb_opts_t o = {8u << 20, 1u << 20, 2};
  return setup_with(state, &o);
}

static int setup_small_memory(void **state) {
  fl_kv_rocksdb_opts_t o = {8u << 20, 4u << 20, 2};
  return setup_with(state, &o);
}

static int teardown(void **state) {
  fx_t *f = *state;
  fl_kv_destroy(&f->kv);
  fl_kv_rocksdb_shared_destroy(f->sh);
  rm_tree(f->base);
  free(f->dir);
  free(f->base);
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

static size_t count(fx_t *f, uint32_t t) { return f->kv.ops->count(f->kv.self, t); }

static void assert_value_in(fl_kv_t *kv, uint32_t t, fl_kkey_t k, const void *want, size_t wl) {
  const void *v = NULL;
  size_t n = 0;
  assert_int_equal(kv->ops->get(kv->self, t, &k, &v, &n), 1);
  assert_int_equal(n, wl);
  if (wl) assert_memory_equal(v, want, wl);
}

static void assert_value(fx_t *f, uint32_t t, fl_kkey_t k, const void *want, size_t wl) {
  assert_value_in(&f->kv, t, k, want, wl);
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
/* Value cells                                                                          */

static void put_then_get_returns_the_bytes(void **state) {
  fx_t *f = *state;
  assert_int_equal(put_str(f, kstr(1, "alice", ""), "42"), FL_OK);
  assert_str(f, kstr(1, "alice", ""), "42");
  assert_absent(f, f->t, kstr(1, "bob", ""));
  assert_int_equal(count(f, f->t), 1);
}

static void empty_key_and_empty_value_are_a_cell(void **state) {
  fx_t *f = *state;
  assert_int_equal(put(f, f->t, kk(0, NULL, 0, NULL, 0), NULL, 0), FL_OK);
  const void *v = NULL;
  size_t n = 99;
  assert_int_equal(get(f, f->t, kk(0, NULL, 0, NULL, 0), &v, &n), 1);
  assert_int_equal(n, 0);
  assert_non_null(v);
  assert_int_equal(count(f, f->t), 1);
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
  assert_int_equal(put(f, f->t, k, (const char *)v + 4, 6), FL_OK);
  assert_str(f, k, "456789");
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
  assert_int_equal(count(f, f->t), 1);
  /* a put replaces what the appends built; appends go on from it */
  assert_int_equal(put_str(f, k, "new"), FL_OK);
  assert_int_equal(f->kv.ops->append(f->kv.self, f->t, &k, "+1", 2), FL_OK);
  assert_str(f, k, "new+1");
  /* and they survive a flush and compaction (the merge operator folds them) */
  assert_int_equal(fl_kv_rocksdb_compact(&f->kv), FL_OK);
  assert_str(f, k, "new+1");
}

static void del_removes_only_that_cell(void **state) {
  fx_t *f = *state;
  assert_int_equal(put_str(f, kstr(0, "a", ""), "1"), FL_OK);
  assert_int_equal(put_str(f, kstr(0, "b", ""), "2"), FL_OK);
  fl_kkey_t a = kstr(0, "a", "");
  assert_int_equal(f->kv.ops->del(f->kv.self, f->t, &a), FL_OK);
  assert_absent(f, f->t, a);
  assert_str(f, kstr(0, "b", ""), "2");
  assert_int_equal(f->kv.ops->del(f->kv.self, f->t, &a), FL_OK);
  assert_int_equal(count(f, f->t), 1);
}

static void key_groups_and_namespaces_do_not_collide(void **state) {
  fx_t *f = *state;
  assert_int_equal(put_str(f, kstr(0, "k", ""), "kg0"), FL_OK);
  assert_int_equal(put_str(f, kstr(1, "k", ""), "kg1"), FL_OK);
  assert_int_equal(put_str(f, kstr(256, "k", ""), "kg256"), FL_OK);
  assert_int_equal(put_str(f, kstr(0, "k", "w1"), "kg0-w1"), FL_OK);
  assert_int_equal(put_str(f, kstr(0, "k", "w2"), "kg0-w2"), FL_OK);
  assert_int_equal(put_str(f, kstr(0, "ab", "c"), "ab|c"), FL_OK);
  assert_int_equal(put_str(f, kstr(0, "a", "bc"), "a|bc"), FL_OK);
  assert_int_equal(put_str(f, kstr(0, "abc", ""), "abc|"), FL_OK);
  /* bytes that look like the encoding's own lengths */
  assert_int_equal(put(f, f->t, kk(0, "\x01", 1, "\x00", 1), "x", 1), FL_OK);
  assert_int_equal(put(f, f->t, kk(0, "\x01\x01", 2, NULL, 0), "y", 1), FL_OK);
  assert_str(f, kstr(0, "k", ""), "kg0");
  assert_str(f, kstr(1, "k", ""), "kg1");
  assert_str(f, kstr(256, "k", ""), "kg256");
  assert_str(f, kstr(0, "k", "w1"), "kg0-w1");
  assert_str(f, kstr(0, "k", "w2"), "kg0-w2");
  assert_str(f, kstr(0, "ab", "c"), "ab|c");
  assert_str(f, kstr(0, "a", "bc"), "a|bc");
  assert_str(f, kstr(0, "abc", ""), "abc|");
  assert_value(f, f->t, kk(0, "\x01", 1, "\x00", 1), "x", 1);
  assert_value(f, f->t, kk(0, "\x01\x01", 2, NULL, 0), "y", 1);
  assert_absent(f, f->t, kstr(2, "k", ""));
  assert_absent(f, f->t, kk(0, "\x01", 1, NULL, 0));
  assert_int_equal(count(f, f->t), 10);
}

static void tables_are_independent_and_named(void **state) {
  fx_t *f = *state;
  uint32_t t2, again;
  assert_int_equal(f->kv.ops->open_table(f->kv.self, "other", &t2), FL_OK);
  assert_int_equal(t2, f->t + 1); /* dense, in order of first open */
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

/* Pointers from gets stay valid across later gets and writes of other cells (the
 * state layer holds two at once when it merges namespaces). */
static void borrowed_pointers_outlive_later_reads_and_writes(void **state) {
  fx_t *f = *state;
  assert_int_equal(put_str(f, kstr(0, "a", ""), "alpha"), FL_OK);
  assert_int_equal(put_str(f, kstr(0, "b", ""), "beta"), FL_OK);
  const void *a, *b, *c;
  size_t al, bl, cl;
  assert_int_equal(get(f, f->t, kstr(0, "a", ""), &a, &al), 1);
  assert_int_equal(get(f, f->t, kstr(0, "b", ""), &b, &bl), 1);
  assert_int_equal(get(f, f->t, kstr(0, "nope", ""), &c, &cl), 0);
  assert_int_equal(put_str(f, kstr(0, "c", ""), "gamma"), FL_OK);
  assert_int_equal(put_str(f, kstr(0, "b", ""), "BETA"), FL_OK);
  for (int i = 0; i < 8; i++) assert_int_equal(get(f, f->t, kstr(0, "c", ""), &c, &cl), 1);
  assert_int_equal(al, 5);
  assert_memory_equal(a, "alpha", 5);
  assert_int_equal(bl, 4);
  assert_memory_equal(b, "beta", 4); /* the value as it was read */
  assert_memory_equal(c, "gamma", 5);
}

/* ---------------------------------------------------------------------------------- */
/* Many entries and walks                                                               */

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

#define MANY 60000u /* several flushes of the 1 MiB write buffers */

static void many_entries_survive_deletes_and_walks(void **state) {
  fx_t *f = *state;
  for (uint32_t i = 0; i < MANY; i++) {
    uint32_t v = i * 3u;
    assert_int_equal(put(f, f->t, knum(&i), &v, 4), FL_OK);
  }
  assert_int_equal(count(f, f->t), MANY);
  for (uint32_t i = 0; i < MANY; i += 2) {
    fl_kkey_t k = knum(&i);
    assert_int_equal(f->kv.ops->del(f->kv.self, f->t, &k), FL_OK);
  }
  assert_int_equal(count(f, f->t), MANY / 2);
  for (uint32_t i = 0; i < MANY; i++) {
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
  seen_t s = {calloc(MANY, 1), 0, 0};
  assert_non_null(s.bits);
  uint64_t cursor = 0;
  size_t calls = 0;
  do {
    assert_int_equal(f->kv.ops->iterate(f->kv.self, f->t, &cursor, 4096, mark_cb, &s), FL_OK);
    calls++;
  } while (cursor != 0);
  assert_int_equal(s.visits, MANY / 2);
  assert_int_equal(s.dup, 0);
  for (uint32_t i = 0; i < MANY; i++) assert_int_equal(s.bits[i], i % 2);
  assert_true(calls >= MANY / 2 / 4096);
  free(s.bits);
}

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
  assert_int_equal(count(f, f->t), 500);
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
  visited = 100;
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
  (void)v;
  (void)n;
  memcpy(&a->keys[a->calls], k->key, 4);
  return ++a->calls == a->fail_on ? FL_EUSER : FL_KV_NEXT;
}

static void iterate_error_leaves_the_cursor_on_the_failing_cell(void **state) {
  fx_t *f = *state;
  for (uint32_t i = 0; i < 10; i++) assert_int_equal(put(f, f->t, knum(&i), &i, 4), FL_OK);
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
    for (int j = 0; j < 3; j++, next++)
      assert_int_equal(put(f, f->t, knum(&next), &(uint32_t){next * 3u}, 4), FL_OK);
    while (del < n && s.bits[del]) del += 2;
    if (del < n) {
      fl_kkey_t k = knum(&del);
      assert_int_equal(f->kv.ops->del(f->kv.self, f->t, &k), FL_OK);
      s.bits[del] = 2;
      del += 2;
    }
  } while (cursor != 0);
  assert_int_equal(s.dup, 0);
  for (uint32_t i = 0; i < n; i++) assert_true(s.bits[i] != 0);
  free(s.bits);
}

/* Two walks of two tables, interleaved, keep their own places; more paused walks
 * than the store remembers still end, each pass seeing no cell twice. */
static void walks_of_several_tables_keep_their_own_cursors(void **state) {
  fx_t *f = *state;
  uint32_t t2;
  assert_int_equal(f->kv.ops->open_table(f->kv.self, "t2", &t2), FL_OK);
  for (uint32_t i = 0; i < 300; i++) {
    assert_int_equal(put(f, f->t, knum(&i), &(uint32_t){i * 3u}, 4), FL_OK);
    assert_int_equal(put(f, t2, knum(&i), &(uint32_t){i * 3u}, 4), FL_OK);
  }
  seen_t s1 = {calloc(300, 1), 0, 0}, s2 = {calloc(300, 1), 0, 0};
  uint64_t c1 = 0, c2 = 0;
  do {
    if (c1 || s1.visits == 0)
      assert_int_equal(f->kv.ops->iterate(f->kv.self, f->t, &c1, 7, mark_cb, &s1), FL_OK);
    if (c2 || s2.visits == 0)
      assert_int_equal(f->kv.ops->iterate(f->kv.self, t2, &c2, 11, mark_cb, &s2), FL_OK);
  } while (c1 || c2);
  assert_int_equal(s1.visits, 300);
  assert_int_equal(s2.visits, 300);
  assert_int_equal(s1.dup + s2.dup, 0);
  free(s1.bits);
  free(s2.bits);

  /* 100 walks paused at once on one table, advanced in turn: each sees every cell
   * once. */
  enum {
    W = 100
  };
  uint64_t cur[W] = {0};
  seen_t sw[W];
  for (int w = 0; w < W; w++) sw[w] = (seen_t){calloc(300, 1), 0, 0};
  for (int round = 0; round < 8; round++)
    for (int w = 0; w < W; w++)
      if (round == 0 || cur[w])
        assert_int_equal(f->kv.ops->iterate(f->kv.self, f->t, &cur[w], 50, mark_cb, &sw[w]), FL_OK);
  for (int w = 0; w < W; w++) {
    assert_int_equal(cur[w], 0);
    assert_int_equal(sw[w].visits, 300);
    assert_int_equal(sw[w].dup, 0);
    free(sw[w].bits);
  }
}

static int first_key_cb(const fl_kkey_t *k, const void *v, size_t n, void *arg) {
  (void)v;
  (void)n;
  uint32_t *first = arg;
  if (*first == UINT32_MAX) memcpy(first, k->key, 4);
  return FL_KV_NEXT;
}

/* More paused walks than the store keeps: the least recently used is forgotten and
 * its cursor starts a new pass. */
static void a_forgotten_cursor_starts_a_new_pass(void **state) {
  fx_t *f = *state;
  for (uint32_t i = 0; i < 10; i++) assert_int_equal(put(f, f->t, knum(&i), &i, 4), FL_OK);
  uint32_t first_of_table = UINT32_MAX;
  uint64_t c = 0;
  assert_int_equal(f->kv.ops->iterate(f->kv.self, f->t, &c, 100, first_key_cb, &first_of_table),
                   FL_OK);
  enum {
    W = 1025
  };
  uint64_t *cur = calloc(W, sizeof *cur);
  assert_non_null(cur);
  uint32_t dummy = UINT32_MAX;
  for (int w = 0; w < W; w++)
    assert_int_equal(f->kv.ops->iterate(f->kv.self, f->t, &cur[w], 1, first_key_cb, &dummy), FL_OK);
  for (int w = 0; w < W; w++) assert_int_not_equal(cur[w], 0);
  uint32_t first = UINT32_MAX;
  assert_int_equal(f->kv.ops->iterate(f->kv.self, f->t, &cur[0], 1, first_key_cb, &first), FL_OK);
  assert_int_equal(first, first_of_table); /* walk 0 was forgotten: from the start */
  first = UINT32_MAX;
  assert_int_equal(f->kv.ops->iterate(f->kv.self, f->t, &cur[W - 1], 1, first_key_cb, &first),
                   FL_OK);
  assert_int_not_equal(first, first_of_table); /* the newest one goes on */
  free(cur);
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

static int map_table_cb(const fl_kkey_t *k, const void *v, size_t n, void *arg) {
  (void)k;
  assert_null(v);
  assert_int_equal(n, 0);
  ++*(size_t *)arg;
  return FL_KV_NEXT;
}

static void map_cells_hold_user_keys(void **state) {
  fx_t *f = *state;
  fl_kkey_t a = kstr(5, "a", ""), b = kstr(5, "b", "");
  assert_int_equal(mput(f, a, "x", "1"), FL_OK);
  assert_int_equal(mput(f, a, "y", "2"), FL_OK);
  assert_int_equal(mput(f, b, "x", "3"), FL_OK);
  assert_int_equal(mput(f, a, "x", "11"), FL_OK);
  assert_int_equal(mput(f, a, "", "empty"), FL_OK); /* an empty user key is a key */
  assert_mval(f, a, "x", "11");
  assert_mval(f, a, "y", "2");
  assert_mval(f, a, "", "empty");
  assert_mval(f, b, "x", "3");
  assert_mval(f, b, "y", NULL);
  assert_mval(f, b, "", NULL);
  assert_mval(f, kstr(5, "c", ""), "x", NULL);
  assert_int_equal(count(f, f->t), 2);
  assert_int_equal(f->kv.ops->map_del(f->kv.self, f->t, &a, "x", 1), FL_OK);
  assert_mval(f, a, "x", NULL);
  assert_mval(f, a, "y", "2");
  size_t cells = 0;
  uint64_t cursor = 0;
  assert_int_equal(f->kv.ops->iterate(f->kv.self, f->t, &cursor, 100, map_table_cb, &cells), FL_OK);
  assert_int_equal(cells, 2);
  assert_int_equal(cursor, 0);
}

static void removing_the_last_user_key_removes_the_map_cell(void **state) {
  fx_t *f = *state;
  fl_kkey_t a = kstr(0, "a", "ns");
  assert_int_equal(mput(f, a, "x", "1"), FL_OK);
  assert_int_equal(count(f, f->t), 1);
  assert_int_equal(f->kv.ops->map_del(f->kv.self, f->t, &a, "nope", 4), FL_OK);
  assert_int_equal(count(f, f->t), 1);
  assert_int_equal(f->kv.ops->map_del(f->kv.self, f->t, &a, "x", 1), FL_OK);
  assert_int_equal(count(f, f->t), 0);
}

static void del_of_a_map_cell_removes_every_user_key(void **state) {
  fx_t *f = *state;
  fl_kkey_t a = kstr(0, "a", ""), ab = kstr(0, "a", "b"), b = kstr(0, "b", "");
  for (int i = 0; i < 100; i++) {
    char uk[16];
    snprintf(uk, sizeof uk, "u%d", i);
    assert_int_equal(mput(f, a, uk, "v"), FL_OK);
    assert_int_equal(mput(f, ab, uk, "w"), FL_OK);
  }
  assert_int_equal(mput(f, b, "u1", "z"), FL_OK);
  assert_int_equal(f->kv.ops->del(f->kv.self, f->t, &a), FL_OK);
  assert_int_equal(count(f, f->t), 2);
  assert_mval(f, a, "u1", NULL);
  assert_mval(f, ab, "u1", "w"); /* the neighbouring cells stay */
  assert_mval(f, ab, "u99", "w");
  assert_mval(f, b, "u1", "z");
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
  assert_int_equal((uintptr_t)v % 16, 0);
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
  fl_kkey_t a = kstr(1, "big", ""), other = kstr(1, "bigger", "");
  assert_int_equal(mput(f, other, "x", "y"), FL_OK);
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
  assert_int_equal(count(f, f->t), 1); /* "bigger" */
  assert_mval(f, other, "x", "y");
}

static int del_cell_cb(const fl_kkey_t *k, const void *v, size_t n, void *arg) {
  (void)v;
  (void)n;
  ++*(size_t *)arg;
  return k->key_len == 1 && ((const char *)k->key)[0] == 'b' ? FL_KV_DELETE : FL_KV_NEXT;
}

static void iterate_delete_on_a_map_table_removes_the_whole_cell(void **state) {
  fx_t *f = *state;
  const char *keys[] = {"a", "b", "c"};
  for (int i = 0; i < 3; i++)
    for (int j = 0; j < 50; j++) {
      char uk[8];
      snprintf(uk, sizeof uk, "%d", j);
      assert_int_equal(mput(f, kstr(0, keys[i], ""), uk, "v"), FL_OK);
    }
  size_t visited = 0;
  uint64_t cursor = 0;
  do {
    assert_int_equal(f->kv.ops->iterate(f->kv.self, f->t, &cursor, 1, del_cell_cb, &visited),
                     FL_OK);
  } while (cursor != 0);
  assert_int_equal(visited, 3);
  assert_int_equal(count(f, f->t), 2);
  assert_mval(f, kstr(0, "b", ""), "7", NULL);
  assert_mval(f, kstr(0, "c", ""), "7", "v");
}

/* The contract: a table holds value cells or map cells. This backend checks it per
 * table (the hashmap per cell). */
static void value_and_map_calls_do_not_mix_in_one_table(void **state) {
  fx_t *f = *state;
  uint32_t mt;
  assert_int_equal(f->kv.ops->open_table(f->kv.self, "maps", &mt), FL_OK);
  fl_kkey_t v = kstr(0, "v", ""), m = kstr(0, "m", "");
  assert_int_equal(put_str(f, v, "1"), FL_OK);
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
  assert_int_equal(f->kv.ops->set_table_ttl(f->kv.self, f->t, 7, 10), FL_EINVAL);
  assert_int_equal(f->kv.ops->set_table_ttl(f->kv.self, f->t, FL_KV_TTL_VALUE, 0), FL_EINVAL);
  assert_int_equal(f->kv.ops->set_table_ttl(f->kv.self, 99, FL_KV_TTL_VALUE, 10), FL_EINVAL);
  fl_kv_t kv;
  char err[128];
  assert_int_equal(fl_kv_rocksdb_new(NULL, f->dir, NULL, &kv, err, sizeof err), FL_EINVAL);
  assert_int_equal(fl_kv_rocksdb_new(f->sh, NULL, NULL, &kv, err, sizeof err), FL_EINVAL);
  fl_kv_rocksdb_opts_t o = {0, 0, -1};
  fl_kv_rocksdb_shared_t *sh = (void *)1;
  assert_int_equal(fl_kv_rocksdb_shared_new(&o, &sh, err, sizeof err), FL_EINVAL);
  assert_null(sh);
  assert_non_null(strstr(err, "max_write_buffers"));
  assert_string_equal(fl_kv_rocksdb_errmsg(&f->kv), "");
}

/* ---------------------------------------------------------------------------------- */
/* TTL in compaction                                                                    */

static void put_ts_value(fx_t *f, uint32_t t, fl_kkey_t k, int64_t ts, const char *v) {
  char buf[64];
  memcpy(buf, &ts, 8);
  memcpy(buf + 8, v, strlen(v));
  assert_int_equal(put(f, t, k, buf, 8 + strlen(v)), FL_OK);
}

static void ttl_compaction_drops_expired_values(void **state) {
  fx_t *f = *state;
  assert_int_equal(f->kv.ops->set_table_ttl(f->kv.self, f->t, FL_KV_TTL_VALUE, 10), FL_OK);
  for (int i = 0; i < 100; i++) {
    char key[16];
    snprintf(key, sizeof key, "k%d", i);
    put_ts_value(f, f->t, kstr(0, key, ""), i % 2 ? 100 : 50, "v"); /* odd: live at 100 */
  }
  /* No clock yet: a compaction drops nothing. */
  assert_int_equal(fl_kv_rocksdb_compact(&f->kv), FL_OK);
  assert_int_equal(count(f, f->t), 100);
  f->kv.ops->set_time(f->kv.self, 100);
  assert_int_equal(fl_kv_rocksdb_compact(&f->kv), FL_OK);
  assert_int_equal(count(f, f->t), 50);
  for (int i = 0; i < 100; i++) {
    char key[16];
    snprintf(key, sizeof key, "k%d", i);
    const void *v;
    size_t n;
    assert_int_equal(get(f, f->t, kstr(0, key, ""), &v, &n), i % 2);
  }
  /* ts + ttl <= now is expired: 100 + 10 at 110 */
  f->kv.ops->set_time(f->kv.self, 109);
  assert_int_equal(fl_kv_rocksdb_compact(&f->kv), FL_OK);
  assert_int_equal(count(f, f->t), 50);
  f->kv.ops->set_time(f->kv.self, 110);
  assert_int_equal(fl_kv_rocksdb_compact(&f->kv), FL_OK);
  assert_int_equal(count(f, f->t), 0);
}

static void ttl_compaction_without_ttl_keeps_everything(void **state) {
  fx_t *f = *state;
  uint32_t other;
  assert_int_equal(f->kv.ops->open_table(f->kv.self, "no-ttl", &other), FL_OK);
  assert_int_equal(f->kv.ops->set_table_ttl(f->kv.self, f->t, FL_KV_TTL_VALUE, 10), FL_OK);
  put_ts_value(f, other, kstr(0, "k", ""), 0, "v");
  put_ts_value(f, f->t, kstr(0, "k", ""), 0, "v");
  f->kv.ops->set_time(f->kv.self, 1000);
  assert_int_equal(fl_kv_rocksdb_compact(&f->kv), FL_OK);
  assert_int_equal(count(f, other), 1);
  assert_int_equal(count(f, f->t), 0);
}

static void ttl_compaction_drops_expired_map_entries(void **state) {
  fx_t *f = *state;
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
  assert_int_equal(count(f, f->t), 2);
  f->kv.ops->set_time(f->kv.self, 100);
  assert_int_equal(fl_kv_rocksdb_compact(&f->kv), FL_OK);
  assert_int_equal(count(f, f->t), 1);
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
static void raw_list_is(fx_t *f, fl_kkey_t k, const char *want) {
  const void *v;
  size_t n;
  char got[256] = "";
  int rc = get(f, f->t, k, &v, &n);
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

static void ttl_compaction_rewrites_lists_without_expired_items(void **state) {
  fx_t *f = *state;
  assert_int_equal(f->kv.ops->set_table_ttl(f->kv.self, f->t, FL_KV_TTL_LIST, 10), FL_OK);
  unsigned char buf[256];
  size_t n = 0;
  /* written whole (put) */
  n += list_item(buf + n, 0, "old1");
  n += list_item(buf + n, 95, "new-item");
  n += list_item(buf + n, 5, "old2");
  assert_int_equal(put(f, f->t, kstr(0, "put", ""), buf, n), FL_OK);
  n = list_item(buf, 1, "dead");
  assert_int_equal(put(f, f->t, kstr(0, "dead", ""), buf, n), FL_OK);
  /* built by appends (merge operands) */
  fl_kkey_t ap = kstr(0, "appended", "");
  const int64_t ts[] = {2, 96, 3, 97};
  const char *items[] = {"a", "b", "c", "d"};
  for (int i = 0; i < 4; i++) {
    n = list_item(buf, ts[i], items[i]);
    assert_int_equal(f->kv.ops->append(f->kv.self, f->t, &ap, buf, n), FL_OK);
  }
  raw_list_is(f, ap, "a@2,b@96,c@3,d@97");
  f->kv.ops->set_time(f->kv.self, 100);
  /* The first compaction folds the operands into one value, the second filters it. */
  assert_int_equal(fl_kv_rocksdb_compact(&f->kv), FL_OK);
  assert_int_equal(fl_kv_rocksdb_compact(&f->kv), FL_OK);
  raw_list_is(f, kstr(0, "put", ""), "new-item@95");
  raw_list_is(f, kstr(0, "dead", ""), "");
  raw_list_is(f, ap, "b@96,d@97");
  assert_int_equal(count(f, f->t), 2);
  /* appends after a filtered value go on from it */
  n = list_item(buf, 99, "e");
  assert_int_equal(f->kv.ops->append(f->kv.self, f->t, &ap, buf, n), FL_OK);
  raw_list_is(f, ap, "b@96,d@97,e@99");
  f->kv.ops->set_time(f->kv.self, 107);
  assert_int_equal(fl_kv_rocksdb_compact(&f->kv), FL_OK);
  assert_int_equal(fl_kv_rocksdb_compact(&f->kv), FL_OK);
  raw_list_is(f, ap, "e@99");
}

/* ---------------------------------------------------------------------------------- */
/* Checkpoints, restores, key groups, table lists                                       */

typedef struct names {
  char buf[512];
  int n, stop_at;
} names_t;

static int name_cb(const char *name, void *arg) {
  names_t *s = arg;
  size_t l = strlen(s->buf);
  snprintf(s->buf + l, sizeof s->buf - l, "%s%s", l ? "," : "", name);
  return ++s->n == s->stop_at ? 1 : 0;
}

/* "name size" lines of a directory's files, sorted. */
static void dir_listing(const char *dir, char *out, size_t out_size) {
  struct dirent **ents;
  int n = scandir(dir, &ents, NULL, alphasort);
  assert_true(n > 0);
  out[0] = '\0';
  for (int i = 0; i < n; i++) {
    if (ents[i]->d_name[0] != '.') {
      char *p = path_in(dir, ents[i]->d_name);
      struct stat st;
      assert_int_equal(stat(p, &st), 0);
      size_t l = strlen(out);
      snprintf(out + l, out_size - l, "%s %lld %lld\n", ents[i]->d_name, (long long)st.st_size,
               (long long)st.st_mtime);
      free(p);
    }
    free(ents[i]);
  }
  free(ents);
}

/* Whether some SST file of dir is the same inode as one of ref (a hard link). */
static bool shares_an_sst(const char *dir, const char *ref) {
  DIR *d = opendir(dir);
  assert_non_null(d);
  struct dirent *e;
  bool found = false;
  while (!found && (e = readdir(d)) != NULL) {
    size_t l = strlen(e->d_name);
    if (l < 4 || strcmp(e->d_name + l - 4, ".sst") != 0) continue;
    char *a = path_in(dir, e->d_name), *b = path_in(ref, e->d_name);
    struct stat sa, sb;
    found =
        stat(a, &sa) == 0 && stat(b, &sb) == 0 && sa.st_ino == sb.st_ino && sa.st_dev == sb.st_dev;
    free(a);
    free(b);
  }
  closedir(d);
  return found;
}

static void fill_for_checkpoint(fx_t *f, uint32_t *tv, uint32_t *tm, uint32_t *tl) {
  fl_kv_t *kv = &f->kv;
  assert_int_equal(kv->ops->open_table(kv->self, "values", tv), FL_OK);
  assert_int_equal(kv->ops->open_table(kv->self, "maps", tm), FL_OK);
  assert_int_equal(kv->ops->open_table(kv->self, "lists", tl), FL_OK);
  for (uint32_t i = 0; i < 2000; i++) {
    uint32_t v = i * 7u;
    assert_int_equal(put(f, *tv, knum(&i), &v, 4), FL_OK);
  }
  fl_kkey_t m = kstr(9, "m", "ns");
  for (uint32_t i = 0; i < 100; i++)
    assert_int_equal(kv->ops->map_put(kv->self, *tm, &m, &i, 4, "x", 1), FL_OK);
  fl_kkey_t l = kstr(9, "l", "");
  for (int i = 0; i < 10; i++) assert_int_equal(kv->ops->append(kv->self, *tl, &l, "ab", 2), FL_OK);
}

static void checkpoint_and_restore_round_trip(void **state) {
  fx_t *f = *state;
  uint32_t tv, tm, tl;
  fill_for_checkpoint(f, &tv, &tm, &tl);
  char *cp = path_in(f->base, "cp");
  assert_int_equal(f->kv.ops->checkpoint(f->kv.self, cp), FL_OK);
  char before[4096], after[4096];
  dir_listing(cp, before, sizeof before);
  /* Later writes are not in the copy. */
  uint32_t late = 5000;
  assert_int_equal(put(f, tv, knum(&late), &late, 4), FL_OK);
  uint32_t zero = 0;
  fl_kkey_t kz = knum(&zero);
  assert_int_equal(f->kv.ops->del(f->kv.self, tv, &kz), FL_OK);

  char *rdir = path_in(f->base, "restored");
  for (int round = 0; round < 2; round++) {
    fl_kv_t r;
    assert_int_equal(open_store(f, rdir, cp, &r), FL_OK);
    uint32_t rv, rm, rl;
    assert_int_equal(r.ops->open_table(r.self, "lists", &rl), FL_OK);
    assert_int_equal(r.ops->open_table(r.self, "values", &rv), FL_OK);
    assert_int_equal(r.ops->open_table(r.self, "maps", &rm), FL_OK);
    assert_int_equal(rl, 0); /* ids in order of first open in this process */
    assert_int_equal(rv, 1);
    assert_int_equal(rm, 2);
    assert_int_equal(r.ops->count(r.self, rv), 2000);
    assert_int_equal(r.ops->count(r.self, rm), 1);
    assert_int_equal(r.ops->count(r.self, rl), 1);
    for (uint32_t i = 0; i < 2000; i++) {
      uint32_t v = i * 7u;
      assert_value_in(&r, rv, knum(&i), &v, 4);
    }
    const void *p;
    size_t n;
    fl_kkey_t k = knum(&late);
    assert_int_equal(r.ops->get(r.self, rv, &k, &p, &n), 0);
    fl_kkey_t m = kstr(9, "m", "ns");
    for (uint32_t i = 0; i < 100; i++) {
      assert_int_equal(r.ops->map_get(r.self, rm, &m, &i, 4, &p, &n), 1);
      assert_int_equal(n, 1);
    }
    assert_value_in(&r, rl, kstr(9, "l", ""), "abababababababababab", 20);
    /* The restored kinds hold: a map table refuses value calls. */
    assert_int_equal(r.ops->put(r.self, rm, &m, "1", 1), FL_EINVAL);
    /* Changing the restored store leaves the checkpoint as it was. */
    for (uint32_t i = 0; i < 2000; i++) {
      fl_kkey_t kd = knum(&i);
      assert_int_equal(r.ops->del(r.self, rv, &kd), FL_OK);
    }
    assert_int_equal(fl_kv_rocksdb_compact(&r), FL_OK);
    assert_int_equal(r.ops->count(r.self, rv), 0);
    fl_kv_destroy(&r);
  }
  dir_listing(cp, after, sizeof after);
  assert_string_equal(before, after);
  free(rdir);
  free(cp);
}

static void restore_hard_links_sst_files(void **state) {
  fx_t *f = *state;
  uint32_t tv, tm, tl;
  fill_for_checkpoint(f, &tv, &tm, &tl);
  char *cp = path_in(f->base, "cp"), *rdir = path_in(f->base, "restored");
  assert_int_equal(f->kv.ops->checkpoint(f->kv.self, cp), FL_OK);
  fl_kv_t r;
  assert_int_equal(open_store(f, rdir, cp, &r), FL_OK);
  assert_true(shares_an_sst(rdir, cp));
  fl_kv_destroy(&r);
  free(rdir);
  free(cp);
}

static void list_tables_after_restore_names_every_table(void **state) {
  fx_t *f = *state;
  uint32_t tv, tm, tl, te;
  fill_for_checkpoint(f, &tv, &tm, &tl);
  assert_int_equal(f->kv.ops->open_table(f->kv.self, "empty/with:odd name", &te), FL_OK);
  names_t s = {"", 0, 0};
  assert_int_equal(f->kv.ops->list_tables(f->kv.self, name_cb, &s), FL_OK);
  assert_string_equal(s.buf, "t,values,maps,lists,empty/with:odd name");
  char *cp = path_in(f->base, "cp"), *rdir = path_in(f->base, "restored");
  assert_int_equal(f->kv.ops->checkpoint(f->kv.self, cp), FL_OK);
  fl_kv_t r;
  assert_int_equal(open_store(f, rdir, cp, &r), FL_OK);
  /* Before any open_table: every table of the copy, in some order. */
  names_t a = {"", 0, 0};
  assert_int_equal(r.ops->list_tables(r.self, name_cb, &a), FL_OK);
  assert_int_equal(a.n, 5);
  const char *want[] = {"t", "values", "maps", "lists", "empty/with:odd name"};
  for (int i = 0; i < 5; i++) {
    char *p = strstr(a.buf, want[i]);
    assert_non_null(p);
  }
  assert_null(strstr(a.buf, "default"));
  /* Opened ones first, in id order; a new table after them. */
  uint32_t id;
  assert_int_equal(r.ops->open_table(r.self, "maps", &id), FL_OK);
  assert_int_equal(id, 0);
  assert_int_equal(r.ops->open_table(r.self, "fresh", &id), FL_OK);
  assert_int_equal(id, 1);
  names_t b = {"", 0, 0};
  assert_int_equal(r.ops->list_tables(r.self, name_cb, &b), FL_OK);
  assert_int_equal(b.n, 6);
  assert_memory_equal(b.buf, "maps,fresh,", 11);
  /* cb stops the enumeration */
  names_t c = {"", 0, 2};
  assert_int_equal(r.ops->list_tables(r.self, name_cb, &c), FL_OK);
  assert_int_equal(c.n, 2);
  fl_kv_destroy(&r);
  free(rdir);
  free(cp);
}

static void hashmap_lists_its_tables_in_id_order(void **state) {
  (void)state;
  fl_kv_t h;
  uint32_t id;
  assert_int_equal(fl_kv_hashmap_new(&h), FL_OK);
  names_t s = {"", 0, 0};
  assert_int_equal(h.ops->list_tables(h.self, name_cb, &s), FL_OK);
  assert_string_equal(s.buf, "");
  assert_int_equal(h.ops->open_table(h.self, "b", &id), FL_OK);
  assert_int_equal(h.ops->open_table(h.self, "a", &id), FL_OK);
  assert_int_equal(h.ops->open_table(h.self, "b", &id), FL_OK);
  assert_int_equal(h.ops->list_tables(h.self, name_cb, &s), FL_OK);
  assert_string_equal(s.buf, "b,a");
  names_t c = {"", 0, 1};
  assert_int_equal(h.ops->list_tables(h.self, name_cb, &c), FL_OK);
  assert_string_equal(c.buf, "b");
  assert_int_equal(h.ops->list_tables(h.self, NULL, NULL), FL_EINVAL);
  fl_kv_destroy(&h);
}

static void a_new_store_starts_empty_in_a_used_directory(void **state) {
  fx_t *f = *state;
  assert_int_equal(put_str(f, kstr(0, "k", ""), "v"), FL_OK);
  fl_kv_destroy(&f->kv);
  char *junk = path_in(f->dir, "junk");
  FILE *j = fopen(junk, "w");
  assert_non_null(j);
  fclose(j);
  assert_int_equal(open_store(f, f->dir, NULL, &f->kv), FL_OK);
  assert_int_equal(access(junk, F_OK), -1);
  names_t s = {"", 0, 0};
  assert_int_equal(f->kv.ops->list_tables(f->kv.self, name_cb, &s), FL_OK);
  assert_string_equal(s.buf, "");
  assert_int_equal(f->kv.ops->open_table(f->kv.self, "t", &f->t), FL_OK);
  assert_absent(f, f->t, kstr(0, "k", ""));
  free(junk);
}

typedef struct kg_walk {
  uint32_t kgs[16];
  int n;
} kg_walk_t;

static int kg_cb(const fl_kkey_t *k, const void *v, size_t n, void *arg) {
  kg_walk_t *w = arg;
  (void)v;
  (void)n;
  w->kgs[w->n++] = k->kg;
  return FL_KV_NEXT;
}

static void walk_kgs(fl_kv_t *kv, uint32_t t, kg_walk_t *w) {
  uint64_t c = 0;
  w->n = 0;
  do {
    assert_int_equal(kv->ops->iterate(kv->self, t, &c, 100, kg_cb, w), FL_OK);
  } while (c);
}

static void retain_key_groups_deletes_every_other_key_group(void **state) {
  fx_t *f = *state;
  uint32_t tm;
  assert_int_equal(f->kv.ops->open_table(f->kv.self, "maps", &tm), FL_OK);
  const uint16_t kgs[] = {0, 1, 4, 5, 6, 7, 255, 256, 0xfffe, 0xffff};
  for (size_t i = 0; i < sizeof kgs / sizeof kgs[0]; i++) {
    fl_kkey_t k = kstr(kgs[i], "key", "ns");
    assert_int_equal(put_str(f, k, "v"), FL_OK);
    assert_int_equal(f->kv.ops->map_put(f->kv.self, tm, &k, "u", 1, "v", 1), FL_OK);
  }
  assert_int_equal(f->kv.ops->retain_key_groups(f->kv.self, 4, 3), FL_OK);
  kg_walk_t w;
  walk_kgs(&f->kv, f->t, &w);
  assert_int_equal(w.n, 3);
  assert_int_equal(w.kgs[0], 4);
  assert_int_equal(w.kgs[1], 5);
  assert_int_equal(w.kgs[2], 6);
  walk_kgs(&f->kv, tm, &w);
  assert_int_equal(w.n, 3);
  assert_str(f, kstr(5, "key", "ns"), "v");
  assert_absent(f, f->t, kstr(7, "key", "ns"));
  assert_absent(f, f->t, kstr(0xffff, "key", "ns"));
  /* A range reaching past the last key group keeps the top; an empty one deletes all. */
  for (size_t i = 0; i < sizeof kgs / sizeof kgs[0]; i++)
    assert_int_equal(put_str(f, kstr(kgs[i], "key", "ns"), "v"), FL_OK);
  assert_int_equal(f->kv.ops->retain_key_groups(f->kv.self, 256, 70000), FL_OK);
  walk_kgs(&f->kv, f->t, &w);
  assert_int_equal(w.n, 3);
  assert_int_equal(w.kgs[0], 256);
  assert_int_equal(w.kgs[2], 0xffff);
  assert_int_equal(f->kv.ops->retain_key_groups(f->kv.self, 0, 0), FL_OK);
  assert_int_equal(count(f, f->t), 0);
  assert_int_equal(count(f, tm), 0);
  /* the store goes on working after range deletions */
  assert_int_equal(put_str(f, kstr(5, "key", "ns"), "again"), FL_OK);
  assert_str(f, kstr(5, "key", "ns"), "again");
}

/* ---------------------------------------------------------------------------------- */
/* Larger than memory                                                                   */

static uint64_t mix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

/* Incompressible bytes, a function of (key, position). */
static void fill_value(uint32_t key, unsigned char *p, size_t n) {
  for (size_t i = 0; i < n; i += 8) {
    uint64_t x = mix64((uint64_t)key << 32 | i);
    memcpy(p + i, &x, n - i < 8 ? n - i : 8);
  }
}

static long long sst_bytes(const char *dir) {
  DIR *d = opendir(dir);
  assert_non_null(d);
  struct dirent *e;
  long long total = 0;
  while ((e = readdir(d)) != NULL) {
    size_t l = strlen(e->d_name);
    if (l < 4 || strcmp(e->d_name + l - 4, ".sst") != 0) continue;
    char *p = path_in(dir, e->d_name);
    struct stat st;
    if (stat(p, &st) == 0) total += st.st_size;
    free(p);
  }
  closedir(d);
  return total;
}

#define BIG_VALUE 4096u
#define BIG_KEYS 16384u /* 64 MiB of values: 8 MiB cache, 2 x 4 MiB write buffers */

static void more_state_than_cache_and_write_buffers_reads_back(void **state) {
  fx_t *f = *state;
  unsigned char *v = malloc(BIG_VALUE), *want = malloc(BIG_VALUE);
  assert_non_null(v);
  assert_non_null(want);
  for (uint32_t i = 0; i < BIG_KEYS; i++) {
    fill_value(i, v, BIG_VALUE);
    assert_int_equal(put(f, f->t, knum(&i), v, BIG_VALUE), FL_OK);
  }
  /* Most of it lives in table files, not in memory. */
  assert_true(sst_bytes(f->dir) > (long long)(8u << 20) + 2 * (4u << 20));
  /* In a scattered order, so that the cache keeps missing. */
  for (uint32_t j = 0; j < BIG_KEYS; j++) {
    uint32_t i = (uint32_t)((j * 7919u) % BIG_KEYS);
    const void *p;
    size_t n;
    assert_int_equal(get(f, f->t, knum(&i), &p, &n), 1);
    assert_int_equal(n, BIG_VALUE);
    fill_value(i, want, BIG_VALUE);
    assert_memory_equal(p, want, BIG_VALUE);
  }
  assert_int_equal(count(f, f->t), BIG_KEYS);
  free(v);
  free(want);
}

/* ---------------------------------------------------------------------------------- */
/* Errors                                                                               */

static void a_directory_that_cannot_be_created_is_reported(void **state) {
  fx_t *f = *state;
  char *file = path_in(f->base, "plain-file");
  FILE *fp = fopen(file, "w");
  assert_non_null(fp);
  fclose(fp);
  char *dir = path_in(file, "db");
  fl_kv_t kv = {(const fl_kv_ops_t *)1, (void *)1};
  char err[512] = "";
  assert_int_equal(fl_kv_rocksdb_new(f->sh, dir, NULL, &kv, err, sizeof err), FL_EIO);
  assert_null(kv.ops);
  assert_non_null(strstr(err, file));
  /* A restore from a directory that does not exist */
  char *missing = path_in(f->base, "no-such-checkpoint"), *d2 = path_in(f->base, "d2");
  err[0] = '\0';
  assert_int_equal(fl_kv_rocksdb_new(f->sh, d2, missing, &kv, err, sizeof err), FL_EIO);
  assert_non_null(strstr(err, missing));
  /* ... or from inside the directory, which is emptied first */
  char *inside = path_in(f->dir, "cp");
  assert_int_equal(f->kv.ops->checkpoint(f->kv.self, inside), FL_OK);
  err[0] = '\0';
  assert_int_equal(fl_kv_rocksdb_new(f->sh, f->dir, inside, &kv, err, sizeof err), FL_EINVAL);
  assert_non_null(strstr(err, inside));
  /* ... or from a directory that holds no store */
  char *empty = path_in(f->base, "empty");
  assert_int_equal(mkdir(empty, 0755), 0);
  fp = fopen(file, "w");
  fclose(fp);
  err[0] = '\0';
  assert_true(fl_kv_rocksdb_new(f->sh, d2, empty, &kv, err, sizeof err) < 0);
  assert_non_null(strstr(err, empty));
  free(empty);
  free(inside);
  free(missing);
  free(d2);
  free(dir);
  free(file);
}

static void a_failed_checkpoint_names_the_store_and_the_target(void **state) {
  fx_t *f = *state;
  assert_int_equal(put_str(f, kstr(0, "k", ""), "v"), FL_OK);
  char *cp = path_in(f->base, "cp");
  assert_int_equal(f->kv.ops->checkpoint(f->kv.self, cp), FL_OK);
  /* The target exists now: RocksDB refuses to write into it. */
  assert_int_equal(f->kv.ops->checkpoint(f->kv.self, cp), FL_EIO);
  const char *msg = fl_kv_rocksdb_errmsg(&f->kv);
  assert_non_null(strstr(msg, f->dir));
  assert_non_null(strstr(msg, cp));
  assert_int_equal(f->kv.ops->checkpoint(f->kv.self, NULL), FL_EINVAL);
  free(cp);
}

/* ---------------------------------------------------------------------------------- */
/* Several workers, one shared part                                                     */

typedef struct worker {
  fx_t *f;
  int idx;
  int rc;
} worker_t;

static void *worker_main(void *arg) {
  worker_t *w = arg;
  char name[32];
  snprintf(name, sizeof name, "worker-%d", w->idx);
  char *dir = path_in(w->f->base, name);
  fl_kv_t kv;
  char err[256];
  uint32_t t;
  w->rc = fl_kv_rocksdb_new(w->f->sh, dir, NULL, &kv, err, sizeof err);
  if (w->rc == FL_OK) w->rc = kv.ops->open_table(kv.self, "t", &t);
  for (uint32_t i = 0; i < 20000 && w->rc == FL_OK; i++) {
    uint32_t v = i ^ (uint32_t)w->idx;
    fl_kkey_t k = knum(&i);
    w->rc = kv.ops->put(kv.self, t, &k, &v, 4);
  }
  kv.ops->set_time(kv.self, 1);
  for (uint32_t i = 0; i < 20000 && w->rc == FL_OK; i++) {
    const void *p;
    size_t n;
    uint32_t got;
    fl_kkey_t k = knum(&i);
    if (kv.ops->get(kv.self, t, &k, &p, &n) != 1 || n != 4) {
      w->rc = FL_EIO;
      break;
    }
    memcpy(&got, p, 4);
    if (got != (i ^ (uint32_t)w->idx)) w->rc = FL_EIO;
  }
  if (w->rc == FL_OK) w->rc = fl_kv_rocksdb_compact(&kv);
  fl_kv_destroy(&kv);
  free(dir);
  return NULL;
}

static void stores_on_several_threads_share_one_shared_part(void **state) {
  fx_t *f = *state;
  enum {
    N = 3
  };
  pthread_t th[N];
  worker_t w[N];
  for (int i = 0; i < N; i++) {
    w[i] = (worker_t){f, i, -100};
    assert_int_equal(pthread_create(&th[i], NULL, worker_main, &w[i]), 0);
  }
  for (int i = 0; i < N; i++) {
    pthread_join(th[i], NULL);
    assert_int_equal(w[i].rc, FL_OK);
  }
}

/* ---------------------------------------------------------------------------------- */
/* The typed state layer on a RocksDB store (helpers from test_state.c)                 */

typedef struct sfx {
  fx_t base;
  struct fl_state_desc desc;
  fl_state_scratch_t *s;
  fl_ttl_cleanup_t cl;
  fl_sref_t r;
  int calls, inits;
} sfx_t;

static const char KEY[] = "user-1";

static int state_setup(void **state) {
  void *fx;
  if (setup(&fx)) return -1;
  sfx_t *f = calloc(1, sizeof *f);
  if (!f) return -1;
  f->base = *(fx_t *)fx;
  free(fx);
  f->s = fl_state_scratch_new();
  if (!f->s) return -1;
  f->desc.name = "s";
  f->desc.opaque = f;
  f->r.kv = &f->base.kv;
  f->r.desc = &f->desc;
  f->r.k.kg = 3;
  f->r.k.key = KEY;
  f->r.k.key_len = strlen(KEY);
  f->r.k.ns = "";
  f->r.k.ns_len = 0;
  f->r.cleanup = &f->cl;
  f->r.scratch = f->s;
  f->r.table = f->base.t;
  *state = f;
  return 0;
}

static int state_teardown(void **state) {
  sfx_t *f = *state;
  fl_state_scratch_destroy(f->s);
  fx_t *b = malloc(sizeof *b);
  *b = f->base;
  void *p = b;
  free(f);
  return teardown(&p);
}

static size_t cells(sfx_t *f) { return f->base.kv.ops->count(f->base.kv.self, f->r.table); }

static void at_key(sfx_t *f, const char *key) {
  f->r.k.key = key;
  f->r.k.key_len = strlen(key);
}

static void at_ns(sfx_t *f, const char *ns) {
  f->r.k.ns = ns;
  f->r.k.ns_len = strlen(ns);
}

static void with_ttl(sfx_t *f, int64_t ttl_ms, fl_ttl_update_t u, fl_ttl_visibility_t v,
                     int layout) {
  fl_ttl_config_t t = {FL_TTL_CONFIG_VERSION, ttl_ms, u, v, 0, 0};
  assert_int_equal(fl_state_desc_set_ttl(&f->desc, &t), FL_OK);
  assert_int_equal(f->base.kv.ops->set_table_ttl(f->base.kv.self, f->r.table, layout, ttl_ms),
                   FL_OK);
}

static int sum_reduce(fl_context_t *ctx, const void *a, size_t al, const void *b, size_t bl,
                      fl_buf_t *out, void *opaque) {
  (void)ctx;
  assert_int_equal(al, 8);
  assert_int_equal(bl, 8);
  int64_t x, y;
  memcpy(&x, a, 8);
  memcpy(&y, b, 8);
  x += y;
  ((sfx_t *)opaque)->calls++;
  return fl_buf_set(out, &x, 8);
}

static int concat_reduce(fl_context_t *ctx, const void *a, size_t al, const void *b, size_t bl,
                         fl_buf_t *out, void *opaque) {
  (void)ctx;
  ((sfx_t *)opaque)->calls++;
  int rc = fl_buf_set(out, a, al);
  return rc ? rc : fl_buf_append(out, b, bl);
}

typedef struct avg {
  int64_t sum;
  int64_t count;
} avg_t;

static void avg_init(void *acc, void *opaque) {
  avg_t *a = acc;
  assert_int_equal((uintptr_t)acc % 8, 0);
  a->sum = 0;
  a->count = 0;
  ((sfx_t *)opaque)->inits++;
}

static int avg_add(fl_context_t *ctx, void *acc, const fl_record_t *in, void *opaque) {
  (void)ctx;
  avg_t *a = acc;
  int64_t v;
  memcpy(&v, in->value, 8);
  a->sum += v;
  a->count++;
  ((sfx_t *)opaque)->calls++;
  return 0;
}

static void avg_merge(void *acc, const void *other, void *opaque) {
  avg_t *a = acc;
  const avg_t *o = other;
  (void)opaque;
  a->sum += o->sum;
  a->count += o->count;
}

static void value_is(sfx_t *f, const char *want) {
  const void *v = NULL;
  size_t n = 0;
  int rc = fl_st_value_get(&f->r, &v, &n);
  if (!want) {
    assert_int_equal(rc, 0);
    return;
  }
  assert_int_equal(rc, 1);
  assert_int_equal(n, strlen(want));
  assert_memory_equal(v, want, n);
}

static void list_is(sfx_t *f, const char *want) {
  const fl_bytes_t *items = NULL;
  size_t n = 99;
  int rc = fl_st_list_get(&f->r, &items, &n);
  assert_true(rc >= 0);
  char got[512] = "";
  size_t gl = 0;
  for (size_t i = 0; i < n; i++) {
    assert_int_equal((uintptr_t)items[i].data % 8, 0);
    if (i) got[gl++] = ',';
    memcpy(got + gl, items[i].data, items[i].len);
    gl += items[i].len;
  }
  got[gl] = 0;
  assert_string_equal(got, want);
  assert_int_equal(rc, n > 0 ? 1 : 0);
}

static void map_is(sfx_t *f, const char *uk, const char *want) {
  const void *v = NULL;
  size_t n = 0;
  int rc = fl_st_map_get(&f->r, uk, strlen(uk), &v, &n);
  if (!want) {
    assert_int_equal(rc, 0);
    return;
  }
  assert_int_equal(rc, 1);
  assert_int_equal(n, strlen(want));
  assert_memory_equal(v, want, n);
}

static void list_add(sfx_t *f, const char *item) {
  assert_int_equal(fl_st_list_add(&f->r, item, strlen(item)), FL_OK);
}

static void map_put(sfx_t *f, const char *uk, const char *v) {
  assert_int_equal(fl_st_map_put(&f->r, uk, strlen(uk), v, strlen(v)), FL_OK);
}

typedef struct collect {
  char buf[256];
  int n;
} collect_t;

static int collect_cb(const void *uk, size_t ukl, const void *v, size_t vl, void *arg) {
  collect_t *c = arg;
  size_t l = strlen(c->buf);
  snprintf(c->buf + l, sizeof c->buf - l, "%s%.*s=%.*s", l ? "," : "", (int)ukl, (const char *)uk,
           (int)vl, (const char *)v);
  c->n++;
  return 0;
}

/* RocksDB walks a map cell in user-key order, so no sorting is needed here. */
static void entries_are(sfx_t *f, const char *want) {
  collect_t c = {"", 0};
  assert_int_equal(fl_st_map_foreach(&f->r, collect_cb, &c), 0);
  assert_string_equal(c.buf, want);
}

static void state_value_with_and_without_ttl(void **state) {
  sfx_t *f = *state;
  f->desc.kind = FL_STATE_VALUE;
  value_is(f, NULL);
  assert_int_equal(fl_st_value_set(&f->r, "hello", 5), FL_OK);
  value_is(f, "hello");
  const void *v;
  size_t n;
  assert_int_equal(fl_st_value_get(&f->r, &v, &n), 1);
  assert_int_equal(fl_st_value_set(&f->r, (const char *)v + 1, 3), FL_OK); /* own bytes */
  value_is(f, "ell");
  at_key(f, "user-2");
  value_is(f, NULL);
  at_key(f, KEY);
  assert_int_equal(fl_st_clear(&f->r), FL_OK);
  value_is(f, NULL);

  with_ttl(f, 10, FL_TTL_ON_READ_AND_WRITE, FL_TTL_NEVER_RETURN_EXPIRED, FL_KV_TTL_VALUE);
  f->r.now = 100;
  assert_int_equal(fl_st_value_set(&f->r, "v", 1), FL_OK);
  f->r.now = 109;
  value_is(f, "v"); /* refreshed: until 119 */
  f->r.now = 118;
  value_is(f, "v");
  f->r.now = 128;
  value_is(f, NULL);
  assert_int_equal(cells(f), 0); /* removed when read */
}

static void state_list_with_and_without_ttl(void **state) {
  sfx_t *f = *state;
  f->desc.kind = FL_STATE_LIST;
  list_is(f, "");
  list_add(f, "a");
  list_add(f, "");
  list_add(f, "ccc");
  list_add(f, "0123456789abcdefg");
  list_is(f, "a,,ccc,0123456789abcdefg");
  fl_bytes_t items[] = {{"x", 1}, {"yy", 2}};
  assert_int_equal(fl_st_list_update(&f->r, items, 2), FL_OK);
  list_is(f, "x,yy");
  const fl_bytes_t *got;
  size_t n;
  assert_int_equal(fl_st_list_get(&f->r, &got, &n), 1);
  fl_bytes_t rev[2] = {got[1], got[0]};
  assert_int_equal(fl_st_list_update(&f->r, rev, 2), FL_OK);
  list_is(f, "yy,x");
  assert_int_equal(fl_st_list_update(&f->r, NULL, 0), FL_OK);
  list_is(f, "");
  assert_int_equal(cells(f), 0);

  with_ttl(f, 10, FL_TTL_ON_CREATE_AND_WRITE, FL_TTL_NEVER_RETURN_EXPIRED, FL_KV_TTL_LIST);
  f->r.now = 0;
  list_add(f, "a");
  f->r.now = 5;
  list_add(f, "b");
  f->r.now = 9;
  list_is(f, "a,b");
  f->r.now = 10;
  list_is(f, "b");
  f->r.now = 15;
  list_is(f, "");
  assert_int_equal(cells(f), 0);
}

static void state_merge_namespace_of_lists_and_reductions(void **state) {
  sfx_t *f = *state;
  f->desc.kind = FL_STATE_LIST;
  at_ns(f, "w2");
  list_add(f, "b");
  list_add(f, "c");
  at_ns(f, "w1");
  list_add(f, "a");
  assert_int_equal(fl_st_merge_namespace(&f->r, "w2", 2), FL_OK);
  list_is(f, "a,b,c");
  at_ns(f, "w2");
  list_is(f, "");
  assert_int_equal(cells(f), 1);

  /* Reducing state in another table: merge_value holds two borrowed values at once. */
  uint32_t t2;
  assert_int_equal(f->base.kv.ops->open_table(f->base.kv.self, "reduced", &t2), FL_OK);
  f->r.table = t2;
  f->desc.kind = FL_STATE_REDUCING;
  f->desc.reduce = concat_reduce;
  at_ns(f, "w2");
  assert_int_equal(fl_st_reducing_add(&f->r, "src", 3), FL_OK);
  at_ns(f, "w1");
  assert_int_equal(fl_st_reducing_add(&f->r, "dst", 3), FL_OK);
  assert_int_equal(fl_st_merge_namespace(&f->r, "w2", 2), FL_OK);
  const void *v;
  size_t n;
  assert_int_equal(fl_st_reducing_get(&f->r, &v, &n), 1);
  assert_int_equal(n, 6);
  assert_memory_equal(v, "dstsrc", 6);
  assert_int_equal(cells(f), 1);
}

static void state_map_with_and_without_ttl(void **state) {
  sfx_t *f = *state;
  f->desc.kind = FL_STATE_MAP;
  map_is(f, "a", NULL);
  map_put(f, "a", "1");
  map_put(f, "b", "2");
  map_put(f, "a", "11");
  map_is(f, "a", "11");
  entries_are(f, "a=11,b=2");
  assert_int_equal(fl_st_map_remove(&f->r, "a", 1), FL_OK);
  entries_are(f, "b=2");
  assert_int_equal(fl_st_clear(&f->r), FL_OK);
  entries_are(f, "");
  assert_int_equal(cells(f), 0);

  with_ttl(f, 10, FL_TTL_ON_READ_AND_WRITE, FL_TTL_RETURN_EXPIRED_IF_NOT_CLEANED_UP, FL_KV_TTL_MAP);
  f->r.now = 0;
  map_put(f, "k1", "v1");
  map_put(f, "k2", "v2");
  f->r.now = 9;
  map_is(f, "k1", "v1"); /* k1 until 19 */
  f->r.now = 12;
  entries_are(f, "k1=v1,k2=v2"); /* k2 expired: returned, removed; k1 until 22 */
  entries_are(f, "k1=v1");
  f->r.now = 31;
  map_is(f, "k1", "v1"); /* expired, returned once */
  map_is(f, "k1", NULL);
  assert_int_equal(cells(f), 0);
}

static void state_reducing_and_aggregating(void **state) {
  sfx_t *f = *state;
  f->desc.kind = FL_STATE_REDUCING;
  f->desc.reduce = sum_reduce;
  int64_t x = 5;
  assert_int_equal(fl_st_reducing_add(&f->r, &x, 8), FL_OK);
  x = 7;
  assert_int_equal(fl_st_reducing_add(&f->r, &x, 8), FL_OK);
  const void *v;
  size_t n;
  int64_t got;
  assert_int_equal(fl_st_reducing_get(&f->r, &v, &n), 1);
  memcpy(&got, v, 8);
  assert_int_equal(got, 12);
  assert_int_equal(f->calls, 1);

  uint32_t t2;
  assert_int_equal(f->base.kv.ops->open_table(f->base.kv.self, "agg", &t2), FL_OK);
  f->r.table = t2;
  f->desc.kind = FL_STATE_AGGREGATING;
  f->desc.agg = (fl_aggregate_fn_t){
      FL_AGGREGATE_FN_VERSION, sizeof(avg_t), avg_init, avg_add, avg_merge, NULL, NULL};
  with_ttl(f, 10, FL_TTL_ON_CREATE_AND_WRITE, FL_TTL_NEVER_RETURN_EXPIRED, FL_KV_TTL_VALUE);
  const int64_t vals[] = {4, 6};
  f->r.now = 0;
  for (int i = 0; i < 2; i++) {
    fl_record_t in = {NULL, 0, &vals[i], 8, FL_TS_NONE};
    assert_int_equal(fl_st_aggregating_add(&f->r, &in), FL_OK);
  }
  const void *acc;
  f->r.now = 9;
  assert_int_equal(fl_st_aggregating_get(&f->r, &acc), 1);
  assert_int_equal((uintptr_t)acc % 8, 0); /* a struct cast must work */
  const avg_t *a = acc;
  assert_int_equal(a->sum, 10);
  assert_int_equal(a->count, 2);
  assert_int_equal(f->inits, 1);
  /* Expired: the compaction filter drops it without a read. */
  f->base.kv.ops->set_time(f->base.kv.self, 10);
  assert_int_equal(fl_kv_rocksdb_compact(&f->base.kv), FL_OK);
  assert_int_equal(cells(f), 0);
}

static void state_ttl_cleanup_walks_the_table(void **state) {
  sfx_t *f = *state;
  f->desc.kind = FL_STATE_VALUE;
  with_ttl(f, 10, FL_TTL_ON_CREATE_AND_WRITE, FL_TTL_NEVER_RETURN_EXPIRED, FL_KV_TTL_VALUE);
  f->r.now = 0;
  char keys[20][8];
  for (int i = 0; i < 20; i++) {
    snprintf(keys[i], sizeof keys[i], "k%02d", i);
    at_key(f, keys[i]);
    assert_int_equal(fl_st_value_set(&f->r, "v", 1), FL_OK);
  }
  f->r.now = 10;
  assert_int_equal(fl_st_ttl_cleanup_step(&f->r, 5), FL_OK);
  assert_int_equal(cells(f), 15);
  assert_int_not_equal(f->cl.cursor, 0);
  assert_int_equal(fl_st_ttl_cleanup_step(&f->r, 5), FL_OK);
  assert_int_equal(cells(f), 10);
  assert_int_equal(fl_st_ttl_cleanup_step(&f->r, 100), FL_OK);
  assert_int_equal(cells(f), 0);
  assert_int_equal(f->cl.cursor, 0);

  /* Lists: the cleanup rewrites the cell between walk steps. */
  uint32_t t2;
  assert_int_equal(f->base.kv.ops->open_table(f->base.kv.self, "lists", &t2), FL_OK);
  f->r.table = t2;
  f->desc.kind = FL_STATE_LIST;
  f->r.now = 0;
  at_key(f, "mixed");
  list_add(f, "old1");
  at_key(f, "dead");
  list_add(f, "old");
  f->r.now = 8;
  at_key(f, "mixed");
  list_add(f, "new");
  f->r.now = 10;
  f->cl.cursor = 0;
  assert_int_equal(fl_st_ttl_cleanup_step(&f->r, 10), FL_OK);
  assert_int_equal(cells(f), 1);
  const void *v;
  size_t n;
  assert_int_equal(f->base.kv.ops->get(f->base.kv.self, t2, &f->r.k, &v, &n), 1);
  assert_int_equal(n, 24); /* one item left, rewritten by the cleanup */
  list_is(f, "new");
}

int main(void) {
  const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
#define S(fn) cmocka_unit_test_setup_teardown(fn, state_setup, state_teardown)
      T(put_then_get_returns_the_bytes),
      T(empty_key_and_empty_value_are_a_cell),
      T(values_are_16_byte_aligned),
      T(growing_put_keeps_the_value_and_other_cells),
      T(put_accepts_its_own_value_as_source),
      T(append_creates_then_extends),
      T(del_removes_only_that_cell),
      T(key_groups_and_namespaces_do_not_collide),
      T(tables_are_independent_and_named),
      T(borrowed_pointers_outlive_later_reads_and_writes),
      T(many_entries_survive_deletes_and_walks),
      T(iterate_delete_removes_visited_entries),
      T(iterate_stop_keeps_the_cursor_after_the_entry),
      T(iterate_error_leaves_the_cursor_on_the_failing_cell),
      T(iterate_interleaved_with_inserts_and_deletes_sees_no_entry_twice),
      T(walks_of_several_tables_keep_their_own_cursors),
      T(a_forgotten_cursor_starts_a_new_pass),
      T(map_cells_hold_user_keys),
      T(removing_the_last_user_key_removes_the_map_cell),
      T(del_of_a_map_cell_removes_every_user_key),
      T(map_iter_visits_every_user_key_and_deletes_on_request),
      T(iterate_delete_on_a_map_table_removes_the_whole_cell),
      T(value_and_map_calls_do_not_mix_in_one_table),
      T(bad_arguments_are_rejected),
      T(ttl_compaction_drops_expired_values),
      T(ttl_compaction_without_ttl_keeps_everything),
      T(ttl_compaction_drops_expired_map_entries),
      T(ttl_compaction_rewrites_lists_without_expired_items),
      T(checkpoint_and_restore_round_trip),
      T(restore_hard_links_sst_files),
      T(list_tables_after_restore_names_every_table),
      cmocka_unit_test(hashmap_lists_its_tables_in_id_order),
      T(a_new_store_starts_empty_in_a_used_directory),
      T(retain_key_groups_deletes_every_other_key_group),
      cmocka_unit_test_setup_teardown(more_state_than_cache_and_write_buffers_reads_back,
                                      setup_small_memory, teardown),
      T(a_directory_that_cannot_be_created_is_reported),
      T(a_failed_checkpoint_names_the_store_and_the_target),
      T(stores_on_several_threads_share_one_shared_part),
      S(state_value_with_and_without_ttl),
      S(state_list_with_and_without_ttl),
      S(state_merge_namespace_of_lists_and_reductions),
      S(state_map_with_and_without_ttl),
      S(state_reducing_and_aggregating),
      S(state_ttl_cleanup_walks_the_table),
#undef S
#undef T
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
