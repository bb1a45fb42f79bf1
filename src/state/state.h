/*
 * The state layer: typed keyed state (value, list, map, reducing, aggregating) with
 * Flink's State TTL, on top of a kv backend (kv.h). The public fl_value_get & co. in
 * flink.h resolve a context into an fl_sref_t and call these; the window operator calls
 * them directly with a window namespace.
 *
 * With TTL, each stored value (each list item, each map value) is prefixed by its
 * 8-byte last-update timestamp in processing time; expiry is ts + ttl <= now.
 */
#ifndef FL_STATE_STATE_H
#define FL_STATE_STATE_H

#include <stdbool.h>
#include <string.h>

#include "flink.h"
#include "state/kv.h"

/* A descriptor, as created by fl_state_* in flink.h (owned by env). */
struct fl_state_desc {
  uint32_t id; /* dense index in the env */
  char *name;
  fl_state_kind_t kind;
  fl_reduce_fn reduce;   /* FL_STATE_REDUCING */
  fl_aggregate_fn_t agg; /* FL_STATE_AGGREGATING (copied table) */
  void *opaque;          /* for reduce / agg */
  int has_ttl;
  fl_ttl_config_t ttl;
};

/* Addresses one state cell: the table of (operator, descriptor) in a backend, and the
 * key group, key and namespace of the cell. */
typedef struct fl_sref {
  fl_kv_t *kv;
  uint32_t table;
  const struct fl_state_desc *desc;
  fl_kkey_t k;
  bool key_hashed;   /* key_hash holds fl_hash64(k.key, k.key_len, 0) (else computed when needed) */
  uint64_t key_hash; /* the key's hash, carried from where the record's key was extracted */
  int64_t now;       /* processing time, for TTL */
  fl_context_t *ctx; /* passed to reduce / aggregate callbacks */
  struct fl_ttl_cleanup *cleanup;   /* incremental TTL cleanup cursor of the table, or NULL */
  struct fl_state_scratch *scratch; /* per-worker scratch buffers for returned views */
} fl_sref_t;

/* Where an incremental TTL cleanup walk of one table continues. */
typedef struct fl_ttl_cleanup {
  uint64_t cursor;
} fl_ttl_cleanup_t;

/* Buffers that back pointers returned to users (list views, unwrapped TTL values,
 * reduce results). One per worker; reused by every call. */
typedef struct fl_state_scratch fl_state_scratch_t;
fl_state_scratch_t *fl_state_scratch_new(void);
void fl_state_scratch_destroy(fl_state_scratch_t *s);

/* Each returns 0 (or 1/0 for gets: found/absent) or a negative fl_err_t. A wrong
 * descriptor kind is FL_ESTATE. */
int fl_st_value_get(const fl_sref_t *r, const void **val, size_t *len);
int fl_st_value_set(const fl_sref_t *r, const void *val, size_t len);
int fl_st_clear(const fl_sref_t *r);
int fl_st_list_add(const fl_sref_t *r, const void *item, size_t len);
int fl_st_list_get(const fl_sref_t *r, const fl_bytes_t **items, size_t *n);
int fl_st_list_update(const fl_sref_t *r, const fl_bytes_t *items, size_t n);
int fl_st_map_get(const fl_sref_t *r, const void *uk, size_t ukl, const void **val, size_t *len);
int fl_st_map_put(const fl_sref_t *r, const void *uk, size_t ukl, const void *val, size_t len);
int fl_st_map_remove(const fl_sref_t *r, const void *uk, size_t ukl);
int fl_st_map_foreach(const fl_sref_t *r,
                      int (*cb)(const void *uk, size_t ukl, const void *v, size_t vl, void *arg),
                      void *arg);
int fl_st_reducing_add(const fl_sref_t *r, const void *val, size_t len);
int fl_st_reducing_get(const fl_sref_t *r, const void **val, size_t *len);
int fl_st_aggregating_add(const fl_sref_t *r, const fl_record_t *in);
int fl_st_aggregating_get(const fl_sref_t *r, const void **acc);
/* The result of a reducing state (its value) or an aggregating state (its
 * accumulator) read as the cell is removed, in one backend lookup (state_take.c):
 * 1 and the bytes, borrowed until the next call that changes the backend; 0 if
 * absent. FL_ENOTSUP, changing nothing, when the backend has no take or the state
 * has TTL: the caller then gets and clears. */
int fl_st_take(const fl_sref_t *r, const void **val, size_t *len);
/* The same adds, also telling whether the cell was absent before (*created: this value
 * started it). The window operator registers a window's timers only then. */
