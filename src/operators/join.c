/* Placeholder until the two-input operators land: every class fails at open. */
#include "core/internal.h"
static int not_yet(fl_op_t *op) { return fl_op_fail(op, FL_ENOTSUP, "not implemented yet"); }
const fl_op_class_t fl_op_window_join_class = {.kind = "window_join", .open = not_yet};
const fl_op_class_t fl_op_interval_join_class = {.kind = "interval_join", .open = not_yet};
