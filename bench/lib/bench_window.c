/*
 * flink-bench window: a keyed event-time window SUM through the engine against a plain C
 * loop doing the same computation over the same events, in the same run.
 *
 *   engine:   in-memory generator source (one instance per subtask, N/P events each)
 *             -> assign timestamps (monotonous) -> keyBy key -> window
 *             -> aggregate {double sum} -> counting sink
 *   baseline: one thread, the same P event sequences walked in timestamp order:
 *             tumbling: an open-addressing hash map from key to running sum, flushed at
 *                       each window boundary;
 *             sliding:  one such map per slice (the slide), the last size/slide slices
 *                       kept; at each slice boundary the window ending there is the sum
 *                       of its slices' maps;
 *             session:  a map from key to its open session (end, sum); an element
 *                       past the end of its key's session closes it and opens another.
 * Both produce one result per (key, window). The run checks that the engine and the
 * baseline agree on the number of results, their total and an order-independent hash of
 * (key, window max timestamp, sum): amounts are small integers, so every sum is exact in
 * a double whatever the order of additions. One JSON line goes to stdout; the exit status
 * is 1 when the checks fail.
 */
#define _GNU_SOURCE
#include "lib/bench_window.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "flink.h"
#include "lib/bench_clock.h"
#include "lib/bench_env.h"
#include "lib/bench_scrape.h"

#define BASE_TS INT64_C(1700000000000)

typedef enum bw_kind {
  BW_TUMBLING,
  BW_SLIDING,
  BW_SESSION
} bw_kind_t;

static const char *const kind_names[] = {"tumbling", "sliding", "session"};

