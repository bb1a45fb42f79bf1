/*
 * The in-memory state backend (kv.h): one instance per worker thread, one hash table
 * (hashmap_dict.c) per state table. The layout and the hashing are described in
 * hashmap_internal.h. This file is the backend's operations: value cells, value_ref
 * and prefetch for the per-record path, map cells, walks.
 */
#include <assert.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "flink.h"
#include "state/hashmap_internal.h"
#include "util/vec.h"

/* ---------------------------------------------------------------------------------- */
/* Backend                                                                              */

static int prepare(hm_t *h, uint32_t table, const fl_kkey_t *k, hm_dict_t **d, hm_pkey_t *pk) {
  if (!h || table >= h->n || !k) return FL_EINVAL;
  if ((k->key_len && !k->key) || (k->ns_len && !k->ns)) return FL_EINVAL;
  if (k->key_len > UINT32_MAX || k->ns_len > UINT32_MAX) return FL_EINVAL;
  memset(pk, 0, sizeof *pk);
  pk->nsc = &h->nsc;
  pk->kg = k->kg;
  pk->key = k->key;
  pk->key_len = (uint32_t)k->key_len;
  pk->ns = k->ns;
  pk->ns_len = (uint32_t)k->ns_len;
  *d = &h->t[table].d;
  return FL_OK;
}

static int prepare_ukey(const void *ukey, size_t ukey_len, hm_pkey_t *pk) {
  if ((ukey_len && !ukey) || ukey_len > UINT32_MAX) return FL_EINVAL;
  memset(pk, 0, sizeof *pk);
  pk->ukey = true;
  pk->key = ukey;
  pk->key_len = (uint32_t)ukey_len;
  return FL_OK;
}

static void hm_destroy(void *self) {
  hm_t *h = self;
  if (!h) return;
  for (size_t i = 0; i < h->n; i++) {
    free(h->t[i].name);
    fl_hm_dict_free(&h->t[i].d);
  }
  if (h->taken) fl_hm_pool_free(&h->pool, h->taken, entry_bytes(h->taken));
  fl_hm_pool_destroy(&h->pool);
  free(h->t);
  free(h);
}

static int hm_open_table(void *self, const char *name, uint32_t *id) {
  hm_t *h = self;
  if (!h || !name || !id) return FL_EINVAL;
  for (size_t i = 0; i < h->n; i++) {
    if (strcmp(h->t[i].name, name) == 0) {
      *id = (uint32_t)i;
      return FL_OK;
    }
  }
  if (h->n >= UINT32_MAX) return FL_ENOMEM;
  if (FL_VEC_RESERVE(h->t, h->cap, h->n + 1)) return FL_ENOMEM;
  char *copy = strdup(name);
  if (!copy) return FL_ENOMEM;
  memset(&h->t[h->n], 0, sizeof h->t[h->n]);
  h->t[h->n].d.pool = &h->pool;
  h->t[h->n].name = copy;
  *id = (uint32_t)h->n++;
  return FL_OK;
}

static int hm_get(void *self, uint32_t table, const fl_kkey_t *k, const void **val, size_t *len) {
  hm_dict_t *d;
  hm_pkey_t pk;
  if (!val || !len) return FL_EINVAL;
  int rc = prepare(self, table, k, &d, &pk);
  if (rc) return rc;
  hm_entry_t *e = fl_hm_dict_lookup(d, &pk);
  if (!e) return 0;
  if (e->flags & HM_F_MAP) return FL_EINVAL;
  *val = entry_value(e);
  *len = e->val_len;
  return 1;
}

static int hm_put(void *self, uint32_t table, const fl_kkey_t *k, const void *val, size_t len) {
  hm_dict_t *d;
  hm_pkey_t pk;
  if (len && !val) return FL_EINVAL;
  int rc = prepare(self, table, k, &d, &pk);
  if (rc) return rc;
  return fl_hm_dict_put(d, &pk, val, len);
}

/* Whether e is the key group cell (empty key) of kg at ns. */
static inline bool entry_is_group_cell(const hm_entry_t *e, uint16_t kg, const void *ns,
                                       size_t ns_len) {
  return e->kg == kg && e->key_len == 0 && e->ns_len == ns_len && bytes_eq(e->data, ns, ns_len);
}

/* e, appended to, as its key group's cell if it is one (an empty key). Without memory
 * for the cache the appends go on without it. */
