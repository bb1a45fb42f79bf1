/*
 * The planner's core (planner.h): queries, SELECT without aggregation, FROM (tables,
 * views, CTEs, subqueries), UNION ALL and VALUES, and the helpers the other planner files
 * share.
 */
#include "sql/bind_int.h"
#include "sql/exec.h"
#include "sql/planner.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

struct sql_cte_scope {
  sql_cte_scope_t *up;
  const ast_cte_t *cte;
};

void *sql_plan_fail(sql_planner_t *p, int code, sql_pos_t pos, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  sql_verror_at(p->err, p->err_size, pos, fmt, ap);
  va_end(ap);
  p->rc = code;
  return NULL;
}

void *sql_plan_nomem(sql_planner_t *p) {
  snprintf(p->err, p->err_size, "out of memory planning SQL");
  p->rc = FL_ENOMEM;
  return NULL;
}

sql_rel_t *sql_rel_new(sql_planner_t *p, sql_rel_kind_t kind, int n) {
  sql_rel_t *r = sql_arena_alloc(p->a, sizeof *r);
  if (!r) return sql_plan_nomem(p);
  r->kind = kind;
  r->n = n;
  r->f = sql_arena_alloc(p->a, sizeof(sql_field_t) * (size_t)(n ? n : 1));
  if (!r->f) return sql_plan_nomem(p);
  r->time_col = -1;
  r->key_ws = r->key_we = -1;
  return r;
}

sql_x_t **sql_plan_identity(sql_planner_t *p, const sql_rel_t *in, const char ***names, int extra) {
  sql_x_t **id = sql_arena_alloc(p->a, sizeof(sql_x_t *) * (size_t)(in->n + extra + 1));
  *names = sql_arena_alloc(p->a, sizeof(char *) * (size_t)(in->n + extra + 1));
  if (!id || !*names) return sql_plan_nomem(p);
  for (int i = 0; i < in->n; i++) {
    id[i] = sql_x_col(p->a, 0, i, in->f[i].type, in->f[i].name);
    if (!id[i]) return sql_plan_nomem(p);
    (*names)[i] = in->f[i].name;
  }
  return id;
}

void sql_ast_children(const ast_expr_t *e, void (*fn)(void *ctx, const ast_expr_t *child),
                      void *ctx) {
  const ast_expr_t *abc[] = {e->a, e->b, e->c};
  for (int i = 0; i < 3; i++)
    if (abc[i]) fn(ctx, abc[i]);
  for (size_t i = 0; i < e->list.n; i++) fn(ctx, e->list.v[i]);
}

bool sql_plan_push_call(sql_planner_t *p, const ast_expr_t ***v, int *n, int *cap,
                        const ast_expr_t *e) {
  if (*n == *cap) {
    int nc = *cap ? *cap * 2 : 8;
    const ast_expr_t **nv = sql_arena_alloc(p->a, sizeof(ast_expr_t *) * (size_t)nc);
    if (!nv) return false;
    if (*n) memcpy(nv, *v, sizeof(ast_expr_t *) * (size_t)*n);
    *v = nv;
    *cap = nc;
  }
  (*v)[(*n)++] = e;
  return true;
}

void sql_plan_binder(sql_planner_t *p, sql_binder_t *b, const sql_rel_t *l, const sql_rel_t *r,
                     const char *clause) {
  memset(b, 0, sizeof *b);
  b->a = p->a;
  b->src = p->src;
  b->cat = p->cat;
  b->sess = &p->cat->sess;
  b->clause = clause;
  b->err = p->err;
  b->err_size = p->err_size;
  int n = (l ? l->n : 0) + (r ? r->n : 0);
  b->cols = sql_arena_alloc(p->a, sizeof(sql_scope_col_t) * (size_t)(n ? n : 1));
  if (!b->cols) return;
  int k = 0;
  for (int side = 0; side < 2; side++) {
    const sql_rel_t *rel = side ? r : l;
    if (!rel) continue;
    for (int i = 0; i < rel->n; i++) {
      b->cols[k].qual = rel->f[i].qual;
      b->cols[k].name = rel->f[i].name;
      b->cols[k].type = rel->f[i].type;
      b->cols[k].input = side;
      b->cols[k].col = i;
      b->cols[k].hidden = rel->f[i].hidden;
      k++;
    }
  }
  b->ncols = k;
}

