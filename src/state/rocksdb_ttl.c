/*
 * The RocksDB backend's merge operator and TTL cleanup (rocksdb.c describes the
 * design): appends concatenate; a compaction filter per column family drops expired
 * values and map entries and rewrites lists without their expired items, reading the
 * table's layout and ttl and the store's clock from atomics, since compactions run on
 * RocksDB's threads.
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
rocksdb_options_t *fl_rdb_cf_options(rdb_t *r, rdb_ttl_t **ttl) {
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
/* Optional ops                                                                         */

int fl_rdb_set_table_ttl(void *self, uint32_t table, int layout, int64_t ttl_ms) {
  rdb_t *r = self;
  if (!r || ttl_ms <= 0) return FL_EINVAL;
  if (layout != FL_KV_TTL_VALUE && layout != FL_KV_TTL_LIST && layout != FL_KV_TTL_MAP)
    return FL_EINVAL;
  rdb_table_t *t = fl_rdb_table_of(r, table);
  if (!t || !t->ttl) return FL_EINVAL;
  atomic_store_explicit(&t->ttl->ttl_ms, ttl_ms, memory_order_relaxed);
  atomic_store_explicit(&t->ttl->layout, layout, memory_order_relaxed);
  return FL_OK;
}

void fl_rdb_set_time(void *self, int64_t now_ms) {
  rdb_t *r = self;
  if (r) atomic_store_explicit(&r->now, now_ms, memory_order_relaxed);
}

int fl_kv_rocksdb_compact(fl_kv_t *kv) {
  if (!kv || kv->ops != &fl_rdb_ops || !kv->self) return FL_EINVAL;
  rdb_t *r = kv->self;
  for (size_t i = 0; i < r->n_tables; i++)
    rocksdb_compact_range_cf(r->db, r->tables[i]->cf, NULL, 0, NULL, 0);
  return FL_OK;
}
