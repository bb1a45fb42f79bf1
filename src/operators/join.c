/*
 * Joins of two keyed streams.
 *
 * Window join (Flink's JoinedStreams: a coGroup over the union of both inputs). The
 * builder (src/api/two_input.c) makes two nodes: a FL_NODE_WINDOW_JOIN node with both
 * keyed inputs, whose class below prefixes every value with its side, chained to an
 * ordinary window node whose window function, fl_window_join_fire, pairs the tagged
 * elements when the window fires. All windowing (assignment, sessions of both sides
 * merging, lateness, processing time) is window.c's.
 *
 * Interval join (Flink's IntervalJoinOperator). Per key, each side buffers its elements
 * in a map state: user key = the element's timestamp (8 bytes, big-endian with the sign
 * bit flipped, so an ordered backend keeps buckets in time order), value = the bucket of
 * elements with that timestamp, each [u32 length, native][value bytes]. An element:
 *  - without a timestamp fails the job (interval joins are event time);
 *  - with ts < the operator's watermark is late: counted in late_records_dropped and sent
 *    to its side's late output when one is set, and not buffered;
 *  - otherwise is added to its side's buffer and joined with every buffered element of the
 *    other side in range: a left element at t with right elements at [t + lower,
 *    t + upper], a right element at t with left elements at [t - upper, t - lower];
 *    exclusive bounds are lower + 1 and upper - 1. Pairs run the join function with
 *    fl_ctx_timestamp() = max(left ts, right ts), in order of the other side's timestamps;
 *  - gets a cleanup timer (event time, namespace = side byte | bucket timestamp): a left
 *    bucket at t is removed when the watermark reaches t + upper (t when upper <= 0), a
 *    right bucket at t when it reaches t - lower (t when lower >= 0). These are Flink's
 *    times; after them no element that is not late can fall into the bucket's range.
 * Finding partners walks the key's buffer of the other side, as Flink does: O(distinct
 * buffered timestamps of the key) per element, plus the matches.
 *
 * Time arithmetic saturates at the ends of int64.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "operators/operators.h"
#include "operators/two_input.h"
#include "util/order.h"
#include "util/sat.h"
#include "util/vec.h"

/* ---------------------------------------------------------------------------------- */
/* Window join                                                                          */

/* The tagging node: one buffer per subtask for the tagged value. */
static int wjoin_open(fl_op_t *op) {
  fl_buf_t *b = calloc(1, sizeof *b);
  if (!b) return FL_ENOMEM;
  fl_buf_init(b);
  op->state = b;
  return FL_OK;
}

static int wjoin_process(fl_op_t *op, int input, const fl_record_t *rec) {
  fl_buf_t *b = op->state;
  uint8_t *p = fl_buf_resize(b, rec->value_len + 1);
  if (!p)
    return fl_op_fail(op, FL_ENOMEM, "out of memory tagging a record of %zu bytes", rec->value_len);
  p[0] = input == 0 ? FL_WJOIN_LEFT : FL_WJOIN_RIGHT;
  if (rec->value_len) memcpy(p + 1, rec->value, rec->value_len);
  fl_record_t out = {rec->key, rec->key_len, p, rec->value_len + 1, rec->timestamp};
  return fl_op_emit(op, &out);
}

static void wjoin_close(fl_op_t *op) {
  fl_buf_t *b = op->state;
  if (!b) return;
  fl_buf_free(b);
  free(b);
  op->state = NULL;
}

const fl_op_class_t fl_op_window_join_class = {
    .kind = "window_join", .open = wjoin_open, .process = wjoin_process, .close = wjoin_close};

/* Right elements are remembered by index; this many without an allocation. */
#define WJOIN_STACK_RIGHT 64

