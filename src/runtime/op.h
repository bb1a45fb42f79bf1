/*
 * The operator interface: what the runtime gives an operator class (src/operators) and
 * what a class gives the runtime.
 *
 * Every worker thread runs one instance (fl_op_t, a subtask) of every node. The runtime
 * delivers records, watermarks, timers, barriers and the end of input to an instance by
 * calling its class (fl_op_class_t); the class emits with fl_op_emit*(), and reports a
 * failure with fl_op_fail() / fl_op_user_failed(). The runtime never looks at a node's
 * kind: what it must treat specially it learns from the class flags (FL_OP_*).
 *
 * Threading: an instance and its context belong to their worker thread.
 */
#ifndef FL_RUNTIME_OP_H
#define FL_RUNTIME_OP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "flink.h"
#include "graph/env.h"
#include "graph/graph.h"
#include "runtime/channel.h"
#include "state/kv.h"
#include "state/state.h"
#include "state/timers.h"
#include "util/buf.h"

typedef struct fl_op fl_op_t;

/* Rates and times per second are computed over the last FL_OP_SAMPLES - 1 intervals of
 * FL_OP_SAMPLE_NS (worker.c). */
#define FL_OP_SAMPLES 6
#define FL_OP_SAMPLE_NS 1000000000LL

/* Where an operator's output goes: chained operators (function calls) and channel
 * writers (src/runtime/edge.c). */
typedef struct fl_target {
  fl_op_t *op; /* chained: op's logical input `logical` ... */
  int input;   /* ... and channel `input` (index into op->ins) */
  int logical;
  struct fl_edge_writer *edge; /* or a partitioned edge */
} fl_target_t;

typedef struct fl_out {
  fl_target_t *t;
  size_t n, cap;
} fl_out_t;

struct fl_context {
  fl_op_t *op;
  int64_t ts;      /* current element / timer timestamp */
  const void *key; /* current key (keyed operators) */
  size_t key_len;
  uint16_t kg;
  bool keyed;        /* key is valid */
  bool key_hashed;   /* key_hash is valid */
  uint64_t key_hash; /* fl_hash64(key, key_len, 0), computed once per record */
  const void *ns;    /* namespace for state (window operators); empty otherwise */
  size_t ns_len;
  size_t emitted; /* records emitted during the current call */
  size_t source_budget;
  int wait_fd;           /* set by fl_ctx_source_wait_fd, -1 if none */
  void *instance;        /* the user's per-subtask instance */
  int64_t checkpoint_id; /* during a source snapshot call: the checkpoint's id, else 0 */
};

/* Class flags: what the runtime must know about a class. */
#define FL_OP_SOURCE 0x1u /* no inputs; the worker polls it (poll) */
#define FL_OP_SINK 0x2u   /* ends the graph: a job needs at least one */
/* end_input is called also when the job fails or stops, so that what reached it is kept. */
#define FL_OP_FLUSH_ON_FAILURE 0x4u
/* Makes its own idleness (watermark generators): the runtime does not forward its inputs'
 * idleness. */
#define FL_OP_OWN_IDLENESS 0x8u