static inline void group_remember(hm_dict_t *d, hm_entry_t *e) {
  if (e->key_len) return;
  if (!d->group && !(d->group = calloc(HM_GROUP_CACHE, sizeof *d->group))) return;
  d->group[group_slot(e->kg, e->data, e->ns_len)] = e;
}

static int hm_append(void *self, uint32_t table, const fl_kkey_t *k, const void *val, size_t len) {
  hm_t *h = self;
  hm_dict_t *d;
  hm_pkey_t pk;
  if (len && !val) return FL_EINVAL;
  if (h && k && k->key_len == 0 && table < h->n && (k->ns || !k->ns_len)) {
    /* A key group's cell appended to before: no hashing, no probe. */
    hm_entry_t **g = h->t[table].d.group;
    hm_entry_t *e = g ? g[group_slot(k->kg, k->ns, k->ns_len)] : NULL;
    if (e && entry_is_group_cell(e, k->kg, k->ns, k->ns_len) && len <= e->val_cap - e->val_len) {
      /* (val, if it points into e, lies before val_len: the bytes do not overlap) */
      if (len == 16) /* a list item of an 8-byte key */
        memcpy(entry_value(e) + e->val_len, val, 16);
      else
        copy_bytes(entry_value(e) + e->val_len, val, len);
      e->val_len += len;
      return FL_OK;
    }
  }
  int rc = prepare(self, table, k, &d, &pk);
  if (rc) return rc;
  hm_entry_t *e = fl_hm_dict_lookup(d, &pk);
  if (!e) {
    rc = fl_hm_dict_insert(d, &pk, len, &e);
    if (rc) return rc;
    copy_bytes(entry_value(e), val, len);
    e->val_len = len;
    group_remember(d, e);
    return FL_OK;
  }
  if (e->flags & HM_F_MAP) return FL_EINVAL;
  if (len > HM_VAL_MAX - e->val_len) return FL_ENOMEM;
  size_t need = e->val_len + len;
  if (need > e->val_cap) {
    /* Doubling keeps a list built by appends amortised O(1) per item. */
    size_t cap = e->val_cap > HM_VAL_MAX / 2 ? HM_VAL_MAX : (size_t)e->val_cap * 2;
    if (cap < need) cap = need;
    if (cap < 32) cap = 32;
    rc = fl_hm_entry_resize(d, &e, cap, &val);
    if (rc) return rc;
  }
  copy_bytes(entry_value(e) + e->val_len, val, len);
  e->val_len = need;
  group_remember(d, e);
  return FL_OK;
}

/* hm_append to a prepared namespace: a key group's cell appended to before needs no
 * check of the table and the namespace, which the preparation made. */
static __attribute__((noinline)) int append_prepared_any(void *self, const fl_kv_ref_prep_t *p,
                                                         uint16_t kg, const void *key,
                                                         size_t key_len, const void *val,
                                                         size_t len) {
  hm_t *h = self;
  hm_entry_t **g = h->t[p->table].d.group;
  if (g && key_len == 0 && (val || !len)) {
    hm_entry_t *e = g[group_slot(kg, p->ns, p->ns_len)];
    if (e && entry_is_group_cell(e, kg, p->ns, p->ns_len) && len <= e->val_cap - e->val_len) {
      copy_bytes(entry_value(e) + e->val_len, val, len);
      e->val_len += len;
      return FL_OK;
    }
  }
  fl_kkey_t k = {kg, key, key_len, p->ns, p->ns_len};
  return hm_append(self, p->table, &k, val, len);
}

/* append_prepared_any with the common shape inline: the item of an 8-byte key (16 bytes)
 * to a key group's cell of a window (a 16-byte namespace), lengths and bytes as words. */
static int hm_append_prepared(void *self, const fl_kv_ref_prep_t *p, uint16_t kg, const void *key,
                              size_t key_len, const void *val, size_t len) {
  hm_entry_t **g = ((hm_t *)self)->t[p->table].d.group;
  if (g && key_len == 0 && len == 16 && p->ns_len == 16) {
    const unsigned char *ns = p->ns;
    hm_entry_t *e = g[group_slot(kg, ns, 16)];
    if (e && e->kg == kg && entry_lens(e) == lens_word(0, 16) && load64(e->data) == load64(ns) &&
        load64(e->data + 8) == load64(ns + 8) && e->val_cap - e->val_len >= 16) {
      memcpy((unsigned char *)e + value_offset(0, 16) + e->val_len, val, 16);
      e->val_len += 16;
      return FL_OK;
    }
  }
  return append_prepared_any(self, p, kg, key, key_len, val, len);
}

