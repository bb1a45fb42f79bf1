/*
 * The lines source and sink (fl_source_lines, fl_stream_sink_lines), through the public
 * API only: real files in a temporary directory, a pipe on stdin, and whole jobs.
 */
#define _GNU_SOURCE

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "fl_test_util.h"
#include "flink.h"
#include "run_util.h"

#define MIB ((size_t)1 << 20)

/* ---------------------------------------------------------------------------------- */
/* Helpers                                                                            */

static fl_env_t *new_env(int parallelism) {
  fl_env_t *env = env_with(parallelism, NULL);
  assert_non_null(env);
  return env;
}

/* Runs lines source(path) -> collecting sink at parallelism 1. Returns execute's code;
 * on failure copies the env error into err. The records carry no key and no time. */
static int read_lines(const char *path, collector_t *out, char *err, size_t err_size) {
  fl_env_t *env = new_env(1);
  int rc;
  collector_init(out);
  assert_int_equal(
      fl_stream_sink(fl_source_lines(env, "src", path), "collect", &collector_sink, out), FL_OK);
  rc = fl_env_execute(env, "read-lines");
  if (err != NULL) snprintf(err, err_size, "%s", fl_env_error(env));
  fl_env_destroy(env);
  for (size_t i = 0; i < out->n; i++) {
    assert_int_equal(out->r[i].key_len, 0);
    assert_int_equal(out->r[i].ts, FL_TS_NONE);
  }
  return rc;
}

/* The data file of the tests, in the group's temporary directory. */
static const char *data_path(void) {
  static char p[PATH_MAX];
  snprintf(p, sizeof p, "%s/data.txt", g_tmpdir);
  return p;
}

/* The whole file (the caller frees), which must exist. */
static char *read_file(const char *path, size_t *len) {
  char *data = read_text(path, len);
  assert_non_null(data);
  return data;
}

/* A buffer of generated content: byte i of line `seed` is a function of both. */
static void fill_pattern(char *p, size_t len, unsigned seed) {
  for (size_t i = 0; i < len; i++) p[i] = (char)('a' + (i * 7 + seed) % 26);
}

static int is_pattern(const char *p, size_t len, unsigned seed) {
  for (size_t i = 0; i < len; i++)
    if (p[i] != (char)('a' + (i * 7 + seed) % 26)) return 0;
  return 1;
}

/* ---------------------------------------------------------------------------------- */
/* Source                                                                             */

static void lines_source_strips_crlf_keeps_empty_lines_and_unterminated_last(void **state) {
  /* "\r" only goes with a following "\n"; an inner "\r" is data. */
  static const char data[] = "a\r\nbb\n\n\r\nx\ry\nlast";
  static const char *const want[] = {"a", "bb", "", "", "x\ry", "last"};
  collector_t c;
  write_bytes(data_path(), data, sizeof(data) - 1);
  assert_int_equal(read_lines(data_path(), &c, NULL, 0), FL_OK);
  assert_int_equal(c.n, 6);
  for (size_t i = 0; i < 6; i++) assert_string_equal(c.r[i].value, want[i]);
  collector_free(&c);
}

static void lines_source_empty_file_gives_no_records(void **state) {
  collector_t c;
  write_bytes(data_path(), "", 0);
  assert_int_equal(read_lines(data_path(), &c, NULL, 0), FL_OK);
  assert_int_equal(c.n, 0);
  collector_free(&c);
}

static void lines_source_reads_3mib_lines_across_buffer_refills(void **state) {
  const size_t big = 3 * MIB;
  size_t len = 0;
  char *data = malloc(4 * big + 64);
  collector_t c;

  len += (size_t)sprintf(data + len, "head\n");
  fill_pattern(data + len, big, 1);
  len += big;
  len += (size_t)sprintf(data + len, "\nmid\n");
  fill_pattern(data + len, big + 5, 2);
  len += big + 5;
  len += (size_t)sprintf(data + len, "\r\n");
  fill_pattern(data + len, big - 3, 3);
  len += big - 3;
  len += (size_t)sprintf(data + len, "\ntail");
  write_bytes(data_path(), data, len);

  assert_int_equal(read_lines(data_path(), &c, NULL, 0), FL_OK);
  assert_int_equal(c.n, 6);
  assert_string_equal(c.r[0].value, "head");
  assert_int_equal(c.r[1].value_len, big);
  assert_true(is_pattern(c.r[1].value, big, 1));
  assert_string_equal(c.r[2].value, "mid");
  assert_int_equal(c.r[3].value_len, big + 5);
  assert_true(is_pattern(c.r[3].value, big + 5, 2));
  assert_int_equal(c.r[4].value_len, big - 3);
  assert_true(is_pattern(c.r[4].value, big - 3, 3));
  assert_string_equal(c.r[5].value, "tail");
  collector_free(&c);
  free(data);
}

