/*
 * String functions with Flink's names and NULL rules (NULL in, NULL out, except
 * CONCAT_WS, which skips NULL arguments): CHAR_LENGTH, UPPER, LOWER, INITCAP, TRIM and
 * its forms, POSITION, LOCATE, INSTR, SUBSTRING, REPLACE, CONCAT, CONCAT_WS, LPAD, RPAD,
 * LEFT, RIGHT, REPEAT, REVERSE, SPLIT_INDEX, REGEXP, REGEXP_REPLACE, REGEXP_EXTRACT, ASCII,
 * CHR, TO_BASE64, FROM_BASE64, UUID and JSON_VALUE.
 *
 * Positions and lengths count characters (UTF-8 code points), from 1. UPPER, LOWER and
 * INITCAP change ASCII letters only. Regular expressions are POSIX extended expressions
 * (Flink's are Java's: the common subset, character classes, anchors, groups, repetition,
 * is the same).
 */
#include <ctype.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sql/bind_int.h"

static char *scratch(sql_eval_t *ev, size_t n) { return sql_scratch_alloc(&ev->scratch, n + 1); }

static size_t u8len(unsigned char c) { return c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4; }

static int64_t char_count(const char *s, size_t n) {
  int64_t k = 0;
  for (size_t i = 0; i < n; i++)
    if (((unsigned char)s[i] & 0xC0) != 0x80) k++;
  return k;
}

/* Byte offset of the k-th character (0-based), clamped to n. */
static size_t char_offset(const char *s, size_t n, int64_t k) {
  size_t i = 0;
  while (i < n && k > 0) {
    i += u8len((unsigned char)s[i]);
    k--;
  }
  return i > n ? n : i;
}

/* Binds a function whose arguments are strings (integers from first_int on, if it is not
 * negative), with a result type and which as the node's iparam. */
static sql_x_t *strs(sql_binder_t *b, const ast_expr_t *call, sql_x_t **args, int n, sql_x_fn fn,
                     const sql_type_t *t, int first_int, int which) {
  for (int i = 0; i < n; i++) {
    if (first_int >= 0 && i >= first_int) {
      if (!sql_need_integer(b, call, &args[i], i)) return NULL;
    } else if (!sql_need_string(b, call, &args[i], i)) {
      return NULL;
    }
  }
  sql_x_t *x =
      sql_fn_node(b, call, fn, sql_type_with_null(b->a, t, sql_fn_args_not_null(args, n)), args, n);
  if (x) x->iparam = which;
  return x;
}

static int char_length_fn(sql_eval_t *ev, const sql_x_t *x, sql_val_t *out) {
  SQL_EVAL_ARGS(ev, x, v);
  out->i = char_count(v[0].s.p, v[0].s.n);
  return FL_OK;
}
static sql_x_t *bind_char_length(sql_binder_t *b, const ast_expr_t *c, sql_x_t **a, int n,
                                 int which) {
  return strs(b, c, a, n, char_length_fn, &sql_t_int, -1, which);
}

/* iparam: 0 upper, 1 lower, 2 initcap, 3 reverse */
static int case_fn(sql_eval_t *ev, const sql_x_t *x, sql_val_t *out) {
  SQL_EVAL_ARGS(ev, x, v);
  size_t n = v[0].s.n;
  char *p = scratch(ev, n);
  if (!p) return FL_ENOMEM;
  const char *s = v[0].s.p;
  if (x->iparam == 3) {
    size_t i = 0;
    while (i < n) {
      size_t k = u8len((unsigned char)s[i]);
      if (i + k > n) k = n - i;
      memcpy(p + n - i - k, s + i, k);
      i += k;
    }
  } else {
    bool start = true;
    for (size_t i = 0; i < n; i++) {
      unsigned char c = (unsigned char)s[i];
      if (x->iparam == 0)
        c = (unsigned char)toupper(c);
      else if (x->iparam == 1)
        c = (unsigned char)tolower(c);
      else {
        c = (unsigned char)(start ? toupper(c) : tolower(c));
        start = !isalnum(c) && c < 0x80;
      }
      p[i] = (char)c;
    }
  }
  out->s.p = p;
  out->s.n = n;
  return FL_OK;
}
static sql_x_t *bind_case(sql_binder_t *b, const ast_expr_t *c, sql_x_t **a, int n, int which) {
  return strs(b, c, a, n, case_fn, &sql_t_string, -1, which);
}

