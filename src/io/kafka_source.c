/*
 * Kafka source (fl_source_kafka), built on fl_source() with a version 3 function table.
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
 * checkpoint_complete(id) commits exactly what checkpoint id holds to the group.
 *
 * Snapshot format (little-endian): u32 magic "FKS1", u32 count, then count times
 * { u16 topic length, topic bytes, i32 partition, i64 next offset }.
 */
#define _GNU_SOURCE

#include <errno.h>
#include <inttypes.h>
#include <regex.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>

#include "flink.h"
#include "io/kafka_common.h"
#include "runtime/connector.h"

#define KS_MAGIC 0x31534b46u /* "FKS1" */
#define KS_RING 8            /* snapshots kept for checkpoints not yet complete */
#define KS_LAG_EVERY_MS 1000
#define KS_DEFAULT_TIMEOUT_MS 30000

/* ---------------------------------------------------------------------------------- */
/* Shared configuration (immutable after the builder)                                 */

typedef struct ks_conf {
  char *name;
  char *brokers;
  char *group_id;
  char *dlq_topic;
  char **props;      /* copied key, value pairs, NULL-terminated */
  char **topic_list; /* named topics, or NULL with a regex */
  size_t n_topics;
  bool use_regex;
  regex_t re;
  fl_kafka_start_t start, fallback;
  int64_t start_ts;
  bool bounded;
  bool has_wm;
  fl_watermark_strategy_t wm;
  fl_kafka_deserialize_fn deser;
  void *deser_opaque;
  void (*deser_destroy)(void *opaque);
  fl_kafka_error_policy_t on_error;
  int timeout_ms;
} ks_conf_t;

/* ---------------------------------------------------------------------------------- */
/* Per-subtask instance                                                               */

typedef struct ks_part {
  char *topic;
  int32_t partition;
  int64_t next;        /* next offset to hand out */
  int64_t end;         /* bounded: the end offset seen at start */
  int64_t high;        /* last known high watermark (lag), -1 unknown */
  bool done;           /* bounded: reached end */
  int64_t max_ts;      /* event time: largest timestamp seen, FL_TS_NONE */
  int64_t last_active; /* processing time of the last message (or of the start) */
  bool idle;
  char lag_name[96]; /* "records-lag.<topic>.<partition>", "" when too long */
} ks_part_t;

typedef struct ks_snap {
  int64_t id; /* checkpoint id; 0: free slot */
  int64_t *next;
} ks_snap_t;

typedef struct ks_inst {
  const ks_conf_t *conf;
  int64_t now; /* processing time at the start of this run() call */
  int subtask;
  rd_kafka_t *rk;
  rd_kafka_queue_t *q;
  rd_kafka_t *dlq;   /* dead-letter producer, or NULL */
  char dlq_err[512]; /* first delivery error of the dead-letter producer */
  bool dlq_failed;
  int epfd, evfd, tfd;
  ks_part_t *parts;
  size_t n_parts;
  size_t last_part; /* lookup cache */
  bool assigned;
  bool ended;          /* run() returned FL_SOURCE_END */
  bool idle_out;       /* we told downstream we are idle */
  int64_t last_lag_ms; /* monotonic */
  ks_snap_t ring[KS_RING];
  int64_t *final_next;     /* positions when the source ended (snapshot after END) */
  fl_kafka_header_t *hdrs; /* reused header array for the deserializer */
  size_t hdrs_cap;
} ks_inst_t;

#define KS_BATCH 256 /* messages taken from the consumer queue at once */

static int64_t mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

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

