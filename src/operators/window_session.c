/*
 * Session windows (see window.c for the state layout): the element's window [ts, ts +
 * gap) merges with every live window of its key that it intersects or touches.
 */
#include <string.h>

#include "operators/window_internal.h"

/* The live session windows of the current key, copied into st->live; *n windows. */
int fl_win_live_load(fl_op_t *op, fl_sref_t *r, size_t *n) {
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
  rc = fl_win_grow_bytes(&st->live, &st->live_cap, len + WIN_NS_LEN);
  if (rc) return rc;
  if (len) memcpy(st->live, v, len);
  *n = len / WIN_NS_LEN;
  return 0;
}

int fl_win_live_store(fl_op_t *op, const fl_sref_t *r, size_t n) {
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
int fl_win_add_session(fl_op_t *op, int64_t ts, const fl_record_t *rec, bool *added) {
  win_op_t *st = op->state;
  const fl_window_conf_t *c = st->conf;
  fl_sref_t lr;
  size_t n = 0;
  int rc = fl_win_live_load(op, &lr, &n);
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
        if (!rc) rc = fl_win_del_timer(op, mns, max_ts(m));
        /* (one timer when the lateness is 0) */
        if (!rc && c->domain == FL_EVENT_TIME && cleanup_time(c, m) != max_ts(m))
          rc = fl_win_del_timer(op, mns, cleanup_time(c, m));
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
    rc = fl_win_live_store(op, &lr, n);
    if (rc) return rc;
  }
  bool fresh;
  rc = fl_win_add_contents(op, ns, rec, &fresh);
  /* A new cover (merged or not) needs its timers even if merging moved contents into it. */
  if (!rc) rc = fl_win_after_add(op, cover, ns, fresh || !existing);
  return rc;
}

bool fl_win_session_live(fl_op_t *op, const uint8_t *ns, int *rc) {
  win_op_t *st = op->state;
  fl_sref_t r;
  size_t n = 0;
  *rc = fl_win_live_load(op, &r, &n);
  if (*rc) return false;
  for (size_t i = 0; i < n; i++)
    if (memcmp(st->live + i * WIN_NS_LEN, ns, WIN_NS_LEN) == 0) return true;
  return false;
}
