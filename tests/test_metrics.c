/* Metrics through the public API: what each one means, measured on running jobs.
 * Busy, idle and back-pressured time; rates against records counted over a measured
 * interval; watermarks and their lag; late records and fired timers; failed checkpoint
 * triggers; latency markers; user histograms; the Prometheus text and its escaping. */
#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
// clang-format off
#include <cmocka.h>
// clang-format on

#include "fl_test_util.h"
#include "run_util.h"
#include "flink.h"

/* The operator called name in fl_env_metrics_json (a new reference), or NULL. */
static json_t *op_json(fl_env_t *env, const char *name) {
  char *js = fl_env_metrics_json(env);
  assert_non_null(js);
  json_t *root = json_loads(js, 0, NULL);
  fl_free(js);
  assert_non_null(root);
  json_t *found = NULL, *o;
  size_t i;
  json_array_foreach(json_object_get(root, "operators"), i, o) {
    if (!strcmp(json_string_value(json_object_get(o, "name")), name)) found = json_incref(o);
  }
  json_decref(root);
  return found;
}

static double op_num(fl_env_t *env, const char *name, const char *field) {
  json_t *o = op_json(env, name);
  if (!o) fail_msg("no operator %s", name);
  json_t *v = json_object_get(o, field);
  double d = json_is_number(v) ? json_number_value(v) : NAN;
  json_decref(o);
  return d;
}

static double prom(fl_env_t *env, const char *metric, const char *has) {
  char *t = fl_env_metrics_prometheus(env);
  assert_non_null(t);
  double v = prom_sample(t, metric, has);
  fl_free(t);
  return v;
}

/* ---------------------------------------------------------------------------------- */
/* Sources                                                                              */

/* Emits as fast as it may. */
static int fast_run(fl_context_t *ctx, void *inst) {
  size_t budget = fl_ctx_source_budget(ctx);
  char key[8];
  static _Atomic unsigned k;
  while (budget--) {
    int kl = snprintf(key, sizeof key, "%u", atomic_fetch_add(&k, 1) % 97);
    fl_emit(ctx, key, (size_t)kl, "0123456789abcdef0123456789abcdef", 32, 1);
  }
  return FL_SOURCE_MORE;
}

/* Emits `rate` records per second of the monotonic clock. */
typedef struct paced {
  double rate, start_ms;
  long emitted;
} paced_t;

static int paced_run(fl_context_t *ctx, void *inst) {
  paced_t *p = inst;
  size_t due = paced_budget(fl_ctx_source_budget(ctx), p->rate / 1000, &p->start_ms, p->emitted);
  if (due == 0) return FL_SOURCE_WAIT;
  for (size_t i = 0; i < due; i++, p->emitted++) {
    char key[16];
    int kl = snprintf(key, sizeof key, "%ld", p->emitted % 13);
    fl_emit(ctx, key, (size_t)kl, "v", 1, 1000);
  }
  return FL_SOURCE_MORE;
}

static int spin_sink(fl_context_t *ctx, const fl_record_t *in, void *inst) {
  double until = mono_s() + 50e-6;
  while (mono_s() < until) {}
  return 0;
}

static int drop_sink(fl_context_t *ctx, const fl_record_t *in, void *inst) { return 0; }

/* Ends s in a sink named "sink" that drops every record. */
static void sink_drop(fl_stream_t *s) {
  static const fl_sink_fn_t drop = {.version = FL_SINK_FN_VERSION, .write = drop_sink};
  assert_int_equal(fl_stream_sink(s, "sink", &drop, NULL), 0);
}

/* A source named name that emits pc->rate records a second until the job stops. */
static fl_stream_t *paced_source(fl_env_t *env, const char *name, paced_t *pc) {
  static const fl_source_fn_t src = {.version = FL_SOURCE_FN_VERSION, .run = paced_run};
  return fl_source(env, name, &src, pc, 0);
}

/* The job "src" (the n records) -> name (fn) -> "sink" (dropped), built, not run. */
static void map_job(fl_env_t *env, fl_record_t *recs, size_t n, const char *name, fl_map_fn fn,
                    void *opaque) {
  sink_drop(fl_stream_map(fl_source_collection(env, "src", recs, n), name, fn, opaque));
}

static int pass_proc(fl_context_t *ctx, const fl_record_t *in, void *inst) {
  return fl_emit_record(ctx, in);
}

/* ---------------------------------------------------------------------------------- */
/* Busy, idle and back-pressured time                                                   */

