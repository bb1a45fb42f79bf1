/*
 * Typed keyed state over a kv backend, with Flink's State TTL.
 *
 * Stored formats (private to this file; every backend stores the bytes as given):
 *  - value, reducing, aggregating: the value, prefixed by its 8-byte last-update
 *    timestamp when the descriptor has TTL;
 *  - list: a sequence of items, each [u32 len][u32 0][i64 ts if TTL][bytes][0..7 zero
 *    bytes], so every item is a multiple of 8 bytes long and the views handed out are
 *    8-byte aligned (like the value cells, whose storage is 16-byte aligned) and a new
 *    item is a plain append (a RocksDB merge operand);
 *  - map: one map cell; each value prefixed by its timestamp when TTL is on.
 *
 * Pointers handed back point into the backend (valid until it changes) or into the
 * scratch's `ret` buffer (values that had to be removed while being returned). Bytes
 * on their way into the backend are built in `work`, which is never handed out, so a
 * caller may pass a pointer it got back from a get into any write.
 *
 * TTL follows Flink (AbstractTtlDecorator and the Ttl*State classes): a read of an
 * expired value removes it, and returns it only with ReturnExpiredIfNotCleanedUp; a
 * read of a live value under OnReadAndWrite rewrites it with the current time; the
 * merging kinds (reduce, aggregate) treat an expired value as absent unless expired
 * values are visible; list items and map entries expire one by one.
 */
#include <assert.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "state/state.h"
#include "util/buf.h"
#include "util/hash.h"
#include "util/vec.h"

#define TS_LEN 8u
#define ITEM_HDR 8u

struct fl_state_scratch {
  fl_buf_t ret;  /* copies returned to the caller */
  fl_buf_t work; /* bytes being written to the backend; never returned */
  fl_buf_t out;  /* reduce output */
  fl_buf_t acc;  /* [ts] | accumulator being updated */
  fl_buf_t pend; /* map keys to delete / refresh once an iteration is over */
  fl_buf_t ckey; /* TTL cleanup: key | namespace of the cell being cleaned */
  fl_buf_t undo; /* an accumulator as it was before an add in place */
  fl_bytes_t *items;
  size_t items_cap;
};

fl_state_scratch_t *fl_state_scratch_new(void) { return calloc(1, sizeof(fl_state_scratch_t)); }

void fl_state_scratch_destroy(fl_state_scratch_t *s) {
  if (!s) return;
  fl_buf_free(&s->ret);
  fl_buf_free(&s->work);
  fl_buf_free(&s->out);
  fl_buf_free(&s->acc);
  fl_buf_free(&s->pend);
  fl_buf_free(&s->ckey);
  fl_buf_free(&s->undo);
  free(s->items);
  free(s);
}

/* ---------------------------------------------------------------------------------- */
/* Helpers                                                                              */

#define KV(r) ((r)->kv->ops)
#define KS(r) ((r)->kv->self)

static int check(const fl_sref_t *r, int kind) {
  if (!r || !r->kv || !r->kv->ops || !r->desc || !r->scratch) return FL_EINVAL;
  if (kind >= 0 && (int)r->desc->kind != kind) return FL_ESTATE;
  return FL_OK;
}

static inline bool ttl_on(const fl_sref_t *r) { return r->desc->has_ttl != 0; }

static inline bool ttl_returns_expired(const fl_sref_t *r) {
  return r->desc->ttl.visibility == FL_TTL_RETURN_EXPIRED_IF_NOT_CLEANED_UP;
}

static inline bool ttl_refresh_on_read(const fl_sref_t *r) {
  return r->desc->ttl.update == FL_TTL_ON_READ_AND_WRITE;
}

static bool expired(const fl_sref_t *r, int64_t ts) {
  int64_t ttl = r->desc->ttl.ttl_ms;
  if (ts > INT64_MAX - ttl) return false;
  return ts + ttl <= r->now;
}

static inline int64_t rd_ts(const void *p) {
  int64_t v;
  memcpy(&v, p, sizeof v);
  return v;
}

static inline void wr_ts(void *p, int64_t v) { memcpy(p, &v, sizeof v); }

static inline size_t pad8(size_t n) { return (n + 7) & ~(size_t)7; }

static inline void copy_bytes(void *dst, const void *src, size_t n) {
  if (n) memcpy(dst, src, n);
}

static inline bool same_bytes(const void *a, size_t al, const void *b, size_t bl) {
  return al == bl && (al == 0 || memcmp(a, b, al) == 0);
}

/* A user error code from a callback: negative codes pass, anything else is EUSER. */
static inline int user_rc(int rc) { return rc < 0 ? rc : FL_EUSER; }

/* Builds [ts][v] in work. */
static int wrap_ts(fl_state_scratch_t *s, int64_t ts, const void *v, size_t n, const void **out,
                   size_t *out_len) {
  if (n > SIZE_MAX - TS_LEN) return FL_ENOMEM;
  uint8_t *p = fl_buf_resize(&s->work, TS_LEN + n);
  if (!p) return FL_ENOMEM;
  wr_ts(p, ts);
  copy_bytes(p + TS_LEN, v, n);
  *out = p;
  *out_len = TS_LEN + n;
  return FL_OK;
}

/* Writes a value cell, stamped with now when TTL is on. v must not lie in work. */
static int store_value(const fl_sref_t *r, const fl_kkey_t *k, const void *v, size_t n) {
  if (!ttl_on(r)) return KV(r)->put(KS(r), r->table, k, v, n);
  const void *w;
  size_t wl;
  int rc = wrap_ts(r->scratch, r->now, v, n, &w, &wl);
  if (rc) return rc;
  return KV(r)->put(KS(r), r->table, k, w, wl);
}

