/*
 * The binder (expr.h): resolves the names of an expression against the columns in
 * scope, checks and converts types as Flink does, and compiles the result into
 * evaluator nodes. Constant subexpressions are folded here, once.
 *
 * Errors name the line and column, and the expression: an unknown column or function
 * with the nearest known name, an ambiguous column with its candidates, an operator with
 * the types it was given.
 */
#include <ctype.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "sql/bind_int.h"
#include "sql/catalog.h"

void *sql_bind_error(sql_binder_t *b, sql_pos_t pos, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  sql_verror_at(b->err, b->err_size, pos, fmt, ap);
  va_end(ap);
  return NULL;
}

void *sql_bind_nomem(sql_binder_t *b) {
  snprintf(b->err, b->err_size, "out of memory compiling SQL");
  return NULL;
}

const char *sql_ast_text(sql_arena_t *a, const char *src, const ast_expr_t *e) {
  if (!src || e->src_to <= e->src_from) return "?";
  size_t n = e->src_to - e->src_from;
  if (n > 200) {
    char *t = sql_arena_strndup(a, src + e->src_from, 197);
    return t ? sql_arena_printf(a, "%s...", t) : "?";
  }
  const char *t = sql_arena_strndup(a, src + e->src_from, n);
  return t ? t : "?";
}

const char *sql_describe_x(sql_binder_t *b, const sql_x_t *x) {
  char tb[160];
  sql_type_str(x->type, tb, sizeof tb);
  const char *d = sql_arena_printf(b->a, "'%s' (%s)", x->text ? x->text : "?", tb);
  return d ? d : "?";
}

/* Case-insensitive Levenshtein distance, bounded by the lengths (names are short). */
static int edit_distance(const char *a, const char *b) {
  size_t n = strlen(a), m = strlen(b);
  if (n > 64 || m > 64) return 99;
  int prev[65], cur[65];
  for (size_t j = 0; j <= m; j++) prev[j] = (int)j;
  for (size_t i = 1; i <= n; i++) {
    cur[0] = (int)i;
    for (size_t j = 1; j <= m; j++) {
      int cost = tolower((unsigned char)a[i - 1]) != tolower((unsigned char)b[j - 1]);
      int v = prev[j - 1] + cost;
      if (prev[j] + 1 < v) v = prev[j] + 1;
      if (cur[j - 1] + 1 < v) v = cur[j - 1] + 1;
      cur[j] = v;
    }
    memcpy(prev, cur, sizeof(int) * (m + 1));
  }
  return prev[m];
}

const char *sql_nearest(const char *name, const char *const *names, int n) {
  const char *best = NULL;
  int bd = 99;
  for (int i = 0; i < n; i++) {
    int d = edit_distance(name, names[i]);
    if (d < bd) {
      bd = d;
      best = names[i];
    }
  }
  int len = (int)strlen(name);
  int limit = len <= 3 ? 1 : len <= 6 ? 2 : 3;
  return bd <= limit ? best : NULL;
}

/* ---------------------------------------------------------------------------------- */
/* AST equality (GROUP BY matching)                                                   */

bool sql_ast_equal(const ast_expr_t *x, const ast_expr_t *y) {
  if (x == y) return true;
  if (!x || !y || x->kind != y->kind) return false;
  if (x->op != y->op || x->negated != y->negated || x->is_what != y->is_what ||
      x->unit != y->unit || x->unit2 != y->unit2 || x->bval != y->bval ||
      x->distinct != y->distinct || x->star_arg != y->star_arg || x->try_cast != y->try_cast ||
      x->trim_mode != y->trim_mode || x->sign != y->sign)
    return false;
  if ((x->text == NULL) != (y->text == NULL)) return false;
  if (x->text && strcmp(x->text, y->text) != 0) return false;
  if ((x->name == NULL) != (y->name == NULL)) return false;
  if (x->name && strcasecmp(x->name, y->name) != 0) return false;
  if (x->n_parts != y->n_parts) return false;
  for (int i = 0; i < x->n_parts; i++)
    if (strcmp(x->parts[i], y->parts[i]) != 0) return false;
  if ((x->type == NULL) != (y->type == NULL)) return false;
  if (x->type && !sql_type_equal(x->type, y->type, false)) return false;
  if (!sql_ast_equal(x->a, y->a) || !sql_ast_equal(x->b, y->b) || !sql_ast_equal(x->c, y->c))
    return false;
  if (!sql_ast_equal(x->filter, y->filter)) return false;
  if ((x->over == NULL) != (y->over == NULL)) return false;
  if (x->list.n != y->list.n) return false;
  for (size_t i = 0; i < x->list.n; i++)
    if (!sql_ast_equal(x->list.v[i], y->list.v[i])) return false;
  return true;
}

