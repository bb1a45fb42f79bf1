/*
 * flink-bench - throughput benchmarks of the engine against plain C.
 *
 *   flink-bench window [--kind tumbling|sliding|session] [--events N] [--keys K]
 *                      [--window-ms W] [--slide-ms S] [--gap-ms G] [--parallelism P]
 *                      [--set KEY=VALUE]...
 *   flink-bench nexmark --query qN|all [--events N] [--parallelism P] [--rate R]
 *                       [--seed S] [--dump-events PATH] [--output PATH]
 *                       [--no-baseline] [--scrape-ms N] [--set KEY=VALUE]...
 *   flink-bench nexmark-table [FILE]...
 *
 * window: a keyed event-time window SUM (tumbling, sliding or session) through the
 * engine and as a plain C loop over the same events; see bench/lib/bench_window.c.
 *
 * nexmark: the Nexmark queries of bench/lib (nexmark.h) on the Nexmark generator as a
 * parallel source, N events at R events per second of event time. One JSON line per
 * query: wall seconds of fl_env_execute(), events/s, the process's CPU seconds (user +
 * system, from getrusage) during it, cores used (CPU / wall) and events/s per core (N /
 * CPU seconds), and the number of result records. Without --output the results go to a
 * counting sink; with it, as JSON lines to PATH (PATH.qN for --query all) and to the
 * counting sink. --dump-events writes the N generated events as JSON lines first.
 * For q0, q1 and q2 the same run also times a plain C loop over the same generator doing
 * the query's work (decode, select, project, encode, checksum), single-threaded, and
 * adds baseline_events_per_s, ratio (engine / baseline) and results_match (same number
 * of results and the same order-independent checksum); --no-baseline skips it. The exit
 * status is 1 when a job fails or the results differ.
 *
 * nexmark-table: reads such JSON lines (files or stdin) and prints a Markdown table.
 *
 * kafka: see bench/lib/bench_kafka.c (throughput against librdkafka consume+produce,
 * latency from produce to feature at a fixed rate).
 *
 * sql: see bench/lib/bench_sql.c (the 5-minute spend in SQL against the same job with
 * the DataStream API; Nexmark SQL texts against the DataStream queries).
 *
 * --set passes configuration keys to the engine (e.g. --set execution.batch-size=4096).
 * --scrape-ms N (window, nexmark) GETs /metrics every N ms while the job runs, as a
 * Prometheus would (with --set rest.port=0); "scrapes" counts those that succeeded.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include <jansson.h>

#include "flink.h"
#include "lib/bench_ckpt.h"
#include "lib/bench_clock.h"
#include "lib/bench_kafka.h"
#include "lib/bench_env.h"
#include "lib/bench_mem.h"
#include "lib/bench_scrape.h"
#include "lib/bench_sql.h"
#include "lib/bench_state.h"
#include "lib/bench_window.h"
#include "lib/nexmark.h"

/* ---------------------------------------------------------------------------------- */
/* Nexmark                                                                            */

typedef struct nexmark_opts {
  const char *query; /* a name or "all" */
  nx_config_t gen;
  int parallelism;
  const char *dump_events;
  const char *output;
  bool baseline;
  const char *settings[BENCH_MAX_SETTINGS];
  int n_settings;
  int scrape_ms; /* GET /metrics this often while the job runs (needs rest.port); 0: no */
} nexmark_opts_t;

/* Counted results: number of records and the sum of a hash of each (order-independent). */
typedef struct nx_results {
  uint64_t count;
  uint64_t checksum;
} nx_results_t;

typedef struct nx_sink_ctx {
  pthread_mutex_t mu;
  nx_results_t total; /* combined from the sink instances as they close */
} nx_sink_ctx_t;

typedef struct nx_sink_inst {
  nx_sink_ctx_t *c;
  nx_results_t r;
} nx_sink_inst_t;

static inline uint64_t result_checksum(const void *value, size_t len, int64_t ts) {
  return nx_hash_bytes(value, len, (uint64_t)ts);
}

static int nx_sink_open(fl_context_t *ctx, void *opaque, void **instance) {
  nx_sink_inst_t *s = calloc(1, sizeof *s);
  if (!s) return fl_ctx_fail(ctx, "counting sink: out of memory");
  s->c = opaque;
  *instance = s;
  return 0;
}

static int nx_sink_write(fl_context_t *ctx, const fl_record_t *in, void *instance) {
  nx_sink_inst_t *s = instance;
  s->r.count++;
  s->r.checksum += result_checksum(in->value, in->value_len, in->timestamp);
  return 0;
}

