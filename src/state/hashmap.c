/*
 * The in-memory state backend (kv.h): one instance per worker thread, one hash table
 * per state table.
 *
 * Layout of one table (hm_dict):
 *  - entries: one malloc per cell holding a header and key | namespace | value, the
 *    value 16-byte aligned (users cast accumulators to structs) and with spare capacity
 *    so appends are amortised O(1) and a same-size put is a memcpy in place;
 *  - a dense array of entry pointers. Iteration walks it by index, which is the cursor
 *    of kv.h: entries never move in it (a deleted entry leaves a hole that a later
 *    insert reuses), so a walk interleaved with inserts and deletes sees no entry twice
 *    and misses none that lived through it;
 *  - an open-addressing index (linear probing, power-of-two capacity, load <= 3/4,
 *    backward-shift deletion, so no tombstones) of (entry, hash) slots. Growing doubles
 *    it incrementally, the way Redis's dict does: a second index receives the inserts
 *    while each operation moves a few slots of the old one, so no single call pays for
 *    a rehash of a large table. Both indexes stay valid linear-probing tables the whole
 *    time (migration is "delete from old, insert into new"), so a lookup probes both.
 *  - the last entry looked up: a get followed by a put of the same cell finds it
 *    without probing.
 *
 * A cell's hash folds the key's stable hash (fl_hash64(key, key_len, 0), which the
 * runtime computes once per record for its key group and passes to value_ref) with
 * a hash of the namespace; the namespace hash of the last namespace seen is kept, since
 * consecutive records mostly fall in the same window.
 *
 * Map cells are entries whose value is a pointer to a nested hm_dict of user key ->
 * value (same structure, empty namespace, key group 0). A map cell exists while it has
 * at least one user key: removing the last one removes the cell.
 */
#include <assert.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "flink.h"
#include "state/kv.h"
#include "util/hash.h"

#define HM_MIN_CAP 8
/* Rehash work per insert and per other lookup, in units of one old slot examined or
 * one entry moved. An old index of capacity C holds at most 3C/4 entries, so it is
 * drained after (C + 3C/4) / 16 < C/8 inserts, long before the new one (2C) fills. */
#define HM_REHASH_INSERT 16
#define HM_REHASH_LOOKUP 2
/* Holes an iterate call may skip per cell it may visit, so one call stays bounded when
 * a table shrank a lot. */
#define HM_HOLES_PER_VISIT 8
#define HM_HOLES_MIN 64

#define HM_SEED_CELL 0x51ed270b27a3f1c5ull
#define HM_SEED_UKEY 0x2545f4914f6cdd1dull

enum {
  HM_F_MAP = 1
};

typedef struct hm_entry {
  uint64_t hash;
  size_t val_len, val_cap;
  uint32_t key_len, ns_len;
  uint32_t didx; /* position in the dict's dense array */
  uint16_t kg;
  uint8_t flags;
  unsigned char data[]; /* key | ns | padding | value (val_cap bytes) */
} hm_entry_t;

typedef struct hm_slot {
  hm_entry_t *e; /* NULL: empty */
  uint64_t hash;
} hm_slot_t;

typedef struct hm_index {
  hm_slot_t *slots; /* NULL: no index */
  size_t mask;
  size_t used;
} hm_index_t;

typedef struct hm_dict {
  hm_index_t ix;  /* receives inserts */
  hm_index_t old; /* drained into ix while its slots are non-NULL */
  size_t rehash_pos;
  /* Entry pointers; an odd value is a hole: (next hole index + 1) << 1 | 1. */
  uintptr_t *dense;
  size_t dense_len, dense_cap;
  size_t free_head; /* first hole + 1, 0 if none */
  size_t count;
  hm_entry_t *last; /* lookup cache */
} hm_dict_t;

typedef struct hm_table {
  char *name;
  hm_dict_t d;
} hm_table_t;

/* Hashes of recent namespaces of 8 to 16 bytes (windows are 16), direct-mapped by
 * their bytes: the windows an operator is filling are few at a time (a sliding window
 * of 12 slides fills 12). */
