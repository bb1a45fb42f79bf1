/*
 * The Kafka sink (fl_stream_sink_kafka): delivery and Java-compatible key partitioning
 * for at-least-once and no-guarantee, serializer topics/headers/timestamps, exactly-once
 * transactions with their log, exactly-once across SIGKILLs at every commit step (against
 * flink-kafka-local as a separate process), broker outages, injected produce errors, and
 * option validation.
 *
 * Most tests use librdkafka's in-process mock cluster. The crash test forks children
 * that run the job; the parent creates no librdkafka handle before its children are done
 * (fork with librdkafka threads alive is unsafe), which is why it runs first.
 *
 * What the mock means for the crash test: the mock shows aborted records to every
 * consumer (no read_committed filtering). The verification therefore does not trust
 * visibility: it keeps only records whose fl.txn tag the transaction logs show committed
 * and checks every input record is among them exactly once. When the child dies after
 * the intent line and before the committed one, the restore's read-back finds the first
 * record (the mock shows it whether the commit went through or not) and logs the
 * transaction committed; its records are all in the topic either way, so the check holds
 * against the mock. The branch "intent, record not visible -> write again", which a
 * broker with read_committed takes when the commit never arrived, is exercised by
 * test_restore_rewrites_a_transaction_whose_commit_was_never_sent: its rerun writes to a
 * second, empty cluster, where the read-back finds nothing.
 *
 * Under ThreadSanitizer run with FL_BUILD_DIR pointing at a plain build: the tool
 * flink-kafka-local built with TSan crashes (librdkafka's C11 threads, see below).
 */
#define _GNU_SOURCE

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include "fl_test_util.h"
#include "kafka_read_util.h"
#include "run_util.h"

#include "io/kafka_sink.h"
#include "kafka_test_util.h"

/* ---------------------------------------------------------------------------------- */
/* ThreadSanitizer and librdkafka                                                     */
/*
 * Debian's librdkafka starts its threads with C11 thrd_create() and locks with the mtx_
 * and cnd_ functions, which glibc implements without going through the pthread
 * functions that ThreadSanitizer intercepts (GCC 12's libtsan has no C11-thread
 * interceptors): its threads then run without TSan state and crash in the first malloc.
 * Under TSan only, this binary defines those functions on top of pthreads (the
 * executable's definitions take precedence for librdkafka). A copy of the one in
 * test_kafka_source.c, to be shared once the Kafka helpers are merged. The forked
 * children of the crash test inherit it; flink-kafka-local itself has no such shim, so
 * a TSan run points FL_BUILD_DIR at a plain build for the tool.
 */
#include "util/tsan_c11_threads.h"

/* ---------------------------------------------------------------------------------- */
/* Kafka's Utils.murmur2 (Java), written from its definition                          */

static int32_t java_murmur2(const uint8_t *data, size_t length) {
  const uint32_t seed = 0x9747b28cu, m = 0x5bd1e995u;
  const int r = 24;
  uint32_t h = seed ^ (uint32_t)length;
  size_t length4 = length / 4;
  for (size_t i = 0; i < length4; i++) {
    size_t i4 = i * 4;
    uint32_t k = (uint32_t)data[i4] | (uint32_t)data[i4 + 1] << 8 | (uint32_t)data[i4 + 2] << 16 |
                 (uint32_t)data[i4 + 3] << 24;
    k *= m;
    k ^= k >> r;
    k *= m;
    h *= m;
    h ^= k;
  }
  switch (length % 4) {
  case 3: h ^= (uint32_t)data[(length & ~(size_t)3) + 2] << 16; /* fall through */
  case 2: h ^= (uint32_t)data[(length & ~(size_t)3) + 1] << 8;  /* fall through */
  case 1: h ^= (uint32_t)data[length & ~(size_t)3]; h *= m;
  }
  h ^= h >> 13;
  h *= m;
  h ^= h >> 15;
  return (int32_t)h;
}

static int java_partition(const char *key, int parts) {
  return (int)((uint32_t)java_murmur2((const uint8_t *)key, strlen(key)) & 0x7fffffffu) % parts;
}

/* ---------------------------------------------------------------------------------- */
/* Files                                                                              */

/* A path below the group's temporary directory. */
typedef struct path {
  char s[512];
} path_t;

static path_t tmp_path(const char *name) {
  path_t p;
  snprintf(p.s, sizeof p.s, "%s/%s", g_tmpdir, name);
  return p;
}

/* The contents of every *.log file in dir, concatenated. */
static char *read_logs(const char *dir) {
  size_t len = 0;
  char *all = calloc(1, 1);
  DIR *d = opendir(dir);
  if (!d) return all;
  struct dirent *e;
  while ((e = readdir(d))) {
    size_t n = strlen(e->d_name);
    if (n < 5 || strcmp(e->d_name + n - 4, ".log") != 0) continue;
    char p[4400];
    snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
    size_t fl;
    char *text = read_text(p, &fl);
    assert_non_null(text);
    all = realloc(all, len + fl + 1);
    memcpy(all + len, text, fl + 1);
    len += fl;
    free(text);
  }
  closedir(d);
  return all;
}

/* Whether the logs show tag committed: a line "committed <N> <tag>[ ...]". */
static bool log_committed(const char *logs, const char *tag) {
  for (const char *l = logs; l && *l;) {
    const char *nl = strchr(l, '\n');
    size_t ll = nl ? (size_t)(nl - l) : strlen(l);
    if (strncmp(l, "committed ", 10) == 0) {
      const char *sp = memchr(l + 10, ' ', ll - 10);
      size_t tl = strlen(tag);
      if (sp && (size_t)(l + ll - (sp + 1)) >= tl && strncmp(sp + 1, tag, tl) == 0 &&
          (sp[1 + tl] == '\n' || sp[1 + tl] == ' ' || sp[1 + tl] == 0))
        return true;
    }
    l = nl ? nl + 1 : NULL;
  }
  return false;
}

/* Fails the test unless text holds every one of the fragments (NULL-terminated). */
static void assert_mentions(const char *what, const char *text, ...) {
  va_list ap;
  va_start(ap, text);
  for (const char *f; (f = va_arg(ap, const char *));) {
    if (!text || !strstr(text, f)) {
      va_end(ap);
      fail_msg("%s does not mention '%s':\n%s", what, f, text ? text : "(none)");
    }
  }
  va_end(ap);
}

/* ---------------------------------------------------------------------------------- */
/* Consuming a topic back                                                             */

/* Reads every partition of topic from the beginning to its end. */
static void consume_all(const char *bs, const char *topic, int parts, kafka_msgs_t *out) {
  kafka_read_to_end(bs, topic, parts, 20000, kafka_msg_add, out);
}

static size_t topic_count(const char *bs, const char *topic) {
  kafka_msgs_t ms = {0};
  consume_all(bs, topic, 2, &ms);
  size_t n = ms.n;
  kafka_msgs_free(&ms);
  return n;
}

static int64_t val_of(const char *v) { return atoll(v); }

/* Asserts that msgs hold each of 0..n-1 exactly once (at_least: at least once). */
static void assert_each_once(const kafka_msgs_t *ms, int64_t n, bool at_least) {
  int *cnt = calloc((size_t)n, sizeof *cnt);
  for (size_t i = 0; i < ms->n; i++) {
    int64_t v = val_of(ms->m[i].value);
    assert_true(v >= 0 && v < n);
    cnt[v]++;
  }
  int64_t lost = 0, dup = 0;
  for (int64_t i = 0; i < n; i++) {
    if (cnt[i] == 0) lost++;
    if (cnt[i] > 1) dup++;
  }
  free(cnt);
  if (lost || (!at_least && dup))
    fail_msg("%" PRId64 " records lost, %" PRId64 " duplicated (of %" PRId64 ", %zu messages)",
             lost, dup, n, ms->n);
}

/* Consumes topic and asserts that it holds each of 0..n-1 once (at_least: at least
 * once); returns how many messages it holds. */
static size_t assert_topic_each_once(const char *bs, const char *topic, int parts, int64_t n,
                                     bool at_least) {
  kafka_msgs_t ms = {0};
  consume_all(bs, topic, parts, &ms);
  assert_each_once(&ms, n, at_least);
  size_t count = ms.n;
  kafka_msgs_free(&ms);
  return count;
}

