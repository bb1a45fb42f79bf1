/* Helpers shared by the tests that run jobs (fl_test_util.h). */
#include <setjmp.h>
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "fl_test_util.h"

void collector_init(collector_t *c) {
  memset(c, 0, sizeof *c);
  pthread_mutex_init(&c->mu, NULL);
}

void collector_free(collector_t *c) {
  for (size_t i = 0; i < c->n; i++) {
    free(c->r[i].key);
    free(c->r[i].value);
  }
  free(c->r);
  pthread_mutex_destroy(&c->mu);
}

static char *copy_bytes(const void *p, size_t n) {
  char *s = malloc(n + 1);
  if (s && n) memcpy(s, p, n);
  if (s) s[n] = 0;
  return s;
}

int collector_write(fl_context_t *ctx, const fl_record_t *in, void *inst) {
  collector_t *c = inst;
  int rc = FL_OK;
  pthread_mutex_lock(&c->mu);
  if (c->n == c->cap) {
    size_t cap = c->cap ? c->cap * 2 : 64;
    col_rec_t *r = realloc(c->r, cap * sizeof *r);
    if (!r) {
      rc = FL_ENOMEM;
      goto done;
    }
    c->r = r;
    c->cap = cap;
  }
  col_rec_t *r = &c->r[c->n];
  r->key = copy_bytes(in->key, in->key_len);
  r->value = copy_bytes(in->value, in->value_len);
  if (!r->key || !r->value) {
    free(r->key);
    free(r->value);
    rc = FL_ENOMEM;
    goto done;
  }
  r->key_len = in->key_len;
  r->value_len = in->value_len;
  r->ts = in->timestamp;
  r->subtask = ctx ? fl_ctx_subtask(ctx) : 0;
  c->n++;
done:
  pthread_mutex_unlock(&c->mu);
  return rc;
}

const fl_sink_fn_t collector_sink = {.version = FL_SINK_FN_VERSION, .write = collector_write};

static int bytes_cmp(const char *a, size_t al, const char *b, size_t bl) {
  int c = memcmp(a, b, al < bl ? al : bl);
  return c ? c : (al > bl) - (al < bl);
}

int col_rec_compare(const col_rec_t *a, const col_rec_t *b) {
  if (a->ts != b->ts) return a->ts < b->ts ? -1 : 1;
  int c = bytes_cmp(a->key, a->key_len, b->key, b->key_len);
  return c ? c : bytes_cmp(a->value, a->value_len, b->value, b->value_len);
}

static int col_rec_cmp(const void *a, const void *b) { return col_rec_compare(a, b); }

void collector_sort(collector_t *c) {
  if (c->n) qsort(c->r, c->n, sizeof *c->r, col_rec_cmp);
}

void sink_into(fl_stream_t *s, collector_t *c) {
  collector_init(c);
  assert_int_equal(fl_stream_sink(s, "collect", &collector_sink, c), FL_OK);
}

void execute_ok(fl_env_t *env, const char *job) {
  int rc = fl_env_execute(env, job);
  if (rc != FL_OK) fail_msg("job %s failed (%d): %s", job, rc, fl_env_error(env));
}

void execute_fails(fl_env_t *env, const char *job, int code, const char *needle) {
  assert_int_equal(fl_env_execute(env, job), code);
  const char *msg = fl_env_error(env);
  if (!strstr(msg, needle))
    fail_msg("job %s: the error \"%s\" does not name \"%s\"", job, msg, needle);
}

json_t *metrics_of(fl_env_t *env) {
  char *js = fl_env_metrics_json(env);
  assert_non_null(js);
  json_error_t jerr;
  json_t *root = json_loads(js, 0, &jerr);
  if (!root) fail_msg("metrics are not JSON: %s", jerr.text);
  fl_free(js);
  return root;
}

int64_t op_metric(fl_env_t *env, const char *op, const char *metric) {
  json_t *root = metrics_of(env);
  json_t *o = metrics_op(root, op);
  if (!o) fail_msg("no operator '%s' in the metrics", op);
  json_t *v = json_object_get(o, metric);
  if (!json_is_integer(v)) fail_msg("operator '%s' has no integer metric '%s'", op, metric);
  int64_t n = (int64_t)json_integer_value(v);
  json_decref(root);
  return n;
}