static void nx_sink_close(void *instance) {
  nx_sink_inst_t *s = instance;
  pthread_mutex_lock(&s->c->mu);
  s->c->total.count += s->r.count;
  s->c->total.checksum += s->r.checksum;
  pthread_mutex_unlock(&s->c->mu);
  free(s);
}

/* The map before the JSON-lines sink: the query's formatter. */
static int nx_to_json(fl_context_t *ctx, const fl_record_t *in, void *opaque) {
  const nx_query_t *q = opaque;
  char buf[NX_MAX_JSON_BYTES];
  int n = q->to_json(in, buf, sizeof buf);
  if (n < 0 || (size_t)n >= sizeof buf)
    return fl_ctx_fail(ctx, "%s: cannot format a result of %zu bytes as JSON", q->name,
                       in->value_len);
  return fl_emit(ctx, NULL, 0, buf, (size_t)n, in->timestamp);
}

typedef struct nx_run {
  double wall, cpu;
  nx_results_t results;
  long scrapes;
} nx_run_t;

/* Runs query q on the generator through the engine. */
static int nexmark_engine(const nexmark_opts_t *o, const nx_gen_t *gen, const nx_query_t *q,
                          const char *output, nx_run_t *run) {
  static const fl_sink_fn_t count_fn = {
      .version = FL_SINK_FN_VERSION,
      .open = nx_sink_open,
      .write = nx_sink_write,
      .close = nx_sink_close,
  };
  nx_sink_ctx_t sc = {.total = {0, 0}};
  fl_env_t *env = NULL;
  char job[64];
  int rc;

  pthread_mutex_init(&sc.mu, NULL);
  if ((rc = bench_make_env(o->parallelism, o->settings, o->n_settings, &env)) != 0) goto done;
  fl_stream_t *results = q->build(env, nx_source(env, gen));
  if (!results) {
    fprintf(stderr, "flink-bench: %s: cannot build the query: %s\n", q->name,
            *fl_env_error(env) ? fl_env_error(env) : "out of memory");
    rc = FL_ENOMEM;
    goto done;
  }
  fl_stream_sink(results, "count", &count_fn, &sc); /* builder errors surface in execute */
  if (output) {
    fl_stream_t *json = fl_stream_map(results, "to-json", nx_to_json, (void *)q);
    fl_stream_sink_lines(json, "output", output);
  }
  snprintf(job, sizeof job, "nexmark-%s", q->name);
  bench_scrape_t *scraper = bench_scrape_start(env, o->scrape_ms);
  double t0 = bench_now_s(), c0 = bench_cpu_s();
  rc = fl_env_execute(env, job);
  run->wall = bench_now_s() - t0;
  run->cpu = bench_cpu_s() - c0;
  run->scrapes = bench_scrape_stop(scraper);
  if (rc != 0) {
    fprintf(stderr, "flink-bench: %s failed (%s): %s\n", q->name, fl_err_name(rc),
            fl_env_error(env));
    goto done;
  }
  fl_env_destroy(env); /* sink instances have closed by now */
  env = NULL;
  run->results = sc.total;
done:
  fl_env_destroy(env);
  pthread_mutex_destroy(&sc.mu);
  return rc;
}

/* The plain C loops: every event made by the same generator, the query's work done on
 * it and its results counted and checksummed exactly as the counting sink does. */
static void baseline_q0_q1(const nx_gen_t *g, bool euro, nx_results_t *r) {
  uint8_t ev[NX_MAX_EVENT_BYTES], out[NX_MAX_EVENT_BYTES];
  uint64_t events = nx_gen_config(g)->events;
  for (uint64_t n = 0; n < events; n++) {
    int64_t ts;
    size_t len = nx_gen_event(g, n, ev, &ts);
    nx_bid_t b;
    if (nx_kind_of(ev, len) != NX_BID || nx_decode_bid(ev, len, &b) != 0) continue;
    if (euro) b.price *= 908;
    b.channel.len = 0;
    b.url.len = 0;
    size_t olen = nx_encode_bid(&b, out, sizeof out);
    r->count++;
    r->checksum += result_checksum(out, olen, ts);
  }
}

