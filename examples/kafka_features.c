/*
 * kafka_features - a real-time feature job from Kafka to Kafka.
 *
 *   raw.purchases (JSON: {"user":"u7","amount":12.5,"ts":1700000000000}, key = user)
 *     -> Kafka source: parse, event time from "ts", watermarks per partition (bounded
 *        out-of-orderness, idle partitions do not hold event time back)
 *     -> keyBy user -> tumbling 5-minute event-time window -> {sum, count}
 *     -> Kafka sink, key = user, transactional (exactly once) with checkpoints:
 *   features.user_5min_spend ({"user":"u7","window_start":..,"window_end":..,
 *                              "spend":..,"purchases":n})
 *
 * By default it needs nothing: it starts librdkafka's mock cluster inside the process
 * (the embedded default; tools/flink-kafka-local runs the same cluster as a separate
 * process), produces --events sample purchases to raw.purchases, runs the job over them
 * (bounded: it stops at the end offsets it saw at the start), with checkpoints every
 * 200 ms in a temporary directory, reads features.user_5min_spend back as a
 * read_committed consumer, prints a sample of the features and checks that the spend
 * of all features equals the spend of all purchases.
 *
 * With --brokers LIST it runs against that cluster instead: it produces the sample only
 * with --produce, reads the input topic until stopped (SIGINT/SIGTERM) unless --bounded,
 * and takes checkpoints in --checkpoint-dir (exactly-once output) when given.
 *
 * Usage: kafka_features [--brokers LIST] [--produce] [--bounded] [--events N]
 *                       [--input-topic T] [--output-topic T] [--parallelism N]
 *                       [--checkpoint-dir DIR] [--sample N]
 *                       [--set KEY=VALUE]... [-X KEY=VALUE]...
 *
 * --set sets any configuration key; -X passes a librdkafka property (TLS, SASL, ...) to
 * every Kafka client: the job's source and sink, the sample producer and the reader.
 *
 * Uses the public API (flink.h), librdkafka (mock cluster, sample producer, reader) and
 * jansson.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <ftw.h>
#include <inttypes.h>
#include <jansson.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <math.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "flink.h"
#include "lib/example_util.h"

#define WINDOW_MS (5 * 60 * 1000)
#define PARTITIONS 4
#define T0 1700000000000LL /* event time of the first sample purchase */

typedef struct options {
  const char *brokers; /* NULL: the in-process mock cluster */
  bool produce, bounded;
  long events;
  const char *in_topic, *out_topic;
  int parallelism;
  const char *checkpoint_dir;
  int sample;
  ex_extra_t extra; /* --set, -X */
} options_t;

static fl_env_t *volatile g_env;

static void on_signal(int sig) {
  (void)sig;
  if (g_env != NULL) fl_env_stop(g_env);
}

static int usage(const char *fmt, const char *arg) {
  if (fmt != NULL) {
    fputs("kafka_features: ", stderr);
    fprintf(stderr, fmt, arg);
    fputc('\n', stderr);
  }
  fputs(
      "usage: kafka_features [--brokers LIST] [--produce] [--bounded] [--events N]\n"
      "                      [--input-topic T] [--output-topic T] [--parallelism N]\n"
      "                      [--checkpoint-dir DIR] [--sample N]\n"
      "                      [--set KEY=VALUE]... [-X KEY=VALUE]...\n"
      "Without --brokers: a local mock cluster, sample input, bounded, exactly once.\n",
      fmt != NULL ? stderr : stdout);
  return fmt != NULL ? 2 : 0;
}

