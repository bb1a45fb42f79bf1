/* Growable byte buffers: the struct behind flink.h's opaque fl_buf_t, and the calls the
 * library uses besides the public fl_buf_set/append/resize/data (src/util/buf.c).
 * Capacity only grows, so a buffer reused per record allocates only while it warms
 * up. */
#ifndef FL_UTIL_BUF_H
#define FL_UTIL_BUF_H

#include <stddef.h>
#include <stdint.h>

#include "flink.h"

struct fl_buf {
  uint8_t *data;
  size_t len;
  size_t cap;
};

/* An empty buffer (no allocation). */
void fl_buf_init(fl_buf_t *b);
/* Frees the storage; the buffer is empty again and may be reused. NULL-safe. */
void fl_buf_free(fl_buf_t *b);
/* Makes room for cap bytes in all (len unchanged). 0 or FL_ENOMEM. */
int fl_buf_reserve(fl_buf_t *b, size_t cap);

#endif