static void slow_sink_shows_backpressure_upstream_and_busy_sink(void **state) {
  const char *kv[] = {"execution.batch-size", "64", "execution.channel-capacity", "4", NULL};
  fl_env_t *env = env_of(kv);
  fl_source_fn_t src = {.version = FL_SOURCE_FN_VERSION, .run = fast_run};
  fl_stream_t *s = fl_source(env, "fast", &src, NULL, 0);
  fl_process_fn_t pass = {FL_PROCESS_FN_VERSION, NULL, pass_proc, NULL, NULL, NULL};
  fl_stream_t *p = fl_keyed_process(fl_stream_key_by(s, NULL, NULL), "pass", &pass, NULL);
  fl_sink_fn_t slow = {.version = FL_SINK_FN_VERSION, .write = spin_sink};
  fl_stream_sink(p, "slow", &slow, NULL);
  bg_job_t r;
  bg_job_start(&r, env, "metrics");
  double deadline = mono_s() + 20 * timeout_scale();
  double src_bp = 0, sink_busy = 0;
  bool flagged = false;
  while (mono_s() < deadline) {
    pause_ms(200);
    src_bp = op_num(env, "fast", "back_pressured_time_ms_per_second");
    sink_busy = op_num(env, "slow", "busy_time_ms_per_second");
    flagged |= prom(env, "flink_taskmanager_job_task_isBackPressured", "task_name=\"fast\"") == 1;
    if (src_bp > 900 && sink_busy > 900 && flagged) break;
  }
  /* The task of the sink is the chain pass -> slow; Prometheus shows it by task name. */
  double bp_prom =
      prom(env, "flink_taskmanager_job_task_backPressuredTimeMsPerSecond", "task_name=\"fast\"");
  double busy_prom =
      prom(env, "flink_taskmanager_job_task_busyTimeMsPerSecond", "task_name=\"pass -> slow\"");
  /* busy + idle + back-pressured is the whole second, for every task */
  json_t *o = op_json(env, "fast");
  json_t *sub = json_array_get(json_object_get(o, "subtasks"), 0);
  double sum = json_number_value(json_object_get(sub, "busy_time_ms_per_second")) +
               json_number_value(json_object_get(sub, "idle_time_ms_per_second")) +
               json_number_value(json_object_get(sub, "back_pressured_time_ms_per_second"));
  json_decref(o);
  fl_env_stop(env);
  assert_int_equal(bg_job_join(&r), FL_ECANCELED);
  if (src_bp <= 900 || sink_busy <= 900)
    fail_msg("source back-pressured %.0f ms/s, sink busy %.0f ms/s", src_bp, sink_busy);
  assert_true(flagged);
  assert_true(bp_prom > 800);
  assert_true(busy_prom > 800);
  assert_true(fabs(sum - 1000) < 1);
  fl_env_destroy(env);
}

static void idle_job_is_idle_and_not_backpressured(void **state) {
  fl_env_t *env = env_of(NULL);
  paced_t pc = {.rate = 200};
  sink_drop(fl_stream_rebalance(paced_source(env, "trickle", &pc)));
  bg_job_t r;
  bg_job_start(&r, env, "metrics");
  double deadline = mono_s() + 20 * timeout_scale(), idle = 0, bp = 1000;
  while (mono_s() < deadline) {
    pause_ms(200);
    idle = op_num(env, "trickle", "idle_time_ms_per_second");
    bp = op_num(env, "trickle", "back_pressured_time_ms_per_second");
    if (idle > 900 && bp < 10) break;
  }
  fl_env_stop(env);
  bg_job_join(&r);
  if (!(idle > 900 && bp < 10)) fail_msg("idle %.0f, back-pressured %.0f ms/s", idle, bp);
  fl_env_destroy(env);
}

/* ---------------------------------------------------------------------------------- */
/* Rates                                                                                */

static int twice(fl_context_t *ctx, const fl_record_t *in, void *opaque) {
  fl_emit_record(ctx, in);
  return fl_emit_record(ctx, in);
}

static void rates_match_records_counted_over_an_interval(void **state) {
  fl_env_t *env = env_of(NULL);
  paced_t pc = {.rate = 4000};
  fl_stream_t *s = paced_source(env, "paced", &pc);
  fl_stream_t *d = fl_stream_flat_map(fl_stream_rebalance(s), "double", twice, NULL);
  sink_drop(d);
  bg_job_t r;
  bg_job_start(&r, env, "metrics");
  /* The views exist after the first second; the source's rate is steady after that. */
  double deadline = mono_s() + 20 * timeout_scale();
  while (mono_s() < deadline && !(op_num(env, "paced", "records_out_per_second") > 0)) pause_ms(50);
  pause_ms(1500);
  double t0 = mono_s(), c0 = op_num(env, "paced", "records_out");
  pause_ms(3000);
  double t1 = mono_s(), c1 = op_num(env, "paced", "records_out");
  double measured = (c1 - c0) / (t1 - t0);
  double out_rate = op_num(env, "paced", "records_out_per_second");
  double in_rate = op_num(env, "double", "records_in_per_second");
  double double_out = op_num(env, "double", "records_out_per_second");
  double sink_in = op_num(env, "sink", "records_in_per_second");
  double prom_rate = prom(env, "flink_taskmanager_job_task_operator_numRecordsOutPerSecond",
                          "operator_name=\"paced\"");
  fl_env_stop(env);
  bg_job_join(&r);
  print_message("measured %.0f/s; source out %.0f, double in %.0f out %.0f, sink in %.0f\n",
                measured, out_rate, in_rate, double_out, sink_in);
  assert_true(measured > 3000 && measured < 5000);
  assert_true(fabs(out_rate - measured) < 0.1 * measured);
  assert_true(fabs(in_rate - measured) < 0.1 * measured);
  assert_true(fabs(double_out - 2 * measured) < 0.2 * measured);
  assert_true(fabs(sink_in - 2 * measured) < 0.2 * measured);
  assert_true(fabs(prom_rate - out_rate) < 0.1 * measured);
  fl_env_destroy(env);
}

