/*
 * Arithmetic functions, as Flink names them: ABS, MOD, POWER, SQRT, LN, LOG10, LOG2, LOG,
 * EXP, CEIL, FLOOR, ROUND, TRUNCATE, SIGN, PI, E, RAND, RAND_INTEGER, the trigonometric
 * functions, DEGREES and RADIANS. The transcendental ones compute in DOUBLE; ABS, MOD,
 * CEIL, FLOOR, ROUND, TRUNCATE and SIGN keep the argument's type (DECIMAL results with
 * Flink's precision rules).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "sql/bind_int.h"

/* The variants of the functions that share a binder and an evaluator: the table's
 * `which`, kept in the node's iparam. */
enum {
  F_SQRT,
  F_LN,
  F_LOG10,
  F_LOG2,
  F_EXP,
  F_SIN,
  F_COS,
  F_TAN,
  F_ASIN,
  F_ACOS,
  F_ATAN,
  F_DEGREES,
  F_RADIANS,
  F_COT,
  F_SINH,
  F_COSH,
  F_TANH
};

enum {
  D2_POWER,
  D2_ATAN2,
  D2_LOG
};

enum {
  ABS_VALUE,
  ABS_SIGN
};

enum {
  R_CEIL,
  R_FLOOR,
  R_ROUND,
  R_TRUNCATE
};

enum {
  C_PI,
  C_E
};
enum {
  RAND_DOUBLE,
  RAND_INTEGER
};

static double num_to_double(const sql_type_t *t, const sql_val_t *v) {
  if (sql_type_is_approx(t)) return v->d;
  if (t->kind == T_DECIMAL) return (double)v->dec / (double)sql_pow10(t->scale);
  return (double)v->i;
}

/* One-argument DOUBLE functions (F_). */
static int d1_fn(sql_eval_t *ev, const sql_x_t *x, sql_val_t *out) {
  SQL_EVAL_ARGS(ev, x, v);
  double d = num_to_double(x->args[0]->type, &v[0]);
  switch (x->iparam) {
  case F_SQRT: d = sqrt(d); break;
  case F_LN:
    if (d <= 0) return sql_eval_fail(ev, x, FL_EUSER, "the argument of LN must be positive");
    d = log(d);
    break;
  case F_LOG10:
    if (d <= 0) return sql_eval_fail(ev, x, FL_EUSER, "the argument of LOG10 must be positive");
    d = log10(d);
    break;
  case F_LOG2:
    if (d <= 0) return sql_eval_fail(ev, x, FL_EUSER, "the argument of LOG2 must be positive");
    d = log2(d);
    break;
  case F_EXP: d = exp(d); break;
  case F_SIN: d = sin(d); break;
  case F_COS: d = cos(d); break;
  case F_TAN: d = tan(d); break;
  case F_ASIN: d = asin(d); break;
  case F_ACOS: d = acos(d); break;
  case F_ATAN: d = atan(d); break;
  case F_DEGREES: d = d * 180.0 / M_PI; break;
  case F_RADIANS: d = d * M_PI / 180.0; break;
  case F_COT: d = 1.0 / tan(d); break;
  case F_SINH: d = sinh(d); break;
  case F_COSH: d = cosh(d); break;
  default: d = tanh(d); break;
  }
  out->d = d;
  return FL_OK;
}

static sql_x_t *bind_d1(sql_binder_t *b, const ast_expr_t *call, sql_x_t **args, int n, int which) {
  if (!sql_need_numeric(b, call, args[0], 0)) return NULL;
  sql_x_t *x = sql_fn_node(
      b, call, d1_fn, sql_type_with_null(b->a, &sql_t_double, args[0]->type->not_null), args, n);
  if (x) x->iparam = which;
  return x;
}

