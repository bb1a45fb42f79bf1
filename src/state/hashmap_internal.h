/*
 * The in-memory state backend (kv.h): one instance per worker thread, one hash table
 * per state table.
 *
 * Layout of one table (hm_dict):
 *  - entries: one allocation per cell (from the instance's slabs, hashmap_pool.c, or
 *    malloc for large ones) holding a header and key | namespace | value, the
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
 *
 * Files: hashmap.c is the backend (fl_kv_ops_t on tables of cells), hashmap_dict.c one
 * table (hm_dict: its entries, index and dense array), hashmap_pool.c the entries'
 * allocator; this header is what they share.
 */
#ifndef FL_STATE_HASHMAP_INTERNAL_H
#define FL_STATE_HASHMAP_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "state/kv.h"
#include "util/hash.h"

#define HM_MIN_CAP 8
/* Index slots an empty table keeps; a larger index is freed when its table empties. */
#define HM_KEEP_SLOTS 4096
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

/* 23 bytes before the key, so that a window's cell (an 8-byte key, a 16-byte namespace
 * and an accumulator of up to 16 bytes) is 64 bytes: one cache line of a slab
 * (hashmap_pool.c) where it was 80 bytes and two lines. The cell's hash is not here but
 * in the index's slot and the dict's `hashes` (by dense position), which only removal
 * and resizing read. */
typedef struct hm_entry {
  uint32_t val_len, val_cap; /* <= HM_VAL_MAX */
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

/* Entry allocator (hashmap_pool.c): slabs of HM_SLAB_BYTES, one size class (a multiple
 * of 16 bytes up to HM_POOL_MAX) each; larger entries are malloc'd. One per instance,
 * shared by its tables. */
#define HM_SLAB_BYTES 65536
#define HM_POOL_MAX 512
#define HM_POOL_CLASSES (HM_POOL_MAX / 16 + 1)

typedef struct hm_slab hm_slab_t;

typedef struct hm_pool_class {
  hm_slab_t *room;  /* slabs with a free cell, most recently freed into first */
  hm_slab_t *spare; /* one empty slab kept, or NULL */
} hm_pool_class_t;

/* Once a pool holds HM_ARENA_AFTER slabs, new slabs come from arenas: 2 MiB regions,
 * 2 MiB aligned, that ask the kernel for a transparent huge page (madvise), so that a
 * large table's cells take one TLB entry per 2 MiB rather than per 4 KiB. */
#define HM_ARENA_BYTES ((size_t)2 << 20)
#define HM_ARENA_SLABS (HM_ARENA_BYTES / HM_SLAB_BYTES)
#define HM_ARENA_AFTER 32

_Static_assert(HM_ARENA_SLABS <= 32, "an arena's free slabs are a 32-bit mask");

typedef struct hm_arena {
  char *base;
  uint32_t free; /* bit i: slab i is not handed out */
} hm_arena_t;

typedef struct hm_pool {
  hm_pool_class_t c[HM_POOL_CLASSES];
  size_t slabs; /* slabs held (including spares) */
  size_t live;  /* cells handed out from them */
  hm_arena_t *arenas;
  size_t n_arenas, cap_arenas;
} hm_pool_t;

/* bytes (> 0) from the pool, 16-byte aligned, or NULL. */
void *fl_hm_pool_alloc(hm_pool_t *p, size_t bytes);
/* Gives back ptr, allocated with the same bytes. */
void fl_hm_pool_free(hm_pool_t *p, void *ptr, size_t bytes);
/* Frees the slabs; every cell must have been freed. */
void fl_hm_pool_destroy(hm_pool_t *p);
/* The bytes of slabs the pool holds and the cells it has handed out. */
void fl_hm_pool_stats(const hm_pool_t *p, size_t *held_bytes, size_t *live_cells);

/* Cells of a table's key groups (an empty key) that appends were made to, direct-mapped
 * by key group: a window's list of the keys of each group with contents in it gets an
 * append for every new (key, window) from groups in any order, which the single `last`
 * entry does not catch. */
#define HM_GROUP_CACHE 2048

/* The append cache's slot of the key group cell (kg, ns): the key groups of one
 * namespace in consecutive slots (a worker's groups do not evict each other), from an
 * offset that the namespace picks (the windows of a sliding window, each with a list per
 * key group, mostly do not either). */
static inline size_t group_slot(uint16_t kg, const void *ns, size_t ns_len) {
  uint64_t a = 0;
  if (ns_len >= 8) memcpy(&a, ns, sizeof a);
  return ((size_t)((a * 0x9e3779b97f4a7c15ull) >> 53) + kg) % HM_GROUP_CACHE;
}

typedef struct hm_dict {
  hm_pool_t *pool; /* the instance's: where entries come from */
  hm_index_t ix;   /* receives inserts */
  hm_index_t old;  /* drained into ix while its slots are non-NULL */
  size_t rehash_pos;
  /* Entry pointers; an odd value is a hole: (next hole index + 1) << 1 | 1. */
  uintptr_t *dense;
  uint64_t *hashes;              /* [dense_cap]: the cell hash of each dense position's entry */
  uint32_t dense_len, dense_cap; /* didx is 32 bits */
  size_t free_head;              /* first hole + 1, 0 if none */
  size_t count;
  hm_entry_t *last; /* lookup cache */
  /* Append cache (hm_append only, so never in a map cell's nested table): NULL until
   * the first append to a key group's cell, then HM_GROUP_CACHE entries, each the cell
   * of its key group last appended to, or NULL. Removing or moving an entry updates it. */
  hm_entry_t **group;
} hm_dict_t;

typedef struct hm_table {
  char *name;
  hm_dict_t d;
} hm_table_t;
_Static_assert(sizeof(hm_table_t) == 128,
               "a power of two: the per-record lookup indexes "
               "tables with a shift");

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
  uint64_t empty_key; /* fl_hash64("", 0, 0): the key of per-key-group cells */
} hm_ns_cache_t;

