/*
 * Compiled expressions: what the binder makes of an expression's syntax tree once
 * every name is resolved and every type known, and what operators evaluate per row.
 *
 * A compiled expression is a tree of nodes, each with the function that evaluates it,
 * chosen at compile time for the operand types (an addition of two BIGINTs calls the
 * BIGINT adder; there is no type dispatch per row). Values are sql_val_t: a NULL flag
 * and the representation of row.h (strings and nested rows as pointer and length).
 * Strings made while evaluating (UPPER, ||, CAST to STRING) live in the evaluation's
 * scratch memory, which the operator resets for every row.
 *
 * Errors at run time (a failing CAST, division by zero, a user function's failure)
 * return a negative fl_err_t with a message in the evaluation context that names the
 * expression, as it was written, and the cause.
 */
#ifndef FL_SQL_EXPR_H
#define FL_SQL_EXPR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "flink.h"
#include "sql/arena.h"
#include "sql/ast.h"
#include "sql/row.h"
#include "sql/types.h"

typedef struct sql_val {
  union {
    int64_t i; /* BOOLEAN, integers, DATE, TIME, TIMESTAMP(_LTZ), intervals, DECIMAL(<=18) */
    double d;
    sql_i128 dec; /* DECIMAL: always widened to 128 bits while evaluating */
    struct {
      const char *p; /* strings, binary, nested rows (row bytes) */
      size_t n;
    } s;
  };
  bool null;
} sql_val_t;

/* Scratch memory of one evaluation: reset per row. */
typedef struct sql_scratch_chunk sql_scratch_chunk_t;
typedef struct sql_scratch {
  sql_scratch_chunk_t *head;
  size_t used;
} sql_scratch_t;
void *sql_scratch_alloc(sql_scratch_t *s, size_t n); /* NULL on ENOMEM */
void sql_scratch_reset(sql_scratch_t *s);
void sql_scratch_free(sql_scratch_t *s);

/* Session settings that expressions depend on. */
typedef struct sql_session {
  int64_t tz_offset_ms; /* table.local-time-zone as a fixed offset from UTC */
  const char *tz_name;
} sql_session_t;

typedef struct sql_eval {
  const uint8_t *rows[2]; /* the input row(s); joins evaluate over two */
  int ncols[2];
  fl_context_t *ctx; /* for PROCTIME(), CURRENT_TIMESTAMP, user functions */
  sql_scratch_t scratch;
  const sql_session_t *sess;
  char err[512];
  /* Values of the aggregates or keys a post-aggregation expression reads (X_COL with
   * input 0 reads rows[0] as usual). */
} sql_eval_t;

typedef struct sql_x sql_x_t;
typedef int (*sql_x_fn)(sql_eval_t *ev, const sql_x_t *x, sql_val_t *out);

/* What a node is, for the planner's analyses (join conditions, time bounds). */
typedef enum sql_xk {
  XK_OTHER = 0,
  XK_COL,   /* a column read: input, col */
  XK_CONST, /* a constant: cval */
  XK_CMP,   /* a comparison: iparam is the ast_binop_t */
  XK_AND,
  XK_DTADD /* datetime +/- interval: iparam the sign */
} sql_xk_t;

struct sql_x {
  sql_x_fn fn;
  sql_xk_t xk;
  const sql_type_t *type;
  int input, col; /* column reads */
  sql_val_t cval; /* constants */
  sql_x_t **args;
  int nargs;
  void *aux;      /* function-specific compiled data */
  int64_t iparam; /* unit, scale, ... */
  int64_t iparam2;
  const char *text; /* the expression as written, for errors */
  bool is_const;    /* depends on no row, no clock, no random source */
};

static inline int sql_eval(sql_eval_t *ev, const sql_x_t *x, sql_val_t *out) {
  return x->fn(ev, x, out);
}
/* Fails the evaluation with a message naming the expression. */
int sql_eval_fail(sql_eval_t *ev, const sql_x_t *x, int code, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 4, 5)))
#endif
    ;
void sql_eval_init(sql_eval_t *ev, const sql_session_t *sess);
void sql_eval_free(sql_eval_t *ev);

/* Reads column `col` of a row as a value of type t. */
void sql_read_col(const uint8_t *row, int ncols, int col, const sql_type_t *t, sql_val_t *out);
/* Writes v (of type t) into column i of the row being built. */
void sql_write_col(sql_rb_t *b, int i, const sql_type_t *t, const sql_val_t *v);

/* ---------------------------------------------------------------------------------- */
/* Binding                                                                            */