/* ---------------------------------------------------------------------------------- */
/* Conversions                                                                        */

sql_x_t *sql_coerce(sql_binder_t *b, sql_x_t *x, const sql_type_t *to, sql_pos_t pos,
                    const char *what) {
  if (sql_type_equal(x->type, to, true)) return x;
  if (!sql_implicit_allowed(x->type, to)) {
    char tb[128];
    return sql_bind_error(b, pos, "%s %s cannot be used as %s without a CAST", what,
                          sql_describe_x(b, x), sql_type_str(to, tb, sizeof tb));
  }
  sql_x_t *c = sql_x_cast(b->a, x, to, false);
  if (!c) return sql_bind_nomem(b);
  return c;
}

sql_x_t *sql_bind_as(sql_binder_t *b, const ast_expr_t *e, const sql_type_t *to, const char *what) {
  sql_x_t *x = sql_bind(b, e);
  if (!x) return NULL;
  return sql_coerce(b, x, to, e->pos, what);
}

/* ---------------------------------------------------------------------------------- */
/* Constant folding                                                                   */

int sql_eval_const(const sql_x_t *x, const sql_session_t *sess, sql_val_t *out, char *err,
                   size_t err_size) {
  sql_eval_t ev;
  sql_eval_init(&ev, sess);
  static const uint8_t empty_row[2] = {0, 0};
  ev.rows[0] = ev.rows[1] = empty_row;
  int rc = sql_eval(&ev, x, out);
  if (rc && err_size) snprintf(err, err_size, "%s", ev.err);
  /* strings point into the scratch memory: the caller copies them before it goes */
  if (rc == FL_OK && !out->null &&
      (sql_type_is_string(x->type) || sql_type_is_binary(x->type) || x->type->kind == T_ROW)) {
    char *copy = malloc(out->s.n + 1);
    if (!copy) {
      rc = FL_ENOMEM;
    } else {
      memcpy(copy, out->s.p, out->s.n);
      copy[out->s.n] = 0;
      out->s.p = copy; /* the caller frees: see fold() */
    }
  }
  sql_eval_free(&ev);
  return rc;
}

static sql_x_t *fold(sql_binder_t *b, sql_x_t *x) {
  if (!x->is_const || x->fn == sql_x_const_fn) return x;
  sql_val_t v;
  char err[256];
  int rc = sql_eval_const(x, b->sess, &v, err, sizeof err);
  if (rc != FL_OK) return x; /* fails at run time, with the row's context */
  bool var = !v.null &&
             (sql_type_is_string(x->type) || sql_type_is_binary(x->type) || x->type->kind == T_ROW);
  if (var) {
    char *copy = sql_arena_strndup(b->a, v.s.p, v.s.n);
    free((void *)v.s.p);
    if (!copy) return sql_bind_nomem(b);
    v.s.p = copy;
  }
  sql_x_t *c = sql_x_const(b->a, x->type, &v);
  if (!c) return sql_bind_nomem(b);
  c->text = x->text;
  return c;
}

/* ---------------------------------------------------------------------------------- */
/* Leaves                                                                             */

