/*
 * The example programs and the benchmark, run as subprocesses on small hand-written
 * inputs. Binaries come from $FL_BUILD_DIR/{examples,bench}/, else ./examples and
 * ./bench (ctest runs tests in the build directory), else next to this test binary.
 *
 * Window results are written by several subtasks, so outputs are compared as sorted
 * lines. Only correctness is asserted, never speed.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <jansson.h>
#include <libgen.h>
#include <limits.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
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
  if (!f) return NULL;
  for (;;) {
    if (cap - len < 4096) {
      cap = cap ? cap * 2 : 8192;
      char *nb = realloc(buf, cap);
      assert_non_null(nb);
      buf = nb;
    }
    size_t n = fread(buf + len, 1, cap - len - 1, f);
    len += n;
    if (n == 0) break;
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
  if (count) qsort(got, count, sizeof *got, cmp_str);
  if (n) qsort(want, n, sizeof *want, cmp_str);
  for (size_t i = 0; i < count && i < n; i++) assert_string_equal(got[i], want[i]);
  if (count != n) fail_msg("%s: %zu lines, expected %zu", path, count, n);
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
    if (access(out, X_OK) == 0) return;
  }
  snprintf(out, size, "./%s/%s", sub, name);
  if (access(out, X_OK) == 0) return;
  n = readlink("/proc/self/exe", self, sizeof self - 1);
  if (n > 0) {
    self[n] = '\0';
    snprintf(out, size, "%s/%s/%s", dirname(self), sub, name);
    if (access(out, X_OK) == 0) return;
  }
  fail_msg("cannot find the program %s/%s (set FL_BUILD_DIR to the build directory)", sub, name);
}

/* Starts argv with stdout and stderr redirected to files of the temp dir (names
 * relative to it) and stdin from /dev/null; returns its pid. */
static pid_t start_program(char *const argv[], const char *out_name, const char *err_name) {
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
    int in = open("/dev/null", O_RDONLY);
    if (out < 0 || err < 0 || in < 0 || dup2(out, 1) < 0 || dup2(err, 2) < 0 || dup2(in, 0) < 0)
      _exit(126);
    close(out);
    close(err);
    close(in);
    const char *scale = getenv("FL_TEST_TIMEOUT_SCALE");
    long k = scale ? strtol(scale, NULL, 10) : 1;
    alarm((unsigned)(CHILD_TIMEOUT_S * (k > 0 && k < 100 ? k : 1)));
    execv(argv[0], argv);
    _exit(127);
  }
  return pid;
}

/* Waits for a child; returns its exit status, or 128 + signal. */
static int wait_program(pid_t pid) {
  int status = 0;
  while (waitpid(pid, &status, 0) < 0) assert_int_equal(errno, EINTR);
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  return 128 + WTERMSIG(status);
}

/* Runs argv to its end: the exit status, or 128 + signal. */
static int run_program(char *const argv[], const char *out_name, const char *err_name) {
  return wait_program(start_program(argv, out_name, err_name));
}

