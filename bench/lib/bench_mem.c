/*
 * flink-bench sessions: the peak memory (resident set) of a job holding many open
 * session windows while it checkpoints, for the hashmap and the RocksDB backend.
 *
 * The job: a source emits one event per key (--keys of them, event time advancing 1 ms
 * per 1,000 events) -> keyBy -> event-time session windows with a gap of one hour, so
 * that no window closes -> COUNT aggregate -> a sink. Every key then holds one open
 * window: its accumulator in state and its end-of-window timer. After the load the
 * source waits; the benchmark waits for --checkpoints checkpoints that started after
 * the load (full ones, in the canonical format, unless --incremental true), then reads
 * the process's peak resident set (VmHWM in /proc/self/status, the same figure as
 * getrusage's ru_maxrss) and stops the job. One JSON line: backend, keys, peak and
 * current RSS in MB, the load time, the process's CPU seconds until then (a figure that
 * other work on the machine disturbs less than the wall clock), and the last
 * checkpoint's duration and size.
 */
#define _GNU_SOURCE
#include "lib/bench_mem.h"

#include <inttypes.h>
#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "flink.h"
#include "lib/bench_ckjob.h"
#include "lib/bench_clock.h"
#include "lib/bench_env.h"

#define BASE_TS INT64_C(1700000000000)
#define GAP_MS (3600 * 1000)

typedef struct bm {
  uint64_t keys;
  _Atomic int loaded;
} bm_t;

typedef struct {
  bm_t *b;
  uint64_t next;
} bm_src_t;

static int src_open(fl_context_t *ctx, void *opaque, void **inst) {
  (void)ctx;
  bm_src_t *s = calloc(1, sizeof *s);
  if (!s) return FL_ENOMEM;
  s->b = opaque;
  *inst = s;
  return 0;
}

static int src_run(fl_context_t *ctx, void *inst) {
  bm_src_t *s = inst;
  size_t budget = fl_ctx_source_budget(ctx);
  for (size_t i = 0; i < budget && s->next < s->b->keys; i++) {
    uint64_t k = s->next++;
    uint64_t one = 1;
    int rc = fl_emit(ctx, &k, sizeof k, &one, sizeof one, BASE_TS + (int64_t)(k / 1000));
    if (rc) return rc;
  }
  if (s->next < s->b->keys) return FL_SOURCE_MORE;
  atomic_store(&s->b->loaded, 1);
  return FL_SOURCE_WAIT; /* the windows stay open until the job is stopped */
}

static void src_close(void *inst) { free(inst); }

static void count_init(void *acc, void *opaque) {
  (void)opaque;
  memset(acc, 0, sizeof(uint64_t));
}

static int count_add(fl_context_t *ctx, void *acc, const fl_record_t *in, void *opaque) {
  (void)ctx, (void)in, (void)opaque;
  (*(uint64_t *)acc)++;
  return 0;
}

static void count_merge(void *acc, const void *other, void *opaque) {
  (void)opaque;
  *(uint64_t *)acc += *(const uint64_t *)other;
}

static int count_result(fl_context_t *ctx, const fl_window_t *w, const void *acc, void *opaque) {
  (void)opaque;
  size_t kl = 0;
  const void *key = fl_ctx_key(ctx, &kl);
  return fl_emit(ctx, key, kl, acc, sizeof(uint64_t), w->end - 1);
}

static int null_write(fl_context_t *ctx, const fl_record_t *in, void *inst) {
  (void)ctx, (void)in, (void)inst;
  return 0;
}

/* A "Vm...:   N kB" line of /proc/self/status, in kB; -1 when absent. */
static long status_kb(const char *field) {
  FILE *f = fopen("/proc/self/status", "r");
  char line[256];
  long v = -1;
  size_t n = strlen(field);
  while (f && fgets(line, sizeof line, f))
    if (strncmp(line, field, n) == 0 && line[n] == ':') v = strtol(line + n + 1, NULL, 10);
  if (f) fclose(f);
  return v;
}

static void usage(void) {
  fprintf(stderr,
          "usage: flink-bench sessions [--keys N] [--backend hashmap|rocksdb]\n"
          "         [--checkpoints N] [--interval DUR] [--incremental true|false]\n"
          "         [--set KEY=VALUE]... [--dir PATH]\n");
}