/* The value a merging update folds into: 1 and the user bytes (borrowed from the
 * backend), or 0. An expired value counts only while expired values are visible
 * (Flink's getUnexpired). */
static int peek_live(const fl_sref_t *r, const fl_kkey_t *k, const void **v, size_t *n) {
  const void *p;
  size_t pl;
  int rc = KV(r)->get(KS(r), r->table, k, &p, &pl);
  if (rc <= 0) return rc;
  if (!ttl_on(r)) {
    *v = p;
    *n = pl;
    return 1;
  }
  if (pl < TS_LEN) return FL_EPARSE;
  if (expired(r, rd_ts(p)) && !ttl_returns_expired(r)) return 0;
  *v = (const uint8_t *)p + TS_LEN;
  *n = pl - TS_LEN;
  return 1;
}

/* A value cell (uk NULL and ukl 0 with map false) or a map entry: get, put, del. */
static inline int cell_get(const fl_sref_t *r, bool map, const void *uk, size_t ukl, const void **p,
                           size_t *pl) {
  return map ? KV(r)->map_get(KS(r), r->table, &r->k, uk, ukl, p, pl)
             : KV(r)->get(KS(r), r->table, &r->k, p, pl);
}
static inline int cell_put(const fl_sref_t *r, bool map, const void *uk, size_t ukl, const void *v,
                           size_t vl) {
  return map ? KV(r)->map_put(KS(r), r->table, &r->k, uk, ukl, v, vl)
             : KV(r)->put(KS(r), r->table, &r->k, v, vl);
}
static inline int cell_del(const fl_sref_t *r, bool map, const void *uk, size_t ukl) {
  return map ? KV(r)->map_del(KS(r), r->table, &r->k, uk, ukl) : KV(r)->del(KS(r), r->table, &r->k);
}

/* Reads a value cell or a map entry the way a user get does (Flink's
 * getWithTtlCheckAndUpdate): an expired one is removed (and returned once if the TTL
 * says so), a live one refreshed if reads refresh. */
static int read_cell(const fl_sref_t *r, bool map, const void *uk, size_t ukl, const void **val,
                     size_t *len) {
  fl_state_scratch_t *s = r->scratch;
  const void *p;
  size_t pl;
  int rc = cell_get(r, map, uk, ukl, &p, &pl);
  if (rc <= 0 || !ttl_on(r)) {
    if (rc == 1) {
      *val = p;
      *len = pl;
    }
    return rc;
  }
  if (pl < TS_LEN) return FL_EPARSE;
  const uint8_t *user = (const uint8_t *)p + TS_LEN;
  size_t ul = pl - TS_LEN;
  if (expired(r, rd_ts(p))) {
    bool visible = ttl_returns_expired(r);
    if (visible) {
      uint8_t *c = fl_buf_resize(&s->ret, ul);
      if (!c) return FL_ENOMEM;
      copy_bytes(c, user, ul);
      user = c;
    }
    rc = cell_del(r, map, uk, ukl);
    if (rc) return rc;
    if (!visible) return 0;
  } else if (ttl_refresh_on_read(r)) {
    const void *w;
    size_t wl;
    rc = wrap_ts(s, r->now, user, ul, &w, &wl);
    if (rc == FL_OK) rc = cell_put(r, map, uk, ukl, w, wl);
    if (rc == FL_OK) rc = cell_get(r, map, uk, ukl, &p, &pl);
    if (rc < 0) return rc;
    if (rc == 0 || pl != wl) return FL_EIO; /* the backend lost what it was given */
    user = (const uint8_t *)p + TS_LEN;
  }
  *val = user;
  *len = ul;
  return 1;
}

static int read_value(const fl_sref_t *r, const void **val, size_t *len) {
  return read_cell(r, false, NULL, 0, val, len);
}

/* ---------------------------------------------------------------------------------- */
/* Value                                                                                */

int fl_st_value_get(const fl_sref_t *r, const void **val, size_t *len) {
  int rc = check(r, FL_STATE_VALUE);
  if (rc) return rc;
  if (!val || !len) return FL_EINVAL;
  return read_value(r, val, len);
}

int fl_st_value_set(const fl_sref_t *r, const void *val, size_t len) {
  int rc = check(r, FL_STATE_VALUE);
  if (rc) return rc;
  if (len && !val) return FL_EINVAL;
  return store_value(r, &r->k, val, len);
}

int fl_st_clear(const fl_sref_t *r) {
  int rc = check(r, -1);
  if (rc) return rc;
  return KV(r)->del(KS(r), r->table, &r->k);
}

/* ---------------------------------------------------------------------------------- */
/* List                                                                                 */

static inline size_t item_hdr(const fl_sref_t *r) {
  return ttl_on(r) ? ITEM_HDR + TS_LEN : ITEM_HDR;
}

/* Parses the item at p (n bytes left). Returns its stored size, or 0 if malformed. */
static size_t item_parse(const uint8_t *p, size_t n, size_t hdr, fl_bytes_t *item, int64_t *ts) {
  if (n < hdr) return 0;
  uint32_t l;
  memcpy(&l, p, sizeof l);
  size_t size = hdr + pad8(l);
  if (size > n) return 0;
  item->data = p + hdr;
  item->len = l;
  *ts = hdr > ITEM_HDR ? rd_ts(p + ITEM_HDR) : 0;
  return size;
}

