/*
 * user_spend - per-user spend in tumbling 5-minute event-time windows.
 *
 *   JSON purchases, one per line: {"user":"u1","amount":12.5,"ts":1700000000000}
 *     -> parse (bad lines are skipped and counted)
 *     -> timestamps and bounded out-of-orderness watermarks
 *     -> keyBy user
 *     -> tumbling event-time window, aggregate {sum, count}
 *     -> {"user":"u1","window_start":..,"window_end":..,"spend":..,"purchases":n}
 *
 * Purchases that arrive after their window was emitted (later than the out-of-orderness
 * allows) are dropped by the window and routed to a late-data side output, so the
 * summary can account for every purchase: spend in == spend out + late spend.
 *
 * With --checkpoint-dir the job is durable: it takes a checkpoint every
 * --checkpoint-interval, resumes from the newest complete checkpoint it finds there, and
 * writes its results exactly once (a "format" step turns each window result into its JSON
 * line, and fl_stream_sink_files() commits them into the --output directory at each
 * checkpoint). Killed at any moment and run again with the same options, it commits
 * exactly the lines of a run that was never interrupted.
 *
 * Usage: user_spend [--demo] [--input PATH|-] [--output PATH|-] [--parallelism N]
 *                   [--out-of-orderness DUR] [--window DUR] [--watermark-interval DUR]
 *                   [--state-backend hashmap|rocksdb]
 *                   [--checkpoint-dir DIR [--checkpoint-interval DUR]]
 *
 * Uses only the public API (flink.h) and jansson.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "flink.h"

#define BAD_LINES_SHOWN 5 /* bad input lines reported one by one; the rest are counted */
#define DEMO_LINES_SHOWN 10
#define DEFAULT_CHECKPOINT_INTERVAL "1s"
#define CHECKPOINTS_RETAINED "2"

/* ---------------------------------------------------------------------------------- */
/* Options and job-wide totals                                                        */

typedef struct options {
  const char *input;  /* NULL: none given */
  const char *output; /* NULL: none given */
  int parallelism;
  int64_t out_of_orderness_ms;
  int64_t window_ms;
  const char *watermark_interval;  /* NULL: library default */
  const char *state_backend;       /* NULL: library default (hashmap) */
  const char *checkpoint_dir;      /* NULL: no checkpoints, output as lines */
  const char *checkpoint_interval; /* NULL: DEFAULT_CHECKPOINT_INTERVAL */
  bool demo;
} options_t;

/* Totals gathered from the operator instances when they close. Instances of different
 * subtasks close on different threads, hence the mutex. */
typedef struct totals {
  pthread_mutex_t mu;
  uint64_t lines_bad;
  uint64_t purchases_in;
  double spend_in;
  uint64_t windows_out;
  uint64_t purchases_out;
  double spend_out;
  uint64_t late_purchases;
  double late_spend;
} totals_t;

typedef struct app {
  options_t opt;
  totals_t totals;
  FILE *out; /* shared by the sink subtasks; stdio locks it per call */
} app_t;

/* What the window emits per (user, window); the sink turns it into JSON. */
typedef struct spend_result {
  int64_t window_start;
  int64_t window_end;
  double spend;
  uint64_t purchases;
} spend_result_t;

typedef struct spend_acc {
  double sum;
  uint64_t count;
} spend_acc_t;

/* ---------------------------------------------------------------------------------- */
/* JSON output helpers                                                                */

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

/* Appends s as a JSON string literal. Bytes >= 0x80 pass through: the input was valid
 * UTF-8 (jansson checked it), so the output is too. */
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

/* Money-like amounts: up to 6 decimals, trailing zeros dropped ("19.75", "30"). Plain
 * %g would switch to exponents; %.17g shows the binary rounding of sums (0.1 + 0.2). */
static void format_amount(double v, char *buf, size_t size) {
  snprintf(buf, size, "%.6f", v);
  char *dot = strchr(buf, '.');
  if (dot) {
    char *end = buf + strlen(buf) - 1;
    while (end > dot && *end == '0') *end-- = '\0';
    if (end == dot) *end = '\0';
  }
  if (strcmp(buf, "-0") == 0) strcpy(buf, "0");
}

