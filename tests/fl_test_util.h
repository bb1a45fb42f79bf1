/* Helpers shared by the runtime tests: a collecting sink and small record builders. */
#ifndef FL_TEST_UTIL_H
#define FL_TEST_UTIL_H

#include <pthread.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "flink.h"

typedef struct {
  char *key;
  size_t key_len;
  char *value;
  size_t value_len;
  int64_t ts;
  int subtask;
} col_rec_t;

typedef struct {
  pthread_mutex_t mu;
  col_rec_t *r;
  size_t n, cap;
} collector_t;

static inline void collector_init(collector_t *c) {
  memset(c, 0, sizeof *c);
  pthread_mutex_init(&c->mu, NULL);
}

static inline void collector_free(collector_t *c) {
  for (size_t i = 0; i < c->n; i++) {
    free(c->r[i].key);
    free(c->r[i].value);
  }
  free(c->r);
  pthread_mutex_destroy(&c->mu);
}

static inline int collector_write(fl_context_t *ctx, const fl_record_t *in, void *inst) {
  collector_t *c = inst;
  pthread_mutex_lock(&c->mu);
  if (c->n == c->cap) {
    c->cap = c->cap ? c->cap * 2 : 64;
    c->r = realloc(c->r, c->cap * sizeof *c->r);
  }
  col_rec_t *r = &c->r[c->n++];
  r->key = malloc(in->key_len + 1);
  if (in->key_len) memcpy(r->key, in->key, in->key_len);
  r->key[in->key_len] = 0;
  r->key_len = in->key_len;
  r->value = malloc(in->value_len + 1);
  if (in->value_len) memcpy(r->value, in->value, in->value_len);
  r->value[in->value_len] = 0;
  r->value_len = in->value_len;
  r->ts = in->timestamp;
  r->subtask = fl_ctx_subtask(ctx);
  pthread_mutex_unlock(&c->mu);
  return 0;
}

static const fl_sink_fn_t collector_sink = {.version = FL_SINK_FN_VERSION,
                                            .write = collector_write};

static inline fl_record_t rec_str(const char *key, const char *value, int64_t ts) {
  fl_record_t r = {key, key ? strlen(key) : 0, value, value ? strlen(value) : 0, ts};
  return r;
}

/* Multiplies test timeouts (env FL_TEST_TIMEOUT_SCALE, default 1). */
static inline double timeout_scale(void) {
  const char *s = getenv("FL_TEST_TIMEOUT_SCALE");
  double v = s ? atof(s) : 1.0;
  return v > 0 ? v : 1.0;
}

static inline fl_env_t *env_with(int parallelism, const char *wm_interval) {
  fl_config_t *c = fl_config_new();
  char p[16];
  snprintf(p, sizeof p, "%d", parallelism);
  char err[256];
  fl_config_set(c, "parallelism", p, err, sizeof err);
  if (wm_interval)
    fl_config_set(c, "pipeline.auto-watermark-interval", wm_interval, err, sizeof err);
  fl_env_t *env = NULL;
  fl_env_new(&env, c, err, sizeof err);
  fl_config_destroy(c);
  return env;
}

#endif