sql_x_t *sql_plan_bind(sql_planner_t *p, sql_binder_t *b, const ast_expr_t *e) {
  p->err[0] = 0;
  sql_x_t *x = sql_bind(b, e);
  if (!x) {
    if (p->a->failed) return sql_plan_nomem(p);
    p->rc = FL_EINVAL;
    if (!p->err[0]) snprintf(p->err, p->err_size, "cannot compile an expression");
  }
  return x;
}

void sql_field_from_expr(const sql_rel_t *in, const sql_x_t *x, sql_field_t *out) {
  out->type = x->type;
  if (x->xk == XK_COL && x->input == 0 && in && x->col < in->n) {
    const sql_field_t *f = &in->f[x->col];
    out->time = f->time;
    out->win = f->win;
    out->ws = f->ws;
    out->ts_exact = f->ts_exact;
    out->ts_delta = f->ts_delta;
  }
}

sql_rel_t *sql_plan_calc(sql_planner_t *p, sql_rel_t *in, sql_x_t **proj, const char **names, int n,
                         sql_x_t *filter) {
  sql_rel_t *r = sql_rel_new(p, R_CALC, n);
  if (!r) return NULL;
  r->in[0] = in;
  r->nin = 1;
  r->proj = proj;
  r->filter = filter;
  for (int i = 0; i < n; i++) {
    sql_field_from_expr(in, proj[i], &r->f[i]);
    r->f[i].name = names && names[i] ? names[i] : proj[i]->text;
  }
  return r;
}

bool sql_ast_has_agg(const sql_catalog_t *cat, const ast_expr_t *e) {
  if (!e) return false;
  if (e->kind == AE_CALL && !e->over && sql_is_aggregate_call(cat, e)) return true;
  if (e->kind == AE_CALL && e->over) return false;
  if (sql_ast_has_agg(cat, e->a) || sql_ast_has_agg(cat, e->b) || sql_ast_has_agg(cat, e->c))
    return true;
  for (size_t i = 0; i < e->list.n; i++)
    if (sql_ast_has_agg(cat, e->list.v[i])) return true;
  return false;
}

bool sql_ast_has_over(const ast_expr_t *e) {
  if (!e) return false;
  if (e->kind == AE_CALL && e->over) return true;
  if (sql_ast_has_over(e->a) || sql_ast_has_over(e->b) || sql_ast_has_over(e->c)) return true;
  for (size_t i = 0; i < e->list.n; i++)
    if (sql_ast_has_over(e->list.v[i])) return true;
  return false;
}

void sql_conjuncts(sql_x_t *x, sql_x_t **out, int *n, int cap) {
  if (!x) return;
  if (x->xk == XK_AND) {
    for (int i = 0; i < x->nargs; i++) sql_conjuncts(x->args[i], out, n, cap);
    return;
  }
  if (*n < cap) out[(*n)++] = x;
}

sql_x_t *sql_and_all(sql_planner_t *p, sql_x_t **xs, int n) {
  if (n == 0) return NULL;
  if (n == 1) return xs[0];
  sql_x_t *x = sql_x_new(p->a, NULL, &sql_t_boolean, n);
  if (!x) return sql_plan_nomem(p);
  x->fn = sql_x_and_fn;
  x->xk = XK_AND;
  x->text = "AND";
  for (int i = 0; i < n; i++) x->args[i] = xs[i];
  return x;
}

/* ---------------------------------------------------------------------------------- */
/* FROM                                                                               */