/* TRIM: args[0] the string, args[1] the characters (default ' '); iparam 0 both,
 * 1 leading, 2 trailing. */
static int trim_fn(sql_eval_t *ev, const sql_x_t *x, sql_val_t *out) {
  SQL_EVAL_ARGS(ev, x, v);
  const char *set = x->nargs > 1 ? v[1].s.p : " ";
  size_t sn = x->nargs > 1 ? v[1].s.n : 1;
  const char *s = v[0].s.p;
  size_t a = 0, e = v[0].s.n;
  if (x->iparam != 2)
    while (a < e && memchr(set, s[a], sn)) a++;
  if (x->iparam != 1)
    while (e > a && memchr(set, s[e - 1], sn)) e--;
  out->s.p = s + a;
  out->s.n = e - a;
  return FL_OK;
}
static sql_x_t *bind_trim(sql_binder_t *b, const ast_expr_t *c, sql_x_t **a, int n, int which) {
  return strs(b, c, a, n, trim_fn, &sql_t_string, -1, which);
}

/* POSITION(needle IN s) / LOCATE(needle, s[, from]) / INSTR(s, needle): 1-based char
 * position, 0 when absent. iparam: 1 for INSTR's argument order. */
static int position_fn(sql_eval_t *ev, const sql_x_t *x, sql_val_t *out) {
  SQL_EVAL_ARGS(ev, x, v);
  sql_val_t *needle = &v[x->iparam ? 1 : 0], *hay = &v[x->iparam ? 0 : 1];
  size_t from = 0;
  if (x->nargs > 2) {
    if (v[2].i < 1) return out->i = 0, FL_OK;
    from = char_offset(hay->s.p, hay->s.n, v[2].i - 1);
  }
  out->i = 0;
  if (needle->s.n == 0) {
    out->i = char_count(hay->s.p, from) + 1;
    return FL_OK;
  }
  for (size_t i = from; i + needle->s.n <= hay->s.n; i++) {
    if (memcmp(hay->s.p + i, needle->s.p, needle->s.n) == 0) {
      out->i = char_count(hay->s.p, i) + 1;
      break;
    }
  }
  return FL_OK;
}
static sql_x_t *bind_position(sql_binder_t *b, const ast_expr_t *c, sql_x_t **a, int n, int which) {
  return strs(b, c, a, n, position_fn, &sql_t_int, 2, which);
}

/* SUBSTRING(s, start[, len]): Flink's rules: start counts from 1, 0 is taken as 1, a
 * negative start counts from the end. */
static int substring_fn(sql_eval_t *ev, const sql_x_t *x, sql_val_t *out) {
  SQL_EVAL_ARGS(ev, x, v);
  int64_t len = char_count(v[0].s.p, v[0].s.n);
  int64_t start = v[1].i;
  if (start < 0) start = len + start + 1;
  if (start < 1) start = 1;
  int64_t cnt = x->nargs > 2 ? v[2].i : len;
  if (cnt < 0) return sql_eval_fail(ev, x, FL_EUSER, "the length must not be negative");
  if (start > len || cnt == 0) {
    out->s.p = v[0].s.p;
    out->s.n = 0;
    return FL_OK;
  }
  size_t a = char_offset(v[0].s.p, v[0].s.n, start - 1);
  size_t e = char_offset(v[0].s.p, v[0].s.n, start - 1 + cnt);
  out->s.p = v[0].s.p + a;
  out->s.n = e - a;
  return FL_OK;
}
static sql_x_t *bind_substring(sql_binder_t *b, const ast_expr_t *c, sql_x_t **a, int n,
                               int which) {
  return strs(b, c, a, n, substring_fn, &sql_t_string, 1, which);
}

/* LEFT(s, n), RIGHT(s, n). iparam 1: right. */
static int leftright_fn(sql_eval_t *ev, const sql_x_t *x, sql_val_t *out) {
  SQL_EVAL_ARGS(ev, x, v);
  int64_t len = char_count(v[0].s.p, v[0].s.n), k = v[1].i < 0 ? 0 : v[1].i;
  if (k > len) k = len;
  size_t cut = char_offset(v[0].s.p, v[0].s.n, x->iparam ? len - k : k);
  out->s.p = x->iparam ? v[0].s.p + cut : v[0].s.p;
  out->s.n = x->iparam ? v[0].s.n - cut : cut;
  return FL_OK;
}
static sql_x_t *bind_leftright(sql_binder_t *b, const ast_expr_t *c, sql_x_t **a, int n,
                               int which) {
  return strs(b, c, a, n, leftright_fn, &sql_t_string, 1, which);
}

