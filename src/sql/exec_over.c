/*
 * OVER aggregations and window Top-N (exec.h), as keyed process functions with keyed
 * state and event-time timers.
 *
 * OVER (event time): a row waits in `pending` (a map from its time to the rows of that
 * time) until the watermark reaches it, then, in time order per key: rows of the frame
 * that fell out (RANGE: older than t - range; ROWS: more than n rows back) are retracted
 * from the accumulators, the new rows added, and each is emitted with the aggregates
 * appended. Accumulators (one value state) are incremental; MIN, MAX, FIRST_VALUE and
 * LAST_VALUE cannot retract and are recomputed over the retained frame when a row left
 * it. UNBOUNDED PRECEDING keeps no rows at all. Rows that arrive behind the watermark
 * are late: dropped and counted ("late-records-dropped"), as Flink drops them. With a
 * processing-time order each row is processed when it arrives.
 *
 * Top-N: the N best rows of each (partition, window), kept sorted in a list state (at
 * most N rows), emitted with their row number when the watermark passes the window's
 * end.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sql/aggs.h"
#include "sql/exec.h"
#include "util/vec.h"

typedef struct over_op {
  sql_opbase_t base;
  const sql_rel_t *r;
  int nvals; /* columns of the input rows (input columns + aggregate inputs) */
  int in_n;  /* the input columns kept in the output */
  const char *name;
  const sql_session_t *sess;
  const fl_state_desc_t *pending, *retained, *acc;
  bool recompute; /* some aggregate cannot retract */
} over_op_t;

typedef struct over_inst {
  const over_op_t *op;
  sql_eval_t ev;
  sql_rb_t rb;
  sql_val_t *vals;
  uint8_t *accbuf;
  fl_bytes_t *items;
  size_t nitems, cap;
} over_inst_t;

static int over_open(fl_context_t *ctx, void *opaque, void **instance) {
  over_op_t *op = opaque;
  over_inst_t *oi = calloc(1, sizeof *oi);
  if (!oi) return FL_ENOMEM;
  oi->op = op;
  sql_eval_init(&oi->ev, op->sess);
  oi->vals = calloc((size_t)op->r->n + 1, sizeof(sql_val_t));
  oi->accbuf = calloc(1, op->r->acc_size);
  if (!oi->vals || !oi->accbuf) {
    free(oi->vals);
    free(oi->accbuf);
    free(oi);
    return FL_ENOMEM;
  }
  *instance = oi;
  return FL_OK;
}

static void over_close(void *instance) {
  over_inst_t *oi = instance;
  sql_eval_free(&oi->ev);
  sql_rb_free(&oi->rb);
  for (size_t i = 0; i < oi->nitems; i++) free((void *)oi->items[i].data);
  free(oi->items);
  free(oi->vals);
  free(oi->accbuf);
  free(oi);
}

static int push_item(over_inst_t *oi, const void *p, size_t n) {
  if (FL_VEC_RESERVE(oi->items, oi->cap, oi->nitems + 1)) return FL_ENOMEM;
  void *c = malloc(n ? n : 1);
  if (!c) return FL_ENOMEM;
  memcpy(c, p, n);
  oi->items[oi->nitems].data = c;
  oi->items[oi->nitems].len = n;
  oi->nitems++;
  return FL_OK;
}

static void clear_items(over_inst_t *oi) {
  for (size_t i = 0; i < oi->nitems; i++) free((void *)oi->items[i].data);
  oi->nitems = 0;
}

static int64_t row_time(const over_op_t *op, const uint8_t *row) {
  return sql_row_i64(row, op->nvals, op->r->time_col);
}

