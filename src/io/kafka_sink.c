/*
 * The Kafka sink (fl_stream_sink_kafka): Flink's KafkaSink on librdkafka, one producer
 * per subtask, built on fl_stream_sink() with the two-phase-commit hooks.
 *
 * AT_LEAST_ONCE flushes the producer at every barrier (snapshot) and at the end;
 * NO_GUARANTEE only at the end. A delivery error is remembered by the delivery report
 * callback (which runs inside rd_kafka_poll/flush on the worker thread) and fails the
 * job at the next write, flush or snapshot.
 *
 * EXACTLY_ONCE. A producer has one transaction at a time (T). Every record written is
 * appended to T's write-ahead buffer (`tx`), an arena of encoded entries (topic,
 * partition, offset, key, value, timestamp, headers) that is also the checkpoint
 * format. While T is open and not pre-committed records are produced at once (the
 * transaction begins lazily at the first one); after a barrier T is pre-committed
 * (flushed: every entry has the partition and offset the broker gave it, copied into
 * the checkpoint) and later records stay in the buffer, unproduced, until T commits at
 * checkpoint_complete; then a new transaction takes them. If the next barrier comes
 * before that (a slow or aborted checkpoint), the buffered records join T, which then
 * needs that later checkpoint to commit (tx_upto). Each transaction has one tag,
 * "<transactional.id>/<N>/<attempt>", N the checkpoint expected to commit it (one more
 * than the last barrier seen), attempt a random 64-bit value per producer incarnation
 * plus a per-transaction sequence, in hex; every message carries it as header fl.txn.
 *
 * Commit: "intent <N> <tag>" is appended to <txn_log_dir>/<transactional.id>.log and
 * fsync'ed, the commit is sent, "committed <N> <tag>" is appended and fsync'ed.
 *
 * Restore: kafka_sink_eos.c resolves every restored transaction against the log and
 * the broker. The files of the sink are listed in kafka_sink_int.h.
 *
 * Without periodic checkpoints nothing is restored, so no write-ahead copy is kept (the
 * single transaction would otherwise hold the whole output in memory), and a snapshot
 * (a savepoint) fails with a message saying why.
 *
 * The end of input: what was written after the last barrier is pre-committed by the
 * final snapshot (id 0) and committed by a checkpoint triggered after the end (as the
 * file sink), or, without periodic checkpoints, by the notification with INT64_MAX
 * after the whole job ended well. A failing job aborts T.
 */
#define _GNU_SOURCE
#include <inttypes.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>

#include "io/kafka_common.h"
#include "io/kafka_sink_int.h"
#include "runtime/connector.h"
#include "util/clock.h"
#include "util/fs.h"

/* ---------------------------------------------------------------------------------- */
/* Sink functions                                                                       */

static int ks_open_inst(fl_context_t *ctx, void *opaque, void **instance) {
  const ksink_t *c = opaque;
  kinst_t *in = calloc(1, sizeof *in);
  int rc = FL_OK;
  char err[1024] = "";
  if (!in) return FL_ENOMEM;
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC); /* waits use fl_mono_ms deadlines */
  pthread_mutex_init(&in->mu, NULL);
  pthread_cond_init(&in->cv, &ca);
  pthread_condattr_destroy(&ca);
  in->cfg = c;
  in->ctx = ctx;
  in->bg = c->guarantee != FL_KAFKA_EXACTLY_ONCE;
  in->subtask = fl_ctx_subtask(ctx);
  in->parallelism = fl_ctx_parallelism(ctx);
  in->dr_target = &in->tx;
  in->keep = fl_ctx_checkpoints_enabled(ctx);
  *instance = in;
  bool eo = c->guarantee == FL_KAFKA_EXACTLY_ONCE;
  if (eo) {
    snprintf(in->txid, sizeof in->txid, "%s-%d", c->prefix, in->subtask);
    fl_ksink_log_path(in, in->txid, in->log_path, sizeof in->log_path);
    if (getrandom(&in->attempt, sizeof in->attempt, 0) != sizeof in->attempt) {
      struct timespec ts;
      clock_gettime(CLOCK_REALTIME, &ts);
      in->attempt =
          ((uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec) ^ ((uint64_t)getpid() << 32);
    }
    char why[600];
    if (fl_mkdir_p(c->log_dir, true, why, sizeof why))
      return fl_ksink_fail(ctx, in, "cannot create the transaction log directory: %s", why);
    char *s = NULL;
    rc = fl_ksink_log_read(ctx, in, in->log_path, &s);
    if (rc) return rc;
    for (char *q = s; *q; q++) in->log_lines += *q == '\n';
    free(s);
  }
  in->rk = fl_ksink_new_producer(c, eo ? in->txid : NULL, in, err, sizeof err);
  if (!in->rk) return fl_ksink_fail(ctx, in, "%s", err);
  if (eo) {
    /* Completes or aborts whatever an earlier producer with this id left open. */
    rc = fl_ksink_txn_init(ctx, in);
    if (rc) return rc;
    /* Then, before anything is written: would this start repeat committed output? */
    rc = fl_ksink_check_repeat(ctx, in);
    if (rc) return rc;
  }
  return FL_OK;
}

