/* SQL with Kafka, end to end, on a local cluster (flink-kafka-local as a separate
 * loopback broker process, kcat to produce and consume):
 *
 *  - the issue's statements as written (only the bootstrap servers point at the local
 *    cluster): raw_transactions from Kafka with its watermark, the 5-minute spend per
 *    user into features_user_spend; their output equals flink-agg's on the same events
 *    read from a file, and the events produced before the job started are not read
 *    ('latest-offset');
 *  - the hybrid job of examples/sql_spend_alerts (a SQL TUMBLE aggregation into a C
 *    KeyedProcessFunction into an exactly-once Kafka sink) killed with SIGKILL after a
 *    checkpoint committed output, and started again: what read_committed consumers see
 *    is every result exactly once, the C function's state carried over.
 *
 * kcat comes from Debian (scripts/install-deps.sh installs it). */
#define _GNU_SOURCE
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "fl_test_util.h"
#include "kafka_test_util.h"
#include "run_util.h"
#include "util/tsan_c11_threads.h" /* librdkafka threads under TSan builds */

#include "kcat_test_util.h"

static char g_agg[4096];
static char g_example[4096];

static int group_setup(void **state) {
  const char *bd = getenv("FL_BUILD_DIR");
  snprintf(g_agg, sizeof g_agg, "%s/tools/flink-agg", bd && *bd ? bd : ".");
  snprintf(g_example, sizeof g_example, "%s/examples/sql_spend_alerts", bd && *bd ? bd : ".");
  if (kcat_group_setup(state)) return -1;
  g_server = start_server(g_bootstrap, sizeof g_bootstrap, "--quiet", "--topic",
                          "raw.transactions:1", "--topic", "features.user_5min_spend:2", "--topic",
                          "hyb.in:1", "--topic", "hyb.out:2", "--topic", "meta.in:1", NULL);
  return 0;
}

static int sql_rows_to_collector(fl_context_t *ctx, const fl_sql_schema_t *schema,
                                 const fl_record_t *rec, void *opaque) {
  char buf[1024];
  int n = fl_sql_row_to_json(schema, rec->value, rec->value_len, buf, sizeof buf);
  if (n < 0) return n;
  fl_record_t r = {NULL, 0, buf, (size_t)n, rec->timestamp};
  return collector_write(ctx, &r, opaque);
}

static int cmp_rec(const void *a, const void *b) {
  return strcmp(((const col_rec_t *)a)->value, ((const col_rec_t *)b)->value);
}

/* ---------------------------------------------------------------------------------- */
/* The issue's statements against flink-agg                                           */

#define N_TX 600
#define T0 INT64_C(1704067200000) /* 2024-01-01T00:00:00Z */

static void iso(int64_t ms, char *out, size_t cap) { /* cap >= 32 */
  time_t s = (time_t)(ms / 1000);
  struct tm tm;
  gmtime_r(&s, &tm);
  snprintf(out, cap, "%04d-%02d-%02dT%02d:%02d:%02d.%03d", (tm.tm_year + 1900) % 10000,
           (tm.tm_mon + 1) % 100, tm.tm_mday % 100, tm.tm_hour % 100, tm.tm_min % 100,
           tm.tm_sec % 100, (int)(ms % 1000));
}

static const char *issue_script =
    "CREATE TABLE raw_transactions (\n"
    "  transaction_id STRING, user_id STRING, amount_usd DOUBLE, category_id INT,\n"
    "  event_time TIMESTAMP(3),\n"
    "  WATERMARK FOR event_time AS event_time - INTERVAL '5' SECOND\n"
    ") WITH (\n"
    "  'connector' = 'kafka', 'topic' = 'raw.transactions',\n"
    "  'properties.bootstrap.servers' = 'kafka:9092', 'properties.group.id' = 'flink-sql-features',\n"
    "  'scan.startup.mode' = 'latest-offset', 'format' = 'json',\n"
    "  'json.timestamp-format.standard' = 'ISO-8601'\n"
    ");\n"
    "CREATE TABLE features_user_spend (\n"
    "  user_id STRING, window_start TIMESTAMP(3), window_end TIMESTAMP(3),\n"
    "  total_spend_usd DOUBLE, tx_count BIGINT,\n"
    "  PRIMARY KEY (user_id, window_start) NOT ENFORCED\n"
    ") WITH ('connector' = 'kafka', 'topic' = 'features.user_5min_spend',\n"
    "        'properties.bootstrap.servers' = 'kafka:9092', 'format' = 'json');\n"
    "INSERT INTO features_user_spend\n"
    "SELECT user_id, window_start, window_end, SUM(amount_usd) AS total_spend_usd, COUNT(*) AS tx_count\n"
    "FROM TABLE(TUMBLE(TABLE raw_transactions, DESCRIPTOR(event_time), INTERVAL '5' MINUTE))\n"
    "GROUP BY user_id, window_start, window_end;\n";

