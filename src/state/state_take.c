/*
 * Reading a reducing or aggregating state's result as the cell is removed, with one
 * backend lookup (kv ops version 5, take): what a window does when it fires and is
 * cleaned at the same time; and the preparation of a window's appends to its key
 * lists (version 7, append_prepared). The rest of the state layer is in state.c.
 */
#include "flink.h"
#include "state/state.h"
#include "util/hash.h"

int fl_st_take(const fl_sref_t *r, const void **val, size_t *len) {
  if (!r || !r->kv || !r->kv->ops || !r->desc || !val || !len) return FL_EINVAL;
  const fl_state_desc_t *d = r->desc;
  if (d->kind != FL_STATE_REDUCING && d->kind != FL_STATE_AGGREGATING) return FL_ESTATE;
  const fl_kv_ops_t *o = r->kv->ops;
  /* With TTL the stored bytes are not the result (a timestamp comes first, and an
   * expired cell reads as absent): that path stays get, then clear. */
  if (d->has_ttl || o->version < 5 || !o->take) return FL_ENOTSUP;
  uint64_t kh = r->key_hashed ? r->key_hash : fl_hash64(r->k.key, r->k.key_len, 0);
  const void *v = NULL;
  size_t vl = 0;
  int rc = o->take(r->kv->self, r->table, &r->k, kh, &v, &vl);
  if (rc != 1) return rc;
  if (d->kind == FL_STATE_AGGREGATING && vl != d->agg.acc_size) return FL_EPARSE;
  *val = v;
  *len = vl;
  return 1;
}

int fl_st_appends_prepare(const fl_sref_t *r, fl_st_adds_t *p) {
  if (!r || !r->kv || !r->kv->ops || !r->desc || !r->scratch || !p) return FL_EINVAL;
  if (r->desc->kind != FL_STATE_LIST) return FL_ESTATE;
  const fl_kv_ops_t *o = r->kv->ops;
  /* With TTL a list item carries its timestamp: such appends stay fl_st_list_add's. */
  if (r->desc->has_ttl || o->version < 7 || !o->ref_prepare || !o->append_prepared)
    return FL_ENOTSUP;
  *p = (fl_st_adds_t){.kv = {r->table, r->k.ns, r->k.ns_len, 0, 0, 0},
                      .append = o->append_prepared,
                      .self = r->kv->self,
                      .backend = r->kv,
                      .desc = r->desc,
                      .ctx = r->ctx,
                      .scratch = r->scratch};
  return o->ref_prepare(r->kv->self, &p->kv);
}
