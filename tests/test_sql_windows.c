/* SQL windows and the other streaming operators through the public API: window table
 * functions (TUMBLE, HOP, CUMULATE, SESSION with PARTITION BY) with GROUP BY window_start,
 * window_end and the aggregates (COUNT, COUNT(DISTINCT), SUM, MIN, MAX, AVG, STDDEV,
 * FIRST_VALUE, FILTER), late rows, cascaded window aggregations, window Top-N, OVER
 * aggregations (ROWS, RANGE, UNBOUNDED), interval joins, window joins, processing-time
 * windows, and the refusal of updating queries. Inputs are JSON files with epoch
 * millisecond times and watermarks after every row, so what is late is decided by the
 * input alone. */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "fl_test_util.h"
#include "sql_test_util.h"

static char *ev_path;

/* Events of users a and b; the row at 1500 arrives after the watermark passed 2999 (late
 * for 1 s and 2 s windows). */
static const char events[] =
    "{\"u\":\"a\",\"v\":1,\"ts\":0}\n"
    "{\"u\":\"b\",\"v\":2,\"ts\":500}\n"
    "{\"u\":\"a\",\"v\":3,\"ts\":1200}\n"
    "{\"u\":\"a\",\"v\":null,\"ts\":1900}\n"
    "{\"u\":\"b\",\"v\":4,\"ts\":4000}\n"
    "{\"u\":\"a\",\"v\":5,\"ts\":1500}\n"
    "{\"u\":\"a\",\"v\":6,\"ts\":4100}\n"
    "{\"u\":\"b\",\"v\":7,\"ts\":9000}\n";

static int setup(void **state) {
  sql_tmp_init("windows");
  char path[512];
  sql_write_file("events.json", events, path, sizeof path);
  ev_path = strdup(path);
  return 0;
}

static int teardown(void **state) {
  free(ev_path);
  sql_tmp_cleanup();
  return 0;
}

/* The events table (watermark = largest ts - 1 s) followed by q. */
static char *with_events(const char *q) {
  return sql_fmt(
      "CREATE TABLE ev (u STRING, v INT, ts TIMESTAMP(3), WATERMARK FOR ts AS ts - INTERVAL '1' SECOND) "
      "WITH ('connector' = 'filesystem', 'path' = '%s', 'format' = 'json');\n%s",
      ev_path, q);
}

#define EXPECT_Q(q, ...)         \
  do {                           \
    char *s_ = with_events(q);   \
    SQL_EXPECT(s_, __VA_ARGS__); \
    free(s_);                    \
  } while (0)

/* Asserts that q over the events table fails with code and the fragments. */
static void query_fails(const char *q, int code, const char *frag1, const char *frag2) {
  char *s = with_events(q);
  sql_fails(s, code, frag1, frag2);
  free(s);
}

static void tumble_aggregates_drop_late_rows(void **state) {
  EXPECT_Q(
      "SELECT u, window_start, window_end, COUNT(*) AS n, COUNT(v) AS nv, SUM(v) AS s, MIN(v) AS mn, "
      "MAX(v) AS mx, AVG(v) AS av FROM TABLE(TUMBLE(TABLE ev, DESCRIPTOR(ts), INTERVAL '2' SECOND)) "
      "GROUP BY u, window_start, window_end",
      "{\"u\":\"a\",\"window_start\":\"1970-01-01 00:00:00\",\"window_end\":\"1970-01-01 00:00:02\",\"n\":3,"
      "\"nv\":2,\"s\":4,\"mn\":1,\"mx\":3,\"av\":2}",
      "{\"u\":\"a\",\"window_start\":\"1970-01-01 00:00:04\",\"window_end\":\"1970-01-01 00:00:06\",\"n\":1,"
      "\"nv\":1,\"s\":6,\"mn\":6,\"mx\":6,\"av\":6}",
      "{\"u\":\"b\",\"window_start\":\"1970-01-01 00:00:00\",\"window_end\":\"1970-01-01 00:00:02\",\"n\":1,"
      "\"nv\":1,\"s\":2,\"mn\":2,\"mx\":2,\"av\":2}",
      "{\"u\":\"b\",\"window_start\":\"1970-01-01 00:00:04\",\"window_end\":\"1970-01-01 00:00:06\",\"n\":1,"
      "\"nv\":1,\"s\":4,\"mn\":4,\"mx\":4,\"av\":4}",
      "{\"u\":\"b\",\"window_start\":\"1970-01-01 00:00:08\",\"window_end\":\"1970-01-01 00:00:10\",\"n\":1,"
      "\"nv\":1,\"s\":7,\"mn\":7,\"mx\":7,\"av\":7}");
}

