/*
 * The kv.h operations of a cached store (cache.c describes the design).
 *
 * Each call first checks what the inner store would reject (bad arguments, an unknown
 * table, value calls on a map table and the reverse), so that a cell answered by the
 * cache fails exactly where the store would. What a table holds is learnt as the store
 * learns it: until the store accepted a write of either kind (or found a cell), calls on
 * the table go straight to it and nothing of it is cached.
 *
 * Value cells: a get that misses reads the store and caches what it found, or that the
 * cell is absent; put, append and del change the cached item and mark it dirty, without
 * reading the store. An append to a cell the cache does not hold keeps only the appended
 * bytes (a partial item); a read of it then reads the store and puts its value in front.
 *
 * Map cells: one item per user key under a head item per map cell. A walk of a map cell
 * (map_iter) writes that cell's dirty keys first and then walks the store, unless the
 * head knows every key of the cell (after the cell was deleted), when the cache walks
 * its own keys in the store's order. Deleting a whole map cell goes to the store at
 * once, the cached keys being dropped.
 *
 * Table walks (iterate) and counts flush the store's dirty items first (only when the
 * table has any) and then walk the inner store; a cell the walk deletes is dropped from
 * the cache too. A native copy (checkpoint) and retain_key_groups flush first as well.
 */
#include <stdlib.h>
#include <string.h>

#include "state/cache_internal.h"

static inline bool bad_key(const fl_kkey_t *k) {
  return !k || (k->key_len && !k->key) || (k->ns_len && !k->ns);
}

#define IN(v) ((v)->inner.ops)
#define IS(v) ((v)->inner.self)

/* Checks a cell call on table; 0, or FL_EINVAL. kind: what the call is about. */
static int prep(cc_view_t *v, uint32_t table, const fl_kkey_t *k, int kind) {
  if (!v || bad_key(k) || table >= v->n_tables) return FL_EINVAL;
  int have = v->kinds[table];
  return have != CC_KIND_UNKNOWN && have != kind ? FL_EINVAL : FL_OK;
}

/* The value item of a cell, or NULL (then *h is the cell's hash). Marks it used unless
 * it is the item the last call found or made: a read-modify-write is one use, so that
 * a cell read once, as every cell of a scan is, gets no second chance from the CLOCK
 * hand for the write that follows its read. */
static cc_item_t *find_value(cc_view_t *v, uint32_t table, const fl_kkey_t *k, uint32_t *h) {
  cc_item_t *it = v->last;
  if (it && fl_cc_same_cell(it, CC_VALUE, table, k)) return it;
  *h = fl_cc_hash_cell(v, table, k);
  it = fl_cc_find(v, CC_VALUE, table, k, *h);
  if (it) {
    v->last = it;
    it->flags |= CC_REF;
  }
  return it;
}

static int hand_out(cc_view_t *v, cc_item_t *it, const void **val, size_t *len) {
  if (it->flags & CC_ABSENT) return 0;
  fl_cc_pin(v->c, it);
  *val = it->u.v.p;
  *len = it->u.v.len;
  return 1;
}

/* ---------------------------------------------------------------------------------- */
/* Value cells                                                                          */

/* The whole value of a partial item: the store's value, then the appended suffix.
 * 1 when the item holds it now; 0 when it is too large to cache (the item is gone and
 * the store has everything); or an error. */
static int resolve(cc_view_t *v, cc_item_t *it) {
  fl_kkey_t k = fl_cc_cell(it);
  const void *p = NULL;
  size_t n = 0;
  int rc = IN(v)->get(IS(v), it->table, &k, &p, &n);
  if (rc < 0) return rc;
  if (rc == 0) n = 0;
  if (n + it->u.v.len > v->c->max_item) {
    rc = it->st == CC_CLEAN ? FL_OK : fl_cc_write_one(v, it);
    if (rc == FL_OK) fl_cc_remove(v, it);
    return rc;
  }
  rc = fl_cc_prepend(v, it, p, n);
  if (rc) return rc;
  it->u.v.moff = (uint32_t)n;
  it->flags &= (uint8_t)~CC_PARTIAL;
  return 1;
}

