/* Nexmark in SQL: the benchmark's own Flink SQL texts (tests/data/nexmark-sql, unchanged
 * but for their ${...} placeholders) run on the nexmark connector, and their results are
 * compared with the DataStream queries of bench/lib on the same generated events (seed,
 * rate and count alike), at parallelism 1 and 2, with a watermark after every record.
 *
 * Each query file is executed whole (its INSERT INTO the blackhole table runs), and its
 * SELECT, taken from the same file text, is also run as fl_sql_query() so that its rows
 * can be collected. q12 runs on a processing-time clock that stands still, so both sides
 * put every bid into the same processing-time window, closed at the end of the input. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "fl_test_util.h"
#include "run_util.h"
#include "lib/nexmark.h"

#define RATE 1000
#define STILL_CLOCK INT64_C(1800000000000)

static uint64_t n_events(void) {
  const char *q = getenv("FL_TEST_QUICK");
  return q && *q == '1' ? 20000 : 60000;
}

/* Replaces ${NAME} placeholders. */
static char *substitute(const char *text) {
  char events[32], rate[32];
  snprintf(events, sizeof events, "%llu", (unsigned long long)n_events());
  snprintf(rate, sizeof rate, "%d", RATE);
  const char *keys[] = {
      "TPS",          "EVENTS_NUM", "PERSON_PROPORTION", "AUCTION_PROPORTION", "BID_PROPORTION",
      "NEXMARK_TABLE"};
  const char *vals[] = {rate, events, "1", "3", "46", "datagen"};
  size_t cap = strlen(text) * 2 + 256, n = 0;
  char *out = malloc(cap);
  assert_non_null(out);
  for (const char *p = text; *p;) {
    if (p[0] == '$' && p[1] == '{') {
      const char *e = strchr(p, '}');
      assert_non_null(e);
      bool found = false;
      for (size_t k = 0; k < sizeof keys / sizeof *keys; k++) {
        if ((size_t)(e - p - 2) == strlen(keys[k]) && !strncmp(p + 2, keys[k], strlen(keys[k]))) {
          memcpy(out + n, vals[k], strlen(vals[k]));
          n += strlen(vals[k]);
          found = true;
        }
      }
      if (!found) fail_msg("unknown placeholder %.*s", (int)(e - p + 1), p);
      p = e + 1;
      continue;
    }
    out[n++] = *p++;
  }
  out[n] = 0;
  return out;
}

/* Result rows as text, added from any number of subtasks. */
typedef struct rows {
  lines_t l;
  pthread_mutex_t mu;
} rows_t;

static void rows_add(rows_t *r, const char *s, size_t n) {
  pthread_mutex_lock(&r->mu);
  lines_push(&r->l, s, n);
  pthread_mutex_unlock(&r->mu);
}

typedef struct sql_sink {
  rows_t *rows;
  const fl_sql_schema_t *schema;
} sql_sink_t;

static int sql_collect(fl_context_t *ctx, const fl_record_t *in, void *inst) {
  sql_sink_t *s = inst;
  char line[4096];
  size_t n = 0;
  int cols = fl_sql_schema_columns(s->schema);
  for (int c = 0; c < cols; c++) {
    fl_sql_value_t v;
    int rc = fl_sql_row_get(s->schema, in->value, in->value_len, c, &v);
    if (rc == FL_ENOTSUP) {
      /* a wide DECIMAL (q1's DECIMAL(23, 3)): its text from the row's JSON form */
      char json[4096];
      if (fl_sql_row_to_json(s->schema, in->value, in->value_len, json, sizeof json) < 0)
        return FL_EINVAL;
      char key[128];
      snprintf(key, sizeof key, "\"%s\":", fl_sql_schema_name(s->schema, c));
      const char *at = strstr(json, key);
      size_t k = 0;
      if (at) {
        at += strlen(key);
        while (at[k] && at[k] != ',' && at[k] != '}') k++;
      }
      n +=
          (size_t)snprintf(line + n, sizeof line - n, "%s%.*s", c ? "|" : "", (int)k, at ? at : "");
      continue;
    }
    if (rc) return fl_ctx_fail(ctx, "bad row");
    const char *type = fl_sql_schema_type(s->schema, c);
    if (v.is_null)
      n += (size_t)snprintf(line + n, sizeof line - n, "%snull", c ? "|" : "");
    else if (strstr(type, "CHAR") || strstr(type, "STRING"))
      n += (size_t)snprintf(line + n, sizeof line - n, "%s%.*s", c ? "|" : "", (int)v.len, v.s);
    else
      n += (size_t)snprintf(line + n, sizeof line - n, "%s%lld", c ? "|" : "", (long long)v.i);
  }
  rows_add(s->rows, line, n);
  return 0;
}

