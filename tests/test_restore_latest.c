/* state.checkpoints.restore-latest through the public API: a job started again with the
 * same checkpoint directory resumes from the newest complete checkpoint (falling back
 * past a damaged one), starts fresh when there is none, wins over
 * execution.savepoint.path, and refuses a checkpoint of another job. The job and the
 * independent computation of its exactly-once output are tests/ckpt_job.h's. */
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "ckpt_job.h"
#include "fl_test_util.h"

#define N 40000
#define KEYS 40

/* An environment at parallelism 2 with 20 ms checkpoints under root; extra key/value
 * pairs (NULL-terminated) after. */
static fl_env_t *env_for(const char *root, log_buf_t *log, ...) {
  const char *kv[16] = {"parallelism",
                        "2",
                        "state.checkpoints.dir",
                        root,
                        "state.checkpoints.num-retained",
                        "3",
                        "execution.checkpointing.interval",
                        "20ms",
                        "state.checkpoints.restore-latest",
                        "true"};
  size_t n = 10;
  va_list ap;
  va_start(ap, log);
  while ((kv[n] = va_arg(ap, const char *)) != NULL) {
    kv[n + 1] = va_arg(ap, const char *);
    n += 2;
    assert_true(n < 16);
  }
  va_end(ap);
  char err[512];
  fl_env_t *env = env_try(kv, err, sizeof err);
  if (!env) fail_msg("env: %s", err);
  if (log) log_buf_attach(log, env); /* kept for the assertions */
  return env;
}

/* The checkpoint the job was restored from (metrics "restored_from"), 0 for none. */
static int64_t restored_from(fl_env_t *env) {
  char *m = fl_env_metrics_json(env);
  json_t *root = json_loads(m, 0, NULL);
  json_t *r = json_object_get(json_object_get(root, "checkpoints"), "restored_from");
  int64_t id = json_is_integer(r) ? (int64_t)json_integer_value(r) : 0;
  json_decref(root);
  fl_free(m);
  return id;
}

/* Runs the job until its source paused at n / 2 with `want` complete checkpoints, then
 * stops it (as Ctrl-C would); with savepoint, execution.savepoint.path is that. Returns
 * the newest complete checkpoint's id. */
static int64_t run_and_stop_from(const char *root, const char *out, int want,
                                 const char *savepoint) {
  log_buf_t log = {.mu = PTHREAD_MUTEX_INITIALIZER};
  fl_env_t *env = savepoint ? env_for(root, &log, "execution.savepoint.path", savepoint, NULL)
                            : env_for(root, &log, NULL);
  ckjob_t j = {.n = N, .keys = KEYS, .pause_at = N / 2, .fail_at = -1, .budget = 64};
  ckjob_build(env, &j, out);
  bool checkpointed;
  int rc = ckjob_execute_paused(env, &j, root, want, CKJOB_STOP, "first", &checkpointed);
  assert_true(checkpointed);
  assert_int_equal(rc, FL_ECANCELED);
  if (!savepoint) {
    /* nothing to restore the first time: it started fresh and said so */
    assert_int_equal(restored_from(env), 0);
    assert_non_null(strstr(log_buf_text(&log), "starts fresh"));
  }
  fl_env_destroy(env);
  log_buf_free(&log);
  int64_t id;
  assert_true(complete_checkpoints(root, &id) >= want);
  return id;
}

static int64_t run_and_stop(const char *root, const char *out, int want) {
  return run_and_stop_from(root, out, want, NULL);
}

/* Runs the job to its end, restoring the newest checkpoint (with savepoint, that is
 * execution.savepoint.path); returns the id it restored from. */
static int64_t run_to_end_from(const char *root, const char *out, log_buf_t *log,
                               const char *savepoint) {
  fl_env_t *env = savepoint ? env_for(root, log, "execution.savepoint.path", savepoint, NULL)
                            : env_for(root, log, NULL);
  ckjob_t j = {.n = N, .keys = KEYS, .pause_at = -1, .fail_at = -1, .budget = 64};
  ckjob_build(env, &j, out);
  execute_ok(env, "again");
  int64_t id = restored_from(env);
  fl_env_destroy(env);
  return id;
}

static int64_t run_to_end(const char *root, const char *out, log_buf_t *log) {
  return run_to_end_from(root, out, log, NULL);
}

