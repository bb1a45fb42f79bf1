/* flink-sql, the tool: scripts from -f, -e and stdin, --set, rows as JSON lines or a
 * table, exit statuses for compile errors, failed jobs and usage errors, and SIGTERM
 * with --savepoint-on-exit followed by a run --from-savepoint. */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "fl_test_util.h"
#include "kafka_test_util.h"
#include "run_util.h"

static char *g_sql;

static int group_setup(void **state) {
  g_sql = find_program("tools", "flink-sql");
  return tmpdir_group_setup(state);
}

static int group_teardown(void **state) {
  free(g_sql);
  return kafka_group_teardown(state);
}

/* Runs flink-sql with args (up to NULL) and stdin; returns the exit status, stdout and
 * stderr. */
static int run_sql(const char *input, char **out, char **err, const char *const *args) {
  char *argv[32];
  int n = 0;
  argv[n++] = g_sql;
  for (; *args; args++) argv[n++] = (char *)*args;
  argv[n] = NULL;
  child_t *c = spawn(argv, true);
  if (input) assert_int_equal(write(c->in_fd, input, strlen(input)), (ssize_t)strlen(input));
  close_fd(&c->in_fd);
  size_t len = 0;
  *out = *err = NULL;
  if (!read_all(c->out_fd, out, &len, deadline_in(20000))) fail_msg("flink-sql did not finish");
  len = 0;
  read_all(c->err_fd, err, &len, deadline_in(5000));
  int st = wait_exit(c, deadline_in(5000));
  child_free(c);
  return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* One run of flink-sql: its stdin and arguments, the exit status it must end with, what
 * its stdout (all of it when empty_out is set) and its stderr must hold. */
typedef struct sql_case {
  const char *input;
  const char *args[8];
  int status;
  const char *out[6];
  bool empty_out;
  const char *err;
} sql_case_t;

static void check_sql_cases(const sql_case_t *cases, size_t n) {
  for (size_t i = 0; i < n; i++) {
    const sql_case_t *k = &cases[i];
    char *out, *err;
    int st = run_sql(k->input, &out, &err, k->args);
    if (st != k->status) fail_msg("case %zu: status %d, want %d: %s", i, st, k->status, err);
    for (size_t j = 0; j < sizeof k->out / sizeof k->out[0] && k->out[j]; j++)
      if (!strstr(out, k->out[j]))
        fail_msg("case %zu: no '%s' in the output: %s", i, k->out[j], out);
    if (k->empty_out) assert_string_equal(out, "");
    if (k->err && !strstr(err, k->err)) fail_msg("case %zu: no '%s' in stderr: %s", i, k->err, err);
    free(out);
    free(err);
  }
}

static void scripts_from_stdin_file_and_argument(void **state) {
  char path[128];
  snprintf(path, sizeof path, "%s/s.sql", g_tmpdir);
  FILE *f = fopen(path, "w");
  fputs(
      "-- parallelism from --set\nSELECT x * 2 AS y FROM (VALUES (1), (2), (3)) AS t(x) WHERE x > 1;",
      f);
  fclose(f);
  const sql_case_t cases[] = {
      {.input = "SELECT 1 AS a, 'x' AS b;\nSELECT CAST(NULL AS INT) AS c",
       .out = {"{\"a\":1,\"b\":\"x\"}\n", "{\"c\":null}\n"}},
      {.args = {"-f", path, "--set", "parallelism=2", "--set", "table.local-time-zone=UTC"},
       .out = {"{\"y\":4}", "{\"y\":6}"}},
      {.args = {"-e", "SELECT UPPER('abc') AS u", "--format", "table"},
       .out = {"| op |", " u |", "| +I |", "ABC |", "Received a total of 1 row"}},
      /* the print connector */
      {.input = "CREATE TABLE p (a INT, s STRING, t TIMESTAMP(3)) WITH ('connector' = 'print', "
                "'print-identifier' = 'out');\n"
                "INSERT INTO p VALUES (1, 'x', TIMESTAMP '2024-01-01 00:00:01'), (2, CAST(NULL AS "
                "STRING), NULL);",
       .out = {"out> +I[1, x, 2024-01-01 00:00:01.000]\n", "out> +I[2, null, null]\n"}},
      /* DDL only: nothing to run */
      {.input = "CREATE TABLE t (a INT) WITH ('connector' = 'blackhole');", .empty_out = true},
  };
  check_sql_cases(cases, sizeof cases / sizeof cases[0]);
}

static void errors_and_exit_statuses(void **state) {
  static const sql_case_t cases[] = {
      {.input = "SELECT 1;\nSELECT * FROM nope",
       .status = 2,
       .empty_out = true,
       .err = "line 2, column 15: table 'nope' not found"},
      {.input = "SELEKT 1",
       .status = 2,
       .err = "syntax error at line 1, column 1: unexpected 'SELEKT'"},
      {.input = "SELECT 1 / x FROM (VALUES (0)) AS t(x)", .status = 1, .err = "division by zero"},
      {.args = {"--set", "parallelism=0", "-e", "SELECT 1"}, .status = 2, .err = "parallelism"},
      {.args = {"--format", "xml"}, .status = 2, .err = "--format must be table or json"},
      {.args = {"--bogus"}, .status = 2, .err = "unknown option '--bogus'"},
  };
  check_sql_cases(cases, sizeof cases / sizeof cases[0]);
}

static void sigterm_takes_a_savepoint_and_a_run_starts_from_it(void **state) {
  char sp[128];
  snprintf(sp, sizeof sp, "%s/sp", g_tmpdir);
  const char *script =
      "CREATE TABLE g (id BIGINT, v INT) WITH ('connector' = 'datagen', 'rows-per-second' = '200', "
      "'fields.id.kind' = 'sequence', 'fields.id.start' = '1', 'fields.id.end' = '100000000');\n"
      "CREATE TABLE t (id BIGINT, ts AS PROCTIME()) WITH ('connector' = 'datagen', 'rows-per-second' = '200');\n"
      "SELECT id FROM g;";
  char *argv[] = {g_sql, "--savepoint-on-exit", sp, "-e", (char *)script, NULL};
  child_t *c = spawn(argv, true);
  close_fd(&c->in_fd);
  char line[256];
  /* the job runs once rows come out */
  if (read_line(c->out_fd, line, sizeof line, deadline_in(15000)) < 0)
    fail_msg("no rows from the running job");
  assert_non_null(strstr(line, "{\"id\":"));
  kill(c->pid, SIGTERM);
  int st = wait_exit(c, deadline_in(20000));
  char *err = NULL;
  size_t len = 0;
  read_all(c->err_fd, &err, &len, deadline_in(2000));
  assert_true(WIFEXITED(st));
  if (WEXITSTATUS(st) != 128 + SIGTERM) fail_msg("exit %d: %s", WEXITSTATUS(st), err);
  assert_non_null(strstr(err, "savepoint written to"));
  free(err);
  child_free(c);
  char manifest[256];
  snprintf(manifest, sizeof manifest, "%s/_manifest", sp);
  struct stat sb;
  assert_int_equal(stat(manifest, &sb), 0);
  /* the same job from the savepoint */
  char *argv2[] = {g_sql, "--from-savepoint", sp, "-e", (char *)script, NULL};
  c = spawn(argv2, true);
  close_fd(&c->in_fd);
  if (read_line(c->out_fd, line, sizeof line, deadline_in(15000)) < 0)
    fail_msg("no rows after the savepoint");
  kill(c->pid, SIGINT);
  st = wait_exit(c, deadline_in(20000));
  assert_true(WIFEXITED(st));
  assert_int_equal(WEXITSTATUS(st), 128 + SIGINT);
  child_free(c);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(scripts_from_stdin_file_and_argument),
      cmocka_unit_test(errors_and_exit_statuses),
      cmocka_unit_test(sigterm_takes_a_savepoint_and_a_run_starts_from_it),
  };
  return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