static void filter_distinct_and_statistics(void **state) {
  EXPECT_Q(
      "SELECT window_end, COUNT(DISTINCT u) AS users, COUNT(*) FILTER (WHERE v > 2) AS big, "
      "SUM(v) FILTER (WHERE u = 'a') AS sa, STDDEV_POP(v) AS sd, FIRST_VALUE(v) AS f, "
      "MAX(u) AS mu, SUM(v) * 1.0 / COUNT(v) AS ratio "
      "FROM TABLE(TUMBLE(TABLE ev, DESCRIPTOR(ts), INTERVAL '5' SECOND)) GROUP BY window_start, window_end "
      "HAVING COUNT(*) > 1",
      "{\"window_end\":\"1970-01-01 00:00:05\",\"users\":2,\"big\":4,\"sa\":15,\"sd\":1.707825127659933,"
      "\"f\":1,\"mu\":\"b\",\"ratio\":3.500000000000000000000}");
}

static void hop_windows(void **state) {
  EXPECT_Q(
      "SELECT window_start, window_end, COUNT(*) AS n, SUM(v) AS s FROM TABLE(HOP(TABLE ev, "
      "DESCRIPTOR(ts), INTERVAL '2' SECOND, INTERVAL '4' SECOND)) GROUP BY window_start, window_end",
      "{\"window_start\":\"1970-01-01 00:00:00\",\"window_end\":\"1970-01-01 00:00:04\",\"n\":5,\"s\":11}",
      "{\"window_start\":\"1970-01-01 00:00:02\",\"window_end\":\"1970-01-01 00:00:06\",\"n\":2,\"s\":10}",
      "{\"window_start\":\"1970-01-01 00:00:04\",\"window_end\":\"1970-01-01 00:00:08\",\"n\":2,\"s\":10}",
      "{\"window_start\":\"1970-01-01 00:00:06\",\"window_end\":\"1970-01-01 00:00:10\",\"n\":1,\"s\":7}",
      "{\"window_start\":\"1970-01-01 00:00:08\",\"window_end\":\"1970-01-01 00:00:12\",\"n\":1,\"s\":7}",
      "{\"window_start\":\"1969-12-31 23:59:58\",\"window_end\":\"1970-01-01 00:00:02\",\"n\":4,\"s\":6}");
}

static void cumulate_windows(void **state) {
  EXPECT_Q(
      "SELECT u, window_start, window_end, SUM(v) AS s FROM TABLE(CUMULATE(TABLE ev, DESCRIPTOR(ts), "
      "INTERVAL '2' SECOND, INTERVAL '6' SECOND)) WHERE u = 'a' GROUP BY u, window_start, window_end",
      "{\"u\":\"a\",\"window_start\":\"1970-01-01 00:00:00\",\"window_end\":\"1970-01-01 00:00:02\",\"s\":4}",
      "{\"u\":\"a\",\"window_start\":\"1970-01-01 00:00:00\",\"window_end\":\"1970-01-01 00:00:04\",\"s\":9}",
      "{\"u\":\"a\",\"window_start\":\"1970-01-01 00:00:00\",\"window_end\":\"1970-01-01 00:00:06\",\"s\":15}");
}

