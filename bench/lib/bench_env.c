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

bool bench_parse_opts(int argc, char **argv, int first, const bench_opt_t *opts, size_t n,
                      void (*usage)(void)) {
  for (int i = first; i < argc; i += 2) {
    size_t k = 0;
    while (k < n && strcmp(argv[i], opts[k].name)) k++;
    if (k == n || i + 1 >= argc) {
      if (usage) usage();
      return false;
    }
    const char *v = argv[i + 1];
    switch (opts[k].kind) {
    case BENCH_OPT_COUNT: *(uint64_t *)opts[k].value = strtoull(v, NULL, 10); break;
    case BENCH_OPT_INT: *(int *)opts[k].value = atoi(v); break;
    case BENCH_OPT_DOUBLE: *(double *)opts[k].value = atof(v); break;
    case BENCH_OPT_TEXT: *(const char **)opts[k].value = v; break;
    case BENCH_OPT_SET: {
      bench_settings_t *s = opts[k].value;
      if (bench_add_setting(s->v, &s->n, v) != 0) return false;
      break;
    }
    }
  }
  return true;
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
