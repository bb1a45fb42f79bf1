/*
 * Conditional functions: COALESCE, IFNULL, NULLIF, IF, GREATEST, LEAST, IS_NULL-style
 * helpers. Arguments are brought to their common type, as Flink does.
 */
#include <string.h>

#include "sql/bind_int.h"

static int coalesce_fn(sql_eval_t *ev, const sql_x_t *x, sql_val_t *out) {
  for (int i = 0; i < x->nargs; i++) {
    int rc = sql_eval(ev, x->args[i], out);
    if (rc) return rc;
    if (!out->null) return FL_OK;
  }
  out->null = true;
  return FL_OK;
}

/* Casts every argument from `first` on to their common type; *t gets it. */
static bool common_args(sql_binder_t *b, const ast_expr_t *call, sql_x_t **args, int first, int n,
                        const sql_type_t **t) {
  const sql_type_t *ct = args[first]->type;
  for (int i = first + 1; i < n; i++) {
    const sql_type_t *c = sql_common_type(b->a, ct, args[i]->type);
    if (!c) {
      sql_bind_error(b, call->pos, "%s: arguments %s and %s have no common type", call->name,
                     sql_type_name(b->a, ct), sql_describe_x(b, args[i]));
      return false;
    }
    ct = c;
  }
  if (ct->kind == T_NULL) ct = &sql_t_string;
  for (int i = first; i < n; i++) {
    args[i] =
        sql_x_cast(b->a, args[i], sql_type_with_null(b->a, ct, args[i]->type->not_null), false);
    if (!args[i]) {
      sql_bind_nomem(b);
      return false;
    }
  }
  *t = ct;
  return true;
}

static sql_x_t *bind_coalesce(sql_binder_t *b, const ast_expr_t *call, sql_x_t **args, int n,
                              int which) {
  const sql_type_t *t;
  if (!common_args(b, call, args, 0, n, &t)) return NULL;
  bool nn = false;
  for (int i = 0; i < n; i++) nn = nn || args[i]->type->not_null;
  return sql_fn_node(b, call, coalesce_fn, sql_type_with_null(b->a, t, nn), args, n);
}

static int nullif_fn(sql_eval_t *ev, const sql_x_t *x, sql_val_t *out) {
  sql_val_t b;
  int rc = sql_eval(ev, x->args[0], out);
  if (rc || out->null) return rc;
  if ((rc = sql_eval(ev, x->args[1], &b))) return rc;
  if (!b.null && sql_val_cmp(x->type, out, &b) == 0) out->null = true;
  return FL_OK;
}

static sql_x_t *bind_nullif(sql_binder_t *b, const ast_expr_t *call, sql_x_t **args, int n,
                            int which) {
  const sql_type_t *t;
  if (!common_args(b, call, args, 0, n, &t)) return NULL;
  return sql_fn_node(b, call, nullif_fn, sql_type_with_null(b->a, t, false), args, n);
}

static int if_fn(sql_eval_t *ev, const sql_x_t *x, sql_val_t *out) {
  sql_val_t c;
  int rc = sql_eval(ev, x->args[0], &c);
  if (rc) return rc;
  return sql_eval(ev, x->args[!c.null && c.i ? 1 : 2], out);
}

static sql_x_t *bind_if(sql_binder_t *b, const ast_expr_t *call, sql_x_t **args, int n, int which) {
  if (args[0]->type->kind != T_BOOLEAN && args[0]->type->kind != T_NULL)
    return sql_bind_error(b, call->pos, "IF: the condition must be a BOOLEAN, not %s",
                          sql_describe_x(b, args[0]));
  const sql_type_t *t;
  if (!common_args(b, call, args, 1, n, &t)) return NULL;
  bool nn = args[1]->type->not_null && args[2]->type->not_null;
  return sql_fn_node(b, call, if_fn, sql_type_with_null(b->a, t, nn), args, n);
}

/* GREATEST / LEAST: NULL when any argument is NULL (Flink's behaviour). iparam: +1 max. */
static int extreme_fn(sql_eval_t *ev, const sql_x_t *x, sql_val_t *out) {
  for (int i = 0; i < x->nargs; i++) {
    sql_val_t v;
    int rc = sql_eval(ev, x->args[i], &v);
    if (rc) return rc;
    if (v.null) {
      out->null = true;
      return FL_OK;
    }
    if (i == 0 || sql_val_cmp(x->type, &v, out) * x->iparam > 0) *out = v;
  }
  return FL_OK;
}

/* which: 1 GREATEST, -1 LEAST. */
static sql_x_t *bind_extreme(sql_binder_t *b, const ast_expr_t *call, sql_x_t **args, int n,
                             int which) {
  const sql_type_t *t;
  if (!common_args(b, call, args, 0, n, &t)) return NULL;
  if (t->kind == T_ROW || t->kind == T_BOOLEAN)
    return sql_bind_error(b, call->pos, "%s cannot compare values of type %s", call->name,
                          sql_type_name(b->a, t));
  sql_x_t *x = sql_fn_node(b, call, extreme_fn,
                           sql_type_with_null(b->a, t, sql_fn_args_not_null(args, n)), args, n);
  if (x) x->iparam = which;
  return x;
}

/* TYPEOF(x): the type's name, known at compile time. */
static sql_x_t *bind_typeof(sql_binder_t *b, const ast_expr_t *call, sql_x_t **args, int n,
                            int which) {
  sql_val_t v = {0};
  v.s.p = sql_type_name(b->a, args[0]->type);
  v.s.n = strlen(v.s.p);
  sql_x_t *x = sql_x_const(b->a, &sql_t_string_nn, &v);
  return x ? x : sql_bind_nomem(b);
}

const sql_fn_def_t sql_fns_cond[] = {
    {"COALESCE", bind_coalesce, 1, -1, 0}, {"IFNULL", bind_coalesce, 2, 2, 0},
    {"NULLIF", bind_nullif, 2, 2, 0},      {"IF", bind_if, 3, 3, 0},
    {"GREATEST", bind_extreme, 1, -1, 1},  {"LEAST", bind_extreme, 1, -1, -1},
    {"TYPEOF", bind_typeof, 1, 2, 0},      {NULL, NULL, 0, 0, 0}};
