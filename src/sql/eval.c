/*
 * Evaluation (expr.h): scratch memory, reading and writing columns, and the evaluators
 * of the core node kinds the binder makes: constants, column and field reads, logic
 * with SQL's three-valued rules, comparisons, arithmetic (integers wrap as in Java,
 * integer division by zero fails, DECIMAL overflow gives NULL as in Flink), CASE, IS,
 * IN, LIKE and string concatenation.
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sql/eval_int.h"

/* ---------------------------------------------------------------------------------- */
/* Scratch memory                                                                     */

struct sql_scratch_chunk {
  sql_scratch_chunk_t *next;
  size_t size;
  _Alignas(16) unsigned char data[];
};

#define SCRATCH_CHUNK ((size_t)64 << 10)

void *sql_scratch_alloc(sql_scratch_t *s, size_t n) {
  n = (n + 15) & ~(size_t)15;
  sql_scratch_chunk_t *c = s->head;
  if (!c || c->size - s->used < n) {
    size_t size = n > SCRATCH_CHUNK ? n : SCRATCH_CHUNK;
    sql_scratch_chunk_t *nc = malloc(sizeof *nc + size);
    if (!nc) return NULL;
    nc->size = size;
    nc->next = s->head;
    s->head = nc;
    s->used = 0;
    c = nc;
  }
  void *p = c->data + s->used;
  s->used += n;
  return p;
}

/* Keeps the newest chunk (the one in use) and frees older ones: a row that needed much
 * scratch does not pin it for good. */
static void free_chunks(sql_scratch_chunk_t *c) {
  while (c) {
    sql_scratch_chunk_t *n = c->next;
    free(c);
    c = n;
  }
}

void sql_scratch_reset(sql_scratch_t *s) {
  if (!s->head) return;
  free_chunks(s->head->next);
  s->head->next = NULL;
  if (s->head->size > SCRATCH_CHUNK * 4) {
    free(s->head);
    s->head = NULL;
  }
  s->used = 0;
}

void sql_scratch_free(sql_scratch_t *s) {
  free_chunks(s->head);
  s->head = NULL;
  s->used = 0;
}

void sql_eval_init(sql_eval_t *ev, const sql_session_t *sess) {
  memset(ev, 0, sizeof *ev);
  ev->sess = sess;
}

void sql_eval_free(sql_eval_t *ev) { sql_scratch_free(&ev->scratch); }

int sql_eval_fail(sql_eval_t *ev, const sql_x_t *x, int code, const char *fmt, ...) {
  char msg[384];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  if (x && x->text) {
    snprintf(ev->err, sizeof ev->err, "%s: %s", x->text, msg);
  } else {
    snprintf(ev->err, sizeof ev->err, "%s", msg);
  }
  return code;
}

/* ---------------------------------------------------------------------------------- */
/* Columns                                                                            */

void sql_read_col(const uint8_t *row, int ncols, int col, const sql_type_t *t, sql_val_t *out) {
  if (sql_row_null(row, col)) {
    out->null = true;
    out->dec = 0;
    return;
  }
  out->null = false;
  switch (t->kind) {
  case T_FLOAT:
  case T_DOUBLE: out->d = sql_row_f64(row, ncols, col); return;
  case T_DECIMAL:
    if (sql_decimal_wide(t)) {
      out->dec = sql_row_i128(row, ncols, col);
    } else {
      out->dec = sql_row_i64(row, ncols, col);
    }
    return;
  case T_CHAR:
  case T_VARCHAR:
  case T_BINARY:
  case T_VARBINARY:
  case T_ROW: {
    uint32_t len;
    out->s.p = (const char *)sql_row_var(row, ncols, col, &len);
    out->s.n = len;
    return;
  }
  default: out->i = sql_row_i64(row, ncols, col); return;
  }
}

void sql_write_col(sql_rb_t *b, int i, const sql_type_t *t, const sql_val_t *v) {
  if (v->null) {
    sql_rb_set_null(b, i);
    return;
  }
  /* a column set NULL before (a row begun all NULL) becomes non-NULL */
  b->buf[2 + i / 8] &= (uint8_t) ~(1u << (i % 8));
  switch (t->kind) {
  case T_FLOAT:
  case T_DOUBLE: sql_rb_set_f64(b, i, v->d); return;
  case T_DECIMAL:
    if (sql_decimal_wide(t)) {
      sql_rb_set_i128(b, i, v->dec);
    } else {
      sql_rb_set_i64(b, i, (int64_t)v->dec);
    }
    return;
  case T_CHAR:
  case T_VARCHAR:
  case T_BINARY:
  case T_VARBINARY:
  case T_ROW: sql_rb_set_var(b, i, v->s.p, v->s.n); return;
  default: sql_rb_set_i64(b, i, v->i); return;
  }
}

