/*
 * Connectors (exec.h): the registry, option checks, and what every source shares:
 * the json format's options, completing rows with computed columns and the row time,
 * and the table's watermark strategy.
 *
 * Watermarks: WATERMARK FOR t AS t - INTERVAL 'd' is Flink's bounded delay: the
 * watermark is the largest t seen minus d (fl_watermark_strategy_t's bounded
 * out-of-orderness of d - 1 ms, whose watermark is max - (d - 1) - 1). WATERMARK FOR t AS
 * t (no delay) is emitted as max - 1 ms: Flink emits max itself, so a row exactly at a
 * window's last millisecond closes that window here one row later.
 * table.exec.source.idle-timeout marks a source split idle as in Flink.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "sql/bind_int.h"
#include "sql/exec.h"

static const sql_connector_t *const connectors[] = {&sql_conn_kafka,     &sql_conn_filesystem,
                                                    &sql_conn_datagen,   &sql_conn_print,
                                                    &sql_conn_blackhole, &sql_conn_nexmark};

const sql_connector_t *sql_connector_find(const char *name) {
  if (!name) return NULL;
  for (size_t i = 0; i < sizeof connectors / sizeof *connectors; i++)
    if (strcmp(connectors[i]->name, name) == 0) return connectors[i];
  return NULL;
}

static bool option_known(const sql_connector_t *c, const char *key) {
  if (!strcmp(key, "connector")) return true;
  for (int i = 0; c->options[i]; i++) {
    size_t n = strlen(c->options[i]);
    if (n && c->options[i][n - 1] == '.') {
      if (strncmp(key, c->options[i], n) == 0 && key[n]) return true;
    } else if (!strcmp(key, c->options[i])) {
      return true;
    }
  }
  return false;
}

static const char *const json_options[] = {
    "json.fail-on-missing-field",          "json.ignore-parse-errors",
    "json.timestamp-format.standard",      "json.encode.ignore-null-fields",
    "json.encode.decimal-as-plain-number", "json.map-null-key.mode",
    "json.map-null-key.literal",           NULL};

static bool json_option(const char *key) {
  const char *k = key;
  if (!strncmp(k, "value.", 6)) k += 6;
  for (int i = 0; json_options[i]; i++)
    if (!strcmp(k, json_options[i])) return true;
  return false;
}

int sql_connector_validate(sql_catalog_t *cat, const sql_table_t *t, char *err, size_t n) {
  sql_pos_t pos = t->nopts ? t->opts[0].pos : (sql_pos_t){1, 1};
  if (!t->connector) {
    sql_error_at(err, n, pos, "table '%s' has no 'connector' option", t->name);
    return FL_EINVAL;
  }
  const sql_connector_t *c = sql_connector_find(t->connector);
  if (!c) {
    const char *names[8];
    int k = 0;
    for (size_t i = 0; i < sizeof connectors / sizeof *connectors; i++)
      names[k++] = connectors[i]->name;
    const char *near = sql_nearest(t->connector, names, k);
    for (int i = 0; i < t->nopts; i++)
      if (!strcmp(t->opts[i].key, "connector")) pos = t->opts[i].pos;
    sql_error_at(
        err, n, pos,
        "unknown connector '%s'%s%s%s (kafka, filesystem, datagen, print, blackhole, nexmark)",
        t->connector, near ? "; did you mean '" : "", near ? near : "", near ? "'?" : "");
    return FL_EINVAL;
  }
  for (int i = 0; i < t->nopts; i++) {
    const char *key = t->opts[i].key;
    if (option_known(c, key) || json_option(key)) continue;
    const char *names[64];
    int k = 0;
    for (int j = 0; c->options[j] && k < 56; j++) names[k++] = c->options[j];
    for (int j = 0; json_options[j] && k < 64; j++) names[k++] = json_options[j];
    const char *near = sql_nearest(key, names, k);
    sql_error_at(err, n, t->opts[i].pos, "unsupported option '%s' for connector '%s'%s%s%s", key,
                 c->name, near ? "; did you mean '" : "", near ? near : "", near ? "'?" : "");
    return FL_EINVAL;
  }
  const char *fmt = sql_table_option(t, "format");
  if (!fmt) fmt = sql_table_option(t, "value.format");
  if (fmt && strcmp(fmt, "json") != 0) {
    for (int i = 0; i < t->nopts; i++)
      if (!strcmp(t->opts[i].key, "format") || !strcmp(t->opts[i].key, "value.format"))
        pos = t->opts[i].pos;
    sql_error_at(err, n, pos, "unsupported format '%s' (supported: json)", fmt);
    return FL_ENOTSUP;
  }
  return FL_OK;
}

int sql_connector_check_use(sql_catalog_t *cat, const sql_table_t *t, bool source, char *err,
                            size_t n) {
  if (t->stream) {
    if (!source) {
      snprintf(err, n, "table '%s' is a DataStream and cannot be written to", t->name);
      return FL_EINVAL;
    }
    return FL_OK;
  }
  const sql_connector_t *c = sql_connector_find(t->connector);
  if (!c) {
    snprintf(err, n, "table '%s': unknown connector", t->name);
    return FL_EINVAL;
  }
  if (source && !c->source) {
    snprintf(err, n, "table '%s' (connector '%s') can only be written to", t->name, c->name);
    return FL_EINVAL;
  }
  if (!source && !c->sink) {
    snprintf(err, n, "table '%s' (connector '%s') can only be read", t->name, c->name);
    return FL_EINVAL;
  }
  return c->check ? c->check(cat, t, source, err, n) : FL_OK;
}

int sql_table_phys(sql_arena_t *a, const sql_table_t *t, sql_phys_t *out) {
  int n = 0;
  for (int i = 0; i < t->ncols; i++)
    if (t->cols[i].kind == SQL_COL_PHYSICAL) n++;
  out->n = n;
  out->names = sql_arena_alloc(a, sizeof(char *) * (size_t)(n + 1));
  out->types = sql_arena_alloc(a, sizeof(sql_type_t *) * (size_t)(n + 1));
  out->cols = sql_arena_alloc(a, sizeof(int) * (size_t)(n + 1));
  if (!out->names || !out->types || !out->cols) return FL_ENOMEM;
  int k = 0;
  for (int i = 0; i < t->ncols; i++) {
    if (t->cols[i].kind != SQL_COL_PHYSICAL) continue;
    out->names[k] = t->cols[i].name;
    out->types[k] = t->cols[i].type;
    out->cols[k] = i;
    k++;
  }
  return FL_OK;
}

void sql_rb_spread_phys(sql_rb_t *rb, const sql_table_t *t, const sql_phys_t *phys,
                        const uint8_t *row) {
  sql_rb_begin(rb, t->ncols);
  for (int i = 0; i < t->ncols; i++) sql_rb_set_null(rb, i);
  for (int k = 0; k < phys->n; k++) {
    sql_val_t v;
    sql_read_col(row, phys->n, k, phys->types[k], &v);
    sql_write_col(rb, phys->cols[k], phys->types[k], &v);
  }
}

static const char *fmt_opt(const sql_table_t *t, const char *key) {
  const char *v = sql_table_option(t, key);
  if (!v) {
    char k2[96];
    snprintf(k2, sizeof k2, "value.%s", key);
    v = sql_table_option(t, k2);
  }
  return v;
}

static int bool_opt(const sql_table_t *t, const char *key, bool def, bool *out, char *err,
                    size_t n) {
  const char *v = fmt_opt(t, key);
  if (!v) {
    *out = def;
    return FL_OK;
  }
  if (!strcasecmp(v, "true"))
    *out = true;
  else if (!strcasecmp(v, "false"))
    *out = false;
  else {
    snprintf(err, n, "table '%s': option '%s' must be 'true' or 'false', not '%s'", t->name, key,
             v);
    return FL_EINVAL;
  }
  return FL_OK;
}

int sql_json_fmt_of(sql_arena_t *a, const sql_table_t *t, const sql_phys_t *cols,
                    const sql_session_t *sess, sql_json_fmt_t *out, char *err, size_t n) {
  memset(out, 0, sizeof *out);
  out->n = cols->n;
  out->names = cols->names;
  out->types = cols->types;
  out->sess = sess;
  int rc;
  if ((rc = bool_opt(t, "json.fail-on-missing-field", false, &out->fail_on_missing, err, n)))
    return rc;
  if ((rc = bool_opt(t, "json.ignore-parse-errors", false, &out->ignore_parse_errors, err, n)))
    return rc;
  if ((rc = bool_opt(t, "json.encode.ignore-null-fields", false, &out->ignore_null_fields, err, n)))
    return rc;
  if (out->fail_on_missing && out->ignore_parse_errors) {
    snprintf(
        err, n,
        "table '%s': json.fail-on-missing-field and json.ignore-parse-errors cannot both be true",
        t->name);
    return FL_EINVAL;
  }
  const char *std = fmt_opt(t, "json.timestamp-format.standard");
  if (std && strcmp(std, "SQL") && strcmp(std, "ISO-8601")) {
    snprintf(err, n,
             "table '%s': json.timestamp-format.standard must be 'SQL' or 'ISO-8601', not '%s'",
             t->name, std);
    return FL_EINVAL;
  }
  out->iso8601 = std && !strcmp(std, "ISO-8601");
  return FL_OK;
}

/* ---------------------------------------------------------------------------------- */
/* Completing rows                                                                    */

