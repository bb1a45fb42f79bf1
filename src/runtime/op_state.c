/* The keyed state of an operator instance: its (operator, descriptor) tables in the
 * backend, opened on first use, how a context addresses a cell of them (fl_sref_t), and
 * the per-record TTL sweep. */
#include <stdio.h>

#include "runtime/job.h"

static int open_table(fl_op_t *op, const struct fl_state_desc *d, uint32_t *table) {
  if (!op->desc_tables || d->id >= op->node->env->n_descs) return FL_ESTATE;
  uint32_t t = op->desc_tables[d->id];
  if (t) {
    *table = t - 1;
    return FL_OK;
  }
  char name[512];
  snprintf(name, sizeof name, "%u/%s", op->node->id, d->name);
  int rc = op->kv->ops->open_table(op->kv->self, name, &t);
  if (rc) return rc;
  if (d->has_ttl && op->kv->ops->set_table_ttl) {
    /* lets the backend drop expired state by itself (RocksDB: in compaction) */
    int layout = d->kind == FL_STATE_LIST  ? FL_KV_TTL_LIST
                 : d->kind == FL_STATE_MAP ? FL_KV_TTL_MAP
                                           : FL_KV_TTL_VALUE;
    rc = op->kv->ops->set_table_ttl(op->kv->self, t, layout, d->ttl.ttl_ms);
    if (rc) return rc;
  }
  op->desc_tables[d->id] = t + 1;
  *table = t;
  return FL_OK;
}

int fl_op_sref(fl_op_t *op, const struct fl_state_desc *d, const void *ns, size_t ns_len,
               fl_sref_t *out) {
  if (!op || !d || !out || !op->ctx.keyed) return FL_ESTATE;
  uint32_t table;
  int rc = open_table(op, d, &table);
  if (rc) return rc;
  out->kv = op->kv;
  out->table = table;
  out->desc = d;
  out->k.kg = op->ctx.kg;
  out->k.key = op->ctx.key;
  out->k.key_len = op->ctx.key_len;
  out->k.ns = ns;
  out->k.ns_len = ns_len;
  out->key_hashed = op->ctx.key_hashed;
  out->key_hash = op->ctx.key_hash;
  out->now = d->has_ttl ? fl_env_now(op->node->env) : 0;
  out->ctx = &op->ctx;
  out->cleanup = &op->desc_cleanup[d->id];
  out->scratch = op->worker_scratch;
  return FL_OK;
}

int fl_ctx_sref(fl_context_t *ctx, const fl_state_desc_t *d, int kind, fl_sref_t *out) {
  if (!ctx || !d || !out) return FL_EINVAL;
  if (!ctx->keyed) return FL_ESTATE;
  if (kind >= 0 && (int)d->kind != kind) return FL_ESTATE;
  return fl_op_sref(ctx->op, d, ctx->ns, ctx->ns_len, out);
}

fl_snapshot_target_t fl_rt_snapshot_target(fl_op_t *op) {
  fl_snapshot_target_t t = {
      .kv = op->node->keyed ? op->kv : NULL,
      .timers = op->timers,
      .node_id = op->node->id,
      .kg_first = op->kg_first,
      .kg_count = op->kg_count,
  };
  return t;
}

void fl_rt_ttl_sweep(fl_op_t *op) {
  /* Flink's cleanupIncrementally(size, runCleanupForEveryRecord): after each record,
   * check a few entries of every TTL state this operator opened, whether or not the
   * record touched it. */
  fl_env_t *env = op->node->env;
  for (size_t i = 0; i < env->n_descs; i++) {
    const struct fl_state_desc *d = env->descs[i];
    if (!d->has_ttl || !d->ttl.cleanup_every_record || !d->ttl.incremental_cleanup_size ||
        !op->desc_tables[d->id])
      continue;
    fl_sref_t r;
    int rc = fl_op_sref(op, d, NULL, 0, &r);
    if (rc == FL_OK) rc = fl_st_ttl_cleanup_step(&r, d->ttl.incremental_cleanup_size);
    if (rc < 0) {
      fl_op_fail(op, rc, "TTL cleanup of state '%s' failed", d->name);
      return;
    }
  }
}
