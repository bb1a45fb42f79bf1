/*
 * The Kafka source (fl_source_kafka) against librdkafka's in-process mock cluster.
 *
 * Every test makes its own mock cluster through a producer created with
 * test.mock.num.brokers (the cluster lives inside that producer and listens on
 * loopback); the producer also writes the test's messages. Unbounded jobs run on a
 * second thread; the test waits for the records it expects with a deadline scaled by
 * FL_TEST_TIMEOUT_SCALE and then stops the job. Only the broker outage sleeps, for the
 * outage itself.
 *
 * Mock limits that shape these tests (librdkafka 2.0.2): ListOffsets by timestamp
 * answers -1 ("no such message") for every partition, so START_TIMESTAMP can only be
 * checked here for the "no message at or after the timestamp" case (the end); the test
 * mock_lists_no_offset_by_timestamp pins that limit.
 */
#define _GNU_SOURCE

#include <errno.h>
#include <math.h>
#include <inttypes.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include "fl_test_util.h"

#include "kafka_test_util.h"
#include "run_util.h"

#define RD_FETCH 1 /* ApiKey of FetchRequest */

/* ---------------------------------------------------------------------------------- */
/* ThreadSanitizer and librdkafka                                                     */
/*
 * Debian's librdkafka starts its threads with C11 thrd_create() and locks with the mtx_
 * and cnd_ functions, which glibc implements without going through the pthread functions that
 * ThreadSanitizer intercepts (GCC 12's libtsan has no C11-thread interceptors): its
 * threads then run without TSan state and crash in the first malloc. Under TSan only,
 * this test binary defines those functions on top of pthreads; the executable's
 * definitions take precedence for librdkafka, so TSan sees its threads and their
 * synchronisation. Nothing changes in plain and ASan builds.
 */
#include "util/tsan_c11_threads.h"

/* ---------------------------------------------------------------------------------- */
/* Mock cluster and producer                                                          */

typedef struct mock {
  rd_kafka_t *prod; /* hosts the cluster and produces */
  rd_kafka_mock_cluster_t *mc;
  char bootstrap[512];
} mock_t;

static void mock_start(mock_t *m, int brokers) {
  char err[512], nb[8];
  rd_kafka_conf_t *conf = rd_kafka_conf_new();
  snprintf(nb, sizeof nb, "%d", brokers);
  assert_int_equal(rd_kafka_conf_set(conf, "test.mock.num.brokers", nb, err, sizeof err),
                   RD_KAFKA_CONF_OK);
  assert_int_equal(rd_kafka_conf_set(conf, "linger.ms", "0", err, sizeof err), RD_KAFKA_CONF_OK);
  assert_int_equal(rd_kafka_conf_set(conf, "log_level", "2", err, sizeof err), RD_KAFKA_CONF_OK);
  m->prod = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
  assert_non_null(m->prod);
  m->mc = rd_kafka_handle_mock_cluster(m->prod);
  assert_non_null(m->mc);
  snprintf(m->bootstrap, sizeof m->bootstrap, "%s", rd_kafka_mock_cluster_bootstraps(m->mc));
}

static void mock_stop(mock_t *m) {
  rd_kafka_flush(m->prod, 5000);
  rd_kafka_destroy(m->prod);
  memset(m, 0, sizeof *m);
}

static void topic_create(mock_t *m, const char *topic, int parts) {
  assert_int_equal(rd_kafka_mock_topic_create(m->mc, topic, parts, 1), 0);
}

/* A cluster of one broker holding topic with parts partitions. */
static void mock_with_topic(mock_t *m, const char *topic, int parts) {
  mock_start(m, 1);
  topic_create(m, topic, parts);
}

static void produce(mock_t *m, const char *topic, int32_t part, const char *key, const char *value,
                    int64_t ts) {
  rd_kafka_resp_err_t err = rd_kafka_producev(
      m->prod, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_PARTITION(part),
      RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_KEY(key, key ? strlen(key) : 0),
      RD_KAFKA_V_VALUE((void *)value, value ? strlen(value) : 0), RD_KAFKA_V_TIMESTAMP(ts),
      RD_KAFKA_V_END);
  assert_int_equal(err, 0);
}

static void produce_hdr(mock_t *m, const char *topic, int32_t part, const char *key,
                        const char *value, int64_t ts, const char *hname, const char *hval) {
  rd_kafka_headers_t *h = rd_kafka_headers_new(1);
  rd_kafka_header_add(h, hname, -1, hval, -1);
  rd_kafka_resp_err_t err =
      rd_kafka_producev(m->prod, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_PARTITION(part),
                        RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_KEY(key, strlen(key)),
                        RD_KAFKA_V_VALUE((void *)value, strlen(value)), RD_KAFKA_V_TIMESTAMP(ts),
                        RD_KAFKA_V_HEADERS(h), RD_KAFKA_V_END);
  assert_int_equal(err, 0);
}

static void flush_all(mock_t *m) {
  assert_int_equal(rd_kafka_flush(m->prod, (int)(15000 * timeout_scale())), 0);
}

/* librdkafka reads a timestamp of 0 as "now": test timestamps start here. */
#define TS0 ((int64_t)1000000)

/* n messages per partition p of `parts`: key "k<p>-<i>", value "p<p>-<i>",
 * timestamp TS0 + base + p * 1000 + i, starting at sequence `from`. */
static void produce_seq(mock_t *m, const char *topic, int parts, int from, int n, int64_t base) {
  char k[32], v[32];
  for (int p = 0; p < parts; p++)
    for (int i = from; i < from + n; i++) {
      snprintf(k, sizeof k, "k%d-%d", p, i);
      snprintf(v, sizeof v, "p%d-%d", p, i);
      produce(m, topic, p, k, v, TS0 + base + p * 1000 + i);
    }
  flush_all(m);
}

/* A plain consumer on the mock (commits, dead letters, committed offsets). */
static rd_kafka_t *consumer_new(const mock_t *m, const char *group) {
  char err[512];
  rd_kafka_conf_t *conf = rd_kafka_conf_new();
  rd_kafka_conf_set(conf, "bootstrap.servers", m->bootstrap, err, sizeof err);
  rd_kafka_conf_set(conf, "group.id", group, err, sizeof err);
  rd_kafka_conf_set(conf, "enable.auto.commit", "false", err, sizeof err);
  rd_kafka_conf_set(conf, "log_level", "2", err, sizeof err);
  rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err);
  assert_non_null(rk);
  return rk;
}

/* ---------------------------------------------------------------------------------- */
/* Jobs                                                                               */

/* An environment at parallelism p with the settings kv (NULL-ended pairs, at most 14). */
static fl_env_t *env_conf(int p, const char *const *kv) {
  char ps[16];
  const char *all[32] = {"parallelism", ps};
  size_t n = 2;
  snprintf(ps, sizeof ps, "%d", p);
  for (size_t i = 0; kv != NULL && kv[i] != NULL; i += 2) {
    assert_true(n + 2 < sizeof all / sizeof all[0]);
    all[n++] = kv[i];
    all[n++] = kv[i + 1];
  }
  return env_of(all);
}

static fl_kafka_source_opts_t opts_for(const mock_t *m, const char *topics) {
  static const char *const quiet[] = {"log_level", "2", NULL};
  fl_kafka_source_opts_t o;
  memset(&o, 0, sizeof o);
  o.version = FL_KAFKA_SOURCE_OPTS_VERSION;
  o.brokers = m->bootstrap;
  o.topics = topics;
  o.props = quiet;
  o.timeout_ms = (int)(10000 * timeout_scale());
  return o;
}

/* A cluster of one broker whose topic "t" of parts partitions holds n messages per
 * partition (produce_seq from 0 with base), and the options that read "t". */
static fl_kafka_source_opts_t seq_cluster(mock_t *m, int parts, int n, int64_t base) {
  mock_with_topic(m, "t", parts);
  produce_seq(m, "t", parts, 0, n, base);
  return opts_for(m, "t");
}

typedef struct job {
  fl_env_t *env;
  collector_t col;
  pthread_t th;
  int rc;
  bool running;
} job_t;

static void job_build(job_t *j, fl_env_t *env, const fl_kafka_source_opts_t *o) {
  memset(j, 0, sizeof *j);
  j->env = env;
  collector_init(&j->col);
  fl_stream_t *s = fl_source_kafka(env, "kafka", o);
  assert_non_null(s);
  assert_int_equal(fl_stream_sink(s, "collect", &collector_sink, &j->col), 0);
}

