/* The operator classes, one per node kind (FL_NODE_KIND_MAP in graph/graph.h): what the
 * builder (src/api) puts into each node for the runtime to run. */
#ifndef FL_OPERATORS_OPERATORS_H
#define FL_OPERATORS_OPERATORS_H

#include "graph/graph.h"
#include "runtime/op.h"

#define FL_OP_CLASS_DECL_(e, c, n) extern const fl_op_class_t fl_op_##c##_class;
FL_NODE_KIND_MAP(FL_OP_CLASS_DECL_)
#undef FL_OP_CLASS_DECL_

/* The class of a node kind. */
const fl_op_class_t *fl_op_class_of(fl_node_kind_t kind);

/* What the process-like operators (process, co-process, broadcast process) share: their
 * user tables' open and on_timer have the same signatures. */

/* Sets the context's instance to opaque, or to what the user's open (when given) makes:
 * 1 when it made one (the user's close must follow), 0 without an open, or the failure. */
int fl_op_open_user(fl_op_t *op, int (*open)(fl_context_t *, void *, void **), void *opaque);
/* Calls the user's on_timer, when given, for timer t. */
int fl_op_user_on_timer(fl_op_t *op,
                        int (*on_timer)(fl_context_t *, int64_t, fl_time_domain_t, void *),
                        fl_time_domain_t d, const fl_timer_t *t);

#endif
