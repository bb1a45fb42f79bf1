/*
 * The checkpoint coordinator of a running job.
 *
 * One coordinator thread per job. It triggers checkpoint n by publishing n in
 * job->ckpt_trigger and waking the workers; each worker's sources inject barrier n,
 * the barriers align through the graph (barrier.c), each operator streams its snapshot
 * into a file of the checkpoint it opens here (fl_coord_open_snapshot), and every worker
 * acknowledges with those open files (fl_coord_ack). The coordinator closes them (writes
 * what was deferred to the close, fsync, rename) and stores native copies while the
 * workers go on processing, each worker's on a thread of its own, and when every
 * worker acknowledged and every file is
 * durable it commits the manifest (src/checkpoint/store_write.c: temp + fsync + rename +
 * directory fsync), deletes checkpoints beyond the retained count, and publishes n in
 * job->ckpt_complete so that sinks commit. A checkpoint that is not complete within the
 * timeout is aborted (job->ckpt_abort); more consecutive failures than tolerated fail
 * the job. One checkpoint at a time (Flink's max-concurrent-checkpoints 1); the next
 * one is triggered `interval` after the previous trigger and at least `min-pause` after
 * the previous one ended.
 *
 * Savepoints take the same path into a directory of their own, and do not tell sinks to
 * commit: what a sink pre-committed for a savepoint is committed by the next completed
 * checkpoint, so a restore from the older checkpoint cannot find it already committed.
 *
 * The end of a job: when every worker's operators all ended, the coordinator takes a
 * final checkpoint (if checkpoints are on), so that sinks commit what they wrote last
 * only once it is covered; then it sets job->final_done and the workers leave.
 */
#define _GNU_SOURCE
#include "runtime/coord.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "checkpoint/store.h"
#include "util/clock.h"
#include "util/fs.h"

typedef struct ack {
  struct ack *next;
  int worker;
  int64_t id;
  bool absent;               /* the worker cannot take part (an operator ended and its
                                final state was not kept) */
  struct fl_ckpt_out **outs; /* [n_nodes]: snapshot files to close, or NULL */
  char **finals;             /* [n_nodes]: final snapshots to copy in, or NULL */
  char **natives;            /* [n_nodes] or NULL: native store copies (incremental) */
  bool *owned;               /* [n_nodes]: delete natives[k] once stored */
} ack_t;

/* The writing of one worker's acknowledgement, on a thread of its own (so that the
 * workers' files, with their deferred write-ahead copies, are written side by side). */
typedef struct wjob {
  struct fl_coord *c;
  pthread_t thread;
  bool running, threaded, done; /* done: the write ended, not yet reaped */
  ack_t *a;
  fl_ckpt_writer_t *w;
  int rc;
  char err[1024];
} wjob_t;

struct fl_coord {
  fl_job_t *job;
  pthread_t thread;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  bool stopping;
  int64_t next_id;
  /* the checkpoint in progress (0: none) */
  int64_t pending;
  bool pending_final;
  fl_ckpt_kind_t pending_kind;
  fl_ckpt_writer_t *writer;
  bool *acked; /* [P] */
  int n_acked;
  wjob_t *wj;    /* [P] */
  int n_writing; /* wj[] running: no commit or abort until they are reaped */
  bool write_failed;
  char write_err[1100];
  _Atomic uint64_t bytes_total, bytes_new; /* of the pending checkpoint */
  int64_t pending_started;                 /* mono ms */
  ack_t *q, *q_tail;
  /* schedule */
  int64_t last_trigger, last_end; /* mono ms, 0: never */
  int failures;                   /* consecutive */
  /* savepoint requests: one at a time */
  char *sp_path; /* requested, not started yet */
  bool sp_busy;  /* a request is queued or running */
  bool sp_done;
  int sp_rc;
  char sp_err[1400];
  pthread_cond_t sp_cv;
};

static bool ckpt_enabled(const fl_job_t *job) {
  return job->env->conf.ckpt_interval_ms > 0 && job->env->conf.ckpt_dir[0];
}

static void log_line(const char *line, void *arg) { fl_env_log(arg, FL_LOG_INFO, "%s", line); }

