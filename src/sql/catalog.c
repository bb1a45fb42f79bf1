/*
 * The catalog (catalog.h): tables, views and user functions, and the checks of CREATE
 * TABLE: computed columns are typed by binding their expressions against the physical
 * and metadata columns, the WATERMARK must name a TIMESTAMP(3) or TIMESTAMP_LTZ(3) column
 * and be of the forms Flink's bounded-delay strategy covers, and the primary key must
 * name columns.
 */
#include "sql/catalog.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "sql/bind_int.h"

static sql_table_t *table_at(const sql_catalog_t *c, size_t i) { return c->tables.v[i]; }
static sql_udf_t *udf_at(const sql_catalog_t *c, size_t i) { return c->udfs.v[i]; }

const sql_table_t *sql_catalog_find(const sql_catalog_t *c, const char *name) {
  for (size_t i = c->tables.n; i-- > 0;)
    if (strcmp(table_at(c, i)->name, name) == 0) return table_at(c, i);
  /* default_catalog.default_database.t is t */
  const char *dot = strrchr(name, '.');
  if (dot &&
      (strncmp(name, "default_catalog.", 16) == 0 || strncmp(name, "default_database.", 17) == 0))
    return sql_catalog_find(c, dot + 1);
  return NULL;
}

int sql_catalog_add(sql_catalog_t *c, sql_table_t *t) {
  return sql_ptrvec_push(c->a, &c->tables, t);
}

int sql_catalog_drop(sql_catalog_t *c, const char *name) {
  for (size_t i = 0; i < c->tables.n; i++) {
    if (strcmp(table_at(c, i)->name, name) == 0) {
      memmove(c->tables.v + i, c->tables.v + i + 1, (c->tables.n - i - 1) * sizeof *c->tables.v);
      c->tables.n--;
      return FL_OK;
    }
  }
  return FL_ENOTFOUND;
}

size_t sql_catalog_mark(const sql_catalog_t *c) { return c->tables.n; }

void sql_catalog_rollback(sql_catalog_t *c, size_t mark, sql_table_t **dropped, size_t ndropped) {
  if (c->tables.n > mark) c->tables.n = mark;
  for (size_t i = 0; i < ndropped; i++) sql_catalog_add(c, dropped[i]);
}

int sql_catalog_names(const sql_catalog_t *c, const char **out, int cap) {
  int n = 0;
  for (size_t i = 0; i < c->tables.n && n < cap; i++) out[n++] = table_at(c, i)->name;
  return n;
}

int sql_catalog_udf_names(const sql_catalog_t *c, const char **out, int cap) {
  int n = 0;
  for (size_t i = 0; i < c->udfs.n && n < cap; i++) out[n++] = udf_at(c, i)->name;
  return n;
}

const sql_udf_t *sql_catalog_udf(const sql_catalog_t *c, const char *name) {
  for (size_t i = 0; i < c->udfs.n; i++)
    if (strcasecmp(udf_at(c, i)->name, name) == 0) return udf_at(c, i);
  return NULL;
}

int sql_catalog_add_udf(sql_catalog_t *c, sql_udf_t *u) {
  return sql_ptrvec_push(c->a, &c->udfs, u);
}

const char *sql_table_option(const sql_table_t *t, const char *key) {
  for (int i = 0; i < t->nopts; i++)
    if (strcmp(t->opts[i].key, key) == 0) return t->opts[i].value;
  return NULL;
}

bool sql_is_aggregate_call(const sql_catalog_t *cat, const ast_expr_t *e) {
  if (e->kind != AE_CALL || !e->name) return false;
  if (sql_builtin_aggregate(e->name)) return true;
  const sql_udf_t *u = cat ? sql_catalog_udf(cat, e->name) : NULL;
  return u && u->aggregate;
}

/* ---------------------------------------------------------------------------------- */
/* User scalar functions                                                              */

static int to_public(const sql_type_t *t, const sql_val_t *v, fl_sql_value_t *o) {
  memset(o, 0, sizeof *o);
  o->is_null = v->null;
  if (v->null) return FL_OK;
  switch (t->kind) {
  case T_FLOAT:
  case T_DOUBLE: o->d = v->d; break;
  case T_DECIMAL: o->i = (int64_t)v->dec; break;
  case T_CHAR:
  case T_VARCHAR:
  case T_BINARY:
  case T_VARBINARY:
  case T_ROW:
    o->s = v->s.p;
    o->len = v->s.n;
    break;
  default: o->i = v->i; break;
  }
  return FL_OK;
}

int sql_value_from_public(sql_eval_t *ev, const sql_type_t *t, const fl_sql_value_t *o,
                          sql_val_t *v) {
  v->null = o->is_null != 0;
  if (v->null) {
    v->dec = 0;
    return FL_OK;
  }
  switch (t->kind) {
  case T_FLOAT:
  case T_DOUBLE: v->d = o->d; break;
  case T_DECIMAL: v->dec = o->i; break;
  case T_CHAR:
  case T_VARCHAR:
  case T_BINARY:
  case T_VARBINARY:
  case T_ROW: {
    char *p = sql_scratch_alloc(&ev->scratch, o->len + 1);
    if (!p) return FL_ENOMEM;
    if (o->len) memcpy(p, o->s, o->len);
    v->s.p = p;
    v->s.n = o->len;
    break;
  }
  default: v->i = o->i; break;
  }
  return FL_OK;
}

