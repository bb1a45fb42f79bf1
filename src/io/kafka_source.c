/*
 * Kafka source (fl_source_kafka), built on fl_source() with a version 3 function table.
 * This file: an instance's clients, partitions and start offsets, and run(); the
 * others are listed in kafka_source_int.h.
 *
 * Each subtask runs one librdkafka consumer without group subscription: at open it
 * lists the topics' partitions (metadata), sorts them by (topic, partition), keeps
 * every one with index % parallelism == subtask, and resolves a concrete start offset
 * for each (ListOffsets for earliest/latest/timestamp, OffsetFetch for committed), so
 * a checkpoint never holds a logical offset that would mean something else after a
 * restore. The assignment itself happens at the first run(), after a restore had the
 * chance to replace those offsets with checkpointed ones.
 *
 * run() polls the consumer queue without blocking (the main queue is forwarded into
 * it, so client errors arrive there too). When nothing is there it hands the worker a
 * private epoll fd holding an eventfd, which librdkafka writes when the queue becomes
 * non-empty, and a periodic timerfd that drives idleness, watermarks and lag gauges.
 *
 * Positions: `next` of a partition is the offset after the last message handed out
 * (also for messages dropped, skipped or dead-lettered). A snapshot is the list of
 * (topic, partition, next); it is also kept in a small ring by checkpoint id so that
 * checkpoint_complete(id) commits exactly what checkpoint id holds to the group. The
 * results of those commits arrive on a queue of their own, which the worker's thread
 * serves (run(), checkpoint_complete, close), so that every metric of the subtask has
 * one writer.
 *
 * (kafka_source_state.c has the format.)
 */
#define _GNU_SOURCE

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>

#include "io/kafka_common.h"
#include "io/kafka_source_int.h"
#include "runtime/connector.h"
#include "util/vec.h"

#define KS_BATCH 256 /* messages taken from the consumer queue at once */

/* ---------------------------------------------------------------------------------- */
/* Instances                                                                          */

static int cmp_part(const void *a, const void *b) {
  const ks_part_t *x = a, *y = b;
  int c = strcmp(x->topic, y->topic);
  if (c != 0) return c;
  return x->partition < y->partition ? -1 : x->partition > y->partition;
}

static void ks_free_parts(ks_part_t *parts, size_t n) {
  for (size_t i = 0; parts != NULL && i < n; i++) free(parts[i].topic);
  free(parts);
}

void fl_ksrc_close(void *instance) {
  ks_inst_t *in = instance;
  if (in == NULL) return;
  if (in->q != NULL) {
    rd_kafka_queue_io_event_enable(in->q, -1, NULL, 0);
    rd_kafka_queue_destroy(in->q);
  }
  if (in->cq != NULL) rd_kafka_queue_io_event_enable(in->cq, -1, NULL, 0);
  if (in->rk != NULL) rd_kafka_consumer_close(in->rk); /* waits for commits in flight */
  if (in->cq != NULL) {
    fl_ksrc_commit_results(in); /* theirs: the job's last commit shows in the metrics */
    rd_kafka_queue_destroy(in->cq);
  }
  if (in->rk != NULL) rd_kafka_destroy(in->rk);
  if (in->dlq != NULL) {
    rd_kafka_purge(in->dlq, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
    rd_kafka_destroy(in->dlq);
  }
  if (in->epfd >= 0) close(in->epfd);
  if (in->evfd >= 0) close(in->evfd);
  if (in->tfd >= 0) close(in->tfd);
  ks_free_parts(in->parts, in->n_parts);
  for (int i = 0; i < KS_RING; i++) free(in->ring[i].next);
  free(in->final_next);
  free(in->hdrs);
  free(in);
}

/* Fails the job with an error about the consumer as a whole (names the brokers). */
static int ks_fail_client(fl_context_t *ctx, const ks_inst_t *in, const char *what,
                          rd_kafka_resp_err_t err) {
  return fl_ctx_fail(ctx, "%s (brokers %s): %s", what, in->conf->brokers, rd_kafka_err2str(err));
}

/* ---------------------------------------------------------------------------------- */
/* Open: clients, partitions, start offsets                                           */

static void ks_dlq_dr(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque) {
  ks_inst_t *in = opaque;
  (void)rk;
  if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR || in->dlq_failed) return;
  in->dlq_failed = true;
  snprintf(in->dlq_err, sizeof(in->dlq_err),
           "cannot deliver to the dead-letter topic %s [%" PRId32 "]: %s",
           m->rkt ? rd_kafka_topic_name(m->rkt) : in->conf->dlq_topic, m->partition,
           rd_kafka_err2str(m->err));
}

