/*
 * CAST and TRY_CAST (Flink's casting rules): numeric conversions (integers narrow by
 * wrapping, floating point to integer truncates, DECIMAL rounds HALF_UP and gives NULL
 * when the value does not fit), everything to and from strings (CAST fails the job on a
 * string that is not a value of the type, TRY_CAST gives NULL), the datetime types among
 * themselves through the session time zone, epoch seconds to TIMESTAMP_LTZ, and ROW
 * field by field.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "sql/eval_int.h"

sql_x_t *sql_x_new(sql_arena_t *a, sql_x_fn fn, const sql_type_t *t, int nargs) {
  sql_x_t *x = sql_arena_alloc(a, sizeof *x);
  if (!x) return NULL;
  x->fn = fn;
  x->type = t;
  x->nargs = nargs;
  if (nargs) {
    x->args = sql_arena_alloc(a, sizeof(sql_x_t *) * (size_t)nargs);
    if (!x->args) return NULL;
  }
  return x;
}

sql_x_t *sql_x_const(sql_arena_t *a, const sql_type_t *t, const sql_val_t *v) {
  sql_x_t *x = sql_x_new(a, sql_x_const_fn, t, 0);
  if (!x) return NULL;
  x->cval = *v;
  x->is_const = true;
  x->xk = XK_CONST;
  return x;
}

/* Java's (long) d: truncation, NaN to 0, saturation at the ends. */
static int64_t double_to_i64(double d) {
  if (isnan(d)) return 0;
  if (d >= 9223372036854775807.0) return INT64_MAX;
  if (d <= -9223372036854775808.0) return INT64_MIN;
  return (int64_t)d;
}

static double dec_to_double(sql_i128 v, int scale) { return (double)v / (double)sql_pow10(scale); }

/* Cuts a string to at most len characters (UTF-8 code points). */
static size_t utf8_prefix(const char *s, size_t n, int len) {
  size_t i = 0;
  int chars = 0;
  while (i < n && chars < len) {
    unsigned char c = (unsigned char)s[i];
    size_t k = c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
    i += k;
    chars++;
  }
  return i > n ? n : i;
}

static int to_string(sql_eval_t *ev, const sql_type_t *from, const sql_type_t *to,
                     const sql_val_t *in, sql_val_t *out) {
  const char *p;
  size_t n;
  if (sql_type_is_string(from) || sql_type_is_binary(from)) {
    p = in->s.p;
    n = in->s.n;
  } else if (from->kind == T_BOOLEAN) {
    p = in->i ? "TRUE" : "FALSE";
    n = in->i ? 4 : 5;
  } else {
    int rc = sql_format_value(ev, from, in, &p, &n);
    if (rc) return rc;
  }
  if (to->precision < SQL_MAX_LENGTH) n = utf8_prefix(p, n, to->precision);
  if (to->kind == T_CHAR) {
    /* pad to the length */
    size_t chars = 0;
    for (size_t i = 0; i < n; i++)
      if (((unsigned char)p[i] & 0xC0) != 0x80) chars++;
    if ((int)chars < to->precision) {
      size_t pad = (size_t)to->precision - chars;
      char *q = sql_scratch_alloc(&ev->scratch, n + pad + 1);
      if (!q) return FL_ENOMEM;
      memcpy(q, p, n);
      memset(q + n, ' ', pad);
      p = q;
      n += pad;
    }
  }
  out->s.p = p;
  out->s.n = n;
  return FL_OK;
}

