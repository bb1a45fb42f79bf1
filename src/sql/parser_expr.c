/*
 * Expressions (parser.h): precedence climbing from OR down to the primaries, with SQL's
 * special forms (CASE, CAST, EXTRACT, TRIM, POSITION, SUBSTRING ... FROM, INTERVAL and
 * typed literals, IS / BETWEEN / IN / LIKE predicates), function calls with DISTINCT,
 * FILTER (WHERE ...) and OVER (...), and the TVF argument forms TABLE t and DESCRIPTOR(c).
 */
#include <string.h>
#include <strings.h>

#include "sql/parser_int.h"

static ast_expr_t *E_new(parser_t *p, ast_expr_kind_t kind, const sql_tok_t *at) {
  ast_expr_t *e = P_alloc(p, sizeof *e);
  e->kind = kind;
  e->pos = at->pos;
  e->src_from = at->offset;
  return e;
}

static void E_end(parser_t *p, ast_expr_t *e) {
  e->src_to = P_end(p);
  if (e->src_to < e->src_from) e->src_to = e->src_from;
}

/* Ends x, an operator or predicate node whose left operand is e: it starts where e does. */
static ast_expr_t *E_end_after(parser_t *p, ast_expr_t *x, ast_expr_t *e) {
  x->a = e;
  x->pos = e->pos;
  x->src_from = e->src_from;
  E_end(p, x);
  return x;
}

static ast_expr_t *E_or(parser_t *p);

void P_expr_list(parser_t *p, sql_ptrvec_t *list) {
  do {
    P_push(p, list, E_or(p));
  } while (P_op(p, ","));
}

/* The time units' names; those from MILLISECOND to YEAR but QUARTER may also be written
 * in the plural (SECONDS). */
static const char *const unit_names[] = {[UNIT_MILLISECOND] = "MILLISECOND",
                                         [UNIT_SECOND] = "SECOND",
                                         [UNIT_MINUTE] = "MINUTE",
                                         [UNIT_HOUR] = "HOUR",
                                         [UNIT_DAY] = "DAY",
                                         [UNIT_WEEK] = "WEEK",
                                         [UNIT_MONTH] = "MONTH",
                                         [UNIT_QUARTER] = "QUARTER",
                                         [UNIT_YEAR] = "YEAR",
                                         [UNIT_DOW] = "DOW",
                                         [UNIT_DOY] = "DOY",
                                         [UNIT_EPOCH] = "EPOCH",
                                         [UNIT_MICROSECOND] = "MICROSECOND",
                                         [UNIT_NANOSECOND] = "NANOSECOND",
                                         [UNIT_CENTURY] = "CENTURY",
                                         [UNIT_DECADE] = "DECADE",
                                         [UNIT_MILLENNIUM] = "MILLENNIUM",
                                         [UNIT_ISODOW] = "ISODOW",
                                         [UNIT_ISOYEAR] = "ISOYEAR"};

ast_time_unit_t P_time_unit(parser_t *p, bool required) {
  const sql_tok_t *t = P_peek(p);
  for (int u = UNIT_MILLISECOND; t->kind == TK_IDENT && u <= UNIT_ISOYEAR; u++) {
    size_t n = strlen(unit_names[u]);
    bool plural = u <= UNIT_YEAR && u != UNIT_QUARTER;
    if (strncasecmp(t->text, unit_names[u], n) == 0 &&
        (t->text[n] == 0 || (plural && (t->text[n] | 0x20) == 's' && t->text[n + 1] == 0))) {
      P_next(p);
      return (ast_time_unit_t)u;
    }
  }
  if (required) P_fail_at(p, t, "a time unit (SECOND, MINUTE, HOUR, DAY, MONTH, YEAR, ...)");
  return UNIT_NONE;
}

