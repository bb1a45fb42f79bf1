/*
 * What the parts of the state cache share (cache.c: items, the index, the CLOCK ring,
 * eviction, write-back, stores; cache_ops.c: the kv.h operations of a cached store).
 * Private to src/state/cache*.c; the design is described at the top of cache.c. Names
 * shared between the parts carry the fl_cc_ prefix, since the static library exports
 * every non-static symbol.
 */
#ifndef FL_STATE_CACHE_INTERNAL_H
#define FL_STATE_CACHE_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "flink.h"
#include "state/cache.h"
#include "state/kv.h"

#define CC_NO_IDX UINT32_MAX
#define CC_PINS 8
/* Writes handed to the inner store in one write_batch call. */
#define CC_BATCH 1024

/* Item types: a value cell, the head of a map cell (holding its cached user keys), one
 * user key of a map cell. */
enum {
  CC_VALUE = 0,
  CC_HEAD,
  CC_CHILD
};

/* What the store still lacks of an item: nothing, its value (put), its deletion, or
 * the bytes from moff on (appended; a merge in RocksDB). */
enum {
  CC_CLEAN = 0,
  CC_PUT,
  CC_DEL,
  CC_MERGE
};

enum {
  CC_REF = 1,      /* used since the CLOCK hand last passed */
  CC_ABSENT = 2,   /* the cell is known to be absent */
  CC_PARTIAL = 4,  /* only the appended suffix is known (CC_MERGE, moff 0) */
  CC_HEAP = 8,     /* the value lives in its own allocation, not inline */
  CC_COMPLETE = 16 /* head: every user key of the map cell is cached (none if n is 0) */
};

/* What a table of a store holds, learnt from the first call the store accepted. */
enum {
  CC_KIND_UNKNOWN = 0,
  CC_KIND_VALUE,
  CC_KIND_MAP
};

typedef struct cc_item cc_item_t;
struct cc_item {
  cc_item_t *hnext;  /* chain in the index, or in the head's table for a child */
  cc_item_t *parent; /* child: its head */
  union {
    struct {
      uint8_t *p;    /* the value: inline (16-byte aligned after the key) or on the heap */
      uint32_t len;  /* bytes */
      uint32_t cap;  /* capacity of the buffer p points to */
      uint32_t moff; /* CC_MERGE: the store has [0, moff) already */
      uint32_t icap; /* inline capacity */
    } v;
    struct {
      cc_item_t **tab; /* the cached user keys, chained by hnext */
      uint32_t n;      /* children */
      uint32_t mask;   /* tab has mask + 1 buckets */
      uint32_t ndirty; /* dirty children */
      uint32_t busy;   /* map walks of the cache under way: children stay */
    } h;
  } u;
  uint32_t ring;  /* position in the CLOCK ring */
  uint32_t didx;  /* position in its store's dirty array, or CC_NO_IDX */
  uint32_t hash;  /* of the cell (value, head) or of the user key (child) */
  uint32_t table; /* value, head */
  uint32_t klen;  /* key length (value, head) or user key length (child) */
  uint32_t nslen; /* namespace length (value, head) */
  uint32_t acct;  /* bytes charged to the cache for it */
  uint16_t kg;
  uint16_t view; /* the store's index in the cache */
  uint8_t type, st, flags;
  uint8_t pins;        /* borrowed pointers handed out lately: not evicted */
  unsigned char key[]; /* key | ns, or the user key; then the inline value */
};

typedef struct cc_view cc_view_t;

struct fl_kv_cache {
  size_t cap;      /* the bound */
  size_t low;      /* eviction goes down to this */
  size_t max_item; /* a larger value is not cached */
  size_t bytes;    /* charged: items and the arrays below */
  size_t meta;     /* of which the arrays */
  cc_item_t **buckets;
  uint32_t mask;
  size_t n_items;
  cc_item_t **ring; /* every item once, in no order; the CLOCK hand walks it */
  size_t n_ring, cap_ring, hand;
  cc_view_t **views; /* by id; NULL: free */
  size_t n_views;
  cc_item_t *pins[CC_PINS];
  unsigned pin_pos;
  cc_item_t **victims; /* evicted, freed once their writes are done */
  size_t n_victims, cap_victims;
  size_t dirty_bytes;          /* charged bytes of dirty items, every store */
  size_t dirty_cap, dirty_low; /* the write-ahead starts above cap, stops at low */
  size_t dirty_target;         /* the idle write-ahead writes down to this */
  bool ahead_failed;           /* a write-ahead failed: none until a flush succeeds */
  fl_kv_write_t wb[CC_BATCH];
};

struct cc_view {
  fl_kv_cache_t *c;
  fl_kv_t inner;
  uint16_t id;
  uint8_t *kinds;   /* CC_KIND_* by table id */
  uint32_t *tdirty; /* dirty items by table id */
  size_t n_tables, cap_tables;
  cc_item_t **dirty; /* dirty[d0, n_dirty): the dirty items; [d0, sorted) in key order */
  size_t d0, sorted, n_dirty, cap_dirty;
  size_t dirty_bytes;
  size_t items, bytes;
  uint64_t hits, misses, evictions, evicted_dirty, flushes, written_ahead;
  int64_t flush_ns_last, flush_ns_total;
  cc_item_t *last; /* the value item last looked up */
};