static void lines_source_accepts_a_line_of_exactly_16mib_ending_in_crlf(void **state) {
  const size_t max = 16 * MIB;
  char *data = malloc(max + 16);
  collector_t c;
  fill_pattern(data, max, 4);
  memcpy(data + max, "\r\nend\n", 6);
  write_bytes(data_path(), data, max + 6);
  assert_int_equal(read_lines(data_path(), &c, NULL, 0), FL_OK);
  assert_int_equal(c.n, 2);
  assert_int_equal(c.r[0].value_len, max);
  assert_true(is_pattern(c.r[0].value, max, 4));
  assert_string_equal(c.r[1].value, "end");
  collector_free(&c);
  free(data);
}

static void lines_source_fails_on_a_line_over_16mib_naming_path_and_line(void **state) {
  const size_t over = 16 * MIB + 1;
  char *data = malloc(over + 64);
  char err[1024];
  char want_line[32];
  collector_t c;
  size_t len = 0;

  /* Terminated: line 3 is one byte too long. */
  len += (size_t)sprintf(data, "one\ntwo\n");
  memset(data + len, 'y', over);
  len += over;
  data[len++] = '\n';
  write_bytes(data_path(), data, len);
  assert_int_not_equal(read_lines(data_path(), &c, err, sizeof(err)), FL_OK);
  assert_non_null(strstr(err, data_path()));
  snprintf(want_line, sizeof(want_line), "line %d ", 3);
  assert_non_null(strstr(err, want_line));
  assert_true(c.n <= 2); /* nothing of the long line got through */
  collector_free(&c);

  /* Unterminated last line: line 2. */
  len = (size_t)sprintf(data, "one\n");
  memset(data + len, 'z', over);
  len += over;
  write_bytes(data_path(), data, len);
  assert_int_not_equal(read_lines(data_path(), &c, err, sizeof(err)), FL_OK);
  assert_non_null(strstr(err, data_path()));
  assert_non_null(strstr(err, "line 2 "));
  collector_free(&c);
  free(data);
}

static void lines_source_missing_file_fails_naming_the_path(void **state) {
  char path[PATH_MAX], err[PATH_MAX + 256];
  collector_t c;
  snprintf(path, sizeof(path), "%s/does-not-exist.txt", g_tmpdir);
  assert_int_not_equal(read_lines(path, &c, err, sizeof(err)), FL_OK);
  assert_non_null(strstr(err, path));
  assert_non_null(strstr(err, strerror(ENOENT)));
  assert_int_equal(c.n, 0);
  collector_free(&c);
}

static void lines_source_null_path_is_a_builder_error(void **state) {
  fl_env_t *env = new_env(1);
  assert_null(fl_source_lines(env, "src", NULL));
  assert_int_equal(fl_env_execute(env, "x"), FL_EINVAL);
  assert_non_null(strstr(fl_env_error(env), "src"));
  fl_env_destroy(env);
}

/* Standard input replaced by the read end of a pipe that writer(arg) feeds on a thread of
 * its own, from the write end it finds in *fd (and closes). */
typedef struct stdin_feed {
  int saved_stdin;
  pthread_t writer;
} stdin_feed_t;

static void stdin_feed_start(stdin_feed_t *f, int *fd, void *(*writer)(void *), void *arg) {
  int fds[2];
  assert_int_equal(pipe(fds), 0);
  f->saved_stdin = dup(STDIN_FILENO);
  assert_true(f->saved_stdin >= 0);
  assert_int_equal(dup2(fds[0], STDIN_FILENO), STDIN_FILENO);
  close(fds[0]);
  *fd = fds[1];
  assert_int_equal(pthread_create(&f->writer, NULL, writer, arg), 0);
}

/* Waits for the writer and gives standard input back. */
static void stdin_feed_end(stdin_feed_t *f) {
  pthread_join(f->writer, NULL);
  assert_int_equal(dup2(f->saved_stdin, STDIN_FILENO), STDIN_FILENO);
  close(f->saved_stdin);
}

typedef struct pipe_writer {
  int fd;
  int lines;
} pipe_writer_t;

