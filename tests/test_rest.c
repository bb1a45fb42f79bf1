/* The HTTP endpoint through a real HTTP client (libcurl) against running jobs: Flink's
 * REST API fields, /metrics, the dashboard page, the control calls, and bad requests
 * (unknown paths, wrong methods, path traversal, huge headers and bodies, many
 * connections at once) that get the right status and leave the job alone. */
#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <jansson.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
// clang-format off
#include <cmocka.h>
// clang-format on

#include "fl_test_util.h"
#include "run_util.h"
#include "flink.h"
#include "rest/rest.h"

/* ---------------------------------------------------------------------------------- */
/* HTTP                                                                                 */

typedef struct reply {
  long status;
  char *body;
  size_t len;
  char type[128];
  char allow[64];
} reply_t;

static size_t on_body(char *p, size_t size, size_t n, void *arg) {
  reply_t *r = arg;
  r->body = realloc(r->body, r->len + size * n + 1);
  memcpy(r->body + r->len, p, size * n);
  r->len += size * n;
  r->body[r->len] = 0;
  return size * n;
}

static size_t on_header(char *p, size_t size, size_t n, void *arg) {
  reply_t *r = arg;
  size_t len = size * n;
  if (len > 14 && !strncasecmp(p, "Content-Type: ", 14))
    snprintf(r->type, sizeof r->type, "%.*s", (int)(len - 16), p + 14);
  if (len > 7 && !strncasecmp(p, "Allow: ", 7))
    snprintf(r->allow, sizeof r->allow, "%.*s", (int)(len - 9), p + 7);
  return len;
}

/* One request; extra: one more header line or NULL. */
static reply_t http(const char *method, int port, const char *path, const char *body,
                    const char *extra) {
  reply_t r = {0};
  CURL *c = curl_easy_init();
  char url[4096];
  snprintf(url, sizeof url, "http://127.0.0.1:%d%s", port, path);
  curl_easy_setopt(c, CURLOPT_URL, url);
  curl_easy_setopt(c, CURLOPT_PATH_AS_IS, 1L);
  curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &r);
  curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(c, CURLOPT_HEADERDATA, &r);
  curl_easy_setopt(c, CURLOPT_TIMEOUT, 20L);
  curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
  if (!strcmp(method, "HEAD")) curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
  if (body) curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
  struct curl_slist *h = NULL;
  if (extra) h = curl_slist_append(h, extra);
  if (body) h = curl_slist_append(h, "Content-Type: application/json");
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
  CURLcode rc = curl_easy_perform(c);
  if (rc == CURLE_OK)
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r.status);
  else
    r.status = -(long)rc;
  curl_slist_free_all(h);
  curl_easy_cleanup(c);
  if (!r.body) r.body = calloc(1, 1);
  return r;
}

static json_t *get_json(int port, const char *path) {
  reply_t r = http("GET", port, path, NULL, NULL);
  if (r.status != 200) fail_msg("GET %s: %ld %s", path, r.status, r.body);
  assert_non_null(strstr(r.type, "application/json"));
  json_t *j = json_loads(r.body, 0, NULL);
  if (!j) fail_msg("GET %s: not JSON: %s", path, r.body);
  free(r.body);
  return j;
}

static long status_of(const char *method, int port, const char *path, const char *body,
                      const char *extra) {
  reply_t r = http(method, port, path, body, extra);
  free(r.body);
  return r.status;
}

/* ---------------------------------------------------------------------------------- */
/* Jobs                                                                                 */

typedef struct job {
  bg_job_t run;
  fl_env_t *env;
  _Atomic long sunk;
  int port;
  char id[40];
} job_t;

static int paced_run(fl_context_t *ctx, void *inst) {
  size_t n = fl_ctx_source_budget(ctx);
  if (n > 20) n = 20;
  for (size_t i = 0; i < n; i++) {
    char key[8];
    int kl = snprintf(key, sizeof key, "%zu", i % 7);
    fl_emit(ctx, key, (size_t)kl, "v", 1, 1000);
  }
  fl_ctx_emit_watermark(ctx, 999);
  return FL_SOURCE_WAIT; /* again in about a millisecond */
}

static int count_sink(fl_context_t *ctx, const fl_record_t *in, void *inst) {
  atomic_fetch_add(&((job_t *)inst)->sunk, 1);
  return 0;
}