/* Runs and asserts the exit status, showing stderr when it differs. */
static void run_expect(char *const argv[], const char *out_name, const char *err_name, int want) {
  int got = run_program(argv, out_name, err_name);
  if (got != want) {
    char out_path[PATH_MAX], err_path[PATH_MAX];
    path_in_dir(out_path, sizeof out_path, out_name);
    path_in_dir(err_path, sizeof err_path, err_name);
    char *out = read_text(out_path);
    char *err = read_text(err_path);
    /* stderr says why (the demos repeat a failed check there); stdout can be long */
    const char *head = out ? out : "(none)";
    if (out && strlen(out) > 600) out[600] = '\0';
    fail_msg("%s exited with %d, expected %d\n--- stderr:\n%s\n--- stdout (start):\n%s", argv[0],
             got, want, err ? err : "(none)", head);
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
      "{\"user\":\"u1\",\"window_start\":" B
      ",\"window_end\":1700000400000,"
      "\"spend\":15,\"purchases\":2}",
      "{\"user\":\"u1\",\"window_start\":1700000400000,\"window_end\":1700000700000,"
      "\"spend\":7,\"purchases\":1}",
      "{\"user\":\"u2\",\"window_start\":" B
      ",\"window_end\":1700000400000,"
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
  char *argv[] = {prog, "--input",
                  in,   "--output",
                  out,  "--out-of-orderness",
                  "1s", "--watermark-interval",
                  "0",  "--parallelism",
                  "1",  NULL};
  run_expect(argv, "late.stdout", "late.stderr", 0);
  const char *expected[] = {
      "{\"user\":\"u1\",\"window_start\":" B
      ",\"window_end\":1700000400000,"
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
/* Checkpoints: killed with SIGKILL and resumed, exactly-once output                  */
/*
 * A run with --state-backend rocksdb --checkpoint-dir reads its input from a FIFO that
 * the test feeds, so it cannot end before the test lets it: the test writes the first
 * part of the input, waits until a committed part-* file shows that a checkpoint
 * completed with output, writes more (output that no checkpoint covers yet), and kills
 * the process with SIGKILL. The FIFO is then replaced by a regular file with the whole
 * input at the same path (the lines source can seek back only in a regular file), and
 * the same command runs to the end, resuming from the newest checkpoint. The committed
 * lines must equal, as a sorted multiset, both the lines computed here from the input
 * and the output of an uninterrupted run without checkpoints.
 */

/* Polling deadline for what a child does on its own (a checkpoint), scaled. */
#define DURABLE_DEADLINE_S 20
#define DURABLE_CHECKPOINT_INTERVAL "50ms"

static double timeout_scale_env(void) {
  const char *s = getenv("FL_TEST_TIMEOUT_SCALE");
  double v = s ? atof(s) : 1.0;
  return v > 0 ? v : 1.0;
}

static int64_t mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void pause_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {}
}

static int rm_entry(const char *path, const struct stat *st, int type, struct FTW *ftw) {
  (void)st;
  (void)type;
  (void)ftw;
  remove(path);
  return 0;
}

static void rm_tree(const char *path) { nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS); }

/* The RocksDB working directories a killed child left (the library names them
 * /tmp/flink-rocksdb-<pid>-<attempt>, and removes them itself on a clean exit). */
static void remove_rocksdb_dirs_of(pid_t pid) {
  char prefix[64];
  int n = snprintf(prefix, sizeof prefix, "flink-rocksdb-%d-", (int)pid);
  DIR *d = opendir("/tmp");
  struct dirent *e;
  if (!d) return;
  while ((e = readdir(d))) {
    char path[PATH_MAX];
    if (strncmp(e->d_name, prefix, (size_t)n) != 0) continue;
    snprintf(path, sizeof path, "/tmp/%s", e->d_name);
    rm_tree(path);
  }
  closedir(d);
}

/* Fails the test if the child already exited (showing its stderr). */
static void assert_running(pid_t pid, const char *err_name) {
  int status;
  pid_t r = waitpid(pid, &status, WNOHANG);
  if (r == 0) return;
  char err_path[PATH_MAX];
  path_in_dir(err_path, sizeof err_path, err_name);
  char *err = read_text(err_path);
  fail_msg("the program ended early (status 0x%x); stderr:\n%s", status, err ? err : "");
}

/* Opens the FIFO for writing once the child opened it for reading. */
static int open_fifo_writer(const char *fifo, pid_t pid, const char *err_name) {
  int64_t deadline = mono_ms() + (int64_t)(DURABLE_DEADLINE_S * 1000 * timeout_scale_env());
  for (;;) {
    int fd = open(fifo, O_WRONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd >= 0) {
      int fl = fcntl(fd, F_GETFL);
      assert_int_equal(fcntl(fd, F_SETFL, fl & ~O_NONBLOCK), 0);
      return fd;
    }
    assert_int_equal(errno, ENXIO); /* no reader yet */
    assert_running(pid, err_name);
    if (mono_ms() > deadline) fail_msg("the program did not open %s", fifo);
    pause_ms(2);
  }
}

static void write_all(int fd, const char *data, size_t len) {
  while (len > 0) {
    ssize_t n = write(fd, data, len);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) fail_msg("writing to the FIFO failed: %s", strerror(errno));
    data += n;
    len -= (size_t)n;
  }
}

/* Whether dir holds a committed output file (part-*): a checkpoint completed after the
 * job wrote output, and its sink committed it. */
static bool has_committed_output(const char *dir) {
  DIR *d = opendir(dir);
  struct dirent *e;
  bool found = false;
  if (!d) return false;
  while (!found && (e = readdir(d))) found = strncmp(e->d_name, "part-", 5) == 0;
  closedir(d);
  return found;
}

