/*
 * flink-bench kafka: a Kafka -> keyBy -> window -> Kafka job against librdkafka alone.
 *
 * Everything runs against librdkafka's mock cluster inside this process (one broker on
 * loopback), so the figures compare the engine with the best a plain librdkafka program
 * achieves on the same broker, not with a real cluster's network and disks.
 *
 * Throughput (default): N events (key "k<i*7919 % K>", value {int64 ts, int64 amount},
 * event time 1 ms apart) are produced to an input topic of --partitions partitions
 * first, untimed. Then, in the same run:
 *   raw: one consumer reads all N from the beginning and a producer writes each message
 *        unchanged to a second topic, flushed at the end (consume + produce, no work);
 *   job: the Kafka source (bounded, --parallelism subtasks, watermarks per partition)
 *        -> keyBy key -> tumbling event-time window --window-ms, sum and count
 *        -> the Kafka sink (--guarantee) writing one feature per (key, window).
 * Both times run from the start of consuming to the last delivery acknowledged. The job
 * must write exactly the expected features (every key in every window, sums checked).
 * The raw loop writes every message back, the job one feature per key and window; a
 * third pass, consume only, shows how fast the messages can be read at all. CPU seconds
 * are the whole process's (the mock broker's threads included) during each phase.
 *
 * Latency (--rate R): a producer thread writes R events/s for --seconds with event time
 * = the wall clock at produce (linger.ms=5, Kafka's default); the job runs unbounded; a
 * consumer thread reads the features and takes, for each, the time it was read minus its
 * window's end (the first instant it could exist): p50, p99 and max, over the windows
 * that end after a 2 s warm-up (start-up of the consumers) and before the last event.
 * Out-of-orderness is 0, so this is the engine's and Kafka's delay, not a watermark
 * allowance. The job's sink uses linger.ms=1. Every consumer here, the raw loop's and
 * the job's, uses fetch.wait.max.ms=5 (Kafka's default is 500). A second plain consumer
 * reads the input topic and reports how late the events themselves arrive: the floor
 * under any feature's latency on this broker.
 *
 * One JSON line goes to stdout; exit status 1 when a check fails.
 */
#define _GNU_SOURCE
#include "lib/bench_kafka.h"
#include "lib/bench_clock.h"

#include <inttypes.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <ftw.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "flink.h"

#define BK_T0 INT64_C(1700000000000)

typedef struct bk_opts {
  long events;
  int keys, partitions, parallelism;
  int64_t window_ms;
  fl_kafka_guarantee_t guarantee;
  long rate; /* > 0: latency mode */
  int seconds;
} bk_opts_t;

typedef struct bk_value {
  int64_t ts;
  int64_t amount;
} bk_value_t;

typedef struct bk_feature {
  int64_t window_end;
  int64_t sum;
  int64_t count;
} bk_feature_t;

static int64_t bk_wall_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int bk_rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
  (void)st;
  (void)flag;
  (void)ftw;
  return remove(path);
}

/* Removes a benchmark's scratch checkpoint directory. */
static void bk_rm_rf(const char *dir) { nftw(dir, bk_rm_one, 16, FTW_DEPTH | FTW_PHYS); }

static rd_kafka_t *bk_client(rd_kafka_type_t type, const char *brokers, const char *const *kv) {
  char err[512];
  rd_kafka_conf_t *c = rd_kafka_conf_new();
  rd_kafka_conf_set(c, "bootstrap.servers", brokers, NULL, 0);
  for (; kv && kv[0]; kv += 2)
    if (rd_kafka_conf_set(c, kv[0], kv[1], err, sizeof err) != RD_KAFKA_CONF_OK)
      fprintf(stderr, "flink-bench kafka: %s\n", err);
  rd_kafka_t *rk = rd_kafka_new(type, c, err, sizeof err);
  if (!rk) {
    fprintf(stderr, "flink-bench kafka: %s\n", err);
    rd_kafka_conf_destroy(c);
  }
  return rk;
}

static void bk_key(long i, int keys, char *out, size_t cap, size_t *len) {
  *len = (size_t)snprintf(out, cap, "k%ld", (i * 7919L) % keys);
}

