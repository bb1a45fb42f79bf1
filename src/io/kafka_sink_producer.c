/*
 * The Kafka sink's producer (kafka_sink_int.h): creating it, producing with
 * back-pressure, delivery reports (which fill in the broker's partition and offset of
 * buffered records), flushing, and transactions with their logged two-step commit.
 */
#define _GNU_SOURCE
#include <inttypes.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <librdkafka/rdkafka.h>

#include "io/kafka_common.h"
#include "io/kafka_sink.h"
#include "io/kafka_sink_int.h"
#include "runtime/connector.h"
#include "util/clock.h"

/* ---------------------------------------------------------------------------------- */
/* Kill hook (tests)                                                                    */

static _Atomic(void (*)(const char *, void *)) g_hook;
static _Atomic(void *) g_hook_arg;

void fl_kafka_sink_set_kill_hook(void (*hook)(const char *point, void *arg), void *arg) {
  atomic_store(&g_hook_arg, arg);
  atomic_store(&g_hook, hook);
}

void fl_ksink_kill_point(const char *point) {
  void (*h)(const char *, void *) = atomic_load(&g_hook);
  if (h) h(point, atomic_load(&g_hook_arg));
}

int fl_ksink_fail(fl_context_t *ctx, kinst_t *in, const char *fmt, ...) {
  char msg[1500];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  return fl_ctx_fail(ctx, "kafka sink '%s': %s", in->cfg->name, msg);
}

static void dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque) {
  (void)rk;
  kinst_t *in = opaque;
  if (m->err) {
    if (!in->failed) {
      in->failed = true;
      snprintf(in->err, sizeof in->err, "delivery to topic %s partition %" PRId32 " failed: %s",
               rd_kafka_topic_name(m->rkt), m->partition, rd_kafka_err2str(m->err));
    }
    return;
  }
  uintptr_t k = (uintptr_t)m->_private;
  txbuf_t *b = in->dr_target;
  if (!k || !b || k - 1 >= b->n) return;
  uint8_t *e = b->data + b->idx[k - 1];
  int32_t part = m->partition;
  int64_t off = m->offset;
  memcpy(e + FL_KSINK_ENT_OFF_PART, &part, 4);
  memcpy(e + FL_KSINK_ENT_OFF_OFFSET, &off, 8);
}

static void error_cb(rd_kafka_t *rk, int err, const char *reason, void *opaque) {
  kinst_t *in = opaque;
  if (err != RD_KAFKA_RESP_ERR__FATAL) { /* transient: librdkafka retries */
    fl_kafka_health_error(&in->health, reason);
    return;
  }
  char buf[512];
  rd_kafka_fatal_error(rk, buf, sizeof buf);
  in->fatal = true;
  if (!in->failed) {
    in->failed = true;
    snprintf(in->err, sizeof in->err, "fatal producer error (topic %s): %s",
             in->cfg->topic ? in->cfg->topic : "(per message)", buf[0] ? buf : reason);
  }
}

static int stats_cb(rd_kafka_t *rk, char *json, size_t len, void *opaque) {
  (void)rk;
  kinst_t *in = opaque;
  char who[300];
  snprintf(who, sizeof who, "kafka sink '%s'", in->cfg->name);
  fl_kafka_health_stats(&in->health, in->ctx, who, json, len);
  return 0; /* librdkafka frees json */
}

/* Records a failure seen on the background thread, and fails the job with it. */
static void bg_fail(kinst_t *in, const char *what) {
  bool first = false;
  pthread_mutex_lock(&in->mu);
  if (!in->bg_failed && !in->closing) {
    in->bg_failed = first = true;
    snprintf(in->bg_err, sizeof in->bg_err, "%s", what);
  }
  pthread_mutex_unlock(&in->mu);
  if (first) fl_ctx_fail_async(in->ctx, FL_EUSER, "kafka sink '%s': %s", in->cfg->name, what);
}

