/* The SQL API for mixing SQL with DataStream code: a DataStream registered as a table
 * (physical columns built with the row builder, a watermark on a column or the stream's
 * own with SOURCE_WATERMARK(), the record time as METADATA 'rowtime'), a query's result
 * as a DataStream consumed by a C KeyedProcessFunction (the SQL-aggregates-then-C-state-
 * machine pattern), user-defined scalar and aggregate functions written in C, schemas,
 * rows and their JSON form. */
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

/* Purchases (user, amount, time) as rows of "user STRING, amount DOUBLE, ts
 * TIMESTAMP(3)", with the same times as record timestamps. */
typedef struct purchase {
  const char *user;
  double amount;
  int64_t ts;
} purchase_t;

static const purchase_t purchases[] = {{"ann", 10, 1000}, {"bob", 5, 1500},   {"ann", 2.5, 2500},
                                       {"ann", 7, 6000},  {"bob", 1, 7000},   {"bob", 4, 12000},
                                       {"ann", 1, 13000}, {"cid", 100, 14000}};
#define NP (sizeof purchases / sizeof *purchases)

static fl_stream_t *purchase_stream(fl_env_t *env, fl_sql_schema_t *schema, bool timestamps_only) {
  fl_sql_row_builder_t *b = fl_sql_row_builder_new(schema);
  assert_non_null(b);
  fl_record_t recs[NP];
  void *copies[NP];
  for (size_t i = 0; i < NP; i++) {
    fl_sql_value_t v = {0};
    v.s = purchases[i].user;
    v.len = strlen(purchases[i].user);
    assert_int_equal(fl_sql_row_set(b, 0, &v), 0);
    memset(&v, 0, sizeof v);
    v.d = purchases[i].amount;
    assert_int_equal(fl_sql_row_set(b, 1, &v), 0);
    if (!timestamps_only) {
      memset(&v, 0, sizeof v);
      v.i = purchases[i].ts;
      assert_int_equal(fl_sql_row_set(b, 2, &v), 0);
    }
    size_t len;
    const void *row = fl_sql_row_finish(b, &len);
    assert_non_null(row);
    copies[i] = malloc(len);
    memcpy(copies[i], row, len);
    recs[i] = (fl_record_t){NULL, 0, copies[i], len, purchases[i].ts};
  }
  fl_stream_t *s = fl_source_collection(env, "purchases", recs, NP);
  for (size_t i = 0; i < NP; i++) free(copies[i]);
  fl_sql_row_builder_destroy(b);
  return s;
}

static void rows_schemas_and_json(void **state) {
  char err[512];
  fl_sql_schema_t *sc =
      fl_sql_schema_new("a INT, b STRING, c DOUBLE, d TIMESTAMP(3), e BOOLEAN", err, sizeof err);
  assert_non_null(sc);
  assert_int_equal(fl_sql_schema_columns(sc), 5);
  assert_string_equal(fl_sql_schema_name(sc, 1), "b");
  assert_string_equal(fl_sql_schema_type(sc, 3), "TIMESTAMP(3)");
  assert_int_equal(fl_sql_schema_find(sc, "c"), 2);
  assert_int_equal(fl_sql_schema_find(sc, "zz"), FL_ENOTFOUND);
  fl_sql_row_builder_t *b = fl_sql_row_builder_new(sc);
  fl_sql_value_t v = {.i = 42};
  assert_int_equal(fl_sql_row_set(b, 0, &v), 0);
  v = (fl_sql_value_t){.s = "x\"y", .len = 3};
  assert_int_equal(fl_sql_row_set(b, 1, &v), 0);
  v = (fl_sql_value_t){.i = 1704067200500};
  assert_int_equal(fl_sql_row_set(b, 3, &v), 0);
  v = (fl_sql_value_t){.i = 1};
  assert_int_equal(fl_sql_row_set(b, 4, &v), 0);
  assert_int_equal(fl_sql_row_set(b, 5, &v), FL_EINVAL);
  size_t len;
  const void *row = fl_sql_row_finish(b, &len);
  char json[256];
  int n = fl_sql_row_to_json(sc, row, len, json, sizeof json);
  assert_string_equal(
      json, "{\"a\":42,\"b\":\"x\\\"y\",\"c\":null,\"d\":\"2024-01-01 00:00:00.5\",\"e\":true}");
  assert_int_equal(n, (int)strlen(json));
  fl_sql_value_t out;
  assert_int_equal(fl_sql_row_get(sc, row, len, 1, &out), 0);
  assert_int_equal(out.len, 3);
  assert_memory_equal(out.s, "x\"y", 3);
  assert_int_equal(fl_sql_row_get(sc, row, len, 2, &out), 0);
  assert_true(out.is_null);
  assert_int_equal(fl_sql_row_get(sc, row, 10, 0, &out), FL_EINVAL);
  assert_int_equal(fl_sql_row_to_json(sc, row, 10, json, sizeof json), FL_EINVAL);
  fl_sql_row_builder_destroy(b);
  fl_sql_schema_destroy(sc);
  assert_null(fl_sql_schema_new("a INT,", err, sizeof err));
  assert_non_null(strstr(err, "line 1, column 7"));
}

