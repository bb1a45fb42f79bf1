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
#include <fcntl.h>
#include <inttypes.h>
#include <setjmp.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

extern char **environ;

/* ---------------------------------------------------------------------------------- */
/* Running the tool                                                                   */

typedef struct tctx {
  char dir[64];
  char in[128];      /* input file */
  char out[128];     /* --output file */
  char late[128];    /* --late-output file */
  char dead[128];    /* dead-letter file */
  char stdout_[128]; /* captured stdout */
  char stderr_[128]; /* captured stderr */
  char tool[4096];
} tctx_t;

typedef struct run {
  int code;  /* exit status, or 1000 + signal */
  char *out; /* stdout */
  char *err; /* stderr */
} run_t;

static int setup(void **state) {
  tctx_t *t = calloc(1, sizeof(*t));
  const char *bd = getenv("FL_BUILD_DIR");
  snprintf(t->dir, sizeof(t->dir), "/tmp/fl_test_agg_XXXXXX");
  if (mkdtemp(t->dir) == NULL) return -1;
  snprintf(t->in, sizeof(t->in), "%s/in.jsonl", t->dir);
  snprintf(t->out, sizeof(t->out), "%s/out.jsonl", t->dir);
  snprintf(t->late, sizeof(t->late), "%s/late.jsonl", t->dir);
  snprintf(t->dead, sizeof(t->dead), "%s/dead.jsonl", t->dir);
  snprintf(t->stdout_, sizeof(t->stdout_), "%s/stdout", t->dir);
  snprintf(t->stderr_, sizeof(t->stderr_), "%s/stderr", t->dir);
  if (bd != NULL && bd[0] != '\0')
    snprintf(t->tool, sizeof(t->tool), "%s/tools/flink-agg", bd);
  else
    snprintf(t->tool, sizeof(t->tool), "./tools/flink-agg");
  *state = t;
  return 0;
}

static int teardown(void **state) {
  tctx_t *t = *state;
  char cmd[128];
  snprintf(cmd, sizeof(cmd), "rm -rf '%s'", t->dir);
  if (system(cmd) != 0) return -1;
  free(t);
  return 0;
}

static void write_text(const char *path, const char *text) {
  FILE *f = fopen(path, "wb");
  assert_non_null(f);
  assert_int_equal(fwrite(text, 1, strlen(text), f), strlen(text));
  assert_int_equal(fclose(f), 0);
}

static char *slurp(const char *path) {
  FILE *f = fopen(path, "rb");
  char *buf = NULL;
  size_t n = 0, cap = 0, r;
  if (f == NULL) return strdup("");
  do {
    if (cap - n < 4096) {
      cap = cap ? cap * 2 : 65536;
      buf = realloc(buf, cap + 1);
    }
    r = fread(buf + n, 1, cap - n, f);
    n += r;
  } while (r > 0);
  fclose(f);
  buf[n] = '\0';
  return buf;
}

/* Runs the tool with args (NULL-terminated, without argv[0]); stdin comes from the
 * input file, stdout and stderr go to files. */
static run_t run_tool(tctx_t *t, const char *const *args) {
  posix_spawn_file_actions_t fa;
  const char *argv[64];
  run_t r = {0};
  pid_t pid;
  int status, n = 0;

  if (access(t->tool, X_OK) != 0) fail_msg("flink-agg not found at %s (set FL_BUILD_DIR)", t->tool);
  argv[n++] = t->tool;
  for (; *args != NULL; args++) {
    assert_true(n < 62);
    argv[n++] = *args;
  }
  argv[n] = NULL;
  assert_int_equal(posix_spawn_file_actions_init(&fa), 0);
  assert_int_equal(posix_spawn_file_actions_addopen(
                       &fa, 0, access(t->in, R_OK) == 0 ? t->in : "/dev/null", O_RDONLY, 0),
                   0);
  assert_int_equal(
      posix_spawn_file_actions_addopen(&fa, 1, t->stdout_, O_WRONLY | O_CREAT | O_TRUNC, 0644), 0);
  assert_int_equal(
      posix_spawn_file_actions_addopen(&fa, 2, t->stderr_, O_WRONLY | O_CREAT | O_TRUNC, 0644), 0);
  assert_int_equal(posix_spawn(&pid, t->tool, &fa, NULL, (char *const *)argv, environ), 0);
  posix_spawn_file_actions_destroy(&fa);
  while (waitpid(pid, &status, 0) < 0) assert_int_equal(errno, EINTR);
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : 1000 + WTERMSIG(status);
  r.out = slurp(t->stdout_);
  r.err = slurp(t->stderr_);
  return r;
}

static void run_free(run_t *r) {
  free(r->out);
  free(r->err);
}

