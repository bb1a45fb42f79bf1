/*
 * The Kafka source's builder, fl_source_kafka() (kafka_source_int.h): every option is
 * checked and copied before the job runs, so that a bad one fails the build step with a
 * message that names it; librdkafka properties are checked against a throwaway
 * configuration.
 */
#define _GNU_SOURCE

#include <inttypes.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/kafka_common.h"
#include "io/kafka_source_int.h"
#include "runtime/connector.h"
#include "util/vec.h"

/* ---------------------------------------------------------------------------------- */
/* Builder                                                                            */

static void ks_destroy(void *opaque) {
  ks_conf_t *c = opaque;
  if (c == NULL) return;
  if (c->deser_destroy != NULL) c->deser_destroy(c->deser_opaque);
  free(c->name);
  free(c->brokers);
  free(c->group_id);
  free(c->dlq_topic);
  fl_kafka_props_free(c->props);
  for (size_t i = 0; i < c->n_topics; i++) free(c->topic_list[i]);
  free(c->topic_list);
  if (c->use_regex) regfree(&c->re);
  free(c);
}

/* Splits "a, b,c" into trimmed names. Returns 0, FL_EINVAL (msg set) or FL_ENOMEM. */
static int ks_split_topics(ks_conf_t *c, const char *topics, char *msg, size_t msg_size) {
  const char *s = topics;
  size_t cap = 0;
  while (1) {
    const char *e = strchr(s, ',');
    const char *a = s, *b = e != NULL ? e : s + strlen(s);
    while (a < b && (*a == ' ' || *a == '\t')) a++;
    while (b > a && (b[-1] == ' ' || b[-1] == '\t')) b--;
    if (a == b) {
      snprintf(msg, msg_size, "topics: '%s' has an empty topic name", topics);
      return FL_EINVAL;
    }
    if (FL_VEC_RESERVE(c->topic_list, cap, c->n_topics + 1)) return FL_ENOMEM;
    c->topic_list[c->n_topics] = strndup(a, (size_t)(b - a));
    if (c->topic_list[c->n_topics] == NULL) return FL_ENOMEM;
    c->n_topics++;
    if (e == NULL) break;
    s = e + 1;
  }
  return FL_OK;
}

static char *dup_or_null(const char *s, bool *oom) {
  char *d;
  if (s == NULL) return NULL;
  d = strdup(s);
  if (d == NULL) *oom = true;
  return d;
}

