/*
 * flink-agg with Kafka, end to end, driven by kcat: flink-kafka-local runs as a separate
 * loopback broker process; kcat produces the input events to a topic; flink-agg reads
 * them with --input kafka:TOPIC and writes window results with --output kafka:TOPIC;
 * kcat consumes the output. The results must be the same multiset of lines as flink-agg
 * computes from the same events in a file (the "same semantics as for files"), and must
 * not depend on the parallelism or on whether the output is transactional.
 *
 * The last test runs examples/kafka_features on its own in-process cluster.
 *
 * kcat comes from Debian (scripts/install-deps.sh installs it); without it the test
 * fails, naming the missing program.
 */
#define _GNU_SOURCE

#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "fl_test_util.h"
#include "kafka_test_util.h"
#include "run_util.h"

static child_t *g_server;
static char g_bootstrap[1024];
static char g_agg[4096];
static char g_kcat[4096];
static char g_dir[64];

#define N_EVENTS 600

static int group_setup(void **state) {
  (void)state;
  tool_path();
  const char *bd = getenv("FL_BUILD_DIR");
  snprintf(g_agg, sizeof g_agg, "%s/tools/flink-agg", bd && *bd ? bd : ".");
  if (!find_on_path("kcat", g_kcat, sizeof g_kcat)) {
    fprintf(stderr, "kcat is not installed (apt-get install kcat; scripts/install-deps.sh)\n");
    return -1;
  }
  snprintf(g_dir, sizeof g_dir, "/tmp/fl_test_kagg_XXXXXX");
  if (!mkdtemp(g_dir)) return -1;
  g_server = start_server(g_bootstrap, sizeof g_bootstrap, "--quiet", "--topic", "purchases:3",
                          "--topic", "spend:2", "--topic", "spend-eos:2", "--topic", "spend-p2:2",
                          "--topic", "bad:1", "--topic", "bad-dlq:1", NULL);
  return 0;
}

static int group_teardown(void **state) {
  if (g_server) stop_server(g_server);
  g_server = NULL;
  teardown_children(state);
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
  return system(cmd) == 0 ? 0 : -1;
}

/* The input: N_EVENTS purchases of 7 users, event time increasing by 997 ms, as
 * "user:json" lines for kcat -K: and as plain JSON lines for a file. */
static void make_events(char **kcat_in, char **file_in) {
  size_t cap = N_EVENTS * 96;
  char *k = malloc(cap), *f = malloc(cap);
  size_t kl = 0, fl = 0;
  assert_non_null(k);
  assert_non_null(f);
  for (int i = 0; i < N_EVENTS; i++) {
    char ev[80];
    snprintf(ev, sizeof ev, "{\"user\":\"u%d\",\"amount\":%d,\"ts\":%" PRId64 "}", i % 7,
             1 + (i * 13) % 50, (int64_t)1700000000000 + (int64_t)i * 997);
    kl += (size_t)snprintf(k + kl, cap - kl, "u%d:%s\n", i % 7, ev);
    fl += (size_t)snprintf(f + fl, cap - fl, "%s\n", ev);
  }
  *kcat_in = k;
  *file_in = f;
}

/* Runs argv to its end with input on stdin (may be NULL); returns the exit status and
 * stdout in *out. Inputs larger than a pipe's buffer are written from a file. */
static int run_with_file_input(char *const argv[], const char *input, char **out) {
  if (!input || strlen(input) < 16000) return run_capture(argv, input, out);
  char path[128];
  snprintf(path, sizeof path, "%s/stdin", g_dir);
  FILE *f = fopen(path, "w");
  assert_non_null(f);
  fputs(input, f);
  fclose(f);
  /* kcat -P -l FILE reads delimited messages from the file instead of stdin */
  char *args[32];
  int n = 0;
  for (; argv[n]; n++) args[n] = argv[n];
  args[n++] = "-l";
  args[n++] = path;
  args[n] = NULL;
  return run_capture(args, NULL, out);
}