/* ---------------------------------------------------------------------------------- */
/* Watermarks, their lag, late records, timers                                          */

static int64_t fixed_clock(void *opaque) { return *(int64_t *)opaque; }

static int wm_run(fl_context_t *ctx, void *inst) {
  fl_emit(ctx, "k", 1, "v", 1, 1000);
  fl_ctx_emit_watermark(ctx, 1000);
  return FL_SOURCE_WAIT;
}

static int first_of(fl_context_t *ctx, const void *a, size_t al, const void *b, size_t bl,
                    fl_buf_t *out, void *opaque) {
  return fl_buf_set(out, a, al);
}

static void watermarks_and_watermark_lag(void **state) {
  fl_env_t *env = env_of(NULL);
  int64_t now = 5000;
  fl_env_set_clock(env, fixed_clock, &now);
  fl_source_fn_t src = {.version = FL_SOURCE_FN_VERSION, .run = wm_run};
  fl_stream_t *s = fl_source(env, "wm-source", &src, NULL, 0);
  fl_windowed_stream_t *w =
      fl_window_tumbling(fl_stream_key_by(s, NULL, NULL), FL_EVENT_TIME, 100, 0);
  fl_stream_t *win = fl_window_reduce(w, "win", first_of, NULL);
  sink_drop(win);
  bg_job_t r;
  bg_job_start(&r, env, "metrics");
  double deadline = mono_s() + 20 * timeout_scale();
  while (mono_s() < deadline && op_num(env, "win", "current_input_watermark") != 1000) pause_ms(20);
  double src_out = op_num(env, "wm-source", "current_output_watermark");
  double win_in = op_num(env, "win", "current_input_watermark");
  double lag_src =
      prom(env, "flink_taskmanager_job_task_operator_watermarkLag", "operator_name=\"wm-source\"");
  double lag_win =
      prom(env, "flink_taskmanager_job_task_operator_watermarkLag", "operator_name=\"win\"");
  double owm_prom = prom(env, "flink_taskmanager_job_task_operator_currentOutputWatermark",
                         "operator_name=\"wm-source\"");
  fl_env_stop(env);
  bg_job_join(&r);
  assert_true(src_out == 1000);
  assert_true(win_in == 1000);
  assert_true(owm_prom == 1000);
  assert_true(lag_src == 4000); /* processing time 5000 minus watermark 1000 */
  assert_true(lag_win == 4000);
  fl_env_destroy(env);
}

static int ts_of(fl_context_t *ctx, const fl_record_t *rec, int64_t *ts, void *opaque) {
  *ts = rec->timestamp;
  return 0;
}

static void late_records_and_fired_timers_are_counted(void **state) {
  const char *kv[] = {"pipeline.auto-watermark-interval", "0", NULL};
  fl_env_t *env = env_of(kv);
  /* windows [0,10), [10,20), [20,30) fire: three timers; ts 3 arrives after the
   * watermark passed 24 and is dropped */
  fl_record_t recs[] = {rec_str("k", "a", 0), rec_str("k", "b", 5), rec_str("k", "c", 12),
                        rec_str("k", "d", 25), rec_str("k", "late", 3)};
  fl_stream_t *s = fl_source_collection(env, "events", recs, 5);
  fl_watermark_strategy_t ws = {.version = FL_WATERMARK_STRATEGY_VERSION,
                                .kind = FL_WATERMARKS_MONOTONOUS,
                                .timestamp = ts_of};
  fl_stream_t *t = fl_stream_assign_timestamps(s, "ts", &ws);
  fl_windowed_stream_t *w =
      fl_window_tumbling(fl_stream_key_by(t, NULL, NULL), FL_EVENT_TIME, 10, 0);
  fl_stream_t *win = fl_window_reduce(w, "win", first_of, NULL);
  sink_drop(win);
  assert_int_equal(fl_env_execute(env, "late"), 0);
  assert_int_equal((int)op_num(env, "win", "late_records_dropped"), 1);
  assert_int_equal((int)op_num(env, "win", "records_out"), 3);
  assert_int_equal((int)op_num(env, "win", "fired_timers"), 3);
  assert_int_equal((int)prom(env, "flink_taskmanager_job_task_operator_numLateRecordsDropped",
                             "operator_name=\"win\""),
                   1);
  assert_int_equal(
      (int)prom(env, "flink_taskmanager_job_task_operator_numFiredTimers", "operator_name=\"win\""),
      3);
  fl_env_destroy(env);
}

