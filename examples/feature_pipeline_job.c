/*
 * The job graph:
 *
 *   Kafka source raw.events (parallel; per-partition watermarks, bounded out-of-orderness
 *   3 s; malformed lines dead-lettered to events.dlq with fl.error naming the cause)
 *     -> keyBy(partition) -> "lateness": the partition's watermark, replayed exactly
 *          late (its 5-minute window closed more than 30 s before) -> side output
 *     -> keyBy(user) -> "features" (feature_pipeline_features.c)   -> 'F', 'E' records
 *     -> filter(purchase) -> keyBy(user) -> 5-minute tumbling event-time window, allowed
 *          lateness 30 s, late side output -> "user_5min_spend"    -> 'S' records
 *   features + sessions + spend + late -> one exactly-once Kafka sink; the serializer
 *   sends each record to its topic (features.user, features.user_session,
 *   features.user_5min_spend, events.late).
 *
 * Why "lateness" is a step of its own: the library, like Flink, does not keep watermarks
 * in checkpoints, so right after a restore an operator's watermark starts from nothing
 * and a record that was late before the crash would be on time on the replay (a 5-minute
 * window would be created again for it alone). Keyed by partition, the step keeps the
 * largest event time of each partition in keyed state, which checkpoints do keep, and
 * decides lateness from it the same way on every replay: an event is late when its
 * window's end + 30 s allowed lateness is at or before that partition's watermark (the
 * largest event time seen before it in the partition - 3 s - 1 ms, the watermark the
 * source generates for the partition). The watermark the window operator sees is never
 * above that (it is the minimum over partitions), so the window never drops what the step
 * let through; its own late output is still wired to events.late. An event behind the
 * partition's watermark but within the allowed lateness goes to the window and is marked
 * for the feature function, which skips it (a timer may already have fired for it).
 *
 * No partition is ever idle (no idle timeout): a partition that had no message for a
 * while would stop holding event time back, and if it was only slow (behind the others
 * after a restart, or back-pressured) its next events could fall behind a watermark that
 * other partitions pushed on, so that a session timer fires before an event of that
 * session arrives. The price: a partition that gets no events at all holds the job's
 * event time back (windows and sessions close only when it gets some).
 */
#define _GNU_SOURCE
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "feature_pipeline.h"

typedef struct ser_buf {
  char json[1024];
  char hv[3][24];
  fl_kafka_header_t hdr[3];
} ser_buf_t;

struct fp_job {
  fp_options_t o;
  fl_env_t *env;
  int parallelism;
  fp_wire_event_t *deser; /* one per subtask */
  ser_buf_t *ser;         /* one per subtask */
  fl_state_desc_t *frontier;
  fl_output_tag_t *late_tag, *window_late_tag;
  int64_t preload_now;
};

/* ---------------------------------------------------------------------------------- */
/* Source                                                                             */

static int deserialize(fl_context_t *ctx, const fl_kafka_message_t *m, fl_record_t *out,
                       void *opaque) {
  fp_job_t *j = opaque;
  fp_wire_event_t *w = &j->deser[fl_ctx_subtask(ctx)];
  char err[256];
  if (m->value == NULL) return fl_ctx_fail(ctx, "an empty message (tombstone)");
  if (fp_event_parse(m->value, m->value_len, &w->ev, err, sizeof err) != 0)
    return fl_ctx_fail(ctx, "%s", err);
  w->h = (fp_wire_hdr_t){.tag = 'V',
                         .partition = m->partition,
                         .offset = m->offset,
                         .produced_ms = m->timestamp == FL_TS_NONE ? 0 : m->timestamp};
  *out = (fl_record_t){&w->h.partition, sizeof w->h.partition, w, sizeof *w, w->ev.ts};
  return 1;
}

/* ---------------------------------------------------------------------------------- */
/* Lateness, per partition                                                            */

static int64_t window_end(int64_t ts) {
  int64_t r = ts % FP_WINDOW_MS;
  if (r < 0) r += FP_WINDOW_MS;
  return ts - r + FP_WINDOW_MS;
}

/* The subtask's copy of its partitions' state: read once, then kept (the subtask owns
 * those partitions' key groups for its whole life), written through on every change. */