static sql_x_t *bind_number(sql_binder_t *b, const ast_expr_t *e) {
  sql_val_t v = {0};
  const char *t = e->text;
  if (e->num_kind == NUM_FLOAT) {
    v.d = strtod(t, NULL);
    return sql_x_const(b->a, &sql_t_double_nn, &v);
  }
  if (e->num_kind == NUM_INT) {
    char *end;
    long long ll = strtoll(t, &end, 10);
    bool overflow = (ll == LLONG_MAX || ll == LLONG_MIN) && strlen(t) >= 19;
    if (!overflow || (ll == LLONG_MIN && strcmp(t, "-9223372036854775808") == 0) ||
        (ll == LLONG_MAX && strcmp(t, "9223372036854775807") == 0)) {
      v.i = ll;
      const sql_type_t *ty =
          (ll >= INT32_MIN && ll <= INT32_MAX) ? &sql_t_int_nn : &sql_t_bigint_nn;
      return sql_x_const(b->a, ty, &v);
    }
  }
  /* DECIMAL(p, s) from the digits */
  const char *dot = strchr(t, '.');
  int scale = dot ? (int)strlen(dot + 1) : 0;
  int digits = 0;
  bool leading = true;
  for (const char *q = t; *q; q++) {
    if (*q >= '0' && *q <= '9') {
      if (*q != '0') leading = false;
      if (!leading || (dot && q > dot)) digits++;
    }
  }
  int prec = digits > scale ? digits : scale;
  if (prec < 1) prec = 1;
  if (prec > SQL_MAX_DECIMAL_PRECISION)
    return sql_bind_error(b, e->pos, "numeric literal %s has more than 38 digits", t);
  const sql_type_t *ty = sql_type_decimal(b->a, prec, scale, true);
  if (!ty) return sql_bind_nomem(b);
  const char *why;
  if (sql_parse_value(t, strlen(t), ty, b->sess, &v, &why) != FL_OK)
    return sql_bind_error(b, e->pos, "numeric literal %s: %s", t, why);
  return sql_x_const(b->a, ty, &v);
}

int64_t sql_unit_ms(int u) {
  switch (u) {
  case UNIT_MILLISECOND: return 1;
  case UNIT_SECOND: return 1000;
  case UNIT_MINUTE: return 60000;
  case UNIT_HOUR: return 3600000;
  case UNIT_DAY: return 86400000;
  case UNIT_WEEK: return 7 * 86400000LL;
  default: return 0;
  }
}

/* INTERVAL 'text' unit [TO unit2]: day-time intervals in ms, year-month in months. */
static sql_x_t *bind_interval(sql_binder_t *b, const ast_expr_t *e) {
  sql_val_t v = {0};
  const char *s = e->text;
  int sign = e->sign;
  while (*s == ' ') s++;
  if (*s == '-') {
    sign = -sign;
    s++;
  } else if (*s == '+') {
    s++;
  }
  ast_time_unit_t u = e->unit, u2 = e->unit2 ? e->unit2 : e->unit;
  if (u == UNIT_YEAR || u == UNIT_MONTH || u == UNIT_QUARTER) {
    long y = 0, m = 0;
    char extra;
    if (u == UNIT_YEAR && u2 == UNIT_MONTH) {
      if (sscanf(s, "%ld-%ld%c", &y, &m, &extra) != 2 || m > 11)
        return sql_bind_error(b, e->pos, "interval value '%s' is not 'years-months'", e->text);
    } else if (u == UNIT_YEAR) {
      if (sscanf(s, "%ld%c", &y, &extra) != 1)
        return sql_bind_error(b, e->pos, "interval value '%s' is not a number of years", e->text);
    } else {
      if (sscanf(s, "%ld%c", &m, &extra) != 1)
        return sql_bind_error(b, e->pos, "interval value '%s' is not a whole number", e->text);
      if (u == UNIT_QUARTER) m *= 3;
    }
    v.i = sign * (y * 12 + m);
    sql_x_t *x = sql_x_const(b->a, &sql_t_interval_ym, &v);
    if (x) x->type = sql_type_with_null(b->a, &sql_t_interval_ym, true);
    return x;
  }
  if (!sql_unit_ms(u))
    return sql_bind_error(b, e->pos, "unit of interval '%s' is not a duration", e->text);
  /* fields from the first unit down to the second: d hh:mm:ss.fff */
  static const ast_time_unit_t order[] = {UNIT_DAY, UNIT_HOUR, UNIT_MINUTE, UNIT_SECOND};
  int first = -1, last = -1;
  for (int i = 0; i < 4; i++) {
    if (order[i] == u) first = i;
    if (order[i] == u2) last = i;
  }
  double total = 0;
  if (first < 0 || last < 0 || u == u2) {
    char *end;
    double d = strtod(s, &end);
    while (*end == ' ') end++;
    if (end == s || *end)
      return sql_bind_error(b, e->pos, "interval value '%s' is not a number", e->text);
    total = d * (double)sql_unit_ms(u);
  } else {
    const char *q = s;
    for (int i = first; i <= last; i++) {
      char *end;
      double d = strtod(q, &end);
      if (end == q)
        return sql_bind_error(b, e->pos, "interval value '%s' does not match its units", e->text);
      total += d * (double)sql_unit_ms(order[i]);
      q = end;
      if (i < last) {
        char sep = i == 0 ? ' ' : ':';
        if (*q != sep)
          return sql_bind_error(b, e->pos, "interval value '%s' does not match its units", e->text);
        q++;
      }
    }
    if (*q)
      return sql_bind_error(b, e->pos, "interval value '%s' does not match its units", e->text);
  }
  v.i = sign * (int64_t)(total + (total >= 0 ? 0.5 : -0.5));
  return sql_x_const(b->a, sql_type_with_null(b->a, &sql_t_interval_dt, true), &v);
}