static int bk_produce1(rd_kafka_t *p, const char *topic, const void *key, size_t klen,
                       const void *val, size_t vlen) {
  rd_kafka_resp_err_t e;
  while ((e = rd_kafka_producev(p, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_KEY(key, klen),
                                RD_KAFKA_V_VALUE((void *)val, vlen),
                                RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END)) ==
         RD_KAFKA_RESP_ERR__QUEUE_FULL)
    rd_kafka_poll(p, 1);
  if (e) fprintf(stderr, "flink-bench kafka: produce to %s: %s\n", topic, rd_kafka_err2str(e));
  return e ? -1 : 0;
}

/* ---------------------------------------------------------------------------------- */
/* The job                                                                            */

static int bk_deser(fl_context_t *ctx, const fl_kafka_message_t *msg, fl_record_t *out,
                    void *opaque) {
  bk_value_t v;
  (void)opaque;
  if (msg->value_len != sizeof v) return fl_ctx_fail(ctx, "value of %zu bytes", msg->value_len);
  memcpy(&v, msg->value, sizeof v);
  *out = (fl_record_t){msg->key, msg->key_len, msg->value, msg->value_len, v.ts};
  return 1;
}

static void bk_init(void *acc, void *opaque) {
  (void)opaque;
  memset(acc, 0, sizeof(bk_feature_t));
}

static int bk_add(fl_context_t *ctx, void *acc, const fl_record_t *in, void *opaque) {
  bk_feature_t *f = acc;
  bk_value_t v;
  (void)ctx;
  (void)opaque;
  memcpy(&v, in->value, sizeof v);
  f->sum += v.amount;
  f->count++;
  return FL_OK;
}

static int bk_result(fl_context_t *ctx, const fl_window_t *w, const void *acc, void *opaque) {
  bk_feature_t f = *(const bk_feature_t *)acc;
  size_t klen;
  const void *key = fl_ctx_key(ctx, &klen);
  (void)opaque;
  f.window_end = w->end;
  return fl_emit(ctx, key, klen, &f, sizeof f, w->end - 1);
}

static fl_env_t *bk_env(const bk_opts_t *o, const char *brokers, const char *in, const char *out,
                        bool bounded, const char *ckpt_dir) {
  fl_config_t *conf = fl_config_new();
  fl_env_t *env = NULL;
  char err[512], par[16];
  snprintf(par, sizeof par, "%d", o->parallelism);
  if (!conf || fl_config_set(conf, "parallelism", par, err, sizeof err) ||
      (ckpt_dir &&
       (fl_config_set(conf, "state.checkpoints.dir", ckpt_dir, err, sizeof err) ||
        fl_config_set(conf, "execution.checkpointing.interval", "1s", err, sizeof err))) ||
      fl_env_new(&env, conf, err, sizeof err)) {
    fprintf(stderr, "flink-bench kafka: %s\n", conf ? err : "out of memory");
    fl_config_destroy(conf);
    return NULL;
  }
  fl_config_destroy(conf);
  fl_watermark_strategy_t wm = {.version = FL_WATERMARK_STRATEGY_VERSION,
                                .kind = FL_WATERMARKS_MONOTONOUS};
  /* the same consumer settings as the raw loop; the latency run also asks the producer
   * not to wait for fuller batches */
  static const char *const src_props[] = {"fetch.wait.max.ms", "5", NULL};
  static const char *const sink_props[] = {"linger.ms", "1", NULL};
  bool low_latency = o->rate > 0;
  fl_kafka_source_opts_t so = {.version = FL_KAFKA_SOURCE_OPTS_VERSION,
                               .props = src_props,
                               .brokers = brokers,
                               .topics = in,
                               .group_id = "flink-bench",
                               .start = FL_KAFKA_START_EARLIEST,
                               .bounded = bounded,
                               .watermarks = &wm,
                               .deserialize = bk_deser};
  fl_aggregate_fn_t agg = {.version = FL_AGGREGATE_FN_VERSION,
                           .acc_size = sizeof(bk_feature_t),
                           .init = bk_init,
                           .add = bk_add,
                           .result = bk_result};
  fl_kafka_sink_opts_t ko = {.version = FL_KAFKA_SINK_OPTS_VERSION,
                             .props = low_latency ? sink_props : NULL,
                             .brokers = brokers,
                             .topic = out,
                             .guarantee = o->guarantee,
                             .transactional_id_prefix = "flink-bench"};
  fl_stream_t *src = fl_source_kafka(env, "source", &so);
  fl_windowed_stream_t *w =
      fl_window_tumbling(fl_stream_key_by(src, NULL, NULL), FL_EVENT_TIME, o->window_ms, 0);
  fl_stream_sink_kafka(fl_window_aggregate(w, "window", &agg, NULL), "sink", &ko);
  return env;
}

