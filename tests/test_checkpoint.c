/* Checkpoints, restarts and savepoints through the public API, with the exactly-once
 * file sink: every committed output line must appear exactly once. */
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <fcntl.h>
#include <pthread.h>
#include <time.h>
#include <unistd.h>

#include "ckpt_job.h"
#include "fl_test_util.h"
#include "runtime/connector.h"

#define N 60000
#define KEYS 50

/* ---- a failure restores the last checkpoint in-process ---- */

static void run_restart(const char *backend, const char *incremental) {
  char root[512], out[512];
  snprintf(root, sizeof root, "%s/%s-%s-ckpts", g_tmpdir, backend, incremental);
  snprintf(out, sizeof out, "%s/%s-%s-out", g_tmpdir, backend, incremental);
  const char *kv[] = {"parallelism",
                      "2",
                      "state.backend",
                      backend,
                      "state.backend.incremental",
                      incremental,
                      "state.checkpoints.dir",
                      root,
                      "state.checkpoints.num-retained",
                      "2",
                      "execution.checkpointing.interval",
                      "20ms",
                      "restart-strategy.type",
                      "fixed-delay",
                      "restart-strategy.fixed-delay.attempts",
                      "2",
                      "restart-strategy.fixed-delay.delay",
                      "0",
                      NULL};
  fl_env_t *env = env_of(kv);
  ckjob_t j = {.n = N, .keys = KEYS, .pause_at = N / 2, .fail_at = N / 2 + 777, .budget = 64};
  ckjob_build(env, &j, out);
  bool checkpointed;
  /* the source goes on once a checkpoint of the paused job is complete */
  int rc = ckjob_execute_paused(env, &j, root, 1, CKJOB_RESUME, "restart", &checkpointed);
  if (rc) fprintf(stderr, "execute: %s\n", fl_env_error(env));
  assert_int_equal(rc, 0);
  assert_true(checkpointed);
  assert_int_equal(atomic_load(&j.fail_flag), 1); /* the failure happened */
  fl_env_destroy(env);
  assert_int_equal(ckjob_output_diff(out, N, KEYS), 0);
}

static void failure_restarts_from_last_checkpoint_exactly_once(void **state) {
  run_restart("hashmap", "false");
}

static void failure_restarts_from_last_checkpoint_exactly_once_rocksdb(void **state) {
  run_restart("rocksdb", "false");
}

/* Incremental: checkpoints hold native RocksDB files, SST files shared between them. */
static void failure_restarts_from_incremental_rocksdb_checkpoint(void **state) {
  run_restart("rocksdb", "true");
  char shared[600];
  snprintf(shared, sizeof shared, "%s/rocksdb-true-ckpts/shared", g_tmpdir);
  DIR *d = opendir(shared);
  assert_non_null(d);
  size_t ssts = 0;
  struct dirent *e;
  while ((e = readdir(d)))
    if (strstr(e->d_name, ".sst")) ssts++;
  closedir(d);
  assert_true(ssts > 0);
}

/* How many lines the job writing to out committed to its sums file. */
static size_t committed_sums(const char *out) {
  lines_t l = {0};
  char p[600];
  snprintf(p, sizeof p, "%s/sums", out);
  read_committed(p, &l);
  size_t n = l.n;
  lines_free(&l);
  return n;
}

/* Without a restart strategy the failure ends the job, naming the operator. */
static void failure_without_restart_strategy_fails_the_job(void **state) {
  char out[512];
  snprintf(out, sizeof out, "%s/norestart-out", g_tmpdir);
  const char *kv[] = {"parallelism", "2", NULL};
  fl_env_t *env = env_of(kv);
  ckjob_t j = {.n = 5000, .keys = KEYS, .pause_at = -1, .fail_at = 100};
  ckjob_build(env, &j, out);
  assert_int_equal(fl_env_execute(env, "x"), FL_EUSER);
  assert_non_null(strstr(fl_env_error(env), "sums"));
  assert_non_null(strstr(fl_env_error(env), "injected failure"));
  fl_env_destroy(env);
  /* nothing was committed: no checkpoints, and the job did not end */
  assert_int_equal(committed_sums(out), 0);
}

/* ---- savepoints: taken while running, restored at other parallelisms / backends ---- */