/* Two-argument DOUBLE functions (D2_). */
static int d2_fn(sql_eval_t *ev, const sql_x_t *x, sql_val_t *out) {
  SQL_EVAL_ARGS(ev, x, v);
  double a = num_to_double(x->args[0]->type, &v[0]);
  double c = x->nargs > 1 ? num_to_double(x->args[1]->type, &v[1]) : 0;
  switch (x->iparam) {
  case D2_POWER: out->d = pow(a, c); break;
  case D2_ATAN2: out->d = atan2(a, c); break;
  default: /* LOG(base, x) or LOG(x) */
    if (x->nargs == 1) {
      if (a <= 0) return sql_eval_fail(ev, x, FL_EUSER, "the argument of LOG must be positive");
      out->d = log(a);
    } else {
      if (a <= 0 || a == 1 || c <= 0)
        return sql_eval_fail(ev, x, FL_EUSER,
                             "LOG needs a positive base other than 1 and a positive value");
      out->d = log(c) / log(a);
    }
    break;
  }
  return FL_OK;
}

static sql_x_t *bind_d2(sql_binder_t *b, const ast_expr_t *call, sql_x_t **args, int n, int which) {
  for (int i = 0; i < n; i++)
    if (!sql_need_numeric(b, call, args[i], i)) return NULL;
  sql_x_t *x =
      sql_fn_node(b, call, d2_fn,
                  sql_type_with_null(b->a, &sql_t_double, sql_fn_args_not_null(args, n)), args, n);
  if (x) x->iparam = which;
  return x;
}

/* ABS, SIGN: the argument's type. */
static int abs_fn(sql_eval_t *ev, const sql_x_t *x, sql_val_t *out) {
  SQL_EVAL_ARGS(ev, x, v);
  const sql_type_t *t = x->type;
  if (sql_type_is_approx(t))
    out->d = x->iparam == ABS_SIGN ? (v[0].d > 0) - (v[0].d < 0) : fabs(v[0].d);
  else if (t->kind == T_DECIMAL)
    out->dec = x->iparam == ABS_SIGN ? ((v[0].dec > 0) - (v[0].dec < 0)) * sql_pow10(t->scale)
                                     : (v[0].dec < 0 ? -v[0].dec : v[0].dec);
  else
    out->i = x->iparam == ABS_SIGN ? (v[0].i > 0) - (v[0].i < 0)
                                   : (v[0].i < 0 ? (int64_t)(0 - (uint64_t)v[0].i) : v[0].i);
  return FL_OK;
}

static sql_x_t *bind_abs_sign(sql_binder_t *b, const ast_expr_t *call, sql_x_t **args, int n,
                              int which) {
  if (!sql_need_numeric(b, call, args[0], 0)) return NULL;
  const sql_type_t *t = args[0]->type->kind == T_NULL ? &sql_t_int : args[0]->type;
  sql_x_t *x = sql_fn_node(b, call, abs_fn, t, args, n);
  if (x) x->iparam = which;
  return x;
}

/* MOD(a, b): as a % b. */
static sql_x_t *bind_mod(sql_binder_t *b, const ast_expr_t *call, sql_x_t **args, int n,
                         int which) {
  for (int i = 0; i < 2; i++)
    if (!sql_need_numeric(b, call, args[i], i)) return NULL;
  const sql_type_t *lt = args[0]->type->kind == T_NULL ? &sql_t_int : args[0]->type;
  const sql_type_t *rt = args[1]->type->kind == T_NULL ? &sql_t_int : args[1]->type;
  const sql_type_t *res = sql_arith_type(b->a, '%', lt, rt);
  if (!res) return sql_bind_nomem(b);
  if (res->kind != T_DECIMAL) {
    for (int i = 0; i < 2; i++)
      args[i] =
          sql_x_cast(b->a, args[i], sql_type_with_null(b->a, res, args[i]->type->not_null), false);
  } else {
    for (int i = 0; i < 2; i++) {
      if (args[i]->type->kind == T_DECIMAL) continue;
      int p, s;
      sql_type_decimal_of(i ? rt : lt, &p, &s);
      args[i] =
          sql_x_cast(b->a, args[i], sql_type_decimal(b->a, p, s, args[i]->type->not_null), false);
    }
  }
  if (!args[0] || !args[1]) return sql_bind_nomem(b);
  sql_x_t *x = sql_fn_node(b, call, sql_arith_fn_for(OP_MOD, res), res, args, 2);
  if (x) x->iparam = OP_MOD;
  return x;
}