static size_t item_write(uint8_t *p, size_t hdr, const void *data, size_t len, int64_t ts) {
  uint32_t l = (uint32_t)len, zero = 0;
  memcpy(p, &l, sizeof l);
  memcpy(p + 4, &zero, sizeof zero);
  if (hdr > ITEM_HDR) wr_ts(p + ITEM_HDR, ts);
  if (len == 8) /* an 8-byte key (a window's key lists) without a libc call */
    memcpy(p + hdr, data, 8);
  else
    copy_bytes(p + hdr, data, len);
  if (pad8(len) != len) memset(p + hdr + len, 0, pad8(len) - len);
  return hdr + pad8(len);
}

static int views_push(fl_state_scratch_t *s, size_t *n, fl_bytes_t item) {
  return FL_VEC_PUSH(s->items, *n, s->items_cap, item);
}

/* item (len bytes, checked) as a list item: built on the stack (small) when it is small
 * (a key joining a window's key list), else in the scratch; NULL without memory. */
static uint8_t *item_build(uint64_t small[8], fl_state_scratch_t *s, size_t hdr, const void *item,
                           size_t len, int64_t ts, size_t *n) {
  uint8_t *p = hdr + pad8(len) <= 8 * sizeof *small ? (uint8_t *)small
                                                    : fl_buf_resize(&s->work, hdr + pad8(len));
  if (p) *n = item_write(p, hdr, item, len, ts);
  return p;
}

int fl_st_list_add(const fl_sref_t *r, const void *item, size_t len) {
  int rc = check(r, FL_STATE_LIST);
  if (rc) return rc;
  if ((len && !item) || len > UINT32_MAX) return FL_EINVAL;
  uint64_t small[8];
  size_t n = 0;
  uint8_t *p = item_build(small, r->scratch, item_hdr(r), item, len, r->now, &n);
  return p ? KV(r)->append(KS(r), r->table, &r->k, p, n) : FL_ENOMEM;
}

int fl_st_adds_append(const fl_st_adds_t *p, uint16_t kg, const void *key, size_t key_len,
                      const void *item, size_t len) {
  if (!p || !p->append || (len && !item) || len > UINT32_MAX) return FL_EINVAL;
  uint64_t small[8];
  size_t n = 0;
  if (len == 8) { /* an 8-byte key (a window's key lists): the item as two words */
    uint32_t hdr[2] = {8, 0};
    memcpy(small, hdr, 8);
    memcpy(small + 1, item, 8);
    return p->append(p->self, &p->kv, kg, key, key_len, small, 16);
  }
  uint8_t *b = item_build(small, p->scratch, ITEM_HDR, item, len, 0, &n);
  return b ? p->append(p->self, &p->kv, kg, key, key_len, b, n) : FL_ENOMEM;
}

int fl_st_list_get(const fl_sref_t *r, const fl_bytes_t **items, size_t *n) {
  int rc = check(r, FL_STATE_LIST);
  if (rc) return rc;
  if (!items || !n) return FL_EINVAL;
  *items = NULL;
  *n = 0;
  fl_state_scratch_t *s = r->scratch;
  const void *raw;
  size_t rl;
  rc = KV(r)->get(KS(r), r->table, &r->k, &raw, &rl);
  if (rc <= 0) return rc;
  size_t hdr = item_hdr(r), count = 0, live = 0, dead = 0;
  fl_bytes_t it;
  int64_t ts;
  const uint8_t *p = raw;
  if (ttl_on(r)) {
    for (size_t off = 0, sz; off < rl; off += sz) {
      sz = item_parse(p + off, rl - off, hdr, &it, &ts);
      if (!sz) return FL_EPARSE;
      if (expired(r, ts))
        dead++;
      else
        live++;
    }
  }
  bool refresh = ttl_on(r) && ttl_refresh_on_read(r) && live > 0;
  if (dead > 0 || refresh) {
    /* The stored list changes: hand out views of a copy, and write back the live
     * items (Flink's TtlListState.get and its cleaning iterator). */
    uint8_t *c = fl_buf_resize(&s->ret, rl);
    if (!c) return FL_ENOMEM;
    memcpy(c, raw, rl);
    uint8_t *w = fl_buf_resize(&s->work, rl);
    if (!w) return FL_ENOMEM;
    size_t wl = 0;
    for (size_t off = 0, sz; off < rl; off += sz) {
      sz = item_parse(c + off, rl - off, hdr, &it, &ts);
      bool dead_item = expired(r, ts);
      if (!dead_item) wl += item_write(w + wl, hdr, it.data, it.len, refresh ? r->now : ts);
      if (!dead_item || ttl_returns_expired(r)) {
        rc = views_push(s, &count, it);
        if (rc) return rc;
      }
    }
    rc = wl ? KV(r)->put(KS(r), r->table, &r->k, w, wl) : KV(r)->del(KS(r), r->table, &r->k);
    if (rc) return rc;
  } else {
    for (size_t off = 0, sz; off < rl; off += sz) {
      sz = item_parse(p + off, rl - off, hdr, &it, &ts);
      if (!sz) return FL_EPARSE;
      rc = views_push(s, &count, it);
      if (rc) return rc;
    }
  }
  *items = count ? s->items : NULL;
  *n = count;
  return count > 0;
}