/* Writes "p<i>\n" lines in uneven pieces so that reads see partial lines and, now and
 * then, an empty pipe. */
static void *pipe_writer_main(void *arg) {
  pipe_writer_t *w = arg;
  char buf[64];
  for (int i = 0; i < w->lines; i++) {
    int n = snprintf(buf, sizeof(buf), "p%d\n", i);
    int cut = i % 3 == 0 ? n / 2 : n;
    if (write(w->fd, buf, (size_t)cut) != cut) abort();
    if (cut < n && write(w->fd, buf + cut, (size_t)(n - cut)) != n - cut) abort();
  }
  if (write(w->fd, "no-newline", 10) != 10) abort();
  close(w->fd);
  return NULL;
}

static void lines_source_reads_stdin_from_a_pipe(void **state) {
  pipe_writer_t w = {.lines = 5000};
  stdin_feed_t feed;
  collector_t c;
  char want[32];

  stdin_feed_start(&feed, &w.fd, pipe_writer_main, &w);
  assert_int_equal(read_lines("-", &c, NULL, 0), FL_OK);
  stdin_feed_end(&feed);

  assert_int_equal(c.n, 5001);
  for (int i = 0; i < 5000; i++) {
    snprintf(want, sizeof(want), "p%d", i);
    assert_string_equal(c.r[i].value, want);
  }
  assert_string_equal(c.r[5000].value, "no-newline");
  collector_free(&c);
}

/* ---------------------------------------------------------------------------------- */
/* Source options: line limit, parse function, error policy                           */

#define KIB ((size_t)1 << 10)

/* "bad" fails (fl_ctx_fail), "drop" is dropped, other lines become records with key "K"
 * and timestamp 10 * line number. Counts its calls and its destruction. */
typedef struct parse_state {
  int calls;
  int destroyed;
} parse_state_t;

static int test_parse(fl_context_t *ctx, const void *line, size_t len, uint64_t line_no,
                      fl_record_t *out, void *opaque) {
  parse_state_t *ps = opaque;
  ps->calls++;
  if (out->value != line || out->value_len != len || out->timestamp != FL_TS_NONE) abort();
  if (len == 3 && memcmp(line, "bad", 3) == 0) return fl_ctx_fail(ctx, "not ok: %.*s", 3, "bad");
  if (len == 4 && memcmp(line, "drop", 4) == 0) return 0;
  out->key = "K";
  out->key_len = 1;
  out->timestamp = (int64_t)line_no * 10;
  return 1;
}

static void test_parse_destroy(void *opaque) { ((parse_state_t *)opaque)->destroyed++; }

/* A user metric of the operator named op (its "metrics" object), -1 when it has none. */
static long long user_metric(fl_env_t *env, const char *op, const char *name) {
  json_t *root = metrics_of(env);
  json_t *o = metrics_op(root, op);
  json_t *v = o ? json_object_get(json_object_get(o, "metrics"), name) : NULL;
  long long n = json_is_integer(v) ? (long long)json_integer_value(v) : -1;
  json_decref(root);
  return n;
}

/*
 * Lines: 1 ok1; 2 2 MiB + "\r\n" (over the limit, longer than the read buffer: read and
 * discarded); 3 3000 bytes (over the limit, whole in the buffer); 4 bad (the parse
 * function fails); 5 drop (dropped by it); 6 ok2; 7 600 KiB without a newline (over
 * the limit, at the end of the input).
 */
static size_t policy_input(char **out, size_t *offsets) {
  size_t cap = 2 * MIB + 700 * KIB, len = 0;
  char *d = malloc(cap);
  assert_non_null(d);
  offsets[1] = len;
  len += (size_t)sprintf(d + len, "ok1\n");
  offsets[2] = len;
  memset(d + len, 'x', 2 * MIB);
  len += 2 * MIB;
  len += (size_t)sprintf(d + len, "\r\n");
  offsets[3] = len;
  memset(d + len, 'z', 3000);
  len += 3000;
  d[len++] = '\n';
  offsets[4] = len;
  len += (size_t)sprintf(d + len, "bad\n");
  offsets[5] = len;
  len += (size_t)sprintf(d + len, "drop\n");
  offsets[6] = len;
  len += (size_t)sprintf(d + len, "ok2\n");
  offsets[7] = len;
  memset(d + len, 'y', 600 * KIB);
  len += 600 * KIB;
  *out = d;
  return len;
}

typedef struct policy_run {
  int rc;
  char err[1024];
  collector_t main, dead;
  long long skipped, dead_lettered;
} policy_run_t;

