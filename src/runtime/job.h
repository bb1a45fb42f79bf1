/*
 * The physical job: worker threads, their operator instances, channels and the edge
 * writers that partition records onto channels; and the calls the runtime's files make
 * to each other. Private to src/runtime.
 *
 *   plan.c     the logical graph -> workers, operator instances, edges (and back)
 *   worker.c   the loop of one worker thread, as its phases
 *   edge.c     edge writers: partitioning, batching, overflow (backpressure)
 *   op.c       delivering records, watermarks, idleness and the end of input to an
 *              operator instance; what operators call to emit and fail
 *   barrier.c  checkpoint barriers: alignment, snapshots, acknowledgements
 *   coord.c    the checkpoint coordinator thread
 *   restore.c  loading a checkpoint and giving each instance its part
 *   execute.c  attempts, restart strategies, fl_env_execute/_savepoint/_stop
 *   op_state.c keyed state of an instance (tables, TTL sweeps)
 *   context.c, context_state.c   the public calls of a user function's context
 *   connector.c what connectors (src/io) may ask of the runtime (connector.h)
 */
#ifndef FL_RUNTIME_JOB_H
#define FL_RUNTIME_JOB_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "checkpoint/snapshot.h"
#include "runtime/channel.h"
#include "runtime/op.h"
#include "runtime/workdir.h"

typedef struct fl_worker fl_worker_t;
typedef struct fl_job fl_job_t;

/* The sending side of one partitioned edge on one worker: one ring per receiving
 * subtask, the batch being filled for each, and batches that did not fit in a full
 * ring (the overflow; while any exists, the worker pulls no input that could reach this
 * edge). */
typedef struct fl_edge_writer {
  fl_worker_t *w;
  fl_partition_t part;
  fl_key_fn key_fn;
  void *key_opaque;
  fl_op_t *producer;     /* for key selector errors and its context */
  int n;                 /* receivers (= parallelism) */
  fl_ring_t **rings;     /* [n] */
  fl_worker_t **to;      /* [n] receiving workers */
  fl_batch_t **open;     /* [n] */
  fl_batch_t **ovf_head; /* [n] */
  fl_batch_t **ovf_tail; /* [n] */
  size_t n_overflow;
  uint32_t rr;
  int maxp_shift; /* log2 of the max parallelism if it is a power of two, else -1 */
  /* fl_rt_ew_record's inline case: hash partitioning by the record's key with a
   * power-of-two max parallelism */
  bool by_key_pow2;
  uint32_t kg_mask; /* max parallelism - 1 when it is a power of two */
} fl_edge_writer_t;

/* The receiving side of a ring: which operator input channel it feeds. */
typedef struct fl_inbound {
  fl_ring_t *ring;
  fl_worker_t *from;
  fl_op_t *op;
  int input;                 /* logical input of the operator */
  size_t chan;               /* index into op->ins */
  fl_edge_writer_t **guards; /* edge writers reachable from op (backpressure) */
  size_t n_guards, cap_guards;
  /* A batch partly processed: a checkpoint barrier stopped it (alignment). */
  fl_batch_t *cur;
  uint32_t pos;
  int64_t blocked; /* the barrier that blocks this channel until aligned, or 0 */
} fl_inbound_t;

