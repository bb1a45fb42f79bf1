/*
 * Running a job: attempts, restart strategies (Flink's fixed-delay, exponential-delay and
 * failure-rate), and the public fl_env_execute, fl_env_savepoint and fl_env_stop.
 *
 * An attempt plans the job (plan.c), starts the checkpoint coordinator (coord.c) and
 * one thread per worker (worker.c), and waits for them. A failed attempt that the
 * restart strategy allows is followed by another, restored from the newest complete
 * checkpoint this execution wrote, else from what the execution started from.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "checkpoint/store.h"
#include "runtime/coord.h"
#include "runtime/job.h"
#include "runtime/restore.h"
#include "util/clock.h"

/* Runs one attempt of the job, from r when not NULL. Checkpoint ids start at first_id. */
static int run_attempt(fl_env_t *env, fl_restore_t *r, int64_t first_id) {
  fl_job_t *job = calloc(1, sizeof *job);
  if (!job) return FL_ENOMEM;
  job->env = env;
  job->P = env->conf.parallelism;
  job->restore = r;
  job->work.lock_fd = -1;
  pthread_mutex_init(&job->err_lock, NULL);
  int rc = fl_rt_plan(job, env->errmsg, sizeof env->errmsg);
  if (rc) {
    fl_rt_job_destroy(job);
    return rc;
  }
  rc = fl_coord_start(job, first_id, env->errmsg, sizeof env->errmsg);
  if (rc) {
    fl_rt_job_destroy(job);
    return rc;
  }
  atomic_store(&env->job, job);
  int started = 0;
  for (; started < job->P; started++) {
    if (pthread_create(&job->workers[started].thread, NULL, fl_rt_worker_main,
                       &job->workers[started]) != 0) {
      fl_job_fail(job, FL_ESYS, "cannot start a worker thread");
      break;
    }
  }
  if (started < job->P) {
    /* Workers that never started count as drained with nothing in flight. */
    atomic_fetch_add(&job->drained_workers, job->P - started);
  }
  for (int i = 0; i < started; i++) pthread_join(job->workers[i].thread, NULL);
  /* savepoint callers hold env->job while they wait: stop the coordinator first */
  fl_coord_stop(job);
  atomic_store(&env->job, NULL);
  while (atomic_load(&env->stoppers) > 0) {
    /* fl_env_stop() or fl_env_savepoint() may still be using the job */
  }
  rc = job->err;
  if (rc) snprintf(env->errmsg, sizeof env->errmsg, "%s", job->errmsg);
  fl_rt_job_destroy(job);
  return rc;
}

/* Restart strategies (Flink's): whether failure number `n` (1-based, at mono time now)
 * may restart and after how long. */
typedef struct restarts {
  int n;
  int64_t backoff;      /* exponential: the current delay */
  int64_t last_failure; /* exponential: for the reset threshold */
  int64_t *times;       /* failure-rate: the last rate_max failure times */
  int n_times;
} restarts_t;

static bool may_restart(const fl_restart_conf_t *rc, restarts_t *st, int64_t *delay) {
  int64_t now = fl_mono_ms();
  st->n++;
  switch (rc->kind) {
  case FL_RESTART_NONE: return false;
  case FL_RESTART_FIXED: *delay = rc->fixed_delay_ms; return st->n <= rc->fixed_attempts;
  case FL_RESTART_EXPONENTIAL:
    if (st->last_failure && now - st->last_failure >= rc->exp_reset_ms) {
      st->backoff = 0; /* ran long enough: start over */
      st->n = 1;
    }
    st->last_failure = now;
    st->backoff =
        st->backoff ? (int64_t)((double)st->backoff * rc->exp_multiplier) : rc->exp_initial_ms;
    if (st->backoff > rc->exp_max_ms) st->backoff = rc->exp_max_ms;
    *delay = st->backoff;
    return st->n <= rc->exp_attempts;
  case FL_RESTART_FAILURE_RATE: {
    /* more than rate_max failures within the interval: give up */
    int keep = 0;
    for (int i = 0; i < st->n_times; i++)
      if (now - st->times[i] < rc->rate_interval_ms) st->times[keep++] = st->times[i];
    st->n_times = keep;
    if (st->n_times >= rc->rate_max) return false;
    st->times[st->n_times++] = now;
    *delay = rc->rate_delay_ms;
    return true;
  }
  }
  return false;
}

/* Waits ms milliseconds or until fl_env_stop(). */
static void restart_wait(fl_env_t *env, int64_t ms) {
  int64_t end = fl_mono_ms() + ms;
  while (!atomic_load(&env->stop_requested)) {
    int64_t left = end - fl_mono_ms();
    if (left <= 0) break;
    struct timespec ts = {.tv_sec = 0, .tv_nsec = (left > 20 ? 20 : left) * 1000000L};
    nanosleep(&ts, NULL);
  }
}

static int execute_attempts(fl_env_t *env);

