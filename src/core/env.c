/* The environment and the builder calls that describe a job graph. Builder calls never
 * fail on their own: invalid arguments record a sticky error that fl_env_execute()
 * reports, so a user can write a whole pipeline and check one return code. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <stddef.h>
#include <string.h>
#include <time.h>

#include "core/config.h"
#include "core/internal.h"

#define GROW(arr, n, cap)                                        \
  do {                                                           \
    if ((n) == (cap)) {                                          \
      size_t nc_ = (cap) ? (cap) * 2 : 8;                        \
      void *p_ = realloc((arr), nc_ * sizeof(*(arr)));           \
      if (!p_) return NULL;                                      \
      (arr) = p_;                                                \
      (cap) = nc_;                                               \
    }                                                            \
  } while (0)

static int64_t wall_clock_ms(void *opaque) {
  (void)opaque;
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int fl_env_new(fl_env_t **out, const fl_config_t *conf, char *errstr, size_t errstr_size) {
  if (!out) return FL_EINVAL;
  *out = NULL;
  fl_env_t *env = calloc(1, sizeof *env);
  if (!env) return FL_ENOMEM;
  env->conf_copy = fl_config_copy(conf);
  if (!env->conf_copy) {
    free(env);
    return FL_ENOMEM;
  }
  int rc = fl_config_resolve(env->conf_copy, &env->conf, errstr, errstr_size);
  if (rc) {
    fl_config_destroy(env->conf_copy);
    free(env);
    return rc;
  }
  env->clock = wall_clock_ms;
  *out = env;
  return FL_OK;
}

static void free_inputs_fn(fl_node_t *n) {
  switch (n->kind) {
  case FL_NODE_SOURCE:
    if (n->u.source.fn.destroy) n->u.source.fn.destroy(n->u.source.opaque);
    break;
  case FL_NODE_PROCESS:
  case FL_NODE_KEYED_PROCESS:
    if (n->u.process.fn.destroy) n->u.process.fn.destroy(n->u.process.opaque);
    break;
  case FL_NODE_SINK:
    if (n->u.sink.fn.destroy) n->u.sink.fn.destroy(n->u.sink.opaque);
    break;
  case FL_NODE_WINDOW:
    if (n->u.window.fn_kind == FL_WFN_AGGREGATE && n->u.window.agg.destroy)
      n->u.window.agg.destroy(n->u.window.opaque);
    break;
  case FL_NODE_CO_PROCESS:
  case FL_NODE_KEYED_CO_PROCESS:
    if (n->u.co.fn.destroy) n->u.co.fn.destroy(n->u.co.opaque);
    break;
  case FL_NODE_BROADCAST_PROCESS:
    if (n->u.bcast.fn.destroy) n->u.bcast.fn.destroy(n->u.bcast.opaque);
    break;
  default:
    break;
  }
}

void fl_env_destroy(fl_env_t *env) {
  if (!env) return;
  for (size_t i = 0; i < env->n_nodes; i++) {
    fl_node_t *n = env->nodes[i];
    free_inputs_fn(n);
    free(n->name);
    free(n->inputs);
    fl_metrics_free_user(n->metrics, (size_t)n->n_metrics);
    free(n->metrics);
    free(n);
  }
  free(env->nodes);
  for (size_t i = 0; i < env->n_streams; i++) {
    free(env->streams[i]->parts);
    free(env->streams[i]);
  }
  free(env->streams);
  for (size_t i = 0; i < env->n_keyed; i++) free(env->keyed[i]);
  free(env->keyed);
  for (size_t i = 0; i < env->n_windowed; i++) free(env->windowed[i]);
  free(env->windowed);
  for (size_t i = 0; i < env->n_tags; i++) {
    free(env->tags[i]->name);
    free(env->tags[i]);
  }
  free(env->tags);
  fl_state_descs_free(env);
  free(atomic_load(&env->job_name));
  fl_config_destroy(env->conf_copy);
  free(env);
}

void fl_env_fail(fl_env_t *env, int err, const char *fmt, ...) {
  if (!env || env->error) return;
  env->error = err ? err : FL_EINVAL;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(env->errmsg, sizeof env->errmsg, fmt, ap);
  va_end(ap);
}

const char *fl_env_error(const fl_env_t *env) { return env ? env->errmsg : ""; }

int64_t fl_env_now(const fl_env_t *env) { return env->clock(env->clock_opaque); }

int fl_env_set_clock(fl_env_t *env, int64_t (*now_ms)(void *opaque), void *opaque) {
  if (!env || !now_ms) return FL_EINVAL;
  if (atomic_load(&env->state) != 0) return FL_EINVAL;
  env->clock = now_ms;
  env->clock_opaque = opaque;
  return FL_OK;
}

/* ---------------------------------------------------------------------------------- */
/* Graph building                                                                       */