static sql_rel_t *requalify(sql_planner_t *p, sql_rel_t *r, const char *qual,
                            const char **col_aliases, int n_aliases, sql_pos_t pos) {
  if (n_aliases && n_aliases != r->n)
    return sql_plan_fail(p, FL_EINVAL, pos, "%d column aliases for %d columns", n_aliases, r->n);
  /* fields are shared with the relation; a renamed copy keeps the relation intact */
  sql_rel_t *c = sql_arena_alloc(p->a, sizeof *c);
  if (!c) return sql_plan_nomem(p);
  *c = *r;
  c->f = sql_arena_alloc(p->a, sizeof(sql_field_t) * (size_t)(r->n ? r->n : 1));
  if (!c->f) return sql_plan_nomem(p);
  for (int i = 0; i < r->n; i++) {
    c->f[i] = r->f[i];
    c->f[i].qual = qual;
    if (n_aliases) c->f[i].name = col_aliases[i];
  }
  /* the copy and the original are one relation for the translator */
  c->alias_of = r->alias_of ? r->alias_of : r;
  return c;
}

static sql_rel_t *scan(sql_planner_t *p, const sql_table_t *t) {
  sql_rel_t *r = sql_rel_new(p, t->stream ? R_STREAM : R_SCAN, t->ncols);
  if (!r) return NULL;
  r->table = t;
  r->name = t->name;
  for (int i = 0; i < t->ncols; i++) {
    const sql_column_t *c = &t->cols[i];
    r->f[i].name = c->name;
    r->f[i].type = c->type;
    if (i == t->rowtime) {
      r->f[i].time = TA_ROWTIME;
      r->f[i].ts_exact = true;
    }
    if (c->proctime) r->f[i].time = TA_PROCTIME;
  }
  return r;
}

static const ast_cte_t *find_cte(sql_planner_t *p, const char *name) {
  for (sql_cte_scope_t *s = p->ctes; s; s = s->up)
    if (strcmp(s->cte->name, name) == 0) return s->cte;
  return NULL;
}

/* One relation per table or view per script: a table read twice (a view used twice, a
 * self-join) is read by one source, as Flink's sub-plan reuse does. */
static sql_rel_t *memo_get(sql_planner_t *p, const void *key) {
  for (int i = 0; i < p->nmemo; i++)
    if (p->memo_keys[i] == key) return p->memo_rels[i];
  return NULL;
}

static void memo_put(sql_planner_t *p, const void *key, sql_rel_t *r) {
  if (p->nmemo == p->cap_memo) {
    int nc = p->cap_memo ? p->cap_memo * 2 : 16;
    const void **nk = sql_arena_alloc(p->a, sizeof(void *) * (size_t)nc);
    sql_rel_t **nr = sql_arena_alloc(p->a, sizeof(sql_rel_t *) * (size_t)nc);
    if (!nk || !nr) return;
    if (p->nmemo) {
      memcpy(nk, p->memo_keys, sizeof(void *) * (size_t)p->nmemo);
      memcpy(nr, p->memo_rels, sizeof(sql_rel_t *) * (size_t)p->nmemo);
    }
    p->memo_keys = nk;
    p->memo_rels = nr;
    p->cap_memo = nc;
  }
  p->memo_keys[p->nmemo] = key;
  p->memo_rels[p->nmemo++] = r;
}

