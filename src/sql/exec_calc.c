/*
 * CALC (projection, filter, record key and timestamp), VALUES, and the materialized
 * window table functions (exec.h).
 *
 * A CALC is a process function: per subtask an evaluation context and row builders;
 * per row the filter, the projections into a new row, the key row when a keyed operator
 * follows, and the new timestamp when the row time changes (a window's end, a time
 * column the record was not stamped with). A CALC that passes every column through
 * unchanged forwards the input bytes as they are.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sql/exec.h"

typedef struct calc_op {
  sql_opbase_t base;
  const sql_rel_t *r;
  int in_n;
  bool identity;
  const char *name;
  const sql_session_t *sess;
} calc_op_t;

typedef struct calc_inst {
  const calc_op_t *op;
  sql_eval_t ev;
  sql_rb_t rb, kb;
  sql_val_t *vals;
} calc_inst_t;

static int calc_open(fl_context_t *ctx, void *opaque, void **instance) {
  calc_op_t *op = opaque;
  calc_inst_t *ci = calloc(1, sizeof *ci);
  if (!ci) return FL_ENOMEM;
  ci->op = op;
  sql_eval_init(&ci->ev, op->sess);
  int n = op->r->n > op->r->nkey ? op->r->n : op->r->nkey;
  ci->vals = calloc((size_t)(n ? n : 1), sizeof(sql_val_t));
  if (!ci->vals) {
    free(ci);
    return FL_ENOMEM;
  }
  *instance = ci;
  return FL_OK;
}

static void calc_close(void *instance) {
  calc_inst_t *ci = instance;
  sql_eval_free(&ci->ev);
  sql_rb_free(&ci->rb);
  sql_rb_free(&ci->kb);
  free(ci->vals);
  free(ci);
}

static int calc_process(fl_context_t *ctx, const fl_record_t *in, void *instance) {
  calc_inst_t *ci = instance;
  const calc_op_t *op = ci->op;
  const sql_rel_t *r = op->r;
  sql_eval_t *ev = &ci->ev;
  sql_scratch_reset(&ev->scratch);
  ev->ctx = ctx;
  ev->rows[0] = in->value;
  ev->ncols[0] = op->in_n;
  int rc;
  if (r->filter) {
    sql_val_t f;
    if ((rc = sql_eval(ev, r->filter, &f))) return sql_op_eval_fail(ctx, op->name, ev, rc);
    if (f.null || !f.i) return FL_OK;
  }
  int64_t ts = in->timestamp;
  if (r->ts) {
    sql_val_t t;
    if ((rc = sql_eval(ev, r->ts, &t))) return sql_op_eval_fail(ctx, op->name, ev, rc);
    if (t.null)
      return fl_ctx_fail(ctx, "%s: the time attribute %s is NULL (a row time must not be NULL)",
                         op->name, r->ts->text);
    ts = t.i + r->ts_offset;
  }
  const void *key = NULL;
  size_t key_len = 0;
  if (r->nkey) {
    for (int i = 0; i < r->nkey; i++) {
      if ((rc = sql_eval(ev, r->key[i], &ci->vals[i])))
        return sql_op_eval_fail(ctx, op->name, ev, rc);
      /* equal doubles are equal keys: -0.0 is 0.0 */
      if (!ci->vals[i].null && sql_type_is_approx(r->key[i]->type) && ci->vals[i].d == 0)
        ci->vals[i].d = 0;
    }
    sql_rb_begin(&ci->kb, r->nkey);
    for (int i = 0; i < r->nkey; i++) sql_write_col(&ci->kb, i, r->key[i]->type, &ci->vals[i]);
    key = sql_rb_finish(&ci->kb, &key_len);
    if (!key) return FL_ENOMEM;
  }
  if (op->identity) return fl_emit(ctx, key, key_len, in->value, in->value_len, ts);
  for (int i = 0; i < r->n; i++)
    if ((rc = sql_eval(ev, r->proj[i], &ci->vals[i])))
      return sql_op_eval_fail(ctx, op->name, ev, rc);
  sql_build_row(&ci->rb, r->n, r->f, ci->vals);
  size_t len;
  const uint8_t *row = sql_rb_finish(&ci->rb, &len);
  if (!row) return FL_ENOMEM;
  return fl_emit(ctx, key, key_len, row, len, ts);
}