/* A KeyedProcessFunction over the SQL window sums: per user, counts the windows whose
 * total rose above the previous window's (a small state machine). */
typedef struct rising {
  const fl_sql_schema_t *schema;
  const fl_state_desc_t *last;
  collector_t *out;
} rising_t;

static int rising_process(fl_context_t *ctx, const fl_record_t *in, void *instance) {
  rising_t *r = instance;
  fl_sql_value_t total, user;
  int ti = fl_sql_schema_find(r->schema, "total"), ui = fl_sql_schema_find(r->schema, "user");
  if (fl_sql_row_get(r->schema, in->value, in->value_len, ti, &total) ||
      fl_sql_row_get(r->schema, in->value, in->value_len, ui, &user))
    return fl_ctx_fail(ctx, "bad row");
  const void *prev;
  size_t plen;
  int rc = fl_value_get(ctx, r->last, &prev, &plen);
  double p = 0;
  if (rc == 1) memcpy(&p, prev, sizeof p);
  char line[128];
  int n = snprintf(line, sizeof line, "%.*s %s %.1f", (int)user.len, user.s,
                   rc == 1 && total.d > p ? "rising" : "steady", total.d);
  fl_value_set(ctx, r->last, &total.d, sizeof total.d);
  fl_record_t rec = {NULL, 0, line, (size_t)n, in->timestamp};
  return collector_write(ctx, &rec, r->out);
}

static int user_key(fl_context_t *ctx, const fl_record_t *in, const void **key, size_t *key_len,
                    void *opaque) {
  const fl_sql_schema_t *schema = opaque;
  fl_sql_value_t v;
  if (fl_sql_row_get(schema, in->value, in->value_len, fl_sql_schema_find(schema, "user"), &v))
    return FL_EINVAL;
  *key = v.s;
  *key_len = v.len;
  return 0;
}

static int rising_open(fl_context_t *ctx, void *opaque, void **instance) {
  *instance = opaque;
  return 0;
}

static const fl_process_fn_t rising_fn = {
    .version = FL_PROCESS_FN_VERSION, .open = rising_open, .process = rising_process};

static int cmp_rec(const void *a, const void *b) {
  return strcmp(((const col_rec_t *)a)->value, ((const col_rec_t *)b)->value);
}

/* A SQL environment over a new environment *env with parallelism and watermarks after
 * every record. */
static fl_sql_env_t *sql_over_env(const char *parallelism, fl_env_t **env) {
  const char *kv[] = {"parallelism", parallelism, "pipeline.auto-watermark-interval", "0", NULL};
  *env = env_of(kv);
  char err[1024];
  fl_sql_env_t *s;
  if (fl_sql_env_wrap(&s, *env, err, sizeof err)) fail_msg("%s", err);
  return s;
}

