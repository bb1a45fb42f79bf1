/*
 * The planner: from a query's syntax tree to a logical plan (plan.h), resolving tables,
 * views and common table expressions, binding expressions, and recognising the
 * streaming patterns Flink runs as append-only operators: window table functions with
 * GROUP BY window_start, window_end, OVER aggregations, interval and window joins, and
 * window Top-N. Queries whose result would update earlier rows (regular joins, GROUP BY
 * without a window, Top-N without a window) are refused with a message that says so.
 */
#ifndef FL_SQL_PLANNER_H
#define FL_SQL_PLANNER_H

#include "sql/catalog.h"
#include "sql/plan.h"

typedef struct sql_cte_scope sql_cte_scope_t;

typedef struct sql_planner {
  sql_arena_t *a;
  const char *src; /* text of the statement being planned */
  sql_catalog_t *cat;
  char *err;
  size_t err_size;
  int rc;
  sql_cte_scope_t *ctes;
  int depth; /* view expansion */
  int next_id;
  /* tables and views already planned in this script: read once (sub-plan reuse) */
  const void **memo_keys;
  sql_rel_t **memo_rels;
  int nmemo, cap_memo;
} sql_planner_t;

sql_rel_t *sql_plan_query(sql_planner_t *p, const ast_query_t *q);

/* Shared by the planner's files (planner.c, plan_window.c, plan_over.c, plan_join.c). */
void *sql_plan_fail(sql_planner_t *p, int code, sql_pos_t pos, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 4, 5)))
#endif
    ;
void *sql_plan_nomem(sql_planner_t *p);
sql_rel_t *sql_rel_new(sql_planner_t *p, sql_rel_kind_t kind, int n);
/* Appends e to *v, an arena array of *n calls with room for *cap (grown as needed);
 * false when out of memory. */
bool sql_plan_push_call(sql_planner_t *p, const ast_expr_t ***v, int *n, int *cap,
                        const ast_expr_t *e);
/* The identity projection of in's columns, and their names, with room for extra more
 * (arena memory); NULL (the planner's error set) when out of memory. */
sql_x_t **sql_plan_identity(sql_planner_t *p, const sql_rel_t *in, const char ***names, int extra);
/* Calls fn(ctx, child) for each direct child of e: a, b, c (those that are there) and
 * the list. */
void sql_ast_children(const ast_expr_t *e, void (*fn)(void *ctx, const ast_expr_t *child),
                      void *ctx);
/* A binder over one relation (input 0), or two (a join: input 0 left, 1 right). */
void sql_plan_binder(sql_planner_t *p, sql_binder_t *b, const sql_rel_t *l, const sql_rel_t *r,
                     const char *clause);
/* Binds, and on failure moves the binder's message into the planner (FL_EINVAL). */
sql_x_t *sql_plan_bind(sql_planner_t *p, sql_binder_t *b, const ast_expr_t *e);
/* A CALC over in with the given projections (names from names[] or the expressions). */
sql_rel_t *sql_plan_calc(sql_planner_t *p, sql_rel_t *in, sql_x_t **proj, const char **names, int n,
                         sql_x_t *filter);
/* Copies the attributes of in's column to out's when x reads it unchanged. */
void sql_field_from_expr(const sql_rel_t *in, const sql_x_t *x, sql_field_t *out);
/* Whether an AST contains an aggregate call (without OVER), an OVER call. */
bool sql_ast_has_agg(const sql_catalog_t *cat, const ast_expr_t *e);
bool sql_ast_has_over(const ast_expr_t *e);
/* Flattens a bound condition's ANDs. */
void sql_conjuncts(sql_x_t *x, sql_x_t **out, int *n, int cap);
/* AND of the given conditions (NULL when n == 0). */
sql_x_t *sql_and_all(sql_planner_t *p, sql_x_t **xs, int n);

/* plan_window.c: one aggregate call, its inputs appended to vals (the CALC before it) */
bool sql_plan_agg_call(sql_planner_t *p, sql_binder_t *b, const ast_expr_t *e, sql_agg_t *ag,
                       sql_x_t **vals, int *nvals);
/* plan_window.c */
sql_rel_t *sql_plan_tvf(sql_planner_t *p, const ast_from_t *f);
sql_rel_t *sql_plan_window_agg(sql_planner_t *p, const ast_query_t *q, sql_rel_t *from,
                               sql_x_t *where);
/* plan_over.c */
sql_rel_t *sql_plan_over(sql_planner_t *p, const ast_query_t *q, sql_rel_t *from);
sql_rel_t *sql_plan_rank(sql_planner_t *p, const ast_query_t *q, sql_rel_t *from);
bool sql_apply_rank_limit(sql_planner_t *p, sql_rel_t *from, sql_x_t **conj, int *nconj);
bool sql_plan_check_ranks(sql_planner_t *p, sql_rel_t *rel);
/* plan_join.c */
sql_rel_t *sql_plan_join(sql_planner_t *p, const ast_from_t *f, sql_rel_t *l, sql_rel_t *r,
                         const ast_expr_t *where);
/* planner.c */
sql_rel_t *sql_plan_from(sql_planner_t *p, const ast_from_t *f, const ast_expr_t *where,
                         bool *where_used);

#endif