int fl_st_reducing_add_created(const fl_sref_t *r, const void *val, size_t len, bool *created);
int fl_st_aggregating_add_created(const fl_sref_t *r, const fl_record_t *in, bool *created);

/* Those adds for many cells of one namespace (a window's contents, for a run of
 * records), with what they check of the descriptor, the backend, the table and the
 * namespace done once. fl_st_adds_prepare fills p from r (a reducing or aggregating
 * descriptor; r's key is not used, its namespace stays borrowed by p), or returns
 * FL_ENOTSUP when the adds cannot be made this way (TTL, a backend without
 * value_ref_prepared): the caller then uses the calls above. p stays valid while r's
 * backend, context and namespace bytes do. */
typedef struct fl_st_adds {
  fl_kv_ref_prep_t kv;
  int (*find)(void *self, const fl_kv_ref_prep_t *p, uint16_t kg, const void *key, size_t key_len,
              uint64_t key_hash, void **val, size_t *len); /* the backend's value_ref_prepared */
  void (*prefetch)(void *self, const fl_kv_ref_prep_t *p, uint16_t kg, uint64_t key_hash,
                   int stage); /* the backend's prefetch_prepared, or NULL */
  void (*prefetch2)(void *self, const fl_kv_ref_prep_t *p, uint16_t kg0, uint64_t key_hash0,
                    uint16_t kg1, uint64_t key_hash1); /* prefetch_prepared2, or NULL */
  int (*append)(void *self, const fl_kv_ref_prep_t *p, uint16_t kg, const void *key, size_t key_len,
                const void *val, size_t len); /* append_prepared (lists) */
  int (*take)(void *self, const fl_kv_ref_prep_t *p, uint16_t kg, const void *key, size_t key_len,
              uint64_t key_hash, const void **val, size_t *len); /* take_prepared, or NULL */
  int (*find_ahead)(void *self, const fl_kv_ref_prep_t *p, uint16_t kg, const void *key,
                    size_t key_len, uint64_t key_hash, void **val, size_t *len, uint16_t akg,
                    uint64_t ahash); /* value_ref_prepared_ahead, or NULL */
  void *self;                        /* the backend instance */
  fl_kv_t *backend;
  const struct fl_state_desc *desc;
  const fl_aggregate_fn_t *agg; /* aggregating: the descriptor's functions */
  void *opaque;                 /* the descriptor's */
  fl_context_t *ctx;
  struct fl_state_scratch *scratch;
} fl_st_adds_t;
int fl_st_adds_prepare(const fl_sref_t *r, fl_st_adds_t *p);
/* The same for fl_st_list_add to many cells of one namespace (a window's lists of each
 * key group's keys): fl_st_appends_prepare fills p from r (a list descriptor), or
 * returns FL_ENOTSUP (TTL, a backend without append_prepared); fl_st_adds_append is
 * fl_st_list_add(item, len) to the cell (kg, key) of p's namespace (key_len below
 * 2^32). */
int fl_st_appends_prepare(const fl_sref_t *r, fl_st_adds_t *p);
int fl_st_adds_append(const fl_st_adds_t *p, uint16_t kg, const void *key, size_t key_len,
                      const void *item, size_t len);
/* What fl_st_adds_aggregate leaves to it: an accumulator larger than 16 bytes, or a
 * failed add (undone from *undo, or by removing the new cell). */
int fl_st_adds_aggregate_slow(const fl_st_adds_t *p, uint16_t kg, const void *key, size_t key_len,
                              const fl_record_t *in, void *acc, bool fresh, const void *undo,
                              int rc);

/* fl_st_aggregating_add_created / fl_st_reducing_add_created of the cell (kg, key) of
 * p's namespace; key_hash is fl_hash64(key, key_len, 0), key_len below 2^32. The
 * aggregating add is inline: it is a window's per-record path. */
/* The backend's prefetch (kv.h) for the cell (kg, key) of p's namespace, if it has one. */
static inline void fl_st_adds_prefetch(const fl_st_adds_t *p, uint16_t kg, uint64_t key_hash,
                                       int stage) {
  if (p->prefetch) p->prefetch(p->self, &p->kv, kg, key_hash, stage);
}

/* fl_st_adds_prefetch(p, kg0, key_hash0, 0) and fl_st_adds_prefetch(p, kg1, key_hash1,
 * 1), in one backend call if it can. */
static inline void fl_st_adds_prefetch2(const fl_st_adds_t *p, uint16_t kg0, uint64_t key_hash0,
                                        uint16_t kg1, uint64_t key_hash1) {
  if (p->prefetch2) {
    p->prefetch2(p->self, &p->kv, kg0, key_hash0, kg1, key_hash1);
  } else if (p->prefetch) {
    p->prefetch(p->self, &p->kv, kg0, key_hash0, 0);
    p->prefetch(p->self, &p->kv, kg1, key_hash1, 1);
  }
}