/* Clears r and adds the source "src" reading with o to env, its records collected in
 * r->main; returns the source. */
static fl_stream_t *policy_run_source(policy_run_t *r, fl_env_t *env,
                                      const fl_lines_source_opts_t *o) {
  memset(r, 0, sizeof(*r));
  collector_init(&r->main);
  collector_init(&r->dead);
  fl_stream_t *src = fl_source_lines_opts(env, "src", o);
  assert_non_null(src);
  assert_int_equal(fl_stream_sink(src, "main", &collector_sink, &r->main), FL_OK);
  return src;
}

static void run_policy(const char *path, fl_lines_error_policy_t policy, parse_state_t *ps,
                       policy_run_t *out) {
  fl_env_t *env = new_env(2);
  fl_output_tag_t *tag = fl_output_tag(env, "bad-lines");
  fl_lines_source_opts_t o = {.version = FL_LINES_SOURCE_OPTS_VERSION,
                              .path = path,
                              .max_line_bytes = 1024,
                              .parse = test_parse,
                              .parse_opaque = ps,
                              .parse_destroy = test_parse_destroy,
                              .on_error = policy,
                              .dead_letter = policy == FL_LINES_ON_ERROR_DEAD_LETTER ? tag : NULL,
                              .dead_letter_head_bytes = 100};
  fl_stream_t *src = policy_run_source(out, env, &o);
  if (policy == FL_LINES_ON_ERROR_DEAD_LETTER)
    assert_int_equal(
        fl_stream_sink(fl_stream_side_output(src, tag), "dead", &collector_sink, &out->dead),
        FL_OK);
  out->rc = fl_env_execute(env, "policy");
  snprintf(out->err, sizeof(out->err), "%s", fl_env_error(env));
  out->skipped = user_metric(env, "src", "lines-skipped");
  out->dead_lettered = user_metric(env, "src", "lines-dead-lettered");
  assert_int_equal(ps->destroyed, 0);
  fl_env_destroy(env);
  assert_int_equal(ps->destroyed, 1);
}

static void policy_run_free(policy_run_t *r) {
  collector_free(&r->main);
  collector_free(&r->dead);
}

static void assert_good_records(const collector_t *c) {
  assert_int_equal(c->n, 2);
  assert_string_equal(c->r[0].value, "ok1");
  assert_string_equal(c->r[0].key, "K");
  assert_int_equal(c->r[0].ts, 10);
  assert_string_equal(c->r[1].value, "ok2");
  assert_int_equal(c->r[1].ts, 60);
}

static void lines_opts_skip_drops_bad_lines_and_counts_them(void **state) {
  size_t offsets[8];
  char *data;
  size_t len = policy_input(&data, offsets);
  parse_state_t ps = {0};
  policy_run_t r;
  write_bytes(data_path(), data, len);
  free(data);
  run_policy(data_path(), FL_LINES_ON_ERROR_SKIP, &ps, &r);
  if (r.rc != FL_OK) fail_msg("%s", r.err);
  assert_good_records(&r.main);
  assert_int_equal(ps.calls, 4); /* the over-long lines never reach the parse function */
  assert_int_equal(r.skipped, 4);
  policy_run_free(&r);
}

