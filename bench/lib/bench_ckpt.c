/*
 * flink-bench checkpoint: checkpoint duration and size for a large keyed state, full
 * versus incremental (RocksDB), measured through the public API and the job metrics.
 *
 * The job loads --state-mb of keyed value state (--value-bytes per key) through a
 * KeyedProcessFunction, then keeps updating --update-pct percent of the keys between
 * checkpoints. Checkpoints run every --interval; the benchmark reports the first one
 * after the load (everything is new) and the next --rounds ones (only the updates are
 * new), one JSON line each: duration, bytes referenced, bytes newly written, the
 * synchronous part at the barrier (sync_ms, the longest over the subtasks, from the
 * checkpoint_sync_ns metric: what the records behind the barrier waited for), and with
 * RocksDB's state cache the time its last flush of dirty cells took (cache_flush_ms,
 * likewise, from the cache-flush-us metric: the flush at the barrier, unless a walk of
 * the state flushed since; -1 without a cache).
 */
#define _GNU_SOURCE
#include "lib/bench_ckpt.h"
#include "lib/bench_ckjob.h"
#include "lib/bench_clock.h"
#include "lib/bench_env.h"

#include <stdio.h>

#include <inttypes.h>
#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "flink.h"

typedef struct bc {
  uint64_t keys;
  size_t value_bytes;
  double update_pct;
  _Atomic int loaded;
  _Atomic uint64_t round; /* bumped by the main thread after each measured checkpoint */
  fl_state_desc_t *val;
} bc_t;

typedef struct {
  bc_t *b;
  uint64_t next, done_round, in_round;
  uint64_t rng;
  char *value;
} bc_src_t;

/* The largest value of a subtask metric over every operator subtask (name in the
 * subtask's object group, or in the subtask itself when group is NULL), converted to ms
 * by dividing by per_ms (the metric's units per ms); -1 when no subtask has it. */
static double max_subtask_ms(fl_env_t *env, const char *group, const char *name, double per_ms) {
  char *text = fl_env_metrics_json(env);
  json_t *root = text ? json_loads(text, 0, NULL) : NULL;
  json_t *op, *sub;
  size_t i, k;
  int64_t max = -1;
  json_array_foreach(json_object_get(root, "operators"), i, op) {
    json_array_foreach(json_object_get(op, "subtasks"), k, sub) {
      json_t *v = json_object_get(group ? json_object_get(sub, group) : sub, name);
      if (json_is_integer(v) && json_integer_value(v) > max) max = json_integer_value(v);
    }
  }
  json_decref(root);
  fl_free(text);
  return max < 0 ? -1 : (double)max / per_ms;
}

static int src_open(fl_context_t *ctx, void *opaque, void **inst) {
  bc_src_t *s = calloc(1, sizeof *s);
  if (!s) return FL_ENOMEM;
  s->b = opaque;
  s->rng = 0x9E3779B97F4A7C15ull;
  s->value = malloc(s->b->value_bytes);
  if (!s->value) {
    free(s);
    return FL_ENOMEM;
  }
  *inst = s;
  return 0;
}

static uint64_t xs(uint64_t *x) {
  *x ^= *x << 13;
  *x ^= *x >> 7;
  *x ^= *x << 17;
  return *x;
}

static int src_run(fl_context_t *ctx, void *inst) {
  bc_src_t *s = inst;
  bc_t *b = s->b;
  size_t budget = fl_ctx_source_budget(ctx);
  for (size_t i = 0; i < budget; i++) {
    uint64_t k;
    if (s->next < b->keys) {
      k = s->next++;
      if (s->next == b->keys) atomic_store(&b->loaded, 1);
    } else {
      /* one batch of updates per measured round */
      uint64_t per_round = (uint64_t)((double)b->keys * b->update_pct / 100.0);
      uint64_t r = atomic_load(&b->round);
      if (r != s->done_round) {
        s->done_round = r;
        s->in_round = 0;
      }
      if (s->in_round >= per_round) return FL_SOURCE_WAIT;
      s->in_round++;
      k = xs(&s->rng) % b->keys;
    }
    /* incompressible values, so sizes are what they claim */
    for (size_t j = 0; j + 8 <= b->value_bytes; j += 8) {
      uint64_t v = xs(&s->rng);
      memcpy(s->value + j, &v, 8);
    }
    char key[24];
    int kl = snprintf(key, sizeof key, "%" PRIu64, k);
    int rc = fl_emit(ctx, key, (size_t)kl, s->value, b->value_bytes, 0);
    if (rc) return rc;
  }
  return FL_SOURCE_MORE;
}

static void src_close(void *inst) {
  bc_src_t *s = inst;
  free(s->value);
  free(s);
}

static int put_process(fl_context_t *ctx, const fl_record_t *in, void *inst) {
  bc_t *b = inst;
  return fl_value_set(ctx, b->val, in->value, in->value_len);
}

static int null_write(fl_context_t *ctx, const fl_record_t *in, void *inst) { return 0; }

