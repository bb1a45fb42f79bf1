/*
 * Delivering input to an operator instance, and what operators call to emit and fail.
 *
 * A record, watermark, idleness change or end of input reaches an instance either from
 * a chained producer on the same worker (a function call) or from an inbound ring
 * (worker.c). The instance's event time is the minimum watermark over its active input
 * channels (Flink's status watermark valve): an idle channel does not hold it back, an
 * ended channel stays at its last watermark (+inf after a normal end). When it
 * advances, event-time timers up to it fire first, then the class's on_watermark, then
 * the watermark goes downstream.
 *
 * Failure: the first failure of the job wins (fl_job_fail); the failing instance takes
 * no more input (op->failed), and every worker drains what is in flight.
 */
#include <assert.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "runtime/job.h"
#include "util/clock.h"
#include "util/hash.h"

/* ---------------------------------------------------------------------------------- */
/* Failure reporting                                                                    */

void fl_job_fail(fl_job_t *job, int err, const char *msg) {
  pthread_mutex_lock(&job->err_lock);
  if (!job->err) {
    job->err = err ? err : FL_EUSER;
    snprintf(job->errmsg, sizeof job->errmsg, "%s", msg);
  }
  pthread_mutex_unlock(&job->err_lock);
  if (!atomic_exchange(&job->failing, 1)) fl_rt_wake_all(job);
}

