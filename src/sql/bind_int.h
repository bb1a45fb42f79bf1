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
 * returns the call's node, or NULL with b->err set. */
typedef sql_x_t *(*sql_fn_bind_t)(sql_binder_t *b, const ast_expr_t *call, sql_x_t **args,
                                  int nargs);
typedef struct sql_fn_def {
  const char *name;
  sql_fn_bind_t bind;
  int min_args, max_args; /* checked before bind; max -1: any */
} sql_fn_def_t;

extern const sql_fn_def_t sql_fns_math[], sql_fns_string[], sql_fns_time[], sql_fns_cond[];
const sql_fn_def_t *sql_fn_lookup(const char *name);
/* Every built-in scalar and aggregate name, for suggestions. */
int sql_fn_names(const char **out, int cap);

/* Helpers for function binders */
sql_x_t *sql_fn_node(sql_binder_t *b, const ast_expr_t *call, sql_x_fn fn, const sql_type_t *t,
                     sql_x_t **args, int nargs);
bool sql_fn_args_not_null(sql_x_t **args, int nargs);
/* Requires a numeric / string / datetime argument, or fails with a message. */
bool sql_need_numeric(sql_binder_t *b, const ast_expr_t *call, sql_x_t *x, int i);
bool sql_need_string(sql_binder_t *b, const ast_expr_t *call, sql_x_t **x, int i);
bool sql_need_integer(sql_binder_t *b, const ast_expr_t *call, sql_x_t **x, int i);

#endif