static int replace_fn(sql_eval_t *ev, const sql_x_t *x, sql_val_t *out) {
  SQL_EVAL_ARGS(ev, x, v);
  sql_strbuf_t sb = {0};
  const char *s = v[0].s.p;
  size_t n = v[0].s.n, fn = v[1].s.n;
  size_t i = 0;
  while (i < n) {
    if (fn && i + fn <= n && memcmp(s + i, v[1].s.p, fn) == 0) {
      sql_sb_put(&sb, v[2].s.p, v[2].s.n);
      i += fn;
    } else {
      sql_sb_putc(&sb, s[i++]);
    }
  }
  return sql_fn_string_result(ev, &sb, out);
}
static sql_x_t *bind_replace(sql_binder_t *b, const ast_expr_t *c, sql_x_t **a, int n, int which) {
  return strs(b, c, a, n, replace_fn, &sql_t_string, -1, which);
}

/* CONCAT(a, ...): NULL if any is NULL. CONCAT_WS(sep, a, ...): skips NULLs. */
static int concat_fn(sql_eval_t *ev, const sql_x_t *x, sql_val_t *out) {
  sql_val_t v[64];
  size_t total = 0;
  bool ws = x->iparam;
  for (int i = 0; i < x->nargs; i++) {
    int rc = sql_eval(ev, x->args[i], &v[i]);
    if (rc) return rc;
    if (v[i].null && (!ws || i == 0)) return out->null = true, FL_OK;
    if (!v[i].null) total += v[i].s.n;
  }
  total += ws ? v[0].s.n * (size_t)x->nargs : 0;
  char *p = scratch(ev, total);
  if (!p) return FL_ENOMEM;
  size_t k = 0;
  bool first = true;
  for (int i = ws ? 1 : 0; i < x->nargs; i++) {
    if (v[i].null) continue;
    if (ws && !first) {
      memcpy(p + k, v[0].s.p, v[0].s.n);
      k += v[0].s.n;
    }
    first = false;
    if (v[i].s.n) memcpy(p + k, v[i].s.p, v[i].s.n);
    k += v[i].s.n;
  }
  out->null = false;
  out->s.p = p;
  out->s.n = k;
  return FL_OK;
}
/* which 1: CONCAT_WS, NULL only when the separator is. */
static sql_x_t *bind_concat(sql_binder_t *b, const ast_expr_t *c, sql_x_t **a, int n, int which) {
  if (n > 64) return sql_bind_error(b, c->pos, "%s takes at most 64 arguments", c->name);
  sql_x_t *x = strs(b, c, a, n, concat_fn, &sql_t_string, -1, which);
  if (x && which) x->type = sql_type_with_null(b->a, &sql_t_string, a[0]->type->not_null);
  return x;
}