static int row_cast(sql_eval_t *ev, const sql_type_t *from, const sql_type_t *to,
                    const sql_val_t *in, sql_val_t *out, const char **why) {
  sql_rb_t b = {0};
  int rc = FL_OK;
  const uint8_t *r = (const uint8_t *)in->s.p;
  /* nested values first, so the builder's buffer is only written after them */
  sql_val_t *vals = sql_scratch_alloc(&ev->scratch, sizeof(sql_val_t) * (size_t)to->n_fields);
  if (!vals) return FL_ENOMEM;
  for (int i = 0; i < to->n_fields; i++) {
    sql_val_t fv;
    sql_read_col(r, from->n_fields, i, from->field_types[i], &fv);
    if (fv.null) {
      vals[i] = fv;
      continue;
    }
    rc = sql_convert(ev, from->field_types[i], to->field_types[i], &fv, &vals[i], why);
    if (rc) return rc;
  }
  sql_rb_begin(&b, to->n_fields);
  for (int i = 0; i < to->n_fields; i++) sql_write_col(&b, i, to->field_types[i], &vals[i]);
  size_t len;
  const uint8_t *row = sql_rb_finish(&b, &len);
  if (!row) {
    rc = FL_ENOMEM;
    goto done;
  }
  char *copy = sql_scratch_alloc(&ev->scratch, len);
  if (!copy) {
    rc = FL_ENOMEM;
    goto done;
  }
  memcpy(copy, row, len);
  out->s.p = copy;
  out->s.n = len;
done:
  sql_rb_free(&b);
  return rc;
}