static fl_stream_t *new_stream(fl_env_t *env, fl_node_t *node, const fl_input_t *parts,
                               size_t n) {
  GROW(env->streams, env->n_streams, env->cap_streams);
  fl_stream_t *s = calloc(1, sizeof *s);
  if (!s) return NULL;
  s->env = env;
  s->node = node;
  s->parts = calloc(n ? n : 1, sizeof *s->parts);
  if (!s->parts) {
    free(s);
    return NULL;
  }
  if (n) memcpy(s->parts, parts, n * sizeof *parts);
  s->n_parts = n;
  env->streams[env->n_streams++] = s;
  return s;
}

fl_node_t *fl_env_add_node(fl_env_t *env, fl_node_kind_t kind, const char *name,
                           const fl_input_t *inputs, size_t n_inputs) {
  if (env->n_nodes == env->cap_nodes) {
    size_t nc = env->cap_nodes ? env->cap_nodes * 2 : 16;
    void *p = realloc(env->nodes, nc * sizeof *env->nodes);
    if (!p) goto nomem;
    env->nodes = p;
    env->cap_nodes = nc;
  }
  fl_node_t *n = calloc(1, sizeof *n);
  if (!n) goto nomem;
  n->id = (uint32_t)env->n_nodes;
  n->kind = kind;
  n->env = env;
  if (name && *name) {
    n->name = strdup(name);
  } else {
    static const char *names[] = {"source", "map",     "flat_map",       "filter", "process",
                                  "keyed_process", "rolling", "window", "assign_timestamps",
                                  "sink", "co_process", "keyed_co_process", "window_join",
                                  "interval_join", "broadcast_process"};
    _Static_assert(sizeof names / sizeof names[0] == FL_NODE_BROADCAST_PROCESS + 1,
                   "a name for every node kind");
    char buf[64];
    snprintf(buf, sizeof buf, "%s-%u", names[kind], n->id);
    n->name = strdup(buf);
  }
  n->inputs = calloc(n_inputs ? n_inputs : 1, sizeof *n->inputs);
  if (!n->name || !n->inputs) {
    free(n->name);
    free(n->inputs);
    free(n);
    goto nomem;
  }
  if (n_inputs) memcpy(n->inputs, inputs, n_inputs * sizeof *inputs);
  n->n_inputs = n_inputs;
  env->nodes[env->n_nodes++] = n;
  return n;
nomem:
  fl_env_fail(env, FL_ENOMEM, "out of memory while building the job graph");
  return NULL;
}

fl_stream_t *fl_node_stream(fl_node_t *node) {
  fl_input_t in = {.from = node, .tag = NULL, .part = FL_PART_FORWARD};
  fl_stream_t *s = new_stream(node->env, node, &in, 1);
  if (!s) fl_env_fail(node->env, FL_ENOMEM, "out of memory while building the job graph");
  return s;
}

int fl_keyed_inputs(const fl_keyed_stream_t *ks, fl_input_t **out, size_t *n) {
  const fl_stream_t *s = ks->in;
  fl_input_t *in = calloc(s->n_parts ? s->n_parts : 1, sizeof *in);
  if (!in) return FL_ENOMEM;
  for (size_t i = 0; i < s->n_parts; i++) {
    in[i] = s->parts[i];
    in[i].part = FL_PART_HASH;
    in[i].key_fn = ks->fn;
    in[i].key_opaque = ks->opaque;
  }
  *out = in;
  *n = s->n_parts;
  return FL_OK;
}

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

static bool running(fl_env_t *env) { return atomic_load(&env->state) != 0; }

#define CHECK_BUILD(in)                                                       \
  do {                                                                        \
    if (!(in)) return NULL;                                                   \
    if (running((in)->env)) {                                                 \
      fl_env_fail((in)->env, FL_EINVAL, "the job graph cannot change after execute"); \
      return NULL;                                                            \
    }                                                                         \
  } while (0)