/* "delivery to topic T [partition P] failed: <error>[ (within timeout_ms)]". */
static void describe_failure(const kinst_t *in, const rd_kafka_message_t *m, char *buf, size_t n) {
  char part[32] = "";
  if (m->partition >= 0) snprintf(part, sizeof part, " partition %" PRId32, m->partition);
  int len = snprintf(buf, n, "delivery to topic %s%s failed: %s",
                     m->rkt ? rd_kafka_topic_name(m->rkt) : "?", part, rd_kafka_err2str(m->err));
  if (m->err == RD_KAFKA_RESP_ERR__MSG_TIMED_OUT && len > 0 && (size_t)len < n)
    snprintf(buf + len, n - (size_t)len, " (not delivered within timeout_ms, %d ms)",
             in->cfg->timeout_ms);
}

/* At least once and no guarantee: everything the producer tells, on librdkafka's
 * background thread (see kinst_t). */
static void bg_event(rd_kafka_t *rk, rd_kafka_event_t *ev, void *opaque) {
  kinst_t *in = opaque;
  char what[1024] = "";
  switch (rd_kafka_event_type(ev)) {
  case RD_KAFKA_EVENT_DR: {
    const rd_kafka_message_t *m;
    uint64_t n = 0, bad = 0;
    while ((m = rd_kafka_event_message_next(ev))) {
      n++;
      if (m->err && !bad++) describe_failure(in, m, what, sizeof what);
    }
    pthread_mutex_lock(&in->mu);
    in->reported += n;
    in->lost += bad;
    pthread_cond_broadcast(&in->cv);
    pthread_mutex_unlock(&in->mu);
    if (bad) bg_fail(in, what);
    break;
  }
  case RD_KAFKA_EVENT_ERROR:
    if (rd_kafka_event_error_is_fatal(ev)) {
      char buf[512];
      rd_kafka_fatal_error(rk, buf, sizeof buf);
      snprintf(what, sizeof what, "fatal producer error (topic %s): %s",
               in->cfg->topic ? in->cfg->topic : "(per message)", buf);
      bg_fail(in, what);
    } else {
      fl_kafka_health_error(&in->health, rd_kafka_event_error_string(ev));
    }
    break;
  case RD_KAFKA_EVENT_STATS: {
    const char *json = rd_kafka_event_stats(ev);
    snprintf(what, sizeof what, "kafka sink '%s'", in->cfg->name);
    if (json) fl_kafka_health_stats(&in->health, in->ctx, what, json, strlen(json));
    break;
  }
  default: break;
  }
  rd_kafka_event_destroy(ev);
}

/* Whether a delivery failed (a failure of the background thread is copied in). */
static bool failed(kinst_t *in) {
  if (in->bg && !in->failed) {
    pthread_mutex_lock(&in->mu);
    if (in->bg_failed) {
      in->failed = true;
      snprintf(in->err, sizeof in->err, "%s", in->bg_err);
    }
    pthread_mutex_unlock(&in->mu);
  }
  return in->failed;
}

int fl_ksink_check_err(fl_context_t *ctx, kinst_t *in) {
  return failed(in) ? fl_ksink_fail(ctx, in, "%s", in->err) : FL_OK;
}

/* Waits up to ms for the next delivery report (in->bg). */
static void wait_report(kinst_t *in, int ms) {
  struct timespec ts = fl_mono_deadline(ms);
  pthread_mutex_lock(&in->mu);
  if (in->reported < in->produced) pthread_cond_timedwait(&in->cv, &in->mu, &ts);
  pthread_mutex_unlock(&in->mu);
}

bool fl_ksink_wait_reports(kinst_t *in, int64_t deadline_ms) {
  pthread_mutex_lock(&in->mu);
  while (in->reported < in->produced) {
    int64_t left = deadline_ms - fl_mono_ms();
    if (left <= 0) break;
    struct timespec ts = fl_mono_deadline(left < 100 ? left : 100);
    pthread_cond_timedwait(&in->cv, &in->mu, &ts);
  }
  bool all = in->reported >= in->produced;
  pthread_mutex_unlock(&in->mu);
  return all;
}

static bool props_name(char *const *props, const char *name) {
  for (size_t i = 0; props && props[i]; i += 2)
    if (strcmp(props[i], name) == 0) return true;
  return false;
}

