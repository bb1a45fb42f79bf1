/*
 * Checkpoint barriers: aligned barriers (Chandy-Lamport as in Flink). An operator that
 * received barrier n on some of its input channels takes no more input from those
 * channels until n arrived on all of them (an ended channel counts as arrived); then it
 * snapshots and forwards n. Input is held back where it enters the worker: an inbound
 * ring whose batch delivered n stops (keeping the rest of the batch) while an operator
 * it feeds by calls is still aligning n, and a source is not polled while one is.
 * Sources inject n between two records when the coordinator triggers it. A worker
 * acknowledges n to the coordinator (coord.c) with the snapshots of all its operators
 * once each of them snapshotted n or ended.
 */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoint/snapshot.h"
#include "runtime/coord.h"
#include "runtime/job.h"
#include "state/rocksdb.h"
#include "util/clock.h"

void fl_rt_op_snapshot(fl_op_t *op, int64_t id) {
  fl_buf_t opstate;
  fl_buf_init(&opstate);
  int rc = op->cls->snapshot ? op->cls->snapshot(op, id, &opstate) : 0;
  if (rc < 0) {
    fl_buf_free(&opstate);
    fl_rt_op_check(op, rc);
    return;
  }
  fl_buf_t *dst = id ? &op->ckpt_snap : &op->ckpt_final;
  dst->len = 0;
  fl_job_t *job = op->worker->job;
  char *native = NULL;
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
      fl_buf_free(&opstate);
      fl_op_fail(op, rc, "native checkpoint %lld of the RocksDB state failed: %s", (long long)id,
                 fl_kv_rocksdb_errmsg(&op->own_kv));
      return;
    }
  }
  fl_snapshot_target_t t = fl_rt_snapshot_target(op);
  char msg[512];
  rc = fl_snapshot_write(&t, opstate.data, opstate.len, native, op->store_id, dst, msg, sizeof msg);
  if (id) {
    free(op->native_dir);
    op->native_dir = native;
  } else {
    free(op->native_final);
    op->native_final = native;
  }
  fl_buf_free(&opstate);
  if (rc < 0) {
    fl_op_fail(op, rc, "snapshot for checkpoint %lld failed: %s", (long long)id, msg);
    return;
  }
  if (id) op->ckpt_done = id;
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

static void free_snaps(fl_buf_t *snaps, size_t n) {
  for (size_t k = 0; snaps && k < n; k++) fl_buf_free(&snaps[k]);
  free(snaps);
}

void fl_rt_maybe_ack(fl_worker_t *w) {
  fl_job_t *job = w->job;
  int64_t id = w->ckpt_injected;
  if (id <= w->ckpt_acked || !job->coord || id <= atomic_load(&job->ckpt_abort)) return;
  fl_env_t *env = job->env;
  for (size_t i = 0; i < env->n_nodes; i++) {
    fl_op_t *op = w->ops[i];
    if (op->ckpt_done < id && !op->finished) return;
  }
  fl_buf_t *snaps = calloc(env->n_nodes, sizeof *snaps);
  if (!snaps) {
    fl_job_fail(job, FL_ENOMEM, "out of memory acknowledging a checkpoint");
    return;
  }
  for (size_t i = 0; i < env->n_nodes; i++) {
    fl_op_t *op = w->ops[i];
    if (op->ckpt_done == id) {
      snaps[i] = op->ckpt_snap;
      fl_buf_init(&op->ckpt_snap);
    } else if (!op->has_final) {
      /* ended without keeping its final state: this worker cannot take part */
      free_snaps(snaps, env->n_nodes);
      w->ckpt_acked = id;
      fl_coord_ack(job, w->index, id, NULL, NULL, NULL);
      return;
    } else if (fl_buf_append(&snaps[i], op->ckpt_final.data, op->ckpt_final.len)) {
      /* ended before the barrier came: its final state */
      free_snaps(snaps, env->n_nodes);
      fl_job_fail(job, FL_ENOMEM, "out of memory acknowledging a checkpoint");
      return;
    }
  }
  w->ckpt_acked = id;
  char **natives = NULL;
  bool *owned = NULL;
  if (env->conf.incremental) {
    natives = calloc(env->n_nodes, sizeof *natives);
    owned = calloc(env->n_nodes, sizeof *owned);
    if (!natives || !owned) {
      free(natives);
      free(owned);
      free_snaps(snaps, env->n_nodes);
      fl_job_fail(job, FL_ENOMEM, "out of memory acknowledging a checkpoint");
      return;
    }
    for (size_t i = 0; i < env->n_nodes; i++) {
      fl_op_t *op = w->ops[i];
      if (op->ckpt_done == id) {
        natives[i] = op->native_dir; /* the coordinator deletes it once stored */
        op->native_dir = NULL;
        owned[i] = true;
      } else if (op->native_final) {
        natives[i] = strdup(op->native_final); /* kept for later checkpoints */
        if (!natives[i]) fl_job_fail(job, FL_ENOMEM, "out of memory acknowledging a checkpoint");
      }
    }
  }
  fl_coord_ack(job, w->index, id, snaps, natives, owned);
  for (size_t i = 0; natives && i < env->n_nodes; i++) free(natives[i]);
  free(natives);
  free(owned);
  free_snaps(snaps, env->n_nodes);
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
