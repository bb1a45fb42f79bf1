/*
 * Private structures shared by the builder (src/core), the runtime (src/runtime) and the
 * operators (src/operators). Nothing here is part of the public API.
 *
 * Layers:
 *  - the logical graph: fl_node (one per operator the user declared), with inputs that
 *    name the producing node, the side-output tag, and how records are partitioned;
 *  - the physical plan: every worker thread runs one fl_op (operator instance, i.e.
 *    subtask) of every node; forward inputs are chained as function calls, partitioned
 *    inputs go through SPSC channels (src/runtime/channel.h);
 *  - the operator class (fl_op_class_t): what a kind of operator does with records,
 *    watermarks, timers and the end of its input.
 */
#ifndef FL_CORE_INTERNAL_H
#define FL_CORE_INTERNAL_H

#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "flink.h"
#include "runtime/timers.h"
#include "state/kv.h"
#include "state/state.h"

/* ---------------------------------------------------------------------------------- */
/* Byte buffer (fl_buf_t of flink.h)                                                    */

struct fl_buf {
  uint8_t *data;
  size_t len;
  size_t cap;
};
void fl_buf_init(fl_buf_t *b);
void fl_buf_free(fl_buf_t *b);
int fl_buf_reserve(fl_buf_t *b, size_t cap);

/* ---------------------------------------------------------------------------------- */
/* Logical graph                                                                        */

typedef enum fl_node_kind {
  FL_NODE_SOURCE,
  FL_NODE_MAP,
  FL_NODE_FLAT_MAP,
  FL_NODE_FILTER,
  FL_NODE_PROCESS,       /* ProcessFunction */
  FL_NODE_KEYED_PROCESS, /* KeyedProcessFunction */
  FL_NODE_ROLLING,       /* rolling reduce / sum / min / max */
  FL_NODE_WINDOW,
  FL_NODE_ASSIGN_TS,
  FL_NODE_SINK,
  FL_NODE_CO_PROCESS,        /* CoProcessFunction: inputs of side 0 and 1 */
  FL_NODE_KEYED_CO_PROCESS,  /* KeyedCoProcessFunction */
  FL_NODE_WINDOW_JOIN,       /* window join: keyed, two sides */
  FL_NODE_INTERVAL_JOIN,     /* interval join: keyed, two sides */
  FL_NODE_BROADCAST_PROCESS  /* keyed side 0, broadcast (unkeyed) side 1 */
} fl_node_kind_t;

typedef enum fl_partition {
  FL_PART_FORWARD,   /* same subtask, chained */
  FL_PART_HASH,      /* keyBy: by key group */
  FL_PART_REBALANCE, /* round robin */
  FL_PART_BROADCAST  /* every record to every subtask */
} fl_partition_t;

/* One input of a node: records of `from` (its main output, or the side output `tag`),
 * partitioned as `part`. */
typedef struct fl_input {
  struct fl_node *from;
  const fl_output_tag_t *tag; /* NULL: main output */
  fl_partition_t part;
  fl_key_fn key_fn; /* FL_PART_HASH: NULL keeps the record key */
  void *key_opaque;
  /* Which input of a two-input operator this feeds: 0 (the first) or 1 (the second).
   * Operators with one input see only 0. The runtime passes it to process(). */
  int side;
  /* A keyed operator does not set a key context for records of this input (the
   * broadcast side of a keyed broadcast operator). */
  bool unkeyed;
} fl_input_t;

typedef enum fl_rolling_kind { FL_ROLL_REDUCE, FL_ROLL_SUM, FL_ROLL_MIN, FL_ROLL_MAX } fl_rolling_kind_t;

typedef enum fl_window_fn_kind {
  FL_WFN_REDUCE,
  FL_WFN_AGGREGATE,
  FL_WFN_PROCESS
} fl_window_fn_kind_t;

typedef enum fl_window_kind {
  FL_WINDOW_TUMBLING,
  FL_WINDOW_SLIDING,
  FL_WINDOW_SESSION
} fl_window_kind_t;

typedef struct fl_window_conf {
  fl_window_kind_t kind;
  fl_time_domain_t domain;
  int64_t size, slide, offset, gap;
  int64_t allowed_lateness;
  const fl_output_tag_t *late_tag; /* NULL: late records are only counted */
  fl_window_fn_kind_t fn_kind;
  fl_reduce_fn reduce;
  fl_aggregate_fn_t agg; /* copied */
  fl_window_process_fn process;
  void *opaque;
  /* internal state descriptors, created at build time: the window contents (kind by
   * fn_kind: REDUCING, AGGREGATING or LIST) and, for session windows, the key's set of
   * live (merged) windows */
  struct fl_state_desc *contents;
  struct fl_state_desc *windows;
} fl_window_conf_t;