static int emit_over(fl_context_t *ctx, over_inst_t *oi, const uint8_t *row, const uint8_t *acc,
                     int64_t ts) {
  const over_op_t *op = oi->op;
  const sql_rel_t *r = op->r;
  sql_scratch_reset(&oi->ev.scratch);
  oi->ev.ctx = ctx;
  for (int i = 0; i < op->in_n; i++) sql_read_col(row, op->nvals, i, r->f[i].type, &oi->vals[i]);
  for (int j = 0; j < r->naggs; j++) {
    int rc =
        sql_acc_result(&r->aggs[j], acc + r->aggs[j].acc_off, &oi->ev, &oi->vals[op->in_n + j]);
    if (rc) return fl_ctx_fail(ctx, "%s: aggregate failed", op->name);
  }
  sql_build_row(&oi->rb, r->n, r->f, oi->vals);
  size_t len;
  const uint8_t *out = sql_rb_finish(&oi->rb, &len);
  if (!out) return FL_ENOMEM;
  return fl_emit(ctx, NULL, 0, out, len, ts);
}

static int acc_all(const over_op_t *op, uint8_t *acc, const uint8_t *row, int dir,
                   bool only_nonretract) {
  for (int j = 0; j < op->r->naggs; j++) {
    const sql_agg_t *ag = &op->r->aggs[j];
    bool retractable = sql_acc_retractable(ag);
    if (only_nonretract && retractable) continue;
    if (dir < 0 && !retractable) continue;
    int rc = sql_acc_add(ag, acc + ag->acc_off, row, op->nvals, dir);
    if (rc) return rc;
  }
  return FL_OK;
}

/* Processes the rows of one time t (rows[n], each a row of the input), for the current
 * key. */
static int over_fire(fl_context_t *ctx, over_inst_t *oi, const fl_bytes_t *rows, size_t n,
                     int64_t t) {
  const over_op_t *op = oi->op;
  const sql_rel_t *r = op->r;
  uint8_t *acc = oi->accbuf;
  const void *av;
  size_t alen;
  int rc = fl_value_get(ctx, op->acc, &av, &alen);
  if (rc < 0) return rc;
  if (rc == 1 && alen == r->acc_size) {
    memcpy(acc, av, alen);
  } else {
    for (int j = 0; j < r->naggs; j++) sql_acc_init(&r->aggs[j], acc + r->aggs[j].acc_off);
  }
  if (r->unbounded) {
    /* RANGE: peers share the result; ROWS: each row its own */
    if (!r->rows_frame) {
      for (size_t i = 0; i < n; i++)
        if ((rc = acc_all(op, acc, rows[i].data, 1, false))) return rc;
      for (size_t i = 0; i < n; i++)
        if ((rc = emit_over(ctx, oi, rows[i].data, acc, t))) return rc;
    } else {
      for (size_t i = 0; i < n; i++) {
        if ((rc = acc_all(op, acc, rows[i].data, 1, false))) return rc;
        if ((rc = emit_over(ctx, oi, rows[i].data, acc, t))) return rc;
      }
    }
    return fl_value_set(ctx, op->acc, acc, r->acc_size);
  }
  /* bounded frames: the retained rows, oldest first */
  clear_items(oi);
  const fl_bytes_t *ret;
  size_t nret;
  if ((rc = fl_list_get(ctx, op->retained, &ret, &nret)) < 0) return rc;
  for (size_t i = 0; i < nret; i++)
    if ((rc = push_item(oi, ret[i].data, ret[i].len))) return rc;
  size_t head = 0;
  bool retracted = false;
  if (!r->rows_frame) {
    int64_t lo = t - r->preceding;
    while (head < oi->nitems && row_time(op, oi->items[head].data) < lo) {
      if ((rc = acc_all(op, acc, oi->items[head].data, -1, false))) return rc;
      head++;
      retracted = true;
    }
    for (size_t i = 0; i < n; i++) {
      if ((rc = acc_all(op, acc, rows[i].data, 1, false))) return rc;
      if ((rc = push_item(oi, rows[i].data, rows[i].len))) return rc;
    }
    if (retracted && op->recompute) {
      for (int j = 0; j < r->naggs; j++)
        if (!sql_acc_retractable(&r->aggs[j])) sql_acc_init(&r->aggs[j], acc + r->aggs[j].acc_off);
      for (size_t i = head; i < oi->nitems; i++)
        if ((rc = acc_all(op, acc, oi->items[i].data, 1, true))) return rc;
    }
    for (size_t i = 0; i < n; i++)
      if ((rc = emit_over(ctx, oi, rows[i].data, acc, t))) return rc;
  } else {
    for (size_t i = 0; i < n; i++) {
      if ((rc = acc_all(op, acc, rows[i].data, 1, false))) return rc;
      if ((rc = push_item(oi, rows[i].data, rows[i].len))) return rc;
      retracted = false;
      while (oi->nitems - head > (size_t)r->preceding + 1) {
        if ((rc = acc_all(op, acc, oi->items[head].data, -1, false))) return rc;
        head++;
        retracted = true;
      }
      if (retracted && op->recompute) {
        for (int j = 0; j < r->naggs; j++)
          if (!sql_acc_retractable(&r->aggs[j]))
            sql_acc_init(&r->aggs[j], acc + r->aggs[j].acc_off);
        for (size_t k = head; k < oi->nitems; k++)
          if ((rc = acc_all(op, acc, oi->items[k].data, 1, true))) return rc;
      }
      if ((rc = emit_over(ctx, oi, rows[i].data, acc, t))) return rc;
    }
  }
  if ((rc = fl_list_update(ctx, op->retained, oi->items + head, oi->nitems - head)) < 0) return rc;
  return fl_value_set(ctx, op->acc, acc, r->acc_size);
}

