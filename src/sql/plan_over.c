/*
 * OVER aggregations and window Top-N (planner.h).
 *
 * OVER: every aggregate of the SELECT list with an OVER clause must share one window:
 * PARTITION BY keys, ORDER BY a time attribute ascending, and a frame that ends at the
 * current row (ROWS n PRECEDING, RANGE INTERVAL ... PRECEDING, UNBOUNDED PRECEDING; no
 * frame means RANGE UNBOUNDED PRECEDING). Rows are emitted with the aggregates appended,
 * in time order per key, once the watermark passes them (Flink's semantics; rows behind
 * the watermark are late and dropped).
 *
 * Top-N: ROW_NUMBER() OVER (PARTITION BY window_start, window_end, ... ORDER BY ...) in a
 * subquery, filtered by rownum <= N (or < N, = 1) in the enclosing query. Without
 * window_start and window_end in PARTITION BY it is the unbounded Top-N, which updates
 * earlier results, and is refused.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "sql/bind_int.h"
#include "sql/planner.h"

static bool same_over(const ast_over_t *a, const ast_over_t *b) {
  if (a->partition.n != b->partition.n || a->order.n != b->order.n) return false;
  for (size_t i = 0; i < a->partition.n; i++)
    if (!sql_ast_equal(a->partition.v[i], b->partition.v[i])) return false;
  for (size_t i = 0; i < a->order.n; i++)
    if (!sql_ast_equal(a->order.v[i], b->order.v[i]) ||
        (a->order_desc.v[i] != NULL) != (b->order_desc.v[i] != NULL))
      return false;
  if (a->has_frame != b->has_frame || a->rows != b->rows || a->unbounded != b->unbounded)
    return false;
  return sql_ast_equal(a->preceding, b->preceding);
}

/* The SELECT list of q as a CALC over r, whose first from->n columns are from's: * stands
 * for from's visible columns, rn (if not NULL) for r's column from->n, named rn_name, and
 * the other items are bound by b over the first from->n columns. */
static sql_rel_t *select_list(sql_planner_t *p, const ast_query_t *q, const sql_rel_t *from,
                              sql_rel_t *r, sql_binder_t *b, const ast_expr_t *rn,
                              const char *rn_name) {
  int nitems = 0;
  for (size_t i = 0; i < q->items.n; i++) {
    const ast_select_item_t *it = q->items.v[i];
    nitems += it->expr->kind == AE_STAR ? from->n : 1;
  }
  sql_x_t **proj = sql_arena_alloc(p->a, sizeof(sql_x_t *) * (size_t)(nitems + 1));
  const char **pn = sql_arena_alloc(p->a, sizeof(char *) * (size_t)(nitems + 1));
  if (!proj || !pn) return sql_plan_nomem(p);
  b->ncols = from->n;
  int k = 0;
  for (size_t i = 0; i < q->items.n; i++) {
    const ast_select_item_t *it = q->items.v[i];
    if (rn && it->expr == rn) {
      proj[k] = sql_x_col(p->a, 0, from->n, &sql_t_bigint_nn, rn_name);
      pn[k++] = rn_name;
      continue;
    }
    if (it->expr->kind == AE_STAR) {
      for (int c2 = 0; c2 < from->n; c2++) {
        if (from->f[c2].hidden) continue;
        proj[k] = sql_x_col(p->a, 0, c2, from->f[c2].type, from->f[c2].name);
        pn[k++] = from->f[c2].name;
      }
      continue;
    }
    proj[k] = sql_plan_bind(p, b, it->expr);
    if (!proj[k]) return NULL;
    pn[k] = it->alias                    ? it->alias
            : it->expr->kind == AE_IDENT ? it->expr->parts[it->expr->n_parts - 1]
                                         : sql_arena_printf(p->a, "EXPR$%d", k);
    k++;
  }
  sql_rel_t *out = sql_plan_calc(p, r, proj, pn, k, NULL);
  if (out) out->name = "calc";
  return out;
}

