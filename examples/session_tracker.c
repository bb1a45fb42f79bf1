/*
 * session_tracker - user sessions from click events, with a KeyedProcessFunction.
 *
 *   JSON clicks, one per line: {"user":"u1","ts":1700000000000,"page":"/x"}
 *     -> parse (bad lines are skipped and counted)
 *     -> timestamps and bounded out-of-orderness watermarks
 *     -> keyBy user
 *     -> KeyedProcessFunction: per user a ValueState {start, last, count} of the open
 *        session (with State TTL) and an event-time timer at last + gap
 *     -> {"user":..,"session_start":..,"session_end":..,"duration_ms":..,"events":n,
 *         "closed_by":"gap"|"timeout"}
 *
 * A session closes
 *  - by "gap" when no event of the user follows within the gap (30 min) of its last
 *    event: the timer at last + gap fires once the watermark passes it, or an event
 *    arrives with ts > last + gap before that (the watermark lags behind the events);
 *  - by "timeout" when an event arrives with ts - start >= the maximum duration (4 h):
 *    the session is closed without it and the event starts the next one.
 * An event exactly `gap` after the last one continues the session, as touching session
 * windows merge in Flink. Events that arrive out of order within the out-of-orderness
 * simply extend the session they fall into. At the end of the input the final
 * watermark fires every pending timer, so every session is emitted.
 *
 * The state has a processing-time TTL (default 2 h, updated on create and write, never
 * returning expired values): the session of a user whose timer is lost or who vanishes
 * from a long-running stream is dropped instead of kept forever.
 *
 * With --checkpoint-dir the job is durable: it takes a checkpoint every
 * --checkpoint-interval (the sessions' ValueState and timers, the file position of the
 * input), resumes from the newest complete checkpoint it finds there, and the session
 * lines go through fl_stream_sink_files(), which commits them exactly once into the
 * --output directory. Killed at any moment and run again with the same options, it
 * commits exactly the lines of a run that was never interrupted.
 *
 * Usage: session_tracker [--demo] [--input PATH|-] [--output PATH|-] [--parallelism N]
 *          [--out-of-orderness DUR] [--gap DUR] [--max-session DUR] [--ttl DUR]
 *          [--watermark-interval DUR] [--state-backend hashmap|rocksdb]
 *          [--checkpoint-dir DIR [--checkpoint-interval DUR]]
 *
 * Uses only the public API (flink.h) and jansson.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "flink.h"

#define BAD_LINES_SHOWN 5
#define DEMO_LINES_SHOWN 10
#define DEFAULT_CHECKPOINT_INTERVAL "1s"
#define CHECKPOINTS_RETAINED "2"

/* ---------------------------------------------------------------------------------- */
/* Options and job-wide totals                                                        */

typedef struct options {
  const char *input;
  const char *output;
  int parallelism;
  int64_t out_of_orderness_ms;
  int64_t gap_ms;
  int64_t max_session_ms;
  int64_t ttl_ms;
  const char *watermark_interval;
  const char *state_backend;       /* NULL: library default (hashmap) */
  const char *checkpoint_dir;      /* NULL: no checkpoints, output as lines */
  const char *checkpoint_interval; /* NULL: DEFAULT_CHECKPOINT_INTERVAL */
  bool demo;
} options_t;

typedef struct totals {
  pthread_mutex_t mu;
  uint64_t lines_bad;
  uint64_t clicks_in;
  uint64_t sessions_gap;
  uint64_t sessions_timeout;
  uint64_t events_out; /* sum of the emitted sessions' event counts */
} totals_t;

typedef struct app {
  options_t opt;
  totals_t totals;
  fl_state_desc_t *session_state;
} app_t;

/* The open session of a user (the ValueState's bytes). */
typedef struct session {
  int64_t start;
  int64_t last;
  uint64_t count;
} session_t;

/* ---------------------------------------------------------------------------------- */
/* Small helpers                                                                      */

typedef struct strbuf {
  char *data;
  size_t len, cap;
} strbuf_t;

static int sb_reserve(strbuf_t *sb, size_t extra) {
  size_t need = sb->len + extra + 1;
  if (need <= sb->cap) return 0;
  size_t cap = sb->cap ? sb->cap : 256;
  while (cap < need) cap *= 2;
  char *p = realloc(sb->data, cap);
  if (!p) return FL_ENOMEM;
  sb->data = p;
  sb->cap = cap;
  return 0;
}