/* Builds the job as a bounded read with o (parallelism P, config kv) and runs it to its
 * end. */
static void bounded_run(job_t *j, fl_kafka_source_opts_t *o, int P, const char *const *kv,
                        const char *name) {
  o->bounded = 1;
  job_build(j, env_conf(P, kv), o);
  assert_int_equal(fl_env_execute(j->env, name), 0);
}

/* Builds the job as a bounded read with o at parallelism 1 and runs it, which must fail;
 * returns the job's error (owned by j->env), also printed. */
static const char *bounded_run_fails(job_t *j, fl_kafka_source_opts_t *o, const char *name) {
  o->bounded = 1;
  job_build(j, env_conf(1, NULL), o);
  assert_int_not_equal(fl_env_execute(j->env, name), 0);
  const char *e = fl_env_error(j->env);
  print_message("error: %s\n", e);
  return e;
}

static void *job_thread(void *arg) {
  job_t *j = arg;
  j->rc = fl_env_execute(j->env, "kafka-test");
  return NULL;
}

static void job_start(job_t *j) {
  j->running = true;
  assert_int_equal(pthread_create(&j->th, NULL, job_thread, j), 0);
}

static int job_join(job_t *j) {
  if (j->running) {
    pthread_join(j->th, NULL);
    j->running = false;
  }
  return j->rc;
}

static void job_stop(job_t *j) {
  fl_env_stop(j->env);
  assert_int_equal(job_join(j), FL_ECANCELED);
}

static void job_free(job_t *j) {
  if (j->running) {
    fl_env_stop(j->env);
    job_join(j);
  }
  fl_env_destroy(j->env);
  collector_free(&j->col);
}

/* Builds the job as an unbounded read with o (parallelism P, config kv) and starts it on
 * its thread. */
static void unbounded_start(job_t *j, const fl_kafka_source_opts_t *o, int P,
                            const char *const *kv) {
  job_build(j, env_conf(P, kv), o);
  job_start(j);
}

static size_t col_count(collector_t *c) {
  pthread_mutex_lock(&c->mu);
  size_t n = c->n;
  pthread_mutex_unlock(&c->mu);
  return n;
}

/* Waits up to base_ms for the collector to hold at least n records; false on timeout. */
static bool records_within(job_t *j, size_t n, int64_t base_ms) {
  int64_t deadline = deadline_in(base_ms);
  while (col_count(&j->col) < n) {
    if (mono_ms() >= deadline) return false;
    pause_ms(2); /* polling the collector, not waiting for work to happen */
  }
  return true;
}

/* Waits until the collector holds at least n records. */
static void wait_records(job_t *j, size_t n, int64_t base_ms) {
  if (!records_within(j, n, base_ms))
    fail_msg("only %zu of %zu records arrived in time (job rc %d: %s)", col_count(&j->col), n,
             j->rc, fl_env_error(j->env));
}

/* Every value "p<p>-<i>" for p < parts, from <= i < to appears exactly once, in order
 * within its partition, with timestamp TS0 + base + p * 1000 + i (when check_ts). */
static void expect_exactly(collector_t *c, int parts, int from, int to, int64_t base,
                           bool check_ts) {
  int expected = parts * (to - from);
  int *next = calloc((size_t)parts, sizeof(int));
  assert_non_null(next);
  for (int p = 0; p < parts; p++) next[p] = from;
  if ((int)c->n != expected) fail_msg("expected %d records, got %zu", expected, c->n);
  for (size_t r = 0; r < c->n; r++) {
    int p, i;
    if (sscanf(c->r[r].value, "p%d-%d", &p, &i) != 2 || p < 0 || p >= parts)
      fail_msg("unexpected record '%s'", c->r[r].value);
    if (i != next[p])
      fail_msg("partition %d: got %d, expected %d (duplicate, loss or reorder)", p, i, next[p]);
    next[p]++;
    char k[32];
    snprintf(k, sizeof k, "k%d-%d", p, i);
    assert_string_equal(c->r[r].key, k);
    if (check_ts) assert_int_equal(c->r[r].ts, TS0 + base + p * 1000 + i);
  }
  for (int p = 0; p < parts; p++) assert_int_equal(next[p], to);
  free(next);
}

/* Stops the unbounded job, checks that it read messages from..to of every partition
 * exactly once (expect_exactly with base 0, timestamps checked) and frees it. */
static void stop_expect_exactly(job_t *j, int parts, int from, int to) {
  job_stop(j);
  expect_exactly(&j->col, parts, from, to, 0, true);
  job_free(j);
}

/* ---------------------------------------------------------------------------------- */
/* Bounded reads                                                                      */

static void bounded_read_at(int P) {
  mock_t m;
  job_t j;
  fl_kafka_source_opts_t o = seq_cluster(&m, 4, 250, 1700000000000 - TS0);
  bounded_run(&j, &o, P, NULL, "bounded");
  expect_exactly(&j.col, 4, 0, 250, 1700000000000 - TS0, true);
  job_free(&j);
  mock_stop(&m);
}

static void bounded_read_every_message_once_p1(void **state) { bounded_read_at(1); }
static void bounded_read_every_message_once_p2(void **state) { bounded_read_at(2); }
static void bounded_read_every_message_once_p4(void **state) { bounded_read_at(4); }

/* More subtasks than partitions: the extra ones end at once. Topics by regex. */
static void bounded_regex_more_subtasks_than_partitions(void **state) {
  mock_t m;
  job_t j;
  mock_with_topic(&m, "re-a", 1);
  topic_create(&m, "re-b", 1);
  topic_create(&m, "other", 1);
  produce_seq(&m, "re-a", 1, 0, 20, 0);
  produce(&m, "re-b", 0, "k0-20", "p0-20", 20);
  produce(&m, "other", 0, "x", "x", 1);
  flush_all(&m);
  fl_kafka_source_opts_t o = opts_for(&m, "^re-.*");
  bounded_run(&j, &o, 4, NULL, "regex");
  /* re-a then re-b, both "partition 0": one sequence 0..20 in topic order */
  assert_int_equal(j.col.n, 21);
  job_free(&j);
  mock_stop(&m);
}

/* ---------------------------------------------------------------------------------- */
/* Start positions                                                                    */

/* LATEST: nothing produced before the start is read. The test cannot see when the
 * source resolved its start offsets (the metrics JSON may not be read before execute
 * runs), so it produces one probe round per partition until records arrive, then a
 * final batch: per partition the records must be a gapless run that ends with the
 * last message and holds nothing of the 10 older ones. */
static void start_latest_reads_only_new_messages(void **state) {
  mock_t m;
  job_t j;
  int round = 10;
  fl_kafka_source_opts_t o = seq_cluster(&m, 4, 10, 0);
  o.start = FL_KAFKA_START_LATEST;
  unbounded_start(&j, &o, 2, NULL);
  int64_t deadline = deadline_in(15000);
  while (!records_within(&j, 4, 50)) {
    if (mono_ms() >= deadline) fail_msg("no record arrived in time");
    produce_seq(&m, "t", 4, round++, 1, 0);
  }
  produce_seq(&m, "t", 4, round, 5, 0);
  round += 5;
  /* every partition ends with message round - 1 */
  deadline = deadline_in(10000);
  for (;;) {
    int last[4] = {-1, -1, -1, -1};
    pthread_mutex_lock(&j.col.mu);
    for (size_t r = 0; r < j.col.n; r++) {
      int p, i;
      if (sscanf(j.col.r[r].value, "p%d-%d", &p, &i) == 2 && p >= 0 && p < 4) last[p] = i;
    }
    pthread_mutex_unlock(&j.col.mu);
    if (last[0] == round - 1 && last[1] == round - 1 && last[2] == round - 1 &&
        last[3] == round - 1)
      break;
    if (mono_ms() >= deadline) fail_msg("the last messages did not arrive in time");
    pause_ms(2);
  }
  job_stop(&j);
  int next[4] = {-1, -1, -1, -1};
  for (size_t r = 0; r < j.col.n; r++) {
    int p, i;
    assert_int_equal(sscanf(j.col.r[r].value, "p%d-%d", &p, &i), 2);
    if (i < 10) fail_msg("LATEST read the old message %s", j.col.r[r].value);
    if (next[p] >= 0 && i != next[p])
      fail_msg("partition %d: got %d after %d (gap or duplicate)", p, i, next[p] - 1);
    next[p] = i + 1;
  }
  for (int p = 0; p < 4; p++) assert_int_equal(next[p], round);
  job_free(&j);
  mock_stop(&m);
}

