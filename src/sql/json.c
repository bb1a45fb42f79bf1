/*
 * The json format (json.h) and the path lookup behind JSON_VALUE.
 */
#include "sql/json.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct jp {
  const char *s, *end;
  char *err;
  size_t err_size;
} jp_t;

static void ws(jp_t *p) {
  while (p->s < p->end && (*p->s == ' ' || *p->s == '\t' || *p->s == '\n' || *p->s == '\r')) p->s++;
}

static int jfail(jp_t *p, const char *what) {
  if (p->err && p->err_size && !p->err[0]) snprintf(p->err, p->err_size, "%s", what);
  return FL_EPARSE;
}

/* A string token: *raw points after the opening quote, *rn its raw length (escapes
 * included), *esc whether it has escapes. */
static int str_tok(jp_t *p, const char **raw, size_t *rn, bool *esc) {
  if (p->s >= p->end || *p->s != '"') return jfail(p, "expected a string");
  p->s++;
  const char *b = p->s;
  *esc = false;
  while (p->s < p->end && *p->s != '"') {
    if (*p->s == '\\') {
      *esc = true;
      p->s++;
    }
    p->s++;
  }
  if (p->s >= p->end) return jfail(p, "unterminated string");
  *raw = b;
  *rn = (size_t)(p->s - b);
  p->s++;
  return FL_OK;
}

