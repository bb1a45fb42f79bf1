/*
 * The window operator (its builders, fl_window_*, are in src/api/window_build.c).
 *
 * It follows Flink's WindowOperator with the default triggers (EventTimeTrigger /
 * ProcessingTimeTrigger), as docs/event-time.md describes:
 *  - an element is assigned to its windows; windows that are late
 *    (cleanup(w) = max_ts(w) + allowed lateness <= watermark) are skipped;
 *  - adding to a window whose max_ts <= watermark fires it at once (an element within
 *    the allowed lateness re-emits the full result), otherwise a timer at max_ts fires
 *    it; a timer at cleanup(w) removes the window's state (one timer when lateness is 0);
 *  - an element added to no window is a dropped late element (late side output when
 *    set, counted either way): every element is in a window's result or late.
 *
 * State layout (per key, namespace = the window):
 *  - contents: REDUCING (reduce), AGGREGATING (aggregate) or LIST (process) state; a
 *    list item is [i64 ts, native][value bytes];
 *  - session windows only, empty namespace: the key's live windows, a VALUE of encoded
 *    windows (16 bytes each) sorted by start. Live windows never intersect: every
 *    insertion merges all windows that intersect (or touch) the new one.
 *
 * A window namespace is 16 bytes: start then end, each big-endian with the sign bit
 * flipped, so that byte order is numeric order (useful for ordered backends) and the
 * bytes do not depend on the host.
 *
 * Arithmetic near the ends of int64 saturates: a window that would start before
 * INT64_MIN starts at INT64_MIN, one that would end after INT64_MAX ends at INT64_MAX,
 * and cleanup times and ts + lateness saturate at INT64_MAX (as the spec says). Flink
 * (Java) wraps around there instead, which gives meaningless windows.
 */
#include <assert.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "operators/operators.h"
#include "util/hash.h"
#include "util/order.h"
#include "util/sat.h"
#include "util/vec.h"

#define WIN_NS_LEN 16
/* Group timers (tumbling and sliding windows with reduce or aggregate): one timer per
 * (key group, window, time) instead of one per key, namespace = window | this byte. */
#define WIN_GROUP_MARK 0x01
#define WIN_GROUP_NS_LEN (WIN_NS_LEN + 1)

/* ---------------------------------------------------------------------------------- */
/* Time arithmetic                                                                      */

/* (ts - offset) mod size in [0, size), without forming ts - offset (which can
 * overflow). size > 0. */
static int64_t pos_mod(int64_t ts, int64_t offset, int64_t size) {
  int64_t a = ts % size, b = offset % size;
  if (a < 0) a += size;
  if (b < 0) b += size;
  int64_t r = a - b; /* both in [0, size): no overflow */
  if (r < 0) r += size;
  return r;
}

static int64_t max_ts(fl_window_t w) { return w.end - 1; }

static int64_t cleanup_time(const fl_window_conf_t *c, fl_window_t w) {
  /* Processing-time windows are cleaned when they fire. */
  if (c->domain != FL_EVENT_TIME) return max_ts(w);
  return fl_sat_add(max_ts(w), c->allowed_lateness);
}

static bool window_late(const fl_op_t *op, const fl_window_conf_t *c, fl_window_t w) {
  return c->domain == FL_EVENT_TIME && cleanup_time(c, w) <= op->wm;
}

/* ---------------------------------------------------------------------------------- */
/* Namespace encoding                                                                   */

static void ns_encode(uint8_t ns[WIN_NS_LEN], fl_window_t w) {
  fl_order_put_i64(ns, w.start);
  fl_order_put_i64(ns + 8, w.end);
}

static fl_window_t ns_decode(const uint8_t *ns) {
  fl_window_t w = {fl_order_get_i64(ns), fl_order_get_i64(ns + 8)};
  return w;
}

/* ---------------------------------------------------------------------------------- */
/* The operator                                                                         */

/* Tumbling and sliding windows: at most this many windows per element are kept ready
 * per slice (a slide-long run of timestamps whose elements share their windows). */
#define WIN_SLOTS_MAX 64

/* Group timers registered since a timer last fired, so that the first contents of
 * every key of a group need not register the group's timer again: direct-mapped, an
 * entry counts in the epoch it was made in, and every timer that fires starts a new
 * epoch (only firing removes a group timer). */
#define WIN_REG_CACHE 256

typedef struct win_reg {
  uint8_t ns[WIN_NS_LEN];
  int64_t ts;
  uint64_t epoch;
  uint16_t kg;
} win_reg_t;

/* One window of the current slice. */
typedef struct win_slot {
  fl_window_t w;
  int64_t cleanup; /* cleanup_time(w) */
  uint8_t ns[WIN_NS_LEN];
} win_slot_t;

/* Per-subtask scratch memory, reused across records so the hot path does not allocate. */
typedef struct win_op {
  const fl_window_conf_t *conf;
  fl_sref_t cref; /* the contents state, re-pointed at each element's key and window */
  bool have_cref;
  /* Tumbling and sliding: the windows of elements with timestamps in [slice_lo,
   * slice_hi), latest start first; n_slots = 0 when none are kept. */
  int64_t slice_lo, slice_hi;
  win_slot_t slots[WIN_SLOTS_MAX];
  size_t n_slots;
  /* The contents adds of the slots' windows (and kadds, their group key lists' appends,
   * if kadds_ready) prepared once per slice: adds_ready 1 when prepared, 0 when not yet,
   * -1 when they cannot be (list contents, TTL, a backend without prepared lookups). */
  fl_st_adds_t adds[WIN_SLOTS_MAX], kadds[WIN_SLOTS_MAX];
  int adds_ready;
  /* References fl_op_sref filled once and then re-pointed (the descriptors are internal,
   * without TTL): the contents, for firing and clearing (fref), and the group keys. */
  fl_sref_t fref, kref;
  bool have_fref, have_kref, kadds_ready;
  uint8_t *item; /* an encoded list item */
  size_t item_cap;
  uint8_t *live; /* session windows of the current key, encoded */
  size_t live_cap;
  uint8_t *copy; /* process: a copy of the window's items */
  size_t copy_cap;
  fl_record_t *elems; /* process: the elements handed to the user */
  size_t elems_cap;
  win_reg_t reg[WIN_REG_CACHE];
  uint64_t reg_epoch; /* from 1: a zeroed entry is of no epoch */
  uint8_t *gkeys;     /* group timers: the keys of the window firing, copied */
  size_t gkeys_cap;
  size_t *glen; /* ... and their lengths */
  size_t glen_cap;
  /* Whether the group timers firing at fire_pf_ts prefetch: decided by the first of
   * them, while the contents table still holds the whole burst (its cells go as they
   * fire, but stay spread over the memory the burst had). */
  int64_t fire_pf_ts;
  bool fire_pf, fire_pf_set;
} win_op_t;