static sql_x_t *bind_string(sql_binder_t *b, const ast_expr_t *e) {
  sql_val_t v = {0};
  v.s.p = e->text;
  v.s.n = e->text_len;
  int chars = 0;
  for (size_t i = 0; i < e->text_len; i++)
    if (((unsigned char)e->text[i] & 0xC0) != 0x80) chars++;
  sql_type_t *t = sql_arena_alloc(b->a, sizeof *t);
  if (!t) return sql_bind_nomem(b);
  t->kind = chars ? T_CHAR : T_VARCHAR;
  t->precision = chars ? chars : SQL_MAX_LENGTH;
  t->not_null = true;
  return sql_x_const(b->a, t, &v);
}

static sql_x_t *bind_typed(sql_binder_t *b, const ast_expr_t *e) {
  sql_val_t v;
  const char *why;
  if (sql_parse_value(e->text, strlen(e->text), e->type, b->sess, &v, &why) != FL_OK) {
    char tb[64];
    return sql_bind_error(b, e->pos, "%s literal '%s': %s", sql_type_str(e->type, tb, sizeof tb),
                          e->text, why);
  }
  return sql_x_const(b->a, sql_type_with_null(b->a, e->type, true), &v);
}

/* ---------------------------------------------------------------------------------- */
/* Names                                                                              */

static const sql_type_t *field_of(const sql_type_t *row, const char *name, int *idx) {
  if (row->kind != T_ROW) return NULL;
  for (int i = 0; i < row->n_fields; i++) {
    if (strcmp(row->field_names[i], name) == 0) {
      *idx = i;
      return row->field_types[i];
    }
  }
  return NULL;
}

static sql_x_t *field_access(sql_binder_t *b, sql_x_t *base, const char *name, sql_pos_t pos,
                             const char *text) {
  int idx;
  const sql_type_t *ft = field_of(base->type, name, &idx);
  if (!ft) {
    if (base->type->kind != T_ROW) {
      return sql_bind_error(b, pos, "%s is not a ROW, so it has no field '%s'",
                            sql_describe_x(b, base), name);
    }
    const char *near = sql_nearest(name, base->type->field_names, base->type->n_fields);
    if (near)
      return sql_bind_error(b, pos, "ROW %s has no field '%s'; did you mean '%s'?", base->text,
                            name, near);
    return sql_bind_error(b, pos, "ROW %s has no field '%s'", base->text, name);
  }
  /* a field of a nullable row is nullable */
  const sql_type_t *t = base->type->not_null ? ft : sql_type_with_null(b->a, ft, false);
  sql_x_t *x = sql_x_new(b->a, sql_x_field_fn, t, 1);
  if (!x) return sql_bind_nomem(b);
  x->args[0] = base;
  x->col = idx;
  x->text = text;
  return x;
}

static sql_x_t *col_ref(sql_binder_t *b, const sql_scope_col_t *c, const char *text) {
  sql_x_t *x = sql_x_col(b->a, c->input, c->col, c->type, text);
  if (!x) return sql_bind_nomem(b);
  return x;
}

