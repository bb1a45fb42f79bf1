/*
 * The built-in function registry: lookup by name (case-insensitive) over the tables of
 * fn_math.c, fn_string.c, fn_time.c and fn_cond.c, the aggregate names, and helpers the
 * function binders share.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "sql/bind_int.h"

static const sql_fn_def_t *const tables[] = {sql_fns_math, sql_fns_string, sql_fns_time,
                                             sql_fns_cond};

static const char *const aggregate_names[] = {"COUNT",      "SUM",         "MIN",         "MAX",
                                              "AVG",        "STDDEV_POP",  "STDDEV_SAMP", "VAR_POP",
                                              "VAR_SAMP",   "FIRST_VALUE", "LAST_VALUE",  "SUM0",
                                              "ROW_NUMBER", "LISTAGG",     NULL};

const sql_fn_def_t *sql_fn_lookup(const char *name) {
  for (size_t t = 0; t < sizeof tables / sizeof *tables; t++)
    for (const sql_fn_def_t *d = tables[t]; d->name; d++)
      if (strcasecmp(d->name, name) == 0) return d;
  return NULL;
}

int sql_fn_names(const char **out, int cap) {
  int n = 0;
  for (size_t t = 0; t < sizeof tables / sizeof *tables; t++)
    for (const sql_fn_def_t *d = tables[t]; d->name && n < cap; d++) out[n++] = d->name;
  for (int i = 0; aggregate_names[i] && n < cap; i++) out[n++] = aggregate_names[i];
  return n;
}

bool sql_builtin_aggregate(const char *name) {
  for (int i = 0; aggregate_names[i]; i++)
    if (strcasecmp(aggregate_names[i], name) == 0) return true;
  return false;
}

sql_x_t *sql_fn_node(sql_binder_t *b, const ast_expr_t *call, sql_x_fn fn, const sql_type_t *t,
                     sql_x_t **args, int nargs) {
  sql_x_t *x = sql_x_new(b->a, fn, t, 0);
  if (!x) return sql_bind_nomem(b);
  x->args = args;
  x->nargs = nargs;
  x->text = sql_ast_text(b->a, b->src, call);
  bool c = true;
  for (int i = 0; i < nargs; i++) c = c && args[i]->is_const;
  x->is_const = c;
  return x;
}

int sql_fn_string_result(sql_eval_t *ev, sql_strbuf_t *sb, sql_val_t *out) {
  char *p = sb->failed ? NULL : sql_scratch_alloc(&ev->scratch, sb->n + 1);
  if (p && sb->n) memcpy(p, sb->p, sb->n);
  size_t n = sb->n;
  sql_sb_free(sb);
  if (!p) return FL_ENOMEM;
  out->s.p = p;
  out->s.n = n;
  return FL_OK;
}

bool sql_fn_args_not_null(sql_x_t **args, int nargs) {
  for (int i = 0; i < nargs; i++)
    if (!args[i]->type->not_null) return false;
  return true;
}

static const char *fname(const ast_expr_t *call) {
  switch (call->kind) {
  case AE_EXTRACT: return "EXTRACT";
  case AE_TRIM: return "TRIM";
  case AE_POSITION: return "POSITION";
  case AE_SUBSTRING: return "SUBSTRING";
  default: return call->name;
  }
}

bool sql_need_numeric(sql_binder_t *b, const ast_expr_t *call, sql_x_t *x, int i) {
  if (sql_type_is_numeric(x->type) || x->type->kind == T_NULL) return true;
  sql_bind_error(b, call->pos, "%s: argument %d must be a number, not %s", fname(call), i + 1,
                 sql_describe_x(b, x));
  return false;
}

/* Argument i, when is_kind(its type) or NULL, cast to `to` (keeping its nullability);
 * else an error that it must be `what`. */
static bool need_cast(sql_binder_t *b, const ast_expr_t *call, sql_x_t **x, int i,
                      bool (*is_kind)(const sql_type_t *), const sql_type_t *to, const char *what) {
  if (is_kind((*x)->type) || (*x)->type->kind == T_NULL) {
    *x = sql_x_cast(b->a, *x, sql_type_with_null(b->a, to, (*x)->type->not_null), false);
    if (!*x) sql_bind_nomem(b);
    return *x != NULL;
  }
  sql_bind_error(b, call->pos, "%s: argument %d must be %s, not %s", fname(call), i + 1, what,
                 sql_describe_x(b, *x));
  return false;
}

bool sql_need_string(sql_binder_t *b, const ast_expr_t *call, sql_x_t **x, int i) {
  return need_cast(b, call, x, i, sql_type_is_string, &sql_t_string, "a string");
}

bool sql_need_integer(sql_binder_t *b, const ast_expr_t *call, sql_x_t **x, int i) {
  return need_cast(b, call, x, i, sql_type_is_integer, &sql_t_bigint, "an integer");
}
