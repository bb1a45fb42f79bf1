/*
 * The parser's entry points, shared helpers, statements and types (parser.h). Queries
 * are in parser_query.c, expressions in parser_expr.c.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "flink.h"
#include "sql/parser.h"
#include "sql/parser_int.h"

/* Words that cannot be used as unquoted identifiers or implicit aliases, because they
 * end or continue the clause before them. */
static const char *const reserved_words[] = {"ALL",
                                             "AND",
                                             "AS",
                                             "BETWEEN",
                                             "BY",
                                             "CASE",
                                             "CAST",
                                             "CREATE",
                                             "CROSS",
                                             "CURRENT",
                                             "DISTINCT",
                                             "ELSE",
                                             "END",
                                             "EXCEPT",
                                             "EXISTS",
                                             "FALSE",
                                             "FETCH",
                                             "FILTER",
                                             "FOLLOWING",
                                             "FOR",
                                             "FROM",
                                             "FULL",
                                             "GROUP",
                                             "HAVING",
                                             "IN",
                                             "INNER",
                                             "INSERT",
                                             "INTERSECT",
                                             "INTERVAL",
                                             "INTO",
                                             "IS",
                                             "JOIN",
                                             "LATERAL",
                                             "LEFT",
                                             "LIKE",
                                             "LIMIT",
                                             "MATCH_RECOGNIZE",
                                             "MINUS",
                                             "NATURAL",
                                             "NOT",
                                             "NULL",
                                             "OFFSET",
                                             "ON",
                                             "OR",
                                             "ORDER",
                                             "OUTER",
                                             "OVER",
                                             "PARTITION",
                                             "PRECEDING",
                                             "RANGE",
                                             "RIGHT",
                                             "ROWS",
                                             "SELECT",
                                             "SET",
                                             "SIMILAR",
                                             "TABLE",
                                             "THEN",
                                             "TRUE",
                                             "UNBOUNDED",
                                             "UNION",
                                             "USING",
                                             "VALUES",
                                             "WHEN",
                                             "WHERE",
                                             "WINDOW",
                                             "WITH",
                                             "ESCAPE",
                                             "UNKNOWN",
                                             NULL};

bool P_reserved(const sql_tok_t *t) {
  if (t->kind != TK_IDENT) return false;
  for (int i = 0; reserved_words[i]; i++)
    if (strcasecmp(t->text, reserved_words[i]) == 0) return true;
  return false;
}

_Noreturn void P_fail_at(parser_t *p, const sql_tok_t *t, const char *expected) {
  char tb[80];
  sql_tok_describe(t, tb, sizeof tb);
  if (expected) {
    snprintf(p->err, p->err_size, "syntax error at line %d, column %d: unexpected %s (expected %s)",
             t->pos.line, t->pos.col, tb, expected);
  } else {
    snprintf(p->err, p->err_size, "syntax error at line %d, column %d: unexpected %s", t->pos.line,
             t->pos.col, tb);
  }
  p->rc = FL_EPARSE;
  longjmp(p->fail, 1);
}

_Noreturn void P_fail_msg(parser_t *p, sql_pos_t pos, const char *fmt, ...) {
  int n = snprintf(p->err, p->err_size, "syntax error at ");
  if (n >= 0 && (size_t)n < p->err_size) {
    va_list ap;
    va_start(ap, fmt);
    sql_verror_at(p->err + n, p->err_size - (size_t)n, pos, fmt, ap);
    va_end(ap);
  }
  p->rc = FL_EPARSE;
  longjmp(p->fail, 1);
}

_Noreturn void P_nomem(parser_t *p) {
  snprintf(p->err, p->err_size, "out of memory parsing SQL");
  p->rc = FL_ENOMEM;
  longjmp(p->fail, 1);
}

void *P_alloc(parser_t *p, size_t n) {
  void *x = sql_arena_alloc(p->a, n);
  if (!x) P_nomem(p);
  return x;
}

