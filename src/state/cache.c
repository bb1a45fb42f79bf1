/*
 * The state cache (cache.h): its items, index, CLOCK ring, eviction and write-back, and
 * the stores wrapped on it; the kv.h operations of a cached store live in cache_ops.c.
 *
 * Items. One malloc per cached thing: a value cell, the head of a map cell, or one user
 * key of a map cell (a child, found through its head's own small table, so that a map
 * cell's cached keys can be found together, to be written before a walk of the map or
 * dropped when the whole cell is deleted). A value lives inline after the key, 16-byte
 * aligned as kv.h wants, while it fits the room it got when the item was made, and on
 * the heap once it outgrows it. Each item knows what the store lacks of it (cache_
 * internal.h: nothing, its value, its deletion, or the bytes appended since the store
 * last saw it), and a dirty item sits in its store's dirty array, so a flush touches
 * only dirty items.
 *
 * Index. One chained hash table of value and head items over every store of the cache,
 * keyed by (store, table, key group, key, namespace), doubled when it holds more items
 * than buckets. Each store remembers the item it looked up last, so the get then put of
 * a read-modify-write hashes once.
 *
 * Bound. Every item is charged its allocation (rounded as malloc does, plus its header)
 * and its share of the index and the ring; the arrays are charged as they grow. Before
 * anything grows, eviction brings the total under the bound: a CLOCK hand walks the
 * ring of all items, clearing the used bit of those used since it last passed and
 * evicting the others, down to 1/32 below the bound so that one eviction pass writes
 * many dirty items in one batch. An item whose value was handed out within the last
 * CC_PINS borrowing calls is skipped (its pointer must stay valid: the state layer
 * holds two at once), as is a head that still has children. A value larger than 1/16 of
 * the bound is not cached: it is read from and written to the store directly. So the
 * cache stays within its bound under any key distribution, a scan of every key included.
 *
 * Write-back. Dirty items go to the inner store through its write_batch op (one RocksDB
 * write batch per CC_BATCH items): those evicted in one pass together, and all of a
 * store's at a flush, in the store's key order. An evicted item is freed only after its
 * write, as a child's write needs its head's key.
 */
#define _GNU_SOURCE
#include <assert.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "state/cache_internal.h"
#include "util/vec.h"

/* Charged per item besides its allocation: malloc's header, the ring slot, the bucket. */
#define CC_ITEM_FIXED 32u
#define CC_MIN_BUCKETS 1024u
#define CC_HUGE_PAGE ((size_t)2 << 20)

static inline size_t round16(size_t n) { return (n + 15) & ~(size_t)15; }

int64_t fl_cc_now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* ---------------------------------------------------------------------------------- */
/* Hashing                                                                              */

static inline uint64_t mix(uint64_t h, uint64_t w) {
  h ^= w * 0x9E3779B97F4A7C15ull;
  h = (h << 27 | h >> 37) * 0xBF58476D1CE4E5B9ull;
  return h;
}

static inline uint64_t mix_bytes(uint64_t h, const unsigned char *p, size_t n) {
  for (; n >= 8; p += 8, n -= 8) {
    uint64_t w;
    memcpy(&w, p, 8);
    h = mix(h, w);
  }
  if (n) {
    uint64_t w = 0;
    memcpy(&w, p, n);
    h = mix(h, w ^ (uint64_t)n << 56);
  }
  return h;
}

static inline uint32_t fin(uint64_t h) {
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdull;
  h ^= h >> 33;
  return (uint32_t)h;
}

uint32_t fl_cc_hash_cell(const cc_view_t *v, uint32_t table, const fl_kkey_t *k) {
  uint64_t h = mix(0x51ed270b27a3f1c5ull, (uint64_t)v->id << 48 ^ (uint64_t)k->kg << 32 ^ table);
  h = mix(h, (uint64_t)k->key_len << 32 ^ k->ns_len);
  h = mix_bytes(h, k->key, k->key_len);
  return fin(mix_bytes(h, k->ns, k->ns_len));
}

uint32_t fl_cc_hash_ukey(const void *uk, size_t n) {
  return fin(mix_bytes(mix(0x2545f4914f6cdd1dull, n), uk, n));
}

/* ---------------------------------------------------------------------------------- */
/* Items                                                                                */

static inline size_t key_bytes(const cc_item_t *it) { return (size_t)it->klen + it->nslen; }

static inline size_t inline_off(size_t kn) { return round16(offsetof(cc_item_t, key) + kn); }