typedef struct bench_opts {
  bw_kind_t kind;
  uint64_t events;
  uint64_t keys;
  int64_t window_ms; /* tumbling and sliding: the size */
  int64_t slide_ms;  /* sliding */
  int64_t gap_ms;    /* session */
  uint64_t per_ms;   /* events per millisecond of event time, per subtask */
  int parallelism;
  int parallelisms[8]; /* --parallelism P[,P...]: each is run in turn */
  int n_parallelisms;
  const char *settings[BENCH_MAX_SETTINGS]; /* "key=value" */
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

/* Subtask s's sequence: event i has timestamp BASE_TS + (i / per_ms) * step, a key uniform
 * over [0, K) and an integer amount in [0, 1023], both from splitmix64 seeded by s. The
 * step is 1 ms, and 2 ms for session windows, whose gap is odd: then no element falls
 * exactly on the end of its key's session (last timestamp + gap), where the engine merges
 * it only if the session has not fired yet, which depends on when watermarks happen to be
 * emitted; every other element either intersects the session (and the watermark cannot
 * have passed its end, since elements come in timestamp order) or starts a new one. */
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

static int64_t ts_step(const bench_opts_t *o) { return o->kind == BW_SESSION ? 2 : 1; }

static uint64_t events_of(const bench_opts_t *o, int subtask) {
  uint64_t n = o->events / (uint64_t)o->parallelism;
  return n + ((uint64_t)subtask < o->events % (uint64_t)o->parallelism ? 1 : 0);
}

/* floor(ts / size) for size > 0. */
static inline int64_t floor_div(int64_t ts, int64_t size) {
  int64_t q = ts / size;
  return q - (ts % size < 0 ? 1 : 0);
}

static inline uint64_t result_hash(uint64_t key, int64_t max_ts, double sum) {
  uint64_t bits;
  memcpy(&bits, &sum, sizeof bits);
  return mix64(key ^ mix64((uint64_t)max_ts ^ mix64(bits)));
}

static inline void result_add(results_t *r, uint64_t key, int64_t max_ts, double sum) {
  r->count++;
  r->sum += sum;
  r->hash += result_hash(key, max_ts, sum);
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
  int64_t step;
} source_inst_t;

static int source_open(fl_context_t *ctx, void *opaque, void **instance) {
  const engine_ctx_t *e = opaque;
  source_inst_t *s = calloc(1, sizeof *s);
  if (!s) return FL_ENOMEM;
  int subtask = fl_ctx_subtask(ctx);
  gen_init(&s->gen, subtask, e->opts->keys);
  s->n = events_of(e->opts, subtask);
  s->per_ms = e->opts->per_ms;
  s->step = ts_step(e->opts);
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
                     BASE_TS + (int64_t)(s->i / s->per_ms) * s->step);
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
  result_add(&s->r, key, in->timestamp, sum);
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
  if ((rc = bench_make_env(o->parallelism, o->settings, o->n_settings, &env)) != 0) goto done;

  fl_watermark_strategy_t ws = {
      .version = FL_WATERMARK_STRATEGY_VERSION,
      .kind = FL_WATERMARKS_MONOTONOUS,
  };
  fl_stream_t *events = fl_source(env, "generator", &source_fn, &e, 1);
  fl_stream_t *timed = fl_stream_assign_timestamps(events, "timestamps", &ws);
  fl_keyed_stream_t *keyed = fl_stream_key_by(timed, NULL, NULL);
  fl_windowed_stream_t *win;
  switch (o->kind) {
  case BW_SLIDING:
    win = fl_window_sliding(keyed, FL_EVENT_TIME, o->window_ms, o->slide_ms, 0);
    break;
  case BW_SESSION: win = fl_window_session(keyed, FL_EVENT_TIME, o->gap_ms); break;
  default: win = fl_window_tumbling(keyed, FL_EVENT_TIME, o->window_ms, 0); break;
  }
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
/* Baseline: one thread, hash maps                                                    */

/* Open addressing with linear probing. A slot is live when its stamp equals the current
 * epoch, so emptying the map costs its live slots, not the capacity. */
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

/* The slot of key, inserted with sum 0 if absent. */
static inline size_t map_slot(sum_map_t *m, uint64_t key) {
  size_t i = mix64(key) & m->mask;
  for (;;) {
    if (m->stamp[i] != m->epoch) {
      m->stamp[i] = m->epoch;
      m->keys[i] = key;
      m->sums[i] = 0;
      m->live[m->n_live++] = (uint32_t)i;
      return i;
    }
    if (m->keys[i] == key) return i;
    i = (i + 1) & m->mask;
  }
}

static inline void map_add(sum_map_t *m, uint64_t key, double v) { m->sums[map_slot(m, key)] += v; }

static void map_clear(sum_map_t *m) {
  m->n_live = 0;
  if (++m->epoch == 0) { /* wrapped: stale stamps could look live again */
    memset(m->stamp, 0, (m->mask + 1) * sizeof *m->stamp);
    m->epoch = 1;
  }
}

/* Reports every key's sum as the result of the window with max timestamp max_ts, and
 * empties the map. */
static void map_flush(sum_map_t *m, int64_t max_ts, results_t *r) {
  for (size_t j = 0; j < m->n_live; j++) {
    uint32_t i = m->live[j];
    result_add(r, m->keys[i], max_ts, m->sums[i]);
  }
  map_clear(m);
}

/* The P sub-sequences share their timestamps (event i of every subtask has
 * BASE_TS + (i / per_ms) * step), so walking i and then the subtasks visits all events in
 * timestamp order. The walk calls on_time when the timestamp changes, then on_event. */
typedef struct walk {
  const bench_opts_t *o;
  gen_t *gens;
  uint64_t *n;
} walk_t;

static int walk_init(walk_t *w, const bench_opts_t *o) {
  w->o = o;
  w->gens = calloc((size_t)o->parallelism, sizeof *w->gens);
  w->n = calloc((size_t)o->parallelism, sizeof *w->n);
  if (!w->gens || !w->n) return FL_ENOMEM;
  for (int s = 0; s < o->parallelism; s++) {
    gen_init(&w->gens[s], s, o->keys);
    w->n[s] = events_of(o, s);
  }
  return 0;
}

static void walk_free(walk_t *w) {
  free(w->gens);
  free(w->n);
}

/* Distinct keys a span of event time can hold: at most the keys, at most its events. */
static uint64_t keys_in(const bench_opts_t *o, int64_t span_ms) {
  uint64_t events = (uint64_t)span_ms * o->per_ms * (uint64_t)o->parallelism;
  if (o->per_ms && events / o->per_ms / (uint64_t)o->parallelism != (uint64_t)span_ms)
    events = UINT64_MAX; /* overflowed: unbounded */
  return o->keys < events ? o->keys : events;
}

static int baseline_tumbling(const bench_opts_t *o, results_t *out, double *wall) {
  sum_map_t m;
  walk_t w;
  results_t r = {0};
  int rc = FL_ENOMEM;
  memset(&m, 0, sizeof m);
  if (walk_init(&w, o) != 0 || map_init(&m, keys_in(o, o->window_ms)) != 0) goto done;
  double t0 = bench_now_s();
  int64_t cur = INT64_MIN;
  for (uint64_t i = 0; i < w.n[0]; i++) {
    int64_t ts = BASE_TS + (int64_t)(i / o->per_ms) * ts_step(o);
    int64_t ws = floor_div(ts, o->window_ms) * o->window_ms;
    if (ws != cur) {
      if (cur != INT64_MIN) map_flush(&m, cur + o->window_ms - 1, &r);
      cur = ws;
    }
    for (int s = 0; s < o->parallelism && i < w.n[s]; s++) {
      uint64_t key;
      double amount;
      gen_next(&w.gens[s], &key, &amount);
      map_add(&m, key, amount);
    }
  }
  if (cur != INT64_MIN) map_flush(&m, cur + o->window_ms - 1, &r);
  *wall = bench_now_s() - t0;
  *out = r;
  rc = 0;
done:
  map_free(&m);
  walk_free(&w);
  return rc;
}

/* Sliding windows by slices: slice j is [j * slide, (j + 1) * slide); the window ending
 * at m * slide holds slices m - n .. m - 1 (n = size / slide). A ring of n slice maps,
 * allocated as slices start, holds the slices a window can still need. */
typedef struct slices {
  const bench_opts_t *o;
  int64_t n;
  sum_map_t *maps; /* [n], ring by slice index mod n */
  int64_t *idx;    /* slice held by each ring slot, INT64_MIN if none */
  sum_map_t win;   /* a window being combined */
  uint64_t slice_keys;
} slices_t;

static sum_map_t *slice_map(slices_t *s, int64_t j) {
  size_t at = (size_t)(((j % s->n) + s->n) % s->n);
  return s->idx[at] == j ? &s->maps[at] : NULL;
}

/* The window ending at m * slide: its slices' sums combined per key. */
static void fire_sliding(slices_t *s, int64_t m, results_t *r) {
  for (int64_t j = m - s->n; j < m; j++) {
    sum_map_t *sm = slice_map(s, j);
    if (!sm) continue;
    for (size_t k = 0; k < sm->n_live; k++) {
      uint32_t i = sm->live[k];
      map_add(&s->win, sm->keys[i], sm->sums[i]);
    }
  }
  map_flush(&s->win, m * s->o->slide_ms - 1, r);
}

/* Slice j's map, emptied, taking the ring slot of slice j - n. */
static int slice_start(slices_t *s, int64_t j, sum_map_t **out) {
  size_t at = (size_t)(((j % s->n) + s->n) % s->n);
  if (!s->maps[at].keys && map_init(&s->maps[at], s->slice_keys) != 0) return FL_ENOMEM;
  map_clear(&s->maps[at]);
  s->idx[at] = j;
  *out = &s->maps[at];
  return 0;
}

static int baseline_sliding(const bench_opts_t *o, results_t *out, double *wall) {
  slices_t s = {.o = o, .n = o->window_ms / o->slide_ms};
  walk_t w;
  results_t r = {0};
  int rc = FL_ENOMEM;
  memset(&s.win, 0, sizeof s.win);
  s.maps = calloc((size_t)s.n, sizeof *s.maps);
  s.idx = malloc((size_t)s.n * sizeof *s.idx);
  s.slice_keys = keys_in(o, o->slide_ms);
  if (walk_init(&w, o) != 0 || !s.maps || !s.idx || map_init(&s.win, keys_in(o, o->window_ms)))
    goto done;
  for (int64_t k = 0; k < s.n; k++) s.idx[k] = INT64_MIN;
  double t0 = bench_now_s();
  int64_t cur = INT64_MIN;
  sum_map_t *m = NULL;
  for (uint64_t i = 0; i < w.n[0]; i++) {
    int64_t ts = BASE_TS + (int64_t)(i / o->per_ms) * ts_step(o);
    int64_t j = floor_div(ts, o->slide_ms);
    if (j != cur) {
      /* Windows ending after slice cur and up to slice j's start; those ending later
       * than cur + n hold no events. */
      if (cur != INT64_MIN)
        for (int64_t e = cur + 1; e <= j && e <= cur + s.n; e++) fire_sliding(&s, e, &r);
      if (slice_start(&s, j, &m) != 0) goto done;
      cur = j;
    }
    for (int p = 0; p < o->parallelism && i < w.n[p]; p++) {
      uint64_t key;
      double amount;
      gen_next(&w.gens[p], &key, &amount);
      map_add(m, key, amount);
    }
  }
  if (cur != INT64_MIN)
    for (int64_t e = cur + 1; e <= cur + s.n; e++) fire_sliding(&s, e, &r);
  *wall = bench_now_s() - t0;
  *out = r;
  rc = 0;
done:
  for (int64_t k = 0; s.maps && k < s.n; k++) map_free(&s.maps[k]);
  free(s.maps);
  free(s.idx);
  map_free(&s.win);
  walk_free(&w);
  return rc;
}

/* Session windows: per key its open session's end (last timestamp + gap) and sum. An
 * element at ts <= end joins it (a window [ts, ts + gap) that touches or intersects the
 * session merges with it); a later one closes it and opens the next. Keys stay in the
 * map for the whole run. */
static int baseline_session(const bench_opts_t *o, results_t *out, double *wall) {
  sum_map_t m; /* key -> slot; sums are the open sessions' sums */
  int64_t *end = NULL;
  walk_t w;
  results_t r = {0};
  int rc = FL_ENOMEM;
  memset(&m, 0, sizeof m);
  if (walk_init(&w, o) != 0 || map_init(&m, o->keys) != 0) goto done;
  end = malloc((m.mask + 1) * sizeof *end);
  if (!end) goto done;
  double t0 = bench_now_s();
  for (uint64_t i = 0; i < w.n[0]; i++) {
    int64_t ts = BASE_TS + (int64_t)(i / o->per_ms) * ts_step(o);
    for (int s = 0; s < o->parallelism && i < w.n[s]; s++) {
      uint64_t key;
      double amount;
      gen_next(&w.gens[s], &key, &amount);
      size_t n_live = m.n_live;
      size_t k = map_slot(&m, key);
      if (m.n_live != n_live) {
        end[k] = ts + o->gap_ms; /* a new key */
      } else if (ts <= end[k]) {
        if (ts + o->gap_ms > end[k]) end[k] = ts + o->gap_ms;
      } else {
        result_add(&r, key, end[k] - 1, m.sums[k]);
        m.sums[k] = 0;
        end[k] = ts + o->gap_ms;
      }
      m.sums[k] += amount;
    }
  }
  for (size_t j = 0; j < m.n_live; j++) {
    uint32_t k = m.live[j];
    result_add(&r, m.keys[k], end[k] - 1, m.sums[k]);
  }
  *wall = bench_now_s() - t0;
  *out = r;
  rc = 0;
done:
  free(end);
  map_free(&m);
  walk_free(&w);
  return rc;
}

/* ---------------------------------------------------------------------------------- */
/* Command line                                                                       */

static void window_usage(FILE *f) {
  fprintf(f,
          "usage: flink-bench window [--kind tumbling|sliding|session] [--events N] [--keys K]\n"
          "                          [--window-ms W] [--slide-ms S] [--gap-ms G]\n"
          "                          [--parallelism P[,P...]] [--events-per-ms R] [--scrape-ms N]\n"
          "                          [--set KEY=VALUE]...\n"
          "defaults: --kind tumbling --events 5000000 --keys 10000 --window-ms 1000\n"
          "          --parallelism 2 --events-per-ms 1000 (event time advances 1 ms every R\n"
          "          events per subtask: 1,000,000 events per second of event time);\n"
          "          sliding: --slide-ms W/12 by default, and W must be a multiple of S;\n"
          "          session: --gap-ms 999 by default, and G must be odd (event time then\n"
          "          advances 2 ms every R events, so no element lands on a session's end);\n"
          "          --parallelism 1,2 runs each in turn and prints the speedup over the first\n");
}

/* "1,2" -> {1, 2}: each parallelism is run in turn, and the speedup of each over the
 * first is printed, so a scaling figure comes from one run of the benchmark. */
static int parse_parallelisms(const char *name, const char *v, bench_opts_t *o) {
  char part[32];
  o->n_parallelisms = 0;
  while (*v) {
    size_t len = strcspn(v, ",");
    uint64_t x;
    if (len == 0 || len >= sizeof part ||
        o->n_parallelisms == (int)(sizeof o->parallelisms / sizeof o->parallelisms[0])) {
      fprintf(stderr, "flink-bench: %s takes up to 8 parallelisms separated by commas, got '%s'\n",
              name, v);
      return -1;
    }
    memcpy(part, v, len);
    part[len] = '\0';
    if (bench_parse_u64(name, part, 256, &x) != 0) return -1;
    o->parallelisms[o->n_parallelisms++] = (int)x;
    v += len;
    if (*v == ',') v++;
  }
  if (o->n_parallelisms == 0) {
    fprintf(stderr, "flink-bench: %s needs a value\n", name);
    return -1;
  }
  o->parallelism = o->parallelisms[0];
  return 0;
}

static int parse_window_args(int argc, char **argv, bench_opts_t *o) {
  uint64_t x;
  o->kind = BW_TUMBLING;
  o->events = 5000000;
  o->keys = 10000;
  o->window_ms = 1000;
  o->slide_ms = 0;
  o->gap_ms = 999;
  o->per_ms = 1000;
  o->parallelism = 2;
  o->parallelisms[0] = 2;
  o->n_parallelisms = 1;
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
    if (strcmp(name, "--kind") == 0) {
      size_t k = 0;
      while (k < 3 && strcmp(v, kind_names[k]) != 0) k++;
      if (k == 3) {
        fprintf(stderr, "flink-bench: --kind must be tumbling, sliding or session, got '%s'\n", v);
        return -1;
      }
      o->kind = (bw_kind_t)k;
    } else if (strcmp(name, "--events") == 0) {
      if (bench_parse_u64(name, v, UINT64_C(1) << 40, &o->events) != 0) return -1;
    } else if (strcmp(name, "--keys") == 0) {
      /* the baseline maps hold keys in 32-bit slot indices */
      if (bench_parse_u64(name, v, UINT64_C(1) << 28, &o->keys) != 0) return -1;
    } else if (strcmp(name, "--window-ms") == 0) {
      if (bench_parse_u64(name, v, UINT64_C(1) << 40, &x) != 0) return -1;
      o->window_ms = (int64_t)x;
    } else if (strcmp(name, "--slide-ms") == 0) {
      if (bench_parse_u64(name, v, UINT64_C(1) << 40, &x) != 0) return -1;
      o->slide_ms = (int64_t)x;
    } else if (strcmp(name, "--gap-ms") == 0) {
      if (bench_parse_u64(name, v, UINT64_C(1) << 40, &x) != 0) return -1;
      o->gap_ms = (int64_t)x;
    } else if (strcmp(name, "--scrape-ms") == 0) {
      if (bench_parse_u64(name, v, 3600000, &x) != 0) return -1;
      o->scrape_ms = (int)x;
    } else if (strcmp(name, "--events-per-ms") == 0) {
      if (bench_parse_u64(name, v, UINT64_C(1) << 30, &o->per_ms) != 0) return -1;
    } else if (strcmp(name, "--parallelism") == 0) {
      if (parse_parallelisms(name, v, o) != 0) return -1;
    } else if (strcmp(name, "--set") == 0) {
      if (bench_add_setting(o->settings, &o->n_settings, v) != 0) return -1;
    } else {
      fprintf(stderr, "flink-bench: unknown option '%s'\n", name);
      return -1;
    }
  }
  if (o->kind == BW_SESSION && o->gap_ms % 2 == 0) {
    fprintf(stderr,
            "flink-bench: --gap-ms must be odd for session windows (got %" PRId64
            "): timestamps are even, so that no element lands exactly on a session's end\n",
            o->gap_ms);
    return -1;
  }
  if (o->kind == BW_SLIDING) {
    if (!o->slide_ms) o->slide_ms = o->window_ms / 12 ? o->window_ms / 12 : 1;
    if (o->window_ms % o->slide_ms != 0) {
      fprintf(stderr,
              "flink-bench: --window-ms (%" PRId64 ") must be a multiple of --slide-ms (%" PRId64
              ")\n",
              o->window_ms, o->slide_ms);
      return -1;
    }
    if (o->window_ms / o->slide_ms > 4096) {
      fprintf(stderr, "flink-bench: at most 4096 slides per window\n");
      return -1;
    }
  }
  return 0;
}

