/*
 * The state-backend interface: a key/value store, addressed by (table, key group, key,
 * namespace). Tables are created per (operator, state descriptor). Two backends
 * implement it: the hashmap (src/state/hashmap*.c, one store per worker thread) and
 * RocksDB (src/state/rocksdb*.c, one store per keyed operator subtask: a column family
 * per table, key bytes = kg(2, big-endian) | key | namespace). A third backend
 * implements the same table; tests/kv_contract.h is the suite every backend passes.
 *
 * The table of operations is versioned and append-only (FL_KV_OPS_VERSION): a backend
 * sets .version to the version it was written against, and members added after it are
 * NULL for the library.
 *
 * Threading: one instance belongs to one worker thread; no call is thread-safe.
 * Borrowed pointers (get, map_get, iterate callbacks) stay valid until the next call
 * that changes the same instance.
 */
#ifndef FL_STATE_KV_H
#define FL_STATE_KV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct fl_kkey {
  uint16_t kg;
  const void *key;
  size_t key_len;
  const void *ns; /* namespace: the window for window state, empty otherwise */
  size_t ns_len;
} fl_kkey_t;

/* Return value of an iterate callback. */
#define FL_KV_NEXT 0   /* go on */
#define FL_KV_DELETE 1 /* delete this entry and go on */
#define FL_KV_STOP 2   /* stop */

/* 2: stats, value_ref, prefetch; 3: flush, write_batch, errmsg; 4: ref_prepare,
 * value_ref_prepared, prefetch_prepared; 5: take; 6: take_prepared; 7:
 * prefetch_prepared2, append_prepared; 8: value_ref_prepared_ahead (each optional:
 * NULL). */
#define FL_KV_OPS_VERSION 8

/* Backend statistics (ops version 2), by Flink's state.backend.rocksdb.metrics.* names:
 * X(enum suffix, Flink's name, opt-in). Opt-in ones are read only when their
 * configuration key is true, as in Flink; the block cache hit and miss counts are on by
 * default (RocksDB's statistics behind them cost about 3 % of a RocksDB-bound run), and
 * so are the misses of index and filter blocks among them (not Flink's: they show whole
 * index and filter blocks that no longer fit the cache). The cache-* ones are the
 * write-back cache's in front of RocksDB (src/state/cache.h; not Flink's, which has
 * none): lookups it answered and those that went to the store, the bytes it holds for
 * this store and how many of them are dirty, the cells it evicted, and how long the last
 * flush at a checkpoint barrier took (us). */
#define FL_KV_STATS_MAP(X)                                                     \
  X(BLOCK_CACHE_USAGE, "block-cache-usage", 1)                                 \
  X(BLOCK_CACHE_HIT, "block-cache-hit", 0)                                     \
  X(BLOCK_CACHE_MISS, "block-cache-miss", 0)                                   \
  X(BLOCK_CACHE_INDEX_MISS, "block-cache-index-miss", 0)                       \
  X(BLOCK_CACHE_FILTER_MISS, "block-cache-filter-miss", 0)                     \
  X(ESTIMATE_NUM_KEYS, "estimate-num-keys", 1)                                 \
  X(CUR_SIZE_ALL_MEM_TABLES, "cur-size-all-mem-tables", 1)                     \
  X(ESTIMATE_PENDING_COMPACTION_BYTES, "estimate-pending-compaction-bytes", 1) \
  X(NUM_RUNNING_COMPACTIONS, "num-running-compactions", 1)                     \
  X(TOTAL_SST_FILES_SIZE, "total-sst-files-size", 1)                           \
  X(IS_WRITE_STOPPED, "is-write-stopped", 1)                                   \
  X(ACTUAL_DELAYED_WRITE_RATE, "actual-delayed-write-rate", 1)                 \
  X(CACHE_HIT, "cache-hit", 0)                                                 \
  X(CACHE_MISS, "cache-miss", 0)                                               \
  X(CACHE_USAGE, "cache-usage", 0)                                             \
  X(CACHE_DIRTY_BYTES, "cache-dirty-bytes", 0)                                 \
  X(CACHE_EVICTIONS, "cache-evictions", 0)                                     \
  X(CACHE_FLUSH_US, "cache-flush-us", 0)                                       \
  X(CACHE_WRITTEN_AHEAD, "cache-written-ahead", 0)