static void session_windows_per_partition(void **state) {
  /* a5 at 1500 would join a's session [1200, 2900), which closed at watermark 3000 */
  EXPECT_Q(
      "SELECT u, window_start, window_end, COUNT(*) AS n FROM TABLE(SESSION(TABLE ev PARTITION BY u, "
      "DESCRIPTOR(ts), INTERVAL '1' SECOND)) GROUP BY u, window_start, window_end",
      "{\"u\":\"a\",\"window_start\":\"1970-01-01 00:00:00\",\"window_end\":\"1970-01-01 00:00:01\",\"n\":1}",
      "{\"u\":\"a\",\"window_start\":\"1970-01-01 00:00:01.2\",\"window_end\":\"1970-01-01 00:00:02.9\",\"n\":2}",
      "{\"u\":\"a\",\"window_start\":\"1970-01-01 00:00:04.1\",\"window_end\":\"1970-01-01 00:00:05.1\",\"n\":1}",
      "{\"u\":\"b\",\"window_start\":\"1970-01-01 00:00:00.5\",\"window_end\":\"1970-01-01 00:00:01.5\",\"n\":1}",
      "{\"u\":\"b\",\"window_start\":\"1970-01-01 00:00:04\",\"window_end\":\"1970-01-01 00:00:05\",\"n\":1}",
      "{\"u\":\"b\",\"window_start\":\"1970-01-01 00:00:09\",\"window_end\":\"1970-01-01 00:00:10\",\"n\":1}");
  query_fails(
      "SELECT u, COUNT(*) FROM TABLE(SESSION(TABLE ev PARTITION BY u, DESCRIPTOR(ts), "
      "INTERVAL '1' SECOND)) GROUP BY window_start, window_end",
      FL_EINVAL, "must include its PARTITION BY", NULL);
}

static void window_tvf_rows_and_cascaded_aggregation(void **state) {
  EXPECT_Q(
      "SELECT u, v, window_start, window_end, window_time FROM TABLE(TUMBLE(TABLE ev, DESCRIPTOR(ts), "
      "INTERVAL '5' SECOND)) WHERE v > 5",
      "{\"u\":\"a\",\"v\":6,\"window_start\":\"1970-01-01 00:00:00\",\"window_end\":\"1970-01-01 00:00:05\","
      "\"window_time\":\"1970-01-01 00:00:04.999\"}",
      "{\"u\":\"b\",\"v\":7,\"window_start\":\"1970-01-01 00:00:05\",\"window_end\":\"1970-01-01 00:00:10\","
      "\"window_time\":\"1970-01-01 00:00:09.999\"}");
  /* the largest per-user sum of each window: an aggregation of an aggregation */
  EXPECT_Q(
      "CREATE VIEW per_user AS SELECT u, window_start, window_end, SUM(v) AS s FROM TABLE(TUMBLE(TABLE ev, "
      "DESCRIPTOR(ts), INTERVAL '5' SECOND)) GROUP BY u, window_start, window_end;\n"
      "SELECT window_start, window_end, MAX(s) AS top, COUNT(*) AS users FROM per_user GROUP BY window_start, "
      "window_end",
      "{\"window_start\":\"1970-01-01 00:00:00\",\"window_end\":\"1970-01-01 00:00:05\",\"top\":15,\"users\":2}",
      "{\"window_start\":\"1970-01-01 00:00:05\",\"window_end\":\"1970-01-01 00:00:10\",\"top\":7,\"users\":1}");
}

static void window_top_n(void **state) {
  EXPECT_Q(
      "SELECT * FROM (SELECT u, v, window_start, window_end, ROW_NUMBER() OVER (PARTITION BY window_start, "
      "window_end ORDER BY v DESC) AS rownum FROM TABLE(TUMBLE(TABLE ev, DESCRIPTOR(ts), INTERVAL '5' SECOND)) "
      "WHERE v IS NOT NULL) WHERE rownum <= 2",
      "{\"u\":\"a\",\"v\":5,\"window_start\":\"1970-01-01 00:00:00\",\"window_end\":\"1970-01-01 00:00:05\","
      "\"rownum\":2}",
      "{\"u\":\"a\",\"v\":6,\"window_start\":\"1970-01-01 00:00:00\",\"window_end\":\"1970-01-01 00:00:05\","
      "\"rownum\":1}",
      "{\"u\":\"b\",\"v\":7,\"window_start\":\"1970-01-01 00:00:05\",\"window_end\":\"1970-01-01 00:00:10\","
      "\"rownum\":1}");
  /* Top-N of a window aggregation, per user */
  EXPECT_Q(
      "SELECT u, window_end, s FROM (SELECT *, ROW_NUMBER() OVER (PARTITION BY window_start, window_end "
      "ORDER BY s ASC) AS rn FROM (SELECT u, window_start, window_end, SUM(v) AS s FROM TABLE(TUMBLE(TABLE ev, "
      "DESCRIPTOR(ts), INTERVAL '5' SECOND)) GROUP BY u, window_start, window_end)) WHERE rn = 1",
      "{\"u\":\"b\",\"window_end\":\"1970-01-01 00:00:05\",\"s\":6}",
      "{\"u\":\"b\",\"window_end\":\"1970-01-01 00:00:10\",\"s\":7}");
  query_fails(
      "SELECT * FROM (SELECT u, ROW_NUMBER() OVER (PARTITION BY u ORDER BY v) AS rn FROM ev) "
      "WHERE rn <= 1",
      FL_ENOTSUP, "Top-N without window_start and window_end", "updates earlier results");
  query_fails(
      "SELECT u, ROW_NUMBER() OVER (PARTITION BY window_start, window_end ORDER BY v) AS rn FROM "
      "TABLE(TUMBLE(TABLE ev, DESCRIPTOR(ts), INTERVAL '5' SECOND))",
      FL_ENOTSUP, "needs a filter", NULL);
}