typedef struct fl_op_class {
  const char *kind;
  unsigned flags; /* FL_OP_* */
  int (*open)(fl_op_t *op);
  /* A record arrived on input side `input` (fl_input_t.side: 0, or 1 for the second
   * input of a two-input operator). For keyed operators the runtime has set
   * ctx.key/key_len/kg from the record before the call (except for inputs marked
   * unkeyed, where ctx.keyed is false). */
  int (*process)(fl_op_t *op, int input, const fl_record_t *rec);
  /* A timer of this (keyed) operator fired; ctx.key/kg/ns and ctx.ts are set. */
  int (*on_timer)(fl_op_t *op, fl_time_domain_t d, const fl_timer_t *t);
  /* The operator's input watermark advanced to wm (after event timers <= wm fired).
   * Optional. Return 0 to let the runtime forward wm downstream, or
   * FL_OP_KEEP_WATERMARK to suppress forwarding (watermark generators). */
  int (*on_watermark)(fl_op_t *op, int64_t wm);
  /* Periodic call from the worker loop (watermark generators, idleness). Optional. */
  int (*on_tick)(fl_op_t *op, int64_t now);
  /* Every input ended (after watermark FL_TS_MAX and all timers fired). Optional. */
  int (*end_input)(fl_op_t *op);
  void (*close)(fl_op_t *op);
  /* Checkpoints, optional. snapshot: barrier `id` is aligned at this operator; append
   * its operator state (not keyed state, which the runtime snapshots) to out. restore:
   * after open, before any input, when the job starts from a checkpoint: states[i] is
   * what subtask i of the earlier run appended (n = its parallelism). notify: checkpoint
   * id completed (true) or was aborted (false). */
  int (*snapshot)(fl_op_t *op, int64_t id, fl_buf_t *out);
  int (*restore)(fl_op_t *op, const fl_bytes_t *states, size_t n);
  int (*notify)(fl_op_t *op, int64_t id, bool completed);
  /* FL_OP_SOURCE: emit up to ctx.source_budget records, return FL_SOURCE_END, _MORE,
   * _WAIT (ctx.wait_fd may name an fd to wait for) or a negative error. The runtime
   * has reset ctx.emitted, ctx.wait_fd and ctx.ts. */
  int (*poll)(fl_op_t *op);
  /* Optional, keyed operators: the records b->e[from..to) that a channel delivered in
   * this order on keyed input side `input`, with nothing between them (each entry's kg
   * and hash are its key's). Replaces process for such runs, so that a class can work
   * through a batch without a call per record (and prefetch the state of records
   * ahead). For each record the class sets ctx.ts and the key (fl_op_set_key) before
   * anything that may call user code; the runtime has counted the records in. Returns
   * what process returns; a failure ends the run there. */
  int (*process_run)(fl_op_t *op, int input, const fl_batch_t *b, uint32_t from, uint32_t to);
} fl_op_class_t;

#define FL_OP_KEEP_WATERMARK 1

/* How a record from a chained producer reaches an instance (fl_op_t.hop). Other than
 * FL_HOP_PROCESS, the class's open promises that process, for every record, would do
 * nothing but what the runtime then does itself, in the producer's emit: */
typedef enum {
  FL_HOP_PROCESS = 0, /* call cls->process */
  /* raise max_ts to the record's timestamp (ctx.ts set to it) and emit the record
   * unchanged to the main output: a timestamp assigner that makes its watermarks on a
   * timer */
  FL_HOP_FORWARD,
  /* call hop_fn(&ctx, rec, *hop_arg) with ctx.ts the record's timestamp, and fail with
   * fl_op_user_failed(op, rc, hop_what) if it returns rc < 0 (sinks, flat_map, process) */
  FL_HOP_CALL,
  /* the same, with ctx.emitted reset before the call and a failure unless the call
   * emitted exactly one record (map) */
  FL_HOP_MAP,
  /* the same as FL_HOP_CALL, and the record emitted unchanged to the main output when
   * the call returns > 0 (filter) */
  FL_HOP_FILTER,
} fl_hop_t;

typedef int (*fl_hop_fn_t)(fl_context_t *ctx, const fl_record_t *rec, void *arg);

/* Input channel bookkeeping: one slot per chained producer or per (edge, sender). */
typedef struct fl_in_chan {
  int64_t wm; /* last watermark, FL_TS_NONE before one */
  bool idle;
  bool ended;
  int64_t barrier; /* last checkpoint barrier that arrived here (0: none) */
} fl_in_chan_t;