int sql_values_to_public(const sql_type_t *const *types, const sql_val_t *vals, int n,
                         fl_sql_value_t *out) {
  for (int i = 0; i < n; i++) to_public(types[i], &vals[i], &out[i]);
  return FL_OK;
}

static int udf_fn(sql_eval_t *ev, const sql_x_t *x, sql_val_t *out) {
  const sql_udf_t *u = x->aux;
  fl_sql_value_t args[32], res;
  for (int i = 0; i < x->nargs; i++) {
    sql_val_t v;
    int rc = sql_eval(ev, x->args[i], &v);
    if (rc) return rc;
    if (v.null && !u->call_on_null) {
      out->null = true;
      out->dec = 0;
      return FL_OK;
    }
    to_public(x->args[i]->type, &v, &args[i]);
  }
  memset(&res, 0, sizeof res);
  int rc = u->fn(ev->ctx, args, (size_t)x->nargs, &res, u->opaque);
  if (rc < 0)
    return sql_eval_fail(ev, x, rc, "user function %s failed (%s)", u->name, fl_strerror(rc));
  return sql_value_from_public(ev, x->type, &res, out);
}

sql_x_t *sql_catalog_bind_udf(sql_binder_t *b, const ast_expr_t *call, const char *name,
                              sql_x_t **args, int nargs) {
  const sql_udf_t *u = sql_catalog_udf(b->cat, name);
  if (!u || u->aggregate) return NULL;
  if (nargs != u->nargs)
    return sql_bind_error(b, call->pos, "%s takes %d argument%s, not %d", u->name, u->nargs,
                          u->nargs == 1 ? "" : "s", nargs);
  for (int i = 0; i < nargs; i++) {
    char what[64];
    snprintf(what, sizeof what, "argument %d of %s", i + 1, u->name);
    args[i] = sql_coerce(b, args[i], u->arg_types[i], ((ast_expr_t *)call->list.v[i])->pos, what);
    if (!args[i]) return NULL;
  }
  sql_x_t *x = sql_fn_node(b, call, udf_fn, sql_type_with_null(b->a, u->ret, false), args, nargs);
  if (!x) return NULL;
  x->aux = (void *)u;
  x->is_const = false; /* user functions may depend on anything */
  return x;
}

/* ---------------------------------------------------------------------------------- */
/* CREATE TABLE                                                                       */

static void *terr(char *err, size_t n, sql_pos_t pos, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 4, 5)))
#endif
    ;
static void *terr(char *err, size_t n, sql_pos_t pos, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  sql_verror_at(err, n, pos, fmt, ap);
  va_end(ap);
  return NULL;
}

static bool is_proctime_call(const ast_expr_t *e) {
  return e && e->kind == AE_CALL && strcasecmp(e->name, "PROCTIME") == 0 && e->list.n == 0;
}

/* Binds e, an expression of a CREATE TABLE (in src) over the columns scope[0..ns);
 * clause names it in messages. */
static sql_x_t *bind_in_table(sql_catalog_t *c, const char *src, sql_scope_col_t *scope, int ns,
                              const char *clause, const ast_expr_t *e, char *err, size_t err_size) {
  sql_binder_t b = {.a = c->a,
                    .src = src,
                    .cols = scope,
                    .ncols = ns,
                    .cat = c,
                    .sess = &c->sess,
                    .clause = clause,
                    .err = err,
                    .err_size = err_size};
  err[0] = 0;
  return sql_bind(&b, e);
}

