/*
 * What the window operator's files share (private to src/operators/window*.c):
 *   window.c          the operator: assigning elements, the run loop over a channel's
 *                     records, firing and group timers
 *   window_session.c  session windows: the live windows of a key, merging
 * The layout of window state and the namespace encoding are described in window.c.
 */
#ifndef FL_OPERATORS_WINDOW_INTERNAL_H
#define FL_OPERATORS_WINDOW_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "operators/operators.h"
#include "util/sat.h"

#define WIN_NS_LEN 16
/* Group timers (tumbling and sliding windows with reduce or aggregate): one timer per
 * (key group, window, time) instead of one per key, namespace = window | this byte. */
#define WIN_GROUP_MARK 0x01
#define WIN_GROUP_NS_LEN (WIN_NS_LEN + 1)

/* ---------------------------------------------------------------------------------- */
/* Time arithmetic                                                                      */

/* (ts - offset) mod size in [0, size), without forming ts - offset (which can
 * overflow). size > 0. */
static inline int64_t pos_mod(int64_t ts, int64_t offset, int64_t size) {
  int64_t a = ts % size, b = offset % size;
  if (a < 0) a += size;
  if (b < 0) b += size;
  int64_t r = a - b; /* both in [0, size): no overflow */
  if (r < 0) r += size;
  return r;
}

static inline int64_t max_ts(fl_window_t w) { return w.end - 1; }

static inline int64_t cleanup_time(const fl_window_conf_t *c, fl_window_t w) {
  /* Processing-time windows are cleaned when they fire. */
  if (c->domain != FL_EVENT_TIME) return max_ts(w);
  return fl_sat_add(max_ts(w), c->allowed_lateness);
}

static inline bool window_late(const fl_op_t *op, const fl_window_conf_t *c, fl_window_t w) {
  return c->domain == FL_EVENT_TIME && cleanup_time(c, w) <= op->wm;
}

/* ---------------------------------------------------------------------------------- */
/* Namespace encoding                                                                   */

static inline void put_i64(uint8_t *p, int64_t v) {
  uint64_t u = (uint64_t)v ^ UINT64_C(0x8000000000000000);
  for (int i = 7; i >= 0; i--) {
    p[i] = (uint8_t)u;
    u >>= 8;
  }
}

static inline int64_t get_i64(const uint8_t *p) {
  uint64_t u = 0;
  for (int i = 0; i < 8; i++) u = (u << 8) | p[i];
  return (int64_t)(u ^ UINT64_C(0x8000000000000000));
}

static inline void ns_encode(uint8_t ns[WIN_NS_LEN], fl_window_t w) {
  put_i64(ns, w.start);
  put_i64(ns + 8, w.end);
}

static inline fl_window_t ns_decode(const uint8_t *ns) {
  fl_window_t w = {get_i64(ns), get_i64(ns + 8)};
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
  /* The contents adds of the slots' windows, prepared once per slice: adds_ready 1 when
   * prepared, 0 when not yet, -1 when they cannot be (list contents, TTL, a backend
   * without prepared lookups). */
  fl_st_adds_t adds[WIN_SLOTS_MAX];
  int adds_ready;
  /* References fl_op_sref filled once and then re-pointed (the descriptors are internal,
   * without TTL): the contents, for firing and clearing (fref), and the group keys. */
  fl_sref_t fref, kref;
  bool have_fref, have_kref;
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

/* Grows *p (capacity *cap bytes) to hold need bytes; FL_ENOMEM. */
int fl_win_grow_bytes(uint8_t **p, size_t *cap, size_t need);
/* Deletes the current key's timer of window ns at ts. */
int fl_win_del_timer(fl_op_t *op, const uint8_t *ns, int64_t ts);
/* Adds the element to window ns's contents (*created: they were absent before), and
 * then what follows an add to the (not late) window w: timers, or firing at once. */
int fl_win_add_contents(fl_op_t *op, const uint8_t *ns, const fl_record_t *rec, bool *created);
int fl_win_after_add(fl_op_t *op, fl_window_t w, const uint8_t *ns, bool fresh);

/* window_session.c */

/* The live session windows of the current key, copied into st->live (*n windows), and
 * stored back from it (r as live_load set it). */
int fl_win_live_load(fl_op_t *op, fl_sref_t *r, size_t *n);
int fl_win_live_store(fl_op_t *op, const fl_sref_t *r, size_t n);
/* Adds the element at ts to the current key's session windows (*added: not late). */
int fl_win_add_session(fl_op_t *op, int64_t ts, const fl_record_t *rec, bool *added);
/* Whether session window ns is live for the current key (*rc: an error). */
bool fl_win_session_live(fl_op_t *op, const uint8_t *ns, int *rc);

#endif
