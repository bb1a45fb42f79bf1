/*
 * The example programs and the benchmark, run as subprocesses on small hand-written
 * inputs. Binaries come from $FL_BUILD_DIR/{examples,bench}/, else ./examples and
 * ./bench (ctest runs tests in the build directory), else next to this test binary.
 *
 * Window results are written by several subtasks, so outputs are compared as sorted
 * lines. Only correctness is asserted, never speed.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <libgen.h>
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
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

/* A hung child is killed after this many seconds, times FL_TEST_TIMEOUT_SCALE (the
 * alarm survives exec). */
#define CHILD_TIMEOUT_S 60

static char g_dir[] = "/tmp/fl_test_examples_XXXXXX";

/* ---------------------------------------------------------------------------------- */
/* Helpers                                                                            */

static void path_in_dir(char *out, size_t size, const char *name) {
  snprintf(out, size, "%s/%s", g_dir, name);
}

static void write_text(const char *name, const char *text) {
  char path[PATH_MAX];
  path_in_dir(path, sizeof path, name);
  FILE *f = fopen(path, "w");
  assert_non_null(f);
  assert_int_equal(fputs(text, f) >= 0, 1);
  assert_int_equal(fclose(f), 0);
}

/* Reads a whole file into a NUL-terminated string (caller frees). */
static char *read_text(const char *path) {
  FILE *f = fopen(path, "r");
  char *buf = NULL;
  size_t len = 0, cap = 0;
  if (!f)
    return NULL;
  for (;;) {
    if (cap - len < 4096) {
      cap = cap ? cap * 2 : 8192;
      char *nb = realloc(buf, cap);
      assert_non_null(nb);
      buf = nb;
    }
    size_t n = fread(buf + len, 1, cap - len - 1, f);
    len += n;
    if (n == 0)
      break;
  }
  buf[len] = '\0';
  fclose(f);
  return buf;
}

