/*
 * fl_hash64 is part of the on-disk format (it picks every key's key group, and so where
 * its state and timers live in a savepoint). These vectors were computed once from the
 * implementation (and cross-checked with an independent re-implementation of the same
 * construction); any change to their values breaks restoring existing savepoints.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "util/hash.h"

static void hash_of_str_is(const char *s, uint64_t expected) {
  uint64_t got = fl_hash64(s, strlen(s), 0);
  if (got != expected) {
    print_error("fl_hash64(\"%s\") = 0x%016llx, expected 0x%016llx\n", s, (unsigned long long)got,
                (unsigned long long)expected);
  }
  assert_true(got == expected);
}

static void fill_pattern(unsigned char *p, size_t n) {
  for (size_t i = 0; i < n; i++) p[i] = (unsigned char)(i * 7 + 3);
}

static void hash64_matches_pinned_vectors_for_short_inputs(void **state) {
  (void)state;
  hash_of_str_is("", 0x38b3443971fe2bddull);
  hash_of_str_is("a", 0xc610d120fc078d18ull);
  hash_of_str_is("abc", 0x8ab9b66df006cdc3ull);
  hash_of_str_is("01234567", 0xa6d8b7151281ccfeull);          /* 8: one full word */
  hash_of_str_is("0123456789abcde", 0xf7b51e7a53339cddull);   /* 15: word + 7 tail */
  hash_of_str_is("0123456789abcdef", 0xe224fe69017818f1ull);  /* 16: one block */
  hash_of_str_is("0123456789abcdefg", 0x72b7f61c6b4e85a3ull); /* 17: block + 1 */
}

static void hash64_matches_pinned_vector_for_100_byte_pattern(void **state) {
  (void)state;
  unsigned char p[100];
  fill_pattern(p, sizeof p);
  assert_true(fl_hash64(p, sizeof p, 0) == 0xa991face769cb9a3ull);
}

static void hash64_seed_changes_the_value_and_is_pinned(void **state) {
  (void)state;
  unsigned char p[100];
  fill_pattern(p, sizeof p);
  assert_true(fl_hash64(p, sizeof p, 0x123456789abcdef0ull) == 0x0aa30fab56970951ull);
  assert_true(fl_hash64("abc", 3, 1) == 0x12d85c63b9be1710ull);
}

static void hash64_of_empty_input_accepts_null(void **state) {
  (void)state;
  assert_true(fl_hash64(NULL, 0, 0) == 0x38b3443971fe2bddull);
}

static void hash64_depends_on_length_and_every_byte(void **state) {
  (void)state;
  /* Trailing NUL bytes are part of the key: "a" and "a\0" must differ. */
  assert_true(fl_hash64("a", 1, 0) != fl_hash64("a\0", 2, 0));
  assert_true(fl_hash64("", 0, 0) != fl_hash64("\0", 1, 0));
  unsigned char p[100], q[100];
  fill_pattern(p, sizeof p);
  uint64_t base = fl_hash64(p, sizeof p, 0);
  for (size_t i = 0; i < sizeof p; i++) {
    memcpy(q, p, sizeof q);
    q[i] ^= 1;
    assert_true(fl_hash64(q, sizeof q, 0) != base);
  }
}

static void hash64_is_independent_of_alignment(void **state) {
  (void)state;
  unsigned char buf[128];
  unsigned char p[100];
  fill_pattern(p, sizeof p);
  for (size_t off = 0; off < 8; off++) {
    memcpy(buf + off, p, sizeof p);
    assert_true(fl_hash64(buf + off, sizeof p, 0) == 0xa991face769cb9a3ull);
  }
}

static void key_group_is_hash_mod_max_parallelism(void **state) {
  (void)state;
  assert_int_equal(fl_key_group(0xa991face769cb9a3ull, 128), 0xa3 % 128);
  assert_int_equal(fl_key_group(1000, 7), 1000 % 7);
  assert_int_equal(fl_key_group(UINT64_MAX, 4096), 4095);
  assert_int_equal(fl_key_group(12345, 1), 0);
}

static void key_group_subtask_matches_flink_formula(void **state) {
  (void)state;
  /* Flink: keyGroupId * parallelism / maxParallelism. */
  assert_int_equal(fl_key_group_subtask(0, 128, 3), 0);
  assert_int_equal(fl_key_group_subtask(42, 128, 3), 0);
  assert_int_equal(fl_key_group_subtask(43, 128, 3), 1);
  assert_int_equal(fl_key_group_subtask(85, 128, 3), 1);
  assert_int_equal(fl_key_group_subtask(86, 128, 3), 2);
  assert_int_equal(fl_key_group_subtask(127, 128, 3), 2);
  assert_int_equal(fl_key_group_subtask(32767, 32768, 256), 255);
}