void P_push(parser_t *p, sql_ptrvec_t *v, void *x) {
  if (sql_ptrvec_push(p->a, v, x) != FL_OK) P_nomem(p);
}

bool P_kw(parser_t *p, const char *kw) {
  if (sql_tok_is_kw(P_peek(p), kw)) {
    P_next(p);
    return true;
  }
  return false;
}

int P_kw_which(parser_t *p, const char *const *words) {
  for (int i = 0; words[i]; i++)
    if (P_kw(p, words[i])) return i;
  return -1;
}

bool P_kw_at(parser_t *p, size_t k, const char *kw) { return sql_tok_is_kw(P_peek_at(p, k), kw); }

bool P_op(parser_t *p, const char *op) {
  if (sql_tok_is_op(P_peek(p), op)) {
    P_next(p);
    return true;
  }
  return false;
}

void P_expect_kw(parser_t *p, const char *kw) {
  if (!P_kw(p, kw)) P_fail_at(p, P_peek(p), kw);
}

void P_expect_op(parser_t *p, const char *op) {
  if (!P_op(p, op)) {
    char e[16];
    snprintf(e, sizeof e, "'%s'", op);
    P_fail_at(p, P_peek(p), e);
  }
}

bool P_is_ident(parser_t *p, const sql_tok_t *t) {
  return t->kind == TK_QIDENT || (t->kind == TK_IDENT && !P_reserved(t));
}

const char *P_ident(parser_t *p, const char *what) {
  const sql_tok_t *t = P_peek(p);
  if (!P_is_ident(p, t)) P_fail_at(p, t, what);
  P_next(p);
  return t->text;
}

const char *P_qualified_name(parser_t *p, const char *what) {
  const char *name = P_ident(p, what);
  while (sql_tok_is_op(P_peek(p), ".")) {
    P_next(p);
    const char *part = P_ident(p, what);
    name = sql_arena_printf(p->a, "%s.%s", name, part);
    if (!name) P_nomem(p);
  }
  return name;
}

int P_ident_list(parser_t *p, const char *what, const char ***names) {
  sql_ptrvec_t v = {0};
  do {
    P_push(p, &v, (void *)P_ident(p, what));
  } while (P_op(p, ","));
  *names = (const char **)v.v;
  return (int)v.n;
}

const char *P_string(parser_t *p, const char *what) {
  const sql_tok_t *t = P_peek(p);
  if (t->kind != TK_STRING) P_fail_at(p, t, what);
  P_next(p);
  return t->text;
}

/* ---------------------------------------------------------------------------------- */
/* Types                                                                              */

static int P_int(parser_t *p, const char *what) {
  const sql_tok_t *t = P_peek(p);
  if (t->kind != TK_INT) P_fail_at(p, t, what);
  P_next(p);
  long v = strtol(t->text, NULL, 10);
  if (v < 0 || v > SQL_MAX_LENGTH) P_fail_msg(p, t->pos, "%s out of range: %s", what, t->text);
  return (int)v;
}

/* (n) after a type name, or def. */
static int P_opt_len(parser_t *p, int def, const char *what) {
  if (!sql_tok_is_op(P_peek(p), "(")) return def;
  P_next(p);
  int v = P_int(p, what);
  P_expect_op(p, ")");
  return v;
}