/* The manifest's meta object: what a restore checks the job against. */
static char *meta_json(fl_job_t *job) {
  fl_env_t *env = job->env;
  json_t *m = json_object();
  json_t *nodes = json_array();
  if (!m || !nodes) {
    json_decref(m);
    json_decref(nodes);
    return NULL;
  }
  for (size_t i = 0; i < env->n_nodes; i++)
    json_array_append_new(nodes, json_string(env->nodes[i]->name));
  json_object_set_new(
      m, "job", json_string(atomic_load(&env->job_name) ? atomic_load(&env->job_name) : "job"));
  json_object_set_new(m, "parallelism", json_integer(job->P));
  json_object_set_new(m, "max_parallelism", json_integer(env->conf.max_parallelism));
  json_object_set_new(m, "backend", json_string(env->conf.rocksdb ? "rocksdb" : "hashmap"));
  json_object_set_new(m, "operators", nodes);
  char *s = json_dumps(m, JSON_COMPACT);
  json_decref(m);
  return s;
}

/* ---------------------------------------------------------------------------------- */
/* The coordinator thread (all under c->mu unless said otherwise)                       */

static void trigger(fl_coord_t *c, fl_ckpt_kind_t kind, const char *path, bool final) {
  fl_job_t *job = c->job;
  char err[1024];
  int64_t id = c->next_id++;
  fl_ckpt_writer_t *w = NULL;
  int rc = fl_ckpt_writer_begin(&w, kind == FL_CKPT_SAVEPOINT ? path : job->env->conf.ckpt_dir, id,
                                kind, err, sizeof err);
  c->last_trigger = fl_mono_ms();
  if (rc) {
    if (kind == FL_CKPT_SAVEPOINT) {
      c->sp_rc = rc;
      snprintf(c->sp_err, sizeof c->sp_err, "savepoint %s: %s", path, err);
      c->sp_done = true;
      pthread_cond_broadcast(&c->sp_cv);
    } else {
      fl_env_log(job->env, FL_LOG_WARN, "checkpoint %" PRId64 " could not start: %s", id, err);
      atomic_fetch_add(&job->env->ckpt_stats.failed, 1);
      fl_env_ckpt_end(job->env, id, rc, 0, 0, err);
      c->failures++;
      c->last_end = fl_mono_ms();
      if (c->failures > job->env->conf.ckpt_tolerable) {
        char m[1200];
        snprintf(m, sizeof m,
                 "checkpoint %" PRId64
                 " could not start (%s) and %d failed checkpoints are "
                 "tolerated",
                 id, err, job->env->conf.ckpt_tolerable);
        fl_job_fail(job, rc, m);
      }
    }
    return;
  }
  fl_env_ckpt_begin(job->env, id, kind == FL_CKPT_SAVEPOINT);
  c->writer = w;
  c->pending = id;
  c->pending_kind = kind;
  c->pending_final = final;
  c->pending_started = c->last_trigger;
  c->n_acked = 0;
  c->write_failed = false;
  atomic_store(&c->bytes_total, 0);
  atomic_store(&c->bytes_new, 0);
  for (int i = 0; i < job->P; i++) c->acked[i] = false;
  if (kind == FL_CKPT_SAVEPOINT) atomic_store(&job->savepoint_id, id); /* canonical format */
  atomic_store(&job->ckpt_trigger, id);
  fl_rt_wake_all(job);
}