typedef struct over_ctx {
  const ast_expr_t **calls;
  int n, cap;
  sql_planner_t *p;
} over_ctx_t;

static void collect_over(void *ctx, const ast_expr_t *e) {
  over_ctx_t *c = ctx;
  if (e->kind == AE_CALL && e->over) {
    for (int i = 0; i < c->n; i++)
      if (sql_ast_equal(c->calls[i], e) && same_over(c->calls[i]->over, e->over)) return;
    sql_plan_push_call(c->p, &c->calls, &c->n, &c->cap, e);
    return;
  }
  sql_ast_children(e, collect_over, c);
}

typedef struct over_subst {
  over_ctx_t *c;
  int base; /* output column of the first aggregate */
  const sql_rel_t *out;
} over_subst_t;

static int over_subst_fn(void *opaque, const ast_expr_t *e, int *col, const sql_type_t **type) {
  over_subst_t *s = opaque;
  if (e->kind != AE_CALL || !e->over) return 0;
  for (int i = 0; i < s->c->n; i++) {
    if (sql_ast_equal(s->c->calls[i], e)) {
      *col = s->base + i;
      *type = s->out->f[s->base + i].type;
      return 1;
    }
  }
  return 0;
}

/* The partition keys and the order column of an OVER clause, bound over `from`. */
static bool over_keys(sql_planner_t *p, const ast_over_t *o, sql_rel_t *from, sql_x_t ***keys,
                      int *nkeys) {
  sql_binder_t b;
  sql_plan_binder(p, &b, from, NULL, "PARTITION BY");
  *nkeys = (int)o->partition.n;
  *keys = sql_arena_alloc(p->a, sizeof(sql_x_t *) * (size_t)(*nkeys + 1));
  if (!*keys) return sql_plan_nomem(p), false;
  for (int i = 0; i < *nkeys; i++) {
    (*keys)[i] = sql_plan_bind(p, &b, o->partition.v[i]);
    if (!(*keys)[i]) return false;
  }
  return true;
}