/* CEIL, FLOOR, ROUND (HALF_UP), TRUNCATE on numbers (R_); iparam2: the digits to keep
 * (ROUND/TRUNCATE's second argument, constant). */
static int round_fn(sql_eval_t *ev, const sql_x_t *x, sql_val_t *out) {
  SQL_EVAL_ARGS(ev, x, v);
  int digits = (int)x->iparam2;
  const sql_type_t *at = x->args[0]->type;
  if (sql_type_is_approx(at)) {
    double d = v[0].d, f = pow(10.0, digits);
    switch (x->iparam) {
    case R_CEIL: d = ceil(d); break;
    case R_FLOOR: d = floor(d); break;
    case R_ROUND: d = (d < 0 ? -floor(-d * f + 0.5) : floor(d * f + 0.5)) / f; break;
    default: d = trunc(d * f) / f; break;
    }
    out->d = d;
    return FL_OK;
  }
  if (at->kind == T_DECIMAL) {
    int s = at->scale, keep = x->iparam <= R_FLOOR ? 0 : digits;
    sql_i128 val = v[0].dec, r;
    if (keep >= s) {
      r = val;
    } else {
      sql_i128 div = sql_pow10(s - (keep < 0 ? 0 : keep)), q = val / div, rem = val % div;
      switch (x->iparam) {
      case R_CEIL: r = q + (rem > 0); break;
      case R_FLOOR: r = q - (rem < 0); break;
      case R_ROUND: r = sql_dec_rescale(val, s, keep < 0 ? 0 : keep); break;
      default: r = q; break;
      }
      if (keep < 0) {
        sql_i128 d2 = sql_pow10(-keep);
        r = x->iparam == R_ROUND ? sql_dec_rescale(r, -keep, 0) * d2 : (r / d2) * d2;
      }
    }
    out->dec = sql_dec_rescale(r, keep >= s ? s : (keep < 0 ? 0 : keep), x->type->scale);
    return FL_OK;
  }
  /* integers: only negative digits change anything */
  int64_t i = v[0].i;
  if (x->iparam >= R_ROUND && digits < 0) {
    int64_t p = 1;
    for (int k = 0; k < -digits && k < 18; k++) p *= 10;
    int64_t q = i / p, rem = i % p;
    if (x->iparam == R_ROUND && (rem < 0 ? -rem : rem) * 2 >= p) q += i < 0 ? -1 : 1;
    i = q * p;
  }
  out->i = i;
  return FL_OK;
}

static sql_x_t *time_floor_ceil(sql_binder_t *b, const ast_expr_t *call, sql_x_t **args, int n,
                                bool ceil);

static sql_x_t *bind_rounding(sql_binder_t *b, const ast_expr_t *call, sql_x_t **args, int n,
                              int which) {
  if (which <= R_FLOOR && (call->unit != UNIT_NONE || sql_type_is_temporal(args[0]->type)))
    return time_floor_ceil(b, call, args, n, which == R_CEIL);
  if (!sql_need_numeric(b, call, args[0], 0)) return NULL;
  int digits = 0;
  if (n > 1) {
    if (!sql_need_integer(b, call, &args[1], 1)) return NULL;
    if (!args[1]->is_const)
      return sql_bind_error(b, call->pos, "%s: the number of digits must be a constant",
                            call->name);
    sql_val_t v;
    char err[128];
    if (sql_eval_const(args[1], b->sess, &v, err, sizeof err) || v.null)
      return sql_bind_error(b, call->pos, "%s: the number of digits must not be NULL", call->name);
    digits = (int)v.i;
  }
  const sql_type_t *t = args[0]->type->kind == T_NULL ? &sql_t_int : args[0]->type;
  if (t->kind == T_DECIMAL) {
    int p = t->precision, s = t->scale;
    if (which <= 1) {
      t = sql_type_decimal(b->a, p - s + 1 > 38 ? 38 : p - s + 1, 0, t->not_null);
    } else if (digits < s) {
      int keep = digits < 0 ? 0 : digits;
      int np = 1 + p - s + keep;
      t = sql_type_decimal(b->a, np > 38 ? 38 : np, keep, t->not_null);
    }
  }
  sql_x_t *x = sql_fn_node(b, call, round_fn, t, args, 1);
  if (x) {
    x->iparam = which;
    x->iparam2 = digits;
    x->is_const = args[0]->is_const;
  }
  return x;
}

