/*
 * Schemas and rows of the public API (flink.h): reading columns of a row, building rows,
 * and rows as JSON.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sql/json.h"
#include "sql/parser.h"
#include "sql/sql_env.h"

fl_sql_schema_t *fl_sql_schema_new(const char *columns, char *errstr, size_t errstr_size) {
  if (!columns) return NULL;
  sql_arena_t *a = malloc(sizeof *a);
  if (!a) return NULL;
  sql_arena_init(a);
  fl_sql_schema_t *sc = NULL;
  char err[512];
  ast_create_table_t *ct;
  char *text = sql_arena_strdup(a, columns);
  int rc = text ? sql_parse_schema(a, text, &ct, err, sizeof err) : FL_ENOMEM;
  if (rc) {
    if (errstr && errstr_size)
      snprintf(errstr, errstr_size, "%s", rc == FL_ENOMEM ? "out of memory" : err);
    goto fail;
  }
  sc = sql_arena_alloc(a, sizeof *sc);
  if (!sc) goto fail;
  int n = 0;
  for (size_t i = 0; i < ct->columns.n; i++)
    if (((ast_column_t *)ct->columns.v[i])->kind == COL_PHYSICAL) n++;
  sc->n = n;
  sc->own = a;
  sc->names = sql_arena_alloc(a, sizeof(char *) * (size_t)(n + 1));
  sc->types = sql_arena_alloc(a, sizeof(sql_type_t *) * (size_t)(n + 1));
  sc->type_names = sql_arena_alloc(a, sizeof(char *) * (size_t)(n + 1));
  if (!sc->names || !sc->types || !sc->type_names) goto fail;
  int k = 0;
  for (size_t i = 0; i < ct->columns.n; i++) {
    const ast_column_t *c = ct->columns.v[i];
    if (c->kind != COL_PHYSICAL) continue;
    sc->names[k] = c->name;
    sc->types[k] = c->type;
    sc->type_names[k] = sql_type_name(a, c->type);
    k++;
  }
  return sc;
fail:
  sql_arena_free(a);
  free(a);
  return NULL;
}

void fl_sql_schema_destroy(fl_sql_schema_t *schema) {
  if (!schema || !schema->own) return;
  sql_arena_t *a = schema->own;
  sql_arena_free(a);
  free(a);
}

int fl_sql_schema_columns(const fl_sql_schema_t *schema) { return schema ? schema->n : 0; }

const char *fl_sql_schema_name(const fl_sql_schema_t *schema, int col) {
  return schema && col >= 0 && col < schema->n ? schema->names[col] : NULL;
}

const char *fl_sql_schema_type(const fl_sql_schema_t *schema, int col) {
  return schema && col >= 0 && col < schema->n ? schema->type_names[col] : NULL;
}

int fl_sql_schema_find(const fl_sql_schema_t *schema, const char *name) {
  if (!schema || !name) return FL_EINVAL;
  for (int i = 0; i < schema->n; i++)
    if (!strcmp(schema->names[i], name)) return i;
  return FL_ENOTFOUND;
}

int fl_sql_row_get(const fl_sql_schema_t *schema, const void *row, size_t len, int col,
                   fl_sql_value_t *out) {
  if (!schema || !row || !out || col < 0 || col >= schema->n) return FL_EINVAL;
  const uint8_t *r = row;
  int n = schema->n;
  if (len < sql_row_hdr(n) + 8 * (size_t)n || sql_row_ncols(r) != n) return FL_EINVAL;
  const sql_type_t *t = schema->types[col];
  memset(out, 0, sizeof *out);
  if (sql_row_null(r, col)) {
    out->is_null = 1;
    return FL_OK;
  }
  if (t->kind == T_DECIMAL && sql_decimal_wide(t)) return FL_ENOTSUP;
  if (sql_type_in_var(t)) {
    uint32_t ol[2];
    memcpy(ol, sql_row_slot(r, n, col), 8);
    if (ol[0] > len || ol[1] > len - ol[0]) return FL_EINVAL;
    out->s = (const char *)r + ol[0];
    out->len = ol[1];
    return FL_OK;
  }
  if (sql_type_is_approx(t))
    out->d = sql_row_f64(r, n, col);
  else
    out->i = sql_row_i64(r, n, col);
  return FL_OK;
}

int fl_sql_row_to_json(const fl_sql_schema_t *schema, const void *row, size_t len, char *out,
                       size_t cap) {
  if (!schema || !row || (!out && cap)) return FL_EINVAL;
  if (!sql_row_valid(row, len, schema->n, schema->types)) return FL_EINVAL;
  sql_json_fmt_t f = {
      .n = schema->n, .names = schema->names, .types = schema->types, .sess = schema->sess};
  sql_strbuf_t sb = {0};
  sql_json_write(&f, row, &sb);
  if (sb.failed) {
    sql_sb_free(&sb);
    return FL_ENOMEM;
  }
  if (cap) {
    size_t k = sb.n < cap - 1 ? sb.n : cap - 1;
    if (k) memcpy(out, sb.p, k);
    out[k] = 0;
  }
  int n = sb.n > INT32_MAX ? INT32_MAX : (int)sb.n;
  sql_sb_free(&sb);
  return n;
}

struct fl_sql_row_builder {
  const fl_sql_schema_t *schema;
  sql_rb_t rb;
  bool open;
};

fl_sql_row_builder_t *fl_sql_row_builder_new(const fl_sql_schema_t *schema) {
  if (!schema) return NULL;
  fl_sql_row_builder_t *b = calloc(1, sizeof *b);
  if (b) b->schema = schema;
  return b;
}

void fl_sql_row_builder_destroy(fl_sql_row_builder_t *b) {
  if (!b) return;
  sql_rb_free(&b->rb);
  free(b);
}

static void begin(fl_sql_row_builder_t *b) {
  sql_rb_begin(&b->rb, b->schema->n);
  for (int i = 0; i < b->schema->n; i++) sql_rb_set_null(&b->rb, i);
  b->open = true;
}

int fl_sql_row_set(fl_sql_row_builder_t *b, int col, const fl_sql_value_t *v) {
  if (!b || !v || col < 0 || col >= b->schema->n) return FL_EINVAL;
  if (!b->open) begin(b);
  const sql_type_t *t = b->schema->types[col];
  if (v->is_null) {
    sql_rb_set_null(&b->rb, col);
    return FL_OK;
  }
  if (t->kind == T_DECIMAL && sql_decimal_wide(t)) return FL_ENOTSUP;
  b->rb.buf[2 + col / 8] &= (uint8_t) ~(1u << (col % 8));
  if (sql_type_in_var(t)) {
    if (v->len > UINT32_MAX || (!v->s && v->len)) return FL_EINVAL;
    sql_rb_set_var(&b->rb, col, v->s, v->len);
  } else if (sql_type_is_approx(t)) {
    sql_rb_set_f64(&b->rb, col, v->d);
  } else {
    sql_rb_set_i64(&b->rb, col, v->i);
  }
  return b->rb.failed ? FL_ENOMEM : FL_OK;
}

const void *fl_sql_row_finish(fl_sql_row_builder_t *b, size_t *len) {
  if (!b || !len) return NULL;
  if (!b->open) begin(b);
  b->open = false;
  return sql_rb_finish(&b->rb, len);
}
