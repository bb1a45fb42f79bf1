/*
 * The physical plan: every node runs on every worker (slot sharing). A forward input is
 * a function call from the producer's instance to the consumer's instance on the same
 * worker (a chain). A partitioned input (keyBy, rebalance, broadcast) is an edge: on
 * each sending worker an edge writer with one SPSC ring per receiving worker.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "checkpoint/store.h"
#include "runtime/coord.h"
#include "runtime/job.h"
#include "runtime/restore.h"
#include "state/cache.h"
#include "state/rocksdb.h"
#include "util/clock.h"
#include "util/fs.h"
#include "util/hash.h"
#include "util/vec.h"

static void log_line(const char *line, void *arg) { fl_env_log(arg, FL_LOG_INFO, "%s", line); }

static int add_target(fl_out_t *out, fl_target_t t) {
  return FL_VEC_PUSH(out->t, out->n, out->cap, t);
}

static fl_out_t *out_of(fl_op_t *op, const fl_output_tag_t *tag) {
  return tag ? &op->side[tag->id] : &op->out;
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
  free(op->downstream);
  fl_buf_free(&op->timer_key);
  fl_ckpt_out_discard(op->ckpt_out);
  free(op->final_path);
  fl_kv_destroy(&op->own_kv);
  free(op->native_dir);
  free(op->native_final);
  free(op);
}

/* The instance of node on worker w: 0, or an error with msg saying why. */
static int op_new(fl_worker_t *w, fl_node_t *node, fl_op_t **out, char *msg, size_t size) {
  fl_env_t *env = w->job->env;
  fl_op_t *op = calloc(1, sizeof *op);
  *out = NULL;
  if (!op) goto nomem;
  op->cls = node->cls;
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
  op->is_source = (op->cls->flags & FL_OP_SOURCE) != 0;
  fl_buf_init(&op->timer_key);
  op->side = calloc(env->n_tags ? env->n_tags : 1, sizeof *op->side);
  for (size_t i = 0; i < node->n_inputs; i++)
    op->n_ins += node->inputs[i].part == FL_PART_FORWARD ? 1 : (size_t)w->job->P;
  op->ins = calloc(op->n_ins ? op->n_ins : 1, sizeof *op->ins);
  if (!op->side || !op->ins) goto nomem;
  for (size_t c = 0; c < op->n_ins; c++) op->ins[c].wm = FL_TS_NONE;
  if (node->keyed) {
    fl_key_group_range(w->index, w->job->P, env->conf.max_parallelism, &op->kg_first,
                       &op->kg_count);
    /* timers kept in RocksDB are made with the operator's store, below */
    bool heap_timers = !(env->conf.rocksdb && env->conf.rocksdb_timers);
    if (heap_timers) op->timers = fl_timers_new(op->kg_first, op->kg_count);
    op->desc_tables = calloc(env->n_descs ? env->n_descs : 1, sizeof *op->desc_tables);
    op->desc_cleanup = calloc(env->n_descs ? env->n_descs : 1, sizeof *op->desc_cleanup);
    if ((heap_timers && !op->timers) || !op->desc_tables || !op->desc_cleanup) goto nomem;
    for (size_t i = 0; i < env->n_descs; i++) {
      const struct fl_state_desc *d = env->descs[i];
      op->ttl_every_record |=
          d->has_ttl && d->ttl.cleanup_every_record && d->ttl.incremental_cleanup_size > 0;
    }
  }
  op->kv = &w->kv;
  if (node->keyed && env->conf.rocksdb) {
    /* RocksDB: one store per keyed operator subtask (Flink's layout), so each can be
     * copied natively at its own barrier for incremental checkpoints */
    static _Atomic uint64_t store_seq;
    char dir[4300], err[900];
    snprintf(dir, sizeof dir, "%s/worker-%d/op-%u", w->job->work.path, w->index, node->id);
    int rc = fl_kv_rocksdb_new(w->job->rocks_shared, dir, NULL, &op->own_kv, err, sizeof err);
    if (rc) {
      snprintf(msg, size, "cannot open the RocksDB state of operator '%s': %s", node->name, err);
      op_free(op);
      return rc;
    }
    op->kv = &op->own_kv;
    if (env->conf.rocksdb_timers &&
        !(op->timers =
              fl_timers_new_rocksdb(&op->own_kv, op->kg_first, op->kg_count, 0, err, sizeof err))) {
      snprintf(msg, size, "cannot keep the timers of operator '%s' in RocksDB: %s", node->name,
               err);
      op_free(op);
      return FL_EIO;
    }
    /* the worker's state cache in front of the store (the timers keep to the store) */
    fl_kv_t store = op->own_kv;
    if (w->cache && fl_kv_cache_wrap(w->cache, &store, &op->own_kv)) goto nomem;
    op->store_id = ((uint64_t)getpid() << 40) ^ (uint64_t)fl_mono_ns() ^
                   (atomic_fetch_add(&store_seq, 1) << 20);
  }
  op->worker_scratch = w->scratch;
  *out = op;
  return FL_OK;
nomem:
  if (op) op_free(op);
  snprintf(msg, size, "out of memory planning the job");
  return FL_ENOMEM;
}

