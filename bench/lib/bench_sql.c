/*
 * flink-bench sql: SQL jobs against the same jobs written with the DataStream API, in
 * one run.
 *
 *   flink-bench sql spend [--events N] [--users U] [--parallelism P] [--dir DIR]
 *   flink-bench sql nexmark --query q5|q7|... [--events N] [--parallelism P]
 *                           [--queries DIR] [--rate R]
 *
 * spend: the 5-minute spend per user (TUMBLE, SUM, COUNT) over N JSON purchases
 * in a file, written as JSON lines to files: once as the SQL statements (filesystem
 * source and sink, json format), once with the DataStream API as a user writes it
 * (lines source, jansson parse, bounded out-of-orderness watermarks, keyBy, tumbling
 * window aggregate, JSON lines into the file sink). Prints one JSON line with both
 * throughputs, the ratio sql / datastream and whether the outputs hold the same lines.
 *
 * nexmark: a Nexmark SQL text (DIR/ddl_gen.sql, ddl_views.sql, qN.sql, as in
 * tests/data/nexmark-sql) on the nexmark connector, then the DataStream query of
 * bench/lib on the same generator settings. One JSON line each: events/s and events/s
 * per core (events over the process's CPU seconds, generator included).
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "flink.h"
#include "lib/bench_clock.h"
#include "lib/bench_env.h"
#include "lib/bench_sql.h"
#include "lib/nexmark.h"

#define T0 INT64_C(1704067200000)

static int config_env(fl_config_t *c, int parallelism) {
  char p[16], err[256];
  snprintf(p, sizeof p, "%d", parallelism);
  return fl_config_set(c, "parallelism", p, err, sizeof err);
}

/* ---------------------------------------------------------------------------------- */
/* spend                                                                              */

static int write_events(const char *path, uint64_t n, uint64_t users) {
  FILE *f = fopen(path, "w");
  if (!f) return -1;
  for (uint64_t i = 0; i < n; i++) {
    int64_t t = T0 + (int64_t)i * 7; /* 7 ms apart: ~43,000 events per 5-minute window */
    time_t s = (time_t)(t / 1000);
    struct tm tm;
    gmtime_r(&s, &tm);
    uint64_t u = (i * 2654435761u) % users;
    fprintf(f,
            "{\"transaction_id\":\"t%" PRIu64 "\",\"user_id\":\"user-%" PRIu64
            "\",\"amount_usd\":%" PRIu64 ".%02" PRIu64 ",\"category_id\":%" PRIu64
            ",\"event_time\":\"%04d-%02d-%02dT%02d:%02d:%02d.%03d\","
            "\"ts\":%" PRId64 "}\n",
            i, u, 1 + i % 97, i % 100, i % 5, tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
            tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(t % 1000), t);
  }
  return fclose(f);
}

typedef struct ds_acc {
  double sum;
  int64_t count;
} ds_acc_t;

/* The DataStream job's parse: the line's JSON into key = user, value = amount. */
static int ds_parse(fl_context_t *ctx, const fl_record_t *in, void *opaque) {
  json_error_t e;
  json_t *j = json_loadb(in->value, in->value_len, 0, &e);
  if (!j) return fl_ctx_fail(ctx, "bad JSON: %s", e.text);
  const char *user = json_string_value(json_object_get(j, "user_id"));
  json_t *amount = json_object_get(j, "amount_usd"), *ts = json_object_get(j, "ts");
  if (!user || !json_is_number(amount) || !json_is_integer(ts)) {
    json_decref(j);
    return fl_ctx_fail(ctx, "missing fields");
  }
  double a = json_number_value(amount);
  int rc = fl_emit(ctx, user, strlen(user), &a, sizeof a, json_integer_value(ts));
  json_decref(j);
  return rc;
}

static void acc_init(void *acc, void *opaque) { memset(acc, 0, sizeof(ds_acc_t)); }
static int acc_add(fl_context_t *ctx, void *acc, const fl_record_t *in, void *opaque) {
  ds_acc_t a;
  double v;
  memcpy(&a, acc, sizeof a);
  memcpy(&v, in->value, sizeof v);
  a.sum += v;
  a.count++;
  memcpy(acc, &a, sizeof a);
  return 0;
}
static void acc_merge(void *acc, const void *other, void *opaque) {
  ds_acc_t a, b;
  memcpy(&a, acc, sizeof a);
  memcpy(&b, other, sizeof b);
  a.sum += b.sum;
  a.count += b.count;
  memcpy(acc, &a, sizeof a);
}