static void baseline_q2(const nx_gen_t *g, nx_results_t *r) {
  uint8_t ev[NX_MAX_EVENT_BYTES];
  uint64_t events = nx_gen_config(g)->events;
  for (uint64_t n = 0; n < events; n++) {
    int64_t ts;
    size_t len = nx_gen_event(g, n, ev, &ts);
    nx_bid_wire_t h;
    if (nx_kind_of(ev, len) != NX_BID) continue;
    memcpy(&h, ev, sizeof h);
    if (h.auction % 123 != 0) continue;
    nx_q2_t q = {h.auction, h.price};
    r->count++;
    r->checksum += result_checksum(&q, sizeof q, ts);
  }
}

/* Runs the baseline of q if it has one: 1 and *run, else 0. */
static int nexmark_baseline(const nx_gen_t *g, const nx_query_t *q, nx_run_t *run) {
  double t0 = bench_now_s();
  memset(&run->results, 0, sizeof run->results);
  if (strcmp(q->name, "q0") == 0)
    baseline_q0_q1(g, false, &run->results);
  else if (strcmp(q->name, "q1") == 0)
    baseline_q0_q1(g, true, &run->results);
  else if (strcmp(q->name, "q2") == 0)
    baseline_q2(g, &run->results);
  else
    return 0;
  run->wall = bench_now_s() - t0;
  run->cpu = run->wall;
  return 1;
}

static int nexmark_dump(const nx_gen_t *g, const char *path) {
  FILE *f = strcmp(path, "-") == 0 ? stdout : fopen(path, "w");
  uint8_t ev[NX_MAX_EVENT_BYTES];
  char line[NX_MAX_JSON_BYTES];
  int rc = 0;
  if (!f) {
    fprintf(stderr, "flink-bench: --dump-events %s: cannot open: %s\n", path, strerror(errno));
    return -1;
  }
  uint64_t events = nx_gen_config(g)->events;
  for (uint64_t n = 0; n < events && rc == 0; n++) {
    nx_event_t e;
    size_t len = nx_gen_event(g, n, ev, NULL);
    int jl = nx_decode(ev, len, &e) == 0 ? nx_event_json(&e, line, sizeof line) : -1;
    if (jl < 0 || (size_t)jl >= sizeof line) {
      fprintf(stderr, "flink-bench: event %" PRIu64 " cannot be written as JSON\n", n);
      rc = -1;
    } else if (fwrite(line, 1, (size_t)jl, f) != (size_t)jl || fputc('\n', f) == EOF) {
      rc = -1;
    }
  }
  if ((f == stdout ? fflush(f) : fclose(f)) != 0) rc = -1;
  if (rc != 0) fprintf(stderr, "flink-bench: --dump-events %s: write failed\n", path);
  return rc;
}

/* Runs one query and prints its JSON line; 0, or 1 when it failed or the results differ
 * from the baseline's. */
static int nexmark_one(const nexmark_opts_t *o, const nx_gen_t *gen, const nx_query_t *q) {
  char path[4096];
  const char *output = o->output;
  nx_run_t e = {0}, b = {0};
  if (output && strcmp(o->query, "all") == 0) {
    snprintf(path, sizeof path, "%s.%s", o->output, q->name);
    output = path;
  }
  if (nexmark_engine(o, gen, q, output, &e) != 0) return 1;
  double events = (double)o->gen.events;
  double rate = e.wall > 0 ? events / e.wall : 0;
  printf("{\"query\":\"%s\",\"events\":%" PRIu64 ",\"parallelism\":%d,\"rate\":%" PRIu64
         ",\"seconds\":%.6f,\"events_per_s\":%.0f,\"cpu_seconds\":%.6f,\"cores_used\":%.3f,"
         "\"events_per_s_per_core\":%.0f,\"results\":%" PRIu64 ",\"scrapes\":%ld",
         q->name, o->gen.events, o->parallelism, o->gen.rate, e.wall, rate, e.cpu,
         e.wall > 0 ? e.cpu / e.wall : 0, e.cpu > 0 ? events / e.cpu : 0, e.results.count,
         e.scrapes);
  int status = 0;
  if (o->baseline && nexmark_baseline(gen, q, &b)) {
    double b_rate = b.wall > 0 ? events / b.wall : 0;
    bool match = b.results.count == e.results.count && b.results.checksum == e.results.checksum;
    printf(
        ",\"baseline_seconds\":%.6f,\"baseline_events_per_s\":%.0f,\"ratio\":%.4f,"
        "\"baseline_results\":%" PRIu64 ",\"results_match\":%s",
        b.wall, b_rate, b_rate > 0 ? rate / b_rate : 0, b.results.count, match ? "true" : "false");
    if (!match) {
      fprintf(stderr,
              "flink-bench: %s: engine and baseline differ: %" PRIu64 " vs %" PRIu64
              " results, checksum %016" PRIx64 " vs %016" PRIx64 "\n",
              q->name, e.results.count, b.results.count, e.results.checksum, b.results.checksum);
      status = 1;
    }
  }
  printf("}\n");
  fflush(stdout);
  return status;
}