static void commit_offsets(mock_t *m, const char *group, const int64_t *offs, int parts) {
  rd_kafka_t *c = consumer_new(m, group);
  rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(parts);
  for (int p = 0; p < parts; p++)
    if (offs[p] >= 0) rd_kafka_topic_partition_list_add(l, "t", p)->offset = offs[p];
  assert_int_equal(rd_kafka_commit(c, l, 0), 0);
  rd_kafka_topic_partition_list_destroy(l);
  rd_kafka_consumer_close(c);
  rd_kafka_destroy(c);
}

static void start_committed_with_fallback(fl_kafka_start_t fallback) {
  mock_t m;
  job_t j;
  int64_t offs[4] = {5, 7, -1, -1};
  fl_kafka_source_opts_t o = seq_cluster(&m, 4, 10, 0);
  commit_offsets(&m, "g1", offs, 4);
  o.start = FL_KAFKA_START_COMMITTED;
  o.fallback = fallback;
  o.group_id = "g1";
  bounded_run(&j, &o, 2, NULL, "committed");
  int count[4] = {0}, first[4] = {-1, -1, -1, -1};
  for (size_t r = 0; r < j.col.n; r++) {
    int p, i;
    assert_int_equal(sscanf(j.col.r[r].value, "p%d-%d", &p, &i), 2);
    if (first[p] < 0) first[p] = i;
    count[p]++;
  }
  assert_int_equal(count[0], 5);
  assert_int_equal(first[0], 5);
  assert_int_equal(count[1], 3);
  assert_int_equal(first[1], 7);
  if (fallback == FL_KAFKA_START_EARLIEST) {
    assert_int_equal(count[2], 10);
    assert_int_equal(count[3], 10);
  } else {
    assert_int_equal(count[2], 0);
    assert_int_equal(count[3], 0);
  }
  job_free(&j);
  mock_stop(&m);
}

static void start_committed_fallback_earliest(void **state) {
  start_committed_with_fallback(FL_KAFKA_START_EARLIEST);
}
static void start_committed_fallback_latest(void **state) {
  start_committed_with_fallback(FL_KAFKA_START_LATEST);
}

/* A timestamp after every message: the start is the end, so a bounded read is empty
 * and an unbounded one sees only what is produced later. */
static void start_timestamp_after_all_messages_starts_at_end(void **state) {
  mock_t m;
  job_t j;
  fl_kafka_source_opts_t o = seq_cluster(&m, 4, 10, 1000);
  o.start = FL_KAFKA_START_TIMESTAMP;
  o.start_timestamp_ms = 1000000;
  bounded_run(&j, &o, 2, NULL, "ts");
  assert_int_equal(j.col.n, 0);
  job_free(&j);
  mock_stop(&m);
}

/* Pins the mock's limit: ListOffsets by timestamp is not implemented in the mock
 * (every partition answers -1). If this fails, the mock learned it: extend
 * start_timestamp_* with a timestamp between messages. */
static void mock_lists_no_offset_by_timestamp(void **state) {
  mock_t m;
  (void)seq_cluster(&m, 1, 10, 1000);
  rd_kafka_t *c = consumer_new(&m, "probe");
  rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
  rd_kafka_topic_partition_list_add(l, "t", 0)->offset = 1005;
  assert_int_equal(rd_kafka_offsets_for_times(c, l, (int)(10000 * timeout_scale())), 0);
  assert_int_equal(l->elems[0].offset, -1);
  rd_kafka_topic_partition_list_destroy(l);
  rd_kafka_destroy(c);
  mock_stop(&m);
}

/* ---------------------------------------------------------------------------------- */
/* Checkpoints, restore, commits                                                      */

/* Waits until group `group` has committed `want[p]` for every partition of "t". */
static void wait_committed(mock_t *m, const char *group, const int64_t *want, int parts) {
  rd_kafka_t *c = consumer_new(m, group);
  int64_t deadline = deadline_in(15000);
  for (;;) {
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(parts);
    for (int p = 0; p < parts; p++) rd_kafka_topic_partition_list_add(l, "t", p);
    bool ok = rd_kafka_committed(c, l, 5000) == 0;
    for (int p = 0; ok && p < parts; p++) ok = l->elems[p].offset == want[p];
    rd_kafka_topic_partition_list_destroy(l);
    if (ok) break;
    if (mono_ms() >= deadline)
      fail_msg("group %s did not commit the expected offsets in time", group);
    pause_ms(20);
  }
  rd_kafka_destroy(c);
}

static void checkpoint_restart_is_exactly_once_and_commits(void **state) {
  mock_t m;
  job_t j1, j2;
  char root[256];
  int64_t end1[4] = {30, 30, 30, 30}, end2[4] = {50, 50, 50, 50};
  snprintf(root, sizeof root, "%s/ckpt", g_tmpdir);
  fl_kafka_source_opts_t o = seq_cluster(&m, 4, 30, 0);
  const char *kv[] = {"state.checkpoints.dir",
                      root,
                      "execution.checkpointing.interval",
                      "50ms",
                      "state.checkpoints.num-retained",
                      "2",
                      NULL};
  o.group_id = "ck";
  unbounded_start(&j1, &o, 2, kv);
  wait_records(&j1, 120, 10000);
  /* a completed checkpoint covers all 30 per partition: the group has them */
  wait_committed(&m, "ck", end1, 4);
  stop_expect_exactly(&j1, 4, 0, 30);

  produce_seq(&m, "t", 4, 30, 20, 0);
  const char *kv2[] = {"state.checkpoints.dir",
                       root,
                       "execution.checkpointing.interval",
                       "50ms",
                       "execution.savepoint.path",
                       root,
                       NULL};
  unbounded_start(&j2, &o, 3, kv2);
  wait_records(&j2, 80, 10000);
  wait_committed(&m, "ck", end2, 4);
  stop_expect_exactly(&j2, 4, 30, 50);
  mock_stop(&m);
}

static void rescale_2_to_3_from_savepoint(void **state) {
  mock_t m;
  job_t j1, j2;
  char root[256], sp[300];
  snprintf(root, sizeof root, "%s/sp", g_tmpdir);
  snprintf(sp, sizeof sp, "%s/sp1", root);
  fl_kafka_source_opts_t o = seq_cluster(&m, 4, 25, 0);
  unbounded_start(&j1, &o, 2, NULL);
  wait_records(&j1, 100, 10000);
  char err[512];
  if (fl_env_savepoint(j1.env, sp, err, sizeof err) != 0) fail_msg("savepoint: %s", err);
  stop_expect_exactly(&j1, 4, 0, 25);

  produce_seq(&m, "t", 4, 25, 15, 0);
  const char *kv[] = {"execution.savepoint.path", sp, NULL};
  bounded_run(&j2, &o, 3, kv, "rescaled");
  expect_exactly(&j2.col, 4, 25, 40, 0, true);
  job_free(&j2);
  mock_stop(&m);
}

/* Without periodic checkpoints a bounded job that ended well commits its end. */
static void bounded_end_commits_positions(void **state) {
  mock_t m;
  job_t j;
  int64_t end[4] = {12, 12, 12, 12};
  fl_kafka_source_opts_t o = seq_cluster(&m, 4, 12, 0);
  o.group_id = "endgroup";
  bounded_run(&j, &o, 2, NULL, "end");
  wait_committed(&m, "endgroup", end, 4);
  job_free(&j);
  mock_stop(&m);
}

/* ---------------------------------------------------------------------------------- */
/* Event time                                                                         */

static int count_reduce(fl_context_t *ctx, const void *a, size_t a_len, const void *b, size_t b_len,
                        fl_buf_t *out, void *opaque) {
  /* values are decimal counts; the window's first element is "1" */
  char buf[32];
  long x = strtol(a, NULL, 10), y = strtol(b, NULL, 10);
  (void)a_len;
  (void)b_len;
  snprintf(buf, sizeof buf, "%ld", x + y);
  return fl_buf_set(out, buf, strlen(buf) + 1);
}

static int ones_map(fl_context_t *ctx, const fl_record_t *in, void *opaque) {
  return fl_emit(ctx, in->key, in->key_len, "1", 2, in->timestamp);
}