static int parse_args(int argc, char **argv, options_t *o) {
  *o = (options_t){.events = 100000,
                   .in_topic = "raw.purchases",
                   .out_topic = "features.user_5min_spend",
                   .parallelism = 2,
                   .sample = 8};
  const ex_flag_t flags[] = {{"--produce", &o->produce, true}, {"--bounded", &o->bounded, true}};
  for (int i = 1; i < argc; i++) {
    int x = ex_extra_option(&o->extra, "kafka_features", true, argc, argv, &i);
    if (x < 0) return 2;
    if (x > 0) continue;
    const char *a = argv[i];
    const char *v = i + 1 < argc ? argv[i + 1] : NULL;
    char *end;
    if (strcmp(a, "--help") == 0) return usage(NULL, NULL), -1;
    if (ex_flag_option(flags, sizeof flags / sizeof flags[0], a)) continue;
    if (v == NULL) return usage("option %s needs a value (or is unknown)", a);
    i++;
    if (strcmp(a, "--brokers") == 0) {
      o->brokers = v;
    } else if (strcmp(a, "--input-topic") == 0) {
      o->in_topic = v;
    } else if (strcmp(a, "--output-topic") == 0) {
      o->out_topic = v;
    } else if (strcmp(a, "--checkpoint-dir") == 0) {
      o->checkpoint_dir = v;
    } else if (strcmp(a, "--events") == 0) {
      o->events = strtol(v, &end, 10);
      if (*end || o->events < 1 || o->events > 100000000)
        return usage("--events '%s' is not an integer in 1..100000000", v);
    } else if (strcmp(a, "--parallelism") == 0) {
      o->parallelism = (int)strtol(v, &end, 10);
      if (*end || o->parallelism < 1 || o->parallelism > 256)
        return usage("--parallelism '%s' is not an integer in 1..256", v);
    } else if (strcmp(a, "--sample") == 0) {
      o->sample = (int)strtol(v, &end, 10);
      if (*end || o->sample < 0) return usage("--sample '%s' is not a count", v);
    } else {
      return usage("unknown option '%s'", a);
    }
  }
  if (o->brokers == NULL) o->produce = o->bounded = true;
  return 0;
}

/* ---------------------------------------------------------------------------------- */
/* The job                                                                            */

typedef struct parse_buf {
  char user[64];
  double amount;
} parse_buf_t;

typedef struct job {
  parse_buf_t *bufs; /* one per subtask: the deserializer's output bytes */
  int n_bufs;
} job_t;

/* {"user":..,"amount":..,"ts":..} -> key user, value amount (double), timestamp ts. */
static int parse_purchase(fl_context_t *ctx, const fl_kafka_message_t *msg, fl_record_t *out,
                          void *opaque) {
  job_t *job = opaque;
  parse_buf_t *b = &job->bufs[fl_ctx_subtask(ctx)];
  json_error_t err;
  json_t *root = json_loadb(msg->value, msg->value_len, 0, &err);
  const char *user = json_string_value(json_object_get(root, "user"));
  json_t *amount = json_object_get(root, "amount"), *ts = json_object_get(root, "ts");
  int rc = 1;
  if (root == NULL) {
    rc = fl_ctx_fail(ctx, "malformed JSON: %s", err.text);
  } else if (user == NULL || strlen(user) >= sizeof(b->user) || !json_is_number(amount) ||
             !json_is_integer(ts)) {
    rc = fl_ctx_fail(ctx, "expected {\"user\": string, \"amount\": number, \"ts\": integer}");
  } else {
    snprintf(b->user, sizeof(b->user), "%s", user);
    b->amount = json_number_value(amount);
    *out = (fl_record_t){b->user, strlen(b->user), &b->amount, sizeof(b->amount),
                         (int64_t)json_integer_value(ts)};
  }
  json_decref(root);
  return rc;
}

typedef struct spend {
  double sum;
  int64_t count;
} spend_t;

static void spend_init(void *acc, void *opaque) {
  (void)opaque;
  *(spend_t *)acc = (spend_t){0, 0};
}

static int spend_add(fl_context_t *ctx, void *acc, const fl_record_t *in, void *opaque) {
  spend_t *s = acc;
  double v;
  (void)ctx;
  (void)opaque;
  memcpy(&v, in->value, sizeof v);
  s->sum += v;
  s->count++;
  return FL_OK;
}

static int spend_result(fl_context_t *ctx, const fl_window_t *w, const void *acc, void *opaque) {
  const spend_t *s = acc;
  size_t klen;
  const char *user = fl_ctx_key(ctx, &klen);
  char line[256];
  (void)opaque;
  int n = snprintf(line, sizeof line,
                   "{\"user\":\"%.*s\",\"window_start\":%" PRId64 ",\"window_end\":%" PRId64
                   ",\"spend\":%.2f,\"purchases\":%" PRId64 "}",
                   (int)klen, user, w->start, w->end, s->sum, s->count);
  return fl_emit(ctx, user, klen, line, (size_t)n, w->end - 1);
}