/* FLOOR(ts TO unit) / CEIL(ts TO unit) on TIMESTAMP, TIMESTAMP_LTZ and DATE. */
static int time_round_fn(sql_eval_t *ev, const sql_x_t *x, sql_val_t *out) {
  SQL_EVAL_ARGS(ev, x, v);
  bool ceil_ = x->iparam2;
  const sql_type_t *t = x->type;
  int64_t off = t->kind == T_TIMESTAMP_LTZ ? ev->sess->tz_offset_ms : 0;
  int64_t ms = t->kind == T_DATE ? v[0].i * 86400000 : v[0].i + off;
  int64_t r;
  switch (x->iparam) {
  case UNIT_MILLISECOND: r = ms; break;
  case UNIT_SECOND:
  case UNIT_MINUTE:
  case UNIT_HOUR:
  case UNIT_DAY: {
    int64_t u = sql_unit_ms((int)x->iparam);
    r = sql_floor_div(ms, u) * u;
    if (ceil_ && r != ms) r += u;
    break;
  }
  case UNIT_WEEK: { /* weeks start on Sunday, as Calcite's */
    int64_t day = sql_floor_div(ms, 86400000);
    int64_t dow = sql_floor_mod(day + 4, 7); /* 1970-01-01 was a Thursday: 0 = Sunday */
    r = (day - dow) * 86400000;
    if (ceil_ && r != ms) r += 7 * 86400000LL;
    break;
  }
  default: { /* MONTH, QUARTER, YEAR */
    int64_t day = sql_floor_div(ms, 86400000), y;
    int m, d;
    sql_civil_from_days(day, &y, &m, &d);
    int m0 = x->iparam == UNIT_YEAR ? 1 : x->iparam == UNIT_QUARTER ? (m - 1) / 3 * 3 + 1 : m;
    r = sql_days_from_civil(y, m0, 1) * 86400000;
    if (ceil_ && r != ms)
      r = sql_add_months(r, x->iparam == UNIT_YEAR ? 12 : x->iparam == UNIT_QUARTER ? 3 : 1, false);
    break;
  }
  }
  out->i = t->kind == T_DATE ? sql_floor_div(r, 86400000) : r - off;
  return FL_OK;
}

static sql_x_t *time_floor_ceil(sql_binder_t *b, const ast_expr_t *call, sql_x_t **args, int n,
                                bool ceil_) {
  if (!sql_type_is_temporal(args[0]->type) || args[0]->type->kind == T_TIME)
    return sql_bind_error(b, call->pos, "%s(... TO unit) needs a TIMESTAMP or DATE, not %s",
                          call->name, sql_describe_x(b, args[0]));
  if (call->unit == UNIT_NONE)
    return sql_bind_error(b, call->pos, "%s of a datetime needs a unit: %s(x TO HOUR)", call->name,
                          call->name);
  if (call->unit > UNIT_YEAR || call->unit == UNIT_NONE)
    return sql_bind_error(b, call->pos, "%s: unit not supported here", call->name);
  sql_x_t *x = sql_fn_node(b, call, time_round_fn, args[0]->type, args, 1);
  if (x) {
    x->iparam = call->unit;
    x->iparam2 = ceil_;
  }
  return x;
}

static sql_x_t *bind_constant(sql_binder_t *b, const ast_expr_t *c, sql_x_t **a, int n, int which) {
  sql_val_t v = {.d = which == C_E ? M_E : M_PI};
  sql_x_t *x = sql_x_const(b->a, &sql_t_double_nn, &v);
  return x ? x : sql_bind_nomem(b);
}

/* RAND([seed]), RAND_INTEGER([seed,] bound): a per-thread generator (never folded). */
static uint64_t rng_next(uint64_t *s) {
  uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}