struct fl_output_tag {
  uint32_t id;
  char *name;
};

/* Per operator subtask counters, written by the owning worker, read by any thread. */
/* User metrics of one subtask (fl_ctx_counter_add/fl_ctx_gauge_set): written only by
 * the subtask's worker; a slot's name and kind are set before `n` is published with a
 * release store, so a reader that loads `n` with acquire sees them whole. */
#define FL_USER_METRICS_MAX 64
typedef struct fl_user_metric {
  char name[96];
  bool gauge;
  _Atomic int64_t value;
} fl_user_metric_t;
typedef struct fl_user_metrics {
  _Atomic int n;
  fl_user_metric_t m[FL_USER_METRICS_MAX];
} fl_user_metrics_t;

typedef struct fl_metrics {
  _Atomic uint64_t records_in;
  _Atomic uint64_t records_out;
  _Atomic uint64_t late_dropped;
  _Atomic int64_t input_watermark; /* FL_TS_NONE before the first */
  _Atomic(fl_user_metrics_t *) user; /* NULL until the first user metric */
} fl_metrics_t;

/* Frees the user metrics of n metrics slots. */
void fl_metrics_free_user(fl_metrics_t *m, size_t n);

typedef struct fl_node {
  uint32_t id;
  char *name;
  fl_node_kind_t kind;
  struct fl_env *env;
  fl_input_t *inputs;
  size_t n_inputs;
  bool keyed;    /* its inputs are hash-partitioned: a keyed operator with state/timers */
  bool parallel; /* sources: one instance per subtask (else on subtask 0 only) */
  union {
    struct { fl_source_fn_t fn; void *opaque; } source;
    struct { fl_map_fn fn; void *opaque; } map;        /* MAP, FLAT_MAP */
    struct { fl_filter_fn fn; void *opaque; } filter;
    struct { fl_process_fn_t fn; void *opaque; } process; /* PROCESS, KEYED_PROCESS */
    struct { fl_rolling_kind_t kind; fl_reduce_fn reduce; fl_number_fn number; void *opaque; } rolling;
    fl_window_conf_t window;
    struct { fl_watermark_strategy_t ws; } assign_ts;
    struct { fl_sink_fn_t fn; void *opaque; } sink;
    struct { fl_co_process_fn_t fn; void *opaque; } co;  /* CO_PROCESS, KEYED_CO_PROCESS */
    struct {
      fl_window_assigner_t w;
      fl_join_fn fn;
      void *opaque;
      struct fl_state_desc *left, *right; /* internal list states of the two sides */
    } wjoin;
    struct {
      fl_interval_join_opts_t o;
      fl_join_fn fn;
      void *opaque;
      struct fl_state_desc *left, *right; /* internal buffers of the two sides */
    } ijoin;
    struct { fl_broadcast_process_fn_t fn; void *opaque; } bcast;
  } u;
  fl_metrics_t *metrics;
  int n_metrics;           /* entries of metrics */ /* [parallelism], allocated at execute */
} fl_node_t;

/* The public stream handles. A stream is a node's main output or one of its side
 * outputs; a virtual stream (union, rebalance) is a list of inputs for whichever node
 * consumes it. */
struct fl_stream {
  struct fl_env *env;
  fl_input_t *parts; /* what a consumer of this stream gets as inputs */
  size_t n_parts;
  fl_node_t *node;   /* the node whose output this is; NULL for virtual streams */
};
struct fl_keyed_stream {
  fl_stream_t *in;
  fl_key_fn fn;
  void *opaque;
};
struct fl_windowed_stream {
  fl_keyed_stream_t *in;
  fl_window_conf_t conf;
};

/* ---------------------------------------------------------------------------------- */
/* Environment                                                                          */

typedef enum fl_restart_kind {
  FL_RESTART_NONE,
  FL_RESTART_FIXED,
  FL_RESTART_EXPONENTIAL,
  FL_RESTART_FAILURE_RATE
} fl_restart_kind_t;

typedef struct fl_restart_conf {
  fl_restart_kind_t kind;
  int fixed_attempts;
  int64_t fixed_delay_ms;
  int64_t exp_initial_ms, exp_max_ms, exp_reset_ms;
  double exp_multiplier;
  int exp_attempts;
  int rate_max;
  int64_t rate_interval_ms, rate_delay_ms;
} fl_restart_conf_t;

