/*
 * The logical job graph, as the builder (src/api) makes it and the runtime (src/runtime)
 * plans it: one fl_node per operator the user declared, with inputs that name the
 * producing node, the side-output tag, and how records are partitioned; and the public
 * stream handles. Data types only: nothing here runs.
 */
#ifndef FL_GRAPH_GRAPH_H
#define FL_GRAPH_GRAPH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "flink.h"
#include "graph/metrics.h"

struct fl_env;
struct fl_state_desc;
struct fl_op_class;

/* Every kind of node, once: X(ENUM, class, default name). The enum is FL_NODE_<ENUM>,
 * the operator class fl_op_<class>_class (src/operators), and a node without a name is
 * called "<default name>-<id>". */
#define FL_NODE_KIND_MAP(X)                                                           \
  X(SOURCE, source, "source")                                                         \
  X(MAP, map, "map")                                                                  \
  X(FLAT_MAP, flat_map, "flat_map")                                                   \
  X(FILTER, filter, "filter")                                                         \
  X(PROCESS, process, "process")                   /* ProcessFunction */              \
  X(KEYED_PROCESS, keyed_process, "keyed_process") /* KeyedProcessFunction */         \
  X(ROLLING, rolling, "rolling")                   /* rolling reduce/sum/min/max */   \
  X(WINDOW, window, "window")                                                         \
  X(ASSIGN_TS, assign_ts, "assign_timestamps")                                        \
  X(SINK, sink, "sink")                                                               \
  X(CO_PROCESS, co_process, "co_process") /* inputs of side 0 and 1 */                \
  X(KEYED_CO_PROCESS, keyed_co_process, "keyed_co_process")                           \
  X(WINDOW_JOIN, window_join, "window_join")                   /* keyed, two sides */ \
  X(INTERVAL_JOIN, interval_join, "interval_join")             /* keyed, two sides */ \
  X(BROADCAST_PROCESS, broadcast_process, "broadcast_process") /* keyed 0, broadcast 1 */

typedef enum fl_node_kind {
#define FL_NODE_ENUM_(e, c, n) FL_NODE_##e,
  FL_NODE_KIND_MAP(FL_NODE_ENUM_)
#undef FL_NODE_ENUM_
  FL_NODE_KIND_COUNT_
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

typedef enum fl_rolling_kind {
  FL_ROLL_REDUCE,
  FL_ROLL_SUM,
  FL_ROLL_MIN,
  FL_ROLL_MAX
} fl_rolling_kind_t;

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
  /* Internal state descriptors, made at build time: the window contents (kind by
   * fn_kind: REDUCING, AGGREGATING or LIST), for session windows the key's set of live
   * (merged) windows, and for the others the keys of each window (below). */
  struct fl_state_desc *contents;
  struct fl_state_desc *windows;
  /* Tumbling and sliding windows with a reduce or aggregate function: the keys with
   * contents in a window, per key group (src/operators/window.c: group timers). */
  struct fl_state_desc *keys;
} fl_window_conf_t;

struct fl_output_tag {
  uint32_t id;
  char *name;
};

typedef struct fl_node {
  uint32_t id;
  char *name;
  fl_node_kind_t kind;
  /* What runs it (src/operators), set by the builder from the kind. The runtime knows
   * operators only through this table and its flags. */
  const struct fl_op_class *cls;
  struct fl_env *env;
  fl_input_t *inputs;
  size_t n_inputs;
  bool keyed;    /* its inputs are hash-partitioned: a keyed operator with state/timers */
  bool parallel; /* sources: one instance per subtask (else on subtask 0 only) */
  /* The user's opaque pointer the node keeps, released once when the environment is
   * destroyed (NULL: nothing to release). */
  void (*release)(void *opaque);
  void *release_opaque;
  union {
    struct {
      fl_source_fn_t fn;
      void *opaque;
    } source;
    struct {
      fl_map_fn fn;
      void *opaque;
    } map; /* MAP, FLAT_MAP */
    struct {
      fl_filter_fn fn;
      void *opaque;
    } filter;
    struct {
      fl_process_fn_t fn;
      void *opaque;
    } process; /* PROCESS, KEYED_PROCESS */
    struct {
      fl_rolling_kind_t kind;
      fl_reduce_fn reduce;
      fl_number_fn number;
      void *opaque;
    } rolling;
    fl_window_conf_t window;
    struct {
      fl_watermark_strategy_t ws;
    } assign_ts;
    struct {
      fl_sink_fn_t fn;
      void *opaque;
    } sink;
    struct {
      fl_co_process_fn_t fn;
      void *opaque;
    } co; /* CO_PROCESS, KEYED_CO_PROCESS */
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
    struct {
      fl_broadcast_process_fn_t fn;
      void *opaque;
    } bcast;
  } u;
  fl_metrics_t *metrics; /* [n_metrics] = [parallelism], allocated when the job is planned */
  int n_metrics;
} fl_node_t;

/* The public stream handles. A stream is a node's main output or one of its side
 * outputs; a virtual stream (union, rebalance) is a list of inputs for whichever node
 * consumes it. */
struct fl_stream {
  struct fl_env *env;
  fl_input_t *parts; /* what a consumer of this stream gets as inputs */
  size_t n_parts;
  fl_node_t *node; /* the node whose output this is; NULL for virtual streams */
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

#endif
