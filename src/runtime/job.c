/*
 * The runtime: turns the logical graph into a physical plan and runs it on P worker
 * threads, each an epoll loop that owns one subtask of every operator.
 *
 * Plan. Every node runs on every worker (slot sharing). A forward input is a function
 * call from the producer's instance to the consumer's instance on the same worker (a
 * chain). A partitioned input (keyBy, rebalance) is an edge: on each sending worker an
 * edge writer with one SPSC ring per receiving worker.
 *
 * One loop iteration, in this order:
 *   1. ship overflow batches whose rings have room again;
 *   2. drain inbound rings (up to 4 batches each), skipping a ring whose operator could
 *      reach an edge that has overflow (backpressure);
 *   3. poll sources (one budget each), with the same backpressure rule;
 *   4. fire due processing-time timers and periodic ticks (watermark intervals);
 *   5. if nothing happened: ship partly filled batches (low load, low latency), then
 *      sleep in epoll until a ring, an fd or a deadline needs us.
 * Because the graph is acyclic, the last operators (sinks) never wait on a ring, so
 * backpressure cannot deadlock: a worker waiting on one edge keeps draining the
 * channels of operators further downstream.
 *
 * End of input: a source that ends emits watermark +inf then END on every output; an
 * operator whose every input channel ended fires its remaining timers, calls
 * end_input, and forwards END. A worker stops when all its operators ended and it has
 * shipped everything.
 *
 * Failure and stop: the job is marked failing; sources stop, the failing operator takes
 * no more input, and every worker keeps processing what is already in flight (no
 * watermark +inf is invented) until no batch is in flight anywhere. Then sinks are
 * flushed, so nothing that was emitted before the failure is lost.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/stat.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "checkpoint/snapshot.h"
#include "checkpoint/store.h"
#include "state/rocksdb.h"
#include "runtime/checkpoint.h"
#include "runtime/job.h"
#include "util/fs.h"
#include "util/hash.h"

#define MAX_SLEEP_MS 50
#define BATCHES_PER_RING 4
/* A busy loop still ships partly filled batches this often (Flink's buffer timeout). */
#define FLUSH_INTERVAL_NS 5000000LL

static int64_t mono_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* ---------------------------------------------------------------------------------- */
/* Failure reporting                                                                    */

void fl_job_fail(fl_job_t *job, int err, const char *msg) {
  pthread_mutex_lock(&job->err_lock);
  if (!job->err) {
    job->err = err ? err : FL_EUSER;
    snprintf(job->errmsg, sizeof job->errmsg, "%s", msg);
  }
  pthread_mutex_unlock(&job->err_lock);
  if (!atomic_exchange(&job->failing, 1)) {
    for (int i = 0; i < job->P; i++) fl_worker_wake(&job->workers[i]);
  }
}