/* ---------------------------------------------------------------------------------- */
/* Checkpoints                                                                          */

/* The job-level Prometheus metric name once it reached min, or its last value after
 * 20 s (scaled). */
static double wait_prom(fl_env_t *env, const char *name, double min) {
  double deadline = mono_s() + 20 * timeout_scale(), v = 0;
  while (mono_s() < deadline && !((v = prom(env, name, NULL)) >= min)) pause_ms(20);
  return v;
}

static void failed_checkpoint_triggers_are_counted(void **state) {
  /* a checkpoint directory that cannot be created: every trigger fails to start */
  const char *kv[] = {"state.checkpoints.dir",
                      "/dev/null/not-a-dir",
                      "execution.checkpointing.interval",
                      "20ms",
                      "execution.checkpointing.tolerable-failed-checkpoints",
                      "1000000",
                      NULL};
  fl_env_t *env = env_of(kv);
  paced_t pc = {.rate = 1000};
  sink_drop(paced_source(env, "src", &pc));
  bg_job_t r;
  bg_job_start(&r, env, "metrics");
  double failed = wait_prom(env, "flink_jobmanager_job_numberOfFailedCheckpoints", 3);
  double completed = prom(env, "flink_jobmanager_job_numberOfCompletedCheckpoints", NULL);
  fl_env_stop(env);
  bg_job_join(&r);
  assert_true(failed >= 3);
  assert_true(completed == 0);
  fl_env_destroy(env);
}

static int never_end(fl_context_t *ctx, void *inst) {
  fl_emit(ctx, "k", 1, "v", 1, 1);
  return FL_SOURCE_WAIT;
}

static void completed_checkpoints_give_id_duration_and_sizes(void **state) {
  char dir[] = "/tmp/fl-metrics-ckpt-XXXXXX";
  assert_non_null(mkdtemp(dir));
  const char *kv[] = {"state.checkpoints.dir", dir, "execution.checkpointing.interval", "30ms",
                      NULL};
  fl_env_t *env = env_of(kv);
  fl_source_fn_t src = {.version = FL_SOURCE_FN_VERSION, .run = never_end};
  fl_process_fn_t pass = {FL_PROCESS_FN_VERSION, NULL, pass_proc, NULL, NULL, NULL};
  fl_stream_t *p = fl_keyed_process(
      fl_stream_key_by(fl_source(env, "src", &src, NULL, 0), NULL, NULL), "pass", &pass, NULL);
  sink_drop(p);
  bg_job_t r;
  bg_job_start(&r, env, "metrics");
  double done = wait_prom(env, "flink_jobmanager_job_numberOfCompletedCheckpoints", 3);
  char *t = fl_env_metrics_prometheus(env);
  json_t *pj = op_json(env, "pass");
  assert_non_null(pj);
  json_int_t sync_json = json_integer_value(
      json_object_get(json_array_get(json_object_get(pj, "subtasks"), 0), "checkpoint_sync_ns"));
  json_decref(pj);
  fl_env_stop(env);
  bg_job_join(&r);
  assert_true(done >= 3);
  assert_true(prom_sample(t, "flink_jobmanager_job_lastCompletedCheckpointId", NULL) >= 3);
  assert_true(prom_sample(t, "flink_jobmanager_job_lastCheckpointDuration", NULL) >= 0);
  assert_true(prom_sample(t, "flink_jobmanager_job_lastCheckpointFullSize", NULL) > 0);
  assert_true(prom_sample(t, "flink_jobmanager_job_lastCheckpointSize", NULL) > 0);
  assert_true(prom_sample(t, "flink_jobmanager_job_numberOfFailedCheckpoints", NULL) == 0);
  double inprog = prom_sample(t, "flink_jobmanager_job_numberOfInProgressCheckpoints", NULL);
  assert_true(inprog == 0 || inprog == 1);
  /* the keyed operator's snapshot at the barrier took some time, and says so */
  assert_true(prom_sample(t, "flink_taskmanager_job_task_operator_checkpointSyncTime",
                          "operator_name=\"pass\"") > 0);
  assert_true(sync_json > 0);
  fl_free(t);
  fl_env_destroy(env);
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  assert_int_equal(system(cmd), 0);
}

/* ---------------------------------------------------------------------------------- */
/* Latency markers and histograms                                                       */

