/*
 * Timer service: per (domain, key group) a binary min-heap of timers ordered by
 * (ts, seq); per domain a "top" heap over the non-empty key groups ordered by their heads;
 * one open-addressing hash set over all timers for deduplication and O(1) lookup of the
 * timer to delete.
 *
 * Complexity: peek O(1); register, delete and pop O(log n) in the key group's heap plus
 * O(log g) in the top heap; re-registering an existing timer is a hash lookup and
 * allocates nothing, which matters because window operators re-register their window's
 * timer on every element.
 *
 * Memory: a timer is one node holding its key and namespace bytes inline. Small nodes
 * (the usual ids and window namespaces) all have one size and are recycled through a
 * bounded free list, so a steady pop/register cycle does not call malloc. Heap entries
 * copy (ts, seq) next to the node pointer so sifting compares without dereferencing.
 * The hash table and heaps keep their peak size: window operators drain to nearly zero
 * and refill every window, and shrinking on the way down made that cycle twice as slow.
 */
#include "state/timers.h"

#include <assert.h>
#include <stdio.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "state/timers_rocksdb.h"
#include "util/hash.h"

typedef struct tnode {
  uint64_t hash; /* the dedup hash, kept to find the node's slot without rehashing */
  int64_t ts;
  uint32_t pos; /* index in its key group's heap; updated whenever the heap moves it */
  uint32_t key_len;
  uint32_t ns_len;
  uint16_t kg;
  uint8_t domain;
  uint8_t pooled;        /* allocated with POOL_NODE_SIZE bytes: may go back to the free list */
  unsigned char bytes[]; /* key, then ns */
} tnode_t;

/* Sized so a node with key + ns up to 64 bytes fits: covers string/long keys together
 * with a window namespace (16 bytes). */
#define POOL_NODE_SIZE (sizeof(tnode_t) + 64)
/* Bounds what the free list retains after a peak (about 400 KiB). */
#define POOL_MAX 4096

typedef struct free_node {
  struct free_node *next;
} free_node_t;

typedef struct hent {
  int64_t ts;
  uint64_t seq;
  tnode_t *n;
} hent_t;

typedef struct tent {
  int64_t ts;
  uint64_t seq;
  uint32_t kgi; /* key group index relative to kg_first */
} tent_t;

typedef struct kgheap {
  hent_t *heap;
  uint32_t len, cap;
  int32_t top_pos; /* index in the domain's top heap, -1 when the heap is empty */
} kgheap_t;

typedef struct domain {
  kgheap_t *kgs; /* [kg_count] */
  tent_t *top;   /* [kg_count]: at most one entry per key group */
  uint32_t top_len;
  size_t count;
} domain_t;

typedef struct hslot {
  uint64_t hash;
  tnode_t *n; /* NULL: empty */
} hslot_t;

struct fl_timers {
  fl_rtimers_t *rdb; /* kept in a RocksDB store: every call goes there (timers_rocksdb.c) */
  uint32_t kg_first, kg_count;
  uint64_t next_seq;
  domain_t dom[2];
  hslot_t *slots; /* power-of-two capacity, load <= 1/2, linear probing */
  size_t slot_mask;
  size_t n_timers;
  free_node_t *pool;
  size_t pool_len;
  unsigned char *scratch; /* the last popped timer's key and ns */
  size_t scratch_cap;     /* >= the largest key+ns registered, so pop cannot fail */
  /* A scratch buffer replaced by a register that needed more room. It still holds the
   * last popped timer's bytes, which an on_timer callback keeps using (and may pass back
   * to register) after registering timers, so it lives until the next pop. */
  unsigned char *retired;
};

#define HSET_INITIAL 64
#define SCRATCH_INITIAL 64

/* ---------------------------------------------------------------------------------- */
/* Nodes                                                                              */

static tnode_t *node_alloc(fl_timers_t *t, size_t nbytes) {
  tnode_t *n = NULL;
  size_t size = sizeof(tnode_t) + nbytes;
  if (size <= POOL_NODE_SIZE) {
    if (t->pool) {
      free_node_t *f = t->pool;
      t->pool = f->next;
      t->pool_len--;
      n = (tnode_t *)(void *)f;
    } else {
      n = malloc(POOL_NODE_SIZE);
    }
    if (n) n->pooled = 1;
  } else {
    n = malloc(size);
    if (n) n->pooled = 0;
  }
  return n;
}

