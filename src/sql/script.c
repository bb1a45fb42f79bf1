/*
 * The script compiler (fl_sql_execute): parses the whole script, checks every statement
 * in order against a staged catalog (so that a CREATE TABLE is visible to the INSERT
 * after it), plans every query, and only when all of it is valid commits the catalog and
 * the settings and builds the operators. A script with an error changes nothing.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "sql/bind_int.h"
#include "sql/parser.h"
#include "sql/planner.h"
#include "sql/sql_env.h"

typedef struct pending {
  sql_rel_t *rel;
  const sql_table_t *target; /* NULL: a bare query */
  sql_x_t **cast;            /* target columns from the query's (target only) */
  int ncast;
  sql_pos_t pos;
} pending_t;

typedef struct script {
  fl_sql_env_t *s;
  sql_planner_t p;
  pending_t *pend;
  int npend, cap;
  sql_table_t **dropped;
  size_t ndropped;
  char *err;
  size_t err_size;
} script_t;

static int fail_at(script_t *sc, int code, sql_pos_t pos, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 4, 5)))
#endif
    ;
static int fail_at(script_t *sc, int code, sql_pos_t pos, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  sql_verror_at(sc->err, sc->err_size, pos, fmt, ap);
  va_end(ap);
  return code;
}

static int add_pending(script_t *sc, pending_t p) {
  if (sc->npend == sc->cap) {
    int nc = sc->cap ? sc->cap * 2 : 8;
    pending_t *nv = sql_arena_alloc(sc->p.a, sizeof(pending_t) * (size_t)nc);
    if (!nv) return FL_ENOMEM;
    if (sc->npend) memcpy(nv, sc->pend, sizeof(pending_t) * (size_t)sc->npend);
    sc->pend = nv;
    sc->cap = nc;
  }
  sc->pend[sc->npend++] = p;
  return FL_OK;
}

static sql_rel_t *plan(script_t *sc, const ast_stmt_t *st, const ast_query_t *q) {
  sc->p.src = sc->p.src; /* the script text */
  sc->p.rc = 0;
  sc->p.err[0] = 0;
  sql_rel_t *r = sql_plan_query(&sc->p, q);
  if (r && !sql_plan_check_ranks(&sc->p, r)) r = NULL;
  return r;
}

static int stmt_create_table(script_t *sc, const ast_stmt_t *st) {
  sql_catalog_t *cat = &sc->s->cat;
  const ast_create_table_t *ct = st->table;
  if (sql_catalog_find(cat, ct->name)) {
    if (ct->if_not_exists) return FL_OK;
    return fail_at(sc, FL_EINVAL, st->pos, "table '%s' already exists", ct->name);
  }
  sql_table_t *t = sql_table_from_ast(cat, ct, sc->p.src, sc->err, sc->err_size);
  if (!t) return cat->a->failed ? FL_ENOMEM : FL_EINVAL;
  int rc = sql_connector_validate(cat, t, sc->err, sc->err_size);
  if (rc) return rc;
  return sql_catalog_add(cat, t);
}

static int stmt_create_view(script_t *sc, const ast_stmt_t *st) {
  sql_catalog_t *cat = &sc->s->cat;
  if (sql_catalog_find(cat, st->name)) {
    if (st->if_not_exists) return FL_OK;
    return fail_at(sc, FL_EINVAL, st->pos, "table or view '%s' already exists", st->name);
  }
  sql_rel_t *r = plan(sc, st, st->query);
  if (!r) return sc->p.rc ? sc->p.rc : FL_EINVAL;
  if (st->n_view_cols && st->n_view_cols != r->n)
    return fail_at(sc, FL_EINVAL, st->pos, "view '%s' names %d columns, its query has %d", st->name,
                   st->n_view_cols, r->n);
  sql_table_t *t = sql_arena_alloc(cat->a, sizeof *t);
  if (!t) return FL_ENOMEM;
  t->name = st->name;
  t->is_view = true;
  t->view_query = st->query;
  t->view_cols = st->view_cols;
  t->n_view_cols = st->n_view_cols;
  t->src = sc->p.src;
  t->rowtime = -1;
  return sql_catalog_add(cat, t);
}