static void lines_opts_dead_letters_carry_line_length_offset_and_error(void **state) {
  static const struct {
    uint64_t line_no, len;
    char fill;
    const char *error;
  } want[] = {{2, 2 * MIB, 'x', "longer than 1024 bytes (2097152 bytes)"},
              {3, 3000, 'z', "longer than 1024 bytes (3000 bytes)"},
              {4, 3, 0, "not ok: bad"},
              {7, 600 * KIB, 'y', "longer than 1024 bytes (614400 bytes)"}};
  size_t offsets[8];
  char *data;
  size_t len = policy_input(&data, offsets);
  parse_state_t ps = {0};
  policy_run_t r;
  fl_lines_dead_letter_t dl;
  write_bytes(data_path(), data, len);
  free(data);
  run_policy(data_path(), FL_LINES_ON_ERROR_DEAD_LETTER, &ps, &r);
  if (r.rc != FL_OK) fail_msg("%s", r.err);
  assert_good_records(&r.main);
  assert_int_equal(r.dead.n, 4);
  assert_int_equal(r.dead_lettered, 4);
  assert_true(r.skipped <= 0);
  for (size_t i = 0; i < 4; i++) {
    fl_record_t rec = {.key = r.dead.r[i].key,
                       .key_len = r.dead.r[i].key_len,
                       .value = r.dead.r[i].value,
                       .value_len = r.dead.r[i].value_len,
                       .timestamp = r.dead.r[i].ts};
    assert_int_equal(fl_lines_dead_letter_read(&rec, &dl), FL_OK);
    assert_int_equal(dl.line_no, want[i].line_no);
    assert_int_equal(dl.offset, offsets[want[i].line_no]);
    assert_int_equal(dl.line_len, want[i].len);
    assert_string_equal(dl.error, want[i].error);
    assert_ptr_equal(dl.line, rec.value);
    assert_int_equal(rec.timestamp, FL_TS_NONE);
    if (want[i].fill == 0) {
      assert_int_equal(dl.kept_len, 3);
      assert_memory_equal(dl.line, "bad", 3);
    } else {
      assert_int_equal(dl.kept_len, 100);
      for (size_t k = 0; k < 100; k++) assert_int_equal(((const char *)dl.line)[k], want[i].fill);
    }
  }
  /* A record that is not a dead letter. */
  fl_record_t plain = rec_str("K", "ok1", 10);
  assert_int_equal(fl_lines_dead_letter_read(&plain, &dl), FL_EINVAL);
  policy_run_free(&r);
}

static void lines_opts_fail_names_path_line_and_cause(void **state) {
  size_t offsets[8];
  char *data, want[PATH_MAX + 64];
  size_t len = policy_input(&data, offsets);
  parse_state_t ps = {0};
  policy_run_t r;

  /* The parse function's failure, on line 4. */
  memcpy(data + offsets[4] - 4, "ok1\n", 4);
  write_bytes(data_path(), data + offsets[4] - 4, len - offsets[4] + 4);
  run_policy(data_path(), FL_LINES_ON_ERROR_FAIL, &ps, &r);
  assert_int_equal(r.rc, FL_EUSER);
  snprintf(want, sizeof(want), "%s: line 2: not ok: bad", data_path());
  if (strstr(r.err, want) == NULL) fail_msg("%s", r.err);
  policy_run_free(&r);

  /* An over-long line, on line 2. */
  ps.destroyed = 0;
  free(data);
  len = policy_input(&data, offsets);
  write_bytes(data_path(), data, len);
  run_policy(data_path(), FL_LINES_ON_ERROR_FAIL, &ps, &r);
  assert_int_not_equal(r.rc, FL_OK);
  snprintf(want, sizeof(want), "%s: line 2 is longer than 1024 bytes", data_path());
  if (strstr(r.err, want) == NULL) fail_msg("%s", r.err);
  assert_int_equal(r.main.n, 1);
  policy_run_free(&r);
  free(data);
}

static void lines_opts_builder_errors_name_the_field(void **state) {
  static const struct {
    int version;
    const char *path;
    size_t max;
    int policy;
    const char *must;
  } cases[] = {
      {0, "x", 0, FL_LINES_ON_ERROR_FAIL, "version"},
      {FL_LINES_SOURCE_OPTS_VERSION, NULL, 0, FL_LINES_ON_ERROR_FAIL, "path"},
      {FL_LINES_SOURCE_OPTS_VERSION, "x", ((size_t)1 << 30) + 1, FL_LINES_ON_ERROR_FAIL,
       "max_line_bytes"},
      {FL_LINES_SOURCE_OPTS_VERSION, "x", 0, 7, "on_error"},
      {FL_LINES_SOURCE_OPTS_VERSION, "x", 0, FL_LINES_ON_ERROR_DEAD_LETTER, "dead_letter"},
  };
  (void)state;
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    fl_env_t *env = new_env(1);
    parse_state_t ps = {0};
    fl_lines_source_opts_t o = {.version = cases[i].version,
                                .path = cases[i].path,
                                .max_line_bytes = cases[i].max,
                                .parse = test_parse,
                                .parse_opaque = &ps,
                                .parse_destroy = test_parse_destroy,
                                .on_error = (fl_lines_error_policy_t)cases[i].policy};
    assert_null(fl_source_lines_opts(env, "src", &o));
    assert_int_equal(ps.destroyed, 1); /* not kept: destroyed at once */
    assert_int_equal(fl_env_execute(env, "x"), FL_EINVAL);
    if (strstr(fl_env_error(env), "src: ") == NULL ||
        strstr(fl_env_error(env), cases[i].must) == NULL)
      fail_msg("case %zu: %s", i, fl_env_error(env));
    fl_env_destroy(env);
    assert_int_equal(ps.destroyed, 1);
  }
  assert_null(fl_source_lines_opts(NULL, "src", NULL));
}

