/*
 * user_spend - per-user spend in tumbling 5-minute event-time windows.
 *
 *   JSON purchases, one per line: {"user":"u1","amount":12.5,"ts":1700000000000}
 *     -> lines source with a parse function (bad lines are reported and counted)
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
 *                   [--checkpoint-dir DIR [--checkpoint-interval DUR]] [--set KEY=VALUE]...
 *
 * Uses only the public API (flink.h) and jansson; what the examples share (options,
 * configuration, bad-line reports, demo printouts) is in lib/example_util.c.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "flink.h"
#include "lib/example_util.h"

/* ---------------------------------------------------------------------------------- */
/* Options and job-wide totals                                                        */

typedef struct options {
  ex_opts_t c; /* the common options */
  int64_t window_ms;
} options_t;

/* Totals gathered from the operator instances when they close. Instances of different
 * subtasks close on different threads, hence the mutex. The input's totals are the
 * parser's (it runs in the single reader). */
typedef struct totals {
  pthread_mutex_t mu;
  uint64_t windows_out;
  uint64_t purchases_out;
  double spend_out;
  uint64_t late_purchases;
  double late_spend;
} totals_t;

/* The lines source's parse function: its state, touched by the reader alone. */
typedef struct parser {
  ex_buf_t user; /* the emitted key, valid until the next line */
  double amount; /* the emitted value */
  uint64_t purchases;
  double spend;
} parser_t;

