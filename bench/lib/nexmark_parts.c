/* Pieces the Nexmark queries share (nexmark.h): kind filters, id key selectors, the
 * descriptors of a process function, reading a fixed-size value state. */
#include <stdlib.h>
#include <string.h>

#include "lib/nexmark.h"

static int is_kind(fl_context_t *ctx, const fl_record_t *in, void *opaque) {
  return nx_kind_of(in->value, in->value_len) == (int)(uintptr_t)opaque;
}

fl_stream_t *nx_events_of(fl_stream_t *events, nx_kind_t kind) {
  static const char *const names[] = {"persons", "auctions", "bids"};
  return fl_stream_filter(events, names[kind], is_kind, (void *)(uintptr_t)kind);
}

int nx_key_at(fl_context_t *ctx, const fl_record_t *in, const void **key, size_t *key_len,
              void *opaque) {
  *key = (const uint8_t *)in->value + (uintptr_t)opaque;
  *key_len = sizeof(int64_t);
  return 0;
}

fl_keyed_stream_t *nx_keyed_by(fl_stream_t *events, nx_kind_t kind, void *offset) {
  return fl_stream_key_by(nx_events_of(events, kind), nx_key_at, offset);
}

nx_descs_t *nx_descs_new(const fl_state_desc_t *a, const fl_state_desc_t *b) {
  nx_descs_t *d = malloc(sizeof *d);
  if (d) {
    d->a = a;
    d->b = b;
  }
  return d;
}

int nx_i64_fields_json(const fl_record_t *rec, char *out, size_t cap, const char *const *names,
                       size_t n) {
  int64_t v[8];
  if (n > 8 || rec->value_len != n * sizeof(int64_t)) return FL_EPARSE;
  memcpy(v, rec->value, rec->value_len);
  nx_json_t w;
  nx_json_begin(&w, out, cap);
  for (size_t i = 0; i < n; i++) nx_json_i64(&w, names[i], v[i]);
  return nx_json_end(&w);
}

int nx_value_read(fl_context_t *ctx, const fl_state_desc_t *d, void *out, size_t n,
                  const char *query) {
  const void *cur;
  size_t len;
  int found = fl_value_get(ctx, d, &cur, &len);
  if (found != 1) return found;
  if (len != n) return fl_ctx_fail(ctx, "%s: state of %zu bytes", query, len);
  memcpy(out, cur, n);
  return 1;
}