static int sb_printf(strbuf_t *sb, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int sb_printf(strbuf_t *sb, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  if (n < 0 || sb_reserve(sb, (size_t)n) != 0) return FL_ENOMEM;
  va_start(ap, fmt);
  vsnprintf(sb->data + sb->len, (size_t)n + 1, fmt, ap);
  va_end(ap);
  sb->len += (size_t)n;
  return 0;
}

/* Appends s as a JSON string literal (the input was valid UTF-8: jansson checked it). */
static int sb_json_string(strbuf_t *sb, const char *s, size_t len) {
  if (sb_reserve(sb, len * 6 + 2) != 0) return FL_ENOMEM;
  char *p = sb->data + sb->len;
  *p++ = '"';
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c == '"' || c == '\\') {
      *p++ = '\\';
      *p++ = (char)c;
    } else if (c < 0x20) {
      p += sprintf(p, "\\u%04x", c);
    } else {
      *p++ = (char)c;
    }
  }
  *p++ = '"';
  *p = '\0';
  sb->len = (size_t)(p - sb->data);
  return 0;
}

static int64_t add_sat(int64_t a, int64_t b) { return a > INT64_MAX - b ? INT64_MAX : a + b; }

/* ---------------------------------------------------------------------------------- */
/* Parsing (subtask 0's instance sees the single-reader source's lines in order)      */

typedef struct parser {
  app_t *app;
  uint64_t line_no;
  uint64_t bad;
  uint64_t clicks;
} parser_t;

static int parser_open(fl_context_t *ctx, void *opaque, void **instance) {
  (void)ctx;
  parser_t *p = calloc(1, sizeof *p);
  if (!p) return FL_ENOMEM;
  p->app = opaque;
  *instance = p;
  return 0;
}

static void parser_close(void *instance) {
  parser_t *p = instance;
  totals_t *t = &p->app->totals;
  pthread_mutex_lock(&t->mu);
  t->lines_bad += p->bad;
  t->clicks_in += p->clicks;
  pthread_mutex_unlock(&t->mu);
  free(p);
}

static void report_bad_line(parser_t *p, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void report_bad_line(parser_t *p, const char *fmt, ...) {
  p->bad++;
  if (p->bad <= BAD_LINES_SHOWN) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "session_tracker: skipping line %" PRIu64 ": ", p->line_no);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
  }
}

static bool is_blank(const char *s, size_t len) {
  for (size_t i = 0; i < len; i++)
    if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r') return false;
  return true;
}

/* Emits key = user, value = page (may be empty), timestamp = ts. */
static int parser_process(fl_context_t *ctx, const fl_record_t *in, void *instance) {
  parser_t *p = instance;
  json_t *root = NULL;
  json_error_t jerr;
  int rc = 0;

  p->line_no++;
  if (is_blank(in->value, in->value_len)) goto done;
  root = json_loadb(in->value, in->value_len, JSON_REJECT_DUPLICATES, &jerr);
  if (!root || !json_is_object(root)) {
    if (root)
      report_bad_line(p, "not a JSON object");
    else
      report_bad_line(p, "not valid JSON (%s at column %d)", jerr.text, jerr.column);
    goto done;
  }
  json_t *user = json_object_get(root, "user");
  json_t *ts = json_object_get(root, "ts");
  json_t *page = json_object_get(root, "page");
  if (!json_is_string(user) || json_string_length(user) == 0) {
    report_bad_line(p, "\"user\" is missing or not a non-empty string");
    goto done;
  }
  if (!json_is_integer(ts) || json_integer_value(ts) == FL_TS_NONE) {
    report_bad_line(p, "\"ts\" is missing or not an integer (epoch milliseconds)");
    goto done;
  }
  if (page && !json_is_string(page)) {
    report_bad_line(p, "\"page\" is not a string");
    goto done;
  }
  rc = fl_emit(ctx, json_string_value(user), json_string_length(user),
               page ? json_string_value(page) : "", page ? json_string_length(page) : 0,
               (int64_t)json_integer_value(ts));
  if (rc == 0) p->clicks++;
done:
  json_decref(root);
  return rc;
}

/* ---------------------------------------------------------------------------------- */
/* The KeyedProcessFunction                                                           */

typedef struct tracker {
  app_t *app;
  strbuf_t line;
  uint64_t sessions_gap;
  uint64_t sessions_timeout;
  uint64_t events_out;
} tracker_t;

static int tracker_open(fl_context_t *ctx, void *opaque, void **instance) {
  (void)ctx;
  tracker_t *t = calloc(1, sizeof *t);
  if (!t) return FL_ENOMEM;
  t->app = opaque;
  *instance = t;
  return 0;
}

static void tracker_close(void *instance) {
  tracker_t *t = instance;
  totals_t *tot = &t->app->totals;
  pthread_mutex_lock(&tot->mu);
  tot->sessions_gap += t->sessions_gap;
  tot->sessions_timeout += t->sessions_timeout;
  tot->events_out += t->events_out;
  pthread_mutex_unlock(&tot->mu);
  free(t->line.data);
  free(t);
}

