/*
 * Values (expr.h): decimal arithmetic helpers, the calendar, comparisons, and the text
 * forms of values: how CAST(x AS STRING) and the print sink write them, and how a
 * string is read back as a value (CAST from STRING, the JSON format's fallback).
 *
 * Text forms follow Flink: DATE yyyy-MM-dd, TIME HH:mm:ss, TIMESTAMP(p)
 * "yyyy-MM-dd HH:mm:ss" with p fractional digits, TIMESTAMP_LTZ the same in the session
 * time zone, DECIMAL with exactly its scale, DOUBLE as Java prints a double (1.0, 12.5,
 * 1.0E10), BOOLEAN TRUE / FALSE, ROW (a, b).
 */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "sql/expr.h"

sql_i128 sql_pow10(int k) {
  sql_i128 v = 1;
  for (int i = 0; i < k; i++) v *= 10;
  return v;
}

/* HALF_UP: away from zero at .5, as Java's BigDecimal.ROUND_HALF_UP. */
sql_i128 sql_dec_rescale(sql_i128 v, int from_scale, int to_scale) {
  if (to_scale == from_scale) return v;
  if (to_scale > from_scale) return v * sql_pow10(to_scale - from_scale);
  sql_i128 div = sql_pow10(from_scale - to_scale);
  sql_i128 q = v / div, r = v % div;
  if (r < 0) r = -r;
  if (r * 2 >= div) q += v < 0 ? -1 : 1;
  return q;
}

bool sql_dec_fits(sql_i128 v, int precision) {
  sql_i128 lim = sql_pow10(precision);
  return v < lim && v > -lim;
}

int64_t sql_floor_div(int64_t a, int64_t b) {
  int64_t q = a / b;
  if ((a % b != 0) && ((a < 0) != (b < 0))) q--;
  return q;
}

int64_t sql_floor_mod(int64_t a, int64_t b) { return a - sql_floor_div(a, b) * b; }

/* Days since 1970-01-01 of a proleptic Gregorian date (eras of 400 years). */
int64_t sql_days_from_civil(int64_t y, int m, int d) {
  y -= m <= 2;
  int64_t era = sql_floor_div(y, 400);
  int64_t yoe = y - era * 400;
  int64_t mp = (m + 9) % 12;
  int64_t doy = (153 * mp + 2) / 5 + d - 1;
  int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468;
}

void sql_civil_from_days(int64_t z, int64_t *y, int *m, int *d) {
  z += 719468;
  int64_t era = sql_floor_div(z, 146097);
  int64_t doe = z - era * 146097;
  int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  int64_t mp = (5 * doy + 2) / 153;
  *d = (int)(doy - (153 * mp + 2) / 5 + 1);
  *m = (int)(mp < 10 ? mp + 3 : mp - 9);
  *y = yoe + era * 400 + (*m <= 2);
}

/* ---------------------------------------------------------------------------------- */
/* String buffer                                                                      */

static void sb_reserve(sql_strbuf_t *b, size_t need) {
  if (b->failed || b->n + need + 1 <= b->cap) return;
  size_t nc = b->cap ? b->cap * 2 : 128;
  while (nc < b->n + need + 1) nc *= 2;
  char *p = realloc(b->p, nc);
  if (!p) {
    b->failed = 1;
    return;
  }
  b->p = p;
  b->cap = nc;
}

void sql_sb_put(sql_strbuf_t *b, const char *s, size_t n) {
  sb_reserve(b, n);
  if (b->failed) return;
  memcpy(b->p + b->n, s, n);
  b->n += n;
  b->p[b->n] = 0;
}

void sql_sb_putc(sql_strbuf_t *b, char c) { sql_sb_put(b, &c, 1); }

void sql_sb_printf(sql_strbuf_t *b, const char *fmt, ...) {
  char tmp[128];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
  va_end(ap);
  if (n < 0) return;
  if ((size_t)n < sizeof tmp) {
    sql_sb_put(b, tmp, (size_t)n);
    return;
  }
  sb_reserve(b, (size_t)n);
  if (b->failed) return;
  va_start(ap, fmt);
  vsnprintf(b->p + b->n, (size_t)n + 1, fmt, ap);
  va_end(ap);
  b->n += (size_t)n;
}

