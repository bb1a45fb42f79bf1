/*
 * The RocksDB state backend (kv.h): one DB per store (per worker thread), one column
 * family per table. This file holds the shared part (options, block cache), opening
 * and closing a store, and errors; the rest lives beside it (rocksdb_internal.h lists
 * the parts): cells and maps in rocksdb_cells.c, walks in rocksdb_walk.c, the merge
 * operator and TTL compaction filter in rocksdb_ttl.c, native checkpoints and restores
 * in rocksdb_native.c. What follows describes the whole backend.
 *
 * Keys. Every key begins with the key group, 2 bytes big-endian, so a key-group range
 * is a contiguous key range (retain_key_groups deletes the complement with two
 * DeleteRanges per column family). Then key and namespace, each as a LEB128 length and
 * the bytes, which makes the cell prefix
 *     P = kg(2) | len(key) | key | len(ns) | ns
 * self-delimiting: no cell's prefix is a prefix of another's. A value cell is stored
 * under P itself; each user key of a map cell under P | 0x00 | ukey, so the entries of
 * one map cell are exactly the range [P|0x00, P|0x01) (map_iter and map-cell deletes
 * are bounded scans of it), and a stored key tells by itself which kind it is: nothing
 * after P is a value cell. Column families are named "t:" + table name, so the
 * default column family (which RocksDB always has) is never a table.
 *
 * No prefix extractor: a map cell's scan positions an iterator in every level and
 * level-0 file. Prefix bloom filters of P | 0x00 were measured (docs/state.md): they
 * made scans of absent map cells faster and those of present ones slower, by as much.
 * Should they come back, every iterator but a map cell's scan must read in total order
 * (a walk resumes by seeking to a key that may be a map entry key, and a prefix-mode
 * seek skips the files whose prefix filter lacks it); tests/test_kv_rocksdb_levels.c
 * fails on such a walk.
 *
 * Tables hold value cells or map cells, never both (kv.h). The kind of a table is
 * learnt from its first write, or, for a column family that came with a restored
 * copy, from its first key when the table is first opened; a call of the other kind
 * then fails with FL_EINVAL (the hashmap backend checks the same per cell).
 *
 * Appends are RocksDB merges with a concatenating merge operator: an append writes
 * only the new bytes, where a read-modify-write would copy the whole list each time
 * (quadratic for a list built item by item, which is what window contents are).
 * Reads fold the operands.
 *
 * Borrowed pointers (get, map_get, iterate and map_iter callbacks) point into a ring
 * of RDB_RING store-owned buffers, each a copy of what RocksDB returned: a copy because
 * RocksDB's own memory is neither aligned (users cast accumulators to structs; every
 * buffer is malloc's 16-byte aligned) nor stable once its iterator or pinnable slice
 * is gone. A pointer stays valid for the next RDB_RING - 1 borrowing calls whatever
 * changes in between. That is kv.h's "until the next change" for every caller that
 * holds fewer than RDB_RING pointers at once (the state layer holds two at most), and
 * keeps memory bounded where keeping every pointer of a long read-only run would not.
 *
 * Walks (iterate). A walk is in key order, so none sees an entry twice. Where a paused
 * walk resumes is a key (the successor of the last cell visited) kept in the store in
 * a slot; the uint64 cursor handed out is the slot's token (a generation, and the slot
 * index in the low bits, so finding it is O(1)). A store keeps up to RDB_CURSORS (1024)
 * paused walks, far more than it has TTL-cleaned tables and snapshots in progress;
 * beyond that the least recently used is forgotten, and its token, when it comes back,
 * starts a new pass from the beginning of the table. A pass that ends frees its slot.
 * Entries deleted during a walk (by FL_KV_DELETE or between calls) are simply not met
 * again; entries inserted behind the walk's position are not seen until the next pass.
 *
 * TTL. Every column family gets a compaction filter factory at creation, whose filter
 * reads the table's layout and ttl (set_table_ttl) and the store's clock (set_time)
 * from atomics: compactions run on RocksDB's threads. Value and map entries are
 * dropped when ts + ttl <= now; list values are rewritten without their expired items
 * (dropped when none remain). Until set_time is first called nothing is dropped.
 * RocksDB filters stored values, not merge results: a list appended to since the last
 * compaction is folded into one value by a compaction and filtered by the next. The
 * cleanup is a space matter only; the state layer checks expiry on every read.
 *
 * count is a full scan, O(cells): an exact counter maintained on writes would drift
 * as compactions drop expired state behind the store's back. It is meant for tests
 * and metrics.
 *
 * The WAL is off: a store is a working copy, rebuilt from a checkpoint after a
 * failure, and a checkpoint flushes the memtables first.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <dirent.h>
#include <unistd.h>

#include <rocksdb/c.h>

#include "state/rocksdb_internal.h"
#include "util/fs.h"

/* ---------------------------------------------------------------------------------- */
/* Errors                                                                               */