/* Runs a job at parallelism P that counts o's records per key in tumbling event-time
 * windows of 1 s into col, and waits for the first window to fire while the job runs;
 * `what` says what a timeout would mean. The job is left running. */
static void start_window_count(job_t *j, collector_t *col, const fl_kafka_source_opts_t *o, int P,
                               const char *what) {
  fl_env_t *env = env_conf(P, NULL);
  memset(j, 0, sizeof *j);
  j->env = env;
  collector_init(&j->col);
  collector_init(col);
  fl_stream_t *s = fl_source_kafka(env, "kafka", o);
  s = fl_stream_map(s, "ones", ones_map, NULL);
  fl_windowed_stream_t *w =
      fl_window_tumbling(fl_stream_key_by(s, NULL, NULL), FL_EVENT_TIME, 1000, 0);
  s = fl_window_reduce(w, "count", count_reduce, NULL);
  assert_int_equal(fl_stream_sink(s, "collect", &collector_sink, col), 0);
  job_start(j);
  int64_t deadline = deadline_in(10000);
  while (col_count(col) < 1) {
    if (mono_ms() >= deadline)
      fail_msg("the window did not fire while running: %s (job rc %d: %s)", what, j->rc,
               fl_env_error(env));
    pause_ms(5);
  }
}

/* Ten records in partition 0 of topic, one each 100 ms of event time from 100 to 1000. */
static void produce_ten(mock_t *m, const char *topic) {
  for (int i = 0; i < 10; i++) produce(m, topic, 0, "k", "x", 100 + i * 100);
  flush_all(m);
}

static void quiet_partition_idles_and_window_fires_while_running(void **state) {
  mock_t m;
  job_t j;
  collector_t col;
  mock_with_topic(&m, "q", 2);
  produce_ten(&m, "q");
  fl_watermark_strategy_t ws = {.version = FL_WATERMARK_STRATEGY_VERSION,
                                .kind = FL_WATERMARKS_BOUNDED,
                                .max_out_of_orderness_ms = 0,
                                .idle_timeout_ms = 200};
  fl_kafka_source_opts_t o = opts_for(&m, "q");
  o.watermarks = &ws;
  /* [0, 1000) holds 100..900 (9 records) and fires once partition 1 is idle and the
   * watermark passed 999 (max 1000 - 0 - 1), while the job keeps running */
  start_window_count(&j, &col, &o, 1, "partition 1 did not become idle");
  assert_true(j.running);
  job_stop(&j);
  assert_int_equal(col.n, 1);
  assert_string_equal(col.r[0].value, "9");
  assert_int_equal(col.r[0].ts, 999);
  job_free(&j);
  collector_free(&col);
  mock_stop(&m);
}

/* A subtask without partitions is idle: it never holds event time back. */
static void subtask_without_partitions_is_idle(void **state) {
  mock_t m;
  job_t j;
  collector_t col;
  mock_with_topic(&m, "one", 1);
  produce_ten(&m, "one");
  fl_watermark_strategy_t ws = {.version = FL_WATERMARK_STRATEGY_VERSION,
                                .kind = FL_WATERMARKS_MONOTONOUS};
  fl_kafka_source_opts_t o = opts_for(&m, "one");
  o.watermarks = &ws;
  start_window_count(&j, &col, &o, 2, "the empty subtask held it back");
  job_stop(&j);
  assert_int_equal(col.n, 1);
  assert_string_equal(col.r[0].value, "9");
  job_free(&j);
  collector_free(&col);
  mock_stop(&m);
}

/* Records keep the Kafka timestamp when there is no strategy; a timestamp function
 * replaces it. */
static int ts_from_value(fl_context_t *ctx, const fl_record_t *rec, int64_t *ts, void *opaque) {
  *ts = 5000 + (int64_t)rec->value_len;
  return 0;
}

static void watermark_timestamp_function_sets_record_time(void **state) {
  mock_t m;
  job_t j;
  mock_with_topic(&m, "t", 1);
  produce(&m, "t", 0, "a", "xyz", 42);
  flush_all(&m);
  fl_watermark_strategy_t ws = {.version = FL_WATERMARK_STRATEGY_VERSION,
                                .kind = FL_WATERMARKS_MONOTONOUS,
                                .timestamp = ts_from_value};
  fl_kafka_source_opts_t o = opts_for(&m, "t");
  o.watermarks = &ws;
  bounded_run(&j, &o, 1, NULL, "tsfn");
  assert_int_equal(j.col.n, 1);
  assert_int_equal(j.col.r[0].ts, 5003);
  job_free(&j);
  mock_stop(&m);
}

/* A timestamp function that gives INT64_MIN (the library's "no timestamp") or fails
 * makes its message a bad one for the error policy (it used to pass the record on
 * without a timestamp); a time just above INT64_MIN is an event time, and the bounded
 * watermark it makes saturates instead of wrapping around (undefined behaviour before). */
static int ts_edge(fl_context_t *ctx, const fl_record_t *rec, int64_t *ts, void *opaque) {
  if (rec->value_len == 4 && memcmp(rec->value, "none", 4) == 0)
    *ts = FL_TS_NONE;
  else if (rec->value_len == 4 && memcmp(rec->value, "fail", 4) == 0)
    return fl_ctx_fail(ctx, "no time in %.4s", (const char *)rec->value);
  else if (rec->value_len == 3 && memcmp(rec->value, "min", 3) == 0)
    *ts = FL_TS_NONE + 1;
  else
    *ts = 1000;
  return 0;
}

static void timestamp_function_without_event_time_follows_on_error(void **state) {
  static const fl_kafka_error_policy_t policies[] = {FL_KAFKA_ON_ERROR_SKIP,
                                                     FL_KAFKA_ON_ERROR_FAIL};
  for (size_t i = 0; i < 2; i++) {
    mock_t m;
    job_t j;
    mock_with_topic(&m, "t", 1);
    produce(&m, "t", 0, "a", "min", 1);
    produce(&m, "t", 0, "b", "none", 2);
    produce(&m, "t", 0, "c", "fail", 3);
    produce(&m, "t", 0, "d", "ok", 4);
    flush_all(&m);
    fl_watermark_strategy_t ws = {.version = FL_WATERMARK_STRATEGY_VERSION,
                                  .kind = FL_WATERMARKS_BOUNDED,
                                  .max_out_of_orderness_ms = 5000,
                                  .timestamp = ts_edge};
    fl_kafka_source_opts_t o = opts_for(&m, "t");
    o.watermarks = &ws;
    o.bounded = 1;
    o.on_error = policies[i];
    job_build(&j, env_conf(1, NULL), &o);
    int rc = fl_env_execute(j.env, "ts-edge");
    if (policies[i] == FL_KAFKA_ON_ERROR_SKIP) {
      assert_int_equal(rc, 0);
      assert_int_equal(j.col.n, 2); /* "min" and "ok" */
      assert_int_equal(j.col.r[0].ts, FL_TS_NONE + 1);
      assert_int_equal(j.col.r[1].ts, 1000);
      char *js = fl_env_metrics_json(j.env);
      if (strstr(js, "\"deserialize-errors-skipped\":2") == NULL)
        fail_msg("no count of 2 skipped: %s", js);
      fl_free(js);
    } else {
      assert_int_not_equal(rc, 0);
      const char *e = fl_env_error(j.env);
      if (strstr(e,
                 "topic t partition 0 offset 1: the timestamp function gave "
                 "-9223372036854775808, which is not an event time") == NULL)
        fail_msg("error: %s", e);
    }
    job_free(&j);
    mock_stop(&m);
  }
}

/* ---------------------------------------------------------------------------------- */
/* Poison pills                                                                       */

typedef struct deser_seen {
  pthread_mutex_t mu;
  int with_header;
} deser_seen_t;

static int picky_deser(fl_context_t *ctx, const fl_kafka_message_t *msg, fl_record_t *out,
                       void *opaque) {
  deser_seen_t *seen = opaque;
  for (size_t i = 0; seen != NULL && i < msg->n_headers; i++)
    if (strcmp(msg->headers[i].name, "h") == 0 && msg->headers[i].value_len == 2 &&
        memcmp(msg->headers[i].value, "hv", 2) == 0) {
      pthread_mutex_lock(&seen->mu);
      seen->with_header++;
      pthread_mutex_unlock(&seen->mu);
    }
  if (msg->value_len >= 3 && memcmp(msg->value, "bad", 3) == 0)
    return fl_ctx_fail(ctx, "poison %.*s", (int)msg->value_len, (const char *)msg->value);
  out->key = msg->key;
  out->key_len = msg->key_len;
  out->value = msg->value;
  out->value_len = msg->value_len;
  out->timestamp = msg->timestamp;
  return 1;
}

