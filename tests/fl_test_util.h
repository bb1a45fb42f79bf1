/* Helpers shared by the tests that run jobs: a collecting sink, small record builders,
 * environments, and the timeout scale (definitions in fl_test_util.c). */
#ifndef FL_TEST_UTIL_H
#define FL_TEST_UTIL_H

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "flink.h"

/* One record a collector_t got, with copies of its bytes (NUL-terminated). */
typedef struct {
  char *key;
  size_t key_len;
  char *value;
  size_t value_len;
  int64_t ts;
  int subtask;
} col_rec_t;

/* Every record its sink instances got, from any number of subtasks at once. */
typedef struct {
  pthread_mutex_t mu;
  col_rec_t *r;
  size_t n, cap;
} collector_t;

void collector_init(collector_t *c);
void collector_free(collector_t *c);
/* The sink's write (ctx may be NULL: the record is then counted as subtask 0's). */
int collector_write(fl_context_t *ctx, const fl_record_t *in, void *inst);
/* A sink function whose instance is the collector_t. */
extern const fl_sink_fn_t collector_sink;

/* Orders records by timestamp, then key, then value (bytes); sorts a collector so. */
int col_rec_compare(const col_rec_t *a, const col_rec_t *b);
void collector_sort(collector_t *c);
/* Adds a sink named "collect" to s that fills c (initialized here). */
void sink_into(fl_stream_t *s, collector_t *c);

/* Runs the job, which must succeed (else the test fails showing the environment's
 * error). */
void execute_ok(fl_env_t *env, const char *job);
/* Runs the job, which must fail with code and an error message holding needle. */
void execute_fails(fl_env_t *env, const char *job, int code, const char *needle);

/* fl_env_metrics_json() parsed (the caller decrefs), and the operator named name in
 * it (borrowed from root; NULL if there is none). */
json_t *metrics_of(fl_env_t *env);
json_t *metrics_op(json_t *root, const char *name);
/* The integer metric of the operator named op (fails the test if there is none). */
int64_t op_metric(fl_env_t *env, const char *op, const char *metric);

static inline fl_record_t rec_str(const char *key, const char *value, int64_t ts) {
  fl_record_t r = {key, key ? strlen(key) : 0, value, value ? strlen(value) : 0, ts};
  return r;
}

/* n records: key, the value first + i in decimal, timestamp i. One block: free()
 * releases the records and their values. */
fl_record_t *int_records(const char *key, int first, int n);

/* Multiplies test timeouts (env FL_TEST_TIMEOUT_SCALE, default 1). */
double timeout_scale(void);

/* A new environment with this parallelism and, if not NULL, watermark interval. */
fl_env_t *env_with(int parallelism, const char *wm_interval);
/* A new environment with the settings kv ("key", "value", ..., NULL; kv may be NULL);
 * NULL, with the reason in err, when a setting or the environment is rejected. Needs no
 * running test (a forked child may call it). */
fl_env_t *env_try(const char *const *kv, char *err, size_t n);
/* The same, failing the test when a setting is rejected. */
fl_env_t *env_of(const char *const *kv);

/* A job running on a thread of its own, for tests that act while it runs. */
typedef struct bg_job {
  fl_env_t *env;
  const char *name;
  pthread_t thread;
  int rc;           /* the job's result, once it ended */
  char err[1024];   /* the environment's error then */
  _Atomic int done; /* set when the job ended */
} bg_job_t;

/* Starts running env's job, named name, on a new thread. */
void bg_job_start(bg_job_t *j, fl_env_t *env, const char *name);
/* Waits for the job's end; its result. */
int bg_job_join(bg_job_t *j);

/* Appends the strings of ap, up to its NULL, to argv[*n..] and ends argv with NULL (a
 * program's arguments); fails the test when they do not fit in its cap entries. */
void argv_append(char **argv, int *n, int cap, va_list ap);

