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

#include "kcat_test_util.h"

static char g_agg[4096];

#define N_EVENTS 600

static int group_setup(void **state) {
  const char *bd = getenv("FL_BUILD_DIR");
  snprintf(g_agg, sizeof g_agg, "%s/tools/flink-agg", bd && *bd ? bd : ".");
  if (kcat_group_setup(state)) return -1;
  g_server = start_server(g_bootstrap, sizeof g_bootstrap, "--quiet", "--topic", "purchases:3",
                          "--topic", "spend:2", "--topic", "spend-eos:2", "--topic", "spend-p2:2",
                          "--topic", "bad:1", "--topic", "bad-dlq:1", NULL);
  return 0;
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

/* Runs flink-agg with the common options plus the arguments of ap (up to a NULL); returns
 * the exit status, stderr in *err. */
static int run_agg_v(char **err, va_list ap) {
  char *argv[48];
  int n = 0;
  char errpath[4200];
  snprintf(errpath, sizeof errpath, "%s/agg.err", g_tmpdir);
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
  argv_append(argv, &n, 48, ap);
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
  *err = read_text(errpath, NULL);
  if (!*err) *err = calloc(1, 1);
  return WIFEXITED(st) ? WEXITSTATUS(st) : 1000 + WTERMSIG(st);
}

static int run_agg(char **err, ...) {
  va_list ap;
  va_start(ap, err);
  int rc = run_agg_v(err, ap);
  va_end(ap);
  return rc;
}

/* The same for a run that must succeed; what names it in the failure. */
static void agg_ok(const char *what, ...) {
  char *err = NULL;
  va_list ap;
  va_start(ap, what);
  int rc = run_agg_v(&err, ap);
  va_end(ap);
  if (rc != 0) fail_msg("flink-agg %s: exit %d: %s", what, rc, err);
  free(err);
}

static char *g_expected; /* flink-agg's results from the file */

static void test_kcat_input_to_kafka_output_matches_file_results(void **state) {
  (void)state;
  char *kin, *fin;
  make_events(&kin, &fin);
  /* the same events as a file, aggregated from the file */
  char in_path[4200], out_path[128];
  snprintf(in_path, sizeof in_path, "%s/in.jsonl", g_tmpdir);
  snprintf(out_path, sizeof out_path, "%s/out.jsonl", g_tmpdir);
  write_text(in_path, fin);
  agg_ok("on the file", "--input", in_path, "--output", out_path, NULL);
  g_expected = read_text(out_path, NULL);
  assert_true(g_expected && *g_expected);

  /* kcat produces the events, keyed by user */
  kcat_produce("purchases", kin);

  agg_ok("kafka -> kafka", "--input", "kafka:purchases", "--brokers", g_bootstrap, "--bounded",
         "true", "--output", "kafka:spend", "--parallelism", "1", NULL);
  char *got = kcat_consume("spend", "%s\\n", true);
  assert_same_line_set("kafka:spend (parallelism 1)", got, g_expected);
  free(got);
  free(kin);
  free(fin);
}

static void test_parallelism_2_same_results(void **state) {
  (void)state;
  assert_non_null(g_expected);
  agg_ok("--parallelism 2", "--input", "kafka:purchases", "--brokers", g_bootstrap, "--bounded",
         "true", "--output", "kafka:spend-p2", "--parallelism", "2", "--group", "p2", NULL);
  char *got = kcat_consume("spend-p2", "%s\\n", true);
  assert_same_line_set("kafka:spend-p2 (parallelism 2)", got, g_expected);
  free(got);
}

static void test_transactional_output_with_checkpoints(void **state) {
  (void)state;
  char ckpt[128];
  assert_non_null(g_expected);
  snprintf(ckpt, sizeof ckpt, "%s/ckpt", g_tmpdir);
  agg_ok("with checkpoints", "--input", "kafka:purchases", "--brokers", g_bootstrap, "--bounded",
         "true", "--output", "kafka:spend-eos", "--checkpoint-dir", ckpt, "--checkpoint-interval",
         "100ms", "--group", "eos", NULL);
  /* every message carries its transaction; kcat prints the header after the value */
  char *out = kcat_consume("spend-eos", "%s|%h\\n", true);
  char *got = calloc(1, strlen(out) + 1);
  size_t gl = 0;
  for (char *save = NULL, *l = strtok_r(out, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
    char *bar = strrchr(l, '|');
    assert_non_null(bar);
    if (!strstr(bar, "fl.txn=")) fail_msg("a transactional message without fl.txn: %s", l);
    *bar = 0;
    gl += (size_t)sprintf(got + gl, "%s\n", l);
  }
  assert_same_line_set("kafka:spend-eos", got, g_expected);
  free(out);
  free(got);
}

/* A start over output an earlier run committed (its checkpoint directory deleted, with the
 * transaction log in it) fails, naming what it found and --accept-duplicates; with that
 * option the run goes on and writes its results again. */
static void test_start_over_committed_output_needs_accept_duplicates(void **state) {
  (void)state;
  char *err = NULL, ckpt[128];
  assert_non_null(g_expected);
  snprintf(ckpt, sizeof ckpt, "%s/ckpt", g_tmpdir);
  rm_tree(ckpt);
  int rc = run_agg(&err, "--input", "kafka:purchases", "--brokers", g_bootstrap, "--bounded",
                   "true", "--output", "kafka:spend-eos", "--checkpoint-dir", ckpt,
                   "--checkpoint-interval", "100ms", "--group", "eos", NULL);
  assert_int_equal(rc, 1);
  if (!strstr(err, "spend-eos") || !strstr(err, "--accept-duplicates true"))
    fail_msg("the refusal names neither the topic nor the option: %s", err);
  free(err);
  agg_ok("--accept-duplicates true", "--input", "kafka:purchases", "--brokers", g_bootstrap,
         "--bounded", "true", "--output", "kafka:spend-eos", "--checkpoint-dir", ckpt,
         "--checkpoint-interval", "100ms", "--group", "eos", "--accept-duplicates", "true", NULL);
}

static void test_malformed_messages_skip_and_dead_letter(void **state) {
  (void)state;
  char *out = NULL, *err = NULL;
  const char *in =
      "u1:{\"user\":\"u1\",\"amount\":5,\"ts\":1700000000000}\n"
      "u2:not json\n"
      "u3:{\"user\":\"u3\",\"ts\":1700000000001}\n"
      "u1:{\"user\":\"u1\",\"amount\":7,\"ts\":1700000000002}\n";
  kcat_produce("bad", in);
  char outpath[4200];
  snprintf(outpath, sizeof outpath, "%s/bad.out", g_tmpdir);
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

  agg_ok("dead-letter", "--input", "kafka:bad", "--brokers", g_bootstrap, "--bounded", "true",
         "--output", outpath, "--on-error", "dead-letter:kafka:bad-dlq", "--group", "dlq", NULL);
  out = kcat_consume("bad-dlq", "%k|%s|%h\\n", true);
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
  snprintf(out1, sizeof out1, "%s/c1.out", g_tmpdir);
  snprintf(out2, sizeof out2, "%s/c2.out", g_tmpdir);
  snprintf(out3, sizeof out3, "%s/c3.out", g_tmpdir);
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
    got[i] = read_text(outs[i], NULL);
    assert_non_null(got[i]);
  }
  assert_same_line_set("first run of group 'resume' (nothing committed yet)", got[0], g_expected);
  assert_string_equal(got[1], ""); /* everything was committed by the first run */
  assert_same_line_set("--kafka-start earliest", got[2], g_expected);
  for (int i = 0; i < 3; i++) free(got[i]);
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
  int rc = cmocka_run_group_tests(tests, group_setup, kcat_group_teardown);
  free(g_expected);
  return rc;
}
