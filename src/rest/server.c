/*
 * The HTTP endpoint (libmicrohttpd): started by fl_env_execute through env->services
 * when rest.port or metrics.reporter.prom.port is set, stopped when execute returns.
 *
 *   GET  /                     the dashboard (one compiled-in page, no external files)
 *   GET  /metrics              Prometheus text format 0.0.4 (prom.c)
 *   GET  /metrics.json         fl_env_metrics_json()
 *   GET  /config, /jobs, /jobs/overview, /jobs/{id}, ...   Flink's REST API (api.c)
 *   POST /jobs/{id}/savepoints {"target-directory": dir}   with rest.allow-control
 *   GET  /jobs/{id}/savepoints/{request-id}                the savepoint's outcome
 *   PATCH /jobs/{id}?mode=cancel                            with rest.allow-control
 *
 * Secure by default: it listens on rest.address (127.0.0.1), answers control calls only
 * when rest.allow-control is true (403 otherwise), bounds request headers (16 KiB: 431
 * or 414 beyond), bodies (4 KiB: 413), connections (rest.max-connections, more are
 * closed at once) and their idle time (10 s). The prom listener answers /metrics only.
 * A thread per connection serves requests; they only read the job's metrics, so a
 * client cannot slow the job beyond the CPU it takes.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <jansson.h>
#include <microhttpd.h>
#include <netdb.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rest/rest.h"

#define MAX_BODY 4096
#define HEADER_MEMORY (16 * 1024)
#define IDLE_TIMEOUT_S 10
#define MAX_SAVEPOINTS 16

typedef struct savepoint_req {
  char id[33];
  int rc; /* 0 done, else failed */
  char location[512];
  char error[512];
} savepoint_req_t;

typedef struct server server_t;

typedef struct listener {
  server_t *srv;
  bool prom_only;
} listener_t;

struct server {
  fl_env_t *env;
  struct MHD_Daemon *rest, *prom;
  listener_t lis[2];  /* rest, prom */
  pthread_mutex_t mu; /* savepoint requests */
  savepoint_req_t sp[MAX_SAVEPOINTS];
  unsigned n_sp;
};

/* What one request accumulates until its last call. */
typedef struct request {
  char body[MAX_BODY + 1];
  size_t len;
  bool too_large;
} request_t;

static enum MHD_Result respond(struct MHD_Connection *c, int status, const char *type,
                               fl_buf_t *body, const char *allow) {
  struct MHD_Response *r;
  if (body && body->len) {
    r = MHD_create_response_from_buffer(body->len, body->data, MHD_RESPMEM_MUST_FREE);
    if (r) fl_buf_init(body); /* MHD frees it now */
  } else {
    r = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
  }
  if (body) fl_buf_free(body);
  if (!r) return MHD_NO;
  MHD_add_response_header(r, "Content-Type", type);
  MHD_add_response_header(r, "Cache-Control", "no-store");
  MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
  if (allow) MHD_add_response_header(r, "Allow", allow);
  enum MHD_Result ret = MHD_queue_response(c, (unsigned)status, r);
  MHD_destroy_response(r);
  return ret;
}

#define JSON_TYPE "application/json; charset=utf-8"

static enum MHD_Result respond_error(struct MHD_Connection *c, int status, const char *msg,
                                     const char *allow) {
  fl_buf_t b;
  fl_buf_init(&b);
  if (!fl_rest_error(&b, msg)) {
    fl_buf_free(&b);
    return MHD_NO;
  }
  return respond(c, status, JSON_TYPE, &b, allow);
}

/* A path is plain ASCII without "." or ".." segments, backslashes or empty segments
 * (nothing is served from files, but such a path is never a valid request). */
static bool path_ok(const char *url) {
  if (url[0] != '/' || strlen(url) > 1024) return false;
  for (const char *p = url; *p; p++) {
    unsigned char ch = (unsigned char)*p;
    if (ch < 0x21 || ch > 0x7e || ch == '\\') return false;
    if (*p == '/' && p[1] == '/') return false;
    if (*p == '/' && p[1] == '.' &&
        (p[2] == '/' || !p[2] || (p[2] == '.' && (p[3] == '/' || !p[3]))))
      return false;
  }
  return true;
}

/* "/jobs/<id><rest>": whether url names this job, and where the rest starts. */
static const char *job_path(const server_t *s, const char *url) {
  size_t n = strlen(s->env->job_id);
  if (strncmp(url, "/jobs/", 6) != 0 || strncmp(url + 6, s->env->job_id, n) != 0) return NULL;
  return url + 6 + n;
}