static sql_x_t *unknown_column(sql_binder_t *b, const ast_expr_t *e, const char *name,
                               const char *qual) {
  const char **names = sql_arena_alloc(b->a, sizeof(char *) * (size_t)(b->ncols + 1));
  if (!names) return sql_bind_nomem(b);
  int n = 0;
  for (int i = 0; i < b->ncols; i++)
    if (!qual || (b->cols[i].qual && strcmp(b->cols[i].qual, qual) == 0))
      names[n++] = b->cols[i].name;
  const char *near = sql_nearest(name, names, n);
  const char *full = qual ? sql_arena_printf(b->a, "%s.%s", qual, name) : name;
  if (b->ncols == 0)
    return sql_bind_error(b, e->pos, "column '%s' not found: there is no table in scope (%s)", full,
                          b->clause ? b->clause : "no FROM clause");
  if (near)
    return sql_bind_error(b, e->pos, "column '%s' not found; did you mean '%s'?", full, near);
  return sql_bind_error(b, e->pos, "column '%s' not found", full);
}

static sql_x_t *bind_ident(sql_binder_t *b, const ast_expr_t *e) {
  const char *text = sql_ast_text(b->a, b->src, e);
  const sql_scope_col_t *hit = NULL;
  int next = 1;
  /* qualified: parts[0] is a table alias */
  if (e->n_parts >= 2) {
    bool qual_known = false;
    for (int i = 0; i < b->ncols; i++) {
      const sql_scope_col_t *c = &b->cols[i];
      if (!c->qual || strcmp(c->qual, e->parts[0]) != 0) continue;
      qual_known = true;
      if (strcmp(c->name, e->parts[1]) == 0) {
        hit = c;
        next = 2;
        break;
      }
    }
    if (!hit && qual_known) {
      /* t.x where t is a table but x is not its column; unless t is also a column */
      bool is_col = false;
      for (int i = 0; i < b->ncols; i++)
        if (strcmp(b->cols[i].name, e->parts[0]) == 0) is_col = true;
      if (!is_col) return unknown_column(b, e, e->parts[1], e->parts[0]);
    }
  }
  if (!hit) {
    const sql_scope_col_t *first = NULL;
    int count = 0;
    for (int i = 0; i < b->ncols; i++) {
      const sql_scope_col_t *c = &b->cols[i];
      if (strcmp(c->name, e->parts[0]) != 0) continue;
      if (!first) first = c;
      count++;
    }
    if (count > 1) {
      const char *quals = "";
      for (int i = 0; i < b->ncols; i++) {
        const sql_scope_col_t *c = &b->cols[i];
        if (strcmp(c->name, e->parts[0]) != 0) continue;
        quals = sql_arena_printf(b->a, "%s%s%s.%s", quals, *quals ? ", " : "",
                                 c->qual ? c->qual : "?", c->name);
      }
      return sql_bind_error(b, e->pos, "column '%s' is ambiguous: it could be %s", e->parts[0],
                            quals);
    }
    if (!first) return unknown_column(b, e, e->parts[0], NULL);
    hit = first;
    next = 1;
  }
  sql_x_t *x = col_ref(b, hit, next == e->n_parts ? text : hit->name);
  if (!x) return NULL;
  for (int i = next; i < e->n_parts; i++) {
    const char *t =
        i + 1 == e->n_parts ? text : sql_arena_printf(b->a, "%s.%s", x->text, e->parts[i]);
    x = field_access(b, x, e->parts[i], e->pos, t);
    if (!x) return NULL;
  }
  return x;
}

static sql_x_t *bind_row_ctor(sql_binder_t *b, const ast_expr_t *e);

/* ---------------------------------------------------------------------------------- */
/* Calls                                                                              */

static sql_x_t *bind_call(sql_binder_t *b, const ast_expr_t *e);

