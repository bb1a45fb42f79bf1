/*
 * The Kafka source's positions (kafka_source_int.h). A snapshot is the list of (topic,
 * partition, next offset); it is also kept in a small ring by checkpoint id so that
 * checkpoint_complete(id) commits exactly what checkpoint id holds to the group. A
 * restore takes the positions of the partitions this subtask owns now, from the states
 * of every old subtask. The results of the commits set the committed-offset gauges and
 * the commits-succeeded and commits-failed counters.
 *
 * Snapshot format (little-endian): u32 magic "FKS1", u32 count, then count times
 * { u16 topic length, topic bytes, i32 partition, i64 next offset }.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include <librdkafka/rdkafka.h>

#include "io/kafka_source_int.h"
#include "runtime/connector.h"

#define KS_MAGIC 0x31534b46u /* "FKS1" */

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

int fl_ksrc_restore(fl_context_t *ctx, void *instance, const fl_bytes_t *states, size_t n) {
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
      ks_part_t *part = fl_ksrc_find(in, topic, partition);
      if (part != NULL && next >= 0) {
        part->next = next;
        part->done = in->conf->bounded && part->next >= part->end;
      }
    }
  }
  return FL_OK;
}

int fl_ksrc_dlq_flush(fl_context_t *ctx, ks_inst_t *in) {
  rd_kafka_resp_err_t err;
  if (in->dlq == NULL) return FL_OK;
  err = rd_kafka_flush(in->dlq, in->conf->timeout_ms);
  if (in->dlq_failed) return fl_ctx_fail(ctx, "%s", in->dlq_err);
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR)
    return fl_ctx_fail(ctx, "cannot deliver to the dead-letter topic %s within %d ms: %s",
                       in->conf->dlq_topic, in->conf->timeout_ms, rd_kafka_err2str(err));
  return FL_OK;
}

int fl_ksrc_snapshot(fl_context_t *ctx, void *instance, fl_buf_t *out) {
  ks_inst_t *in = instance;
  size_t len = 8;
  uint8_t *b;
  int64_t **slot = NULL;
  int rc;

  rc = fl_ksrc_dlq_flush(ctx, in);
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

/* The result of one group commit, on the worker's thread (served from in->cq, or by the
 * commit call itself when synchronous): Flink's KafkaSourceReader metrics. offsets
 * carries each partition's error (librdkafka gives a failed request's error to all). */
static void ks_commit_done(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                           rd_kafka_topic_partition_list_t *offsets, void *opaque) {
  ks_inst_t *in = opaque;
  (void)rk;
  in->commit_results++;
  for (int i = 0; offsets != NULL && i < offsets->cnt; i++) {
    const rd_kafka_topic_partition_t *e = &offsets->elems[i];
    ks_part_t *p = e->err == RD_KAFKA_RESP_ERR_NO_ERROR && e->offset >= 0
                       ? fl_ksrc_find(in, e->topic, e->partition)
                       : NULL;
    if (p != NULL && p->com_name[0] != '\0') fl_ctx_gauge_set(in->ctx, p->com_name, e->offset);
  }
  fl_ctx_counter_add(in->ctx, err ? "commits-failed" : "commits-succeeded", 1);
  if (err && !in->commit_failing)
    fl_ctx_log(in->ctx, FL_LOG_WARN,
               "kafka source '%s': cannot commit the positions to group '%s' (brokers %s): "
               "%s; the job goes on (its checkpoints hold the positions)",
               in->conf->name, in->conf->group_id, in->conf->brokers, rd_kafka_err2str(err));
  else if (!err && in->commit_failing)
    fl_ctx_log(in->ctx, FL_LOG_INFO, "kafka source '%s': commits to group '%s' succeed again",
               in->conf->name, in->conf->group_id);
  in->commit_failing = err != RD_KAFKA_RESP_ERR_NO_ERROR;
}

void fl_ksrc_commit_results(ks_inst_t *in) { rd_kafka_queue_poll_callback(in->cq, 0); }

/* Commits positions to the group: next[i] for partition i, or the current positions
 * when next is NULL; the result comes to in->cq, or before the return when not async.
 * Commits are for monitoring only: a failed one does not fail the job (the checkpoint
 * holds the positions). */
static int ks_commit(ks_inst_t *in, const int64_t *next, bool async) {
  rd_kafka_topic_partition_list_t *l;
  uint64_t results = in->commit_results;
  rd_kafka_resp_err_t err;
  if (in->n_parts == 0) return FL_OK;
  l = rd_kafka_topic_partition_list_new((int)in->n_parts);
  if (l == NULL) return FL_ENOMEM;
  for (size_t i = 0; i < in->n_parts; i++)
    rd_kafka_topic_partition_list_add(l, in->parts[i].topic, in->parts[i].partition)->offset =
        next != NULL ? next[i] : in->parts[i].next;
  err = rd_kafka_commit_queue(in->rk, l, async ? in->cq : NULL, ks_commit_done, in);
  /* refused before it was sent: no result will come */
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR && in->commit_results == results)
    ks_commit_done(in->rk, err, NULL, in);
  rd_kafka_topic_partition_list_destroy(l);
  return FL_OK;
}

int fl_ksrc_checkpoint_complete(fl_context_t *ctx, void *instance, int64_t id) {
  ks_inst_t *in = instance;
  const int64_t *next = NULL;
  int best = -1;
  int rc;

  (void)ctx;
  /* Results that came while run() is no longer called (the source ended). */
  fl_ksrc_commit_results(in);
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