static ast_over_t *E_over(parser_t *p) {
  ast_over_t *o = P_alloc(p, sizeof *o);
  o->pos = P_peek(p)->pos;
  if (!P_op(p, "(")) {
    o->name = P_ident(p, "a window name or '('");
    return o;
  }
  if (P_kw(p, "PARTITION")) {
    P_expect_kw(p, "BY");
    P_expr_list(p, &o->partition);
  }
  if (P_kw(p, "ORDER")) {
    P_expect_kw(p, "BY");
    do {
      P_push(p, &o->order, E_or(p));
      bool desc = false;
      if (P_kw(p, "DESC")) {
        desc = true;
      } else {
        P_kw(p, "ASC");
      }
      P_push(p, &o->order_desc, desc ? (void *)o : NULL);
      if (P_kw(p, "NULLS")) {
        if (!P_kw(p, "FIRST")) P_expect_kw(p, "LAST");
      }
    } while (P_op(p, ","));
  }
  if (sql_tok_is_kw(P_peek(p), "ROWS") || sql_tok_is_kw(P_peek(p), "RANGE")) {
    o->has_frame = true;
    o->rows = sql_tok_is_kw(P_next(p), "ROWS");
    bool between = P_kw(p, "BETWEEN");
    if (P_kw(p, "UNBOUNDED")) {
      P_expect_kw(p, "PRECEDING");
      o->unbounded = true;
    } else if (P_kw(p, "CURRENT")) {
      P_expect_kw(p, "ROW");
    } else {
      o->preceding = E_or(p);
      P_expect_kw(p, "PRECEDING");
    }
    if (between) {
      P_expect_kw(p, "AND");
      if (!P_kw(p, "CURRENT")) {
        P_fail_msg(p, P_peek(p)->pos,
                   "an OVER window must end at CURRENT ROW (a frame that "
                   "reaches past the current row would have to wait for future rows)");
      }
      P_expect_kw(p, "ROW");
    }
    o->to_current_row = true;
  }
  P_expect_op(p, ")");
  return o;
}

static ast_expr_t *E_call(parser_t *p, const sql_tok_t *name_tok) {
  ast_expr_t *e = E_new(p, AE_CALL, name_tok);
  e->name = name_tok->text;
  P_expect_op(p, "(");
  if (P_op(p, "*")) {
    e->star_arg = true;
  } else if (!sql_tok_is_op(P_peek(p), ")")) {
    if (sql_tok_is_kw(name_tok, "TIMESTAMPADD") || sql_tok_is_kw(name_tok, "TIMESTAMPDIFF")) {
      e->unit = P_time_unit(p, true);
      P_expect_op(p, ",");
    }
    if (P_kw(p, "DISTINCT")) {
      e->distinct = true;
    } else {
      P_kw(p, "ALL");
    }
    P_expr_list(p, &e->list);
    /* FLOOR(ts TO HOUR), CEIL(ts TO DAY) */
    if (P_kw(p, "TO")) e->unit = P_time_unit(p, true);
  }
  P_expect_op(p, ")");
  if (P_kw(p, "FILTER")) {
    P_expect_op(p, "(");
    P_expect_kw(p, "WHERE");
    e->filter = E_or(p);
    P_expect_op(p, ")");
  }
  if (P_kw(p, "OVER")) e->over = E_over(p);
  E_end(p, e);
  return e;
}

static ast_expr_t *E_interval(parser_t *p, const sql_tok_t *at) {
  ast_expr_t *e = E_new(p, AE_INTERVAL, at);
  e->sign = 1;
  if (P_op(p, "-"))
    e->sign = -1;
  else
    P_op(p, "+");
  const sql_tok_t *v = P_peek(p);
  if (v->kind == TK_STRING || v->kind == TK_INT || v->kind == TK_DEC) {
    P_next(p);
    e->text = v->text;
  } else {
    P_fail_at(p, v, "an interval value such as '5'");
  }
  e->unit = P_time_unit(p, true);
  if (P_op(p, "(")) { /* INTERVAL '5' SECOND(3): precision, ignored */
    while (!P_op(p, ")")) P_next(p);
  }
  if (P_kw(p, "TO")) {
    e->unit2 = P_time_unit(p, true);
    if (P_op(p, "(")) {
      while (!P_op(p, ")")) P_next(p);
    }
  }
  E_end(p, e);
  return e;
}

