/*
 * The public SQL entry points of flink.h: environments, settings, scripts, tables from
 * DataStreams, queries as DataStreams, and user-defined functions.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "sql/bind_int.h"
#include "sql/parser.h"
#include "sql/planner.h"
#include "sql/sql_env.h"

static void set_err(char *err, size_t n, const char *msg) {
  if (err && n) snprintf(err, n, "%s", msg);
}

static void env_free(sql_shared_t *sh) { (void)sh; }

static int env_alloc(fl_sql_env_t **out) {
  fl_sql_env_t *s = calloc(1, sizeof *s);
  sql_shared_t *sh = calloc(1, sizeof *sh);
  if (!s || !sh) {
    free(s);
    free(sh);
    return FL_ENOMEM;
  }
  sql_arena_init(&sh->arena);
  atomic_store(&sh->refs, 1);
  sh->on_free = env_free;
  s->sh = sh;
  s->cat.a = &sh->arena;
  s->cat.sess.tz_name = "UTC";
  *out = s;
  return FL_OK;
}

int fl_sql_env_new(fl_sql_env_t **out, char *errstr, size_t errstr_size) {
  if (!out) return FL_EINVAL;
  *out = NULL;
  int rc = env_alloc(out);
  if (rc)
    set_err(errstr, errstr_size, "out of memory");
  else
    (*out)->own_env = true;
  return rc;
}

int fl_sql_env_wrap(fl_sql_env_t **out, fl_env_t *env, char *errstr, size_t errstr_size) {
  if (!out) return FL_EINVAL;
  *out = NULL;
  if (!env) {
    set_err(errstr, errstr_size, "fl_sql_env_wrap: env is NULL");
    return FL_EINVAL;
  }
  int rc = env_alloc(out);
  if (rc) {
    set_err(errstr, errstr_size, "out of memory");
    return rc;
  }
  (*out)->env = env;
  return FL_OK;
}

void fl_sql_env_destroy(fl_sql_env_t *s) {
  if (!s) return;
  /* user functions: their destroy, once */
  for (size_t i = 0; i < s->cat.udfs.n; i++) {
    sql_udf_t *u = s->cat.udfs.v[i];
    if (u->aggregate && u->agg.destroy)
      u->agg.destroy(u->opaque);
    else if (!u->aggregate && u->destroy)
      u->destroy(u->opaque);
  }
  if (s->own_env) fl_env_destroy(s->env);
  sql_shared_unref(s->sh);
  free(s);
}

/* Flink's names for the library's configuration keys. */
static const char *config_key(const char *key) {
  if (!strcmp(key, "parallelism.default")) return "parallelism";
  if (!strcmp(key, "state.backend.type")) return "state.backend";
  return key;
}

static bool sql_key(const char *key) {
  return !strncmp(key, "table.", 6) || !strncmp(key, "sql-client.", 11) ||
         !strcmp(key, "pipeline.name");
}

int sql_parse_tz(const char *s, int64_t *offset_ms) {
  if (!strcasecmp(s, "UTC") || !strcasecmp(s, "GMT") || !strcmp(s, "Z") ||
      !strcasecmp(s, "Etc/UTC")) {
    *offset_ms = 0;
    return FL_OK;
  }
  const char *p = s;
  if (!strncasecmp(p, "UTC", 3) || !strncasecmp(p, "GMT", 3)) p += 3;
  if (*p != '+' && *p != '-') return FL_EINVAL;
  int sign = *p == '-' ? -1 : 1;
  p++;
  int h = 0, m = 0;
  if (!isdigit((unsigned char)*p)) return FL_EINVAL;
  h = *p++ - '0';
  if (isdigit((unsigned char)*p)) h = h * 10 + (*p++ - '0');
  if (*p == ':') p++;
  if (isdigit((unsigned char)p[0]) && isdigit((unsigned char)p[1])) {
    m = (p[0] - '0') * 10 + (p[1] - '0');
    p += 2;
  }
  if (*p || h > 18 || m > 59) return FL_EINVAL;
  *offset_ms = sign * ((int64_t)h * 3600000 + (int64_t)m * 60000);
  return FL_OK;
}

