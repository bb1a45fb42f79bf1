/*
 * The datagen connector, with Flink's options: 'rows-per-second' (default 10000, per
 * job, spread over the subtasks), 'number-of-rows' (default unbounded), and per field
 * 'fields.<name>.kind' random | sequence, '.min' / '.max' (numbers), '.length' (strings,
 * default 100), '.start' / '.end' (sequences), '.null-rate', '.max-past' (timestamps:
 * random times up to that far before now). A sequence field makes the source bounded by
 * its length. Rows are split over parallel subtasks: subtask s of P makes rows s, s+P, ...
 * Random values are a function of (field, row number), so a bounded run is the same
 * every time.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sql/exec.h"

static const char *const datagen_options[] = {"rows-per-second", "number-of-rows", "fields.", NULL};

typedef struct dg_field {
  bool sequence;
  int64_t start, end;
  double min, max;
  int64_t length;
  double null_rate;
  int64_t max_past;
} dg_field_t;

typedef struct dg_op {
  sql_opbase_t base;
  const sql_table_t *t;
  sql_phys_t phys;
  dg_field_t *f;
  int64_t rows; /* -1: unbounded */
  int64_t rate;
} dg_op_t;

static const char *field_opt(const sql_table_t *t, const char *field, const char *what) {
  char key[256];
  snprintf(key, sizeof key, "fields.%s.%s", field, what);
  return sql_table_option(t, key);
}

static int dg_check(sql_catalog_t *cat, const sql_table_t *t, bool source, char *err, size_t n) {
  for (int i = 0; i < t->nopts; i++) {
    const char *k = t->opts[i].key;
    if (strncmp(k, "fields.", 7)) continue;
    const char *dot = strrchr(k + 7, '.');
    if (!dot) goto bad;
    bool found = false;
    for (int c = 0; c < t->ncols; c++)
      if (strlen(t->cols[c].name) == (size_t)(dot - (k + 7)) &&
          !strncmp(t->cols[c].name, k + 7, (size_t)(dot - (k + 7))))
        found = true;
    if (!found) {
      if (err) snprintf(err, n, "table '%s': option '%s' names no column", t->name, k);
      return FL_EINVAL;
    }
    static const char *const known[] = {"kind", "min",       "max",      "length", "start",
                                        "end",  "null-rate", "max-past", NULL};
    bool ok = false;
    for (int j = 0; known[j]; j++) ok = ok || !strcmp(dot + 1, known[j]);
    if (!ok) goto bad;
    continue;
  bad:
    if (err) snprintf(err, n, "table '%s': unsupported datagen option '%s'", t->name, k);
    return FL_EINVAL;
  }
  return FL_OK;
}