static int cmp_str(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Splits text into lines (each must end with '\n'); returns the sorted array. */
static char **sorted_lines(const char *text, size_t *n_out) {
  char **v = NULL;
  size_t n = 0, cap = 0;
  const char *p = text;
  while (*p != '\0') {
    const char *nl = strchr(p, '\n');
    if (nl == NULL) fail_msg("output does not end with a newline: '%s'", p);
    if (n == cap) {
      cap = cap ? cap * 2 : 16;
      v = realloc(v, cap * sizeof(*v));
    }
    v[n++] = strndup(p, (size_t)(nl - p));
    p = nl + 1;
  }
  if (n > 0) qsort(v, n, sizeof(*v), cmp_str);
  *n_out = n;
  return v;
}

static void free_lines(char **v, size_t n) {
  for (size_t i = 0; i < n; i++) free(v[i]);
  free(v);
}

/* got (text) and want (n lines) hold the same lines, in any order. */
static void assert_same_lines(const char *got, const char *const *want, size_t n_want) {
  size_t n_got, i;
  char **g = sorted_lines(got, &n_got);
  char **w = malloc((n_want + 1) * sizeof(*w));
  int same;
  for (i = 0; i < n_want; i++) w[i] = (char *)want[i];
  if (n_want > 0) qsort(w, n_want, sizeof(*w), cmp_str);
  same = n_got == n_want;
  for (i = 0; same && i < n_want; i++) same = strcmp(g[i], w[i]) == 0;
  if (!same) {
    /* Both are sorted: walk them together and show only the differences. */
    size_t a = 0, b = 0;
    print_error("got %zu lines, want %zu; '-' missing, '+' unexpected:\n", n_got, n_want);
    while (a < n_got || b < n_want) {
      int c = a == n_got ? 1 : b == n_want ? -1 : strcmp(g[a], w[b]);
      if (c == 0) {
        a++;
        b++;
      } else if (c < 0) {
        print_error("+ %s\n", g[a++]);
      } else {
        print_error("- %s\n", w[b++]);
      }
    }
  }
  free_lines(g, n_got);
  free(w);
  assert_true(same);
}

#define N_OF(a) (sizeof(a) / sizeof((a)[0]))

/* ---------------------------------------------------------------------------------- */
/* Tumbling windows and the five aggregates                                           */

/*
 * tumbling:1s, in time order (nothing can be late):
 *   a: [1000,2000) = {3, 4.5}   a: [2000,3000) = {-1}
 *   b: [1000,2000) = {10}       b: [2000,3000) = {7, 1}
 * Input read from stdin ("--input -"), results to stdout.
 */
static const char tumbling_input[] =
    "{\"user\":\"a\",\"ts\":1000,\"v\":3}\n"
    "{\"user\":\"b\",\"ts\":1500,\"v\":10}\n"
    "{\"user\":\"a\",\"ts\":1999,\"v\":4.5}\n"
    "{\"user\":\"a\",\"ts\":2000,\"v\":-1}\n"
    "{\"user\":\"b\",\"ts\":2500,\"v\":7}\n"
    "{\"user\":\"b\",\"ts\":2999,\"v\":1}\n";

static void run_tumbling(tctx_t *t, const char *agg, const char *const *want) {
  const char *args[] = {"--input", "-",     "--key", "user",     "--time",      "ts", "--value",
                        "v",       "--agg", agg,     "--window", "tumbling:1s", NULL};
  run_t r;
  write_text(t->in, tumbling_input);
  r = run_tool(t, args);
  if (r.code != 0) print_error("stderr: %s\n", r.err);
  assert_int_equal(r.code, 0);
  assert_same_lines(r.out, want, 4);
  run_free(&r);
}

static void tumbling_sum(void **state) {
  static const char *const want[] = {
      "{\"key\": \"a\", \"window_start\": 1000, \"window_end\": 2000, \"value\": 7.5, \"count\": 2}",
      "{\"key\": \"a\", \"window_start\": 2000, \"window_end\": 3000, \"value\": -1, \"count\": 1}",
      "{\"key\": \"b\", \"window_start\": 1000, \"window_end\": 2000, \"value\": 10, \"count\": 1}",
      "{\"key\": \"b\", \"window_start\": 2000, \"window_end\": 3000, \"value\": 8, \"count\": 2}"};
  run_tumbling(*state, "sum", want);
}

static void tumbling_count(void **state) {
  static const char *const want[] = {
      "{\"key\": \"a\", \"window_start\": 1000, \"window_end\": 2000, \"value\": 2, \"count\": 2}",
      "{\"key\": \"a\", \"window_start\": 2000, \"window_end\": 3000, \"value\": 1, \"count\": 1}",
      "{\"key\": \"b\", \"window_start\": 1000, \"window_end\": 2000, \"value\": 1, \"count\": 1}",
      "{\"key\": \"b\", \"window_start\": 2000, \"window_end\": 3000, \"value\": 2, \"count\": 2}"};
  run_tumbling(*state, "count", want);
}

static void tumbling_min(void **state) {
  static const char *const want[] = {
      "{\"key\": \"a\", \"window_start\": 1000, \"window_end\": 2000, \"value\": 3, \"count\": 2}",
      "{\"key\": \"a\", \"window_start\": 2000, \"window_end\": 3000, \"value\": -1, \"count\": 1}",
      "{\"key\": \"b\", \"window_start\": 1000, \"window_end\": 2000, \"value\": 10, \"count\": 1}",
      "{\"key\": \"b\", \"window_start\": 2000, \"window_end\": 3000, \"value\": 1, \"count\": 2}"};
  run_tumbling(*state, "min", want);
}

static void tumbling_max(void **state) {
  static const char *const want[] = {
      "{\"key\": \"a\", \"window_start\": 1000, \"window_end\": 2000, \"value\": 4.5, \"count\": 2}",
      "{\"key\": \"a\", \"window_start\": 2000, \"window_end\": 3000, \"value\": -1, \"count\": 1}",
      "{\"key\": \"b\", \"window_start\": 1000, \"window_end\": 2000, \"value\": 10, \"count\": 1}",
      "{\"key\": \"b\", \"window_start\": 2000, \"window_end\": 3000, \"value\": 7, \"count\": 2}"};
  run_tumbling(*state, "max", want);
}

static void tumbling_avg(void **state) {
  /* a [1000,2000): 7.5 / 2 = 3.75; b [2000,3000): 8 / 2 = 4 (integral: no point). */
  static const char *const want[] = {
      "{\"key\": \"a\", \"window_start\": 1000, \"window_end\": 2000, \"value\": 3.75, \"count\": 2}",
      "{\"key\": \"a\", \"window_start\": 2000, \"window_end\": 3000, \"value\": -1, \"count\": 1}",
      "{\"key\": \"b\", \"window_start\": 1000, \"window_end\": 2000, \"value\": 10, \"count\": 1}",
      "{\"key\": \"b\", \"window_start\": 2000, \"window_end\": 3000, \"value\": 4, \"count\": 2}"};
  run_tumbling(*state, "avg", want);
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
  const char *args_sum[] = {"--input", t->in,    "--output", t->out,        "--key",
                            "k",       "--time", "t",        "--value",     "v",
                            "--agg",   "sum",    "--window", "tumbling:10", NULL};
  static const char *const want_avg[] = {
      "{\"key\": \"x\", \"window_start\": 0, \"window_end\": 10, \"value\": 1.3333333333333333, \"count\": 3}"};
  static const char *const want_sum[] = {
      "{\"key\": \"y\", \"window_start\": 0, \"window_end\": 10, \"value\": 0.30000000000000004, \"count\": 2}",
      "{\"key\": \"z\", \"window_start\": 0, \"window_end\": 10, \"value\": 9007199254740992, \"count\": 1}",
      "{\"key\": \"w\", \"window_start\": 0, \"window_end\": 10, \"value\": 9007199254740991, \"count\": 1}",
      "{\"key\": \"x\", \"window_start\": 0, \"window_end\": 10, \"value\": 4, \"count\": 3}"};
  run_t r;
  char *got;

  write_text(t->in,
             "{\"k\":\"x\",\"t\":1,\"v\":1}\n{\"k\":\"x\",\"t\":2,\"v\":1}\n"
             "{\"k\":\"x\",\"t\":3,\"v\":2}\n");
  r = run_tool(t, args);
  assert_int_equal(r.code, 0);
  got = slurp(t->out);
  assert_same_lines(got, want_avg, 1);
  free(got);
  run_free(&r);

  write_text(t->in,
             "{\"k\":\"x\",\"t\":1,\"v\":1}\n{\"k\":\"x\",\"t\":2,\"v\":1}\n"
             "{\"k\":\"x\",\"t\":3,\"v\":2}\n"
             "{\"k\":\"y\",\"t\":1,\"v\":0.1}\n{\"k\":\"y\",\"t\":2,\"v\":0.2}\n"
             "{\"k\":\"z\",\"t\":1,\"v\":9007199254740992}\n"
             "{\"k\":\"w\",\"t\":1,\"v\":9007199254740991}\n");
  r = run_tool(t, args_sum);
  assert_int_equal(r.code, 0);
  got = slurp(t->out);
  assert_same_lines(got, want_sum, 4);
  free(got);
  run_free(&r);
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
  run_t r;
  char *got;
  write_text(t->in,
             "{\"dev\":42,\"t\":0}\n"
             "{\"dev\":\"42\",\"t\":10}\n"
             "{\"dev\":42,\"t\":20}\n"
             "{\"dev\":true,\"t\":30}\n"
             "{\"t\":40,\"dev\":-7}\n"
             "{\"dev\":\"say \\\"hi\\\"\",\"t\":50}\n");
  r = run_tool(t, args);
  if (r.code != 0) print_error("stderr: %s\n", r.err);
  assert_int_equal(r.code, 0);
  assert_string_equal(r.out, "");
  got = slurp(t->out);
  assert_same_lines(got, want, N_OF(want));
  free(got);
  run_free(&r);
}

/* ---------------------------------------------------------------------------------- */
/* Sliding and session windows                                                        */

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
  const char *args[] = {"--input", t->in, "--key", "user", "--time",   "ts",
                        "--value", "v",   "--agg", "sum",  "--window", "sliding:1s:500ms",
                        NULL};
  static const char *const want[] = {
      "{\"key\": \"k\", \"window_start\": -500, \"window_end\": 500, \"value\": 1, \"count\": 1}",
      "{\"key\": \"k\", \"window_start\": 0, \"window_end\": 1000, \"value\": 3, \"count\": 2}",
      "{\"key\": \"k\", \"window_start\": 500, \"window_end\": 1500, \"value\": 6, \"count\": 2}",
      "{\"key\": \"k\", \"window_start\": 1000, \"window_end\": 2000, \"value\": 4, \"count\": 1}"};
  run_t r;
  write_text(t->in,
             "{\"user\":\"k\",\"ts\":100,\"v\":1}\n"
             "{\"user\":\"k\",\"ts\":600,\"v\":2}\n"
             "{\"user\":\"k\",\"ts\":1200,\"v\":4}\n");
  r = run_tool(t, args);
  assert_int_equal(r.code, 0);
  assert_same_lines(r.out, want, N_OF(want));
  run_free(&r);
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
  const char *args[] = {"--input",
                        t->in,
                        "--key",
                        "user",
                        "--time",
                        "ts",
                        "--value",
                        "v",
                        "--agg",
                        "sum",
                        "--window",
                        "session:1s",
                        "--watermark-interval",
                        "0",
                        NULL};
  static const char *const want[] = {
      "{\"key\": \"s\", \"window_start\": 0, \"window_end\": 3000, \"value\": 7, \"count\": 3}",
      "{\"key\": \"s\", \"window_start\": 5000, \"window_end\": 6000, \"value\": 8, \"count\": 1}",
      "{\"key\": \"t\", \"window_start\": 0, \"window_end\": 1000, \"value\": 16, \"count\": 1}",
      "{\"key\": \"t\", \"window_start\": 1001, \"window_end\": 2001, \"value\": 32, \"count\": 1}"};
  run_t r;
  write_text(t->in,
             "{\"user\":\"s\",\"ts\":0,\"v\":1}\n"
             "{\"user\":\"t\",\"ts\":0,\"v\":16}\n"
             "{\"user\":\"s\",\"ts\":1000,\"v\":2}\n"
             "{\"user\":\"t\",\"ts\":1001,\"v\":32}\n"
             "{\"user\":\"s\",\"ts\":2000,\"v\":4}\n"
             "{\"user\":\"s\",\"ts\":5000,\"v\":8}\n");
  r = run_tool(t, args);
  assert_int_equal(r.code, 0);
  assert_same_lines(r.out, want, N_OF(want));
  run_free(&r);
}

