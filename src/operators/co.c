/*
 * CoProcessFunction and KeyedCoProcessFunction: one operator with two inputs, whose
 * records go to process1 (side 0) or process2 (side 1) of one user instance per subtask.
 *
 * The keyed form needs nothing of its own for sharing state and timers between the
 * inputs: both inputs are hash-partitioned by their key selectors, so the same key bytes
 * land in the same key group and subtask, and the runtime sets the key context from the
 * record before either call. Keyed state is addressed by (operator, descriptor, key), not
 * by input, so process1, process2 and on_timer see the same cells.
 *
 * The non-keyed form has no key context: keyed state and timers return FL_ESTATE, as in
 * Flink, where timers and keyed state need connected KeyedStreams.
 */
#include <stdbool.h>
#include <stdlib.h>

#include "operators/operators.h"

static int co_open(fl_op_t *op) {
  int rc = fl_op_open_user(op, op->node->u.co.fn.open, op->node->u.co.opaque);
  if (rc > 0) op->state = (void *)1; /* an instance was opened: close() calls the user's close */
  return rc < 0 ? rc : FL_OK;
}

static int co_process(fl_op_t *op, int input, const fl_record_t *rec) {
  const fl_co_process_fn_t *fn = &op->node->u.co.fn;
  int rc;
  if (input == 0) {
    rc = fn->process1(&op->ctx, rec, op->ctx.instance);
    if (rc < 0) return fl_op_user_failed(op, rc, "process1 function");
  } else {
    rc = fn->process2(&op->ctx, rec, op->ctx.instance);
    if (rc < 0) return fl_op_user_failed(op, rc, "process2 function");
  }
  return FL_OK;
}

static int co_on_timer(fl_op_t *op, fl_time_domain_t d, const fl_timer_t *t) {
  return fl_op_user_on_timer(op, op->node->u.co.fn.on_timer, d, t);
}

static void co_close(fl_op_t *op) {
  const fl_co_process_fn_t *fn = &op->node->u.co.fn;
  if (op->state && fn->close) fn->close(op->ctx.instance);
  op->state = NULL;
}

const fl_op_class_t fl_op_co_process_class = {
    .kind = "co_process", .open = co_open, .process = co_process, .close = co_close};
const fl_op_class_t fl_op_keyed_co_process_class = {.kind = "keyed_co_process",
                                                    .open = co_open,
                                                    .process = co_process,
                                                    .on_timer = co_on_timer,
                                                    .close = co_close};