static void ks_close(void *instance);

/* The runtime does not close an instance whose open failed. */
static int ks_open(fl_context_t *ctx, void *opaque, void **instance) {
  *instance = NULL;
  int rc = ks_open_inst(ctx, opaque, instance);
  if (rc && *instance) {
    ks_close(*instance);
    *instance = NULL;
  }
  return rc;
}

static int ks_write(fl_context_t *ctx, const fl_record_t *rec, void *instance) {
  kinst_t *in = instance;
  const ksink_t *c = in->cfg;
  if (!in->bg && (++in->writes & 15) == 0) rd_kafka_poll(in->rk, 0); /* delivery reports */
  int rc = fl_ksink_check_err(ctx, in);
  if (rc) return rc;
  fl_kafka_message_t m = {.topic = NULL,
                          .partition = -1,
                          .offset = -1,
                          .timestamp = rec->timestamp,
                          .key = rec->key_len ? rec->key : NULL,
                          .key_len = rec->key_len,
                          .value = rec->value ? rec->value : "",
                          .value_len = rec->value_len};
  if (c->serialize) {
    rc = c->serialize(ctx, rec, &m, c->serialize_opaque);
    if (rc < 0) return rc;
    if (rc == 0) return FL_OK;
  }
  const char *topic = m.topic ? m.topic : c->topic;
  if (!topic) return fl_ksink_fail(ctx, in, "the serializer set no topic and the sink has none");
  if (m.partition < -1)
    return fl_ksink_fail(ctx, in, "the serializer set partition %" PRId32 " for topic %s",
                         m.partition, topic);
  if (c->guarantee != FL_KAFKA_EXACTLY_ONCE)
    return fl_ksink_produce(ctx, in, topic, m.partition, m.key, m.key ? m.key_len : 0, m.value,
                            m.value ? m.value_len : 0, m.timestamp, m.headers, m.n_headers, NULL, 0,
                            NULL, NULL);
  if (in->ended) return fl_ksink_fail(ctx, in, "write after the end of input");
  if (!in->keep) {
    if (!in->tx_open && (rc = fl_ksink_tx_begin(ctx, in, in->last_barrier + 1))) return rc;
    return fl_ksink_produce(ctx, in, topic, m.partition, m.key, m.key ? m.key_len : 0, m.value,
                            m.value ? m.value_len : 0, m.timestamp, m.headers, m.n_headers, NULL, 0,
                            in->tag, NULL);
  }
  rc = fl_ksink_txbuf_add(&in->tx, topic, &m);
  if (rc == FL_EINVAL) return fl_ksink_fail(ctx, in, "a message for topic %s is too large", topic);
  if (rc) return rc;
  if (in->tx_pre) return FL_OK; /* after a barrier: waits for the commit */
  if (!in->tx_open) {
    rc = fl_ksink_tx_begin(ctx, in, in->last_barrier + 1);
    if (rc) return rc;
  }
  size_t k = in->tx.n - 1;
  in->tx.n_prod = in->tx.n;
  return fl_ksink_produce(ctx, in, topic, m.partition, m.key, m.key ? m.key_len : 0, m.value,
                          m.value ? m.value_len : 0, m.timestamp, m.headers, m.n_headers, NULL, 0,
                          in->tag, (void *)(uintptr_t)(k + 1));
}

/* At least once or no guarantee in a failing or stopped job: delivers what it can
 * within min(timeout, 10 s), then logs what it could not (close drops it). */