static int cmp_str(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Asserts that the file's lines, sorted, are exactly `expected` (sorted here too). */
static void assert_sorted_lines(const char *path, const char **expected, size_t n) {
  char *text = read_text(path);
  assert_non_null(text);
  char **got = NULL;
  size_t count = 0;
  for (char *save = NULL, *line = strtok_r(text, "\n", &save); line;
       line = strtok_r(NULL, "\n", &save)) {
    char **ng = realloc(got, (count + 1) * sizeof *ng);
    assert_non_null(ng);
    got = ng;
    got[count++] = line;
  }
  const char **want = malloc((n ? n : 1) * sizeof *want);
  assert_non_null(want);
  memcpy(want, expected, n * sizeof *want);
  if (count)
    qsort(got, count, sizeof *got, cmp_str);
  if (n)
    qsort(want, n, sizeof *want, cmp_str);
  for (size_t i = 0; i < count && i < n; i++)
    assert_string_equal(got[i], want[i]);
  if (count != n)
    fail_msg("%s: %zu lines, expected %zu", path, count, n);
  free(want);
  free(got);
  free(text);
}

static void assert_file_contains(const char *path, const char *needle) {
  char *text = read_text(path);
  assert_non_null(text);
  if (!strstr(text, needle))
    fail_msg("%s does not contain \"%s\"; it holds:\n%s", path, needle, text);
  free(text);
}

/* Finds a built program: $FL_BUILD_DIR/<sub>/<name>, ./<sub>/<name>, or <sub>/<name>
 * next to this test binary. */
static void find_program(const char *sub, const char *name, char *out, size_t size) {
  const char *build = getenv("FL_BUILD_DIR");
  char self[PATH_MAX];
  ssize_t n;
  if (build && *build) {
    snprintf(out, size, "%s/%s/%s", build, sub, name);
    if (access(out, X_OK) == 0)
      return;
  }
  snprintf(out, size, "./%s/%s", sub, name);
  if (access(out, X_OK) == 0)
    return;
  n = readlink("/proc/self/exe", self, sizeof self - 1);
  if (n > 0) {
    self[n] = '\0';
    snprintf(out, size, "%s/%s/%s", dirname(self), sub, name);
    if (access(out, X_OK) == 0)
      return;
  }
  fail_msg("cannot find the program %s/%s (set FL_BUILD_DIR to the build directory)", sub,
           name);
}

/* Runs argv with stdout and stderr redirected to files of the temp dir; returns the
 * exit status, or 128 + signal. */
static int run_program(char *const argv[], const char *out_name, const char *err_name) {
  char out_path[PATH_MAX], err_path[PATH_MAX];
  path_in_dir(out_path, sizeof out_path, out_name);
  path_in_dir(err_path, sizeof err_path, err_name);
  fflush(stdout);
  fflush(stderr);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    int out = open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    int err = open(err_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (out < 0 || err < 0 || dup2(out, 1) < 0 || dup2(err, 2) < 0)
      _exit(126);
    close(out);
    close(err);
    const char *scale = getenv("FL_TEST_TIMEOUT_SCALE");
    long k = scale ? strtol(scale, NULL, 10) : 1;
    alarm((unsigned)(CHILD_TIMEOUT_S * (k > 0 && k < 100 ? k : 1)));
    execv(argv[0], argv);
    _exit(127);
  }
  int status = 0;
  while (waitpid(pid, &status, 0) < 0)
    assert_int_equal(errno, EINTR);
  if (WIFEXITED(status))
    return WEXITSTATUS(status);
  return 128 + WTERMSIG(status);
}

/* Runs and asserts the exit status, showing stderr when it differs. */
static void run_expect(char *const argv[], const char *out_name, const char *err_name,
                       int want) {
  int got = run_program(argv, out_name, err_name);
  if (got != want) {
    char out_path[PATH_MAX], err_path[PATH_MAX];
    path_in_dir(out_path, sizeof out_path, out_name);
    path_in_dir(err_path, sizeof err_path, err_name);
    char *out = read_text(out_path);
    char *err = read_text(err_path);
    /* stderr says why (the demos repeat a failed check there); stdout can be long */
    const char *head = out ? out : "(none)";
    if (out && strlen(out) > 600)
      out[600] = '\0';
    fail_msg("%s exited with %d, expected %d\n--- stderr:\n%s\n--- stdout (start):\n%s",
             argv[0], got, want, err ? err : "(none)", head);
  }
}

/* ---------------------------------------------------------------------------------- */
/* user_spend                                                                         */

/* B is a multiple of the 5-minute window. */
#define B "1700000100000"

static void user_spend_sums_per_user_and_window(void **state) {
  (void)state;
  char prog[PATH_MAX], in[PATH_MAX], out[PATH_MAX];
  find_program("examples", "user_spend", prog, sizeof prog);
  /* u2's 1.75 arrives 1 s after a later event (inside the 5 s out-of-orderness); line 6
   * is malformed; the last millisecond of a window still belongs to it. */
  write_text("spend_in.jsonl",
             "{\"user\":\"u1\",\"amount\":10.5,\"ts\":1700000101000}\n"
             "{\"user\":\"u2\",\"amount\":3.25,\"ts\":1700000102000}\n"
             "{\"user\":\"u1\",\"amount\":4.5,\"ts\":1700000399999}\n"
             "{\"user\":\"u1\",\"amount\":7,\"ts\":1700000400000}\n"
             "{\"user\":\"u2\",\"amount\":1.75,\"ts\":1700000399000}\n"
             "{\"user\":\"u3\" \"amount\":1}\n"
             "\n"
             "{\"user\":\"u3\",\"amount\":100,\"ts\":1700001000000}\n"
             "{\"user\":\"u3\",\"amount\":0.1,\"ts\":1700001000001}\n"
             "{\"user\":\"u3\",\"amount\":0.2,\"ts\":1700001299999}\n"
             "{\"user\":\"u4\",\"amount\":\"5\",\"ts\":1700001000000}\n");
  path_in_dir(in, sizeof in, "spend_in.jsonl");
  path_in_dir(out, sizeof out, "spend_out.jsonl");
  char *argv[] = {prog, "--input", in, "--output", out, "--parallelism", "2", NULL};
  run_expect(argv, "spend.stdout", "spend.stderr", 0);

  const char *expected[] = {
      "{\"user\":\"u1\",\"window_start\":" B ",\"window_end\":1700000400000,"
      "\"spend\":15,\"purchases\":2}",
      "{\"user\":\"u1\",\"window_start\":1700000400000,\"window_end\":1700000700000,"
      "\"spend\":7,\"purchases\":1}",
      "{\"user\":\"u2\",\"window_start\":" B ",\"window_end\":1700000400000,"
      "\"spend\":5,\"purchases\":2}",
      "{\"user\":\"u3\",\"window_start\":1700001000000,\"window_end\":1700001300000,"
      "\"spend\":100.3,\"purchases\":3}",
  };
  assert_sorted_lines(out, expected, sizeof expected / sizeof *expected);
  char err[PATH_MAX];
  path_in_dir(err, sizeof err, "spend.stderr");
  assert_file_contains(err, "skipping line 6: not valid JSON");
  assert_file_contains(err, "skipping line 11: \"amount\"");
  assert_file_contains(err, "8 purchases");
  assert_file_contains(err, "2 bad lines");
  assert_file_contains(err, "4 windows");
}

static void user_spend_drops_purchases_later_than_out_of_orderness(void **state) {
  (void)state;
  char prog[PATH_MAX], in[PATH_MAX], out[PATH_MAX];
  find_program("examples", "user_spend", prog, sizeof prog);
  /* A watermark follows every record (max_ts - 1000 - 1); B = ...100000, the first
   * window is [...100000, ...400000). After ...400000 the watermark is ...398999: the
   * first window is still open, so ...398000 joins it although it is behind the
   * watermark. After ...700000 the watermark is ...698999 and the first window has
   * fired: ...102000 then falls only into a removed window and is dropped. */
  write_text("late_in.jsonl",
             "{\"user\":\"u1\",\"amount\":1,\"ts\":1700000101000}\n"
             "{\"user\":\"u1\",\"amount\":2,\"ts\":1700000400000}\n"
             "{\"user\":\"u1\",\"amount\":4,\"ts\":1700000398000}\n"
             "{\"user\":\"u1\",\"amount\":8,\"ts\":1700000700000}\n"
             "{\"user\":\"u1\",\"amount\":16,\"ts\":1700000102000}\n");
  path_in_dir(in, sizeof in, "late_in.jsonl");
  path_in_dir(out, sizeof out, "late_out.jsonl");
  /* Parallelism 1: the single-reader source then feeds the window alone. (With more,
   * the window's watermark also waits for the other subtasks' empty source instances
   * to end, and whether they have ended when these few records arrive is a race.) */
  char *argv[] = {prog,     "--input", in, "--output", out, "--out-of-orderness", "1s",
                  "--watermark-interval", "0", "--parallelism", "1", NULL};
  run_expect(argv, "late.stdout", "late.stderr", 0);
  const char *expected[] = {
      "{\"user\":\"u1\",\"window_start\":" B ",\"window_end\":1700000400000,"
      "\"spend\":5,\"purchases\":2}",
      "{\"user\":\"u1\",\"window_start\":1700000400000,\"window_end\":1700000700000,"
      "\"spend\":2,\"purchases\":1}",
      "{\"user\":\"u1\",\"window_start\":1700000700000,\"window_end\":1700001000000,"
      "\"spend\":8,\"purchases\":1}",
  };
  assert_sorted_lines(out, expected, sizeof expected / sizeof *expected);
  char err[PATH_MAX];
  path_in_dir(err, sizeof err, "late.stderr");
  assert_file_contains(err, "5 purchases (spend 31)");
  assert_file_contains(err, "1 late (spend 16)");
}

static void user_spend_demo_balances_and_exits_zero(void **state) {
  (void)state;
  char prog[PATH_MAX], out[PATH_MAX];
  find_program("examples", "user_spend", prog, sizeof prog);
  char *argv[] = {prog, "--demo", NULL};
  run_expect(argv, "demo_spend.stdout", "demo_spend.stderr", 0);
  path_in_dir(out, sizeof out, "demo_spend.stdout");
  assert_file_contains(out, "purchases read:     3000 (2 bad lines skipped)");
  assert_file_contains(out, "late purchases:     0");
  assert_file_contains(out, "check in == out + late: OK");
  assert_file_contains(out, "\"operators\"");
}

/* ---------------------------------------------------------------------------------- */
/* session_tracker                                                                    */

/* T0 = 1700000000000; m = 60000 ms. Lines are in arrival order. */
static void session_tracker_closes_sessions_by_gap_and_timeout(void **state) {
  (void)state;
  char prog[PATH_MAX], in[PATH_MAX], out[PATH_MAX];
  find_program("examples", "session_tracker", prog, sizeof prog);
  /* u1: T0, +10m, +25m, then +56m (31 min later: gap) and +60m.
   * u2: every 20 min from T0; at +240m the session is 4 h old: timeout; then +260m.
   * u3: +1000, +5000, then +3000 arriving 2 s late (inside the 5 s bound).
   * u4: +10000, then +7000 arriving 3 s late: it moves the session start back.
   * u5: +100m and +130m, exactly the gap apart: one session. */
  write_text("clicks.jsonl",
             "{\"user\":\"u1\",\"ts\":1700000000000,\"page\":\"/\"}\n"
             "{\"user\":\"u2\",\"ts\":1700000000000,\"page\":\"/\"}\n"
             "{\"user\":\"u3\",\"ts\":1700000001000,\"page\":\"/a\"}\n"
             "{\"user\":\"u3\",\"ts\":1700000005000,\"page\":\"/c\"}\n"
             "{\"user\":\"u3\",\"ts\":1700000003000,\"page\":\"/b\"}\n"
             "{\"user\":\"u4\",\"ts\":1700000010000}\n"
             "{\"user\":\"u4\",\"ts\":1700000007000,\"page\":\"/early\"}\n"
             "not json\n"
             "{\"user\":\"u1\",\"ts\":1700000600000,\"page\":\"/x\"}\n"
             "{\"user\":\"u2\",\"ts\":1700001200000}\n"
             "{\"user\":\"u1\",\"ts\":1700001500000}\n"
             "{\"user\":\"u2\",\"ts\":1700002400000}\n"
             "{\"user\":\"u1\",\"ts\":1700003360000}\n"
             "{\"user\":\"u1\",\"ts\":1700003600000}\n"
             "{\"user\":\"u2\",\"ts\":1700003600000}\n"
             "{\"user\":\"u2\",\"ts\":1700004800000}\n"
             "{\"user\":\"u2\",\"ts\":1700006000000}\n"
             "{\"user\":\"u5\",\"ts\":1700006000000}\n"
             "{\"user\":\"u2\",\"ts\":1700007200000}\n"
             "{\"user\":\"u5\",\"ts\":1700007800000}\n"
             "{\"user\":\"u2\",\"ts\":1700008400000}\n"
             "{\"user\":\"u2\",\"ts\":1700009600000}\n"
             "{\"user\":\"u2\",\"ts\":1700010800000}\n"
             "{\"user\":\"u2\",\"ts\":1700012000000}\n"
             "{\"user\":\"u2\",\"ts\":1700013200000}\n"
             "{\"user\":\"u2\",\"ts\":1700014400000}\n"
             "{\"user\":\"u2\",\"ts\":1700015600000}\n");
  path_in_dir(in, sizeof in, "clicks.jsonl");
  path_in_dir(out, sizeof out, "sessions.jsonl");
  char *argv[] = {prog, "--input", in, "--output", out, "--parallelism", "2", NULL};
  run_expect(argv, "sessions.stdout", "sessions.stderr", 0);
  const char *expected[] = {
      "{\"user\":\"u1\",\"session_start\":1700000000000,\"session_end\":1700001500000,"
      "\"duration_ms\":1500000,\"events\":3,\"closed_by\":\"gap\"}",
      "{\"user\":\"u1\",\"session_start\":1700003360000,\"session_end\":1700003600000,"
      "\"duration_ms\":240000,\"events\":2,\"closed_by\":\"gap\"}",
      "{\"user\":\"u2\",\"session_start\":1700000000000,\"session_end\":1700013200000,"
      "\"duration_ms\":13200000,\"events\":12,\"closed_by\":\"timeout\"}",
      "{\"user\":\"u2\",\"session_start\":1700014400000,\"session_end\":1700015600000,"
      "\"duration_ms\":1200000,\"events\":2,\"closed_by\":\"gap\"}",
      "{\"user\":\"u3\",\"session_start\":1700000001000,\"session_end\":1700000005000,"
      "\"duration_ms\":4000,\"events\":3,\"closed_by\":\"gap\"}",
      "{\"user\":\"u4\",\"session_start\":1700000007000,\"session_end\":1700000010000,"
      "\"duration_ms\":3000,\"events\":2,\"closed_by\":\"gap\"}",
      "{\"user\":\"u5\",\"session_start\":1700006000000,\"session_end\":1700007800000,"
      "\"duration_ms\":1800000,\"events\":2,\"closed_by\":\"gap\"}",
  };
  assert_sorted_lines(out, expected, sizeof expected / sizeof *expected);
  char err[PATH_MAX];
  path_in_dir(err, sizeof err, "sessions.stderr");
  assert_file_contains(err, "skipping line 8: not valid JSON");
  assert_file_contains(err, "26 clicks, 1 bad lines, 7 sessions (6 gap, 1 timeout) of 26");
}

static void session_tracker_demo_balances_and_exits_zero(void **state) {
  (void)state;
  char prog[PATH_MAX], out[PATH_MAX];
  find_program("examples", "session_tracker", prog, sizeof prog);
  char *argv[] = {prog, "--demo", NULL};
  run_expect(argv, "demo_sessions.stdout", "demo_sessions.stderr", 0);
  path_in_dir(out, sizeof out, "demo_sessions.stdout");
  assert_file_contains(out, "check clicks read == clicks in sessions: OK");
  assert_file_contains(out, "(1 bad lines skipped)");
  assert_file_contains(out, "\"operators\"");
  /* the heavy users' sessions are cut by the timeout */
  assert_file_contains(out, "\"closed_by\":\"timeout\"");
}

/* ---------------------------------------------------------------------------------- */
/* The sample inputs of examples/data/ (docs/examples.md describes their output)      */

/* Sets path to $FL_SOURCE_DIR/examples/data/<name>; skips the test without it. */
static void sample_path(const char *name, char *path, size_t size) {
  const char *src = getenv("FL_SOURCE_DIR");
  if (!src || !*src) {
    skip();
    return;
  }
  snprintf(path, size, "%s/examples/data/%s", src, name);
  assert_int_equal(access(path, R_OK), 0);
}

static void sample_purchases_give_the_documented_windows(void **state) {
  (void)state;
  char prog[PATH_MAX], in[PATH_MAX], out[PATH_MAX];
  sample_path("purchases.jsonl", in, sizeof in);
  find_program("examples", "user_spend", prog, sizeof prog);
  path_in_dir(out, sizeof out, "sample_spend.jsonl");
  char *argv[] = {prog, "--input", in, "--output", out, NULL};
  run_expect(argv, "sample_spend.stdout", "sample_spend.stderr", 0);
  const char *expected[] = {
      "{\"user\":\"alice\",\"window_start\":1700000100000,\"window_end\":1700000400000,"
      "\"spend\":20,\"purchases\":2}",
      "{\"user\":\"alice\",\"window_start\":1700000400000,\"window_end\":1700000700000,"
      "\"spend\":35,\"purchases\":2}",
      "{\"user\":\"alice\",\"window_start\":1700000700000,\"window_end\":1700001000000,"
      "\"spend\":2.2,\"purchases\":1}",
      "{\"user\":\"bob\",\"window_start\":1700000100000,\"window_end\":1700000400000,"
      "\"spend\":24.99,\"purchases\":3}",
      "{\"user\":\"bob\",\"window_start\":1700001000000,\"window_end\":1700001300000,"
      "\"spend\":10,\"purchases\":1}",
      "{\"user\":\"carol\",\"window_start\":1700000100000,\"window_end\":1700000400000,"
      "\"spend\":42,\"purchases\":1}",
      "{\"user\":\"carol\",\"window_start\":1700000400000,\"window_end\":1700000700000,"
      "\"spend\":8.4,\"purchases\":1}",
      "{\"user\":\"carol\",\"window_start\":1700000700000,\"window_end\":1700001000000,"
      "\"spend\":0.6,\"purchases\":1}",
      "{\"user\":\"dave\",\"window_start\":1700000700000,\"window_end\":1700001000000,"
      "\"spend\":100,\"purchases\":2}",
  };
  assert_sorted_lines(out, expected, sizeof expected / sizeof *expected);
}

static void sample_clicks_give_the_documented_sessions(void **state) {
  (void)state;
  char prog[PATH_MAX], in[PATH_MAX], out[PATH_MAX];
  sample_path("clicks.jsonl", in, sizeof in);
  find_program("examples", "session_tracker", prog, sizeof prog);
  path_in_dir(out, sizeof out, "sample_sessions.jsonl");
  char *argv[] = {prog, "--input", in, "--output", out, NULL};
  run_expect(argv, "sample_sessions.stdout", "sample_sessions.stderr", 0);
  const char *expected[] = {
      "{\"user\":\"alice\",\"session_start\":1700000000000,\"session_end\":1700001500000,"
      "\"duration_ms\":1500000,\"events\":3,\"closed_by\":\"gap\"}",
      "{\"user\":\"alice\",\"session_start\":1700003360000,\"session_end\":1700003600000,"
      "\"duration_ms\":240000,\"events\":2,\"closed_by\":\"gap\"}",
      "{\"user\":\"bob\",\"session_start\":1700000000000,\"session_end\":1700013200000,"
      "\"duration_ms\":13200000,\"events\":12,\"closed_by\":\"timeout\"}",
      "{\"user\":\"bob\",\"session_start\":1700014400000,\"session_end\":1700015600000,"
      "\"duration_ms\":1200000,\"events\":2,\"closed_by\":\"gap\"}",
      "{\"user\":\"carol\",\"session_start\":1700000001000,\"session_end\":1700000005000,"
      "\"duration_ms\":4000,\"events\":3,\"closed_by\":\"gap\"}",
  };
  assert_sorted_lines(out, expected, sizeof expected / sizeof *expected);
}

/* ---------------------------------------------------------------------------------- */
/* flink-bench                                                                        */

static void bench_window_engine_matches_baseline(void **state) {
  (void)state;
  char prog[PATH_MAX], out[PATH_MAX];
  find_program("bench", "flink-bench", prog, sizeof prog);
  char *argv[] = {prog,         "window", "--events",        "200000", "--keys", "1000",
                  "--window-ms", "100",   "--parallelism",   "2",      "--events-per-ms",
                  "1",           NULL};
  run_expect(argv, "bench.stdout", "bench.stderr", 0);
  path_in_dir(out, sizeof out, "bench.stdout");
  json_error_t jerr;
  json_t *doc = json_load_file(out, 0, &jerr);
  if (!doc)
    fail_msg("bench output is not JSON: %s", jerr.text);
  assert_string_equal(json_string_value(json_object_get(doc, "bench")), "window");
  assert_int_equal(json_integer_value(json_object_get(doc, "events")), 200000);
  assert_int_equal(json_integer_value(json_object_get(doc, "keys")), 1000);
  assert_int_equal(json_integer_value(json_object_get(doc, "window_ms")), 100);
  assert_int_equal(json_integer_value(json_object_get(doc, "parallelism")), 2);
  assert_int_equal(json_integer_value(json_object_get(doc, "events_per_ms")), 1);
  assert_true(json_is_true(json_object_get(doc, "checksum_match")));
  /* One event per ms per subtask: 100000 ms of event time in 100 ms windows, 200 events
   * each over 1000 keys: every
   * window has between 1 and 200 distinct keys. */
  json_int_t results = json_integer_value(json_object_get(doc, "results"));
  assert_int_equal(results, json_integer_value(json_object_get(doc, "baseline_results")));
  assert_true(results > 1000 && results <= 200000);
  assert_true(json_is_number(json_object_get(doc, "engine_events_per_s")));
  assert_true(json_is_number(json_object_get(doc, "ratio")));
  json_decref(doc);
}

/* ---------------------------------------------------------------------------------- */

static int remove_entry(const char *dir, const char *name) {
  char path[PATH_MAX];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  return unlink(path);
}

static int group_setup(void **state) {
  (void)state;
  return mkdtemp(g_dir) ? 0 : -1;
}

static int group_teardown(void **state) {
  (void)state;
  static const char *files[] = {
      "spend_in.jsonl",     "spend_out.jsonl",     "spend.stdout",       "spend.stderr",
      "late_in.jsonl",      "late_out.jsonl",      "late.stdout",        "late.stderr",
      "demo_spend.stdout",  "demo_spend.stderr",   "clicks.jsonl",       "sessions.jsonl",
      "sessions.stdout",    "sessions.stderr",     "demo_sessions.stdout",
      "demo_sessions.stderr", "bench.stdout",      "bench.stderr",
      "sample_spend.jsonl", "sample_spend.stdout", "sample_spend.stderr",
      "sample_sessions.jsonl", "sample_sessions.stdout", "sample_sessions.stderr",
  };
  for (size_t i = 0; i < sizeof files / sizeof *files; i++)
    remove_entry(g_dir, files[i]);
  rmdir(g_dir);
  return 0;
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(user_spend_sums_per_user_and_window),
      cmocka_unit_test(user_spend_drops_purchases_later_than_out_of_orderness),
      cmocka_unit_test(user_spend_demo_balances_and_exits_zero),
      cmocka_unit_test(session_tracker_closes_sessions_by_gap_and_timeout),
      cmocka_unit_test(session_tracker_demo_balances_and_exits_zero),
      cmocka_unit_test(sample_purchases_give_the_documented_windows),
      cmocka_unit_test(sample_clicks_give_the_documented_sessions),
      cmocka_unit_test(bench_window_engine_matches_baseline),
  };
  return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