/* A cluster whose topic "t" of 2 partitions holds poison pills, and the options that read
 * it with picky_deser; with dlq, also a topic "dlq" the options send dead letters to. */
static fl_kafka_source_opts_t poison_setup(mock_t *m, bool dlq) {
  mock_with_topic(m, "t", 2);
  if (dlq) topic_create(m, "dlq", 1);
  /* partition 0: good0, bad1, good2; partition 1: good3, bad4 (with header) */
  produce(m, "t", 0, "a", "good0", 10);
  produce(m, "t", 0, "b", "bad1", 11);
  produce(m, "t", 0, "c", "good2", 12);
  produce(m, "t", 1, "d", "good3", 13);
  produce_hdr(m, "t", 1, "e", "bad4", 14, "h", "hv");
  flush_all(m);
  fl_kafka_source_opts_t o = opts_for(m, "t");
  o.deserialize = picky_deser;
  if (dlq) {
    o.on_error = FL_KAFKA_ON_ERROR_DEAD_LETTER;
    o.dead_letter_topic = "dlq";
  }
  return o;
}

static void poison_fail_names_topic_partition_offset(void **state) {
  mock_t m;
  job_t j;
  fl_kafka_source_opts_t o = poison_setup(&m, false);
  const char *e = bounded_run_fails(&j, &o, "fail");
  /* either partition's poison pill may come first; each is at offset 1 */
  if (strstr(e, "topic t partition 0 offset 1: poison bad1") == NULL &&
      strstr(e, "topic t partition 1 offset 1: poison bad4") == NULL)
    fail_msg("error does not name topic/partition/offset and cause: %s", e);
  job_free(&j);
  mock_stop(&m);
}

static void poison_skip_counts(void **state) {
  mock_t m;
  job_t j;
  fl_kafka_source_opts_t o = poison_setup(&m, false);
  o.on_error = FL_KAFKA_ON_ERROR_SKIP;
  bounded_run(&j, &o, 2, NULL, "skip");
  assert_int_equal(j.col.n, 3);
  char *js = fl_env_metrics_json(j.env);
  if (strstr(js, "\"deserialize-errors-skipped\":2") == NULL)
    fail_msg("no operator count of 2 skipped: %s", js);
  fl_free(js);
  job_free(&j);
  mock_stop(&m);
}

static void poison_dead_letter_keeps_bytes_and_headers(void **state) {
  mock_t m;
  job_t j;
  deser_seen_t seen = {.with_header = 0};
  pthread_mutex_init(&seen.mu, NULL);
  fl_kafka_source_opts_t o = poison_setup(&m, true);
  o.deserialize_opaque = &seen;
  bounded_run(&j, &o, 2, NULL, "dlq");
  assert_int_equal(j.col.n, 3);
  assert_int_equal(seen.with_header, 1);
  char *js = fl_env_metrics_json(j.env);
  if (strstr(js, "\"dead-lettered\":2") == NULL)
    fail_msg("no operator count of 2 dead letters: %s", js);
  fl_free(js);
  job_free(&j);

  /* read the dead-letter topic back */
  rd_kafka_t *c = consumer_new(&m, "dlq-reader");
  rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
  rd_kafka_topic_partition_list_add(l, "dlq", 0)->offset = RD_KAFKA_OFFSET_BEGINNING;
  assert_int_equal(rd_kafka_assign(c, l), 0);
  rd_kafka_topic_partition_list_destroy(l);
  int got = 0, seen1 = 0, seen4 = 0;
  int64_t deadline = deadline_in(10000);
  while (got < 2 && mono_ms() < deadline) {
    rd_kafka_message_t *msg = rd_kafka_consumer_poll(c, 100);
    if (msg == NULL) continue;
    if (msg->err == 0) {
      rd_kafka_headers_t *h = NULL;
      const void *v;
      size_t vl;
      got++;
      assert_int_equal(rd_kafka_message_headers(msg, &h), 0);
      assert_int_equal(rd_kafka_header_get_last(h, "fl.topic", &v, &vl), 0);
      assert_true(vl == 1 && memcmp(v, "t", 1) == 0);
      assert_int_equal(rd_kafka_header_get_last(h, "fl.error", &v, &vl), 0);
      assert_true(vl >= 6 && memcmp(v, "poison", 6) == 0);
      if (msg->len == 4 && memcmp(msg->payload, "bad1", 4) == 0) {
        seen1++;
        assert_true(msg->key_len == 1 && memcmp(msg->key, "b", 1) == 0);
        assert_int_equal(rd_kafka_header_get_last(h, "fl.partition", &v, &vl), 0);
        assert_true(vl == 1 && memcmp(v, "0", 1) == 0);
        assert_int_equal(rd_kafka_header_get_last(h, "fl.offset", &v, &vl), 0);
        assert_true(vl == 1 && memcmp(v, "1", 1) == 0);
        assert_int_equal(rd_kafka_message_timestamp(msg, NULL), 11);
      } else if (msg->len == 4 && memcmp(msg->payload, "bad4", 4) == 0) {
        seen4++;
        assert_int_equal(rd_kafka_header_get_last(h, "h", &v, &vl), 0);
        assert_true(vl == 2 && memcmp(v, "hv", 2) == 0);
        assert_int_equal(rd_kafka_header_get_last(h, "fl.partition", &v, &vl), 0);
        assert_true(vl == 1 && memcmp(v, "1", 1) == 0);
        assert_int_equal(rd_kafka_header_get_last(h, "fl.offset", &v, &vl), 0);
        assert_true(vl == 1 && memcmp(v, "1", 1) == 0);
      }
    }
    rd_kafka_message_destroy(msg);
  }
  assert_int_equal(got, 2);
  assert_int_equal(seen1, 1);
  assert_int_equal(seen4, 1);
  rd_kafka_consumer_close(c);
  rd_kafka_destroy(c);
  pthread_mutex_destroy(&seen.mu);
  mock_stop(&m);
}

/* A dead letter that cannot be delivered fails the job naming the topic. */
static void dead_letter_delivery_failure_fails(void **state) {
  mock_t m;
  job_t j;
  fl_kafka_source_opts_t o = poison_setup(&m, true);
  rd_kafka_resp_err_t errs[32];
  for (int i = 0; i < 32; i++) errs[i] = RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED;
  rd_kafka_mock_push_request_errors_array(m.mc, 0 /* Produce */, 32, errs);
  const char *e = bounded_run_fails(&j, &o, "dlq-fail");
  if (strstr(e, "dead-letter topic dlq") == NULL || strstr(e, "uthoriz") == NULL)
    fail_msg("unclear error: %s", e);
  job_free(&j);
  rd_kafka_mock_clear_request_errors(m.mc, 0);
  mock_stop(&m);
}

/* ---------------------------------------------------------------------------------- */
/* Broker failures                                                                    */

static void broker_down_then_up_resumes_without_loss(void **state) {
  mock_t m;
  job_t j;
  fl_kafka_source_opts_t o = seq_cluster(&m, 2, 20, 0);
  unbounded_start(&j, &o, 1, NULL);
  wait_records(&j, 40, 10000);
  assert_int_equal(rd_kafka_mock_broker_set_down(m.mc, 1), 0);
  sleep(5); /* the outage itself */
  assert_int_equal(rd_kafka_mock_broker_set_up(m.mc, 1), 0);
  assert_true(j.running);
  produce_seq(&m, "t", 2, 20, 20, 0);
  wait_records(&j, 80, 20000);
  stop_expect_exactly(&j, 2, 0, 40);
  mock_stop(&m);
}

static void retriable_fetch_errors_do_not_fail(void **state) {
  mock_t m;
  job_t j;
  fl_kafka_source_opts_t o = seq_cluster(&m, 2, 20, 0);
  rd_kafka_mock_push_request_errors(
      m.mc, RD_FETCH, 4, RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION, RD_KAFKA_RESP_ERR__TRANSPORT,
      RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT, RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE);
  unbounded_start(&j, &o, 1, NULL);
  wait_records(&j, 40, 15000);
  stop_expect_exactly(&j, 2, 0, 20);
  mock_stop(&m);
}

