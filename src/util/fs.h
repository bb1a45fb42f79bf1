/*
 * File-system helpers, the one home of each: writing whole buffers, making directories
 * and their entries durable, removing trees, and replacing a file atomically. Used by the
 * checkpoint store, the RocksDB backend, the file sink and the Kafka transaction log.
 *
 * Calls that take (err, err_size) return 0 or a negative fl_err_t (FL_EIO for the file
 * system, FL_ENOMEM) with err naming the operation, the path and the system's reason;
 * err may be NULL. Calls without it return 0 or -errno.
 *
 * Threading: all are thread-safe (no global state).
 */
#ifndef FL_UTIL_FS_H
#define FL_UTIL_FS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* write() of all len bytes, retrying EINTR and short writes: 0 or -errno. */
int fl_write_all(int fd, const void *data, size_t len);
/* read() retrying EINTR: bytes read (0 at the end) or -errno. */
ssize_t fl_read_some(int fd, void *buf, size_t cap);

/* Makes a directory's entries durable (fsync of the directory). File systems that
 * cannot fsync a directory (EINVAL, ENOTSUP) order their metadata by other means and
 * count as success. */
int fl_fsync_dir(const char *path, char *err, size_t err_size);

/* mkdir -p with mode 0755. With durable, every directory it creates is made durable in
 * its parent (so a crash cannot lose a directory a later rename relies on). A path
 * component that exists and is not a directory is an error naming it. */
int fl_mkdir_p(const char *path, bool durable, char *err, size_t err_size);

/* Removes path (a file or a whole tree) without following symbolic links: 0, or -errno
 * of the first failure (the rest is still attempted). A missing path is 0, "" does
 * nothing. */
int fl_rm_tree(const char *path);
/* Removes everything inside directory path, keeping path: 0 or -errno as above. */
int fl_empty_dir(const char *path);

/* Replaces the file at path with data, atomically and durably: written to
 * "<path>.tmp", fsync'd, renamed over path, and the directory fsync'd. After a crash
 * path holds either its old content or data, never a mix. */
int fl_file_replace(const char *path, const void *data, size_t len, char *err, size_t err_size);
/* The same, calling stage(point, arg) (if not NULL) between the steps a crash test kills
 * at: "tmp" once "<path>.tmp" is written, fsync'd and closed; "renamed" once it was
 * renamed over path, before the directory's fsync. */
int fl_file_replace_staged(const char *path, const void *data, size_t len,
                           void (*stage)(const char *point, void *arg), void *arg, char *err,
                           size_t err_size);

/* The directory part of path, malloc'd ("." when there is none, "/" for "/x"); NULL on
 * ENOMEM. Trailing slashes of path are ignored. */
char *fl_path_parent(const char *path);

#endif
