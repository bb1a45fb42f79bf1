/*
 * Local working directories (state.backend.rocksdb.localdir): a job's RocksDB files live
 * in a directory its process holds a lock on; a SIGKILLed job's directory is removed by
 * the next start in the same place, a live job's never; and a local directory that
 * cannot be used fails the job with its real cause.
 */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <dirent.h>
#include <limits.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "fl_test_util.h"
#include "run_util.h"

/* Waits (polling) until the file at path exists, or the deadline (mono_ms) passed. */
static void wait_for_file(const char *path, int64_t deadline) {
  while (access(path, F_OK) != 0 && mono_ms() < deadline) pause_ms(2);
  assert_int_equal(access(path, F_OK), 0);
}

/* Entries of dir whose name starts with "flink-". */
static int flink_entries(const char *dir) {
  DIR *d = opendir(dir);
  if (!d) return -1;
  int n = 0;
  struct dirent *e;
  while ((e = readdir(d)))
    if (strncmp(e->d_name, "flink-", 6) == 0) n++;
  closedir(d);
  return n;
}

/* A keyed RocksDB job whose source tells `started` (a file) that it runs, then runs
 * until the flag `stop` says so (or forever). */
typedef struct {
  const char *started;
  _Atomic int *stop;
} forever_t;

static int forever_run(fl_context_t *ctx, void *inst) {
  forever_t *f = inst;
  static _Atomic int told;
  if (!atomic_exchange(&told, 1)) {
    FILE *fp = fopen(f->started, "w");
    if (fp) fclose(fp);
  }
  int rc = fl_emit(ctx, "k", 1, "v", 1, 1);
  if (rc) return rc;
  return f->stop && atomic_load(f->stop) ? FL_SOURCE_END : FL_SOURCE_WAIT;
}

static int count_rec(fl_context_t *ctx, const fl_record_t *in, void *inst) {
  fl_state_desc_t *d = inst;
  return fl_value_set(ctx, d, "x", 1);
}

static fl_env_t *rocksdb_env(const char *localdir) {
  const char *kv[] = {"state.backend", "rocksdb", "state.backend.rocksdb.localdir", localdir, NULL};
  return env_of(kv);
}

static void build(fl_env_t *env, forever_t *f, collector_t *col) {
  static fl_source_fn_t src = {.version = FL_SOURCE_FN_VERSION, .run = forever_run};
  fl_stream_t *s = fl_source(env, "src", &src, f, 0);
  fl_state_desc_t *d = fl_state_value(env, "seen");
  fl_process_fn_t p = {.version = FL_PROCESS_FN_VERSION, .process = count_rec};
  s = fl_keyed_process(fl_stream_key_by(s, NULL, NULL), "keyed", &p, d);
  sink_into(s, col);
}

static void *execute_thread(void *env) {
  fl_env_execute(env, "live");
  return NULL;
}

static void working_directory_of_a_killed_job_is_removed_at_the_next_start(void **state) {
  char base[PATH_MAX], started[PATH_MAX];
  snprintf(base, sizeof base, "%s/local", g_tmpdir);
  snprintf(started, sizeof started, "%s/started", g_tmpdir);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    fl_env_t *env = rocksdb_env(base);
    forever_t f = {started, NULL};
    collector_t col;
    build(env, &f, &col);
    fl_env_execute(env, "killed");
    _exit(3); /* never reached: the parent kills it */
  }
  int64_t deadline = deadline_in(30000);
  wait_for_file(started, deadline);
  kill(pid, SIGKILL);
  int st;
  waitpid(pid, &st, 0);
  assert_true(flink_entries(base) >= 1); /* it left its directory behind */

  /* A live job's directory survives a start next to it. */
  fl_env_t *live = rocksdb_env(base);
  _Atomic int stop_live = 0;
  char started2[PATH_MAX];
  snprintf(started2, sizeof started2, "%s/started2", g_tmpdir);
  forever_t f2 = {started2, &stop_live};
  collector_t c2;
  build(live, &f2, &c2);
  fl_env_t *next = rocksdb_env(base);
  _Atomic int stop_now = 1;
  forever_t f3 = {started2, &stop_now};
  collector_t c3;
  build(next, &f3, &c3);
  /* `live` is planned (its directory locked) only while it executes: run it in a
   * thread, wait until its source runs, then start `next`. */
  pthread_t t;
  pthread_create(&t, NULL, execute_thread, live);
  wait_for_file(started2, deadline);
  execute_ok(next, "next");
  /* the killed job's directory and lock are gone; the live one's are there */
  assert_int_equal(flink_entries(base), 2);
  atomic_store(&stop_live, 1);
  pthread_join(t, NULL);
  assert_int_equal(flink_entries(base), 0); /* and gone when it ends */
  fl_env_destroy(live);
  fl_env_destroy(next);
  collector_free(&c2);
  collector_free(&c3);
}

static void unusable_local_directory_is_named_not_out_of_memory(void **state) {
  char file[PATH_MAX], base[PATH_MAX + 16];
  snprintf(file, sizeof file, "%s/a-file", g_tmpdir);
  write_text(file, ""); /* a local directory below a regular file cannot be made */
  snprintf(base, sizeof base, "%s/below", file);
  fl_env_t *env = rocksdb_env(base);
  _Atomic int stop = 1;
  forever_t fv = {file, &stop};
  collector_t col;
  build(env, &fv, &col);
  int rc = fl_env_execute(env, "unusable");
  assert_int_not_equal(rc, 0);
  assert_int_not_equal(rc, FL_ENOMEM);
  const char *err = fl_env_error(env);
  assert_non_null(strstr(err, file));
  assert_null(strstr(err, "out of memory"));
  fl_env_destroy(env);
  collector_free(&col);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(working_directory_of_a_killed_job_is_removed_at_the_next_start),
      cmocka_unit_test(unusable_local_directory_is_named_not_out_of_memory),
  };
  return cmocka_run_group_tests(tests, tmpdir_group_setup, tmpdir_group_teardown);
}
