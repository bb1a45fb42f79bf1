/*
 * The loop of one worker thread: an epoll loop that owns one subtask of every operator.
 *
 * One iteration, in this order (worker_main):
 *   control     a stop request fails the job with ECANCELED; when the job is failing,
 *               partly filled batches are shipped once (the drain);
 *   overflow    batches that did not fit into a full ring are shipped if they fit now;
 *   signals     checkpoint barriers are injected at the sources when the coordinator
 *               triggered one; operators hear of completed and aborted checkpoints;
 *   inbound     rings are drained (up to BATCHES_PER_RING batches each), skipping a
 *               ring whose operator could reach an edge that has overflow
 *               (backpressure) or that a barrier holds back (alignment);
 *   sources     each source is polled for one budget, with the same rules;
 *   timers      due processing-time timers fire and periodic ticks run (watermark
 *               intervals, idleness);
 *   ack         the injected checkpoint is acknowledged once every operator took it;
 *   flush       partly filled batches are shipped every FLUSH_INTERVAL_NS even when
 *               busy (Flink's buffer timeout);
 *   done?       the worker leaves when every operator ended and everything is shipped
 *               (and, with checkpoints, the final checkpoint completed), or when the
 *               failing job has nothing in flight anywhere;
 *   sleep       if nothing happened: ship partly filled batches (low load, low
 *               latency), else sleep in epoll until a ring, an fd or a deadline needs
 *               this worker.
 * Time (Flink's busyTimeMsPerSecond, backPressuredTimeMsPerSecond, idleTimeMsPerSecond)
 * is measured per task (the chain a ring or a source feeds, op->task): the work of the
 * inbound, sources and timers phases is timed around each batch, budget or timer run
 * and added to the task that did it; an iteration in which a task had input but an
 * output edge with overflow held it back (or a source could not be polled for that
 * reason) counts for that task as back-pressured for the iteration's length, sleep
 * included, less its own work. The rest of the wall time is idle. Once a second the
 * worker samples its counters and times and publishes the rates and times per second
 * over the last few samples (metrics_sample).
 * Because the graph is acyclic, the last operators (sinks) never wait on a ring, so
 * backpressure cannot deadlock: a worker waiting on one edge keeps draining the
 * channels of operators further downstream.
 *
 * End of input: a source that ends emits watermark +inf then END on every output; an
 * operator whose every input channel ended fires its remaining timers, calls
 * end_input, and forwards END (op.c).
 *
 * Failure and stop: the job is marked failing; sources stop, the failing operator takes
 * no more input, and every worker keeps processing what is already in flight (no
 * watermark +inf is invented) until no batch is in flight anywhere. Then sinks
 * (FL_OP_FLUSH_ON_FAILURE) are flushed, so nothing emitted before the failure is lost.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "runtime/coord.h"
#include "runtime/job.h"
#include "state/cache.h"
#include "util/clock.h"

#define MAX_SLEEP_MS 50
#define BATCHES_PER_RING 4
/* A busy loop still ships partly filled batches this often (Flink's buffer timeout). */
#define FLUSH_INTERVAL_NS 5000000LL

static bool job_failing(const fl_worker_t *w) { return atomic_load(&w->job->failing); }

static bool flush_edges(fl_worker_t *w) {
  bool any = false;
  for (size_t i = 0; i < w->n_edges; i++) any |= fl_rt_ew_flush(w->edges[i]);
  return any;
}

static bool has_overflow(const fl_worker_t *w) {
  for (size_t i = 0; i < w->n_edges; i++)
    if (w->edges[i]->n_overflow) return true;
  return false;
}

static bool has_open(const fl_worker_t *w) {
  for (size_t i = 0; i < w->n_edges; i++)
    for (int t = 0; t < w->edges[i]->n; t++)
      if (w->edges[i]->open[t] && w->edges[i]->open[t]->n) return true;
  return false;
}

/* ---------------------------------------------------------------------------------- */
/* Opening and closing the operators                                                    */

static void open_ops(fl_worker_t *w) {
  fl_env_t *env = w->job->env;
  for (size_t i = 0; i < env->n_nodes; i++) {
    fl_op_t *op = w->ops[i];
    int rc = op->cls->open ? op->cls->open(op) : 0;
    op->opened = true;
    if (op->node->keyed) op->hop = FL_HOP_PROCESS; /* its records need their key (op.h) */
    if (rc < 0) {
      fl_rt_op_check(op, rc);
      return;
    }
    if (w->job->restore) {
      fl_rt_restore_op(op);
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
      if (op->opened && !op->finished && (op->cls->flags & FL_OP_FLUSH_ON_FAILURE) &&
          op->cls->end_input)
        fl_rt_op_check(op, op->cls->end_input(op));
    }
  }
  for (size_t i = 0; i < env->n_nodes; i++) {
    fl_op_t *op = w->ops[i];
    if (op->opened && op->cls->close) op->cls->close(op);
    op->opened = false;
  }
}