/* The consumer's statistics, served by the consumer queue in run() (and at close). */
static int ks_stats(rd_kafka_t *rk, char *json, size_t len, void *opaque) {
  ks_inst_t *in = opaque;
  char who[300];
  (void)rk;
  snprintf(who, sizeof(who), "kafka source '%s' (brokers %s)", in->conf->name, in->conf->brokers);
  fl_kafka_health_stats(&in->health, in->ctx, who, json, len);
  return 0; /* librdkafka frees json */
}

/* Client errors, served by the consumer queue in run(): a fatal one fails the job there;
 * the others (a broker down, refused, timed out) are librdkafka's to retry, and the
 * health log quotes the last one. */
static void ks_error(rd_kafka_t *rk, int err, const char *reason, void *opaque) {
  ks_inst_t *in = opaque;
  (void)rk;
  if (err == RD_KAFKA_RESP_ERR__FATAL)
    in->client_fatal = true;
  else
    fl_kafka_health_error(&in->health, reason);
}

static int ks_new_client(fl_context_t *ctx, ks_inst_t *in, rd_kafka_type_t type, rd_kafka_t **out) {
  const ks_conf_t *c = in->conf;
  rd_kafka_conf_t *conf = rd_kafka_conf_new();
  char err[512], client_id[256];
  int rc = FL_OK;

  *out = NULL;
  if (conf == NULL) return FL_ENOMEM;
  snprintf(client_id, sizeof(client_id), "%s-%d%s", c->name, in->subtask,
           type == RD_KAFKA_PRODUCER ? "-dlq" : "");
  rc = fl_kafka_conf_set(conf, "bootstrap.servers", c->brokers, err, sizeof(err));
  if (rc == FL_OK) rc = fl_kafka_conf_set(conf, "client.id", client_id, err, sizeof(err));
  if (type == RD_KAFKA_CONSUMER) {
    static const char *const fixed[] = {"enable.auto.commit",
                                        "false",
                                        "enable.auto.offset.store",
                                        "false",
                                        "enable.partition.eof",
                                        "true",
                                        "auto.offset.reset",
                                        "earliest",
                                        NULL};
    if (rc == FL_OK) rc = fl_kafka_conf_set(conf, "group.id", c->group_id, err, sizeof(err));
    for (size_t i = 0; rc == FL_OK && fixed[i] != NULL; i += 2)
      rc = fl_kafka_conf_set(conf, fixed[i], fixed[i + 1], err, sizeof(err));
    rd_kafka_conf_set_stats_cb(conf, ks_stats);
    rd_kafka_conf_set_error_cb(conf, ks_error);
    rd_kafka_conf_set_opaque(conf, in);
  } else {
    if (rc == FL_OK) rc = fl_kafka_conf_set(conf, "enable.idempotence", "true", err, sizeof(err));
    rd_kafka_conf_set_dr_msg_cb(conf, ks_dlq_dr);
    rd_kafka_conf_set_opaque(conf, in);
  }
  if (rc == FL_OK) rc = fl_kafka_conf_apply(conf, c->props, err, sizeof(err));
  if (rc == FL_OK && type == RD_KAFKA_CONSUMER)
    rc = fl_kafka_health_init(&in->health, conf, c->props, true, err, sizeof(err));
  if (rc != FL_OK) {
    rd_kafka_conf_destroy(conf);
    return fl_ctx_fail(ctx, "%s", err);
  }
  *out = rd_kafka_new(type, conf, err, sizeof(err));
  if (*out == NULL) {
    rd_kafka_conf_destroy(conf);
    /* rd_kafka_new's messages name properties, not their values */
    return fl_ctx_fail(ctx, "cannot create the Kafka %s: %s",
                       type == RD_KAFKA_PRODUCER ? "dead-letter producer" : "consumer", err);
  }
  return FL_OK;
}

