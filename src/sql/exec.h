/*
 * Translation of logical plans into operators of the public API (exec_*.c), and the
 * connectors' side of it (conn_*.c).
 *
 * Lifetime: plans, compiled expressions and the state operators share live in the SQL
 * environment's arena. Every function table handed to a builder carries an opaque
 * pointer that holds a reference on that arena (sql_shared_t), released by the table's
 * destroy when the fl_env_t is destroyed; the SQL environment holds one more. So the
 * arena outlives every job built from it, in whatever order the two are destroyed.
 */
#ifndef FL_SQL_EXEC_H
#define FL_SQL_EXEC_H

#include <stdatomic.h>
#include <stdbool.h>

#include "flink.h"
#include "sql/catalog.h"
#include "sql/json.h"
#include "sql/plan.h"

typedef struct sql_shared {
  sql_arena_t arena;
  _Atomic int refs;
  void (*on_free)(struct sql_shared *sh); /* frees what else the environment owned */
} sql_shared_t;

void sql_shared_ref(sql_shared_t *sh);
void sql_shared_unref(sql_shared_t *sh);

/* The first member of every opaque pointer given to a builder. */
typedef struct sql_opbase {
  sql_shared_t *sh;
} sql_opbase_t;
/* A destroy callback for opaque pointers that start with sql_opbase_t. */
void sql_op_release(void *opaque);
/* Arena memory for an operator's opaque (size bytes, starting with sql_opbase_t), with a
 * reference taken. */
void *sql_op_new(sql_shared_t *sh, size_t size);

/* The per-subtask state of a process function that turns each record into text: its
 * operator (the function table's opaque) and one buffer reused for every record. */
typedef struct sql_text_inst {
  const void *op;
  sql_strbuf_t sb;
} sql_text_inst_t;
int sql_text_inst_open(fl_context_t *ctx, void *opaque, void **instance);
void sql_text_inst_close(void *instance);

typedef struct sql_exec {
  fl_env_t *env;
  sql_shared_t *sh;
  sql_arena_t *a;
  sql_catalog_t *cat;
  const sql_session_t *sess;
  char *err;
  size_t err_size;
  int rc;
  fl_sql_row_fn select_fn;
  void *select_opaque;
  int next_id;
} sql_exec_t;

