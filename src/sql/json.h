/*
 * The json format (Flink's 'format' = 'json'): JSON objects to binary rows and back.
 *
 * Reading is one pass over the text with no allocation but the row: top-level keys are
 * matched to columns, values converted to the column's type, nested objects become
 * nested ROWs, unknown keys are skipped. Following Flink: a missing field is NULL (an
 * error with json.fail-on-missing-field); numbers and booleans may also be given as
 * strings; a STRING column takes any JSON value (non-strings as their JSON text);
 * timestamps are read in either the SQL ("2024-01-01 00:00:00.000") or the ISO-8601
 * ("2024-01-01T00:00:00.000") form, and also as epoch milliseconds (a departure that
 * makes integer event times usable directly).
 *
 * Writing follows json.timestamp-format.standard (SQL or ISO-8601), writes NULL as null
 * (or leaves the field out with json.encode.ignore-null-fields), DECIMAL as a plain
 * number and fractions of seconds without trailing zeros, as Flink does.
 */
#ifndef FL_SQL_JSON_H
#define FL_SQL_JSON_H

#include <stdbool.h>
#include <stddef.h>

#include "sql/expr.h"
#include "sql/row.h"

/* Columns beyond this many are not checked for presence (fail-on-missing-field). */
#define SQL_JSON_MAX_SEEN 1024

typedef struct sql_json_fmt {
  int n;
  const char **names;
  const sql_type_t **types;
  bool fail_on_missing;
  bool ignore_parse_errors;
  bool iso8601;
  bool ignore_null_fields;
  const sql_session_t *sess;
} sql_json_fmt_t;

/* Per-caller builders for nested rows (one per nesting depth). */
typedef struct sql_json_state {
  sql_rb_t rb[8];
} sql_json_state_t;
void sql_json_state_free(sql_json_state_t *st);

/* Parses one JSON object into a row of f's columns in st->rb[0]. FL_EPARSE with a
 * message naming the field and the problem. */
int sql_json_read(const sql_json_fmt_t *f, sql_json_state_t *st, const char *s, size_t n,
                  const uint8_t **row, size_t *row_len, char *err, size_t err_size);
/* Appends the JSON object of a row to out. */
void sql_json_write(const sql_json_fmt_t *f, const uint8_t *row, sql_strbuf_t *out);
/* Appends one value as JSON. */
void sql_json_write_value(const sql_json_fmt_t *f, const sql_type_t *t, const sql_val_t *v,
                          sql_strbuf_t *out);
void sql_json_write_string(sql_strbuf_t *out, const char *s, size_t n);

#endif