int fl_op_fail(fl_op_t *op, int err, const char *fmt, ...) {
  char msg[768], full[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  snprintf(full, sizeof full, "operator '%s' (subtask %d of %d): %s", op->node->name, op->subtask,
           op->parallelism, msg);
  op->failed = op->blocked = true;
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

void fl_rt_op_check(fl_op_t *op, int rc) {
  if (rc >= 0) return;
  if (!op->failed) {
    if (op->pending_err)
      fl_op_user_failed(op, rc, "a user function");
    else
      fl_op_fail(op, rc, "%s (%s)", fl_strerror(rc), fl_err_name(rc));
  }
  op->failed = op->blocked = true;
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

void fl_rt_wake_all(fl_job_t *job) {
  for (int i = 0; i < job->P; i++) fl_worker_wake(&job->workers[i]);
}

/* ---------------------------------------------------------------------------------- */
/* Emitting                                                                             */

/* Delivers one record to an instance: from a chained producer (inlined into the emit
 * below) or from a channel. */
/* The key context of a record for a keyed operator (out of line: the chained
 * operators of a pipeline are mostly not keyed). */
static __attribute__((noinline)) void record_key(fl_op_t *op, const fl_input_t *li,
                                                 const fl_record_t *rec, int kg,
                                                 uint64_t key_hash) {
  if (!li->unkeyed) {
    if (kg < 0) {
      key_hash = fl_hash64_inline(rec->key, rec->key_len, 0);
      kg = (int)fl_key_group(key_hash, op->node->env->conf.max_parallelism);
    }
    fl_op_set_key(op, rec->key, rec->key_len, (uint16_t)kg, true, key_hash);
  } else {
    op->ctx.keyed = false;
    op->ctx.key_hashed = false;
    op->ctx.key = NULL;
    op->ctx.key_len = 0;
  }
}

static __attribute__((noinline)) void record_done(fl_op_t *op, int rc) {
  fl_rt_op_check(op, rc);
  if (op->ttl_every_record && !op->failed && op->ctx.keyed) fl_rt_ttl_sweep(op);
}

/* A record's arrival at op, on every path: false if op takes none (failed or
 * finished), else it is counted and its timestamp is the context's. */
static inline __attribute__((always_inline)) bool record_in(fl_op_t *op, const fl_record_t *rec) {
  if (__builtin_expect(op->blocked, 0)) return false;
  op->n_in++;
  op->ctx.ts = rec->timestamp;
  return true;
}

static inline void op_record(fl_op_t *op, int input, const fl_record_t *rec, int kg,
                             uint64_t key_hash) {
  if (!record_in(op, rec)) return;
  const fl_input_t *li = &op->node->inputs[input];
  if (op->node->keyed) record_key(op, li, rec, kg, key_hash);
  int rc = op->cls->process(op, li->side, rec);
  if (__builtin_expect(rc < 0 || op->ttl_every_record, 0)) record_done(op, rc);
}

static int hop_any(fl_op_t *op, const fl_record_t *rec);

/* Every target of an output (out of line, as chained_record below). */
static __attribute__((noinline)) int emit_to(fl_out_t *out, const fl_record_t *rec) {
  for (size_t i = 0; i < out->n; i++) {
    fl_target_t *t = &out->t[i];
    if (!t->op)
      fl_rt_ew_record(t->edge, rec);
    else if (t->op->hop != FL_HOP_PROCESS)
      hop_any(t->op, rec);
    else
      op_record(t->op, t->logical, rec, -1, 0);
  }
  return FL_OK;
}

/* A record to a chained operator, out of line so that fl_op_emit, which mostly ends in
 * a call of this or of the edge writer, needs no stack frame and tail-calls either. */
static __attribute__((noinline)) int chained_record(const fl_target_t *t, const fl_record_t *rec) {
  op_record(t->op, t->logical, rec, -1, 0);
  return FL_OK;
}

static __attribute__((noinline, cold)) void map_emitted(fl_op_t *op) {
  fl_op_fail(op, FL_EUSER,
             "map function emitted %zu records for one input; it must emit exactly one (use "
             "flat_map for any number)",
             op->ctx.emitted);
}

static int filter_hop(fl_op_t *op, const fl_record_t *rec);
static int map_hop(fl_op_t *op, const fl_record_t *rec);
static int call_hop(fl_op_t *op, const fl_record_t *rec);

static inline int op_emit(fl_op_t *op, const fl_record_t *rec) {
  for (;;) {
    op->n_out++;
    /* the common cases: one target, a chained operator or else an edge */
    fl_op_t *next = op->chain_next;
    if (!next) {
      if (__builtin_expect(!op->chain_edge, 0)) return emit_to(&op->out, rec);
      return fl_rt_ew_record(op->chain_edge, rec);
    }
    uint8_t hop = next->hop;
    if (hop != FL_HOP_FORWARD) {
      if (hop == FL_HOP_FILTER) return filter_hop(next, rec);
      if (hop == FL_HOP_CALL) return call_hop(next, rec);
      if (hop == FL_HOP_MAP) return map_hop(next, rec);
      return chained_record(op->out.t, rec);
    }
    /* An operator that forwards records (op.h): what its process would do, here, and
     * on to its target in this loop. */
    if (!record_in(next, rec)) return FL_OK;
    if (rec->timestamp > next->max_ts) next->max_ts = rec->timestamp;
    op = next;
  }
}

/* A record to a chained map, filter, flat_map, sink or process function (op.h's
 * fl_hop_t): the user's function called without the class's process and the checks
 * of a keyed input, one function per kind so that each keeps only what it needs
 * across the user's call. Always FL_OK, as chained_record: a failure fails op. */
static __attribute__((noinline, cold)) void hop_failed(fl_op_t *op, int rc) {
  fl_op_user_failed(op, rc, op->hop_what);
}

static __attribute__((noinline)) int call_hop(fl_op_t *op, const fl_record_t *rec) {
  if (!record_in(op, rec)) return FL_OK;
  int rc = op->hop_fn(&op->ctx, rec, *op->hop_arg);
  if (__builtin_expect(rc < 0, 0)) hop_failed(op, rc);
  return FL_OK;
}

static __attribute__((noinline)) int map_hop(fl_op_t *op, const fl_record_t *rec) {
  if (!record_in(op, rec)) return FL_OK;
  op->ctx.emitted = 0;
  int rc = op->hop_fn(&op->ctx, rec, *op->hop_arg);
  if (__builtin_expect(rc < 0, 0))
    hop_failed(op, rc);
  else if (__builtin_expect(op->ctx.emitted != 1, 0))
    map_emitted(op);
  return FL_OK;
}

static __attribute__((noinline)) int filter_hop(fl_op_t *op, const fl_record_t *rec) {
  if (!record_in(op, rec)) return FL_OK;
  int rc = op->hop_fn(&op->ctx, rec, *op->hop_arg);
  if (rc > 0) return op_emit(op, rec);
  if (__builtin_expect(rc < 0, 0)) hop_failed(op, rc);
  return FL_OK;
}

/* A forwarding operator (op.h) that is one of several targets. */
static __attribute__((noinline)) int forward_hop(fl_op_t *op, const fl_record_t *rec) {
  if (!record_in(op, rec)) return FL_OK;
  if (rec->timestamp > op->max_ts) op->max_ts = rec->timestamp;
  return op_emit(op, rec);
}

/* A record to an operator whose hop is not FL_HOP_PROCESS, from emit_to. */
static int hop_any(fl_op_t *op, const fl_record_t *rec) {
  switch (op->hop) {
  case FL_HOP_FILTER: return filter_hop(op, rec);
  case FL_HOP_CALL: return call_hop(op, rec);
  case FL_HOP_MAP: return map_hop(op, rec);
  default: return forward_hop(op, rec);
  }
}

int fl_op_emit(fl_op_t *op, const fl_record_t *rec) { return op_emit(op, rec); }

/* flink.h's emit calls live here so that the emit above is inlined into them: the
 * per-record path of every user function. */
int fl_emit(fl_context_t *ctx, const void *key, size_t key_len, const void *value, size_t value_len,
            int64_t ts) {
  if (!ctx || (key_len && !key) || (value_len && !value)) return FL_EINVAL;
  /* The record in the instance rather than on the stack, so that the emit needs no
   * frame and ends in a tail call: an instance's emits never overlap (what its targets
   * do with a record ends before the emit returns). */
  fl_op_t *op = ctx->op;
  fl_record_t *r = &op->emit_rec;
  *r = (fl_record_t){key, key_len, value, value_len, ts};
  ctx->emitted++;
  return op_emit(op, r);
}

int fl_emit_record(fl_context_t *ctx, const fl_record_t *rec) {
  if (!ctx || !rec) return FL_EINVAL;
  return fl_emit(ctx, rec->key, rec->key_len, rec->value, rec->value_len, rec->timestamp);
}

int fl_op_emit_side(fl_op_t *op, const fl_output_tag_t *tag, const fl_record_t *rec) {
  if (!tag || tag->id >= op->node->env->n_tags) return FL_EINVAL;
  return emit_to(&op->side[tag->id], rec);
}

static void control_to(fl_out_t *out, fl_entry_type_t type, int64_t ts) {
  for (size_t i = 0; i < out->n; i++) {
    fl_target_t *t = &out->t[i];
    if (!t->op) {
      fl_rt_ew_control(t->edge, type, ts);
      continue;
    }
    switch (type) {
    case FL_E_WATERMARK: fl_rt_op_input_watermark(t->op, (size_t)t->input, ts); break;
    case FL_E_IDLE: fl_rt_op_input_idle(t->op, (size_t)t->input, true); break;
    case FL_E_ACTIVE: fl_rt_op_input_idle(t->op, (size_t)t->input, false); break;
    case FL_E_END: fl_rt_op_input_end(t->op, (size_t)t->input); break;
    case FL_E_BARRIER: fl_rt_op_input_barrier(t->op, (size_t)t->input, ts); break;
    default: break;
    }
  }
}

void fl_rt_control_all(fl_op_t *op, fl_entry_type_t type, int64_t ts) {
  control_to(&op->out, type, ts);
  for (size_t i = 0; i < op->node->env->n_tags; i++) control_to(&op->side[i], type, ts);
}

int fl_op_emit_watermark(fl_op_t *op, int64_t wm) {
  atomic_store_explicit(&op->m->output_watermark, wm, memory_order_relaxed);
  fl_rt_control_all(op, FL_E_WATERMARK, wm);
  return FL_OK;
}

int fl_op_emit_idle(fl_op_t *op, bool idle) {
  if (op->idle_out == idle) return FL_OK;
  op->idle_out = idle;
  fl_rt_control_all(op, idle ? FL_E_IDLE : FL_E_ACTIVE, 0);
  return FL_OK;
}

/* Latency markers (Flink's LatencyMarker): a source sends one every
 * metrics.latency.interval; each operator it reaches records the time since it was made
 * and passes it on through its main output, to one receiver of a partitioned edge. They
 * travel in the batches, so they measure the time records spend queued, too. */
void fl_rt_latency_forward(fl_op_t *op, int src, int64_t made_ns) {
  for (size_t i = 0; i < op->out.n; i++) {
    fl_target_t *t = &op->out.t[i];
    if (t->op)
      fl_rt_op_latency(t->op, src, made_ns);
    else
      fl_rt_ew_latency(t->edge, src, made_ns);
  }
}

void fl_rt_op_latency(fl_op_t *op, int src, int64_t made_ns) {
  if (op->failed || op->finished) return;
  fl_metrics_t *m = op->m;
  if (m->latency && src >= 0 && src < m->n_latency) {
    int64_t d = fl_mono_ns() - made_ns;
    fl_hist_update(&m->latency[src], d < 0 ? 0 : d);
  }
  fl_rt_latency_forward(op, src, made_ns);
}

/* ---------------------------------------------------------------------------------- */
/* Input                                                                                */

void fl_rt_op_record(fl_op_t *op, int input, const fl_record_t *rec, int kg, uint64_t key_hash) {
  op_record(op, input, rec, kg, key_hash);
}

void fl_rt_op_records(fl_op_t *op, int input, const fl_batch_t *b, uint32_t from, uint32_t to) {
  if (op->failed || op->finished) return;
  const fl_input_t *li = &op->node->inputs[input];
  bool keyed = op->node->keyed && !li->unkeyed;
  if (keyed && op->cls->process_run && !op->ttl_every_record) {
    op->n_in += to - from;
    fl_rt_op_check(op, op->cls->process_run(op, li->side, b, from, to));
    return;
  }
  for (uint32_t i = from; i < to && !op->failed; i++) {
    const fl_entry_t *e = &b->e[i];
    fl_record_t r = {b->data + e->off, e->key_len, b->data + e->off + e->key_len, e->value_len,
                     e->ts};
    fl_rt_op_record(op, input, &r, op->node->keyed ? e->kg : -1, e->hash);
  }
}

void fl_rt_fire_timers(fl_op_t *op, fl_time_domain_t d, int64_t upto) {
  fl_timer_t t;
  int got;
  while (!op->failed && (got = fl_timers_pop(op->timers, d, upto, &t)) != 0) {
    if (got < 0) {
      fl_op_fail(op, got, "firing timers failed: %s", fl_timers_errmsg(op->timers));
      return;
    }
    /* The service's view of the key lives only until its next call, and on_timer may
     * register timers: keep a copy. */
    op->timer_key.len = 0;
    if (fl_buf_append(&op->timer_key, t.key, t.key_len) ||
        fl_buf_append(&op->timer_key, t.ns, t.ns_len)) {
      fl_op_fail(op, FL_ENOMEM, "out of memory firing a timer");
      return;
    }
    fl_op_set_key(op, op->timer_key.data, t.key_len, t.kg, false, 0);
    op->ctx.ns = op->timer_key.data + t.key_len;
    op->ctx.ns_len = t.ns_len;
    op->ctx.ts = t.ts;
    fl_timer_t copy = t;
    copy.key = op->ctx.key;
    copy.ns = op->ctx.ns;
    op->n_fired++;
    atomic_store_explicit(&op->m->fired_timers, op->n_fired, memory_order_relaxed);
    fl_rt_op_check(op, op->cls->on_timer ? op->cls->on_timer(op, d, &copy) : 0);
  }
}

static void op_advance(fl_op_t *op, int64_t wm) {
  op->wm = wm;
  atomic_store_explicit(&op->m->input_watermark, wm, memory_order_relaxed);
  if (op->timers) fl_rt_fire_timers(op, FL_EVENT_TIME, wm);
  if (op->failed) return;
  int rc = op->cls->on_watermark ? op->cls->on_watermark(op, wm) : 0;
  fl_rt_op_check(op, rc);
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
  if (!(op->cls->flags & FL_OP_OWN_IDLENESS) && op->n_ended < op->n_ins)
    fl_op_emit_idle(op, !any_active);
  if (!any_active) return;
  if (min != FL_TS_NONE && (op->wm == FL_TS_NONE || min > op->wm)) op_advance(op, min);
}

void fl_rt_op_input_watermark(fl_op_t *op, size_t chan, int64_t wm) {
  if (op->failed || op->finished) return;
  assert(chan < op->n_ins);
  fl_in_chan_t *ch = &op->ins[chan];
  bool was_idle = ch->idle;
  ch->idle = false;
  if (ch->wm != FL_TS_NONE && wm <= ch->wm && !was_idle) return;
  if (ch->wm == FL_TS_NONE || wm > ch->wm) ch->wm = wm;
  op_recompute(op);
}

void fl_rt_op_input_idle(fl_op_t *op, size_t chan, bool idle) {
  if (op->failed || op->finished) return;
  assert(chan < op->n_ins);
  op->ins[chan].idle = idle;
  op_recompute(op);
}

void fl_rt_op_finish(fl_op_t *op) {
  fl_job_t *job = op->worker->job;
  if (atomic_load(&job->failing) || op->failed) return;
  if (op->wm != FL_TS_MAX) op_advance(op, FL_TS_MAX);
  if (op->timers && !op->failed) fl_rt_fire_timers(op, FL_PROCESSING_TIME, FL_TS_MAX);
  if (op->cls->end_input && !op->failed) fl_rt_op_check(op, op->cls->end_input(op));
  if (op->failed) return;
  if (job->coord && job->env->conf.ckpt_interval_ms > 0) {
    /* checkpoints after this one hold its final state (savepoints without periodic
     * checkpoints cannot: they fail once an operator ended) */
    fl_rt_op_snapshot(op, 0);
    if (op->failed) return;
    op->has_final = true;
  } else if (op->n_in == 0 && (!op->is_source || op->inert)) {
    op->has_final = true; /* never held anything: a dead instance (its final state is empty) */
  }
  op->finished = op->blocked = true;
  op->worker->n_unfinished--;
  fl_rt_control_all(op, FL_E_END, 0);
}

void fl_rt_op_input_end(fl_op_t *op, size_t chan) {
  if (op->failed || op->finished) return;
  assert(chan < op->n_ins);
  fl_in_chan_t *ch = &op->ins[chan];
  if (ch->ended) return;
  ch->ended = true;
  op->n_ended++;
  if (op->ckpt_aligning) fl_rt_op_check_aligned(op);
  if (op->failed) return;
  if (op->n_ended == op->n_ins)
    fl_rt_op_finish(op);
  else
    op_recompute(op);
}