/* ---------------------------------------------------------------------------------- */
/* Out-of-orderness, lateness, watermark interval                                     */

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
 * Lines 5 and 7 go to --late-output byte for byte, in input order.
 */
static const char late_input[] =
    "{\"user\":\"a\",\"ts\":1000,\"v\":1}\n"
    "{\"user\":\"a\",\"ts\":1800,\"v\":2}\n"
    "{\"user\":\"a\",\"ts\":1200,\"v\":4}\n"
    "{\"user\":\"a\",\"ts\":2600,\"v\":8}\n"
    "{ \"user\": \"a\",  \"ts\": 1999, \"v\": 16, \"extra\": [1, 2] }\n"
    "{\"user\":\"b\",\"ts\":2100,\"v\":32}\n"
    "{\"v\":64,\"user\":\"b\",\"ts\":500}\r\n";

static void check_out_of_orderness(tctx_t *t, const char *parallelism) {
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
                        "0",
                        "--late-output",
                        t->late,
                        "--parallelism",
                        parallelism,
                        NULL};
  static const char *const want[] = {
      "{\"key\": \"a\", \"window_start\": 1000, \"window_end\": 2000, \"value\": 7, \"count\": 3}",
      "{\"key\": \"a\", \"window_start\": 2000, \"window_end\": 3000, \"value\": 8, \"count\": 1}",
      "{\"key\": \"b\", \"window_start\": 2000, \"window_end\": 3000, \"value\": 32, \"count\": 1}"};
  run_t r;
  char *got, *late;
  write_text(t->in, late_input);
  r = run_tool(t, args);
  if (r.code != 0) print_error("stderr: %s\n", r.err);
  assert_int_equal(r.code, 0);
  got = slurp(t->out);
  if (strcmp(parallelism, "1") != 0) print_message("parallelism %s\n", parallelism);
  assert_same_lines(got, want, N_OF(want));
  late = slurp(t->late);
  /* The CR of line 7 was its line ending, not data. */
  assert_string_equal(late,
                      "{ \"user\": \"a\",  \"ts\": 1999, \"v\": 16, \"extra\": [1, 2] }\n"
                      "{\"v\":64,\"user\":\"b\",\"ts\":500}\n");
  free(late);
  free(got);
  run_free(&r);
}

static void out_of_orderness_drops_late_record_to_late_output(void **state) {
  check_out_of_orderness(*state, "1");
}

/*
 * The same input with --watermark-interval 1h: no periodic watermark is due while the
 * input is read, so the first watermark that moves anything is the end of input and no
 * record is late: a [1000,2000) = 1+2+4+16 = 23 (4), a [2000,3000) = 8, b [0,1000) = 64,
 * b [2000,3000) = 32; the late file is created and empty.
 */
static void long_watermark_interval_makes_nothing_late(void **state) {
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
                        NULL};
  static const char *const want[] = {
      "{\"key\": \"a\", \"window_start\": 1000, \"window_end\": 2000, \"value\": 23, \"count\": 4}",
      "{\"key\": \"a\", \"window_start\": 2000, \"window_end\": 3000, \"value\": 8, \"count\": 1}",
      "{\"key\": \"b\", \"window_start\": 0, \"window_end\": 1000, \"value\": 64, \"count\": 1}",
      "{\"key\": \"b\", \"window_start\": 2000, \"window_end\": 3000, \"value\": 32, \"count\": 1}"};
  run_t r;
  char *got, *late;
  write_text(t->in, late_input);
  r = run_tool(t, args);
  assert_int_equal(r.code, 0);
  got = slurp(t->out);
  assert_same_lines(got, want, N_OF(want));
  late = slurp(t->late);
  assert_string_equal(late, "");
  assert_int_equal(access(t->late, F_OK), 0);
  free(late);
  free(got);
  run_free(&r);
}

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
static void check_allowed_lateness(tctx_t *t, const char *parallelism) {
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
                        "--allowed-lateness",
                        "1s",
                        "--watermark-interval",
                        "0",
                        "--late-output",
                        t->late,
                        "--parallelism",
                        parallelism,
                        NULL};
  static const char *const want[] = {
      "{\"key\": \"a\", \"window_start\": 1000, \"window_end\": 2000, \"value\": 1, \"count\": 1}",
      "{\"key\": \"a\", \"window_start\": 1000, \"window_end\": 2000, \"value\": 5, \"count\": 2}",
      "{\"key\": \"a\", \"window_start\": 2000, \"window_end\": 3000, \"value\": 2, \"count\": 1}",
      "{\"key\": \"a\", \"window_start\": 3000, \"window_end\": 4000, \"value\": 8, \"count\": 1}"};
  run_t r;
  char *got, *late;
  write_text(t->in,
             "{\"user\":\"a\",\"ts\":1000,\"v\":1}\n"
             "{\"user\":\"a\",\"ts\":2100,\"v\":2}\n"
             "{\"user\":\"a\",\"ts\":1500,\"v\":4}\n"
             "{\"user\":\"a\",\"ts\":3200,\"v\":8}\n"
             "{\"user\":\"a\",\"ts\":1700,\"v\":16}\n");
  r = run_tool(t, args);
  if (r.code != 0) print_error("stderr: %s\n", r.err);
  assert_int_equal(r.code, 0);
  got = slurp(t->out);
  if (strcmp(parallelism, "1") != 0) print_message("parallelism %s\n", parallelism);
  assert_same_lines(got, want, N_OF(want));
  late = slurp(t->late);
  assert_string_equal(late, "{\"user\":\"a\",\"ts\":1700,\"v\":16}\n");
  free(late);
  free(got);
  run_free(&r);
}

