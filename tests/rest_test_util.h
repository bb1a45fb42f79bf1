/* Helpers of the tests that drive the HTTP endpoint with real programs (Prometheus,
 * Chromium): a job that runs until stopped, free loopback ports, running a program with
 * a deadline, HTTP GETs through libcurl, and the group's fixtures (libcurl, and a
 * temporary directory g_tmpdir). */
#ifndef FL_REST_TEST_UTIL_H
#define FL_REST_TEST_UTIL_H

#include <arpa/inet.h>
#include <curl/curl.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "fl_test_util.h"
#include "flink.h"
#include "run_util.h"

extern char **environ;

static inline int rt_group_setup(void **state) {
  curl_global_init(CURL_GLOBAL_DEFAULT);
  return tmpdir_group_setup(state);
}

static inline int rt_group_teardown(void **state) {
  int rc = tmpdir_group_teardown(state);
  curl_global_cleanup();
  return rc;
}

/* The full path of program on PATH, or NULL (static storage). */
static inline const char *rt_which(const char *program) {
  static char found[4096];
  const char *path = getenv("PATH");
  char buf[4096];
  snprintf(buf, sizeof buf, "%s", path ? path : "/usr/bin:/bin");
  char *save = NULL;
  for (char *d = strtok_r(buf, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
    snprintf(found, sizeof found, "%s/%s", d, program);
    if (access(found, X_OK) == 0) return found;
  }
  return NULL;
}

/* A free TCP port on 127.0.0.1 (bound and released: the kernel does not hand it out
 * again at once). */
static inline int rt_free_port(void) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(fd, (struct sockaddr *)&a, sizeof a) != 0) return -1;
  socklen_t len = sizeof a;
  getsockname(fd, (struct sockaddr *)&a, &len);
  close(fd);
  return ntohs(a.sin_port);
}

/* Starts argv[0] with stdout (and stderr) to the file out (NULL: /dev/null). */
static inline pid_t rt_spawn(char *const argv[], const char *out) {
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 1, out ? out : "/dev/null", O_WRONLY | O_CREAT | O_TRUNC,
                                   0644);
  posix_spawn_file_actions_adddup2(&fa, 1, 2);
  pid_t pid = -1;
  if (posix_spawn(&pid, argv[0], &fa, NULL, argv, environ) != 0) pid = -1;
  posix_spawn_file_actions_destroy(&fa);
  return pid;
}

/* Waits for pid up to seconds; kills it (SIGKILL) past that. Its exit status, or -1. */
static inline int rt_wait(pid_t pid, double seconds) {
  double deadline = mono_s() + seconds;
  int st = 0;
  for (;;) {
    pid_t r = waitpid(pid, &st, WNOHANG);
    if (r == pid) return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    if (mono_s() > deadline) {
      kill(pid, SIGKILL);
      waitpid(pid, &st, 0);
      return -1;
    }
    pause_ms(20);
  }
}

typedef struct rt_buf {
  char *s;
  size_t n;
} rt_buf_t;

/* Appends len bytes at p to the string *s of *n bytes (kept NUL-terminated). */
static inline void rt_append(char **s, size_t *n, const char *p, size_t len) {
  *s = realloc(*s, *n + len + 1);
  memcpy(*s + *n, p, len);
  *n += len;
  (*s)[*n] = 0;
}

/* A libcurl write function collecting the body into the rt_buf_t arg. */
static inline size_t rt_on_body(char *p, size_t size, size_t n, void *arg) {
  rt_buf_t *b = arg;
  rt_append(&b->s, &b->n, p, size * n);
  return size * n;
}

/* GET url; the body (caller frees) or NULL unless the status is 200. */
static inline char *rt_get(const char *url) {
  rt_buf_t b = {0};
  CURL *c = curl_easy_init();
  curl_easy_setopt(c, CURLOPT_URL, url);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, rt_on_body);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
  curl_easy_setopt(c, CURLOPT_TIMEOUT, 10L);
  curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
  long status = 0;
  if (curl_easy_perform(c) == CURLE_OK) curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
  curl_easy_cleanup(c);
  if (status != 200) {
    free(b.s);
    return NULL;
  }
  return b.s ? b.s : calloc(1, 1);
}