sql_rel_t *sql_plan_over(sql_planner_t *p, const ast_query_t *q, sql_rel_t *from) {
  over_ctx_t c = {.p = p};
  for (size_t i = 0; i < q->items.n; i++)
    collect_over(&c, ((ast_select_item_t *)q->items.v[i])->expr);
  if (p->a->failed) return sql_plan_nomem(p);
  const ast_over_t *o = c.calls[0]->over;
  for (int i = 1; i < c.n; i++)
    if (!same_over(o, c.calls[i]->over))
      return sql_plan_fail(p, FL_ENOTSUP, c.calls[i]->pos,
                           "all OVER windows of a query must be the same");
  if (o->name) return sql_plan_fail(p, FL_ENOTSUP, o->pos, "named windows are not supported");
  if (o->order.n != 1)
    return sql_plan_fail(p, FL_EINVAL, o->pos, "an OVER window needs ORDER BY one time attribute");
  if (o->order_desc.v[0])
    return sql_plan_fail(p, FL_ENOTSUP, o->pos, "an OVER window must be ordered by time ascending");
  sql_binder_t b;
  sql_plan_binder(p, &b, from, NULL, "ORDER BY");
  sql_x_t *ord = sql_plan_bind(p, &b, o->order.v[0]);
  if (!ord) return NULL;
  if (ord->xk != XK_COL || from->f[ord->col].time == TA_NONE)
    return sql_plan_fail(
        p, FL_EINVAL, ((ast_expr_t *)o->order.v[0])->pos,
        "an OVER window must be ordered by a time attribute (a column with a WATERMARK, or PROCTIME()), not %s",
        ord->text);
  bool proctime = from->f[ord->col].time == TA_PROCTIME;
  sql_x_t **keys;
  int nkeys;
  if (!over_keys(p, o, from, &keys, &nkeys)) return NULL;
  int64_t preceding = 0;
  bool unbounded = !o->has_frame || o->unbounded;
  bool rows = o->has_frame && o->rows;
  if (o->has_frame && !o->unbounded && o->preceding) {
    sql_binder_t cb;
    sql_plan_binder(p, &cb, NULL, NULL, "the OVER frame");
    sql_x_t *x = sql_plan_bind(p, &cb, o->preceding);
    if (!x) return NULL;
    sql_val_t v;
    char err[128];
    if (!x->is_const || sql_eval_const(x, &p->cat->sess, &v, err, sizeof err) || v.null)
      return sql_plan_fail(p, FL_EINVAL, o->preceding->pos, "the frame bound must be a constant");
    if (rows && !sql_type_is_integer(x->type))
      return sql_plan_fail(p, FL_EINVAL, o->preceding->pos, "ROWS needs a number of rows");
    if (!rows && x->type->kind != T_INTERVAL_DT)
      return sql_plan_fail(p, FL_EINVAL, o->preceding->pos,
                           "RANGE needs an INTERVAL, e.g. INTERVAL '1' HOUR PRECEDING");
    if (v.i < 0)
      return sql_plan_fail(p, FL_EINVAL, o->preceding->pos, "the frame bound must not be negative");
    preceding = v.i;
  } else if (o->has_frame && !o->unbounded) {
    preceding = 0; /* CURRENT ROW */
  }
  /* the CALC before: key = partition, value = the input row + aggregate inputs */
  const char **names;
  sql_x_t **vals = sql_plan_identity(p, from, &names, 3 * c.n);
  if (!vals) return NULL;
  int nvals = from->n;
  sql_rel_t *r = sql_rel_new(p, R_OVER, from->n + c.n);
  if (!r) return NULL;
  r->aggs = sql_arena_alloc(p->a, sizeof(sql_agg_t) * (size_t)c.n);
  if (!r->aggs) return sql_plan_nomem(p);
  sql_binder_t ab;
  sql_plan_binder(p, &ab, from, NULL, "an aggregate's argument");
  size_t off = 0;
  for (int j = 0; j < c.n; j++) {
    const ast_expr_t *e = c.calls[j];
    if (!sql_is_aggregate_call(p->cat, e))
      return sql_plan_fail(p, FL_ENOTSUP, e->pos, "%s is not an aggregate that OVER supports",
                           e->name);
    if (!strcasecmp(e->name, "ROW_NUMBER"))
      return sql_plan_fail(p, FL_ENOTSUP, e->pos, "ROW_NUMBER() is only supported for Top-N");
    sql_agg_t *ag = &r->aggs[j];
    if (!sql_plan_agg_call(p, &ab, e, ag, vals, &nvals)) return NULL;
    if (ag->distinct)
      return sql_plan_fail(p, FL_ENOTSUP, e->pos, "DISTINCT in OVER aggregates is not supported");
    if (ag->kind == AGG_UDAF && !ag->udaf->agg.retract && !unbounded)
      return sql_plan_fail(p, FL_EINVAL, e->pos,
                           "%s has no retract function, which a bounded OVER frame needs", e->name);
    ag->acc_off = off;
    off += (ag->acc_size + 15) & ~(size_t)15;
  }
  for (int v = from->n; v < nvals; v++) names[v] = vals[v]->text;
  sql_rel_t *pre = sql_plan_calc(p, from, vals, names, nvals, NULL);
  if (!pre) return NULL;
  pre->key = keys;
  pre->nkey = nkeys;
  pre->name = "over-input";
  if (!proctime)
    pre->ts = sql_x_col(p->a, 0, ord->col, from->f[ord->col].type, from->f[ord->col].name);
  r->in[0] = pre;
  r->nin = 1;
  r->naggs = c.n;
  r->acc_size = off ? off : 8;
  r->rows_frame = rows;
  r->unbounded = unbounded;
  r->preceding = preceding;
  r->order_proctime = proctime;
  r->time_col = ord->col;
  r->name = "over-aggregate";
  for (int i = 0; i < from->n; i++) r->f[i] = from->f[i];
  for (int j = 0; j < c.n; j++) {
    r->f[from->n + j].name = sql_ast_text(p->a, p->src, c.calls[j]);
    r->f[from->n + j].type = r->aggs[j].type;
  }
  /* the SELECT list over the input columns and the aggregates */
  over_subst_t os = {&c, from->n, r};
  sql_binder_t post;
  sql_plan_binder(p, &post, r, NULL, "the SELECT list");
  /* the aggregates are reached through subst only: the binder sees from's columns */
  post.subst = over_subst_fn;
  post.subst_opaque = &os;
  return select_list(p, q, from, r, &post, NULL, NULL);
}