static void ts_text(int64_t ms, char *out, size_t cap) {
  time_t s = (time_t)(ms / 1000);
  struct tm tm;
  gmtime_r(&s, &tm);
  snprintf(out, cap, "%04d-%02d-%02d %02d:%02d:%02d", (tm.tm_year + 1900) % 10000,
           (tm.tm_mon + 1) % 100, tm.tm_mday % 100, tm.tm_hour % 100, tm.tm_min % 100,
           tm.tm_sec % 100);
}

/* The result line, as the SQL job's json format writes it. */
static int acc_result(fl_context_t *ctx, const fl_window_t *w, const void *acc, void *opaque) {
  ds_acc_t a;
  memcpy(&a, acc, sizeof a);
  size_t klen;
  const char *key = fl_ctx_key(ctx, &klen);
  json_t *j = json_object();
  json_object_set_new(j, "user_id", json_stringn(key, klen));
  char s[32], e[32];
  ts_text(w->start, s, sizeof s);
  ts_text(w->end, e, sizeof e);
  json_object_set_new(j, "window_start", json_string(s));
  json_object_set_new(j, "window_end", json_string(e));
  json_object_set_new(j, "total_spend_usd", json_real(a.sum));
  json_object_set_new(j, "tx_count", json_integer(a.count));
  char *text = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER);
  json_decref(j);
  if (!text) return FL_ENOMEM;
  int rc = fl_emit(ctx, NULL, 0, text, strlen(text), w->end - 1);
  free(text);
  return rc;
}

static int run_ds(const char *in, const char *out, int P, double *wall, double *cpu, char *err,
                  size_t n) {
  fl_config_t *c = fl_config_new();
  config_env(c, P);
  fl_env_t *env;
  int rc = fl_env_new(&env, c, err, n);
  fl_config_destroy(c);
  if (rc) return rc;
  fl_stream_t *s =
      fl_stream_flat_map(fl_source_lines(env, "purchases", in), "parse", ds_parse, NULL);
  fl_watermark_strategy_t ws = {.version = FL_WATERMARK_STRATEGY_VERSION,
                                .kind = FL_WATERMARKS_BOUNDED,
                                .max_out_of_orderness_ms = 4999};
  s = fl_stream_assign_timestamps(s, "watermarks", &ws);
  fl_aggregate_fn_t fn = {.version = FL_AGGREGATE_FN_VERSION,
                          .acc_size = sizeof(ds_acc_t),
                          .init = acc_init,
                          .add = acc_add,
                          .merge = acc_merge,
                          .result = acc_result};
  s = fl_window_aggregate(
      fl_window_tumbling(fl_stream_key_by(s, NULL, NULL), FL_EVENT_TIME, 300000, 0), "spend", &fn,
      NULL);
  fl_stream_sink_files(s, "out", out);
  double t0 = bench_now_s(), c0 = bench_cpu_s();
  rc = fl_env_execute(env, "spend-datastream");
  *wall = bench_now_s() - t0;
  *cpu = bench_cpu_s() - c0;
  if (rc) snprintf(err, n, "%s", fl_env_error(env));
  fl_env_destroy(env);
  return rc;
}

