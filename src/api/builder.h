/*
 * What the builder calls (src/api) share: adding nodes and streams to an environment's
 * graph, the rule for opaque pointers, and internal state descriptors. Private to
 * src/api (connectors use runtime/connector.h).
 *
 * Ownership rule of every builder: a function table's opaque pointer that the graph
 * keeps is released (its destroy called) exactly once, when the environment is
 * destroyed; one that it does not keep, because the call failed, is released at once,
 * before the call returns (fl_release_unkept).
 */
#ifndef FL_API_BUILDER_H
#define FL_API_BUILDER_H

#include <stdbool.h>
#include <stddef.h>

#include "graph/env.h"
#include "graph/graph.h"
#include "state/state.h"

#define FL_NOMEM_MSG "out of memory while building the job graph"

/* Adds a node of kind (with its operator class) and copies of the given inputs. On
 * ENOMEM records the sticky error and returns NULL. The node's id is its index in
 * env->nodes; name NULL or "": "<kind>-<id>". */
fl_node_t *fl_env_add_node(fl_env_t *env, fl_node_kind_t kind, const char *name,
                           const fl_input_t *inputs, size_t n_inputs);
/* The stream of a node's main output (made once per node). */
fl_stream_t *fl_node_stream(fl_node_t *node);
/* The inputs a consumer of a keyed stream gets: the stream's parts, hash-partitioned by
 * the key selector. *out is allocated (free() it). */
int fl_keyed_inputs(const fl_keyed_stream_t *ks, fl_input_t **out, size_t *n);

/* Whether a builder may change env's graph now; records the sticky error if not. */
bool fl_builder_may_change(fl_env_t *env);

/* The node keeps opaque: destroy(opaque) runs once when env is destroyed. */
void fl_node_keep(fl_node_t *node, void (*destroy)(void *), void *opaque);
/* Ends a builder's check of its function table. why NULL: the node keeps opaque
 * (fl_node_keep), true. Otherwise the build fails with "<what> '<node>': <table><why>"
 * and opaque is released now: false. */
bool fl_node_adopt(fl_node_t *node, const char *what, const char *table, const char *why,
                   void (*destroy)(void *), void *opaque);
/* A builder that does not keep opaque (it failed) releases it now. */
static inline void fl_release_unkept(void (*destroy)(void *), void *opaque) {
  if (destroy) destroy(opaque);
}

/* Registers a descriptor for an operator's own state (window contents etc.), not
 * visible to users; made at build time, since the env is shared by threads at run
 * time. NULL with the sticky error set on failure. */
struct fl_state_desc *fl_env_internal_desc(fl_env_t *env, const char *name, fl_state_kind_t kind);
/* Frees every state descriptor of env (calls agg.destroy once for user aggregating
 * ones). */
void fl_state_descs_free(fl_env_t *env);

#endif