static inline uint8_t *inline_p(cc_item_t *it) { return (uint8_t *)it + inline_off(key_bytes(it)); }

static inline cc_view_t *view_of(fl_kv_cache_t *c, const cc_item_t *it) {
  return c->views[it->view];
}

cc_item_t *fl_cc_find(cc_view_t *v, int type, uint32_t table, const fl_kkey_t *k, uint32_t h) {
  fl_kv_cache_t *c = v->c;
  for (cc_item_t *it = c->buckets[h & c->mask]; it; it = it->hnext)
    if (it->hash == h && it->view == v->id && fl_cc_same_cell(it, type, table, k)) return it;
  return NULL;
}

cc_item_t *fl_cc_find_child(cc_item_t *head, const void *uk, size_t n, uint32_t h) {
  if (!head->u.h.tab) return NULL;
  for (cc_item_t *it = head->u.h.tab[h & head->u.h.mask]; it; it = it->hnext)
    if (it->hash == h && it->klen == n && (!n || memcmp(it->key, uk, n) == 0)) return it;
  return NULL;
}

static void charge(fl_kv_cache_t *c, cc_view_t *v, cc_item_t *it, ptrdiff_t delta) {
  c->bytes += (size_t)delta;
  v->bytes += (size_t)delta;
  it->acct = (uint32_t)((ptrdiff_t)it->acct + delta);
  if (it->didx != CC_NO_IDX) {
    c->dirty_bytes += (size_t)delta;
    v->dirty_bytes += (size_t)delta;
  }
}

void fl_cc_pin(fl_kv_cache_t *c, cc_item_t *it) {
  cc_item_t **slot = &c->pins[c->pin_pos++ % CC_PINS];
  if (*slot) (*slot)->pins--;
  *slot = it;
  it->pins++;
}

static void unpin_all(fl_kv_cache_t *c, cc_item_t *it) {
  for (size_t i = 0; it->pins && i < CC_PINS; i++)
    if (c->pins[i] == it) {
      c->pins[i] = NULL;
      it->pins--;
    }
}

/* The arrays' bytes changed from old to now. */
static void charge_meta(fl_kv_cache_t *c, size_t old, size_t now) {
  c->bytes = c->bytes - old + now;
  c->meta = c->meta - old + now;
}

/* FL_VEC_RESERVE for the cache's own arrays, whose bytes count against its bound. */
#define CC_RESERVE(c, arr, cap, need) \
  ((size_t)(need) <= (cap) ? FL_OK : charged_grow((c), &(arr), &(cap), (need), sizeof *(arr)))

static int charged_grow(fl_kv_cache_t *c, void *arrp, size_t *cap, size_t need, size_t elem) {
  size_t old = *cap;
  if (fl_vec_grow_(arrp, cap, need, elem)) return FL_ENOMEM;
  charge_meta(c, old * elem, *cap * elem);
  return FL_OK;
}

/* The dirty array: dirty[d0, n_dirty), items appended as they become dirty (a removal
 * from the middle moves the last item there); [d0, sorted) is in the store's key order,
 * where the write-ahead takes items from (cache_write.c). The front's free slots are
 * given back when they are as many as the items behind them, so moving the items costs
 * no more than taking them did. */
void fl_cc_dirty_compact(cc_view_t *v) {
  if (!v->d0) return;
  size_t n = v->n_dirty - v->d0;
  memmove(v->dirty, v->dirty + v->d0, n * sizeof *v->dirty);
  for (size_t i = 0; i < n; i++) v->dirty[i]->didx = (uint32_t)i;
  v->sorted = v->sorted > v->d0 ? v->sorted - v->d0 : 0;
  v->d0 = 0;
  v->n_dirty = n;
}

int fl_cc_dirty_reserve(cc_view_t *v) {
  if (v->n_dirty + 1 > v->cap_dirty && v->d0) fl_cc_dirty_compact(v);
  return CC_RESERVE(v->c, v->dirty, v->cap_dirty, v->n_dirty + 1);
}

static int dirty_push(cc_view_t *v, cc_item_t *it) {
  int rc = fl_cc_dirty_reserve(v);
  if (rc) return rc;
  it->didx = (uint32_t)v->n_dirty;
  v->dirty[v->n_dirty++] = it;
  return FL_OK;
}

