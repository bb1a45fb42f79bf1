/*
 * Broadcast state (Flink's KeyedBroadcastProcessFunction): a keyed input (side 0,
 * hash-partitioned, processed with its key) and a broadcast input (side 1, every record
 * to every subtask, processed without a key).
 *
 * Broadcast state belongs to the operator instance, not to a key: every subtask holds a
 * full copy, kept the same on all of them by the user's process_broadcast making the
 * same changes everywhere. It lives in a private hashmap store of the subtask (one map
 * cell per descriptor: table = the descriptor's name, key group 0, empty key), never in
 * the worker's keyed backend, so nothing that splits or moves keyed state by key group
 * can tear it apart.
 *
 * Access rules, as in Flink: process_broadcast may read and write; process and on_timer
 * may only read (writes: FL_ESTATE). Keyed state and timers work in process and on_timer
 * and return FL_ESTATE in process_broadcast, where the runtime sets no key.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "operators/operators.h"

typedef struct bc_op {
  fl_kv_t kv;       /* this instance's broadcast state */
  uint32_t *tables; /* [env->n_descs]: table id + 1, 0 = not opened yet */
  size_t n_tables;
  bool writable; /* process_broadcast is running */
  int iterating; /* fl_broadcast_foreach calls in progress: the maps must not change */
  bool opened_instance;
} bc_op_t;

static const fl_kkey_t bc_cell = {0, NULL, 0, NULL, 0};

static void bc_free(bc_op_t *st) {
  if (!st) return;
  fl_kv_destroy(&st->kv);
  free(st->tables);
  free(st);
}

static int bc_open(fl_op_t *op) {
  const fl_broadcast_process_fn_t *fn = &op->node->u.bcast.fn;
  fl_env_t *env = op->node->env;
  bc_op_t *st = calloc(1, sizeof *st);
  if (!st) return FL_ENOMEM;
  st->n_tables = env->n_descs;
  st->tables = calloc(st->n_tables ? st->n_tables : 1, sizeof *st->tables);
  if (!st->tables || fl_kv_hashmap_new(&st->kv) != FL_OK) {
    bc_free(st);
    return FL_ENOMEM;
  }
  op->state = st;
  int rc = fl_op_open_user(op, fn->open, op->node->u.bcast.opaque);
  if (rc < 0) return rc;
  st->opened_instance = rc > 0;
  return FL_OK;
}

static int bc_process(fl_op_t *op, int input, const fl_record_t *rec) {
  bc_op_t *st = op->state;
  const fl_broadcast_process_fn_t *fn = &op->node->u.bcast.fn;
  int rc;
  if (input == 0) {
    rc = fn->process(&op->ctx, rec, op->ctx.instance);
    if (rc < 0) return fl_op_user_failed(op, rc, "process function");
    return FL_OK;
  }
  st->writable = true;
  rc = fn->process_broadcast(&op->ctx, rec, op->ctx.instance);
  st->writable = false;
  if (rc < 0) return fl_op_user_failed(op, rc, "process_broadcast function");
  return FL_OK;
}

static int bc_on_timer(fl_op_t *op, fl_time_domain_t d, const fl_timer_t *t) {
  return fl_op_user_on_timer(op, op->node->u.bcast.fn.on_timer, d, t);
}

static void bc_close(fl_op_t *op) {
  bc_op_t *st = op->state;
  const fl_broadcast_process_fn_t *fn = &op->node->u.bcast.fn;
  if (st && st->opened_instance && fn->close) fn->close(op->ctx.instance);
  bc_free(st);
  op->state = NULL;
}

/* ---------------------------------------------------------------------------------- */
/* Checkpoints                                                                          */
/*
 * Broadcast state is operator state: the runtime snapshots keyed state and timers, and
 * the class appends its broadcast state, native endian:
 *   [u32 tables] { [u32 name length][descriptor name][u32 entries]
 *                  { [u32 key length][key][u32 value length][value] } }
 * At a restore every subtask takes the state of old subtask (index mod old parallelism),
 * as Flink does: all copies are the same when process_broadcast behaves as it must.
 */

typedef struct bc_snap {
  fl_buf_t *out;
  uint32_t entries;
  int err;
} bc_snap_t;

static int snap_u32(fl_buf_t *out, size_t v) {
  if (v > UINT32_MAX) return FL_EINVAL;
  uint32_t u = (uint32_t)v;
  return fl_buf_append(out, &u, sizeof u);
}

