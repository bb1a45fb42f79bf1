/*
 * examples/feature_pipeline end to end, with a SIGKILL in the middle.
 *
 * The test process holds a mock Kafka cluster (librdkafka's, in-process) that outlives
 * the job. Children run examples/feature_pipeline against it: a generator
 * (--generate-only), the job (--no-generate) which is SIGKILLed once it has completed
 * two checkpoints, and the job again (--bounded, same checkpoint directory), which
 * resumes from the newest complete checkpoint (state.checkpoints.restore-latest) and
 * ends at the end of the input, closing every window and session.
 *
 * Then everything is read back: raw.events as the truth, and every record of
 * features.user, features.user_session, features.user_5min_spend and events.late that
 * belongs to a committed transaction (the mock does not filter aborted transactions
 * for read_committed consumers, so the test keeps the records whose fl.txn tag the
 * sink's transaction logs show committed, as tests/test_kafka_sink.c does). They are
 * compared with an independent computation over raw.events written here with plain
 * loops from the definitions in docs/feature-pipeline.md (nothing of the example's code
 * is used): nothing missing, nothing twice, every value equal; floating-point features
 * (printed with 4 decimals) within 1e-4 + 1e-9 x the value. events.dlq must hold every
 * malformed line, at least once (dead letters are produced outside the transactions).
 */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "fl_test_util.h"
#include "kafka_read_util.h"
#include "run_util.h"

#define RATE "1500"
#define SECONDS "8"
#define USERS "2000"
#define TIME_SCALE "600" /* 8 s of wall time are 80 minutes of event time */

#define GAP_MS (30 * 60 * 1000LL)
#define WINDOW_MS (5 * 60 * 1000LL)
#define LATENESS_MS 30000LL
#define OOO_MS 3000LL
#define TOL_ABS 1e-4
#define TOL_REL 1e-9

static const char *const TYPES[5] = {"view", "add_to_cart", "remove_from_cart", "checkout",
                                     "purchase"};

static char g_dir[] = "/tmp/fl_test_feature_pipeline_XXXXXX";
static rd_kafka_t *g_rk;
static rd_kafka_mock_cluster_t *g_mc;
static char g_brokers[512];

/* ---------------------------------------------------------------------------------- */
/* Time and children                                                                  */

/* Starts the example with the given arguments; its output goes to <dir>/<log>. */
static pid_t start(const char *log, ...) {
  char prog[4096], path[4300];
  const char *bd = getenv("FL_BUILD_DIR");
  snprintf(prog, sizeof prog, "%s/examples/feature_pipeline", bd && *bd ? bd : ".");
  if (access(prog, X_OK) != 0) fail_msg("%s is not built", prog);
  char *argv[48];
  int argc = 0;
  argv[argc++] = prog;
  va_list ap;
  va_start(ap, log);
  argv_append(argv, &argc, 48, ap);
  va_end(ap);
  snprintf(path, sizeof path, "%s/%s", g_dir, log);
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  assert_true(fd >= 0);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    /* only async-signal-safe calls: this process has librdkafka's threads */
    dup2(fd, STDOUT_FILENO);
    dup2(fd, STDERR_FILENO);
    execv(prog, argv);
    _exit(127);
  }
  close(fd);
  return pid;
}

/* Whether log (in g_dir) has a line containing text. */
static bool log_has(const char *log, const char *text) {
  char path[4300], line[1024];
  snprintf(path, sizeof path, "%s/%s", g_dir, log);
  FILE *f = fopen(path, "r");
  bool found = false;
  while (f && !found && fgets(line, sizeof line, f)) found = strstr(line, text) != NULL;
  if (f) fclose(f);
  return found;
}

/* The first line of log that holds text, in line (NUL-terminated); false if none. */
static bool log_line(const char *log, const char *text, char *line, size_t n) {
  char path[4300];
  snprintf(path, sizeof path, "%s/%s", g_dir, log);
  FILE *f = fopen(path, "r");
  bool found = false;
  while (f && !found && fgets(line, (int)n, f)) found = strstr(line, text) != NULL;
  if (f) fclose(f);
  return found;
}

static void show_log(const char *log) {
  char path[4300], line[1024];
  snprintf(path, sizeof path, "%s/%s", g_dir, log);
  FILE *f = fopen(path, "r");
  if (!f) return;
  fprintf(stderr, "---- %s ----\n", log);
  while (fgets(line, sizeof line, f)) fputs(line, stderr);
  fclose(f);
}

/* Waits for the child's exit before the deadline; returns its wait status, -1 on
 * timeout (then it is killed). */
static int wait_child(pid_t pid, int64_t deadline) {
  int status;
  for (;;) {
    pid_t r = waitpid(pid, &status, WNOHANG);
    if (r == pid) return status;
    if (r < 0 && errno != EINTR) return -1;
    if (mono_ms() >= deadline) {
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      return -1;
    }
    pause_ms(20);
  }
}

static void expect_exit0(pid_t pid, int64_t deadline, const char *log) {
  int st = wait_child(pid, deadline);
  if (st == -1 || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
    show_log(log);
    fail_msg("%s: status %d (-1: did not end in time)", log, st);
  }
}

/* ---------------------------------------------------------------------------------- */
/* Reading topics back                                                                */

/* Every message of topic, partition by partition in offset order. */
static void read_topic(const char *topic, kafka_msgs_t *out) {
  kafka_read_to_end(g_brokers, topic, 0, 60000, kafka_msg_add, out);
}

/* The tags the transaction logs show committed: the third word of "committed" lines,
 * sorted. */