static char *consume_all(const char *topic) {
  char *out = NULL;
  char *argv[] = {g_kcat, "-C",        "-b", g_bootstrap, "-t",    (char *)topic, "-e",
                  "-o",   "beginning", "-q", "-f",        "%s\\n", NULL};
  int st = run_capture(argv, NULL, &out);
  assert_int_equal(st, 0);
  return out;
}

static int cmp_lines(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sorted non-empty lines of text (modifies text). */
static size_t sorted_lines(char *text, char ***out) {
  size_t n = 0, cap = 64;
  char **v = malloc(cap * sizeof *v);
  for (char *save = NULL, *l = strtok_r(text, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
    if (n == cap) v = realloc(v, (cap *= 2) * sizeof *v);
    v[n++] = l;
  }
  qsort(v, n, sizeof *v, cmp_lines);
  *out = v;
  return n;
}

static void assert_same_multiset(char *got, char *want, const char *what) {
  char **g, **w;
  size_t ng = sorted_lines(got, &g), nw = sorted_lines(want, &w);
  if (ng != nw) fail_msg("%s: %zu result lines, expected %zu", what, ng, nw);
  for (size_t i = 0; i < ng; i++)
    if (strcmp(g[i], w[i]) != 0) fail_msg("%s: line '%s', expected '%s'", what, g[i], w[i]);
  free(g);
  free(w);
}

/* Runs flink-agg with the common options plus extra (NULL-terminated); returns the exit
 * status, stderr in *err. */
static int run_agg(char **err, ...) {
  char *argv[48];
  int n = 0;
  char errpath[128];
  snprintf(errpath, sizeof errpath, "%s/agg.err", g_dir);
  argv[n++] = g_agg;
  const char *common[] = {"--key",
                          "user",
                          "--time",
                          "ts",
                          "--value",
                          "amount",
                          "--agg",
                          "sum",
                          "--window",
                          "tumbling:1m",
                          "--out-of-orderness",
                          "2s",
                          NULL};
  for (int i = 0; common[i]; i++) argv[n++] = (char *)common[i];
  va_list ap;
  va_start(ap, err);
  for (char *a; (a = va_arg(ap, char *)) != NULL && n < 44;) argv[n++] = a;
  va_end(ap);
  argv[n] = NULL;
  /* stderr to a file: run through sh for the redirection */
  char *cmd = NULL;
  size_t len = 0;
  FILE *m = open_memstream(&cmd, &len);
  for (int i = 0; i < n; i++) fprintf(m, "'%s' ", argv[i]);
  fprintf(m, "2>'%s'", errpath);
  fclose(m);
  char *sh[] = {"/bin/sh", "-c", cmd, NULL};
  char *out = NULL;
  int st = run_capture(sh, NULL, &out);
  free(out);
  free(cmd);
  FILE *f = fopen(errpath, "r");
  *err = calloc(1, 65536);
  if (f) {
    size_t r = fread(*err, 1, 65535, f);
    (*err)[r] = 0;
    fclose(f);
  }
  return WIFEXITED(st) ? WEXITSTATUS(st) : 1000 + WTERMSIG(st);
}

static char *g_expected; /* flink-agg's results from the file */

static void test_kcat_input_to_kafka_output_matches_file_results(void **state) {
  (void)state;
  char *kin, *fin, *out = NULL, *err = NULL;
  make_events(&kin, &fin);
  /* the same events as a file, aggregated from the file */
  char in_path[128], out_path[128];
  snprintf(in_path, sizeof in_path, "%s/in.jsonl", g_dir);
  snprintf(out_path, sizeof out_path, "%s/out.jsonl", g_dir);
  FILE *f = fopen(in_path, "w");
  fputs(fin, f);
  fclose(f);
  int rc = run_agg(&err, "--input", in_path, "--output", out_path, NULL);
  if (rc != 0) fail_msg("flink-agg on the file: exit %d: %s", rc, err);
  free(err);
  f = fopen(out_path, "r");
  g_expected = calloc(1, 1 << 20);
  size_t r = fread(g_expected, 1, (1 << 20) - 1, f);
  g_expected[r] = 0;
  fclose(f);
  assert_true(r > 0);

  /* kcat produces the events, keyed by user */
  char *pargv[] = {g_kcat, "-P", "-b", g_bootstrap, "-t", "purchases", "-K:", NULL};
  assert_int_equal(run_with_file_input(pargv, kin, &out), 0);
  free(out);

  rc = run_agg(&err, "--input", "kafka:purchases", "--brokers", g_bootstrap, "--bounded", "true",
               "--output", "kafka:spend", "--parallelism", "1", NULL);
  if (rc != 0) fail_msg("flink-agg kafka -> kafka: exit %d: %s", rc, err);
  free(err);
  char *got = consume_all("spend");
  char *want = strdup(g_expected);
  assert_same_multiset(got, want, "kafka:spend (parallelism 1)");
  free(got);
  free(want);
  free(kin);
  free(fin);
}

static void test_parallelism_2_same_results(void **state) {
  (void)state;
  char *err = NULL;
  assert_non_null(g_expected);
  int rc =
      run_agg(&err, "--input", "kafka:purchases", "--brokers", g_bootstrap, "--bounded", "true",
              "--output", "kafka:spend-p2", "--parallelism", "2", "--group", "p2", NULL);
  if (rc != 0) fail_msg("flink-agg --parallelism 2: exit %d: %s", rc, err);
  free(err);
  char *got = consume_all("spend-p2");
  char *want = strdup(g_expected);
  assert_same_multiset(got, want, "kafka:spend-p2 (parallelism 2)");
  free(got);
  free(want);
}

static void test_transactional_output_with_checkpoints(void **state) {
  (void)state;
  char *err = NULL, ckpt[128];
  assert_non_null(g_expected);
  snprintf(ckpt, sizeof ckpt, "%s/ckpt", g_dir);
  int rc = run_agg(&err, "--input", "kafka:purchases", "--brokers", g_bootstrap, "--bounded",
                   "true", "--output", "kafka:spend-eos", "--checkpoint-dir", ckpt,
                   "--checkpoint-interval", "100ms", "--group", "eos", NULL);
  if (rc != 0) fail_msg("flink-agg with checkpoints: exit %d: %s", rc, err);
  free(err);
  /* every message carries its transaction; kcat prints the header after the value */
  char *out = NULL;
  char *argv[] = {g_kcat, "-C",        "-b", g_bootstrap, "-t",       "spend-eos", "-e",
                  "-o",   "beginning", "-q", "-f",        "%s|%h\\n", NULL};
  assert_int_equal(run_capture(argv, NULL, &out), 0);
  char *got = calloc(1, strlen(out) + 1);
  size_t gl = 0;
  for (char *save = NULL, *l = strtok_r(out, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
    char *bar = strrchr(l, '|');
    assert_non_null(bar);
    if (!strstr(bar, "fl.txn=")) fail_msg("a transactional message without fl.txn: %s", l);
    *bar = 0;
    gl += (size_t)sprintf(got + gl, "%s\n", l);
  }
  char *want = strdup(g_expected);
  assert_same_multiset(got, want, "kafka:spend-eos");
  free(out);
  free(got);
  free(want);
}

/* A start over output an earlier run committed (its checkpoint directory deleted, with the
 * transaction log in it) fails, naming what it found and --accept-duplicates; with that
 * option the run goes on and writes its results again. */
static void test_start_over_committed_output_needs_accept_duplicates(void **state) {
  (void)state;
  char *err = NULL, ckpt[128];
  assert_non_null(g_expected);
  snprintf(ckpt, sizeof ckpt, "%s/ckpt", g_dir);
  rm_tree(ckpt);
  int rc = run_agg(&err, "--input", "kafka:purchases", "--brokers", g_bootstrap, "--bounded",
                   "true", "--output", "kafka:spend-eos", "--checkpoint-dir", ckpt,
                   "--checkpoint-interval", "100ms", "--group", "eos", NULL);
  assert_int_equal(rc, 1);
  if (!strstr(err, "spend-eos") || !strstr(err, "--accept-duplicates true"))
    fail_msg("the refusal names neither the topic nor the option: %s", err);
  free(err);
  rc = run_agg(&err, "--input", "kafka:purchases", "--brokers", g_bootstrap, "--bounded", "true",
               "--output", "kafka:spend-eos", "--checkpoint-dir", ckpt, "--checkpoint-interval",
               "100ms", "--group", "eos", "--accept-duplicates", "true", NULL);
  if (rc != 0) fail_msg("flink-agg --accept-duplicates true: exit %d: %s", rc, err);
  free(err);
}

static void test_malformed_messages_skip_and_dead_letter(void **state) {
  (void)state;
  char *out = NULL, *err = NULL;
  const char *in =
      "u1:{\"user\":\"u1\",\"amount\":5,\"ts\":1700000000000}\n"
      "u2:not json\n"
      "u3:{\"user\":\"u3\",\"ts\":1700000000001}\n"
      "u1:{\"user\":\"u1\",\"amount\":7,\"ts\":1700000000002}\n";
  char *pargv[] = {g_kcat, "-P", "-b", g_bootstrap, "-t", "bad", "-K:", NULL};
  assert_int_equal(run_capture(pargv, in, &out), 0);
  free(out);
  char outpath[128];
  snprintf(outpath, sizeof outpath, "%s/bad.out", g_dir);
  int rc = run_agg(&err, "--input", "kafka:bad", "--brokers", g_bootstrap, "--bounded", "true",
                   "--output", outpath, "--on-error", "skip", "--group", "skip", NULL);
  if (rc != 0) fail_msg("skip: exit %d: %s", rc, err);
  if (!strstr(err, "skipped 2 malformed messages")) fail_msg("skip: stderr '%s'", err);
  free(err);

  rc = run_agg(&err, "--input", "kafka:bad", "--brokers", g_bootstrap, "--bounded", "true",
               "--output", outpath, "--group", "fail", NULL);
  assert_int_equal(rc, 1);
  if (!strstr(err, "bad") || !strstr(err, "offset 1") || !strstr(err, "malformed JSON"))
    fail_msg("fail: the error names neither topic, offset nor cause: '%s'", err);
  free(err);

  rc = run_agg(&err, "--input", "kafka:bad", "--brokers", g_bootstrap, "--bounded", "true",
               "--output", outpath, "--on-error", "dead-letter:kafka:bad-dlq", "--group", "dlq",
               NULL);
  if (rc != 0) fail_msg("dead-letter: exit %d: %s", rc, err);
  free(err);
  char *argv[] = {g_kcat, "-C",        "-b", g_bootstrap, "-t",          "bad-dlq", "-e",
                  "-o",   "beginning", "-q", "-f",        "%k|%s|%h\\n", NULL};
  assert_int_equal(run_capture(argv, NULL, &out), 0);
  if (!strstr(out, "u2|not json|") || !strstr(out, "fl.offset=1") || !strstr(out, "fl.topic=bad") ||
      !strstr(out, "u3|{\"user\":\"u3\",\"ts\":1700000000001}|"))
    fail_msg("dead letters: '%s'", out);
  size_t lines = 0;
  for (char *p = out; (p = strchr(p, '\n')); p++) lines++;
  assert_int_equal(lines, 2);
  free(out);
}

static void test_usage_errors_name_the_option(void **state) {
  (void)state;
  char *err = NULL;
  int rc = run_agg(&err, "--input", "kafka:purchases", NULL);
  assert_int_equal(rc, 2);
  if (!strstr(err, "--brokers")) fail_msg("'%s'", err);
  free(err);
  rc = run_agg(&err, "--input", "kafka:", "--brokers", g_bootstrap, NULL);
  assert_int_equal(rc, 2);
  if (!strstr(err, "kafka:TOPIC")) fail_msg("'%s'", err);
  free(err);
  rc = run_agg(&err, "--input", "kafka:purchases", "--brokers", g_bootstrap, "--on-error",
               "dead-letter:/tmp/x", NULL);
  assert_int_equal(rc, 2);
  if (!strstr(err, "dead-letter:kafka:TOPIC")) fail_msg("'%s'", err);
  free(err);
  rc = run_agg(&err, "--input", "/dev/null", "--bounded", "true", NULL);
  assert_int_equal(rc, 2);
  if (!strstr(err, "--bounded") || !strstr(err, "Kafka input")) fail_msg("'%s'", err);
  free(err);
  rc = run_agg(&err, "--input", "/dev/null", "--brokers", g_bootstrap, NULL);
  assert_int_equal(rc, 2);
  if (!strstr(err, "--brokers is given")) fail_msg("'%s'", err);
  free(err);
}

/* A bounded run commits its end positions to its group; a second run of the same group
 * with --kafka-start committed finds nothing new, and one with --kafka-start earliest
 * reads everything again. */
static void test_kafka_start_committed_resumes_from_the_group(void **state) {
  (void)state;
  char *err = NULL, out1[128], out2[128], out3[128];
  assert_non_null(g_expected);
  snprintf(out1, sizeof out1, "%s/c1.out", g_dir);
  snprintf(out2, sizeof out2, "%s/c2.out", g_dir);
  snprintf(out3, sizeof out3, "%s/c3.out", g_dir);
  const char *outs[3] = {out1, out2, out3};
  const char *starts[3] = {"committed", "committed", "earliest"};
  for (int i = 0; i < 3; i++) {
    int rc =
        run_agg(&err, "--input", "kafka:purchases", "--brokers", g_bootstrap, "--bounded", "true",
                "--group", "resume", "--kafka-start", starts[i], "--output", outs[i], NULL);
    if (rc != 0) fail_msg("run %d (--kafka-start %s): exit %d: %s", i + 1, starts[i], rc, err);
    free(err);
  }
  char *got[3];
  for (int i = 0; i < 3; i++) {
    FILE *f = fopen(outs[i], "r");
    assert_non_null(f);
    got[i] = calloc(1, 1 << 20);
    got[i][fread(got[i], 1, (1 << 20) - 1, f)] = 0;
    fclose(f);
  }
  char *want = strdup(g_expected), *want3 = strdup(g_expected);
  assert_same_multiset(got[0], want, "first run of group 'resume' (nothing committed yet)");
  assert_string_equal(got[1], ""); /* everything was committed by the first run */
  assert_same_multiset(got[2], want3, "--kafka-start earliest");
  for (int i = 0; i < 3; i++) free(got[i]);
  free(want);
  free(want3);
}

/* The Kafka-to-Kafka example on its embedded default (an in-process mock cluster): it
 * must finish, print a sample and find the features' spend equal to the purchases'. */
static void test_kafka_features_example_on_its_local_cluster(void **state) {
  (void)state;
  const char *bd = getenv("FL_BUILD_DIR");
  char prog[4096];
  snprintf(prog, sizeof prog, "%s/examples/kafka_features", bd && *bd ? bd : ".");
  char *argv[] = {prog, "--events", "20000", "--sample", "4", NULL};
  char *out = NULL;
  int st = run_capture(argv, NULL, &out);
  if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) fail_msg("kafka_features: status %d: %s", st, out);
  if (!strstr(out, "produced 20000 purchases") || !strstr(out, "consumed 20000 purchases") ||
      !strstr(out, "equals the purchases'") || !strstr(out, "features.user_5min_spend["))
    fail_msg("kafka_features printed: %s", out);
  free(out);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_kcat_input_to_kafka_output_matches_file_results),
      cmocka_unit_test(test_parallelism_2_same_results),
      cmocka_unit_test(test_transactional_output_with_checkpoints),
      cmocka_unit_test(test_start_over_committed_output_needs_accept_duplicates),
      cmocka_unit_test(test_kafka_start_committed_resumes_from_the_group),
      cmocka_unit_test(test_malformed_messages_skip_and_dead_letter),
      cmocka_unit_test(test_usage_errors_name_the_option),
      cmocka_unit_test(test_kafka_features_example_on_its_local_cluster),
  };
  int rc = cmocka_run_group_tests(tests, group_setup, group_teardown);
  free(g_expected);
  return rc;
}
