/*
 * Checkpoint barriers: aligned barriers (Chandy-Lamport as in Flink). An operator that
 * received barrier n on some of its input channels takes no more input from those
 * channels until n arrived on all of them (an ended channel counts as arrived); then it
 * snapshots and forwards n. Input is held back where it enters the worker: an inbound
 * ring whose batch delivered n stops (keeping the rest of the batch) while an operator
 * it feeds by calls is still aligning n, and a source is not polled while one is.
 * Sources inject n between two records when the coordinator triggers it. A snapshot
 * streams into its file of checkpoint n (checkpoint/snapshot.c through a bounded
 * buffer), or, for the final snapshot of an operator that ended, into a local file that
 * later checkpoints copy. A worker acknowledges n to the coordinator (coord.c) with the
 * open files of all its operators once each of them snapshotted n or ended.
 */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "checkpoint/snapshot.h"
#include "checkpoint/store.h"
#include "runtime/coord.h"
#include "runtime/job.h"
#include "util/clock.h"
#include "util/fs.h"

typedef struct outw {
  struct fl_ckpt_out *out;
  bool failed; /* the file could not be written (not the state read) */
} outw_t;

static int out_write(void *arg, const void *data, size_t len, char *msg, size_t size) {
  outw_t *o = arg;
  int rc = fl_ckpt_out_write(o->out, data, len, msg, size);
  o->failed |= rc != 0;
  return rc;
}

typedef struct fdw {
  int fd;
  const char *path;
} fdw_t;

static int fd_write(void *arg, const void *data, size_t len, char *msg, size_t size) {
  const fdw_t *f = arg;
  int r = fl_write_all(f->fd, data, len);
  if (r) snprintf(msg, size, "cannot write %s: %s", f->path, strerror(-r));
  return r ? FL_EIO : FL_OK;
}

/* The final snapshot of an operator that ended goes to a file of the worker's local
 * directory, which every later checkpoint copies in. */
static int write_final(fl_op_t *op, const fl_snapshot_target_t *t, const fl_buf_t *opstate,
                       const void *lent, size_t lent_len, const char *native, char *msg,
                       size_t size) {
  fl_job_t *job = op->worker->job;
  char path[4300];
  snprintf(path, sizeof path, "%s/worker-%d/final-op-%u.snap", job->work.path, op->subtask,
           op->node->id);
  char *dir = fl_path_parent(path);
  int rc = dir ? fl_mkdir_p(dir, false, msg, size) : FL_ENOMEM;
  free(dir);
  if (rc) return rc;
  fdw_t f = {open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600), path};
  if (f.fd < 0) {
    snprintf(msg, size, "cannot create %.900s: %s", path, strerror(errno));
    return FL_EIO;
  }
  rc = fl_snapshot_write(t, opstate->data, opstate->len, lent, lent_len, native, op->store_id,
                         fd_write, &f, NULL, msg, size);
  if (close(f.fd) != 0 && !rc) {
    snprintf(msg, size, "cannot write %.900s: %s", path, strerror(errno));
    rc = FL_EIO;
  }
  if (!rc && !(op->final_path = strdup(path))) rc = FL_ENOMEM;
  if (rc) unlink(path);
  return rc;
}

/* Writes op's snapshot of checkpoint id into out, the file the coordinator closes: all
 * of it, or, when a lent buffer with a release can be written last (no keyed state or
 * timers follow it), everything before it, leaving the buffer and the end to be
 * written at close, off the worker (*release is then taken over). */
