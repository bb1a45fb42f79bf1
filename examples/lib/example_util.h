/*
 * example_util - what the example programs share, so that each of them reads as the job
 * it is: the options every example takes (input, output, parallelism, watermarks, state
 * backend, checkpoints, --set, -X) and the configuration made from them, a lines source
 * whose bad lines are reported and counted, JSON output helpers and the demos'
 * printouts. Compiled into every example (CMake adds the .c files of examples/lib to
 * each); it uses
 * only the public API (flink.h) and jansson, like the examples.
 */
#ifndef EXAMPLE_UTIL_H
#define EXAMPLE_UTIL_H

#include <jansson.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "flink.h"

#define EX_MAX_REPEATED 64 /* --set and -X options, each */

/* --set KEY=VALUE (any configuration key) and -X KEY=VALUE (a librdkafka property). */
typedef struct ex_extra {
  const char *sets[EX_MAX_REPEATED];
  int n_sets;
  /* key, value pairs split in argv (so that a secret does not show in ps either),
   * NULL-terminated */
  const char *props[2 * EX_MAX_REPEATED + 1];
  int n_props;
} ex_extra_t;

/* Takes argv[*i] when it is --set (and allow_x: -X), with its value, advancing *i:
 * returns 1; 0 when it is neither; -1 on a malformed one (the message printed, prefixed
 * with prog). An -X value without '=' is not quoted: it may hold a secret. */
int ex_extra_option(ex_extra_t *x, const char *prog, bool allow_x, int argc, char **argv, int *i);
/* Applies the --set options to conf, after the program's own settings, so they win.
 * 0, or -1 with the library's message printed. */
int ex_extra_apply(const ex_extra_t *x, const char *prog, fl_config_t *conf);
/* The -X properties for fl_kafka_*_opts.props, or NULL when there are none. */
const char *const *ex_extra_props(const ex_extra_t *x);

/* The options of the examples that read JSON lines. */
typedef struct ex_opts {
  const char *prog;
  const char *input;  /* NULL: none given */
  const char *output; /* NULL: none given */
  int parallelism;
  int64_t out_of_orderness_ms;
  const char *watermark_interval;  /* NULL: library default */
  const char *state_backend;       /* NULL: library default (hashmap) */
  const char *checkpoint_dir;      /* NULL: no checkpoints, output as lines */
  const char *checkpoint_interval; /* NULL: 1s */
  bool demo;
  ex_extra_t extra; /* --set */
} ex_opts_t;

/* Defaults: parallelism 2, out-of-orderness 5 s. */
void ex_opts_init(ex_opts_t *o, const char *prog);
/* "--name value" or "--name=value": the value, advancing *i; NULL when argv[*i] is not
 * that option (or its value is missing). */
const char *ex_option_value(int argc, char **argv, int *i, const char *name);
/* An option without a value that sets *field to value (--bounded: true, --no-x: false). */
typedef struct ex_flag {
  const char *name;
  bool *field;
  bool value;
} ex_flag_t;
/* Whether arg is one of the n flags; then its field is set. */
bool ex_flag_option(const ex_flag_t *flags, size_t n, const char *arg);
/* A duration option's value into *out; -1 with a message when it is not one (or not
 * positive, when asked). */
int ex_duration(const char *prog, const char *name, const char *v, int64_t *out, bool positive);
/* Takes argv[*i] when it is one of the common options (see ex_usage_common): 1; 0 when it
 * is not; -1 on a bad value (message printed). --help prints usage(stdout) and exits 0. */
int ex_common_option(ex_opts_t *o, int argc, char **argv, int *i, void (*usage)(FILE *));
/* The checks after all options were read; `what` names the results ("results"). */
int ex_opts_check(const ex_opts_t *o, const char *what);
/* A program's own positive duration option: --name D sets *field (milliseconds). */
typedef struct ex_duration_opt {
  const char *name;
  int64_t *field;
} ex_duration_opt_t;
/* Reads argv: the common options into o (see ex_common_option), the n duration options
 * of the program, then ex_opts_check(o, what). An unknown option prints usage(stderr).
 * 0, or -1 with the message printed. */
int ex_parse_args(ex_opts_t *o, int argc, char **argv, void (*usage)(FILE *),
                  const ex_duration_opt_t *durations, size_t n, const char *what);
/* Prints the lines of the usage text for the common options. */
void ex_usage_common(FILE *f, const char *what);

