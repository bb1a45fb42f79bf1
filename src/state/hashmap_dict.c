/*
 * One table of the hashmap backend (hashmap_internal.h has the layout): entries, the
 * open-addressing index and its incremental doubling, the dense array that walks use.
 */
#include <assert.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "flink.h"
#include "state/hashmap_internal.h"

static inline uint64_t pkey_hash(hm_pkey_t *pk) {
  if (!pk->hashed) {
    if (pk->ukey) {
      pk->hash = fl_hash64(pk->key, pk->key_len, HM_SEED_UKEY);
    } else {
      /* The fold mixes every bit, so that the keys of one worker, which share
       * key-group residues (key hash mod max parallelism), do not share low bits. */
      if (!pk->key_hashed) {
        pk->key_hash = key_hash(pk->nsc, pk->key, pk->key_len);
        pk->key_hashed = true;
      }
      pk->hash = cell_hash(pk->key_hash, pk->kg, ns_hash(pk->nsc, pk->ns, pk->ns_len));
    }
    pk->hashed = true;
  }
  return pk->hash;
}

static hm_entry_t *entry_new(hm_pool_t *pool, hm_pkey_t *pk, size_t val_cap) {
  if (val_cap > HM_VAL_MAX) return NULL;
  size_t off = value_offset(pk->key_len, pk->ns_len);
  hm_entry_t *e = fl_hm_pool_alloc(pool, off + val_cap);
  if (!e) return NULL;
  e->val_len = 0;
  e->val_cap = (uint32_t)val_cap;
  e->key_len = pk->key_len;
  e->ns_len = pk->ns_len;
  e->didx = 0;
  e->kg = pk->kg;
  e->flags = 0;
  if (pk->key_len == 8 && pk->ns_len == 16) { /* a window's cell, without a libc call */
    memcpy(e->data, pk->key, 8);
    memcpy(e->data + 8, pk->ns, 16);
  } else {
    copy_bytes(e->data, pk->key, pk->key_len);
    copy_bytes(e->data + pk->key_len, pk->ns, pk->ns_len);
  }
  return e;
}

static void entry_free(hm_pool_t *pool, hm_entry_t *e) {
  if (e->flags & HM_F_MAP) {
    hm_dict_t *m = entry_map(e);
    fl_hm_dict_free(m);
    free(m);
  }
  fl_hm_pool_free(pool, e, entry_bytes(e));
}

/* ---------------------------------------------------------------------------------- */
/* Index (linear probing, backward-shift deletion)                                      */

static void index_put(hm_index_t *ix, hm_entry_t *e, uint64_t hash) {
  size_t i = (size_t)hash & ix->mask;
  while (ix->slots[i].e) i = (i + 1) & ix->mask;
  ix->slots[i].e = e;
  ix->slots[i].hash = hash;
  ix->used++;
}

/* Empties slot pos and shifts later members of its cluster back so every entry stays
 * reachable from its home slot without tombstones. */
static void index_remove_at(hm_index_t *ix, size_t pos) {
  size_t i = pos, j = pos;
  for (;;) {
    j = (j + 1) & ix->mask;
    if (!ix->slots[j].e) break;
    size_t home = (size_t)ix->slots[j].hash & ix->mask;
    /* The entry at j may stay if its home lies cyclically in (i, j]. */
    bool stays = i <= j ? (i < home && home <= j) : (i < home || home <= j);
    if (stays) continue;
    ix->slots[i] = ix->slots[j];
    i = j;
  }
  ix->slots[i].e = NULL;
  ix->used--;
}

/* The slot holding entry `want`, or the entry matching pk when want is NULL. */
static inline __attribute__((always_inline)) hm_slot_t *index_find(
    const hm_index_t *ix, uint64_t hash, const hm_pkey_t *pk, const hm_entry_t *want, size_t *pos) {
  if (!ix->slots) return NULL;
  size_t i = (size_t)hash & ix->mask;
  for (;;) {
    hm_slot_t *s = &ix->slots[i];
    if (!s->e) return NULL;
    if (s->hash == hash && (want ? s->e == want : entry_matches(s->e, pk))) {
      if (pos) *pos = i;
      return s;
    }
    i = (i + 1) & ix->mask;
  }
}

static inline __attribute__((always_inline)) hm_slot_t *dict_find_slot(hm_dict_t *d, uint64_t hash,
                                                                       const hm_pkey_t *pk,
                                                                       const hm_entry_t *want,
                                                                       hm_index_t **which,
                                                                       size_t *pos) {
  hm_slot_t *s = index_find(&d->ix, hash, pk, want, pos);
  if (s) {
    if (which) *which = &d->ix;
    return s;
  }
  s = index_find(&d->old, hash, pk, want, pos);
  if (s && which) *which = &d->old;
  return s;
}