/* Ends the pending checkpoint: rc 0 completed, else failed with msg. */
static void finish(fl_coord_t *c, int rc, const char *msg) {
  fl_job_t *job = c->job;
  int64_t id = c->pending;
  bool sp = c->pending_kind == FL_CKPT_SAVEPOINT;
  bool final = c->pending_final;
  c->pending = 0;
  c->writer = NULL;
  c->last_end = fl_mono_ms();
  fl_env_t *env = job->env;
  fl_env_ckpt_end(env, id, rc, (int64_t)atomic_load(&c->bytes_total),
                  (int64_t)atomic_load(&c->bytes_new), msg);
  if (rc == 0) {
    c->failures = 0;
    if (!sp) {
      atomic_fetch_add(&env->ckpt_stats.completed, 1);
      atomic_store(&env->ckpt_stats.last_id, id);
      atomic_store(&env->ckpt_stats.last_duration_ms, c->last_end - c->pending_started);
      atomic_store(&env->ckpt_stats.last_size, (int64_t)atomic_load(&c->bytes_total));
      atomic_store(&env->ckpt_stats.last_new_bytes, (int64_t)atomic_load(&c->bytes_new));
      atomic_store(&job->ckpt_complete, id);
      if (final) atomic_store(&job->final_done, id);
    }
  } else {
    atomic_store(&job->ckpt_abort, id);
    if (!sp) {
      atomic_fetch_add(&env->ckpt_stats.failed, 1);
      fl_env_log(env, FL_LOG_WARN, "checkpoint %" PRId64 " failed: %s", id, msg);
      c->failures++;
      if (c->failures > job->env->conf.ckpt_tolerable) {
        char m[1200];
        snprintf(m, sizeof m,
                 "checkpoint %" PRId64 " failed (%s) and %d failed checkpoints are tolerated", id,
                 msg, job->env->conf.ckpt_tolerable);
        fl_job_fail(job, rc, m);
      }
    }
  }
  if (sp) {
    c->sp_rc = rc;
    if (rc) snprintf(c->sp_err, sizeof c->sp_err, "%s", msg);
    c->sp_done = true;
    pthread_cond_broadcast(&c->sp_cv);
  }
  fl_rt_wake_all(job);
}

/* Stores the files of a native store copy as op-<k>-<s>/<file>: SST files once in the
 * shared directory, keyed by the store instance (file numbers restart in a new store),
 * the small metadata files (MANIFEST, CURRENT, OPTIONS) copied every time. */
static int write_native(fl_coord_t *c, fl_ckpt_writer_t *w, size_t k, int s, const char *dir,
                        uint64_t store_id, char *err, size_t size) {
  DIR *d = opendir(dir);
  if (!d) {
    snprintf(err, size, "cannot list %s: %s", dir, strerror(errno));
    return FL_EIO;
  }
  int rc = FL_OK;
  struct dirent *e;
  while (!rc && (e = readdir(d))) {
    if (e->d_name[0] == '.') continue;
    char name[512], src[4400], key[512];
    snprintf(name, sizeof name, "op-%zu-%d/%s", k, s, e->d_name);
    snprintf(src, sizeof src, "%s/%s", dir, e->d_name);
    size_t len = strlen(e->d_name);
    struct stat st;
    uint64_t fsize = stat(src, &st) == 0 ? (uint64_t)st.st_size : 0;
    atomic_fetch_add(&c->bytes_total, fsize);
    if (len > 4 && strcmp(e->d_name + len - 4, ".sst") == 0) {
      snprintf(key, sizeof key, "%016" PRIx64 "-%s", store_id, e->d_name);
      /* for the statistics only: a file already in shared/ is not written again */
      char spath[4400];
      snprintf(spath, sizeof spath, "%s/../shared/%s", fl_ckpt_writer_dir(w), key);
      if (stat(spath, &st) != 0) atomic_fetch_add(&c->bytes_new, fsize);
      rc = fl_ckpt_writer_add_shared(w, name, src, key, err, size);
    } else {
      atomic_fetch_add(&c->bytes_new, fsize);
      rc = fl_ckpt_writer_add_file(w, name, src, err, size);
    }
  }
  closedir(d);
  return rc;
}

/* Stores one worker's snapshots (outside the lock: the slow part): closes the files they
 * streamed into (fsync, rename), copies final snapshots in, stores native copies. */
