/*
 * The SQL lexer: the whole script becomes an array of tokens, each with its text and
 * the line and column where it starts (both from 1; a tab counts as one column), so
 * every later error can point at the place it is about.
 *
 * Identifiers: unquoted ones keep their spelling (column and table names are
 * case-sensitive, as in Flink); keywords and built-in function names are matched without
 * regard to case by the parser. `back quoted` identifiers may hold any character, with
 * `` for a back quote, and are never keywords. String literals use single quotes with ''
 * for a quote. Comments: -- to the end of the line, and block comments.
 */
#ifndef FL_SQL_LEXER_H
#define FL_SQL_LEXER_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

#include "sql/arena.h"

typedef enum sql_tok_kind {
  TK_EOF = 0,
  TK_IDENT,  /* unquoted identifier or keyword */
  TK_QIDENT, /* `quoted` identifier */
  TK_INT,    /* 123 */
  TK_DEC,    /* 1.5, .5, 5. */
  TK_FLOAT,  /* 1e3, 1.5E-2 */
  TK_STRING, /* 'text' (text holds the unescaped value) */
  TK_OP      /* punctuation and operators: ( ) , ; . * + - / % = <> != < <= > >= || [ ] : */
} sql_tok_kind_t;

typedef struct sql_pos {
  int line, col;
} sql_pos_t;

/* Writes "line L, column C: <message>" into buf (truncated to cap). */
void sql_error_at(char *buf, size_t cap, sql_pos_t pos, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 4, 5)))
#endif
    ;
void sql_verror_at(char *buf, size_t cap, sql_pos_t pos, const char *fmt, va_list ap);

typedef struct sql_tok {
  sql_tok_kind_t kind;
  const char *text; /* NUL-terminated, in the arena */
  size_t len;
  sql_pos_t pos;
  size_t offset; /* byte offset in the script */
  size_t end;    /* byte offset just past the token in the script */
} sql_tok_t;

typedef struct sql_tokens {
  sql_tok_t *v;
  size_t n; /* includes the final TK_EOF */
} sql_tokens_t;

/* Splits src into tokens. On a lexical error (an unterminated string, quoted identifier
 * or comment, a character no token starts with) returns FL_EPARSE with a message
 * naming the line and column in err. */
int sql_lex(sql_arena_t *a, const char *src, sql_tokens_t *out, char *err, size_t err_size);

/* Whether an unquoted identifier token is the keyword kw (given in upper case). */
bool sql_tok_is_kw(const sql_tok_t *t, const char *kw);
bool sql_tok_is_op(const sql_tok_t *t, const char *op);
/* How the token reads in an error message: 'SELECT', "end of input", ... */
const char *sql_tok_describe(const sql_tok_t *t, char *buf, size_t cap);

#endif