static void rehash_finish_if_done(hm_dict_t *d) {
  if (d->old.slots && (d->rehash_pos > d->old.mask || d->old.used == 0)) {
    free(d->old.slots);
    memset(&d->old, 0, sizeof d->old);
    d->rehash_pos = 0;
  }
}

/* Moves up to `units` of work (an old slot looked at, an entry moved) from the old
 * index to the new one. Entries themselves do not move, so borrowed pointers stay
 * valid. The run of entries from rehash_pos to the next empty slot moves whole: no
 * entry outside a run probes through it (a probe stops at an empty slot), so the old
 * index stays a valid table with the run emptied, with no backward shift. Slots before
 * rehash_pos are empty, so a run does not wrap into them. */
void fl_hm_rehash_step(hm_dict_t *d, size_t units) {
  hm_index_t *old = &d->old;
  while (old->slots && units > 0) {
    if (d->rehash_pos > old->mask || old->used == 0) break;
    size_t i = d->rehash_pos;
    if (!old->slots[i].e) {
      d->rehash_pos++;
      units--;
      continue;
    }
    /* the indexes' fields in locals: the slot stores could alias them otherwise */
    hm_slot_t *os = old->slots, *ns = d->ix.slots;
    size_t omask = old->mask, nmask = d->ix.mask, moved = 0;
    do {
      size_t j = (size_t)os[i].hash & nmask;
      while (ns[j].e) j = (j + 1) & nmask;
      ns[j] = os[i];
      os[i].e = NULL;
      moved++;
      i = (i + 1) & omask;
    } while (os[i].e);
    old->used -= moved;
    d->ix.used += moved;
    units = units > moved ? units - moved : 0;
    d->rehash_pos = i > d->rehash_pos ? i : omask + 1;
  }
  rehash_finish_if_done(d);
}

/* Asks for transparent huge pages for the 2 MiB-aligned part of a large index, as
 * hashmap_pool.c does for the cells: calloc maps it fresh, so no page is in yet. */
static void huge_pages(void *p, size_t bytes) {
  if (bytes < 2 * HM_ARENA_BYTES) return;
  uintptr_t lo = ((uintptr_t)p + HM_ARENA_BYTES - 1) & ~(uintptr_t)(HM_ARENA_BYTES - 1);
  uintptr_t hi = ((uintptr_t)p + bytes) & ~(uintptr_t)(HM_ARENA_BYTES - 1);
  if (hi > lo) (void)madvise((void *)lo, hi - lo, MADV_HUGEPAGE); /* a hint */
}

/* Makes room for one more entry: starts a doubling when the load would pass 3/4. */
static int dict_reserve_one(hm_dict_t *d) {
  if (!d->ix.slots) {
    d->ix.slots = calloc(HM_MIN_CAP, sizeof *d->ix.slots);
    if (!d->ix.slots) return FL_ENOMEM;
    d->ix.mask = HM_MIN_CAP - 1;
    d->ix.used = 0;
  }
  size_t cap = d->ix.mask + 1;
  if ((d->count + 1) * 4 <= cap * 3) return FL_OK;
  if (d->old.slots) {
    /* Only if inserts outran migration, which the step sizes rule out. */
    fl_hm_rehash_step(d, SIZE_MAX);
    assert(!d->old.slots);
  }
  if (cap > SIZE_MAX / 2 / sizeof(hm_slot_t)) return FL_ENOMEM;
  hm_slot_t *ns = calloc(cap * 2, sizeof *ns);
  if (!ns) return FL_ENOMEM;
  huge_pages(ns, cap * 2 * sizeof *ns);
  d->old = d->ix;
  d->rehash_pos = 0;
  d->ix.slots = ns;
  d->ix.mask = cap * 2 - 1;
  d->ix.used = 0;
  return FL_OK;
}

/* ---------------------------------------------------------------------------------- */
/* Dense array                                                                          */

static int dense_add(hm_dict_t *d, hm_entry_t *e, uint64_t hash) {
  size_t i;
  if (d->free_head) {
    i = d->free_head - 1;
    d->free_head = (size_t)(d->dense[i] >> 1);
  } else {
    if (d->dense_len == d->dense_cap) {
      size_t nc = d->dense_cap ? (size_t)d->dense_cap * 2 : HM_MIN_CAP;
      if (nc > UINT32_MAX || nc > SIZE_MAX / sizeof *d->hashes) return FL_ENOMEM;
      uintptr_t *p = realloc(d->dense, nc * sizeof *p);
      if (!p) return FL_ENOMEM;
      d->dense = p;
      uint64_t *h = realloc(d->hashes, nc * sizeof *h);
      if (!h) return FL_ENOMEM; /* dense is larger than it needs: harmless */
      d->hashes = h;
      d->dense_cap = (uint32_t)nc;
    }
    i = d->dense_len++;
  }
  d->dense[i] = (uintptr_t)e;
  d->hashes[i] = hash;
  e->didx = (uint32_t)i;
  return FL_OK;
}