static void nexmark_usage(FILE *f) {
  fprintf(f,
          "usage: flink-bench nexmark --query qN|all [--events N] [--parallelism P]\n"
          "                           [--rate R] [--seed S] [--dump-events PATH]\n"
          "                           [--output PATH] [--no-baseline] [--scrape-ms N]\n"
          "                           [--set KEY=VALUE]...\n"
          "queries:");
  for (size_t i = 0; i < nx_query_count(); i++) fprintf(f, " %s", nx_query_at(i)->name);
  fprintf(f,
          "\n"
          "defaults: --query all --events 10000000 --parallelism 1 --rate 10000000\n"
          "          (events per second of event time) --seed 42\n"
          "--output PATH writes the results as JSON lines (PATH.qN with --query all);\n"
          "--dump-events PATH writes the generated events as JSON lines (- for stdout).\n");
}

static int parse_nexmark_args(int argc, char **argv, nexmark_opts_t *o) {
  uint64_t x;
  memset(o, 0, sizeof *o);
  nx_config_default(&o->gen);
  o->query = "all";
  o->parallelism = 1;
  o->baseline = true;
  for (int i = 2; i < argc; i++) {
    const char *name = argv[i];
    if (strcmp(name, "--help") == 0 || strcmp(name, "-h") == 0) {
      nexmark_usage(stdout);
      exit(0);
    }
    if (strcmp(name, "--no-baseline") == 0) {
      o->baseline = false;
      continue;
    }
    if (i + 1 >= argc) {
      fprintf(stderr, "flink-bench: unknown or incomplete option '%s'\n", name);
      return -1;
    }
    const char *v = argv[++i];
    if (strcmp(name, "--query") == 0) {
      if (strcmp(v, "all") != 0 && !nx_query_find(v)) {
        fprintf(stderr, "flink-bench: --query: unknown query '%s'\n", v);
        return -1;
      }
      o->query = v;
    } else if (strcmp(name, "--events") == 0) {
      if (bench_parse_u64(name, v, UINT64_C(1) << 40, &o->gen.events) != 0) return -1;
    } else if (strcmp(name, "--rate") == 0) {
      if (bench_parse_u64(name, v, UINT64_C(1) << 40, &o->gen.rate) != 0) return -1;
    } else if (strcmp(name, "--seed") == 0) {
      char *end;
      errno = 0;
      unsigned long long s = strtoull(v, &end, 10);
      if (!*v || *end || v[0] == '-' || errno) {
        fprintf(stderr, "flink-bench: --seed must be an unsigned integer, got '%s'\n", v);
        return -1;
      }
      o->gen.seed = s;
    } else if (strcmp(name, "--parallelism") == 0) {
      if (bench_parse_u64(name, v, 256, &x) != 0) return -1;
      o->parallelism = (int)x;
    } else if (strcmp(name, "--scrape-ms") == 0) {
      uint64_t x;
      if (bench_parse_u64(name, v, 3600000, &x) != 0) return -1;
      o->scrape_ms = (int)x;
    } else if (strcmp(name, "--dump-events") == 0) {
      o->dump_events = v;
    } else if (strcmp(name, "--output") == 0) {
      o->output = v;
    } else if (strcmp(name, "--set") == 0) {
      if (bench_add_setting(o->settings, &o->n_settings, v) != 0) return -1;
    } else {
      fprintf(stderr, "flink-bench: unknown option '%s'\n", name);
      return -1;
    }
  }
  return 0;
}