/* ---------------------------------------------------------------------------------- */
/* Control calls                                                                        */

static enum MHD_Result trigger_savepoint(server_t *s, struct MHD_Connection *c,
                                         const request_t *req) {
  json_error_t jerr;
  json_t *body = json_loadb(req->body, req->len, 0, &jerr);
  const char *dir = body ? json_string_value(json_object_get(body, "target-directory")) : NULL;
  if (!dir || !*dir) {
    json_decref(body);
    return respond_error(c, 400, "the body must be JSON with a \"target-directory\"", NULL);
  }
  savepoint_req_t r;
  memset(&r, 0, sizeof r);
  static _Atomic unsigned seq;
  snprintf(r.id, sizeof r.id, "%.16s%08x%08x", s->env->job_id, (unsigned)atomic_fetch_add(&seq, 1),
           (unsigned)(uintptr_t)c);
  snprintf(r.location, sizeof r.location, "%s", dir);
  json_decref(body);
  /* Savepoints are synchronous here: the response comes when it ended. */
  r.rc = fl_env_savepoint(s->env, r.location, r.error, sizeof r.error);
  pthread_mutex_lock(&s->mu);
  s->sp[s->n_sp++ % MAX_SAVEPOINTS] = r;
  pthread_mutex_unlock(&s->mu);
  fl_buf_t b;
  fl_buf_init(&b);
  if (!fl_rest_printf(&b, "{\"request-id\":\"%s\"}", r.id)) {
    fl_buf_free(&b);
    return MHD_NO;
  }
  return respond(c, 202, JSON_TYPE, &b, NULL);
}

static enum MHD_Result savepoint_status(server_t *s, struct MHD_Connection *c, const char *id) {
  savepoint_req_t r;
  bool found = false;
  pthread_mutex_lock(&s->mu);
  for (unsigned i = 0; i < MAX_SAVEPOINTS && i < s->n_sp && !found; i++)
    if (strcmp(s->sp[i].id, id) == 0) r = s->sp[i], found = true;
  pthread_mutex_unlock(&s->mu);
  if (!found) return respond_error(c, 404, "Unknown savepoint request", NULL);
  fl_buf_t b;
  fl_buf_init(&b);
  bool ok = fl_rest_printf(&b, "{\"status\":{\"id\":\"COMPLETED\"},\"operation\":{");
  if (r.rc == 0)
    ok = ok && fl_rest_printf(&b, "\"location\":") && fl_rest_json_str(&b, r.location);
  else
    ok = ok &&
         fl_rest_printf(
             &b, "\"failure-cause\":{\"class\":\"%s\",\"stack-trace\":", fl_err_name(r.rc)) &&
         fl_rest_json_str(&b, r.error) && fl_rest_printf(&b, "}");
  ok = ok && fl_rest_printf(&b, "}}");
  if (!ok) {
    fl_buf_free(&b);
    return MHD_NO;
  }
  return respond(c, 200, JSON_TYPE, &b, NULL);
}

/* ---------------------------------------------------------------------------------- */
/* Routing                                                                              */

