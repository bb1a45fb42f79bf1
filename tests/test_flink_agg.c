/*
 * flink-agg end to end: runs the built tool ($FL_BUILD_DIR/tools/flink-agg, else
 * ./tools/flink-agg) on hand-written JSON lines in a temporary directory and compares
 * its output, as a sorted multiset of lines, with results derived by hand from the
 * event-time rules of docs/event-time.md (derivations in the comments).
 *
 * Notation in the derivations: wm = watermark; with bounded out-of-orderness D the
 * watermark after an event is max_ts - D - 1 (only when it grows); with
 * --watermark-interval 0 it is emitted after every record, behind the record.
 */
#define _GNU_SOURCE

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "fl_test_util.h"
#include "run_util.h"

#define N_OF(a) (sizeof(a) / sizeof((a)[0]))

/* ---------------------------------------------------------------------------------- */
/* Running the tool                                                                   */

typedef struct tctx {
  char *dir;
  char in[PATH_MAX];      /* input file */
  char out[PATH_MAX];     /* --output file */
  char late[PATH_MAX];    /* --late-output file */
  char dead[PATH_MAX];    /* dead-letter file */
  char stdout_[PATH_MAX]; /* captured stdout */
  char stderr_[PATH_MAX]; /* captured stderr */
  char *tool;
  const void *param; /* the case of a table-driven test */
} tctx_t;

typedef struct run {
  int code;  /* exit status, or KILLED_BY(signal) */
  char *out; /* stdout */
  char *err; /* stderr */
} run_t;

static int setup(void **state) {
  tctx_t *t = calloc(1, sizeof(*t));
  if (!t) return -1;
  t->param = *state;
  t->dir = make_tmpdir("fl_test_agg");
  snprintf(t->in, sizeof(t->in), "%s/in.jsonl", t->dir);
  snprintf(t->out, sizeof(t->out), "%s/out.jsonl", t->dir);
  snprintf(t->late, sizeof(t->late), "%s/late.jsonl", t->dir);
  snprintf(t->dead, sizeof(t->dead), "%s/dead.jsonl", t->dir);
  snprintf(t->stdout_, sizeof(t->stdout_), "%s/stdout", t->dir);
  snprintf(t->stderr_, sizeof(t->stderr_), "%s/stderr", t->dir);
  *state = t;
  return 0;
}

static int teardown(void **state) {
  tctx_t *t = *state;
  rm_tree(t->dir);
  free(t->dir);
  free(t->tool);
  free(t);
  return 0;
}

static char **tool_argv(tctx_t *t, const char *const *args, char **argv, size_t max) {
  size_t n = 0;
  if (!t->tool) t->tool = find_program("tools", "flink-agg");
  argv[n++] = t->tool;
  for (; *args != NULL; args++) {
    assert_true(n < max - 1);
    argv[n++] = (char *)*args;
  }
  argv[n] = NULL;
  return argv;
}

/* Runs the tool with args (NULL-terminated, without argv[0]); stdin comes from the
 * input file (if there is one), stdout and stderr go to files. */
static run_t run_tool(tctx_t *t, const char *const *args) {
  char *argv[64];
  run_t r;
  pid_t pid = start_program(tool_argv(t, args, argv, N_OF(argv)),
                            access(t->in, R_OK) == 0 ? t->in : NULL, t->stdout_, t->stderr_);
  r.code = wait_program(pid);
  r.out = read_text(t->stdout_, NULL);
  r.err = read_text(t->stderr_, NULL);
  assert_true(r.out && r.err);
  return r;
}

static void run_free(run_t *r) {
  free(r->out);
  free(r->err);
}

/* Runs the tool, which must exit 0 (else its stderr is shown). */
static run_t run_ok(tctx_t *t, const char *const *args) {
  run_t r = run_tool(t, args);
  if (r.code != 0) print_error("stderr: %s\n", r.err);
  assert_int_equal(r.code, 0);
  return r;
}

/* Runs the tool, which must exit 0 with the lines want on stdout, having skipped one
 * malformed line. */
static void run_skips_one(tctx_t *t, const char *const *args, const char *const *want, size_t n) {
  run_t r = run_ok(t, args);
  assert_text_lines("stdout", r.out, want, n);
  assert_non_null(strstr(r.err, "flink-agg: skipped 1 malformed lines\n"));
  run_free(&r);
}

/* The file at path holds the lines want, in any order. */
static void assert_file_lines(const char *path, const char *const *want, size_t n) {
  lines_t got = {0};
  lines_add_file(&got, path);
  assert_same_lines(path, &got, want, n);
  lines_free(&got);
}

/* Runs the tool, which must exit 0 with the lines want in --output (t->out). */
static void expect_output(tctx_t *t, const char *const *args, const char *const *want, size_t n) {
  run_t r = run_ok(t, args);
  assert_file_lines(t->out, want, n);
  run_free(&r);
}

/* Runs the tool on input, which must exit 0 with the lines want on stdout. */
static void expect_stdout(tctx_t *t, const char *const *args, const char *input,
                          const char *const *want, size_t n) {
  write_text(t->in, input);
  run_t r = run_ok(t, args);
  assert_text_lines("stdout", r.out, want, n);
  run_free(&r);
}

typedef struct usage_case {
  const char *args[24];
  const char *must_name[2]; /* substrings of stderr */
} usage_case_t;

/* Each case exits 2, names what is wrong on stderr and writes nothing to stdout. */
static void expect_usage_errors(tctx_t *t, const usage_case_t *cases, size_t n) {
  for (size_t i = 0; i < n; i++) {
    run_t r = run_tool(t, cases[i].args);
    const char *const *name = cases[i].must_name;
    if (r.code != 2 || strstr(r.err, name[0]) == NULL ||
        (name[1] != NULL && strstr(r.err, name[1]) == NULL))
      print_error("case %zu: exit %d, stderr: %s\n", i, r.code, r.err);
    assert_int_equal(r.code, 2);
    assert_non_null(strstr(r.err, name[0]));
    if (name[1] != NULL) assert_non_null(strstr(r.err, name[1]));
    assert_string_equal(r.out, "");
    run_free(&r);
  }
}

/* The tool's result line. */
static char *result(const char *key, int64_t start, int64_t end, const char *value, int count) {
  char *s = NULL;
  assert_true(asprintf(&s,
                       "{\"key\": %s, \"window_start\": %" PRId64 ", \"window_end\": %" PRId64
                       ", \"value\": %s, \"count\": %d}",
                       key, start, end, value, count) > 0);
  return s;
}

/* ---------------------------------------------------------------------------------- */
/* Tumbling windows and the five aggregates                                           */

/*
 * tumbling:1s, in time order (nothing can be late):
 *   a: [1000,2000) = {3, 4.5}   a: [2000,3000) = {-1}
 *   b: [1000,2000) = {10}       b: [2000,3000) = {7, 1}
 * Input read from stdin ("--input -"), results to stdout. Each aggregate gives one
 * value per window; avg: a [1000,2000) 7.5 / 2 = 3.75, b [2000,3000) 8 / 2 = 4
 * (integral: no point).
 */
static const char tumbling_input[] =
    "{\"user\":\"a\",\"ts\":1000,\"v\":3}\n"
    "{\"user\":\"b\",\"ts\":1500,\"v\":10}\n"
    "{\"user\":\"a\",\"ts\":1999,\"v\":4.5}\n"
    "{\"user\":\"a\",\"ts\":2000,\"v\":-1}\n"
    "{\"user\":\"b\",\"ts\":2500,\"v\":7}\n"
    "{\"user\":\"b\",\"ts\":2999,\"v\":1}\n";

typedef struct tumbling_case {
  const char *agg;
  const char *values[4]; /* a [1000,2000), a [2000,3000), b [1000,2000), b [2000,3000) */
} tumbling_case_t;

static const tumbling_case_t tumbling_cases[] = {
    {"sum", {"7.5", "-1", "10", "8"}},  {"count", {"2", "1", "1", "2"}},
    {"min", {"3", "-1", "10", "1"}},    {"max", {"4.5", "-1", "10", "7"}},
    {"avg", {"3.75", "-1", "10", "4"}},
};

