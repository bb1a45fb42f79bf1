/*
 * Helpers shared by the Kafka source and sink: property pairs and secret hiding.
 */
#include "io/kafka_common.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "flink.h"

static bool ends_with(const char *s, const char *suffix) {
  size_t n = strlen(s), m = strlen(suffix);
  return n >= m && strcmp(s + n - m, suffix) == 0;
}

static bool contains_ci(const char *s, const char *word) {
  size_t m = strlen(word);
  for (; *s; s++) {
    size_t i = 0;
    while (i < m && s[i] && (s[i] | 0x20) == word[i]) i++;
    if (i == m) return true;
  }
  return false;
}

bool fl_kafka_prop_is_secret(const char *name) {
  if (name == NULL) return false;
  if (contains_ci(name, "password") || contains_ci(name, "secret") || contains_ci(name, "token"))
    return true;
  return contains_ci(name, "key") && !ends_with(name, ".location");
}

void fl_kafka_props_free(char **props) {
  if (props == NULL) return;
  for (char **p = props; *p != NULL; p++) free(*p);
  free(props);
}

int fl_kafka_props_copy(const char *const *props, char ***out, char *err, size_t err_size) {
  size_t n = 0;
  char **copy = NULL;
  int rc = FL_OK;

  *out = NULL;
  if (props != NULL) {
    while (props[n] != NULL) {
      if (props[n][0] == '\0') {
        snprintf(err, err_size, "props: the name of pair %zu is empty", n / 2 + 1);
        return FL_EINVAL;
      }
      if (props[n + 1] == NULL) {
        snprintf(err, err_size, "props: property '%s' has no value (NULL)", props[n]);
        return FL_EINVAL;
      }
      n += 2;
    }
  }
  copy = calloc(n + 1, sizeof(*copy));
  if (copy == NULL) {
    rc = FL_ENOMEM;
    goto done;
  }
  for (size_t i = 0; i < n; i++) {
    copy[i] = strdup(props[i]);
    if (copy[i] == NULL) {
      rc = FL_ENOMEM;
      goto done;
    }
  }
  *out = copy;
  copy = NULL;
done:
  if (rc == FL_ENOMEM) snprintf(err, err_size, "props: out of memory");
  fl_kafka_props_free(copy);
  return rc;
}

int fl_kafka_conf_set(rd_kafka_conf_t *conf, const char *name, const char *value, char *err,
                      size_t err_size) {
  char rderr[512];
  rd_kafka_conf_res_t res = rd_kafka_conf_set(conf, name, value, rderr, sizeof(rderr));
  if (res == RD_KAFKA_CONF_OK) return FL_OK;
  if (res == RD_KAFKA_CONF_UNKNOWN)
    snprintf(err, err_size, "unknown librdkafka property '%s'", name);
  else if (fl_kafka_prop_is_secret(name))
    snprintf(err, err_size, "invalid value for librdkafka property '%s' (value hidden)", name);
  else
    snprintf(err, err_size, "invalid value for librdkafka property '%s': %s", name, rderr);
  return FL_EINVAL;
}

int fl_kafka_conf_apply(rd_kafka_conf_t *conf, char *const *props, char *err, size_t err_size) {
  for (size_t i = 0; props != NULL && props[i] != NULL; i += 2) {
    int rc = fl_kafka_conf_set(conf, props[i], props[i + 1], err, err_size);
    if (rc != FL_OK) return rc;
  }
  return FL_OK;
}

/* librdkafka's producer-only properties (scope P in its CONFIGURATION.md, 2.0), global
 * and topic ones: a consumer warns about each (CONFWARN) and ignores it. */
static const char *const producer_only[] = {"transactional.id",
                                            "transaction.timeout.ms",
                                            "enable.idempotence",
                                            "enable.gapless.guarantee",
                                            "queue.buffering.max.messages",
                                            "queue.buffering.max.kbytes",
                                            "queue.buffering.max.ms",
                                            "linger.ms",
                                            "message.send.max.retries",
                                            "retries",
                                            "retry.backoff.ms",
                                            "queue.buffering.backpressure.threshold",
                                            "compression.codec",
                                            "compression.type",
                                            "compression.level",
                                            "batch.num.messages",
                                            "batch.size",
                                            "delivery.report.only.error",
                                            "sticky.partitioning.linger.ms",
                                            "request.required.acks",
                                            "acks",
                                            "request.timeout.ms",
                                            "message.timeout.ms",
                                            "delivery.timeout.ms",
                                            "queuing.strategy",
                                            "produce.offset.report",
                                            "partitioner"};

int fl_kafka_conf_apply_consumer(rd_kafka_conf_t *conf, char *const *props, char *err,
                                 size_t err_size) {
  for (size_t i = 0; props != NULL && props[i] != NULL; i += 2) {
    bool skip = false;
    for (size_t k = 0; k < sizeof producer_only / sizeof *producer_only && !skip; k++)
      skip = strcmp(props[i], producer_only[k]) == 0;
    if (skip) continue;
    int rc = fl_kafka_conf_set(conf, props[i], props[i + 1], err, err_size);
    if (rc != FL_OK) return rc;
  }
  return FL_OK;
}

int fl_kafka_props_validate(char *const *props, char *err, size_t err_size) {
  rd_kafka_conf_t *conf = rd_kafka_conf_new();
  int rc;
  if (conf == NULL) {
    snprintf(err, err_size, "props: out of memory");
    return FL_ENOMEM;
  }
  rc = fl_kafka_conf_apply(conf, props, err, err_size);
  rd_kafka_conf_destroy(conf);
  return rc;
}
