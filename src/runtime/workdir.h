/*
 * Local working directories of a job attempt (RocksDB stores, native snapshot copies,
 * restore scratch space): "<base>/flink-work-<pid>-<n>", where base is
 * state.backend.rocksdb.localdir (default /tmp).
 *
 * Ownership is a lock: before the directory exists, its owner creates
 * "<base>/flink-work-<pid>-<n>.lock" and holds an flock on it for the attempt's life.
 * The lock dies with the process, so a SIGKILLed job leaves a directory whose lock
 * anyone can take: the next start in the same base (fl_rt_workdir_sweep) removes such
 * directories, and never one whose owner is alive. A directory without a lock file is
 * removed only when the pid in its name is not a running process.
 */
#ifndef FL_RUNTIME_WORKDIR_H
#define FL_RUNTIME_WORKDIR_H

#include <stddef.h>

typedef struct fl_workdir {
  char path[4096]; /* "" while none is held */
  int lock_fd;     /* -1 while none is held */
} fl_workdir_t;

/* Removes the working directories under base whose owners are gone; returns how many
 * it removed (a line per directory goes to log when it is not NULL). Best effort. */
int fl_rt_workdir_sweep(const char *base, void (*log)(const char *line, void *arg), void *arg);

/* Creates and locks a new working directory under base. 0, or an error with err naming
 * the path and the cause (an unwritable base, say). */
int fl_rt_workdir_acquire(fl_workdir_t *wd, const char *base, char *err, size_t err_size);

/* Removes the directory and its lock file, and drops the lock. NULL-safe; does nothing
 * when none is held. */
void fl_rt_workdir_release(fl_workdir_t *wd);

#endif
