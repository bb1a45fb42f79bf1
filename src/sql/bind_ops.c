/*
 * The binder's operators (expr.h): arithmetic, comparison and logic with Flink's type
 * rules, IS, BETWEEN, IN, LIKE, CASE and CAST. The rest of the binder is in bind.c.
 */
#include <stdio.h>
#include <string.h>

#include "sql/bind_int.h"

/* ---------------------------------------------------------------------------------- */
/* Operators                                                                          */

static const char *op_name(int op) {
  static const char *const names[] = {"+",  "-", "*",  "/", "%",  "||",  "=",
                                      "<>", "<", "<=", ">", ">=", "AND", "OR"};
  return names[op];
}

static sql_x_t *bin_error(sql_binder_t *b, const ast_expr_t *e, sql_x_t *l, sql_x_t *r) {
  return sql_bind_error(b, e->pos, "cannot apply '%s' to %s and %s", op_name(e->op),
                        sql_describe_x(b, l), sql_describe_x(b, r));
}

static sql_x_t *node1(sql_binder_t *b, sql_x_fn fn, const sql_type_t *t, sql_x_t *a,
                      const char *text) {
  sql_x_t *x = sql_x_new(b->a, fn, t, 1);
  if (!x) return sql_bind_nomem(b);
  x->args[0] = a;
  x->text = text;
  x->is_const = a->is_const;
  return x;
}

static sql_x_t *node2(sql_binder_t *b, sql_x_fn fn, const sql_type_t *t, sql_x_t *l, sql_x_t *r,
                      const char *text) {
  sql_x_t *x = sql_x_new(b->a, fn, t, 2);
  if (!x) return sql_bind_nomem(b);
  x->args[0] = l;
  x->args[1] = r;
  x->text = text;
  x->is_const = l->is_const && r->is_const;
  return x;
}

/* Brings a comparison's operands to one type; string literals compared with a number or
 * a datetime are cast to it (as Calcite does), other mixes are errors. */
static bool unify_cmp(sql_binder_t *b, const ast_expr_t *e, sql_x_t **l, sql_x_t **r) {
  const sql_type_t *lt = (*l)->type, *rt = (*r)->type;
  if (sql_type_is_string(lt) && !sql_type_is_string(rt) && (*l)->is_const && rt->kind != T_NULL &&
      rt->kind != T_ROW) {
    *l = sql_x_cast(b->a, *l, sql_type_with_null(b->a, rt, false), false);
    return *l != NULL;
  }
  if (sql_type_is_string(rt) && !sql_type_is_string(lt) && (*r)->is_const && lt->kind != T_NULL &&
      lt->kind != T_ROW) {
    *r = sql_x_cast(b->a, *r, sql_type_with_null(b->a, lt, false), false);
    return *r != NULL;
  }
  if (!sql_comparable(lt, rt)) return false;
  const sql_type_t *ct = sql_common_type(b->a, lt, rt);
  if (!ct) return false;
  if (ct->kind == T_NULL) ct = &sql_t_boolean;
  /* compare CHAR with VARCHAR as VARCHAR */
  *l = sql_x_cast(b->a, *l, sql_type_with_null(b->a, ct, lt->not_null), false);
  *r = sql_x_cast(b->a, *r, sql_type_with_null(b->a, ct, rt->not_null), false);
  return *l && *r;
}