static void latency_markers_reach_the_sink(void **state) {
  const char *kv[] = {"metrics.latency.interval", "5ms", NULL};
  fl_env_t *env = env_of(kv);
  paced_t pc = {.rate = 2000};
  fl_stream_t *s = paced_source(env, "src", &pc);
  sink_drop(fl_stream_rebalance(s));
  bg_job_t r;
  bg_job_start(&r, env, "metrics");
  double deadline = mono_s() + 20 * timeout_scale();
  json_t *h = NULL;
  while (mono_s() < deadline) {
    pause_ms(50);
    json_t *o = op_json(env, "sink");
    json_t *lat = json_object_get(json_array_get(json_object_get(o, "subtasks"), 0), "latency_ms");
    json_t *src_h = json_object_get(lat, "src");
    if (src_h && json_integer_value(json_object_get(src_h, "count")) >= 20) h = json_incref(src_h);
    json_decref(o);
    if (h) break;
  }
  double q99 = prom(
      env, "flink_taskmanager_job_latency_source_id_operator_id_operator_subtask_index_latency",
      "quantile=\"0.99\"");
  fl_env_stop(env);
  bg_job_join(&r);
  assert_non_null(h);
  double p50 = json_number_value(json_object_get(h, "p50"));
  double p99 = json_number_value(json_object_get(h, "p99"));
  double max = json_number_value(json_object_get(h, "max"));
  json_decref(h);
  assert_true(p50 >= 0 && p50 <= p99 && p99 <= max && max < 10000);
  assert_true(q99 >= 0 && !isnan(q99));
  fl_env_destroy(env);
}

/* A decimal number of len bytes (not NUL-terminated). */
static long num(const void *p, size_t len) {
  char buf[32];
  size_t n = len < sizeof buf - 1 ? len : sizeof buf - 1;
  memcpy(buf, p, n);
  buf[n] = 0;
  return atol(buf);
}

static int hist_map(fl_context_t *ctx, const fl_record_t *in, void *opaque) {
  fl_ctx_histogram_update(ctx, "value", num(in->value, in->value_len));
  return fl_emit_record(ctx, in);
}

static void user_histograms_keep_the_last_values(void **state) {
  fl_env_t *env = env_of(NULL);
  enum {
    N = 300
  };
  static char vals[N][8];
  fl_record_t recs[N];
  for (int i = 0; i < N; i++) {
    snprintf(vals[i], sizeof vals[i], "%d", i + 1);
    recs[i] = rec_str("k", vals[i], i);
  }
  map_job(env, recs, N, "hist", hist_map, NULL);
  assert_int_equal(fl_env_execute(env, "hist"), 0);
  json_t *o = op_json(env, "hist");
  json_t *h = json_object_get(
      json_object_get(json_array_get(json_object_get(o, "subtasks"), 0), "metrics"), "value");
  assert_int_equal(json_integer_value(json_object_get(h, "count")), N);
  /* the window holds the last 128 values: 173..300 */
  assert_true(json_number_value(json_object_get(h, "min")) == 173);
  assert_true(json_number_value(json_object_get(h, "max")) == 300);
  double p50 = json_number_value(json_object_get(h, "p50"));
  assert_true(p50 >= 236 && p50 <= 237);
  json_decref(o);
  char *t = fl_env_metrics_prometheus(env);
  assert_true(prom_sample(t, "flink_taskmanager_job_task_operator_value_count", NULL) == N);
  assert_true(prom_sample(t, "flink_taskmanager_job_task_operator_value", "quantile=\"0.5\"") ==
              p50);
  assert_non_null(strstr(t, "# TYPE flink_taskmanager_job_task_operator_value summary\n"));
  fl_free(t);
  assert_int_equal(fl_ctx_histogram_update(NULL, "x", 1), FL_EINVAL);
  fl_env_destroy(env);
}

/* ---------------------------------------------------------------------------------- */
/* RocksDB                                                                              */

static int remember(fl_context_t *ctx, const fl_record_t *in, void *opaque) {
  const fl_state_desc_t *d = opaque;
  const void *v;
  size_t len;
  fl_value_get(ctx, d, &v, &len); /* a read: block cache hits and misses */
  return fl_value_set(ctx, d, in->value, in->value_len);
}

static int key_run(fl_context_t *ctx, void *inst) {
  long *n = inst;
  size_t budget = fl_ctx_source_budget(ctx);
  while (budget-- && *n < 20000) {
    char key[16];
    int kl = snprintf(key, sizeof key, "k%ld", (*n)++);
    fl_emit(ctx, key, (size_t)kl, "value-value-value", 17, 1);
  }
  return *n < 20000 ? FL_SOURCE_MORE : FL_SOURCE_WAIT;
}

/* The Prometheus sample of RocksDB metric name (its suffix) of operator "remember". */
static double remember_rocksdb(const char *text, const char *name) {
  char full[160];
  snprintf(full, sizeof full, "flink_taskmanager_job_task_operator_rocksdb_%s", name);
  return prom_sample(text, full, "operator_name=\"remember\"");
}