/* The script with every 'kafka:9092' replaced by the local bootstrap servers. */
static char *local_script(void) {
  size_t cap = strlen(issue_script) + 8 * strlen(g_bootstrap) + 1, n = 0;
  char *out = malloc(cap);
  for (const char *p = issue_script; *p;) {
    if (!strncmp(p, "kafka:9092", 10)) {
      n += (size_t)sprintf(out + n, "%s", g_bootstrap);
      p += 10;
    } else {
      out[n++] = *p++;
    }
  }
  out[n] = 0;
  return out;
}

static int64_t ms_of(const char *sql_ts) {
  struct tm tm = {0};
  int ms = 0;
  sscanf(sql_ts, "%d-%d-%d %d:%d:%d.%d", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
         &tm.tm_min, &tm.tm_sec, &ms);
  tm.tm_year -= 1900;
  tm.tm_mon -= 1;
  return (int64_t)timegm(&tm) * 1000;
}

static void issue_statements_match_flink_agg(void **state) {
  /* events, in time order; the first five are produced before the job starts */
  size_t cap = (N_TX + 8) * 200;
  char *kin = malloc(cap), *early = malloc(2048), *file = malloc(cap);
  size_t kl = 0, el = 0, fl = 0;
  for (int i = -5; i < N_TX; i++) {
    char ts[64], ev[320];
    int64_t t = T0 + (int64_t)(i < 0 ? 0 : i) * 4999;
    iso(t, ts, sizeof ts);
    int u = i < 0 ? 99 : i % 7;
    snprintf(
        ev, sizeof ev,
        "{\"transaction_id\":\"t%d\",\"user_id\":\"u%d\",\"amount_usd\":%d.%02d,\"category_id\":%d,"
        "\"event_time\":\"%s\",\"ts\":%" PRId64 "}",
        i, u, 1 + (i * 37 + 500) % 90, (i * 13 + 100) % 100, (i + 10) % 4, ts, t);
    if (i < 0) {
      el += (size_t)snprintf(early + el, 2048 - el, "u%d:%s\n", u, ev);
    } else {
      kl += (size_t)snprintf(kin + kl, cap - kl, "u%d:%s\n", u, ev);
      fl += (size_t)snprintf(file + fl, cap - fl, "%s\n", ev);
    }
  }
  /* a last event far later closes every window */
  kl += (size_t)snprintf(
      kin + kl, cap - kl,
      "zz:{\"transaction_id\":\"flush\",\"user_id\":\"zz\",\"amount_usd\":0,\"category_id\":0,"
      "\"event_time\":\"2024-01-02T00:00:00.000\"}\n");
  /* flink-agg on the same events from a file */
  char in_path[4200], out_path[128];
  snprintf(in_path, sizeof in_path, "%s/tx.jsonl", g_tmpdir);
  snprintf(out_path, sizeof out_path, "%s/agg.jsonl", g_tmpdir);
  write_text(in_path, file);
  char *out = NULL;
  char *aargv[] = {g_agg,    "--input",  in_path,       "--output",
                   out_path, "--key",    "user_id",     "--time",
                   "ts",     "--value",  "amount_usd",  "--agg",
                   "sum",    "--window", "tumbling:5m", "--out-of-orderness",
                   "5s",     NULL};
  int st = run_capture(aargv, NULL, &out);
  free(out);
  assert_int_equal(st, 0);
  char *agg = read_text(out_path, NULL);
  assert_non_null(agg);
  /* canonical "user|start|end|sum|count" of flink-agg's lines */
  lines_t al = {0}, want = {0};
  lines_add_text(&al, agg);
  for (size_t i = 0; i < al.n; i++) {
    json_t *j = json_loads(al.v[i], 0, NULL);
    assert_non_null(j);
    char w[128];
    int wl =
        snprintf(w, sizeof w,
                 "%s|%" JSON_INTEGER_FORMAT "|%" JSON_INTEGER_FORMAT "|%.6f|%" JSON_INTEGER_FORMAT,
                 json_string_value(json_object_get(j, "key")),
                 json_integer_value(json_object_get(j, "window_start")),
                 json_integer_value(json_object_get(j, "window_end")),
                 json_number_value(json_object_get(j, "value")),
                 json_integer_value(json_object_get(j, "count")));
    lines_push(&want, w, (size_t)wl);
    json_decref(j);
  }
  lines_sort(&want);
  size_t na = want.n;

  kcat_produce("raw.transactions", early);
  /* the SQL job, as written */
  fl_sql_env_t *sql;
  char err[2048];
  assert_int_equal(fl_sql_env_new(&sql, err, sizeof err), 0);
  char *script = local_script();
  int rc = fl_sql_execute(sql, script, err, sizeof err);
  if (rc) fail_msg("%s", err);
  fl_env_t *env = fl_sql_env_env(sql, err, sizeof err);
  assert_non_null(env);
  bg_job_t job;
  bg_job_start(&job, env, "issue");
  /* the source has resolved 'latest-offset' once it reports its lag */
  int64_t deadline = deadline_in(20000);
  for (;;) {
    char *m = fl_env_metrics_json(env);
    bool ready = m && strstr(m, "records-lag-max");
    fl_free(m);
    if (ready) break;
    if (mono_ms() > deadline) fail_msg("the Kafka source did not start");
    usleep(20000);
  }
  kcat_produce("raw.transactions", kin);
  /* wait for every window */
  char *got = kcat_wait_values("features.user_5min_spend", false, na, 30000);
  /* the table's PRIMARY KEY is the messages' key */
  {
    char *keyed = NULL;
    char *kargv[] = {g_kcat, "-C",    "-b",        g_bootstrap, "-t", "features.user_5min_spend",
                     "-e",   "-o",    "beginning", "-q",        "-c", "1",
                     "-f",   "%k\\n", NULL};
    assert_int_equal(run_capture(kargv, NULL, &keyed), 0);
    assert_non_null(strstr(keyed, "{\"user_id\":\"u"));
    assert_non_null(strstr(keyed, "\"window_start\":\"2024-01-01 "));
    free(keyed);
  }
  fl_env_stop(env);
  assert_int_equal(bg_job_join(&job), FL_ECANCELED);
  fl_sql_env_destroy(sql);
  lines_t gl = {0}, have = {0};
  lines_add_text(&gl, got);
  for (size_t i = 0; i < gl.n; i++) {
    json_t *j = json_loads(gl.v[i], 0, NULL);
    if (!j) fail_msg("not JSON: %s", gl.v[i]);
    char h[128];
    int hl = snprintf(h, sizeof h, "%s|%" PRId64 "|%" PRId64 "|%.6f|%" JSON_INTEGER_FORMAT,
                      json_string_value(json_object_get(j, "user_id")),
                      ms_of(json_string_value(json_object_get(j, "window_start"))),
                      ms_of(json_string_value(json_object_get(j, "window_end"))),
                      json_number_value(json_object_get(j, "total_spend_usd")),
                      json_integer_value(json_object_get(j, "tx_count")));
    lines_push(&have, h, (size_t)hl);
    json_decref(j);
  }
  lines_sort(&have);
  if (have.n != na) fail_msg("SQL wrote %zu windows, flink-agg %zu", have.n, na);
  for (size_t i = 0; i < na; i++) assert_string_equal(have.v[i], want.v[i]);
  assert_true(na > 50);
  lines_free(&want);
  lines_free(&have);
  lines_free(&al);
  lines_free(&gl);
  free(got);
  free(agg);
  free(script);
  free(kin);
  free(early);
  free(file);
}

