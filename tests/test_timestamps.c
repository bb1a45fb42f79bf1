/*
 * Event times at the edges of int64_t, through the public API: FL_TS_NONE (INT64_MIN)
 * is "no timestamp" and never an event time, every other value is one. And periodic
 * watermarks from the records an assigner passes on without a call of its own.
 */
#include <inttypes.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "fl_test_util.h"
#include "flink.h"

typedef struct seen {
  pthread_mutex_t mu;
  size_t n;
  int64_t ts[16];
  char val[16][64];
} seen_t;

static int seen_write(fl_context_t *ctx, const fl_record_t *in, void *instance) {
  seen_t *s = instance;
  (void)ctx;
  pthread_mutex_lock(&s->mu);
  if (s->n < 16) {
    s->ts[s->n] = in->timestamp;
    snprintf(s->val[s->n], sizeof s->val[0], "%.*s", (int)in->value_len, (const char *)in->value);
    s->n++;
  }
  pthread_mutex_unlock(&s->mu);
  return FL_OK;
}

static const fl_sink_fn_t seen_fn = {.version = FL_SINK_FN_VERSION, .write = seen_write};

/* The value is the timestamp as decimal text. */
static int ts_from_value(fl_context_t *ctx, const fl_record_t *rec, int64_t *ts, void *opaque) {
  char buf[32];
  (void)ctx;
  (void)opaque;
  snprintf(buf, sizeof buf, "%.*s", (int)rec->value_len, (const char *)rec->value);
  *ts = strtoll(buf, NULL, 10);
  return FL_OK;
}

static fl_env_t *new_env(void) {
  static const char *const kv[] = {"pipeline.auto-watermark-interval", "0", NULL};
  return env_of(kv);
}

/* Records whose values are the given timestamps, as text, through an assigner that
 * parses them. */
static fl_stream_t *timed_source(fl_env_t *env, const char *const *vals, size_t n) {
  fl_record_t recs[8];
  fl_watermark_strategy_t ws = {.version = FL_WATERMARK_STRATEGY_VERSION,
                                .kind = FL_WATERMARKS_BOUNDED,
                                .timestamp = ts_from_value};
  assert_true(n <= 8);
  for (size_t i = 0; i < n; i++)
    recs[i] = (fl_record_t){.key = "k",
                            .key_len = 1,
                            .value = vals[i],
                            .value_len = strlen(vals[i]),
                            .timestamp = FL_TS_NONE};
  return fl_stream_assign_timestamps(fl_source_collection(env, "src", recs, n), "ts", &ws);
}

/* A timestamp function that returns INT64_MIN fails the job at the assigner, naming it
 * and the value; the record is not forwarded as one without a timestamp. */
static void assigner_returning_ts_none_fails_naming_operator_and_value(void **state) {
  static const char *const vals[] = {"1000", "-9223372036854775808", "3000"};
  fl_env_t *env = new_env();
  seen_t seen = {.mu = PTHREAD_MUTEX_INITIALIZER};
  (void)state;
  assert_int_equal(fl_stream_sink(timed_source(env, vals, 3), "sink", &seen_fn, &seen), FL_OK);
  assert_int_equal(fl_env_execute(env, "edges"), FL_EINVAL);
  const char *err = fl_env_error(env);
  if (strstr(err, "operator 'ts'") == NULL || strstr(err, "-9223372036854775808") == NULL)
    fail_msg("error: %s", err);
  for (size_t i = 0; i < seen.n; i++) assert_int_not_equal(seen.ts[i], FL_TS_NONE);
  fl_env_destroy(env);
}

static int count_window(fl_context_t *ctx, const fl_window_t *w, const fl_record_t *el, size_t n,
                        void *opaque) {
  char line[96];
  int len = snprintf(line, sizeof line, "%" PRId64 "..%" PRId64 ":%zu", w->start, w->end, n);
  (void)el;
  (void)opaque;
  return fl_emit(ctx, "", 0, line, (size_t)len, fl_ctx_timestamp(ctx));
}

/* Every other value is an event time: INT64_MIN + 1 and INT64_MAX land in windows whose
 * bounds saturate, and both fire. */
