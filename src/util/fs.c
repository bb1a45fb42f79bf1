/* File-system helpers: see fs.h. */
#define _GNU_SOURCE
#include "util/fs.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "flink.h"

static int fail_sys(char *err, size_t err_size, int e, const char *what, const char *path) {
  if (err && err_size) {
    char eb[128];
    snprintf(err, err_size, "%s %s: %s", what, path, strerror_r(e, eb, sizeof eb));
  }
  return e == ENOMEM ? FL_ENOMEM : FL_EIO;
}

int fl_write_all(int fd, const void *data, size_t len) {
  const char *p = data;
  while (len > 0) {
    ssize_t w = write(fd, p, len);
    if (w < 0) {
      if (errno == EINTR) continue;
      return -errno;
    }
    p += w;
    len -= (size_t)w;
  }
  return 0;
}

ssize_t fl_read_some(int fd, void *buf, size_t cap) {
  for (;;) {
    ssize_t r = read(fd, buf, cap);
    if (r >= 0 || errno != EINTR) return r < 0 ? -errno : r;
  }
}

int fl_fsync_dir(const char *path, char *err, size_t err_size) {
  int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return fail_sys(err, err_size, errno, "open directory", path);
  int rc = 0;
  if (fsync(fd) != 0 && errno != EINVAL && errno != ENOTSUP)
    rc = fail_sys(err, err_size, errno, "fsync directory", path);
  close(fd);
  return rc;
}

char *fl_path_parent(const char *path) {
  size_t n = strlen(path);
  while (n > 1 && path[n - 1] == '/') n--;
  size_t cut = n;
  while (cut > 0 && path[cut - 1] != '/') cut--;
  if (cut == 0) return strdup(".");
  while (cut > 1 && path[cut - 1] == '/') cut--;
  return strndup(path, cut);
}

int fl_mkdir_p(const char *path, bool durable, char *err, size_t err_size) {
  int rc = 0;
  if (!path[0]) return fail_sys(err, err_size, ENOENT, "create directory", "\"\"");
  char *p = strdup(path);
  if (!p) return fail_sys(err, err_size, ENOMEM, "create directory", path);
  for (char *s = p + 1;; s++) {
    if (*s != '/' && *s != 0) continue;
    char saved = *s;
    *s = 0;
    if (mkdir(p, 0755) == 0) {
      if (durable) {
        char *parent = fl_path_parent(p);
        rc = parent ? fl_fsync_dir(parent, err, err_size)
                    : fail_sys(err, err_size, ENOMEM, "create directory", p);
        free(parent);
        if (rc) goto done;
      }
    } else if (errno == EEXIST) {
      struct stat st;
      if (stat(p, &st) != 0) {
        rc = fail_sys(err, err_size, errno, "stat", p);
        goto done;
      }
      if (!S_ISDIR(st.st_mode)) {
        rc = fail_sys(err, err_size, ENOTDIR, "create directory", p);
        goto done;
      }
    } else {
      rc = fail_sys(err, err_size, errno, "create directory", p);
      goto done;
    }
    *s = saved;
    if (!saved) break;
    while (s[1] == '/') s++; /* "a//b" */
  }
done:
  free(p);
  return rc;
}

/* Removes name (a file or a whole tree) in directory dfd without following symbolic
 * links. Recursion depth is the tree's depth. */
static int rm_tree_at(int dfd, const char *name);

/* Removes everything inside the open directory fd, which it closes; the first error. */
static int remove_entries(int fd) {
  DIR *d = fdopendir(fd);
  if (!d) {
    int e = errno;
    close(fd);
    return -e;
  }
  int rc = 0;
  struct dirent *de;
  while ((de = readdir(d)) != NULL) {
    if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0) continue;
    int r = rm_tree_at(dirfd(d), de->d_name);
    if (r && !rc) rc = r;
  }
  closedir(d);
  return rc;
}

static int rm_tree_at(int dfd, const char *name) {
  if (unlinkat(dfd, name, 0) == 0) return 0;
  if (errno == ENOENT) return 0;
  if (errno != EISDIR && errno != EPERM) return -errno;
  int fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return errno == ENOENT ? 0 : -errno;
  int rc = remove_entries(fd);
  if (unlinkat(dfd, name, AT_REMOVEDIR) != 0 && errno != ENOENT && !rc) rc = -errno;
  return rc;
}

int fl_rm_tree(const char *path) {
  if (!path || !path[0]) return 0;
  return rm_tree_at(AT_FDCWD, path);
}

int fl_empty_dir(const char *path) {
  int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return -errno;
  return remove_entries(fd);
}

int fl_file_replace(const char *path, const void *data, size_t len, char *err, size_t err_size) {
  return fl_file_replace_staged(path, data, len, NULL, NULL, err, err_size);
}

int fl_file_replace_staged(const char *path, const void *data, size_t len,
                           void (*stage)(const char *point, void *arg), void *arg, char *err,
                           size_t err_size) {
  size_t n = strlen(path) + 5;
  char *tmp = malloc(n);
  char *dir = fl_path_parent(path);
  int rc = 0, fd = -1;
  if (!tmp || !dir) {
    rc = fail_sys(err, err_size, ENOMEM, "replace", path);
    goto done;
  }
  snprintf(tmp, n, "%s.tmp", path);
  fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    rc = fail_sys(err, err_size, errno, "create", tmp);
    goto done;
  }
  int w = fl_write_all(fd, data, len);
  if (w) {
    rc = fail_sys(err, err_size, -w, "write", tmp);
    goto done;
  }
  if (fsync(fd) != 0) {
    rc = fail_sys(err, err_size, errno, "fsync", tmp);
    goto done;
  }
  int cfd = fd;
  fd = -1;
  if (close(cfd) != 0) {
    rc = fail_sys(err, err_size, errno, "close", tmp);
    goto done;
  }
  if (stage) stage("tmp", arg);
  if (rename(tmp, path) != 0) {
    rc = fail_sys(err, err_size, errno, "rename to", path);
    goto done;
  }
  if (stage) stage("renamed", arg);
  rc = fl_fsync_dir(dir, err, err_size);
done:
  if (fd >= 0) close(fd);
  if (rc && tmp) unlink(tmp);
  free(tmp);
  free(dir);
  return rc;
}
