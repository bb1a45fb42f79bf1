/* Clocks of the benchmarks: wall time and the process's CPU time, in seconds. */
#ifndef FL_BENCH_CLOCK_H
#define FL_BENCH_CLOCK_H
#include <sys/resource.h>
#include <time.h>

/* Monotonic wall-clock seconds. */
static inline double bench_now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* CPU seconds (user + system) of every thread of the process. */
static inline double bench_cpu_s(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec * 1e-6 +
         (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec * 1e-6;
}
#endif
