/*
 * Builder calls of flink.h's "Two inputs" section: connect (CoProcessFunction and
 * KeyedCoProcessFunction), window join, interval join and keyed broadcast process.
 *
 * A two-input node's inputs are the parts of the first stream (side 0) followed by the
 * parts of the second (side 1); the runtime passes each record's side to the operator
 * class and keeps one watermark per input channel, so the operator's event time is the
 * minimum over both inputs.
 *
 * The window join is not an operator of its own: like Flink's JoinedStreams (a coGroup
 * over the union of the tagged inputs), it is a small FL_NODE_WINDOW_JOIN node that
 * receives both keyed inputs and tags each value with its side, chained to an ordinary
 * window node (window.c) whose window function pairs the tagged elements when a window
 * fires. Assignment, session merging across both sides, lateness and processing time
 * are then exactly those of windows.
 *
 * As everywhere in the builder, invalid arguments record a sticky error naming the
 * operator; a function table that is not kept has its destroy called at once.
 */
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/builder.h"
#include "operators/two_input.h"

/* The user's name, or "<kind>-<id>" with the id the next node gets. */
static const char *node_name(const fl_env_t *env, const char *name, const char *kind, char *buf,
                             size_t size) {
  if (name && *name) return name;
  snprintf(buf, size, "%s-%zu", kind, env->n_nodes);
  return buf;
}

/* What every two-input builder checks before touching the graph. */
static bool can_build(fl_env_t *env, const fl_env_t *other, const char *what) {
  if (atomic_load(&env->state) != 0) {
    fl_env_fail(env, FL_EINVAL, "the job graph cannot change after execute");
    return false;
  }
  if (env != other) {
    fl_env_fail(env, FL_EINVAL, "%s: the two streams belong to different environments", what);
    return false;
  }
  return true;
}

/* Concatenates the inputs of the two sides, marking their side. *out is allocated
 * (free() it). */
static int concat_inputs(const fl_input_t *a, size_t na, const fl_input_t *b, size_t nb,
                         fl_input_t **out, size_t *n) {
  fl_input_t *in = calloc(na + nb ? na + nb : 1, sizeof *in);
  if (!in) return FL_ENOMEM;
  for (size_t i = 0; i < na; i++) {
    in[i] = a[i];
    in[i].side = 0;
  }
  for (size_t i = 0; i < nb; i++) {
    in[na + i] = b[i];
    in[na + i].side = 1;
  }
  *out = in;
  *n = na + nb;
  return FL_OK;
}

/* The environment of a builder (`what`) over two keyed streams, and its node's inputs
 * (*out, free() it): both streams, hash-partitioned by their own key selectors. NULL
 * when it cannot be built (the failure recorded, unless a stream is NULL). */
static fl_env_t *keyed_pair_inputs(const fl_keyed_stream_t *a, const fl_keyed_stream_t *b,
                                   const char *what, fl_input_t **out, size_t *n) {
  if (!a || !b || !a->in || !b->in || !can_build(a->in->env, b->in->env, what)) return NULL;
  fl_input_t *ia = NULL, *ib = NULL;
  size_t na = 0, nb = 0;
  int rc = fl_keyed_inputs(a, &ia, &na);
  if (!rc) rc = fl_keyed_inputs(b, &ib, &nb);
  if (!rc) rc = concat_inputs(ia, na, ib, nb, out, n);
  free(ia);
  free(ib);
  if (rc) fl_env_fail(a->in->env, FL_ENOMEM, FL_NOMEM_MSG);
  return rc ? NULL : a->in->env;
}

/* ---------------------------------------------------------------------------------- */
/* connect                                                                              */

