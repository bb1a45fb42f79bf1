/*
 * SQL types: what a column or expression holds, with Flink's names, precisions and
 * NULL-ability, and the rules that relate them: which casts exist (explicit and
 * implicit), the common type of CASE branches and of the two sides of a comparison, and
 * the result types of arithmetic (Flink's decimal precision rules).
 *
 * Types are immutable once made and live in an arena (or are static); they are compared
 * by value. At run time every value of a type has one representation (see row.h):
 * integers, dates, times and timestamps are int64 (days, milliseconds of the day,
 * milliseconds since the epoch), floating point a double, DECIMAL an unscaled integer.
 */
#ifndef FL_SQL_TYPES_H
#define FL_SQL_TYPES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sql/arena.h"

typedef enum sql_type_kind {
  T_NULL = 0, /* the type of the NULL literal; becomes any type */
  T_BOOLEAN,
  T_TINYINT,
  T_SMALLINT,
  T_INT,
  T_BIGINT,
  T_FLOAT,
  T_DOUBLE,
  T_DECIMAL,
  T_CHAR,
  T_VARCHAR, /* STRING is VARCHAR(2147483647) */
  T_BINARY,
  T_VARBINARY, /* BYTES */
  T_DATE,
  T_TIME,
  T_TIMESTAMP,
  T_TIMESTAMP_LTZ,
  T_INTERVAL_DT, /* INTERVAL ... SECOND/MINUTE/HOUR/DAY: milliseconds */
  T_INTERVAL_YM, /* INTERVAL ... MONTH/YEAR: months */
  T_ROW,
  T_KIND_COUNT_
} sql_type_kind_t;

#define SQL_MAX_LENGTH 2147483647
#define SQL_MAX_DECIMAL_PRECISION 38

typedef struct sql_type sql_type_t;

struct sql_type {
  sql_type_kind_t kind;
  bool not_null;
  int precision; /* DECIMAL digits; CHAR/VARCHAR/BINARY length; TIME/TIMESTAMP digits */
  int scale;     /* DECIMAL */
  /* ROW */
  int n_fields;
  const char **field_names;
  const sql_type_t **field_types;
};

/* Nullable singletons of the simple types; sql_type_not_null() derives the others. */
extern const sql_type_t sql_t_null, sql_t_boolean, sql_t_tinyint, sql_t_smallint, sql_t_int,
    sql_t_bigint, sql_t_float, sql_t_double, sql_t_string, sql_t_bytes, sql_t_date, sql_t_time,
    sql_t_timestamp3, sql_t_timestamp_ltz3, sql_t_interval_dt, sql_t_interval_ym;
/* NOT NULL variants of some singletons. */
extern const sql_type_t sql_t_boolean_nn, sql_t_int_nn, sql_t_bigint_nn, sql_t_string_nn,
    sql_t_timestamp3_nn, sql_t_timestamp_ltz3_nn, sql_t_double_nn;

const sql_type_t *sql_type_decimal(sql_arena_t *a, int precision, int scale, bool not_null);
const sql_type_t *sql_type_varchar(sql_arena_t *a, int length, bool not_null);
/* t with not_null set to nn (t itself when it already is). */
const sql_type_t *sql_type_with_null(sql_arena_t *a, const sql_type_t *t, bool not_null);

/* Flink's spelling: "BIGINT", "DECIMAL(23, 3)", "STRING", "TIMESTAMP(3)",
 * "ROW<`a` INT, `b` STRING>", with " NOT NULL" when not nullable. */
const char *sql_type_str(const sql_type_t *t, char *buf, size_t cap);
/* The same in arena memory. */
const char *sql_type_name(sql_arena_t *a, const sql_type_t *t);

bool sql_type_equal(const sql_type_t *a, const sql_type_t *b, bool ignore_null);

static inline bool sql_type_is_integer(const sql_type_t *t) {
  return t->kind >= T_TINYINT && t->kind <= T_BIGINT;
}
static inline bool sql_type_is_numeric(const sql_type_t *t) {
  return t->kind >= T_TINYINT && t->kind <= T_DECIMAL;
}
static inline bool sql_type_is_approx(const sql_type_t *t) {
  return t->kind == T_FLOAT || t->kind == T_DOUBLE;
}
static inline bool sql_type_is_string(const sql_type_t *t) {
  return t->kind == T_CHAR || t->kind == T_VARCHAR;
}
static inline bool sql_type_is_binary(const sql_type_t *t) {
  return t->kind == T_BINARY || t->kind == T_VARBINARY;
}
static inline bool sql_type_is_timestamp(const sql_type_t *t) {
  return t->kind == T_TIMESTAMP || t->kind == T_TIMESTAMP_LTZ;
}
static inline bool sql_type_is_temporal(const sql_type_t *t) {
  return t->kind == T_DATE || t->kind == T_TIME || sql_type_is_timestamp(t);
}
static inline bool sql_type_is_interval(const sql_type_t *t) {
  return t->kind == T_INTERVAL_DT || t->kind == T_INTERVAL_YM;
}

/* v wrapped to the width of the integer type t, as Java's int arithmetic and casts do. */
static inline int64_t sql_wrap_int(const sql_type_t *t, uint64_t v) {
  switch (t->kind) {
  case T_TINYINT: return (int8_t)v;
  case T_SMALLINT: return (int16_t)v;
  case T_INT: return (int32_t)v;
  default: return (int64_t)v;
  }
}

/* DECIMAL precision and scale of an exact numeric type (INT is DECIMAL(10, 0), ...). */
void sql_type_decimal_of(const sql_type_t *t, int *precision, int *scale);

/* Whether CAST(x AS to) is valid for x of type from (Flink's casting table). */
bool sql_cast_allowed(const sql_type_t *from, const sql_type_t *to);
/* Whether a value of from may be used where to is expected without a CAST (widening
 * numeric, CHAR to VARCHAR, NULL to anything, ROW field-wise, same kind). */
bool sql_implicit_allowed(const sql_type_t *from, const sql_type_t *to);

/* The type both a and b convert to implicitly, for CASE branches, COALESCE, UNION and
 * comparisons; NULL when there is none. Nullable when either is. */
const sql_type_t *sql_common_type(sql_arena_t *a, const sql_type_t *x, const sql_type_t *y);

/* Result type of x op y for op in + - * / %, both numeric; NULL when not numeric. */
const sql_type_t *sql_arith_type(sql_arena_t *a, char op, const sql_type_t *x, const sql_type_t *y);

/* Whether two types can be compared with = < ... (after implicit conversion). */
bool sql_comparable(const sql_type_t *x, const sql_type_t *y);

#endif
