/*
 * The source operator: runs the user's fl_source_fn_t. The worker polls it
 * (FL_OP_SOURCE) for one budget of records at a time and handles waiting (an fd, or a
 * short retry) and the end; this class opens the instance, calls run, and passes
 * positions to and from checkpoints.
 *
 * A single-reader source (parallel = 0) has an instance on subtask 0 only; on the other
 * subtasks the operator is inert: it ends at its first poll, holding nothing.
 */
#include <stdlib.h>

#include "operators/operators.h"

typedef struct source_state {
  void *instance;
  bool opened_instance;
} source_state_t;

static int source_open(fl_op_t *op) {
  source_state_t *s = calloc(1, sizeof *s);
  if (!s) return FL_ENOMEM;
  op->state = s;
  fl_node_t *n = op->node;
  if (!n->parallel && op->subtask != 0) {
    op->inert = true;
    return FL_OK;
  }
  s->instance = n->u.source.opaque;
  if (n->u.source.fn.open) {
    int rc = n->u.source.fn.open(&op->ctx, n->u.source.opaque, &s->instance);
    if (rc < 0) return fl_op_user_failed(op, rc, "source open");
  }
  s->opened_instance = true;
  op->ctx.instance = s->instance;
  return FL_OK;
}

static int source_process(fl_op_t *op, int input, const fl_record_t *rec) { return FL_OK; }

static int source_poll(fl_op_t *op) {
  source_state_t *s = op->state;
  if (!s->opened_instance) return FL_SOURCE_END;
  int rc = op->node->u.source.fn.run(&op->ctx, s->instance);
  if (rc < 0 && !op->failed) return fl_op_user_failed(op, rc, "source");
  return rc;
}

static void source_close(fl_op_t *op) {
  source_state_t *s = op->state;
  if (!s) return;
  if (s->opened_instance && op->node->u.source.fn.close && op->node->u.source.fn.open)
    op->node->u.source.fn.close(s->instance);
  free(s);
  op->state = NULL;
}

static int source_snapshot(fl_op_t *op, int64_t id, fl_buf_t *out) {
  source_state_t *s = op->state;
  if (!s->opened_instance || !op->node->u.source.fn.snapshot) return FL_OK;
  op->ctx.checkpoint_id = id;
  int rc = op->node->u.source.fn.snapshot(&op->ctx, s->instance, out);
  op->ctx.checkpoint_id = 0;
  return rc < 0 ? fl_op_user_failed(op, rc, "source snapshot") : FL_OK;
}

static int source_restore(fl_op_t *op, const fl_bytes_t *states, size_t n) {
  source_state_t *s = op->state;
  if (!s->opened_instance) return FL_OK;
  if (!op->node->u.source.fn.restore) {
    for (size_t i = 0; i < n; i++)
      if (states[i].len)
        return fl_op_fail(op, FL_ESTATE,
                          "the checkpoint holds a position for this source, which cannot "
                          "restore one (no restore function)");
    return FL_OK;
  }
  int rc = op->node->u.source.fn.restore(&op->ctx, s->instance, states, n);
  return rc < 0 ? fl_op_user_failed(op, rc, "source restore") : FL_OK;
}

static int source_notify(fl_op_t *op, int64_t id, bool completed) {
  source_state_t *s = op->state;
  if (!completed || !s->opened_instance || !op->node->u.source.fn.checkpoint_complete) return FL_OK;
  int rc = op->node->u.source.fn.checkpoint_complete(&op->ctx, s->instance, id);
  return rc < 0 ? fl_op_user_failed(op, rc, "source checkpoint_complete") : FL_OK;
}

const fl_op_class_t fl_op_source_class = {.kind = "source",
                                          .flags = FL_OP_SOURCE,
                                          .open = source_open,
                                          .process = source_process,
                                          .poll = source_poll,
                                          .close = source_close,
                                          .snapshot = source_snapshot,
                                          .restore = source_restore,
                                          .notify = source_notify};
