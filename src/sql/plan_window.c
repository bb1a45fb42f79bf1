/*
 * Window table functions and window aggregations (planner.h).
 *
 * TUMBLE, HOP, CUMULATE and SESSION add window_start, window_end and window_time to the
 * rows of their table. Under GROUP BY window_start, window_end, ... they are not
 * materialized: TUMBLE, HOP and SESSION become the keyed window operator with the
 * matching assigner and incremental aggregates (the DataStream API's machinery), fed by
 * a CALC that computes the group key (the record key) and the aggregates' inputs (the
 * record value). CUMULATE, and aggregations over rows that already carry window columns
 * (a window aggregation's output, a window TVF read through a view), group by the window
 * columns: each row goes to the window [window_end - 1, window_end) of a one-millisecond
 * tumbling assigner, which fires exactly when the original window would.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "sql/bind_int.h"
#include "sql/planner.h"

static bool const_interval(sql_planner_t *p, const ast_expr_t *e, const char *what, int64_t *out,
                           bool allow_zero) {
  sql_binder_t b;
  sql_plan_binder(p, &b, NULL, NULL, what);
  sql_x_t *x = sql_plan_bind(p, &b, e);
  if (!x) return false;
  sql_val_t v;
  char err[128];
  if (x->type->kind != T_INTERVAL_DT || !x->is_const ||
      sql_eval_const(x, &p->cat->sess, &v, err, sizeof err) != FL_OK || v.null) {
    sql_plan_fail(p, FL_EINVAL, e->pos,
                  "the %s must be a constant INTERVAL such as INTERVAL '10' SECOND", what);
    return false;
  }
  if (v.i < 0 || (v.i == 0 && !allow_zero)) {
    sql_plan_fail(p, FL_EINVAL, e->pos, "the %s must be positive", what);
    return false;
  }
  *out = v.i;
  return true;
}

sql_rel_t *sql_plan_tvf(sql_planner_t *p, const ast_from_t *f) {
  const ast_expr_t *call = f->call;
  const char *name = call->name;
  sql_winspec_t ws = {0};
  int nint; /* interval arguments after the descriptor */
  if (!strcasecmp(name, "TUMBLE")) {
    ws.kind = WIN_TUMBLE;
    nint = 1;
  } else if (!strcasecmp(name, "HOP")) {
    ws.kind = WIN_HOP;
    nint = 2;
  } else if (!strcasecmp(name, "CUMULATE")) {
    ws.kind = WIN_CUMULATE;
    nint = 2;
  } else if (!strcasecmp(name, "SESSION")) {
    ws.kind = WIN_SESSION;
    nint = 1;
  } else {
    return sql_plan_fail(
        p, FL_EINVAL, call->pos,
        "unknown table function '%s' (window table functions: TUMBLE, HOP, CUMULATE, SESSION)",
        name);
  }
  int n = (int)call->list.n;
  bool has_offset = ws.kind != WIN_SESSION && n == 3 + nint;
  if (n != 2 + nint && !has_offset)
    return sql_plan_fail(p, FL_EINVAL, call->pos, "%s takes TABLE t, DESCRIPTOR(time column)%s",
                         name,
                         ws.kind == WIN_TUMBLE     ? ", a size [and an offset]"
                         : ws.kind == WIN_HOP      ? ", a slide and a size [and an offset]"
                         : ws.kind == WIN_CUMULATE ? ", a step and a size [and an offset]"
                                                   : " and a gap");
  const ast_expr_t *targ = call->list.v[0], *darg = call->list.v[1];
  if (targ->kind != AE_TABLE_ARG)
    return sql_plan_fail(p, FL_EINVAL, targ->pos, "the first argument of %s must be TABLE name",
                         name);
  if (darg->kind != AE_DESCRIPTOR || darg->n_parts != 1)
    return sql_plan_fail(p, FL_EINVAL, darg->pos,
                         "the second argument of %s must be DESCRIPTOR(time column)", name);
  if (targ->list.n && ws.kind != WIN_SESSION)
    return sql_plan_fail(p, FL_EINVAL, targ->pos, "PARTITION BY is only allowed in SESSION");
  ast_from_t tf = {.kind = AF_TABLE, .pos = targ->pos, .name = targ->name};
  sql_rel_t *in = sql_plan_from(p, &tf, NULL, NULL);
  if (!in) return NULL;
  int tc = -1;
  for (int i = 0; i < in->n; i++)
    if (strcmp(in->f[i].name, darg->parts[0]) == 0) tc = i;
  if (tc < 0) {
    const char *names[256];
    int k = 0;
    for (int i = 0; i < in->n && k < 256; i++) names[k++] = in->f[i].name;
    const char *near = sql_nearest(darg->parts[0], names, k);
    return sql_plan_fail(p, FL_EINVAL, darg->pos, "column '%s' not found in table '%s'%s%s%s",
                         darg->parts[0], targ->name, near ? "; did you mean '" : "",
                         near ? near : "", near ? "'?" : "");
  }
  if (in->f[tc].time == TA_NONE)
    return sql_plan_fail(p, FL_EINVAL, darg->pos,
                         "the DESCRIPTOR column '%s' must be a time attribute: a column with a "
                         "WATERMARK, or PROCTIME()",
                         darg->parts[0]);
  ws.proctime = in->f[tc].time == TA_PROCTIME;
  int64_t a1, a2 = 0;
  if (!const_interval(p, call->list.v[2],
                      ws.kind == WIN_SESSION    ? "session gap"
                      : ws.kind == WIN_HOP      ? "slide"
                      : ws.kind == WIN_CUMULATE ? "step"
                                                : "window size",
                      &a1, false))
    return NULL;
  if (nint > 1 && !const_interval(p, call->list.v[3], "window size", &a2, false)) return NULL;
  switch (ws.kind) {
  case WIN_TUMBLE: ws.size = a1; break;
  case WIN_HOP:
  case WIN_CUMULATE: {
    bool hop = ws.kind == WIN_HOP;
    if (hop)
      ws.slide = a1;
    else
      ws.step = a1;
    ws.size = a2;
    if (a2 % a1 != 0)
      return sql_plan_fail(p, FL_EINVAL, call->pos, "%s: the size must be a multiple of the %s",
                           hop ? "HOP" : "CUMULATE", hop ? "slide" : "step");
    break;
  }
  case WIN_SESSION: ws.gap = a1; break;
  }
  if (has_offset && !const_interval(p, call->list.v[n - 1], "window offset", &ws.offset, true))
    return NULL;
  sql_rel_t *r = sql_rel_new(p, R_WINTVF, in->n + 3);
  if (!r) return NULL;
  r->in[0] = in;
  r->nin = 1;
  r->ws = ws;
  r->time_col = tc;
  r->name = sql_arena_printf(p->a, "%s", name);
  sql_winspec_t *wsp = &r->ws;
  for (int i = 0; i < in->n; i++) {
    r->f[i] = in->f[i];
    r->f[i].ts_exact = false;
  }
  const sql_type_t *tt = in->f[tc].type;
  static const char *const wnames[] = {"window_start", "window_end", "window_time"};
  for (int k = 0; k < 3; k++) {
    sql_field_t *fd = &r->f[in->n + k];
    fd->name = wnames[k];
    fd->type = k == 2 ? sql_type_with_null(p->a, tt, true) : &sql_t_timestamp3_nn;
    fd->win = (sql_win_attr_t)(WA_START + k);
    fd->ws = wsp;
    if (k == 2) fd->time = ws.proctime ? TA_PROCTIME : TA_ROWTIME;
  }
  /* SESSION PARTITION BY: the keys the window is per (the GROUP BY must include them) */
  if (targ->list.n) {
    sql_binder_t b;
    sql_plan_binder(p, &b, in, NULL, "PARTITION BY");
    r->nkey = (int)targ->list.n;
    r->key = sql_arena_alloc(p->a, sizeof(sql_x_t *) * (size_t)r->nkey);
    if (!r->key) return sql_plan_nomem(p);
    for (int i = 0; i < r->nkey; i++) {
      r->key[i] = sql_plan_bind(p, &b, targ->list.v[i]);
      if (!r->key[i]) return NULL;
    }
  }
  return r;
}

