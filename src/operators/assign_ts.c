/*
 * assignTimestampsAndWatermarks: sets record timestamps and generates watermarks per
 * subtask (Flink's TimestampsAndWatermarksOperator with a periodic generator):
 *  - bounded out-of-orderness D: candidate max_ts - D - 1; monotonous: max_ts - 1;
 *  - emitted on the periodic tick (pipeline.auto-watermark-interval), or after every
 *    record when the interval is 0, only when larger than the last one emitted; the
 *    record goes first, then the watermark it produced;
 *  - upstream watermarks are not forwarded, except the end of input (+inf);
 *  - idleness: no record for idle_timeout_ms of processing time marks the output idle
 *    until the next record;
 *  - a timestamp function that returns FL_TS_NONE fails the job: INT64_MIN is the
 *    library's "no timestamp", so forwarding it would turn an event time read from the
 *    data into none, and the record would fail or vanish further down without a word
 *    about the value or where it came from.
 */
#include <inttypes.h>
#include <stdlib.h>

#include "operators/operators.h"

/* The largest timestamp seen is op->max_ts, which the runtime raises itself for the
 * records it forwards without calling process (FL_HOP_FORWARD). */
typedef struct {
  int64_t emitted;     /* last watermark sent */
  int64_t next_tick;   /* processing time of the next periodic emission */
  int64_t last_record; /* processing time of the last record */
  bool idle;
  /* what a record needs besides passing on (settled at open): an assigner call, the
   * idleness clock, a watermark after every record */
  bool assign, track_idle, per_record;
} gen_t;

static int64_t candidate(const fl_watermark_strategy_t *ws, int64_t max_ts) {
  if (max_ts == FL_TS_NONE) return FL_TS_NONE;
  switch (ws->kind) {
  case FL_WATERMARKS_MONOTONOUS: return max_ts - 1;
  case FL_WATERMARKS_BOUNDED: {
    /* saturate instead of overflowing for timestamps near INT64_MIN */
    if (max_ts < FL_TS_NONE + 2 + ws->max_out_of_orderness_ms) return FL_TS_NONE;
    return max_ts - ws->max_out_of_orderness_ms - 1;
  }
  default: return FL_TS_NONE;
  }
}

static void maybe_emit(fl_op_t *op, gen_t *g) {
  int64_t c = candidate(&op->node->u.assign_ts.ws, op->max_ts);
  if (c != FL_TS_NONE && (g->emitted == FL_TS_NONE || c > g->emitted)) {
    g->emitted = c;
    fl_op_emit_watermark(op, c);
  }
}

static int ats_open(fl_op_t *op) {
  gen_t *g = calloc(1, sizeof *g);
  if (!g) return FL_ENOMEM;
  op->max_ts = FL_TS_NONE;
  g->emitted = FL_TS_NONE;
  int64_t now = fl_env_now(op->node->env);
  g->next_tick = now + op->node->env->conf.watermark_interval_ms;
  g->last_record = now;
  const fl_watermark_strategy_t *ws = &op->node->u.assign_ts.ws;
  g->assign = ws->timestamp != NULL;
  g->track_idle = ws->idle_timeout_ms > 0;
  g->per_record = op->node->env->conf.watermark_interval_ms == 0;
  /* nothing but the maximum to keep per record: the runtime forwards them itself */
  if (!g->assign && !g->track_idle && !g->per_record) op->hop = FL_HOP_FORWARD;
  op->state = g;
  return FL_OK;
}

static int ats_process(fl_op_t *op, int input, const fl_record_t *rec) {
  gen_t *g = op->state;
  const fl_watermark_strategy_t *ws = &op->node->u.assign_ts.ws;
  fl_record_t assigned;
  if (g->assign) {
    int64_t got = FL_TS_NONE;
    int rc = ws->timestamp(&op->ctx, rec, &got, ws->opaque);
    if (rc < 0) return fl_op_user_failed(op, rc, "timestamp assigner");
    if (got == FL_TS_NONE)
      return fl_op_fail(op, FL_EINVAL,
                        "the timestamp function returned %" PRId64
                        " (FL_TS_NONE, 'no timestamp'), which is not an event time; fail the "
                        "record with fl_ctx_fail() or filter it out before the assigner",
                        got);
    assigned = *rec;
    assigned.timestamp = got;
    rec = &assigned;
  }
  int64_t ts = rec->timestamp;
  if (g->track_idle) {
    g->last_record = fl_env_now(op->node->env);
    if (g->idle) {
      g->idle = false;
      fl_op_emit_idle(op, false);
    }
  }
  if (ts > op->max_ts) op->max_ts = ts; /* FL_TS_NONE (INT64_MIN) is never larger */
  op->ctx.ts = ts;
  if (!g->per_record) return fl_op_emit(op, rec); /* a tail call: the common case */
  int rc = fl_op_emit(op, rec);
  if (rc) return rc;
  maybe_emit(op, g);
  return FL_OK;
}

static int ats_on_watermark(fl_op_t *op, int64_t wm) {
  gen_t *g = op->state;
  if (wm == FL_TS_MAX && g->emitted != FL_TS_MAX) {
    g->emitted = FL_TS_MAX;
    fl_op_emit_watermark(op, FL_TS_MAX);
  }
  return FL_OP_KEEP_WATERMARK;
}

static int ats_on_tick(fl_op_t *op, int64_t now) {
  gen_t *g = op->state;
  const fl_watermark_strategy_t *ws = &op->node->u.assign_ts.ws;
  int64_t iv = op->node->env->conf.watermark_interval_ms;
  if (iv > 0 && now >= g->next_tick) {
    g->next_tick = now + iv;
    if (!g->idle) maybe_emit(op, g);
  }
  if (ws->idle_timeout_ms > 0 && !g->idle && now - g->last_record >= ws->idle_timeout_ms) {
    g->idle = true;
    fl_op_emit_idle(op, true);
  }
  return FL_OK;
}

static void ats_close(fl_op_t *op) {
  free(op->state);
  op->state = NULL;
}

const fl_op_class_t fl_op_assign_ts_class = {.kind = "assign_timestamps",
                                             .flags = FL_OP_OWN_IDLENESS,
                                             .open = ats_open,
                                             .process = ats_process,
                                             .on_watermark = ats_on_watermark,
                                             .on_tick = ats_on_tick,
                                             .close = ats_close};