sql_x_t *sql_bind(sql_binder_t *b, const ast_expr_t *e) {
  if (b->subst) {
    int col;
    const sql_type_t *t;
    if (b->subst(b->subst_opaque, e, &col, &t)) {
      sql_x_t *x = sql_x_col(b->a, 0, col, t, sql_ast_text(b->a, b->src, e));
      return x ? x : sql_bind_nomem(b);
    }
  }
  sql_x_t *x = NULL;
  switch (e->kind) {
  case AE_NULL: {
    sql_val_t v = {.null = true};
    x = sql_x_const(b->a, &sql_t_null, &v);
    if (x) x->text = "NULL";
    break;
  }
  case AE_BOOL: {
    sql_val_t v = {.i = e->bval};
    x = sql_x_const(b->a, &sql_t_boolean_nn, &v);
    break;
  }
  case AE_NUMBER: x = bind_number(b, e); break;
  case AE_STRING: x = bind_string(b, e); break;
  case AE_INTERVAL: x = bind_interval(b, e); break;
  case AE_TYPED: x = bind_typed(b, e); break;
  case AE_IDENT: return bind_ident(b, e);
  case AE_STAR:
    return sql_bind_error(b, e->pos, "'*' is only allowed in the SELECT list and in COUNT(*)");
  case AE_UNARY: x = sql_bind_unary(b, e); break;
  case AE_BINARY: x = sql_bind_binary(b, e); break;
  case AE_IS: x = sql_bind_is(b, e); break;
  case AE_IS_DISTINCT: x = sql_bind_distinct(b, e); break;
  case AE_BETWEEN: x = sql_bind_between(b, e); break;
  case AE_IN: x = sql_bind_in(b, e); break;
  case AE_LIKE: x = sql_bind_like(b, e); break;
  case AE_CASE: x = sql_bind_case(b, e); break;
  case AE_CAST: x = sql_bind_cast(b, e); break;
  case AE_CALL:
  case AE_EXTRACT:
  case AE_TRIM:
  case AE_POSITION:
  case AE_SUBSTRING: x = bind_call(b, e); break;
  case AE_FIELD: {
    sql_x_t *base = sql_bind(b, e->a);
    if (!base) return NULL;
    return field_access(b, base, e->name, e->pos, sql_ast_text(b->a, b->src, e));
  }
  case AE_ROW_CTOR: x = bind_row_ctor(b, e); break;
  case AE_DESCRIPTOR:
  case AE_TABLE_ARG:
    return sql_bind_error(b, e->pos, "%s is only allowed as an argument of a window table function",
                          e->kind == AE_DESCRIPTOR ? "DESCRIPTOR(...)" : "TABLE ...");
  case AE_ITEM: return sql_bind_error(b, e->pos, "ARRAY and MAP access ([...]) is not supported");
  }
  if (!x) {
    if (b->a->failed) return sql_bind_nomem(b);
    return NULL;
  }
  if (!x->text) x->text = sql_ast_text(b->a, b->src, e);
  return fold(b, x);
}

/* ROW(a, b, ...): a nested row value with fields EXPR$0, EXPR$1, ... */
static int row_ctor_fn(sql_eval_t *ev, const sql_x_t *x, sql_val_t *out) {
  sql_val_t *vals = sql_scratch_alloc(&ev->scratch, sizeof(sql_val_t) * (size_t)x->nargs);
  if (!vals) return FL_ENOMEM;
  for (int i = 0; i < x->nargs; i++) {
    int rc = sql_eval(ev, x->args[i], &vals[i]);
    if (rc) return rc;
  }
  sql_rb_t rb = {0};
  sql_rb_begin(&rb, x->nargs);
  for (int i = 0; i < x->nargs; i++) sql_write_col(&rb, i, x->type->field_types[i], &vals[i]);
  size_t len;
  const uint8_t *row = sql_rb_finish(&rb, &len);
  char *copy = row ? sql_scratch_alloc(&ev->scratch, len) : NULL;
  if (copy) memcpy(copy, row, len);
  sql_rb_free(&rb);
  if (!copy) return FL_ENOMEM;
  out->null = false;
  out->s.p = copy;
  out->s.n = len;
  return FL_OK;
}

static sql_x_t *bind_row_ctor(sql_binder_t *b, const ast_expr_t *e) {
  int n = (int)e->list.n;
  sql_type_t *t = sql_arena_alloc(b->a, sizeof *t);
  sql_x_t *x = sql_x_new(b->a, row_ctor_fn, t, n);
  if (!t || !x) return sql_bind_nomem(b);
  t->kind = T_ROW;
  t->not_null = true;
  t->n_fields = n;
  t->field_names = sql_arena_alloc(b->a, sizeof(char *) * (size_t)(n ? n : 1));
  t->field_types = sql_arena_alloc(b->a, sizeof(sql_type_t *) * (size_t)(n ? n : 1));
  if (!t->field_names || !t->field_types) return sql_bind_nomem(b);
  bool is_const = true;
  for (int i = 0; i < n; i++) {
    sql_x_t *a = sql_bind(b, e->list.v[i]);
    if (!a) return NULL;
    if (a->type->kind == T_NULL) a = sql_x_cast(b->a, a, &sql_t_string, false);
    x->args[i] = a;
    t->field_names[i] = sql_arena_printf(b->a, "EXPR$%d", i);
    t->field_types[i] = a->type;
    is_const = is_const && a->is_const;
  }
  x->is_const = is_const;
  return x;
}

