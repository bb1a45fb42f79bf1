/*
 * Helpers of the Kafka tests: the time left to a deadline, child processes
 * with piped stdin/stdout, and flink-kafka-local ($FL_BUILD_DIR/tools/flink-kafka-local)
 * as a loopback broker process started with --stdin-eof, so a dying test takes it along.
 * Include once per test program, after <cmocka.h> and "fl_test_util.h"; call tool_path()
 * in a setup and teardown_children() in a teardown (kafka_group_setup and
 * kafka_group_teardown do both, with the group's temporary directory).
 */
#ifndef FL_KAFKA_TEST_UTIL_H
#define FL_KAFKA_TEST_UTIL_H

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "fl_test_util.h"
#include "run_util.h"

/* ---------------------------------------------------------------------------------- */
/* Time                                                                               */

static inline int ms_left(int64_t deadline) {
  int64_t left = deadline - mono_ms();
  return left < 0 ? 0 : left > 1000 ? 1000 : (int)left;
}

/* ---------------------------------------------------------------------------------- */
/* Child processes                                                                    */

typedef struct child {
  pid_t pid;  /* 0 once reaped */
  int in_fd;  /* write end of the child's stdin, or -1 */
  int out_fd; /* read end of the child's stdout, or -1 */
  int err_fd; /* read end of the child's stderr when captured, or -1 */
} child_t;

#define MAX_CHILDREN 16
static child_t *g_children[MAX_CHILDREN];

static inline void track(child_t *c) {
  for (int i = 0; i < MAX_CHILDREN; i++) {
    if (g_children[i] == NULL) {
      g_children[i] = c;
      return;
    }
  }
  fail_msg("more than %d children alive", MAX_CHILDREN);
}

static inline void close_fd(int *fd) {
  if (*fd >= 0) close(*fd);
  *fd = -1;
}

/* Kills (SIGKILL) and reaps a child that is still running, closes its pipes and frees
 * it. Safe on NULL and on a child already reaped. */
static inline void child_free(child_t *c) {
  if (c == NULL) return;
  if (c->pid > 0) {
    kill(c->pid, SIGKILL);
    while (waitpid(c->pid, NULL, 0) < 0 && errno == EINTR) {}
    c->pid = 0;
  }
  close_fd(&c->in_fd);
  close_fd(&c->out_fd);
  close_fd(&c->err_fd);
  for (int i = 0; i < MAX_CHILDREN; i++)
    if (g_children[i] == c) g_children[i] = NULL;
  free(c);
}

/* Starts argv[0] (a path) with pipes on stdin and stdout, and on stderr when
 * capture_err (else stderr is the test's). */
static inline child_t *spawn(char *const argv[], bool capture_err) {
  int in[2] = {-1, -1}, out[2] = {-1, -1}, err[2] = {-1, -1};
  child_t *c = calloc(1, sizeof(*c));
  assert_non_null(c);
  c->in_fd = c->out_fd = c->err_fd = -1;
  assert_int_equal(pipe2(in, O_CLOEXEC), 0);
  assert_int_equal(pipe2(out, O_CLOEXEC), 0);
  if (capture_err) assert_int_equal(pipe2(err, O_CLOEXEC), 0);
  c->pid = fork();
  assert_true(c->pid >= 0);
  if (c->pid == 0) {
    dup2(in[0], STDIN_FILENO);
    dup2(out[1], STDOUT_FILENO);
    if (capture_err) dup2(err[1], STDERR_FILENO);
    execv(argv[0], argv);
    fprintf(stderr, "exec %s: %s\n", argv[0], strerror(errno));
    _exit(127);
  }
  close(in[0]);
  close(out[1]);
  c->in_fd = in[1];
  c->out_fd = out[0];
  if (capture_err) {
    close(err[1]);
    c->err_fd = err[0];
  }
  track(c);
  return c;
}

/* Reads one line (without the newline) from fd into buf before the deadline. Returns
 * its length, or -1 on end of file, error or timeout. Reads byte by byte so that
 * nothing after the line is consumed. */
static inline int read_line(int fd, char *buf, size_t cap, int64_t deadline) {
  size_t n = 0;
  while (n + 1 < cap) {
    struct pollfd p = {.fd = fd, .events = POLLIN};
    char ch;
    ssize_t r;
    if (mono_ms() >= deadline) return -1;
    if (poll(&p, 1, ms_left(deadline)) <= 0) continue;
    r = read(fd, &ch, 1);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return -1;
    if (ch == '\n') {
      buf[n] = '\0';
      return (int)n;
    }
    buf[n++] = ch;
  }
  return -1;
}

/* Appends everything readable from fd to a growing string until end of file or the
 * deadline. Returns true on end of file. */
static inline bool read_all(int fd, char **out, size_t *len, int64_t deadline) {
  size_t cap = *len + 4096;
  char *s = realloc(*out, cap);
  assert_non_null(s);
  *out = s;
  for (;;) {
    struct pollfd p = {.fd = fd, .events = POLLIN};
    ssize_t r;
    if (mono_ms() >= deadline) return false;
    if (poll(&p, 1, ms_left(deadline)) <= 0) continue;
    if (cap - *len < 1024) {
      cap *= 2;
      s = realloc(*out, cap);
      assert_non_null(s);
      *out = s;
    }
    r = read(fd, *out + *len, cap - *len - 1);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) {
      (*out)[*len] = '\0';
      return r == 0;
    }
    *len += (size_t)r;
    (*out)[*len] = '\0';
  }
}

