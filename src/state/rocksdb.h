/*
 * The RocksDB backend's calls beyond the kv.h vtable (src/state/rocksdb*.c). The
 * constructors are declared in kv.h.
 *
 * Lifetime: the shared part (fl_kv_rocksdb_shared_t) is destroyed after every store
 * made from it. Threading: as kv.h, one store belongs to one thread; the shared part
 * may be used by any number of threads at once to make stores.
 */
#ifndef FL_STATE_ROCKSDB_H
#define FL_STATE_ROCKSDB_H

#include "state/kv.h"

/* The message of the last failed call on a RocksDB store: it names the operation, the
 * table when there is one, the store's directory and RocksDB's own message. "" when
 * no call has failed, or kv is not a RocksDB store. Borrowed from the store until its
 * next call. */
const char *fl_kv_rocksdb_errmsg(const fl_kv_t *kv);

/* Flushes the memtables and compacts every table's whole key range now, on the calling
 * thread (the work runs on RocksDB's threads; this waits for it). The TTL compaction
 * filters (set_table_ttl) run on everything compacted. Appends (merge operands) are
 * folded into one value by a compaction; the filter sees that value from the next one,
 * so dropping expired list items of cells that were appended to since the last
 * compaction takes two calls. For maintenance and tests. 0 or FL_EIO/FL_EINVAL. */
int fl_kv_rocksdb_compact(fl_kv_t *kv);

/* Stores made from sh from now on keep RocksDB's ticker statistics (each its own), from
 * which the stats op reads block cache hits and misses (and the misses of index and
 * filter blocks). Off unless asked: RocksDB's statistics also time every get and write,
 * about 3 % of a RocksDB-bound run (docs/metrics.md). Before stores are made from sh. */
void fl_kv_rocksdb_shared_statistics(fl_kv_rocksdb_shared_t *sh, bool on);

/* Flushes every table's memtable into a table file now and waits for it (no
 * compaction). For benchmarks and tests that need state spread over files and
 * levels. 0 or FL_EIO/FL_EINVAL. */
int fl_kv_rocksdb_flush(fl_kv_t *kv);

/* The LRU block cache of capacity bytes the shared part makes for the given form of
 * index and filter blocks (kv.h, partitioned_index_filters): with whole blocks, shards of
 * fl_kv_rocksdb_cache_shard_bits; partitioned, RocksDB's default. NULL when out of
 * memory. For plain RocksDB stores that should match the backend's (benchmarks). */
struct rocksdb_cache_t;
struct rocksdb_cache_t *fl_kv_rocksdb_block_cache_new(size_t capacity, bool partitioned);

#endif