static sql_x_t *bind_call(sql_binder_t *b, const ast_expr_t *e) {
  const char *name = e->name;
  sql_ptrvec_t argv = e->list;
  /* the special syntaxes are calls of their named functions */
  ast_expr_t *tmp[3];
  switch (e->kind) {
  case AE_EXTRACT: name = "EXTRACT"; break;
  case AE_TRIM: name = e->trim_mode == 1 ? "LTRIM" : e->trim_mode == 2 ? "RTRIM" : "BTRIM"; break;
  case AE_POSITION: name = "POSITION"; break;
  case AE_SUBSTRING: name = "SUBSTRING"; break;
  default: break;
  }
  if (e->kind != AE_CALL) {
    int n = 0;
    if (e->kind == AE_POSITION) {
      tmp[n++] = e->a;
      tmp[n++] = e->b;
    } else {
      tmp[n++] = e->a;
      if (e->b) tmp[n++] = e->b;
      if (e->c) tmp[n++] = e->c;
    }
    argv.v = (void **)tmp;
    argv.n = (size_t)n;
  }
  if (sql_is_aggregate_call(b->cat, e)) {
    if (e->over) {
      return sql_bind_error(b, e->pos, "%s OVER (...) is not allowed in %s", name,
                            b->clause ? b->clause : "this place");
    }
    return sql_bind_error(b, e->pos, "aggregate function %s is not allowed in %s", name,
                          b->clause ? b->clause : "this place");
  }
  if (e->over)
    return sql_bind_error(b, e->pos, "%s is not an aggregate function, so it cannot have OVER",
                          name);
  if (e->filter)
    return sql_bind_error(b, e->pos, "FILTER (WHERE ...) is only allowed on aggregate functions");
  if (e->distinct)
    return sql_bind_error(b, e->pos, "DISTINCT is only allowed in aggregate functions");
  int n = (int)argv.n;
  sql_x_t **args = sql_arena_alloc(b->a, sizeof(sql_x_t *) * (size_t)(n ? n : 1));
  if (!args) return sql_bind_nomem(b);
  for (int i = 0; i < n; i++) {
    args[i] = sql_bind(b, argv.v[i]);
    if (!args[i]) return NULL;
  }
  const sql_fn_def_t *def = sql_fn_lookup(name);
  if (def) {
    if (n < def->min_args || (def->max_args >= 0 && n > def->max_args)) {
      if (def->min_args == def->max_args)
        return sql_bind_error(b, e->pos, "%s takes %d argument%s, not %d", name, def->min_args,
                              def->min_args == 1 ? "" : "s", n);
      if (def->max_args < 0)
        return sql_bind_error(b, e->pos, "%s takes at least %d arguments, not %d", name,
                              def->min_args, n);
      return sql_bind_error(b, e->pos, "%s takes %d to %d arguments, not %d", name, def->min_args,
                            def->max_args, n);
    }
    sql_x_t *x = def->bind(b, e, args, n, def->which);
    if (x && !x->text) x->text = sql_ast_text(b->a, b->src, e);
    return x;
  }
  sql_x_t *u = b->cat ? sql_catalog_bind_udf(b, e, name, args, n) : NULL;
  if (u) return u;
  if (b->err[0]) return NULL;
  const char *names[512];
  int nn = sql_fn_names(names, 400);
  if (b->cat) nn += sql_catalog_udf_names(b->cat, names + nn, 512 - nn);
  const char *near = sql_nearest(name, names, nn);
  if (near)
    return sql_bind_error(b, e->pos, "no function named '%s'; did you mean '%s'?", name, near);
  return sql_bind_error(b, e->pos, "no function named '%s'", name);
}