static const sql_type_t *P_row_type(parser_t *p, sql_pos_t pos) {
  /* ROW<name type, ...> or ROW(name type, ...) */
  const char *close;
  if (P_op(p, "<")) {
    close = ">";
  } else {
    P_expect_op(p, "(");
    close = ")";
  }
  sql_ptrvec_t names = {0}, types = {0};
  if (!sql_tok_is_op(P_peek(p), close)) {
    do {
      const char *n = P_ident(p, "a field name");
      const sql_type_t *t = P_type(p);
      if (P_kw(p, "COMMENT")) P_string(p, "a comment string");
      for (size_t k = 0; k < names.n; k++)
        if (strcmp(names.v[k], n) == 0) P_fail_msg(p, pos, "duplicate field name '%s' in ROW", n);
      P_push(p, &names, (void *)n);
      P_push(p, &types, (void *)t);
    } while (P_op(p, ","));
  }
  P_expect_op(p, close);
  sql_type_t *t = P_alloc(p, sizeof *t);
  t->kind = T_ROW;
  t->n_fields = (int)names.n;
  t->field_names = (const char **)names.v;
  t->field_types = (const sql_type_t **)types.v;
  return t;
}

/* The type names that need no more than an optional (n): the kind, and the precision
 * (the default of the (n) when len names what n is, else fixed). */
static const struct {
  const char *name;
  sql_type_kind_t kind;
  int precision;
  const char *len;
} simple_types[] = {{"BOOLEAN", T_BOOLEAN, 0, NULL},
                    {"BOOL", T_BOOLEAN, 0, NULL},
                    {"TINYINT", T_TINYINT, 0, NULL},
                    {"SMALLINT", T_SMALLINT, 0, NULL},
                    {"INT", T_INT, 0, NULL},
                    {"INTEGER", T_INT, 0, NULL},
                    {"BIGINT", T_BIGINT, 0, NULL},
                    {"FLOAT", T_FLOAT, 0, NULL},
                    {"REAL", T_FLOAT, 0, NULL},
                    {"DOUBLE", T_DOUBLE, 0, NULL},
                    {"STRING", T_VARCHAR, SQL_MAX_LENGTH, NULL},
                    {"VARCHAR", T_VARCHAR, 1, "a length"},
                    {"BYTES", T_VARBINARY, SQL_MAX_LENGTH, NULL},
                    {"VARBINARY", T_VARBINARY, 1, "a length"},
                    {"BINARY", T_BINARY, 1, "a length"},
                    {"DATE", T_DATE, 0, NULL},
                    {"TIME", T_TIME, 0, "a precision"},
                    {"TIMESTAMP", T_TIMESTAMP, 6, "a precision"},
                    {"TIMESTAMP_LTZ", T_TIMESTAMP_LTZ, 6, "a precision"}};

