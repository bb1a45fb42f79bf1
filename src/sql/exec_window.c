/*
 * Window aggregation (exec.h): keyBy the group key (the record key the CALC before it
 * made), the window assigner, and fl_window_aggregate with an accumulator that holds
 * every aggregate of the query side by side (incremental: one accumulator per key and
 * window, whatever the number of rows). Aggregates that need the rows themselves
 * (DISTINCT, MIN/MAX of strings) use fl_window_process instead, over the aggregate
 * inputs only.
 *
 * A result row is the group key columns (from the record key), the window bounds
 * (native windows) and the aggregates, stamped window_end - 1.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sql/aggs.h"
#include "sql/exec.h"

typedef struct winagg_op {
  sql_opbase_t base;
  const sql_rel_t *r;
  int nvals; /* columns of the input rows (aggregate inputs) */
  const char *name;
  const sql_session_t *sess;
} winagg_op_t;

static void wa_init(void *acc, void *opaque) {
  const winagg_op_t *op = opaque;
  for (int j = 0; j < op->r->naggs; j++)
    sql_acc_init(&op->r->aggs[j], (uint8_t *)acc + op->r->aggs[j].acc_off);
}

static int wa_add(fl_context_t *ctx, void *acc, const fl_record_t *in, void *opaque) {
  const winagg_op_t *op = opaque;
  for (int j = 0; j < op->r->naggs; j++) {
    const sql_agg_t *ag = &op->r->aggs[j];
    int rc = sql_acc_add(ag, (uint8_t *)acc + ag->acc_off, in->value, op->nvals, 1);
    if (rc < 0)
      return fl_ctx_fail(ctx, "%s: aggregate %s failed", op->name, op->r->f[op->r->nkeys].name);
  }
  return FL_OK;
}

static void wa_merge(void *acc, const void *other, void *opaque) {
  const winagg_op_t *op = opaque;
  for (int j = 0; j < op->r->naggs; j++) {
    const sql_agg_t *ag = &op->r->aggs[j];
    sql_acc_merge(ag, (uint8_t *)acc + ag->acc_off, (const uint8_t *)other + ag->acc_off);
  }
}

/* Emits the result row: group keys, window bounds, then vals (the aggregates). */
static int emit_result(fl_context_t *ctx, const winagg_op_t *op, const fl_window_t *w,
                       sql_val_t *aggvals) {
  const sql_rel_t *r = op->r;
  int ngroup = r->n - r->naggs;
  size_t klen;
  const uint8_t *key = fl_ctx_key(ctx, &klen);
  sql_val_t stackv[32];
  sql_val_t *vals = r->n <= 32 ? stackv : malloc(sizeof(sql_val_t) * (size_t)r->n);
  if (!vals) return FL_ENOMEM;
  for (int i = 0; i < ngroup; i++) {
    if (r->out_keys[i] >= 0) {
      sql_read_col(key, r->nkeys, r->out_keys[i], r->f[i].type, &vals[i]);
    } else {
      vals[i].null = false;
      vals[i].i = r->out_win[i] == WA_START ? w->start
                  : r->out_win[i] == WA_END ? w->end
                                            : w->end - 1;
    }
  }
  for (int j = 0; j < r->naggs; j++) vals[ngroup + j] = aggvals[j];
  sql_rb_t rb = {0};
  sql_build_row(&rb, r->n, r->f, vals);
  size_t len;
  const uint8_t *row = sql_rb_finish(&rb, &len);
  int rc = row ? fl_emit(ctx, NULL, 0, row, len, w->end - 1) : FL_ENOMEM;
  sql_rb_free(&rb);
  if (vals != stackv) free(vals);
  return rc;
}