/* LPAD / RPAD(s, len, pad): iparam 1 right. Shorter results cut s, as Flink does. */
static int pad_fn(sql_eval_t *ev, const sql_x_t *x, sql_val_t *out) {
  SQL_EVAL_ARGS(ev, x, v);
  int64_t len = v[1].i, have = char_count(v[0].s.p, v[0].s.n);
  if (len < 0) return out->null = true, FL_OK;
  if (len <= have) {
    out->s.p = v[0].s.p;
    out->s.n = char_offset(v[0].s.p, v[0].s.n, len);
    return FL_OK;
  }
  if (v[2].s.n == 0) return out->null = true, FL_OK;
  int64_t need = len - have;
  int64_t padc = char_count(v[2].s.p, v[2].s.n);
  size_t padbytes = 0;
  for (int64_t i = 0; i < need; i++)
    padbytes += u8len((unsigned char)v[2].s.p[char_offset(v[2].s.p, v[2].s.n, i % padc)]);
  char *p = scratch(ev, v[0].s.n + padbytes);
  if (!p) return FL_ENOMEM;
  size_t k = 0;
  if (x->iparam) {
    memcpy(p, v[0].s.p, v[0].s.n);
    k = v[0].s.n;
  }
  for (int64_t i = 0; i < need; i++) {
    size_t off = char_offset(v[2].s.p, v[2].s.n, i % padc);
    size_t cl = u8len((unsigned char)v[2].s.p[off]);
    memcpy(p + k, v[2].s.p + off, cl);
    k += cl;
  }
  if (!x->iparam) {
    memcpy(p + k, v[0].s.p, v[0].s.n);
    k += v[0].s.n;
  }
  out->s.p = p;
  out->s.n = k;
  return FL_OK;
}
static sql_x_t *bind_pad(sql_binder_t *b, const ast_expr_t *c, sql_x_t **a, int n, int which) {
  if (!sql_need_string(b, c, &a[0], 0) || !sql_need_integer(b, c, &a[1], 1) ||
      !sql_need_string(b, c, &a[2], 2))
    return NULL;
  sql_x_t *x = sql_fn_node(b, c, pad_fn, &sql_t_string, a, n);
  if (x) x->iparam = which;
  return x;
}

static int repeat_fn(sql_eval_t *ev, const sql_x_t *x, sql_val_t *out) {
  SQL_EVAL_ARGS(ev, x, v);
  int64_t k = v[1].i < 0 ? 0 : v[1].i;
  if (v[0].s.n && (uint64_t)k > (64u << 20) / v[0].s.n)
    return sql_eval_fail(ev, x, FL_EUSER, "the result would be longer than 64 MiB");
  char *p = scratch(ev, v[0].s.n * (size_t)k);
  if (!p) return FL_ENOMEM;
  for (int64_t i = 0; i < k; i++) memcpy(p + (size_t)i * v[0].s.n, v[0].s.p, v[0].s.n);
  out->s.p = p;
  out->s.n = v[0].s.n * (size_t)k;
  return FL_OK;
}
static sql_x_t *bind_repeat(sql_binder_t *b, const ast_expr_t *c, sql_x_t **a, int n, int which) {
  return strs(b, c, a, n, repeat_fn, &sql_t_string, 1, which);
}

/* SPLIT_INDEX(s, delimiter, index): the index-th (from 0) piece, NULL if none. */
static int split_index_fn(sql_eval_t *ev, const sql_x_t *x, sql_val_t *out) {
  SQL_EVAL_ARGS(ev, x, v);
  const char *s = v[0].s.p, *d = v[1].s.p;
  size_t n = v[0].s.n, dn = v[1].s.n;
  int64_t want = v[2].i;
  if (want < 0 || dn == 0) return out->null = true, FL_OK;
  size_t start = 0;
  int64_t idx = 0;
  for (size_t i = 0; i + dn <= n;) {
    if (memcmp(s + i, d, dn) == 0) {
      if (idx == want) {
        out->s.p = s + start;
        out->s.n = i - start;
        return FL_OK;
      }
      idx++;
      i += dn;
      start = i;
    } else {
      i++;
    }
  }
  if (idx == want) {
    out->s.p = s + start;
    out->s.n = n - start;
    return FL_OK;
  }
  out->null = true;
  return FL_OK;
}
static sql_x_t *bind_split_index(sql_binder_t *b, const ast_expr_t *c, sql_x_t **a, int n,
                                 int which) {
  sql_x_t *x = strs(b, c, a, n, split_index_fn, &sql_t_string, 2, which);
  if (x) x->type = &sql_t_string;
  return x;
}

/* Regular expressions: a constant pattern is compiled once (aux); others per call. */
typedef struct re_aux {
  regex_t re;
  bool ok;
} re_aux_t;

static void re_free(void *p) { regfree(&((re_aux_t *)p)->re); }

static int re_get(sql_eval_t *ev, const sql_x_t *x, const sql_val_t *pat, regex_t *tmp,
                  const regex_t **out) {
  re_aux_t *aux = x->aux;
  if (aux && aux->ok) {
    *out = &aux->re;
    return FL_OK;
  }
  char *p = scratch(ev, pat->s.n);
  if (!p) return FL_ENOMEM;
  memcpy(p, pat->s.p, pat->s.n);
  p[pat->s.n] = 0;
  if (regcomp(tmp, p, REG_EXTENDED) != 0)
    return sql_eval_fail(ev, x, FL_EUSER, "invalid regular expression '%s'", p);
  *out = tmp;
  return 1;
}