int sql_rowfin_init(sql_exec_t *x, const sql_table_t *t, sql_rowfin_t *out) {
  memset(out, 0, sizeof *out);
  out->t = t;
  out->sess = x->sess;
  out->computed = sql_arena_alloc(x->a, sizeof(sql_x_t *) * (size_t)(t->ncols + 1));
  if (!out->computed) return FL_ENOMEM;
  sql_scope_col_t *scope = sql_arena_alloc(x->a, sizeof(sql_scope_col_t) * (size_t)(t->ncols + 1));
  if (!scope) return FL_ENOMEM;
  int ns = 0;
  for (int i = 0; i < t->ncols; i++) {
    if (t->cols[i].kind == SQL_COL_COMPUTED) continue;
    scope[ns].name = t->cols[i].name;
    scope[ns].type = t->cols[i].type;
    scope[ns].col = i;
    ns++;
  }
  for (int i = 0; i < t->ncols; i++) {
    const sql_column_t *c = &t->cols[i];
    if (c->kind != SQL_COL_COMPUTED) continue;
    sql_binder_t b = {.a = x->a,
                      .src = t->src,
                      .cols = scope,
                      .ncols = ns,
                      .cat = x->cat,
                      .sess = x->sess,
                      .clause = "a computed column",
                      .err = x->err,
                      .err_size = x->err_size};
    x->err[0] = 0;
    sql_x_t *e = sql_bind(&b, c->expr);
    if (!e) return sql_exec_fail(x, FL_EINVAL, "%s", x->err);
    e = sql_x_cast(x->a, e, c->type, false);
    if (!e) return FL_ENOMEM;
    out->computed[i] = e;
    out->ncomputed++;
  }
  return FL_OK;
}

