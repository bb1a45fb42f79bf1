/*
 * What the Kafka source's consumer delivers (kafka_source_int.h): data messages through
 * the deserializer and the error policy (fail, skip, dead letter), error events (fatal
 * ones fail the job), and then event time: per-partition watermarks, idleness, and the
 * lag and current-offset gauges.
 */
#define _GNU_SOURCE

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <librdkafka/rdkafka.h>

#include "io/kafka_source_int.h"
#include "runtime/connector.h"
#include "util/clock.h"
#include "util/sat.h"

/* ---------------------------------------------------------------------------------- */
/* Records                                                                            */

static bool ks_err_is_fatal(rd_kafka_resp_err_t e) {
  switch (e) {
  case RD_KAFKA_RESP_ERR__FATAL:
  case RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED:
  case RD_KAFKA_RESP_ERR_GROUP_AUTHORIZATION_FAILED:
  case RD_KAFKA_RESP_ERR_CLUSTER_AUTHORIZATION_FAILED:
  case RD_KAFKA_RESP_ERR_TRANSACTIONAL_ID_AUTHORIZATION_FAILED:
  case RD_KAFKA_RESP_ERR_SASL_AUTHENTICATION_FAILED:
  case RD_KAFKA_RESP_ERR__AUTHENTICATION:
  case RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC:
  case RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION:
  case RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART:
  case RD_KAFKA_RESP_ERR__AUTO_OFFSET_RESET:
  case RD_KAFKA_RESP_ERR__SSL:
  case RD_KAFKA_RESP_ERR__INVALID_ARG: return true;
  default: return false;
  }
}

int fl_ksrc_fail_fatal(fl_context_t *ctx, ks_inst_t *in) {
  char fatal[512];
  rd_kafka_resp_err_t orig = rd_kafka_fatal_error(in->rk, fatal, sizeof(fatal));
  return fl_ctx_fail(ctx, "fatal Kafka consumer error (brokers %s): %s: %s", in->conf->brokers,
                     rd_kafka_err2name(orig), fatal);
}

int fl_ksrc_on_error(fl_context_t *ctx, ks_inst_t *in, const rd_kafka_message_t *m) {
  const char *topic = m->rkt != NULL ? rd_kafka_topic_name(m->rkt) : NULL;
  if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
    ks_part_t *p = topic ? fl_ksrc_find(in, topic, m->partition) : NULL;
    /* The last offsets before the end may be transaction markers, never delivered. */
    if (p != NULL && in->conf->bounded && m->offset >= p->end) p->done = true;
    if (p != NULL && m->offset > p->high) p->high = m->offset;
    return FL_OK;
  }
  if (!ks_err_is_fatal(m->err)) { /* librdkafka retries; the health log quotes it */
    fl_kafka_health_error(&in->health, rd_kafka_message_errstr(m));
    return FL_OK;
  }
  if (m->err == RD_KAFKA_RESP_ERR__FATAL) return fl_ksrc_fail_fatal(ctx, in);
  if (topic != NULL && m->partition >= 0)
    return fl_ctx_fail(ctx, "topic %s partition %" PRId32 ": %s (%s)", topic, m->partition,
                       rd_kafka_message_errstr(m), rd_kafka_err2name(m->err));
  if (topic != NULL)
    return fl_ctx_fail(ctx, "topic %s: %s (%s)", topic, rd_kafka_message_errstr(m),
                       rd_kafka_err2name(m->err));
  return fl_ctx_fail(ctx, "Kafka consumer error (brokers %s): %s (%s)", in->conf->brokers,
                     rd_kafka_message_errstr(m), rd_kafka_err2name(m->err));
}

/* The message that fl_ctx_fail() recorded for the current call, taken away (the
 * caller frees it), or NULL. */
static char *ks_take_failure(fl_context_t *ctx) {
  char *msg = fl_ctx_take_failure(ctx);
  return msg;
}

static int ks_dead_letter(fl_context_t *ctx, ks_inst_t *in, const rd_kafka_message_t *m,
                          const fl_kafka_message_t *km, const char *why) {
  rd_kafka_headers_t *h = rd_kafka_headers_new(km->n_headers + 4);
  char part[16], off[24];
  rd_kafka_resp_err_t err;
  int64_t deadline = fl_mono_ms() + in->conf->timeout_ms;

  if (h == NULL) return FL_ENOMEM;
  for (size_t i = 0; i < km->n_headers; i++)
    rd_kafka_header_add(h, km->headers[i].name, -1, km->headers[i].value,
                        km->headers[i].value ? (ssize_t)km->headers[i].value_len : 0);
  snprintf(part, sizeof(part), "%" PRId32, km->partition);
  snprintf(off, sizeof(off), "%" PRId64, km->offset);
  rd_kafka_header_add(h, "fl.error", -1, why, -1);
  rd_kafka_header_add(h, "fl.topic", -1, km->topic, -1);
  rd_kafka_header_add(h, "fl.partition", -1, part, -1);
  rd_kafka_header_add(h, "fl.offset", -1, off, -1);
  for (;;) {
    err = rd_kafka_producev(
        in->dlq, RD_KAFKA_V_TOPIC(in->conf->dlq_topic), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
        RD_KAFKA_V_KEY(m->key, m->key_len), RD_KAFKA_V_VALUE(m->payload, m->len),
        RD_KAFKA_V_TIMESTAMP(km->timestamp != FL_TS_NONE ? km->timestamp : 0),
        RD_KAFKA_V_HEADERS(h), RD_KAFKA_V_END);
    if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL || fl_mono_ms() >= deadline) break;
    rd_kafka_poll(in->dlq, 10); /* local queue full: wait for deliveries */
  }
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    rd_kafka_headers_destroy(h);
    return fl_ctx_fail(ctx, "cannot produce to the dead-letter topic %s: %s", in->conf->dlq_topic,
                       rd_kafka_err2str(err));
  }
  fl_ctx_counter_add(ctx, "dead-lettered", 1);
  return FL_OK;
}

