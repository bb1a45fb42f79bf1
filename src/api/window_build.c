/* The builder calls of flink.h's Windows section: fl_window_tumbling, _sliding,
 * _session, allowed lateness, late output, and the window functions (reduce, aggregate,
 * process), which make a window node (src/operators/window.c runs it). */
#include <stdio.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "api/builder.h"
#include "util/vec.h"

static const char *kind_name(fl_window_kind_t k) {
  switch (k) {
  case FL_WINDOW_TUMBLING: return "tumbling";
  case FL_WINDOW_SLIDING: return "sliding";
  default: return "session";
  }
}

static fl_windowed_stream_t *windowed_new(fl_keyed_stream_t *in, fl_time_domain_t domain,
                                          fl_window_kind_t kind) {
  if (!in || !in->in) return NULL;
  fl_env_t *env = in->in->env;
  if (fl_env_running(env)) {
    fl_env_fail(env, FL_EINVAL, "the job graph cannot change after execute");
    return NULL;
  }
  if (FL_VEC_RESERVE(env->windowed, env->cap_windowed, env->n_windowed + 1)) goto nomem;
  fl_windowed_stream_t *w = malloc(sizeof *w);
  if (!w) goto nomem;
  memset(w, 0, sizeof *w);
  w->in = in;
  w->conf.kind = kind;
  w->conf.domain = domain;
  env->windowed[env->n_windowed++] = w;
  if (domain != FL_EVENT_TIME && domain != FL_PROCESSING_TIME) {
    fl_env_fail(env, FL_EINVAL, "window: %s window with an unknown time domain %d", kind_name(kind),
                (int)domain);
    w->conf.domain = FL_EVENT_TIME;
  }
  return w;
nomem:
  fl_env_fail(env, FL_ENOMEM, "out of memory while building the job graph");
  return NULL;
}

/* Sets size, slide and offset after checking them; a tumbling window is a sliding window
 * whose slide is its size. An invalid value records a sticky error and is replaced by a
 * valid one so that building can go on. */
static fl_windowed_stream_t *slices(fl_windowed_stream_t *w, int64_t size_ms, int64_t slide_ms,
                                    int64_t offset_ms) {
  if (!w) return NULL;
  fl_env_t *env = w->in->in->env;
  bool tumbling = w->conf.kind == FL_WINDOW_TUMBLING;
  const char *what = tumbling ? "tumbling window size" : "sliding window size and slide";
  const char *unit = tumbling ? "size" : "slide";
  if (size_ms <= 0 || slide_ms <= 0) {
    fl_env_fail(env, FL_EINVAL, "window: %s must be > 0 (size %lld ms, slide %lld ms)", what,
                (long long)size_ms, (long long)slide_ms);
    size_ms = slide_ms = 1;
    offset_ms = 0;
  } else if (offset_ms <= -slide_ms || offset_ms >= slide_ms) {
    fl_env_fail(env, FL_EINVAL,
                "window: %s window offset must satisfy |offset| < %s (offset %lld ms, %s %lld "
                "ms)",
                kind_name(w->conf.kind), unit, (long long)offset_ms, unit, (long long)slide_ms);
    offset_ms = 0;
  }
  w->conf.size = size_ms;
  w->conf.slide = slide_ms;
  w->conf.offset = offset_ms;
  return w;
}

fl_windowed_stream_t *fl_window_tumbling(fl_keyed_stream_t *in, fl_time_domain_t domain,
                                         int64_t size_ms, int64_t offset_ms) {
  return slices(windowed_new(in, domain, FL_WINDOW_TUMBLING), size_ms, size_ms, offset_ms);
}

fl_windowed_stream_t *fl_window_sliding(fl_keyed_stream_t *in, fl_time_domain_t domain,
                                        int64_t size_ms, int64_t slide_ms, int64_t offset_ms) {
  return slices(windowed_new(in, domain, FL_WINDOW_SLIDING), size_ms, slide_ms, offset_ms);
}

fl_windowed_stream_t *fl_window_session(fl_keyed_stream_t *in, fl_time_domain_t domain,
                                        int64_t gap_ms) {
  fl_windowed_stream_t *w = windowed_new(in, domain, FL_WINDOW_SESSION);
  if (!w) return NULL;
  if (gap_ms <= 0) {
    fl_env_fail(in->in->env, FL_EINVAL, "window: session gap must be > 0 (gap %lld ms)",
                (long long)gap_ms);
    gap_ms = 1;
  }
  w->conf.gap = gap_ms;
  return w;
}

void fl_window_allowed_lateness(fl_windowed_stream_t *w, int64_t lateness_ms) {
  if (!w) return;
  fl_env_t *env = w->in->in->env;
  if (lateness_ms < 0) {
    fl_env_fail(env, FL_EINVAL, "window: allowed lateness must be >= 0 (lateness %lld ms)",
                (long long)lateness_ms);
    return;
  }
  if (w->conf.domain != FL_EVENT_TIME && lateness_ms != 0) {
    fl_env_fail(env, FL_EINVAL,
                "window: allowed lateness applies to event-time windows only (lateness %lld "
                "ms on a processing-time %s window)",
                (long long)lateness_ms, kind_name(w->conf.kind));
    return;
  }
  w->conf.allowed_lateness = lateness_ms;
}

