/*
 * Logical plans: what a query becomes once its names and types are resolved, and what
 * the translator (exec_*.c) turns into operators. A plan is a tree of relations
 * (sql_rel_t), each with its output columns:
 *
 *   SCAN      a table's source: physical, metadata and computed columns, timestamps
 *             and watermarks as declared
 *   STREAM    a DataStream registered as a table
 *   VALUES    constant rows
 *   CALC      projection and filter (Flink's Calc); may also set the record key (the
 *             row of key columns a keyed operator after it partitions by) and the record
 *             timestamp (from a column)
 *   WINTVF    a window table function materialized: each row once per window it falls
 *             into, with window_start, window_end, window_time (TUMBLE, HOP, CUMULATE)
 *   WINAGG    a window aggregation: the keyed window operator with incremental
 *             aggregates (native assigners for TUMBLE, HOP, SESSION; windows given by
 *             window_start/window_end columns for CUMULATE and cascaded aggregations)
 *   OVER      an OVER aggregation (ROWS or RANGE frames ending at the current row)
 *   JOIN      an interval join or a window join (inner); regular joins are refused
 *   RANK      a window Top-N (ROW_NUMBER() OVER (PARTITION BY window_start,
 *             window_end ... ORDER BY ...) with a rownum filter)
 *   UNION     UNION ALL
 *
 * Columns carry their time attribute (the row time that travels as the record's
 * timestamp, or processing time) and their window attribute (window_start, window_end,
 * window_time, with the window), which is how later operators find the windows.
 */
#ifndef FL_SQL_PLAN_H
#define FL_SQL_PLAN_H

#include <stdbool.h>
#include <stdint.h>

#include "flink.h"
#include "sql/catalog.h"
#include "sql/expr.h"

typedef enum sql_time_attr {
  TA_NONE = 0,
  TA_ROWTIME,
  TA_PROCTIME
} sql_time_attr_t;

typedef enum sql_win_attr {
  WA_NONE = 0,
  WA_START,
  WA_END,
  WA_TIME
} sql_win_attr_t;

typedef enum sql_win_kind {
  WIN_TUMBLE,
  WIN_HOP,
  WIN_CUMULATE,
  WIN_SESSION
} sql_win_kind_t;

typedef struct sql_winspec {
  sql_win_kind_t kind;
  int64_t size, slide, step, gap, offset;
  bool proctime;
} sql_winspec_t;

typedef struct sql_field {
  const char *name;
  const char *qual; /* the alias it is known by in the enclosing query */
  const sql_type_t *type;
  sql_time_attr_t time;
  sql_win_attr_t win;
  const sql_winspec_t *ws;
  bool hidden; /* left out of SELECT * */
  /* The value is always the record's timestamp + ts_delta (the row time, or a window
   * bound of a window aggregation's output): what interval join bounds are made of. */
  bool ts_exact;
  int64_t ts_delta;
} sql_field_t;

typedef enum sql_agg_kind {
  AGG_COUNT_STAR,
  AGG_COUNT,
  AGG_SUM,
  AGG_SUM0,
  AGG_MIN,
  AGG_MAX,
  AGG_AVG,
  AGG_STDDEV_POP,
  AGG_STDDEV_SAMP,
  AGG_VAR_POP,
  AGG_VAR_SAMP,
  AGG_FIRST_VALUE,
  AGG_LAST_VALUE,
  AGG_UDAF
} sql_agg_kind_t;

typedef struct sql_agg {
  sql_agg_kind_t kind;
  int arg;    /* column of the aggregation's input row, -1 for COUNT(*) */
  int filter; /* BOOLEAN column of the input row (FILTER (WHERE ...)), -1 for none */
  bool distinct;
  const sql_type_t *arg_type;
  const sql_type_t *type; /* result */
  const sql_udf_t *udaf;
  int *args; /* UDAF argument columns */
  int nargs;
  size_t acc_off, acc_size;
  bool fixed; /* the accumulator has a fixed size (strings in MIN/MAX do not) */
} sql_agg_t;

typedef enum sql_rel_kind {
  R_SCAN,
  R_STREAM,
  R_VALUES,
  R_CALC,
  R_WINTVF,
  R_WINAGG,
  R_OVER,
  R_JOIN,
  R_RANK,
  R_UNION
} sql_rel_kind_t;

typedef struct sql_rel sql_rel_t;

struct sql_rel {
  sql_rel_kind_t kind;
  int n;
  sql_field_t *f;
  sql_rel_t *in[2];
  int nin;
  const char *name; /* operator name, for metrics and errors */

  /* SCAN / STREAM */
  const sql_table_t *table;

  /* VALUES: nrows * n constant expressions */
  sql_x_t **values;
  int nrows;

  /* CALC (and the projection fused into a JOIN: over (left, right) inputs) */
  sql_x_t **proj;
  sql_x_t *filter;
  sql_x_t **key; /* record key columns (a row of them), NULL: empty key */
  int nkey;
  sql_x_t *ts;       /* new record timestamp (TIMESTAMP value), NULL: keep */
  int64_t ts_offset; /* added to ts */

  /* WINTVF, WINAGG */
  sql_winspec_t ws;
  int time_col; /* WINTVF: the descriptor column of the input */

  /* WINAGG: the input is a CALC emitting key = group keys, value = aggregate inputs */
  bool native;             /* the window operator assigns windows (TUMBLE, HOP, SESSION) */
  int nkeys;               /* group key columns (in the key row) */
  int *out_keys;           /* output column i <- key column out_keys[i] (or -1 + win attr) */
  sql_win_attr_t *out_win; /* output column from the window (native) */
  int key_ws, key_we;      /* cascaded: key columns holding window_start / window_end */
  sql_agg_t *aggs;
  int naggs;
  size_t acc_size;
  bool buffered; /* some aggregate needs the rows (DISTINCT, MIN/MAX of strings) */

  /* OVER: input CALC emits key = partition keys */
  bool rows_frame;
  bool unbounded;
  int64_t preceding; /* rows or ms */
  bool order_proctime;

  /* JOIN */
  bool window_join;
  int64_t lower, upper; /* interval join: right.ts - left.ts in [lower, upper] */
  sql_x_t *residual;    /* over (left, right) */

  /* RANK */
  int64_t limit;
  int norder;
  int *order_cols;
  bool *order_desc;
  bool emit_rownum;

  /* translation */
  sql_rel_t *alias_of; /* the same relation under other names: shares its stream */
  fl_stream_t *stream;
};

#endif