typedef struct long_writer {
  int fd;
  size_t len;
} long_writer_t;

/* Writes "first\n", one line of len 'q' bytes, then "end\n". */
static void *long_writer_main(void *arg) {
  long_writer_t *w = arg;
  char chunk[65536];
  memset(chunk, 'q', sizeof(chunk));
  if (write(w->fd, "first\n", 6) != 6) abort();
  for (size_t left = w->len; left > 0;) {
    size_t n = left < sizeof(chunk) ? left : sizeof(chunk);
    ssize_t k = write(w->fd, chunk, n);
    if (k <= 0) abort();
    left -= (size_t)k;
  }
  if (write(w->fd, "\nend\n", 5) != 5) abort();
  close(w->fd);
  return NULL;
}

static long max_rss_kib(void) {
  struct rusage ru;
  assert_int_equal(getrusage(RUSAGE_SELF, &ru), 0);
  return ru.ru_maxrss;
}

/* A 128 MiB line through a pipe with a 1 MiB limit: skipped, and the source never holds
 * more than about the limit (the peak resident size grows by far less than the line). */
static void lines_opts_over_long_line_is_never_held_whole(void **state) {
  const size_t line = 128 * MIB;
  long_writer_t w = {.len = line};
  stdin_feed_t feed;
  parse_state_t ps = {0};
  policy_run_t r;
  long before, after;
  (void)state;

  before = max_rss_kib();
  stdin_feed_start(&feed, &w.fd, long_writer_main, &w);
  fl_env_t *env = new_env(1);
  fl_lines_source_opts_t o = {.version = FL_LINES_SOURCE_OPTS_VERSION,
                              .path = "-",
                              .max_line_bytes = MIB,
                              .parse = test_parse,
                              .parse_opaque = &ps,
                              .on_error = FL_LINES_ON_ERROR_SKIP};
  policy_run_source(&r, env, &o);
  assert_int_equal(fl_env_execute(env, "long"), FL_OK);
  assert_int_equal(user_metric(env, "src", "lines-skipped"), 1);
  fl_env_destroy(env);
  stdin_feed_end(&feed);
  after = max_rss_kib();
  assert_int_equal(r.main.n, 2);
  assert_string_equal(r.main.r[0].value, "first");
  assert_string_equal(r.main.r[1].value, "end");
  assert_int_equal(r.main.r[1].ts, 30);
  if (after - before > 32 * 1024)
    fail_msg("peak resident size grew by %ld KiB reading a %zu-byte line", after - before, line);
  policy_run_free(&r);
}

/*
 * A savepoint taken after a line over the limit was skipped records a position past
 * it: the job restored from it (from a regular file with the same bytes) goes on after
 * it even with the policy to fail, where a position at or before it would fail again.
 * The first run reads a FIFO the test feeds, so the savepoint falls exactly between
 * "b" and "c"; the line numbers go on from the savepoint too.
 */