static void put_utf8(char **o, uint32_t cp) {
  char *q = *o;
  if (cp < 0x80) {
    *q++ = (char)cp;
  } else if (cp < 0x800) {
    *q++ = (char)(0xC0 | (cp >> 6));
    *q++ = (char)(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    *q++ = (char)(0xE0 | (cp >> 12));
    *q++ = (char)(0x80 | ((cp >> 6) & 0x3F));
    *q++ = (char)(0x80 | (cp & 0x3F));
  } else {
    *q++ = (char)(0xF0 | (cp >> 18));
    *q++ = (char)(0x80 | ((cp >> 12) & 0x3F));
    *q++ = (char)(0x80 | ((cp >> 6) & 0x3F));
    *q++ = (char)(0x80 | (cp & 0x3F));
  }
  *o = q;
}

/* Unescapes raw into out (at most rn bytes are needed); returns the length. */
static size_t unescape(const char *raw, size_t rn, char *out) {
  char *o = out;
  for (size_t i = 0; i < rn; i++) {
    char c = raw[i];
    if (c != '\\' || i + 1 >= rn) {
      *o++ = c;
      continue;
    }
    c = raw[++i];
    switch (c) {
    case 'n': *o++ = '\n'; break;
    case 't': *o++ = '\t'; break;
    case 'r': *o++ = '\r'; break;
    case 'b': *o++ = '\b'; break;
    case 'f': *o++ = '\f'; break;
    case 'u': {
      uint32_t cp = 0;
      int k;
      for (k = 0; k < 4 && i + 1 < rn && isxdigit((unsigned char)raw[i + 1]); k++) {
        char h = raw[++i];
        cp = cp * 16 + (uint32_t)(isdigit((unsigned char)h)
                                      ? h - '0'
                                      : (tolower((unsigned char)h) - 'a' + 10));
      }
      if (cp >= 0xD800 && cp < 0xDC00 && i + 6 < rn + 1 && raw[i + 1] == '\\' &&
          raw[i + 2] == 'u') {
        uint32_t lo = 0;
        size_t j = i + 3;
        for (k = 0; k < 4 && j < rn && isxdigit((unsigned char)raw[j]); k++, j++) {
          char h = raw[j];
          lo = lo * 16 + (uint32_t)(isdigit((unsigned char)h)
                                        ? h - '0'
                                        : (tolower((unsigned char)h) - 'a' + 10));
        }
        if (lo >= 0xDC00 && lo < 0xE000) {
          cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
          i = j - 1;
        }
      }
      put_utf8(&o, cp);
      break;
    }
    default: *o++ = c; break;
    }
  }
  return (size_t)(o - out);
}

/* Skips any value. */
static int skip(jp_t *p, int depth) {
  ws(p);
  if (p->s >= p->end) return jfail(p, "unexpected end of JSON");
  if (depth > 64) return jfail(p, "JSON nested too deeply");
  char c = *p->s;
  if (c == '"') {
    const char *r;
    size_t n;
    bool e;
    return str_tok(p, &r, &n, &e);
  }
  if (c == '{' || c == '[') {
    char close = c == '{' ? '}' : ']';
    p->s++;
    ws(p);
    if (p->s < p->end && *p->s == close) {
      p->s++;
      return FL_OK;
    }
    for (;;) {
      if (c == '{') {
        const char *r;
        size_t n;
        bool e;
        ws(p);
        if (str_tok(p, &r, &n, &e)) return FL_EPARSE;
        ws(p);
        if (p->s >= p->end || *p->s != ':') return jfail(p, "expected ':'");
        p->s++;
      }
      if (skip(p, depth + 1)) return FL_EPARSE;
      ws(p);
      if (p->s < p->end && *p->s == ',') {
        p->s++;
        continue;
      }
      if (p->s < p->end && *p->s == close) {
        p->s++;
        return FL_OK;
      }
      return jfail(p, "expected ',' or the end of an object or array");
    }
  }
  const char *b = p->s;
  while (p->s < p->end &&
         (isalnum((unsigned char)*p->s) || *p->s == '-' || *p->s == '+' || *p->s == '.'))
    p->s++;
  if (p->s == b) return jfail(p, "unexpected character in JSON");
  return FL_OK;
}

static int read_object(const sql_json_fmt_t *f, sql_json_state_t *st, int depth, jp_t *p, int n,
                       const char **names, const sql_type_t **types, const char *path);

/* Reads one value of type t into column i of builder rb. */
static int read_value(const sql_json_fmt_t *f, sql_json_state_t *st, int depth, jp_t *p,
                      sql_rb_t *rb, int i, const sql_type_t *t, const char *name) {
  ws(p);
  if (p->s >= p->end) return jfail(p, "unexpected end of JSON");
  char c = *p->s;
  if (c == 'n' && p->end - p->s >= 4 && memcmp(p->s, "null", 4) == 0) {
    p->s += 4;
    sql_rb_set_null(rb, i);
    return FL_OK;
  }
  char msg[160];
  if (t->kind == T_ROW) {
    if (c != '{') {
      snprintf(msg, sizeof msg, "field '%s' must be a JSON object (it is a ROW)", name);
      return jfail(p, msg);
    }
    if (depth + 1 >= 8) return jfail(p, "ROW nested too deeply");
    sql_rb_t *sub = &st->rb[depth + 1];
    int rc = read_object(f, st, depth + 1, p, t->n_fields, t->field_names, t->field_types, name);
    if (rc) return rc;
    sql_rb_set_var(rb, i, sub->buf, sub->len);
    return FL_OK;
  }
  const char *text;
  size_t tn;
  char stackbuf[256];
  char *heap = NULL;
  bool was_string = false;
  const char *vstart = p->s;
  if (c == '"') {
    const char *raw;
    bool esc;
    if (str_tok(p, &raw, &tn, &esc)) return FL_EPARSE;
    was_string = true;
    if (esc) {
      char *buf = tn <= sizeof stackbuf ? stackbuf : (heap = malloc(tn));
      if (!buf) return FL_ENOMEM;
      tn = unescape(raw, tn, buf);
      text = buf;
    } else {
      text = raw;
    }
  } else {
    if (skip(p, 0)) return FL_EPARSE;
    text = vstart;
    tn = (size_t)(p->s - vstart);
  }
  int rc = FL_OK;
  sql_val_t v;
  const char *why = NULL;
  if (sql_type_is_string(t) || sql_type_is_binary(t)) {
    v.null = false;
    v.s.p = text;
    v.s.n = tn;
    if (t->precision < SQL_MAX_LENGTH && tn > (size_t)t->precision) v.s.n = (size_t)t->precision;
    sql_write_col(rb, i, t, &v);
    goto done;
  }
  if (!was_string && (c == '{' || c == '[')) {
    char tb[64];
    snprintf(msg, sizeof msg, "field '%s': a JSON %s cannot be read as %s", name,
             c == '{' ? "object" : "array", sql_type_str(t, tb, sizeof tb));
    rc = jfail(p, msg);
    goto done;
  }
  if (!was_string && (t->kind == T_TIMESTAMP || t->kind == T_TIMESTAMP_LTZ) &&
      (isdigit((unsigned char)c) || c == '-')) {
    /* epoch milliseconds */
    rc = sql_parse_value(text, tn, &sql_t_bigint, f->sess, &v, &why);
  } else if (t->kind == T_BOOLEAN && !was_string) {
    if (tn == 4 && memcmp(text, "true", 4) == 0)
      v.i = 1, v.null = false, rc = FL_OK;
    else if (tn == 5 && memcmp(text, "false", 5) == 0)
      v.i = 0, v.null = false, rc = FL_OK;
    else
      rc = FL_EPARSE, why = "not a boolean";
  } else {
    rc = sql_parse_value(text, tn, t, f->sess, &v, &why);
    if (rc && !was_string && sql_type_is_integer(t)) {
      /* 12.0 for an integer: Jackson's intValue() truncates a JSON float */
      sql_val_t d;
      const char *w2;
      if (sql_parse_value(text, tn, &sql_t_double, f->sess, &d, &w2) == FL_OK) {
        v.i = (int64_t)d.d;
        v.null = false;
        rc = FL_OK;
      }
    }
  }
  if (rc) {
    char tb[64];
    snprintf(msg, sizeof msg, "field '%s': '%.*s' is not a valid %s (%s)", name,
             (int)(tn > 40 ? 40 : tn), text, sql_type_str(t, tb, sizeof tb),
             why ? why : "malformed");
    rc = jfail(p, msg);
    goto done;
  }
  sql_write_col(rb, i, t, &v);
done:
  free(heap);
  return rc;
}

static int find_col(int n, const char **names, const char *k, size_t kn, int hint) {
  if (hint >= 0 && hint < n && strlen(names[hint]) == kn && memcmp(names[hint], k, kn) == 0)
    return hint;
  for (int i = 0; i < n; i++)
    if (strlen(names[i]) == kn && memcmp(names[i], k, kn) == 0) return i;
  return -1;
}

static int read_object(const sql_json_fmt_t *f, sql_json_state_t *st, int depth, jp_t *p, int n,
                       const char **names, const sql_type_t **types, const char *path) {
  sql_rb_t *rb = &st->rb[depth];
  sql_rb_begin(rb, n);
  /* every column starts NULL; a field seen clears its bit */
  uint8_t seen[(SQL_JSON_MAX_SEEN + 7) / 8];
  memset(seen, 0, sizeof seen);
  ws(p);
  if (p->s >= p->end || *p->s != '{') return jfail(p, "not a JSON object");
  p->s++;
  ws(p);
  int hint = 0;
  if (p->s < p->end && *p->s == '}') {
    p->s++;
  } else {
    for (;;) {
      ws(p);
      const char *k;
      size_t kn;
      bool esc;
      if (str_tok(p, &k, &kn, &esc)) return FL_EPARSE;
      char kb[256];
      if (esc && kn < sizeof kb) {
        kn = unescape(k, kn, kb);
        k = kb;
      }
      ws(p);
      if (p->s >= p->end || *p->s != ':') return jfail(p, "expected ':' after a key");
      p->s++;
      int col = find_col(n, names, k, kn, hint);
      if (col < 0) {
        if (skip(p, 0)) return FL_EPARSE;
      } else {
        hint = col + 1;
        /* a repeated key: the last one wins, but its variable bytes stay behind */
        if (rb->buf[2 + col / 8] & (1u << (col % 8)))
          rb->buf[2 + col / 8] &= (uint8_t) ~(1u << (col % 8));
        int rc = read_value(f, st, depth, p, rb, col, types[col], names[col]);
        if (rc) return rc;
        if (col < SQL_JSON_MAX_SEEN) seen[col / 8] |= (uint8_t)(1u << (col % 8));
      }
      ws(p);
      if (p->s < p->end && *p->s == ',') {
        p->s++;
        continue;
      }
      if (p->s < p->end && *p->s == '}') {
        p->s++;
        break;
      }
      return jfail(p, "expected ',' or '}' in an object");
    }
  }
  for (int i = 0; i < n && i < SQL_JSON_MAX_SEEN; i++) {
    if (seen[i / 8] & (1u << (i % 8))) continue;
    if (f->fail_on_missing) {
      char msg[160];
      snprintf(msg, sizeof msg, "field '%s' is missing (json.fail-on-missing-field)", names[i]);
      return jfail(p, msg);
    }
    sql_rb_set_null(rb, i);
  }
  if (rb->failed) return FL_ENOMEM;
  (void)path;
  return FL_OK;
}

void sql_json_state_free(sql_json_state_t *st) {
  for (int i = 0; i < 8; i++) sql_rb_free(&st->rb[i]);
}

int sql_json_read(const sql_json_fmt_t *f, sql_json_state_t *st, const char *s, size_t n,
                  const uint8_t **row, size_t *row_len, char *err, size_t err_size) {
  if (err_size) err[0] = 0;
  jp_t p = {s, s + n, err, err_size};
  int rc = read_object(f, st, 0, &p, f->n, f->names, f->types, "");
  if (rc == FL_OK) {
    ws(&p);
    if (p.s != p.end) rc = jfail(&p, "text after the JSON object");
  }
  if (rc) {
    if (err_size && !err[0])
      snprintf(err, err_size, "%s", rc == FL_ENOMEM ? "out of memory" : "malformed JSON");
    return rc == FL_ENOMEM ? rc : FL_EPARSE;
  }
  *row = st->rb[0].buf;
  *row_len = st->rb[0].len;
  return FL_OK;
}

/* ---------------------------------------------------------------------------------- */
/* Writing                                                                            */

void sql_json_write_string(sql_strbuf_t *out, const char *s, size_t n) {
  sql_sb_putc(out, '"');
  size_t run = 0;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c >= 0x20 && c != '"' && c != '\\') continue;
    sql_sb_put(out, s + run, i - run);
    run = i + 1;
    switch (c) {
    case '"': sql_sb_put(out, "\\\"", 2); break;
    case '\\': sql_sb_put(out, "\\\\", 2); break;
    case '\n': sql_sb_put(out, "\\n", 2); break;
    case '\r': sql_sb_put(out, "\\r", 2); break;
    case '\t': sql_sb_put(out, "\\t", 2); break;
    default: sql_sb_printf(out, "\\u%04x", c); break;
    }
  }
  sql_sb_put(out, s + run, n - run);
  sql_sb_putc(out, '"');
}

