/*
 * The state cache (src/state/cache*.c): a write-back cache of state cells in front of a
 * slower kv backend (RocksDB), bounded in bytes, so that hot keys are read and written
 * at memory speed while the store holds everything.
 *
 * One cache per worker thread holds the cells of every store that worker opens through
 * it (fl_kv_cache_wrap): the bound is per worker, whatever number of keyed operators it
 * runs. A wrapped store is an fl_kv_t like any other (kv.h), with the same contract: what
 * it returns is what the store alone would return. Reads of a cached cell never reach the
 * store; writes mark the cell dirty; dirty cells go to the store in write batches when
 * they are evicted and when the store is flushed (the flush op, which the runtime calls at
 * every checkpoint barrier, and before walks, counts and native copies, so those see
 * every write). Lists append without reading the list (the bytes appended wait in the
 * cache and go to the store as an append, a RocksDB merge); map cells are cached one user
 * key at a time.
 *
 * Threading: a cache and its stores belong to one thread. Lifetime: every store made on
 * a cache is destroyed before the cache.
 */
#ifndef FL_STATE_CACHE_H
#define FL_STATE_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "state/kv.h"

typedef struct fl_kv_cache fl_kv_cache_t;

/* The smallest bound a cache takes. */
#define FL_KV_CACHE_MIN_BYTES (64u * 1024u)

/* A cache holding at most `bytes` (>= FL_KV_CACHE_MIN_BYTES) of cells and their
 * bookkeeping. 0, FL_EINVAL or FL_ENOMEM. */
int fl_kv_cache_new(size_t bytes, fl_kv_cache_t **out);
/* Writing ahead of the barrier (cache_write.c): dirty cells written to their stores
 * before a flush, in sweeps through the key order, so that the flush at a checkpoint
 * barrier has less to write. The target (0: none) is what fl_kv_cache_write_ahead_idle,
 * called by a worker with nothing else to do, brings the dirty bytes down to; the limit
 * (0: none but the cache's size) is a bound kept as cells are marked, whatever it costs
 * the caller. */
void fl_kv_cache_set_dirty_target(fl_kv_cache_t *c, size_t bytes);
void fl_kv_cache_set_dirty_limit(fl_kv_cache_t *c, size_t bytes);
/* One write batch of dirty cells, the next of a sweep, while the dirty bytes are above
 * the target; whether it wrote any (false also with no cache). */
bool fl_kv_cache_write_ahead_idle(fl_kv_cache_t *c);
/* NULL-safe; after every store wrapped on it. */
void fl_kv_cache_destroy(fl_kv_cache_t *c);

/* Makes *out a store that caches *inner in c. On success the new store owns the inner
 * one (destroying *out destroys it; *inner is cleared); on failure *inner is left as it
 * was. 0, FL_EINVAL or FL_ENOMEM. */
int fl_kv_cache_wrap(fl_kv_cache_t *c, fl_kv_t *inner, fl_kv_t *out);

/* The store a cached store wraps, or kv itself when it is not a cached store. Borrowed:
 * calls on it behind the cache's back must be preceded by fl_kv_cache_drop. */
fl_kv_t *fl_kv_cache_inner(fl_kv_t *kv);

/* Writes the dirty cells of a cached store to its inner store and forgets every cell it
 * cached, so that the next reads go to the store (tests and maintenance: after the store
 * changed behind the cache, say by a compaction that dropped expired cells). 0 on a
 * store that is not cached. */
int fl_kv_cache_drop(fl_kv_t *kv);

typedef struct fl_kv_cache_stats {
  uint64_t hits;          /* lookups answered by the cache */
  uint64_t misses;        /* lookups that went to the store */
  uint64_t evictions;     /* cells evicted */
  uint64_t evicted_dirty; /* of them, dirty (written to the store) */
  uint64_t flushes;       /* flushes that wrote something */
  int64_t flush_ns_last;  /* the last of them, in ns */
  int64_t flush_ns_total;
  size_t items, bytes;             /* this store's cells in the cache and their bytes */
  size_t dirty_items, dirty_bytes; /* of them, dirty */
  uint64_t written_ahead;          /* cells written ahead of a flush (target, limit) */
  size_t cache_bytes, capacity;    /* the whole cache (every store of its thread) */
} fl_kv_cache_stats_t;

/* The statistics of a cached store; FL_EINVAL when kv is not one. */
int fl_kv_cache_stats(const fl_kv_t *kv, fl_kv_cache_stats_t *out);

/* One write of a write_batch (kv.h) made with the call of its kind on a store: what
 * the cache does for an inner store without write_batch. FL_EINVAL for an unknown
 * kind. */
int fl_kv_write_one(const fl_kv_ops_t *o, void *self, const fl_kv_write_t *w);

#endif