const sql_type_t *P_type(parser_t *p) {
  const sql_tok_t *t = P_peek(p);
  if (t->kind != TK_IDENT) P_fail_at(p, t, "a type");
  P_next(p);
  sql_type_t *ty = P_alloc(p, sizeof *ty);
  const char *n = t->text;
  size_t k = 0;
  while (k < sizeof simple_types / sizeof *simple_types && strcasecmp(n, simple_types[k].name)) k++;
  if (k < sizeof simple_types / sizeof *simple_types) {
    ty->kind = simple_types[k].kind;
    ty->precision = simple_types[k].len
                        ? P_opt_len(p, simple_types[k].precision, simple_types[k].len)
                        : simple_types[k].precision;
    if (ty->kind == T_DOUBLE) P_kw(p, "PRECISION");
    if (ty->kind == T_VARCHAR && ty->precision < 1)
      P_fail_msg(p, t->pos, "VARCHAR length must be at least 1");
    if (ty->kind == T_TIME || ty->kind == T_TIMESTAMP) {
      if (P_kw(p, "WITHOUT")) {
        P_expect_kw(p, "TIME");
        P_expect_kw(p, "ZONE");
      } else if (ty->kind == T_TIMESTAMP && P_kw(p, "WITH")) {
        if (!P_kw(p, "LOCAL"))
          P_fail_msg(p, t->pos, "TIMESTAMP WITH TIME ZONE is not supported; use TIMESTAMP_LTZ");
        P_expect_kw(p, "TIME");
        P_expect_kw(p, "ZONE");
        ty->kind = T_TIMESTAMP_LTZ;
      }
    }
  } else if (!strcasecmp(n, "DECIMAL") || !strcasecmp(n, "DEC") || !strcasecmp(n, "NUMERIC")) {
    ty->kind = T_DECIMAL;
    ty->precision = 10;
    if (P_op(p, "(")) {
      ty->precision = P_int(p, "a precision");
      if (P_op(p, ",")) ty->scale = P_int(p, "a scale");
      P_expect_op(p, ")");
    }
    if (ty->precision < 1 || ty->precision > SQL_MAX_DECIMAL_PRECISION)
      P_fail_msg(p, t->pos, "DECIMAL precision must be between 1 and 38, not %d", ty->precision);
    if (ty->scale > ty->precision)
      P_fail_msg(p, t->pos, "DECIMAL scale %d exceeds its precision %d", ty->scale, ty->precision);
  } else if (!strcasecmp(n, "CHAR") || !strcasecmp(n, "CHARACTER")) {
    if (P_kw(p, "VARYING")) {
      ty->kind = T_VARCHAR;
    } else {
      ty->kind = T_CHAR;
    }
    ty->precision = P_opt_len(p, 1, "a length");
    if (ty->precision < 1) P_fail_msg(p, t->pos, "CHAR length must be at least 1");
  } else if (!strcasecmp(n, "ROW")) {
    const sql_type_t *r = P_row_type(p, t->pos);
    *ty = *r;
  } else if (!strcasecmp(n, "ARRAY") || !strcasecmp(n, "MAP") || !strcasecmp(n, "MULTISET") ||
             !strcasecmp(n, "RAW")) {
    P_fail_msg(p, t->pos,
               "type %s is not supported (supported: BOOLEAN, TINYINT, SMALLINT, "
               "INT, BIGINT, FLOAT, DOUBLE, DECIMAL, CHAR, VARCHAR, STRING, BYTES, DATE, TIME, "
               "TIMESTAMP, TIMESTAMP_LTZ, ROW)",
               n);
  } else {
    P_fail_at(p, t, "a type");
  }
  if ((ty->kind == T_TIMESTAMP || ty->kind == T_TIMESTAMP_LTZ || ty->kind == T_TIME) &&
      ty->precision > 9)
    P_fail_msg(p, t->pos, "%s precision must be between 0 and 9", n);
  if (sql_tok_is_kw(P_peek(p), "NOT") && sql_tok_is_kw(P_peek_at(p, 1), "NULL")) {
    P_next(p);
    P_next(p);
    ty->not_null = true;
  } else if (P_kw(p, "NULL")) {
    ty->not_null = false;
  }
  return ty;
}

/* ---------------------------------------------------------------------------------- */
/* CREATE TABLE                                                                       */

static void P_options(parser_t *p, sql_ptrvec_t *out) {
  P_expect_op(p, "(");
  if (!sql_tok_is_op(P_peek(p), ")")) {
    do {
      ast_option_t *o = P_alloc(p, sizeof *o);
      o->pos = P_peek(p)->pos;
      o->key = P_string(p, "an option key in quotes");
      P_expect_op(p, "=");
      o->value = P_string(p, "an option value in quotes");
      for (size_t k = 0; k < out->n; k++) {
        ast_option_t *q = out->v[k];
        if (strcmp(q->key, o->key) == 0)
          P_fail_msg(p, o->pos, "option '%s' is given twice", o->key);
      }
      P_push(p, out, o);
    } while (P_op(p, ","));
  }
  P_expect_op(p, ")");
}

static void P_pk(parser_t *p, ast_create_table_t *t) {
  t->pk_pos = P_peek(p)->pos;
  P_expect_kw(p, "PRIMARY");
  P_expect_kw(p, "KEY");
  P_expect_op(p, "(");
  do {
    P_push(p, &t->pk, (void *)P_ident(p, "a column name"));
  } while (P_op(p, ","));
  P_expect_op(p, ")");
  if (!P_kw(p, "NOT")) {
    P_fail_msg(p, t->pk_pos,
               "PRIMARY KEY must be declared NOT ENFORCED (Flink does not own the "
               "data, so it cannot enforce it)");
  }
  P_expect_kw(p, "ENFORCED");
}