sql_x_t *sql_bind_binary(sql_binder_t *b, const ast_expr_t *e) {
  const char *text = sql_ast_text(b->a, b->src, e);
  sql_x_t *l = sql_bind(b, e->a);
  if (!l) return NULL;
  sql_x_t *r = sql_bind(b, e->b);
  if (!r) return NULL;
  const sql_type_t *lt = l->type, *rt = r->type;
  bool nn = lt->not_null && rt->not_null;
  switch (e->op) {
  case OP_AND:
  case OP_OR: {
    if (lt->kind != T_BOOLEAN && lt->kind != T_NULL) return bin_error(b, e, l, r);
    if (rt->kind != T_BOOLEAN && rt->kind != T_NULL) return bin_error(b, e, l, r);
    sql_x_t *x = node2(b, e->op == OP_AND ? sql_x_and_fn : sql_x_or_fn,
                       nn ? &sql_t_boolean_nn : &sql_t_boolean, l, r, text);
    if (x && e->op == OP_AND) x->xk = XK_AND;
    return x;
  }
  case OP_EQ:
  case OP_NE:
  case OP_LT:
  case OP_LE:
  case OP_GT:
  case OP_GE: {
    if (!unify_cmp(b, e, &l, &r)) {
      if (b->a->failed) return sql_bind_nomem(b);
      return bin_error(b, e, l, r);
    }
    sql_x_t *x =
        node2(b, sql_cmp_fn_for(l->type), nn ? &sql_t_boolean_nn : &sql_t_boolean, l, r, text);
    if (x) {
      x->iparam = e->op;
      x->xk = XK_CMP;
    }
    return x;
  }
  case OP_CONCAT: {
    if (lt->kind == T_NULL) lt = &sql_t_string;
    if (rt->kind == T_NULL) rt = &sql_t_string;
    if (!sql_type_is_string(lt) || !sql_type_is_string(rt)) return bin_error(b, e, l, r);
    l = sql_x_cast(b->a, l, sql_type_with_null(b->a, &sql_t_string, lt->not_null), false);
    r = sql_x_cast(b->a, r, sql_type_with_null(b->a, &sql_t_string, rt->not_null), false);
    if (!l || !r) return sql_bind_nomem(b);
    return node2(b, sql_x_concat2_fn, nn ? &sql_t_string_nn : &sql_t_string, l, r, text);
  }
  default: break;
  }
  /* arithmetic */
  if (lt->kind == T_NULL && rt->kind == T_NULL) return bin_error(b, e, l, r);
  if (lt->kind == T_NULL) lt = rt;
  if (rt->kind == T_NULL) rt = lt;
  bool ldt = sql_type_is_temporal(lt), rdt = sql_type_is_temporal(rt);
  bool liv = sql_type_is_interval(lt), riv = sql_type_is_interval(rt);
  if ((e->op == OP_ADD || e->op == OP_SUB) && ldt && riv) {
    if (lt->kind == T_TIME && rt->kind == T_INTERVAL_YM) return bin_error(b, e, l, r);
    sql_x_t *x = node2(b, sql_x_datetime_add_fn, sql_type_with_null(b->a, lt, nn), l, r, text);
    if (x) {
      x->iparam = e->op == OP_ADD ? 1 : -1;
      x->xk = XK_DTADD;
    }
    return x;
  }
  if (e->op == OP_ADD && liv && rdt) {
    sql_x_t *x = node2(b, sql_x_datetime_add_fn, sql_type_with_null(b->a, rt, nn), r, l, text);
    if (x) {
      x->iparam = 1;
      x->xk = XK_DTADD;
    }
    return x;
  }
  if ((e->op == OP_ADD || e->op == OP_SUB) && liv && riv && lt->kind == rt->kind) {
    sql_x_t *x = node2(b, sql_arith_fn_for(e->op, &sql_t_bigint), sql_type_with_null(b->a, lt, nn),
                       l, r, text);
    return x;
  }
  if ((e->op == OP_MUL || e->op == OP_DIV) && liv && sql_type_is_numeric(rt)) {
    sql_x_t *x = node2(b, sql_x_interval_scale_fn, sql_type_with_null(b->a, lt, nn), l, r, text);
    if (x) x->iparam = e->op;
    return x;
  }
  if (e->op == OP_MUL && riv && sql_type_is_numeric(lt)) {
    sql_x_t *x = node2(b, sql_x_interval_scale_fn, sql_type_with_null(b->a, rt, nn), r, l, text);
    if (x) x->iparam = e->op;
    return x;
  }
  const sql_type_t *res = sql_arith_type(b->a, op_name(e->op)[0], lt, rt);
  if (!res) return bin_error(b, e, l, r);
  if (res->kind != T_DECIMAL) {
    l = sql_x_cast(b->a, l, sql_type_with_null(b->a, res, l->type->not_null), false);
    r = sql_x_cast(b->a, r, sql_type_with_null(b->a, res, r->type->not_null), false);
  } else {
    /* decimal operators read each operand at its own scale: widen integers and NULLs to
     * their DECIMAL form */
    int p, s;
    if (l->type->kind != T_DECIMAL) {
      sql_type_decimal_of(lt, &p, &s);
      l = sql_x_cast(b->a, l, sql_type_decimal(b->a, p, s, l->type->not_null), false);
    }
    if (r->type->kind != T_DECIMAL) {
      sql_type_decimal_of(rt, &p, &s);
      r = sql_x_cast(b->a, r, sql_type_decimal(b->a, p, s, r->type->not_null), false);
    }
  }
  if (!l || !r) return sql_bind_nomem(b);
  /* DECIMAL results can overflow (to NULL) only when their precision was capped at 38 */
  const sql_type_t *rt2 = res->kind == T_DECIMAL && res->precision >= SQL_MAX_DECIMAL_PRECISION
                              ? sql_type_with_null(b->a, res, false)
                              : res;
  sql_x_t *x = node2(b, sql_arith_fn_for(e->op, res), rt2, l, r, text);
  if (x) x->iparam = e->op;
  return x;
}