static int win_open(fl_op_t *op) {
  win_op_t *st = calloc(1, sizeof *st);
  if (!st) return FL_ENOMEM;
  st->conf = &op->node->u.window;
  st->reg_epoch = 1;
  op->state = st;
  return 0;
}

static void win_close(fl_op_t *op) {
  win_op_t *st = op->state;
  if (!st) return;
  free(st->item);
  free(st->live);
  free(st->copy);
  free(st->elems);
  free(st->gkeys);
  free(st->glen);
  free(st);
  op->state = NULL;
}

/* A window's timer: the current key's, or with group timers its key group's (no key,
 * the namespace followed by WIN_GROUP_MARK). */
static int reg_timer_slow(fl_op_t *op, const uint8_t *ns, int64_t ts, win_reg_t *e);

static inline int reg_timer(fl_op_t *op, const uint8_t *ns, int64_t ts) {
  win_op_t *st = op->state;
  if (st->conf->keys) { /* a group timer registered since a timer last fired: nothing to do */
    uint16_t kg = op->ctx.kg;
    win_reg_t *e = &st->reg[(kg + (uint64_t)ts * 0x9e3779b97f4a7c15ull) % WIN_REG_CACHE];
    if (e->epoch == st->reg_epoch && e->kg == kg && e->ts == ts &&
        memcmp(e->ns, ns, WIN_NS_LEN) == 0)
      return 0;
    return reg_timer_slow(op, ns, ts, e);
  }
  return reg_timer_slow(op, ns, ts, NULL);
}

/* reg_timer once its cache missed (e: the entry to fill), or without group timers (e
 * NULL). */
static __attribute__((noinline)) int reg_timer_slow(fl_op_t *op, const uint8_t *ns, int64_t ts,
                                                    win_reg_t *e) {
  const fl_window_conf_t *c = &op->node->u.window;
  if (e) {
    win_op_t *st = op->state;
    uint16_t kg = op->ctx.kg;
    uint8_t gns[WIN_GROUP_NS_LEN];
    memcpy(gns, ns, WIN_NS_LEN);
    gns[WIN_NS_LEN] = WIN_GROUP_MARK;
    int rc = fl_timers_register(op->timers, c->domain, kg, "", 0, gns, sizeof gns, ts);
    if (rc) return rc;
    e->epoch = st->reg_epoch;
    e->kg = kg;
    e->ts = ts;
    memcpy(e->ns, ns, WIN_NS_LEN);
    return 0;
  }
  return fl_timers_register(op->timers, c->domain, op->ctx.kg, op->ctx.key, op->ctx.key_len, ns,
                            WIN_NS_LEN, ts);
}

/* r (cached in *have) re-pointed at the current key and namespace ns, fl_op_sref the
 * first time. */
static int cached_ref(fl_op_t *op, const struct fl_state_desc *d, const uint8_t *ns, fl_sref_t *r,
                      bool *have) {
  if (*have) {
    fl_op_sref_rekey(op, r, ns, WIN_NS_LEN);
    return 0;
  }
  int rc = fl_op_sref(op, d, ns, WIN_NS_LEN, r);
  if (!rc) *have = true;
  return rc;
}

/* The contents of window ns for the current key, for firing and clearing: borrowed
 * until the next call. */
static int fire_ref(fl_op_t *op, const uint8_t *ns, fl_sref_t **r) {
  win_op_t *st = op->state;
  *r = &st->fref;
  return cached_ref(op, st->conf->contents, ns, &st->fref, &st->have_fref);
}

/* The cell listing the keys with contents in window ns, in the current key group:
 * borrowed until the next call. */
static int keys_ref(fl_op_t *op, const uint8_t *ns, fl_sref_t **r) {
  win_op_t *st = op->state;
  int rc = cached_ref(op, st->conf->keys, ns, &st->kref, &st->have_kref);
  if (rc) return rc;
  st->kref.k.key = "";
  st->kref.k.key_len = 0;
  st->kref.key_hashed = false;
  *r = &st->kref;
  return 0;
}

static int del_timer(fl_op_t *op, const uint8_t *ns, int64_t ts) {
  return fl_timers_delete(op->timers, op->node->u.window.domain, op->ctx.kg, op->ctx.key,
                          op->ctx.key_len, ns, WIN_NS_LEN, ts);
}

/* Emits the result v (len bytes) of a reduce or aggregate window w for the current
 * key. */
static int fire_result(fl_op_t *op, fl_window_t w, const void *v, size_t len) {
  const fl_window_conf_t *c = &op->node->u.window;
  int64_t saved_ts = op->ctx.ts;
  /* Results carry the window's max timestamp (Flink's TimestampedCollector). */
  op->ctx.ts = max_ts(w);
  int rc;
  if (c->fn_kind == FL_WFN_REDUCE) {
    fl_record_t out = {op->ctx.key, op->ctx.key_len, v, len, max_ts(w)};
    rc = fl_op_emit(op, &out);
  } else {
    rc = c->agg.result(&op->ctx, &w, v, c->opaque);
  }
  op->ctx.ts = saved_ts;
  return rc < 0 ? rc : 0;
}