static void committed_tags(const char *ckpt, lines_t *t) {
  char dir[4400];
  snprintf(dir, sizeof dir, "%s/kafka-txn", ckpt);
  DIR *d = opendir(dir);
  assert_non_null(d);
  struct dirent *e;
  while ((e = readdir(d))) {
    if (!strstr(e->d_name, ".log")) continue;
    char p[4800], line[2048];
    snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
    FILE *f = fopen(p, "r");
    assert_non_null(f);
    while (fgets(line, sizeof line, f)) {
      char w1[32], w2[32], w3[512];
      if (sscanf(line, "%31s %31s %511s", w1, w2, w3) == 3 && strcmp(w1, "committed") == 0)
        lines_push(t, w3, strlen(w3));
    }
    fclose(f);
  }
  closedir(d);
  lines_sort(t);
}

static bool is_committed(const lines_t *t, const char *tag) {
  return tag[0] && bsearch(&tag, t->v, t->n, sizeof *t->v, cmp_str_ptr) != NULL;
}

/* ---------------------------------------------------------------------------------- */
/* The input, classified                                                              */

enum {
  ON_TIME,
  BEHIND,
  LATE,
  MALFORMED
};

typedef struct event {
  int partition;
  int64_t offset;
  int cls;
  char user[80];
  int type;
  int64_t product, category, price_cents, qty, ts;
  int64_t amount;
} event_t;

static bool json_int_in(json_t *v, int64_t lo, int64_t hi, int64_t *out) {
  if (!json_is_integer(v)) return false;
  *out = (int64_t)json_integer_value(v);
  return *out >= lo && *out <= hi;
}

/* The schema of docs/feature-pipeline.md: false for a malformed event. */
static bool parse_event(const char *text, size_t len, event_t *e) {
  json_t *o = json_loadb(text, len, JSON_REJECT_DUPLICATES, NULL);
  bool ok = json_is_object(o);
  const char *user = ok ? json_string_value(json_object_get(o, "user_id")) : NULL;
  const char *type = ok ? json_string_value(json_object_get(o, "event_type")) : NULL;
  json_t *price = ok ? json_object_get(o, "price") : NULL;
  ok = ok && user && *user && strlen(user) <= 64 && type && json_is_number(price);
  if (ok) {
    snprintf(e->user, sizeof e->user, "%s", user);
    e->type = -1;
    for (int i = 0; i < 5; i++)
      if (strcmp(type, TYPES[i]) == 0) e->type = i;
    double p = json_number_value(price);
    ok = e->type >= 0 && p >= 0 && p * 100 <= 10000000 &&
         json_int_in(json_object_get(o, "product_id"), 0, INT32_MAX, &e->product) &&
         json_int_in(json_object_get(o, "category_id"), 0, (1 << 29) - 1, &e->category) &&
         json_int_in(json_object_get(o, "quantity"), 1, 100, &e->qty) &&
         json_int_in(json_object_get(o, "event_time_ms"), 1, INT64_MAX / 4, &e->ts);
    e->price_cents = llround(p * 100);
    e->amount = e->price_cents * e->qty;
  }
  json_decref(o);
  return ok;
}

static int64_t window_end(int64_t ts) {
  return ts - ((ts % WINDOW_MS) + WINDOW_MS) % WINDOW_MS + WINDOW_MS;
}

/* Reads raw.events and decides, per partition in offset order, what is late: its window
 * ends (plus the allowed lateness) at or before the partition's watermark, the largest
 * event time before it minus 3 s minus 1 ms. */
static event_t *classify(const kafka_msgs_t *raw, size_t *n_out) {
  event_t *ev = calloc(raw->n, sizeof *ev);
  int64_t frontier[64];
  for (int p = 0; p < 64; p++) frontier[p] = INT64_MIN;
  for (size_t i = 0; i < raw->n; i++) {
    const kafka_msg_t *m = &raw->m[i];
    event_t *e = &ev[i];
    e->partition = m->partition;
    e->offset = m->offset;
    assert_true(m->partition < 64);
    if (!parse_event(m->value, m->value_len, e)) {
      e->cls = MALFORMED;
      continue;
    }
    int64_t f = frontier[m->partition];
    e->cls = ON_TIME;
    if (f != INT64_MIN) {
      int64_t wm = f - OOO_MS - 1;
      if (window_end(e->ts) - 1 + LATENESS_MS <= wm)
        e->cls = LATE;
      else if (e->ts <= wm)
        e->cls = BEHIND;
    }
    if (e->ts > f) frontier[m->partition] = e->ts;
  }
  *n_out = raw->n;
  return ev;
}

/* ---------------------------------------------------------------------------------- */
/* The independent computation of the features                                        */

typedef struct line {
  int64_t product, qty, price;
} line_t;

typedef struct expect_session {
  char user[80];
  int64_t start, end, events, categories, purchases, spend, items, value;
  bool abandoned;
} expect_session_t;

typedef struct user_sim {
  /* this user's events so far (on time only) */
  int64_t *ts, *amount, *cat;
  int *type;
  size_t n, cap;
  int64_t *prices;
  size_t n_prices, cap_prices;
  /* the open session */
  bool open;
  int64_t start, last, events, last_add, purchases, spend;
  int checkout;
  int64_t *cats;
  size_t n_cats, cap_cats;
  line_t cart[64];
  size_t n_cart;
  /* lifetime */
  int64_t l_purchases, l_spend, l_last_purchase, l_sessions, l_abandoned;
} user_sim_t;

typedef struct checker {
  const lines_t *tags;
  size_t features_checked, sessions_checked;
  expect_session_t *sessions;
  size_t n_sessions, cap_sessions;
  int failures;
} checker_t;

#define GROW(arr, n, cap)                            \
  do {                                               \
    if ((n) == (cap)) {                              \
      (cap) = (cap) ? (cap)*2 : 16;                  \
      (arr) = realloc((arr), (cap) * sizeof *(arr)); \
      assert_non_null(arr);                          \
    }                                                \
  } while (0)

