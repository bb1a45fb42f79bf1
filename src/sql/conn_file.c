/*
 * The filesystem connector with the json format: 'path' names a file or a directory
 * (every regular file in it, in name order, not starting with '.' or '_'), read as JSON
 * lines by one reader each (a bounded source, as Flink's without monitoring). As a sink,
 * 'path' is a directory written by the exactly-once file sink: part files committed with
 * checkpoints (or when the job ends), one JSON object per line.
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "sql/exec.h"
#include "util/vec.h"

static const char *const fs_options[] = {
    "path", "format", "source.monitor-interval", "sink.rolling-policy.", "sink.parallelism", NULL};

static int fs_check(sql_catalog_t *cat, const sql_table_t *t, bool source, char *err, size_t n) {
  if (!sql_table_option(t, "path")) {
    if (err) snprintf(err, n, "table '%s': the filesystem connector needs 'path'", t->name);
    return FL_EINVAL;
  }
  if (!sql_table_option(t, "format")) {
    if (err)
      snprintf(err, n, "table '%s': the filesystem connector needs 'format' = 'json'", t->name);
    return FL_EINVAL;
  }
  if (source && sql_table_option(t, "source.monitor-interval")) {
    if (err)
      snprintf(err, n, "table '%s': source.monitor-interval (continuous reading) is not supported",
               t->name);
    return FL_ENOTSUP;
  }
  return FL_OK;
}

static int cmp_str(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

static fl_stream_t *fs_source(sql_exec_t *x, const sql_table_t *t) {
  const char *path = sql_table_option(t, "path");
  struct stat st;
  fl_stream_t *lines = NULL;
  if (strcmp(path, "-") != 0 && stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
    DIR *d = opendir(path);
    if (!d) {
      sql_exec_fail(x, FL_EIO, "table '%s': cannot read directory '%s'", t->name, path);
      return NULL;
    }
    char **names = NULL;
    size_t n = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
      if (e->d_name[0] == '.' || e->d_name[0] == '_') continue;
      char *full = sql_arena_printf(x->a, "%s/%s", path, e->d_name);
      struct stat fst;
      if (!full || stat(full, &fst) != 0 || !S_ISREG(fst.st_mode)) continue;
      if (FL_VEC_RESERVE(names, cap, n + 1)) break;
      names[n++] = full;
    }
    closedir(d);
    qsort(names, n, sizeof *names, cmp_str);
    for (size_t i = 0; i < n; i++) {
      fl_stream_t *s = fl_source_lines(x->env, sql_exec_name(x, t->name), names[i]);
      lines = lines ? fl_stream_union(lines, s) : s;
    }
    free(names);
    if (!lines) {
      /* an empty directory: an empty bounded source */
      lines = fl_source_collection(x->env, sql_exec_name(x, t->name), NULL, 0);
    }
  } else {
    lines = fl_source_lines(x->env, sql_exec_name(x, t->name), path);
  }
  return sql_json_lines_source(x, t, lines, path);
}

/* Rows to JSON lines. */
typedef struct jw_op {
  sql_opbase_t base;
  sql_json_fmt_t fmt;
  const char *name;
} jw_op_t;

static int jw_process(fl_context_t *ctx, const fl_record_t *in, void *instance) {
  sql_text_inst_t *ji = instance;
  const jw_op_t *op = ji->op;
  ji->sb.n = 0;
  sql_json_write(&op->fmt, in->value, &ji->sb);
  if (ji->sb.failed) return FL_ENOMEM;
  return fl_emit(ctx, in->key, in->key_len, ji->sb.p, ji->sb.n, in->timestamp);
}

static const fl_process_fn_t jw_fn = {.version = FL_PROCESS_FN_VERSION,
                                      .open = sql_text_inst_open,
                                      .process = jw_process,
                                      .close = sql_text_inst_close,
                                      .destroy = sql_op_release};

fl_stream_t *sql_rows_to_json(sql_exec_t *x, const sql_table_t *t, fl_stream_t *rows) {
  jw_op_t *op = sql_op_new(x->sh, sizeof *op);
  if (!op) return NULL;
  sql_phys_t phys;
  if (sql_table_phys(x->a, t, &phys) != FL_OK ||
      sql_json_fmt_of(x->a, t, &phys, x->sess, &op->fmt, x->err, x->err_size) != FL_OK) {
    x->rc = FL_EINVAL;
    sql_op_release(op);
    return NULL;
  }
  op->name = sql_exec_name(x, "to-json");
  return fl_stream_process(rows, op->name, &jw_fn, op);
}

static int fs_sink(sql_exec_t *x, const sql_table_t *t, fl_stream_t *rows) {
  fl_stream_t *lines = sql_rows_to_json(x, t, rows);
  if (!lines) return x->rc ? x->rc : FL_ENOMEM;
  return fl_stream_sink_files(lines, sql_exec_name(x, t->name), sql_table_option(t, "path"));
}

const sql_connector_t sql_conn_filesystem = {.name = "filesystem",
                                             .options = fs_options,
                                             .check = fs_check,
                                             .source = fs_source,
                                             .sink = fs_sink};
