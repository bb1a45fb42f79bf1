/*
 * Exactly-once recovery of the Kafka sink (kafka_sink_int.h), when the job restores
 * from a checkpoint. For each transaction of the restored states this subtask owns (old
 * subtask i with i % P == s), after init_transactions() of its transactional.id (our own
 * at open; an old id no current subtask uses, i >= P, is fenced by a short-lived
 * producer):
 *   committed in the log (itself, or a replacement of it)  -> nothing;
 *   intent without committed -> a read_committed consumer reads the first record back
 *     (also for a replacement's intent, whose line gives its first record): visible
 *     with the same fl.txn -> log committed; else
 *   -> its records are produced again (same topics and partitions) in a new
 *     transaction of this producer, committed with the log lines
 *     "intent <N> <newtag> replaces <oldtag> at <topic> <partition> <offset>" and
 *     "committed <N> <newtag> replaces <oldtag>", both in the old id's log.
 * So a log's committed tags are exactly the third word of its "committed" lines.
 */
#define _GNU_SOURCE
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <librdkafka/rdkafka.h>

#include "io/kafka_common.h"
#include "io/kafka_sink_int.h"
#include "runtime/connector.h"

/* Whether the record at topic/partition/offset is visible to a read_committed consumer
 * with header fl.txn == tag: 1 yes, 0 no, < 0 error (the job fails). */
static int visible(fl_context_t *ctx, kinst_t *in, const char *topic, int32_t part, int64_t offset,
                   const char *tag) {
  const ksink_t *c = in->cfg;
  char err[1024] = "", group[600];
  rd_kafka_conf_t *conf = rd_kafka_conf_new();
  rd_kafka_t *rk = NULL;
  rd_kafka_topic_partition_list_t *tp = NULL;
  int rc = FL_OK;
  snprintf(group, sizeof group, "%s-fl-check", in->txid);
  if (fl_kafka_conf_set(conf, "bootstrap.servers", c->brokers, err, sizeof err) ||
      fl_kafka_conf_set(conf, "group.id", group, err, sizeof err) ||
      fl_kafka_conf_set(conf, "isolation.level", "read_committed", err, sizeof err) ||
      fl_kafka_conf_set(conf, "enable.auto.commit", "false", err, sizeof err) ||
      fl_kafka_conf_set(conf, "enable.partition.eof", "true", err, sizeof err) ||
      fl_kafka_conf_set(conf, "auto.offset.reset", "error", err, sizeof err) ||
      fl_kafka_conf_apply(conf, c->props, err, sizeof err)) {
    rd_kafka_conf_destroy(conf);
    return fl_ksink_fail(ctx, in, "%s", err);
  }
  char e[512];
  rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, e, sizeof e);
  if (!rk) {
    rd_kafka_conf_destroy(conf);
    return fl_ksink_fail(ctx, in, "cannot create a consumer to check transaction %s: %s", tag, e);
  }
  tp = rd_kafka_topic_partition_list_new(1);
  rd_kafka_topic_partition_list_add(tp, topic, part)->offset = offset;
  rd_kafka_resp_err_t aerr = rd_kafka_assign(rk, tp);
  if (aerr) {
    rc = fl_ksink_fail(ctx, in, "cannot read back topic %s partition %" PRId32 ": %s", topic, part,
                       rd_kafka_err2str(aerr));
    goto done;
  }
  int64_t deadline = (int64_t)time(NULL) * 1000 + c->timeout_ms;
  rc = -1000;
  while (rc == -1000) {
    if ((int64_t)time(NULL) * 1000 > deadline) {
      rc = fl_ksink_fail(
          ctx, in,
          "cannot decide whether transaction %s committed: topic %s partition %" PRId32
          " offset %" PRId64 " not readable within %d ms",
          tag, topic, part, offset, c->timeout_ms);
      break;
    }
    rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 100);
    if (!m) continue;
    if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
      rc = 0; /* read everything committed without meeting it */
    } else if (m->err) {
      rc = fl_ksink_fail(ctx, in,
                         "reading back topic %s partition %" PRId32 " offset %" PRId64 ": %s",
                         topic, part, offset, rd_kafka_message_errstr(m));
    } else if (m->offset > offset) {
      rc = 0; /* skipped: aborted */
    } else if (m->offset == offset) {
      rd_kafka_headers_t *h = NULL;
      const void *v = NULL;
      size_t vl = 0;
      rc = rd_kafka_message_headers(m, &h) == 0 &&
                   rd_kafka_header_get_last(h, FL_KSINK_HDR_TXN, &v, &vl) == 0 &&
                   vl == strlen(tag) && memcmp(v, tag, vl) == 0
               ? 1
               : 0;
    }
    rd_kafka_message_destroy(m);
  }
done:
  rd_kafka_topic_partition_list_destroy(tp);
  rd_kafka_consumer_close(rk);
  rd_kafka_destroy(rk);
  return rc;
}

/* Aborts what producer `txid` (of an old subtask no current one owns) left open. */
static int fence(fl_context_t *ctx, kinst_t *in, const char *txid) {
  char err[1024] = "";
  rd_kafka_t *rk = fl_ksink_new_producer(in->cfg, txid, NULL, err, sizeof err);
  if (!rk) return fl_ksink_fail(ctx, in, "%s", err);
  rd_kafka_error_t *e = rd_kafka_init_transactions(rk, in->cfg->timeout_ms);
  int rc = FL_OK;
  if (e) {
    rc = fl_ksink_fail(ctx, in, "init_transactions of transactional.id %s failed: %s", txid,
                       rd_kafka_error_string(e));
    rd_kafka_error_destroy(e);
  }
  rd_kafka_destroy(rk);
  return rc;
}

