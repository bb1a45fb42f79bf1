/*
 * The SQL lexer (lexer.h). One pass over the script; tokens go into an arena array that
 * grows by doubling.
 */
#include "sql/lexer.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "flink.h"

typedef struct lexer {
  sql_arena_t *a;
  const char *src;
  size_t i;
  int line, col;
  sql_tok_t *v;
  size_t n, cap;
  char *err;
  size_t err_size;
} lexer_t;

static void advance(lexer_t *L, size_t k) {
  while (k-- > 0) {
    if (L->src[L->i] == '\n') {
      L->line++;
      L->col = 1;
    } else {
      L->col++;
    }
    L->i++;
  }
}

static int fail(lexer_t *L, sql_pos_t pos, const char *what) {
  snprintf(L->err, L->err_size, "syntax error at line %d, column %d: %s", pos.line, pos.col, what);
  return FL_EPARSE;
}

static int push(lexer_t *L, sql_tok_kind_t kind, const char *text, size_t len, sql_pos_t pos,
                size_t offset) {
  if (SQL_ARENA_ROOM(L->a, L->v, L->n, L->cap)) return FL_ENOMEM;
  sql_tok_t *t = &L->v[L->n++];
  t->kind = kind;
  t->text = sql_arena_strndup(L->a, text, len);
  if (!t->text) return FL_ENOMEM;
  t->len = len;
  t->pos = pos;
  t->offset = offset;
  return FL_OK;
}

/* A quoted token ('...' or `...`): the doubled quote stands for one. */
static int quoted(lexer_t *L, char q, sql_tok_kind_t kind) {
  sql_pos_t pos = {L->line, L->col};
  size_t start = L->i;
  advance(L, 1);
  size_t cap = 64, n = 0;
  char *buf = sql_arena_alloc(L->a, cap);
  if (!buf) return FL_ENOMEM;
  for (;;) {
    char c = L->src[L->i];
    if (c == 0) {
      return fail(
          L, pos,
          kind == TK_STRING ? "unterminated string literal" : "unterminated quoted identifier");
    }
    if (c == q) {
      if (L->src[L->i + 1] == q) {
        advance(L, 1);
      } else {
        advance(L, 1);
        break;
      }
    }
    if (n + 1 >= cap) {
      char *nb = sql_arena_alloc(L->a, cap * 2);
      if (!nb) return FL_ENOMEM;
      memcpy(nb, buf, n);
      buf = nb;
      cap *= 2;
    }
    buf[n++] = L->src[L->i];
    advance(L, 1);
  }
  if (kind == TK_QIDENT && n == 0) return fail(L, pos, "empty quoted identifier");
  int rc = push(L, kind, buf, n, pos, start);
  if (rc == FL_OK) L->v[L->n - 1].end = L->i;
  return rc;
}

static const char *const ops2[] = {"<>", "!=", "<=", ">=", "||", "::", NULL};
static const char ops1[] = "(),;.*+-/%=<>[]:?{}";

