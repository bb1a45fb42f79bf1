/*
 * flink-bench - throughput benchmarks of the engine against plain C.
 *
 *   flink-bench window [--events N] [--keys K] [--window-ms W] [--parallelism P]
 *                      [--scrape-ms N] [--set KEY=VALUE]...
 *   flink-bench nexmark --query qN|all [--events N] [--parallelism P] [--rate R]
 *                       [--seed S] [--dump-events PATH] [--output PATH]
 *                       [--no-baseline] [--scrape-ms N] [--set KEY=VALUE]...
 *   flink-bench nexmark-table [FILE]...
 *
 * window: a keyed tumbling event-time window SUM.
 *   engine:   in-memory generator source (one instance per subtask, N/P events each)
 *             -> assign timestamps (monotonous) -> keyBy key -> tumbling window W
 *             -> aggregate {double sum} -> counting sink
 *   baseline: one thread, the same P event sequences walked in timestamp order, an
 *             open-addressing hash map from key to running sum, flushed at each window
 *             boundary.
 * Both produce one result per (key, window). The run checks that the engine and the
 * baseline agree on the number of results, their total and an order-independent hash of
 * (key, window, sum): amounts are small integers, so every sum is exact in a double
 * whatever the order of additions. One JSON line goes to stdout; the exit status is 1
 * when the checks fail.
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
#include "lib/bench_scrape.h"
#include "lib/bench_sql.h"
#include "lib/bench_mem.h"
#include "lib/bench_state.h"
#include "lib/nexmark.h"

#define BASE_TS INT64_C(1700000000000)
#define MAX_SETTINGS 32

typedef struct bench_opts {
  uint64_t events;
  uint64_t keys;
  int64_t window_ms;
  uint64_t per_ms; /* events per millisecond of event time, per subtask */
  int parallelism;
  const char *settings[MAX_SETTINGS]; /* "key=value" */
  int n_settings;
  int scrape_ms; /* GET /metrics this often while the job runs (needs rest.port); 0: no */
  long scrapes;  /* how many succeeded */
} bench_opts_t;

/* What both implementations produce. */
typedef struct results {
  uint64_t count; /* (key, window) results */
  double sum;     /* of all results */
  uint64_t hash;  /* sum of mix(key, window max timestamp, result) */
} results_t;

/* ---------------------------------------------------------------------------------- */
/* The event generator                                                                */

static inline uint64_t mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

/* Subtask s's sequence: event i has timestamp BASE_TS + i / per_ms, a key uniform over [0, K)
 * and an integer amount in [0, 1023], both from splitmix64 seeded by s. */
typedef struct gen {
  uint64_t state;
  uint64_t keys;
} gen_t;

static void gen_init(gen_t *g, int subtask, uint64_t keys) {
  g->state = mix64(0x5EED0000ull + (uint64_t)subtask);
  g->keys = keys;
}

static inline void gen_next(gen_t *g, uint64_t *key, double *amount) {
  uint64_t r = mix64(g->state += 0x9E3779B97F4A7C15ull);
  *key = (r & 0xFFFFFFFFull) % g->keys;
  *amount = (double)(r >> 54);
}

static uint64_t events_of(const bench_opts_t *o, int subtask) {
  uint64_t n = o->events / (uint64_t)o->parallelism;
  return n + ((uint64_t)subtask < o->events % (uint64_t)o->parallelism ? 1 : 0);
}

static inline int64_t window_start(int64_t ts, int64_t size) {
  int64_t m = ts % size;
  return ts - (m < 0 ? m + size : m);
}

static inline uint64_t result_hash(uint64_t key, int64_t max_ts, double sum) {
  uint64_t bits;
  memcpy(&bits, &sum, sizeof bits);
  return mix64(key ^ mix64((uint64_t)max_ts ^ mix64(bits)));
}

/* ---------------------------------------------------------------------------------- */
/* Engine                                                                             */

typedef struct engine_ctx {
  const bench_opts_t *opts;
  pthread_mutex_t mu;
  results_t results; /* combined from the sink instances as they close */
} engine_ctx_t;

