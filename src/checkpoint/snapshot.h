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
 *                       in the order a restore registers them (fl_timers_foreach_ordered:
 *                       the heap's firing order, RocksDB's stored order)
 *     4 native state    [u64 store id][u32 n] n x ([u32 len][file name]): instead of
 *                       table sections, the keyed state is a native copy of a RocksDB
 *                       store (incremental checkpoints), stored beside this snapshot as
 *                       "op-<node>-<subtask>/<file name>"
 *     0 end
 * Sections and map cells may repeat: a writer streaming with a bounded buffer writes the
 * timers of a domain as several timer sections of at most a buffer each, and the
 * entries of a large map cell as several map cells with the same address; a reader
 * takes them one after the other.
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

/* Where a snapshot goes: called with the bytes in order. 0, or a negative error with
 * msg saying why (it stops the snapshot). */
typedef int (*fl_snapshot_write_fn)(void *arg, const void *data, size_t len, char *msg,
                                    size_t size);

/* The writer's buffer: data is handed to the write function in pieces of at most this
 * many bytes, except a single value (or operator state) larger than it, which is
 * passed through whole without being copied. */
#define FL_SNAPSHOT_BUF ((size_t)64 << 10)

typedef struct fl_snapshot_stats {
  uint64_t bytes;     /* written */
  size_t peak_memory; /* the most memory the writer held at once (buffers it owns) */
} fl_snapshot_stats_t;

/* Streams t's snapshot to write(arg, ...): the operator state op_state (may be empty)
 * followed by tail (tail_len bytes, written as they are: a connector's lent buffer, see
 * fl_ctx_snapshot_lend), then either the table sections of t's tables or, when
 * native_dir is not NULL, a native section naming the files of the native copy of t's
 * store in native_dir (kv checkpoint op; store_id names that store instance), then t's
 * timers, unless they live in the store and the snapshot is native (the copy holds
 * them). Memory: one buffer of
 * FL_SNAPSHOT_BUF bytes, the keys of up to 256 map cells at a time, and the heap timer
 * service's sorting index (fl_timers_foreach_ordered); nothing proportional to the
 * keyed state. stats (optional) gets the figures. 0, or an error with msg saying why. */
int fl_snapshot_write(const fl_snapshot_target_t *t, const void *op_state, size_t op_state_len,
                      const void *tail, size_t tail_len, const char *native_dir, uint64_t store_id,
                      fl_snapshot_write_fn write, void *arg, fl_snapshot_stats_t *stats, char *msg,
                      size_t size);

/* The snapshot of a target without keyed state and timers whose operator state ends
 * with tail_len bytes that someone else writes later (a connector's lent buffer,
 * written when the checkpoint file is closed): writes everything before those bytes,
 * and sets end[0, *end_len) (at most FL_SNAPSHOT_END_MAX bytes) to what must follow
 * them. What it writes, the tail, then end, are what fl_snapshot_write writes for such
 * a target with that tail. 0, or an error with msg saying why. */
#define FL_SNAPSHOT_END_MAX 8
int fl_snapshot_write_head(const void *op_state, size_t op_state_len, size_t tail_len,
                           fl_snapshot_write_fn write, void *arg, uint8_t *end, size_t *end_len,
                           char *msg, size_t size);

/* Appends the whole snapshot to out (a write function over a growing buffer): for
 * tests and small snapshots. */
int fl_snapshot_write_buf(const fl_snapshot_target_t *t, const void *op_state, size_t op_state_len,
                          fl_buf_t *out, char *msg, size_t size);

/* Restoring a native section: gives the files of old subtask `subtask` (names as
 * written) to load into the target; 0, or an error with msg saying why. */
typedef int (*fl_native_restore_fn)(void *arg, size_t subtask, uint64_t store_id,
                                    const char *const *files, size_t n, char *msg, size_t size);

/* Where a snapshot is read from: up to cap bytes into buf, *got = 0 at the end. 0, or a
 * negative error with msg saying why. (fl_ckpt_in_read has this shape.) */
typedef int (*fl_snapshot_read_fn)(void *arg, void *buf, size_t cap, size_t *got, char *msg,
                                   size_t size);

/* Restores into t the keyed state and timers of its key groups from the snapshot that
 * old subtask `subtask` wrote (a snapshot of another parallelism or backend is fine),
 * read as a stream: memory holds the largest single value, key or operator state, not
 * the snapshot. size: the snapshot's length when known (an item claiming more is
 * rejected at once), else UINT64_MAX. *op_state gets a malloc'd copy of its operator
 * state ({NULL, 0} when it has none; the caller frees data with free()), also on
 * failure. A native section is handed to native (NULL: rejected). FL_EPARSE for a
 * malformed snapshot, with msg naming the subtask and the byte offset. */
int fl_snapshot_restore_stream(const fl_snapshot_target_t *t, size_t subtask,
                               fl_snapshot_read_fn read, void *arg, uint64_t size,
                               fl_bytes_t *op_state, fl_native_restore_fn native, void *native_arg,
                               char *msg, size_t msg_size);

/* fl_snapshot_restore_stream over the snapshots blobs[0..n) of one node (n = its
 * parallelism then; an empty blob is a subtask that had nothing) held in memory.
 * op_states[i] gets blob i's operator state as a malloc'd copy (free() each). */
int fl_snapshot_restore(const fl_snapshot_target_t *t, const fl_bytes_t *blobs, size_t n,
                        fl_bytes_t *op_states, fl_native_restore_fn native, void *native_arg,
                        char *msg, size_t size);

/* Copies into t the cells of its key groups from the tables of src named prefix... and
 * the timers src keeps in itself (a RocksDB store opened from a native copy), without
 * building a snapshot: how a native snapshot is restored into any backend. */
int fl_snapshot_copy_store(const fl_snapshot_target_t *t, fl_kv_t *src, const char *prefix,
                           char *msg, size_t size);

#endif
