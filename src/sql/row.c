/*
 * The binary row (row.h): the builder's growth and the validation of rows that come
 * from outside the SQL layer (a DataStream registered as a table).
 */
#include "sql/row.h"

#include <stdlib.h>

void sql_rb_free(sql_rb_t *b) {
  free(b->buf);
  memset(b, 0, sizeof *b);
}

static bool reserve(sql_rb_t *b, size_t need) {
  if (need <= b->cap) return true;
  size_t nc = b->cap ? b->cap : 256;
  while (nc < need) nc *= 2;
  if (nc > UINT32_MAX) {
    b->failed = 1;
    return false;
  }
  uint8_t *p = realloc(b->buf, nc);
  if (!p) {
    b->failed = 1;
    return false;
  }
  b->buf = p;
  b->cap = nc;
  return true;
}

void sql_rb_begin(sql_rb_t *b, int n) {
  b->n = n;
  b->failed = 0;
  size_t fixed = sql_row_hdr(n) + 8 * (size_t)n;
  b->len = 0;
  if (!reserve(b, fixed)) return;
  uint16_t n16 = (uint16_t)n;
  memcpy(b->buf, &n16, 2);
  memset(b->buf + 2, 0, fixed - 2);
  b->len = fixed;
}

void sql_rb_set_var(sql_rb_t *b, int i, const void *p, size_t len) {
  if (b->failed) return;
  if (!reserve(b, b->len + len)) return;
  uint32_t ol[2] = {(uint32_t)b->len, (uint32_t)len};
  if (len) memcpy(b->buf + b->len, p, len);
  b->len += len;
  memcpy(b->buf + sql_row_hdr(b->n) + 8 * (size_t)i, ol, 8);
}

void sql_rb_set_i128(sql_rb_t *b, int i, sql_i128 v) { sql_rb_set_var(b, i, &v, 16); }

bool sql_row_valid(const uint8_t *r, size_t len, int n, const sql_type_t *const *types) {
  if (len < 2) return false;
  if (sql_row_ncols(r) != n) return false;
  size_t fixed = sql_row_hdr(n) + 8 * (size_t)n;
  if (len < fixed) return false;
  if (!types) return true;
  for (int i = 0; i < n; i++) {
    const sql_type_t *t = types[i];
    if (sql_row_null(r, i) || !sql_type_in_var(t)) continue;
    uint32_t ol[2];
    memcpy(ol, sql_row_slot(r, n, i), 8);
    if (ol[0] < fixed || ol[0] > len || ol[1] > len - ol[0]) return false;
    if (t->kind == T_DECIMAL && ol[1] != 16) return false;
    if (t->kind == T_ROW &&
        !sql_row_valid(r + ol[0], ol[1], t->n_fields, (const sql_type_t *const *)t->field_types))
      return false;
  }
  return true;
}
