/*
 * Reading a Kafka topic back, for the tests that check what a job wrote to one
 * (test_kafka_sink.c, test_feature_pipeline.c): every partition from the beginning to its
 * end, message by message. Include after <cmocka.h>, "fl_test_util.h" and
 * <librdkafka/rdkafka.h>.
 */
#ifndef FL_KAFKA_READ_UTIL_H
#define FL_KAFKA_READ_UTIL_H

#include <stdbool.h>
#include <stdlib.h>

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

#endif