int fl_st_list_update(const fl_sref_t *r, const fl_bytes_t *items, size_t n) {
  int rc = check(r, FL_STATE_LIST);
  if (rc) return rc;
  if (n && !items) return FL_EINVAL;
  if (n == 0) return KV(r)->del(KS(r), r->table, &r->k);
  size_t hdr = item_hdr(r), total = 0;
  for (size_t i = 0; i < n; i++) {
    if ((items[i].len && !items[i].data) || items[i].len > UINT32_MAX) return FL_EINVAL;
    size_t sz = hdr + pad8(items[i].len);
    if (sz > SIZE_MAX - total) return FL_ENOMEM;
    total += sz;
  }
  uint8_t *w = fl_buf_resize(&r->scratch->work, total);
  if (!w) return FL_ENOMEM;
  size_t wl = 0;
  for (size_t i = 0; i < n; i++) wl += item_write(w + wl, hdr, items[i].data, items[i].len, r->now);
  assert(wl == total);
  return KV(r)->put(KS(r), r->table, &r->k, w, wl);
}

/* ---------------------------------------------------------------------------------- */
/* Map                                                                                  */

int fl_st_map_get(const fl_sref_t *r, const void *uk, size_t ukl, const void **val, size_t *len) {
  int rc = check(r, FL_STATE_MAP);
  if (rc) return rc;
  if (!val || !len || (ukl && !uk)) return FL_EINVAL;
  return read_cell(r, true, uk, ukl, val, len);
}

int fl_st_map_put(const fl_sref_t *r, const void *uk, size_t ukl, const void *val, size_t len) {
  int rc = check(r, FL_STATE_MAP);
  if (rc) return rc;
  if ((ukl && !uk) || (len && !val)) return FL_EINVAL;
  if (!ttl_on(r)) return KV(r)->map_put(KS(r), r->table, &r->k, uk, ukl, val, len);
  const void *w;
  size_t wl;
  rc = wrap_ts(r->scratch, r->now, val, len, &w, &wl);
  if (rc) return rc;
  return KV(r)->map_put(KS(r), r->table, &r->k, uk, ukl, w, wl);
}

int fl_st_map_remove(const fl_sref_t *r, const void *uk, size_t ukl) {
  int rc = check(r, FL_STATE_MAP);
  if (rc) return rc;
  if (ukl && !uk) return FL_EINVAL;
  return KV(r)->map_del(KS(r), r->table, &r->k, uk, ukl);
}

enum {
  PEND_DELETE = 1,
  PEND_REFRESH = 2
};

typedef struct foreach_ctx {
  const fl_sref_t *r;
  int (*cb)(const void *uk, size_t ukl, const void *v, size_t vl, void *arg);
  void *arg;
  int user_rc;
} foreach_ctx_t;

/* Remembers a user key to act on once the iteration is over: [u32 len][u32 action]
 * [key][pad]. The backend's map must not change during the iteration. */
static int pend_push(fl_buf_t *pend, const void *uk, size_t ukl, uint32_t action) {
  if (ukl > UINT32_MAX) return FL_EINVAL;
  size_t at = pend->len, sz = 8 + pad8(ukl);
  uint8_t *p = fl_buf_resize(pend, at + sz);
  if (!p) return FL_ENOMEM;
  uint32_t l = (uint32_t)ukl;
  memcpy(p + at, &l, 4);
  memcpy(p + at + 4, &action, 4);
  copy_bytes(p + at + 8, uk, ukl);
  return FL_OK;
}

static int foreach_cb(const void *uk, size_t ukl, const void *v, size_t vl, void *arg) {
  foreach_ctx_t *fc = arg;
  const fl_sref_t *r = fc->r;
  if (ttl_on(r)) {
    if (vl < TS_LEN) return FL_EPARSE;
    int rc = FL_OK;
    if (expired(r, rd_ts(v))) {
      rc = pend_push(&r->scratch->pend, uk, ukl, PEND_DELETE);
      if (rc || !ttl_returns_expired(r)) return rc ? rc : FL_KV_NEXT;
    } else if (ttl_refresh_on_read(r)) {
      rc = pend_push(&r->scratch->pend, uk, ukl, PEND_REFRESH);
      if (rc) return rc;
    }
    v = (const uint8_t *)v + TS_LEN;
    vl -= TS_LEN;
  }
  int u = fc->cb(uk, ukl, v, vl, fc->arg);
  if (u) {
    fc->user_rc = u;
    return FL_KV_STOP;
  }
  return FL_KV_NEXT;
}

static int apply_pending(const fl_sref_t *r) {
  fl_buf_t *pend = &r->scratch->pend;
  int rc = FL_OK;
  for (size_t off = 0; off < pend->len && rc == FL_OK;) {
    uint32_t l, action;
    memcpy(&l, pend->data + off, 4);
    memcpy(&action, pend->data + off + 4, 4);
    const uint8_t *uk = pend->data + off + 8;
    off += 8 + pad8(l);
    if (action == PEND_DELETE) {
      rc = KV(r)->map_del(KS(r), r->table, &r->k, uk, l);
    } else {
      const void *p, *w;
      size_t pl, wl;
      rc = KV(r)->map_get(KS(r), r->table, &r->k, uk, l, &p, &pl);
      if (rc == 1 && pl >= TS_LEN) {
        rc = wrap_ts(r->scratch, r->now, (const uint8_t *)p + TS_LEN, pl - TS_LEN, &w, &wl);
        if (rc == FL_OK) rc = KV(r)->map_put(KS(r), r->table, &r->k, uk, l, w, wl);
      } else if (rc >= 0) {
        rc = FL_OK;
      }
    }
  }
  pend->len = 0;
  return rc;
}