typedef struct source_inst {
  gen_t gen;
  uint64_t i, n;
  uint64_t per_ms;
} source_inst_t;

static int source_open(fl_context_t *ctx, void *opaque, void **instance) {
  const engine_ctx_t *e = opaque;
  source_inst_t *s = calloc(1, sizeof *s);
  if (!s) return FL_ENOMEM;
  int subtask = fl_ctx_subtask(ctx);
  gen_init(&s->gen, subtask, e->opts->keys);
  s->n = events_of(e->opts, subtask);
  s->per_ms = e->opts->per_ms;
  *instance = s;
  return 0;
}

static int source_run(fl_context_t *ctx, void *instance) {
  source_inst_t *s = instance;
  uint64_t budget = fl_ctx_source_budget(ctx);
  uint64_t end = s->n - s->i < budget ? s->n : s->i + budget;
  for (; s->i < end; s->i++) {
    uint64_t key;
    double amount;
    gen_next(&s->gen, &key, &amount);
    int rc = fl_emit(ctx, &key, sizeof key, &amount, sizeof amount,
                     BASE_TS + (int64_t)(s->i / s->per_ms));
    if (rc != 0) return rc;
  }
  return s->i == s->n ? FL_SOURCE_END : FL_SOURCE_MORE;
}

static void source_close(void *instance) { free(instance); }

typedef struct sum_acc {
  double sum;
} sum_acc_t;

static void sum_init(void *acc, void *opaque) {
  (void)opaque;
  ((sum_acc_t *)acc)->sum = 0;
}

static int sum_add(fl_context_t *ctx, void *acc, const fl_record_t *in, void *opaque) {
  (void)opaque;
  double v;
  if (in->value_len != sizeof v)
    return fl_ctx_fail(ctx, "value of %zu bytes, expected 8", in->value_len);
  memcpy(&v, in->value, sizeof v);
  ((sum_acc_t *)acc)->sum += v;
  return 0;
}

static void sum_merge(void *acc, const void *other, void *opaque) {
  (void)opaque;
  ((sum_acc_t *)acc)->sum += ((const sum_acc_t *)other)->sum;
}

static int sum_result(fl_context_t *ctx, const fl_window_t *w, const void *acc, void *opaque) {
  (void)opaque;
  size_t key_len = 0;
  const void *key = fl_ctx_key(ctx, &key_len);
  double sum = ((const sum_acc_t *)acc)->sum;
  return fl_emit(ctx, key, key_len, &sum, sizeof sum, w->end - 1);
}

typedef struct sink_inst {
  engine_ctx_t *e;
  results_t r;
} sink_inst_t;

static int sink_open(fl_context_t *ctx, void *opaque, void **instance) {
  (void)ctx;
  sink_inst_t *s = calloc(1, sizeof *s);
  if (!s) return FL_ENOMEM;
  s->e = opaque;
  *instance = s;
  return 0;
}

static int sink_write(fl_context_t *ctx, const fl_record_t *in, void *instance) {
  sink_inst_t *s = instance;
  uint64_t key;
  double sum;
  if (in->key_len != sizeof key || in->value_len != sizeof sum)
    return fl_ctx_fail(ctx, "result with key %zu / value %zu bytes, expected 8 / 8", in->key_len,
                       in->value_len);
  memcpy(&key, in->key, sizeof key);
  memcpy(&sum, in->value, sizeof sum);
  s->r.count++;
  s->r.sum += sum;
  s->r.hash += result_hash(key, in->timestamp, sum);
  return 0;
}

static void sink_close(void *instance) {
  sink_inst_t *s = instance;
  engine_ctx_t *e = s->e;
  pthread_mutex_lock(&e->mu);
  e->results.count += s->r.count;
  e->results.sum += s->r.sum;
  e->results.hash += s->r.hash;
  pthread_mutex_unlock(&e->mu);
  free(s);
}