static void tumbling(void **state) {
  tctx_t *t = *state;
  const tumbling_case_t *c = t->param;
  const char *args[] = {"--input", "-",     "--key", "user",     "--time",      "ts", "--value",
                        "v",       "--agg", c->agg,  "--window", "tumbling:1s", NULL};
  static const char *const keys[] = {"\"a\"", "\"a\"", "\"b\"", "\"b\""};
  static const int counts[] = {2, 1, 1, 2};
  char *want[4];
  for (int i = 0; i < 4; i++)
    want[i] =
        result(keys[i], 1000 + 1000 * (i % 2), 2000 + 1000 * (i % 2), c->values[i], counts[i]);
  expect_stdout(t, args, tumbling_input, (const char *const *)want, 4);
  for (int i = 0; i < 4; i++) free(want[i]);
}

/*
 * avg of 1, 1, 2 = 4/3 prints as the shortest round-trip form, 0.1 + 0.2 as the
 * double it is (0.30000000000000004); 2^53 is not below 2^53, so it takes the shortest
 * round-trip %g form, which needs 16 digits: 9007199254740992; 2^53 - 1 is an integer.
 */
static void number_formatting(void **state) {
  tctx_t *t = *state;
  const char *args[] = {"--input", t->in,    "--output", t->out,        "--key",
                        "k",       "--time", "t",        "--value",     "v",
                        "--agg",   "avg",    "--window", "tumbling:10", NULL};
  static const char *const want_avg[] = {
      "{\"key\": \"x\", \"window_start\": 0, \"window_end\": 10, \"value\": 1.3333333333333333, \"count\": 3}"};
  static const char *const want_sum[] = {
      "{\"key\": \"y\", \"window_start\": 0, \"window_end\": 10, \"value\": 0.30000000000000004, \"count\": 2}",
      "{\"key\": \"z\", \"window_start\": 0, \"window_end\": 10, \"value\": 9007199254740992, \"count\": 1}",
      "{\"key\": \"w\", \"window_start\": 0, \"window_end\": 10, \"value\": 9007199254740991, \"count\": 1}",
      "{\"key\": \"x\", \"window_start\": 0, \"window_end\": 10, \"value\": 4, \"count\": 3}"};
  static const char x_lines[] =
      "{\"k\":\"x\",\"t\":1,\"v\":1}\n{\"k\":\"x\",\"t\":2,\"v\":1}\n"
      "{\"k\":\"x\",\"t\":3,\"v\":2}\n";

  write_text(t->in, x_lines);
  expect_output(t, args, want_avg, N_OF(want_avg));
  args[11] = "sum";
  char *in = NULL;
  assert_true(asprintf(&in, "%s%s", x_lines,
                       "{\"k\":\"y\",\"t\":1,\"v\":0.1}\n{\"k\":\"y\",\"t\":2,\"v\":0.2}\n"
                       "{\"k\":\"z\",\"t\":1,\"v\":9007199254740992}\n"
                       "{\"k\":\"w\",\"t\":1,\"v\":9007199254740991}\n") > 0);
  write_text(t->in, in);
  free(in);
  expect_output(t, args, want_sum, N_OF(want_sum));
}

/*
 * Keys keep their JSON form: the integer 42, the string "42" and true are three keys.
 * count needs no --value. tumbling:100 puts everything into [0,100).
 */
static void keys_strings_integers_booleans(void **state) {
  tctx_t *t = *state;
  const char *args[] = {"--input", t->in,   "--output", t->out,     "--key",        "dev", "--time",
                        "t",       "--agg", "count",    "--window", "tumbling:100", NULL};
  static const char *const want[] = {
      "{\"key\": 42, \"window_start\": 0, \"window_end\": 100, \"value\": 2, \"count\": 2}",
      "{\"key\": \"42\", \"window_start\": 0, \"window_end\": 100, \"value\": 1, \"count\": 1}",
      "{\"key\": true, \"window_start\": 0, \"window_end\": 100, \"value\": 1, \"count\": 1}",
      "{\"key\": -7, \"window_start\": 0, \"window_end\": 100, \"value\": 1, \"count\": 1}",
      "{\"key\": \"say \\\"hi\\\"\", \"window_start\": 0, \"window_end\": 100, \"value\": 1, \"count\": 1}"};
  write_text(t->in,
             "{\"dev\":42,\"t\":0}\n"
             "{\"dev\":\"42\",\"t\":10}\n"
             "{\"dev\":42,\"t\":20}\n"
             "{\"dev\":true,\"t\":30}\n"
             "{\"t\":40,\"dev\":-7}\n"
             "{\"dev\":\"say \\\"hi\\\"\",\"t\":50}\n");
  run_t r = run_ok(t, args);
  assert_string_equal(r.out, "");
  assert_file_lines(t->out, want, N_OF(want));
  run_free(&r);
}

/* ---------------------------------------------------------------------------------- */
/* Sliding and session windows                                                        */

/* The job of the window tests: input file, results on stdout, sum of "v" per "user". */
#define SUM_PER_USER \
  "--input", t->in, "--key", "user", "--time", "ts", "--value", "v", "--agg", "sum"

/*
 * sliding:1s:500ms, sum. Windows of ts: s = start(ts, 500), then s, s-500, ... while
 * > ts - 1000:
 *   100  -> s=0:    [0,1000), [-500,500)          (-1000 > -900 fails)
 *   600  -> s=500:  [500,1500), [0,1000)          (-500 > -400 fails)
 *   1200 -> s=1000: [1000,2000), [500,1500)       (0 > 200 fails)
 * Sums (v = 1, 2, 4): [-500,500)=1, [0,1000)=3, [500,1500)=6, [1000,2000)=4.
 */
static void sliding_sum(void **state) {
  tctx_t *t = *state;
  const char *args[] = {SUM_PER_USER, "--window", "sliding:1s:500ms", NULL};
  static const char *const want[] = {
      "{\"key\": \"k\", \"window_start\": -500, \"window_end\": 500, \"value\": 1, \"count\": 1}",
      "{\"key\": \"k\", \"window_start\": 0, \"window_end\": 1000, \"value\": 3, \"count\": 2}",
      "{\"key\": \"k\", \"window_start\": 500, \"window_end\": 1500, \"value\": 6, \"count\": 2}",
      "{\"key\": \"k\", \"window_start\": 1000, \"window_end\": 2000, \"value\": 4, \"count\": 1}"};
  expect_stdout(t, args,
                "{\"user\":\"k\",\"ts\":100,\"v\":1}\n"
                "{\"user\":\"k\",\"ts\":600,\"v\":2}\n"
                "{\"user\":\"k\",\"ts\":1200,\"v\":4}\n",
                want, N_OF(want));
}

/*
 * session:1s (gap 1000), sum, watermark after every record.
 *   s@0 -> [0,1000); s@1000 -> [1000,2000) touches it (1000 >= 1000): [0,2000);
 *   s@2000 -> [2000,3000) touches: [0,3000) = {1,2,4}; s@5000 -> [5000,6000) = {8}.
 *   t@0 -> [0,1000); t@1001 -> [1001,2001): 1000 >= 1001 fails, two sessions.
 * Watermarks (D=0): ..., after s@1000 wm=999 fires t's [0,1000) (s's window is already
 * merged into [0,2000)), after s@5000 wm=4999 fires s's [0,3000); the rest at the end.
 */
static void session_touching_windows_merge(void **state) {
  tctx_t *t = *state;
  const char *args[] = {SUM_PER_USER, "--window", "session:1s", "--watermark-interval", "0", NULL};
  static const char *const want[] = {
      "{\"key\": \"s\", \"window_start\": 0, \"window_end\": 3000, \"value\": 7, \"count\": 3}",
      "{\"key\": \"s\", \"window_start\": 5000, \"window_end\": 6000, \"value\": 8, \"count\": 1}",
      "{\"key\": \"t\", \"window_start\": 0, \"window_end\": 1000, \"value\": 16, \"count\": 1}",
      "{\"key\": \"t\", \"window_start\": 1001, \"window_end\": 2001, \"value\": 32, \"count\": 1}"};
  expect_stdout(t, args,
                "{\"user\":\"s\",\"ts\":0,\"v\":1}\n"
                "{\"user\":\"t\",\"ts\":0,\"v\":16}\n"
                "{\"user\":\"s\",\"ts\":1000,\"v\":2}\n"
                "{\"user\":\"t\",\"ts\":1001,\"v\":32}\n"
                "{\"user\":\"s\",\"ts\":2000,\"v\":4}\n"
                "{\"user\":\"s\",\"ts\":5000,\"v\":8}\n",
                want, N_OF(want));
}