/* ---------------------------------------------------------------------------------- */
/* Leaves                                                                             */

int sql_x_const_fn(sql_eval_t *ev, const sql_x_t *x, sql_val_t *out) {
  *out = x->cval;
  return FL_OK;
}

static int col_i64(sql_eval_t *ev, const sql_x_t *x, sql_val_t *out) {
  const uint8_t *r = ev->rows[x->input];
  out->null = sql_row_null(r, x->col);
  out->i = out->null ? 0 : sql_row_i64(r, ev->ncols[x->input], x->col);
  return FL_OK;
}

static int col_f64(sql_eval_t *ev, const sql_x_t *x, sql_val_t *out) {
  const uint8_t *r = ev->rows[x->input];
  out->null = sql_row_null(r, x->col);
  out->d = out->null ? 0 : sql_row_f64(r, ev->ncols[x->input], x->col);
  return FL_OK;
}

static int col_any(sql_eval_t *ev, const sql_x_t *x, sql_val_t *out) {
  sql_read_col(ev->rows[x->input], ev->ncols[x->input], x->col, x->type, out);
  return FL_OK;
}

sql_x_t *sql_x_col(sql_arena_t *a, int input, int col, const sql_type_t *t, const char *text) {
  sql_x_t *x = sql_arena_alloc(a, sizeof *x);
  if (!x) return NULL;
  x->input = input;
  x->col = col;
  x->type = t;
  x->text = text;
  x->xk = XK_COL;
  switch (t->kind) {
  case T_FLOAT:
  case T_DOUBLE: x->fn = col_f64; break;
  case T_DECIMAL:
  case T_CHAR:
  case T_VARCHAR:
  case T_BINARY:
  case T_VARBINARY:
  case T_ROW: x->fn = col_any; break;
  default: x->fn = col_i64; break;
  }
  return x;
}

/* A field of a ROW value: args[0] the row, col the field index. */
int sql_x_field_fn(sql_eval_t *ev, const sql_x_t *x, sql_val_t *out) {
  sql_val_t r;
  SQL_EVAL1(ev, x, r, out);
  const sql_type_t *rt = x->args[0]->type;
  sql_read_col((const uint8_t *)r.s.p, rt->n_fields, x->col, x->type, out);
  return FL_OK;
}

/* ---------------------------------------------------------------------------------- */
/* Logic                                                                              */

/* AND (stop_at false) and OR (stop_at true) with SQL's three values: the first operand
 * equal to stop_at decides; else NULL if an operand was NULL. */
static int and_or(sql_eval_t *ev, const sql_x_t *x, sql_val_t *out, bool stop_at) {
  bool any_null = false;
  for (int i = 0; i < x->nargs; i++) {
    sql_val_t v;
    int rc = sql_eval(ev, x->args[i], &v);
    if (rc) return rc;
    if (v.null) {
      any_null = true;
    } else if ((v.i != 0) == stop_at) {
      out->null = false;
      out->i = stop_at;
      return FL_OK;
    }
  }
  out->null = any_null;
  out->i = !any_null && !stop_at;
  return FL_OK;
}

int sql_x_and_fn(sql_eval_t *ev, const sql_x_t *x, sql_val_t *out) {
  return and_or(ev, x, out, false);
}

int sql_x_or_fn(sql_eval_t *ev, const sql_x_t *x, sql_val_t *out) {
  return and_or(ev, x, out, true);
}

int sql_x_not_fn(sql_eval_t *ev, const sql_x_t *x, sql_val_t *out) {
  int rc = sql_eval(ev, x->args[0], out);
  if (rc) return rc;
  out->i = !out->i;
  return FL_OK;
}

/* iparam: 0 IS NULL, 1 IS TRUE, 2 IS FALSE, 3 IS UNKNOWN; iparam2: negated. */
int sql_x_is_fn(sql_eval_t *ev, const sql_x_t *x, sql_val_t *out) {
  sql_val_t v;
  int rc = sql_eval(ev, x->args[0], &v);
  if (rc) return rc;
  bool r;
  switch (x->iparam) {
  case 0:
  case 3: r = v.null; break;
  case 1: r = !v.null && v.i; break;
  default: r = !v.null && !v.i; break;
  }
  out->null = false;
  out->i = x->iparam2 ? !r : r;
  return FL_OK;
}

