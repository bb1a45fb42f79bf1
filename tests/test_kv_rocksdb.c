/*
 * The RocksDB state backend (src/state/rocksdb.c): the backend contract and the typed
 * state layer on it (kv_contract.h, with the TTL layouts its compaction filters drop and
 * retain_key_groups), then what only this one does: borrowed pointers that outlive
 * later writes, a bounded number of remembered walks, checkpoint and restore,
 * list_tables after a restore, more state than the block cache and write buffers hold,
 * error reports, and stores made on several threads from one shared part.
 *
 * Every store gets its own directory under $TMPDIR (or /tmp), removed afterwards.
 */
#define _GNU_SOURCE
#include <dirent.h>
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

#include "flink.h"
#include "kv_contract.h"
#include "run_util.h"
#include "state/kv.h"
#include "rocksdb_dir.h"
#include "state/rocksdb.h"

/* ---------------------------------------------------------------------------------- */
/* Directories                                                                          */

/* ---------------------------------------------------------------------------------- */
/* The factory: a store in <base>/db, base a new directory, with its own shared part    */

typedef struct rdb_ctx {
  char *base;
  char *dir;
  fl_kv_rocksdb_shared_t *sh;
} rdb_ctx_t;

static rdb_ctx_t *rdb(kvc_fx_t *f) { return f->ctx; }

static int open_store(rdb_ctx_t *c, const char *dir, const char *restore, fl_kv_t *kv) {
  char err[512] = "";
  int rc = fl_kv_rocksdb_new(c->sh, dir, restore, kv, err, sizeof err);
  if (rc) fprintf(stderr, "fl_kv_rocksdb_new: %s\n", err);
  return rc;
}

static void rdb_close(fl_kv_t *kv, void *ctx) {
  rdb_ctx_t *c = ctx;
  fl_kv_destroy(kv);
  if (!c) return;
  if (c->sh) fl_kv_rocksdb_shared_destroy(c->sh);
  if (c->base) rm_tree(c->base);
  free(c->dir);
  free(c->base);
  free(c);
}

static int rdb_open_with(const fl_kv_rocksdb_opts_t *o, fl_kv_t *kv, void **ctx) {
  char err[256];
  rdb_ctx_t *c = calloc(1, sizeof *c);
  kv->ops = NULL;
  *ctx = c;
  if (!c) return FL_ENOMEM;
  c->base = make_tmpdir("fl-kv-rocksdb");
  c->dir = rocks_path_in(c->base, "db");
  int rc = fl_kv_rocksdb_shared_new(o, &c->sh, err, sizeof err);
  return rc ? rc : open_store(c, c->dir, NULL, kv);
}

/* Small buffers, so that the larger cases reach SST files and compactions. */
static int rdb_open(fl_kv_t *kv, void **ctx) {
  fl_kv_rocksdb_opts_t o = {8u << 20, 1u << 20, 2, FL_KV_RDB_SNAPPY, 1, 0};
  return rdb_open_with(&o, kv, ctx);
}

static int rdb_open_small_memory(fl_kv_t *kv, void **ctx) {
  fl_kv_rocksdb_opts_t o = {8u << 20, 4u << 20, 2, FL_KV_RDB_SNAPPY, 1, 0};
  return rdb_open_with(&o, kv, ctx);
}

/* 60,000 cells: several flushes of the 1 MiB write buffers. */
static const kvc_backend_t rocksdb = {"rocksdb",   rdb_open, rdb_close, fl_kv_rocksdb_compact,
                                      KVC_ORDERED, 60000u};
static const kvc_backend_t rocksdb_small_memory = {
    "rocksdb", rdb_open_small_memory, rdb_close, fl_kv_rocksdb_compact, KVC_ORDERED, 60000u};

/* ---------------------------------------------------------------------------------- */
/* Cells and walks                                                                      */

/* Pointers from gets stay valid across later gets and writes of other cells (the
 * state layer holds two at once when it merges namespaces). */