static int64_t cart_items(const user_sim_t *u) {
  int64_t n = 0;
  for (size_t i = 0; i < u->n_cart; i++) n += u->cart[i].qty;
  return n;
}

static int64_t cart_value(const user_sim_t *u) {
  int64_t v = 0;
  for (size_t i = 0; i < u->n_cart; i++) v += u->cart[i].qty * u->cart[i].price;
  return v;
}

static void close_session(checker_t *c, const char *user, user_sim_t *u) {
  GROW(c->sessions, c->n_sessions, c->cap_sessions);
  expect_session_t *s = &c->sessions[c->n_sessions++];
  snprintf(s->user, sizeof s->user, "%s", user);
  s->start = u->start;
  s->end = u->last;
  s->events = u->events;
  s->categories = (int64_t)u->n_cats;
  s->purchases = u->purchases;
  s->spend = u->spend;
  s->items = cart_items(u);
  s->value = cart_value(u);
  s->abandoned = s->items > 0;
  if (s->abandoned) u->l_abandoned++;
  u->open = false;
}

static void take(user_sim_t *u, int64_t product, int64_t qty) {
  for (size_t i = 0; i < u->n_cart; i++) {
    if (u->cart[i].product != product) continue;
    u->cart[i].qty -= qty < u->cart[i].qty ? qty : u->cart[i].qty;
    if (u->cart[i].qty == 0) u->cart[i] = u->cart[--u->n_cart];
    return;
  }
}

/* Comparison helpers: each records a failure with the event and the feature. */
static void mismatch(checker_t *c, const event_t *e, const char *what, const char *got,
                     const char *want) {
  if (c->failures++ < 20)
    fprintf(stderr, "features.user for %s at raw.events %d/%" PRId64 ": %s is %s, expected %s\n",
            e->user, e->partition, e->offset, what, got, want);
}

