/*
 * The catalog of a SQL environment: tables (declared with CREATE TABLE or made from a
 * DataStream), views, user-defined functions, and the session's settings. Names are
 * case-sensitive, as Flink's. Changes made while a script compiles are staged: a script
 * that fails to compile leaves the catalog as it was.
 */
#ifndef FL_SQL_CATALOG_H
#define FL_SQL_CATALOG_H

#include <stdbool.h>
#include <stdint.h>

#include "flink.h"
#include "sql/arena.h"
#include "sql/ast.h"
#include "sql/expr.h"
#include "sql/types.h"

typedef enum sql_col_kind {
  SQL_COL_PHYSICAL,
  SQL_COL_COMPUTED,
  SQL_COL_METADATA
} sql_col_kind_t;

typedef struct sql_column {
  const char *name;
  const sql_type_t *type;
  sql_col_kind_t kind;
  const ast_expr_t *expr; /* computed */
  const char *meta_key;   /* metadata */
  bool is_virtual;        /* metadata VIRTUAL: read, never written */
  bool proctime;          /* computed AS PROCTIME() */
  sql_pos_t pos;
} sql_column_t;

typedef enum sql_wm_kind {
  SQL_WM_NONE,
  SQL_WM_BOUNDED, /* WATERMARK FOR c AS c - INTERVAL ... (or AS c) */
  SQL_WM_SOURCE   /* WATERMARK FOR c AS SOURCE_WATERMARK(): the stream's own */
} sql_wm_kind_t;

/* A 'key' = 'value' option where it was written (the WITH options of a table, the
 * session's SET). */
typedef ast_option_t sql_option_t;

typedef struct sql_table {
  const char *name;
  int ncols;
  sql_column_t *cols;
  int rowtime; /* the WATERMARK column, -1 if none */
  sql_wm_kind_t wm;
  int64_t wm_delay_ms;
  int npk;
  int *pk; /* column indices */
  int nopts;
  sql_option_t *opts;
  const char *connector;
  const char *src; /* the CREATE TABLE text (for the binder's messages) */
  /* A table made from a DataStream: the stream whose records are rows of the physical
   * columns. */
  fl_stream_t *stream;
  bool is_view;
  const ast_query_t *view_query;
  const char **view_cols;
  int n_view_cols;
} sql_table_t;

typedef struct sql_udf {
  const char *name;
  bool aggregate;
  bool call_on_null;
  int nargs;
  const sql_type_t **arg_types;
  const sql_type_t *ret;
  fl_sql_scalar_fn fn;       /* scalar */
  fl_sql_aggregate_fn_t agg; /* aggregate (copied) */
  void *opaque;
  void (*destroy)(void *opaque);
} sql_udf_t;

typedef struct sql_catalog {
  sql_arena_t *a;
  sql_ptrvec_t tables; /* sql_table_t * */
  sql_ptrvec_t udfs;   /* sql_udf_t * */
  sql_session_t sess;
  /* SQL-layer settings (table.*), as key/value */
  sql_option_t *settings;
  size_t nsettings, cap_settings;
} sql_catalog_t;

const sql_table_t *sql_catalog_find(const sql_catalog_t *c, const char *name);
int sql_catalog_add(sql_catalog_t *c, sql_table_t *t); /* replaces nothing: caller checks */
int sql_catalog_drop(sql_catalog_t *c, const char *name);
/* Every table and view name, for suggestions. */
int sql_catalog_names(const sql_catalog_t *c, const char **out, int cap);
int sql_catalog_udf_names(const sql_catalog_t *c, const char **out, int cap);
const sql_udf_t *sql_catalog_udf(const sql_catalog_t *c, const char *name);
int sql_catalog_add_udf(sql_catalog_t *c, sql_udf_t *u);
/* A scalar user function call, or NULL with b->err set (or empty when name is none). */
sql_x_t *sql_catalog_bind_udf(sql_binder_t *b, const ast_expr_t *call, const char *name,
                              sql_x_t **args, int nargs);
/* Snapshot / rollback of the table list for a script that fails to compile. */
size_t sql_catalog_mark(const sql_catalog_t *c);
void sql_catalog_rollback(sql_catalog_t *c, size_t mark, sql_table_t **dropped, size_t ndropped);

const char *sql_table_option(const sql_table_t *t, const char *key);

/* Builds a table from a CREATE TABLE (or a DataStream schema): checks columns, computed
 * expressions, the watermark and the primary key. NULL with err set. */
sql_table_t *sql_table_from_ast(sql_catalog_t *c, const ast_create_table_t *ct, const char *src,
                                char *err, size_t err_size);

/* Values between the engine's form and fl_sql_value_t (user functions). Strings coming
 * back are copied into ev's scratch memory. */
int sql_value_from_public(sql_eval_t *ev, const sql_type_t *t, const fl_sql_value_t *o,
                          sql_val_t *v);
int sql_values_to_public(const sql_type_t *const *types, const sql_val_t *vals, int n,
                         fl_sql_value_t *out);

/* Whether name is a built-in or user aggregate. */
bool sql_builtin_aggregate(const char *name);

#endif
