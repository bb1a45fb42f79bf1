/*
 * SQL types (types.h): constructors, printing, and Flink's rules for casts, common types
 * and decimal arithmetic (LogicalTypeMerging / LogicalTypeCasts in Flink's terms).
 */
#include "sql/types.h"

#include <stdio.h>
#include <string.h>

#define SIMPLE(name, k, p) const sql_type_t name = {.kind = (k), .precision = (p)}
#define SIMPLE_NN(name, k, p) \
  const sql_type_t name = {.kind = (k), .precision = (p), .not_null = true}

/* The types without a length or precision, */
SIMPLE(sql_t_null, T_NULL, 0);
SIMPLE(sql_t_boolean, T_BOOLEAN, 0);
SIMPLE(sql_t_tinyint, T_TINYINT, 0);
SIMPLE(sql_t_smallint, T_SMALLINT, 0);
SIMPLE(sql_t_int, T_INT, 0);
SIMPLE(sql_t_bigint, T_BIGINT, 0);
SIMPLE(sql_t_float, T_FLOAT, 0);
SIMPLE(sql_t_double, T_DOUBLE, 0);
SIMPLE(sql_t_date, T_DATE, 0);
SIMPLE(sql_t_time, T_TIME, 0);
SIMPLE(sql_t_interval_dt, T_INTERVAL_DT, 0);
SIMPLE(sql_t_interval_ym, T_INTERVAL_YM, 0);
SIMPLE_NN(sql_t_boolean_nn, T_BOOLEAN, 0);
SIMPLE_NN(sql_t_int_nn, T_INT, 0);
SIMPLE_NN(sql_t_bigint_nn, T_BIGINT, 0);
SIMPLE_NN(sql_t_double_nn, T_DOUBLE, 0);
/* and those with one. */
SIMPLE(sql_t_string, T_VARCHAR, SQL_MAX_LENGTH);
SIMPLE(sql_t_bytes, T_VARBINARY, SQL_MAX_LENGTH);
SIMPLE(sql_t_timestamp3, T_TIMESTAMP, 3);
SIMPLE(sql_t_timestamp_ltz3, T_TIMESTAMP_LTZ, 3);
SIMPLE_NN(sql_t_string_nn, T_VARCHAR, SQL_MAX_LENGTH);
SIMPLE_NN(sql_t_timestamp3_nn, T_TIMESTAMP, 3);
SIMPLE_NN(sql_t_timestamp_ltz3_nn, T_TIMESTAMP_LTZ, 3);

const sql_type_t *sql_type_decimal(sql_arena_t *a, int precision, int scale, bool not_null) {
  sql_type_t *t = sql_arena_alloc(a, sizeof *t);
  if (t)
    *t = (sql_type_t){
        .kind = T_DECIMAL, .precision = precision, .scale = scale, .not_null = not_null};
  return t;
}

const sql_type_t *sql_type_varchar(sql_arena_t *a, int length, bool not_null) {
  if (length == SQL_MAX_LENGTH) return not_null ? &sql_t_string_nn : &sql_t_string;
  sql_type_t *t = sql_arena_alloc(a, sizeof *t);
  if (t) *t = (sql_type_t){.kind = T_VARCHAR, .precision = length, .not_null = not_null};
  return t;
}

const sql_type_t *sql_type_with_null(sql_arena_t *a, const sql_type_t *t, bool not_null) {
  if (t->not_null == not_null || t->kind == T_NULL) return t;
  sql_type_t *c = sql_arena_alloc(a, sizeof *c);
  if (!c) return NULL;
  *c = *t;
  c->not_null = not_null;
  return c;
}

static const char *const kind_names[] = {
    [T_NULL] = "NULL",
    [T_BOOLEAN] = "BOOLEAN",
    [T_TINYINT] = "TINYINT",
    [T_SMALLINT] = "SMALLINT",
    [T_INT] = "INT",
    [T_BIGINT] = "BIGINT",
    [T_FLOAT] = "FLOAT",
    [T_DOUBLE] = "DOUBLE",
    [T_DECIMAL] = "DECIMAL",
    [T_CHAR] = "CHAR",
    [T_VARCHAR] = "VARCHAR",
    [T_BINARY] = "BINARY",
    [T_VARBINARY] = "VARBINARY",
    [T_DATE] = "DATE",
    [T_TIME] = "TIME",
    [T_TIMESTAMP] = "TIMESTAMP",
    [T_TIMESTAMP_LTZ] = "TIMESTAMP_LTZ",
    [T_INTERVAL_DT] = "INTERVAL SECOND",
    [T_INTERVAL_YM] = "INTERVAL MONTH",
    [T_ROW] = "ROW",
};

