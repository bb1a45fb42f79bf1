/*
 * The state cache's write-back (cache.h, design at the top of cache.c): the write that
 * brings a store up to date with a dirty item, the flush of a store or of one map cell
 * (at checkpoint barriers, before walks and native copies), and the write-ahead that
 * keeps the cache's dirty bytes under its limit between barriers.
 *
 * Writing ahead of the barrier. A barrier writes every dirty cell before the
 * checkpoint's copy, and the records behind the barrier wait for it: with a cache of
 * gigabytes that is seconds (the feature pipeline at 2.5M users, a 6 GB cache per worker:
 * about 2 GB dirty after a 60 s checkpoint interval, 1.4-1.8 s of flush, 90 % of the
 * barrier's hold). So dirty cells may go to their stores before it, in write batches,
 * and stay cached, clean. They go in sweeps through the store's key order, as the flush
 * writes them: the dirty items are sorted, then taken from the front; a sweep ends when
 * the sorted ones are gone, and the next sorts what is dirty then (RocksDB turns a run
 * in key order into table files that overlap little, where cells written in the order
 * they became dirty, in sorted batches of 1024 random keys, made it compact far more:
 * measured, see docs/state.md). Write-ahead happens
 *  - down to the dirty target, one batch a call, by fl_kv_cache_write_ahead_idle, which
 *    a worker calls when it has nothing else to do (so it costs no time a record would
 *    have had);
 *  - down to 1/32 below the dirty limit, as cells are marked past it, busy or not: a
 *    bound on what a barrier writes, paid for in CPU, since cells written ahead lose the
 *    whole key order of the barrier's flush (RocksDB inserts and compacts more).
 * Left dirty, moved to the back: the item being marked, items whose value is lent out
 * (pinned: the caller may still write through the pointer) and map entries of a map
 * being walked. A failed write leaves its items dirty and stops the write-ahead until a
 * flush succeeds (the flush reports the error). Exactness is unchanged: a checkpoint
 * copies the store after the flush, and a cell written ahead is in the store before it.
 */
#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "state/cache_internal.h"

/* ---------------------------------------------------------------------------------- */
/* Write-back                                                                           */

/* The write that brings the store up to date with a dirty item. */
void fl_cc_item_write(const cc_item_t *it, fl_kv_write_t *w) {
  const cc_item_t *cell = it->type == CC_CHILD ? it->parent : it;
  memset(w, 0, sizeof *w);
  w->table = cell->table;
  w->k.kg = cell->kg;
  w->k.key = cell->key;
  w->k.key_len = cell->klen;
  w->k.ns = cell->key + cell->klen;
  w->k.ns_len = cell->nslen;
  if (it->type == CC_CHILD) {
    w->op = it->st == CC_DEL ? FL_KV_W_MAP_DEL : FL_KV_W_MAP_PUT;
    w->ukey = it->key;
    w->ukey_len = it->klen;
  } else {
    w->op = it->st == CC_DEL ? FL_KV_W_DEL : it->st == CC_MERGE ? FL_KV_W_APPEND : FL_KV_W_PUT;
  }
  if (w->op == FL_KV_W_APPEND) {
    w->val = it->u.v.p + it->u.v.moff;
    w->len = it->u.v.len - it->u.v.moff;
  } else if (w->op == FL_KV_W_PUT || w->op == FL_KV_W_MAP_PUT) {
    w->val = it->u.v.p;
    w->len = it->u.v.len;
  }
}

int fl_kv_write_one(const fl_kv_ops_t *o, void *self, const fl_kv_write_t *w) {
  switch (w->op) {
  case FL_KV_W_PUT: return o->put(self, w->table, &w->k, w->val, w->len);
  case FL_KV_W_APPEND: return o->append(self, w->table, &w->k, w->val, w->len);
  case FL_KV_W_DEL: return o->del(self, w->table, &w->k);
  case FL_KV_W_MAP_PUT:
    return o->map_put(self, w->table, &w->k, w->ukey, w->ukey_len, w->val, w->len);
  case FL_KV_W_MAP_DEL: return o->map_del(self, w->table, &w->k, w->ukey, w->ukey_len);
  default: return FL_EINVAL;
  }
}

/* n writes to the inner store: one batch, or call by call. */
int fl_cc_apply(cc_view_t *v, const fl_kv_write_t *w, size_t n) {
  const fl_kv_ops_t *o = v->inner.ops;
  void *s = v->inner.self;
  if (n == 0) return FL_OK;
  if (o->version >= 3 && o->write_batch) return o->write_batch(s, w, n);
  int rc = FL_OK;
  for (size_t i = 0; i < n && rc == FL_OK; i++) rc = fl_kv_write_one(o, s, &w[i]);
  return rc;
}