static void rocksdb_statistics_under_flinks_names(void **state) {
  char dir[] = "/tmp/fl-metrics-rdb-XXXXXX";
  assert_non_null(mkdtemp(dir));
  /* without the state cache, which would hold these 20,000 keys until a checkpoint */
  const char *kv[] = {"state.backend",
                      "rocksdb",
                      "state.backend.rocksdb.localdir",
                      dir,
                      "state.backend.rocksdb.metrics.estimate-num-keys",
                      "true",
                      "state.backend.rocksdb.metrics.block-cache-usage",
                      "true",
                      "state.backend.rocksdb.metrics.cur-size-all-mem-tables",
                      "true",
                      "state.backend.rocksdb.metrics.is-write-stopped",
                      "true",
                      "state.backend.rocksdb.metrics.actual-delayed-write-rate",
                      "true",
                      "state.backend.rocksdb.cache.size",
                      "0",
                      NULL};
  fl_env_t *env = env_of(kv);
  fl_state_desc_t *d = fl_state_value(env, "last");
  long n = 0;
  fl_source_fn_t src = {.version = FL_SOURCE_FN_VERSION, .run = key_run};
  fl_process_fn_t proc = {FL_PROCESS_FN_VERSION, NULL, remember, NULL, NULL, NULL};
  fl_stream_t *p = fl_keyed_process(
      fl_stream_key_by(fl_source(env, "src", &src, &n, 0), NULL, NULL), "remember", &proc, d);
  sink_drop(p);
  bg_job_t r;
  bg_job_start(&r, env, "metrics");
  double deadline = mono_s() + 30 * timeout_scale(), keys = NAN;
  while (mono_s() < deadline) {
    pause_ms(100);
    keys = prom(env, "flink_taskmanager_job_task_operator_rocksdb_estimate_num_keys",
                "operator_name=\"remember\"");
    if (keys >= 15000) break;
  }
  char *t = fl_env_metrics_prometheus(env);
  fl_env_stop(env);
  bg_job_join(&r);
  assert_true(keys >= 15000 && keys <= 25000); /* an estimate of the 20000 keys */
  double mem = remember_rocksdb(t, "cur_size_all_mem_tables");
  double usage = remember_rocksdb(t, "block_cache_usage");
  double miss = remember_rocksdb(t, "block_cache_miss");
  double hit = remember_rocksdb(t, "block_cache_hit");
  double index_miss = remember_rocksdb(t, "block_cache_index_miss");
  double filter_miss = remember_rocksdb(t, "block_cache_filter_miss");
  double stopped = remember_rocksdb(t, "is_write_stopped");
  double delayed = remember_rocksdb(t, "actual_delayed_write_rate");
  /* opt-in: not asked for, not shown */
  assert_null(strstr(t, "rocksdb_total_sst_files_size"));
  /* the hashmap operators have none */
  assert_true(isnan(prom_sample(t, "flink_taskmanager_job_task_operator_rocksdb_block_cache_hit",
                                "operator_name=\"sink\"")));
  fl_free(t);
  assert_true(mem > 0);
  assert_true(usage >= 0);
  /* 20,000 small keys stop no writes, nor slow them */
  assert_true(stopped == 0);
  assert_true(delayed == 0);
  assert_true(hit >= 0 && miss >= 0);
  /* on by default, a part of the misses */
  assert_true(index_miss >= 0 && filter_miss >= 0 && index_miss + filter_miss <= miss);
  fl_env_destroy(env);
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  assert_int_equal(system(cmd), 0);
}

/* ---------------------------------------------------------------------------------- */
/* The Prometheus text                                                                  */

/* Every family is announced by HELP and TYPE once, and its samples follow it. */
static void check_exposition(const char *t) {
  char fam[512] = "", seen[64][256];
  int n_seen = 0;
  for (const char *line = t; *line;) {
    const char *end = strchr(line, '\n');
    assert_non_null(end); /* every line ends with a newline */
    char buf[8192];
    size_t len = (size_t)(end - line);
    assert_true(len < sizeof buf);
    memcpy(buf, line, len);
    buf[len] = 0;
    if (!strncmp(buf, "# HELP ", 7)) {
      sscanf(buf + 7, "%511s", fam);
      for (int i = 0; i < n_seen; i++)
        if (!strcmp(seen[i], fam)) fail_msg("family %s twice", fam);
      if (n_seen < 64) snprintf(seen[n_seen++], sizeof seen[0], "%s", fam);
    } else if (!strncmp(buf, "# TYPE ", 7)) {
      char name[512], type[32];
      assert_int_equal(sscanf(buf + 7, "%511s %31s", name, type), 2);
      assert_string_equal(name, fam);
      assert_true(!strcmp(type, "gauge") || !strcmp(type, "summary"));
    } else {
      size_t fl = strlen(fam);
      if (strncmp(buf, fam, fl) != 0 ||
          !(buf[fl] == '{' || !strncmp(buf + fl, "_count{", 7) || !strncmp(buf + fl, "_sum{", 5)))
        fail_msg("sample outside its family %s: %s", fam, buf);
    }
    line = end + 1;
  }
}