void sql_sb_free(sql_strbuf_t *b) {
  free(b->p);
  memset(b, 0, sizeof *b);
}

/* ---------------------------------------------------------------------------------- */
/* Formatting                                                                         */

static void put_i128(sql_strbuf_t *b, sql_i128 v) {
  char tmp[48];
  int n = 0;
  bool neg = v < 0;
  unsigned __int128 u = neg ? (unsigned __int128)(-(v + 1)) + 1 : (unsigned __int128)v;
  do {
    tmp[n++] = (char)('0' + (int)(u % 10));
    u /= 10;
  } while (u);
  if (neg) sql_sb_putc(b, '-');
  while (n) sql_sb_putc(b, tmp[--n]);
}

static void put_decimal(sql_strbuf_t *b, sql_i128 v, int scale) {
  if (scale == 0) {
    put_i128(b, v);
    return;
  }
  sql_i128 p = sql_pow10(scale);
  sql_i128 ip = v / p, fp = v % p;
  if (v < 0) {
    sql_sb_putc(b, '-');
    ip = -ip;
    fp = -fp;
  }
  put_i128(b, ip);
  sql_sb_putc(b, '.');
  char tmp[48];
  for (int i = scale - 1; i >= 0; i--) {
    tmp[i] = (char)('0' + (int)(fp % 10));
    fp /= 10;
  }
  sql_sb_put(b, tmp, (size_t)scale);
}

/* A double as Java's Double.toString writes it: the shortest digits that read back as
 * the same double, in plain notation for 1e-3 <= |x| < 1e7 (always with a fraction:
 * 1.0), else d.dddE[-]n. */
static void put_double(sql_strbuf_t *b, double d) {
  if (isnan(d)) {
    sql_sb_put(b, "NaN", 3);
    return;
  }
  if (isinf(d)) {
    if (d < 0) sql_sb_putc(b, '-');
    sql_sb_put(b, "Infinity", 8);
    return;
  }
  if (d == 0) {
    sql_sb_put(b, signbit(d) ? "-0.0" : "0.0", signbit(d) ? 4 : 3);
    return;
  }
  char digits[40];
  int prec;
  for (prec = 1; prec <= 17; prec++) {
    snprintf(digits, sizeof digits, "%.*e", prec - 1, d);
    if (strtod(digits, NULL) == d) break;
  }
  /* digits: [-]d[.ddd]e[+-]xx */
  char *p = digits;
  bool neg = *p == '-';
  if (neg) p++;
  char mant[24];
  int nm = 0;
  char *e = strchr(p, 'e');
  for (char *q = p; q < e; q++)
    if (isdigit((unsigned char)*q)) mant[nm++] = *q;
  while (nm > 1 && mant[nm - 1] == '0') nm--;
  int exp = atoi(e + 1);
  if (neg) sql_sb_putc(b, '-');
  if (exp >= -3 && exp < 7) {
    if (exp >= 0) {
      for (int i = 0; i <= exp; i++) sql_sb_putc(b, i < nm ? mant[i] : '0');
      sql_sb_putc(b, '.');
      if (nm > exp + 1) {
        sql_sb_put(b, mant + exp + 1, (size_t)(nm - exp - 1));
      } else {
        sql_sb_putc(b, '0');
      }
    } else {
      sql_sb_put(b, "0.", 2);
      for (int i = 0; i < -exp - 1; i++) sql_sb_putc(b, '0');
      sql_sb_put(b, mant, (size_t)nm);
    }
  } else {
    sql_sb_putc(b, mant[0]);
    sql_sb_putc(b, '.');
    if (nm > 1) {
      sql_sb_put(b, mant + 1, (size_t)(nm - 1));
    } else {
      sql_sb_putc(b, '0');
    }
    sql_sb_printf(b, "E%d", exp);
  }
}

static void put_date(sql_strbuf_t *b, int64_t days) {
  int64_t y;
  int m, d;
  sql_civil_from_days(days, &y, &m, &d);
  sql_sb_printf(b, "%04lld-%02d-%02d", (long long)y, m, d);
}