/* The column and constraint list inside CREATE TABLE's parentheses, up to close. */
static void P_schema_body(parser_t *p, ast_create_table_t *t) {
  for (;;) {
    const sql_tok_t *tok = P_peek(p);
    if (sql_tok_is_kw(tok, "WATERMARK")) {
      if (t->wm_column) P_fail_msg(p, tok->pos, "only one WATERMARK clause per table");
      P_next(p);
      t->wm_pos = tok->pos;
      P_expect_kw(p, "FOR");
      t->wm_column = P_qualified_name(p, "the time attribute column");
      P_expect_kw(p, "AS");
      t->wm_expr = P_expr(p);
    } else if (sql_tok_is_kw(tok, "PRIMARY")) {
      if (t->pk.n) P_fail_msg(p, tok->pos, "only one PRIMARY KEY per table");
      P_pk(p, t);
    } else if (sql_tok_is_kw(tok, "CONSTRAINT")) {
      P_next(p);
      P_ident(p, "a constraint name");
      if (t->pk.n) P_fail_msg(p, tok->pos, "only one PRIMARY KEY per table");
      P_pk(p, t);
    } else {
      ast_column_t *c = P_alloc(p, sizeof *c);
      c->pos = tok->pos;
      c->name = P_ident(p, "a column name, WATERMARK or PRIMARY KEY");
      for (size_t k = 0; k < t->columns.n; k++) {
        ast_column_t *o = t->columns.v[k];
        if (strcmp(o->name, c->name) == 0)
          P_fail_msg(p, c->pos, "column '%s' is declared twice", c->name);
      }
      if (P_kw(p, "AS")) {
        c->kind = COL_COMPUTED;
        c->expr = P_expr(p);
      } else {
        c->type = P_type(p);
        if (P_kw(p, "METADATA")) {
          c->kind = COL_METADATA;
          if (P_kw(p, "FROM")) c->meta_key = P_string(p, "a metadata key in quotes");
          if (P_kw(p, "VIRTUAL")) c->is_virtual = true;
        }
        if (sql_tok_is_kw(P_peek(p), "PRIMARY")) {
          if (t->pk.n) P_fail_msg(p, P_peek(p)->pos, "only one PRIMARY KEY per table");
          t->pk_pos = P_peek(p)->pos;
          P_next(p);
          P_expect_kw(p, "KEY");
          P_push(p, &t->pk, (void *)c->name);
          if (!P_kw(p, "NOT"))
            P_fail_msg(p, t->pk_pos, "PRIMARY KEY must be declared NOT ENFORCED");
          P_expect_kw(p, "ENFORCED");
        }
      }
      if (P_kw(p, "COMMENT")) c->comment = P_string(p, "a comment string");
      P_push(p, &t->columns, c);
    }
    if (!P_op(p, ",")) break;
  }
}

static bool P_if_not_exists(parser_t *p) {
  if (!P_kw(p, "IF")) return false;
  P_expect_kw(p, "NOT");
  P_expect_kw(p, "EXISTS");
  return true;
}

static ast_stmt_t *P_create_table(parser_t *p, ast_stmt_t *s) {
  ast_create_table_t *t = P_alloc(p, sizeof *t);
  s->kind = AS_CREATE_TABLE;
  s->table = t;
  t->if_not_exists = P_if_not_exists(p);
  t->name = P_qualified_name(p, "a table name");
  s->name = t->name;
  P_expect_op(p, "(");
  P_schema_body(p, t);
  P_expect_op(p, ")");
  if (P_kw(p, "COMMENT")) P_string(p, "a comment string");
  if (P_kw(p, "PARTITIONED")) {
    P_fail_msg(p, P_peek(p)->pos, "PARTITIONED BY is not supported");
  }
  if (sql_tok_is_kw(P_peek(p), "LIKE"))
    P_fail_msg(p, P_peek(p)->pos, "CREATE TABLE ... LIKE is not supported");
  P_expect_kw(p, "WITH");
  P_options(p, &t->options);
  return s;
}