static int bench_nexmark(int argc, char **argv) {
  nexmark_opts_t o;
  nx_gen_t *gen = NULL;
  int status = 0;
  if (parse_nexmark_args(argc, argv, &o) != 0) {
    nexmark_usage(stderr);
    return 2;
  }
  int rc = nx_gen_new(&gen, &o.gen);
  if (rc != 0) {
    fprintf(stderr,
            "flink-bench: cannot make the generator (%s): --events %" PRIu64 " at --rate %" PRIu64
            " does not fit in event time\n",
            fl_err_name(rc), o.gen.events, o.gen.rate);
    return 1;
  }
  if (o.dump_events && nexmark_dump(gen, o.dump_events) != 0) {
    status = 1;
    goto done;
  }
  for (size_t i = 0; i < nx_query_count(); i++) {
    const nx_query_t *q = nx_query_at(i);
    if (strcmp(o.query, "all") == 0 || strcmp(o.query, q->name) == 0)
      status |= nexmark_one(&o, gen, q);
  }
done:
  nx_gen_destroy(gen);
  return status;
}

/* ---------------------------------------------------------------------------------- */
/* nexmark-table: JSON lines to a Markdown table                                      */

static void table_row(json_t *o) {
  const char *q = json_string_value(json_object_get(o, "query"));
  json_t *ratio = json_object_get(o, "ratio");
  char ratio_s[32] = "";
  if (json_is_number(ratio)) snprintf(ratio_s, sizeof ratio_s, "%.3f", json_number_value(ratio));
  printf("| %s | %lld | %lld | %.0f | %.0f | %.2f | %s |\n", q,
         (long long)json_integer_value(json_object_get(o, "parallelism")),
         (long long)json_integer_value(json_object_get(o, "events")),
         json_number_value(json_object_get(o, "events_per_s")),
         json_number_value(json_object_get(o, "events_per_s_per_core")),
         json_number_value(json_object_get(o, "cores_used")), ratio_s);
}

static int table_file(FILE *f, const char *name) {
  char line[65536];
  int rc = 0;
  for (unsigned long no = 1; fgets(line, sizeof line, f); no++) {
    json_error_t err;
    json_t *o = json_loads(line, 0, &err);
    if (!o || !json_is_object(o)) {
      fprintf(stderr, "flink-bench: %s:%lu: not a JSON object: %s\n", name, no, err.text);
      rc = 1;
    } else if (json_is_string(json_object_get(o, "query"))) {
      table_row(o);
    }
    json_decref(o);
  }
  return rc;
}

static int bench_nexmark_table(int argc, char **argv) {
  int rc = 0;
  printf(
      "| query | P | events | events/s | events/s per core | cores used | "
      "ratio to plain C |\n");
  printf("|---|---:|---:|---:|---:|---:|---:|\n");
  if (argc <= 2) return table_file(stdin, "stdin");
  for (int i = 2; i < argc; i++) {
    FILE *f = strcmp(argv[i], "-") == 0 ? stdin : fopen(argv[i], "r");
    if (!f) {
      fprintf(stderr, "flink-bench: %s: %s\n", argv[i], strerror(errno));
      rc = 1;
      continue;
    }
    rc |= table_file(f, argv[i]);
    if (f != stdin) fclose(f);
  }
  return rc;
}

/* ---------------------------------------------------------------------------------- */
/* Command line                                                                       */

typedef struct command {
  const char *name;
  int (*run)(int argc, char **argv);
  const char *summary;
} command_t;

static const command_t commands[] = {
    {"window", fl_bench_window_main,
     "keyed window SUM (tumbling, sliding, session) against plain C"},
    {"nexmark", bench_nexmark, "the Nexmark queries (q0-q2 also against plain C)"},
    {"nexmark-table", bench_nexmark_table, "nexmark JSON lines to a Markdown table"},
    {"checkpoint", fl_bench_checkpoint_main, "checkpoint duration and size, full vs incremental"},
    {"state", fl_bench_state_main, "state operations per second, hashmap vs RocksDB"},
    {"sessions", fl_bench_sessions_main, "peak memory of open session windows, hashmap vs RocksDB"},
    {"kafka", fl_bench_kafka_main, "Kafka -> window -> Kafka against librdkafka alone"},
    {"sql", fl_bench_sql_main, "SQL jobs against the same DataStream jobs (spend, nexmark)"},
};

int main(int argc, char **argv) {
  for (size_t i = 0; argc >= 2 && i < sizeof commands / sizeof commands[0]; i++)
    if (strcmp(argv[1], commands[i].name) == 0) return commands[i].run(argc, argv);
  bool help = argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0);
  FILE *f = help ? stdout : stderr;
  fprintf(f, "usage: flink-bench COMMAND [OPTIONS]  (COMMAND --help for its options)\n");
  for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
    fprintf(f, "  %-14s %s\n", commands[i].name, commands[i].summary);
  return help ? 0 : 2;
}