typedef enum fl_kv_stat {
#define FL_KV_STAT_ENUM_(e, name, optin) FL_KV_STAT_##e,
  FL_KV_STATS_MAP(FL_KV_STAT_ENUM_)
#undef FL_KV_STAT_ENUM_
  FL_KV_STAT_N
} fl_kv_stat_t;

/* One write of write_batch. */
enum {
  FL_KV_W_PUT = 1, /* put(k, val, len) */
  FL_KV_W_APPEND,  /* append(k, val, len) */
  FL_KV_W_DEL,     /* del(k) */
  FL_KV_W_MAP_PUT, /* map_put(k, ukey, val) */
  FL_KV_W_MAP_DEL  /* map_del(k, ukey) */
};
typedef struct fl_kv_write {
  int op; /* FL_KV_W_* */
  uint32_t table;
  fl_kkey_t k;
  const void *ukey;
  size_t ukey_len;
  const void *val;
  size_t len;
} fl_kv_write_t;

/* Cells of one table and namespace, found many times by key (the contents of one window
 * for a run of records): what value_ref checks and derives from the table and the
 * namespace is done once, by ref_prepare (ops version 4). The caller fills the first
 * four members; the backend the rest. ns is borrowed and must stay unchanged while the
 * preparation is used; a preparation stays valid for the life of the instance. */
typedef struct fl_kv_ref_prep {
  uint32_t table;
  const void *ns;
  size_t ns_len;
  size_t new_len;   /* the size of a created cell, as value_ref's new_len */
  uint64_t ns_hash; /* the backend's */
  uint32_t hint;    /* the backend's too (0 from a backend that sets none) */
} fl_kv_ref_prep_t;