static void node_free(fl_timers_t *t, tnode_t *n) {
  if (n->pooled && t->pool_len < POOL_MAX) {
    free_node_t *f = (free_node_t *)(void *)n;
    f->next = t->pool;
    t->pool = f;
    t->pool_len++;
  } else {
    free(n);
  }
}

/* ---------------------------------------------------------------------------------- */
/* Hash set                                                                           */

static uint64_t timer_hash(fl_time_domain_t d, uint16_t kg, const void *key, size_t key_len,
                           const void *ns, size_t ns_len, int64_t ts) {
  /* Chained: the key hash (seeded by ts) seeds the namespace hash together with the key
   * group and domain. fl_hash64 mixes each length in, so the split between key and ns
   * bytes is part of the hash too. */
  uint64_t h = fl_hash64(key, key_len, (uint64_t)ts);
  return fl_hash64(ns, ns_len, h ^ (((uint64_t)kg << 1) | (uint64_t)d));
}

static bool node_matches(const tnode_t *n, fl_time_domain_t d, uint16_t kg, const void *key,
                         size_t key_len, const void *ns, size_t ns_len, int64_t ts) {
  return n->ts == ts && n->kg == kg && n->domain == (uint8_t)d && n->key_len == key_len &&
         n->ns_len == ns_len && (key_len == 0 || memcmp(n->bytes, key, key_len) == 0) &&
         (ns_len == 0 || memcmp(n->bytes + key_len, ns, ns_len) == 0);
}

/* The slot holding the timer (true), or the empty slot where it would go (false). */
static bool hset_find(const fl_timers_t *t, uint64_t h, fl_time_domain_t d, uint16_t kg,
                      const void *key, size_t key_len, const void *ns, size_t ns_len, int64_t ts,
                      size_t *slot) {
  size_t mask = t->slot_mask;
  size_t i = (size_t)h & mask;
  for (;;) {
    const hslot_t *s = &t->slots[i];
    if (!s->n) break;
    if (s->hash == h && node_matches(s->n, d, kg, key, key_len, ns, ns_len, ts)) {
      *slot = i;
      return true;
    }
    i = (i + 1) & mask;
  }
  *slot = i;
  return false;
}

static size_t hset_empty_slot(const fl_timers_t *t, uint64_t h) {
  size_t i = (size_t)h & t->slot_mask;
  while (t->slots[i].n) i = (i + 1) & t->slot_mask;
  return i;
}

static int hset_resize(fl_timers_t *t, size_t cap) {
  size_t old_cap = t->slot_mask + 1;
  hslot_t *old = t->slots;
  hslot_t *slots = calloc(cap, sizeof *slots);
  if (!slots) return FL_ENOMEM;
  t->slots = slots;
  t->slot_mask = cap - 1;
  for (size_t i = 0; i < old_cap; i++) {
    if (old[i].n) t->slots[hset_empty_slot(t, old[i].hash)] = old[i];
  }
  free(old);
  return 0;
}

/* Removes slot i, shifting later members of its probe run back so lookups need no
 * tombstones. */
static void hset_remove_at(fl_timers_t *t, size_t i) {
  size_t mask = t->slot_mask;
  size_t j = i;
  for (;;) {
    j = (j + 1) & mask;
    if (!t->slots[j].n) break;
    size_t home = (size_t)t->slots[j].hash & mask;
    /* The entry at j may fill the hole at i only if its home is not in (i, j]. */
    if (((j - home) & mask) >= ((j - i) & mask)) {
      t->slots[i] = t->slots[j];
      i = j;
    }
  }
  t->slots[i].n = NULL;
  t->n_timers--;
}

static void hset_remove_node(fl_timers_t *t, const tnode_t *n) {
  size_t i = (size_t)n->hash & t->slot_mask;
  while (t->slots[i].n != n) {
    assert(t->slots[i].n);
    i = (i + 1) & t->slot_mask;
  }
  hset_remove_at(t, i);
}

/* ---------------------------------------------------------------------------------- */
/* Heaps                                                                              */

static inline bool before(int64_t ts_a, uint64_t seq_a, int64_t ts_b, uint64_t seq_b) {
  return ts_a < ts_b || (ts_a == ts_b && seq_a < seq_b);
}