static void authorization_failure_fails_with_message(void **state) {
  mock_t m;
  job_t j;
  fl_kafka_source_opts_t o = seq_cluster(&m, 1, 5, 0);
  rd_kafka_resp_err_t errs[64];
  for (int i = 0; i < 64; i++) errs[i] = RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED;
  rd_kafka_mock_push_request_errors_array(m.mc, RD_FETCH, 64, errs);
  unbounded_start(&j, &o, 1, NULL);
  int rc = job_join(&j);
  assert_int_not_equal(rc, 0);
  assert_int_not_equal(rc, FL_ECANCELED);
  const char *e = fl_env_error(j.env);
  print_message("error: %s\n", e);
  if (strstr(e, "topic t") == NULL || strstr(e, "uthoriz") == NULL)
    fail_msg("unclear error: %s", e);
  job_free(&j);
  mock_stop(&m);
}

static void missing_topic_fails_naming_it(void **state) {
  mock_t m;
  job_t j;
  mock_with_topic(&m, "t", 1);
  fl_kafka_source_opts_t o = opts_for(&m, "t,nosuch");
  const char *e = bounded_run_fails(&j, &o, "missing");
  if (strstr(e, "'nosuch' does not exist") == NULL) fail_msg("unclear error: %s", e);
  job_free(&j);
  mock_stop(&m);
}

static void unreachable_brokers_fail_naming_them(void **state) {
  job_t j;
  mock_t m = {0};
  snprintf(m.bootstrap, sizeof m.bootstrap, "127.0.0.1:1");
  fl_kafka_source_opts_t o = opts_for(&m, "t");
  o.timeout_ms = 500;
  const char *e = bounded_run_fails(&j, &o, "unreachable");
  if (strstr(e, "127.0.0.1:1") == NULL || strstr(e, "metadata") == NULL)
    fail_msg("unclear error: %s", e);
  job_free(&j);
}

/* The broker process frozen (SIGSTOP, its connections open): the source says on the log
 * that the broker does not answer, says again when it answers, and goes on reading. */
static void frozen_broker_is_logged_until_it_answers_again(void **state) {
  char bs[1100], err[512];
  child_t *srv = start_server(bs, sizeof bs, "--quiet", "--topic", "t:2", NULL);
  mock_t m = {0}; /* a producer to the server, no mock of our own */
  rd_kafka_conf_t *pc = rd_kafka_conf_new();
  assert_int_equal(rd_kafka_conf_set(pc, "bootstrap.servers", bs, err, sizeof err), 0);
  assert_int_equal(rd_kafka_conf_set(pc, "linger.ms", "0", err, sizeof err), 0);
  m.prod = rd_kafka_new(RD_KAFKA_PRODUCER, pc, err, sizeof err);
  assert_non_null(m.prod);
  snprintf(m.bootstrap, sizeof m.bootstrap, "%.500s", bs);
  produce_seq(&m, "t", 2, 0, 10, 0);
  static const char *const props[] = {
      "log_level", "2", "statistics.interval.ms", "100", "fetch.wait.max.ms", "100", NULL};
  fl_kafka_source_opts_t o = opts_for(&m, "t");
  o.props = props;
  job_t j;
  job_build(&j, env_conf(1, NULL), &o);
  log_buf_t log = {.mu = PTHREAD_MUTEX_INITIALIZER};
  log_buf_attach(&log, j.env);
  job_start(&j);
  wait_records(&j, 20, 10000);
  assert_int_equal(kill(srv->pid, SIGSTOP), 0);
  bool warned = log_buf_wait(&log, "WARN", "no answer from broker", 10000);
  assert_int_equal(kill(srv->pid, SIGCONT), 0);
  bool again = log_buf_wait(&log, "INFO", "answer again", 10000);
  produce_seq(&m, "t", 2, 10, 10, 0);
  wait_records(&j, 40, 10000);
  job_stop(&j); /* no more log lines */
  if (!warned || !again)
    fail_msg("frozen broker: warned %d, answered again %d; log:\n%s", warned, again,
             log_buf_text(&log));
  expect_exactly(&j.col, 2, 0, 20, 0, true);
  job_free(&j);
  log_buf_free(&log);
  mock_stop(&m);
  stop_server(srv);
  child_free(srv);
}

/* ---------------------------------------------------------------------------------- */
/* Invalid options                                                                    */

static int destroyed;
static void count_destroy(void *opaque) { destroyed++; }

static void expect_invalid(fl_kafka_source_opts_t *o, const char *needle, const char *must_not) {
  fl_env_t *env = env_conf(1, NULL);
  collector_t col;
  collector_init(&col);
  fl_stream_t *s = fl_source_kafka(env, "src", o);
  if (s != NULL) fl_stream_sink(s, "c", &collector_sink, &col);
  int rc = fl_env_execute(env, "invalid");
  if (rc != FL_EINVAL)
    fail_msg("expected FL_EINVAL for '%s', got %d (%s)", needle, rc, fl_env_error(env));
  const char *e = fl_env_error(env);
  if (strstr(e, "src") == NULL || strstr(e, needle) == NULL)
    fail_msg("error '%s' does not name 'src' and '%s'", e, needle);
  if (must_not != NULL && strstr(e, must_not) != NULL) fail_msg("error '%s' shows the secret", e);
  fl_env_destroy(env);
  collector_free(&col);
}

static void invalid_options_are_rejected_by_name(void **state) {
  mock_t m = {0};
  snprintf(m.bootstrap, sizeof m.bootstrap, "127.0.0.1:9");
  fl_kafka_source_opts_t o;

  o = opts_for(&m, "t");
  o.version = 7;
  expect_invalid(&o, "version", NULL);
  o = opts_for(&m, "t");
  o.brokers = NULL;
  expect_invalid(&o, "brokers", NULL);
  o = opts_for(&m, "t");
  o.brokers = "";
  expect_invalid(&o, "brokers", NULL);
  o = opts_for(&m, "");
  expect_invalid(&o, "topics", NULL);
  o = opts_for(&m, "a,,b");
  expect_invalid(&o, "topics", NULL);
  o = opts_for(&m, "^(unclosed");
  expect_invalid(&o, "regular expression", NULL);
  o = opts_for(&m, "t");
  o.start = (fl_kafka_start_t)9;
  expect_invalid(&o, "start", NULL);
  o = opts_for(&m, "t");
  o.start = FL_KAFKA_START_COMMITTED;
  o.fallback = FL_KAFKA_START_TIMESTAMP;
  expect_invalid(&o, "fallback", NULL);
  o = opts_for(&m, "t");
  o.start = FL_KAFKA_START_TIMESTAMP;
  o.start_timestamp_ms = -5;
  expect_invalid(&o, "start_timestamp_ms", NULL);
  o = opts_for(&m, "t");
  o.on_error = FL_KAFKA_ON_ERROR_DEAD_LETTER;
  expect_invalid(&o, "dead_letter_topic", NULL);
  o = opts_for(&m, "t");
  o.on_error = (fl_kafka_error_policy_t)5;
  expect_invalid(&o, "on_error", NULL);
  o = opts_for(&m, "t");
  o.timeout_ms = -1;
  expect_invalid(&o, "timeout_ms", NULL);
  fl_watermark_strategy_t ws = {.version = 99};
  o = opts_for(&m, "t");
  o.watermarks = &ws;
  expect_invalid(&o, "watermarks.version", NULL);
  {
    const char *const p[] = {"session.timeout.ms", NULL, NULL};
    o = opts_for(&m, "t");
    o.props = p;
    expect_invalid(&o, "session.timeout.ms", NULL);
  }
  {
    const char *const p[] = {"no.such.property", "1", NULL};
    o = opts_for(&m, "t");
    o.props = p;
    expect_invalid(&o, "no.such.property", NULL);
  }
  {
    const char *const p[] = {"fetch.wait.max.ms", "notanumber", NULL};
    o = opts_for(&m, "t");
    o.props = p;
    expect_invalid(&o, "fetch.wait.max.ms", NULL);
  }
  {
    /* a secret with an invalid value: the property is named, its value never shown */
    const char *const p[] = {"sasl.mechanisms",
                             "PLAIN",
                             "ssl.key.password",
                             "hunter2-secret",
                             "enable.ssl.certificate.verification",
                             "hunter2-secret",
                             NULL};
    o = opts_for(&m, "t");
    o.props = p;
    expect_invalid(&o, "enable.ssl.certificate.verification", "hunter2");
  }
  {
    const char *const p[] = {"sasl.password",
                             "s3cr3t-value",
                             "sasl.username",
                             "x",
                             "oops.unknown",
                             "s3cr3t-value",
                             NULL};
    o = opts_for(&m, "t");
    o.props = p;
    expect_invalid(&o, "oops.unknown", "s3cr3t");
  }
  /* the deserializer's destroy runs once even when the builder rejects the options */
  destroyed = 0;
  o = opts_for(&m, "");
  o.deserialize = picky_deser;
  o.deserialize_destroy = count_destroy;
  expect_invalid(&o, "topics", NULL);
  assert_int_equal(destroyed, 1);
}

