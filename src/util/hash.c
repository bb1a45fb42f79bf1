#include "util/hash.h"

#include <string.h>

uint64_t fl_hash64(const void *data, size_t len, uint64_t seed) {
  return fl_hash64_inline(data, len, seed);
}

void fl_key_group_range(int subtask, int parallelism, uint32_t max_parallelism, uint32_t *first,
                        uint32_t *count) {
  /* Inverse of fl_key_group_subtask: the smallest kg with kg*P/maxp == subtask. */
  uint64_t lo = ((uint64_t)subtask * max_parallelism + parallelism - 1) / parallelism;
  uint64_t hi = ((uint64_t)(subtask + 1) * max_parallelism + parallelism - 1) / parallelism;
  *first = (uint32_t)lo;
  *count = (uint32_t)(hi - lo);
}