/* Lists the partitions of the configured topics and keeps this subtask's share. */
static int ks_discover(fl_context_t *ctx, ks_inst_t *in) {
  const ks_conf_t *c = in->conf;
  const struct rd_kafka_metadata *md = NULL;
  ks_part_t *all = NULL;
  size_t n_all = 0, cap = 0;
  int P = fl_ctx_parallelism(ctx);
  rd_kafka_resp_err_t err;
  int rc = FL_OK;

  err = rd_kafka_metadata(in->rk, 1, NULL, &md, c->timeout_ms);
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    char what[128];
    snprintf(what, sizeof(what), "cannot fetch topic metadata within %d ms", c->timeout_ms);
    return ks_fail_client(ctx, in, what, err);
  }
  /* Named topics must all exist. */
  for (size_t t = 0; t < c->n_topics; t++) {
    const struct rd_kafka_metadata_topic *mt = NULL;
    for (int i = 0; i < md->topic_cnt && mt == NULL; i++)
      if (strcmp(md->topics[i].topic, c->topic_list[t]) == 0) mt = &md->topics[i];
    if (mt == NULL || mt->err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART) {
      rc = fl_ctx_fail(ctx, "topic '%s' does not exist (brokers %s)", c->topic_list[t], c->brokers);
      goto done;
    }
    if (mt->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      rc = fl_ctx_fail(ctx, "topic '%s': %s", c->topic_list[t], rd_kafka_err2str(mt->err));
      goto done;
    }
  }
  for (int i = 0; i < md->topic_cnt; i++) {
    const struct rd_kafka_metadata_topic *mt = &md->topics[i];
    bool want = false;
    if (c->use_regex) /* Kafka's internal topics only when named, as with exclude.internal.topics */
      want = mt->err == RD_KAFKA_RESP_ERR_NO_ERROR &&
             strcmp(mt->topic, "__consumer_offsets") != 0 &&
             strcmp(mt->topic, "__transaction_state") != 0 &&
             regexec(&c->re, mt->topic, 0, NULL, 0) == 0;
    else
      for (size_t t = 0; t < c->n_topics && !want; t++)
        want = strcmp(mt->topic, c->topic_list[t]) == 0;
    if (!want) continue;
    for (int p = 0; p < mt->partition_cnt; p++) {
      if (FL_VEC_RESERVE(all, cap, n_all + 1)) {
        rc = FL_ENOMEM;
        goto done;
      }
      memset(&all[n_all], 0, sizeof(all[n_all]));
      all[n_all].topic = strdup(mt->topic);
      if (all[n_all].topic == NULL) {
        rc = FL_ENOMEM;
        goto done;
      }
      all[n_all].partition = mt->partitions[p].id;
      n_all++;
    }
  }
  if (n_all > 1) qsort(all, n_all, sizeof(*all), cmp_part);
  /* Keep the i-th partition when i % P == subtask; free the others' names. */
  {
    size_t k = 0;
    for (size_t i = 0; i < n_all; i++) {
      if ((int)(i % (size_t)P) == in->subtask)
        all[k++] = all[i];
      else
        free(all[i].topic);
    }
    n_all = k;
  }
  in->parts = all;
  in->n_parts = n_all;
  all = NULL;
  n_all = 0;
done:
  ks_free_parts(all, n_all);
  if (md != NULL) rd_kafka_metadata_destroy(md);
  return rc;
}

static rd_kafka_topic_partition_list_t *ks_list(const ks_inst_t *in, const bool *sel) {
  rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new((int)in->n_parts);
  for (size_t i = 0; l != NULL && i < in->n_parts; i++)
    if (sel == NULL || sel[i])
      rd_kafka_topic_partition_list_add(l, in->parts[i].topic, in->parts[i].partition);
  return l;
}