/* The target's insertable columns and casts from the query's output. */
static int insert_target(script_t *sc, const ast_stmt_t *st, sql_rel_t *r, pending_t *pd) {
  sql_catalog_t *cat = &sc->s->cat;
  const sql_table_t *t = sql_catalog_find(cat, st->target);
  if (!t) {
    const char *names[256];
    int n = sql_catalog_names(cat, names, 256);
    const char *near = sql_nearest(st->target, names, n);
    return fail_at(sc, FL_EINVAL, st->pos, "table '%s' not found%s%s%s", st->target,
                   near ? "; did you mean '" : "", near ? near : "", near ? "'?" : "");
  }
  if (t->is_view)
    return fail_at(sc, FL_EINVAL, st->pos, "cannot INSERT INTO the view '%s'", t->name);
  if (st->overwrite)
    return fail_at(sc, FL_ENOTSUP, st->pos, "INSERT OVERWRITE is not supported on a stream");
  char cerr[512];
  int rc = sql_connector_check_use(cat, t, false, cerr, sizeof cerr);
  if (rc) return fail_at(sc, rc, st->pos, "%s", cerr);
  sql_phys_t phys;
  if (sql_table_phys(cat->a, t, &phys) != FL_OK) return FL_ENOMEM;
  /* which query column feeds each physical column (-1: NULL) */
  int *src = sql_arena_alloc(cat->a, sizeof(int) * (size_t)(phys.n + 1));
  if (!src) return FL_ENOMEM;
  if (st->n_target_cols) {
    if (st->n_target_cols != r->n)
      return fail_at(sc, FL_EINVAL, st->pos, "INSERT INTO %s names %d columns, the query gives %d",
                     t->name, st->n_target_cols, r->n);
    for (int i = 0; i < phys.n; i++) src[i] = -1;
    for (int k = 0; k < st->n_target_cols; k++) {
      int found = -1;
      for (int i = 0; i < phys.n; i++)
        if (!strcmp(phys.names[i], st->target_cols[k])) found = i;
      if (found < 0)
        return fail_at(sc, FL_EINVAL, st->pos, "table '%s' has no physical column '%s'", t->name,
                       st->target_cols[k]);
      src[found] = k;
    }
  } else {
    if (r->n != phys.n)
      return fail_at(sc, FL_EINVAL, st->pos, "table '%s' has %d columns, the query gives %d",
                     t->name, phys.n, r->n);
    for (int i = 0; i < phys.n; i++) src[i] = i;
  }
  pd->cast = sql_arena_alloc(cat->a, sizeof(sql_x_t *) * (size_t)(phys.n + 1));
  if (!pd->cast) return FL_ENOMEM;
  pd->ncast = phys.n;
  for (int i = 0; i < phys.n; i++) {
    if (src[i] < 0) {
      if (phys.types[i]->not_null)
        return fail_at(sc, FL_EINVAL, st->pos,
                       "column '%s' of table '%s' is NOT NULL and not given", phys.names[i],
                       t->name);
      sql_val_t v = {.null = true};
      pd->cast[i] = sql_x_const(cat->a, phys.types[i], &v);
      continue;
    }
    const sql_field_t *f = &r->f[src[i]];
    sql_x_t *c = sql_x_col(cat->a, 0, src[i], f->type, f->name);
    if (!c) return FL_ENOMEM;
    if (!sql_type_equal(f->type, phys.types[i], true)) {
      if (!sql_implicit_allowed(f->type, phys.types[i]) &&
          !(sql_type_is_string(f->type) && sql_type_is_string(phys.types[i]))) {
        char a[128], b[128];
        return fail_at(
            sc, FL_EINVAL, st->pos,
            "column '%s' of table '%s' is %s, but the query gives '%s' of type %s (CAST it)",
            phys.names[i], t->name, sql_type_str(phys.types[i], a, sizeof a), f->name,
            sql_type_str(f->type, b, sizeof b));
      }
      c = sql_x_cast(cat->a, c, phys.types[i], false);
      if (!c) return FL_ENOMEM;
    }
    pd->cast[i] = c;
  }
  pd->target = t;
  return FL_OK;
}

static int stmt_query(script_t *sc, const ast_stmt_t *st) {
  sql_rel_t *r = plan(sc, st, st->query);
  if (!r) return sc->p.rc ? sc->p.rc : FL_EINVAL;
  pending_t pd = {.rel = r, .pos = st->pos};
  if (st->kind == AS_INSERT) {
    int rc = insert_target(sc, st, r, &pd);
    if (rc) return rc;
  }
  return add_pending(sc, pd);
}