static int cc_get(void *self, uint32_t table, const fl_kkey_t *k, const void **val, size_t *len) {
  cc_view_t *v = self;
  if (!val || !len) return FL_EINVAL;
  int rc = prep(v, table, k, CC_KIND_VALUE);
  if (rc) return rc;
  if (v->kinds[table] == CC_KIND_UNKNOWN) {
    rc = IN(v)->get(IS(v), table, k, val, len);
    if (rc == 1) v->kinds[table] = CC_KIND_VALUE;
    return rc;
  }
  uint32_t h = 0;
  cc_item_t *it = find_value(v, table, k, &h);
  if (it && (it->flags & CC_PARTIAL)) {
    rc = resolve(v, it);
    if (rc < 0) return rc;
    if (rc == 0) return IN(v)->get(IS(v), table, k, val, len);
  }
  if (it) {
    v->hits++;
    return hand_out(v, it, val, len);
  }
  v->misses++;
  const void *p = NULL;
  size_t n = 0;
  rc = IN(v)->get(IS(v), table, k, &p, &n);
  if (rc < 0) return rc;
  /* p stays valid while the cache writes other cells to the store (making room) */
  if (rc == 0 || n <= v->c->max_item) {
    it = fl_cc_new_cell(v, CC_VALUE, table, k, h, rc ? p : NULL, rc ? n : 0);
    if (it) {
      v->last = it;
      return hand_out(v, it, val, len);
    }
  }
  if (rc == 1) {
    *val = p;
    *len = n;
  }
  return rc;
}

static int cc_put(void *self, uint32_t table, const fl_kkey_t *k, const void *val, size_t len) {
  cc_view_t *v = self;
  if (len && !val) return FL_EINVAL;
  int rc = prep(v, table, k, CC_KIND_VALUE);
  if (rc) return rc;
  if (v->kinds[table] == CC_KIND_UNKNOWN) {
    rc = IN(v)->put(IS(v), table, k, val, len);
    if (rc == FL_OK) v->kinds[table] = CC_KIND_VALUE;
    return rc;
  }
  uint32_t h = 0;
  cc_item_t *it = find_value(v, table, k, &h);
  if (len <= v->c->max_item) {
    if (!it) {
      it = fl_cc_new_cell(v, CC_VALUE, table, k, h, val ? val : "", len);
      if (it) v->last = it;
    } else if (fl_cc_set(v, it, val, len) != FL_OK) {
      it = NULL; /* left as it was: written through below */
    }
    if (it) {
      it->u.v.moff = 0;
      fl_cc_mark(v, it, CC_PUT);
      return FL_OK;
    }
    it = find_value(v, table, k, &h);
  }
  /* Not cached: the store gets it (val may point into the item, which goes after). */
  rc = IN(v)->put(IS(v), table, k, val, len);
  if (it) fl_cc_remove(v, it);
  return rc;
}

/* An append that the cache does not keep: what the item lacks goes to the store, then
 * the appended bytes (which may point into the item), then the item goes. */
static int append_through(cc_view_t *v, cc_item_t *it, uint32_t table, const fl_kkey_t *k,
                          const void *val, size_t len) {
  int rc = it && it->st != CC_CLEAN ? fl_cc_write_one(v, it) : FL_OK;
  if (rc == FL_OK) rc = IN(v)->append(IS(v), table, k, val, len);
  if (it) fl_cc_remove(v, it);
  return rc;
}

static int cc_append(void *self, uint32_t table, const fl_kkey_t *k, const void *val, size_t len) {
  cc_view_t *v = self;
  if (len && !val) return FL_EINVAL;
  int rc = prep(v, table, k, CC_KIND_VALUE);
  if (rc) return rc;
  if (v->kinds[table] == CC_KIND_UNKNOWN) {
    rc = IN(v)->append(IS(v), table, k, val, len);
    if (rc == FL_OK) v->kinds[table] = CC_KIND_VALUE;
    return rc;
  }
  uint32_t h = 0;
  cc_item_t *it = find_value(v, table, k, &h);
  if (!it) {
    if (len > v->c->max_item) return IN(v)->append(IS(v), table, k, val, len);
    /* the list is not read: only the appended bytes are kept */
    it = fl_cc_new_cell(v, CC_VALUE, table, k, h, val ? val : "", len);
    if (!it) return IN(v)->append(IS(v), table, k, val, len);
    v->last = it;
    it->flags |= CC_PARTIAL;
    it->u.v.moff = 0;
    fl_cc_mark(v, it, CC_MERGE);
    return FL_OK;
  }
  if (it->flags & CC_ABSENT) {
    /* known to be absent: the list is what is appended */
    if (len > v->c->max_item || fl_cc_set(v, it, val, len) != FL_OK)
      return append_through(v, it, table, k, val, len);
    it->u.v.moff = 0;
    fl_cc_mark(v, it, CC_PUT);
    return FL_OK;
  }
  size_t old = it->u.v.len;
  if (old + len > v->c->max_item || fl_cc_append(v, it, val, len) != FL_OK)
    return append_through(v, it, table, k, val, len);
  if (it->st == CC_CLEAN) {
    it->u.v.moff = (uint32_t)old; /* the store has the rest */
    fl_cc_mark(v, it, CC_MERGE);
  }
  return FL_OK;
}