static sql_rel_t *table_ref(sql_planner_t *p, const ast_from_t *f) {
  const ast_cte_t *cte = find_cte(p, f->name);
  if (cte) {
    sql_rel_t *r = sql_plan_query(p, cte->query);
    if (!r) return NULL;
    return requalify(p, r, f->alias ? f->alias : f->name, f->col_aliases, f->n_col_aliases, f->pos);
  }
  const sql_table_t *t = sql_catalog_find(p->cat, f->name);
  if (!t) {
    const char *names[256];
    int n = sql_catalog_names(p->cat, names, 256);
    const char *near = sql_nearest(f->name, names, n);
    if (near)
      return sql_plan_fail(p, FL_EINVAL, f->pos, "table '%s' not found; did you mean '%s'?",
                           f->name, near);
    return sql_plan_fail(p, FL_EINVAL, f->pos, "table '%s' not found", f->name);
  }
  sql_rel_t *r = memo_get(p, t);
  if (r) {
    return requalify(p, r, f->alias ? f->alias : t->name,
                     t->n_view_cols ? t->view_cols : f->col_aliases,
                     t->n_view_cols ? t->n_view_cols : f->n_col_aliases, f->pos);
  }
  if (t->is_view) {
    if (p->depth > 32)
      return sql_plan_fail(p, FL_EINVAL, f->pos, "views nested too deeply at '%s'", f->name);
    /* a view is planned in its own text */
    const char *saved = p->src;
    sql_cte_scope_t *saved_ctes = p->ctes;
    p->src = t->src;
    p->ctes = NULL;
    p->depth++;
    r = sql_plan_query(p, t->view_query);
    p->depth--;
    p->src = saved;
    p->ctes = saved_ctes;
    if (!r) {
      if (p->rc != FL_ENOMEM) {
        char inner[1024];
        snprintf(inner, sizeof inner, "%s", p->err);
        sql_plan_fail(p, p->rc, f->pos, "in view '%s': %s", t->name, inner);
      }
      return NULL;
    }
    if (t->n_view_cols) {
      if (t->n_view_cols != r->n)
        return sql_plan_fail(p, FL_EINVAL, f->pos, "view '%s' names %d columns, its query has %d",
                             t->name, t->n_view_cols, r->n);
    }
    memo_put(p, t, r);
    return requalify(p, r, f->alias ? f->alias : t->name,
                     t->n_view_cols ? t->view_cols : f->col_aliases,
                     t->n_view_cols ? t->n_view_cols : f->n_col_aliases, f->pos);
  }
  char cerr[512];
  int crc = sql_connector_check_use(p->cat, t, true, cerr, sizeof cerr);
  if (crc) return sql_plan_fail(p, crc, f->pos, "%s", cerr);
  r = scan(p, t);
  if (!r) return NULL;
  memo_put(p, t, r);
  return requalify(p, r, f->alias ? f->alias : t->name, f->col_aliases, f->n_col_aliases, f->pos);
}

sql_rel_t *sql_plan_from(sql_planner_t *p, const ast_from_t *f, const ast_expr_t *where,
                         bool *where_used) {
  switch (f->kind) {
  case AF_TABLE: return table_ref(p, f);
  case AF_SUBQUERY: {
    sql_rel_t *r = sql_plan_query(p, f->query);
    if (!r) return NULL;
    return requalify(p, r, f->alias, f->col_aliases, f->n_col_aliases, f->pos);
  }
  case AF_TVF: {
    sql_rel_t *r = sql_plan_tvf(p, f);
    if (!r) return NULL;
    return requalify(p, r, f->alias, f->col_aliases, f->n_col_aliases, f->pos);
  }
  case AF_JOIN: {
    sql_rel_t *l = sql_plan_from(p, f->left, NULL, NULL);
    if (!l) return NULL;
    sql_rel_t *r = sql_plan_from(p, f->right, NULL, NULL);
    if (!r) return NULL;
    if (where_used) *where_used = true;
    return sql_plan_join(p, f, l, r, where);
  }
  }
  return NULL;
}

/* ---------------------------------------------------------------------------------- */
/* SELECT                                                                             */

static const char *item_name(sql_planner_t *p, const ast_select_item_t *it, int i) {
  if (it->alias) return it->alias;
  const ast_expr_t *e = it->expr;
  if (e->kind == AE_IDENT) return e->parts[e->n_parts - 1];
  if (e->kind == AE_FIELD) return e->name;
  return sql_arena_printf(p->a, "EXPR$%d", i);
}

/* Expands the SELECT list (with * and t.*) into expressions bound by b; proctime[i]
 * tells which are PROCTIME() calls (processing-time attributes). */
