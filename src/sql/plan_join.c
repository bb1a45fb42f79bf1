/*
 * Joins (planner.h). Two append-only joins run without unbounded state:
 *
 *  - window joins: the condition equates the window_start and window_end of both
 *    inputs (window table functions or window aggregations). Each row is keyed by all
 *    equality keys (the window bounds among them) and restamped to window_end - 1, and
 *    the rows of both sides meet in a one-millisecond tumbling window join that fires
 *    when the window closes;
 *  - interval joins: besides equality keys, the condition bounds one side's row time
 *    by the other's from below and above (a.t BETWEEN b.t - INTERVAL '1' HOUR AND b.t,
 *    a.t >= b.t AND a.t < b.t + INTERVAL ...). The bounds may also use window_start or
 *    window_end of a window aggregation's output, which are its row time plus a
 *    constant. This becomes the DataStream interval join.
 *
 * The whole condition is also checked on every pair (as the residual), so the bounds
 * only decide which rows are kept, never what matches. Other joins keep every row of
 * both inputs forever and update their results, and are refused.
 */
#include <stdio.h>
#include <string.h>

#include "sql/bind_int.h"
#include "sql/planner.h"

/* Which inputs an expression reads: bit 0 left, bit 1 right. */
static int sides(const sql_x_t *x) {
  int s = 0;
  if (x->xk == XK_COL) s |= 1 << x->input;
  for (int i = 0; i < x->nargs; i++) s |= sides(x->args[i]);
  return s;
}

/* x as (column, constant ms): col [+- interval]... Returns false for other shapes. */
static bool time_term(const sql_x_t *x, int *input, int *col, int64_t *c) {
  if (x->xk == XK_COL) {
    *input = x->input;
    *col = x->col;
    *c = 0;
    return true;
  }
  if (x->xk == XK_DTADD && x->args[1]->xk == XK_CONST && !x->args[1]->cval.null &&
      x->args[1]->type->kind == T_INTERVAL_DT) {
    if (!time_term(x->args[0], input, col, c)) return false;
    *c += x->iparam * x->args[1]->cval.i;
    return true;
  }
  return false;
}

typedef struct bounds {
  bool has_lo, has_hi;
  int64_t lo, hi; /* right.ts - left.ts in [lo, hi] */
} bounds_t;

static void add_bound(bounds_t *b, bool lower, int64_t v) {
  if (lower) {
    if (!b->has_lo || v > b->lo) b->lo = v;
    b->has_lo = true;
  } else {
    if (!b->has_hi || v < b->hi) b->hi = v;
    b->has_hi = true;
  }
}

/* A comparison between a left and a right time term. */
static void time_bound(const sql_rel_t *l, const sql_rel_t *r, const sql_x_t *x, bounds_t *b) {
  if (x->xk != XK_CMP || x->iparam == OP_EQ || x->iparam == OP_NE) return;
  int ia, ca, ib, cb;
  int64_t ka, kb;
  if (!time_term(x->args[0], &ia, &ca, &ka) || !time_term(x->args[1], &ib, &cb, &kb)) return;
  if (ia == ib) return;
  const sql_field_t *fa = ia == 0 ? &l->f[ca] : &r->f[ca];
  const sql_field_t *fb = ib == 0 ? &l->f[cb] : &r->f[cb];
  if (!fa->ts_exact || !fb->ts_exact) return;
  /* value = ts + delta + k */
  int64_t a = fa->ts_delta + ka, bb = fb->ts_delta + kb;
  int op = x->iparam;
  if (ia == 1) {
    /* right OP left: mirror into left OP' right */
    int64_t t = a;
    a = bb;
    bb = t;
    op = op == OP_LT ? OP_GT : op == OP_LE ? OP_GE : op == OP_GT ? OP_LT : OP_LE;
  }
  /* ts_l + a OP ts_r + bb  <=>  d = ts_r - ts_l OP' a - bb */
  int64_t k = a - bb;
  switch (op) {
  case OP_LE: add_bound(b, true, k); break;
  case OP_LT: add_bound(b, true, k + 1); break;
  case OP_GE: add_bound(b, false, k); break;
  case OP_GT: add_bound(b, false, k - 1); break;
  default: break;
  }
}