json_t *metrics_op(json_t *root, const char *name) {
  json_t *ops = json_object_get(root, "operators");
  assert_true(json_is_array(ops));
  for (size_t i = 0; i < json_array_size(ops); i++) {
    json_t *op = json_array_get(ops, i);
    const char *n = json_string_value(json_object_get(op, "name"));
    if (n && strcmp(n, name) == 0) return op;
  }
  return NULL;
}

fl_record_t *int_records(const char *key, int first, int n) {
  enum {
    W = 16 /* bytes per value */
  };
  fl_record_t *r = malloc((size_t)n * (sizeof *r + W));
  assert_non_null(r);
  char *vals = (char *)(r + n);
  for (int i = 0; i < n; i++) {
    snprintf(vals + (size_t)i * W, W, "%d", first + i);
    r[i] = rec_str(key, vals + (size_t)i * W, i);
  }
  return r;
}

double timeout_scale(void) {
  const char *s = getenv("FL_TEST_TIMEOUT_SCALE");
  double v = s ? atof(s) : 1.0;
  return v > 0 ? v : 1.0;
}

fl_env_t *env_with(int parallelism, const char *wm_interval) {
  fl_config_t *c = fl_config_new();
  char p[16];
  snprintf(p, sizeof p, "%d", parallelism);
  char err[256];
  fl_config_set(c, "parallelism", p, err, sizeof err);
  if (wm_interval)
    fl_config_set(c, "pipeline.auto-watermark-interval", wm_interval, err, sizeof err);
  fl_env_t *env = NULL;
  fl_env_new(&env, c, err, sizeof err);
  fl_config_destroy(c);
  return env;
}

fl_env_t *env_try(const char *const *kv, char *err, size_t n) {
  fl_config_t *c = fl_config_new();
  fl_env_t *env = NULL;
  for (size_t i = 0; kv && kv[i]; i += 2) {
    if (fl_config_set(c, kv[i], kv[i + 1], err, n)) goto done;
  }
  fl_env_new(&env, c, err, n);
done:
  fl_config_destroy(c);
  return env;
}

fl_env_t *env_of(const char *const *kv) {
  char err[512];
  fl_env_t *env = env_try(kv, err, sizeof err);
  if (!env) fail_msg("environment: %s", err);
  return env;
}

static void *bg_job_main(void *arg) {
  bg_job_t *j = arg;
  j->rc = fl_env_execute(j->env, j->name);
  snprintf(j->err, sizeof j->err, "%s", fl_env_error(j->env));
  atomic_store(&j->done, 1);
  return NULL;
}

void bg_job_start(bg_job_t *j, fl_env_t *env, const char *name) {
  memset(j, 0, sizeof *j);
  j->env = env;
  j->name = name;
  assert_int_equal(pthread_create(&j->thread, NULL, bg_job_main, j), 0);
}

int bg_job_join(bg_job_t *j) {
  pthread_join(j->thread, NULL);
  return j->rc;
}

void argv_append(char **argv, int *n, int cap, va_list ap) {
  for (char *a; (a = va_arg(ap, char *)) != NULL;) {
    if (*n >= cap - 1) fail_msg("more than %d arguments", cap - 1);
    argv[(*n)++] = a;
  }
  argv[*n] = NULL;
}

double mono_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int64_t mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

_Atomic int64_t g_manual_ms, g_tick_ms;

int64_t manual_clock(void *opaque) {
  (void)opaque;
  return atomic_load(&g_manual_ms);
}

int64_t ticking_clock(void *opaque) {
  (void)opaque;
  return atomic_fetch_add(&g_tick_ms, 1);
}

void pause_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {}
}

int emitf(fl_context_t *ctx, int64_t ts, const char *fmt, ...) {
  char out[512];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(out, sizeof out, fmt, ap);
  va_end(ap);
  if (n < 0 || (size_t)n >= sizeof out) return fl_ctx_fail(ctx, "emitf: '%s' is too long", out);
  size_t kl;
  const void *key = fl_ctx_key(ctx, &kl);
  return fl_emit(ctx, key, kl, out, (size_t)n, ts);
}