static char *cstr(sql_eval_t *ev, const sql_val_t *v) {
  char *p = scratch(ev, v->s.n);
  if (p) {
    memcpy(p, v->s.p, v->s.n);
    p[v->s.n] = 0;
  }
  return p;
}

/* iparam: 0 REGEXP (matches), 1 REGEXP_EXTRACT(s, re[, group]), 2 REGEXP_REPLACE(s, re, r) */
static int regexp_fn(sql_eval_t *ev, const sql_x_t *x, sql_val_t *out) {
  SQL_EVAL_ARGS(ev, x, v);
  regex_t tmp;
  const regex_t *re = NULL;
  int rc = re_get(ev, x, &v[1], &tmp, &re);
  if (rc < 0) return rc;
  bool own = rc == 1;
  char *s = cstr(ev, &v[0]);
  if (!s) {
    if (own) regfree(&tmp);
    return FL_ENOMEM;
  }
  regmatch_t m[10];
  rc = FL_OK;
  if (x->iparam == 0) {
    out->i = regexec(re, s, 0, NULL, 0) == 0;
  } else if (x->iparam == 1) {
    int64_t g = x->nargs > 2 ? v[2].i : 0;
    if (g < 0 || g > 9 || regexec(re, s, 10, m, 0) != 0 || m[g].rm_so < 0) {
      out->null = true;
    } else {
      out->s.p = s + m[g].rm_so;
      out->s.n = (size_t)(m[g].rm_eo - m[g].rm_so);
    }
  } else {
    sql_strbuf_t sb = {0};
    const char *cur = s;
    int flags = 0;
    while (*cur && regexec(re, cur, 1, m, flags) == 0) {
      sql_sb_put(&sb, cur, (size_t)m[0].rm_so);
      sql_sb_put(&sb, v[2].s.p, v[2].s.n);
      if (m[0].rm_eo == m[0].rm_so) {
        if (!cur[m[0].rm_eo]) {
          cur += m[0].rm_eo;
          break;
        }
        sql_sb_putc(&sb, cur[m[0].rm_eo]);
        cur += m[0].rm_eo + 1;
      } else {
        cur += m[0].rm_eo;
      }
      flags = REG_NOTBOL;
    }
    sql_sb_put(&sb, cur, strlen(cur));
    rc = sql_fn_string_result(ev, &sb, out);
  }
  if (own) regfree(&tmp);
  return rc;
}

static sql_x_t *bind_regexp(sql_binder_t *b, const ast_expr_t *c, sql_x_t **a, int n, int which) {
  const sql_type_t *t = which == 0 ? &sql_t_boolean : &sql_t_string;
  sql_x_t *x = strs(b, c, a, n, regexp_fn, t, which == 1 ? 2 : -1, which);
  if (!x) return NULL;
  if (which == 1) x->type = &sql_t_string;
  if (a[1]->is_const) {
    sql_val_t pv;
    char err[128];
    if (sql_eval_const(a[1], b->sess, &pv, err, sizeof err) == FL_OK && !pv.null) {
      re_aux_t *aux = sql_arena_alloc(b->a, sizeof *aux);
      char *pat = sql_arena_strndup(b->a, pv.s.p, pv.s.n);
      free((void *)pv.s.p);
      if (!aux || !pat) return sql_bind_nomem(b);
      if (regcomp(&aux->re, pat, REG_EXTENDED) != 0)
        return sql_bind_error(b, c->pos, "%s: invalid regular expression '%s'", c->name, pat);
      /* the compiled pattern lives as long as the arena */
      aux->ok = true;
      if (sql_arena_on_free(b->a, re_free, aux) != FL_OK) return sql_bind_nomem(b);
      x->aux = aux;
    }
  }
  return x;
}

static int ascii_fn(sql_eval_t *ev, const sql_x_t *x, sql_val_t *out) {
  SQL_EVAL_ARGS(ev, x, v);
  out->i = v[0].s.n ? (unsigned char)v[0].s.p[0] : 0;
  return FL_OK;
}
static sql_x_t *bind_ascii(sql_binder_t *b, const ast_expr_t *c, sql_x_t **a, int n, int which) {
  return strs(b, c, a, n, ascii_fn, &sql_t_int, -1, which);
}