rd_kafka_t *fl_ksink_new_producer(const ksink_t *c, const char *txid, kinst_t *in, char *err,
                                  size_t errsz) {
  rd_kafka_conf_t *conf = rd_kafka_conf_new();
  rd_kafka_t *rk = NULL;
  char tmo[32];
  snprintf(tmo, sizeof tmo, "%d", c->timeout_ms);
  if (fl_kafka_conf_set(conf, "bootstrap.servers", c->brokers, err, errsz) ||
      fl_kafka_conf_set(conf, "partitioner", "murmur2_random", err, errsz) ||
      (txid && fl_kafka_conf_set(conf, "transactional.id", txid, err, errsz)) ||
      fl_kafka_conf_apply(conf, c->props, err, errsz))
    goto done;
  if (in && in->bg && !props_name(c->props, "message.timeout.ms") &&
      !props_name(c->props, "delivery.timeout.ms") &&
      fl_kafka_conf_set(conf, "message.timeout.ms", tmo, err, errsz))
    goto done;
  /* Statistics are served where the callbacks are: on the background thread, or for
   * exactly-once by the worker's poll and flush, which without periodic checkpoints may
   * not come for a long time (the documents would pile up): none then. */
  bool stats = in && (in->bg || in->keep);
  if (stats && fl_kafka_health_init(&in->health, conf, c->props, false, err, errsz)) goto done;
  if (in) {
    rd_kafka_conf_set_opaque(conf, in);
    if (in->bg) {
      rd_kafka_conf_set_events(conf,
                               RD_KAFKA_EVENT_DR | RD_KAFKA_EVENT_ERROR | RD_KAFKA_EVENT_STATS);
      rd_kafka_conf_set_background_event_cb(conf, bg_event);
    } else {
      rd_kafka_conf_set_dr_msg_cb(conf, dr_cb);
      rd_kafka_conf_set_error_cb(conf, error_cb);
      if (stats) rd_kafka_conf_set_stats_cb(conf, stats_cb);
    }
  }
  char e[512];
  rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, e, sizeof e);
  if (!rk) {
    snprintf(err, errsz, "cannot create the producer: %s", e);
    goto done;
  }
  conf = NULL; /* owned by rk */
  if (in && in->bg) {
    /* The main queue (delivery reports, errors, statistics) goes to the background
     * thread; nothing on the worker polls it from here on. */
    rd_kafka_queue_t *mq = rd_kafka_queue_get_main(rk), *bq = rd_kafka_queue_get_background(rk);
    if (mq && bq) rd_kafka_queue_forward(mq, bq);
    if (mq) rd_kafka_queue_destroy(mq);
    if (bq) rd_kafka_queue_destroy(bq);
    if (!mq || !bq) {
      snprintf(err, errsz, "cannot start the producer's background thread");
      rd_kafka_destroy(rk);
      rk = NULL;
    }
  }
done:
  if (conf) rd_kafka_conf_destroy(conf);
  return rk;
}

/* Runs a transactional call, retrying retriable errors until the deadline. */
static int txn_call(fl_context_t *ctx, kinst_t *in, const char *what,
                    rd_kafka_error_t *(*call)(rd_kafka_t *, int)) {
  int64_t deadline = (int64_t)time(NULL) * 1000 + in->cfg->timeout_ms;
  for (;;) {
    rd_kafka_error_t *e = call(in->rk, in->cfg->timeout_ms);
    if (!e) return FL_OK;
    bool retry = rd_kafka_error_is_retriable(e) && (int64_t)time(NULL) * 1000 < deadline;
    if (rd_kafka_error_is_fatal(e)) in->fatal = true;
    if (!retry) {
      int rc = fl_ksink_fail(ctx, in, "%s of transactional.id %s (topic %s) failed: %s", what,
                             in->txid, in->cfg->topic ? in->cfg->topic : "(per message)",
                             rd_kafka_error_string(e));
      rd_kafka_error_destroy(e);
      return rc;
    }
    rd_kafka_error_destroy(e);
  }
}

static rd_kafka_error_t *call_init(rd_kafka_t *rk, int t) {
  return rd_kafka_init_transactions(rk, t);
}
static rd_kafka_error_t *call_commit(rd_kafka_t *rk, int t) {
  return rd_kafka_commit_transaction(rk, t);
}
static rd_kafka_error_t *call_begin(rd_kafka_t *rk, int t) {
  (void)t;
  return rd_kafka_begin_transaction(rk);
}

int fl_ksink_txn_init(fl_context_t *ctx, kinst_t *in) {
  return txn_call(ctx, in, "init_transactions", call_init);
}