/* The cell for an update in place (kv.h): the cached copy, which the caller may
 * overwrite, so it is marked dirty at once. FL_ENOTSUP where the cache keeps no copy
 * (a table the store has not told the kind of yet, a value larger than the cache
 * takes): the caller then gets and puts, which go to the store. */
static int cc_value_ref(void *self, uint32_t table, const fl_kkey_t *k, uint64_t key_hash,
                        size_t new_len, void **val, size_t *len) {
  cc_view_t *v = self;
  (void)key_hash; /* the cache's index hashes the whole cell, with its store and table */
  if (!val || !len) return FL_EINVAL;
  int rc = prep(v, table, k, CC_KIND_VALUE);
  if (rc) return rc;
  if (v->kinds[table] == CC_KIND_UNKNOWN) return FL_ENOTSUP;
  if ((rc = fl_cc_dirty_reserve(v))) return rc;
  size_t max = v->c->max_item;
  uint32_t h = 0;
  cc_item_t *it = find_value(v, table, k, &h);
  if (it && (it->flags & CC_PARTIAL)) {
    rc = resolve(v, it);
    if (rc < 0) return rc;
    if (rc == 0) return FL_ENOTSUP; /* too large: the store has it all now */
  }
  if (it) {
    v->hits++;
  } else {
    v->misses++;
    const void *p = NULL;
    size_t n = 0;
    rc = IN(v)->get(IS(v), table, k, &p, &n);
    if (rc < 0) return rc;
    if (rc == 1 ? n > max : new_len > max) return FL_ENOTSUP;
    it = fl_cc_new_cell(v, CC_VALUE, table, k, h, rc ? p : NULL, rc ? n : 0);
    if (!it) return FL_ENOMEM;
    v->last = it;
  }
  int found = !(it->flags & CC_ABSENT);
  if (!found) {
    if (new_len > max) return FL_ENOTSUP;
    if ((rc = fl_cc_zero(v, it, new_len))) return rc;
  }
  it->u.v.moff = 0;
  fl_cc_mark(v, it, CC_PUT);
  fl_cc_pin(v->c, it);
  *val = it->u.v.p;
  *len = it->u.v.len;
  return found;
}

/* Deletes a whole map cell: in the store at once; its cached keys are dropped, and the
 * head knows the cell is empty now. */
static int del_map_cell(cc_view_t *v, uint32_t table, const fl_kkey_t *k) {
  uint32_t h = fl_cc_hash_cell(v, table, k);
  cc_item_t *head = fl_cc_find(v, CC_HEAD, table, k, h);
  int rc = IN(v)->del(IS(v), table, k);
  if (rc) return rc;
  if (head) {
    for (size_t i = 0; head->u.h.tab && i <= head->u.h.mask; i++)
      while (head->u.h.tab[i]) fl_cc_remove(v, head->u.h.tab[i]);
  } else {
    head = fl_cc_new_cell(v, CC_HEAD, table, k, h, NULL, 0);
  }
  if (head) head->flags |= CC_COMPLETE;
  return FL_OK;
}

