/*
 * What the binder (bind.c) shares with the function library (fn_*.c): error reporting
 * at a position, implicit conversion of an argument, and the function tables.
 */
#ifndef FL_SQL_BIND_INT_H
#define FL_SQL_BIND_INT_H

#include "sql/eval_int.h"
#include "sql/expr.h"

/* Writes "line L, column C: <message>" into b->err; returns NULL for tail calls. */
void *sql_bind_error(sql_binder_t *b, sql_pos_t pos, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
void *sql_bind_nomem(sql_binder_t *b);
/* x converted implicitly to `to`, or NULL with "<what> <expr> has type X, expected Y". */
sql_x_t *sql_coerce(sql_binder_t *b, sql_x_t *x, const sql_type_t *to, sql_pos_t pos,
                    const char *what);
/* "`expr` (TYPE)" for messages, in arena memory. */
const char *sql_describe_x(sql_binder_t *b, const sql_x_t *x);
/* The length in ms of a time unit of fixed length (MILLISECOND to WEEK); 0 for MONTH,
 * QUARTER and YEAR, whose length varies. */
int64_t sql_unit_ms(int unit);

/* The operators (bind_ops.c). */
sql_x_t *sql_bind_binary(sql_binder_t *b, const ast_expr_t *e);
sql_x_t *sql_bind_unary(sql_binder_t *b, const ast_expr_t *e);
sql_x_t *sql_bind_is(sql_binder_t *b, const ast_expr_t *e);
sql_x_t *sql_bind_distinct(sql_binder_t *b, const ast_expr_t *e);
sql_x_t *sql_bind_between(sql_binder_t *b, const ast_expr_t *e);
sql_x_t *sql_bind_in(sql_binder_t *b, const ast_expr_t *e);
sql_x_t *sql_bind_like(sql_binder_t *b, const ast_expr_t *e);
sql_x_t *sql_bind_case(sql_binder_t *b, const ast_expr_t *e);
sql_x_t *sql_bind_cast(sql_binder_t *b, const ast_expr_t *e);

/* A built-in function: bind checks and converts the arguments (already bound) and
 * returns the call's node, or NULL with b->err set. which is the table row's: one
 * binder serves a family of functions (UPPER and LOWER, SIN and COS), usually by
 * keeping it in the node's iparam for the evaluator. */
typedef sql_x_t *(*sql_fn_bind_t)(sql_binder_t *b, const ast_expr_t *call, sql_x_t **args,
                                  int nargs, int which);
typedef struct sql_fn_def {
  const char *name;
  sql_fn_bind_t bind;
  int min_args, max_args; /* checked before bind; max -1: any */
  int which;              /* passed to bind */
} sql_fn_def_t;

extern const sql_fn_def_t sql_fns_math[], sql_fns_string[], sql_fns_time[], sql_fns_cond[];
const sql_fn_def_t *sql_fn_lookup(const char *name);
/* Every built-in scalar and aggregate name, for suggestions. */
int sql_fn_names(const char **out, int cap);

/* Evaluates every argument of the function node x into sql_val_t vals[4] (declared
 * here), in the body of an evaluator whose result is `out`: returns the first error, or
 * NULL as the result when any argument is NULL (the rule of most functions). */
#define SQL_EVAL_ARGS(ev, x, vals)                                   \
  sql_val_t vals[4] = {0};                                           \
  for (int i_ = 0; i_ < (x)->nargs; i_++) {                          \
    int rc_ = sql_eval(ev, (x)->args[i_], &vals[i_]);                \
    if (rc_) return rc_;                                             \
    if (vals[i_].null) return out->null = true, out->dec = 0, FL_OK; \
  }                                                                  \
  out->null = false

/* Makes the text built in sb the string result out (a copy in the evaluation's scratch
 * memory) and frees sb; FL_ENOMEM if sb or the copy failed. */
int sql_fn_string_result(sql_eval_t *ev, sql_strbuf_t *sb, sql_val_t *out);

/* Helpers for function binders */
sql_x_t *sql_fn_node(sql_binder_t *b, const ast_expr_t *call, sql_x_fn fn, const sql_type_t *t,
                     sql_x_t **args, int nargs);
bool sql_fn_args_not_null(sql_x_t **args, int nargs);
/* Requires a numeric / string / datetime argument, or fails with a message. */
bool sql_need_numeric(sql_binder_t *b, const ast_expr_t *call, sql_x_t *x, int i);
bool sql_need_string(sql_binder_t *b, const ast_expr_t *call, sql_x_t **x, int i);
bool sql_need_integer(sql_binder_t *b, const ast_expr_t *call, sql_x_t **x, int i);

#endif
