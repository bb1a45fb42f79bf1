/*
 * Checkpoint storage: how the files of a checkpoint or savepoint are laid out in a
 * directory, written atomically with CRC32C checksums, verified when read back, and
 * found again after a crash, falling back to the previous complete checkpoint when the
 * newest one is damaged. The layer stores opaque files plus a small JSON object of the
 * caller's; what the files mean is the runtime's business.
 *
 * Layout under a checkpoint root R:
 *   R/chk-<id>/              one directory per checkpoint (<id> decimal, no leading 0)
 *   R/chk-<id>/<name>        the checkpoint's own files
 *   R/chk-<id>/_manifest     written last: the checkpoint is complete once it exists
 *   R/shared/<key>           immutable files (RocksDB SST files) shared by checkpoints
 * A savepoint is one self-contained directory anywhere (the path the user gives): its
 * files and _manifest, nothing referenced outside it, so it can be moved or copied.
 *
 * The manifest is JSON followed by one line that checksums everything before it:
 *   {
 *     "format": 1,
 *     "kind": "checkpoint",                  or "savepoint"
 *     "id": 7,
 *     "created_ms": 1700000000000,           wall clock, ms since the epoch
 *     "meta": { ...the caller's object... },
 *     "files": [                             sorted by name
 *       {"name": "op-3-1.state", "size": 1234, "crc32c": "e3069283", "shared": false},
 *       {"name": "op-3-1/000012.sst", "size": 99, "crc32c": "0a1b2c3d", "shared": true,
 *        "key": "db-3-1-000012.sst"}       a shared file lives at R/shared/<key>
 *     ]
 *   }
 *   crc32c 1f2e3d4c                          CRC32C of every byte before this line
 * so a flipped bit or a truncation anywhere in the manifest is detected.
 *
 * Names. A file name is a relative path of components separated by '/' (directories are
 * created as needed), at most 1024 bytes; each component is 1..255 bytes of
 * [A-Za-z0-9._+=,@-], does not start with '.' or '_' and does not end with ".tmp"
 * (those are the layer's own: _manifest, temporary files). A shared key is one such
 * component. Names are unique within a checkpoint.
 *
 * Crash safety. Every file is written under a temporary name (<name>.tmp), fsync'ed and
 * renamed; the manifest is written as _manifest.tmp, fsync'ed, renamed to _manifest, and
 * then the directory and R are fsync'ed. A crash at any point therefore leaves either
 * the previous set of complete checkpoints or that set plus the new one: a directory
 * without _manifest is an incomplete checkpoint, ignored by readers and deleted by the
 * next fl_ckpt_retain(); half-written files never carry their final names.
 *
 * Concurrency. One process owns a root at a time (nothing guards against two processes
 * writing the same root). Within the process, writers, readers and fl_ckpt_retain()
 * coordinate through a process-wide registry: at most one writer per root, retain never
 * deletes the checkpoint being written, a checkpoint held open by a reader, or a shared
 * file either of them references.
 *
 * Errors. Every fallible call returns 0 or a negative fl_err_t and, when err is not
 * NULL, writes a message into err (err_size bytes, always NUL-terminated) naming the
 * path and the cause, with strerror() text for failed system calls. err may be NULL.
 *   FL_EINVAL    a bad argument (NULL, invalid name, id < 0, meta not a JSON object)
 *   FL_ENOMEM    out of memory
 *   FL_EIO       a system call failed (open, read, write, fsync, rename, ...)
 *   FL_ENOTFOUND no such checkpoint (no _manifest; no usable checkpoint under a root)
 *   FL_EPARSE    a damaged checkpoint: corrupt manifest, or a listed file missing, of the
 *                wrong size, or with a CRC32C mismatch
 *   FL_ENOTSUP   a manifest of a newer format
 *   FL_ESTATE    a call out of order (a second writer on a root, a checkpoint id that is
 *                already complete, commit with files still open, a shared key whose
 *                size differs from the file a complete checkpoint recorded)
 */
