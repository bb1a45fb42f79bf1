/* Crash tests: a checkpointed job over a deterministic input runs in a child process
 * that is killed with SIGKILL at random moments, 30 times per state backend, each time
 * restarted from the newest checkpoint; then it runs to the end. Its committed output
 * (exactly-once file sinks: running per-key sums, which carry the whole state history,
 * and window sums) must equal the output of a run that never failed: nothing lost,
 * nothing counted twice. */
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ckpt_job.h"
#include "fl_test_util.h"

#define N 300000
#define KEYS 100
#define KILLS 30

/* The child: runs the job from the newest checkpoint (if any) to the end. */
static void child(const char *backend, const char *root, const char *out, const char *rocks) {
  /* from the newest checkpoint when there is one */
  const char *restore = complete_checkpoints(root, NULL) > 0 ? "execution.savepoint.path" : NULL;
  const char *kv[] = {"parallelism",
                      "2",
                      "state.backend",
                      backend,
                      "state.backend.rocksdb.localdir",
                      rocks,
                      "state.checkpoints.dir",
                      root,
                      "state.checkpoints.num-retained",
                      "2",
                      "execution.checkpointing.interval",
                      "25ms",
                      restore,
                      root,
                      NULL};
  char err[512];
  fl_env_t *env = env_try(kv, err, sizeof err);
  if (!env) _exit(3);
  /* about 6 s of input in all (longer when timeouts are scaled for slow builds) */
  ckjob_t j = {.n = N,
               .keys = KEYS,
               .pause_at = -1,
               .fail_at = -1,
               .budget = 256,
               .rate_per_ms = 50.0 / timeout_scale()};
  ckjob_build(env, &j, out);
  int rc = fl_env_execute(env, "crash");
  if (rc) fprintf(stderr, "child: %s\n", fl_env_error(env));
  fl_env_destroy(env);
  _exit(rc ? 1 : 0);
}

static uint64_t rnd_state = 0x9E3779B97F4A7C15ull;
static uint64_t rnd(void) {
  rnd_state ^= rnd_state << 13;
  rnd_state ^= rnd_state >> 7;
  rnd_state ^= rnd_state << 17;
  return rnd_state;
}

static void crash_loop(const char *backend) {
  char root[512], out[512], rocks[512];
  ckjob_paths(root, out, backend);
  snprintf(rocks, sizeof rocks, "%s/%s-rocks", g_tmpdir, backend);
  int killed = 0, finished_early = 0;
  double scale = timeout_scale();
  for (int k = 0; k < KILLS; k++) {
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) child(backend, root, out, rocks);
    /* a random moment of the run: 30..250 ms (scaled for slow builds) */
    int64_t ms = (int64_t)((30 + (int)(rnd() % 220)) * scale);
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
    int status = 0;
    if (waitpid(pid, &status, WNOHANG) == 0) {
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      killed++;
    } else {
      /* it ended before the kill: it must have ended well */
      assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
      finished_early++;
    }
  }
  /* the last run goes to the end */
  fflush(NULL);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) child(backend, root, out, rocks);
  int status = 0;
  waitpid(pid, &status, 0);
  assert_true(WIFEXITED(status));
  assert_int_equal(WEXITSTATUS(status), 0);
  fprintf(stderr, "%s: %d runs killed, %d ended before their kill\n", backend, killed,
          finished_early);
  assert_true(killed >= KILLS / 2); /* the test must have exercised crashes */

  assert_int_equal(ckjob_output_diff(out, N, KEYS), 0);
}

static void sigkill_at_random_moments_hashmap(void **state) { crash_loop("hashmap"); }
static void sigkill_at_random_moments_rocksdb(void **state) { crash_loop("rocksdb"); }

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(sigkill_at_random_moments_hashmap),
      cmocka_unit_test(sigkill_at_random_moments_rocksdb),
  };
  return cmocka_run_group_tests(tests, tmpdir_group_setup, tmpdir_group_teardown);
}