typedef struct fl_kv_ops {
  int version; /* FL_KV_OPS_VERSION */
  const char *name;
  void (*destroy)(void *self);
  /* Opens (creating if needed) the table with this name; the same name gives the same
   * id. Ids are small and dense, from 0. */
  int (*open_table)(void *self, const char *name, uint32_t *id);

  /* Value cells. get returns 1 and the value, 0 if absent, or a negative error. */
  int (*get)(void *self, uint32_t table, const fl_kkey_t *k, const void **val, size_t *len);
  int (*put)(void *self, uint32_t table, const fl_kkey_t *k, const void *val, size_t len);
  /* Appends bytes to the cell's value, creating it if absent (list state). */
  int (*append)(void *self, uint32_t table, const fl_kkey_t *k, const void *val, size_t len);
  /* Removes the cell (and, for map cells, every user key under it). 0 also if absent. */
  int (*del)(void *self, uint32_t table, const fl_kkey_t *k);

  /* Map cells: user keys under (table, k). A table is used either for value cells or
   * for map cells, never both. */
  int (*map_get)(void *self, uint32_t table, const fl_kkey_t *k, const void *ukey, size_t ukey_len,
                 const void **val, size_t *len);
  int (*map_put)(void *self, uint32_t table, const fl_kkey_t *k, const void *ukey, size_t ukey_len,
                 const void *val, size_t len);
  int (*map_del)(void *self, uint32_t table, const fl_kkey_t *k, const void *ukey, size_t ukey_len);
  /* Visits every user key of the map cell; cb may return FL_KV_DELETE. Returns 0, or
   * the first negative error. */
  int (*map_iter)(void *self, uint32_t table, const fl_kkey_t *k,
                  int (*cb)(const void *ukey, size_t ukey_len, const void *val, size_t len,
                            void *arg),
                  void *arg);

  /* Visits up to max_entries cells of a table starting at *cursor (0 = the start) and
   * stores where to continue in *cursor (0 again after the end). Used for incremental
   * TTL cleanup, snapshots and end-of-input sweeps. Entries inserted during a walk may
   * or may not be seen; none is seen twice within one pass unless the table grew.
   * For map tables, cb gets each cell (k) once with val = NULL. */
  int (*iterate)(void *self, uint32_t table, uint64_t *cursor, size_t max_entries,
                 int (*cb)(const fl_kkey_t *k, const void *val, size_t len, void *arg), void *arg);
  /* Number of cells in a table (map cells count once). */
  size_t (*count)(void *self, uint32_t table);

  /* ---- Optional: NULL in backends that do not need them. ---- */

  /* Tells the backend where TTL timestamps sit in a table's values, so that it can drop
   * expired state by itself (RocksDB: a compaction filter). layout is one of
   * FL_KV_TTL_*; ttl_ms > 0. Called once after open_table for tables with TTL. */
  int (*set_table_ttl)(void *self, uint32_t table, int layout, int64_t ttl_ms);
  /* The current processing time in ms, for that cleanup (set by the owning worker as
   * its clock advances; may be read by backend threads). */
  void (*set_time)(void *self, int64_t now_ms);
  /* Writes a consistent native copy of the whole store into the new directory dir
   * (RocksDB: rocksdb_checkpoint_create, hard links to SST files). The copy can be
   * opened again as a store (restore). FL_ENOTSUP if the backend has none. */
  int (*checkpoint)(void *self, const char *dir);
  /* Deletes every cell whose key group is outside [kg_first, kg_first + kg_count), in
   * every table (used after restoring a native copy at another parallelism). */
  int (*retain_key_groups)(void *self, uint32_t kg_first, uint32_t kg_count);
  /* Names of the tables the store holds (after a restore they exist before any
   * open_table): calls cb for each; used to enumerate state for savepoints. */
  int (*list_tables)(void *self, int (*cb)(const char *name, void *arg), void *arg);
  /* Version 2. Statistics: for each i with want[i] true, sets v[i] to the store's value
   * (a count, or bytes), or leaves it at -1 when the backend has none. Called by the
   * owning worker about once a second. NULL: no statistics. */
  int (*stats)(void *self, const bool *want, int64_t *v);

  /* Version 2, optional: for backends whose values live in memory. */

  /* The value cell k for an update in place, found with one lookup (the read-modify-
   * write of a rolling aggregate or a window). key_hash is fl_hash64(k->key,
   * k->key_len, 0), which the caller has at hand. An existing cell: 1, and *val, *len
   * its value, whose bytes the caller may overwrite (not resize). An absent cell is
   * created with new_len zero bytes: 0, *val and *len = new_len. The pointer stays
   * valid until the next call that changes this instance. FL_EINVAL for a map cell.
   * FL_ENOTSUP for a cell the backend cannot hand out (the state cache, for a value
   * larger than it caches), changing nothing: the caller then uses get and put. */
  int (*value_ref)(void *self, uint32_t table, const fl_kkey_t *k, uint64_t key_hash,
                   size_t new_len, void **val, size_t *len);
  /* A hint that cell k (key_hash as for value_ref) is about to be accessed, so that
   * the backend can start loading it from memory: with stage 0 what locates the cell,
   * with stage 1, a few records later, the cell itself. Changes nothing. */
  void (*prefetch)(void *self, uint32_t table, const fl_kkey_t *k, uint64_t key_hash, int stage);

  /* Version 3. Writes what the backend holds in memory ahead of its store (a cache's
   * dirty cells) to the store; called at each checkpoint barrier before the snapshot.
   * NULL: nothing is held back. */
  int (*flush)(void *self);
  /* Version 3. Applies n writes (fl_kv_write_t) in one go (RocksDB: one write batch),
   * in order; each means what the call of its kind means. On an error, some of them
   * may have been applied. NULL: the caller makes the calls one by one. */
  int (*write_batch)(void *self, const fl_kv_write_t *w, size_t n);
  /* Version 3. The message of the last failed call ("" if none), borrowed until the
   * next call. NULL: none. */
  const char *(*errmsg)(void *self);

  /* Version 4, optional: value_ref for many cells, its checks done once. ref_prepare
   * checks p's table and namespace and fills the backend's members: 0, or FL_EINVAL.
   * value_ref_prepared is value_ref(p->table, {kg, key, key_len, p->ns, p->ns_len},
   * key_hash, p->new_len, val, len) for a prepared p, with the same results, except
   * that it never refuses (no FL_ENOTSUP): a backend that may refuse leaves both NULL.
   * key_len must be below 2^32, and key non-NULL when key_len > 0. */
  int (*ref_prepare)(void *self, fl_kv_ref_prep_t *p);
  int (*value_ref_prepared)(void *self, const fl_kv_ref_prep_t *p, uint16_t kg, const void *key,
                            size_t key_len, uint64_t key_hash, void **val, size_t *len);
  /* Version 4, optional: prefetch for the cell value_ref_prepared(p, kg, key) would find. */
  void (*prefetch_prepared)(void *self, const fl_kv_ref_prep_t *p, uint16_t kg, uint64_t key_hash,
                            int stage);

  /* Version 5, optional: get and del of value cell k in one lookup (a window's result
   * read as its contents are removed). key_hash as for value_ref. A present cell is
   * removed: 1, and *val, *len its value, whose bytes stay valid until the next call
   * that changes this instance. An absent cell: 0, nothing changes. FL_EINVAL for a
   * map cell (nothing changes). */
  int (*take)(void *self, uint32_t table, const fl_kkey_t *k, uint64_t key_hash, const void **val,
              size_t *len);

  /* Version 6, optional: take for a namespace prepared by ref_prepare (a window's cells
   * taken key after key as it fires): take(p->table, {kg, key, key_len, p->ns,
   * p->ns_len}, key_hash, val, len), with the same results. key_len must be below 2^32,
   * and key non-NULL when key_len > 0. */
  int (*take_prepared)(void *self, const fl_kv_ref_prep_t *p, uint16_t kg, const void *key,
                       size_t key_len, uint64_t key_hash, const void **val, size_t *len);

  /* Version 7, optional: prefetch_prepared(p, kg0, key_hash0, 0) and then
   * prefetch_prepared(p, kg1, key_hash1, 1) in one call. A run of records prefetches at
   * each step the far record's slot and the near one's cell: at a million cells the
   * two calls per record cost more than the lookup they prepare. */
  void (*prefetch_prepared2)(void *self, const fl_kv_ref_prep_t *p, uint16_t kg0,
                             uint64_t key_hash0, uint16_t kg1, uint64_t key_hash1);
  /* Version 7, optional: append for a namespace prepared by ref_prepare (a window's
   * list of each key group's keys, one append per new (key, window)):
   * append(p->table, {kg, key, key_len, p->ns, p->ns_len}, val, len), with the same
   * results. key_len must be below 2^32, and key non-NULL when key_len > 0. */
  int (*append_prepared)(void *self, const fl_kv_ref_prep_t *p, uint16_t kg, const void *key,
                         size_t key_len, const void *val, size_t len);

  /* Version 8, optional: value_ref_prepared(p, kg, key, key_len, key_hash, val, len),
   * with the same results, that also starts loading the cell (ahead_kg, ahead_key_hash)
   * of p's namespace, which a lookup a few records later will want. A run of records
   * over cells beyond the first-level cache prefetches them this way inside the lookups
   * it makes anyway: a prefetch call of its own per record costs more than it saves. */
  int (*value_ref_prepared_ahead)(void *self, const fl_kv_ref_prep_t *p, uint16_t kg,
                                  const void *key, size_t key_len, uint64_t key_hash, void **val,
                                  size_t *len, uint16_t ahead_kg, uint64_t ahead_key_hash);
} fl_kv_ops_t;