static void key_group_range_matches_known_split(void **state) {
  (void)state;
  uint32_t first, count;
  fl_key_group_range(0, 3, 128, &first, &count);
  assert_int_equal(first, 0);
  assert_int_equal(count, 43);
  fl_key_group_range(1, 3, 128, &first, &count);
  assert_int_equal(first, 43);
  assert_int_equal(count, 43);
  fl_key_group_range(2, 3, 128, &first, &count);
  assert_int_equal(first, 86);
  assert_int_equal(count, 42);
}

static void key_group_range_is_inverse_of_subtask(void **state) {
  (void)state;
  static const uint32_t maxps[] = {1, 7, 128, 4096};
  for (size_t m = 0; m < sizeof maxps / sizeof maxps[0]; m++) {
    uint32_t maxp = maxps[m];
    for (int par = 1; par <= 64; par++) {
      uint32_t next = 0; /* ranges must be contiguous: each starts where the last ended */
      for (int s = 0; s < par; s++) {
        uint32_t first = UINT32_MAX, count = UINT32_MAX;
        fl_key_group_range(s, par, maxp, &first, &count);
        assert_int_equal(first, next);
        assert_true(count <= maxp && first + count <= maxp);
        for (uint32_t kg = first; kg < first + count; kg++)
          assert_int_equal(fl_key_group_subtask(kg, maxp, par), s);
        /* Neighbours outside the range belong to other subtasks. */
        if (first > 0) assert_true(fl_key_group_subtask(first - 1, maxp, par) < s);
        if (first + count < maxp) assert_true(fl_key_group_subtask(first + count, maxp, par) > s);
        next = first + count;
      }
      assert_int_equal(next, maxp); /* covers [0, maxp) */
      /* And from the other side: every kg lies in the range of its subtask. */
      for (uint32_t kg = 0; kg < maxp; kg++) {
        int s = fl_key_group_subtask(kg, maxp, par);
        assert_true(s >= 0 && s < par);
        uint32_t first, count;
        fl_key_group_range(s, par, maxp, &first, &count);
        assert_true(kg >= first && kg < first + count);
      }
    }
  }
}

static void key_group_ranges_are_balanced_when_parallelism_fits(void **state) {
  (void)state;
  /* With par <= maxp every subtask gets floor or ceil of maxp/par key groups. */
  static const uint32_t maxps[] = {7, 128, 4096};
  for (size_t m = 0; m < sizeof maxps / sizeof maxps[0]; m++) {
    for (int par = 1; par <= 64 && (uint32_t)par <= maxps[m]; par++) {
      uint32_t lo = maxps[m] / (uint32_t)par, hi = (maxps[m] + (uint32_t)par - 1) / (uint32_t)par;
      for (int s = 0; s < par; s++) {
        uint32_t first, count;
        fl_key_group_range(s, par, maxps[m], &first, &count);
        assert_true(count == lo || count == hi);
      }
    }
  }
}

/* The inlined copy the record path uses computes the same function. */
static void hash64_inline_equals_hash64(void **state) {
  (void)state;
  unsigned char p[80];
  fill_pattern(p, sizeof p);
  for (size_t len = 0; len <= sizeof p; len++) {
    assert_true(fl_hash64_inline(p, len, 0) == fl_hash64(p, len, 0));
    assert_true(fl_hash64_inline(p + 1, len - (len > 0), 77) ==
                fl_hash64(p + 1, len - (len > 0), 77));
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(hash64_matches_pinned_vectors_for_short_inputs),
      cmocka_unit_test(hash64_matches_pinned_vector_for_100_byte_pattern),
      cmocka_unit_test(hash64_seed_changes_the_value_and_is_pinned),
      cmocka_unit_test(hash64_of_empty_input_accepts_null),
      cmocka_unit_test(hash64_inline_equals_hash64),
      cmocka_unit_test(hash64_depends_on_length_and_every_byte),
      cmocka_unit_test(hash64_is_independent_of_alignment),
      cmocka_unit_test(key_group_is_hash_mod_max_parallelism),
      cmocka_unit_test(key_group_subtask_matches_flink_formula),
      cmocka_unit_test(key_group_range_matches_known_split),
      cmocka_unit_test(key_group_range_is_inverse_of_subtask),
      cmocka_unit_test(key_group_ranges_are_balanced_when_parallelism_fits),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