static int write_ack(fl_coord_t *c, fl_ckpt_writer_t *w, ack_t *a, char *err, size_t size) {
  fl_env_t *env = c->job->env;
  if (a->absent) {
    snprintf(err, size,
             "an operator of subtask %d already ended and, with periodic checkpoints off, "
             "its final state was not kept",
             a->worker);
    return FL_ESTATE;
  }
  for (size_t k = 0; k < env->n_nodes; k++) {
    int rc = FL_OK;
    uint64_t bytes = 0;
    if (a->outs[k]) {
      rc = fl_ckpt_out_close(a->outs[k], &bytes, NULL, err, size);
      a->outs[k] = NULL;
    } else if (a->finals[k]) {
      char name[64];
      struct stat st;
      snprintf(name, sizeof name, "op-%zu-%d.snap", k, a->worker);
      bytes = stat(a->finals[k], &st) == 0 ? (uint64_t)st.st_size : 0;
      rc = fl_ckpt_writer_add_file(w, name, a->finals[k], err, size);
    } else {
      continue;
    }
    atomic_fetch_add(&c->bytes_total, bytes);
    atomic_fetch_add(&c->bytes_new, bytes);
    if (!rc && a->natives && a->natives[k])
      /* the store id is set at plan time, before any thread runs */
      rc = write_native(c, w, k, a->worker, a->natives[k],
                        c->job->workers[a->worker].ops[k]->store_id, err, size);
    if (rc) return rc;
  }
  return FL_OK;
}

static void ack_free(ack_t *a, size_t n_nodes) {
  if (!a) return;
  for (size_t k = 0; a->natives && k < n_nodes; k++) {
    if (a->natives[k] && a->owned[k]) fl_rm_tree(a->natives[k]);
    free(a->natives[k]);
  }
  free(a->natives);
  free(a->owned);
  for (size_t k = 0; a->outs && k < n_nodes; k++) fl_ckpt_out_discard(a->outs[k]);
  for (size_t k = 0; a->finals && k < n_nodes; k++) free(a->finals[k]);
  free(a->outs);
  free(a->finals);
  free(a);
}

static void *wjob_main(void *arg) {
  wjob_t *j = arg;
  fl_coord_t *c = j->c;
  char err[1024] = "";
  int rc = write_ack(c, j->w, j->a, err, sizeof err);
  pthread_mutex_lock(&c->mu);
  j->rc = rc;
  memcpy(j->err, err, sizeof err);
  j->done = true;
  pthread_cond_broadcast(&c->cv);
  pthread_mutex_unlock(&c->mu);
  return NULL;
}

/* Under c->mu: starts writing a, an acknowledgement of the pending checkpoint, on a
 * thread (or here, without the lock, when no thread can be made). */
static void wjob_start(fl_coord_t *c, ack_t *a) {
  wjob_t *j = &c->wj[a->worker];
  *j = (wjob_t){.c = c, .running = true, .threaded = true, .a = a, .w = c->writer};
  c->n_writing++;
  if (pthread_create(&j->thread, NULL, wjob_main, j) != 0) {
    j->threaded = false;
    pthread_mutex_unlock(&c->mu);
    wjob_main(j);
    pthread_mutex_lock(&c->mu);
  }
}

/* Under c->mu: takes the results of the writes that ended. */
static void wjob_reap(fl_coord_t *c) {
  for (int i = 0; c->n_writing && i < c->job->P; i++) {
    wjob_t *j = &c->wj[i];
    if (!j->running || !j->done) continue;
    if (j->threaded) pthread_join(j->thread, NULL); /* it ended: no wait on the lock */
    ack_t *a = j->a;
    if (a->id == c->pending) {
      if (j->rc && !c->write_failed) {
        c->write_failed = true;
        snprintf(c->write_err, sizeof c->write_err, "%s", j->err);
      }
      c->acked[a->worker] = true;
      c->n_acked++;
    }
    ack_free(a, c->job->env->n_nodes);
    j->running = false;
    c->n_writing--;
  }
}

static bool all_finished(fl_job_t *job) {
  for (int i = 0; i < job->P; i++)
    if (!atomic_load(&job->workers[i].all_finished)) return false;
  return true;
}