/* The messages whose fl.txn tag the logs show committed (they borrow ms's strings). */
static kafka_msgs_t committed_only(const kafka_msgs_t *ms, const char *logs) {
  kafka_msgs_t ok = {calloc(ms->n ? ms->n : 1, sizeof *ok.m), 0, 0};
  for (size_t i = 0; i < ms->n; i++)
    if (log_committed(logs, ms->m[i].txn)) ok.m[ok.n++] = ms->m[i];
  return ok;
}

/* ---------------------------------------------------------------------------------- */
/* In-process mock cluster                                                            */

typedef struct mock {
  rd_kafka_t *rk;
  rd_kafka_mock_cluster_t *mc;
  char bs[512];
} mock_t;

static void mock_topic(mock_t *mk, const char *topic, int parts) {
  assert_int_equal(rd_kafka_mock_topic_create(mk->mc, topic, parts, 1), 0);
}

/* ---------------------------------------------------------------------------------- */
/* A deterministic checkpointed generator: record i has key "k<i % keys>" (none when   */
/* keys is 0), value "<i>", timestamp 1000 + i                                        */

typedef struct gen {
  int64_t n;
  int keys;
  double rate_per_ms; /* 0: no limit */
  size_t budget;      /* 0: the runtime's */
  int64_t pause_at;   /* waits there until resume (-1: never) */
  int64_t slow_after; /* after this many records of an instance, one every 50 ms (-1: never) */
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int paused, resume;
} gen_t;

typedef struct gen_inst {
  gen_t *g;
  int64_t next, emitted;
  double t0_ms;
  int64_t slow_next_ms;
} gen_inst_t;

static int gen_open(fl_context_t *ctx, void *opaque, void **inst) {
  gen_inst_t *s = calloc(1, sizeof *s);
  if (s) s->g = opaque;
  *inst = s;
  return s ? 0 : FL_ENOMEM;
}

/* Whether the generator may go on at its pause point (and says it paused if not). */
static bool gen_may_pass(gen_t *g) {
  pthread_mutex_lock(&g->mu);
  bool go = g->resume;
  if (!go && !g->paused) {
    g->paused = 1;
    pthread_cond_broadcast(&g->cv);
  }
  pthread_mutex_unlock(&g->mu);
  return go;
}

static int gen_run(fl_context_t *ctx, void *inst) {
  gen_inst_t *s = inst;
  gen_t *g = s->g;
  size_t budget = fl_ctx_source_budget(ctx);
  if (g->budget && budget > g->budget) budget = g->budget;
  if (g->slow_after >= 0 && s->emitted >= g->slow_after) {
    int64_t now = mono_ms();
    if (now < s->slow_next_ms) return FL_SOURCE_WAIT;
    s->slow_next_ms = now + 50;
    budget = 1;
  } else if (g->rate_per_ms > 0 &&
             !(budget = paced_budget(budget, g->rate_per_ms, &s->t0_ms, s->emitted))) {
    return FL_SOURCE_WAIT;
  }
  for (size_t b = 0; b < budget && s->next < g->n; b++) {
    if (s->next == g->pause_at && !gen_may_pass(g)) return FL_SOURCE_WAIT;
    char key[32], val[32];
    int kl = g->keys ? snprintf(key, sizeof key, "k%d", (int)(s->next % g->keys)) : 0;
    int vl = snprintf(val, sizeof val, "%" PRId64, s->next);
    int rc = fl_emit(ctx, key, (size_t)kl, val, (size_t)vl, 1000 + s->next);
    if (rc) return rc;
    s->next++;
    s->emitted++;
  }
  return s->next < g->n ? FL_SOURCE_MORE : FL_SOURCE_END;
}

static void gen_close(void *inst) { free(inst); }

/* The generator's state is the index of its next record. */
static int gen_snapshot(fl_context_t *ctx, void *inst, fl_buf_t *out) {
  gen_inst_t *s = inst;
  return fl_buf_append(out, &s->next, sizeof s->next);
}

static int gen_restore(fl_context_t *ctx, void *inst, const fl_bytes_t *st, size_t n) {
  gen_inst_t *s = inst;
  if (n == 1 && st[0].len == sizeof s->next) {
    memcpy(&s->next, st[0].data, sizeof s->next);
    return 0;
  }
  return fl_ctx_fail(ctx, "bad generator state");
}

static void gen_init(gen_t *g, int64_t n, int keys) {
  memset(g, 0, sizeof *g);
  g->n = n;
  g->keys = keys;
  g->pause_at = -1;
  g->slow_after = -1;
  pthread_mutex_init(&g->mu, NULL);
  pthread_cond_init(&g->cv, NULL);
}

static void gen_free(gen_t *g) {
  pthread_mutex_destroy(&g->mu);
  pthread_cond_destroy(&g->cv);
}

/* The generator as a source of env. */
static fl_stream_t *gen_source(fl_env_t *env, gen_t *g) {
  static const fl_source_fn_t fn = {.version = FL_SOURCE_FN_VERSION,
                                    .open = gen_open,
                                    .run = gen_run,
                                    .close = gen_close,
                                    .snapshot = gen_snapshot,
                                    .restore = gen_restore};
  return fl_source(env, "gen", &fn, g, 0);
}

/* Waits until the generator paused at its pause_at record (fails the test after 10 s). */
static void wait_paused(gen_t *g) {
  pthread_mutex_lock(&g->mu);
  struct timespec dl;
  clock_gettime(CLOCK_REALTIME, &dl);
  dl.tv_sec += (time_t)(10 * timeout_scale());
  while (!g->paused)
    if (pthread_cond_timedwait(&g->cv, &g->mu, &dl) == ETIMEDOUT) break;
  int paused = g->paused;
  pthread_mutex_unlock(&g->mu);
  assert_true(paused);
}

static void gen_resume(gen_t *g) {
  pthread_mutex_lock(&g->mu);
  g->resume = 1;
  pthread_mutex_unlock(&g->mu);
}

/* ---------------------------------------------------------------------------------- */
/* Tests against the in-process mock                                                  */

/* A test's mock cluster (without topics) and generator (of no records yet), made
 * before the test and freed after it, also when an assertion failed. */
typedef struct mock_case {
  mock_t mk;
  gen_t g;
} mock_case_t;

static int mock_case_setup_with(void **state, int brokers) {
  mock_case_t *c = calloc(1, sizeof *c);
  if (!c) return -1;
  *state = c;
  char err[512];
  rd_kafka_conf_t *conf = rd_kafka_conf_new();
  rd_kafka_conf_set(conf, "log_level", "0", err, sizeof err);
  c->mk.rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
  assert_non_null(c->mk.rk);
  c->mk.mc = rd_kafka_mock_cluster_new(c->mk.rk, brokers);
  assert_non_null(c->mk.mc);
  snprintf(c->mk.bs, sizeof c->mk.bs, "%s", rd_kafka_mock_cluster_bootstraps(c->mk.mc));
  assert_true(strncmp(c->mk.bs, "127.0.0.1:", 10) == 0); /* loopback only */
  gen_init(&c->g, 0, 0);
  return 0;
}

static int mock_case_setup(void **state) { return mock_case_setup_with(state, 1); }
static int mock3_case_setup(void **state) { return mock_case_setup_with(state, 3); }

static int mock_case_teardown(void **state) {
  mock_case_t *c = *state;
  gen_free(&c->g);
  if (c->mk.mc) rd_kafka_mock_cluster_destroy(c->mk.mc);
  if (c->mk.rk) rd_kafka_destroy(c->mk.rk);
  free(c);
  return 0;
}

/* The case's generator, of n records over keys keys. */
static gen_t *gen_of(mock_case_t *c, int64_t n, int keys) {
  c->g.n = n;
  c->g.keys = keys;
  return &c->g;
}

/* ---------------------------------------------------------------------------------- */
/* Jobs                                                                               */

/* The options of a sink to topic of the mock with the guarantee; a test sets more. */
static fl_kafka_sink_opts_t sink_opts(const char *brokers, const char *topic,
                                      fl_kafka_guarantee_t guarantee) {
  return (fl_kafka_sink_opts_t){.version = FL_KAFKA_SINK_OPTS_VERSION,
                                .brokers = brokers,
                                .topic = topic,
                                .guarantee = guarantee};
}