/* Records a failure of `what` (on table t, if any) with RocksDB's message (freed) and
 * returns the code: FL_ENOMEM for RocksDB's memory limits, FL_EIO otherwise. */
int fl_rdb_fail(rdb_t *r, char *rerr, const char *what, const rdb_table_t *t) {
  const char *msg = rerr ? rerr : "unknown error";
  if (t)
    snprintf(r->err, sizeof r->err, "rocksdb state: %s of table '%s' in '%s' failed: %s", what,
             t->name, r->dir, msg);
  else
    snprintf(r->err, sizeof r->err, "rocksdb state: %s in '%s' failed: %s", what, r->dir, msg);
  int rc = rerr && (strstr(rerr, "Memory limit") || strstr(rerr, "bad_alloc")) ? FL_ENOMEM : FL_EIO;
  free(rerr);
  return rc;
}

void fl_rdb_set_err(char *err, size_t err_size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void fl_rdb_set_err(char *err, size_t err_size, const char *fmt, ...) {
  if (!err || err_size == 0) return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err, err_size, fmt, ap);
  va_end(ap);
}

static const char *rdb_errmsg(void *self) { return self ? ((const rdb_t *)self)->err : ""; }

const char *fl_kv_rocksdb_errmsg(const fl_kv_t *kv) {
  if (!kv || kv->ops != &fl_rdb_ops || !kv->self) return "";
  return ((const rdb_t *)kv->self)->err;
}

/* ---------------------------------------------------------------------------------- */
/* The timers' column family                                                            */

int fl_rdb_timers_cf(rdb_t *r, rocksdb_column_family_handle_t **cf) {
  if (!r->timers_cf) {
    char *e = NULL;
    r->timers_cf = rocksdb_create_column_family(r->db, r->base, RDB_TIMERS_CF, &e);
    if (e || !r->timers_cf) {
      r->timers_cf = NULL;
      return fl_rdb_fail(r, e, "creating the timers' column family", NULL);
    }
  }
  *cf = r->timers_cf;
  return FL_OK;
}

/* ---------------------------------------------------------------------------------- */
/* Shared part                                                                          */

int fl_kv_rocksdb_compression_type(int c) {
  switch (c) {
  case FL_KV_RDB_SNAPPY: return rocksdb_snappy_compression;
  case FL_KV_RDB_NO_COMPRESSION: return rocksdb_no_compression;
  case FL_KV_RDB_LZ4: return rocksdb_lz4_compression;
  case FL_KV_RDB_ZSTD: return rocksdb_zstd_compression;
  default: return -1;
  }
}

int fl_kv_rocksdb_cache_shard_bits(size_t capacity) {
  int bits = 0;
  while (bits < 6 && capacity >> (bits + 1) >= ((size_t)16 << 20)) bits++;
  return bits;
}

rocksdb_cache_t *fl_kv_rocksdb_block_cache_new(size_t capacity, bool partitioned) {
  if (partitioned) return rocksdb_cache_create_lru(capacity);
  rocksdb_lru_cache_options_t *lo = rocksdb_lru_cache_options_create();
  if (!lo) return NULL;
  rocksdb_lru_cache_options_set_capacity(lo, capacity);
  rocksdb_lru_cache_options_set_num_shard_bits(lo, fl_kv_rocksdb_cache_shard_bits(capacity));
  rocksdb_cache_t *c = rocksdb_cache_create_lru_opts(lo);
  rocksdb_lru_cache_options_destroy(lo);
  return c;
}