static void dense_remove(hm_dict_t *d, size_t i) {
  d->dense[i] = ((uintptr_t)d->free_head << 1) | 1u;
  d->free_head = i + 1;
}

/* ---------------------------------------------------------------------------------- */
/* Dict                                                                                 */

void fl_hm_dict_free(hm_dict_t *d) {
  for (size_t i = 0; i < d->dense_len; i++) {
    if (!(d->dense[i] & 1u)) entry_free(d->pool, (hm_entry_t *)d->dense[i]);
  }
  free(d->dense);
  free(d->hashes);
  free(d->ix.slots);
  free(d->old.slots);
  free(d->group);
  hm_pool_t *pool = d->pool;
  memset(d, 0, sizeof *d);
  d->pool = pool;
}

hm_entry_t *fl_hm_dict_lookup(hm_dict_t *d, hm_pkey_t *pk) {
  if (pk->key_hashed) {
    /* Hashing is cheap when the key's hash is known: compare hashes first. */
    uint64_t h = pkey_hash(pk);
    if (d->last && d->hashes[d->last->didx] == h && entry_matches(d->last, pk)) return d->last;
  } else if (d->last && entry_matches(d->last, pk)) {
    return d->last;
  }
  if (d->count == 0) return NULL;
  uint64_t h = pkey_hash(pk);
  hm_slot_t *s = dict_find_slot(d, h, pk, NULL, NULL, NULL);
  hm_entry_t *e = s ? s->e : NULL; /* before the step: it moves slots */
  if (d->old.slots) fl_hm_rehash_step(d, HM_REHASH_LOOKUP);
  if (e) d->last = e;
  return e;
}

/* Inserts a new entry (the key is known to be absent) with room for val_cap bytes. */
int fl_hm_dict_insert(hm_dict_t *d, hm_pkey_t *pk, size_t val_cap, hm_entry_t **out) {
  int rc = dict_reserve_one(d);
  if (rc) return rc;
  hm_entry_t *e = entry_new(d->pool, pk, val_cap);
  if (!e) return FL_ENOMEM;
  uint64_t h = pkey_hash(pk);
  rc = dense_add(d, e, h);
  if (rc) {
    fl_hm_pool_free(d->pool, e, entry_bytes(e));
    return rc;
  }
  index_put(&d->ix, e, h);
  d->count++;
  d->last = e;
  if (d->old.slots) fl_hm_rehash_step(d, HM_REHASH_INSERT);
  *out = e;
  return FL_OK;
}

/* The table's last entry went: nothing is left to walk, so the dense array starts
 * over. A large table that empties (a big window fired) gives its index and dense
 * array back, so that a burst does not hold its peak for good; the next cells grow
 * them again. */
static __attribute__((noinline, cold)) void dict_emptied(hm_dict_t *d) {
  d->dense_len = 0;
  d->free_head = 0;
  if (d->ix.mask + 1 > HM_KEEP_SLOTS) {
    free(d->ix.slots);
    free(d->old.slots);
    free(d->dense);
    free(d->hashes);
    memset(&d->ix, 0, sizeof d->ix);
    memset(&d->old, 0, sizeof d->old);
    d->rehash_pos = 0;
    d->dense = NULL;
    d->hashes = NULL;
    d->dense_cap = 0;
  }
}

/* What removing e leaves to do once its index slot is emptied. */
static inline void forget(hm_dict_t *d, hm_entry_t *e) {
  dense_remove(d, e->didx);
  d->count--;
  if (d->last == e) d->last = NULL;
  if (d->group && !e->key_len) {
    hm_entry_t **g = &d->group[group_slot(e->kg, e->data, e->ns_len)];
    if (*g == e) *g = NULL;
  }
  if (d->count == 0) dict_emptied(d);
  rehash_finish_if_done(d);
}

static void dict_unlink(hm_dict_t *d, hm_entry_t *e) {
  hm_index_t *which = NULL;
  size_t pos = 0;
  hm_slot_t *s = dict_find_slot(d, d->hashes[e->didx], NULL, e, &which, &pos);
  assert(s);
  (void)s;
  index_remove_at(which, pos);
  forget(d, e);
}