/* Edge writers reachable from op through chained outputs (main and side). */
static int collect_guards(fl_op_t *op, fl_edge_writer_t ***g, size_t *n, size_t *cap) {
  fl_env_t *env = op->node->env;
  for (size_t s = 0; s <= env->n_tags; s++) {
    fl_out_t *out = s == 0 ? &op->out : &op->side[s - 1];
    for (size_t i = 0; i < out->n; i++) {
      fl_target_t *t = &out->t[i];
      if (t->op) {
        if (collect_guards(t->op, g, n, cap)) return FL_ENOMEM;
        continue;
      }
      bool seen = false;
      for (size_t k = 0; k < *n; k++) seen |= (*g)[k] == t->edge;
      if (!seen && FL_VEC_PUSH(*g, *n, *cap, t->edge)) return FL_ENOMEM;
    }
  }
  return FL_OK;
}

/* The heads of the tasks on this worker that records of `from`'s task reach through
 * edges, transitively, added to head->downstream: while head waits, the thread's time in
 * them is what holds it back (its back-pressured time, worker.c). */
static int collect_downstream(fl_worker_t *w, fl_op_t *head, fl_op_t *from) {
  fl_edge_writer_t **g = NULL;
  size_t n = 0, cap = 0;
  int rc = collect_guards(from, &g, &n, &cap);
  for (size_t i = 0; !rc && i < n; i++) {
    for (size_t k = 0; !rc && k < w->n_in; k++) {
      if (w->in[k].ring != g[i]->rings[w->index]) continue;
      fl_op_t *d = w->in[k].op->task;
      bool seen = d == head;
      for (size_t j = 0; j < head->n_downstream; j++) seen |= head->downstream[j] == d;
      if (seen) continue;
      size_t cap_d = head->n_downstream;
      rc = FL_VEC_PUSH(head->downstream, head->n_downstream, cap_d, d);
      if (!rc) rc = collect_downstream(w, head, d);
    }
  }
  free(g);
  return rc;
}