int fl_kv_rocksdb_shared_new(const fl_kv_rocksdb_opts_t *o, fl_kv_rocksdb_shared_t **out, char *err,
                             size_t err_size) {
  fl_kv_rocksdb_opts_t d = {0, 0, 0, 0, 1, 0};
  if (o) d = *o;
  if (!out) return FL_EINVAL;
  *out = NULL;
  if (fl_kv_rocksdb_compression_type(d.compression) < 0) {
    fl_rdb_set_err(err, err_size, "rocksdb state: compression %d is not one the backend knows",
                   d.compression);
    return FL_EINVAL;
  }
  if (!d.partitioned_index_filters && d.compression == FL_KV_RDB_NO_COMPRESSION) {
    /* Measured: the 10M-key Zipf line of flink-bench state ran at 30K ops/s (336 CPU s)
     * against 609K partitioned (19 CPU s): RocksDB reads the whole blocks again for
     * every get of a mapped, uncompressed file. */
    fl_rdb_set_err(err, err_size,
                   "rocksdb state: whole index and filter blocks do not go with uncompressed "
                   "table files read through mmap (every get reads the whole blocks again); "
                   "partition them or compress the files");
    return FL_EINVAL;
  }
  if (d.max_write_buffers < 0) {
    fl_rdb_set_err(err, err_size, "rocksdb state: max_write_buffers is %d, not >= 0",
                   d.max_write_buffers);
    return FL_EINVAL;
  }
  if (!d.block_cache_bytes) d.block_cache_bytes = RDB_DEFAULT_CACHE;
  if (!d.write_buffer_bytes) d.write_buffer_bytes = RDB_DEFAULT_WRITE_BUFFER;
  if (!d.max_write_buffers) d.max_write_buffers = RDB_DEFAULT_WRITE_BUFFERS;
  fl_kv_rocksdb_shared_t *sh = calloc(1, sizeof *sh);
  if (!sh) return FL_ENOMEM;
  sh->cache = fl_kv_rocksdb_block_cache_new(d.block_cache_bytes, d.partitioned_index_filters);
  sh->env = rocksdb_create_default_env();
  sh->base = rocksdb_options_create();
  rocksdb_block_based_table_options_t *bb = rocksdb_block_based_options_create();
  if (!sh->cache || !sh->env || !sh->base || !bb) {
    if (bb) rocksdb_block_based_options_destroy(bb);
    fl_kv_rocksdb_shared_destroy(sh);
    return FL_ENOMEM;
  }
  /* Index and filter blocks live in the block cache too, so that the cache bounds the
   * memory of every table file of every worker; high priority, and level-0 ones pinned
   * (every lookup reads them); the bloom filters spare reads of absent keys. By default
   * they are partitioned (state.backend.rocksdb.memory.partitioned-index-filters: 4 KiB
   * partitions under a pinned top level): a get reads only the partitions it needs, so
   * a cache smaller than the stores' indexes and filters keeps the partitions in use.
   * Whole blocks (one index and one filter per table file, Flink's default) spare the
   * partition lookup, about 15 % of the CPU of cold reads (docs/state.md), while
   * every whole block fits the cache with room; once they do not, each get evicts and
   * reads again blocks of megabytes (the 10M-key Zipf line of flink-bench state on an
   * 8 MB block cache: over 240 s against 27 s partitioned). With whole blocks the cache
   * has shards of 16 MiB or more (fl_kv_rocksdb_cache_shard_bits): RocksDB's default of
   * 64 shards gives a 64 MiB cache 1 MiB shards, smaller than the filter of a 64 MiB
   * table file of small cells (about 2.5 MB), which would be evicted as soon as it is
   * read. */
  rocksdb_block_based_options_set_block_cache(bb, sh->cache);
  rocksdb_block_based_options_set_filter_policy(bb, rocksdb_filterpolicy_create_bloom_full(10));
  if (d.partitioned_index_filters) {
    rocksdb_block_based_options_set_index_type(
        bb, rocksdb_block_based_table_index_type_two_level_index_search);
    rocksdb_block_based_options_set_partition_filters(bb, 1);
    rocksdb_block_based_options_set_metadata_block_size(bb, 4096);
  }
  rocksdb_block_based_options_set_cache_index_and_filter_blocks(bb, 1);
  rocksdb_block_based_options_set_cache_index_and_filter_blocks_with_high_priority(bb, 1);
  rocksdb_block_based_options_set_pin_top_level_index_and_filter(bb, 1);
  rocksdb_block_based_options_set_pin_l0_filter_and_index_blocks_in_cache(bb, 1);
  rocksdb_options_set_block_based_table_factory(sh->base, bb);
  rocksdb_block_based_options_destroy(bb);

  /* The default env's thread pools are process-wide: every worker's flushes and
   * compactions share them. Two flush threads: at a checkpoint barrier every worker
   * waits for the flush of its memtables at once, and with one thread the workers'
   * flushes queued behind each other (the feature pipeline's native copy at a barrier,
   * two workers: 47-94 ms, average 74, with one thread; 40-73 ms, average 61, with two). */
  rocksdb_env_set_background_threads(sh->env, 2);
  rocksdb_env_set_high_priority_background_threads(sh->env, 2);
  /* Compactions at nice 19 (state.backend.rocksdb.compaction.low-priority): on a machine
   * whose cores the workers share with them, a compaction then runs in the time the
   * workers leave, instead of taking a core from them for seconds; flushes, which a
   * barrier waits for, keep their priority. The scale run of the feature pipeline (2.5M
   * users, 6 GB of state cache per worker, dirty-target 256mb): p99 2.56 and 3.77 s at
   * normal priority, 1.40-1.98 s in three runs at low (docs/state.md); no gain where
   * the barrier sets the tail. RocksDB lowers a pool's threads and never raises them
   * again, so the setting holds for every store of the process from then on. */
  if (d.low_priority_compactions) rocksdb_env_lower_thread_pool_cpu_priority(sh->env);
  rocksdb_options_set_env(sh->base, sh->env);
  /* Every state of an operator is a column family, and the native copy at a barrier
   * flushes all of them: with atomic flush that is one flush job and one manifest write
   * for all, not one per family (the feature pipeline at 20,000 events/s, at-least-once,
   * checkpoints every 10 s, four runs each: p99 100-107 -> 75-94 ms, records held at a
   * barrier up to 148-170 -> 131-154 ms). It is also what RocksDB asks for when the WAL
   * is off, as here: the families of a store are then always flushed together. */
  rocksdb_options_set_atomic_flush(sh->base, 1);
  rocksdb_options_set_create_if_missing(sh->base, 1);
  rocksdb_options_set_create_missing_column_families(sh->base, 1);
  rocksdb_options_set_max_background_jobs(sh->base, 2);
  rocksdb_options_set_info_log_level(sh->base, 2 /* warn */);
  rocksdb_options_set_keep_log_file_num(sh->base, 2);
  rocksdb_options_set_max_log_file_size(sh->base, 1u << 20);
  rocksdb_options_set_level_compaction_dynamic_level_bytes(sh->base, 1);
  rocksdb_options_set_write_buffer_size(sh->base, d.write_buffer_bytes);
  rocksdb_options_set_max_write_buffer_number(sh->base, d.max_write_buffers);
  /* A whole-key bloom filter over each memtable (2 % of its size): a get of a key the
   * memtable does not hold, as every read of a cell the state cache missed mostly is,
   * skips the skip-list search. */
  rocksdb_options_set_memtable_prefix_bloom_size_ratio(sh->base, 0.02);
  rocksdb_options_set_memtable_whole_key_filtering(sh->base, 1);
  /* Compression of table files: Snappy by default, as Flink's. Uncompressed files are
   * read through mmap: with the state cache in front, most gets that reach RocksDB are
   * first reads of cold keys, whose data block is rarely in the block cache; with
   * compression each costs a pread into a new buffer and a decompression into another,
   * together a third of a cold get, while an uncompressed block of a mapped file is used
   * in place from the page cache. The price is disk space and checkpoint size: the
   * table files of small state cells are 2.5 to 3 times as large (docs/state.md). */
  rocksdb_options_set_compression(sh->base, fl_kv_rocksdb_compression_type(d.compression));
  if (d.compression == FL_KV_RDB_NO_COMPRESSION) rocksdb_options_set_allow_mmap_reads(sh->base, 1);
  *out = sh;
  return FL_OK;
}