#ifndef FL_CHECKPOINT_STORE_H
#define FL_CHECKPOINT_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "flink.h"

typedef enum fl_ckpt_kind {
  FL_CKPT_CHECKPOINT = 0, /* under a root, may reference R/shared */
  FL_CKPT_SAVEPOINT = 1   /* self-contained directory */
} fl_ckpt_kind_t;

/* Receives one line of text (no trailing newline) about a checkpoint skipped or deleted;
 * the line is valid only during the call. NULL where a log is taken: lines go to stderr.
 * Called on the thread that made the call taking it. */
typedef void (*fl_ckpt_log_fn)(const char *line, void *arg);

/* ---------------------------------------------------------------------------------- */
/* Writing                                                                              */

typedef struct fl_ckpt_writer fl_ckpt_writer_t;
typedef struct fl_ckpt_out fl_ckpt_out_t;

/* Starts checkpoint `id` under root `path` (kind FL_CKPT_CHECKPOINT) or a savepoint in
 * directory `path` (FL_CKPT_SAVEPOINT).
 *
 * Checkpoint: creates R (with its parents), R/shared and R/chk-<id>. An existing
 * R/chk-<id> without _manifest (left by a crash) is emptied and reused; one with a
 * _manifest is FL_ESTATE, as is a second writer on the same root in this process. The
 * writer reads the complete checkpoints' manifests once, here, to know the shared files
 * it can reuse. Savepoint: `path` must not exist (it is created with its parents) or be
 * an empty directory; otherwise FL_EINVAL. id is recorded in the manifest.
 *
 * id >= 0 (FL_EINVAL otherwise). On success *out is the caller's until exactly one of
 * fl_ckpt_writer_commit() or fl_ckpt_writer_abort(); on failure *out is NULL and nothing
 * is left behind but directories R and R/shared.
 *
 * Threading: begin, commit and abort from one thread at a time (the coordinator); the
 * calls that add files (open_file, put, add_file, add_shared) from any threads at once,
 * between begin and commit/abort. */
int fl_ckpt_writer_begin(fl_ckpt_writer_t **out, const char *path, int64_t id, fl_ckpt_kind_t kind,
                         char *err, size_t err_size);

/* The directory the writer's files go to (R/chk-<id> or the savepoint directory).
 * Borrowed from w. */
const char *fl_ckpt_writer_dir(const fl_ckpt_writer_t *w);

/* Opens file `name` for streaming writes into the checkpoint. The data goes to
 * <dir>/<name>.tmp; fl_ckpt_out_close() fsyncs it and renames it to <dir>/<name>. The
 * name is reserved from this call on: adding it again is FL_EINVAL, even after a failed
 * write (a checkpoint with a failed file cannot be committed; abort it). On success *out
 * must be closed or discarded before commit/abort. Thread-safe. */
int fl_ckpt_writer_open_file(fl_ckpt_writer_t *w, const char *name, fl_ckpt_out_t **out, char *err,
                             size_t err_size);

/* Appends len bytes (buffered; len 0 is fine). One thread at a time per out, any
 * number of outs of one writer at once. After an error the file is failed: further
 * writes return the same error and close discards it. */
int fl_ckpt_out_write(fl_ckpt_out_t *out, const void *data, size_t len, char *err, size_t err_size);

/* Defers len bytes of data to the end of the file: fl_ckpt_out_close() writes the
 * deferred pieces, in the order they were deferred, after everything written before,
 * on the thread that closes out; no write may follow a deferral. release(arg) is
 * called once data is no longer read (after close wrote it, or when out is discarded
 * or fails), from the thread that closes or discards out; data must stay unchanged
 * until then. release NULL: data is copied now (a short trailer). On failure
 * (FL_ENOMEM, or out already failed) release has been called and out is failed. */
