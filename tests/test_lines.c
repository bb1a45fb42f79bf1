/*
 * The lines source and sink (fl_source_lines, fl_stream_sink_lines), through the public
 * API only: real files in a temporary directory, a pipe on stdin, and whole jobs.
 */
#define _GNU_SOURCE

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "flink.h"

#define MIB ((size_t)1 << 20)

/* ---------------------------------------------------------------------------------- */
/* Helpers                                                                            */

typedef struct collected {
  pthread_mutex_t mu;
  char **vals;
  size_t *lens;
  size_t n, cap;
  int bad_key_or_ts; /* a record had a key or a timestamp */
} collected_t;

static int collect_write(fl_context_t *ctx, const fl_record_t *in, void *instance) {
  collected_t *c = instance;
  (void)ctx;
  pthread_mutex_lock(&c->mu);
  if (c->n == c->cap) {
    c->cap = c->cap ? c->cap * 2 : 16;
    c->vals = realloc(c->vals, c->cap * sizeof(*c->vals));
    c->lens = realloc(c->lens, c->cap * sizeof(*c->lens));
  }
  c->vals[c->n] = malloc(in->value_len + 1);
  memcpy(c->vals[c->n], in->value, in->value_len);
  c->vals[c->n][in->value_len] = '\0';
  c->lens[c->n] = in->value_len;
  c->n++;
  if (in->key_len != 0 || in->timestamp != FL_TS_NONE) c->bad_key_or_ts = 1;
  pthread_mutex_unlock(&c->mu);
  return FL_OK;
}

static void collected_init(collected_t *c) {
  memset(c, 0, sizeof(*c));
  pthread_mutex_init(&c->mu, NULL);
}

static void collected_free(collected_t *c) {
  for (size_t i = 0; i < c->n; i++) free(c->vals[i]);
  free(c->vals);
  free(c->lens);
  pthread_mutex_destroy(&c->mu);
}

static const fl_sink_fn_t collect_fn = {.version = FL_SINK_FN_VERSION, .write = collect_write};

static fl_env_t *new_env(int parallelism) {
  fl_config_t *conf = fl_config_new();
  fl_env_t *env = NULL;
  char err[256], p[16];
  assert_non_null(conf);
  snprintf(p, sizeof(p), "%d", parallelism);
  assert_int_equal(fl_config_set(conf, "parallelism", p, err, sizeof(err)), FL_OK);
  assert_int_equal(fl_env_new(&env, conf, err, sizeof(err)), FL_OK);
  fl_config_destroy(conf);
  return env;
}

/* Runs lines source(path) -> collecting sink at parallelism 1. Returns execute's code;
 * on failure copies the env error into err. */
static int read_lines(const char *path, collected_t *out, char *err, size_t err_size) {
  fl_env_t *env = new_env(1);
  int rc;
  collected_init(out);
  assert_int_equal(fl_stream_sink(fl_source_lines(env, "src", path), "collect", &collect_fn, out),
                   FL_OK);
  rc = fl_env_execute(env, "read-lines");
  if (err != NULL) snprintf(err, err_size, "%s", fl_env_error(env));
  fl_env_destroy(env);
  return rc;
}

typedef struct tmpdir {
  char dir[64];
  char path[128];
} tmpdir_t;

static int setup_tmp(void **state) {
  tmpdir_t *t = calloc(1, sizeof(*t));
  snprintf(t->dir, sizeof(t->dir), "/tmp/fl_test_lines_XXXXXX");
  if (mkdtemp(t->dir) == NULL) return -1;
  snprintf(t->path, sizeof(t->path), "%s/data.txt", t->dir);
  *state = t;
  return 0;
}

static int teardown_tmp(void **state) {
  tmpdir_t *t = *state;
  char cmd[160];
  snprintf(cmd, sizeof(cmd), "rm -rf '%s'", t->dir);
  if (system(cmd) != 0) return -1;
  free(t);
  return 0;
}