/* ---------------------------------------------------------------------------------- */
/* The hybrid job, exactly once across SIGKILL                                        */

#define N_HYB 400
#define HYB_USERS 5

static child_t *start_example(void) {
  char ck[4200];
  snprintf(ck, sizeof ck, "%s/ckpt", g_tmpdir);
  char *argv[] = {g_example,   "--brokers",
                  g_bootstrap, "--input",
                  "hyb.in",    "--output",
                  "hyb.out",   "--checkpoint-dir",
                  ck,          "--parallelism",
                  "2",         "--window",
                  "10",        NULL};
  if (access(g_example, X_OK) != 0) fail_msg("%s is not built", g_example);
  return spawn(argv, true);
}

static void hybrid_sql_and_c_exactly_once_across_sigkill(void **state) {
#if defined(__SANITIZE_THREAD__)
  /* the example is a program of the public API only, without the TSan shim that lets
   * Debian's librdkafka run under ThreadSanitizer */
  skip();
#endif
  /* purchases, one per second, 5 users; expected output computed here */
  double sums[HYB_USERS][64] = {{0}};
  bool seen[HYB_USERS][64] = {{false}};
  size_t cap = (N_HYB + 4) * 160;
  char *first = malloc(cap), *second = malloc(cap);
  size_t f1 = 0, f2 = 0;
  for (int i = 0; i < N_HYB; i++) {
    int u = (i * 3) % HYB_USERS;
    int cents = 100 + (i * 7919) % 5000;
    int64_t t = T0 + (int64_t)i * 1000;
    char ts[64];
    iso(t, ts, sizeof ts);
    char *buf = i < N_HYB / 2 ? first : second;
    size_t *len = i < N_HYB / 2 ? &f1 : &f2;
    *len +=
        (size_t)snprintf(buf + *len, cap - *len,
                         "u%d:{\"user_id\":\"u%d\",\"amount_usd\":%d.%02d,\"event_time\":\"%s\"}\n",
                         u, u, cents / 100, cents % 100, ts);
    int w = i / 10;
    sums[u][w] += cents / 100.0;
    seen[u][w] = true;
  }
  f2 += (size_t)snprintf(
      second + f2, cap - f2,
      "zz:{\"user_id\":\"zz\",\"amount_usd\":0,\"event_time\":\"2024-01-02T00:00:00.000\"}\n");
  lines_t want = {0};
  for (int u = 0; u < HYB_USERS; u++) {
    int64_t windows = 0, rising = 0;
    double last = 0;
    for (int w = 0; w < N_HYB / 10; w++) {
      if (!seen[u][w]) continue;
      /* the same arithmetic as the job: the SQL SUM of the amounts as doubles */
      double total = 0;
      for (int i = w * 10; i < w * 10 + 10; i++)
        if ((i * 3) % HYB_USERS == u) total += (100 + (i * 7919) % 5000) / 100.0;
      rising = windows > 0 && total > last ? rising + 1 : 0;
      windows++;
      last = total;
      char line[160];
      int ll = snprintf(line, sizeof line,
                        "{\"user_id\":\"u%d\",\"window_end\":%" PRId64
                        ",\"total\":%.2f,\"windows\":%" PRId64 ",\"rising\":%" PRId64 "}",
                        u, T0 + (int64_t)(w + 1) * 10000, total, windows, rising);
      lines_push(&want, line, (size_t)ll);
    }
  }
  lines_sort(&want);
  size_t nw = want.n;

  kcat_produce("hyb.in", first);
  child_t *c = start_example();
  /* let a checkpoint commit some output, then kill the job without warning */
  char *got = kcat_wait_values("hyb.out", true, 20, 30000);
  size_t before = count_lines(got);
  free(got);
  if (before < 20) fail_msg("the first run committed only %zu results", before);
  kill(c->pid, SIGKILL);
  wait_exit(c, deadline_in(10000));
  child_free(c);
  kcat_produce("hyb.in", second);
  c = start_example();
  got = kcat_wait_values("hyb.out", true, nw, 40000);
  kill(c->pid, SIGTERM);
  int st = wait_exit(c, deadline_in(20000));
  char *errout = NULL;
  size_t elen = 0;
  read_all(c->err_fd, &errout, &elen, deadline_in(1000));
  if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
    fail_msg("the example exited with %d: %s", st, errout ? errout : "");
  assert_non_null(strstr(errout, "flink: restoring checkpoint "));
  free(errout);
  child_free(c);
  free(got);
  got = kcat_consume("hyb.out", "%s\\n", true);
  lines_t gl = {0};
  lines_add_text(&gl, got);
  lines_sort(&gl);
  if (gl.n != nw)
    fail_msg("read_committed sees %zu results, %zu expected (before the kill: %zu)", gl.n, nw,
             before);
  for (size_t i = 0; i < nw; i++) assert_string_equal(gl.v[i], want.v[i]);
  lines_free(&want);
  lines_free(&gl);
  free(got);
  free(first);
  free(second);
}