static int snap_bytes(fl_buf_t *out, const void *p, size_t n) {
  int rc = snap_u32(out, n);
  return rc ? rc : fl_buf_append(out, p, n);
}

static int snap_entry_cb(const void *uk, size_t ukl, const void *v, size_t vl, void *arg) {
  bc_snap_t *s = arg;
  int rc = snap_bytes(s->out, uk, ukl);
  if (!rc) rc = snap_bytes(s->out, v, vl);
  if (rc) {
    s->err = rc;
    return FL_KV_STOP;
  }
  s->entries++;
  return FL_KV_NEXT;
}

static int bc_snapshot(fl_op_t *op, int64_t id, fl_buf_t *out) {
  (void)id;
  bc_op_t *st = op->state;
  fl_env_t *env = op->node->env;
  uint32_t n = 0;
  size_t at = out->len;
  if (!st) return snap_u32(out, 0); /* never opened: no broadcast state */
  int rc = snap_u32(out, 0);        /* the table count, set below */
  for (size_t i = 0; !rc && i < st->n_tables; i++) {
    if (!st->tables[i]) continue;
    rc = snap_bytes(out, env->descs[i]->name, strlen(env->descs[i]->name));
    size_t count_at = out->len;
    if (!rc) rc = snap_u32(out, 0);
    bc_snap_t s = {out, 0, 0};
    if (!rc) rc = st->kv.ops->map_iter(st->kv.self, st->tables[i] - 1, &bc_cell, snap_entry_cb, &s);
    if (!rc) rc = s.err;
    if (!rc) memcpy(out->data + count_at, &s.entries, sizeof s.entries);
    n++;
  }
  if (!rc) memcpy(out->data + at, &n, sizeof n);
  if (rc) return fl_op_fail(op, rc, "cannot snapshot the broadcast state");
  return FL_OK;
}

typedef struct bc_rd {
  const uint8_t *p;
  size_t left;
} bc_rd_t;

static bool rd_u32(bc_rd_t *r, uint32_t *v) {
  if (r->left < sizeof *v) return false;
  memcpy(v, r->p, sizeof *v);
  r->p += sizeof *v;
  r->left -= sizeof *v;
  return true;
}

static bool rd_bytes(bc_rd_t *r, const uint8_t **p, uint32_t *n) {
  if (!rd_u32(r, n) || r->left < *n) return false;
  *p = r->p;
  r->p += *n;
  r->left -= *n;
  return true;
}

static const struct fl_state_desc *desc_named(const fl_env_t *env, const uint8_t *name,
                                              size_t len) {
  for (size_t i = 0; i < env->n_descs; i++)
    if (strlen(env->descs[i]->name) == len && memcmp(env->descs[i]->name, name, len) == 0)
      return env->descs[i];
  return NULL;
}

static int bc_restore(fl_op_t *op, const fl_bytes_t *states, size_t n) {
  bc_op_t *st = op->state;
  fl_env_t *env = op->node->env;
  if (!st || n == 0) return FL_OK;
  const fl_bytes_t *mine = &states[(size_t)op->subtask % n];
  if (mine->len == 0) return FL_OK; /* that subtask held no broadcast state */
  bc_rd_t r = {mine->data, mine->len};
  uint32_t tables;
  int rc = FL_OK;
  if (!rd_u32(&r, &tables)) goto corrupt;
  for (uint32_t t = 0; t < tables && !rc; t++) {
    const uint8_t *name;
    uint32_t name_len, entries;
    if (!rd_bytes(&r, &name, &name_len) || !rd_u32(&r, &entries)) goto corrupt;
    const struct fl_state_desc *d = desc_named(env, name, name_len);
    if (!d || d->kind != FL_STATE_MAP)
      return fl_op_fail(op, FL_ESTATE,
                        "the restored broadcast state '%.*s' is not a map state of this job",
                        (int)name_len, (const char *)name);
    uint32_t table;
    rc = st->kv.ops->open_table(st->kv.self, d->name, &table);
    if (rc) break;
    st->tables[d->id] = table + 1;
    for (uint32_t e = 0; e < entries && !rc; e++) {
      const uint8_t *k, *v;
      uint32_t kl, vl;
      if (!rd_bytes(&r, &k, &kl) || !rd_bytes(&r, &v, &vl)) goto corrupt;
      rc = st->kv.ops->map_put(st->kv.self, table, &bc_cell, k, kl, v, vl);
    }
  }
  if (rc) return fl_op_fail(op, rc, "cannot restore the broadcast state");
  if (r.left) goto corrupt;
  return FL_OK;
corrupt:
  return fl_op_fail(op, FL_EPARSE, "the restored broadcast state is corrupt");
}

