/*
 * Timers kept in the operator's RocksDB store (state.backend.rocksdb.timer-service.factory
 * ROCKSDB, Flink's default), with a small cache of each key group's earliest timers in
 * memory, as Flink's RocksDB priority queue does.
 *
 * Layout. One column family, "_timers" (rocksdb_internal.h), holds every timer of the
 * store as a key with an empty value:
 *     [u8 domain][u16 kg, big-endian][u64 ts ^ 2^63, big-endian][u32 key len, big-endian]
 *     [key][namespace]
 * so that RocksDB's bytewise order is, within one (domain, key group), the firing order:
 * timestamp, then key length, key bytes and namespace bytes. Being a column family of
 * the store, the timers are part of every native copy of it (incremental checkpoints)
 * without anything more; a canonical snapshot walks them (fl_timers_foreach).
 *
 * Cache. For every (domain, key group) a sorted array holds the `cache` smallest timers
 * of that key group (all of them while it has no more: `complete`). Invariant: the
 * array is exactly the smallest n of the key group's timers, and it is empty only when
 * the key group has none. A timer below the array's last entry (or any timer while the
 * key group is complete) goes into the array and into RocksDB; one above it goes to
 * RocksDB only; an array that grows past `cache` drops its last entry (which stays in
 * RocksDB) and is no longer complete; an array that empties while incomplete is refilled
 * from RocksDB, seeking past the last timer it removed so that the tombstones of fired
 * timers are not walked again. Per domain a heap over the key groups' first entries
 * gives the earliest timer. So peek never reads RocksDB, and neither do registering a
 * timer that is already cached and the pops of a key group until its array empties.
 *
 * Writes. Puts and deletes go into a write batch of up to 512, written when it is full
 * and before anything reads the column family: a refill, a walk, or a native copy of
 * the store (the store calls the service first: rdb_t.before_copy).
 *
 * Deduplication. A timer already in the array is not written again; one beyond the
 * array is written blindly (a put of an existing key changes nothing), and deleting a
 * timer that cannot exist (below the array's last entry but not in it, or in a complete
 * key group) touches nothing. The number of timers is not tracked, since that would take
 * a read per registration: fl_timers_count walks the column family.
 *
 * Memory: at most cache entries per (domain, key group) of the range, each the RocksDB
 * key (19 bytes + key + namespace) and 8 bytes, plus the heaps over key groups.
 */
#define _GNU_SOURCE
#include "state/timers_rocksdb.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <rocksdb/c.h>

#include "state/rocksdb_internal.h"

#define RT_HDR 15u /* domain, kg, ts, key length */
#define RT_TS_OFF 3u
#define RT_KLEN_OFF 11u
/* Timer writes batched before they go to RocksDB together. */
#define RT_BATCH 512

typedef struct rt_ent {
  unsigned char *rk; /* the RocksDB key */
  uint32_t len;
} rt_ent_t;

typedef struct rt_kg {
  rt_ent_t *v; /* ascending; grown on demand up to cache + 1 entries */
  uint32_t n, cap;
  bool complete;        /* RocksDB holds no timer of this key group that v does not */
  int32_t top;          /* position in the domain's heap, -1: not in it */
  unsigned char *after; /* refills seek past this key (the last one removed), or NULL */
  uint32_t after_len;
} rt_kg_t;

typedef struct rt_dom {
  rt_kg_t *kgs;
  uint32_t *heap; /* key group indices, ordered by their first entry */
  uint32_t heap_len;
} rt_dom_t;

struct fl_rtimers {
  rdb_t *r;
  rocksdb_column_family_handle_t *cf;
  uint32_t kg_first, kg_count;
  uint32_t cache;
  rt_dom_t dom[2];
  size_t cached;     /* entries in all arrays */
  unsigned char *kb; /* the key being built */
  size_t kb_cap;
  unsigned char *popped; /* the last popped timer's key and namespace */
  size_t popped_cap;
  rocksdb_writebatch_t *batch; /* puts and deletes not written yet */
  size_t batch_n;
  char err[1024];
};

/* ---------------------------------------------------------------------------------- */
/* Keys                                                                                 */

static void put_be(unsigned char *p, uint64_t v, int n) {
  for (int i = n - 1; i >= 0; i--) {
    p[i] = (unsigned char)v;
    v >>= 8;
  }
}

