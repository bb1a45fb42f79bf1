/*
 * Date and time functions, as Flink names them: CURRENT_TIMESTAMP, LOCALTIMESTAMP,
 * CURRENT_DATE, CURRENT_TIME, LOCALTIME, NOW, PROCTIME, CURRENT_ROW_TIMESTAMP, EXTRACT and
 * its shorthands (YEAR, QUARTER, MONTH, WEEK, DAYOFYEAR, DAYOFMONTH, DAYOFWEEK, HOUR,
 * MINUTE, SECOND), DATE_FORMAT, TO_TIMESTAMP, TO_TIMESTAMP_LTZ, TO_DATE, UNIX_TIMESTAMP,
 * FROM_UNIXTIME, TIMESTAMPADD and TIMESTAMPDIFF. FLOOR/CEIL(x TO unit) are in fn_math.c.
 *
 * Formats are Java's SimpleDateFormat letters (yyyy, yy, MM, M, dd, d, HH, H, hh, mm, m,
 * ss, s, S..., a, and 'quoted' text). The "current" functions read the operator's
 * processing-time clock (the environment's, replaceable for tests) once per call, as
 * Flink does in streaming mode.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sql/bind_int.h"

static int64_t now_ms(sql_eval_t *ev) { return ev->ctx ? fl_ctx_processing_time(ev->ctx) : 0; }

/* The variants of the functions that share a binder and an evaluator: the table's
 * `which`, kept in the node's iparam. */
enum {
  NOW_LTZ,
  NOW_LOCAL,
  NOW_DATE,
  NOW_TIME
};
enum {
  PARSE_TIMESTAMP,
  PARSE_DATE,
  PARSE_UNIX
};

/* The clock's readings: CURRENT_TIMESTAMP, NOW, PROCTIME and CURRENT_ROW_TIMESTAMP
 * (TIMESTAMP_LTZ), LOCALTIMESTAMP, CURRENT_DATE, CURRENT_TIME and LOCALTIME. PROCTIME() is
 * the processing time attribute: the planner marks the column it makes. */
static int current_fn(sql_eval_t *ev, const sql_x_t *x, sql_val_t *out) {
  int64_t now = now_ms(ev), local = now + ev->sess->tz_offset_ms;
  out->null = false;
  switch (x->iparam) {
  case NOW_LOCAL: out->i = local; break;
  case NOW_DATE: out->i = sql_floor_div(local, 86400000); break;
  case NOW_TIME: out->i = sql_floor_mod(local, 86400000); break;
  default: out->i = now; break;
  }
  return FL_OK;
}

static sql_x_t *bind_current(sql_binder_t *b, const ast_expr_t *c, sql_x_t **a, int n, int which) {
  const sql_type_t *t = which == NOW_LOCAL  ? &sql_t_timestamp3_nn
                        : which == NOW_DATE ? sql_type_with_null(b->a, &sql_t_date, true)
                        : which == NOW_TIME ? sql_type_with_null(b->a, &sql_t_time, true)
                                            : &sql_t_timestamp_ltz3_nn;
  sql_x_t *x = sql_fn_node(b, c, current_fn, t, a, n);
  if (x) {
    x->iparam = which;
    x->is_const = false;
  }
  return x;
}

/* Fields of a datetime, in local time. */
typedef struct tfields {
  int64_t year;
  int month, day, hour, minute, second, ms, dow /* 1 = Sunday */, doy;
  int64_t days;
} tfields_t;

static void split_time(int64_t local_ms, tfields_t *f) {
  f->days = sql_floor_div(local_ms, 86400000);
  int64_t r = local_ms - f->days * 86400000;
  sql_civil_from_days(f->days, &f->year, &f->month, &f->day);
  f->hour = (int)(r / 3600000);
  f->minute = (int)(r / 60000 % 60);
  f->second = (int)(r / 1000 % 60);
  f->ms = (int)(r % 1000);
  f->dow = (int)sql_floor_mod(f->days + 4, 7) + 1;
  f->doy = (int)(f->days - sql_days_from_civil(f->year, 1, 1)) + 1;
}