/* A job that runs until stopped: a paced source (about 2000 records a second, event
 * time now, watermarks), keyBy, a 1 s tumbling window counting per key, and a sink. */
typedef struct rt_job {
  bg_job_t run;
  fl_env_t *env;
  int port;
} rt_job_t;

static inline int rt_paced_run(fl_context_t *ctx, void *inst) {
  double *start = inst;
  static _Thread_local long emitted;
  if (*start == 0) {
    *start = mono_s();
    emitted = 0;
  }
  long due = (long)((mono_s() - *start) * 2000) - emitted;
  if (due <= 0) return FL_SOURCE_WAIT;
  if (due > 200) due = 200;
  int64_t now = fl_ctx_processing_time(ctx);
  for (long i = 0; i < due; i++, emitted++) {
    char key[16];
    int kl = snprintf(key, sizeof key, "user-%ld", emitted % 17);
    fl_emit(ctx, key, (size_t)kl, "1", 1, now);
  }
  fl_ctx_emit_watermark(ctx, now - 1);
  return FL_SOURCE_MORE;
}

/* A decimal number of len bytes (not NUL-terminated). */
static inline long rt_num(const void *p, size_t len) {
  char buf[32];
  size_t n = len < sizeof buf - 1 ? len : sizeof buf - 1;
  memcpy(buf, p, n);
  buf[n] = 0;
  return atol(buf);
}

static inline int rt_count(fl_context_t *ctx, const void *a, size_t al, const void *b, size_t bl,
                           fl_buf_t *out, void *opaque) {
  char s[32];
  int n = snprintf(s, sizeof s, "%ld", rt_num(a, al) + rt_num(b, bl));
  return fl_buf_set(out, s, (size_t)n);
}

static inline int rt_sink(fl_context_t *ctx, const fl_record_t *in, void *inst) {
  fl_ctx_histogram_update(ctx, "value-bytes", (int64_t)in->value_len);
  return 0;
}

static double rt_source_start;

/* Starts the job, with the endpoint on a free port, checkpoints every interval into
 * g_tmpdir/ckpt and latency markers every 100 ms, and waits until the endpoint listens. */
static inline void rt_job_start(rt_job_t *j, const char *interval) {
  memset(j, 0, sizeof *j);
  char ckdir[4200];
  snprintf(ckdir, sizeof ckdir, "%s/ckpt", g_tmpdir);
  const char *kv[] = {"state.checkpoints.dir",
                      ckdir,
                      "execution.checkpointing.interval",
                      interval,
                      "metrics.latency.interval",
                      "100ms",
                      "rest.port",
                      "0",
                      NULL};
  j->env = env_of(kv);
  rt_source_start = 0;
  fl_source_fn_t src = {.version = FL_SOURCE_FN_VERSION, .run = rt_paced_run};
  fl_stream_t *s = fl_source(j->env, "clicks", &src, &rt_source_start, 0);
  fl_windowed_stream_t *w =
      fl_window_tumbling(fl_stream_key_by(s, NULL, NULL), FL_EVENT_TIME, 1000, 0);
  fl_stream_t *counts = fl_window_reduce(w, "clicks-per-second", rt_count, NULL);
  fl_sink_fn_t sink = {.version = FL_SINK_FN_VERSION, .write = rt_sink};
  fl_stream_sink(counts, "feature-store", &sink, NULL);
  bg_job_start(&j->run, j->env, "dashboard-job");
  double deadline = mono_s() + 10 * timeout_scale();
  while ((j->port = fl_env_rest_port(j->env)) <= 0 && mono_s() < deadline) pause_ms(5);
}

static inline int rt_job_stop(rt_job_t *j) {
  fl_env_stop(j->env);
  int rc = bg_job_join(&j->run);
  fl_env_destroy(j->env);
  return rc;
}

#endif