fl_stream_t *fl_source_kafka(fl_env_t *env, const char *name, const fl_kafka_source_opts_t *opts) {
  static const fl_source_fn_t fn = {
      .version = FL_SOURCE_FN_VERSION,
      .open = fl_ksrc_open,
      .run = fl_ksrc_run,
      .close = fl_ksrc_close,
      .destroy = ks_destroy,
      .snapshot = fl_ksrc_snapshot,
      .restore = fl_ksrc_restore,
      .checkpoint_complete = fl_ksrc_checkpoint_complete,
  };
  ks_conf_t *c = NULL;
  char msg[768];
  bool oom = false;
  int rc = FL_EINVAL;

  if (env == NULL) return NULL;
  if (name == NULL || name[0] == '\0') name = "kafka source";
  msg[0] = '\0';
  if (opts == NULL) {
    snprintf(msg, sizeof(msg), "opts is NULL");
    goto fail;
  }
  if (opts->version != FL_KAFKA_SOURCE_OPTS_VERSION) {
    snprintf(msg, sizeof(msg), "opts.version is %d, expected %d (FL_KAFKA_SOURCE_OPTS_VERSION)",
             opts->version, FL_KAFKA_SOURCE_OPTS_VERSION);
    goto fail;
  }
  if (opts->brokers == NULL || opts->brokers[0] == '\0') {
    snprintf(msg, sizeof(msg), "brokers (bootstrap.servers) is %s",
             opts->brokers == NULL ? "NULL" : "empty");
    goto fail;
  }
  if (opts->topics == NULL || opts->topics[0] == '\0') {
    snprintf(msg, sizeof(msg), "topics is %s", opts->topics == NULL ? "NULL" : "empty");
    goto fail;
  }
  if ((int)opts->start < FL_KAFKA_START_EARLIEST || (int)opts->start > FL_KAFKA_START_TIMESTAMP) {
    snprintf(msg, sizeof(msg), "start is %d, not an fl_kafka_start_t", (int)opts->start);
    goto fail;
  }
  if (opts->start == FL_KAFKA_START_COMMITTED && opts->fallback != FL_KAFKA_START_EARLIEST &&
      opts->fallback != FL_KAFKA_START_LATEST) {
    snprintf(msg, sizeof(msg),
             "fallback is %d: it must be FL_KAFKA_START_EARLIEST or "
             "FL_KAFKA_START_LATEST",
             (int)opts->fallback);
    goto fail;
  }
  if (opts->start == FL_KAFKA_START_TIMESTAMP && opts->start_timestamp_ms < 0) {
    snprintf(msg, sizeof(msg), "start_timestamp_ms is %" PRId64 ", negative",
             opts->start_timestamp_ms);
    goto fail;
  }
  if ((int)opts->on_error < FL_KAFKA_ON_ERROR_FAIL ||
      (int)opts->on_error > FL_KAFKA_ON_ERROR_DEAD_LETTER) {
    snprintf(msg, sizeof(msg), "on_error is %d, not an fl_kafka_error_policy_t",
             (int)opts->on_error);
    goto fail;
  }
  if (opts->on_error == FL_KAFKA_ON_ERROR_DEAD_LETTER &&
      (opts->dead_letter_topic == NULL || opts->dead_letter_topic[0] == '\0')) {
    snprintf(msg, sizeof(msg), "dead_letter_topic is required with FL_KAFKA_ON_ERROR_DEAD_LETTER");
    goto fail;
  }
  if (opts->timeout_ms < 0) {
    snprintf(msg, sizeof(msg), "timeout_ms is %d, negative", opts->timeout_ms);
    goto fail;
  }
  if (opts->watermarks != NULL) {
    const fl_watermark_strategy_t *w = opts->watermarks;
    if (w->version != FL_WATERMARK_STRATEGY_VERSION) {
      snprintf(msg, sizeof(msg), "watermarks.version is %d, expected %d", w->version,
               FL_WATERMARK_STRATEGY_VERSION);
      goto fail;
    }
    if ((int)w->kind < FL_WATERMARKS_NONE || (int)w->kind > FL_WATERMARKS_BOUNDED) {
      snprintf(msg, sizeof(msg), "watermarks.kind is %d, not an fl_watermark_kind_t", (int)w->kind);
      goto fail;
    }
    if (w->max_out_of_orderness_ms < 0 || w->idle_timeout_ms < 0) {
      snprintf(msg, sizeof(msg),
               "watermarks: max_out_of_orderness_ms and idle_timeout_ms "
               "must not be negative");
      goto fail;
    }
  }
  c = calloc(1, sizeof(*c));
  if (c == NULL) {
    oom = true;
    goto fail;
  }
  c->name = dup_or_null(name, &oom);
  c->brokers = dup_or_null(opts->brokers, &oom);
  c->group_id = dup_or_null(
      opts->group_id != NULL && opts->group_id[0] != '\0' ? opts->group_id : name, &oom);
  if (opts->on_error == FL_KAFKA_ON_ERROR_DEAD_LETTER)
    c->dlq_topic = dup_or_null(opts->dead_letter_topic, &oom);
  if (oom) goto fail;
  if (opts->topics[0] == '^') {
    int e = regcomp(&c->re, opts->topics, REG_EXTENDED | REG_NOSUB);
    if (e != 0) {
      char rerr[256];
      regerror(e, &c->re, rerr, sizeof(rerr));
      snprintf(msg, sizeof(msg), "topics: invalid regular expression '%s': %s", opts->topics, rerr);
      goto fail;
    }
    c->use_regex = true;
  } else {
    rc = ks_split_topics(c, opts->topics, msg, sizeof(msg));
    if (rc == FL_ENOMEM) oom = true;
    if (rc != FL_OK) goto fail;
  }
  rc = fl_kafka_props_copy(opts->props, &c->props, msg, sizeof(msg));
  if (rc == FL_OK) rc = fl_kafka_props_validate(c->props, msg, sizeof(msg));
  if (rc == FL_ENOMEM) oom = true;
  if (rc != FL_OK) goto fail;
  c->start = opts->start;
  c->fallback = opts->fallback;
  c->start_ts = opts->start_timestamp_ms;
  c->bounded = opts->bounded != 0;
  if (opts->watermarks != NULL) {
    c->has_wm = true;
    c->wm = *opts->watermarks;
  }
  c->deser = opts->deserialize;
  c->deser_opaque = opts->deserialize_opaque;
  c->on_error = opts->on_error;
  c->timeout_ms = opts->timeout_ms > 0 ? opts->timeout_ms : KS_DEFAULT_TIMEOUT_MS;
  /* The deserializer's opaque is ours from here on (destroyed with the source). */
  c->deser_destroy = opts->deserialize_destroy;
  /* The env owns c from here: fl_source() calls destroy even when it fails. */
  return fl_source(env, name, &fn, c, 1);
fail:
  ks_destroy(c);
  /* A builder call that keeps nothing destroys the opaque it was given at once. */
  if (opts != NULL && opts->deserialize_destroy != NULL)
    opts->deserialize_destroy(opts->deserialize_opaque);
  if (oom)
    fl_env_builder_fail(env, FL_ENOMEM, "%s: out of memory", name);
  else
    fl_env_builder_fail(env, FL_EINVAL, "%s: %s", name, msg);
  return NULL;
}