static int stmt(script_t *sc, const ast_stmt_t *st) {
  sql_catalog_t *cat = &sc->s->cat;
  switch (st->kind) {
  case AS_CREATE_TABLE: return stmt_create_table(sc, st);
  case AS_CREATE_VIEW: return stmt_create_view(sc, st);
  case AS_DROP: {
    const sql_table_t *t = sql_catalog_find(cat, st->name);
    if (!t) {
      if (st->if_exists) return FL_OK;
      return fail_at(sc, FL_EINVAL, st->pos, "%s '%s' does not exist",
                     st->drop_view ? "view" : "table", st->name);
    }
    if (st->drop_view != t->is_view)
      return fail_at(sc, FL_EINVAL, st->pos, "'%s' is a %s", st->name,
                     t->is_view ? "view: DROP VIEW" : "table: DROP TABLE");
    sql_table_t **nd = sql_arena_alloc(cat->a, sizeof(sql_table_t *) * (sc->ndropped + 1));
    if (!nd) return FL_ENOMEM;
    if (sc->ndropped) memcpy(nd, sc->dropped, sizeof(sql_table_t *) * sc->ndropped);
    nd[sc->ndropped++] = (sql_table_t *)t;
    sc->dropped = nd;
    return sql_catalog_drop(cat, st->name);
  }
  case AS_SET: {
    if (!st->key) return FL_OK; /* SET alone lists settings in Flink's client */
    char e[512];
    int rc = sql_env_set(sc->s, st->key, st->value, e, sizeof e);
    if (rc) return fail_at(sc, rc, st->pos, "%s", e);
    return FL_OK;
  }
  case AS_RESET: {
    for (size_t i = 0; i < cat->nsettings; i++) {
      if (!st->key || !strcmp(cat->settings[i].key, st->key)) {
        memmove(cat->settings + i, cat->settings + i + 1,
                (cat->nsettings - i - 1) * sizeof *cat->settings);
        cat->nsettings--;
        i--;
      }
    }
    if (st->key && !strcmp(st->key, "table.local-time-zone")) cat->sess.tz_offset_ms = 0;
    return FL_OK;
  }
  case AS_INSERT:
  case AS_SELECT: return stmt_query(sc, st);
  case AS_STATEMENT_SET:
    for (size_t i = 0; i < st->body.n; i++) {
      int rc = stmt(sc, st->body.v[i]);
      if (rc) return rc;
    }
    return FL_OK;
  default: return fail_at(sc, FL_ENOTSUP, st->pos, "SHOW, DESCRIBE and EXPLAIN are not supported");
  }
}

/* ---------------------------------------------------------------------------------- */
/* Building                                                                           */

static int select_write(fl_context_t *ctx, const fl_record_t *in, void *instance);

typedef struct sel_op {
  sql_opbase_t base;
  fl_sql_schema_t *schema;
  fl_sql_row_fn fn;
  void *opaque;
} sel_op_t;

static int select_write(fl_context_t *ctx, const fl_record_t *in, void *instance) {
  const sel_op_t *op = instance;
  return op->fn(ctx, op->schema, in, op->opaque);
}

static int sel_open(fl_context_t *ctx, void *opaque, void **instance) {
  *instance = opaque;
  return FL_OK;
}

static const fl_sink_fn_t sel_fn = {.version = FL_SINK_FN_VERSION,
                                    .open = sel_open,
                                    .write = select_write,
                                    .destroy = sql_op_release};

/* The target's physical columns from a query's rows. */
static fl_stream_t *sink_columns(script_t *sc, sql_exec_t *x, pending_t *pd, fl_stream_t *rows) {
  const sql_table_t *t = pd->target;
  sql_rel_t *c = sql_rel_new(&sc->p, R_CALC, pd->ncast);
  sql_phys_t phys;
  if (!c || sql_table_phys(x->a, t, &phys) != FL_OK) return NULL;
  c->in[0] = pd->rel;
  c->nin = 1;
  c->proj = pd->cast;
  c->name = "sink-columns";
  for (int k = 0; k < pd->ncast; k++) {
    c->f[k].name = phys.names[k];
    c->f[k].type = phys.types[k];
  }
  return sql_exec_calc(x, c, rows);
}