/* Emits the session of the current key as a JSON line and clears the state. */
static int close_session(fl_context_t *ctx, tracker_t *t, const session_t *s, bool by_timeout,
                         int64_t ts) {
  size_t key_len = 0;
  const char *key = fl_ctx_key(ctx, &key_len);
  t->line.len = 0;
  if (sb_printf(&t->line, "{\"user\":") != 0 || sb_json_string(&t->line, key, key_len) != 0 ||
      sb_printf(&t->line,
                ",\"session_start\":%" PRId64 ",\"session_end\":%" PRId64
                ",\"duration_ms\":%" PRId64 ",\"events\":%" PRIu64 ",\"closed_by\":\"%s\"}",
                s->start, s->last, s->last - s->start, s->count,
                by_timeout ? "timeout" : "gap") != 0)
    return FL_ENOMEM;
  int rc = fl_emit(ctx, key, key_len, t->line.data, t->line.len, ts);
  if (rc == 0) rc = fl_state_clear(ctx, t->app->session_state);
  if (rc == 0) {
    if (by_timeout)
      t->sessions_timeout++;
    else
      t->sessions_gap++;
    t->events_out += s->count;
  }
  return rc;
}

static int load_session(fl_context_t *ctx, const fl_state_desc_t *d, session_t *s) {
  const void *v = NULL;
  size_t len = 0;
  int rc = fl_value_get(ctx, d, &v, &len);
  if (rc == 1) {
    if (len != sizeof *s)
      return fl_ctx_fail(ctx, "session state of %zu bytes, expected %zu", len, sizeof *s);
    memcpy(s, v, sizeof *s);
  }
  return rc;
}

static int tracker_process(fl_context_t *ctx, const fl_record_t *in, void *instance) {
  (void)in;
  tracker_t *t = instance;
  const options_t *o = &t->app->opt;
  const fl_state_desc_t *d = t->app->session_state;
  int64_t ts = fl_ctx_timestamp(ctx);
  session_t s;
  int rc;

  int have = load_session(ctx, d, &s);
  if (have < 0) return have;
  if (have) {
    int64_t timer = add_sat(s.last, o->gap_ms);
    bool gap = ts > timer;
    bool timeout = !gap && ts - s.start >= o->max_session_ms;
    if (gap || timeout) {
      if ((rc = fl_timer_delete(ctx, FL_EVENT_TIME, timer)) != 0 ||
          (rc = close_session(ctx, t, &s, timeout, ts)) != 0)
        return rc;
      have = 0;
    } else {
      /* Extend the session; an out-of-order event may move its start back. */
      s.count++;
      if (ts < s.start) s.start = ts;
      if (ts > s.last) {
        s.last = ts;
        if ((rc = fl_timer_delete(ctx, FL_EVENT_TIME, timer)) != 0 ||
            (rc = fl_timer_register(ctx, FL_EVENT_TIME, add_sat(s.last, o->gap_ms))) != 0)
          return rc;
      }
    }
  }
  if (!have) {
    s.start = s.last = ts;
    s.count = 1;
    if ((rc = fl_timer_register(ctx, FL_EVENT_TIME, add_sat(ts, o->gap_ms))) != 0) return rc;
  }
  return fl_value_set(ctx, d, &s, sizeof s);
}

static int tracker_on_timer(fl_context_t *ctx, int64_t ts, fl_time_domain_t domain,
                            void *instance) {
  tracker_t *t = instance;
  session_t s;
  if (domain != FL_EVENT_TIME) return 0;
  int have = load_session(ctx, t->app->session_state, &s);
  if (have < 0) return have;
  /* No session: it expired (TTL) while its timer stayed. Another deadline: the timer
   * belongs to a session that is gone; the session now open has its own timer. */
  if (!have || add_sat(s.last, t->app->opt.gap_ms) != ts) return 0;
  return close_session(ctx, t, &s, false, ts);
}

/* ---------------------------------------------------------------------------------- */
/* Demo input                                                                         */

