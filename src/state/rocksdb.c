/*
 * The RocksDB state backend (kv.h): one DB per store (per worker thread), one column
 * family per table.
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
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <dirent.h>
#include <unistd.h>

#include <rocksdb/c.h>

#include "util/buf.h"
#include "state/kv.h"
#include "state/rocksdb.h"
#include "util/fs.h"

#define RDB_CF_PREFIX "t:"
#define RDB_CF_PREFIX_LEN 2
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
  char err[1024];
} rdb_t;

/* A bounded scan: its upper bound lives as long as its iterator (RocksDB keeps a
 * pointer to it). */
typedef struct rdb_scan {
  rocksdb_readoptions_t *ro;
  rocksdb_iterator_t *it;
  unsigned char *upper;
} rdb_scan_t;

static const fl_kv_ops_t rdb_ops;

/* ---------------------------------------------------------------------------------- */
/* Errors                                                                               */

/* Records a failure of `what` (on table t, if any) with RocksDB's message (freed) and
 * returns the code: FL_ENOMEM for RocksDB's memory limits, FL_EIO otherwise. */
static int rdb_fail(rdb_t *r, char *rerr, const char *what, const rdb_table_t *t) {
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

static void set_err(char *err, size_t err_size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void set_err(char *err, size_t err_size, const char *fmt, ...) {
  if (!err || err_size == 0) return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err, err_size, fmt, ap);
  va_end(ap);
}

const char *fl_kv_rocksdb_errmsg(const fl_kv_t *kv) {
  if (!kv || kv->ops != &rdb_ops || !kv->self) return "";
  return ((const rdb_t *)kv->self)->err;
}

/* ---------------------------------------------------------------------------------- */
/* Key encoding                                                                         */

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

/* Builds P (and, with map, 0x00 | ukey) into r->kb. */
static int enc_key(rdb_t *r, const fl_kkey_t *k, bool map, const void *ukey, size_t ukl) {
  size_t max = 2 + 10 + k->key_len + 10 + k->ns_len + 1 + ukl;
  if (max < k->key_len || max < k->ns_len || max < ukl) return FL_ENOMEM;
  if (fl_buf_reserve(&r->kb, max)) return FL_ENOMEM;
  unsigned char *p = r->kb.data;
  size_t n = 0;
  p[n++] = (unsigned char)(k->kg >> 8);
  p[n++] = (unsigned char)k->kg;
  n += uvarint_put(p + n, k->key_len);
  copy_bytes(p + n, k->key, k->key_len);
  n += k->key_len;
  n += uvarint_put(p + n, k->ns_len);
  copy_bytes(p + n, k->ns, k->ns_len);
  n += k->ns_len;
  if (map) {
    p[n++] = RDB_MAP_TAG;
    copy_bytes(p + n, ukey, ukl);
    n += ukl;
  }
  r->kb.len = n;
  return FL_OK;
}

/* A stored key taken apart: the cell (pointers into the key), the length of its
 * prefix P, and what follows P (empty for a value cell, 0x00 | ukey for a map entry). */
typedef struct rdb_dkey {
  fl_kkey_t k;
  size_t plen;
  const unsigned char *rest;
  size_t rest_len;
} rdb_dkey_t;

static bool dec_key(const unsigned char *p, size_t n, rdb_dkey_t *d) {
  uint64_t l;
  size_t used, at = 2;
  if (n < 2) return false;
  d->k.kg = (uint16_t)(p[0] << 8 | p[1]);
  if (!uvarint_get(p + at, n - at, &l, &used) || l > n - at - used) return false;
  at += used;
  d->k.key = p + at;
  d->k.key_len = (size_t)l;
  at += (size_t)l;
  if (!uvarint_get(p + at, n - at, &l, &used) || l > n - at - used) return false;
  at += used;
  d->k.ns = p + at;
  d->k.ns_len = (size_t)l;
  at += (size_t)l;
  d->plen = at;
  d->rest = p + at;
  d->rest_len = n - at;
  if (d->rest_len && d->rest[0] != RDB_MAP_TAG) return false;
  return true;
}

/* ---------------------------------------------------------------------------------- */
/* Borrowed copies                                                                      */

/* The next ring buffer, with room for n bytes; NULL when out of memory. */
static unsigned char *ring_take(rdb_t *r, size_t n) {
  rdb_slot_t *s = &r->ring[r->ring_pos++ % RDB_RING];
  bool shrink = s->cap > RDB_SLOT_KEEP && n < s->cap / 4;
  if (n > s->cap || !s->p || shrink) {
    size_t cap = n < 64 ? 64 : n;
    if (!shrink && s->cap && cap < s->cap * 2 && s->cap <= SIZE_MAX / 2) cap = s->cap * 2;
    unsigned char *p = malloc(cap);
    if (!p) return NULL;
    free(s->p);
    s->p = p;
    s->cap = cap;
  }
  return s->p;
}

/* ---------------------------------------------------------------------------------- */
/* Merge operator: concatenation                                                        */

static char *concat(const char *first, size_t first_len, const char *const *ops, const size_t *opl,
                    int n, unsigned char *ok, size_t *out_len) {
  size_t total = first_len;
  *ok = 0;
  *out_len = 0;
  for (int i = 0; i < n; i++) {
    if (opl[i] > SIZE_MAX - total) return NULL;
    total += opl[i];
  }
  char *out = malloc(total ? total : 1);
  if (!out) return NULL;
  copy_bytes(out, first, first_len);
  size_t at = first_len;
  for (int i = 0; i < n; i++) {
    copy_bytes(out + at, ops[i], opl[i]);
    at += opl[i];
  }
  *ok = 1;
  *out_len = total;
  return out;
}

static char *merge_full(void *st, const char *key, size_t klen, const char *existing, size_t elen,
                        const char *const *ops, const size_t *opl, int n, unsigned char *ok,
                        size_t *out_len) {
  (void)st;
  (void)key;
  (void)klen;
  return concat(existing, existing ? elen : 0, ops, opl, n, ok, out_len);
}

/* Concatenation is associative, so operands fold among themselves too. */
static char *merge_partial(void *st, const char *key, size_t klen, const char *const *ops,
                           const size_t *opl, int n, unsigned char *ok, size_t *out_len) {
  (void)st;
  (void)key;
  (void)klen;
  return concat(NULL, 0, ops, opl, n, ok, out_len);
}

static void merge_destroy(void *st) { (void)st; }

static const char *merge_name(void *st) {
  (void)st;
  return "flink.append";
}

/* ---------------------------------------------------------------------------------- */
/* TTL compaction filter                                                                */

static inline int64_t rd_i64(const void *p) {
  int64_t v;
  memcpy(&v, p, sizeof v);
  return v;
}

static inline bool ttl_expired(int64_t ts, int64_t ttl, int64_t now) {
  if (ts > INT64_MAX - ttl) return false;
  return ts + ttl <= now;
}

/* FL_KV_TTL_LIST: keeps the live items. Returns 1 to drop the entry; sets *changed
 * and the new value when some but not all items expired. Malformed lists are kept
 * (a read reports them). */
static unsigned char filter_list(rdb_filter_t *f, const unsigned char *v, size_t n, char **nv,
                                 size_t *nvl, unsigned char *changed) {
  size_t live = 0, dead = 0, live_bytes = 0;
  for (size_t off = 0; off < n;) {
    if (n - off < RDB_ITEM_HDR) return 0;
    uint32_t l;
    memcpy(&l, v + off, sizeof l);
    size_t sz = RDB_ITEM_HDR + (((size_t)l + 7) & ~(size_t)7);
    if (sz > n - off) return 0;
    if (ttl_expired(rd_i64(v + off + 8), f->ttl_ms, f->now)) {
      dead++;
    } else {
      live++;
      live_bytes += sz;
    }
    off += sz;
  }
  if (dead == 0) return 0;
  if (live == 0) return 1;
  if (live_bytes > f->cap) {
    unsigned char *p = realloc(f->buf, live_bytes);
    if (!p) return 0; /* kept: the next compaction tries again */
    f->buf = p;
    f->cap = live_bytes;
  }
  size_t w = 0;
  for (size_t off = 0; off < n;) {
    uint32_t l;
    memcpy(&l, v + off, sizeof l);
    size_t sz = RDB_ITEM_HDR + (((size_t)l + 7) & ~(size_t)7);
    if (!ttl_expired(rd_i64(v + off + 8), f->ttl_ms, f->now)) {
      memcpy(f->buf + w, v + off, sz);
      w += sz;
    }
    off += sz;
  }
  *nv = (char *)f->buf;
  *nvl = w;
  *changed = 1;
  return 0;
}

static unsigned char filter_entry(void *st, int level, const char *key, size_t klen,
                                  const char *val, size_t vlen, char **nv, size_t *nvl,
                                  unsigned char *changed) {
  rdb_filter_t *f = st;
  (void)level;
  (void)key;
  (void)klen;
  switch (f->layout) {
  case FL_KV_TTL_VALUE:
  case FL_KV_TTL_MAP:
    if (vlen < RDB_TS_LEN) return 0;
    return ttl_expired(rd_i64(val), f->ttl_ms, f->now) ? 1 : 0;
  case FL_KV_TTL_LIST: return filter_list(f, (const unsigned char *)val, vlen, nv, nvl, changed);
  default: return 0;
  }
}

static void filter_destroy(void *st) {
  rdb_filter_t *f = st;
  if (!f) return;
  free(f->buf);
  free(f);
}

static const char *filter_name(void *st) {
  (void)st;
  return "flink.ttl";
}

/* Called by RocksDB when a compaction starts: no filter (NULL) while the table has no
 * TTL or the store no clock. The settings are read once, so one compaction applies
 * one `now` throughout. */
static rocksdb_compactionfilter_t *factory_create(void *st,
                                                  rocksdb_compactionfiltercontext_t *ctx) {
  rdb_ttl_t *t = st;
  (void)ctx;
  int layout = atomic_load_explicit(&t->layout, memory_order_relaxed);
  int64_t now = atomic_load_explicit(t->now, memory_order_relaxed);
  if (layout == 0 || now == RDB_NO_TIME) return NULL;
  rdb_filter_t *f = calloc(1, sizeof *f);
  if (!f) return NULL;
  f->layout = layout;
  f->ttl_ms = atomic_load_explicit(&t->ttl_ms, memory_order_relaxed);
  f->now = now;
  return rocksdb_compactionfilter_create(f, filter_destroy, filter_entry, filter_name);
}

static void factory_destroy(void *st) { free(st); }

static const char *factory_name(void *st) {
  (void)st;
  return "flink.ttl.factory";
}

/* Options of one column family: the store's base plus the merge operator and a TTL
 * filter factory reading *ttl, which the options (and RocksDB's copies) then own. */
static rocksdb_options_t *cf_options(rdb_t *r, rdb_ttl_t **ttl) {
  rdb_ttl_t *t = calloc(1, sizeof *t);
  if (!t) return NULL;
  t->now = &r->now;
  rocksdb_options_t *o = rocksdb_options_create_copy(r->base);
  if (!o) {
    free(t);
    return NULL;
  }
  rocksdb_options_set_merge_operator(
      o, rocksdb_mergeoperator_create(NULL, merge_destroy, merge_full, merge_partial, NULL,
                                      merge_name));
  rocksdb_options_set_compaction_filter_factory(
      o, rocksdb_compactionfilterfactory_create(t, factory_destroy, factory_create, factory_name));
  *ttl = t;
  return o;
}

/* ---------------------------------------------------------------------------------- */
/* Tables                                                                               */

static void table_free(rdb_table_t *t) {
  if (!t) return;
  if (t->cf) rocksdb_column_family_handle_destroy(t->cf);
  free(t->name);
  free(t);
}

static int tables_add(rdb_t *r, rdb_table_t *t) {
  if (r->n_tables == r->cap_tables) {
    size_t nc = r->cap_tables ? r->cap_tables * 2 : 8;
    rdb_table_t **p = realloc(r->tables, nc * sizeof *p);
    if (!p) return FL_ENOMEM;
    r->tables = p;
    r->cap_tables = nc;
  }
  r->tables[r->n_tables++] = t;
  return FL_OK;
}

static int ids_reserve(rdb_t *r) {
  if (r->n_ids < r->cap_ids) return FL_OK;
  if (r->n_ids >= UINT32_MAX) return FL_ENOMEM;
  size_t nc = r->cap_ids ? r->cap_ids * 2 : 8;
  uint32_t *p = realloc(r->ids, nc * sizeof *p);
  if (!p) return FL_ENOMEM;
  r->ids = p;
  r->cap_ids = nc;
  return FL_OK;
}

static rdb_table_t *table_of(rdb_t *r, uint32_t id) {
  return id < r->n_ids ? r->tables[r->ids[id]] : NULL;
}

/* A full-table iterator (RocksDB's error, if any, is left for scan_end). */
static rocksdb_iterator_t *table_iter(rdb_t *r, rdb_table_t *t, bool fill_cache) {
  return rocksdb_create_iterator_cf(r->db, fill_cache ? r->ro : r->ro_scan, t->cf);
}

static int iter_end(rdb_t *r, rocksdb_iterator_t *it, const char *what, rdb_table_t *t) {
  char *e = NULL;
  rocksdb_iter_get_error(it, &e);
  rocksdb_iter_destroy(it);
  return e ? rdb_fail(r, e, what, t) : FL_OK;
}

/* The kind of a restored table, from its first key. */
static int probe_kind(rdb_t *r, rdb_table_t *t) {
  rocksdb_iterator_t *it = table_iter(r, t, true);
  rocksdb_iter_seek_to_first(it);
  if (rocksdb_iter_valid(it)) {
    size_t kl;
    const char *k = rocksdb_iter_key(it, &kl);
    rdb_dkey_t d;
    if (dec_key((const unsigned char *)k, kl, &d))
      t->kind = d.rest_len ? RDB_KIND_MAP : RDB_KIND_VALUE;
  }
  return iter_end(r, it, "reading the first key", t);
}

static int rdb_open_table(void *self, const char *name, uint32_t *id) {
  rdb_t *r = self;
  rdb_table_t *t = NULL;
  rocksdb_options_t *o = NULL;
  char *cfname = NULL;
  int rc = FL_OK;
  if (!r || !name || !id) return FL_EINVAL;
  for (size_t i = 0; i < r->n_tables; i++) {
    rdb_table_t *x = r->tables[i];
    if (strcmp(x->name, name) != 0) continue;
    if (x->id < 0) {
      /* Restored: it gets the next id now, and its kind from its content. */
      rc = ids_reserve(r);
      if (rc == FL_OK) rc = probe_kind(r, x);
      if (rc) return rc;
      x->id = (int64_t)r->n_ids;
      r->ids[r->n_ids++] = (uint32_t)i;
    }
    *id = (uint32_t)x->id;
    return FL_OK;
  }
  rc = ids_reserve(r);
  if (rc) return rc;
  size_t nl = strlen(name);
  t = calloc(1, sizeof *t);
  cfname = malloc(RDB_CF_PREFIX_LEN + nl + 1);
  if (!t || !cfname || !(t->name = strdup(name))) {
    rc = FL_ENOMEM;
    goto done;
  }
  memcpy(cfname, RDB_CF_PREFIX, RDB_CF_PREFIX_LEN);
  memcpy(cfname + RDB_CF_PREFIX_LEN, name, nl + 1);
  rdb_ttl_t *ttl = NULL;
  o = cf_options(r, &ttl);
  if (!o) {
    rc = FL_ENOMEM;
    goto done;
  }
  char *e = NULL;
  t->cf = rocksdb_create_column_family(r->db, o, cfname, &e);
  if (e || !t->cf) {
    rc = rdb_fail(r, e, "creating the column family", t);
    goto done;
  }
  t->ttl = ttl; /* alive while the column family is: its options own it */
  t->id = (int64_t)r->n_ids;
  rc = tables_add(r, t);
  if (rc) goto done; /* the column family stays in the DB, unused */
  r->ids[r->n_ids++] = (uint32_t)(r->n_tables - 1);
  *id = (uint32_t)t->id;
  t = NULL;
done:
  if (o) rocksdb_options_destroy(o);
  free(cfname);
  table_free(t);
  return rc;
}

static int rdb_list_tables(void *self, int (*cb)(const char *name, void *arg), void *arg) {
  rdb_t *r = self;
  if (!r || !cb) return FL_EINVAL;
  /* Opened tables by id, then the restored ones nobody asked for yet. */
  for (size_t i = 0; i < r->n_ids; i++) {
    int x = cb(r->tables[r->ids[i]]->name, arg);
    if (x) return x < 0 ? x : FL_OK;
  }
  for (size_t i = 0; i < r->n_tables; i++) {
    if (r->tables[i]->id >= 0) continue;
    int x = cb(r->tables[i]->name, arg);
    if (x) return x < 0 ? x : FL_OK;
  }
  return FL_OK;
}

/* ---------------------------------------------------------------------------------- */
/* Cells                                                                                */

/* Validates a call on a cell of table id and returns the table. */
static int prepare(rdb_t *r, uint32_t id, const fl_kkey_t *k, rdb_table_t **t) {
  if (!r || !k) return FL_EINVAL;
  if ((k->key_len && !k->key) || (k->ns_len && !k->ns)) return FL_EINVAL;
  *t = table_of(r, id);
  return *t ? FL_OK : FL_EINVAL;
}

/* Checks (or, on a write, settles) that table t holds cells of this kind. */
static int use_kind(rdb_table_t *t, int kind, bool write) {
  if (t->kind == kind) return FL_OK;
  if (t->kind != RDB_KIND_UNKNOWN) return FL_EINVAL;
  if (write) t->kind = kind;
  return FL_OK;
}

/* Copies a pinned value into the ring. */
static int pinned_out(rdb_t *r, rocksdb_pinnableslice_t *ps, const void **val, size_t *len) {
  size_t n;
  const char *v = rocksdb_pinnableslice_value(ps, &n);
  unsigned char *p = ring_take(r, n);
  if (!p) {
    rocksdb_pinnableslice_destroy(ps);
    return FL_ENOMEM;
  }
  copy_bytes(p, v, n);
  rocksdb_pinnableslice_destroy(ps);
  *val = p;
  *len = n;
  return 1;
}

static int get_key(rdb_t *r, rdb_table_t *t, const void **val, size_t *len) {
  char *e = NULL;
  rocksdb_pinnableslice_t *ps =
      rocksdb_get_pinned_cf(r->db, r->ro, t->cf, (const char *)r->kb.data, r->kb.len, &e);
  if (e) {
    if (ps) rocksdb_pinnableslice_destroy(ps);
    return rdb_fail(r, e, "get", t);
  }
  if (!ps) return 0;
  return pinned_out(r, ps, val, len);
}

static int rdb_get(void *self, uint32_t table, const fl_kkey_t *k, const void **val, size_t *len) {
  rdb_t *r = self;
  rdb_table_t *t;
  if (!val || !len) return FL_EINVAL;
  int rc = prepare(r, table, k, &t);
  if (rc == FL_OK) rc = use_kind(t, RDB_KIND_VALUE, false);
  if (rc) return rc;
  if (t->kind == RDB_KIND_UNKNOWN) return 0; /* nothing written yet */
  rc = enc_key(r, k, false, NULL, 0);
  if (rc) return rc;
  return get_key(r, t, val, len);
}

static int rdb_put(void *self, uint32_t table, const fl_kkey_t *k, const void *val, size_t len) {
  rdb_t *r = self;
  rdb_table_t *t;
  if (len && !val) return FL_EINVAL;
  int rc = prepare(r, table, k, &t);
  if (rc == FL_OK) rc = use_kind(t, RDB_KIND_VALUE, true);
  if (rc == FL_OK) rc = enc_key(r, k, false, NULL, 0);
  if (rc) return rc;
  char *e = NULL;
  rocksdb_put_cf(r->db, r->wo, t->cf, (const char *)r->kb.data, r->kb.len,
                 len ? (const char *)val : "", len, &e);
  return e ? rdb_fail(r, e, "put", t) : FL_OK;
}

static int rdb_append(void *self, uint32_t table, const fl_kkey_t *k, const void *val, size_t len) {
  rdb_t *r = self;
  rdb_table_t *t;
  if (len && !val) return FL_EINVAL;
  int rc = prepare(r, table, k, &t);
  if (rc == FL_OK) rc = use_kind(t, RDB_KIND_VALUE, true);
  if (rc == FL_OK) rc = enc_key(r, k, false, NULL, 0);
  if (rc) return rc;
  char *e = NULL;
  rocksdb_merge_cf(r->db, r->wo, t->cf, (const char *)r->kb.data, r->kb.len,
                   len ? (const char *)val : "", len, &e);
  return e ? rdb_fail(r, e, "append", t) : FL_OK;
}

/* Opens an iterator over [lo, hi) of table t (lo, hi: copied). */
static int scan_open(rdb_t *r, rdb_table_t *t, const unsigned char *lo, size_t lo_len,
                     const unsigned char *hi, size_t hi_len, rdb_scan_t *s) {
  memset(s, 0, sizeof *s);
  s->upper = malloc(hi_len ? hi_len : 1);
  s->ro = rocksdb_readoptions_create();
  if (!s->upper || !s->ro) {
    free(s->upper);
    if (s->ro) rocksdb_readoptions_destroy(s->ro);
    memset(s, 0, sizeof *s);
    return FL_ENOMEM;
  }
  copy_bytes(s->upper, hi, hi_len);
  rocksdb_readoptions_set_iterate_upper_bound(s->ro, (const char *)s->upper, hi_len);
  s->it = rocksdb_create_iterator_cf(r->db, s->ro, t->cf);
  rocksdb_iter_seek(s->it, (const char *)lo, lo_len);
  return FL_OK;
}

static int scan_close(rdb_t *r, rdb_scan_t *s, const char *what, rdb_table_t *t) {
  int rc = FL_OK;
  if (s->it) rc = iter_end(r, s->it, what, t);
  if (s->ro) rocksdb_readoptions_destroy(s->ro);
  free(s->upper);
  memset(s, 0, sizeof *s);
  return rc;
}

/* The bounds of the map cell whose prefix P is p[0..plen): [P|0x00, P|0x01), built in
 * r->kb from offset plen (p may be r->kb.data). */
static int cell_bounds(rdb_t *r, const unsigned char *p, size_t plen, unsigned char **lo,
                       unsigned char **hi) {
  if (plen > SIZE_MAX / 2 - 2) return FL_ENOMEM;
  size_t off = p == r->kb.data ? 0 : plen;
  if (fl_buf_reserve(&r->kb, off + 2 * (plen + 1))) return FL_ENOMEM;
  unsigned char *base = r->kb.data;
  if (off) memcpy(base, p, plen);
  *lo = base;
  *hi = base + plen + 1;
  memcpy(*hi, base, plen);
  (*lo)[plen] = RDB_MAP_TAG;
  (*hi)[plen] = RDB_MAP_TAG + 1;
  return FL_OK;
}

/* Deletes every entry of the map cell with prefix p (a scan and one write batch; a
 * range tombstone per cleared map would slow every later read of the range). */
static int del_map_cell(rdb_t *r, rdb_table_t *t, const unsigned char *p, size_t plen) {
  unsigned char *lo, *hi;
  rdb_scan_t s;
  int rc = cell_bounds(r, p, plen, &lo, &hi);
  if (rc == FL_OK) rc = scan_open(r, t, lo, plen + 1, hi, plen + 1, &s);
  if (rc) return rc;
  rocksdb_writebatch_t *b = rocksdb_writebatch_create();
  for (; rocksdb_iter_valid(s.it); rocksdb_iter_next(s.it)) {
    size_t kl;
    const char *key = rocksdb_iter_key(s.it, &kl);
    rocksdb_writebatch_delete_cf(b, t->cf, key, kl);
  }
  rc = scan_close(r, &s, "scanning a map cell", t);
  if (rc == FL_OK && rocksdb_writebatch_count(b) > 0) {
    char *e = NULL;
    rocksdb_write(r->db, r->wo, b, &e);
    if (e) rc = rdb_fail(r, e, "deleting a map cell", t);
  }
  rocksdb_writebatch_destroy(b);
  return rc;
}

static int rdb_del(void *self, uint32_t table, const fl_kkey_t *k) {
  rdb_t *r = self;
  rdb_table_t *t;
  int rc = prepare(r, table, k, &t);
  if (rc) return rc;
  if (t->kind == RDB_KIND_UNKNOWN) return FL_OK; /* nothing written yet */
  bool map = t->kind == RDB_KIND_MAP;
  rc = enc_key(r, k, false, NULL, 0);
  if (rc) return rc;
  if (map) return del_map_cell(r, t, r->kb.data, r->kb.len);
  char *e = NULL;
  rocksdb_delete_cf(r->db, r->wo, t->cf, (const char *)r->kb.data, r->kb.len, &e);
  return e ? rdb_fail(r, e, "delete", t) : FL_OK;
}

/* ---------------------------------------------------------------------------------- */
/* Map cells                                                                            */

static int rdb_map_get(void *self, uint32_t table, const fl_kkey_t *k, const void *ukey,
                       size_t ukey_len, const void **val, size_t *len) {
  rdb_t *r = self;
  rdb_table_t *t;
  if (!val || !len || (ukey_len && !ukey)) return FL_EINVAL;
  int rc = prepare(r, table, k, &t);
  if (rc == FL_OK) rc = use_kind(t, RDB_KIND_MAP, false);
  if (rc) return rc;
  if (t->kind == RDB_KIND_UNKNOWN) return 0;
  rc = enc_key(r, k, true, ukey, ukey_len);
  if (rc) return rc;
  return get_key(r, t, val, len);
}

static int rdb_map_put(void *self, uint32_t table, const fl_kkey_t *k, const void *ukey,
                       size_t ukey_len, const void *val, size_t len) {
  rdb_t *r = self;
  rdb_table_t *t;
  if ((len && !val) || (ukey_len && !ukey)) return FL_EINVAL;
  int rc = prepare(r, table, k, &t);
  if (rc == FL_OK) rc = use_kind(t, RDB_KIND_MAP, true);
  if (rc == FL_OK) rc = enc_key(r, k, true, ukey, ukey_len);
  if (rc) return rc;
  char *e = NULL;
  rocksdb_put_cf(r->db, r->wo, t->cf, (const char *)r->kb.data, r->kb.len,
                 len ? (const char *)val : "", len, &e);
  return e ? rdb_fail(r, e, "map put", t) : FL_OK;
}

/* A map cell exists while it has entries, so removing the last one removes it. */
static int rdb_map_del(void *self, uint32_t table, const fl_kkey_t *k, const void *ukey,
                       size_t ukey_len) {
  rdb_t *r = self;
  rdb_table_t *t;
  if (ukey_len && !ukey) return FL_EINVAL;
  int rc = prepare(r, table, k, &t);
  if (rc == FL_OK) rc = use_kind(t, RDB_KIND_MAP, false);
  if (rc) return rc;
  if (t->kind == RDB_KIND_UNKNOWN) return FL_OK;
  rc = enc_key(r, k, true, ukey, ukey_len);
  if (rc) return rc;
  char *e = NULL;
  rocksdb_delete_cf(r->db, r->wo, t->cf, (const char *)r->kb.data, r->kb.len, &e);
  return e ? rdb_fail(r, e, "map delete", t) : FL_OK;
}

static int rdb_map_iter(void *self, uint32_t table, const fl_kkey_t *k,
                        int (*cb)(const void *ukey, size_t ukey_len, const void *val, size_t len,
                                  void *arg),
                        void *arg) {
  rdb_t *r = self;
  rdb_table_t *t;
  unsigned char *lo, *hi;
  rdb_scan_t s;
  if (!cb) return FL_EINVAL;
  int rc = prepare(r, table, k, &t);
  if (rc == FL_OK) rc = use_kind(t, RDB_KIND_MAP, false);
  if (rc) return rc;
  if (t->kind == RDB_KIND_UNKNOWN) return FL_OK;
  rc = enc_key(r, k, false, NULL, 0);
  if (rc) return rc;
  size_t plen = r->kb.len;
  rc = cell_bounds(r, r->kb.data, plen, &lo, &hi);
  if (rc == FL_OK) rc = scan_open(r, t, lo, plen + 1, hi, plen + 1, &s);
  if (rc) return rc;
  /* The iterator reads a snapshot: deleting the entry it stands on does not move it,
   * and cb may call the store (into other cells) without disturbing it. */
  for (; rocksdb_iter_valid(s.it); rocksdb_iter_next(s.it)) {
    size_t kl, vl;
    const char *key = rocksdb_iter_key(s.it, &kl);
    const char *v = rocksdb_iter_value(s.it, &vl);
    size_t ul = kl - plen - 1;
    unsigned char *p = ring_take(r, vl + ul);
    if (!p) {
      rc = FL_ENOMEM;
      break;
    }
    copy_bytes(p, v, vl);
    copy_bytes(p + vl, key + plen + 1, ul);
    int x = cb(p + vl, ul, p, vl, arg);
    if (x < 0) {
      rc = x;
      break;
    }
    if (x == FL_KV_DELETE) {
      char *e = NULL;
      rocksdb_delete_cf(r->db, r->wo, t->cf, key, kl, &e);
      if (e) {
        rc = rdb_fail(r, e, "map delete", t);
        break;
      }
    } else if (x == FL_KV_STOP) {
      break;
    }
  }
  int crc = scan_close(r, &s, "map iteration", t);
  return rc ? rc : crc;
}

/* ---------------------------------------------------------------------------------- */
/* Walks                                                                                */

/* The slot of a paused walk's token (the slot index is in the token's low bits). */
static rdb_cursor_t *cursor_find(rdb_t *r, uint64_t token, uint32_t table) {
  if (token == 0 || !r->cursors) return NULL;
  rdb_cursor_t *c = &r->cursors[token & (RDB_CURSORS - 1)];
  return c->token == token && c->table == table ? c : NULL;
}

/* A slot for a walk that pauses: a free one, else the least recently used (O(slots),
 * only when all are taken). NULL when out of memory. */
static rdb_cursor_t *cursor_new(rdb_t *r, uint32_t table) {
  if (!r->cursors && !(r->cursors = calloc(RDB_CURSORS, sizeof *r->cursors))) return NULL;
  size_t idx;
  if (r->n_free) {
    idx = r->free_slots[--r->n_free];
  } else if (r->n_cursors < RDB_CURSORS) {
    idx = r->n_cursors++;
  } else {
    idx = 0;
    for (size_t i = 1; i < RDB_CURSORS; i++)
      if (r->cursors[i].used < r->cursors[idx].used) idx = i;
  }
  rdb_cursor_t *c = &r->cursors[idx];
  c->token = ++r->next_gen << RDB_CURSOR_BITS | idx;
  c->table = table;
  c->len = 0;
  return c;
}

static void cursor_free(rdb_t *r, rdb_cursor_t *c) {
  c->token = 0;
  r->free_slots[r->n_free++] = (uint16_t)(c - r->cursors);
}

/* Sets the walk position w to key (or, with successor, the smallest key after it). */
static int pos_set(rdb_cursor_t *w, const void *key, size_t len, bool successor) {
  size_t need = len + (successor ? 1 : 0);
  if (need > w->cap) {
    unsigned char *p = realloc(w->key, need);
    if (!p) return FL_ENOMEM;
    w->key = p;
    w->cap = need;
  }
  copy_bytes(w->key, key, len);
  if (successor) w->key[len] = 0;
  w->len = need;
  return FL_OK;
}

/* The position after the cell of stored key (kl bytes, decoded in d): a value cell's
 * immediate successor; past every entry of a map cell. */
static int pos_after(rdb_cursor_t *w, const char *key, size_t kl, const rdb_dkey_t *d) {
  if (d->rest_len == 0) return pos_set(w, key, kl, true);
  int rc = pos_set(w, key, d->plen + 1, false);
  if (rc == FL_OK) w->key[d->plen] = RDB_MAP_TAG + 1;
  return rc;
}

static void pos_swap(rdb_cursor_t *a, rdb_cursor_t *b) {
  unsigned char *k = a->key;
  size_t len = a->len, cap = a->cap;
  a->key = b->key;
  a->len = b->len;
  a->cap = b->cap;
  b->key = k;
  b->len = len;
  b->cap = cap;
}

static int rdb_iterate(void *self, uint32_t table, uint64_t *cursor, size_t max_entries,
                       int (*cb)(const fl_kkey_t *k, const void *val, size_t len, void *arg),
                       void *arg) {
  rdb_t *r = self;
  if (!r || !cursor || !cb) return FL_EINVAL;
  rdb_table_t *t = table_of(r, table);
  if (!t) return FL_EINVAL;
  /* The position moves in a local (a callback may start another walk); a paused walk's
   * slot gets it back at the end. A cursor that is 0, or forgotten, starts a new pass. */
  rdb_cursor_t walk = {0}, *w = &walk;
  rdb_cursor_t *c = cursor_find(r, *cursor, table);
  if (c) pos_swap(c, w);
  rocksdb_iterator_t *it = table_iter(r, t, true);
  if (w->len)
    rocksdb_iter_seek(it, (const char *)w->key, w->len);
  else
    rocksdb_iter_seek_to_first(it);
  size_t seen = 0;
  bool stop = false;
  int rc = FL_OK;
  while (rocksdb_iter_valid(it) && seen < max_entries && !stop) {
    size_t kl, vl = 0;
    const char *key = rocksdb_iter_key(it, &kl);
    rdb_dkey_t d;
    if (!dec_key((const unsigned char *)key, kl, &d)) {
      snprintf(r->err, sizeof r->err,
               "rocksdb state: table '%s' in '%s' holds a key this backend did not write", t->name,
               r->dir);
      rc = FL_EPARSE;
      break;
    }
    bool map = d.rest_len > 0;
    const char *v = map ? NULL : rocksdb_iter_value(it, &vl);
    /* One ring buffer: value (aligned) | key | namespace. */
    size_t kn = d.k.key_len + d.k.ns_len;
    unsigned char *p = ring_take(r, vl + kn);
    if (!p) {
      rc = FL_ENOMEM;
      break;
    }
    copy_bytes(p, v, vl);
    copy_bytes(p + vl, d.k.key, d.k.key_len);
    copy_bytes(p + vl + d.k.key_len, d.k.ns, d.k.ns_len);
    fl_kkey_t k = {d.k.kg, p + vl, d.k.key_len, p + vl + d.k.key_len, d.k.ns_len};
    int x = cb(&k, map ? NULL : p, vl, arg);
    if (x < 0) {
      rc = pos_set(w, key, kl, false); /* the walk resumes on this cell */
      if (rc == FL_OK) rc = x;
      break;
    }
    seen++;
    if (x == FL_KV_DELETE) {
      if (map) {
        rc = del_map_cell(r, t, (const unsigned char *)key, d.plen);
      } else {
        char *e = NULL;
        rocksdb_delete_cf(r->db, r->wo, t->cf, key, kl, &e);
        if (e) rc = rdb_fail(r, e, "delete", t);
      }
    }
    /* The iterator reads a snapshot: deleting the entry it stands on does not move it,
     * so key is still valid here. */
    if (rc == FL_OK) rc = pos_after(w, key, kl, &d);
    if (rc) break;
    if (x == FL_KV_STOP)
      stop = true;
    else if (map)
      rocksdb_iter_seek(it, (const char *)w->key, w->len); /* past the cell */
    else
      rocksdb_iter_next(it);
  }
  bool more = stop || rc != FL_OK || rocksdb_iter_valid(it);
  int irc = iter_end(r, it, "iteration", t);
  if (rc == FL_OK) rc = irc;
  if (more && !c && !(c = cursor_new(r, table)) && rc == FL_OK) rc = FL_ENOMEM;
  if (more && c) {
    c->used = ++r->clock;
    pos_swap(c, w);
    *cursor = c->token;
  } else {
    if (c) cursor_free(r, c); /* the pass is over */
    *cursor = 0;
  }
  free(w->key);
  return rc;
}

/* O(cells): see the file comment. */
static size_t rdb_count(void *self, uint32_t table) {
  rdb_t *r = self;
  if (!r) return 0;
  rdb_table_t *t = table_of(r, table);
  if (!t) return 0;
  size_t n = 0;
  rocksdb_iterator_t *it = table_iter(r, t, false);
  rocksdb_iter_seek_to_first(it);
  while (rocksdb_iter_valid(it)) {
    size_t kl;
    const char *key = rocksdb_iter_key(it, &kl);
    rdb_dkey_t d;
    n++;
    if (!dec_key((const unsigned char *)key, kl, &d) || d.rest_len == 0) {
      rocksdb_iter_next(it);
      continue;
    }
    /* A map cell counts once: skip to the first key after its entries. */
    if (fl_buf_reserve(&r->kb, d.plen + 1)) {
      rocksdb_iter_next(it);
      continue;
    }
    memcpy(r->kb.data, key, d.plen);
    r->kb.data[d.plen] = RDB_MAP_TAG + 1;
    rocksdb_iter_seek(it, (const char *)r->kb.data, d.plen + 1);
  }
  if (iter_end(r, it, "count", t)) return 0;
  return n;
}

/* ---------------------------------------------------------------------------------- */
/* Optional ops                                                                         */

static int rdb_set_table_ttl(void *self, uint32_t table, int layout, int64_t ttl_ms) {
  rdb_t *r = self;
  if (!r || ttl_ms <= 0) return FL_EINVAL;
  if (layout != FL_KV_TTL_VALUE && layout != FL_KV_TTL_LIST && layout != FL_KV_TTL_MAP)
    return FL_EINVAL;
  rdb_table_t *t = table_of(r, table);
  if (!t || !t->ttl) return FL_EINVAL;
  atomic_store_explicit(&t->ttl->ttl_ms, ttl_ms, memory_order_relaxed);
  atomic_store_explicit(&t->ttl->layout, layout, memory_order_relaxed);
  return FL_OK;
}

static void rdb_set_time(void *self, int64_t now_ms) {
  rdb_t *r = self;
  if (r) atomic_store_explicit(&r->now, now_ms, memory_order_relaxed);
}

static int rdb_checkpoint(void *self, const char *dir) {
  rdb_t *r = self;
  if (!r || !dir || !*dir) return FL_EINVAL;
  char *e = NULL;
  rocksdb_checkpoint_t *cp = rocksdb_checkpoint_object_create(r->db, &e);
  if (e || !cp) {
    if (cp) rocksdb_checkpoint_object_destroy(cp);
    return rdb_fail(r, e, "creating a checkpoint object", NULL);
  }
  /* 0: always flush the memtables first (the WAL is off, so they are not in it). */
  rocksdb_checkpoint_create(cp, dir, 0, &e);
  rocksdb_checkpoint_object_destroy(cp);
  if (e) {
    size_t n = strlen(dir);
    char what[128];
    snprintf(what, sizeof what, "checkpoint into '%.*s%s'", n > 96 ? 96 : (int)n, dir,
             n > 96 ? "..." : "");
    return rdb_fail(r, e, what, NULL);
  }
  return FL_OK;
}

/* Deletes key groups [a, b) of table t (a < b <= RDB_KG_END) with one range tombstone:
 * from kg(a) (or the empty key) to kg(b) (or, for the last key group, just past the
 * table's last key, as no finite key is greater than every key of key group 0xffff). */
static int delete_kgs(rdb_t *r, rdb_table_t *t, uint32_t a, uint32_t b) {
  unsigned char lo[2] = {(unsigned char)(a >> 8), (unsigned char)a};
  unsigned char hi2[2] = {(unsigned char)(b >> 8), (unsigned char)b};
  const char *hi = (const char *)hi2;
  size_t hi_len = 2;
  int rc = FL_OK;
  if (b >= RDB_KG_END) {
    rocksdb_iterator_t *it = table_iter(r, t, false);
    rocksdb_iter_seek_to_last(it);
    if (rocksdb_iter_valid(it)) {
      size_t kl;
      const char *k = rocksdb_iter_key(it, &kl);
      if (fl_buf_reserve(&r->kb, kl + 1)) {
        rc = FL_ENOMEM;
      } else {
        memcpy(r->kb.data, k, kl);
        r->kb.data[kl] = 0;
        hi_len = kl + 1;
        hi = (const char *)r->kb.data;
      }
    } else {
      hi_len = 0; /* empty table */
    }
    int irc = iter_end(r, it, "finding the last key", t);
    if (rc == FL_OK) rc = irc;
    if (rc || hi_len == 0) return rc;
    /* The last key lies below kg(a): nothing to delete. */
    if (a > 0 && memcmp(hi, lo, hi_len < 2 ? hi_len : 2) < 0) return FL_OK;
  }
  char *e = NULL;
  rocksdb_delete_range_cf(r->db, r->wo, t->cf, (const char *)lo, a ? 2 : 0, hi, hi_len, &e);
  return e ? rdb_fail(r, e, "deleting key groups", t) : FL_OK;
}

static int rdb_retain_key_groups(void *self, uint32_t kg_first, uint32_t kg_count) {
  rdb_t *r = self;
  if (!r) return FL_EINVAL;
  uint64_t end64 = (uint64_t)kg_first + kg_count;
  uint32_t first = kg_first < RDB_KG_END ? kg_first : RDB_KG_END;
  uint32_t end = end64 < RDB_KG_END ? (uint32_t)end64 : RDB_KG_END;
  for (size_t i = 0; i < r->n_tables; i++) {
    rdb_table_t *t = r->tables[i];
    int rc = FL_OK;
    if (first > 0) rc = delete_kgs(r, t, 0, first);
    if (rc == FL_OK && end < RDB_KG_END) rc = delete_kgs(r, t, end, RDB_KG_END);
    if (rc) return rc;
  }
  return FL_OK;
}

int fl_kv_rocksdb_compact(fl_kv_t *kv) {
  if (!kv || kv->ops != &rdb_ops || !kv->self) return FL_EINVAL;
  rdb_t *r = kv->self;
  for (size_t i = 0; i < r->n_tables; i++)
    rocksdb_compact_range_cf(r->db, r->tables[i]->cf, NULL, 0, NULL, 0);
  return FL_OK;
}

/* ---------------------------------------------------------------------------------- */
/* Directories                                                                          */

/* mkdir -p */
static int make_dirs(const char *dir, char *err, size_t es) {
  char why[600];
  int rc = fl_mkdir_p(dir, false, why, sizeof why);
  if (rc) set_err(err, es, "rocksdb state: %s", why);
  return rc;
}

/* Deletes everything inside dir. */
static int empty_dir(const char *dir, char *err, size_t es) {
  int e = fl_empty_dir(dir);
  if (!e) return FL_OK;
  set_err(err, es, "rocksdb state: cannot empty the directory '%s': %s", dir, strerror(-e));
  return FL_EIO;
}

static int copy_file(const char *src, const char *dst, char *err, size_t es) {
  int in = -1, out = -1, rc = FL_OK;
  char buf[1 << 16];
  in = open(src, O_RDONLY | O_CLOEXEC);
  if (in < 0) {
    set_err(err, es, "rocksdb state: cannot open '%s': %s", src, strerror(errno));
    return FL_EIO;
  }
  out = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (out < 0) {
    set_err(err, es, "rocksdb state: cannot create '%s': %s", dst, strerror(errno));
    rc = FL_EIO;
    goto done;
  }
  for (;;) {
    ssize_t n = read(in, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      set_err(err, es, "rocksdb state: cannot read '%s': %s", src, strerror(errno));
      rc = FL_EIO;
      goto done;
    }
    if (n == 0) break;
    for (ssize_t w = 0; w < n;) {
      ssize_t m = write(out, buf + w, (size_t)(n - w));
      if (m < 0 && errno == EINTR) continue;
      if (m < 0) {
        set_err(err, es, "rocksdb state: cannot write '%s': %s", dst, strerror(errno));
        rc = FL_EIO;
        goto done;
      }
      w += m;
    }
  }
done:
  if (in >= 0) close(in);
  if (out >= 0 && close(out) != 0 && rc == FL_OK) {
    set_err(err, es, "rocksdb state: cannot write '%s': %s", dst, strerror(errno));
    rc = FL_EIO;
  }
  return rc;
}

static bool ends_with(const char *s, const char *suffix) {
  size_t n = strlen(s), m = strlen(suffix);
  return n >= m && memcmp(s + n - m, suffix, m) == 0;
}

/* Fills the empty dir with the files of the checkpoint directory from: SST files
 * (immutable) hard-linked when both lie on one file system, everything else (small:
 * MANIFEST, CURRENT, OPTIONS, empty logs) copied, since the new DB writes to those.
 * from is only read. */
static int restore_files(const char *from, const char *dir, char *err, size_t es) {
  DIR *d = opendir(from);
  int rc = FL_OK;
  char *src = NULL, *dst = NULL;
  if (!d) {
    set_err(err, es, "rocksdb state: cannot open the restore directory '%s': %s", from,
            strerror(errno));
    return FL_EIO;
  }
  size_t fl = strlen(from), dl = strlen(dir);
  size_t found = 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
    size_t nl = strlen(e->d_name);
    free(src);
    free(dst);
    src = malloc(fl + nl + 2);
    dst = malloc(dl + nl + 2);
    if (!src || !dst) {
      rc = FL_ENOMEM;
      break;
    }
    snprintf(src, fl + nl + 2, "%s/%s", from, e->d_name);
    snprintf(dst, dl + nl + 2, "%s/%s", dir, e->d_name);
    struct stat st;
    if (stat(src, &st) != 0) {
      set_err(err, es, "rocksdb state: cannot read '%s': %s", src, strerror(errno));
      rc = FL_EIO;
      break;
    }
    if (!S_ISREG(st.st_mode)) {
      set_err(err, es, "rocksdb state: '%s' is not a checkpoint directory: '%s' is not a file",
              from, src);
      rc = FL_EINVAL;
      break;
    }
    found++;
    if (ends_with(e->d_name, ".sst") && link(src, dst) == 0) continue;
    rc = copy_file(src, dst, err, es);
    if (rc) break;
  }
  closedir(d);
  free(src);
  free(dst);
  if (rc == FL_OK && found == 0) {
    set_err(err, es, "rocksdb state: the restore directory '%s' is empty", from);
    rc = FL_EINVAL;
  }
  return rc;
}

