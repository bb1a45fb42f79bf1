/*
 * flink.h in strict ISO C11 (-std=c11 -pedantic -Wall -Wextra -Werror; see
 * CMakeLists.txt), and the header's compile-time facts checked against the library.
 *
 * Built twice: with FL_HEADER_ONLY as an object of nothing but flink.h, which proves the
 * header needs no other include; and as a cmocka test.
 */
#include "flink.h" /* first, so nothing included before it can hide a missing include */

#ifndef FL_HEADER_ONLY

#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

/* The header promises C types a C11 user can rely on. */
_Static_assert(FL_OK == 0, "FL_OK is zero");
_Static_assert(FL_TS_NONE == INT64_MIN, "FL_TS_NONE is INT64_MIN");
_Static_assert(FL_TS_MAX == INT64_MAX, "FL_TS_MAX is INT64_MAX");

static void version_macros_match_version_str(void **state) {
  char expect[64];
  int n = snprintf(expect, sizeof expect, "%d.%d.%d", FL_VERSION_MAJOR, FL_VERSION_MINOR,
                   FL_VERSION_PATCH);
  assert_true(n > 0 && (size_t)n < sizeof expect);
  assert_non_null(fl_version_str());
  assert_string_equal(fl_version_str(), expect);
}

static void version_str_is_static_storage(void **state) {
  /* "Static storage": the same string on every call. */
  assert_ptr_equal(fl_version_str(), fl_version_str());
}

/* One row per FL_ERRNO_MAP entry, built from the header's own list. */
struct err_row {
  const char *name;
  int code;
  const char *msg;
};
#define ERR_ROW_(name, code, msg) {#name, code, msg},
static const struct err_row err_rows[] = {FL_ERRNO_MAP(ERR_ROW_)};
#undef ERR_ROW_
#define N_ERR_ROWS (sizeof err_rows / sizeof err_rows[0])

static void strerror_and_err_name_follow_the_errno_map(void **state) {
  for (size_t i = 0; i < N_ERR_ROWS; i++) {
    const char *msg = fl_strerror(err_rows[i].code);
    const char *name = fl_err_name(err_rows[i].code);
    assert_non_null(msg);
    assert_non_null(name);
    assert_string_equal(msg, err_rows[i].msg);
    assert_string_equal(name, err_rows[i].name);
  }
  /* and the map holds what users see */
  assert_string_equal(fl_err_name(FL_EINVAL), "EINVAL");
  assert_string_equal(fl_strerror(FL_OK), "success");
  assert_string_equal(fl_err_name(FL_ECANCELED), "ECANCELED");
}

static void error_codes_are_zero_then_consecutive_negatives(void **state) {
  /* FL_ERR_LAST_ is one below the last code; callers range-check with it. */
  assert_int_equal(err_rows[0].code, FL_OK);
  for (size_t i = 1; i < N_ERR_ROWS; i++) assert_int_equal(err_rows[i].code, -(int)i);
  assert_int_equal(FL_ERR_LAST_, -(int)N_ERR_ROWS);
}

static void strerror_of_unknown_codes_is_unknown_error(void **state) {
  assert_string_equal(fl_strerror(FL_ERR_LAST_), "unknown error");
  assert_string_equal(fl_strerror(1), "unknown error");
  assert_string_equal(fl_strerror(12345), "unknown error");
  assert_string_equal(fl_strerror(INT_MIN), "unknown error");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(version_macros_match_version_str),
      cmocka_unit_test(version_str_is_static_storage),
      cmocka_unit_test(strerror_and_err_name_follow_the_errno_map),
      cmocka_unit_test(error_codes_are_zero_then_consecutive_negatives),
      cmocka_unit_test(strerror_of_unknown_codes_is_unknown_error),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

#endif /* FL_HEADER_ONLY */