static void prometheus_text_is_well_formed_and_escapes_labels(void **state) {
  fl_env_t *env = env_of(NULL);
  fl_record_t recs[] = {rec_str("k", "1", 1), rec_str("k", "2", 2)};
  map_job(env, recs, 2, "we\"ird\\name\nx", hist_map, NULL);
  assert_int_equal(fl_env_execute(env, "job \"quoted\""), 0);
  char *t = fl_env_metrics_prometheus(env);
  check_exposition(t);
  assert_non_null(strstr(t, "operator_name=\"we\\\"ird\\\\name\\nx\""));
  assert_non_null(strstr(t, "job_name=\"job \\\"quoted\\\"\""));
  assert_true(prom_sample(t, "flink_taskmanager_job_task_operator_numRecordsIn",
                          "operator_name=\"sink\"") == 2);
  assert_true(prom_sample(t, "flink_taskmanager_job_task_operator_numRecordsOut",
                          "operator_name=\"src\"") == 2);
  fl_free(t);
  fl_env_destroy(env);
  /* names that are not UTF-8: U+FFFD in the Prometheus text and the JSON */
  env = env_of(NULL);
  map_job(env, recs, 2, "bad\xff\xc3(", hist_map, NULL);
  assert_int_equal(fl_env_execute(env, "j\xe2\x82"), 0);
  t = fl_env_metrics_prometheus(env);
  check_exposition(t);
  assert_non_null(strstr(t, "operator_name=\"bad\xef\xbf\xbd\xef\xbf\xbd(\""));
  assert_non_null(strstr(t, "job_name=\"j\xef\xbf\xbd\xef\xbf\xbd\""));
  fl_free(t);
  json_t *o = op_json(env, "bad\xef\xbf\xbd\xef\xbf\xbd(");
  assert_non_null(o);
  assert_int_equal(json_integer_value(json_object_get(o, "records_in")), 2);
  json_t *sub0 = json_array_get(json_object_get(o, "subtasks"), 0);
  assert_non_null(json_object_get(json_object_get(sub0, "metrics"), "value"));
  json_decref(o);
  fl_env_destroy(env);
}

/* Publishes metrics under the names the Kafka source uses (flink.h, fl_source_kafka). */
static int kafka_like(fl_context_t *ctx, const fl_record_t *in, void *opaque) {
  fl_ctx_gauge_set(ctx, "records-lag-max", 42);
  fl_ctx_gauge_set(ctx, "records-lag.orders.v2.3", 42);
  fl_ctx_gauge_set(ctx, "records-lag.orders.v2.4", 7);
  fl_ctx_gauge_set(ctx, "current-offset.orders.v2.3", 1000);
  fl_ctx_counter_add(ctx, "commits-succeeded", 2);
  fl_ctx_counter_add(ctx, "my-counter", 5);
  /* names that collide with the library's, or with each other once sanitized */
  fl_ctx_counter_add(ctx, "numRecordsIn", 9);
  fl_ctx_gauge_set(ctx, "my-counter", 6);
  fl_ctx_gauge_set(ctx, "my_counter", 7);
  return fl_emit_record(ctx, in);
}

static void kafka_metric_names_map_to_flinks(void **state) {
  fl_env_t *env = env_of(NULL);
  fl_record_t recs[] = {rec_str("k", "1", 1)};
  map_job(env, recs, 1, "kafka-like", kafka_like, NULL);
  assert_int_equal(fl_env_execute(env, "kafka"), 0);
  char *t = fl_env_metrics_prometheus(env);
  check_exposition(t);
  assert_true(prom_sample(t,
                          "flink_taskmanager_job_task_operator_KafkaSourceReader_KafkaConsumer_"
                          "records_lag_max",
                          "operator_name=\"kafka-like\"") == 42);
  assert_true(prom_sample(t,
                          "flink_taskmanager_job_task_operator_KafkaSourceReader_topic_partition_"
                          "recordsLag",
                          "topic=\"orders.v2\",partition=\"4\"") == 7);
  assert_true(prom_sample(t,
                          "flink_taskmanager_job_task_operator_KafkaSourceReader_topic_partition_"
                          "currentOffset",
                          "partition=\"3\"") == 1000);
  assert_true(prom_sample(t,
                          "flink_taskmanager_job_task_operator_KafkaSourceReader_commitsSucceeded",
                          NULL) == 2);
  assert_true(prom_sample(t, "flink_taskmanager_job_task_operator_my_counter", NULL) == 5);
  assert_true(prom_sample(t, "flink_taskmanager_job_task_operator_user_numRecordsIn", NULL) == 9);
  assert_true(prom_sample(t, "flink_taskmanager_job_task_operator_numRecordsIn",
                          "operator_name=\"kafka-like\"") == 1);
  /* one series per name and labels */
  const char *first = strstr(t, "flink_taskmanager_job_task_operator_my_counter{");
  assert_non_null(first);
  assert_null(strstr(first + 1, "flink_taskmanager_job_task_operator_my_counter{"));
  fl_free(t);
  fl_env_destroy(env);
}

/* A Kafka source publishes three gauges per partition: a subtask holds 4096 user metric
 * names (1,360 partitions), each shown in the JSON and the Prometheus text; a new name
 * past them is refused with FL_ENOMEM, the ones it holds still update. The names are
 * registered over 64 records while another thread reads the metrics: under TSan, a slot
 * or block of slots published before it is whole is a reported race. */
