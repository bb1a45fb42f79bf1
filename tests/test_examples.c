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
#include <inttypes.h>
#include <jansson.h>
#include <limits.h>
#include <math.h>
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
#include <unistd.h>

#include <cmocka.h>

#include "fl_test_util.h"
#include "run_util.h"

#define N_OF(a) (sizeof(a) / sizeof((a)[0]))

/* ---------------------------------------------------------------------------------- */
/* Helpers                                                                            */

/* path = <temp dir>/<name><suffix>; returns path (PATH_MAX bytes). */
static char *in_dir(char *path, const char *name, const char *suffix) {
  snprintf(path, PATH_MAX, "%s/%s%s", g_tmpdir, name, suffix);
  return path;
}

/* Runs argv with stdout and stderr to <name>.stdout and <name>.stderr; it must exit
 * with want. */
static void run_named(const char *name, char *const argv[], int want) {
  char out[PATH_MAX], err[PATH_MAX];
  run_expect(argv, NULL, in_dir(out, name, ".stdout"), in_dir(err, name, ".stderr"), want);
}

/* The file <name><suffix> holds every one of the NULL-terminated needles. */
static void file_has(const char *name, const char *suffix, const char *const *needles) {
  char path[PATH_MAX];
  in_dir(path, name, suffix);
  for (; *needles; needles++) assert_file_contains(path, *needles);
}

/* The lines of the file at path are want, in any order. */
static void assert_file_lines(const char *path, const char *const *want, size_t n) {
  lines_t got = {0};
  lines_add_file(&got, path);
  assert_same_lines(path, &got, want, n);
  lines_free(&got);
}

/* Runs examples/<program> --input IN --output <name>.out and the extra options (NULL-
 * terminated), IN being input written to <name>.in, or in_path when input is NULL. It
 * must exit 0 with the lines want in its output. */
static void run_example(const char *name, const char *program, const char *input,
                        const char *in_path, const char *const *extra, const char *const *want,
                        size_t n) {
  char in[PATH_MAX], out[PATH_MAX];
  char *prog = find_program("examples", program);
  if (input)
    write_text(in_dir(in, name, ".in"), input);
  else
    snprintf(in, sizeof in, "%s", in_path);
  char *argv[24] = {prog, "--input", in, "--output", in_dir(out, name, ".out")};
  size_t k = 5;
  for (; extra && *extra; extra++) argv[k++] = (char *)*extra;
  argv[k] = NULL;
  run_named(name, argv, 0);
  assert_file_lines(out, want, n);
  free(prog);
}

/* Runs examples/<program> --demo: exit 0, and stdout holds each needle. */
static void run_demo(const char *name, const char *program, const char *const *needles) {
  char *prog = find_program("examples", program);
  char *argv[] = {prog, "--demo", NULL};
  run_named(name, argv, 0);
  file_has(name, ".stdout", needles);
  free(prog);
}

/* ---------------------------------------------------------------------------------- */
/* user_spend                                                                         */

/* B is a multiple of the 5-minute window. */
#define B "1700000100000"