int fl_st_map_foreach(const fl_sref_t *r,
                      int (*cb)(const void *uk, size_t ukl, const void *v, size_t vl, void *arg),
                      void *arg) {
  int rc = check(r, FL_STATE_MAP);
  if (rc) return rc;
  if (!cb) return FL_EINVAL;
  foreach_ctx_t fc = {r, cb, arg, 0};
  r->scratch->pend.len = 0;
  rc = KV(r)->map_iter(KS(r), r->table, &r->k, foreach_cb, &fc);
  int prc = ttl_on(r) ? apply_pending(r) : FL_OK;
  if (rc < 0) return rc;
  if (prc < 0) return prc;
  return fc.user_rc;
}

/* ---------------------------------------------------------------------------------- */
/* Reducing and aggregating                                                             */

static int reduce_into(const fl_sref_t *r, const void *a, size_t al, const void *b, size_t bl,
                       const void **out, size_t *out_len) {
  fl_buf_t *o = &r->scratch->out;
  o->len = 0;
  int rc = r->desc->reduce(r->ctx, a, al, b, bl, o, r->desc->opaque);
  if (rc) return user_rc(rc);
  *out = o->data;
  *out_len = o->len;
  return FL_OK;
}

/* Reducing and aggregating state update their cell in place when the backend offers
 * value_ref (one lookup, no copy of the value in and out) and no TTL timestamp has to
 * be renewed with the value. */
static inline bool in_place(const fl_sref_t *r) {
  return !ttl_on(r) && r->kv->ops->version >= 2 && r->kv->ops->value_ref;
}

static inline uint64_t sref_key_hash(const fl_sref_t *r) {
  return r->key_hashed ? r->key_hash : fl_hash64(r->k.key, r->k.key_len, 0);
}

int fl_st_reducing_add_created(const fl_sref_t *r, const void *val, size_t len, bool *created) {
  int rc = check(r, FL_STATE_REDUCING);
  if (rc) return rc;
  if ((len && !val) || !r->desc->reduce) return FL_EINVAL;
  const void *cur, *res = val;
  size_t cl, rl = len;
  if (created) *created = false;
  if (in_place(r)) {
    void *cell;
    rc = KV(r)->value_ref(KS(r), r->table, &r->k, sref_key_hash(r), len, &cell, &cl);
    if (rc == FL_ENOTSUP) goto copy; /* a cell this backend does not hand out */
    if (rc < 0) return rc;
    if (rc == 0) {
      /* val may lie in another cell of the backend: cells do not move on an insert */
      copy_bytes(cell, val, len);
      if (created) *created = true;
      return FL_OK;
    }
    rc = reduce_into(r, cell, cl, val, len, &res, &rl);
    if (rc) return rc;
    if (rl == cl) {
      copy_bytes(cell, res, rl);
      return FL_OK;
    }
    return KV(r)->put(KS(r), r->table, &r->k, res, rl);
  }
copy:
  rc = peek_live(r, &r->k, &cur, &cl);
  if (rc < 0) return rc;
  if (rc == 1) {
    rc = reduce_into(r, cur, cl, val, len, &res, &rl);
    if (rc) return rc;
  } else if (created) {
    *created = true;
  }
  return store_value(r, &r->k, res, rl);
}

int fl_st_reducing_add(const fl_sref_t *r, const void *val, size_t len) {
  return fl_st_reducing_add_created(r, val, len, NULL);
}

int fl_st_reducing_get(const fl_sref_t *r, const void **val, size_t *len) {
  int rc = check(r, FL_STATE_REDUCING);
  if (rc) return rc;
  if (!val || !len) return FL_EINVAL;
  return read_value(r, val, len);
}

static int check_agg(const fl_sref_t *r) {
  int rc = check(r, FL_STATE_AGGREGATING);
  if (rc) return rc;
  const fl_aggregate_fn_t *a = &r->desc->agg;
  if (!a->init || !a->add || a->acc_size == 0) return FL_EINVAL;
  return FL_OK;
}

/* The accumulator buffer: [ts] | acc, acc 8-byte aligned at least. */
static uint8_t *acc_buf(const fl_sref_t *r, size_t *hdr) {
  *hdr = ttl_on(r) ? TS_LEN : 0;
  return fl_buf_resize(&r->scratch->acc, *hdr + r->desc->agg.acc_size);
}

static int store_acc(const fl_sref_t *r, const fl_kkey_t *k, uint8_t *buf, size_t hdr) {
  if (hdr) wr_ts(buf, r->now);
  return KV(r)->put(KS(r), r->table, k, buf, hdr + r->desc->agg.acc_size);
}

/* Copies an accumulator; most are a few words. */
static inline void copy_acc(void *dst, const void *src, size_t n) {
  if (n == 8)
    memcpy(dst, src, 8);
  else if (n == 16)
    memcpy(dst, src, 16);
  else
    memcpy(dst, src, n);
}

/* Adds in to the accumulator in its cell. A failing add leaves the cell as it was: a
 * new cell is removed, an existing one gets its bytes back. */