static void kg_sift_up(kgheap_t *k, uint32_t i) {
  hent_t e = k->heap[i];
  while (i > 0) {
    uint32_t p = (i - 1) / 2;
    if (!before(e.ts, e.seq, k->heap[p].ts, k->heap[p].seq)) break;
    k->heap[i] = k->heap[p];
    k->heap[i].n->pos = i;
    i = p;
  }
  k->heap[i] = e;
  e.n->pos = i;
}

static void kg_sift_down(kgheap_t *k, uint32_t i) {
  hent_t e = k->heap[i];
  uint32_t len = k->len;
  for (;;) {
    uint32_t c = 2 * i + 1;
    if (c >= len) break;
    if (c + 1 < len && before(k->heap[c + 1].ts, k->heap[c + 1].seq, k->heap[c].ts, k->heap[c].seq))
      c++;
    if (!before(k->heap[c].ts, k->heap[c].seq, e.ts, e.seq)) break;
    k->heap[i] = k->heap[c];
    k->heap[i].n->pos = i;
    i = c;
  }
  k->heap[i] = e;
  e.n->pos = i;
}

static void kg_remove_at(kgheap_t *k, uint32_t i) {
  assert(i < k->len);
  uint32_t last = --k->len;
  if (i != last) {
    k->heap[i] = k->heap[last];
    if (i > 0 &&
        before(k->heap[i].ts, k->heap[i].seq, k->heap[(i - 1) / 2].ts, k->heap[(i - 1) / 2].seq))
      kg_sift_up(k, i);
    else
      kg_sift_down(k, i);
  }
}

static inline void top_set(domain_t *dm, uint32_t i, tent_t e) {
  dm->top[i] = e;
  dm->kgs[e.kgi].top_pos = (int32_t)i;
}

static void top_sift_up(domain_t *dm, uint32_t i) {
  tent_t e = dm->top[i];
  while (i > 0) {
    uint32_t p = (i - 1) / 2;
    if (!before(e.ts, e.seq, dm->top[p].ts, dm->top[p].seq)) break;
    top_set(dm, i, dm->top[p]);
    i = p;
  }
  top_set(dm, i, e);
}

static void top_sift_down(domain_t *dm, uint32_t i) {
  tent_t e = dm->top[i];
  uint32_t len = dm->top_len;
  for (;;) {
    uint32_t c = 2 * i + 1;
    if (c >= len) break;
    if (c + 1 < len && before(dm->top[c + 1].ts, dm->top[c + 1].seq, dm->top[c].ts, dm->top[c].seq))
      c++;
    if (!before(dm->top[c].ts, dm->top[c].seq, e.ts, e.seq)) break;
    top_set(dm, i, dm->top[c]);
    i = c;
  }
  top_set(dm, i, e);
}

static void top_reposition(domain_t *dm, uint32_t i) {
  if (i > 0 &&
      before(dm->top[i].ts, dm->top[i].seq, dm->top[(i - 1) / 2].ts, dm->top[(i - 1) / 2].seq))
    top_sift_up(dm, i);
  else
    top_sift_down(dm, i);
}

/* Brings the top heap in line with key group kgi's (possibly changed) head. */
static void top_fix(domain_t *dm, uint32_t kgi) {
  kgheap_t *k = &dm->kgs[kgi];
  if (k->len == 0) {
    if (k->top_pos >= 0) {
      uint32_t i = (uint32_t)k->top_pos;
      uint32_t last = --dm->top_len;
      k->top_pos = -1;
      if (i != last) {
        top_set(dm, i, dm->top[last]);
        top_reposition(dm, i);
      }
    }
    return;
  }
  tent_t e = {k->heap[0].ts, k->heap[0].seq, kgi};
  if (k->top_pos < 0) {
    uint32_t i = dm->top_len++;
    top_set(dm, i, e);
    top_sift_up(dm, i);
  } else {
    uint32_t i = (uint32_t)k->top_pos;
    top_set(dm, i, e);
    top_reposition(dm, i);
  }
}

/* ---------------------------------------------------------------------------------- */
/* Public                                                                             */