ks_part_t *fl_ksrc_find(ks_inst_t *in, const char *topic, int32_t partition) {
  /* The last one found, or the one after it: messages come in runs of one partition,
   * and lists (commit results) in the order of in->parts. */
  for (size_t i = in->last_part; i < in->n_parts && i <= in->last_part + 1; i++) {
    ks_part_t *p = &in->parts[i];
    if (p->partition == partition && strcmp(p->topic, topic) == 0) {
      in->last_part = i;
      return p;
    }
  }
  for (size_t i = 0; i < in->n_parts; i++) {
    ks_part_t *p = &in->parts[i];
    if (p->partition == partition && strcmp(p->topic, topic) == 0) {
      in->last_part = i;
      return p;
    }
  }
  return NULL;
}

/* ListOffsets for the selected partitions: `query` is a timestamp or
 * RD_KAFKA_OFFSET_BEGINNING/END; out[i] gets the offset (-1: no such message). */
static int ks_list_offsets(fl_context_t *ctx, ks_inst_t *in, const bool *sel, int64_t query,
                           int64_t *out) {
  rd_kafka_topic_partition_list_t *l = ks_list(in, sel);
  rd_kafka_resp_err_t err;
  int rc = FL_OK;
  if (l == NULL) return FL_ENOMEM;
  if (l->cnt == 0) goto done;
  for (int i = 0; i < l->cnt; i++) l->elems[i].offset = query;
  err = rd_kafka_offsets_for_times(in->rk, l, in->conf->timeout_ms);
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    rc = ks_fail_client(ctx, in, "cannot list partition offsets", err);
    goto done;
  }
  for (int i = 0; i < l->cnt; i++) {
    const rd_kafka_topic_partition_t *e = &l->elems[i];
    ks_part_t *p = fl_ksrc_find(in, e->topic, e->partition);
    if (e->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      rc = fl_ctx_fail(ctx, "cannot list the offsets of topic %s partition %" PRId32 ": %s",
                       e->topic, e->partition, rd_kafka_err2str(e->err));
      goto done;
    }
    if (p != NULL) out[p - in->parts] = e->offset;
  }
done:
  rd_kafka_topic_partition_list_destroy(l);
  return rc;
}