/* The slot position of cell k (hash known) in one index: true and *pos, or false. */
static inline bool index_cell_pos(const hm_index_t *ix, uint64_t hash, const fl_kkey_t *k,
                                  size_t *pos) {
  if (!ix->slots) return false;
  for (size_t i = (size_t)hash & ix->mask;; i = (i + 1) & ix->mask) {
    const hm_slot_t *s = &ix->slots[i];
    if (!s->e) return false;
    if (s->hash == hash && entry_is_cell(s->e, k->kg, k->key, k->key_len, k->ns, k->ns_len)) {
      *pos = i;
      return true;
    }
  }
}

int fl_hm_dict_take(hm_dict_t *d, uint64_t hash, const fl_kkey_t *k, hm_entry_t **out) {
  hm_index_t *which = &d->ix;
  size_t pos;
  if (!index_cell_pos(which, hash, k, &pos)) {
    which = &d->old;
    if (!index_cell_pos(which, hash, k, &pos)) return 0;
  }
  hm_entry_t *e = which->slots[pos].e;
  if (e->flags & HM_F_MAP) return FL_EINVAL;
  index_remove_at(which, pos);
  forget(d, e);
  *out = e;
  return 1;
}

void fl_hm_dict_remove(hm_dict_t *d, hm_entry_t *e) {
  dict_unlink(d, e);
  entry_free(d->pool, e);
}

/* Gives e room for cap value bytes (a new allocation), keeping the index, the dense array and
 * the cache pointing at it. *src, if it points into e, is moved along. */
int fl_hm_entry_resize(hm_dict_t *d, hm_entry_t **ep, size_t cap, const void **src) {
  hm_entry_t *e = *ep;
  size_t off = value_offset(e->key_len, e->ns_len);
  if (cap > HM_VAL_MAX) return FL_ENOMEM;
  hm_slot_t *s = dict_find_slot(d, d->hashes[e->didx], NULL, e, NULL, NULL);
  assert(s);
  uintptr_t base = (uintptr_t)e, end = base + off + e->val_cap;
  bool inside = src && *src && (uintptr_t)*src >= base && (uintptr_t)*src < end;
  size_t src_off = inside ? (size_t)((uintptr_t)*src - base) : 0;
  bool cached = d->last == e; /* compared before e is freed */
  hm_entry_t **grouped =
      d->group && !e->key_len ? &d->group[group_slot(e->kg, e->data, e->ns_len)] : NULL;
  if (grouped && *grouped != e) grouped = NULL;
  size_t old_bytes = off + e->val_cap, new_bytes = off + cap;
  hm_entry_t *ne;
  if (old_bytes > HM_POOL_MAX && new_bytes > HM_POOL_MAX) {
    ne = realloc(e, new_bytes);
    if (!ne) return FL_ENOMEM;
  } else {
    ne = fl_hm_pool_alloc(d->pool, new_bytes);
    if (!ne) return FL_ENOMEM;
    memcpy(ne, e, old_bytes < new_bytes ? old_bytes : new_bytes);
    fl_hm_pool_free(d->pool, e, old_bytes);
  }
  ne->val_cap = (uint32_t)cap;
  s->e = ne;
  d->dense[ne->didx] = (uintptr_t)ne;
  if (cached) d->last = ne;
  if (grouped) *grouped = ne;
  if (inside) *src = (const unsigned char *)ne + src_off;
  *ep = ne;
  return FL_OK;
}

static bool points_into(const hm_entry_t *e, const void *p) {
  uintptr_t base = (uintptr_t)e;
  uintptr_t end = base + value_offset(e->key_len, e->ns_len) + e->val_cap;
  return p && (uintptr_t)p >= base && (uintptr_t)p < end;
}

/* Replaces e's value. In place when it fits; a value that shrinks a lot gives back
 * memory. */
static int entry_set(hm_dict_t *d, hm_entry_t *e, const void *val, size_t len) {
  if (len > e->val_cap) {
    size_t grown = (size_t)e->val_cap + e->val_cap / 2;
    if (grown > HM_VAL_MAX) grown = HM_VAL_MAX;
    int rc = fl_hm_entry_resize(d, &e, len > grown ? len : grown, &val);
    if (rc) return rc;
  } else if (e->val_cap > 256 && len < e->val_cap / 4 && !points_into(e, val)) {
    int rc = fl_hm_entry_resize(d, &e, len, NULL);
    if (rc) return rc;
  }
  copy_bytes(entry_value(e), val, len);
  e->val_len = len;
  return FL_OK;
}

int fl_hm_dict_put(hm_dict_t *d, hm_pkey_t *pk, const void *val, size_t len) {
  hm_entry_t *e = fl_hm_dict_lookup(d, pk);
  if (e) {
    if (e->flags & HM_F_MAP) return FL_EINVAL;
    return entry_set(d, e, val, len);
  }
  int rc = fl_hm_dict_insert(d, pk, len, &e);
  if (rc) return rc;
  copy_bytes(entry_value(e), val, len);
  e->val_len = len;
  return FL_OK;
}
