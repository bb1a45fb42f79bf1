/* Files, child processes and line comparisons for the tests (run_util.h). */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <libgen.h>
#include <limits.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "fl_test_util.h"
#include "run_util.h"

/* A hung child is killed after this many seconds, times FL_TEST_TIMEOUT_SCALE (the
 * alarm survives exec). */
#define CHILD_TIMEOUT_S 60

/* ---------------------------------------------------------------------------------- */
/* Files and directories                                                                */

char *make_tmpdir(const char *prefix) {
  const char *tmp = getenv("TMPDIR");
  char tmpl[PATH_MAX];
  snprintf(tmpl, sizeof tmpl, "%s/%s-XXXXXX", tmp && *tmp ? tmp : "/tmp", prefix);
  if (!mkdtemp(tmpl)) fail_msg("mkdtemp %s: %s", tmpl, strerror(errno));
  char *dir = strdup(tmpl);
  assert_non_null(dir);
  return dir;
}

char *g_tmpdir;

int tmpdir_group_setup(void **state) {
  g_tmpdir = make_tmpdir("fl-test");
  return 0;
}

int tmpdir_group_teardown(void **state) {
  rm_tree(g_tmpdir);
  free(g_tmpdir);
  g_tmpdir = NULL;
  return 0;
}

static int rm_entry(const char *path, const struct stat *st, int type, struct FTW *ftw) {
  return remove(path) == 0 || errno == ENOENT ? 0 : -1;
}

void rm_tree(const char *path) { nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS); }

void write_bytes(const char *path, const void *data, size_t len) {
  FILE *f = fopen(path, "wb");
  if (!f) fail_msg("cannot create %s: %s", path, strerror(errno));
  assert_int_equal(fwrite(data, 1, len, f), len);
  assert_int_equal(fclose(f), 0);
}

void write_text(const char *path, const char *text) { write_bytes(path, text, strlen(text)); }

char *read_text(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  char *buf = NULL;
  size_t n = 0, cap = 0, r;
  do {
    if (cap - n < 65536) {
      cap = cap ? cap * 2 : 131072;
      buf = realloc(buf, cap + 1);
      assert_non_null(buf);
    }
    r = fread(buf + n, 1, cap - n, f);
    n += r;
  } while (r > 0);
  fclose(f);
  buf[n] = '\0';
  if (len) *len = n;
  return buf;
}

char *read_source_file(const char *rel) {
  const char *dir = getenv("FL_SOURCE_DIR");
  char path[PATH_MAX];
  snprintf(path, sizeof path, "%s/%s", dir && *dir ? dir : "..", rel);
  char *text = read_text(path, NULL);
  if (!text) fail_msg("cannot read %s (set FL_SOURCE_DIR)", path);
  return text;
}

void assert_file_contains(const char *path, const char *needle) {
  char *text = read_text(path, NULL);
  if (!text) fail_msg("cannot read %s", path);
  if (!strstr(text, needle))
    fail_msg("%s does not contain \"%s\"; it holds:\n%s", path, needle, text);
  free(text);
}

/* ---------------------------------------------------------------------------------- */
/* Time                                                                                 */

/* ---------------------------------------------------------------------------------- */
/* Child processes                                                                      */

char *find_program(const char *sub, const char *name) {
  const char *build = getenv("FL_BUILD_DIR");
  char path[PATH_MAX], self[PATH_MAX];
  ssize_t n;
  if (build && *build) {
    snprintf(path, sizeof path, "%s/%s/%s", build, sub, name);
    if (access(path, X_OK) == 0) return strdup(path);
  }
  snprintf(path, sizeof path, "./%s/%s", sub, name);
  if (access(path, X_OK) == 0) return strdup(path);
  n = readlink("/proc/self/exe", self, sizeof self - 1);
  if (n > 0) {
    self[n] = '\0';
    snprintf(path, sizeof path, "%s/%s/%s", dirname(self), sub, name);
    if (access(path, X_OK) == 0) return strdup(path);
  }
  fail_msg("cannot find the program %s/%s (set FL_BUILD_DIR to the build directory)", sub, name);
  return NULL;
}

pid_t start_program(char *const argv[], const char *in, const char *out, const char *err) {
  fflush(stdout);
  fflush(stderr);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    int o = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    int e = open(err, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    int i = open(in ? in : "/dev/null", O_RDONLY);
    if (o < 0 || e < 0 || i < 0 || dup2(o, 1) < 0 || dup2(e, 2) < 0 || dup2(i, 0) < 0) _exit(126);
    close(o);
    close(e);
    close(i);
    double scale = timeout_scale();
    alarm((unsigned)(CHILD_TIMEOUT_S * (scale < 100 ? scale : 100)));
    execv(argv[0], argv);
    _exit(127);
  }
  return pid;
}

int wait_program(pid_t pid) {
  int status = 0;
  while (waitpid(pid, &status, 0) < 0) assert_int_equal(errno, EINTR);
  return WIFEXITED(status) ? WEXITSTATUS(status) : KILLED_BY(WTERMSIG(status));
}

void run_expect(char *const argv[], const char *in, const char *out, const char *err, int want) {
  int got = wait_program(start_program(argv, in, out, err));
  if (got == want) return;
  char *o = read_text(out, NULL), *e = read_text(err, NULL);
  /* stderr says why (the demos repeat a failed check there); stdout can be long */
  if (o && strlen(o) > 600) o[600] = '\0';
  fail_msg("%s exited with %d, expected %d\n--- stderr:\n%s\n--- stdout (start):\n%s", argv[0], got,
           want, e ? e : "(none)", o ? o : "(none)");
}