static int cc_del(void *self, uint32_t table, const fl_kkey_t *k) {
  cc_view_t *v = self;
  if (!v || bad_key(k) || table >= v->n_tables) return FL_EINVAL;
  int kind = v->kinds[table];
  if (kind == CC_KIND_UNKNOWN) return IN(v)->del(IS(v), table, k);
  if (kind == CC_KIND_MAP) return del_map_cell(v, table, k);
  uint32_t h = 0;
  cc_item_t *it = find_value(v, table, k, &h);
  if (!it) {
    it = fl_cc_new_cell(v, CC_VALUE, table, k, h, NULL, 0);
    if (!it) return IN(v)->del(IS(v), table, k);
    v->last = it;
  } else if ((it->flags & CC_ABSENT) && it->st == CC_CLEAN) {
    return FL_OK; /* the store has nothing */
  } else {
    fl_cc_clear_value(v, it);
    it->flags = (uint8_t)((it->flags & ~CC_PARTIAL) | CC_ABSENT);
  }
  fl_cc_mark(v, it, CC_DEL);
  return FL_OK;
}

/* ---------------------------------------------------------------------------------- */
/* Map cells                                                                            */

static int map_prep(cc_view_t *v, uint32_t table, const fl_kkey_t *k, const void *uk, size_t ukl) {
  if (ukl && !uk) return FL_EINVAL;
  return prep(v, table, k, CC_KIND_MAP);
}

static int cc_map_get(void *self, uint32_t table, const fl_kkey_t *k, const void *uk, size_t ukl,
                      const void **val, size_t *len) {
  cc_view_t *v = self;
  if (!val || !len) return FL_EINVAL;
  int rc = map_prep(v, table, k, uk, ukl);
  if (rc) return rc;
  if (v->kinds[table] == CC_KIND_UNKNOWN) {
    rc = IN(v)->map_get(IS(v), table, k, uk, ukl, val, len);
    if (rc == 1) v->kinds[table] = CC_KIND_MAP;
    return rc;
  }
  uint32_t h = fl_cc_hash_cell(v, table, k), uh = fl_cc_hash_ukey(uk, ukl);
  cc_item_t *head = fl_cc_find(v, CC_HEAD, table, k, h);
  if (head) {
    head->flags |= CC_REF;
    cc_item_t *child = fl_cc_find_child(head, uk, ukl, uh);
    if (child || (head->flags & CC_COMPLETE)) {
      v->hits++;
      if (!child) return 0;
      child->flags |= CC_REF;
      return hand_out(v, child, val, len);
    }
  }
  v->misses++;
  const void *p = NULL;
  size_t n = 0;
  rc = IN(v)->map_get(IS(v), table, k, uk, ukl, &p, &n);
  if (rc < 0) return rc;
  if (rc == 0 || n <= v->c->max_item) {
    if (!head) head = fl_cc_new_cell(v, CC_HEAD, table, k, h, NULL, 0);
    cc_item_t *child =
        head ? fl_cc_new_child(v, head, uk, ukl, uh, rc ? p : NULL, rc ? n : 0) : NULL;
    if (child) return hand_out(v, child, val, len);
  }
  if (rc == 1) {
    *val = p;
    *len = n;
  }
  return rc;
}

static int cc_map_put(void *self, uint32_t table, const fl_kkey_t *k, const void *uk, size_t ukl,
                      const void *val, size_t len) {
  cc_view_t *v = self;
  if (len && !val) return FL_EINVAL;
  int rc = map_prep(v, table, k, uk, ukl);
  if (rc) return rc;
  if (v->kinds[table] == CC_KIND_UNKNOWN) {
    rc = IN(v)->map_put(IS(v), table, k, uk, ukl, val, len);
    if (rc == FL_OK) v->kinds[table] = CC_KIND_MAP;
    return rc;
  }
  uint32_t h = fl_cc_hash_cell(v, table, k), uh = fl_cc_hash_ukey(uk, ukl);
  cc_item_t *head = fl_cc_find(v, CC_HEAD, table, k, h);
  cc_item_t *child = head ? fl_cc_find_child(head, uk, ukl, uh) : NULL;
  if (len <= v->c->max_item) {
    if (!head) head = fl_cc_new_cell(v, CC_HEAD, table, k, h, NULL, 0);
    cc_item_t *it = child;
    if (head && !it) {
      it = fl_cc_new_child(v, head, uk, ukl, uh, val ? val : "", len);
    } else if (it && fl_cc_set(v, it, val, len) != FL_OK) {
      it = NULL;
    }
    if (it) {
      head->flags |= CC_REF;
      it->flags |= CC_REF;
      fl_cc_mark(v, it, CC_PUT);
      return FL_OK;
    }
  }
  rc = IN(v)->map_put(IS(v), table, k, uk, ukl, val, len);
  if (child) fl_cc_remove(v, child);
  return rc;
}