int sql_lex(sql_arena_t *a, const char *src, sql_tokens_t *out, char *err, size_t err_size) {
  lexer_t L = {.a = a, .src = src, .line = 1, .col = 1, .err = err, .err_size = err_size};
  int rc = FL_OK;
  for (;;) {
    char c = src[L.i];
    if (c == 0) break;
    if (isspace((unsigned char)c)) {
      advance(&L, 1);
      continue;
    }
    sql_pos_t pos = {L.line, L.col};
    size_t start = L.i;
    if (c == '-' && src[L.i + 1] == '-') {
      while (src[L.i] && src[L.i] != '\n') advance(&L, 1);
      continue;
    }
    if (c == '/' && src[L.i + 1] == '*') {
      advance(&L, 2);
      while (src[L.i] && !(src[L.i] == '*' && src[L.i + 1] == '/')) advance(&L, 1);
      if (!src[L.i]) return fail(&L, pos, "unterminated comment");
      advance(&L, 2);
      continue;
    }
    if (c == '\'') {
      if ((rc = quoted(&L, '\'', TK_STRING)) != FL_OK) return rc;
      continue;
    }
    if (c == '`') {
      if ((rc = quoted(&L, '`', TK_QIDENT)) != FL_OK) return rc;
      continue;
    }
    if (isalpha((unsigned char)c) || c == '_' || (unsigned char)c >= 0x80) {
      size_t j = L.i;
      while (isalnum((unsigned char)src[j]) || src[j] == '_' || src[j] == '$' ||
             (unsigned char)src[j] >= 0x80)
        j++;
      if ((rc = push(&L, TK_IDENT, src + L.i, j - L.i, pos, start)) != FL_OK) return rc;
      advance(&L, j - L.i);
      L.v[L.n - 1].end = L.i;
      continue;
    }
    if (isdigit((unsigned char)c) || (c == '.' && isdigit((unsigned char)src[L.i + 1]))) {
      size_t j = L.i;
      sql_tok_kind_t kind = TK_INT;
      while (isdigit((unsigned char)src[j])) j++;
      if (src[j] == '.') {
        kind = TK_DEC;
        j++;
        while (isdigit((unsigned char)src[j])) j++;
      }
      if ((src[j] == 'e' || src[j] == 'E') &&
          (isdigit((unsigned char)src[j + 1]) ||
           ((src[j + 1] == '+' || src[j + 1] == '-') && isdigit((unsigned char)src[j + 2])))) {
        kind = TK_FLOAT;
        j += 2;
        while (isdigit((unsigned char)src[j])) j++;
      }
      if (isalpha((unsigned char)src[j]) || src[j] == '_') {
        return fail(&L, pos, "a number runs into a name (put a space between them)");
      }
      if ((rc = push(&L, kind, src + L.i, j - L.i, pos, start)) != FL_OK) return rc;
      advance(&L, j - L.i);
      L.v[L.n - 1].end = L.i;
      continue;
    }
    bool found = false;
    for (int k = 0; ops2[k]; k++) {
      if (c == ops2[k][0] && src[L.i + 1] == ops2[k][1]) {
        if ((rc = push(&L, TK_OP, src + L.i, 2, pos, start)) != FL_OK) return rc;
        advance(&L, 2);
        L.v[L.n - 1].end = L.i;
        found = true;
        break;
      }
    }
    if (found) continue;
    if (strchr(ops1, c)) {
      if ((rc = push(&L, TK_OP, src + L.i, 1, pos, start)) != FL_OK) return rc;
      advance(&L, 1);
      L.v[L.n - 1].end = L.i;
      continue;
    }
    char what[64];
    if (isprint((unsigned char)c)) {
      snprintf(what, sizeof what, "unexpected character '%c'", c);
    } else {
      snprintf(what, sizeof what, "unexpected byte 0x%02x", (unsigned char)c);
    }
    return fail(&L, pos, what);
  }
  sql_pos_t pos = {L.line, L.col};
  if ((rc = push(&L, TK_EOF, "", 0, pos, L.i)) != FL_OK) return rc;
  L.v[L.n - 1].end = L.i;
  out->v = L.v;
  out->n = L.n;
  return FL_OK;
}

bool sql_tok_is_kw(const sql_tok_t *t, const char *kw) {
  return t->kind == TK_IDENT && strcasecmp(t->text, kw) == 0;
}

bool sql_tok_is_op(const sql_tok_t *t, const char *op) {
  return t->kind == TK_OP && strcmp(t->text, op) == 0;
}

const char *sql_tok_describe(const sql_tok_t *t, char *buf, size_t cap) {
  switch (t->kind) {
  case TK_EOF: snprintf(buf, cap, "end of input"); break;
  case TK_STRING: snprintf(buf, cap, "'%.40s%s'", t->text, t->len > 40 ? "..." : ""); break;
  case TK_QIDENT: snprintf(buf, cap, "`%.40s`", t->text); break;
  default: snprintf(buf, cap, "'%.40s'", t->text); break;
  }
  return buf;
}

void sql_verror_at(char *buf, size_t cap, sql_pos_t pos, const char *fmt, va_list ap) {
  int n = snprintf(buf, cap, "line %d, column %d: ", pos.line, pos.col);
  if (n >= 0 && (size_t)n < cap) vsnprintf(buf + n, cap - (size_t)n, fmt, ap);
}

void sql_error_at(char *buf, size_t cap, sql_pos_t pos, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  sql_verror_at(buf, cap, pos, fmt, ap);
  va_end(ap);
}