static void write_file(const char *path, const void *data, size_t len) {
  FILE *f = fopen(path, "wb");
  assert_non_null(f);
  assert_int_equal(fwrite(data, 1, len, f), len);
  assert_int_equal(fclose(f), 0);
}

static char *read_file(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  char *buf = NULL;
  size_t cap = 0, n = 0, r;
  assert_non_null(f);
  do {
    if (cap - n < 65536) {
      cap = cap ? cap * 2 : 131072;
      buf = realloc(buf, cap + 1);
    }
    r = fread(buf + n, 1, cap - n, f);
    n += r;
  } while (r > 0);
  fclose(f);
  buf[n] = '\0';
  *len = n;
  return buf;
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
  tmpdir_t *t = *state;
  /* "\r" only goes with a following "\n"; an inner "\r" is data. */
  static const char data[] = "a\r\nbb\n\n\r\nx\ry\nlast";
  static const char *const want[] = {"a", "bb", "", "", "x\ry", "last"};
  collected_t c;
  write_file(t->path, data, sizeof(data) - 1);
  assert_int_equal(read_lines(t->path, &c, NULL, 0), FL_OK);
  assert_int_equal(c.n, 6);
  for (size_t i = 0; i < 6; i++) assert_string_equal(c.vals[i], want[i]);
  assert_int_equal(c.bad_key_or_ts, 0);
  collected_free(&c);
}

static void lines_source_empty_file_gives_no_records(void **state) {
  tmpdir_t *t = *state;
  collected_t c;
  write_file(t->path, "", 0);
  assert_int_equal(read_lines(t->path, &c, NULL, 0), FL_OK);
  assert_int_equal(c.n, 0);
  collected_free(&c);
}

static void lines_source_reads_3mib_lines_across_buffer_refills(void **state) {
  tmpdir_t *t = *state;
  const size_t big = 3 * MIB;
  size_t len = 0;
  char *data = malloc(4 * big + 64);
  collected_t c;

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
  write_file(t->path, data, len);

  assert_int_equal(read_lines(t->path, &c, NULL, 0), FL_OK);
  assert_int_equal(c.n, 6);
  assert_string_equal(c.vals[0], "head");
  assert_int_equal(c.lens[1], big);
  assert_true(is_pattern(c.vals[1], big, 1));
  assert_string_equal(c.vals[2], "mid");
  assert_int_equal(c.lens[3], big + 5);
  assert_true(is_pattern(c.vals[3], big + 5, 2));
  assert_int_equal(c.lens[4], big - 3);
  assert_true(is_pattern(c.vals[4], big - 3, 3));
  assert_string_equal(c.vals[5], "tail");
  collected_free(&c);
  free(data);
}

static void lines_source_accepts_a_line_of_exactly_16mib_ending_in_crlf(void **state) {
  tmpdir_t *t = *state;
  const size_t max = 16 * MIB;
  char *data = malloc(max + 16);
  collected_t c;
  fill_pattern(data, max, 4);
  memcpy(data + max, "\r\nend\n", 6);
  write_file(t->path, data, max + 6);
  assert_int_equal(read_lines(t->path, &c, NULL, 0), FL_OK);
  assert_int_equal(c.n, 2);
  assert_int_equal(c.lens[0], max);
  assert_true(is_pattern(c.vals[0], max, 4));
  assert_string_equal(c.vals[1], "end");
  collected_free(&c);
  free(data);
}

