/* Helpers shared by the tests that run jobs (fl_test_util.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fl_test_util.h"

void collector_init(collector_t *c) {
  memset(c, 0, sizeof *c);
  pthread_mutex_init(&c->mu, NULL);
}

void collector_free(collector_t *c) {
  for (size_t i = 0; i < c->n; i++) {
    free(c->r[i].key);
    free(c->r[i].value);
  }
  free(c->r);
  pthread_mutex_destroy(&c->mu);
}

static char *copy_bytes(const void *p, size_t n) {
  char *s = malloc(n + 1);
  if (s && n) memcpy(s, p, n);
  if (s) s[n] = 0;
  return s;
}

int collector_write(fl_context_t *ctx, const fl_record_t *in, void *inst) {
  collector_t *c = inst;
  int rc = FL_OK;
  pthread_mutex_lock(&c->mu);
  if (c->n == c->cap) {
    size_t cap = c->cap ? c->cap * 2 : 64;
    col_rec_t *r = realloc(c->r, cap * sizeof *r);
    if (!r) {
      rc = FL_ENOMEM;
      goto done;
    }
    c->r = r;
    c->cap = cap;
  }
  col_rec_t *r = &c->r[c->n];
  r->key = copy_bytes(in->key, in->key_len);
  r->value = copy_bytes(in->value, in->value_len);
  if (!r->key || !r->value) {
    free(r->key);
    free(r->value);
    rc = FL_ENOMEM;
    goto done;
  }
  r->key_len = in->key_len;
  r->value_len = in->value_len;
  r->ts = in->timestamp;
  r->subtask = fl_ctx_subtask(ctx);
  c->n++;
done:
  pthread_mutex_unlock(&c->mu);
  return rc;
}

const fl_sink_fn_t collector_sink = {.version = FL_SINK_FN_VERSION, .write = collector_write};

double timeout_scale(void) {
  const char *s = getenv("FL_TEST_TIMEOUT_SCALE");
  double v = s ? atof(s) : 1.0;
  return v > 0 ? v : 1.0;
}

fl_env_t *env_with(int parallelism, const char *wm_interval) {
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