/* ---------------------------------------------------------------------------------- */
/* Phases                                                                               */

/* A stop request, and the drain of a failing job (once). */
static void control(fl_worker_t *w) {
  fl_job_t *job = w->job;
  if (atomic_load(&job->env->stop_requested) && !job_failing(w))
    fl_job_fail(job, FL_ECANCELED, "the job was stopped");
  if (job_failing(w) && !w->drained) {
    flush_edges(w);
    w->drained = true;
    atomic_fetch_add(&job->drained_workers, 1);
    fl_rt_wake_all(job);
  }
}

static bool ship_overflow(fl_worker_t *w) {
  bool progress = false;
  for (size_t i = 0; i < w->n_edges; i++) progress |= fl_rt_ew_retry(w->edges[i]);
  return progress;
}

/* Barriers to inject, completions and aborts to tell. */
static bool checkpoint_signals(fl_worker_t *w) {
  fl_job_t *job = w->job;
  if (!job->coord) return false;
  bool progress = false;
  int64_t trig = atomic_load(&job->ckpt_trigger);
  if (trig > w->ckpt_injected && !job_failing(w)) {
    fl_rt_inject_barriers(w, trig);
    progress = true;
  }
  fl_rt_notify_ops(w);
  return progress;
}

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
      /* the run of records up to the next control entry, in one call (past the
       * batch's last control entry, that is its end) */
      uint32_t from = in->pos - 1;
      if (in->pos >= b->ctrl_end)
        in->pos = b->n;
      else
        while (in->pos < b->n && b->e[in->pos].type == FL_E_RECORD) in->pos++;
      fl_rt_op_records(op, in->input, b, from, in->pos);
      break;
    }
    case FL_E_WATERMARK: fl_rt_op_input_watermark(op, in->chan, e->ts); break;
    case FL_E_IDLE: fl_rt_op_input_idle(op, in->chan, true); break;
    case FL_E_ACTIVE: fl_rt_op_input_idle(op, in->chan, false); break;
    case FL_E_END: fl_rt_op_input_end(op, in->chan); break;
    case FL_E_LATENCY: fl_rt_op_latency(op, e->kg, e->ts); break;
    case FL_E_BARRIER:
      fl_rt_op_input_barrier(op, in->chan, e->ts);
      if (!failing && fl_rt_chain_aligning(op)) {
        in->blocked = e->ts;
        return false;
      }
      break;
    }
  }
  return true;
}

static bool drain_inbound(fl_worker_t *w) {
  fl_job_t *job = w->job;
  bool progress = false;
  for (size_t i = 0; i < w->n_in; i++) {
    fl_inbound_t *in = &w->in[i];
    if (in->blocked) {
      if (!job_failing(w) && fl_rt_chain_aligning(in->op)) continue;
      in->blocked = 0;
    }
    int64_t t0 = 0;
    for (int k = 0; k < BATCHES_PER_RING; k++) {
      if (fl_rt_guards_blocked(in->guards, in->n_guards)) {
        if (in->cur || !fl_ring_empty(in->ring)) in->op->task->iter_bp = true;
        break;
      }
      if (!in->cur) {
        bool was_full = false;
        in->cur = fl_ring_pop(in->ring, &was_full);
        if (!in->cur) break;
        in->pos = 0;
        if (atomic_load(&in->from->waiting_space)) fl_worker_wake(in->from);
      }
      if (!t0) t0 = fl_mono_ns();
      progress = true;
      if (!process_batch(in)) break;
      fl_rt_batch_done(w, in->cur);
      in->cur = NULL;
      if (job_failing(w)) flush_edges(w); /* before the count can reach 0 */
      if (atomic_fetch_sub(&job->inflight, 1) == 1 && job_failing(w)) fl_rt_wake_all(job);
    }
    if (t0) in->op->task->iter_busy_ns += fl_mono_ns() - t0;
    if (!in->blocked && (in->cur || !fl_ring_empty(in->ring))) in->op->task->iter_ready = true;
  }
  return progress;
}