void fl_kv_rocksdb_shared_destroy(fl_kv_rocksdb_shared_t *sh) {
  if (!sh) return;
  if (sh->base) rocksdb_options_destroy(sh->base);
  if (sh->cache) rocksdb_cache_destroy(sh->cache);
  if (sh->env) rocksdb_env_destroy(sh->env);
  free(sh);
}

/* ---------------------------------------------------------------------------------- */
/* Store                                                                                */

static void rdb_destroy(void *self) {
  rdb_t *r = self;
  if (!r) return;
  /* Handles go before the DB; closing the DB waits for its background work and lets
   * go of the filter factories (freeing the rdb_ttl_t they own). */
  for (size_t i = 0; i < r->n_tables; i++) fl_rdb_table_free(r->tables[i]);
  if (r->timers_cf) rocksdb_column_family_handle_destroy(r->timers_cf);
  if (r->db) rocksdb_close(r->db);
  if (r->base) rocksdb_options_destroy(r->base);
  if (r->ro) rocksdb_readoptions_destroy(r->ro);
  if (r->ro_scan) rocksdb_readoptions_destroy(r->ro_scan);
  if (r->wo) rocksdb_writeoptions_destroy(r->wo);
  if (r->batch) rocksdb_writebatch_destroy(r->batch);
  for (size_t i = 0; i < RDB_RING; i++) free(r->ring[i].p);
  if (r->cursors)
    for (size_t i = 0; i < RDB_CURSORS; i++) free(r->cursors[i].key);
  free(r->cursors);
  fl_buf_free(&r->kb);
  fl_buf_free(&r->wkeys);
  fl_buf_free(&r->worder);
  free(r->tables);
  free(r->ids);
  free(r->dir);
  free(r);
}