fl_timers_t *fl_timers_new(uint32_t kg_first, uint32_t kg_count) {
  fl_timers_t *t = NULL;
  bool ok = false;
  /* Key groups are uint16_t; a range beyond that cannot be addressed. */
  if ((uint64_t)kg_first + kg_count > (uint64_t)UINT16_MAX + 1) goto done;
  t = calloc(1, sizeof *t);
  if (!t) goto done;
  t->kg_first = kg_first;
  t->kg_count = kg_count;
  for (int d = 0; d < 2; d++) {
    /* +1 keeps the allocations non-empty (and non-NULL) for kg_count == 0. */
    t->dom[d].kgs = calloc((size_t)kg_count + 1, sizeof(kgheap_t));
    t->dom[d].top = calloc((size_t)kg_count + 1, sizeof(tent_t));
    if (!t->dom[d].kgs || !t->dom[d].top) goto done;
    for (uint32_t i = 0; i < kg_count; i++) t->dom[d].kgs[i].top_pos = -1;
  }
  t->slots = calloc(HSET_INITIAL, sizeof *t->slots);
  t->scratch = malloc(SCRATCH_INITIAL);
  if (!t->slots || !t->scratch) goto done;
  t->slot_mask = HSET_INITIAL - 1;
  t->scratch_cap = SCRATCH_INITIAL;
  ok = true;
done:
  if (!ok) {
    fl_timers_destroy(t);
    t = NULL;
  }
  return t;
}

fl_timers_t *fl_timers_new_rocksdb(fl_kv_t *kv, uint32_t kg_first, uint32_t kg_count, size_t cache,
                                   char *err, size_t err_size) {
  fl_timers_t *t = calloc(1, sizeof *t);
  if (!t) {
    if (err && err_size) snprintf(err, err_size, "out of memory");
    return NULL;
  }
  if (fl_rtimers_new(kv, kg_first, kg_count, cache, &t->rdb, err, err_size)) {
    free(t);
    return NULL;
  }
  t->kg_first = kg_first;
  t->kg_count = kg_count;
  return t;
}

void fl_timers_destroy(fl_timers_t *t) {
  if (!t) return;
  if (t->rdb) {
    fl_rtimers_destroy(t->rdb);
    free(t);
    return;
  }
  for (int d = 0; d < 2; d++) {
    if (t->dom[d].kgs) {
      for (uint32_t i = 0; i < t->kg_count; i++) {
        kgheap_t *k = &t->dom[d].kgs[i];
        for (uint32_t j = 0; j < k->len; j++) free(k->heap[j].n);
        free(k->heap);
      }
    }
    free(t->dom[d].kgs);
    free(t->dom[d].top);
  }
  while (t->pool) {
    free_node_t *f = t->pool;
    t->pool = f->next;
    free(f);
  }
  free(t->slots);
  free(t->scratch);
  free(t->retired);
  free(t);
}

static bool args_valid(const fl_timers_t *t, fl_time_domain_t d, uint16_t kg, const void *key,
                       size_t key_len, const void *ns, size_t ns_len) {
  return t && (d == FL_EVENT_TIME || d == FL_PROCESSING_TIME) && kg >= t->kg_first &&
         (uint32_t)kg - t->kg_first < t->kg_count && (key || key_len == 0) && (ns || ns_len == 0) &&
         key_len <= UINT32_MAX && ns_len <= UINT32_MAX &&
         key_len + ns_len <= SIZE_MAX - sizeof(tnode_t);
}