/* ---------------------------------------------------------------------------------- */
/* Out-of-orderness, lateness, watermark interval                                     */

/* tumbling:1s sums to --output, late records to --late-output. */
#define LATE_JOB(...)                                                                      \
  {                                                                                        \
    SUM_PER_USER, "--output", t->out, "--window", "tumbling:1s", "--late-output", t->late, \
        __VA_ARGS__, NULL                                                                  \
  }

/* Runs the tool, which must exit 0 with the lines want in --output and exactly late in
 * --late-output. */
static void expect_late(tctx_t *t, const char *const *args, const char *const *want, size_t n,
                        const char *late) {
  expect_output(t, args, want, n);
  char *got = read_text(t->late, NULL);
  assert_non_null(got); /* created even when empty */
  assert_string_equal(got, late);
  free(got);
}

/* A lateness scenario: the input, one option, the windows and the late lines. */
typedef struct late_case {
  const char *option, *value;
  const char *input;
  const char *want[5]; /* NULL-terminated */
  const char *late;
} late_case_t;

/*
 * tumbling:1s, --out-of-orderness 500, watermark after every record, sum:
 *   1 a@1000 v1  -> [1000,2000)          wm = 1000-500-1 = 499
 *   2 a@1800 v2  -> [1000,2000)          wm = 1299
 *   3 a@1200 v4  -> [1000,2000) (cleanup 1999 > 1299: not late), wm stays 1299
 *   4 a@2600 v8  -> [2000,3000)          wm = 2099: fires a [1000,2000) = 7 (3 records)
 *   5 a@1999 v16 -> [1000,2000): cleanup 1999 <= 2099, late; 1999 + 0 <= 2099: dropped
 *   6 b@2100 v32 -> [2000,3000) (cleanup 2999 > 2099)
 *   7 b@500  v64 -> [0,1000): cleanup 999 <= 2099: dropped
 *   end: wm = MAX fires a [2000,3000) = 8 and b [2000,3000) = 32.
 * Lines 5 and 7 go to --late-output byte for byte, in input order (the CR of line 7
 * was its line ending, not data).
 */
static const late_case_t out_of_orderness = {
    "--out-of-orderness",
    "500ms",
    "{\"user\":\"a\",\"ts\":1000,\"v\":1}\n"
    "{\"user\":\"a\",\"ts\":1800,\"v\":2}\n"
    "{\"user\":\"a\",\"ts\":1200,\"v\":4}\n"
    "{\"user\":\"a\",\"ts\":2600,\"v\":8}\n"
    "{ \"user\": \"a\",  \"ts\": 1999, \"v\": 16, \"extra\": [1, 2] }\n"
    "{\"user\":\"b\",\"ts\":2100,\"v\":32}\n"
    "{\"v\":64,\"user\":\"b\",\"ts\":500}\r\n",
    {"{\"key\": \"a\", \"window_start\": 1000, \"window_end\": 2000, \"value\": 7, \"count\": 3}",
     "{\"key\": \"a\", \"window_start\": 2000, \"window_end\": 3000, \"value\": 8, \"count\": 1}",
     "{\"key\": \"b\", \"window_start\": 2000, \"window_end\": 3000, \"value\": 32, \"count\": 1}"},
    "{ \"user\": \"a\",  \"ts\": 1999, \"v\": 16, \"extra\": [1, 2] }\n"
    "{\"v\":64,\"user\":\"b\",\"ts\":500}\n",
};

/*
 * tumbling:1s, --allowed-lateness 1s, D = 0, watermark after every record, sum:
 *   1 a@1000 v1  -> [1000,2000)     wm 999
 *   2 a@2100 v2  -> [2000,3000)     wm 2099: fires [1000,2000) = 1 (1)
 *   3 a@1500 v4  -> [1000,2000): cleanup 1999+1000 = 2999 > 2099, added; max_ts 1999 <=
 *                   wm: fires at once = 5 (2)
 *   4 a@3200 v8  -> [3000,4000)     wm 3199: fires [2000,3000) = 2 (1); [1000,2000) is
 *                   cleaned up (2999 <= 3199)
 *   5 a@1700 v16 -> [1000,2000): cleanup 2999 <= 3199: late; 1700 + 1000 <= 3199: dropped
 *   end: [3000,4000) = 8 (1).
 */
static const late_case_t allowed_lateness = {
    "--allowed-lateness",
    "1s",
    "{\"user\":\"a\",\"ts\":1000,\"v\":1}\n"
    "{\"user\":\"a\",\"ts\":2100,\"v\":2}\n"
    "{\"user\":\"a\",\"ts\":1500,\"v\":4}\n"
    "{\"user\":\"a\",\"ts\":3200,\"v\":8}\n"
    "{\"user\":\"a\",\"ts\":1700,\"v\":16}\n",
    {"{\"key\": \"a\", \"window_start\": 1000, \"window_end\": 2000, \"value\": 1, \"count\": 1}",
     "{\"key\": \"a\", \"window_start\": 1000, \"window_end\": 2000, \"value\": 5, \"count\": 2}",
     "{\"key\": \"a\", \"window_start\": 2000, \"window_end\": 3000, \"value\": 2, \"count\": 1}",
     "{\"key\": \"a\", \"window_start\": 3000, \"window_end\": 4000, \"value\": 8, \"count\": 1}"},
    "{\"user\":\"a\",\"ts\":1700,\"v\":16}\n",
};

/* The scenario with a watermark after every record, at this parallelism. */
static void check_late(tctx_t *t, const late_case_t *c, const char *parallelism) {
  const char *args[] =
      LATE_JOB(c->option, c->value, "--watermark-interval", "0", "--parallelism", parallelism);
  size_t n = 0;
  while (c->want[n]) n++;
  if (strcmp(parallelism, "1") != 0) print_message("%s, parallelism %s\n", c->option, parallelism);
  write_text(t->in, c->input);
  expect_late(t, args, c->want, n, c->late);
}

static void out_of_orderness_drops_late_record_to_late_output(void **state) {
  check_late(*state, &out_of_orderness, "1");
}

/*
 * The same input with --watermark-interval 1h: no periodic watermark is due while the
 * input is read, so the first watermark that moves anything is the end of input and no
 * record is late: a [1000,2000) = 1+2+4+16 = 23 (4), a [2000,3000) = 8, b [0,1000) = 64,
 * b [2000,3000) = 32; the late file is created and empty.
 */
static void long_watermark_interval_makes_nothing_late(void **state) {
  tctx_t *t = *state;
  const char *args[] = LATE_JOB("--out-of-orderness", "500ms", "--watermark-interval", "1h");
  static const char *const want[] = {
      "{\"key\": \"a\", \"window_start\": 1000, \"window_end\": 2000, \"value\": 23, \"count\": 4}",
      "{\"key\": \"a\", \"window_start\": 2000, \"window_end\": 3000, \"value\": 8, \"count\": 1}",
      "{\"key\": \"b\", \"window_start\": 0, \"window_end\": 1000, \"value\": 64, \"count\": 1}",
      "{\"key\": \"b\", \"window_start\": 2000, \"window_end\": 3000, \"value\": 32, \"count\": 1}"};
  write_text(t->in, out_of_orderness.input);
  expect_late(t, args, want, N_OF(want), "");
}

static void allowed_lateness_refires_window(void **state) {
  check_late(*state, &allowed_lateness, "1");
}

/*
 * Watermarks come from the single reader's subtask only (the other subtasks of the
 * reader's chain have no input at all), so which records are late, and which windows
 * fire early, must not change with --parallelism: the two scenarios above, at 2 and 4.
 */
static void lateness_does_not_depend_on_parallelism(void **state) {
  check_late(*state, &out_of_orderness, "2");
  check_late(*state, &allowed_lateness, "2");
  check_late(*state, &out_of_orderness, "4");
  check_late(*state, &allowed_lateness, "4");
}

/* ---------------------------------------------------------------------------------- */
/* Malformed input                                                                    */

/*
 * --on-error fail (the default), watermark after every record, tumbling:1s:
 *   1 a@100 v1; 2 a@1100 v2 -> wm 1099 fires a [0,1000) = 1; 3 has a string time.
 * The job fails at line 3: exit 1, stderr names the line and the field; the window that
 * fired before it is in the output, [1000,2000) never fired.
 */