/* Runs the job to the pause at P=p on backend, takes a savepoint, stops. */
static void take_savepoint(const char *backend, int p, const char *sp, const char *out) {
  char ps[8];
  snprintf(ps, sizeof ps, "%d", p);
  const char *kv[] = {"parallelism", ps, "state.backend", backend, NULL};
  fl_env_t *env = env_of(kv);
  ckjob_t j = {.n = N, .keys = KEYS, .pause_at = N / 2, .fail_at = -1, .budget = 64};
  ckjob_build(env, &j, out);
  bg_job_t job;
  bg_job_start(&job, env, "sp");
  int64_t deadline = deadline_in(20000);
  while (!atomic_load(&j.paused) && mono_ms() < deadline) pause_ms(1);
  char err[1024];
  int rc = fl_env_savepoint(env, sp, err, sizeof err);
  fl_env_stop(env);
  if (rc) fprintf(stderr, "savepoint: %s\n", err);
  assert_int_equal(bg_job_join(&job), FL_ECANCELED);
  assert_int_equal(rc, 0);
  fl_env_destroy(env);
}

static void restore_savepoint(const char *backend, int p, const char *sp, const char *out) {
  char ps[8];
  snprintf(ps, sizeof ps, "%d", p);
  const char *kv[] = {"parallelism", ps, "state.backend", backend, "execution.savepoint.path", sp,
                      NULL};
  fl_env_t *env = env_of(kv);
  ckjob_t j = {.n = N, .keys = KEYS, .pause_at = -1, .fail_at = -1, .budget = 64};
  ckjob_build(env, &j, out);
  execute_ok(env, "restore");
  fl_env_destroy(env);
  assert_int_equal(ckjob_output_diff(out, N, KEYS), 0);
}

static void copy_dir(const char *from, const char *to) {
  char cmd[2048];
  snprintf(cmd, sizeof cmd, "cp -a '%s' '%s'", from, to);
  assert_int_equal(system(cmd), 0);
}

static void savepoint_at_4_restores_at_1_and_3(void **state) {
  char sp[512], out[512], o1[512], o3[512];
  snprintf(sp, sizeof sp, "%s/sp4", g_tmpdir);
  snprintf(out, sizeof out, "%s/sp4-out", g_tmpdir);
  snprintf(o1, sizeof o1, "%s/sp4-out-p1", g_tmpdir);
  snprintf(o3, sizeof o3, "%s/sp4-out-p3", g_tmpdir);
  take_savepoint("hashmap", 4, sp, out);
  /* the savepoint committed nothing: the output so far is pending */
  assert_int_equal(committed_sums(out), 0);
  copy_dir(out, o1);
  copy_dir(out, o3);
  restore_savepoint("hashmap", 1, sp, o1);
  restore_savepoint("hashmap", 3, sp, o3);
}

/* A savepoint <tmp>/<name> taken on backend from at parallelism 2, restored on to at p. */
static void savepoint_from_to(const char *name, const char *from, const char *to, int p) {
  char sp[512], out[600];
  snprintf(sp, sizeof sp, "%s/%s", g_tmpdir, name);
  snprintf(out, sizeof out, "%s-out", sp);
  take_savepoint(from, 2, sp, out);
  restore_savepoint(to, p, sp, out);
}

static void savepoint_moves_between_backends(void **state) {
  savepoint_from_to("sp-h", "hashmap", "rocksdb", 3);
  savepoint_from_to("sp-r", "rocksdb", "hashmap", 1);
}

static void checkpoint_configuration_is_checked(void **state) {
  fl_config_t *c = fl_config_new();
  char err[512] = "";
  assert_int_equal(fl_config_set(c, "execution.checkpointing.interval", "1s", err, sizeof err), 0);
  fl_env_t *env = NULL;
  assert_int_equal(fl_env_new(&env, c, err, sizeof err), FL_ECONFIG);
  assert_non_null(strstr(err, "state.checkpoints.dir"));
  assert_int_equal(fl_config_set(c, "restart-strategy.type", "sometimes", err, sizeof err),
                   FL_ECONFIG);
  assert_non_null(strstr(err, "restart-strategy.type"));
  assert_int_equal(
      fl_config_set(c, "state.backend.rocksdb.block-cache-size", "12 apples", err, sizeof err),
      FL_ECONFIG);
  assert_int_equal(
      fl_config_set(c, "state.backend.rocksdb.block-cache-size", "8mb", err, sizeof err), 0);
  fl_config_destroy(c);
}

