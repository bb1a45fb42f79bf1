/*
 * The RocksDB backend's cells (rocksdb.c describes the design): the key encoding
 * kg | len key | key | len ns | ns [| 0x00 | user key], the ring of borrowed copies,
 * tables (a column family each, their kind learnt from the first write or the first
 * key), value cells with merge appends, and map cells as bounded range scans.
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
#include "util/vec.h"

/* ---------------------------------------------------------------------------------- */
/* Key encoding                                                                         */

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

bool fl_rdb_dec_key(const unsigned char *p, size_t n, rdb_dkey_t *d) {
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
unsigned char *fl_rdb_ring_take(rdb_t *r, size_t n) {
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
/* Tables                                                                               */

void fl_rdb_table_free(rdb_table_t *t) {
  if (!t) return;
  if (t->cf) rocksdb_column_family_handle_destroy(t->cf);
  free(t->name);
  free(t);
}

int fl_rdb_tables_add(rdb_t *r, rdb_table_t *t) {
  return FL_VEC_PUSH(r->tables, r->n_tables, r->cap_tables, t);
}

static int ids_reserve(rdb_t *r) {
  if (r->n_ids < r->cap_ids) return FL_OK;
  if (r->n_ids >= UINT32_MAX) return FL_ENOMEM;
  return FL_VEC_RESERVE(r->ids, r->cap_ids, r->n_ids + 1);
}

rdb_table_t *fl_rdb_table_of(rdb_t *r, uint32_t id) {
  return id < r->n_ids ? r->tables[r->ids[id]] : NULL;
}

/* A full-table iterator (RocksDB's error, if any, is left for scan_end). */
rocksdb_iterator_t *fl_rdb_table_iter(rdb_t *r, rdb_table_t *t, bool fill_cache) {
  return rocksdb_create_iterator_cf(r->db, fill_cache ? r->ro : r->ro_scan, t->cf);
}

int fl_rdb_iter_end(rdb_t *r, rocksdb_iterator_t *it, const char *what, rdb_table_t *t) {
  char *e = NULL;
  rocksdb_iter_get_error(it, &e);
  rocksdb_iter_destroy(it);
  return e ? fl_rdb_fail(r, e, what, t) : FL_OK;
}

/* The kind of a restored table, from its first key. */
static int probe_kind(rdb_t *r, rdb_table_t *t) {
  rocksdb_iterator_t *it = fl_rdb_table_iter(r, t, true);
  rocksdb_iter_seek_to_first(it);
  if (rocksdb_iter_valid(it)) {
    size_t kl;
    const char *k = rocksdb_iter_key(it, &kl);
    rdb_dkey_t d;
    if (fl_rdb_dec_key((const unsigned char *)k, kl, &d))
      t->kind = d.rest_len ? RDB_KIND_MAP : RDB_KIND_VALUE;
  }
  return fl_rdb_iter_end(r, it, "reading the first key", t);
}

int fl_rdb_open_table(void *self, const char *name, uint32_t *id) {
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
  o = fl_rdb_cf_options(r, &ttl);
  if (!o) {
    rc = FL_ENOMEM;
    goto done;
  }
  char *e = NULL;
  t->cf = rocksdb_create_column_family(r->db, o, cfname, &e);
  if (e || !t->cf) {
    rc = fl_rdb_fail(r, e, "creating the column family", t);
    goto done;
  }
  t->ttl = ttl; /* alive while the column family is: its options own it */
  t->id = (int64_t)r->n_ids;
  rc = fl_rdb_tables_add(r, t);
  if (rc) goto done; /* the column family stays in the DB, unused */
  r->ids[r->n_ids++] = (uint32_t)(r->n_tables - 1);
  *id = (uint32_t)t->id;
  t = NULL;
done:
  if (o) rocksdb_options_destroy(o);
  free(cfname);
  fl_rdb_table_free(t);
  return rc;
}

int fl_rdb_list_tables(void *self, int (*cb)(const char *name, void *arg), void *arg) {
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

static inline bool bad_kkey(const fl_kkey_t *k) {
  return !k || (k->key_len && !k->key) || (k->ns_len && !k->ns);
}

/* Validates a call on a cell of table id and returns the table. */
static int prepare(rdb_t *r, uint32_t id, const fl_kkey_t *k, rdb_table_t **t) {
  if (!r || !k) return FL_EINVAL;
  if ((k->key_len && !k->key) || (k->ns_len && !k->ns)) return FL_EINVAL;
  *t = fl_rdb_table_of(r, id);
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
  unsigned char *p = fl_rdb_ring_take(r, n);
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
    return fl_rdb_fail(r, e, "get", t);
  }
  if (!ps) return 0;
  return pinned_out(r, ps, val, len);
}

int fl_rdb_get(void *self, uint32_t table, const fl_kkey_t *k, const void **val, size_t *len) {
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

/* A value cell written whole (put) or appended to through the merge operator. */
static int write_value(void *self, uint32_t table, const fl_kkey_t *k, const void *val, size_t len,
                       bool merge) {
  rdb_t *r = self;
  rdb_table_t *t;
  if (len && !val) return FL_EINVAL;
  int rc = prepare(r, table, k, &t);
  if (rc == FL_OK) rc = use_kind(t, RDB_KIND_VALUE, true);
  if (rc == FL_OK) rc = enc_key(r, k, false, NULL, 0);
  if (rc) return rc;
  char *e = NULL;
  const char *v = len ? (const char *)val : "";
  if (merge)
    rocksdb_merge_cf(r->db, r->wo, t->cf, (const char *)r->kb.data, r->kb.len, v, len, &e);
  else
    rocksdb_put_cf(r->db, r->wo, t->cf, (const char *)r->kb.data, r->kb.len, v, len, &e);
  return e ? fl_rdb_fail(r, e, merge ? "append" : "put", t) : FL_OK;
}

int fl_rdb_put(void *self, uint32_t table, const fl_kkey_t *k, const void *val, size_t len) {
  return write_value(self, table, k, val, len, false);
}

int fl_rdb_append(void *self, uint32_t table, const fl_kkey_t *k, const void *val, size_t len) {
  return write_value(self, table, k, val, len, true);
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
  if (s->it) rc = fl_rdb_iter_end(r, s->it, what, t);
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
int fl_rdb_del_map_cell(rdb_t *r, rdb_table_t *t, const unsigned char *p, size_t plen) {
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
    if (e) rc = fl_rdb_fail(r, e, "deleting a map cell", t);
  }
  rocksdb_writebatch_destroy(b);
  return rc;
}

int fl_rdb_del(void *self, uint32_t table, const fl_kkey_t *k) {
  rdb_t *r = self;
  rdb_table_t *t;
  int rc = prepare(r, table, k, &t);
  if (rc) return rc;
  if (t->kind == RDB_KIND_UNKNOWN) return FL_OK; /* nothing written yet */
  bool map = t->kind == RDB_KIND_MAP;
  rc = enc_key(r, k, false, NULL, 0);
  if (rc) return rc;
  if (map) return fl_rdb_del_map_cell(r, t, r->kb.data, r->kb.len);
  char *e = NULL;
  rocksdb_delete_cf(r->db, r->wo, t->cf, (const char *)r->kb.data, r->kb.len, &e);
  return e ? fl_rdb_fail(r, e, "delete", t) : FL_OK;
}

/* ---------------------------------------------------------------------------------- */
/* Map cells                                                                            */

int fl_rdb_map_get(void *self, uint32_t table, const fl_kkey_t *k, const void *ukey,
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

int fl_rdb_map_put(void *self, uint32_t table, const fl_kkey_t *k, const void *ukey,
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
  return e ? fl_rdb_fail(r, e, "map put", t) : FL_OK;
}

/* A map cell exists while it has entries, so removing the last one removes it. */
int fl_rdb_map_del(void *self, uint32_t table, const fl_kkey_t *k, const void *ukey,
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
  return e ? fl_rdb_fail(r, e, "map delete", t) : FL_OK;
}

int fl_rdb_map_iter(void *self, uint32_t table, const fl_kkey_t *k,
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
    unsigned char *p = fl_rdb_ring_take(r, vl + ul);
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
        rc = fl_rdb_fail(r, e, "map delete", t);
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
/* Write batches                                                                        */

/* Adds one write to batch b (deleting a whole map cell cannot be batched: it scans the
 * cell, so what the batch holds is written first). */
static int batch_add(rdb_t *r, rocksdb_writebatch_t *b, const fl_kv_write_t *w) {
  rdb_table_t *t;
  bool map = w->op == FL_KV_W_MAP_PUT || w->op == FL_KV_W_MAP_DEL;
  if ((w->len && !w->val) || (w->ukey_len && !w->ukey)) return FL_EINVAL;
  int rc = prepare(r, w->table, &w->k, &t);
  if (rc) return rc;
  if (w->op == FL_KV_W_DEL) {
    if (t->kind == RDB_KIND_UNKNOWN) return FL_OK;
    map = t->kind == RDB_KIND_MAP;
  } else {
    rc = use_kind(t, map ? RDB_KIND_MAP : RDB_KIND_VALUE, w->op != FL_KV_W_MAP_DEL);
    if (rc) return rc;
    if (t->kind == RDB_KIND_UNKNOWN) return FL_OK; /* a map delete in an empty table */
  }
  rc = enc_key(r, &w->k, map && w->op != FL_KV_W_DEL, w->ukey, w->ukey_len);
  if (rc) return rc;
  const char *key = (const char *)r->kb.data, *val = w->len ? (const char *)w->val : "";
  size_t kl = r->kb.len;
  switch (w->op) {
  case FL_KV_W_PUT:
  case FL_KV_W_MAP_PUT: rocksdb_writebatch_put_cf(b, t->cf, key, kl, val, w->len); break;
  case FL_KV_W_APPEND: rocksdb_writebatch_merge_cf(b, t->cf, key, kl, val, w->len); break;
  case FL_KV_W_MAP_DEL: rocksdb_writebatch_delete_cf(b, t->cf, key, kl); break;
  case FL_KV_W_DEL:
    if (!map) {
      rocksdb_writebatch_delete_cf(b, t->cf, key, kl);
      break;
    }
    if (rocksdb_writebatch_count(b) > 0) {
      char *e = NULL;
      rocksdb_write(r->db, r->wo, b, &e);
      rocksdb_writebatch_clear(b);
      if (e) return fl_rdb_fail(r, e, "writing a batch", t);
    }
    return fl_rdb_del_map_cell(r, t, r->kb.data, r->kb.len);
  default: return FL_EINVAL;
  }
  return FL_OK;
}

/* A write's key, encoded, for sorting. */
typedef struct rdb_wkey {
  size_t off, len; /* in r->wkeys */
  uint32_t table;
  uint32_t i; /* the write's index: equal keys keep their order */
} rdb_wkey_t;

static int cmp_wkey(const void *a, const void *b, void *base) {
  const rdb_wkey_t *x = a, *y = b;
  const unsigned char *wkeys_base = base;
  if (x->table != y->table) return x->table < y->table ? -1 : 1;
  size_t n = x->len < y->len ? x->len : y->len;
  int c = memcmp(wkeys_base + x->off, wkeys_base + y->off, n);
  if (c) return c;
  if (x->len != y->len) return x->len < y->len ? -1 : 1;
  return x->i < y->i ? -1 : x->i > y->i;
}

/* Encodes the key of every write into r->wkeys, in key order in r->worder. false when
 * the batch must keep its order as given (it deletes a whole map cell, which is a scan)
 * or memory ran out. */
static bool sort_keys(rdb_t *r, const fl_kv_write_t *w, size_t n) {
  if (n > UINT32_MAX || fl_buf_reserve(&r->worder, n * sizeof(rdb_wkey_t))) return false;
  rdb_wkey_t *o = (rdb_wkey_t *)r->worder.data;
  r->wkeys.len = 0;
  for (size_t i = 0; i < n; i++) {
    rdb_table_t *t = fl_rdb_table_of(r, w[i].table);
    bool map = w[i].op == FL_KV_W_MAP_PUT || w[i].op == FL_KV_W_MAP_DEL;
    if (!t || (w[i].op == FL_KV_W_DEL && t->kind == RDB_KIND_MAP)) return false;
    if (bad_kkey(&w[i].k) || enc_key(r, &w[i].k, map, w[i].ukey, w[i].ukey_len)) return false;
    if (fl_buf_reserve(&r->wkeys, r->wkeys.len + r->kb.len)) return false;
    memcpy(r->wkeys.data + r->wkeys.len, r->kb.data, r->kb.len);
    o[i] = (rdb_wkey_t){r->wkeys.len, r->kb.len, w[i].table, (uint32_t)i};
    r->wkeys.len += r->kb.len;
  }
  /* the keys' base goes with the call: the workers' stores sort at once */
  qsort_r(o, n, sizeof *o, cmp_wkey, r->wkeys.data);
  return true;
}

/* Writes of a batch in key order (RocksDB inserts a sorted run into its memtable much
 * faster: each insert starts where the last one ended), the same writes of a key in
 * their given order. */
int fl_rdb_write_batch(void *self, const fl_kv_write_t *w, size_t n) {
  rdb_t *r = self;
  if (!r || (n && !w)) return FL_EINVAL;
  if (!r->batch && !(r->batch = rocksdb_writebatch_create())) return FL_ENOMEM;
  rocksdb_writebatch_t *b = r->batch;
  rocksdb_writebatch_clear(b);
  int rc = FL_OK;
  if (n > 1 && sort_keys(r, w, n)) {
    const rdb_wkey_t *o = (const rdb_wkey_t *)r->worder.data;
    for (size_t i = 0; i < n && rc == FL_OK; i++) rc = batch_add(r, b, &w[o[i].i]);
  } else {
    for (size_t i = 0; i < n && rc == FL_OK; i++) rc = batch_add(r, b, &w[i]);
  }
  if (rc == FL_OK && rocksdb_writebatch_count(b) > 0) {
    char *e = NULL;
    rocksdb_write(r->db, r->wo, b, &e);
    if (e) rc = fl_rdb_fail(r, e, "writing a batch", NULL);
  }
  rocksdb_writebatch_clear(b);
  return rc;
}
