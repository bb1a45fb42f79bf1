/*
 * What the parts of the RocksDB backend share (rocksdb.c: the shared part, opening and
 * closing a store, errors; rocksdb_cells.c: key encoding, tables, value and map cells;
 * rocksdb_walk.c: cursor walks and counts; rocksdb_ttl.c: the append merge operator
 * and the TTL compaction filter; rocksdb_native.c: native checkpoints, key-group
 * deletion and restoring a store from a copy). Private to src/state/rocksdb*.c; the
 * design is described at the top of rocksdb.c. Names shared between the parts carry
 * the fl_rdb_ prefix, since the static library exports every non-static symbol.
 */
#ifndef FL_STATE_ROCKSDB_INTERNAL_H
#define FL_STATE_ROCKSDB_INTERNAL_H

#include <rocksdb/c.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "state/kv.h"
#include "state/rocksdb.h"
#include "util/buf.h"

#define RDB_CF_PREFIX "t:"
#define RDB_CF_PREFIX_LEN 2
/* The column family of the timer service (timers_rocksdb.c): not a table, as it lacks
 * the "t:" prefix, but part of every native copy of the store. */
#define RDB_TIMERS_CF "_timers"
#define RDB_MAP_TAG 0x00
#define RDB_RING 16
/* Paused walks a store remembers: slot index in the low bits of a cursor token. */
#define RDB_CURSOR_BITS 10
#define RDB_CURSORS (1u << RDB_CURSOR_BITS)
/* A ring buffer larger than this gives memory back when a much smaller value comes. */
#define RDB_SLOT_KEEP (64u * 1024u)
#define RDB_NO_TIME INT64_MIN
#define RDB_KG_END 65536u

#define RDB_DEFAULT_CACHE (64u * 1024u * 1024u)
#define RDB_DEFAULT_WRITE_BUFFER (16u * 1024u * 1024u)
#define RDB_DEFAULT_WRITE_BUFFERS 2

/* List items (FL_KV_TTL_LIST): [u32 len][u32 0][i64 ts][bytes][pad to 8]. */
#define RDB_ITEM_HDR 16u
#define RDB_TS_LEN 8u

enum {
  RDB_KIND_UNKNOWN = 0,
  RDB_KIND_VALUE,
  RDB_KIND_MAP
};

struct fl_kv_rocksdb_shared {
  /* Everything a store's DB and column families start from: env, block-based table
   * factory with the shared block cache, write buffers. Read-only once made, and
   * copying options is a read (plus atomic reference counts), so stores may be made
   * from it on any number of threads at once. */
  rocksdb_options_t *base;
  rocksdb_cache_t *cache;
  rocksdb_env_t *env;
  bool statistics; /* every store keeps ticker statistics (rdb_stats) */
};

/* What a table's compaction filter reads. Owned by the column family's filter factory
 * (freed by its destructor, when RocksDB lets go of the factory). */
typedef struct rdb_ttl {
  _Atomic int layout; /* 0: no TTL */
  _Atomic int64_t ttl_ms;
  const _Atomic int64_t *now; /* the store's clock; the store outlives its DB */
} rdb_ttl_t;

/* One compaction's filter: single-threaded, with a buffer for rewritten lists. */
typedef struct rdb_filter {
  int layout;
  int64_t ttl_ms, now;
  unsigned char *buf;
  size_t cap;
} rdb_filter_t;

typedef struct rdb_table {
  char *name; /* without RDB_CF_PREFIX */
  rocksdb_column_family_handle_t *cf;
  rdb_ttl_t *ttl;
  int64_t id; /* -1: came with a restored copy and not asked for yet */
  int kind;
} rdb_table_t;

typedef struct rdb_slot {
  unsigned char *p;
  size_t cap;
} rdb_slot_t;

typedef struct rdb_cursor {
  uint64_t token; /* 0: free */
  uint64_t used;  /* store clock of the last use, for eviction */
  uint32_t table;
  unsigned char *key; /* where the walk resumes: the first key not yet visited */
  size_t len, cap;
} rdb_cursor_t;

