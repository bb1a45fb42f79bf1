/*
 * What a connector (src/io) may ask of the runtime beyond flink.h: the only private
 * header src/io includes. Every call takes the context the runtime gave the connector's
 * callback (or, for builders, the environment), so a connector never sees an operator,
 * a worker or the job.
 *
 * Threading: the ctx calls from the callback's own thread (fl_ctx_log and
 * fl_ctx_fail_async from any); fl_env_builder_fail from the builder's.
 */
#ifndef FL_RUNTIME_CONNECTOR_H
#define FL_RUNTIME_CONNECTOR_H

#include <stdbool.h>
#include <stdint.h>

#include "flink.h"

/* Whether the job is failing or stopping: a sink's flush at this moment must not
 * commit anything. */
bool fl_ctx_job_failing(const fl_context_t *ctx);

/* Whether periodic checkpoints are on (execution.checkpointing.interval > 0). */
bool fl_ctx_checkpoints_enabled(const fl_context_t *ctx);

/* The newest checkpoint the coordinator has triggered (0: none yet): a sink that ends
 * now is covered by the next checkpoint after it. */
int64_t fl_ctx_checkpoint_triggered(const fl_context_t *ctx);

/* The checkpoint or savepoint the job (this attempt) was restored from, 0 for a fresh
 * start. Valid from open on. */
int64_t fl_ctx_restored_checkpoint_id(const fl_context_t *ctx);

/* Takes the message fl_ctx_fail() recorded for the current call (the caller frees it),
 * or NULL: for a connector that handles a user function's failure itself (an error
 * policy) instead of failing the job. */
char *fl_ctx_take_failure(fl_context_t *ctx);

/* Writes a line to the job's log (fl_env_set_log), prefixed with the operator's name
 * and subtask. From any thread, also a client library's own, while the instance is open. */
void fl_ctx_log(const fl_context_t *ctx, fl_log_level_t level, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/* Fails the job from any thread while the instance is open: for a failure a client
 * library's own thread learns of while the runtime may not call the connector for a
 * long time (a delivery that timed out while no record arrives). As a failure returned
 * from a callback, the first failure of the job wins and the message is prefixed with
 * the operator's name and subtask; the instance is then flushed and closed as in any
 * failing job. */
void fl_ctx_fail_async(const fl_context_t *ctx, int err, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/* In a sink's snapshot: len bytes that belong in the operator state after what the
 * snapshot appended to out, written into the checkpoint from data as they are instead
 * of being copied into out first (a write-ahead copy of hundreds of megabytes). A
 * restore gets out's bytes and these as one state, as if they had been appended. A
 * second call in the same snapshot replaces the first; NULL data lends nothing.
 * With release NULL, data must stay unchanged until the snapshot call returns (the
 * runtime writes it first). With release, the runtime may write data after the call
 * returns, on another thread, while the instance goes on (for an operator without
 * keyed state or timers it does: the checkpoint's files are written off the worker);
 * data[0, len) must stay unchanged, and stay allocated, until release(arg) is called,
 * exactly once, from any thread (also when the snapshot or the checkpoint fails). */
void fl_ctx_snapshot_lend(fl_context_t *ctx, const void *data, size_t len,
                          void (*release)(void *arg), void *arg);

/* state.checkpoints.dir ("" when not set). Borrowed from env. */
const char *fl_env_checkpoint_dir(const fl_env_t *env);

/* The environment a stream belongs to (for builder errors). */
fl_env_t *fl_stream_env(const fl_stream_t *s);

/* Records a sticky builder error on env (the first one wins), as the builder calls of
 * flink.h do: fl_env_execute() reports it. */
void fl_env_builder_fail(fl_env_t *env, int err, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

#endif