/* The entry of cell k (hash known) in one index, or NULL. */
static inline hm_entry_t *index_find_cell(const hm_index_t *ix, uint64_t hash, const fl_kkey_t *k) {
  if (!ix->slots) return NULL;
  for (size_t i = (size_t)hash & ix->mask;; i = (i + 1) & ix->mask) {
    const hm_slot_t *s = &ix->slots[i];
    if (!s->e) return NULL;
    if (s->hash == hash && entry_is_cell(s->e, k->kg, k->key, k->key_len, k->ns, k->ns_len))
      return s->e;
  }
}

/* dict_lookup for a cell whose hash is known: the per-record path of value_ref. */
static inline hm_entry_t *dict_find_cell(hm_dict_t *d, uint64_t hash, const fl_kkey_t *k) {
  hm_entry_t *e = d->last;
  if (e && entry_is_cell(e, k->kg, k->key, k->key_len, k->ns, k->ns_len)) return e;
  e = index_find_cell(&d->ix, hash, k);
  if (__builtin_expect(d->old.slots != NULL, 0)) {
    if (!e) e = index_find_cell(&d->old, hash, k);
    fl_hm_rehash_step(d, HM_REHASH_LOOKUP);
  }
  if (e) d->last = e;
  return e;
}

/* value_ref once the cell's hash is known and k checked. */
/* value_ref's creation of absent cell k (hash known, k checked). */
static __attribute__((noinline)) int value_ref_insert(hm_t *h, uint32_t table, const fl_kkey_t *k,
                                                      uint64_t hash, size_t new_len, void **val,
                                                      size_t *len) {
  /* k is checked: its key as prepare() would make it, without the checks and the memset */
  hm_pkey_t pk = {.hash = hash,
                  .hashed = true,
                  .nsc = &h->nsc,
                  .kg = k->kg,
                  .key = k->key,
                  .key_len = (uint32_t)k->key_len,
                  .ns = k->ns,
                  .ns_len = (uint32_t)k->ns_len};
  hm_entry_t *e;
  int rc = fl_hm_dict_insert(&h->t[table].d, &pk, new_len, &e);
  if (rc) return rc;
  if (new_len == 16) /* the common accumulators (two words, one), without a libc call */
    memset(entry_value(e), 0, 16);
  else if (new_len == 8)
    memset(entry_value(e), 0, 8);
  else if (new_len)
    memset(entry_value(e), 0, new_len);
  e->val_len = new_len;
  *val = entry_value(e);
  *len = new_len;
  return 0;
}

/* value_ref once the cell's hash is known and k checked. */
static __attribute__((noinline)) int value_ref_hashed(hm_t *h, uint32_t table, const fl_kkey_t *k,
                                                      uint64_t hash, size_t new_len, void **val,
                                                      size_t *len) {
  hm_entry_t *e = dict_find_cell(&h->t[table].d, hash, k);
  if (!e) return value_ref_insert(h, table, k, hash, new_len, val, len);
  if (e->flags & HM_F_MAP) return FL_EINVAL;
  *val = entry_value(e);
  *len = e->val_len;
  return 1;
}

static int hm_value_ref(void *self, uint32_t table, const fl_kkey_t *k, uint64_t key_hash,
                        size_t new_len, void **val, size_t *len) {
  hm_t *h = self;
  if (__builtin_expect(table >= h->n || (k->key_len && !k->key) || (k->ns_len && !k->ns) ||
                           (k->key_len | k->ns_len) > UINT32_MAX,
                       0))
    return FL_EINVAL;
  uint64_t hash = cell_hash(key_hash, k->kg, ns_hash(&h->nsc, k->ns, (uint32_t)k->ns_len));
  return value_ref_hashed(h, table, k, hash, new_len, val, len);
}

/* take of cell k (hash: its cell hash; k checked). */
static inline int take_hashed(hm_t *h, uint32_t table, uint64_t hash, const fl_kkey_t *k,
                              const void **val, size_t *len) {
  hm_entry_t *e;
  int rc = fl_hm_dict_take(&h->t[table].d, hash, k, &e);
  if (rc != 1) return rc;
  if (h->taken) fl_hm_pool_free(&h->pool, h->taken, entry_bytes(h->taken));
  h->taken = e;
  *val = entry_value(e);
  *len = e->val_len;
  return 1;
}