/* What is left of an item once the store has its writes. */
static void written(cc_view_t *v, cc_item_t *it) {
  if (it->st == CC_MERGE) {
    if (it->flags & CC_PARTIAL)
      fl_cc_clear_value(v, it); /* the store has the suffix; nothing is known beyond it */
    else
      it->u.v.moff = it->u.v.len;
  }
}

int fl_cc_write_one(cc_view_t *v, cc_item_t *it) {
  fl_kv_write_t w;
  fl_cc_item_write(it, &w);
  int rc = fl_cc_apply(v, &w, 1);
  if (rc) return rc;
  written(v, it);
  fl_cc_mark_clean(v, it);
  return FL_OK;
}

/* A dirty item with the first bytes of where it falls in a RocksDB store's key order:
 * table (a column family: a memtable of its own), key group, key length, the key's
 * first three bytes (rocksdb_cells.c's encoding, for keys under 128 bytes). */
typedef struct cc_order {
  uint64_t pre;
  cc_item_t *it;
} cc_order_t;

static uint64_t order_prefix(const cc_item_t *it) {
  const cc_item_t *cell = it->type == CC_CHILD ? it->parent : it;
  uint64_t p = (uint64_t)(cell->table & 0xffffu) << 48 | (uint64_t)cell->kg << 32 |
               (uint64_t)(cell->klen < 0xff ? cell->klen : 0xff) << 24;
  for (uint32_t i = 0; i < 3 && i < cell->klen; i++) p |= (uint64_t)cell->key[i] << (16 - 8 * i);
  return p;
}

/* Byte strings as the store orders them: by length first when it precedes them in the
 * encoding (a key, a namespace), else by bytes with a prefix first (a user key). */
static int cmp_bytes(const unsigned char *a, size_t an, const unsigned char *b, size_t bn,
                     bool length_first) {
  if (length_first && an != bn) return an < bn ? -1 : 1;
  int c = an && bn ? memcmp(a, b, an < bn ? an : bn) : 0;
  return c ? c : (an > bn) - (an < bn);
}

static int cmp_order(const void *a, const void *b) {
  const cc_order_t *x = a, *y = b;
  if (x->pre != y->pre) return x->pre < y->pre ? -1 : 1;
  const cc_item_t *cx = x->it->type == CC_CHILD ? x->it->parent : x->it;
  const cc_item_t *cy = y->it->type == CC_CHILD ? y->it->parent : y->it;
  int c = cmp_bytes(cx->key, cx->klen, cy->key, cy->klen, true);
  if (!c) c = cmp_bytes(cx->key + cx->klen, cx->nslen, cy->key + cy->klen, cy->nslen, true);
  if (!c && x->it != cx && y->it != cy)
    c = cmp_bytes(x->it->key, x->it->klen, y->it->key, y->it->klen, false);
  return c;
}

/* Puts the dirty array's items in about the store's key order. The inner store sorts each
 * write batch, and RocksDB inserts a sorted run into its memtable skip list starting
 * where the last insert ended; batches that follow one another in key order as well
 * keep every insert near the last one, where batches of random keys each search the
 * whole list again (the flush at a barrier of the feature pipeline, about 47,000 cells:
 * 115-170 ms in batches of random keys, 64-100 ms in order). The 16 bytes per item
 * are freed after the sort; without them the array stays as it is. Each cell and map
 * entry is in the array once, so the order of the writes is free. One batch or less
 * the store sorts itself. */
static void dirty_in_key_order(cc_view_t *v) {
  size_t n = v->n_dirty - v->d0;
  cc_item_t **d = v->dirty + v->d0;
  cc_order_t *o = n > CC_BATCH ? malloc(n * sizeof *o) : NULL;
  if (o) {
    for (size_t i = 0; i < n; i++) o[i] = (cc_order_t){order_prefix(d[i]), d[i]};
    qsort(o, n, sizeof *o, cmp_order);
    for (size_t i = 0; i < n; i++) {
      d[i] = o[i].it;
      o[i].it->didx = (uint32_t)(v->d0 + i);
    }
    free(o);
  }
  if (o || n <= CC_BATCH) v->sorted = v->n_dirty;
}

int fl_cc_flush(cc_view_t *v) {
  fl_kv_cache_t *c = v->c;
  if (v->n_dirty == 0) return FL_OK;
  int64_t t0 = fl_cc_now_ns();
  int rc = FL_OK;
  size_t taken = 0; /* items of the batches the store took */
  fl_cc_dirty_compact(v);
  dirty_in_key_order(v);
  for (size_t at = 0; at < v->n_dirty && rc == FL_OK;) {
    size_t n = v->n_dirty - at < CC_BATCH ? v->n_dirty - at : CC_BATCH;
    for (size_t i = 0; i < n; i++) fl_cc_item_write(v->dirty[at + i], &c->wb[i]);
    rc = fl_cc_apply(v, c->wb, n);
    at += n;
    if (rc == FL_OK) taken = at;
  }
  /* What the store took is clean even when a later batch failed: written again, an
   * append would be appended twice. The rest stays dirty for the next flush. */
  for (size_t i = 0; i < taken; i++) {
    cc_item_t *it = v->dirty[i];
    written(v, it);
    fl_cc_set_clean(v, it);
  }
  if (rc) {
    v->d0 = taken;
    return rc;
  }
  v->n_dirty = v->sorted = 0;
  c->ahead_failed = false;
  int64_t dt = fl_cc_now_ns() - t0;
  v->flushes++;
  v->flush_ns_last = dt;
  v->flush_ns_total += dt;
  return FL_OK;
}