sql_x_t *sql_bind_unary(sql_binder_t *b, const ast_expr_t *e) {
  const char *text = sql_ast_text(b->a, b->src, e);
  sql_x_t *a = sql_bind(b, e->a);
  if (!a) return NULL;
  if (e->op == '!') {
    if (a->type->kind != T_BOOLEAN && a->type->kind != T_NULL)
      return sql_bind_error(b, e->pos, "NOT needs a BOOLEAN, not %s", sql_describe_x(b, a));
    return node1(b, sql_x_not_fn, a->type->kind == T_NULL ? &sql_t_boolean : a->type, a, text);
  }
  if (!sql_type_is_numeric(a->type) && !sql_type_is_interval(a->type))
    return sql_bind_error(b, e->pos, "unary '%c' needs a number, not %s", e->op,
                          sql_describe_x(b, a));
  if (e->op == '+') return a;
  return node1(b, sql_x_neg_fn, a->type, a, text);
}

sql_x_t *sql_bind_is(sql_binder_t *b, const ast_expr_t *e) {
  sql_x_t *a = sql_bind(b, e->a);
  if (!a) return NULL;
  if (e->is_what && a->type->kind != T_BOOLEAN && a->type->kind != T_NULL)
    return sql_bind_error(b, e->pos, "IS TRUE/FALSE/UNKNOWN needs a BOOLEAN, not %s",
                          sql_describe_x(b, a));
  sql_x_t *x = node1(b, sql_x_is_fn, &sql_t_boolean_nn, a, sql_ast_text(b->a, b->src, e));
  if (x) {
    x->iparam = e->is_what;
    x->iparam2 = e->negated;
  }
  return x;
}

sql_x_t *sql_bind_distinct(sql_binder_t *b, const ast_expr_t *e) {
  sql_x_t *l = sql_bind(b, e->a), *r = l ? sql_bind(b, e->b) : NULL;
  if (!r) return NULL;
  if (!unify_cmp(b, e, &l, &r))
    return sql_bind_error(b, e->pos, "cannot compare %s with %s", sql_describe_x(b, l),
                          sql_describe_x(b, r));
  sql_x_t *x = node2(b, sql_x_distinct_fn, &sql_t_boolean_nn, l, r, sql_ast_text(b->a, b->src, e));
  if (x) x->iparam2 = e->negated;
  return x;
}

sql_x_t *sql_bind_between(sql_binder_t *b, const ast_expr_t *e) {
  /* a BETWEEN x AND y  ==  a >= x AND a <= y */
  const char *text = sql_ast_text(b->a, b->src, e);
  sql_x_t *a = sql_bind(b, e->a);
  if (!a) return NULL;
  sql_x_t *lo = sql_bind(b, e->b), *hi = lo ? sql_bind(b, e->c) : NULL;
  if (!hi) return NULL;
  sql_x_t *a1 = a, *a2 = a;
  if (!unify_cmp(b, e, &a1, &lo) || !unify_cmp(b, e, &a2, &hi))
    return sql_bind_error(b, e->pos, "BETWEEN cannot compare %s with %s and %s",
                          sql_describe_x(b, a), sql_describe_x(b, lo), sql_describe_x(b, hi));
  bool nn = a->type->not_null && lo->type->not_null && hi->type->not_null;
  const sql_type_t *bt = nn ? &sql_t_boolean_nn : &sql_t_boolean;
  sql_x_t *ge = node2(b, sql_cmp_fn_for(a1->type), bt, a1, lo, text);
  sql_x_t *le = node2(b, sql_cmp_fn_for(a2->type), bt, a2, hi, text);
  if (!ge || !le) return NULL;
  ge->iparam = e->negated ? OP_LT : OP_GE;
  le->iparam = e->negated ? OP_GT : OP_LE;
  ge->xk = le->xk = XK_CMP;
  sql_x_t *x = node2(b, e->negated ? sql_x_or_fn : sql_x_and_fn, bt, ge, le, text);
  if (x && !e->negated) x->xk = XK_AND;
  return x;
}