static int write_snapshot(fl_op_t *op, const fl_snapshot_target_t *t, struct fl_ckpt_out *out,
                          const fl_buf_t *opstate, const void *lent, size_t lent_len,
                          void (**release)(void *), void *arg, const char *native, bool *failed,
                          char *msg, size_t size) {
  outw_t ow = {out, false};
  int rc;
  if (*release && !t->kv && !t->timers && !native) {
    uint8_t end[FL_SNAPSHOT_END_MAX];
    size_t end_len = 0;
    rc = fl_snapshot_write_head(opstate->data, opstate->len, lent_len, out_write, &ow, end,
                                &end_len, msg, size);
    if (!rc) {
      void (*r)(void *) = *release;
      *release = NULL; /* out has it now, whatever happens */
      rc = fl_ckpt_out_defer(out, lent, lent_len, r, arg, msg, size);
      if (!rc) rc = fl_ckpt_out_defer(out, end, end_len, NULL, NULL, msg, size);
      ow.failed |= rc != 0;
    }
  } else {
    rc = fl_snapshot_write(t, opstate->data, opstate->len, lent, lent_len, native, op->store_id,
                           out_write, &ow, NULL, msg, size);
  }
  *failed = ow.failed;
  return rc;
}

void fl_rt_op_snapshot(fl_op_t *op, int64_t id) {
  int64_t t0 = fl_mono_ns();
  fl_buf_t opstate;
  fl_buf_init(&opstate);
  op->snap_lent = NULL;
  op->snap_lent_len = 0;
  op->snap_lent_release = NULL;
  int rc = op->cls->snapshot ? op->cls->snapshot(op, id, &opstate) : 0;
  /* what the snapshot lent stays as it is until this function returns, or until it is
   * released when it came with a release */
  const void *lent = op->snap_lent;
  size_t lent_len = op->snap_lent_len;
  void (*release)(void *) = op->snap_lent_release;
  void *release_arg = op->snap_lent_arg;
  op->snap_lent = NULL;
  op->snap_lent_len = 0;
  op->snap_lent_release = NULL;
  op->snap_lent_arg = NULL;
  fl_job_t *job = op->worker->job;
  char *native = NULL;
  char msg[1024];
  struct fl_ckpt_out *out = NULL;
  if (rc < 0) {
    fl_rt_op_check(op, rc);
    goto done;
  }
  if (op->node->keyed && op->kv->ops->version >= 3 && op->kv->ops->flush) {
    /* what a state cache holds back goes to the store before any copy of it */
    rc = op->kv->ops->flush(op->kv->self);
    if (rc) {
      fl_op_fail(op, rc, "writing the cached state before checkpoint %lld failed: %s",
                 (long long)id, fl_kv_errmsg(op->kv));
      goto done;
    }
  }
  if (id) {
    /* The snapshot streams into the checkpoint's file; the coordinator closes it. */
    rc = fl_coord_open_snapshot(job, id, op->node->id, op->subtask, &out, msg, sizeof msg);
    if (rc) {
      /* The checkpoint is over (FL_ESTATE) or failed to open the file: the operator
       * takes part without writing, and goes on. */
      op->ckpt_done = id;
      goto done;
    }
  }
  if (op->own_kv.ops && job->env->conf.incremental && op->own_kv.ops->checkpoint &&
      (id == 0 || id != atomic_load(&job->savepoint_id))) {
    /* incremental: the synchronous part is a native copy (memtable flush + hard
     * links); the coordinator stores its new SST files in the background */
    char dir[4300];
    snprintf(dir, sizeof dir, "%s/worker-%d/snap-%lld-op-%u", job->work.path, op->subtask,
             (long long)id, op->node->id);
    rc = op->own_kv.ops->checkpoint(op->own_kv.self, dir);
    if (rc == 0 && !(native = strdup(dir))) rc = FL_ENOMEM;
    if (rc) {
      fl_ckpt_out_discard(out);
      fl_op_fail(op, rc, "native checkpoint %lld of the RocksDB state failed: %s", (long long)id,
                 fl_kv_errmsg(&op->own_kv));
      goto done;
    }
  }
  fl_snapshot_target_t t = fl_rt_snapshot_target(op);
  if (id) {
    bool failed = false;
    rc = write_snapshot(op, &t, out, &opstate, lent, lent_len, &release, release_arg, native,
                        &failed, msg, sizeof msg);
    fl_ckpt_out_discard(op->ckpt_out); /* one left behind by an aborted checkpoint */
    op->ckpt_out = rc ? NULL : out;
    if (rc) fl_ckpt_out_discard(out);
    free(op->native_dir);
    op->native_dir = rc ? NULL : native;
    if (rc) {
      if (failed) {
        /* writing the file failed: the checkpoint fails, not the job */
        char m[1200];
        snprintf(m, sizeof m, "writing the snapshot of '%s' (subtask %d): %s", op->node->name,
                 op->subtask, msg);
        fl_coord_fail_checkpoint(job, id, m);
        rc = FL_OK;
      }
      if (native) fl_rm_tree(native);
      free(native);
    }
  } else {
    rc = write_final(op, &t, &opstate, lent, lent_len, native, msg, sizeof msg);
    free(op->native_final);
    op->native_final = native;
  }
  if (rc < 0) {
    fl_op_fail(op, rc, "snapshot for checkpoint %lld failed: %s", (long long)id, msg);
    goto done;
  }
  if (id) {
    op->ckpt_done = id;
    atomic_store_explicit(&op->m->sync_ns, fl_mono_ns() - t0, memory_order_relaxed);
  }
done:
  fl_buf_free(&opstate);
  if (release) release(release_arg);
}

