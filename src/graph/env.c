/* What every layer above may do with an environment: record the sticky builder error,
 * log a line, free user metrics. */
#include "graph/env.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

void fl_env_fail(fl_env_t *env, int err, const char *fmt, ...) {
  if (!env || env->error) return;
  env->error = err ? err : FL_EINVAL;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(env->errmsg, sizeof env->errmsg, fmt, ap);
  va_end(ap);
}

void fl_env_log(const fl_env_t *env, fl_log_level_t level, const char *fmt, ...) {
  char line[2048];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  if (env && env->log)
    env->log(level, line, env->log_opaque);
  else
    fprintf(stderr, "flink: %s\n", line);
}

void fl_metrics_free_user(fl_metrics_t *m, size_t n) {
  for (size_t i = 0; m && i < n; i++) free(atomic_load(&m[i].user));
}