static int slow_sink(fl_context_t *ctx, const fl_record_t *in, void *inst) {
  atomic_fetch_add(&((job_t *)inst)->sunk, 1);
  double until = mono_s() + 50e-6;
  while (mono_s() < until) {}
  return 0;
}

static int fast_run(fl_context_t *ctx, void *inst) {
  size_t n = fl_ctx_source_budget(ctx);
  while (n--) fl_emit(ctx, "k", 1, "0123456789abcdef", 16, 1);
  return FL_SOURCE_MORE;
}

static int pass_proc(fl_context_t *ctx, const fl_record_t *in, void *inst) {
  return fl_emit_record(ctx, in);
}

/* Builds src -> keyBy -> pass -> sink with the settings kv (NULL-ended pairs), starts it
 * and waits until the endpoint listens. slow: a fast source and a slow sink. */
static void job_start(job_t *j, const char *const *kv, bool slow) {
  memset(j, 0, sizeof *j);
  const char *all[32] = {"rest.port", "0"};
  size_t n = 2;
  for (size_t i = 0; kv && kv[i] && n < 30; i++) all[n++] = kv[i];
  j->env = env_of(all);
  fl_source_fn_t src = {.version = FL_SOURCE_FN_VERSION, .run = slow ? fast_run : paced_run};
  fl_stream_t *s = fl_source(j->env, "src", &src, NULL, 0);
  fl_process_fn_t pass = {FL_PROCESS_FN_VERSION, NULL, pass_proc, NULL, NULL, NULL};
  fl_stream_t *p = fl_keyed_process(fl_stream_key_by(s, NULL, NULL), "pass", &pass, NULL);
  fl_sink_fn_t sink = {.version = FL_SINK_FN_VERSION, .write = slow ? slow_sink : count_sink};
  fl_stream_sink(p, "sink", &sink, j);
  bg_job_start(&j->run, j->env, "rest-job");
  double deadline = mono_s() + 10 * timeout_scale();
  while ((j->port = fl_env_rest_port(j->env)) <= 0 && mono_s() < deadline) pause_ms(5);
  assert_true(j->port > 0);
  json_t *jobs = get_json(j->port, "/jobs");
  snprintf(
      j->id, sizeof j->id, "%s",
      json_string_value(json_object_get(json_array_get(json_object_get(jobs, "jobs"), 0), "id")));
  json_decref(jobs);
  assert_int_equal(strlen(j->id), 32);
}

static int job_stop(job_t *j) {
  fl_env_stop(j->env);
  int rc = bg_job_join(&j->run);
  fl_env_destroy(j->env);
  return rc;
}

/* ---------------------------------------------------------------------------------- */