static void put_time(sql_strbuf_t *b, int64_t ms_of_day, int precision) {
  int64_t s = ms_of_day / 1000;
  sql_sb_printf(b, "%02d:%02d:%02d", (int)(s / 3600), (int)(s / 60 % 60), (int)(s % 60));
  if (precision > 0) {
    char frac[16];
    snprintf(frac, sizeof frac, "%03d000000", (int)(ms_of_day % 1000));
    sql_sb_putc(b, '.');
    sql_sb_put(b, frac, (size_t)(precision > 9 ? 9 : precision));
  }
}

static void put_timestamp(sql_strbuf_t *b, int64_t ms, int precision) {
  int64_t days = sql_floor_div(ms, 86400000);
  put_date(b, days);
  sql_sb_putc(b, ' ');
  put_time(b, ms - days * 86400000, precision);
}

void sql_sb_value(sql_strbuf_t *b, const sql_type_t *t, const sql_val_t *v,
                  const sql_session_t *sess) {
  if (v->null) {
    sql_sb_put(b, "NULL", 4);
    return;
  }
  switch (t->kind) {
  case T_BOOLEAN: sql_sb_put(b, v->i ? "TRUE" : "FALSE", v->i ? 4 : 5); break;
  case T_TINYINT:
  case T_SMALLINT:
  case T_INT:
  case T_BIGINT: sql_sb_printf(b, "%lld", (long long)v->i); break;
  case T_FLOAT: put_double(b, (double)(float)v->d); break;
  case T_DOUBLE: put_double(b, v->d); break;
  case T_DECIMAL: put_decimal(b, v->dec, t->scale); break;
  case T_CHAR:
  case T_VARCHAR: sql_sb_put(b, v->s.p, v->s.n); break;
  case T_BINARY:
  case T_VARBINARY:
    for (size_t i = 0; i < v->s.n; i++) sql_sb_printf(b, "%02x", (unsigned char)v->s.p[i]);
    break;
  case T_DATE: put_date(b, v->i); break;
  case T_TIME: put_time(b, v->i, t->precision); break;
  case T_TIMESTAMP: put_timestamp(b, v->i, t->precision); break;
  case T_TIMESTAMP_LTZ:
    put_timestamp(b, v->i + (sess ? sess->tz_offset_ms : 0), t->precision);
    break;
  case T_INTERVAL_DT: {
    int64_t ms = v->i;
    bool neg = ms < 0;
    if (neg) ms = -ms;
    sql_sb_printf(b, "%s%lld %02d:%02d:%02d.%03d", neg ? "-" : "+", (long long)(ms / 86400000),
                  (int)(ms / 3600000 % 24), (int)(ms / 60000 % 60), (int)(ms / 1000 % 60),
                  (int)(ms % 1000));
    break;
  }
  case T_INTERVAL_YM: {
    int64_t mo = v->i;
    bool neg = mo < 0;
    if (neg) mo = -mo;
    sql_sb_printf(b, "%s%lld-%02d", neg ? "-" : "+", (long long)(mo / 12), (int)(mo % 12));
    break;
  }
  case T_ROW: {
    const uint8_t *r = (const uint8_t *)v->s.p;
    sql_sb_putc(b, '(');
    for (int i = 0; i < t->n_fields; i++) {
      if (i) sql_sb_put(b, ", ", 2);
      sql_val_t fv;
      sql_read_col(r, t->n_fields, i, t->field_types[i], &fv);
      sql_sb_value(b, t->field_types[i], &fv, sess);
    }
    sql_sb_putc(b, ')');
    break;
  }
  default: sql_sb_put(b, "?", 1); break;
  }
}

int sql_format_value(sql_eval_t *ev, const sql_type_t *t, const sql_val_t *v, const char **p,
                     size_t *n) {
  sql_strbuf_t b = {0};
  sql_sb_value(&b, t, v, ev->sess);
  if (b.failed) {
    sql_sb_free(&b);
    return FL_ENOMEM;
  }
  char *out = sql_scratch_alloc(&ev->scratch, b.n + 1);
  if (!out) {
    sql_sb_free(&b);
    return FL_ENOMEM;
  }
  if (b.n) memcpy(out, b.p, b.n);
  out[b.n] = 0;
  *p = out;
  *n = b.n;
  sql_sb_free(&b);
  return FL_OK;
}

/* ---------------------------------------------------------------------------------- */
/* Parsing                                                                            */