/* ---------------------------------------------------------------------------------- */
/* Parsing: a ProcessFunction right after the single-reader line source. The source is
 * forwarded (chained) to subtask 0's instance in file order, so the instance can count
 * line numbers. */

typedef struct parser {
  app_t *app;
  uint64_t line_no;
  uint64_t bad;
  uint64_t purchases;
  double spend;
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
  t->purchases_in += p->purchases;
  t->spend_in += p->spend;
  pthread_mutex_unlock(&t->mu);
  free(p);
}

static bool is_blank(const char *s, size_t len) {
  for (size_t i = 0; i < len; i++)
    if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r') return false;
  return true;
}

static void report_bad_line(parser_t *p, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void report_bad_line(parser_t *p, const char *fmt, ...) {
  p->bad++;
  if (p->bad <= BAD_LINES_SHOWN) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "user_spend: skipping line %" PRIu64 ": ", p->line_no);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
  }
}

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
  json_t *amount = json_object_get(root, "amount");
  json_t *ts = json_object_get(root, "ts");
  if (!json_is_string(user) || json_string_length(user) == 0) {
    report_bad_line(p, "\"user\" is missing or not a non-empty string");
    goto done;
  }
  if (!json_is_number(amount) || !isfinite(json_number_value(amount))) {
    report_bad_line(p, "\"amount\" is missing or not a number");
    goto done;
  }
  if (!json_is_integer(ts) || json_integer_value(ts) == FL_TS_NONE) {
    report_bad_line(p, "\"ts\" is missing or not an integer (epoch milliseconds)");
    goto done;
  }
  double value = json_number_value(amount);
  rc = fl_emit(ctx, json_string_value(user), json_string_length(user), &value, sizeof value,
               (int64_t)json_integer_value(ts));
  if (rc == 0) {
    p->purchases++;
    p->spend += value;
  }
done:
  json_decref(root);
  return rc;
}

/* ---------------------------------------------------------------------------------- */
/* The window aggregate                                                               */

static void spend_init(void *acc, void *opaque) {
  (void)opaque;
  memset(acc, 0, sizeof(spend_acc_t));
}

static int spend_add(fl_context_t *ctx, void *acc, const fl_record_t *in, void *opaque) {
  (void)opaque;
  spend_acc_t *a = acc;
  double v;
  if (in->value_len != sizeof v)
    return fl_ctx_fail(ctx, "expected an 8-byte amount, got %zu bytes", in->value_len);
  memcpy(&v, in->value, sizeof v);
  a->sum += v;
  a->count++;
  return 0;
}

static void spend_merge(void *acc, const void *other, void *opaque) {
  (void)opaque;
  spend_acc_t *a = acc;
  const spend_acc_t *b = other;
  a->sum += b->sum;
  a->count += b->count;
}

static int spend_result(fl_context_t *ctx, const fl_window_t *window, const void *acc,
                        void *opaque) {
  (void)opaque;
  const spend_acc_t *a = acc;
  size_t key_len = 0;
  const void *key = fl_ctx_key(ctx, &key_len);
  spend_result_t r = {window->start, window->end, a->sum, a->count};
  return fl_emit(ctx, key, key_len, &r, sizeof r, window->end - 1);
}

/* ---------------------------------------------------------------------------------- */
/* Results: JSON lines                                                                */

/* What one window result adds to the totals. */
typedef struct result_counts {
  uint64_t windows;
  uint64_t purchases;
  double spend;
} result_counts_t;

static void add_result_counts(totals_t *t, const result_counts_t *c) {
  pthread_mutex_lock(&t->mu);
  t->windows_out += c->windows;
  t->purchases_out += c->purchases;
  t->spend_out += c->spend;
  pthread_mutex_unlock(&t->mu);
}

/* Sets line to the JSON line of a window result (without the newline) and counts it. */
static int format_result(fl_context_t *ctx, const fl_record_t *in, strbuf_t *line,
                         result_counts_t *counts) {
  spend_result_t r;
  char amount[64];
  if (in->value_len != sizeof r)
    return fl_ctx_fail(ctx, "unexpected window result of %zu bytes", in->value_len);
  memcpy(&r, in->value, sizeof r);
  format_amount(r.spend, amount, sizeof amount);
  line->len = 0;
  if (sb_printf(line, "{\"user\":") != 0 || sb_json_string(line, in->key, in->key_len) != 0 ||
      sb_printf(line,
                ",\"window_start\":%" PRId64 ",\"window_end\":%" PRId64
                ",\"spend\":%s,\"purchases\":%" PRIu64 "}",
                r.window_start, r.window_end, amount, r.purchases) != 0)
    return FL_ENOMEM;
  counts->windows++;
  counts->purchases += r.purchases;
  counts->spend += r.spend;
  return 0;
}