void sql_rowfin_state_init(sql_rowfin_state_t *st, const sql_rowfin_t *f) {
  memset(st, 0, sizeof *st);
  sql_eval_init(&st->ev, f->sess);
  st->vals = calloc((size_t)f->t->ncols + 1, sizeof(sql_val_t));
}

void sql_rowfin_state_free(sql_rowfin_state_t *st) {
  sql_eval_free(&st->ev);
  sql_rb_free(&st->rb);
  free(st->vals);
  memset(st, 0, sizeof *st);
}

int sql_rowfin_apply(const sql_rowfin_t *f, sql_rowfin_state_t *st, fl_context_t *ctx,
                     const uint8_t *row, size_t len, const uint8_t **out, size_t *out_len,
                     int64_t *ts) {
  const sql_table_t *t = f->t;
  *out = row;
  *out_len = len;
  if (f->ncomputed) {
    if (!st->vals) return FL_ENOMEM;
    sql_eval_t *ev = &st->ev;
    sql_scratch_reset(&ev->scratch);
    ev->ctx = ctx;
    ev->rows[0] = row;
    ev->ncols[0] = t->ncols;
    for (int i = 0; i < t->ncols; i++) {
      if (f->computed[i]) {
        if (t->cols[i].proctime) {
          st->vals[i].null = false;
          st->vals[i].i = ctx ? fl_ctx_processing_time(ctx) : 0;
          continue;
        }
        int rc = sql_eval(ev, f->computed[i], &st->vals[i]);
        if (rc) return rc;
      } else if (t->cols[i].proctime) {
        st->vals[i].null = false;
        st->vals[i].i = ctx ? fl_ctx_processing_time(ctx) : 0;
      } else {
        sql_read_col(row, t->ncols, i, t->cols[i].type, &st->vals[i]);
      }
    }
    sql_rb_begin(&st->rb, t->ncols);
    for (int i = 0; i < t->ncols; i++) sql_write_col(&st->rb, i, t->cols[i].type, &st->vals[i]);
    *out = sql_rb_finish(&st->rb, out_len);
    if (!*out) return FL_ENOMEM;
  }
  *ts = FL_TS_NONE;
  if (t->rowtime >= 0 && t->wm != SQL_WM_SOURCE) {
    if (sql_row_null(*out, t->rowtime)) {
      snprintf(st->ev.err, sizeof st->ev.err, "the row time '%s' is NULL",
               t->cols[t->rowtime].name);
      return FL_EPARSE;
    }
    *ts = sql_row_i64(*out, t->ncols, t->rowtime);
  }
  return FL_OK;
}