struct fl_op {
  const fl_op_class_t *cls;
  fl_node_t *node;
  struct fl_worker *worker;
  int subtask, parallelism;
  fl_context_t ctx;
  fl_out_t out; /* main output */
  /* out when it is one target: its chained operator, or else its edge writer (NULL
   * otherwise; set when the job is planned) */
  struct fl_op *chain_next;
  struct fl_edge_writer *chain_edge;
  fl_out_t *side; /* [env->n_tags]: side outputs by tag id */
  fl_in_chan_t *ins;
  size_t n_ins, n_ended;
  int64_t wm;     /* current input watermark (min over non-idle inputs) */
  bool idle_out;  /* we told downstream we are idle */
  int64_t src_wm; /* sources: last watermark fl_ctx_emit_watermark() forwarded */
  bool finished;
  /* An instance that never runs user code (a single-reader source on a subtask other
   * than 0): its final state is empty. Set by the class's open. */
  bool inert;
  /* keyed operators */
  fl_timers_t *timers;
  uint32_t kg_first, kg_count;
  fl_kv_t *kv;                        /* the worker's backend */
  fl_state_scratch_t *worker_scratch; /* the worker's state scratch buffers */
  uint32_t *desc_tables;              /* [env->n_descs]: table id + 1, 0 = not opened yet */
  fl_ttl_cleanup_t *desc_cleanup;     /* [env->n_descs] */
  bool ttl_every_record;              /* some descriptor asks for TTL cleanup after every record */
  fl_metrics_t *m;                    /* &node->metrics[subtask] */
  void *state;                        /* the class's own data */
  bool is_source;                     /* cls->flags & FL_OP_SOURCE */
  /* What a chained producer's emit does itself for a record instead of calling the
   * class's process (op.c), set by the class's open (fl_hop_t); the worker sets
   * FL_HOP_PROCESS for keyed instances, whose records need their key set. */
  uint8_t hop;
  fl_hop_fn_t hop_fn;   /* FL_HOP_CALL, _MAP, _FILTER: the user's function ... */
  void *const *hop_arg; /* ... its last argument (read at each call: *hop_arg) ... */
  const char *hop_what; /* ... and its name in a failure ("map function") */
  int64_t max_ts;       /* FL_HOP_FORWARD: the largest record timestamp, FL_TS_NONE before one */
  bool failed;          /* a call of this operator failed: it takes no more input */
  bool blocked;         /* failed || finished, kept by op.c: what the record path checks */
  bool opened;
  char *pending_err; /* message set by fl_ctx_fail() for the current call */
  /* What the current snapshot call lent (fl_ctx_snapshot_lend): written after its state */
  const void *snap_lent;
  size_t snap_lent_len;
  void (*snap_lent_release)(void *); /* NULL: data is the instance's until the call returns */
  void *snap_lent_arg;
  uint64_t n_in, n_out; /* counters, published to m once per worker loop (worker.c) */
  fl_record_t emit_rec; /* the record fl_emit passes on (op.c) */
  fl_buf_t timer_key;   /* copy of a firing timer's key and namespace */
  /* sources (runtime-private) */
  int src_fd;       /* fd registered with epoll, -1 */
  bool src_waiting; /* waiting for src_fd */
  int64_t src_retry_at;
  struct fl_edge_writer **guards; /* edge writers reachable from this operator */
  size_t n_guards, cap_guards;
  /* checkpoints (runtime-private) */
  int64_t ckpt_aligning; /* barrier being aligned (some channels delivered it), or 0 */
  int64_t ckpt_done;     /* last checkpoint this operator snapshotted */
  /* The file its snapshot of ckpt_done streamed into, still open (the coordinator
   * closes it: fsync and rename), until the worker hands it over; NULL when none was
   * written (the checkpoint was no longer running). */
  struct fl_ckpt_out *ckpt_out;
  char *final_path;   /* its snapshot when it ended, in a local file (checkpoints after
                       that copy it), or NULL */
  bool has_final;     /* the final snapshot was taken (final_path NULL: it is empty) */
  fl_kv_t own_kv;     /* RocksDB: the operator's own store (op->kv points here) */
  uint64_t store_id;  /* names that store instance in shared checkpoint files */
  char *native_dir;   /* incremental: the native copy behind ckpt_out, or NULL */
  char *native_final; /* ... and behind final_path */
  /* metrics (runtime-private; worker.c publishes them to m) */
  struct fl_op *task;        /* the head of the chain this instance runs in (itself if head) */
  uint64_t n_fired;          /* timers fired */
  int64_t busy_ns, bp_ns;    /* task heads: cumulative busy and back-pressured time */
  int64_t iter_busy_ns;      /* task heads: busy time in the current loop iteration */
  bool iter_bp;              /* task heads: blocked by a full output in this iteration */
  bool iter_ready;           /* task heads: had more work than its turn allowed */
  struct fl_op **downstream; /* task heads: the heads of tasks on this worker it feeds */
  size_t n_downstream;
  int64_t align_start_ns;  /* first barrier of the alignment in progress */
  int latency_src;         /* sources: ordinal among the source nodes; else -1 */
  int64_t next_latency_ns; /* sources: when the next latency marker is due */
  struct fl_op_sample {
    int64_t t_ns, busy_ns, bp_ns;
    uint64_t in, out, fired;
  } samples[FL_OP_SAMPLES]; /* the last view samples, a ring */
  int n_samples, sample_next;
};