static void dirty_remove(cc_view_t *v, cc_item_t *it) {
  size_t i = it->didx;
  assert(i >= v->d0 && i < v->n_dirty && v->dirty[i] == it);
  if (i == v->d0) {
    v->d0++;
  } else {
    cc_item_t *last = v->dirty[--v->n_dirty];
    v->dirty[i] = last;
    last->didx = (uint32_t)i;
    if (v->sorted > v->n_dirty) v->sorted = v->n_dirty;
  }
  if (v->d0 == v->n_dirty) v->d0 = v->n_dirty = v->sorted = 0;
  it->didx = CC_NO_IDX;
}

cc_item_t *fl_cc_dirty_pop(cc_view_t *v) {
  if (v->d0 == v->n_dirty) return NULL;
  cc_item_t *it = v->dirty[v->d0];
  dirty_remove(v, it);
  it->didx = CC_NO_IDX - 1; /* dirty, in no array */
  if (v->d0 >= 4096 && v->d0 >= v->n_dirty - v->d0) fl_cc_dirty_compact(v);
  return it;
}

int fl_cc_dirty_push_back(cc_view_t *v, cc_item_t *it) {
  assert(it->didx == CC_NO_IDX - 1);
  return dirty_push(v, it);
}

static inline uint32_t cell_table(const cc_item_t *it) {
  return it->type == CC_CHILD ? it->parent->table : it->table;
}

/* Clean -> dirty and back: the store's dirty array, per-table and per-head counts,
 * dirty bytes. */
static void became_dirty(cc_view_t *v, cc_item_t *it) {
  v->tdirty[cell_table(it)]++;
  if (it->type == CC_CHILD) it->parent->u.h.ndirty++;
  v->dirty_bytes += it->acct;
  v->c->dirty_bytes += it->acct;
}

static void became_clean(cc_view_t *v, cc_item_t *it) {
  v->tdirty[cell_table(it)]--;
  if (it->type == CC_CHILD) it->parent->u.h.ndirty--;
  v->dirty_bytes -= it->acct;
  v->c->dirty_bytes -= it->acct;
}

void fl_cc_mark(cc_view_t *v, cc_item_t *it, int st) {
  if (it->didx == CC_NO_IDX) {
    if (dirty_push(v, it)) {
      /* No room to remember it: the write goes to the store at once instead. */
      it->st = (uint8_t)st;
      became_dirty(v, it);
      it->didx = CC_NO_IDX - 1; /* in no array */
      (void)fl_cc_write_one(v, it);
      return;
    }
    became_dirty(v, it);
  }
  it->st = (uint8_t)st;
  if (v->c->dirty_bytes > v->c->dirty_cap) fl_cc_write_ahead(v->c, it);
}

void fl_cc_mark_clean(cc_view_t *v, cc_item_t *it) {
  if (it->didx == CC_NO_IDX) return;
  if (it->didx != CC_NO_IDX - 1) dirty_remove(v, it);
  fl_cc_set_clean(v, it);
}

void fl_cc_set_clean(cc_view_t *v, cc_item_t *it) {
  it->didx = CC_NO_IDX;
  became_clean(v, it);
  it->st = CC_CLEAN;
}

static int ring_push(fl_kv_cache_t *c, cc_item_t *it) {
  if (CC_RESERVE(c, c->ring, c->cap_ring, c->n_ring + 1)) return FL_ENOMEM;
  it->ring = (uint32_t)c->n_ring;
  c->ring[c->n_ring++] = it;
  return FL_OK;
}

/* The last item takes the removed one's place: the hand, standing there, sees it next. */
static void ring_remove(fl_kv_cache_t *c, cc_item_t *it) {
  cc_item_t *last = c->ring[--c->n_ring];
  c->ring[it->ring] = last;
  last->ring = it->ring;
}

/* A zeroed bucket array of n buckets. From 2 MiB on it is aligned to 2 MiB and asks for
 * transparent huge pages: every lookup lands on a random bucket, and with 4 KiB pages
 * most would miss the TLB as well as the CPU cache (dearer still in a virtual machine). */
static cc_item_t **buckets_new(size_t n) {
  size_t bytes = n * sizeof(cc_item_t *);
  void *p = NULL;
  if (bytes < CC_HUGE_PAGE) return calloc(n, sizeof(cc_item_t *));
  if (posix_memalign(&p, CC_HUGE_PAGE, bytes)) return NULL;
  (void)madvise(p, bytes, MADV_HUGEPAGE); /* advice: without it, 4 KiB pages */
  memset(p, 0, bytes);
  return p;
}