static void lines_source_fails_on_a_line_over_16mib_naming_path_and_line(void **state) {
  tmpdir_t *t = *state;
  const size_t over = 16 * MIB + 1;
  char *data = malloc(over + 64);
  char err[1024];
  char want_line[32];
  collected_t c;
  size_t len = 0;

  /* Terminated: line 3 is one byte too long. */
  len += (size_t)sprintf(data, "one\ntwo\n");
  memset(data + len, 'y', over);
  len += over;
  data[len++] = '\n';
  write_file(t->path, data, len);
  assert_int_not_equal(read_lines(t->path, &c, err, sizeof(err)), FL_OK);
  assert_non_null(strstr(err, t->path));
  snprintf(want_line, sizeof(want_line), "line %d ", 3);
  assert_non_null(strstr(err, want_line));
  assert_true(c.n <= 2); /* nothing of the long line got through */
  collected_free(&c);

  /* Unterminated last line: line 2. */
  len = (size_t)sprintf(data, "one\n");
  memset(data + len, 'z', over);
  len += over;
  write_file(t->path, data, len);
  assert_int_not_equal(read_lines(t->path, &c, err, sizeof(err)), FL_OK);
  assert_non_null(strstr(err, t->path));
  assert_non_null(strstr(err, "line 2 "));
  collected_free(&c);
  free(data);
}

static void lines_source_missing_file_fails_naming_the_path(void **state) {
  tmpdir_t *t = *state;
  char path[160], err[1024];
  collected_t c;
  snprintf(path, sizeof(path), "%s/does-not-exist.txt", t->dir);
  assert_int_not_equal(read_lines(path, &c, err, sizeof(err)), FL_OK);
  assert_non_null(strstr(err, path));
  assert_non_null(strstr(err, strerror(ENOENT)));
  assert_int_equal(c.n, 0);
  collected_free(&c);
}

static void lines_source_null_path_is_a_builder_error(void **state) {
  fl_env_t *env = new_env(1);
  (void)state;
  assert_null(fl_source_lines(env, "src", NULL));
  assert_int_equal(fl_env_execute(env, "x"), FL_EINVAL);
  assert_non_null(strstr(fl_env_error(env), "src"));
  fl_env_destroy(env);
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
  int fds[2], saved_stdin;
  pipe_writer_t w;
  pthread_t th;
  collected_t c;
  char want[32];
  (void)state;

  assert_int_equal(pipe(fds), 0);
  saved_stdin = dup(STDIN_FILENO);
  assert_true(saved_stdin >= 0);
  assert_int_equal(dup2(fds[0], STDIN_FILENO), STDIN_FILENO);
  close(fds[0]);
  w.fd = fds[1];
  w.lines = 5000;
  assert_int_equal(pthread_create(&th, NULL, pipe_writer_main, &w), 0);
  assert_int_equal(read_lines("-", &c, NULL, 0), FL_OK);
  pthread_join(th, NULL);
  assert_int_equal(dup2(saved_stdin, STDIN_FILENO), STDIN_FILENO);
  close(saved_stdin);

  assert_int_equal(c.n, 5001);
  for (int i = 0; i < 5000; i++) {
    snprintf(want, sizeof(want), "p%d", i);
    assert_string_equal(c.vals[i], want);
  }
  assert_string_equal(c.vals[5000], "no-newline");
  collected_free(&c);
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
  tmpdir_t *t = *state;
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
                           t->path),
      FL_OK);
  for (unsigned i = 0; i < n; i++) free(bufs[i]);
  free(bufs);
  free(recs);
  assert_int_equal(fl_env_execute(env, "sink"), FL_OK);
  fl_env_destroy(env);

  data = read_file(t->path, &len);
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
  tmpdir_t *t = *state;
  fl_record_t rec = {.key = "", .value = "new", .value_len = 3, .timestamp = FL_TS_NONE};
  fl_env_t *env = new_env(2);
  size_t len;
  char *data;
  write_file(t->path, "old old old old\n", 16);
  assert_int_equal(fl_stream_sink_lines(fl_source_collection(env, "one", &rec, 1), "out", t->path),
                   FL_OK);
  assert_int_equal(fl_env_execute(env, "sink"), FL_OK);
  fl_env_destroy(env);
  data = read_file(t->path, &len);
  assert_int_equal(len, 4);
  assert_string_equal(data, "new\n");
  free(data);
}

