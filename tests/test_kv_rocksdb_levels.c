/*
 * The RocksDB backend with its cells spread over many table files and levels: map
 * cells scan right, present and absent, and value cells read right, from the files and
 * the memtable, also after a checkpoint and restore; every walk meets every cell when
 * it resumes at a map entry key or at the successor of a value cell. That last one is
 * what a prefix extractor would break if any walk were left in prefix mode (its seeks
 * would skip the files whose prefix filter lacks the key: src/state/rocksdb.c), and
 * what fails then.
 *
 * Every store gets its own directory under $TMPDIR (or /tmp), removed afterwards.
 */
#define _GNU_SOURCE
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
#include "run_util.h"
#include "state/kv.h"
#include "rocksdb_dir.h"
#include "state/rocksdb.h"

enum {
  N_KEYS = 3000, /* map cells, and as many value cells */
  N_UKEYS = 16,  /* user keys per map cell, one per round */
  ABSENT = 1000000
};

typedef struct fx {
  char *base;
  fl_kv_rocksdb_shared_t *sh;
  fl_kv_t kv;
  uint32_t tm, tv; /* map table, value table */
} fx_t;

/* A shared part with 1 MiB write buffers (many table files). */
static void new_shared(fx_t *f) {
  char err[256] = "";
  fl_kv_rocksdb_opts_t o = {8u << 20, 1u << 20, 2, FL_KV_RDB_SNAPPY, 1, 0};
  if (f->sh) fl_kv_rocksdb_shared_destroy(f->sh);
  assert_int_equal(fl_kv_rocksdb_shared_new(&o, &f->sh, err, sizeof err), FL_OK);
}

static void open_at(fx_t *f, const char *name, const char *restore) {
  char err[512] = "";
  char *dir = rocks_path_in(f->base, name);
  int rc = fl_kv_rocksdb_new(f->sh, dir, restore, &f->kv, err, sizeof err);
  if (rc) fprintf(stderr, "fl_kv_rocksdb_new: %s\n", err);
  assert_int_equal(rc, FL_OK);
  free(dir);
  assert_int_equal(f->kv.ops->open_table(f->kv.self, "m", &f->tm), FL_OK);
  assert_int_equal(f->kv.ops->open_table(f->kv.self, "v", &f->tv), FL_OK);
}

static int setup(void **state) {
  fx_t *f = calloc(1, sizeof *f);
  assert_non_null(f);
  f->base = make_tmpdir("fl-kv-rocksdb-prefix");
  assert_non_null(f->base);
  *state = f;
  return 0;
}

static int teardown(void **state) {
  fx_t *f = *state;
  fl_kv_destroy(&f->kv);
  fl_kv_rocksdb_shared_destroy(f->sh);
  rm_tree(f->base);
  free(f->base);
  free(f);
  return 0;
}

/* Cell i: key "k<i>", empty namespace, key group i % 128. */
typedef struct kbuf {
  char s[24];
  fl_kkey_t k;
} kbuf_t;

static const fl_kkey_t *key_of(kbuf_t *b, uint32_t i) {
  int n = snprintf(b->s, sizeof b->s, "k%u", i);
  b->k = (fl_kkey_t){(uint16_t)(i % 128), b->s, (size_t)n, NULL, 0};
  return &b->k;
}

/* Round u writes user key u of every map cell and the value u of every value cell, then
 * flushes; after round 5 and round 11 everything is compacted to the last level, so a
 * cell's entries end up in the bottom level, in level-0 files and, with the last
 * round left in the memtable, in memory. */
static void fill(fx_t *f, bool last_round_in_memtable) {
  kbuf_t b;
  for (uint32_t u = 0; u < N_UKEYS; u++) {
    for (uint32_t i = 0; i < N_KEYS; i++) {
      uint64_t v = (uint64_t)i << 8 | u;
      assert_int_equal(
          f->kv.ops->map_put(f->kv.self, f->tm, key_of(&b, i), &u, sizeof u, &v, sizeof v), FL_OK);
      assert_int_equal(f->kv.ops->put(f->kv.self, f->tv, key_of(&b, i), &v, sizeof v), FL_OK);
    }
    if (u == 5 || u == 11) assert_int_equal(fl_kv_rocksdb_compact(&f->kv), FL_OK);
    if (u + 1 < N_UKEYS || !last_round_in_memtable)
      assert_int_equal(fl_kv_rocksdb_flush(&f->kv), FL_OK);
  }
}

typedef struct seen {
  uint32_t cell;
  uint32_t mask; /* user keys met */
  int bad;
} seen_t;

static int entry_cb(const void *uk, size_t ukl, const void *v, size_t vl, void *arg) {
  seen_t *s = arg;
  uint32_t u;
  uint64_t x;
  if (ukl != sizeof u || vl != sizeof x) {
    s->bad = 1;
    return 0;
  }
  memcpy(&u, uk, sizeof u);
  memcpy(&x, v, sizeof x);
  if (u >= N_UKEYS || x != ((uint64_t)s->cell << 8 | u) || (s->mask & 1u << u)) s->bad = 1;
  s->mask |= 1u << u;
  return 0;
}

/* Every map cell has its 16 entries, cells never written none; every value cell has
 * its last value, gets and map gets of absent ones find nothing. */