static void rest_api_answers_with_flinks_fields(void **state) {
  char dir[] = "/tmp/fl-rest-ckpt-XXXXXX";
  assert_non_null(mkdtemp(dir));
  const char *kv[] = {"state.checkpoints.dir",
                      dir,
                      "execution.checkpointing.interval",
                      "50ms",
                      "parallelism",
                      "2",
                      NULL};
  job_t j;
  job_start(&j, kv, false);
  char path[256];
  json_t *ov = get_json(j.port, "/jobs/overview");
  json_t *o = json_array_get(json_object_get(ov, "jobs"), 0);
  assert_string_equal(json_string_value(json_object_get(o, "jid")), j.id);
  assert_string_equal(json_string_value(json_object_get(o, "name")), "rest-job");
  assert_string_equal(json_string_value(json_object_get(o, "state")), "RUNNING");
  assert_true(json_integer_value(json_object_get(o, "start-time")) > 0);
  assert_int_equal(json_integer_value(json_object_get(json_object_get(o, "tasks"), "total")), 4);
  json_decref(ov);

  snprintf(path, sizeof path, "/jobs/%s", j.id);
  json_t *d = get_json(j.port, path);
  json_t *vs = json_object_get(d, "vertices");
  assert_int_equal(json_array_size(vs), 2);
  assert_string_equal(json_string_value(json_object_get(json_array_get(vs, 0), "name")), "src");
  assert_string_equal(json_string_value(json_object_get(json_array_get(vs, 1), "name")),
                      "pass -> sink");
  assert_int_equal(json_integer_value(json_object_get(json_array_get(vs, 1), "parallelism")), 2);
  char vid[40];
  snprintf(vid, sizeof vid, "%s", json_string_value(json_object_get(json_array_get(vs, 1), "id")));
  json_decref(d);

  snprintf(path, sizeof path, "/jobs/%s/plan", j.id);
  json_t *plan = get_json(j.port, path);
  json_t *nodes = json_object_get(json_object_get(plan, "plan"), "nodes");
  assert_int_equal(json_array_size(nodes), 2);
  json_t *in0 = json_array_get(json_object_get(json_array_get(nodes, 1), "inputs"), 0);
  assert_string_equal(json_string_value(json_object_get(in0, "ship_strategy")), "HASH");
  json_decref(plan);

  /* checkpoints complete and appear in the history, newest first */
  snprintf(path, sizeof path, "/jobs/%s/checkpoints", j.id);
  double deadline = mono_s() + 20 * timeout_scale();
  json_t *ck = NULL;
  for (;;) {
    ck = get_json(j.port, path);
    if (json_integer_value(json_object_get(json_object_get(ck, "counts"), "completed")) >= 2) break;
    json_decref(ck);
    assert_true(mono_s() < deadline);
    pause_ms(50);
  }
  json_t *h0 = json_array_get(json_object_get(ck, "history"), 0);
  assert_non_null(h0);
  assert_true(json_integer_value(json_object_get(h0, "id")) >= 1);
  assert_non_null(json_object_get(h0, "end_to_end_duration"));
  assert_non_null(json_object_get(h0, "state_size"));
  json_t *latest = json_object_get(json_object_get(ck, "latest"), "completed");
  assert_string_equal(json_string_value(json_object_get(latest, "status")), "COMPLETED");
  json_decref(ck);

  snprintf(path, sizeof path, "/jobs/%s/vertices/%s/backpressure", j.id, vid);
  json_t *bp = get_json(j.port, path);
  const char *level = json_string_value(json_object_get(bp, "backpressureLevel"));
  assert_true(!strcmp(level, "ok") || !strcmp(level, "low") || !strcmp(level, "high"));
  assert_int_equal(json_array_size(json_object_get(bp, "subtasks")), 2);
  json_decref(bp);

  snprintf(path, sizeof path, "/jobs/%s/vertices/%s/watermarks", j.id, vid);
  deadline = mono_s() + 10 * timeout_scale();
  for (;;) {
    json_t *wm = get_json(j.port, path);
    json_t *w0 = json_array_get(wm, 0);
    bool ok = w0 &&
              !strcmp(json_string_value(json_object_get(w0, "id")), "0.currentInputWatermark") &&
              !strcmp(json_string_value(json_object_get(w0, "value")), "999");
    json_decref(wm);
    if (ok) break;
    assert_true(mono_s() < deadline);
    pause_ms(20);
  }

  snprintf(path, sizeof path, "/jobs/%s/metrics?get=numberOfCompletedCheckpoints,numRestarts",
           j.id);
  json_t *m = get_json(j.port, path);
  assert_int_equal(json_array_size(m), 2);
  assert_string_equal(json_string_value(json_object_get(json_array_get(m, 1), "id")),
                      "numRestarts");
  assert_string_equal(json_string_value(json_object_get(json_array_get(m, 1), "value")), "0");
  json_decref(m);

  reply_t r = http("GET", j.port, "/metrics", NULL, NULL);
  assert_int_equal(r.status, 200);
  assert_string_equal(r.type, "text/plain; version=0.0.4; charset=utf-8");
  assert_non_null(strstr(r.body, "flink_taskmanager_job_task_operator_numRecordsOut{"));
  assert_non_null(strstr(r.body, "flink_jobmanager_job_numberOfCompletedCheckpoints{"));
  free(r.body);
  r = http("GET", j.port, "/", NULL, NULL);
  assert_int_equal(r.status, 200);
  assert_non_null(strstr(r.type, "text/html"));
  assert_non_null(strstr(r.body, "<title>libflink job</title>"));
  /* nothing is loaded from elsewhere */
  assert_null(strstr(r.body, "src=\"http"));
  assert_null(strstr(r.body, "href=\"http"));
  assert_null(strstr(r.body, "@import"));
  assert_null(strstr(r.body, "fetch(\"http"));
  free(r.body);
  assert_int_equal(status_of("HEAD", j.port, "/metrics.json", NULL, NULL), 200);
  json_decref(get_json(j.port, "/config"));
  json_t *conf = get_json(j.port, "/jobmanager/config");
  assert_true(json_array_size(conf) >= 3);
  json_decref(conf);

  int port = j.port;
  assert_int_equal(job_stop(&j), FL_ECANCELED);
  /* the endpoint closes with the job */
  assert_true(status_of("GET", port, "/jobs", NULL, NULL) < 0);
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  assert_int_equal(system(cmd), 0);
}