static uint64_t get_be(const unsigned char *p, int n) {
  uint64_t v = 0;
  for (int i = 0; i < n; i++) v = v << 8 | p[i];
  return v;
}

static int64_t rk_ts(const unsigned char *rk) {
  return (int64_t)(get_be(rk + RT_TS_OFF, 8) ^ (UINT64_C(1) << 63));
}

/* Builds the key of a timer into t->kb; its length in *len. */
static int build_key(fl_rtimers_t *t, fl_time_domain_t d, uint16_t kg, const void *key,
                     size_t key_len, const void *ns, size_t ns_len, int64_t ts, uint32_t *len) {
  if (key_len > UINT32_MAX - RT_HDR || ns_len > UINT32_MAX - RT_HDR - key_len) return FL_EINVAL;
  size_t n = RT_HDR + key_len + ns_len;
  if (n > t->kb_cap) {
    unsigned char *p = realloc(t->kb, n);
    if (!p) return FL_ENOMEM;
    t->kb = p;
    t->kb_cap = n;
  }
  t->kb[0] = (unsigned char)d;
  put_be(t->kb + 1, kg, 2);
  put_be(t->kb + RT_TS_OFF, (uint64_t)ts ^ (UINT64_C(1) << 63), 8);
  put_be(t->kb + RT_KLEN_OFF, key_len, 4);
  copy_bytes(t->kb + RT_HDR, key, key_len);
  copy_bytes(t->kb + RT_HDR + key_len, ns, ns_len);
  *len = (uint32_t)n;
  return FL_OK;
}

/* A stored key taken apart; false for one this service did not write. */
static bool parse_key(const unsigned char *rk, size_t n, fl_timer_t *out, int *domain) {
  if (n < RT_HDR || rk[0] > 1) return false;
  uint64_t kl = get_be(rk + RT_KLEN_OFF, 4);
  if (kl > n - RT_HDR) return false;
  *domain = rk[0];
  out->kg = (uint16_t)get_be(rk + 1, 2);
  out->ts = rk_ts(rk);
  out->key = rk + RT_HDR;
  out->key_len = (size_t)kl;
  out->ns = rk + RT_HDR + kl;
  out->ns_len = n - RT_HDR - (size_t)kl;
  return true;
}

static int cmp_keys(const unsigned char *a, uint32_t al, const unsigned char *b, uint32_t bl) {
  int c = memcmp(a, b, al < bl ? al : bl);
  return c ? c : (al > bl) - (al < bl);
}

/* Global order of two key groups' first entries: timestamp, then key group, then the
 * rest of the key. */
static bool head_before(const rt_ent_t *a, const rt_ent_t *b) {
  int64_t ta = rk_ts(a->rk), tb = rk_ts(b->rk);
  if (ta != tb) return ta < tb;
  int c = memcmp(a->rk + 1, b->rk + 1, 2);
  if (c) return c < 0;
  return cmp_keys(a->rk + RT_KLEN_OFF, a->len - RT_KLEN_OFF, b->rk + RT_KLEN_OFF,
                  b->len - RT_KLEN_OFF) < 0;
}

/* ---------------------------------------------------------------------------------- */
/* The heap over key groups                                                             */

static bool kg_before(rt_dom_t *dm, uint32_t a, uint32_t b) {
  return head_before(&dm->kgs[a].v[0], &dm->kgs[b].v[0]);
}

static void heap_set(rt_dom_t *dm, uint32_t i, uint32_t kgi) {
  dm->heap[i] = kgi;
  dm->kgs[kgi].top = (int32_t)i;
}

static void heap_up(rt_dom_t *dm, uint32_t i) {
  uint32_t e = dm->heap[i];
  while (i > 0) {
    uint32_t p = (i - 1) / 2;
    if (!kg_before(dm, e, dm->heap[p])) break;
    heap_set(dm, i, dm->heap[p]);
    i = p;
  }
  heap_set(dm, i, e);
}