sql_x_t *sql_bind_in(sql_binder_t *b, const ast_expr_t *e) {
  sql_x_t *a = sql_bind(b, e->a);
  if (!a) return NULL;
  int n = (int)e->list.n;
  sql_x_t **items = sql_arena_alloc(b->a, sizeof(sql_x_t *) * (size_t)n);
  if (!items) return sql_bind_nomem(b);
  const sql_type_t *ct = a->type;
  for (int i = 0; i < n; i++) {
    items[i] = sql_bind(b, e->list.v[i]);
    if (!items[i]) return NULL;
    sql_x_t *l = a, *r = items[i];
    if (!unify_cmp(b, e, &l, &r))
      return sql_bind_error(b, ((ast_expr_t *)e->list.v[i])->pos,
                            "IN list element %s cannot be compared with %s",
                            sql_describe_x(b, items[i]), sql_describe_x(b, a));
    ct = sql_common_type(b->a, ct, r->type);
    if (!ct) ct = l->type;
  }
  sql_x_t *x = sql_x_new(b->a, sql_x_in_fn, &sql_t_boolean, n + 1);
  if (!x) return sql_bind_nomem(b);
  x->args[0] = sql_x_cast(b->a, a, sql_type_with_null(b->a, ct, a->type->not_null), false);
  bool is_const = a->is_const;
  for (int i = 0; i < n; i++) {
    x->args[i + 1] =
        sql_x_cast(b->a, items[i], sql_type_with_null(b->a, ct, items[i]->type->not_null), false);
    if (!x->args[i + 1]) return sql_bind_nomem(b);
    is_const = is_const && items[i]->is_const;
  }
  if (!x->args[0]) return sql_bind_nomem(b);
  x->iparam2 = e->negated;
  x->text = sql_ast_text(b->a, b->src, e);
  x->is_const = is_const;
  return x;
}

sql_x_t *sql_bind_like(sql_binder_t *b, const ast_expr_t *e) {
  if (e->similar) return sql_bind_error(b, e->pos, "SIMILAR TO is not supported; use REGEXP");
  sql_x_t *a = sql_bind(b, e->a), *p = a ? sql_bind(b, e->b) : NULL;
  if (!p) return NULL;
  sql_x_t *esc = NULL;
  if (e->c && !(esc = sql_bind(b, e->c))) return NULL;
  if (!sql_type_is_string(a->type) && a->type->kind != T_NULL)
    return sql_bind_error(b, e->pos, "LIKE needs a string, not %s", sql_describe_x(b, a));
  if (!sql_type_is_string(p->type) && p->type->kind != T_NULL)
    return sql_bind_error(b, e->pos, "a LIKE pattern must be a string, not %s",
                          sql_describe_x(b, p));
  sql_x_t *x = sql_x_new(b->a, sql_x_like_fn, &sql_t_boolean, esc ? 3 : 2);
  if (!x) return sql_bind_nomem(b);
  x->args[0] = sql_x_cast(b->a, a, &sql_t_string, false);
  x->args[1] = sql_x_cast(b->a, p, &sql_t_string, false);
  if (esc) x->args[2] = sql_x_cast(b->a, esc, &sql_t_string, false);
  x->iparam2 = e->negated;
  x->text = sql_ast_text(b->a, b->src, e);
  x->is_const = a->is_const && p->is_const;
  return x;
}