static void on_error_fail_exits_naming_the_line(void **state) {
  tctx_t *t = *state;
  const char *args[] = {SUM_PER_USER,           "--output", t->out, "--window", "tumbling:1s",
                        "--watermark-interval", "0",        NULL};
  static const char *const want[] = {
      "{\"key\": \"a\", \"window_start\": 0, \"window_end\": 1000, \"value\": 1, \"count\": 1}"};
  write_text(t->in,
             "{\"user\":\"a\",\"ts\":100,\"v\":1}\n"
             "{\"user\":\"a\",\"ts\":1100,\"v\":2}\n"
             "{\"user\":\"a\",\"ts\":\"oops\",\"v\":3}\n"
             "{\"user\":\"a\",\"ts\":5000,\"v\":4}\n");
  run_t r = run_tool(t, args);
  assert_int_equal(r.code, 1);
  assert_non_null(strstr(r.err, "line 3: "));
  assert_non_null(strstr(r.err, "\"ts\""));
  assert_file_lines(t->out, want, N_OF(want));
  run_free(&r);

  /* Not JSON at all, on line 2. */
  write_text(t->in, "{\"user\":\"a\",\"ts\":100,\"v\":1}\nnot json\n");
  r = run_tool(t, args);
  assert_int_equal(r.code, 1);
  assert_non_null(strstr(r.err, "line 2: malformed JSON"));
  run_free(&r);
}

/* Line by line: 2 not JSON, 3 no time, 4 not an object, 5 object key, 6 string value,
 * 8 blank (not an event, not an error), 9 real key. Lines 1 and 7 are the events. */
static const char bad_input[] =
    "{\"user\":\"a\",\"ts\":100,\"v\":1}\n"
    "not json\n"
    "{\"user\":\"a\",\"v\":5}\n"
    "[1,2]\n"
    "{\"user\":{\"x\":1},\"ts\":200,\"v\":1}\n"
    "{\"user\":\"a\",\"ts\":300,\"v\":\"7\"}\n"
    "{\"user\":\"a\",\"ts\":1100,\"v\":2}\n"
    "\n"
    "{\"user\":1.5,\"ts\":300,\"v\":7}\n";

static const char *const bad_want[] = {
    "{\"key\": \"a\", \"window_start\": 0, \"window_end\": 1000, \"value\": 1, \"count\": 1}",
    "{\"key\": \"a\", \"window_start\": 1000, \"window_end\": 2000, \"value\": 2, \"count\": 1}"};

/* Runs the job on bad_input with --on-error mode (and --parallelism, unless NULL): exit
 * 0, the good lines' windows on stdout; returns stderr (the caller frees). */
static char *run_on_bad_input(tctx_t *t, const char *mode, const char *parallelism) {
  const char *args[] = {SUM_PER_USER, "--window", "tumbling:1s",
                        "--on-error", mode,       parallelism ? "--parallelism" : NULL,
                        parallelism,  NULL};
  write_text(t->in, bad_input);
  run_t r = run_ok(t, args);
  assert_text_lines("stdout", r.out, bad_want, N_OF(bad_want));
  free(r.out);
  return r.err;
}

static void on_error_skip_drops_and_counts(void **state) {
  char *err = run_on_bad_input(*state, "skip", NULL);
  assert_non_null(strstr(err, "flink-agg: skipped 6 malformed lines\n"));
  free(err);
}

static void on_error_dead_letter_writes_bad_lines_unchanged(void **state) {
  tctx_t *t = *state;
  char opt[PATH_MAX + 16];
  snprintf(opt, sizeof(opt), "dead-letter:%s", t->dead);
  free(run_on_bad_input(t, opt, "2"));
  char *dead = read_text(t->dead, NULL);
  assert_non_null(dead);
  assert_string_equal(dead,
                      "not json\n"
                      "{\"user\":\"a\",\"v\":5}\n"
                      "[1,2]\n"
                      "{\"user\":{\"x\":1},\"ts\":200,\"v\":1}\n"
                      "{\"user\":\"a\",\"ts\":300,\"v\":\"7\"}\n"
                      "{\"user\":1.5,\"ts\":300,\"v\":7}\n");
  free(dead);
}

/*
 * A time field of INT64_MIN is the library's "no timestamp", not an event time: it is a
 * bad line for --on-error (it used to reach the window as a record without a timestamp
 * and fail the job under every policy, naming no line). INT64_MIN + 1 is an event time.
 */
static void time_at_int64_min_follows_on_error(void **state) {
  tctx_t *t = *state;
  char opt[PATH_MAX + 16];
  const char *skip[] = {"--input", "-",        "--key",       "user",       "--time", "ts", "--agg",
                        "count",   "--window", "tumbling:1s", "--on-error", "skip",   NULL};
  const char *fail[] = {"--input", "-",     "--key",    "user",        "--time", "ts",
                        "--agg",   "count", "--window", "tumbling:1s", NULL};
  const char *dead[] = {"--input", "-",        "--key",       "user",       "--time", "ts", "--agg",
                        "count",   "--window", "tumbling:1s", "--on-error", opt,      NULL};
  static const char *const want[] = {
      "{\"key\": \"c\", \"window_start\": -9223372036854775808, \"window_end\": "
      "-9223372036854775000, \"value\": 1, \"count\": 1}",
      "{\"key\": \"a\", \"window_start\": 0, \"window_end\": 1000, \"value\": 1, \"count\": 1}"};
  run_t r;
  char *got;
  write_text(t->in,
             "{\"user\":\"c\",\"ts\":-9223372036854775807}\n"
             "{\"user\":\"a\",\"ts\":1}\n"
             "{\"user\":\"b\",\"ts\":-9223372036854775808}\n");
  run_skips_one(t, skip, want, N_OF(want));

  r = run_tool(t, fail);
  assert_int_equal(r.code, 1);
  if (strstr(r.err, "line 3: ") == NULL || strstr(r.err, "-9223372036854775808") == NULL)
    fail_msg("stderr: %s", r.err);
  run_free(&r);

  snprintf(opt, sizeof(opt), "dead-letter:%s", t->dead);
  r = run_tool(t, dead);
  assert_int_equal(r.code, 0);
  assert_text_lines("stdout", r.out, want, N_OF(want));
  got = read_text(t->dead, NULL);
  assert_non_null(got);
  assert_string_equal(got, "{\"user\":\"b\",\"ts\":-9223372036854775808}\n");
  free(got);
  run_free(&r);
}

/*
 * A line longer than the limit follows --on-error like any bad line (it failed the job
 * under every policy). Line 2 is 17 MiB, over the default 16 MiB: skipped and counted;
 * dead-lettered as its first 4096 bytes; with fail, the job stops naming line 2. With
 * --max-line-bytes 100 a 150-byte line is over the limit too.
 */