static void heap_down(rt_dom_t *dm, uint32_t i) {
  uint32_t e = dm->heap[i];
  for (;;) {
    uint32_t c = 2 * i + 1;
    if (c >= dm->heap_len) break;
    if (c + 1 < dm->heap_len && kg_before(dm, dm->heap[c + 1], dm->heap[c])) c++;
    if (!kg_before(dm, dm->heap[c], e)) break;
    heap_set(dm, i, dm->heap[c]);
    i = c;
  }
  heap_set(dm, i, e);
}

/* Brings the heap in line with key group kgi's (possibly changed) first entry. */
static void heap_fix(rt_dom_t *dm, uint32_t kgi) {
  rt_kg_t *k = &dm->kgs[kgi];
  if (k->n == 0) {
    if (k->top >= 0) {
      uint32_t i = (uint32_t)k->top, last = --dm->heap_len;
      k->top = -1;
      if (i != last) {
        heap_set(dm, i, dm->heap[last]);
        heap_up(dm, i);
        heap_down(dm, (uint32_t)dm->kgs[dm->heap[i]].top);
      }
    }
    return;
  }
  if (k->top < 0) {
    uint32_t i = dm->heap_len++;
    heap_set(dm, i, kgi);
    heap_up(dm, i);
  } else {
    uint32_t i = (uint32_t)k->top;
    heap_up(dm, i);
    heap_down(dm, (uint32_t)k->top);
  }
}

/* ---------------------------------------------------------------------------------- */
/* The arrays                                                                           */

/* The first position whose entry is >= key; *found when it is equal. */
static uint32_t lower_bound(const rt_kg_t *k, const unsigned char *key, uint32_t len, bool *found) {
  uint32_t lo = 0, hi = k->n;
  while (lo < hi) {
    uint32_t mid = lo + (hi - lo) / 2;
    if (cmp_keys(k->v[mid].rk, k->v[mid].len, key, len) < 0)
      lo = mid + 1;
    else
      hi = mid;
  }
  *found = lo < k->n && cmp_keys(k->v[lo].rk, k->v[lo].len, key, len) == 0;
  return lo;
}

/* Makes room for one more entry: arrays grow as their key group fills, so that the many
 * key groups of a large max parallelism cost little while they are empty. */
static int arr_room(const fl_rtimers_t *t, rt_kg_t *k) {
  if (k->n < k->cap) return FL_OK;
  uint32_t cap = k->cap ? k->cap * 2 : 4;
  if (cap > t->cache + 1) cap = t->cache + 1;
  rt_ent_t *v = realloc(k->v, (size_t)cap * sizeof *v);
  if (!v) return FL_ENOMEM;
  k->v = v;
  k->cap = cap;
  return FL_OK;
}

/* Inserts an entry owning rk at pos (arr_room made room for it). */
static void arr_insert(fl_rtimers_t *t, rt_kg_t *k, uint32_t pos, unsigned char *rk, uint32_t len) {
  memmove(&k->v[pos + 1], &k->v[pos], (size_t)(k->n - pos) * sizeof *k->v);
  k->v[pos] = (rt_ent_t){rk, len};
  k->n++;
  t->cached++;
  if (k->n > t->cache) { /* the last one lives on in RocksDB only */
    free(k->v[--k->n].rk);
    t->cached--;
    k->complete = false;
  }
}

/* Removes the entry at pos; the removed key becomes where a refill starts. */
static void arr_remove(fl_rtimers_t *t, rt_kg_t *k, uint32_t pos) {
  free(k->after);
  k->after = k->v[pos].rk;
  k->after_len = k->v[pos].len;
  memmove(&k->v[pos], &k->v[pos + 1], (size_t)(k->n - pos - 1) * sizeof *k->v);
  k->n--;
  t->cached--;
}

static int rt_fail(fl_rtimers_t *t, char *e, const char *what) {
  snprintf(t->err, sizeof t->err, "rocksdb timers: %s in '%s' failed: %s", what, t->r->dir,
           e ? e : "unknown error");
  int rc = e && strstr(e, "Memory limit") ? FL_ENOMEM : FL_EIO;
  free(e);
  return rc;
}

static int flush(fl_rtimers_t *t);