/* Makes topic (parts partitions) on the mock and returns the options of an exactly-once
 * sink into it whose transaction log directory is *logdir, "<topic>-log" in g_tmpdir. */
static fl_kafka_sink_opts_t eo_topic(mock_case_t *c, const char *topic, int parts, path_t *logdir) {
  char name[256];
  mock_topic(&c->mk, topic, parts);
  snprintf(name, sizeof name, "%s-log", topic);
  *logdir = tmp_path(name);
  fl_kafka_sink_opts_t o = sink_opts(c->mk.bs, topic, FL_KAFKA_EXACTLY_ONCE);
  o.txn_log_dir = logdir->s;
  return o;
}

/* Adds the sink "out" with o to s, runs the job to success and destroys env. */
static void run_to_end(fl_env_t *env, fl_stream_t *s, const fl_kafka_sink_opts_t *o,
                       const char *job) {
  assert_int_equal(fl_stream_sink_kafka(s, "out", o), 0);
  execute_ok(env, job);
  fl_env_destroy(env);
}

/* fails the job at record value fail_at (if >= 0) */
static int64_t g_fail_at = -1;
static int fail_map(fl_context_t *ctx, const fl_record_t *in, void *opaque) {
  (void)opaque;
  char buf[32];
  snprintf(buf, sizeof buf, "%.*s", (int)in->value_len, (const char *)in->value);
  if (atoll(buf) == g_fail_at) return fl_ctx_fail(ctx, "injected failure at %s", buf);
  return fl_emit_record(ctx, in);
}

/* Polls (every 5 ms, not waiting for work to happen) until done(arg) holds or base_ms
 * (scaled) passed; returns whether it holds. */
static bool wait_until(bool (*done)(void *arg), void *arg, int64_t base_ms) {
  int64_t deadline = deadline_in(base_ms);
  while (!done(arg)) {
    if (mono_ms() >= deadline) return false;
    struct timespec ts = {0, 5 * 1000 * 1000};
    nanosleep(&ts, NULL);
  }
  return true;
}

static bool job_done(void *arg) { return atomic_load(&((bg_job_t *)arg)->done); }

/* ---------------------------------------------------------------------------------- */
/* At least once, no guarantee                                                        */

static void test_at_least_once_delivers_every_record_with_java_partitioning(void **state) {
  mock_case_t *c = *state;
  mock_topic(&c->mk, "alo", 4);
  path_t ck = tmp_path("alo-ck");
  const char *kv[] = {
      "parallelism", "2", "state.checkpoints.dir", ck.s, "execution.checkpointing.interval",
      "30ms",        NULL};
  fl_env_t *env = env_of(kv);
  gen_t *g = gen_of(c, 600, 37);
  g->rate_per_ms = 3.0;
  g->budget = 16;
  fl_kafka_sink_opts_t o = sink_opts(c->mk.bs, "alo", FL_KAFKA_AT_LEAST_ONCE);
  assert_int_equal(fl_stream_sink_kafka(fl_stream_rebalance(gen_source(env, g)), "out", &o), 0);
  execute_ok(env, "alo");
  char *mj = fl_env_metrics_json(env);
  assert_non_null(strstr(mj, "\"completed\""));
  fl_free(mj);
  fl_env_destroy(env);

  kafka_msgs_t ms = {0};
  consume_all(c->mk.bs, "alo", 4, &ms);
  assert_each_once(&ms, 600, true);
  int per_part[4] = {0};
  for (size_t i = 0; i < ms.n; i++) {
    const kafka_msg_t *m = &ms.m[i];
    int64_t v = val_of(m->value);
    char key[32];
    snprintf(key, sizeof key, "k%d", (int)(v % 37));
    assert_non_null(m->key);
    assert_string_equal(m->key, key);
    assert_int_equal(m->partition, java_partition(key, 4));
    assert_int_equal(m->ts, 1000 + v);
    assert_string_equal(m->txn, ""); /* no transaction header outside exactly-once */
    per_part[m->partition]++;
  }
  for (int p = 0; p < 4; p++) assert_true(per_part[p] > 0);
  kafka_msgs_free(&ms);
}

static void test_no_guarantee_flushes_everything_at_the_end(void **state) {
  mock_case_t *c = *state;
  mock_topic(&c->mk, "ng", 3);
  const char *kv[] = {"parallelism", "3", NULL};
  fl_env_t *env = env_of(kv);
  gen_t *g = gen_of(c, 3000, 0); /* no keys */
  fl_kafka_sink_opts_t o = sink_opts(c->mk.bs, "ng", FL_KAFKA_NO_GUARANTEE);
  assert_int_equal(fl_stream_sink_kafka(fl_stream_rebalance(gen_source(env, g)), NULL, &o), 0);
  execute_ok(env, "ng");
  fl_env_destroy(env);
  kafka_msgs_t ms = {0};
  consume_all(c->mk.bs, "ng", 3, &ms);
  assert_int_equal(ms.n, 3000);
  assert_each_once(&ms, 3000, false);
  for (size_t i = 0; i < ms.n; i++) assert_null(ms.m[i].key);
  kafka_msgs_free(&ms);
}

/* even values to "even", odd to "odd", values ending in 9 dropped; headers idx=<value>
 * and nv (no value); timestamp 5000 + value; key as given */
static _Atomic int g_ser_destroyed;
static int ser(fl_context_t *ctx, const fl_record_t *in, fl_kafka_message_t *out, void *opaque) {
  (void)ctx;
  static _Thread_local fl_kafka_header_t hs[2];
  static _Thread_local char vbuf[32];
  int64_t v;
  snprintf(vbuf, sizeof vbuf, "%.*s", (int)in->value_len, (const char *)in->value);
  v = atoll(vbuf);
  assert_ptr_equal(opaque, &g_ser_destroyed);
  if (v % 10 == 9) return 0;
  out->topic = v % 2 ? "odd" : "even";
  out->timestamp = 5000 + v;
  hs[0] = (fl_kafka_header_t){"idx", vbuf, strlen(vbuf)};
  hs[1] = (fl_kafka_header_t){"nv", NULL, 0};
  out->headers = hs;
  out->n_headers = 2;
  return 1;
}
static void ser_destroy(void *opaque) { atomic_fetch_add((_Atomic int *)opaque, 1); }

static void test_serializer_topics_headers_and_timestamps_arrive(void **state) {
  mock_case_t *c = *state;
  mock_topic(&c->mk, "even", 2);
  mock_topic(&c->mk, "odd", 2);
  const char *kv[] = {"parallelism", "2", NULL};
  fl_env_t *env = env_of(kv);
  gen_t *g = gen_of(c, 400, 5);
  fl_kafka_sink_opts_t o = {.version = FL_KAFKA_SINK_OPTS_VERSION,
                            .brokers = c->mk.bs,
                            .serialize = ser,
                            .serialize_opaque = &g_ser_destroyed,
                            .serialize_destroy = ser_destroy};
  atomic_store(&g_ser_destroyed, 0);
  run_to_end(env, fl_stream_rebalance(gen_source(env, g)), &o, "ser");
  assert_int_equal(atomic_load(&g_ser_destroyed), 1);
  kafka_msgs_t ms = {0};
  consume_all(c->mk.bs, "even", 2, &ms);
  consume_all(c->mk.bs, "odd", 2, &ms);
  assert_int_equal(ms.n, 360);
  int seen[400] = {0};
  for (size_t i = 0; i < ms.n; i++) {
    const kafka_msg_t *m = &ms.m[i];
    int64_t v = val_of(m->value);
    assert_true(v % 10 != 9);
    assert_string_equal(m->topic, v % 2 ? "odd" : "even");
    assert_string_equal(m->hidx, m->value);
    assert_int_equal(m->has_nv, 1);
    assert_int_equal(m->ts, 5000 + v);
    char key[32];
    snprintf(key, sizeof key, "k%d", (int)(v % 5));
    assert_string_equal(m->key, key);
    assert_int_equal(m->partition, java_partition(key, 2));
    seen[v]++;
  }
  for (int v = 0; v < 400; v++) assert_int_equal(seen[v], v % 10 == 9 ? 0 : 1);
  kafka_msgs_free(&ms);
}