static ast_expr_t *E_primary(parser_t *p);

/* The special forms written name(...) whose insides are not an argument list: what
 * stands between the parentheses, into the form's node e (name: the form's token). */
typedef void (*E_form_fn)(parser_t *p, ast_expr_t *e, const sql_tok_t *name);

static void F_cast(parser_t *p, ast_expr_t *e, const sql_tok_t *name) {
  e->try_cast = sql_tok_is_kw(name, "TRY_CAST");
  e->a = E_or(p);
  P_expect_kw(p, "AS");
  e->type = P_type(p);
}

static void F_extract(parser_t *p, ast_expr_t *e, const sql_tok_t *name) {
  e->unit = P_time_unit(p, true);
  P_expect_kw(p, "FROM");
  e->a = E_or(p);
}

static void F_trim(parser_t *p, ast_expr_t *e, const sql_tok_t *name) {
  static const char *const modes[] = {"BOTH", "LEADING", "TRAILING", NULL};
  int mode = P_kw_which(p, modes);
  if (mode >= 0) e->trim_mode = mode;
  if (mode >= 0 && P_kw(p, "FROM")) {
    e->a = E_or(p);
  } else {
    ast_expr_t *x = E_or(p);
    if (P_kw(p, "FROM")) {
      e->b = x; /* the characters to remove */
      e->a = E_or(p);
    } else {
      if (mode >= 0) P_fail_at(p, P_peek(p), "FROM");
      e->a = x;
    }
  }
}

static void F_position(parser_t *p, ast_expr_t *e, const sql_tok_t *name) {
  e->a = E_primary(p);
  /* POSITION(a IN b): parse the needle below the IN predicate */
  P_expect_kw(p, "IN");
  e->b = E_or(p);
}

static void F_descriptor(parser_t *p, ast_expr_t *e, const sql_tok_t *name) {
  e->n_parts = P_ident_list(p, "a column name", &e->parts);
}

static void F_row(parser_t *p, ast_expr_t *e, const sql_tok_t *name) {
  if (!sql_tok_is_op(P_peek(p), ")")) P_expr_list(p, &e->list);
}

static const struct {
  const char *name;
  ast_expr_kind_t kind;
  E_form_fn inside;
} forms[] = {{"CAST", AE_CAST, F_cast},
             {"TRY_CAST", AE_CAST, F_cast},
             {"EXTRACT", AE_EXTRACT, F_extract},
             {"TRIM", AE_TRIM, F_trim},
             {"POSITION", AE_POSITION, F_position},
             {"DESCRIPTOR", AE_DESCRIPTOR, F_descriptor},
             {"ROW", AE_ROW_CTOR, F_row}};

