/* The one-input builders: sources, assignTimestampsAndWatermarks, map, flat_map,
 * filter, process and keyed process, rolling aggregations, sinks. */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "api/builder.h"

#define CHECK_BUILD(in)                                 \
  do {                                                  \
    if (!(in)) return NULL;                             \
    if (!fl_builder_may_change((in)->env)) return NULL; \
  } while (0)

/* The same for builders given an opaque pointer: one they cannot keep is released. */
#define CHECK_BUILD_KEEPING(in, destroy, opaque)      \
  do {                                                \
    if (!(in) || !fl_builder_may_change((in)->env)) { \
      fl_release_unkept(destroy, opaque);             \
      return NULL;                                    \
    }                                                 \
  } while (0)

/* A node fed by a stream: forward parts stay forward, partitioned parts (union of
 * rebalanced streams) keep their partitioning. */
static fl_stream_t *add_unary(fl_stream_t *in, fl_node_kind_t kind, const char *name,
                              fl_node_t **node_out) {
  fl_env_t *env = in->env;
  fl_node_t *n = fl_env_add_node(env, kind, name, in->parts, in->n_parts);
  if (!n) return NULL;
  if (node_out) *node_out = n;
  return fl_node_stream(n);
}

fl_stream_t *fl_source(fl_env_t *env, const char *name, const fl_source_fn_t *fn, void *opaque,
                       int parallel) {
  void (*destroy)(void *) = fn ? fn->destroy : NULL;
  if (!env || !fl_builder_may_change(env)) {
    fl_release_unkept(destroy, opaque);
    return NULL;
  }
  fl_node_t *n = fl_env_add_node(env, FL_NODE_SOURCE, name, NULL, 0);
  if (!n) {
    fl_release_unkept(destroy, opaque);
    return NULL;
  }
  if (!fn || fn->version < 1 || fn->version > FL_SOURCE_FN_VERSION || !fn->run) {
    fl_env_fail(env, FL_EINVAL,
                "source '%s': function table is NULL, of another version or has no run", n->name);
    fl_release_unkept(destroy, opaque);
  } else {
    /* A version 1 table ends before the checkpoint hooks. */
    memset(&n->u.source.fn, 0, sizeof n->u.source.fn);
    memcpy(&n->u.source.fn, fn,
           fn->version == 1   ? offsetof(fl_source_fn_t, snapshot)
           : fn->version == 2 ? offsetof(fl_source_fn_t, checkpoint_complete)
                              : sizeof *fn);
    n->u.source.opaque = opaque;
    fl_node_keep(n, fn->destroy, opaque);
  }
  n->parallel = parallel != 0;
  return fl_node_stream(n);
}

fl_stream_t *fl_stream_assign_timestamps(fl_stream_t *in, const char *name,
                                         const fl_watermark_strategy_t *ws) {
  CHECK_BUILD(in);
  fl_node_t *n = NULL;
  fl_stream_t *s = add_unary(in, FL_NODE_ASSIGN_TS, name, &n);
  if (!n) return s;
  if (!ws || ws->version != FL_WATERMARK_STRATEGY_VERSION ||
      (ws->kind != FL_WATERMARKS_NONE && ws->kind != FL_WATERMARKS_MONOTONOUS &&
       ws->kind != FL_WATERMARKS_BOUNDED) ||
      ws->max_out_of_orderness_ms < 0 || ws->idle_timeout_ms < 0) {
    fl_env_fail(in->env, FL_EINVAL,
                "operator '%s': watermark strategy is NULL, of another version, or has a "
                "negative duration",
                n->name);
  } else {
    n->u.assign_ts.ws = *ws;
  }
  return s;
}

static fl_stream_t *add_fn_node(fl_stream_t *in, fl_node_kind_t kind, const char *name, void *fn,
                                void *opaque) {
  CHECK_BUILD(in);
  fl_node_t *n = NULL;
  fl_stream_t *s = add_unary(in, kind, name, &n);
  if (!n) return s;
  if (!fn) fl_env_fail(in->env, FL_EINVAL, "operator '%s': function is NULL", n->name);
  if (kind == FL_NODE_FILTER) {
    n->u.filter.fn = (fl_filter_fn)fn;
    n->u.filter.opaque = opaque;
  } else {
    n->u.map.fn = (fl_map_fn)fn;
    n->u.map.opaque = opaque;
  }
  return s;
}

fl_stream_t *fl_stream_map(fl_stream_t *in, const char *name, fl_map_fn fn, void *opaque) {
  return add_fn_node(in, FL_NODE_MAP, name, (void *)fn, opaque);
}
fl_stream_t *fl_stream_flat_map(fl_stream_t *in, const char *name, fl_map_fn fn, void *opaque) {
  return add_fn_node(in, FL_NODE_FLAT_MAP, name, (void *)fn, opaque);
}
fl_stream_t *fl_stream_filter(fl_stream_t *in, const char *name, fl_filter_fn fn, void *opaque) {
  return add_fn_node(in, FL_NODE_FILTER, name, (void *)fn, opaque);
}