/* Loads the smallest timers of an empty, incomplete key group from RocksDB. */
static int refill(fl_rtimers_t *t, fl_time_domain_t d, uint32_t kgi) {
  int frc = flush(t);
  if (frc) return frc;
  rt_kg_t *k = &t->dom[d].kgs[kgi];
  uint32_t kg = t->kg_first + kgi;
  unsigned char lo[3], hi[3];
  lo[0] = (unsigned char)d;
  put_be(lo + 1, kg, 2);
  /* kg + 1 may carry into the domain byte: still the bound just past this key group */
  uint32_t next = ((uint32_t)d << 16 | kg) + 1;
  hi[0] = (unsigned char)(next >> 16);
  put_be(hi + 1, next & 0xffff, 2);
  rocksdb_readoptions_t *ro = rocksdb_readoptions_create();
  if (!ro) return FL_ENOMEM;
  rocksdb_readoptions_set_iterate_upper_bound(ro, (const char *)hi, 3);
  rocksdb_iterator_t *it = rocksdb_create_iterator_cf(t->r->db, ro, t->cf);
  int rc = FL_OK;
  if (k->after) {
    rocksdb_iter_seek(it, (const char *)k->after, k->after_len);
    if (rocksdb_iter_valid(it)) {
      size_t kl;
      const char *key = rocksdb_iter_key(it, &kl);
      if (cmp_keys((const unsigned char *)key, (uint32_t)kl, k->after, k->after_len) == 0)
        rocksdb_iter_next(it);
    }
  } else {
    rocksdb_iter_seek(it, (const char *)lo, 3);
  }
  for (; rocksdb_iter_valid(it) && k->n < t->cache; rocksdb_iter_next(it)) {
    size_t kl;
    const char *key = rocksdb_iter_key(it, &kl);
    unsigned char *copy = arr_room(t, k) ? NULL : malloc(kl ? kl : 1);
    if (!copy) {
      rc = FL_ENOMEM;
      break;
    }
    memcpy(copy, key, kl);
    k->v[k->n++] = (rt_ent_t){copy, (uint32_t)kl};
    t->cached++;
  }
  k->complete = rc == FL_OK && !rocksdb_iter_valid(it);
  char *e = NULL;
  rocksdb_iter_get_error(it, &e);
  rocksdb_iter_destroy(it);
  rocksdb_readoptions_destroy(ro);
  if (e) {
    k->complete = false;
    rc = rt_fail(t, e, "reading timers");
  }
  return rc;
}

/* Writes the batched puts and deletes. Called before anything reads the column family
 * (refills, walks) and, through the store, before a native copy of it. */
static int flush(fl_rtimers_t *t) {
  if (t->batch_n == 0) return FL_OK;
  char *e = NULL;
  rocksdb_write(t->r->db, t->r->wo, t->batch, &e);
  rocksdb_writebatch_clear(t->batch);
  t->batch_n = 0;
  return e ? rt_fail(t, e, "writing timers") : FL_OK;
}

static int flush_cb(void *arg) { return flush(arg); }

/* A put or delete, batched as Flink's RocksDB timers batch theirs: one write of a few
 * hundred timers costs much less than as many writes. */
static int rdb_write(fl_rtimers_t *t, bool put, const unsigned char *rk, uint32_t len) {
  if (put)
    rocksdb_writebatch_put_cf(t->batch, t->cf, (const char *)rk, len, "", 0);
  else
    rocksdb_writebatch_delete_cf(t->batch, t->cf, (const char *)rk, len);
  return ++t->batch_n >= RT_BATCH ? flush(t) : FL_OK;
}

/* ---------------------------------------------------------------------------------- */
/* The service                                                                          */

void fl_rtimers_destroy(fl_rtimers_t *t) {
  if (!t) return;
  if (t->batch) {
    flush(t); /* the store may be copied or reopened after the service */
    rocksdb_writebatch_destroy(t->batch);
  }
  if (t->r && t->r->before_copy_arg == t) {
    t->r->before_copy = NULL;
    t->r->before_copy_arg = NULL;
  }
  for (int d = 0; d < 2; d++) {
    if (!t->dom[d].kgs) continue;
    for (uint32_t i = 0; i < t->kg_count; i++) {
      rt_kg_t *k = &t->dom[d].kgs[i];
      for (uint32_t j = 0; k->v && j < k->n; j++) free(k->v[j].rk);
      free(k->v);
      free(k->after);
    }
    free(t->dom[d].kgs);
    free(t->dom[d].heap);
  }
  free(t->kb);
  free(t->popped);
  free(t);
}