/* Runs the engine and the plain loop at o->parallelism and prints their line; *rate gets
 * the engine's events per second. 0 when the two agree, else 1. */
static int window_run_one(bench_opts_t *o_, double *rate) {
  bench_opts_t o = *o_;
  results_t engine = {0}, baseline = {0};
  double e_wall = 0, e_cpu = 0, b_wall = 0;

  if (run_engine(&o, &engine, &e_wall, &e_cpu) != 0) return 1;
  int rc = o.kind == BW_SLIDING   ? baseline_sliding(&o, &baseline, &b_wall)
           : o.kind == BW_SESSION ? baseline_session(&o, &baseline, &b_wall)
                                  : baseline_tumbling(&o, &baseline, &b_wall);
  if (rc != 0) {
    fprintf(stderr, "flink-bench: out of memory\n");
    return 1;
  }
  bool match =
      engine.count == baseline.count && engine.sum == baseline.sum && engine.hash == baseline.hash;
  double e_rate = e_wall > 0 ? (double)o.events / e_wall : 0;
  double b_rate = b_wall > 0 ? (double)o.events / b_wall : 0;
  char shape[96];
  if (o.kind == BW_SESSION)
    snprintf(shape, sizeof shape, "\"gap_ms\":%" PRId64, o.gap_ms);
  else if (o.kind == BW_SLIDING)
    snprintf(shape, sizeof shape, "\"window_ms\":%" PRId64 ",\"slide_ms\":%" PRId64, o.window_ms,
             o.slide_ms);
  else
    snprintf(shape, sizeof shape, "\"window_ms\":%" PRId64, o.window_ms);
  printf("{\"bench\":\"window\",\"kind\":\"%s\",\"events\":%" PRIu64 ",\"keys\":%" PRIu64
         ",%s,\"events_per_ms\":%" PRIu64
         ",\"parallelism\":%d,\"engine_events_per_s\":%.0f,"
         "\"baseline_events_per_s\":%.0f,\"ratio\":%.4f,\"engine_seconds\":%.6f,"
         "\"baseline_seconds\":%.6f,\"engine_cpu_seconds\":%.6f,\"results\":%" PRIu64
         ",\"baseline_results\":%" PRIu64 ",\"checksum_match\":%s,\"scrapes\":%ld}\n",
         kind_names[o.kind], o.events, o.keys, shape, o.per_ms, o.parallelism, e_rate, b_rate,
         b_rate > 0 ? e_rate / b_rate : 0.0, e_wall, b_wall, e_cpu, engine.count, baseline.count,
         match ? "true" : "false", o.scrapes);
  fflush(stdout);
  *rate = e_rate;
  if (!match)
    fprintf(stderr,
            "flink-bench: engine and baseline differ: results %" PRIu64 " vs %" PRIu64
            ", sum %.17g vs %.17g, hash %016" PRIx64 " vs %016" PRIx64 "\n",
            engine.count, baseline.count, engine.sum, baseline.sum, engine.hash, baseline.hash);
  return match ? 0 : 1;
}

int fl_bench_window_main(int argc, char **argv) {
  bench_opts_t o;
  double rates[8];
  int rc = 0;

  memset(&o, 0, sizeof o);
  if (parse_window_args(argc, argv, &o) != 0) {
    window_usage(stderr);
    return 2;
  }
  for (int i = 0; i < o.n_parallelisms; i++) {
    o.parallelism = o.parallelisms[i];
    o.scrapes = 0;
    if (window_run_one(&o, &rates[i]) != 0) rc = 1;
  }
  /* The speedup of each parallelism over the first, all from this one run. */
  for (int i = 1; i < o.n_parallelisms; i++)
    printf("{\"bench\":\"window_scaling\",\"kind\":\"%s\",\"keys\":%" PRIu64
           ",\"from_parallelism\":%d,\"to_parallelism\":%d,\"from_events_per_s\":%.0f,"
           "\"to_events_per_s\":%.0f,\"speedup\":%.3f}\n",
           kind_names[o.kind], o.keys, o.parallelisms[0], o.parallelisms[i], rates[0], rates[i],
           rates[0] > 0 ? rates[i] / rates[0] : 0.0);
  return rc;
}