void sql_table_watermarks(sql_exec_t *x, const sql_table_t *t, fl_watermark_strategy_t *ws) {
  memset(ws, 0, sizeof *ws);
  ws->version = FL_WATERMARK_STRATEGY_VERSION;
  if (t->wm_delay_ms > 0) {
    ws->kind = FL_WATERMARKS_BOUNDED;
    ws->max_out_of_orderness_ms = t->wm_delay_ms - 1;
  } else {
    ws->kind = FL_WATERMARKS_MONOTONOUS;
  }
  for (size_t i = 0; i < x->cat->nsettings; i++) {
    if (!strcmp(x->cat->settings[i].key, "table.exec.source.idle-timeout")) {
      int64_t ms;
      if (fl_parse_duration(x->cat->settings[i].value, &ms) == FL_OK) ws->idle_timeout_ms = ms;
    }
  }
}

/* ---------------------------------------------------------------------------------- */
/* Finishing a stream of rows                                                         */

typedef struct fin_op {
  sql_opbase_t base;
  sql_rowfin_t fin;
  const char *name;
  bool from_stream; /* rows of a registered DataStream: checked, metadata filled */
  sql_phys_t phys;
  int meta_rowtime; /* column of METADATA 'rowtime', -1 */
} fin_op_t;

typedef struct fin_inst {
  const fin_op_t *op;
  sql_rowfin_state_t st;
  sql_rb_t rb;
} fin_inst_t;

static int fin_open(fl_context_t *ctx, void *opaque, void **instance) {
  fin_inst_t *fi = calloc(1, sizeof *fi);
  if (!fi) return FL_ENOMEM;
  fi->op = opaque;
  sql_rowfin_state_init(&fi->st, &fi->op->fin);
  *instance = fi;
  return FL_OK;
}

static void fin_close(void *instance) {
  fin_inst_t *fi = instance;
  sql_rowfin_state_free(&fi->st);
  sql_rb_free(&fi->rb);
  free(fi);
}

static int fin_process(fl_context_t *ctx, const fl_record_t *in, void *instance) {
  fin_inst_t *fi = instance;
  const fin_op_t *op = fi->op;
  const sql_table_t *t = op->fin.t;
  const uint8_t *row = in->value;
  size_t len = in->value_len;
  if (op->from_stream) {
    /* the user's row holds the physical columns: spread them over the table's columns */
    if (!sql_row_valid(row, len, op->phys.n, op->phys.types))
      return fl_ctx_fail(
          ctx, "table '%s': a record of %zu bytes is not a row of its %d physical columns", t->name,
          len, op->phys.n);
    sql_rb_spread_phys(&fi->rb, t, &op->phys, row);
    if (op->meta_rowtime >= 0) {
      sql_val_t v;
      if (in->timestamp == FL_TS_NONE) {
        v.null = true;
      } else {
        v.null = false;
        v.i = in->timestamp;
      }
      sql_write_col(&fi->rb, op->meta_rowtime, t->cols[op->meta_rowtime].type, &v);
    }
    row = sql_rb_finish(&fi->rb, &len);
    if (!row) return FL_ENOMEM;
  }
  const uint8_t *out;
  size_t out_len;
  int64_t ts;
  int rc = sql_rowfin_apply(&op->fin, &fi->st, ctx, row, len, &out, &out_len, &ts);
  if (rc) return sql_op_eval_fail(ctx, op->name, &fi->st.ev, rc);
  if (t->wm == SQL_WM_SOURCE || t->rowtime < 0) ts = in->timestamp;
  return fl_emit(ctx, NULL, 0, out, out_len, ts);
}

static const fl_process_fn_t fin_fn = {.version = FL_PROCESS_FN_VERSION,
                                       .open = fin_open,
                                       .process = fin_process,
                                       .close = fin_close,
                                       .destroy = sql_op_release};

