/* The environment every flink-bench job starts from: a parallelism and "key=value"
 * configuration settings (the --set options). */
#ifndef FL_BENCH_ENV_H
#define FL_BENCH_ENV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "flink.h"

#define BENCH_MAX_SETTINGS 32

/* An environment with the parallelism and the settings; errors go to stderr. 0 or the
 * error of the setting or of fl_env_new. */
int bench_make_env(int parallelism, const char *const *settings, int n_settings, fl_env_t **env);
/* The same from a NULL-terminated list of keys and values, then the settings. */
int bench_make_env_kv(const char *const *kv, const char *const *settings, int n_settings,
                      fl_env_t **env);

/* The --set options of a command. */
typedef struct bench_settings {
  const char *v[BENCH_MAX_SETTINGS];
  int n;
} bench_settings_t;

/* Adds a --set option's "key=value" to settings[0..*n) (of BENCH_MAX_SETTINGS); -1 with a
 * message on stderr when it is full. */
int bench_add_setting(const char **settings, int *n, const char *v);

/* A command's option: its name and where its value goes, by its kind. */
typedef struct bench_opt {
  const char *name;
  enum {
    BENCH_OPT_COUNT,  /* uint64_t *, strtoull */
    BENCH_OPT_INT,    /* int *, atoi */
    BENCH_OPT_DOUBLE, /* double *, atof */
    BENCH_OPT_TEXT,   /* const char ** */
    BENCH_OPT_SET     /* bench_settings_t *, bench_add_setting */
  } kind;
  void *value;
} bench_opt_t;

/* Reads "--name value" pairs from argv[first...] into opts (n of them). false on an
 * unknown option or one without a value (after usage(), when given), or when the
 * settings are full (with bench_add_setting's message). */
bool bench_parse_opts(int argc, char **argv, int first, const bench_opt_t *opts, size_t n,
                      void (*usage)(void));

/* Parses option `name`'s value v as an integer in 1..max into *out; -1 with a message
 * on stderr if it is not one. */
int bench_parse_u64(const char *name, const char *v, uint64_t max, uint64_t *out);

#endif