static int select_list(sql_planner_t *p, const ast_query_t *q, sql_binder_t *b,
                       const sql_rel_t *from, sql_x_t ***proj_out, const char ***names_out,
                       bool **proctime_out) {
  int cap = 0;
  for (size_t i = 0; i < q->items.n; i++) {
    const ast_select_item_t *it = q->items.v[i];
    cap += it->expr->kind == AE_STAR ? (from ? from->n : 0) : 1;
  }
  sql_x_t **proj = sql_arena_alloc(p->a, sizeof(sql_x_t *) * (size_t)(cap ? cap : 1));
  const char **names = sql_arena_alloc(p->a, sizeof(char *) * (size_t)(cap ? cap : 1));
  bool *pt = sql_arena_alloc(p->a, sizeof(bool) * (size_t)(cap ? cap : 1));
  if (!proj || !names || !pt) return sql_plan_nomem(p), -1;
  int n = 0;
  for (size_t i = 0; i < q->items.n; i++) {
    const ast_select_item_t *it = q->items.v[i];
    if (it->expr->kind == AE_STAR) {
      const char *qual = it->expr->n_parts ? it->expr->parts[0] : NULL;
      if (!from) return sql_plan_fail(p, FL_EINVAL, it->pos, "SELECT * needs a FROM clause"), -1;
      int found = 0;
      for (int c = 0; c < from->n; c++) {
        const sql_field_t *f = &from->f[c];
        if (f->hidden) continue;
        if (qual && (!f->qual || strcmp(f->qual, qual) != 0)) continue;
        proj[n] = sql_x_col(p->a, 0, c, f->type, f->name);
        if (!proj[n]) return sql_plan_nomem(p), -1;
        names[n++] = f->name;
        found++;
      }
      if (qual && !found)
        return sql_plan_fail(p, FL_EINVAL, it->pos, "no table named '%s' in the FROM clause", qual),
               -1;
      continue;
    }
    proj[n] = sql_plan_bind(p, b, it->expr);
    if (!proj[n]) return -1;
    if (proj[n]->type->kind == T_NULL) {
      proj[n] = sql_x_cast(p->a, proj[n], &sql_t_string, false);
      if (!proj[n]) return sql_plan_nomem(p), -1;
    }
    const ast_expr_t *e = it->expr;
    pt[n] = e->kind == AE_CALL && strcasecmp(e->name, "PROCTIME") == 0 && e->list.n == 0;
    names[n] = item_name(p, it, n);
    n++;
  }
  *proj_out = proj;
  *names_out = names;
  *proctime_out = pt;
  return n;
}

static sql_rel_t *plan_select(sql_planner_t *p, const ast_query_t *q) {
  if (q->distinct) {
    return sql_plan_fail(p, FL_ENOTSUP, q->pos,
                         "SELECT DISTINCT is an unbounded deduplication, which produces an "
                         "updating result; not supported yet (use GROUP BY window_start, "
                         "window_end, ... of a window table function)");
  }
  sql_rel_t *from = NULL;
  bool where_used = false;
  if (q->from) {
    from = sql_plan_from(p, q->from, q->where, &where_used);
    if (!from) return NULL;
  } else {
    /* SELECT without FROM: one empty row */
    from = sql_rel_new(p, R_VALUES, 0);
    if (!from) return NULL;
    from->nrows = 1;
    from->name = "values";
  }
  bool has_agg = q->group_by.n > 0 || sql_ast_has_agg(p->cat, q->having);
  bool has_over = false;
  for (size_t i = 0; i < q->items.n; i++) {
    const ast_select_item_t *it = q->items.v[i];
    if (sql_ast_has_agg(p->cat, it->expr)) has_agg = true;
    if (sql_ast_has_over(it->expr)) has_over = true;
  }
  if (q->having && !has_agg)
    return sql_plan_fail(p, FL_EINVAL, q->having->pos, "HAVING needs GROUP BY or an aggregate");

  sql_binder_t b;
  sql_x_t *where = NULL;
  if (q->where && !where_used) {
    sql_plan_binder(p, &b, from, NULL, "WHERE");
    where = sql_plan_bind(p, &b, q->where);
    if (!where) return NULL;
    if (where->type->kind != T_BOOLEAN && where->type->kind != T_NULL)
      return sql_plan_fail(p, FL_EINVAL, q->where->pos, "WHERE needs a BOOLEAN condition, not %s",
                           sql_type_name(p->a, where->type));
    /* WHERE rownum <= N over a ROW_NUMBER() subquery is a Top-N */
    sql_x_t *conj[64];
    int nc = 0;
    sql_conjuncts(where, conj, &nc, 64);
    if (sql_apply_rank_limit(p, from, conj, &nc)) where = sql_and_all(p, conj, nc);
    if (p->rc) return NULL;
  }
  if (has_agg && has_over)
    return sql_plan_fail(
        p, FL_ENOTSUP, q->pos,
        "a query cannot have both GROUP BY aggregates and OVER windows; use a subquery");
  if (has_agg) return sql_plan_window_agg(p, q, from, where);
  if (has_over) {
    if (where) {
      const char **nm;
      sql_x_t **id = sql_plan_identity(p, from, &nm, 0);
      if (!id) return NULL;
      sql_rel_t *c = sql_plan_calc(p, from, id, nm, from->n, where);
      if (!c) return NULL;
      for (int i = 0; i < from->n; i++) c->f[i].qual = from->f[i].qual;
      from = c;
    }
    /* ROW_NUMBER() makes a Top-N, other OVER calls an OVER aggregation */
    for (size_t i = 0; i < q->items.n; i++) {
      const ast_select_item_t *it = q->items.v[i];
      if (it->expr->kind == AE_CALL && it->expr->over &&
          strcasecmp(it->expr->name, "ROW_NUMBER") == 0)
        return sql_plan_rank(p, q, from);
    }
    return sql_plan_over(p, q, from);
  }
  sql_plan_binder(p, &b, from, NULL, "the SELECT list");
  sql_x_t **proj;
  const char **names;
  bool *pt;
  int n = select_list(p, q, &b, from, &proj, &names, &pt);
  if (n < 0) return NULL;
  sql_rel_t *r = sql_plan_calc(p, from, proj, names, n, where);
  if (!r) return NULL;
  for (int i = 0; i < n; i++)
    if (pt[i]) r->f[i].time = TA_PROCTIME;
  r->name = "calc";
  return r;
}