static void check_int(checker_t *c, const event_t *e, json_t *f, const char *name, int64_t want) {
  json_t *v = json_object_get(f, name);
  if (json_is_integer(v) && json_integer_value(v) == want) return;
  char g[64], w[64];
  snprintf(g, sizeof g, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
  snprintf(w, sizeof w, "%" PRId64, want);
  mismatch(c, e, name, v ? g : "missing", w);
}

static void check_null_or_int(checker_t *c, const event_t *e, json_t *f, const char *name,
                              bool null, int64_t want) {
  json_t *v = json_object_get(f, name);
  if (null ? json_is_null(v) : (json_is_integer(v) && json_integer_value(v) == want)) return;
  char w[64];
  snprintf(w, sizeof w, "%" PRId64, want);
  mismatch(c, e, name, json_is_null(v) ? "null" : "a number or missing", null ? "null" : w);
}

static bool cents_equal(json_t *v, int64_t cents) {
  return json_is_number(v) && llround(json_number_value(v) * 100) == cents;
}

static void check_cents(checker_t *c, const event_t *e, json_t *f, const char *name, int64_t want) {
  json_t *v = json_object_get(f, name);
  if (cents_equal(v, want)) return;
  char g[64], w[64];
  snprintf(g, sizeof g, "%.4f", json_number_value(v));
  snprintf(w, sizeof w, "%" PRId64 ".%02" PRId64, want / 100, want % 100);
  mismatch(c, e, name, g, w);
}

static bool near(double got, double want) {
  return fabs(got - want) <= TOL_ABS + TOL_REL * fabs(want);
}

static void check_double(checker_t *c, const event_t *e, json_t *f, const char *name, double want) {
  json_t *v = json_object_get(f, name);
  if (json_is_number(v) && near(json_number_value(v), want)) return;
  char g[64], w[64];
  snprintf(g, sizeof g, "%.6f", json_number_value(v));
  snprintf(w, sizeof w, "%.6f", want);
  mismatch(c, e, name, g, w);
}

static int cmp_i64(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return x < y ? -1 : x > y;
}

/* Applies event e (on time) to u and checks the feature record f against what it must
 * hold. */
static void apply_and_check(checker_t *c, const event_t *e, user_sim_t *u, json_t *f) {
  /* sessions */
  if (u->open && e->ts >= u->last + GAP_MS) close_session(c, e->user, u);
  if (!u->open) {
    u->open = true;
    u->start = u->last = e->ts;
    u->events = u->last_add = u->purchases = u->spend = 0;
    u->checkout = 0;
    u->n_cats = u->n_cart = 0;
    u->l_sessions++;
  }
  u->events++;
  if (e->ts < u->start) u->start = e->ts;
  if (e->ts > u->last) u->last = e->ts;
  bool seen = false;
  for (size_t i = 0; i < u->n_cats; i++) seen |= u->cats[i] == e->category;
  if (!seen) {
    GROW(u->cats, u->n_cats, u->cap_cats);
    u->cats[u->n_cats++] = e->category;
  }
  /* the cart */
  if (e->type == 1) {
    size_t i = 0;
    while (i < u->n_cart && u->cart[i].product != e->product) i++;
    if (i == u->n_cart) {
      assert_true(u->n_cart < 64);
      u->cart[u->n_cart++] = (line_t){e->product, 0, 0};
    }
    u->cart[i].qty += e->qty;
    u->cart[i].price = e->price_cents;
    if (e->ts > u->last_add) u->last_add = e->ts;
  } else if (e->type == 2) {
    take(u, e->product, e->qty);
  } else if (e->type == 3) {
    u->checkout = 1;
  } else if (e->type == 4) {
    take(u, e->product, e->qty);
    if (u->n_cart == 0) u->checkout = 0;
    u->purchases++;
    u->spend += e->amount;
    u->l_purchases++;
    u->l_spend += e->amount;
    if (e->ts > u->l_last_purchase) u->l_last_purchase = e->ts;
  }
  if (u->n_cart == 0) u->last_add = 0;
  /* history */
  GROW(u->ts, u->n, u->cap);
  u->amount = realloc(u->amount, u->cap * sizeof *u->amount);
  u->cat = realloc(u->cat, u->cap * sizeof *u->cat);
  u->type = realloc(u->type, u->cap * sizeof *u->type);
  u->ts[u->n] = e->ts;
  u->amount[u->n] = e->amount;
  u->cat[u->n] = e->category;
  u->type[u->n] = e->type;
  u->n++;
  if (e->type == 0) {
    GROW(u->prices, u->n_prices, u->cap_prices);
    u->prices[u->n_prices++] = e->price_cents;
  }
  c->features_checked++;

  /* the record */
  if (strcmp(json_string_value(json_object_get(f, "user_id")) ?: "", e->user) != 0)
    mismatch(c, e, "user_id", json_string_value(json_object_get(f, "user_id")) ?: "?", e->user);
  check_int(c, e, f, "event_time_ms", e->ts);
  if (strcmp(json_string_value(json_object_get(f, "event_type")) ?: "", TYPES[e->type]) != 0)
    mismatch(c, e, "event_type", "?", TYPES[e->type]);
  static const int64_t ranges[3] = {60000, 300000, 3600000};
  static const char *const rn[3] = {"1m", "5m", "1h"};
  for (int k = 0; k < 3; k++) {
    int64_t cnt[5] = {0}, amt[5] = {0};
    for (size_t j = 0; j < u->n; j++) {
      if (u->ts[j] > e->ts || u->ts[j] < e->ts - ranges[k]) continue;
      cnt[u->type[j]]++;
      amt[u->type[j]] += u->amount[j];
    }
    char cn[16], an[16];
    snprintf(cn, sizeof cn, "count_%s", rn[k]);
    snprintf(an, sizeof an, "amount_%s", rn[k]);
    json_t *ca = json_object_get(f, cn), *aa = json_object_get(f, an);
    for (int t = 0; t < 5; t++) {
      json_t *cv = json_array_get(ca, (size_t)t), *av = json_array_get(aa, (size_t)t);
      if (!json_is_integer(cv) || json_integer_value(cv) != cnt[t] || !cents_equal(av, amt[t]) ||
          json_array_size(ca) != 5 || json_array_size(aa) != 5) {
        char g[64], w[64];
        snprintf(g, sizeof g, "%" JSON_INTEGER_FORMAT "/%.2f", json_integer_value(cv),
                 json_number_value(av));
        snprintf(w, sizeof w, "%" PRId64 "/%" PRId64 " cents", cnt[t], amt[t]);
        mismatch(c, e, cn, g, w);
      }
    }
  }
  check_int(c, e, f, "session_start_ms", u->start);
  check_int(c, e, f, "session_duration_ms", u->last - u->start);
  check_int(c, e, f, "session_events", u->events);
  check_int(c, e, f, "session_categories", (int64_t)u->n_cats);
  /* category affinity over the last hour */
  int64_t *cats = malloc((u->n + 1) * sizeof *cats);
  size_t nc = 0;
  for (size_t j = 0; j < u->n; j++)
    if (u->ts[j] <= e->ts && u->ts[j] >= e->ts - 3600000) cats[nc++] = u->cat[j];
  qsort(cats, nc, sizeof *cats, cmp_i64);
  int64_t top[3] = {-1, -1, -1}, topc[3] = {0, 0, 0};
  double entropy = 0;
  for (size_t i = 0; i < nc;) {
    size_t j = i;
    while (j < nc && cats[j] == cats[i]) j++;
    int64_t cnt = (int64_t)(j - i);
    double q = (double)cnt / (double)nc;
    entropy -= q * log2(q);
    /* the largest counts; among equal counts the smaller id (ids come in order) */
    for (int k = 0; k < 3; k++) {
      if (cnt > topc[k]) {
        for (int m = 2; m > k; m--) top[m] = top[m - 1], topc[m] = topc[m - 1];
        top[k] = cats[i];
        topc[k] = cnt;
        break;
      }
    }
    i = j;
  }
  free(cats);
  json_t *tc = json_object_get(f, "top_categories"),
         *ts = json_object_get(f, "top_category_shares");
  size_t want_top = 0;
  while (want_top < 3 && topc[want_top] > 0) want_top++;
  bool top_ok = json_array_size(tc) == want_top && json_array_size(ts) == want_top;
  for (size_t k = 0; top_ok && k < want_top; k++)
    top_ok = json_integer_value(json_array_get(tc, k)) == top[k] &&
             near(json_number_value(json_array_get(ts, k)), (double)topc[k] / (double)nc);
  if (!top_ok) mismatch(c, e, "top_categories/top_category_shares", "other", "see the test");
  check_double(c, e, f, "category_entropy", entropy);
  /* prices of the last 20 views */
  size_t from = u->n_prices > 20 ? u->n_prices - 20 : 0, m = u->n_prices - from;
  check_int(c, e, f, "price_n", (int64_t)m);
  if (m == 0) {
    const char *nulls[] = {"price_mean", "price_std", "price_min", "price_max", "price_vs_mean"};
    for (int k = 0; k < 5; k++)
      if (!json_is_null(json_object_get(f, nulls[k]))) mismatch(c, e, nulls[k], "not null", "null");
  } else {
    double sum = 0, var = 0;
    int64_t lo = INT64_MAX, hi = INT64_MIN;
    for (size_t j = from; j < u->n_prices; j++) {
      sum += (double)u->prices[j];
      if (u->prices[j] < lo) lo = u->prices[j];
      if (u->prices[j] > hi) hi = u->prices[j];
    }
    double mean = sum / (double)m;
    for (size_t j = from; j < u->n_prices; j++)
      var += ((double)u->prices[j] - mean) * ((double)u->prices[j] - mean);
    check_double(c, e, f, "price_mean", mean / 100);
    check_double(c, e, f, "price_std", sqrt(var / (double)m) / 100);
    check_cents(c, e, f, "price_min", lo);
    check_cents(c, e, f, "price_max", hi);
    if (mean > 0)
      check_double(c, e, f, "price_vs_mean", (double)e->price_cents / mean);
    else if (!json_is_null(json_object_get(f, "price_vs_mean")))
      mismatch(c, e, "price_vs_mean", "not null", "null");
  }
  /* the cart */
  int64_t items = cart_items(u), value = cart_value(u);
  int64_t since_add = u->last_add > 0 && e->ts > u->last_add ? e->ts - u->last_add : 0;
  check_int(c, e, f, "cart_items", items);
  check_cents(c, e, f, "cart_value", value);
  check_null_or_int(c, e, f, "cart_since_last_add_ms", u->last_add == 0, since_add);
  check_int(c, e, f, "checkout_started", u->checkout);
  double risk = 0;
  if (items > 0) {
    double minutes = (double)since_add / 60000;
    double z = -2.0 + 0.35 * (double)(items < 10 ? items : 10) + 0.4 * log1p((double)value / 100) +
               0.08 * (minutes < 60 ? minutes : 60) - 1.5 * u->checkout;
    risk = 1 / (1 + exp(-z));
  }
  check_double(c, e, f, "abandon_risk", risk);
  /* lifetime */
  check_null_or_int(c, e, f, "since_last_purchase_ms", u->l_last_purchase == 0,
                    e->ts > u->l_last_purchase ? e->ts - u->l_last_purchase : 0);
  check_int(c, e, f, "lifetime_purchases", u->l_purchases);
  check_cents(c, e, f, "lifetime_spend", u->l_spend);
  check_int(c, e, f, "lifetime_sessions", u->l_sessions);
  check_int(c, e, f, "abandoned_carts", u->l_abandoned);
}

static void user_sim_free(user_sim_t *u) {
  free(u->ts);
  free(u->amount);
  free(u->cat);
  free(u->type);
  free(u->prices);
  free(u->cats);
}

/* ---------------------------------------------------------------------------------- */
/* The test                                                                           */

static int setup(void **state) {
  (void)state;
  if (!mkdtemp(g_dir)) return -1;
  char err[256];
  rd_kafka_conf_t *c = rd_kafka_conf_new();
  rd_kafka_conf_set(c, "log_level", "3", NULL, 0);
  g_rk = rd_kafka_new(RD_KAFKA_PRODUCER, c, err, sizeof err);
  if (!g_rk) return -1;
  g_mc = rd_kafka_mock_cluster_new(g_rk, 1);
  if (!g_mc) return -1;
  static const struct {
    const char *name;
    int parts;
  } topics[] = {{"raw.events", 4},
                {"features.user", 8},
                {"features.user_session", 2},
                {"features.user_5min_spend", 2},
                {"events.late", 1},
                {"events.dlq", 1}};
  for (size_t i = 0; i < sizeof topics / sizeof topics[0]; i++)
    if (rd_kafka_mock_topic_create(g_mc, topics[i].name, topics[i].parts, 1)) return -1;
  snprintf(g_brokers, sizeof g_brokers, "%s", rd_kafka_mock_cluster_bootstraps(g_mc));
  return 0;
}

static int teardown(void **state) {
  (void)state;
  if (g_mc) rd_kafka_mock_cluster_destroy(g_mc);
  if (g_rk) rd_kafka_destroy(g_rk);
  if (getenv("FL_TEST_KEEP")) {
    fprintf(stderr, "kept %s\n", g_dir);
    return 0;
  }
  char cmd[512];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
  if (system(cmd) != 0) fprintf(stderr, "cannot remove %s\n", g_dir);
  return 0;
}

typedef struct keyed {
  const char *key; /* borrowed */
  const kafka_msg_t *m;
} keyed_t;

static int cmp_event_user(const void *a, const void *b) {
  const event_t *x = *(event_t *const *)a, *y = *(event_t *const *)b;
  int r = strcmp(x->user, y->user);
  if (r) return r;
  if (x->partition != y->partition) return x->partition - y->partition;
  return x->offset < y->offset ? -1 : x->offset > y->offset;
}

/* The committed record of features.user (or events.late) for each input event, found by
 * its source headers; fails on a record for an event that should have none, or on two. */
static const kafka_msg_t **index_by_source(const kafka_msgs_t *out, const lines_t *tags,
                                           const kafka_msgs_t *raw, const char *topic,
                                           size_t *n_committed) {
  const kafka_msg_t **by = calloc(raw->n, sizeof *by);
  *n_committed = 0;
  for (size_t i = 0; i < out->n; i++) {
    const kafka_msg_t *m = &out->m[i];
    if (!is_committed(tags, m->txn)) continue;
    (*n_committed)++;
    /* raw is in (partition, offset) order with no gaps but for transaction markers */
    size_t lo = 0, hi = raw->n;
    while (lo < hi) {
      size_t mid = (lo + hi) / 2;
      const kafka_msg_t *r = &raw->m[mid];
      if (r->partition < m->src_partition ||
          (r->partition == m->src_partition && r->offset < m->src_offset))
        lo = mid + 1;
      else
        hi = mid;
    }
    if (lo == raw->n || raw->m[lo].partition != m->src_partition ||
        raw->m[lo].offset != m->src_offset)
      fail_msg("%s: a committed record names raw.events %" PRId64 "/%" PRId64
               ", which does not exist",
               topic, m->src_partition, m->src_offset);
    if (by[lo])
      fail_msg("%s: raw.events %" PRId64 "/%" PRId64 " has two committed records (%s and %s)",
               topic, m->src_partition, m->src_offset, by[lo]->txn, m->txn);
    by[lo] = m;
  }
  return by;
}

/* A few malformed lines of every kind, besides the generator's rare ones. */
static void inject_malformed(void) {
  static const char *const bad[] = {
      "{\"user_id\":\"u0000007\",\"event_type\":\"view\"",
      "not json at all",
      "{\"user_id\":\"u0000007\",\"event_type\":\"teleport\",\"product_id\":1,\"category_id\":1,"
      "\"price\":1.5,\"quantity\":1,\"event_time_ms\":1700000000000}",
      "{\"user_id\":\"u0000007\",\"event_type\":\"view\",\"product_id\":1,\"category_id\":1,"
      "\"price\":\"cheap\",\"quantity\":1,\"event_time_ms\":1700000000000}",
      "{\"user_id\":\"u0000007\",\"event_type\":\"purchase\",\"product_id\":1,\"category_id\":1,"
      "\"price\":1.5,\"quantity\":0,\"event_time_ms\":1700000000000}",
      "{\"user_id\":\"u0000007\",\"event_type\":\"view\",\"product_id\":1,\"category_id\":1,"
      "\"price\":1.5,\"quantity\":1}",
  };
  char err[256];
  rd_kafka_conf_t *c = rd_kafka_conf_new();
  rd_kafka_conf_set(c, "bootstrap.servers", g_brokers, NULL, 0);
  rd_kafka_t *p = rd_kafka_new(RD_KAFKA_PRODUCER, c, err, sizeof err);
  assert_non_null(p);
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    char key[16];
    snprintf(key, sizeof key, "bad%zu", i);
    assert_int_equal(
        rd_kafka_producev(p, RD_KAFKA_V_TOPIC("raw.events"), RD_KAFKA_V_KEY(key, strlen(key)),
                          RD_KAFKA_V_VALUE((void *)bad[i], strlen(bad[i])),
                          RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END),
        RD_KAFKA_RESP_ERR_NO_ERROR);
  }
  assert_int_equal(rd_kafka_flush(p, 10000), RD_KAFKA_RESP_ERR_NO_ERROR);
  rd_kafka_destroy(p);
}