static int run_job(const options_t *o, const char *brokers, const char *ckpt_dir) {
  char err[512], interval[] = "200ms";
  fl_config_t *conf = fl_config_new();
  fl_env_t *env = NULL;
  char par[16];
  int rc = 1;
  job_t job = {calloc((size_t)o->parallelism, sizeof(parse_buf_t)), o->parallelism};
  snprintf(par, sizeof par, "%d", o->parallelism);
  if (!conf || !job.bufs || fl_config_set(conf, "parallelism", par, err, sizeof err) ||
      (ckpt_dir &&
       (fl_config_set(conf, "state.checkpoints.dir", ckpt_dir, err, sizeof err) ||
        fl_config_set(conf, "execution.checkpointing.interval", interval, err, sizeof err)))) {
    fprintf(stderr, "kafka_features: %s\n", conf && job.bufs ? err : "out of memory");
    goto out;
  }
  if (ex_extra_apply(&o->extra, "kafka_features", conf) != 0) goto out;
  if (fl_env_new(&env, conf, err, sizeof err)) {
    fprintf(stderr, "kafka_features: %s\n", err);
    goto out;
  }
  fl_watermark_strategy_t wm = {.version = FL_WATERMARK_STRATEGY_VERSION,
                                .kind = FL_WATERMARKS_BOUNDED,
                                .max_out_of_orderness_ms = 5000,
                                .idle_timeout_ms = 10000};
  fl_kafka_source_opts_t src = {.version = FL_KAFKA_SOURCE_OPTS_VERSION,
                                .brokers = brokers,
                                .topics = o->in_topic,
                                .group_id = "kafka_features",
                                .start = FL_KAFKA_START_COMMITTED,
                                .fallback = FL_KAFKA_START_EARLIEST,
                                .bounded = o->bounded,
                                .watermarks = &wm,
                                .deserialize = parse_purchase,
                                .deserialize_opaque = &job,
                                .on_error = FL_KAFKA_ON_ERROR_SKIP,
                                .props = ex_extra_props(&o->extra)};
  fl_aggregate_fn_t agg = {.version = FL_AGGREGATE_FN_VERSION,
                           .acc_size = sizeof(spend_t),
                           .init = spend_init,
                           .add = spend_add,
                           .result = spend_result};
  fl_kafka_sink_opts_t sink = {
      .version = FL_KAFKA_SINK_OPTS_VERSION,
      .brokers = brokers,
      .topic = o->out_topic,
      .guarantee = ckpt_dir ? FL_KAFKA_EXACTLY_ONCE : FL_KAFKA_AT_LEAST_ONCE,
      .transactional_id_prefix = "kafka_features",
      .props = ex_extra_props(&o->extra)};
  fl_stream_t *purchases = fl_source_kafka(env, "raw.purchases", &src);
  fl_windowed_stream_t *w =
      fl_window_tumbling(fl_stream_key_by(purchases, NULL, NULL), FL_EVENT_TIME, WINDOW_MS, 0);
  fl_stream_sink_kafka(fl_window_aggregate(w, "user_5min_spend", &agg, NULL),
                       "features.user_5min_spend", &sink);
  g_env = env;
  signal(SIGINT, on_signal);
  signal(SIGTERM, on_signal);
  int erc = fl_env_execute(env, "kafka_features");
  g_env = NULL;
  if (erc == FL_OK || erc == FL_ECANCELED) {
    char *m = fl_env_metrics_json(env);
    json_t *root = m ? json_loads(m, 0, NULL) : NULL;
    json_t *op = json_array_get(json_object_get(root, "operators"), 0);
    json_t *um = json_object_get(op, "metrics");
    printf("job %s: consumed %" JSON_INTEGER_FORMAT " purchases, skipped %" JSON_INTEGER_FORMAT
           " malformed, %" JSON_INTEGER_FORMAT " checkpoints\n",
           erc == FL_OK ? "finished" : "stopped",
           json_integer_value(json_object_get(um, "records-consumed")),
           json_integer_value(json_object_get(um, "deserialize-errors-skipped")),
           json_integer_value(json_object_get(json_object_get(root, "checkpoints"), "completed")));
    json_decref(root);
    fl_free(m);
    rc = 0;
  } else {
    fprintf(stderr, "kafka_features: %s\n", fl_env_error(env));
  }
out:
  fl_env_destroy(env);
  fl_config_destroy(conf);
  free(job.bufs);
  return rc;
}

/* ---------------------------------------------------------------------------------- */
/* Sample input and reading the features back                                          */