static int aggregating_add_in_place(const fl_sref_t *r, const fl_record_t *in, bool *created,
                                    bool *refused) {
  const fl_aggregate_fn_t *a = &r->desc->agg;
  void *acc;
  size_t cl;
  int rc = KV(r)->value_ref(KS(r), r->table, &r->k, sref_key_hash(r), a->acc_size, &acc, &cl);
  *refused = rc == FL_ENOTSUP; /* a cell this backend does not hand out */
  if (rc < 0) return rc;
  bool fresh = rc == 0;
  if (!fresh && cl != a->acc_size) return FL_EPARSE;
  uint64_t small[8]; /* most accumulators fit */
  uint8_t *undo = NULL;
  if (fresh) {
    a->init(acc, r->desc->opaque); /* on zeroed bytes, as below */
  } else {
    undo = a->acc_size <= sizeof small ? (uint8_t *)small
                                       : fl_buf_resize(&r->scratch->undo, a->acc_size);
    if (!undo) return FL_ENOMEM;
    copy_acc(undo, acc, a->acc_size);
  }
  rc = a->add(r->ctx, acc, in, r->desc->opaque);
  if (__builtin_expect(rc != 0, 0)) {
    if (fresh)
      KV(r)->del(KS(r), r->table, &r->k);
    else
      copy_acc(acc, undo, a->acc_size);
    return user_rc(rc);
  }
  if (created) *created = fresh;
  return FL_OK;
}

int fl_st_aggregating_add_created(const fl_sref_t *r, const fl_record_t *in, bool *created) {
  int rc = check_agg(r);
  if (rc) return rc;
  if (!in) return FL_EINVAL;
  bool refused = false;
  if (in_place(r)) {
    rc = aggregating_add_in_place(r, in, created, &refused);
    if (!refused) return rc;
  }
  if (created) *created = false;
  const fl_aggregate_fn_t *a = &r->desc->agg;
  size_t hdr, cl;
  const void *cur;
  uint8_t *buf = acc_buf(r, &hdr);
  if (!buf) return FL_ENOMEM;
  rc = peek_live(r, &r->k, &cur, &cl);
  if (rc < 0) return rc;
  bool fresh = rc == 0;
  if (!fresh) {
    if (cl != a->acc_size) return FL_EPARSE;
    memcpy(buf + hdr, cur, cl);
  } else {
    memset(buf + hdr, 0, a->acc_size);
    a->init(buf + hdr, r->desc->opaque);
  }
  rc = a->add(r->ctx, buf + hdr, in, r->desc->opaque);
  if (rc) return user_rc(rc);
  rc = store_acc(r, &r->k, buf, hdr);
  if (!rc && created) *created = fresh;
  return rc;
}

int fl_st_aggregating_add(const fl_sref_t *r, const fl_record_t *in) {
  return fl_st_aggregating_add_created(r, in, NULL);
}

int fl_st_aggregating_get(const fl_sref_t *r, const void **acc) {
  int rc = check(r, FL_STATE_AGGREGATING);
  if (rc) return rc;
  if (!acc) return FL_EINVAL;
  const void *v = NULL;
  size_t vl = 0;
  rc = read_value(r, &v, &vl);
  if (rc == 1) {
    if (vl != r->desc->agg.acc_size) return FL_EPARSE;
    *acc = v;
  }
  return rc;
}

/* ---------------------------------------------------------------------------------- */
/* Prepared adds (a window's run of records)                                            */

int fl_st_adds_prepare(const fl_sref_t *r, fl_st_adds_t *p) {
  int rc = check(r, -1);
  if (rc) return rc;
  if (!p) return FL_EINVAL;
  const fl_kv_ops_t *o = KV(r);
  if (r->desc->kind == FL_STATE_AGGREGATING) {
    rc = check_agg(r);
  } else if (r->desc->kind == FL_STATE_REDUCING) {
    if (!r->desc->reduce) rc = FL_EINVAL;
  } else {
    rc = FL_ESTATE;
  }
  if (rc) return rc;
  if (!in_place(r) || o->version < 4 || !o->ref_prepare || !o->value_ref_prepared)
    return FL_ENOTSUP;
  memset(p, 0, sizeof *p);
  p->kv.table = r->table;
  p->kv.ns = r->k.ns;
  p->kv.ns_len = r->k.ns_len;
  p->kv.new_len = r->desc->kind == FL_STATE_AGGREGATING ? r->desc->agg.acc_size : 0;
  rc = o->ref_prepare(KS(r), &p->kv);
  if (rc) return rc;
  p->find = o->value_ref_prepared;
  p->prefetch = o->prefetch_prepared;
  p->take = o->version >= 6 ? o->take_prepared : NULL;
  p->prefetch2 = o->version >= 7 ? o->prefetch_prepared2 : NULL;
  p->find_ahead = o->version >= 8 ? o->value_ref_prepared_ahead : NULL;
  p->self = KS(r);
  p->backend = r->kv;
  p->desc = r->desc;
  p->agg = &r->desc->agg;
  p->opaque = r->desc->opaque;
  p->ctx = r->ctx;
  p->scratch = r->scratch;
  return FL_OK;
}

/* The cell (kg, key) of p's namespace, for undoing a failed add. */
static inline fl_kkey_t adds_kkey(const fl_st_adds_t *p, uint16_t kg, const void *key,
                                  size_t key_len) {
  fl_kkey_t k = {kg, key, key_len, p->kv.ns, p->kv.ns_len};
  return k;
}