static void ks_close(void *instance) {
  ks_inst_t *in = instance;
  if (in == NULL) return;
  if (in->q != NULL) {
    rd_kafka_queue_io_event_enable(in->q, -1, NULL, 0);
    rd_kafka_queue_destroy(in->q);
  }
  if (in->rk != NULL) {
    rd_kafka_consumer_close(in->rk);
    rd_kafka_destroy(in->rk);
  }
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
  } else {
    if (rc == FL_OK) rc = fl_kafka_conf_set(conf, "enable.idempotence", "true", err, sizeof(err));
    rd_kafka_conf_set_dr_msg_cb(conf, ks_dlq_dr);
    rd_kafka_conf_set_opaque(conf, in);
  }
  if (rc == FL_OK) rc = fl_kafka_conf_apply(conf, c->props, err, sizeof(err));
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
      if (n_all == cap) {
        size_t ncap = cap ? cap * 2 : 16;
        ks_part_t *na = realloc(all, ncap * sizeof(*na));
        if (na == NULL) {
          rc = FL_ENOMEM;
          goto done;
        }
        all = na;
        cap = ncap;
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

static ks_part_t *ks_find(ks_inst_t *in, const char *topic, int32_t partition) {
  if (in->last_part < in->n_parts) {
    ks_part_t *p = &in->parts[in->last_part];
    if (p->partition == partition && strcmp(p->topic, topic) == 0) return p;
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
    ks_part_t *p = ks_find(in, e->topic, e->partition);
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
      ks_part_t *p = ks_find(in, e->topic, e->partition);
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
  /* eventfd counters take 8-byte writes */
  rd_kafka_queue_io_event_enable(in->q, in->evfd, one, sizeof(one));
  return FL_OK;
}

static int ks_open(fl_context_t *ctx, void *opaque, void **instance) {
  const ks_conf_t *c = opaque;
  ks_inst_t *in = NULL;
  int64_t now;
  int rc = FL_OK;

  in = calloc(1, sizeof(*in));
  if (in == NULL) return FL_ENOMEM;
  in->conf = c;
  in->subtask = fl_ctx_subtask(ctx);
  in->epfd = in->evfd = in->tfd = -1;
  rc = ks_new_client(ctx, in, RD_KAFKA_CONSUMER, &in->rk);
  if (rc != FL_OK) goto done;
  rd_kafka_poll_set_consumer(in->rk);
  in->q = rd_kafka_queue_get_consumer(in->rk);
  if (in->q == NULL) {
    rc = fl_ctx_fail(ctx, "cannot get the consumer queue");
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
    int len;
    p->max_ts = FL_TS_NONE;
    p->last_active = now;
    len = snprintf(p->lag_name, sizeof(p->lag_name), "records-lag.%s.%" PRId32, p->topic,
                   p->partition);
    if (len < 0 || (size_t)len >= sizeof(p->lag_name)) p->lag_name[0] = '\0';
  }
  rc = ks_setup_fds(ctx, in);
  if (rc != FL_OK) goto done;
  *instance = in;
  in = NULL;
done:
  ks_close(in);
  return rc;
}

/* ---------------------------------------------------------------------------------- */
/* Restore and snapshots                                                              */

static void put_u16(uint8_t *p, uint16_t v) {
  p[0] = (uint8_t)v;
  p[1] = (uint8_t)(v >> 8);
}
static void put_u32(uint8_t *p, uint32_t v) {
  for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static void put_u64(uint8_t *p, uint64_t v) {
  for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static uint16_t get_u16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }
static uint32_t get_u32(const uint8_t *p) {
  uint32_t v = 0;
  for (int i = 3; i >= 0; i--) v = (v << 8) | p[i];
  return v;
}
static uint64_t get_u64(const uint8_t *p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; i--) v = (v << 8) | p[i];
  return v;
}

static int ks_restore(fl_context_t *ctx, void *instance, const fl_bytes_t *states, size_t n) {
  ks_inst_t *in = instance;
  for (size_t s = 0; s < n; s++) {
    const uint8_t *p = states[s].data, *end = p + states[s].len;
    uint32_t count;
    if (states[s].len == 0) continue; /* a subtask that never ran */
    if (states[s].len < 8 || get_u32(p) != KS_MAGIC)
      return fl_ctx_fail(ctx,
                         "the checkpointed Kafka positions of old subtask %zu are "
                         "malformed (%zu bytes, no FKS1 header)",
                         s, states[s].len);
    count = get_u32(p + 4);
    p += 8;
    for (uint32_t i = 0; i < count; i++) {
      uint16_t tl;
      char topic[1024];
      int32_t partition;
      int64_t next;
      if (end - p < 2 || (tl = get_u16(p), (size_t)(end - p) < 2u + tl + 12u) ||
          tl >= sizeof(topic))
        return fl_ctx_fail(ctx,
                           "the checkpointed Kafka positions of old subtask %zu are "
                           "truncated at entry %" PRIu32,
                           s, i);
      memcpy(topic, p + 2, tl);
      topic[tl] = '\0';
      partition = (int32_t)get_u32(p + 2 + tl);
      next = (int64_t)get_u64(p + 6 + tl);
      p += 14 + tl;
      ks_part_t *part = ks_find(in, topic, partition);
      if (part != NULL && next >= 0) {
        part->next = next;
        part->done = in->conf->bounded && part->next >= part->end;
      }
    }
  }
  return FL_OK;
}

/* Delivers every dead letter produced so far (the checkpoint covers their offsets). */
static int ks_dlq_flush(fl_context_t *ctx, ks_inst_t *in) {
  rd_kafka_resp_err_t err;
  if (in->dlq == NULL) return FL_OK;
  err = rd_kafka_flush(in->dlq, in->conf->timeout_ms);
  if (in->dlq_failed) return fl_ctx_fail(ctx, "%s", in->dlq_err);
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR)
    return fl_ctx_fail(ctx, "cannot deliver to the dead-letter topic %s within %d ms: %s",
                       in->conf->dlq_topic, in->conf->timeout_ms, rd_kafka_err2str(err));
  return FL_OK;
}

static int ks_snapshot(fl_context_t *ctx, void *instance, fl_buf_t *out) {
  ks_inst_t *in = instance;
  size_t len = 8;
  uint8_t *b;
  int64_t **slot = NULL;
  int rc;

  rc = ks_dlq_flush(ctx, in);
  if (rc != FL_OK) return rc;
  for (size_t i = 0; i < in->n_parts; i++) len += 14 + strlen(in->parts[i].topic);
  size_t base = 0;
  fl_buf_data(out, &base);
  b = fl_buf_resize(out, base + len);
  if (b == NULL) return FL_ENOMEM;
  b += base;
  put_u32(b, KS_MAGIC);
  put_u32(b + 4, (uint32_t)in->n_parts);
  b += 8;
  for (size_t i = 0; i < in->n_parts; i++) {
    const ks_part_t *p = &in->parts[i];
    size_t tl = strlen(p->topic);
    put_u16(b, (uint16_t)tl);
    memcpy(b + 2, p->topic, tl);
    put_u32(b + 2 + tl, (uint32_t)p->partition);
    put_u64(b + 6 + tl, (uint64_t)p->next);
    b += 14 + tl;
  }
  /* Remember the positions under the checkpoint's id for checkpoint_complete, except
   * for the final snapshot taken when the source ended (kept for later checkpoints). */
  if (in->ended) {
    slot = &in->final_next;
  } else {
    int64_t id = fl_ctx_checkpoint_id(ctx);
    int k = 0;
    for (int i = 1; i < KS_RING; i++)
      if (in->ring[i].id < in->ring[k].id) k = i; /* a free slot (id 0) or the oldest */
    in->ring[k].id = id;
    slot = &in->ring[k].next;
  }
  if (*slot == NULL && in->n_parts > 0) {
    *slot = malloc(in->n_parts * sizeof(int64_t));
    if (*slot == NULL) return FL_ENOMEM;
  }
  for (size_t i = 0; i < in->n_parts; i++) (*slot)[i] = in->parts[i].next;
  return FL_OK;
}

/* Commits positions to the group: next[i] for partition i, or the current positions
 * when next is NULL. Commits are for monitoring only: a failed one does not fail the
 * job (the checkpoint holds the positions). */
static int ks_commit(ks_inst_t *in, const int64_t *next, bool async) {
  rd_kafka_topic_partition_list_t *l;
  if (in->n_parts == 0) return FL_OK;
  l = rd_kafka_topic_partition_list_new((int)in->n_parts);
  if (l == NULL) return FL_ENOMEM;
  for (size_t i = 0; i < in->n_parts; i++)
    rd_kafka_topic_partition_list_add(l, in->parts[i].topic, in->parts[i].partition)->offset =
        next != NULL ? next[i] : in->parts[i].next;
  (void)rd_kafka_commit(in->rk, l, async ? 1 : 0);
  rd_kafka_topic_partition_list_destroy(l);
  return FL_OK;
}

static int ks_checkpoint_complete(fl_context_t *ctx, void *instance, int64_t id) {
  ks_inst_t *in = instance;
  const int64_t *next = NULL;
  int best = -1;
  int rc;

  (void)ctx;
  if (id == INT64_MAX)
    return ks_commit(in, NULL, false); /* the job ended well: its final positions */
  for (int i = 0; i < KS_RING; i++)
    if (in->ring[i].id > 0 && in->ring[i].id <= id &&
        (best < 0 || in->ring[i].id > in->ring[best].id))
      best = i;
  if (in->final_next != NULL)
    next = in->final_next; /* checkpoints after the end hold the final positions */
  else if (best >= 0)
    next = in->ring[best].next;
  if (next == NULL) return FL_OK;
  rc = ks_commit(in, next, true);
  /* Everything up to id is complete: those snapshots are done with. */
  for (int i = 0; i < KS_RING; i++)
    if (in->ring[i].id > 0 && in->ring[i].id <= id) in->ring[i].id = 0;
  return rc;
}

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

/* An error event from the consumer queue: fatal ones fail the job; retriable ones
 * (broker down, transport) are librdkafka's to recover from, so the source waits. */
static int ks_on_error(fl_context_t *ctx, ks_inst_t *in, const rd_kafka_message_t *m) {
  char fatal[512];
  const char *topic = m->rkt != NULL ? rd_kafka_topic_name(m->rkt) : NULL;
  if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
    ks_part_t *p = topic ? ks_find(in, topic, m->partition) : NULL;
    /* The last offsets before the end may be transaction markers, never delivered. */
    if (p != NULL && in->conf->bounded && m->offset >= p->end) p->done = true;
    if (p != NULL && m->offset > p->high) p->high = m->offset;
    return FL_OK;
  }
  if (!ks_err_is_fatal(m->err)) return FL_OK;
  if (m->err == RD_KAFKA_RESP_ERR__FATAL) {
    rd_kafka_resp_err_t orig = rd_kafka_fatal_error(in->rk, fatal, sizeof(fatal));
    return fl_ctx_fail(ctx, "fatal Kafka consumer error (brokers %s): %s: %s", in->conf->brokers,
                       rd_kafka_err2name(orig), fatal);
  }
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
  int64_t deadline = mono_ms() + in->conf->timeout_ms;

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
    if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL || mono_ms() >= deadline) break;
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