static bool has_manifest(const char *root) {
  DIR *d = opendir(root);
  struct dirent *e;
  bool found = false;
  if (!d) return false;
  while (!found && (e = readdir(d))) {
    char p[2 * PATH_MAX];
    if (strncmp(e->d_name, "chk-", 4) != 0) continue;
    snprintf(p, sizeof p, "%s/%s/_manifest", root, e->d_name);
    found = access(p, F_OK) == 0;
  }
  closedir(d);
  return found;
}

typedef struct lines {
  char **v;
  size_t n, cap;
} lines_t;

static void lines_push(lines_t *l, const char *s, size_t len) {
  if (l->n == l->cap) {
    l->cap = l->cap ? l->cap * 2 : 1024;
    l->v = realloc(l->v, l->cap * sizeof *l->v);
    assert_non_null(l->v);
  }
  l->v[l->n] = strndup(s, len);
  assert_non_null(l->v[l->n]);
  l->n++;
}

static void lines_free(lines_t *l) {
  for (size_t i = 0; i < l->n; i++) free(l->v[i]);
  free(l->v);
  memset(l, 0, sizeof *l);
}

static void lines_sort(lines_t *l) {
  if (l->n) qsort(l->v, l->n, sizeof *l->v, cmp_str);
}

/* Adds every line of the file at path. */
static void lines_read_file(lines_t *l, const char *path) {
  char *text = read_text(path);
  if (!text) fail_msg("cannot read %s", path);
  for (char *p = text; *p;) {
    char *nl = strchr(p, '\n');
    if (!nl) fail_msg("%s does not end with a newline", path);
    lines_push(l, p, (size_t)(nl - p));
    p = nl + 1;
  }
  free(text);
}

/* The committed output of a directory: the lines of its files whose names do not start
 * with '.' (in-progress and pending files do), sorted. */
static void lines_read_committed(lines_t *l, const char *dir) {
  DIR *d = opendir(dir);
  struct dirent *e;
  if (!d) fail_msg("cannot list %s", dir);
  while ((e = readdir(d))) {
    char p[2 * PATH_MAX];
    if (e->d_name[0] == '.') continue;
    snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
    lines_read_file(l, p);
  }
  closedir(d);
  lines_sort(l);
}

/* Asserts that got and want (both sorted) hold the same lines; shows the first
 * difference. */
static void assert_same_sorted(const char *what, const lines_t *got, const lines_t *want) {
  size_t i = 0, j = 0;
  while (i < got->n || j < want->n) {
    int c = i == got->n ? 1 : j == want->n ? -1 : strcmp(got->v[i], want->v[j]);
    if (c != 0)
      fail_msg("%s: %zu lines, expected %zu; first difference: %s %s", what, got->n, want->n,
               c < 0 ? "unexpected" : "missing", c < 0 ? got->v[i] : want->v[j]);
    i++;
    j++;
  }
}

typedef struct durable_case {
  const char *name;    /* subdirectory of the temp dir */
  const char *program; /* in examples/ */
  const char *input;   /* the whole input */
  size_t input_len;
  const lines_t *expected;       /* sorted */
  const char *const *extra_args; /* NULL-terminated options of both kinds of run */
} durable_case_t;