static void allowed_lateness_refires_window(void **state) { check_allowed_lateness(*state, "1"); }

/*
 * Watermarks come from the single reader's subtask only (the other subtasks of the
 * reader's chain have no input at all), so which records are late, and which windows
 * fire early, must not change with --parallelism: the two scenarios above, at 2 and 4.
 */
static void lateness_does_not_depend_on_parallelism(void **state) {
  check_out_of_orderness(*state, "2");
  check_allowed_lateness(*state, "2");
  check_out_of_orderness(*state, "4");
  check_allowed_lateness(*state, "4");
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
  const char *args[] = {"--input", t->in,    "--output", t->out,        "--key",
                        "user",    "--time", "ts",       "--value",     "v",
                        "--agg",   "sum",    "--window", "tumbling:1s", "--watermark-interval",
                        "0",       NULL};
  static const char *const want[] = {
      "{\"key\": \"a\", \"window_start\": 0, \"window_end\": 1000, \"value\": 1, \"count\": 1}"};
  run_t r;
  char *got;
  write_text(t->in,
             "{\"user\":\"a\",\"ts\":100,\"v\":1}\n"
             "{\"user\":\"a\",\"ts\":1100,\"v\":2}\n"
             "{\"user\":\"a\",\"ts\":\"oops\",\"v\":3}\n"
             "{\"user\":\"a\",\"ts\":5000,\"v\":4}\n");
  r = run_tool(t, args);
  assert_int_equal(r.code, 1);
  assert_non_null(strstr(r.err, "line 3: "));
  assert_non_null(strstr(r.err, "\"ts\""));
  got = slurp(t->out);
  assert_same_lines(got, want, N_OF(want));
  free(got);
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

static void on_error_skip_drops_and_counts(void **state) {
  tctx_t *t = *state;
  const char *args[] = {"--input",  t->in,         "--key",      "user",  "--time",
                        "ts",       "--value",     "v",          "--agg", "sum",
                        "--window", "tumbling:1s", "--on-error", "skip",  NULL};
  run_t r;
  write_text(t->in, bad_input);
  r = run_tool(t, args);
  assert_int_equal(r.code, 0);
  assert_same_lines(r.out, bad_want, N_OF(bad_want));
  assert_non_null(strstr(r.err, "flink-agg: skipped 6 malformed lines\n"));
  run_free(&r);
}

static void on_error_dead_letter_writes_bad_lines_unchanged(void **state) {
  tctx_t *t = *state;
  char opt[160];
  const char *args[] = {"--input",    t->in, "--key",         "user", "--time",   "ts",
                        "--value",    "v",   "--agg",         "sum",  "--window", "tumbling:1s",
                        "--on-error", opt,   "--parallelism", "2",    NULL};
  run_t r;
  char *dead;
  snprintf(opt, sizeof(opt), "dead-letter:%s", t->dead);
  write_text(t->in, bad_input);
  r = run_tool(t, args);
  assert_int_equal(r.code, 0);
  assert_same_lines(r.out, bad_want, N_OF(bad_want));
  dead = slurp(t->dead);
  assert_string_equal(dead,
                      "not json\n"
                      "{\"user\":\"a\",\"v\":5}\n"
                      "[1,2]\n"
                      "{\"user\":{\"x\":1},\"ts\":200,\"v\":1}\n"
                      "{\"user\":\"a\",\"ts\":300,\"v\":\"7\"}\n"
                      "{\"user\":1.5,\"ts\":300,\"v\":7}\n");
  free(dead);
  run_free(&r);
}

/*
 * A time field of INT64_MIN is the library's "no timestamp", not an event time: it is a
 * bad line for --on-error (it used to reach the window as a record without a timestamp
 * and fail the job under every policy, naming no line). INT64_MIN + 1 is an event time.
 */
static void time_at_int64_min_follows_on_error(void **state) {
  tctx_t *t = *state;
  char opt[160];
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
  r = run_tool(t, skip);
  if (r.code != 0) print_error("stderr: %s\n", r.err);
  assert_int_equal(r.code, 0);
  assert_same_lines(r.out, want, N_OF(want));
  assert_non_null(strstr(r.err, "flink-agg: skipped 1 malformed lines\n"));
  run_free(&r);

  r = run_tool(t, fail);
  assert_int_equal(r.code, 1);
  if (strstr(r.err, "line 3: ") == NULL || strstr(r.err, "-9223372036854775808") == NULL)
    fail_msg("stderr: %s", r.err);
  run_free(&r);

  snprintf(opt, sizeof(opt), "dead-letter:%s", t->dead);
  r = run_tool(t, dead);
  assert_int_equal(r.code, 0);
  assert_same_lines(r.out, want, N_OF(want));
  got = slurp(t->dead);
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
  char opt[160];
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

  r = run_tool(t, skip);
  if (r.code != 0) print_error("stderr: %s\n", r.err);
  assert_int_equal(r.code, 0);
  assert_same_lines(r.out, want, N_OF(want));
  assert_non_null(strstr(r.err, "flink-agg: skipped 1 malformed lines\n"));
  run_free(&r);

  snprintf(opt, sizeof(opt), "dead-letter:%s", t->dead);
  r = run_tool(t, dead);
  assert_int_equal(r.code, 0);
  assert_same_lines(r.out, want, N_OF(want));
  assert_non_null(strstr(r.err, "1 dead-lettered lines were longer than 16777216 bytes"));
  got = slurp(t->dead);
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
  r = run_tool(t, small);
  assert_int_equal(r.code, 0);
  assert_same_lines(r.out, want, N_OF(want));
  assert_non_null(strstr(r.err, "flink-agg: skipped 1 malformed lines\n"));
  run_free(&r);
  free(data);
}

/* ---------------------------------------------------------------------------------- */
/* Usage errors                                                                       */

typedef struct usage_case {
  const char *args[24];
  const char *must_name[2]; /* substrings of stderr */
} usage_case_t;

static void bad_usage_exits_2_naming_the_option(void **state) {
  tctx_t *t = *state;
  static const usage_case_t cases[] = {
      {{"--input", "x", "--key", "k", "--time", "t", "--value", "v", "--agg", "median", "--window",
        "tumbling:1s", NULL},
       {"--agg", "median"}},
      {{"--input", "x", "--key", "k", "--time", "t", "--value", "v", "--agg", "sum", "--window",
        "hopping:5s", NULL},
       {"--window", "hopping:5s"}},
      {{"--input", "x", "--key", "k", "--time", "t", "--value", "v", "--agg", "sum", "--window",
        "tumbling:0", NULL},
       {"--window", "tumbling:0"}},
      {{"--input", "x", "--key", "k", "--time", "t", "--value", "v", "--agg", "sum", "--window",
        "sliding:5s", NULL},
       {"--window", "sliding:5s"}},
      {{"--input", "x", "--key", "k", "--time", "t", "--value", "v", "--agg", "sum", "--window",
        "tumbling:1s", "--out-of-orderness", "5x", NULL},
       {"--out-of-orderness", "5x"}},
      {{"--input", "x", "--key", "k", "--time", "t", "--value", "v", "--agg", "sum", "--window",
        "tumbling:1s", "--allowed-lateness", "-1s", NULL},
       {"--allowed-lateness", "-1s"}},
      {{"--input", "x", "--key", "k", "--time", "t", "--value", "v", "--agg", "sum", "--window",
        "tumbling:1s", "--watermark-interval", "soon", NULL},
       {"--watermark-interval", "soon"}},
      {{"--key", "k", "--time", "t", "--value", "v", "--agg", "sum", "--window", "tumbling:1s",
        NULL},
       {"--input", NULL}},
      {{"--input", "x", "--key", "k", "--time", "t", "--agg", "sum", "--window", "tumbling:1s",
        NULL},
       {"--value", NULL}},
      {{"--input", "x", "--key", "k", "--time", "t", "--value", "v", "--agg", "sum", "--window",
        "tumbling:1s", "--parallelism", "0", NULL},
       {"--parallelism", "'0'"}},
      {{"--input", "x", "--key", "k", "--time", "t", "--value", "v", "--agg", "sum", "--window",
        "tumbling:1s", "--on-error", "retry", NULL},
       {"--on-error", "retry"}},
      {{"--input", "x", "--key", "k", "--time", "t", "--value", "v", "--agg", "sum", "--window",
        "tumbling:1s", "--bogus", "1", NULL},
       {"--bogus", NULL}},
      {{"--input", "x", "--key", "k", "--time", "t", "--value", "v", "--agg", "sum", "--window",
        "tumbling:1s", "--output", "o", "--late-output", "o", NULL},
       {"--late-output", "'o'"}},
      {{"--input", "x", "--key", "k", "--time", "t", "--value", "v", "--agg", "sum", "--window",
        NULL},
       {"--window", "needs a value"}},
      {{"--input", "x", "--key", "k", "--time", "t", "--agg", "count", "--window", "tumbling:1s",
        "--max-line-bytes", "0", NULL},
       {"--max-line-bytes", "'0'"}},
      {{"--input", "x", "--key", "k", "--time", "t", "--agg", "count", "--window", "tumbling:1s",
        "--max-line-bytes", "2gb", NULL},
       {"--max-line-bytes", "'2gb'"}},
      {{"--input", "x", "--key", "k", "--time", "t", "--agg", "count", "--window", "tumbling:1s",
        "--max-line-bytes", "12 parsecs", NULL},
       {"--max-line-bytes", "'12 parsecs'"}},
  };
  for (size_t i = 0; i < N_OF(cases); i++) {
    run_t r = run_tool(t, cases[i].args);
    if (r.code != 2 || strstr(r.err, cases[i].must_name[0]) == NULL ||
        (cases[i].must_name[1] != NULL && strstr(r.err, cases[i].must_name[1]) == NULL))
      print_error("case %zu: exit %d, stderr: %s\n", i, r.code, r.err);
    assert_int_equal(r.code, 2);
    assert_non_null(strstr(r.err, cases[i].must_name[0]));
    if (cases[i].must_name[1] != NULL) assert_non_null(strstr(r.err, cases[i].must_name[1]));
    assert_string_equal(r.out, "");
    run_free(&r);
  }
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
  write_text(t->in, late_input);
  r = run_tool(t, args);
  if (r.code != 0) print_error("stderr: %s\n", r.err);
  assert_int_equal(r.code, 0);
  got = slurp(t->out);
  assert_same_lines(got, want, N_OF(want));
  late = slurp(t->late);
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
  char path[160];
  const char *args[] = {"--input", path,    "--key",    "k",           "--time", "t",
                        "--agg",   "count", "--window", "tumbling:1s", NULL};
  run_t r;
  snprintf(path, sizeof(path), "%s/nope.jsonl", t->dir);
  r = run_tool(t, args);
  assert_int_equal(r.code, 1);
  assert_non_null(strstr(r.err, path));
  run_free(&r);
}

/* ---------------------------------------------------------------------------------- */
/* Parallelism does not change results                                                */

#define GEN_EVENTS 4000
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
 * Event i has ts = 7 i + jitter, jitter in [0, 300), and --out-of-orderness 300: the
 * watermark after event i is at most 7 i + 299 - 301 < 7 (i + 1), below every later
 * timestamp, so no record is ever late and the result does not depend on when
 * watermarks travel. Values are small integers so sums are exact in any order.
 */
static gen_event_t *gen_events(tctx_t *t) {
  gen_event_t *ev = calloc(GEN_EVENTS, sizeof(*ev));
  FILE *f = fopen(t->in, "wb");
  uint64_t x = 0x9E3779B97F4A7C15ull;
  char key[32];
  assert_non_null(f);
  for (int i = 0; i < GEN_EVENTS; i++) {
    x = x * 6364136223846793005ull + 1442695040888963407ull;
    ev[i].key = (int)((x >> 33) % GEN_KEYS);
    ev[i].ts = 7 * (int64_t)i + (int64_t)((x >> 20) % 300);
    ev[i].v = (int64_t)((x >> 45) % 101) - 50;
    gen_key_json(ev[i].key, key, sizeof(key));
    fprintf(f, "{\"id\":%d,\"key\":%s,\"ts\":%" PRId64 ",\"amount\":%" PRId64 "}\n", i, key,
            ev[i].ts, ev[i].v);
  }
  assert_int_equal(fclose(f), 0);
  return ev;
}

typedef struct gen_win {
  int key;
  int64_t start, end, sum, max, count;
} gen_win_t;

static char **gen_format(const gen_win_t *w, size_t n, int use_max) {
  char **lines = calloc(n + 1, sizeof(*lines));
  char key[32], buf[256];
  for (size_t i = 0; i < n; i++) {
    gen_key_json(w[i].key, key, sizeof(key));
    snprintf(buf, sizeof(buf),
             "{\"key\": %s, \"window_start\": %" PRId64 ", \"window_end\": %" PRId64
             ", \"value\": %" PRId64 ", \"count\": %" PRId64 "}",
             key, w[i].start, w[i].end, use_max ? w[i].max : w[i].sum, w[i].count);
    lines[i] = strdup(buf);
  }
  return lines;
}

/* Tumbling 250 ms sums, straight from the definition: window start = ts - ts mod 250. */
static gen_win_t *expect_tumbling(const gen_event_t *ev, size_t *n_out) {
  gen_win_t *w = calloc(GEN_EVENTS, sizeof(*w));
  size_t n = 0;
  for (int i = 0; i < GEN_EVENTS; i++) {
    int64_t start = ev[i].ts - ev[i].ts % 250;
    size_t j;
    for (j = 0; j < n; j++)
      if (w[j].key == ev[i].key && w[j].start == start) break;
    if (j == n) {
      w[n] = (gen_win_t){.key = ev[i].key, .start = start, .end = start + 250};
      n++;
    }
    w[j].sum += ev[i].v;
    w[j].count++;
  }
  *n_out = n;
  return w;
}

/* Sessions with gap 40 ms, max: per key, sort by ts and start a new session when the
 * next event is after the current session's end (touching merges: ts == end joins). */
static int cmp_ev(const void *a, const void *b) {
  const gen_event_t *x = a, *y = b;
  if (x->key != y->key) return x->key < y->key ? -1 : 1;
  return x->ts < y->ts ? -1 : x->ts > y->ts;
}

static gen_win_t *expect_sessions(const gen_event_t *ev_in, size_t *n_out) {
  gen_event_t *ev = malloc(GEN_EVENTS * sizeof(*ev));
  gen_win_t *w = calloc(GEN_EVENTS, sizeof(*w));
  size_t n = 0;
  memcpy(ev, ev_in, GEN_EVENTS * sizeof(*ev));
  qsort(ev, GEN_EVENTS, sizeof(*ev), cmp_ev);
  for (int i = 0; i < GEN_EVENTS; i++) {
    if (n == 0 || w[n - 1].key != ev[i].key || ev[i].ts > w[n - 1].end) {
      w[n++] =
          (gen_win_t){.key = ev[i].key, .start = ev[i].ts, .end = ev[i].ts + 40, .max = ev[i].v};
    }
    if (ev[i].ts + 40 > w[n - 1].end) w[n - 1].end = ev[i].ts + 40;
    if (ev[i].v > w[n - 1].max) w[n - 1].max = ev[i].v;
    w[n - 1].count++;
  }
  free(ev);
  *n_out = n;
  return w;
}

static void run_generated(tctx_t *t, const char *window, const char *agg, const char *par,
                          const char *wm_interval, char **want, size_t n_want) {
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
  run_t r = run_tool(t, args);
  char *got;
  if (r.code != 0) print_error("parallelism %s: stderr: %s\n", par, r.err);
  assert_int_equal(r.code, 0);
  got = slurp(t->out);
  assert_same_lines(got, (const char *const *)want, n_want);
  free(got);
  run_free(&r);
}

static void parallelism_1_2_4_give_identical_results(void **state) {
  tctx_t *t = *state;
  gen_event_t *ev = gen_events(t);
  size_t n_tw, n_sw;
  gen_win_t *tw = expect_tumbling(ev, &n_tw);
  gen_win_t *sw = expect_sessions(ev, &n_sw);
  char **tl = gen_format(tw, n_tw, 0);
  char **sl = gen_format(sw, n_sw, 1);
  static const char *const pars[] = {"1", "2", "4"};

  /* Enough windows and merges for the comparison to mean something. */
  assert_true(n_tw > 1000);
  assert_true(n_sw > 1000 && n_sw < GEN_EVENTS);
  for (size_t i = 0; i < N_OF(pars); i++) {
    run_generated(t, "tumbling:250", "sum", pars[i], "0", tl, n_tw);
    run_generated(t, "session:40", "max", pars[i], "200ms", sl, n_sw);
  }
  for (size_t i = 0; i < n_tw; i++) free(tl[i]);
  for (size_t i = 0; i < n_sw; i++) free(sl[i]);
  free(tl);
  free(sl);
  free(tw);
  free(sw);
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
 *
 * Input: event i has ts = 7 i + jitter in [0, 300) and --out-of-orderness 300 (see
 * gen_events): no record is ever late, so results do not depend on timing or restarts.
 */

#define DUR_EVENTS 80000
#define DUR_DEADLINE_S 20

typedef struct dur_event {
  int key;
  int64_t start; /* tumbling 250 ms window */
  int64_t v;
} dur_event_t;

typedef struct dur_ctx {
  char *input; /* the whole input */
  size_t len;
  char **want; /* the expected lines, sorted */
  size_t n_want;
  char full[192], fifo[192], outdir[192], ckpt[192], sp[192], err[192], out[192];
} dur_ctx_t;

static int cmp_dur(const void *a, const void *b) {
  const dur_event_t *x = a, *y = b;
  if (x->key != y->key) return x->key < y->key ? -1 : 1;
  return x->start < y->start ? -1 : x->start > y->start;
}

static double dur_scale(void) {
  const char *s = getenv("FL_TEST_TIMEOUT_SCALE");
  double v = s != NULL ? atof(s) : 1.0;
  return v > 0 ? v : 1.0;
}

static int64_t dur_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void dur_pause_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {}
}

/* Generates the input and the expected tumbling:250 sums (sorted lines). */
static void dur_setup(tctx_t *t, dur_ctx_t *d) {
  dur_event_t *ev = calloc(DUR_EVENTS, sizeof(*ev));
  size_t cap = (size_t)DUR_EVENTS * 80, n = 0;
  uint64_t x = 0x2545F4914F6CDD1Dull;
  char key[32], line[256];
  memset(d, 0, sizeof(*d));
  d->input = malloc(cap);
  d->want = calloc(DUR_EVENTS, sizeof(*d->want));
  assert_true(ev != NULL && d->input != NULL && d->want != NULL);
  for (int i = 0; i < DUR_EVENTS; i++) {
    int64_t ts;
    x = x * 6364136223846793005ull + 1442695040888963407ull;
    ev[i].key = (int)((x >> 33) % GEN_KEYS);
    ts = 7 * (int64_t)i + (int64_t)((x >> 20) % 300);
    ev[i].start = ts - ts % 250;
    ev[i].v = (int64_t)((x >> 45) % 101) - 50;
    gen_key_json(ev[i].key, key, sizeof(key));
    d->len += (size_t)snprintf(d->input + d->len, cap - d->len,
                               "{\"id\":%d,\"key\":%s,\"ts\":%" PRId64 ",\"amount\":%" PRId64 "}\n",
                               i, key, ts, ev[i].v);
    assert_true(d->len < cap);
  }
  qsort(ev, DUR_EVENTS, sizeof(*ev), cmp_dur);
  for (size_t i = 0; i < DUR_EVENTS;) {
    size_t j = i;
    int64_t sum = 0;
    for (; j < DUR_EVENTS && cmp_dur(&ev[i], &ev[j]) == 0; j++) sum += ev[j].v;
    gen_key_json(ev[i].key, key, sizeof(key));
    snprintf(line, sizeof(line),
             "{\"key\": %s, \"window_start\": %" PRId64 ", \"window_end\": %" PRId64
             ", \"value\": %" PRId64 ", \"count\": %zu}",
             key, ev[i].start, ev[i].start + 250, sum, j - i);
    d->want[n++] = strdup(line);
    i = j;
  }
  d->n_want = n;
  qsort(d->want, n, sizeof(*d->want), cmp_str);
  free(ev);
  snprintf(d->full, sizeof(d->full), "%s/full.jsonl", t->dir);
  snprintf(d->fifo, sizeof(d->fifo), "%s/fifo.jsonl", t->dir);
  snprintf(d->outdir, sizeof(d->outdir), "%s/results/", t->dir); /* created by the sink */
  snprintf(d->ckpt, sizeof(d->ckpt), "%s/checkpoints", t->dir);
  snprintf(d->sp, sizeof(d->sp), "%s/savepoint", t->dir);
  snprintf(d->out, sizeof(d->out), "%s/durable.stdout", t->dir);
  snprintf(d->err, sizeof(d->err), "%s/durable.stderr", t->dir);
  write_text(d->full, d->input);
  assert_int_equal(mkfifo(d->fifo, 0644), 0);
}

static void dur_free(dur_ctx_t *d) {
  free_lines(d->want, d->n_want);
  free(d->input);
}

/* Starts the tool with stdin from /dev/null (a FIFO as stdin would block the spawn). */
static pid_t dur_spawn(tctx_t *t, dur_ctx_t *d, const char *const *args) {
  posix_spawn_file_actions_t fa;
  const char *argv[64];
  pid_t pid;
  int n = 0;
  argv[n++] = t->tool;
  for (; *args != NULL; args++) {
    assert_true(n < 62);
    argv[n++] = *args;
  }
  argv[n] = NULL;
  assert_int_equal(posix_spawn_file_actions_init(&fa), 0);
  assert_int_equal(posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0), 0);
  assert_int_equal(
      posix_spawn_file_actions_addopen(&fa, 1, d->out, O_WRONLY | O_CREAT | O_TRUNC, 0644), 0);
  assert_int_equal(
      posix_spawn_file_actions_addopen(&fa, 2, d->err, O_WRONLY | O_CREAT | O_TRUNC, 0644), 0);
  assert_int_equal(posix_spawn(&pid, t->tool, &fa, NULL, (char *const *)argv, environ), 0);
  posix_spawn_file_actions_destroy(&fa);
  return pid;
}