int fl_rtimers_new(fl_kv_t *kv, uint32_t kg_first, uint32_t kg_count, size_t cache,
                   fl_rtimers_t **out, char *err, size_t err_size) {
  fl_rtimers_t *t = NULL;
  int rc = FL_OK;
  *out = NULL;
  if (!kv || kv->ops != &fl_rdb_ops || !kv->self ||
      (uint64_t)kg_first + kg_count > (uint64_t)UINT16_MAX + 1) {
    fl_rdb_set_err(err, err_size, "rocksdb timers: not a RocksDB store, or a bad key-group range");
    return FL_EINVAL;
  }
  if (cache == 0) cache = FL_RTIMERS_CACHE;
  if (cache > 65536) cache = 65536;
  t = calloc(1, sizeof *t);
  if (!t) goto nomem;
  t->r = kv->self;
  if (t->r->before_copy) {
    fl_rdb_set_err(err, err_size, "rocksdb timers: the store already has a timer service");
    rc = FL_ESTATE;
    t->r = NULL;
    goto done;
  }
  if (!(t->batch = rocksdb_writebatch_create())) goto nomem;
  t->r->before_copy = flush_cb;
  t->r->before_copy_arg = t;
  t->kg_first = kg_first;
  t->kg_count = kg_count;
  t->cache = (uint32_t)cache;
  rc = fl_rdb_timers_cf(t->r, &t->cf);
  if (rc) {
    fl_rdb_set_err(err, err_size, "%s", t->r->err);
    goto done;
  }
  /* Only a store opened from a copy holds timers at the start: then each key group's
   * array is loaded; otherwise every key group starts empty and complete. */
  bool stored = false;
  {
    rocksdb_iterator_t *it = rocksdb_create_iterator_cf(t->r->db, t->r->ro, t->cf);
    rocksdb_iter_seek_to_first(it);
    stored = rocksdb_iter_valid(it);
    char *e = NULL;
    rocksdb_iter_get_error(it, &e);
    rocksdb_iter_destroy(it);
    if (e) {
      rc = rt_fail(t, e, "reading timers");
      fl_rdb_set_err(err, err_size, "%s", t->err);
      goto done;
    }
  }
  for (int d = 0; d < 2; d++) {
    rt_dom_t *dm = &t->dom[d];
    dm->kgs = calloc((size_t)kg_count + 1, sizeof *dm->kgs);
    dm->heap = calloc((size_t)kg_count + 1, sizeof *dm->heap);
    if (!dm->kgs || !dm->heap) goto nomem;
    for (uint32_t i = 0; i < kg_count; i++) {
      rt_kg_t *k = &dm->kgs[i];
      k->top = -1;
      k->complete = true;
      /* A store opened from a copy may hold timers already. */
      rc = stored ? refill(t, (fl_time_domain_t)d, i) : FL_OK;
      if (rc) {
        fl_rdb_set_err(err, err_size, "%s", t->err);
        goto done;
      }
      if (k->n) heap_fix(dm, i);
    }
  }
  *out = t;
  return FL_OK;
nomem:
  rc = FL_ENOMEM;
  fl_rdb_set_err(err, err_size, "rocksdb timers: out of memory");
done:
  fl_rtimers_destroy(t);
  return rc;
}

static bool args_ok(const fl_rtimers_t *t, fl_time_domain_t d, uint16_t kg, const void *key,
                    size_t key_len, const void *ns, size_t ns_len) {
  return (d == FL_EVENT_TIME || d == FL_PROCESSING_TIME) && kg >= t->kg_first &&
         (uint32_t)kg - t->kg_first < t->kg_count && (key || key_len == 0) && (ns || ns_len == 0);
}

/* Where a timer stands: its key built into t->kb (len bytes), its key group's cache k
 * (index kgi) and its place there (pos; found when it is cached). */
typedef struct rt_spot {
  uint32_t len, kgi, pos;
  rt_kg_t *k;
  bool found;
} rt_spot_t;