int concat_reduce(fl_context_t *ctx, const void *a, size_t a_len, const void *b, size_t b_len,
                  fl_buf_t *out, void *opaque) {
  (void)ctx;
  (void)opaque;
  int rc = fl_buf_set(out, a, a_len);
  return rc ? rc : fl_buf_append(out, b, b_len);
}

/* The samples of metric in text whose labels contain has (NULL: all): the first one's
 * value, or with sum the sum of all; NAN when there is none. */
static double prom_scan(const char *text, const char *metric, const char *has, bool sum) {
  size_t ml = strlen(metric);
  double total = 0;
  bool any = false;
  for (const char *line = text; line && *line;) {
    const char *end = strchr(line, '\n');
    size_t len = end ? (size_t)(end - line) : strlen(line);
    const char *close = memchr(line, '}', len);
    if (len > ml && !strncmp(line, metric, ml) && line[ml] == '{' && close) {
      char labels[4096];
      size_t n = (size_t)(close - line) < sizeof labels - 1 ? (size_t)(close - line) : 0;
      memcpy(labels, line, n);
      labels[n] = 0;
      if (!has || strstr(labels, has)) {
        double v = strtod(close + 1, NULL);
        if (!sum) return v;
        total += v;
        any = true;
      }
    }
    line = end ? end + 1 : NULL;
  }
  return any ? total : NAN;
}

double prom_sample(const char *text, const char *metric, const char *has) {
  return prom_scan(text, metric, has, false);
}

double prom_sum(const char *text, const char *metric) {
  return prom_scan(text, metric, NULL, true);
}

size_t paced_budget(size_t budget, double rate_per_ms, double *t0_ms, int64_t emitted) {
  double now = mono_s() * 1000;
  if (*t0_ms == 0) *t0_ms = now;
  double allowed = (now - *t0_ms) * rate_per_ms - (double)emitted;
  if (allowed < 1) return 0;
  return (double)budget > allowed ? (size_t)allowed : budget;
}

void log_buf_collect(fl_log_level_t level, const char *line, void *opaque) {
  static const char *const names[] = {"ERROR", "WARN", "INFO"};
  log_buf_t *l = opaque;
  size_t n = strlen(line) + 16;
  pthread_mutex_lock(&l->mu);
  char *text = realloc(l->text, l->len + n);
  if (text) {
    l->text = text;
    l->len += (size_t)snprintf(text + l->len, n, "%s %s\n", names[level], line);
  }
  pthread_mutex_unlock(&l->mu);
}

void log_buf_attach(log_buf_t *l, fl_env_t *env) {
  log_buf_free(l);
  assert_int_equal(fl_env_set_log(env, log_buf_collect, l), 0);
}

bool log_buf_has(log_buf_t *l, const char *a, const char *b) {
  pthread_mutex_lock(&l->mu);
  const char *at = l->text ? strstr(l->text, a) : NULL;
  bool yes = at && (!b || strstr(at, b));
  pthread_mutex_unlock(&l->mu);
  return yes;
}

bool log_buf_wait(log_buf_t *l, const char *a, const char *b, int64_t base_ms) {
  int64_t deadline = deadline_in(base_ms);
  for (;;) {
    if (log_buf_has(l, a, b)) return true;
    if (mono_ms() >= deadline) return false;
    pause_ms(5); /* polling the log, not waiting for work to happen */
  }
}

const char *log_buf_text(const log_buf_t *l) { return l->text ? l->text : ""; }

void log_buf_free(log_buf_t *l) {
  free(l->text);
  l->text = NULL;
  l->len = 0;
}

int complete_checkpoints(const char *root, int64_t *newest) {
  DIR *d = opendir(root);
  int n = 0;
  int64_t max = 0;
  struct dirent *e;
  while (d && (e = readdir(d))) {
    if (strncmp(e->d_name, "chk-", 4) != 0) continue;
    char p[4400];
    snprintf(p, sizeof p, "%s/%s/_manifest", root, e->d_name);
    if (access(p, F_OK) != 0) continue;
    n++;
    int64_t id = strtoll(e->d_name + 4, NULL, 10);
    if (id > max) max = id;
  }
  if (d) closedir(d);
  if (newest) *newest = max;
  return n;
}