static int sql_write(fl_context_t *ctx, const fl_record_t *in, void *inst) {
  return sql_collect(ctx, in, inst);
}
static const fl_sink_fn_t sql_sink_fn = {.version = FL_SINK_FN_VERSION, .write = sql_write};

static int64_t still_clock(void *opaque) { return STILL_CLOCK; }

/* Runs a query file; its SELECT's rows (as "a|b|c" text) go to out. */
static void run_sql(const char *q, int P, rows_t *out, char **json_prices) {
  char file[64];
  snprintf(file, sizeof file, "tests/data/nexmark-sql/%s.sql", q);
  char *gen = read_source_file("tests/data/nexmark-sql/ddl_gen.sql"),
       *views = read_source_file("tests/data/nexmark-sql/ddl_views.sql"),
       *query = read_source_file(file);
  size_t total = strlen(gen) + strlen(views) + strlen(query) + 16;
  char *script = malloc(total);
  snprintf(script, total, "%s;\n%s;\n%s", gen, views, query);
  char *text = substitute(script);
  fl_sql_env_t *s;
  char err[2048];
  assert_int_equal(fl_sql_env_new(&s, err, sizeof err), 0);
  char p[16];
  snprintf(p, sizeof p, "%d", P);
  assert_int_equal(fl_sql_set(s, "parallelism.default", p, err, sizeof err), 0);
  assert_int_equal(fl_sql_set(s, "pipeline.auto-watermark-interval", "0", err, sizeof err), 0);
  int rc = fl_sql_execute(s, text, err, sizeof err);
  if (rc) fail_msg("%s: %s", q, err);
  /* the SELECT of the INSERT, as written in the file */
  char target[64];
  snprintf(target, sizeof target, "INSERT INTO nexmark_%s", q);
  char *ins = strstr(text, target);
  assert_non_null(ins);
  const fl_sql_schema_t *schema;
  fl_stream_t *res = fl_sql_query(s, ins + strlen(target), &schema, err, sizeof err);
  if (!res) fail_msg("%s: %s", q, err);
  sql_sink_t sk = {out, schema};
  fl_env_t *env = fl_sql_env_env(s, err, sizeof err);
  assert_non_null(env);
  if (!strcmp(q, "q12")) assert_int_equal(fl_env_set_clock(env, still_clock, NULL), 0);
  assert_int_equal(fl_stream_sink(res, "collect", &sql_sink_fn, &sk), 0);
  rc = fl_env_execute(env, q);
  if (rc) fail_msg("%s: %s", q, fl_env_error(env));
  (void)json_prices;
  fl_sql_env_destroy(s);
  free(gen);
  free(views);
  free(query);
  free(script);
  free(text);
}

/* Runs the DataStream query on the same events; fmt turns a result into "a|b|c". */
typedef size_t (*fmt_fn)(const fl_record_t *r, char *out, size_t cap);

typedef struct ds_sink {
  rows_t *rows;
  fmt_fn fmt;
} ds_sink_t;

static int ds_write(fl_context_t *ctx, const fl_record_t *in, void *inst) {
  ds_sink_t *d = inst;
  char line[4096];
  size_t n = d->fmt(in, line, sizeof line);
  rows_add(d->rows, line, n);
  return 0;
}
static const fl_sink_fn_t ds_sink_fn = {.version = FL_SINK_FN_VERSION, .write = ds_write};

static void run_ds(const char *q, int P, fmt_fn fmt, rows_t *out) {
  nx_config_t c;
  nx_config_default(&c);
  c.events = n_events();
  c.rate = RATE;
  nx_gen_t *g;
  assert_int_equal(nx_gen_new(&g, &c), 0);
  fl_env_t *env = env_with(P, "0");
  assert_non_null(env);
  if (!strcmp(q, "q12")) assert_int_equal(fl_env_set_clock(env, still_clock, NULL), 0);
  fl_stream_t *res = nx_query_find(q)->build(env, nx_source(env, g));
  assert_non_null(res);
  ds_sink_t d = {out, fmt};
  assert_int_equal(fl_stream_sink(res, "collect", &ds_sink_fn, &d), 0);
  int rc = fl_env_execute(env, q);
  if (rc) fail_msg("%s: %s", q, fl_env_error(env));
  fl_env_destroy(env);
  nx_gen_destroy(g);
}