static int cc_map_del(void *self, uint32_t table, const fl_kkey_t *k, const void *uk, size_t ukl) {
  cc_view_t *v = self;
  int rc = map_prep(v, table, k, uk, ukl);
  if (rc) return rc;
  if (v->kinds[table] == CC_KIND_UNKNOWN) return IN(v)->map_del(IS(v), table, k, uk, ukl);
  uint32_t h = fl_cc_hash_cell(v, table, k), uh = fl_cc_hash_ukey(uk, ukl);
  cc_item_t *head = fl_cc_find(v, CC_HEAD, table, k, h);
  cc_item_t *child = head ? fl_cc_find_child(head, uk, ukl, uh) : NULL;
  if (!child) {
    if (head && (head->flags & CC_COMPLETE)) return FL_OK; /* absent */
    if (!head) head = fl_cc_new_cell(v, CC_HEAD, table, k, h, NULL, 0);
    child = head ? fl_cc_new_child(v, head, uk, ukl, uh, NULL, 0) : NULL;
    if (!child) return IN(v)->map_del(IS(v), table, k, uk, ukl);
  } else if ((child->flags & CC_ABSENT) && child->st == CC_CLEAN) {
    return FL_OK;
  } else {
    fl_cc_clear_value(v, child);
    child->flags |= CC_ABSENT;
  }
  head->flags |= CC_REF;
  child->flags |= CC_REF;
  fl_cc_mark(v, child, CC_DEL);
  return FL_OK;
}

typedef int (*map_cb_t)(const void *uk, size_t ukl, const void *v, size_t vl, void *arg);

/* User keys in the store's order: bytes, then length. */
static int cmp_children(const void *a, const void *b) {
  const cc_item_t *x = *(cc_item_t *const *)a, *y = *(cc_item_t *const *)b;
  size_t n = x->klen < y->klen ? x->klen : y->klen;
  int c = n ? memcmp(x->key, y->key, n) : 0;
  if (c) return c;
  return x->klen < y->klen ? -1 : x->klen > y->klen;
}

/* Walks a map cell whose every key the head holds. */
static int iter_cached(cc_view_t *v, cc_item_t *head, map_cb_t cb, void *arg) {
  size_t n = 0;
  cc_item_t **kids = head->u.h.n ? malloc(head->u.h.n * sizeof *kids) : NULL;
  if (head->u.h.n && !kids) return FL_ENOMEM;
  for (size_t i = 0; head->u.h.tab && i <= head->u.h.mask; i++)
    for (cc_item_t *it = head->u.h.tab[i]; it; it = it->hnext)
      if (!(it->flags & CC_ABSENT)) kids[n++] = it;
  if (n > 1) qsort(kids, n, sizeof *kids, cmp_children);
  int rc = FL_OK;
  head->u.h.busy++; /* its children stay while cb runs */
  for (size_t i = 0; i < n; i++) {
    cc_item_t *it = kids[i];
    int x = cb(it->key, it->klen, it->u.v.p, it->u.v.len, arg);
    if (x < 0) {
      rc = x;
      break;
    }
    if (x == FL_KV_DELETE) {
      fl_cc_clear_value(v, it);
      it->flags |= CC_ABSENT;
      fl_cc_mark(v, it, CC_DEL);
    } else if (x == FL_KV_STOP) {
      break;
    }
  }
  head->u.h.busy--;
  free(kids);
  return rc;
}

typedef struct map_walk {
  cc_view_t *v;
  cc_item_t *head;
  map_cb_t cb;
  void *arg;
} map_walk_t;

static int map_walk_cb(const void *uk, size_t ukl, const void *val, size_t len, void *arg) {
  map_walk_t *w = arg;
  int x = w->cb(uk, ukl, val, len, w->arg);
  if (x == FL_KV_DELETE && w->head) {
    /* the store deletes it now: a cached copy becomes absent */
    cc_item_t *it = fl_cc_find_child(w->head, uk, ukl, fl_cc_hash_ukey(uk, ukl));
    if (it) {
      fl_cc_mark_clean(w->v, it);
      fl_cc_clear_value(w->v, it);
      it->flags |= CC_ABSENT;
    }
  }
  return x;
}