static void grow_index(fl_kv_cache_t *c) {
  size_t n = (size_t)c->mask + 1, nn = n * 2;
  if (nn > (size_t)UINT32_MAX + 1) return;
  cc_item_t **b = buckets_new(nn);
  if (!b) return; /* longer chains, still correct */
  for (size_t i = 0; i < n; i++)
    for (cc_item_t *it = c->buckets[i], *next; it; it = next) {
      next = it->hnext;
      cc_item_t **slot = &b[it->hash & (nn - 1)];
      it->hnext = *slot;
      *slot = it;
    }
  free(c->buckets);
  c->buckets = b;
  c->mask = (uint32_t)(nn - 1);
  charge_meta(c, n * sizeof *b, nn * sizeof *b);
}

static void grow_children(fl_kv_cache_t *c, cc_view_t *v, cc_item_t *head) {
  size_t n = head->u.h.tab ? (size_t)head->u.h.mask + 1 : 0, nn = n ? n * 2 : 4;
  cc_item_t **t = calloc(nn, sizeof *t);
  if (!t) return;
  for (size_t i = 0; i < n; i++)
    for (cc_item_t *it = head->u.h.tab[i], *next; it; it = next) {
      next = it->hnext;
      cc_item_t **slot = &t[it->hash & (nn - 1)];
      it->hnext = *slot;
      *slot = it;
    }
  free(head->u.h.tab);
  head->u.h.tab = t;
  head->u.h.mask = (uint32_t)(nn - 1);
  charge(c, v, head, (ptrdiff_t)((nn - n) * sizeof *t));
}

static void unlink_chain(cc_item_t **slot, cc_item_t *it) {
  for (; *slot; slot = &(*slot)->hnext)
    if (*slot == it) {
      *slot = it->hnext;
      return;
    }
  assert(!"item not in its chain");
}

static void free_item(fl_kv_cache_t *c, cc_item_t *it) {
  unpin_all(c, it);
  if (it->type == CC_HEAD)
    free(it->u.h.tab);
  else if (it->flags & CC_HEAP)
    free(it->u.v.p);
  free(it);
}

/* Takes it out of the index (or its head's table), the ring and its store's counts;
 * the caller frees it or keeps it for a write. */
static void detach(fl_kv_cache_t *c, cc_view_t *v, cc_item_t *it) {
  if (it->type == CC_CHILD) {
    cc_item_t *h = it->parent;
    unlink_chain(&h->u.h.tab[it->hash & h->u.h.mask], it);
    h->u.h.n--;
  } else {
    unlink_chain(&c->buckets[it->hash & c->mask], it);
    c->n_items--;
  }
  ring_remove(c, it);
  if (v->last == it) v->last = NULL;
  v->items--;
  c->bytes -= it->acct;
  v->bytes -= it->acct;
}

void fl_cc_remove(cc_view_t *v, cc_item_t *it) {
  fl_kv_cache_t *c = v->c;
  if (it->type == CC_HEAD && it->u.h.tab) {
    for (size_t i = 0; i <= it->u.h.mask; i++)
      while (it->u.h.tab[i]) fl_cc_remove(v, it->u.h.tab[i]);
  }
  fl_cc_mark_clean(v, it);
  detach(c, v, it);
  free_item(c, it);
}

/* Allocates an item with room for key bytes kn and an inline value of vcap. */
static cc_item_t *item_alloc(cc_view_t *v, int type, size_t kn, size_t vcap) {
  size_t size = inline_off(kn) + round16(vcap);
  if (kn > UINT32_MAX || size > UINT32_MAX) return NULL;
  cc_item_t *it = malloc(size);
  if (!it) return NULL;
  memset(it, 0, offsetof(cc_item_t, key));
  it->type = (uint8_t)type;
  it->view = v->id;
  it->didx = CC_NO_IDX;
  it->acct = (uint32_t)(CC_ITEM_FIXED + round16(size));
  if (type != CC_HEAD) {
    it->u.v.icap = it->u.v.cap = (uint32_t)round16(vcap);
  }
  return it;
}

/* Evicts unused items until the cache can take `need` more bytes (down to the low mark
 * when it has to evict at all), writing the dirty ones. An item being worked on is
 * pinned by the caller. The cache may stay above its bound when everything left is
 * pinned. */
static int make_room(fl_kv_cache_t *c, size_t need);

