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

void fl_metrics_free_user(fl_metrics_t *m, size_t n) {
  for (size_t i = 0; m && i < n; i++) free(atomic_load(&m[i].user));
}