static _Thread_local uint64_t rng_state;
static int rand_fn(sql_eval_t *ev, const sql_x_t *x, sql_val_t *out) {
  if (!rng_state) rng_state = (uint64_t)(uintptr_t)&rng_state ^ 0x1234567ull;
  out->null = false;
  uint64_t r = rng_next(&rng_state);
  if (x->iparam == RAND_INTEGER) {
    sql_val_t bound;
    int rc = sql_eval(ev, x->args[x->nargs - 1], &bound);
    if (rc) return rc;
    if (bound.null) return out->null = true, FL_OK;
    if (bound.i <= 0) return sql_eval_fail(ev, x, FL_EUSER, "the bound must be positive");
    out->i = (int64_t)(r % (uint64_t)bound.i);
  } else {
    out->d = (double)(r >> 11) * 0x1.0p-53;
  }
  return FL_OK;
}
static sql_x_t *bind_rand(sql_binder_t *b, const ast_expr_t *call, sql_x_t **args, int n,
                          int which) {
  const sql_type_t *t = &sql_t_double_nn;
  if (which == RAND_INTEGER) {
    if (!sql_need_integer(b, call, &args[n - 1], n - 1)) return NULL;
    t = sql_type_with_null(b->a, &sql_t_int, args[n - 1]->type->not_null);
  }
  sql_x_t *x = sql_fn_node(b, call, rand_fn, t, args, n);
  if (x) {
    x->is_const = false;
    x->iparam = which;
  }
  return x;
}

const sql_fn_def_t sql_fns_math[] = {{"ABS", bind_abs_sign, 1, 1, ABS_VALUE},
                                     {"SIGN", bind_abs_sign, 1, 1, ABS_SIGN},
                                     {"MOD", bind_mod, 2, 2, 0},
                                     {"POWER", bind_d2, 2, 2, D2_POWER},
                                     {"POW", bind_d2, 2, 2, D2_POWER},
                                     {"SQRT", bind_d1, 1, 1, F_SQRT},
                                     {"LN", bind_d1, 1, 1, F_LN},
                                     {"LOG10", bind_d1, 1, 1, F_LOG10},
                                     {"LOG2", bind_d1, 1, 1, F_LOG2},
                                     {"LOG", bind_d2, 1, 2, D2_LOG},
                                     {"EXP", bind_d1, 1, 1, F_EXP},
                                     {"CEIL", bind_rounding, 1, 1, R_CEIL},
                                     {"CEILING", bind_rounding, 1, 1, R_CEIL},
                                     {"FLOOR", bind_rounding, 1, 1, R_FLOOR},
                                     {"ROUND", bind_rounding, 1, 2, R_ROUND},
                                     {"TRUNCATE", bind_rounding, 1, 2, R_TRUNCATE},
                                     {"PI", bind_constant, 0, 0, C_PI},
                                     {"E", bind_constant, 0, 0, C_E},
                                     {"RAND", bind_rand, 0, 1, RAND_DOUBLE},
                                     {"RAND_INTEGER", bind_rand, 1, 2, RAND_INTEGER},
                                     {"SIN", bind_d1, 1, 1, F_SIN},
                                     {"COS", bind_d1, 1, 1, F_COS},
                                     {"TAN", bind_d1, 1, 1, F_TAN},
                                     {"COT", bind_d1, 1, 1, F_COT},
                                     {"ASIN", bind_d1, 1, 1, F_ASIN},
                                     {"ACOS", bind_d1, 1, 1, F_ACOS},
                                     {"ATAN", bind_d1, 1, 1, F_ATAN},
                                     {"ATAN2", bind_d2, 2, 2, D2_ATAN2},
                                     {"SINH", bind_d1, 1, 1, F_SINH},
                                     {"COSH", bind_d1, 1, 1, F_COSH},
                                     {"TANH", bind_d1, 1, 1, F_TANH},
                                     {"DEGREES", bind_d1, 1, 1, F_DEGREES},
                                     {"RADIANS", bind_d1, 1, 1, F_RADIANS},
                                     {NULL, NULL, 0, 0, 0}};
