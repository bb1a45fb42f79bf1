/*
 * Queries (parser.h): WITH, SELECT with its clauses, UNION ALL, VALUES, and the FROM
 * clause: tables, subqueries, window table functions (FROM TABLE(TUMBLE(...))) and
 * joins. Streaming restrictions (ORDER BY, LIMIT) are the binder's to report, with
 * better messages than a syntax error could give.
 */
#include <string.h>
#include <strings.h>

#include "sql/parser_int.h"

static ast_query_t *Q_body(parser_t *p);

static const char *Q_alias(parser_t *p, bool allow_bare) {
  if (P_kw(p, "AS")) return P_ident(p, "an alias");
  const sql_tok_t *t = P_peek(p);
  if (allow_bare && P_is_ident(p, t)) {
    P_next(p);
    return t->text;
  }
  return NULL;
}

static void Q_select_items(parser_t *p, ast_query_t *q) {
  do {
    ast_select_item_t *it = P_alloc(p, sizeof *it);
    it->pos = P_peek(p)->pos;
    if (sql_tok_is_op(P_peek(p), "*")) {
      const sql_tok_t *t = P_next(p);
      ast_expr_t *e = P_alloc(p, sizeof *e);
      e->kind = AE_STAR;
      e->pos = t->pos;
      e->src_from = t->offset;
      e->src_to = t->end;
      it->expr = e;
    } else {
      it->expr = P_expr(p);
      if (it->expr->kind != AE_STAR) it->alias = Q_alias(p, true);
    }
    P_push(p, &q->items, it);
  } while (P_op(p, ","));
}

static ast_from_t *Q_from_item(parser_t *p);

static void Q_col_aliases(parser_t *p, ast_from_t *f) {
  if (f->alias && sql_tok_is_op(P_peek(p), "(")) {
    P_next(p);
    f->n_col_aliases = P_ident_list(p, "a column alias", &f->col_aliases);
    P_expect_op(p, ")");
  }
}

static ast_from_t *Q_from_primary(parser_t *p) {
  const sql_tok_t *t = P_peek(p);
  ast_from_t *f = P_alloc(p, sizeof *f);
  f->pos = t->pos;
  if (sql_tok_is_kw(t, "LATERAL")) {
    P_fail_msg(p, t->pos, "LATERAL TABLE (table functions) is not supported");
  }
  if (sql_tok_is_kw(t, "TABLE") && sql_tok_is_op(P_peek_at(p, 1), "(")) {
    P_next(p);
    P_next(p);
    f->kind = AF_TVF;
    f->call = P_expr(p);
    if (f->call->kind != AE_CALL) {
      P_fail_msg(p, f->call->pos,
                 "TABLE(...) must hold a window function call such as "
                 "TUMBLE(TABLE t, DESCRIPTOR(ts), INTERVAL '1' MINUTE)");
    }
    P_expect_op(p, ")");
    f->alias = Q_alias(p, true);
    Q_col_aliases(p, f);
    return f;
  }
  if (sql_tok_is_op(t, "(")) {
    P_next(p);
    const sql_tok_t *n = P_peek(p);
    if (sql_tok_is_kw(n, "SELECT") || sql_tok_is_kw(n, "WITH") || sql_tok_is_kw(n, "VALUES") ||
        sql_tok_is_op(n, "(")) {
      /* ((SELECT ...)) or (SELECT ...) */
      if (sql_tok_is_op(n, "(")) {
        /* could be a parenthesised join: (a JOIN b) */
        size_t save = p->i;
        int depth = 0;
        size_t k = p->i;
        while (k < p->toks.n && sql_tok_is_op(&p->toks.v[k], "(")) {
          depth++;
          k++;
        }
        (void)depth;
        if (!(sql_tok_is_kw(&p->toks.v[k], "SELECT") || sql_tok_is_kw(&p->toks.v[k], "WITH") ||
              sql_tok_is_kw(&p->toks.v[k], "VALUES"))) {
          p->i = save;
          ast_from_t *inner = Q_from_item(p);
          P_expect_op(p, ")");
          return inner;
        }
      }
      f->kind = AF_SUBQUERY;
      f->query = P_query(p);
      P_expect_op(p, ")");
      f->alias = Q_alias(p, true);
      Q_col_aliases(p, f);
      return f;
    }
    ast_from_t *inner = Q_from_item(p);
    P_expect_op(p, ")");
    return inner;
  }
  f->kind = AF_TABLE;
  f->name = P_qualified_name(p, "a table name, a subquery or TABLE(...)");
  if (sql_tok_is_kw(P_peek(p), "FOR") && P_kw_at(p, 1, "SYSTEM_TIME")) {
    P_fail_msg(p, P_peek(p)->pos, "temporal joins (FOR SYSTEM_TIME AS OF) are not supported");
  }
  if (sql_tok_is_op(P_peek(p), "/") && sql_tok_is_op(P_peek_at(p, 1), "*")) {
    /* hints are comments to the lexer already */
  }
  f->alias = Q_alias(p, true);
  Q_col_aliases(p, f);
  return f;
}