fl_stream_t *fl_source(fl_env_t *env, const char *name, const fl_source_fn_t *fn,
                       void *opaque, int parallel) {
  if (!env) return NULL;
  fl_node_t *n = fl_env_add_node(env, FL_NODE_SOURCE, name, NULL, 0);
  if (!n) return NULL;
  if (!fn || fn->version < 1 || fn->version > FL_SOURCE_FN_VERSION || !fn->run) {
    fl_env_fail(env, FL_EINVAL, "source '%s': function table is NULL, of another version or has no run",
                n->name);
    if (fn && fn->destroy) fn->destroy(opaque);
  } else {
    /* A version 1 table ends before the checkpoint hooks. */
    memset(&n->u.source.fn, 0, sizeof n->u.source.fn);
    memcpy(&n->u.source.fn, fn,
           fn->version == 1   ? offsetof(fl_source_fn_t, snapshot)
           : fn->version == 2 ? offsetof(fl_source_fn_t, checkpoint_complete)
                              : sizeof *fn);
    n->u.source.opaque = opaque;
  }
  n->parallel = parallel != 0;
  return fl_node_stream(n);
}

/* The collection source: a copy of the records, emitted by subtask 0. */
typedef struct {
  uint8_t *data;
  fl_record_t *recs;
  size_t n;
} collection_t;

typedef struct {
  collection_t *c;
  size_t next;
} collection_inst_t;

static int coll_open(fl_context_t *ctx, void *opaque, void **instance) {
  collection_inst_t *ci = calloc(1, sizeof *ci);
  if (!ci) return FL_ENOMEM;
  ci->c = opaque;
  *instance = ci;
  return FL_OK;
}

static int coll_run(fl_context_t *ctx, void *instance) {
  collection_inst_t *ci = instance;
  size_t budget = fl_ctx_source_budget(ctx);
  while (budget-- && ci->next < ci->c->n) {
    int rc = fl_emit_record(ctx, &ci->c->recs[ci->next++]);
    if (rc) return rc;
  }
  return ci->next < ci->c->n ? FL_SOURCE_MORE : FL_SOURCE_END;
}

static void coll_close(void *instance) { free(instance); }

/* Position: the index of the next record, 8 bytes little-endian-independent (native). */
static int coll_snapshot(fl_context_t *ctx, void *instance, fl_buf_t *out) {
  collection_inst_t *ci = instance;
  uint64_t next = ci->next;
  return fl_buf_append(out, &next, sizeof next);
}

static int coll_restore(fl_context_t *ctx, void *instance, const fl_bytes_t *states, size_t n) {
  collection_inst_t *ci = instance;
  uint64_t next;
  if (n != 1 || states[0].len != sizeof next)
    return fl_ctx_fail(ctx, "collection source: restored position is %zu bytes, not %zu",
                       n ? states[0].len : 0, sizeof next);
  memcpy(&next, states[0].data, sizeof next);
  if (next > ci->c->n)
    return fl_ctx_fail(ctx, "collection source: restored position %llu is past the %zu records",
                       (unsigned long long)next, ci->c->n);
  ci->next = (size_t)next;
  return FL_OK;
}

static void coll_destroy(void *opaque) {
  collection_t *c = opaque;
  if (!c) return;
  free(c->data);
  free(c->recs);
  free(c);
}