static cc_item_t *item_make(cc_view_t *v, int type, size_t klen, size_t nslen, const void *val,
                            size_t len) {
  fl_kv_cache_t *c = v->c;
  /* A value gets at least 16 bytes of room, so that the put after a read that found
   * nothing, or a small value growing, stays inline. */
  size_t vcap = type == CC_HEAD ? 0 : len < 16 ? 16 : len;
  size_t kn = klen + nslen;
  if (make_room(c, CC_ITEM_FIXED + inline_off(kn) + round16(vcap))) return NULL;
  cc_item_t *it = item_alloc(v, type, kn, vcap);
  if (!it) return NULL;
  if (ring_push(c, it)) {
    free(it);
    return NULL;
  }
  it->klen = (uint32_t)klen;
  it->nslen = (uint32_t)nslen;
  if (type != CC_HEAD) {
    it->u.v.p = inline_p(it);
    it->u.v.len = (uint32_t)len;
    if (len && val)
      memcpy(it->u.v.p, val, len);
    else if (len)
      memset(it->u.v.p, 0, len); /* a new cell of zero bytes (value_ref) */
    if (!val && !len) it->flags |= CC_ABSENT;
  }
  c->bytes += it->acct;
  v->bytes += it->acct;
  v->items++;
  return it;
}

cc_item_t *fl_cc_new_cell(cc_view_t *v, int type, uint32_t table, const fl_kkey_t *k, uint32_t h,
                          const void *val, size_t len) {
  fl_kv_cache_t *c = v->c;
  if (k->key_len > UINT32_MAX || k->ns_len > UINT32_MAX - k->key_len) return NULL;
  cc_item_t *it = item_make(v, type, k->key_len, k->ns_len, val, len);
  if (!it) return NULL;
  it->hash = h;
  it->table = table;
  it->kg = k->kg;
  if (k->key_len) memcpy(it->key, k->key, k->key_len);
  if (k->ns_len) memcpy(it->key + k->key_len, k->ns, k->ns_len);
  cc_item_t **slot = &c->buckets[h & c->mask];
  it->hnext = *slot;
  *slot = it;
  if (++c->n_items > (size_t)c->mask + 1) grow_index(c);
  return it;
}

cc_item_t *fl_cc_new_child(cc_view_t *v, cc_item_t *head, const void *uk, size_t ukl, uint32_t h,
                           const void *val, size_t len) {
  fl_kv_cache_t *c = v->c;
  head->pins++; /* making room must not evict the head it goes under */
  if (!head->u.h.tab || head->u.h.n >= head->u.h.mask + 1) grow_children(c, v, head);
  cc_item_t *it = head->u.h.tab ? item_make(v, CC_CHILD, ukl, 0, val, len) : NULL;
  head->pins--;
  if (!it) return NULL;
  it->hash = h;
  it->parent = head;
  if (ukl) memcpy(it->key, uk, ukl);
  cc_item_t **slot = &head->u.h.tab[h & head->u.h.mask];
  it->hnext = *slot;
  *slot = it;
  head->u.h.n++;
  return it;
}

/* ---------------------------------------------------------------------------------- */
/* Values                                                                               */

/* Moves the value into a heap buffer of ncap bytes holding keep bytes of the old value
 * then len bytes of src (src may point into the old value). */
static int rebuffer(cc_view_t *v, cc_item_t *it, size_t ncap, size_t keep, const void *src,
                    size_t len) {
  fl_kv_cache_t *c = v->c;
  bool heap = (it->flags & CC_HEAP) != 0;
  ptrdiff_t delta = (ptrdiff_t)(round16(ncap) + 16) - (heap ? (ptrdiff_t)(it->u.v.cap + 16) : 0);
  if (delta > 0) {
    it->pins++;
    int rc = make_room(c, (size_t)delta);
    it->pins--;
    if (rc) return rc;
  }
  uint8_t *np = malloc(round16(ncap));
  if (!np) return FL_ENOMEM;
  if (keep) memcpy(np, it->u.v.p, keep);
  if (len) memcpy(np + keep, src, len);
  if (heap) free(it->u.v.p);
  it->u.v.p = np;
  it->u.v.cap = (uint32_t)round16(ncap);
  it->u.v.len = (uint32_t)(keep + len);
  it->flags |= CC_HEAP;
  charge(c, v, it, delta);
  return FL_OK;
}

