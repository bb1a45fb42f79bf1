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

#endif