/* The exit status, or 1000 + signal (as run_t.code). */
static int dur_wait(pid_t pid) {
  int status;
  while (waitpid(pid, &status, 0) < 0) assert_int_equal(errno, EINTR);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 1000 + WTERMSIG(status);
}

static void dur_assert_running(dur_ctx_t *d, pid_t pid) {
  int status;
  if (waitpid(pid, &status, WNOHANG) == 0) return;
  char *err = slurp(d->err);
  fail_msg("flink-agg ended early (status 0x%x); stderr:\n%s", status, err);
}

/* Opens the FIFO for writing once the tool opened it for reading. */
static int dur_open_fifo(dur_ctx_t *d, pid_t pid) {
  int64_t deadline = dur_now_ms() + (int64_t)(DUR_DEADLINE_S * 1000 * dur_scale());
  for (;;) {
    int fd = open(d->fifo, O_WRONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd >= 0) {
      assert_int_equal(fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK), 0);
      return fd;
    }
    assert_int_equal(errno, ENXIO);
    dur_assert_running(d, pid);
    if (dur_now_ms() > deadline) fail_msg("flink-agg did not open %s", d->fifo);
    dur_pause_ms(2);
  }
}

static void dur_write(int fd, const char *p, size_t len) {
  while (len > 0) {
    ssize_t n = write(fd, p, len);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) fail_msg("writing to the FIFO failed: %s", strerror(errno));
    p += n;
    len -= (size_t)n;
  }
}