static void over_long_line_follows_on_error(void **state) {
  tctx_t *t = *state;
  const size_t big = 17u << 20;
  char opt[PATH_MAX + 16];
  const char *skip[] = {"--input", t->in,      "--key",       "user",       "--time", "ts", "--agg",
                        "count",   "--window", "tumbling:1s", "--on-error", "skip",   NULL};
  const char *dead[] = {"--input", t->in,      "--key",       "user",       "--time", "ts", "--agg",
                        "count",   "--window", "tumbling:1s", "--on-error", opt,      NULL};
  const char *fail[] = {"--input", t->in,   "--key",    "user",        "--time", "ts",
                        "--agg",   "count", "--window", "tumbling:1s", NULL};
  const char *small[] = {
      "--input",    t->in,   "--key",    "user",        "--time",           "ts",
      "--agg",      "count", "--window", "tumbling:1s", "--max-line-bytes", "100",
      "--on-error", "skip",  NULL};
  static const char *const want[] = {
      "{\"key\": \"a\", \"window_start\": 0, \"window_end\": 1000, \"value\": 2, \"count\": 2}"};
  char *data = malloc(big + 128), *got;
  size_t len = 0;
  FILE *f;
  run_t r;

  len += (size_t)sprintf(data, "{\"user\":\"a\",\"ts\":1}\n{\"user\":\"");
  memset(data + len, 'x', big);
  len += big;
  len += (size_t)sprintf(data + len, "\",\"ts\":2}\n{\"user\":\"a\",\"ts\":3}\n");
  f = fopen(t->in, "wb");
  assert_non_null(f);
  assert_int_equal(fwrite(data, 1, len, f), len);
  assert_int_equal(fclose(f), 0);

  run_skips_one(t, skip, want, N_OF(want));

  snprintf(opt, sizeof(opt), "dead-letter:%s", t->dead);
  r = run_tool(t, dead);
  assert_int_equal(r.code, 0);
  assert_text_lines("stdout", r.out, want, N_OF(want));
  assert_non_null(strstr(r.err, "1 dead-lettered lines were longer than 16777216 bytes"));
  got = read_text(t->dead, NULL);
  assert_non_null(got);
  assert_int_equal(strlen(got), 4097);
  assert_memory_equal(got, data + 20, 4096); /* the line as read, from its start */
  assert_int_equal(got[4096], '\n');
  free(got);
  run_free(&r);

  r = run_tool(t, fail);
  assert_int_equal(r.code, 1);
  if (strstr(r.err, "line 2 is longer than 16777216 bytes") == NULL) fail_msg("stderr: %s", r.err);
  run_free(&r);

  len = (size_t)sprintf(data, "{\"user\":\"a\",\"ts\":1}\n{\"user\":\"%0150d\",\"ts\":2}\n", 7);
  len += (size_t)sprintf(data + len, "{\"user\":\"a\",\"ts\":3}\n");
  write_text(t->in, data);
  run_skips_one(t, small, want, N_OF(want));
  free(data);
}

/* ---------------------------------------------------------------------------------- */
/* Usage errors                                                                       */

/* A valid command line, then the options of a case. */
#define JOB "--input", "x", "--key", "k", "--time", "t", "--value", "v", "--agg", "sum"
#define JOB_1S JOB, "--window", "tumbling:1s"

static void bad_usage_exits_2_naming_the_option(void **state) {
  static const usage_case_t cases[] = {
      {{"--input", "x", "--key", "k", "--time", "t", "--value", "v", "--agg", "median", "--window",
        "tumbling:1s", NULL},
       {"--agg", "median"}},
      {{JOB, "--window", "hopping:5s", NULL}, {"--window", "hopping:5s"}},
      {{JOB, "--window", "tumbling:0", NULL}, {"--window", "tumbling:0"}},
      {{JOB, "--window", "sliding:5s", NULL}, {"--window", "sliding:5s"}},
      {{JOB_1S, "--out-of-orderness", "5x", NULL}, {"--out-of-orderness", "5x"}},
      {{JOB_1S, "--allowed-lateness", "-1s", NULL}, {"--allowed-lateness", "-1s"}},
      {{JOB_1S, "--watermark-interval", "soon", NULL}, {"--watermark-interval", "soon"}},
      {{"--key", "k", "--time", "t", "--value", "v", "--agg", "sum", "--window", "tumbling:1s",
        NULL},
       {"--input", NULL}},
      {{"--input", "x", "--key", "k", "--time", "t", "--agg", "sum", "--window", "tumbling:1s",
        NULL},
       {"--value", NULL}},
      {{JOB_1S, "--parallelism", "0", NULL}, {"--parallelism", "'0'"}},
      {{JOB_1S, "--on-error", "retry", NULL}, {"--on-error", "retry"}},
      {{JOB_1S, "--bogus", "1", NULL}, {"--bogus", NULL}},
      {{JOB_1S, "--output", "o", "--late-output", "o", NULL}, {"--late-output", "'o'"}},
      {{JOB, "--window", NULL}, {"--window", "needs a value"}},
      {{JOB_1S, "--accept-duplicates", "true", NULL},
       {"--accept-duplicates applies to an exactly-once Kafka output", NULL}},
      {{JOB_1S, "--accept-duplicates", "maybe", NULL}, {"--accept-duplicates", "'maybe'"}},
      {{JOB_1S, "--max-line-bytes", "0", NULL}, {"--max-line-bytes", "'0'"}},
      {{JOB_1S, "--max-line-bytes", "2gb", NULL}, {"--max-line-bytes", "'2gb'"}},
      {{JOB_1S, "--max-line-bytes", "12 parsecs", NULL}, {"--max-line-bytes", "'12 parsecs'"}},
  };
  expect_usage_errors(*state, cases, N_OF(cases));
}

/*
 * --set reaches any configuration key and wins over the tool's own settings: with
 * --watermark-interval 1h nothing of late_input is late, but --set
 * pipeline.auto-watermark-interval=0 after it gives the watermark after every record,
 * and the results and late lines of check_out_of_orderness. Bad keys and values are
 * refused with the library's message (exit 2).
 */
static void set_reaches_any_configuration_key(void **state) {
  tctx_t *t = *state;
  const char *args[] = {"--input",
                        t->in,
                        "--output",
                        t->out,
                        "--key",
                        "user",
                        "--time",
                        "ts",
                        "--value",
                        "v",
                        "--agg",
                        "sum",
                        "--window",
                        "tumbling:1s",
                        "--out-of-orderness",
                        "500ms",
                        "--watermark-interval",
                        "1h",
                        "--late-output",
                        t->late,
                        "--set",
                        "pipeline.auto-watermark-interval=0",
                        "--set=execution.checkpointing.tolerable-failed-checkpoints=3",
                        NULL};
  static const char *const want[] = {
      "{\"key\": \"a\", \"window_start\": 1000, \"window_end\": 2000, \"value\": 7, \"count\": 3}",
      "{\"key\": \"a\", \"window_start\": 2000, \"window_end\": 3000, \"value\": 8, \"count\": 1}",
      "{\"key\": \"b\", \"window_start\": 2000, \"window_end\": 3000, \"value\": 32, \"count\": 1}"};
  static const usage_case_t bad[] = {
      {{"--input", "x", "--key", "k", "--time", "t", "--agg", "count", "--window", "tumbling:1s",
        "--set", "paralelism=2", NULL},
       {"--set: unknown configuration key \"paralelism\"", "did you mean \"parallelism\""}},
      {{"--input", "x", "--key", "k", "--time", "t", "--agg", "count", "--window", "tumbling:1s",
        "--set", "state.backend.incremental=maybe", NULL},
       {"--set: configuration key \"state.backend.incremental\"", "\"maybe\""}},
      {{"--input", "x", "--key", "k", "--time", "t", "--agg", "count", "--window", "tumbling:1s",
        "--set", "parallelism", NULL},
       {"--set takes KEY=VALUE", "'parallelism'"}},
  };
  run_t r;
  char *got, *late;
  write_text(t->in, out_of_orderness.input);
  r = run_ok(t, args);
  got = read_text(t->out, NULL);
  assert_non_null(got);
  assert_text_lines("output", got, want, N_OF(want));
  late = read_text(t->late, NULL);
  assert_non_null(late);
  assert_string_equal(late,
                      "{ \"user\": \"a\",  \"ts\": 1999, \"v\": 16, \"extra\": [1, 2] }\n"
                      "{\"v\":64,\"user\":\"b\",\"ts\":500}\n");
  free(late);
  free(got);
  run_free(&r);
  for (size_t i = 0; i < N_OF(bad); i++) {
    r = run_tool(t, bad[i].args);
    if (r.code != 2 || strstr(r.err, bad[i].must_name[0]) == NULL ||
        strstr(r.err, bad[i].must_name[1]) == NULL)
      fail_msg("case %zu: exit %d, stderr: %s", i, r.code, r.err);
    run_free(&r);
  }
}

/*
 * -X KEY=VALUE reaches the librdkafka configuration of every Kafka client (the library
 * checks each property when the job is built, so no broker is needed to see it), and a
 * secret's value is never shown: not by the library, not by the tool's own message for
 * an -X without '='.
 */