int fl_ckpt_out_defer(fl_ckpt_out_t *out, const void *data, size_t len, void (*release)(void *),
                      void *arg, char *err, size_t err_size);

/* Finishes the file: writes what was deferred, flushes, fsyncs, closes and renames it
 * to its final name, and records its size and CRC32C for the manifest (also returned
 * through size and crc32c when they are not NULL). Always frees out, on failure too
 * (then the temporary file is deleted and the file is marked failed). */
int fl_ckpt_out_close(fl_ckpt_out_t *out, uint64_t *size, uint32_t *crc32c, char *err,
                      size_t err_size);

/* Abandons an unfinished file: deletes its temporary file, marks it failed (so the
 * checkpoint cannot be committed) and frees out. NULL-safe. */
void fl_ckpt_out_discard(fl_ckpt_out_t *out);

/* open_file + write + close of one buffer. Thread-safe. */
int fl_ckpt_writer_put(fl_ckpt_writer_t *w, const char *name, const void *data, size_t len,
                       char *err, size_t err_size);

/* Copies the file at src_path into the checkpoint as `name` (its own copy, not shared).
 * Thread-safe. */
int fl_ckpt_writer_add_file(fl_ckpt_writer_t *w, const char *name, const char *src_path, char *err,
                            size_t err_size);

/* Adds the immutable file at src_path as `name`, stored once in R/shared/<shared_key>
 * and referenced by every checkpoint that adds the same key.
 *  - If a complete checkpoint already references shared_key with the size src_path has
 *    now, and R/shared/<shared_key> has that size, nothing is read or written: the
 *    manifest records the CRC32C that checkpoint recorded.
 *  - If a complete checkpoint references it with another size, FL_ESTATE: a shared key
 *    must always name the same content.
 *  - Otherwise the file is hard-linked (same file system) or copied into a temporary
 *    file of the checkpoint directory, read for its CRC32C, fsync'ed, and renamed to
 *    R/shared/<shared_key> (replacing a file no complete checkpoint references).
 * src_path must not change afterwards (a hard link shares its inode); RocksDB never
 * rewrites an SST file. In a savepoint the file is copied into the savepoint directory
 * as `name` (a plain file; shared_key is checked and then unused). Adding the same key
 * under several names is fine. Thread-safe. */
int fl_ckpt_writer_add_shared(fl_ckpt_writer_t *w, const char *name, const char *src_path,
                              const char *shared_key, char *err, size_t err_size);

/* Completes the checkpoint: fsyncs the directories written to, writes the manifest
 * with meta_json (the text of a JSON object, or NULL for {}; stored as an object, so
 * integers must fit in 64 bits) as _manifest.tmp, fsyncs it, renames it to _manifest,
 * fsyncs the checkpoint directory and then its parent (R, or the savepoint's parent).
 * Consumes w, on success and on failure: a failed commit removes what the writer wrote,
 * as abort does. FL_ESTATE when a file is still open or an add is still running
 * (the writer is then aborted, and its files deleted once the last one is closed or
 * discarded), or when a file failed. FL_EINVAL when meta_json is not an object. Must
 * not run concurrently with calls that add files to w. */
int fl_ckpt_writer_commit(fl_ckpt_writer_t *w, const char *meta_json, char *err, size_t err_size);

/* Abandons the checkpoint: deletes its directory (a savepoint directory the writer
 * created, or only the contents of one that existed empty) and the shared files it
 * brought into R/shared that no complete checkpoint references; files it reused stay.
 * Consumes w (NULL-safe). With files still open, the deletion happens when the last one
 * is closed or discarded. Errors while deleting are ignored: what is left is an
 * incomplete checkpoint, removed by the next fl_ckpt_retain(). */
void fl_ckpt_writer_abort(fl_ckpt_writer_t *w);

/* ---------------------------------------------------------------------------------- */
/* Reading                                                                              */

typedef struct fl_ckpt fl_ckpt_t;
typedef struct fl_ckpt_in fl_ckpt_in_t;

