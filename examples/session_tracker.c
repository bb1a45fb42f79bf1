/*
 * session_tracker - user sessions from click events, with a KeyedProcessFunction.
 *
 *   JSON clicks, one per line: {"user":"u1","ts":1700000000000,"page":"/x"}
 *     -> lines source with a parse function (bad lines are reported and counted)
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
 *          [--checkpoint-dir DIR [--checkpoint-interval DUR]] [--set KEY=VALUE]...
 *
 * Uses only the public API (flink.h) and jansson; what the examples share (options,
 * configuration, bad-line reports, demo printouts) is in lib/example_util.c.
 */
#define _GNU_SOURCE
#include <inttypes.h>
#include <jansson.h>
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
  int64_t gap_ms;
  int64_t max_session_ms;
  int64_t ttl_ms;
} options_t;

/* Totals gathered from the tracker instances when they close (on their own threads). */
typedef struct totals {
  pthread_mutex_t mu;
  uint64_t sessions_gap;
  uint64_t sessions_timeout;
  uint64_t events_out; /* sum of the emitted sessions' event counts */
} totals_t;

/* The lines source's parse function: its state, touched by the reader alone. */
typedef struct parser {
  ex_buf_t user, page; /* the emitted key and value, valid until the next line */
  uint64_t clicks;
} parser_t;