struct fl_worker {
  fl_job_t *job;
  int index;
  pthread_t thread;
  int efd; /* eventfd: wakes the loop */
  int epfd;
  _Atomic int sleeping;
  _Atomic int waiting_space; /* has overflow: receivers wake it when they free a slot */
  fl_op_t **ops;             /* [n_nodes] */
  fl_inbound_t *in;
  size_t n_in, cap_in;
  fl_edge_writer_t **edges;
  size_t n_edges, cap_edges;
  fl_op_t **sources;
  size_t n_sources, cap_sources;
  bool has_ticks; /* some operator has on_tick */
  fl_kv_t kv;
  struct fl_kv_cache *cache; /* RocksDB: the state cache in front of this worker's stores */
  fl_state_scratch_t *scratch;
  size_t n_unfinished; /* operators that did not end yet */
  bool drained;        /* (stop/failure) open batches flushed once */
  bool poll_again;     /* a source asked to be called again at once */
  int64_t last_flush_ns;
  /* metrics: the current loop iteration's start, the next view sample, the latency
   * marker interval (0: off) */
  int64_t iter_start_ns, next_sample_ns, latency_interval_ns;
  /* checkpoints */
  int64_t ckpt_injected;    /* last checkpoint whose barriers this worker's sources sent */
  int64_t ckpt_acked;       /* last checkpoint this worker acknowledged */
  int64_t ckpt_completed;   /* last completion the operators were told about */
  int64_t ckpt_aborted;     /* last abort the operators were told about */
  size_t n_aligning;        /* operators with ckpt_aligning set (0: no alignment walk) */
  _Atomic int all_finished; /* every operator ended; waits for the final checkpoint */
  /* Batches of the standard size this worker consumed, kept for its edge writers to
   * fill again (linked by next; at most FL_SPARE_BATCHES): a malloc and a free per
   * batch across threads made glibc trim the arenas, and each trim's madvise stopped
   * the other worker for a TLB shootdown. */
  fl_batch_t *spare;
  size_t n_spare;
};

#define FL_SPARE_BATCHES 16

/* Keeps batch b, consumed by worker w, for w's edge writers, or frees it. */
void fl_rt_batch_done(fl_worker_t *w, fl_batch_t *b);

struct fl_job {
  fl_env_t *env;
  int P;
  fl_worker_t *workers;
  _Atomic int failing;   /* a failure or stop: sources stop, in-flight data drains */
  _Atomic long inflight; /* batches pushed and not yet processed */
  _Atomic int drained_workers;
  pthread_mutex_t err_lock;
  int err;
  char errmsg[1024];
  /* checkpoints: the coordinator (coord.c) publishes these */
  struct fl_coord *coord;               /* NULL: checkpoints are off */
  _Atomic int64_t ckpt_trigger;         /* newest checkpoint whose barriers sources inject */
  _Atomic int64_t ckpt_complete;        /* newest completed checkpoint */
  _Atomic int64_t ckpt_abort;           /* newest aborted checkpoint */
  _Atomic int64_t savepoint_id;         /* the newest savepoint's id (always canonical) */
  struct fl_restore *restore;           /* what the job starts from, or NULL */
  fl_kv_rocksdb_shared_t *rocks_shared; /* state.backend rocksdb: the shared cache */
  fl_workdir_t work;                    /* this attempt's local files (RocksDB, restores) */
  /* Every operator ended and the final checkpoint (or none, when checkpoints are
   * off) completed: its id, or -1 without one. Workers then leave. */
  _Atomic int64_t final_done;
};

/* ---- op.c ---- */

/* Wakes a worker if it sleeps. Any thread; async-signal-safe. */
void fl_worker_wake(fl_worker_t *w);
void fl_rt_wake_all(fl_job_t *job);
/* Marks the job failing with err and a message (the first failure wins). */
void fl_job_fail(fl_job_t *job, int err, const char *msg);
/* A class call returned rc < 0: make sure the job knows, whoever formatted it. */
void fl_rt_op_check(fl_op_t *op, int rc);
/* A record for logical input `input`. For a keyed input, kg and key_hash are the key's
 * group and fl_hash64(key, key_len, 0) as the sending edge computed them; kg < 0:
 * compute both from the key. */
void fl_rt_op_record(fl_op_t *op, int input, const fl_record_t *rec, int kg, uint64_t key_hash);
/* The records b->e[from..to) of a channel batch (no other entry between them), for
 * logical input `input`: through the class's process_run when it has one, else one by
 * one. */
