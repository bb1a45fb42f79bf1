/* The environment every flink-bench job starts from: a parallelism and "key=value"
 * configuration settings (the --set options). */
#ifndef FL_BENCH_ENV_H
#define FL_BENCH_ENV_H

#include <stdint.h>

#include "flink.h"

#define BENCH_MAX_SETTINGS 32

/* An environment with the parallelism and the settings; errors go to stderr. 0 or the
 * error of the setting or of fl_env_new. */
int bench_make_env(int parallelism, const char *const *settings, int n_settings, fl_env_t **env);
/* The same from a NULL-terminated list of keys and values, then the settings. */
int bench_make_env_kv(const char *const *kv, const char *const *settings, int n_settings,
                      fl_env_t **env);

/* Adds a --set option's "key=value" to settings[0..*n) (of BENCH_MAX_SETTINGS); -1 with a
 * message on stderr when it is full. */
int bench_add_setting(const char **settings, int *n, const char *v);

/* Parses option `name`'s value v as an integer in 1..max into *out; -1 with a message
 * on stderr if it is not one. */
int bench_parse_u64(const char *name, const char *v, uint64_t max, uint64_t *out);

#endif