/* Resolves a concrete start offset (and, bounded, the end offset) of every partition. */
static int ks_resolve_start(fl_context_t *ctx, ks_inst_t *in) {
  const ks_conf_t *c = in->conf;
  size_t n = in->n_parts;
  int64_t *ends = NULL, *tmp = NULL;
  bool *sel = NULL;
  int rc = FL_OK;

  if (n == 0) return FL_OK;
  ends = malloc(n * sizeof(*ends));
  tmp = malloc(n * sizeof(*tmp));
  sel = calloc(n, sizeof(*sel));
  if (ends == NULL || tmp == NULL || sel == NULL) {
    rc = FL_ENOMEM;
    goto done;
  }
  /* The end offsets: the bound, LATEST, the lag's first value, and "no such message". */
  rc = ks_list_offsets(ctx, in, NULL, RD_KAFKA_OFFSET_END, ends);
  if (rc != FL_OK) goto done;
  for (size_t i = 0; i < n; i++) {
    in->parts[i].end = ends[i];
    in->parts[i].high = ends[i];
    in->parts[i].next = -1;
  }
  switch (c->start) {
  case FL_KAFKA_START_LATEST:
    for (size_t i = 0; i < n; i++) in->parts[i].next = ends[i];
    break;
  case FL_KAFKA_START_EARLIEST: break; /* below: every partition without a position */
  case FL_KAFKA_START_TIMESTAMP:
    rc = ks_list_offsets(ctx, in, NULL, c->start_ts, tmp);
    if (rc != FL_OK) goto done;
    /* -1: no message at or after the timestamp: the end */
    for (size_t i = 0; i < n; i++) in->parts[i].next = tmp[i] >= 0 ? tmp[i] : ends[i];
    break;
  case FL_KAFKA_START_COMMITTED: {
    rd_kafka_topic_partition_list_t *l = ks_list(in, NULL);
    rd_kafka_resp_err_t err;
    if (l == NULL) {
      rc = FL_ENOMEM;
      goto done;
    }
    err = rd_kafka_committed(in->rk, l, c->timeout_ms);
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      rd_kafka_topic_partition_list_destroy(l);
      char what[600];
      snprintf(what, sizeof(what), "cannot read the committed offsets of group '%s'", c->group_id);
      rc = ks_fail_client(ctx, in, what, err);
      goto done;
    }
    for (int i = 0; i < l->cnt; i++) {
      const rd_kafka_topic_partition_t *e = &l->elems[i];
      ks_part_t *p = fl_ksrc_find(in, e->topic, e->partition);
      if (e->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        rc = fl_ctx_fail(ctx,
                         "cannot read the committed offset of group '%s' for topic %s "
                         "partition %" PRId32 ": %s",
                         c->group_id, e->topic, e->partition, rd_kafka_err2str(e->err));
        rd_kafka_topic_partition_list_destroy(l);
        goto done;
      }
      if (p != NULL && e->offset >= 0) p->next = e->offset;
    }
    rd_kafka_topic_partition_list_destroy(l);
    if (c->fallback == FL_KAFKA_START_LATEST)
      for (size_t i = 0; i < n; i++)
        if (in->parts[i].next < 0) in->parts[i].next = ends[i];
    break;
  }
  }
  /* EARLIEST, and COMMITTED's EARLIEST fallback: the log start offsets. */
  {
    bool any = false;
    for (size_t i = 0; i < n; i++) any |= sel[i] = in->parts[i].next < 0;
    if (any) {
      rc = ks_list_offsets(ctx, in, sel, RD_KAFKA_OFFSET_BEGINNING, tmp);
      if (rc != FL_OK) goto done;
      for (size_t i = 0; i < n; i++)
        if (sel[i]) in->parts[i].next = tmp[i] >= 0 ? tmp[i] : 0;
    }
  }
  for (size_t i = 0; i < n; i++)
    in->parts[i].done = c->bounded && in->parts[i].next >= in->parts[i].end;
done:
  free(ends);
  free(tmp);
  free(sel);
  return rc;
}

static int ks_setup_fds(fl_context_t *ctx, ks_inst_t *in) {
  const ks_conf_t *c = in->conf;
  struct epoll_event ev = {.events = EPOLLIN};
  int64_t tick = KS_LAG_EVERY_MS;
  struct itimerspec its;
  static const char one[8] = {1, 0, 0, 0, 0, 0, 0, 0};

  in->epfd = epoll_create1(EPOLL_CLOEXEC);
  in->evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  in->tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
  if (in->epfd < 0 || in->evfd < 0 || in->tfd < 0)
    return fl_ctx_fail(ctx, "cannot create the wait descriptors: %s", strerror(errno));
  ev.data.fd = in->evfd;
  if (epoll_ctl(in->epfd, EPOLL_CTL_ADD, in->evfd, &ev) != 0)
    return fl_ctx_fail(ctx, "epoll_ctl: %s", strerror(errno));
  ev.data.fd = in->tfd;
  if (epoll_ctl(in->epfd, EPOLL_CTL_ADD, in->tfd, &ev) != 0)
    return fl_ctx_fail(ctx, "epoll_ctl: %s", strerror(errno));
  /* Idleness needs a tick well below the timeout; lag is refreshed once a second. */
  if (c->has_wm && c->wm.idle_timeout_ms > 0) {
    int64_t t = c->wm.idle_timeout_ms / 4;
    if (t < 10) t = 10;
    if (t < tick) tick = t;
  }
  its.it_interval.tv_sec = tick / 1000;
  its.it_interval.tv_nsec = (tick % 1000) * 1000000;
  its.it_value = its.it_interval;
  if (timerfd_settime(in->tfd, 0, &its, NULL) != 0)
    return fl_ctx_fail(ctx, "timerfd_settime: %s", strerror(errno));
  /* eventfd counters take 8-byte writes; a commit result wakes the worker too */
  rd_kafka_queue_io_event_enable(in->q, in->evfd, one, sizeof(one));
  rd_kafka_queue_io_event_enable(in->cq, in->evfd, one, sizeof(one));
  return FL_OK;
}

