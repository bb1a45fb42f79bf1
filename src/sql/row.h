/*
 * The binary row: how a SQL row travels between operators, as a record's value (and,
 * for keyed operators, as its key). Compact, self-delimiting, and readable in place:
 *
 *   u16 n                       number of columns
 *   ceil(n / 8) bytes           NULL bitmap, bit i (of byte i / 8, LSB first) = column i
 *   n slots of 8 bytes          one per column
 *   variable part               strings, nested rows, wide decimals
 *
 * Slots hold, by type: BOOLEAN and every integer type as int64; FLOAT and DOUBLE as a
 * double; DATE (days), TIME (ms of the day), TIMESTAMP and TIMESTAMP_LTZ (ms since the
 * epoch) and intervals (ms or months) as int64; DECIMAL with precision <= 18 as its
 * unscaled int64. CHAR, VARCHAR, BINARY, VARBINARY, ROW and DECIMAL with precision > 18
 * (a 16-byte two's complement integer) live in the variable part: the slot holds u32
 * offset (from the start of the row) and u32 length. A nested ROW is itself a row in
 * this layout. A NULL column's slot is zero and it owns no variable bytes, so equal rows
 * built the same way are equal bytes: rows of key columns are used directly as keys.
 *
 * Everything is native endian and unaligned (records handed to user functions are not
 * aligned), read and written through memcpy.
 */
#ifndef FL_SQL_ROW_H
#define FL_SQL_ROW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "sql/types.h"

typedef __int128 sql_i128;

static inline size_t sql_row_hdr(int n) { return 2 + ((size_t)n + 7) / 8; }
static inline int sql_row_ncols(const uint8_t *r) {
  uint16_t n;
  memcpy(&n, r, 2);
  return n;
}
static inline bool sql_row_null(const uint8_t *r, int i) { return (r[2 + i / 8] >> (i % 8)) & 1; }
static inline const uint8_t *sql_row_slot(const uint8_t *r, int n, int i) {
  return r + sql_row_hdr(n) + 8 * (size_t)i;
}
static inline int64_t sql_row_i64(const uint8_t *r, int n, int i) {
  int64_t v;
  memcpy(&v, sql_row_slot(r, n, i), 8);
  return v;
}
static inline double sql_row_f64(const uint8_t *r, int n, int i) {
  double v;
  memcpy(&v, sql_row_slot(r, n, i), 8);
  return v;
}
/* Variable-part reference of column i: a pointer into the row and the length. */
static inline const uint8_t *sql_row_var(const uint8_t *r, int n, int i, uint32_t *len) {
  uint32_t ol[2];
  memcpy(ol, sql_row_slot(r, n, i), 8);
  *len = ol[1];
  return r + ol[0];
}
static inline bool sql_decimal_wide(const sql_type_t *t) { return t->precision > 18; }
static inline bool sql_type_in_var(const sql_type_t *t) {
  return sql_type_is_string(t) || sql_type_is_binary(t) || t->kind == T_ROW ||
         (t->kind == T_DECIMAL && sql_decimal_wide(t));
}

/* Checks that len bytes are a well-formed row of n columns (bounds of every variable
 * reference, recursively for nested rows of the given types); types may be NULL to skip
 * nested checks. */
bool sql_row_valid(const uint8_t *r, size_t len, int n, const sql_type_t *const *types);

/* Builder: reserves the fixed part, then columns are set in any order (variable data is
 * appended in the order of the set calls). The buffer is reused across rows. */
typedef struct sql_rb {
  uint8_t *buf;
  size_t cap, len;
  int n;
  int failed; /* out of memory: finish returns NULL */
} sql_rb_t;

void sql_rb_free(sql_rb_t *b);
void sql_rb_begin(sql_rb_t *b, int n);
static inline void sql_rb_set_null(sql_rb_t *b, int i) {
  b->buf[2 + i / 8] |= (uint8_t)(1u << (i % 8));
  memset(b->buf + sql_row_hdr(b->n) + 8 * (size_t)i, 0, 8);
}
static inline void sql_rb_set_i64(sql_rb_t *b, int i, int64_t v) {
  memcpy(b->buf + sql_row_hdr(b->n) + 8 * (size_t)i, &v, 8);
}
static inline void sql_rb_set_f64(sql_rb_t *b, int i, double v) {
  memcpy(b->buf + sql_row_hdr(b->n) + 8 * (size_t)i, &v, 8);
}
/* Appends len bytes to the variable part and points column i at them. */
void sql_rb_set_var(sql_rb_t *b, int i, const void *p, size_t len);
void sql_rb_set_i128(sql_rb_t *b, int i, sql_i128 v);
/* The finished row (borrowed until the next begin) and its length. */
static inline const uint8_t *sql_rb_finish(sql_rb_t *b, size_t *len) {
  *len = b->len;
  return b->failed ? NULL : b->buf;
}

static inline sql_i128 sql_row_i128(const uint8_t *r, int n, int i) {
  uint32_t len;
  const uint8_t *p = sql_row_var(r, n, i, &len);
  sql_i128 v = 0;
  if (len == 16) memcpy(&v, p, 16);
  return v;
}

#endif
