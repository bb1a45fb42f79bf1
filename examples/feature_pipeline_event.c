/*
 * The event's JSON form. raw.events holds one JSON object per message:
 *
 *   {"user_id":"u0001234","event_type":"add_to_cart","product_id":48213,
 *    "category_id":17,"price":19.99,"quantity":1,"event_time_ms":1717000000000}
 *
 * The parser is strict about the fields the job uses and ignores others (a producer may
 * add fields): a malformed event fails with a message naming the field and the cause,
 * which the Kafka source's dead-letter policy puts into the fl.error header of its copy
 * in events.dlq. It does not allocate: it runs for every event on the source's threads.
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "feature_pipeline.h"

const char *const fp_type_names[FP_N_TYPES] = {"view", "add_to_cart", "remove_from_cart",
                                               "checkout", "purchase"};

typedef struct cursor {
  const char *p, *end, *start;
  char *err;
  size_t err_size;
} cursor_t;

static int perr(cursor_t *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int perr(cursor_t *c, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(c->err, c->err_size, fmt, ap);
  va_end(ap);
  return -1;
}

static void skip_ws(cursor_t *c) {
  while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r')) c->p++;
}

/* A JSON string; decoded into out (at most size - 1 bytes, else an error naming what).
 * \u escapes outside ASCII are refused: ids and names here are ASCII. */
static int parse_string(cursor_t *c, char *out, size_t size, size_t *len, const char *what) {
  size_t n = 0;
  if (c->p >= c->end || *c->p != '"')
    return perr(c, "malformed JSON at byte %zu: expected a string for %s",
                (size_t)(c->p - c->start), what);
  c->p++;
  while (c->p < c->end && *c->p != '"') {
    char ch = *c->p++;
    if ((unsigned char)ch < 0x20)
      return perr(c, "malformed JSON: a control character inside the string of %s", what);
    if (ch == '\\') {
      if (c->p >= c->end) break;
      char e = *c->p++;
      switch (e) {
      case '"':
      case '\\':
      case '/': ch = e; break;
      case 'b': ch = '\b'; break;
      case 'f': ch = '\f'; break;
      case 'n': ch = '\n'; break;
      case 'r': ch = '\r'; break;
      case 't': ch = '\t'; break;
      case 'u': {
        unsigned v = 0;
        for (int i = 0; i < 4; i++) {
          char h = c->p < c->end ? *c->p++ : 0;
          unsigned d = h >= '0' && h <= '9'   ? (unsigned)(h - '0')
                       : h >= 'a' && h <= 'f' ? (unsigned)(h - 'a' + 10)
                       : h >= 'A' && h <= 'F' ? (unsigned)(h - 'A' + 10)
                                              : 99;
          if (d == 99) return perr(c, "malformed JSON: a bad \\u escape in %s", what);
          v = v * 16 + d;
        }
        if (v == 0 || v > 0x7f) return perr(c, "%s: only ASCII characters are accepted", what);
        ch = (char)v;
        break;
      }
      default: return perr(c, "malformed JSON: a bad escape \\%c in %s", e, what);
      }
    }
    if (out) {
      if (n + 1 >= size) return perr(c, "%s is longer than %zu bytes", what, size - 1);
      out[n] = ch;
    }
    n++;
  }
  if (c->p >= c->end) return perr(c, "malformed JSON: the string of %s is not closed", what);
  c->p++;
  if (out) out[n] = '\0';
  if (len) *len = n;
  return 0;
}

/* The text of a JSON number, checked against the grammar. */
static int number_span(cursor_t *c, const char **s, size_t *n) {
  const char *p = c->p;
  if (p < c->end && *p == '-') p++;
  if (p >= c->end || *p < '0' || *p > '9') return -1;
  if (*p == '0')
    p++;
  else
    while (p < c->end && *p >= '0' && *p <= '9') p++;
  if (p < c->end && *p == '.') {
    p++;
    if (p >= c->end || *p < '0' || *p > '9') return -1;
    while (p < c->end && *p >= '0' && *p <= '9') p++;
  }
  if (p < c->end && (*p == 'e' || *p == 'E')) {
    p++;
    if (p < c->end && (*p == '+' || *p == '-')) p++;
    if (p >= c->end || *p < '0' || *p > '9') return -1;
    while (p < c->end && *p >= '0' && *p <= '9') p++;
  }
  *s = c->p;
  *n = (size_t)(p - c->p);
  c->p = p;
  return 0;
}