static void borrowed_pointers_outlive_later_reads_and_writes(void **state) {
  kvc_fx_t *f = *state;
  assert_int_equal(kvc_put_str(f, kstr(0, "a", ""), "alpha"), FL_OK);
  assert_int_equal(kvc_put_str(f, kstr(0, "b", ""), "beta"), FL_OK);
  const void *a, *b, *c;
  size_t al, bl, cl;
  assert_int_equal(kvc_get(f, f->t, kstr(0, "a", ""), &a, &al), 1);
  assert_int_equal(kvc_get(f, f->t, kstr(0, "b", ""), &b, &bl), 1);
  assert_int_equal(kvc_get(f, f->t, kstr(0, "nope", ""), &c, &cl), 0);
  assert_int_equal(kvc_put_str(f, kstr(0, "c", ""), "gamma"), FL_OK);
  assert_int_equal(kvc_put_str(f, kstr(0, "b", ""), "BETA"), FL_OK);
  for (int i = 0; i < 8; i++) assert_int_equal(kvc_get(f, f->t, kstr(0, "c", ""), &c, &cl), 1);
  assert_int_equal(al, 5);
  assert_memory_equal(a, "alpha", 5);
  assert_int_equal(bl, 4);
  assert_memory_equal(b, "beta", 4); /* the value as it was read */
  assert_memory_equal(c, "gamma", 5);
}

static int first_key_cb(const fl_kkey_t *k, const void *v, size_t n, void *arg) {
  uint32_t *first = arg;
  if (*first == UINT32_MAX) memcpy(first, k->key, 4);
  return FL_KV_NEXT;
}

/* More paused walks than the store keeps: the least recently used is forgotten and
 * its cursor starts a new pass. */