static int locate(fl_rtimers_t *t, fl_time_domain_t d, uint16_t kg, const void *key, size_t key_len,
                  const void *ns, size_t ns_len, int64_t ts, rt_spot_t *at) {
  if (!args_ok(t, d, kg, key, key_len, ns, ns_len)) return FL_EINVAL;
  at->kgi = (uint32_t)kg - t->kg_first;
  int rc = build_key(t, d, kg, key, key_len, ns, ns_len, ts, &at->len);
  if (rc) return rc;
  at->k = &t->dom[d].kgs[at->kgi];
  at->pos = lower_bound(at->k, t->kb, at->len, &at->found);
  return FL_OK;
}

int fl_rtimers_register(fl_rtimers_t *t, fl_time_domain_t d, uint16_t kg, const void *key,
                        size_t key_len, const void *ns, size_t ns_len, int64_t ts) {
  rt_spot_t at;
  int rc = locate(t, d, kg, key, key_len, ns, ns_len, ts, &at);
  if (rc) return rc;
  rt_dom_t *dm = &t->dom[d];
  if (at.found) return FL_OK; /* cached, hence stored */
  /* beyond the cache: stored alone */
  if (!at.k->complete && at.pos == at.k->n) return rdb_write(t, true, t->kb, at.len);
  unsigned char *copy = arr_room(t, at.k) ? NULL : malloc(at.len);
  if (!copy) return FL_ENOMEM;
  memcpy(copy, t->kb, at.len);
  rc = rdb_write(t, true, copy, at.len);
  if (rc) {
    free(copy);
    return rc;
  }
  arr_insert(t, at.k, at.pos, copy, at.len);
  if (at.pos == 0) heap_fix(dm, at.kgi);
  return FL_OK;
}

int fl_rtimers_delete(fl_rtimers_t *t, fl_time_domain_t d, uint16_t kg, const void *key,
                      size_t key_len, const void *ns, size_t ns_len, int64_t ts) {
  rt_spot_t at;
  int rc = locate(t, d, kg, key, key_len, ns, ns_len, ts, &at);
  if (rc) return rc;
  rt_dom_t *dm = &t->dom[d];
  if (!at.found) {
    /* Below the last cached timer, or in a complete key group, it cannot exist. */
    if (at.k->complete || at.pos < at.k->n) return FL_OK;
    return rdb_write(t, false, t->kb, at.len);
  }
  rc = rdb_write(t, false, at.k->v[at.pos].rk, at.k->v[at.pos].len);
  if (rc) return rc;
  arr_remove(t, at.k, at.pos);
  if (at.k->n == 0 && !at.k->complete) rc = refill(t, d, at.kgi);
  if (at.pos == 0) heap_fix(dm, at.kgi);
  return rc;
}

int fl_rtimers_peek(const fl_rtimers_t *t, fl_time_domain_t d, int64_t *ts) {
  const rt_dom_t *dm = &t->dom[d];
  if (dm->heap_len == 0) return 0;
  *ts = rk_ts(dm->kgs[dm->heap[0]].v[0].rk);
  return 1;
}

int fl_rtimers_pop(fl_rtimers_t *t, fl_time_domain_t d, int64_t upto, fl_timer_t *out) {
  rt_dom_t *dm = &t->dom[d];
  if (dm->heap_len == 0) return 0;
  uint32_t kgi = dm->heap[0];
  rt_kg_t *k = &dm->kgs[kgi];
  const rt_ent_t *e = &k->v[0];
  if (rk_ts(e->rk) > upto) return 0;
  int rc = rdb_write(t, false, e->rk, e->len);
  if (rc) return rc;
  /* The popped key and namespace outlive registrations made while the caller uses
   * them, so they get a buffer of their own. */
  if (e->len > t->popped_cap) {
    unsigned char *p = malloc(e->len);
    if (!p) return FL_ENOMEM;
    free(t->popped);
    t->popped = p;
    t->popped_cap = e->len;
  }
  memcpy(t->popped, e->rk, e->len);
  int domain;
  parse_key(t->popped, e->len, out, &domain);
  arr_remove(t, k, 0);
  if (k->n == 0 && !k->complete) rc = refill(t, d, kgi);
  heap_fix(dm, kgi);
  return rc ? rc : 1;
}

