/* The keyed-state calls of flink.h: validate, resolve the context's current cell
 * (fl_ctx_sref), run the descriptor's incremental TTL cleanup, and the typed call of
 * state.c.
 *
 * A read runs the cleanup step before the access, as Flink's TtlStateContext access
 * callback does: a pointer the access returns then stays valid until the next state call,
 * which a cleanup after it (a write to the backend) could break. A write runs it after
 * the access: what it is given may be such a pointer, passed back (fl_list_get, then
 * fl_list_update with the items it returned), and a cleanup before the write could remove
 * the cell it points into (an item at the edge of its TTL expires between the two calls)
 * and free the bytes the write was about to copy. */
#include "runtime/op.h"

static int cleanup(const fl_state_desc_t *d, const fl_sref_t *r) {
  if (d->has_ttl && d->ttl.incremental_cleanup_size > 0)
    return fl_st_ttl_cleanup_step(r, d->ttl.incremental_cleanup_size);
  return FL_OK;
}

/* For reads: the cell, then the cleanup step. */
static int resolve(fl_context_t *ctx, const fl_state_desc_t *d, int kind, fl_sref_t *r) {
  int rc = fl_ctx_sref(ctx, d, kind, r);
  return rc ? rc : cleanup(d, r);
}

/* For writes: the cleanup step after the write wrc (when it succeeded). */
static int written(const fl_state_desc_t *d, const fl_sref_t *r, int wrc) {
  return wrc ? wrc : cleanup(d, r);
}

int fl_value_get(fl_context_t *ctx, const fl_state_desc_t *d, const void **value, size_t *len) {
  fl_sref_t r;
  if (!ctx || !d || !value || !len) return FL_EINVAL;
  int rc = resolve(ctx, d, FL_STATE_VALUE, &r);
  return rc ? rc : fl_st_value_get(&r, value, len);
}

int fl_value_set(fl_context_t *ctx, const fl_state_desc_t *d, const void *value, size_t len) {
  fl_sref_t r;
  if (!ctx || !d || (len && !value)) return FL_EINVAL;
  int rc = fl_ctx_sref(ctx, d, FL_STATE_VALUE, &r);
  return rc ? rc : written(d, &r, fl_st_value_set(&r, value, len));
}

int fl_state_clear(fl_context_t *ctx, const fl_state_desc_t *d) {
  fl_sref_t r;
  if (!ctx || !d) return FL_EINVAL;
  int rc = fl_ctx_sref(ctx, d, -1, &r);
  return rc ? rc : written(d, &r, fl_st_clear(&r));
}

int fl_list_add(fl_context_t *ctx, const fl_state_desc_t *d, const void *item, size_t len) {
  fl_sref_t r;
  if (!ctx || !d || (len && !item)) return FL_EINVAL;
  int rc = fl_ctx_sref(ctx, d, FL_STATE_LIST, &r);
  return rc ? rc : written(d, &r, fl_st_list_add(&r, item, len));
}

int fl_list_get(fl_context_t *ctx, const fl_state_desc_t *d, const fl_bytes_t **items, size_t *n) {
  fl_sref_t r;
  if (!ctx || !d || !items || !n) return FL_EINVAL;
  int rc = resolve(ctx, d, FL_STATE_LIST, &r);
  return rc ? rc : fl_st_list_get(&r, items, n);
}

int fl_list_update(fl_context_t *ctx, const fl_state_desc_t *d, const fl_bytes_t *items, size_t n) {
  fl_sref_t r;
  if (!ctx || !d || (n && !items)) return FL_EINVAL;
  int rc = fl_ctx_sref(ctx, d, FL_STATE_LIST, &r);
  return rc ? rc : written(d, &r, fl_st_list_update(&r, items, n));
}

int fl_map_get(fl_context_t *ctx, const fl_state_desc_t *d, const void *ukey, size_t ukey_len,
               const void **value, size_t *len) {
  fl_sref_t r;
  if (!ctx || !d || (ukey_len && !ukey) || !value || !len) return FL_EINVAL;
  int rc = resolve(ctx, d, FL_STATE_MAP, &r);
  return rc ? rc : fl_st_map_get(&r, ukey, ukey_len, value, len);
}

int fl_map_put(fl_context_t *ctx, const fl_state_desc_t *d, const void *ukey, size_t ukey_len,
               const void *value, size_t len) {
  fl_sref_t r;
  if (!ctx || !d || (ukey_len && !ukey) || (len && !value)) return FL_EINVAL;
  int rc = fl_ctx_sref(ctx, d, FL_STATE_MAP, &r);
  return rc ? rc : written(d, &r, fl_st_map_put(&r, ukey, ukey_len, value, len));
}

int fl_map_remove(fl_context_t *ctx, const fl_state_desc_t *d, const void *ukey, size_t ukey_len) {
  fl_sref_t r;
  if (!ctx || !d || (ukey_len && !ukey)) return FL_EINVAL;
  int rc = fl_ctx_sref(ctx, d, FL_STATE_MAP, &r);
  return rc ? rc : written(d, &r, fl_st_map_remove(&r, ukey, ukey_len));
}

int fl_map_foreach(fl_context_t *ctx, const fl_state_desc_t *d,
                   int (*cb)(const void *ukey, size_t ukey_len, const void *value, size_t len,
                             void *arg),
                   void *arg) {
  fl_sref_t r;
  if (!ctx || !d || !cb) return FL_EINVAL;
  int rc = resolve(ctx, d, FL_STATE_MAP, &r);
  return rc ? rc : fl_st_map_foreach(&r, cb, arg);
}

int fl_reducing_add(fl_context_t *ctx, const fl_state_desc_t *d, const void *value, size_t len) {
  fl_sref_t r;
  if (!ctx || !d || (len && !value)) return FL_EINVAL;
  int rc = fl_ctx_sref(ctx, d, FL_STATE_REDUCING, &r);
  return rc ? rc : written(d, &r, fl_st_reducing_add(&r, value, len));
}

int fl_reducing_get(fl_context_t *ctx, const fl_state_desc_t *d, const void **value, size_t *len) {
  fl_sref_t r;
  if (!ctx || !d || !value || !len) return FL_EINVAL;
  int rc = resolve(ctx, d, FL_STATE_REDUCING, &r);
  return rc ? rc : fl_st_reducing_get(&r, value, len);
}

int fl_aggregating_add(fl_context_t *ctx, const fl_state_desc_t *d, const fl_record_t *in) {
  fl_sref_t r;
  if (!ctx || !d || !in) return FL_EINVAL;
  int rc = fl_ctx_sref(ctx, d, FL_STATE_AGGREGATING, &r);
  return rc ? rc : written(d, &r, fl_st_aggregating_add(&r, in));
}

int fl_aggregating_get(fl_context_t *ctx, const fl_state_desc_t *d, const void **acc) {
  fl_sref_t r;
  if (!ctx || !d || !acc) return FL_EINVAL;
  int rc = resolve(ctx, d, FL_STATE_AGGREGATING, &r);
  return rc ? rc : fl_st_aggregating_get(&r, acc);
}