static ast_expr_t *E_primary(parser_t *p) {
  const sql_tok_t *t = P_peek(p);
  ast_expr_t *e;
  switch (t->kind) {
  case TK_INT:
  case TK_DEC:
  case TK_FLOAT:
    P_next(p);
    e = E_new(p, AE_NUMBER, t);
    e->text = t->text;
    e->num_kind = t->kind == TK_INT ? NUM_INT : t->kind == TK_DEC ? NUM_DEC : NUM_FLOAT;
    E_end(p, e);
    return e;
  case TK_STRING:
    P_next(p);
    e = E_new(p, AE_STRING, t);
    e->text = t->text;
    e->text_len = t->len;
    /* adjacent literals concatenate: 'a' 'b' */
    while (P_peek(p)->kind == TK_STRING) {
      const sql_tok_t *n = P_next(p);
      char *c = sql_arena_alloc(p->a, e->text_len + n->len + 1);
      if (!c) P_nomem(p);
      memcpy(c, e->text, e->text_len);
      memcpy(c + e->text_len, n->text, n->len);
      e->text = c;
      e->text_len += n->len;
    }
    E_end(p, e);
    return e;
  case TK_OP:
    if (sql_tok_is_op(t, "(")) {
      P_next(p);
      if (sql_tok_is_kw(P_peek(p), "SELECT") || sql_tok_is_kw(P_peek(p), "WITH")) {
        P_fail_msg(p, t->pos, "subqueries in expressions are not supported");
      }
      ast_expr_t *inner = E_or(p);
      if (P_op(p, ",")) {
        e = E_new(p, AE_ROW_CTOR, t);
        P_push(p, &e->list, inner);
        P_expr_list(p, &e->list);
        P_expect_op(p, ")");
        E_end(p, e);
        return e;
      }
      P_expect_op(p, ")");
      /* keep the parenthesised text for messages */
      inner->src_from = t->offset;
      E_end(p, inner);
      return inner;
    }
    P_fail_at(p, t, "an expression");
  case TK_QIDENT:
  case TK_IDENT: break;
  default: P_fail_at(p, t, "an expression");
  }

  if (t->kind == TK_IDENT) {
    const sql_tok_t *n1 = P_peek_at(p, 1);
    if (sql_tok_is_kw(t, "NULL")) {
      P_next(p);
      e = E_new(p, AE_NULL, t);
      E_end(p, e);
      return e;
    }
    if (sql_tok_is_kw(t, "TRUE") || sql_tok_is_kw(t, "FALSE")) {
      P_next(p);
      e = E_new(p, AE_BOOL, t);
      e->bval = sql_tok_is_kw(t, "TRUE");
      E_end(p, e);
      return e;
    }
    if (sql_tok_is_kw(t, "INTERVAL")) {
      P_next(p);
      return E_interval(p, t);
    }
    if ((sql_tok_is_kw(t, "DATE") || sql_tok_is_kw(t, "TIME") || sql_tok_is_kw(t, "TIMESTAMP") ||
         sql_tok_is_kw(t, "TIMESTAMP_LTZ")) &&
        n1->kind == TK_STRING) {
      P_next(p);
      const sql_tok_t *v = P_next(p);
      e = E_new(p, AE_TYPED, t);
      e->text = v->text;
      e->type = sql_tok_is_kw(t, "DATE")            ? &sql_t_date
                : sql_tok_is_kw(t, "TIME")          ? &sql_t_time
                : sql_tok_is_kw(t, "TIMESTAMP_LTZ") ? &sql_t_timestamp_ltz3
                                                    : &sql_t_timestamp3;
      E_end(p, e);
      return e;
    }
    if (sql_tok_is_kw(t, "CASE")) {
      P_next(p);
      e = E_new(p, AE_CASE, t);
      if (!sql_tok_is_kw(P_peek(p), "WHEN")) e->a = E_or(p);
      if (!sql_tok_is_kw(P_peek(p), "WHEN")) P_fail_at(p, P_peek(p), "WHEN");
      while (P_kw(p, "WHEN")) {
        P_push(p, &e->list, E_or(p));
        P_expect_kw(p, "THEN");
        P_push(p, &e->list, E_or(p));
      }
      if (P_kw(p, "ELSE")) e->b = E_or(p);
      P_expect_kw(p, "END");
      E_end(p, e);
      return e;
    }
    for (size_t k = 0; k < sizeof forms / sizeof *forms; k++) {
      if (sql_tok_is_kw(t, forms[k].name) && sql_tok_is_op(n1, "(")) {
        P_next(p);
        P_next(p);
        e = E_new(p, forms[k].kind, t);
        forms[k].inside(p, e, t);
        P_expect_op(p, ")");
        E_end(p, e);
        return e;
      }
    }
    if ((sql_tok_is_kw(t, "SUBSTRING") || sql_tok_is_kw(t, "SUBSTR")) && sql_tok_is_op(n1, "(")) {
      /* SUBSTRING(s FROM a [FOR b]) or the call form */
      size_t save = p->i;
      P_next(p);
      P_next(p);
      ast_expr_t *s = E_or(p);
      if (P_kw(p, "FROM")) {
        e = E_new(p, AE_SUBSTRING, t);
        e->a = s;
        e->b = E_or(p);
        if (P_kw(p, "FOR")) e->c = E_or(p);
        P_expect_op(p, ")");
        E_end(p, e);
        return e;
      }
      p->i = save;
    }
    if (sql_tok_is_kw(t, "TABLE") && P_is_ident(p, n1)) {
      P_next(p);
      e = E_new(p, AE_TABLE_ARG, t);
      e->name = P_qualified_name(p, "a table name");
      if (P_kw(p, "PARTITION")) {
        P_expect_kw(p, "BY");
        if (P_op(p, "(")) {
          P_expr_list(p, &e->list);
          P_expect_op(p, ")");
        } else {
          do {
            P_push(p, &e->list, E_or(p));
          } while (sql_tok_is_op(P_peek(p), ",") && P_is_ident(p, P_peek_at(p, 1)) &&
                   !sql_tok_is_kw(P_peek_at(p, 1), "DESCRIPTOR") && P_op(p, ","));
        }
      }
      E_end(p, e);
      return e;
    }
    /* Niladic functions written without parentheses. */
    static const char *const niladic[] = {"CURRENT_TIMESTAMP", "CURRENT_DATE", "CURRENT_TIME",
                                          "LOCALTIMESTAMP",    "LOCALTIME",    NULL};
    for (int k = 0; niladic[k]; k++) {
      if (sql_tok_is_kw(t, niladic[k]) && !sql_tok_is_op(n1, "(")) {
        P_next(p);
        e = E_new(p, AE_CALL, t);
        e->name = t->text;
        E_end(p, e);
        return e;
      }
    }
    /* A function call: any name followed by '(' (LEFT, RIGHT, IF, MOD are calls too). */
    if (sql_tok_is_op(n1, "(") && !sql_tok_is_kw(t, "EXISTS") && !sql_tok_is_kw(t, "IN")) {
      P_next(p);
      return E_call(p, t);
    }
    if (P_reserved(t)) P_fail_at(p, t, "an expression");
  }
  /* An identifier, possibly compound: a, t.a, t.r.f, t.* */
  P_next(p);
  sql_ptrvec_t parts = {0};
  P_push(p, &parts, (void *)t->text);
  for (;;) {
    if (!sql_tok_is_op(P_peek(p), ".")) break;
    const sql_tok_t *n = P_peek_at(p, 1);
    if (sql_tok_is_op(n, "*")) {
      P_next(p);
      P_next(p);
      e = E_new(p, AE_STAR, t);
      e->parts = (const char **)parts.v;
      e->n_parts = (int)parts.n;
      E_end(p, e);
      return e;
    }
    if (n->kind != TK_IDENT && n->kind != TK_QIDENT) break;
    P_next(p);
    P_next(p);
    P_push(p, &parts, (void *)n->text);
  }
  e = E_new(p, AE_IDENT, t);
  e->parts = (const char **)parts.v;
  e->n_parts = (int)parts.n;
  E_end(p, e);
  return e;
}

