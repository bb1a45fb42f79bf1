/* Growable byte buffers (fl_buf_t of flink.h, struct in util/buf.h). Capacity
 * only grows, so a buffer reused per record allocates only while it warms up. */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "util/buf.h"

void fl_buf_init(fl_buf_t *b) {
  if (b) memset(b, 0, sizeof *b);
}

void fl_buf_free(fl_buf_t *b) {
  if (!b) return;
  free(b->data);
  memset(b, 0, sizeof *b);
}

int fl_buf_reserve(fl_buf_t *b, size_t cap) {
  if (!b) return FL_EINVAL;
  if (cap <= b->cap) return FL_OK;
  size_t nc = b->cap > SIZE_MAX / 2 ? cap : b->cap * 2;
  if (nc < cap) nc = cap;
  if (nc < 64) nc = 64;
  uint8_t *p = realloc(b->data, nc);
  if (!p) return FL_ENOMEM;
  b->data = p;
  b->cap = nc;
  return FL_OK;
}

/* Where data lies inside b's own storage (a reduce function may pass back a part of
 * the buffer it writes to), its offset survives a reallocation; the pointer does not. */
static bool inside(const fl_buf_t *b, const void *data, size_t *off) {
  uintptr_t p = (uintptr_t)data, base = (uintptr_t)b->data;
  if (!b->data || p < base || p >= base + b->cap) return false;
  *off = (size_t)(p - base);
  return true;
}

int fl_buf_set(fl_buf_t *b, const void *data, size_t len) {
  if (!b || (len && !data)) return FL_EINVAL;
  size_t off = 0;
  bool in = inside(b, data, &off);
  int rc = fl_buf_reserve(b, len);
  if (rc) return rc;
  if (len) memmove(b->data, in ? b->data + off : (const uint8_t *)data, len);
  b->len = len;
  return FL_OK;
}

int fl_buf_append(fl_buf_t *b, const void *data, size_t len) {
  if (!b || (len && !data)) return FL_EINVAL;
  if (len > SIZE_MAX - b->len) return FL_ENOMEM;
  size_t off = 0;
  bool in = inside(b, data, &off);
  int rc = fl_buf_reserve(b, b->len + len);
  if (rc) return rc;
  if (len) memmove(b->data + b->len, in ? b->data + off : (const uint8_t *)data, len);
  b->len += len;
  return FL_OK;
}

void *fl_buf_resize(fl_buf_t *b, size_t len) {
  if (!b) return NULL;
  if (fl_buf_reserve(b, len ? len : 1)) return NULL;
  b->len = len;
  return b->data;
}

const void *fl_buf_data(const fl_buf_t *b, size_t *len) {
  if (!b) {
    if (len) *len = 0;
    return NULL;
  }
  if (len) *len = b->len;
  return b->data;
}
