/*
 * The canonical snapshot of one operator subtask: its operator state (opaque bytes from
 * the operator class: source positions, sink pre-commits, broadcast state), every cell
 * of its keyed state tables and every timer, each tagged with its key group. The format
 * does not depend on the state backend, so the same bytes serve checkpoints and
 * savepoints, restore into either backend, and restore at another parallelism: a
 * subtask reads the snapshots of all subtasks of the earlier run and keeps the cells
 * and timers of the key groups it owns now (key groups are moved, never rehashed).
 *
 * Format (native byte order; a snapshot is read back on the machine kind that wrote it):
 *   "FLSNAP01"
 *   sections, each [u8 tag][...]:
 *     1 operator state  [u64 len][bytes]
 *     2 table           [u32 name len][name] then cells, each
 *                         [u8 1 value | 2 map][u16 kg][u32 klen][key][u32 nslen][ns]
 *                         value: [u32 vlen][v]; map: [u32 n] n x ([u32 uklen][uk][u32 vlen][v])
 *                       and [u8 0] after the last cell
 *     3 timers          [u8 domain][u64 n] n x ([u16 kg][i64 ts][u32 klen][key][u32 nslen][ns])
 *                       in firing order (ts, then registration order)
 *     0 end
 * Threading: the worker that owns the operator.
 */
#ifndef FL_CHECKPOINT_SNAPSHOT_H
#define FL_CHECKPOINT_SNAPSHOT_H

#include "core/internal.h"

/* Appends op's snapshot to out. op_state: the class's operator state (may be empty).
 * Only tables named "<node id>/..." in op's backend belong to op. */
int fl_snapshot_write(fl_op_t *op, const void *op_state, size_t op_state_len, fl_buf_t *out);

/* Restores into op (already opened) the keyed state and timers of its key groups from
 * the snapshots blobs[0..n) of the same node written by an earlier run (n = its
 * parallelism; an empty blob is a subtask that had nothing), and sets op_states[i] to
 * the operator state in blobs[i] (a view into it). FL_EPARSE with a message recorded on
 * op for a malformed snapshot. */
int fl_snapshot_restore(fl_op_t *op, const fl_bytes_t *blobs, size_t n, fl_bytes_t *op_states);

#endif