static void lines_opts_savepoint_after_a_bad_line_restores_past_it(void **state) {
  char fifo[160], sp[160], err[256];
  char *data = malloc(4 * KIB);
  size_t len = 0, head;
  parse_state_t ps = {0};
  policy_run_t r;
  bg_job_t job;
  int fd;

  len += (size_t)sprintf(data, "a\n");
  memset(data + len, 'x', 2000);
  len += 2000;
  len += (size_t)sprintf(data + len, "\nb\n");
  head = len;
  len += (size_t)sprintf(data + len, "c\nbad\n");
  snprintf(fifo, sizeof(fifo), "%s/in.fifo", g_tmpdir);
  snprintf(sp, sizeof(sp), "%s/savepoint", g_tmpdir);
  assert_int_equal(mkfifo(fifo, 0600), 0);

  fl_env_t *env = new_env(1);
  fl_lines_source_opts_t o = {.version = FL_LINES_SOURCE_OPTS_VERSION,
                              .path = fifo,
                              .max_line_bytes = 1024,
                              .parse = test_parse,
                              .parse_opaque = &ps,
                              .on_error = FL_LINES_ON_ERROR_SKIP};
  policy_run_source(&r, env, &o);
  bg_job_start(&job, env, "first");
  fd = open(fifo, O_WRONLY | O_CLOEXEC); /* until the source opened it */
  assert_true(fd >= 0);
  write_all(fd, data, head);
  int64_t deadline = deadline_in(20000);
  for (;;) {
    pthread_mutex_lock(&r.main.mu);
    size_t n = r.main.n;
    pthread_mutex_unlock(&r.main.mu);
    if (n == 2) break;
    if (mono_ms() > deadline) fail_msg("the source did not read 'b' within 20 s");
    pause_ms(2);
  }
  if (fl_env_savepoint(env, sp, err, sizeof(err)) != FL_OK) fail_msg("savepoint: %s", err);
  write_all(fd, data + head, len - head);
  close(fd);
  assert_int_equal(bg_job_join(&job), FL_OK);
  assert_int_equal(user_metric(env, "src", "lines-skipped"), 2); /* x..., bad */
  fl_env_destroy(env);
  policy_run_free(&r);

  /* The same bytes as a regular file; from the savepoint, failing on bad lines. */
  assert_int_equal(unlink(fifo), 0);
  write_bytes(fifo, data, len);
  const char *kv[] = {"execution.savepoint.path", sp, NULL};
  env = env_of(kv);
  o.on_error = FL_LINES_ON_ERROR_FAIL;
  policy_run_source(&r, env, &o);
  assert_int_equal(fl_env_execute(env, "second"), FL_EUSER);
  /* "c" went through; the only failure is the bad line after it, line 5. */
  snprintf(err, sizeof(err), "%s: line 5: not ok: bad", fifo);
  if (strstr(fl_env_error(env), err) == NULL) fail_msg("%s", fl_env_error(env));
  assert_int_equal(r.main.n, 1);
  assert_string_equal(r.main.r[0].value, "c");
  assert_int_equal(r.main.r[0].ts, 40);
  fl_env_destroy(env);
  policy_run_free(&r);
  free(data);
}

/* ---------------------------------------------------------------------------------- */
/* Sink                                                                               */

/* Line i: "L<i>:" followed by a pattern of a length that varies with i; every 997th
 * line is longer than the sink's buffer. */
static size_t sink_body_len(unsigned i) { return i % 997 == 0 ? 200000 + i : (i * 37) % 300; }

static size_t sink_line(unsigned i, char *buf) {
  size_t head = (size_t)sprintf(buf, "L%u:", i);
  size_t body = sink_body_len(i);
  fill_pattern(buf + head, body, i);
  return head + body;
}

static void lines_sink_parallel_writes_every_line_once_and_whole(void **state) {
  const unsigned n = 20000;
  fl_record_t *recs = calloc(n, sizeof(*recs));
  char **bufs = calloc(n, sizeof(*bufs));
  unsigned char *seen = calloc(n, 1);
  fl_env_t *env = new_env(3);
  char *data, *p, *end;
  size_t len, lines = 0;

  for (unsigned i = 0; i < n; i++) {
    bufs[i] = malloc(sink_body_len(i) + 32);
    recs[i].value = bufs[i];
    recs[i].value_len = sink_line(i, bufs[i]);
    recs[i].key = "";
    recs[i].timestamp = FL_TS_NONE;
  }
  assert_int_equal(
      fl_stream_sink_lines(fl_stream_rebalance(fl_source_collection(env, "gen", recs, n)), "out",
                           data_path()),
      FL_OK);
  for (unsigned i = 0; i < n; i++) free(bufs[i]);
  free(bufs);
  free(recs);
  assert_int_equal(fl_env_execute(env, "sink"), FL_OK);
  fl_env_destroy(env);

  data = read_file(data_path(), &len);
  assert_true(len > 0);
  assert_int_equal(data[len - 1], '\n');
  for (p = data; p < data + len; p = end + 1) {
    unsigned i;
    char *colon;
    size_t body;
    end = memchr(p, '\n', (size_t)(data + len - p));
    assert_non_null(end);
    assert_int_equal(p[0], 'L');
    i = (unsigned)strtoul(p + 1, &colon, 10);
    assert_int_equal(*colon, ':');
    assert_true(i < n);
    assert_int_equal(seen[i], 0);
    seen[i] = 1;
    body = (size_t)(end - colon - 1);
    assert_int_equal(body, sink_body_len(i));
    assert_true(is_pattern(colon + 1, body, i));
    lines++;
  }
  assert_int_equal(lines, n);
  free(data);
  free(seen);
}