/* Resolves one restored transaction (see the top of the file). */
static int resolve(fl_context_t *ctx, kinst_t *in, const char *old_tag, txbuf_t *b) {
  char otx[512], path[4400];
  if (!fl_ksink_tag_txid(old_tag, otx, sizeof otx)) return FL_EPARSE;
  fl_ksink_log_path(in, otx, path, sizeof path);
  char *s = NULL;
  int rc = fl_ksink_log_read(ctx, in, path, &s);
  if (rc) return rc;
  logscan_t r;
  fl_ksink_log_scan(s, old_tag, &r);
  free(s);
  if (r.committed || b->n == 0) return FL_OK;
  char line[2400];
  int64_t n = in->last_barrier;
  entry_t e0;
  if (fl_ksink_entry_decode(b->data, b->len, &e0) == 0)
    return fl_ctx_fail(ctx, "the checkpoint's records of transaction %s are damaged", old_tag);
  if (r.intent) {
    char topic[256];
    snprintf(topic, sizeof topic, "%.*s", (int)e0.topic_len, e0.topic);
    rc = visible(ctx, in, topic, e0.partition, e0.offset, old_tag);
    if (rc < 0) return rc;
    if (rc == 1) {
      snprintf(line, sizeof line, "committed %" PRId64 " %s\n", n, old_tag);
      return fl_ksink_log_append(ctx, in, path, line);
    }
  }
  if (r.rtag[0]) {
    rc = visible(ctx, in, r.rtopic, r.rpart, r.roff, r.rtag);
    if (rc < 0) return rc;
    if (rc == 1) {
      snprintf(line, sizeof line, "committed %" PRId64 " %s replaces %s\n", n, r.rtag, old_tag);
      return fl_ksink_log_append(ctx, in, path, line);
    }
  }
  /* Never committed: write its records again in a transaction of this producer. */
  rc = fl_ksink_tx_begin(ctx, in, n);
  if (rc) return rc;
  in->dr_target = b;
  for (size_t k = 0; k < b->n && !rc; k++) {
    rc = fl_ksink_produce_entry(ctx, in, b, k, "the checkpoint's records of a transaction");
  }
  if (!rc) rc = fl_ksink_flush_all(ctx, in);
  in->dr_target = &in->tx;
  if (rc) return rc;
  fl_ksink_entry_decode(b->data, b->len, &e0); /* decoded above; offsets updated by delivery */
  char extra[1500], cextra[800];
  snprintf(extra, sizeof extra, " replaces %s at %.*s %" PRId32 " %" PRId64, old_tag,
           (int)e0.topic_len, e0.topic, e0.partition, e0.offset);
  snprintf(cextra, sizeof cextra, " replaces %s", old_tag);
  return fl_ksink_tx_commit_logged(ctx, in, path, n, extra, cextra);
}

int fl_ksink_restore(fl_context_t *ctx, void *instance, const fl_bytes_t *states, size_t n) {
  kinst_t *in = instance;
  if (in->cfg->guarantee != FL_KAFKA_EXACTLY_ONCE) return FL_OK;
  int rc = FL_OK;
  txbuf_t b = {0};
  /* the restored checkpoint: the N of the log lines of resolved transactions, and the
   * base of the next tags */
  int64_t rid = fl_ctx_restored_checkpoint_id(ctx);
  if (rid > 0) in->last_barrier = rid;
  for (size_t i = 0; i < n && !rc; i++) {
    if ((int)(i % (size_t)in->parallelism) != in->subtask) continue;
    const uint8_t *p = states[i].data;
    size_t len = states[i].len, pos = 8;
    if (len == 0) continue;
    uint32_t hdr[2];
    if (len < 8 || (memcpy(hdr, p, 8), hdr[0] != FL_KSINK_STATE_MAGIC)) goto bad;
    if ((int)i != in->subtask) {
      char otx[600];
      snprintf(otx, sizeof otx, "%s-%zu", in->cfg->prefix, i);
      rc = fence(ctx, in, otx);
      if (rc) break;
    }
    for (uint32_t t = 0; t < hdr[1] && !rc; t++) {
      uint32_t tl;
      uint64_t cnt, blen;
      if (len - pos < 4) goto bad;
      memcpy(&tl, p + pos, 4);
      pos += 4;
      if (len - pos < (size_t)tl + 16 || tl >= 700) goto bad;
      char tag[700];
      memcpy(tag, p + pos, tl);
      tag[tl] = 0;
      pos += tl;
      memcpy(&cnt, p + pos, 8);
      memcpy(&blen, p + pos + 8, 8);
      pos += 16;
      if (len - pos < blen) goto bad;
      fl_ksink_txbuf_free(&b);
      if (blen && !(b.data = malloc(blen))) {
        rc = FL_ENOMEM;
        break;
      }
      memcpy(b.data, p + pos, blen);
      b.len = b.cap = blen;
      pos += blen;
      rc = fl_ksink_txbuf_index(&b, cnt);
      if (rc == FL_EPARSE) goto bad;
      if (!rc) rc = resolve(ctx, in, tag, &b);
    }
    continue;
  bad:
    rc = fl_ksink_fail(ctx, in, "the checkpoint state of subtask %zu is malformed", i);
  }
  fl_ksink_txbuf_free(&b);
  return rc;
}