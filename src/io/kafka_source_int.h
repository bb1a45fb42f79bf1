/*
 * The Kafka source's files and what they share (private to src/io/kafka_source*.c):
 *
 *   kafka_source.c          an instance: its clients, partitions and start offsets at
 *                           open, and run() (the design is described there)
 *   kafka_source_records.c  messages and error events from the consumer, the error
 *                           policies, and event time (watermarks, idleness) and lag
 *   kafka_source_state.c    positions in checkpoints, restore, group commits and their
 *                           metrics
 *   kafka_source_opts.c     the builder: checking and copying the options
 *
 * An instance is used by its worker thread only.
 */
#ifndef FL_IO_KAFKA_SOURCE_INT_H
#define FL_IO_KAFKA_SOURCE_INT_H

#include <regex.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <librdkafka/rdkafka.h>

#include "flink.h"
#include "io/kafka_health.h"

#define KS_RING 8 /* snapshots kept for checkpoints not yet complete */
#define KS_LAG_EVERY_MS 1000
#define KS_DEFAULT_TIMEOUT_MS 30000
#define KS_METRIC_NAME 96 /* a user metric name's bytes with its NUL (flink.h: at most 95) */

/* The options, copied by the builder; immutable while the job runs. */
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
  int64_t shown_next; /* the current-offset gauge's value, -1 before the first */
  /* "records-lag.<topic>.<partition>", "current-offset.<t>.<p>", "committed-offset.<t>.<p>"
   * gauges; "" when the name would be too long (not published) */
  char lag_name[KS_METRIC_NAME], cur_name[KS_METRIC_NAME], com_name[KS_METRIC_NAME];
} ks_part_t;

typedef struct ks_snap {
  int64_t id; /* checkpoint id; 0: free slot */
  int64_t *next;
} ks_snap_t;

/* One subtask. */
typedef struct ks_inst {
  const ks_conf_t *conf;
  fl_context_t *ctx;        /* the runtime's context of this instance, stable while open */
  fl_kafka_health_t health; /* the consumer's brokers (its callbacks run in run()) */
  bool client_fatal;        /* the error callback saw a fatal error */
  int64_t now;              /* processing time at the start of this run() call */
  int subtask;
  rd_kafka_t *rk;
  rd_kafka_queue_t *q;
  rd_kafka_queue_t *cq;    /* results of group commits, served by the worker's thread */
  uint64_t commit_results; /* results served so far */
  bool commit_failing;     /* the last commit failed (logged once until one succeeds) */
  rd_kafka_t *dlq;         /* dead-letter producer, or NULL */
  char dlq_err[512];       /* first delivery error of the dead-letter producer */
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

/* kafka_source.c: the source functions open, run and close, and lookups. */
int fl_ksrc_open(fl_context_t *ctx, void *opaque, void **instance);
int fl_ksrc_run(fl_context_t *ctx, void *instance);
void fl_ksrc_close(void *instance);
/* The partition topic/partition of this subtask, or NULL. */
ks_part_t *fl_ksrc_find(ks_inst_t *in, const char *topic, int32_t partition);
/* Whether every partition reached its end (bounded). */
bool fl_ksrc_all_done(const ks_inst_t *in);

/* kafka_source_records.c */
/* An error event from the consumer queue: fatal ones fail the job; retriable ones
 * (broker down, transport) are librdkafka's to recover from, so the source waits. */
int fl_ksrc_on_error(fl_context_t *ctx, ks_inst_t *in, const rd_kafka_message_t *m);
/* Fails the job with the consumer's fatal error. */
int fl_ksrc_fail_fatal(fl_context_t *ctx, ks_inst_t *in);
/* One data message: handed to the deserializer, then emitted or handled by the error
 * policy. */
int fl_ksrc_on_message(fl_context_t *ctx, ks_inst_t *in, const rd_kafka_message_t *m);
/* Watermarks and idleness after a batch of messages or a tick. */
int fl_ksrc_event_time(fl_context_t *ctx, ks_inst_t *in);
/* Refreshes the lag gauges (at most every KS_LAG_EVERY_MS). */
void fl_ksrc_update_lag(fl_context_t *ctx, ks_inst_t *in);
/* Sets the current-offset gauges of the partitions whose position moved. */
void fl_ksrc_show_offsets(fl_context_t *ctx, ks_inst_t *in);

/* kafka_source_state.c: the checkpoint functions, and the dead letters a checkpoint
 * waits for. */
int fl_ksrc_snapshot(fl_context_t *ctx, void *instance, fl_buf_t *out);
int fl_ksrc_restore(fl_context_t *ctx, void *instance, const fl_bytes_t *states, size_t n);
int fl_ksrc_checkpoint_complete(fl_context_t *ctx, void *instance, int64_t id);
/* Delivers every dead letter produced so far (the checkpoint covers their offsets). */
int fl_ksrc_dlq_flush(fl_context_t *ctx, ks_inst_t *in);
/* Serves the results of group commits that arrived (committed-offset gauges, the
 * commits-succeeded and commits-failed counters). */
void fl_ksrc_commit_results(ks_inst_t *in);

#endif