/* The operation table of a cached store (cache_ops.c). */
extern const fl_kv_ops_t fl_cc_ops;

static inline bool fl_cc_same_cell(const cc_item_t *it, int type, uint32_t table,
                                   const fl_kkey_t *k) {
  return it->type == type && it->table == table && it->kg == k->kg && it->klen == k->key_len &&
         it->nslen == k->ns_len && (!k->key_len || memcmp(it->key, k->key, k->key_len) == 0) &&
         (!k->ns_len || memcmp(it->key + k->key_len, k->ns, k->ns_len) == 0);
}

/* The cell of a value or head item. */
static inline fl_kkey_t fl_cc_cell(const cc_item_t *it) {
  fl_kkey_t k = {it->kg, it->key, it->klen, it->key + it->klen, it->nslen};
  return k;
}

/* ---- cache.c ---- */

uint32_t fl_cc_hash_cell(const cc_view_t *v, uint32_t table, const fl_kkey_t *k);
uint32_t fl_cc_hash_ukey(const void *uk, size_t n);
/* The value or head item of a cell (type CC_VALUE or CC_HEAD), or NULL. */
cc_item_t *fl_cc_find(cc_view_t *v, int type, uint32_t table, const fl_kkey_t *k, uint32_t h);
/* The child item of user key uk under head, or NULL. */
cc_item_t *fl_cc_find_child(cc_item_t *head, const void *uk, size_t n, uint32_t h);
/* A new clean item of the cell (value or head) or of a user key under head (child),
 * holding val (NULL: absent; NULL with len > 0: len zero bytes), made room for in the
 * cache. NULL when out of memory. */
cc_item_t *fl_cc_new_cell(cc_view_t *v, int type, uint32_t table, const fl_kkey_t *k, uint32_t h,
                          const void *val, size_t len);
cc_item_t *fl_cc_new_child(cc_view_t *v, cc_item_t *head, const void *uk, size_t ukl, uint32_t h,
                           const void *val, size_t len);
/* Makes the item's value len zero bytes (present). FL_ENOMEM leaves it as it was. */
int fl_cc_zero(cc_view_t *v, cc_item_t *it, size_t len);
/* Room in the store's dirty array for one more item, so that marking one cannot fail. */
int fl_cc_dirty_reserve(cc_view_t *v);
/* Replaces the item's value by val (which may point into it), or appends val to it.
 * FL_ENOMEM leaves it as it was. */
int fl_cc_set(cc_view_t *v, cc_item_t *it, const void *val, size_t len);
int fl_cc_append(cc_view_t *v, cc_item_t *it, const void *val, size_t len);
/* Puts val before the item's value (a partial list meeting what the store holds). */
int fl_cc_prepend(cc_view_t *v, cc_item_t *it, const void *val, size_t len);
/* Drops the value's bytes (an absent cell keeps only its inline room). */
void fl_cc_clear_value(cc_view_t *v, cc_item_t *it);
/* Sets what the store lacks of it (CC_PUT, CC_DEL, CC_MERGE), or makes it clean.
 * Marking may write other dirty items ahead (cache_write.c), never it. */
void fl_cc_mark(cc_view_t *v, cc_item_t *it, int st);
void fl_cc_mark_clean(cc_view_t *v, cc_item_t *it);
/* Makes an item that is in no dirty array (any more) clean. */
void fl_cc_set_clean(cc_view_t *v, cc_item_t *it);
/* The dirty array's first item, taken out of it (still dirty, in no array), or NULL;
 * and such an item put back at the end (after a pop this cannot fail). */
cc_item_t *fl_cc_dirty_pop(cc_view_t *v);
int fl_cc_dirty_push_back(cc_view_t *v, cc_item_t *it);
/* Moves the dirty array's items to its start, so that dirty[0, n_dirty) holds them. */
void fl_cc_dirty_compact(cc_view_t *v);
/* Removes an item (and a head's children) from the cache now, dirty or not. */
void fl_cc_remove(cc_view_t *v, cc_item_t *it);
/* Hands out it's value: it is not evicted during the next CC_PINS - 1 borrowing calls. */
void fl_cc_pin(fl_kv_cache_t *c, cc_item_t *it);
/* ---- cache_write.c ---- */
/* The write that brings the store up to date with a dirty item. */
void fl_cc_item_write(const cc_item_t *it, fl_kv_write_t *w);
/* n writes to the inner store: one batch, or call by call. */
int fl_cc_apply(cc_view_t *v, const fl_kv_write_t *w, size_t n);
/* Writes every dirty item of the store, or of one head, to the inner store. */
int fl_cc_flush(cc_view_t *v);
int fl_cc_flush_head(cc_view_t *v, cc_item_t *head);
/* Writes one dirty item at once and makes it clean. */
int fl_cc_write_one(cc_view_t *v, cc_item_t *it);
/* Writes dirty items ahead (a sweep in key order), not keep, until the dirty bytes are
 * at the low mark. */
void fl_cc_write_ahead(fl_kv_cache_t *c, const cc_item_t *keep);
/* Removes every item of the store, dirty or not; destroys a store (not its cache). */
void fl_cc_drop_items(cc_view_t *v);
void fl_cc_view_destroy(cc_view_t *v);
/* The store's table bookkeeping covers table id t. */
int fl_cc_tables_reserve(cc_view_t *v, uint32_t t);
int64_t fl_cc_now_ns(void);

#endif
