#include "lib/bench_env.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int bench_make_env(int parallelism, const char *const *settings, int n_settings, fl_env_t **env) {
  char par[16];
  snprintf(par, sizeof par, "%d", parallelism);
  const char *kv[] = {"parallelism", par, NULL};
  return bench_make_env_kv(kv, settings, n_settings, env);
}

int bench_make_env_kv(const char *const *kv, const char *const *settings, int n_settings,
                      fl_env_t **env) {
  fl_config_t *conf = fl_config_new();
  char errstr[512] = "", buf[256];
  int rc = FL_ENOMEM;
  *env = NULL;
  if (!conf) {
    snprintf(errstr, sizeof errstr, "out of memory");
    goto done;
  }
  for (size_t i = 0; kv[i]; i += 2)
    if ((rc = fl_config_set(conf, kv[i], kv[i + 1], errstr, sizeof errstr)) != 0) goto done;
  for (int i = 0; i < n_settings; i++) {
    const char *eq = strchr(settings[i], '=');
    if (!eq || (size_t)(eq - settings[i]) >= sizeof buf) {
      snprintf(errstr, sizeof errstr, "--set wants KEY=VALUE, got '%s'", settings[i]);
      rc = FL_EINVAL;
      goto done;
    }
    memcpy(buf, settings[i], (size_t)(eq - settings[i]));
    buf[eq - settings[i]] = '\0';
    if ((rc = fl_config_set(conf, buf, eq + 1, errstr, sizeof errstr)) != 0) goto done;
  }
  rc = fl_env_new(env, conf, errstr, sizeof errstr);
done:
  if (rc != 0) fprintf(stderr, "flink-bench: %s\n", errstr);
  fl_config_destroy(conf);
  return rc;
}

int bench_add_setting(const char **settings, int *n, const char *v) {
  if (*n == BENCH_MAX_SETTINGS) {
    fprintf(stderr, "flink-bench: at most %d --set options\n", BENCH_MAX_SETTINGS);
    return -1;
  }
  settings[(*n)++] = v;
  return 0;
}

int bench_parse_u64(const char *name, const char *v, uint64_t max, uint64_t *out) {
  char *end;
  unsigned long long x = strtoull(v, &end, 10);
  if (!*v || *end || v[0] == '-' || x < 1 || x > max) {
    fprintf(stderr, "flink-bench: %s must be 1..%" PRIu64 ", got '%s'\n", name, max, v);
    return -1;
  }
  *out = x;
  return 0;
}