static void usage(void) {
  fprintf(stderr,
          "usage: flink-bench checkpoint [--state-mb N] [--value-bytes N] [--update-pct P]\n"
          "         [--incremental true|false] [--backend rocksdb|hashmap] [--interval DUR]\n"
          "         [--rounds N] [--parallelism N] [--dir PATH]\n");
}

int fl_bench_checkpoint_main(int argc, char **argv) {
  uint64_t state_mb = 1024, value_bytes = 256;
  double update_pct = 1.0;
  const char *incremental = "true", *backend = "rocksdb", *interval = "3s", *dir = NULL;
  int rounds = 3, par = 1;
  /* argv[0] is the program, or the subcommand when called as fl_bench_*_main(argc-1, ..) */
  int first = argc > 1 && strcmp(argv[1], "checkpoint") == 0 ? 2 : 1;
  const bench_opt_t opts[] = {{"--state-mb", BENCH_OPT_COUNT, &state_mb},
                              {"--value-bytes", BENCH_OPT_COUNT, &value_bytes},
                              {"--update-pct", BENCH_OPT_DOUBLE, &update_pct},
                              {"--incremental", BENCH_OPT_TEXT, &incremental},
                              {"--backend", BENCH_OPT_TEXT, &backend},
                              {"--interval", BENCH_OPT_TEXT, &interval},
                              {"--rounds", BENCH_OPT_INT, &rounds},
                              {"--parallelism", BENCH_OPT_INT, &par},
                              {"--dir", BENCH_OPT_TEXT, &dir}};
  if (!bench_parse_opts(argc, argv, first, opts, sizeof opts / sizeof *opts, usage)) return 2;
  if (value_bytes < 8 || state_mb == 0 || rounds < 1) {
    usage();
    return 2;
  }
  char ps[16];
  snprintf(ps, sizeof ps, "%d", par);
  const bench_ckjob_conf_t conf = {
      .parallelism = ps, .backend = backend, .incremental = incremental, .interval = interval};
  bench_ckjob_t job;
  int rc = bench_ckjob_init(&job, "checkpoint", dir, &conf);
  if (rc) return rc;
  fl_env_t *env = job.env;
  bc_t b = {.keys = state_mb * 1024 * 1024 / value_bytes,
            .value_bytes = value_bytes,
            .update_pct = update_pct};
  b.val = fl_state_value(env, "value");
  static const fl_source_fn_t sfn = {
      .version = FL_SOURCE_FN_VERSION, .open = src_open, .run = src_run, .close = src_close};
  static const fl_process_fn_t pfn = {.version = FL_PROCESS_FN_VERSION, .process = put_process};
  static const fl_sink_fn_t kfn = {.version = FL_SINK_FN_VERSION, .write = null_write};
  fl_stream_t *s = fl_source(env, "load", &sfn, &b, 0);
  fl_stream_t *o = fl_keyed_process(fl_stream_key_by(s, NULL, NULL), "state", &pfn, &b);
  fl_stream_sink(o, "none", &kfn, NULL);

  double t0 = bench_now_s();
  bench_ckjob_start(&job);
  while (!atomic_load(&b.loaded)) usleep(10000);
  double load_s = bench_now_s() - t0;
  /* the first checkpoint that started after the load holds all of it */
  int64_t seen = bench_ckpt_metric(env, "completed") + 1;
  for (int round = 0; round <= rounds; round++) {
    while (bench_ckpt_metric(env, "completed") <= seen) usleep(20000);
    seen = bench_ckpt_metric(env, "completed");
    /* the backends' statistics are sampled about once a second */
    usleep(1100000);
    /* the state cache's flush at the barrier (the rocksdb "cache-flush-us" statistic),
     * and the whole synchronous part it belongs to (checkpoint_sync_ns) */
    double flush_ms = max_subtask_ms(env, "rocksdb", "cache-flush-us", 1e3);
    double sync_ms = max_subtask_ms(env, NULL, "checkpoint_sync_ns", 1e6);
    printf(
        "{\"bench\":\"checkpoint\",\"backend\":\"%s\",\"incremental\":%s,"
        "\"state_mb\":%" PRIu64 ",\"keys\":%" PRIu64
        ",\"checkpoint\":\"%s\","
        "\"duration_ms\":%" PRId64 ",\"size_bytes\":%" PRId64 ",\"new_bytes\":%" PRId64
        ",\"sync_ms\":%.1f,\"cache_flush_ms\":%.1f,\"load_seconds\":%.1f}\n",
        backend, strcmp(incremental, "true") == 0 ? "true" : "false", state_mb, b.keys,
        round == 0 ? "after-load" : "after-updates", bench_ckpt_metric(env, "last_duration_ms"),
        bench_ckpt_metric(env, "last_size_bytes"), bench_ckpt_metric(env, "last_new_bytes"),
        sync_ms, flush_ms, load_s);
    fflush(stdout);
    atomic_fetch_add(&b.round, 1); /* the next batch of updates */
  }
  return bench_ckjob_end(&job);
}