static void report_undelivered(fl_context_t *ctx, kinst_t *in) {
  int t = in->cfg->timeout_ms < 10000 ? in->cfg->timeout_ms : 10000;
  rd_kafka_flush(in->rk, t);
  fl_ksink_wait_reports(in, fl_mono_ms() + t);
  pthread_mutex_lock(&in->mu);
  uint64_t lost = in->lost, queued = in->produced - in->reported;
  char first[1024];
  snprintf(first, sizeof first, "%s", in->bg_failed ? in->bg_err : "");
  pthread_mutex_unlock(&in->mu);
  if (!lost && !queued) return;
  fl_ctx_log(ctx, FL_LOG_ERROR,
             "kafka sink '%s': the job ends with %" PRIu64 " of %" PRIu64
             " messages not delivered to topic %s (%" PRIu64 " failed%s%s; %" PRIu64
             " still queued after a last wait of %d ms): they are lost",
             in->cfg->name, lost + queued, in->produced,
             in->cfg->topic ? in->cfg->topic : "(per message)", lost, first[0] ? ": " : "", first,
             queued, t);
}

static int ks_flush(fl_context_t *ctx, void *instance) {
  kinst_t *in = instance;
  if (!in) return FL_OK; /* open failed; the job is failing */
  bool eo = in->cfg->guarantee == FL_KAFKA_EXACTLY_ONCE;
  if (fl_ctx_job_failing(ctx)) {
    /* failing or stopped: exactly-once commits nothing; the others deliver what they
     * can within a bounded wait (best effort: the job's outcome is decided) and say
     * what they could not */
    if (eo)
      fl_ksink_abort_tx(in);
    else
      report_undelivered(ctx, in);
    return FL_OK;
  }
  if (!eo) return fl_ksink_flush_all(ctx, in);
  in->ended = true;
  /* Committed by a checkpoint triggered after this (the final one), or at INT64_MAX. */
  in->end_after = fl_ctx_checkpoint_triggered(ctx);
  return fl_ksink_check_err(ctx, in);
}

/* State: [u32 magic][u32 n_txn] n_txn x ([u32 tag_len] tag [u64 n] [u64 len] entries). */
static int ks_snapshot(fl_context_t *ctx, void *instance, int64_t id, fl_buf_t *out) {
  kinst_t *in = instance;
  int rc = FL_OK;
  if (in->cfg->guarantee != FL_KAFKA_EXACTLY_ONCE) {
    if (in->cfg->guarantee == FL_KAFKA_AT_LEAST_ONCE) rc = fl_ksink_flush_all(ctx, in);
    return rc ? rc : fl_ksink_check_err(ctx, in);
  }
  if (!in->keep)
    return fl_ksink_fail(ctx, in,
                         "exactly-once needs periodic checkpoints "
                         "(execution.checkpointing.interval) for a savepoint");
  /* Records buffered after a barrier join T here, so T needs this checkpoint. */
  bool joined = in->tx.n_prod < in->tx.n;
  rc = fl_ksink_tx_produce_buffered(ctx, in);
  if (!rc) rc = fl_ksink_flush_all(ctx, in);
  if (rc) return rc;
  if (id) in->last_barrier = id;
  if (in->tx_open) {
    /* The final snapshot of a T that is pre-committed already and got nothing since
     * leaves it to the checkpoint it waits for: committed by a later one, a restore
     * from that checkpoint would be refused for output it never writes again. */
    if (id || !in->tx_pre || joined) in->tx_upto = id ? id : FL_KSINK_END_ID;
    in->tx_pre = true;
  }
  uint32_t hdr[2] = {FL_KSINK_STATE_MAGIC, in->tx_open ? 1u : 0u};
  rc = fl_buf_append(out, hdr, sizeof hdr);
  if (!rc && in->tx_open) {
    uint32_t tl = (uint32_t)strlen(in->tag);
    uint64_t n = in->tx.n, len = in->tx.len;
    rc = fl_buf_append(out, &tl, 4);
    if (!rc) rc = fl_buf_append(out, in->tag, tl);
    if (!rc) rc = fl_buf_append(out, &n, 8);
    if (!rc) rc = fl_buf_append(out, &len, 8);
    /* the write-ahead copy goes into the checkpoint from tx itself, written off the
     * worker while tx takes the records after the barrier (tx keeps the bytes it has
     * now until the checkpoint releases them) */
    if (!rc && in->tx.len)
      fl_ctx_snapshot_lend(ctx, in->tx.data, in->tx.len, fl_ksink_txbuf_release,
                           fl_ksink_txbuf_share(&in->tx));
  }
  return rc;
}

