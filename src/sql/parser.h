/*
 * The SQL parser: hand-written recursive descent over the lexer's tokens.
 *
 * Why hand-written: the dialect is Flink's (back-quoted identifiers, ROW<...> types,
 * window table functions, WATERMARK clauses, OVER windows), a few hundred rules that
 * read directly as functions, and every error must name the line, the column and the
 * token, together with what was expected there. A generated parser would add a build
 * step and a second language for the same grammar while making those messages harder.
 *
 * Errors: "syntax error at line L, column C: unexpected 'TOKEN' (expected ...)". The
 * parse of a script stops at the first error; nothing of a script that does not parse is
 * compiled or run.
 */
#ifndef FL_SQL_PARSER_H
#define FL_SQL_PARSER_H

#include <stddef.h>

#include "sql/arena.h"
#include "sql/ast.h"

/* Parses a script of statements separated by ';'. */
int sql_parse_script(sql_arena_t *a, const char *src, ast_script_t **out, char *err,
                     size_t err_size);
/* Parses the inside of a CREATE TABLE's parentheses (columns, WATERMARK, PRIMARY KEY)
 * into t (name and options empty): the schema of a table made from a DataStream. */
int sql_parse_schema(sql_arena_t *a, const char *src, ast_create_table_t **out, char *err,
                     size_t err_size);
/* Parses a comma-separated list of types ("STRING, INT"); *n gets the count. */
int sql_parse_type_list(sql_arena_t *a, const char *src, const sql_type_t ***out, int *n, char *err,
                        size_t err_size);
/* Parses one query (SELECT ..., WITH ..., VALUES ...). */
int sql_parse_query(sql_arena_t *a, const char *src, ast_query_t **out, char *err, size_t err_size);

#endif
