/*
 * Interval and window joins (exec.h). Both inputs come keyed by the equality keys from
 * their CALCs; the join function checks the whole condition on each pair and emits the
 * concatenated row (left columns, then right columns), stamped as the DataStream join
 * stamps it: the later of the two row times for an interval join, window_end - 1 for a
 * window join.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sql/exec.h"

typedef struct join_op {
  sql_opbase_t base;
  const sql_rel_t *r;
  int ln, rn;
  const char *name;
  const sql_session_t *sess;
} join_op_t;

static int join_fn(fl_context_t *ctx, const fl_record_t *a, const fl_record_t *b, void *opaque) {
  const join_op_t *op = opaque;
  const sql_rel_t *r = op->r;
  int rc = FL_OK;
  if (r->residual) {
    sql_eval_t ev;
    sql_eval_init(&ev, op->sess);
    ev.ctx = ctx;
    ev.rows[0] = a->value;
    ev.rows[1] = b->value;
    ev.ncols[0] = op->ln;
    ev.ncols[1] = op->rn;
    sql_val_t v;
    rc = sql_eval(&ev, r->residual, &v);
    if (rc) rc = sql_op_eval_fail(ctx, op->name, &ev, rc);
    sql_eval_free(&ev);
    if (rc) return rc;
    if (v.null || !v.i) return FL_OK;
  }
  sql_val_t stackv[64];
  sql_val_t *vals = r->n <= 64 ? stackv : malloc(sizeof(sql_val_t) * (size_t)r->n);
  if (!vals) return FL_ENOMEM;
  for (int i = 0; i < op->ln; i++) sql_read_col(a->value, op->ln, i, r->f[i].type, &vals[i]);
  for (int i = 0; i < op->rn; i++)
    sql_read_col(b->value, op->rn, i, r->f[op->ln + i].type, &vals[op->ln + i]);
  sql_rb_t rb = {0};
  sql_build_row(&rb, r->n, r->f, vals);
  size_t len;
  const uint8_t *row = sql_rb_finish(&rb, &len);
  rc = row ? fl_emit(ctx, NULL, 0, row, len, fl_ctx_timestamp(ctx)) : FL_ENOMEM;
  sql_rb_free(&rb);
  if (vals != stackv) free(vals);
  return rc;
}

fl_stream_t *sql_exec_join(sql_exec_t *x, sql_rel_t *r, fl_stream_t *l, fl_stream_t *rt) {
  join_op_t *op = sql_op_new(x->sh, sizeof *op);
  if (!op) return NULL;
  op->r = r;
  op->ln = r->in[0]->n;
  op->rn = r->in[1]->n;
  op->sess = x->sess;
  op->name = sql_exec_name(x, r->name);
  /* the join builders keep no destroy: the key CALCs hold the arena */
  sql_op_release(op);
  fl_keyed_stream_t *a = fl_stream_key_by(l, NULL, NULL);
  fl_keyed_stream_t *b = fl_stream_key_by(rt, NULL, NULL);
  if (r->window_join) {
    fl_window_assigner_t w = {.kind = FL_ASSIGNER_TUMBLING, .domain = FL_EVENT_TIME, .size_ms = 1};
    return fl_window_join(a, b, op->name, &w, join_fn, op);
  }
  fl_interval_join_opts_t o = {
      .version = FL_INTERVAL_JOIN_OPTS_VERSION, .lower_ms = r->lower, .upper_ms = r->upper};
  return fl_interval_join(a, b, op->name, &o, join_fn, op);
}