static int build(script_t *sc, fl_env_t *env) {
  fl_sql_env_t *s = sc->s;
  sql_exec_t x = {.env = env,
                  .sh = s->sh,
                  .a = &s->sh->arena,
                  .cat = &s->cat,
                  .sess = &s->cat.sess,
                  .err = sc->err,
                  .err_size = sc->err_size};
  fl_stream_t **outs = sql_arena_alloc(x.a, sizeof(fl_stream_t *) * (size_t)(sc->npend + 1));
  if (!outs) return FL_ENOMEM;
  for (int i = 0; i < sc->npend; i++) {
    pending_t *pd = &sc->pend[i];
    fl_stream_t *rows = sql_exec_rel(&x, pd->rel);
    if (!rows) return x.rc ? x.rc : FL_ENOMEM;
    if (pd->target) {
      outs[i] = sink_columns(sc, &x, pd, rows);
      if (!outs[i]) return x.rc ? x.rc : FL_ENOMEM;
    } else if (s->select_fn) {
      sel_op_t *op = sql_op_new(s->sh, sizeof *op);
      if (!op) return FL_ENOMEM;
      op->schema = sql_schema_of(x.a, pd->rel, x.sess);
      op->fn = s->select_fn;
      op->opaque = s->select_opaque;
      int rc = fl_stream_sink(rows, sql_exec_name(&x, "select"), &sel_fn, op);
      if (rc) return rc;
    } else {
      /* JSON lines on stdout */
      sql_table_t *t = sql_arena_alloc(x.a, sizeof *t);
      if (!t) return FL_ENOMEM;
      t->name = "select";
      t->ncols = pd->rel->n;
      t->cols = sql_arena_alloc(x.a, sizeof(sql_column_t) * (size_t)(t->ncols + 1));
      if (!t->cols) return FL_ENOMEM;
      for (int k = 0; k < t->ncols; k++) {
        t->cols[k].name = pd->rel->f[k].name;
        t->cols[k].type = pd->rel->f[k].type;
      }
      t->rowtime = -1;
      fl_stream_t *lines = sql_rows_to_json(&x, t, rows);
      if (!lines) return x.rc ? x.rc : FL_ENOMEM;
      int rc = fl_stream_sink_lines(lines, sql_exec_name(&x, "select"), "-");
      if (rc) return rc;
    }
  }
  /* one sink per target table: the INSERTs into it (a statement set) are unioned */
  for (int i = 0; i < sc->npend; i++) {
    if (!sc->pend[i].target || !outs[i]) continue;
    const sql_table_t *t = sc->pend[i].target;
    fl_stream_t *all = outs[i];
    for (int j = i + 1; j < sc->npend; j++) {
      if (sc->pend[j].target != t || !outs[j]) continue;
      all = fl_stream_union(all, outs[j]);
      outs[j] = NULL;
    }
    const sql_connector_t *conn = sql_connector_find(t->connector);
    int rc = conn->sink(&x, t, all);
    if (rc) return x.rc ? x.rc : rc;
  }
  return FL_OK;
}

int sql_script_run(fl_sql_env_t *s, const char *script, char *err, size_t n) {
  sql_catalog_t *cat = &s->cat;
  script_t sc = {.s = s, .err = err, .err_size = n};
  if (n) err[0] = 0;
  char *text = sql_arena_strdup(cat->a, script);
  if (!text) return FL_ENOMEM;
  ast_script_t *ast;
  int rc = sql_parse_script(cat->a, text, &ast, err, n);
  if (rc) return rc;
  size_t mark = sql_catalog_mark(cat);
  size_t settings_mark = cat->nsettings;
  sql_session_t sess_saved = cat->sess;
  sc.p.a = cat->a;
  sc.p.src = text;
  sc.p.cat = cat;
  sc.p.err = err;
  sc.p.err_size = n;
  for (size_t i = 0; i < ast->stmts.n && rc == FL_OK; i++) rc = stmt(&sc, ast->stmts.v[i]);
  if (rc == FL_OK && sc.npend) {
    fl_env_t *env = sql_env_get(s, err, n);
    if (!env) rc = FL_ECONFIG;
    if (rc == FL_OK) rc = build(&sc, env);
    if (rc == FL_OK) s->has_job = true;
  }
  if (rc != FL_OK) {
    sql_catalog_rollback(cat, mark, sc.dropped, sc.ndropped);
    cat->nsettings = settings_mark;
    cat->sess = sess_saved;
    if (!err[0]) snprintf(err, n, "%s", fl_strerror(rc));
  }
  if (cat->a->failed && rc == FL_OK) rc = FL_ENOMEM;
  return rc;
}