/* ---------------------------------------------------------------------------------- */
/* Exactly once without checkpoints                                                   */

static void test_exactly_once_bounded_job_commits_one_transaction(void **state) {
  mock_case_t *c = *state;
  path_t logdir;
  fl_kafka_sink_opts_t o = eo_topic(c, "eo1", 4, &logdir);
  fl_env_t *env = env_of(NULL);
  gen_t *g = gen_of(c, 500, 11);
  o.transactional_id_prefix = "eo1job";
  run_to_end(env, gen_source(env, g), &o, "eo1");
  kafka_msgs_t ms = {0};
  consume_all(c->mk.bs, "eo1", 4, &ms);
  assert_int_equal(ms.n, 500);
  assert_each_once(&ms, 500, false);
  const char *tag = ms.m[0].txn;
  assert_true(strncmp(tag, "eo1job-0/", 9) == 0);
  for (size_t i = 0; i < ms.n; i++) assert_string_equal(ms.m[i].txn, tag);
  char *logs = read_logs(logdir.s);
  char want[600];
  snprintf(want, sizeof want, "intent %" PRId64 " %s\ncommitted %" PRId64 " %s\n", INT64_MAX, tag,
           INT64_MAX, tag);
  assert_string_equal(logs, want);
  free(logs);
  kafka_msgs_free(&ms);
}

static void test_transaction_log_is_compacted_to_its_last_lines(void **state) {
  mock_case_t *c = *state;
  mock_topic(&c->mk, "eo3", 1);
  path_t logdir = tmp_path("eo3-log");
  char path[700];
  assert_int_equal(mkdir(logdir.s, 0777), 0);
  snprintf(path, sizeof path, "%s/cpt-0.log", logdir.s);
  FILE *f = fopen(path, "w");
  assert_non_null(f);
  for (int i = 0; i < 1199; i++) fprintf(f, "committed 1 old/1/%d\n", i);
  fclose(f);
  fl_env_t *env = env_of(NULL);
  gen_t *g = gen_of(c, 10, 3);
  fl_kafka_sink_opts_t o = sink_opts(c->mk.bs, "eo3", FL_KAFKA_EXACTLY_ONCE);
  o.transactional_id_prefix = "cpt";
  o.txn_log_dir = logdir.s;
  o.accept_duplicates = 1; /* the log shows commits */
  run_to_end(env, gen_source(env, g), &o, "eo3");
  /* the start line (a fresh start over logged commits, accepted) made it 1200 lines:
   * rewritten to its last 100, then the intent and the commit */
  char *logs = read_logs(logdir.s);
  size_t lines = 0;
  for (const char *c = logs; *c; c++) lines += *c == '\n';
  assert_int_equal(lines, 102);
  assert_true(strncmp(logs, "committed 1 old/1/1100\n", 23) == 0);
  assert_non_null(strstr(logs, "\ncommitted 1 old/1/1198\nstart 0\nintent "));
  const char *intent = strstr(logs, "intent ");
  assert_non_null(intent);
  assert_non_null(strstr(intent, "\ncommitted 9223372036854775807 cpt-0/"));
  char tmp[720];
  snprintf(tmp, sizeof tmp, "%s.tmp", path);
  assert_int_not_equal(access(tmp, F_OK), 0);
  free(logs);
}

/* Without periodic checkpoints no write-ahead copy is kept, so a savepoint cannot hold
 * the open transaction: the job fails, saying why, and commits nothing. */
static void test_exactly_once_savepoint_needs_periodic_checkpoints(void **state) {
  mock_case_t *c = *state;
  path_t logdir, sp = tmp_path("eo4-savepoint");
  fl_kafka_sink_opts_t o = eo_topic(c, "eo4", 1, &logdir);
  fl_env_t *env = env_of(NULL);
  gen_t *g = gen_of(c, 100, 3);
  g->pause_at = 50;
  assert_int_equal(fl_stream_sink_kafka(gen_source(env, g), "out", &o), 0);
  bg_job_t j;
  bg_job_start(&j, env, "bg");
  wait_paused(g);
  char err[1024] = "";
  int rc = fl_env_savepoint(env, sp.s, err, sizeof err);
  gen_resume(g);
  bg_job_join(&j);
  /* the sink cannot fail only the savepoint: the job fails, naming the cause */
  assert_int_not_equal(rc, 0);
  assert_int_not_equal(j.rc, 0);
  if (!strstr(j.err, "kafka sink 'out'") || !strstr(j.err, "periodic checkpoints"))
    fail_msg("savepoint error '%s', job error '%s'", err, j.err);
  fl_env_destroy(env);
  char *logs = read_logs(logdir.s);
  assert_string_equal(logs, ""); /* nothing committed */
  free(logs);
}

static void test_exactly_once_failed_job_commits_nothing(void **state) {
  mock_case_t *c = *state;
  path_t logdir;
  fl_kafka_sink_opts_t o = eo_topic(c, "eo2", 2, &logdir);
  fl_env_t *env = env_of(NULL);
  gen_t *g = gen_of(c, 500, 3);
  g->budget = 10;
  g_fail_at = 300;
  fl_stream_t *s = fl_stream_map(gen_source(env, g), "fail", fail_map, NULL);
  assert_int_equal(fl_stream_sink_kafka(s, "out", &o), 0);
  int rc = fl_env_execute(env, "eo2");
  g_fail_at = -1;
  assert_int_not_equal(rc, 0);
  assert_non_null(strstr(fl_env_error(env), "injected failure at 300"));
  fl_env_destroy(env);
  char *logs = read_logs(logdir.s);
  assert_string_equal(logs, ""); /* no intent, no commit */
  free(logs);
}

/* ---------------------------------------------------------------------------------- */
/* Exactly once under SIGKILL                                                          */

#define CR_N 6000
#define CR_TOPIC "eo"

typedef struct crash_plan {
  const char *point; /* kill point, "record" (the k-th record this run), or NULL */
  int at;
} crash_plan_t;

static crash_plan_t g_plan;
static const char *g_child_par; /* NULL: 2 with a kill planned, 1 for the last run */
static _Atomic int g_hits;

/* Whether the plan says to die now, at point (counting its hits). */
static bool plan_kills_at(const char *point) {
  return g_plan.point && strcmp(point, g_plan.point) == 0 &&
         atomic_fetch_add(&g_hits, 1) + 1 == g_plan.at;
}

static void kill_hook(const char *point, void *arg) {
  (void)arg;
  if (plan_kills_at(point)) raise(SIGKILL);
}

static int kill_map(fl_context_t *ctx, const fl_record_t *in, void *opaque) {
  (void)opaque;
  if (plan_kills_at("record")) raise(SIGKILL);
  return fl_emit_record(ctx, in);
}

/* The child: the job from the newest checkpoint, if any, to the end (or a kill). */
static void crash_child(const char *bs, const char *root, const char *logdir) {
  fl_kafka_sink_set_kill_hook(kill_hook, NULL);
  /* the last run (no kill) restores at parallelism 1: subtask 0 then resolves the
   * transactions of both old subtasks and fences crashjob-1 */
  const char *kv[] = {"parallelism",
                      g_child_par    ? g_child_par
                      : g_plan.point ? "2"
                                     : "1",
                      "state.checkpoints.dir",
                      root,
                      "execution.checkpointing.interval",
                      "100ms",
                      "execution.savepoint.path",
                      complete_checkpoints(root, NULL) > 0 ? root : "",
                      NULL};
  char err[512];
  fl_env_t *env = env_try(kv, err, sizeof err);
  if (!env) _exit(3);
  gen_t g;
  gen_init(&g, CR_N, 17);
  g.rate_per_ms = 3.0 / timeout_scale(); /* about 2 s of input in all */
  g.budget = 16;
  /* A run that is to be killed takes at most about 800 records at that pace, then one
   * every 50 ms: enough for every checkpoint to commit a transaction, so its kill point
   * comes however slow the machine is, and the input does not run out before the
   * last kill (5 runs take at most about 4,500 of the 6,000). */
  g.slow_after = g_plan.point ? 800 : -1;
  fl_stream_t *s = fl_stream_rebalance(fl_stream_map(gen_source(env, &g), "kill", kill_map, NULL));
  const char *props[] = {"reconnect.backoff.max.ms", "200", NULL};
  fl_kafka_sink_opts_t o = sink_opts(bs, CR_TOPIC, FL_KAFKA_EXACTLY_ONCE);
  o.transactional_id_prefix = "crashjob";
  o.txn_log_dir = logdir;
  o.props = props;
  o.timeout_ms = 20000;
  fl_stream_sink_kafka(s, "out", &o);
  int rc = fl_env_execute(env, "crash");
  if (rc) fprintf(stderr, "child: %s\n", fl_env_error(env));
  fl_env_destroy(env);
  _exit(rc ? 4 : 0);
}