static void compare(const char *q, rows_t *sql, rows_t *ds) {
  lines_t *a = &sql->l, *b = &ds->l;
  lines_sort(a);
  lines_sort(b);
  if (a->n != b->n) fail_msg("%s: SQL gave %zu rows, DataStream %zu", q, a->n, b->n);
  for (size_t i = 0; i < a->n; i++)
    if (strcmp(a->v[i], b->v[i]) != 0)
      fail_msg("%s: row %zu differs:\n  SQL %s\n  DS  %s", q, i, a->v[i], b->v[i]);
  assert_true(a->n > 0);
}

static size_t fmt_bid5(const fl_record_t *r, char *out, size_t cap, int price_first,
                       int64_t factor) {
  nx_bid_t b;
  assert_int_equal(nx_decode_bid(r->value, r->value_len, &b), 0);
  if (factor) {
    int64_t milli = b.price; /* the DataStream q1 emits price * 908: 0.908 * price in thousandths */
    return (size_t)snprintf(out, cap, "%lld|%lld|%lld.%03lld|%lld|%.*s", (long long)b.auction,
                            (long long)b.bidder, (long long)(milli / 1000),
                            (long long)(milli % 1000), (long long)b.date_time, (int)b.extra.len,
                            b.extra.p);
  }
  if (price_first)
    return (size_t)snprintf(out, cap, "%lld|%lld|%lld|%lld|%.*s", (long long)b.auction,
                            (long long)b.price, (long long)b.bidder, (long long)b.date_time,
                            (int)b.extra.len, b.extra.p);
  return (size_t)snprintf(out, cap, "%lld|%lld|%lld|%lld|%.*s", (long long)b.auction,
                          (long long)b.bidder, (long long)b.price, (long long)b.date_time,
                          (int)b.extra.len, b.extra.p);
}

static size_t fmt_q0(const fl_record_t *r, char *o, size_t c) { return fmt_bid5(r, o, c, 0, 0); }
static size_t fmt_q1(const fl_record_t *r, char *o, size_t c) { return fmt_bid5(r, o, c, 0, 908); }
static size_t fmt_q7(const fl_record_t *r, char *o, size_t c) { return fmt_bid5(r, o, c, 1, 0); }

static size_t fmt_q2(const fl_record_t *r, char *o, size_t c) {
  nx_q2_t v;
  memcpy(&v, r->value, sizeof v);
  return (size_t)snprintf(o, c, "%lld|%lld", (long long)v.auction, (long long)v.price);
}

static size_t fmt_q5(const fl_record_t *r, char *o, size_t c) {
  nx_q5_t v;
  memcpy(&v, r->value, sizeof v);
  return (size_t)snprintf(o, c, "%lld|%lld", (long long)v.auction, (long long)v.num);
}

static size_t fmt_q8(const fl_record_t *r, char *o, size_t c) {
  nx_q8_wire_t w;
  memcpy(&w, r->value, sizeof w);
  const char *name = (const char *)r->value + sizeof w;
  return (size_t)snprintf(o, c, "%lld|%.*s|%lld", (long long)w.id, (int)w.name_len, name,
                          (long long)w.start_time);
}

static size_t fmt_q12(const fl_record_t *r, char *o, size_t c) {
  nx_window_count_t v;
  memcpy(&v, r->value, sizeof v);
  return (size_t)snprintf(o, c, "%lld|%lld|%lld|%lld", (long long)v.bidder, (long long)v.bid_count,
                          (long long)v.start, (long long)v.end);
}

static void check(const char *q, fmt_fn fmt) {
  for (int P = 1; P <= 2; P++) {
    rows_t sql = {.mu = PTHREAD_MUTEX_INITIALIZER}, ds = {.mu = PTHREAD_MUTEX_INITIALIZER};
    run_sql(q, P, &sql, NULL);
    run_ds(q, P, fmt, &ds);
    compare(q, &sql, &ds);
    lines_free(&sql.l);
    lines_free(&ds.l);
  }
}

static void q0_pass_through(void **state) { check("q0", fmt_q0); }
static void q1_currency_conversion(void **state) { check("q1", fmt_q1); }
static void q2_selection(void **state) { check("q2", fmt_q2); }
static void q5_hot_items(void **state) { check("q5", fmt_q5); }
static void q7_highest_bid(void **state) { check("q7", fmt_q7); }
static void q8_monitor_new_users(void **state) { check("q8", fmt_q8); }
static void q12_processing_time_windows(void **state) { check("q12", fmt_q12); }

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(q0_pass_through),
      cmocka_unit_test(q1_currency_conversion),
      cmocka_unit_test(q2_selection),
      cmocka_unit_test(q5_hot_items),
      cmocka_unit_test(q7_highest_bid),
      cmocka_unit_test(q8_monitor_new_users),
      cmocka_unit_test(q12_processing_time_windows),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