static int hm_take(void *self, uint32_t table, const fl_kkey_t *k, uint64_t key_hash,
                   const void **val, size_t *len) {
  hm_t *h = self;
  if (__builtin_expect(!h || !k || !val || !len, 0)) return FL_EINVAL;
  if (__builtin_expect(table >= h->n || (k->key_len && !k->key) || (k->ns_len && !k->ns) ||
                           (k->key_len | k->ns_len) > UINT32_MAX,
                       0))
    return FL_EINVAL;
  uint64_t hash = cell_hash(key_hash, k->kg, ns_hash(&h->nsc, k->ns, (uint32_t)k->ns_len));
  return take_hashed(h, table, hash, k, val, len);
}

static int hm_take_prepared(void *self, const fl_kv_ref_prep_t *p, uint16_t kg, const void *key,
                            size_t key_len, uint64_t key_hash, const void **val, size_t *len) {
  fl_kkey_t k = {kg, key, key_len, p->ns, p->ns_len};
  return take_hashed(self, p->table, cell_hash(key_hash, kg, p->ns_hash), &k, val, len);
}

/* The preparation's hint: the cells it creates for 8-byte keys (ids) fit one cache line
 * (hashmap_internal.h's hm_entry), so a prefetch of one is one line. */
#define HM_HINT_ONE_LINE 1u

static int hm_ref_prepare(void *self, fl_kv_ref_prep_t *p) {
  hm_t *h = self;
  if (!h || !p || p->table >= h->n || (p->ns_len && !p->ns) || p->ns_len > UINT32_MAX)
    return FL_EINVAL;
  p->ns_hash = ns_hash(NULL, p->ns, (uint32_t)p->ns_len);
  bool small = p->ns_len <= 64 && p->new_len <= 64;
  p->hint = small && value_offset(8, (uint32_t)p->ns_len) + p->new_len <= 64 ? HM_HINT_ONE_LINE : 0;
  return FL_OK;
}

/* The rare paths of hm_value_ref_prepared, with its arguments but the cell's hash for
 * the key's, so that it reaches them by tail calls and needs no stack frame for them:
 * the creation of an absent cell (insert, not probing again), and the rest (other key
 * or namespace lengths, a rehash under way, a map cell). */
static __attribute__((noinline)) int prepared_insert(void *self, const fl_kv_ref_prep_t *p,
                                                     uint16_t kg, const void *key, size_t key_len,
                                                     uint64_t hash, void **val, size_t *len) {
  fl_kkey_t k = {kg, key, key_len, p->ns, p->ns_len};
  return value_ref_insert(self, p->table, &k, hash, p->new_len, val, len);
}

static __attribute__((noinline)) int prepared_general(void *self, const fl_kv_ref_prep_t *p,
                                                      uint16_t kg, const void *key, size_t key_len,
                                                      uint64_t hash, void **val, size_t *len) {
  fl_kkey_t k = {kg, key, key_len, p->ns, p->ns_len};
  return value_ref_hashed(self, p->table, &k, hash, p->new_len, val, len);
}

/* Starts loading cell `hash` of table: its home slot (stage 0) or, a few records later,
 * the entry (stage 1): its first cache line, and the next unless one_line. */
static inline __attribute__((always_inline)) void prefetch_cell(const hm_t *h, uint32_t table,
                                                                uint64_t hash, int stage,
                                                                bool one_line) {
  const hm_index_t *ix = &h->t[table].d.ix;
  if (!ix->slots) return;
  const hm_slot_t *s = &ix->slots[(size_t)hash & ix->mask];
  if (stage == 0) {
    __builtin_prefetch(s);
    return;
  }
  /* the home slot's entry is the cell unless it collided; the value follows the key */
  const hm_entry_t *e = s->e;
  if (e && s->hash == hash) {
    __builtin_prefetch(e);
    if (!one_line) __builtin_prefetch((const char *)e + 64);
  }
}

/* The per-record lookup of a window's contents: an 8-byte key in a 16-byte namespace
 * (a window) of a table not being rehashed, compared as words; everything else goes
 * to prepared_general. With ahead, it first starts loading the cell (akg, ahash). */