/* Runs the kill-and-resume scenario described above for one example. */
static void run_killed_and_resumed(const durable_case_t *c) {
  char prog[PATH_MAX], dir[2048], full[PATH_MAX], fifo[PATH_MAX], ref[PATH_MAX];
  char out[PATH_MAX], ckpt[PATH_MAX], name_out[128], name_err[128];
  char *argv[48];
  size_t n = 0;
  find_program("examples", c->program, prog, sizeof prog);
  path_in_dir(dir, sizeof dir, c->name);
  rm_tree(dir);
  assert_int_equal(mkdir(dir, 0755), 0);
  snprintf(full, sizeof full, "%s/input.jsonl", dir);
  snprintf(fifo, sizeof fifo, "%s/in.jsonl", dir);
  snprintf(ref, sizeof ref, "%s/reference.jsonl", dir);
  snprintf(out, sizeof out, "%s/out", dir);
  snprintf(ckpt, sizeof ckpt, "%s/checkpoints", dir);
  FILE *f = fopen(full, "w");
  assert_non_null(f);
  assert_int_equal(fwrite(c->input, 1, c->input_len, f), c->input_len);
  assert_int_equal(fclose(f), 0);

  /* The uninterrupted run, without checkpoints. */
  argv[n++] = prog;
  argv[n++] = "--input";
  argv[n++] = full;
  argv[n++] = "--output";
  argv[n++] = ref;
  for (const char *const *a = c->extra_args; *a; a++) argv[n++] = (char *)*a;
  argv[n] = NULL;
  snprintf(name_out, sizeof name_out, "%s/reference.stdout", c->name);
  snprintf(name_err, sizeof name_err, "%s/reference.stderr", c->name);
  run_expect(argv, name_out, name_err, 0);
  lines_t got = {0};
  lines_read_file(&got, ref);
  lines_sort(&got);
  assert_same_sorted("the uninterrupted run", &got, c->expected);
  lines_free(&got);

  /* The durable run, from the FIFO. */
  n = 0;
  argv[n++] = prog;
  argv[n++] = "--input";
  argv[n++] = fifo;
  argv[n++] = "--output";
  argv[n++] = out;
  argv[n++] = "--state-backend";
  argv[n++] = "rocksdb";
  argv[n++] = "--checkpoint-dir";
  argv[n++] = ckpt;
  argv[n++] = "--checkpoint-interval";
  argv[n++] = DURABLE_CHECKPOINT_INTERVAL;
  for (const char *const *a = c->extra_args; *a; a++) argv[n++] = (char *)*a;
  argv[n] = NULL;
  assert_int_equal(mkfifo(fifo, 0644), 0);
  snprintf(name_out, sizeof name_out, "%s/killed.stdout", c->name);
  snprintf(name_err, sizeof name_err, "%s/killed.stderr", c->name);
  pid_t pid = start_program(argv, name_out, name_err);
  int fd = open_fifo_writer(fifo, pid, name_err);
  size_t part_a = c->input_len * 2 / 5, part_b = c->input_len * 7 / 10;
  write_all(fd, c->input, part_a);
  int64_t deadline = mono_ms() + (int64_t)(DURABLE_DEADLINE_S * 1000 * timeout_scale_env());
  while (!has_committed_output(out)) {
    assert_running(pid, name_err);
    if (mono_ms() > deadline)
      fail_msg("no checkpoint committed output within %d s", DURABLE_DEADLINE_S);
    pause_ms(5);
  }
  assert_true(has_manifest(ckpt));
  write_all(fd, c->input + part_a, part_b - part_a);
  assert_int_equal(kill(pid, SIGKILL), 0);
  assert_int_equal(wait_program(pid), 128 + SIGKILL);
  close(fd);
  remove_rocksdb_dirs_of(pid);
  /* Killed mid-way: some output is committed, not all of it. */
  lines_read_committed(&got, out);
  assert_true(got.n > 0 && got.n < c->expected->n);
  lines_free(&got);

  /* The same command again, now with the whole input in a regular file. */
  assert_int_equal(unlink(fifo), 0);
  assert_int_equal(link(full, fifo), 0);
  snprintf(name_out, sizeof name_out, "%s/resumed.stdout", c->name);
  snprintf(name_err, sizeof name_err, "%s/resumed.stderr", c->name);
  run_expect(argv, name_out, name_err, 0);
  char err_path[PATH_MAX];
  path_in_dir(err_path, sizeof err_path, name_err);
  assert_file_contains(err_path, "resuming from the newest complete checkpoint in");
  lines_read_committed(&got, out);
  assert_same_sorted("the committed output of the killed and resumed runs", &got, c->expected);
  lines_free(&got);
  rm_tree(dir);
}