typedef struct rdb {
  rocksdb_t *db;
  rocksdb_options_t *base; /* this store's copy of the shared options */
  bool statistics;         /* base has ticker statistics of its own */
  rocksdb_readoptions_t *ro;
  rocksdb_readoptions_t *ro_scan; /* full-table scans: no block-cache fill */
  rocksdb_writeoptions_t *wo;
  char *dir;
  rdb_table_t **tables; /* column families in the order they were opened */
  size_t n_tables, cap_tables;
  uint32_t *ids; /* table id -> index in tables */
  size_t n_ids, cap_ids;
  _Atomic int64_t now;
  fl_buf_t kb; /* the key being built */
  rdb_slot_t ring[RDB_RING];
  unsigned ring_pos;
  rdb_cursor_t *cursors; /* RDB_CURSORS slots, allocated on the first pause */
  uint16_t free_slots[RDB_CURSORS];
  size_t n_free, n_cursors; /* n_cursors: slots ever handed out */
  uint64_t next_gen, clock;
  rocksdb_column_family_handle_t *timers_cf; /* NULL until timers are kept here */
  /* The timer service's, if one keeps timers here: writes what it batched; called
   * before a native copy of the store is taken. */
  int (*before_copy)(void *arg);
  void *before_copy_arg;
  rocksdb_writebatch_t *batch; /* write_batch's, reused */
  fl_buf_t wkeys, worder;      /* write_batch's keys, and their order */
  char err[1024];
} rdb_t;

/* A bounded scan: its upper bound lives as long as its iterator (RocksDB keeps a
 * pointer to it). */
typedef struct rdb_scan {
  rocksdb_readoptions_t *ro;
  rocksdb_iterator_t *it;
  unsigned char *upper;
} rdb_scan_t;

/* The store's operation table (rocksdb.c); tells a RocksDB store from another kv. */
extern const fl_kv_ops_t fl_rdb_ops;

/* A stored key taken apart: the cell (pointers into the key), the length of its
 * prefix P, and what follows P (empty for a value cell, 0x00 | ukey for a map entry). */
typedef struct rdb_dkey {
  fl_kkey_t k;
  size_t plen;
  const unsigned char *rest;
  size_t rest_len;
} rdb_dkey_t;

static inline size_t uvarint_put(unsigned char *p, uint64_t v) {
  size_t n = 0;
  while (v >= 0x80) {
    p[n++] = (unsigned char)(v | 0x80);
    v >>= 7;
  }
  p[n++] = (unsigned char)v;
  return n;
}

static inline bool uvarint_get(const unsigned char *p, size_t n, uint64_t *v, size_t *used) {
  uint64_t x = 0;
  for (size_t i = 0; i < n && i < 10; i++) {
    x |= (uint64_t)(p[i] & 0x7f) << (7 * i);
    if (!(p[i] & 0x80)) {
      *v = x;
      *used = i + 1;
      return true;
    }
  }
  return false;
}

static inline void copy_bytes(void *dst, const void *src, size_t n) {
  if (n) memcpy(dst, src, n);
}

/* ---- rocksdb.c ---- */

/* Records a failure of `what` (on table t, if any) with RocksDB's message (freed) and
 * returns the code: FL_ENOMEM for RocksDB's memory limits, FL_EIO otherwise. */
