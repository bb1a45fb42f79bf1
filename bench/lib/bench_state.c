/*
 * flink-bench state: state operations per second through the typed state layer
 * (src/state/state.c), the code path of fl_value_get & co. without the job around it,
 * on the hashmap and the RocksDB backends, RocksDB with the state cache in front of it
 * (src/state/cache.h) as a job has it, and, in the same run, a plain RocksDB C API loop
 * doing the same work.
 *
 *   flink-bench state [--backend hashmap|rocksdb|both] [--keys N] [--ops N]
 *                     [--distribution uniform|zipf:S] [--cache-mb M] [--plain true|false]
 *                     [--op value_get_update|list_append|map_put|map_iter|all]
 *                     [--dir PATH] [--block-cache-mb M] [--write-buffer-mb M]
 *                     [--prefix-bloom true|false] [--partitioned-index-filters true|false]
 *
 * Operations, each on a fresh store and table, keys drawn from N 8-byte keys, uniformly
 * or by a Zipf law of exponent S over the keys' ranks (rank r is key r * P mod N for a
 * large prime P, so the hot keys are spread over key groups and the store's key
 * range); the sequence of keys is drawn before the clock starts, and every run uses the
 * same one (key group: the key's hash mod 128, as with the default max parallelism):
 *   value_get_update  fl_st_value_get then fl_st_value_set of an 8-byte counter + 1, on a
 *                     table preloaded (untimed) with a 0 for every key; one op is both
 *                     calls. Afterwards the counters must add up to --ops.
 *   list_append       fl_st_list_add of an 8-byte item. Afterwards the table must hold
 *                     --ops items.
 *   map_put           fl_st_map_put of an 8-byte value under one of 16 user keys.
 *   map_iter          fl_st_map_foreach of a key's map cell, on a table preloaded
 *                     (untimed) with 16 user keys of every key, written in 16 rounds
 *                     of one user key each, flushed after each round, so that a cell's
 *                     entries lie in many table files and levels. Every other op walks
 *                     a key never written (an empty map, as MapState.isEmpty() of a
 *                     new user finds). Afterwards the walks must have met 16 entries
 *                     per walk of a written key.
 * The plain loop ("backend":"rocksdb-c-api") does each with RocksDB's C API alone on a
 * store with the same key layout, bloom filter, block cache, write buffers and table
 * files (compressed as --compression says, default Snappy as a job's; uncompressed ones
 * read through mmap) and the WAL off, but RocksDB's default whole
 * index and filter blocks held outside the block cache and no memtable filter:
 * rocksdb_get_pinned then rocksdb_put of the counter; a merge with a
 * concatenating merge operator; a put of key | user key. For map_iter the plain loop
 * has the backend's options instead (its index and filter blocks in the block cache,
 * a memtable filter) and scans [key | 0x00, key | 0x01) with an upper bound, as
 * the backend does. The RocksDB line then carries "vs_plain", its ops/s over the plain
 * loop's. --prefix-bloom true gives the plain map_iter store a prefix extractor of the
 * map cells' key | 0x00 (prefix bloom filters, which the backend has not: docs/state.md
 * has what they were measured to bring). map_iter's lines also carry "present_us" and
 * "absent_us", the mean wall time of a walk of a written key and of a key never written.
 * --partitioned-index-filters false gives the backend (and the plain map_iter store)
 * whole index and filter blocks, as the configuration key
 * state.backend.rocksdb.memory.partitioned-index-filters does (default true, as a
 * job's: partitioned).
 *
 * One JSON line per (backend, operation):
 *   {"bench":"state","backend":...,"op":...,"keys":...,"ops":...,"distribution":...,
 *    "cache_mb":...,"seconds":...,"cpu_seconds":...,"ops_per_s":...,["compression":...,]
 *    ["cache_hit_rate":...,"cache_cells":...,] ["vs_plain":...]}
 * cpu_seconds counts every thread of the process (RocksDB's flushes and compactions).
 * RocksDB stores live in a fresh directory under --dir (default /tmp), removed at the
 * end; block cache --block-cache-mb (default 64), write buffers --write-buffer-mb
 * (default 16, as a job's default; 2 per table); state cache --cache-mb (default 64, as a job's default; 0:
 * none). With the default 1,000,000 keys the value table is larger than the write
 * buffers and reads go to table files and the block cache.
 */
#define _GNU_SOURCE
#include "lib/bench_clock.h"
#include "lib/bench_state.h"

#include <errno.h>
#include <ftw.h>
#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <rocksdb/c.h>

#include "util/buf.h"
#include "state/cache.h"
#include "state/kv.h"
#include "state/rocksdb.h"
#include "state/state.h"
#include "util/hash.h"

#define BS_KEY_GROUPS 128u
#define BS_MAP_KEYS 16u
#define BS_PRIME 0x9E3779B97F4A7C15ull /* odd: a permutation of ranks mod 2^64 */
#define BS_OPS 4
#define BS_MAP_ITER 3

