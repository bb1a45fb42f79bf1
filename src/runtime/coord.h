/*
 * Checkpoint coordination: the coordinator thread of a running job triggers
 * checkpoints (interval, minimum pause, timeout, tolerable failures) and savepoints,
 * collects the workers' acknowledgements with their operators' snapshots, writes the
 * files in the background (the workers keep processing), commits the manifest, applies
 * retention and publishes completion so that sinks commit (src/runtime/coord.c).
 */
#ifndef FL_RUNTIME_COORD_H
#define FL_RUNTIME_COORD_H

#include "runtime/job.h"

typedef struct fl_coord fl_coord_t;

/* Starts the coordinator of job (job->coord). Checkpoint ids start at first_id. */
int fl_coord_start(fl_job_t *job, int64_t first_id, char *msg, size_t size);
/* Stops the coordinator thread, aborts a checkpoint in progress, frees it. */
void fl_coord_stop(fl_job_t *job);
/* Worker `worker` has snapshotted every operator for checkpoint id: snaps[node id] are
 * the snapshots (their buffers are taken over and reset); snaps NULL: the worker cannot
 * take part (the checkpoint fails). natives (may be NULL): for incremental checkpoints,
 * natives[node id] is the directory of the native store copy behind that snapshot, or
 * NULL. The strings are taken over (set to NULL); the coordinator stores the files (SST
 * files shared between checkpoints) and deletes the directories marked owned[node id].
 * Worker thread. */
void fl_coord_ack(fl_job_t *job, int worker, int64_t id, fl_buf_t *snaps, char **natives,
                  const bool *owned);
/* Makes the coordinator look at the workers again (one exited). Any thread. */
void fl_coord_wake(fl_job_t *job);
/* Takes a savepoint into path; blocks until it is complete or failed. Any thread but a
 * worker's. */
int fl_coord_savepoint(fl_job_t *job, const char *path, char *err, size_t err_size);

#endif