/* ---------------------------------------------------------------------------------- */
/* Top-N                                                                              */

sql_rel_t *sql_plan_rank(sql_planner_t *p, const ast_query_t *q, sql_rel_t *from) {
  const ast_expr_t *rn = NULL;
  const char *rn_name = NULL;
  for (size_t i = 0; i < q->items.n; i++) {
    const ast_select_item_t *it = q->items.v[i];
    if (it->expr->kind == AE_CALL && it->expr->over && !strcasecmp(it->expr->name, "ROW_NUMBER")) {
      if (rn) return sql_plan_fail(p, FL_ENOTSUP, it->pos, "only one ROW_NUMBER() per query");
      rn = it->expr;
      rn_name = it->alias ? it->alias : "EXPR$rownum";
    } else if (sql_ast_has_over(it->expr)) {
      return sql_plan_fail(p, FL_ENOTSUP, it->pos,
                           "ROW_NUMBER() cannot be mixed with other OVER aggregates");
    }
  }
  const ast_over_t *o = rn->over;
  if (rn->list.n) return sql_plan_fail(p, FL_EINVAL, rn->pos, "ROW_NUMBER() takes no arguments");
  if (o->order.n == 0) return sql_plan_fail(p, FL_EINVAL, o->pos, "ROW_NUMBER() needs ORDER BY");
  sql_x_t **keys;
  int nkeys;
  if (!over_keys(p, o, from, &keys, &nkeys)) return NULL;
  int we = -1, wsi = -1;
  for (int i = 0; i < nkeys; i++) {
    if (keys[i]->xk != XK_COL) continue;
    if (from->f[keys[i]->col].win == WA_END) we = keys[i]->col;
    if (from->f[keys[i]->col].win == WA_START) wsi = keys[i]->col;
  }
  if (we < 0 || wsi < 0)
    return sql_plan_fail(
        p, FL_ENOTSUP, o->pos,
        "Top-N without window_start and window_end in PARTITION BY updates earlier "
        "results; not supported yet: rank within the windows of a window table "
        "function or window aggregation");
  const char **names;
  sql_x_t **vals = sql_plan_identity(p, from, &names, (int)o->order.n);
  if (!vals) return NULL;
  int nvals = from->n;
  sql_rel_t *r = sql_rel_new(p, R_RANK, from->n + 1);
  if (!r) return NULL;
  r->norder = (int)o->order.n;
  r->order_cols = sql_arena_alloc(p->a, sizeof(int) * (size_t)r->norder);
  r->order_desc = sql_arena_alloc(p->a, sizeof(bool) * (size_t)r->norder);
  if (!r->order_cols || !r->order_desc) return sql_plan_nomem(p);
  sql_binder_t b;
  sql_plan_binder(p, &b, from, NULL, "ORDER BY");
  for (int i = 0; i < r->norder; i++) {
    sql_x_t *x = sql_plan_bind(p, &b, o->order.v[i]);
    if (!x) return NULL;
    if (x->type->kind == T_ROW)
      return sql_plan_fail(p, FL_EINVAL, ((ast_expr_t *)o->order.v[i])->pos,
                           "cannot order by a ROW");
    r->order_cols[i] = nvals;
    r->order_desc[i] = o->order_desc.v[i] != NULL;
    names[nvals] = x->text;
    vals[nvals++] = x;
  }
  sql_rel_t *pre = sql_plan_calc(p, from, vals, names, nvals, NULL);
  if (!pre) return NULL;
  pre->key = keys;
  pre->nkey = nkeys;
  pre->ts = vals[we];
  pre->ts_offset = -1;
  pre->name = "rank-input";
  r->in[0] = pre;
  r->nin = 1;
  r->limit = -1;
  r->nkeys = from->n; /* the input columns to keep */
  r->name = "window-top-n";
  for (int i = 0; i < from->n; i++) r->f[i] = from->f[i];
  r->f[from->n].name = rn_name;
  r->f[from->n].type = &sql_t_bigint_nn;
  r->emit_rownum = true;
  /* the SELECT list */
  sql_binder_t post;
  sql_plan_binder(p, &post, r, NULL, "the SELECT list");
  return select_list(p, q, from, r, &post, rn, rn_name);
}

