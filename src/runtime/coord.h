/*
 * Checkpoint coordination: the coordinator thread of a running job triggers
 * checkpoints (interval, minimum pause, timeout, tolerable failures) and savepoints,
 * opens the files operators stream their snapshots into, collects the workers'
 * acknowledgements with those files, makes them durable in the background (the workers
 * keep processing), commits the manifest, applies
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
/* Opens op-<node>-<subtask>.snap in checkpoint id for an operator to stream its
 * snapshot into (*out; the operator hands it back with fl_coord_ack, or discards it).
 * FL_ESTATE when checkpoint id is no longer running (nothing is to be written); another
 * error fails checkpoint id (msg says why) and the operator goes on. Worker thread. */
int fl_coord_open_snapshot(fl_job_t *job, int64_t id, uint32_t node, int subtask,
                           struct fl_ckpt_out **out, char *msg, size_t size);
/* Writing a snapshot for checkpoint id failed (msg): the checkpoint fails. Any thread. */
void fl_coord_fail_checkpoint(fl_job_t *job, int64_t id, const char *msg);
/* Worker `worker` has snapshotted every operator for checkpoint id. part NULL: the
 * worker cannot take part (the checkpoint fails). Otherwise for each node k:
 * part->outs[k] is the open file of k's snapshot (closed by the coordinator), or else
 * part->finals[k] the local file of k's final snapshot to copy in, or neither; and
 * part->natives[k] (natives may be NULL), for incremental checkpoints, the directory of
 * the native store copy behind that snapshot, whose files the coordinator stores (SST
 * files shared between checkpoints), deleting the directory when owned[k]. Everything
 * in part is taken over (the pointers are set to NULL). Worker thread. */
typedef struct fl_coord_part {
  struct fl_ckpt_out **outs; /* [n_nodes] */
  char **finals;             /* [n_nodes] */
  char **natives;            /* [n_nodes] or NULL */
  bool *owned;               /* [n_nodes] or NULL */
} fl_coord_part_t;
void fl_coord_ack(fl_job_t *job, int worker, int64_t id, fl_coord_part_t *part);
/* Makes the coordinator look at the workers again (one exited). Any thread. */
void fl_coord_wake(fl_job_t *job);
/* Takes a savepoint into path; blocks until it is complete or failed. Any thread but a
 * worker's. */
int fl_coord_savepoint(fl_job_t *job, const char *path, char *err, size_t err_size);

#endif