/* The next run reads the whole input as a regular file at the FIFO's path. */
static void dur_replace_fifo(dur_ctx_t *d) {
  assert_int_equal(unlink(d->fifo), 0);
  assert_int_equal(link(d->full, d->fifo), 0);
}

/* Committed files (part-*) in the output directory: their lines, concatenated. */
static char *dur_committed(dur_ctx_t *d, size_t *n_files) {
  DIR *dir = opendir(d->outdir);
  struct dirent *e;
  size_t len = 0, cap = 1 << 16;
  char *all = malloc(cap);
  assert_non_null(all);
  all[0] = '\0';
  *n_files = 0;
  if (dir == NULL) return all;
  while ((e = readdir(dir)) != NULL) {
    char path[512];
    char *text;
    size_t n;
    if (strncmp(e->d_name, "part-", 5) != 0) continue;
    snprintf(path, sizeof(path), "%s%s", d->outdir, e->d_name);
    text = slurp(path);
    n = strlen(text);
    while (len + n + 1 > cap) cap *= 2;
    all = realloc(all, cap);
    assert_non_null(all);
    memcpy(all + len, text, n + 1);
    len += n;
    free(text);
    (*n_files)++;
  }
  closedir(dir);
  return all;
}

static void dur_assert_committed_all(dur_ctx_t *d) {
  size_t n_files;
  char *got = dur_committed(d, &n_files);
  assert_same_lines(got, (const char *const *)d->want, d->n_want);
  free(got);
}

