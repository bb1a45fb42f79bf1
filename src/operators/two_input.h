/*
 * Private interface between the two-input builders (src/api/two_input.c), their
 * operators (src/operators/co.c, join.c, broadcast.c) and their tests.
 */
#ifndef FL_OPERATORS_TWO_INPUT_H
#define FL_OPERATORS_TWO_INPUT_H

#include <stddef.h>

#include "flink.h"

/* Window join, tag byte in front of every value between the join's input node and its
 * window node: which input the element came from. */
#define FL_WJOIN_LEFT 0
#define FL_WJOIN_RIGHT 1

/* The window function of a window join's window node (src/operators/join.c): splits the
 * window's elements by their tag and calls the join function (opaque: the join's input
 * node, a FL_NODE_WINDOW_JOIN fl_node_t) for every (left, right) pair. */
int fl_window_join_fire(fl_context_t *ctx, const fl_window_t *window, const fl_record_t *elements,
                        size_t n, void *opaque);

/* For tests: the number of elements an interval join subtask buffers on each side,
 * counted from its state. ctx must be the context of an interval join operator (as
 * passed to its join function). O(buffered elements). FL_EINVAL otherwise. */
int fl_interval_join_buffered(fl_context_t *ctx, size_t *left, size_t *right);

#endif
