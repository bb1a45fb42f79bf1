/* fl_source_collection: a bounded single-reader source of records copied at build
 * time, with its position in checkpoints. Written on the public source interface. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "flink.h"
#include "runtime/connector.h"

typedef struct {
  uint8_t *data;
  fl_record_t *recs;
  size_t n;
} collection_t;

typedef struct {
  collection_t *c;
  size_t next;
} collection_inst_t;

static int coll_open(fl_context_t *ctx, void *opaque, void **instance) {
  collection_inst_t *ci = calloc(1, sizeof *ci);
  if (!ci) return FL_ENOMEM;
  ci->c = opaque;
  *instance = ci;
  return FL_OK;
}

static int coll_run(fl_context_t *ctx, void *instance) {
  collection_inst_t *ci = instance;
  size_t budget = fl_ctx_source_budget(ctx);
  while (budget-- && ci->next < ci->c->n) {
    int rc = fl_emit_record(ctx, &ci->c->recs[ci->next++]);
    if (rc) return rc;
  }
  return ci->next < ci->c->n ? FL_SOURCE_MORE : FL_SOURCE_END;
}

static void coll_close(void *instance) { free(instance); }

/* Position: the index of the next record, 8 bytes little-endian-independent (native). */
static int coll_snapshot(fl_context_t *ctx, void *instance, fl_buf_t *out) {
  collection_inst_t *ci = instance;
  uint64_t next = ci->next;
  return fl_buf_append(out, &next, sizeof next);
}

static int coll_restore(fl_context_t *ctx, void *instance, const fl_bytes_t *states, size_t n) {
  collection_inst_t *ci = instance;
  uint64_t next;
  if (n != 1 || states[0].len != sizeof next)
    return fl_ctx_fail(ctx, "collection source: restored position is %zu bytes, not %zu",
                       n ? states[0].len : 0, sizeof next);
  memcpy(&next, states[0].data, sizeof next);
  if (next > ci->c->n)
    return fl_ctx_fail(ctx, "collection source: restored position %llu is past the %zu records",
                       (unsigned long long)next, ci->c->n);
  ci->next = (size_t)next;
  return FL_OK;
}

static void coll_destroy(void *opaque) {
  collection_t *c = opaque;
  if (!c) return;
  free(c->data);
  free(c->recs);
  free(c);
}

fl_stream_t *fl_source_collection(fl_env_t *env, const char *name, const fl_record_t *records,
                                  size_t n) {
  if (!env) return NULL;
  if (n && !records) {
    fl_env_builder_fail(env, FL_EINVAL, "source '%s': records is NULL", name ? name : "collection");
    n = 0;
  }
  collection_t *c = calloc(1, sizeof *c);
  size_t bytes = 0;
  for (size_t i = 0; i < n; i++) bytes += records[i].key_len + records[i].value_len;
  if (c) {
    c->recs = calloc(n ? n : 1, sizeof *c->recs);
    c->data = malloc(bytes ? bytes : 1);
  }
  if (!c || !c->recs || !c->data) {
    coll_destroy(c);
    fl_env_builder_fail(env, FL_ENOMEM, "out of memory copying a collection of %zu records", n);
    return fl_source(env, name, NULL, NULL, 0);
  }
  size_t off = 0;
  for (size_t i = 0; i < n; i++) {
    fl_record_t r = records[i];
    if (r.key_len) memcpy(c->data + off, r.key, r.key_len);
    r.key = c->data + off;
    off += r.key_len;
    if (r.value_len) memcpy(c->data + off, r.value, r.value_len);
    r.value = c->data + off;
    off += r.value_len;
    c->recs[i] = r;
  }
  c->n = n;
  static const fl_source_fn_t fn = {.version = FL_SOURCE_FN_VERSION,
                                    .open = coll_open,
                                    .run = coll_run,
                                    .close = coll_close,
                                    .destroy = coll_destroy,
                                    .snapshot = coll_snapshot,
                                    .restore = coll_restore};
  return fl_source(env, name ? name : "collection", &fn, c, 0);
}
