/* Saturating int64 arithmetic for event time: a window that would end after INT64_MAX
 * ends there, a cleanup time past it is INT64_MAX, and nothing wraps around. */
#ifndef FL_UTIL_SAT_H
#define FL_UTIL_SAT_H

#include <stdint.h>

static inline int64_t fl_sat_add(int64_t a, int64_t b) {
  int64_t r;
  if (__builtin_add_overflow(a, b, &r)) return b > 0 ? INT64_MAX : INT64_MIN;
  return r;
}

static inline int64_t fl_sat_sub(int64_t a, int64_t b) {
  int64_t r;
  if (__builtin_sub_overflow(a, b, &r)) return b > 0 ? INT64_MIN : INT64_MAX;
  return r;
}

#endif