static fl_stream_t *add_co(fl_env_t *env, const fl_input_t *inputs, size_t n, fl_node_kind_t kind,
                           const char *name, const fl_co_process_fn_t *fn, void *opaque) {
  char gen[64];
  const char *kind_name = kind == FL_NODE_KEYED_CO_PROCESS ? "keyed_co_process" : "co_process";
  fl_node_t *node =
      fl_env_add_node(env, kind, node_name(env, name, kind_name, gen, sizeof gen), inputs, n);
  if (!node) {
    fl_release_unkept(fn ? fn->destroy : NULL, opaque);
    return NULL;
  }
  node->keyed = kind == FL_NODE_KEYED_CO_PROCESS;
  const char *why = NULL;
  if (!fn)
    why = "the function table is NULL";
  else if (fn->version != FL_CO_PROCESS_FN_VERSION)
    why = "the function table is of another version";
  else if (!fn->process1 || !fn->process2)
    why = "process1 and process2 are required";
  if (fl_node_adopt(node, "operator", "co-process function: ", why, fn ? fn->destroy : NULL,
                    opaque)) {
    node->u.co.fn = *fn;
    node->u.co.opaque = opaque;
  }
  return fl_node_stream(node);
}

fl_stream_t *fl_connect_process(fl_stream_t *a, fl_stream_t *b, const char *name,
                                const fl_co_process_fn_t *fn, void *opaque) {
  fl_stream_t *s = NULL;
  fl_input_t *inputs = NULL;
  size_t n = 0;
  if (!a || !b || !can_build(a->env, b->env, "connect")) goto release;
  if (concat_inputs(a->parts, a->n_parts, b->parts, b->n_parts, &inputs, &n)) {
    fl_env_fail(a->env, FL_ENOMEM, FL_NOMEM_MSG);
    goto release;
  }
  /* Each input keeps its partitioning (forward: chained on the same subtask). */
  s = add_co(a->env, inputs, n, FL_NODE_CO_PROCESS, name, fn, opaque);
  free(inputs);
  return s;
release:
  fl_release_unkept(fn ? fn->destroy : NULL, opaque);
  return NULL;
}

fl_stream_t *fl_keyed_connect_process(fl_keyed_stream_t *a, fl_keyed_stream_t *b, const char *name,
                                      const fl_co_process_fn_t *fn, void *opaque) {
  fl_input_t *inputs = NULL;
  size_t n = 0;
  fl_env_t *env = keyed_pair_inputs(a, b, "keyed connect", &inputs, &n);
  if (!env) {
    fl_release_unkept(fn ? fn->destroy : NULL, opaque);
    return NULL;
  }
  fl_stream_t *s = add_co(env, inputs, n, FL_NODE_KEYED_CO_PROCESS, name, fn, opaque);
  free(inputs);
  return s;
}

/* ---------------------------------------------------------------------------------- */
/* Window join                                                                          */

/* Why the assigner is invalid (written to buf), or NULL. The window builders would
 * catch the same, but their message cannot name the join. */
static const char *assigner_error(const fl_window_assigner_t *w, char *buf, size_t size) {
  if (!w) return "the window assigner is NULL";
  if (w->domain != FL_EVENT_TIME && w->domain != FL_PROCESSING_TIME) {
    snprintf(buf, size, "unknown time domain %d", (int)w->domain);
    return buf;
  }
  switch (w->kind) {
  case FL_ASSIGNER_TUMBLING:
    if (w->size_ms <= 0)
      snprintf(buf, size, "tumbling window size must be > 0 (size %lld ms)", (long long)w->size_ms);
    else if (w->offset_ms <= -w->size_ms || w->offset_ms >= w->size_ms)
      snprintf(buf, size,
               "tumbling window offset must satisfy |offset| < size (offset %lld ms, size "
               "%lld ms)",
               (long long)w->offset_ms, (long long)w->size_ms);
    else
      return NULL;
    return buf;
  case FL_ASSIGNER_SLIDING:
    if (w->size_ms <= 0 || w->slide_ms <= 0)
      snprintf(buf, size, "sliding window size and slide must be > 0 (size %lld ms, slide %lld ms)",
               (long long)w->size_ms, (long long)w->slide_ms);
    else if (w->offset_ms <= -w->slide_ms || w->offset_ms >= w->slide_ms)
      snprintf(buf, size,
               "sliding window offset must satisfy |offset| < slide (offset %lld ms, slide "
               "%lld ms)",
               (long long)w->offset_ms, (long long)w->slide_ms);
    else
      return NULL;
    return buf;
  case FL_ASSIGNER_SESSION:
    if (w->gap_ms > 0) return NULL;
    snprintf(buf, size, "session gap must be > 0 (gap %lld ms)", (long long)w->gap_ms);
    return buf;
  }
  snprintf(buf, size, "unknown window assigner kind %d", (int)w->kind);
  return buf;
}