static void datastream_to_sql_to_keyed_process_function(void **state) {
  char err[1024];
  fl_env_t *env;
  fl_sql_env_t *s = sql_over_env("2", &env);
  fl_sql_schema_t *phys =
      fl_sql_schema_new("user STRING, amount DOUBLE, ts TIMESTAMP(3)", err, sizeof err);
  fl_stream_t *in = purchase_stream(env, phys, false);
  int rc = fl_sql_register_stream(s, "purchases", in,
                                  "user STRING, amount DOUBLE, ts TIMESTAMP(3), "
                                  "WATERMARK FOR ts AS ts - INTERVAL '1' SECOND",
                                  err, sizeof err);
  if (rc) fail_msg("%s", err);
  const fl_sql_schema_t *schema;
  fl_stream_t *sums = fl_sql_query(
      s,
      "SELECT user, window_end, SUM(amount) AS total FROM TABLE(TUMBLE(TABLE purchases, "
      "DESCRIPTOR(ts), INTERVAL '5' SECOND)) GROUP BY user, window_start, window_end",
      &schema, err, sizeof err);
  if (!sums) fail_msg("%s", err);
  assert_int_equal(fl_sql_schema_columns(schema), 3);
  assert_string_equal(fl_sql_schema_type(schema, 2), "DOUBLE");
  collector_t col;
  collector_init(&col);
  rising_t r = {schema, fl_state_value(env, "last"), &col};
  fl_stream_t *out =
      fl_keyed_process(fl_stream_key_by(sums, user_key, (void *)schema), "rising", &rising_fn, &r);
  assert_int_equal(fl_stream_sink(out, "collect", &collector_sink, &col), 0);
  if (fl_env_execute(env, "hybrid")) fail_msg("%s", fl_env_error(env));
  qsort(col.r, col.n, sizeof *col.r, cmp_rec);
  /* ann: 12.5, 7, 1; bob: 5, 1, 4 (rising); cid: 100 */
  const char *want[] = {"ann steady 1.0", "ann steady 12.5", "ann steady 7.0",  "bob rising 4.0",
                        "bob steady 1.0", "bob steady 5.0",  "cid steady 100.0"};
  assert_int_equal(col.n, 7);
  for (size_t i = 0; i < col.n; i++) assert_string_equal(col.r[i].value, want[i]);
  /* the window ends travel as the records' timestamps (window_end - 1) */
  collector_free(&col);
  fl_sql_env_destroy(s);
  fl_env_destroy(env);
  fl_sql_schema_destroy(phys);
}

static void source_watermarks_and_rowtime_metadata(void **state) {
  char err[1024];
  fl_env_t *env;
  fl_sql_env_t *s = sql_over_env("1", &env);
  fl_sql_schema_t *phys = fl_sql_schema_new("user STRING, amount DOUBLE", err, sizeof err);
  fl_stream_t *in = purchase_stream(env, phys, true);
  fl_watermark_strategy_t ws = {.version = FL_WATERMARK_STRATEGY_VERSION,
                                .kind = FL_WATERMARKS_MONOTONOUS};
  in = fl_stream_assign_timestamps(in, "stream-watermarks", &ws);
  int rc = fl_sql_register_stream(
      s, "p", in,
      "user STRING, amount DOUBLE, rt TIMESTAMP_LTZ(3) METADATA FROM 'rowtime', "
      "big AS amount > 5, WATERMARK FOR rt AS SOURCE_WATERMARK()",
      err, sizeof err);
  if (rc) fail_msg("%s", err);
  sql_rows_t rows = {.mu = PTHREAD_MUTEX_INITIALIZER};
  fl_sql_on_select(s, sql_rows_collect, &rows);
  rc = fl_sql_execute(
      s,
      "SELECT window_end, COUNT(*) AS n, SUM(amount) FILTER (WHERE big) AS big_total FROM "
      "TABLE(TUMBLE(TABLE p, DESCRIPTOR(rt), INTERVAL '10' SECOND)) GROUP BY window_start, window_end",
      err, sizeof err);
  if (rc) fail_msg("%s", err);
  assert_int_equal(fl_sql_execute(s, "SET 'parallelism' = '2'", err, sizeof err), FL_ECONFIG);
  if (fl_env_execute(env, "source-watermarks")) fail_msg("%s", fl_env_error(env));
  sql_rows_sort(&rows);
  /* window_start and window_end are TIMESTAMP(3) (local time, here UTC) also for a
   * TIMESTAMP_LTZ time attribute, as in Flink */
  const char *const want[] = {
      "{\"window_end\":\"1970-01-01 00:00:10\",\"n\":5,\"big_total\":17.0}",
      "{\"window_end\":\"1970-01-01 00:00:20\",\"n\":3,\"big_total\":100.0}", NULL};
  sql_expect(&rows, want);
  sql_rows_free(&rows);
  fl_sql_env_destroy(s);
  fl_env_destroy(env);
  fl_sql_schema_destroy(phys);
}