static void put_ts(sql_strbuf_t *out, int64_t ms, bool iso, bool zone) {
  int64_t days = sql_floor_div(ms, 86400000), r = ms - days * 86400000, y;
  int m, d;
  sql_civil_from_days(days, &y, &m, &d);
  sql_sb_printf(out, "\"%04lld-%02d-%02d%c%02d:%02d:%02d", (long long)y, m, d, iso ? 'T' : ' ',
                (int)(r / 3600000), (int)(r / 60000 % 60), (int)(r / 1000 % 60));
  int frac = (int)(r % 1000);
  if (frac) {
    if (frac % 100 == 0)
      sql_sb_printf(out, ".%d", frac / 100);
    else if (frac % 10 == 0)
      sql_sb_printf(out, ".%02d", frac / 10);
    else
      sql_sb_printf(out, ".%03d", frac);
  }
  if (zone) sql_sb_putc(out, 'Z');
  sql_sb_putc(out, '"');
}

/* The JSON object of a row (the top level's or a nested ROW) of n named columns. */
static void write_object(const sql_json_fmt_t *f, const uint8_t *row, int n,
                         const char *const *names, const sql_type_t *const *types,
                         sql_strbuf_t *out) {
  sql_sb_putc(out, '{');
  bool first = true;
  for (int i = 0; i < n; i++) {
    sql_val_t v;
    sql_read_col(row, n, i, types[i], &v);
    if (v.null && f->ignore_null_fields) continue;
    if (!first) sql_sb_putc(out, ',');
    first = false;
    sql_json_write_string(out, names[i], strlen(names[i]));
    sql_sb_putc(out, ':');
    sql_json_write_value(f, types[i], &v, out);
  }
  sql_sb_putc(out, '}');
}