/* Opens the DB in r->dir with the column families `names` (all of them, as RocksDB
 * requires), making a table of every "t:" one. */
static int open_db(rdb_t *r, char **names, size_t n, char *err, size_t es) {
  const rocksdb_options_t **opts = calloc(n, sizeof *opts);
  rocksdb_column_family_handle_t **handles = calloc(n, sizeof *handles);
  rdb_ttl_t **ttls = calloc(n, sizeof *ttls);
  int rc = FL_OK;
  if (!opts || !handles || !ttls) {
    rc = FL_ENOMEM;
    goto done;
  }
  for (size_t i = 0; i < n; i++) {
    opts[i] = fl_rdb_cf_options(r, &ttls[i]);
    if (!opts[i]) {
      rc = FL_ENOMEM;
      goto done;
    }
  }
  char *e = NULL;
  r->db = rocksdb_open_column_families(r->base, r->dir, (int)n, (const char *const *)names, opts,
                                       handles, &e);
  if (e || !r->db) {
    fl_rdb_set_err(err, es, "rocksdb state: cannot open the store in '%s': %s", r->dir,
                   e ? e : "unknown error");
    rc = e && strstr(e, "Memory limit") ? FL_ENOMEM : FL_EIO;
    free(e);
    goto done;
  }
  for (size_t i = 0; i < n; i++) {
    if (strcmp(names[i], RDB_TIMERS_CF) == 0) {
      r->timers_cf = handles[i]; /* the timer service's, if it kept timers here */
      handles[i] = NULL;
      continue;
    }
    if (strncmp(names[i], RDB_CF_PREFIX, RDB_CF_PREFIX_LEN) != 0) {
      rocksdb_column_family_handle_destroy(handles[i]); /* "default" */
      handles[i] = NULL;
      continue;
    }
    rdb_table_t *t = calloc(1, sizeof *t);
    if (!t || !(t->name = strdup(names[i] + RDB_CF_PREFIX_LEN)) || fl_rdb_tables_add(r, t)) {
      if (t) free(t->name);
      free(t);
      rc = FL_ENOMEM;
      goto done;
    }
    t->cf = handles[i];
    handles[i] = NULL;
    t->ttl = ttls[i];
    t->id = -1;
  }
done:
  if (handles)
    for (size_t i = 0; i < n; i++)
      if (handles[i]) rocksdb_column_family_handle_destroy(handles[i]);
  if (opts)
    for (size_t i = 0; i < n; i++)
      if (opts[i]) rocksdb_options_destroy((rocksdb_options_t *)opts[i]);
  free(opts);
  free(handles);
  free(ttls);
  return rc;
}