/* Hands a process window's elements (the list r) to the user's function. */
static int fire_process(fl_op_t *op, fl_window_t w, const fl_sref_t *r) {
  win_op_t *st = op->state;
  const fl_window_conf_t *c = st->conf;
  const fl_bytes_t *items = NULL;
  size_t n = 0, bytes = 0;
  int rc = fl_st_list_get(r, &items, &n);
  if (rc < 0 || n == 0) return rc < 0 ? rc : 0;
  /* The views are borrowed until the next state call; the user function may make
   * one, so the elements get a copy. */
  for (size_t i = 0; i < n; i++) bytes += items[i].len;
  rc = FL_VEC_RESERVE(st->copy, st->copy_cap, bytes ? bytes : 1);
  if (!rc) rc = FL_VEC_RESERVE(st->elems, st->elems_cap, n);
  if (rc) return rc;
  size_t off = 0;
  for (size_t i = 0; i < n; i++) {
    if (items[i].len < 8) {
      rc = fl_op_fail(op, FL_ESTATE, "window '%s': corrupt window contents", op->node->name);
      return rc < 0 ? rc : 0;
    }
    memcpy(st->copy + off, items[i].data, items[i].len);
    fl_record_t *e = &st->elems[i];
    memcpy(&e->timestamp, st->copy + off, 8);
    e->key = op->ctx.key;
    e->key_len = op->ctx.key_len;
    e->value = st->copy + off + 8;
    e->value_len = items[i].len - 8;
    off += items[i].len;
  }
  int64_t saved_ts = op->ctx.ts;
  op->ctx.ts = max_ts(w);
  rc = c->process(&op->ctx, &w, st->elems, n, c->opaque);
  op->ctx.ts = saved_ts;
  return rc < 0 ? rc : 0;
}

/* Emits the window's result for the current key, if the window has contents (ns: w
 * encoded). With taken non-NULL the contents are removed too if the backend can do both
 * in one lookup (fl_st_take): *taken tells whether it did. */
static int fire_take(fl_op_t *op, fl_window_t w, const uint8_t *ns, bool *taken) {
  const fl_window_conf_t *c = &op->node->u.window;
  fl_sref_t *r;
  int rc = fire_ref(op, ns, &r);
  if (rc) return rc;
  if (c->fn_kind == FL_WFN_PROCESS) return fire_process(op, w, r);
  const void *v = NULL;
  size_t len = 0;
  rc = taken ? fl_st_take(r, &v, &len) : FL_ENOTSUP;
  if (rc == FL_ENOTSUP)
    rc = c->fn_kind == FL_WFN_REDUCE ? fl_st_reducing_get(r, &v, &len)
                                     : fl_st_aggregating_get(r, &v);
  else if (taken)
    *taken = true;
  return rc <= 0 ? rc : fire_result(op, w, v, len);
}

static int fire(fl_op_t *op, fl_window_t w) {
  uint8_t ns[WIN_NS_LEN];
  ns_encode(ns, w);
  return fire_take(op, w, ns, NULL);
}

/* Adds the element to window w's contents; *created tells whether the contents were
 * absent before (always true for process windows, whose list appends do not tell). */
static inline int add_contents(fl_op_t *op, const uint8_t *ns, const fl_record_t *rec,
                               bool *created) {
  win_op_t *st = op->state;
  const fl_window_conf_t *c = st->conf;
  fl_sref_t *r = &st->cref;
  int rc;
  if (st->have_cref) {
    fl_op_sref_rekey(op, r, ns, WIN_NS_LEN);
  } else {
    rc = fl_op_sref(op, c->contents, ns, WIN_NS_LEN, r);
    if (rc) return rc;
    st->have_cref = true;
  }
  *created = true;
  switch (c->fn_kind) {
  case FL_WFN_REDUCE: return fl_st_reducing_add_created(r, rec->value, rec->value_len, created);
  case FL_WFN_AGGREGATE: return fl_st_aggregating_add_created(r, rec, created);
  case FL_WFN_PROCESS:
    rc = FL_VEC_RESERVE(st->item, st->item_cap, rec->value_len + 8);
    if (rc) return rc;
    memcpy(st->item, &rec->timestamp, 8);
    if (rec->value_len) memcpy(st->item + 8, rec->value, rec->value_len);
    return fl_st_list_add(r, st->item, rec->value_len + 8);
  }
  return FL_EINVAL;
}

/* The trigger's onElement and the cleanup timer, after an element was added to the
 * (not late) window w.
 *
 * Timers are registered when the window's contents are created (fresh), not for every
 * element as Flink does: registering an existing timer changes nothing, and while a
 * window has contents its timers are pending. Its firing timer (max_ts) was
 * registered with the contents unless max_ts was already behind the watermark, which
 * only grows, so it has not fired while max_ts is ahead of the watermark; its cleanup
 * timer fires together with the removal of the contents; and a timer is deleted only
 * with the contents (clear_window) or when sessions merge, whose cover is fresh. */
static int after_add(fl_op_t *op, fl_window_t w, const uint8_t *ns, bool fresh, size_t slot) {
  const fl_window_conf_t *c = &op->node->u.window;
  win_op_t *st = op->state;
  int rc = 0;
  if (fresh && c->keys) {
    /* Group timers: the key joins its group's list of the window's keys, in the order
     * its own timer would have been registered (with slot's prepared append if any). */
    fl_sref_t *kr;
    if (slot < WIN_SLOTS_MAX && st->kadds_ready)
      rc = fl_st_adds_append(&st->kadds[slot], op->ctx.kg, "", 0, op->ctx.key, op->ctx.key_len);
    else if (!(rc = keys_ref(op, ns, &kr)))
      rc = fl_st_list_add(kr, op->ctx.key, op->ctx.key_len);
    if (rc) return rc;
  }
  if (c->domain == FL_EVENT_TIME) {
    if (max_ts(w) <= op->wm)
      rc = fire(op, w); /* within the allowed lateness: re-emit the full result */
    else if (fresh)
      rc = reg_timer(op, ns, max_ts(w));
    if (rc || !fresh) return rc;
    if (cleanup_time(c, w) == max_ts(w) && max_ts(w) > op->wm) return 0; /* registered above */
    /* Equal to the timer above when the lateness is 0 (one timer does both). A window
     * whose cleanup saturates at INT64_MAX gets its timer too: it fires at the end of
     * input and frees the state (Flink registers none; the output is the same). */
    return reg_timer(op, ns, cleanup_time(c, w));
  }
  /* Processing time: fire and clean up on one timer at max_ts, even if the clock is
   * already past it (it then fires at the next clock check). */
  return fresh ? reg_timer(op, ns, max_ts(w)) : 0;
}