static int cmp_msg_po(const void *a, const void *b) {
  const kafka_msg_t *x = a, *y = b;
  if (x->partition != y->partition) return x->partition - y->partition;
  return x->offset < y->offset ? -1 : x->offset > y->offset;
}

static void killed_and_resumed_features_are_exact(void **state) {
  (void)state;
  char ckpt[4200], sdir[4200];
  snprintf(ckpt, sizeof ckpt, "%s/ckpt", g_dir);
  snprintf(sdir, sizeof sdir, "%s/state", g_dir);
  mkdir(sdir, 0700);
  int64_t t0 = mono_ms();
  pid_t gen = start("generator.log", "--brokers", g_brokers, "--partitions", "4",
                    "--out-partitions", "8", "--generate-only", "--rate", RATE, "--seconds",
                    SECONDS, "--users", USERS, "--time-scale", TIME_SCALE, "--seed", "7", NULL);
  pid_t job = start("job1.log", "--brokers", g_brokers, "--partitions", "4", "--out-partitions",
                    "8", "--no-generate", "--quiet", "--checkpoint-dir", ckpt,
                    "--checkpoint-interval", "1s", "--state-dir", sdir, NULL);
  inject_malformed();
  /* SIGKILL the job once it completed two checkpoints (it is then in the middle of the
   * input: the generator runs for 8 s) */
  int64_t deadline = deadline_in(60000);
  while (newest_checkpoint(ckpt) < 2) {
    if (mono_ms() > deadline || waitpid(job, NULL, WNOHANG) == job) {
      show_log("job1.log");
      fail_msg("the job completed no second checkpoint");
    }
    pause_ms(20);
  }
  pause_ms(300);
  assert_int_equal(kill(job, SIGKILL), 0);
  int st = wait_child(job, deadline_in(10000));
  assert_true(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
  int64_t killed_after = newest_checkpoint(ckpt);
  int64_t t_kill = mono_ms();
  expect_exit0(gen, deadline_in(60000), "generator.log");
  int64_t t_gen = mono_ms();
  /* again, to the end of the input */
  job = start("job2.log", "--brokers", g_brokers, "--partitions", "4", "--out-partitions", "8",
              "--no-generate", "--bounded", "--quiet", "--checkpoint-dir", ckpt,
              "--checkpoint-interval", "1s", "--state-dir", sdir, NULL);
  expect_exit0(job, deadline_in(120000), "job2.log");
  /* the sink's own consumers take only the consumer properties of its librdkafka ones
   * (linger.ms made librdkafka warn at every start) */
  if (log_has("job1.log", "CONFWARN") || log_has("job2.log", "CONFWARN")) {
    show_log("job1.log");
    fail_msg("librdkafka warned about the configuration");
  }
  /* the dashboard is on by default, on a free port of the loopback */
  if (!log_has("job2.log", "dashboard listening on http://127.0.0.1:")) {
    show_log("job2.log");
    fail_msg("the job served no dashboard");
  }
  /* the report says how long records waited behind a barrier (checkpointSyncTime), in
   * ms, within the resumed job's run (0 when its operators had ended before a barrier
   * came: test_examples checks a run where they wait). Not within the longest checkpoint
   * it reports: a barrier's wait counts also for a checkpoint that never completed, and
   * the report's durations are those its once-a-second samples saw. */
  char ckl[1024];
  double held_ms = -1;
  if (!log_line("job2.log", "checkpoints: ", ckl, sizeof ckl) ||
      !strstr(ckl, "records held at a barrier up to ") ||
      sscanf(strstr(ckl, "records held at a barrier up to ") + 32, "%lf", &held_ms) != 1) {
    show_log("job2.log");
    fail_msg("the report does not say how long records waited at a barrier");
  }
  assert_true(held_ms >= 0 && held_ms <= (double)(mono_ms() - t_kill));
  int64_t t_job2 = mono_ms();
  print_message("killed at %.1f s, generator done at %.1f s, the resumed job done at %.1f s\n",
                (double)(t_kill - t0) / 1000, (double)(t_gen - t0) / 1000,
                (double)(t_job2 - t0) / 1000);

  /* the truth, and what was committed */
  kafka_msgs_t raw = {0}, feat = {0}, sess = {0}, spend = {0}, late = {0}, dlq = {0};
  read_topic("raw.events", &raw);
  qsort(raw.m, raw.n, sizeof *raw.m, cmp_msg_po);
  read_topic("features.user", &feat);
  read_topic("features.user_session", &sess);
  read_topic("features.user_5min_spend", &spend);
  read_topic("events.late", &late);
  read_topic("events.dlq", &dlq);
  lines_t tags = {0};
  committed_tags(ckpt, &tags);
  size_t n_ev;
  event_t *ev = classify(&raw, &n_ev);
  size_t counts[4] = {0};
  for (size_t i = 0; i < n_ev; i++) counts[ev[i].cls]++;
  assert_true(counts[ON_TIME] > 5000);
  assert_true(counts[LATE] > 0);
  assert_true(counts[MALFORMED] >= 6);

  /* features.user: one committed record per on-time event, each value as computed */
  size_t n_feat;
  const kafka_msg_t **fby = index_by_source(&feat, &tags, &raw, "features.user", &n_feat);
  event_t **order = malloc(n_ev * sizeof *order);
  size_t n_order = 0;
  for (size_t i = 0; i < n_ev; i++) {
    if (ev[i].cls != ON_TIME && fby[i])
      fail_msg("features.user has a record for raw.events %d/%" PRId64 ", which is %s",
               ev[i].partition, ev[i].offset,
               ev[i].cls == LATE     ? "late"
               : ev[i].cls == BEHIND ? "behind"
                                     : "malformed");
    if (ev[i].cls == ON_TIME) {
      if (!fby[i])
        fail_msg("features.user lacks the record of raw.events %d/%" PRId64 " (%s)",
                 ev[i].partition, ev[i].offset, ev[i].user);
      order[n_order++] = &ev[i];
    }
  }
  assert_int_equal(n_feat, n_order);
  qsort(order, n_order, sizeof *order, cmp_event_user);
  checker_t ck = {.tags = &tags};
  for (size_t i = 0; i < n_order;) {
    size_t j = i;
    user_sim_t u;
    memset(&u, 0, sizeof u);
    while (j < n_order && strcmp(order[j]->user, order[i]->user) == 0) {
      if (order[j]->partition != order[i]->partition)
        fail_msg("user %s is in two partitions of raw.events", order[i]->user);
      const event_t *e = order[j];
      const kafka_msg_t *m = fby[e - ev];
      json_t *f = json_loads(m->value, 0, NULL);
      if (!f)
        fail_msg("features.user at %d/%" PRId64 " is not JSON: %s", m->partition, m->offset,
                 m->value);
      apply_and_check(&ck, e, &u, f);
      json_decref(f);
      j++;
    }
    if (u.open) close_session(&ck, order[i]->user, &u); /* the end of the input closes it */
    user_sim_free(&u);
    i = j;
  }
  if (ck.failures) fail_msg("%d values of features.user differ", ck.failures);

  /* features.user_session: every closed session once */
  size_t n_sess = 0;
  bool *matched = calloc(ck.n_sessions + 1, sizeof *matched);
  for (size_t i = 0; i < sess.n; i++) {
    if (!is_committed(&tags, sess.m[i].txn)) continue;
    n_sess++;
    json_t *s = json_loads(sess.m[i].value, 0, NULL);
    assert_non_null(s);
    const char *user = json_string_value(json_object_get(s, "user_id"));
    int64_t start = (int64_t)json_integer_value(json_object_get(s, "session_start_ms"));
    size_t k = 0;
    while (k < ck.n_sessions &&
           !(strcmp(ck.sessions[k].user, user ?: "") == 0 && ck.sessions[k].start == start))
      k++;
    if (k == ck.n_sessions)
      fail_msg("features.user_session: an unexpected session %s", sess.m[i].value);
    if (matched[k]) fail_msg("features.user_session: a session twice: %s", sess.m[i].value);
    matched[k] = true;
    const expect_session_t *x = &ck.sessions[k];
    bool ok = json_integer_value(json_object_get(s, "session_end_ms")) == x->end &&
              json_integer_value(json_object_get(s, "duration_ms")) == x->end - x->start &&
              json_integer_value(json_object_get(s, "events")) == x->events &&
              json_integer_value(json_object_get(s, "categories")) == x->categories &&
              json_integer_value(json_object_get(s, "purchases")) == x->purchases &&
              cents_equal(json_object_get(s, "spend"), x->spend) &&
              json_is_true(json_object_get(s, "abandoned_cart")) == x->abandoned &&
              json_integer_value(json_object_get(s, "cart_items")) == x->items &&
              cents_equal(json_object_get(s, "cart_value"), x->value);
    if (!ok)
      fail_msg("features.user_session: %s; expected end %" PRId64 " events %" PRId64
               " categories %" PRId64 " purchases %" PRId64 " spend %" PRId64 " items %" PRId64
               " value %" PRId64,
               sess.m[i].value, x->end, x->events, x->categories, x->purchases, x->spend, x->items,
               x->value);
    json_decref(s);
  }
  for (size_t k = 0; k < ck.n_sessions; k++)
    if (!matched[k])
      fail_msg("features.user_session lacks the session of %s from %" PRId64, ck.sessions[k].user,
               ck.sessions[k].start);
  free(matched);

  /* features.user_5min_spend: per user and window, the purchases on time or within the
   * allowed lateness */
  typedef struct win {
    char user[80];
    int64_t start, cents, count;
    bool seen;
  } win_t;
  win_t *wins = NULL;
  size_t n_wins = 0, cap_wins = 0;
  for (size_t i = 0; i < n_ev; i++) {
    const event_t *e = &ev[i];
    if ((e->cls != ON_TIME && e->cls != BEHIND) || e->type != 4) continue;
    int64_t ws = window_end(e->ts) - WINDOW_MS;
    size_t k = 0;
    while (k < n_wins && !(wins[k].start == ws && strcmp(wins[k].user, e->user) == 0)) k++;
    if (k == n_wins) {
      GROW(wins, n_wins, cap_wins);
      memset(&wins[n_wins], 0, sizeof wins[n_wins]);
      snprintf(wins[n_wins].user, sizeof wins[n_wins].user, "%s", e->user);
      wins[n_wins++].start = ws;
    }
    wins[k].cents += e->amount;
    wins[k].count++;
  }
  size_t n_spend = 0;
  for (size_t i = 0; i < spend.n; i++) {
    if (!is_committed(&tags, spend.m[i].txn)) continue;
    n_spend++;
    json_t *s = json_loads(spend.m[i].value, 0, NULL);
    assert_non_null(s);
    const char *user = json_string_value(json_object_get(s, "user_id"));
    int64_t ws = (int64_t)json_integer_value(json_object_get(s, "window_start_ms"));
    size_t k = 0;
    while (k < n_wins && !(wins[k].start == ws && strcmp(wins[k].user, user ?: "") == 0)) k++;
    if (k == n_wins)
      fail_msg("features.user_5min_spend: an unexpected window %s", spend.m[i].value);
    if (wins[k].seen) fail_msg("features.user_5min_spend: a window twice: %s", spend.m[i].value);
    wins[k].seen = true;
    if (json_integer_value(json_object_get(s, "window_end_ms")) != ws + WINDOW_MS ||
        json_integer_value(json_object_get(s, "purchases")) != wins[k].count ||
        !cents_equal(json_object_get(s, "spend"), wins[k].cents))
      fail_msg("features.user_5min_spend: %s; expected %" PRId64 " purchases, %" PRId64 " cents",
               spend.m[i].value, wins[k].count, wins[k].cents);
    json_decref(s);
  }
  for (size_t k = 0; k < n_wins; k++)
    if (!wins[k].seen)
      fail_msg("features.user_5min_spend lacks %s's window from %" PRId64, wins[k].user,
               wins[k].start);
  free(wins);

  /* events.late: exactly the late events, each once, with their fields */
  size_t n_late;
  const kafka_msg_t **lby = index_by_source(&late, &tags, &raw, "events.late", &n_late);
  for (size_t i = 0; i < n_ev; i++) {
    if ((ev[i].cls == LATE) != (lby[i] != NULL))
      fail_msg("events.late %s raw.events %d/%" PRId64,
               lby[i] ? "holds the on-time" : "lacks the late", ev[i].partition, ev[i].offset);
    if (!lby[i]) continue;
    event_t back;
    if (!parse_event(lby[i]->value, lby[i]->value_len, &back) ||
        strcmp(back.user, ev[i].user) != 0 || back.type != ev[i].type || back.ts != ev[i].ts ||
        back.price_cents != ev[i].price_cents || back.qty != ev[i].qty ||
        back.product != ev[i].product || back.category != ev[i].category)
      fail_msg("events.late: %s is not raw.events %d/%" PRId64, lby[i]->value, ev[i].partition,
               ev[i].offset);
  }

  /* events.dlq: every malformed line (at least once), with the reason */
  for (size_t i = 0; i < n_ev; i++) {
    if (ev[i].cls != MALFORMED) continue;
    bool found = false;
    for (size_t k = 0; k < dlq.n && !found; k++)
      found = dlq.m[k].src_partition == ev[i].partition && dlq.m[k].src_offset == ev[i].offset &&
              dlq.m[k].error[0] && dlq.m[k].value_len == raw.m[i].value_len &&
              memcmp(dlq.m[k].value, raw.m[i].value, raw.m[i].value_len) == 0;
    if (!found) fail_msg("events.dlq lacks raw.events %d/%" PRId64, ev[i].partition, ev[i].offset);
  }
  for (size_t k = 0; k < dlq.n; k++) {
    bool known = false;
    for (size_t i = 0; i < n_ev && !known; i++)
      known = ev[i].cls == MALFORMED && dlq.m[k].src_partition == ev[i].partition &&
              dlq.m[k].src_offset == ev[i].offset;
    if (!known) fail_msg("events.dlq holds a line that is not malformed: %s", dlq.m[k].value);
  }

  print_message("feature pipeline: killed after checkpoint %" PRId64
                "; %zu events (%zu on time, %zu "
                "late, %zu malformed); %zu feature vectors, %zu sessions, %zu spend windows "
                "committed and equal; %zu of %zu records in committed transactions\n",
                killed_after, n_ev, counts[ON_TIME], counts[LATE], counts[MALFORMED], n_feat,
                n_sess, n_spend, n_feat + n_sess + n_spend + n_late,
                feat.n + sess.n + spend.n + late.n);
  free(fby);
  free(lby);
  free(order);
  free(ev);
  free(ck.sessions);
  lines_free(&tags);
  kafka_msgs_free(&raw);
  kafka_msgs_free(&feat);
  kafka_msgs_free(&sess);
  kafka_msgs_free(&spend);
  kafka_msgs_free(&late);
  kafka_msgs_free(&dlq);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(killed_and_resumed_features_are_exact),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