int sql_convert(sql_eval_t *ev, const sql_type_t *from, const sql_type_t *to, const sql_val_t *in,
                sql_val_t *out, const char **why) {
  out->null = false;
  if (sql_type_is_string(to)) return to_string(ev, from, to, in, out);
  if (sql_type_is_string(from)) {
    int rc = sql_parse_value(in->s.p, in->s.n, to, ev->sess, out, why);
    if (rc == FL_OK && sql_type_is_binary(to) && to->precision < SQL_MAX_LENGTH &&
        out->s.n > (size_t)to->precision)
      out->s.n = (size_t)to->precision;
    return rc;
  }
  bool fi = sql_type_is_integer(from) || from->kind == T_BOOLEAN;
  switch (to->kind) {
  case T_BOOLEAN:
    if (fi)
      out->i = in->i != 0;
    else if (sql_type_is_approx(from))
      out->i = in->d != 0;
    else if (from->kind == T_DECIMAL)
      out->i = in->dec != 0;
    else
      goto unsupported;
    return FL_OK;
  case T_TINYINT:
  case T_SMALLINT:
  case T_INT:
  case T_BIGINT:
    if (fi)
      out->i = sql_wrap_int(to, in->i);
    else if (sql_type_is_approx(from))
      out->i = sql_wrap_int(to, double_to_i64(in->d));
    else if (from->kind == T_DECIMAL) {
      sql_i128 v = in->dec / sql_pow10(from->scale);
      out->i = sql_wrap_int(to, (int64_t)v);
    } else if (from->kind == T_TIMESTAMP_LTZ) {
      out->i = sql_wrap_int(to, sql_floor_div(in->i, 1000));
    } else if (sql_type_is_interval(from)) {
      out->i = sql_wrap_int(to, in->i);
    } else {
      goto unsupported;
    }
    return FL_OK;
  case T_FLOAT:
  case T_DOUBLE: {
    double d;
    if (fi)
      d = (double)in->i;
    else if (sql_type_is_approx(from))
      d = in->d;
    else if (from->kind == T_DECIMAL)
      d = dec_to_double(in->dec, from->scale);
    else
      goto unsupported;
    out->d = to->kind == T_FLOAT ? (double)(float)d : d;
    return FL_OK;
  }
  case T_DECIMAL: {
    sql_i128 v;
    if (fi) {
      v = (sql_i128)in->i * sql_pow10(to->scale);
    } else if (from->kind == T_DECIMAL) {
      v = sql_dec_rescale(in->dec, from->scale, to->scale);
    } else if (sql_type_is_approx(from)) {
      if (!isfinite(in->d)) {
        out->null = true;
        return FL_OK;
      }
      double scaled = in->d * (double)sql_pow10(to->scale);
      if (fabs(scaled) >= 1e38) {
        out->null = true;
        return FL_OK;
      }
      /* round HALF_UP through the decimal text of the double, which is what Java's
       * BigDecimal.valueOf(double) starts from */
      char txt[64];
      snprintf(txt, sizeof txt, "%.17g", in->d);
      const char *w;
      if (sql_parse_value(txt, strlen(txt), to, ev->sess, out, &w) != FL_OK) out->null = true;
      return FL_OK;
    } else {
      goto unsupported;
    }
    if (!sql_dec_fits(v, to->precision)) {
      out->null = true;
      return FL_OK;
    }
    out->dec = v;
    return FL_OK;
  }
  case T_DATE:
    if (from->kind == T_DATE)
      out->i = in->i;
    else if (from->kind == T_TIMESTAMP)
      out->i = sql_floor_div(in->i, 86400000);
    else if (from->kind == T_TIMESTAMP_LTZ)
      out->i = sql_floor_div(in->i + ev->sess->tz_offset_ms, 86400000);
    else
      goto unsupported;
    return FL_OK;
  case T_TIME: {
    int64_t ms;
    if (from->kind == T_TIME)
      ms = in->i;
    else if (from->kind == T_TIMESTAMP)
      ms = sql_floor_mod(in->i, 86400000);
    else if (from->kind == T_TIMESTAMP_LTZ)
      ms = sql_floor_mod(in->i + ev->sess->tz_offset_ms, 86400000);
    else
      goto unsupported;
    if (to->precision == 0) ms -= ms % 1000;
    out->i = ms;
    return FL_OK;
  }
  case T_TIMESTAMP:
  case T_TIMESTAMP_LTZ: {
    int64_t ms;
    if (from->kind == T_DATE) {
      ms = in->i * 86400000;
      if (to->kind == T_TIMESTAMP_LTZ) ms -= ev->sess->tz_offset_ms;
    } else if (from->kind == to->kind) {
      ms = in->i;
    } else if (from->kind == T_TIMESTAMP) {
      ms = in->i - ev->sess->tz_offset_ms; /* local time to an instant */
    } else if (from->kind == T_TIMESTAMP_LTZ) {
      ms = in->i + ev->sess->tz_offset_ms; /* an instant to local time */
    } else if (fi) {
      ms = in->i * 1000;
    } else if (sql_type_is_approx(from)) {
      ms = double_to_i64(in->d * 1000);
    } else if (from->kind == T_DECIMAL) {
      ms = (int64_t)sql_dec_rescale(in->dec, from->scale, 3);
    } else {
      goto unsupported;
    }
    if (to->precision == 0)
      ms = sql_floor_div(ms, 1000) * 1000;
    else if (to->precision < 3) {
      int64_t unit = to->precision == 1 ? 100 : 10;
      ms = sql_floor_div(ms, unit) * unit;
    }
    out->i = ms;
    return FL_OK;
  }
  case T_BINARY:
  case T_VARBINARY:
    if (sql_type_is_binary(from)) {
      *out = *in;
      if (to->precision < SQL_MAX_LENGTH && out->s.n > (size_t)to->precision)
        out->s.n = (size_t)to->precision;
      return FL_OK;
    }
    goto unsupported;
  case T_ROW:
    if (from->kind == T_ROW && from->n_fields == to->n_fields)
      return row_cast(ev, from, to, in, out, why);
    goto unsupported;
  case T_INTERVAL_DT:
  case T_INTERVAL_YM:
    if (from->kind == to->kind || fi) {
      out->i = in->i;
      return FL_OK;
    }
    goto unsupported;
  default: break;
  }
unsupported:
  *why = "unsupported cast";
  return FL_EPARSE;
}

int sql_x_cast_fn(sql_eval_t *ev, const sql_x_t *x, sql_val_t *out) {
  sql_val_t in;
  SQL_EVAL1(ev, x, in, out);
  const char *why = NULL;
  int rc = sql_convert(ev, x->args[0]->type, x->type, &in, out, &why);
  if (rc == FL_EPARSE) {
    if (x->iparam) { /* TRY_CAST */
      out->null = true;
      out->dec = 0;
      return FL_OK;
    }
    char tb[128];
    if (sql_type_is_string(x->args[0]->type)) {
      return sql_eval_fail(
          ev, x, FL_EUSER, "cannot cast '%.*s' to %s: %s (TRY_CAST gives NULL instead)",
          (int)(in.s.n > 60 ? 60 : in.s.n), in.s.p, sql_type_str(x->type, tb, sizeof tb), why);
    }
    return sql_eval_fail(ev, x, FL_EUSER, "cannot cast to %s: %s",
                         sql_type_str(x->type, tb, sizeof tb), why);
  }
  return rc;
}