static int put_setting(sql_catalog_t *cat, const char *key, const char *value) {
  if (SQL_ARENA_ROOM(cat->a, cat->settings, cat->nsettings, cat->cap_settings)) return FL_ENOMEM;
  sql_option_t *o = &cat->settings[cat->nsettings++];
  o->key = sql_arena_strdup(cat->a, key);
  o->value = sql_arena_strdup(cat->a, value);
  return o->key && o->value ? FL_OK : FL_ENOMEM;
}

int sql_env_set(fl_sql_env_t *s, const char *key, const char *value, char *err, size_t n) {
  if (!key || !value) {
    snprintf(err, n, "SET needs a key and a value");
    return FL_EINVAL;
  }
  if (sql_key(key)) {
    if (!strcmp(key, "table.local-time-zone")) {
      int64_t off;
      if (sql_parse_tz(value, &off) != FL_OK) {
        snprintf(
            err, n,
            "table.local-time-zone '%s' is not supported: use 'UTC' or a fixed offset such as '+08:00'",
            value);
        return FL_ECONFIG;
      }
      s->cat.sess.tz_offset_ms = off;
      s->cat.sess.tz_name = sql_arena_strdup(s->cat.a, value);
    } else if (!strcmp(key, "table.exec.source.idle-timeout")) {
      int64_t ms;
      if (fl_parse_duration(value, &ms) != FL_OK) {
        snprintf(err, n, "table.exec.source.idle-timeout: '%s' is not a duration", value);
        return FL_ECONFIG;
      }
    }
    return put_setting(&s->cat, key, value);
  }
  const char *k = config_key(key);
  if (s->env) {
    snprintf(
        err, n,
        "SET '%s': the job's environment already exists, so configuration keys must be set "
        "before the first statement that builds part of the job (or on the environment given to "
        "fl_sql_env_wrap)",
        key);
    return FL_ECONFIG;
  }
  /* validate now, with the library's own message */
  fl_config_t *c = fl_config_new();
  if (!c) return FL_ENOMEM;
  int rc = fl_config_set(c, k, value, err, n);
  fl_config_destroy(c);
  if (rc) return rc;
  return put_setting(&s->cat, k, value);
}

int fl_sql_set(fl_sql_env_t *s, const char *key, const char *value, char *errstr,
               size_t errstr_size) {
  if (!s) return FL_EINVAL;
  char tmp[512];
  int rc = sql_env_set(s, key, value, tmp, sizeof tmp);
  if (rc) set_err(errstr, errstr_size, tmp);
  return rc;
}

const char *fl_sql_get(const fl_sql_env_t *s, const char *key) {
  if (!s || !key) return NULL;
  const char *k = config_key(key);
  for (size_t i = s->cat.nsettings; i-- > 0;)
    if (!strcmp(s->cat.settings[i].key, k)) return s->cat.settings[i].value;
  return NULL;
}

fl_env_t *sql_env_get(fl_sql_env_t *s, char *err, size_t n) {
  if (s->env) return s->env;
  fl_config_t *c = fl_config_new();
  if (!c) {
    snprintf(err, n, "out of memory");
    return NULL;
  }
  int rc = FL_OK;
  for (size_t i = 0; i < s->cat.nsettings && rc == FL_OK; i++) {
    const sql_option_t *o = &s->cat.settings[i];
    if (sql_key(o->key)) continue;
    rc = fl_config_set(c, o->key, o->value, err, n);
  }
  if (rc == FL_OK) rc = fl_env_new(&s->env, c, err, n);
  fl_config_destroy(c);
  return rc == FL_OK ? s->env : NULL;
}

fl_env_t *fl_sql_env_env(fl_sql_env_t *s, char *errstr, size_t errstr_size) {
  if (!s) return NULL;
  char tmp[512];
  fl_env_t *e = sql_env_get(s, tmp, sizeof tmp);
  if (!e) set_err(errstr, errstr_size, tmp);
  return e;
}

int fl_sql_execute(fl_sql_env_t *s, const char *script, char *errstr, size_t errstr_size) {
  if (!s || !script) {
    set_err(errstr, errstr_size, "fl_sql_execute: NULL argument");
    return FL_EINVAL;
  }
  char *tmp = malloc(2048);
  if (!tmp) return FL_ENOMEM;
  int rc = sql_script_run(s, script, tmp, 2048);
  if (rc) set_err(errstr, errstr_size, tmp);
  free(tmp);
  return rc;
}

