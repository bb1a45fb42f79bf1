/* The physical job: worker threads, their operator instances, channels and the edge
 * writers that partition records onto channels. */
#ifndef FL_RUNTIME_JOB_H
#define FL_RUNTIME_JOB_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "core/internal.h"
#include "runtime/channel.h"

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
} fl_edge_writer_t;

/* The receiving side of a ring: which operator input channel it feeds. */
typedef struct fl_inbound {
  fl_ring_t *ring;
  fl_worker_t *from;
  fl_op_t *op;
  int input;  /* logical input of the operator */
  size_t chan; /* index into op->ins */
  fl_edge_writer_t **guards; /* edge writers reachable from op (backpressure) */
  size_t n_guards;
  /* A batch partly processed: a checkpoint barrier stopped it (alignment). */
  fl_batch_t *cur;
  uint32_t pos;
  int64_t blocked; /* the barrier that blocks this channel until aligned, or 0 */
} fl_inbound_t;

struct fl_worker {
  fl_job_t *job;
  int index;
  pthread_t thread;
  int efd;  /* eventfd: wakes the loop */
  int epfd;
  _Atomic int sleeping;
  _Atomic int waiting_space; /* has overflow: receivers wake it when they free a slot */
  fl_op_t **ops;             /* [n_nodes] */
  fl_inbound_t *in;
  size_t n_in;
  fl_edge_writer_t **edges;
  size_t n_edges;
  fl_op_t **sources;
  size_t n_sources;
  fl_kv_t kv;
  fl_state_scratch_t *scratch;
  size_t n_unfinished; /* operators that did not end yet */
  bool drained;        /* (stop/failure) open batches flushed once */
  bool poll_again;     /* a source asked to be called again at once */
  int64_t last_flush_ns;
  /* checkpoints */
  int64_t ckpt_injected;  /* last checkpoint whose barriers this worker's sources sent */
  int64_t ckpt_acked;     /* last checkpoint this worker acknowledged */
  int64_t ckpt_completed; /* last completion the operators were told about */
  int64_t ckpt_aborted;   /* last abort the operators were told about */
  size_t n_aligning;      /* operators with ckpt_aligning set (0: no alignment walk) */
  _Atomic int all_finished; /* every operator ended; waits for the final checkpoint */
};

struct fl_job {
  fl_env_t *env;
  int P;
  fl_worker_t *workers;
  _Atomic int failing;  /* a failure or stop: sources stop, in-flight data drains */
  _Atomic long inflight; /* batches pushed and not yet processed */
  _Atomic int drained_workers;
  pthread_mutex_t err_lock;
  int err;
  char errmsg[1024];
  /* checkpoints: the coordinator (src/runtime/checkpoint.c) publishes these */
  struct fl_coord *coord;           /* NULL: checkpoints are off */
  _Atomic int64_t ckpt_trigger;     /* newest checkpoint whose barriers sources inject */
  _Atomic int64_t ckpt_complete;    /* newest completed checkpoint */
  _Atomic int64_t ckpt_abort;       /* newest aborted checkpoint */
  _Atomic int64_t savepoint_id;     /* the newest savepoint's id (always canonical) */
  struct fl_restore *restore;       /* what the job starts from, or NULL */
  fl_kv_rocksdb_shared_t *rocks_shared; /* state.backend rocksdb: the shared cache */
  char rocks_dir[4096];             /* ... and this attempt's working directory */
  /* Every operator ended and the final checkpoint (or none, when checkpoints are
   * off) completed: its id, or 1 without one. Workers then leave. */
  _Atomic int64_t final_done;
};

/* Wakes a worker if it sleeps. Any thread; async-signal-safe. */
void fl_worker_wake(fl_worker_t *w);
/* Marks the job failing with err and a message (the first failure wins). */
void fl_job_fail(fl_job_t *job, int err, const char *msg);

#endif
