/* The class of each node kind, from the one list of kinds (graph/graph.h). */
#include "operators/operators.h"

const fl_op_class_t *fl_op_class_of(fl_node_kind_t kind) {
  static const fl_op_class_t *const classes[] = {
#define FL_OP_CLASS_ENTRY_(e, c, n) [FL_NODE_##e] = &fl_op_##c##_class,
      FL_NODE_KIND_MAP(FL_OP_CLASS_ENTRY_)
#undef FL_OP_CLASS_ENTRY_
  };
  return (unsigned)kind < FL_NODE_KIND_COUNT_ ? classes[kind] : NULL;
}
