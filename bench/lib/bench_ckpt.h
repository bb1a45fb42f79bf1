/* flink-bench checkpoint: checkpoint duration and size, full vs incremental. */
#ifndef FL_BENCH_CKPT_H
#define FL_BENCH_CKPT_H
#include <errno.h>
#include <stdio.h>
#include <sys/stat.h>

int fl_bench_checkpoint_main(int argc, char **argv);

/* mkdir -p for one or two levels of a benchmark's scratch directory. */
static inline int mkdir_p_simple(const char *p) {
  char b[1024];
  snprintf(b, sizeof b, "%s", p);
  for (char *c = b + 1; *c; c++)
    if (*c == '/') {
      *c = 0;
      if (mkdir(b, 0777) && errno != EEXIST) return -1;
      *c = '/';
    }
  return mkdir(b, 0777) && errno != EEXIST ? -1 : 0;
}
#endif