static void expect_all(fx_t *f) {
  kbuf_t b;
  for (uint32_t i = 0; i < N_KEYS; i++) {
    seen_t s = {i, 0, 0};
    assert_int_equal(f->kv.ops->map_iter(f->kv.self, f->tm, key_of(&b, i), entry_cb, &s), FL_OK);
    assert_int_equal(s.bad, 0);
    assert_int_equal(s.mask, (1u << N_UKEYS) - 1);
    seen_t a = {ABSENT + i, 0, 0};
    assert_int_equal(f->kv.ops->map_iter(f->kv.self, f->tm, key_of(&b, ABSENT + i), entry_cb, &a),
                     FL_OK);
    assert_int_equal(a.mask, 0);
    const void *v;
    size_t n;
    uint64_t x, want = (uint64_t)i << 8 | (N_UKEYS - 1);
    assert_int_equal(f->kv.ops->get(f->kv.self, f->tv, key_of(&b, i), &v, &n), 1);
    assert_int_equal(n, sizeof x);
    memcpy(&x, v, sizeof x);
    assert_true(x == want);
    uint32_t u = i % N_UKEYS;
    assert_int_equal(f->kv.ops->map_get(f->kv.self, f->tm, key_of(&b, i), &u, sizeof u, &v, &n), 1);
    memcpy(&x, v, sizeof x);
    assert_true(x == ((uint64_t)i << 8 | u));
    assert_int_equal(f->kv.ops->get(f->kv.self, f->tv, key_of(&b, ABSENT + i), &v, &n), 0);
    assert_int_equal(
        f->kv.ops->map_get(f->kv.self, f->tm, key_of(&b, ABSENT + i), &u, sizeof u, &v, &n), 0);
  }
  assert_int_equal(f->kv.ops->count(f->kv.self, f->tm), N_KEYS);
  assert_int_equal(f->kv.ops->count(f->kv.self, f->tv), N_KEYS);
}

static void map_cells_over_files_and_levels_scan_right(void **state) {
  fx_t *f = *state;
  new_shared(f);
  open_at(f, "db", NULL);
  fill(f, true); /* the last round (user key 15, the values' last) from the memtable */
  expect_all(f);
  assert_int_equal(fl_kv_rocksdb_flush(&f->kv), FL_OK);
  expect_all(f);
}

/* A walk callback that counts cells, and fails once at the `fail_at`-th map cell's
 * visit, so that the walk pauses on that cell: its cursor is then the cell's first
 * entry key, a key in the prefix extractor's domain. */
typedef struct walk {
  uint32_t cells, fail_at;
  unsigned char *met; /* per cell index, how often */
} walk_t;

static int walk_cb(const fl_kkey_t *k, const void *v, size_t n, void *arg) {
  walk_t *w = arg;
  (void)v;
  (void)n;
  char s[24];
  if (k->key_len < 2 || k->key_len >= sizeof s) return FL_EIO;
  memcpy(s, k->key, k->key_len);
  s[k->key_len] = '\0';
  unsigned long i = strtoul(s + 1, NULL, 10);
  if (i >= N_KEYS) return FL_EIO;
  if (w->fail_at && w->cells + 1 == w->fail_at) {
    w->fail_at = 0;
    return FL_EUSER; /* the walk pauses on this cell, unvisited */
  }
  w->cells++;
  w->met[i]++;
  return FL_KV_NEXT;
}

/* Walks of table t in steps of `step` cells, failing once in every pass at cell
 * fail_every (0: never): every cell exactly once. */
static void walk_all(fx_t *f, uint32_t t, size_t step, uint32_t fail_every) {
  walk_t w = {0, fail_every, calloc(N_KEYS, 1)};
  assert_non_null(w.met);
  uint64_t cur = 0;
  int calls = 0;
  do {
    int rc = f->kv.ops->iterate(f->kv.self, t, &cur, step, walk_cb, &w);
    if (rc == FL_EUSER) {
      assert_int_not_equal(cur, 0); /* paused on the cell */
      w.fail_at = w.cells + 1 + fail_every;
      continue;
    }
    assert_int_equal(rc, FL_OK);
    assert_true(++calls < 4 * N_KEYS);
  } while (cur != 0);
  assert_int_equal(w.cells, N_KEYS);
  for (uint32_t i = 0; i < N_KEYS; i++) assert_int_equal(w.met[i], 1);
  free(w.met);
}

/* A walk resumes at a seek: for a value cell to its successor P | 0x00, for a paused
 * map cell to its first entry key P | 0x00 | ukey, both map entry keys. With prefix
 * filters of map cells, a seek in prefix mode would skip every file whose filter lacks
 * that prefix (for the value table: all of them) and the walk would end early. */
static void walks_resumed_at_map_entry_keys_meet_every_cell(void **state) {
  fx_t *f = *state;
  new_shared(f);
  open_at(f, "db", NULL);
  fill(f, true);
  walk_all(f, f->tv, 7, 0);
  walk_all(f, f->tm, 7, 0);
  walk_all(f, f->tm, 1000, 97); /* paused on a map cell's entry key, resumed there */
  walk_all(f, f->tv, 1, 0);
  walk_all(f, f->tm, 1, 0);
}

/* A checkpoint of such a store, restored: the same cells, and more rounds on top. */
static void a_restored_store_reads_right(void **state) {
  fx_t *f = *state;
  new_shared(f);
  open_at(f, "a", NULL);
  fill(f, false);
  char *cp = rocks_path_in(f->base, "cp");
  assert_int_equal(f->kv.ops->checkpoint(f->kv.self, cp), FL_OK);
  fl_kv_destroy(&f->kv);
  open_at(f, "b", cp);
  expect_all(f);
  walk_all(f, f->tv, 7, 0);
  walk_all(f, f->tm, 1000, 97);
  fill(f, true);
  expect_all(f);
  assert_int_equal(fl_kv_rocksdb_compact(&f->kv), FL_OK);
  expect_all(f);
  free(cp);
}

int main(void) {
  const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
      T(map_cells_over_files_and_levels_scan_right),
      T(walks_resumed_at_map_entry_keys_meet_every_cell),
      T(a_restored_store_reads_right),
#undef T
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