int fl_op_fail(fl_op_t *op, int err, const char *fmt, ...) {
  char msg[768], full[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  snprintf(full, sizeof full, "operator '%s' (subtask %d of %d): %s", op->node->name,
           op->subtask, op->parallelism, msg);
  op->failed = true;
  fl_job_fail(op->worker->job, err, full);
  return err;
}

int fl_op_user_failed(fl_op_t *op, int rc, const char *what) {
  if (op->pending_err) {
    fl_op_fail(op, rc, "%s failed: %s", what, op->pending_err);
    free(op->pending_err);
    op->pending_err = NULL;
  } else {
    fl_op_fail(op, rc, "%s failed: %s (%s)", what, fl_strerror(rc), fl_err_name(rc));
  }
  return rc;
}

/* A class call returned rc < 0: make sure the job knows, whoever formatted it. */
static void op_check(fl_op_t *op, int rc) {
  if (rc >= 0) return;
  if (!op->failed) {
    if (op->pending_err)
      fl_op_user_failed(op, rc, "a user function");
    else
      fl_op_fail(op, rc, "%s (%s)", fl_strerror(rc), fl_err_name(rc));
  }
  op->failed = true;
}

/* ---------------------------------------------------------------------------------- */
/* Wakeups                                                                              */

void fl_worker_wake(fl_worker_t *w) {
  if (atomic_load(&w->sleeping)) {
    uint64_t one = 1;
    ssize_t n = write(w->efd, &one, sizeof one);
    (void)n; /* EAGAIN: the counter is saturated, a wakeup is pending anyway */
  }
}

static void wake_all(fl_job_t *job) {
  for (int i = 0; i < job->P; i++) fl_worker_wake(&job->workers[i]);
}

/* ---------------------------------------------------------------------------------- */
/* Edge writers                                                                         */

static void ew_ship(fl_edge_writer_t *ew, int t, fl_batch_t *b) {
  fl_job_t *job = ew->w->job;
  atomic_fetch_add(&job->inflight, 1);
  if (!ew->ovf_head[t] && fl_ring_push(ew->rings[t], b)) {
    fl_worker_wake(ew->to[t]);
    return;
  }
  b->next = NULL;
  if (ew->ovf_tail[t])
    ew->ovf_tail[t]->next = b;
  else
    ew->ovf_head[t] = b;
  ew->ovf_tail[t] = b;
  ew->n_overflow++;
  atomic_store(&ew->w->waiting_space, 1);
}

/* Ships overflow batches that fit now. True if any was shipped. */
static bool ew_retry(fl_edge_writer_t *ew) {
  bool any = false;
  if (!ew->n_overflow) return false;
  for (int t = 0; t < ew->n; t++) {
    while (ew->ovf_head[t]) {
      fl_batch_t *b = ew->ovf_head[t];
      fl_batch_t *next = b->next; /* once pushed, b belongs to the receiver */
      if (!fl_ring_push(ew->rings[t], b)) break;
      ew->ovf_head[t] = next;
      if (!ew->ovf_head[t]) ew->ovf_tail[t] = NULL;
      ew->n_overflow--;
      any = true;
      fl_worker_wake(ew->to[t]);
    }
  }
  return any;
}

static bool ew_can_retry(fl_edge_writer_t *ew) {
  for (int t = 0; t < ew->n; t++)
    if (ew->ovf_head[t] && !fl_ring_full(ew->rings[t])) return true;
  return false;
}

/* Ships every partly filled batch. */
static bool ew_flush(fl_edge_writer_t *ew) {
  bool any = false;
  for (int t = 0; t < ew->n; t++) {
    fl_batch_t *b = ew->open[t];
    if (b && b->n) {
      ew->open[t] = NULL;
      ew_ship(ew, t, b);
      any = true;
    }
  }
  return any;
}

static fl_batch_t *ew_batch(fl_edge_writer_t *ew, int t, size_t bytes) {
  fl_batch_t *b = ew->open[t];
  if (b && fl_batch_fits(b, bytes)) return b;
  if (b) {
    ew->open[t] = NULL;
    if (b->n)
      ew_ship(ew, t, b);
    else
      fl_batch_free(b);
  }
  const fl_env_conf_t *c = &ew->w->job->env->conf;
  size_t want = c->batch_size * 48;
  if (want < 16384) want = 16384;
  if (want < bytes) want = bytes;
  if (want > UINT32_MAX) return NULL;
  b = fl_batch_new((uint32_t)c->batch_size, (uint32_t)want);
  ew->open[t] = b;
  return b;
}

static bool ew_append(fl_edge_writer_t *ew, int t, const void *key, size_t key_len,
                      const fl_record_t *in, uint16_t kg);

static void ew_record(fl_edge_writer_t *ew, const fl_record_t *in) {
  fl_op_t *prod = ew->producer;
  fl_job_t *job = ew->w->job;
  const void *key = in->key;
  size_t key_len = in->key_len;
  if (ew->part == FL_PART_HASH && ew->key_fn) {
    int rc = ew->key_fn(&prod->ctx, in, &key, &key_len, ew->key_opaque);
    if (rc < 0) {
      fl_op_user_failed(prod, rc, "key selector");
      return;
    }
    if (!key && key_len) {
      fl_op_fail(prod, FL_EINVAL, "key selector returned NULL key bytes of length %zu", key_len);
      return;
    }
  }
  if (key_len > UINT32_MAX / 2 || in->value_len > UINT32_MAX / 2) {
    fl_op_fail(prod, FL_EINVAL, "record too large to cross a channel (key %zu, value %zu bytes)",
               key_len, in->value_len);
    return;
  }
  int t;
  uint16_t kg = 0;
  if (ew->part == FL_PART_BROADCAST) {
    for (t = 0; t < ew->n; t++)
      if (!ew_append(ew, t, key, key_len, in, 0)) return;
    return;
  }
  if (ew->part == FL_PART_HASH) {
    uint32_t maxp = job->env->conf.max_parallelism;
    kg = (uint16_t)fl_key_group(fl_hash64(key, key_len, 0), maxp);
    t = fl_key_group_subtask(kg, maxp, ew->n);
  } else {
    t = (int)(ew->rr++ % (uint32_t)ew->n);
  }
  ew_append(ew, t, key, key_len, in, kg);
}

/* Appends one record for receiver t. false after a failure. */
static bool ew_append(fl_edge_writer_t *ew, int t, const void *key, size_t key_len,
                      const fl_record_t *in, uint16_t kg) {
  size_t bytes = key_len + in->value_len;
  fl_batch_t *b = ew_batch(ew, t, bytes);
  if (!b) {
    fl_op_fail(ew->producer, FL_ENOMEM, "out of memory for a channel batch of %zu bytes", bytes);
    return false;
  }
  fl_entry_t *e = &b->e[b->n++];
  e->type = FL_E_RECORD;
  e->kg = kg;
  e->key_len = (uint32_t)key_len;
  e->value_len = (uint32_t)in->value_len;
  e->off = b->used;
  e->ts = in->timestamp;
  if (key_len) memcpy(b->data + b->used, key, key_len);
  if (in->value_len) memcpy(b->data + b->used + key_len, in->value, in->value_len);
  b->used += (uint32_t)bytes;
  if (b->n == b->cap) {
    ew->open[t] = NULL;
    ew_ship(ew, t, b);
  }
  return true;
}

static void ew_control(fl_edge_writer_t *ew, fl_entry_type_t type, int64_t ts) {
  for (int t = 0; t < ew->n; t++) {
    fl_batch_t *b = ew->open[t];
    /* A watermark right after a watermark supersedes it: watermarks only grow. */
    if (type == FL_E_WATERMARK && b && b->n && b->e[b->n - 1].type == FL_E_WATERMARK) {
      b->e[b->n - 1].ts = ts;
      continue;
    }
    b = ew_batch(ew, t, 0);
    if (!b) {
      fl_op_fail(ew->producer, FL_ENOMEM, "out of memory for a channel batch");
      return;
    }
    fl_entry_t *e = &b->e[b->n++];
    memset(e, 0, sizeof *e);
    e->type = (uint8_t)type;
    e->ts = ts;
    if (b->n == b->cap || type == FL_E_END || type == FL_E_BARRIER) {
      ew->open[t] = NULL;
      ew_ship(ew, t, b);
    }
  }
}

static bool guards_blocked(fl_edge_writer_t **g, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (g[i]->n_overflow) return true;
  return false;
}

/* ---------------------------------------------------------------------------------- */
/* Operator plumbing                                                                    */

static void op_record(fl_op_t *op, int input, const fl_record_t *rec, int kg);
static void op_input_watermark(fl_op_t *op, size_t chan, int64_t wm);
static void op_input_idle(fl_op_t *op, size_t chan, bool idle);
static void op_input_end(fl_op_t *op, size_t chan);
static void op_input_barrier(fl_op_t *op, size_t chan, int64_t id);
static void op_check_aligned(fl_op_t *op);
static void op_snapshot(fl_op_t *op, int64_t id);

static int emit_to(fl_out_t *out, const fl_record_t *rec) {
  for (size_t i = 0; i < out->n; i++) {
    fl_target_t *t = &out->t[i];
    if (t->op)
      op_record(t->op, t->logical, rec, -1);
    else
      ew_record(t->edge, rec);
  }
  return FL_OK;
}

int fl_op_emit(fl_op_t *op, const fl_record_t *rec) {
  op->n_out++;
  atomic_store_explicit(&op->m->records_out, op->n_out, memory_order_relaxed);
  return emit_to(&op->out, rec);
}

int fl_op_emit_side(fl_op_t *op, const fl_output_tag_t *tag, const fl_record_t *rec) {
  if (!tag || tag->id >= op->node->env->n_tags) return FL_EINVAL;
  return emit_to(&op->side[tag->id], rec);
}

static void control_to(fl_out_t *out, fl_entry_type_t type, int64_t ts) {
  for (size_t i = 0; i < out->n; i++) {
    fl_target_t *t = &out->t[i];
    if (t->op) {
      switch (type) {
      case FL_E_WATERMARK: op_input_watermark(t->op, (size_t)t->input, ts); break;
      case FL_E_IDLE: op_input_idle(t->op, (size_t)t->input, true); break;
      case FL_E_ACTIVE: op_input_idle(t->op, (size_t)t->input, false); break;
      case FL_E_END: op_input_end(t->op, (size_t)t->input); break;
      case FL_E_BARRIER: op_input_barrier(t->op, (size_t)t->input, ts); break;
      default: break;
      }
    } else {
      ew_control(t->edge, type, ts);
    }
  }
}

static void control_all(fl_op_t *op, fl_entry_type_t type, int64_t ts) {
  control_to(&op->out, type, ts);
  for (size_t i = 0; i < op->node->env->n_tags; i++) control_to(&op->side[i], type, ts);
}

int fl_op_emit_watermark(fl_op_t *op, int64_t wm) {
  control_all(op, FL_E_WATERMARK, wm);
  return FL_OK;
}

int fl_op_emit_idle(fl_op_t *op, bool idle) {
  if (op->idle_out == idle) return FL_OK;
  op->idle_out = idle;
  control_all(op, idle ? FL_E_IDLE : FL_E_ACTIVE, 0);
  return FL_OK;
}

static void set_key(fl_op_t *op, const void *key, size_t len, uint16_t kg) {
  op->ctx.key = key;
  op->ctx.key_len = len;
  op->ctx.kg = kg;
  op->ctx.keyed = true;
  op->ctx.ns = NULL;
  op->ctx.ns_len = 0;
}

/* Flink's cleanupIncrementally(size, runCleanupForEveryRecord): after each record, check
 * a few entries of every TTL state this operator opened, whether or not the record
 * touched it. */
static void ttl_sweep(fl_op_t *op) {
  fl_env_t *env = op->node->env;
  for (size_t i = 0; i < env->n_descs; i++) {
    const struct fl_state_desc *d = env->descs[i];
    if (!d->has_ttl || !d->ttl.cleanup_every_record || !d->ttl.incremental_cleanup_size ||
        !op->desc_tables[d->id])
      continue;
    fl_sref_t r;
    int rc = fl_op_sref(op, d, NULL, 0, &r);
    if (rc == FL_OK) rc = fl_st_ttl_cleanup_step(&r, d->ttl.incremental_cleanup_size);
    if (rc < 0) {
      fl_op_fail(op, rc, "TTL cleanup of state '%s' failed", d->name);
      return;
    }
  }
}

static void op_record(fl_op_t *op, int input, const fl_record_t *rec, int kg) {
  if (op->failed || op->finished) return;
  op->n_in++;
  atomic_store_explicit(&op->m->records_in, op->n_in, memory_order_relaxed);
  op->ctx.ts = rec->timestamp;
  const fl_input_t *li = &op->node->inputs[input];
  if (op->node->keyed && !li->unkeyed) {
    if (kg < 0)
      kg = (int)fl_key_group(fl_hash64(rec->key, rec->key_len, 0),
                             op->node->env->conf.max_parallelism);
    set_key(op, rec->key, rec->key_len, (uint16_t)kg);
  } else if (op->node->keyed) {
    op->ctx.keyed = false;
    op->ctx.key = NULL;
    op->ctx.key_len = 0;
  }
  op_check(op, op->cls->process(op, li->side, rec));
  if (op->ttl_every_record && !op->failed && op->ctx.keyed) ttl_sweep(op);
}

/* Fires timers of `d` up to `upto`. */
static void fire_timers(fl_op_t *op, fl_time_domain_t d, int64_t upto) {
  fl_timer_t t;
  while (!op->failed && fl_timers_pop(op->timers, d, upto, &t)) {
    /* The service's view of the key lives only until its next call, and on_timer may
     * register timers: keep a copy. */
    op->timer_key.len = 0;
    if (fl_buf_append(&op->timer_key, t.key, t.key_len) ||
        fl_buf_append(&op->timer_key, t.ns, t.ns_len)) {
      fl_op_fail(op, FL_ENOMEM, "out of memory firing a timer");
      return;
    }
    set_key(op, op->timer_key.data, t.key_len, t.kg);
    op->ctx.ns = op->timer_key.data + t.key_len;
    op->ctx.ns_len = t.ns_len;
    op->ctx.ts = t.ts;
    fl_timer_t copy = t;
    copy.key = op->ctx.key;
    copy.ns = op->ctx.ns;
    op_check(op, op->cls->on_timer ? op->cls->on_timer(op, d, &copy) : 0);
  }
}

static void op_advance(fl_op_t *op, int64_t wm) {
  op->wm = wm;
  atomic_store_explicit(&op->m->input_watermark, wm, memory_order_relaxed);
  if (op->timers) fire_timers(op, FL_EVENT_TIME, wm);
  if (op->failed) return;
  int rc = op->cls->on_watermark ? op->cls->on_watermark(op, wm) : 0;
  op_check(op, rc);
  if (rc == 0 && !op->failed) fl_op_emit_watermark(op, wm);
}

/* Recomputes the operator's watermark as the minimum over active channels. */
static void op_recompute(fl_op_t *op) {
  /* An ended channel stays active at its last watermark (+inf after a normal end), as
   * in Flink's status watermark valve. */
  int64_t min = FL_TS_MAX;
  bool any_active = false;
  for (size_t c = 0; c < op->n_ins; c++) {
    fl_in_chan_t *ch = &op->ins[c];
    if (ch->idle) continue;
    any_active = true;
    if (ch->wm < min) min = ch->wm;
  }
  bool gen = op->node->kind == FL_NODE_ASSIGN_TS; /* makes its own idleness */
  if (!gen && op->n_ended < op->n_ins) fl_op_emit_idle(op, !any_active);
  if (!any_active) return;
  if (min != FL_TS_NONE && (op->wm == FL_TS_NONE || min > op->wm)) op_advance(op, min);
}

static void op_input_watermark(fl_op_t *op, size_t chan, int64_t wm) {
  if (op->failed || op->finished) return;
  fl_in_chan_t *ch = &op->ins[chan];
  bool was_idle = ch->idle;
  ch->idle = false;
  if (ch->wm != FL_TS_NONE && wm <= ch->wm && !was_idle) return;
  if (ch->wm == FL_TS_NONE || wm > ch->wm) ch->wm = wm;
  op_recompute(op);
}

static void op_input_idle(fl_op_t *op, size_t chan, bool idle) {
  if (op->failed || op->finished) return;
  op->ins[chan].idle = idle;
  op_recompute(op);
}

typedef struct source_state {
  void *instance;
  bool opened_instance;
} source_state_t;

static void op_finish(fl_op_t *op) {
  fl_job_t *job = op->worker->job;
  if (atomic_load(&job->failing) || op->failed) return;
  if (op->wm != FL_TS_MAX) op_advance(op, FL_TS_MAX);
  if (op->timers && !op->failed) fire_timers(op, FL_PROCESSING_TIME, FL_TS_MAX);
  if (op->cls->end_input && !op->failed) op_check(op, op->cls->end_input(op));
  if (op->failed) return;
  if (job->coord && job->env->conf.ckpt_interval_ms > 0) {
    /* checkpoints after this one hold its final state (savepoints without periodic
     * checkpoints cannot: they fail once an operator ended) */
    op_snapshot(op, 0);
    if (op->failed) return;
    op->has_final = true;
  } else if (op->n_in == 0 && !(op->is_source && op->state &&
                                 ((source_state_t *)op->state)->opened_instance)) {
    op->has_final = true; /* never held anything: a dead instance (its final state is empty) */
  }
  op->finished = true;
  op->worker->n_unfinished--;
  control_all(op, FL_E_END, 0);
}

/* ---------------------------------------------------------------------------------- */
/* Checkpoint barriers                                                                  */
/*
 * Aligned barriers (Chandy-Lamport as in Flink): an operator that received barrier n on
 * some of its input channels takes no more input from those channels until n arrived on
 * all of them (an ended channel counts as arrived); then it snapshots and forwards n.
 * Input is held back where it enters the worker: an inbound ring whose batch delivered
 * n stops (keeping the rest of the batch) while an operator it feeds by calls is still
 * aligning n, and a source is not polled while one is. Sources inject n between two
 * records when the coordinator triggers it.
 */

bool fl_op_job_failing(const fl_op_t *op) { return atomic_load(&op->worker->job->failing); }

int64_t fl_op_checkpoint_triggered(const fl_op_t *op) {
  return atomic_load(&op->worker->job->ckpt_trigger);
}

/* Snapshots op for checkpoint id into op->ckpt_snap (into op->ckpt_final, the state
 * every later checkpoint holds for it, when id is 0: the operator just ended). */
static void op_snapshot(fl_op_t *op, int64_t id) {
  fl_buf_t opstate;
  fl_buf_init(&opstate);
  int rc = op->cls->snapshot ? op->cls->snapshot(op, id, &opstate) : 0;
  if (rc < 0) {
    fl_buf_free(&opstate);
    op_check(op, rc);
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
    snprintf(dir, sizeof dir, "%s/worker-%d/snap-%lld-op-%u", job->rocks_dir, op->subtask,
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
  rc = fl_snapshot_write(op, opstate.data, opstate.len, native, op->store_id, dst);
  if (id) {
    free(op->native_dir);
    op->native_dir = native;
  } else {
    free(op->native_final);
    op->native_final = native;
  }
  fl_buf_free(&opstate);
  if (rc < 0) {
    fl_op_fail(op, rc, "snapshot for checkpoint %lld failed: %s", (long long)id, fl_strerror(rc));
    return;
  }
  if (id) op->ckpt_done = id;
}

static void op_check_aligned(fl_op_t *op) {
  int64_t id = op->ckpt_aligning;
  for (size_t c = 0; c < op->n_ins; c++)
    if (op->ins[c].barrier != id && !op->ins[c].ended) return;
  op->ckpt_aligning = 0;
  op->worker->n_aligning--;
  op_snapshot(op, id);
  if (!op->failed) control_all(op, FL_E_BARRIER, id);
}

static void op_input_barrier(fl_op_t *op, size_t chan, int64_t id) {
  if (op->failed || op->finished) return;
  fl_job_t *job = op->worker->job;
  if (id <= op->ckpt_done || id <= atomic_load(&job->ckpt_abort)) return; /* stale */
  /* A newer barrier overtakes an alignment that cannot finish (its checkpoint was
   * aborted): channels are compared with the newest id only. */
  if (id < op->ckpt_aligning) return;
  if (!op->ckpt_aligning) op->worker->n_aligning++;
  op->ckpt_aligning = id;
  op->ins[chan].barrier = id;
  op_check_aligned(op);
}

/* Whether op or an operator it feeds by calls is aligning a checkpoint. */
static bool chain_aligning(const fl_op_t *op) {
  if (!op->worker->n_aligning) return false; /* the usual case: no walk */
  if (op->ckpt_aligning) return true;
  for (size_t i = 0; i < op->out.n; i++)
    if (op->out.t[i].op && chain_aligning(op->out.t[i].op)) return true;
  for (size_t k = 0; k < op->node->env->n_tags; k++)
    for (size_t i = 0; i < op->side[k].n; i++)
      if (op->side[k].t[i].op && chain_aligning(op->side[k].t[i].op)) return true;
  return false;
}

/* Sources: checkpoint id was triggered; inject its barrier after their positions. */
static void inject_barriers(fl_worker_t *w, int64_t id) {
  w->ckpt_injected = id;
  for (size_t i = 0; i < w->n_sources; i++) {
    fl_op_t *op = w->sources[i];
    if (op->finished || op->failed) continue;
    op_snapshot(op, id);
    if (!op->failed) control_all(op, FL_E_BARRIER, id);
  }
}

/* Acknowledges the injected checkpoint once every operator of this worker snapshotted
 * it or ended. */
static void maybe_ack(fl_worker_t *w) {
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
    fl_buf_init(&snaps[i]);
    if (op->ckpt_done == id) {
      snaps[i] = op->ckpt_snap;
      fl_buf_init(&op->ckpt_snap);
    } else if (!op->has_final) {
      for (size_t k = 0; k <= i; k++) fl_buf_free(&snaps[k]);
      free(snaps);
      w->ckpt_acked = id;
      fl_coord_ack(job, w->index, id, NULL, NULL, NULL);
      return;
    } else if (fl_buf_append(&snaps[i], op->ckpt_final.data, op->ckpt_final.len)) {
      /* ended before the barrier came: its final state */
      for (size_t k = 0; k <= i; k++) fl_buf_free(&snaps[k]);
      free(snaps);
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
      for (size_t k = 0; k < env->n_nodes; k++) fl_buf_free(&snaps[k]);
      free(snaps);
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
  for (size_t i = 0; i < env->n_nodes; i++) fl_buf_free(&snaps[i]);
  free(snaps);
}

/* Tells operators about completed and aborted checkpoints. */
static void notify_ops(fl_worker_t *w) {
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
        w->n_aligning--;
      }
      if (op->opened && op->cls->notify && !op->failed)
        op_check(op, op->cls->notify(op, ab, false));
    }
  }
  if (done > w->ckpt_completed) {
    w->ckpt_completed = done;
    for (size_t i = 0; i < env->n_nodes; i++) {
      fl_op_t *op = w->ops[i];
      if (op->opened && op->cls->notify && !op->failed)
        op_check(op, op->cls->notify(op, done, true));
    }
  }
}

static void op_input_end(fl_op_t *op, size_t chan) {
  if (op->failed || op->finished) return;
  fl_in_chan_t *ch = &op->ins[chan];
  if (ch->ended) return;
  ch->ended = true;
  op->n_ended++;
  if (op->ckpt_aligning) op_check_aligned(op);
  if (op->failed) return;
  if (op->n_ended == op->n_ins) {
    op_finish(op);
  } else {
    op_recompute(op);
  }
}

/* ---------------------------------------------------------------------------------- */
/* Sources                                                                              */

static int source_open(fl_op_t *op) {
  source_state_t *s = calloc(1, sizeof *s);
  if (!s) return FL_ENOMEM;
  op->state = s;
  fl_node_t *n = op->node;
  if (!n->parallel && op->subtask != 0) return FL_OK; /* ends at its first poll */
  s->instance = n->u.source.opaque;
  if (n->u.source.fn.open) {
    int rc = n->u.source.fn.open(&op->ctx, n->u.source.opaque, &s->instance);
    if (rc < 0) return fl_op_user_failed(op, rc, "source open");
  }
  s->opened_instance = true;
  op->ctx.instance = s->instance;
  return FL_OK;
}

static int source_process(fl_op_t *op, int input, const fl_record_t *rec) { return FL_OK; }

static void source_close(fl_op_t *op) {
  source_state_t *s = op->state;
  if (!s) return;
  if (s->opened_instance && op->node->u.source.fn.close && op->node->u.source.fn.open)
    op->node->u.source.fn.close(s->instance);
  free(s);
  op->state = NULL;
}

static int source_snapshot(fl_op_t *op, int64_t id, fl_buf_t *out) {
  source_state_t *s = op->state;
  if (!s->opened_instance || !op->node->u.source.fn.snapshot) return FL_OK;
  op->ctx.checkpoint_id = id;
  int rc = op->node->u.source.fn.snapshot(&op->ctx, s->instance, out);
  op->ctx.checkpoint_id = 0;
  return rc < 0 ? fl_op_user_failed(op, rc, "source snapshot") : FL_OK;
}

static int source_restore(fl_op_t *op, const fl_bytes_t *states, size_t n) {
  source_state_t *s = op->state;
  if (!s->opened_instance) return FL_OK;
  if (!op->node->u.source.fn.restore) {
    for (size_t i = 0; i < n; i++)
      if (states[i].len)
        return fl_op_fail(op, FL_ESTATE,
                          "the checkpoint holds a position for this source, which cannot "
                          "restore one (no restore function)");
    return FL_OK;
  }
  int rc = op->node->u.source.fn.restore(&op->ctx, s->instance, states, n);
  return rc < 0 ? fl_op_user_failed(op, rc, "source restore") : FL_OK;
}

static int source_notify(fl_op_t *op, int64_t id, bool completed) {
  source_state_t *s = op->state;
  if (!completed || !s->opened_instance || !op->node->u.source.fn.checkpoint_complete)
    return FL_OK;
  int rc = op->node->u.source.fn.checkpoint_complete(&op->ctx, s->instance, id);
  return rc < 0 ? fl_op_user_failed(op, rc, "source checkpoint_complete") : FL_OK;
}

const fl_op_class_t fl_op_source_class = {.kind = "source",
                                          .open = source_open,
                                          .process = source_process,
                                          .close = source_close,
                                          .snapshot = source_snapshot,
                                          .restore = source_restore,
                                          .notify = source_notify};

static void source_end(fl_op_t *op) {
  if (op->failed || op->finished) return;
  op_finish(op);
}

/* Runs one budget of a source. True if it did something. */
static bool source_poll(fl_worker_t *w, fl_op_t *op, int64_t now) {
  source_state_t *s = op->state;
  if (!s->opened_instance) {
    source_end(op);
    return true;
  }
  if (op->src_waiting) return false;
  if (op->src_retry_at && now < op->src_retry_at) return false;
  op->src_retry_at = 0;
  op->ctx.source_budget = w->job->env->conf.batch_size;
  op->ctx.wait_fd = -1;
  op->ctx.emitted = 0;
  op->ctx.ts = FL_TS_NONE;
  int rc = op->node->u.source.fn.run(&op->ctx, s->instance);
  if (op->failed) return true;
  if (rc < 0) {
    fl_op_user_failed(op, rc, "source");
    return true;
  }
  if (rc == FL_SOURCE_END) {
    source_end(op);
    return true;
  }
  if (rc == FL_SOURCE_WAIT) {
    if (op->ctx.wait_fd >= 0) {
      struct epoll_event ev = {.events = EPOLLIN | EPOLLONESHOT, .data.ptr = op};
      int ctl = op->src_fd == op->ctx.wait_fd ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
      if (op->src_fd >= 0 && op->src_fd != op->ctx.wait_fd)
        epoll_ctl(w->epfd, EPOLL_CTL_DEL, op->src_fd, NULL);
      if (epoll_ctl(w->epfd, ctl, op->ctx.wait_fd, &ev) != 0) {
        fl_op_fail(op, FL_ESYS, "cannot wait for fd %d: %s", op->ctx.wait_fd, strerror(errno));
        return true;
      }
      op->src_fd = op->ctx.wait_fd;
      op->src_waiting = true;
    } else {
      op->src_retry_at = now + 1;
    }
    return op->ctx.emitted > 0;
  }
  /* FL_SOURCE_MORE: "call me again soon". Having emitted nothing is not progress, so
   * the loop still ships partly filled batches, but it must not sleep either. */
  if (!op->ctx.emitted) w->poll_again = true;
  return op->ctx.emitted > 0;
}

/* ---------------------------------------------------------------------------------- */
/* The worker loop                                                                      */

/* Processes in->cur from in->pos. Returns false when a barrier blocked the channel
 * (in->pos is where to go on), true when the batch is done. */
static bool process_batch(fl_inbound_t *in) {
  fl_op_t *op = in->op;
  fl_batch_t *b = in->cur;
  bool failing = atomic_load(&op->worker->job->failing);
  while (in->pos < b->n) {
    const fl_entry_t *e = &b->e[in->pos++];
    switch (e->type) {
    case FL_E_RECORD: {
      fl_record_t r = {b->data + e->off, e->key_len, b->data + e->off + e->key_len,
                       e->value_len, e->ts};
      op_record(op, in->input, &r, in->op->node->keyed ? e->kg : -1);
      break;
    }
    case FL_E_WATERMARK: op_input_watermark(op, in->chan, e->ts); break;
    case FL_E_IDLE: op_input_idle(op, in->chan, true); break;
    case FL_E_ACTIVE: op_input_idle(op, in->chan, false); break;
    case FL_E_END: op_input_end(op, in->chan); break;
    case FL_E_BARRIER:
      op_input_barrier(op, in->chan, e->ts);
      if (!failing && chain_aligning(op)) {
        in->blocked = e->ts;
        return false;
      }
      break;
    }
  }
  return true;
}

static bool flush_edges(fl_worker_t *w) {
  bool any = false;
  for (size_t i = 0; i < w->n_edges; i++) any |= ew_flush(w->edges[i]);
  return any;
}

static bool has_overflow(fl_worker_t *w) {
  for (size_t i = 0; i < w->n_edges; i++)
    if (w->edges[i]->n_overflow) return true;
  return false;
}

static bool has_open(fl_worker_t *w) {
  for (size_t i = 0; i < w->n_edges; i++)
    for (int t = 0; t < w->edges[i]->n; t++)
      if (w->edges[i]->open[t] && w->edges[i]->open[t]->n) return true;
  return false;
}

static int64_t proc_deadline(fl_worker_t *w) {
  int64_t best = FL_TS_MAX;
  fl_env_t *env = w->job->env;
  for (size_t i = 0; i < env->n_nodes; i++) {
    fl_op_t *op = w->ops[i];
    int64_t ts;
    if (op->timers && !op->finished && fl_timers_peek(op->timers, FL_PROCESSING_TIME, &ts) &&
        ts < best)
      best = ts;
    if (op->is_source && op->src_retry_at && op->src_retry_at < best) best = op->src_retry_at;
  }
  return best;
}

static bool work_visible(fl_worker_t *w) {
  for (size_t i = 0; i < w->n_in; i++) {
    fl_inbound_t *in = &w->in[i];
    if (in->blocked && chain_aligning(in->op)) continue;
    if (!in->op->finished && (in->cur || !fl_ring_empty(in->ring)) &&
        !guards_blocked(in->guards, in->n_guards))
      return true;
  }
  fl_job_t *job = w->job;
  if (job->coord && (atomic_load(&job->ckpt_trigger) > w->ckpt_injected ||
                     (atomic_load(&job->final_done) && w->n_unfinished == 0) ||
                     atomic_load(&job->ckpt_complete) > w->ckpt_completed ||
                     atomic_load(&job->ckpt_abort) > w->ckpt_aborted))
    return true;
  for (size_t i = 0; i < w->n_edges; i++)
    if (ew_can_retry(w->edges[i])) return true;
  return false;
}

static void worker_sleep(fl_worker_t *w, int64_t now, bool has_ticks) {
  fl_job_t *job = w->job;
  int timeout = w->poll_again ? 0 : MAX_SLEEP_MS;
  if (!atomic_load(&job->failing)) {
    int64_t d = proc_deadline(w);
    if (d != FL_TS_MAX) {
      int64_t ms = d - now;
      if (ms < 0) ms = 0;
      if (ms < timeout) timeout = (int)ms;
    }
    if (has_ticks) {
      int64_t iv = job->env->conf.watermark_interval_ms;
      if (iv < 1) iv = 1;
      if (iv < timeout) timeout = (int)iv;
    }
  }
  atomic_store(&w->waiting_space, has_overflow(w));
  atomic_store(&w->sleeping, 1);
  /* Re-check after announcing sleep: a producer that pushed before it saw the flag
   * left its batch visible to this check (both sides are seq_cst). */
  if (!work_visible(w) && !atomic_load(&job->env->stop_requested)) {
    struct epoll_event evs[16];
    int n = epoll_wait(w->epfd, evs, 16, timeout);
    for (int i = 0; i < n; i++) {
      if (evs[i].data.ptr == NULL) {
        uint64_t v;
        ssize_t r = read(w->efd, &v, sizeof v);
        (void)r;
      } else {
        fl_op_t *op = evs[i].data.ptr;
        op->src_waiting = false;
      }
    }
  }
  atomic_store(&w->sleeping, 0);
}

/* A native (incremental) snapshot of old subtask `subtask`: its RocksDB files are linked
 * into a temporary store, whose cells are restored like a canonical snapshot, so the key
 * groups can move and the backend can change. */
static int restore_native(fl_op_t *op, size_t subtask, uint64_t store_id,
                          const char *const *files, size_t n, void *arg) {
  const fl_restore_t *r = arg;
  fl_job_t *job = op->worker->job;
  static _Atomic int seq;
  char tmp[4200], src[4300], db[4300], err[900];
  const char *base = job->env->conf.rocksdb_dir[0] ? job->env->conf.rocksdb_dir : "/tmp";
  snprintf(tmp, sizeof tmp, "%s/flink-restore-%d-%d", base, (int)getpid(), atomic_fetch_add(&seq, 1));
  snprintf(src, sizeof src, "%s/files", tmp);
  snprintf(db, sizeof db, "%s/db", tmp);
  /* a cache of its own: temporary stores of several workers read the same files */
  fl_kv_rocksdb_shared_t *sh = NULL;
  fl_kv_rocksdb_shared_t *own_sh = NULL;
  fl_kv_t tkv = {0};
  fl_buf_t blob;
  fl_buf_init(&blob);
  int rc = FL_OK;
  if ((mkdir(tmp, 0700) != 0 || mkdir(src, 0700) != 0)) {
    rc = fl_op_fail(op, FL_EIO, "cannot create %s: %s", src, strerror(errno));
    goto done;
  }
  for (size_t i = 0; i < n; i++) {
    char name[600], to[4700];
    snprintf(name, sizeof name, "op-%u-%zu/%s", op->node->id, subtask, files[i]);
    const fl_ckpt_file_t *f = fl_ckpt_file_find(r->ck, name);
    if (!f) {
      rc = fl_op_fail(op, FL_EPARSE, "checkpoint %s lacks the state file %s", r->path, name);
      goto done;
    }
    snprintf(to, sizeof to, "%s/%s", src, files[i]);
    if (link(f->path, to) != 0 && symlink(f->path, to) != 0) {
      rc = fl_op_fail(op, FL_EIO, "cannot link %s to %s: %s", f->path, to, strerror(errno));
      goto done;
    }
  }
  if (!sh) {
    rc = fl_kv_rocksdb_shared_new(&job->env->conf.rocksdb_opts, &own_sh, err, sizeof err);
    if (rc) {
      rc = fl_op_fail(op, rc, "cannot open RocksDB to restore: %s", err);
      goto done;
    }
    sh = own_sh;
  }
  rc = fl_kv_rocksdb_new(sh, db, src, &tkv, err, sizeof err);
  if (rc) {
    rc = fl_op_fail(op, rc, "cannot open the restored RocksDB state of subtask %zu: %s", subtask, err);
    goto done;
  }
  char prefix[32];
  snprintf(prefix, sizeof prefix, "%u/", op->node->id);
  rc = fl_snapshot_kv_blob(&tkv, prefix, &blob);
  fl_kv_destroy(&tkv);
  if (rc) {
    rc = fl_op_fail(op, rc, "cannot read the restored RocksDB state of subtask %zu", subtask);
    goto done;
  }
  fl_bytes_t b = {blob.data, blob.len}, unused;
  rc = fl_snapshot_restore(op, &b, 1, &unused, NULL, NULL);
done:
  (void)store_id;
  fl_kv_destroy(&tkv);
  if (own_sh) fl_kv_rocksdb_shared_destroy(own_sh);
  fl_buf_free(&blob);
  fl_rm_tree(tmp);
  return rc;
}

/* Gives op its key groups' state and timers and its operator state from r. */
static void restore_op(fl_op_t *op, const fl_restore_t *r) {
  size_t n = (size_t)r->parallelism;
  const fl_bytes_t *blobs = &r->blobs[op->node->id * n];
  fl_bytes_t *states = calloc(n, sizeof *states);
  if (!states) {
    fl_op_fail(op, FL_ENOMEM, "out of memory restoring checkpoint %lld", (long long)r->id);
    return;
  }
  int rc = fl_snapshot_restore(op, blobs, n, states, restore_native, (void *)r);
  if (rc == 0 && op->cls->restore) {
    if (op->is_source && !op->node->parallel) {
      /* a single reader goes on from its own position */
      if (op->subtask == 0) rc = op->cls->restore(op, states, 1);
    } else {
      rc = op->cls->restore(op, states, n);
    }
    op_check(op, rc);
  }
  free(states);
}

static void open_ops(fl_worker_t *w) {
  fl_env_t *env = w->job->env;
  for (size_t i = 0; i < env->n_nodes; i++) {
    fl_op_t *op = w->ops[i];
    int rc = op->cls->open ? op->cls->open(op) : 0;
    op->opened = true;
    if (rc < 0) {
      op_check(op, rc);
      return;
    }
    if (w->job->restore) {
      restore_op(op, w->job->restore);
      if (op->failed) return;
    }
  }
}

static void close_ops(fl_worker_t *w, bool failing) {
  fl_env_t *env = w->job->env;
  /* Sinks that did not end keep what reached them: flush before closing. */
  if (failing) {
    for (size_t i = 0; i < env->n_nodes; i++) {
      fl_op_t *op = w->ops[i];
      if (op->opened && !op->finished && op->node->kind == FL_NODE_SINK && op->cls->end_input) {
        int rc = op->cls->end_input(op);
        if (rc < 0) op_check(op, rc);
      }
    }
  }
  for (size_t i = 0; i < env->n_nodes; i++) {
    fl_op_t *op = w->ops[i];
    if (op->opened && op->cls->close) op->cls->close(op);
    op->opened = false;
  }
}

static void *worker_main(void *arg) {
  fl_worker_t *w = arg;
  fl_job_t *job = w->job;
  fl_env_t *env = job->env;
  bool has_ticks = false;
  for (size_t i = 0; i < env->n_nodes; i++) has_ticks |= w->ops[i]->cls->on_tick != NULL;

  open_ops(w);
  for (;;) {
    bool progress = false;
    if (atomic_load(&env->stop_requested) && !atomic_load(&job->failing))
      fl_job_fail(job, FL_ECANCELED, "the job was stopped");
    bool failing = atomic_load(&job->failing);
    if (failing && !w->drained) {
      flush_edges(w);
      w->drained = true;
      atomic_fetch_add(&job->drained_workers, 1);
      wake_all(job);
    }
    for (size_t i = 0; i < w->n_edges; i++) progress |= ew_retry(w->edges[i]);

    if (job->coord) {
      int64_t trig = atomic_load(&job->ckpt_trigger);
      if (trig > w->ckpt_injected && !atomic_load(&job->failing)) {
        inject_barriers(w, trig);
        progress = true;
      }
      notify_ops(w);
    }

    for (size_t i = 0; i < w->n_in; i++) {
      fl_inbound_t *in = &w->in[i];
      if (in->blocked) {
        if (!atomic_load(&job->failing) && chain_aligning(in->op)) continue;
        in->blocked = 0;
      }
      for (int k = 0; k < BATCHES_PER_RING; k++) {
        if (guards_blocked(in->guards, in->n_guards)) break;
        if (!in->cur) {
          bool was_full = false;
          in->cur = fl_ring_pop(in->ring, &was_full);
          if (!in->cur) break;
          in->pos = 0;
          if (atomic_load(&in->from->waiting_space)) fl_worker_wake(in->from);
        }
        progress = true;
        if (!process_batch(in)) break;
        fl_batch_free(in->cur);
        in->cur = NULL;
        if (atomic_load(&job->failing)) flush_edges(w); /* before the count can reach 0 */
        if (atomic_fetch_sub(&job->inflight, 1) == 1 && atomic_load(&job->failing))
          wake_all(job);
      }
    }

    int64_t now = fl_env_now(env);
    for (size_t i = 0; i < env->n_nodes; i++) {
      fl_op_t *op = w->ops[i];
      if (op->kv->ops->set_time) op->kv->ops->set_time(op->kv->self, now);
    }
    w->poll_again = false;
    if (!atomic_load(&job->failing)) {
      for (size_t i = 0; i < w->n_sources; i++) {
        fl_op_t *op = w->sources[i];
        if (op->finished || op->failed) continue;
        if (guards_blocked(op->guards, op->n_guards)) continue;
        if (chain_aligning(op)) continue;
        progress |= source_poll(w, op, now);
      }
      for (size_t i = 0; i < env->n_nodes && !atomic_load(&job->failing); i++) {
        fl_op_t *op = w->ops[i];
        if (op->finished || op->failed) continue;
        if (op->timers) {
          int64_t ts;
          if (fl_timers_peek(op->timers, FL_PROCESSING_TIME, &ts) && ts <= now) {
            fire_timers(op, FL_PROCESSING_TIME, now);
            progress = true;
          }
        }
        if (op->cls->on_tick) op_check(op, op->cls->on_tick(op, now));
      }
    }

    if (job->coord && w->ckpt_injected > w->ckpt_acked) maybe_ack(w);

    int64_t mono = mono_ns();
    if (mono - w->last_flush_ns >= FLUSH_INTERVAL_NS) {
      w->last_flush_ns = mono;
      flush_edges(w);
    }
    failing = atomic_load(&job->failing);
    if (!failing && w->n_unfinished == 0 && !has_overflow(w) && !has_open(w)) {
      /* With checkpoints, sinks commit what they wrote last only when a checkpoint
       * taken after every operator ended completes (Flink's final checkpoint): stay
       * until the coordinator says the job is done. */
      if (!job->coord) break;
      if (!atomic_load(&w->all_finished)) {
        atomic_store(&w->all_finished, 1);
        fl_coord_wake(job);
      }
      int64_t fd = atomic_load(&job->final_done); /* -1: done without a final checkpoint */
      notify_ops(w);
      if (fd < 0) {
        /* Without checkpoints the job's successful end is the commit point: tell sinks
         * once every worker's operators ended (checkpoint id INT64_MAX). */
        for (size_t i = 0; i < env->n_nodes; i++) {
          fl_op_t *op = w->ops[i];
          if (op->opened && op->cls->notify && !op->failed)
            op_check(op, op->cls->notify(op, INT64_MAX, true));
        }
        break;
      }
      if (fd && w->ckpt_completed >= fd) break;
    }
    if (failing && w->drained && atomic_load(&job->drained_workers) == job->P &&
        atomic_load(&job->inflight) == 0)
      break;
    if (!progress) {
      if (flush_edges(w)) continue;
      worker_sleep(w, now, has_ticks);
    }
  }
  if (!w->drained) {
    /* Ended normally: nothing of ours is in flight. Failing workers wait for this. */
    w->drained = true;
    atomic_fetch_add(&job->drained_workers, 1);
    wake_all(job);
  }
  close_ops(w, atomic_load(&job->failing));
  return NULL;
}

/* ---------------------------------------------------------------------------------- */
/* Plan                                                                                 */

static const fl_op_class_t *class_of(fl_node_kind_t k) {
  switch (k) {
  case FL_NODE_SOURCE: return &fl_op_source_class;
  case FL_NODE_MAP: return &fl_op_map_class;
  case FL_NODE_FLAT_MAP: return &fl_op_flat_map_class;
  case FL_NODE_FILTER: return &fl_op_filter_class;
  case FL_NODE_PROCESS: return &fl_op_process_class;
  case FL_NODE_KEYED_PROCESS: return &fl_op_keyed_process_class;
  case FL_NODE_ROLLING: return &fl_op_rolling_class;
  case FL_NODE_WINDOW: return &fl_op_window_class;
  case FL_NODE_ASSIGN_TS: return &fl_op_assign_ts_class;
  case FL_NODE_SINK: return &fl_op_sink_class;
  case FL_NODE_CO_PROCESS: return &fl_op_co_process_class;
  case FL_NODE_KEYED_CO_PROCESS: return &fl_op_keyed_co_process_class;
  case FL_NODE_WINDOW_JOIN: return &fl_op_window_join_class;
  case FL_NODE_INTERVAL_JOIN: return &fl_op_interval_join_class;
  case FL_NODE_BROADCAST_PROCESS: return &fl_op_broadcast_process_class;
  }
  return NULL;
}

static int add_target(fl_out_t *out, fl_target_t t) {
  void *p = realloc(out->t, (out->n + 1) * sizeof *out->t);
  if (!p) return FL_ENOMEM;
  out->t = p;
  out->t[out->n++] = t;
  return FL_OK;
}

static fl_out_t *out_of(fl_op_t *op, const fl_output_tag_t *tag) {
  return tag ? &op->side[tag->id] : &op->out;
}

static fl_op_t *op_new(fl_worker_t *w, fl_node_t *node) {
  fl_env_t *env = w->job->env;
  fl_op_t *op = calloc(1, sizeof *op);
  if (!op) return NULL;
  op->cls = class_of(node->kind);
  op->node = node;
  op->worker = w;
  op->subtask = w->index;
  op->parallelism = w->job->P;
  op->ctx.op = op;
  op->ctx.wait_fd = -1;
  op->ctx.ts = FL_TS_NONE;
  op->m = &node->metrics[w->index];
  op->wm = FL_TS_NONE;
  op->src_fd = -1;
  op->src_wm = FL_TS_NONE;
  op->is_source = node->kind == FL_NODE_SOURCE;
  fl_buf_init(&op->timer_key);
  fl_buf_init(&op->ckpt_snap);
  fl_buf_init(&op->ckpt_final);
  op->side = calloc(env->n_tags ? env->n_tags : 1, sizeof *op->side);
  for (size_t i = 0; i < node->n_inputs; i++)
    op->n_ins += node->inputs[i].part == FL_PART_FORWARD ? 1 : (size_t)w->job->P;
  op->ins = calloc(op->n_ins ? op->n_ins : 1, sizeof *op->ins);
  if (!op->side || !op->ins) goto fail;
  for (size_t c = 0; c < op->n_ins; c++) op->ins[c].wm = FL_TS_NONE;
  if (node->keyed) {
    fl_key_group_range(w->index, w->job->P, env->conf.max_parallelism, &op->kg_first,
                       &op->kg_count);
    op->timers = fl_timers_new(op->kg_first, op->kg_count);
    op->desc_tables = calloc(env->n_descs ? env->n_descs : 1, sizeof *op->desc_tables);
    op->desc_cleanup = calloc(env->n_descs ? env->n_descs : 1, sizeof *op->desc_cleanup);
    if (!op->timers || !op->desc_tables || !op->desc_cleanup) goto fail;
    for (size_t i = 0; i < env->n_descs; i++) {
      const struct fl_state_desc *d = env->descs[i];
      op->ttl_every_record |= d->has_ttl && d->ttl.cleanup_every_record &&
                              d->ttl.incremental_cleanup_size > 0;
    }
  }
  op->kv = &w->kv;
  if (node->keyed && env->conf.rocksdb) {
    /* RocksDB: one store per keyed operator subtask (Flink's layout), so each can be
     * copied natively at its own barrier for incremental checkpoints */
    static _Atomic uint64_t store_seq;
    char dir[4300], err[900];
    snprintf(dir, sizeof dir, "%s/worker-%d/op-%u", w->job->rocks_dir, w->index, node->id);
    if (fl_kv_rocksdb_new(w->job->rocks_shared, dir, NULL, &op->own_kv, err, sizeof err)) {
      fprintf(stderr, "flink: cannot open the RocksDB state of operator '%s': %s\n",
              node->name, err);
      goto fail;
    }
    op->kv = &op->own_kv;
    op->store_id = ((uint64_t)getpid() << 40) ^ (uint64_t)mono_ns() ^
                   (atomic_fetch_add(&store_seq, 1) << 20);
  }
  op->worker_scratch = w->scratch;
  return op;
fail:
  fl_kv_destroy(&op->own_kv);
  fl_timers_destroy(op->timers);
  free(op->desc_tables);
  free(op->desc_cleanup);
  free(op->side);
  free(op->ins);
  free(op);
  return NULL;
}

static void op_free(fl_op_t *op) {
  if (!op) return;
  fl_env_t *env = op->node->env;
  free(op->out.t);
  if (op->side)
    for (size_t i = 0; i < env->n_tags; i++) free(op->side[i].t);
  free(op->side);
  free(op->ins);
  fl_timers_destroy(op->timers);
  free(op->desc_tables);
  free(op->desc_cleanup);
  free(op->pending_err);
  free(op->guards);
  fl_buf_free(&op->timer_key);
  fl_buf_free(&op->ckpt_snap);
  fl_buf_free(&op->ckpt_final);
  fl_kv_destroy(&op->own_kv);
  free(op->native_dir);
  free(op->native_final);
  free(op);
}

static fl_edge_writer_t *ew_new(fl_worker_t *w, const fl_input_t *in, fl_op_t *producer) {
  int P = w->job->P;
  fl_edge_writer_t *ew = calloc(1, sizeof *ew);
  if (!ew) return NULL;
  ew->w = w;
  ew->part = in->part;
  ew->key_fn = in->key_fn;
  ew->key_opaque = in->key_opaque;
  ew->producer = producer;
  ew->n = P;
  ew->rr = (uint32_t)w->index; /* spread round robin starts */
  ew->rings = calloc((size_t)P, sizeof *ew->rings);
  ew->to = calloc((size_t)P, sizeof *ew->to);
  ew->open = calloc((size_t)P, sizeof *ew->open);
  ew->ovf_head = calloc((size_t)P, sizeof *ew->ovf_head);
  ew->ovf_tail = calloc((size_t)P, sizeof *ew->ovf_tail);
  if (!ew->rings || !ew->to || !ew->open || !ew->ovf_head || !ew->ovf_tail) goto fail;
  for (int t = 0; t < P; t++) {
    ew->rings[t] = fl_ring_new(w->job->env->conf.channel_capacity);
    if (!ew->rings[t]) goto fail;
    ew->to[t] = &w->job->workers[t];
  }
  return ew;
fail:
  if (ew->rings)
    for (int t = 0; t < P; t++) fl_ring_destroy(ew->rings[t]);
  free(ew->rings);
  free(ew->to);
  free(ew->open);
  free(ew->ovf_head);
  free(ew->ovf_tail);
  free(ew);
  return NULL;
}

static void ew_free(fl_edge_writer_t *ew) {
  for (int t = 0; t < ew->n; t++) {
    fl_ring_destroy(ew->rings[t]);
    fl_batch_free(ew->open[t]);
    for (fl_batch_t *b = ew->ovf_head[t], *nx; b; b = nx) {
      nx = b->next;
      fl_batch_free(b);
    }
  }
  free(ew->rings);
  free(ew->to);
  free(ew->open);
  free(ew->ovf_head);
  free(ew->ovf_tail);
  free(ew);
}

/* Edge writers reachable from op through chained outputs (main and side). */
static int collect_guards(fl_op_t *op, fl_edge_writer_t ***g, size_t *n) {
  fl_env_t *env = op->node->env;
  for (size_t s = 0; s <= env->n_tags; s++) {
    fl_out_t *out = s == 0 ? &op->out : &op->side[s - 1];
    for (size_t i = 0; i < out->n; i++) {
      fl_target_t *t = &out->t[i];
      if (t->op) {
        if (collect_guards(t->op, g, n)) return FL_ENOMEM;
        continue;
      }
      bool seen = false;
      for (size_t k = 0; k < *n; k++) seen |= (*g)[k] == t->edge;
      if (seen) continue;
      void *p = realloc(*g, (*n + 1) * sizeof **g);
      if (!p) return FL_ENOMEM;
      *g = p;
      (*g)[(*n)++] = t->edge;
    }
  }
  return FL_OK;
}

static int plan_validate(fl_env_t *env, char *msg, size_t size) {
  bool has_sink = false;
  for (size_t i = 0; i < env->n_nodes; i++) {
    fl_node_t *n = env->nodes[i];
    has_sink |= n->kind == FL_NODE_SINK;
    if (n->kind != FL_NODE_SOURCE && n->n_inputs == 0) {
      snprintf(msg, size, "operator '%s' has no input", n->name);
      return FL_EPLAN;
    }
    for (size_t k = 0; k < n->n_inputs; k++) {
      if (!n->inputs[k].from || n->inputs[k].from->id >= n->id) {
        snprintf(msg, size, "operator '%s' has an input that is not an earlier operator",
                 n->name);
        return FL_EPLAN;
      }
    }
  }
  if (!has_sink) {
    snprintf(msg, size, "the job has no sink: add one with fl_stream_sink()");
    return FL_EPLAN;
  }
  return FL_OK;
}

static void job_destroy(fl_job_t *job) {
  if (!job) return;
  fl_env_t *env = job->env;
  for (int i = 0; job->workers && i < job->P; i++) {
    fl_worker_t *w = &job->workers[i];
    if (w->ops)
      for (size_t k = 0; k < env->n_nodes; k++) op_free(w->ops[k]);
    free(w->ops);
    for (size_t k = 0; k < w->n_edges; k++) ew_free(w->edges[k]);
    free(w->edges);
    for (size_t k = 0; k < w->n_in; k++) {
      free(w->in[k].guards);
      if (w->in[k].cur) fl_batch_free(w->in[k].cur);
    }
    free(w->in);
    free(w->sources);
    fl_kv_destroy(&w->kv);
    fl_state_scratch_destroy(w->scratch);
    if (w->efd >= 0) close(w->efd);
    if (w->epfd >= 0) close(w->epfd);
  }
  free(job->workers);
  if (job->rocks_shared) {
    fl_kv_rocksdb_shared_destroy(job->rocks_shared);
    fl_rm_tree(job->rocks_dir);
  }
  pthread_mutex_destroy(&job->err_lock);
  free(job);
}

#define PLAN_NOMEM()                        \
  do {                                      \
    snprintf(msg, size, "out of memory planning the job"); \
    return FL_ENOMEM;                       \
  } while (0)

static int wire(fl_job_t *job, const bool *dead, char *msg, size_t size);

static int plan(fl_job_t *job, char *msg, size_t size) {
  fl_env_t *env = job->env;
  int P = job->P;
  int rc = plan_validate(env, msg, size);
  if (rc) return rc;
  for (size_t i = 0; i < env->n_nodes; i++) {
    fl_node_t *n = env->nodes[i];
    fl_metrics_free_user(n->metrics, (size_t)n->n_metrics);
    free(n->metrics);
    n->n_metrics = 0;
    n->metrics = calloc((size_t)P, sizeof *n->metrics);
    if (!n->metrics) PLAN_NOMEM();
    n->n_metrics = P;
    for (int s = 0; s < P; s++) atomic_init(&n->metrics[s].input_watermark, FL_TS_NONE);
  }
  if (env->conf.rocksdb) {
    /* One working directory per attempt: <localdir>/flink-<pid>-<n>/worker-<i>. */
    static _Atomic int seq;
    const char *base = env->conf.rocksdb_dir[0] ? env->conf.rocksdb_dir : "/tmp";
    snprintf(job->rocks_dir, sizeof job->rocks_dir, "%s/flink-rocksdb-%d-%d", base, (int)getpid(),
             atomic_fetch_add(&seq, 1));
    char err[900];
    rc = fl_kv_rocksdb_shared_new(&env->conf.rocksdb_opts, &job->rocks_shared, err, sizeof err);
    if (rc) {
      snprintf(msg, size, "cannot set up RocksDB: %s", err);
      return rc;
    }
  }
  job->workers = calloc((size_t)P, sizeof *job->workers);
  if (!job->workers) PLAN_NOMEM();
  for (int i = 0; i < P; i++) {
    job->workers[i].efd = -1;
    job->workers[i].epfd = -1;
  }
  for (int i = 0; i < P; i++) {
    fl_worker_t *w = &job->workers[i];
    w->job = job;
    w->index = i;
    w->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    w->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (w->efd < 0 || w->epfd < 0) {
      snprintf(msg, size, "cannot create the event loop of worker %d: %s", i, strerror(errno));
      return FL_ESYS;
    }
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
    if (epoll_ctl(w->epfd, EPOLL_CTL_ADD, w->efd, &ev) != 0) {
      snprintf(msg, size, "cannot create the event loop of worker %d: %s", i, strerror(errno));
      return FL_ESYS;
    }
    if (fl_kv_hashmap_new(&w->kv) != FL_OK) PLAN_NOMEM();
    w->scratch = fl_state_scratch_new();
    w->ops = calloc(env->n_nodes, sizeof *w->ops);
    if (!w->scratch || !w->ops) PLAN_NOMEM();
    for (size_t k = 0; k < env->n_nodes; k++) {
      w->ops[k] = op_new(w, env->nodes[k]);
      if (!w->ops[k]) PLAN_NOMEM();
      if (w->ops[k]->is_source) {
        void *p = realloc(w->sources, (w->n_sources + 1) * sizeof *w->sources);
        if (!p) PLAN_NOMEM();
        w->sources = p;
        w->sources[w->n_sources++] = w->ops[k];
      }
    }
    w->n_unfinished = env->n_nodes;
  }
  /* An instance is dead when it can never carry data: a single-reader source on
   * another subtask than 0, and what is chained only to dead instances. Receivers treat
   * channels from dead instances as ended (at +inf) from the start, so event time does
   * not wait for them to be scheduled: results do not depend on thread timing. */
  bool *dead = calloc((size_t)P * env->n_nodes, sizeof *dead);
  if (!dead) PLAN_NOMEM();
  for (int s = 0; s < P; s++) {
    for (size_t k = 0; k < env->n_nodes; k++) {
      fl_node_t *n = env->nodes[k];
      bool d;
      if (n->kind == FL_NODE_SOURCE) {
        d = !n->parallel && s != 0;
      } else {
        d = n->n_inputs > 0;
        for (size_t i = 0; i < n->n_inputs; i++)
          d &= n->inputs[i].part == FL_PART_FORWARD && dead[(size_t)s * env->n_nodes + n->inputs[i].from->id];
      }
      dead[(size_t)s * env->n_nodes + k] = d;
    }
  }
  rc = wire(job, dead, msg, size);
  free(dead);
  return rc;
}

static int wire(fl_job_t *job, const bool *dead, char *msg, size_t size) {
  fl_env_t *env = job->env;
  int P = job->P;
  /* Wire inputs. */
  for (size_t k = 0; k < env->n_nodes; k++) {
    fl_node_t *n = env->nodes[k];
    size_t base = 0;
    for (size_t i = 0; i < n->n_inputs; i++) {
      const fl_input_t *in = &n->inputs[i];
      if (in->part == FL_PART_FORWARD) {
        for (int s = 0; s < P; s++) {
          fl_target_t t = {.op = job->workers[s].ops[k], .input = (int)base, .logical = (int)i};
          if (add_target(out_of(job->workers[s].ops[in->from->id], in->tag), t)) PLAN_NOMEM();
        }
        base += 1;
        continue;
      }
      for (int s = 0; s < P; s++) {
        fl_worker_t *w = &job->workers[s];
        fl_op_t *prod = w->ops[in->from->id];
        if (dead[(size_t)s * env->n_nodes + in->from->id]) {
          for (int r = 0; r < P; r++) {
            fl_op_t *rop = job->workers[r].ops[k];
            rop->ins[base + (size_t)s].ended = true;
            rop->ins[base + (size_t)s].wm = FL_TS_MAX;
            rop->n_ended++;
          }
          continue;
        }
        fl_edge_writer_t *ew = ew_new(w, in, prod);
        if (!ew) PLAN_NOMEM();
        void *p = realloc(w->edges, (w->n_edges + 1) * sizeof *w->edges);
        if (!p) {
          ew_free(ew);
          PLAN_NOMEM();
        }
        w->edges = p;
        w->edges[w->n_edges++] = ew;
        fl_target_t t = {.edge = ew};
        if (add_target(out_of(prod, in->tag), t)) PLAN_NOMEM();
        for (int r = 0; r < P; r++) {
          fl_worker_t *rw = &job->workers[r];
          p = realloc(rw->in, (rw->n_in + 1) * sizeof *rw->in);
          if (!p) PLAN_NOMEM();
          rw->in = p;
          fl_inbound_t *ib = &rw->in[rw->n_in++];
          memset(ib, 0, sizeof *ib);
          ib->ring = ew->rings[r];
          ib->from = w;
          ib->op = rw->ops[k];
          ib->input = (int)i;
          ib->chan = base + (size_t)s;
        }
      }
      base += (size_t)P;
    }
  }
  /* Backpressure guards. */
  for (int s = 0; s < P; s++) {
    fl_worker_t *w = &job->workers[s];
    for (size_t i = 0; i < w->n_in; i++)
      if (collect_guards(w->in[i].op, &w->in[i].guards, &w->in[i].n_guards)) PLAN_NOMEM();
    for (size_t i = 0; i < w->n_sources; i++)
      if (collect_guards(w->sources[i], &w->sources[i]->guards, &w->sources[i]->n_guards))
        PLAN_NOMEM();
  }
  return FL_OK;
}

/* Runs one attempt of the job, from r when not NULL. Checkpoint ids start at first_id. */
static int run_attempt(fl_env_t *env, fl_restore_t *r, int64_t first_id) {
  fl_job_t *job = calloc(1, sizeof *job);
  if (!job) return FL_ENOMEM;
  job->env = env;
  job->P = env->conf.parallelism;
  job->restore = r;
  pthread_mutex_init(&job->err_lock, NULL);
  int rc = plan(job, env->errmsg, sizeof env->errmsg);
  if (rc) {
    job_destroy(job);
    return rc;
  }
  rc = fl_coord_start(job, first_id, env->errmsg, sizeof env->errmsg);
  if (rc) {
    job_destroy(job);
    return rc;
  }
  atomic_store(&env->job, job);
  int started = 0;
  for (; started < job->P; started++) {
    if (pthread_create(&job->workers[started].thread, NULL, worker_main,
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
  job_destroy(job);
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

static int64_t mono_ms_now(void) { return mono_ns() / 1000000; }

static bool may_restart(const fl_restart_conf_t *rc, restarts_t *st, int64_t *delay) {
  int64_t now = mono_ms_now();
  st->n++;
  switch (rc->kind) {
  case FL_RESTART_NONE: return false;
  case FL_RESTART_FIXED:
    *delay = rc->fixed_delay_ms;
    return st->n <= rc->fixed_attempts;
  case FL_RESTART_EXPONENTIAL:
    if (st->last_failure && now - st->last_failure >= rc->exp_reset_ms) {
      st->backoff = 0; /* ran long enough: start over */
      st->n = 1;
    }
    st->last_failure = now;
    st->backoff = st->backoff ? (int64_t)((double)st->backoff * rc->exp_multiplier)
                              : rc->exp_initial_ms;
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
  int64_t end = mono_ms_now() + ms;
  while (!atomic_load(&env->stop_requested)) {
    int64_t left = end - mono_ms_now();
    if (left <= 0) break;
    struct timespec ts = {.tv_sec = 0, .tv_nsec = (left > 20 ? 20 : left) * 1000000L};
    nanosleep(&ts, NULL);
  }
}

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
  atomic_store(&env->state, 1);
  const fl_env_conf_t *conf = &env->conf;
  fl_restore_t *r = NULL;
  int rc = FL_OK;
  if (conf->restore_path[0]) {
    rc = fl_restore_load(env, conf->restore_path, &r, env->errmsg, sizeof env->errmsg);
    if (rc) {
      atomic_store(&env->state, 2);
      return rc;
    }
  }
  restarts_t st = {0};
  if (conf->restart.kind == FL_RESTART_FAILURE_RATE) {
    st.times = calloc((size_t)conf->restart.rate_max + 1, sizeof *st.times);
    if (!st.times) {
      fl_restore_free(r);
      atomic_store(&env->state, 2);
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
    if (r) atomic_store(&env->ckpt_stats.restored_id, r->id);
    rc = run_attempt(env, r, first);
    if (rc == FL_OK || rc == FL_ECANCELED || atomic_load(&env->stop_requested)) break;
    int64_t delay = 0;
    if (!may_restart(&conf->restart, &st, &delay)) break;
    atomic_fetch_add(&env->ckpt_stats.restarts, 1);
    fprintf(stderr, "flink: job '%s' failed (%s); restart %d in %lld ms\n", atomic_load(&env->job_name),
            env->errmsg, st.n, (long long)delay);
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
  atomic_store(&env->state, 2);
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