/* Resolved configuration. String members point into env->conf_copy (owned by env). */
typedef struct fl_env_conf {
  int parallelism;
  uint32_t max_parallelism;
  int64_t watermark_interval_ms;
  size_t batch_size;
  size_t channel_capacity;
  bool rocksdb;
  const char *rocksdb_dir; /* "" = /tmp */
  bool incremental;        /* RocksDB: checkpoints upload only new SST files */
  fl_kv_rocksdb_opts_t rocksdb_opts;
  const char *ckpt_dir;    /* "" = none */
  int ckpt_retained;
  int64_t ckpt_interval_ms; /* 0 = no periodic checkpoints */
  int64_t ckpt_min_pause_ms, ckpt_timeout_ms;
  int ckpt_tolerable;
  const char *restore_path; /* "" = start empty */
  fl_restart_conf_t restart;
} fl_env_conf_t;

struct fl_env {
  fl_env_conf_t conf;
  fl_config_t *conf_copy; /* backs the strings of conf */
  fl_node_t **nodes;
  size_t n_nodes, cap_nodes;
  fl_stream_t **streams;
  size_t n_streams, cap_streams;
  fl_keyed_stream_t **keyed;
  size_t n_keyed, cap_keyed;
  fl_windowed_stream_t **windowed;
  size_t n_windowed, cap_windowed;
  fl_output_tag_t **tags;
  size_t n_tags;
  struct fl_state_desc **descs;
  size_t n_descs;
  /* builder: sticky error */
  int error;
  char errmsg[1024];
  /* execution */
  int64_t (*clock)(void *opaque);
  void *clock_opaque;
  _Atomic int stop_requested;
  _Atomic int state; /* 0 built, 1 running, 2 finished */
  _Atomic(char *) job_name; /* set once by execute; read by metrics from any thread */
  _Atomic(struct fl_job *) job; /* while running */
  _Atomic int stoppers;           /* fl_env_stop() calls in progress */
  /* checkpoint statistics (Flink's names), across restarts */
  struct {
    _Atomic int64_t completed, failed, restored_id, restarts;
    _Atomic int64_t last_id, last_duration_ms, last_size, last_new_bytes;
  } ckpt_stats;
  int executed;
};

/* Adds a node with copies of the given inputs. On ENOMEM records the sticky error and
 * returns NULL. The node's id is its index in env->nodes. */
fl_node_t *fl_env_add_node(fl_env_t *env, fl_node_kind_t kind, const char *name,
                           const fl_input_t *inputs, size_t n_inputs);
/* The stream of a node's main output (made once per node). */
fl_stream_t *fl_node_stream(fl_node_t *node);
/* The inputs a consumer of a keyed stream gets: the stream's parts, hash-partitioned by
 * the key selector. *out is allocated (free() it). */
int fl_keyed_inputs(const fl_keyed_stream_t *ks, fl_input_t **out, size_t *n);

