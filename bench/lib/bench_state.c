/*
 * flink-bench state: state operations per second through the typed state layer
 * (src/state/state.c), the code path of fl_value_get & co. without the job around it,
 * on the hashmap and the RocksDB backends.
 *
 *   flink-bench state [--backend hashmap|rocksdb|both] [--keys N] [--ops N]
 *                     [--dir PATH] [--block-cache-mb M]
 *
 * Operations, each on a fresh store and table, keys drawn uniformly from N 8-byte keys
 * (key group: the key's hash mod 128, as with the default max parallelism):
 *   value_get_update  fl_st_value_get then fl_st_value_set of an 8-byte counter + 1, on a
 *                     table preloaded (untimed) with a 0 for every key; one op is both
 *                     calls. Afterwards the counters must add up to --ops.
 *   list_append       fl_st_list_add of an 8-byte item. Afterwards the table must hold
 *                     --ops items.
 *   map_put           fl_st_map_put of an 8-byte value under one of 16 user keys.
 * One JSON line per (backend, operation):
 *   {"bench":"state","backend":...,"op":...,"keys":...,"ops":...,"seconds":...,
 *    "ops_per_s":...}
 * RocksDB stores live in a fresh directory under --dir (default /tmp), removed at the
 * end; block cache --block-cache-mb (default 64), write buffers at their defaults
 * (16 MiB, 2 per table), so with the default 1,000,000 keys the value table is larger
 * than the write buffers and reads go to table files and the block cache.
 */
#define _GNU_SOURCE
#include "lib/bench_clock.h"
#include "lib/bench_state.h"

#include <errno.h>
#include <ftw.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "util/buf.h"
#include "state/kv.h"
#include "state/rocksdb.h"
#include "state/state.h"
#include "util/hash.h"

#define BS_KEY_GROUPS 128u
#define BS_MAP_KEYS 16u

typedef struct bs_opts {
  bool hashmap, rocksdb;
  uint64_t keys, ops;
  const char *dir;
  uint64_t cache_mb;
} bs_opts_t;

/* One run's world: a backend, a table, a descriptor and an sref on them. */
typedef struct bs_run {
  fl_kv_t kv;
  struct fl_state_desc desc;
  fl_state_scratch_t *scratch;
  fl_sref_t r;
  uint64_t key;
} bs_run_t;

static void bs_usage(FILE *f) {
  fprintf(f,
          "usage: flink-bench state [--backend hashmap|rocksdb|both] [--keys N] [--ops N]\n"
          "                         [--dir PATH] [--block-cache-mb M]\n"
          "  state operations per second through the typed state layer:\n"
          "  value_get_update, list_append, map_put; one JSON line per backend and op\n");
}

static uint64_t bs_rand(uint64_t *x) {
  *x ^= *x << 13;
  *x ^= *x >> 7;
  *x ^= *x << 17;
  return *x;
}

static int bs_parse_u64(const char *name, const char *v, uint64_t min, uint64_t max,
                        uint64_t *out) {
  char *end;
  errno = 0;
  unsigned long long x = strtoull(v, &end, 10);
  if (errno || end == v || *end || v[0] == '-' || x < min || x > max) {
    fprintf(stderr,
            "flink-bench state: %s takes an integer from %" PRIu64 " to %" PRIu64 ", not '%s'\n",
            name, min, max, v);
    return -1;
  }
  *out = x;
  return 0;
}

static int bs_parse(int argc, char **argv, bs_opts_t *o) {
  int i = 1;
  if (argc >= 2 && strcmp(argv[1], "state") == 0) i = 2; /* flink-bench's own argv */
  *o = (bs_opts_t){true, true, 1000000, 1000000, NULL, 64};
  for (; i < argc; i++) {
    const char *name = argv[i];
    if (strcmp(name, "--help") == 0 || strcmp(name, "-h") == 0) {
      bs_usage(stdout);
      return 1;
    }
    if (i + 1 >= argc) {
      fprintf(stderr, "flink-bench state: unknown or incomplete option '%s'\n", name);
      return -1;
    }
    const char *v = argv[++i];
    if (strcmp(name, "--backend") == 0) {
      o->hashmap = strcmp(v, "hashmap") == 0 || strcmp(v, "both") == 0;
      o->rocksdb = strcmp(v, "rocksdb") == 0 || strcmp(v, "both") == 0;
      if (!o->hashmap && !o->rocksdb) {
        fprintf(stderr, "flink-bench state: --backend is hashmap, rocksdb or both, not '%s'\n", v);
        return -1;
      }
    } else if (strcmp(name, "--keys") == 0) {
      if (bs_parse_u64(name, v, 1, UINT64_C(1) << 40, &o->keys)) return -1;
    } else if (strcmp(name, "--ops") == 0) {
      if (bs_parse_u64(name, v, 1, UINT64_C(1) << 40, &o->ops)) return -1;
    } else if (strcmp(name, "--dir") == 0) {
      o->dir = v;
    } else if (strcmp(name, "--block-cache-mb") == 0) {
      if (bs_parse_u64(name, v, 1, UINT64_C(1) << 20, &o->cache_mb)) return -1;
    } else {
      fprintf(stderr, "flink-bench state: unknown option '%s'\n", name);
      return -1;
    }
  }
  return 0;
}