/* Metadata columns, earliest-offset and a bounded scan. */
static void metadata_columns_and_bounded_scans(void **state) {
  kcat_produce(
      "meta.in",
      "a:{\"user_id\":\"u0\",\"amount_usd\":1}\nb:{\"user_id\":\"u3\",\"amount_usd\":2}\n"
      "c:{\"user_id\":\"u1\",\"amount_usd\":3}\nd:{\"user_id\":\"u9\",\"amount_usd\":4}\n");
  char *script;
  int n = asprintf(
      &script,
      "CREATE TABLE k (user_id STRING, amount_usd DOUBLE, part INT METADATA FROM 'partition', "
      "off BIGINT METADATA FROM 'offset', kts TIMESTAMP_LTZ(3) METADATA FROM 'timestamp', "
      "topic STRING METADATA VIRTUAL) WITH ('connector' = 'kafka', 'topic' = 'meta.in', "
      "'properties.bootstrap.servers' = '%s', 'scan.startup.mode' = 'earliest-offset', "
      "'scan.bounded.mode' = 'latest-offset', 'format' = 'json');\n"
      "SELECT part, off, topic, kts IS NOT NULL AS has_ts, user_id FROM k WHERE off < 3",
      g_bootstrap);
  assert_true(n > 0);
  fl_sql_env_t *s;
  char err[2048];
  assert_int_equal(fl_sql_env_new(&s, err, sizeof err), 0);
  collector_t col;
  collector_init(&col);
  assert_int_equal(fl_sql_on_select(s, sql_rows_to_collector, &col), 0);
  if (fl_sql_execute(s, script, err, sizeof err)) fail_msg("%s", err);
  fl_env_t *env = fl_sql_env_env(s, err, sizeof err);
  if (fl_env_execute(env, "metadata")) fail_msg("%s", fl_env_error(env));
  fl_sql_env_destroy(s);
  assert_int_equal(col.n, 3);
  qsort(col.r, col.n, sizeof *col.r, cmp_rec);
  assert_string_equal(
      col.r[0].value,
      "{\"part\":0,\"off\":0,\"topic\":\"meta.in\",\"has_ts\":true,\"user_id\":\"u0\"}");
  assert_string_equal(
      col.r[2].value,
      "{\"part\":0,\"off\":2,\"topic\":\"meta.in\",\"has_ts\":true,\"user_id\":\"u1\"}");
  collector_free(&col);
  free(script);
  /* options are checked when the table is created */
  assert_int_equal(fl_sql_env_new(&s, err, sizeof err), 0);
  assert_int_equal(
      fl_sql_execute(s,
                     "CREATE TABLE k (a INT) WITH ('connector' = 'kafka', 'topic' = 't', "
                     "'properties.bootstrap.servers' = 'x', 'format' = 'json', "
                     "'scan.startup.mod' = 'earliest-offset')",
                     err, sizeof err),
      FL_EINVAL);
  assert_non_null(strstr(err, "did you mean 'scan.startup.mode'?"));
  assert_int_equal(
      fl_sql_execute(s,
                     "CREATE TABLE k (a INT) WITH ('connector' = 'kafka', 'topic' = 't', "
                     "'format' = 'json');\nSELECT a FROM k",
                     err, sizeof err),
      FL_EINVAL);
  assert_non_null(strstr(err, "needs 'properties.bootstrap.servers'"));
  fl_sql_env_destroy(s);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(issue_statements_match_flink_agg),
      cmocka_unit_test(hybrid_sql_and_c_exactly_once_across_sigkill),
      cmocka_unit_test(metadata_columns_and_bounded_scans),
  };
  return cmocka_run_group_tests(tests, group_setup, kcat_group_teardown);
}