int fl_window_join_fire(fl_context_t *ctx, const fl_window_t *window, const fl_record_t *el,
                        size_t n, void *opaque) {
  (void)window;
  const fl_node_t *tag = opaque;
  fl_op_t *op = ctx->op;
  size_t stack[WJOIN_STACK_RIGHT];
  size_t *right = stack;
  size_t nl = 0, nr = 0;
  int rc = FL_OK;
  for (size_t i = 0; i < n; i++) {
    if (el[i].value_len < 1)
      return fl_op_fail(op, FL_ESTATE, "window join '%s': an element lost its side tag",
                        op->node->name);
    if (((const uint8_t *)el[i].value)[0] == FL_WJOIN_LEFT)
      nl++;
    else
      nr++;
  }
  /* An inner join: a window with one side only has no pairs. */
  if (nl == 0 || nr == 0) return FL_OK;
  if (nr > WJOIN_STACK_RIGHT) {
    right = malloc(nr * sizeof *right);
    if (!right) return fl_op_fail(op, FL_ENOMEM, "out of memory joining %zu elements", n);
  }
  nr = 0;
  for (size_t i = 0; i < n; i++)
    if (((const uint8_t *)el[i].value)[0] != FL_WJOIN_LEFT) right[nr++] = i;
  /* Every left element with every right element, each side in arrival order, as Flink's
   * coGroup-based join does. */
  for (size_t i = 0; i < n && rc == FL_OK; i++) {
    if (((const uint8_t *)el[i].value)[0] != FL_WJOIN_LEFT) continue;
    fl_record_t a = el[i];
    a.value = (const uint8_t *)a.value + 1;
    a.value_len--;
    for (size_t j = 0; j < nr; j++) {
      fl_record_t b = el[right[j]];
      b.value = (const uint8_t *)b.value + 1;
      b.value_len--;
      rc = tag->u.wjoin.fn(ctx, &a, &b, tag->u.wjoin.opaque);
      if (rc < 0) {
        fl_op_user_failed(op, rc, "join function");
        break;
      }
      rc = FL_OK;
    }
  }
  if (right != stack) free(right);
  return rc;
}

/* ---------------------------------------------------------------------------------- */
/* Interval join                                                                        */

#define IJ_TS_LEN 8
#define IJ_NS_LEN (1 + IJ_TS_LEN)
#define IJ_ITEM_HDR 4

enum {
  IJ_LEFT = 0,
  IJ_RIGHT = 1
};

typedef struct ij_match {
  int64_t ts;
  size_t seq; /* position in the copy: bucket order within one timestamp */
  const uint8_t *value;
  size_t len;
} ij_match_t;

typedef struct ij_op {
  int64_t lower, upper; /* inclusive, after the exclusive flags */
  fl_buf_t bucket;      /* a bucket being rewritten */
  fl_buf_t copy;        /* matching elements, copied out of the other side's buffer */
  ij_match_t *matches;
  size_t n_matches, cap_matches;
  /* the range being collected */
  int64_t lo, hi;
  int err;
} ij_op_t;

static int ij_open(fl_op_t *op) {
  const fl_interval_join_opts_t *o = &op->node->u.ijoin.o;
  ij_op_t *st = calloc(1, sizeof *st);
  if (!st) return FL_ENOMEM;
  /* Flink's IntervalJoinOperator: an exclusive bound moves inwards by one ms. A pair of
   * exclusive bounds one ms apart leaves an empty interval, which joins nothing. */
  st->lower = o->lower_exclusive ? fl_sat_add(o->lower_ms, 1) : o->lower_ms;
  st->upper = o->upper_exclusive ? fl_sat_sub(o->upper_ms, 1) : o->upper_ms;
  fl_buf_init(&st->bucket);
  fl_buf_init(&st->copy);
  op->state = st;
  return FL_OK;
}

static void ij_close(fl_op_t *op) {
  ij_op_t *st = op->state;
  if (!st) return;
  fl_buf_free(&st->bucket);
  fl_buf_free(&st->copy);
  free(st->matches);
  free(st);
  op->state = NULL;
}

static const struct fl_state_desc *side_desc(const fl_op_t *op, int side) {
  return side == IJ_LEFT ? op->node->u.ijoin.left : op->node->u.ijoin.right;
}