/* An integer in [lo, hi]. */
static int parse_int(cursor_t *c, int64_t lo, int64_t hi, int64_t *out, const char *what) {
  const char *s;
  size_t n;
  if (number_span(c, &s, &n) != 0) return perr(c, "%s: expected an integer", what);
  char buf[32];
  if (n >= sizeof buf || memchr(s, '.', n) || memchr(s, 'e', n) || memchr(s, 'E', n))
    return perr(c, "%s: expected an integer, got %.*s", what, (int)(n < 24 ? n : 24), s);
  memcpy(buf, s, n);
  buf[n] = '\0';
  errno = 0;
  long long v = strtoll(buf, NULL, 10);
  if (errno || v < lo || v > hi)
    return perr(c, "%s: %s is outside [%" PRId64 ", %" PRId64 "]", what, buf, lo, hi);
  *out = v;
  return 0;
}

/* Skips any JSON value (for fields the job does not use). */
static int skip_value(cursor_t *c, int depth) {
  skip_ws(c);
  if (c->p >= c->end) return perr(c, "malformed JSON: the input ends inside a value");
  if (depth > 32) return perr(c, "malformed JSON: nested more than 32 levels");
  char ch = *c->p;
  if (ch == '"') return parse_string(c, NULL, 0, NULL, "a field");
  if (ch == '{' || ch == '[') {
    char close = ch == '{' ? '}' : ']';
    c->p++;
    skip_ws(c);
    if (c->p < c->end && *c->p == close) {
      c->p++;
      return 0;
    }
    for (;;) {
      if (ch == '{') {
        skip_ws(c);
        if (parse_string(c, NULL, 0, NULL, "a field name")) return -1;
        skip_ws(c);
        if (c->p >= c->end || *c->p != ':') return perr(c, "malformed JSON: expected ':'");
        c->p++;
      }
      if (skip_value(c, depth + 1)) return -1;
      skip_ws(c);
      if (c->p < c->end && *c->p == ',') {
        c->p++;
        continue;
      }
      if (c->p < c->end && *c->p == close) {
        c->p++;
        return 0;
      }
      return perr(c, "malformed JSON at byte %zu: expected ',' or '%c'", (size_t)(c->p - c->start),
                  close);
    }
  }
  static const char *const words[] = {"true", "false", "null"};
  for (int i = 0; i < 3; i++) {
    size_t n = strlen(words[i]);
    if ((size_t)(c->end - c->p) >= n && memcmp(c->p, words[i], n) == 0) {
      c->p += n;
      return 0;
    }
  }
  const char *s;
  size_t n;
  if (number_span(c, &s, &n) == 0) return 0;
  return perr(c, "malformed JSON at byte %zu: not a value", (size_t)(c->p - c->start));
}

enum {
  F_USER = 1,
  F_TYPE = 2,
  F_PRODUCT = 4,
  F_CATEGORY = 8,
  F_PRICE = 16,
  F_QTY = 32,
  F_TS = 64
};

static int parse_field(cursor_t *c, const char *name, fp_event_t *ev, unsigned *seen) {
  int64_t v;
  unsigned bit = 0;
  int rc = 0;
  if (strcmp(name, "user_id") == 0) {
    bit = F_USER;
    rc = parse_string(c, ev->user, sizeof ev->user, &ev->user_len, "user_id");
    if (!rc && ev->user_len == 0) rc = perr(c, "user_id is empty");
  } else if (strcmp(name, "event_type") == 0) {
    char t[32];
    bit = F_TYPE;
    rc = parse_string(c, t, sizeof t, NULL, "event_type");
    if (!rc) {
      ev->type = -1;
      for (int i = 0; i < FP_N_TYPES; i++)
        if (strcmp(t, fp_type_names[i]) == 0) ev->type = i;
      if (ev->type < 0)
        rc = perr(c,
                  "event_type \"%s\" is none of view, add_to_cart, remove_from_cart, checkout, "
                  "purchase",
                  t);
    }
  } else if (strcmp(name, "product_id") == 0) {
    bit = F_PRODUCT;
    rc = parse_int(c, 0, INT32_MAX, &v, "product_id");
    ev->product = (int32_t)v;
  } else if (strcmp(name, "category_id") == 0) {
    bit = F_CATEGORY;
    rc = parse_int(c, 0, FP_CATEGORY_MAX, &v, "category_id");
    ev->category = (int32_t)v;
  } else if (strcmp(name, "quantity") == 0) {
    bit = F_QTY;
    rc = parse_int(c, 1, FP_QUANTITY_MAX, &v, "quantity");
    ev->quantity = (int32_t)v;
  } else if (strcmp(name, "event_time_ms") == 0) {
    bit = F_TS;
    rc = parse_int(c, 1, INT64_MAX / 4, &v, "event_time_ms");
    ev->ts = v;
  } else if (strcmp(name, "price") == 0) {
    const char *s;
    size_t n;
    char buf[40];
    bit = F_PRICE;
    if (number_span(c, &s, &n) != 0 || n >= sizeof buf) return perr(c, "price: expected a number");
    memcpy(buf, s, n);
    buf[n] = '\0';
    double d = strtod(buf, NULL);
    /* rounded to cents: 19.99 is 1998.9999... cents as a double */
    if (!(d >= 0) || d * 100 > (double)FP_PRICE_MAX_CENTS)
      return perr(c, "price: %s is outside [0, %lld]", buf, FP_PRICE_MAX_CENTS / 100);
    ev->price_cents = llround(d * 100);
  } else {
    return skip_value(c, 0);
  }
  if (rc) return rc;
  if (*seen & bit) return perr(c, "field %s appears twice", name);
  *seen |= bit;
  return 0;
}

