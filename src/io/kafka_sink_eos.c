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

/* A read_committed consumer of the sink's cluster, to read back what the sink wrote
 * (reset: its auto.offset.reset), in *out; else the job fails, naming what it was for. */
static int check_consumer(fl_context_t *ctx, kinst_t *in, const char *reset, const char *what,
                          rd_kafka_t **out) {
  const ksink_t *c = in->cfg;
  char err[1024] = "", group[600];
  rd_kafka_conf_t *conf = rd_kafka_conf_new();
  snprintf(group, sizeof group, "%s-fl-check", in->txid);
  if (fl_kafka_conf_set(conf, "bootstrap.servers", c->brokers, err, sizeof err) ||
      fl_kafka_conf_set(conf, "group.id", group, err, sizeof err) ||
      fl_kafka_conf_set(conf, "isolation.level", "read_committed", err, sizeof err) ||
      fl_kafka_conf_set(conf, "enable.auto.commit", "false", err, sizeof err) ||
      fl_kafka_conf_set(conf, "enable.partition.eof", "true", err, sizeof err) ||
      fl_kafka_conf_set(conf, "auto.offset.reset", reset, err, sizeof err) ||
      fl_kafka_conf_apply_consumer(conf, c->props, err, sizeof err)) {
    rd_kafka_conf_destroy(conf);
    return fl_ksink_fail(ctx, in, "%s", err);
  }
  *out = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err);
  if (!*out) {
    rd_kafka_conf_destroy(conf);
    return fl_ksink_fail(ctx, in, "cannot create a consumer to %s: %s", what, err);
  }
  return FL_OK;
}

/* Whether the record at topic/partition/offset is visible to a read_committed consumer
 * with header fl.txn == tag: 1 yes, 0 no, < 0 error (the job fails). */
static int visible(fl_context_t *ctx, kinst_t *in, const char *topic, int32_t part, int64_t offset,
                   const char *tag) {
  const ksink_t *c = in->cfg;
  rd_kafka_topic_partition_list_t *tp = NULL;
  int rc = FL_OK;
  char what[600];
  snprintf(what, sizeof what, "check transaction %s", tag);
  rd_kafka_t *rk = NULL;
  rc = check_consumer(ctx, in, "error", what, &rk);
  if (rc) return rc;
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
      if (fl_ksink_txbuf_set(&b, p + pos, blen)) {
        rc = FL_ENOMEM;
        break;
      }
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
/* ---------------------------------------------------------------------------------- */
/* A start that would write committed output again                                     */

/* "checkpoint 7", "checkpoints 6, 7", "checkpoints 6, 7, 8, ... 15" */
static void ids_text(const fl_ksink_commits_t *c, char *buf, size_t n) {
  size_t len = (size_t)snprintf(buf, n, "checkpoint%s", c->n_later > 1 ? "s" : "");
  for (size_t i = 0; i < c->n_later && len < n; i++) {
    if (c->later[i] == FL_KSINK_END_ID) /* a run without checkpoints commits at its end */
      len += (size_t)snprintf(buf + len, n - len, "%s the end of a run", i ? "," : "");
    else
      len += (size_t)snprintf(buf + len, n - len, "%s %" PRId64, i ? "," : "", c->later[i]);
  }
  if (c->more && len < n) snprintf(buf + len, n - len, ", ... %" PRId64, c->max_later);
}

/* Whether an fl.txn value is a transaction of this sink: "<prefix>-<digits>/...". */
static bool tag_of_prefix(const char *prefix, const char *v, size_t vl) {
  size_t pl = strlen(prefix), i = pl + 1;
  if (vl <= i || memcmp(v, prefix, pl) != 0 || v[pl] != '-') return false;
  while (i < vl && v[i] >= '0' && v[i] <= '9') i++;
  return i > pl + 1 && i < vl && v[i] == '/';
}

typedef struct tail {
  int32_t part;
  int64_t lo, hi, start;
  bool done, found; /* this round reached the end; a record was read */
  int64_t off;      /* the last record read */
  char txn[700];    /* its fl.txn header ("" none) */
} tail_t;

/* Reads the partitions that are not found yet, each from its start to its end (as a
 * read_committed consumer sees it), keeping the last record of each. */
static int read_tails(fl_context_t *ctx, kinst_t *in, rd_kafka_t *rk, tail_t *t, size_t n) {
  const ksink_t *c = in->cfg;
  rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new((int)n);
  size_t open = 0;
  for (size_t i = 0; i < n; i++) {
    t[i].done = t[i].found || t[i].hi <= t[i].lo;
    if (t[i].done) continue;
    rd_kafka_topic_partition_list_add(l, c->topic, t[i].part)->offset = t[i].start;
    open++;
  }
  rd_kafka_resp_err_t err = open ? rd_kafka_assign(rk, l) : RD_KAFKA_RESP_ERR_NO_ERROR;
  rd_kafka_topic_partition_list_destroy(l);
  if (err)
    return fl_ksink_fail(ctx, in, "cannot read topic %s: %s", c->topic, rd_kafka_err2str(err));
  int64_t deadline = (int64_t)time(NULL) * 1000 + c->timeout_ms;
  while (open) {
    if ((int64_t)time(NULL) * 1000 > deadline)
      return fl_ksink_fail(ctx, in,
                           "cannot read the last records of topic %s within %d ms, to tell whether "
                           "this sink's output is already there",
                           c->topic, c->timeout_ms);
    rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 100);
    if (!m) continue;
    tail_t *x = NULL;
    for (size_t i = 0; i < n && !x; i++)
      if (t[i].part == m->partition && !t[i].done) x = &t[i];
    if (!x) {
      /* another partition, or one done */
    } else if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
      x->done = true;
      open--;
    } else if (m->err) {
      int rc = fl_ksink_fail(ctx, in, "reading topic %s partition %" PRId32 ": %s", c->topic,
                             m->partition, rd_kafka_message_errstr(m));
      rd_kafka_message_destroy(m);
      return rc;
    } else if (m->offset >= x->start && m->offset < x->hi) {
      rd_kafka_headers_t *h = NULL;
      const void *v = NULL;
      size_t vl = 0;
      x->found = true;
      x->off = m->offset;
      x->txn[0] = 0;
      if (rd_kafka_message_headers(m, &h) == 0 &&
          rd_kafka_header_get_last(h, FL_KSINK_HDR_TXN, &v, &vl) == 0 && v)
        snprintf(x->txn, sizeof x->txn, "%.*s", (int)(vl < 699 ? vl : 699), (const char *)v);
    }
    rd_kafka_message_destroy(m);
  }
  return FL_OK;
}