/* Runs one child with the plan; returns its wait status. */
static int run_crash_child(const char *bs, const char *root, const char *logdir) {
  int p[2];
  assert_int_equal(pipe2(p, O_CLOEXEC), 0);
  atomic_store(&g_hits, 0);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    close(p[0]);
    crash_child(bs, root, logdir);
  }
  close(p[1]);
  /* the pipe's end of file marks the child's exit */
  int64_t deadline = deadline_in(40000);
  for (;;) {
    struct pollfd pf = {.fd = p[0], .events = POLLIN};
    if (mono_ms() > deadline) {
      kill(pid, SIGKILL);
      waitpid(pid, NULL, 0);
      close(p[0]);
      fail_msg("a crash-test child did not end in time");
    }
    if (poll(&pf, 1, ms_left(deadline)) > 0) {
      char b;
      if (read(p[0], &b, 1) <= 0) break;
    }
  }
  close(p[0]);
  int status;
  while (waitpid(pid, &status, 0) < 0) assert_int_equal(errno, EINTR);
  return status;
}

/* Shows the duplicated committed records and the logs (env HK_DEBUG). */
static void dump_duplicates(const kafka_msgs_t *ok, const char *logs) {
  int *cnt = calloc(CR_N, sizeof *cnt);
  for (size_t i = 0; i < ok->n; i++) cnt[val_of(ok->m[i].value)]++;
  int shown = 0;
  for (size_t i = 0; i < ok->n && shown < 40; i++)
    if (cnt[val_of(ok->m[i].value)] > 1) {
      fprintf(stderr, "dup %s p%d o%lld %s\n", ok->m[i].value, ok->m[i].partition,
              (long long)ok->m[i].offset, ok->m[i].txn);
      shown++;
    }
  fprintf(stderr, "LOGS:\n%s\n", logs);
  free(cnt);
}

static void test_exactly_once_survives_sigkill_at_every_commit_step(void **state) {
  (void)state;
  char bs[1100];
  child_t *srv = start_server(bs, sizeof bs, "--quiet", "--topic", CR_TOPIC ":4", NULL);
  path_t root = tmp_path("crash-ck"), logdir = tmp_path("crash-log");
  unsigned seed = (unsigned)time(NULL);
  srand(seed);
  crash_plan_t plans[] = {{"before-intent", 2},
                          {"after-intent", 2},
                          {"after-commit", 2},
                          {"after-committed-log", 2},
                          {"record", 300 + rand() % 400},
                          {NULL, 0}};
  int kills = 0, runs = 0;
  bool done = false;
  for (size_t i = 0; i < sizeof plans / sizeof *plans && !done; i++) {
    g_plan = plans[i];
    int status = run_crash_child(bs, root.s, logdir.s);
    runs++;
    if (WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL && g_plan.point) {
      kills++;
    } else if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
      done = true;
    } else {
      fail_msg("run %d (plan %s/%d, seed %u) ended with status 0x%x", runs,
               g_plan.point ? g_plan.point : "none", g_plan.at, seed, status);
    }
  }
  assert_true(done);
  /* every kill point was reached before the input ended */
  assert_int_equal(kills, 5);

  /* Only now a librdkafka handle in this process: no more forks follow in this test. */
  char *logs = read_logs(logdir.s);
  kafka_msgs_t ms = {0};
  consume_all(bs, CR_TOPIC, 4, &ms);
  kafka_msgs_t ok = committed_only(&ms, logs);
  size_t no_tag = 0;
  for (size_t i = 0; i < ms.n; i++)
    if (!ms.m[i].txn[0]) no_tag++;
  assert_int_equal(no_tag, 0);
  print_message("crash test: seed %u, %d runs, %d kills, %zu messages, %zu committed\n", seed, runs,
                kills, ms.n, ok.n);
  if (getenv("HK_DEBUG")) dump_duplicates(&ok, logs);
  assert_each_once(&ok, CR_N, false);
  free(ok.m);
  kafka_msgs_free(&ms);
  free(logs);
  /* every librdkafka thread of this process is gone before the next test forks */
  assert_int_equal(rd_kafka_wait_destroyed(5000), 0);
  stop_server(srv);
  child_free(srv);
}

/* A transaction whose commit never reached the broker (killed after the intent) must
 * be written again on restore. The mock shows every record, so the rerun goes to a
 * second, empty cluster: there the read-back finds nothing, as a read_committed
 * consumer of a real broker finds nothing of an aborted transaction. */
static void test_restore_rewrites_a_transaction_whose_commit_was_never_sent(void **state) {
  (void)state;
  char bs_a[1100], bs_b[1100];
  child_t *a = start_server(bs_a, sizeof bs_a, "--quiet", "--topic", CR_TOPIC ":4", NULL);
  child_t *b = start_server(bs_b, sizeof bs_b, "--quiet", "--topic", CR_TOPIC ":4", NULL);
  path_t root = tmp_path("rewrite-ck"), logdir = tmp_path("rewrite-log");
  g_child_par = "1";
  g_plan = (crash_plan_t){"after-intent", 1};
  int status = run_crash_child(bs_a, root.s, logdir.s);
  if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGKILL)
    fail_msg("the first run was not killed after its first intent (status 0x%x)", status);
  g_plan = (crash_plan_t){NULL, 0};
  status = run_crash_child(bs_b, root.s, logdir.s);
  g_child_par = NULL;
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
    fail_msg("the rerun ended with status 0x%x", status);
  char *logs = read_logs(logdir.s);
  /* the killed transaction: an intent, never committed, replaced */
  char old_tag[300] = "";
  assert_int_equal(sscanf(logs, "intent %*d %299s", old_tag), 1);
  assert_false(log_committed(logs, old_tag));
  char rep[400];
  snprintf(rep, sizeof rep, " replaces %s\n", old_tag);
  assert_non_null(strstr(logs, rep));
  kafka_msgs_t ms = {0};
  consume_all(bs_b, CR_TOPIC, 4, &ms);
  kafka_msgs_t ok = committed_only(&ms, logs);
  assert_each_once(&ok, CR_N, false);
  free(ok.m);
  kafka_msgs_free(&ms);
  free(logs);
  /* every librdkafka thread of this process is gone before the next test forks */
  assert_int_equal(rd_kafka_wait_destroyed(5000), 0);
  stop_server(a);
  child_free(a);
  stop_server(b);
  child_free(b);
}

/* ---------------------------------------------------------------------------------- */
/* Starting again where committed output would be written again                       */

typedef struct rerun {
  const char *bs, *topic, *root, *logdir; /* logdir NULL: <root>/kafka-txn */
  bool restore;
  int version, accept;
  int rc;
  char err[2048];
  log_buf_t log;
} rerun_t;

/* An exactly-once job over 600 generated records with 30 ms checkpoints, from the
 * newest checkpoint under root when r->restore. */
static void rerun_job(rerun_t *r) {
  const char *kv[] = {"parallelism",
                      "2",
                      "state.checkpoints.dir",
                      r->root,
                      "state.checkpoints.num-retained",
                      "3",
                      "execution.checkpointing.interval",
                      "30ms",
                      "execution.savepoint.path",
                      r->restore ? r->root : "",
                      NULL};
  fl_env_t *env = env_of(kv);
  pthread_mutex_init(&r->log.mu, NULL);
  log_buf_attach(&r->log, env);
  gen_t g;
  gen_init(&g, 600, 13);
  g.rate_per_ms = 3.0;
  g.budget = 16;
  fl_kafka_sink_opts_t o = sink_opts(r->bs, r->topic, FL_KAFKA_EXACTLY_ONCE);
  if (r->version) o.version = r->version;
  o.transactional_id_prefix = "again";
  o.txn_log_dir = r->logdir;
  o.accept_duplicates = r->accept;
  assert_int_equal(fl_stream_sink_kafka(fl_stream_rebalance(gen_source(env, &g)), "out", &o), 0);
  r->rc = fl_env_execute(env, "again");
  snprintf(r->err, sizeof r->err, "%s", fl_env_error(env));
  fl_env_destroy(env);
  pthread_mutex_destroy(&r->log.mu);
  gen_free(&g);
}