int fp_event_parse(const char *s, size_t n, fp_event_t *ev, char *err, size_t err_size) {
  cursor_t c = {s, s + n, s, err, err_size};
  unsigned seen = 0;
  memset(ev, 0, sizeof *ev);
  skip_ws(&c);
  if (c.p >= c.end || *c.p != '{') return perr(&c, "malformed JSON: not an object");
  c.p++;
  skip_ws(&c);
  if (c.p < c.end && *c.p == '}') {
    c.p++;
  } else {
    for (;;) {
      char name[64];
      skip_ws(&c);
      if (parse_string(&c, name, sizeof name, NULL, "a field name")) return -1;
      skip_ws(&c);
      if (c.p >= c.end || *c.p != ':')
        return perr(&c, "malformed JSON at byte %zu: expected ':'", (size_t)(c.p - c.start));
      c.p++;
      skip_ws(&c);
      if (parse_field(&c, name, ev, &seen)) return -1;
      skip_ws(&c);
      if (c.p < c.end && *c.p == ',') {
        c.p++;
        continue;
      }
      if (c.p < c.end && *c.p == '}') {
        c.p++;
        break;
      }
      return perr(&c, "malformed JSON at byte %zu: expected ',' or '}'", (size_t)(c.p - c.start));
    }
  }
  skip_ws(&c);
  if (c.p != c.end)
    return perr(&c, "malformed JSON at byte %zu: text after the object", (size_t)(c.p - c.start));
  static const struct {
    unsigned bit;
    const char *name;
  } req[] = {{F_USER, "user_id"},         {F_TYPE, "event_type"}, {F_PRODUCT, "product_id"},
             {F_CATEGORY, "category_id"}, {F_PRICE, "price"},     {F_QTY, "quantity"},
             {F_TS, "event_time_ms"}};
  for (size_t i = 0; i < sizeof req / sizeof req[0]; i++)
    if (!(seen & req[i].bit)) return perr(&c, "the field %s is missing", req[i].name);
  return 0;
}

int fp_event_json(const fp_event_t *ev, char *out, size_t size) {
  /* user ids are printable ASCII without quotes or backslashes when the generator made
   * them; others are escaped */
  char user[FP_USER_MAX * 6 + 1];
  size_t u = 0;
  for (size_t i = 0; i < ev->user_len; i++) {
    unsigned char ch = (unsigned char)ev->user[i];
    if (ch == '"' || ch == '\\')
      u += (size_t)snprintf(user + u, sizeof user - u, "\\%c", ch);
    else if (ch < 0x20)
      u += (size_t)snprintf(user + u, sizeof user - u, "\\u%04x", ch);
    else
      user[u++] = (char)ch;
  }
  user[u] = '\0';
  int n = snprintf(out, size,
                   "{\"user_id\":\"%s\",\"event_type\":\"%s\",\"product_id\":%" PRId32
                   ",\"category_id\":%" PRId32 ",\"price\":%" PRId64 ".%02" PRId64
                   ",\"quantity\":%" PRId32 ",\"event_time_ms\":%" PRId64 "}",
                   user, fp_type_names[ev->type], ev->product, ev->category, ev->price_cents / 100,
                   ev->price_cents % 100, ev->quantity, ev->ts);
  return n < 0 || (size_t)n >= size ? -1 : n;
}