static int ks_collect_headers(ks_inst_t *in, const rd_kafka_message_t *m, size_t *n) {
  rd_kafka_headers_t *h = NULL;
  size_t cnt;
  *n = 0;
  if (rd_kafka_message_headers(m, &h) != RD_KAFKA_RESP_ERR_NO_ERROR || h == NULL) return FL_OK;
  cnt = rd_kafka_header_cnt(h);
  if (cnt > in->hdrs_cap) {
    fl_kafka_header_t *nh = realloc(in->hdrs, cnt * sizeof(*nh));
    if (nh == NULL) return FL_ENOMEM;
    in->hdrs = nh;
    in->hdrs_cap = cnt;
  }
  for (size_t i = 0; i < cnt; i++) {
    const char *name;
    const void *val;
    size_t vlen;
    if (rd_kafka_header_get_all(h, i, &name, &val, &vlen) != RD_KAFKA_RESP_ERR_NO_ERROR) break;
    in->hdrs[i].name = name;
    in->hdrs[i].value = val;
    in->hdrs[i].value_len = vlen;
    *n = i + 1;
  }
  return FL_OK;
}

int fl_ksrc_on_message(fl_context_t *ctx, ks_inst_t *in, const rd_kafka_message_t *m) {
  const ks_conf_t *c = in->conf;
  const char *topic = rd_kafka_topic_name(m->rkt);
  ks_part_t *p = fl_ksrc_find(in, topic, m->partition);
  rd_kafka_timestamp_type_t tst;
  fl_kafka_message_t km;
  fl_record_t rec;
  int64_t ts;
  int rc;

  if (p == NULL || m->offset < p->next)
    return FL_OK; /* not ours, or re-delivered after a re-assignment */
  if (c->bounded && m->offset >= p->end) {
    p->done = true; /* produced after the start of a bounded read */
    return FL_OK;
  }
  p->next = m->offset + 1;
  p->last_active = in->now;
  if (c->bounded && p->next >= p->end) p->done = true;
  ts = rd_kafka_message_timestamp(m, &tst);
  if (tst == RD_KAFKA_TIMESTAMP_NOT_AVAILABLE || ts < 0) ts = FL_TS_NONE;
  memset(&km, 0, sizeof(km));
  km.topic = topic;
  km.partition = m->partition;
  km.offset = m->offset;
  km.timestamp = ts;
  km.key = m->key;
  km.key_len = m->key_len;
  km.value = m->payload;
  km.value_len = m->len;
  rc = ks_collect_headers(in, m, &km.n_headers);
  if (rc != FL_OK) return rc;
  km.headers = in->hdrs;
  if (c->deser != NULL) {
    memset(&rec, 0, sizeof(rec));
    rec.timestamp = ts;
    rc = c->deser(ctx, &km, &rec, c->deser_opaque);
  } else {
    rec.key = m->key;
    rec.key_len = m->key != NULL ? m->key_len : 0;
    rec.value = m->payload;
    rec.value_len = m->payload != NULL ? m->len : 0;
    rec.timestamp = ts;
    rc = 1;
  }
  /* The event time is part of reading the message: a timestamp function that fails, or
   * that gives INT64_MIN (the library's "no timestamp", never an event time), makes the
   * message a bad one for the error policy, as a failed deserialization does. */
  if (rc == 1 && c->has_wm && c->wm.timestamp != NULL) {
    int64_t t = FL_TS_NONE;
    rc = c->wm.timestamp(ctx, &rec, &t, c->wm.opaque);
    if (rc >= 0 && t == FL_TS_NONE)
      rc = fl_ctx_fail(ctx, "the timestamp function gave %" PRId64 ", which is not an event time",
                       t);
    if (rc >= 0) {
      rec.timestamp = t;
      rc = 1;
    }
  }
  if (rc < 0) {
    char *why = ks_take_failure(ctx);
    const char *text = why != NULL ? why : fl_strerror(rc);
    switch (c->on_error) {
    case FL_KAFKA_ON_ERROR_SKIP:
      fl_ctx_counter_add(ctx, "deserialize-errors-skipped", 1);
      rc = FL_OK;
      break;
    case FL_KAFKA_ON_ERROR_DEAD_LETTER: rc = ks_dead_letter(ctx, in, m, &km, text); break;
    default:
      fl_ctx_fail(ctx,
                  "cannot deserialize the message at topic %s partition %" PRId32 " offset %" PRId64
                  ": %s",
                  topic, m->partition, m->offset, text);
      break; /* rc: the deserializer's error */
    }
    free(why);
    return rc;
  }
  if (rc == 0) return FL_OK;
  if (c->has_wm && rec.timestamp != FL_TS_NONE &&
      (p->max_ts == FL_TS_NONE || rec.timestamp > p->max_ts))
    p->max_ts = rec.timestamp;
  p->idle = false;
  if (in->idle_out) {
    fl_ctx_mark_idle(ctx, 0);
    in->idle_out = false;
  }
  return fl_emit_record(ctx, &rec);
}