static ast_stmt_t *P_create_view(parser_t *p, ast_stmt_t *s) {
  s->kind = AS_CREATE_VIEW;
  s->if_not_exists = P_if_not_exists(p);
  s->name = P_qualified_name(p, "a view name");
  if (P_op(p, "(")) {
    s->n_view_cols = P_ident_list(p, "a column name", &s->view_cols);
    P_expect_op(p, ")");
  }
  if (P_kw(p, "COMMENT")) P_string(p, "a comment string");
  P_expect_kw(p, "AS");
  s->query = P_query(p);
  return s;
}

/* SET 'key' = 'value', SET key = value, SET. */
static const char *P_set_word(parser_t *p, const char *what) {
  const sql_tok_t *t = P_peek(p);
  if (t->kind == TK_STRING) return P_string(p, what);
  /* unquoted: a dotted key, or a bare value such as true, 4, 10s */
  if (t->kind == TK_IDENT || t->kind == TK_QIDENT || t->kind == TK_INT || t->kind == TK_DEC) {
    size_t start = t->offset;
    size_t end = start;
    const sql_tok_t *last = t;
    while (!sql_tok_is_op(P_peek(p), ";") && !sql_tok_is_op(P_peek(p), "=") &&
           P_peek(p)->kind != TK_EOF) {
      last = P_next(p);
      end = last->end;
      /* stop at whitespace: a key is one word */
      const sql_tok_t *n = P_peek(p);
      if (n->offset != end) break;
    }
    char *v = sql_arena_strndup(p->a, p->src + start, end - start);
    if (!v) P_nomem(p);
    return v;
  }
  P_fail_at(p, t, what);
}

static ast_stmt_t *P_insert(parser_t *p, ast_stmt_t *s) {
  s->kind = AS_INSERT;
  if (P_kw(p, "OVERWRITE")) {
    s->overwrite = true;
  } else {
    P_expect_kw(p, "INTO");
  }
  s->pos = P_peek(p)->pos;
  s->target = P_qualified_name(p, "a table name");
  if (sql_tok_is_op(P_peek(p), "(") && !sql_tok_is_kw(P_peek_at(p, 1), "SELECT") &&
      !sql_tok_is_kw(P_peek_at(p, 1), "WITH") && !sql_tok_is_kw(P_peek_at(p, 1), "VALUES")) {
    P_next(p);
    s->n_target_cols = P_ident_list(p, "a column name", &s->target_cols);
    P_expect_op(p, ")");
  }
  s->query = P_query(p);
  return s;
}

static ast_stmt_t *P_statement(parser_t *p);

static ast_stmt_t *P_statement_set(parser_t *p, ast_stmt_t *s, bool execute_form) {
  s->kind = AS_STATEMENT_SET;
  if (!execute_form) P_expect_op(p, ";");
  for (;;) {
    while (P_op(p, ";")) {}
    if (P_kw(p, "END")) break;
    const sql_tok_t *t = P_peek(p);
    if (t->kind == TK_EOF) P_fail_at(p, t, "END of the statement set");
    if (!sql_tok_is_kw(t, "INSERT")) P_fail_at(p, t, "INSERT (a statement set holds INSERTs)");
    ast_stmt_t *in = P_statement(p);
    P_push(p, &s->body, in);
    if (!P_op(p, ";") && !sql_tok_is_kw(P_peek(p), "END")) P_fail_at(p, P_peek(p), "';'");
  }
  return s;
}

