/*
 * The syntax tree of a SQL script, as the parser makes it and before any name is
 * resolved. Every node carries the position of its first token so that the binder's
 * errors (unknown column, wrong type) can point at it. Everything lives in the script's
 * arena.
 */
#ifndef FL_SQL_AST_H
#define FL_SQL_AST_H

#include <stdbool.h>
#include <stdint.h>

#include "sql/arena.h"
#include "sql/lexer.h"
#include "sql/types.h"

typedef struct ast_expr ast_expr_t;
typedef struct ast_query ast_query_t;
typedef struct ast_from ast_from_t;

/* ---------------------------------------------------------------------------------- */
/* Expressions                                                                        */

typedef enum ast_expr_kind {
  AE_NULL,
  AE_BOOL,        /* bval */
  AE_NUMBER,      /* text: an integer, decimal or approximate literal (num_kind) */
  AE_STRING,      /* text */
  AE_INTERVAL,    /* text (the quoted value), unit, unit2 (TO unit), sign */
  AE_TYPED,       /* DATE '...', TIME '...', TIMESTAMP '...': text, type */
  AE_IDENT,       /* parts[n_parts]: a, t.a, t.row.field */
  AE_STAR,        /* * or t.* (parts = qualifier) */
  AE_UNARY,       /* op: '-', '+', '!' (NOT); a */
  AE_BINARY,      /* op: see ast_binop_t; a, b */
  AE_IS,          /* a IS [NOT] NULL/TRUE/FALSE/UNKNOWN: is_what, negated */
  AE_IS_DISTINCT, /* a IS [NOT] DISTINCT FROM b */
  AE_BETWEEN,     /* a [NOT] BETWEEN b AND c */
  AE_IN,          /* a [NOT] IN (list) */
  AE_LIKE,        /* a [NOT] LIKE b [ESCAPE c]; similar for SIMILAR TO */
  AE_CASE,        /* [operand a] WHEN list[2i] THEN list[2i+1] ... ELSE b */
  AE_CAST,        /* CAST(a AS type), TRY_CAST */
  AE_CALL,        /* name(args) [FILTER (WHERE filter)] [OVER over] */
  AE_FIELD,       /* a.name where a is not a plain identifier: (expr).name */
  AE_EXTRACT,     /* EXTRACT(unit FROM a) */
  AE_TRIM,        /* TRIM([BOTH|LEADING|TRAILING] [b] FROM a): trim_mode */
  AE_POSITION,    /* POSITION(a IN b) */
  AE_SUBSTRING,   /* SUBSTRING(a FROM b [FOR c]) */
  AE_DESCRIPTOR,  /* DESCRIPTOR(cols): parts = the column names */
  AE_TABLE_ARG,   /* TABLE name [PARTITION BY list]: TVF argument */
  AE_ROW_CTOR,    /* ROW(a, b, ...) / (a, b, ...) */
  AE_ITEM         /* a[b] */
} ast_expr_kind_t;

typedef enum ast_binop {
  OP_ADD,
  OP_SUB,
  OP_MUL,
  OP_DIV,
  OP_MOD,
  OP_CONCAT,
  OP_EQ,
  OP_NE,
  OP_LT,
  OP_LE,
  OP_GT,
  OP_GE,
  OP_AND,
  OP_OR
} ast_binop_t;

typedef enum ast_num_kind {
  NUM_INT,
  NUM_DEC,
  NUM_FLOAT
} ast_num_kind_t;

typedef enum ast_time_unit {
  UNIT_NONE = 0,
  UNIT_MILLISECOND,
  UNIT_SECOND,
  UNIT_MINUTE,
  UNIT_HOUR,
  UNIT_DAY,
  UNIT_WEEK,
  UNIT_MONTH,
  UNIT_QUARTER,
  UNIT_YEAR,
  UNIT_DOW,
  UNIT_DOY,
  UNIT_EPOCH,
  UNIT_MICROSECOND,
  UNIT_NANOSECOND,
  UNIT_CENTURY,
  UNIT_DECADE,
  UNIT_MILLENNIUM,
  UNIT_ISODOW,
  UNIT_ISOYEAR
} ast_time_unit_t;

/* A window specification (OVER (...)). */
typedef struct ast_over {
  sql_pos_t pos;
  sql_ptrvec_t partition;  /* ast_expr_t * */
  sql_ptrvec_t order;      /* ast_expr_t * */
  sql_ptrvec_t order_desc; /* non-NULL entry: DESC */
  bool has_frame;
  bool rows;             /* ROWS, else RANGE */
  bool unbounded;        /* UNBOUNDED PRECEDING */
  ast_expr_t *preceding; /* n PRECEDING / INTERVAL ... PRECEDING (NULL: CURRENT ROW) */
  bool to_current_row;   /* always true when accepted */
  const char *name;      /* OVER w (named window) */
} ast_over_t;

struct ast_expr {
  ast_expr_kind_t kind;
  sql_pos_t pos;
  const char *text;
  size_t text_len;
  ast_num_kind_t num_kind;
  bool bval;
  int op;
  bool negated;
  int is_what; /* AE_IS: 0 NULL, 1 TRUE, 2 FALSE, 3 UNKNOWN */
  ast_time_unit_t unit, unit2;
  int sign; /* AE_INTERVAL: -1 for INTERVAL -'5' */
  bool try_cast;
  bool similar;  /* AE_LIKE: SIMILAR TO */
  int trim_mode; /* 0 BOTH, 1 LEADING, 2 TRAILING */
  const char **parts;
  int n_parts;
  const char *name; /* AE_CALL, AE_FIELD */
  ast_expr_t *a, *b, *c;
  sql_ptrvec_t list; /* ast_expr_t *: args, IN list, CASE pairs, PARTITION BY */
  const sql_type_t *type;
  bool distinct; /* COUNT(DISTINCT x) */
  bool star_arg; /* COUNT(*) */
  ast_expr_t *filter;
  ast_over_t *over;
  /* The source text of the expression, for error messages and column names. */
  size_t src_from, src_to;
};