/* "<prefix>.<topic>.<partition>" into out, or "" (and false) when it does not fit. */
static bool ks_metric_name(char out[KS_METRIC_NAME], const char *prefix, const ks_part_t *p) {
  int len = snprintf(out, KS_METRIC_NAME, "%s.%s.%" PRId32, prefix, p->topic, p->partition);
  if (len >= 0 && len < KS_METRIC_NAME) return true;
  out[0] = '\0';
  return false;
}

int fl_ksrc_open(fl_context_t *ctx, void *opaque, void **instance) {
  const ks_conf_t *c = opaque;
  ks_inst_t *in = NULL;
  const char *long_topic = NULL;
  int64_t now;
  int rc = FL_OK;

  in = calloc(1, sizeof(*in));
  if (in == NULL) return FL_ENOMEM;
  in->conf = c;
  in->ctx = ctx;
  in->subtask = fl_ctx_subtask(ctx);
  in->epfd = in->evfd = in->tfd = -1;
  rc = ks_new_client(ctx, in, RD_KAFKA_CONSUMER, &in->rk);
  if (rc != FL_OK) goto done;
  rd_kafka_poll_set_consumer(in->rk);
  in->q = rd_kafka_queue_get_consumer(in->rk);
  in->cq = rd_kafka_queue_new(in->rk);
  if (in->q == NULL || in->cq == NULL) {
    rc = fl_ctx_fail(ctx, "cannot get the consumer queues");
    goto done;
  }
  if (c->on_error == FL_KAFKA_ON_ERROR_DEAD_LETTER) {
    rc = ks_new_client(ctx, in, RD_KAFKA_PRODUCER, &in->dlq);
    if (rc != FL_OK) goto done;
  }
  rc = ks_discover(ctx, in);
  if (rc != FL_OK) goto done;
  rc = ks_resolve_start(ctx, in);
  if (rc != FL_OK) goto done;
  now = fl_ctx_processing_time(ctx);
  for (size_t i = 0; i < in->n_parts; i++) {
    ks_part_t *p = &in->parts[i];
    p->max_ts = FL_TS_NONE;
    p->last_active = now;
    p->shown_next = -1;
    /* all three or none: the longest prefix decides */
    if (!ks_metric_name(p->com_name, "committed-offset", p)) {
      p->lag_name[0] = p->cur_name[0] = '\0';
      long_topic = p->topic;
    } else {
      ks_metric_name(p->lag_name, "records-lag", p);
      ks_metric_name(p->cur_name, "current-offset", p);
    }
  }
  if (long_topic != NULL)
    fl_ctx_log(ctx, FL_LOG_WARN,
               "kafka source '%s': topic '%s' has a name too long for its "
               "per-partition metrics (records-lag, current-offset, committed-offset: "
               "\"committed-offset.<topic>.<partition>\" has at most %d bytes), which are "
               "not published",
               c->name, long_topic, KS_METRIC_NAME - 1);
  /* Flink's KafkaSource shows these from the start: zero commits, -1 committed. */
  fl_ctx_counter_add(ctx, "commits-succeeded", 0);
  fl_ctx_counter_add(ctx, "commits-failed", 0);
  for (size_t i = 0; i < in->n_parts; i++)
    if (in->parts[i].com_name[0] != '\0') fl_ctx_gauge_set(ctx, in->parts[i].com_name, -1);
  rc = ks_setup_fds(ctx, in);
  if (rc != FL_OK) goto done;
  *instance = in;
  in = NULL;
done:
  fl_ksrc_close(in);
  return rc;
}
/* ---------------------------------------------------------------------------------- */
/* run()                                                                              */

