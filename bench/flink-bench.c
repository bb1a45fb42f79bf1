/*
 * flink-bench - throughput benchmarks of the engine against plain C.
 *
 *   flink-bench window [--events N] [--keys K] [--window-ms W] [--parallelism P]
 *                      [--set KEY=VALUE]...
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
 * --set passes configuration keys to the engine (e.g. --set execution.batch-size=4096).
 */
#define _GNU_SOURCE
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "flink.h"

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
  if (!s)
    return FL_ENOMEM;
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
    if (rc != 0)
      return rc;
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

static int sum_result(fl_context_t *ctx, const fl_window_t *w, const void *acc,
                      void *opaque) {
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
  if (!s)
    return FL_ENOMEM;
  s->e = opaque;
  *instance = s;
  return 0;
}

static int sink_write(fl_context_t *ctx, const fl_record_t *in, void *instance) {
  sink_inst_t *s = instance;
  uint64_t key;
  double sum;
  if (in->key_len != sizeof key || in->value_len != sizeof sum)
    return fl_ctx_fail(ctx, "result with key %zu / value %zu bytes, expected 8 / 8",
                       in->key_len, in->value_len);
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

static double now_seconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static double cpu_seconds(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec * 1e-6 +
         (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec * 1e-6;
}

/* Runs the engine job; fills *out, the wall and CPU seconds of fl_env_execute(). */
static int run_engine(const bench_opts_t *o, results_t *out, double *wall, double *cpu) {
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
  fl_config_t *conf = NULL;
  fl_env_t *env = NULL;
  char errstr[512] = "", buf[256];
  int rc = FL_ENOMEM;

  pthread_mutex_init(&e.mu, NULL);
  conf = fl_config_new();
  if (!conf)
    goto done;
  snprintf(buf, sizeof buf, "%d", o->parallelism);
  if ((rc = fl_config_set(conf, "parallelism", buf, errstr, sizeof errstr)) != 0)
    goto config_error;
  for (int i = 0; i < o->n_settings; i++) {
    const char *eq = strchr(o->settings[i], '=');
    if (!eq || (size_t)(eq - o->settings[i]) >= sizeof buf) {
      snprintf(errstr, sizeof errstr, "--set wants KEY=VALUE, got '%s'", o->settings[i]);
      rc = FL_EINVAL;
      goto config_error;
    }
    memcpy(buf, o->settings[i], (size_t)(eq - o->settings[i]));
    buf[eq - o->settings[i]] = '\0';
    if ((rc = fl_config_set(conf, buf, eq + 1, errstr, sizeof errstr)) != 0)
      goto config_error;
  }
  if ((rc = fl_env_new(&env, conf, errstr, sizeof errstr)) != 0)
    goto config_error;

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

  double t0 = now_seconds(), c0 = cpu_seconds();
  rc = fl_env_execute(env, "bench-window");
  *wall = now_seconds() - t0;
  *cpu = cpu_seconds() - c0;
  if (rc != 0) {
    fprintf(stderr, "flink-bench: job failed (%s): %s\n", fl_err_name(rc), fl_env_error(env));
    goto done;
  }
  fl_env_destroy(env); /* sink instances have closed by now */
  env = NULL;
  *out = e.results;
  goto done;

config_error:
  fprintf(stderr, "flink-bench: %s\n", errstr);
done:
  fl_env_destroy(env);
  fl_config_destroy(conf);
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
  while (cap < 2 * max_keys)
    cap *= 2;
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
  if (map_init(&m, o->keys < per_window ? o->keys : per_window) != 0 || !gens || !n)
    goto done;
  for (int s = 0; s < o->parallelism; s++) {
    gen_init(&gens[s], s, o->keys);
    n[s] = events_of(o, s);
  }
  double t0 = now_seconds();
  int64_t cur = INT64_MIN;
  for (uint64_t i = 0; i < n[0]; i++) {
    int64_t ts = BASE_TS + (int64_t)(i / o->per_ms);
    int64_t ws = window_start(ts, o->window_ms);
    if (ws != cur) {
      if (cur != INT64_MIN)
        map_flush(&m, cur + o->window_ms - 1, &r);
      cur = ws;
    }
    for (int s = 0; s < o->parallelism && i < n[s]; s++) {
      uint64_t key;
      double amount;
      gen_next(&gens[s], &key, &amount);
      map_add(&m, key, amount);
    }
  }
  if (cur != INT64_MIN)
    map_flush(&m, cur + o->window_ms - 1, &r);
  *wall = now_seconds() - t0;
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

static void usage(FILE *f) {
  fprintf(f, "usage: flink-bench window [--events N] [--keys K] [--window-ms W]\n"
             "                          [--parallelism P] [--events-per-ms R] [--set KEY=VALUE]...\n"
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
      usage(stdout);
      exit(0);
    }
    if (i + 1 >= argc) {
      fprintf(stderr, "flink-bench: unknown or incomplete option '%s'\n", name);
      return -1;
    }
    const char *v = argv[++i];
    if (strcmp(name, "--events") == 0) {
      if (parse_u64(name, v, UINT64_C(1) << 40, &o->events) != 0)
        return -1;
    } else if (strcmp(name, "--keys") == 0) {
      /* the baseline map holds every key of a window in 32-bit slot indices */
      if (parse_u64(name, v, UINT64_C(1) << 28, &o->keys) != 0)
        return -1;
    } else if (strcmp(name, "--window-ms") == 0) {
      if (parse_u64(name, v, UINT64_C(1) << 40, &x) != 0)
        return -1;
      o->window_ms = (int64_t)x;
    } else if (strcmp(name, "--events-per-ms") == 0) {
      if (parse_u64(name, v, UINT64_C(1) << 30, &o->per_ms) != 0)
        return -1;
    } else if (strcmp(name, "--parallelism") == 0) {
      if (parse_u64(name, v, 256, &x) != 0)
        return -1;
      o->parallelism = (int)x;
    } else if (strcmp(name, "--set") == 0) {
      if (o->n_settings == MAX_SETTINGS) {
        fprintf(stderr, "flink-bench: at most %d --set options\n", MAX_SETTINGS);
        return -1;
      }
      o->settings[o->n_settings++] = v;
    } else {
      fprintf(stderr, "flink-bench: unknown option '%s'\n", name);
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
    usage(stderr);
    return 2;
  }
  if (run_engine(&o, &engine, &e_wall, &e_cpu) != 0)
    return 1;
  if (run_baseline(&o, &baseline, &b_wall) != 0) {
    fprintf(stderr, "flink-bench: out of memory\n");
    return 1;
  }
  bool match = engine.count == baseline.count && engine.sum == baseline.sum &&
               engine.hash == baseline.hash;
  double e_rate = e_wall > 0 ? (double)o.events / e_wall : 0;
  double b_rate = b_wall > 0 ? (double)o.events / b_wall : 0;
  printf("{\"bench\":\"window\",\"events\":%" PRIu64 ",\"keys\":%" PRIu64
         ",\"window_ms\":%" PRId64 ",\"events_per_ms\":%" PRIu64
         ",\"parallelism\":%d,\"engine_events_per_s\":%.0f,"
         "\"baseline_events_per_s\":%.0f,\"ratio\":%.4f,\"engine_seconds\":%.6f,"
         "\"baseline_seconds\":%.6f,\"engine_cpu_seconds\":%.6f,\"results\":%" PRIu64
         ",\"baseline_results\":%" PRIu64 ",\"checksum_match\":%s}\n",
         o.events, o.keys, o.window_ms, o.per_ms, o.parallelism, e_rate, b_rate,
         b_rate > 0 ? e_rate / b_rate : 0.0, e_wall, b_wall, e_cpu, engine.count,
         baseline.count, match ? "true" : "false");
  if (!match)
    fprintf(stderr,
            "flink-bench: engine and baseline differ: results %" PRIu64 " vs %" PRIu64
            ", sum %.17g vs %.17g, hash %016" PRIx64 " vs %016" PRIx64 "\n",
            engine.count, baseline.count, engine.sum, baseline.sum, engine.hash,
            baseline.hash);
  return match ? 0 : 1;
}

int main(int argc, char **argv) {
  if (argc >= 2 && strcmp(argv[1], "window") == 0)
    return bench_window(argc, argv);
  usage(argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)
            ? stdout
            : stderr);
  return 2;
}