/* ---------------------------------------------------------------------------------- */
/* Throughput                                                                          */

/* A consumer (group `group`, fetch.wait.max.ms=5 as every consumer here) assigned every
 * partition of topic from the beginning; NULL on error (printed). */
static rd_kafka_t *bk_consumer_from_start(const char *brokers, const char *group, const char *topic,
                                          int partitions) {
  const char *const kv[] = {"group.id", group, "enable.auto.commit", "false", "fetch.wait.max.ms",
                            "5",        NULL};
  rd_kafka_t *c = bk_client(RD_KAFKA_CONSUMER, brokers, kv);
  if (!c) return NULL;
  rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(partitions);
  for (int i = 0; i < partitions; i++)
    rd_kafka_topic_partition_list_add(l, topic, i)->offset = RD_KAFKA_OFFSET_BEGINNING;
  rd_kafka_resp_err_t err = rd_kafka_assign(c, l);
  rd_kafka_topic_partition_list_destroy(l);
  if (err) {
    fprintf(stderr, "flink-bench kafka: assign %s: %s\n", topic, rd_kafka_err2str(err));
    rd_kafka_destroy(c);
    return NULL;
  }
  return c;
}

/* Consumes every partition of topic from the beginning until `expect` messages arrived,
 * calling fn on each (if set) and producing each to copy_to (if set). */
typedef void (*bk_msg_fn)(const rd_kafka_message_t *m, void *arg);

static int bk_drain(const char *brokers, const char *topic, int partitions, long expect,
                    const char *copy_to, bk_msg_fn fn, void *arg, double timeout_s) {
  static const char *const pkv[] = {"linger.ms", "5", NULL};
  rd_kafka_t *c = bk_consumer_from_start(brokers, "flink-bench-raw", topic, partitions);
  rd_kafka_t *p = copy_to ? bk_client(RD_KAFKA_PRODUCER, brokers, pkv) : NULL;
  int rc = -1;
  if (!c || (copy_to && !p)) goto out;
  rd_kafka_queue_t *q = rd_kafka_queue_get_consumer(c);
  rd_kafka_message_t *batch[1024];
  long got = 0;
  double deadline = bench_now_s() + timeout_s;
  while (got < expect && bench_now_s() < deadline) {
    ssize_t n = rd_kafka_consume_batch_queue(q, 100, batch, 1024);
    for (ssize_t i = 0; i < n; i++) {
      rd_kafka_message_t *m = batch[i];
      if (!m->err) {
        got++;
        if (fn) fn(m, arg);
        if (p && bk_produce1(p, copy_to, m->key, m->key_len, m->payload, m->len)) got = expect + 1;
      }
      rd_kafka_message_destroy(m);
    }
    if (p) rd_kafka_poll(p, 0);
  }
  rd_kafka_queue_destroy(q);
  if (p && rd_kafka_flush(p, 60000)) got = -1;
  rc = got == expect ? 0 : -1;
  if (rc) fprintf(stderr, "flink-bench kafka: %s: %ld of %ld messages\n", topic, got, expect);
out:
  if (c) {
    rd_kafka_consumer_close(c);
    rd_kafka_destroy(c);
  }
  if (p) rd_kafka_destroy(p);
  return rc;
}

typedef struct bk_check {
  long features;
  int64_t sum, count;
} bk_check_t;

static void bk_check_feature(const rd_kafka_message_t *m, void *arg) {
  bk_check_t *c = arg;
  bk_feature_t f;
  if (m->len != sizeof f) return;
  memcpy(&f, m->payload, sizeof f);
  c->features++;
  c->sum += f.sum;
  c->count += f.count;
}

