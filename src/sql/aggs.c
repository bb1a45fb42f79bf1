/*
 * Aggregate functions at run time (aggs.h).
 */
#include "sql/aggs.h"
#include "sql/catalog.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static inline int64_t ld64(const uint8_t *p) {
  int64_t v;
  memcpy(&v, p, 8);
  return v;
}
static inline void st64(uint8_t *p, int64_t v) { memcpy(p, &v, 8); }
static inline double ldd(const uint8_t *p) {
  double v;
  memcpy(&v, p, 8);
  return v;
}
static inline void std_(uint8_t *p, double v) { memcpy(p, &v, 8); }
static inline sql_i128 ld128(const uint8_t *p) {
  sql_i128 v;
  memcpy(&v, p, 16);
  return v;
}
static inline void st128(uint8_t *p, sql_i128 v) { memcpy(p, &v, 16); }

/* The value at the start of an accumulator (MIN, MAX, FIRST_VALUE, LAST_VALUE): a
 * DOUBLE, a DECIMAL (128 bits) or an integer, by the argument's type t. */
static inline void slot_load(const sql_type_t *t, const uint8_t *acc, sql_val_t *v) {
  if (sql_type_is_approx(t))
    v->d = ldd(acc);
  else if (t->kind == T_DECIMAL)
    v->dec = ld128(acc);
  else
    v->i = ld64(acc);
}

static inline void slot_store(const sql_type_t *t, uint8_t *acc, const sql_val_t *v) {
  if (sql_type_is_approx(t))
    std_(acc, v->d);
  else if (t->kind == T_DECIMAL)
    st128(acc, v->dec);
  else
    st64(acc, v->i);
}

static double as_double(const sql_type_t *t, const sql_val_t *v) {
  if (sql_type_is_approx(t)) return v->d;
  if (t->kind == T_DECIMAL) return (double)v->dec / (double)sql_pow10(t->scale);
  return (double)v->i;
}

void sql_acc_init(const sql_agg_t *ag, uint8_t *acc) {
  memset(acc, 0, ag->acc_size);
  if (ag->kind == AGG_UDAF) ag->udaf->agg.init(acc, ag->udaf->opaque);
}

bool sql_acc_retractable(const sql_agg_t *ag) {
  switch (ag->kind) {
  case AGG_MIN:
  case AGG_MAX:
  case AGG_FIRST_VALUE:
  case AGG_LAST_VALUE: return false;
  case AGG_UDAF: return ag->udaf->agg.retract != NULL;
  default: return true;
  }
}

static bool filtered_out(const sql_agg_t *ag, const uint8_t *row, int ncols) {
  if (ag->filter < 0) return false;
  if (sql_row_null(row, ag->filter)) return true;
  return sql_row_i64(row, ncols, ag->filter) == 0;
}

int sql_acc_add(const sql_agg_t *ag, uint8_t *acc, const uint8_t *row, int ncols, int dir) {
  if (filtered_out(ag, row, ncols)) return FL_OK;
  if (ag->kind == AGG_COUNT_STAR) {
    st64(acc, ld64(acc) + dir);
    return FL_OK;
  }
  if (ag->kind == AGG_UDAF) {
    fl_sql_value_t args[32];
    sql_val_t v;
    bool all_null = true;
    for (int i = 0; i < ag->nargs && i < 32; i++) {
      const sql_type_t *t = ag->udaf->arg_types[i];
      sql_read_col(row, ncols, ag->args[i], t, &v);
      if (!v.null) all_null = false;
      sql_values_to_public(&t, &v, 1, &args[i]);
    }
    if (all_null && ag->nargs) return FL_OK;
    const fl_sql_aggregate_fn_t *f = &ag->udaf->agg;
    if (dir > 0) return f->accumulate(acc, args, (size_t)ag->nargs, ag->udaf->opaque);
    return f->retract(acc, args, (size_t)ag->nargs, ag->udaf->opaque);
  }
  const sql_type_t *t = ag->arg_type;
  sql_val_t v;
  sql_read_col(row, ncols, ag->arg, t, &v);
  if (v.null) return FL_OK;
  switch (ag->kind) {
  case AGG_COUNT: st64(acc, ld64(acc) + dir); break;
  case AGG_SUM:
  case AGG_SUM0:
  case AGG_AVG:
    if (sql_type_is_approx(t))
      std_(acc, ldd(acc) + dir * v.d);
    else if (t->kind == T_DECIMAL)
      st128(acc, ld128(acc) + dir * v.dec);
    else
      st64(acc, (int64_t)((uint64_t)ld64(acc) + (uint64_t)(dir * v.i)));
    st64(acc + 16, ld64(acc + 16) + dir);
    break;
  case AGG_MIN:
  case AGG_MAX: {
    bool has = ld64(acc + 16) != 0;
    sql_val_t cur = {0};
    if (has) slot_load(t, acc, &cur);
    int c = has ? sql_val_cmp(t, &v, &cur) : 0;
    if (!has || (ag->kind == AGG_MIN ? c < 0 : c > 0)) {
      slot_store(t, acc, &v);
      st64(acc + 16, 1);
    }
    break;
  }
  case AGG_FIRST_VALUE:
  case AGG_LAST_VALUE:
    if (ag->kind == AGG_FIRST_VALUE && ld64(acc + 16)) break;
    slot_store(t, acc, &v);
    st64(acc + 16, 1);
    break;
  default: { /* Welford: count, mean, m2 */
    double x = as_double(t, &v), n = ldd(acc), mean = ldd(acc + 8), m2 = ldd(acc + 16);
    if (dir > 0) {
      n += 1;
      double d = x - mean;
      mean += d / n;
      m2 += d * (x - mean);
    } else if (n <= 1) {
      n = 0;
      mean = 0;
      m2 = 0;
    } else {
      double d = x - mean;
      mean = (n * mean - x) / (n - 1);
      n -= 1;
      m2 -= d * (x - mean);
      if (m2 < 0) m2 = 0;
    }
    std_(acc, n);
    std_(acc + 8, mean);
    std_(acc + 16, m2);
    break;
  }
  }
  return FL_OK;
}