/* ---------------------------------------------------------------------------------- */
/* Comparison: both operands already of one type. iparam: the ast_binop_t.           */

static inline bool cmp_result(int op, int c) {
  switch (op) {
  case OP_EQ: return c == 0;
  case OP_NE: return c != 0;
  case OP_LT: return c < 0;
  case OP_LE: return c <= 0;
  case OP_GT: return c > 0;
  default: return c >= 0;
  }
}

static int cmp_i64(sql_eval_t *ev, const sql_x_t *x, sql_val_t *out) {
  sql_val_t a, b;
  SQL_EVAL2(ev, x, a, b, out);
  out->i = cmp_result((int)x->iparam, a.i < b.i ? -1 : a.i > b.i);
  return FL_OK;
}

static int cmp_any(sql_eval_t *ev, const sql_x_t *x, sql_val_t *out) {
  sql_val_t a, b;
  SQL_EVAL2(ev, x, a, b, out);
  int c;
  if (x->args[0]->type->kind == T_CHAR && x->args[1]->type->kind == T_CHAR) {
    /* CHAR comparison ignores trailing spaces */
    size_t an = a.s.n, bn = b.s.n;
    while (an && a.s.p[an - 1] == ' ') an--;
    while (bn && b.s.p[bn - 1] == ' ') bn--;
    a.s.n = an;
    b.s.n = bn;
  }
  c = sql_val_cmp(x->args[0]->type, &a, &b);
  out->i = cmp_result((int)x->iparam, c);
  return FL_OK;
}

sql_x_fn sql_cmp_fn_for(const sql_type_t *t) {
  switch (t->kind) {
  case T_BOOLEAN:
  case T_TINYINT:
  case T_SMALLINT:
  case T_INT:
  case T_BIGINT:
  case T_DATE:
  case T_TIME:
  case T_TIMESTAMP:
  case T_TIMESTAMP_LTZ:
  case T_INTERVAL_DT:
  case T_INTERVAL_YM: return cmp_i64;
  default: return cmp_any;
  }
}

/* a IS [NOT] DISTINCT FROM b: NULLs are equal to each other. iparam2: negated (NOT
 * DISTINCT = equal). */
int sql_x_distinct_fn(sql_eval_t *ev, const sql_x_t *x, sql_val_t *out) {
  sql_val_t a, b;
  int rc = sql_eval(ev, x->args[0], &a);
  if (rc) return rc;
  if ((rc = sql_eval(ev, x->args[1], &b))) return rc;
  bool distinct;
  if (a.null || b.null) {
    distinct = a.null != b.null;
  } else {
    distinct = sql_val_cmp(x->args[0]->type, &a, &b) != 0;
  }
  out->null = false;
  out->i = x->iparam2 ? !distinct : distinct;
  return FL_OK;
}

/* a IN (b, c, ...): args[0] the value, the rest the list; iparam2 negated. NULL when no
 * element matched and the value or an element was NULL. */
int sql_x_in_fn(sql_eval_t *ev, const sql_x_t *x, sql_val_t *out) {
  sql_val_t a;
  int rc = sql_eval(ev, x->args[0], &a);
  if (rc) return rc;
  out->i = 0;
  if (a.null) {
    out->null = true;
    return FL_OK;
  }
  bool saw_null = false;
  for (int i = 1; i < x->nargs; i++) {
    sql_val_t b;
    if ((rc = sql_eval(ev, x->args[i], &b))) return rc;
    if (b.null) {
      saw_null = true;
      continue;
    }
    if (sql_val_cmp(x->args[0]->type, &a, &b) == 0) {
      out->null = false;
      out->i = x->iparam2 ? 0 : 1;
      return FL_OK;
    }
  }
  out->null = saw_null;
  out->i = saw_null ? 0 : (x->iparam2 ? 1 : 0);
  return FL_OK;
}

/* ---------------------------------------------------------------------------------- */
/* CASE: args = cond0, val0, cond1, val1, ..., [else]; iparam: has else                */