int fl_rdb_fail(rdb_t *r, char *rerr, const char *what, const rdb_table_t *t);
/* printf into err (NULL-safe). */
void fl_rdb_set_err(char *err, size_t err_size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* The timers' column family, created on first use (or found by a restore). */
int fl_rdb_timers_cf(rdb_t *r, rocksdb_column_family_handle_t **cf);

/* ---- rocksdb_cells.c ---- */

/* Takes a stored key apart; false for a key this backend did not write. */
bool fl_rdb_dec_key(const unsigned char *p, size_t n, rdb_dkey_t *d);
/* The next ring buffer, with room for n bytes; NULL when out of memory. */
unsigned char *fl_rdb_ring_take(rdb_t *r, size_t n);
void fl_rdb_table_free(rdb_table_t *t);
int fl_rdb_tables_add(rdb_t *r, rdb_table_t *t);
/* The table with this id, or NULL. */
rdb_table_t *fl_rdb_table_of(rdb_t *r, uint32_t id);
/* A full-table iterator; fl_rdb_iter_end reports its error and destroys it. */
rocksdb_iterator_t *fl_rdb_table_iter(rdb_t *r, rdb_table_t *t, bool fill_cache);
int fl_rdb_iter_end(rdb_t *r, rocksdb_iterator_t *it, const char *what, rdb_table_t *t);
/* The kv.h operations of a store. */
int fl_rdb_open_table(void *self, const char *name, uint32_t *id);
int fl_rdb_list_tables(void *self, int (*cb)(const char *name, void *arg), void *arg);
int fl_rdb_get(void *self, uint32_t table, const fl_kkey_t *k, const void **val, size_t *len);
int fl_rdb_put(void *self, uint32_t table, const fl_kkey_t *k, const void *val, size_t len);
int fl_rdb_append(void *self, uint32_t table, const fl_kkey_t *k, const void *val, size_t len);
/* Deletes every entry of the map cell whose prefix is p[0..plen). */
int fl_rdb_del_map_cell(rdb_t *r, rdb_table_t *t, const unsigned char *p, size_t plen);
int fl_rdb_del(void *self, uint32_t table, const fl_kkey_t *k);
int fl_rdb_map_get(void *self, uint32_t table, const fl_kkey_t *k, const void *ukey,
                   size_t ukey_len, const void **val, size_t *len);
int fl_rdb_map_put(void *self, uint32_t table, const fl_kkey_t *k, const void *ukey,
                   size_t ukey_len, const void *val, size_t len);
int fl_rdb_map_del(void *self, uint32_t table, const fl_kkey_t *k, const void *ukey,
                   size_t ukey_len);
int fl_rdb_map_iter(void *self, uint32_t table, const fl_kkey_t *k,
                    int (*cb)(const void *ukey, size_t ukey_len, const void *val, size_t len,
                              void *arg),
                    void *arg);
int fl_rdb_write_batch(void *self, const fl_kv_write_t *w, size_t n);

/* ---- rocksdb_walk.c ---- */

int fl_rdb_iterate(void *self, uint32_t table, uint64_t *cursor, size_t max_entries,
                   int (*cb)(const fl_kkey_t *k, const void *val, size_t len, void *arg),
                   void *arg);
size_t fl_rdb_count(void *self, uint32_t table);

/* ---- rocksdb_ttl.c ---- */

/* Options of one column family: the store's base plus the merge operator and a TTL
 * filter factory reading *ttl, which the options (and RocksDB's copies) then own. */
rocksdb_options_t *fl_rdb_cf_options(rdb_t *r, rdb_ttl_t **ttl);
int fl_rdb_set_table_ttl(void *self, uint32_t table, int layout, int64_t ttl_ms);
void fl_rdb_set_time(void *self, int64_t now_ms);

/* ---- rocksdb_native.c ---- */

int fl_rdb_checkpoint(void *self, const char *dir);
int fl_rdb_retain_key_groups(void *self, uint32_t kg_first, uint32_t kg_count);
/* Directories of a store being opened: mkdir -p, emptying it, filling it from a
 * native copy (restore_from must lie outside dir). Errors name the paths in err. */
int fl_rdb_make_dirs(const char *dir, char *err, size_t es);
int fl_rdb_empty_dir(const char *dir, char *err, size_t es);
int fl_rdb_restore_files(const char *from, const char *dir, char *err, size_t es);
int fl_rdb_check_restore_path(const char *dir, const char *from, char *err, size_t es);

#endif