static void be64(uint8_t *p, int64_t v) {
  uint64_t u = (uint64_t)v ^ (UINT64_C(1) << 63);
  for (int i = 7; i >= 0; i--) {
    p[i] = (uint8_t)u;
    u >>= 8;
  }
}

static int over_process(fl_context_t *ctx, const fl_record_t *in, void *instance) {
  over_inst_t *oi = instance;
  const over_op_t *op = oi->op;
  if (op->r->order_proctime) {
    fl_bytes_t one = {in->value, in->value_len};
    return over_fire(ctx, oi, &one, 1, fl_ctx_processing_time(ctx));
  }
  int64_t ts = in->timestamp, wm = fl_ctx_watermark(ctx);
  if (wm != FL_TS_NONE && ts <= wm) return fl_ctx_counter_add(ctx, "late-records-dropped", 1);
  uint8_t k[8];
  be64(k, ts);
  const void *old;
  size_t olen;
  int rc = fl_map_get(ctx, op->pending, k, 8, &old, &olen);
  if (rc < 0) return rc;
  size_t add = 4 + in->value_len;
  uint8_t *buf = malloc((rc == 1 ? olen : 0) + add);
  if (!buf) return FL_ENOMEM;
  size_t n = 0;
  if (rc == 1) {
    memcpy(buf, old, olen);
    n = olen;
  }
  uint32_t len = (uint32_t)in->value_len;
  memcpy(buf + n, &len, 4);
  memcpy(buf + n + 4, in->value, in->value_len);
  n += add;
  rc = fl_map_put(ctx, op->pending, k, 8, buf, n);
  free(buf);
  if (rc < 0) return rc;
  return fl_timer_register(ctx, FL_EVENT_TIME, ts);
}

static int over_timer(fl_context_t *ctx, int64_t ts, fl_time_domain_t domain, void *instance) {
  over_inst_t *oi = instance;
  const over_op_t *op = oi->op;
  uint8_t k[8];
  be64(k, ts);
  const void *v;
  size_t vlen;
  int rc = fl_map_get(ctx, op->pending, k, 8, &v, &vlen);
  if (rc <= 0) return rc;
  uint8_t *copy = malloc(vlen ? vlen : 1);
  if (!copy) return FL_ENOMEM;
  memcpy(copy, v, vlen);
  size_t cnt = 0;
  for (size_t off = 0; off + 4 <= vlen;) {
    uint32_t l;
    memcpy(&l, copy + off, 4);
    off += 4 + l;
    cnt++;
  }
  fl_bytes_t *rows = malloc(sizeof(fl_bytes_t) * (cnt ? cnt : 1));
  if (!rows) {
    free(copy);
    return FL_ENOMEM;
  }
  size_t i = 0;
  for (size_t off = 0; off + 4 <= vlen && i < cnt; i++) {
    uint32_t l;
    memcpy(&l, copy + off, 4);
    rows[i].data = copy + off + 4;
    rows[i].len = l;
    off += 4 + l;
  }
  rc = fl_map_remove(ctx, op->pending, k, 8);
  if (rc >= 0) rc = over_fire(ctx, oi, rows, cnt, ts);
  free(rows);
  free(copy);
  return rc < 0 ? rc : FL_OK;
}