int fl_cc_flush_head(cc_view_t *v, cc_item_t *head) {
  fl_kv_cache_t *c = v->c;
  int rc = FL_OK;
  while (head->u.h.ndirty && rc == FL_OK) {
    cc_item_t *batch[CC_BATCH];
    size_t n = 0;
    for (size_t i = 0; i <= head->u.h.mask && n < CC_BATCH; i++)
      for (cc_item_t *it = head->u.h.tab[i]; it && n < CC_BATCH; it = it->hnext)
        if (it->st != CC_CLEAN) {
          fl_cc_item_write(it, &c->wb[n]);
          batch[n++] = it;
        }
    rc = fl_cc_apply(v, c->wb, n);
    for (size_t i = 0; i < n && rc == FL_OK; i++) {
      written(v, batch[i]);
      fl_cc_mark_clean(v, batch[i]);
    }
  }
  return rc;
}

/* ---------------------------------------------------------------------------------- */
/* Write-ahead                                                                          */

void fl_kv_cache_set_dirty_limit(fl_kv_cache_t *c, size_t bytes) {
  if (!c) return;
  c->dirty_cap = bytes ? bytes : SIZE_MAX;
  c->dirty_low = bytes ? bytes - bytes / 32 : SIZE_MAX;
}

void fl_kv_cache_set_dirty_target(fl_kv_cache_t *c, size_t bytes) {
  if (c) c->dirty_target = bytes ? bytes : SIZE_MAX;
}

static bool can_write_ahead(const cc_item_t *it, const cc_item_t *keep) {
  return it != keep && !it->pins && !(it->type == CC_CHILD && it->parent->u.h.busy);
}

/* One batch of the next dirty items of v's sweep that may go now, while the dirty bytes
 * are above low; the others go to the back. The number of items written, or -1 when the
 * write failed. */
static int write_ahead_batch(cc_view_t *v, const cc_item_t *keep, size_t low) {
  fl_kv_cache_t *c = v->c;
  cc_item_t *batch[CC_BATCH];
  if (v->d0 >= v->sorted) dirty_in_key_order(v); /* a new sweep through the key order */
  size_t n = 0, bytes = 0, look = v->n_dirty - v->d0;
  while (n < CC_BATCH && look-- > 0 && c->dirty_bytes - bytes > low) {
    cc_item_t *it = fl_cc_dirty_pop(v);
    if (!can_write_ahead(it, keep)) {
      (void)fl_cc_dirty_push_back(v, it); /* a pop left a slot: cannot fail */
      continue;
    }
    fl_cc_item_write(it, &c->wb[n]);
    batch[n++] = it;
    bytes += it->acct;
  }
  if (n == 0) return 0;
  int rc = fl_cc_apply(v, c->wb, n);
  for (size_t i = 0; i < n; i++) {
    if (rc) {
      (void)fl_cc_dirty_push_back(v, batch[i]); /* still dirty */
    } else {
      written(v, batch[i]);
      fl_cc_set_clean(v, batch[i]);
    }
  }
  if (rc) return -1;
  v->written_ahead += n;
  return (int)n;
}

/* Batches (at most max) of the next dirty items, not keep, of the stores with the most
 * dirty bytes, while the dirty bytes are above low. Whether any was written. */
static bool write_ahead(fl_kv_cache_t *c, const cc_item_t *keep, size_t low, int max) {
  bool any = false;
  for (int b = 0; b < max && c->dirty_bytes > low && !c->ahead_failed; b++) {
    cc_view_t *v = NULL; /* the store with the most dirty bytes */
    for (size_t i = 0; i < c->n_views; i++)
      if (c->views[i] && (!v || c->views[i]->dirty_bytes > v->dirty_bytes)) v = c->views[i];
    if (!v || v->dirty_bytes == 0) break;
    int n = write_ahead_batch(v, keep, low);
    if (n < 0) c->ahead_failed = true;
    if (n <= 0) break; /* failed, or nothing there may go now */
    any = true;
  }
  return any;
}

void fl_cc_write_ahead(fl_kv_cache_t *c, const cc_item_t *keep) {
  (void)write_ahead(c, keep, c->dirty_low, INT32_MAX);
}

bool fl_kv_cache_write_ahead_idle(fl_kv_cache_t *c) {
  return c && c->dirty_bytes > c->dirty_target && write_ahead(c, NULL, c->dirty_target, 1);
}