/* Computes the windows of ts into st->slots, latest start first (Flink's assigner
 * order), and the timestamps that have the same windows. Window k is [ts - back -
 * k*slide, ... + size) for back = (ts - offset) mod slide, so every timestamp of the
 * slide [ts - back, ts - back + slide) has the windows whose starts are those, but a
 * window holds the ones with back + k*slide < size: with r = size mod slide, those
 * with back < r have one window more than those with back >= r. Leaves n_slots = 0
 * when ts has more windows than the slots or the bounds are not representable. */
static void fill_slots(fl_op_t *op, int64_t ts) {
  win_op_t *st = op->state;
  const fl_window_conf_t *c = st->conf;
  int64_t size = c->size, slide = c->slide;
  int64_t back = pos_mod(ts, c->offset, slide);
  int64_t r = size % slide, lo_off = r && back >= r ? r : 0, hi_off = r && back < r ? r : slide;
  int64_t start;
  st->n_slots = 0;
  st->adds_ready = 0;
  if (__builtin_sub_overflow(ts, back, &start) ||
      __builtin_add_overflow(start, lo_off, &st->slice_lo) ||
      __builtin_add_overflow(start, hi_off, &st->slice_hi))
    return;
  size_t n = 0;
  while (back < size) {
    if (n == WIN_SLOTS_MAX) return;
    win_slot_t *s = &st->slots[n++];
    s->w.start = fl_sat_sub(ts, back);
    s->w.end = fl_sat_add(ts, size - back);
    s->cleanup = cleanup_time(c, s->w);
    ns_encode(s->ns, s->w);
    if (slide >= size - back) break;
    back += slide;
  }
  st->n_slots = n;
}

/* Tumbling and sliding windows. Windows are visited latest start first, as Flink's
 * assigner lists them. */
static int add_fixed(fl_op_t *op, int64_t ts, const fl_record_t *rec, bool *added) {
  win_op_t *st = op->state;
  if (!st->n_slots || ts < st->slice_lo || ts >= st->slice_hi) fill_slots(op, ts);
  if (st->n_slots) {
    bool event_time = st->conf->domain == FL_EVENT_TIME;
    for (size_t i = 0; i < st->n_slots; i++) {
      const win_slot_t *s = &st->slots[i];
      if (event_time && s->cleanup <= op->wm) continue; /* window_late() */
      *added = true;
      bool fresh;
      int rc = add_contents(op, s->ns, rec, &fresh);
      /* after_add has nothing to do for existing contents of a window not yet due */
      if (!rc && (fresh || (event_time && max_ts(s->w) <= op->wm)))
        rc = after_add(op, s->w, s->ns, fresh, WIN_SLOTS_MAX);
      if (rc) return rc;
    }
    return 0;
  }
  const fl_window_conf_t *c = &op->node->u.window;
  int64_t size = c->size, slide = c->slide;
  /* Window k (k = 0, 1, ...) is [ts - back, ts - back + size) with back = r + k*slide;
   * it contains ts while back < size. Working with back avoids overflowing ts - size. */
  int64_t back = pos_mod(ts, c->offset, slide);
  while (back < size) {
    fl_window_t w = {fl_sat_sub(ts, back), fl_sat_add(ts, size - back)};
    if (!window_late(op, c, w)) {
      uint8_t ns[WIN_NS_LEN];
      ns_encode(ns, w);
      *added = true;
      bool fresh;
      int rc = add_contents(op, ns, rec, &fresh);
      if (!rc) rc = after_add(op, w, ns, fresh, WIN_SLOTS_MAX);
      if (rc) return rc;
    }
    if (slide >= size - back) break;
    back += slide;
  }
  return 0;
}

/* The live session windows of the current key, copied into st->live; *n windows. */
static int live_load(fl_op_t *op, fl_sref_t *r, size_t *n) {
  win_op_t *st = op->state;
  *n = 0;
  int rc = fl_op_sref(op, st->conf->windows, NULL, 0, r);
  if (rc) return rc;
  const void *v = NULL;
  size_t len = 0;
  rc = fl_st_value_get(r, &v, &len);
  if (rc < 0) return rc;
  if (rc == 0) len = 0;
  if (len % WIN_NS_LEN != 0)
    return fl_op_fail(op, FL_ESTATE, "window '%s': corrupt session window set", op->node->name);
  /* One spare slot for an insertion. */
  rc = FL_VEC_RESERVE(st->live, st->live_cap, len + WIN_NS_LEN);
  if (rc) return rc;
  if (len) memcpy(st->live, v, len);
  *n = len / WIN_NS_LEN;
  return 0;
}

static int live_store(fl_op_t *op, const fl_sref_t *r, size_t n) {
  win_op_t *st = op->state;
  if (n == 0) return fl_st_clear(r);
  return fl_st_value_set(r, st->live, n * WIN_NS_LEN);
}

static fl_window_t live_at(const win_op_t *st, size_t i) {
  return ns_decode(st->live + i * WIN_NS_LEN);
}

/* Session windows: the element's window [ts, ts + gap) is merged with every live window
 * it intersects or touches; the contents and timers of the merged windows move to their
 * cover. The element is dropped only if the cover is late. */