static int ks_assign(fl_context_t *ctx, ks_inst_t *in) {
  rd_kafka_topic_partition_list_t *l = NULL;
  rd_kafka_resp_err_t err;
  size_t k = 0;
  if (in->n_parts == 0) return FL_OK;
  l = rd_kafka_topic_partition_list_new((int)in->n_parts);
  if (l == NULL) return FL_ENOMEM;
  for (size_t i = 0; i < in->n_parts; i++) {
    if (in->parts[i].done) continue; /* bounded and already at its end */
    rd_kafka_topic_partition_list_add(l, in->parts[i].topic, in->parts[i].partition)->offset =
        in->parts[i].next;
    k++;
  }
  err = k > 0 ? rd_kafka_assign(in->rk, l) : RD_KAFKA_RESP_ERR_NO_ERROR;
  rd_kafka_topic_partition_list_destroy(l);
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR)
    return ks_fail_client(ctx, in, "cannot assign the partitions", err);
  return FL_OK;
}

bool fl_ksrc_all_done(const ks_inst_t *in) {
  for (size_t i = 0; i < in->n_parts; i++)
    if (!in->parts[i].done) return false;
  return true;
}

static void ks_drain_fd(int fd) {
  uint64_t v;
  while (read(fd, &v, sizeof(v)) > 0) {}
}

int fl_ksrc_run(fl_context_t *ctx, void *instance) {
  ks_inst_t *in = instance;
  size_t budget = fl_ctx_source_budget(ctx);
  size_t polled = 0, consumed = 0;
  int rc = FL_OK;

  if (!in->assigned) {
    in->assigned = true;
    rc = ks_assign(ctx, in);
    if (rc != FL_OK) return rc;
    if (in->n_parts == 0 && !in->conf->bounded) {
      rc = fl_ctx_mark_idle(ctx, 1); /* nothing to read: never hold event time back */
      if (rc != FL_OK) return rc;
      in->idle_out = true;
    }
  }
  if (in->conf->bounded && fl_ksrc_all_done(in)) goto end;
  /* Clear the wake-ups before polling: anything enqueued after the last poll below
   * writes the eventfd again. */
  ks_drain_fd(in->evfd);
  ks_drain_fd(in->tfd);
  fl_ksrc_commit_results(in);
  in->now = fl_ctx_processing_time(ctx);
  /* In batches: one queue operation for up to KS_BATCH messages, not one per message. */
  while (polled < budget) {
    rd_kafka_message_t *batch[KS_BATCH];
    size_t want = budget - polled < KS_BATCH ? budget - polled : KS_BATCH;
    ssize_t got = rd_kafka_consume_batch_queue(in->q, 0, batch, want);
    if (got <= 0) break;
    for (ssize_t i = 0; i < got; i++) {
      rd_kafka_message_t *m = batch[i];
      polled++;
      if (rc == FL_OK) {
        if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
          rc = fl_ksrc_on_error(ctx, in, m);
        } else {
          consumed++;
          rc = fl_ksrc_on_message(ctx, in, m);
        }
      }
      rd_kafka_message_destroy(m);
    }
    if (rc != FL_OK) return rc;
    if ((size_t)got < want) break;
  }
  if (consumed > 0) fl_ctx_counter_add(ctx, "records-consumed", (int64_t)consumed);
  fl_ksrc_show_offsets(ctx, in);
  if (in->client_fatal) return fl_ksrc_fail_fatal(ctx, in);
  if (in->dlq != NULL) {
    rd_kafka_poll(in->dlq, 0); /* delivery reports */
    if (in->dlq_failed) return fl_ctx_fail(ctx, "%s", in->dlq_err);
  }
  rc = fl_ksrc_event_time(ctx, in);
  if (rc != FL_OK) return rc;
  fl_ksrc_update_lag(ctx, in);
  if (in->conf->bounded && fl_ksrc_all_done(in)) goto end;
  if (polled > 0) return FL_SOURCE_MORE;
  rc = fl_ctx_source_wait_fd(ctx, in->epfd);
  return rc != FL_OK ? rc : FL_SOURCE_WAIT;
end:
  rc = fl_ksrc_dlq_flush(ctx, in);
  if (rc != FL_OK) return rc;
  fl_ksrc_show_offsets(ctx, in);
  in->last_lag_ms = 0;
  fl_ksrc_update_lag(ctx, in);
  in->ended = true;
  return FL_SOURCE_END;
}