void fl_rt_op_check_aligned(fl_op_t *op) {
  int64_t id = op->ckpt_aligning;
  for (size_t c = 0; c < op->n_ins; c++)
    if (op->ins[c].barrier != id && !op->ins[c].ended) return;
  op->ckpt_aligning = 0;
  assert(op->worker->n_aligning > 0);
  op->worker->n_aligning--;
  atomic_store_explicit(&op->m->alignment_ns, fl_mono_ns() - op->align_start_ns,
                        memory_order_relaxed);
  fl_rt_op_snapshot(op, id);
  if (!op->failed) fl_rt_control_all(op, FL_E_BARRIER, id);
}

void fl_rt_op_input_barrier(fl_op_t *op, size_t chan, int64_t id) {
  if (op->failed || op->finished) return;
  assert(chan < op->n_ins);
  fl_job_t *job = op->worker->job;
  if (id <= op->ckpt_done || id <= atomic_load(&job->ckpt_abort)) return; /* stale */
  /* A newer barrier overtakes an alignment that cannot finish (its checkpoint was
   * aborted): channels are compared with the newest id only. */
  if (id < op->ckpt_aligning) return;
  if (!op->ckpt_aligning) {
    op->worker->n_aligning++;
    op->align_start_ns = fl_mono_ns();
  }
  op->ckpt_aligning = id;
  op->ins[chan].barrier = id;
  fl_rt_op_check_aligned(op);
}

bool fl_rt_chain_aligning(const fl_op_t *op) {
  if (!op->worker->n_aligning) return false; /* the usual case: no walk */
  if (op->ckpt_aligning) return true;
  for (size_t i = 0; i < op->out.n; i++)
    if (op->out.t[i].op && fl_rt_chain_aligning(op->out.t[i].op)) return true;
  for (size_t k = 0; k < op->node->env->n_tags; k++)
    for (size_t i = 0; i < op->side[k].n; i++)
      if (op->side[k].t[i].op && fl_rt_chain_aligning(op->side[k].t[i].op)) return true;
  return false;
}

void fl_rt_inject_barriers(fl_worker_t *w, int64_t id) {
  w->ckpt_injected = id;
  for (size_t i = 0; i < w->n_sources; i++) {
    fl_op_t *op = w->sources[i];
    if (op->finished || op->failed) continue;
    fl_rt_op_snapshot(op, id);
    if (!op->failed) fl_rt_control_all(op, FL_E_BARRIER, id);
  }
}