fl_stream_t *fl_window_join(fl_keyed_stream_t *a, fl_keyed_stream_t *b, const char *name,
                            const fl_window_assigner_t *w, fl_join_fn fn, void *opaque) {
  fl_input_t *inputs = NULL;
  size_t n = 0;
  fl_env_t *env = keyed_pair_inputs(a, b, "window join", &inputs, &n);
  if (!env) return NULL;
  fl_stream_t *out = NULL;
  char gen[64], sides[600], why_buf[256];
  const char *jname = node_name(env, name, "window_join", gen, sizeof gen);
  snprintf(sides, sizeof sides, "%s.sides", jname);
  fl_node_t *tag = fl_env_add_node(env, FL_NODE_WINDOW_JOIN, sides, inputs, n);
  if (!tag) goto done;
  fl_stream_t *tagged = fl_node_stream(tag);
  if (!tagged) goto done;
  const char *why = assigner_error(w, why_buf, sizeof why_buf);
  if (why) {
    fl_env_fail(env, FL_EINVAL, "window join '%s': %s", jname, why);
    out = tagged; /* the job will not run; any stream of this env will do */
    goto done;
  }
  if (!fn) fl_env_fail(env, FL_EINVAL, "window join '%s': join function is NULL", jname);
  tag->u.wjoin.w = *w;
  tag->u.wjoin.fn = fn;
  tag->u.wjoin.opaque = opaque;

  /* The tagged records carry the join key as their record key (a channel replaces the
   * key by the selector's bytes), so the window node keys them by that key. */
  fl_keyed_stream_t *ks = fl_stream_key_by(tagged, NULL, NULL);
  fl_windowed_stream_t *ws = NULL;
  switch (w->kind) {
  case FL_ASSIGNER_TUMBLING:
    ws = fl_window_tumbling(ks, w->domain, w->size_ms, w->offset_ms);
    break;
  case FL_ASSIGNER_SLIDING:
    ws = fl_window_sliding(ks, w->domain, w->size_ms, w->slide_ms, w->offset_ms);
    break;
  case FL_ASSIGNER_SESSION: ws = fl_window_session(ks, w->domain, w->gap_ms); break;
  }
  if (!ws) {
    out = tagged;
    goto done;
  }
  out = fl_window_process(ws, jname, fl_window_join_fire, tag);
  if (!out || !out->node) goto done;
  /* Same key, same key group, same subtask: the tagging node runs where its records
   * arrived, so the window node is chained to it instead of shuffling again. */
  for (size_t i = 0; i < out->node->n_inputs; i++) {
    out->node->inputs[i].part = FL_PART_FORWARD;
    out->node->inputs[i].key_fn = NULL;
    out->node->inputs[i].key_opaque = NULL;
  }
done:
  free(inputs);
  return out;
}

/* ---------------------------------------------------------------------------------- */
/* Interval join                                                                        */