static void trim(const char **s, size_t *n) {
  while (*n && isspace((unsigned char)**s)) {
    (*s)++;
    (*n)--;
  }
  while (*n && isspace((unsigned char)(*s)[*n - 1])) (*n)--;
}

/* The text without blanks around it as a C string in tmp (of cap bytes); false when
 * that is empty or does not fit. */
static bool trimmed_copy(const char *s, size_t n, char *tmp, size_t cap) {
  trim(&s, &n);
  if (n == 0 || n >= cap) return false;
  memcpy(tmp, s, n);
  tmp[n] = 0;
  return true;
}

static int parse_int(const char *s, size_t n, int64_t lo, int64_t hi, int64_t *out,
                     const char **why) {
  char tmp[41];
  if (!trimmed_copy(s, n, tmp, sizeof tmp)) {
    *why = "not an integer";
    return FL_EPARSE;
  }
  char *end;
  errno = 0;
  long long v = strtoll(tmp, &end, 10);
  if (*end != 0 || end == tmp) {
    *why = "not an integer";
    return FL_EPARSE;
  }
  if (errno == ERANGE || v < lo || v > hi) {
    *why = "out of the type's range";
    return FL_EPARSE;
  }
  *out = v;
  return FL_OK;
}

/* [-+]digits[.digits][e[-+]digits] into an unscaled value at `scale`. */
static int parse_decimal(const char *s, size_t n, int precision, int scale, sql_i128 *out,
                         const char **why) {
  trim(&s, &n);
  size_t i = 0;
  bool neg = false;
  if (i < n && (s[i] == '-' || s[i] == '+')) neg = s[i++] == '-';
  sql_i128 v = 0;
  int digits = 0, frac = 0;
  bool dot = false, any = false;
  for (; i < n; i++) {
    char c = s[i];
    if (c == '.' && !dot) {
      dot = true;
      continue;
    }
    if (!isdigit((unsigned char)c)) break;
    any = true;
    if (digits < 38) {
      v = v * 10 + (c - '0');
      if (v != 0) digits++;
      if (dot) frac++;
    } else if (!dot) {
      *why = "too many digits";
      return FL_EPARSE;
    }
  }
  int exp = 0;
  if (i < n && (s[i] == 'e' || s[i] == 'E')) {
    i++;
    int64_t e;
    if (parse_int(s + i, n - i, -100, 100, &e, why) != FL_OK) return FL_EPARSE;
    exp = (int)e;
    i = n;
  }
  if (!any || i != n) {
    *why = "not a number";
    return FL_EPARSE;
  }
  int cur_scale = frac - exp;
  if (cur_scale < 0) {
    if (digits - cur_scale > 38) {
      *why = "out of the type's range";
      return FL_EPARSE;
    }
    v *= sql_pow10(-cur_scale);
    cur_scale = 0;
  }
  if (cur_scale > 76) {
    v = 0;
    cur_scale = scale;
  }
  while (cur_scale > scale + 38) {
    v /= 10;
    cur_scale--;
  }
  v = sql_dec_rescale(v, cur_scale, scale);
  if (neg) v = -v;
  if (!sql_dec_fits(v, precision)) {
    *why = "out of the type's range";
    return FL_EPARSE;
  }
  *out = v;
  return FL_OK;
}

static bool digits_at(const char *s, size_t n, size_t i, size_t k, int *out) {
  if (i + k > n) return false;
  int v = 0;
  for (size_t j = 0; j < k; j++) {
    if (!isdigit((unsigned char)s[i + j])) return false;
    v = v * 10 + (s[i + j] - '0');
  }
  *out = v;
  return true;
}

/* Reads 1..max digits. */
static bool num_at(const char *s, size_t n, size_t *i, int max, int64_t *out) {
  int64_t v = 0;
  int k = 0;
  while (*i < n && k < max && isdigit((unsigned char)s[*i])) {
    v = v * 10 + (s[*i] - '0');
    (*i)++;
    k++;
  }
  *out = v;
  return k > 0;
}