/* A client with its own settings kv, then the -X properties x. */
static rd_kafka_t *client(rd_kafka_type_t type, const char *brokers, const char *const *kv,
                          const char *const *x) {
  char err[512];
  rd_kafka_conf_t *c = rd_kafka_conf_new();
  rd_kafka_conf_set(c, "bootstrap.servers", brokers, NULL, 0);
  for (; kv && kv[0]; kv += 2) rd_kafka_conf_set(c, kv[0], kv[1], NULL, 0);
  for (; x && x[0]; x += 2) {
    /* librdkafka's message quotes the value, which may be a secret: name the key only. */
    if (rd_kafka_conf_set(c, x[0], x[1], err, sizeof err) != RD_KAFKA_CONF_OK) {
      fprintf(stderr, "kafka_features: librdkafka refused the -X property '%s'\n", x[0]);
      rd_kafka_conf_destroy(c);
      return NULL;
    }
  }
  rd_kafka_t *rk = rd_kafka_new(type, c, err, sizeof err);
  if (!rk) {
    fprintf(stderr, "kafka_features: %s\n", err);
    rd_kafka_conf_destroy(c);
  }
  return rk;
}

/* Produces o->events purchases of 1000 users over an hour of event time, slightly out
 * of order; returns their total spend in cents, or -1. */
static int64_t produce_sample(const options_t *o, const char *brokers) {
  static const char *const kv[] = {"linger.ms", "20", "enable.idempotence", "true", NULL};
  rd_kafka_t *p = client(RD_KAFKA_PRODUCER, brokers, kv, ex_extra_props(&o->extra));
  if (!p) return -1;
  uint64_t x = 88172645463325252ULL;
  int64_t cents = 0;
  for (long i = 0; i < o->events; i++) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    char user[16], line[128];
    int ul = snprintf(user, sizeof user, "u%d", (int)(x % 1000));
    int64_t c = 100 + (int64_t)((x >> 20) % 9900);
    int64_t ts = T0 + i * (3600000LL / o->events) - (int64_t)((x >> 40) % 3000);
    cents += c;
    int n = snprintf(line, sizeof line,
                     "{\"user\":\"%s\",\"amount\":%" PRId64 ".%02d,\"ts\":%" PRId64 "}", user,
                     c / 100, (int)(c % 100), ts);
    rd_kafka_resp_err_t e;
    while ((e = rd_kafka_producev(
                p, RD_KAFKA_V_TOPIC(o->in_topic), RD_KAFKA_V_KEY(user, (size_t)ul),
                RD_KAFKA_V_VALUE(line, (size_t)n), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                RD_KAFKA_V_END)) == RD_KAFKA_RESP_ERR__QUEUE_FULL)
      rd_kafka_poll(p, 10);
    if (e) {
      fprintf(stderr, "kafka_features: producing to %s: %s\n", o->in_topic, rd_kafka_err2str(e));
      rd_kafka_destroy(p);
      return -1;
    }
    rd_kafka_poll(p, 0);
  }
  rd_kafka_resp_err_t e = rd_kafka_flush(p, 60000);
  rd_kafka_destroy(p);
  if (e) {
    fprintf(stderr, "kafka_features: flushing the sample: %s\n", rd_kafka_err2str(e));
    return -1;
  }
  printf("produced %ld purchases to %s\n", o->events, o->in_topic);
  return cents;
}

/* Reads the output topic to its end as a read_committed consumer; prints a sample and
 * returns the total spend in cents, or -1. */
static int64_t read_features(const options_t *o, const char *brokers, long *n_out) {
  static const char *const kv[] = {"group.id",
                                   "kafka_features.reader",
                                   "isolation.level",
                                   "read_committed",
                                   "enable.partition.eof",
                                   "true",
                                   NULL};
  rd_kafka_t *c = client(RD_KAFKA_CONSUMER, brokers, kv, ex_extra_props(&o->extra));
  if (!c) return -1;
  rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(PARTITIONS);
  const struct rd_kafka_metadata *md = NULL;
  rd_kafka_topic_t *t = rd_kafka_topic_new(c, o->out_topic, NULL);
  int parts = PARTITIONS;
  if (rd_kafka_metadata(c, 0, t, &md, 10000) == RD_KAFKA_RESP_ERR_NO_ERROR && md->topic_cnt == 1)
    parts = md->topics[0].partition_cnt;
  if (md) rd_kafka_metadata_destroy(md);
  rd_kafka_topic_destroy(t);
  for (int i = 0; i < parts; i++)
    rd_kafka_topic_partition_list_add(l, o->out_topic, i)->offset = RD_KAFKA_OFFSET_BEGINNING;
  rd_kafka_assign(c, l);
  rd_kafka_topic_partition_list_destroy(l);
  int64_t cents = 0;
  int eofs = 0, shown = 0, shown_in[64] = {0};
  int per_part = parts > 0 ? (o->sample + parts - 1) / parts : o->sample;
  *n_out = 0;
  time_t deadline = time(NULL) + 60;
  while (eofs < parts && time(NULL) < deadline) {
    rd_kafka_message_t *m = rd_kafka_consumer_poll(c, 500);
    if (!m) continue;
    if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
      eofs++;
    } else if (m->err) {
      fprintf(stderr, "kafka_features: reading %s: %s\n", o->out_topic, rd_kafka_message_errstr(m));
    } else {
      json_t *f = json_loadb(m->payload, m->len, 0, NULL);
      cents += llround(json_number_value(json_object_get(f, "spend")) * 100);
      (*n_out)++;
      /* a sample spread over the partitions */
      int *mine = m->partition >= 0 && m->partition < 64 ? &shown_in[m->partition] : &shown;
      if (shown < o->sample && (mine == &shown || *mine < per_part)) {
        if (mine != &shown) (*mine)++;
        printf("  %s[%" PRId32 "] %.*s\n", o->out_topic, m->partition, (int)m->len,
               (const char *)m->payload);
        shown++;
      }
      json_decref(f);
    }
    rd_kafka_message_destroy(m);
  }
  rd_kafka_consumer_close(c);
  rd_kafka_destroy(c);
  return eofs < parts ? -1 : cents;
}