int fl_sql_has_job(const fl_sql_env_t *s) { return s && s->has_job; }

int fl_sql_on_select(fl_sql_env_t *s, fl_sql_row_fn fn, void *opaque) {
  if (!s) return FL_EINVAL;
  s->select_fn = fn;
  s->select_opaque = opaque;
  return FL_OK;
}

int fl_sql_register_stream(fl_sql_env_t *s, const char *name, fl_stream_t *stream,
                           const char *schema, char *errstr, size_t errstr_size) {
  if (!s || !name || !stream || !schema) {
    set_err(errstr, errstr_size, "fl_sql_register_stream: NULL argument");
    return FL_EINVAL;
  }
  char err[1024];
  sql_catalog_t *cat = &s->cat;
  if (sql_catalog_find(cat, name)) {
    snprintf(err, sizeof err, "table '%s' already exists", name);
    set_err(errstr, errstr_size, err);
    return FL_EINVAL;
  }
  char *text = sql_arena_strdup(cat->a, schema);
  ast_create_table_t *ct;
  int rc = text ? sql_parse_schema(cat->a, text, &ct, err, sizeof err) : FL_ENOMEM;
  if (rc) {
    set_err(errstr, errstr_size, err);
    return rc;
  }
  ct->name = sql_arena_strdup(cat->a, name);
  sql_table_t *t = sql_table_from_ast(cat, ct, text, err, sizeof err);
  if (!t) {
    set_err(errstr, errstr_size, err);
    return FL_EINVAL;
  }
  for (int i = 0; i < t->ncols; i++) {
    if (t->cols[i].kind == SQL_COL_METADATA && strcmp(t->cols[i].meta_key, "rowtime")) {
      snprintf(err, sizeof err,
               "table '%s': a DataStream has only the metadata column 'rowtime', not '%s'", name,
               t->cols[i].meta_key);
      set_err(errstr, errstr_size, err);
      return FL_EINVAL;
    }
  }
  t->stream = stream;
  return sql_catalog_add(cat, t);
}

fl_sql_schema_t *sql_schema_of(sql_arena_t *a, const sql_rel_t *r, const sql_session_t *sess) {
  fl_sql_schema_t *sc = sql_arena_alloc(a, sizeof *sc);
  if (!sc) return NULL;
  sc->n = r->n;
  sc->sess = sess;
  sc->names = sql_arena_alloc(a, sizeof(char *) * (size_t)(r->n + 1));
  sc->types = sql_arena_alloc(a, sizeof(sql_type_t *) * (size_t)(r->n + 1));
  sc->type_names = sql_arena_alloc(a, sizeof(char *) * (size_t)(r->n + 1));
  if (!sc->names || !sc->types || !sc->type_names) return NULL;
  for (int i = 0; i < r->n; i++) {
    sc->names[i] = r->f[i].name;
    sc->types[i] = r->f[i].type;
    sc->type_names[i] = sql_type_name(a, r->f[i].type);
  }
  return sc;
}

fl_stream_t *fl_sql_query(fl_sql_env_t *s, const char *query, const fl_sql_schema_t **schema,
                          char *errstr, size_t errstr_size) {
  if (!s || !query) {
    set_err(errstr, errstr_size, "fl_sql_query: NULL argument");
    return NULL;
  }
  char err[2048];
  err[0] = 0;
  sql_catalog_t *cat = &s->cat;
  char *text = sql_arena_strdup(cat->a, query);
  ast_query_t *q;
  int rc = text ? sql_parse_query(cat->a, text, &q, err, sizeof err) : FL_ENOMEM;
  if (rc) {
    set_err(errstr, errstr_size, err);
    return NULL;
  }
  sql_planner_t p = {.a = cat->a, .src = text, .cat = cat, .err = err, .err_size = sizeof err};
  sql_rel_t *r = sql_plan_query(&p, q);
  if (r && !sql_plan_check_ranks(&p, r)) r = NULL;
  if (!r) {
    set_err(errstr, errstr_size, err[0] ? err : "cannot plan the query");
    return NULL;
  }
  fl_env_t *env = sql_env_get(s, err, sizeof err);
  if (!env) {
    set_err(errstr, errstr_size, err);
    return NULL;
  }
  sql_exec_t x = {.env = env,
                  .sh = s->sh,
                  .a = cat->a,
                  .cat = cat,
                  .sess = &cat->sess,
                  .err = err,
                  .err_size = sizeof err};
  fl_stream_t *out = sql_exec_rel(&x, r);
  if (out) s->has_job = true;
  if (!out) {
    set_err(errstr, errstr_size, err[0] ? err : "cannot build the query");
    return NULL;
  }
  if (schema) *schema = sql_schema_of(cat->a, r, &cat->sess);
  return out;
}