static void backpressure_level_is_high_behind_a_slow_sink(void **state) {
  const char *kv[] = {"execution.batch-size", "64", "execution.channel-capacity", "4", NULL};
  job_t j;
  job_start(&j, kv, true);
  json_t *d;
  char path[256], vid[40];
  snprintf(path, sizeof path, "/jobs/%s", j.id);
  d = get_json(j.port, path);
  snprintf(
      vid, sizeof vid, "%s",
      json_string_value(json_object_get(json_array_get(json_object_get(d, "vertices"), 0), "id")));
  json_decref(d);
  snprintf(path, sizeof path, "/jobs/%s/vertices/%s/backpressure", j.id, vid);
  double deadline = mono_s() + 20 * timeout_scale(), ratio = 0;
  char level[16] = "";
  while (mono_s() < deadline) {
    json_t *bp = get_json(j.port, path);
    snprintf(level, sizeof level, "%s",
             json_string_value(json_object_get(bp, "backpressureLevel")));
    ratio = json_real_value(
        json_object_get(json_array_get(json_object_get(bp, "subtasks"), 0), "ratio"));
    json_decref(bp);
    if (!strcmp(level, "high")) break;
    pause_ms(100);
  }
  job_stop(&j);
  if (strcmp(level, "high")) fail_msg("level %s, ratio %.2f", level, ratio);
  assert_true(ratio > 0.5);
}

/* Opens n TCP connections to port and keeps them open; returns the fds. */
static int *open_many(int port, int n) {
  int *fds = calloc((size_t)n, sizeof *fds);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  for (int i = 0; i < n; i++) {
    fds[i] = socket(AF_INET, SOCK_STREAM, 0);
    if (connect(fds[i], (struct sockaddr *)&a, sizeof a) != 0) {
      close(fds[i]);
      fds[i] = -1;
    }
  }
  return fds;
}