/* Waits for the child to exit before the deadline: its stdout reaching end of file
 * marks the exit, then waitpid() collects the status. Returns the wait status, or -1
 * on timeout (the child is left running for child_free()). */
static inline int wait_exit(child_t *c, int64_t deadline) {
  char *sink = NULL;
  size_t len = 0;
  int status = -1;
  bool eof = read_all(c->out_fd, &sink, &len, deadline);
  free(sink);
  if (!eof) return -1;
  while (waitpid(c->pid, &status, 0) < 0) {
    if (errno != EINTR) return -1;
  }
  c->pid = 0;
  return status;
}

static inline int teardown_children(void **state) {
  (void)state;
  for (int i = 0; i < MAX_CHILDREN; i++) child_free(g_children[i]);
  return 0;
}

/* ---------------------------------------------------------------------------------- */
/* The server                                                                         */

static char g_tool[4096];

static inline void tool_path(void) {
  const char *bd = getenv("FL_BUILD_DIR");
  if (bd != NULL && bd[0] != '\0')
    snprintf(g_tool, sizeof(g_tool), "%s/tools/flink-kafka-local", bd);
  else
    snprintf(g_tool, sizeof(g_tool), "./tools/flink-kafka-local");
}

/* A group setup and teardown for the tests of the tool: its path, and the group's
 * temporary directory (run_util.h's g_tmpdir); the teardown also ends every child. */
static inline int kafka_group_setup(void **state) {
  tool_path();
  return tmpdir_group_setup(state);
}

static inline int kafka_group_teardown(void **state) {
  teardown_children(state);
  return tmpdir_group_teardown(state);
}

/* Starts the tool with the given arguments (NULL-terminated, after the program name)
 * and --stdin-eof, and reads its bootstrap line into bootstrap (without the
 * "bootstrap.servers=" prefix). */
static inline child_t *start_server(char *bootstrap, size_t cap, ...) {
  char *argv[32];
  int argc = 0;
  va_list ap;
  char line[1024];
  child_t *c;
  const char *prefix = "bootstrap.servers=";

  argv[argc++] = g_tool;
  argv[argc++] = "--stdin-eof";
  va_start(ap, cap);
  argv_append(argv, &argc, 32, ap);
  va_end(ap);

  if (access(g_tool, X_OK) != 0)
    fail_msg("%s is not built (cmake --build <dir> --target flink-kafka-local)", g_tool);
  c = spawn(argv, false);
  if (read_line(c->out_fd, line, sizeof(line), deadline_in(10000)) < 0)
    fail_msg("%s printed no bootstrap line in time", g_tool);
  if (strncmp(line, prefix, strlen(prefix)) != 0)
    fail_msg("unexpected first line from %s: '%s'", g_tool, line);
  snprintf(bootstrap, cap, "%s", line + strlen(prefix));
  return c;
}

/* Sends SIGTERM and expects exit status 0 in time. */
static inline void stop_server(child_t *c) {
  int status;
  assert_int_equal(kill(c->pid, SIGTERM), 0);
  status = wait_exit(c, deadline_in(10000));
  if (status == -1) fail_msg("the server did not exit within the deadline after SIGTERM");
  if (!WIFEXITED(status)) fail_msg("the server ended by signal %d, not exit 0", WTERMSIG(status));
  assert_int_equal(WEXITSTATUS(status), 0);
}

/* The full path of prog on PATH, or false. */
static inline bool find_on_path(const char *prog, char *out, size_t cap) {
  const char *path = getenv("PATH");
  char *copy, *save = NULL;
  bool found = false;
  if (path == NULL) path = "/usr/bin:/bin";
  copy = strdup(path);
  assert_non_null(copy);
  for (char *dir = strtok_r(copy, ":", &save); dir != NULL && !found;
       dir = strtok_r(NULL, ":", &save)) {
    snprintf(out, cap, "%s/%s", dir, prog);
    found = access(out, X_OK) == 0;
  }
  free(copy);
  return found;
}

/* Runs argv with input on stdin, returns its exit status and stdout in *out. */
static inline int run_capture(char *const argv[], const char *input, char **out) {
  child_t *c = spawn(argv, false);
  size_t len = 0, in_len = input != NULL ? strlen(input) : 0;
  int status = -1;
  *out = NULL;
  /* The inputs here are far below a pipe's capacity, so writing all of it before
   * reading cannot deadlock. */
  assert_true(in_len < 16384);
  if (in_len > 0) assert_int_equal(write(c->in_fd, input, in_len), (ssize_t)in_len);
  close_fd(&c->in_fd);
  if (!read_all(c->out_fd, out, &len, deadline_in(15000)))
    fail_msg("%s did not finish in time", argv[0]);
  while (waitpid(c->pid, &status, 0) < 0) assert_int_equal(errno, EINTR);
  c->pid = 0;
  child_free(c);
  return status;
}

#endif /* FL_KAFKA_TEST_UTIL_H */
