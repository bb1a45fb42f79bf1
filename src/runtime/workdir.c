/* Local working directories: see workdir.h. */
#define _GNU_SOURCE
#include "runtime/workdir.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "flink.h"
#include "util/fs.h"

#define PREFIX "flink-work-"
#define LOCK_SUFFIX ".lock"

/* The pid in "flink-work-<pid>-<n>[.lock]", or 0. */
static pid_t owner_pid(const char *name) {
  if (strncmp(name, PREFIX, sizeof PREFIX - 1) != 0) return 0;
  char *end = NULL;
  long v = strtol(name + sizeof PREFIX - 1, &end, 10);
  return end && *end == '-' && v > 0 ? (pid_t)v : 0;
}

static bool has_suffix(const char *s, const char *suffix) {
  size_t n = strlen(s), m = strlen(suffix);
  return n > m && strcmp(s + n - m, suffix) == 0;
}

int fl_rt_workdir_sweep(const char *base, void (*log)(const char *line, void *arg), void *arg) {
  DIR *d = opendir(base);
  if (!d) return 0;
  int removed = 0;
  struct dirent *e;
  while ((e = readdir(d))) {
    if (!owner_pid(e->d_name)) continue;
    char path[4400], dir[4400];
    snprintf(path, sizeof path, "%s/%s", base, e->d_name);
    if (has_suffix(e->d_name, LOCK_SUFFIX)) {
      int fd = open(path, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
      if (fd < 0) continue;
      if (flock(fd, LOCK_EX | LOCK_NB) == 0) {
        /* its owner is gone: the directory, then the lock file, while we hold it */
        snprintf(dir, sizeof dir, "%.*s", (int)(strlen(path) - strlen(LOCK_SUFFIX)), path);
        fl_rm_tree(dir);
        unlink(path);
        removed++;
        if (log) {
          char line[4600];
          snprintf(line, sizeof line,
                   "removed the working directory %s of a job that ended "
                   "without cleaning up",
                   dir);
          log(line, arg);
        }
      }
      close(fd);
      continue;
    }
    /* A directory: its lock file is created first and removed last, so one without a
     * lock file belongs to nobody unless its pid runs (an owner between the two steps
     * of fl_rt_workdir_release). */
    char lock[4500];
    snprintf(lock, sizeof lock, "%s" LOCK_SUFFIX, path);
    struct stat st;
    if (stat(lock, &st) == 0) continue; /* the lock file decides */
    pid_t pid = owner_pid(e->d_name);
    if (kill(pid, 0) == 0 || errno != ESRCH) continue;
    fl_rm_tree(path);
    removed++;
  }
  closedir(d);
  return removed;
}

int fl_rt_workdir_acquire(fl_workdir_t *wd, const char *base, char *err, size_t err_size) {
  static _Atomic int seq;
  wd->path[0] = '\0';
  wd->lock_fd = -1;
  char why[600];
  int rc = fl_mkdir_p(base, false, why, sizeof why);
  if (rc) {
    snprintf(err, err_size,
             "cannot use the local state directory %s (state.backend.rocksdb.localdir): %s", base,
             why);
    return rc;
  }
  char lock[4200];
  for (int tries = 0;; tries++) {
    snprintf(wd->path, sizeof wd->path, "%s/" PREFIX "%d-%d", base, (int)getpid(),
             atomic_fetch_add(&seq, 1));
    snprintf(lock, sizeof lock, "%s" LOCK_SUFFIX, wd->path);
    wd->lock_fd = open(lock, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (wd->lock_fd >= 0 || errno != EEXIST || tries > 1000) break;
  }
  if (wd->lock_fd < 0 || flock(wd->lock_fd, LOCK_EX | LOCK_NB) != 0) {
    snprintf(err, err_size, "cannot create the lock file %s: %s", lock, strerror(errno));
    if (wd->lock_fd >= 0) {
      close(wd->lock_fd);
      unlink(lock);
    }
    wd->lock_fd = -1;
    wd->path[0] = '\0';
    return FL_EIO;
  }
  if (mkdir(wd->path, 0700) != 0) {
    snprintf(err, err_size, "cannot create the working directory %s: %s", wd->path,
             strerror(errno));
    fl_rt_workdir_release(wd);
    return FL_EIO;
  }
  return FL_OK;
}

void fl_rt_workdir_release(fl_workdir_t *wd) {
  if (!wd || wd->lock_fd < 0) return;
  fl_rm_tree(wd->path);
  char lock[4200];
  snprintf(lock, sizeof lock, "%s" LOCK_SUFFIX, wd->path);
  unlink(lock);
  close(wd->lock_fd);
  wd->lock_fd = -1;
  wd->path[0] = '\0';
}