static inline __attribute__((always_inline)) int ref_prepared(void *self, const fl_kv_ref_prep_t *p,
                                                              uint16_t kg, const void *key,
                                                              size_t key_len, uint64_t key_hash,
                                                              void **val, size_t *len, bool ahead,
                                                              uint16_t akg, uint64_t ahash) {
  const hm_t *h = self;
  const hm_dict_t *d = &h->t[p->table].d;
  uint64_t hash = cell_hash(key_hash, kg, p->ns_hash);
  if (__builtin_expect(key_len == 8 && p->ns_len == 16 && d->old.slots == NULL, 1)) {
    /* (d->last is not tried: the cells a window's run visits are mostly not the last) */
    const hm_slot_t *slots = d->ix.slots;
    size_t mask = d->ix.mask;
    /* the home slot's entry, which is the cell unless it collided (a prefetch of NULL or
     * of another cell is wasted, not wrong): its first line, a window's whole cell */
    if (ahead && slots)
      __builtin_prefetch(slots[(size_t)cell_hash(ahash, akg, p->ns_hash) & mask].e);
    for (size_t i = (size_t)hash & mask; slots; i = (i + 1) & mask) {
      hm_entry_t *e = slots[i].e;
      if (!e) return prepared_insert(self, p, kg, key, 8, hash, val, len);
      if (slots[i].hash == hash && e->kg == kg && entry_lens(e) == lens_word(8, 16) &&
          load64(e->data) == load64(key) &&
          load64(e->data + 8) == load64((const unsigned char *)p->ns) &&
          load64(e->data + 16) == load64((const unsigned char *)p->ns + 8)) {
        if (e->flags & HM_F_MAP) break;
        *val = (unsigned char *)e + value_offset(8, 16);
        *len = e->val_len;
        return 1;
      }
    }
  }
  return prepared_general(self, p, kg, key, key_len, hash, val, len);
}

static int hm_value_ref_prepared(void *self, const fl_kv_ref_prep_t *p, uint16_t kg,
                                 const void *key, size_t key_len, uint64_t key_hash, void **val,
                                 size_t *len) {
  return ref_prepared(self, p, kg, key, key_len, key_hash, val, len, false, 0, 0);
}

static int hm_value_ref_prepared_ahead(void *self, const fl_kv_ref_prep_t *p, uint16_t kg,
                                       const void *key, size_t key_len, uint64_t key_hash,
                                       void **val, size_t *len, uint16_t akg, uint64_t ahash) {
  return ref_prepared(self, p, kg, key, key_len, key_hash, val, len, true, akg, ahash);
}

static void hm_prefetch(void *self, uint32_t table, const fl_kkey_t *k, uint64_t key_hash,
                        int stage) {
  hm_t *h = self;
  if (table >= h->n || (k->ns_len && !k->ns) || k->ns_len > UINT32_MAX) return;
  uint64_t ns = ns_hash(&h->nsc, k->ns, (uint32_t)k->ns_len);
  prefetch_cell(h, table, cell_hash(key_hash, k->kg, ns), stage, false);
}

static void hm_prefetch_prepared(void *self, const fl_kv_ref_prep_t *p, uint16_t kg,
                                 uint64_t key_hash, int stage) {
  prefetch_cell(self, p->table, cell_hash(key_hash, kg, p->ns_hash), stage,
                p->hint & HM_HINT_ONE_LINE);
}

static void hm_prefetch_prepared2(void *self, const fl_kv_ref_prep_t *p, uint16_t kg0,
                                  uint64_t key_hash0, uint16_t kg1, uint64_t key_hash1) {
  prefetch_cell(self, p->table, cell_hash(key_hash0, kg0, p->ns_hash), 0, true);
  prefetch_cell(self, p->table, cell_hash(key_hash1, kg1, p->ns_hash), 1,
                p->hint & HM_HINT_ONE_LINE);
}

static int hm_del(void *self, uint32_t table, const fl_kkey_t *k) {
  hm_dict_t *d;
  hm_pkey_t pk;
  int rc = prepare(self, table, k, &d, &pk);
  if (rc) return rc;
  hm_entry_t *e = fl_hm_dict_lookup(d, &pk);
  if (e) fl_hm_dict_remove(d, e);
  return FL_OK;
}