void sql_json_write_value(const sql_json_fmt_t *f, const sql_type_t *t, const sql_val_t *v,
                          sql_strbuf_t *out) {
  if (v->null) {
    sql_sb_put(out, "null", 4);
    return;
  }
  switch (t->kind) {
  case T_BOOLEAN: sql_sb_put(out, v->i ? "true" : "false", v->i ? 4 : 5); break;
  case T_CHAR:
  case T_VARCHAR: sql_json_write_string(out, v->s.p, v->s.n); break;
  case T_TIMESTAMP: put_ts(out, v->i, f->iso8601, false); break;
  case T_TIMESTAMP_LTZ: put_ts(out, v->i, f->iso8601, true); break;
  case T_FLOAT:
  case T_DOUBLE:
    if (v->d != v->d || v->d - v->d != 0) {
      sql_strbuf_t tmp = {0};
      sql_sb_value(&tmp, t, v, f->sess);
      sql_json_write_string(out, tmp.p ? tmp.p : "", tmp.n);
      sql_sb_free(&tmp);
    } else {
      sql_sb_value(out, t, v, f->sess);
    }
    break;
  case T_DATE:
  case T_TIME:
  case T_BINARY:
  case T_VARBINARY:
  case T_INTERVAL_DT:
  case T_INTERVAL_YM: {
    sql_strbuf_t tmp = {0};
    sql_sb_value(&tmp, t, v, f->sess);
    sql_json_write_string(out, tmp.p ? tmp.p : "", tmp.n);
    sql_sb_free(&tmp);
    break;
  }
  case T_ROW:
    write_object(f, (const uint8_t *)v->s.p, t->n_fields, t->field_names, t->field_types, out);
    break;
  default: sql_sb_value(out, t, v, f->sess); break;
  }
}