static void extreme_timestamps_are_event_times(void **state) {
  static const char *const vals[] = {"-9223372036854775807", "0", "9223372036854775807"};
  fl_env_t *env = new_env();
  seen_t seen = {.mu = PTHREAD_MUTEX_INITIALIZER};
  (void)state;
  /* In time order, so that nothing is late. */
  fl_windowed_stream_t *w = fl_window_tumbling(
      fl_stream_key_by(timed_source(env, vals, 3), NULL, NULL), FL_EVENT_TIME, 1000, 0);
  assert_int_equal(
      fl_stream_sink(fl_window_process(w, "win", count_window, NULL), "sink", &seen_fn, &seen),
      FL_OK);
  if (fl_env_execute(env, "edges") != FL_OK) fail_msg("%s", fl_env_error(env));
  assert_int_equal(seen.n, 3);
  assert_string_equal(seen.val[0], "-9223372036854775808..-9223372036854775000:1");
  assert_string_equal(seen.val[1], "0..1000:1");
  assert_string_equal(seen.val[2], "9223372036854775000..9223372036854775807:1");
  fl_env_destroy(env);
}

/* ---------------------------------------------------------------------------------- */
/* An assigner with periodic watermarks and the records' own timestamps does nothing per
 * record but note the largest timestamp: the emit before it does that for it. Its
 * watermarks must still follow the records: each record sees a watermark below its
 * timestamp, made from an earlier record (timestamp - 1), and some do see one before
 * the end of input. */

enum {
  PW_N = 40
};

typedef struct pw_src {
  int next;
} pw_src_t;

/* One record per poll, then a wait of a millisecond: the 1 ms watermark ticks fall
 * between records. */
static int pw_run(fl_context_t *ctx, void *inst) {
  pw_src_t *s = inst;
  if (s->next == PW_N) return FL_SOURCE_END;
  int64_t key = s->next % 3;
  int rc = fl_emit(ctx, &key, sizeof key, NULL, 0, 1000 + 10 * (int64_t)s->next);
  s->next++;
  return rc ? rc : FL_SOURCE_WAIT;
}

typedef struct pw_seen {
  pthread_mutex_t mu;
  size_t n, with_wm;
  char bad[160];
} pw_seen_t;

static int pw_check(fl_context_t *ctx, const fl_record_t *in, void *inst) {
  pw_seen_t *s = inst;
  int64_t wm = fl_ctx_watermark(ctx), ts = in->timestamp;
  pthread_mutex_lock(&s->mu);
  s->n++;
  if (wm != FL_TS_NONE) {
    s->with_wm++;
    if (!s->bad[0] && (wm >= ts || (wm + 1 - 1000) % 10 != 0))
      snprintf(s->bad, sizeof s->bad, "record %" PRId64 " saw watermark %" PRId64, ts, wm);
  }
  pthread_mutex_unlock(&s->mu);
  return FL_OK;
}

static int pw_open(fl_context_t *ctx, void *opaque, void **instance) {
  (void)ctx;
  *instance = opaque;
  return FL_OK;
}

static void periodic_watermarks_follow_records_the_assigner_forwards(void **state) {
  (void)state;
  fl_config_t *conf = fl_config_new();
  char err[256];
  assert_int_equal(fl_config_set(conf, "pipeline.auto-watermark-interval", "1", err, sizeof err),
                   FL_OK);
  fl_env_t *env = NULL;
  assert_int_equal(fl_env_new(&env, conf, err, sizeof err), FL_OK);
  fl_config_destroy(conf);
  pw_src_t src_state = {0};
  pw_seen_t seen = {.mu = PTHREAD_MUTEX_INITIALIZER};
  seen_t sunk = {.mu = PTHREAD_MUTEX_INITIALIZER};
  fl_source_fn_t src = {.version = FL_SOURCE_FN_VERSION, .run = pw_run};
  fl_watermark_strategy_t ws = {.version = FL_WATERMARK_STRATEGY_VERSION,
                                .kind = FL_WATERMARKS_MONOTONOUS};
  fl_stream_t *s =
      fl_stream_assign_timestamps(fl_source(env, "paced", &src, &src_state, 0), "ts", &ws);
  fl_process_fn_t check = {FL_PROCESS_FN_VERSION, pw_open, pw_check, NULL, NULL, NULL};
  fl_stream_t *out = fl_keyed_process(fl_stream_key_by(s, NULL, NULL), "check", &check, &seen);
  assert_int_equal(fl_stream_sink(out, "sink", &seen_fn, &sunk), FL_OK); /* gets nothing */
  if (fl_env_execute(env, "periodic") != FL_OK) fail_msg("%s", fl_env_error(env));
  if (seen.bad[0]) fail_msg("%s", seen.bad);
  assert_int_equal(seen.n, PW_N);
  assert_true(seen.with_wm > 0);
  assert_int_equal(sunk.n, 0);
  fl_env_destroy(env);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(assigner_returning_ts_none_fails_naming_operator_and_value),
      cmocka_unit_test(extreme_timestamps_are_event_times),
      cmocka_unit_test(periodic_watermarks_follow_records_the_assigner_forwards),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