static sql_rel_t *plan_values(sql_planner_t *p, const ast_query_t *q) {
  int nrows = (int)q->rows.n;
  const ast_expr_t *first = q->rows.v[0];
  int n = (int)first->list.n;
  sql_rel_t *r = sql_rel_new(p, R_VALUES, n);
  if (!r) return NULL;
  r->nrows = nrows;
  r->name = "values";
  r->values = sql_arena_alloc(p->a, sizeof(sql_x_t *) * (size_t)(nrows * n + 1));
  if (!r->values) return sql_plan_nomem(p);
  sql_binder_t b;
  sql_plan_binder(p, &b, NULL, NULL, "VALUES");
  for (int i = 0; i < nrows; i++) {
    const ast_expr_t *row = q->rows.v[i];
    if ((int)row->list.n != n)
      return sql_plan_fail(p, FL_EINVAL, row->pos, "VALUES rows have %d and %d columns", n,
                           (int)row->list.n);
    for (int c = 0; c < n; c++) {
      sql_x_t *x = sql_plan_bind(p, &b, row->list.v[c]);
      if (!x) return NULL;
      if (!x->is_const)
        return sql_plan_fail(p, FL_ENOTSUP, ((ast_expr_t *)row->list.v[c])->pos,
                             "VALUES must be constants");
      r->values[i * n + c] = x;
      const sql_type_t *t = i == 0 ? x->type : sql_common_type(p->a, r->f[c].type, x->type);
      if (!t)
        return sql_plan_fail(p, FL_EINVAL, ((ast_expr_t *)row->list.v[c])->pos,
                             "VALUES column %d mixes %s and %s", c + 1,
                             sql_type_name(p->a, r->f[c].type), sql_type_name(p->a, x->type));
      r->f[c].type = t;
    }
  }
  for (int c = 0; c < n; c++) {
    if (r->f[c].type->kind == T_NULL) r->f[c].type = &sql_t_string;
    r->f[c].name = sql_arena_printf(p->a, "EXPR$%d", c);
    for (int i = 0; i < nrows; i++) {
      r->values[i * n + c] = sql_x_cast(p->a, r->values[i * n + c], r->f[c].type, false);
      if (!r->values[i * n + c]) return sql_plan_nomem(p);
    }
  }
  return r;
}