static void *coord_main(void *arg) {
  fl_coord_t *c = arg;
  fl_job_t *job = c->job;
  fl_env_t *env = job->env;
  const fl_env_conf_t *conf = &env->conf;
  pthread_mutex_lock(&c->mu);
  while (!c->stopping) {
    /* acknowledgements: write their files, each worker's on a thread */
    while (c->q) {
      ack_t *a = c->q;
      c->q = a->next;
      if (!c->q) c->q_tail = NULL;
      if (a->id == c->pending && !c->acked[a->worker] && !c->wj[a->worker].running)
        wjob_start(c, a);
      else
        ack_free(a, env->n_nodes);
    }
    wjob_reap(c);
    int64_t now = fl_mono_ms();
    if (c->n_writing) {
      /* no commit or abort while files are written: a write's end wakes this loop */
    } else if (c->pending && c->write_failed) {
      fl_ckpt_writer_abort(c->writer);
      char m[1100];
      snprintf(m, sizeof m, "%s", c->write_err);
      finish(c, FL_EIO, m);
    } else if (c->pending && c->n_acked == job->P) {
      fl_ckpt_writer_t *w = c->writer;
      bool sp = c->pending_kind == FL_CKPT_SAVEPOINT;
      pthread_mutex_unlock(&c->mu);
      char err[1024] = "";
      char *meta = meta_json(job);
      int rc = meta ? fl_ckpt_writer_commit(w, meta, err, sizeof err) : FL_ENOMEM;
      if (!meta) {
        fl_ckpt_writer_abort(w);
        snprintf(err, sizeof err, "out of memory");
      }
      free(meta);
      if (rc == 0 && !sp) {
        char rerr[1024];
        int r2 = fl_ckpt_retain(conf->ckpt_dir, (size_t)conf->ckpt_retained, log_line, env, rerr,
                                sizeof rerr);
        if (r2) fl_env_log(env, FL_LOG_WARN, "deleting old checkpoints failed: %s", rerr);
      }
      pthread_mutex_lock(&c->mu);
      finish(c, rc, err);
    } else if (c->pending && conf->ckpt_timeout_ms > 0 &&
               now - c->pending_started >= conf->ckpt_timeout_ms) {
      fl_ckpt_writer_abort(c->writer);
      char m[128];
      snprintf(m, sizeof m, "not complete within the timeout of %" PRId64 " ms",
               conf->ckpt_timeout_ms);
      finish(c, FL_EIO, m);
    }
    if (!c->pending && !atomic_load(&job->final_done)) {
      if (all_finished(job)) {
        if (c->sp_path) {
          c->sp_rc = FL_ESTATE;
          snprintf(c->sp_err, sizeof c->sp_err, "the job finished before the savepoint was taken");
          free(c->sp_path);
          c->sp_path = NULL;
          c->sp_done = true;
          pthread_cond_broadcast(&c->sp_cv);
        }
        if (ckpt_enabled(job) && !atomic_load(&job->failing)) {
          trigger(c, FL_CKPT_CHECKPOINT, NULL, true);
        } else {
          atomic_store(&job->final_done, -1);
          fl_rt_wake_all(job);
        }
      } else if (c->sp_path) {
        char *p = c->sp_path;
        c->sp_path = NULL;
        trigger(c, FL_CKPT_SAVEPOINT, p, false);
        free(p);
      } else if (ckpt_enabled(job) && !atomic_load(&job->failing) &&
                 now - c->last_trigger >= conf->ckpt_interval_ms &&
                 (!c->last_end || now - c->last_end >= conf->ckpt_min_pause_ms)) {
        trigger(c, FL_CKPT_CHECKPOINT, NULL, false);
      }
    }
    if (c->stopping || c->q) continue;
    /* sleep until the next deadline or a wake-up */
    int64_t wait = 1000;
    now = fl_mono_ms();
    if (c->pending && conf->ckpt_timeout_ms > 0 && !c->n_writing) {
      int64_t d = c->pending_started + conf->ckpt_timeout_ms - now;
      if (d < wait) wait = d;
    } else if (!c->pending && ckpt_enabled(job) && !atomic_load(&job->final_done) &&
               !atomic_load(&job->failing)) {
      int64_t d1 = c->last_trigger ? c->last_trigger + conf->ckpt_interval_ms - now : 0;
      int64_t d2 = c->last_end ? c->last_end + conf->ckpt_min_pause_ms - now : 0;
      int64_t d = d1 > d2 ? d1 : d2;
      if (d < wait) wait = d;
    }
    if (wait < 1) wait = 1; /* never spin holding the lock */
    struct timespec ts = fl_mono_deadline(wait);
    pthread_cond_timedwait(&c->cv, &c->mu, &ts);
  }
  while (c->n_writing) {
    wjob_reap(c);
    if (c->n_writing) pthread_cond_wait(&c->cv, &c->mu);
  }
  if (c->pending) {
    fl_ckpt_writer_abort(c->writer);
    finish(c, FL_ECANCELED, "the job ended");
  }
  while (c->q) {
    ack_t *a = c->q;
    c->q = a->next;
    ack_free(a, env->n_nodes);
  }
  c->q_tail = NULL;
  if (c->sp_path || c->sp_busy) {
    free(c->sp_path);
    c->sp_path = NULL;
    if (!c->sp_done) {
      c->sp_rc = FL_ESTATE;
      snprintf(c->sp_err, sizeof c->sp_err, "the job ended before the savepoint was taken");
      c->sp_done = true;
    }
    pthread_cond_broadcast(&c->sp_cv);
  }
  pthread_mutex_unlock(&c->mu);
  return NULL;
}