static int remove_one(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
  (void)st;
  (void)flag;
  (void)ftw;
  return remove(path);
}

int main(int argc, char **argv) {
  options_t o;
  int rc = parse_args(argc, argv, &o);
  if (rc) return rc < 0 ? 0 : rc;
  rd_kafka_t *mock_rk = NULL;
  rd_kafka_mock_cluster_t *mc = NULL;
  const char *brokers = o.brokers;
  char ckpt_tmp[] = "/tmp/kafka_features_ckpt_XXXXXX";
  const char *ckpt = o.checkpoint_dir;
  if (!brokers) {
    /* The embedded default: a mock cluster in this process, on loopback. */
    char err[256];
    rd_kafka_conf_t *c = rd_kafka_conf_new();
    rd_kafka_conf_set(c, "log_level", "3", NULL, 0);
    mock_rk = rd_kafka_new(RD_KAFKA_PRODUCER, c, err, sizeof err);
    mc = mock_rk ? rd_kafka_mock_cluster_new(mock_rk, 3) : NULL;
    if (!mc || rd_kafka_mock_topic_create(mc, o.in_topic, PARTITIONS, 1) ||
        rd_kafka_mock_topic_create(mc, o.out_topic, PARTITIONS, 1)) {
      fprintf(stderr, "kafka_features: cannot start the local mock cluster\n");
      return 1;
    }
    brokers = rd_kafka_mock_cluster_bootstraps(mc);
    printf("local mock Kafka cluster at %s (pass --brokers to use a real one)\n", brokers);
    if (!ckpt) {
      if (!mkdtemp(ckpt_tmp)) return perror("mkdtemp"), 1;
      ckpt = ckpt_tmp;
    }
  }
  int64_t in_cents = 0;
  if (o.produce && (in_cents = produce_sample(&o, brokers)) < 0) rc = 1;
  if (!rc) {
    printf("running %s -> keyBy(user) -> 5-minute windows -> %s (parallelism %d, %s)\n", o.in_topic,
           o.out_topic, o.parallelism,
           ckpt ? "exactly once, checkpoints every 200 ms" : "at least once");
    rc = run_job(&o, brokers, ckpt);
  }
  if (!rc && o.bounded) {
    long n = 0;
    printf("a sample of the features in %s:\n", o.out_topic);
    int64_t out_cents = read_features(&o, brokers, &n);
    if (out_cents < 0) {
      rc = 1;
    } else {
      printf("%ld features; their spend %.2f", n, (double)out_cents / 100);
      if (o.produce) {
        printf(" %s the purchases' %.2f\n", out_cents == in_cents ? "equals" : "DIFFERS FROM",
               (double)in_cents / 100);
        if (out_cents != in_cents) rc = 1;
      } else {
        printf("\n");
      }
    }
  }
  if (ckpt == ckpt_tmp && nftw(ckpt_tmp, remove_one, 16, FTW_DEPTH | FTW_PHYS) != 0)
    fprintf(stderr, "kafka_features: could not remove %s: %s\n", ckpt_tmp, strerror(errno));
  if (mc) rd_kafka_mock_cluster_destroy(mc);
  if (mock_rk) rd_kafka_destroy(mock_rk);
  return rc;
}