/* The map cell of k: 1 and its nested dict, 0 if absent, FL_EINVAL for a value cell. */
static int map_cell(hm_dict_t *d, hm_pkey_t *pk, hm_entry_t **cell, hm_dict_t **m) {
  hm_entry_t *e = fl_hm_dict_lookup(d, pk);
  if (!e) return 0;
  if (!(e->flags & HM_F_MAP)) return FL_EINVAL;
  *cell = e;
  *m = entry_map(e);
  return 1;
}

/* The entry of ukey in the map cell of k: 1 with the cell, its dict and the entry (NULL if
 * the map holds no ukey), 0 if k has no map cell, or an error. */
static int map_entry(void *self, uint32_t table, const fl_kkey_t *k, const void *ukey,
                     size_t ukey_len, hm_dict_t **d, hm_entry_t **cell, hm_dict_t **m,
                     hm_entry_t **e) {
  hm_pkey_t pk, uk;
  int rc = prepare(self, table, k, d, &pk);
  if (rc == FL_OK) rc = prepare_ukey(ukey, ukey_len, &uk);
  if (rc) return rc;
  rc = map_cell(*d, &pk, cell, m);
  if (rc <= 0) return rc;
  *e = fl_hm_dict_lookup(*m, &uk);
  return 1;
}

static int hm_map_get(void *self, uint32_t table, const fl_kkey_t *k, const void *ukey,
                      size_t ukey_len, const void **val, size_t *len) {
  hm_dict_t *d, *m;
  hm_entry_t *cell, *e;
  if (!val || !len) return FL_EINVAL;
  int rc = map_entry(self, table, k, ukey, ukey_len, &d, &cell, &m, &e);
  if (rc <= 0) return rc;
  if (!e) return 0;
  *val = entry_value(e);
  *len = e->val_len;
  return 1;
}

static int hm_map_put(void *self, uint32_t table, const fl_kkey_t *k, const void *ukey,
                      size_t ukey_len, const void *val, size_t len) {
  hm_dict_t *d, *m = NULL;
  hm_entry_t *cell = NULL;
  hm_pkey_t pk, uk;
  bool created = false;
  if (len && !val) return FL_EINVAL;
  int rc = prepare(self, table, k, &d, &pk);
  if (rc == FL_OK) rc = prepare_ukey(ukey, ukey_len, &uk);
  if (rc) return rc;
  rc = map_cell(d, &pk, &cell, &m);
  if (rc < 0) return rc;
  if (rc == 0) {
    m = calloc(1, sizeof *m);
    if (!m) return FL_ENOMEM;
    m->pool = d->pool;
    rc = fl_hm_dict_insert(d, &pk, sizeof m, &cell);
    if (rc) {
      free(m);
      return rc;
    }
    memcpy(entry_value(cell), &m, sizeof m);
    cell->val_len = sizeof m;
    cell->flags |= HM_F_MAP;
    created = true;
  }
  rc = fl_hm_dict_put(m, &uk, val, len);
  if (rc && created) fl_hm_dict_remove(d, cell); /* no empty map cells */
  return rc;
}

static int hm_map_del(void *self, uint32_t table, const fl_kkey_t *k, const void *ukey,
                      size_t ukey_len) {
  hm_dict_t *d, *m;
  hm_entry_t *cell, *e;
  int rc = map_entry(self, table, k, ukey, ukey_len, &d, &cell, &m, &e);
  if (rc <= 0) return rc;
  if (e) fl_hm_dict_remove(m, e);
  if (m->count == 0) fl_hm_dict_remove(d, cell);
  return FL_OK;
}

static int hm_map_iter(void *self, uint32_t table, const fl_kkey_t *k,
                       int (*cb)(const void *ukey, size_t ukey_len, const void *val, size_t len,
                                 void *arg),
                       void *arg) {
  hm_dict_t *d, *m;
  hm_entry_t *cell;
  hm_pkey_t pk;
  if (!cb) return FL_EINVAL;
  int rc = prepare(self, table, k, &d, &pk);
  if (rc) return rc;
  rc = map_cell(d, &pk, &cell, &m);
  if (rc <= 0) return rc;
  rc = FL_OK;
  for (size_t i = 0; i < m->dense_len; i++) {
    if (m->dense[i] & 1u) continue;
    hm_entry_t *e = (hm_entry_t *)m->dense[i];
    int r = cb(e->data, e->key_len, entry_value(e), e->val_len, arg);
    if (r < 0) {
      rc = r;
      break;
    }
    if (r == FL_KV_DELETE) {
      bool last = m->count == 1;
      fl_hm_dict_remove(m, e);
      if (last) break; /* the dense array was reset */
    } else if (r == FL_KV_STOP) {
      break;
    }
  }
  if (m->count == 0) fl_hm_dict_remove(d, cell);
  return rc;
}