int fl_st_adds_aggregate_slow(const fl_st_adds_t *p, uint16_t kg, const void *key, size_t key_len,
                              const fl_record_t *in, void *acc, bool fresh, const void *undo,
                              int rc) {
  const fl_aggregate_fn_t *a = p->agg;
  if (!undo) {
    /* a large accumulator: its undo copy goes to the scratch buffer */
    uint8_t *u = NULL;
    if (!fresh) {
      u = fl_buf_resize(&p->scratch->undo, a->acc_size);
      if (!u) return FL_ENOMEM;
      memcpy(u, acc, a->acc_size);
    }
    rc = a->add(p->ctx, acc, in, p->opaque);
    if (!rc) return FL_OK;
    undo = u;
  }
  if (fresh) {
    fl_kkey_t k = adds_kkey(p, kg, key, key_len);
    p->backend->ops->del(p->self, p->kv.table, &k);
  } else {
    memcpy(acc, undo, a->acc_size);
  }
  return user_rc(rc);
}

int fl_st_adds_reduce(const fl_st_adds_t *p, uint16_t kg, const void *key, size_t key_len,
                      uint64_t key_hash, const void *val, size_t len, bool *created) {
  const fl_kv_t *kv = p->backend;
  if (len && !val) return FL_EINVAL;
  fl_kv_ref_prep_t q = p->kv;
  q.new_len = len; /* a new cell holds the value */
  void *cell;
  size_t cl;
  int rc = p->find(p->self, &q, kg, key, key_len, key_hash, &cell, &cl);
  if (rc < 0) return rc;
  *created = rc == 0;
  if (rc == 0) {
    /* val may lie in another cell of the backend: cells do not move on an insert */
    copy_bytes(cell, val, len);
    return FL_OK;
  }
  fl_buf_t *o = &p->scratch->out;
  o->len = 0;
  rc = p->desc->reduce(p->ctx, cell, cl, val, len, o, p->desc->opaque);
  if (rc) return user_rc(rc);
  if (o->len == cl) {
    copy_bytes(cell, o->data, cl);
    return FL_OK;
  }
  fl_kkey_t k = adds_kkey(p, kg, key, key_len);
  return kv->ops->put(kv->self, p->kv.table, &k, o->data, o->len);
}

/* ---------------------------------------------------------------------------------- */
/* Namespace merging (session windows)                                                  */

static int merge_list(const fl_sref_t *r, const fl_kkey_t *src) {
  const void *p;
  size_t pl;
  int rc = KV(r)->get(KS(r), r->table, src, &p, &pl);
  if (rc <= 0) return rc;
  /* Copied: the backend may invalidate p when it appends. */
  uint8_t *w = fl_buf_resize(&r->scratch->work, pl);
  if (!w) return FL_ENOMEM;
  copy_bytes(w, p, pl);
  rc = KV(r)->append(KS(r), r->table, &r->k, w, pl);
  if (rc == FL_OK) rc = KV(r)->del(KS(r), r->table, src);
  return rc;
}

/* Reducing / aggregating: the folded result of dst and src goes to dst. Like Flink's
 * heap merge, a src with no dst moves as it is; with both, expired values are dropped
 * (unless visible) and the result is stamped now. */
static int merge_value(const fl_sref_t *r, const fl_kkey_t *src) {
  const void *sp, *dp;
  size_t sl, dl;
  int rc = KV(r)->get(KS(r), r->table, src, &sp, &sl);
  if (rc <= 0) return rc;
  rc = KV(r)->get(KS(r), r->table, &r->k, &dp, &dl);
  if (rc < 0) return rc;
  if (rc == 0) {
    /* Copied: the backend may invalidate sp when it writes. */
    uint8_t *w = fl_buf_resize(&r->scratch->work, sl);
    if (!w) return FL_ENOMEM;
    copy_bytes(w, sp, sl);
    rc = KV(r)->put(KS(r), r->table, &r->k, w, sl);
    goto done;
  }
  const void *a = NULL, *b = NULL;
  size_t al = 0, bl = 0;
  int ha = peek_live(r, &r->k, &a, &al);
  if (ha < 0) return ha;
  int hb = peek_live(r, src, &b, &bl);
  if (hb < 0) return hb;
  if (!ha && !hb) {
    rc = KV(r)->del(KS(r), r->table, &r->k);
  } else if (r->desc->kind == FL_STATE_REDUCING) {
    const void *res = ha ? a : b;
    size_t rl = ha ? al : bl;
    if (ha && hb) {
      rc = reduce_into(r, a, al, b, bl, &res, &rl);
    } else {
      /* Through `out`, so that no backend memory is the source of a write. */
      rc = fl_buf_set(&r->scratch->out, res, rl);
      res = r->scratch->out.data;
    }
    if (rc == FL_OK) rc = store_value(r, &r->k, res, rl);
  } else {
    const fl_aggregate_fn_t *ag = &r->desc->agg;
    if (ha && hb && !ag->merge) return FL_EINVAL;
    if ((ha && al != ag->acc_size) || (hb && bl != ag->acc_size)) return FL_EPARSE;
    size_t hdr;
    uint8_t *buf = acc_buf(r, &hdr);
    if (!buf) return FL_ENOMEM;
    memcpy(buf + hdr, ha ? a : b, ag->acc_size);
    if (ha && hb) ag->merge(buf + hdr, b, r->desc->opaque);
    rc = store_acc(r, &r->k, buf, hdr);
  }
done:
  if (rc == FL_OK) rc = KV(r)->del(KS(r), r->table, src);
  return rc;
}