void fl_window_late_output(fl_windowed_stream_t *w, const fl_output_tag_t *tag) {
  if (!w) return;
  if (!tag) {
    fl_env_fail(w->in->in->env, FL_EINVAL, "window: the late-data output tag is NULL");
    return;
  }
  w->conf.late_tag = tag;
}

/* An internal state descriptor of a window node, "<node id>-<what>"; NULL with the build
 * failed. */
static fl_state_desc_t *window_desc(fl_node_t *node, const char *what, fl_state_kind_t kind) {
  char dname[64];
  snprintf(dname, sizeof dname, "%u-%s", node->id, what);
  fl_state_desc_t *d = fl_env_internal_desc(node->env, dname, kind);
  if (!d) fl_env_fail(node->env, FL_ENOMEM, "window '%s': cannot create its state", node->name);
  return d;
}

/* Creates the window node and its internal state descriptors. missing_fn, when not NULL,
 * names the window function the caller was given as NULL: the build fails naming it. */
static fl_node_t *window_node(fl_windowed_stream_t *w, const char *name,
                              fl_window_fn_kind_t fn_kind, fl_state_kind_t contents_kind,
                              const char *missing_fn) {
  if (!w) return NULL;
  fl_env_t *env = w->in->in->env;
  fl_input_t *inputs = NULL;
  size_t n = 0;
  fl_node_t *node = NULL;
  if (fl_env_running(env)) {
    fl_env_fail(env, FL_EINVAL, "the job graph cannot change after execute");
    goto done;
  }
  if (fl_keyed_inputs(w->in, &inputs, &n) != 0) {
    fl_env_fail(env, FL_ENOMEM, "out of memory while building the job graph");
    goto done;
  }
  node = fl_env_add_node(env, FL_NODE_WINDOW, name, inputs, n);
  if (!node) goto done;
  node->keyed = true;
  node->u.window = w->conf;
  node->u.window.fn_kind = fn_kind;
  node->u.window.contents = window_desc(node, "contents", contents_kind);
  if (w->conf.kind == FL_WINDOW_SESSION) {
    node->u.window.windows = window_desc(node, "windows", FL_STATE_VALUE);
  } else if (fn_kind != FL_WFN_PROCESS) {
    /* Reduce and aggregate contents tell when they are created: their windows fire by
     * key group (one timer for all keys of a group) from a list of the keys. */
    node->u.window.keys = window_desc(node, "keys", FL_STATE_LIST);
  }
  if (missing_fn)
    fl_env_fail(env, FL_EINVAL, "window '%s': %s function is NULL", node->name, missing_fn);
done:
  free(inputs);
  return node;
}

fl_stream_t *fl_window_reduce(fl_windowed_stream_t *w, const char *name, fl_reduce_fn fn,
                              void *opaque) {
  fl_node_t *node = window_node(w, name, FL_WFN_REDUCE, FL_STATE_REDUCING, fn ? NULL : "reduce");
  if (!node) return NULL;
  node->u.window.reduce = fn;
  node->u.window.opaque = opaque;
  if (node->u.window.contents) {
    node->u.window.contents->reduce = fn;
    node->u.window.contents->opaque = opaque;
  }
  return fl_node_stream(node);
}

fl_stream_t *fl_window_aggregate(fl_windowed_stream_t *w, const char *name,
                                 const fl_aggregate_fn_t *fn, void *opaque) {
  if (!w) {
    fl_release_unkept(fn ? fn->destroy : NULL, opaque);
    return NULL;
  }
  fl_node_t *node = window_node(w, name, FL_WFN_AGGREGATE, FL_STATE_AGGREGATING, NULL);
  if (!node) {
    fl_release_unkept(fn ? fn->destroy : NULL, opaque);
    return NULL;
  }
  const char *why = NULL;
  if (!fn)
    why = "the function table is NULL";
  else if (fn->version != FL_AGGREGATE_FN_VERSION)
    why = "the function table is of another version";
  else if (fn->acc_size < 1 || fn->acc_size > 65536)
    why = "acc_size must be 1..65536";
  else if (!fn->init || !fn->add || !fn->result)
    why = "init, add and result are required";
  else if (w->conf.kind == FL_WINDOW_SESSION && !fn->merge)
    why = "session windows need merge";
  if (!fl_node_adopt(node, "window", "aggregate: ", why, fn ? fn->destroy : NULL, opaque))
    return fl_node_stream(node);
  node->u.window.agg = *fn;
  node->u.window.opaque = opaque;
  if (node->u.window.contents) {
    node->u.window.contents->agg = *fn;
    /* The node owns the opaque pointer; the descriptor must not release it again. */
    node->u.window.contents->agg.destroy = NULL;
    node->u.window.contents->opaque = opaque;
  }
  return fl_node_stream(node);
}

fl_stream_t *fl_window_process(fl_windowed_stream_t *w, const char *name, fl_window_process_fn fn,
                               void *opaque) {
  fl_node_t *node = window_node(w, name, FL_WFN_PROCESS, FL_STATE_LIST, fn ? NULL : "process");
  if (!node) return NULL;
  node->u.window.process = fn;
  node->u.window.opaque = opaque;
  return fl_node_stream(node);
}