/* Layouts for set_table_ttl, matching src/state/state.c. */
#define FL_KV_TTL_VALUE 1 /* value cell: [i64 last-update ms, native endian][bytes] */
/* value cell of list items, each [u32 len][u32 0][i64 ts][bytes][pad to 8] */
#define FL_KV_TTL_LIST 2
#define FL_KV_TTL_MAP 3 /* map cell: each user value [i64 ts][bytes] */

typedef struct fl_kv {
  const fl_kv_ops_t *ops;
  void *self;
} fl_kv_t;

/* The in-memory hashmap backend. */
int fl_kv_hashmap_new(fl_kv_t *out);

/* The RocksDB backend (src/state/rocksdb*.c). One store (one DB) per worker thread; a
 * shared part (block cache, and whatever else the workers' DBs share) is made once per
 * job and is thread-safe. */
typedef struct fl_kv_rocksdb_shared fl_kv_rocksdb_shared_t;
typedef struct fl_kv_rocksdb_opts {
  size_t block_cache_bytes;      /* shared LRU block cache; 0: 64 MiB */
  size_t write_buffer_bytes;     /* per column family; 0: 16 MiB */
  int max_write_buffers;         /* per column family; 0: 2 */
  int compression;               /* of table files: fl_kv_rocksdb_compression_t; 0: Snappy */
  int partitioned_index_filters; /* 1 (a job's default): each table file's index and filter
                                    in 4 KiB partitions under a pinned top level; 0: whole
                                    (see rocksdb.c) */
  int low_priority_compactions;  /* 1: compaction threads run at the lowest CPU priority
                                    (nice 19); process-wide and for the process's life */
} fl_kv_rocksdb_opts_t;
/* Table file compression, in the order of the configuration key's values
 * (state.backend.rocksdb.compression.per.level). Uncompressed files are also read
 * through mmap: a block is then used in place from the page cache. */