static int same_fn(sql_eval_t *ev, const sql_x_t *x, sql_val_t *out) {
  return sql_eval(ev, x->args[0], out);
}

/* Whether a cast from -> to changes nothing in the representation. */
static bool cast_is_noop(const sql_type_t *from, const sql_type_t *to) {
  if (from->kind == T_NULL) return false;
  if (sql_type_is_string(from) && to->kind == T_VARCHAR && to->precision == SQL_MAX_LENGTH)
    return true;
  if (from->kind != to->kind) {
    /* integer widening keeps the int64 representation */
    return sql_type_is_integer(from) && sql_type_is_integer(to) && from->kind < to->kind;
  }
  switch (from->kind) {
  case T_DECIMAL:
    return from->scale == to->scale && sql_decimal_wide(from) == sql_decimal_wide(to) &&
           from->precision <= to->precision;
  case T_VARCHAR:
  case T_VARBINARY: return from->precision <= to->precision;
  case T_CHAR: return from->precision == to->precision;
  case T_TIMESTAMP:
  case T_TIMESTAMP_LTZ:
  case T_TIME: return from->precision <= to->precision || from->precision >= 3;
  case T_ROW: return sql_type_equal(from, to, true);
  default: return true;
  }
}

sql_x_t *sql_x_cast(sql_arena_t *a, sql_x_t *x, const sql_type_t *to, bool try_cast) {
  if (cast_is_noop(x->type, to) && !try_cast) {
    /* the value's representation does not change: the node is kept with the new type,
     * except a CAST (whose work depends on its own type: a CAST to CHAR(n) pads), which is
     * wrapped */
    sql_x_t *c = sql_arena_alloc(a, sizeof *c);
    if (!c) return NULL;
    if (x->fn != sql_x_cast_fn) {
      *c = *x;
    } else {
      c->fn = same_fn;
      c->args = sql_arena_alloc(a, sizeof(sql_x_t *));
      if (!c->args) return NULL;
      c->args[0] = x;
      c->nargs = 1;
      c->text = x->text;
      c->is_const = x->is_const;
    }
    c->type = sql_type_with_null(a, to, x->type->not_null);
    return c;
  }
  if (x->type->kind == T_NULL) {
    sql_val_t v = {.null = true};
    sql_x_t *c = sql_x_const(a, sql_type_with_null(a, to, false), &v);
    if (c) c->text = x->text;
    return c;
  }
  sql_x_t *c = sql_x_new(a, sql_x_cast_fn, to, 1);
  if (!c) return NULL;
  c->args[0] = x;
  c->iparam = try_cast;
  c->text = x->text;
  c->is_const = x->is_const;
  /* a cast that can fail or give NULL makes the result nullable */
  bool may_null =
      !x->type->not_null || try_cast || sql_type_is_string(x->type) || to->kind == T_DECIMAL;
  c->type = sql_type_with_null(a, to, !may_null && to->not_null ? true : !may_null);
  return c;
}

/* A copy of x in which column reads of input `from` read input `to` (shared subtrees
 * that read nothing are not copied). */
sql_x_t *sql_x_rebase(sql_arena_t *a, sql_x_t *x, int from, int to) {
  if (x->xk == XK_COL) {
    if (x->input != from) return x;
    sql_x_t *c = sql_arena_alloc(a, sizeof *c);
    if (!c) return NULL;
    *c = *x;
    c->input = to;
    return c;
  }
  if (x->nargs == 0) return x;
  sql_x_t *c = sql_arena_alloc(a, sizeof *c);
  if (!c) return NULL;
  *c = *x;
  c->args = sql_arena_alloc(a, sizeof(sql_x_t *) * (size_t)x->nargs);
  if (!c->args) return NULL;
  for (int i = 0; i < x->nargs; i++) {
    c->args[i] = sql_x_rebase(a, x->args[i], from, to);
    if (!c->args[i]) return NULL;
  }
  return c;
}