static int chr_fn(sql_eval_t *ev, const sql_x_t *x, sql_val_t *out) {
  SQL_EVAL_ARGS(ev, x, v);
  int64_t c = v[0].i;
  if (c < 0) return out->null = true, FL_OK;
  char *p = scratch(ev, 4);
  if (!p) return FL_ENOMEM;
  c %= 256;
  if (c < 0x80) {
    p[0] = (char)c;
    out->s.n = 1;
  } else {
    p[0] = (char)(0xC0 | (c >> 6));
    p[1] = (char)(0x80 | (c & 0x3F));
    out->s.n = 2;
  }
  out->s.p = p;
  return FL_OK;
}
static sql_x_t *bind_chr(sql_binder_t *b, const ast_expr_t *c, sql_x_t **a, int n, int which) {
  return strs(b, c, a, n, chr_fn, &sql_t_string, 0, which);
}

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* iparam 0: TO_BASE64, 1: FROM_BASE64. */
static int base64_fn(sql_eval_t *ev, const sql_x_t *x, sql_val_t *out) {
  SQL_EVAL_ARGS(ev, x, v);
  const unsigned char *s = (const unsigned char *)v[0].s.p;
  size_t n = v[0].s.n;
  if (x->iparam == 0) {
    char *p = scratch(ev, (n + 2) / 3 * 4);
    if (!p) return FL_ENOMEM;
    size_t k = 0;
    for (size_t i = 0; i < n; i += 3) {
      uint32_t w = (uint32_t)s[i] << 16 | (i + 1 < n ? (uint32_t)s[i + 1] << 8 : 0) |
                   (i + 2 < n ? s[i + 2] : 0);
      p[k++] = b64[w >> 18];
      p[k++] = b64[(w >> 12) & 63];
      p[k++] = i + 1 < n ? b64[(w >> 6) & 63] : '=';
      p[k++] = i + 2 < n ? b64[w & 63] : '=';
    }
    out->s.p = p;
    out->s.n = k;
    return FL_OK;
  }
  char *p = scratch(ev, n);
  if (!p) return FL_ENOMEM;
  size_t k = 0;
  uint32_t acc = 0;
  int bits = 0;
  for (size_t i = 0; i < n; i++) {
    if (s[i] == '=') break;
    const char *q = memchr(b64, s[i], 64);
    if (!q) return sql_eval_fail(ev, x, FL_EUSER, "not base64");
    acc = acc << 6 | (uint32_t)(q - b64);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      p[k++] = (char)((acc >> bits) & 0xFF);
    }
  }
  out->s.p = p;
  out->s.n = k;
  return FL_OK;
}
static sql_x_t *bind_base64(sql_binder_t *b, const ast_expr_t *c, sql_x_t **a, int n, int which) {
  return strs(b, c, a, n, base64_fn, &sql_t_string, -1, which);
}

static _Thread_local uint64_t uuid_state;
static int uuid_fn(sql_eval_t *ev, const sql_x_t *x, sql_val_t *out) {
  if (!uuid_state)
    uuid_state = (uint64_t)(uintptr_t)&uuid_state * 0x9E3779B97F4A7C15ull ^ 0xabcdefull;
  uint8_t r[16];
  for (int i = 0; i < 16; i++) {
    uuid_state ^= uuid_state << 13;
    uuid_state ^= uuid_state >> 7;
    uuid_state ^= uuid_state << 17;
    r[i] = (uint8_t)uuid_state;
  }
  r[6] = (r[6] & 0x0F) | 0x40;
  r[8] = (r[8] & 0x3F) | 0x80;
  char *p = scratch(ev, 36);
  if (!p) return FL_ENOMEM;
  snprintf(p, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", r[0],
           r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9], r[10], r[11], r[12], r[13], r[14],
           r[15]);
  out->null = false;
  out->s.p = p;
  out->s.n = 36;
  return FL_OK;
}
static sql_x_t *bind_uuid(sql_binder_t *b, const ast_expr_t *c, sql_x_t **a, int n, int which) {
  sql_x_t *x = sql_fn_node(b, c, uuid_fn, &sql_t_string_nn, a, n);
  if (x) x->is_const = false;
  return x;
}