#define MAX_PARTITIONS 4096
typedef struct late_inst {
  fp_job_t *j;
  int64_t frontier[MAX_PARTITIONS];
  bool loaded[MAX_PARTITIONS];
} late_inst_t;

static int lateness_open(fl_context_t *ctx, void *opaque, void **instance) {
  (void)ctx;
  late_inst_t *in = calloc(1, sizeof *in);
  if (!in) return FL_ENOMEM;
  in->j = opaque;
  *instance = in;
  return 0;
}

static void lateness_close(void *instance) { free(instance); }

static int lateness(fl_context_t *ctx, const fl_record_t *rec, void *instance) {
  late_inst_t *in = instance;
  fp_job_t *j = in->j;
  fp_wire_event_t w;
  if (rec->value_len != sizeof w)
    return fl_ctx_fail(ctx, "an event record of %zu bytes", rec->value_len);
  memcpy(&w, rec->value, sizeof w);
  int32_t p = w.h.partition;
  if (p < 0 || p >= MAX_PARTITIONS)
    return fl_ctx_fail(ctx, "partition %" PRId32 " of raw.events: at most %d are supported", p,
                       MAX_PARTITIONS);
  int rc = 0;
  if (!in->loaded[p]) {
    const void *v;
    size_t n;
    in->frontier[p] = INT64_MIN;
    rc = fl_value_get(ctx, j->frontier, &v, &n);
    if (rc < 0) return rc;
    if (rc == 1 && n == sizeof(int64_t)) memcpy(&in->frontier[p], v, n);
    in->loaded[p] = true;
  }
  int64_t frontier = in->frontier[p]; /* the largest event time of the partition so far */
  fl_record_t out = {w.ev.user, w.ev.user_len, &w, sizeof w, w.ev.ts};
  if (frontier != INT64_MIN) {
    int64_t wm = frontier - FP_OUT_OF_ORDERNESS_MS - 1;
    if (window_end(w.ev.ts) - 1 + FP_ALLOWED_LATENESS_MS <= wm) {
      rc = fl_emit_side(ctx, j->late_tag, &out);
      if (!rc) rc = fl_ctx_counter_add(ctx, "late", 1);
      goto update;
    }
    w.h.behind = w.ev.ts <= wm;
  }
  rc = fl_emit_record(ctx, &out);
update:
  if (!rc && w.ev.ts > frontier) {
    in->frontier[p] = w.ev.ts;
    rc = fl_value_set(ctx, j->frontier, &w.ev.ts, sizeof w.ev.ts);
  }
  return rc;
}

static int partition_key(fl_context_t *ctx, const fl_record_t *rec, const void **key, size_t *len,
                         void *opaque) {
  (void)ctx;
  (void)opaque;
  if (rec->value_len < sizeof(fp_wire_hdr_t)) return FL_EINVAL;
  *key = (const char *)rec->value + offsetof(fp_wire_hdr_t, partition);
  *len = sizeof(int32_t);
  return 0;
}

/* ---------------------------------------------------------------------------------- */
/* The spend windows                                                                  */

static int only_purchases(fl_context_t *ctx, const fl_record_t *rec, void *opaque) {
  (void)ctx;
  (void)opaque;
  fp_wire_event_t w;
  if (rec->value_len != sizeof w) return 0;
  memcpy(&w, rec->value, sizeof w);
  return w.ev.type == FP_PURCHASE;
}

typedef struct spend {
  int64_t cents, purchases;
} spend_t;

static void spend_init(void *acc, void *opaque) {
  (void)opaque;
  *(spend_t *)acc = (spend_t){0, 0};
}

static int spend_add(fl_context_t *ctx, void *acc, const fl_record_t *in, void *opaque) {
  (void)ctx;
  (void)opaque;
  fp_wire_event_t w;
  memcpy(&w, in->value, sizeof w);
  spend_t *s = acc;
  s->cents += w.ev.price_cents * w.ev.quantity;
  s->purchases++;
  return 0;
}