/* The RocksDB working directories of a killed run (/tmp/flink-rocksdb-<pid>-<n>; the
 * library removes them itself when it exits normally). */
static void dur_remove_rocksdb_dirs(pid_t pid) {
  char prefix[64], cmd[160];
  snprintf(prefix, sizeof(prefix), "flink-rocksdb-%d-", (int)pid);
  snprintf(cmd, sizeof(cmd), "rm -rf /tmp/%s*", prefix);
  if (system(cmd) != 0) print_error("could not remove /tmp/%s*\n", prefix);
}

#define DUR_JOB_ARGS                                                                               \
  "--key", "key", "--time", "ts", "--value", "amount", "--agg", "sum", "--window", "tumbling:250", \
      "--out-of-orderness", "300", "--watermark-interval", "0", "--parallelism", "2"

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
  const char *durable[] = {"--input",    d.fifo,
                           "--output",   d.outdir,
                           DUR_JOB_ARGS, "--state-backend",
                           "rocksdb",    "--checkpoint-dir",
                           d.ckpt,       "--checkpoint-interval",
                           "50ms",       NULL};
  run_t r = run_tool(t, plain);
  char *got;
  size_t n_files;
  if (r.code != 0) print_error("stderr: %s\n", r.err);
  assert_int_equal(r.code, 0);
  got = slurp(t->out);
  assert_same_lines(got, (const char *const *)d.want, d.n_want);
  free(got);
  run_free(&r);

  pid_t pid = dur_spawn(t, &d, durable);
  int fd = dur_open_fifo(&d, pid);
  dur_write(fd, d.input, d.len * 2 / 5);
  int64_t deadline = dur_now_ms() + (int64_t)(DUR_DEADLINE_S * 1000 * dur_scale());
  for (;;) {
    got = dur_committed(&d, &n_files);
    free(got);
    if (n_files > 0) break;
    dur_assert_running(&d, pid);
    if (dur_now_ms() > deadline)
      fail_msg("no checkpoint committed output within %d s", DUR_DEADLINE_S);
    dur_pause_ms(5);
  }
  dur_write(fd, d.input + d.len * 2 / 5, d.len * 7 / 10 - d.len * 2 / 5);
  assert_int_equal(kill(pid, SIGKILL), 0);
  assert_int_equal(dur_wait(pid), 1000 + SIGKILL);
  close(fd);
  dur_remove_rocksdb_dirs(pid);

  dur_replace_fifo(&d);
  r = run_tool(t, durable);
  if (r.code != 0) print_error("stderr: %s\n", r.err);
  assert_int_equal(r.code, 0);
  assert_non_null(strstr(r.err, "flink-agg: resuming from the newest complete checkpoint in"));
  run_free(&r);
  dur_assert_committed_all(&d);
  dur_free(&d);
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
  const char *first[] = {"--input",    d.fifo,
                         "--output",   d.outdir,
                         DUR_JOB_ARGS, "--state-backend",
                         "rocksdb",    "--checkpoint-dir",
                         d.ckpt,       "--checkpoint-interval",
                         "1h",         "--savepoint-on-exit",
                         d.sp,         NULL};
  const char *second[] = {"--input",    d.fifo,
                          "--output",   d.outdir,
                          DUR_JOB_ARGS, "--state-backend",
                          "hashmap",    "--checkpoint-dir",
                          d.ckpt,       "--checkpoint-interval",
                          "1h",         "--from-savepoint",
                          d.sp,         NULL};
  char manifest[256];
  char *err;
  run_t r;

  pid_t pid = dur_spawn(t, &d, first);
  int fd = dur_open_fifo(&d, pid);
  /* Once written, all but a pipe buffer of it has been read by the job. */
  dur_write(fd, d.input, d.len * 2 / 5);
  dur_assert_running(&d, pid);
  assert_int_equal(kill(pid, SIGTERM), 0);
  assert_int_equal(dur_wait(pid), 128 + SIGTERM);
  close(fd);
  err = slurp(d.err);
  if (strstr(err, "flink-agg: savepoint written to ") == NULL) fail_msg("stderr: %s", err);
  assert_non_null(strstr(err, "flink-agg: stopped by signal 15"));
  free(err);
  snprintf(manifest, sizeof(manifest), "%s/_manifest", d.sp);
  assert_int_equal(access(manifest, F_OK), 0);
  /* What the savepoint pre-committed: pending files, which only a restore from it
   * commits (a run from scratch would leave them and write their lines again). */
  char pending[8][64];
  size_t n_pending = 0;
  DIR *dir = opendir(d.outdir);
  struct dirent *e;
  assert_non_null(dir);
  while ((e = readdir(dir)) != NULL) {
    size_t len = strlen(e->d_name);
    if (len > 14 && strncmp(e->d_name, ".part-", 6) == 0 &&
        strcmp(e->d_name + len - 8, ".pending") == 0) {
      assert_true(n_pending < 8);
      snprintf(pending[n_pending++], sizeof(pending[0]), "%.*s", (int)(len - 9), e->d_name + 1);
    }
  }
  closedir(dir);
  assert_true(n_pending > 0);

  dur_replace_fifo(&d);
  r = run_tool(t, second);
  if (r.code != 0) print_error("stderr: %s\n", r.err);
  assert_int_equal(r.code, 0);
  assert_non_null(strstr(r.err, "flink-agg: starting from the savepoint"));
  run_free(&r);
  dur_assert_committed_all(&d);
  for (size_t i = 0; i < n_pending; i++) {
    char committed[256];
    snprintf(committed, sizeof(committed), "%s%s", d.outdir, pending[i]);
    if (access(committed, F_OK) != 0)
      fail_msg("the savepoint's pending file was not committed as %s", committed);
  }

  r = run_tool(t, second);
  assert_int_equal(r.code, 0);
  assert_non_null(strstr(r.err, "which is newer than the savepoint"));
  run_free(&r);
  dur_assert_committed_all(&d);
  dur_free(&d);
}

