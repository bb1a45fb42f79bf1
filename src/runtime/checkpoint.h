/*
 * Checkpoint coordination (DESIGN.md §8): the coordinator thread of a running job
 * triggers checkpoints (interval, minimum pause, timeout, tolerable failures) and
 * savepoints, collects the workers' acknowledgements with their operators' snapshots,
 * writes the files in the background (the workers keep processing), commits the
 * manifest, applies retention and publishes completion so that sinks commit.
 * Restore: loads a checkpoint or savepoint into memory for the operators to pick their
 * key groups from.
 */
#ifndef FL_RUNTIME_CHECKPOINT_H
#define FL_RUNTIME_CHECKPOINT_H

#include "runtime/job.h"

typedef struct fl_coord fl_coord_t;

/* Starts the coordinator of job (job->coord). Checkpoint ids start at first_id. */
int fl_coord_start(fl_job_t *job, int64_t first_id, char *msg, size_t size);
/* Stops the coordinator thread, aborts a checkpoint in progress, frees it. */
void fl_coord_stop(fl_job_t *job);
/* Worker `worker` has snapshotted every operator for checkpoint id: snaps[node id] are
 * the snapshots (their buffers are taken over and reset). Worker thread. */
void fl_coord_ack(fl_job_t *job, int worker, int64_t id, fl_buf_t *snaps, char **natives,
                  const bool *owned);
/* natives (may be NULL): for incremental checkpoints, natives[node id] is the directory
 * of the native store copy behind that snapshot, or NULL. The strings are taken over
 * (set to NULL); the coordinator stores the files (SST files shared between
 * checkpoints) and deletes the directories marked owned[node id]. */
/* Makes the coordinator look at the workers again (one exited). Any thread. */
void fl_coord_wake(fl_job_t *job);
/* Takes a savepoint into path; blocks until it is complete or failed. Any thread but a
 * worker's. */
int fl_coord_savepoint(fl_job_t *job, const char *path, char *err, size_t err_size);

/* A checkpoint or savepoint loaded for a restore. */
typedef struct fl_restore {
  struct fl_ckpt *ck;     /* the opened checkpoint (native files are read from it) */
  int64_t id;
  int parallelism;        /* of the run that wrote it */
  size_t n_nodes;
  fl_bytes_t *blobs;      /* [n_nodes * parallelism]: node k, subtask s at k * P + s */
  char path[4096];        /* the directory it came from */
} fl_restore_t;

/* Loads path: a checkpoint or savepoint directory, or a checkpoint root (then the
 * newest usable checkpoint in it, logging every one skipped). Checks that it belongs to
 * a job of the same shape (operator count, names, max parallelism). */
int fl_restore_load(fl_env_t *env, const char *path, fl_restore_t **out, char *msg,
                    size_t size);
void fl_restore_free(fl_restore_t *r);
/* The largest checkpoint id present under a checkpoint root (0 if none). */
int64_t fl_ckpt_root_max_id(const char *root);

#endif