int sql_x_case_fn(sql_eval_t *ev, const sql_x_t *x, sql_val_t *out) {
  int pairs = (x->nargs - (int)x->iparam) / 2;
  for (int i = 0; i < pairs; i++) {
    sql_val_t c;
    int rc = sql_eval(ev, x->args[2 * i], &c);
    if (rc) return rc;
    if (!c.null && c.i) return sql_eval(ev, x->args[2 * i + 1], out);
  }
  if (x->iparam) return sql_eval(ev, x->args[x->nargs - 1], out);
  out->null = true;
  out->dec = 0;
  return FL_OK;
}

/* ---------------------------------------------------------------------------------- */
/* Arithmetic: operands already cast to the result type (x->type), except intervals.  */

static int add_i(sql_eval_t *ev, const sql_x_t *x, sql_val_t *out) {
  sql_val_t a, b;
  SQL_EVAL2(ev, x, a, b, out);
  out->i = sql_wrap_int(x->type, (uint64_t)a.i + (uint64_t)b.i);
  return FL_OK;
}
static int sub_i(sql_eval_t *ev, const sql_x_t *x, sql_val_t *out) {
  sql_val_t a, b;
  SQL_EVAL2(ev, x, a, b, out);
  out->i = sql_wrap_int(x->type, (uint64_t)a.i - (uint64_t)b.i);
  return FL_OK;
}
static int mul_i(sql_eval_t *ev, const sql_x_t *x, sql_val_t *out) {
  sql_val_t a, b;
  SQL_EVAL2(ev, x, a, b, out);
  out->i = sql_wrap_int(x->type, (uint64_t)a.i * (uint64_t)b.i);
  return FL_OK;
}
static int div_i(sql_eval_t *ev, const sql_x_t *x, sql_val_t *out) {
  sql_val_t a, b;
  SQL_EVAL2(ev, x, a, b, out);
  if (b.i == 0) return sql_eval_fail(ev, x, FL_EUSER, "division by zero");
  if (b.i == -1) {
    out->i = sql_wrap_int(x->type, 0 - (uint64_t)a.i);
  } else {
    out->i = a.i / b.i;
  }
  return FL_OK;
}
static int mod_i(sql_eval_t *ev, const sql_x_t *x, sql_val_t *out) {
  sql_val_t a, b;
  SQL_EVAL2(ev, x, a, b, out);
  if (b.i == 0) return sql_eval_fail(ev, x, FL_EUSER, "division by zero");
  out->i = b.i == -1 ? 0 : a.i % b.i;
  return FL_OK;
}
static int add_d(sql_eval_t *ev, const sql_x_t *x, sql_val_t *out) {
  sql_val_t a, b;
  SQL_EVAL2(ev, x, a, b, out);
  out->d = a.d + b.d;
  return FL_OK;
}
static int sub_d(sql_eval_t *ev, const sql_x_t *x, sql_val_t *out) {
  sql_val_t a, b;
  SQL_EVAL2(ev, x, a, b, out);
  out->d = a.d - b.d;
  return FL_OK;
}
static int mul_d(sql_eval_t *ev, const sql_x_t *x, sql_val_t *out) {
  sql_val_t a, b;
  SQL_EVAL2(ev, x, a, b, out);
  out->d = a.d * b.d;
  return FL_OK;
}
static int div_d(sql_eval_t *ev, const sql_x_t *x, sql_val_t *out) {
  sql_val_t a, b;
  SQL_EVAL2(ev, x, a, b, out);
  out->d = a.d / b.d;
  return FL_OK;
}
static int mod_d(sql_eval_t *ev, const sql_x_t *x, sql_val_t *out) {
  sql_val_t a, b;
  SQL_EVAL2(ev, x, a, b, out);
  out->d = fmod(a.d, b.d);
  return FL_OK;
}

/* DECIMAL: operands keep their own scales (args' types); the result is computed exactly
 * and rounded HALF_UP to the result scale; a result beyond the precision is NULL. */
static int dec_finish(const sql_x_t *x, sql_i128 v, bool overflow, sql_val_t *out) {
  if (overflow || !sql_dec_fits(v, x->type->precision)) {
    out->null = true;
    out->dec = 0;
  } else {
    out->dec = v;
  }
  return FL_OK;
}

/* The operands of x, a and b, rescaled to the result's scale (for +, - and %). */
static void dec_operands(const sql_x_t *x, const sql_val_t *a, const sql_val_t *b, sql_i128 *av,
                         sql_i128 *bv) {
  int s = x->type->scale;
  *av = sql_dec_rescale(a->dec, x->args[0]->type->scale, s);
  *bv = sql_dec_rescale(b->dec, x->args[1]->type->scale, s);
}