/* fl_st_adds_aggregate for a caller that knows the accumulator's size (acc_size, which
 * is p->agg->acc_size): a constant there makes its checks and the undo copy cheaper.
 * With ahead, the lookup also starts loading the cell (akg, ahash) of a record a few
 * ahead, if the backend can (find_ahead). */
static inline __attribute__((always_inline)) int fl_st_adds_aggregate_ahead(
    const fl_st_adds_t *p, uint16_t kg, const void *key, size_t key_len, uint64_t key_hash,
    const fl_record_t *in, bool *created, size_t acc_size, bool ahead, uint16_t akg,
    uint64_t ahash) {
  const fl_aggregate_fn_t *a = p->agg;
  void *acc;
  size_t cl;
  int rc = ahead && p->find_ahead
               ? p->find_ahead(p->self, &p->kv, kg, key, key_len, key_hash, &acc, &cl, akg, ahash)
               : p->find(p->self, &p->kv, kg, key, key_len, key_hash, &acc, &cl);
  if (__builtin_expect(rc < 0, 0)) return rc;
  bool fresh = rc == 0;
  *created = fresh;
  if (fresh)
    a->init(acc, p->opaque); /* on zeroed bytes, as fl_st_aggregating_add */
  else if (__builtin_expect(cl != acc_size, 0))
    return FL_EPARSE;
  if (__builtin_expect(acc_size > 16, 0))
    return fl_st_adds_aggregate_slow(p, kg, key, key_len, in, acc, fresh, NULL, 0);
  uint64_t undo[2]; /* the accumulator before the add, to undo a failed one */
  if (!fresh) {
    if (cl == 8)
      memcpy(undo, acc, 8);
    else if (cl == 16)
      memcpy(undo, acc, 16);
    else
      memcpy(undo, acc, cl);
  }
  rc = a->add(p->ctx, acc, in, p->opaque);
  if (__builtin_expect(rc != 0, 0))
    return fl_st_adds_aggregate_slow(p, kg, key, key_len, in, acc, fresh, undo, rc);
  return FL_OK;
}

static inline __attribute__((always_inline)) int fl_st_adds_aggregate_sized(
    const fl_st_adds_t *p, uint16_t kg, const void *key, size_t key_len, uint64_t key_hash,
    const fl_record_t *in, bool *created, size_t acc_size) {
  return fl_st_adds_aggregate_ahead(p, kg, key, key_len, key_hash, in, created, acc_size, false, 0,
                                    0);
}

static inline int fl_st_adds_aggregate(const fl_st_adds_t *p, uint16_t kg, const void *key,
                                       size_t key_len, uint64_t key_hash, const fl_record_t *in,
                                       bool *created) {
  return fl_st_adds_aggregate_sized(p, kg, key, key_len, key_hash, in, created, p->agg->acc_size);
}
int fl_st_adds_reduce(const fl_st_adds_t *p, uint16_t kg, const void *key, size_t key_len,
                      uint64_t key_hash, const void *val, size_t len, bool *created);

/* fl_st_take of the cell (kg, key) of p's namespace (key_hash and key_len as for
 * fl_st_adds_aggregate): 1 and the result, 0 if absent, FL_ENOTSUP (nothing changes)
 * when the backend has no prepared take. */
static inline int fl_st_adds_take(const fl_st_adds_t *p, uint16_t kg, const void *key,
                                  size_t key_len, uint64_t key_hash, const void **val,
                                  size_t *len) {
  if (!p->take) return FL_ENOTSUP;
  int rc = p->take(p->self, &p->kv, kg, key, key_len, key_hash, val, len);
  if (rc == 1 && p->desc->kind == FL_STATE_AGGREGATING && *len != p->agg->acc_size)
    return FL_EPARSE;
  return rc;
}

/* Merges the cell at namespace src_ns into the cell r addresses (then clears src), by
 * the descriptor's kind: list concatenates (src after dst), reducing reduces,
 * aggregating calls merge. Used when session windows merge. FL_ESTATE for value and
 * map descriptors. */
int fl_st_merge_namespace(const fl_sref_t *r, const void *src_ns, size_t src_ns_len);

/* Incremental TTL cleanup: checks up to n cells of r's table from the table's cursor
 * and removes the expired ones (or expired items/entries inside lists and maps). */
int fl_st_ttl_cleanup_step(const fl_sref_t *r, size_t n);

#endif