fl_stream_t *sql_table_finish(sql_exec_t *x, const sql_table_t *t, fl_stream_t *rows) {
  fin_op_t *op = sql_op_new(x->sh, sizeof *op);
  if (!op) return NULL;
  if (sql_rowfin_init(x, t, &op->fin) != FL_OK || sql_table_phys(x->a, t, &op->phys) != FL_OK) {
    sql_op_release(op);
    return NULL;
  }
  op->name = sql_exec_name(x, t->name);
  op->from_stream = t->stream != NULL;
  op->meta_rowtime = -1;
  for (int i = 0; i < t->ncols; i++)
    if (t->cols[i].kind == SQL_COL_METADATA && !strcmp(t->cols[i].meta_key, "rowtime"))
      op->meta_rowtime = i;
  bool needed = op->from_stream || op->fin.ncomputed || t->rowtime >= 0;
  fl_stream_t *s = rows;
  if (needed) {
    s = fl_stream_process(rows, op->name, &fin_fn, op);
  } else {
    sql_op_release(op);
  }
  if (t->rowtime >= 0 && t->wm == SQL_WM_BOUNDED) {
    fl_watermark_strategy_t ws;
    sql_table_watermarks(x, t, &ws);
    s = fl_stream_assign_timestamps(s, sql_exec_name(x, "watermarks"), &ws);
  }
  return s;
}

/* ---------------------------------------------------------------------------------- */
/* JSON lines                                                                         */

typedef struct jl_op {
  sql_opbase_t base;
  const sql_table_t *t;
  sql_json_fmt_t fmt;
  sql_phys_t phys;
  const char *what;
  const char *name;
} jl_op_t;

typedef struct jl_inst {
  const jl_op_t *op;
  sql_json_state_t js;
  sql_rb_t rb;
  int64_t line;
} jl_inst_t;

static int jl_open(fl_context_t *ctx, void *opaque, void **instance) {
  jl_inst_t *ji = calloc(1, sizeof *ji);
  if (!ji) return FL_ENOMEM;
  ji->op = opaque;
  *instance = ji;
  return FL_OK;
}

static void jl_close(void *instance) {
  jl_inst_t *ji = instance;
  sql_json_state_free(&ji->js);
  sql_rb_free(&ji->rb);
  free(ji);
}

int sql_json_table_row(const sql_table_t *t, const sql_json_fmt_t *fmt, const sql_phys_t *phys,
                       sql_json_state_t *js, sql_rb_t *rb, const char *s, size_t n,
                       const uint8_t **row, size_t *len, char *err, size_t err_size) {
  const uint8_t *pr;
  size_t pl;
  int rc = sql_json_read(fmt, js, s, n, &pr, &pl, err, err_size);
  if (rc) return rc;
  if (phys->n == t->ncols) {
    *row = pr;
    *len = pl;
    return FL_OK;
  }
  sql_rb_spread_phys(rb, t, phys, pr);
  *row = sql_rb_finish(rb, len);
  return *row ? FL_OK : FL_ENOMEM;
}

static int jl_process(fl_context_t *ctx, const fl_record_t *in, void *instance) {
  jl_inst_t *ji = instance;
  const jl_op_t *op = ji->op;
  ji->line++;
  const char *s = in->value;
  size_t n = in->value_len;
  while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r')) n--;
  size_t i = 0;
  while (i < n && (s[i] == ' ' || s[i] == '\t')) i++;
  if (i == n) return FL_OK; /* blank lines are skipped */
  const uint8_t *row;
  size_t len;
  char err[256];
  int rc = sql_json_table_row(op->t, &op->fmt, &op->phys, &ji->js, &ji->rb, s, n, &row, &len, err,
                              sizeof err);
  if (rc == FL_EPARSE) {
    if (op->fmt.ignore_parse_errors) return fl_ctx_counter_add(ctx, "json-parse-errors-skipped", 1);
    return fl_ctx_fail(ctx, "table '%s': %s line %lld: %s", op->t->name, op->what,
                       (long long)ji->line, err);
  }
  if (rc) return rc;
  return fl_emit(ctx, NULL, 0, row, len, FL_TS_NONE);
}

static const fl_process_fn_t jl_fn = {.version = FL_PROCESS_FN_VERSION,
                                      .open = jl_open,
                                      .process = jl_process,
                                      .close = jl_close,
                                      .destroy = sql_op_release};

fl_stream_t *sql_json_lines_source(sql_exec_t *x, const sql_table_t *t, fl_stream_t *lines,
                                   const char *what) {
  jl_op_t *op = sql_op_new(x->sh, sizeof *op);
  if (!op) return NULL;
  op->t = t;
  op->what = what;
  op->name = sql_exec_name(x, "json");
  if (sql_table_phys(x->a, t, &op->phys) != FL_OK) {
    sql_op_release(op);
    return NULL;
  }
  if (sql_json_fmt_of(x->a, t, &op->phys, x->sess, &op->fmt, x->err, x->err_size) != FL_OK) {
    x->rc = FL_EINVAL;
    sql_op_release(op);
    return NULL;
  }
  fl_stream_t *rows = fl_stream_process(lines, op->name, &jl_fn, op);
  return sql_table_finish(x, t, rows);
}
