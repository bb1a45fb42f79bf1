/* What every layer above may do with an environment: record the sticky builder error,
 * log a line. */
#include "graph/env.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/clock.h"

void fl_env_fail(fl_env_t *env, int err, const char *fmt, ...) {
  if (!env || env->error) return;
  env->error = err ? err : FL_EINVAL;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(env->errmsg, sizeof env->errmsg, fmt, ap);
  va_end(ap);
}

void fl_env_vlog(const fl_env_t *env, fl_log_level_t level, const char *prefix, const char *fmt,
                 va_list ap) {
  char line[2048];
  int n = snprintf(line, sizeof line, "%s", prefix ? prefix : "");
  if (n < 0 || (size_t)n >= sizeof line) n = 0;
  vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
  if (env && env->log)
    env->log(level, line, env->log_opaque);
  else
    fprintf(stderr, "flink: %s\n", line);
}

void fl_env_log(const fl_env_t *env, fl_log_level_t level, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fl_env_vlog(env, level, NULL, fmt, ap);
  va_end(ap);
}

void fl_env_ckpt_begin(fl_env_t *env, int64_t id, bool savepoint) {
  pthread_mutex_lock(&env->ckpt_hist_lock);
  fl_ckpt_record_t *r = &env->ckpt_hist[env->ckpt_hist_n++ % FL_CKPT_HISTORY];
  memset(r, 0, sizeof *r);
  r->id = id;
  r->savepoint = savepoint;
  r->status = FL_CKPT_IN_PROGRESS;
  r->trigger_ms = fl_wall_ms();
  pthread_mutex_unlock(&env->ckpt_hist_lock);
  atomic_fetch_add(&env->ckpt_stats.in_progress, 1);
}

void fl_env_ckpt_end(fl_env_t *env, int64_t id, int rc, int64_t full_size, int64_t checkpointed,
                     const char *msg) {
  pthread_mutex_lock(&env->ckpt_hist_lock);
  fl_ckpt_record_t *r = NULL;
  for (uint64_t k = 0; k < FL_CKPT_HISTORY && k < env->ckpt_hist_n; k++) {
    fl_ckpt_record_t *c = &env->ckpt_hist[(env->ckpt_hist_n - 1 - k) % FL_CKPT_HISTORY];
    if (c->id == id) {
      r = c;
      break;
    }
  }
  bool was_in_progress = r && r->status == FL_CKPT_IN_PROGRESS;
  if (!r) { /* it could not start: no record yet */
    r = &env->ckpt_hist[env->ckpt_hist_n++ % FL_CKPT_HISTORY];
    memset(r, 0, sizeof *r);
    r->id = id;
    r->trigger_ms = fl_wall_ms();
  }
  r->status = rc ? FL_CKPT_FAILED : FL_CKPT_COMPLETED;
  r->end_ms = fl_wall_ms();
  r->duration_ms = r->end_ms - r->trigger_ms;
  r->full_size = full_size;
  r->checkpointed = checkpointed;
  snprintf(r->failure, sizeof r->failure, "%s", rc && msg ? msg : "");
  pthread_mutex_unlock(&env->ckpt_hist_lock);
  if (was_in_progress) atomic_fetch_sub(&env->ckpt_stats.in_progress, 1);
}

size_t fl_env_ckpt_history(fl_env_t *env, fl_ckpt_record_t *out) {
  pthread_mutex_lock(&env->ckpt_hist_lock);
  uint64_t n = env->ckpt_hist_n < FL_CKPT_HISTORY ? env->ckpt_hist_n : FL_CKPT_HISTORY;
  for (uint64_t k = 0; k < n; k++)
    out[k] = env->ckpt_hist[(env->ckpt_hist_n - n + k) % FL_CKPT_HISTORY];
  pthread_mutex_unlock(&env->ckpt_hist_lock);
  return (size_t)n;
}
