/* The graph's shape: nodes, the streams between them, union, rebalance, keyBy, output
 * tags and side outputs. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/builder.h"
#include "operators/operators.h"
#include "util/vec.h"

bool fl_builder_may_change(fl_env_t *env) {
  if (!fl_env_running(env)) return true;
  fl_env_fail(env, FL_EINVAL, "the job graph cannot change after execute");
  return false;
}

void fl_node_keep(fl_node_t *node, void (*destroy)(void *), void *opaque) {
  node->release = destroy;
  node->release_opaque = opaque;
}

bool fl_node_adopt(fl_node_t *node, const char *what, const char *table, const char *why,
                   void (*destroy)(void *), void *opaque) {
  if (!why) {
    fl_node_keep(node, destroy, opaque);
    return true;
  }
  fl_env_fail(node->env, FL_EINVAL, "%s '%s': %s%s", what, node->name, table, why);
  fl_release_unkept(destroy, opaque);
  return false;
}

#define CHECK_BUILD(in)                                 \
  do {                                                  \
    if (!(in)) return NULL;                             \
    if (!fl_builder_may_change((in)->env)) return NULL; \
  } while (0)

static fl_stream_t *new_stream(fl_env_t *env, fl_node_t *node, const fl_input_t *parts, size_t n) {
  if (FL_VEC_RESERVE(env->streams, env->cap_streams, env->n_streams + 1)) return NULL;
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
  if (FL_VEC_RESERVE(env->nodes, env->cap_nodes, env->n_nodes + 1)) goto nomem;
  fl_node_t *n = calloc(1, sizeof *n);
  if (!n) goto nomem;
  n->id = (uint32_t)env->n_nodes;
  n->kind = kind;
  n->cls = fl_op_class_of(kind);
  n->env = env;
  if (name && *name) {
    n->name = strdup(name);
  } else {
    static const char *const names[] = {
#define FL_NODE_NAME_(e, c, nm) [FL_NODE_##e] = nm,
        FL_NODE_KIND_MAP(FL_NODE_NAME_)
#undef FL_NODE_NAME_
    };
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
  fl_env_fail(env, FL_ENOMEM, FL_NOMEM_MSG);
  return NULL;
}

fl_stream_t *fl_node_stream(fl_node_t *node) {
  fl_input_t in = {.from = node, .tag = NULL, .part = FL_PART_FORWARD};
  fl_stream_t *s = new_stream(node->env, node, &in, 1);
  if (!s) fl_env_fail(node->env, FL_ENOMEM, FL_NOMEM_MSG);
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
    fl_env_fail(a->env, FL_ENOMEM, FL_NOMEM_MSG);
    return a;
  }
  memcpy(parts, a->parts, a->n_parts * sizeof *parts);
  memcpy(parts + a->n_parts, b->parts, b->n_parts * sizeof *parts);
  fl_stream_t *s = new_stream(a->env, NULL, parts, n);
  free(parts);
  if (!s) fl_env_fail(a->env, FL_ENOMEM, FL_NOMEM_MSG);
  return s;
}

fl_stream_t *fl_stream_rebalance(fl_stream_t *in) {
  CHECK_BUILD(in);
  fl_stream_t *s = new_stream(in->env, NULL, in->parts, in->n_parts);
  if (!s) {
    fl_env_fail(in->env, FL_ENOMEM, FL_NOMEM_MSG);
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
  if (FL_VEC_RESERVE(env->keyed, env->cap_keyed, env->n_keyed + 1)) goto nomem;
  fl_keyed_stream_t *ks = calloc(1, sizeof *ks);
  if (!ks) goto nomem;
  ks->in = in;
  ks->fn = fn;
  ks->opaque = opaque;
  env->keyed[env->n_keyed++] = ks;
  return ks;
nomem:
  fl_env_fail(env, FL_ENOMEM, FL_NOMEM_MSG);
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
  if (FL_VEC_RESERVE(env->tags, env->cap_tags, env->n_tags + 1)) goto nomem;
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
  fl_env_fail(env, FL_ENOMEM, FL_NOMEM_MSG);
  return NULL;
}

fl_stream_t *fl_stream_side_output(fl_stream_t *op, const fl_output_tag_t *tag) {
  CHECK_BUILD(op);
  if (!op->node || !tag) {
    fl_env_fail(
        op->env, FL_EINVAL, "side output: %s",
        !tag ? "the tag is NULL" : "the stream is not an operator's output (union or rebalance)");
    return op;
  }
  fl_input_t in = {.from = op->node, .tag = tag, .part = FL_PART_FORWARD};
  fl_stream_t *s = new_stream(op->env, op->node, &in, 1);
  if (!s) fl_env_fail(op->env, FL_ENOMEM, FL_NOMEM_MSG);
  return s;
}