/* Appends the element to its side's bucket at ts. */
static int buffer_add(fl_op_t *op, const fl_sref_t *r, const uint8_t *uk, const fl_record_t *rec) {
  ij_op_t *st = op->state;
  if (rec->value_len > UINT32_MAX)
    return fl_op_fail(op, FL_EINVAL, "interval join '%s': a value of %zu bytes is too large",
                      op->node->name, rec->value_len);
  const void *old = NULL;
  size_t old_len = 0;
  int rc = fl_st_map_get(r, uk, IJ_TS_LEN, &old, &old_len);
  if (rc < 0) return rc;
  if (rc == 0) old_len = 0;
  /* The old bucket is borrowed from the backend: copy it before the put. */
  uint8_t *p = fl_buf_resize(&st->bucket, old_len + IJ_ITEM_HDR + rec->value_len);
  if (!p) return FL_ENOMEM;
  if (old_len) memcpy(p, old, old_len);
  uint32_t l = (uint32_t)rec->value_len;
  memcpy(p + old_len, &l, IJ_ITEM_HDR);
  if (rec->value_len) memcpy(p + old_len + IJ_ITEM_HDR, rec->value, rec->value_len);
  return fl_st_map_put(r, uk, IJ_TS_LEN, p, st->bucket.len);
}

/* map_foreach callback: copies the buckets of timestamps in [lo, hi] to st->copy as
 * [i64 ts][u32 len][bytes] records. The views are only valid during the walk, and the
 * join function may touch state, so it runs after the walk, on the copies. */
static int collect_cb(const void *uk, size_t ukl, const void *v, size_t vl, void *arg) {
  ij_op_t *st = arg;
  if (ukl != IJ_TS_LEN) {
    st->err = FL_ESTATE;
    return 1;
  }
  int64_t ts = fl_order_get_i64(uk);
  if (ts < st->lo || ts > st->hi) return 0;
  const uint8_t *p = v;
  for (size_t off = 0; off < vl;) {
    uint32_t l;
    if (vl - off < IJ_ITEM_HDR) goto corrupt;
    memcpy(&l, p + off, IJ_ITEM_HDR);
    if (vl - off - IJ_ITEM_HDR < l) goto corrupt;
    size_t at = st->copy.len;
    uint8_t *c = fl_buf_resize(&st->copy, at + IJ_TS_LEN + IJ_ITEM_HDR + l);
    if (!c) {
      st->err = FL_ENOMEM;
      return 1;
    }
    memcpy(c + at, &ts, IJ_TS_LEN);
    memcpy(c + at + IJ_TS_LEN, p + off, IJ_ITEM_HDR + (size_t)l);
    off += IJ_ITEM_HDR + (size_t)l;
  }
  return 0;
corrupt:
  st->err = FL_EPARSE;
  return 1;
}

static int cmp_match(const void *pa, const void *pb) {
  const ij_match_t *a = pa, *b = pb;
  if (a->ts != b->ts) return a->ts < b->ts ? -1 : 1;
  return a->seq < b->seq ? -1 : a->seq > b->seq;
}

/* Turns st->copy into st->matches, sorted by timestamp (bucket order within one). */
static int index_matches(ij_op_t *st) {
  st->n_matches = 0;
  for (size_t off = 0; off < st->copy.len;) {
    if (FL_VEC_RESERVE(st->matches, st->cap_matches, st->n_matches + 1)) return FL_ENOMEM;
    ij_match_t *m = &st->matches[st->n_matches++];
    uint32_t l;
    memcpy(&m->ts, st->copy.data + off, IJ_TS_LEN);
    memcpy(&l, st->copy.data + off + IJ_TS_LEN, IJ_ITEM_HDR);
    m->seq = st->n_matches;
    m->value = st->copy.data + off + IJ_TS_LEN + IJ_ITEM_HDR;
    m->len = l;
    off += IJ_TS_LEN + IJ_ITEM_HDR + (size_t)l;
  }
  /* A bucket is copied contiguously, so copy order is bucket order within a timestamp. */
  qsort(st->matches, st->n_matches, sizeof *st->matches, cmp_match);
  return FL_OK;
}