static const fl_process_fn_t calc_fn = {.version = FL_PROCESS_FN_VERSION,
                                        .open = calc_open,
                                        .process = calc_process,
                                        .close = calc_close,
                                        .destroy = sql_op_release};

fl_stream_t *sql_exec_calc(sql_exec_t *x, sql_rel_t *r, fl_stream_t *in) {
  const sql_rel_t *src = r->in[0]->alias_of ? r->in[0]->alias_of : r->in[0];
  calc_op_t *op = sql_op_new(x->sh, sizeof *op);
  if (!op) return NULL;
  op->r = r;
  op->in_n = src->n;
  op->sess = x->sess;
  op->name = sql_exec_name(x, r->name ? r->name : "calc");
  bool id = !r->filter && r->n == src->n;
  for (int i = 0; id && i < r->n; i++) {
    const sql_x_t *p = r->proj[i];
    if (p->xk != XK_COL || p->input != 0 || p->col != i ||
        !sql_type_equal(p->type, src->f[i].type, true))
      id = false;
  }
  op->identity = id;
  return fl_stream_process(in, op->name, &calc_fn, op);
}

/* ---------------------------------------------------------------------------------- */
/* VALUES                                                                             */

fl_stream_t *sql_exec_values(sql_exec_t *x, sql_rel_t *r) {
  fl_record_t *recs =
      sql_arena_alloc(x->a, sizeof(fl_record_t) * (size_t)(r->nrows ? r->nrows : 1));
  sql_val_t *vals = sql_arena_alloc(x->a, sizeof(sql_val_t) * (size_t)(r->n ? r->n : 1));
  if (!recs || !vals) return NULL;
  sql_rb_t rb = {0};
  for (int i = 0; i < r->nrows; i++) {
    for (int c = 0; c < r->n; c++) {
      char err[256];
      if (sql_eval_const(r->values[i * r->n + c], x->sess, &vals[c], err, sizeof err) != FL_OK) {
        sql_rb_free(&rb);
        sql_exec_fail(x, FL_EINVAL, "VALUES: %s", err);
        return NULL;
      }
    }
    sql_build_row(&rb, r->n, r->f, vals);
    for (int c = 0; c < r->n; c++)
      if (!vals[c].null && sql_type_in_var(r->f[c].type) && r->f[c].type->kind != T_DECIMAL)
        free((void *)vals[c].s.p);
    size_t len;
    const uint8_t *row = sql_rb_finish(&rb, &len);
    void *copy = row ? sql_arena_alloc(x->a, len) : NULL;
    if (!copy) {
      sql_rb_free(&rb);
      return NULL;
    }
    memcpy(copy, row, len);
    recs[i] = (fl_record_t){NULL, 0, copy, len, FL_TS_NONE};
  }
  sql_rb_free(&rb);
  return fl_source_collection(x->env, sql_exec_name(x, "values"), recs, (size_t)r->nrows);
}

/* ---------------------------------------------------------------------------------- */
/* Window table functions, materialized                                                */

typedef struct tvf_inst {
  const sql_rel_t *r;
  int in_n;
  sql_rb_t rb;
  sql_val_t *vals;
  const char *name;
} tvf_inst_t;

typedef struct tvf_op {
  sql_opbase_t base;
  const sql_rel_t *r;
  int in_n;
  const char *name;
} tvf_op_t;

static int tvf_open(fl_context_t *ctx, void *opaque, void **instance) {
  tvf_op_t *op = opaque;
  tvf_inst_t *ti = calloc(1, sizeof *ti);
  if (!ti) return FL_ENOMEM;
  ti->r = op->r;
  ti->in_n = op->in_n;
  ti->name = op->name;
  ti->vals = calloc((size_t)op->r->n, sizeof(sql_val_t));
  if (!ti->vals) {
    free(ti);
    return FL_ENOMEM;
  }
  *instance = ti;
  return FL_OK;
}

