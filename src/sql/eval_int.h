/*
 * The evaluators of the core node kinds (eval.c, cast.c), for the binder and the
 * function library. Private to the expression compiler.
 */
#ifndef FL_SQL_EVAL_INT_H
#define FL_SQL_EVAL_INT_H

#include "sql/expr.h"

/* In an evaluator whose result is `out`: evaluates x's first argument into a (and the
 * second into b); returns the first error, or NULL as the result when an argument is
 * NULL. */
#define SQL_EVAL1(ev, x, a, out)                                    \
  do {                                                              \
    int rc_ = sql_eval(ev, (x)->args[0], &(a));                     \
    if (rc_) return rc_;                                            \
    if ((a).null) return (out)->null = true, (out)->dec = 0, FL_OK; \
    (out)->null = false;                                            \
  } while (0)
#define SQL_EVAL2(ev, x, a, b, out)                                 \
  do {                                                              \
    SQL_EVAL1(ev, x, a, out);                                       \
    int rc2_ = sql_eval(ev, (x)->args[1], &(b));                    \
    if (rc2_) return rc2_;                                          \
    if ((b).null) return (out)->null = true, (out)->dec = 0, FL_OK; \
  } while (0)

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