static int bk_throughput(const bk_opts_t *o, const char *brokers) {
  static const char *const pkv[] = {"linger.ms", "20", "batch.num.messages", "10000", NULL};
  rd_kafka_t *p = bk_client(RD_KAFKA_PRODUCER, brokers, pkv);
  if (!p) return 1;
  int64_t total = 0;
  for (long i = 0; i < o->events; i++) {
    char key[32];
    size_t klen;
    bk_key(i, o->keys, key, sizeof key, &klen);
    bk_value_t v = {BK_T0 + i, 1 + i % 100};
    total += v.amount;
    if (bk_produce1(p, "bench.in", key, klen, &v, sizeof v)) return 1;
  }
  if (rd_kafka_flush(p, 120000)) {
    fprintf(stderr, "flink-bench kafka: the input was not delivered\n");
    return 1;
  }
  rd_kafka_destroy(p);

  double t0 = bench_now_s();
  if (bk_drain(brokers, "bench.in", o->partitions, o->events, NULL, NULL, NULL, 300)) return 1;
  double consume_s = bench_now_s() - t0;
  t0 = bench_now_s();
  double c0 = bench_cpu_s();
  if (bk_drain(brokers, "bench.in", o->partitions, o->events, "bench.raw", NULL, NULL, 300))
    return 1;
  double raw_s = bench_now_s() - t0, raw_cpu = bench_cpu_s() - c0;

  /* exactly-once: transactions per checkpoint (every second) */
  char ckpt[] = "/tmp/flink-bench-kafka-XXXXXX";
  bool eos = o->guarantee == FL_KAFKA_EXACTLY_ONCE;
  if (eos && !mkdtemp(ckpt)) {
    perror("flink-bench kafka: mkdtemp");
    return 1;
  }
  fl_env_t *env = bk_env(o, brokers, "bench.in", "bench.features", true, eos ? ckpt : NULL);
  if (!env) return 1;
  t0 = bench_now_s();
  c0 = bench_cpu_s();
  int rc = fl_env_execute(env, "kafka-bench");
  double job_s = bench_now_s() - t0, job_cpu = bench_cpu_s() - c0;
  if (rc) fprintf(stderr, "flink-bench kafka: the job failed: %s\n", fl_env_error(env));
  fl_env_destroy(env);
  if (eos) bk_rm_rf(ckpt);
  if (rc) return 1;

  /* Every key occurs in every window (the keys cycle with period K <= events/window). */
  long per_window = (long)o->window_ms;
  long windows = (o->events + per_window - 1) / per_window;
  long expected = 0;
  for (long w = 0; w < windows; w++) {
    long n = o->events - w * per_window < per_window ? o->events - w * per_window : per_window;
    expected += n < o->keys ? n : o->keys;
  }
  bk_check_t chk = {0};
  bool ok = bk_drain(brokers, "bench.features", o->partitions, expected, NULL, bk_check_feature,
                     &chk, 60) == 0 &&
            chk.sum == total && chk.count == o->events;
  printf(
      "{\"bench\":\"kafka\",\"mode\":\"throughput\",\"events\":%ld,\"keys\":%d,"
      "\"partitions\":%d,\"parallelism\":%d,\"window_ms\":%" PRId64
      ",\"guarantee\":\"%s\","
      "\"consume_only_events_per_s\":%.0f,\"raw_s\":%.3f,\"raw_cpu_s\":%.3f,\"raw_events_per_s\":%.0f,\"job_s\":%.3f,"
      "\"job_cpu_s\":%.3f,\"job_events_per_s\":%.0f,"
      "\"ratio\":%.3f,\"features\":%ld,\"features_expected\":%ld,\"ok\":%s}\n",
      o->events, o->keys, o->partitions, o->parallelism, o->window_ms,
      o->guarantee == FL_KAFKA_EXACTLY_ONCE    ? "exactly-once"
      : o->guarantee == FL_KAFKA_AT_LEAST_ONCE ? "at-least-once"
                                               : "none",
      (double)o->events / consume_s, raw_s, raw_cpu, (double)o->events / raw_s, job_s, job_cpu,
      (double)o->events / job_s, raw_s / job_s, chk.features, expected, ok ? "true" : "false");
  return ok ? 0 : 1;
}

/* ---------------------------------------------------------------------------------- */
/* Latency                                                                             */

/* Latency samples, in ms: each one's latency and the time it belongs to. A sample that
 * finds no memory is dropped. */
typedef struct bk_series {
  int64_t *lat, *ts;
  size_t n, cap;
} bk_series_t;