/* Produces one message, waiting (polling delivery reports) while the local queue is full:
 * back-pressure, not a failure. */
int fl_ksink_produce(fl_context_t *ctx, kinst_t *in, const char *topic, int32_t partition,
                     const void *key, size_t key_len, const void *value, size_t value_len,
                     int64_t ts, const fl_kafka_header_t *hs, size_t nh, const uint8_t *enc_hs,
                     size_t n_enc, const char *tag, void *opaque) {
  rd_kafka_headers_t *hdrs = NULL;
  size_t total = nh + n_enc + (tag ? 1 : 0);
  if (total) {
    hdrs = rd_kafka_headers_new(total);
    for (size_t i = 0; i < nh; i++)
      rd_kafka_header_add(hdrs, hs[i].name, -1, hs[i].value,
                          hs[i].value ? (ssize_t)hs[i].value_len : 0);
    const uint8_t *p = enc_hs;
    for (size_t i = 0; i < n_enc; i++) {
      uint32_t hv[2];
      memcpy(hv, p, 8);
      p += 8;
      const char *name = (const char *)p;
      p += hv[0];
      size_t vl = hv[1] == FL_KSINK_LEN_NONE ? 0 : hv[1];
      rd_kafka_header_add(hdrs, name, (ssize_t)hv[0], hv[1] == FL_KSINK_LEN_NONE ? NULL : p,
                          (ssize_t)vl);
      p += vl;
    }
    if (tag) rd_kafka_header_add(hdrs, FL_KSINK_HDR_TXN, -1, tag, -1);
  }
  for (;;) {
    rd_kafka_resp_err_t err = rd_kafka_producev(
        in->rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_PARTITION(partition),
        RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_KEY(key, key_len),
        RD_KAFKA_V_VALUE((void *)value, value_len), RD_KAFKA_V_TIMESTAMP(ts == FL_TS_NONE ? 0 : ts),
        RD_KAFKA_V_HEADERS(hdrs), RD_KAFKA_V_OPAQUE(opaque), RD_KAFKA_V_END);
    if (err == RD_KAFKA_RESP_ERR_NO_ERROR) {
      in->produced++;
      return FL_OK;
    }
    if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL && !fl_ctx_job_failing(ctx)) {
      if (in->bg)
        wait_report(in, 10);
      else
        rd_kafka_poll(in->rk, 10);
      if (failed(in)) break;
      continue;
    }
    if (hdrs) rd_kafka_headers_destroy(hdrs);
    if (failed(in)) return fl_ksink_check_err(ctx, in);
    return fl_ksink_fail(ctx, in, "cannot produce to topic %s partition %" PRId32 ": %s", topic,
                         partition, rd_kafka_err2str(err));
  }
  if (hdrs) rd_kafka_headers_destroy(hdrs);
  return fl_ksink_check_err(ctx, in);
}

/* Produces entry k of b into the open transaction, to the partition it records (the one
 * the serializer chose, or the one the broker gave it when it is written again). */
int fl_ksink_produce_entry(fl_context_t *ctx, kinst_t *in, txbuf_t *b, size_t k, const char *what) {
  entry_t e;
  if (!fl_ksink_entry_decode(b->data + b->idx[k], b->len - b->idx[k], &e))
    return fl_ksink_fail(ctx, in, "%s: record %zu cannot be decoded", what, k);
  char topic[256];
  snprintf(topic, sizeof topic, "%.*s", (int)e.topic_len, e.topic);
  return fl_ksink_produce(ctx, in, topic, e.partition, e.key, e.key_len, e.value, e.value_len, e.ts,
                          NULL, 0, e.headers, e.n_headers, in->tag, (void *)(uintptr_t)(k + 1));
}