static void kafka_properties_reach_every_client_and_secrets_stay_hidden(void **state) {
  tctx_t *t = *state;
  static const usage_case_t cases[] = {
      /* exit 1: the library refused the property of the source... */
      {{"--input", "kafka:in", "--brokers", "127.0.0.1:9", "--bounded", "true", "--key", "k",
        "--time", "t", "--agg", "count", "--window", "tumbling:1s", "-X",
        "no.such.password=hunter2", NULL},
       {"input: unknown librdkafka property 'no.such.password'", NULL}},
      /* ... of a sink (-XKEY=VALUE, as kcat accepts it too) */
      {{"--input", "-", "--output", "kafka:out", "--brokers", "127.0.0.1:9", "--key", "k", "--time",
        "t", "--agg", "count", "--window", "tumbling:1s", "-Xsocket.timeout.ms=abc", NULL},
       {"invalid value for librdkafka property 'socket.timeout.ms'", "'output'"}},
      /* exit 2: the tool's own checks */
      {{"--input", "kafka:in", "--brokers", "127.0.0.1:9", "--key", "k", "--time", "t", "--agg",
        "count", "--window", "tumbling:1s", "-X", "sasl.password:hunter2", NULL},
       {"-X takes KEY=VALUE", "has no '='"}},
      {{"--input", "x", "--key", "k", "--time", "t", "--agg", "count", "--window", "tumbling:1s",
        "-X", "security.protocol=SSL", NULL},
       {"-X (librdkafka properties) applies to kafka:TOPIC", NULL}},
  };
  for (size_t i = 0; i < N_OF(cases); i++) {
    run_t r = run_tool(t, cases[i].args);
    int want = i < 2 ? 1 : 2;
    if (r.code != want || strstr(r.err, cases[i].must_name[0]) == NULL ||
        (cases[i].must_name[1] != NULL && strstr(r.err, cases[i].must_name[1]) == NULL) ||
        strstr(r.err, "hunter2") != NULL)
      fail_msg("case %zu: exit %d (want %d), stderr: %s", i, r.code, want, r.err);
    run_free(&r);
  }
}

static void missing_input_file_fails_naming_it(void **state) {
  tctx_t *t = *state;
  char path[PATH_MAX + 16];
  const char *args[] = {"--input", path,    "--key",    "k",           "--time", "t",
                        "--agg",   "count", "--window", "tumbling:1s", NULL};
  snprintf(path, sizeof(path), "%s/nope.jsonl", t->dir);
  run_t r = run_tool(t, args);
  assert_int_equal(r.code, 1);
  assert_non_null(strstr(r.err, path));
  run_free(&r);
}

/* ---------------------------------------------------------------------------------- */
/* Generated input                                                                    */

#define GEN_KEYS 60

typedef struct gen_event {
  int key; /* even: string "k<n>", odd: integer n */
  int64_t ts;
  int64_t v;
} gen_event_t;

static void gen_key_json(int key, char *buf, size_t size) {
  if (key % 2 == 0)
    snprintf(buf, size, "\"k%d\"", key);
  else
    snprintf(buf, size, "%d", key);
}

/*
 * n events from seed, written to the file at path: event i has ts = 7 i + jitter,
 * jitter in [0, 300), and the jobs use --out-of-orderness 300: the watermark after
 * event i is at most 7 i + 299 - 301 < 7 (i + 1), below every later timestamp, so no
 * record is ever late and the result depends neither on when watermarks travel nor on
 * restarts. Values are small integers so sums are exact in any order.
 */
static gen_event_t *gen_events(size_t n, uint64_t seed, const char *path) {
  gen_event_t *ev = calloc(n, sizeof(*ev));
  FILE *f = fopen(path, "wb");
  uint64_t x = seed;
  char key[32];
  assert_non_null(ev);
  assert_non_null(f);
  for (size_t i = 0; i < n; i++) {
    x = x * 6364136223846793005ull + 1442695040888963407ull;
    ev[i].key = (int)((x >> 33) % GEN_KEYS);
    ev[i].ts = 7 * (int64_t)i + (int64_t)((x >> 20) % 300);
    ev[i].v = (int64_t)((x >> 45) % 101) - 50;
    gen_key_json(ev[i].key, key, sizeof(key));
    fprintf(f, "{\"id\":%zu,\"key\":%s,\"ts\":%" PRId64 ",\"amount\":%" PRId64 "}\n", i, key,
            ev[i].ts, ev[i].v);
  }
  assert_int_equal(fclose(f), 0);
  return ev;
}

static void push_result(lines_t *l, int key, int64_t start, int64_t end, int64_t v, size_t count) {
  char k[32], value[32];
  gen_key_json(key, k, sizeof(k));
  snprintf(value, sizeof(value), "%" PRId64, v);
  char *s = result(k, start, end, value, (int)count);
  lines_push(l, s, strlen(s));
  free(s);
}

static int cmp_ev(const void *a, const void *b) {
  const gen_event_t *x = a, *y = b;
  if (x->key != y->key) return x->key < y->key ? -1 : 1;
  return x->ts < y->ts ? -1 : x->ts > y->ts;
}

/* A copy of the events sorted by key and time. */
static gen_event_t *sorted_events(const gen_event_t *ev, size_t n) {
  gen_event_t *s = malloc(n * sizeof(*s));
  assert_non_null(s);
  memcpy(s, ev, n * sizeof(*s));
  qsort(s, n, sizeof(*s), cmp_ev);
  return s;
}

/* Tumbling sums of `size` ms, straight from the definition: start = ts - ts mod size. */
static void expect_tumbling(const gen_event_t *ev_in, size_t n, int64_t size, lines_t *out) {
  gen_event_t *ev = sorted_events(ev_in, n);
  for (size_t i = 0; i < n;) {
    int64_t start = ev[i].ts - ev[i].ts % size, sum = 0;
    size_t j = i;
    for (; j < n && ev[j].key == ev[i].key && ev[j].ts - ev[j].ts % size == start; j++)
      sum += ev[j].v;
    push_result(out, ev[i].key, start, start + size, sum, j - i);
    i = j;
  }
  free(ev);
}

/* Sessions with gap 40 ms, max: per key, in time order, a new session when the next
 * event is after the current session's end (touching merges: ts == end joins). */
static void expect_sessions(const gen_event_t *ev_in, size_t n, lines_t *out) {
  gen_event_t *ev = sorted_events(ev_in, n);
  for (size_t i = 0; i < n;) {
    int64_t end = ev[i].ts + 40, max = ev[i].v;
    size_t j = i + 1;
    for (; j < n && ev[j].key == ev[i].key && ev[j].ts <= end; j++) {
      if (ev[j].ts + 40 > end) end = ev[j].ts + 40;
      if (ev[j].v > max) max = ev[j].v;
    }
    push_result(out, ev[i].key, ev[i].ts, end, max, j - i);
    i = j;
  }
  free(ev);
}

static void run_generated(tctx_t *t, const char *window, const char *agg, const char *par,
                          const char *wm_interval, const lines_t *want) {
  const char *args[] = {"--input",
                        t->in,
                        "--output",
                        t->out,
                        "--key",
                        "key",
                        "--time",
                        "ts",
                        "--value",
                        "amount",
                        "--agg",
                        agg,
                        "--window",
                        window,
                        "--out-of-orderness",
                        "300",
                        "--parallelism",
                        par,
                        "--watermark-interval",
                        wm_interval,
                        NULL};
  expect_output(t, args, (const char *const *)want->v, want->n);
}

#define GEN_EVENTS 4000

static void parallelism_1_2_4_give_identical_results(void **state) {
  tctx_t *t = *state;
  gen_event_t *ev = gen_events(GEN_EVENTS, 0x9E3779B97F4A7C15ull, t->in);
  lines_t tl = {0}, sl = {0};
  expect_tumbling(ev, GEN_EVENTS, 250, &tl);
  expect_sessions(ev, GEN_EVENTS, &sl);
  static const char *const pars[] = {"1", "2", "4"};

  /* Enough windows and merges for the comparison to mean something. */
  assert_true(tl.n > 1000);
  assert_true(sl.n > 1000 && sl.n < GEN_EVENTS);
  for (size_t i = 0; i < N_OF(pars); i++) {
    run_generated(t, "tumbling:250", "sum", pars[i], "0", &tl);
    run_generated(t, "session:40", "max", pars[i], "200ms", &sl);
  }
  lines_free(&tl);
  lines_free(&sl);
  free(ev);
}

/* ---------------------------------------------------------------------------------- */
/* Durability: checkpoints, kill and resume; savepoint on exit, start from it          */
/*
 * The durable runs read from a FIFO the test feeds, so a run cannot end before the test
 * lets it; afterwards the FIFO is replaced by a regular file holding the whole input at
 * the same path (the lines source seeks back only in a regular file) and the next run
 * resumes. Output goes to a directory: the exactly-once file sink commits part-* files,
 * and the committed lines of all runs together must equal, as a sorted multiset, the
 * windows computed here from the input (and the output of an uninterrupted run).
 * The input is generated (gen_events): no record is ever late.
 */