/* ---------------------------------------------------------------------------------- */
/* Aggregates                                                                         */

typedef struct agg_ctx {
  sql_planner_t *p;
  const ast_expr_t **group; /* GROUP BY expressions */
  sql_x_t **group_x;        /* bound over the aggregation's input */
  int ngroup;
  const ast_expr_t **aggs; /* aggregate calls, deduplicated */
  int naggs, cap_aggs;
  sql_binder_t *in_binder;
} agg_ctx_t;

static void collect_aggs(void *ctx, const ast_expr_t *e) {
  agg_ctx_t *c = ctx;
  if (e->kind == AE_CALL && !e->over && sql_is_aggregate_call(c->p->cat, e)) {
    for (int i = 0; i < c->naggs; i++)
      if (sql_ast_equal(c->aggs[i], e)) return;
    sql_plan_push_call(c->p, &c->aggs, &c->naggs, &c->cap_aggs, e);
    return;
  }
  sql_ast_children(e, collect_aggs, c);
}

static int subst(void *opaque, const ast_expr_t *e, int *col, const sql_type_t **type);

/* The aggregation's output types are set once the aggregates are planned. */
typedef struct post_ctx {
  agg_ctx_t *c;
  const sql_rel_t *out;
} post_ctx_t;

static int subst(void *opaque, const ast_expr_t *e, int *col, const sql_type_t **type) {
  post_ctx_t *pc = opaque;
  agg_ctx_t *c = pc->c;
  for (int i = 0; i < c->ngroup; i++) {
    bool same = sql_ast_equal(c->group[i], e);
    if (!same && e->kind == AE_IDENT && c->group_x[i]->xk == XK_COL) {
      /* t.a and a are the same column */
      char save = c->p->err[0];
      sql_x_t *x = sql_bind(c->in_binder, e);
      c->p->err[0] = save;
      if (x && x->xk == XK_COL && x->input == c->group_x[i]->input && x->col == c->group_x[i]->col)
        same = true;
    }
    if (same) {
      *col = i;
      *type = pc->out->f[i].type;
      return 1;
    }
  }
  if (e->kind == AE_CALL && !e->over) {
    for (int j = 0; j < c->naggs; j++) {
      if (sql_ast_equal(c->aggs[j], e)) {
        *col = c->ngroup + j;
        *type = pc->out->f[c->ngroup + j].type;
        return 1;
      }
    }
  }
  return 0;
}