/* ---------------------------------------------------------------------------------- */
/* Watermarks, idleness, lag                                                          */

/* The subtask's watermark: the minimum over partitions that are neither idle nor done;
 * one of those without a timestamp yet holds it back (FL_TS_NONE). *active tells
 * whether any partition counts. */
static int64_t ks_watermark(const ks_inst_t *in, bool *active) {
  const fl_watermark_strategy_t *s = &in->conf->wm;
  int64_t wm = INT64_MAX;
  *active = false;
  for (size_t i = 0; i < in->n_parts; i++) {
    const ks_part_t *p = &in->parts[i];
    int64_t pw;
    if (p->idle || p->done) continue;
    *active = true;
    if (p->max_ts == FL_TS_NONE) return FL_TS_NONE;
    /* saturating: a time near INT64_MIN holds the watermark at the bottom, not wrapped */
    pw = fl_sat_sub(p->max_ts, 1);
    if (s->kind == FL_WATERMARKS_BOUNDED) pw = fl_sat_sub(pw, s->max_out_of_orderness_ms);
    if (pw == FL_TS_NONE) return FL_TS_NONE;
    if (pw < wm) wm = pw;
  }
  return *active ? wm : FL_TS_NONE;
}

int fl_ksrc_event_time(fl_context_t *ctx, ks_inst_t *in) {
  const fl_watermark_strategy_t *s = &in->conf->wm;
  bool active;
  int64_t wm;
  int rc;

  if (!in->conf->has_wm || s->kind == FL_WATERMARKS_NONE || in->n_parts == 0) return FL_OK;
  /* Idleness comes in two steps with a watermark before each: first partitions that
   * never had a message stop holding event time back, so that the data of a partition
   * that goes quiet at the same moment still makes its watermark before it too is
   * excluded; the last pass tells whether anything is active at all. */
  for (int pass = 0; pass < 3; pass++) {
    wm = ks_watermark(in, &active);
    if (active && wm != FL_TS_NONE) {
      rc = fl_ctx_emit_watermark(ctx, wm);
      if (rc != FL_OK) return rc;
      in->idle_out = false;
    }
    if (pass == 2 || s->idle_timeout_ms <= 0) break;
    int64_t now = fl_ctx_processing_time(ctx);
    for (size_t i = 0; i < in->n_parts; i++) {
      ks_part_t *p = &in->parts[i];
      bool with_data = p->max_ts != FL_TS_NONE;
      if (!p->idle && with_data == (pass == 1) && now - p->last_active >= s->idle_timeout_ms)
        p->idle = true;
    }
  }
  /* Nothing active: idle downstream (a bounded read whose partitions are all done ends
   * instead). */
  if (!active && !in->idle_out && !(in->conf->bounded && fl_ksrc_all_done(in))) {
    rc = fl_ctx_mark_idle(ctx, 1);
    if (rc != FL_OK) return rc;
    in->idle_out = true;
  }
  return FL_OK;
}

void fl_ksrc_update_lag(fl_context_t *ctx, ks_inst_t *in) {
  int64_t now = fl_mono_ms();
  int64_t max = 0;
  if (in->last_lag_ms != 0 && now - in->last_lag_ms < KS_LAG_EVERY_MS) return;
  in->last_lag_ms = now;
  for (size_t i = 0; i < in->n_parts; i++) {
    ks_part_t *p = &in->parts[i];
    int64_t lo = -1, hi = -1, lag;
    if (rd_kafka_get_watermark_offsets(in->rk, p->topic, p->partition, &lo, &hi) ==
            RD_KAFKA_RESP_ERR_NO_ERROR &&
        hi >= 0 && hi > p->high)
      p->high = hi;
    if (p->high < 0) continue;
    lag = p->high > p->next ? p->high - p->next : 0;
    if (lag > max) max = lag;
    if (p->lag_name[0] != '\0') fl_ctx_gauge_set(ctx, p->lag_name, lag);
  }
  fl_ctx_gauge_set(ctx, "records-lag-max", max);
}

void fl_ksrc_show_offsets(fl_context_t *ctx, ks_inst_t *in) {
  for (size_t i = 0; i < in->n_parts; i++) {
    ks_part_t *p = &in->parts[i];
    if (p->next == p->shown_next) continue;
    p->shown_next = p->next;
    if (p->cur_name[0] != '\0') fl_ctx_gauge_set(ctx, p->cur_name, p->next);
  }
}