/* A secret property with a value librdkafka rejects at rd_kafka_new time never shows. */
static void secret_values_never_in_errors(void **state) {
  mock_t m;
  job_t j;
  mock_with_topic(&m, "t", 1);
  const char *const p[] = {"log_level",
                           "2",
                           "sasl.password",
                           "TOPSECRET-42",
                           "security.protocol",
                           "sasl_plaintext",
                           "sasl.mechanisms",
                           "NOPE",
                           NULL};
  fl_kafka_source_opts_t o = opts_for(&m, "t");
  o.props = p;
  const char *e = bounded_run_fails(&j, &o, "secret");
  if (strstr(e, "TOPSECRET") != NULL) fail_msg("the secret leaked: %s", e);
  job_free(&j);
  mock_stop(&m);
}

/* ---------------------------------------------------------------------------------- */
/* Metrics                                                                            */

static void metrics_show_consumed_and_lag(void **state) {
  mock_t m;
  job_t j;
  fl_kafka_source_opts_t o = seq_cluster(&m, 2, 30, 0);
  bounded_run(&j, &o, 1, NULL, "metrics");
  char *js = fl_env_metrics_json(j.env);
  if (strstr(js, "\"records-consumed\":60") == NULL ||
      strstr(js, "\"records-lag-max\":0") == NULL || strstr(js, "\"records-lag.t.1\":0") == NULL)
    fail_msg("metrics lack consumed/lag: %s", js);
  fl_free(js);
  job_free(&j);
  mock_stop(&m);
}

/* Partition p of "t" holds 1 + p % 5 messages: each partition's offsets differ from its
 * neighbours'. Returns how many were produced. */
static size_t produce_uneven(mock_t *m, int parts) {
  size_t n = 0;
  for (int p = 0; p < parts; p++)
    for (int i = 0; i < 1 + p % 5; i++, n++) produce(m, "t", p, "k", "v", TS0 + i);
  flush_all(m);
  return n;
}

/* The source's user metrics in fl_env_metrics_json (a new reference): subtask s's, or
 * for s < 0 the operator's (counters summed, gauges at their maximum; a partition's
 * gauges come from the one subtask that reads it). */
static json_t *source_metrics(fl_env_t *env, int s) {
  char *js = fl_env_metrics_json(env);
  assert_non_null(js);
  json_t *root = json_loads(js, 0, NULL), *o, *found = NULL;
  fl_free(js);
  assert_non_null(root);
  size_t i;
  json_array_foreach(json_object_get(root, "operators"), i, o) {
    if (strcmp(json_string_value(json_object_get(o, "name")), "kafka") != 0) continue;
    json_t *from = s < 0 ? o : json_array_get(json_object_get(o, "subtasks"), (size_t)s);
    found = json_incref(json_object_get(from, "metrics"));
  }
  json_decref(root);
  return found ? found : json_object();
}

/* Metric name (printf format) of m, INT64_MIN when absent. */
static int64_t metric(json_t *m, const char *fmt, ...) {
  char name[128];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(name, sizeof name, fmt, ap);
  va_end(ap);
  json_t *v = json_object_get(m, name);
  return json_is_integer(v) ? (int64_t)json_integer_value(v) : INT64_MIN;
}

/* Whether every partition p < parts shows current-offset 1 + p % 5 (all read),
 * committed-offset 1 + p % 5 (committed) and records-lag 0 (refreshed once a second),
 * and no commit failed; else why not. */
static bool offsets_shown(fl_env_t *env, int parts, char *why, size_t why_size) {
  json_t *m = source_metrics(env, -1);
  bool ok = metric(m, "commits-failed") == 0 && metric(m, "records-lag-max") == 0;
  if (!ok)
    snprintf(why, why_size, "commits-failed %" PRId64 ", records-lag-max %" PRId64,
             metric(m, "commits-failed"), metric(m, "records-lag-max"));
  for (int p = 0; ok && p < parts; p++) {
    int64_t cur = metric(m, "current-offset.t.%d", p), com = metric(m, "committed-offset.t.%d", p);
    int64_t lag = metric(m, "records-lag.t.%d", p);
    ok = cur == 1 + p % 5 && com == 1 + p % 5 && lag == 0;
    if (!ok)
      snprintf(why, why_size,
               "partition %d: current-offset %" PRId64 ", committed-offset %" PRId64
               ", records-lag %" PRId64 ", expected %d, %d, 0",
               p, cur, com, lag, 1 + p % 5, 1 + p % 5);
  }
  json_decref(m);
  return ok;
}

#define PROM_KSR "flink_taskmanager_job_task_operator_KafkaSourceReader_"

/* 130 partitions at parallelism 2: 65 per subtask, three gauges each. After every message
 * was read and a checkpoint committed the positions, the JSON and the Prometheus text
 * show each partition's current and committed offset, the commits counted. */
static void metrics_show_offsets_and_commits_per_partition(void **state) {
  enum {
    PARTS = 130
  };
  mock_t m;
  job_t j;
  char root[256], why[256] = "";
  int64_t want[PARTS];
  snprintf(root, sizeof root, "%s/kmetrics", g_tmpdir);
  mock_with_topic(&m, "t", PARTS);
  size_t n = produce_uneven(&m, PARTS);
  for (int p = 0; p < PARTS; p++) want[p] = 1 + p % 5;
  const char *kv[] = {"state.checkpoints.dir", root, "execution.checkpointing.interval", "50ms",
                      NULL};
  fl_kafka_source_opts_t o = opts_for(&m, "t");
  o.group_id = "kmetrics";
  unbounded_start(&j, &o, 2, kv);
  wait_records(&j, n, 15000);
  int64_t deadline = deadline_in(15000);
  while (!offsets_shown(j.env, PARTS, why, sizeof why)) {
    if (mono_ms() >= deadline) fail_msg("metrics do not show the offsets: %s", why);
    pause_ms(20); /* polling the metrics, not waiting for work to happen */
  }
  /* what the group holds */
  wait_committed(&m, "kmetrics", want, PARTS);
  for (int s = 0; s < 2; s++) {
    json_t *sm = source_metrics(j.env, s);
    /* a partition's gauges are in its subtask only (the i-th partition: subtask i % 2) */
    assert_true(metric(sm, "current-offset.t.%d", s) == 1 + s % 5);
    assert_true(metric(sm, "current-offset.t.%d", 1 - s) == INT64_MIN);
    assert_true(metric(sm, "commits-succeeded") >= 1);
    json_decref(sm);
  }
  char *t = fl_env_metrics_prometheus(j.env);
  assert_non_null(t);
  for (int p = 0; p < PARTS; p++) {
    char has[64];
    snprintf(has, sizeof has, "topic=\"t\",partition=\"%d\"", p);
    if (prom_sample(t, PROM_KSR "topic_partition_currentOffset", has) != want[p] ||
        prom_sample(t, PROM_KSR "topic_partition_committedOffset", has) != want[p] ||
        prom_sample(t, PROM_KSR "topic_partition_recordsLag", has) != 0)
      fail_msg("Prometheus text: partition %d not at %" PRId64 " (%g %g %g)", p, want[p],
               prom_sample(t, PROM_KSR "topic_partition_currentOffset", has),
               prom_sample(t, PROM_KSR "topic_partition_committedOffset", has),
               prom_sample(t, PROM_KSR "topic_partition_recordsLag", has));
  }
  assert_true(prom_sum(t, PROM_KSR "commitsSucceeded") >= 2);
  assert_true(prom_sum(t, PROM_KSR "commitsFailed") == 0);
  assert_true(prom_sum(t, PROM_KSR "KafkaConsumer_records_consumed_total") == (double)n);
  fl_free(t);
  job_stop(&j);
  job_free(&j);
  mock_stop(&m);
}