sql_rel_t *sql_plan_join(sql_planner_t *p, const ast_from_t *f, sql_rel_t *l, sql_rel_t *r,
                         const ast_expr_t *where) {
  if (f->join != JOIN_INNER && f->join != JOIN_CROSS)
    return sql_plan_fail(
        p, FL_ENOTSUP, f->pos,
        "outer joins are not supported yet (only inner interval and window joins)");
  sql_binder_t b;
  sql_plan_binder(p, &b, l, r, "a join condition");
  sql_x_t *conj[128];
  int nc = 0;
  if (f->on) {
    sql_x_t *on = sql_plan_bind(p, &b, f->on);
    if (!on) return NULL;
    if (on->type->kind != T_BOOLEAN)
      return sql_plan_fail(p, FL_EINVAL, f->on->pos, "ON needs a BOOLEAN condition, not %s",
                           sql_type_name(p->a, on->type));
    sql_conjuncts(on, conj, &nc, 128);
  }
  for (int u = 0; u < f->n_using; u++) {
    ast_expr_t eq = {0}, ea = {0}, eb = {0};
    const char *lq = NULL, *rq = NULL;
    for (int i = 0; i < l->n; i++)
      if (!strcmp(l->f[i].name, f->using_cols[u])) lq = l->f[i].qual;
    for (int i = 0; i < r->n; i++)
      if (!strcmp(r->f[i].name, f->using_cols[u])) rq = r->f[i].qual;
    if (!lq || !rq)
      return sql_plan_fail(p, FL_EINVAL, f->pos, "USING column '%s' must be in both inputs",
                           f->using_cols[u]);
    const char *lp[2] = {lq, f->using_cols[u]}, *rp[2] = {rq, f->using_cols[u]};
    ea.kind = eb.kind = AE_IDENT;
    ea.parts = lp;
    eb.parts = rp;
    ea.n_parts = eb.n_parts = 2;
    ea.pos = eb.pos = eq.pos = f->pos;
    eq.kind = AE_BINARY;
    eq.op = OP_EQ;
    eq.a = &ea;
    eq.b = &eb;
    sql_x_t *x = sql_plan_bind(p, &b, &eq);
    if (!x) return NULL;
    if (nc < 128) conj[nc++] = x;
  }
  if (where) {
    /* an inner join's WHERE is part of its condition */
    sql_plan_binder(p, &b, l, r, "WHERE");
    sql_x_t *w = sql_plan_bind(p, &b, where);
    if (!w) return NULL;
    if (w->type->kind != T_BOOLEAN)
      return sql_plan_fail(p, FL_EINVAL, where->pos, "WHERE needs a BOOLEAN condition");
    sql_conjuncts(w, conj, &nc, 128);
  }
  /* equality keys */
  sql_x_t *lk[64], *rk[64];
  int nk = 0;
  bool l_ws = false, l_we = false, r_ws = false, r_we = false;
  bounds_t bd = {0};
  for (int i = 0; i < nc; i++) {
    sql_x_t *x = conj[i];
    time_bound(l, r, x, &bd);
    if (x->xk != XK_CMP || x->iparam != OP_EQ) continue;
    int s0 = sides(x->args[0]), s1 = sides(x->args[1]);
    sql_x_t *a = NULL, *c = NULL;
    if (s0 == 1 && s1 == 2) {
      a = x->args[0];
      c = x->args[1];
    } else if (s0 == 2 && s1 == 1) {
      a = x->args[1];
      c = x->args[0];
    } else {
      continue;
    }
    if (nk >= 64) continue;
    lk[nk] = a;
    rk[nk] = c;
    nk++;
    if (a->xk == XK_COL && c->xk == XK_COL) {
      sql_win_attr_t wl = l->f[a->col].win, wr = r->f[c->col].win;
      if (wl == WA_START && wr == WA_START) l_ws = r_ws = true;
      if (wl == WA_END && wr == WA_END) l_we = r_we = true;
    }
  }
  bool window_join = l_ws && l_we && r_ws && r_we;
  bool interval = !window_join && bd.has_lo && bd.has_hi;
  if (!window_join && !interval) {
    if (nk == 0)
      return sql_plan_fail(
          p, FL_ENOTSUP, f->pos,
          "this join has no equality condition and no time bounds: it would pair every "
          "row with every other and keep them all; not supported");
    return sql_plan_fail(
        p, FL_ENOTSUP, f->pos,
        "a regular join keeps every row of both inputs and produces an updating "
        "result; not supported yet. Supported: interval joins (bound one input's "
        "time attribute by the other's: a.t BETWEEN b.t - INTERVAL '1' HOUR AND b.t) "
        "and window joins (equal window_start and window_end of window table "
        "functions or window aggregations)");
  }
  if (interval && bd.lo > bd.hi)
    return sql_plan_fail(p, FL_EINVAL, f->pos,
                         "the time bounds of this interval join exclude every pair");
  /* the key CALCs: the right side's key expressions read input 1; rebase to 0 */
  sql_rel_t *j = sql_rel_new(p, R_JOIN, l->n + r->n);
  if (!j) return NULL;
  for (int side = 0; side < 2; side++) {
    sql_rel_t *in = side ? r : l;
    sql_x_t **keys = sql_arena_alloc(p->a, sizeof(sql_x_t *) * (size_t)(nk ? nk : 1));
    if (!keys) return sql_plan_nomem(p);
    for (int k = 0; k < nk; k++) {
      sql_x_t *kx = side ? rk[k] : lk[k];
      if (side) {
        kx = sql_x_rebase(p->a, kx, 1, 0);
        if (!kx) return sql_plan_nomem(p);
      }
      keys[k] = kx;
    }
    const char **nm;
    sql_x_t **id = sql_plan_identity(p, in, &nm, 0);
    if (!id) return NULL;
    sql_rel_t *kc = sql_plan_calc(p, in, id, nm, in->n, NULL);
    if (!kc) return NULL;
    kc->key = keys;
    kc->nkey = nk;
    kc->name = side ? "join-right" : "join-left";
    if (window_join) {
      /* restamp to window_end - 1 */
      for (int i = 0; i < in->n; i++) {
        if (in->f[i].win == WA_END) {
          kc->ts = id[i];
          kc->ts_offset = -1;
          break;
        }
      }
    }
    j->in[side] = kc;
  }
  j->nin = 2;
  j->window_join = window_join;
  j->lower = bd.lo;
  j->upper = bd.hi;
  j->residual = sql_and_all(p, conj, nc);
  j->name = window_join ? "window-join" : "interval-join";
  for (int i = 0; i < l->n; i++) {
    j->f[i] = l->f[i];
    if (!window_join) j->f[i].ts_exact = false;
  }
  for (int i = 0; i < r->n; i++) {
    j->f[l->n + i] = r->f[i];
    if (!window_join) j->f[l->n + i].ts_exact = false;
  }
  if (window_join) {
    /* the output's time is window_end - 1 of both sides */
    for (int i = 0; i < j->n; i++) {
      sql_field_t *fd = &j->f[i];
      if (fd->win == WA_END) {
        fd->ts_exact = true;
        fd->ts_delta = 1;
      } else if (fd->win == WA_TIME) {
        fd->ts_exact = true;
        fd->ts_delta = 0;
      } else if (fd->win == WA_START && fd->ws &&
                 (fd->ws->kind == WIN_TUMBLE || fd->ws->kind == WIN_HOP)) {
        fd->ts_exact = true;
        fd->ts_delta = 1 - fd->ws->size;
      } else {
        fd->ts_exact = false;
      }
      if (fd->time == TA_ROWTIME && fd->win == WA_NONE) fd->time = TA_NONE;
    }
  }
  return j;
}