static int add_session(fl_op_t *op, int64_t ts, const fl_record_t *rec, bool *added) {
  win_op_t *st = op->state;
  const fl_window_conf_t *c = st->conf;
  fl_sref_t lr;
  size_t n = 0;
  int rc = live_load(op, &lr, &n);
  if (rc) return rc;

  fl_window_t nw = {ts, fl_sat_add(ts, c->gap)};
  /* Live windows are sorted and pairwise apart, so those intersecting nw are a run
   * [i, j), and no other live window intersects their cover. */
  size_t i = 0;
  while (i < n && live_at(st, i).end < nw.start) i++;
  size_t j = i;
  fl_window_t cover = nw;
  while (j < n) {
    fl_window_t lw = live_at(st, j);
    if (lw.start > nw.end) break;
    if (lw.start < cover.start) cover.start = lw.start;
    if (lw.end > cover.end) cover.end = lw.end;
    j++;
  }
  if (window_late(op, c, cover)) return 0;
  *added = true;

  uint8_t ns[WIN_NS_LEN];
  ns_encode(ns, cover);
  bool existing =
      j - i == 1 && live_at(st, i).start == cover.start && live_at(st, i).end == cover.end;
  if (!existing) {
    if (j > i) {
      fl_sref_t cr;
      rc = fl_op_sref(op, c->contents, ns, WIN_NS_LEN, &cr);
      if (rc) return rc;
      /* In start order: the list of a merged session holds the earlier session's
       * elements first (Flink's order there depends on hashing). */
      for (size_t k = i; k < j; k++) {
        fl_window_t m = live_at(st, k);
        const uint8_t *mns = st->live + k * WIN_NS_LEN;
        rc = fl_st_merge_namespace(&cr, mns, WIN_NS_LEN);
        if (!rc) rc = del_timer(op, mns, max_ts(m));
        /* (one timer when the lateness is 0) */
        if (!rc && c->domain == FL_EVENT_TIME && cleanup_time(c, m) != max_ts(m))
          rc = del_timer(op, mns, cleanup_time(c, m));
        if (rc) return rc;
      }
      /* Flink's onMerge registers the cover's timer if it is ahead of the watermark;
       * after_add below does the same (or fires at once), so it is not repeated. */
    }
    /* Replace the run [i, j) by the cover (j == i: insert). */
    size_t tail = n - j;
    memmove(st->live + (i + 1) * WIN_NS_LEN, st->live + j * WIN_NS_LEN, tail * WIN_NS_LEN);
    memcpy(st->live + i * WIN_NS_LEN, ns, WIN_NS_LEN);
    n = n - (j - i) + 1;
    rc = live_store(op, &lr, n);
    if (rc) return rc;
  }
  bool fresh;
  rc = add_contents(op, ns, rec, &fresh);
  /* A new cover (merged or not) needs its timers even if merging moved contents into it. */
  if (!rc) rc = after_add(op, cover, ns, fresh || !existing, WIN_SLOTS_MAX);
  return rc;
}

static int win_process(fl_op_t *op, int input, const fl_record_t *rec) {
  (void)input;
  win_op_t *st = op->state;
  const fl_window_conf_t *c = st->conf;
  assert(op->ctx.keyed);
  int64_t ts;
  if (c->domain == FL_EVENT_TIME) {
    ts = rec->timestamp;
    if (ts == FL_TS_NONE)
      return fl_op_fail(op, FL_EINVAL,
                        "window '%s': a record has no timestamp in an event-time window "
                        "(assign timestamps before the window)",
                        op->node->name);
  } else {
    ts = fl_env_now(op->node->env);
  }
  bool added = false;
  int rc = c->kind == FL_WINDOW_SESSION ? add_session(op, ts, rec, &added)
                                        : add_fixed(op, ts, rec, &added);
  if (rc) return rc;
  /* An element added to no window is late. Where window bounds saturate at the end of
   * time, its windows can all be late while ts + lateness is not yet behind the
   * watermark (Flink's isElementLate would keep it out of the late output and lose it). */
  if (!added) {
    atomic_fetch_add(&op->m->late_dropped, 1);
    if (c->late_tag) rc = fl_op_emit_side(op, c->late_tag, rec);
  }
  return rc;
}

/* Records ahead of the one being added whose contents are prefetched: far enough for
 * a cache miss to complete meanwhile, near enough to stay in the cache. */
#define WIN_PREFETCH_AHEAD 16
/* Contents cells (some 25 MB with their index) beyond which they spill out of the
 * caches (PF_FAR: index slot and cell, from memory), and cells (128 KB) beyond which
 * they spill out of the first-level cache (PF_NEAR: the cell of record i + 2, its
 * slot read at once from the second level). Below, prefetching costs more than it
 * saves. */
#define WIN_PREFETCH_CELLS 262144
#define WIN_PREFETCH_NEAR_CELLS 2048
enum {
  PF_NONE,
  PF_NEAR,
  PF_FAR
};

/* How a contents state prefetches, by its size and what the backend can. */
static int prefetch_pays(const fl_sref_t *r) {
  const fl_kv_ops_t *o = r->kv->ops;
  if (o->version < 2 || !o->prefetch) return PF_NONE;
  size_t n = o->count(r->kv->self, r->table);
  return n >= WIN_PREFETCH_CELLS ? PF_FAR : n >= WIN_PREFETCH_NEAR_CELLS ? PF_NEAR : PF_NONE;
}

/* Prefetches the contents of record i in the windows of the slots, if its timestamp
 * has them. */
static void prefetch_cells(const win_op_t *st, const fl_batch_t *b, uint32_t i, int stage) {
  const fl_entry_t *e = &b->e[i];
  if (e->type != FL_E_RECORD || !st->n_slots || e->ts < st->slice_lo || e->ts >= st->slice_hi)
    return;
  const fl_sref_t *r = &st->cref;
  fl_kkey_t k = {e->kg, b->data + e->off, e->key_len, NULL, WIN_NS_LEN};
  for (size_t s = 0; s < st->n_slots; s++) {
    k.ns = st->slots[s].ns;
    r->kv->ops->prefetch(r->kv->self, r->table, &k, e->hash, stage);
  }
}

/* Prepares the contents adds of the slots' windows (st->adds_ready 1), or finds that
 * they cannot be prepared (-1: the adds go through add_contents). */
static void prepare_adds(fl_op_t *op) {
  win_op_t *st = op->state;
  const fl_window_conf_t *c = st->conf;
  st->adds_ready = -1;
  if (c->fn_kind == FL_WFN_PROCESS || !st->n_slots) return;
  if (!st->have_cref) {
    if (fl_op_sref(op, c->contents, st->slots[0].ns, WIN_NS_LEN, &st->cref)) return;
    st->have_cref = true;
  }
  fl_sref_t r = st->cref, *kr;
  st->kadds_ready = c->keys != NULL;
  for (size_t k = 0; k < st->n_slots; k++) {
    r.k.ns = st->slots[k].ns;
    r.k.ns_len = WIN_NS_LEN;
    if (fl_st_adds_prepare(&r, &st->adds[k])) return;
    st->kadds_ready =
        st->kadds_ready && !keys_ref(op, r.k.ns, &kr) && !fl_st_appends_prepare(kr, &st->kadds[k]);
  }
  st->adds_ready = 1;
}