static int wa_result(fl_context_t *ctx, const fl_window_t *w, const void *acc, void *opaque) {
  const winagg_op_t *op = opaque;
  const sql_rel_t *r = op->r;
  sql_eval_t ev;
  sql_eval_init(&ev, op->sess);
  ev.ctx = ctx;
  sql_val_t stackv[32];
  sql_val_t *vals = r->naggs <= 32 ? stackv : malloc(sizeof(sql_val_t) * (size_t)r->naggs);
  int rc = vals ? FL_OK : FL_ENOMEM;
  for (int j = 0; j < r->naggs && rc == FL_OK; j++) {
    const sql_agg_t *ag = &r->aggs[j];
    rc = sql_acc_result(ag, (const uint8_t *)acc + ag->acc_off, &ev, &vals[j]);
  }
  if (rc == FL_OK)
    rc = emit_result(ctx, op, w, vals);
  else if (rc != FL_ENOMEM)
    rc = fl_ctx_fail(ctx, "%s: an aggregate failed", op->name);
  if (vals != stackv) free(vals);
  sql_eval_free(&ev);
  return rc;
}

static int wa_process(fl_context_t *ctx, const fl_window_t *w, const fl_record_t *elements,
                      size_t n, void *opaque) {
  const winagg_op_t *op = opaque;
  const sql_rel_t *r = op->r;
  sql_eval_t ev;
  sql_eval_init(&ev, op->sess);
  ev.ctx = ctx;
  sql_val_t *vals = malloc(sizeof(sql_val_t) * (size_t)(r->naggs ? r->naggs : 1));
  int rc = vals ? FL_OK : FL_ENOMEM;
  for (int j = 0; j < r->naggs && rc == FL_OK; j++)
    rc = sql_agg_rows(&r->aggs[j], elements, n, op->nvals, &ev, &vals[j]);
  if (rc == FL_OK) rc = emit_result(ctx, op, w, vals);
  free(vals);
  sql_eval_free(&ev);
  return rc;
}

fl_stream_t *sql_exec_winagg(sql_exec_t *x, sql_rel_t *r, fl_stream_t *in) {
  const sql_rel_t *pre = r->in[0];
  winagg_op_t *op = sql_op_new(x->sh, sizeof *op);
  if (!op) return NULL;
  op->r = r;
  op->nvals = pre->n;
  op->sess = x->sess;
  op->name = sql_exec_name(x, r->name);
  fl_keyed_stream_t *k = fl_stream_key_by(in, NULL, NULL);
  const sql_winspec_t *ws = &r->ws;
  fl_windowed_stream_t *w;
  fl_time_domain_t dom = ws->proctime ? FL_PROCESSING_TIME : FL_EVENT_TIME;
  if (!r->native) {
    /* each row stamped window_end - 1: the window [window_end - 1, window_end) */
    w = fl_window_tumbling(k, FL_EVENT_TIME, 1, 0);
  } else if (ws->kind == WIN_TUMBLE) {
    w = fl_window_tumbling(k, dom, ws->size, ws->offset);
  } else if (ws->kind == WIN_HOP) {
    w = fl_window_sliding(k, dom, ws->size, ws->slide, ws->offset);
  } else {
    for (int j = 0; j < r->naggs; j++) {
      const sql_agg_t *ag = &r->aggs[j];
      if (ag->kind == AGG_UDAF && !ag->udaf->agg.merge) {
        sql_op_release(op);
        sql_exec_fail(x, FL_EINVAL,
                      "aggregate %s has no merge function, which SESSION windows need",
                      ag->udaf->name);
        return NULL;
      }
    }
    w = fl_window_session(k, dom, ws->gap);
  }
  if (r->buffered) {
    /* fl_window_process keeps no destroy: the CALC before it holds the arena */
    sql_op_release(op);
    return fl_window_process(w, op->name, wa_process, op);
  }
  fl_aggregate_fn_t fn = {.version = FL_AGGREGATE_FN_VERSION,
                          .acc_size = r->acc_size,
                          .init = wa_init,
                          .add = wa_add,
                          .merge = wa_merge,
                          .result = wa_result,
                          .destroy = sql_op_release};
  return fl_window_aggregate(w, op->name, &fn, op);
}