#define DUR_EVENTS 80000
#define DUR_DEADLINE_S 20

typedef struct dur_ctx {
  char *input; /* the whole input */
  size_t len;
  lines_t want; /* the expected lines */
  char full[PATH_MAX], fifo[PATH_MAX], outdir[PATH_MAX], ckpt[PATH_MAX], sp[PATH_MAX];
  char err[PATH_MAX], out[PATH_MAX];
} dur_ctx_t;

/* Generates the input and the expected tumbling:250 sums. */
static void dur_setup(tctx_t *t, dur_ctx_t *d) {
  memset(d, 0, sizeof(*d));
  snprintf(d->full, sizeof(d->full), "%s/full.jsonl", t->dir);
  snprintf(d->fifo, sizeof(d->fifo), "%s/fifo.jsonl", t->dir);
  snprintf(d->outdir, sizeof(d->outdir), "%s/results/", t->dir); /* created by the sink */
  snprintf(d->ckpt, sizeof(d->ckpt), "%s/checkpoints", t->dir);
  snprintf(d->sp, sizeof(d->sp), "%s/savepoint", t->dir);
  snprintf(d->out, sizeof(d->out), "%s/durable.stdout", t->dir);
  snprintf(d->err, sizeof(d->err), "%s/durable.stderr", t->dir);
  gen_event_t *ev = gen_events(DUR_EVENTS, 0x2545F4914F6CDD1Dull, d->full);
  expect_tumbling(ev, DUR_EVENTS, 250, &d->want);
  free(ev);
  d->input = read_text(d->full, &d->len);
  assert_non_null(d->input);
  assert_int_equal(mkfifo(d->fifo, 0644), 0);
}

static void dur_free(dur_ctx_t *d) {
  lines_free(&d->want);
  free(d->input);
}

/* Starts the tool on the FIFO (stdin from /dev/null: a FIFO as stdin would block the
 * start) and opens the FIFO for writing. */
static pid_t dur_start(tctx_t *t, dur_ctx_t *d, const char *const *args, int *fd) {
  char *argv[64];
  pid_t pid = start_program(tool_argv(t, args, argv, N_OF(argv)), NULL, d->out, d->err);
  *fd = open_fifo_writer(d->fifo, pid, d->err, DUR_DEADLINE_S);
  return pid;
}

/* The next run reads the whole input as a regular file at the FIFO's path. */
static void dur_replace_fifo(dur_ctx_t *d) {
  assert_int_equal(unlink(d->fifo), 0);
  assert_int_equal(link(d->full, d->fifo), 0);
}

static void dur_assert_committed_all(dur_ctx_t *d) {
  lines_t got = {0};
  lines_add_committed(&got, d->outdir);
  assert_same_lines("committed output", &got, (const char *const *)d->want.v, d->want.n);
  lines_free(&got);
}

/* Runs the tool to its end: exit 0, and stderr holds says. */
static void dur_run_to_end(tctx_t *t, const char *const *args, const char *says) {
  run_t r = run_ok(t, args);
  if (!strstr(r.err, says)) fail_msg("stderr lacks '%s': %s", says, r.err);
  run_free(&r);
}

#define DUR_JOB_ARGS                                                                               \
  "--key", "key", "--time", "ts", "--value", "amount", "--agg", "sum", "--window", "tumbling:250", \
      "--out-of-orderness", "300", "--watermark-interval", "0", "--parallelism", "2"
#define DUR_FROM_FIFO "--input", d.fifo, "--output", d.outdir, DUR_JOB_ARGS

/*
 * --checkpoint-dir: the run is killed with SIGKILL after a checkpoint committed output
 * and more input was fed; the same command then resumes from the newest checkpoint and
 * the committed output is exactly the expected one. An uninterrupted run without
 * checkpoints gives the same lines.
 */
static void checkpoint_kill_and_resume_commits_exactly_once(void **state) {
  tctx_t *t = *state;
  dur_ctx_t d;
  dur_setup(t, &d);
  const char *plain[] = {"--input", d.full, "--output", t->out, DUR_JOB_ARGS, NULL};
  const char *durable[] = {DUR_FROM_FIFO, "--state-backend",       "rocksdb", "--checkpoint-dir",
                           d.ckpt,        "--checkpoint-interval", "50ms",    NULL};
  expect_output(t, plain, (const char *const *)d.want.v, d.want.n);

  int fd;
  pid_t pid = dur_start(t, &d, durable, &fd);
  write_all(fd, d.input, d.len * 2 / 5);
  int64_t deadline = deadline_in(DUR_DEADLINE_S * 1000);
  while (count_committed(d.outdir) == 0) {
    assert_running(pid, d.err);
    if (mono_ms() > deadline)
      fail_msg("no checkpoint committed output within %d s", DUR_DEADLINE_S);
    pause_ms(5);
  }
  write_all(fd, d.input + d.len * 2 / 5, d.len * 7 / 10 - d.len * 2 / 5);
  assert_int_equal(kill(pid, SIGKILL), 0);
  assert_int_equal(wait_program(pid), KILLED_BY(SIGKILL));
  close(fd);

  dur_replace_fifo(&d);
  dur_run_to_end(t, durable, "flink: restoring checkpoint ");
  dur_assert_committed_all(&d);
  dur_free(&d);
}

/* Stops the run with SIGTERM; it must exit with status. Returns its stderr. */
static char *dur_sigterm(dur_ctx_t *d, pid_t pid, int fd, int status) {
  assert_running(pid, d->err);
  assert_int_equal(kill(pid, SIGTERM), 0);
  assert_int_equal(wait_program(pid), status);
  close(fd);
  char *err = read_text(d->err, NULL);
  assert_non_null(err);
  return err;
}

/* The names the pending files of dir will be committed as (at most max of them). */
static size_t pending_files(const char *dir, char names[][64], size_t max) {
  size_t n = 0;
  DIR *dh = opendir(dir);
  struct dirent *e;
  assert_non_null(dh);
  while ((e = readdir(dh)) != NULL) {
    size_t len = strlen(e->d_name);
    if (len > 14 && strncmp(e->d_name, ".part-", 6) == 0 &&
        strcmp(e->d_name + len - 8, ".pending") == 0) {
      assert_true(n < max);
      snprintf(names[n++], 64, "%.*s", (int)(len - 9), e->d_name + 1);
    }
  }
  closedir(dh);
  return n;
}

/*
 * --savepoint-on-exit: SIGTERM takes a savepoint and stops (exit 128 + 15); a run with
 * --from-savepoint (and another state backend: savepoints are canonical) commits what
 * the savepoint pre-committed and goes on to the end. Both runs use a checkpoint
 * directory with a long interval, so the only checkpoints are the first one (triggered
 * at the start) and the final one; the second run must prefer the
 * savepoint, which is newer than the first run's checkpoint. Running its command once
 * more finds its final checkpoint, newer than the savepoint, and resumes from it: the
 * output stays exactly the expected one.
 */