sql_table_t *sql_table_from_ast(sql_catalog_t *c, const ast_create_table_t *ct, const char *src,
                                char *err, size_t err_size) {
  sql_arena_t *a = c->a;
  sql_table_t *t = sql_arena_alloc(a, sizeof *t);
  if (!t) return NULL;
  t->name = ct->name;
  t->src = src;
  t->ncols = (int)ct->columns.n;
  t->cols = sql_arena_alloc(a, sizeof(sql_column_t) * (size_t)(t->ncols ? t->ncols : 1));
  if (!t->cols) return NULL;
  t->rowtime = -1;
  /* physical and metadata columns first: computed ones may refer to them */
  sql_scope_col_t *scope = sql_arena_alloc(a, sizeof(sql_scope_col_t) * (size_t)(t->ncols + 1));
  if (!scope) return NULL;
  int ns = 0;
  for (int i = 0; i < t->ncols; i++) {
    const ast_column_t *ac = ct->columns.v[i];
    sql_column_t *col = &t->cols[i];
    col->name = ac->name;
    col->pos = ac->pos;
    col->kind = ac->kind == COL_COMPUTED   ? SQL_COL_COMPUTED
                : ac->kind == COL_METADATA ? SQL_COL_METADATA
                                           : SQL_COL_PHYSICAL;
    col->type = ac->type;
    col->expr = ac->expr;
    col->meta_key = ac->meta_key ? ac->meta_key : ac->name;
    col->is_virtual = ac->is_virtual;
    if (ac->kind != COL_COMPUTED) {
      scope[ns].name = ac->name;
      scope[ns].type = ac->type;
      scope[ns].input = 0;
      scope[ns].col = i;
      ns++;
    }
  }
  for (int i = 0; i < t->ncols; i++) {
    sql_column_t *col = &t->cols[i];
    if (col->kind != SQL_COL_COMPUTED) continue;
    if (is_proctime_call(col->expr)) {
      col->proctime = true;
      col->type = &sql_t_timestamp_ltz3_nn;
      continue;
    }
    sql_x_t *x = bind_in_table(c, src, scope, ns, "a computed column", col->expr, err, err_size);
    if (!x) return NULL;
    col->type = x->type->kind == T_NULL ? &sql_t_string : x->type;
  }
  /* WATERMARK */
  if (ct->wm_column) {
    int idx = -1;
    for (int i = 0; i < t->ncols; i++)
      if (strcmp(t->cols[i].name, ct->wm_column) == 0) idx = i;
    if (idx < 0)
      return terr(err, err_size, ct->wm_pos, "WATERMARK FOR '%s': no such column", ct->wm_column);
    const sql_type_t *ty = t->cols[idx].type;
    if (ty->kind != T_TIMESTAMP && ty->kind != T_TIMESTAMP_LTZ)
      return terr(err, err_size, ct->wm_pos,
                  "the WATERMARK column '%s' must be TIMESTAMP(3) or TIMESTAMP_LTZ(3), not %s",
                  ct->wm_column, sql_type_name(a, ty));
    if (t->cols[idx].proctime)
      return terr(err, err_size, ct->wm_pos,
                  "WATERMARK FOR '%s': a processing-time column has no watermark", ct->wm_column);
    t->rowtime = idx;
    const ast_expr_t *e = ct->wm_expr;
    if (e->kind == AE_CALL && strcasecmp(e->name, "SOURCE_WATERMARK") == 0 && e->list.n == 0) {
      t->wm = SQL_WM_SOURCE;
    } else if (e->kind == AE_IDENT && e->n_parts == 1 && strcmp(e->parts[0], ct->wm_column) == 0) {
      t->wm = SQL_WM_BOUNDED;
      t->wm_delay_ms = 0;
    } else if (e->kind == AE_BINARY && e->op == OP_SUB && e->a->kind == AE_IDENT &&
               e->a->n_parts == 1 && strcmp(e->a->parts[0], ct->wm_column) == 0) {
      sql_x_t *d = bind_in_table(c, src, scope, 0, "a WATERMARK", e->b, err, err_size);
      if (!d) return NULL;
      sql_val_t v;
      if (d->type->kind != T_INTERVAL_DT || !d->is_const ||
          sql_eval_const(d, &c->sess, &v, err, err_size) != FL_OK || v.null || v.i < 0)
        return terr(
            err, err_size, e->b->pos,
            "the WATERMARK delay must be a constant, non-negative INTERVAL such as INTERVAL '5' SECOND");
      t->wm = SQL_WM_BOUNDED;
      t->wm_delay_ms = v.i;
    } else {
      return terr(
          err, err_size, e->pos,
          "unsupported WATERMARK expression: use '%s', '%s - INTERVAL ...' or SOURCE_WATERMARK()",
          ct->wm_column, ct->wm_column);
    }
  }
  /* PRIMARY KEY */
  t->npk = (int)ct->pk.n;
  if (t->npk) {
    t->pk = sql_arena_alloc(a, sizeof(int) * (size_t)t->npk);
    if (!t->pk) return NULL;
    for (int k = 0; k < t->npk; k++) {
      const char *n = ct->pk.v[k];
      int idx = -1;
      for (int i = 0; i < t->ncols; i++)
        if (strcmp(t->cols[i].name, n) == 0) idx = i;
      if (idx < 0)
        return terr(err, err_size, ct->pk_pos, "PRIMARY KEY column '%s' does not exist", n);
      if (t->cols[idx].kind != SQL_COL_PHYSICAL)
        return terr(err, err_size, ct->pk_pos, "PRIMARY KEY column '%s' must be a physical column",
                    n);
      t->pk[k] = idx;
      t->cols[idx].type = sql_type_with_null(a, t->cols[idx].type, true);
    }
  }
  /* options */
  t->nopts = (int)ct->options.n;
  t->opts = sql_arena_alloc(a, sizeof(sql_option_t) * (size_t)(t->nopts ? t->nopts : 1));
  if (!t->opts) return NULL;
  for (int i = 0; i < t->nopts; i++) {
    const ast_option_t *o = ct->options.v[i];
    t->opts[i].key = o->key;
    t->opts[i].value = o->value;
    t->opts[i].pos = o->pos;
  }
  t->connector = sql_table_option(t, "connector");
  return t;
}
