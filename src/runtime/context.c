/* What user functions see (flink.h's context calls): side outputs, the current key,
 * time, timers, source watermarks and user metrics. fl_emit is in op.c, next to the
 * emit it inlines; keyed state is in context_state.c. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/op.h"

int fl_emit_side(fl_context_t *ctx, const fl_output_tag_t *tag, const fl_record_t *rec) {
  if (!ctx || !tag || !rec) return FL_EINVAL;
  return fl_op_emit_side(ctx->op, tag, rec);
}

int fl_ctx_fail(fl_context_t *ctx, const char *fmt, ...) {
  if (!ctx) return FL_EUSER;
  fl_op_t *op = ctx->op;
  char buf[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt ? fmt : "failed", ap);
  va_end(ap);
  if (!op->pending_err) op->pending_err = strdup(buf);
  return FL_EUSER;
}

int64_t fl_ctx_timestamp(const fl_context_t *ctx) { return ctx ? ctx->ts : FL_TS_NONE; }
int64_t fl_ctx_watermark(const fl_context_t *ctx) { return ctx ? ctx->op->wm : FL_TS_NONE; }
int64_t fl_ctx_processing_time(const fl_context_t *ctx) {
  return ctx ? fl_env_now(ctx->op->node->env) : 0;
}
const void *fl_ctx_key(const fl_context_t *ctx, size_t *key_len) {
  if (!ctx || !ctx->keyed) {
    if (key_len) *key_len = 0;
    return NULL;
  }
  if (key_len) *key_len = ctx->key_len;
  return ctx->key ? ctx->key : (const void *)"";
}
int fl_ctx_subtask(const fl_context_t *ctx) { return ctx ? ctx->op->subtask : 0; }
int fl_ctx_parallelism(const fl_context_t *ctx) { return ctx ? ctx->op->parallelism : 0; }

size_t fl_ctx_source_budget(const fl_context_t *ctx) { return ctx ? ctx->source_budget : 0; }
int64_t fl_ctx_checkpoint_id(const fl_context_t *ctx) { return ctx ? ctx->checkpoint_id : 0; }
int fl_ctx_source_wait_fd(fl_context_t *ctx, int fd) {
  if (!ctx || fd < 0 || !ctx->op->is_source) return FL_EINVAL;
  ctx->wait_fd = fd;
  return FL_OK;
}

int fl_timer_register(fl_context_t *ctx, fl_time_domain_t domain, int64_t ts) {
  if (!ctx) return FL_EINVAL;
  if (!ctx->keyed || !ctx->op->timers) return FL_ESTATE;
  if (domain != FL_EVENT_TIME && domain != FL_PROCESSING_TIME) return FL_EINVAL;
  return fl_timers_register(ctx->op->timers, domain, ctx->kg, ctx->key, ctx->key_len, ctx->ns,
                            ctx->ns_len, ts);
}

int fl_timer_delete(fl_context_t *ctx, fl_time_domain_t domain, int64_t ts) {
  if (!ctx) return FL_EINVAL;
  if (!ctx->keyed || !ctx->op->timers) return FL_ESTATE;
  if (domain != FL_EVENT_TIME && domain != FL_PROCESSING_TIME) return FL_EINVAL;
  return fl_timers_delete(ctx->op->timers, domain, ctx->kg, ctx->key, ctx->key_len, ctx->ns,
                          ctx->ns_len, ts);
}

/* ---------------------------------------------------------------------------------- */
/* Watermarks and idleness of sources that generate them                              */

int fl_ctx_emit_watermark(fl_context_t *ctx, int64_t watermark) {
  if (!ctx || !ctx->op->is_source) return FL_EINVAL;
  fl_op_t *op = ctx->op;
  if (op->idle_out) fl_op_emit_idle(op, false);
  if (watermark <= op->src_wm) return FL_OK;
  op->src_wm = watermark;
  return fl_op_emit_watermark(op, watermark);
}

int fl_ctx_mark_idle(fl_context_t *ctx, int idle) {
  if (!ctx || !ctx->op->is_source) return FL_EINVAL;
  return fl_op_emit_idle(ctx->op, idle != 0);
}

/* ---------------------------------------------------------------------------------- */
/* User metrics                                                                         */

/* The slot of (name, kind) among the subtask's user metrics (graph/metrics.c registers
 * it at its first use). */
static fl_user_metric_t *user_metric(fl_context_t *ctx, const char *name,
                                     fl_user_metric_kind_t kind) {
  if (!ctx || !ctx->op->m) return NULL;
  return fl_user_metric_get(ctx->op->m, name, kind);
}

static int user_metric_err(fl_context_t *ctx, const char *name) {
  return ctx && name && *name && strlen(name) < FL_USER_METRIC_NAME_MAX ? FL_ENOMEM : FL_EINVAL;
}

int fl_ctx_counter_add(fl_context_t *ctx, const char *name, int64_t delta) {
  fl_user_metric_t *e = user_metric(ctx, name, FL_UM_COUNTER);
  if (!e) return user_metric_err(ctx, name);
  atomic_store_explicit(&e->value, atomic_load_explicit(&e->value, memory_order_relaxed) + delta,
                        memory_order_relaxed);
  return FL_OK;
}

int fl_ctx_gauge_set(fl_context_t *ctx, const char *name, int64_t value) {
  fl_user_metric_t *e = user_metric(ctx, name, FL_UM_GAUGE);
  if (!e) return user_metric_err(ctx, name);
  atomic_store_explicit(&e->value, value, memory_order_relaxed);
  return FL_OK;
}

int fl_ctx_histogram_update(fl_context_t *ctx, const char *name, int64_t value) {
  fl_user_metric_t *e = user_metric(ctx, name, FL_UM_HISTOGRAM);
  if (!e) return user_metric_err(ctx, name);
  fl_hist_update(e->hist, value);
  return FL_OK;
}