int fl_timers_register(fl_timers_t *t, fl_time_domain_t d, uint16_t kg, const void *key,
                       size_t key_len, const void *ns, size_t ns_len, int64_t ts) {
  if (t && t->rdb) return fl_rtimers_register(t->rdb, d, kg, key, key_len, ns, ns_len, ts);
  if (!args_valid(t, d, kg, key, key_len, ns, ns_len)) return FL_EINVAL;
  uint64_t h = timer_hash(d, kg, key, key_len, ns, ns_len, ts);
  size_t slot;
  if (hset_find(t, h, d, kg, key, key_len, ns, ns_len, ts, &slot)) return 0;

  /* Reserve everything first so that a failure leaves the service unchanged. */
  domain_t *dm = &t->dom[d];
  uint32_t kgi = (uint32_t)kg - t->kg_first;
  kgheap_t *k = &dm->kgs[kgi];
  size_t nbytes = key_len + ns_len;
  if ((t->n_timers + 1) * 2 > t->slot_mask + 1) {
    if (hset_resize(t, (t->slot_mask + 1) * 2) != 0) return FL_ENOMEM;
    slot = hset_empty_slot(t, h);
  }
  if (k->len == k->cap) {
    if (k->cap == UINT32_MAX) return FL_ENOMEM;
    uint32_t cap = k->cap ? (k->cap > UINT32_MAX / 2 ? UINT32_MAX : k->cap * 2) : 4;
    hent_t *heap = realloc(k->heap, (size_t)cap * sizeof *heap);
    if (!heap) return FL_ENOMEM;
    k->heap = heap;
    k->cap = cap;
  }
  if (nbytes > t->scratch_cap) {
    size_t cap = t->scratch_cap;
    while (cap < nbytes) cap = cap > SIZE_MAX / 2 ? nbytes : cap * 2;
    unsigned char *s = malloc(cap);
    if (!s) return FL_ENOMEM;
    /* Only the first replacement since the last pop holds popped bytes; later ones were
     * never handed out. */
    if (t->retired)
      free(t->scratch);
    else
      t->retired = t->scratch;
    t->scratch = s;
    t->scratch_cap = cap;
  }
  tnode_t *n = node_alloc(t, nbytes);
  if (!n) return FL_ENOMEM;

  n->hash = h;
  n->ts = ts;
  n->key_len = (uint32_t)key_len;
  n->ns_len = (uint32_t)ns_len;
  n->kg = kg;
  n->domain = (uint8_t)d;
  if (key_len) memcpy(n->bytes, key, key_len);
  if (ns_len) memcpy(n->bytes + key_len, ns, ns_len);

  t->slots[slot].hash = h;
  t->slots[slot].n = n;
  t->n_timers++;

  uint32_t i = k->len++;
  k->heap[i] = (hent_t){ts, t->next_seq++, n};
  kg_sift_up(k, i);
  if (n->pos == 0) top_fix(dm, kgi);
  dm->count++;
  return 0;
}

int fl_timers_delete(fl_timers_t *t, fl_time_domain_t d, uint16_t kg, const void *key,
                     size_t key_len, const void *ns, size_t ns_len, int64_t ts) {
  if (t && t->rdb) return fl_rtimers_delete(t->rdb, d, kg, key, key_len, ns, ns_len, ts);
  if (!args_valid(t, d, kg, key, key_len, ns, ns_len)) return FL_EINVAL;
  uint64_t h = timer_hash(d, kg, key, key_len, ns, ns_len, ts);
  size_t slot;
  if (!hset_find(t, h, d, kg, key, key_len, ns, ns_len, ts, &slot)) return 0;
  tnode_t *n = t->slots[slot].n;
  domain_t *dm = &t->dom[d];
  uint32_t kgi = (uint32_t)kg - t->kg_first;
  kgheap_t *k = &dm->kgs[kgi];
  const tnode_t *old_head = k->heap[0].n;

  hset_remove_at(t, slot);
  kg_remove_at(k, n->pos);
  if (k->len == 0 || k->heap[0].n != old_head) top_fix(dm, kgi);
  dm->count--;
  node_free(t, n);
  return 0;
}

int fl_timers_peek(const fl_timers_t *t, fl_time_domain_t d, int64_t *ts) {
  if (!t || !ts || (d != FL_EVENT_TIME && d != FL_PROCESSING_TIME)) return 0;
  if (t->rdb) return fl_rtimers_peek(t->rdb, d, ts);
  const domain_t *dm = &t->dom[d];
  if (dm->top_len == 0) return 0;
  *ts = dm->top[0].ts;
  return 1;
}

int fl_timers_pop(fl_timers_t *t, fl_time_domain_t d, int64_t upto, fl_timer_t *out) {
  if (!t || !out || (d != FL_EVENT_TIME && d != FL_PROCESSING_TIME)) return 0;
  if (t->rdb) return fl_rtimers_pop(t->rdb, d, upto, out);
  domain_t *dm = &t->dom[d];
  if (dm->top_len == 0 || dm->top[0].ts > upto) return 0;
  uint32_t kgi = dm->top[0].kgi;
  kgheap_t *k = &dm->kgs[kgi];
  tnode_t *n = k->heap[0].n;
  assert(n->pos == 0 && k->heap[0].ts == dm->top[0].ts);

  hset_remove_node(t, n);
  kg_remove_at(k, 0);
  top_fix(dm, kgi);
  dm->count--;

  free(t->retired);
  t->retired = NULL;
  size_t nbytes = (size_t)n->key_len + n->ns_len;
  assert(nbytes <= t->scratch_cap);
  if (nbytes) memcpy(t->scratch, n->bytes, nbytes);
  out->ts = n->ts;
  out->kg = n->kg;
  out->key = t->scratch;
  out->key_len = n->key_len;
  out->ns = t->scratch + n->key_len;
  out->ns_len = n->ns_len;
  node_free(t, n);
  return 1;
}

