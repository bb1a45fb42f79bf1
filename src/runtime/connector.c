/* The runtime's side of connector.h. */
#include "runtime/connector.h"

#include <stdarg.h>
#include <stdio.h>

#include "runtime/job.h"
#include "runtime/restore.h"

bool fl_ctx_job_failing(const fl_context_t *ctx) {
  return atomic_load(&ctx->op->worker->job->failing) != 0;
}

bool fl_ctx_checkpoints_enabled(const fl_context_t *ctx) {
  return ctx->op->node->env->conf.ckpt_interval_ms > 0;
}

int64_t fl_ctx_checkpoint_triggered(const fl_context_t *ctx) {
  return atomic_load(&ctx->op->worker->job->ckpt_trigger);
}

int64_t fl_ctx_restored_checkpoint_id(const fl_context_t *ctx) {
  const fl_restore_t *r = ctx->op->worker->job->restore;
  return r ? r->id : 0;
}

void fl_ctx_snapshot_lend(fl_context_t *ctx, const void *data, size_t len,
                          void (*release)(void *arg), void *arg) {
  fl_op_t *op = ctx->op;
  if (op->snap_lent_release) op->snap_lent_release(op->snap_lent_arg); /* replaced */
  bool any = data && len;
  op->snap_lent = any ? data : NULL;
  op->snap_lent_len = any ? len : 0;
  op->snap_lent_release = any ? release : NULL;
  op->snap_lent_arg = any ? arg : NULL;
  if (!any && release) release(arg);
}

char *fl_ctx_take_failure(fl_context_t *ctx) {
  char *msg = ctx->op->pending_err;
  ctx->op->pending_err = NULL;
  return msg;
}

void fl_ctx_log(const fl_context_t *ctx, fl_log_level_t level, const char *fmt, ...) {
  const fl_op_t *op = ctx->op;
  char prefix[256];
  snprintf(prefix, sizeof prefix, "operator '%s' (subtask %d of %d): ", op->node->name, op->subtask,
           op->parallelism);
  va_list ap;
  va_start(ap, fmt);
  fl_env_vlog(op->node->env, level, prefix, fmt, ap);
  va_end(ap);
}

void fl_ctx_fail_async(const fl_context_t *ctx, int err, const char *fmt, ...) {
  char msg[768], full[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  const fl_op_t *op = ctx->op;
  snprintf(full, sizeof full, "operator '%s' (subtask %d of %d): %s", op->node->name, op->subtask,
           op->parallelism, msg);
  fl_job_fail(op->worker->job, err, full); /* thread-safe; op->failed stays the worker's */
}

const char *fl_env_checkpoint_dir(const fl_env_t *env) { return env->conf.ckpt_dir; }

fl_env_t *fl_stream_env(const fl_stream_t *s) { return s ? s->env : NULL; }

void fl_env_builder_fail(fl_env_t *env, int err, const char *fmt, ...) {
  char msg[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  fl_env_fail(env, err, "%s", msg);
}
