/*
 * Reading a Kafka topic back, for the tests that check what a job wrote to one
 * (test_kafka_sink.c, test_feature_pipeline.c): every partition from the beginning to its
 * end, message by message, or into a list of copies (kafka_msgs_t). Include after
 * <cmocka.h>, "fl_test_util.h" and <librdkafka/rdkafka.h>.
 */
#ifndef FL_KAFKA_READ_UTIL_H
#define FL_KAFKA_READ_UTIL_H

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* How many partitions topic has, from rk's metadata. */
static inline int kafka_partitions(rd_kafka_t *rk, const char *topic) {
  const struct rd_kafka_metadata *md = NULL;
  rd_kafka_topic_t *t = rd_kafka_topic_new(rk, topic, NULL);
  assert_non_null(t);
  assert_int_equal(rd_kafka_metadata(rk, 0, t, &md, (int)(10000 * timeout_scale())), 0);
  int parts = md->topics[0].partition_cnt;
  rd_kafka_metadata_destroy(md);
  rd_kafka_topic_destroy(t);
  return parts;
}

/* Reads partitions 0 .. parts - 1 of topic on the brokers bs (parts <= 0: all it has) from
 * the beginning until each reported its end, calling each(m, arg) for every message in
 * offset order within its partition; fails the test on an error or after base_ms
 * (scaled). */
static inline void kafka_read_to_end(const char *bs, const char *topic, int parts, int64_t base_ms,
                                     void (*each)(const rd_kafka_message_t *m, void *arg),
                                     void *arg) {
  static const char *const conf_kv[] = {"group.id", "fl-test-read",       "enable.partition.eof",
                                        "true",     "enable.auto.commit", "false",
                                        NULL};
  char err[512];
  rd_kafka_conf_t *conf = rd_kafka_conf_new();
  assert_int_equal(rd_kafka_conf_set(conf, "bootstrap.servers", bs, err, sizeof err), 0);
  for (size_t i = 0; conf_kv[i]; i += 2)
    assert_int_equal(rd_kafka_conf_set(conf, conf_kv[i], conf_kv[i + 1], err, sizeof err), 0);
  rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err);
  if (!rk) fail_msg("consumer: %s", err);
  if (parts <= 0) parts = kafka_partitions(rk, topic);
  rd_kafka_topic_partition_list_t *tp = rd_kafka_topic_partition_list_new(parts);
  for (int p = 0; p < parts; p++)
    rd_kafka_topic_partition_list_add(tp, topic, p)->offset = RD_KAFKA_OFFSET_BEGINNING;
  assert_int_equal(rd_kafka_assign(rk, tp), 0);
  rd_kafka_topic_partition_list_destroy(tp);
  bool *ended = calloc((size_t)parts, sizeof *ended);
  assert_non_null(ended);
  int eofs = 0;
  int64_t deadline = deadline_in(base_ms);
  while (eofs < parts) {
    if (mono_ms() > deadline)
      fail_msg("topic %s: only %d of %d partitions read to the end in time", topic, eofs, parts);
    rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 200);
    if (!m) continue;
    if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
      if (m->partition >= 0 && m->partition < parts && !ended[m->partition]) {
        ended[m->partition] = true;
        eofs++;
      }
    } else if (m->err) {
      fail_msg("reading %s: %s", topic, rd_kafka_message_errstr(m));
    } else {
      each(m, arg);
    }
    rd_kafka_message_destroy(m);
  }
  free(ended);
  rd_kafka_consumer_close(rk);
  rd_kafka_destroy(rk);
}

/* A message read back: a copy of it and of the headers the tests look at. */
typedef struct kafka_msg {
  char topic[64];
  int32_t partition;
  int64_t offset, ts;
  char *key, *value; /* NUL-terminated copies; key NULL: none */
  size_t value_len;
  char txn[256];   /* header fl.txn, "" if none */
  char error[512]; /* header fl.error (a dead letter's reason), "" if none */
  char hidx[64];   /* header idx, "" if none */
  int has_nv;      /* header nv: 0 absent, 1 present without a value, 2 with one */
  /* where the record came from: headers source.partition and source.offset, or for a
   * dead letter fl.partition and fl.offset; -1 if none */
  int64_t src_partition, src_offset;
} kafka_msg_t;

typedef struct kafka_msgs {
  kafka_msg_t *m;
  size_t n, cap;
} kafka_msgs_t;

static inline void kafka_msgs_free(kafka_msgs_t *l) {
  for (size_t i = 0; i < l->n; i++) {
    free(l->m[i].key);
    free(l->m[i].value);
  }
  free(l->m);
  memset(l, 0, sizeof *l);
}

/* The last header name of h (may be NULL) as a string into out, "" if there is none. */
static inline void kafka_header_text(rd_kafka_headers_t *h, const char *name, char *out,
                                     size_t size) {
  const void *v;
  size_t n;
  out[0] = '\0';
  if (h && rd_kafka_header_get_last(h, name, &v, &n) == RD_KAFKA_RESP_ERR_NO_ERROR && v)
    snprintf(out, size, "%.*s", (int)n, (const char *)v);
}

static inline char *kafka_copy_text(const void *p, size_t n) {
  char *s = malloc(n + 1);
  assert_non_null(s);
  if (n) memcpy(s, p, n);
  s[n] = '\0';
  return s;
}

/* Adds a copy of message m to the kafka_msgs_t arg (kafka_read_to_end's each). */
static inline void kafka_msg_add(const rd_kafka_message_t *m, void *arg) {
  kafka_msgs_t *out = arg;
  if (out->n == out->cap) {
    out->cap = out->cap ? out->cap * 2 : 1024;
    out->m = realloc(out->m, out->cap * sizeof *out->m);
    assert_non_null(out->m);
  }
  kafka_msg_t *x = &out->m[out->n++];
  memset(x, 0, sizeof *x);
  snprintf(x->topic, sizeof x->topic, "%s", rd_kafka_topic_name(m->rkt));
  x->partition = m->partition;
  x->offset = m->offset;
  x->ts = rd_kafka_message_timestamp(m, NULL);
  x->key = m->key ? kafka_copy_text(m->key, m->key_len) : NULL;
  x->value = kafka_copy_text(m->payload, m->len);
  x->value_len = m->len;
  rd_kafka_headers_t *h = NULL;
  rd_kafka_message_headers(m, &h);
  char b[64];
  kafka_header_text(h, "fl.txn", x->txn, sizeof x->txn);
  kafka_header_text(h, "fl.error", x->error, sizeof x->error);
  kafka_header_text(h, "idx", x->hidx, sizeof x->hidx);
  const void *v;
  size_t vl;
  if (h && rd_kafka_header_get_last(h, "nv", &v, &vl) == RD_KAFKA_RESP_ERR_NO_ERROR)
    x->has_nv = v == NULL ? 1 : 2;
  kafka_header_text(h, "source.partition", b, sizeof b);
  x->src_partition = b[0] ? atoll(b) : -1;
  kafka_header_text(h, "source.offset", b, sizeof b);
  x->src_offset = b[0] ? atoll(b) : -1;
  if (x->error[0]) { /* a dead letter names where it came from */
    kafka_header_text(h, "fl.partition", b, sizeof b);
    if (b[0]) x->src_partition = atoll(b);
    kafka_header_text(h, "fl.offset", b, sizeof b);
    if (b[0]) x->src_offset = atoll(b);
  }
}

#endif
