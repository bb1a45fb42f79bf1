/* Order-preserving encodings: bytes whose memcmp order is the order of the values, for
 * state namespaces and keys that ordered backends (RocksDB) keep sorted, and that do not
 * depend on the host's byte order. */
#ifndef FL_UTIL_ORDER_H
#define FL_UTIL_ORDER_H

#include <stdint.h>

/* An int64 as 8 bytes, big-endian with the sign bit flipped. */
static inline void fl_order_put_i64(uint8_t *p, int64_t v) {
  uint64_t u = (uint64_t)v ^ UINT64_C(0x8000000000000000);
  for (int i = 7; i >= 0; i--) {
    p[i] = (uint8_t)u;
    u >>= 8;
  }
}

static inline int64_t fl_order_get_i64(const uint8_t *p) {
  uint64_t u = 0;
  for (int i = 0; i < 8; i++) u = (u << 8) | p[i];
  return (int64_t)(u ^ UINT64_C(0x8000000000000000));
}

#endif
