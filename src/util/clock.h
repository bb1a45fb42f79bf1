/* The clocks of the library, in one place: monotonic time for intervals and deadlines,
 * wall-clock time for what is shown to people or stored (manifests, processing time). */
#ifndef FL_UTIL_CLOCK_H
#define FL_UTIL_CLOCK_H

#include <stdint.h>
#include <time.h>

static inline int64_t fl_mono_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static inline int64_t fl_mono_ms(void) { return fl_mono_ns() / 1000000; }

/* The CLOCK_MONOTONIC time ms milliseconds from now, as the absolute timeout of a
 * pthread_cond_timedwait on a condition variable set to that clock. */
static inline struct timespec fl_mono_deadline(int64_t ms) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  int64_t ns = ts.tv_nsec + (ms % 1000) * 1000000;
  ts.tv_sec += (time_t)(ms / 1000 + ns / 1000000000);
  ts.tv_nsec = (long)(ns % 1000000000);
  return ts;
}

/* Milliseconds since the epoch (CLOCK_REALTIME). */
static inline int64_t fl_wall_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

#endif