int fl_kv_rocksdb_new(fl_kv_rocksdb_shared_t *sh, const char *dir, const char *restore_from,
                      fl_kv_t *out, char *err, size_t err_size) {
  rdb_t *r = NULL;
  char **names = NULL;
  size_t n_names = 0;
  char *defname[1] = {"default"};
  int rc = FL_OK;
  if (!sh || !dir || !*dir || !out || (restore_from && !*restore_from)) {
    fl_rdb_set_err(err, err_size, "rocksdb state: missing shared part, directory or output");
    return FL_EINVAL;
  }
  out->ops = NULL;
  out->self = NULL;
  if (err && err_size) err[0] = '\0';
  rc = fl_rdb_make_dirs(dir, err, err_size);
  if (rc == FL_OK && restore_from) rc = fl_rdb_check_restore_path(dir, restore_from, err, err_size);
  if (rc == FL_OK) rc = fl_rdb_empty_dir(dir, err, err_size);
  if (rc == FL_OK && restore_from) rc = fl_rdb_restore_files(restore_from, dir, err, err_size);
  if (rc) return rc;

  r = calloc(1, sizeof *r);
  if (!r) return FL_ENOMEM;
  atomic_init(&r->now, RDB_NO_TIME);
  r->dir = strdup(dir);
  r->base = rocksdb_options_create_copy(sh->base);
  if (r->base && sh->statistics) {
    rocksdb_options_enable_statistics(r->base); /* this store's own, not the shared base's */
    r->statistics = true;
  }
  r->ro = rocksdb_readoptions_create();
  r->ro_scan = rocksdb_readoptions_create();
  r->wo = rocksdb_writeoptions_create();
  if (!r->dir || !r->base || !r->ro || !r->ro_scan || !r->wo) {
    rc = FL_ENOMEM;
    goto done;
  }
  rocksdb_readoptions_set_fill_cache(r->ro_scan, 0);
  rocksdb_writeoptions_disable_WAL(r->wo, 1);

  if (restore_from) {
    char *e = NULL;
    names = rocksdb_list_column_families(r->base, dir, &n_names, &e);
    if (e || !names) {
      fl_rdb_set_err(err, err_size,
                     "rocksdb state: '%s' (restored from '%s') holds no readable store: %s", dir,
                     restore_from, e ? e : "unknown error");
      free(e);
      rc = FL_EIO;
      goto done;
    }
    rc = open_db(r, names, n_names, err, err_size);
  } else {
    rc = open_db(r, defname, 1, err, err_size);
  }
  if (rc) goto done;
  out->ops = &fl_rdb_ops;
  out->self = r;
  r = NULL;
done:
  if (names) rocksdb_list_column_families_destroy(names, n_names);
  if (rc == FL_ENOMEM && err && err_size && !*err)
    fl_rdb_set_err(err, err_size, "rocksdb state: out of memory opening '%s'", dir);
  rdb_destroy(r);
  return rc;
}

void fl_kv_rocksdb_shared_statistics(fl_kv_rocksdb_shared_t *sh, bool on) { sh->statistics = on; }

int fl_kv_rocksdb_flush(fl_kv_t *kv) {
  if (!kv || kv->ops != &fl_rdb_ops || !kv->self) return FL_EINVAL;
  rdb_t *r = kv->self;
  rocksdb_flushoptions_t *fo = rocksdb_flushoptions_create();
  if (!fo) return FL_ENOMEM;
  rocksdb_flushoptions_set_wait(fo, 1);
  int rc = FL_OK;
  for (size_t i = 0; i < r->n_tables && rc == FL_OK; i++) {
    char *e = NULL;
    rocksdb_flush_cf(r->db, fo, r->tables[i]->cf, &e);
    if (e) rc = fl_rdb_fail(r, e, "flush", r->tables[i]);
  }
  rocksdb_flushoptions_destroy(fo);
  return rc;
}

/* Statistics (kv.h, FL_KV_STATS_MAP): RocksDB's properties under Flink's
 * state.backend.rocksdb.metrics.* names, summed over the store's column families where
 * RocksDB keeps them per family; block cache hits and misses from the store's ticker
 * statistics when it keeps them. */