/* One data message: handed to the deserializer, then emitted or handled by the
 * error policy. */
static int ks_on_message(fl_context_t *ctx, ks_inst_t *in, const rd_kafka_message_t *m) {
  const ks_conf_t *c = in->conf;
  const char *topic = rd_kafka_topic_name(m->rkt);
  ks_part_t *p = ks_find(in, topic, m->partition);
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
  if (c->has_wm) {
    if (c->wm.timestamp != NULL) {
      int64_t t = FL_TS_NONE;
      rc = c->wm.timestamp(ctx, &rec, &t, c->wm.opaque);
      if (rc < 0) return rc;
      rec.timestamp = t;
    }
    if (rec.timestamp != FL_TS_NONE && (p->max_ts == FL_TS_NONE || rec.timestamp > p->max_ts))
      p->max_ts = rec.timestamp;
  }
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
    pw = p->max_ts - 1;
    if (s->kind == FL_WATERMARKS_BOUNDED) pw -= s->max_out_of_orderness_ms;
    if (pw < wm) wm = pw;
  }
  return *active ? wm : FL_TS_NONE;
}

static bool ks_all_done(const ks_inst_t *in);

static int ks_event_time(fl_context_t *ctx, ks_inst_t *in) {
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
  if (!active && !in->idle_out && !(in->conf->bounded && ks_all_done(in))) {
    rc = fl_ctx_mark_idle(ctx, 1);
    if (rc != FL_OK) return rc;
    in->idle_out = true;
  }
  return FL_OK;
}