static fl_stream_t *add_process(fl_stream_t *in, const fl_input_t *inputs, size_t n_inputs,
                                fl_node_kind_t kind, const char *name, const fl_process_fn_t *fn,
                                void *opaque) {
  fl_env_t *env = in->env;
  fl_node_t *n = fl_env_add_node(env, kind, name, inputs, n_inputs);
  if (!n) {
    fl_release_unkept(fn ? fn->destroy : NULL, opaque);
    return NULL;
  }
  n->keyed = kind == FL_NODE_KEYED_PROCESS;
  if (!fn || fn->version != FL_PROCESS_FN_VERSION || !fn->process) {
    fl_env_fail(env, FL_EINVAL,
                "operator '%s': process function table is NULL, of another version or has no "
                "process",
                n->name);
    fl_release_unkept(fn ? fn->destroy : NULL, opaque);
  } else {
    n->u.process.fn = *fn;
    n->u.process.opaque = opaque;
    fl_node_keep(n, fn->destroy, opaque);
  }
  return fl_node_stream(n);
}

fl_stream_t *fl_stream_process(fl_stream_t *in, const char *name, const fl_process_fn_t *fn,
                               void *opaque) {
  CHECK_BUILD_KEEPING(in, fn ? fn->destroy : NULL, opaque);
  return add_process(in, in->parts, in->n_parts, FL_NODE_PROCESS, name, fn, opaque);
}

fl_stream_t *fl_keyed_process(fl_keyed_stream_t *ks, const char *name, const fl_process_fn_t *fn,
                              void *opaque) {
  CHECK_BUILD_KEEPING(ks ? ks->in : NULL, fn ? fn->destroy : NULL, opaque);
  fl_input_t *inputs = NULL;
  size_t n = 0;
  if (fl_keyed_inputs(ks, &inputs, &n)) {
    fl_env_fail(ks->in->env, FL_ENOMEM, FL_NOMEM_MSG);
    fl_release_unkept(fn ? fn->destroy : NULL, opaque);
    return NULL;
  }
  fl_stream_t *s = add_process(ks->in, inputs, n, FL_NODE_KEYED_PROCESS, name, fn, opaque);
  free(inputs);
  return s;
}

static fl_stream_t *add_rolling(fl_keyed_stream_t *ks, const char *name, fl_rolling_kind_t kind,
                                fl_reduce_fn reduce, fl_number_fn number, void *opaque) {
  if (!ks) return NULL;
  CHECK_BUILD(ks->in);
  fl_env_t *env = ks->in->env;
  fl_input_t *inputs = NULL;
  size_t n = 0;
  if (fl_keyed_inputs(ks, &inputs, &n)) {
    fl_env_fail(env, FL_ENOMEM, FL_NOMEM_MSG);
    return NULL;
  }
  fl_node_t *node = fl_env_add_node(env, FL_NODE_ROLLING, name, inputs, n);
  free(inputs);
  if (!node) return NULL;
  node->keyed = true;
  node->u.rolling.kind = kind;
  node->u.rolling.reduce = reduce;
  node->u.rolling.number = number;
  node->u.rolling.opaque = opaque;
  if (kind == FL_ROLL_REDUCE && !reduce)
    fl_env_fail(env, FL_EINVAL, "operator '%s': reduce function is NULL", node->name);
  return fl_node_stream(node);
}

fl_stream_t *fl_keyed_reduce(fl_keyed_stream_t *in, const char *name, fl_reduce_fn fn,
                             void *opaque) {
  return add_rolling(in, name, FL_ROLL_REDUCE, fn, NULL, opaque);
}
fl_stream_t *fl_keyed_sum(fl_keyed_stream_t *in, const char *name, fl_number_fn fn, void *opaque) {
  return add_rolling(in, name, FL_ROLL_SUM, NULL, fn, opaque);
}
fl_stream_t *fl_keyed_min(fl_keyed_stream_t *in, const char *name, fl_number_fn fn, void *opaque) {
  return add_rolling(in, name, FL_ROLL_MIN, NULL, fn, opaque);
}
fl_stream_t *fl_keyed_max(fl_keyed_stream_t *in, const char *name, fl_number_fn fn, void *opaque) {
  return add_rolling(in, name, FL_ROLL_MAX, NULL, fn, opaque);
}

int fl_stream_sink(fl_stream_t *in, const char *name, const fl_sink_fn_t *fn, void *opaque) {
  if (!in || !fl_builder_may_change(in->env)) {
    fl_release_unkept(fn ? fn->destroy : NULL, opaque);
    return FL_EINVAL;
  }
  fl_node_t *n = fl_env_add_node(in->env, FL_NODE_SINK, name, in->parts, in->n_parts);
  if (!n) {
    fl_release_unkept(fn ? fn->destroy : NULL, opaque);
    return FL_ENOMEM;
  }
  if (!fn || fn->version < 1 || fn->version > FL_SINK_FN_VERSION || !fn->write) {
    fl_env_fail(in->env, FL_EINVAL,
                "sink '%s': function table is NULL, of another version or has no write", n->name);
    fl_release_unkept(fn ? fn->destroy : NULL, opaque);
    return FL_EINVAL;
  }
  /* A version 1 table ends before the checkpoint hooks. */
  memset(&n->u.sink.fn, 0, sizeof n->u.sink.fn);
  memcpy(&n->u.sink.fn, fn, fn->version == 1 ? offsetof(fl_sink_fn_t, snapshot) : sizeof *fn);
  n->u.sink.opaque = opaque;
  fl_node_keep(n, fn->destroy, opaque);
  return FL_OK;
}