#define HM_NS_CACHE 32

typedef struct hm_ns_entry {
  uint64_t hash;
  uint32_t len; /* 0: empty */
  unsigned char ns[16];
} hm_ns_entry_t;

typedef struct hm_ns_cache {
  hm_ns_entry_t e[HM_NS_CACHE];
  /* The hash of the last key of 8 to 16 bytes hashed: the calls for one record mostly
   * address cells of one key (a session window's set, contents, merges). */
  hm_ns_entry_t key;
} hm_ns_cache_t;

typedef struct hm {
  hm_table_t *t;
  size_t n, cap;
  hm_ns_cache_t nsc;
} hm_t;

/* A key being looked up. The hash is computed only when the cache misses. */
typedef struct hm_pkey {
  uint64_t hash;
  bool hashed;
  bool ukey;       /* a user key of a map cell (other hash seed) */
  bool key_hashed; /* key_hash = fl_hash64(key, key_len, 0) is known */
  uint64_t key_hash;
  hm_ns_cache_t *nsc;
  uint16_t kg;
  const void *key;
  uint32_t key_len;
  const void *ns;
  uint32_t ns_len;
} hm_pkey_t;

static void dict_free(hm_dict_t *d);

/* ---------------------------------------------------------------------------------- */
/* Entries                                                                              */

static inline size_t value_offset(uint32_t key_len, uint32_t ns_len) {
  return (offsetof(hm_entry_t, data) + (size_t)key_len + ns_len + 15) & ~(size_t)15;
}

static inline unsigned char *entry_value(const hm_entry_t *e) {
  return (unsigned char *)e + value_offset(e->key_len, e->ns_len);
}

static inline hm_dict_t *entry_map(const hm_entry_t *e) {
  hm_dict_t *m;
  memcpy(&m, entry_value(e), sizeof m);
  return m;
}

static inline void copy_bytes(void *dst, const void *src, size_t n) {
  if (n) memmove(dst, src, n);
}

static inline uint64_t load64(const unsigned char *p) {
  uint64_t v;
  memcpy(&v, p, sizeof v);
  return v;
}

/* Keys and namespaces are mostly short (ids, 16-byte windows): compare them with two
 * overlapping word loads rather than a memcmp call. */
static inline bool bytes_eq(const void *a, const void *b, size_t n) {
  const unsigned char *x = a, *y = b;
  if (n >= 8 && n <= 16) return load64(x) == load64(y) && load64(x + n - 8) == load64(y + n - 8);
  if (n < 8) {
    for (size_t i = 0; i < n; i++)
      if (x[i] != y[i]) return false;
    return true;
  }
  return memcmp(a, b, n) == 0;
}

static bool entry_matches(const hm_entry_t *e, const hm_pkey_t *pk) {
  return e->kg == pk->kg && e->key_len == pk->key_len && e->ns_len == pk->ns_len &&
         bytes_eq(e->data, pk->key, pk->key_len) &&
         bytes_eq(e->data + pk->key_len, pk->ns, pk->ns_len);
}

static inline uint64_t ns_hash(hm_ns_cache_t *c, const void *ns, uint32_t len) {
  if (!len) return 0;
  if (c && len >= 8 && len <= 16) {
    const unsigned char *p = ns;
    uint64_t a = load64(p), b = load64(p + len - 8);
    uint64_t x = a ^ b ^ (b >> 29) ^ (a >> 31);
    hm_ns_entry_t *e = &c->e[(x ^ (x >> 17)) & (HM_NS_CACHE - 1)];
    if (e->len == len && load64(e->ns) == a && load64(e->ns + len - 8) == b) return e->hash;
    e->len = len;
    memcpy(e->ns, ns, len);
    e->hash = fl_hash64(ns, len, HM_SEED_CELL);
    return e->hash;
  }
  return fl_hash64(ns, len, HM_SEED_CELL);
}