static int plan_validate(fl_env_t *env, char *msg, size_t size) {
  bool has_sink = false;
  for (size_t i = 0; i < env->n_nodes; i++) {
    fl_node_t *n = env->nodes[i];
    has_sink |= (n->cls->flags & FL_OP_SINK) != 0;
    if (!(n->cls->flags & FL_OP_SOURCE) && n->n_inputs == 0) {
      snprintf(msg, size, "operator '%s' has no input", n->name);
      return FL_EPLAN;
    }
    for (size_t k = 0; k < n->n_inputs; k++) {
      if (!n->inputs[k].from || n->inputs[k].from->id >= n->id) {
        snprintf(msg, size, "operator '%s' has an input that is not an earlier operator", n->name);
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

void fl_rt_job_destroy(fl_job_t *job) {
  if (!job) return;
  fl_env_t *env = job->env;
  for (int i = 0; job->workers && i < job->P; i++) {
    fl_worker_t *w = &job->workers[i];
    if (w->ops)
      for (size_t k = 0; k < env->n_nodes; k++) op_free(w->ops[k]);
    free(w->ops);
    for (size_t k = 0; k < w->n_edges; k++) fl_rt_ew_free(w->edges[k]);
    free(w->edges);
    for (size_t k = 0; k < w->n_in; k++) {
      free(w->in[k].guards);
      if (w->in[k].cur) fl_batch_free(w->in[k].cur);
    }
    free(w->in);
    for (fl_batch_t *b = w->spare, *nx; b; b = nx) {
      nx = b->next;
      fl_batch_free(b);
    }
    free(w->sources);
    fl_kv_destroy(&w->kv);
    fl_kv_cache_destroy(w->cache); /* after the stores made on it, with the operators */
    fl_state_scratch_destroy(w->scratch);
    if (w->efd >= 0) close(w->efd);
    if (w->epfd >= 0) close(w->epfd);
  }
  free(job->workers);
  if (job->rocks_shared) fl_kv_rocksdb_shared_destroy(job->rocks_shared);
  fl_rt_workdir_release(&job->work);
  pthread_mutex_destroy(&job->err_lock);
  free(job);
}

#define PLAN_NOMEM()                                       \
  do {                                                     \
    snprintf(msg, size, "out of memory planning the job"); \
    return FL_ENOMEM;                                      \
  } while (0)

/* Connects producers to consumers: chained targets for forward inputs, edge writers
 * and inbound rings for partitioned ones; then the backpressure guards. */
static int wire(fl_job_t *job, const bool *dead, char *msg, size_t size) {
  fl_env_t *env = job->env;
  int P = job->P;
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
        fl_edge_writer_t *ew = fl_rt_ew_new(w, in, prod);
        if (!ew) PLAN_NOMEM();
        if (FL_VEC_PUSH(w->edges, w->n_edges, w->cap_edges, ew)) {
          fl_rt_ew_free(ew);
          PLAN_NOMEM();
        }
        fl_target_t t = {.edge = ew};
        if (add_target(out_of(prod, in->tag), t)) PLAN_NOMEM();
        for (int r = 0; r < P; r++) {
          fl_worker_t *rw = &job->workers[r];
          fl_inbound_t ib = {.ring = ew->rings[r],
                             .from = w,
                             .op = rw->ops[k],
                             .input = (int)i,
                             .chan = base + (size_t)s};
          if (FL_VEC_PUSH(rw->in, rw->n_in, rw->cap_in, ib)) PLAN_NOMEM();
        }
      }
      base += (size_t)P;
    }
  }
  for (int s = 0; s < P; s++) {
    fl_worker_t *w = &job->workers[s];
    for (size_t k = 0; k < env->n_nodes; k++) {
      fl_op_t *op = w->ops[k];
      op->chain_next = op->out.n == 1 ? op->out.t[0].op : NULL;
      op->chain_edge = op->out.n == 1 ? op->out.t[0].edge : NULL;
    }
    for (size_t i = 0; i < w->n_in; i++) {
      fl_inbound_t *in = &w->in[i];
      if (collect_guards(in->op, &in->guards, &in->n_guards, &in->cap_guards)) PLAN_NOMEM();
    }
    for (size_t i = 0; i < w->n_sources; i++) {
      fl_op_t *op = w->sources[i];
      if (collect_guards(op, &op->guards, &op->n_guards, &op->cap_guards)) PLAN_NOMEM();
    }
    for (size_t k = 0; k < env->n_nodes; k++) {
      fl_op_t *op = w->ops[k];
      if (op->task == op && collect_downstream(w, op, op)) PLAN_NOMEM();
    }
  }
  return FL_OK;
}

/* One worker: its event loop, backend, and an instance of every node. */
static int worker_new(fl_job_t *job, int i, char *msg, size_t size) {
  fl_env_t *env = job->env;
  fl_worker_t *w = &job->workers[i];
  w->job = job;
  w->index = i;
  w->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  w->epfd = epoll_create1(EPOLL_CLOEXEC);
  struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
  if (w->efd < 0 || w->epfd < 0 || epoll_ctl(w->epfd, EPOLL_CTL_ADD, w->efd, &ev) != 0) {
    snprintf(msg, size, "cannot create the event loop of worker %d: %s", i, strerror(errno));
    return FL_ESYS;
  }
  if (fl_kv_hashmap_new(&w->kv) != FL_OK) PLAN_NOMEM();
  if (env->conf.rocksdb && env->conf.rocksdb_cache_bytes &&
      fl_kv_cache_new(env->conf.rocksdb_cache_bytes, &w->cache) != FL_OK)
    PLAN_NOMEM();
  fl_kv_cache_set_dirty_target(w->cache, env->conf.rocksdb_cache_dirty_target);
  fl_kv_cache_set_dirty_limit(w->cache, env->conf.rocksdb_cache_dirty_limit);
  w->scratch = fl_state_scratch_new();
  w->ops = calloc(env->n_nodes, sizeof *w->ops);
  if (!w->scratch || !w->ops) PLAN_NOMEM();
  for (size_t k = 0; k < env->n_nodes; k++) {
    int rc = op_new(w, env->nodes[k], &w->ops[k], msg, size);
    if (rc) return rc;
    if (w->ops[k]->is_source && FL_VEC_PUSH(w->sources, w->n_sources, w->cap_sources, w->ops[k]))
      PLAN_NOMEM();
    w->has_ticks |= w->ops[k]->cls->on_tick != NULL;
  }
  /* Each instance's task: the instance of its chain's head on this worker. */
  int n_src = 0;
  for (size_t k = 0; k < env->n_nodes; k++) {
    fl_op_t *op = w->ops[k];
    op->task = w->ops[fl_node_task_head(env->nodes[k])->id];
    op->latency_src = op->is_source ? n_src++ : -1;
  }
  w->latency_interval_ns = env->conf.latency_interval_ms * 1000000LL;
  w->n_unfinished = env->n_nodes;
  return FL_OK;
}

int fl_rt_plan(fl_job_t *job, char *msg, size_t size) {
  fl_env_t *env = job->env;
  int P = job->P;
  int rc = plan_validate(env, msg, size);
  if (rc) return rc;
  int n_sources = 0;
  for (size_t i = 0; i < env->n_nodes; i++)
    n_sources += (env->nodes[i]->cls->flags & FL_OP_SOURCE) != 0;
  for (size_t i = 0; i < env->n_nodes; i++) {
    fl_node_t *n = env->nodes[i];
    /* Allocated once and reset for each attempt: readers on other threads (metrics
     * JSON, the REST server) may hold them at any time. */
    int lat = env->conf.latency_interval_ms > 0 ? n_sources : 0;
    if (!n->metrics) {
      /* made whole (latency histograms too) before readers can see them */
      fl_metrics_t *m = calloc((size_t)P, sizeof *m);
      if (!m) PLAN_NOMEM();
      if (fl_metrics_reset(m, (size_t)P, lat)) {
        fl_metrics_free_user(m, (size_t)P);
        free(m);
        PLAN_NOMEM();
      }
      n->n_metrics = P;
      __atomic_store_n(&n->metrics, m, __ATOMIC_RELEASE); /* readers on other threads */
    } else if (fl_metrics_reset(n->metrics, (size_t)n->n_metrics, lat)) {
      PLAN_NOMEM();
    }
  }
  if (env->conf.rocksdb || job->restore || env->conf.ckpt_interval_ms > 0) {
    /* One working directory per attempt (RocksDB stores, restore scratch space, final
     * snapshots of ended operators), after removing those that killed jobs left
     * behind. */
    const char *base = env->conf.rocksdb_dir[0] ? env->conf.rocksdb_dir : "/tmp";
    fl_rt_workdir_sweep(base, log_line, env);
    rc = fl_rt_workdir_acquire(&job->work, base, msg, size);
    if (rc) return rc;
  }
  if (env->conf.rocksdb) {
    char err[900];
    rc = fl_kv_rocksdb_shared_new(&env->conf.rocksdb_opts, &job->rocks_shared, err, sizeof err);
    if (rc) {
      snprintf(msg, size, "cannot set up RocksDB: %s", err);
      return rc;
    }
    /* the tickers behind block cache hits and misses, only when they are shown */
    fl_kv_rocksdb_shared_statistics(job->rocks_shared,
                                    env->conf.kv_stats[FL_KV_STAT_BLOCK_CACHE_HIT] ||
                                        env->conf.kv_stats[FL_KV_STAT_BLOCK_CACHE_MISS] ||
                                        env->conf.kv_stats[FL_KV_STAT_BLOCK_CACHE_INDEX_MISS] ||
                                        env->conf.kv_stats[FL_KV_STAT_BLOCK_CACHE_FILTER_MISS]);
  }
  job->workers = calloc((size_t)P, sizeof *job->workers);
  if (!job->workers) PLAN_NOMEM();
  for (int i = 0; i < P; i++) {
    job->workers[i].efd = -1;
    job->workers[i].epfd = -1;
  }
  for (int i = 0; i < P; i++) {
    rc = worker_new(job, i, msg, size);
    if (rc) return rc;
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
      if (n->cls->flags & FL_OP_SOURCE) {
        d = !n->parallel && s != 0;
      } else {
        d = n->n_inputs > 0;
        for (size_t i = 0; i < n->n_inputs; i++)
          d &= n->inputs[i].part == FL_PART_FORWARD &&
               dead[(size_t)s * env->n_nodes + n->inputs[i].from->id];
      }
      dead[(size_t)s * env->n_nodes + k] = d;
    }
  }
  rc = wire(job, dead, msg, size);
  free(dead);
  return rc;
}
