/* Stable 64-bit hash of key bytes. Key groups (and so savepoints and the placement of
 * keys on subtasks) depend on it: its output must never change. */
#ifndef FL_UTIL_HASH_H
#define FL_UTIL_HASH_H
#include <stddef.h>
#include <stdint.h>

uint64_t fl_hash64(const void *data, size_t len, uint64_t seed);

/* Folds two hashes into one (a 64x64->128 multiply, halves xored), for in-memory
 * tables whose hash is built from a key's hash computed earlier. Unlike fl_hash64 its
 * output is no part of any format. */
static inline uint64_t fl_hash_fold(uint64_t a, uint64_t b) {
  __uint128_t r = (__uint128_t)(a ^ 0xa0761d6478bd642full) * (b ^ 0xe7037ed1a0b428dbull);
  return (uint64_t)r ^ (uint64_t)(r >> 64);
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