/* fl_hash64(key, len, 0), remembered for the last key of 8 to 16 bytes. */
static inline uint64_t key_hash(hm_ns_cache_t *c, const void *key, uint32_t len) {
  if (c && len >= 8 && len <= 16) {
    const unsigned char *p = key;
    uint64_t a = load64(p), b = load64(p + len - 8);
    hm_ns_entry_t *e = &c->key;
    if (e->len == len && load64(e->ns) == a && load64(e->ns + len - 8) == b) return e->hash;
    e->len = len;
    memcpy(e->ns, key, len);
    e->hash = fl_hash64_inline(key, len, 0);
    return e->hash;
  }
  return fl_hash64(key, len, 0);
}

/* A cell's hash. The key group is folded in too: the key's hash picks it for keys
 * of records, but cells an operator addresses per key group (an empty key) differ in
 * nothing else. */
static inline uint64_t cell_hash(uint64_t key_hash, uint16_t kg, uint64_t ns_hash) {
  return fl_hash_fold(key_hash ^ (uint64_t)kg * 0x9e3779b97f4a7c15ull, ns_hash);
}

static uint64_t pkey_hash(hm_pkey_t *pk) {
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

static hm_entry_t *entry_new(hm_pkey_t *pk, size_t val_cap) {
  size_t off = value_offset(pk->key_len, pk->ns_len);
  if (val_cap > SIZE_MAX - off) return NULL;
  hm_entry_t *e = malloc(off + val_cap);
  if (!e) return NULL;
  e->hash = pkey_hash(pk);
  e->val_len = 0;
  e->val_cap = val_cap;
  e->key_len = pk->key_len;
  e->ns_len = pk->ns_len;
  e->didx = 0;
  e->kg = pk->kg;
  e->flags = 0;
  copy_bytes(e->data, pk->key, pk->key_len);
  copy_bytes(e->data + pk->key_len, pk->ns, pk->ns_len);
  return e;
}

static void entry_free(hm_entry_t *e) {
  if (e->flags & HM_F_MAP) {
    hm_dict_t *m = entry_map(e);
    dict_free(m);
    free(m);
  }
  free(e);
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
static hm_slot_t *index_find(const hm_index_t *ix, uint64_t hash, const hm_pkey_t *pk,
                             const hm_entry_t *want, size_t *pos) {
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

static hm_slot_t *dict_find_slot(hm_dict_t *d, uint64_t hash, const hm_pkey_t *pk,
                                 const hm_entry_t *want, hm_index_t **which, size_t *pos) {
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

/* Moves up to `units` of work from the old index to the new one. Entries themselves
 * do not move, so borrowed pointers stay valid. */
static void rehash_step(hm_dict_t *d, size_t units) {
  while (d->old.slots && units-- > 0) {
    if (d->rehash_pos > d->old.mask || d->old.used == 0) break;
    hm_slot_t *s = &d->old.slots[d->rehash_pos];
    if (!s->e) {
      d->rehash_pos++;
      continue;
    }
    index_put(&d->ix, s->e, s->hash);
    /* Backward shift may refill rehash_pos; it is looked at again. Slots before
     * rehash_pos stay empty, so no cluster of the old index wraps into them. */
    index_remove_at(&d->old, d->rehash_pos);
  }
  rehash_finish_if_done(d);
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
    rehash_step(d, SIZE_MAX);
    assert(!d->old.slots);
  }
  if (cap > SIZE_MAX / 2 / sizeof(hm_slot_t)) return FL_ENOMEM;
  hm_slot_t *ns = calloc(cap * 2, sizeof *ns);
  if (!ns) return FL_ENOMEM;
  d->old = d->ix;
  d->rehash_pos = 0;
  d->ix.slots = ns;
  d->ix.mask = cap * 2 - 1;
  d->ix.used = 0;
  return FL_OK;
}

/* ---------------------------------------------------------------------------------- */
/* Dense array                                                                          */

static int dense_add(hm_dict_t *d, hm_entry_t *e) {
  size_t i;
  if (d->free_head) {
    i = d->free_head - 1;
    d->free_head = (size_t)(d->dense[i] >> 1);
  } else {
    if (d->dense_len == d->dense_cap) {
      size_t nc = d->dense_cap ? d->dense_cap * 2 : HM_MIN_CAP;
      if (nc > UINT32_MAX || nc > SIZE_MAX / sizeof *d->dense) return FL_ENOMEM;
      uintptr_t *p = realloc(d->dense, nc * sizeof *p);
      if (!p) return FL_ENOMEM;
      d->dense = p;
      d->dense_cap = nc;
    }
    i = d->dense_len++;
  }
  d->dense[i] = (uintptr_t)e;
  e->didx = (uint32_t)i;
  return FL_OK;
}

static void dense_remove(hm_dict_t *d, size_t i) {
  d->dense[i] = ((uintptr_t)d->free_head << 1) | 1u;
  d->free_head = i + 1;
}

/* ---------------------------------------------------------------------------------- */
/* Dict                                                                                 */

static void dict_free(hm_dict_t *d) {
  for (size_t i = 0; i < d->dense_len; i++) {
    if (!(d->dense[i] & 1u)) entry_free((hm_entry_t *)d->dense[i]);
  }
  free(d->dense);
  free(d->ix.slots);
  free(d->old.slots);
  memset(d, 0, sizeof *d);
}

static hm_entry_t *dict_lookup(hm_dict_t *d, hm_pkey_t *pk) {
  if (pk->key_hashed) {
    /* Hashing is cheap when the key's hash is known: compare hashes first. */
    uint64_t h = pkey_hash(pk);
    if (d->last && d->last->hash == h && entry_matches(d->last, pk)) return d->last;
  } else if (d->last && entry_matches(d->last, pk)) {
    return d->last;
  }
  if (d->count == 0) return NULL;
  uint64_t h = pkey_hash(pk);
  hm_slot_t *s = dict_find_slot(d, h, pk, NULL, NULL, NULL);
  hm_entry_t *e = s ? s->e : NULL; /* before the step: it moves slots */
  if (d->old.slots) rehash_step(d, HM_REHASH_LOOKUP);
  if (e) d->last = e;
  return e;
}

/* Inserts a new entry (the key is known to be absent) with room for val_cap bytes. */
static int dict_insert(hm_dict_t *d, hm_pkey_t *pk, size_t val_cap, hm_entry_t **out) {
  int rc = dict_reserve_one(d);
  if (rc) return rc;
  hm_entry_t *e = entry_new(pk, val_cap);
  if (!e) return FL_ENOMEM;
  rc = dense_add(d, e);
  if (rc) {
    free(e);
    return rc;
  }
  index_put(&d->ix, e, e->hash);
  d->count++;
  d->last = e;
  if (d->old.slots) rehash_step(d, HM_REHASH_INSERT);
  *out = e;
  return FL_OK;
}

static void dict_remove(hm_dict_t *d, hm_entry_t *e) {
  hm_index_t *which = NULL;
  size_t pos = 0;
  hm_slot_t *s = dict_find_slot(d, e->hash, NULL, e, &which, &pos);
  assert(s);
  (void)s;
  index_remove_at(which, pos);
  dense_remove(d, e->didx);
  d->count--;
  if (d->last == e) d->last = NULL;
  entry_free(e);
  if (d->count == 0) {
    /* Nothing left to walk: let the dense array start over. */
    d->dense_len = 0;
    d->free_head = 0;
  }
  rehash_finish_if_done(d);
}

/* Gives e room for cap value bytes (realloc), keeping the index, the dense array and
 * the cache pointing at it. *src, if it points into e, is moved along. */
static int entry_resize(hm_dict_t *d, hm_entry_t **ep, size_t cap, const void **src) {
  hm_entry_t *e = *ep;
  size_t off = value_offset(e->key_len, e->ns_len);
  if (cap > SIZE_MAX - off) return FL_ENOMEM;
  hm_slot_t *s = dict_find_slot(d, e->hash, NULL, e, NULL, NULL);
  assert(s);
  uintptr_t base = (uintptr_t)e, end = base + off + e->val_cap;
  bool inside = src && *src && (uintptr_t)*src >= base && (uintptr_t)*src < end;
  size_t src_off = inside ? (size_t)((uintptr_t)*src - base) : 0;
  bool cached = d->last == e; /* compared before realloc frees e */
  hm_entry_t *ne = realloc(e, off + cap);
  if (!ne) return FL_ENOMEM;
  ne->val_cap = cap;
  s->e = ne;
  d->dense[ne->didx] = (uintptr_t)ne;
  if (cached) d->last = ne;
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
    size_t grown = e->val_cap + e->val_cap / 2;
    int rc = entry_resize(d, &e, len > grown ? len : grown, &val);
    if (rc) return rc;
  } else if (e->val_cap > 256 && len < e->val_cap / 4 && !points_into(e, val)) {
    int rc = entry_resize(d, &e, len, NULL);
    if (rc) return rc;
  }
  copy_bytes(entry_value(e), val, len);
  e->val_len = len;
  return FL_OK;
}

static int dict_put(hm_dict_t *d, hm_pkey_t *pk, const void *val, size_t len) {
  hm_entry_t *e = dict_lookup(d, pk);
  if (e) {
    if (e->flags & HM_F_MAP) return FL_EINVAL;
    return entry_set(d, e, val, len);
  }
  int rc = dict_insert(d, pk, len, &e);
  if (rc) return rc;
  copy_bytes(entry_value(e), val, len);
  e->val_len = len;
  return FL_OK;
}

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
    dict_free(&h->t[i].d);
  }
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
  if (h->n == h->cap) {
    size_t nc = h->cap ? h->cap * 2 : 8;
    hm_table_t *t = realloc(h->t, nc * sizeof *t);
    if (!t) return FL_ENOMEM;
    h->t = t;
    h->cap = nc;
  }
  char *copy = strdup(name);
  if (!copy) return FL_ENOMEM;
  memset(&h->t[h->n], 0, sizeof h->t[h->n]);
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
  hm_entry_t *e = dict_lookup(d, &pk);
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
  return dict_put(d, &pk, val, len);
}

