/*
 * flink.h as C++17 (-std=c++17 -pedantic -Wall -Wextra -Werror; see CMakeLists.txt),
 * linked against the shared libflink: the declarations must have C linkage and be
 * exported, or this does not link.
 */
#include "flink.h"  // first, so nothing included before it can hide a missing include

#include <csetjmp>
#include <cstdarg>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <type_traits>

// cmocka 1.1's header has no extern "C" block of its own.
extern "C" {
#include <cmocka.h>
}

static_assert(std::is_standard_layout<fl_record_t>::value, "fl_record_t is a C struct");
static_assert(std::is_trivially_copyable<fl_window_t>::value, "fl_window_t is a C struct");
static_assert(std::is_same<decltype(&fl_strerror), const char *(*)(int)>::value,
              "fl_strerror keeps its C signature");

static void strerror_of_einval_is_the_header_text(void **) {
  const char *msg = fl_strerror(FL_EINVAL);
  assert_non_null(msg);
  assert_true(std::strlen(msg) > 0);
#define CXX_CHECK_(name, code, text) \
  if ((code) == FL_EINVAL) assert_string_equal(msg, text);
  FL_ERRNO_MAP(CXX_CHECK_)
#undef CXX_CHECK_
}

static void err_name_of_einval_is_einval(void **) {
  assert_string_equal(fl_err_name(FL_EINVAL), "EINVAL");
}

static void version_str_is_the_header_version(void **) {
  char expect[64];
  std::snprintf(expect, sizeof expect, "%d.%d.%d", FL_VERSION_MAJOR, FL_VERSION_MINOR,
                FL_VERSION_PATCH);
  assert_string_equal(fl_version_str(), expect);
}

int main() {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(strerror_of_einval_is_the_header_text),
      cmocka_unit_test(err_name_of_einval_is_einval),
      cmocka_unit_test(version_str_is_the_header_version),
  };
  return cmocka_run_group_tests(tests, nullptr, nullptr);
}