/* One column a name can resolve to. */
typedef struct sql_scope_col {
  const char *qual; /* the table or alias it belongs to, NULL if none */
  const char *name;
  const sql_type_t *type;
  int input, col;
  bool hidden; /* not part of SELECT * (e.g. a metadata column declared VIRTUAL is not) */
} sql_scope_col_t;

typedef struct sql_catalog sql_catalog_t;

typedef struct sql_binder {
  sql_arena_t *a;
  const char *src; /* the script text, for expression texts */
  sql_scope_col_t *cols;
  int ncols;
  const sql_catalog_t *cat; /* user functions */
  const sql_session_t *sess;
  /* Substitution before resolution: a GROUP BY key or an aggregate call of the query is
   * read from the aggregation's output column instead of being computed. Returns 1 and
   * sets *col when e is one of them. */
  int (*subst)(void *opaque, const ast_expr_t *e, int *col, const sql_type_t **type);
  void *subst_opaque;
  /* What is being bound, for messages: "WHERE", "SELECT", ... */
  const char *clause;
  char *err;
  size_t err_size;
} sql_binder_t;

/* Compiles e; NULL with a message in b->err on failure ("line L, column C: ..."). */
sql_x_t *sql_bind(sql_binder_t *b, const ast_expr_t *e);
/* The same, converting the result implicitly to `to` (or failing with a type error
 * that names the expression, its type and the expected one). */
sql_x_t *sql_bind_as(sql_binder_t *b, const ast_expr_t *e, const sql_type_t *to, const char *what);
/* A node that casts x to type to (NULL on ENOMEM); try_cast: failures give NULL. */
sql_x_t *sql_x_cast(sql_arena_t *a, sql_x_t *x, const sql_type_t *to, bool try_cast);
/* A column read node. */
sql_x_t *sql_x_col(sql_arena_t *a, int input, int col, const sql_type_t *t, const char *text);
/* Evaluates a constant expression now (for window sizes, LIMIT, literals). */
int sql_eval_const(const sql_x_t *x, const sql_session_t *sess, sql_val_t *out, char *err,
                   size_t err_size);

/* The text of an AST expression as written (arena). */
const char *sql_ast_text(sql_arena_t *a, const char *src, const ast_expr_t *e);
/* Structural equality of two expressions (for GROUP BY matching). */
bool sql_ast_equal(const ast_expr_t *x, const ast_expr_t *y);
/* Whether e is an aggregate call (COUNT, SUM, ..., or a user aggregate). */
bool sql_is_aggregate_call(const sql_catalog_t *cat, const ast_expr_t *e);
/* The nearest of names[0..n) to `name` by edit distance (case-insensitive), or NULL
 * when none is close enough to suggest. */
const char *sql_nearest(const char *name, const char *const *names, int n);

/* ---------------------------------------------------------------------------------- */
/* Values                                                                             */

/* Decimal helpers: 10^k for k <= 38, rescale with HALF_UP rounding, fits precision. */
sql_i128 sql_pow10(int k);
sql_i128 sql_dec_rescale(sql_i128 v, int from_scale, int to_scale);
bool sql_dec_fits(sql_i128 v, int precision);
/* Formats a value of type t as Flink prints it (CAST to STRING): into scratch memory. */
int sql_format_value(sql_eval_t *ev, const sql_type_t *t, const sql_val_t *v, const char **p,
                     size_t *n);
/* Appends the text of a value to a growable buffer (used by the print sink and CAST). */
typedef struct sql_strbuf {
  char *p;
  size_t n, cap;
  int failed;
} sql_strbuf_t;
void sql_sb_put(sql_strbuf_t *b, const char *s, size_t n);
void sql_sb_putc(sql_strbuf_t *b, char c);
void sql_sb_printf(sql_strbuf_t *b, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
void sql_sb_free(sql_strbuf_t *b);
void sql_sb_value(sql_strbuf_t *b, const sql_type_t *t, const sql_val_t *v,
                  const sql_session_t *sess);

/* Parses text as a value of type t (CAST from STRING). Returns 0, or FL_EPARSE with a
 * reason in why. Strings are not copied (they point into text). */
int sql_parse_value(const char *text, size_t n, const sql_type_t *t, const sql_session_t *sess,
                    sql_val_t *out, const char **why);

/* Compares two non-NULL values of the same type: <0, 0, >0. */
int sql_val_cmp(const sql_type_t *t, const sql_val_t *a, const sql_val_t *b);

/* Calendar: days since 1970-01-01 <-> civil date; ms <-> fields. */
int64_t sql_days_from_civil(int64_t y, int m, int d);
void sql_civil_from_days(int64_t days, int64_t *y, int *m, int *d);
int64_t sql_floor_div(int64_t a, int64_t b);
int64_t sql_floor_mod(int64_t a, int64_t b);

#endif