/* One file of an opened checkpoint. Pointers are borrowed from the fl_ckpt_t. */
typedef struct fl_ckpt_file {
  const char *name; /* name in the checkpoint */
  const char *path; /* full path: <dir>/<name>, or R/shared/<key> when shared */
  uint64_t size;
  uint32_t crc32c;
  bool shared;
  const char *shared_key; /* NULL unless shared */
} fl_ckpt_file_t;

/* Opens the checkpoint or savepoint in directory `path` and verifies it: the manifest
 * (its checksum line, JSON, schema) and every listed file (exists, size, CRC32C; shared
 * files are looked up in <parent of path>/shared). This reads every byte of every file
 * once. FL_ENOTFOUND without _manifest, FL_EPARSE for a damaged checkpoint, FL_EIO for
 * other I/O errors. On success *out is the caller's (fl_ckpt_close()); while it is open
 * fl_ckpt_retain() keeps that checkpoint and its shared files. */
int fl_ckpt_open(fl_ckpt_t **out, const char *path, char *err, size_t err_size);

/* Opens the newest usable checkpoint under root: tries every R/chk-<id> from the highest
 * id down (skipping the one a writer of this process is writing) and returns the first
 * that fl_ckpt_open() accepts and whose manifest says kind checkpoint and the id of its
 * directory name. For each one skipped, log gets one line naming the checkpoint and why,
 * e.g. "checkpoint /x/chk-7 is unusable: file op-3-1.state: CRC32C mismatch (stored
 * 0x..., computed 0x...); falling back to an older one". FL_ENOTFOUND when none is
 * usable (also when root does not exist), FL_ENOMEM at once, FL_EIO when root cannot be
 * listed. Thread: any. */
int fl_ckpt_open_latest(fl_ckpt_t **out, const char *root, fl_ckpt_log_fn log, void *log_arg,
                        char *err, size_t err_size);

/* What execution.savepoint.path means: a directory holding _manifest (a checkpoint or
 * savepoint) is opened with fl_ckpt_open(), any other is taken as a root for
 * fl_ckpt_open_latest(). */
int fl_ckpt_open_path(fl_ckpt_t **out, const char *path, fl_ckpt_log_fn log, void *log_arg,
                      char *err, size_t err_size);

/* The id in dir/_manifest (a checkpoint or savepoint directory), reading the manifest
 * alone: its files are not verified. FL_ENOTFOUND without one (e.g. a checkpoint root),
 * FL_EPARSE for a damaged one, FL_EIO. */
int fl_ckpt_manifest_id(const char *dir, int64_t *id, char *err, size_t err_size);

/* Frees c (NULL-safe). Streams opened from it may outlive it. */
void fl_ckpt_close(fl_ckpt_t *c);

/* Accessors. Results are borrowed from c and valid until fl_ckpt_close(c). An opened
 * checkpoint is never modified: every call on it is thread-safe. */
int64_t fl_ckpt_id(const fl_ckpt_t *c);
fl_ckpt_kind_t fl_ckpt_kind(const fl_ckpt_t *c);
int64_t fl_ckpt_created_ms(const fl_ckpt_t *c);
const char *fl_ckpt_dir(const fl_ckpt_t *c);
/* The caller's meta object as compact JSON text (keys in the order given to commit). */
const char *fl_ckpt_meta(const fl_ckpt_t *c);
/* Files, sorted by name: i in [0, fl_ckpt_file_count(c)). */
size_t fl_ckpt_file_count(const fl_ckpt_t *c);
const fl_ckpt_file_t *fl_ckpt_file_at(const fl_ckpt_t *c, size_t i);
/* The file called name, or NULL. O(log n). */
const fl_ckpt_file_t *fl_ckpt_file_find(const fl_ckpt_t *c, const char *name);

/* Reads file `name` whole into *data (malloc'd, the caller frees it with free();
 * a NUL byte follows the data, not counted in *len), verifying its size and CRC32C
 * again. FL_ENOTFOUND for a name not in the checkpoint, FL_EPARSE for a mismatch. */