static int ij_process(fl_op_t *op, int input, const fl_record_t *rec) {
  ij_op_t *st = op->state;
  const fl_node_t *node = op->node;
  int side = input == 0 ? IJ_LEFT : IJ_RIGHT;
  int64_t ts = rec->timestamp;
  if (ts == FL_TS_NONE)
    return fl_op_fail(op, FL_EINVAL,
                      "interval join '%s': a record of the %s input has no timestamp "
                      "(interval joins are event time: assign timestamps before the join)",
                      node->name, side == IJ_LEFT ? "first" : "second");
  if (ts < op->wm) {
    const fl_output_tag_t *tag =
        side == IJ_LEFT ? node->u.ijoin.o.left_late : node->u.ijoin.o.right_late;
    atomic_fetch_add_explicit(&op->m->late_dropped, 1, memory_order_relaxed);
    return tag ? fl_op_emit_side(op, tag, rec) : FL_OK;
  }

  uint8_t ns[IJ_NS_LEN];
  ns[0] = (uint8_t)side;
  fl_order_put_i64(ns + 1, ts);
  fl_sref_t own, other;
  int rc = fl_op_sref(op, side_desc(op, side), NULL, 0, &own);
  if (!rc) rc = fl_op_sref(op, side_desc(op, !side), NULL, 0, &other);
  if (!rc) rc = buffer_add(op, &own, ns + 1, rec);
  if (rc) return rc;

  if (side == IJ_LEFT) {
    st->lo = fl_sat_add(ts, st->lower);
    st->hi = fl_sat_add(ts, st->upper);
  } else {
    st->lo = fl_sat_sub(ts, st->upper);
    st->hi = fl_sat_sub(ts, st->lower);
  }
  st->copy.len = 0;
  st->err = FL_OK;
  if (st->lo <= st->hi) {
    rc = fl_st_map_foreach(&other, collect_cb, st);
    if (rc < 0) return rc;
    if (st->err)
      return fl_op_fail(op, st->err, "interval join '%s': cannot read its buffer", node->name);
  }
  if (st->copy.len) {
    rc = index_matches(st);
    if (rc) return rc;
    fl_record_t self = *rec, them = {op->ctx.key, op->ctx.key_len, NULL, 0, 0};
    for (size_t i = 0; i < st->n_matches; i++) {
      them.value = st->matches[i].value;
      them.value_len = st->matches[i].len;
      them.timestamp = st->matches[i].ts;
      op->ctx.ts = ts > them.timestamp ? ts : them.timestamp;
      rc = side == IJ_LEFT ? node->u.ijoin.fn(&op->ctx, &self, &them, node->u.ijoin.opaque)
                           : node->u.ijoin.fn(&op->ctx, &them, &self, node->u.ijoin.opaque);
      if (rc < 0) break;
    }
    op->ctx.ts = ts;
    if (rc < 0) return fl_op_user_failed(op, rc, "join function");
  }

  int64_t cleanup;
  if (side == IJ_LEFT)
    cleanup = st->upper > 0 ? fl_sat_add(ts, st->upper) : ts;
  else
    cleanup = st->lower < 0 ? fl_sat_sub(ts, st->lower) : ts;
  return fl_timers_register(op->timers, FL_EVENT_TIME, op->ctx.kg, op->ctx.key, op->ctx.key_len, ns,
                            IJ_NS_LEN, cleanup);
}