void sql_json_write(const sql_json_fmt_t *f, const uint8_t *row, sql_strbuf_t *out) {
  write_object(f, row, f->n, f->names, f->types, out);
}

/* ---------------------------------------------------------------------------------- */
/* JSON_VALUE paths: $.a.b, $['a'], $.a[2]                                            */

int sql_json_path(const char *s, size_t n, const char *path, size_t pn, const char **vp, size_t *vn,
                  bool *is_string) {
  jp_t p = {s, s + n, NULL, 0};
  size_t i = 0;
  if (pn == 0 || path[0] != '$') return FL_EPARSE;
  i = 1;
  for (;;) {
    ws(&p);
    if (i >= pn) break;
    const char *key = NULL;
    size_t kn = 0;
    long idx = -1;
    if (path[i] == '.') {
      i++;
      size_t b = i;
      while (i < pn && path[i] != '.' && path[i] != '[') i++;
      key = path + b;
      kn = i - b;
    } else if (path[i] == '[') {
      i++;
      if (i < pn && (path[i] == '\'' || path[i] == '"')) {
        char q = path[i++];
        size_t b = i;
        while (i < pn && path[i] != q) i++;
        key = path + b;
        kn = i - b;
        i++;
      } else {
        idx = 0;
        while (i < pn && isdigit((unsigned char)path[i])) idx = idx * 10 + (path[i++] - '0');
      }
      if (i >= pn || path[i] != ']') return FL_EPARSE;
      i++;
    } else {
      return FL_EPARSE;
    }
    if (p.s >= p.end) return FL_EPARSE;
    if (key) {
      if (*p.s != '{') return FL_EPARSE;
      p.s++;
      bool found = false;
      for (;;) {
        ws(&p);
        if (p.s < p.end && *p.s == '}') return FL_EPARSE;
        const char *k;
        size_t kl;
        bool esc;
        if (str_tok(&p, &k, &kl, &esc)) return FL_EPARSE;
        ws(&p);
        if (p.s >= p.end || *p.s != ':') return FL_EPARSE;
        p.s++;
        if (kl == kn && memcmp(k, key, kn) == 0) {
          found = true;
          break;
        }
        if (skip(&p, 0)) return FL_EPARSE;
        ws(&p);
        if (p.s < p.end && *p.s == ',') p.s++;
      }
      if (!found) return FL_EPARSE;
    } else {
      if (*p.s != '[') return FL_EPARSE;
      p.s++;
      for (long k = 0; k < idx; k++) {
        ws(&p);
        if (p.s < p.end && *p.s == ']') return FL_EPARSE;
        if (skip(&p, 0)) return FL_EPARSE;
        ws(&p);
        if (p.s < p.end && *p.s == ',')
          p.s++;
        else
          return FL_EPARSE;
      }
      ws(&p);
      if (p.s < p.end && *p.s == ']') return FL_EPARSE;
    }
  }
  ws(&p);
  if (p.s >= p.end) return FL_EPARSE;
  if (*p.s == '{' || *p.s == '[') return FL_EPARSE;
  if (*p.s == '"') {
    const char *raw;
    size_t rn;
    bool esc;
    if (str_tok(&p, &raw, &rn, &esc)) return FL_EPARSE;
    *vp = raw;
    *vn = rn;
    *is_string = true;
    return FL_OK;
  }
  const char *b = p.s;
  if (skip(&p, 0)) return FL_EPARSE;
  *vp = b;
  *vn = (size_t)(p.s - b);
  *is_string = false;
  return FL_OK;
}