static void savepoint_on_exit_then_from_savepoint_commits_exactly_once(void **state) {
  tctx_t *t = *state;
  dur_ctx_t d;
  dur_setup(t, &d);
  const char *first[] = {DUR_FROM_FIFO, "--state-backend",
                         "rocksdb",     "--checkpoint-dir",
                         d.ckpt,        "--checkpoint-interval",
                         "1h",          "--savepoint-on-exit",
                         d.sp,          NULL};
  const char *second[] = {DUR_FROM_FIFO, "--state-backend",
                          "hashmap",     "--checkpoint-dir",
                          d.ckpt,        "--checkpoint-interval",
                          "1h",          "--from-savepoint",
                          d.sp,          NULL};
  char manifest[PATH_MAX + 16];

  int fd;
  pid_t pid = dur_start(t, &d, first, &fd);
  /* Once written, all but a pipe buffer of it has been read by the job. */
  write_all(fd, d.input, d.len * 2 / 5);
  char *err = dur_sigterm(&d, pid, fd, 128 + SIGTERM);
  if (strstr(err, "flink-agg: savepoint written to ") == NULL) fail_msg("stderr: %s", err);
  assert_non_null(strstr(err, "flink-agg: stopped by signal 15"));
  free(err);
  snprintf(manifest, sizeof(manifest), "%s/_manifest", d.sp);
  assert_int_equal(access(manifest, F_OK), 0);
  /* What the savepoint pre-committed: pending files, which only a restore from it
   * commits (a run from scratch would leave them and write their lines again). */
  char pending[8][64];
  size_t n_pending = pending_files(d.outdir, pending, 8);
  assert_true(n_pending > 0);

  dur_replace_fifo(&d);
  dur_run_to_end(t, second, "flink: restoring savepoint ");
  dur_assert_committed_all(&d);
  for (size_t i = 0; i < n_pending; i++) {
    char committed[2 * PATH_MAX];
    snprintf(committed, sizeof(committed), "%s%s", d.outdir, pending[i]);
    if (access(committed, F_OK) != 0)
      fail_msg("the savepoint's pending file was not committed as %s", committed);
  }

  dur_run_to_end(t, second, "flink: restoring checkpoint ");
  dur_assert_committed_all(&d);
  dur_free(&d);
}

/*
 * A line over --max-line-bytes at a fifth of the input, with --on-error skip and
 * checkpoints: the run is killed after a checkpoint taken once the source had passed
 * the line, and resumed with --on-error fail. The resumed run starts behind the bad
 * line, so it ends well, and the committed output is exactly the expected one (a run
 * that failed on the line, or a position before it, would fail on every resume).
 */
static void resume_after_a_skipped_long_line_does_not_meet_it_again(void **state) {
  tctx_t *t = *state;
  dur_ctx_t d;
  dur_setup(t, &d);
  const char *first[] = {"--input",    d.fifo,
                         "--output",   d.outdir,
                         DUR_JOB_ARGS, "--checkpoint-dir",
                         d.ckpt,       "--checkpoint-interval",
                         "50ms",       "--max-line-bytes",
                         "1kb",        "--on-error",
                         "skip",       NULL};
  const char *second[] = {"--input",    d.fifo,
                          "--output",   d.outdir,
                          DUR_JOB_ARGS, "--checkpoint-dir",
                          d.ckpt,       "--checkpoint-interval",
                          "50ms",       "--max-line-bytes",
                          "1kb",        "--on-error",
                          "fail",       NULL};
  /* The input with a 2000-byte line after the line that ends past a fifth of it. */
  size_t cut = (size_t)(strchr(d.input + d.len / 5, '\n') - d.input) + 1;
  char *input = malloc(d.len + 2100);
  assert_non_null(input);
  memcpy(input, d.input, cut);
  memset(input + cut, 'x', 2000);
  input[cut + 2000] = '\n';
  memcpy(input + cut + 2001, d.input + cut, d.len - cut);
  input[d.len + 2001] = '\0';
  free(d.input);
  d.input = input;
  d.len += 2001;
  write_text(d.full, d.input);

  int fd;
  pid_t pid = dur_start(t, &d, first, &fd);
  /* Returns when the job has read all but a pipe buffer (64 KiB) of it: past the line. */
  write_all(fd, d.input, d.len * 2 / 5);
  int64_t seen = newest_checkpoint(d.ckpt);
  int64_t deadline = deadline_in(DUR_DEADLINE_S * 1000);
  /* The next checkpoint may have begun before; the one after it began after the line. */
  while (newest_checkpoint(d.ckpt) < seen + 2) {
    assert_running(pid, d.err);
    if (mono_ms() > deadline) fail_msg("no checkpoint completed within %d s", DUR_DEADLINE_S);
    pause_ms(5);
  }
  assert_int_equal(kill(pid, SIGKILL), 0);
  assert_int_equal(wait_program(pid), KILLED_BY(SIGKILL));
  close(fd);

  dur_replace_fifo(&d);
  run_t r = run_ok(t, second);
  assert_non_null(strstr(r.err, "flink: restoring checkpoint "));
  run_free(&r);
  dur_assert_committed_all(&d);
  dur_free(&d);
}

/* A savepoint that cannot be written (its directory was filled meanwhile) still stops
 * the job, and the exit status says it failed: 1, not 128 + 15. */
static void failed_savepoint_on_exit_exits_1(void **state) {
  tctx_t *t = *state;
  dur_ctx_t d;
  char blocker[PATH_MAX + 16];
  dur_setup(t, &d);
  const char *args[] = {DUR_FROM_FIFO, "--savepoint-on-exit", d.sp, NULL};
  int fd;
  pid_t pid = dur_start(t, &d, args, &fd);
  write_all(fd, d.input, d.len / 10);
  assert_int_equal(mkdir(d.sp, 0755), 0);
  snprintf(blocker, sizeof(blocker), "%s/not-empty", d.sp);
  write_text(blocker, "x");
  char *err = dur_sigterm(&d, pid, fd, 1);
  if (strstr(err, "flink-agg: no savepoint: ") == NULL ||
      strstr(err, "flink-agg: stopped by signal 15") == NULL)
    fail_msg("stderr: %s", err);
  free(err);
  dur_free(&d);
}

static void durable_options_usage_errors(void **state) {
  tctx_t *t = *state;
  char sp[PATH_MAX], blocker[PATH_MAX + 16];
  snprintf(sp, sizeof(sp), "%s/old-savepoint", t->dir);
  snprintf(blocker, sizeof(blocker), "%s/x", sp);
  assert_int_equal(mkdir(sp, 0755), 0);
  write_text(blocker, "x");
#define COUNT_1S \
  "--input", "x", "--key", "k", "--time", "t", "--agg", "count", "--window", "tumbling:1s"
  const usage_case_t cases[] = {
      {{COUNT_1S, "--state-backend", "leveldb", NULL}, {"--state-backend", "leveldb"}},
      {{COUNT_1S, "--checkpoint-interval", "1s", NULL},
       {"--checkpoint-interval needs --checkpoint-dir", NULL}},
      {{COUNT_1S, "--checkpoint-dir", "c", "--checkpoint-interval", "0", NULL},
       {"--checkpoint-interval", "'0'"}},
      {{COUNT_1S, "--savepoint-on-exit", sp, NULL}, {"--savepoint-on-exit", sp}},
      {{COUNT_1S, "--checkpoint-dir", "c", "--output", "o/", "--late-output", "o/", NULL},
       {"--late-output", "'o/'"}},
  };
#undef COUNT_1S
  expect_usage_errors(t, cases, N_OF(cases));
}

int main(void) {
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
  const struct CMUnitTest tests[] = {
      {"tumbling_sum", tumbling, setup, teardown, (void *)&tumbling_cases[0]},
      {"tumbling_count", tumbling, setup, teardown, (void *)&tumbling_cases[1]},
      {"tumbling_min", tumbling, setup, teardown, (void *)&tumbling_cases[2]},
      {"tumbling_max", tumbling, setup, teardown, (void *)&tumbling_cases[3]},
      {"tumbling_avg", tumbling, setup, teardown, (void *)&tumbling_cases[4]},
      T(number_formatting),
      T(keys_strings_integers_booleans),
      T(sliding_sum),
      T(session_touching_windows_merge),
      T(out_of_orderness_drops_late_record_to_late_output),
      T(long_watermark_interval_makes_nothing_late),
      T(allowed_lateness_refires_window),
      T(lateness_does_not_depend_on_parallelism),
      T(on_error_fail_exits_naming_the_line),
      T(on_error_skip_drops_and_counts),
      T(on_error_dead_letter_writes_bad_lines_unchanged),
      T(time_at_int64_min_follows_on_error),
      T(over_long_line_follows_on_error),
      T(set_reaches_any_configuration_key),
      T(kafka_properties_reach_every_client_and_secrets_stay_hidden),
      T(bad_usage_exits_2_naming_the_option),
      T(missing_input_file_fails_naming_it),
      T(parallelism_1_2_4_give_identical_results),
      T(checkpoint_kill_and_resume_commits_exactly_once),
      T(savepoint_on_exit_then_from_savepoint_commits_exactly_once),
      T(resume_after_a_skipped_long_line_does_not_meet_it_again),
      T(failed_savepoint_on_exit_exits_1),
      T(durable_options_usage_errors),
  };
#undef T
  return cmocka_run_group_tests(tests, NULL, NULL);
}