int fl_st_merge_namespace(const fl_sref_t *r, const void *src_ns, size_t src_ns_len) {
  int rc = check(r, -1);
  if (rc) return rc;
  if (src_ns_len && !src_ns) return FL_EINVAL;
  if (same_bytes(src_ns, src_ns_len, r->k.ns, r->k.ns_len)) return FL_OK;
  fl_kkey_t src = r->k;
  src.ns = src_ns;
  src.ns_len = src_ns_len;
  switch (r->desc->kind) {
  case FL_STATE_LIST: return merge_list(r, &src);
  case FL_STATE_REDUCING:
    if (!r->desc->reduce) return FL_EINVAL;
    return merge_value(r, &src);
  case FL_STATE_AGGREGATING: rc = check_agg(r); return rc ? rc : merge_value(r, &src);
  default: return FL_ESTATE;
  }
}

/* ---------------------------------------------------------------------------------- */
/* Incremental TTL cleanup                                                              */

enum {
  CLEAN_NONE,
  CLEAN_LIST,
  CLEAN_MAP
};

typedef struct cleanup_ctx {
  const fl_sref_t *r;
  int pending;
  fl_kkey_t k; /* of the pending cell, pointing into scratch->ckey */
  size_t wl;   /* CLEAN_LIST: the live items in work */
} cleanup_ctx_t;

static int cleanup_value_cb(const fl_kkey_t *k, const void *v, size_t n, void *arg) {
  cleanup_ctx_t *c = arg;
  (void)k;
  if (!v || n < TS_LEN) return FL_KV_NEXT;
  return expired(c->r, rd_ts(v)) ? FL_KV_DELETE : FL_KV_NEXT;
}

static int save_key(cleanup_ctx_t *c, const fl_kkey_t *k) {
  fl_buf_t *b = &c->r->scratch->ckey;
  if (k->key_len > SIZE_MAX - k->ns_len) return FL_ENOMEM;
  uint8_t *p = fl_buf_resize(b, k->key_len + k->ns_len);
  if (!p) return FL_ENOMEM;
  copy_bytes(p, k->key, k->key_len);
  copy_bytes(p + k->key_len, k->ns, k->ns_len);
  c->k.kg = k->kg;
  c->k.key = p;
  c->k.key_len = k->key_len;
  c->k.ns = p + k->key_len;
  c->k.ns_len = k->ns_len;
  return FL_OK;
}

static int cleanup_cell_cb(const fl_kkey_t *k, const void *v, size_t n, void *arg) {
  cleanup_ctx_t *c = arg;
  const fl_sref_t *r = c->r;
  if (r->desc->kind == FL_STATE_MAP) {
    int rc = save_key(c, k);
    if (rc) return rc;
    c->pending = CLEAN_MAP;
    return FL_KV_NEXT;
  }
  if (!v) return FL_KV_NEXT;
  size_t hdr = item_hdr(r), live = 0, dead = 0;
  fl_bytes_t it;
  int64_t ts;
  const uint8_t *p = v;
  for (size_t off = 0, sz; off < n; off += sz) {
    sz = item_parse(p + off, n - off, hdr, &it, &ts);
    if (!sz) return FL_KV_NEXT; /* malformed: left for a read to report */
    if (expired(r, ts))
      dead++;
    else
      live++;
  }
  if (dead == 0) return FL_KV_NEXT;
  if (live == 0) return FL_KV_DELETE;
  uint8_t *w = fl_buf_resize(&r->scratch->work, n);
  if (!w) return FL_ENOMEM;
  size_t wl = 0;
  for (size_t off = 0, sz; off < n; off += sz) {
    sz = item_parse(p + off, n - off, hdr, &it, &ts);
    if (!expired(r, ts)) wl += item_write(w + wl, hdr, it.data, it.len, ts);
  }
  int rc = save_key(c, k);
  if (rc) return rc;
  c->wl = wl;
  c->pending = CLEAN_LIST;
  return FL_KV_NEXT;
}

static int cleanup_map_cb(const void *uk, size_t ukl, const void *v, size_t vl, void *arg) {
  const fl_sref_t *r = arg;
  (void)uk;
  (void)ukl;
  if (vl < TS_LEN) return FL_KV_NEXT;
  return expired(r, rd_ts(v)) ? FL_KV_DELETE : FL_KV_NEXT;
}

int fl_st_ttl_cleanup_step(const fl_sref_t *r, size_t n) {
  int rc = check(r, -1);
  if (rc) return rc;
  if (!ttl_on(r) || n == 0) return FL_OK;
  uint64_t local = 0;
  uint64_t *cursor = r->cleanup ? &r->cleanup->cursor : &local;
  cleanup_ctx_t c = {.r = r};
  fl_state_kind_t kind = r->desc->kind;
  if (kind != FL_STATE_LIST && kind != FL_STATE_MAP)
    return KV(r)->iterate(KS(r), r->table, cursor, n, cleanup_value_cb, &c);
  /* Lists and maps may need a write to the cell, which must wait until the walk
   * returns: one cell per walk. */
  for (size_t i = 0; i < n && rc == FL_OK; i++) {
    c.pending = CLEAN_NONE;
    rc = KV(r)->iterate(KS(r), r->table, cursor, 1, cleanup_cell_cb, &c);
    if (rc) break;
    if (c.pending == CLEAN_LIST)
      rc = KV(r)->put(KS(r), r->table, &c.k, r->scratch->work.data, c.wl);
    else if (c.pending == CLEAN_MAP)
      rc = KV(r)->map_iter(KS(r), r->table, &c.k, cleanup_map_cb, (void *)r);
    if (*cursor == 0) break; /* end of a pass */
  }
  return rc;
}