int fl_ckpt_read_file(const fl_ckpt_t *c, const char *name, void **data, size_t *len, char *err,
                      size_t err_size);

/* Opens file `name` for streaming reads. *out is the caller's (fl_ckpt_in_close()) and
 * independent of c's lifetime. One thread at a time per stream. */
int fl_ckpt_in_open(const fl_ckpt_t *c, const char *name, fl_ckpt_in_t **out, char *err,
                    size_t err_size);

/* Reads up to cap bytes into buf: 0 and *got > 0 for data; 0 and *got == 0 at the end,
 * returned only once the size and CRC32C of everything read have matched the manifest
 * (FL_EPARSE otherwise, also when the file is longer than recorded). Data is therefore
 * provisional until the end is reached. */
int fl_ckpt_in_read(fl_ckpt_in_t *in, void *buf, size_t cap, size_t *got, char *err,
                    size_t err_size);

/* NULL-safe. */
void fl_ckpt_in_close(fl_ckpt_in_t *in);

/* ---------------------------------------------------------------------------------- */
/* Retention                                                                            */

/* Keeps the newest n (>= 1, else FL_EINVAL) complete checkpoints under root and deletes:
 *  - older complete checkpoints;
 *  - incomplete ones (no _manifest), except the one a writer of this process writes;
 *  - checkpoints whose manifest is corrupt (bad checksum line, JSON or schema, or an id
 *    other than its directory's). Rule: a corrupt manifest's references cannot be
 *    trusted, and such a checkpoint can never be restored, so it is deleted and does not
 *    count towards n;
 *  - then every file in R/shared that no remaining manifest, no running writer of this
 *    process and no checkpoint held open by fl_ckpt_open*() references (whatever else
 *    lies there, a stray temporary file included).
 * log gets one line for each incomplete or corrupt checkpoint deleted, with the reason.
 * Only manifests are read, not the files they list: a complete checkpoint with a damaged
 * file still counts towards n (fl_ckpt_open_latest() would fall back past it), so keep
 * n >= 2 where that matters. Checkpoints held open stay, in addition to the n.
 * A manifest that cannot be read for another reason than corruption (FL_EIO), or that
 * has a newer format (FL_ENOTSUP), stops the call before anything is deleted. A
 * checkpoint's _manifest is deleted first, so a crash during the deletion leaves an
 * incomplete checkpoint, never a complete-looking one with missing files. A root that
 * does not exist is 0. Runs under the process-wide registry lock, so it briefly delays
 * writers' add_shared on every root; log is called after that lock is released.
 * Thread: any. */
int fl_ckpt_retain(const char *root, size_t n, fl_ckpt_log_fn log, void *log_arg, char *err,
                   size_t err_size);

/* The highest id among the R/chk-<id> directories, complete or not, in *id; -1 when there
 * is none or root does not exist. A new checkpoint after a restore takes an id above both
 * this and the restored one: fl_ckpt_writer_begin() refuses an id that is complete
 * (even when that checkpoint is damaged). Thread: any. */
int fl_ckpt_max_id(const char *root, int64_t *id, char *err, size_t err_size);

/* ---------------------------------------------------------------------------------- */
/* Kill points (tests)                                                                  */

/* Installs a hook the writer calls at each step where a crash must leave a consistent
 * root: "file.written" (a file's temporary data written, before fsync), "file.renamed",
 * "shared.renamed" (a shared file in R/shared, before the manifest references it),
 * "manifest.tmp" (_manifest.tmp written and fsync'ed, not renamed), "manifest.renamed"
 * (before the directory fsync). A test's hook calls _exit() in a child process at the
 * point it wants. NULL removes it. Process-wide; set it before writers run. */
void fl_ckpt_set_kill_hook(void (*hook)(const char *point, void *arg), void *arg);

#endif
