/*
 * The evaluators of the core node kinds (eval.c, cast.c), for the binder and the
 * function library. Private to the expression compiler.
 */
#ifndef FL_SQL_EVAL_INT_H
#define FL_SQL_EVAL_INT_H

#include "sql/expr.h"

int sql_x_const_fn(sql_eval_t *ev, const sql_x_t *x, sql_val_t *out);
int sql_x_field_fn(sql_eval_t *ev, const sql_x_t *x, sql_val_t *out);
int sql_x_and_fn(sql_eval_t *ev, const sql_x_t *x, sql_val_t *out);
int sql_x_or_fn(sql_eval_t *ev, const sql_x_t *x, sql_val_t *out);
int sql_x_not_fn(sql_eval_t *ev, const sql_x_t *x, sql_val_t *out);
int sql_x_is_fn(sql_eval_t *ev, const sql_x_t *x, sql_val_t *out);
int sql_x_distinct_fn(sql_eval_t *ev, const sql_x_t *x, sql_val_t *out);
int sql_x_in_fn(sql_eval_t *ev, const sql_x_t *x, sql_val_t *out);
int sql_x_case_fn(sql_eval_t *ev, const sql_x_t *x, sql_val_t *out);
int sql_x_neg_fn(sql_eval_t *ev, const sql_x_t *x, sql_val_t *out);
int sql_x_concat2_fn(sql_eval_t *ev, const sql_x_t *x, sql_val_t *out);
int sql_x_like_fn(sql_eval_t *ev, const sql_x_t *x, sql_val_t *out);
int sql_x_datetime_add_fn(sql_eval_t *ev, const sql_x_t *x, sql_val_t *out);
int sql_x_interval_scale_fn(sql_eval_t *ev, const sql_x_t *x, sql_val_t *out);
int sql_x_cast_fn(sql_eval_t *ev, const sql_x_t *x, sql_val_t *out);
sql_x_fn sql_cmp_fn_for(const sql_type_t *t);
sql_x_fn sql_arith_fn_for(int op, const sql_type_t *t);
bool sql_like_match(const char *s, size_t n, const char *p, size_t m, int esc);
int64_t sql_add_months(int64_t v, int64_t months, bool is_date);
/* Converts a non-NULL value between types (the work of CAST); a failure returns
 * FL_EPARSE with the reason in *why, or sets out->null for results out of range. */
int sql_convert(sql_eval_t *ev, const sql_type_t *from, const sql_type_t *to, const sql_val_t *in,
                sql_val_t *out, const char **why);

/* A new node with n argument slots. */
sql_x_t *sql_x_new(sql_arena_t *a, sql_x_fn fn, const sql_type_t *t, int nargs);
/* A copy of x reading input `to` where it read `from`. */
sql_x_t *sql_x_rebase(sql_arena_t *a, sql_x_t *x, int from, int to);
/* A constant node. */
sql_x_t *sql_x_const(sql_arena_t *a, const sql_type_t *t, const sql_val_t *v);

#endif