/* Whether the last record of one of this subtask's partitions of the sink's topic
 * (partition p with p % parallelism == subtask) carries an fl.txn header of this prefix:
 * 1 (where says which), 0, or < 0 (the job fails). Each partition is read from a little
 * before its end, further back while that finds no record (transaction markers, and
 * aborted records a read_committed consumer skips). */
static int topic_evidence(fl_context_t *ctx, kinst_t *in, char *where, size_t wn) {
  const ksink_t *c = in->cfg;
  rd_kafka_t *rk = NULL;
  rd_kafka_topic_t *rkt = NULL;
  const struct rd_kafka_metadata *md = NULL;
  tail_t *t = NULL;
  size_t n = 0;
  if (!c->topic) return 0; /* the serializer names the topics: only the log can tell */
  char what[600];
  snprintf(what, sizeof what, "read topic %s", c->topic);
  int rc = check_consumer(ctx, in, "earliest", what, &rk);
  if (rc) return rc;
  rkt = rd_kafka_topic_new(rk, c->topic, NULL);
  rd_kafka_resp_err_t merr =
      rkt ? rd_kafka_metadata(rk, 0, rkt, &md, c->timeout_ms) : rd_kafka_last_error();
  if (merr || md->topic_cnt != 1) {
    rc = fl_ksink_fail(ctx, in, "cannot read the metadata of topic %s: %s", c->topic,
                       rd_kafka_err2str(merr));
    goto done;
  }
  const struct rd_kafka_metadata_topic *mt = &md->topics[0];
  if (mt->err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART) goto done; /* nothing written yet */
  if (mt->err) {
    rc = fl_ksink_fail(ctx, in, "topic %s: %s", c->topic, rd_kafka_err2str(mt->err));
    goto done;
  }
  t = calloc((size_t)mt->partition_cnt + 1, sizeof *t);
  if (!t) {
    rc = FL_ENOMEM;
    goto done;
  }
  for (int i = 0; i < mt->partition_cnt; i++) {
    int32_t p = mt->partitions[i].id;
    if (p % in->parallelism != in->subtask) continue;
    tail_t *x = &t[n++];
    x->part = p;
    rd_kafka_resp_err_t werr =
        rd_kafka_query_watermark_offsets(rk, c->topic, p, &x->lo, &x->hi, c->timeout_ms);
    if (werr) {
      rc = fl_ksink_fail(ctx, in, "cannot read the offsets of topic %s partition %" PRId32 ": %s",
                         c->topic, p, rd_kafka_err2str(werr));
      goto done;
    }
  }
  /* from 16 records before the end, then 16 times further back each round */
  for (int64_t w = 16; !rc; w = w > INT64_MAX / 16 ? INT64_MAX : w * 16) {
    bool again = false;
    for (size_t i = 0; i < n; i++) {
      tail_t *x = &t[i];
      if (x->found || x->hi <= x->lo) continue;
      int64_t start = x->hi - x->lo > w ? x->hi - w : x->lo;
      if (w > 16 && x->start == x->lo) {
        x->hi = x->lo; /* read whole, nothing there */
        continue;
      }
      x->start = start;
      again = true;
    }
    if (!again) break;
    rc = read_tails(ctx, in, rk, t, n);
  }
  for (size_t i = 0; i < n && !rc; i++) {
    tail_t *x = &t[i];
    if (!x->found || !tag_of_prefix(c->prefix, x->txn, strlen(x->txn))) continue;
    snprintf(where, wn,
             "topic %s partition %" PRId32 " ends with this sink's output (offset %" PRId64
             ", fl.txn %s)",
             c->topic, x->part, x->off, x->txn);
    rc = 1;
  }
done:
  free(t);
  if (md) rd_kafka_metadata_destroy(md);
  if (rkt) rd_kafka_topic_destroy(rkt);
  rd_kafka_consumer_close(rk);
  rd_kafka_destroy(rk);
  return rc;
}