/* The processing time of this iteration, also given to the backends (TTL cleanup). */
static int64_t update_time(fl_worker_t *w) {
  fl_env_t *env = w->job->env;
  int64_t now = fl_env_now(env);
  for (size_t i = 0; i < env->n_nodes; i++) {
    fl_op_t *op = w->ops[i];
    if (op->kv->ops->set_time) op->kv->ops->set_time(op->kv->self, now);
  }
  return now;
}

/* Runs one budget of a source. True if it did something. */
static bool poll_source(fl_worker_t *w, fl_op_t *op, int64_t now) {
  if (op->src_waiting) return false;
  if (op->src_retry_at && now < op->src_retry_at) return false;
  op->src_retry_at = 0;
  op->ctx.source_budget = w->job->env->conf.batch_size;
  op->ctx.wait_fd = -1;
  op->ctx.emitted = 0;
  op->ctx.ts = FL_TS_NONE;
  int64_t t0 = fl_mono_ns();
  if (w->latency_interval_ns && t0 >= op->next_latency_ns) {
    /* before this budget's records: the marker queues behind the earlier ones */
    op->next_latency_ns = t0 + w->latency_interval_ns;
    fl_rt_latency_forward(op, op->latency_src, t0);
  }
  int rc = op->cls->poll(op);
  op->task->iter_busy_ns += fl_mono_ns() - t0;
  if (rc == FL_SOURCE_MORE) op->task->iter_ready = true;
  if (op->failed) return true;
  if (rc < 0) {
    fl_rt_op_check(op, rc);
    return true;
  }
  if (rc == FL_SOURCE_END) {
    if (!op->finished) fl_rt_op_finish(op);
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

static bool poll_sources(fl_worker_t *w, int64_t now) {
  bool progress = false;
  w->poll_again = false;
  if (job_failing(w)) return false;
  for (size_t i = 0; i < w->n_sources; i++) {
    fl_op_t *op = w->sources[i];
    if (op->finished || op->failed) continue;
    if (fl_rt_guards_blocked(op->guards, op->n_guards)) {
      op->task->iter_bp = true;
      continue;
    }
    if (fl_rt_chain_aligning(op)) continue;
    progress |= poll_source(w, op, now);
  }
  return progress;
}

static bool timers_and_ticks(fl_worker_t *w, int64_t now) {
  fl_env_t *env = w->job->env;
  bool progress = false;
  for (size_t i = 0; i < env->n_nodes && !job_failing(w); i++) {
    fl_op_t *op = w->ops[i];
    if (op->finished || op->failed) continue;
    int64_t ts;
    bool due = op->timers && fl_timers_peek(op->timers, FL_PROCESSING_TIME, &ts) && ts <= now;
    if (!due && !op->cls->on_tick) continue;
    int64_t t0 = fl_mono_ns();
    if (due) {
      fl_rt_fire_timers(op, FL_PROCESSING_TIME, now);
      progress = true;
    }
    if (op->cls->on_tick) fl_rt_op_check(op, op->cls->on_tick(op, now));
    op->task->iter_busy_ns += fl_mono_ns() - t0;
  }
  return progress;
}

static void flush_if_due(fl_worker_t *w) {
  int64_t mono = fl_mono_ns();
  if (mono - w->last_flush_ns >= FLUSH_INTERVAL_NS) {
    w->last_flush_ns = mono;
    flush_edges(w);
  }
}

/* Whether the worker may leave the loop. */
static bool worker_done(fl_worker_t *w) {
  fl_job_t *job = w->job;
  fl_env_t *env = job->env;
  bool failing = job_failing(w);
  if (!failing && w->n_unfinished == 0 && !has_overflow(w) && !has_open(w)) {
    /* With checkpoints, sinks commit what they wrote last only when a checkpoint taken
     * after every operator ended completes (Flink's final checkpoint): stay until the
     * coordinator says the job is done. */
    if (!job->coord) return true;
    if (!atomic_load(&w->all_finished)) {
      atomic_store(&w->all_finished, 1);
      fl_coord_wake(job);
    }
    int64_t fd = atomic_load(&job->final_done); /* -1: done without a final checkpoint */
    fl_rt_notify_ops(w);
    if (fd < 0) {
      /* Without checkpoints the job's successful end is the commit point: tell sinks
       * once every worker's operators ended (checkpoint id INT64_MAX). */
      for (size_t i = 0; i < env->n_nodes; i++) {
        fl_op_t *op = w->ops[i];
        if (op->opened && op->cls->notify && !op->failed)
          fl_rt_op_check(op, op->cls->notify(op, INT64_MAX, true));
      }
      return true;
    }
    if (fd && w->ckpt_completed >= fd) return true;
  }
  return failing && w->drained && atomic_load(&job->drained_workers) == job->P &&
         atomic_load(&job->inflight) == 0;
}

/* The earliest processing-time deadline of this worker (timers, source retries). */
static int64_t proc_deadline(const fl_worker_t *w) {
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

/* Work that arrived while the worker was deciding to sleep. */
static bool work_visible(const fl_worker_t *w) {
  for (size_t i = 0; i < w->n_in; i++) {
    const fl_inbound_t *in = &w->in[i];
    if (in->blocked && fl_rt_chain_aligning(in->op)) continue;
    if (!in->op->finished && (in->cur || !fl_ring_empty(in->ring)) &&
        !fl_rt_guards_blocked(in->guards, in->n_guards))
      return true;
  }
  fl_job_t *job = w->job;
  if (job->coord && (atomic_load(&job->ckpt_trigger) > w->ckpt_injected ||
                     (atomic_load(&job->final_done) && w->n_unfinished == 0) ||
                     atomic_load(&job->ckpt_complete) > w->ckpt_completed ||
                     atomic_load(&job->ckpt_abort) > w->ckpt_aborted))
    return true;
  for (size_t i = 0; i < w->n_edges; i++)
    if (fl_rt_ew_can_retry(w->edges[i])) return true;
  return false;
}

static void worker_sleep(fl_worker_t *w, int64_t now) {
  fl_job_t *job = w->job;
  int timeout = w->poll_again ? 0 : MAX_SLEEP_MS;
  if (!job_failing(w)) {
    int64_t d = proc_deadline(w);
    if (d != FL_TS_MAX) {
      int64_t ms = d - now;
      if (ms < 0) ms = 0;
      if (ms < timeout) timeout = (int)ms;
    }
    if (w->has_ticks) {
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

/* ---------------------------------------------------------------------------------- */
/* Metrics                                                                              */

/* Ends the loop iteration that started at w->iter_start_ns. Each task adds its work. A
 * task that a full output held back adds the rest of the iteration as back-pressured; a
 * task that had more to do than its turn allowed adds the time the thread spent in the
 * tasks it feeds on this worker (the turns they took are what held it back; time spent
 * in unrelated tasks is not back pressure and counts as idle). */
static void account_iteration(fl_worker_t *w, int64_t now_ns) {
  int64_t len = now_ns - w->iter_start_ns;
  fl_env_t *env = w->job->env;
  for (size_t i = 0; i < env->n_nodes; i++) {
    fl_op_t *op = w->ops[i];
    if (op->task != op) continue;
    int64_t busy = op->iter_busy_ns < len ? op->iter_busy_ns : len, held = 0;
    if (op->iter_bp) {
      held = len - busy;
    } else if (op->iter_ready) {
      for (size_t k = 0; k < op->n_downstream; k++) held += op->downstream[k]->iter_busy_ns;
      if (held > len - busy) held = len - busy;
    }
    op->busy_ns += busy;
    op->bp_ns += held;
    bool bp = held > 0;
    if (bp != atomic_load_explicit(&op->m->backpressured, memory_order_relaxed))
      atomic_store_explicit(&op->m->backpressured, bp, memory_order_relaxed);
  }
  for (size_t i = 0; i < env->n_nodes; i++) {
    fl_op_t *op = w->ops[i];
    op->iter_busy_ns = 0;
    op->iter_bp = op->iter_ready = false;
  }
  w->iter_start_ns = now_ns;
}

static double per_second(double delta, int64_t dt_ns) { return delta * 1e9 / (double)dt_ns; }

/* Samples every instance's counters and its task's times, and publishes the views over
 * the oldest sample kept (up to FL_OP_SAMPLES - 1 intervals back). */
static void metrics_sample(fl_worker_t *w, int64_t now_ns) {
  fl_env_t *env = w->job->env;
  int64_t wall = fl_wall_ms();
  bool want_kv = false;
  for (int k = 0; k < FL_KV_STAT_N; k++) want_kv |= env->conf.kv_stats[k];
  for (size_t i = 0; i < env->n_nodes; i++) {
    fl_op_t *op = w->ops[i];
    fl_metrics_t *m = op->m;
    struct fl_op_sample s = {now_ns,   op->task->busy_ns, op->task->bp_ns,
                             op->n_in, op->n_out,         op->n_fired};
    int oldest = op->n_samples < FL_OP_SAMPLES ? 0 : op->sample_next;
    op->samples[op->sample_next] = s;
    op->sample_next = (op->sample_next + 1) % FL_OP_SAMPLES;
    if (op->n_samples < FL_OP_SAMPLES) op->n_samples++;
    atomic_store_explicit(&m->busy_ns, s.busy_ns, memory_order_relaxed);
    atomic_store_explicit(&m->backpressured_ns, s.bp_ns, memory_order_relaxed);
    if (want_kv && op->kv->ops->version >= 2 && op->kv->ops->stats) {
      int64_t v[FL_KV_STAT_N];
      for (int k = 0; k < FL_KV_STAT_N; k++) v[k] = -1;
      if (op->kv->ops->stats(op->kv->self, env->conf.kv_stats, v) == 0)
        for (int k = 0; k < FL_KV_STAT_N; k++)
          atomic_store_explicit(&m->kv_stats[k], v[k], memory_order_relaxed);
    }
    if (op->n_samples < 2) continue;
    const struct fl_op_sample *o = &op->samples[oldest];
    int64_t dt = s.t_ns - o->t_ns;
    if (dt <= 0) continue;
    atomic_store_explicit(&m->records_in_per_s, per_second((double)(s.in - o->in), dt),
                          memory_order_relaxed);
    atomic_store_explicit(&m->records_out_per_s, per_second((double)(s.out - o->out), dt),
                          memory_order_relaxed);
    atomic_store_explicit(&m->fired_timers_per_s, per_second((double)(s.fired - o->fired), dt),
                          memory_order_relaxed);
    double busy = per_second((double)(s.busy_ns - o->busy_ns), dt) / 1e6;
    double bp = per_second((double)(s.bp_ns - o->bp_ns), dt) / 1e6;
    if (busy > 1000) busy = 1000;
    if (bp > 1000 - busy) bp = 1000 - busy;
    atomic_store_explicit(&m->busy_ms_per_s, busy, memory_order_relaxed);
    atomic_store_explicit(&m->backpressured_ms_per_s, bp, memory_order_relaxed);
    atomic_store_explicit(&m->idle_ms_per_s, 1000 - busy - bp, memory_order_relaxed);
    atomic_store_explicit(&m->view_updated_ms, wall, memory_order_relaxed);
  }
}

/* Publishes the record counters, which the per-record paths only count (op.c): at the
 * start of every loop iteration, before the worker sleeps and when it leaves, so that
 * readers see them at most one busy iteration late. */
static void publish_counts(fl_worker_t *w) {
  fl_env_t *env = w->job->env;
  for (size_t i = 0; i < env->n_nodes; i++) {
    fl_op_t *op = w->ops[i];
    atomic_store_explicit(&op->m->records_in, op->n_in, memory_order_relaxed);
    atomic_store_explicit(&op->m->records_out, op->n_out, memory_order_relaxed);
  }
}

static void metrics_tick(fl_worker_t *w) {
  publish_counts(w);
  int64_t now = fl_mono_ns();
  account_iteration(w, now);
  if (now >= w->next_sample_ns) {
    metrics_sample(w, now);
    w->next_sample_ns = now + FL_OP_SAMPLE_NS;
  }
}

void *fl_rt_worker_main(void *arg) {
  fl_worker_t *w = arg;
  fl_job_t *job = w->job;
  open_ops(w);
  w->iter_start_ns = fl_mono_ns();
  metrics_sample(w, w->iter_start_ns);
  w->next_sample_ns = w->iter_start_ns + FL_OP_SAMPLE_NS;
  for (;;) {
    metrics_tick(w);
    control(w);
    bool progress = ship_overflow(w);
    progress |= checkpoint_signals(w);
    progress |= drain_inbound(w);
    int64_t now = update_time(w);
    progress |= poll_sources(w, now);
    progress |= timers_and_ticks(w, now);
    if (job->coord && w->ckpt_injected > w->ckpt_acked) fl_rt_maybe_ack(w);
    flush_if_due(w);
    if (worker_done(w)) break;
    if (!progress && !flush_edges(w)) {
      /* nothing else to do: the state cache writes ahead of the next barrier, a batch
       * at a time, looking for work between batches */
      if (fl_kv_cache_write_ahead_idle(w->cache)) continue;
      publish_counts(w);
      worker_sleep(w, now);
    }
  }
  if (!w->drained) {
    /* Ended normally: nothing of ours is in flight. Failing workers wait for this. */
    w->drained = true;
    atomic_fetch_add(&job->drained_workers, 1);
    fl_rt_wake_all(job);
  }
  metrics_tick(w);
  metrics_sample(w, w->iter_start_ns);
  close_ops(w, job_failing(w));
  publish_counts(w); /* what closing operators emitted */
  return NULL;
}