static void bk_series_add(bk_series_t *s, int64_t ts, int64_t lat) {
  if (s->n == s->cap) {
    size_t cap = s->cap ? s->cap * 2 : 65536;
    int64_t *a = realloc(s->lat, cap * sizeof *a);
    if (a) s->lat = a;
    int64_t *b = a ? realloc(s->ts, cap * sizeof *b) : NULL;
    if (b) s->ts = b, s->cap = cap;
  }
  if (s->n < s->cap) {
    s->ts[s->n] = ts;
    s->lat[s->n++] = lat;
  }
}

static int bk_cmp(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return x < y ? -1 : x > y;
}

/* Keeps the samples of times up to end and sets pct to their latencies' p50, p99 and
 * maximum (0 when none are left). */
static void bk_series_summary(bk_series_t *s, int64_t end, int64_t pct[3]) {
  size_t kept = 0;
  for (size_t i = 0; i < s->n; i++)
    if (s->ts[i] <= end) s->lat[kept++] = s->lat[i];
  s->n = kept;
  pct[0] = pct[1] = pct[2] = 0;
  if (!s->n) return;
  qsort(s->lat, s->n, sizeof *s->lat, bk_cmp);
  pct[0] = s->lat[s->n / 2];
  pct[1] = s->lat[(s->n * 99) / 100];
  pct[2] = s->lat[s->n - 1];
}

typedef struct bk_lat {
  const bk_opts_t *o;
  const char *brokers;
  _Atomic bool stop;
  _Atomic long produced;
  bk_series_t features;        /* time: the window end */
  _Atomic int64_t produce_end; /* wall ms when the producer wrote its last event */
  int64_t warm_until;          /* wall ms: features of windows ending before are not counted */
  /* the input as a plain consumer sees it: the latency of each event, at its event time */
  bk_series_t input;
  _Atomic int rc;
} bk_lat_t;

static void *bk_producer_main(void *arg) {
  bk_lat_t *l = arg;
  static const char *const pkv[] = {"linger.ms", "5", NULL};
  rd_kafka_t *p = bk_client(RD_KAFKA_PRODUCER, l->brokers, pkv);
  if (!p) {
    atomic_store(&l->rc, 1);
    return NULL;
  }
  long total = l->o->rate * l->o->seconds, i = 0;
  double t0 = bench_now_s();
  while (i < total && !atomic_load(&l->stop)) {
    /* paced: as many events as the elapsed time allows at the rate */
    long due = (long)((bench_now_s() - t0) * (double)l->o->rate);
    if (due > total) due = total;
    for (; i < due; i++) {
      char key[32];
      size_t klen;
      bk_key(i, l->o->keys, key, sizeof key, &klen);
      bk_value_t v = {bk_wall_ms(), 1};
      if (bk_produce1(p, "lat.in", key, klen, &v, sizeof v)) {
        atomic_store(&l->rc, 1);
        break;
      }
    }
    rd_kafka_poll(p, 0);
    struct timespec ts = {0, 200000};
    nanosleep(&ts, NULL); /* pacing of the load generator, not a wait for work */
  }
  atomic_store(&l->produced, i);
  atomic_store(&l->produce_end, bk_wall_ms());
  rd_kafka_flush(p, 10000);
  rd_kafka_destroy(p);
  return NULL;
}

static void *bk_reader_main(void *arg) {
  bk_lat_t *l = arg;
  rd_kafka_t *c =
      bk_consumer_from_start(l->brokers, "flink-bench-lat", "lat.features", l->o->partitions);
  if (!c) {
    atomic_store(&l->rc, 1);
    return NULL;
  }
  while (!atomic_load(&l->stop)) {
    rd_kafka_message_t *m = rd_kafka_consumer_poll(c, 50);
    if (!m) continue;
    int64_t now = bk_wall_ms();
    bk_feature_t f;
    if (!m->err && m->len == sizeof f) {
      memcpy(&f, m->payload, sizeof f);
      if (f.window_end >= l->warm_until)
        bk_series_add(&l->features, f.window_end, now - f.window_end);
    }
    rd_kafka_message_destroy(m);
  }
  rd_kafka_consumer_close(c);
  rd_kafka_destroy(c);
  return NULL;
}

/* Reads the input topic with a plain consumer: how late the events themselves arrive,
 * the floor under any feature's latency. */