static ast_expr_t *E_postfix(parser_t *p) {
  const sql_tok_t *start = P_peek(p);
  ast_expr_t *e = E_primary(p);
  for (;;) {
    if (sql_tok_is_op(P_peek(p), ".") &&
        (P_peek_at(p, 1)->kind == TK_IDENT || P_peek_at(p, 1)->kind == TK_QIDENT)) {
      P_next(p);
      const sql_tok_t *n = P_next(p);
      ast_expr_t *f = E_new(p, AE_FIELD, start);
      f->a = e;
      f->name = n->text;
      E_end(p, f);
      e = f;
    } else if (sql_tok_is_op(P_peek(p), "[")) {
      P_next(p);
      ast_expr_t *f = E_new(p, AE_ITEM, start);
      f->a = e;
      f->b = E_or(p);
      P_expect_op(p, "]");
      E_end(p, f);
      e = f;
    } else {
      break;
    }
  }
  return e;
}

static ast_expr_t *E_unary(parser_t *p) {
  const sql_tok_t *t = P_peek(p);
  if (sql_tok_is_op(t, "-") || sql_tok_is_op(t, "+")) {
    P_next(p);
    ast_expr_t *a = E_unary(p);
    /* fold a minus into a numeric literal, so -9223372036854775808 is a BIGINT */
    if (sql_tok_is_op(t, "-") && a->kind == AE_NUMBER && a->text[0] != '-') {
      a->text = sql_arena_printf(p->a, "-%s", a->text);
      if (!a->text) P_nomem(p);
      a->pos = t->pos;
      a->src_from = t->offset;
      return a;
    }
    ast_expr_t *e = E_new(p, AE_UNARY, t);
    e->op = t->text[0];
    e->a = a;
    E_end(p, e);
    return e;
  }
  return E_postfix(p);
}