int fl_ksink_check_repeat(fl_context_t *ctx, kinst_t *in) {
  const ksink_t *c = in->cfg;
  int64_t rid = fl_ctx_restored_checkpoint_id(ctx);
  static const char fresh_choices[] =
      "restore from a checkpoint (execution.savepoint.path), write new output under a new "
      "opts.transactional_id_prefix";
  char **logs = NULL, shows[4400] = "", what[1500] = "", ids[300], choices[200] = "",
       where[4500] = "";
  fl_ksink_commits_t all = {0};
  int rc = fl_ksink_log_share(ctx, in, &logs);
  if (rc) return rc;
  for (size_t i = 0; logs[i] && !rc; i++) {
    char *s = NULL;
    fl_ksink_commits_t one = {0};
    rc = fl_ksink_log_read(ctx, in, logs[i], &s);
    if (rc) break;
    fl_ksink_log_commits(s, rid, &one);
    fl_ksink_log_commits(s, rid, &all);
    free(s);
    if (!shows[0] && (rid ? one.n_later > 0 : one.newest > 0))
      snprintf(shows, sizeof shows, "%s", logs[i]);
  }
  if (rc) goto done;
  /* The message puts the paths last: a long one is what gets cut. */
  if (rid > 0 && all.n_later) {
    ids_text(&all, ids, sizeof ids);
    snprintf(what, sizeof what,
             "the job restores from checkpoint %" PRId64
             ", but this sink committed output at %s, after it (a newer checkpoint is damaged or "
             "deleted, or an older one was chosen)",
             rid, ids);
    snprintf(choices, sizeof choices,
             "restore from checkpoint %" PRId64 " or a newer one (repaired, or a copy)",
             all.max_later);
    snprintf(where, sizeof where, "transaction log %s", shows);
  } else if (rid == 0 && all.newest) {
    snprintf(what, sizeof what,
             "the job starts without a checkpoint, but this sink committed output (the newest "
             "at checkpoint %" PRId64 ")",
             all.newest);
    snprintf(choices, sizeof choices, "%s", fresh_choices);
    snprintf(where, sizeof where, "transaction log %s", shows);
  } else if (rid == 0 && !logs[0]) {
    char found[1200] = "";
    rc = topic_evidence(ctx, in, found, sizeof found);
    if (rc < 0) goto done;
    if (rc == 1) {
      snprintf(what, sizeof what, "the job starts without a checkpoint or transaction log, but %s",
               found);
      snprintf(choices, sizeof choices, "%s", fresh_choices);
      snprintf(where, sizeof where, "no log of transactional.id %s-* in %s", c->prefix, c->log_dir);
    }
    rc = FL_OK;
  }
  if (what[0] && !c->accept_duplicates) {
    rc = fl_ksink_fail(ctx, in,
                       "%s: going on would write that output again. Either %s, or set "
                       "opts.accept_duplicates = 1 to write it again anyway (%s)",
                       what, choices, where);
    goto done;
  }
  rc = fl_ksink_log_touch(ctx, in);
  if (rc || !what[0]) goto done;
  fl_ctx_log(ctx, FL_LOG_WARN,
             "kafka sink '%s': %s; it writes that output again (opts.accept_duplicates) (%s)",
             c->name, what, where);
  /* Checkpoint ids before this line belong to the history given up. */
  char line[64];
  snprintf(line, sizeof line, "start %" PRId64 "\n", rid);
  rc = fl_ksink_log_append(ctx, in, in->log_path, line);
  for (size_t i = 0; logs[i] && !rc; i++)
    if (strcmp(logs[i], in->log_path) != 0) rc = fl_ksink_log_append(ctx, in, logs[i], line);
done:
  fl_ksink_paths_free(logs);
  return rc;
}