static enum MHD_Result route(listener_t *l, struct MHD_Connection *c, const char *url,
                             const char *method, request_t *req) {
  server_t *s = l->srv;
  fl_env_t *env = s->env;
  bool get = !strcmp(method, "GET") || !strcmp(method, "HEAD");
  if (!path_ok(url)) return respond_error(c, 400, "Bad request path", NULL);
  if (req->too_large) return respond_error(c, 413, "Request body too large", NULL);
  if (!strcmp(url, "/metrics")) {
    if (!get) return respond_error(c, 405, "Method not allowed", "GET, HEAD");
    fl_buf_t b;
    fl_buf_init(&b);
    if (!fl_rest_prometheus(env, &b)) {
      fl_buf_free(&b);
      return respond_error(c, 500, "out of memory", NULL);
    }
    return respond(c, 200, "text/plain; version=0.0.4; charset=utf-8", &b, NULL);
  }
  if (l->prom_only) return respond_error(c, 404, "Not found", NULL);
  if (!strcmp(url, "/") || !strcmp(url, "/index.html")) {
    if (!get) return respond_error(c, 405, "Method not allowed", "GET, HEAD");
    struct MHD_Response *r = MHD_create_response_from_buffer(
        fl_rest_dashboard_html_len, (void *)fl_rest_dashboard_html, MHD_RESPMEM_PERSISTENT);
    if (!r) return MHD_NO;
    MHD_add_response_header(r, "Content-Type", "text/html; charset=utf-8");
    MHD_add_response_header(r, "Cache-Control", "no-store");
    MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header(r, "Content-Security-Policy",
                            "default-src 'self'; script-src 'unsafe-inline'; style-src "
                            "'unsafe-inline'; connect-src 'self'; img-src 'self' data:");
    enum MHD_Result ret = MHD_queue_response(c, 200, r);
    MHD_destroy_response(r);
    return ret;
  }
  if (!strcmp(url, "/metrics.json")) {
    if (!get) return respond_error(c, 405, "Method not allowed", "GET, HEAD");
    char *js = fl_env_metrics_json(env);
    if (!js) return respond_error(c, 500, "out of memory", NULL);
    fl_buf_t b = {(uint8_t *)js, strlen(js), strlen(js) + 1};
    return respond(c, 200, JSON_TYPE, &b, NULL);
  }
  const char *rest = job_path(s, url);
  if (rest && (!strcmp(rest, "") || !strcmp(rest, "/savepoints")) && !get) {
    bool patch = !strcmp(rest, "") && !strcmp(method, "PATCH");
    bool post = !strcmp(rest, "/savepoints") && !strcmp(method, "POST");
    if (!patch && !post)
      return respond_error(c, 405, "Method not allowed",
                           !strcmp(rest, "") ? "GET, HEAD, PATCH" : "POST");
    if (!env->conf.rest_allow_control)
      return respond_error(c, 403, "control calls are off: set rest.allow-control=true", NULL);
    if (post) return trigger_savepoint(s, c, req);
    const char *mode = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "mode");
    if (mode && strcmp(mode, "cancel") != 0)
      return respond_error(c, 400, "mode must be \"cancel\"", NULL);
    fl_env_stop(env);
    fl_buf_t b;
    fl_buf_init(&b);
    if (!fl_rest_printf(&b, "{}")) return MHD_NO;
    return respond(c, 202, JSON_TYPE, &b, NULL);
  }
  if (!get) return respond_error(c, 405, "Method not allowed", "GET, HEAD");
  if (rest && !strncmp(rest, "/savepoints/", 12)) return savepoint_status(s, c, rest + 12);
  fl_buf_t b;
  fl_buf_init(&b);
  int status = 200;
  const char *qget = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "get");
  if (!fl_rest_api_get(env, url, qget, &status, &b)) {
    fl_buf_free(&b);
    return respond_error(c, 500, "out of memory", NULL);
  }
  return respond(c, status, JSON_TYPE, &b, NULL);
}

static enum MHD_Result handler(void *cls, struct MHD_Connection *c, const char *url,
                               const char *method, const char *version, const char *upload,
                               size_t *upload_size, void **con_cls) {
  (void)version;
  listener_t *l = cls;
  request_t *req = *con_cls;
  if (!req) {
    req = calloc(1, sizeof *req);
    if (!req) return MHD_NO;
    *con_cls = req;
    return MHD_YES;
  }
  if (*upload_size) {
    if (req->len + *upload_size > MAX_BODY) {
      req->too_large = true;
    } else {
      memcpy(req->body + req->len, upload, *upload_size);
      req->len += *upload_size;
    }
    *upload_size = 0;
    return MHD_YES;
  }
  return route(l, c, url, method, req);
}

static void completed(void *cls, struct MHD_Connection *c, void **con_cls,
                      enum MHD_RequestTerminationCode toe) {
  (void)cls, (void)c, (void)toe;
  free(*con_cls);
  *con_cls = NULL;
}

static void mhd_log(void *cls, const char *fmt, va_list ap) {
  char line[512];
  vsnprintf(line, sizeof line, fmt, ap);
  size_t n = strlen(line);
  while (n && (line[n - 1] == '\n' || line[n - 1] == '\r')) line[--n] = '\0';
  fl_env_log(cls, FL_LOG_WARN, "HTTP endpoint: %s", line);
}

/* ---------------------------------------------------------------------------------- */
/* Start and stop                                                                       */