/* The id of the newest checkpoint in dir with a _manifest (complete), or 0. */
static long dur_newest_checkpoint(const char *dir) {
  DIR *d = opendir(dir);
  struct dirent *e;
  long newest = 0;
  if (d == NULL) return 0;
  while ((e = readdir(d)) != NULL) {
    char manifest[512];
    long id;
    if (strncmp(e->d_name, "chk-", 4) != 0) continue;
    id = strtol(e->d_name + 4, NULL, 10);
    snprintf(manifest, sizeof(manifest), "%s/%s/_manifest", dir, e->d_name);
    if (id > newest && access(manifest, F_OK) == 0) newest = id;
  }
  closedir(d);
  return newest;
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

  pid_t pid = dur_spawn(t, &d, first);
  int fd = dur_open_fifo(&d, pid);
  /* Returns when the job has read all but a pipe buffer (64 KiB) of it: past the line. */
  dur_write(fd, d.input, d.len * 2 / 5);
  long seen = dur_newest_checkpoint(d.ckpt);
  int64_t deadline = dur_now_ms() + (int64_t)(DUR_DEADLINE_S * 1000 * dur_scale());
  /* The next checkpoint may have begun before; the one after it began after the line. */
  while (dur_newest_checkpoint(d.ckpt) < seen + 2) {
    dur_assert_running(&d, pid);
    if (dur_now_ms() > deadline) fail_msg("no checkpoint completed within %d s", DUR_DEADLINE_S);
    dur_pause_ms(5);
  }
  assert_int_equal(kill(pid, SIGKILL), 0);
  assert_int_equal(dur_wait(pid), 1000 + SIGKILL);
  close(fd);

  dur_replace_fifo(&d);
  run_t r = run_tool(t, second);
  if (r.code != 0) print_error("stderr: %s\n", r.err);
  assert_int_equal(r.code, 0);
  assert_non_null(strstr(r.err, "flink-agg: resuming from the newest complete checkpoint in"));
  run_free(&r);
  dur_assert_committed_all(&d);
  dur_free(&d);
}

/* A savepoint that cannot be written (its directory was filled meanwhile) still stops
 * the job, and the exit status says it failed: 1, not 128 + 15. */
static void failed_savepoint_on_exit_exits_1(void **state) {
  tctx_t *t = *state;
  dur_ctx_t d;
  char blocker[256];
  dur_setup(t, &d);
  const char *args[] = {
      "--input", d.fifo, "--output", d.outdir, DUR_JOB_ARGS, "--savepoint-on-exit", d.sp, NULL};
  pid_t pid = dur_spawn(t, &d, args);
  int fd = dur_open_fifo(&d, pid);
  dur_write(fd, d.input, d.len / 10);
  assert_int_equal(mkdir(d.sp, 0755), 0);
  snprintf(blocker, sizeof(blocker), "%s/not-empty", d.sp);
  write_text(blocker, "x");
  dur_assert_running(&d, pid);
  assert_int_equal(kill(pid, SIGTERM), 0);
  assert_int_equal(dur_wait(pid), 1);
  close(fd);
  char *err = slurp(d.err);
  if (strstr(err, "flink-agg: no savepoint: ") == NULL ||
      strstr(err, "flink-agg: stopped by signal 15") == NULL)
    fail_msg("stderr: %s", err);
  free(err);
  dur_free(&d);
}

static void durable_options_usage_errors(void **state) {
  tctx_t *t = *state;
  char sp[160], blocker[200];
  snprintf(sp, sizeof(sp), "%s/old-savepoint", t->dir);
  snprintf(blocker, sizeof(blocker), "%s/x", sp);
  assert_int_equal(mkdir(sp, 0755), 0);
  write_text(blocker, "x");
  const usage_case_t cases[] = {
      {{"--input", "x", "--key", "k", "--time", "t", "--agg", "count", "--window", "tumbling:1s",
        "--state-backend", "leveldb", NULL},
       {"--state-backend", "leveldb"}},
      {{"--input", "x", "--key", "k", "--time", "t", "--agg", "count", "--window", "tumbling:1s",
        "--checkpoint-interval", "1s", NULL},
       {"--checkpoint-interval needs --checkpoint-dir", NULL}},
      {{"--input", "x", "--key", "k", "--time", "t", "--agg", "count", "--window", "tumbling:1s",
        "--checkpoint-dir", "c", "--checkpoint-interval", "0", NULL},
       {"--checkpoint-interval", "'0'"}},
      {{"--input", "x", "--key", "k", "--time", "t", "--agg", "count", "--window", "tumbling:1s",
        "--savepoint-on-exit", sp, NULL},
       {"--savepoint-on-exit", sp}},
      {{"--input", "x", "--key", "k", "--time", "t", "--agg", "count", "--window", "tumbling:1s",
        "--checkpoint-dir", "c", "--output", "o/", "--late-output", "o/", NULL},
       {"--late-output", "'o/'"}},
  };
  for (size_t i = 0; i < N_OF(cases); i++) {
    run_t r = run_tool(t, cases[i].args);
    if (r.code != 2 || strstr(r.err, cases[i].must_name[0]) == NULL ||
        (cases[i].must_name[1] != NULL && strstr(r.err, cases[i].must_name[1]) == NULL))
      print_error("case %zu: exit %d, stderr: %s\n", i, r.code, r.err);
    assert_int_equal(r.code, 2);
    assert_non_null(strstr(r.err, cases[i].must_name[0]));
    if (cases[i].must_name[1] != NULL) assert_non_null(strstr(r.err, cases[i].must_name[1]));
    run_free(&r);
  }
}

int main(void) {
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
  const struct CMUnitTest tests[] = {
      T(tumbling_sum),
      T(tumbling_count),
      T(tumbling_min),
      T(tumbling_max),
      T(tumbling_avg),
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