static uint64_t mix(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

typedef struct dg_inst {
  const dg_op_t *op;
  int64_t next; /* the next row number of this subtask */
  int step;
  int64_t started_ms, emitted;
  sql_rb_t rb;
  char *sbuf;
} dg_inst_t;

static int dg_open(fl_context_t *ctx, void *opaque, void **instance) {
  dg_inst_t *di = calloc(1, sizeof *di);
  if (!di) return FL_ENOMEM;
  di->op = opaque;
  di->next = fl_ctx_subtask(ctx);
  di->step = fl_ctx_parallelism(ctx);
  di->started_ms = fl_ctx_processing_time(ctx);
  size_t need = 64;
  for (int k = 0; k < di->op->phys.n; k++)
    need += (size_t)(di->op->f[k].length > 32 ? di->op->f[k].length : 32);
  di->sbuf = malloc(need);
  if (!di->sbuf) {
    free(di);
    return FL_ENOMEM;
  }
  *instance = di;
  return FL_OK;
}

static void dg_close(void *instance) {
  dg_inst_t *di = instance;
  sql_rb_free(&di->rb);
  free(di->sbuf);
  free(di);
}

static int dg_row(fl_context_t *ctx, dg_inst_t *di, int64_t rown) {
  const dg_op_t *op = di->op;
  const sql_table_t *t = op->t;
  sql_rb_begin(&di->rb, t->ncols);
  for (int i = 0; i < t->ncols; i++) sql_rb_set_null(&di->rb, i);
  size_t sused = 0;
  for (int k = 0; k < op->phys.n; k++) {
    const dg_field_t *f = &op->f[k];
    const sql_type_t *ty = op->phys.types[k];
    uint64_t r =
        mix((uint64_t)rown * 0x9E3779B97F4A7C15ull + (uint64_t)k * 0xD1B54A32D192ED03ull + 1);
    double u = (double)(r >> 11) * 0x1.0p-53;
    sql_val_t v = {0};
    if (f->null_rate > 0 && (double)(mix(r) >> 11) * 0x1.0p-53 < f->null_rate) {
      v.null = true;
    } else if (f->sequence) {
      int64_t s = f->start + rown;
      if (sql_type_is_string(ty)) {
        int len = snprintf(di->sbuf + sused, 32, "%lld", (long long)s);
        v.s.p = di->sbuf + sused;
        v.s.n = (size_t)len;
        sused += (size_t)len;
      } else if (sql_type_is_approx(ty)) {
        v.d = (double)s;
      } else if (ty->kind == T_DECIMAL) {
        v.dec = (sql_i128)s * sql_pow10(ty->scale);
      } else {
        v.i = s;
      }
    } else {
      switch (ty->kind) {
      case T_BOOLEAN: v.i = r & 1; break;
      case T_TINYINT:
      case T_SMALLINT:
      case T_INT:
      case T_BIGINT: v.i = (int64_t)(f->min + (double)(r % (uint64_t)(f->max - f->min + 1))); break;
      case T_FLOAT:
      case T_DOUBLE: v.d = f->min + u * (f->max - f->min); break;
      case T_DECIMAL: {
        double d = f->min + u * (f->max - f->min);
        v.dec = (sql_i128)(d * (double)sql_pow10(ty->scale));
        break;
      }
      case T_CHAR:
      case T_VARCHAR: {
        int64_t len = ty->kind == T_CHAR ? ty->precision : f->length;
        if (ty->kind == T_VARCHAR && len > ty->precision) len = ty->precision;
        for (int64_t j = 0; j < len; j++) {
          r = mix(r + (uint64_t)j);
          di->sbuf[sused + (size_t)j] = "0123456789abcdef"[r & 15];
        }
        v.s.p = di->sbuf + sused;
        v.s.n = (size_t)len;
        sused += (size_t)len;
        break;
      }
      case T_DATE: v.i = sql_floor_div(fl_ctx_processing_time(ctx), 86400000); break;
      case T_TIME: v.i = sql_floor_mod(fl_ctx_processing_time(ctx), 86400000); break;
      case T_TIMESTAMP:
      case T_TIMESTAMP_LTZ:
        v.i = fl_ctx_processing_time(ctx) -
              (f->max_past > 0 ? (int64_t)(r % (uint64_t)f->max_past) : 0);
        break;
      default: v.null = true; break;
      }
    }
    sql_write_col(&di->rb, op->phys.cols[k], ty, &v);
  }
  size_t len;
  const uint8_t *row = sql_rb_finish(&di->rb, &len);
  if (!row) return FL_ENOMEM;
  return fl_emit(ctx, NULL, 0, row, len, FL_TS_NONE);
}

static int dg_run(fl_context_t *ctx, void *instance) {
  dg_inst_t *di = instance;
  const dg_op_t *op = di->op;
  size_t budget = fl_ctx_source_budget(ctx);
  if (op->rate > 0) {
    /* this subtask's share of rows-per-second */
    double share = (double)op->rate / di->step;
    int64_t elapsed = fl_ctx_processing_time(ctx) - di->started_ms;
    int64_t allowed = (int64_t)(share * (double)(elapsed + 1) / 1000.0) + 1 - di->emitted;
    if (allowed <= 0) return FL_SOURCE_WAIT;
    if ((int64_t)budget > allowed) budget = (size_t)allowed;
  }
  for (size_t i = 0; i < budget; i++) {
    if (op->rows >= 0 && di->next >= op->rows) return FL_SOURCE_END;
    int rc = dg_row(ctx, di, di->next);
    if (rc) return rc;
    di->next += di->step;
    di->emitted++;
  }
  return FL_SOURCE_MORE;
}

static const fl_source_fn_t dg_fn = {.version = FL_SOURCE_FN_VERSION,
                                     .open = dg_open,
                                     .run = dg_run,
                                     .close = dg_close,
                                     .destroy = sql_op_release};

static fl_stream_t *dg_source(sql_exec_t *x, const sql_table_t *t) {
  dg_op_t *op = sql_op_new(x->sh, sizeof *op);
  if (!op) return NULL;
  op->t = t;
  if (sql_table_phys(x->a, t, &op->phys) != FL_OK) {
    sql_op_release(op);
    return NULL;
  }
  op->f = sql_arena_alloc(x->a, sizeof(dg_field_t) * (size_t)(op->phys.n + 1));
  if (!op->f) {
    sql_op_release(op);
    return NULL;
  }
  const char *v = sql_table_option(t, "number-of-rows");
  op->rows = v ? strtoll(v, NULL, 10) : -1;
  v = sql_table_option(t, "rows-per-second");
  op->rate = v ? strtoll(v, NULL, 10) : 10000;
  for (int k = 0; k < op->phys.n; k++) {
    dg_field_t *f = &op->f[k];
    const char *name = op->phys.names[k];
    const char *kind = field_opt(t, name, "kind");
    f->sequence = kind && !strcmp(kind, "sequence");
    f->min = (v = field_opt(t, name, "min")) ? atof(v) : 0;
    f->max = (v = field_opt(t, name, "max"))
                 ? atof(v)
                 : (sql_type_is_integer(op->phys.types[k]) ? 2147483647.0 : 1.0e9);
    f->length = (v = field_opt(t, name, "length")) ? strtoll(v, NULL, 10) : 100;
    f->start = (v = field_opt(t, name, "start")) ? strtoll(v, NULL, 10) : 0;
    f->end = (v = field_opt(t, name, "end")) ? strtoll(v, NULL, 10) : INT64_MAX - 1;
    f->null_rate = (v = field_opt(t, name, "null-rate")) ? atof(v) : 0;
    f->max_past =
        (v = field_opt(t, name, "max-past")) && fl_parse_duration(v, &f->max_past) == FL_OK
            ? f->max_past
            : 0;
    if (f->sequence) {
      int64_t len = f->end - f->start + 1;
      if (op->rows < 0 || len < op->rows) op->rows = len;
    }
  }
  fl_stream_t *s = fl_source(x->env, sql_exec_name(x, t->name), &dg_fn, op, 1);
  return sql_table_finish(x, t, s);
}

const sql_connector_t sql_conn_datagen = {
    .name = "datagen", .options = datagen_options, .check = dg_check, .source = dg_source};