typedef struct hm {
  hm_table_t *t;
  size_t n, cap;
  hm_ns_cache_t nsc;
  hm_pool_t pool;
  /* The cell the last take removed: its value is lent until the next take (or the
   * end of the instance), which frees it. */
  hm_entry_t *taken;
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

/* ---------------------------------------------------------------------------------- */
/* Entries                                                                              */

/* The largest value capacity of a cell: a cell holds at most 4 GiB. */
#define HM_VAL_MAX (UINT32_MAX - 4096u)

static inline size_t value_offset(uint32_t key_len, uint32_t ns_len) {
  return (offsetof(hm_entry_t, data) + (size_t)key_len + ns_len + 15) & ~(size_t)15;
}

static inline unsigned char *entry_value(const hm_entry_t *e) {
  return (unsigned char *)e + value_offset(e->key_len, e->ns_len);
}

/* What an entry takes in memory (its allocation's size). */
static inline size_t entry_bytes(const hm_entry_t *e) {
  return value_offset(e->key_len, e->ns_len) + e->val_cap;
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

/* An entry's key and namespace lengths as one word, to compare with lens_word. */
_Static_assert(offsetof(hm_entry_t, ns_len) == offsetof(hm_entry_t, key_len) + 4,
               "ns_len follows key_len");
static inline uint64_t entry_lens(const hm_entry_t *e) {
  uint64_t w;
  memcpy(&w, &e->key_len, sizeof w);
  return w;
}

static inline uint64_t lens_word(uint32_t key_len, uint32_t ns_len) {
  uint32_t l[2] = {key_len, ns_len};
  uint64_t w;
  memcpy(&w, l, sizeof w);
  return w;
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

static inline bool entry_matches(const hm_entry_t *e, const hm_pkey_t *pk) {
  return e->kg == pk->kg && e->key_len == pk->key_len && e->ns_len == pk->ns_len &&
         bytes_eq(e->data, pk->key, pk->key_len) &&
         bytes_eq(e->data + pk->key_len, pk->ns, pk->ns_len);
}

/* A namespace's hash, never 0 (cell_hash multiplies by it): the empty namespace's is a
 * constant. */
static inline uint64_t ns_hash(hm_ns_cache_t *c, const void *ns, uint32_t len) {
  if (!len) return HM_SEED_CELL;
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
  if (c && len == 0) return c->empty_key;
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

/* A cell's hash: the key's hash and the namespace's (ns_hash's, never 0) folded by a
 * 64x64->128 multiply whose halves are xored. Both are hashes already, so no constants
 * are mixed in, which keeps the per-record path short. The value is in memory only
 * (snapshots go by key group, and a restore hashes cells anew). The key group is
 * folded in too: the key's hash picks it for keys of records, but cells an operator
 * addresses per key group (an empty key) differ in nothing else. */
static inline uint64_t cell_hash(uint64_t key_hash, uint16_t kg, uint64_t ns_hash) {
  __uint128_t r = (__uint128_t)(key_hash ^ (uint64_t)kg * 0x9e3779b97f4a7c15ull) * ns_hash;
  return (uint64_t)r ^ (uint64_t)(r >> 64);
}

/* Whether e is the cell (kg, key, ns) whose hash matched; the common shapes, 8-byte keys
 * and 16-byte window namespaces, inline. Arguments rather than a key struct, so that the
 * per-record path keeps them in registers. */
static __attribute__((noinline, cold, unused)) bool entry_bytes_are(const hm_entry_t *e,
                                                                    const void *key, size_t key_len,
                                                                    const void *ns, size_t ns_len) {
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

/* ---- One table (hashmap_dict.c) ---- */

void fl_hm_dict_free(hm_dict_t *d);
/* The entry of pk, or NULL; remembered as the last one looked up. */
hm_entry_t *fl_hm_dict_lookup(hm_dict_t *d, hm_pkey_t *pk);
/* Inserts a new entry (the key is known to be absent) with room for val_cap bytes. */
int fl_hm_dict_insert(hm_dict_t *d, hm_pkey_t *pk, size_t val_cap, hm_entry_t **out);
/* Removes and frees entry e (with a map cell's nested dict). */
void fl_hm_dict_remove(hm_dict_t *d, hm_entry_t *e);
/* Finds value cell k (hash: its cell hash) and removes it from the table without
 * freeing it, in one probe: 1 and *out, 0 if absent, FL_EINVAL for a map cell (left
 * in place). The caller frees it: fl_hm_pool_free(d->pool, e, entry_bytes(e)). */
int fl_hm_dict_take(hm_dict_t *d, uint64_t hash, const fl_kkey_t *k, hm_entry_t **out);
/* Sets pk's value cell to the len bytes at val (which may point into the cell). */
int fl_hm_dict_put(hm_dict_t *d, hm_pkey_t *pk, const void *val, size_t len);
/* Gives *ep room for cap value bytes, keeping the index, the dense array and the
 * cache pointing at it. *src, if it points into the entry, is moved along. */
int fl_hm_entry_resize(hm_dict_t *d, hm_entry_t **ep, size_t cap, const void **src);
/* Moves up to `units` of work from the old index to the new one (entries do not move,
 * so borrowed pointers stay valid). */
void fl_hm_rehash_step(hm_dict_t *d, size_t units);

#endif