static ast_stmt_t *P_statement(parser_t *p) {
  ast_stmt_t *s = P_alloc(p, sizeof *s);
  const sql_tok_t *t = P_peek(p);
  s->pos = t->pos;
  s->src_from = t->offset;
  if (P_kw(p, "CREATE")) {
    bool temporary = P_kw(p, "TEMPORARY");
    (void)temporary;
    if (P_kw(p, "TABLE")) {
      P_create_table(p, s);
    } else if (P_kw(p, "VIEW")) {
      P_create_view(p, s);
    } else if (sql_tok_is_kw(P_peek(p), "FUNCTION") || sql_tok_is_kw(P_peek(p), "SYSTEM")) {
      P_fail_msg(p, P_peek(p)->pos,
                 "CREATE FUNCTION is not supported: register C functions "
                 "with fl_sql_create_function() or fl_sql_create_aggregate()");
    } else {
      P_fail_at(p, P_peek(p), "TABLE or VIEW");
    }
  } else if (P_kw(p, "DROP")) {
    P_kw(p, "TEMPORARY");
    s->kind = AS_DROP;
    if (P_kw(p, "VIEW")) {
      s->drop_view = true;
    } else {
      P_expect_kw(p, "TABLE");
    }
    if (P_kw(p, "IF")) {
      P_expect_kw(p, "EXISTS");
      s->if_exists = true;
    }
    s->name = P_qualified_name(p, "a name");
  } else if (P_kw(p, "SET")) {
    s->kind = AS_SET;
    if (!sql_tok_is_op(P_peek(p), ";") && P_peek(p)->kind != TK_EOF) {
      s->key = P_set_word(p, "a configuration key");
      P_expect_op(p, "=");
      s->value = P_set_word(p, "a value");
    }
  } else if (P_kw(p, "RESET")) {
    s->kind = AS_RESET;
    if (!sql_tok_is_op(P_peek(p), ";") && P_peek(p)->kind != TK_EOF)
      s->key = P_set_word(p, "a configuration key");
  } else if (P_kw(p, "INSERT")) {
    P_insert(p, s);
  } else if (sql_tok_is_kw(t, "EXECUTE") && P_kw_at(p, 1, "STATEMENT")) {
    P_next(p);
    P_next(p);
    P_expect_kw(p, "SET");
    P_expect_kw(p, "BEGIN");
    P_statement_set(p, s, true);
  } else if (sql_tok_is_kw(t, "BEGIN") && P_kw_at(p, 1, "STATEMENT")) {
    P_next(p);
    P_next(p);
    P_expect_kw(p, "SET");
    P_statement_set(p, s, false);
  } else if (sql_tok_is_kw(t, "SHOW")) {
    P_next(p);
    s->kind = AS_SHOW_TABLES;
    if (!P_kw(p, "TABLES") && !P_kw(p, "VIEWS")) P_fail_at(p, P_peek(p), "TABLES");
  } else if (sql_tok_is_kw(t, "DESCRIBE") || sql_tok_is_kw(t, "DESC")) {
    P_next(p);
    s->kind = AS_DESCRIBE;
    s->name = P_qualified_name(p, "a table or view name");
  } else if (sql_tok_is_kw(t, "EXPLAIN")) {
    P_next(p);
    s->kind = AS_EXPLAIN;
    if (P_kw(p, "PLAN")) P_expect_kw(p, "FOR");
    if (P_kw(p, "INSERT")) {
      ast_stmt_t *in = P_alloc(p, sizeof *in);
      P_insert(p, in);
      s->target = in->target;
      s->target_cols = in->target_cols;
      s->n_target_cols = in->n_target_cols;
      s->query = in->query;
    } else {
      s->query = P_query(p);
    }
  } else if (sql_tok_is_kw(t, "SELECT") || sql_tok_is_kw(t, "WITH") || sql_tok_is_kw(t, "VALUES") ||
             sql_tok_is_op(t, "(")) {
    s->kind = AS_SELECT;
    s->query = P_query(p);
  } else {
    P_fail_at(p, t,
              "a statement (CREATE, DROP, SET, RESET, INSERT, SELECT, EXECUTE STATEMENT SET)");
  }
  s->src_to = P_end(p);
  return s;
}