static void rows_that_are_not_rows_fail_the_job(void **state) {
  char err[1024];
  fl_env_t *env;
  assert_int_equal(fl_env_new(&env, NULL, err, sizeof err), 0);
  fl_sql_env_t *s;
  assert_int_equal(fl_sql_env_wrap(&s, env, err, sizeof err), 0);
  fl_record_t bad = rec_str(NULL, "not a row", 1);
  fl_stream_t *in = fl_source_collection(env, "bad", &bad, 1);
  assert_int_equal(fl_sql_register_stream(s, "bad", in, "a INT, b STRING", err, sizeof err), 0);
  assert_int_equal(fl_sql_register_stream(s, "bad", in, "a INT", err, sizeof err), FL_EINVAL);
  assert_non_null(strstr(err, "already exists"));
  sql_rows_t rows = {.mu = PTHREAD_MUTEX_INITIALIZER};
  fl_sql_on_select(s, sql_rows_collect, &rows);
  assert_int_equal(fl_sql_execute(s, "SELECT a FROM bad", err, sizeof err), 0);
  assert_int_not_equal(fl_env_execute(env, "bad"), 0);
  assert_non_null(strstr(fl_env_error(env), "table 'bad'"));
  assert_non_null(strstr(fl_env_error(env), "not a row"));
  sql_rows_free(&rows);
  fl_sql_env_destroy(s);
  fl_env_destroy(env);
}

/* ---------------------------------------------------------------------------------- */
/* User functions                                                                     */

static _Atomic int destroyed;

static int mask(fl_context_t *ctx, const fl_sql_value_t *args, size_t n, fl_sql_value_t *out,
                void *opaque) {
  static _Thread_local char buf[256];
  size_t len = args[0].len < sizeof buf ? args[0].len : sizeof buf;
  int keep = (int)args[1].i;
  for (size_t i = 0; i < len; i++) buf[i] = (int)i < keep ? args[0].s[i] : '*';
  out->s = buf;
  out->len = len;
  return 0;
}

static int coalesce_zero(fl_context_t *ctx, const fl_sql_value_t *args, size_t n,
                         fl_sql_value_t *out, void *opaque) {
  out->d = args[0].is_null ? 0 : args[0].d;
  return 0;
}

static int fails(fl_context_t *ctx, const fl_sql_value_t *args, size_t n, fl_sql_value_t *out,
                 void *opaque) {
  return fl_ctx_fail(ctx, "no %lld for you", (long long)args[0].i);
}

static void on_destroy(void *opaque) { destroyed++; }

/* PRODUCT(x): a user aggregate with retraction (for OVER) and merge (for SESSION). */
typedef struct prod_acc {
  double p;
  int64_t n;
  int64_t zeros;
} prod_acc_t;

static void prod_init(void *acc, void *opaque) {
  prod_acc_t a = {1, 0, 0};
  memcpy(acc, &a, sizeof a);
}
/* Adds (dir 1) or retracts (dir -1) the argument. */
static int prod_step(void *acc, const fl_sql_value_t *args, int dir) {
  prod_acc_t a;
  memcpy(&a, acc, sizeof a);
  if (args[0].d == 0)
    a.zeros += dir;
  else if (dir > 0)
    a.p *= args[0].d;
  else
    a.p /= args[0].d;
  a.n += dir;
  memcpy(acc, &a, sizeof a);
  return 0;
}
static int prod_acc(void *acc, const fl_sql_value_t *args, size_t n, void *opaque) {
  return prod_step(acc, args, 1);
}
static int prod_retract(void *acc, const fl_sql_value_t *args, size_t n, void *opaque) {
  return prod_step(acc, args, -1);
}
static void prod_merge(void *acc, const void *other, void *opaque) {
  prod_acc_t a, b;
  memcpy(&a, acc, sizeof a);
  memcpy(&b, other, sizeof b);
  a.p *= b.p;
  a.n += b.n;
  a.zeros += b.zeros;
  memcpy(acc, &a, sizeof a);
}
static int prod_value(const void *acc, fl_sql_value_t *out, void *opaque) {
  prod_acc_t a;
  memcpy(&a, acc, sizeof a);
  out->is_null = a.n == 0;
  out->d = a.zeros ? 0 : a.p;
  return 0;
}