static int addsub_dec(sql_eval_t *ev, const sql_x_t *x, sql_val_t *out) {
  sql_val_t a, b;
  SQL_EVAL2(ev, x, a, b, out);
  sql_i128 av, bv, r;
  dec_operands(x, &a, &b, &av, &bv);
  bool of =
      x->iparam == OP_ADD ? __builtin_add_overflow(av, bv, &r) : __builtin_sub_overflow(av, bv, &r);
  return dec_finish(x, r, of, out);
}

static int mul_dec(sql_eval_t *ev, const sql_x_t *x, sql_val_t *out) {
  sql_val_t a, b;
  SQL_EVAL2(ev, x, a, b, out);
  sql_i128 r;
  bool of = __builtin_mul_overflow(a.dec, b.dec, &r);
  int s = x->args[0]->type->scale + x->args[1]->type->scale;
  if (!of) r = sql_dec_rescale(r, s, x->type->scale);
  return dec_finish(x, r, of, out);
}

static int div_dec(sql_eval_t *ev, const sql_x_t *x, sql_val_t *out) {
  sql_val_t a, b;
  SQL_EVAL2(ev, x, a, b, out);
  if (b.dec == 0) return sql_eval_fail(ev, x, FL_EUSER, "division by zero");
  /* a/b at scale rs: (a * 10^(rs + 1 + sb - sa)) / b, then round the extra digit */
  int sa = x->args[0]->type->scale, sb = x->args[1]->type->scale, rs = x->type->scale;
  int k = rs + 1 + sb - sa;
  sql_i128 num = a.dec, r;
  bool of = false;
  if (k >= 0) {
    of = __builtin_mul_overflow(num, sql_pow10(k), &num);
  } else {
    num /= sql_pow10(-k);
  }
  if (!of) {
    r = num / b.dec;
    r = sql_dec_rescale(r, 1, 0);
  }
  return dec_finish(x, of ? 0 : r, of, out);
}

static int mod_dec(sql_eval_t *ev, const sql_x_t *x, sql_val_t *out) {
  sql_val_t a, b;
  SQL_EVAL2(ev, x, a, b, out);
  sql_i128 av, bv;
  dec_operands(x, &a, &b, &av, &bv);
  if (bv == 0) return sql_eval_fail(ev, x, FL_EUSER, "division by zero");
  return dec_finish(x, av % bv, false, out);
}

sql_x_fn sql_arith_fn_for(int op, const sql_type_t *t) {
  if (t->kind == T_DECIMAL) {
    switch (op) {
    case OP_ADD:
    case OP_SUB: return addsub_dec;
    case OP_MUL: return mul_dec;
    case OP_DIV: return div_dec;
    default: return mod_dec;
    }
  }
  if (sql_type_is_approx(t)) {
    switch (op) {
    case OP_ADD: return add_d;
    case OP_SUB: return sub_d;
    case OP_MUL: return mul_d;
    case OP_DIV: return div_d;
    default: return mod_d;
    }
  }
  switch (op) {
  case OP_ADD: return add_i;
  case OP_SUB: return sub_i;
  case OP_MUL: return mul_i;
  case OP_DIV: return div_i;
  default: return mod_i;
  }
}

int sql_x_neg_fn(sql_eval_t *ev, const sql_x_t *x, sql_val_t *out) {
  int rc = sql_eval(ev, x->args[0], out);
  if (rc || out->null) return rc;
  if (x->type->kind == T_DECIMAL) {
    out->dec = -out->dec;
  } else if (sql_type_is_approx(x->type)) {
    out->d = -out->d;
  } else {
    out->i = sql_wrap_int(x->type, 0 - (uint64_t)out->i);
  }
  return FL_OK;
}

/* Adds months to a timestamp (ms) or date (days), clamping the day to the month's end,
 * as Flink does for TIMESTAMP + INTERVAL 'n' MONTH. */
int64_t sql_add_months(int64_t v, int64_t months, bool is_date) {
  int64_t days = is_date ? v : sql_floor_div(v, 86400000);
  int64_t ms = is_date ? 0 : v - days * 86400000;
  int64_t y;
  int m, d;
  sql_civil_from_days(days, &y, &m, &d);
  int64_t total = y * 12 + (m - 1) + months;
  y = sql_floor_div(total, 12);
  m = (int)(total - y * 12) + 1;
  static const int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  int maxd = mdays[m - 1];
  if (m == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0)) maxd = 29;
  if (d > maxd) d = maxd;
  days = sql_days_from_civil(y, m, d);
  return is_date ? days : days * 86400000 + ms;
}