/* A column of the aggregation's input used outside GROUP BY and aggregates. */
static const sql_x_t *find_input_ref(const sql_x_t *x) {
  if (x->xk == XK_COL && x->input == 1) return x;
  for (int i = 0; i < x->nargs; i++) {
    const sql_x_t *r = find_input_ref(x->args[i]);
    if (r) return r;
  }
  return NULL;
}

static bool refs_cols_from(const sql_x_t *x, int first) {
  if (x->xk == XK_COL && x->input == 0 && x->col >= first) return true;
  for (int i = 0; i < x->nargs; i++)
    if (refs_cols_from(x->args[i], first)) return true;
  return false;
}

static sql_agg_kind_t agg_kind(const char *n) {
  static const struct {
    const char *name;
    sql_agg_kind_t k;
  } t[] = {{"COUNT", AGG_COUNT},
           {"SUM", AGG_SUM},
           {"SUM0", AGG_SUM0},
           {"MIN", AGG_MIN},
           {"MAX", AGG_MAX},
           {"AVG", AGG_AVG},
           {"STDDEV_POP", AGG_STDDEV_POP},
           {"STDDEV_SAMP", AGG_STDDEV_SAMP},
           {"VAR_POP", AGG_VAR_POP},
           {"VAR_SAMP", AGG_VAR_SAMP},
           {"FIRST_VALUE", AGG_FIRST_VALUE},
           {"LAST_VALUE", AGG_LAST_VALUE},
           {NULL, AGG_UDAF}};
  for (int i = 0; t[i].name; i++)
    if (strcasecmp(t[i].name, n) == 0) return t[i].k;
  return AGG_UDAF;
}

/* Plans one aggregate call: its kind, result type and accumulator, with its inputs
 * appended to the CALC's value columns (vals). */