/* An environment with the parallelism and the "key=value" settings; errors go to
 * stderr. */
static int make_env(int parallelism, const char *const *settings, int n_settings, fl_env_t **env) {
  fl_config_t *conf = fl_config_new();
  char errstr[512] = "", buf[256];
  int rc = FL_ENOMEM;
  *env = NULL;
  if (!conf) {
    snprintf(errstr, sizeof errstr, "out of memory");
    goto done;
  }
  snprintf(buf, sizeof buf, "%d", parallelism);
  if ((rc = fl_config_set(conf, "parallelism", buf, errstr, sizeof errstr)) != 0) goto done;
  for (int i = 0; i < n_settings; i++) {
    const char *eq = strchr(settings[i], '=');
    if (!eq || (size_t)(eq - settings[i]) >= sizeof buf) {
      snprintf(errstr, sizeof errstr, "--set wants KEY=VALUE, got '%s'", settings[i]);
      rc = FL_EINVAL;
      goto done;
    }
    memcpy(buf, settings[i], (size_t)(eq - settings[i]));
    buf[eq - settings[i]] = '\0';
    if ((rc = fl_config_set(conf, buf, eq + 1, errstr, sizeof errstr)) != 0) goto done;
  }
  rc = fl_env_new(env, conf, errstr, sizeof errstr);
done:
  if (rc != 0) fprintf(stderr, "flink-bench: %s\n", errstr);
  fl_config_destroy(conf);
  return rc;
}

/* Runs the engine job; fills *out, the wall and CPU seconds of fl_env_execute(). */
static int run_engine(bench_opts_t *o, results_t *out, double *wall, double *cpu) {
  static const fl_source_fn_t source_fn = {
      .version = FL_SOURCE_FN_VERSION,
      .open = source_open,
      .run = source_run,
      .close = source_close,
  };
  static const fl_aggregate_fn_t sum_fn = {
      .version = FL_AGGREGATE_FN_VERSION,
      .acc_size = sizeof(sum_acc_t),
      .init = sum_init,
      .add = sum_add,
      .merge = sum_merge,
      .result = sum_result,
  };
  static const fl_sink_fn_t sink_fn = {
      .version = FL_SINK_FN_VERSION,
      .open = sink_open,
      .write = sink_write,
      .close = sink_close,
  };
  engine_ctx_t e = {.opts = o};
  fl_env_t *env = NULL;
  int rc;

  pthread_mutex_init(&e.mu, NULL);
  if ((rc = make_env(o->parallelism, o->settings, o->n_settings, &env)) != 0) goto done;

  fl_watermark_strategy_t ws = {
      .version = FL_WATERMARK_STRATEGY_VERSION,
      .kind = FL_WATERMARKS_MONOTONOUS,
  };
  fl_stream_t *events = fl_source(env, "generator", &source_fn, &e, 1);
  fl_stream_t *timed = fl_stream_assign_timestamps(events, "timestamps", &ws);
  fl_keyed_stream_t *keyed = fl_stream_key_by(timed, NULL, NULL);
  fl_windowed_stream_t *win = fl_window_tumbling(keyed, FL_EVENT_TIME, o->window_ms, 0);
  fl_stream_t *sums = fl_window_aggregate(win, "window-sum", &sum_fn, NULL);
  fl_stream_sink(sums, "count", &sink_fn, &e); /* builder errors surface in execute */

  bench_scrape_t *scraper = bench_scrape_start(env, o->scrape_ms);
  double t0 = bench_now_s(), c0 = bench_cpu_s();
  rc = fl_env_execute(env, "bench-window");
  *wall = bench_now_s() - t0;
  *cpu = bench_cpu_s() - c0;
  o->scrapes = bench_scrape_stop(scraper);
  if (rc != 0) {
    fprintf(stderr, "flink-bench: job failed (%s): %s\n", fl_err_name(rc), fl_env_error(env));
    goto done;
  }
  fl_env_destroy(env); /* sink instances have closed by now */
  env = NULL;
  *out = e.results;
done:
  fl_env_destroy(env);
  pthread_mutex_destroy(&e.mu);
  return rc;
}

