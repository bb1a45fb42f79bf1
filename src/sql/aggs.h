/*
 * Aggregate functions at run time: accumulators of a fixed size (for the window
 * operator's incremental aggregation and the OVER operator), and the buffered forms
 * that aggregate a list of rows (DISTINCT, MIN/MAX of strings).
 *
 * NULL rules (Flink's): aggregates skip NULL arguments and rows whose FILTER is not
 * TRUE; COUNT(*) counts rows, COUNT(x) non-NULL x; SUM, AVG, MIN, MAX of no values are
 * NULL (SUM0 is 0). AVG of integers is an integer (truncated), of DECIMAL(p, s) a
 * DECIMAL(38, max(6, s)).
 */
#ifndef FL_SQL_AGGS_H
#define FL_SQL_AGGS_H

#include "sql/plan.h"

void sql_acc_init(const sql_agg_t *ag, uint8_t *acc);
/* Adds (dir = 1) or retracts (dir = -1) the row's input. Retraction is exact for
 * COUNT, SUM, AVG and the variances; MIN, MAX, FIRST_VALUE and LAST_VALUE cannot
 * retract (sql_acc_retractable), their owners recompute them. */
int sql_acc_add(const sql_agg_t *ag, uint8_t *acc, const uint8_t *row, int ncols, int dir);
bool sql_acc_retractable(const sql_agg_t *ag);
void sql_acc_merge(const sql_agg_t *ag, uint8_t *acc, const uint8_t *other);
/* The result; strings of user aggregates go to ev's scratch. */
int sql_acc_result(const sql_agg_t *ag, const uint8_t *acc, sql_eval_t *ev, sql_val_t *out);
/* An aggregate over n rows (any kind, DISTINCT and strings included). */
int sql_agg_rows(const sql_agg_t *ag, const fl_record_t *rows, size_t n, int ncols, sql_eval_t *ev,
                 sql_val_t *out);

#endif