/* JSON_VALUE(json, '$.a.b[2]'): the scalar at a simple path, as a string; NULL when the
 * path does not exist, the text is not JSON or the value is not a scalar. */
int sql_json_path(const char *s, size_t n, const char *path, size_t pn, const char **vp, size_t *vn,
                  bool *is_string);
static int json_value_fn(sql_eval_t *ev, const sql_x_t *x, sql_val_t *out) {
  SQL_EVAL_ARGS(ev, x, v);
  const char *vp;
  size_t vn;
  bool is_str;
  if (sql_json_path(v[0].s.p, v[0].s.n, v[1].s.p, v[1].s.n, &vp, &vn, &is_str) != FL_OK)
    return out->null = true, FL_OK;
  if (is_str) {
    /* unescape the common escapes */
    char *p = scratch(ev, vn);
    if (!p) return FL_ENOMEM;
    size_t k = 0;
    for (size_t i = 0; i < vn; i++) {
      if (vp[i] == '\\' && i + 1 < vn) {
        char c = vp[++i];
        p[k++] = c == 'n' ? '\n' : c == 't' ? '\t' : c == 'r' ? '\r' : c;
      } else {
        p[k++] = vp[i];
      }
    }
    out->s.p = p;
    out->s.n = k;
  } else {
    if (vn == 4 && memcmp(vp, "null", 4) == 0) return out->null = true, FL_OK;
    out->s.p = vp;
    out->s.n = vn;
  }
  return FL_OK;
}
static sql_x_t *bind_json_value(sql_binder_t *b, const ast_expr_t *c, sql_x_t **a, int n,
                                int which) {
  sql_x_t *x = strs(b, c, a, n, json_value_fn, &sql_t_string, -1, which);
  if (x) x->type = &sql_t_string;
  return x;
}

const sql_fn_def_t sql_fns_string[] = {{"CHAR_LENGTH", bind_char_length, 1, 1, 0},
                                       {"CHARACTER_LENGTH", bind_char_length, 1, 1, 0},
                                       {"LENGTH", bind_char_length, 1, 1, 0},
                                       {"UPPER", bind_case, 1, 1, 0},
                                       {"LOWER", bind_case, 1, 1, 1},
                                       {"INITCAP", bind_case, 1, 1, 2},
                                       {"REVERSE", bind_case, 1, 1, 3},
                                       {"BTRIM", bind_trim, 1, 2, 0},
                                       {"LTRIM", bind_trim, 1, 2, 1},
                                       {"RTRIM", bind_trim, 1, 2, 2},
                                       {"POSITION", bind_position, 2, 2, 0},
                                       {"LOCATE", bind_position, 2, 3, 0},
                                       {"INSTR", bind_position, 2, 2, 1},
                                       {"SUBSTRING", bind_substring, 2, 3, 0},
                                       {"SUBSTR", bind_substring, 2, 3, 0},
                                       {"LEFT", bind_leftright, 2, 2, 0},
                                       {"RIGHT", bind_leftright, 2, 2, 1},
                                       {"REPLACE", bind_replace, 3, 3, 0},
                                       {"CONCAT", bind_concat, 1, -1, 0},
                                       {"CONCAT_WS", bind_concat, 2, -1, 1},
                                       {"LPAD", bind_pad, 3, 3, 0},
                                       {"RPAD", bind_pad, 3, 3, 1},
                                       {"REPEAT", bind_repeat, 2, 2, 0},
                                       {"SPLIT_INDEX", bind_split_index, 3, 3, 0},
                                       {"REGEXP", bind_regexp, 2, 2, 0},
                                       {"REGEXP_EXTRACT", bind_regexp, 2, 3, 1},
                                       {"REGEXP_REPLACE", bind_regexp, 3, 3, 2},
                                       {"ASCII", bind_ascii, 1, 1, 0},
                                       {"CHR", bind_chr, 1, 1, 0},
                                       {"TO_BASE64", bind_base64, 1, 1, 0},
                                       {"FROM_BASE64", bind_base64, 1, 1, 1},
                                       {"UUID", bind_uuid, 0, 0, 0},
                                       {"JSON_VALUE", bind_json_value, 2, 2, 0},
                                       {NULL, NULL, 0, 0, 0}};