static int ks_complete(fl_context_t *ctx, void *instance, int64_t id) {
  kinst_t *in = instance;
  if (in->cfg->guarantee != FL_KAFKA_EXACTLY_ONCE) return fl_ksink_check_err(ctx, in);
  if (id == FL_KSINK_END_ID) {
    /* the job ended well without periodic checkpoints: everything commits */
    if (!in->ended) return FL_OK;
    int rc = fl_ksink_tx_produce_buffered(ctx, in);
    if (rc || !in->tx_open) return rc;
    return fl_ksink_tx_commit(ctx, in, id);
  }
  if (!in->tx_open || !in->tx_pre) return fl_ksink_check_err(ctx, in);
  bool covered = in->tx_upto == FL_KSINK_END_ID ? id > in->end_after : in->tx_upto <= id;
  if (!covered) return fl_ksink_check_err(ctx, in);
  return fl_ksink_tx_commit(ctx, in, id);
}

static void ks_close(void *instance) {
  kinst_t *in = instance;
  if (!in) return;
  if (in->rk) {
    fl_ksink_abort_tx(in);
    pthread_mutex_lock(&in->mu);
    in->closing = true; /* the purged messages are no failure of the job */
    pthread_mutex_unlock(&in->mu);
    rd_kafka_purge(in->rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
    rd_kafka_destroy(in->rk); /* joins the background thread */
  }
  fl_ksink_txbuf_free(&in->tx);
  pthread_mutex_destroy(&in->mu);
  pthread_cond_destroy(&in->cv);
  free(in);
}

static void ks_destroy(void *opaque) {
  ksink_t *c = opaque;
  if (!c) return;
  if (c->serialize_destroy) c->serialize_destroy(c->serialize_opaque);
  free(c->name);
  free(c->brokers);
  free(c->topic);
  free(c->prefix);
  free(c->log_dir);
  fl_kafka_props_free(c->props);
  free(c);
}

/* ---------------------------------------------------------------------------------- */
/* Builder                                                                              */

static char *dup_or_null(const char *s, bool *oom) {
  if (!s) return NULL;
  char *d = strdup(s);
  if (!d) *oom = true;
  return d;
}

int fl_stream_sink_kafka(fl_stream_t *in, const char *name, const fl_kafka_sink_opts_t *given) {
  /* A table of an earlier version is copied by its own size; the fields it lacks read
   * as 0. */
  fl_kafka_sink_opts_t copy;
  const fl_kafka_sink_opts_t *opts = NULL;
  if (given && given->version >= 1 && given->version <= FL_KAFKA_SINK_OPTS_VERSION) {
    memset(&copy, 0, sizeof copy);
    memcpy(&copy, given,
           given->version == 1 ? offsetof(fl_kafka_sink_opts_t, accept_duplicates) : sizeof copy);
    opts = &copy;
  }
  /* From a valid opts on, serialize_destroy is called exactly once, even on failure. */
  bool owns = opts != NULL;
  if (!in) {
    if (owns && opts->serialize_destroy) opts->serialize_destroy(opts->serialize_opaque);
    return FL_EINVAL;
  }
  fl_env_t *env = fl_stream_env(in);
  const char *nm = name && *name ? name : "kafka";
  char err[1200] = "";
  int rc = FL_EINVAL;
  ksink_t *c = NULL;
  bool oom = false;

  if (!given) {
    snprintf(err, sizeof err, "opts is NULL");
    goto done;
  }
  if (!opts) {
    snprintf(err, sizeof err, "opts.version is %d, expected 1 to %d (FL_KAFKA_SINK_OPTS_VERSION)",
             given->version, FL_KAFKA_SINK_OPTS_VERSION);
    goto done;
  }
  if (!opts->brokers || !*opts->brokers) {
    snprintf(err, sizeof err, "opts.brokers (bootstrap.servers) is required");
    goto done;
  }
  if ((!opts->topic || !*opts->topic) && !opts->serialize) {
    snprintf(err, sizeof err, "opts.topic is required without a serializer");
    goto done;
  }
  if (opts->guarantee != FL_KAFKA_AT_LEAST_ONCE && opts->guarantee != FL_KAFKA_EXACTLY_ONCE &&
      opts->guarantee != FL_KAFKA_NO_GUARANTEE) {
    snprintf(err, sizeof err, "opts.guarantee %d is not a fl_kafka_guarantee_t",
             (int)opts->guarantee);
    goto done;
  }
  if (opts->timeout_ms < 0) {
    snprintf(err, sizeof err, "opts.timeout_ms %d is negative", opts->timeout_ms);
    goto done;
  }
  if (opts->accept_duplicates != 0 && opts->accept_duplicates != 1) {
    snprintf(err, sizeof err, "opts.accept_duplicates is %d: 0 or 1", opts->accept_duplicates);
    goto done;
  }
  c = calloc(1, sizeof *c);
  if (!c) {
    oom = true;
    goto done;
  }
  c->serialize = opts->serialize;
  c->serialize_opaque = opts->serialize_opaque;
  c->serialize_destroy = opts->serialize_destroy;
  c->name = dup_or_null(nm, &oom);
  c->brokers = dup_or_null(opts->brokers, &oom);
  c->topic = opts->topic && *opts->topic ? dup_or_null(opts->topic, &oom) : NULL;
  c->guarantee = opts->guarantee;
  c->accept_duplicates = opts->accept_duplicates == 1;
  c->timeout_ms = opts->timeout_ms ? opts->timeout_ms : 60000;
  if (opts->guarantee == FL_KAFKA_EXACTLY_ONCE) {
    const char *pre = opts->transactional_id_prefix ? opts->transactional_id_prefix : nm;
    if (!*pre || strlen(pre) > 200 || strpbrk(pre, " \t\r\n/")) {
      snprintf(err, sizeof err,
               "opts.transactional_id_prefix '%s' must be 1..200 characters without "
               "whitespace or '/'",
               pre);
      goto done;
    }
    c->prefix = dup_or_null(pre, &oom);
    if (opts->txn_log_dir && *opts->txn_log_dir) {
      c->log_dir = dup_or_null(opts->txn_log_dir, &oom);
    } else if (*fl_env_checkpoint_dir(env)) {
      const char *ck = fl_env_checkpoint_dir(env);
      size_t l = strlen(ck) + 16;
      if ((c->log_dir = malloc(l)))
        snprintf(c->log_dir, l, "%s/kafka-txn", ck);
      else
        oom = true;
    } else {
      snprintf(err, sizeof err, "EXACTLY_ONCE needs opts.txn_log_dir or state.checkpoints.dir");
      goto done;
    }
    if (c->log_dir && strlen(c->log_dir) > 3800) {
      snprintf(err, sizeof err, "opts.txn_log_dir is longer than 3800 bytes");
      goto done;
    }
  }
  /* props: copied, each checked against a throwaway conf */
  for (size_t i = 0; opts->props && opts->props[i] && opts->props[i + 1]; i += 2) {
    const char *k = opts->props[i];
    if (strcmp(k, "transactional.id") == 0 || strcmp(k, "bootstrap.servers") == 0) {
      snprintf(err, sizeof err, "opts.props: property '%s' is set by the sink (use %s)", k,
               k[0] == 't' ? "opts.transactional_id_prefix" : "opts.brokers");
      goto done;
    }
  }
  {
    char e[1024];
    int prc = fl_kafka_props_copy(opts->props, &c->props, e, sizeof e);
    if (prc == FL_OK) prc = fl_kafka_props_validate(c->props, e, sizeof e);
    if (prc == FL_ENOMEM) {
      oom = true;
      goto done;
    }
    if (prc != FL_OK) {
      snprintf(err, sizeof err, "opts.props: %s", e);
      goto done;
    }
  }
  if (oom) goto done;
  static const fl_sink_fn_t fn = {.version = FL_SINK_FN_VERSION,
                                  .open = ks_open,
                                  .write = ks_write,
                                  .flush = ks_flush,
                                  .close = ks_close,
                                  .destroy = ks_destroy,
                                  .snapshot = ks_snapshot,
                                  .checkpoint_complete = ks_complete,
                                  .restore = fl_ksink_restore};
  return fl_stream_sink(in, nm, &fn, c);
done:
  if (c)
    ks_destroy(c);
  else if (owns && opts->serialize_destroy)
    opts->serialize_destroy(opts->serialize_opaque);
  if (oom) {
    fl_env_builder_fail(env, FL_ENOMEM, "kafka sink '%s': out of memory", nm);
    return FL_ENOMEM;
  }
  fl_env_builder_fail(env, rc, "kafka sink '%s': %s", nm, err);
  return rc;
}