static void *bk_input_reader_main(void *arg) {
  bk_lat_t *l = arg;
  rd_kafka_t *c =
      bk_consumer_from_start(l->brokers, "flink-bench-lat-in", "lat.in", l->o->partitions);
  if (!c) {
    atomic_store(&l->rc, 1);
    return NULL;
  }
  rd_kafka_queue_t *q = rd_kafka_queue_get_consumer(c);
  rd_kafka_message_t *batch[1024];
  while (!atomic_load(&l->stop)) {
    ssize_t got = rd_kafka_consume_batch_queue(q, 50, batch, 1024);
    int64_t now = bk_wall_ms();
    for (ssize_t i = 0; i < got; i++) {
      rd_kafka_message_t *m = batch[i];
      bk_value_t v;
      if (!m->err && m->len == sizeof v) {
        memcpy(&v, m->payload, sizeof v);
        if (v.ts >= l->warm_until) bk_series_add(&l->input, v.ts, now - v.ts);
      }
      rd_kafka_message_destroy(m);
    }
  }
  rd_kafka_queue_destroy(q);
  rd_kafka_consumer_close(c);
  rd_kafka_destroy(c);
  return NULL;
}

static void *bk_stopper_main(void *arg) {
  void **a = arg;
  bk_lat_t *l = a[0];
  fl_env_t *env = a[1];
  pthread_t *prod = a[2];
  pthread_join(*prod, NULL);
  /* the last windows close once later events arrive; let the job catch up with the
   * windows that were complete while the load ran, then stop */
  struct timespec ts = {0, 500 * 1000000L};
  nanosleep(&ts, NULL);
  fl_env_stop(env);
  (void)l;
  return NULL;
}

static int bk_latency(const bk_opts_t *o, const char *brokers) {
  bk_lat_t l = {.o = o, .brokers = brokers, .warm_until = bk_wall_ms() + 2000};
  char ckpt[] = "/tmp/flink-bench-kafka-XXXXXX";
  bool eos = o->guarantee == FL_KAFKA_EXACTLY_ONCE;
  if (eos && !mkdtemp(ckpt)) {
    perror("flink-bench kafka: mkdtemp");
    return 1;
  }
  fl_env_t *env = bk_env(o, brokers, "lat.in", "lat.features", false, eos ? ckpt : NULL);
  if (!env) return 1;
  pthread_t prod, reader, in_reader, stopper;
  pthread_create(&reader, NULL, bk_reader_main, &l);
  pthread_create(&in_reader, NULL, bk_input_reader_main, &l);
  pthread_create(&prod, NULL, bk_producer_main, &l);
  void *args[3] = {&l, env, &prod};
  pthread_create(&stopper, NULL, bk_stopper_main, args);
  double t0 = bench_now_s();
  int rc = fl_env_execute(env, "kafka-latency");
  double wall = bench_now_s() - t0;
  pthread_join(stopper, NULL);
  /* features already produced reach the reader within its poll interval */
  struct timespec ts = {0, 300 * 1000000L};
  nanosleep(&ts, NULL);
  atomic_store(&l.stop, true);
  pthread_join(reader, NULL);
  pthread_join(in_reader, NULL);
  if (rc != FL_OK && rc != FL_ECANCELED) {
    fprintf(stderr, "flink-bench kafka: the job failed: %s\n", fl_env_error(env));
    l.rc = 1;
  }
  fl_env_destroy(env);
  if (eos) bk_rm_rf(ckpt);
  /* windows that end after the last event are closed by no later event: not counted */
  int64_t f[3], in[3];
  bk_series_summary(&l.features, atomic_load(&l.produce_end), f);
  bk_series_summary(&l.input, atomic_load(&l.produce_end), in);
  bool ok = atomic_load(&l.rc) == 0 && l.features.n > 0 && l.input.n > 0;
  printf(
      "{\"bench\":\"kafka\",\"mode\":\"latency\",\"rate\":%ld,\"seconds\":%d,\"produced\":%ld,"
      "\"keys\":%d,\"partitions\":%d,\"parallelism\":%d,\"window_ms\":%" PRId64
      ",\"features\":%zu,\"latency_ms_p50\":%" PRId64 ",\"latency_ms_p99\":%" PRId64
      ",\"latency_ms_max\":%" PRId64 ",\"input_latency_ms_p50\":%" PRId64
      ",\"input_latency_ms_p99\":%" PRId64 ",\"input_latency_ms_max\":%" PRId64
      ",\"wall_s\":%.1f,\"ok\":%s}\n",
      o->rate, o->seconds, atomic_load(&l.produced), o->keys, o->partitions, o->parallelism,
      o->window_ms, l.features.n, f[0], f[1], f[2], in[0], in[1], in[2], wall,
      ok ? "true" : "false");
  free(l.features.lat);
  free(l.features.ts);
  free(l.input.lat);
  free(l.input.ts);
  return ok ? 0 : 1;
}