static const fl_process_fn_t over_fn = {.version = FL_PROCESS_FN_VERSION,
                                        .open = over_open,
                                        .process = over_process,
                                        .on_timer = over_timer,
                                        .close = over_close,
                                        .destroy = sql_op_release};

fl_stream_t *sql_exec_over(sql_exec_t *x, sql_rel_t *r, fl_stream_t *in) {
  over_op_t *op = sql_op_new(x->sh, sizeof *op);
  if (!op) return NULL;
  op->r = r;
  op->nvals = r->in[0]->n;
  op->in_n = r->n - r->naggs;
  op->sess = x->sess;
  op->name = sql_exec_name(x, r->name);
  for (int j = 0; j < r->naggs; j++)
    if (!sql_acc_retractable(&r->aggs[j])) op->recompute = true;
  op->pending = fl_state_map(x->env, sql_arena_printf(x->a, "%s.pending", op->name));
  op->retained = fl_state_list(x->env, sql_arena_printf(x->a, "%s.frame", op->name));
  op->acc = fl_state_value(x->env, sql_arena_printf(x->a, "%s.acc", op->name));
  fl_keyed_stream_t *k = fl_stream_key_by(in, NULL, NULL);
  return fl_keyed_process(k, op->name, &over_fn, op);
}

/* ---------------------------------------------------------------------------------- */
/* Window Top-N                                                                       */

typedef struct rank_op {
  sql_opbase_t base;
  const sql_rel_t *r;
  int nvals;
  const char *name;
  const fl_state_desc_t *top;
} rank_op_t;

/* <0 when a ranks before b */
static int rank_cmp(const rank_op_t *op, const uint8_t *a, const uint8_t *b) {
  const sql_rel_t *r = op->r;
  const sql_rel_t *pre = r->in[0];
  for (int i = 0; i < r->norder; i++) {
    int c = r->order_cols[i];
    const sql_type_t *t = pre->f[c].type;
    sql_val_t va, vb;
    sql_read_col(a, op->nvals, c, t, &va);
    sql_read_col(b, op->nvals, c, t, &vb);
    int d;
    if (va.null || vb.null)
      d = va.null == vb.null ? 0 : va.null ? -1 : 1; /* NULLS FIRST asc */
    else
      d = sql_val_cmp(t, &va, &vb);
    if (r->order_desc[i]) d = -d;
    if (d) return d;
  }
  return 0;
}