static const char *kind_name(sql_type_kind_t k) {
  return (size_t)k < sizeof kind_names / sizeof *kind_names && kind_names[k] ? kind_names[k] : "?";
}

static size_t put(char *buf, size_t cap, size_t n, const char *s) {
  size_t l = strlen(s);
  if (n < cap) {
    size_t k = cap - n - 1 < l ? cap - n - 1 : l;
    memcpy(buf + n, s, k);
    buf[n + k] = 0;
  }
  return n + l;
}

static size_t type_str(const sql_type_t *t, char *buf, size_t cap, size_t n) {
  char tmp[64];
  switch (t->kind) {
  case T_DECIMAL:
    snprintf(tmp, sizeof tmp, "DECIMAL(%d, %d)", t->precision, t->scale);
    n = put(buf, cap, n, tmp);
    break;
  case T_VARCHAR:
  case T_VARBINARY:
    if (t->precision == SQL_MAX_LENGTH) {
      n = put(buf, cap, n, t->kind == T_VARCHAR ? "STRING" : "BYTES");
      break;
    }
    /* fall through */
  case T_CHAR:
  case T_BINARY:
  case T_TIMESTAMP:
  case T_TIMESTAMP_LTZ:
    snprintf(tmp, sizeof tmp, "%s(%d)", kind_name(t->kind), t->precision);
    n = put(buf, cap, n, tmp);
    break;
  case T_ROW:
    n = put(buf, cap, n, "ROW<");
    for (int i = 0; i < t->n_fields; i++) {
      if (i) n = put(buf, cap, n, ", ");
      n = put(buf, cap, n, "`");
      n = put(buf, cap, n, t->field_names[i]);
      n = put(buf, cap, n, "` ");
      n = type_str(t->field_types[i], buf, cap, n);
    }
    n = put(buf, cap, n, ">");
    break;
  default: n = put(buf, cap, n, kind_name(t->kind)); break;
  }
  if (t->not_null && t->kind != T_NULL) n = put(buf, cap, n, " NOT NULL");
  return n;
}

const char *sql_type_str(const sql_type_t *t, char *buf, size_t cap) {
  if (cap) buf[0] = 0;
  type_str(t, buf, cap, 0);
  return buf;
}

const char *sql_type_name(sql_arena_t *a, const sql_type_t *t) {
  size_t n = type_str(t, NULL, 0, 0);
  char *p = sql_arena_alloc(a, n + 1);
  if (!p) return "?";
  type_str(t, p, n + 1, 0);
  return p;
}

bool sql_type_equal(const sql_type_t *a, const sql_type_t *b, bool ignore_null) {
  if (a == b) return true;
  if (a->kind != b->kind) return false;
  if (!ignore_null && a->not_null != b->not_null) return false;
  if (a->precision != b->precision || a->scale != b->scale) return false;
  if (a->kind == T_ROW) {
    if (a->n_fields != b->n_fields) return false;
    for (int i = 0; i < a->n_fields; i++) {
      if (strcmp(a->field_names[i], b->field_names[i]) != 0) return false;
      if (!sql_type_equal(a->field_types[i], b->field_types[i], ignore_null)) return false;
    }
  }
  return true;
}

void sql_type_decimal_of(const sql_type_t *t, int *precision, int *scale) {
  *scale = 0;
  switch (t->kind) {
  case T_TINYINT: *precision = 3; break;
  case T_SMALLINT: *precision = 5; break;
  case T_INT: *precision = 10; break;
  case T_BIGINT: *precision = 19; break;
  case T_DECIMAL:
    *precision = t->precision;
    *scale = t->scale;
    break;
  default: *precision = 38; break;
  }
}

/* Flink's implicit (widening) casts: within the numeric chain, CHAR to VARCHAR, BINARY
 * to VARBINARY, TIMESTAMP precisions, and NULL to everything. */