/* Records a sticky builder error (the first one wins). */
void fl_env_fail(fl_env_t *env, int err, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
int64_t fl_env_now(const fl_env_t *env);

/* ---------------------------------------------------------------------------------- */
/* Operator instances                                                                   */

typedef struct fl_op fl_op_t;

/* Where an operator's output goes: chained operators (function calls) and channel
 * writers (src/runtime). */
typedef struct fl_target {
  fl_op_t *op;      /* chained: op's logical input `logical` ... */
  int input;        /* ... and channel `input` (index into op->ins) */
  int logical;
  struct fl_edge_writer *edge; /* or a partitioned edge */
} fl_target_t;

typedef struct fl_out {
  fl_target_t *t;
  size_t n;
} fl_out_t;

struct fl_context {
  fl_op_t *op;
  int64_t ts;         /* current element / timer timestamp */
  const void *key;    /* current key (keyed operators) */
  size_t key_len;
  uint16_t kg;
  bool keyed;         /* key is valid */
  const void *ns;     /* namespace for state (window operators); empty otherwise */
  size_t ns_len;
  size_t emitted;     /* records emitted during the current call */
  size_t source_budget;
  int wait_fd;        /* set by fl_ctx_source_wait_fd, -1 if none */
  void *instance;     /* the user's per-subtask instance */
  int64_t checkpoint_id; /* during a source snapshot call: the checkpoint's id, else 0 */
};

typedef struct fl_op_class {
  const char *kind;
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
} fl_op_class_t;

#define FL_OP_KEEP_WATERMARK 1

/* Input channel bookkeeping: one slot per chained producer or per (edge, sender). */
typedef struct fl_in_chan {
  int64_t wm;    /* last watermark, FL_TS_NONE before one */
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
  fl_out_t out;            /* main output */
  fl_out_t *side;          /* [env->n_tags]: side outputs by tag id */
  fl_in_chan_t *ins;
  size_t n_ins, n_ended;
  int64_t wm;              /* current input watermark (min over non-idle inputs) */
  bool idle_out;           /* we told downstream we are idle */
  int64_t src_wm;          /* sources: last watermark fl_ctx_emit_watermark() forwarded */
  bool finished;
  /* keyed operators */
  fl_timers_t *timers;
  uint32_t kg_first, kg_count;
  fl_kv_t *kv;             /* the worker's backend */
  fl_state_scratch_t *worker_scratch; /* the worker's state scratch buffers */
  uint32_t *desc_tables;   /* [env->n_descs]: table id + 1, 0 = not opened yet */
  fl_ttl_cleanup_t *desc_cleanup; /* [env->n_descs] */
  bool ttl_every_record;   /* some descriptor asks for TTL cleanup after every record */
  fl_metrics_t *m;         /* &node->metrics[subtask] */
  void *state;             /* the class's own data */
  bool is_source;
  bool failed;             /* a call of this operator failed: it takes no more input */
  bool opened;
  char *pending_err;       /* message set by fl_ctx_fail() for the current call */
  uint64_t n_in, n_out;    /* counters, published to m */
  fl_buf_t timer_key;      /* copy of a firing timer's key and namespace */
  /* sources (runtime-private) */
  int src_fd;              /* fd registered with epoll, -1 */
  bool src_waiting;        /* waiting for src_fd */
  int64_t src_retry_at;
  struct fl_edge_writer **guards; /* edge writers reachable from this operator */
  size_t n_guards;
  /* checkpoints (runtime-private) */
  int64_t ckpt_aligning;   /* barrier being aligned (some channels delivered it), or 0 */
  int64_t ckpt_done;       /* last checkpoint this operator snapshotted */
  fl_buf_t ckpt_snap;      /* its snapshot, until the worker hands it over */
  fl_buf_t ckpt_final;     /* its snapshot when it ended (checkpoints after that) */
  bool has_final;          /* ckpt_final was taken */
  fl_kv_t own_kv;          /* RocksDB: the operator's own store (op->kv points here) */
  uint64_t store_id;       /* names that store instance in shared checkpoint files */
  char *native_dir;        /* incremental: the native copy behind ckpt_snap, or NULL */
  char *native_final;      /* ... and behind ckpt_final */
};

/* True once the job is failing or stopping (a sink's flush at that moment must not
 * commit anything). */
bool fl_op_job_failing(const fl_op_t *op);
/* The newest checkpoint the coordinator has triggered (0: none yet): a sink that ends
 * now is covered by the next checkpoint after it. */
int64_t fl_op_checkpoint_triggered(const fl_op_t *op);

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

/* Registers an internal descriptor (not visible to users) on the env at open time is
 * not allowed (the env is shared by threads): operators that need private state create
 * descriptors at build time with this call. */
struct fl_state_desc *fl_env_internal_desc(fl_env_t *env, const char *name,
                                           fl_state_kind_t kind);

/* Frees every state descriptor of env (calls agg.destroy once for user aggregating
 * ones). src/state/desc.c. */
void fl_state_descs_free(fl_env_t *env);

/* Operator classes (src/operators). */
extern const fl_op_class_t fl_op_source_class;
extern const fl_op_class_t fl_op_map_class;
extern const fl_op_class_t fl_op_flat_map_class;
extern const fl_op_class_t fl_op_filter_class;
extern const fl_op_class_t fl_op_process_class;
extern const fl_op_class_t fl_op_keyed_process_class;
extern const fl_op_class_t fl_op_rolling_class;
extern const fl_op_class_t fl_op_window_class;
extern const fl_op_class_t fl_op_assign_ts_class;
extern const fl_op_class_t fl_op_sink_class;
extern const fl_op_class_t fl_op_co_process_class;       /* src/operators/co.c */
extern const fl_op_class_t fl_op_keyed_co_process_class; /* src/operators/co.c */
extern const fl_op_class_t fl_op_window_join_class;      /* src/operators/join.c */
extern const fl_op_class_t fl_op_interval_join_class;    /* src/operators/join.c */
extern const fl_op_class_t fl_op_broadcast_process_class;/* src/operators/broadcast.c */

#endif