/* The newest checkpoint is damaged after the sink committed its transaction: the restore
 * falls back to the one before, and going on would commit that output a second time.
 * The job fails, naming the checkpoint the restore skipped and the option; with the
 * option it writes the output again and says so. */
static void test_restore_past_a_skipped_checkpoint_fails_unless_duplicates_are_accepted(
    void **state) {
  mock_case_t *c = *state;
  char topic[32], dir[32], man[700], want[64];
  path_t root;
  rerun_t r;
  /* When the last periodic checkpoint already committed every record (a loaded machine
   * can delay the end past it), the final one committed nothing and falling back past it
   * repeats nothing: the restore rightly goes on, without a duplicate. And when the
   * transaction the skipped checkpoint committed held only records from before the
   * restored one (its barrier came before the restored one's completion reached the
   * sink, so the transaction stayed open over both), the sink cannot tell from its log
   * that nothing after the restored checkpoint was committed: it refuses, and with the
   * option nothing is written again, since the source had read everything. The case
   * asked for is a skipped checkpoint that committed records the restart reads again,
   * so the scenario is run again until one did (each attempt checks that nothing is
   * ever written twice without the option). */
  for (int attempt = 0;; attempt++) {
    if (attempt == 8) fail_msg("8 first runs left no records to their final checkpoint");
    snprintf(topic, sizeof topic, "skip%d", attempt);
    snprintf(dir, sizeof dir, "skip-ck%d", attempt);
    mock_topic(&c->mk, topic, 2);
    root = tmp_path(dir);
    r = (rerun_t){.bs = c->mk.bs, .topic = topic, .root = root.s};
    rerun_job(&r);
    if (r.rc) fail_msg("first run: %s", r.err);
    assert_int_equal(topic_count(c->mk.bs, topic), 600);
    int64_t newest = newest_checkpoint(root.s);
    assert_true(newest >= 2);
    snprintf(man, sizeof man, "%s/chk-%lld/_manifest", root.s, (long long)newest);
    size_t len;
    char *bytes = read_text(man, &len);
    assert_true(bytes && len > 0);
    bytes[0] ^= 0x20;
    write_bytes(man, bytes, len);
    free(bytes);

    r.restore = true;
    rerun_job(&r);
    assert_int_equal(topic_count(c->mk.bs, topic), 600); /* nothing written again */
    log_buf_free(&r.log);
    if (r.rc == 0) continue;
    snprintf(want, sizeof want, "committed output at checkpoint %lld", (long long)newest);
    if (!strstr(r.err, "kafka sink 'out'") || !strstr(r.err, want) ||
        !strstr(r.err, "accept_duplicates"))
      fail_msg("the restore past chk-%lld: rc %d, error '%s'", (long long)newest, r.rc, r.err);

    r.accept = 1;
    rerun_job(&r);
    if (r.rc) fail_msg("with accept_duplicates: %s", r.err);
    assert_mentions("the log (a warning about the repeated output)", r.log.text, "WARN", want,
                    NULL);
    log_buf_free(&r.log);
    if (topic_count(c->mk.bs, topic) > 600) break; /* what the option accepts */
  }
}

/* A start without a checkpoint, by a sink whose transactional ids already committed
 * output, would write it all again: the job fails, whether the transaction log says so
 * or, when the log was deleted with the checkpoint directory, the topic's last record
 * (its fl.txn header). With the option it goes on and says so. */
static void test_fresh_start_over_committed_output_fails_unless_duplicates_are_accepted(
    void **state) {
  mock_case_t *c = *state;
  mock_topic(&c->mk, "fresh", 2);
  path_t root = tmp_path("fresh-ck"), logdir = tmp_path("fresh-log");
  rerun_t r = {.bs = c->mk.bs, .topic = "fresh", .root = root.s};
  rerun_job(&r);
  if (r.rc) fail_msg("first run: %s", r.err);
  assert_int_equal(topic_count(c->mk.bs, "fresh"), 600);

  /* the checkpoint directory, and the log inside it, deleted: the topic tells */
  rm_tree(root.s);
  rerun_job(&r);
  if (r.rc == 0 || !strstr(r.err, "topic fresh partition") || !strstr(r.err, "again-") ||
      !strstr(r.err, "accept_duplicates"))
    fail_msg("a fresh start over committed output: rc %d, error '%s' (%zu records)", r.rc, r.err,
             topic_count(c->mk.bs, "fresh"));
  assert_int_equal(topic_count(c->mk.bs, "fresh"), 600);
  r.accept = 1;
  rerun_job(&r);
  if (r.rc) fail_msg("with accept_duplicates: %s", r.err);
  assert_mentions("the log (a warning about the repeated output)", r.log.text, "WARN",
                  "topic fresh partition", NULL);
  assert_int_equal(topic_count(c->mk.bs, "fresh"), 1200);

  /* the log kept elsewhere: it tells, and names itself */
  mock_topic(&c->mk, "fresh2", 2);
  rm_tree(root.s);
  log_buf_free(&r.log);
  r = (rerun_t){.bs = c->mk.bs, .topic = "fresh2", .root = root.s, .logdir = logdir.s};
  rerun_job(&r);
  if (r.rc) fail_msg("first run with a log directory: %s", r.err);
  rm_tree(root.s);
  rerun_job(&r);
  if (r.rc == 0 || !strstr(r.err, logdir.s) || !strstr(r.err, "accept_duplicates"))
    fail_msg("a fresh start with the log kept: rc %d, error '%s'", r.rc, r.err);
  assert_int_equal(topic_count(c->mk.bs, "fresh2"), 600);
  /* a version 1 table (no accept_duplicates) is read as 0 */
  rm_tree(root.s);
  r.version = 1;
  r.accept = 1; /* not read */
  rerun_job(&r);
  assert_int_not_equal(r.rc, 0);
  log_buf_free(&r.log);
}

/* ---------------------------------------------------------------------------------- */
/* Broker outages and produce errors (in-process mock)                                */

static void test_broker_down_then_up_loses_nothing(void **state) {
  mock_case_t *c = *state;
  path_t logdir;
  fl_kafka_sink_opts_t o = eo_topic(c, "down", 2, &logdir);
  fl_env_t *env = env_of(NULL);
  gen_t *g = gen_of(c, 2000, 13);
  g->pause_at = 1000;
  const char *props[] = {"reconnect.backoff.max.ms", "200", "reconnect.backoff.ms", "50", NULL};
  o.props = props;
  o.timeout_ms = 30000;
  assert_int_equal(fl_stream_sink_kafka(gen_source(env, g), "out", &o), 0);
  bg_job_t j;
  bg_job_start(&j, env, "bg");
  /* wait until half the input went out, then take the broker down */
  wait_paused(g);
  rd_kafka_mock_broker_set_down(c->mk.mc, 1);
  gen_resume(g);
  sleep(5); /* the outage itself */
  rd_kafka_mock_broker_set_up(c->mk.mc, 1);
  bg_job_join(&j);
  if (j.rc) fail_msg("job: %s", j.err);
  fl_env_destroy(env);
  assert_topic_each_once(c->mk.bs, "down", 2, 2000, false);
}

/* Starts env's job (g into the sink o, named "out") with the broker down, and waits
 * until g paused. */
static void start_with_the_broker_down(mock_case_t *c, fl_env_t *env, gen_t *g,
                                       const fl_kafka_sink_opts_t *o, bg_job_t *j) {
  assert_int_equal(fl_stream_sink_kafka(gen_source(env, g), "out", o), 0);
  assert_int_equal(rd_kafka_mock_broker_set_down(c->mk.mc, 1), 0);
  bg_job_start(j, env, "bg");
  wait_paused(g);
}