/* Reports that a user function (`what`, e.g. "map function") of op returned rc < 0:
 * the job fails with the operator's name, subtask, and the message given to
 * fl_ctx_fail() (or the error's text). Returns rc. */
int fl_op_user_failed(fl_op_t *op, int rc, const char *what);

/* Emits to the main output / a side output of op. rec is copied by channel writers; a
 * chained operator sees it borrowed. Counts records_out. */
int fl_op_emit(fl_op_t *op, const fl_record_t *rec);
int fl_op_emit_side(fl_op_t *op, const fl_output_tag_t *tag, const fl_record_t *rec);
/* Forwards a watermark to every output (main and side), as the runtime does after
 * on_watermark. Only watermark generators call it themselves. */
int fl_op_emit_watermark(fl_op_t *op, int64_t wm);
/* Tells downstream this operator's output is idle (true) or active again (false). */
int fl_op_emit_idle(fl_op_t *op, bool idle);

/* Records a failure message for op (the first one wins) and returns err. */
int fl_op_fail(fl_op_t *op, int err, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/* Resolves state of descriptor d for the context's current key group/key/namespace:
 * opens the (operator, descriptor) table on first use. FL_ESTATE when the context is
 * not keyed or d is not of kind `kind` (pass -1 to accept any kind). */
int fl_ctx_sref(fl_context_t *ctx, const fl_state_desc_t *d, int kind, fl_sref_t *out);
/* The same for an operator-internal descriptor (window contents etc.), addressed with
 * an explicit namespace. */
int fl_op_sref(fl_op_t *op, const struct fl_state_desc *d, const void *ns, size_t ns_len,
               fl_sref_t *out);
/* Sets the key context of a record: its key, key group and, when hashed, the key's
 * fl_hash64 (which state lookups then need not compute again). */
static inline void fl_op_set_key(fl_op_t *op, const void *key, size_t len, uint16_t kg, bool hashed,
                                 uint64_t hash) {
  op->ctx.key = key;
  op->ctx.key_len = len;
  op->ctx.kg = kg;
  op->ctx.key_hashed = hashed;
  op->ctx.key_hash = hash;
  op->ctx.keyed = true;
  op->ctx.ns = NULL;
  op->ctx.ns_len = 0;
}

/* Points r, which fl_op_sref filled for op, at the context's current key and at
 * namespace ns: what a keyed operator does for every record instead of calling
 * fl_op_sref again. Not for descriptors with TTL (whose clock it does not renew). */
static inline void fl_op_sref_rekey(const fl_op_t *op, fl_sref_t *r, const void *ns,
                                    size_t ns_len) {
  r->k.kg = op->ctx.kg;
  r->k.key = op->ctx.key;
  r->k.key_len = op->ctx.key_len;
  r->key_hashed = op->ctx.key_hashed;
  r->key_hash = op->ctx.key_hash;
  r->k.ns = ns;
  r->k.ns_len = ns_len;
}

#endif