/* Brings r's columns to the given types with a CALC (UNION ALL branches). */
static sql_rel_t *cast_to(sql_planner_t *p, sql_rel_t *r, const sql_field_t *fields) {
  bool same = true;
  for (int i = 0; i < r->n; i++)
    if (!sql_type_equal(r->f[i].type, fields[i].type, false)) same = false;
  if (same) return r;
  sql_x_t **proj = sql_arena_alloc(p->a, sizeof(sql_x_t *) * (size_t)r->n);
  const char **names = sql_arena_alloc(p->a, sizeof(char *) * (size_t)r->n);
  if (!proj || !names) return sql_plan_nomem(p);
  for (int i = 0; i < r->n; i++) {
    proj[i] =
        sql_x_cast(p->a, sql_x_col(p->a, 0, i, r->f[i].type, r->f[i].name), fields[i].type, false);
    if (!proj[i]) return sql_plan_nomem(p);
    names[i] = fields[i].name;
  }
  return sql_plan_calc(p, r, proj, names, r->n, NULL);
}

static sql_rel_t *plan_union(sql_planner_t *p, const ast_query_t *q) {
  if (!q->all)
    return sql_plan_fail(p, FL_ENOTSUP, q->pos,
                         "UNION without ALL removes duplicates, which "
                         "produces an updating result; not supported yet (use UNION ALL)");
  sql_rel_t *l = sql_plan_query(p, q->left);
  if (!l) return NULL;
  sql_rel_t *r = sql_plan_query(p, q->right);
  if (!r) return NULL;
  if (l->n != r->n)
    return sql_plan_fail(p, FL_EINVAL, q->pos, "UNION ALL of %d and %d columns", l->n, r->n);
  sql_rel_t *u = sql_rel_new(p, R_UNION, l->n);
  if (!u) return NULL;
  for (int i = 0; i < l->n; i++) {
    const sql_type_t *t = sql_common_type(p->a, l->f[i].type, r->f[i].type);
    if (!t)
      return sql_plan_fail(p, FL_EINVAL, q->pos, "UNION ALL column '%s' mixes %s and %s",
                           l->f[i].name, sql_type_name(p->a, l->f[i].type),
                           sql_type_name(p->a, r->f[i].type));
    u->f[i] = l->f[i];
    u->f[i].type = t;
    u->f[i].qual = NULL;
    u->f[i].ts_exact = l->f[i].ts_exact && r->f[i].ts_exact && l->f[i].ts_delta == r->f[i].ts_delta;
    if (l->f[i].time != r->f[i].time) u->f[i].time = TA_NONE;
    if (l->f[i].win != r->f[i].win) u->f[i].win = WA_NONE;
  }
  u->in[0] = cast_to(p, l, u->f);
  u->in[1] = cast_to(p, r, u->f);
  if (!u->in[0] || !u->in[1]) return NULL;
  u->nin = 2;
  u->name = "union";
  return u;
}

sql_rel_t *sql_plan_query(sql_planner_t *p, const ast_query_t *q) {
  sql_cte_scope_t *saved = p->ctes;
  for (size_t i = 0; i < q->ctes.n; i++) {
    sql_cte_scope_t *s = sql_arena_alloc(p->a, sizeof *s);
    if (!s) return sql_plan_nomem(p);
    s->cte = q->ctes.v[i];
    s->up = p->ctes;
    p->ctes = s;
  }
  sql_rel_t *r = NULL;
  if (q->order_by.n) {
    sql_plan_fail(p, FL_ENOTSUP, ((ast_expr_t *)q->order_by.v[0])->pos,
                  "ORDER BY is not supported on a streaming query (sort inside OVER or a Top-N)");
    goto done;
  }
  if (q->limit) {
    sql_plan_fail(p, FL_ENOTSUP, q->limit->pos, "LIMIT is not supported on a streaming query");
    goto done;
  }
  switch (q->kind) {
  case AQ_SELECT: r = plan_select(p, q); break;
  case AQ_UNION: r = plan_union(p, q); break;
  case AQ_VALUES: r = plan_values(p, q); break;
  }
done:
  p->ctes = saved;
  return r;
}