void sql_acc_merge(const sql_agg_t *ag, uint8_t *acc, const uint8_t *o) {
  const sql_type_t *t = ag->arg_type;
  switch (ag->kind) {
  case AGG_COUNT_STAR:
  case AGG_COUNT: st64(acc, ld64(acc) + ld64(o)); break;
  case AGG_SUM:
  case AGG_SUM0:
  case AGG_AVG:
    if (sql_type_is_approx(t))
      std_(acc, ldd(acc) + ldd(o));
    else if (t->kind == T_DECIMAL)
      st128(acc, ld128(acc) + ld128(o));
    else
      st64(acc, (int64_t)((uint64_t)ld64(acc) + (uint64_t)ld64(o)));
    st64(acc + 16, ld64(acc + 16) + ld64(o + 16));
    break;
  case AGG_MIN:
  case AGG_MAX: {
    if (!ld64(o + 16)) break;
    if (!ld64(acc + 16)) {
      memcpy(acc, o, 24);
      break;
    }
    sql_val_t a = {0}, b = {0};
    if (sql_type_is_approx(t))
      a.d = ldd(acc), b.d = ldd(o);
    else if (t->kind == T_DECIMAL)
      a.dec = ld128(acc), b.dec = ld128(o);
    else
      a.i = ld64(acc), b.i = ld64(o);
    int c = sql_val_cmp(t, &b, &a);
    if (ag->kind == AGG_MIN ? c < 0 : c > 0) memcpy(acc, o, 24);
    break;
  }
  case AGG_FIRST_VALUE:
    if (!ld64(acc + 16)) memcpy(acc, o, 24);
    break;
  case AGG_LAST_VALUE:
    if (ld64(o + 16)) memcpy(acc, o, 24);
    break;
  case AGG_UDAF:
    if (ag->udaf->agg.merge) ag->udaf->agg.merge(acc, o, ag->udaf->opaque);
    break;
  default: { /* Chan's parallel variance */
    double na = ldd(acc), nb = ldd(o);
    if (nb == 0) break;
    if (na == 0) {
      memcpy(acc, o, 24);
      break;
    }
    double ma = ldd(acc + 8), mb = ldd(o + 8), n = na + nb, d = mb - ma;
    std_(acc, n);
    std_(acc + 8, ma + d * nb / n);
    std_(acc + 16, ldd(acc + 16) + ldd(o + 16) + d * d * na * nb / n);
    break;
  }
  }
}

int sql_acc_result(const sql_agg_t *ag, const uint8_t *acc, sql_eval_t *ev, sql_val_t *out) {
  const sql_type_t *t = ag->arg_type;
  out->null = false;
  out->dec = 0;
  switch (ag->kind) {
  case AGG_COUNT_STAR:
  case AGG_COUNT: out->i = ld64(acc); return FL_OK;
  case AGG_SUM:
  case AGG_SUM0: {
    int64_t n = ld64(acc + 16);
    if (n == 0 && ag->kind == AGG_SUM) {
      out->null = true;
      return FL_OK;
    }
    if (sql_type_is_approx(t))
      out->d = ldd(acc);
    else if (t->kind == T_DECIMAL)
      out->dec = ld128(acc);
    else
      out->i = sql_wrap_int(ag->type, ld64(acc));
    return FL_OK;
  }
  case AGG_AVG: {
    int64_t n = ld64(acc + 16);
    if (n == 0) {
      out->null = true;
      return FL_OK;
    }
    if (sql_type_is_approx(t)) {
      out->d = ldd(acc) / (double)n;
    } else if (t->kind == T_DECIMAL) {
      sql_i128 s = sql_dec_rescale(ld128(acc), t->scale, ag->type->scale + 1) / n;
      out->dec = sql_dec_rescale(s, 1, 0);
    } else {
      out->i = ld64(acc) / n;
    }
    return FL_OK;
  }
  case AGG_MIN:
  case AGG_MAX:
  case AGG_FIRST_VALUE:
  case AGG_LAST_VALUE:
    if (!ld64(acc + 16)) {
      out->null = true;
      return FL_OK;
    }
    slot_load(t, acc, out);
    return FL_OK;
  case AGG_UDAF: {
    fl_sql_value_t v;
    memset(&v, 0, sizeof v);
    int rc = ag->udaf->agg.get_value(acc, &v, ag->udaf->opaque);
    if (rc < 0) return rc;
    return sql_value_from_public(ev, ag->type, &v, out);
  }
  default: {
    double n = ldd(acc), m2 = ldd(acc + 16);
    bool samp = ag->kind == AGG_STDDEV_SAMP || ag->kind == AGG_VAR_SAMP;
    if (n == 0 || (samp && n < 2)) {
      out->null = true;
      return FL_OK;
    }
    double var = m2 / (samp ? n - 1 : n);
    out->d = ag->kind == AGG_STDDEV_POP || ag->kind == AGG_STDDEV_SAMP ? sqrt(var) : var;
    return FL_OK;
  }
  }
}