/* Follows column col of rel down to the RANK that made it, through CALCs that pass it on
 * unchanged (and subquery aliases). */
static sql_rel_t *rank_of(sql_rel_t *rel, int col) {
  for (;;) {
    if (rel->alias_of) rel = rel->alias_of;
    if (rel->kind == R_RANK) return col == rel->n - 1 ? rel : NULL;
    if (rel->kind != R_CALC || rel->filter) return NULL;
    sql_x_t *x = rel->proj[col];
    if (x->xk != XK_COL || x->input != 0) return NULL;
    col = x->col;
    rel = rel->in[0];
  }
}

bool sql_apply_rank_limit(sql_planner_t *p, sql_rel_t *from, sql_x_t **conj, int *nconj) {
  bool changed = false;
  for (int i = 0; i < *nconj; i++) {
    sql_x_t *x = conj[i];
    if (x->xk != XK_CMP) continue;
    sql_x_t *a = x->args[0], *c = x->args[1];
    int op = (int)x->iparam;
    if (a->xk == XK_CONST) {
      sql_x_t *t = a;
      a = c;
      c = t;
      op = op == OP_LT   ? OP_GT
           : op == OP_LE ? OP_GE
           : op == OP_GT ? OP_LT
           : op == OP_GE ? OP_LE
                         : op;
    }
    if (a->xk != XK_COL || c->xk != XK_CONST || c->cval.null || !sql_type_is_integer(c->type))
      continue;
    sql_rel_t *rank = rank_of(from, a->col);
    if (!rank) continue;
    int64_t n = c->cval.i;
    int64_t limit = op == OP_LE ? n : op == OP_LT ? n - 1 : op == OP_EQ && n == 1 ? 1 : -2;
    if (limit == -2) {
      sql_plan_fail(p, FL_ENOTSUP, (sql_pos_t){0, 0},
                    "a Top-N filter must be rownum <= N, rownum < N or rownum = 1");
      return false;
    }
    if (limit < 1) limit = 0;
    if (rank->limit < 0 || limit < rank->limit) rank->limit = limit;
    memmove(conj + i, conj + i + 1, sizeof(sql_x_t *) * (size_t)(*nconj - i - 1));
    (*nconj)--;
    i--;
    changed = true;
  }
  return changed;
}

bool sql_plan_check_ranks(sql_planner_t *p, sql_rel_t *rel) {
  if (!rel) return true;
  if (rel->alias_of) return sql_plan_check_ranks(p, rel->alias_of);
  if (rel->kind == R_RANK && rel->limit < 0) {
    snprintf(
        p->err, p->err_size,
        "ROW_NUMBER() needs a filter on its result in the enclosing query, e.g. WHERE rownum <= 3 "
        "(a window Top-N)");
    p->rc = FL_ENOTSUP;
    return false;
  }
  for (int i = 0; i < rel->nin; i++)
    if (!sql_plan_check_ranks(p, rel->in[i])) return false;
  return true;
}