static int spend_result(fl_context_t *ctx, const fl_window_t *win, const void *acc, void *opaque) {
  (void)opaque;
  const spend_t *s = acc;
  size_t klen;
  const char *user = fl_ctx_key(ctx, &klen);
  char buf[sizeof(fp_wire_hdr_t) + 256];
  fp_wire_hdr_t h = {.tag = 'S', .partition = -1, .offset = -1};
  memcpy(buf, &h, sizeof h);
  int n =
      snprintf(buf + sizeof h, sizeof buf - sizeof h,
               "{\"user_id\":\"%.*s\",\"window_start_ms\":%" PRId64 ",\"window_end_ms\":%" PRId64
               ",\"spend\":%" PRId64 ".%02" PRId64 ",\"purchases\":%" PRId64 "}",
               (int)klen, user, win->start, win->end, s->cents / 100, s->cents % 100, s->purchases);
  return fl_emit(ctx, user, klen, buf, sizeof h + (size_t)n, win->end - 1);
}

/* ---------------------------------------------------------------------------------- */
/* The sink                                                                           */

static int serialize(fl_context_t *ctx, const fl_record_t *in, fl_kafka_message_t *out,
                     void *opaque) {
  fp_job_t *j = opaque;
  ser_buf_t *b = &j->ser[fl_ctx_subtask(ctx)];
  fp_wire_hdr_t h;
  if (in->value_len < sizeof h) return fl_ctx_fail(ctx, "a record of %zu bytes", in->value_len);
  memcpy(&h, in->value, sizeof h);
  out->timestamp = FL_TS_NONE; /* the produce time: latency is measured from it */
  out->value = (const char *)in->value + sizeof h;
  out->value_len = in->value_len - sizeof h;
  switch (h.tag) {
  case 'F': out->topic = FP_TOPIC_FEATURES; break;
  case 'S': out->topic = FP_TOPIC_SPEND; return 1;
  case 'E': out->topic = FP_TOPIC_SESSIONS; return 1;
  case 'V': {
    fp_wire_event_t w;
    if (in->value_len != sizeof w) return fl_ctx_fail(ctx, "an event of %zu bytes", in->value_len);
    memcpy(&w, in->value, sizeof w);
    int n = fp_event_json(&w.ev, b->json, sizeof b->json);
    if (n < 0) return fl_ctx_fail(ctx, "an event too long for events.late");
    out->topic = FP_TOPIC_LATE;
    out->value = b->json;
    out->value_len = (size_t)n;
    break;
  }
  default: return fl_ctx_fail(ctx, "a record with tag %d", h.tag);
  }
  /* where the event came from, and when it was produced (the latency's start) */
  snprintf(b->hv[0], sizeof b->hv[0], "%" PRId32, h.partition);
  snprintf(b->hv[1], sizeof b->hv[1], "%" PRId64, h.offset);
  snprintf(b->hv[2], sizeof b->hv[2], "%" PRId64, h.produced_ms);
  static const char *const names[3] = {"source.partition", "source.offset", "source.timestamp"};
  for (int i = 0; i < 3; i++) b->hdr[i] = (fl_kafka_header_t){names[i], b->hv[i], strlen(b->hv[i])};
  out->headers = b->hdr;
  out->n_headers = 3;
  return 1;
}

/* ---------------------------------------------------------------------------------- */
/* The benchmark's preload source: one record per user                               */

typedef struct preload_src {
  fp_job_t *j;
  long next, step;
} preload_src_t;

static int preload_open(fl_context_t *ctx, void *opaque, void **instance) {
  preload_src_t *s = calloc(1, sizeof *s);
  if (!s) return FL_ENOMEM;
  s->j = opaque;
  s->next = fl_ctx_subtask(ctx);
  s->step = fl_ctx_parallelism(ctx);
  *instance = s;
  return 0;
}

static int preload_run(fl_context_t *ctx, void *instance) {
  preload_src_t *s = instance;
  size_t budget = fl_ctx_source_budget(ctx);
  fp_wire_hdr_t h = {
      .tag = FP_TAG_PRELOAD, .partition = -1, .offset = -1, .produced_ms = s->j->preload_now};
  for (size_t i = 0; i < budget && s->next < s->j->o.users; i++, s->next += s->step) {
    char user[32];
    int n = snprintf(user, sizeof user, "u%07ld", s->next);
    int rc = fl_emit(ctx, user, (size_t)n, &h, sizeof h, FL_TS_NONE);
    if (rc) return rc;
  }
  return s->next < s->j->o.users ? FL_SOURCE_MORE : FL_SOURCE_END;
}