fl_stream_t *fl_interval_join(fl_keyed_stream_t *a, fl_keyed_stream_t *b, const char *name,
                              const fl_interval_join_opts_t *opts, fl_join_fn fn, void *opaque) {
  fl_input_t *inputs = NULL;
  size_t n = 0;
  fl_env_t *env = keyed_pair_inputs(a, b, "interval join", &inputs, &n);
  if (!env) return NULL;
  fl_stream_t *out = NULL;
  char gen[64], dname[64];
  fl_node_t *node =
      fl_env_add_node(env, FL_NODE_INTERVAL_JOIN,
                      node_name(env, name, "interval_join", gen, sizeof gen), inputs, n);
  if (!node) goto done;
  node->keyed = true;
  if (!opts || opts->version != FL_INTERVAL_JOIN_OPTS_VERSION) {
    fl_env_fail(env, FL_EINVAL, "interval join '%s': options are NULL or of another version",
                node->name);
  } else if (opts->lower_ms > opts->upper_ms) {
    fl_env_fail(env, FL_EINVAL,
                "interval join '%s': lower bound %lld ms is above upper bound %lld ms", node->name,
                (long long)opts->lower_ms, (long long)opts->upper_ms);
  } else {
    node->u.ijoin.o = *opts;
  }
  if (!fn) fl_env_fail(env, FL_EINVAL, "interval join '%s': join function is NULL", node->name);
  node->u.ijoin.fn = fn;
  node->u.ijoin.opaque = opaque;
  snprintf(dname, sizeof dname, "%u-ijoin-left", node->id);
  node->u.ijoin.left = fl_env_internal_desc(env, dname, FL_STATE_MAP);
  snprintf(dname, sizeof dname, "%u-ijoin-right", node->id);
  node->u.ijoin.right = fl_env_internal_desc(env, dname, FL_STATE_MAP);
  if (!node->u.ijoin.left || !node->u.ijoin.right)
    fl_env_fail(env, FL_ENOMEM, "interval join '%s': cannot create its state", node->name);
  out = fl_node_stream(node);
done:
  free(inputs);
  return out;
}

/* ---------------------------------------------------------------------------------- */
/* Broadcast                                                                            */

fl_stream_t *fl_keyed_broadcast_process(fl_keyed_stream_t *keyed, fl_stream_t *broadcast,
                                        const char *name, const fl_broadcast_process_fn_t *fn,
                                        void *opaque) {
  fl_input_t *ka = NULL, *inputs = NULL;
  size_t na = 0, n = 0;
  fl_stream_t *out = NULL;
  char gen[64];
  if (!keyed || !keyed->in || !broadcast ||
      !can_build(keyed->in->env, broadcast->env, "broadcast process"))
    goto release;
  fl_env_t *env = keyed->in->env;
  if (fl_keyed_inputs(keyed, &ka, &na) ||
      concat_inputs(ka, na, broadcast->parts, broadcast->n_parts, &inputs, &n)) {
    fl_env_fail(env, FL_ENOMEM, FL_NOMEM_MSG);
    goto release;
  }
  /* The broadcast side reaches every subtask and is processed without a key. */
  for (size_t i = na; i < n; i++) {
    inputs[i].part = FL_PART_BROADCAST;
    inputs[i].key_fn = NULL;
    inputs[i].key_opaque = NULL;
    inputs[i].unkeyed = true;
  }
  fl_node_t *node =
      fl_env_add_node(env, FL_NODE_BROADCAST_PROCESS,
                      node_name(env, name, "broadcast_process", gen, sizeof gen), inputs, n);
  if (!node) goto release;
  node->keyed = true;
  const char *why = NULL;
  if (!fn)
    why = "the function table is NULL";
  else if (fn->version != FL_BROADCAST_PROCESS_FN_VERSION)
    why = "the function table is of another version";
  else if (!fn->process || !fn->process_broadcast)
    why = "process and process_broadcast are required";
  if (fl_node_adopt(node, "operator", "broadcast process function: ", why, fn ? fn->destroy : NULL,
                    opaque)) {
    node->u.bcast.fn = *fn;
    node->u.bcast.opaque = opaque;
  }
  out = fl_node_stream(node);
  goto done;
release:
  fl_release_unkept(fn ? fn->destroy : NULL, opaque);
done:
  free(ka);
  free(inputs);
  return out;
}
