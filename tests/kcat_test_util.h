/*
 * Helpers of the tests that run a flink-kafka-local broker process and talk to it with
 * kcat (test_kafka_agg.c, test_sql_kafka.c): the group's broker, kcat and temporary
 * directory, producing lines to a topic, reading a topic back, and comparing line sets.
 * Include once per test program, after kafka_test_util.h and run_util.h.
 */
#ifndef FL_KCAT_TEST_UTIL_H
#define FL_KCAT_TEST_UTIL_H

static child_t *g_server;      /* the group's broker, started by the group setup */
static char g_bootstrap[1024]; /* its bootstrap servers */
static char g_kcat[4096];

/* The first part of a group setup: the paths of flink-kafka-local and kcat (-1, saying
 * so, without kcat) and the group's temporary directory g_tmpdir. The setup then starts
 * g_server with its topics. */
static inline int kcat_group_setup(void **state) {
  if (!find_on_path("kcat", g_kcat, sizeof g_kcat)) {
    fprintf(stderr, "kcat is not installed (apt-get install kcat; scripts/install-deps.sh)\n");
    return -1;
  }
  return kafka_group_setup(state);
}

static inline int kcat_group_teardown(void **state) {
  if (g_server) stop_server(g_server);
  g_server = NULL;
  return kafka_group_teardown(state);
}

/* Produces "key:value" lines (kcat -K:) to topic, through a file: inputs may be larger
 * than a pipe's buffer. */
static inline void kcat_produce(const char *topic, const char *lines) {
  char path[4200];
  snprintf(path, sizeof path, "%s/produce.txt", g_tmpdir);
  write_text(path, lines);
  char *out = NULL;
  char *argv[] = {g_kcat, "-P", "-b", g_bootstrap, "-t", (char *)topic, "-K:", "-l", path, NULL};
  assert_int_equal(run_capture(argv, NULL, &out), 0);
  free(out);
}

/* Every message of topic from the beginning, each as kcat's format makes it (one line
 * each); committed: only what read_committed consumers see. The caller frees. */
static inline char *kcat_consume(const char *topic, const char *format, bool committed) {
  char *out = NULL;
  char *argv[] = {g_kcat,
                  "-C",
                  "-b",
                  g_bootstrap,
                  "-t",
                  (char *)topic,
                  "-e",
                  "-o",
                  "beginning",
                  "-q",
                  "-X",
                  committed ? "isolation.level=read_committed" : "isolation.level=read_uncommitted",
                  "-f",
                  (char *)format,
                  NULL};
  assert_int_equal(run_capture(argv, NULL, &out), 0);
  return out;
}

static inline size_t count_lines(const char *s) {
  size_t n = 0;
  for (; *s; s++) n += *s == '\n';
  return n;
}

/* The values of topic once it holds at least n messages, or after base_ms (scaled):
 * the caller checks what it got. */
static inline char *kcat_wait_values(const char *topic, bool committed, size_t n, int64_t base_ms) {
  int64_t deadline = deadline_in(base_ms);
  for (;;) {
    char *got = kcat_consume(topic, "%s\\n", committed);
    if (count_lines(got) >= n || mono_ms() > deadline) return got;
    free(got);
    usleep(100000);
  }
}

/* Fails the test unless the lines of got and want (each line ending with '\n') are the
 * same multiset. */
static inline void assert_same_line_set(const char *what, const char *got, const char *want) {
  lines_t w = {0};
  lines_add_text(&w, want);
  assert_text_lines(what, got, (const char *const *)w.v, w.n);
  lines_free(&w);
}

#endif