typedef struct bs_opts {
  bool hashmap, rocksdb, plain;
  uint64_t keys, ops;
  const char *dir;
  uint64_t block_cache_mb, cache_mb, write_buffer_mb;
  double zipf; /* 0: uniform */
  const char *dist;
  int only;        /* -1: every operation */
  int compression; /* fl_kv_rocksdb_compression_t, for the backend and the plain loop */
  bool prefix_bloom;
  bool partitioned; /* partitioned index and filter blocks */
} bs_opts_t;

/* --compression's values, in fl_kv_rocksdb_compression_t's order (the names of the
 * configuration key state.backend.rocksdb.compression.per.level). */
static const char *const BS_COMPRESSION[] = {"SNAPPY_COMPRESSION", "NO_COMPRESSION",
                                             "LZ4_COMPRESSION", "ZSTD_COMPRESSION"};

/* One run's world: a backend, a table, a descriptor and an sref on them. */
typedef struct bs_run {
  fl_kv_t kv;
  fl_kv_cache_t *cache;
  struct fl_state_desc desc;
  fl_state_scratch_t *scratch;
  fl_sref_t r;
  uint64_t key;
} bs_run_t;

static void bs_usage(FILE *f) {
  fprintf(f,
          "usage: flink-bench state [--backend hashmap|rocksdb|both] [--keys N] [--ops N]\n"
          "                         [--distribution uniform|zipf:S] [--cache-mb M]\n"
          "                         [--plain true|false] [--op NAME|all] [--dir PATH]\n"
          "                         [--block-cache-mb M] [--write-buffer-mb M]\n"
          "                         [--prefix-bloom true|false]\n"
          "                         [--partitioned-index-filters true|false]\n"
          "                         [--compression SNAPPY_COMPRESSION|NO_COMPRESSION|\n"
          "                                        LZ4_COMPRESSION|ZSTD_COMPRESSION]\n"
          "  state operations per second through the typed state layer:\n"
          "  value_get_update, list_append, map_put, map_iter; one JSON line per backend\n"
          "  and op,\n"
          "  RocksDB with the state cache of --cache-mb (0: none) and a plain RocksDB loop\n");
}

static uint64_t bs_rand(uint64_t *x) {
  *x ^= *x << 13;
  *x ^= *x >> 7;
  *x ^= *x << 17;
  return *x;
}

static double bs_unit(uint64_t *x) { return (double)(bs_rand(x) >> 11) * 0x1.0p-53; }

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

/* The index of option name's value v among names[0..n), or -1 after saying on stderr
 * which values the option takes. */
static int bs_choice(const char *name, const char *v, const char *const *names, int n) {
  for (int i = 0; i < n; i++)
    if (strcmp(v, names[i]) == 0) return i;
  fprintf(stderr, "flink-bench state: %s is ", name);
  for (int i = 0; i < n; i++)
    fprintf(stderr, "%s%s", names[i], i == n - 1 ? "" : i == n - 2 ? " or " : ", ");
  fprintf(stderr, ", not '%s'\n", v);
  return -1;
}

static int bs_parse(int argc, char **argv, bs_opts_t *o) {
  int i = 1;
  if (argc >= 2 && strcmp(argv[1], "state") == 0) i = 2; /* flink-bench's own argv */
  *o = (bs_opts_t){.hashmap = true,
                   .rocksdb = true,
                   .plain = true,
                   .keys = 1000000,
                   .ops = 1000000,
                   .block_cache_mb = 64,
                   .cache_mb = 64,
                   .write_buffer_mb = 16,
                   .dist = "uniform",
                   .only = -1,
                   .partitioned = true};
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
      static const char *const backends[] = {"hashmap", "rocksdb", "both"};
      int b = bs_choice(name, v, backends, 3);
      if (b < 0) return -1;
      o->hashmap = b != 1;
      o->rocksdb = b != 0;
    } else if (strcmp(name, "--keys") == 0) {
      if (bs_parse_u64(name, v, 1, UINT64_C(1) << 40, &o->keys)) return -1;
    } else if (strcmp(name, "--ops") == 0) {
      if (bs_parse_u64(name, v, 1, UINT64_C(1) << 34, &o->ops)) return -1;
    } else if (strcmp(name, "--dir") == 0) {
      o->dir = v;
    } else if (strcmp(name, "--block-cache-mb") == 0) {
      if (bs_parse_u64(name, v, 1, UINT64_C(1) << 20, &o->block_cache_mb)) return -1;
    } else if (strcmp(name, "--write-buffer-mb") == 0) {
      if (bs_parse_u64(name, v, 1, 4096, &o->write_buffer_mb)) return -1;
    } else if (strcmp(name, "--cache-mb") == 0) {
      if (bs_parse_u64(name, v, 0, UINT64_C(1) << 20, &o->cache_mb)) return -1;
    } else if (strcmp(name, "--compression") == 0) {
      o->compression =
          bs_choice(name, v, BS_COMPRESSION, (int)(sizeof BS_COMPRESSION / sizeof *BS_COMPRESSION));
      if (o->compression < 0) return -1;
    } else if (strcmp(name, "--op") == 0) {
      /* the operations in bs_ops_names' order, then all of them (o->only -1) */
      static const char *const ops[] = {"value_get_update", "list_append", "map_put", "map_iter",
                                        "all"};
      int op = bs_choice(name, v, ops, BS_OPS + 1);
      if (op < 0) return -1;
      o->only = op == BS_OPS ? -1 : op;
    } else if (strcmp(name, "--prefix-bloom") == 0) {
      static const char *const bools[] = {"true", "false"};
      int b = bs_choice(name, v, bools, 2);
      if (b < 0) return -1;
      o->prefix_bloom = b == 0;
    } else if (strcmp(name, "--partitioned-index-filters") == 0) {
      static const char *const bools[] = {"true", "false"};
      int b = bs_choice(name, v, bools, 2);
      if (b < 0) return -1;
      o->partitioned = b == 0;
    } else if (strcmp(name, "--plain") == 0) {
      static const char *const bools[] = {"true", "false"};
      int b = bs_choice(name, v, bools, 2);
      if (b < 0) return -1;
      o->plain = b == 0;
    } else if (strcmp(name, "--distribution") == 0) {
      char *end = NULL;
      o->dist = v;
      if (strcmp(v, "uniform") == 0) {
        o->zipf = 0;
      } else if (strncmp(v, "zipf:", 5) == 0 && (o->zipf = strtod(v + 5, &end)) > 0 &&
                 o->zipf <= 10 && end && *end == '\0') {
      } else {
        fprintf(stderr,
                "flink-bench state: --distribution is uniform or zipf:S with 0 < S <= 10, not "
                "'%s'\n",
                v);
        return -1;
      }
    } else {
      fprintf(stderr, "flink-bench state: unknown option '%s'\n", name);
      return -1;
    }
  }
  if (o->cache_mb && o->cache_mb << 20 < FL_KV_CACHE_MIN_BYTES) o->cache_mb = 1;
  return 0;
}