static int rank_process(fl_context_t *ctx, const fl_record_t *in, void *instance) {
  const rank_op_t *op = instance;
  int64_t wm = fl_ctx_watermark(ctx);
  if (wm != FL_TS_NONE && in->timestamp <= wm)
    return fl_ctx_counter_add(ctx, "late-records-dropped", 1);
  const fl_bytes_t *items;
  size_t n;
  int rc = fl_list_get(ctx, op->top, &items, &n);
  if (rc < 0) return rc;
  size_t limit = (size_t)op->r->limit;
  size_t pos = n;
  while (pos > 0 && rank_cmp(op, in->value, items[pos - 1].data) < 0) pos--;
  if (pos >= limit) return FL_OK;
  size_t nn = n + 1 > limit ? limit : n + 1;
  fl_bytes_t stackb[16];
  fl_bytes_t *nv = nn <= 16 ? stackb : malloc(sizeof(fl_bytes_t) * nn);
  if (!nv) return FL_ENOMEM;
  /* the views stay valid until the next state call: copy them into one buffer */
  size_t total = in->value_len;
  for (size_t i = 0; i < n; i++) total += items[i].len;
  uint8_t *buf = malloc(total ? total : 1);
  if (!buf) {
    if (nv != stackb) free(nv);
    return FL_ENOMEM;
  }
  size_t off = 0, k = 0;
#define RANK_ADD(p_, l_)           \
  do {                             \
    memcpy(buf + off, (p_), (l_)); \
    nv[k].data = buf + off;        \
    nv[k].len = (l_);              \
    off += (l_);                   \
    k++;                           \
  } while (0)
  for (size_t i = 0; i < pos && k < nn; i++) RANK_ADD(items[i].data, items[i].len);
  if (k < nn) RANK_ADD(in->value, in->value_len);
  for (size_t i = pos; i < n && k < nn; i++) RANK_ADD(items[i].data, items[i].len);
#undef RANK_ADD
  rc = fl_list_update(ctx, op->top, nv, k);
  free(buf);
  if (nv != stackb) free(nv);
  if (rc < 0) return rc;
  return fl_timer_register(ctx, FL_EVENT_TIME, in->timestamp);
}

static int rank_timer(fl_context_t *ctx, int64_t ts, fl_time_domain_t domain, void *instance) {
  const rank_op_t *op = instance;
  const sql_rel_t *r = op->r;
  const fl_bytes_t *items;
  size_t n;
  int rc = fl_list_get(ctx, op->top, &items, &n);
  if (rc < 0) return rc;
  /* copy out before emitting (emit may reach state calls of chained operators) */
  size_t total = 0;
  for (size_t i = 0; i < n; i++) total += items[i].len;
  uint8_t *buf = malloc(total ? total : 1);
  size_t *offs = malloc(sizeof(size_t) * (n + 1));
  sql_val_t *vals = malloc(sizeof(sql_val_t) * (size_t)(r->n + 1));
  if (!buf || !offs || !vals) {
    free(buf);
    free(offs);
    free(vals);
    return FL_ENOMEM;
  }
  size_t off = 0;
  for (size_t i = 0; i < n; i++) {
    offs[i] = off;
    memcpy(buf + off, items[i].data, items[i].len);
    off += items[i].len;
  }
  rc = fl_state_clear(ctx, op->top);
  sql_rb_t rb = {0};
  int in_n = r->n - 1;
  for (size_t i = 0; i < n && rc >= 0; i++) {
    const uint8_t *row = buf + offs[i];
    for (int c = 0; c < in_n; c++) sql_read_col(row, op->nvals, c, r->f[c].type, &vals[c]);
    vals[in_n].null = false;
    vals[in_n].i = (int64_t)i + 1;
    sql_build_row(&rb, r->n, r->f, vals);
    size_t len;
    const uint8_t *out = sql_rb_finish(&rb, &len);
    rc = out ? fl_emit(ctx, NULL, 0, out, len, ts) : FL_ENOMEM;
  }
  sql_rb_free(&rb);
  free(buf);
  free(offs);
  free(vals);
  return rc < 0 ? rc : FL_OK;
}

static const fl_process_fn_t rank_fn = {.version = FL_PROCESS_FN_VERSION,
                                        .process = rank_process,
                                        .on_timer = rank_timer,
                                        .destroy = sql_op_release};

fl_stream_t *sql_exec_rank(sql_exec_t *x, sql_rel_t *r, fl_stream_t *in) {
  rank_op_t *op = sql_op_new(x->sh, sizeof *op);
  if (!op) return NULL;
  op->r = r;
  op->nvals = r->in[0]->n;
  op->name = sql_exec_name(x, r->name);
  op->top = fl_state_list(x->env, sql_arena_printf(x->a, "%s.top", op->name));
  fl_keyed_stream_t *k = fl_stream_key_by(in, NULL, NULL);
  return fl_keyed_process(k, op->name, &rank_fn, op);
}
