/* Helpers shared by the tests that run jobs: a collecting sink, small record builders,
 * environments, and the timeout scale (definitions in fl_test_util.c). */
#ifndef FL_TEST_UTIL_H
#define FL_TEST_UTIL_H

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
int collector_write(fl_context_t *ctx, const fl_record_t *in, void *inst);
/* A sink function whose instance is the collector_t. */
extern const fl_sink_fn_t collector_sink;

static inline fl_record_t rec_str(const char *key, const char *value, int64_t ts) {
  fl_record_t r = {key, key ? strlen(key) : 0, value, value ? strlen(value) : 0, ts};
  return r;
}

/* Multiplies test timeouts (env FL_TEST_TIMEOUT_SCALE, default 1). */
double timeout_scale(void);

/* A new environment with this parallelism and, if not NULL, watermark interval. */
fl_env_t *env_with(int parallelism, const char *wm_interval);

#endif
