/*
 * Event times at the edges of int64_t, through the public API: FL_TS_NONE (INT64_MIN)
 * is "no timestamp" and never an event time, every other value is one.
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

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(assigner_returning_ts_none_fails_naming_operator_and_value),
      cmocka_unit_test(extreme_timestamps_are_event_times),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