static struct MHD_Daemon *listen_on(server_t *s, listener_t *l, int port, int *bound, char *err,
                                    size_t size) {
  fl_env_t *env = s->env;
  const char *addr =
      env->conf.rest_address && *env->conf.rest_address ? env->conf.rest_address : "127.0.0.1";
  struct addrinfo hints = {
      .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
  struct addrinfo *ai = NULL;
  char portstr[16];
  snprintf(portstr, sizeof portstr, "%d", port);
  int g = getaddrinfo(addr, portstr, &hints, &ai);
  if (g != 0 || !ai) {
    snprintf(err, size, "rest.address \"%s\": %s", addr, gai_strerror(g));
    return NULL;
  }
  unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD |
                   MHD_USE_ERROR_LOG | (ai->ai_family == AF_INET6 ? MHD_USE_IPv6 : 0);
  struct MHD_Daemon *d =
      MHD_start_daemon(flags, (uint16_t)port, NULL, NULL, handler, l, MHD_OPTION_EXTERNAL_LOGGER,
                       mhd_log, env, MHD_OPTION_SOCK_ADDR, ai->ai_addr, MHD_OPTION_CONNECTION_LIMIT,
                       (unsigned)env->conf.rest_max_connections, MHD_OPTION_CONNECTION_MEMORY_LIMIT,
                       (size_t)HEADER_MEMORY, MHD_OPTION_CONNECTION_TIMEOUT,
                       (unsigned)IDLE_TIMEOUT_S, MHD_OPTION_NOTIFY_COMPLETED, completed, NULL,
                       MHD_OPTION_THREAD_STACK_SIZE, (size_t)(256 << 10), MHD_OPTION_END);
  freeaddrinfo(ai);
  if (!d) {
    snprintf(err, size, "cannot listen on %s port %d (in use, or not an address of this host?)",
             addr, port);
    return NULL;
  }
  const union MHD_DaemonInfo *info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
  *bound = info ? info->port : port;
  fl_env_log(env, FL_LOG_INFO, "%s listening on http://%s%s%s:%d/%s",
             l->prom_only ? "Prometheus endpoint" : "REST endpoint and dashboard",
             strchr(addr, ':') ? "[" : "", addr, strchr(addr, ':') ? "]" : "", *bound,
             l->prom_only ? "metrics" : "");
  return d;
}

static int rest_start(fl_env_t *env, char *err, size_t size) {
  if (env->conf.rest_port < 0 && env->conf.prom_port < 0) return FL_OK;
  server_t *s = calloc(1, sizeof *s);
  if (!s) return FL_ENOMEM;
  s->env = env;
  pthread_mutex_init(&s->mu, NULL);
  listener_t *l = s->lis;
  l[0] = (listener_t){s, false};
  l[1] = (listener_t){s, true};
  int bound = 0;
  if (env->conf.rest_port >= 0) {
    s->rest = listen_on(s, &l[0], env->conf.rest_port, &bound, err, size);
    if (!s->rest) goto fail;
    atomic_store(&env->rest_bound_port, bound);
  }
  if (env->conf.prom_port >= 0) {
    s->prom = listen_on(s, &l[1], env->conf.prom_port, &bound, err, size);
    if (!s->prom) goto fail;
    atomic_store(&env->prom_bound_port, bound);
  }
  env->services_state = s;
  return FL_OK;
fail:
  if (s->rest) MHD_stop_daemon(s->rest);
  if (s->prom) MHD_stop_daemon(s->prom);
  atomic_store(&env->rest_bound_port, 0);
  atomic_store(&env->prom_bound_port, 0);
  pthread_mutex_destroy(&s->mu);
  free(s);
  return FL_ESYS;
}

static void rest_stop(fl_env_t *env) {
  server_t *s = env->services_state;
  if (!s) return;
  atomic_store(&env->rest_bound_port, 0);
  atomic_store(&env->prom_bound_port, 0);
  if (s->rest) MHD_stop_daemon(s->rest);
  if (s->prom) MHD_stop_daemon(s->prom);
  pthread_mutex_destroy(&s->mu);
  free(s);
  env->services_state = NULL;
}

const fl_env_services_t fl_rest_services = {rest_start, rest_stop};

int fl_env_rest_port(fl_env_t *env) {
  if (!env) return FL_EINVAL;
  int p = atomic_load(&env->rest_bound_port);
  return p > 0 ? p : FL_ENOTFOUND;
}

int fl_env_prometheus_port(fl_env_t *env) {
  if (!env) return FL_EINVAL;
  int p = atomic_load(&env->prom_bound_port);
  return p > 0 ? p : FL_ENOTFOUND;
}