static void tvf_close(void *instance) {
  tvf_inst_t *ti = instance;
  sql_rb_free(&ti->rb);
  free(ti->vals);
  free(ti);
}

static int tvf_emit(fl_context_t *ctx, tvf_inst_t *ti, const fl_record_t *in, int64_t start,
                    int64_t end) {
  const sql_rel_t *r = ti->r;
  sql_val_t *v = ti->vals;
  v[ti->in_n].null = v[ti->in_n + 1].null = v[ti->in_n + 2].null = false;
  v[ti->in_n].i = start;
  v[ti->in_n + 1].i = end;
  v[ti->in_n + 2].i = end - 1;
  sql_build_row(&ti->rb, r->n, r->f, v);
  size_t len;
  const uint8_t *row = sql_rb_finish(&ti->rb, &len);
  if (!row) return FL_ENOMEM;
  return fl_emit(ctx, NULL, 0, row, len, in->timestamp);
}

static int tvf_process(fl_context_t *ctx, const fl_record_t *in, void *instance) {
  tvf_inst_t *ti = instance;
  const sql_rel_t *r = ti->r;
  const sql_winspec_t *ws = &r->ws;
  for (int i = 0; i < ti->in_n; i++)
    sql_read_col(in->value, ti->in_n, i, r->f[i].type, &ti->vals[i]);
  int64_t t;
  if (ws->proctime) {
    t = fl_ctx_processing_time(ctx);
  } else {
    const sql_val_t *tv = &ti->vals[r->time_col];
    if (tv->null) return fl_ctx_fail(ctx, "%s: the time attribute is NULL", ti->name);
    t = tv->i;
  }
  int rc = FL_OK;
  switch (ws->kind) {
  case WIN_TUMBLE: {
    int64_t s = sql_floor_div(t - ws->offset, ws->size) * ws->size + ws->offset;
    rc = tvf_emit(ctx, ti, in, s, s + ws->size);
    break;
  }
  case WIN_HOP: {
    int64_t last = sql_floor_div(t - ws->offset, ws->slide) * ws->slide + ws->offset;
    for (int64_t s = last; s > t - ws->size && rc == FL_OK; s -= ws->slide)
      rc = tvf_emit(ctx, ti, in, s, s + ws->size);
    break;
  }
  case WIN_CUMULATE: {
    int64_t s = sql_floor_div(t - ws->offset, ws->size) * ws->size + ws->offset;
    int64_t first = s + (sql_floor_div(t - s, ws->step) + 1) * ws->step;
    for (int64_t e = first; e <= s + ws->size && rc == FL_OK; e += ws->step)
      rc = tvf_emit(ctx, ti, in, s, e);
    break;
  }
  default: return fl_ctx_fail(ctx, "%s: SESSION windows exist only under GROUP BY", ti->name);
  }
  return rc;
}

static const fl_process_fn_t tvf_fn = {.version = FL_PROCESS_FN_VERSION,
                                       .open = tvf_open,
                                       .process = tvf_process,
                                       .close = tvf_close,
                                       .destroy = sql_op_release};

fl_stream_t *sql_exec_wintvf(sql_exec_t *x, sql_rel_t *r, fl_stream_t *in) {
  if (r->ws.kind == WIN_SESSION) {
    sql_exec_fail(x, FL_ENOTSUP,
                  "SESSION windows are supported under GROUP BY window_start, window_end only");
    return NULL;
  }
  tvf_op_t *op = sql_op_new(x->sh, sizeof *op);
  if (!op) return NULL;
  op->r = r;
  op->in_n = r->n - 3;
  op->name = sql_exec_name(x, r->name);
  return fl_stream_process(in, op->name, &tvf_fn, op);
}