bool sql_plan_agg_call(sql_planner_t *p, sql_binder_t *b, const ast_expr_t *e, sql_agg_t *ag,
                       sql_x_t **vals, int *nvals) {
  const char *name = e->name;
  memset(ag, 0, sizeof *ag);
  ag->arg = ag->filter = -1;
  ag->kind = agg_kind(name);
  ag->distinct = e->distinct;
  if (!strcasecmp(name, "ROW_NUMBER") || !strcasecmp(name, "LISTAGG")) {
    sql_plan_fail(p, FL_ENOTSUP, e->pos, "%s is not supported here", name);
    return false;
  }
  int nargs = (int)e->list.n;
  if (ag->kind == AGG_UDAF) {
    const sql_udf_t *u = sql_catalog_udf(p->cat, name);
    ag->udaf = u;
    if (nargs != u->nargs) {
      sql_plan_fail(p, FL_EINVAL, e->pos, "%s takes %d arguments, not %d", u->name, u->nargs,
                    nargs);
      return false;
    }
    ag->args = sql_arena_alloc(p->a, sizeof(int) * (size_t)(nargs ? nargs : 1));
    if (!ag->args) return sql_plan_nomem(p), false;
    ag->nargs = nargs;
    for (int i = 0; i < nargs; i++) {
      sql_x_t *x = sql_plan_bind(p, b, e->list.v[i]);
      if (!x) return false;
      x = sql_coerce(b, x, u->arg_types[i], ((ast_expr_t *)e->list.v[i])->pos, "an argument");
      if (!x) {
        p->rc = FL_EINVAL;
        return false;
      }
      ag->args[i] = *nvals;
      vals[(*nvals)++] = x;
    }
    ag->type = sql_type_with_null(p->a, u->ret, false);
    ag->acc_size = u->agg.acc_size;
    ag->fixed = true;
  } else if (e->star_arg) {
    if (ag->kind != AGG_COUNT) {
      sql_plan_fail(p, FL_EINVAL, e->pos, "only COUNT takes '*'");
      return false;
    }
    ag->kind = AGG_COUNT_STAR;
    ag->type = &sql_t_bigint_nn;
    ag->acc_size = 8;
    ag->fixed = true;
  } else {
    if (nargs != 1) {
      sql_plan_fail(p, FL_EINVAL, e->pos, "%s takes one argument, not %d", name, nargs);
      return false;
    }
    sql_x_t *x = sql_plan_bind(p, b, e->list.v[0]);
    if (!x) return false;
    const sql_type_t *t = x->type;
    if (t->kind == T_NULL) {
      x = sql_x_cast(p->a, x, &sql_t_int, false);
      t = x->type;
    }
    ag->arg = *nvals;
    vals[(*nvals)++] = x;
    ag->arg_type = t;
    bool numeric = sql_type_is_numeric(t);
    bool var = sql_type_in_var(t);
    switch (ag->kind) {
    case AGG_COUNT:
      ag->type = &sql_t_bigint_nn;
      ag->acc_size = 8;
      break;
    case AGG_SUM:
    case AGG_SUM0:
    case AGG_AVG:
      if (!numeric) {
        sql_plan_fail(p, FL_EINVAL, e->pos, "%s needs a number, not %s", name,
                      sql_type_name(p->a, t));
        return false;
      }
      if (t->kind == T_DECIMAL) {
        int s = ag->kind == AGG_AVG ? (t->scale > 6 ? t->scale : 6) : t->scale;
        ag->type = sql_type_decimal(p->a, 38, s, ag->kind == AGG_SUM0);
      } else {
        ag->type = sql_type_with_null(p->a, t, ag->kind == AGG_SUM0);
      }
      ag->acc_size = 32;
      break;
    case AGG_MIN:
    case AGG_MAX:
    case AGG_FIRST_VALUE:
    case AGG_LAST_VALUE:
      if (t->kind == T_ROW && (ag->kind == AGG_MIN || ag->kind == AGG_MAX)) {
        sql_plan_fail(p, FL_EINVAL, e->pos, "%s cannot compare ROW values", name);
        return false;
      }
      ag->type = sql_type_with_null(p->a, t, false);
      ag->acc_size = 32;
      if (var) ag->fixed = false;
      break;
    default: /* STDDEV, VAR */
      if (!numeric) {
        sql_plan_fail(p, FL_EINVAL, e->pos, "%s needs a number, not %s", name,
                      sql_type_name(p->a, t));
        return false;
      }
      ag->type = &sql_t_double;
      ag->acc_size = 24;
      break;
    }
    ag->fixed = !var || ag->kind == AGG_COUNT;
  }
  if (ag->distinct) ag->fixed = false;
  if (e->filter) {
    sql_x_t *fx = sql_plan_bind(p, b, e->filter);
    if (!fx) return false;
    if (fx->type->kind != T_BOOLEAN && fx->type->kind != T_NULL) {
      sql_plan_fail(p, FL_EINVAL, e->filter->pos, "FILTER (WHERE ...) needs a BOOLEAN condition");
      return false;
    }
    ag->filter = *nvals;
    vals[(*nvals)++] = fx;
  }
  return true;
}