/* At least once, the broker gone: the records already written wait in the producer
 * while the source has nothing more to say. Their delivery cannot complete within the
 * sink's timeout, so the job fails, naming the topic and the cause, and the failing
 * job's flush reports how many records were lost. */
static void test_at_least_once_fails_when_delivery_cannot_complete_in_time(void **state) {
  mock_case_t *c = *state;
  mock_topic(&c->mk, "gone", 2);
  fl_env_t *env = env_of(NULL);
  log_buf_t log = {.mu = PTHREAD_MUTEX_INITIALIZER};
  log_buf_attach(&log, env);
  gen_t *g = gen_of(c, 200, 7);
  g->pause_at = 100; /* then waits for good: only the sink can end the job */
  const char *props[] = {"reconnect.backoff.max.ms", "100", NULL};
  fl_kafka_sink_opts_t o = sink_opts(c->mk.bs, "gone", FL_KAFKA_AT_LEAST_ONCE);
  o.props = props;
  o.timeout_ms = 1500;
  bg_job_t j;
  start_with_the_broker_down(c, env, g, &o, &j);
  /* the timeout, and then some: the job must have failed by then */
  bool ended = wait_until(job_done, &j, 10000);
  if (!ended) fl_env_stop(env);
  bg_job_join(&j);
  fl_env_destroy(env); /* no more log lines */
  if (!ended)
    fail_msg(
        "the job did not fail within 10 s of a delivery timeout of 1.5 s (then stopped: "
        "rc %d, '%s'; log:\n%s)",
        j.rc, j.err, log_buf_text(&log));
  assert_int_not_equal(j.rc, 0);
  assert_int_not_equal(j.rc, FL_ECANCELED);
  assert_mentions("the job's error", j.err, "kafka sink 'out'", "topic gone", "timed out", NULL);
  if (!log_buf_has(&log, "ERROR", "100 of 100 messages"))
    fail_msg("no report of the 100 lost records in the log:\n%s", log_buf_text(&log));
  log_buf_free(&log);
}

/* A stop while the broker is gone: the sink flushes what it can within its bounded
 * wait, and says on the log how many records it could not deliver. */
static void test_stop_reports_what_at_least_once_could_not_deliver(void **state) {
  mock_case_t *c = *state;
  mock_topic(&c->mk, "stop", 2);
  fl_env_t *env = env_of(NULL);
  log_buf_t log = {.mu = PTHREAD_MUTEX_INITIALIZER};
  log_buf_attach(&log, env);
  gen_t *g = gen_of(c, 300, 7);
  g->pause_at = 150;
  fl_kafka_sink_opts_t o = sink_opts(c->mk.bs, "stop", FL_KAFKA_AT_LEAST_ONCE);
  o.timeout_ms = 2000;
  bg_job_t j;
  start_with_the_broker_down(c, env, g, &o, &j);
  fl_env_stop(env);
  bg_job_join(&j);
  fl_env_destroy(env); /* no more log lines */
  assert_int_equal(j.rc, FL_ECANCELED);
  if (!log_buf_has(&log, "ERROR", "150 of 150 messages") || !log_buf_has(&log, "topic stop", NULL))
    fail_msg("the stop did not report the 150 records it could not deliver:\n%s",
             log_buf_text(&log));
  log_buf_free(&log);
}

static _Atomic int64_t g_passed;
static int count_map(fl_context_t *ctx, const fl_record_t *in, void *opaque) {
  (void)opaque;
  atomic_fetch_add(&g_passed, 1);
  return fl_emit_record(ctx, in);
}

static bool fifty_passed(void *arg) { return atomic_load(&g_passed) >= 50; }

/* The broker process frozen (SIGSTOP, its connections open) while records flow: the
 * sink says on the log that the broker does not answer, and that it answers again after
 * SIGCONT; the stop that follows delivers everything (no report of lost records). */
static void test_a_frozen_broker_is_logged_until_it_answers_again(void **state) {
  (void)state;
  char bs[1100];
  child_t *srv = start_server(bs, sizeof bs, "--quiet", "--topic", "frozen:2", NULL);
  fl_env_t *env = env_of(NULL);
  log_buf_t log = {.mu = PTHREAD_MUTEX_INITIALIZER};
  log_buf_attach(&log, env);
  gen_t g;
  gen_init(&g, INT64_MAX / 2, 7); /* until stopped */
  g.rate_per_ms = 0.5;
  g.budget = 16;
  atomic_store(&g_passed, 0);
  const char *props[] = {"statistics.interval.ms", "100", NULL};
  fl_kafka_sink_opts_t o = sink_opts(bs, "frozen", FL_KAFKA_AT_LEAST_ONCE);
  o.props = props;
  o.timeout_ms = 60000;
  fl_stream_t *s = fl_stream_map(gen_source(env, &g), "count", count_map, NULL);
  assert_int_equal(fl_stream_sink_kafka(s, "out", &o), 0);
  bg_job_t j;
  bg_job_start(&j, env, "bg");
  wait_until(fifty_passed, NULL, 10000);
  assert_int_equal(kill(srv->pid, SIGSTOP), 0);
  bool warned = log_buf_wait(&log, "WARN", "no answer from broker", 10000);
  assert_int_equal(kill(srv->pid, SIGCONT), 0);
  bool again = log_buf_wait(&log, "INFO", "answer again", 10000);
  fl_env_stop(env);
  bg_job_join(&j);
  fl_env_destroy(env); /* no more log lines */
  if (!warned || !again || log_buf_has(&log, "ERROR", NULL))
    fail_msg("frozen broker: warned %d, answered again %d; log:\n%s", warned, again,
             log_buf_text(&log));
  assert_int_equal(j.rc, FL_ECANCELED);
  log_buf_free(&log);
  gen_free(&g);
  assert_int_equal(rd_kafka_wait_destroyed(5000), 0);
  stop_server(srv);
  child_free(srv);
}

#define API_PRODUCE 0
#define API_INIT_PRODUCER_ID 22

static void test_retriable_produce_errors_lose_nothing(void **state) {
  mock_case_t *c = *state;
  mock_topic(&c->mk, "retry", 2);
  rd_kafka_mock_push_request_errors(
      c->mk.mc, API_PRODUCE, 4, RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION,
      RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT, RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION,
      RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT);
  fl_env_t *env = env_of(NULL);
  gen_t *g = gen_of(c, 1000, 7);
  const char *props[] = {"retry.backoff.ms", "20", NULL};
  fl_kafka_sink_opts_t o = sink_opts(c->mk.bs, "retry", FL_KAFKA_AT_LEAST_ONCE);
  o.props = props;
  run_to_end(env, gen_source(env, g), &o, "retry");
  assert_topic_each_once(c->mk.bs, "retry", 2, 1000, true);
}

/* A job whose sink gets the error err to the request api_key, once: the job fails, and
 * its error names each of the fragments (NULL-terminated). */
static void expect_produce_error_fails_the_job(mock_case_t *c, const char *topic, int api_key,
                                               rd_kafka_resp_err_t err,
                                               fl_kafka_guarantee_t guarantee, ...) {
  mock_topic(&c->mk, topic, 1);
  rd_kafka_mock_push_request_errors(c->mk.mc, api_key, 1, err);
  path_t logdir = tmp_path(topic);
  fl_env_t *env = env_of(NULL);
  gen_t *g = gen_of(c, guarantee == FL_KAFKA_EXACTLY_ONCE ? 10 : 100, 7);
  fl_kafka_sink_opts_t o = sink_opts(c->mk.bs, topic, guarantee);
  if (guarantee == FL_KAFKA_EXACTLY_ONCE) {
    o.txn_log_dir = logdir.s;
    o.timeout_ms = 10000;
  }
  assert_int_equal(fl_stream_sink_kafka(gen_source(env, g), "out", &o), 0);
  assert_int_not_equal(fl_env_execute(env, topic), 0);
  const char *e = fl_env_error(env);
  va_list ap;
  va_start(ap, guarantee);
  for (const char *f; (f = va_arg(ap, const char *));)
    if (!strstr(e, f)) fail_msg("unexpected error (no '%s'): %s", f, e);
  va_end(ap);
  fl_env_destroy(env);
}