static void a_forgotten_cursor_starts_a_new_pass(void **state) {
  kvc_fx_t *f = *state;
  kvc_put_nums(f, f->t, 10);
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
/* Checkpoints, restores, table lists                                                   */

/* "name size" lines of a directory's files, sorted. */
static void dir_listing(const char *dir, char *out, size_t out_size) {
  struct dirent **ents;
  int n = scandir(dir, &ents, NULL, alphasort);
  assert_true(n > 0);
  out[0] = '\0';
  for (int i = 0; i < n; i++) {
    if (ents[i]->d_name[0] != '.') {
      char *p = rocks_path_in(dir, ents[i]->d_name);
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
    char *a = rocks_path_in(dir, e->d_name), *b = rocks_path_in(ref, e->d_name);
    struct stat sa, sb;
    found =
        stat(a, &sa) == 0 && stat(b, &sb) == 0 && sa.st_ino == sb.st_ino && sa.st_dev == sb.st_dev;
    free(a);
    free(b);
  }
  closedir(d);
  return found;
}

static void fill_for_checkpoint(kvc_fx_t *f, uint32_t *tv, uint32_t *tm, uint32_t *tl) {
  fl_kv_t *kv = &f->kv;
  assert_int_equal(kv->ops->open_table(kv->self, "values", tv), FL_OK);
  assert_int_equal(kv->ops->open_table(kv->self, "maps", tm), FL_OK);
  assert_int_equal(kv->ops->open_table(kv->self, "lists", tl), FL_OK);
  for (uint32_t i = 0; i < 2000; i++) {
    uint32_t v = i * 7u;
    assert_int_equal(kvc_put(f, *tv, knum(&i), &v, 4), FL_OK);
  }
  fl_kkey_t m = kstr(9, "m", "ns");
  for (uint32_t i = 0; i < 100; i++)
    assert_int_equal(kv->ops->map_put(kv->self, *tm, &m, &i, 4, "x", 1), FL_OK);
  fl_kkey_t l = kstr(9, "l", "");
  for (int i = 0; i < 10; i++) assert_int_equal(kv->ops->append(kv->self, *tl, &l, "ab", 2), FL_OK);
}

static void checkpoint_and_restore_round_trip(void **state) {
  kvc_fx_t *f = *state;
  uint32_t tv, tm, tl;
  fill_for_checkpoint(f, &tv, &tm, &tl);
  char *cp = rocks_path_in(rdb(f)->base, "cp");
  assert_int_equal(f->kv.ops->checkpoint(f->kv.self, cp), FL_OK);
  char before[4096], after[4096];
  dir_listing(cp, before, sizeof before);
  /* Later writes are not in the copy. */
  uint32_t late = 5000;
  assert_int_equal(kvc_put(f, tv, knum(&late), &late, 4), FL_OK);
  uint32_t zero = 0;
  fl_kkey_t kz = knum(&zero);
  assert_int_equal(f->kv.ops->del(f->kv.self, tv, &kz), FL_OK);

  char *rdir = rocks_path_in(rdb(f)->base, "restored");
  for (int round = 0; round < 2; round++) {
    fl_kv_t r;
    assert_int_equal(open_store(rdb(f), rdir, cp, &r), FL_OK);
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
      kvc_assert_value_in(&r, rv, knum(&i), &v, 4);
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
    kvc_assert_value_in(&r, rl, kstr(9, "l", ""), "abababababababababab", 20);
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
  kvc_fx_t *f = *state;
  uint32_t tv, tm, tl;
  fill_for_checkpoint(f, &tv, &tm, &tl);
  char *cp = rocks_path_in(rdb(f)->base, "cp"), *rdir = rocks_path_in(rdb(f)->base, "restored");
  assert_int_equal(f->kv.ops->checkpoint(f->kv.self, cp), FL_OK);
  fl_kv_t r;
  assert_int_equal(open_store(rdb(f), rdir, cp, &r), FL_OK);
  assert_true(shares_an_sst(rdir, cp));
  fl_kv_destroy(&r);
  free(rdir);
  free(cp);
}

static void list_tables_after_restore_names_every_table(void **state) {
  kvc_fx_t *f = *state;
  uint32_t tv, tm, tl, te;
  fill_for_checkpoint(f, &tv, &tm, &tl);
  assert_int_equal(f->kv.ops->open_table(f->kv.self, "empty/with:odd name", &te), FL_OK);
  kvc_names_t s = {"", 0, 0};
  assert_int_equal(f->kv.ops->list_tables(f->kv.self, kvc_name_cb, &s), FL_OK);
  assert_string_equal(s.buf, "t,values,maps,lists,empty/with:odd name");
  char *cp = rocks_path_in(rdb(f)->base, "cp"), *rdir = rocks_path_in(rdb(f)->base, "restored");
  assert_int_equal(f->kv.ops->checkpoint(f->kv.self, cp), FL_OK);
  fl_kv_t r;
  assert_int_equal(open_store(rdb(f), rdir, cp, &r), FL_OK);
  /* Before any open_table: every table of the copy, in some order. */
  kvc_names_t a = {"", 0, 0};
  assert_int_equal(r.ops->list_tables(r.self, kvc_name_cb, &a), FL_OK);
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
  kvc_names_t b = {"", 0, 0};
  assert_int_equal(r.ops->list_tables(r.self, kvc_name_cb, &b), FL_OK);
  assert_int_equal(b.n, 6);
  assert_memory_equal(b.buf, "maps,fresh,", 11);
  /* cb stops the enumeration */
  kvc_names_t c = {"", 0, 2};
  assert_int_equal(r.ops->list_tables(r.self, kvc_name_cb, &c), FL_OK);
  assert_int_equal(c.n, 2);
  fl_kv_destroy(&r);
  free(rdir);
  free(cp);
}

static void a_new_store_starts_empty_in_a_used_directory(void **state) {
  kvc_fx_t *f = *state;
  assert_int_equal(kvc_put_str(f, kstr(0, "k", ""), "v"), FL_OK);
  fl_kv_destroy(&f->kv);
  char *junk = rocks_path_in(rdb(f)->dir, "junk");
  FILE *j = fopen(junk, "w");
  assert_non_null(j);
  fclose(j);
  assert_int_equal(open_store(rdb(f), rdb(f)->dir, NULL, &f->kv), FL_OK);
  assert_int_equal(access(junk, F_OK), -1);
  kvc_names_t s = {"", 0, 0};
  assert_int_equal(f->kv.ops->list_tables(f->kv.self, kvc_name_cb, &s), FL_OK);
  assert_string_equal(s.buf, "");
  assert_int_equal(f->kv.ops->open_table(f->kv.self, "t", &f->t), FL_OK);
  kvc_assert_absent(f, f->t, kstr(0, "k", ""));
  free(junk);
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
    char *p = rocks_path_in(dir, e->d_name);
    struct stat st;
    if (stat(p, &st) == 0) total += st.st_size;
    free(p);
  }
  closedir(d);
  return total;
}

typedef void (*fill_fn)(uint32_t key, unsigned char *p, size_t n);

/* Puts value fill(i) of size bytes under knum(i) for i < n. */
static void put_values(kvc_fx_t *f, uint32_t n, size_t size, fill_fn fill) {
  unsigned char *v = malloc(size);
  assert_non_null(v);
  for (uint32_t i = 0; i < n; i++) {
    fill(i, v, size);
    assert_int_equal(kvc_put(f, f->t, knum(&i), v, size), FL_OK);
  }
  free(v);
}

/* Reads the values put_values wrote back in a scattered order, so that the block cache
 * keeps missing. */
static void expect_values_scattered(kvc_fx_t *f, uint32_t n, size_t size, fill_fn fill) {
  unsigned char *want = malloc(size);
  assert_non_null(want);
  for (uint32_t j = 0; j < n; j++) {
    uint32_t i = (uint32_t)(((uint64_t)j * 7919u) % n);
    const void *p;
    size_t len;
    assert_int_equal(kvc_get(f, f->t, knum(&i), &p, &len), 1);
    assert_int_equal(len, size);
    fill(i, want, size);
    assert_memory_equal(p, want, size);
  }
  free(want);
}

/* Table files of dir this process has mapped (/proc/self/maps). */
static int mapped_table_files(const char *dir) {
  FILE *m = fopen("/proc/self/maps", "r");
  assert_non_null(m);
  char line[4096];
  int n = 0;
  while (fgets(line, sizeof line, m))
    if (strstr(line, dir) && strstr(line, ".sst")) n++;
  fclose(m);
  return n;
}

#define BIG_VALUE 4096u
#define BIG_KEYS 16384u /* 64 MiB of values: 8 MiB cache, 2 x 4 MiB write buffers */

static void more_state_than_cache_and_write_buffers_reads_back(void **state) {
  kvc_fx_t *f = *state;
  put_values(f, BIG_KEYS, BIG_VALUE, fill_value);
  /* Most of it lives in table files, not in memory. */
  assert_true(sst_bytes(rdb(f)->dir) > (long long)(8u << 20) + 2 * (4u << 20));
  expect_values_scattered(f, BIG_KEYS, BIG_VALUE, fill_value);
  assert_int_equal(kvc_count(f, f->t), BIG_KEYS);
}

/* ---------------------------------------------------------------------------------- */
/* Compression of table files (state.backend.rocksdb.compression.per.level)            */

#define CZ_VALUE 4096u
#define CZ_KEYS 4096u /* 16 MiB of values: many flushes of the 1 MiB write buffers */

static int rdb_open_compressed(fl_kv_t *kv, void **ctx, int compression) {
  fl_kv_rocksdb_opts_t o = {8u << 20, 1u << 20, 2, compression, 1, 0};
  return rdb_open_with(&o, kv, ctx);
}
static int rdb_open_none(fl_kv_t *kv, void **ctx) {
  return rdb_open_compressed(kv, ctx, FL_KV_RDB_NO_COMPRESSION);
}
static int rdb_open_lz4(fl_kv_t *kv, void **ctx) {
  return rdb_open_compressed(kv, ctx, FL_KV_RDB_LZ4);
}
static int rdb_open_zstd(fl_kv_t *kv, void **ctx) {
  return rdb_open_compressed(kv, ctx, FL_KV_RDB_ZSTD);
}
static const kvc_backend_t rocksdb_none = {
    "rocksdb", rdb_open_none, rdb_close, fl_kv_rocksdb_compact, KVC_ORDERED, 60000u};
static const kvc_backend_t rocksdb_lz4 = {
    "rocksdb", rdb_open_lz4, rdb_close, fl_kv_rocksdb_compact, KVC_ORDERED, 60000u};
static const kvc_backend_t rocksdb_zstd = {
    "rocksdb", rdb_open_zstd, rdb_close, fl_kv_rocksdb_compact, KVC_ORDERED, 60000u};

/* A value that compresses well: the key's 4 bytes, then zeros, every 64 bytes. */
static void fill_compressible(uint32_t key, unsigned char *p, size_t n) {
  memset(p, 0, n);
  for (size_t i = 0; i + sizeof key <= n; i += 64) memcpy(p + i, &key, sizeof key);
}

/* Writes CZ_KEYS compressible values, compacts them into table files, checks the files'
 * size against the 16 MiB written (compressed: under a quarter of it; uncompressed: at
 * least all of it), reads every value back in a scattered order, and checks that the
 * table files are mapped into memory exactly when they are uncompressed. */
static void table_files_follow_the_compression(kvc_fx_t *f, bool compressed) {
  put_values(f, CZ_KEYS, CZ_VALUE, fill_compressible);
  assert_int_equal(fl_kv_rocksdb_compact(&f->kv), FL_OK);
  long long raw = (long long)CZ_KEYS * CZ_VALUE, files = sst_bytes(rdb(f)->dir);
  if (compressed)
    assert_true(files < raw / 4);
  else
    assert_true(files >= raw);
  expect_values_scattered(f, CZ_KEYS, CZ_VALUE, fill_compressible);
  if (compressed)
    assert_int_equal(mapped_table_files(rdb(f)->dir), 0);
  else
    assert_true(mapped_table_files(rdb(f)->dir) > 0);
}

static void snappy_by_default_compresses_table_files(void **state) {
  table_files_follow_the_compression(*state, true);
}
static void no_compression_writes_plain_files_read_through_mmap(void **state) {
  table_files_follow_the_compression(*state, false);
}
static void lz4_compresses_table_files(void **state) {
  table_files_follow_the_compression(*state, true);
}
static void zstd_compresses_table_files(void **state) {
  table_files_follow_the_compression(*state, true);
}

/* ---------------------------------------------------------------------------------- */
/* Index and filter blocks (state.backend.rocksdb.memory.partitioned-index-filters)    */

static int rdb_open_whole(fl_kv_t *kv, void **ctx) {
  fl_kv_rocksdb_opts_t o = {8u << 20, 1u << 20, 2, FL_KV_RDB_SNAPPY, 0, 0};
  return rdb_open_with(&o, kv, ctx);
}
static const kvc_backend_t rocksdb_whole = {
    "rocksdb", rdb_open_whole, rdb_close, fl_kv_rocksdb_compact, KVC_ORDERED, 60000u};

/* Whether the store's newest OPTIONS file (RocksDB's record of the options it runs
 * with) has the line "  <setting>". */
static bool store_option(const char *dir, const char *setting) {
  DIR *d = opendir(dir);
  assert_non_null(d);
  struct dirent *e;
  long newest = -1;
  char name[300] = "";
  while ((e = readdir(d)) != NULL) {
    if (strncmp(e->d_name, "OPTIONS-", 8) != 0) continue;
    long n = strtol(e->d_name + 8, NULL, 10);
    if (n > newest) {
      newest = n;
      snprintf(name, sizeof name, "%s", e->d_name);
    }
  }
  closedir(d);
  assert_true(newest >= 0);
  char *p = rocks_path_in(dir, name);
  FILE *fp = fopen(p, "r");
  free(p);
  assert_non_null(fp);
  char line[1024];
  bool found = false;
  while (!found && fgets(line, sizeof line, fp)) {
    line[strcspn(line, "\r\n")] = 0;
    const char *t = line + strspn(line, " \t");
    found = strcmp(t, setting) == 0;
  }
  fclose(fp);
  return found;
}

/* More than the 8 MiB block cache in table files, read back in a scattered order; the
 * table files carry the index and filter form asked for. */
static void index_and_filters_follow_the_option(kvc_fx_t *f, bool partitioned) {
  put_values(f, BIG_KEYS, BIG_VALUE, fill_value);
  assert_int_equal(fl_kv_rocksdb_compact(&f->kv), FL_OK);
  expect_values_scattered(f, BIG_KEYS, BIG_VALUE, fill_value);
  const char *dir = rdb(f)->dir;
  assert_true(store_option(dir, "filter_policy=bloomfilter"));
  assert_true(store_option(dir, "cache_index_and_filter_blocks=true"));
  assert_true(store_option(
      dir, partitioned ? "index_type=kTwoLevelIndexSearch" : "index_type=kBinarySearch"));
  assert_true(
      store_option(dir, partitioned ? "partition_filters=true" : "partition_filters=false"));
}

static void partitioned_index_and_filters_by_default(void **state) {
  index_and_filters_follow_the_option(*state, true);
}
static void whole_index_and_filters_when_asked(void **state) {
  index_and_filters_follow_the_option(*state, false);
}

/* Whole blocks on a 1 MiB block cache, with RocksDB's statistics on (as a job has them
 * for its block cache metrics). */
static int rdb_open_whole_stats(fl_kv_t *kv, void **ctx) {
  char err[256];
  fl_kv_rocksdb_opts_t o = {1u << 20, 1u << 20, 2, FL_KV_RDB_SNAPPY, 0, 0};
  rdb_ctx_t *c = calloc(1, sizeof *c);
  kv->ops = NULL;
  *ctx = c;
  if (!c) return FL_ENOMEM;
  c->base = make_tmpdir("fl-kv-rocksdb");
  c->dir = rocks_path_in(c->base, "db");
  int rc = fl_kv_rocksdb_shared_new(&o, &c->sh, err, sizeof err);
  if (rc) return rc;
  fl_kv_rocksdb_shared_statistics(c->sh, true);
  return open_store(c, c->dir, NULL, kv);
}
static const kvc_backend_t rocksdb_whole_stats = {
    "rocksdb", rdb_open_whole_stats, rdb_close, fl_kv_rocksdb_compact, KVC_ORDERED, 60000u};

/* The misses of index and filter blocks reach the stats op: reads spread over table
 * files whose index and filter blocks the cache cannot all hold read them from the
 * files, a part of all the block cache's misses. */
static void index_and_filter_misses_are_counted(void **state) {
  kvc_fx_t *f = *state;
  put_values(f, BIG_KEYS, BIG_VALUE, fill_value);
  assert_int_equal(fl_kv_rocksdb_compact(&f->kv), FL_OK);
  expect_values_scattered(f, BIG_KEYS, BIG_VALUE, fill_value);
  bool want[FL_KV_STAT_N] = {0};
  int64_t v[FL_KV_STAT_N];
  for (int i = 0; i < FL_KV_STAT_N; i++) v[i] = -1;
  want[FL_KV_STAT_BLOCK_CACHE_MISS] = want[FL_KV_STAT_BLOCK_CACHE_INDEX_MISS] =
      want[FL_KV_STAT_BLOCK_CACHE_FILTER_MISS] = true;
  assert_int_equal(f->kv.ops->stats(f->kv.self, want, v), FL_OK);
  assert_true(v[FL_KV_STAT_BLOCK_CACHE_INDEX_MISS] > 0);
  assert_true(v[FL_KV_STAT_BLOCK_CACHE_FILTER_MISS] > 0);
  assert_true(v[FL_KV_STAT_BLOCK_CACHE_INDEX_MISS] + v[FL_KV_STAT_BLOCK_CACHE_FILTER_MISS] <=
              v[FL_KV_STAT_BLOCK_CACHE_MISS]);
  assert_int_equal(v[FL_KV_STAT_BLOCK_CACHE_HIT], -1); /* not asked for */
}

/* With whole filters the block cache's shards are 16 MiB or more, at most 64 of them. */
static void block_cache_shards_hold_a_whole_filter(void **state) {
  (void)state;
  assert_int_equal(fl_kv_rocksdb_cache_shard_bits(1u << 20), 0);
  assert_int_equal(fl_kv_rocksdb_cache_shard_bits(16u << 20), 0);
  assert_int_equal(fl_kv_rocksdb_cache_shard_bits((32u << 20) - 1), 0);
  assert_int_equal(fl_kv_rocksdb_cache_shard_bits(32u << 20), 1);
  assert_int_equal(fl_kv_rocksdb_cache_shard_bits(64u << 20), 2);
  assert_int_equal(fl_kv_rocksdb_cache_shard_bits(1024u << 20), 6);
  assert_int_equal(fl_kv_rocksdb_cache_shard_bits((size_t)64 << 30), 6);
}

/* ---------------------------------------------------------------------------------- */
/* Errors                                                                               */

static void a_directory_that_cannot_be_created_is_reported(void **state) {
  kvc_fx_t *f = *state;
  char *file = rocks_path_in(rdb(f)->base, "plain-file");
  FILE *fp = fopen(file, "w");
  assert_non_null(fp);
  fclose(fp);
  char *dir = rocks_path_in(file, "db");
  fl_kv_t kv = {(const fl_kv_ops_t *)1, (void *)1};
  char err[512] = "";
  assert_int_equal(fl_kv_rocksdb_new(rdb(f)->sh, dir, NULL, &kv, err, sizeof err), FL_EIO);
  assert_null(kv.ops);
  assert_non_null(strstr(err, file));
  /* A restore from a directory that does not exist */
  char *missing = rocks_path_in(rdb(f)->base, "no-such-checkpoint"),
       *d2 = rocks_path_in(rdb(f)->base, "d2");
  err[0] = '\0';
  assert_int_equal(fl_kv_rocksdb_new(rdb(f)->sh, d2, missing, &kv, err, sizeof err), FL_EIO);
  assert_non_null(strstr(err, missing));
  /* ... or from inside the directory, which is emptied first */
  char *inside = rocks_path_in(rdb(f)->dir, "cp");
  assert_int_equal(f->kv.ops->checkpoint(f->kv.self, inside), FL_OK);
  err[0] = '\0';
  assert_int_equal(fl_kv_rocksdb_new(rdb(f)->sh, rdb(f)->dir, inside, &kv, err, sizeof err),
                   FL_EINVAL);
  assert_non_null(strstr(err, inside));
  /* ... or from a directory that holds no store */
  char *empty = rocks_path_in(rdb(f)->base, "empty");
  assert_int_equal(mkdir(empty, 0755), 0);
  fp = fopen(file, "w");
  fclose(fp);
  err[0] = '\0';
  assert_true(fl_kv_rocksdb_new(rdb(f)->sh, d2, empty, &kv, err, sizeof err) < 0);
  assert_non_null(strstr(err, empty));
  free(empty);
  free(inside);
  free(missing);
  free(d2);
  free(dir);
  free(file);
}

static void a_failed_checkpoint_names_the_store_and_the_target(void **state) {
  kvc_fx_t *f = *state;
  assert_int_equal(kvc_put_str(f, kstr(0, "k", ""), "v"), FL_OK);
  char *cp = rocks_path_in(rdb(f)->base, "cp");
  assert_int_equal(f->kv.ops->checkpoint(f->kv.self, cp), FL_OK);
  /* The target exists now: RocksDB refuses to write into it. */
  assert_int_equal(f->kv.ops->checkpoint(f->kv.self, cp), FL_EIO);
  const char *msg = fl_kv_rocksdb_errmsg(&f->kv);
  assert_non_null(strstr(msg, rdb(f)->dir));
  assert_non_null(strstr(msg, cp));
  assert_int_equal(f->kv.ops->checkpoint(f->kv.self, NULL), FL_EINVAL);
  free(cp);
}

/* ---------------------------------------------------------------------------------- */
/* Several workers, one shared part                                                     */

typedef struct worker {
  rdb_ctx_t *c;
  int idx;
  int rc;
} worker_t;

static void *worker_main(void *arg) {
  worker_t *w = arg;
  char name[32];
  snprintf(name, sizeof name, "worker-%d", w->idx);
  char *dir = rocks_path_in(w->c->base, name);
  fl_kv_t kv;
  char err[256];
  uint32_t t;
  w->rc = fl_kv_rocksdb_new(w->c->sh, dir, NULL, &kv, err, sizeof err);
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
  kvc_fx_t *f = *state;
  enum {
    N = 3
  };
  pthread_t th[N];
  worker_t w[N];
  for (int i = 0; i < N; i++) {
    w[i] = (worker_t){rdb(f), i, -100};
    assert_int_equal(pthread_create(&th[i], NULL, worker_main, &w[i]), 0);
  }
  for (int i = 0; i < N; i++) {
    pthread_join(th[i], NULL);
    assert_int_equal(w[i].rc, FL_OK);
  }
}

/* ---------------------------------------------------------------------------------- */
/* The typed state layer on a RocksDB store (helpers from test_state.c)                 */

static void constructors_reject_bad_arguments(void **state) {
  kvc_fx_t *f = *state;
  fl_kv_t kv;
  char err[128];
  assert_int_equal(fl_kv_rocksdb_new(NULL, rdb(f)->dir, NULL, &kv, err, sizeof err), FL_EINVAL);
  assert_int_equal(fl_kv_rocksdb_new(rdb(f)->sh, NULL, NULL, &kv, err, sizeof err), FL_EINVAL);
  fl_kv_rocksdb_opts_t o = {0, 0, -1, 0, 1, 0};
  fl_kv_rocksdb_shared_t *sh = (void *)1;
  assert_int_equal(fl_kv_rocksdb_shared_new(&o, &sh, err, sizeof err), FL_EINVAL);
  assert_null(sh);
  assert_non_null(strstr(err, "max_write_buffers"));
  fl_kv_rocksdb_opts_t oc = {0, 0, 0, 99, 1, 0};
  assert_int_equal(fl_kv_rocksdb_shared_new(&oc, &sh, err, sizeof err), FL_EINVAL);
  assert_null(sh);
  assert_non_null(strstr(err, "compression 99"));
  fl_kv_rocksdb_opts_t ow = {0, 0, 0, FL_KV_RDB_NO_COMPRESSION, 0, 0};
  assert_int_equal(fl_kv_rocksdb_shared_new(&ow, &sh, err, sizeof err), FL_EINVAL);
  assert_null(sh);
  assert_non_null(strstr(err, "whole index and filter blocks do not go with uncompressed"));
  assert_string_equal(fl_kv_rocksdb_errmsg(&f->kv), "");
}

/* ---------------------------------------------------------------------------------- */
/* Compactions at low priority (state.backend.rocksdb.compaction.low-priority)          */

static int rdb_open_low_priority(fl_kv_t *kv, void **ctx) {
  fl_kv_rocksdb_opts_t o = {8u << 20, 1u << 20, 2, FL_KV_RDB_SNAPPY, 1, 1};
  return rdb_open_with(&o, kv, ctx);
}
static const kvc_backend_t rocksdb_low_priority = {
    "rocksdb", rdb_open_low_priority, rdb_close, fl_kv_rocksdb_compact, KVC_ORDERED, 60000u};

/* The earlier cases' compactions ran at the normal priority; once a store asks for low
 * priority, the compaction of its files runs at nice 19 (this case runs last: RocksDB
 * never raises a pool's threads again). */
static void low_priority_compactions_run_at_nice_19(void **state) {
  kvc_fx_t *f = *state;
  if (own_nice() >= 19) {
    print_message("skipped: the test itself runs at nice 19\n");
    skip();
  }
  assert_int_equal(threads_at_nice("rocksdb:low", 19), 0);
  put_values(f, 4096, 1024, fill_value);
  assert_int_equal(fl_kv_rocksdb_compact(&f->kv), FL_OK);
  assert_true(threads_at_nice("rocksdb:low", 19) >= 1);
  expect_values_scattered(f, 4096, 1024, fill_value);
}

int main(void) {
  const struct CMUnitTest own[] = {
#define T(fn) KVC_CASE(fn, &rocksdb)
      T(borrowed_pointers_outlive_later_reads_and_writes),
      T(a_forgotten_cursor_starts_a_new_pass),
      T(checkpoint_and_restore_round_trip),
      T(restore_hard_links_sst_files),
      T(list_tables_after_restore_names_every_table),
      T(a_new_store_starts_empty_in_a_used_directory),
      KVC_CASE(more_state_than_cache_and_write_buffers_reads_back, &rocksdb_small_memory),
      T(snappy_by_default_compresses_table_files),
      KVC_CASE(no_compression_writes_plain_files_read_through_mmap, &rocksdb_none),
      KVC_CASE(lz4_compresses_table_files, &rocksdb_lz4),
      KVC_CASE(zstd_compresses_table_files, &rocksdb_zstd),
      T(partitioned_index_and_filters_by_default),
      KVC_CASE(whole_index_and_filters_when_asked, &rocksdb_whole),
      T(block_cache_shards_hold_a_whole_filter),
      KVC_CASE(index_and_filter_misses_are_counted, &rocksdb_whole_stats),
      T(constructors_reject_bad_arguments),
      T(a_directory_that_cannot_be_created_is_reported),
      T(a_failed_checkpoint_names_the_store_and_the_target),
      T(stores_on_several_threads_share_one_shared_part),
      KVC_CASE(low_priority_compactions_run_at_nice_19, &rocksdb_low_priority),
#undef T
  };
  return kvc_run_all(&rocksdb, own, sizeof own / sizeof own[0]);
}