typedef struct many_names {
  int first_err;     /* first name whose call did not return FL_OK, -1: none */
  int over, counter; /* a 4097th gauge, a counter of a name taken by a gauge */
  int again;         /* an existing name updated when full */
  fl_env_t *env;
  atomic_int done; /* the job ended: the reader stops */
} many_names_t;

static int many_gauges(fl_context_t *ctx, const fl_record_t *in, void *opaque) {
  many_names_t *r = opaque;
  char name[64];
  char num[8] = "";
  memcpy(num, in->value, in->value_len < sizeof num - 1 ? in->value_len : sizeof num - 1);
  int rec = atoi(num); /* 0..63: names rec * 64 .. rec * 64 + 63 */
  for (int p = rec * 64; p < rec * 64 + 64; p++) {
    snprintf(name, sizeof name, "current-offset.orders.%d", p);
    if (fl_ctx_gauge_set(ctx, name, 1000 + p) != FL_OK && r->first_err < 0) r->first_err = p;
  }
  if (rec == 63) {
    r->over = fl_ctx_gauge_set(ctx, "current-offset.orders.4096", 1);
    r->counter = fl_ctx_counter_add(ctx, "current-offset.orders.0", 1);
    r->again = fl_ctx_gauge_set(ctx, "current-offset.orders.7", 7);
  }
  return fl_emit_record(ctx, in);
}

static void *read_metrics(void *arg) {
  many_names_t *r = arg;
  while (!atomic_load(&r->done)) {
    fl_free(fl_env_metrics_json(r->env));
    fl_free(fl_env_metrics_prometheus(r->env));
  }
  return NULL;
}

static void kafka_partition_metrics_fit_4096_names_per_subtask(void **state) {
  many_names_t r = {.first_err = -1, .env = env_of(NULL)};
  fl_env_t *env = r.env;
  fl_record_t recs[64];
  char vals[64][4];
  for (int i = 0; i < 64; i++) {
    snprintf(vals[i], sizeof vals[i], "%d", i);
    recs[i] = rec_str("k", vals[i], i);
  }
  map_job(env, recs, 64, "many", many_gauges, &r);
  pthread_t reader;
  assert_int_equal(pthread_create(&reader, NULL, read_metrics, &r), 0);
  assert_int_equal(fl_env_execute(env, "many"), 0);
  atomic_store(&r.done, 1);
  pthread_join(reader, NULL);
  assert_int_equal(r.first_err, -1);
  assert_int_equal(r.over, FL_ENOMEM);
  assert_int_equal(r.counter, FL_ENOMEM);
  assert_int_equal(r.again, FL_OK);
  json_t *o = op_json(env, "many");
  assert_non_null(o);
  json_t *um = json_object_get(json_array_get(json_object_get(o, "subtasks"), 0), "metrics");
  assert_int_equal(json_object_size(um), 4096);
  assert_int_equal(json_integer_value(json_object_get(um, "current-offset.orders.7")), 7);
  assert_int_equal(json_integer_value(json_object_get(um, "current-offset.orders.4095")), 5095);
  assert_null(json_object_get(um, "current-offset.orders.4096"));
  json_decref(o);
  char *text = fl_env_metrics_prometheus(env);
  check_exposition(text);
  const char *fam =
      "flink_taskmanager_job_task_operator_KafkaSourceReader_topic_partition_"
      "currentOffset";
  int samples = 0;
  for (const char *at = strstr(text, fam); at; at = strstr(at + 1, fam))
    samples += at[strlen(fam)] == '{';
  assert_int_equal(samples, 4096);
  assert_true(prom_sample(text, fam, "topic=\"orders\",partition=\"4095\"") == 5095);
  assert_true(prom_sample(text, fam, "topic=\"orders\",partition=\"7\"") == 7);
  fl_free(text);
  fl_env_destroy(env);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(slow_sink_shows_backpressure_upstream_and_busy_sink),
      cmocka_unit_test(idle_job_is_idle_and_not_backpressured),
      cmocka_unit_test(rates_match_records_counted_over_an_interval),
      cmocka_unit_test(watermarks_and_watermark_lag),
      cmocka_unit_test(late_records_and_fired_timers_are_counted),
      cmocka_unit_test(failed_checkpoint_triggers_are_counted),
      cmocka_unit_test(completed_checkpoints_give_id_duration_and_sizes),
      cmocka_unit_test(latency_markers_reach_the_sink),
      cmocka_unit_test(rocksdb_statistics_under_flinks_names),
      cmocka_unit_test(user_histograms_keep_the_last_values),
      cmocka_unit_test(prometheus_text_is_well_formed_and_escapes_labels),
      cmocka_unit_test(kafka_metric_names_map_to_flinks),
      cmocka_unit_test(kafka_partition_metrics_fit_4096_names_per_subtask),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