const fl_op_class_t fl_op_broadcast_process_class = {.kind = "broadcast_process",
                                                     .open = bc_open,
                                                     .process = bc_process,
                                                     .on_timer = bc_on_timer,
                                                     .close = bc_close,
                                                     .snapshot = bc_snapshot,
                                                     .restore = bc_restore};

/* ---------------------------------------------------------------------------------- */
/* Broadcast state access                                                               */

/* The store and table of descriptor d for a call from ctx: FL_ESTATE outside a
 * broadcast process function, for a descriptor that is not a map of this environment,
 * and for a write where writes are not allowed. */
static int bc_resolve(fl_context_t *ctx, const fl_state_desc_t *d, bool write, bc_op_t **out,
                      uint32_t *table) {
  if (!ctx || !d) return FL_EINVAL;
  fl_op_t *op = ctx->op;
  if (!op || op->node->kind != FL_NODE_BROADCAST_PROCESS || !op->state) return FL_ESTATE;
  bc_op_t *st = op->state;
  fl_env_t *env = op->node->env;
  if (d->kind != FL_STATE_MAP || d->id >= st->n_tables || env->descs[d->id] != d) return FL_ESTATE;
  if (write && (!st->writable || st->iterating)) return FL_ESTATE;
  uint32_t t = st->tables[d->id];
  if (!t) {
    int rc = st->kv.ops->open_table(st->kv.self, d->name, &t);
    if (rc) return rc;
    st->tables[d->id] = ++t;
  }
  *out = st;
  *table = t - 1;
  return FL_OK;
}

int fl_broadcast_get(fl_context_t *ctx, const fl_state_desc_t *d, const void *ukey, size_t ukey_len,
                     const void **value, size_t *value_len) {
  bc_op_t *st;
  uint32_t table;
  if ((ukey_len && !ukey) || !value || !value_len) return FL_EINVAL;
  int rc = bc_resolve(ctx, d, false, &st, &table);
  if (rc) return rc;
  return st->kv.ops->map_get(st->kv.self, table, &bc_cell, ukey, ukey_len, value, value_len);
}

int fl_broadcast_put(fl_context_t *ctx, const fl_state_desc_t *d, const void *ukey, size_t ukey_len,
                     const void *value, size_t value_len) {
  bc_op_t *st;
  uint32_t table;
  if ((ukey_len && !ukey) || (value_len && !value)) return FL_EINVAL;
  int rc = bc_resolve(ctx, d, true, &st, &table);
  if (rc) return rc;
  return st->kv.ops->map_put(st->kv.self, table, &bc_cell, ukey, ukey_len, value, value_len);
}

int fl_broadcast_remove(fl_context_t *ctx, const fl_state_desc_t *d, const void *ukey,
                        size_t ukey_len) {
  bc_op_t *st;
  uint32_t table;
  if (ukey_len && !ukey) return FL_EINVAL;
  int rc = bc_resolve(ctx, d, true, &st, &table);
  if (rc) return rc;
  return st->kv.ops->map_del(st->kv.self, table, &bc_cell, ukey, ukey_len);
}

typedef struct bc_foreach {
  int (*cb)(const void *ukey, size_t ukey_len, const void *value, size_t value_len, void *arg);
  void *arg;
  int user_rc;
} bc_foreach_t;

static int bc_foreach_cb(const void *uk, size_t ukl, const void *v, size_t vl, void *arg) {
  bc_foreach_t *f = arg;
  int u = f->cb(uk, ukl, v, vl, f->arg);
  if (u) {
    f->user_rc = u;
    return FL_KV_STOP;
  }
  return FL_KV_NEXT;
}

int fl_broadcast_foreach(fl_context_t *ctx, const fl_state_desc_t *d,
                         int (*cb)(const void *ukey, size_t ukey_len, const void *value,
                                   size_t value_len, void *arg),
                         void *arg) {
  bc_op_t *st;
  uint32_t table;
  if (!cb) return FL_EINVAL;
  int rc = bc_resolve(ctx, d, false, &st, &table);
  if (rc) return rc;
  bc_foreach_t f = {cb, arg, 0};
  st->iterating++;
  rc = st->kv.ops->map_iter(st->kv.self, table, &bc_cell, bc_foreach_cb, &f);
  st->iterating--;
  if (rc < 0) return rc;
  return f.user_rc;
}
