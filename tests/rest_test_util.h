/* Helpers of the tests that drive the HTTP endpoint with real programs (Prometheus,
 * Chromium): a job that runs until stopped, free loopback ports, running a program with
 * a deadline, and HTTP GETs through libcurl. */
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

extern char **environ;

static inline double rt_mono_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static inline void rt_nap_ms(int ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
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
  double deadline = rt_mono_s() + seconds;
  int st = 0;
  for (;;) {
    pid_t r = waitpid(pid, &st, WNOHANG);
    if (r == pid) return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    if (rt_mono_s() > deadline) {
      kill(pid, SIGKILL);
      waitpid(pid, &st, 0);
      return -1;
    }
    rt_nap_ms(20);
  }
}

typedef struct rt_buf {
  char *s;
  size_t n;
} rt_buf_t;

static inline size_t rt_on_body(char *p, size_t size, size_t n, void *arg) {
  rt_buf_t *b = arg;
  b->s = realloc(b->s, b->n + size * n + 1);
  memcpy(b->s + b->n, p, size * n);
  b->n += size * n;
  b->s[b->n] = 0;
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
  pthread_t t;
  fl_env_t *env;
  int rc;
  int port;
} rt_job_t;

static inline int rt_paced_run(fl_context_t *ctx, void *inst) {
  double *start = inst;
  static _Thread_local long emitted;
  if (*start == 0) {
    *start = rt_mono_s();
    emitted = 0;
  }
  long due = (long)((rt_mono_s() - *start) * 2000) - emitted;
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

static inline void *rt_job_main(void *arg) {
  rt_job_t *j = arg;
  j->rc = fl_env_execute(j->env, "dashboard-job");
  return NULL;
}

static double rt_source_start;

/* Starts the job with the settings kv (NULL-ended pairs) plus rest.port=0, and waits
 * until the endpoint listens. */
static inline void rt_job_start(rt_job_t *j, const char *const *kv) {
  memset(j, 0, sizeof *j);
  fl_config_t *c = fl_config_new();
  char err[256];
  fl_config_set(c, "rest.port", "0", err, sizeof err);
  for (size_t i = 0; kv && kv[i]; i += 2)
    if (fl_config_set(c, kv[i], kv[i + 1], err, sizeof err)) fprintf(stderr, "%s\n", err);
  fl_env_new(&j->env, c, err, sizeof err);
  fl_config_destroy(c);
  rt_source_start = 0;
  fl_source_fn_t src = {.version = FL_SOURCE_FN_VERSION, .run = rt_paced_run};
  fl_stream_t *s = fl_source(j->env, "clicks", &src, &rt_source_start, 0);
  fl_windowed_stream_t *w =
      fl_window_tumbling(fl_stream_key_by(s, NULL, NULL), FL_EVENT_TIME, 1000, 0);
  fl_stream_t *counts = fl_window_reduce(w, "clicks-per-second", rt_count, NULL);
  fl_sink_fn_t sink = {.version = FL_SINK_FN_VERSION, .write = rt_sink};
  fl_stream_sink(counts, "feature-store", &sink, NULL);
  pthread_create(&j->t, NULL, rt_job_main, j);
  double deadline = rt_mono_s() + 10 * timeout_scale();
  while ((j->port = fl_env_rest_port(j->env)) <= 0 && rt_mono_s() < deadline) rt_nap_ms(5);
}

static inline int rt_job_stop(rt_job_t *j) {
  fl_env_stop(j->env);
  pthread_join(j->t, NULL);
  fl_env_destroy(j->env);
  return j->rc;
}

#endif