static int64_t local_ms_of(sql_eval_t *ev, const sql_type_t *t, const sql_val_t *v) {
  switch (t->kind) {
  case T_DATE: return v->i * 86400000;
  case T_TIMESTAMP_LTZ: return v->i + ev->sess->tz_offset_ms;
  default: return v->i;
  }
}

/* ISO-8601 week number. */
static int iso_week(const tfields_t *f) {
  int wday = (f->dow + 5) % 7; /* 0 = Monday */
  int64_t thursday = f->days - wday + 3;
  int64_t y;
  int m, d;
  sql_civil_from_days(thursday, &y, &m, &d);
  return (int)((thursday - sql_days_from_civil(y, 1, 1)) / 7) + 1;
}

static int extract_fn(sql_eval_t *ev, const sql_x_t *x, sql_val_t *out) {
  SQL_EVAL_ARGS(ev, x, v);
  const sql_type_t *t = x->args[0]->type;
  if (sql_type_is_interval(t)) {
    int64_t i = v[0].i;
    switch (x->iparam) {
    case UNIT_YEAR: out->i = i / 12; break;
    case UNIT_MONTH: out->i = t->kind == T_INTERVAL_YM ? i % 12 : 0; break;
    case UNIT_DAY: out->i = i / 86400000; break;
    case UNIT_HOUR: out->i = i / 3600000 % 24; break;
    case UNIT_MINUTE: out->i = i / 60000 % 60; break;
    case UNIT_SECOND: out->i = i / 1000 % 60; break;
    default: out->i = i % 1000; break;
    }
    return FL_OK;
  }
  tfields_t f;
  split_time(local_ms_of(ev, t, &v[0]), &f);
  switch (x->iparam) {
  case UNIT_YEAR: out->i = f.year; break;
  case UNIT_QUARTER: out->i = (f.month - 1) / 3 + 1; break;
  case UNIT_MONTH: out->i = f.month; break;
  case UNIT_WEEK: out->i = iso_week(&f); break;
  case UNIT_DAY: out->i = f.day; break;
  case UNIT_DOW: out->i = f.dow; break;
  case UNIT_ISODOW: out->i = f.dow == 1 ? 7 : f.dow - 1; break;
  case UNIT_DOY: out->i = f.doy; break;
  case UNIT_HOUR: out->i = f.hour; break;
  case UNIT_MINUTE: out->i = f.minute; break;
  case UNIT_SECOND: out->i = f.second; break;
  case UNIT_MILLISECOND: out->i = f.second * 1000 + f.ms; break;
  case UNIT_MICROSECOND: out->i = (int64_t)(f.second * 1000 + f.ms) * 1000; break;
  case UNIT_EPOCH:
    out->i = sql_floor_div(t->kind == T_TIMESTAMP_LTZ ? v[0].i : local_ms_of(ev, t, &v[0]), 1000);
    break;
  case UNIT_DECADE: out->i = sql_floor_div(f.year, 10); break;
  case UNIT_CENTURY: out->i = f.year > 0 ? (f.year + 99) / 100 : -((-f.year + 99) / 100); break;
  case UNIT_MILLENNIUM:
    out->i = f.year > 0 ? (f.year + 999) / 1000 : -((-f.year + 999) / 1000);
    break;
  case UNIT_ISOYEAR: {
    int wday = (f.dow + 5) % 7;
    int64_t y;
    int m, d;
    sql_civil_from_days(f.days - wday + 3, &y, &m, &d);
    out->i = y;
    break;
  }
  default: return sql_eval_fail(ev, x, FL_EUSER, "unit not supported");
  }
  return FL_OK;
}