/* prefetch_cells with the prepared adds of n slots, for record j of a run (j < to): one
 * backend call gets record j + AHEAD's slot and record j + AHEAD / 2's cell. A record
 * past the slice gets a prefetch that is wasted, not wrong: cheaper than checking. */
static inline void prefetch_prepared(const win_op_t *st, const fl_batch_t *b, uint32_t j,
                                     uint32_t to, size_t n_slots) {
  const fl_entry_t *n = &b->e[j + WIN_PREFETCH_AHEAD / 2], *f = &b->e[j + WIN_PREFETCH_AHEAD];
  if (j + WIN_PREFETCH_AHEAD / 2 >= to || n->type != FL_E_RECORD) return;
  if (j + WIN_PREFETCH_AHEAD >= to || f->type != FL_E_RECORD) f = n;
  for (size_t k = 0; k < n_slots; k++)
    fl_st_adds_prefetch2(&st->adds[k], f->kg, f->hash, n->kg, n->hash);
}

/* add_run_prepared for one slot with an aggregate function (a tumbling window's
 * common case): a loop of its own, so that the compiler keeps what the run does not
 * change in registers across the backend's and the user's calls instead of the
 * general loop's state; acc_size is the accumulator's size (a constant in the copies
 * of add_run_one). Same contract as add_run_prepared. */
static inline __attribute__((always_inline)) int add_run_one_sized(fl_op_t *op, const fl_batch_t *b,
                                                                   uint32_t *i, uint32_t to, int pf,
                                                                   size_t acc_size) {
  win_op_t *st = op->state;
  const fl_st_adds_t *p = &st->adds[0];
  const uint64_t lo = (uint64_t)st->slice_lo, width = (uint64_t)st->slice_hi - lo; /* lo < hi */
  const uint8_t *data = b->data;
  const fl_entry_t *e = &b->e[*i], *end = &b->e[to];
  int rc = 0;
  fl_op_set_key(op, data + e->off, e->key_len, e->kg, true, e->hash);
  for (; e < end; e++) {
    /* ts in [lo, lo + width), FL_TS_NONE (INT64_MIN) not */
    if ((uint64_t)e->ts - lo >= width) break;
    if (pf == PF_FAR) prefetch_prepared(st, b, (uint32_t)(e - b->e), to, 1);
    const uint8_t *key = data + e->off;
    uint32_t key_len = e->key_len;
    fl_record_t r = {key, key_len, key + key_len, e->value_len, e->ts};
    op->ctx.ts = e->ts;
    op->ctx.key = key;
    op->ctx.key_len = key_len;
    op->ctx.kg = e->kg;
    op->ctx.key_hash = e->hash;
    bool fresh;
    const fl_entry_t *a = e + 2 < end ? e + 2 : e; /* PF_NEAR: its cell loads meanwhile */
    rc = fl_st_adds_aggregate_ahead(p, e->kg, key, key_len, e->hash, &r, &fresh, acc_size,
                                    pf == PF_NEAR, a->kg, a->hash);
    if (__builtin_expect(rc != 0 || fresh, 0)) {
      if (!rc) rc = after_add(op, st->slots[0].w, st->slots[0].ns, true, 0);
      if (rc < 0) break;
    }
    if (op->failed) break;
  }
  *i = (uint32_t)(e - b->e);
  return rc < 0 ? rc : 0;
}

/* add_run_one_sized with an 8-byte accumulator (a count, a sum) and how to prefetch as
 * constants, or not. */
static __attribute__((noinline)) int add_run_one(fl_op_t *op, const fl_batch_t *b, uint32_t *i,
                                                 uint32_t to, int pf) {
  win_op_t *st = op->state;
  size_t acc_size = st->adds[0].agg->acc_size;
  if (acc_size != 8) return add_run_one_sized(op, b, i, to, pf, acc_size);
  return pf == PF_FAR    ? add_run_one_sized(op, b, i, to, PF_FAR, 8)
         : pf == PF_NEAR ? add_run_one_sized(op, b, i, to, PF_NEAR, 8)
                         : add_run_one_sized(op, b, i, to, PF_NONE, 8);
}

/* The records of a run from *i on whose timestamps are in the current slice, added to
 * the contents of every slot's window with the prepared adds (st->adds_ready > 0, and
 * no slot is due: the watermark does not move within a run). Registers timers for new
 * contents. Sets *i to the first record not taken. Only the context's timestamp and
 * key change from record to record here. */
static int add_run_prepared(fl_op_t *op, const fl_batch_t *b, uint32_t *i, uint32_t to, int pf) {
  win_op_t *st = op->state;
  bool reduce = st->conf->fn_kind == FL_WFN_REDUCE, prefetch = pf == PF_FAR;
  int64_t lo = st->slice_lo, hi = st->slice_hi;
  size_t n = st->n_slots;
  if (n == 1 && !reduce) return add_run_one(op, b, i, to, pf);
  uint32_t j = *i;
  int rc = 0;
  const fl_entry_t *e = &b->e[j];
  fl_op_set_key(op, b->data + e->off, e->key_len, e->kg, true, e->hash);
  for (; j < to; j++) {
    e = &b->e[j];
    if (e->ts < lo || e->ts >= hi) break; /* FL_TS_NONE too */
    if (prefetch) prefetch_prepared(st, b, j, to, n);
    const uint8_t *key = b->data + e->off;
    fl_record_t r = {key, e->key_len, key + e->key_len, e->value_len, e->ts};
    op->ctx.ts = e->ts;
    op->ctx.key = key;
    op->ctx.key_len = e->key_len;
    op->ctx.kg = e->kg;
    op->ctx.key_hash = e->hash;
    for (size_t k = 0; k < n; k++) {
      bool fresh;
      rc = reduce ? fl_st_adds_reduce(&st->adds[k], e->kg, key, e->key_len, e->hash, r.value,
                                      r.value_len, &fresh)
                  : fl_st_adds_aggregate(&st->adds[k], e->kg, key, e->key_len, e->hash, &r, &fresh);
      if (!rc && fresh) rc = after_add(op, st->slots[k].w, st->slots[k].ns, true, k);
      if (rc < 0) goto done;
    }
    if (op->failed) break;
  }
done:
  *i = j;
  return rc < 0 ? rc : 0;
}