void fl_rt_op_records(fl_op_t *op, int input, const fl_batch_t *b, uint32_t from, uint32_t to);
void fl_rt_op_input_watermark(fl_op_t *op, size_t chan, int64_t wm);
void fl_rt_op_input_idle(fl_op_t *op, size_t chan, bool idle);
void fl_rt_op_input_end(fl_op_t *op, size_t chan);
/* Fires timers of domain d up to `upto`. */
void fl_rt_fire_timers(fl_op_t *op, fl_time_domain_t d, int64_t upto);
/* Every input ended (or a source ended): final watermark, timers, end_input, END. */
void fl_rt_op_finish(fl_op_t *op);
/* Sends a control element to every output of op (main and side). */
void fl_rt_control_all(fl_op_t *op, fl_entry_type_t type, int64_t ts);
/* A latency marker of source ordinal src, made at monotonic made_ns, reached op: record
 * its latency and pass it on (fl_rt_latency_forward: pass it on only, for sources). */
void fl_rt_op_latency(fl_op_t *op, int src, int64_t made_ns);
void fl_rt_latency_forward(fl_op_t *op, int src, int64_t made_ns);

/* ---- edge.c ---- */

fl_edge_writer_t *fl_rt_ew_new(fl_worker_t *w, const fl_input_t *in, fl_op_t *producer);
void fl_rt_ew_free(fl_edge_writer_t *ew);
int fl_rt_ew_record(fl_edge_writer_t *ew, const fl_record_t *in);
void fl_rt_ew_control(fl_edge_writer_t *ew, fl_entry_type_t type, int64_t ts);
/* Appends a latency marker for one receiver (round robin). */
void fl_rt_ew_latency(fl_edge_writer_t *ew, int src, int64_t made_ns);
/* Ships overflow batches that fit now. True if any was shipped. */
bool fl_rt_ew_retry(fl_edge_writer_t *ew);
bool fl_rt_ew_can_retry(const fl_edge_writer_t *ew);
/* Ships every partly filled batch. True if any was shipped. */
bool fl_rt_ew_flush(fl_edge_writer_t *ew);
/* Whether one of the guards has overflow (the input behind them must wait). */
bool fl_rt_guards_blocked(fl_edge_writer_t *const *g, size_t n);

/* ---- barrier.c ---- */

/* Snapshots op for checkpoint id (id 0: its final state, the operator just ended). */
void fl_rt_op_snapshot(fl_op_t *op, int64_t id);
void fl_rt_op_input_barrier(fl_op_t *op, size_t chan, int64_t id);
/* An input channel of an aligning operator ended: it may be aligned now. */
void fl_rt_op_check_aligned(fl_op_t *op);
/* Whether op or an operator it feeds by calls is aligning a checkpoint. */
bool fl_rt_chain_aligning(const fl_op_t *op);
/* Sources: checkpoint id was triggered; inject its barrier after their positions. */
void fl_rt_inject_barriers(fl_worker_t *w, int64_t id);
/* Acknowledges the injected checkpoint once every operator snapshotted it or ended. */
void fl_rt_maybe_ack(fl_worker_t *w);
/* Tells operators about completed and aborted checkpoints. */
void fl_rt_notify_ops(fl_worker_t *w);

/* ---- op_state.c ---- */

/* What a snapshot of op is taken of and restored into. */
fl_snapshot_target_t fl_rt_snapshot_target(fl_op_t *op);

/* Flink's cleanupIncrementally(size, runCleanupForEveryRecord) after a record. */
void fl_rt_ttl_sweep(fl_op_t *op);

/* ---- plan.c ---- */

/* Builds the workers, instances and edges of job (job->env, job->P set). On failure
 * msg says why; fl_rt_job_destroy frees what was made either way. */
int fl_rt_plan(fl_job_t *job, char *msg, size_t size);
void fl_rt_job_destroy(fl_job_t *job);

/* ---- worker.c ---- */

void *fl_rt_worker_main(void *arg);

/* ---- restore.c ---- */

/* Gives op its key groups' state and timers and its operator state from the job's
 * restore. Failures are recorded on op. */
void fl_rt_restore_op(fl_op_t *op);

#endif