static void coord_free(fl_coord_t *c) {
  pthread_mutex_destroy(&c->mu);
  pthread_cond_destroy(&c->cv);
  pthread_cond_destroy(&c->sp_cv);
  free(c->acked);
  free(c->wj);
  free(c);
}

int fl_coord_start(fl_job_t *job, int64_t first_id, char *msg, size_t size) {
  fl_coord_t *c = calloc(1, sizeof *c);
  if (!c) goto nomem;
  c->acked = calloc((size_t)job->P, sizeof *c->acked);
  c->wj = calloc((size_t)job->P, sizeof *c->wj);
  if (!c->acked || !c->wj) goto nomem;
  c->job = job;
  c->next_id = first_id > 0 ? first_id : 1;
  c->last_trigger = fl_mono_ms(); /* the first checkpoint comes one interval after the start */
  pthread_mutex_init(&c->mu, NULL);
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&c->cv, &ca);
  pthread_condattr_destroy(&ca);
  pthread_cond_init(&c->sp_cv, NULL);
  job->coord = c;
  if (pthread_create(&c->thread, NULL, coord_main, c) != 0) {
    snprintf(msg, size, "cannot start the checkpoint coordinator thread");
    job->coord = NULL;
    coord_free(c);
    return FL_ESYS;
  }
  return FL_OK;
nomem:
  if (c) free(c->acked);
  if (c) free(c->wj);
  free(c);
  snprintf(msg, size, "out of memory starting the checkpoint coordinator");
  return FL_ENOMEM;
}

void fl_coord_stop(fl_job_t *job) {
  fl_coord_t *c = job->coord;
  if (!c) return;
  pthread_mutex_lock(&c->mu);
  c->stopping = true;
  pthread_cond_broadcast(&c->cv);
  pthread_mutex_unlock(&c->mu);
  pthread_join(c->thread, NULL);
  /* a savepoint caller may still be waking up: it holds sp_busy until it has read */
  pthread_mutex_lock(&c->mu);
  while (c->sp_busy) pthread_cond_wait(&c->sp_cv, &c->mu);
  pthread_mutex_unlock(&c->mu);
  job->coord = NULL;
  coord_free(c);
}

void fl_coord_wake(fl_job_t *job) {
  fl_coord_t *c = job->coord;
  if (!c) return;
  pthread_mutex_lock(&c->mu);
  pthread_cond_broadcast(&c->cv);
  pthread_mutex_unlock(&c->mu);
}