static void restore_from_a_missing_path_names_it(void **state) {
  const char *kv[] = {"execution.savepoint.path", "/nonexistent/flink-savepoint", NULL};
  fl_env_t *env = env_of(kv);
  ckjob_t j = {.n = 10, .keys = 2, .pause_at = -1, .fail_at = -1};
  char out[512];
  snprintf(out, sizeof out, "%s/missing-out", g_tmpdir);
  ckjob_build(env, &j, out);
  int rc = fl_env_execute(env, "x");
  assert_true(rc < 0);
  assert_non_null(strstr(fl_env_error(env), "/nonexistent/flink-savepoint"));
  fl_env_destroy(env);
}

static void savepoint_of_a_job_that_is_not_running_is_refused(void **state) {
  fl_env_t *env = env_with(1, NULL);
  char err[256];
  assert_int_equal(fl_env_savepoint(env, "/tmp/x", err, sizeof err), FL_ESTATE);
  assert_non_null(strstr(err, "not running"));
  fl_env_destroy(env);
}

/* A checkpoint directory reused by a later run: a restart of that run must not restore
 * the earlier run's checkpoints (here its final one, with every record read). */
static void restart_ignores_checkpoints_of_an_earlier_run(void **state) {
  char root[512], out_a[512], out_b[512];
  snprintf(root, sizeof root, "%s/reused-ckpts", g_tmpdir);
  snprintf(out_a, sizeof out_a, "%s/reused-out-a", g_tmpdir);
  snprintf(out_b, sizeof out_b, "%s/reused-out-b", g_tmpdir);
  const char *kv_a[] = {
      "parallelism", "2", "state.checkpoints.dir", root, "execution.checkpointing.interval",
      "20ms",        NULL};
  fl_env_t *env = env_of(kv_a);
  ckjob_t a = {.n = N, .keys = KEYS, .pause_at = -1, .fail_at = -1, .budget = 64};
  ckjob_build(env, &a, out_a);
  assert_int_equal(fl_env_execute(env, "a"), 0);
  fl_env_destroy(env);
  assert_true(complete_checkpoints(root, NULL) > 0);
  /* run b: no checkpoint of its own before its failure (the first would come after 1 h) */
  const char *kv_b[] = {"parallelism",
                        "2",
                        "state.checkpoints.dir",
                        root,
                        "execution.checkpointing.interval",
                        "1h",
                        "restart-strategy.type",
                        "fixed-delay",
                        "restart-strategy.fixed-delay.attempts",
                        "1",
                        "restart-strategy.fixed-delay.delay",
                        "0",
                        NULL};
  env = env_of(kv_b);
  ckjob_t b = {.n = N, .keys = KEYS, .pause_at = -1, .fail_at = 777, .budget = 64};
  ckjob_build(env, &b, out_b);
  execute_ok(env, "b");
  assert_int_equal(atomic_load(&b.fail_flag), 1);
  fl_env_destroy(env);
  assert_int_equal(ckjob_output_diff(out_b, N, KEYS), 0);
}

/* ---- restart strategies give up as configured ---- */

static _Atomic int g_opens;

static int always_fail_open(fl_context_t *ctx, void *opaque, void **inst) {
  atomic_fetch_add(&g_opens, 1);
  return 0;
}
static int always_fail(fl_context_t *ctx, const fl_record_t *in, void *inst) {
  return fl_ctx_fail(ctx, "always fails");
}

static int attempts_with(const char *const *kv) {
  fl_env_t *env = env_of(kv);
  atomic_store(&g_opens, 0);
  fl_record_t r = rec_str("k", "v", 1);
  fl_stream_t *s = fl_source_collection(env, "one", &r, 1);
  static const fl_process_fn_t fn = {
      .version = FL_PROCESS_FN_VERSION, .open = always_fail_open, .process = always_fail};
  s = fl_stream_process(s, "failing", &fn, NULL);
  collector_t c;
  sink_into(s, &c);
  assert_int_equal(fl_env_execute(env, "restarts"), FL_EUSER);
  assert_non_null(strstr(fl_env_error(env), "always fails"));
  char *m = fl_env_metrics_json(env);
  assert_non_null(strstr(m, "\"restarts\":"));
  fl_free(m);
  fl_env_destroy(env);
  collector_free(&c);
  return atomic_load(&g_opens);
}