/* The configuration: parallelism, watermark interval, state backend; with
 * --checkpoint-dir, checkpoints (the newest 2 kept) and the start from the newest
 * complete one there (state.checkpoints.restore-latest; the library logs it); then every
 * --set. NULL with the message printed. */
fl_config_t *ex_config(const ex_opts_t *o);

/* Bad input lines: the first five are reported on stderr with their line number and
 * why, all are counted. */
typedef struct ex_bad_lines {
  const char *prog;
  pthread_mutex_t mu;
  uint64_t n;
} ex_bad_lines_t;

/* A lines source of path whose lines go through parse; a line parse fails (and one over
 * 16 MiB) is a dead letter that a sink reports and counts in bad, which must outlive the
 * environment. */
fl_stream_t *ex_source_lines(fl_env_t *env, const char *name, const char *path,
                             fl_lines_parse_fn parse, void *opaque, ex_bad_lines_t *bad);
/* The front of the jobs of events keyed by user: ex_source_lines(), then event time from
 * the records' timestamps with o's out-of-orderness as bounded watermarks, keyed by the
 * record key (the user). NULL-safe like the builder API: a failure is the job's error. */
fl_keyed_stream_t *ex_events_by_user(fl_env_t *env, const char *name, const char *path,
                                     fl_lines_parse_fn parse, void *opaque, ex_bad_lines_t *bad,
                                     const ex_opts_t *o);
void ex_bad_lines_init(ex_bad_lines_t *bad, const char *prog);
void ex_bad_lines_done(ex_bad_lines_t *bad);

/* A growable string. */
typedef struct ex_buf {
  char *data;
  size_t len, cap;
} ex_buf_t;

int ex_buf_set(ex_buf_t *b, const void *data, size_t len); /* NUL-terminated copy */
int ex_buf_printf(ex_buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Appends s as a JSON string literal. Bytes >= 0x80 pass through: the input was valid
 * UTF-8 (jansson checked it), so the output is too. */
int ex_buf_json_string(ex_buf_t *b, const char *s, size_t len);

/* For parse functions: the JSON object of a line, an event with the fields of every
 * example's events: "user", a non-empty string (copied into user), and "ts", epoch
 * milliseconds: an integer other than INT64_MIN, the library's "no timestamp" (into
 * *ts). NULL with *rc 0 for a blank line (not an event), or with *rc the failure
 * (fl_ctx_fail) when it is not a JSON object or a field is wrong (named). The caller
 * json_decref()s it and reads its own fields from it. */
json_t *ex_json_event(fl_context_t *ctx, const void *line, size_t len, ex_buf_t *user, int64_t *ts,
                      int *rc);

/* Demo input generators' random numbers. */
uint64_t ex_splitmix64(uint64_t *state);

/* One run of an example: what it reads and writes (with --demo, temporary files), its
 * configuration and environment, and the metrics of the finished job. */
typedef struct ex_run {
  const ex_opts_t *o;
  const char *input, *output; /* "-" when not given */
  char demo_input[64], demo_output[64];
  bool demo_input_made, demo_output_made;
  bool resumed; /* after ex_run_execute: the job was restored from a checkpoint */
  fl_config_t *conf;
  fl_env_t *env;
  char *metrics; /* --demo: fl_env_metrics_json() of the finished job */
} ex_run_t;

/* Input and output; with --demo, without --input a temporary file that write_demo(f,
 * arg) fills (demo_input_made), without --output a temporary output file. Then the
 * configuration (ex_config) and the environment. 0, or the exit status (1, or 2 for a
 * bad --set) with the message printed. */
int ex_run_start(ex_run_t *r, const ex_opts_t *o, int (*write_demo)(FILE *f, void *arg), void *arg);
/* Runs the job built on r->env, keeps the metrics for --demo and destroys the
 * environment, so that operator instances have handed their totals over (they do when
 * they close). 0, or 1 with the message printed. */
int ex_run_execute(ex_run_t *r, const char *job_name);
/* --demo: the first lines of the output (a file, or the committed part-* files of a
 * directory), sorted since subtasks' lines interleave, introduced with `what` and the
 * number this run emitted. */
void ex_run_print_output(const ex_run_t *r, const char *what, uint64_t emitted);
/* Frees what the run holds and removes its temporary files. */
void ex_run_done(ex_run_t *r);
/* Prints fl_env_metrics_json()'s document indented. */
void ex_print_metrics(const char *metrics);

#endif