/* restore_from must be neither dir nor inside it: dir is emptied first. */
static int check_restore_path(const char *dir, const char *from, char *err, size_t es) {
  char *rd = realpath(dir, NULL), *rf = realpath(from, NULL);
  int rc = FL_OK;
  if (!rf) {
    set_err(err, es, "rocksdb state: cannot open the restore directory '%s': %s", from,
            strerror(errno));
    rc = FL_EIO;
  } else if (rd) {
    size_t n = strlen(rd);
    if (strcmp(rd, rf) == 0 || (strncmp(rd, rf, n) == 0 && rf[n] == '/')) {
      set_err(err, es,
              "rocksdb state: the restore directory '%s' lies in the store directory '%s', "
              "which is emptied first",
              from, dir);
      rc = FL_EINVAL;
    }
  }
  free(rd);
  free(rf);
  return rc;
}

/* ---------------------------------------------------------------------------------- */
/* Shared part                                                                          */

int fl_kv_rocksdb_shared_new(const fl_kv_rocksdb_opts_t *o, fl_kv_rocksdb_shared_t **out, char *err,
                             size_t err_size) {
  fl_kv_rocksdb_opts_t d = {0, 0, 0};
  if (o) d = *o;
  if (!out) return FL_EINVAL;
  *out = NULL;
  if (d.max_write_buffers < 0) {
    set_err(err, err_size, "rocksdb state: max_write_buffers is %d, not >= 0", d.max_write_buffers);
    return FL_EINVAL;
  }
  if (!d.block_cache_bytes) d.block_cache_bytes = RDB_DEFAULT_CACHE;
  if (!d.write_buffer_bytes) d.write_buffer_bytes = RDB_DEFAULT_WRITE_BUFFER;
  if (!d.max_write_buffers) d.max_write_buffers = RDB_DEFAULT_WRITE_BUFFERS;
  fl_kv_rocksdb_shared_t *sh = calloc(1, sizeof *sh);
  if (!sh) return FL_ENOMEM;
  sh->cache = rocksdb_cache_create_lru(d.block_cache_bytes);
  sh->env = rocksdb_create_default_env();
  sh->base = rocksdb_options_create();
  rocksdb_block_based_table_options_t *bb = rocksdb_block_based_options_create();
  if (!sh->cache || !sh->env || !sh->base || !bb) {
    if (bb) rocksdb_block_based_options_destroy(bb);
    fl_kv_rocksdb_shared_destroy(sh);
    return FL_ENOMEM;
  }
  /* Index and filter blocks live in the block cache too, so that the cache bounds the
   * memory of every table file of every worker. They are partitioned (a small top
   * level, pinned, over 4 KiB partitions): a whole filter of a large file is bigger
   * than a cache shard (capacity / 64), would be evicted as soon as it is loaded, and
   * every lookup would read it from the file again. Level-0 ones stay pinned (every
   * lookup reads them); the bloom filters spare reads of absent keys. */
  rocksdb_block_based_options_set_block_cache(bb, sh->cache);
  rocksdb_block_based_options_set_filter_policy(bb, rocksdb_filterpolicy_create_bloom_full(10));
  rocksdb_block_based_options_set_index_type(
      bb, rocksdb_block_based_table_index_type_two_level_index_search);
  rocksdb_block_based_options_set_partition_filters(bb, 1);
  rocksdb_block_based_options_set_metadata_block_size(bb, 4096);
  rocksdb_block_based_options_set_cache_index_and_filter_blocks(bb, 1);
  rocksdb_block_based_options_set_cache_index_and_filter_blocks_with_high_priority(bb, 1);
  rocksdb_block_based_options_set_pin_top_level_index_and_filter(bb, 1);
  rocksdb_block_based_options_set_pin_l0_filter_and_index_blocks_in_cache(bb, 1);
  rocksdb_options_set_block_based_table_factory(sh->base, bb);
  rocksdb_block_based_options_destroy(bb);

  /* The default env's thread pools are process-wide: every worker's flushes and
   * compactions share them. */
  rocksdb_env_set_background_threads(sh->env, 2);
  rocksdb_env_set_high_priority_background_threads(sh->env, 1);
  rocksdb_options_set_env(sh->base, sh->env);
  rocksdb_options_set_create_if_missing(sh->base, 1);
  rocksdb_options_set_create_missing_column_families(sh->base, 1);
  rocksdb_options_set_max_background_jobs(sh->base, 2);
  rocksdb_options_set_info_log_level(sh->base, 2 /* warn */);
  rocksdb_options_set_keep_log_file_num(sh->base, 2);
  rocksdb_options_set_max_log_file_size(sh->base, 1u << 20);
  rocksdb_options_set_level_compaction_dynamic_level_bytes(sh->base, 1);
  rocksdb_options_set_write_buffer_size(sh->base, d.write_buffer_bytes);
  rocksdb_options_set_max_write_buffer_number(sh->base, d.max_write_buffers);
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
  for (size_t i = 0; i < r->n_tables; i++) table_free(r->tables[i]);
  if (r->db) rocksdb_close(r->db);
  if (r->base) rocksdb_options_destroy(r->base);
  if (r->ro) rocksdb_readoptions_destroy(r->ro);
  if (r->ro_scan) rocksdb_readoptions_destroy(r->ro_scan);
  if (r->wo) rocksdb_writeoptions_destroy(r->wo);
  for (size_t i = 0; i < RDB_RING; i++) free(r->ring[i].p);
  if (r->cursors)
    for (size_t i = 0; i < RDB_CURSORS; i++) free(r->cursors[i].key);
  free(r->cursors);
  fl_buf_free(&r->kb);
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
    opts[i] = cf_options(r, &ttls[i]);
    if (!opts[i]) {
      rc = FL_ENOMEM;
      goto done;
    }
  }
  char *e = NULL;
  r->db = rocksdb_open_column_families(r->base, r->dir, (int)n, (const char *const *)names, opts,
                                       handles, &e);
  if (e || !r->db) {
    set_err(err, es, "rocksdb state: cannot open the store in '%s': %s", r->dir,
            e ? e : "unknown error");
    rc = e && strstr(e, "Memory limit") ? FL_ENOMEM : FL_EIO;
    free(e);
    goto done;
  }
  for (size_t i = 0; i < n; i++) {
    if (strncmp(names[i], RDB_CF_PREFIX, RDB_CF_PREFIX_LEN) != 0) {
      rocksdb_column_family_handle_destroy(handles[i]); /* "default" */
      handles[i] = NULL;
      continue;
    }
    rdb_table_t *t = calloc(1, sizeof *t);
    if (!t || !(t->name = strdup(names[i] + RDB_CF_PREFIX_LEN)) || tables_add(r, t)) {
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
    set_err(err, err_size, "rocksdb state: missing shared part, directory or output");
    return FL_EINVAL;
  }
  out->ops = NULL;
  out->self = NULL;
  if (err && err_size) err[0] = '\0';
  rc = make_dirs(dir, err, err_size);
  if (rc == FL_OK && restore_from) rc = check_restore_path(dir, restore_from, err, err_size);
  if (rc == FL_OK) rc = empty_dir(dir, err, err_size);
  if (rc == FL_OK && restore_from) rc = restore_files(restore_from, dir, err, err_size);
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
      set_err(err, err_size, "rocksdb state: '%s' (restored from '%s') holds no readable store: %s",
              dir, restore_from, e ? e : "unknown error");
      free(e);
      rc = FL_EIO;
      goto done;
    }
    rc = open_db(r, names, n_names, err, err_size);
  } else {
    rc = open_db(r, defname, 1, err, err_size);
  }
  if (rc) goto done;
  out->ops = &rdb_ops;
  out->self = r;
  r = NULL;