static int hm_append(void *self, uint32_t table, const fl_kkey_t *k, const void *val, size_t len) {
  hm_dict_t *d;
  hm_pkey_t pk;
  if (len && !val) return FL_EINVAL;
  int rc = prepare(self, table, k, &d, &pk);
  if (rc) return rc;
  hm_entry_t *e = dict_lookup(d, &pk);
  if (!e) {
    rc = dict_insert(d, &pk, len, &e);
    if (rc) return rc;
    copy_bytes(entry_value(e), val, len);
    e->val_len = len;
    return FL_OK;
  }
  if (e->flags & HM_F_MAP) return FL_EINVAL;
  if (len > SIZE_MAX - e->val_len) return FL_ENOMEM;
  size_t need = e->val_len + len;
  if (need > e->val_cap) {
    /* Doubling keeps a list built by appends amortised O(1) per item. */
    size_t cap = e->val_cap > SIZE_MAX / 2 ? need : e->val_cap * 2;
    if (cap < need) cap = need;
    if (cap < 32) cap = 32;
    rc = entry_resize(d, &e, cap, &val);
    if (rc) return rc;
  }
  copy_bytes(entry_value(e) + e->val_len, val, len);
  e->val_len = need;
  return FL_OK;
}

/* Whether e is the cell (kg, key, ns) whose hash matched; the common shapes, 8-byte keys
 * and 16-byte window namespaces, inline. Arguments rather than a key struct, so that the
 * per-record path keeps them in registers. */