bool sql_implicit_allowed(const sql_type_t *from, const sql_type_t *to) {
  if (from->kind == T_NULL) return true;
  if (sql_type_is_numeric(from) && sql_type_is_numeric(to)) {
    if (to->kind == T_DECIMAL) {
      if (!sql_type_is_integer(from) && from->kind != T_DECIMAL) return false;
      int p, s;
      sql_type_decimal_of(from, &p, &s);
      return to->scale >= s && to->precision - to->scale >= p - s;
    }
    if (sql_type_is_approx(to)) return from->kind <= to->kind || from->kind == T_DECIMAL;
    return from->kind <= to->kind && from->kind != T_DECIMAL;
  }
  if (sql_type_is_string(from) && sql_type_is_string(to)) return true;
  if (sql_type_is_binary(from) && sql_type_is_binary(to)) return true;
  if (from->kind == to->kind) {
    if (from->kind == T_ROW) {
      if (from->n_fields != to->n_fields) return false;
      for (int i = 0; i < from->n_fields; i++)
        if (!sql_implicit_allowed(from->field_types[i], to->field_types[i])) return false;
    }
    return true;
  }
  if (from->kind == T_TIMESTAMP && to->kind == T_TIMESTAMP_LTZ) return true;
  if (from->kind == T_TIMESTAMP_LTZ && to->kind == T_TIMESTAMP) return true;
  return false;
}

bool sql_cast_allowed(const sql_type_t *from, const sql_type_t *to) {
  if (sql_implicit_allowed(from, to)) return true;
  bool fs = sql_type_is_string(from), ts = sql_type_is_string(to);
  /* Every type but ROW and BYTES can be cast to and from a string. */
  if (ts) return true;
  if (fs) return to->kind != T_ROW && !sql_type_is_interval(to);
  if (sql_type_is_numeric(from) && sql_type_is_numeric(to)) return true;
  if (from->kind == T_BOOLEAN && sql_type_is_numeric(to)) return true;
  if (sql_type_is_numeric(from) && to->kind == T_BOOLEAN) return true;
  if (sql_type_is_binary(from) && sql_type_is_binary(to)) return true;
  if (sql_type_is_timestamp(from) && (to->kind == T_DATE || to->kind == T_TIME)) return true;
  if (from->kind == T_DATE && sql_type_is_timestamp(to)) return true;
  if (sql_type_is_timestamp(from) && sql_type_is_timestamp(to)) return true;
  /* Epoch seconds, as Flink allows for TIMESTAMP_LTZ only. */
  if (sql_type_is_numeric(from) && to->kind == T_TIMESTAMP_LTZ) return true;
  if (from->kind == T_TIMESTAMP_LTZ && sql_type_is_numeric(to)) return true;
  if (from->kind == T_ROW && to->kind == T_ROW && from->n_fields == to->n_fields) {
    for (int i = 0; i < from->n_fields; i++)
      if (!sql_cast_allowed(from->field_types[i], to->field_types[i])) return false;
    return true;
  }
  if (sql_type_is_interval(from) && sql_type_is_integer(to)) return true;
  return false;
}

static const sql_type_t *adjust_decimal(sql_arena_t *a, int p, int s, bool nn) {
  if (p > SQL_MAX_DECIMAL_PRECISION) {
    int digits = p - s;
    int min_scale = s < 6 ? s : 6;
    int adj = SQL_MAX_DECIMAL_PRECISION - digits;
    if (adj < min_scale) adj = min_scale;
    p = SQL_MAX_DECIMAL_PRECISION;
    s = adj;
  }
  return sql_type_decimal(a, p, s, nn);
}

static const sql_type_t *nullable_of(sql_arena_t *a, const sql_type_t *t, bool nn) {
  return sql_type_with_null(a, t, nn);
}