/* Back to the inline room (len fits it), copying src (which may point anywhere). */
static void to_inline(cc_view_t *v, cc_item_t *it, const void *src, size_t len) {
  uint8_t *ip = inline_p(it);
  if (len) memmove(ip, src, len);
  if (it->flags & CC_HEAP) {
    charge(v->c, v, it, -(ptrdiff_t)(it->u.v.cap + 16));
    free(it->u.v.p);
    it->flags &= (uint8_t)~CC_HEAP;
  }
  it->u.v.p = ip;
  it->u.v.cap = it->u.v.icap;
  it->u.v.len = (uint32_t)len;
}

int fl_cc_set(cc_view_t *v, cc_item_t *it, const void *val, size_t len) {
  if (len <= it->u.v.icap) {
    to_inline(v, it, val, len);
  } else if ((it->flags & CC_HEAP) && len <= it->u.v.cap && len >= it->u.v.cap / 4) {
    memmove(it->u.v.p, val, len);
    it->u.v.len = (uint32_t)len;
  } else {
    int rc = rebuffer(v, it, len, 0, val, len);
    if (rc) return rc;
  }
  it->flags &= (uint8_t) ~(CC_ABSENT | CC_PARTIAL);
  return FL_OK;
}

int fl_cc_append(cc_view_t *v, cc_item_t *it, const void *val, size_t len) {
  size_t old = it->u.v.len, total = old + len;
  if (total <= it->u.v.cap) {
    if (len) memmove(it->u.v.p + old, val, len);
    it->u.v.len = (uint32_t)total;
  } else {
    /* amortised: half as much again as the list holds */
    size_t ncap = total + total / 2;
    if (ncap > v->c->max_item) ncap = total > v->c->max_item ? total : v->c->max_item;
    int rc = rebuffer(v, it, ncap, old, val, len);
    if (rc) return rc;
  }
  it->flags &= (uint8_t)~CC_ABSENT;
  return FL_OK;
}

int fl_cc_prepend(cc_view_t *v, cc_item_t *it, const void *val, size_t len) {
  size_t old = it->u.v.len, total = old + len;
  if (total <= it->u.v.cap) {
    if (old) memmove(it->u.v.p + len, it->u.v.p, old);
    if (len) memcpy(it->u.v.p, val, len);
    it->u.v.len = (uint32_t)total;
    return FL_OK;
  }
  /* the new buffer gets val, then the old value after it */
  fl_kv_cache_t *c = v->c;
  bool heap = (it->flags & CC_HEAP) != 0;
  size_t ncap = round16(total + total / 4);
  ptrdiff_t delta = (ptrdiff_t)(ncap + 16) - (heap ? (ptrdiff_t)(it->u.v.cap + 16) : 0);
  if (delta > 0) {
    it->pins++;
    int rc = make_room(c, (size_t)delta);
    it->pins--;
    if (rc) return rc;
  }
  uint8_t *np = malloc(ncap);
  if (!np) return FL_ENOMEM;
  if (len) memcpy(np, val, len);
  if (old) memcpy(np + len, it->u.v.p, old);
  if (heap) free(it->u.v.p);
  it->u.v.p = np;
  it->u.v.cap = (uint32_t)ncap;
  it->u.v.len = (uint32_t)total;
  it->flags |= CC_HEAP;
  charge(c, v, it, delta);
  return FL_OK;
}

int fl_cc_zero(cc_view_t *v, cc_item_t *it, size_t len) {
  if (len <= it->u.v.icap) {
    to_inline(v, it, NULL, 0);
  } else if (!(it->flags & CC_HEAP) || len > it->u.v.cap) {
    int rc = rebuffer(v, it, len, 0, NULL, 0);
    if (rc) return rc;
  }
  memset(it->u.v.p, 0, len);
  it->u.v.len = (uint32_t)len;
  it->flags &= (uint8_t) ~(CC_ABSENT | CC_PARTIAL);
  return FL_OK;
}

void fl_cc_clear_value(cc_view_t *v, cc_item_t *it) {
  to_inline(v, it, NULL, 0);
  it->u.v.moff = 0;
}

/* ---------------------------------------------------------------------------------- */
/* Eviction                                                                             */

static bool evictable(const cc_item_t *it) {
  if (it->pins) return false;
  if (it->type == CC_HEAD) return it->u.h.n == 0 && !it->u.h.busy;
  if (it->type == CC_CHILD) return !it->parent->u.h.busy;
  return true;
}