int fl_bench_sessions_main(int argc, char **argv) {
  uint64_t keys = 1000000;
  const char *backend = "rocksdb", *interval = "2s", *incremental = "false", *dir = NULL;
  bench_settings_t sets = {.n = 0};
  int checkpoints = 2;
  int first = argc > 1 && strcmp(argv[1], "sessions") == 0 ? 2 : 1;
  const bench_opt_t opts[] = {{"--keys", BENCH_OPT_COUNT, &keys},
                              {"--backend", BENCH_OPT_TEXT, &backend},
                              {"--checkpoints", BENCH_OPT_INT, &checkpoints},
                              {"--interval", BENCH_OPT_TEXT, &interval},
                              {"--incremental", BENCH_OPT_TEXT, &incremental},
                              {"--dir", BENCH_OPT_TEXT, &dir},
                              {"--set", BENCH_OPT_SET, &sets}};
  if (!bench_parse_opts(argc, argv, first, opts, sizeof opts / sizeof *opts, usage)) return 2;
  if (keys == 0 || checkpoints < 0) {
    usage();
    return 2;
  }
  const bench_ckjob_conf_t conf = {.parallelism = "1",
                                   .backend = backend,
                                   .incremental = incremental,
                                   .interval = checkpoints ? interval : "0",
                                   .sets = sets.v,
                                   .n_sets = sets.n};
  bench_ckjob_t job;
  int rc = bench_ckjob_init(&job, "sessions", dir, &conf);
  if (rc) return rc;
  fl_env_t *env = job.env;
  bm_t b = {.keys = keys};
  static const fl_source_fn_t sfn = {
      .version = FL_SOURCE_FN_VERSION, .open = src_open, .run = src_run, .close = src_close};
  static const fl_aggregate_fn_t cfn = {
      .version = FL_AGGREGATE_FN_VERSION,
      .acc_size = sizeof(uint64_t),
      .init = count_init,
      .add = count_add,
      .merge = count_merge,
      .result = count_result,
  };
  static const fl_sink_fn_t kfn = {.version = FL_SINK_FN_VERSION, .write = null_write};
  fl_watermark_strategy_t ws = {.version = FL_WATERMARK_STRATEGY_VERSION,
                                .kind = FL_WATERMARKS_MONOTONOUS};
  fl_stream_t *s = fl_source(env, "keys", &sfn, &b, 0);
  fl_stream_t *t = fl_stream_assign_timestamps(s, "timestamps", &ws);
  fl_windowed_stream_t *w =
      fl_window_session(fl_stream_key_by(t, NULL, NULL), FL_EVENT_TIME, GAP_MS);
  fl_stream_sink(fl_window_aggregate(w, "sessions", &cfn, NULL), "none", &kfn, NULL);

  double t0 = bench_now_s();
  bench_ckjob_start(&job);
  while (!atomic_load(&b.loaded) && !atomic_load(&job.ended)) usleep(10000);
  double load_s = bench_now_s() - t0;
  /* checkpoints that started after the load hold every open window */
  int64_t target = bench_ckpt_metric(env, "completed") + 1 + checkpoints;
  while (checkpoints && bench_ckpt_metric(env, "completed") < target && !atomic_load(&job.ended))
    usleep(20000);
  long hwm = status_kb("VmHWM"), rss = status_kb("VmRSS");
  double cpu = bench_cpu_s();
  printf("{\"bench\":\"sessions\",\"backend\":\"%s\",\"incremental\":%s,\"keys\":%" PRIu64
         ",\"checkpoints\":%d,\"peak_rss_mb\":%.1f,\"rss_mb\":%.1f,\"load_seconds\":%.1f,"
         "\"cpu_seconds\":%.1f,"
         "\"last_checkpoint_ms\":%" PRId64 ",\"last_checkpoint_bytes\":%" PRId64 "}\n",
         backend, strcmp(incremental, "true") == 0 ? "true" : "false", keys, checkpoints,
         (double)hwm / 1024.0, (double)rss / 1024.0, load_s, cpu,
         bench_ckpt_metric(env, "last_duration_ms"), bench_ckpt_metric(env, "last_size_bytes"));
  fflush(stdout);
  return bench_ckjob_end(&job);
}