static ast_expr_t *E_bin(parser_t *p, const sql_tok_t *at, int op, ast_expr_t *a, ast_expr_t *b) {
  ast_expr_t *e = E_new(p, AE_BINARY, at);
  e->op = op;
  e->b = b;
  return E_end_after(p, e, a);
}

/* The binary operators of a precedence level: the token (an operator or a keyword) and
 * the operator it stands for. */
typedef struct E_binop {
  const char *text;
  int op;
} E_binop_t;

static const E_binop_t mul_ops[] = {{"*", OP_MUL}, {"/", OP_DIV}, {"%", OP_MOD}, {NULL, 0}};
static const E_binop_t add_ops[] = {{"+", OP_ADD}, {"-", OP_SUB}, {"||", OP_CONCAT}, {NULL, 0}};
static const E_binop_t cmp_ops[] = {{"=", OP_EQ},  {"<>", OP_NE}, {"!=", OP_NE}, {"<", OP_LT},
                                    {"<=", OP_LE}, {">", OP_GT},  {">=", OP_GE}, {NULL, 0}};
static const E_binop_t and_ops[] = {{"AND", OP_AND}, {NULL, 0}};
static const E_binop_t or_ops[] = {{"OR", OP_OR}, {NULL, 0}};

/* The operator t stands for among ops, or -1. */
static int E_binop_of(const sql_tok_t *t, const E_binop_t *ops) {
  for (; ops->text; ops++)
    if (sql_tok_is_op(t, ops->text) || sql_tok_is_kw(t, ops->text)) return ops->op;
  return -1;
}

/* One left-associative level: operand (op operand)... with op among ops. */
static ast_expr_t *E_level(parser_t *p, const E_binop_t *ops, ast_expr_t *(*operand)(parser_t *)) {
  ast_expr_t *e = operand(p);
  for (int op; (op = E_binop_of(P_peek(p), ops)) >= 0;) {
    const sql_tok_t *t = P_next(p);
    e = E_bin(p, t, op, e, operand(p));
  }
  return e;
}

static ast_expr_t *E_mul(parser_t *p) { return E_level(p, mul_ops, E_unary); }

static ast_expr_t *E_add(parser_t *p) { return E_level(p, add_ops, E_mul); }