/* ---------------------------------------------------------------------------------- */

static void bk_usage(FILE *f) {
  fprintf(f,
          "usage: flink-bench kafka [--events N] [--keys K] [--partitions P] [--parallelism P]\n"
          "                         [--window-ms W] [--guarantee none|at-least-once|exactly-once]\n"
          "                         [--rate R --seconds S]\n"
          "Throughput of Kafka -> keyBy -> window -> Kafka against librdkafka consume+produce\n"
          "on an in-process mock cluster; with --rate, latency from produce to feature.\n");
}

int fl_bench_kafka_main(int argc, char **argv) {
  bk_opts_t o = {.events = 400000,
                 .keys = 1000,
                 .partitions = 8,
                 .parallelism = 1,
                 .window_ms = 10000,
                 .guarantee = FL_KAFKA_AT_LEAST_ONCE,
                 .seconds = 10};
  for (int i = 2; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (strcmp(a, "--help") == 0) {
      bk_usage(stdout);
      return 0;
    }
    if (!v) {
      bk_usage(stderr);
      return 2;
    }
    i++;
    if (strcmp(a, "--events") == 0)
      o.events = atol(v);
    else if (strcmp(a, "--keys") == 0)
      o.keys = atoi(v);
    else if (strcmp(a, "--partitions") == 0)
      o.partitions = atoi(v);
    else if (strcmp(a, "--parallelism") == 0)
      o.parallelism = atoi(v);
    else if (strcmp(a, "--window-ms") == 0)
      o.window_ms = atol(v);
    else if (strcmp(a, "--rate") == 0)
      o.rate = atol(v);
    else if (strcmp(a, "--seconds") == 0)
      o.seconds = atoi(v);
    else if (strcmp(a, "--guarantee") == 0) {
      if (strcmp(v, "none") == 0)
        o.guarantee = FL_KAFKA_NO_GUARANTEE;
      else if (strcmp(v, "at-least-once") == 0)
        o.guarantee = FL_KAFKA_AT_LEAST_ONCE;
      else if (strcmp(v, "exactly-once") == 0)
        o.guarantee = FL_KAFKA_EXACTLY_ONCE;
      else {
        fprintf(stderr,
                "flink-bench kafka: --guarantee '%s' is not none, at-least-once or "
                "exactly-once\n",
                v);
        return 2;
      }
    } else {
      fprintf(stderr, "flink-bench kafka: unknown option '%s'\n", a);
      bk_usage(stderr);
      return 2;
    }
  }
  if (o.events < 1 || o.keys < 1 || o.partitions < 1 || o.parallelism < 1 || o.window_ms < 1 ||
      o.rate < 0 || o.seconds < 1 || o.keys > o.window_ms) {
    fprintf(stderr, "flink-bench kafka: counts must be positive and --keys <= --window-ms\n");
    return 2;
  }
  char err[256];
  rd_kafka_conf_t *c = rd_kafka_conf_new();
  rd_kafka_conf_set(c, "log_level", "3", NULL, 0);
  rd_kafka_t *mrk = rd_kafka_new(RD_KAFKA_PRODUCER, c, err, sizeof err);
  rd_kafka_mock_cluster_t *mc = mrk ? rd_kafka_mock_cluster_new(mrk, 1) : NULL;
  if (!mc) {
    fprintf(stderr, "flink-bench kafka: cannot start the mock cluster: %s\n", err);
    return 1;
  }
  const char *topics[] = {"bench.in", "bench.raw", "bench.features", "lat.in", "lat.features"};
  for (size_t i = 0; i < sizeof topics / sizeof topics[0]; i++)
    rd_kafka_mock_topic_create(mc, topics[i], o.partitions, 1);
  const char *brokers = rd_kafka_mock_cluster_bootstraps(mc);
  int rc = o.rate > 0 ? bk_latency(&o, brokers) : bk_throughput(&o, brokers);
  rd_kafka_mock_cluster_destroy(mc);
  rd_kafka_destroy(mrk);
  return rc;
}