static __attribute__((noinline, cold)) bool entry_bytes_are(const hm_entry_t *e, const void *key,
                                                            size_t key_len, const void *ns,
                                                            size_t ns_len) {
  return bytes_eq(e->data, key, key_len) && bytes_eq(e->data + key_len, ns, ns_len);
}

static inline bool entry_is_cell(const hm_entry_t *e, uint16_t kg, const void *key, size_t key_len,
                                 const void *ns, size_t ns_len) {
  if (e->kg != kg || e->key_len != key_len || e->ns_len != ns_len) return false;
  if (key_len == 8 && ns_len == 16)
    return load64(e->data) == load64(key) && load64(e->data + 8) == load64(ns) &&
           load64(e->data + 16) == load64((const unsigned char *)ns + 8);
  return entry_bytes_are(e, key, key_len, ns, ns_len);
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
  if (e && e->hash == hash && entry_is_cell(e, k->kg, k->key, k->key_len, k->ns, k->ns_len))
    return e;
  e = index_find_cell(&d->ix, hash, k);
  if (__builtin_expect(d->old.slots != NULL, 0)) {
    if (!e) e = index_find_cell(&d->old, hash, k);
    rehash_step(d, HM_REHASH_LOOKUP);
  }
  if (e) d->last = e;
  return e;
}

