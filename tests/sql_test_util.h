/* Helpers of the SQL tests (define _GNU_SOURCE before including anything, for nftw): run a script on a fresh SQL environment and collect the rows
 * of its bare queries as JSON lines; write input files into a temporary directory.
 * Include once per test program, after <cmocka.h> and "fl_test_util.h". */
#ifndef FL_SQL_TEST_UTIL_H
#define FL_SQL_TEST_UTIL_H

#include <ftw.h>
#include <stdbool.h>
#include <sys/stat.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct sql_rows {
  char **v;
  size_t n, cap;
  pthread_mutex_t mu;
} sql_rows_t;

static inline void sql_rows_add(sql_rows_t *r, const char *s) {
  pthread_mutex_lock(&r->mu);
  if (r->n == r->cap) {
    r->cap = r->cap ? r->cap * 2 : 64;
    r->v = realloc(r->v, r->cap * sizeof *r->v);
  }
  r->v[r->n++] = strdup(s);
  pthread_mutex_unlock(&r->mu);
}

static inline void sql_rows_free(sql_rows_t *r) {
  for (size_t i = 0; i < r->n; i++) free(r->v[i]);
  free(r->v);
  memset(r, 0, sizeof *r);
}

static inline int sql_rows_cmp(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}
static inline void sql_rows_sort(sql_rows_t *r) {
  if (r->n) qsort(r->v, r->n, sizeof *r->v, sql_rows_cmp);
}

static inline int sql_rows_collect(fl_context_t *ctx, const fl_sql_schema_t *schema,
                                   const fl_record_t *rec, void *opaque) {
  char buf[8192];
  int n = fl_sql_row_to_json(schema, rec->value, rec->value_len, buf, sizeof buf);
  if (n < 0) return fl_ctx_fail(ctx, "a malformed row");
  sql_rows_add(opaque, buf);
  return 0;
}

/* Runs script at parallelism P (watermarks after every record); its bare queries' rows
 * go to out. Returns the compile or run error (0 for success); err gets the message. */
static inline int sql_run_p(const char *script, int P, sql_rows_t *out, char *err, size_t n) {
  fl_sql_env_t *s;
  int rc = fl_sql_env_new(&s, err, n);
  if (rc) return rc;
  char p[16];
  snprintf(p, sizeof p, "%d", P);
  const char *settings[] = {"parallelism", p, "pipeline.auto-watermark-interval", "0", NULL};
  for (size_t i = 0; settings[i]; i += 2) fl_sql_set(s, settings[i], settings[i + 1], err, n);
  fl_sql_on_select(s, sql_rows_collect, out);
  rc = fl_sql_execute(s, script, err, n);
  if (rc == 0 && fl_sql_has_job(s)) {
    fl_env_t *env = fl_sql_env_env(s, err, n);
    rc = env ? fl_env_execute(env, "sql-test") : FL_ECONFIG;
    if (rc) snprintf(err, n, "%s", fl_env_error(env));
  }
  fl_sql_env_destroy(s);
  return rc;
}

static inline int sql_run(const char *script, sql_rows_t *out, char *err, size_t n) {
  return sql_run_p(script, 1, out, err, n);
}

/* Runs a script that must succeed; returns its rows sorted. */
static inline void sql_ok(const char *script, sql_rows_t *out) {
  char err[2048] = "";
  memset(out, 0, sizeof *out);
  pthread_mutex_init(&out->mu, NULL);
  int rc = sql_run(script, out, err, sizeof err);
  if (rc) fail_msg("script failed (%s): %s\n%s", fl_err_name(rc), err, script);
  sql_rows_sort(out);
}

/* Asserts the sorted rows equal the expected lines (NULL-terminated, in any order). */
static inline void sql_expect(sql_rows_t *r, const char *const *given) {
  size_t n = 0;
  while (given[n]) n++;
  const char **lines = malloc(sizeof(char *) * (n + 1));
  memcpy(lines, given, sizeof(char *) * (n + 1));
  if (n) qsort(lines, n, sizeof *lines, sql_rows_cmp);
  bool same = r->n == n;
  for (size_t i = 0; same && i < n; i++) same = strcmp(r->v[i], lines[i]) == 0;
  if (!same) {
    fprintf(stderr, "got %zu rows:\n", r->n);
    for (size_t i = 0; i < r->n; i++) fprintf(stderr, "  %s\n", r->v[i]);
    fprintf(stderr, "expected %zu:\n", n);
    for (size_t i = 0; i < n; i++) fprintf(stderr, "  %s\n", lines[i]);
    fail_msg("rows differ");
  }
  free(lines);
}

#define SQL_EXPECT(script, ...)                       \
  do {                                                \
    sql_rows_t r_;                                    \
    sql_ok(script, &r_);                              \
    const char *const lines_[] = {__VA_ARGS__, NULL}; \
    sql_expect(&r_, lines_);                          \
    sql_rows_free(&r_);                               \
  } while (0)

/* Asserts the script fails with code and a message containing every fragment. */
static inline void sql_fails(const char *script, int code, const char *frag1, const char *frag2) {
  sql_rows_t r = {.mu = PTHREAD_MUTEX_INITIALIZER};
  char err[2048] = "";
  int rc = sql_run(script, &r, err, sizeof err);
  sql_rows_free(&r);
  if (rc == 0) fail_msg("expected a failure for:\n%s", script);
  if (code && rc != code)
    fail_msg("expected %s, got %s: %s", fl_err_name(code), fl_err_name(rc), err);
  if (frag1 && !strstr(err, frag1)) fail_msg("message '%s' lacks '%s'", err, frag1);
  if (frag2 && !strstr(err, frag2)) fail_msg("message '%s' lacks '%s'", err, frag2);
}

/* A temporary directory per test program. */
static char sql_tmp[256];

static inline void sql_tmp_init(const char *tag) {
  snprintf(sql_tmp, sizeof sql_tmp, "/tmp/fl-sql-%s-%d", tag, (int)getpid());
  mkdir(sql_tmp, 0700);
}

static inline int sql_rm_cb(const char *p, const struct stat *sb, int flag, struct FTW *ftw) {
  return remove(p);
}
static inline void sql_tmp_cleanup(void) { nftw(sql_tmp, sql_rm_cb, 16, FTW_DEPTH | FTW_PHYS); }

/* Writes text into <tmp>/name and returns the path (static buffer per call site). */
static inline const char *sql_write_file(const char *name, const char *text, char *path,
                                         size_t cap) {
  snprintf(path, cap, "%s/%s", sql_tmp, name);
  FILE *f = fopen(path, "w");
  assert_non_null(f);
  fputs(text, f);
  fclose(f);
  return path;
}

/* printf into a malloc'd string. */
static inline char *sql_fmt(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  char *s = malloc((size_t)n + 1);
  va_start(ap, fmt);
  vsnprintf(s, (size_t)n + 1, fmt, ap);
  va_end(ap);
  return s;
}

#endif