static int run_sql_spend(const char *in, const char *out, int P, double *wall, double *cpu,
                         char *err, size_t n) {
  fl_sql_env_t *s;
  int rc = fl_sql_env_new(&s, err, n);
  if (rc) return rc;
  char p[16];
  snprintf(p, sizeof p, "%d", P);
  fl_sql_set(s, "parallelism", p, err, n);
  char *script;
  if (asprintf(
          &script,
          "CREATE TABLE raw_transactions (\n"
          "  transaction_id STRING, user_id STRING, amount_usd DOUBLE, category_id INT,\n"
          "  event_time TIMESTAMP(3),\n"
          "  WATERMARK FOR event_time AS event_time - INTERVAL '5' SECOND\n"
          ") WITH ('connector' = 'filesystem', 'path' = '%s', 'format' = 'json',\n"
          "  'json.timestamp-format.standard' = 'ISO-8601');\n"
          "CREATE TABLE features_user_spend (\n"
          "  user_id STRING, window_start TIMESTAMP(3), window_end TIMESTAMP(3),\n"
          "  total_spend_usd DOUBLE, tx_count BIGINT,\n"
          "  PRIMARY KEY (user_id, window_start) NOT ENFORCED\n"
          ") WITH ('connector' = 'filesystem', 'path' = '%s', 'format' = 'json');\n"
          "INSERT INTO features_user_spend\n"
          "SELECT user_id, window_start, window_end, SUM(amount_usd) AS total_spend_usd, COUNT(*) AS tx_count\n"
          "FROM TABLE(TUMBLE(TABLE raw_transactions, DESCRIPTOR(event_time), INTERVAL '5' MINUTE))\n"
          "GROUP BY user_id, window_start, window_end;\n",
          in, out) < 0)
    return FL_ENOMEM;
  rc = fl_sql_execute(s, script, err, n);
  free(script);
  if (rc == 0) {
    fl_env_t *env = fl_sql_env_env(s, err, n);
    double t0 = bench_now_s(), c0 = bench_cpu_s();
    rc = fl_env_execute(env, "spend-sql");
    *wall = bench_now_s() - t0;
    *cpu = bench_cpu_s() - c0;
    if (rc) snprintf(err, n, "%s", fl_env_error(env));
  }
  fl_sql_env_destroy(s);
  return rc;
}

/* The lines of every committed part file of dir, parsed and re-dumped canonically
 * (key order and number formatting differ between the two writers), sorted. */