static bool is_window_col(const sql_rel_t *r, const sql_x_t *x, sql_win_attr_t *wa) {
  if (x->xk != XK_COL || x->input != 0 || x->col >= r->n) return false;
  *wa = r->f[x->col].win;
  return *wa != WA_NONE;
}

sql_rel_t *sql_plan_window_agg(sql_planner_t *p, const ast_query_t *q, sql_rel_t *from,
                               sql_x_t *where) {
  agg_ctx_t c = {.p = p};
  sql_binder_t b;
  sql_plan_binder(p, &b, from, NULL, "GROUP BY");
  c.in_binder = &b;
  c.ngroup = (int)q->group_by.n;
  c.group = (const ast_expr_t **)q->group_by.v;
  c.group_x = sql_arena_alloc(p->a, sizeof(sql_x_t *) * (size_t)(c.ngroup + 1));
  if (!c.group_x) return sql_plan_nomem(p);
  bool has_ws = false, has_we = false;
  const sql_winspec_t *spec = NULL;
  for (int i = 0; i < c.ngroup; i++) {
    c.group_x[i] = sql_plan_bind(p, &b, c.group[i]);
    if (!c.group_x[i]) return NULL;
    sql_win_attr_t wa;
    if (is_window_col(from, c.group_x[i], &wa)) {
      if (wa == WA_START) has_ws = true;
      if (wa == WA_END) has_we = true;
      spec = from->f[c.group_x[i]->col].ws;
    }
  }
  if (!has_ws || !has_we) {
    return sql_plan_fail(
        p, FL_ENOTSUP, q->pos,
        "GROUP BY without window_start and window_end is an unbounded aggregation, "
        "which produces an updating result; not supported yet: aggregate over a "
        "window table function, e.g. FROM TABLE(TUMBLE(TABLE t, DESCRIPTOR(ts), "
        "INTERVAL '1' MINUTE)) GROUP BY window_start, window_end, ...");
  }
  for (size_t i = 0; i < q->items.n; i++)
    collect_aggs(&c, ((ast_select_item_t *)q->items.v[i])->expr);
  if (q->having) collect_aggs(&c, q->having);
  if (p->a->failed) return sql_plan_nomem(p);

  /* Native windows: a TUMBLE, HOP or SESSION table function right under the
   * aggregation, its window columns used only as GROUP BY keys. */
  sql_rel_t *tvf = from->kind == R_WINTVF ? from : NULL;
  bool native =
      tvf && tvf->ws.kind != WIN_CUMULATE && (!where || !refs_cols_from(where, tvf->in[0]->n));
  sql_rel_t *calc_in = native ? tvf->in[0] : from;
  int in_n = native ? tvf->in[0]->n : from->n;

  /* keys */
  sql_x_t **keys = sql_arena_alloc(p->a, sizeof(sql_x_t *) * (size_t)(c.ngroup + 1));
  int *out_keys = sql_arena_alloc(p->a, sizeof(int) * (size_t)(c.ngroup + 1));
  sql_win_attr_t *out_win = sql_arena_alloc(p->a, sizeof(sql_win_attr_t) * (size_t)(c.ngroup + 1));
  if (!keys || !out_keys || !out_win) return sql_plan_nomem(p);
  int nkeys = 0, key_ws = -1, key_we = -1;
  for (int i = 0; i < c.ngroup; i++) {
    sql_win_attr_t wa = WA_NONE;
    bool wcol = is_window_col(from, c.group_x[i], &wa);
    if (native && wcol) {
      out_keys[i] = -1;
      out_win[i] = wa;
      continue;
    }
    if (native && refs_cols_from(c.group_x[i], in_n))
      return sql_plan_fail(p, FL_ENOTSUP, c.group[i]->pos,
                           "window columns can only be grouped by as they are, not in expressions");
    if (wcol && wa == WA_START && key_ws < 0) key_ws = nkeys;
    if (wcol && wa == WA_END && key_we < 0) key_we = nkeys;
    out_keys[i] = nkeys;
    out_win[i] = WA_NONE;
    keys[nkeys++] = c.group_x[i];
  }
  if (native && tvf->nkey) {
    /* SESSION PARTITION BY k: the GROUP BY must hold k */
    for (int k = 0; k < tvf->nkey; k++) {
      bool found = false;
      for (int i = 0; i < nkeys; i++)
        if (keys[i]->xk == XK_COL && tvf->key[k]->xk == XK_COL && keys[i]->col == tvf->key[k]->col)
          found = true;
      if (!found)
        return sql_plan_fail(
            p, FL_EINVAL, q->pos,
            "the GROUP BY of a SESSION window must include its PARTITION BY columns (%s)",
            tvf->key[k]->text);
    }
  }

  /* aggregates and their inputs */
  sql_rel_t *r = sql_rel_new(p, R_WINAGG, c.ngroup + c.naggs);
  if (!r) return NULL;
  r->aggs = sql_arena_alloc(p->a, sizeof(sql_agg_t) * (size_t)(c.naggs ? c.naggs : 1));
  sql_x_t **vals = sql_arena_alloc(p->a, sizeof(sql_x_t *) * (size_t)(3 * c.naggs + 2));
  if (!r->aggs || !vals) return sql_plan_nomem(p);
  int nvals = 0;
  sql_binder_t ab;
  sql_plan_binder(p, &ab, from, NULL, "an aggregate's argument");
  size_t off = 0;
  for (int j = 0; j < c.naggs; j++) {
    sql_agg_t *ag = &r->aggs[j];
    if (!sql_plan_agg_call(p, &ab, c.aggs[j], ag, vals, &nvals)) return NULL;
    ag->acc_off = off;
    off += (ag->acc_size + 15) & ~(size_t)15;
    if (!ag->fixed) r->buffered = true;
  }
  for (int v = 0; v < nvals; v++)
    if (native && refs_cols_from(vals[v], in_n))
      return sql_plan_fail(p, FL_ENOTSUP, q->pos, "aggregates of window columns are not supported");
  if (off == 0) off = 8;
  if (off > 65536) return sql_plan_fail(p, FL_ENOTSUP, q->pos, "too many aggregates in one query");
  r->acc_size = off;
  r->naggs = c.naggs;

  /* the CALC before the window: key = group keys, value = aggregate inputs */
  const char **vnames = sql_arena_alloc(p->a, sizeof(char *) * (size_t)(nvals + 1));
  if (!vnames) return sql_plan_nomem(p);
  for (int v = 0; v < nvals; v++) vnames[v] = vals[v]->text;
  sql_rel_t *pre = sql_plan_calc(p, calc_in, vals, vnames, nvals, where);
  if (!pre) return NULL;
  pre->key = keys;
  pre->nkey = nkeys;
  pre->name = "window-input";
  if (native) {
    if (!tvf->ws.proctime) {
      int tc = tvf->time_col;
      pre->ts = sql_x_col(p->a, 0, tc, calc_in->f[tc].type, calc_in->f[tc].name);
    }
  } else {
    if (key_we < 0 || key_ws < 0)
      return sql_plan_fail(p, FL_ENOTSUP, q->pos,
                           "GROUP BY window_start and window_end must be columns");
    if (spec && spec->proctime)
      return sql_plan_fail(p, FL_ENOTSUP, q->pos,
                           "cascaded processing-time window aggregations are not supported");
    pre->ts = keys[key_we];
    pre->ts_offset = -1;
  }
  r->in[0] = pre;
  r->nin = 1;
  r->native = native;
  r->ws = native ? tvf->ws : (spec ? *spec : r->ws);
  r->nkeys = nkeys;
  r->out_keys = out_keys;
  r->out_win = out_win;
  r->key_ws = key_ws;
  r->key_we = key_we;
  r->name = "window-aggregate";
  const sql_winspec_t *wsp = native ? &r->ws : spec;
  for (int i = 0; i < c.ngroup; i++) {
    sql_field_t *fd = &r->f[i];
    const sql_field_t *src = c.group_x[i]->xk == XK_COL ? &from->f[c.group_x[i]->col] : NULL;
    fd->name = c.group[i]->kind == AE_IDENT ? c.group[i]->parts[c.group[i]->n_parts - 1]
                                            : c.group_x[i]->text;
    fd->type = c.group_x[i]->type;
    sql_win_attr_t wa = src ? src->win : WA_NONE;
    if (wa != WA_NONE) {
      fd->win = wa;
      fd->ws = wsp;
      fd->ts_exact = wa == WA_END || wa == WA_TIME ||
                     (wa == WA_START && wsp && (wsp->kind == WIN_TUMBLE || wsp->kind == WIN_HOP));
      fd->ts_delta = wa == WA_END ? 1 : wa == WA_START && wsp ? 1 - wsp->size : 0;
      if (wa == WA_TIME) fd->time = wsp && wsp->proctime ? TA_PROCTIME : TA_ROWTIME;
      if (wsp && wsp->proctime) fd->ts_exact = false;
    }
  }
  for (int j = 0; j < c.naggs; j++) {
    sql_field_t *fd = &r->f[c.ngroup + j];
    fd->name = sql_ast_text(p->a, p->src, c.aggs[j]);
    fd->type = r->aggs[j].type;
  }

  /* the SELECT list and HAVING over the aggregation's output */
  post_ctx_t pc = {&c, r};
  sql_binder_t post;
  sql_plan_binder(p, &post, NULL, from, "the SELECT list of an aggregation");
  post.subst = subst;
  post.subst_opaque = &pc;
  int nitems = (int)q->items.n;
  sql_x_t **proj = sql_arena_alloc(p->a, sizeof(sql_x_t *) * (size_t)(nitems + 1));
  const char **names = sql_arena_alloc(p->a, sizeof(char *) * (size_t)(nitems + 1));
  if (!proj || !names) return sql_plan_nomem(p);
  for (int i = 0; i < nitems; i++) {
    const ast_select_item_t *it = q->items.v[i];
    if (it->expr->kind == AE_STAR)
      return sql_plan_fail(p, FL_EINVAL, it->pos, "SELECT * is not allowed with GROUP BY");
    proj[i] = sql_plan_bind(p, &post, it->expr);
    if (!proj[i]) return NULL;
    const sql_x_t *bad = find_input_ref(proj[i]);
    if (bad)
      return sql_plan_fail(p, FL_EINVAL, it->expr->pos,
                           "column '%s' is neither in GROUP BY nor inside an aggregate function",
                           bad->text);
    names[i] = it->alias                    ? it->alias
               : it->expr->kind == AE_IDENT ? it->expr->parts[it->expr->n_parts - 1]
                                            : sql_arena_printf(p->a, "EXPR$%d", i);
  }
  sql_x_t *having = NULL;
  if (q->having) {
    having = sql_plan_bind(p, &post, q->having);
    if (!having) return NULL;
    const sql_x_t *bad = find_input_ref(having);
    if (bad)
      return sql_plan_fail(p, FL_EINVAL, q->having->pos,
                           "column '%s' is neither in GROUP BY nor inside an aggregate function",
                           bad->text);
  }
  sql_rel_t *out = sql_plan_calc(p, r, proj, names, nitems, having);
  if (out) out->name = "calc";
  return out;
}