static int parse_date_part(const char *s, size_t n, size_t *i, int64_t *days) {
  int64_t y, m, d;
  bool neg = false;
  if (*i < n && s[*i] == '-') {
    neg = true;
    (*i)++;
  }
  if (!num_at(s, n, i, 9, &y) || *i >= n || s[*i] != '-') return FL_EPARSE;
  (*i)++;
  if (!num_at(s, n, i, 2, &m) || *i >= n || s[*i] != '-') return FL_EPARSE;
  (*i)++;
  if (!num_at(s, n, i, 2, &d)) return FL_EPARSE;
  if (neg) y = -y;
  if (m < 1 || m > 12 || d < 1 || d > 31) return FL_EPARSE;
  int64_t days0 = sql_days_from_civil(y, (int)m, (int)d);
  int64_t yy;
  int mm, dd;
  sql_civil_from_days(days0, &yy, &mm, &dd);
  if (mm != m || dd != d) return FL_EPARSE; /* e.g. February 30 */
  *days = days0;
  return FL_OK;
}

/* HH:mm[:ss[.fffffffff]] into ms of the day (fractions below ms are cut). */
static int parse_time_part(const char *s, size_t n, size_t *i, int64_t *ms) {
  int64_t h, m, sec = 0, frac_ms = 0;
  if (!num_at(s, n, i, 2, &h) || *i >= n || s[*i] != ':') return FL_EPARSE;
  (*i)++;
  if (!num_at(s, n, i, 2, &m)) return FL_EPARSE;
  if (*i < n && s[*i] == ':') {
    (*i)++;
    if (!num_at(s, n, i, 2, &sec)) return FL_EPARSE;
    if (*i < n && s[*i] == '.') {
      (*i)++;
      int k = 0;
      int64_t f = 0;
      while (*i < n && isdigit((unsigned char)s[*i])) {
        if (k < 3) f = f * 10 + (s[*i] - '0');
        k++;
        (*i)++;
      }
      if (k == 0) return FL_EPARSE;
      for (int j = k; j < 3; j++) f *= 10;
      frac_ms = f;
    }
  }
  if (h > 23 || m > 59 || sec > 59) return FL_EPARSE;
  *ms = ((h * 60 + m) * 60 + sec) * 1000 + frac_ms;
  return FL_OK;
}

/* All of the trimmed text read by part (a date or a time); else what it is not. */
static int parse_whole(int (*part)(const char *, size_t, size_t *, int64_t *), const char *s,
                       size_t n, int64_t *out, const char **why, const char *not_one) {
  trim(&s, &n);
  size_t i = 0;
  if (part(s, n, &i, out) != FL_OK || i != n) {
    *why = not_one;
    return FL_EPARSE;
  }
  return FL_OK;
}

/* A zone suffix: Z, +hh:mm, +hhmm, +hh. */
static int parse_zone(const char *s, size_t n, size_t *i, int64_t *offset_ms, bool *has) {
  *has = false;
  *offset_ms = 0;
  if (*i >= n) return FL_OK;
  if (s[*i] == 'Z' || s[*i] == 'z') {
    (*i)++;
    *has = true;
    return FL_OK;
  }
  if (s[*i] == '+' || s[*i] == '-') {
    int sign = s[*i] == '-' ? -1 : 1;
    (*i)++;
    int hh, mm = 0;
    if (!digits_at(s, n, *i, 2, &hh)) return FL_EPARSE;
    *i += 2;
    if (*i < n && s[*i] == ':') (*i)++;
    if (digits_at(s, n, *i, 2, &mm)) *i += 2;
    *offset_ms = sign * ((int64_t)hh * 3600000 + (int64_t)mm * 60000);
    *has = true;
  }
  return FL_OK;
}

