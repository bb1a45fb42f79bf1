/*
 * print and blackhole sinks. print writes each row as Flink's print connector does,
 * "+I[v1, v2, ...]" (values as CAST to STRING, NULL as null), prefixed by
 * "<print-identifier>> " when set, to stdout ('standard-error' = 'true': stderr), one
 * line per row, whole lines from every subtask. blackhole discards rows (the Nexmark
 * benchmark's sink).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sql/exec.h"

static const char *const print_options[] = {"print-identifier", "standard-error",
                                            "sink.parallelism", NULL};
static const char *const blackhole_options[] = {NULL};

typedef struct pr_op {
  sql_opbase_t base;
  sql_phys_t phys;
  const char *ident;
  const sql_session_t *sess;
} pr_op_t;

static void print_row(sql_strbuf_t *sb, int n, const sql_type_t *const *types, const uint8_t *row,
                      const sql_session_t *sess) {
  sql_sb_put(sb, "+I[", 3);
  for (int i = 0; i < n; i++) {
    if (i) sql_sb_put(sb, ", ", 2);
    sql_val_t v;
    sql_read_col(row, n, i, types[i], &v);
    if (v.null) {
      sql_sb_put(sb, "null", 4);
    } else if (types[i]->kind == T_BOOLEAN) {
      sql_sb_put(sb, v.i ? "true" : "false", v.i ? 4 : 5);
    } else {
      sql_sb_value(sb, types[i], &v, sess);
    }
  }
  sql_sb_putc(sb, ']');
}

static int pr_process(fl_context_t *ctx, const fl_record_t *in, void *instance) {
  sql_text_inst_t *pi = instance;
  const pr_op_t *op = pi->op;
  pi->sb.n = 0;
  if (op->ident) {
    sql_sb_put(&pi->sb, op->ident, strlen(op->ident));
    sql_sb_put(&pi->sb, "> ", 2);
  } else if (fl_ctx_parallelism(ctx) > 1) {
    sql_sb_printf(&pi->sb, "%d> ", fl_ctx_subtask(ctx) + 1);
  }
  print_row(&pi->sb, op->phys.n, op->phys.types, in->value, op->sess);
  if (pi->sb.failed) return FL_ENOMEM;
  return fl_emit(ctx, NULL, 0, pi->sb.p, pi->sb.n, in->timestamp);
}

static const fl_process_fn_t pr_fn = {.version = FL_PROCESS_FN_VERSION,
                                      .open = sql_text_inst_open,
                                      .process = pr_process,
                                      .close = sql_text_inst_close,
                                      .destroy = sql_op_release};

static int print_sink(sql_exec_t *x, const sql_table_t *t, fl_stream_t *rows) {
  pr_op_t *op = sql_op_new(x->sh, sizeof *op);
  if (!op) return FL_ENOMEM;
  if (sql_table_phys(x->a, t, &op->phys) != FL_OK) {
    sql_op_release(op);
    return FL_ENOMEM;
  }
  op->ident = sql_table_option(t, "print-identifier");
  op->sess = x->sess;
  const char *se = sql_table_option(t, "standard-error");
  fl_stream_t *lines = fl_stream_process(rows, sql_exec_name(x, "print-format"), &pr_fn, op);
  return fl_stream_sink_lines(lines, sql_exec_name(x, t->name),
                              se && !strcmp(se, "true") ? "/dev/stderr" : "-");
}

static int bh_write(fl_context_t *ctx, const fl_record_t *in, void *instance) { return FL_OK; }

static const fl_sink_fn_t bh_fn = {.version = FL_SINK_FN_VERSION, .write = bh_write};

static int blackhole_sink(sql_exec_t *x, const sql_table_t *t, fl_stream_t *rows) {
  return fl_stream_sink(rows, sql_exec_name(x, t->name), &bh_fn, NULL);
}

const sql_connector_t sql_conn_print = {
    .name = "print", .options = print_options, .sink = print_sink};
const sql_connector_t sql_conn_blackhole = {
    .name = "blackhole", .options = blackhole_options, .sink = blackhole_sink};