static void user_spend_sums_per_user_and_window(void **state) {
  /* u2's 1.75 arrives 1 s after a later event (inside the 5 s out-of-orderness); line 6
   * is malformed; the last millisecond of a window still belongs to it. */
  static const char input[] =
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
      "{\"user\":\"u4\",\"amount\":\"5\",\"ts\":1700001000000}\n";
  static const char *const extra[] = {"--parallelism", "2", NULL};
  static const char *const expected[] = {
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
  static const char *const says[] = {"skipping line 6: not valid JSON",
                                     "skipping line 11: \"amount\"",
                                     "8 purchases",
                                     "2 bad lines",
                                     "4 windows",
                                     NULL};
  run_example("spend", "user_spend", input, NULL, extra, expected, N_OF(expected));
  file_has("spend", ".stderr", says);
}

static void user_spend_drops_purchases_later_than_out_of_orderness(void **state) {
  /* A watermark follows every record (max_ts - 1000 - 1); B = ...100000, the first
   * window is [...100000, ...400000). After ...400000 the watermark is ...398999: the
   * first window is still open, so ...398000 joins it although it is behind the
   * watermark. After ...700000 the watermark is ...698999 and the first window has
   * fired: ...102000 then falls only into a removed window and is dropped. */
  static const char input[] =
      "{\"user\":\"u1\",\"amount\":1,\"ts\":1700000101000}\n"
      "{\"user\":\"u1\",\"amount\":2,\"ts\":1700000400000}\n"
      "{\"user\":\"u1\",\"amount\":4,\"ts\":1700000398000}\n"
      "{\"user\":\"u1\",\"amount\":8,\"ts\":1700000700000}\n"
      "{\"user\":\"u1\",\"amount\":16,\"ts\":1700000102000}\n";
  /* Parallelism 1: the single-reader source then feeds the window alone. (With more,
   * the window's watermark also waits for the other subtasks' empty source instances
   * to end, and whether they have ended when these few records arrive is a race.) */
  static const char *const extra[] = {
      "--out-of-orderness", "1s", "--watermark-interval", "0", "--parallelism", "1", NULL};
  static const char *const expected[] = {
      "{\"user\":\"u1\",\"window_start\":" B
      ",\"window_end\":1700000400000,"
      "\"spend\":5,\"purchases\":2}",
      "{\"user\":\"u1\",\"window_start\":1700000400000,\"window_end\":1700000700000,"
      "\"spend\":2,\"purchases\":1}",
      "{\"user\":\"u1\",\"window_start\":1700000700000,\"window_end\":1700001000000,"
      "\"spend\":8,\"purchases\":1}",
  };
  static const char *const says[] = {"5 purchases (spend 31)", "1 late (spend 16)", NULL};
  run_example("late", "user_spend", input, NULL, extra, expected, N_OF(expected));
  file_has("late", ".stderr", says);
}

static void user_spend_demo_balances_and_exits_zero(void **state) {
  static const char *const says[] = {"purchases read:     3000 (2 bad lines skipped)",
                                     "late purchases:     0", "check in == out + late: OK",
                                     "\"operators\"", NULL};
  run_demo("demo_spend", "user_spend", says);
}

/* ---------------------------------------------------------------------------------- */
/* session_tracker                                                                    */

/* T0 = 1700000000000; m = 60000 ms. Lines are in arrival order. */
static void session_tracker_closes_sessions_by_gap_and_timeout(void **state) {
  /* u1: T0, +10m, +25m, then +56m (31 min later: gap) and +60m.
   * u2: every 20 min from T0; at +240m the session is 4 h old: timeout; then +260m.
   * u3: +1000, +5000, then +3000 arriving 2 s late (inside the 5 s bound).
   * u4: +10000, then +7000 arriving 3 s late: it moves the session start back.
   * u5: +100m and +130m, exactly the gap apart: one session. */
  static const char input[] =
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
      "{\"user\":\"u2\",\"ts\":1700015600000}\n";
  static const char *const extra[] = {"--parallelism", "2", NULL};
  static const char *const expected[] = {
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
  static const char *const says[] = {"skipping line 8: not valid JSON",
                                     "26 clicks, 1 bad lines, 7 sessions (6 gap, 1 timeout) of 26",
                                     NULL};
  run_example("sessions", "session_tracker", input, NULL, extra, expected, N_OF(expected));
  file_has("sessions", ".stderr", says);
}

static void session_tracker_demo_balances_and_exits_zero(void **state) {
  /* the heavy users' sessions are cut by the timeout */
  static const char *const says[] = {"check clicks read == clicks in sessions: OK",
                                     "(1 bad lines skipped)", "\"operators\"",
                                     "\"closed_by\":\"timeout\"", NULL};
  run_demo("demo_sessions", "session_tracker", says);
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
  char in[PATH_MAX];
  static const char *const expected[] = {
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
  sample_path("purchases.jsonl", in, sizeof in);
  run_example("sample_spend", "user_spend", NULL, in, NULL, expected, N_OF(expected));
}

static void sample_clicks_give_the_documented_sessions(void **state) {
  char in[PATH_MAX];
  static const char *const expected[] = {
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
  sample_path("clicks.jsonl", in, sizeof in);
  run_example("sample_sessions", "session_tracker", NULL, in, NULL, expected, N_OF(expected));
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

typedef struct durable_case {
  const char *name;    /* subdirectory of the temp dir */
  const char *program; /* in examples/ */
  const char *input;   /* the whole input */
  size_t input_len;
  const lines_t *expected;
  const char *const *extra_args; /* NULL-terminated options of both kinds of run */
} durable_case_t;

/* argv: prog --input in --output out [durable options] extra... */
static void durable_argv(char **argv, char *prog, char *in, char *out, char *ckpt,
                         const char *const *extra) {
  size_t n = 0;
  argv[n++] = prog;
  argv[n++] = "--input";
  argv[n++] = in;
  argv[n++] = "--output";
  argv[n++] = out;
  if (ckpt) {
    argv[n++] = "--state-backend";
    argv[n++] = "rocksdb";
    argv[n++] = "--checkpoint-dir";
    argv[n++] = ckpt;
    argv[n++] = "--checkpoint-interval";
    argv[n++] = DURABLE_CHECKPOINT_INTERVAL;
  }
  for (; *extra; extra++) argv[n++] = (char *)*extra;
  argv[n] = NULL;
}

/* Runs the kill-and-resume scenario described above for one example. */
static void run_killed_and_resumed(const durable_case_t *c) {
  char dir[PATH_MAX], full[PATH_MAX + 32], fifo[PATH_MAX + 32], ref[PATH_MAX + 32];
  char out[PATH_MAX + 32], ckpt[PATH_MAX + 32], run[256];
  char *argv[48];
  char *prog = find_program("examples", c->program);
  in_dir(dir, c->name, "");
  rm_tree(dir);
  assert_int_equal(mkdir(dir, 0755), 0);
  snprintf(full, sizeof full, "%s/input.jsonl", dir);
  snprintf(fifo, sizeof fifo, "%s/in.jsonl", dir);
  snprintf(ref, sizeof ref, "%s/reference.jsonl", dir);
  snprintf(out, sizeof out, "%s/out", dir);
  snprintf(ckpt, sizeof ckpt, "%s/checkpoints", dir);
  write_bytes(full, c->input, c->input_len);
  const char *const *want = (const char *const *)c->expected->v;

  /* The uninterrupted run, without checkpoints. */
  durable_argv(argv, prog, full, ref, NULL, c->extra_args);
  snprintf(run, sizeof run, "%s/reference", c->name);
  run_named(run, argv, 0);
  lines_t got = {0};
  lines_add_file(&got, ref);
  assert_same_lines("the uninterrupted run", &got, want, c->expected->n);
  lines_free(&got);

  /* The durable run, from the FIFO. */
  durable_argv(argv, prog, fifo, out, ckpt, c->extra_args);
  assert_int_equal(mkfifo(fifo, 0644), 0);
  char name_out[PATH_MAX], name_err[PATH_MAX];
  snprintf(run, sizeof run, "%s/killed", c->name);
  pid_t pid =
      start_program(argv, NULL, in_dir(name_out, run, ".stdout"), in_dir(name_err, run, ".stderr"));
  int fd = open_fifo_writer(fifo, pid, name_err, DURABLE_DEADLINE_S);
  size_t part_a = c->input_len * 2 / 5, part_b = c->input_len * 7 / 10;
  write_all(fd, c->input, part_a);
  int64_t deadline = deadline_in(DURABLE_DEADLINE_S * 1000);
  while (count_committed(out) == 0) {
    assert_running(pid, name_err);
    if (mono_ms() > deadline)
      fail_msg("no checkpoint committed output within %d s", DURABLE_DEADLINE_S);
    pause_ms(5);
  }
  assert_true(complete_checkpoints(ckpt, NULL) > 0);
  write_all(fd, c->input + part_a, part_b - part_a);
  assert_int_equal(kill(pid, SIGKILL), 0);
  assert_int_equal(wait_program(pid), KILLED_BY(SIGKILL));
  close(fd);
  /* Killed mid-way: some output is committed, not all of it. */
  lines_add_committed(&got, out);
  assert_true(got.n > 0 && got.n < c->expected->n);
  lines_free(&got);

  /* The same command again, now with the whole input in a regular file. */
  assert_int_equal(unlink(fifo), 0);
  assert_int_equal(link(full, fifo), 0);
  snprintf(run, sizeof run, "%s/resumed", c->name);
  run_named(run, argv, 0);
  static const char *const says[] = {"flink: restoring checkpoint ", NULL};
  file_has(run, ".stderr", says);
  lines_add_committed(&got, out);
  assert_same_lines("the committed output of the killed and resumed runs", &got, want,
                    c->expected->n);
  lines_free(&got);
  rm_tree(dir);
  free(prog);
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
  char in[PATH_MAX], ckpt[PATH_MAX];
  static const char *const programs[] = {"user_spend", "session_tracker"};
  write_text(in_dir(in, "durable_usage", ".jsonl"), "");
  in_dir(ckpt, "durable_usage_ckpt", "");
  /* no --output, --output -, --output naming a file (the input), ... */
  const struct {
    const char *args[8];
    const char *says;
  } cases[] = {
      {{"--checkpoint-dir", ckpt}, "--checkpoint-dir needs --output DIR"},
      {{"--output", "-", "--checkpoint-dir", ckpt}, "--checkpoint-dir needs --output DIR"},
      {{"--output", in, "--checkpoint-dir", ckpt}, "--output must be a directory"},
      {{"--checkpoint-interval", "1s"}, "--checkpoint-interval needs --checkpoint-dir"},
      {{"--state-backend", "leveldb"}, "--state-backend must be hashmap or rocksdb, got 'leveldb'"},
  };
  for (size_t i = 0; i < N_OF(programs); i++) {
    char *prog = find_program("examples", programs[i]);
    for (size_t c = 0; c < N_OF(cases); c++) {
      char *argv[12] = {prog, "--input", in};
      for (size_t a = 0; cases[c].args[a]; a++) argv[3 + a] = (char *)cases[c].args[a];
      run_named("durable_usage", argv, 2);
      const char *const says[] = {cases[c].says, NULL};
      file_has("durable_usage", ".stderr", says);
    }
    free(prog);
  }
  /* None of them started a job: nothing was written. */
  assert_int_equal(access(ckpt, F_OK), -1);
}

/* ---------------------------------------------------------------------------------- */
/* --set and -X                                                                       */

/* Asserts that the file <name><suffix> does not contain needle. */
static void file_lacks(const char *name, const char *suffix, const char *needle) {
  char path[PATH_MAX];
  char *text = read_text(in_dir(path, name, suffix), NULL);
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
  char in[PATH_MAX], out[PATH_MAX];
  write_text(in_dir(in, "set_in", ".jsonl"),
             "{\"user\":\"u1\",\"amount\":1,\"ts\":1700000101000}\n"
             "{\"user\":\"u1\",\"amount\":2,\"ts\":1700000400000}\n"
             "{\"user\":\"u1\",\"amount\":4,\"ts\":1700000398000}\n"
             "{\"user\":\"u1\",\"amount\":8,\"ts\":1700000700000}\n"
             "{\"user\":\"u1\",\"amount\":16,\"ts\":1700000102000}\n");
  in_dir(out, "set_out", ".jsonl");
  char *prog = find_program("examples", "user_spend");
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
  run_named("set", argv, 0);
  const char *const late[] = {"5 purchases (spend 31)", "1 late (spend 16)", NULL};
  file_has("set", ".stderr", late);
  free(prog);

  static const char *const programs[] = {"user_spend", "session_tracker"};
  for (size_t i = 0; i < N_OF(programs); i++) {
    prog = find_program("examples", programs[i]);
    char *typo[] = {prog, "--input", in, "--set", "paralelism=2", NULL};
    run_named("set", typo, 2);
    const char *const says_typo[] = {
        "--set: unknown configuration key \"paralelism\" (did you mean \"parallelism\"?)", NULL};
    file_has("set", ".stderr", says_typo);
    char *bad_value[] = {prog, "--input", in, "--set", "state.backend.incremental=maybe", NULL};
    run_named("set", bad_value, 2);
    const char *const says_value[] = {
        "configuration key \"state.backend.incremental\": not one of false|true: \"maybe\"", NULL};
    file_has("set", ".stderr", says_value);
    char *no_value[] = {prog, "--input", in, "--set", "parallelism", NULL};
    run_named("set", no_value, 2);
    const char *const says_kv[] = {"--set takes KEY=VALUE", NULL};
    file_has("set", ".stderr", says_kv);
    file_lacks("set", ".stderr", "purchases (spend");
    file_lacks("set", ".stderr", "sessions (");
    free(prog);
  }
}

/*
 * kafka_features takes --set and -X: librdkafka properties reach every client it makes
 * (its sample producer first: a property librdkafka refuses stops it there, named
 * without its value), and a run with valid ones on the in-process mock cluster ends with
 * the features' spend equal to the purchases'.
 */
/* feature_pipeline's large-state benchmark starts generating only once a checkpoint has
 * written the preloaded state and RocksDB has compacted it (64 KiB memtables and a
 * small state cache make the preload flush and compact) and says so, then runs as
 * usual. */
static void feature_pipeline_generates_after_the_preload_is_compacted(void **state) {
  (void)state;
#if defined(__SANITIZE_THREAD__)
  /* as kafka_features below: the in-process mock cluster cannot run under TSan */
  print_message("skipped under ThreadSanitizer: the in-process mock cluster cannot run\n");
  skip();
#endif
  char *prog = find_program("examples", "feature_pipeline");
  char dir[PATH_MAX];
  in_dir(dir, "fp_preload_state", "");
  assert_int_equal(mkdir(dir, 0700), 0);
  char *argv[] = {prog,    "--users",
                  "1500",  "--preload-bytes",
                  "2048",  "--rate",
                  "1000",  "--seconds",
                  "2",     "--time-scale",
                  "1",     "--checkpoint-interval",
                  "1s",    "--state-dir",
                  dir,     "--dashboard-port",
                  "-1",    "--quiet",
                  "--set", "state.backend.rocksdb.writebuffer.size=64kb",
                  "--set", "state.backend.rocksdb.cache.size=64kb",
                  NULL};
  run_named("fp_preload", argv, 0);
  const char *const says[] = {"preloaded 1500 users", "preloaded state checkpointed",
                              "compactions done", "=== feature_pipeline report", NULL};
  file_has("fp_preload", ".stdout", says);
  char path[PATH_MAX];
  char *out = read_text(in_dir(path, "fp_preload", ".stdout"), NULL);
  assert_non_null(out);
  /* in that order: the state cache's dirty cells of the preload are written by the
   * first checkpoint after it, then RocksDB compacts them, then the events come */
  const char *loaded = strstr(out, "preloaded 1500 users"),
             *ckpt = strstr(out, "preloaded state checkpointed"),
             *done = strstr(out, "compactions done"), *gen = strstr(out, "generating");
  assert_non_null(gen);
  assert_true(loaded < ckpt && ckpt < done && done < gen);
  /* checkpoints every second while the events come: records waited behind barriers,
   * and the report says how long (checkpointSyncTime, in ms), leaving the preload's
   * checkpoints out */
  assert_non_null(strstr(out, "from the first event on (the preload's left out):"));
  const char *held = strstr(out, "records held at a barrier up to ");
  double held_ms = -1;
  assert_non_null(held);
  assert_int_equal(sscanf(held + 32, "%lf", &held_ms), 1);
  assert_true(held_ms > 0 && held_ms < 600000);
  /* a large-state run watches RocksDB's write stops (is-write-stopped) and says for how
   * long they held the workers */
  const char *stopped = strstr(out, "RocksDB stopped the writes of a subtask for about ");
  long stopped_s = -1;
  assert_non_null(stopped);
  assert_int_equal(sscanf(stopped + strlen("RocksDB stopped the writes of a subtask for about "),
                          "%ld", &stopped_s),
                   1);
  assert_true(stopped_s >= 0 && stopped_s < 600);
  free(out);
  free(prog);
}

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
  char *prog = find_program("examples", "kafka_features");
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
  run_named("kf", good, 0);
  const char *const equal[] = {"equals the purchases'", NULL};
  file_has("kf", ".stdout", equal);
  char *refused[] = {prog, "--events", "20", "-X", "no.such.password=hunter2", NULL};
  run_named("kf", refused, 1);
  const char *const says_refused[] = {"librdkafka refused the -X property 'no.such.password'",
                                      NULL};
  file_has("kf", ".stderr", says_refused);
  file_lacks("kf", ".stderr", "hunter2");
  char *no_eq[] = {prog, "-X", "sasl.password:hunter2", NULL};
  run_named("kf", no_eq, 2);
  const char *const says_kv[] = {"-X takes KEY=VALUE", NULL};
  file_has("kf", ".stderr", says_kv);
  file_lacks("kf", ".stderr", "hunter2");
  char *bad_set[] = {prog, "--set", "state.backend=leveldb", NULL};
  run_named("kf", bad_set, 2);
  const char *const says_set[] = {"--set: configuration key \"state.backend\"", NULL};
  file_has("kf", ".stderr", says_set);
  file_lacks("kf", ".stdout", "produced");
  free(prog);
}

/* ---------------------------------------------------------------------------------- */
/* flink-bench                                                                        */

static void bench_window_engine_matches_baseline(void **state) {
  char out[PATH_MAX];
  char *prog = find_program("bench", "flink-bench");
  char *argv[] = {prog,          "window", "--events",      "200000", "--keys",          "1000",
                  "--window-ms", "100",    "--parallelism", "2",      "--events-per-ms", "1",
                  NULL};
  run_named("bench", argv, 0);
  free(prog);
  json_error_t jerr;
  json_t *doc = json_load_file(in_dir(out, "bench", ".stdout"), 0, &jerr);
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

/* Sliding and session windows against their own plain loops: the same results
 * (count, total, order-independent hash) at parallelism 2, where both subtasks' events
 * share keys. */
static void bench_window_kinds_match_baselines(void **state) {
  (void)state;
  char out[PATH_MAX];
  char *prog = find_program("bench", "flink-bench");
  char *sliding[] = {prog,         "window", "--kind",        "sliding",     "--events",
                     "40000",      "--keys", "500",           "--window-ms", "120",
                     "--slide-ms", "30",     "--parallelism", "2",           "--events-per-ms",
                     "1",          NULL};
  char *session[] = {
      prog,  "window",   "--kind", "session",         "--events", "100000",        "--keys",
      "500", "--gap-ms", "401",    "--events-per-ms", "1",        "--parallelism", "2",
      NULL};
  char *const *runs[] = {sliding, session};
  const char *kinds[] = {"sliding", "session"};
  for (int i = 0; i < 2; i++) {
    run_named("bench", runs[i], 0);
    json_error_t jerr;
    json_t *doc = json_load_file(in_dir(out, "bench", ".stdout"), 0, &jerr);
    if (!doc) fail_msg("bench output is not JSON: %s", jerr.text);
    assert_string_equal(json_string_value(json_object_get(doc, "kind")), kinds[i]);
    assert_true(json_is_true(json_object_get(doc, "checksum_match")));
    json_int_t results = json_integer_value(json_object_get(doc, "results"));
    assert_int_equal(results, json_integer_value(json_object_get(doc, "baseline_results")));
    if (i == 0) {
      /* 20,000 ms of event time per subtask in ~670 windows of 120 ms, each with 240
       * events over 500 keys: most windows hold 150-240 distinct keys. */
      assert_int_equal(json_integer_value(json_object_get(doc, "slide_ms")), 30);
      assert_true(results > 667 * 150 && results <= 671 * 240);
    } else {
      /* A key's events are 1 s of event time apart on average (500 keys, one event per
       * 2 ms per subtask), so its sessions (401 ms gap) are many and mostly short. */
      assert_int_equal(json_integer_value(json_object_get(doc, "gap_ms")), 401);
      assert_true(results > 10000 && results < 100000);
    }
    json_decref(doc);
  }
  free(prog);
}

/* --parallelism 1,2: one line per parallelism, then the speedup of the second over the
 * first computed from those two lines' rates. */
static void bench_window_prints_the_speedup_of_each_parallelism(void **state) {
  (void)state;
  char out[PATH_MAX], line[4096];
  char *prog = find_program("bench", "flink-bench");
  char *argv[] = {prog,          "window", "--events",      "100000", "--keys",          "500",
                  "--window-ms", "100",    "--parallelism", "1,2",    "--events-per-ms", "1",
                  NULL};
  run_named("bench", argv, 0);
  free(prog);
  FILE *f = fopen(in_dir(out, "bench", ".stdout"), "r");
  assert_non_null(f);
  json_t *docs[3] = {NULL, NULL, NULL};
  int n = 0;
  while (fgets(line, sizeof line, f)) {
    assert_true(n < 3);
    json_error_t jerr;
    docs[n] = json_loads(line, 0, &jerr);
    if (!docs[n]) fail_msg("bench line %d is not JSON: %s", n + 1, jerr.text);
    n++;
  }
  fclose(f);
  assert_int_equal(n, 3);
  for (int i = 0; i < 2; i++) {
    assert_string_equal(json_string_value(json_object_get(docs[i], "bench")), "window");
    assert_int_equal(json_integer_value(json_object_get(docs[i], "parallelism")), i + 1);
    assert_true(json_is_true(json_object_get(docs[i], "checksum_match")));
  }
  json_t *sc = docs[2];
  assert_string_equal(json_string_value(json_object_get(sc, "bench")), "window_scaling");
  assert_int_equal(json_integer_value(json_object_get(sc, "from_parallelism")), 1);
  assert_int_equal(json_integer_value(json_object_get(sc, "to_parallelism")), 2);
  double r1 = json_number_value(json_object_get(docs[0], "engine_events_per_s"));
  double r2 = json_number_value(json_object_get(docs[1], "engine_events_per_s"));
  assert_true(r1 > 0 && r2 > 0);
  double speedup = json_number_value(json_object_get(sc, "speedup"));
  /* the rates are printed rounded to whole events per second, the speedup to 3 places */
  assert_true(fabs(speedup - r2 / r1) < 0.001 + 1e-6 * r2 / r1);
  for (int i = 0; i < 3; i++) json_decref(docs[i]);
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
      cmocka_unit_test(feature_pipeline_generates_after_the_preload_is_compacted),
      cmocka_unit_test(kafka_features_takes_set_and_kafka_properties),
      cmocka_unit_test(bench_window_engine_matches_baseline),
      cmocka_unit_test(bench_window_kinds_match_baselines),
      cmocka_unit_test(bench_window_prints_the_speedup_of_each_parallelism),
  };
  return cmocka_run_group_tests(tests, tmpdir_group_setup, tmpdir_group_teardown);
}