/* ---------------------------------------------------------------------------------- */
/* Over a list of rows                                                                */

typedef struct vsort {
  const sql_type_t *t;
} vsort_t;
static _Thread_local const sql_type_t *sort_type;
static int cmp_vals(const void *a, const void *b) {
  return sql_val_cmp(sort_type, (const sql_val_t *)a, (const sql_val_t *)b);
}

int sql_agg_rows(const sql_agg_t *ag, const fl_record_t *rows, size_t n, int ncols, sql_eval_t *ev,
                 sql_val_t *out) {
  const sql_type_t *t = ag->arg_type;
  bool var = t && sql_type_in_var(t) && t->kind != T_DECIMAL;
  if (!ag->distinct && !var) {
    uint8_t accbuf[256];
    uint8_t *acc = ag->acc_size <= sizeof accbuf ? accbuf : malloc(ag->acc_size);
    if (!acc) return FL_ENOMEM;
    sql_acc_init(ag, acc);
    int rc = FL_OK;
    for (size_t i = 0; i < n && rc == FL_OK; i++)
      rc = sql_acc_add(ag, acc, rows[i].value, ncols, 1);
    if (rc == FL_OK) rc = sql_acc_result(ag, acc, ev, out);
    if (acc != accbuf) free(acc);
    return rc;
  }
  /* the non-NULL, unfiltered values */
  sql_val_t *vals = malloc(sizeof(sql_val_t) * (n ? n : 1));
  if (!vals) return FL_ENOMEM;
  size_t k = 0;
  for (size_t i = 0; i < n; i++) {
    const uint8_t *row = rows[i].value;
    if (filtered_out(ag, row, ncols)) continue;
    if (ag->kind == AGG_COUNT_STAR) {
      vals[k++].i = 0;
      continue;
    }
    sql_read_col(row, ncols, ag->arg, t, &vals[k]);
    if (!vals[k].null) k++;
  }
  if (ag->distinct && k > 1 && ag->kind != AGG_COUNT_STAR) {
    sort_type = t;
    qsort(vals, k, sizeof *vals, cmp_vals);
    size_t u = 1;
    for (size_t i = 1; i < k; i++)
      if (sql_val_cmp(t, &vals[i], &vals[u - 1]) != 0) vals[u++] = vals[i];
    k = u;
  }
  int rc = FL_OK;
  out->null = false;
  out->dec = 0;
  switch (ag->kind) {
  case AGG_COUNT_STAR:
  case AGG_COUNT: out->i = (int64_t)k; break;
  case AGG_MIN:
  case AGG_MAX:
  case AGG_FIRST_VALUE:
  case AGG_LAST_VALUE: {
    if (k == 0) {
      out->null = true;
      break;
    }
    size_t best = ag->kind == AGG_LAST_VALUE ? k - 1 : 0;
    if (ag->kind == AGG_MIN || ag->kind == AGG_MAX) {
      for (size_t i = 1; i < k; i++) {
        int c = sql_val_cmp(t, &vals[i], &vals[best]);
        if (ag->kind == AGG_MIN ? c < 0 : c > 0) best = i;
      }
    }
    *out = vals[best];
    break;
  }
  default: {
    /* SUM, AVG, ... of the distinct values: through an accumulator */
    uint8_t acc[64];
    sql_agg_t plain = *ag;
    plain.distinct = false;
    plain.filter = -1;
    plain.arg = 0;
    sql_acc_init(&plain, acc);
    sql_rb_t rb = {0};
    for (size_t i = 0; i < k && rc == FL_OK; i++) {
      sql_rb_begin(&rb, 1);
      sql_write_col(&rb, 0, t, &vals[i]);
      size_t len;
      const uint8_t *row = sql_rb_finish(&rb, &len);
      rc = row ? sql_acc_add(&plain, acc, row, 1, 1) : FL_ENOMEM;
    }
    sql_rb_free(&rb);
    if (rc == FL_OK) rc = sql_acc_result(&plain, acc, ev, out);
    break;
  }
  }
  free(vals);
  return rc;
}