void fl_coord_ack(fl_job_t *job, int worker, int64_t id, fl_coord_part_t *part) {
  fl_coord_t *c = job->coord;
  size_t n = job->env->n_nodes, sz = n ? n : 1;
  ack_t *a = calloc(1, sizeof *a);
  bool ok = a != NULL;
  if (ok && part) {
    a->outs = calloc(sz, sizeof *a->outs);
    a->finals = calloc(sz, sizeof *a->finals);
    ok = a->outs && a->finals;
    if (ok && part->natives) {
      a->natives = calloc(sz, sizeof *a->natives);
      a->owned = calloc(sz, sizeof *a->owned);
      ok = a->natives && a->owned;
    }
  }
  /* everything is taken over, also on failure (then it is released here) */
  for (size_t k = 0; part && k < n; k++) {
    if (ok) {
      a->outs[k] = part->outs[k];
      a->finals[k] = part->finals[k];
      if (a->natives) {
        a->natives[k] = part->natives[k];
        a->owned[k] = part->owned[k];
      }
    } else {
      fl_ckpt_out_discard(part->outs[k]);
      free(part->finals[k]);
      if (part->natives) free(part->natives[k]);
    }
    part->outs[k] = NULL;
    part->finals[k] = NULL;
    if (part->natives) part->natives[k] = NULL;
  }
  if (!ok) {
    ack_free(a, n);
    fl_job_fail(job, FL_ENOMEM, "out of memory acknowledging a checkpoint");
    return;
  }
  a->absent = part == NULL;
  a->worker = worker;
  a->id = id;
  pthread_mutex_lock(&c->mu);
  if (c->q_tail)
    c->q_tail->next = a;
  else
    c->q = a;
  c->q_tail = a;
  pthread_cond_broadcast(&c->cv);
  pthread_mutex_unlock(&c->mu);
}

int fl_coord_open_snapshot(fl_job_t *job, int64_t id, uint32_t node, int subtask,
                           struct fl_ckpt_out **out, char *msg, size_t size) {
  fl_coord_t *c = job->coord;
  char name[64];
  snprintf(name, sizeof name, "op-%u-%d.snap", node, subtask);
  *out = NULL;
  if (!c) return FL_ESTATE;
  /* Under the lock, so that the writer cannot be committed or aborted in between; an
   * open file then keeps it alive until the file is closed or discarded. */
  pthread_mutex_lock(&c->mu);
  int rc = FL_ESTATE;
  if (c->pending == id && c->writer && !c->write_failed) {
    rc = fl_ckpt_writer_open_file(c->writer, name, out, msg, size);
    if (rc && !c->write_failed) {
      c->write_failed = true;
      snprintf(c->write_err, sizeof c->write_err, "%s", msg);
      pthread_cond_broadcast(&c->cv);
    }
  }
  pthread_mutex_unlock(&c->mu);
  return rc;
}

void fl_coord_fail_checkpoint(fl_job_t *job, int64_t id, const char *msg) {
  fl_coord_t *c = job->coord;
  if (!c) return;
  pthread_mutex_lock(&c->mu);
  if (c->pending == id && !c->write_failed) {
    c->write_failed = true;
    snprintf(c->write_err, sizeof c->write_err, "%s", msg);
    pthread_cond_broadcast(&c->cv);
  }
  pthread_mutex_unlock(&c->mu);
}

int fl_coord_savepoint(fl_job_t *job, const char *path, char *err, size_t err_size) {
  fl_coord_t *c = job->coord;
  if (!c) {
    snprintf(err, err_size, "the job is not running");
    return FL_ESTATE;
  }
  char *p = strdup(path);
  if (!p) return FL_ENOMEM;
  pthread_mutex_lock(&c->mu);
  if (c->sp_busy || c->stopping) {
    pthread_mutex_unlock(&c->mu);
    free(p);
    snprintf(err, err_size, c->stopping ? "the job is ending" : "another savepoint is in progress");
    return FL_ESTATE;
  }
  c->sp_busy = true;
  c->sp_done = false;
  c->sp_path = p;
  pthread_cond_broadcast(&c->cv);
  while (!c->sp_done) pthread_cond_wait(&c->sp_cv, &c->mu);
  int rc = c->sp_rc;
  if (rc) snprintf(err, err_size, "%s", c->sp_err);
  c->sp_busy = false;
  pthread_cond_broadcast(&c->sp_cv);
  pthread_mutex_unlock(&c->mu);
  return rc;
}