static const fl_sql_aggregate_fn_t product = {.version = FL_SQL_AGGREGATE_FN_VERSION,
                                              .acc_size = sizeof(prod_acc_t),
                                              .init = prod_init,
                                              .accumulate = prod_acc,
                                              .retract = prod_retract,
                                              .merge = prod_merge,
                                              .get_value = prod_value,
                                              .destroy = on_destroy};

static void user_defined_functions(void **state) {
  char err[1024];
  fl_sql_env_t *s;
  assert_int_equal(fl_sql_env_new(&s, err, sizeof err), 0);
  destroyed = 0;
  assert_int_equal(fl_sql_create_function(s, "MASK", "STRING, INT", "STRING", 0, mask, NULL,
                                          on_destroy, err, sizeof err),
                   0);
  assert_int_equal(fl_sql_create_function(s, "ZERO_IF_NULL", "DOUBLE", "DOUBLE", 1, coalesce_zero,
                                          NULL, NULL, err, sizeof err),
                   0);
  assert_int_equal(
      fl_sql_create_function(s, "FAILS", "BIGINT", "INT", 0, fails, NULL, NULL, err, sizeof err),
      0);
  assert_int_equal(
      fl_sql_create_aggregate(s, "PRODUCT", "DOUBLE", "DOUBLE", &product, NULL, err, sizeof err),
      0);
  /* names are unique, built-ins included; a refused function's opaque is released */
  assert_int_equal(fl_sql_create_function(s, "upper", "STRING", "STRING", 0, mask, NULL, on_destroy,
                                          err, sizeof err),
                   FL_EINVAL);
  assert_non_null(strstr(err, "already exists"));
  assert_int_equal(destroyed, 1);
  assert_int_equal(
      fl_sql_create_function(s, "BAD", "STRING,", "STRING", 0, mask, NULL, NULL, err, sizeof err),
      FL_EINVAL);
  sql_rows_t rows = {.mu = PTHREAD_MUTEX_INITIALIZER};
  fl_sql_on_select(s, sql_rows_collect, &rows);
  int rc = fl_sql_execute(
      s,
      "CREATE VIEW v AS SELECT * FROM (VALUES ('secret', 2, 1.5), ('abc', 1, CAST(NULL AS DOUBLE)), "
      "('xy', 5, 2.0)) AS t(s, k, d);\n"
      "SELECT mask(s, k) AS m, ZERO_IF_NULL(d) AS z, MASK(CAST(NULL AS STRING), 1) AS n FROM v",
      err, sizeof err);
  if (rc) fail_msg("%s", err);
  fl_env_t *env = fl_sql_env_env(s, err, sizeof err);
  assert_int_equal(fl_env_execute(env, "udf"), 0);
  sql_rows_sort(&rows);
  const char *const want[] = {"{\"m\":\"a**\",\"z\":0.0,\"n\":null}",
                              "{\"m\":\"se****\",\"z\":1.5,\"n\":null}",
                              "{\"m\":\"xy\",\"z\":2.0,\"n\":null}", NULL};
  sql_expect(&rows, want);
  sql_rows_free(&rows);
  assert_int_equal(fl_sql_execute(s, "SELECT MASK(1, 2)", err, sizeof err), FL_EINVAL);
  assert_non_null(strstr(err, "argument 1 of MASK"));
  assert_int_equal(fl_sql_execute(s, "SELECT MASKK('a', 1)", err, sizeof err), FL_EINVAL);
  assert_non_null(strstr(err, "did you mean 'MASK'?"));
  fl_sql_env_destroy(s);
  assert_int_equal(destroyed, 3); /* MASK's and PRODUCT's, once each, and the refused one */

  /* aggregates: in a window (with merge for sessions) and OVER (with retraction) */
  char path[512];
  sql_tmp_init("api");
  sql_write_file(
      "n.json",
      "{\"g\":\"a\",\"x\":2,\"ts\":0}\n{\"g\":\"a\",\"x\":3,\"ts\":100}\n{\"g\":\"b\",\"x\":0,\"ts\":200}\n"
      "{\"g\":\"a\",\"x\":4,\"ts\":300}\n",
      path, sizeof path);
  char *script = sql_fmt(
      "CREATE TABLE n (g STRING, x DOUBLE, ts TIMESTAMP(3), WATERMARK FOR ts AS ts) WITH ('connector' = "
      "'filesystem', 'path' = '%s', 'format' = 'json');\n"
      "SELECT g, PRODUCT(x) AS p FROM TABLE(SESSION(TABLE n PARTITION BY g, DESCRIPTOR(ts), INTERVAL '150' "
      "MILLISECOND)) GROUP BY g, window_start, window_end;\n"
      "SELECT g, x, PRODUCT(x) OVER (PARTITION BY g ORDER BY ts ROWS BETWEEN 1 PRECEDING AND CURRENT ROW) AS p2 FROM n",
      path);
  assert_int_equal(fl_sql_env_new(&s, err, sizeof err), 0);
  assert_int_equal(fl_sql_set(s, "pipeline.auto-watermark-interval", "0", err, sizeof err), 0);
  assert_int_equal(
      fl_sql_create_aggregate(s, "PRODUCT", "DOUBLE", "DOUBLE", &product, NULL, err, sizeof err),
      0);
  fl_sql_on_select(s, sql_rows_collect, &rows);
  rc = fl_sql_execute(s, script, err, sizeof err);
  if (rc) fail_msg("%s", err);
  env = fl_sql_env_env(s, err, sizeof err);
  if (fl_env_execute(env, "udaf")) fail_msg("%s", fl_env_error(env));
  fl_sql_env_destroy(s);
  free(script);
  sql_tmp_cleanup();
  const char *const want2[] = {"{\"g\":\"a\",\"p\":6.0}",
                               "{\"g\":\"a\",\"p\":4.0}",
                               "{\"g\":\"b\",\"p\":0.0}",
                               "{\"g\":\"a\",\"x\":2.0,\"p2\":2.0}",
                               "{\"g\":\"a\",\"x\":3.0,\"p2\":6.0}",
                               "{\"g\":\"a\",\"x\":4.0,\"p2\":12.0}",
                               "{\"g\":\"b\",\"x\":0.0,\"p2\":0.0}",
                               NULL};
  sql_rows_sort(&rows);
  sql_expect(&rows, want2);
  sql_rows_free(&rows);
  /* a failing user function fails the job with its message */
  assert_int_equal(fl_sql_env_new(&s, err, sizeof err), 0);
  assert_int_equal(
      fl_sql_create_function(s, "FAILS", "BIGINT", "INT", 0, fails, NULL, NULL, err, sizeof err),
      0);
  fl_sql_on_select(s, sql_rows_collect, &rows);
  assert_int_equal(fl_sql_execute(s, "SELECT FAILS(x) FROM (VALUES (7)) AS t(x)", err, sizeof err),
                   0);
  env = fl_sql_env_env(s, err, sizeof err);
  assert_int_not_equal(fl_env_execute(env, "fails"), 0);
  assert_non_null(strstr(fl_env_error(env), "no 7 for you"));
  fl_sql_env_destroy(s);
  sql_rows_free(&rows);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(rows_schemas_and_json),
      cmocka_unit_test(datastream_to_sql_to_keyed_process_function),
      cmocka_unit_test(source_watermarks_and_rowtime_metadata),
      cmocka_unit_test(rows_that_are_not_rows_fail_the_job),
      cmocka_unit_test(user_defined_functions),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