done:
  if (names) rocksdb_list_column_families_destroy(names, n_names);
  if (rc == FL_ENOMEM && err && err_size && !*err)
    set_err(err, err_size, "rocksdb state: out of memory opening '%s'", dir);
  rdb_destroy(r);
  return rc;
}

void fl_kv_rocksdb_shared_statistics(fl_kv_rocksdb_shared_t *sh, bool on) { sh->statistics = on; }

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
  if (r->statistics && (want[FL_KV_STAT_BLOCK_CACHE_HIT] || want[FL_KV_STAT_BLOCK_CACHE_MISS])) {
    char *text = rocksdb_options_statistics_get_string(r->base);
    if (want[FL_KV_STAT_BLOCK_CACHE_HIT])
      v[FL_KV_STAT_BLOCK_CACHE_HIT] = ticker(text, "rocksdb.block.cache.hit ");
    if (want[FL_KV_STAT_BLOCK_CACHE_MISS])
      v[FL_KV_STAT_BLOCK_CACHE_MISS] = ticker(text, "rocksdb.block.cache.miss ");
    rocksdb_free(text);
  }
  return FL_OK;
}

static const fl_kv_ops_t rdb_ops = {
    .version = FL_KV_OPS_VERSION,
    .name = "rocksdb",
    .destroy = rdb_destroy,
    .open_table = rdb_open_table,
    .get = rdb_get,
    .put = rdb_put,
    .append = rdb_append,
    .del = rdb_del,
    .map_get = rdb_map_get,
    .map_put = rdb_map_put,
    .map_del = rdb_map_del,
    .map_iter = rdb_map_iter,
    .iterate = rdb_iterate,
    .count = rdb_count,
    .set_table_ttl = rdb_set_table_ttl,
    .set_time = rdb_set_time,
    .checkpoint = rdb_checkpoint,
    .retain_key_groups = rdb_retain_key_groups,
    .list_tables = rdb_list_tables,
    .stats = rdb_stats,
};