/* ---------------------------------------------------------------------------------- */
/* Baseline: one thread, one hash map                                                 */

/* Open addressing with linear probing. A slot is live when its stamp equals the current
 * window's epoch, so flushing a window costs its live slots, not the capacity. */
typedef struct sum_map {
  uint64_t *keys;
  double *sums;
  uint32_t *stamp;
  uint32_t *live; /* slot indices in insertion order */
  size_t n_live;
  size_t mask;
  uint32_t epoch;
} sum_map_t;

static int map_init(sum_map_t *m, uint64_t max_keys) {
  size_t cap = 16;
  while (cap < 2 * max_keys) cap *= 2;
  memset(m, 0, sizeof *m);
  m->keys = malloc(cap * sizeof *m->keys);
  m->sums = malloc(cap * sizeof *m->sums);
  m->stamp = calloc(cap, sizeof *m->stamp);
  m->live = malloc(cap * sizeof *m->live);
  m->mask = cap - 1;
  m->epoch = 1;
  return m->keys && m->sums && m->stamp && m->live ? 0 : FL_ENOMEM;
}

static void map_free(sum_map_t *m) {
  free(m->keys);
  free(m->sums);
  free(m->stamp);
  free(m->live);
}

static inline void map_add(sum_map_t *m, uint64_t key, double v) {
  size_t i = mix64(key) & m->mask;
  for (;;) {
    if (m->stamp[i] != m->epoch) {
      m->stamp[i] = m->epoch;
      m->keys[i] = key;
      m->sums[i] = v;
      m->live[m->n_live++] = (uint32_t)i;
      return;
    }
    if (m->keys[i] == key) {
      m->sums[i] += v;
      return;
    }
    i = (i + 1) & m->mask;
  }
}

static void map_flush(sum_map_t *m, int64_t max_ts, results_t *r) {
  for (size_t j = 0; j < m->n_live; j++) {
    uint32_t i = m->live[j];
    r->count++;
    r->sum += m->sums[i];
    r->hash += result_hash(m->keys[i], max_ts, m->sums[i]);
  }
  m->n_live = 0;
  if (++m->epoch == 0) { /* wrapped: stale stamps could look live again */
    memset(m->stamp, 0, (m->mask + 1) * sizeof *m->stamp);
    m->epoch = 1;
  }
}

/* The P sub-sequences share their timestamps (event i of every subtask has
 * BASE_TS + i / per_ms),
 * so walking i and then the subtasks visits all events in timestamp order. */
static int run_baseline(const bench_opts_t *o, results_t *out, double *wall) {
  sum_map_t m;
  gen_t *gens = calloc((size_t)o->parallelism, sizeof *gens);
  uint64_t *n = calloc((size_t)o->parallelism, sizeof *n);
  results_t r = {0};
  int rc = FL_ENOMEM;

  /* A window holds at most window_ms * per_ms events per subtask. */
  uint64_t per_window = (uint64_t)o->window_ms * o->per_ms * (uint64_t)o->parallelism;
  if (map_init(&m, o->keys < per_window ? o->keys : per_window) != 0 || !gens || !n) goto done;
  for (int s = 0; s < o->parallelism; s++) {
    gen_init(&gens[s], s, o->keys);
    n[s] = events_of(o, s);
  }
  double t0 = bench_now_s();
  int64_t cur = INT64_MIN;
  for (uint64_t i = 0; i < n[0]; i++) {
    int64_t ts = BASE_TS + (int64_t)(i / o->per_ms);
    int64_t ws = window_start(ts, o->window_ms);
    if (ws != cur) {
      if (cur != INT64_MIN) map_flush(&m, cur + o->window_ms - 1, &r);
      cur = ws;
    }
    for (int s = 0; s < o->parallelism && i < n[s]; s++) {
      uint64_t key;
      double amount;
      gen_next(&gens[s], &key, &amount);
      map_add(&m, key, amount);
    }
  }
  if (cur != INT64_MIN) map_flush(&m, cur + o->window_ms - 1, &r);
  *wall = bench_now_s() - t0;
  *out = r;
  rc = 0;
done:
  map_free(&m);
  free(gens);
  free(n);
  return rc;
}

