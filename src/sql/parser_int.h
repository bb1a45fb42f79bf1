/*
 * The parser's state and the helpers its three files (statements and types, queries,
 * expressions) share. Private to the parser.
 */
#ifndef FL_SQL_PARSER_INT_H
#define FL_SQL_PARSER_INT_H

#include <setjmp.h>
#include <stdbool.h>
#include <stddef.h>

#include "sql/arena.h"
#include "sql/ast.h"
#include "sql/lexer.h"

typedef struct parser {
  sql_arena_t *a;
  const char *src;
  sql_tokens_t toks;
  size_t i;
  char *err;
  size_t err_size;
  /* A syntax error unwinds to the entry point: the grammar functions then need no
   * error plumbing, and the arena frees whatever was half built. */
  jmp_buf fail;
  int rc;
} parser_t;

static inline const sql_tok_t *P_peek(parser_t *p) { return &p->toks.v[p->i]; }
static inline const sql_tok_t *P_peek_at(parser_t *p, size_t k) {
  size_t j = p->i + k;
  return &p->toks.v[j < p->toks.n ? j : p->toks.n - 1];
}
static inline const sql_tok_t *P_next(parser_t *p) {
  const sql_tok_t *t = &p->toks.v[p->i];
  if (t->kind != TK_EOF) p->i++;
  return t;
}
/* Where the last token consumed ends in the source: the end of what was just parsed. */
static inline size_t P_end(parser_t *p) { return p->toks.v[p->i > 0 ? p->i - 1 : 0].end; }

_Noreturn void P_fail_at(parser_t *p, const sql_tok_t *t, const char *expected);
_Noreturn void P_fail_msg(parser_t *p, sql_pos_t pos, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
_Noreturn void P_nomem(parser_t *p);

bool P_kw(parser_t *p, const char *kw); /* consumes it when it is next */
/* The index of the keyword among words (NULL-terminated) that is next, consumed; -1
 * (nothing consumed) when none is. */
int P_kw_which(parser_t *p, const char *const *words);
bool P_kw_at(parser_t *p, size_t k, const char *kw);
bool P_op(parser_t *p, const char *op); /* consumes it when it is next */
void P_expect_kw(parser_t *p, const char *kw);
void P_expect_op(parser_t *p, const char *op);
/* An identifier (quoted, or unquoted and not reserved). */
const char *P_ident(parser_t *p, const char *what);
bool P_is_ident(parser_t *p, const sql_tok_t *t);
bool P_reserved(const sql_tok_t *t);
/* A dotted name (a.b.c) as one string. */
const char *P_qualified_name(parser_t *p, const char *what);
/* One or more identifiers separated by commas, into *names (arena memory); returns how
 * many. */
int P_ident_list(parser_t *p, const char *what, const char ***names);
const char *P_string(parser_t *p, const char *what);
void *P_alloc(parser_t *p, size_t n);
void P_push(parser_t *p, sql_ptrvec_t *v, void *x);

const sql_type_t *P_type(parser_t *p);
ast_expr_t *P_expr(parser_t *p);
/* One or more expressions separated by commas, added to list. */
void P_expr_list(parser_t *p, sql_ptrvec_t *list);
ast_query_t *P_query(parser_t *p);
ast_time_unit_t P_time_unit(parser_t *p, bool required);

#endif