static int victims_push(fl_kv_cache_t *c, cc_item_t *it) {
  if (CC_RESERVE(c, c->victims, c->cap_victims, c->n_victims + 1)) return FL_ENOMEM;
  c->victims[c->n_victims++] = it;
  return FL_OK;
}

/* Writes the dirty victims, store by store, then frees every victim. */
static int write_victims(fl_kv_cache_t *c) {
  int rc = FL_OK;
  for (size_t i = 0; i < c->n_victims; i++) {
    cc_item_t *first = c->victims[i];
    if (!first || first->st == CC_CLEAN) continue;
    cc_view_t *v = view_of(c, first);
    /* every dirty victim of this store, in batches */
    size_t n = 0;
    for (size_t j = i; j < c->n_victims; j++) {
      cc_item_t *it = c->victims[j];
      if (!it || it->st == CC_CLEAN || it->view != first->view) continue;
      fl_cc_item_write(it, &c->wb[n++]);
      it->st = CC_CLEAN;
      if (n == CC_BATCH) {
        int x = fl_cc_apply(v, c->wb, n);
        if (x && rc == FL_OK) rc = x;
        n = 0;
      }
    }
    int x = fl_cc_apply(v, c->wb, n);
    if (x && rc == FL_OK) rc = x;
  }
  for (size_t i = 0; i < c->n_victims; i++)
    if (c->victims[i]) free_item(c, c->victims[i]);
  c->n_victims = 0;
  return rc;
}

static void evict(fl_kv_cache_t *c, cc_item_t *it) {
  cc_view_t *v = view_of(c, it);
  int st = it->st;
  if (it->type == CC_CHILD && !(st == CC_CLEAN && (it->flags & CC_ABSENT)))
    it->parent->flags &= (uint8_t)~CC_COMPLETE;
  if (st != CC_CLEAN) v->evicted_dirty++;
  v->evictions++;
  fl_cc_mark_clean(v, it);
  it->st = (uint8_t)st; /* what write_victims writes */
  detach(c, v, it);
  if (victims_push(c, it)) {
    /* no room to defer it: write it now (its head is still alive) */
    if (st != CC_CLEAN) {
      fl_kv_write_t w;
      fl_cc_item_write(it, &w);
      (void)fl_cc_apply(v, &w, 1);
    }
    free_item(c, it);
  }
}

static int make_room(fl_kv_cache_t *c, size_t need) {
  if (c->bytes + need <= c->cap) return FL_OK;
  size_t scanned = 0, limit = 3 * c->n_ring + 16;
  while (c->bytes + need > c->low && c->n_ring > 0 && scanned++ < limit) {
    if (c->hand >= c->n_ring) c->hand = 0;
    cc_item_t *it = c->ring[c->hand];
    if (!evictable(it)) {
      c->hand++;
    } else if (it->flags & CC_REF) {
      it->flags &= (uint8_t)~CC_REF;
      c->hand++;
    } else {
      evict(c, it); /* the ring's last item moves to the hand */
    }
  }
  return write_victims(c);
}

/* ---------------------------------------------------------------------------------- */
/* The cache and its stores                                                             */

int fl_kv_cache_new(size_t bytes, fl_kv_cache_t **out) {
  if (!out) return FL_EINVAL;
  *out = NULL;
  if (bytes < FL_KV_CACHE_MIN_BYTES) return FL_EINVAL;
  fl_kv_cache_t *c = calloc(1, sizeof *c);
  if (!c) return FL_ENOMEM;
  c->cap = bytes;
  c->low = bytes - bytes / 32;
  c->max_item = bytes / 16;
  c->dirty_cap = c->dirty_low = c->dirty_target = SIZE_MAX;
  c->buckets = calloc(CC_MIN_BUCKETS, sizeof *c->buckets);
  if (!c->buckets) {
    free(c);
    return FL_ENOMEM;
  }
  c->mask = CC_MIN_BUCKETS - 1;
  charge_meta(c, 0, CC_MIN_BUCKETS * sizeof *c->buckets);
  *out = c;
  return FL_OK;
}

void fl_kv_cache_destroy(fl_kv_cache_t *c) {
  if (!c) return;
  /* stores are destroyed first; anything left is freed without being written */
  for (size_t i = 0; i < c->n_ring; i++) free_item(c, c->ring[i]);
  free(c->ring);
  free(c->buckets);
  free(c->views);
  free(c->victims);
  free(c);
}