static sql_x_t *extract_node(sql_binder_t *b, const ast_expr_t *c, sql_x_t **a, int unit) {
  const sql_type_t *t = a[0]->type;
  if (!sql_type_is_temporal(t) && !sql_type_is_interval(t) && t->kind != T_NULL)
    return sql_bind_error(b, c->pos, "cannot extract a field of %s", sql_describe_x(b, a[0]));
  if (t->kind == T_TIME && unit != UNIT_HOUR && unit != UNIT_MINUTE && unit != UNIT_SECOND &&
      unit != UNIT_MILLISECOND)
    return sql_bind_error(b, c->pos, "cannot extract that field of a TIME");
  sql_x_t *x =
      sql_fn_node(b, c, extract_fn, sql_type_with_null(b->a, &sql_t_bigint, t->not_null), a, 1);
  if (x) x->iparam = unit;
  return x;
}

/* EXTRACT(unit FROM x), and its shorthands (YEAR(x): which is the unit). */
static sql_x_t *bind_extract(sql_binder_t *b, const ast_expr_t *c, sql_x_t **a, int n, int which) {
  return extract_node(b, c, a, which == UNIT_NONE ? (int)c->unit : which);
}

/* ---------------------------------------------------------------------------------- */
/* Formats                                                                            */

static void fmt_time(sql_strbuf_t *sb, const char *fmt, size_t fn, const tfields_t *f) {
  size_t i = 0;
  while (i < fn) {
    char c = fmt[i];
    if (c == '\'') {
      size_t j = i + 1;
      if (j < fn && fmt[j] == '\'') {
        sql_sb_putc(sb, '\'');
        i += 2;
        continue;
      }
      while (j < fn && fmt[j] != '\'') sql_sb_putc(sb, fmt[j++]);
      i = j + 1;
      continue;
    }
    if (!isalpha((unsigned char)c)) {
      sql_sb_putc(sb, c);
      i++;
      continue;
    }
    size_t k = 1;
    while (i + k < fn && fmt[i + k] == c) k++;
    int w = (int)k;
    switch (c) {
    case 'y':
      if (k == 2)
        sql_sb_printf(sb, "%02d", (int)(f->year % 100));
      else
        sql_sb_printf(sb, "%0*lld", w, (long long)f->year);
      break;
    case 'M': sql_sb_printf(sb, "%0*d", w > 2 ? 2 : w, f->month); break;
    case 'd': sql_sb_printf(sb, "%0*d", w, f->day); break;
    case 'H': sql_sb_printf(sb, "%0*d", w, f->hour); break;
    case 'h': sql_sb_printf(sb, "%0*d", w, f->hour % 12 == 0 ? 12 : f->hour % 12); break;
    case 'm': sql_sb_printf(sb, "%0*d", w, f->minute); break;
    case 's': sql_sb_printf(sb, "%0*d", w, f->second); break;
    case 'S': {
      char ms[16];
      snprintf(ms, sizeof ms, "%03d000000", f->ms);
      sql_sb_put(sb, ms, k > 9 ? 9 : k);
      break;
    }
    case 'a': sql_sb_put(sb, f->hour < 12 ? "AM" : "PM", 2); break;
    case 'D': sql_sb_printf(sb, "%0*d", w, f->doy); break;
    case 'E': {
      static const char *const names[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
      static const char *const full[] = {"Sunday",   "Monday", "Tuesday", "Wednesday",
                                         "Thursday", "Friday", "Saturday"};
      const char *nm = k >= 4 ? full[f->dow - 1] : names[f->dow - 1];
      sql_sb_put(sb, nm, strlen(nm));
      break;
    }
    default:
      for (size_t j = 0; j < k; j++) sql_sb_putc(sb, c);
      break;
    }
    i += k;
  }
}

/* Parses text with a format into local ms; FL_EPARSE when it does not match. */
static int parse_time_fmt(const char *s, size_t n, const char *fmt, size_t fn, int64_t *out) {
  int64_t year = 1970, v;
  int month = 1, day = 1, hour = 0, minute = 0, second = 0, ms = 0;
  bool pm = false, has_ampm = false;
  size_t i = 0, j = 0;
  while (j < fn) {
    char c = fmt[j];
    if (c == '\'') {
      size_t k = j + 1;
      while (k < fn && fmt[k] != '\'') {
        if (i >= n || s[i] != fmt[k]) return FL_EPARSE;
        i++;
        k++;
      }
      j = k + 1;
      continue;
    }
    if (!isalpha((unsigned char)c)) {
      if (i >= n || s[i] != c) return FL_EPARSE;
      i++;
      j++;
      continue;
    }
    size_t k = 1;
    while (j + k < fn && fmt[j + k] == c) k++;
    j += k;
    if (c == 'a') {
      if (i + 2 > n) return FL_EPARSE;
      has_ampm = true;
      pm = toupper((unsigned char)s[i]) == 'P';
      i += 2;
      continue;
    }
    /* digits: as many as the pattern's width, or more when the next pattern letter is
     * not a digit field (yyyy reads a whole year) */
    size_t maxd = (c == 'y' && k != 2) ? 9 : (c == 'S' ? k : (k < 2 ? 2 : k));
    bool neg = false;
    if (c == 'y' && i < n && s[i] == '-') {
      neg = true;
      i++;
    }
    size_t start = i;
    v = 0;
    while (i < n && i - start < maxd && isdigit((unsigned char)s[i])) v = v * 10 + (s[i++] - '0');
    if (i == start) return FL_EPARSE;
    switch (c) {
    case 'y': year = neg ? -v : (k == 2 ? 2000 + v : v); break;
    case 'M': month = (int)v; break;
    case 'd': day = (int)v; break;
    case 'H':
    case 'h': hour = (int)v; break;
    case 'm': minute = (int)v; break;
    case 's': second = (int)v; break;
    case 'S': {
      size_t digits = i - start;
      while (digits < 3) {
        v *= 10;
        digits++;
      }
      while (digits > 3) {
        v /= 10;
        digits--;
      }
      ms = (int)v;
      break;
    }
    default: return FL_EPARSE;
    }
  }
  if (i != n) return FL_EPARSE;
  if (has_ampm) hour = hour % 12 + (pm ? 12 : 0);
  if (month < 1 || month > 12 || day < 1 || day > 31 || hour > 23 || minute > 59 || second > 59)
    return FL_EPARSE;
  int64_t days = sql_days_from_civil(year, month, day);
  *out = days * 86400000 + ((int64_t)hour * 3600 + minute * 60 + second) * 1000 + ms;
  return FL_OK;
}

/* DATE_FORMAT(ts | string, fmt) */
static int date_format_fn(sql_eval_t *ev, const sql_x_t *x, sql_val_t *out) {
  SQL_EVAL_ARGS(ev, x, v);
  int64_t local;
  const sql_type_t *t = x->args[0]->type;
  if (sql_type_is_string(t)) {
    sql_val_t ts;
    const char *why;
    if (sql_parse_value(v[0].s.p, v[0].s.n, &sql_t_timestamp3, ev->sess, &ts, &why) != FL_OK)
      return out->null = true, FL_OK;
    local = ts.i;
  } else {
    local = local_ms_of(ev, t, &v[0]);
  }
  tfields_t f;
  split_time(local, &f);
  sql_strbuf_t sb = {0};
  fmt_time(&sb, v[1].s.p, v[1].s.n, &f);
  return sql_fn_string_result(ev, &sb, out);
}

static sql_x_t *bind_date_format(sql_binder_t *b, const ast_expr_t *c, sql_x_t **a, int n,
                                 int which) {
  const sql_type_t *t = a[0]->type;
  if (!sql_type_is_temporal(t) && !sql_type_is_string(t) && t->kind != T_NULL)
    return sql_bind_error(b, c->pos, "DATE_FORMAT needs a TIMESTAMP or a string, not %s",
                          sql_describe_x(b, a[0]));
  if (!sql_need_string(b, c, &a[1], 1)) return NULL;
  return sql_fn_node(b, c, date_format_fn, sql_type_with_null(b->a, &sql_t_string, false), a, n);
}

/* TO_TIMESTAMP(s[, fmt]) -> TIMESTAMP(3); TO_DATE(s[, fmt]) -> DATE; UNIX_TIMESTAMP(s[,
 * fmt]) -> BIGINT seconds (the text read in the session time zone).
 * Text that does not match gives NULL, as in Flink. */
static int parse_fn(sql_eval_t *ev, const sql_x_t *x, sql_val_t *out) {
  SQL_EVAL_ARGS(ev, x, v);
  const char *fmt =
      x->nargs > 1 ? v[1].s.p : (x->iparam == PARSE_DATE ? "yyyy-MM-dd" : "yyyy-MM-dd HH:mm:ss");
  size_t fn = x->nargs > 1 ? v[1].s.n : strlen(fmt);
  int64_t local;
  if (parse_time_fmt(v[0].s.p, v[0].s.n, fmt, fn, &local) != FL_OK) {
    /* TO_TIMESTAMP without a format also reads fractional seconds */
    sql_val_t tv;
    const char *why;
    if (x->nargs > 1 ||
        sql_parse_value(v[0].s.p, v[0].s.n, &sql_t_timestamp3, ev->sess, &tv, &why) != FL_OK)
      return out->null = true, FL_OK;
    local = tv.i;
  }
  switch (x->iparam) {
  case PARSE_TIMESTAMP: out->i = local; break;
  case PARSE_DATE: out->i = sql_floor_div(local, 86400000); break;
  default: out->i = sql_floor_div(local - ev->sess->tz_offset_ms, 1000); break;
  }
  return FL_OK;
}

static sql_x_t *bind_parse(sql_binder_t *b, const ast_expr_t *c, sql_x_t **a, int n, int which) {
  for (int i = 0; i < n; i++)
    if (!sql_need_string(b, c, &a[i], i)) return NULL;
  const sql_type_t *t = which == PARSE_TIMESTAMP ? &sql_t_timestamp3
                        : which == PARSE_DATE    ? &sql_t_date
                                                 : &sql_t_bigint;
  sql_x_t *x = sql_fn_node(b, c, parse_fn, t, a, n);
  if (x) x->iparam = which;
  return x;
}
static int unix_now_fn(sql_eval_t *ev, const sql_x_t *x, sql_val_t *out) {
  out->null = false;
  out->i = sql_floor_div(now_ms(ev), 1000);
  return FL_OK;
}
static sql_x_t *bind_unix_timestamp(sql_binder_t *b, const ast_expr_t *c, sql_x_t **a, int n,
                                    int which) {
  if (n == 0) {
    sql_x_t *x = sql_fn_node(b, c, unix_now_fn, &sql_t_bigint_nn, a, 0);
    if (x) x->is_const = false;
    return x;
  }
  return bind_parse(b, c, a, n, which);
}

/* TO_TIMESTAMP_LTZ(n, precision): n epoch seconds (0) or milliseconds (3). */
static int to_ltz_fn(sql_eval_t *ev, const sql_x_t *x, sql_val_t *out) {
  SQL_EVAL_ARGS(ev, x, v);
  const sql_type_t *t = x->args[0]->type;
  double d = sql_type_is_approx(t)  ? v[0].d
             : t->kind == T_DECIMAL ? (double)v[0].dec / (double)sql_pow10(t->scale)
                                    : (double)v[0].i;
  int p = x->nargs > 1 ? (int)v[1].i : 3;
  if (p != 0 && p != 3)
    return sql_eval_fail(ev, x, FL_EUSER, "the precision must be 0 or 3, not %d", p);
  if (!sql_type_is_approx(t) && t->kind != T_DECIMAL) {
    out->i = p == 0 ? v[0].i * 1000 : v[0].i;
  } else {
    out->i = (int64_t)(p == 0 ? d * 1000 : d);
  }
  return FL_OK;
}
static sql_x_t *bind_to_timestamp_ltz(sql_binder_t *b, const ast_expr_t *c, sql_x_t **a, int n,
                                      int which) {
  if (!sql_need_numeric(b, c, a[0], 0)) return NULL;
  if (n > 1 && !sql_need_integer(b, c, &a[1], 1)) return NULL;
  return sql_fn_node(b, c, to_ltz_fn,
                     sql_type_with_null(b->a, &sql_t_timestamp_ltz3, a[0]->type->not_null), a, n);
}

/* FROM_UNIXTIME(seconds[, fmt]) -> string in the session time zone. */
static int from_unixtime_fn(sql_eval_t *ev, const sql_x_t *x, sql_val_t *out) {
  SQL_EVAL_ARGS(ev, x, v);
  tfields_t f;
  split_time(v[0].i * 1000 + ev->sess->tz_offset_ms, &f);
  const char *fmt = x->nargs > 1 ? v[1].s.p : "yyyy-MM-dd HH:mm:ss";
  size_t fn = x->nargs > 1 ? v[1].s.n : strlen(fmt);
  sql_strbuf_t sb = {0};
  fmt_time(&sb, fmt, fn, &f);
  return sql_fn_string_result(ev, &sb, out);
}
static sql_x_t *bind_from_unixtime(sql_binder_t *b, const ast_expr_t *c, sql_x_t **a, int n,
                                   int which) {
  if (!sql_need_integer(b, c, &a[0], 0)) return NULL;
  if (n > 1 && !sql_need_string(b, c, &a[1], 1)) return NULL;
  return sql_fn_node(b, c, from_unixtime_fn,
                     sql_type_with_null(b->a, &sql_t_string, sql_fn_args_not_null(a, n)), a, n);
}

/* TIMESTAMPADD(unit, n, ts) */
static int tsadd_fn(sql_eval_t *ev, const sql_x_t *x, sql_val_t *out) {
  SQL_EVAL_ARGS(ev, x, v);
  bool is_date = x->type->kind == T_DATE;
  int64_t n = v[0].i;
  int64_t u = sql_unit_ms((int)x->iparam);
  if (u) {
    out->i = is_date ? v[1].i + sql_floor_div(n * u, 86400000) : v[1].i + n * u;
  } else {
    int64_t months = x->iparam == UNIT_YEAR ? n * 12 : x->iparam == UNIT_QUARTER ? n * 3 : n;
    out->i = sql_add_months(v[1].i, months, is_date);
  }
  return FL_OK;
}
static sql_x_t *bind_timestampadd(sql_binder_t *b, const ast_expr_t *c, sql_x_t **a, int n,
                                  int which) {
  if (!sql_need_integer(b, c, &a[0], 0)) return NULL;
  if (!sql_type_is_temporal(a[1]->type) || a[1]->type->kind == T_TIME)
    return sql_bind_error(b, c->pos, "TIMESTAMPADD needs a TIMESTAMP or DATE, not %s",
                          sql_describe_x(b, a[1]));
  if (c->unit == UNIT_NONE || (c->unit > UNIT_YEAR))
    return sql_bind_error(b, c->pos, "TIMESTAMPADD: unsupported unit");
  sql_x_t *x = sql_fn_node(b, c, tsadd_fn,
                           sql_type_with_null(b->a, a[1]->type, sql_fn_args_not_null(a, n)), a, n);
  if (x) x->iparam = c->unit;
  return x;
}

/* TIMESTAMPDIFF(unit, t1, t2): whole units from t1 to t2. */
static int tsdiff_fn(sql_eval_t *ev, const sql_x_t *x, sql_val_t *out) {
  SQL_EVAL_ARGS(ev, x, v);
  int64_t a = local_ms_of(ev, x->args[0]->type, &v[0]);
  int64_t b = local_ms_of(ev, x->args[1]->type, &v[1]);
  int64_t u = sql_unit_ms((int)x->iparam);
  if (u) {
    out->i = (b - a) / u;
    return FL_OK;
  }
  tfields_t fa, fb;
  split_time(a, &fa);
  split_time(b, &fb);
  int64_t months = (fb.year - fa.year) * 12 + (fb.month - fa.month);
  /* a partial month does not count */
  int64_t ra = a - sql_days_from_civil(fa.year, fa.month, 1) * 86400000;
  int64_t rb = b - sql_days_from_civil(fb.year, fb.month, 1) * 86400000;
  if (months > 0 && rb < ra) months--;
  if (months < 0 && rb > ra) months++;
  out->i = x->iparam == UNIT_YEAR ? months / 12 : x->iparam == UNIT_QUARTER ? months / 3 : months;
  return FL_OK;
}
static sql_x_t *bind_timestampdiff(sql_binder_t *b, const ast_expr_t *c, sql_x_t **a, int n,
                                   int which) {
  for (int i = 0; i < 2; i++)
    if (!sql_type_is_temporal(a[i]->type) || a[i]->type->kind == T_TIME)
      return sql_bind_error(b, c->pos, "TIMESTAMPDIFF needs TIMESTAMP or DATE arguments, not %s",
                            sql_describe_x(b, a[i]));
  if (c->unit == UNIT_NONE || c->unit > UNIT_YEAR)
    return sql_bind_error(b, c->pos, "TIMESTAMPDIFF: unsupported unit");
  sql_x_t *x = sql_fn_node(b, c, tsdiff_fn,
                           sql_type_with_null(b->a, &sql_t_int, sql_fn_args_not_null(a, n)), a, n);
  if (x) x->iparam = c->unit;
  return x;
}

const sql_fn_def_t sql_fns_time[] = {{"CURRENT_TIMESTAMP", bind_current, 0, 0, NOW_LTZ},
                                     {"NOW", bind_current, 0, 0, NOW_LTZ},
                                     {"PROCTIME", bind_current, 0, 0, NOW_LTZ},
                                     {"CURRENT_ROW_TIMESTAMP", bind_current, 0, 0, NOW_LTZ},
                                     {"LOCALTIMESTAMP", bind_current, 0, 0, NOW_LOCAL},
                                     {"CURRENT_DATE", bind_current, 0, 0, NOW_DATE},
                                     {"CURRENT_TIME", bind_current, 0, 0, NOW_TIME},
                                     {"LOCALTIME", bind_current, 0, 0, NOW_TIME},
                                     {"EXTRACT", bind_extract, 1, 1, UNIT_NONE},
                                     {"YEAR", bind_extract, 1, 1, UNIT_YEAR},
                                     {"QUARTER", bind_extract, 1, 1, UNIT_QUARTER},
                                     {"MONTH", bind_extract, 1, 1, UNIT_MONTH},
                                     {"WEEK", bind_extract, 1, 1, UNIT_WEEK},
                                     {"DAYOFYEAR", bind_extract, 1, 1, UNIT_DOY},
                                     {"DAYOFMONTH", bind_extract, 1, 1, UNIT_DAY},
                                     {"DAYOFWEEK", bind_extract, 1, 1, UNIT_DOW},
                                     {"HOUR", bind_extract, 1, 1, UNIT_HOUR},
                                     {"MINUTE", bind_extract, 1, 1, UNIT_MINUTE},
                                     {"SECOND", bind_extract, 1, 1, UNIT_SECOND},
                                     {"DATE_FORMAT", bind_date_format, 2, 2, 0},
                                     {"TO_TIMESTAMP", bind_parse, 1, 2, PARSE_TIMESTAMP},
                                     {"TO_DATE", bind_parse, 1, 2, PARSE_DATE},
                                     {"UNIX_TIMESTAMP", bind_unix_timestamp, 0, 2, PARSE_UNIX},
                                     {"TO_TIMESTAMP_LTZ", bind_to_timestamp_ltz, 1, 2, 0},
                                     {"FROM_UNIXTIME", bind_from_unixtime, 1, 2, 0},
                                     {"TIMESTAMPADD", bind_timestampadd, 2, 2, 0},
                                     {"TIMESTAMPDIFF", bind_timestampdiff, 2, 2, 0},
                                     {NULL, NULL, 0, 0, 0}};
