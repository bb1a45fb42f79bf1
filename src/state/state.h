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
/* The same adds, also telling whether the cell was absent before (*created: this value
 * started it). The window operator registers a window's timers only then. */
int fl_st_reducing_add_created(const fl_sref_t *r, const void *val, size_t len, bool *created);
int fl_st_aggregating_add_created(const fl_sref_t *r, const fl_record_t *in, bool *created);

/* Merges the cell at namespace src_ns into the cell r addresses (then clears src), by
 * the descriptor's kind: list concatenates (src after dst), reducing reduces,
 * aggregating calls merge. Used when session windows merge. FL_ESTATE for value and
 * map descriptors. */
int fl_st_merge_namespace(const fl_sref_t *r, const void *src_ns, size_t src_ns_len);

/* Incremental TTL cleanup: checks up to n cells of r's table from the table's cursor
 * and removes the expired ones (or expired items/entries inside lists and maps). */
int fl_st_ttl_cleanup_step(const fl_sref_t *r, size_t n);

#endif