static void resumes_from_the_newest_complete_checkpoint(void **state) {
  (void)state;
  char root[512], out[512];
  ckjob_paths(root, out, "resume");
  int64_t newest = run_and_stop(root, out, 1);
  log_buf_t log = {.mu = PTHREAD_MUTEX_INITIALIZER};
  assert_int_equal(run_to_end(root, out, &log), newest);
  assert_int_equal(ckjob_output_diff(out, N, KEYS), 0);
  log_buf_free(&log);
}

static void starts_fresh_without_a_usable_checkpoint(void **state) {
  (void)state;
  char root[512], out[512], p[700];
  /* the directory does not exist yet */
  ckjob_paths(root, out, "fresh");
  log_buf_t log = {.mu = PTHREAD_MUTEX_INITIALIZER};
  assert_int_equal(run_to_end(root, out, &log), 0);
  assert_non_null(strstr(log_buf_text(&log), "starts fresh"));
  assert_int_equal(ckjob_output_diff(out, N, KEYS), 0);
  /* only a checkpoint that was never completed (the process died writing it) */
  ckjob_paths(root, out, "incomplete");
  snprintf(p, sizeof p, "%s/chk-7", root);
  assert_int_equal(mkdir(root, 0700), 0);
  assert_int_equal(mkdir(p, 0700), 0);
  assert_int_equal(run_to_end(root, out, &log), 0);
  assert_non_null(strstr(log_buf_text(&log), "chk-7"));
  assert_non_null(strstr(log_buf_text(&log), "starts fresh"));
  assert_int_equal(ckjob_output_diff(out, N, KEYS), 0);
  log_buf_free(&log);
}

/* Appends a byte to the first op-*.snap or SST file of checkpoint dir: its size no
 * longer matches the manifest. */
static void damage_checkpoint(const char *dir) {
  DIR *d = opendir(dir);
  assert_non_null(d);
  struct dirent *e;
  bool done = false;
  while (!done && (e = readdir(d))) {
    if (strncmp(e->d_name, "op-", 3) != 0) continue;
    char p[4400];
    snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
    struct stat st;
    if (stat(p, &st) != 0 || !S_ISREG(st.st_mode)) continue;
    FILE *f = fopen(p, "ab");
    assert_non_null(f);
    fputc('x', f);
    fclose(f);
    done = true;
  }
  closedir(d);
  assert_true(done);
}

static void falls_back_past_a_damaged_newest_checkpoint(void **state) {
  (void)state;
  char root[512], out[512], dir[700];
  ckjob_paths(root, out, "damaged");
  int64_t newest = run_and_stop(root, out, 2);
  snprintf(dir, sizeof dir, "%s/chk-%lld", root, (long long)newest);
  damage_checkpoint(dir);
  log_buf_t log = {.mu = PTHREAD_MUTEX_INITIALIZER};
  int64_t from = run_to_end(root, out, &log);
  assert_true(from > 0 && from < newest);
  assert_non_null(strstr(log_buf_text(&log), dir));
  assert_non_null(strstr(log_buf_text(&log), "falling back"));
  assert_int_equal(ckjob_output_diff(out, N, KEYS), 0);
  log_buf_free(&log);
}

static void a_checkpoint_wins_over_the_savepoint_path(void **state) {
  (void)state;
  char root[512], out[512], empty[512];
  ckjob_paths(root, out, "wins");
  int64_t newest = run_and_stop(root, out, 1);
  /* a savepoint path that no longer exists lets the checkpoint win, and is said */
  log_buf_t log = {.mu = PTHREAD_MUTEX_INITIALIZER};
  assert_int_equal(run_to_end_from(root, out, &log, "/nonexistent/flink-sp"), newest);
  assert_non_null(strstr(log_buf_text(&log), "/nonexistent/flink-sp does not exist"));
  assert_int_equal(ckjob_output_diff(out, N, KEYS), 0);
  /* without a checkpoint, the savepoint path is where the job starts (here: an error
   * naming it) */
  snprintf(empty, sizeof empty, "%s/wins-empty", g_tmpdir);
  fl_env_t *env = env_for(empty, NULL, "execution.savepoint.path", "/nonexistent/flink-sp", NULL);
  ckjob_t j2 = {.n = 10, .keys = 2, .pause_at = -1, .fail_at = -1};
  snprintf(out, sizeof out, "%s/wins-out2", g_tmpdir);
  ckjob_build(env, &j2, out);
  assert_true(fl_env_execute(env, "sp") < 0);
  assert_non_null(strstr(fl_env_error(env), "/nonexistent/flink-sp"));
  fl_env_destroy(env);
  log_buf_free(&log);
}