static int parse_begin(parser_t *p, sql_arena_t *a, const char *src, char *err, size_t err_size) {
  memset(p, 0, sizeof *p);
  p->a = a;
  p->src = src;
  p->err = err;
  p->err_size = err_size;
  if (err_size) err[0] = 0;
  return sql_lex(a, src, &p->toks, err, err_size);
}

/* Parses src with body, which fills out; a syntax error in body unwinds to here. */
static int parse_with(sql_arena_t *a, const char *src, char *err, size_t err_size,
                      int (*body)(parser_t *p, void *out), void *out) {
  parser_t *p = malloc(sizeof *p);
  if (!p) return FL_ENOMEM;
  int rc = parse_begin(p, a, src, err, err_size);
  if (rc != FL_OK) goto done;
  if (setjmp(p->fail)) {
    rc = p->rc;
    goto done;
  }
  rc = body(p, out);
done:
  free(p);
  return rc;
}

static int script_body(parser_t *p, void *out) {
  ast_script_t *s = sql_arena_alloc(p->a, sizeof *s);
  if (!s) return FL_ENOMEM;
  s->src = p->src;
  for (;;) {
    while (P_op(p, ";")) {}
    if (P_peek(p)->kind == TK_EOF) break;
    ast_stmt_t *st = P_statement(p);
    P_push(p, &s->stmts, st);
    if (!P_op(p, ";") && P_peek(p)->kind != TK_EOF)
      P_fail_at(p, P_peek(p), "';' or the end of input");
  }
  *(ast_script_t **)out = s;
  return FL_OK;
}

int sql_parse_script(sql_arena_t *a, const char *src, ast_script_t **out, char *err,
                     size_t err_size) {
  return parse_with(a, src, err, err_size, script_body, out);
}

static int schema_body(parser_t *p, void *out) {
  ast_create_table_t *t = P_alloc(p, sizeof *t);
  t->name = "";
  P_schema_body(p, t);
  if (P_peek(p)->kind != TK_EOF) P_fail_at(p, P_peek(p), "',' or the end of the schema");
  *(ast_create_table_t **)out = t;
  return FL_OK;
}

int sql_parse_schema(sql_arena_t *a, const char *src, ast_create_table_t **out, char *err,
                     size_t err_size) {
  return parse_with(a, src, err, err_size, schema_body, out);
}

typedef struct type_list {
  const sql_type_t ***types;
  int *n;
} type_list_t;

static int type_list_body(parser_t *p, void *out) {
  type_list_t *l = out;
  sql_ptrvec_t v = {0};
  if (P_peek(p)->kind != TK_EOF) {
    do {
      P_push(p, &v, (void *)P_type(p));
    } while (P_op(p, ","));
  }
  if (P_peek(p)->kind != TK_EOF) P_fail_at(p, P_peek(p), "',' or the end of the type list");
  *l->types = (const sql_type_t **)v.v;
  *l->n = (int)v.n;
  return FL_OK;
}

int sql_parse_type_list(sql_arena_t *a, const char *src, const sql_type_t ***out, int *n, char *err,
                        size_t err_size) {
  type_list_t l = {out, n};
  return parse_with(a, src, err, err_size, type_list_body, &l);
}

static int query_body(parser_t *p, void *out) {
  ast_query_t *q = P_query(p);
  P_op(p, ";");
  if (P_peek(p)->kind != TK_EOF) P_fail_at(p, P_peek(p), "the end of the query");
  *(ast_query_t **)out = q;
  return FL_OK;
}

int sql_parse_query(sql_arena_t *a, const char *src, ast_query_t **out, char *err,
                    size_t err_size) {
  return parse_with(a, src, err, err_size, query_body, out);
}