/* value_ref once the cell's hash is known and k checked. */
static int value_ref_hashed(hm_t *h, uint32_t table, const fl_kkey_t *k, uint64_t hash,
                            size_t new_len, void **val, size_t *len) {
  hm_dict_t *d = &h->t[table].d;
  hm_entry_t *e = dict_find_cell(d, hash, k);
  if (e) {
    if (e->flags & HM_F_MAP) return FL_EINVAL;
    *val = entry_value(e);
    *len = e->val_len;
    return 1;
  }
  hm_pkey_t pk;
  int rc = prepare(h, table, k, &d, &pk);
  if (rc) return rc;
  pk.hash = hash;
  pk.hashed = true;
  rc = dict_insert(d, &pk, new_len, &e);
  if (rc) return rc;
  if (new_len) memset(entry_value(e), 0, new_len);
  e->val_len = new_len;
  *val = entry_value(e);
  *len = new_len;
  return 0;
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

static int hm_ref_prepare(void *self, fl_kv_ref_prep_t *p) {
  hm_t *h = self;
  if (!h || !p || p->table >= h->n || (p->ns_len && !p->ns) || p->ns_len > UINT32_MAX)
    return FL_EINVAL;
  p->ns_hash = ns_hash(NULL, p->ns, (uint32_t)p->ns_len);
  return FL_OK;
}

static int hm_value_ref_prepared(void *self, const fl_kv_ref_prep_t *p, uint16_t kg,
                                 const void *key, size_t key_len, uint64_t key_hash, void **val,
                                 size_t *len) {
  hm_t *h = self;
  hm_dict_t *d = &h->t[p->table].d;
  uint64_t hash = cell_hash(key_hash, kg, p->ns_hash);
  const void *ns = p->ns;
  size_t ns_len = p->ns_len;
  if (__builtin_expect(d->old.slots == NULL && d->ix.slots != NULL, 1)) {
    /* (d->last is not tried: the cells a window's run visits are mostly not the last) */
    const hm_slot_t *slots = d->ix.slots;
    size_t mask = d->ix.mask;
    hm_entry_t *e;
    for (size_t i = (size_t)hash & mask;; i = (i + 1) & mask) {
      e = slots[i].e;
      if (!e || (slots[i].hash == hash && entry_is_cell(e, kg, key, key_len, ns, ns_len))) break;
    }
    if (e && !(e->flags & HM_F_MAP)) {
      *val = entry_value(e);
      *len = e->val_len;
      return 1;
    }
  }
  /* rehashing, an absent cell, a map cell */
  fl_kkey_t k = {kg, key, key_len, ns, ns_len};
  return value_ref_hashed(h, p->table, &k, hash, p->new_len, val, len);
}

/* Starts loading cell `hash` of table: its home slot (stage 0) or, a few records later,
 * the entry (stage 1). */
static inline __attribute__((always_inline)) void prefetch_cell(const hm_t *h, uint32_t table,
                                                                uint64_t hash, int stage) {
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
    __builtin_prefetch((const char *)e + 64);
  }
}