static void part_free(fl_coord_part_t *p, size_t n) {
  for (size_t k = 0; k < n; k++) {
    if (p->outs) fl_ckpt_out_discard(p->outs[k]);
    if (p->finals) free(p->finals[k]);
    if (p->natives) free(p->natives[k]);
  }
  free(p->outs);
  free(p->finals);
  free(p->natives);
  free(p->owned);
}

void fl_rt_maybe_ack(fl_worker_t *w) {
  fl_job_t *job = w->job;
  int64_t id = w->ckpt_injected;
  if (id <= w->ckpt_acked || !job->coord || id <= atomic_load(&job->ckpt_abort)) return;
  fl_env_t *env = job->env;
  size_t n = env->n_nodes, sz = n ? n : 1;
  for (size_t i = 0; i < n; i++) {
    fl_op_t *op = w->ops[i];
    if (op->ckpt_done < id && !op->finished) return;
  }
  for (size_t i = 0; i < n; i++) {
    fl_op_t *op = w->ops[i];
    if (op->ckpt_done != id && !op->has_final) {
      /* ended without keeping its final state: this worker cannot take part */
      w->ckpt_acked = id;
      fl_coord_ack(job, w->index, id, NULL);
      return;
    }
  }
  fl_coord_part_t p = {calloc(sz, sizeof *p.outs), calloc(sz, sizeof *p.finals), NULL, NULL};
  if (env->conf.incremental) {
    p.natives = calloc(sz, sizeof *p.natives);
    p.owned = calloc(sz, sizeof *p.owned);
  }
  if (!p.outs || !p.finals || (env->conf.incremental && (!p.natives || !p.owned))) {
    part_free(&p, 0);
    fl_job_fail(job, FL_ENOMEM, "out of memory acknowledging a checkpoint");
    return;
  }
  w->ckpt_acked = id;
  for (size_t i = 0; i < n; i++) {
    fl_op_t *op = w->ops[i];
    if (op->ckpt_done == id) {
      p.outs[i] = op->ckpt_out; /* the coordinator closes it */
      op->ckpt_out = NULL;
      if (p.natives) {
        p.natives[i] = op->native_dir; /* the coordinator deletes it once stored */
        op->native_dir = NULL;
        p.owned[i] = true;
      }
    } else {
      /* ended before the barrier came: its final state, kept for later checkpoints */
      bool nomem = op->final_path && !(p.finals[i] = strdup(op->final_path));
      if (!nomem && p.natives && op->native_final)
        nomem = !(p.natives[i] = strdup(op->native_final));
      if (nomem) {
        part_free(&p, n);
        fl_job_fail(job, FL_ENOMEM, "out of memory acknowledging a checkpoint");
        return;
      }
    }
  }
  fl_coord_ack(job, w->index, id, &p);
  part_free(&p, n);
}

void fl_rt_notify_ops(fl_worker_t *w) {
  fl_job_t *job = w->job;
  fl_env_t *env = job->env;
  int64_t done = atomic_load(&job->ckpt_complete);
  int64_t ab = atomic_load(&job->ckpt_abort);
  if (ab > w->ckpt_aborted) {
    w->ckpt_aborted = ab;
    for (size_t i = 0; i < env->n_nodes; i++) {
      fl_op_t *op = w->ops[i];
      if (op->ckpt_aligning && op->ckpt_aligning <= ab) {
        /* its barriers may never all arrive: stop holding input back */
        op->ckpt_aligning = 0;
        assert(w->n_aligning > 0);
        w->n_aligning--;
      }
      if (op->opened && op->cls->notify && !op->failed)
        fl_rt_op_check(op, op->cls->notify(op, ab, false));
    }
  }
  if (done > w->ckpt_completed) {
    w->ckpt_completed = done;
    for (size_t i = 0; i < env->n_nodes; i++) {
      fl_op_t *op = w->ops[i];
      if (op->opened && op->cls->notify && !op->failed)
        fl_rt_op_check(op, op->cls->notify(op, done, true));
    }
  }
}