/* Walks the column family over [lo, hi) with cb(timer, domain, arg). */
static int walk(fl_rtimers_t *t, rocksdb_t *db, rocksdb_column_family_handle_t *cf,
                const unsigned char *lo, size_t lo_len, const unsigned char *hi, size_t hi_len,
                int (*cb)(const fl_timer_t *tm, int domain, void *arg), void *arg) {
  rocksdb_readoptions_t *ro = rocksdb_readoptions_create();
  if (!ro) return FL_ENOMEM;
  rocksdb_readoptions_set_fill_cache(ro, 0);
  rocksdb_readoptions_set_iterate_upper_bound(ro, (const char *)hi, hi_len);
  rocksdb_iterator_t *it = rocksdb_create_iterator_cf(db, ro, cf);
  int rc = FL_OK;
  for (rocksdb_iter_seek(it, (const char *)lo, lo_len); rocksdb_iter_valid(it);
       rocksdb_iter_next(it)) {
    size_t kl;
    const unsigned char *key = (const unsigned char *)rocksdb_iter_key(it, &kl);
    fl_timer_t tm;
    int domain;
    if (!parse_key(key, kl, &tm, &domain)) {
      if (t) snprintf(t->err, sizeof t->err, "rocksdb timers: a key this service did not write");
      rc = FL_EPARSE;
      break;
    }
    rc = cb(&tm, domain, arg);
    if (rc) break;
  }
  char *e = NULL;
  rocksdb_iter_get_error(it, &e);
  rocksdb_iter_destroy(it);
  rocksdb_readoptions_destroy(ro);
  if (e) {
    if (t) return rt_fail(t, e, "walking timers");
    free(e);
    return FL_EIO;
  }
  return rc;
}

typedef struct each {
  int (*cb)(const fl_timer_t *tm, uint64_t seq, void *arg);
  void *arg;
  uint64_t seq;
  size_t count;
} each_t;

static int each_cb(const fl_timer_t *tm, int domain, void *arg) {
  each_t *e = arg;
  (void)domain;
  e->count++;
  return e->cb ? e->cb(tm, e->seq++, e->arg) : 0;
}

int fl_rtimers_foreach(fl_rtimers_t *t, fl_time_domain_t d,
                       int (*cb)(const fl_timer_t *tm, uint64_t seq, void *arg), void *arg) {
  unsigned char lo[1] = {(unsigned char)d}, hi[1] = {(unsigned char)(d + 1)};
  each_t e = {cb, arg, 0, 0};
  int rc = flush(t);
  if (rc) return rc;
  return walk(t, t->r->db, t->cf, lo, 1, hi, 1, each_cb, &e);
}

size_t fl_rtimers_count(fl_rtimers_t *t, fl_time_domain_t d) {
  unsigned char lo[1] = {(unsigned char)d}, hi[1] = {(unsigned char)(d + 1)};
  each_t e = {NULL, NULL, 0, 0};
  if (flush(t)) return 0;
  return walk(t, t->r->db, t->cf, lo, 1, hi, 1, each_cb, &e) ? 0 : e.count;
}

size_t fl_rtimers_cached(const fl_rtimers_t *t) { return t->cached; }

const char *fl_rtimers_errmsg(const fl_rtimers_t *t) { return t->err; }

typedef struct copy {
  fl_timers_t *dst;
  uint32_t kg_first, kg_count;
} copy_t;

static int copy_cb(const fl_timer_t *tm, int domain, void *arg) {
  copy_t *c = arg;
  if (tm->kg < c->kg_first || tm->kg - c->kg_first >= c->kg_count) return 0;
  return fl_timers_register(c->dst, (fl_time_domain_t)domain, tm->kg, tm->key, tm->key_len, tm->ns,
                            tm->ns_len, tm->ts);
}

int fl_rtimers_copy(fl_kv_t *src, uint32_t kg_first, uint32_t kg_count, fl_timers_t *dst) {
  if (!src || src->ops != &fl_rdb_ops || !src->self || !dst) return FL_EINVAL;
  rdb_t *r = src->self;
  if (!r->timers_cf) return FL_OK; /* it never held timers */
  copy_t c = {dst, kg_first, kg_count};
  unsigned char lo[1] = {0}, hi[1] = {2};
  return walk(NULL, r->db, r->timers_cf, lo, 1, hi, 1, copy_cb, &c);
}