/* A bounded job commits once per subtask at its end: synchronously without checkpoints,
 * with the final checkpoint otherwise (its result arrives after the source ended). */
static void bounded_job_counts_its_one_commit(void **state) {
  for (int with_ckpt = 0; with_ckpt < 2; with_ckpt++) {
    mock_t m;
    job_t j;
    char root[256], why[256] = "";
    snprintf(root, sizeof root, "%s/kmend-%d", g_tmpdir, with_ckpt);
    mock_with_topic(&m, "t", 6);
    produce_uneven(&m, 6);
    /* no periodic checkpoint within the job's life: only the final one */
    const char *kv[] = {"state.checkpoints.dir", root, "execution.checkpointing.interval", "1h",
                        NULL};
    fl_kafka_source_opts_t o = opts_for(&m, "t");
    bounded_run(&j, &o, 2, with_ckpt ? kv : NULL, "end");
    if (!offsets_shown(j.env, 6, why, sizeof why)) fail_msg("checkpoints %d: %s", with_ckpt, why);
    for (int s = 0; s < 2; s++) {
      json_t *sm = source_metrics(j.env, s);
      if (metric(sm, "commits-succeeded") != 1)
        fail_msg("checkpoints %d: subtask %d counted %" PRId64 " commits", with_ckpt, s,
                 metric(sm, "commits-succeeded"));
      json_decref(sm);
    }
    job_free(&j);
    mock_stop(&m);
  }
}

/* OffsetCommit answered with an error twice: commits-failed counts both, once, the log
 * says so once, and the next commits succeed (the job goes on). */
static void failed_commits_are_counted(void **state) {
  mock_t m;
  job_t j;
  char root[256];
  log_buf_t log = {.mu = PTHREAD_MUTEX_INITIALIZER};
  snprintf(root, sizeof root, "%s/kmfail", g_tmpdir);
  mock_with_topic(&m, "t", 4);
  size_t n = produce_uneven(&m, 4);
  rd_kafka_mock_push_request_errors(m.mc, 8 /* OffsetCommit */, 2,
                                    RD_KAFKA_RESP_ERR_GROUP_AUTHORIZATION_FAILED,
                                    RD_KAFKA_RESP_ERR_GROUP_AUTHORIZATION_FAILED);
  const char *kv[] = {"state.checkpoints.dir", root, "execution.checkpointing.interval", "50ms",
                      NULL};
  fl_kafka_source_opts_t o = opts_for(&m, "t");
  o.group_id = "kmfail";
  job_build(&j, env_conf(1, kv), &o);
  log_buf_attach(&log, j.env);
  job_start(&j);
  wait_records(&j, n, 10000);
  int64_t deadline = deadline_in(15000);
  for (;;) {
    json_t *sm = source_metrics(j.env, 0);
    int64_t failed = metric(sm, "commits-failed"), ok = metric(sm, "commits-succeeded");
    bool committed = true;
    for (int p = 0; p < 4; p++) committed &= metric(sm, "committed-offset.t.%d", p) == 1 + p % 5;
    json_decref(sm);
    if (failed > 2) fail_msg("%" PRId64 " failed commits counted for 2 failures", failed);
    if (failed == 2 && ok >= 1 && committed) break;
    if (mono_ms() >= deadline)
      fail_msg("commits-failed %" PRId64 ", commits-succeeded %" PRId64 ", offsets %s", failed, ok,
               committed ? "committed" : "not committed");
    pause_ms(20); /* polling the metrics, not waiting for work to happen */
  }
  job_stop(&j);
  json_t *sm = source_metrics(j.env, 0);
  assert_true(metric(sm, "commits-failed") == 2);
  json_decref(sm);
  char *t = fl_env_metrics_prometheus(j.env);
  assert_true(prom_sum(t, PROM_KSR "commitsFailed") == 2);
  fl_free(t);
  if (!log_buf_wait(&log, "cannot commit the positions to group 'kmfail'", "uthoriz", 0) ||
      !log_buf_wait(&log, "commits to group 'kmfail' succeed again", "", 0))
    fail_msg("log: %s", log_buf_text(&log));
  /* the two failures in a row are one episode: said once */
  const char *first = strstr(log.text, "cannot commit");
  assert_null(strstr(first + 1, "cannot commit"));
  job_free(&j);
  log_buf_free(&log);
  mock_stop(&m);
}

/* A topic whose "committed-offset.<topic>.<partition>" would pass 95 bytes: none of its
 * partition gauges (though "records-lag.<topic>.0" would fit), a warning that says so,
 * and everything else as usual. */
static void long_topic_has_no_partition_gauges_and_says_so(void **state) {
  mock_t m;
  job_t j;
  char topic[81];
  log_buf_t log = {.mu = PTHREAD_MUTEX_INITIALIZER};
  memset(topic, 'x', 80);
  topic[80] = '\0';
  mock_with_topic(&m, topic, 1);
  for (int i = 0; i < 3; i++) produce(&m, topic, 0, "k", "v", TS0 + i);
  flush_all(&m);
  fl_kafka_source_opts_t o = opts_for(&m, topic);
  o.bounded = 1;
  job_build(&j, env_conf(1, NULL), &o);
  log_buf_attach(&log, j.env);
  assert_int_equal(fl_env_execute(j.env, "long"), 0);
  assert_int_equal(col_count(&j.col), 3);
  if (!log_buf_wait(&log, topic, "name too long for its per-partition metrics", 0))
    fail_msg("log: %s", log_buf_text(&log));
  json_t *sm = source_metrics(j.env, 0);
  const char *key;
  json_t *v;
  json_object_foreach(sm, key, v) {
    if (strstr(key, topic) != NULL) fail_msg("published %s", key);
  }
  assert_true(metric(sm, "records-consumed") == 3);
  assert_true(metric(sm, "records-lag-max") == 0);
  assert_true(metric(sm, "commits-succeeded") == 1);
  json_decref(sm);
  job_free(&j);
  log_buf_free(&log);
  mock_stop(&m);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(bounded_read_every_message_once_p1),
      cmocka_unit_test(bounded_read_every_message_once_p2),
      cmocka_unit_test(bounded_read_every_message_once_p4),
      cmocka_unit_test(bounded_regex_more_subtasks_than_partitions),
      cmocka_unit_test(start_latest_reads_only_new_messages),
      cmocka_unit_test(start_committed_fallback_earliest),
      cmocka_unit_test(start_committed_fallback_latest),
      cmocka_unit_test(start_timestamp_after_all_messages_starts_at_end),
      cmocka_unit_test(mock_lists_no_offset_by_timestamp),
      cmocka_unit_test(checkpoint_restart_is_exactly_once_and_commits),
      cmocka_unit_test(rescale_2_to_3_from_savepoint),
      cmocka_unit_test(bounded_end_commits_positions),
      cmocka_unit_test(quiet_partition_idles_and_window_fires_while_running),
      cmocka_unit_test(subtask_without_partitions_is_idle),
      cmocka_unit_test(watermark_timestamp_function_sets_record_time),
      cmocka_unit_test(timestamp_function_without_event_time_follows_on_error),
      cmocka_unit_test(poison_fail_names_topic_partition_offset),
      cmocka_unit_test(poison_skip_counts),
      cmocka_unit_test(poison_dead_letter_keeps_bytes_and_headers),
      cmocka_unit_test(dead_letter_delivery_failure_fails),
      cmocka_unit_test(broker_down_then_up_resumes_without_loss),
      cmocka_unit_test(retriable_fetch_errors_do_not_fail),
      cmocka_unit_test(authorization_failure_fails_with_message),
      cmocka_unit_test(missing_topic_fails_naming_it),
      cmocka_unit_test(unreachable_brokers_fail_naming_them),
      cmocka_unit_test(frozen_broker_is_logged_until_it_answers_again),
      cmocka_unit_test(invalid_options_are_rejected_by_name),
      cmocka_unit_test(secret_values_never_in_errors),
      cmocka_unit_test(metrics_show_consumed_and_lag),
      cmocka_unit_test(metrics_show_offsets_and_commits_per_partition),
      cmocka_unit_test(bounded_job_counts_its_one_commit),
      cmocka_unit_test(failed_commits_are_counted),
      cmocka_unit_test(long_topic_has_no_partition_gauges_and_says_so),
  };
  return cmocka_run_group_tests(tests, kafka_group_setup, kafka_group_teardown);
}