/* ---------------------------------------------------------------------------------- */
/* Keys                                                                                 */

/* Zipf ranks 1..n of exponent s by rejection-inversion (Hormann and Derflinger, "Rejection-
 * inversion to generate variates from monotone discrete distributions", 1996): O(1) per
 * draw whatever n. */
typedef struct bs_zipf {
  double s, n, hx1, hn, t;
} bs_zipf_t;

static double zh(const bs_zipf_t *z, double x) { return exp(-z->s * log(x)); }

/* log1p(x) / x and expm1(x) / x, both 1 at 0. */
static double zh1(double x) { return fabs(x) > 1e-8 ? log1p(x) / x : 1 - x / 2; }
static double zh2(double x) { return fabs(x) > 1e-8 ? expm1(x) / x : 1 + x / 2; }

/* H, the integral of h, and its inverse. */
static double zH(const bs_zipf_t *z, double x) {
  double lx = log(x);
  return zh2((1 - z->s) * lx) * lx;
}
static double zHinv(const bs_zipf_t *z, double x) {
  double t = x * (1 - z->s);
  if (t < -1) t = -1;
  return exp(zh1(t) * x);
}

static void bs_zipf_init(bs_zipf_t *z, double s, uint64_t n) {
  z->s = s;
  z->n = (double)n;
  z->hx1 = zH(z, 1.5) - 1;
  z->hn = zH(z, z->n + 0.5);
  z->t = 2 - zHinv(z, zH(z, 2.5) - zh(z, 2));
}

static uint64_t bs_zipf_draw(const bs_zipf_t *z, uint64_t *rng) {
  for (;;) {
    double u = z->hn + bs_unit(rng) * (z->hx1 - z->hn);
    double x = zHinv(z, u);
    double k = floor(x + 0.5);
    if (k < 1) k = 1;
    if (k > z->n) k = z->n;
    if (k - x <= z->t || u >= zH(z, k + 0.5) - zh(z, k)) return (uint64_t)k;
  }
}

/* The key of every op, drawn before any clock starts. */
static uint64_t *bs_keys(const bs_opts_t *o) {
  uint64_t *k = malloc(o->ops * sizeof *k);
  if (!k) return NULL;
  uint64_t rng = 0x9E3779B97F4A7C15ull;
  bs_zipf_t z;
  if (o->zipf > 0) bs_zipf_init(&z, o->zipf, o->keys);
  for (uint64_t i = 0; i < o->ops; i++) {
    if (o->zipf > 0)
      k[i] = (bs_zipf_draw(&z, &rng) - 1) * BS_PRIME % o->keys;
    else
      k[i] = bs_rand(&rng) % o->keys;
  }
  return k;
}

static inline uint16_t bs_kg(uint64_t id) {
  return (uint16_t)(fl_hash64(&id, sizeof id, 0) % BS_KEY_GROUPS);
}

/* ---------------------------------------------------------------------------------- */
/* Runs through the state layer                                                         */

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
  b->r.k.kg = bs_kg(id);
}