static int ij_on_timer(fl_op_t *op, fl_time_domain_t d, const fl_timer_t *t) {
  if (d != FL_EVENT_TIME || t->ns_len != IJ_NS_LEN) return FL_OK;
  const uint8_t *ns = t->ns;
  if (ns[0] != IJ_LEFT && ns[0] != IJ_RIGHT) return FL_OK;
  /* The namespace names the bucket itself, so no inverse of the cleanup time (which
   * saturation would make inexact) is needed. */
  uint8_t uk[IJ_TS_LEN];
  memcpy(uk, ns + 1, IJ_TS_LEN);
  fl_sref_t r;
  int rc = fl_op_sref(op, side_desc(op, ns[0]), NULL, 0, &r);
  if (!rc) rc = fl_st_map_remove(&r, uk, IJ_TS_LEN);
  return rc;
}

const fl_op_class_t fl_op_interval_join_class = {.kind = "interval_join",
                                                 .open = ij_open,
                                                 .process = ij_process,
                                                 .on_timer = ij_on_timer,
                                                 .close = ij_close};

/* ---------------------------------------------------------------------------------- */
/* Test accessor                                                                        */

typedef struct count_ctx {
  fl_buf_t cells; /* [u16 kg][u32 key len][key] of every map cell */
  size_t items;
  int err;
} count_ctx_t;

static int cell_cb(const fl_kkey_t *k, const void *val, size_t len, void *arg) {
  (void)val;
  (void)len;
  count_ctx_t *c = arg;
  size_t at = c->cells.len;
  uint8_t *p = fl_buf_resize(&c->cells, at + 6 + k->key_len);
  if (!p) {
    c->err = FL_ENOMEM;
    return FL_KV_STOP;
  }
  uint32_t kl = (uint32_t)k->key_len;
  memcpy(p + at, &k->kg, 2);
  memcpy(p + at + 2, &kl, 4);
  if (kl) memcpy(p + at + 6, k->key, kl);
  return FL_KV_NEXT;
}

static int bucket_cb(const void *uk, size_t ukl, const void *v, size_t vl, void *arg) {
  (void)uk;
  (void)ukl;
  count_ctx_t *c = arg;
  const uint8_t *p = v;
  for (size_t off = 0; off + IJ_ITEM_HDR <= vl;) {
    uint32_t l;
    memcpy(&l, p + off, IJ_ITEM_HDR);
    off += IJ_ITEM_HDR + (size_t)l;
    c->items++;
  }
  return FL_KV_NEXT;
}

/* The cells are listed first and visited after the walk, so no map is read while the
 * table is being walked. */
static int count_side(fl_op_t *op, int side, size_t *out) {
  count_ctx_t c = {.items = 0, .err = 0};
  fl_buf_init(&c.cells);
  fl_sref_t r;
  int rc = fl_op_sref(op, side_desc(op, side), NULL, 0, &r);
  uint64_t cursor = 0;
  if (!rc) {
    do {
      rc = op->kv->ops->iterate(op->kv->self, r.table, &cursor, 64, cell_cb, &c);
    } while (!rc && !c.err && cursor != 0);
  }
  if (!rc) rc = c.err;
  for (size_t off = 0; !rc && off < c.cells.len;) {
    fl_kkey_t k = {0, NULL, 0, NULL, 0};
    uint32_t kl;
    memcpy(&k.kg, c.cells.data + off, 2);
    memcpy(&kl, c.cells.data + off + 2, 4);
    k.key = c.cells.data + off + 6;
    k.key_len = kl;
    off += 6 + (size_t)kl;
    rc = op->kv->ops->map_iter(op->kv->self, r.table, &k, bucket_cb, &c);
  }
  fl_buf_free(&c.cells);
  *out = c.items;
  return rc;
}

int fl_interval_join_buffered(fl_context_t *ctx, size_t *left, size_t *right) {
  if (!ctx || !left || !right || !ctx->op || ctx->op->node->kind != FL_NODE_INTERVAL_JOIN ||
      !ctx->op->state || !ctx->keyed)
    return FL_EINVAL;
  int rc = count_side(ctx->op, IJ_LEFT, left);
  if (!rc) rc = count_side(ctx->op, IJ_RIGHT, right);
  return rc;
}