/* Seconds on the monotonic clock, with sub-millisecond resolution. */
double mono_s(void);
/* Milliseconds on the monotonic clock. */
int64_t mono_ms(void);
/* A deadline on mono_ms()'s clock base_ms from now, scaled by timeout_scale() for slow
 * (instrumented) builds. */
static inline int64_t deadline_in(int64_t base_ms) {
  return mono_ms() + (int64_t)((double)base_ms * timeout_scale());
}
/* A manual clock for fl_env_set_clock (opaque unused): it reads g_manual_ms, which only
 * the test moves. */
extern _Atomic int64_t g_manual_ms;
int64_t manual_clock(void *opaque);
/* A manual clock for fl_env_set_clock (opaque unused): it reads g_tick_ms, which moves
 * 1 ms every time it is read; a test sets g_tick_ms before its job runs. */
extern _Atomic int64_t g_tick_ms;
int64_t ticking_clock(void *opaque);
/* Sleeps ms milliseconds (between polls of a condition with a deadline). */
void pause_ms(long ms);

/* A job's log (fl_env_set_log) as text, "LEVEL line\n" a line (LEVEL: ERROR, WARN or
 * INFO), appended from whatever thread logs; text is NULL until the first line (a line
 * that does not fit in memory is dropped). Initialise with {.mu =
 * PTHREAD_MUTEX_INITIALIZER}; log_buf_free() frees the text. */
typedef struct log_buf {
  pthread_mutex_t mu;
  char *text;
  size_t len;
} log_buf_t;

/* The log function that appends to the log_buf_t opaque. */
void log_buf_collect(fl_log_level_t level, const char *line, void *opaque);
/* Collects env's log into l, emptied first. */
void log_buf_attach(log_buf_t *l, fl_env_t *env);
/* Whether the log holds a, and b after it (b NULL: anything). */
bool log_buf_has(log_buf_t *l, const char *a, const char *b);
/* Polls log_buf_has every 5 ms until it holds or base_ms (scaled by timeout_scale)
 * passed; whether it holds. With base_ms 0, one look. */
bool log_buf_wait(log_buf_t *l, const char *a, const char *b, int64_t base_ms);
/* The text so far for messages ("" when nothing was logged); valid until the next line. */
const char *log_buf_text(const log_buf_t *l);
void log_buf_free(log_buf_t *l);

/* A reduce function (fl_reduce_fn) that appends b to a: not commutative, so it shows the
 * order of a reduction, and its result grows, so it is never written in place. */
/* Emits a printf-formatted value (at most 511 bytes; longer fails the job) under the key
 * of the record or timer at hand, with timestamp ts: the output of the tests' timer and
 * window functions. */
int emitf(fl_context_t *ctx, int64_t ts, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
int concat_reduce(fl_context_t *ctx, const void *a, size_t a_len, const void *b, size_t b_len,
                  fl_buf_t *out, void *opaque);

/* Prometheus text (fl_env_metrics_prometheus): the value of the first sample of metric (a
 * full name) whose labels contain has (NULL: any sample), or NAN when there is none. */
double prom_sample(const char *text, const char *metric, const char *has);
/* The sum of the values of all samples of metric, or NAN when there is none. */
double prom_sum(const char *text, const char *metric);

/* A test source's pacing: how many of its budget records it may emit now so that it
 * emits at most rate_per_ms records a millisecond since its first call (*t0_ms, on
 * mono_s()'s clock in ms, set then; 0 before), having emitted `emitted`; 0 when none is
 * due yet (the source returns FL_SOURCE_WAIT). */
size_t paced_budget(size_t budget, double rate_per_ms, double *t0_ms, int64_t emitted);

/* How many complete checkpoints (chk-<id> directories with their _manifest) root holds;
 * *newest (when not NULL) gets the highest id among them, 0 if none. A missing root holds
 * none. */
int complete_checkpoints(const char *root, int64_t *newest);
/* The highest id of a complete checkpoint under root, 0 if none. */
static inline int64_t newest_checkpoint(const char *root) {
  int64_t id;
  complete_checkpoints(root, &id);
  return id;
}

#endif