int fl_env_execute(fl_env_t *env, const char *job_name) {
  if (!env) return FL_EINVAL;
  if (env->executed) {
    snprintf(env->errmsg, sizeof env->errmsg, "an environment runs once");
    return FL_EINVAL;
  }
  env->executed = 1;
  if (env->error) return env->error;
  free(atomic_exchange(&env->job_name, strdup(job_name ? job_name : "job")));
  if (atomic_load(&env->stop_requested)) {
    snprintf(env->errmsg, sizeof env->errmsg, "the job was stopped before it started");
    atomic_store(&env->state, 2);
    return FL_ECANCELED;
  }
  atomic_store(&env->start_ms, fl_wall_ms());
  if (env->services && env->services->start) {
    int src = env->services->start(env, env->errmsg, sizeof env->errmsg);
    if (src) {
      atomic_store(&env->state, 2);
      return src;
    }
  }
  atomic_store(&env->state, 1);
  int rc = execute_attempts(env);
  atomic_store(&env->end_ms, fl_wall_ms());
  atomic_store(&env->state, 2);
  if (env->services && env->services->stop) env->services->stop(env);
  return rc;
}

/* The attempts of one execution, restarted as the strategy allows. */
static int execute_attempts(fl_env_t *env) {
  const fl_env_conf_t *conf = &env->conf;
  fl_restore_t *r = NULL;
  int rc = FL_OK;
  /* state.checkpoints.restore-latest: a checkpoint under the checkpoint directory wins
   * over execution.savepoint.path, which is then only where a first run starts. */
  if (conf->restore_latest) {
    rc = fl_restore_load_latest(env, &r, env->errmsg, sizeof env->errmsg);
    if (rc) {
      atomic_store(&env->state, 2);
      return rc;
    }
  }
  if (!r && conf->restore_path[0]) {
    rc = fl_restore_load(env, conf->restore_path, &r, env->errmsg, sizeof env->errmsg);
    if (rc) return rc;
  }
  restarts_t st = {0};
  if (conf->restart.kind == FL_RESTART_FAILURE_RATE) {
    st.times = calloc((size_t)conf->restart.rate_max + 1, sizeof *st.times);
    if (!st.times) {
      fl_restore_free(r);
      return FL_ENOMEM;
    }
  }
  int64_t run_first = 0; /* the first checkpoint id of this execution */
  for (;;) {
    /* checkpoint ids go on after every id already in the checkpoint directory */
    int64_t first = 1;
    if (conf->ckpt_dir[0]) first = fl_ckpt_root_max_id(conf->ckpt_dir) + 1;
    if (r && r->id >= first) first = r->id + 1;
    if (!run_first) run_first = first;
    if (r) {
      atomic_store(&env->ckpt_stats.restored_id, r->id);
      atomic_store(&env->ckpt_stats.restored_ms, fl_wall_ms());
    }
    rc = run_attempt(env, r, first);
    if (rc == FL_OK || rc == FL_ECANCELED || atomic_load(&env->stop_requested)) break;
    int64_t delay = 0;
    if (!may_restart(&conf->restart, &st, &delay)) break;
    atomic_fetch_add(&env->ckpt_stats.restarts, 1);
    fl_env_log(env, FL_LOG_WARN, "job '%s' failed (%s); restart %d in %lld ms",
               atomic_load(&env->job_name), env->errmsg, st.n, (long long)delay);
    restart_wait(env, delay);
    if (atomic_load(&env->stop_requested)) {
      rc = FL_ECANCELED;
      snprintf(env->errmsg, sizeof env->errmsg, "the job was stopped");
      break;
    }
    /* from the newest complete checkpoint, else from where this run started */
    if (conf->ckpt_dir[0] && fl_ckpt_root_max_id(conf->ckpt_dir) > 0) {
      fl_restore_t *nr = NULL;
      char msg[900];
      int lrc = fl_restore_load(env, conf->ckpt_dir, &nr, msg, sizeof msg);
      if (lrc == FL_OK && nr->id < run_first) {
        /* older than this execution (another run's): go on from where this one started */
        fl_restore_free(nr);
      } else if (lrc == FL_OK) {
        fl_restore_free(r);
        r = nr;
      } else if (lrc != FL_ENOTFOUND) {
        snprintf(env->errmsg, sizeof env->errmsg, "restart: %s", msg);
        rc = lrc;
        break;
      }
    }
  }
  free(st.times);
  fl_restore_free(r);
  return rc;
}

int fl_env_savepoint(fl_env_t *env, const char *path, char *errstr, size_t errstr_size) {
  char dummy[8];
  if (!errstr || !errstr_size) {
    errstr = dummy;
    errstr_size = sizeof dummy;
  }
  errstr[0] = '\0';
  if (!env || !path || !*path) {
    snprintf(errstr, errstr_size, "fl_env_savepoint: NULL environment or empty path");
    return FL_EINVAL;
  }
  atomic_fetch_add(&env->stoppers, 1);
  fl_job_t *job = atomic_load(&env->job);
  int rc;
  if (!job || !job->coord) {
    snprintf(errstr, errstr_size, "savepoint %s: the job is not running", path);
    rc = FL_ESTATE;
  } else {
    rc = fl_coord_savepoint(job, path, errstr, errstr_size);
  }
  atomic_fetch_sub(&env->stoppers, 1);
  return rc;
}

void fl_env_stop(fl_env_t *env) {
  if (!env) return;
  atomic_store(&env->stop_requested, 1);
  atomic_fetch_add(&env->stoppers, 1);
  fl_job_t *job = atomic_load(&env->job);
  if (job) {
    for (int i = 0; i < job->P; i++) {
      uint64_t one = 1;
      ssize_t n = write(job->workers[i].efd, &one, sizeof one);
      (void)n;
    }
  }
  atomic_fetch_sub(&env->stoppers, 1);
}