/* splitmix64: the inputs are the same on every run. */
static uint64_t mix64(uint64_t *state) {
  uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

typedef struct text {
  char *data;
  size_t len, cap;
} text_t;

static void text_printf(text_t *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void text_printf(text_t *t, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  assert_true(n >= 0);
  if (t->len + (size_t)n + 1 > t->cap) {
    t->cap = (t->len + (size_t)n + 1) * 2;
    t->data = realloc(t->data, t->cap);
    assert_non_null(t->data);
  }
  va_start(ap, fmt);
  vsnprintf(t->data + t->len, (size_t)n + 1, fmt, ap);
  va_end(ap);
  t->len += (size_t)n;
}

/* Event i happens at about BASE + i s; 5% of the lines arrive up to 4 s late, within
 * the examples' default 5 s out-of-orderness, so no event is ever late and the results
 * do not depend on when watermarks travel. Every 10000th line is malformed (skipped). */
#define DURABLE_EVENTS 60000
#define DURABLE_BASE_TS INT64_C(1700000100000) /* a multiple of 5 minutes */

static int64_t durable_ts(int64_t i, uint64_t r) {
  int64_t ts = DURABLE_BASE_TS + i * 1000 + (int64_t)(r % 1000);
  if ((r >> 10) % 20 == 0) ts -= 1 + (int64_t)((r >> 20) % 3000);
  return ts;
}

/* user_spend: 300 users, integer amounts (sums are exact in any order). */
typedef struct purchase {
  int user;
  int64_t start; /* the 5-minute window */
  int64_t amount;
} purchase_t;

static int cmp_purchase(const void *a, const void *b) {
  const purchase_t *x = a, *y = b;
  if (x->user != y->user) return x->user < y->user ? -1 : 1;
  return x->start < y->start ? -1 : x->start > y->start;
}

static void user_spend_input(text_t *in, lines_t *expected) {
  purchase_t *p = calloc(DURABLE_EVENTS, sizeof *p);
  uint64_t rng = 11;
  char buf[256];
  assert_non_null(p);
  for (int64_t i = 0; i < DURABLE_EVENTS; i++) {
    uint64_t r = mix64(&rng);
    int64_t ts = durable_ts(i, r);
    p[i].user = (int)((r >> 40) % 300);
    p[i].amount = 1 + (int64_t)((r >> 50) % 250);
    p[i].start = ts - ts % 300000;
    text_printf(in, "{\"user\":\"u%03d\",\"amount\":%" PRId64 ",\"ts\":%" PRId64 "}\n", p[i].user,
                p[i].amount, ts);
    if (i % 10000 == 5000) text_printf(in, "{\"user\":\"u001\",\"amount\":\n");
  }
  /* The expected windows, straight from the definition: per (user, window) the sum and
   * the number of purchases. */
  qsort(p, DURABLE_EVENTS, sizeof *p, cmp_purchase);
  for (size_t i = 0; i < DURABLE_EVENTS;) {
    size_t j = i;
    int64_t sum = 0;
    for (; j < DURABLE_EVENTS && cmp_purchase(&p[i], &p[j]) == 0; j++) sum += p[j].amount;
    int len = snprintf(buf, sizeof buf,
                       "{\"user\":\"u%03d\",\"window_start\":%" PRId64 ",\"window_end\":%" PRId64
                       ",\"spend\":%" PRId64 ",\"purchases\":%zu}",
                       p[i].user, p[i].start, p[i].start + 300000, sum, j - i);
    lines_push(expected, buf, (size_t)len);
    i = j;
  }
  lines_sort(expected);
  free(p);
}

static void user_spend_killed_and_resumed_commits_exactly_once(void **state) {
  (void)state;
  text_t in = {0};
  lines_t expected = {0};
  user_spend_input(&in, &expected);
  assert_true(in.len > 2 * 1000 * 1000 && expected.n > 10000);
  static const char *const extra[] = {"--parallelism", "2", NULL};
  durable_case_t c = {"durable-user_spend", "user_spend", in.data, in.len, &expected, extra};
  run_killed_and_resumed(&c);
  lines_free(&expected);
  free(in.data);
}

/* session_tracker with --gap 15m --max-session 2h: 400 users clicking about every 400 s
 * each, so sessions close by gap and by timeout. The sessions expected are computed by
 * applying the rules of examples/session_tracker.c to each user's clicks in line order:
 * a click more than the gap after the session's last one closes it ("gap"), a click at
 * least the maximum duration after its start closes it ("timeout"), and either click
 * opens the next session; otherwise the click joins (the start moves back, or the last
 * forward, as needed). The event-time timer only ever closes a session no later click
 * could join (clicks are never late), so it changes nothing. */
#define TRACKER_USERS 400
#define TRACKER_GAP_MS INT64_C(900000)
#define TRACKER_MAX_MS INT64_C(7200000)

typedef struct open_session {
  bool open;
  int64_t start, last;
  uint64_t count;
} open_session_t;

static void push_session(lines_t *l, int user, const open_session_t *s, bool timeout) {
  char buf[256];
  int len =
      snprintf(buf, sizeof buf,
               "{\"user\":\"u%03d\",\"session_start\":%" PRId64 ",\"session_end\":%" PRId64
               ",\"duration_ms\":%" PRId64 ",\"events\":%" PRIu64 ",\"closed_by\":\"%s\"}",
               user, s->start, s->last, s->last - s->start, s->count, timeout ? "timeout" : "gap");
  lines_push(l, buf, (size_t)len);
}

static void session_tracker_input(text_t *in, lines_t *expected, size_t *timeouts) {
  open_session_t *open = calloc(TRACKER_USERS, sizeof *open);
  uint64_t rng = 23;
  assert_non_null(open);
  *timeouts = 0;
  for (int64_t i = 0; i < DURABLE_EVENTS; i++) {
    uint64_t r = mix64(&rng);
    int64_t ts = durable_ts(i, r);
    int u = (int)((r >> 40) % TRACKER_USERS);
    text_printf(in, "{\"user\":\"u%03d\",\"ts\":%" PRId64 ",\"page\":\"/p%d\"}\n", u, ts,
                (int)((r >> 50) % 7));
    if (i % 10000 == 5000) text_printf(in, "{\"user\":\"u002\",\"page\":\"/no-time\"}\n");
    open_session_t *s = &open[u];
    if (s->open) {
      bool gap = ts > s->last + TRACKER_GAP_MS;
      bool timeout = !gap && ts - s->start >= TRACKER_MAX_MS;
      if (gap || timeout) {
        push_session(expected, u, s, timeout);
        *timeouts += timeout;
        s->open = false;
      } else {
        s->count++;
        if (ts < s->start) s->start = ts;
        if (ts > s->last) s->last = ts;
      }
    }
    if (!s->open) *s = (open_session_t){true, ts, ts, 1};
  }
  for (int u = 0; u < TRACKER_USERS; u++)
    if (open[u].open) push_session(expected, u, &open[u], false);
  lines_sort(expected);
  free(open);
}

static void session_tracker_killed_and_resumed_commits_exactly_once(void **state) {
  (void)state;
  text_t in = {0};
  lines_t expected = {0};
  size_t timeouts = 0;
  session_tracker_input(&in, &expected, &timeouts);
  /* Enough sessions of both kinds for the comparison to mean something. */
  assert_true(in.len > 2 * 1000 * 1000 && expected.n > 3000 && timeouts > 100);
  static const char *const extra[] = {"--parallelism", "2",  "--gap", "15m",
                                      "--max-session", "2h", NULL};
  durable_case_t c = {
      "durable-session_tracker", "session_tracker", in.data, in.len, &expected, extra};
  run_killed_and_resumed(&c);
  lines_free(&expected);
  free(in.data);
}

static void checkpoint_mode_needs_an_output_directory(void **state) {
  (void)state;
  char prog[PATH_MAX], in[PATH_MAX], file[PATH_MAX], ckpt[PATH_MAX], err[PATH_MAX];
  static const char *const programs[] = {"user_spend", "session_tracker"};
  write_text("durable_usage.jsonl", "");
  path_in_dir(in, sizeof in, "durable_usage.jsonl");
  path_in_dir(file, sizeof file, "durable_usage.jsonl");
  path_in_dir(ckpt, sizeof ckpt, "durable_usage_ckpt");
  path_in_dir(err, sizeof err, "durable_usage.stderr");
  for (size_t i = 0; i < 2; i++) {
    find_program("examples", programs[i], prog, sizeof prog);
    /* no --output, --output -, --output naming a file */
    char *no_output[] = {prog, "--input", in, "--checkpoint-dir", ckpt, NULL};
    run_expect(no_output, "durable_usage.stdout", "durable_usage.stderr", 2);
    assert_file_contains(err, "--checkpoint-dir needs --output DIR");
    char *stdout_output[] = {prog, "--input", in, "--output", "-", "--checkpoint-dir", ckpt, NULL};
    run_expect(stdout_output, "durable_usage.stdout", "durable_usage.stderr", 2);
    assert_file_contains(err, "--checkpoint-dir needs --output DIR");
    char *file_output[] = {prog, "--input", in, "--output", file, "--checkpoint-dir", ckpt, NULL};
    run_expect(file_output, "durable_usage.stdout", "durable_usage.stderr", 2);
    assert_file_contains(err, "--output must be a directory");
    char *interval_alone[] = {prog, "--input", in, "--checkpoint-interval", "1s", NULL};
    run_expect(interval_alone, "durable_usage.stdout", "durable_usage.stderr", 2);
    assert_file_contains(err, "--checkpoint-interval needs --checkpoint-dir");
    char *bad_backend[] = {prog, "--input", in, "--state-backend", "leveldb", NULL};
    run_expect(bad_backend, "durable_usage.stdout", "durable_usage.stderr", 2);
    assert_file_contains(err, "--state-backend must be hashmap or rocksdb, got 'leveldb'");
  }
  /* None of them started a job: nothing was written. */
  assert_int_equal(access(ckpt, F_OK), -1);
}

/* ---------------------------------------------------------------------------------- */
/* --set and -X                                                                       */

/* Asserts that the file does not contain needle. */
static void assert_file_lacks(const char *path, const char *needle) {
  char *text = read_text(path);
  assert_non_null(text);
  if (strstr(text, needle)) fail_msg("%s contains \"%s\":\n%s", path, needle, text);
  free(text);
}

/*
 * --set reaches any configuration key and wins over the example's own options: the input
 * of user_spend_drops_purchases_later_than_out_of_orderness with --watermark-interval 1h
 * and --parallelism 4 has no late purchase, but --set pipeline.auto-watermark-interval=0
 * and --set parallelism=1 after them make the run of that test, with its late purchase.
 * A bad key or value stops each example before it reads anything, with the library's
 * message and exit status 2.
 */
static void examples_set_any_configuration_key(void **state) {
  (void)state;
  char prog[PATH_MAX], in[PATH_MAX], out[PATH_MAX], err[PATH_MAX];
  find_program("examples", "user_spend", prog, sizeof prog);
  write_text("set_in.jsonl",
             "{\"user\":\"u1\",\"amount\":1,\"ts\":1700000101000}\n"
             "{\"user\":\"u1\",\"amount\":2,\"ts\":1700000400000}\n"
             "{\"user\":\"u1\",\"amount\":4,\"ts\":1700000398000}\n"
             "{\"user\":\"u1\",\"amount\":8,\"ts\":1700000700000}\n"
             "{\"user\":\"u1\",\"amount\":16,\"ts\":1700000102000}\n");
  path_in_dir(in, sizeof in, "set_in.jsonl");
  path_in_dir(out, sizeof out, "set_out.jsonl");
  path_in_dir(err, sizeof err, "set.stderr");
  char *argv[] = {prog,
                  "--input",
                  in,
                  "--output",
                  out,
                  "--out-of-orderness",
                  "1s",
                  "--watermark-interval",
                  "1h",
                  "--parallelism",
                  "4",
                  "--set",
                  "pipeline.auto-watermark-interval=0",
                  "--set=parallelism=1",
                  NULL};
  run_expect(argv, "set.stdout", "set.stderr", 0);
  assert_file_contains(err, "5 purchases (spend 31)");
  assert_file_contains(err, "1 late (spend 16)");

  static const char *const programs[] = {"user_spend", "session_tracker"};
  for (size_t i = 0; i < 2; i++) {
    find_program("examples", programs[i], prog, sizeof prog);
    char *typo[] = {prog, "--input", in, "--set", "paralelism=2", NULL};
    run_expect(typo, "set.stdout", "set.stderr", 2);
    assert_file_contains(err,
                         "--set: unknown configuration key \"paralelism\" (did you mean "
                         "\"parallelism\"?)");
    char *bad_value[] = {prog, "--input", in, "--set", "state.backend.incremental=maybe", NULL};
    run_expect(bad_value, "set.stdout", "set.stderr", 2);
    assert_file_contains(err,
                         "configuration key \"state.backend.incremental\": not one of "
                         "false|true: \"maybe\"");
    char *no_value[] = {prog, "--input", in, "--set", "parallelism", NULL};
    run_expect(no_value, "set.stdout", "set.stderr", 2);
    assert_file_contains(err, "--set takes KEY=VALUE");
    assert_file_lacks(err, "purchases (spend");
    assert_file_lacks(err, "sessions (");
  }
}

/*
 * kafka_features takes --set and -X: librdkafka properties reach every client it makes
 * (its sample producer first: a property librdkafka refuses stops it there, named
 * without its value), and a run with valid ones on the in-process mock cluster ends with
 * the features' spend equal to the purchases'.
 */
static void kafka_features_takes_set_and_kafka_properties(void **state) {
  (void)state;
#if defined(__SANITIZE_THREAD__)
  /* Built with ThreadSanitizer, kafka_features dies in the thread of librdkafka's
   * in-process mock cluster before any of its own code runs (also without these
   * options): librdkafka starts it with C11 threads, which this ThreadSanitizer does not
   * intercept. test_kafka_agg runs it in the other builds. */
  print_message("skipped under ThreadSanitizer: the in-process mock cluster cannot run\n");
  skip();
#endif
  char prog[PATH_MAX], out[PATH_MAX], err[PATH_MAX];
  find_program("examples", "kafka_features", prog, sizeof prog);
  path_in_dir(out, sizeof out, "kf.stdout");
  path_in_dir(err, sizeof err, "kf.stderr");
  char *good[] = {prog,
                  "--events",
                  "2000",
                  "--sample",
                  "1",
                  "-X",
                  "client.id=kafka-features-test",
                  "-Xsocket.keepalive.enable=true",
                  "--set",
                  "execution.checkpointing.tolerable-failed-checkpoints=2",
                  NULL};
  run_expect(good, "kf.stdout", "kf.stderr", 0);
  assert_file_contains(out, "equals the purchases'");
  char *refused[] = {prog, "--events", "20", "-X", "no.such.password=hunter2", NULL};
  run_expect(refused, "kf.stdout", "kf.stderr", 1);
  assert_file_contains(err, "librdkafka refused the -X property 'no.such.password'");
  assert_file_lacks(err, "hunter2");
  char *no_eq[] = {prog, "-X", "sasl.password:hunter2", NULL};
  run_expect(no_eq, "kf.stdout", "kf.stderr", 2);
  assert_file_contains(err, "-X takes KEY=VALUE");
  assert_file_lacks(err, "hunter2");
  char *bad_set[] = {prog, "--set", "state.backend=leveldb", NULL};
  run_expect(bad_set, "kf.stdout", "kf.stderr", 2);
  assert_file_contains(err, "--set: configuration key \"state.backend\"");
  assert_file_lacks(out, "produced");
}

/* ---------------------------------------------------------------------------------- */
/* flink-bench                                                                        */

static void bench_window_engine_matches_baseline(void **state) {
  (void)state;
  char prog[PATH_MAX], out[PATH_MAX];
  find_program("bench", "flink-bench", prog, sizeof prog);
  char *argv[] = {prog,          "window", "--events",      "200000", "--keys",          "1000",
                  "--window-ms", "100",    "--parallelism", "2",      "--events-per-ms", "1",
                  NULL};
  run_expect(argv, "bench.stdout", "bench.stderr", 0);
  path_in_dir(out, sizeof out, "bench.stdout");
  json_error_t jerr;
  json_t *doc = json_load_file(out, 0, &jerr);
  if (!doc) fail_msg("bench output is not JSON: %s", jerr.text);
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
      "spend_in.jsonl",
      "spend_out.jsonl",
      "spend.stdout",
      "spend.stderr",
      "late_in.jsonl",
      "late_out.jsonl",
      "late.stdout",
      "late.stderr",
      "demo_spend.stdout",
      "demo_spend.stderr",
      "clicks.jsonl",
      "sessions.jsonl",
      "sessions.stdout",
      "sessions.stderr",
      "demo_sessions.stdout",
      "demo_sessions.stderr",
      "bench.stdout",
      "bench.stderr",
      "sample_spend.jsonl",
      "sample_spend.stdout",
      "sample_spend.stderr",
      "sample_sessions.jsonl",
      "sample_sessions.stdout",
      "sample_sessions.stderr",
      "durable_usage.jsonl",
      "durable_usage.stdout",
      "durable_usage.stderr",
  };
  for (size_t i = 0; i < sizeof files / sizeof *files; i++) remove_entry(g_dir, files[i]);
  /* what a failed durable-mode test left */
  static const char *dirs[] = {"durable-user_spend", "durable-session_tracker",
                               "durable_usage_ckpt"};
  for (size_t i = 0; i < sizeof dirs / sizeof *dirs; i++) {
    char path[PATH_MAX];
    path_in_dir(path, sizeof path, dirs[i]);
    rm_tree(path);
  }
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
      cmocka_unit_test(user_spend_killed_and_resumed_commits_exactly_once),
      cmocka_unit_test(session_tracker_killed_and_resumed_commits_exactly_once),
      cmocka_unit_test(checkpoint_mode_needs_an_output_directory),
      cmocka_unit_test(examples_set_any_configuration_key),
      cmocka_unit_test(kafka_features_takes_set_and_kafka_properties),
      cmocka_unit_test(bench_window_engine_matches_baseline),
  };
  return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
