/*
 * Whether the brokers a Kafka client needs answer, from librdkafka's statistics
 * (kafka_health.h).
 */
#include "io/kafka_health.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "io/kafka_common.h"
#include "runtime/connector.h"
#include "util/clock.h"

#define DEFAULT_INTERVAL "1000"
#define STALL_INTERVALS 5
#define REPEAT_INTERVALS 30

static bool props_name(char *const *props, const char *name) {
  for (size_t i = 0; props && props[i]; i += 2)
    if (strcmp(props[i], name) == 0) return true;
  return false;
}

static int64_t conf_int(rd_kafka_conf_t *conf, const char *name, int64_t dflt) {
  char v[64];
  size_t n = sizeof v;
  if (rd_kafka_conf_get(conf, name, v, &n) != RD_KAFKA_CONF_OK) return dflt;
  return strtoll(v, NULL, 10);
}

int fl_kafka_health_init(fl_kafka_health_t *h, rd_kafka_conf_t *conf, char *const *props,
                         bool consumer, char *err, size_t err_size) {
  memset(h, 0, sizeof *h);
  if (!props_name(props, "statistics.interval.ms") &&
      fl_kafka_conf_set(conf, "statistics.interval.ms", DEFAULT_INTERVAL, err, err_size))
    return FL_EINVAL;
  h->interval_ms = conf_int(conf, "statistics.interval.ms", 0);
  int64_t fetch_wait = consumer ? conf_int(conf, "fetch.wait.max.ms", 500) : 0;
  h->stall_ms = STALL_INTERVALS * h->interval_ms;
  if (fetch_wait + 2 * h->interval_ms > h->stall_ms) h->stall_ms = fetch_wait + 2 * h->interval_ms;
  return FL_OK;
}

void fl_kafka_health_error(fl_kafka_health_t *h, const char *text) {
  snprintf(h->last_error, sizeof h->last_error, "%s", text ? text : "");
}

static int64_t jint(const json_t *o, const char *k) {
  return (int64_t)json_integer_value(json_object_get(o, k));
}

static const char *jstr(const json_t *o, const char *k) {
  const char *s = json_string_value(json_object_get(o, k));
  return s ? s : "";
}

/* Appends "name" to a comma-separated list. */
static void add_name(char *list, size_t n, const char *name) {
  size_t len = strlen(list);
  if (len < n) snprintf(list + len, n - len, "%s%s", len ? ", " : "", name);
}

void fl_kafka_health_stats(fl_kafka_health_t *h, const fl_context_t *ctx, const char *who,
                           const char *json, size_t len) {
  if (!h->interval_ms) return;
  json_t *root = json_loadb(json, len, 0, NULL);
  json_t *brokers = json_object_get(root, "brokers");
  if (!json_is_object(brokers)) {
    json_decref(root);
    return;
  }
  int64_t now = fl_mono_ms(), start = now;
  const char *key;
  json_t *b;
  bool learned = false;
  json_object_foreach(brokers, key, b) {
    const char *src = jstr(b, "source");
    if (jint(b, "nodeid") >= 0 && strcmp(src, "internal") && strcmp(src, "logical")) learned = true;
  }
  char names[600] = "", how[200] = "";
  int bad = 0;
  json_object_foreach(brokers, key, b) {
    const char *src = jstr(b, "source"), *state = jstr(b, "state");
    if (!strcmp(src, "internal") || !strcmp(src, "logical")) continue;
    if (jint(b, "nodeid") < 0 && learned) continue; /* a bootstrap address, known better */
    int64_t waiting = jint(b, "waitresp_cnt"), queued = jint(b, "outbuf_cnt");
    bool needed = !learned || waiting > 0 || queued > 0 ||
                  json_object_size(json_object_get(b, "toppars")) > 0;
    int64_t began = 0;
    if (!strcmp(state, "UP")) {
      int64_t idle = jint(b, "rxidle");
      if (idle < 0) idle = jint(b, "stateage"); /* nothing received on this connection yet */
      idle /= 1000;
      if (waiting > 0 && idle > h->stall_ms) {
        began = now - idle;
        snprintf(how, sizeof how, "connected, %" PRId64 " request%s unanswered", waiting,
                 waiting > 1 ? "s" : "");
      }
    } else if (strcmp(state, "INIT") != 0 && needed) {
      began = h->since_ms ? h->since_ms : now;
      snprintf(how, sizeof how, "not connected: %s", state);
    }
    if (!began) continue;
    bad++;
    add_name(names, sizeof names, jstr(b, "nodename"));
    if (began < start) start = began;
  }
  if (bad) {
    if (!h->since_ms || start < h->since_ms) h->since_ms = start;
    int64_t silent = now - h->since_ms;
    int64_t held = jint(root, "msg_cnt");
    if (silent >= h->stall_ms &&
        (!h->logged_ms || now - h->logged_ms >= REPEAT_INTERVALS * h->interval_ms)) {
      char held_s[96] = "";
      if (held > 0)
        snprintf(held_s, sizeof held_s, "; %" PRId64 " message%s waiting for delivery", held,
                 held > 1 ? "s" : "");
      fl_ctx_log(ctx, FL_LOG_WARN,
                 "%s: %sno answer from broker%s %s for %.1f s (%s%s%s)%s; the client keeps "
                 "trying",
                 who, h->logged_ms ? "still " : "", bad > 1 ? "s" : "", names,
                 (double)silent / 1000.0, how, h->last_error[0] ? "; last error: " : "",
                 h->last_error, held_s);
      h->logged_ms = now;
    }
  } else if (h->since_ms) {
    if (h->logged_ms)
      fl_ctx_log(ctx, FL_LOG_INFO, "%s: the brokers answer again, after %.1f s", who,
                 (double)(now - h->since_ms) / 1000.0);
    h->since_ms = 0;
    h->logged_ms = 0;
    h->last_error[0] = 0;
  }
  json_decref(root);
}