/* Datetime +/- interval: args[0] the datetime, args[1] the interval; iparam: +1 / -1
 * (interval on the left for +: the binder swaps). */
int sql_x_datetime_add_fn(sql_eval_t *ev, const sql_x_t *x, sql_val_t *out) {
  sql_val_t a, b;
  SQL_EVAL2(ev, x, a, b, out);
  const sql_type_t *it = x->args[1]->type;
  int64_t n = x->iparam < 0 ? -b.i : b.i;
  if (it->kind == T_INTERVAL_YM) {
    out->i = sql_add_months(a.i, n, x->type->kind == T_DATE);
  } else if (x->type->kind == T_DATE) {
    out->i = a.i + sql_floor_div(n, 86400000);
  } else if (x->type->kind == T_TIME) {
    out->i = sql_floor_mod(a.i + n, 86400000);
  } else {
    out->i = (int64_t)((uint64_t)a.i + (uint64_t)n);
  }
  return FL_OK;
}

/* interval * number, interval / number */
int sql_x_interval_scale_fn(sql_eval_t *ev, const sql_x_t *x, sql_val_t *out) {
  sql_val_t a, b;
  SQL_EVAL2(ev, x, a, b, out);
  double f = sql_type_is_approx(x->args[1]->type) ? b.d
             : x->args[1]->type->kind == T_DECIMAL
                 ? (double)b.dec / (double)sql_pow10(x->args[1]->type->scale)
                 : (double)b.i;
  if (x->iparam == OP_DIV) {
    if (f == 0) return sql_eval_fail(ev, x, FL_EUSER, "division by zero");
    out->i = (int64_t)llround((double)a.i / f);
  } else {
    out->i = (int64_t)llround((double)a.i * f);
  }
  return FL_OK;
}

/* ---------------------------------------------------------------------------------- */
/* Strings                                                                            */

/* a || b: NULL when either is NULL. */
int sql_x_concat2_fn(sql_eval_t *ev, const sql_x_t *x, sql_val_t *out) {
  sql_val_t a, b;
  SQL_EVAL2(ev, x, a, b, out);
  char *p = sql_scratch_alloc(&ev->scratch, a.s.n + b.s.n + 1);
  if (!p) return FL_ENOMEM;
  if (a.s.n) memcpy(p, a.s.p, a.s.n);
  if (b.s.n) memcpy(p + a.s.n, b.s.p, b.s.n);
  out->s.p = p;
  out->s.n = a.s.n + b.s.n;
  return FL_OK;
}

/* LIKE with % and _ and an escape character (iparam, -1 for none). Iterative with one
 * backtrack point per %, so it is linear-ish and never recurses. */
bool sql_like_match(const char *s, size_t n, const char *p, size_t m, int esc) {
  size_t i = 0, j = 0, star_j = (size_t)-1, star_i = 0;
  while (i < n) {
    if (j < m) {
      char c = p[j];
      if (esc >= 0 && c == (char)esc && j + 1 < m) {
        if (p[j + 1] == s[i]) {
          i++;
          j += 2;
          continue;
        }
      } else if (c == '%') {
        star_j = j++;
        star_i = i;
        continue;
      } else if (c == '_' || c == s[i]) {
        i++;
        j++;
        continue;
      }
    }
    if (star_j != (size_t)-1) {
      j = star_j + 1;
      i = ++star_i;
      continue;
    }
    return false;
  }
  while (j < m && p[j] == '%') j++;
  return j == m;
}

int sql_x_like_fn(sql_eval_t *ev, const sql_x_t *x, sql_val_t *out) {
  sql_val_t a, b;
  SQL_EVAL2(ev, x, a, b, out);
  int esc = -1;
  if (x->nargs > 2) {
    sql_val_t e;
    int rc = sql_eval(ev, x->args[2], &e);
    if (rc) return rc;
    if (e.null) return out->null = true, FL_OK;
    if (e.s.n != 1)
      return sql_eval_fail(ev, x, FL_EUSER, "the ESCAPE string must be one character");
    esc = (unsigned char)e.s.p[0];
  }
  bool m = sql_like_match(a.s.p, a.s.n, b.s.p, b.s.n, esc);
  out->i = x->iparam2 ? !m : m;
  return FL_OK;
}