void assert_running(pid_t pid, const char *err) {
  int status;
  if (waitpid(pid, &status, WNOHANG) == 0) return;
  char *text = read_text(err, NULL);
  fail_msg("the program ended early (status 0x%x); stderr:\n%s", status, text ? text : "");
}

int open_fifo_writer(const char *fifo, pid_t pid, const char *err, int deadline_s) {
  int64_t deadline = deadline_in((int64_t)deadline_s * 1000);
  for (;;) {
    int fd = open(fifo, O_WRONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd >= 0) {
      assert_int_equal(fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK), 0);
      return fd;
    }
    assert_int_equal(errno, ENXIO); /* no reader yet */
    assert_running(pid, err);
    if (mono_ms() > deadline) fail_msg("the program did not open %s", fifo);
    pause_ms(2);
  }
}

void write_all(int fd, const void *data, size_t len) {
  const char *p = data;
  while (len > 0) {
    ssize_t n = write(fd, p, len);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) fail_msg("writing to fd %d failed: %s", fd, strerror(errno));
    p += n;
    len -= (size_t)n;
  }
}

/* ---------------------------------------------------------------------------------- */
/* Lines                                                                                */

void lines_push(lines_t *l, const char *s, size_t len) {
  if (l->n == l->cap) {
    l->cap = l->cap ? l->cap * 2 : 1024;
    l->v = realloc(l->v, l->cap * sizeof *l->v);
    assert_non_null(l->v);
  }
  l->v[l->n] = strndup(s, len);
  assert_non_null(l->v[l->n]);
  l->n++;
}

void lines_add_text(lines_t *l, const char *text) {
  for (const char *p = text; *p;) {
    const char *nl = strchr(p, '\n');
    if (!nl) fail_msg("output does not end with a newline: '%s'", p);
    lines_push(l, p, (size_t)(nl - p));
    p = nl + 1;
  }
}

void lines_add_file(lines_t *l, const char *path) {
  char *text = read_text(path, NULL);
  if (!text) fail_msg("cannot read %s", path);
  lines_add_text(l, text);
  free(text);
}

/* Visits the committed files of a file sink's directory; l NULL: counts them. */
static size_t committed_files(lines_t *l, const char *dir) {
  DIR *d = opendir(dir);
  struct dirent *e;
  size_t files = 0;
  if (!d) return 0;
  while ((e = readdir(d))) {
    char p[2 * PATH_MAX];
    if (e->d_name[0] == '.') continue;
    snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
    if (l) lines_add_file(l, p);
    files++;
  }
  closedir(d);
  return files;
}

size_t lines_add_committed(lines_t *l, const char *dir) { return committed_files(l, dir); }

size_t count_committed(const char *dir) { return committed_files(NULL, dir); }

int cmp_str_ptr(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

void lines_sort(lines_t *l) {
  if (l->n) qsort(l->v, l->n, sizeof *l->v, cmp_str_ptr);
}

void lines_free(lines_t *l) {
  for (size_t i = 0; i < l->n; i++) free(l->v[i]);
  free(l->v);
  memset(l, 0, sizeof *l);
}

void assert_same_lines(const char *what, const lines_t *got, const char *const *want, size_t n) {
  const char **g = malloc((got->n + 1) * sizeof *g), **w = malloc((n + 1) * sizeof *w);
  assert_true(g && w);
  if (got->n) memcpy(g, got->v, got->n * sizeof *g); /* an empty lines_t has no array */
  if (n) memcpy(w, want, n * sizeof *w);
  qsort(g, got->n, sizeof *g, cmp_str_ptr);
  qsort(w, n, sizeof *w, cmp_str_ptr);
  /* Both sorted: walk them together and show the differences (the first 20). */
  size_t a = 0, b = 0, shown = 0, diffs = 0;
  while (a < got->n || b < n) {
    int c = a == got->n ? 1 : b == n ? -1 : strcmp(g[a], w[b]);
    if (c == 0) {
      a++;
      b++;
      continue;
    }
    if (diffs++ == 0)
      print_error("%s: %zu lines, want %zu; '-' missing, '+' unexpected:\n", what, got->n, n);
    if (shown < 20) {
      print_error("%c %s\n", c < 0 ? '+' : '-', c < 0 ? g[a] : w[b]);
      shown++;
    }
    if (c < 0)
      a++;
    else
      b++;
  }
  free(g);
  free(w);
  if (diffs) fail_msg("%s: %zu lines differ", what, diffs);
}

void assert_text_lines(const char *what, const char *got, const char *const *want, size_t n) {
  lines_t l = {0};
  lines_add_text(&l, got);
  assert_same_lines(what, &l, want, n);
  lines_free(&l);
}

int threads_at_nice(const char *prefix, int nice) {
  DIR *d = opendir("/proc/self/task");
  assert_non_null(d);
  size_t plen = strlen(prefix);
  struct dirent *e;
  int n = 0;
  while ((e = readdir(d)) != NULL) {
    if (e->d_name[0] == '.') continue;
    char path[300], comm[64] = "";
    snprintf(path, sizeof path, "/proc/self/task/%s/comm", e->d_name);
    FILE *fp = fopen(path, "r");
    if (!fp) continue; /* the thread has ended */
    if (!fgets(comm, sizeof comm, fp)) comm[0] = 0;
    fclose(fp);
    if (strncmp(comm, prefix, plen) != 0) continue;
    /* on Linux, PRIO_PROCESS with a thread id is that thread's nice value */
    errno = 0;
    int v = getpriority(PRIO_PROCESS, (id_t)strtol(e->d_name, NULL, 10));
    if (errno == 0 && v == nice) n++;
  }
  closedir(d);
  return n;
}

int own_nice(void) {
  errno = 0;
  int v = getpriority(PRIO_PROCESS, 0);
  assert_int_equal(errno, 0);
  return v;
}