static int cmp_str(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

static size_t canonical_lines(const char *dir, char ***out) {
  size_t n = 0, cap = 1024;
  char **v = malloc(cap * sizeof *v);
  DIR *d = opendir(dir);
  struct dirent *e;
  while (d && (e = readdir(d)) != NULL) {
    if (e->d_name[0] == '.') continue;
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
    FILE *f = fopen(path, "r");
    char *line = NULL;
    size_t lcap = 0;
    while (f && getline(&line, &lcap, f) > 0) {
      json_t *j = json_loads(line, 0, NULL);
      if (!j) continue;
      char buf[512];
      snprintf(buf, sizeof buf, "%s|%s|%s|%.6f|%" JSON_INTEGER_FORMAT,
               json_string_value(json_object_get(j, "user_id")),
               json_string_value(json_object_get(j, "window_start")),
               json_string_value(json_object_get(j, "window_end")),
               json_number_value(json_object_get(j, "total_spend_usd")),
               json_integer_value(json_object_get(j, "tx_count")));
      json_decref(j);
      if (n == cap) v = realloc(v, (cap *= 2) * sizeof *v);
      v[n++] = strdup(buf);
    }
    free(line);
    if (f) fclose(f);
  }
  if (d) closedir(d);
  qsort(v, n, sizeof *v, cmp_str);
  *out = v;
  return n;
}

static int bench_spend(int argc, char **argv) {
  uint64_t events = 2000000, users = 10000;
  int P = 1;
  const char *dir = NULL;
  const bench_opt_t opts[] = {{"--events", BENCH_OPT_COUNT, &events},
                              {"--users", BENCH_OPT_COUNT, &users},
                              {"--parallelism", BENCH_OPT_INT, &P},
                              {"--dir", BENCH_OPT_TEXT, &dir}};
  if (!bench_parse_opts(argc, argv, 2, opts, sizeof opts / sizeof *opts, NULL)) {
    fprintf(
        stderr,
        "usage: flink-bench sql spend [--events N] [--users U] [--parallelism P] [--dir DIR]\n");
    return 2;
  }
  char tmp[256];
  if (!dir) {
    snprintf(tmp, sizeof tmp, "/tmp/flink-bench-sql-%d", (int)getpid());
    dir = tmp;
  }
  mkdir(dir, 0700);
  char in[512], out_sql[512], out_ds[512], err[2048];
  snprintf(in, sizeof in, "%s/purchases.jsonl", dir);
  snprintf(out_sql, sizeof out_sql, "%s/out-sql", dir);
  snprintf(out_ds, sizeof out_ds, "%s/out-datastream", dir);
  if (write_events(in, events, users)) {
    fprintf(stderr, "flink-bench: cannot write %s\n", in);
    return 1;
  }
  double sw, sc, dw, dc;
  /* the DataStream job first, then SQL: each reads the file once from the page cache */
  int rc = run_ds(in, out_ds, P, &dw, &dc, err, sizeof err);
  if (rc) {
    fprintf(stderr, "flink-bench: datastream: %s\n", err);
    return 1;
  }
  rc = run_sql_spend(in, out_sql, P, &sw, &sc, err, sizeof err);
  if (rc) {
    fprintf(stderr, "flink-bench: sql: %s\n", err);
    return 1;
  }
  char **a, **b;
  size_t na = canonical_lines(out_sql, &a), nb = canonical_lines(out_ds, &b);
  bool same = na == nb;
  for (size_t i = 0; same && i < na; i++) same = !strcmp(a[i], b[i]);
  for (size_t i = 0; i < na; i++) free(a[i]);
  for (size_t i = 0; i < nb; i++) free(b[i]);
  free(a);
  free(b);
  printf("{\"bench\":\"sql-spend\",\"events\":%" PRIu64
         ",\"parallelism\":%d,\"windows\":%zu,"
         "\"sql_events_per_s\":%.0f,\"sql_events_per_s_per_core\":%.0f,"
         "\"datastream_events_per_s\":%.0f,\"datastream_events_per_s_per_core\":%.0f,"
         "\"ratio\":%.3f,\"results_match\":%s}\n",
         events, P, na, (double)events / sw, (double)events / sc, (double)events / dw,
         (double)events / dc, dw / sw, same ? "true" : "false");
  char cmd[600];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  if (dir == tmp && system(cmd) != 0) fprintf(stderr, "flink-bench: cannot remove %s\n", dir);
  return same ? 0 : 1;
}

/* ---------------------------------------------------------------------------------- */
/* nexmark                                                                            */

static char *read_file(const char *dir, const char *name) {
  char path[1024];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  char *s = malloc((size_t)n + 1);
  if (s && fread(s, 1, (size_t)n, f) != (size_t)n) n = 0;
  if (s) s[n] = 0;
  fclose(f);
  return s;
}

static char *substitute(const char *text, uint64_t events, uint64_t rate) {
  size_t cap = strlen(text) * 2 + 256, n = 0;
  char *out = malloc(cap);
  for (const char *p = text; *p;) {
    if (p[0] == '$' && p[1] == '{') {
      const char *e = strchr(p, '}');
      char key[64];
      snprintf(key, sizeof key, "%.*s", (int)(e - p - 2), p + 2);
      char val[64] = "";
      if (!strcmp(key, "TPS"))
        snprintf(val, sizeof val, "%" PRIu64, rate);
      else if (!strcmp(key, "EVENTS_NUM"))
        snprintf(val, sizeof val, "%" PRIu64, events);
      else if (!strcmp(key, "PERSON_PROPORTION"))
        snprintf(val, sizeof val, "1");
      else if (!strcmp(key, "AUCTION_PROPORTION"))
        snprintf(val, sizeof val, "3");
      else if (!strcmp(key, "BID_PROPORTION"))
        snprintf(val, sizeof val, "46");
      else if (!strcmp(key, "NEXMARK_TABLE"))
        snprintf(val, sizeof val, "datagen");
      n += (size_t)snprintf(out + n, cap - n, "%s", val);
      p = e + 1;
      continue;
    }
    out[n++] = *p++;
  }
  out[n] = 0;
  return out;
}

static int discard(fl_context_t *ctx, const fl_record_t *in, void *instance) { return 0; }

static int bench_sql_nexmark(int argc, char **argv) {
  const char *query = NULL, *dir = "tests/data/nexmark-sql";
  uint64_t events = 10000000, rate = NX_DEFAULT_RATE;
  int P = 1;
  const bench_opt_t opts[] = {{"--query", BENCH_OPT_TEXT, &query},
                              {"--events", BENCH_OPT_COUNT, &events},
                              {"--parallelism", BENCH_OPT_INT, &P},
                              {"--queries", BENCH_OPT_TEXT, &dir},
                              {"--rate", BENCH_OPT_COUNT, &rate}};
  if (!bench_parse_opts(argc, argv, 2, opts, sizeof opts / sizeof *opts, NULL) || !query) {
    fprintf(
        stderr,
        "usage: flink-bench sql nexmark --query qN [--events N] [--parallelism P] [--queries DIR] "
        "[--rate R]\n");
    return 2;
  }
  char qfile[64];
  snprintf(qfile, sizeof qfile, "%s.sql", query);
  char *gen = read_file(dir, "ddl_gen.sql"), *views = read_file(dir, "ddl_views.sql"),
       *q = read_file(dir, qfile);
  if (!gen || !views || !q) {
    fprintf(
        stderr,
        "flink-bench: cannot read %s/{ddl_gen,ddl_views,%s}.sql (run from the source tree or pass "
        "--queries)\n",
        dir, query);
    return 1;
  }
  char *all;
  if (asprintf(&all, "%s;\n%s;\n%s", gen, views, q) < 0) return 1;
  char *script = substitute(all, events, rate);
  char err[2048];
  fl_sql_env_t *s;
  fl_sql_env_new(&s, err, sizeof err);
  char p[16];
  snprintf(p, sizeof p, "%d", P);
  fl_sql_set(s, "parallelism", p, err, sizeof err);
  int rc = fl_sql_execute(s, script, err, sizeof err);
  if (rc) {
    fprintf(stderr, "flink-bench: %s: %s\n", query, err);
    return 1;
  }
  fl_env_t *env = fl_sql_env_env(s, err, sizeof err);
  double t0 = bench_now_s(), c0 = bench_cpu_s();
  rc = fl_env_execute(env, "nexmark-sql");
  double sw = bench_now_s() - t0, sc = bench_cpu_s() - c0;
  if (rc) fprintf(stderr, "flink-bench: %s: %s\n", query, fl_env_error(env));
  fl_sql_env_destroy(s);
  free(gen);
  free(views);
  free(q);
  free(all);
  free(script);
  if (rc) return 1;
  /* the DataStream query on the same generator */
  const nx_query_t *dq = nx_query_find(query);
  double dw = 0, dc = 0;
  if (dq) {
    nx_config_t c;
    nx_config_default(&c);
    c.events = events;
    c.rate = rate;
    nx_gen_t *g;
    fl_config_t *conf = fl_config_new();
    config_env(conf, P);
    fl_env_t *denv;
    if (nx_gen_new(&g, &c) || fl_env_new(&denv, conf, err, sizeof err)) {
      fprintf(stderr, "flink-bench: cannot set up the DataStream %s\n", query);
      return 1;
    }
    fl_config_destroy(conf);
    static const fl_sink_fn_t nothing = {.version = FL_SINK_FN_VERSION, .write = discard};
    fl_stream_sink(dq->build(denv, nx_source(denv, g)), "blackhole", &nothing, NULL);
    t0 = bench_now_s();
    c0 = bench_cpu_s();
    rc = fl_env_execute(denv, "nexmark-datastream");
    dw = bench_now_s() - t0;
    dc = bench_cpu_s() - c0;
    if (rc) fprintf(stderr, "flink-bench: DataStream %s: %s\n", query, fl_env_error(denv));
    fl_env_destroy(denv);
    nx_gen_destroy(g);
    if (rc) return 1;
  }
  printf(
      "{\"bench\":\"sql-nexmark\",\"query\":\"%s\",\"events\":%" PRIu64
      ",\"parallelism\":%d,"
      "\"sql_events_per_s\":%.0f,\"sql_cores\":%.2f,\"sql_events_per_s_per_core\":%.0f,"
      "\"datastream_events_per_s\":%.0f,\"datastream_cores\":%.2f,\"datastream_events_per_s_per_core\":%.0f}\n",
      query, events, P, (double)events / sw, sc / sw, (double)events / sc,
      dw > 0 ? (double)events / dw : 0, dw > 0 ? dc / dw : 0, dc > 0 ? (double)events / dc : 0);
  return 0;
}

int fl_bench_sql_main(int argc, char **argv) {
  if (argc >= 3 && !strcmp(argv[2], "spend")) return bench_spend(argc - 1, argv + 1);
  if (argc >= 3 && !strcmp(argv[2], "nexmark")) return bench_sql_nexmark(argc - 1, argv + 1);
  fprintf(stderr, "usage: flink-bench sql spend|nexmark [OPTIONS]\n");
  return 2;
}