static void lines_sink_write_error_fails_naming_the_path(void **state) {
  fl_record_t rec = {.key = "", .value = "x", .value_len = 1, .timestamp = FL_TS_NONE};
  fl_env_t *env = new_env(1);
  (void)state;
  assert_int_equal(
      fl_stream_sink_lines(fl_source_collection(env, "one", &rec, 1), "out", "/dev/full"), FL_OK);
  assert_int_not_equal(fl_env_execute(env, "sink"), FL_OK);
  assert_non_null(strstr(fl_env_error(env), "/dev/full"));
  assert_non_null(strstr(fl_env_error(env), strerror(ENOSPC)));
  fl_env_destroy(env);
}

static void lines_sink_unopenable_path_fails_naming_the_path(void **state) {
  tmpdir_t *t = *state;
  fl_record_t rec = {.key = "", .value = "x", .value_len = 1, .timestamp = FL_TS_NONE};
  fl_env_t *env = new_env(2);
  char path[192];
  snprintf(path, sizeof(path), "%s/no-such-dir/out.txt", t->dir);
  assert_int_equal(fl_stream_sink_lines(fl_source_collection(env, "one", &rec, 1), "out", path),
                   FL_OK);
  assert_int_not_equal(fl_env_execute(env, "sink"), FL_OK);
  assert_non_null(strstr(fl_env_error(env), path));
  fl_env_destroy(env);
}

static void lines_round_trip_file_to_file(void **state) {
  tmpdir_t *t = *state;
  char out[160];
  static const char data[] = "alpha\r\n\nbeta\ngamma";
  fl_env_t *env = new_env(1);
  size_t len;
  char *got;
  write_file(t->path, data, sizeof(data) - 1);
  snprintf(out, sizeof(out), "%s/out.txt", t->dir);
  assert_int_equal(fl_stream_sink_lines(fl_source_lines(env, "in", t->path), "out", out), FL_OK);
  assert_int_equal(fl_env_execute(env, "copy"), FL_OK);
  fl_env_destroy(env);
  got = read_file(out, &len);
  assert_string_equal(got, "alpha\n\nbeta\ngamma\n");
  free(got);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(
          lines_source_strips_crlf_keeps_empty_lines_and_unterminated_last, setup_tmp,
          teardown_tmp),
      cmocka_unit_test_setup_teardown(lines_source_empty_file_gives_no_records, setup_tmp,
                                      teardown_tmp),
      cmocka_unit_test_setup_teardown(lines_source_reads_3mib_lines_across_buffer_refills,
                                      setup_tmp, teardown_tmp),
      cmocka_unit_test_setup_teardown(lines_source_accepts_a_line_of_exactly_16mib_ending_in_crlf,
                                      setup_tmp, teardown_tmp),
      cmocka_unit_test_setup_teardown(lines_source_fails_on_a_line_over_16mib_naming_path_and_line,
                                      setup_tmp, teardown_tmp),
      cmocka_unit_test_setup_teardown(lines_source_missing_file_fails_naming_the_path, setup_tmp,
                                      teardown_tmp),
      cmocka_unit_test(lines_source_null_path_is_a_builder_error),
      cmocka_unit_test(lines_source_reads_stdin_from_a_pipe),
      cmocka_unit_test_setup_teardown(lines_sink_parallel_writes_every_line_once_and_whole,
                                      setup_tmp, teardown_tmp),
      cmocka_unit_test_setup_teardown(lines_sink_truncates_an_existing_file, setup_tmp,
                                      teardown_tmp),
      cmocka_unit_test(lines_sink_write_error_fails_naming_the_path),
      cmocka_unit_test_setup_teardown(lines_sink_unopenable_path_fails_naming_the_path, setup_tmp,
                                      teardown_tmp),
      cmocka_unit_test_setup_teardown(lines_round_trip_file_to_file, setup_tmp, teardown_tmp),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