/* left kind JOIN right, at the token at. */
static ast_from_t *Q_join(parser_t *p, const sql_tok_t *at, ast_join_kind_t kind, ast_from_t *left,
                          ast_from_t *right) {
  ast_from_t *j = P_alloc(p, sizeof *j);
  j->kind = AF_JOIN;
  j->pos = at->pos;
  j->join = kind;
  j->left = left;
  j->right = right;
  return j;
}

static ast_from_t *Q_from_item(parser_t *p) {
  ast_from_t *left = Q_from_primary(p);
  for (;;) {
    const sql_tok_t *t = P_peek(p);
    ast_join_kind_t kind;
    if (sql_tok_is_kw(t, "JOIN")) {
      P_next(p);
      kind = JOIN_INNER;
    } else if (sql_tok_is_kw(t, "INNER")) {
      P_next(p);
      P_expect_kw(p, "JOIN");
      kind = JOIN_INNER;
    } else if (sql_tok_is_kw(t, "LEFT") || sql_tok_is_kw(t, "RIGHT") || sql_tok_is_kw(t, "FULL")) {
      P_next(p);
      P_kw(p, "OUTER");
      P_expect_kw(p, "JOIN");
      kind = sql_tok_is_kw(t, "LEFT")    ? JOIN_LEFT
             : sql_tok_is_kw(t, "RIGHT") ? JOIN_RIGHT
                                         : JOIN_FULL;
    } else if (sql_tok_is_kw(t, "CROSS")) {
      P_next(p);
      P_expect_kw(p, "JOIN");
      kind = JOIN_CROSS;
    } else if (sql_tok_is_kw(t, "NATURAL")) {
      P_fail_msg(p, t->pos, "NATURAL JOIN is not supported; use JOIN ... ON");
    } else {
      break;
    }
    ast_from_t *j = Q_join(p, t, kind, left, Q_from_primary(p));
    if (kind != JOIN_CROSS) {
      if (P_kw(p, "ON")) {
        j->on = P_expr(p);
      } else if (P_kw(p, "USING")) {
        P_expect_op(p, "(");
        j->n_using = P_ident_list(p, "a column name", &j->using_cols);
        P_expect_op(p, ")");
      } else {
        P_fail_at(p, P_peek(p), "ON or USING");
      }
    }
    left = j;
  }
  return left;
}

static ast_from_t *Q_from(parser_t *p) {
  ast_from_t *f = Q_from_item(p);
  while (sql_tok_is_op(P_peek(p), ",")) {
    const sql_tok_t *t = P_next(p);
    f = Q_join(p, t, JOIN_CROSS, f, Q_from_item(p));
  }
  return f;
}

/* A query node of kind at pos, its text starting at offset from. */
static ast_query_t *Q_new(parser_t *p, ast_query_kind_t kind, sql_pos_t pos, size_t from) {
  ast_query_t *q = P_alloc(p, sizeof *q);
  q->kind = kind;
  q->pos = pos;
  q->src_from = from;
  return q;
}