static ast_expr_t *E_cmp(parser_t *p) {
  ast_expr_t *e = E_add(p);
  for (;;) {
    const sql_tok_t *t = P_peek(p);
    int op = E_binop_of(t, cmp_ops);
    if (op >= 0) {
      P_next(p);
      e = E_bin(p, t, op, e, E_add(p));
      continue;
    }
    if (sql_tok_is_kw(t, "IS")) {
      P_next(p);
      bool neg = P_kw(p, "NOT");
      ast_expr_t *x;
      if (P_kw(p, "DISTINCT")) {
        P_expect_kw(p, "FROM");
        x = E_new(p, AE_IS_DISTINCT, t);
        x->b = E_add(p);
      } else {
        static const char *const what[] = {"NULL", "TRUE", "FALSE", "UNKNOWN", NULL};
        x = E_new(p, AE_IS, t);
        x->is_what = P_kw_which(p, what);
        if (x->is_what < 0) P_fail_at(p, P_peek(p), "NULL, TRUE, FALSE, UNKNOWN or DISTINCT FROM");
      }
      x->negated = neg;
      e = E_end_after(p, x, e);
      continue;
    }
    bool neg = false;
    size_t save = p->i;
    if (sql_tok_is_kw(t, "NOT")) {
      const sql_tok_t *n = P_peek_at(p, 1);
      if (sql_tok_is_kw(n, "BETWEEN") || sql_tok_is_kw(n, "IN") || sql_tok_is_kw(n, "LIKE") ||
          sql_tok_is_kw(n, "SIMILAR")) {
        P_next(p);
        neg = true;
      } else {
        break;
      }
    }
    const sql_tok_t *k = P_peek(p);
    if (sql_tok_is_kw(k, "BETWEEN")) {
      P_next(p);
      ast_expr_t *x = E_new(p, AE_BETWEEN, k);
      if (!P_kw(p, "ASYMMETRIC")) {
        if (P_kw(p, "SYMMETRIC")) P_fail_msg(p, k->pos, "BETWEEN SYMMETRIC is not supported");
      }
      x->b = E_add(p);
      P_expect_kw(p, "AND");
      x->c = E_add(p);
      x->negated = neg;
      e = E_end_after(p, x, e);
    } else if (sql_tok_is_kw(k, "IN")) {
      P_next(p);
      ast_expr_t *x = E_new(p, AE_IN, k);
      P_expect_op(p, "(");
      if (sql_tok_is_kw(P_peek(p), "SELECT"))
        P_fail_msg(p, k->pos, "IN (subquery) is not supported");
      P_expr_list(p, &x->list);
      P_expect_op(p, ")");
      x->negated = neg;
      e = E_end_after(p, x, e);
    } else if (sql_tok_is_kw(k, "LIKE") || sql_tok_is_kw(k, "SIMILAR")) {
      P_next(p);
      ast_expr_t *x = E_new(p, AE_LIKE, k);
      if (sql_tok_is_kw(k, "SIMILAR")) {
        P_expect_kw(p, "TO");
        x->similar = true;
      }
      x->b = E_add(p);
      if (P_kw(p, "ESCAPE")) x->c = E_add(p);
      x->negated = neg;
      e = E_end_after(p, x, e);
    } else {
      p->i = save;
      break;
    }
  }
  return e;
}

static ast_expr_t *E_not(parser_t *p) {
  const sql_tok_t *t = P_peek(p);
  if (sql_tok_is_kw(t, "NOT")) {
    P_next(p);
    ast_expr_t *e = E_new(p, AE_UNARY, t);
    e->op = '!';
    e->a = E_not(p);
    E_end(p, e);
    return e;
  }
  if (sql_tok_is_kw(t, "EXISTS")) P_fail_msg(p, t->pos, "EXISTS (subquery) is not supported");
  return E_cmp(p);
}

static ast_expr_t *E_and(parser_t *p) { return E_level(p, and_ops, E_not); }

static ast_expr_t *E_or(parser_t *p) { return E_level(p, or_ops, E_and); }

ast_expr_t *P_expr(parser_t *p) { return E_or(p); }