static void restart_strategies_give_up_as_configured(void **state) {
  /* Each strategy, and how often the failing operator opens under it: the first run and
   * every restart. */
  static const struct {
    const char *kv[9];
    int opens;
  } cases[] = {
      {{"restart-strategy.type", "none"}, 1},
      {{"restart-strategy.type", "fixed-delay", "restart-strategy.fixed-delay.attempts", "2",
        "restart-strategy.fixed-delay.delay", "1ms"},
       3},
      {{"restart-strategy.type", "exponential-delay",
        "restart-strategy.exponential-delay.initial-backoff", "1ms",
        "restart-strategy.exponential-delay.max-backoff", "4ms",
        "restart-strategy.exponential-delay.attempts", "3"},
       4},
      {{"restart-strategy.type", "failure-rate",
        "restart-strategy.failure-rate.max-failures-per-interval", "2",
        "restart-strategy.failure-rate.failure-rate-interval", "1h",
        "restart-strategy.failure-rate.delay", "1ms"},
       3},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
    assert_int_equal(attempts_with(cases[i].kv), cases[i].opens);
}

/* Every line the library writes goes through fl_env_set_log: the restart lines reach the
 * callback with their level, and nothing is written to stderr. */
typedef struct {
  pthread_mutex_t mu;
  int n, warn;
  char last[512];
} log_sink_t;

static void collect_log(fl_log_level_t level, const char *line, void *opaque) {
  log_sink_t *l = opaque;
  pthread_mutex_lock(&l->mu);
  l->n++;
  l->warn += level == FL_LOG_WARN;
  snprintf(l->last, sizeof l->last, "%s", line);
  pthread_mutex_unlock(&l->mu);
}

static void log_lines_go_to_the_log_function(void **state) {
  const char *kv[] = {"restart-strategy.type",
                      "fixed-delay",
                      "restart-strategy.fixed-delay.attempts",
                      "2",
                      "restart-strategy.fixed-delay.delay",
                      "1ms",
                      NULL};
  fl_env_t *env = env_of(kv);
  log_sink_t l = {.mu = PTHREAD_MUTEX_INITIALIZER};
  assert_int_equal(fl_env_set_log(NULL, collect_log, &l), FL_EINVAL);
  assert_int_equal(fl_env_set_log(env, collect_log, &l), 0);
  fl_record_t r = rec_str("k", "v", 1);
  fl_stream_t *s = fl_source_collection(env, "one", &r, 1);
  static const fl_process_fn_t fn = {.version = FL_PROCESS_FN_VERSION, .process = always_fail};
  s = fl_stream_process(s, "failing", &fn, NULL);
  collector_t c;
  sink_into(s, &c);
  /* stderr goes to a file while the job runs */
  char path[600];
  snprintf(path, sizeof path, "%s/stderr.txt", g_tmpdir);
  fflush(stderr);
  int saved = dup(2);
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  assert_true(saved >= 0 && fd >= 0);
  dup2(fd, 2);
  close(fd);
  int rc = fl_env_execute(env, "logged");
  fflush(stderr);
  dup2(saved, 2);
  close(saved);
  assert_int_equal(rc, FL_EUSER);
  assert_int_equal(l.n, 2);
  assert_int_equal(l.warn, 2);
  assert_non_null(strstr(l.last, "restart 2"));
  struct stat st;
  assert_int_equal(stat(path, &st), 0);
  assert_int_equal(st.st_size, 0);
  /* not after execute */
  assert_int_equal(fl_env_set_log(env, NULL, NULL), FL_EINVAL);
  fl_env_destroy(env);
  collector_free(&c);
}

/* ---- a restore that falls back never repeats committed output ---- */

/* Parallelism 2, checkpoints every 10 ms under root (3 kept), restored from the newest
 * of them when restore. */
static fl_env_t *checkpointing_env(const char *root, bool restore) {
  const char *kv[] = {"parallelism",
                      "2",
                      "state.checkpoints.dir",
                      root,
                      "state.checkpoints.num-retained",
                      "3",
                      "execution.checkpointing.interval",
                      "10ms",
                      "execution.savepoint.path",
                      restore ? root : "",
                      NULL};
  return env_of(kv);
}

static void run_fallback_job(const char *root, const char *out, bool restore) {
  fl_env_t *env = checkpointing_env(root, restore);
  log_sink_t l = {.mu = PTHREAD_MUTEX_INITIALIZER};
  fl_env_set_log(env, collect_log, &l); /* the fallback is logged, not printed */
  ckjob_t j = {
      .n = N, .keys = KEYS, .pause_at = -1, .fail_at = -1, .budget = 64, .rate_per_ms = 300};
  ckjob_build(env, &j, out);
  execute_ok(env, "fallback");
  fl_env_destroy(env);
}

/* The newest checkpoint is damaged after its output was committed: the next start
 * restores the one before and replays from there; the file sink takes back what it
 * committed after the restored checkpoint, so the output holds every record once. The
 * same when no checkpoint is left at all (the directory was deleted). */
static void fallback_past_a_corrupt_checkpoint_takes_back_its_output(void **state) {
  char root[512], out[512], man[700];
  ckjob_paths(root, out, "fallback");
  run_fallback_job(root, out, false);
  assert_int_equal(ckjob_output_diff(out, N, KEYS), 0);
  int64_t newest;
  assert_true(complete_checkpoints(root, &newest) >= 2); /* one to fall back to */
  snprintf(man, sizeof man, "%s/chk-%lld/_manifest", root, (long long)newest);
  FILE *f = fopen(man, "r+b");
  assert_non_null(f);
  int c = fgetc(f);
  fseek(f, 0, SEEK_SET);
  fputc(c ^ 0x20, f);
  fclose(f);
  run_fallback_job(root, out, true);
  assert_int_equal(ckjob_output_diff(out, N, KEYS), 0);

  rm_rf(root);
  run_fallback_job(root, out, false); /* nothing to restore: a fresh start */
  assert_int_equal(ckjob_output_diff(out, N, KEYS), 0);
}

/* Checkpoints that cannot even start count as failed, and the error that ends the job
 * names the last cause. */
static int never_ending_run(fl_context_t *ctx, void *inst) { return FL_SOURCE_WAIT; }

static void checkpoints_that_cannot_start_are_counted_and_named(void **state) {
  char file[600], root[700];
  snprintf(file, sizeof file, "%s/a-file", g_tmpdir);
  FILE *f = fopen(file, "w");
  assert_non_null(f);
  fclose(f);
  snprintf(root, sizeof root, "%s/ckpts", file); /* below a regular file: never creatable */
  const char *kv[] = {"state.checkpoints.dir",
                      root,
                      "execution.checkpointing.interval",
                      "5ms",
                      "execution.checkpointing.tolerable-failed-checkpoints",
                      "3",
                      NULL};
  fl_env_t *env = env_of(kv);
  log_sink_t l = {.mu = PTHREAD_MUTEX_INITIALIZER};
  assert_int_equal(fl_env_set_log(env, collect_log, &l), 0);
  static const fl_source_fn_t src = {.version = FL_SOURCE_FN_VERSION, .run = never_ending_run};
  fl_stream_t *s = fl_source(env, "forever", &src, NULL, 0);
  collector_t c;
  sink_into(s, &c);
  int rc = fl_env_execute(env, "no-checkpoints");
  assert_int_not_equal(rc, 0);
  const char *err = fl_env_error(env);
  assert_non_null(strstr(err, "tolerated"));
  assert_non_null(strstr(err, "a-file")); /* the cause: the path that cannot be made */
  char *m = fl_env_metrics_json(env);
  assert_non_null(strstr(m, "\"failed\":4"));
  fl_free(m);
  assert_int_equal(l.warn, 4); /* one line per failed checkpoint */
  fl_env_destroy(env);
  collector_free(&c);
}

/* ---- a sink's lent buffer goes into the checkpoint off the worker ---- */

/* A two-phase sink that lends LEND_LEN bytes of a pattern at every snapshot, as the
 * exactly-once Kafka sink lends its write-ahead copy, with a release that notes whether
 * it ran off the instance's worker thread; its restore checks the bytes it gets back. */
#define LEND_LEN ((size_t)(1u << 20) + 3)
static unsigned char g_lend_data[LEND_LEN];

typedef struct lender {
  _Atomic int lent, released, off_worker, restored, bad;
} lender_t;

typedef struct lend {
  lender_t *l;
  pthread_t worker;
} lend_t;

static void lend_release(void *arg) {
  lend_t *x = arg;
  atomic_fetch_add(&x->l->released, 1);
  if (!pthread_equal(pthread_self(), x->worker)) atomic_fetch_add(&x->l->off_worker, 1);
  free(x);
}

static int lender_open(fl_context_t *ctx, void *opaque, void **inst) {
  (void)ctx;
  *inst = opaque;
  return 0;
}
static int lender_write(fl_context_t *ctx, const fl_record_t *in, void *inst) {
  (void)ctx, (void)in, (void)inst;
  return 0;
}
static int lender_snapshot(fl_context_t *ctx, void *inst, int64_t id, fl_buf_t *out) {
  lender_t *l = inst;
  lend_t *x = malloc(sizeof *x);
  if (!x || fl_buf_append(out, "LEND", 4)) {
    free(x);
    return FL_ENOMEM;
  }
  *x = (lend_t){l, pthread_self()};
  atomic_fetch_add(&l->lent, 1);
  (void)id;
  fl_ctx_snapshot_lend(ctx, g_lend_data, LEND_LEN, lend_release, x);
  return 0;
}
static int lender_restore(fl_context_t *ctx, void *inst, const fl_bytes_t *st, size_t n) {
  lender_t *l = inst;
  (void)ctx;
  for (size_t i = 0; i < n; i++) {
    if (!st[i].len) continue;
    if (st[i].len != 4 + LEND_LEN || memcmp(st[i].data, "LEND", 4) != 0 ||
        memcmp((const unsigned char *)st[i].data + 4, g_lend_data, LEND_LEN) != 0)
      atomic_fetch_add(&l->bad, 1);
    else
      atomic_fetch_add(&l->restored, 1);
  }
  return 0;
}

static void run_lender(const char *root, bool restore, ckjob_t *j, lender_t *l) {
  static const fl_sink_fn_t sink = {.version = FL_SINK_FN_VERSION,
                                    .open = lender_open,
                                    .write = lender_write,
                                    .snapshot = lender_snapshot,
                                    .restore = lender_restore};
  fl_env_t *env = checkpointing_env(root, restore);
  fl_stream_t *s = fl_stream_rebalance(ckjob_source(env, j));
  assert_int_equal(fl_stream_sink(s, "lender", &sink, l), 0);
  if (restore) {
    execute_ok(env, "lender");
  } else {
    bool checkpointed;
    assert_int_equal(ckjob_execute_paused(env, j, root, 2, CKJOB_STOP, "lender", &checkpointed),
                     FL_ECANCELED);
    assert_true(checkpointed);
  }
  fl_env_destroy(env);
}

/* What a sink lends with a release at a barrier is written into the checkpoint by the
 * coordinator's threads, not the worker's, released once each, and restored as it was. */
static void a_lent_buffer_is_written_off_the_worker_and_restored(void **state) {
  (void)state;
  for (size_t i = 0; i < LEND_LEN; i++) g_lend_data[i] = (unsigned char)(i * 7 + 3);
  char root[512];
  snprintf(root, sizeof root, "%s/lender-ckpts", g_tmpdir);
  lender_t l = {0};
  ckjob_t j = {.n = 400, .keys = KEYS, .pause_at = 200, .fail_at = -1, .budget = 16};
  run_lender(root, false, &j, &l);
  assert_true(atomic_load(&l.lent) >= 4); /* two subtasks, two complete checkpoints */
  assert_int_equal(atomic_load(&l.released), atomic_load(&l.lent));
  assert_true(atomic_load(&l.off_worker) >= 4); /* those of the complete checkpoints */
  lender_t r = {0};
  ckjob_t j2 = {.n = 400, .keys = KEYS, .pause_at = -1, .fail_at = -1, .budget = 16};
  run_lender(root, true, &j2, &r);
  assert_int_equal(atomic_load(&r.bad), 0);
  assert_int_equal(atomic_load(&r.restored), 2 * 2); /* each instance gets both states */
  assert_int_equal(atomic_load(&r.released), atomic_load(&r.lent));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(checkpoint_configuration_is_checked),
      cmocka_unit_test(savepoint_of_a_job_that_is_not_running_is_refused),
      cmocka_unit_test(failure_without_restart_strategy_fails_the_job),
      cmocka_unit_test(failure_restarts_from_last_checkpoint_exactly_once),
      cmocka_unit_test(failure_restarts_from_last_checkpoint_exactly_once_rocksdb),
      cmocka_unit_test(failure_restarts_from_incremental_rocksdb_checkpoint),
      cmocka_unit_test(savepoint_at_4_restores_at_1_and_3),
      cmocka_unit_test(savepoint_moves_between_backends),
      cmocka_unit_test(restore_from_a_missing_path_names_it),
      cmocka_unit_test(restart_strategies_give_up_as_configured),
      cmocka_unit_test(restart_ignores_checkpoints_of_an_earlier_run),
      cmocka_unit_test(log_lines_go_to_the_log_function),
      cmocka_unit_test(checkpoints_that_cannot_start_are_counted_and_named),
      cmocka_unit_test(fallback_past_a_corrupt_checkpoint_takes_back_its_output),
      cmocka_unit_test(a_lent_buffer_is_written_off_the_worker_and_restored),
  };
  return cmocka_run_group_tests(tests, tmpdir_group_setup, tmpdir_group_teardown);
}