static void over_rows_range_and_unbounded(void **state) {
  EXPECT_Q(
      "SELECT u, v, SUM(v) OVER (PARTITION BY u ORDER BY ts ROWS BETWEEN 1 PRECEDING AND CURRENT ROW) AS s2, "
      "COUNT(*) OVER (PARTITION BY u ORDER BY ts ROWS BETWEEN 1 PRECEDING AND CURRENT ROW) AS c2, "
      "MAX(v) OVER (PARTITION BY u ORDER BY ts ROWS BETWEEN 1 PRECEDING AND CURRENT ROW) AS m2 FROM ev",
      "{\"u\":\"a\",\"v\":1,\"s2\":1,\"c2\":1,\"m2\":1}",
      "{\"u\":\"a\",\"v\":3,\"s2\":4,\"c2\":2,\"m2\":3}",
      "{\"u\":\"a\",\"v\":6,\"s2\":6,\"c2\":2,\"m2\":6}",
      "{\"u\":\"a\",\"v\":null,\"s2\":3,\"c2\":2,\"m2\":3}",
      "{\"u\":\"b\",\"v\":2,\"s2\":2,\"c2\":1,\"m2\":2}",
      "{\"u\":\"b\",\"v\":4,\"s2\":6,\"c2\":2,\"m2\":4}",
      "{\"u\":\"b\",\"v\":7,\"s2\":11,\"c2\":2,\"m2\":7}");
  /* RANGE: the rows of the last 2 s, the late row at 1500 dropped */
  EXPECT_Q(
      "SELECT u, v, SUM(v) OVER (PARTITION BY u ORDER BY ts RANGE BETWEEN INTERVAL '2' SECOND PRECEDING AND "
      "CURRENT ROW) AS s, MIN(v) OVER (PARTITION BY u ORDER BY ts RANGE BETWEEN INTERVAL '2' SECOND PRECEDING "
      "AND CURRENT ROW) AS mn, AVG(v) OVER (PARTITION BY u ORDER BY ts RANGE BETWEEN INTERVAL '2' SECOND "
      "PRECEDING AND CURRENT ROW) AS av FROM ev",
      "{\"u\":\"a\",\"v\":1,\"s\":1,\"mn\":1,\"av\":1}",
      "{\"u\":\"a\",\"v\":3,\"s\":4,\"mn\":1,\"av\":2}",
      "{\"u\":\"a\",\"v\":null,\"s\":4,\"mn\":1,\"av\":2}",
      "{\"u\":\"a\",\"v\":6,\"s\":6,\"mn\":6,\"av\":6}",
      "{\"u\":\"b\",\"v\":2,\"s\":2,\"mn\":2,\"av\":2}",
      "{\"u\":\"b\",\"v\":4,\"s\":4,\"mn\":4,\"av\":4}",
      "{\"u\":\"b\",\"v\":7,\"s\":7,\"mn\":7,\"av\":7}");
  EXPECT_Q("SELECT u, v, COUNT(*) OVER (PARTITION BY u ORDER BY ts) AS n FROM ev",
           "{\"u\":\"a\",\"v\":1,\"n\":1}", "{\"u\":\"a\",\"v\":3,\"n\":2}",
           "{\"u\":\"a\",\"v\":6,\"n\":4}", "{\"u\":\"a\",\"v\":null,\"n\":3}",
           "{\"u\":\"b\",\"v\":2,\"n\":1}", "{\"u\":\"b\",\"v\":4,\"n\":2}",
           "{\"u\":\"b\",\"v\":7,\"n\":3}");
  query_fails("SELECT SUM(v) OVER (PARTITION BY u ORDER BY v) FROM ev", FL_EINVAL,
              "ordered by a time attribute", NULL);
  query_fails("SELECT SUM(v) OVER (ORDER BY ts ROWS BETWEEN 1 PRECEDING AND 1 FOLLOWING) FROM ev",
              FL_EPARSE, "must end at CURRENT ROW", NULL);
}