typedef enum {
  FL_KV_RDB_SNAPPY,
  FL_KV_RDB_NO_COMPRESSION,
  FL_KV_RDB_LZ4,
  FL_KV_RDB_ZSTD,
} fl_kv_rocksdb_compression_t;
/* RocksDB's C API constant for c (rocksdb_*_compression), or -1 for no such value. */
int fl_kv_rocksdb_compression_type(int c);
/* The block cache's shard bits for capacity bytes with whole index and filter blocks:
 * shards of at least 16 MiB (RocksDB's default, shards of 512 KiB or more, would hold
 * no whole filter of a large table file), at most 64 of them. */
int fl_kv_rocksdb_cache_shard_bits(size_t capacity);
int fl_kv_rocksdb_shared_new(const fl_kv_rocksdb_opts_t *o, fl_kv_rocksdb_shared_t **out, char *err,
                             size_t err_size);
void fl_kv_rocksdb_shared_destroy(fl_kv_rocksdb_shared_t *sh);
/* Opens a store in directory dir (created if missing; what it holds is deleted first
 * unless restore_from is set). restore_from: NULL, or a directory written by the
 * checkpoint op (or a copy of one), whose content becomes the store's initial state
 * (copied or hard-linked into dir; restore_from itself is never modified). Errors name
 * dir and RocksDB's message in err. */
int fl_kv_rocksdb_new(fl_kv_rocksdb_shared_t *sh, const char *dir, const char *restore_from,
                      fl_kv_t *out, char *err, size_t err_size);

/* The backend's message for its last failed call, or "". */
static inline const char *fl_kv_errmsg(const fl_kv_t *kv) {
  if (!kv || !kv->ops || kv->ops->version < 3 || !kv->ops->errmsg) return "";
  const char *m = kv->ops->errmsg(kv->self);
  return m ? m : "";
}

static inline void fl_kv_destroy(fl_kv_t *kv) {
  if (kv && kv->ops) kv->ops->destroy(kv->self);
  if (kv) kv->ops = NULL;
}

#endif
