/*
 * Translation (exec.h): one stream per relation, made once and shared by every consumer;
 * the arena's reference counting; helpers of the operator files.
 */
#include "sql/exec.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void sql_shared_ref(sql_shared_t *sh) { atomic_fetch_add(&sh->refs, 1); }

void sql_shared_unref(sql_shared_t *sh) {
  if (atomic_fetch_sub(&sh->refs, 1) == 1) {
    if (sh->on_free) sh->on_free(sh);
    sql_arena_free(&sh->arena);
    free(sh);
  }
}

void sql_op_release(void *opaque) {
  sql_opbase_t *b = opaque;
  if (b) sql_shared_unref(b->sh);
}

void *sql_op_new(sql_shared_t *sh, size_t size) {
  sql_opbase_t *b = sql_arena_alloc(&sh->arena, size);
  if (!b) return NULL;
  b->sh = sh;
  sql_shared_ref(sh);
  return b;
}

int sql_text_inst_open(fl_context_t *ctx, void *opaque, void **instance) {
  (void)ctx;
  sql_text_inst_t *ti = calloc(1, sizeof *ti);
  if (!ti) return FL_ENOMEM;
  ti->op = opaque;
  *instance = ti;
  return FL_OK;
}

void sql_text_inst_close(void *instance) {
  sql_text_inst_t *ti = instance;
  sql_sb_free(&ti->sb);
  free(ti);
}

int sql_exec_fail(sql_exec_t *x, int code, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(x->err, x->err_size, fmt, ap);
  va_end(ap);
  x->rc = code;
  return code;
}

const char *sql_exec_name(sql_exec_t *x, const char *what) {
  const char *n = sql_arena_printf(x->a, "sql-%d-%s", ++x->next_id, what ? what : "op");
  return n ? n : "sql";
}

int sql_op_eval_fail(fl_context_t *ctx, const char *op, sql_eval_t *ev, int rc) {
  if (rc == FL_ENOMEM) return fl_ctx_fail(ctx, "%s: out of memory", op);
  return fl_ctx_fail(ctx, "%s: %s", op, ev->err[0] ? ev->err : fl_strerror(rc));
}

void sql_build_row(sql_rb_t *rb, int n, sql_field_t *f, const sql_val_t *vals) {
  sql_rb_begin(rb, n);
  for (int i = 0; i < n; i++) sql_write_col(rb, i, f[i].type, &vals[i]);
}

/* The translator of a relation of one input, by its kind. */
typedef fl_stream_t *(*one_input_fn)(sql_exec_t *x, sql_rel_t *r, fl_stream_t *in);

static one_input_fn one_input(sql_rel_kind_t kind) {
  switch (kind) {
  case R_CALC: return sql_exec_calc;
  case R_WINTVF: return sql_exec_wintvf;
  case R_WINAGG: return sql_exec_winagg;
  case R_OVER: return sql_exec_over;
  default: return sql_exec_rank; /* R_RANK */
  }
}

fl_stream_t *sql_exec_rel(sql_exec_t *x, sql_rel_t *r) {
  if (r->alias_of) return sql_exec_rel(x, r->alias_of);
  if (r->stream) return r->stream;
  fl_stream_t *s = NULL;
  switch (r->kind) {
  case R_SCAN:
  case R_STREAM: {
    const sql_connector_t *c = r->kind == R_STREAM ? NULL : sql_connector_find(r->table->connector);
    if (r->kind == R_STREAM) {
      s = sql_table_finish(x, r->table, r->table->stream);
    } else if (!c || !c->source) {
      sql_exec_fail(x, FL_EINVAL, "table '%s': connector '%s' cannot be read", r->table->name,
                    r->table->connector ? r->table->connector : "?");
    } else {
      s = c->source(x, r->table);
    }
    break;
  }
  case R_VALUES: s = sql_exec_values(x, r); break;
  case R_CALC:
  case R_WINTVF:
  case R_WINAGG:
  case R_OVER:
  case R_RANK: {
    fl_stream_t *in = sql_exec_rel(x, r->in[0]);
    if (in) s = one_input(r->kind)(x, r, in);
    break;
  }
  case R_JOIN: {
    fl_stream_t *l = sql_exec_rel(x, r->in[0]);
    fl_stream_t *rt = l ? sql_exec_rel(x, r->in[1]) : NULL;
    if (rt) s = sql_exec_join(x, r, l, rt);
    break;
  }
  case R_UNION: {
    fl_stream_t *a = sql_exec_rel(x, r->in[0]);
    fl_stream_t *b = a ? sql_exec_rel(x, r->in[1]) : NULL;
    if (b) s = fl_stream_union(a, b);
    break;
  }
  }
  if (!s && !x->rc)
    sql_exec_fail(x, FL_ENOMEM, "could not build the operators of '%s'",
                  r->name ? r->name : "a query");
  r->stream = s;
  return s;
}