/* ---------------------------------------------------------------------------------- */
/* Queries                                                                            */

typedef struct ast_select_item {
  ast_expr_t *expr;
  const char *alias; /* NULL: none */
  sql_pos_t pos;
} ast_select_item_t;

typedef enum ast_from_kind {
  AF_TABLE,    /* name [AS alias] */
  AF_SUBQUERY, /* (query) [AS alias] */
  AF_TVF,      /* TABLE(fn(args)) [AS alias] */
  AF_JOIN      /* left JOIN right ON cond */
} ast_from_kind_t;

typedef enum ast_join_kind {
  JOIN_INNER,
  JOIN_LEFT,
  JOIN_RIGHT,
  JOIN_FULL,
  JOIN_CROSS
} ast_join_kind_t;

struct ast_from {
  ast_from_kind_t kind;
  sql_pos_t pos;
  const char *name; /* AF_TABLE */
  const char *alias;
  const char **col_aliases; /* alias(c1, c2) */
  int n_col_aliases;
  ast_query_t *query; /* AF_SUBQUERY */
  ast_expr_t *call;   /* AF_TVF: an AE_CALL */
  ast_join_kind_t join;
  ast_from_t *left, *right;
  ast_expr_t *on;
  const char **using_cols;
  int n_using;
};

typedef struct ast_cte {
  const char *name;
  ast_query_t *query;
  sql_pos_t pos;
} ast_cte_t;

typedef enum ast_query_kind {
  AQ_SELECT,
  AQ_UNION, /* left UNION [ALL] right */
  AQ_VALUES
} ast_query_kind_t;

struct ast_query {
  ast_query_kind_t kind;
  sql_pos_t pos;
  sql_ptrvec_t ctes; /* ast_cte_t *: WITH ... */
  /* AQ_SELECT */
  bool distinct;
  sql_ptrvec_t items; /* ast_select_item_t * */
  ast_from_t *from;   /* NULL: SELECT without FROM */
  ast_expr_t *where;
  sql_ptrvec_t group_by; /* ast_expr_t * */
  ast_expr_t *having;
  sql_ptrvec_t order_by; /* ast_expr_t *, accepted only where streaming allows it */
  ast_expr_t *limit;
  /* AQ_UNION */
  bool all;
  ast_query_t *left, *right;
  /* AQ_VALUES: rows, each an AE_ROW_CTOR */
  sql_ptrvec_t rows;
  size_t src_from, src_to;
};

/* ---------------------------------------------------------------------------------- */
/* Statements                                                                         */

typedef enum ast_col_kind {
  COL_PHYSICAL,
  COL_COMPUTED, /* name AS expr */
  COL_METADATA  /* name type METADATA [FROM 'key'] [VIRTUAL] */
} ast_col_kind_t;

typedef struct ast_column {
  const char *name;
  sql_pos_t pos;
  ast_col_kind_t kind;
  const sql_type_t *type; /* NULL for computed columns */
  ast_expr_t *expr;       /* computed */
  const char *meta_key;   /* metadata: FROM 'key', NULL: the column's name */
  bool is_virtual;
  const char *comment;
} ast_column_t;

typedef struct ast_option {
  const char *key, *value;
  sql_pos_t pos;
} ast_option_t;

typedef struct ast_create_table {
  const char *name;
  bool if_not_exists;
  sql_ptrvec_t columns; /* ast_column_t * */
  const char *wm_column;
  sql_pos_t wm_pos;
  ast_expr_t *wm_expr;
  sql_ptrvec_t pk; /* const char * */
  sql_pos_t pk_pos;
  sql_ptrvec_t options; /* ast_option_t * */
} ast_create_table_t;

typedef enum ast_stmt_kind {
  AS_CREATE_TABLE,
  AS_CREATE_VIEW,
  AS_DROP, /* DROP TABLE / VIEW */
  AS_SET,
  AS_RESET,
  AS_INSERT,
  AS_SELECT,
  AS_STATEMENT_SET, /* BEGIN STATEMENT SET; ... END; (body: inserts) */
  AS_SHOW_TABLES,
  AS_DESCRIBE,
  AS_EXPLAIN
} ast_stmt_kind_t;

typedef struct ast_stmt {
  ast_stmt_kind_t kind;
  sql_pos_t pos;
  size_t src_from, src_to; /* the statement's text */
  ast_create_table_t *table;
  /* CREATE VIEW / DROP / DESCRIBE */
  const char *name;
  bool if_not_exists, if_exists, drop_view;
  const char **view_cols;
  int n_view_cols;
  /* SET / RESET */
  const char *key, *value;
  /* INSERT / SELECT / VIEW / EXPLAIN */
  const char *target;
  const char **target_cols;
  int n_target_cols;
  bool overwrite;
  ast_query_t *query;
  sql_ptrvec_t body; /* AS_STATEMENT_SET: ast_stmt_t * */
} ast_stmt_t;

typedef struct ast_script {
  sql_ptrvec_t stmts; /* ast_stmt_t * */
  const char *src;
} ast_script_t;

#endif