typedef struct app {
  options_t opt;
  totals_t totals;
  parser_t parser;
  ex_bad_lines_t bad;
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

static int64_t add_sat(int64_t a, int64_t b) { return a > INT64_MAX - b ? INT64_MAX : a + b; }

/* ---------------------------------------------------------------------------------- */
/* Parsing: the lines source's parse function, in the single reader, line by line in  */
/* file order; a line it fails is reported with its number and counted                */

/* Emits key = user, value = page (may be empty), timestamp = ts. */
static int parse_click(fl_context_t *ctx, const void *line, size_t len, uint64_t line_no,
                       fl_record_t *out, void *opaque) {
  parser_t *p = opaque;
  int64_t ts;
  int rc;
  (void)line_no;

  json_t *root = ex_json_event(ctx, line, len, &p->user, &ts, &rc);
  if (!root) return rc; /* blank (0) or bad */
  json_t *page = json_object_get(root, "page");
  if (page && !json_is_string(page)) {
    rc = fl_ctx_fail(ctx, "\"page\" is not a string");
  } else if (ex_buf_set(&p->page, page ? json_string_value(page) : "",
                        page ? json_string_length(page) : 0) != 0) {
    rc = FL_ENOMEM;
  } else {
    *out = (fl_record_t){.key = p->user.data,
                         .key_len = p->user.len,
                         .value = p->page.data,
                         .value_len = p->page.len,
                         .timestamp = ts};
    p->clicks++;
    rc = 1;
  }
  json_decref(root);
  return rc;
}

/* ---------------------------------------------------------------------------------- */
/* The KeyedProcessFunction                                                           */

typedef struct tracker {
  app_t *app;
  ex_buf_t line;
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
  if (ex_buf_printf(&t->line, "{\"user\":") != 0 ||
      ex_buf_json_string(&t->line, key, key_len) != 0 ||
      ex_buf_printf(&t->line,
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
static int write_demo_input(FILE *f, void *arg) {
  size_t *n_out = arg;
  static const char *pages[] = {"/", "/search", "/item", "/cart", "/checkout", "/help"};
  click_t *v = NULL;
  size_t n = 0, cap = 0;
  uint64_t rng = 7;
  int rc = -1;

  for (int u = 0; u < DEMO_USERS; u++) {
    bool heavy = u < DEMO_HEAVY_USERS;
    int64_t t = DEMO_BASE_TS + (int64_t)(ex_splitmix64(&rng) % (40 * 60 * 1000));
    while (t < DEMO_BASE_TS + DEMO_SPAN_MS) {
      int burst = heavy ? 1 : 3 + (int)(ex_splitmix64(&rng) % 25);
      for (int k = 0; k < burst && t < DEMO_BASE_TS + DEMO_SPAN_MS; k++) {
        uint64_t r = ex_splitmix64(&rng);
        click_t c = {t, t, u + 1, (int)(r % 6)};
        if ((r >> 16) % 20 == 0) c.arrival += 1 + (int64_t)((r >> 24) % DEMO_MAX_DELAY_MS);
        if (push_click(&v, &n, &cap, c) != 0) goto done;
        /* within a burst: 5 s .. 10 min; heavy users: 1 .. 10 min */
        t += heavy ? 60000 + (int64_t)((r >> 32) % 540000) : 5000 + (int64_t)((r >> 32) % 595000);
      }
      if (!heavy) /* pause of 35 min .. 2 h: the session closes by gap */
        t += 35 * 60000 + (int64_t)(ex_splitmix64(&rng) % (85 * 60000));
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
/* Command line                                                                       */

static void usage(FILE *f) {
  fprintf(f,
          "usage: session_tracker [--demo] [--input PATH|-] [--output PATH|-]\n"
          "         [--parallelism N] [--out-of-orderness DUR] [--gap DUR]\n"
          "         [--max-session DUR] [--ttl DUR] [--watermark-interval DUR]\n"
          "         [--state-backend hashmap|rocksdb]\n"
          "         [--checkpoint-dir DIR [--checkpoint-interval DUR]] [--set KEY=VALUE]...\n"
          "Reads JSON clicks {\"user\":..,\"ts\":<epoch ms>,\"page\":..}, one per line, and\n"
          "writes one JSON line per user session.\n"
          "  --demo                generate 8 hours of sample clicks (unless --input), run,\n"
          "                        and print a summary and the job metrics\n"
          "  --input PATH|-        clicks (default: stdin, or the sample with --demo)\n"
          "  --gap D               inactivity that ends a session (default 30m)\n"
          "  --max-session D       longest session before it is cut (default 4h)\n"
          "  --ttl D               processing-time TTL of a session's state (default 2h)\n");
  ex_usage_common(f, "sessions");
}

static int parse_args(int argc, char **argv, options_t *o) {
  const ex_duration_opt_t own[] = {
      {"--gap", &o->gap_ms}, {"--max-session", &o->max_session_ms}, {"--ttl", &o->ttl_ms}};
  ex_opts_init(&o->c, "session_tracker");
  o->gap_ms = 30 * 60 * 1000;
  o->max_session_ms = 4 * 3600 * 1000;
  o->ttl_ms = 2 * 3600 * 1000;
  return ex_parse_args(&o->c, argc, argv, usage, own, sizeof own / sizeof own[0], "sessions");
}

/* ---------------------------------------------------------------------------------- */
/* The job                                                                            */

static int build_job(fl_env_t *env, app_t *app, const char *input, const char *output) {
  static const fl_process_fn_t tracker_fn = {
      .version = FL_PROCESS_FN_VERSION,
      .open = tracker_open,
      .process = tracker_process,
      .on_timer = tracker_on_timer,
      .close = tracker_close,
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
  fl_keyed_stream_t *by_user =
      ex_events_by_user(env, "clicks", input, parse_click, &app->parser, &app->bad, &app->opt.c);
  fl_stream_t *sessions = fl_keyed_process(by_user, "sessions", &tracker_fn, app);
  /* The tracker emits each session as its JSON line already. */
  if (app->opt.c.checkpoint_dir) return fl_stream_sink_files(sessions, "output", output);
  return fl_stream_sink_lines(sessions, "output", output);
}

int main(int argc, char **argv) {
  app_t app;
  const ex_opts_t *o = &app.opt.c;
  ex_run_t run = {0};
  size_t demo_clicks = 0;
  int status = 2, rc;

  memset(&app, 0, sizeof app);
  pthread_mutex_init(&app.totals.mu, NULL);
  ex_bad_lines_init(&app.bad, "session_tracker");
  if (parse_args(argc, argv, &app.opt) != 0) goto done;
  if (o->demo)
    printf("session_tracker demo (libflink %s): user sessions, gap %" PRId64 " ms, max %" PRId64
           " ms\n",
           fl_version_str(), app.opt.gap_ms, app.opt.max_session_ms);
  if ((status = ex_run_start(&run, o, write_demo_input, &demo_clicks)) != 0) goto done;
  status = 1;
  if (o->demo) {
    if (run.demo_input_made)
      printf(
          "input: %zu generated clicks of %d users over 8 hours (%d of them click all "
          "day), ~5%% out of order (at most %d ms), plus 1 malformed line\n",
          demo_clicks, DEMO_USERS, DEMO_HEAVY_USERS, DEMO_MAX_DELAY_MS);
    else
      printf("input: %s\n", run.input);
    printf("parallelism %d, out-of-orderness %" PRId64 " ms, state TTL %" PRId64 " ms\n\n",
           o->parallelism, o->out_of_orderness_ms, app.opt.ttl_ms);
    fflush(stdout);
  }
  rc = build_job(run.env, &app, run.input, run.output);
  if (rc != 0) {
    fprintf(stderr, "session_tracker: job failed (%s): %s\n", fl_err_name(rc),
            fl_env_error(run.env));
    goto done;
  }
  if (ex_run_execute(&run, "session_tracker") != 0) goto done;
  fflush(stdout);

  /* A resumed run reads only the input after the checkpoint, while the sessions it
   * emits also hold clicks an earlier run read: the check is made only for runs that
   * read the whole input. */
  const totals_t *t = &app.totals;
  uint64_t clicks = app.parser.clicks;
  uint64_t sessions = t->sessions_gap + t->sessions_timeout;
  bool balanced = t->events_out == clicks;
  const char *check = run.resumed ? "skipped (resumed from a checkpoint: this run's counts only)"
                      : balanced  ? "OK"
                                  : "MISMATCH";
  if (o->demo) {
    ex_run_print_output(&run, "sessions", sessions);
    printf("\nsummary\n");
    printf("  clicks read:        %" PRIu64 " (%" PRIu64 " bad lines skipped)\n", clicks,
           app.bad.n);
    printf("  sessions emitted:   %" PRIu64 " (%" PRIu64 " closed by gap, %" PRIu64
           " by timeout)\n",
           sessions, t->sessions_gap, t->sessions_timeout);
    printf("  clicks in sessions: %" PRIu64 "\n", t->events_out);
    printf("  check clicks read == clicks in sessions: %s\n", check);
    if (!run.resumed && !balanced)
      fprintf(stderr,
              "session_tracker: MISMATCH: %" PRIu64 " clicks read, %" PRIu64 " in sessions\n",
              clicks, t->events_out);
    printf("\nmetrics\n");
    ex_print_metrics(run.metrics);
  } else {
    fprintf(stderr,
            "session_tracker: %s%" PRIu64 " clicks, %" PRIu64 " bad lines, %" PRIu64
            " sessions (%" PRIu64 " gap, %" PRIu64 " timeout) of %" PRIu64 " clicks%s\n",
            run.resumed ? "this run since the checkpoint: " : "", clicks, app.bad.n, sessions,
            t->sessions_gap, t->sessions_timeout, t->events_out,
            run.resumed || balanced ? "" : " - MISMATCH");
  }
  status = run.resumed || balanced ? 0 : 1;

done:
  ex_run_done(&run);
  free(app.parser.user.data);
  free(app.parser.page.data);
  ex_bad_lines_done(&app.bad);
  pthread_mutex_destroy(&app.totals.mu);
  return status;
}