typedef struct app {
  options_t opt;
  totals_t totals;
  parser_t parser;
  ex_bad_lines_t bad;
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
/* Amounts                                                                            */

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
/* Parsing: the lines source's parse function. It runs in the single reader, line by
 * line in file order; a line it fails is reported with its number by the shared
 * bad-lines sink (lib/example_util.c) and counted. */

static int parse_purchase(fl_context_t *ctx, const void *line, size_t len, uint64_t line_no,
                          fl_record_t *out, void *opaque) {
  parser_t *p = opaque;
  int64_t ts;
  int rc;
  (void)line_no;

  json_t *root = ex_json_event(ctx, line, len, &p->user, &ts, &rc);
  if (!root) return rc; /* blank (0) or bad */
  json_t *amount = json_object_get(root, "amount");
  if (!json_is_number(amount) || !isfinite(json_number_value(amount))) {
    rc = fl_ctx_fail(ctx, "\"amount\" is missing or not a number");
  } else {
    p->amount = json_number_value(amount);
    *out = (fl_record_t){.key = p->user.data,
                         .key_len = p->user.len,
                         .value = &p->amount,
                         .value_len = sizeof p->amount,
                         .timestamp = ts};
    p->purchases++;
    p->spend += p->amount;
    rc = 1;
  }
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

/* What an instance of an output step counted, added to the totals when it closes. */
typedef struct result_counts {
  uint64_t windows;
  uint64_t purchases;
  double spend;
  uint64_t late_purchases;
  double late_spend;
} result_counts_t;

static void add_result_counts(totals_t *t, const result_counts_t *c) {
  pthread_mutex_lock(&t->mu);
  t->windows_out += c->windows;
  t->purchases_out += c->purchases;
  t->spend_out += c->spend;
  t->late_purchases += c->late_purchases;
  t->late_spend += c->late_spend;
  pthread_mutex_unlock(&t->mu);
}

/* Sets line to the JSON line of a window result (without the newline) and counts it. */
static int format_result(fl_context_t *ctx, const fl_record_t *in, ex_buf_t *line,
                         result_counts_t *counts) {
  spend_result_t r;
  char amount[64];
  if (in->value_len != sizeof r)
    return fl_ctx_fail(ctx, "unexpected window result of %zu bytes", in->value_len);
  memcpy(&r, in->value, sizeof r);
  format_amount(r.spend, amount, sizeof amount);
  line->len = 0;
  if (ex_buf_printf(line, "{\"user\":") != 0 ||
      ex_buf_json_string(line, in->key, in->key_len) != 0 ||
      ex_buf_printf(line,
                    ",\"window_start\":%" PRId64 ",\"window_end\":%" PRId64
                    ",\"spend\":%s,\"purchases\":%" PRIu64 "}",
                    r.window_start, r.window_end, amount, r.purchases) != 0)
    return FL_ENOMEM;
  counts->windows++;
  counts->purchases += r.purchases;
  counts->spend += r.spend;
  return 0;
}

/* An instance of an output step. What turns window results into JSON lines, in either
 * form: without checkpoints a sink that writes them to the output file or stdout; with
 * them a ProcessFunction that emits them to the exactly-once file sink (which adds the
 * newline). Its counts cover what it wrote or emitted, including lines a crash would
 * later discard. The sink of late purchases counts them. */
typedef struct formatter {
  app_t *app;
  ex_buf_t line;
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

static void formatter_close(void *instance) {
  formatter_t *f = instance;
  add_result_counts(&f->app->totals, &f->counts);
  free(f->line.data);
  free(f);
}

static int result_sink_write(fl_context_t *ctx, const fl_record_t *in, void *instance) {
  formatter_t *f = instance;
  int rc = format_result(ctx, in, &f->line, &f->counts);
  if (rc == 0) rc = ex_buf_printf(&f->line, "\n");
  if (rc != 0) return rc;
  /* One fwrite per line: stdio locks the stream per call, so lines of different
   * subtasks never interleave. */
  if (fwrite(f->line.data, 1, f->line.len, f->app->out) != f->line.len)
    return fl_ctx_fail(ctx, "write failed: %s", strerror(errno));
  return 0;
}

static int result_sink_flush(fl_context_t *ctx, void *instance) {
  formatter_t *f = instance;
  if (fflush(f->app->out) != 0) return fl_ctx_fail(ctx, "flush failed: %s", strerror(errno));
  return 0;
}

static int formatter_process(fl_context_t *ctx, const fl_record_t *in, void *instance) {
  formatter_t *f = instance;
  int rc = format_result(ctx, in, &f->line, &f->counts);
  if (rc != 0) return rc;
  return fl_emit(ctx, in->key, in->key_len, f->line.data, f->line.len, in->timestamp);
}

static int late_sink_write(fl_context_t *ctx, const fl_record_t *in, void *instance) {
  (void)ctx;
  formatter_t *f = instance;
  double v = 0;
  if (in->value_len == sizeof v) memcpy(&v, in->value, sizeof v);
  f->counts.late_purchases++;
  f->counts.late_spend += v;
  return 0;
}

/* ---------------------------------------------------------------------------------- */
/* Demo input                                                                         */

#define DEMO_PURCHASES 3000
#define DEMO_USERS 50
#define DEMO_BASE_TS INT64_C(1699999800000) /* a multiple of 5 minutes */
#define DEMO_STEP_MS 1200                   /* 3000 purchases over one hour */
#define DEMO_MAX_DELAY_MS 4000              /* below the default 5 s out-of-orderness */

/* A deterministic hour of purchases. About 5% arrive out of order, but never by more
 * than DEMO_MAX_DELAY_MS behind the largest timestamp seen, so with the default
 * out-of-orderness none is late. Two malformed lines show the bad-line handling. */
static int write_demo_input(FILE *f, void *arg) {
  uint64_t rng = 42;
  (void)arg;
  for (int i = 0; i < DEMO_PURCHASES; i++) {
    uint64_t r = ex_splitmix64(&rng);
    int64_t ts = DEMO_BASE_TS + (int64_t)i * DEMO_STEP_MS + (int64_t)(r % DEMO_STEP_MS);
    if ((r >> 20) % 20 == 0) ts -= 1 + (int64_t)((r >> 32) % DEMO_MAX_DELAY_MS);
    int user = 1 + (int)((r >> 40) % DEMO_USERS);
    unsigned cents = 100 + (unsigned)((ex_splitmix64(&rng) >> 33) % 24900);
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
/* Command line                                                                       */

static void usage(FILE *f) {
  fprintf(f,
          "usage: user_spend [--demo] [--input PATH|-] [--output PATH|-] [--parallelism N]\n"
          "                  [--out-of-orderness DUR] [--window DUR]\n"
          "                  [--watermark-interval DUR] [--state-backend hashmap|rocksdb]\n"
          "                  [--checkpoint-dir DIR [--checkpoint-interval DUR]]\n"
          "                  [--set KEY=VALUE]...\n"
          "Reads JSON purchases {\"user\":..,\"amount\":..,\"ts\":<epoch ms>}, one per line,\n"
          "and writes each user's spend per tumbling event-time window as JSON lines.\n"
          "  --demo                generate an hour of sample purchases (unless --input),\n"
          "                        run, and print a summary and the job metrics\n"
          "  --input PATH|-        purchases (default: stdin, or the sample with --demo)\n"
          "  --window D            window size (default 5m)\n");
  ex_usage_common(f, "results");
}

static int parse_args(int argc, char **argv, options_t *o) {
  const ex_duration_opt_t own[] = {{"--window", &o->window_ms}};
  ex_opts_init(&o->c, "user_spend");
  o->window_ms = 5 * 60 * 1000;
  return ex_parse_args(&o->c, argc, argv, usage, own, 1, "results");
}

/* ---------------------------------------------------------------------------------- */
/* The job                                                                            */

static int build_job(fl_env_t *env, app_t *app, const char *input, const char *output) {
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
      .open = formatter_open,
      .write = result_sink_write,
      .flush = result_sink_flush,
      .close = formatter_close,
  };
  static const fl_process_fn_t formatter_fn = {
      .version = FL_PROCESS_FN_VERSION,
      .open = formatter_open,
      .process = formatter_process,
      .close = formatter_close,
  };
  static const fl_sink_fn_t late_sink_fn = {
      .version = FL_SINK_FN_VERSION,
      .open = formatter_open,
      .write = late_sink_write,
      .close = formatter_close,
  };

  fl_keyed_stream_t *by_user = ex_events_by_user(env, "purchases", input, parse_purchase,
                                                 &app->parser, &app->bad, &app->opt.c);
  fl_windowed_stream_t *windows = fl_window_tumbling(by_user, FL_EVENT_TIME, app->opt.window_ms, 0);
  fl_output_tag_t *late_tag = fl_output_tag(env, "late-purchases");
  if (windows) fl_window_late_output(windows, late_tag);
  fl_stream_t *spend = fl_window_aggregate(windows, "spend-per-window", &spend_fn, NULL);
  int rc;
  if (app->opt.c.checkpoint_dir)
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
  const ex_opts_t *o = &app.opt.c;
  ex_run_t run = {0};
  int status = 2;

  memset(&app, 0, sizeof app);
  pthread_mutex_init(&app.totals.mu, NULL);
  ex_bad_lines_init(&app.bad, "user_spend");
  if (parse_args(argc, argv, &app.opt) != 0) goto done;
  if (o->demo)
    printf("user_spend demo (libflink %s): per-user spend in %" PRId64
           " ms tumbling event-time windows\n",
           fl_version_str(), app.opt.window_ms);
  if ((status = ex_run_start(&run, o, write_demo_input, NULL)) != 0) goto done;
  status = 1;
  if (o->demo) {
    if (run.demo_input_made)
      printf(
          "input: %d generated purchases of %d users over one hour, ~5%% out of order "
          "(at most %d ms), plus 2 malformed lines\n",
          DEMO_PURCHASES, DEMO_USERS, DEMO_MAX_DELAY_MS);
    else
      printf("input: %s\n", run.input);
    printf("parallelism %d, out-of-orderness %" PRId64 " ms\n\n", o->parallelism,
           o->out_of_orderness_ms);
    fflush(stdout);
  }

  /* With checkpoints the file sink owns the output directory. */
  if (!o->checkpoint_dir) {
    app.out = strcmp(run.output, "-") == 0 ? stdout : fopen(run.output, "w");
    if (!app.out) {
      fprintf(stderr, "user_spend: cannot open %s: %s\n", run.output, strerror(errno));
      goto done;
    }
  }
  build_job(run.env, &app, run.input, run.output); /* builder errors are reported by execute */
  if (ex_run_execute(&run, "user_spend") != 0) goto done;
  if (app.out && app.out != stdout) {
    FILE *f = app.out;
    app.out = NULL;
    if (fclose(f) != 0) {
      fprintf(stderr, "user_spend: cannot write %s: %s\n", run.output, strerror(errno));
      goto done;
    }
  } else {
    fflush(stdout);
  }

  /* A resumed run reads only the input after the checkpoint, while the windows it emits
   * also hold purchases an earlier run read: its totals do not balance, and the check
   * is made only for runs that read the whole input. */
  const totals_t *t = &app.totals;
  const parser_t *in = &app.parser;
  bool balanced = same_amount(in->spend, t->spend_out + t->late_spend) &&
                  in->purchases == t->purchases_out + t->late_purchases;
  const char *check = run.resumed ? "skipped (resumed from a checkpoint: this run's counts only)"
                      : balanced  ? "OK"
                                  : "MISMATCH";
  char in_s[64], out_s[64], late_s[64];
  format_amount(in->spend, in_s, sizeof in_s);
  format_amount(t->spend_out, out_s, sizeof out_s);
  format_amount(t->late_spend, late_s, sizeof late_s);
  if (o->demo) {
    ex_run_print_output(&run, "results", t->windows_out);
    printf("\nsummary\n");
    printf("  purchases read:     %" PRIu64 " (%" PRIu64 " bad lines skipped)\n", in->purchases,
           app.bad.n);
    printf("  windows emitted:    %" PRIu64 " covering %" PRIu64 " purchases\n", t->windows_out,
           t->purchases_out);
    printf("  late purchases:     %" PRIu64 " (spend %s), dropped by the windows\n",
           t->late_purchases, late_s);
    printf("  total spend in:     %s\n", in_s);
    printf("  total spend out:    %s\n", out_s);
    printf("  check in == out + late: %s\n", check);
    if (!run.resumed && !balanced)
      fprintf(stderr,
              "user_spend: MISMATCH: %" PRIu64 " purchases (spend %s) in, %" PRIu64
              " (spend %s) in windows + %" PRIu64 " late (spend %s)\n",
              in->purchases, in_s, t->purchases_out, out_s, t->late_purchases, late_s);
    printf("\nmetrics\n");
    ex_print_metrics(run.metrics);
  } else {
    fprintf(stderr,
            "user_spend: %s%" PRIu64 " purchases (spend %s), %" PRIu64 " bad lines, %" PRIu64
            " windows (spend %s), %" PRIu64 " late (spend %s)%s\n",
            run.resumed ? "this run since the checkpoint: " : "", in->purchases, in_s, app.bad.n,
            t->windows_out, out_s, t->late_purchases, late_s,
            run.resumed || balanced ? "" : " - MISMATCH");
  }
  status = run.resumed || balanced ? 0 : 1;

done:
  ex_run_done(&run);
  free(app.parser.user.data);
  if (app.out && app.out != stdout) fclose(app.out);
  ex_bad_lines_done(&app.bad);
  pthread_mutex_destroy(&app.totals.mu);
  return status;
}