int sql_parse_value(const char *text, size_t n, const sql_type_t *t, const sql_session_t *sess,
                    sql_val_t *out, const char **why) {
  out->null = false;
  *why = "malformed";
  const char *s = text;
  switch (t->kind) {
  case T_BOOLEAN: {
    trim(&s, &n);
    static const char *const yes[] = {"true", "t", "yes", "y", "1", NULL};
    static const char *const no[] = {"false", "f", "no", "n", "0", NULL};
    for (int i = 0; yes[i]; i++)
      if (n == strlen(yes[i]) && strncasecmp(s, yes[i], n) == 0) return out->i = 1, FL_OK;
    for (int i = 0; no[i]; i++)
      if (n == strlen(no[i]) && strncasecmp(s, no[i], n) == 0) return out->i = 0, FL_OK;
    *why = "not a boolean";
    return FL_EPARSE;
  }
  case T_TINYINT: return parse_int(s, n, -128, 127, &out->i, why);
  case T_SMALLINT: return parse_int(s, n, -32768, 32767, &out->i, why);
  case T_INT: return parse_int(s, n, INT32_MIN, INT32_MAX, &out->i, why);
  case T_BIGINT: return parse_int(s, n, INT64_MIN, INT64_MAX, &out->i, why);
  case T_FLOAT:
  case T_DOUBLE: {
    char tmp[65];
    if (!trimmed_copy(s, n, tmp, sizeof tmp)) {
      *why = "not a number";
      return FL_EPARSE;
    }
    char *end;
    double d = strtod(tmp, &end);
    if (*end != 0) {
      if (strcmp(tmp, "NaN") == 0)
        d = NAN;
      else if (strcmp(tmp, "Infinity") == 0)
        d = INFINITY;
      else if (strcmp(tmp, "-Infinity") == 0)
        d = -INFINITY;
      else {
        *why = "not a number";
        return FL_EPARSE;
      }
    }
    out->d = t->kind == T_FLOAT ? (double)(float)d : d;
    return FL_OK;
  }
  case T_DECIMAL: return parse_decimal(s, n, t->precision, t->scale, &out->dec, why);
  case T_CHAR:
  case T_VARCHAR:
  case T_BINARY:
  case T_VARBINARY:
    out->s.p = s;
    out->s.n = n;
    return FL_OK;
  case T_DATE: return parse_whole(parse_date_part, s, n, &out->i, why, "not a date (yyyy-MM-dd)");
  case T_TIME: return parse_whole(parse_time_part, s, n, &out->i, why, "not a time (HH:mm:ss)");
  case T_TIMESTAMP:
  case T_TIMESTAMP_LTZ: {
    trim(&s, &n);
    size_t i = 0;
    int64_t days, ms = 0;
    *why = t->kind == T_TIMESTAMP ? "not a timestamp (yyyy-MM-dd HH:mm:ss[.SSS])"
                                  : "not a timestamp (yyyy-MM-dd HH:mm:ss[.SSS][Z])";
    if (parse_date_part(s, n, &i, &days) != FL_OK) return FL_EPARSE;
    if (i < n && (s[i] == ' ' || s[i] == 'T' || s[i] == 't')) {
      i++;
      if (parse_time_part(s, n, &i, &ms) != FL_OK) return FL_EPARSE;
    }
    int64_t off;
    bool has_zone;
    if (parse_zone(s, n, &i, &off, &has_zone) != FL_OK || i != n) return FL_EPARSE;
    int64_t v = days * 86400000 + ms;
    if (t->kind == T_TIMESTAMP_LTZ) {
      v -= has_zone ? off : (sess ? sess->tz_offset_ms : 0);
    } else if (has_zone) {
      v -= off;
    }
    out->i = v;
    return FL_OK;
  }
  default: *why = "cannot be read from a string"; return FL_EPARSE;
  }
}

/* ---------------------------------------------------------------------------------- */
/* Comparison                                                                         */

int sql_val_cmp(const sql_type_t *t, const sql_val_t *a, const sql_val_t *b) {
  switch (t->kind) {
  case T_FLOAT:
  case T_DOUBLE:
    if (a->d < b->d) return -1;
    if (a->d > b->d) return 1;
    if (a->d == b->d) return 0;
    /* NaN is larger than everything and equal to itself, as in Java's Double.compare */
    return isnan(a->d) ? (isnan(b->d) ? 0 : 1) : -1;
  case T_DECIMAL: return a->dec < b->dec ? -1 : a->dec > b->dec;
  case T_CHAR:
  case T_VARCHAR:
  case T_BINARY:
  case T_VARBINARY:
  case T_ROW: {
    size_t n = a->s.n < b->s.n ? a->s.n : b->s.n;
    int c = n ? memcmp(a->s.p, b->s.p, n) : 0;
    if (c) return c < 0 ? -1 : 1;
    return a->s.n < b->s.n ? -1 : a->s.n > b->s.n;
  }
  default: return a->i < b->i ? -1 : a->i > b->i;
  }
}
