/*
 * Restore: opens a checkpoint or savepoint (verifying it) for the operator instances to
 * read their key groups from, as streams (src/runtime/restore.c).
 */
#ifndef FL_RUNTIME_RESTORE_H
#define FL_RUNTIME_RESTORE_H

#include "runtime/job.h"

/* A checkpoint or savepoint loaded for a restore. */
typedef struct fl_restore {
  struct fl_ckpt *ck; /* the opened checkpoint (native files are read from it) */
  int64_t id;
  int parallelism; /* of the run that wrote it */
  size_t n_nodes;
  char path[4096]; /* the directory it came from */
} fl_restore_t;

/* Loads path: a checkpoint or savepoint directory, or a checkpoint root (then the
 * newest usable checkpoint in it, logging every one skipped). Checks that it belongs to
 * a job of the same shape (operator count, names, max parallelism). */
int fl_restore_load(fl_env_t *env, const char *path, fl_restore_t **out, char *msg, size_t size);
/* state.checkpoints.restore-latest: the newest complete checkpoint under the job's
 * state.checkpoints.dir, as fl_restore_load() takes a root. *out is NULL (and the result
 * FL_OK, with a log line) when there is none: no chk-<id> directory, or only ones that
 * were never completed or are damaged; also when execution.savepoint.path names a
 * savepoint or checkpoint with a larger id than that checkpoint's (the run that wrote it
 * came before the savepoint). Other failures (a checkpoint of a job of another shape, an
 * I/O error) are returned with msg. */
int fl_restore_load_latest(fl_env_t *env, fl_restore_t **out, char *msg, size_t size);
void fl_restore_free(fl_restore_t *r);
/* The largest checkpoint id present under a checkpoint root (0 if none). */
int64_t fl_ckpt_root_max_id(const char *root);

#endif
