/* The environment: creating it from a configuration, destroying it with everything
 * built on it, its sticky error and its clock. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "api/builder.h"
#include "api/config.h"
#include "rest/rest.h"
#include "util/clock.h"

static int64_t wall_clock_ms(void *opaque) {
  (void)opaque;
  return fl_wall_ms();
}

/* A job id as Flink shows them: 32 hex digits, from the clock, the process and a
 * counter (unique enough to tell the jobs of one host apart). Set once, before any
 * thread may read it. */
static void new_job_id(fl_env_t *env) {
  static _Atomic uint64_t seq;
  uint64_t a = (uint64_t)fl_wall_ms() * 1000003u ^ (uint64_t)fl_mono_ns();
  uint64_t b = ((uint64_t)getpid() << 32) ^ atomic_fetch_add(&seq, 1) ^ (uint64_t)(uintptr_t)env;
  snprintf(env->job_id, sizeof env->job_id, "%016llx%016llx", (unsigned long long)a,
           (unsigned long long)b);
}

int fl_env_new(fl_env_t **out, const fl_config_t *conf, char *errstr, size_t errstr_size) {
  if (!out) return FL_EINVAL;
  *out = NULL;
  fl_env_t *env = calloc(1, sizeof *env);
  if (!env) return FL_ENOMEM;
  env->conf_copy = fl_config_copy(conf);
  if (!env->conf_copy) {
    free(env);
    return FL_ENOMEM;
  }
  int rc = fl_config_resolve(env->conf_copy, &env->conf, errstr, errstr_size);
  if (rc) {
    fl_config_destroy(env->conf_copy);
    free(env);
    return rc;
  }
  env->clock = wall_clock_ms;
  pthread_mutex_init(&env->ckpt_hist_lock, NULL);
  env->services = &fl_rest_services;
  new_job_id(env);
  *out = env;
  return FL_OK;
}

void fl_env_destroy(fl_env_t *env) {
  if (!env) return;
  for (size_t i = 0; i < env->n_nodes; i++) {
    fl_node_t *n = env->nodes[i];
    if (n->release) n->release(n->release_opaque);
    free(n->name);
    free(n->inputs);
    fl_metrics_free_user(n->metrics, (size_t)n->n_metrics);
    free(n->metrics);
    free(n);
  }
  free(env->nodes);
  for (size_t i = 0; i < env->n_streams; i++) {
    free(env->streams[i]->parts);
    free(env->streams[i]);
  }
  free(env->streams);
  for (size_t i = 0; i < env->n_keyed; i++) free(env->keyed[i]);
  free(env->keyed);
  for (size_t i = 0; i < env->n_windowed; i++) free(env->windowed[i]);
  free(env->windowed);
  for (size_t i = 0; i < env->n_tags; i++) {
    free(env->tags[i]->name);
    free(env->tags[i]);
  }
  free(env->tags);
  fl_state_descs_free(env);
  free(atomic_load(&env->job_name));
  fl_config_destroy(env->conf_copy);
  pthread_mutex_destroy(&env->ckpt_hist_lock);
  free(env);
}

int fl_env_set_log(fl_env_t *env, fl_log_fn fn, void *opaque) {
  if (!env || fl_env_running(env)) return FL_EINVAL;
  env->log = fn;
  env->log_opaque = fn ? opaque : NULL;
  return FL_OK;
}

const char *fl_env_error(const fl_env_t *env) { return env ? env->errmsg : ""; }

int fl_env_set_clock(fl_env_t *env, int64_t (*now_ms)(void *opaque), void *opaque) {
  if (!env || !now_ms) return FL_EINVAL;
  if (fl_env_running(env)) return FL_EINVAL;
  env->clock = now_ms;
  env->clock_opaque = opaque;
  return FL_OK;
}