static void bad_requests_get_their_status_and_leave_the_job_alone(void **state) {
  job_t j;
  job_start(&j, NULL, false);
  char path[256];
  reply_t r = http("GET", j.port, "/nope", NULL, NULL);
  assert_int_equal(r.status, 404);
  assert_non_null(strstr(r.body, "\"errors\""));
  free(r.body);
  assert_int_equal(status_of("GET", j.port, "/jobs/0123456789abcdef0123456789abcdef", NULL, NULL),
                   404);
  snprintf(path, sizeof path, "/jobs/%s/vertices/ffff/backpressure", j.id);
  assert_int_equal(status_of("GET", j.port, path, NULL, NULL), 404);
  r = http("DELETE", j.port, "/jobs", NULL, NULL);
  assert_int_equal(r.status, 405);
  assert_string_equal(r.allow, "GET, HEAD");
  free(r.body);
  assert_int_equal(status_of("POST", j.port, "/metrics", "{}", NULL), 405);
  assert_int_equal(status_of("PUT", j.port, "/", "x", NULL), 405);
  /* path traversal, raw and escaped */
  assert_int_equal(status_of("GET", j.port, "/../../etc/passwd", NULL, NULL), 400);
  assert_int_equal(status_of("GET", j.port, "/jobs/%2e%2e/%2e%2e/etc/passwd", NULL, NULL), 400);
  assert_int_equal(status_of("GET", j.port, "/jobs//x", NULL, NULL), 400);
  /* control calls are off by default */
  snprintf(path, sizeof path, "/jobs/%s?mode=cancel", j.id);
  assert_int_equal(status_of("PATCH", j.port, path, NULL, NULL), 403);
  snprintf(path, sizeof path, "/jobs/%s/savepoints", j.id);
  assert_int_equal(status_of("POST", j.port, path, "{\"target-directory\":\"/tmp/x\"}", NULL), 403);
  /* huge header, huge URL, huge body */
  char *big = malloc(64 * 1024);
  memset(big, 'a', 64 * 1024 - 1);
  big[64 * 1024 - 1] = 0;
  memcpy(big, "X-Big: ", 7);
  long st = status_of("GET", j.port, "/jobs", NULL, big);
  assert_true(st == 431 || st == 413);
  memset(big, 'a', 40000);
  big[0] = '/';
  big[40000] = 0;
  st = status_of("GET", j.port, big, NULL, NULL);
  assert_true(st == 414 || st == 431 || st == 400);
  memset(big, '1', 10000);
  memcpy(big, "[", 1);
  big[9998] = ']';
  big[9999] = 0;
  assert_int_equal(status_of("POST", j.port, path, big, NULL), 413);
  free(big);
  /* many connections at once: more than rest.max-connections; the job goes on */
  long before = atomic_load(&j.sunk);
  int *fds = open_many(j.port, 200);
  double deadline = mono_s() + 10 * timeout_scale();
  while (atomic_load(&j.sunk) < before + 2000 && mono_s() < deadline) pause_ms(10);
  assert_true(atomic_load(&j.sunk) >= before + 2000);
  for (int i = 0; i < 200; i++)
    if (fds[i] >= 0) close(fds[i]);
  free(fds);
  /* garbage instead of HTTP */
  int *g = open_many(j.port, 1);
  if (g[0] >= 0) {
    const char junk[] = "\x01\x02 NOT HTTP\r\n\r\n";
    assert_true(write(g[0], junk, sizeof junk - 1) > 0);
    char buf[256] = "";
    ssize_t n = read(g[0], buf, sizeof buf - 1);
    assert_true(n <= 0 || strstr(buf, " 400 ") != NULL);
    close(g[0]);
  }
  free(g);
  /* and still answers, the job still runs */
  deadline = mono_s() + 15 * timeout_scale();
  long s = -1;
  while (mono_s() < deadline && (s = status_of("GET", j.port, "/jobs/overview", NULL, NULL)) != 200)
    pause_ms(50);
  assert_int_equal(s, 200);
  assert_int_equal(fl_env_rest_port(j.env), j.port);
  assert_int_equal(job_stop(&j), FL_ECANCELED);
}

static void control_calls_savepoint_and_cancel(void **state) {
  char dir[] = "/tmp/fl-rest-sp-XXXXXX";
  assert_non_null(mkdtemp(dir));
  char ck[300], sp[300];
  snprintf(ck, sizeof ck, "%s/ckpt", dir);
  snprintf(sp, sizeof sp, "%s/sp-1", dir);
  const char *kv[] = {"rest.allow-control",
                      "true",
                      "state.checkpoints.dir",
                      ck,
                      "execution.checkpointing.interval",
                      "1h",
                      NULL};
  job_t j;
  job_start(&j, kv, false);
  char path[256], body[512];
  snprintf(path, sizeof path, "/jobs/%s/savepoints", j.id);
  assert_int_equal(status_of("POST", j.port, path, "{\"cancel-job\":false}", NULL), 400);
  snprintf(body, sizeof body, "{\"target-directory\":\"%s\"}", sp);
  reply_t r = http("POST", j.port, path, body, NULL);
  if (r.status != 202) fail_msg("POST %s %s: %ld %s", path, body, r.status, r.body);
  json_t *t = json_loads(r.body, 0, NULL);
  free(r.body);
  const char *req = json_string_value(json_object_get(t, "request-id"));
  assert_non_null(req);
  snprintf(path, sizeof path, "/jobs/%s/savepoints/%s", j.id, req);
  json_decref(t);
  json_t *s = get_json(j.port, path);
  assert_string_equal(json_string_value(json_object_get(json_object_get(s, "status"), "id")),
                      "COMPLETED");
  json_t *op = json_object_get(s, "operation");
  if (!json_object_get(op, "location")) fail_msg("savepoint failed: %s", json_dumps(op, 0));
  assert_string_equal(json_string_value(json_object_get(op, "location")), sp);
  json_decref(s);
  struct stat st;
  assert_int_equal(stat(sp, &st), 0);
  snprintf(path, sizeof path, "/jobs/%s?mode=stop-with-drain", j.id);
  assert_int_equal(status_of("PATCH", j.port, path, NULL, NULL), 400);
  snprintf(path, sizeof path, "/jobs/%s?mode=cancel", j.id);
  assert_int_equal(status_of("PATCH", j.port, path, NULL, NULL), 202);
  assert_int_equal(bg_job_join(&j.run), FL_ECANCELED);
  fl_env_destroy(j.env);
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  assert_int_equal(system(cmd), 0);
}