static char *join_tables(const char *q) {
  char lp[512], rp[512];
  sql_write_file(
      "orders.json",
      "{\"id\":1,\"ts\":1000}\n{\"id\":2,\"ts\":2000}\n{\"id\":3,\"ts\":3000}\n{\"id\":4,\"ts\":12000}\n",
      lp, sizeof lp);
  sql_write_file(
      "ships.json",
      "{\"oid\":1,\"ts\":1500}\n{\"oid\":1,\"ts\":2500}\n{\"oid\":3,\"ts\":3500}\n{\"oid\":2,\"ts\":9000}\n"
      "{\"oid\":4,\"ts\":14000}\n",
      rp, sizeof rp);
  return sql_fmt(
      "CREATE TABLE orders (id INT, ts TIMESTAMP(3), WATERMARK FOR ts AS ts - INTERVAL '1' SECOND) WITH "
      "('connector' = 'filesystem', 'path' = '%s', 'format' = 'json');\n"
      "CREATE TABLE ships (oid INT, ts TIMESTAMP(3), WATERMARK FOR ts AS ts - INTERVAL '1' SECOND) WITH "
      "('connector' = 'filesystem', 'path' = '%s', 'format' = 'json');\n%s",
      lp, rp, q);
}

static void interval_joins(void **state) {
  char *s = join_tables(
      "SELECT o.id, s.ts FROM orders o, ships s WHERE o.id = s.oid AND s.ts BETWEEN o.ts AND "
      "o.ts + INTERVAL '2' SECOND");
  SQL_EXPECT(s, "{\"id\":1,\"ts\":\"1970-01-01 00:00:01.5\"}",
             "{\"id\":1,\"ts\":\"1970-01-01 00:00:02.5\"}",
             "{\"id\":3,\"ts\":\"1970-01-01 00:00:03.5\"}",
             "{\"id\":4,\"ts\":\"1970-01-01 00:00:14\"}");
  free(s);
  s = join_tables(
      "SELECT o.id, s.ts AS shipped FROM orders o JOIN ships s ON o.id = s.oid AND s.ts > o.ts AND "
      "s.ts < o.ts + INTERVAL '1' SECOND");
  SQL_EXPECT(s, "{\"id\":1,\"shipped\":\"1970-01-01 00:00:01.5\"}",
             "{\"id\":3,\"shipped\":\"1970-01-01 00:00:03.5\"}");
  free(s);
  s = join_tables("SELECT o.id FROM orders o JOIN ships s ON o.id = s.oid");
  sql_fails(s, FL_ENOTSUP, "regular join", "updating");
  free(s);
  s = join_tables(
      "SELECT o.id FROM orders o LEFT JOIN ships s ON o.id = s.oid AND s.ts BETWEEN o.ts AND o.ts");
  sql_fails(s, FL_ENOTSUP, "outer joins", NULL);
  free(s);
}

static void window_joins(void **state) {
  char *s = join_tables(
      "SELECT L.id, L.window_start, L.window_end, R.ts FROM "
      "(SELECT * FROM TABLE(TUMBLE(TABLE orders, DESCRIPTOR(ts), INTERVAL '5' SECOND))) L JOIN "
      "(SELECT * FROM TABLE(TUMBLE(TABLE ships, DESCRIPTOR(ts), INTERVAL '5' SECOND))) R "
      "ON L.id = R.oid AND L.window_start = R.window_start AND L.window_end = R.window_end");
  SQL_EXPECT(
      s,
      "{\"id\":1,\"window_start\":\"1970-01-01 00:00:00\",\"window_end\":\"1970-01-01 00:00:05\","
      "\"ts\":\"1970-01-01 00:00:01.5\"}",
      "{\"id\":1,\"window_start\":\"1970-01-01 00:00:00\",\"window_end\":\"1970-01-01 00:00:05\","
      "\"ts\":\"1970-01-01 00:00:02.5\"}",
      "{\"id\":3,\"window_start\":\"1970-01-01 00:00:00\",\"window_end\":\"1970-01-01 00:00:05\","
      "\"ts\":\"1970-01-01 00:00:03.5\"}",
      "{\"id\":4,\"window_start\":\"1970-01-01 00:00:10\",\"window_end\":\"1970-01-01 00:00:15\","
      "\"ts\":\"1970-01-01 00:00:14\"}");
  free(s);
}