/* The stream of a relation's rows (translated once, shared by every consumer). */
fl_stream_t *sql_exec_rel(sql_exec_t *x, sql_rel_t *r);
int sql_exec_fail(sql_exec_t *x, int code, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
const char *sql_exec_name(sql_exec_t *x, const char *what);

/* exec_calc.c */
fl_stream_t *sql_exec_calc(sql_exec_t *x, sql_rel_t *r, fl_stream_t *in);
fl_stream_t *sql_exec_values(sql_exec_t *x, sql_rel_t *r);
fl_stream_t *sql_exec_wintvf(sql_exec_t *x, sql_rel_t *r, fl_stream_t *in);
/* exec_window.c */
fl_stream_t *sql_exec_winagg(sql_exec_t *x, sql_rel_t *r, fl_stream_t *in);
/* exec_over.c */
fl_stream_t *sql_exec_over(sql_exec_t *x, sql_rel_t *r, fl_stream_t *in);
fl_stream_t *sql_exec_rank(sql_exec_t *x, sql_rel_t *r, fl_stream_t *in);
/* exec_join.c */
fl_stream_t *sql_exec_join(sql_exec_t *x, sql_rel_t *r, fl_stream_t *l, fl_stream_t *rt);

/* Row layout helpers */
typedef struct sql_rowtypes {
  int n;
  const sql_type_t **types;
} sql_rowtypes_t;
/* Fails the operator with the evaluation's message. */
int sql_op_eval_fail(fl_context_t *ctx, const char *op, sql_eval_t *ev, int rc);
/* Builds a row from n values into rb. */
void sql_build_row(sql_rb_t *rb, int n, sql_field_t *f, const sql_val_t *vals);

/* ---------------------------------------------------------------------------------- */
/* Connectors (conn.c and conn_*.c)                                                   */

typedef struct sql_connector {
  const char *name;
  /* option keys accepted (a key ending in '.' accepts any key with that prefix) */
  const char *const *options;
  /* Checks options for reading (source) or writing; FL_EINVAL / FL_ENOTSUP with err. */
  int (*check)(sql_catalog_t *cat, const sql_table_t *t, bool source, char *err, size_t n);
  /* The table's rows: every column, computed ones included, with timestamps and
   * watermarks. NULL with x->err set. */
  fl_stream_t *(*source)(sql_exec_t *x, const sql_table_t *t);
  /* Writes rows of the table's physical columns. */
  int (*sink)(sql_exec_t *x, const sql_table_t *t, fl_stream_t *rows);
} sql_connector_t;

const sql_connector_t *sql_connector_find(const char *name);
/* Validates a CREATE TABLE's options against its connector (unknown keys named with
 * the nearest known one). */
int sql_connector_validate(sql_catalog_t *cat, const sql_table_t *t, char *err, size_t n);
int sql_connector_check_use(sql_catalog_t *cat, const sql_table_t *t, bool source, char *err,
                            size_t n);

/* The physical columns of a table, for formats and sinks. */
typedef struct sql_phys {
  int n;
  const char **names;
  const sql_type_t **types;
  int *cols; /* table column of each */
} sql_phys_t;
int sql_table_phys(sql_arena_t *a, const sql_table_t *t, sql_phys_t *out);
/* Begins in rb a row of every column of t: the physical ones from row (a row of phys's
 * columns), the others NULL. The caller may set more columns before sql_rb_finish. */
void sql_rb_spread_phys(sql_rb_t *rb, const sql_table_t *t, const sql_phys_t *phys,
                        const uint8_t *row);
/* A json format over the given columns from the table's json.* options. */
int sql_json_fmt_of(sql_arena_t *a, const sql_table_t *t, const sql_phys_t *cols,
                    const sql_session_t *sess, sql_json_fmt_t *out, char *err, size_t n);

/* Completing a table's rows: computed columns from a row that holds every other column
 * (computed slots NULL), and the row time. */
typedef struct sql_rowfin {
  const sql_table_t *t;
  sql_x_t **computed; /* per column, NULL for non-computed */
  int ncomputed;
  const sql_session_t *sess;
} sql_rowfin_t;
typedef struct sql_rowfin_state {
  sql_eval_t ev;
  sql_rb_t rb;
  sql_val_t *vals;
} sql_rowfin_state_t;
int sql_rowfin_init(sql_exec_t *x, const sql_table_t *t, sql_rowfin_t *out);
void sql_rowfin_state_init(sql_rowfin_state_t *st, const sql_rowfin_t *f);
void sql_rowfin_state_free(sql_rowfin_state_t *st);
/* *out may be the input row when the table has no computed columns; *ts the row time
 * (FL_TS_NONE without one; a NULL row time is an error). */
int sql_rowfin_apply(const sql_rowfin_t *f, sql_rowfin_state_t *st, fl_context_t *ctx,
                     const uint8_t *row, size_t len, const uint8_t **out, size_t *out_len,
                     int64_t *ts);
/* The table's watermark strategy (timestamp: keep the record's). */
void sql_table_watermarks(sql_exec_t *x, const sql_table_t *t, fl_watermark_strategy_t *ws);
/* Adds the computed columns, the row time and the watermarks to a stream of rows that
 * hold every non-computed column (for sources other than Kafka). */
fl_stream_t *sql_table_finish(sql_exec_t *x, const sql_table_t *t, fl_stream_t *rows);
/* A source of rows of every table column from JSON lines (filesystem, stdin). */
fl_stream_t *sql_json_lines_source(sql_exec_t *x, const sql_table_t *t, fl_stream_t *lines,
                                   const char *what);

/* Parses a JSON object into a row of every table column (non-physical ones NULL). */
int sql_json_table_row(const sql_table_t *t, const sql_json_fmt_t *fmt, const sql_phys_t *phys,
                       sql_json_state_t *js, sql_rb_t *rb, const char *s, size_t n,
                       const uint8_t **row, size_t *len, char *err, size_t err_size);
/* Rows of the table's physical columns as JSON lines (conn_file.c). */
fl_stream_t *sql_rows_to_json(sql_exec_t *x, const sql_table_t *t, fl_stream_t *rows);

extern const sql_connector_t sql_conn_kafka, sql_conn_filesystem, sql_conn_datagen, sql_conn_print,
    sql_conn_blackhole, sql_conn_nexmark;

#endif