static int cc_map_iter(void *self, uint32_t table, const fl_kkey_t *k, map_cb_t cb, void *arg) {
  cc_view_t *v = self;
  if (!cb) return FL_EINVAL;
  int rc = prep(v, table, k, CC_KIND_MAP);
  if (rc) return rc;
  if (v->kinds[table] == CC_KIND_UNKNOWN) return IN(v)->map_iter(IS(v), table, k, cb, arg);
  cc_item_t *head = fl_cc_find(v, CC_HEAD, table, k, fl_cc_hash_cell(v, table, k));
  if (head && (head->flags & CC_COMPLETE)) {
    v->hits++;
    return iter_cached(v, head, cb, arg);
  }
  v->misses++;
  if (head && head->u.h.ndirty) rc = fl_cc_flush_head(v, head);
  if (rc) return rc;
  map_walk_t w = {v, head, cb, arg};
  if (head) head->u.h.busy++;
  rc = IN(v)->map_iter(IS(v), table, k, map_walk_cb, &w);
  if (head) head->u.h.busy--;
  return rc;
}

/* ---------------------------------------------------------------------------------- */
/* Walks and the rest                                                                   */

typedef struct walk {
  cc_view_t *v;
  uint32_t table;
  int (*cb)(const fl_kkey_t *k, const void *val, size_t len, void *arg);
  void *arg;
} walk_t;

static int walk_cb(const fl_kkey_t *k, const void *val, size_t len, void *arg) {
  walk_t *w = arg;
  int x = w->cb(k, val, len, w->arg);
  if (x != FL_KV_DELETE || w->v->kinds[w->table] == CC_KIND_UNKNOWN) return x;
  /* the store deletes the cell now: the cache forgets it */
  cc_view_t *v = w->v;
  uint32_t h = fl_cc_hash_cell(v, w->table, k);
  cc_item_t *it = fl_cc_find(v, val ? CC_VALUE : CC_HEAD, w->table, k, h);
  if (it && !it->pins && !(it->type == CC_HEAD && it->u.h.busy))
    fl_cc_remove(v, it);
  else if (it && it->type == CC_VALUE) {
    fl_cc_mark_clean(v, it);
    fl_cc_clear_value(v, it);
    it->flags = (uint8_t)((it->flags & ~CC_PARTIAL) | CC_ABSENT);
  }
  return x;
}

static int cc_iterate(void *self, uint32_t table, uint64_t *cursor, size_t max_entries,
                      int (*cb)(const fl_kkey_t *k, const void *val, size_t len, void *arg),
                      void *arg) {
  cc_view_t *v = self;
  if (!v || !cursor || !cb || table >= v->n_tables) return FL_EINVAL;
  int rc = v->tdirty[table] ? fl_cc_flush(v) : FL_OK;
  if (rc) return rc;
  walk_t w = {v, table, cb, arg};
  return IN(v)->iterate(IS(v), table, cursor, max_entries, walk_cb, &w);
}

static size_t cc_count(void *self, uint32_t table) {
  cc_view_t *v = self;
  if (!v || table >= v->n_tables) return 0;
  if (v->tdirty[table] && fl_cc_flush(v)) return 0;
  return IN(v)->count(IS(v), table);
}

static int cc_open_table(void *self, const char *name, uint32_t *id) {
  cc_view_t *v = self;
  if (!v || !name || !id) return FL_EINVAL;
  int rc = IN(v)->open_table(IS(v), name, id);
  return rc ? rc : fl_cc_tables_reserve(v, *id);
}

static int cc_set_table_ttl(void *self, uint32_t table, int layout, int64_t ttl_ms) {
  cc_view_t *v = self;
  if (!v || table >= v->n_tables || ttl_ms <= 0) return FL_EINVAL;
  if (layout != FL_KV_TTL_VALUE && layout != FL_KV_TTL_LIST && layout != FL_KV_TTL_MAP)
    return FL_EINVAL;
  return IN(v)->set_table_ttl ? IN(v)->set_table_ttl(IS(v), table, layout, ttl_ms) : FL_OK;
}