static void hm_prefetch(void *self, uint32_t table, const fl_kkey_t *k, uint64_t key_hash,
                        int stage) {
  hm_t *h = self;
  if (table >= h->n || (k->ns_len && !k->ns) || k->ns_len > UINT32_MAX) return;
  uint64_t ns = ns_hash(&h->nsc, k->ns, (uint32_t)k->ns_len);
  prefetch_cell(h, table, cell_hash(key_hash, k->kg, ns), stage);
}

static void hm_prefetch_prepared(void *self, const fl_kv_ref_prep_t *p, uint16_t kg,
                                 uint64_t key_hash, int stage) {
  prefetch_cell(self, p->table, cell_hash(key_hash, kg, p->ns_hash), stage);
}

static int hm_del(void *self, uint32_t table, const fl_kkey_t *k) {
  hm_dict_t *d;
  hm_pkey_t pk;
  int rc = prepare(self, table, k, &d, &pk);
  if (rc) return rc;
  hm_entry_t *e = dict_lookup(d, &pk);
  if (e) dict_remove(d, e);
  return FL_OK;
}

/* The map cell of k: 1 and its nested dict, 0 if absent, FL_EINVAL for a value cell. */
static int map_cell(hm_dict_t *d, hm_pkey_t *pk, hm_entry_t **cell, hm_dict_t **m) {
  hm_entry_t *e = dict_lookup(d, pk);
  if (!e) return 0;
  if (!(e->flags & HM_F_MAP)) return FL_EINVAL;
  *cell = e;
  *m = entry_map(e);
  return 1;
}

static int hm_map_get(void *self, uint32_t table, const fl_kkey_t *k, const void *ukey,
                      size_t ukey_len, const void **val, size_t *len) {
  hm_dict_t *d, *m;
  hm_entry_t *cell;
  hm_pkey_t pk, uk;
  if (!val || !len) return FL_EINVAL;
  int rc = prepare(self, table, k, &d, &pk);
  if (rc == FL_OK) rc = prepare_ukey(ukey, ukey_len, &uk);
  if (rc) return rc;
  rc = map_cell(d, &pk, &cell, &m);
  if (rc <= 0) return rc;
  hm_entry_t *e = dict_lookup(m, &uk);
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
    rc = dict_insert(d, &pk, sizeof m, &cell);
    if (rc) {
      free(m);
      return rc;
    }
    memcpy(entry_value(cell), &m, sizeof m);
    cell->val_len = sizeof m;
    cell->flags |= HM_F_MAP;
    created = true;
  }
  rc = dict_put(m, &uk, val, len);
  if (rc && created) dict_remove(d, cell); /* no empty map cells */
  return rc;
}

static int hm_map_del(void *self, uint32_t table, const fl_kkey_t *k, const void *ukey,
                      size_t ukey_len) {
  hm_dict_t *d, *m;
  hm_entry_t *cell;
  hm_pkey_t pk, uk;
  int rc = prepare(self, table, k, &d, &pk);
  if (rc == FL_OK) rc = prepare_ukey(ukey, ukey_len, &uk);
  if (rc) return rc;
  rc = map_cell(d, &pk, &cell, &m);
  if (rc <= 0) return rc;
  hm_entry_t *e = dict_lookup(m, &uk);
  if (e) dict_remove(m, e);
  if (m->count == 0) dict_remove(d, cell);
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
      dict_remove(m, e);
      if (last) break; /* the dense array was reset */
    } else if (r == FL_KV_STOP) {
      break;
    }
  }
  if (m->count == 0) dict_remove(d, cell);
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
      dict_remove(d, (hm_entry_t *)d->dense[i]);
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
};

int fl_kv_hashmap_new(fl_kv_t *out) {
  if (!out) return FL_EINVAL;
  hm_t *h = calloc(1, sizeof *h);
  if (!h) return FL_ENOMEM;
  out->ops = &hm_ops;
  out->self = h;
  return FL_OK;
}
