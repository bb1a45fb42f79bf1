/* Stable 64-bit hash of key bytes. Key groups (and so savepoints and the placement of
 * keys on subtasks) depend on it: its output must never change. */
#ifndef FL_UTIL_HASH_H
#define FL_UTIL_HASH_H
#include <stddef.h>
#include <stdint.h>
#include <string.h>

uint64_t fl_hash64(const void *data, size_t len, uint64_t seed);

/* A multiply-mix hash over 8-byte words (the construction of wyhash's mum mixing, written
 * from its description). Fast for the short keys streams use (ids, names), and stable:
 * the output is part of the on-disk format through key groups. */
static inline uint64_t fl_hash_mum_(uint64_t a, uint64_t b) {
  __uint128_t r = (__uint128_t)a * b;
  return (uint64_t)r ^ (uint64_t)(r >> 64);
}

static inline uint64_t fl_hash_rd64_(const uint8_t *p) {
  uint64_t v;
  memcpy(&v, p, 8);
  return v; /* little-endian hosts only; checked by a test vector */
}

static inline uint64_t fl_hash_rd_tail_(const uint8_t *p, size_t n) {
  uint64_t v = 0;
  for (size_t i = 0; i < n; i++) v |= (uint64_t)p[i] << (8 * i);
  return v;
}

/* fl_hash64 itself, for the per-record paths that hash a key (inlined there, it folds
 * the seed's constants and the short-key branches). */
static inline uint64_t fl_hash64_inline(const void *data, size_t len, uint64_t seed) {
  const uint64_t k0 = 0xa0761d6478bd642full, k1 = 0xe7037ed1a0b428dbull, k2 = 0x8ebc6af09c88c6e3ull;
  const uint8_t *p = data;
  uint64_t h = seed ^ fl_hash_mum_(seed ^ k0, k1) ^ (uint64_t)len;
  size_t n = len;
  while (n >= 16) {
    h = fl_hash_mum_(fl_hash_rd64_(p) ^ k1, fl_hash_rd64_(p + 8) ^ h);
    p += 16;
    n -= 16;
  }
  uint64_t a = 0, b = 0;
  if (n >= 8) {
    a = fl_hash_rd64_(p);
    b = fl_hash_rd_tail_(p + 8, n - 8);
  } else {
    a = fl_hash_rd_tail_(p, n);
  }
  h = fl_hash_mum_(a ^ k1 ^ h, b ^ k2);
  return fl_hash_mum_(h ^ k0, (uint64_t)len ^ k1);
}

/* The key group of a key hash: hash mod max_parallelism. */
static inline uint32_t fl_key_group(uint64_t hash, uint32_t max_parallelism) {
  return (uint32_t)(hash % max_parallelism);
}

/* Subtask that runs key group kg (Flink's computeOperatorIndexForKeyGroup). */
static inline int fl_key_group_subtask(uint32_t kg, uint32_t max_parallelism, int parallelism) {
  return (int)(((uint64_t)kg * (uint64_t)parallelism) / max_parallelism);
}

/* First key group of a subtask's range [first, first + count). */
void fl_key_group_range(int subtask, int parallelism, uint32_t max_parallelism, uint32_t *first,
                        uint32_t *count);
#endif