/* A run of records from a channel, without a runtime call per record. Event-time
 * tumbling and sliding windows take the short way while a record's windows are those
 * of the slots and none of them is due (the common case: add to the contents, and
 * register timers only for new contents); anything else goes through win_process. */
static int win_process_run(fl_op_t *op, int input, const fl_batch_t *b, uint32_t from,
                           uint32_t to) {
  win_op_t *st = op->state;
  const fl_window_conf_t *c = st->conf;
  bool fast = c->kind != FL_WINDOW_SESSION && c->domain == FL_EVENT_TIME;
  int pf = fast && st->have_cref ? prefetch_pays(&st->cref) : PF_NONE;
  bool prefetch = pf == PF_FAR;
  for (uint32_t i = from; i < to; i++) {
    if (fast && st->adds_ready > 0 && b->e[i].ts >= st->slice_lo && b->e[i].ts < st->slice_hi &&
        max_ts(st->slots[st->n_slots - 1].w) > op->wm) {
      int rc = add_run_prepared(op, b, &i, to, pf);
      if (rc < 0) return rc;
      if (op->failed) break;
      if (i == to) break;
    }
    if (prefetch) {
      if (i + WIN_PREFETCH_AHEAD < to) prefetch_cells(st, b, i + WIN_PREFETCH_AHEAD, 0);
      if (i + WIN_PREFETCH_AHEAD / 2 < to) prefetch_cells(st, b, i + WIN_PREFETCH_AHEAD / 2, 1);
    }
    const fl_entry_t *e = &b->e[i];
    const uint8_t *key = b->data + e->off;
    fl_record_t r = {key, e->key_len, key + e->key_len, e->value_len, e->ts};
    int64_t ts = e->ts;
    op->ctx.ts = ts;
    fl_op_set_key(op, key, e->key_len, e->kg, true, e->hash);
    if (fast && ts != FL_TS_NONE) {
      if (!st->n_slots || ts < st->slice_lo || ts >= st->slice_hi) fill_slots(op, ts);
      /* Slots are in start order, latest first: when the last one (which ends first)
       * is not due, none is due or late, and the element goes into every one. */
      if (st->n_slots && max_ts(st->slots[st->n_slots - 1].w) > op->wm) {
        if (!st->adds_ready) prepare_adds(op);
        if (st->adds_ready > 0) { /* this record and the next ones of the slice */
          int rc = add_run_prepared(op, b, &i, to, pf);
          if (rc < 0) return rc;
          if (op->failed || i == to) break;
          i--; /* the loop's i++: record i was not taken */
          continue;
        }
        for (size_t k = 0; k < st->n_slots; k++) {
          const win_slot_t *s = &st->slots[k];
          bool fresh;
          int rc = add_contents(op, s->ns, &r, &fresh);
          if (!rc && fresh) rc = after_add(op, s->w, s->ns, true, WIN_SLOTS_MAX);
          if (rc < 0) return rc;
        }
        if (op->failed) break;
        continue;
      }
    }
    int rc = win_process(op, input, &r);
    if (rc < 0) return rc;
    if (op->failed) break;
  }
  return 0;
}

/* Removes window w of the current key: contents, its firing timer, and for sessions its
 * entry in the live set. */
static int clear_window(fl_op_t *op, fl_window_t w, const uint8_t *ns) {
  win_op_t *st = op->state;
  const fl_window_conf_t *c = st->conf;
  fl_sref_t *cr, r;
  int rc = fire_ref(op, ns, &cr);
  if (!rc) rc = fl_st_clear(cr);
  if (!rc) rc = del_timer(op, ns, max_ts(w));
  if (rc || c->kind != FL_WINDOW_SESSION) return rc;
  size_t n = 0;
  rc = live_load(op, &r, &n);
  if (rc) return rc;
  for (size_t i = 0; i < n; i++) {
    if (memcmp(st->live + i * WIN_NS_LEN, ns, WIN_NS_LEN) == 0) {
      memmove(st->live + i * WIN_NS_LEN, st->live + (i + 1) * WIN_NS_LEN, (n - i - 1) * WIN_NS_LEN);
      return live_store(op, &r, n - 1);
    }
  }
  return 0;
}

static bool session_live(fl_op_t *op, const uint8_t *ns, int *rc) {
  win_op_t *st = op->state;
  fl_sref_t r;
  size_t n = 0;
  *rc = live_load(op, &r, &n);
  if (*rc) return false;
  for (size_t i = 0; i < n; i++)
    if (memcmp(st->live + i * WIN_NS_LEN, ns, WIN_NS_LEN) == 0) return true;
  return false;
}

/* A group timer: what win_on_timer does for one key, for every key of the group with
 * contents in the window, in the order they got them; the list goes with the cleanup. */