int fl_cc_tables_reserve(cc_view_t *v, uint32_t t) {
  if (t < v->n_tables) return FL_OK;
  if (t >= v->cap_tables) {
    size_t nc = v->cap_tables ? v->cap_tables * 2 : 8;
    while (nc <= t) nc *= 2;
    uint8_t *k = realloc(v->kinds, nc);
    if (!k) return FL_ENOMEM;
    v->kinds = k;
    uint32_t *d = realloc(v->tdirty, nc * sizeof *d);
    if (!d) return FL_ENOMEM;
    v->tdirty = d;
    v->cap_tables = nc;
  }
  memset(v->kinds + v->n_tables, 0, t + 1 - v->n_tables);
  memset(v->tdirty + v->n_tables, 0, (t + 1 - v->n_tables) * sizeof *v->tdirty);
  v->n_tables = t + 1;
  return FL_OK;
}

int fl_kv_cache_wrap(fl_kv_cache_t *c, fl_kv_t *inner, fl_kv_t *out) {
  if (!c || !inner || !inner->ops || !out) return FL_EINVAL;
  size_t id = 0;
  while (id < c->n_views && c->views[id]) id++;
  if (id > UINT16_MAX) return FL_ENOMEM;
  if (id == c->n_views) {
    cc_view_t **p = realloc(c->views, (c->n_views + 1) * sizeof *p);
    if (!p) return FL_ENOMEM;
    c->views = p;
    c->views[c->n_views++] = NULL;
  }
  cc_view_t *v = calloc(1, sizeof *v);
  if (!v) return FL_ENOMEM;
  v->c = c;
  v->id = (uint16_t)id;
  v->inner = *inner;
  c->views[id] = v;
  inner->ops = NULL;
  inner->self = NULL;
  out->ops = &fl_cc_ops;
  out->self = v;
  return FL_OK;
}

/* Removes every item of the store from the cache (not written). A removal moves ring
 * items around, children of a removed head among them: passes go on until one finds
 * nothing. */
void fl_cc_drop_items(cc_view_t *v) {
  fl_kv_cache_t *c = v->c;
  for (bool again = true; again;) {
    again = false;
    for (size_t i = 0; i < c->n_ring;) {
      cc_item_t *it = c->ring[i];
      if (it->view == v->id && it->type != CC_CHILD) {
        fl_cc_remove(v, it); /* another item now stands at i */
        again = true;
      } else {
        i++;
      }
    }
  }
  v->n_dirty = v->d0 = v->sorted = 0;
  v->last = NULL;
  if (v->tdirty) memset(v->tdirty, 0, v->n_tables * sizeof *v->tdirty);
}

void fl_cc_view_destroy(cc_view_t *v) {
  if (!v) return;
  fl_kv_cache_t *c = v->c;
  fl_cc_drop_items(v);
  c->views[v->id] = NULL;
  charge_meta(c, v->cap_dirty * sizeof *v->dirty, 0);
  free(v->dirty);
  free(v->kinds);
  free(v->tdirty);
  fl_kv_destroy(&v->inner);
  free(v);
}

fl_kv_t *fl_kv_cache_inner(fl_kv_t *kv) {
  if (!kv || kv->ops != &fl_cc_ops || !kv->self) return kv;
  return &((cc_view_t *)kv->self)->inner;
}

int fl_kv_cache_drop(fl_kv_t *kv) {
  if (!kv || kv->ops != &fl_cc_ops || !kv->self) return FL_OK;
  cc_view_t *v = kv->self;
  int rc = fl_cc_flush(v);
  if (rc == FL_OK) fl_cc_drop_items(v);
  return rc;
}

int fl_kv_cache_stats(const fl_kv_t *kv, fl_kv_cache_stats_t *out) {
  if (!kv || kv->ops != &fl_cc_ops || !kv->self || !out) return FL_EINVAL;
  const cc_view_t *v = kv->self;
  *out = (fl_kv_cache_stats_t){
      .hits = v->hits,
      .misses = v->misses,
      .evictions = v->evictions,
      .evicted_dirty = v->evicted_dirty,
      .flushes = v->flushes,
      .flush_ns_last = v->flush_ns_last,
      .flush_ns_total = v->flush_ns_total,
      .items = v->items,
      .bytes = v->bytes,
      .dirty_items = v->n_dirty - v->d0,
      .dirty_bytes = v->dirty_bytes,
      .written_ahead = v->written_ahead,
      .cache_bytes = v->c->bytes,
      .capacity = v->c->cap,
  };
  return FL_OK;
}