int fl_ksink_flush_all(fl_context_t *ctx, kinst_t *in) {
  int64_t deadline = fl_mono_ms() + in->cfg->timeout_ms;
  rd_kafka_resp_err_t err = rd_kafka_flush(in->rk, in->cfg->timeout_ms);
  /* the background thread may still be handing out the last reports */
  bool all = !in->bg || fl_ksink_wait_reports(in, deadline);
  int rc = fl_ksink_check_err(ctx, in);
  if (rc) return rc;
  if (err || !all) {
    uint64_t left = (uint64_t)rd_kafka_outq_len(in->rk);
    if (in->bg) {
      pthread_mutex_lock(&in->mu);
      left = in->produced - in->reported;
      pthread_mutex_unlock(&in->mu);
    }
    return fl_ksink_fail(
        ctx, in, "flush (topic %s): %" PRIu64 " messages not delivered within %d ms: %s",
        in->cfg->topic ? in->cfg->topic : "(per message)", left, in->cfg->timeout_ms,
        rd_kafka_err2str(err ? err : RD_KAFKA_RESP_ERR__TIMED_OUT));
  }
  return FL_OK;
}

/* ---------------------------------------------------------------------------------- */
/* Transactions                                                                         */

static void new_tag(kinst_t *in, int64_t n) {
  snprintf(in->tag, sizeof in->tag, "%s/%" PRId64 "/%016" PRIx64, in->txid, n,
           in->attempt + in->seq++);
}

int fl_ksink_tx_begin(fl_context_t *ctx, kinst_t *in, int64_t n) {
  int rc = txn_call(ctx, in, "begin_transaction", call_begin);
  if (rc) return rc;
  in->tx_open = true;
  in->tx_pre = false;
  new_tag(in, n);
  return FL_OK;
}

/* Produces the buffered entries [n_prod, n) into the open transaction (beginning one if
 * needed). */
int fl_ksink_tx_produce_buffered(fl_context_t *ctx, kinst_t *in) {
  txbuf_t *b = &in->tx;
  if (b->n_prod == b->n) return FL_OK;
  if (!in->tx_open) {
    int rc = fl_ksink_tx_begin(ctx, in, in->last_barrier + 1);
    if (rc) return rc;
  }
  for (; b->n_prod < b->n; b->n_prod++) {
    int rc =
        fl_ksink_produce_entry(ctx, in, b, b->n_prod, "internal error: the write-ahead buffer");
    if (rc) return rc;
  }
  return FL_OK;
}

/* Commits the open transaction with the intent/committed log lines around it. `extra`:
 * "" or " replaces <old> at ..." for the intent, cextra for the committed line. */
int fl_ksink_tx_commit_logged(fl_context_t *ctx, kinst_t *in, const char *path, int64_t n,
                              const char *extra, const char *cextra) {
  char line[2400];
  fl_ksink_kill_point("before-intent");
  snprintf(line, sizeof line, "intent %" PRId64 " %s%s\n", n, in->tag, extra);
  int rc = fl_ksink_log_append(ctx, in, path, line);
  if (rc) return rc;
  fl_ksink_kill_point("after-intent");
  rc = txn_call(ctx, in, "commit_transaction", call_commit);
  if (rc) return rc;
  in->tx_open = false;
  in->tx_pre = false;
  fl_ksink_kill_point("after-commit");
  snprintf(line, sizeof line, "committed %" PRId64 " %s%s\n", n, in->tag, cextra);
  rc = fl_ksink_log_append(ctx, in, path, line);
  if (rc) return rc;
  fl_ksink_kill_point("after-committed-log");
  return FL_OK;
}

/* Commits T (everything produced so far) as checkpoint n, then starts the buffered
 * records in a new transaction. */
int fl_ksink_tx_commit(fl_context_t *ctx, kinst_t *in, int64_t n) {
  int rc = fl_ksink_flush_all(ctx, in);
  if (rc) return rc;
  rc = fl_ksink_tx_commit_logged(ctx, in, in->log_path, n, "", "");
  if (rc) return rc;
  if (fl_ksink_txbuf_drop_produced(&in->tx))
    return fl_ksink_fail(ctx, in, "out of memory dropping the committed records");
  return fl_ksink_tx_produce_buffered(ctx, in);
}

void fl_ksink_abort_tx(kinst_t *in) {
  if (!in || !in->rk || !in->tx_open || in->fatal) return;
  rd_kafka_purge(in->rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
  int t = in->cfg->timeout_ms < 10000 ? in->cfg->timeout_ms : 10000;
  rd_kafka_error_t *e = rd_kafka_abort_transaction(in->rk, t);
  if (e) rd_kafka_error_destroy(e); /* best effort: init_transactions aborts it later */
  in->tx_open = false;
  in->tx_pre = false;
}