fl_stream_t *fl_source_collection(fl_env_t *env, const char *name,
                                  const fl_record_t *records, size_t n) {
  if (!env) return NULL;
  if (n && !records) {
    fl_env_fail(env, FL_EINVAL, "source '%s': records is NULL", name ? name : "collection");
    n = 0;
  }
  collection_t *c = calloc(1, sizeof *c);
  size_t bytes = 0;
  for (size_t i = 0; i < n; i++) bytes += records[i].key_len + records[i].value_len;
  if (c) {
    c->recs = calloc(n ? n : 1, sizeof *c->recs);
    c->data = malloc(bytes ? bytes : 1);
  }
  if (!c || !c->recs || !c->data) {
    coll_destroy(c);
    fl_env_fail(env, FL_ENOMEM, "out of memory copying a collection of %zu records", n);
    return fl_source(env, name, NULL, NULL, 0);
  }
  size_t off = 0;
  for (size_t i = 0; i < n; i++) {
    fl_record_t r = records[i];
    if (r.key_len) memcpy(c->data + off, r.key, r.key_len);
    r.key = c->data + off;
    off += r.key_len;
    if (r.value_len) memcpy(c->data + off, r.value, r.value_len);
    r.value = c->data + off;
    off += r.value_len;
    c->recs[i] = r;
  }
  c->n = n;
  static const fl_source_fn_t fn = {.version = FL_SOURCE_FN_VERSION,
                                    .open = coll_open,
                                    .run = coll_run,
                                    .close = coll_close,
                                    .destroy = coll_destroy,
                                    .snapshot = coll_snapshot,
                                    .restore = coll_restore};
  return fl_source(env, name ? name : "collection", &fn, c, 0);
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

static fl_stream_t *add_fn_node(fl_stream_t *in, fl_node_kind_t kind, const char *name,
                                void *fn, void *opaque) {
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
fl_stream_t *fl_stream_flat_map(fl_stream_t *in, const char *name, fl_map_fn fn,
                                void *opaque) {
  return add_fn_node(in, FL_NODE_FLAT_MAP, name, (void *)fn, opaque);
}
fl_stream_t *fl_stream_filter(fl_stream_t *in, const char *name, fl_filter_fn fn,
                              void *opaque) {
  return add_fn_node(in, FL_NODE_FILTER, name, (void *)fn, opaque);
}

fl_stream_t *fl_stream_union(fl_stream_t *a, fl_stream_t *b) {
  if (!a || !b) return NULL;
  if (a->env != b->env) {
    fl_env_fail(a->env, FL_EINVAL, "union: the two streams belong to different environments");
    return a;
  }
  CHECK_BUILD(a);
  size_t n = a->n_parts + b->n_parts;
  fl_input_t *parts = calloc(n, sizeof *parts);
  if (!parts) {
    fl_env_fail(a->env, FL_ENOMEM, "out of memory while building the job graph");
    return a;
  }
  memcpy(parts, a->parts, a->n_parts * sizeof *parts);
  memcpy(parts + a->n_parts, b->parts, b->n_parts * sizeof *parts);
  fl_stream_t *s = new_stream(a->env, NULL, parts, n);
  free(parts);
  if (!s) fl_env_fail(a->env, FL_ENOMEM, "out of memory while building the job graph");
  return s;
}

fl_stream_t *fl_stream_rebalance(fl_stream_t *in) {
  CHECK_BUILD(in);
  fl_stream_t *s = new_stream(in->env, NULL, in->parts, in->n_parts);
  if (!s) {
    fl_env_fail(in->env, FL_ENOMEM, "out of memory while building the job graph");
    return NULL;
  }
  for (size_t i = 0; i < s->n_parts; i++) {
    s->parts[i].part = FL_PART_REBALANCE;
    s->parts[i].key_fn = NULL;
  }
  return s;
}

fl_keyed_stream_t *fl_stream_key_by(fl_stream_t *in, fl_key_fn fn, void *opaque) {
  CHECK_BUILD(in);
  fl_env_t *env = in->env;
  if (env->n_keyed == env->cap_keyed) {
    size_t nc = env->cap_keyed ? env->cap_keyed * 2 : 8;
    void *p = realloc(env->keyed, nc * sizeof *env->keyed);
    if (!p) goto nomem;
    env->keyed = p;
    env->cap_keyed = nc;
  }
  fl_keyed_stream_t *ks = calloc(1, sizeof *ks);
  if (!ks) goto nomem;
  ks->in = in;
  ks->fn = fn;
  ks->opaque = opaque;
  env->keyed[env->n_keyed++] = ks;
  return ks;
nomem:
  fl_env_fail(env, FL_ENOMEM, "out of memory while building the job graph");
  return NULL;
}

fl_output_tag_t *fl_output_tag(fl_env_t *env, const char *name) {
  if (!env) return NULL;
  if (!name || !*name) {
    fl_env_fail(env, FL_EINVAL, "output tag: the name is empty");
    return NULL;
  }
  for (size_t i = 0; i < env->n_tags; i++)
    if (strcmp(env->tags[i]->name, name) == 0) return env->tags[i];
  void *p = realloc(env->tags, (env->n_tags + 1) * sizeof *env->tags);
  if (!p) goto nomem;
  env->tags = p;
  fl_output_tag_t *t = calloc(1, sizeof *t);
  if (!t) goto nomem;
  t->name = strdup(name);
  if (!t->name) {
    free(t);
    goto nomem;
  }
  t->id = (uint32_t)env->n_tags;
  env->tags[env->n_tags++] = t;
  return t;
nomem:
  fl_env_fail(env, FL_ENOMEM, "out of memory while building the job graph");
  return NULL;
}

fl_stream_t *fl_stream_side_output(fl_stream_t *op, const fl_output_tag_t *tag) {
  CHECK_BUILD(op);
  if (!op->node || !tag) {
    fl_env_fail(op->env, FL_EINVAL,
                "side output: %s", !tag ? "the tag is NULL"
                                        : "the stream is not an operator's output (union or rebalance)");
    return op;
  }
  fl_input_t in = {.from = op->node, .tag = tag, .part = FL_PART_FORWARD};
  fl_stream_t *s = new_stream(op->env, op->node, &in, 1);
  if (!s) fl_env_fail(op->env, FL_ENOMEM, "out of memory while building the job graph");
  return s;
}

static fl_stream_t *add_process(fl_stream_t *in, const fl_input_t *inputs, size_t n_inputs,
                                fl_node_kind_t kind, const char *name,
                                const fl_process_fn_t *fn, void *opaque) {
  fl_env_t *env = in->env;
  fl_node_t *n = fl_env_add_node(env, kind, name, inputs, n_inputs);
  if (!n) {
    if (fn && fn->destroy) fn->destroy(opaque);
    return NULL;
  }
  n->keyed = kind == FL_NODE_KEYED_PROCESS;
  if (!fn || fn->version != FL_PROCESS_FN_VERSION || !fn->process) {
    fl_env_fail(env, FL_EINVAL,
                "operator '%s': process function table is NULL, of another version or has no "
                "process",
                n->name);
    if (fn && fn->destroy) fn->destroy(opaque);
  } else {
    n->u.process.fn = *fn;
    n->u.process.opaque = opaque;
  }
  return fl_node_stream(n);
}

fl_stream_t *fl_stream_process(fl_stream_t *in, const char *name, const fl_process_fn_t *fn,
                               void *opaque) {
  CHECK_BUILD(in);
  return add_process(in, in->parts, in->n_parts, FL_NODE_PROCESS, name, fn, opaque);
}

fl_stream_t *fl_keyed_process(fl_keyed_stream_t *ks, const char *name,
                              const fl_process_fn_t *fn, void *opaque) {
  if (!ks) return NULL;
  CHECK_BUILD(ks->in);
  fl_input_t *inputs = NULL;
  size_t n = 0;
  if (fl_keyed_inputs(ks, &inputs, &n)) {
    fl_env_fail(ks->in->env, FL_ENOMEM, "out of memory while building the job graph");
    return NULL;
  }
  fl_stream_t *s =
      add_process(ks->in, inputs, n, FL_NODE_KEYED_PROCESS, name, fn, opaque);
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
    fl_env_fail(env, FL_ENOMEM, "out of memory while building the job graph");
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
fl_stream_t *fl_keyed_sum(fl_keyed_stream_t *in, const char *name, fl_number_fn fn,
                          void *opaque) {
  return add_rolling(in, name, FL_ROLL_SUM, NULL, fn, opaque);
}
fl_stream_t *fl_keyed_min(fl_keyed_stream_t *in, const char *name, fl_number_fn fn,
                          void *opaque) {
  return add_rolling(in, name, FL_ROLL_MIN, NULL, fn, opaque);
}
fl_stream_t *fl_keyed_max(fl_keyed_stream_t *in, const char *name, fl_number_fn fn,
                          void *opaque) {
  return add_rolling(in, name, FL_ROLL_MAX, NULL, fn, opaque);
}

int fl_stream_sink(fl_stream_t *in, const char *name, const fl_sink_fn_t *fn, void *opaque) {
  if (!in) {
    if (fn && fn->destroy) fn->destroy(opaque);
    return FL_EINVAL;
  }
  if (running(in->env)) {
    if (fn && fn->destroy) fn->destroy(opaque);
    fl_env_fail(in->env, FL_EINVAL, "the job graph cannot change after execute");
    return FL_EINVAL;
  }
  fl_node_t *n = fl_env_add_node(in->env, FL_NODE_SINK, name, in->parts, in->n_parts);
  if (!n) {
    if (fn && fn->destroy) fn->destroy(opaque);
    return FL_ENOMEM;
  }
  if (!fn || fn->version < 1 || fn->version > FL_SINK_FN_VERSION || !fn->write) {
    fl_env_fail(in->env, FL_EINVAL,
                "sink '%s': function table is NULL, of another version or has no write",
                n->name);
    if (fn && fn->destroy) fn->destroy(opaque);
    return FL_EINVAL;
  }
  /* A version 1 table ends before the checkpoint hooks. */
  memset(&n->u.sink.fn, 0, sizeof n->u.sink.fn);
  memcpy(&n->u.sink.fn, fn, fn->version == 1 ? offsetof(fl_sink_fn_t, snapshot) : sizeof *fn);
  n->u.sink.opaque = opaque;
  return FL_OK;
}