static int bs_rm_entry(const char *path, const struct stat *sb, int type, struct FTW *ftw) {
  (void)sb;
  (void)ftw;
  return type == FTW_DP ? rmdir(path) : unlink(path);
}

static void bs_rm_tree(const char *path) {
  if (nftw(path, bs_rm_entry, 16, FTW_DEPTH | FTW_PHYS) != 0)
    fprintf(stderr, "flink-bench state: could not remove '%s': %s\n", path, strerror(errno));
}

/* Points the sref at key id (8 bytes, native order) and its key group. */
static void bs_at(bs_run_t *b, uint64_t id) {
  b->key = id;
  b->r.k.key = &b->key;
  b->r.k.key_len = sizeof b->key;
  b->r.k.kg = (uint16_t)(fl_hash64(&b->key, sizeof b->key, 0) % BS_KEY_GROUPS);
}

static int bs_open(bs_run_t *b, fl_kv_rocksdb_shared_t *sh, const char *dir, fl_state_kind_t kind) {
  char err[512] = "";
  memset(b, 0, sizeof *b);
  int rc =
      sh ? fl_kv_rocksdb_new(sh, dir, NULL, &b->kv, err, sizeof err) : fl_kv_hashmap_new(&b->kv);
  if (rc) {
    fprintf(stderr, "flink-bench state: cannot open the store: %s (%s)\n",
            err[0] ? err : fl_strerror(rc), fl_err_name(rc));
    return rc;
  }
  b->scratch = fl_state_scratch_new();
  if (!b->scratch) return FL_ENOMEM;
  b->desc.name = "bench";
  b->desc.kind = kind;
  b->r.kv = &b->kv;
  b->r.desc = &b->desc;
  b->r.scratch = b->scratch;
  return b->kv.ops->open_table(b->kv.self, "bench", &b->r.table);
}

static void bs_close(bs_run_t *b) {
  fl_state_scratch_destroy(b->scratch);
  b->scratch = NULL;
  fl_kv_destroy(&b->kv);
}

typedef struct bs_sum {
  uint64_t total;
  int bad;
} bs_sum_t;

static int bs_sum_values(const fl_kkey_t *k, const void *v, size_t n, void *arg) {
  bs_sum_t *s = arg;
  (void)k;
  uint64_t x;
  if (!v || n != sizeof x) {
    s->bad = 1;
    return FL_KV_STOP;
  }
  memcpy(&x, v, sizeof x);
  s->total += x;
  return FL_KV_NEXT;
}

static int bs_sum_lists(const fl_kkey_t *k, const void *v, size_t n, void *arg) {
  bs_sum_t *s = arg;
  (void)k;
  (void)v;
  s->total += n / 16; /* an 8-byte item is [u32 len][u32 0][8 bytes] */
  return FL_KV_NEXT;
}

/* Walks the whole table, folding it with cb. */
static int bs_fold(bs_run_t *b, int (*cb)(const fl_kkey_t *, const void *, size_t, void *),
                   bs_sum_t *s) {
  uint64_t cursor = 0;
  int rc;
  do {
    rc = b->kv.ops->iterate(b->kv.self, b->r.table, &cursor, 4096, cb, s);
  } while (rc == FL_OK && cursor != 0 && !s->bad);
  return rc;
}

static const char *bs_ops_names[] = {"value_get_update", "list_append", "map_put"};