static int bs_open(bs_run_t *b, const bs_opts_t *o, fl_kv_rocksdb_shared_t *sh, const char *dir,
                   fl_state_kind_t kind) {
  char err[512] = "";
  memset(b, 0, sizeof *b);
  int rc =
      sh ? fl_kv_rocksdb_new(sh, dir, NULL, &b->kv, err, sizeof err) : fl_kv_hashmap_new(&b->kv);
  if (rc == FL_OK && sh && o->cache_mb) {
    fl_kv_t store = b->kv;
    rc = fl_kv_cache_new((size_t)o->cache_mb << 20, &b->cache);
    if (rc == FL_OK) rc = fl_kv_cache_wrap(b->cache, &store, &b->kv);
    if (rc) fl_kv_destroy(&store);
  }
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
  fl_kv_cache_destroy(b->cache);
  b->cache = NULL;
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

static const char *bs_ops_names[] = {"value_get_update", "list_append", "map_put", "map_iter"};

/* The key of map_iter's i-th walk: every other one a key never written. */
static inline uint64_t bs_walk_key(const bs_opts_t *o, const uint64_t *keys, uint64_t i) {
  return i % 2 ? keys[i] + o->keys : keys[i];
}

static int bs_count_entries(const void *uk, size_t ukl, const void *v, size_t vl, void *arg) {
  (void)uk;
  (void)ukl;
  (void)v;
  (void)vl;
  ++*(uint64_t *)arg;
  return 0;
}

/* Waits (up to 10 minutes) until the store's compactions are done, so that the timed
 * walks of map_iter neither share the CPU with the preload's compactions nor find the
 * levels changing under them. */
static void bs_settle(void *self, bool (*busy)(void *self)) {
  for (int i = 0; i < 6000 && busy(self); i++) nanosleep(&(struct timespec){0, 100000000}, NULL);
}

static bool bs_kv_busy(void *self) {
  fl_kv_t *kv = self;
  bool want[FL_KV_STAT_N] = {0};
  int64_t v[FL_KV_STAT_N];
  for (int i = 0; i < FL_KV_STAT_N; i++) v[i] = -1;
  want[FL_KV_STAT_NUM_RUNNING_COMPACTIONS] = want[FL_KV_STAT_ESTIMATE_PENDING_COMPACTION_BYTES] =
      true;
  if (!kv->ops->stats || kv->ops->stats(kv->self, want, v)) return false;
  return v[FL_KV_STAT_NUM_RUNNING_COMPACTIONS] > 0 ||
         v[FL_KV_STAT_ESTIMATE_PENDING_COMPACTION_BYTES] > 0;
}

static bool bs_db_busy(void *self) {
  uint64_t running = 0, pending = 0;
  rocksdb_property_int(self, "rocksdb.num-running-compactions", &running);
  rocksdb_property_int(self, "rocksdb.compaction-pending", &pending);
  return running || pending;
}

static void bs_settle_kv(fl_kv_t *kv) { bs_settle(kv, bs_kv_busy); }
static void bs_settle_db(rocksdb_t *db) { bs_settle(db, bs_db_busy); }

/* What a run measured, for its line. */
typedef struct bs_result {
  double secs, cpu;
  double hit_rate; /* < 0: no cache */
  size_t cells;
  double present_s, absent_s; /* map_iter: wall time of the walks of written keys, others */
} bs_result_t;

static void bs_print(const bs_opts_t *o, const char *backend, int op, const bs_result_t *r,
                     double plain_ops_per_s) {
  double ops_s = r->secs > 0 ? (double)o->ops / r->secs : 0.0;
  printf("{\"bench\":\"state\",\"backend\":\"%s\",\"op\":\"%s\",\"keys\":%" PRIu64
         ",\"ops\":%" PRIu64 ",\"distribution\":\"%s\",\"cache_mb\":%" PRIu64
         ",\"seconds\":%.3f,\"cpu_seconds\":%.3f,\"ops_per_s\":%.0f",
         backend, bs_ops_names[op], o->keys, o->ops, o->dist,
         strcmp(backend, "rocksdb") == 0 ? o->cache_mb : 0, r->secs, r->cpu, ops_s);
  if (strcmp(backend, "hashmap") != 0)
    printf(",\"compression\":\"%s\"", BS_COMPRESSION[o->compression]);
  if (strcmp(backend, "rocksdb") == 0 ||
      (strcmp(backend, "rocksdb-c-api") == 0 && op == BS_MAP_ITER))
    printf(",\"partitioned_index_filters\":%s", o->partitioned ? "true" : "false");
  if (strcmp(backend, "rocksdb-c-api") == 0 && op == BS_MAP_ITER)
    printf(",\"prefix_bloom\":%s", o->prefix_bloom ? "true" : "false");
  if (r->hit_rate >= 0)
    printf(",\"cache_hit_rate\":%.4f,\"cache_cells\":%zu", r->hit_rate, r->cells);
  if (op == BS_MAP_ITER && o->ops >= 2)
    printf(",\"present_us\":%.2f,\"absent_us\":%.2f",
           r->present_s * 1e6 / (double)((o->ops + 1) / 2),
           r->absent_s * 1e6 / (double)(o->ops / 2));
  if (plain_ops_per_s > 0) printf(",\"vs_plain\":%.2f", ops_s / plain_ops_per_s);
  printf("}\n");
  fflush(stdout);
}

/* The timed loop, on its own for profilers (valgrind --toggle-collect=bs_timed). */
__attribute__((noinline)) static int bs_timed(bs_run_t *b, const bs_opts_t *o, const uint64_t *keys,
                                              int op, uint64_t *met, double *split) {
  int rc = FL_OK;
  for (uint64_t i = 0; i < o->ops && rc == FL_OK; i++) {
    bs_at(b, op == BS_MAP_ITER ? bs_walk_key(o, keys, i) : keys[i]);
    if (op == BS_MAP_ITER) {
      double t = bench_now_s();
      rc = fl_st_map_foreach(&b->r, bs_count_entries, met);
      split[i % 2] += bench_now_s() - t;
    } else if (op == 0) {
      const void *v;
      size_t n;
      uint64_t x = 0;
      rc = fl_st_value_get(&b->r, &v, &n);
      if (rc == 1 && n == sizeof x)
        memcpy(&x, v, sizeof x);
      else if (rc >= 0)
        rc = FL_EPARSE;
      x++;
      if (rc >= 0) rc = fl_st_value_set(&b->r, &x, sizeof x);
    } else if (op == 1) {
      rc = fl_st_list_add(&b->r, &i, sizeof i);
    } else {
      uint32_t uk = (uint32_t)(i % BS_MAP_KEYS);
      rc = fl_st_map_put(&b->r, &uk, sizeof uk, &i, sizeof i);
    }
  }
  return rc;
}

/* One (backend, operation) run through the state layer. 0, or 1 on failure. */
static int bs_run_op(const bs_opts_t *o, const uint64_t *keys, fl_kv_rocksdb_shared_t *sh,
                     const char *dir, int op, bs_result_t *res) {
  static const fl_state_kind_t kinds[] = {FL_STATE_VALUE, FL_STATE_LIST, FL_STATE_MAP,
                                          FL_STATE_MAP};
  uint64_t met = 0;
  bs_run_t b;
  int rc = bs_open(&b, o, sh, dir, kinds[op]);
  double t0 = 0, c0 = 0;
  const char *what = "preload";
  fl_kv_cache_stats_t s0 = {0}, s1 = {0};
  *res = (bs_result_t){0, 0, -1, 0, 0, 0};
  if (rc) goto done;
  if (op == 0) {
    uint64_t zero = 0;
    for (uint64_t i = 0; i < o->keys && rc == FL_OK; i++) {
      bs_at(&b, i);
      rc = fl_st_value_set(&b.r, &zero, sizeof zero);
    }
    /* the preload reaches the store, as a restored job's state would be there */
    if (rc == FL_OK && b.cache) rc = fl_kv_cache_drop(&b.kv);
    if (rc) goto done;
  }
  if (op == BS_MAP_ITER) {
    /* One user key of every key per round, each round flushed into table files of its
     * own (compactions then spread them over levels). */
    for (uint32_t uk = 0; uk < BS_MAP_KEYS && rc == FL_OK; uk++) {
      uint64_t v = uk;
      for (uint64_t i = 0; i < o->keys && rc == FL_OK; i++) {
        bs_at(&b, i);
        rc = fl_st_map_put(&b.r, &uk, sizeof uk, &v, sizeof v);
      }
      if (rc == FL_OK && b.cache) rc = fl_kv_cache_drop(&b.kv);
      if (rc == FL_OK && sh) rc = fl_kv_rocksdb_flush(fl_kv_cache_inner(&b.kv));
    }
    if (rc == FL_OK && sh) bs_settle_kv(fl_kv_cache_inner(&b.kv));
    if (rc) goto done;
  }
  if (b.cache) fl_kv_cache_stats(&b.kv, &s0);
  what = bs_ops_names[op];
  t0 = bench_now_s();
  c0 = bench_cpu_s();
  double split[2] = {0, 0};
  rc = bs_timed(&b, o, keys, op, &met, split);
  res->present_s = split[0];
  res->absent_s = split[1];
  res->secs = bench_now_s() - t0;
  res->cpu = bench_cpu_s() - c0;
  if (rc) goto done;
  if (b.cache) {
    fl_kv_cache_stats(&b.kv, &s1);
    uint64_t h = s1.hits - s0.hits, m = s1.misses - s0.misses;
    res->hit_rate = h + m ? (double)h / (double)(h + m) : 0;
    res->cells = s1.items;
  }
  /* Untimed checks: nothing lost. */
  what = "check";
  if (op == BS_MAP_ITER) {
    uint64_t want = (o->ops + 1) / 2 * BS_MAP_KEYS;
    if (met != want) {
      fprintf(stderr, "flink-bench state: map_iter met %" PRIu64 " entries, not %" PRIu64 "\n", met,
              want);
      rc = FL_EIO;
    }
  } else if (op < 2) {
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
done:
  if (rc && rc != FL_EIO)
    fprintf(stderr, "flink-bench state: %s %s failed: %s%s%s\n", sh ? "rocksdb" : "hashmap", what,
            fl_err_name(rc), sh && b.kv.ops ? ": " : "", sh ? fl_kv_errmsg(&b.kv) : "");
  bs_close(&b);
  return rc ? 1 : 0;
}

/* ---------------------------------------------------------------------------------- */
/* The plain RocksDB loop                                                               */

static char *bs_concat(void *st, const char *key, size_t kl, const char *existing, size_t el,
                       const char *const *ops, const size_t *opl, int n, unsigned char *ok,
                       size_t *out_len) {
  (void)st;
  (void)key;
  (void)kl;
  size_t total = existing ? el : 0;
  for (int i = 0; i < n; i++) total += opl[i];
  char *out = malloc(total ? total : 1);
  size_t at = 0;
  if (out && existing && el) memcpy(out, existing, el), at = el;
  for (int i = 0; out && i < n; i++) {
    memcpy(out + at, ops[i], opl[i]);
    at += opl[i];
  }
  *ok = out != NULL;
  *out_len = total;
  return out;
}

static char *bs_concat_partial(void *st, const char *key, size_t kl, const char *const *ops,
                               const size_t *opl, int n, unsigned char *ok, size_t *out_len) {
  return bs_concat(st, key, kl, NULL, 0, ops, opl, n, ok, out_len);
}

static void bs_noop(void *st) { (void)st; }
static const char *bs_merge_name(void *st) {
  (void)st;
  return "bench.append";
}

/* The backend's key layout: kg(2) | len 8 | key(8) | len 0 [| 0x00 | user key(4)]. */
static size_t bs_plain_key(unsigned char *p, uint64_t id, const uint32_t *uk) {
  uint16_t kg = bs_kg(id);
  p[0] = (unsigned char)(kg >> 8);
  p[1] = (unsigned char)kg;
  p[2] = 8;
  memcpy(p + 3, &id, 8);
  p[11] = 0;
  if (!uk) return 12;
  p[12] = 0;
  memcpy(p + 13, uk, 4);
  return 17;
}

/* The plain loops' store options: o's block cache, write buffers and compression
 * (uncompressed table files read through mmap, as the backend's), a whole-key bloom
 * filter; with backend_like also the backend's index and filter blocks in the block
 * cache (whole, with its cache shards, or partitioned), dynamic level sizes and
 * memtable filter (map_iter), else RocksDB's whole index and filter blocks outside the
 * block cache. *bb and *cache are the caller's to
 * destroy after the options. */
static rocksdb_options_t *bs_plain_options(const bs_opts_t *o, bool backend_like,
                                           rocksdb_block_based_table_options_t **bb,
                                           rocksdb_cache_t **cache) {
  rocksdb_options_t *opt = rocksdb_options_create();
  *bb = rocksdb_block_based_options_create();
  *cache = fl_kv_rocksdb_block_cache_new((size_t)o->block_cache_mb << 20,
                                         !backend_like || o->partitioned);
  rocksdb_block_based_options_set_block_cache(*bb, *cache);
  rocksdb_block_based_options_set_filter_policy(*bb, rocksdb_filterpolicy_create_bloom_full(10));
  if (backend_like) {
    if (o->partitioned) {
      rocksdb_block_based_options_set_index_type(
          *bb, rocksdb_block_based_table_index_type_two_level_index_search);
      rocksdb_block_based_options_set_partition_filters(*bb, 1);
      rocksdb_block_based_options_set_metadata_block_size(*bb, 4096);
    }
    rocksdb_block_based_options_set_cache_index_and_filter_blocks(*bb, 1);
    rocksdb_block_based_options_set_cache_index_and_filter_blocks_with_high_priority(*bb, 1);
    rocksdb_block_based_options_set_pin_top_level_index_and_filter(*bb, 1);
    rocksdb_block_based_options_set_pin_l0_filter_and_index_blocks_in_cache(*bb, 1);
    rocksdb_options_set_level_compaction_dynamic_level_bytes(opt, 1);
    rocksdb_options_set_memtable_prefix_bloom_size_ratio(opt, 0.02);
    rocksdb_options_set_memtable_whole_key_filtering(opt, 1);
  }
  rocksdb_options_set_block_based_table_factory(opt, *bb);
  rocksdb_options_set_create_if_missing(opt, 1);
  rocksdb_options_set_write_buffer_size(opt, (size_t)o->write_buffer_mb << 20);
  rocksdb_options_set_max_write_buffer_number(opt, 2);
  rocksdb_options_set_max_background_jobs(opt, 2);
  rocksdb_options_set_compression(opt, fl_kv_rocksdb_compression_type(o->compression));
  if (o->compression == FL_KV_RDB_NO_COMPRESSION) rocksdb_options_set_allow_mmap_reads(opt, 1);
  return opt;
}

static int bs_plain_op(const bs_opts_t *o, const uint64_t *keys, const char *dir, int op,
                       bs_result_t *res) {
  char *e = NULL;
  int rc = 1;
  *res = (bs_result_t){0, 0, -1, 0, 0, 0};
  rocksdb_block_based_table_options_t *bb;
  rocksdb_cache_t *cache;
  rocksdb_options_t *opt = bs_plain_options(o, false, &bb, &cache);
  rocksdb_options_set_merge_operator(
      opt, rocksdb_mergeoperator_create(NULL, bs_noop, bs_concat, bs_concat_partial, NULL,
                                        bs_merge_name));
  rocksdb_writeoptions_t *wo = rocksdb_writeoptions_create();
  rocksdb_writeoptions_disable_WAL(wo, 1);
  rocksdb_readoptions_t *ro = rocksdb_readoptions_create();
  rocksdb_t *db = rocksdb_open(opt, dir, &e);
  unsigned char k[32];
  if (e) goto done;
  if (op == 0) {
    rocksdb_writebatch_t *b = rocksdb_writebatch_create();
    uint64_t zero = 0;
    for (uint64_t i = 0; i < o->keys && !e; i++) {
      rocksdb_writebatch_put(b, (char *)k, bs_plain_key(k, i, NULL), (char *)&zero, 8);
      if (rocksdb_writebatch_count(b) == 4096 || i + 1 == o->keys) {
        rocksdb_write(db, wo, b, &e);
        rocksdb_writebatch_clear(b);
      }
    }
    rocksdb_writebatch_destroy(b);
    if (e) goto done;
  }
  double t0 = bench_now_s(), c0 = bench_cpu_s();
  for (uint64_t i = 0; i < o->ops && !e; i++) {
    uint64_t id = keys[i];
    if (op == 0) {
      size_t kl = bs_plain_key(k, id, NULL), vl;
      rocksdb_pinnableslice_t *ps = rocksdb_get_pinned(db, ro, (char *)k, kl, &e);
      uint64_t x = 0;
      if (ps) {
        const char *v = rocksdb_pinnableslice_value(ps, &vl);
        if (vl == 8) memcpy(&x, v, 8);
        rocksdb_pinnableslice_destroy(ps);
      }
      x++;
      if (!e) rocksdb_put(db, wo, (char *)k, kl, (char *)&x, 8, &e);
    } else if (op == 1) {
      unsigned char item[16] = {8};
      memcpy(item + 8, &i, 8);
      rocksdb_merge(db, wo, (char *)k, bs_plain_key(k, id, NULL), (char *)item, 16, &e);
    } else {
      uint32_t uk = (uint32_t)(i % BS_MAP_KEYS);
      rocksdb_put(db, wo, (char *)k, bs_plain_key(k, id, &uk), (char *)&i, 8, &e);
    }
  }
  res->secs = bench_now_s() - t0;
  res->cpu = bench_cpu_s() - c0;
  if (!e) rc = 0;
done:
  if (e) fprintf(stderr, "flink-bench state: plain RocksDB %s failed: %s\n", bs_ops_names[op], e);
  free(e);
  if (db) rocksdb_close(db);
  rocksdb_readoptions_destroy(ro);
  rocksdb_writeoptions_destroy(wo);
  rocksdb_options_destroy(opt);
  rocksdb_block_based_options_destroy(bb);
  rocksdb_cache_destroy(cache);
  return rc;
}

/* map_iter with RocksDB's C API alone, on a store with the backend's options. */
static int bs_plain_map_iter(const bs_opts_t *o, const uint64_t *keys, const char *dir,
                             bs_result_t *res) {
  char *e = NULL;
  int rc = 1;
  uint64_t met = 0;
  *res = (bs_result_t){0, 0, -1, 0, 0, 0};
  rocksdb_block_based_table_options_t *bb;
  rocksdb_cache_t *cache;
  rocksdb_options_t *opt = bs_plain_options(o, true, &bb, &cache);
  /* Every key here is a map entry kg | 8 | key | 0 | 0x00 | user key: prefix 13 bytes,
   * seeks in prefix mode (the upper bound ends them either way). */
  if (o->prefix_bloom)
    rocksdb_options_set_prefix_extractor(opt, rocksdb_slicetransform_create_fixed_prefix(13));
  rocksdb_writeoptions_t *wo = rocksdb_writeoptions_create();
  rocksdb_writeoptions_disable_WAL(wo, 1);
  rocksdb_flushoptions_t *fo = rocksdb_flushoptions_create();
  rocksdb_flushoptions_set_wait(fo, 1);
  rocksdb_readoptions_t *ro = rocksdb_readoptions_create();
  rocksdb_readoptions_set_prefix_same_as_start(ro, 1);
  unsigned char k[32], hi[16];
  rocksdb_t *db = rocksdb_open(opt, dir, &e);
  if (e) goto done;
  for (uint32_t uk = 0; uk < BS_MAP_KEYS && !e; uk++) {
    uint64_t v = uk;
    for (uint64_t i = 0; i < o->keys && !e; i++)
      rocksdb_put(db, wo, (char *)k, bs_plain_key(k, i, &uk), (char *)&v, 8, &e);
    if (!e) rocksdb_flush(db, fo, &e);
  }
  if (e) goto done;
  bs_settle_db(db);
  double t0 = bench_now_s(), c0 = bench_cpu_s();
  for (uint64_t i = 0; i < o->ops && !e; i++) {
    uint32_t uk = 0;
    bs_plain_key(k, bs_walk_key(o, keys, i), &uk); /* k[0..13): the seek key P | 0x00 */
    memcpy(hi, k, 13);
    hi[12] = 1;
    double t = bench_now_s();
    rocksdb_readoptions_set_iterate_upper_bound(ro, (char *)hi, 13);
    rocksdb_iterator_t *it = rocksdb_create_iterator(db, ro);
    for (rocksdb_iter_seek(it, (char *)k, 13); rocksdb_iter_valid(it); rocksdb_iter_next(it)) {
      size_t kl, vl;
      const char *key = rocksdb_iter_key(it, &kl);
      const char *val = rocksdb_iter_value(it, &vl);
      met += key && val;
    }
    rocksdb_iter_get_error(it, &e);
    rocksdb_iter_destroy(it);
    *(i % 2 ? &res->absent_s : &res->present_s) += bench_now_s() - t;
  }
  res->secs = bench_now_s() - t0;
  res->cpu = bench_cpu_s() - c0;
  if (!e && met != (o->ops + 1) / 2 * BS_MAP_KEYS)
    fprintf(stderr, "flink-bench state: plain RocksDB map_iter met %" PRIu64 " entries\n", met);
  else if (!e)
    rc = 0;
done:
  if (e) fprintf(stderr, "flink-bench state: plain RocksDB map_iter failed: %s\n", e);
  free(e);
  if (db) rocksdb_close(db);
  rocksdb_readoptions_destroy(ro);
  rocksdb_flushoptions_destroy(fo);
  rocksdb_writeoptions_destroy(wo);
  rocksdb_options_destroy(opt);
  rocksdb_block_based_options_destroy(bb);
  rocksdb_cache_destroy(cache);
  return rc;
}

/* ---------------------------------------------------------------------------------- */

int fl_bench_state_main(int argc, char **argv) {
  bs_opts_t o;
  int prc = bs_parse(argc, argv, &o);
  if (prc) {
    if (prc < 0) bs_usage(stderr);
    return prc > 0 ? 0 : 2;
  }
  uint64_t *keys = bs_keys(&o);
  if (!keys) {
    fprintf(stderr, "flink-bench state: out of memory for %" PRIu64 " keys\n", o.ops);
    return 1;
  }
  int status = 0;
  bs_result_t r;
  if (o.hashmap)
    for (int op = 0; op < BS_OPS; op++) {
      if (o.only >= 0 && op != o.only) continue;
      status |= bs_run_op(&o, keys, NULL, NULL, op, &r);
      if (!status) bs_print(&o, "hashmap", op, &r, 0);
    }
  if (!o.rocksdb) {
    free(keys);
    return status;
  }

  char tmpl[1024], sub[1100], err[512] = "";
  snprintf(tmpl, sizeof tmpl, "%s/flink-bench-state-XXXXXX", o.dir ? o.dir : "/tmp");
  if (!mkdtemp(tmpl)) {
    fprintf(stderr, "flink-bench state: cannot create a directory in '%s': %s\n",
            o.dir ? o.dir : "/tmp", strerror(errno));
    free(keys);
    return 1;
  }
  fl_kv_rocksdb_opts_t ro = {(size_t)o.block_cache_mb << 20,
                             (size_t)o.write_buffer_mb << 20,
                             0,
                             o.compression,
                             o.partitioned,
                             0};
  fl_kv_rocksdb_shared_t *sh = NULL;
  if (fl_kv_rocksdb_shared_new(&ro, &sh, err, sizeof err) != FL_OK) {
    fprintf(stderr, "flink-bench state: %s\n", err);
    status = 1;
  }
  for (int op = 0; sh && op < BS_OPS; op++) {
    if (o.only >= 0 && op != o.only) continue;
    bs_result_t plain = {0, 0, -1, 0, 0, 0};
    if (o.plain) {
      snprintf(sub, sizeof sub, "%s/plain-%s", tmpl, bs_ops_names[op]);
      int x = op == BS_MAP_ITER ? bs_plain_map_iter(&o, keys, sub, &plain)
                                : bs_plain_op(&o, keys, sub, op, &plain);
      status |= x;
      if (!x) bs_print(&o, "rocksdb-c-api", op, &plain, 0);
    }
    snprintf(sub, sizeof sub, "%s/%s", tmpl, bs_ops_names[op]);
    int x = bs_run_op(&o, keys, sh, sub, op, &r);
    status |= x;
    if (!x) bs_print(&o, "rocksdb", op, &r, plain.secs > 0 ? (double)o.ops / plain.secs : 0);
  }
  fl_kv_rocksdb_shared_destroy(sh);
  bs_rm_tree(tmpl);
  free(keys);
  return status;
}