sql_x_t *sql_bind_case(sql_binder_t *b, const ast_expr_t *e) {
  int pairs = (int)e->list.n / 2;
  int n = pairs * 2 + (e->b ? 1 : 0);
  sql_x_t **args = sql_arena_alloc(b->a, sizeof(sql_x_t *) * (size_t)n);
  if (!args) return sql_bind_nomem(b);
  sql_x_t *operand = NULL;
  if (e->a && !(operand = sql_bind(b, e->a))) return NULL;
  const sql_type_t *rt = NULL;
  bool is_const = true;
  for (int i = 0; i < pairs; i++) {
    const ast_expr_t *w = e->list.v[2 * i], *t = e->list.v[2 * i + 1];
    sql_x_t *c = sql_bind(b, w);
    if (!c) return NULL;
    if (operand) {
      /* CASE x WHEN v: x = v */
      sql_x_t *l = operand, *r = c;
      if (!unify_cmp(b, w, &l, &r))
        return sql_bind_error(b, w->pos, "CASE operand %s cannot be compared with %s",
                              sql_describe_x(b, operand), sql_describe_x(b, c));
      c = node2(b, sql_cmp_fn_for(l->type), &sql_t_boolean, l, r, c->text);
      if (!c) return NULL;
      c->iparam = OP_EQ;
    } else if (c->type->kind != T_BOOLEAN && c->type->kind != T_NULL) {
      return sql_bind_error(b, w->pos, "WHEN condition %s is not a BOOLEAN", sql_describe_x(b, c));
    }
    sql_x_t *v = sql_bind(b, t);
    if (!v) return NULL;
    args[2 * i] = c;
    args[2 * i + 1] = v;
    is_const = is_const && c->is_const && v->is_const;
    if (!rt) {
      rt = v->type;
    } else {
      const sql_type_t *ct = sql_common_type(b->a, rt, v->type);
      if (!ct)
        return sql_bind_error(b, t->pos, "CASE branches have no common type: %s and %s",
                              sql_type_name(b->a, rt), sql_describe_x(b, v));
      rt = ct;
    }
  }
  if (e->b) {
    sql_x_t *v = sql_bind(b, e->b);
    if (!v) return NULL;
    args[n - 1] = v;
    is_const = is_const && v->is_const;
    const sql_type_t *ct = sql_common_type(b->a, rt, v->type);
    if (!ct)
      return sql_bind_error(b, e->b->pos, "CASE branches have no common type: %s and %s",
                            sql_type_name(b->a, rt), sql_describe_x(b, v));
    rt = ct;
  } else {
    rt = sql_type_with_null(b->a, rt, false);
  }
  if (rt->kind == T_NULL) rt = &sql_t_string;
  for (int i = 0; i < n; i++) {
    if (i < pairs * 2 && i % 2 == 0) continue;
    args[i] =
        sql_x_cast(b->a, args[i], sql_type_with_null(b->a, rt, args[i]->type->not_null), false);
    if (!args[i]) return sql_bind_nomem(b);
  }
  sql_x_t *x = sql_x_new(b->a, sql_x_case_fn, rt, 0);
  if (!x) return sql_bind_nomem(b);
  x->args = args;
  x->nargs = n;
  x->iparam = e->b != NULL;
  x->text = sql_ast_text(b->a, b->src, e);
  x->is_const = is_const;
  return x;
}

sql_x_t *sql_bind_cast(sql_binder_t *b, const ast_expr_t *e) {
  sql_x_t *a = sql_bind(b, e->a);
  if (!a) return NULL;
  if (!sql_cast_allowed(a->type, e->type)) {
    char tb[128];
    return sql_bind_error(b, e->pos, "cannot cast %s to %s", sql_describe_x(b, a),
                          sql_type_str(e->type, tb, sizeof tb));
  }
  const sql_type_t *to = sql_type_with_null(b->a, e->type, false);
  if (a->type->not_null && e->type->not_null) to = e->type;
  sql_x_t *x = sql_x_cast(b->a, a, to, e->try_cast);
  if (!x) return sql_bind_nomem(b);
  sql_x_t *c = sql_arena_alloc(b->a, sizeof *c);
  if (!c) return sql_bind_nomem(b);
  *c = *x;
  c->text = sql_ast_text(b->a, b->src, e);
  return c;
}