static void preload_close(void *instance) { free(instance); }

/* ---------------------------------------------------------------------------------- */
/* Building and running                                                               */

static int set(fl_config_t *c, const char *k, const char *v) {
  char err[512];
  if (fl_config_set(c, k, v, err, sizeof err) == 0) return 0;
  fprintf(stderr, "feature_pipeline: %s\n", err);
  return -1;
}

fp_job_t *fp_job_new(const fp_options_t *o, const char *brokers, const char *checkpoint_dir,
                     const char *state_dir) {
  fp_job_t *j = calloc(1, sizeof *j);
  fl_config_t *c = fl_config_new();
  char par[16], interval[32], port[16], err[512];
  if (!j || !c) goto fail;
  j->o = *o;
  j->parallelism = o->parallelism;
  j->deser = calloc((size_t)o->parallelism, sizeof *j->deser);
  j->ser = calloc((size_t)o->parallelism, sizeof *j->ser);
  if (!j->deser || !j->ser) goto fail;
  snprintf(par, sizeof par, "%d", o->parallelism);
  snprintf(interval, sizeof interval, "%" PRId64 "ms", o->checkpoint_interval_ms);
  snprintf(port, sizeof port, "%d", o->dashboard_port);
  if (set(c, "parallelism", par) || set(c, "state.backend", "rocksdb") ||
      set(c, "state.backend.incremental", "true") ||
      set(c, "state.checkpoints.dir", checkpoint_dir) ||
      set(c, "state.checkpoints.num-retained", "2") ||
      set(c, "state.checkpoints.restore-latest", "true") ||
      set(c, "execution.checkpointing.interval", interval) ||
      (state_dir && set(c, "state.backend.rocksdb.localdir", state_dir)) ||
      (o->dashboard_port >= 0 && set(c, "rest.port", port)))
    goto fail;
  /* the generator waits for RocksDB to finish compacting the preloaded state */
  if (o->preload_bytes > 0 &&
      (set(c, "state.backend.rocksdb.metrics.estimate-pending-compaction-bytes", "true") ||
       set(c, "state.backend.rocksdb.metrics.num-running-compactions", "true") ||
       set(c, "state.backend.rocksdb.metrics.is-write-stopped", "true")))
    goto fail;
  for (int i = 0; i < o->n_set; i++) {
    char key[256];
    const char *eq = strchr(o->set[i], '=');
    if (!eq || eq == o->set[i] || (size_t)(eq - o->set[i]) >= sizeof key) {
      fprintf(stderr, "feature_pipeline: --set '%s' is not KEY=VALUE\n", o->set[i]);
      goto fail;
    }
    memcpy(key, o->set[i], (size_t)(eq - o->set[i]));
    key[eq - o->set[i]] = '\0';
    if (set(c, key, eq + 1)) goto fail;
  }
  if (fl_env_new(&j->env, c, err, sizeof err)) {
    fprintf(stderr, "feature_pipeline: %s\n", err);
    goto fail;
  }
  fl_config_destroy(c);
  c = NULL;
  fl_env_t *env = j->env;
  j->frontier = fl_state_value(env, "partition_max_event_time");
  j->late_tag = fl_output_tag(env, "late");
  j->window_late_tag = fl_output_tag(env, "window-late");
  fp_features_t *features = fp_features_new(env, o->preload_bytes);
  if (!features) {
    fprintf(stderr, "feature_pipeline: out of memory\n");
    goto fail;
  }

  /* fetch.wait.max.ms: the mock cluster answers a fetch without enough data only after
   * this long (a real broker answers as soon as data arrives), which was half a second of
   * latency at the default. The source also gives its properties to its dead-letter
   * producer, which warns about a consumer property: log_level 3 keeps errors only. */
  static const char *const src_props[] = {"fetch.wait.max.ms", "5", "log_level", "3", NULL};
  fl_watermark_strategy_t wm = {.version = FL_WATERMARK_STRATEGY_VERSION,
                                .kind = FL_WATERMARKS_BOUNDED,
                                .max_out_of_orderness_ms = FP_OUT_OF_ORDERNESS_MS,
                                /* no idleness: see the top of this file */
                                .idle_timeout_ms = 0};
  fl_kafka_source_opts_t src = {.version = FL_KAFKA_SOURCE_OPTS_VERSION,
                                .brokers = brokers,
                                .topics = FP_TOPIC_EVENTS,
                                .group_id = "feature_pipeline",
                                .start = FL_KAFKA_START_EARLIEST,
                                .bounded = o->bounded,
                                .props = src_props,
                                .watermarks = &wm,
                                .deserialize = deserialize,
                                .deserialize_opaque = j,
                                .on_error = FL_KAFKA_ON_ERROR_DEAD_LETTER,
                                .dead_letter_topic = FP_TOPIC_DLQ};
  static const fl_process_fn_t late_fn = {.version = FL_PROCESS_FN_VERSION,
                                          .open = lateness_open,
                                          .process = lateness,
                                          .close = lateness_close};
  fl_stream_t *events = fl_source_kafka(env, "raw.events", &src);
  fl_stream_t *timely =
      fl_keyed_process(fl_stream_key_by(events, partition_key, NULL), "lateness", &late_fn, j);
  fl_stream_t *late = fl_stream_side_output(timely, j->late_tag);

  fl_stream_t *for_features = timely;
  if (o->preload_bytes > 0) {
    static const fl_source_fn_t pre = {.version = FL_SOURCE_FN_VERSION,
                                       .open = preload_open,
                                       .run = preload_run,
                                       .close = preload_close};
    j->preload_now = fp_wall_ms();
    for_features = fl_stream_union(timely, fl_source(env, "preload", &pre, j, 1));
  }
  fl_stream_t *features_out = fl_keyed_process(fl_stream_key_by(for_features, NULL, NULL),
                                               "features", &fp_features_fn, features);

  fl_aggregate_fn_t agg = {.version = FL_AGGREGATE_FN_VERSION,
                           .acc_size = sizeof(spend_t),
                           .init = spend_init,
                           .add = spend_add,
                           .result = spend_result};
  fl_windowed_stream_t *w = fl_window_tumbling(
      fl_stream_key_by(fl_stream_filter(timely, "purchases", only_purchases, NULL), NULL, NULL),
      FL_EVENT_TIME, FP_WINDOW_MS, 0);
  fl_window_allowed_lateness(w, FP_ALLOWED_LATENESS_MS);
  fl_window_late_output(w, j->window_late_tag);
  fl_stream_t *spend = fl_window_aggregate(w, "user_5min_spend", &agg, NULL);
  fl_stream_t *window_late = fl_stream_side_output(spend, j->window_late_tag);

  static const char *const sink_props[] = {"linger.ms", "5", NULL};
  fl_kafka_sink_opts_t sink = {
      .version = FL_KAFKA_SINK_OPTS_VERSION,
      .brokers = brokers,
      .topic = FP_TOPIC_FEATURES,
      .guarantee = o->at_least_once ? FL_KAFKA_AT_LEAST_ONCE : FL_KAFKA_EXACTLY_ONCE,
      .transactional_id_prefix = "feature_pipeline",
      .props = sink_props,
      .serialize = serialize,
      .serialize_opaque = j};
  fl_stream_t *all =
      fl_stream_union(fl_stream_union(features_out, spend), fl_stream_union(late, window_late));
  fl_stream_sink_kafka(all, "kafka-out", &sink);
  return j;
fail:
  fl_config_destroy(c);
  fp_job_free(j);
  return NULL;
}

fl_env_t *fp_job_env(fp_job_t *j) { return j->env; }

int fp_job_run(fp_job_t *j) { return fl_env_execute(j->env, "feature_pipeline"); }

void fp_job_free(fp_job_t *j) {
  if (!j) return;
  fl_env_destroy(j->env);
  free(j->deser);
  free(j->ser);
  free(j);
}