/* ---------------------------------------------------------------------------------- */
/* Command line                                                                       */

static void window_usage(FILE *f) {
  fprintf(f,
          "usage: flink-bench window [--events N] [--keys K] [--window-ms W]\n"
          "                          [--parallelism P] [--events-per-ms R] [--scrape-ms N]\n"
          "                          [--set KEY=VALUE]...\n"
          "defaults: --events 5000000 --keys 10000 --window-ms 1000 --parallelism 2\n"
          "          --events-per-ms 1000 (event time advances 1 ms every R events per\n"
          "          subtask: 1,000,000 events per second of event time)\n");
}

static int parse_u64(const char *name, const char *v, uint64_t max, uint64_t *out) {
  char *end;
  unsigned long long x = strtoull(v, &end, 10);
  if (!*v || *end || v[0] == '-' || x < 1 || x > max) {
    fprintf(stderr, "flink-bench: %s must be 1..%" PRIu64 ", got '%s'\n", name, max, v);
    return -1;
  }
  *out = x;
  return 0;
}

/* The options both benchmarks take besides their own: --parallelism N and --set
 * KEY=VALUE. 1 if name is one of them (handled), 0 if not, -1 (said on stderr) if its
 * value is wrong; an unknown option is said here too (returning -1). */
static int parse_common_option(const char *name, const char *v, int *parallelism,
                               const char **settings, int *n_settings) {
  uint64_t x;
  if (strcmp(name, "--parallelism") == 0) {
    if (parse_u64(name, v, 256, &x) != 0) return -1;
    *parallelism = (int)x;
    return 1;
  }
  if (strcmp(name, "--set") == 0) {
    if (*n_settings == MAX_SETTINGS) {
      fprintf(stderr, "flink-bench: at most %d --set options\n", MAX_SETTINGS);
      return -1;
    }
    settings[(*n_settings)++] = v;
    return 1;
  }
  fprintf(stderr, "flink-bench: unknown option '%s'\n", name);
  return -1;
}

static int parse_window_args(int argc, char **argv, bench_opts_t *o) {
  uint64_t x;
  o->events = 5000000;
  o->keys = 10000;
  o->window_ms = 1000;
  o->per_ms = 1000;
  o->parallelism = 2;
  for (int i = 2; i < argc; i++) {
    const char *name = argv[i];
    if (strcmp(name, "--help") == 0 || strcmp(name, "-h") == 0) {
      window_usage(stdout);
      exit(0);
    }
    if (i + 1 >= argc) {
      fprintf(stderr, "flink-bench: unknown or incomplete option '%s'\n", name);
      return -1;
    }
    const char *v = argv[++i];
    if (strcmp(name, "--events") == 0) {
      if (parse_u64(name, v, UINT64_C(1) << 40, &o->events) != 0) return -1;
    } else if (strcmp(name, "--keys") == 0) {
      /* the baseline map holds every key of a window in 32-bit slot indices */
      if (parse_u64(name, v, UINT64_C(1) << 28, &o->keys) != 0) return -1;
    } else if (strcmp(name, "--window-ms") == 0) {
      if (parse_u64(name, v, UINT64_C(1) << 40, &x) != 0) return -1;
      o->window_ms = (int64_t)x;
    } else if (strcmp(name, "--scrape-ms") == 0) {
      if (parse_u64(name, v, 3600000, &x) != 0) return -1;
      o->scrape_ms = (int)x;
    } else if (strcmp(name, "--events-per-ms") == 0) {
      if (parse_u64(name, v, UINT64_C(1) << 30, &o->per_ms) != 0) return -1;
    } else if (parse_common_option(name, v, &o->parallelism, o->settings, &o->n_settings) < 0) {
      return -1;
    }
  }
  return 0;
}