/* Without checkpoints: a sink that writes the lines to the output file or stdout. */
typedef struct result_sink {
  app_t *app;
  strbuf_t line;
  result_counts_t counts;
} result_sink_t;

static int result_sink_open(fl_context_t *ctx, void *opaque, void **instance) {
  (void)ctx;
  result_sink_t *s = calloc(1, sizeof *s);
  if (!s) return FL_ENOMEM;
  s->app = opaque;
  *instance = s;
  return 0;
}

static int result_sink_write(fl_context_t *ctx, const fl_record_t *in, void *instance) {
  result_sink_t *s = instance;
  int rc = format_result(ctx, in, &s->line, &s->counts);
  if (rc == 0) rc = sb_printf(&s->line, "\n");
  if (rc != 0) return rc;
  /* One fwrite per line: stdio locks the stream per call, so lines of different
   * subtasks never interleave. */
  if (fwrite(s->line.data, 1, s->line.len, s->app->out) != s->line.len)
    return fl_ctx_fail(ctx, "write failed: %s", strerror(errno));
  return 0;
}

static int result_sink_flush(fl_context_t *ctx, void *instance) {
  result_sink_t *s = instance;
  if (fflush(s->app->out) != 0) return fl_ctx_fail(ctx, "flush failed: %s", strerror(errno));
  return 0;
}

static void result_sink_close(void *instance) {
  result_sink_t *s = instance;
  add_result_counts(&s->app->totals, &s->counts);
  free(s->line.data);
  free(s);
}

/* With checkpoints: a ProcessFunction that turns each result into its JSON line for the
 * exactly-once file sink (which adds the newline). Its counts cover what this process
 * emitted, including lines a crash would later discard. */
typedef struct formatter {
  app_t *app;
  strbuf_t line;
  result_counts_t counts;
} formatter_t;

static int formatter_open(fl_context_t *ctx, void *opaque, void **instance) {
  (void)ctx;
  formatter_t *f = calloc(1, sizeof *f);
  if (!f) return FL_ENOMEM;
  f->app = opaque;
  *instance = f;
  return 0;
}

static int formatter_process(fl_context_t *ctx, const fl_record_t *in, void *instance) {
  formatter_t *f = instance;
  int rc = format_result(ctx, in, &f->line, &f->counts);
  if (rc != 0) return rc;
  return fl_emit(ctx, in->key, in->key_len, f->line.data, f->line.len, in->timestamp);
}

static void formatter_close(void *instance) {
  formatter_t *f = instance;
  add_result_counts(&f->app->totals, &f->counts);
  free(f->line.data);
  free(f);
}

typedef struct late_sink {
  app_t *app;
  uint64_t n;
  double spend;
} late_sink_t;

static int late_sink_open(fl_context_t *ctx, void *opaque, void **instance) {
  (void)ctx;
  late_sink_t *s = calloc(1, sizeof *s);
  if (!s) return FL_ENOMEM;
  s->app = opaque;
  *instance = s;
  return 0;
}

static int late_sink_write(fl_context_t *ctx, const fl_record_t *in, void *instance) {
  (void)ctx;
  late_sink_t *s = instance;
  double v = 0;
  if (in->value_len == sizeof v) memcpy(&v, in->value, sizeof v);
  s->n++;
  s->spend += v;
  return 0;
}

static void late_sink_close(void *instance) {
  late_sink_t *s = instance;
  totals_t *t = &s->app->totals;
  pthread_mutex_lock(&t->mu);
  t->late_purchases += s->n;
  t->late_spend += s->spend;
  pthread_mutex_unlock(&t->mu);
  free(s);
}

/* ---------------------------------------------------------------------------------- */
/* Demo input                                                                         */