static uint64_t splitmix64(uint64_t *state) {
  uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

#define DEMO_USERS 40
#define DEMO_HEAVY_USERS 4 /* click all day long: their sessions end by timeout */
#define DEMO_BASE_TS INT64_C(1700000000000)
#define DEMO_SPAN_MS (8 * 3600 * 1000)
#define DEMO_MAX_DELAY_MS 4000 /* below the default 5 s out-of-orderness */

typedef struct click {
  int64_t arrival; /* sort key: the order of the lines */
  int64_t ts;
  int user;
  int page;
} click_t;

static int cmp_click(const void *a, const void *b) {
  const click_t *x = a, *y = b;
  if (x->arrival != y->arrival) return x->arrival < y->arrival ? -1 : 1;
  return x->user - y->user;
}

static int push_click(click_t **v, size_t *n, size_t *cap, click_t c) {
  if (*n == *cap) {
    size_t ncap = *cap ? *cap * 2 : 1024;
    click_t *nv = realloc(*v, ncap * sizeof *nv);
    if (!nv) return -1;
    *v = nv;
    *cap = ncap;
  }
  (*v)[(*n)++] = c;
  return 0;
}

/* Eight hours of clicks of DEMO_USERS users: most browse in bursts separated by more
 * than the gap, a few click every few minutes all day (sessions closed by the 4 h
 * timeout). About 5% arrive late by up to DEMO_MAX_DELAY_MS, within the bound. */
static int write_demo_input(FILE *f, size_t *n_out) {
  static const char *pages[] = {"/", "/search", "/item", "/cart", "/checkout", "/help"};
  click_t *v = NULL;
  size_t n = 0, cap = 0;
  uint64_t rng = 7;
  int rc = -1;

  for (int u = 0; u < DEMO_USERS; u++) {
    bool heavy = u < DEMO_HEAVY_USERS;
    int64_t t = DEMO_BASE_TS + (int64_t)(splitmix64(&rng) % (40 * 60 * 1000));
    while (t < DEMO_BASE_TS + DEMO_SPAN_MS) {
      int burst = heavy ? 1 : 3 + (int)(splitmix64(&rng) % 25);
      for (int k = 0; k < burst && t < DEMO_BASE_TS + DEMO_SPAN_MS; k++) {
        uint64_t r = splitmix64(&rng);
        click_t c = {t, t, u + 1, (int)(r % 6)};
        if ((r >> 16) % 20 == 0) c.arrival += 1 + (int64_t)((r >> 24) % DEMO_MAX_DELAY_MS);
        if (push_click(&v, &n, &cap, c) != 0) goto done;
        /* within a burst: 5 s .. 10 min; heavy users: 1 .. 10 min */
        t += heavy ? 60000 + (int64_t)((r >> 32) % 540000) : 5000 + (int64_t)((r >> 32) % 595000);
      }
      if (!heavy) /* pause of 35 min .. 2 h: the session closes by gap */
        t += 35 * 60000 + (int64_t)(splitmix64(&rng) % (85 * 60000));
    }
  }
  qsort(v, n, sizeof *v, cmp_click);
  for (size_t i = 0; i < n; i++)
    if (fprintf(f, "{\"user\":\"u%02d\",\"ts\":%" PRId64 ",\"page\":\"%s\"}\n", v[i].user, v[i].ts,
                pages[v[i].page]) < 0)
      goto done;
  if (fputs("{\"user\":\"u03\",\"page\":\"/no-timestamp\"}\n", f) < 0 || fflush(f) != 0) goto done;
  *n_out = n;
  rc = 0;
done:
  free(v);
  return rc;
}

/* ---------------------------------------------------------------------------------- */
/* Demo output                                                                        */

static int cmp_lines(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

typedef struct line_list {
  char **v;
  size_t n, cap;
} line_list_t;

static void line_list_free(line_list_t *l) {
  for (size_t i = 0; i < l->n; i++) free(l->v[i]);
  free(l->v);
}

/* Appends the lines of the file at path (without their newlines). 0, or -1 with errno
 * set. */
static int read_lines(const char *path, line_list_t *l) {
  FILE *f = fopen(path, "r");
  char *line = NULL;
  size_t line_cap = 0;
  ssize_t len;
  int rc = -1;
  if (!f) return -1;
  while ((len = getline(&line, &line_cap, f)) >= 0) {
    if (len > 0 && line[len - 1] == '\n') line[len - 1] = '\0';
    if (l->n == l->cap) {
      size_t ncap = l->cap ? l->cap * 2 : 256;
      char **nv = realloc(l->v, ncap * sizeof *nv);
      if (!nv) goto done;
      l->v = nv;
      l->cap = ncap;
    }
    if (!(l->v[l->n] = strdup(line))) goto done;
    l->n++;
  }
  rc = ferror(f) ? -1 : 0;
done:
  free(line);
  fclose(f);
  return rc;
}

/* Reads the output: a file, or (with checkpoints) the committed files of the output
 * directory; names starting with '.' are files in progress or pending a checkpoint. */
static int read_output(const char *path, line_list_t *l) {
  struct stat st;
  if (stat(path, &st) != 0) return -1;
  if (!S_ISDIR(st.st_mode)) return read_lines(path, l);
  DIR *d = opendir(path);
  if (!d) return -1;
  struct dirent *e;
  int rc = 0;
  while (rc == 0 && (e = readdir(d))) {
    char file[4096];
    if (e->d_name[0] == '.') continue;
    snprintf(file, sizeof file, "%s/%s", path, e->d_name);
    rc = read_lines(file, l);
  }
  closedir(d);
  return rc;
}

/* Prints the first n lines of the output in sorted order (by user, then start): the
 * subtasks' lines interleave in arrival order. */
static void print_first_lines(const char *path, size_t n) {
  line_list_t l = {0};
  if (read_output(path, &l) != 0)
    fprintf(stderr, "session_tracker: cannot read %s: %s\n", path, strerror(errno));
  if (l.n) qsort(l.v, l.n, sizeof *l.v, cmp_lines);
  for (size_t i = 0; i < l.n && i < n; i++) printf("  %s\n", l.v[i]);
  if (l.n > n) printf("  ... (%zu more)\n", l.n - n);
  line_list_free(&l);
}

static void print_metrics(const char *metrics) {
  json_error_t err;
  json_t *doc = metrics ? json_loads(metrics, 0, &err) : NULL;
  if (!doc) {
    printf("%s\n", metrics ? metrics : "(no metrics)");
    return;
  }
  char *pretty = json_dumps(doc, JSON_INDENT(2));
  printf("%s\n", pretty ? pretty : metrics);
  free(pretty);
  json_decref(doc);
}

/* ---------------------------------------------------------------------------------- */
/* Command line                                                                       */

static void usage(FILE *f) {
  fprintf(f,
          "usage: session_tracker [--demo] [--input PATH|-] [--output PATH|-]\n"
          "         [--parallelism N] [--out-of-orderness DUR] [--gap DUR]\n"
          "         [--max-session DUR] [--ttl DUR] [--watermark-interval DUR]\n"
          "         [--state-backend hashmap|rocksdb]\n"
          "         [--checkpoint-dir DIR [--checkpoint-interval DUR]]\n"
          "Reads JSON clicks {\"user\":..,\"ts\":<epoch ms>,\"page\":..}, one per line, and\n"
          "writes one JSON line per user session.\n"
          "  --demo                generate 8 hours of sample clicks (unless --input), run,\n"
          "                        and print a summary and the job metrics\n"
          "  --input PATH|-        clicks (default: stdin, or the sample with --demo)\n"
          "  --output PATH|-       sessions (default: stdout); with --checkpoint-dir a\n"
          "                        directory (required), see below\n"
          "  --parallelism N       worker threads (default 2)\n"
          "  --out-of-orderness D  how late events may arrive (default 5s)\n"
          "  --gap D               inactivity that ends a session (default 30m)\n"
          "  --max-session D       longest session before it is cut (default 4h)\n"
          "  --ttl D               processing-time TTL of a session's state (default 2h)\n"
          "  --watermark-interval D  periodic watermark interval (default: library's)\n"
          "  --state-backend B     hashmap (default) or rocksdb\n"
          "  --checkpoint-dir DIR  checkpoint every --checkpoint-interval D (default 1s),\n"
          "                        keeping the newest 2; if DIR holds a complete checkpoint,\n"
          "                        resume from the newest one. Sessions are then committed\n"
          "                        exactly once as part-* files in the --output directory\n"
          "                        (created if missing; files starting with '.' are not\n"
          "                        committed yet). Resuming needs --input to be a regular\n"
          "                        file and the same options as the run that wrote DIR.\n"
          "Durations: 250, 250ms, 5s, 5m, 1h, 1d.\n");
}

static const char *option_value(int argc, char **argv, int *i, const char *name) {
  size_t n = strlen(name);
  if (strncmp(argv[*i], name, n) != 0) return NULL;
  if (argv[*i][n] == '=') return argv[*i] + n + 1;
  if (argv[*i][n] == '\0' && *i + 1 < argc) return argv[++*i];
  return NULL;
}

static int parse_duration_opt(const char *name, const char *v, int64_t *out, bool positive) {
  if (fl_parse_duration(v, out) != 0 || (positive && *out <= 0)) {
    fprintf(stderr, "session_tracker: bad %s '%s'\n", name, v);
    return -1;
  }
  return 0;
}

static int parse_args(int argc, char **argv, options_t *o) {
  o->parallelism = 2;
  o->out_of_orderness_ms = 5000;
  o->gap_ms = 30 * 60 * 1000;
  o->max_session_ms = 4 * 3600 * 1000;
  o->ttl_ms = 2 * 3600 * 1000;
  for (int i = 1; i < argc; i++) {
    const char *v;
    int rc = 0;
    if (strcmp(argv[i], "--demo") == 0) {
      o->demo = true;
    } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
      usage(stdout);
      exit(0);
    } else if ((v = option_value(argc, argv, &i, "--input"))) {
      o->input = v;
    } else if ((v = option_value(argc, argv, &i, "--output"))) {
      o->output = v;
    } else if ((v = option_value(argc, argv, &i, "--parallelism"))) {
      char *end;
      long p = strtol(v, &end, 10);
      if (*end || p < 1 || p > 256) {
        fprintf(stderr, "session_tracker: --parallelism must be 1..256, got '%s'\n", v);
        return -1;
      }
      o->parallelism = (int)p;
    } else if ((v = option_value(argc, argv, &i, "--out-of-orderness"))) {
      rc = parse_duration_opt("--out-of-orderness", v, &o->out_of_orderness_ms, false);
    } else if ((v = option_value(argc, argv, &i, "--gap"))) {
      rc = parse_duration_opt("--gap", v, &o->gap_ms, true);
    } else if ((v = option_value(argc, argv, &i, "--max-session"))) {
      rc = parse_duration_opt("--max-session", v, &o->max_session_ms, true);
    } else if ((v = option_value(argc, argv, &i, "--ttl"))) {
      rc = parse_duration_opt("--ttl", v, &o->ttl_ms, true);
    } else if ((v = option_value(argc, argv, &i, "--watermark-interval"))) {
      o->watermark_interval = v;
    } else if ((v = option_value(argc, argv, &i, "--state-backend"))) {
      if (strcmp(v, "hashmap") != 0 && strcmp(v, "rocksdb") != 0) {
        fprintf(stderr, "session_tracker: --state-backend must be hashmap or rocksdb, got '%s'\n",
                v);
        return -1;
      }
      o->state_backend = v;
    } else if ((v = option_value(argc, argv, &i, "--checkpoint-dir"))) {
      if (!*v) {
        fprintf(stderr, "session_tracker: --checkpoint-dir is empty\n");
        return -1;
      }
      o->checkpoint_dir = v;
    } else if ((v = option_value(argc, argv, &i, "--checkpoint-interval"))) {
      int64_t ms;
      rc = parse_duration_opt("--checkpoint-interval", v, &ms, true);
      o->checkpoint_interval = v;
    } else {
      fprintf(stderr, "session_tracker: unknown or incomplete option '%s'\n", argv[i]);
      usage(stderr);
      return -1;
    }
    if (rc != 0) return rc;
  }
  if (o->checkpoint_interval && !o->checkpoint_dir) {
    fprintf(stderr, "session_tracker: --checkpoint-interval needs --checkpoint-dir\n");
    return -1;
  }
  if (o->checkpoint_dir) {
    struct stat st;
    if (!o->output || strcmp(o->output, "-") == 0) {
      fprintf(stderr,
              "session_tracker: --checkpoint-dir needs --output DIR, the directory "
              "the sessions are committed to\n");
      return -1;
    }
    if (stat(o->output, &st) == 0 && !S_ISDIR(st.st_mode)) {
      fprintf(stderr,
              "session_tracker: with --checkpoint-dir, --output must be a directory; "
              "'%s' is not one\n",
              o->output);
      return -1;
    }
  }
  return 0;
}

/* ---------------------------------------------------------------------------------- */
/* Checkpoints                                                                        */

/* The id of the newest complete checkpoint under the checkpoint directory dir (a
 * chk-<id> directory holding a _manifest, which the library writes last), or 0. The
 * library checks it when it restores, and falls back to an older one if it is damaged. */
static long long newest_checkpoint(const char *dir) {
  DIR *d = opendir(dir);
  long long newest = 0;
  struct dirent *e;
  if (!d) return 0;
  while ((e = readdir(d))) {
    char *end;
    char manifest[4096];
    if (strncmp(e->d_name, "chk-", 4) != 0) continue;
    long long id = strtoll(e->d_name + 4, &end, 10);
    if (*end || id <= newest) continue;
    snprintf(manifest, sizeof manifest, "%s/%s/_manifest", dir, e->d_name);
    if (access(manifest, F_OK) == 0) newest = id;
  }
  closedir(d);
  return newest;
}

/* Sets the state backend and, with --checkpoint-dir, checkpoints and the restore.
 * *resumed: the job starts from a checkpoint. */
static int configure_durability(fl_config_t *conf, const options_t *o, bool *resumed, char *errstr,
                                size_t size) {
  *resumed = false;
  if (o->state_backend && fl_config_set(conf, "state.backend", o->state_backend, errstr, size) != 0)
    return -1;
  if (!o->checkpoint_dir) return 0;
  const char *interval =
      o->checkpoint_interval ? o->checkpoint_interval : DEFAULT_CHECKPOINT_INTERVAL;
  if (fl_config_set(conf, "state.checkpoints.dir", o->checkpoint_dir, errstr, size) != 0 ||
      fl_config_set(conf, "state.checkpoints.num-retained", CHECKPOINTS_RETAINED, errstr, size) !=
          0 ||
      fl_config_set(conf, "execution.checkpointing.interval", interval, errstr, size) != 0)
    return -1;
  long long newest = newest_checkpoint(o->checkpoint_dir);
  if (newest > 0) {
    /* A checkpoint root as the savepoint path: the library restores the newest usable
     * checkpoint in it. */
    if (fl_config_set(conf, "execution.savepoint.path", o->checkpoint_dir, errstr, size) != 0)
      return -1;
    fprintf(stderr,
            "session_tracker: resuming from the newest complete checkpoint in %s "
            "(chk-%lld)\n",
            o->checkpoint_dir, newest);
    *resumed = true;
  }
  return 0;
}

/* ---------------------------------------------------------------------------------- */
/* The job                                                                            */

static int build_job(fl_env_t *env, app_t *app, const char *input, const char *output) {
  static const fl_process_fn_t parser_fn = {
      .version = FL_PROCESS_FN_VERSION,
      .open = parser_open,
      .process = parser_process,
      .close = parser_close,
  };
  static const fl_process_fn_t tracker_fn = {
      .version = FL_PROCESS_FN_VERSION,
      .open = tracker_open,
      .process = tracker_process,
      .on_timer = tracker_on_timer,
      .close = tracker_close,
  };
  fl_watermark_strategy_t ws = {
      .version = FL_WATERMARK_STRATEGY_VERSION,
      .kind = FL_WATERMARKS_BOUNDED,
      .max_out_of_orderness_ms = app->opt.out_of_orderness_ms,
  };
  fl_ttl_config_t ttl = {
      .version = FL_TTL_CONFIG_VERSION,
      .ttl_ms = app->opt.ttl_ms,
      .update = FL_TTL_ON_CREATE_AND_WRITE,
      .visibility = FL_TTL_NEVER_RETURN_EXPIRED,
      .incremental_cleanup_size = 16,
      .cleanup_every_record = 1,
  };

  app->session_state = fl_state_value(env, "session");
  if (!app->session_state) return FL_ENOMEM;
  int rc = fl_state_desc_set_ttl(app->session_state, &ttl);
  if (rc != 0) return rc;
  fl_stream_t *lines = fl_source_lines(env, "clicks", input);
  fl_stream_t *clicks = fl_stream_process(lines, "parse", &parser_fn, app);
  fl_stream_t *timed = fl_stream_assign_timestamps(clicks, "event-time", &ws);
  fl_keyed_stream_t *by_user = fl_stream_key_by(timed, NULL, NULL);
  fl_stream_t *sessions = fl_keyed_process(by_user, "sessions", &tracker_fn, app);
  /* The tracker emits each session as its JSON line already. */
  if (app->opt.checkpoint_dir) return fl_stream_sink_files(sessions, "output", output);
  return fl_stream_sink_lines(sessions, "output", output);
}

int main(int argc, char **argv) {
  app_t app;
  fl_config_t *conf = NULL;
  fl_env_t *env = NULL;
  char *metrics = NULL;
  char errstr[512] = "";
  char demo_input[] = "/tmp/session_tracker_in_XXXXXX";
  char demo_output[] = "/tmp/session_tracker_out_XXXXXX";
  bool demo_input_made = false, demo_output_made = false, resumed = false;
  const char *input, *output;
  int status = 1, rc;

  memset(&app, 0, sizeof app);
  pthread_mutex_init(&app.totals.mu, NULL);
  if (parse_args(argc, argv, &app.opt) != 0) {
    status = 2;
    goto done;
  }
  input = app.opt.input ? app.opt.input : "-";
  output = app.opt.output ? app.opt.output : "-";

  if (app.opt.demo) {
    printf("session_tracker demo (libflink %s): user sessions, gap %" PRId64 " ms, max %" PRId64
           " ms\n",
           fl_version_str(), app.opt.gap_ms, app.opt.max_session_ms);
    if (!app.opt.input) {
      size_t n = 0;
      int fd = mkstemp(demo_input);
      FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
      if (!f) {
        fprintf(stderr, "session_tracker: cannot create a temp file: %s\n", strerror(errno));
        if (fd >= 0) close(fd);
        goto done;
      }
      demo_input_made = true;
      int wrc = write_demo_input(f, &n);
      if (fclose(f) != 0 || wrc != 0) {
        fprintf(stderr, "session_tracker: cannot write %s\n", demo_input);
        goto done;
      }
      input = demo_input;
      printf(
          "input: %zu generated clicks of %d users over 8 hours (%d of them click all "
          "day), ~5%% out of order (at most %d ms), plus 1 malformed line\n",
          n, DEMO_USERS, DEMO_HEAVY_USERS, DEMO_MAX_DELAY_MS);
    } else {
      printf("input: %s\n", input);
    }
    if (!app.opt.output) {
      int fd = mkstemp(demo_output);
      if (fd < 0) {
        fprintf(stderr, "session_tracker: cannot create a temp file: %s\n", strerror(errno));
        goto done;
      }
      close(fd);
      demo_output_made = true;
      output = demo_output;
    }
    printf("parallelism %d, out-of-orderness %" PRId64 " ms, state TTL %" PRId64 " ms\n\n",
           app.opt.parallelism, app.opt.out_of_orderness_ms, app.opt.ttl_ms);
    fflush(stdout);
  }

  conf = fl_config_new();
  if (!conf) {
    fprintf(stderr, "session_tracker: out of memory\n");
    goto done;
  }
  char par[16];
  snprintf(par, sizeof par, "%d", app.opt.parallelism);
  if (fl_config_set(conf, "parallelism", par, errstr, sizeof errstr) != 0 ||
      (app.opt.watermark_interval &&
       fl_config_set(conf, "pipeline.auto-watermark-interval", app.opt.watermark_interval, errstr,
                     sizeof errstr) != 0) ||
      configure_durability(conf, &app.opt, &resumed, errstr, sizeof errstr) != 0) {
    fprintf(stderr, "session_tracker: %s\n", errstr);
    status = 2;
    goto done;
  }
  if (fl_env_new(&env, conf, errstr, sizeof errstr) != 0) {
    fprintf(stderr, "session_tracker: %s\n", errstr);
    goto done;
  }
  rc = build_job(env, &app, input, output);
  if (rc == 0) rc = fl_env_execute(env, "session_tracker");
  if (rc != 0) {
    fprintf(stderr, "session_tracker: job failed (%s): %s\n", fl_err_name(rc), fl_env_error(env));
    goto done;
  }
  if (app.opt.demo) metrics = fl_env_metrics_json(env);
  fl_env_destroy(env); /* instances hand over their totals when they close */
  env = NULL;
  fflush(stdout);

  /* A resumed run reads only the input after the checkpoint, while the sessions it
   * emits also hold clicks an earlier run read: the check is made only for runs that
   * read the whole input. */
  totals_t *t = &app.totals;
  uint64_t sessions = t->sessions_gap + t->sessions_timeout;
  bool balanced = t->events_out == t->clicks_in;
  const char *check = resumed    ? "skipped (resumed from a checkpoint: this run's counts only)"
                      : balanced ? "OK"
                                 : "MISMATCH";
  if (app.opt.demo) {
    if (strcmp(output, "-") != 0) {
      if (resumed)
        printf("first committed sessions (sorted); this run emitted %" PRIu64 ":\n", sessions);
      else
        printf("first sessions (sorted), of %" PRIu64 ":\n", sessions);
      print_first_lines(output, DEMO_LINES_SHOWN);
      if (!demo_output_made) printf("all sessions: %s\n", output);
    }
    printf("\nsummary\n");
    printf("  clicks read:        %" PRIu64 " (%" PRIu64 " bad lines skipped)\n", t->clicks_in,
           t->lines_bad);
    printf("  sessions emitted:   %" PRIu64 " (%" PRIu64 " closed by gap, %" PRIu64
           " by timeout)\n",
           sessions, t->sessions_gap, t->sessions_timeout);
    printf("  clicks in sessions: %" PRIu64 "\n", t->events_out);
    printf("  check clicks read == clicks in sessions: %s\n", check);
    if (!resumed && !balanced)
      fprintf(stderr,
              "session_tracker: MISMATCH: %" PRIu64 " clicks read, %" PRIu64 " in sessions\n",
              t->clicks_in, t->events_out);
    printf("\nmetrics\n");
    print_metrics(metrics);
  } else {
    fprintf(stderr,
            "session_tracker: %s%" PRIu64 " clicks, %" PRIu64 " bad lines, %" PRIu64
            " sessions (%" PRIu64 " gap, %" PRIu64 " timeout) of %" PRIu64 " clicks%s\n",
            resumed ? "this run since the checkpoint: " : "", t->clicks_in, t->lines_bad, sessions,
            t->sessions_gap, t->sessions_timeout, t->events_out,
            resumed || balanced ? "" : " - MISMATCH");
  }
  status = resumed || balanced ? 0 : 1;

done:
  fl_env_destroy(env);
  fl_config_destroy(conf);
  fl_free(metrics);
  if (demo_input_made) unlink(demo_input);
  if (demo_output_made) unlink(demo_output);
  pthread_mutex_destroy(&app.totals.mu);
  return status;
}