static void unbounded_aggregations_are_refused(void **state) {
  query_fails("SELECT u, COUNT(*) FROM ev GROUP BY u", FL_ENOTSUP, "unbounded aggregation",
              "updating result");
  query_fails("SELECT COUNT(*) FROM ev", FL_ENOTSUP, "unbounded aggregation", NULL);
  query_fails(
      "SELECT u, window_start, window_end, v FROM TABLE(TUMBLE(TABLE ev, DESCRIPTOR(ts), INTERVAL '1' "
      "SECOND)) GROUP BY u, window_start, window_end",
      FL_EINVAL, "column 'v' is neither in GROUP BY nor inside an aggregate", NULL);
  query_fails(
      "SELECT COUNT(*) FROM TABLE(TUMBLE(TABLE ev, DESCRIPTOR(u), INTERVAL '1' SECOND)) GROUP BY "
      "window_start, window_end",
      FL_EINVAL, "must be a time attribute", NULL);
  query_fails(
      "SELECT SUM(u) FROM TABLE(TUMBLE(TABLE ev, DESCRIPTOR(ts), INTERVAL '1' SECOND)) GROUP BY "
      "window_start, window_end",
      FL_EINVAL, "SUM needs a number", NULL);
}

/* A processing-time clock that stands still: every row falls into one window. */
static int64_t still(void *opaque) { return 1700000000123; }

static void processing_time_windows(void **state) {
  char *script = sql_fmt(
      "CREATE TABLE ev (u STRING, v INT, pt AS PROCTIME()) WITH ('connector' = 'filesystem', "
      "'path' = '%s', 'format' = 'json');\n"
      "SELECT u, window_start, window_end, COUNT(*) AS n FROM TABLE(TUMBLE(TABLE ev, DESCRIPTOR(pt), "
      "INTERVAL '10' SECOND)) GROUP BY u, window_start, window_end",
      ev_path);
  fl_sql_env_t *s;
  char err[1024];
  assert_int_equal(fl_sql_env_new(&s, err, sizeof err), 0);
  sql_rows_t r = {.mu = PTHREAD_MUTEX_INITIALIZER};
  fl_sql_on_select(s, sql_rows_collect, &r);
  if (fl_sql_execute(s, script, err, sizeof err)) fail_msg("%s", err);
  fl_env_t *env = fl_sql_env_env(s, err, sizeof err);
  assert_int_equal(fl_env_set_clock(env, still, NULL), 0);
  assert_int_equal(fl_env_execute(env, "proctime"), 0);
  fl_sql_env_destroy(s);
  sql_rows_sort(&r);
  const char *const want[] = {
      "{\"u\":\"a\",\"window_start\":\"2023-11-14 22:13:20\",\"window_end\":\"2023-11-14 22:13:30\",\"n\":5}",
      "{\"u\":\"b\",\"window_start\":\"2023-11-14 22:13:20\",\"window_end\":\"2023-11-14 22:13:30\",\"n\":3}",
      NULL};
  sql_expect(&r, want);
  sql_rows_free(&r);
  free(script);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(tumble_aggregates_drop_late_rows),
      cmocka_unit_test(filter_distinct_and_statistics),
      cmocka_unit_test(hop_windows),
      cmocka_unit_test(cumulate_windows),
      cmocka_unit_test(session_windows_per_partition),
      cmocka_unit_test(window_tvf_rows_and_cascaded_aggregation),
      cmocka_unit_test(window_top_n),
      cmocka_unit_test(over_rows_range_and_unbounded),
      cmocka_unit_test(interval_joins),
      cmocka_unit_test(window_joins),
      cmocka_unit_test(unbounded_aggregations_are_refused),
      cmocka_unit_test(processing_time_windows),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