static uint64_t splitmix64(uint64_t *state) {
  uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

#define DEMO_PURCHASES 3000
#define DEMO_USERS 50
#define DEMO_BASE_TS INT64_C(1699999800000) /* a multiple of 5 minutes */
#define DEMO_STEP_MS 1200                   /* 3000 purchases over one hour */
#define DEMO_MAX_DELAY_MS 4000              /* below the default 5 s out-of-orderness */

/* A deterministic hour of purchases. About 5% arrive out of order, but never by more
 * than DEMO_MAX_DELAY_MS behind the largest timestamp seen, so with the default
 * out-of-orderness none is late. Two malformed lines show the bad-line handling. */
static int write_demo_input(FILE *f) {
  uint64_t rng = 42;
  for (int i = 0; i < DEMO_PURCHASES; i++) {
    uint64_t r = splitmix64(&rng);
    int64_t ts = DEMO_BASE_TS + (int64_t)i * DEMO_STEP_MS + (int64_t)(r % DEMO_STEP_MS);
    if ((r >> 20) % 20 == 0) ts -= 1 + (int64_t)((r >> 32) % DEMO_MAX_DELAY_MS);
    int user = 1 + (int)((r >> 40) % DEMO_USERS);
    unsigned cents = 100 + (unsigned)((splitmix64(&rng) >> 33) % 24900);
    if (fprintf(f, "{\"user\":\"u%02d\",\"amount\":%u.%02u,\"ts\":%" PRId64 "}\n", user,
                cents / 100, cents % 100, ts) < 0)
      return -1;
    if (i == 1000 && fputs("this line is not JSON\n", f) < 0) return -1;
    if (i == 2000 &&
        fprintf(f, "{\"user\":\"u07\",\"amount\":\"12.50\",\"ts\":%" PRId64 "}\n", ts) < 0)
      return -1;
  }
  return fflush(f) == 0 ? 0 : -1;
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

/* Prints the first n lines of the output in sorted order (by user, then window, since
 * the fields come in that order): the subtasks' lines interleave in arrival order. */
static void print_first_lines(const char *path, size_t n) {
  line_list_t l = {0};
  if (read_output(path, &l) != 0)
    fprintf(stderr, "user_spend: cannot read %s: %s\n", path, strerror(errno));
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
          "usage: user_spend [--demo] [--input PATH|-] [--output PATH|-] [--parallelism N]\n"
          "                  [--out-of-orderness DUR] [--window DUR]\n"
          "                  [--watermark-interval DUR] [--state-backend hashmap|rocksdb]\n"
          "                  [--checkpoint-dir DIR [--checkpoint-interval DUR]]\n"
          "Reads JSON purchases {\"user\":..,\"amount\":..,\"ts\":<epoch ms>}, one per line,\n"
          "and writes each user's spend per tumbling event-time window as JSON lines.\n"
          "  --demo                generate an hour of sample purchases (unless --input),\n"
          "                        run, and print a summary and the job metrics\n"
          "  --input PATH|-        purchases (default: stdin, or the sample with --demo)\n"
          "  --output PATH|-       results (default: stdout); with --checkpoint-dir a\n"
          "                        directory (required), see below\n"
          "  --parallelism N       worker threads (default 2)\n"
          "  --out-of-orderness D  how late events may arrive (default 5s)\n"
          "  --window D            window size (default 5m)\n"
          "  --watermark-interval D  periodic watermark interval (default: library's)\n"
          "  --state-backend B     hashmap (default) or rocksdb\n"
          "  --checkpoint-dir DIR  checkpoint every --checkpoint-interval D (default 1s),\n"
          "                        keeping the newest 2; if DIR holds a complete checkpoint,\n"
          "                        resume from the newest one. Results are then committed\n"
          "                        exactly once as part-* files in the --output directory\n"
          "                        (created if missing; files starting with '.' are not\n"
          "                        committed yet). Resuming needs --input to be a regular\n"
          "                        file and the same options as the run that wrote DIR.\n"
          "Durations: 250, 250ms, 5s, 5m, 1h, 1d.\n");
}

/* Accepts "--name value" and "--name=value". Returns the value or NULL. */
static const char *option_value(int argc, char **argv, int *i, const char *name) {
  size_t n = strlen(name);
  if (strncmp(argv[*i], name, n) != 0) return NULL;
  if (argv[*i][n] == '=') return argv[*i] + n + 1;
  if (argv[*i][n] == '\0' && *i + 1 < argc) return argv[++*i];
  return NULL;
}

static int parse_args(int argc, char **argv, options_t *o) {
  o->parallelism = 2;
  o->out_of_orderness_ms = 5000;
  o->window_ms = 5 * 60 * 1000;
  for (int i = 1; i < argc; i++) {
    const char *v;
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
        fprintf(stderr, "user_spend: --parallelism must be 1..256, got '%s'\n", v);
        return -1;
      }
      o->parallelism = (int)p;
    } else if ((v = option_value(argc, argv, &i, "--out-of-orderness"))) {
      if (fl_parse_duration(v, &o->out_of_orderness_ms) != 0) {
        fprintf(stderr, "user_spend: bad --out-of-orderness '%s'\n", v);
        return -1;
      }
    } else if ((v = option_value(argc, argv, &i, "--window"))) {
      if (fl_parse_duration(v, &o->window_ms) != 0 || o->window_ms <= 0) {
        fprintf(stderr, "user_spend: bad --window '%s'\n", v);
        return -1;
      }
    } else if ((v = option_value(argc, argv, &i, "--watermark-interval"))) {
      o->watermark_interval = v;
    } else if ((v = option_value(argc, argv, &i, "--state-backend"))) {
      if (strcmp(v, "hashmap") != 0 && strcmp(v, "rocksdb") != 0) {
        fprintf(stderr, "user_spend: --state-backend must be hashmap or rocksdb, got '%s'\n", v);
        return -1;
      }
      o->state_backend = v;
    } else if ((v = option_value(argc, argv, &i, "--checkpoint-dir"))) {
      if (!*v) {
        fprintf(stderr, "user_spend: --checkpoint-dir is empty\n");
        return -1;
      }
      o->checkpoint_dir = v;
    } else if ((v = option_value(argc, argv, &i, "--checkpoint-interval"))) {
      int64_t ms;
      if (fl_parse_duration(v, &ms) != 0 || ms <= 0) {
        fprintf(stderr, "user_spend: bad --checkpoint-interval '%s'\n", v);
        return -1;
      }
      o->checkpoint_interval = v;
    } else {
      fprintf(stderr, "user_spend: unknown or incomplete option '%s'\n", argv[i]);
      usage(stderr);
      return -1;
    }
  }
  if (o->checkpoint_interval && !o->checkpoint_dir) {
    fprintf(stderr, "user_spend: --checkpoint-interval needs --checkpoint-dir\n");
    return -1;
  }
  if (o->checkpoint_dir) {
    struct stat st;
    if (!o->output || strcmp(o->output, "-") == 0) {
      fprintf(stderr,
              "user_spend: --checkpoint-dir needs --output DIR, the directory the "
              "results are committed to\n");
      return -1;
    }
    if (stat(o->output, &st) == 0 && !S_ISDIR(st.st_mode)) {
      fprintf(stderr,
              "user_spend: with --checkpoint-dir, --output must be a directory; "
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
    fprintf(stderr, "user_spend: resuming from the newest complete checkpoint in %s (chk-%lld)\n",
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
  static const fl_aggregate_fn_t spend_fn = {
      .version = FL_AGGREGATE_FN_VERSION,
      .acc_size = sizeof(spend_acc_t),
      .init = spend_init,
      .add = spend_add,
      .merge = spend_merge,
      .result = spend_result,
  };
  static const fl_sink_fn_t result_sink_fn = {
      .version = FL_SINK_FN_VERSION,
      .open = result_sink_open,
      .write = result_sink_write,
      .flush = result_sink_flush,
      .close = result_sink_close,
  };
  static const fl_process_fn_t formatter_fn = {
      .version = FL_PROCESS_FN_VERSION,
      .open = formatter_open,
      .process = formatter_process,
      .close = formatter_close,
  };
  static const fl_sink_fn_t late_sink_fn = {
      .version = FL_SINK_FN_VERSION,
      .open = late_sink_open,
      .write = late_sink_write,
      .close = late_sink_close,
  };
  fl_watermark_strategy_t ws = {
      .version = FL_WATERMARK_STRATEGY_VERSION,
      .kind = FL_WATERMARKS_BOUNDED,
      .max_out_of_orderness_ms = app->opt.out_of_orderness_ms,
  };

  fl_stream_t *lines = fl_source_lines(env, "purchases", input);
  fl_stream_t *purchases = fl_stream_process(lines, "parse", &parser_fn, app);
  fl_stream_t *timed = fl_stream_assign_timestamps(purchases, "event-time", &ws);
  fl_keyed_stream_t *by_user = fl_stream_key_by(timed, NULL, NULL);
  fl_windowed_stream_t *windows = fl_window_tumbling(by_user, FL_EVENT_TIME, app->opt.window_ms, 0);
  fl_output_tag_t *late_tag = fl_output_tag(env, "late-purchases");
  if (windows) fl_window_late_output(windows, late_tag);
  fl_stream_t *spend = fl_window_aggregate(windows, "spend-per-window", &spend_fn, NULL);
  int rc;
  if (app->opt.checkpoint_dir)
    rc = fl_stream_sink_files(fl_stream_process(spend, "format", &formatter_fn, app), "results",
                              output);
  else
    rc = fl_stream_sink(spend, "results", &result_sink_fn, app);
  if (rc == 0)
    rc = fl_stream_sink(fl_stream_side_output(spend, late_tag), "late", &late_sink_fn, app);
  return rc;
}

static bool same_amount(double a, double b) {
  return fabs(a - b) <= 1e-9 * fmax(1.0, fmax(fabs(a), fabs(b)));
}

int main(int argc, char **argv) {
  app_t app;
  fl_config_t *conf = NULL;
  fl_env_t *env = NULL;
  char *metrics = NULL;
  char errstr[512] = "";
  char demo_input[] = "/tmp/user_spend_in_XXXXXX";
  char demo_output[] = "/tmp/user_spend_out_XXXXXX";
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
    printf("user_spend demo (libflink %s): per-user spend in %" PRId64
           " ms tumbling event-time windows\n",
           fl_version_str(), app.opt.window_ms);
    if (!app.opt.input) {
      int fd = mkstemp(demo_input);
      FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
      if (!f) {
        fprintf(stderr, "user_spend: cannot create a temp file: %s\n", strerror(errno));
        if (fd >= 0) close(fd);
        goto done;
      }
      demo_input_made = true;
      int wrc = write_demo_input(f);
      if (fclose(f) != 0 || wrc != 0) {
        fprintf(stderr, "user_spend: cannot write %s\n", demo_input);
        goto done;
      }
      input = demo_input;
      printf(
          "input: %d generated purchases of %d users over one hour, ~5%% out of order "
          "(at most %d ms), plus 2 malformed lines\n",
          DEMO_PURCHASES, DEMO_USERS, DEMO_MAX_DELAY_MS);
    } else {
      printf("input: %s\n", input);
    }
    if (!app.opt.output) {
      int fd = mkstemp(demo_output);
      if (fd < 0) {
        fprintf(stderr, "user_spend: cannot create a temp file: %s\n", strerror(errno));
        goto done;
      }
      close(fd);
      demo_output_made = true;
      output = demo_output;
    }
    printf("parallelism %d, out-of-orderness %" PRId64 " ms\n\n", app.opt.parallelism,
           app.opt.out_of_orderness_ms);
    fflush(stdout);
  }

  /* With checkpoints the file sink owns the output directory. */
  if (!app.opt.checkpoint_dir) {
    app.out = strcmp(output, "-") == 0 ? stdout : fopen(output, "w");
    if (!app.out) {
      fprintf(stderr, "user_spend: cannot open %s: %s\n", output, strerror(errno));
      goto done;
    }
  }

  conf = fl_config_new();
  if (!conf) {
    fprintf(stderr, "user_spend: out of memory\n");
    goto done;
  }
  char par[16];
  snprintf(par, sizeof par, "%d", app.opt.parallelism);
  if (fl_config_set(conf, "parallelism", par, errstr, sizeof errstr) != 0 ||
      (app.opt.watermark_interval &&
       fl_config_set(conf, "pipeline.auto-watermark-interval", app.opt.watermark_interval, errstr,
                     sizeof errstr) != 0) ||
      configure_durability(conf, &app.opt, &resumed, errstr, sizeof errstr) != 0) {
    fprintf(stderr, "user_spend: %s\n", errstr);
    status = 2;
    goto done;
  }
  if (fl_env_new(&env, conf, errstr, sizeof errstr) != 0) {
    fprintf(stderr, "user_spend: %s\n", errstr);
    goto done;
  }
  build_job(env, &app, input, output); /* builder errors are reported by execute */
  rc = fl_env_execute(env, "user_spend");
  if (rc != 0) {
    fprintf(stderr, "user_spend: job failed (%s): %s\n", fl_err_name(rc), fl_env_error(env));
    goto done;
  }
  if (app.opt.demo) metrics = fl_env_metrics_json(env);
  /* Operator instances hand their totals over when they close, at the latest when the
   * environment is destroyed. */
  fl_env_destroy(env);
  env = NULL;
  if (app.out && app.out != stdout) {
    FILE *f = app.out;
    app.out = NULL;
    if (fclose(f) != 0) {
      fprintf(stderr, "user_spend: cannot write %s: %s\n", output, strerror(errno));
      goto done;
    }
  } else {
    fflush(stdout);
  }

  /* A resumed run reads only the input after the checkpoint, while the windows it emits
   * also hold purchases an earlier run read: its totals do not balance, and the check
   * is made only for runs that read the whole input. */
  totals_t *t = &app.totals;
  bool balanced = same_amount(t->spend_in, t->spend_out + t->late_spend) &&
                  t->purchases_in == t->purchases_out + t->late_purchases;
  const char *check = resumed    ? "skipped (resumed from a checkpoint: this run's counts only)"
                      : balanced ? "OK"
                                 : "MISMATCH";
  char in_s[64], out_s[64], late_s[64];
  format_amount(t->spend_in, in_s, sizeof in_s);
  format_amount(t->spend_out, out_s, sizeof out_s);
  format_amount(t->late_spend, late_s, sizeof late_s);
  if (app.opt.demo) {
    if (strcmp(output, "-") != 0) {
      if (resumed)
        printf("first committed results (sorted); this run emitted %" PRIu64 ":\n", t->windows_out);
      else
        printf("first results (sorted), of %" PRIu64 ":\n", t->windows_out);
      print_first_lines(output, DEMO_LINES_SHOWN);
      if (!demo_output_made) printf("all results: %s\n", output);
    }
    printf("\nsummary\n");
    printf("  purchases read:     %" PRIu64 " (%" PRIu64 " bad lines skipped)\n", t->purchases_in,
           t->lines_bad);
    printf("  windows emitted:    %" PRIu64 " covering %" PRIu64 " purchases\n", t->windows_out,
           t->purchases_out);
    printf("  late purchases:     %" PRIu64 " (spend %s), dropped by the windows\n",
           t->late_purchases, late_s);
    printf("  total spend in:     %s\n", in_s);
    printf("  total spend out:    %s\n", out_s);
    printf("  check in == out + late: %s\n", check);
    if (!resumed && !balanced)
      fprintf(stderr,
              "user_spend: MISMATCH: %" PRIu64 " purchases (spend %s) in, %" PRIu64
              " (spend %s) in windows + %" PRIu64 " late (spend %s)\n",
              t->purchases_in, in_s, t->purchases_out, out_s, t->late_purchases, late_s);
    printf("\nmetrics\n");
    print_metrics(metrics);
  } else {
    fprintf(stderr,
            "user_spend: %s%" PRIu64 " purchases (spend %s), %" PRIu64 " bad lines, %" PRIu64
            " windows (spend %s), %" PRIu64 " late (spend %s)%s\n",
            resumed ? "this run since the checkpoint: " : "", t->purchases_in, in_s, t->lines_bad,
            t->windows_out, out_s, t->late_purchases, late_s,
            resumed || balanced ? "" : " - MISMATCH");
  }
  status = resumed || balanced ? 0 : 1;

done:
  fl_env_destroy(env);
  fl_config_destroy(conf);
  fl_free(metrics);
  if (app.out && app.out != stdout) fclose(app.out);
  if (demo_input_made) unlink(demo_input);
  if (demo_output_made) unlink(demo_output);
  pthread_mutex_destroy(&app.totals.mu);
  return status;
}
