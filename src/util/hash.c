#include "util/hash.h"

#include <string.h>

/* A multiply-mix hash over 8-byte words (the construction of wyhash's mum mixing, written
 * from its description). Fast for the short keys streams use (ids, names), and stable:
 * the output is part of the on-disk format through key groups. */
static inline uint64_t mix(uint64_t a, uint64_t b) {
  __uint128_t r = (__uint128_t)a * b;
  return (uint64_t)r ^ (uint64_t)(r >> 64);
}

static inline uint64_t rd64(const uint8_t *p) {
  uint64_t v;
  memcpy(&v, p, 8);
  return v; /* little-endian hosts only; checked by a test vector */
}

static inline uint64_t rd_tail(const uint8_t *p, size_t n) {
  uint64_t v = 0;
  for (size_t i = 0; i < n; i++) v |= (uint64_t)p[i] << (8 * i);
  return v;
}

uint64_t fl_hash64(const void *data, size_t len, uint64_t seed) {
  static const uint64_t k0 = 0xa0761d6478bd642full, k1 = 0xe7037ed1a0b428dbull,
                        k2 = 0x8ebc6af09c88c6e3ull;
  const uint8_t *p = data;
  uint64_t h = seed ^ mix(seed ^ k0, k1) ^ (uint64_t)len;
  size_t n = len;
  while (n >= 16) {
    h = mix(rd64(p) ^ k1, rd64(p + 8) ^ h);
    p += 16;
    n -= 16;
  }
  uint64_t a = 0, b = 0;
  if (n >= 8) {
    a = rd64(p);
    b = rd_tail(p + 8, n - 8);
  } else {
    a = rd_tail(p, n);
  }
  h = mix(a ^ k1 ^ h, b ^ k2);
  return mix(h ^ k0, (uint64_t)len ^ k1);
}

void fl_key_group_range(int subtask, int parallelism, uint32_t max_parallelism, uint32_t *first,
                        uint32_t *count) {
  /* Inverse of fl_key_group_subtask: the smallest kg with kg*P/maxp == subtask. */
  uint64_t lo = ((uint64_t)subtask * max_parallelism + parallelism - 1) / parallelism;
  uint64_t hi = ((uint64_t)(subtask + 1) * max_parallelism + parallelism - 1) / parallelism;
  *first = (uint32_t)lo;
  *count = (uint32_t)(hi - lo);
}
