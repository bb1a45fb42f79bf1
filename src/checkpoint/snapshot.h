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
 *     4 native state    [u64 store id][u32 n] n x ([u32 len][file name]): instead of
 *                       table sections, the keyed state is a native copy of a RocksDB
 *                       store (incremental checkpoints), stored beside this snapshot as
 *                       "op-<node>-<subtask>/<file name>"
 *     0 end
 * Threading: the worker that owns the operator.
 */
#ifndef FL_CHECKPOINT_SNAPSHOT_H
#define FL_CHECKPOINT_SNAPSHOT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "flink.h"
#include "state/kv.h"
#include "state/timers.h"

/* What a snapshot is taken of, or restored into: one operator subtask's state. */
typedef struct fl_snapshot_target {
  fl_kv_t *kv;                 /* the store holding its keyed state; NULL: not keyed */
  fl_timers_t *timers;         /* its timers; NULL: none */
  uint32_t node_id;            /* its tables are those named "<node_id>/..." in kv */
  uint32_t kg_first, kg_count; /* restore: the key groups it owns now */
} fl_snapshot_target_t;

/* Appends t's snapshot to out. op_state: the class's operator state (may be empty).
 * native_dir: NULL, or the directory of a native copy of t's store (kv checkpoint op)
 * whose files replace the table sections; store_id names that store instance. 0, or an
 * error with msg saying why. */
int fl_snapshot_write(const fl_snapshot_target_t *t, const void *op_state, size_t op_state_len,
                      const char *native_dir, uint64_t store_id, fl_buf_t *out, char *msg,
                      size_t size);

/* Appends the table sections of every table of kv whose name starts with prefix. */
int fl_snapshot_write_tables(fl_kv_t *kv, const char *prefix, fl_buf_t *out);

/* A whole snapshot holding only the tables of kv named prefix...: how a native copy is
 * turned into the canonical form to restore from. */
int fl_snapshot_kv_blob(fl_kv_t *kv, const char *prefix, fl_buf_t *out);

/* Restoring a native section: gives the files of old subtask `subtask` (names as
 * written) to load into the target; 0, or an error with msg saying why. */
typedef int (*fl_native_restore_fn)(void *arg, size_t subtask, uint64_t store_id,
                                    const char *const *files, size_t n, char *msg, size_t size);

/* Restores into t the keyed state and timers of its key groups from the snapshots
 * blobs[0..n) of one node written by an earlier run (n = its parallelism; an empty blob
 * is a subtask that had nothing), and sets op_states[i] to the operator state in
 * blobs[i] (a view into it). FL_EPARSE for a malformed snapshot; msg says which and
 * where. */
int fl_snapshot_restore(const fl_snapshot_target_t *t, const fl_bytes_t *blobs, size_t n,
                        fl_bytes_t *op_states, fl_native_restore_fn native, void *native_arg,
                        char *msg, size_t size);

#endif