/* ---------------------------------------------------------------------------------- */
/* User functions                                                                     */

static sql_udf_t *udf_new(fl_sql_env_t *s, const char *name, const char *arg_types,
                          const char *result_type, char *errstr, size_t errstr_size) {
  char err[512];
  sql_catalog_t *cat = &s->cat;
  if (!name || !*name || !arg_types || !result_type) {
    set_err(errstr, errstr_size, "user function: NULL name or types");
    return NULL;
  }
  if (sql_fn_lookup(name) || sql_builtin_aggregate(name) || sql_catalog_udf(cat, name)) {
    snprintf(err, sizeof err, "a function named '%s' already exists", name);
    set_err(errstr, errstr_size, err);
    return NULL;
  }
  sql_udf_t *u = sql_arena_alloc(cat->a, sizeof *u);
  if (!u) return NULL;
  u->name = sql_arena_strdup(cat->a, name);
  const sql_type_t **ret;
  int nret;
  if (sql_parse_type_list(cat->a, arg_types, &u->arg_types, &u->nargs, err, sizeof err) != FL_OK ||
      sql_parse_type_list(cat->a, result_type, &ret, &nret, err, sizeof err) != FL_OK) {
    set_err(errstr, errstr_size, err);
    return NULL;
  }
  if (nret != 1 || u->nargs > 32) {
    set_err(errstr, errstr_size, "user function: one result type and at most 32 arguments");
    return NULL;
  }
  u->ret = ret[0];
  for (int i = 0; i <= u->nargs; i++) {
    const sql_type_t *t = i < u->nargs ? u->arg_types[i] : u->ret;
    if (t->kind == T_DECIMAL && t->precision > 18) {
      set_err(errstr, errstr_size, "user functions take DECIMAL with precision up to 18");
      return NULL;
    }
  }
  return u;
}

int fl_sql_create_function(fl_sql_env_t *s, const char *name, const char *arg_types,
                           const char *result_type, int call_on_null, fl_sql_scalar_fn fn,
                           void *opaque, void (*destroy)(void *opaque), char *errstr,
                           size_t errstr_size) {
  int rc = FL_EINVAL;
  if (!s || !fn) {
    set_err(errstr, errstr_size, "fl_sql_create_function: NULL argument");
    goto fail;
  }
  sql_udf_t *u = udf_new(s, name, arg_types, result_type, errstr, errstr_size);
  if (!u) goto fail;
  u->fn = fn;
  u->call_on_null = call_on_null != 0;
  u->opaque = opaque;
  u->destroy = destroy;
  return sql_catalog_add_udf(&s->cat, u);
fail:
  if (destroy) destroy(opaque);
  return rc;
}

int fl_sql_create_aggregate(fl_sql_env_t *s, const char *name, const char *arg_types,
                            const char *result_type, const fl_sql_aggregate_fn_t *fn, void *opaque,
                            char *errstr, size_t errstr_size) {
  if (!s || !fn || fn->version != FL_SQL_AGGREGATE_FN_VERSION || !fn->init || !fn->accumulate ||
      !fn->get_value || fn->acc_size < 1 || fn->acc_size > 65536) {
    set_err(errstr, errstr_size,
            "fl_sql_create_aggregate: needs version FL_SQL_AGGREGATE_FN_VERSION, init, accumulate, "
            "get_value and acc_size 1..65536");
    if (fn && fn->destroy) fn->destroy(opaque);
    return FL_EINVAL;
  }
  sql_udf_t *u = udf_new(s, name, arg_types, result_type, errstr, errstr_size);
  if (!u) {
    if (fn->destroy) fn->destroy(opaque);
    return FL_EINVAL;
  }
  u->aggregate = true;
  u->agg = *fn;
  u->opaque = opaque;
  return sql_catalog_add_udf(&s->cat, u);
}