static ast_query_t *Q_select(parser_t *p) {
  const sql_tok_t *t = P_peek(p);
  ast_query_t *q = Q_new(p, AQ_SELECT, t->pos, t->offset);
  P_expect_kw(p, "SELECT");
  if (P_kw(p, "DISTINCT")) {
    q->distinct = true;
  } else {
    P_kw(p, "ALL");
  }
  Q_select_items(p, q);
  if (P_kw(p, "FROM")) q->from = Q_from(p);
  if (P_kw(p, "WHERE")) q->where = P_expr(p);
  if (P_kw(p, "GROUP")) {
    P_expect_kw(p, "BY");
    P_expr_list(p, &q->group_by);
  }
  if (P_kw(p, "HAVING")) q->having = P_expr(p);
  if (sql_tok_is_kw(P_peek(p), "WINDOW")) {
    P_fail_msg(p, P_peek(p)->pos,
               "named windows (WINDOW w AS ...) are not supported; write "
               "the OVER clause in place");
  }
  q->src_to = P_end(p);
  return q;
}

static ast_query_t *Q_term(parser_t *p) {
  const sql_tok_t *t = P_peek(p);
  if (sql_tok_is_kw(t, "SELECT")) return Q_select(p);
  if (sql_tok_is_kw(t, "VALUES")) {
    P_next(p);
    ast_query_t *q = Q_new(p, AQ_VALUES, t->pos, t->offset);
    do {
      ast_expr_t *row = P_expr(p);
      if (row->kind != AE_ROW_CTOR) {
        /* VALUES (1) is a one-column row */
        ast_expr_t *r = P_alloc(p, sizeof *r);
        r->kind = AE_ROW_CTOR;
        r->pos = row->pos;
        P_push(p, &r->list, row);
        row = r;
      }
      P_push(p, &q->rows, row);
    } while (P_op(p, ","));
    q->src_to = P_end(p);
    return q;
  }
  if (sql_tok_is_op(t, "(")) {
    P_next(p);
    ast_query_t *q = P_query(p);
    P_expect_op(p, ")");
    return q;
  }
  P_fail_at(p, t, "SELECT or VALUES");
}

static ast_query_t *Q_body(parser_t *p) {
  ast_query_t *q = Q_term(p);
  for (;;) {
    const sql_tok_t *t = P_peek(p);
    if (sql_tok_is_kw(t, "UNION")) {
      P_next(p);
      ast_query_t *u = Q_new(p, AQ_UNION, t->pos, q->src_from);
      u->all = P_kw(p, "ALL");
      if (!u->all) P_kw(p, "DISTINCT");
      u->left = q;
      u->right = Q_term(p);
      u->src_to = u->right->src_to;
      q = u;
    } else if (sql_tok_is_kw(t, "INTERSECT") || sql_tok_is_kw(t, "EXCEPT") ||
               sql_tok_is_kw(t, "MINUS")) {
      P_fail_msg(p, t->pos, "%s is not supported (it produces an updating result)", t->text);
    } else {
      break;
    }
  }
  return q;
}

ast_query_t *P_query(parser_t *p) {
  sql_ptrvec_t ctes = {0};
  if (P_kw(p, "WITH")) {
    do {
      ast_cte_t *c = P_alloc(p, sizeof *c);
      c->pos = P_peek(p)->pos;
      c->name = P_ident(p, "a name for the WITH query");
      P_expect_kw(p, "AS");
      P_expect_op(p, "(");
      c->query = P_query(p);
      P_expect_op(p, ")");
      P_push(p, &ctes, c);
    } while (P_op(p, ","));
  }
  ast_query_t *q = Q_body(p);
  if (P_kw(p, "ORDER")) {
    P_expect_kw(p, "BY");
    do {
      P_push(p, &q->order_by, P_expr(p));
      if (!P_kw(p, "ASC")) P_kw(p, "DESC");
    } while (P_op(p, ","));
  }
  if (P_kw(p, "LIMIT")) q->limit = P_expr(p);
  if (ctes.n) {
    if (q->ctes.n) {
      for (size_t i = 0; i < q->ctes.n; i++) P_push(p, &ctes, q->ctes.v[i]);
    }
    q->ctes = ctes;
  }
  return q;
}