static int64_t ticker(const char *text, const char *name) {
  const char *p = text ? strstr(text, name) : NULL;
  if (!p || !(p = strstr(p, "COUNT : "))) return -1;
  return strtoll(p + 8, NULL, 10);
}

static int rdb_stats(void *self, const bool *want, int64_t *v) {
  rdb_t *r = self;
  static const struct {
    int stat;
    const char *prop;
    bool per_cf;
  } props[] = {
      {FL_KV_STAT_BLOCK_CACHE_USAGE, "rocksdb.block-cache-usage", false},
      {FL_KV_STAT_ESTIMATE_NUM_KEYS, "rocksdb.estimate-num-keys", true},
      {FL_KV_STAT_CUR_SIZE_ALL_MEM_TABLES, "rocksdb.cur-size-all-mem-tables", true},
      {FL_KV_STAT_ESTIMATE_PENDING_COMPACTION_BYTES, "rocksdb.estimate-pending-compaction-bytes",
       true},
      {FL_KV_STAT_NUM_RUNNING_COMPACTIONS, "rocksdb.num-running-compactions", false},
      {FL_KV_STAT_TOTAL_SST_FILES_SIZE, "rocksdb.total-sst-files-size", true},
      {FL_KV_STAT_IS_WRITE_STOPPED, "rocksdb.is-write-stopped", false},
      {FL_KV_STAT_ACTUAL_DELAYED_WRITE_RATE, "rocksdb.actual-delayed-write-rate", false},
  };
  for (size_t i = 0; i < sizeof props / sizeof props[0]; i++) {
    if (!want[props[i].stat]) continue;
    uint64_t x = 0, sum = 0;
    bool any = rocksdb_property_int(r->db, props[i].prop, &x) == 0;
    if (any) sum = x;
    for (size_t t = 0; props[i].per_cf && t < r->n_tables; t++) {
      if (rocksdb_property_int_cf(r->db, r->tables[t]->cf, props[i].prop, &x) == 0) {
        sum += x;
        any = true;
      }
    }
    if (any) v[props[i].stat] = (int64_t)sum;
  }
  static const struct {
    fl_kv_stat_t stat;
    const char *ticker; /* as the statistics text names it, with the space after */
  } tickers[] = {
      {FL_KV_STAT_BLOCK_CACHE_HIT, "rocksdb.block.cache.hit "},
      {FL_KV_STAT_BLOCK_CACHE_MISS, "rocksdb.block.cache.miss "},
      {FL_KV_STAT_BLOCK_CACHE_INDEX_MISS, "rocksdb.block.cache.index.miss "},
      {FL_KV_STAT_BLOCK_CACHE_FILTER_MISS, "rocksdb.block.cache.filter.miss "},
  };
  bool any_ticker = false;
  for (size_t i = 0; i < sizeof tickers / sizeof tickers[0]; i++)
    any_ticker = any_ticker || want[tickers[i].stat];
  if (r->statistics && any_ticker) {
    char *text = rocksdb_options_statistics_get_string(r->base);
    for (size_t i = 0; text && i < sizeof tickers / sizeof tickers[0]; i++)
      if (want[tickers[i].stat]) v[tickers[i].stat] = ticker(text, tickers[i].ticker);
    rocksdb_free(text);
  }
  return FL_OK;
}

const fl_kv_ops_t fl_rdb_ops = {
    .version = FL_KV_OPS_VERSION,
    .name = "rocksdb",
    .destroy = rdb_destroy,
    .open_table = fl_rdb_open_table,
    .get = fl_rdb_get,
    .put = fl_rdb_put,
    .append = fl_rdb_append,
    .del = fl_rdb_del,
    .map_get = fl_rdb_map_get,
    .map_put = fl_rdb_map_put,
    .map_del = fl_rdb_map_del,
    .map_iter = fl_rdb_map_iter,
    .iterate = fl_rdb_iterate,
    .count = fl_rdb_count,
    .set_table_ttl = fl_rdb_set_table_ttl,
    .set_time = fl_rdb_set_time,
    .checkpoint = fl_rdb_checkpoint,
    .retain_key_groups = fl_rdb_retain_key_groups,
    .list_tables = fl_rdb_list_tables,
    .stats = rdb_stats,
    .flush = NULL,
    .write_batch = fl_rdb_write_batch,
    .errmsg = rdb_errmsg,
};