size_t fl_timers_count(const fl_timers_t *t, fl_time_domain_t d) {
  if (!t || (d != FL_EVENT_TIME && d != FL_PROCESSING_TIME)) return 0;
  if (t->rdb) return fl_rtimers_count(t->rdb, d);
  return t->dom[d].count;
}

size_t fl_timers_in_memory(const fl_timers_t *t) {
  if (!t) return 0;
  if (t->rdb) return fl_rtimers_cached(t->rdb);
  return t->dom[0].count + t->dom[1].count;
}

bool fl_timers_in_store(const fl_timers_t *t) { return t && t->rdb; }

const char *fl_timers_errmsg(const fl_timers_t *t) {
  return t && t->rdb ? fl_rtimers_errmsg(t->rdb) : "";
}

int fl_timers_foreach(const fl_timers_t *t, fl_time_domain_t d,
                      int (*cb)(const fl_timer_t *tm, uint64_t seq, void *arg), void *arg) {
  if (!t || !cb || (d != FL_EVENT_TIME && d != FL_PROCESSING_TIME)) return FL_EINVAL;
  if (t->rdb) return fl_rtimers_foreach(t->rdb, d, cb, arg);
  const domain_t *dm = &t->dom[d];
  for (uint32_t g = 0; g < t->kg_count; g++) {
    const kgheap_t *k = &dm->kgs[g];
    for (uint32_t i = 0; i < k->len; i++) {
      const tnode_t *n = k->heap[i].n;
      fl_timer_t tm = {.ts = n->ts,
                       .kg = n->kg,
                       .key = n->bytes,
                       .key_len = n->key_len,
                       .ns = n->bytes + n->key_len,
                       .ns_len = n->ns_len};
      int rc = cb(&tm, k->heap[i].seq, arg);
      if (rc) return rc;
    }
  }
  return FL_OK;
}

/* The heap's firing order: (ts, seq) of every timer, sorted. 24 bytes a timer, beside
 * the timers themselves, for as long as the walk lasts. */
typedef struct ord {
  int64_t ts;
  uint64_t seq;
  const tnode_t *n;
} ord_t;

static int cmp_ord(const void *a, const void *b) {
  const ord_t *x = a, *y = b;
  if (x->ts != y->ts) return x->ts < y->ts ? -1 : 1;
  return (x->seq > y->seq) - (x->seq < y->seq);
}

int fl_timers_foreach_ordered(const fl_timers_t *t, fl_time_domain_t d,
                              int (*cb)(const fl_timer_t *tm, uint64_t seq, void *arg), void *arg) {
  if (!t || !cb || (d != FL_EVENT_TIME && d != FL_PROCESSING_TIME)) return FL_EINVAL;
  if (t->rdb) return fl_rtimers_foreach(t->rdb, d, cb, arg);
  const domain_t *dm = &t->dom[d];
  if (dm->count == 0) return FL_OK;
  ord_t *v = malloc(dm->count * sizeof *v);
  if (!v) return FL_ENOMEM;
  size_t n = 0;
  for (uint32_t g = 0; g < t->kg_count; g++)
    for (uint32_t i = 0; i < dm->kgs[g].len; i++)
      v[n++] = (ord_t){dm->kgs[g].heap[i].ts, dm->kgs[g].heap[i].seq, dm->kgs[g].heap[i].n};
  qsort(v, n, sizeof *v, cmp_ord);
  int rc = FL_OK;
  for (size_t i = 0; i < n && !rc; i++) {
    const tnode_t *x = v[i].n;
    fl_timer_t tm = {.ts = x->ts,
                     .kg = x->kg,
                     .key = x->bytes,
                     .key_len = x->key_len,
                     .ns = x->bytes + x->key_len,
                     .ns_len = x->ns_len};
    rc = cb(&tm, v[i].seq, arg);
  }
  free(v);
  return rc;
}