static void test_fatal_produce_error_fails_the_job_naming_topic_and_error(void **state) {
  expect_produce_error_fails_the_job(
      *state, "denied", API_PRODUCE, RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED,
      FL_KAFKA_AT_LEAST_ONCE, "topic denied partition 0", "Topic authorization failed", NULL);
}

static void test_fatal_init_producer_id_error_fails_the_job(void **state) {
  expect_produce_error_fails_the_job(
      *state, "tx", API_INIT_PRODUCER_ID, RD_KAFKA_RESP_ERR_TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
      FL_KAFKA_EXACTLY_ONCE, "init_transactions", "topic tx", "authorization failed", NULL);
}

/* ---------------------------------------------------------------------------------- */
/* Options                                                                            */

static _Atomic int g_destroyed;
static void count_destroy(void *opaque) {
  (void)opaque;
  atomic_fetch_add(&g_destroyed, 1);
}

/* Builds a sink with o on a fresh env and expects FL_EINVAL from execute with all of
 * the given fragments in the error, and none of the secret. */
static void expect_invalid(const fl_kafka_sink_opts_t *o, const char *const *conf,
                           const char *frag1, const char *frag2, const char *secret) {
  fl_env_t *env = env_of(conf);
  fl_record_t r = rec_str("k", "v", 1);
  fl_stream_t *s = fl_source_collection(env, "c", &r, 1);
  assert_int_equal(fl_stream_sink_kafka(s, "bad", o), FL_EINVAL);
  assert_int_equal(fl_env_execute(env, "x"), FL_EINVAL);
  const char *e = fl_env_error(env);
  if (!strstr(e, "bad") || !strstr(e, frag1) || (frag2 && !strstr(e, frag2)))
    fail_msg("error '%s' does not name '%s'/'%s'", e, frag1, frag2 ? frag2 : "");
  if (secret && strstr(e, secret)) fail_msg("error '%s' shows a secret", e);
  fl_env_destroy(env);
}

static void test_invalid_options_are_rejected_naming_the_field(void **state) {
  (void)state;
  const fl_kafka_sink_opts_t base = {
      .version = FL_KAFKA_SINK_OPTS_VERSION, .brokers = "127.0.0.1:1", .topic = "t"};
  fl_kafka_sink_opts_t o;
  expect_invalid(NULL, NULL, "opts", NULL, NULL);
  o = base, o.version = 7;
  expect_invalid(&o, NULL, "opts.version", NULL, NULL);
  o = base, o.brokers = NULL;
  expect_invalid(&o, NULL, "opts.brokers", NULL, NULL);
  o = base, o.topic = NULL;
  expect_invalid(&o, NULL, "opts.topic", NULL, NULL);
  o = base, o.guarantee = (fl_kafka_guarantee_t)9;
  expect_invalid(&o, NULL, "opts.guarantee", NULL, NULL);
  o = base, o.timeout_ms = -1;
  expect_invalid(&o, NULL, "opts.timeout_ms", NULL, NULL);
  o = base, o.accept_duplicates = 2;
  expect_invalid(&o, NULL, "opts.accept_duplicates", NULL, NULL);
  o = base, o.guarantee = FL_KAFKA_EXACTLY_ONCE;
  expect_invalid(&o, NULL, "txn_log_dir", "state.checkpoints.dir", NULL);
  o = base, o.guarantee = FL_KAFKA_EXACTLY_ONCE, o.txn_log_dir = "/tmp/x",
  o.transactional_id_prefix = "has space";
  expect_invalid(&o, NULL, "opts.transactional_id_prefix", NULL, NULL);
  const char *odd[] = {"acks", NULL};
  o = base, o.props = odd;
  expect_invalid(&o, NULL, "'acks' has no value", NULL, NULL);
  const char *unknown[] = {"no.such.property", "1", NULL};
  o = base, o.props = unknown;
  expect_invalid(&o, NULL, "no.such.property", NULL, NULL);
  const char *badval[] = {"acks", "sometimes", NULL};
  o = base, o.props = badval;
  expect_invalid(&o, NULL, "opts.props: invalid value for librdkafka property 'acks'", NULL, NULL);
  const char *secret1[] = {"my.secret", "hunter2", NULL};
  o = base, o.props = secret1;
  expect_invalid(&o, NULL, "my.secret", NULL, "hunter2");
  const char *secret2[] = {"sasl.mechanisms",
                           "PLAIN",
                           "ssl.key.password",
                           "s3cr3t",
                           "sasl.password",
                           "pw-123",
                           "linger.ms",
                           "-5",
                           NULL};
  o = base, o.props = secret2;
  expect_invalid(&o, NULL, "linger.ms", NULL, "s3cr3t");
  const char *txid[] = {"transactional.id", "mine", NULL};
  o = base, o.props = txid;
  expect_invalid(&o, NULL, "transactional.id", "transactional_id_prefix", NULL);
  /* the serializer's destroy runs exactly once, also when the options are rejected */
  atomic_store(&g_destroyed, 0);
  o = base, o.brokers = "", o.serialize_destroy = count_destroy;
  expect_invalid(&o, NULL, "opts.brokers", NULL, NULL);
  assert_int_equal(atomic_load(&g_destroyed), 1);
  /* with state.checkpoints.dir, EXACTLY_ONCE needs no txn_log_dir */
  path_t ck = tmp_path("opt-ck");
  const char *conf[] = {"state.checkpoints.dir", ck.s, NULL};
  fl_env_t *env = env_of(conf);
  fl_record_t r = rec_str("k", "v", 1);
  o = base, o.guarantee = FL_KAFKA_EXACTLY_ONCE;
  assert_int_equal(fl_stream_sink_kafka(fl_source_collection(env, "c", &r, 1), "ok", &o), 0);
  assert_string_equal(fl_env_error(env), "");
  fl_env_destroy(env);
}

/* A test against a mock cluster of one broker (three) made and freed around it. */
#define MOCK_CASE(f) cmocka_unit_test_setup_teardown(f, mock_case_setup, mock_case_teardown)
#define MOCK3_CASE(f) cmocka_unit_test_setup_teardown(f, mock3_case_setup, mock_case_teardown)

int main(void) {
  const struct CMUnitTest tests[] = {
      /* first: they fork, and no librdkafka thread may be alive in this process then */
      cmocka_unit_test(test_exactly_once_survives_sigkill_at_every_commit_step),
      cmocka_unit_test(test_restore_rewrites_a_transaction_whose_commit_was_never_sent),
      cmocka_unit_test(test_a_frozen_broker_is_logged_until_it_answers_again),
      MOCK3_CASE(test_at_least_once_delivers_every_record_with_java_partitioning),
      MOCK_CASE(test_no_guarantee_flushes_everything_at_the_end),
      MOCK_CASE(test_serializer_topics_headers_and_timestamps_arrive),
      MOCK_CASE(test_exactly_once_bounded_job_commits_one_transaction),
      MOCK_CASE(test_exactly_once_failed_job_commits_nothing),
      MOCK_CASE(test_exactly_once_savepoint_needs_periodic_checkpoints),
      MOCK_CASE(test_transaction_log_is_compacted_to_its_last_lines),
      MOCK_CASE(test_restore_past_a_skipped_checkpoint_fails_unless_duplicates_are_accepted),
      MOCK_CASE(test_fresh_start_over_committed_output_fails_unless_duplicates_are_accepted),
      MOCK_CASE(test_broker_down_then_up_loses_nothing),
      MOCK_CASE(test_retriable_produce_errors_lose_nothing),
      MOCK_CASE(test_at_least_once_fails_when_delivery_cannot_complete_in_time),
      MOCK_CASE(test_stop_reports_what_at_least_once_could_not_deliver),
      MOCK_CASE(test_fatal_produce_error_fails_the_job_naming_topic_and_error),
      MOCK_CASE(test_fatal_init_producer_id_error_fails_the_job),
      cmocka_unit_test(test_invalid_options_are_rejected_naming_the_field),
  };
  /* FL_TEST_FILTER: run only the tests matching this pattern (cmocka's syntax) */
  if (getenv("FL_TEST_FILTER")) cmocka_set_test_filter(getenv("FL_TEST_FILTER"));
  return cmocka_run_group_tests(tests, kafka_group_setup, kafka_group_teardown);
}