static int bench_window(int argc, char **argv) {
  bench_opts_t o;
  results_t engine = {0}, baseline = {0};
  double e_wall = 0, e_cpu = 0, b_wall = 0;

  memset(&o, 0, sizeof o);
  if (parse_window_args(argc, argv, &o) != 0) {
    window_usage(stderr);
    return 2;
  }
  if (run_engine(&o, &engine, &e_wall, &e_cpu) != 0) return 1;
  if (run_baseline(&o, &baseline, &b_wall) != 0) {
    fprintf(stderr, "flink-bench: out of memory\n");
    return 1;
  }
  bool match =
      engine.count == baseline.count && engine.sum == baseline.sum && engine.hash == baseline.hash;
  double e_rate = e_wall > 0 ? (double)o.events / e_wall : 0;
  double b_rate = b_wall > 0 ? (double)o.events / b_wall : 0;
  printf("{\"bench\":\"window\",\"events\":%" PRIu64 ",\"keys\":%" PRIu64 ",\"window_ms\":%" PRId64
         ",\"events_per_ms\":%" PRIu64
         ",\"parallelism\":%d,\"engine_events_per_s\":%.0f,"
         "\"baseline_events_per_s\":%.0f,\"ratio\":%.4f,\"engine_seconds\":%.6f,"
         "\"baseline_seconds\":%.6f,\"engine_cpu_seconds\":%.6f,\"results\":%" PRIu64
         ",\"baseline_results\":%" PRIu64 ",\"checksum_match\":%s,\"scrapes\":%ld}\n",
         o.events, o.keys, o.window_ms, o.per_ms, o.parallelism, e_rate, b_rate,
         b_rate > 0 ? e_rate / b_rate : 0.0, e_wall, b_wall, e_cpu, engine.count, baseline.count,
         match ? "true" : "false", o.scrapes);
  if (!match)
    fprintf(stderr,
            "flink-bench: engine and baseline differ: results %" PRIu64 " vs %" PRIu64
            ", sum %.17g vs %.17g, hash %016" PRIx64 " vs %016" PRIx64 "\n",
            engine.count, baseline.count, engine.sum, baseline.sum, engine.hash, baseline.hash);
  return match ? 0 : 1;
}

/* ---------------------------------------------------------------------------------- */
/* Nexmark                                                                            */

typedef struct nexmark_opts {
  const char *query; /* a name or "all" */
  nx_config_t gen;
  int parallelism;
  const char *dump_events;
  const char *output;
  bool baseline;
  const char *settings[MAX_SETTINGS];
  int n_settings;
  int scrape_ms; /* as the window benchmark's */
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
  if ((rc = make_env(o->parallelism, o->settings, o->n_settings, &env)) != 0) goto done;
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
      if (parse_u64(name, v, UINT64_C(1) << 40, &o->gen.events) != 0) return -1;
    } else if (strcmp(name, "--rate") == 0) {
      if (parse_u64(name, v, UINT64_C(1) << 40, &o->gen.rate) != 0) return -1;
    } else if (strcmp(name, "--seed") == 0) {
      char *end;
      errno = 0;
      unsigned long long s = strtoull(v, &end, 10);
      if (!*v || *end || v[0] == '-' || errno) {
        fprintf(stderr, "flink-bench: --seed must be an unsigned integer, got '%s'\n", v);
        return -1;
      }
      o->gen.seed = s;
    } else if (strcmp(name, "--scrape-ms") == 0) {
      uint64_t x;
      if (parse_u64(name, v, 3600000, &x) != 0) return -1;
      o->scrape_ms = (int)x;
    } else if (strcmp(name, "--dump-events") == 0) {
      o->dump_events = v;
    } else if (strcmp(name, "--output") == 0) {
      o->output = v;
    } else if (parse_common_option(name, v, &o->parallelism, o->settings, &o->n_settings) < 0) {
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
    {"window", bench_window, "keyed tumbling window SUM against a plain C loop"},
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