/* A savepoint newer than the checkpoints under the directory (here: a checkpoint of a
 * run started from one of them, in a directory of its own) wins over them: those
 * checkpoints are of a run before it. */
static void a_savepoint_newer_than_the_checkpoints_wins(void **state) {
  (void)state;
  char root[512], other[512], out[512], sp[600];
  ckjob_paths(root, out, "older");
  snprintf(other, sizeof other, "%s/newer-ckpts", g_tmpdir);
  int64_t older = run_and_stop(root, out, 1);
  snprintf(sp, sizeof sp, "%s/chk-%lld", root, (long long)older);
  /* a run from that checkpoint, with checkpoints of its own elsewhere: larger ids */
  int64_t newer = run_and_stop_from(other, out, 2, sp);
  assert_true(newer > older);
  snprintf(sp, sizeof sp, "%s/chk-%lld", other, (long long)newer);
  log_buf_t log = {.mu = PTHREAD_MUTEX_INITIALIZER};
  assert_int_equal(run_to_end_from(root, out, &log, sp), newer);
  assert_non_null(strstr(log_buf_text(&log), "the job starts from the savepoint"));
  assert_int_equal(ckjob_output_diff(out, N, KEYS), 0);
  log_buf_free(&log);
}

static int other_job_process(fl_context_t *ctx, const fl_record_t *in, void *inst) {
  (void)inst;
  return fl_emit_record(ctx, in);
}

static void a_checkpoint_of_another_job_is_refused(void **state) {
  (void)state;
  char root[512], out[512];
  ckjob_paths(root, out, "other");
  run_and_stop(root, out, 1);
  /* the same directory for a job of one more operator: never a silent fresh start */
  fl_env_t *env = env_for(root, NULL, NULL);
  ckjob_t j = {.n = 10, .keys = 2, .pause_at = -1, .fail_at = -1};
  ckjob_build(env, &j, out);
  static const fl_process_fn_t pass = {.version = FL_PROCESS_FN_VERSION,
                                       .process = other_job_process};
  fl_stream_t *s = fl_source_collection(env, "more", NULL, 0);
  fl_stream_sink_lines(fl_stream_process(s, "extra", &pass, NULL), "print", "/dev/null");
  int rc = fl_env_execute(env, "other");
  assert_int_equal(rc, FL_ESTATE);
  assert_non_null(strstr(fl_env_error(env), "cannot restore"));
  assert_non_null(strstr(fl_env_error(env), root));
  fl_env_destroy(env);
}

static void needs_a_checkpoint_directory(void **state) {
  (void)state;
  fl_config_t *c = fl_config_new();
  char err[512] = "";
  assert_int_equal(fl_config_set(c, "state.checkpoints.restore-latest", "true", err, sizeof err),
                   0);
  assert_int_equal(fl_config_set(c, "state.checkpoints.restore-latest", "yes", err, sizeof err),
                   FL_ECONFIG);
  assert_non_null(strstr(err, "state.checkpoints.restore-latest"));
  fl_env_t *env = NULL;
  assert_int_equal(fl_env_new(&env, c, err, sizeof err), FL_ECONFIG);
  assert_null(env);
  assert_non_null(strstr(err, "state.checkpoints.restore-latest"));
  assert_non_null(strstr(err, "state.checkpoints.dir"));
  fl_config_destroy(c);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(needs_a_checkpoint_directory),
      cmocka_unit_test(resumes_from_the_newest_complete_checkpoint),
      cmocka_unit_test(starts_fresh_without_a_usable_checkpoint),
      cmocka_unit_test(falls_back_past_a_damaged_newest_checkpoint),
      cmocka_unit_test(a_checkpoint_wins_over_the_savepoint_path),
      cmocka_unit_test(a_savepoint_newer_than_the_checkpoints_wins),
      cmocka_unit_test(a_checkpoint_of_another_job_is_refused),
  };
  return cmocka_run_group_tests(tests, tmpdir_group_setup, tmpdir_group_teardown);
}