static void cc_set_time(void *self, int64_t now_ms) {
  cc_view_t *v = self;
  if (v && IN(v)->set_time) IN(v)->set_time(IS(v), now_ms);
}

static int cc_checkpoint(void *self, const char *dir) {
  cc_view_t *v = self;
  if (!v || !IN(v)->checkpoint) return FL_ENOTSUP;
  int rc = fl_cc_flush(v);
  return rc ? rc : IN(v)->checkpoint(IS(v), dir);
}

static int cc_retain_key_groups(void *self, uint32_t kg_first, uint32_t kg_count) {
  cc_view_t *v = self;
  if (!v || !IN(v)->retain_key_groups) return FL_ENOTSUP;
  int rc = fl_cc_flush(v);
  if (rc) return rc;
  fl_cc_drop_items(v);
  return IN(v)->retain_key_groups(IS(v), kg_first, kg_count);
}

static int cc_list_tables(void *self, int (*cb)(const char *name, void *arg), void *arg) {
  cc_view_t *v = self;
  if (!v || !IN(v)->list_tables) return FL_ENOTSUP;
  return IN(v)->list_tables(IS(v), cb, arg);
}

static int cc_stats(void *self, const bool *want, int64_t *out) {
  cc_view_t *v = self;
  if (!v || !want || !out) return FL_EINVAL;
  if (IN(v)->version >= 2 && IN(v)->stats) {
    int rc = IN(v)->stats(IS(v), want, out);
    if (rc) return rc;
  }
  fl_kv_t kv = {&fl_cc_ops, v};
  fl_kv_cache_stats_t s;
  fl_kv_cache_stats(&kv, &s);
  if (want[FL_KV_STAT_CACHE_HIT]) out[FL_KV_STAT_CACHE_HIT] = (int64_t)s.hits;
  if (want[FL_KV_STAT_CACHE_MISS]) out[FL_KV_STAT_CACHE_MISS] = (int64_t)s.misses;
  if (want[FL_KV_STAT_CACHE_USAGE]) out[FL_KV_STAT_CACHE_USAGE] = (int64_t)s.bytes;
  if (want[FL_KV_STAT_CACHE_DIRTY_BYTES])
    out[FL_KV_STAT_CACHE_DIRTY_BYTES] = (int64_t)s.dirty_bytes;
  if (want[FL_KV_STAT_CACHE_EVICTIONS]) out[FL_KV_STAT_CACHE_EVICTIONS] = (int64_t)s.evictions;
  if (want[FL_KV_STAT_CACHE_FLUSH_US]) out[FL_KV_STAT_CACHE_FLUSH_US] = s.flush_ns_last / 1000;
  if (want[FL_KV_STAT_CACHE_WRITTEN_AHEAD])
    out[FL_KV_STAT_CACHE_WRITTEN_AHEAD] = (int64_t)s.written_ahead;
  return FL_OK;
}

static int cc_flush(void *self) { return self ? fl_cc_flush(self) : FL_EINVAL; }

static const char *cc_errmsg(void *self) {
  cc_view_t *v = self;
  return v ? fl_kv_errmsg(&v->inner) : "";
}

static void cc_destroy(void *self) { fl_cc_view_destroy(self); }

const fl_kv_ops_t fl_cc_ops = {
    .version = FL_KV_OPS_VERSION,
    .name = "cache",
    .destroy = cc_destroy,
    .open_table = cc_open_table,
    .get = cc_get,
    .put = cc_put,
    .append = cc_append,
    .del = cc_del,
    .map_get = cc_map_get,
    .map_put = cc_map_put,
    .map_del = cc_map_del,
    .map_iter = cc_map_iter,
    .iterate = cc_iterate,
    .count = cc_count,
    .set_table_ttl = cc_set_table_ttl,
    .set_time = cc_set_time,
    .checkpoint = cc_checkpoint,
    .retain_key_groups = cc_retain_key_groups,
    .list_tables = cc_list_tables,
    .stats = cc_stats,
    .value_ref = cc_value_ref,
    .prefetch = NULL, /* memory hints: the store's cells are not in memory */
    .flush = cc_flush,
    .write_batch = NULL,
    .errmsg = cc_errmsg,
};