static int hm_iterate(void *self, uint32_t table, uint64_t *cursor, size_t max_entries,
                      int (*cb)(const fl_kkey_t *k, const void *val, size_t len, void *arg),
                      void *arg) {
  hm_t *h = self;
  if (!h || table >= h->n || !cursor || !cb) return FL_EINVAL;
  hm_dict_t *d = &h->t[table].d;
  size_t holes = max_entries > (SIZE_MAX - HM_HOLES_MIN) / HM_HOLES_PER_VISIT
                     ? SIZE_MAX
                     : max_entries * HM_HOLES_PER_VISIT + HM_HOLES_MIN;
  size_t i = *cursor < d->dense_len ? (size_t)*cursor : d->dense_len;
  size_t seen = 0;
  int rc = FL_OK;
  while (i < d->dense_len && seen < max_entries) {
    if (d->dense[i] & 1u) {
      i++;
      if (--holes == 0) break;
      continue;
    }
    hm_entry_t *e = (hm_entry_t *)d->dense[i];
    fl_kkey_t k = {e->kg, e->data, e->key_len, e->data + e->key_len, e->ns_len};
    bool is_map = (e->flags & HM_F_MAP) != 0;
    int r = cb(&k, is_map ? NULL : entry_value(e), is_map ? 0 : e->val_len, arg);
    seen++;
    if (r < 0) {
      rc = r; /* the cursor stays on this entry */
      break;
    }
    /* cb may have changed the table: look at the slot again. */
    if (r == FL_KV_DELETE && i < d->dense_len && !(d->dense[i] & 1u))
      fl_hm_dict_remove(d, (hm_entry_t *)d->dense[i]);
    i++;
    if (r == FL_KV_STOP) break;
  }
  *cursor = i < d->dense_len ? (uint64_t)i : 0;
  return rc;
}

static size_t hm_count(void *self, uint32_t table) {
  hm_t *h = self;
  if (!h || table >= h->n) return 0;
  return h->t[table].d.count;
}

/* Table names in id order. cb returns 0 to go on; anything else stops the walk, and
 * a negative value is returned. */
static int hm_list_tables(void *self, int (*cb)(const char *name, void *arg), void *arg) {
  hm_t *h = self;
  if (!h || !cb) return FL_EINVAL;
  for (size_t i = 0; i < h->n; i++) {
    int r = cb(h->t[i].name, arg);
    if (r) return r < 0 ? r : FL_OK;
  }
  return FL_OK;
}

static const fl_kv_ops_t hm_ops = {
    .version = FL_KV_OPS_VERSION,
    .name = "hashmap",
    .destroy = hm_destroy,
    .open_table = hm_open_table,
    .get = hm_get,
    .put = hm_put,
    .append = hm_append,
    .del = hm_del,
    .map_get = hm_map_get,
    .map_put = hm_map_put,
    .map_del = hm_map_del,
    .map_iter = hm_map_iter,
    .iterate = hm_iterate,
    .count = hm_count,
    .list_tables = hm_list_tables,
    .value_ref = hm_value_ref,
    .prefetch = hm_prefetch,
    .ref_prepare = hm_ref_prepare,
    .value_ref_prepared = hm_value_ref_prepared,
    .prefetch_prepared = hm_prefetch_prepared,
    .take = hm_take,
    .take_prepared = hm_take_prepared,
    .prefetch_prepared2 = hm_prefetch_prepared2,
    .append_prepared = hm_append_prepared,
    .value_ref_prepared_ahead = hm_value_ref_prepared_ahead,
};

int fl_kv_hashmap_new(fl_kv_t *out) {
  if (!out) return FL_EINVAL;
  hm_t *h = calloc(1, sizeof *h);
  if (!h) return FL_ENOMEM;
  h->nsc.empty_key = fl_hash64("", 0, 0);
  out->ops = &hm_ops;
  out->self = h;
  return FL_OK;
}