static int group_on_timer(fl_op_t *op, fl_time_domain_t d, const fl_timer_t *t) {
  win_op_t *st = op->state;
  const fl_window_conf_t *c = st->conf;
  uint8_t ns[WIN_NS_LEN];
  memcpy(ns, t->ns, WIN_NS_LEN);
  fl_window_t w = ns_decode(ns);
  bool do_fire = d != FL_EVENT_TIME || t->ts == max_ts(w);
  bool do_clear = d != FL_EVENT_TIME || t->ts == cleanup_time(c, w);
  uint16_t kg = t->kg;
  int64_t ts = t->ts;
  fl_sref_t *kr;
  int rc = keys_ref(op, ns, &kr);
  const fl_bytes_t *items = NULL;
  size_t n = 0, bytes = 0;
  if (!rc) rc = fl_st_list_get(kr, &items, &n);
  if (rc <= 0) return rc;
  /* Firing and clearing change the backend, which may invalidate the views: copy. */
  for (size_t i = 0; i < n; i++) bytes += items[i].len;
  rc = FL_VEC_RESERVE(st->gkeys, st->gkeys_cap, bytes ? bytes : 1);
  if (!rc) rc = FL_VEC_RESERVE(st->glen, st->glen_cap, n);
  if (rc) return rc;
  for (size_t i = 0, off = 0; i < n; i++) {
    if (items[i].len == 8) /* the common key, without a libc call */
      memcpy(st->gkeys + off, items[i].data, 8);
    else
      memcpy(st->gkeys + off, items[i].data, items[i].len);
    st->glen[i] = items[i].len;
    off += items[i].len;
  }
  /* Firing looks each key's contents up, in the order the keys came: beyond the caches,
   * prefetch them as a run of records does (keys i + AHEAD and i + AHEAD / 2). */
  fl_st_adds_t pf;
  bool prefetch = false;
  size_t off_a = 0;
  if (!st->fire_pf_set || st->fire_pf_ts != ts) {
    st->fire_pf = st->have_cref && prefetch_pays(&st->cref) == PF_FAR;
    st->fire_pf_ts = ts;
    st->fire_pf_set = true;
  }
  /* A window fired and cleaned at once takes its keys' contents through the prepared
   * namespace, if the backend can (else fire_take). */
  bool prepared = false;
  if (do_fire && (do_clear || (n > WIN_PREFETCH_AHEAD && st->fire_pf))) {
    fl_sref_t *r;
    prepared = !fire_ref(op, ns, &r) && !fl_st_adds_prepare(r, &pf);
  }
  bool take = prepared && do_clear && pf.take;
  if (prepared && n > WIN_PREFETCH_AHEAD && st->fire_pf && pf.prefetch) {
    prefetch = true;
    for (size_t i = 0; i < WIN_PREFETCH_AHEAD; i++) off_a += st->glen[i];
  }
  /* Each key is hashed once, AHEAD keys before it fires: the hashes wait in a ring. */
  uint64_t ring[WIN_PREFETCH_AHEAD];
  for (size_t i = 0, off = 0; i < WIN_PREFETCH_AHEAD && i < n && prefetch; off += st->glen[i], i++)
    ring[i] = fl_hash64_inline(st->gkeys + off, st->glen[i], 0);
  for (size_t i = 0, off = 0; i < n && !rc; off += st->glen[i], i++) {
    uint64_t h =
        prefetch ? ring[i % WIN_PREFETCH_AHEAD] : fl_hash64(st->gkeys + off, st->glen[i], 0);
    if (prefetch && i + WIN_PREFETCH_AHEAD < n) {
      size_t len = st->glen[i + WIN_PREFETCH_AHEAD];
      uint64_t ha = fl_hash64_inline(st->gkeys + off_a, len, 0);
      ring[i % WIN_PREFETCH_AHEAD] = ha;
      fl_st_adds_prefetch2(&pf, kg, ha, kg,
                           ring[(i + WIN_PREFETCH_AHEAD / 2) % WIN_PREFETCH_AHEAD]);
      off_a += len;
    } else if (prefetch && i + WIN_PREFETCH_AHEAD / 2 < n)
      fl_st_adds_prefetch(&pf, kg, ring[(i + WIN_PREFETCH_AHEAD / 2) % WIN_PREFETCH_AHEAD], 1);
    fl_op_set_key(op, st->gkeys + off, st->glen[i], kg, true, h);
    op->ctx.ts = ts;
    /* A window fired and cleaned at once gives its result as its contents go. */
    bool taken = false;
    if (take) {
      const void *v;
      size_t len;
      rc = fl_st_adds_take(&pf, kg, st->gkeys + off, st->glen[i], h, &v, &len);
      if (rc > 0) rc = fire_result(op, w, v, len);
      taken = true; /* (or absent, rc 0) */
    } else if (do_fire) {
      rc = fire_take(op, w, ns, do_clear ? &taken : NULL);
    }
    if (!rc && do_clear && !taken) {
      fl_sref_t *r;
      rc = fire_ref(op, ns, &r);
      if (!rc) rc = fl_st_clear(r);
    }
  }
  if (!rc && do_clear) {
    fl_op_set_key(op, "", 0, kg, false, 0);
    rc = keys_ref(op, ns, &kr);
    if (!rc) rc = fl_st_clear(kr);
  }
  return rc;
}

static int win_on_timer(fl_op_t *op, fl_time_domain_t d, const fl_timer_t *t) {
  win_op_t *st = op->state;
  const fl_window_conf_t *c = st->conf;
  st->reg_epoch++; /* the timer that fires is gone */
  if (d != c->domain) return 0;
  if (t->ns_len == WIN_GROUP_NS_LEN && ((const uint8_t *)t->ns)[WIN_NS_LEN] == WIN_GROUP_MARK)
    return group_on_timer(op, d, t);
  if (t->ns_len != WIN_NS_LEN) return 0;
  /* The timer's bytes are borrowed from the timer service: copy them first. */
  uint8_t ns[WIN_NS_LEN];
  memcpy(ns, t->ns, WIN_NS_LEN);
  fl_window_t w = ns_decode(ns);
  int rc = 0;
  /* A timer of a window that was merged away or already cleaned does nothing. */
  if (c->kind == FL_WINDOW_SESSION && !session_live(op, ns, &rc)) return rc;
  if (d == FL_EVENT_TIME) {
    if (t->ts == max_ts(w)) rc = fire(op, w);
    if (!rc && t->ts == cleanup_time(c, w)) rc = clear_window(op, w, ns);
  } else {
    rc = fire(op, w);
    if (!rc) rc = clear_window(op, w, ns);
  }
  return rc;
}

const fl_op_class_t fl_op_window_class = {
    .kind = "window",
    .open = win_open,
    .process = win_process,
    .process_run = win_process_run,
    .on_timer = win_on_timer,
    .on_watermark = NULL,
    .on_tick = NULL,
    .end_input = NULL,
    .close = win_close,
};