/* One (backend, operation) run; prints its line. 0, or 1 on failure. */
static int bs_run_op(const bs_opts_t *o, fl_kv_rocksdb_shared_t *sh, const char *dir, int op) {
  static const fl_state_kind_t kinds[] = {FL_STATE_VALUE, FL_STATE_LIST, FL_STATE_MAP};
  bs_run_t b;
  int rc = bs_open(&b, sh, dir, kinds[op]);
  uint64_t rng = 0x9E3779B97F4A7C15ull;
  double t0 = 0, secs = 0;
  const char *what = "preload";
  if (rc) goto done;
  if (op == 0) {
    uint64_t zero = 0;
    for (uint64_t i = 0; i < o->keys && rc == FL_OK; i++) {
      bs_at(&b, i);
      rc = fl_st_value_set(&b.r, &zero, sizeof zero);
    }
    if (rc) goto done;
  }
  what = bs_ops_names[op];
  t0 = bench_now_s();
  for (uint64_t i = 0; i < o->ops && rc == FL_OK; i++) {
    bs_at(&b, bs_rand(&rng) % o->keys);
    if (op == 0) {
      const void *v;
      size_t n;
      uint64_t x = 0;
      rc = fl_st_value_get(&b.r, &v, &n);
      if (rc == 1 && n == sizeof x)
        memcpy(&x, v, sizeof x);
      else if (rc >= 0)
        rc = FL_EPARSE;
      x++;
      if (rc >= 0) rc = fl_st_value_set(&b.r, &x, sizeof x);
    } else if (op == 1) {
      rc = fl_st_list_add(&b.r, &i, sizeof i);
    } else {
      uint32_t uk = (uint32_t)(i % BS_MAP_KEYS);
      rc = fl_st_map_put(&b.r, &uk, sizeof uk, &i, sizeof i);
    }
  }
  secs = bench_now_s() - t0;
  if (rc) goto done;
  /* Untimed checks: nothing lost. */
  what = "check";
  if (op < 2) {
    bs_sum_t s = {0, 0};
    rc = bs_fold(&b, op == 0 ? bs_sum_values : bs_sum_lists, &s);
    if (rc == FL_OK && (s.bad || s.total != o->ops)) {
      fprintf(stderr, "flink-bench state: %s holds %" PRIu64 " updates, not %" PRIu64 "\n",
              bs_ops_names[op], s.total, o->ops);
      rc = FL_EIO;
    }
  } else {
    uint64_t want = o->keys < o->ops ? o->keys : o->ops; /* at most */
    size_t cells = b.kv.ops->count(b.kv.self, b.r.table);
    if (cells == 0 || cells > want) {
      fprintf(stderr, "flink-bench state: map_put left %zu cells\n", cells);
      rc = FL_EIO;
    }
  }
  if (rc) goto done;
  printf("{\"bench\":\"state\",\"backend\":\"%s\",\"op\":\"%s\",\"keys\":%" PRIu64
         ",\"ops\":%" PRIu64 ",\"seconds\":%.3f,\"ops_per_s\":%.0f}\n",
         sh ? "rocksdb" : "hashmap", bs_ops_names[op], o->keys, o->ops, secs,
         secs > 0 ? (double)o->ops / secs : 0.0);
  fflush(stdout);
done:
  if (rc && rc != FL_EIO)
    fprintf(stderr, "flink-bench state: %s %s failed: %s%s%s\n", sh ? "rocksdb" : "hashmap", what,
            fl_err_name(rc), sh && b.kv.ops ? ": " : "",
            sh && b.kv.ops ? fl_kv_rocksdb_errmsg(&b.kv) : "");
  bs_close(&b);
  return rc ? 1 : 0;
}

int fl_bench_state_main(int argc, char **argv) {
  bs_opts_t o;
  int prc = bs_parse(argc, argv, &o);
  if (prc) {
    if (prc < 0) bs_usage(stderr);
    return prc > 0 ? 0 : 2;
  }
  int status = 0;
  if (o.hashmap)
    for (int op = 0; op < 3; op++) status |= bs_run_op(&o, NULL, NULL, op);
  if (!o.rocksdb) return status;

  char tmpl[1024], sub[1100], err[512] = "";
  snprintf(tmpl, sizeof tmpl, "%s/flink-bench-state-XXXXXX", o.dir ? o.dir : "/tmp");
  if (!mkdtemp(tmpl)) {
    fprintf(stderr, "flink-bench state: cannot create a directory in '%s': %s\n",
            o.dir ? o.dir : "/tmp", strerror(errno));
    return 1;
  }
  fl_kv_rocksdb_opts_t ro = {(size_t)o.cache_mb << 20, 0, 0};
  fl_kv_rocksdb_shared_t *sh = NULL;
  if (fl_kv_rocksdb_shared_new(&ro, &sh, err, sizeof err) != FL_OK) {
    fprintf(stderr, "flink-bench state: %s\n", err);
    status = 1;
  }
  for (int op = 0; sh && op < 3; op++) {
    snprintf(sub, sizeof sub, "%s/%s", tmpl, bs_ops_names[op]);
    status |= bs_run_op(&o, sh, sub, op);
  }
  fl_kv_rocksdb_shared_destroy(sh);
  bs_rm_tree(tmpl);
  return status;
}