static void ks_update_lag(fl_context_t *ctx, ks_inst_t *in) {
  int64_t now = mono_ms();
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
    if (p->lag_name[0] != '\0')
      fl_ctx_gauge_set(ctx, p->lag_name, lag); /* past 64 names: not shown */
  }
  fl_ctx_gauge_set(ctx, "records-lag-max", max);
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

static bool ks_all_done(const ks_inst_t *in) {
  for (size_t i = 0; i < in->n_parts; i++)
    if (!in->parts[i].done) return false;
  return true;
}

static void ks_drain_fd(int fd) {
  uint64_t v;
  while (read(fd, &v, sizeof(v)) > 0) {}
}

static int ks_run(fl_context_t *ctx, void *instance) {
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
  if (in->conf->bounded && ks_all_done(in)) goto end;
  /* Clear the wake-ups before polling: anything enqueued after the last poll below
   * writes the eventfd again. */
  ks_drain_fd(in->evfd);
  ks_drain_fd(in->tfd);
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
          rc = ks_on_error(ctx, in, m);
        } else {
          consumed++;
          rc = ks_on_message(ctx, in, m);
        }
      }
      rd_kafka_message_destroy(m);
    }
    if (rc != FL_OK) return rc;
    if ((size_t)got < want) break;
  }
  if (consumed > 0) fl_ctx_counter_add(ctx, "records-consumed", (int64_t)consumed);
  if (in->dlq != NULL) {
    rd_kafka_poll(in->dlq, 0); /* delivery reports */
    if (in->dlq_failed) return fl_ctx_fail(ctx, "%s", in->dlq_err);
  }
  rc = ks_event_time(ctx, in);
  if (rc != FL_OK) return rc;
  ks_update_lag(ctx, in);
  if (in->conf->bounded && ks_all_done(in)) goto end;
  if (polled > 0) return FL_SOURCE_MORE;
  rc = fl_ctx_source_wait_fd(ctx, in->epfd);
  return rc != FL_OK ? rc : FL_SOURCE_WAIT;
end:
  rc = ks_dlq_flush(ctx, in);
  if (rc != FL_OK) return rc;
  in->last_lag_ms = 0;
  ks_update_lag(ctx, in);
  in->ended = true;
  return FL_SOURCE_END;
}

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
    if (c->n_topics == cap) {
      size_t ncap = cap ? cap * 2 : 4;
      char **nl = realloc(c->topic_list, ncap * sizeof(*nl));
      if (nl == NULL) return FL_ENOMEM;
      c->topic_list = nl;
      cap = ncap;
    }
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
      .open = ks_open,
      .run = ks_run,
      .close = ks_close,
      .destroy = ks_destroy,
      .snapshot = ks_snapshot,
      .restore = ks_restore,
      .checkpoint_complete = ks_checkpoint_complete,
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