static void prometheus_listener_serves_metrics_only(void **state) {
  const char *kv[] = {"metrics.reporter.prom.port", "0", NULL};
  job_t j;
  job_start(&j, kv, false);
  /* the listeners start one after the other: the REST one job_start waited for first */
  double deadline = mono_s() + 10 * timeout_scale();
  int pp;
  while ((pp = fl_env_prometheus_port(j.env)) <= 0 && mono_s() < deadline) pause_ms(5);
  assert_true(pp > 0 && pp != j.port);
  assert_int_equal(status_of("GET", pp, "/metrics", NULL, NULL), 200);
  assert_int_equal(status_of("GET", pp, "/jobs", NULL, NULL), 404);
  assert_int_equal(status_of("GET", pp, "/", NULL, NULL), 404);
  job_stop(&j);
}

static void endpoint_errors_fail_execute_with_the_cause(void **state) {
  /* a port already taken */
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
  assert_int_equal(listen(fd, 1), 0);
  socklen_t al = sizeof a;
  getsockname(fd, (struct sockaddr *)&a, &al);
  char port[16];
  snprintf(port, sizeof port, "%d", ntohs(a.sin_port));
  for (int k = 0; k < 2; k++) {
    const char *kv[] = {"rest.port", k ? "0" : port, k ? "rest.address" : NULL, "256.1.1.1", NULL};
    fl_env_t *env = env_of(kv);
    fl_record_t recs[] = {rec_str("k", "v", 1)};
    fl_sink_fn_t sink = {.version = FL_SINK_FN_VERSION, .write = count_sink};
    job_t j = {0};
    fl_stream_sink(fl_source_collection(env, "src", recs, 1), "sink", &sink, &j);
    assert_true(fl_env_execute(env, "x") < 0);
    assert_non_null(strstr(fl_env_error(env), k ? "256.1.1.1" : port));
    assert_int_equal(atomic_load(&j.sunk), 0);
    fl_env_destroy(env);
  }
  close(fd);
  char err[256];
  fl_config_t *c = fl_config_new();
  assert_int_equal(fl_config_set(c, "rest.port", "65536", err, sizeof err), FL_ECONFIG);
  assert_int_equal(fl_config_set(c, "rest.allow-control", "yes", err, sizeof err), FL_ECONFIG);
  fl_config_destroy(c);
}

static void secret_looking_keys_are_never_shown(void **state) {
  assert_true(fl_rest_secret_key("sasl.password"));
  assert_true(fl_rest_secret_key("sasl.username"));
  assert_true(fl_rest_secret_key("ssl.key.password"));
  assert_true(fl_rest_secret_key("ssl.keystore.location"));
  assert_true(fl_rest_secret_key("my.Secret.thing"));
  assert_true(fl_rest_secret_key("db.PASSWORD"));
  assert_false(fl_rest_secret_key("parallelism"));
  assert_false(fl_rest_secret_key("ssl.endpoint.identification.algorithm"));
  assert_false(fl_rest_secret_key("rest.port"));
}

int main(void) {
  curl_global_init(CURL_GLOBAL_DEFAULT);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(rest_api_answers_with_flinks_fields),
      cmocka_unit_test(backpressure_level_is_high_behind_a_slow_sink),
      cmocka_unit_test(bad_requests_get_their_status_and_leave_the_job_alone),
      cmocka_unit_test(control_calls_savepoint_and_cancel),
      cmocka_unit_test(prometheus_listener_serves_metrics_only),
      cmocka_unit_test(endpoint_errors_fail_execute_with_the_cause),
      cmocka_unit_test(secret_looking_keys_are_never_shown),
  };
  int rc = cmocka_run_group_tests(tests, NULL, NULL);
  curl_global_cleanup();
  return rc;
}