const sql_type_t *sql_common_type(sql_arena_t *a, const sql_type_t *x, const sql_type_t *y) {
  bool nn = x->not_null && y->not_null;
  if (x->kind == T_NULL) return nullable_of(a, y, false);
  if (y->kind == T_NULL) return nullable_of(a, x, false);
  if (sql_type_is_numeric(x) && sql_type_is_numeric(y)) {
    if (sql_type_is_approx(x) || sql_type_is_approx(y)) {
      if (x->kind == T_DOUBLE || y->kind == T_DOUBLE || x->kind == T_DECIMAL ||
          y->kind == T_DECIMAL)
        return nn ? &sql_t_double_nn : &sql_t_double;
      return nullable_of(a, &sql_t_float, nn);
    }
    if (x->kind != T_DECIMAL && y->kind != T_DECIMAL) {
      return nullable_of(a, x->kind >= y->kind ? x : y, nn);
    }
    int p1, s1, p2, s2;
    sql_type_decimal_of(x, &p1, &s1);
    sql_type_decimal_of(y, &p2, &s2);
    int d = p1 - s1 > p2 - s2 ? p1 - s1 : p2 - s2;
    if (d > SQL_MAX_DECIMAL_PRECISION) d = SQL_MAX_DECIMAL_PRECISION;
    int s = s1 > s2 ? s1 : s2;
    if (s > SQL_MAX_DECIMAL_PRECISION - d) s = SQL_MAX_DECIMAL_PRECISION - d;
    return sql_type_decimal(a, d + s, s, nn);
  }
  if (sql_type_is_string(x) && sql_type_is_string(y)) {
    if (x->kind == T_CHAR && y->kind == T_CHAR && x->precision == y->precision)
      return nullable_of(a, x, nn);
    int len = x->precision > y->precision ? x->precision : y->precision;
    return sql_type_varchar(a, len, nn);
  }
  if (sql_type_is_binary(x) && sql_type_is_binary(y)) return nn ? x : &sql_t_bytes;
  if (sql_type_is_timestamp(x) && sql_type_is_timestamp(y)) {
    if (x->kind == y->kind) return nullable_of(a, x->precision >= y->precision ? x : y, nn);
    return nn ? &sql_t_timestamp_ltz3_nn : &sql_t_timestamp_ltz3;
  }
  if (x->kind == T_ROW && y->kind == T_ROW) {
    if (x->n_fields != y->n_fields) return NULL;
    sql_type_t *t = sql_arena_alloc(a, sizeof *t);
    if (!t) return NULL;
    *t = *x;
    t->not_null = nn;
    t->field_types = sql_arena_alloc(a, sizeof(sql_type_t *) * (size_t)x->n_fields);
    if (!t->field_types) return NULL;
    for (int i = 0; i < x->n_fields; i++) {
      t->field_types[i] = sql_common_type(a, x->field_types[i], y->field_types[i]);
      if (!t->field_types[i]) return NULL;
    }
    return t;
  }
  if (x->kind == y->kind) return nullable_of(a, x, nn);
  return NULL;
}

const sql_type_t *sql_arith_type(sql_arena_t *a, char op, const sql_type_t *x,
                                 const sql_type_t *y) {
  if (!sql_type_is_numeric(x) || !sql_type_is_numeric(y)) return NULL;
  bool nn = x->not_null && y->not_null;
  if (sql_type_is_approx(x) || sql_type_is_approx(y)) {
    if (x->kind == T_DOUBLE || y->kind == T_DOUBLE || x->kind == T_DECIMAL || y->kind == T_DECIMAL)
      return nn ? &sql_t_double_nn : &sql_t_double;
    return nullable_of(a, &sql_t_float, nn);
  }
  if (x->kind != T_DECIMAL && y->kind != T_DECIMAL) {
    if (op == '%') return nullable_of(a, y, nn);
    return nullable_of(a, x->kind >= y->kind ? x : y, nn);
  }
  int p1, s1, p2, s2;
  sql_type_decimal_of(x, &p1, &s1);
  sql_type_decimal_of(y, &p2, &s2);
  int p, s;
  switch (op) {
  case '+':
  case '-':
    s = s1 > s2 ? s1 : s2;
    p = (p1 - s1 > p2 - s2 ? p1 - s1 : p2 - s2) + s + 1;
    break;
  case '*':
    s = s1 + s2;
    p = p1 + p2 + 1;
    break;
  case '/':
    s = s1 + p2 + 1 > 6 ? s1 + p2 + 1 : 6;
    p = p1 - s1 + s2 + s;
    break;
  default: /* % */
    s = s1 > s2 ? s1 : s2;
    p = (p1 - s1 < p2 - s2 ? p1 - s1 : p2 - s2) + s;
    break;
  }
  return adjust_decimal(a, p, s, nn);
}

bool sql_comparable(const sql_type_t *x, const sql_type_t *y) {
  if (x->kind == T_NULL || y->kind == T_NULL) return true;
  if (sql_type_is_numeric(x) && sql_type_is_numeric(y)) return true;
  if (sql_type_is_string(x) && sql_type_is_string(y)) return true;
  if (sql_type_is_binary(x) && sql_type_is_binary(y)) return true;
  if (sql_type_is_timestamp(x) && sql_type_is_timestamp(y)) return true;
  if (x->kind == T_ROW || y->kind == T_ROW) return false;
  return x->kind == y->kind;
}
