/*
 * The SQL environment behind fl_sql_env_t, shared by the public entry points (api.c,
 * api_row.c) and the script compiler (script.c).
 */
#ifndef FL_SQL_SQL_ENV_H
#define FL_SQL_SQL_ENV_H

#include "flink.h"
#include "sql/catalog.h"
#include "sql/exec.h"

struct fl_sql_schema {
  int n;
  const char **names;
  const sql_type_t **types;
  const char **type_names;
  const sql_session_t *sess;
  sql_arena_t *own; /* fl_sql_schema_new: its own arena */
};

struct fl_sql_env {
  sql_shared_t *sh;
  sql_catalog_t cat;
  fl_env_t *env;
  bool own_env;
  bool has_job;
  fl_sql_row_fn select_fn;
  void *select_opaque;
  char errbuf[1024];
};

/* A schema describing a relation's columns (arena memory). */
fl_sql_schema_t *sql_schema_of(sql_arena_t *a, const sql_rel_t *r, const sql_session_t *sess);
/* Applies SET key = value to the settings (a script's are rolled back on failure). */
int sql_env_set(fl_sql_env_t *s, const char *key, const char *value, char *err, size_t n);
/* The environment, created from the settings if needed (fl_sql_env_new). */
fl_env_t *sql_env_get(fl_sql_env_t *s, char *err, size_t n);
/* The statement compiler: fl_sql_execute's work. */
int sql_script_run(fl_sql_env_t *s, const char *script, char *err, size_t n);
/* Parses 'UTC', 'Z', '+08:00', 'GMT+8', 'UTC-05:30' into ms east of UTC. */
int sql_parse_tz(const char *s, int64_t *offset_ms);

#endif