static void lines_sink_truncates_an_existing_file(void **state) {
  fl_record_t rec = {.key = "", .value = "new", .value_len = 3, .timestamp = FL_TS_NONE};
  fl_env_t *env = new_env(2);
  size_t len;
  char *data;
  write_bytes(data_path(), "old old old old\n", 16);
  assert_int_equal(
      fl_stream_sink_lines(fl_source_collection(env, "one", &rec, 1), "out", data_path()), FL_OK);
  assert_int_equal(fl_env_execute(env, "sink"), FL_OK);
  fl_env_destroy(env);
  data = read_file(data_path(), &len);
  assert_int_equal(len, 4);
  assert_string_equal(data, "new\n");
  free(data);
}

static void lines_sink_write_error_fails_naming_the_path(void **state) {
  fl_record_t rec = {.key = "", .value = "x", .value_len = 1, .timestamp = FL_TS_NONE};
  fl_env_t *env = new_env(1);
  assert_int_equal(
      fl_stream_sink_lines(fl_source_collection(env, "one", &rec, 1), "out", "/dev/full"), FL_OK);
  assert_int_not_equal(fl_env_execute(env, "sink"), FL_OK);
  assert_non_null(strstr(fl_env_error(env), "/dev/full"));
  assert_non_null(strstr(fl_env_error(env), strerror(ENOSPC)));
  fl_env_destroy(env);
}

static void lines_sink_unopenable_path_fails_naming_the_path(void **state) {
  fl_record_t rec = {.key = "", .value = "x", .value_len = 1, .timestamp = FL_TS_NONE};
  fl_env_t *env = new_env(2);
  char path[PATH_MAX];
  snprintf(path, sizeof(path), "%s/no-such-dir/out.txt", g_tmpdir);
  assert_int_equal(fl_stream_sink_lines(fl_source_collection(env, "one", &rec, 1), "out", path),
                   FL_OK);
  assert_int_not_equal(fl_env_execute(env, "sink"), FL_OK);
  assert_non_null(strstr(fl_env_error(env), path));
  fl_env_destroy(env);
}

static void lines_round_trip_file_to_file(void **state) {
  char out[PATH_MAX];
  static const char data[] = "alpha\r\n\nbeta\ngamma";
  fl_env_t *env = new_env(1);
  size_t len;
  char *got;
  write_bytes(data_path(), data, sizeof(data) - 1);
  snprintf(out, sizeof(out), "%s/out.txt", g_tmpdir);
  assert_int_equal(fl_stream_sink_lines(fl_source_lines(env, "in", data_path()), "out", out),
                   FL_OK);
  assert_int_equal(fl_env_execute(env, "copy"), FL_OK);
  fl_env_destroy(env);
  got = read_file(out, &len);
  assert_string_equal(got, "alpha\n\nbeta\ngamma\n");
  free(got);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      /* First: it measures the growth of the process's peak resident size. */
      cmocka_unit_test(lines_opts_over_long_line_is_never_held_whole),
      cmocka_unit_test(lines_source_strips_crlf_keeps_empty_lines_and_unterminated_last),
      cmocka_unit_test(lines_source_empty_file_gives_no_records),
      cmocka_unit_test(lines_source_reads_3mib_lines_across_buffer_refills),
      cmocka_unit_test(lines_source_accepts_a_line_of_exactly_16mib_ending_in_crlf),
      cmocka_unit_test(lines_source_fails_on_a_line_over_16mib_naming_path_and_line),
      cmocka_unit_test(lines_source_missing_file_fails_naming_the_path),
      cmocka_unit_test(lines_source_null_path_is_a_builder_error),
      cmocka_unit_test(lines_source_reads_stdin_from_a_pipe),
      cmocka_unit_test(lines_sink_parallel_writes_every_line_once_and_whole),
      cmocka_unit_test(lines_sink_truncates_an_existing_file),
      cmocka_unit_test(lines_sink_write_error_fails_naming_the_path),
      cmocka_unit_test(lines_sink_unopenable_path_fails_naming_the_path),
      cmocka_unit_test(lines_round_trip_file_to_file),
      cmocka_unit_test(lines_opts_skip_drops_bad_lines_and_counts_them),
      cmocka_unit_test(lines_opts_dead_letters_carry_line_length_offset_and_error),
      cmocka_unit_test(lines_opts_fail_names_path_line_and_cause),
      cmocka_unit_test(lines_opts_builder_errors_name_the_field),
      cmocka_unit_test(lines_opts_savepoint_after_a_bad_line_restores_past_it),
  };
  return cmocka_run_group_tests(tests, tmpdir_group_setup, tmpdir_group_teardown);
}
