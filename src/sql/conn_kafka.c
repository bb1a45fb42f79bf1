/*
 * The kafka connector, with Flink's option names, on fl_source_kafka and
 * fl_stream_sink_kafka.
 *
 * Source: 'topic' (several separated by ';') or 'topic-pattern'; 'properties.*' go to
 * librdkafka ('properties.bootstrap.servers' and 'properties.group.id' are the brokers
 * and the group); 'scan.startup.mode' earliest-offset | latest-offset | group-offsets
 * (the default, as in Flink; without a committed offset it starts where
 * properties.auto.offset.reset says, earliest by default) | timestamp (with
 * 'scan.startup.timestamp-millis'); 'scan.bounded.mode' unbounded | latest-offset. The
 * value is read with the json format; metadata columns 'topic', 'partition', 'offset'
 * and 'timestamp' come from the message. Watermarks are made per partition (the
 * DataStream source's per-partition watermarks), the subtask's being the minimum over
 * its partitions, as Flink's KafkaSource does.
 *
 * Sink: the row as a JSON value; the message key is the JSON object of 'key.fields'
 * (with 'key.format' = 'json'), or of the PRIMARY KEY columns when the table has one
 * (Flink's plain kafka sink writes no key; a key keeps each key's rows in one partition,
 * in order). 'sink.delivery-guarantee' none | at-least-once (default) | exactly-once
 * (transactions committed with checkpoints; 'sink.transactional-id-prefix').
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "sql/exec.h"

#define KAFKA_MAX_SUBTASKS 256

static const char *const kafka_options[] = {"topic",
                                            "topic-pattern",
                                            "properties.",
                                            "format",
                                            "value.format",
                                            "key.format",
                                            "key.fields",
                                            "key.fields-prefix",
                                            "value.fields-include",
                                            "scan.startup.mode",
                                            "scan.startup.timestamp-millis",
                                            "scan.bounded.mode",
                                            "scan.topic-partition-discovery.interval",
                                            "sink.delivery-guarantee",
                                            "sink.transactional-id-prefix",
                                            "sink.partitioner",
                                            "sink.parallelism",
                                            "key.json.",
                                            NULL};

static int kfail(char *err, size_t n, const sql_table_t *t, const char *fmt, const char *a) {
  if (err && n) {
    int k = snprintf(err, n, "table '%s': ", t->name);
    if (k > 0 && (size_t)k < n) snprintf(err + k, n - (size_t)k, fmt, a);
  }
  return FL_EINVAL;
}

static int kafka_check(sql_catalog_t *cat, const sql_table_t *t, bool source, char *err, size_t n) {
  const char *topic = sql_table_option(t, "topic"), *pattern = sql_table_option(t, "topic-pattern");
  if (!sql_table_option(t, "properties.bootstrap.servers"))
    return kfail(err, n, t, "the kafka connector needs 'properties.bootstrap.servers'%s", "");
  if (!topic && !(source && pattern))
    return kfail(err, n, t, "the kafka connector needs 'topic'%s",
                 source ? " or 'topic-pattern'" : "");
  if (topic && pattern)
    return kfail(err, n, t, "'topic' and 'topic-pattern' exclude each other%s", "");
  if (!sql_table_option(t, "format") && !sql_table_option(t, "value.format"))
    return kfail(err, n, t, "the kafka connector needs 'format' = 'json'%s", "");
  const char *kf = sql_table_option(t, "key.format");
  if (kf && strcmp(kf, "json"))
    return kfail(err, n, t, "unsupported key.format '%s' (supported: json)", kf);
  const char *inc = sql_table_option(t, "value.fields-include");
  if (inc && strcasecmp(inc, "ALL"))
    return kfail(err, n, t, "value.fields-include '%s' is not supported (only ALL)", inc);
  if (source) {
    const char *m = sql_table_option(t, "scan.startup.mode");
    if (m && strcmp(m, "earliest-offset") && strcmp(m, "latest-offset") &&
        strcmp(m, "group-offsets") && strcmp(m, "timestamp"))
      return kfail(
          err, n, t,
          "unsupported scan.startup.mode '%s' (earliest-offset, latest-offset, group-offsets, timestamp)",
          m);
    if (m && !strcmp(m, "timestamp") && !sql_table_option(t, "scan.startup.timestamp-millis"))
      return kfail(err, n, t,
                   "scan.startup.mode 'timestamp' needs 'scan.startup.timestamp-millis'%s", "");
    const char *b = sql_table_option(t, "scan.bounded.mode");
    if (b && strcmp(b, "unbounded") && strcmp(b, "latest-offset"))
      return kfail(err, n, t, "unsupported scan.bounded.mode '%s' (unbounded, latest-offset)", b);
    for (int i = 0; i < t->ncols; i++) {
      const sql_column_t *c = &t->cols[i];
      if (c->kind != SQL_COL_METADATA) continue;
      if (strcmp(c->meta_key, "topic") && strcmp(c->meta_key, "partition") &&
          strcmp(c->meta_key, "offset") && strcmp(c->meta_key, "timestamp"))
        return kfail(err, n, t,
                     "unknown kafka metadata key '%s' (topic, partition, offset, timestamp)",
                     c->meta_key);
    }
  } else {
    const char *g = sql_table_option(t, "sink.delivery-guarantee");
    if (g && strcmp(g, "none") && strcmp(g, "at-least-once") && strcmp(g, "exactly-once"))
      return kfail(err, n, t,
                   "unsupported sink.delivery-guarantee '%s' (none, at-least-once, exactly-once)",
                   g);
    const char *p = sql_table_option(t, "sink.partitioner");
    if (p && strcmp(p, "default"))
      return kfail(err, n, t, "sink.partitioner '%s' is not supported (only default)", p);
  }
  return FL_OK;
}

/* librdkafka properties: every properties.* but the two the options struct carries. */
static const char *const *kafka_props(sql_arena_t *a, const sql_table_t *t) {
  const char **props = sql_arena_alloc(a, sizeof(char *) * (size_t)(2 * t->nopts + 1));
  if (!props) return NULL;
  int k = 0;
  for (int i = 0; i < t->nopts; i++) {
    const char *key = t->opts[i].key;
    if (strncmp(key, "properties.", 11) != 0) continue;
    key += 11;
    if (!strcmp(key, "bootstrap.servers") || !strcmp(key, "group.id")) continue;
    props[k++] = key;
    props[k++] = t->opts[i].value;
  }
  props[k] = NULL;
  return props;
}

/* ---------------------------------------------------------------------------------- */
/* Source                                                                             */

/* What a Kafka source's and a Kafka sink's (de)serializer state have in common: the
 * first member of ksrc_t and ksink_t, so that one function (kconn_destroy) releases
 * either. */
typedef struct kconn {
  sql_shared_t *sh;               /* the query's shared state, referenced until destroy */
  void (*clear_sub)(void *sub);   /* frees what a subtask's state holds, not the state */
  void *subs[KAFKA_MAX_SUBTASKS]; /* each subtask's own state, made on its first record */
} kconn_t;

static void kconn_init(kconn_t *c, sql_exec_t *x, void (*clear_sub)(void *sub)) {
  c->sh = x->sh;
  sql_shared_ref(x->sh);
  c->clear_sub = clear_sub;
}

/* The calling subtask's own state (a (de)serializer runs on its subtask's thread only),
 * allocated zeroed (size bytes) on its first call, *fresh then true. NULL when the
 * subtask has no slot (the job failed, *rc says so) or memory ran out. */
static void *kconn_sub(kconn_t *c, fl_context_t *ctx, size_t size, bool *fresh, int *rc) {
  int s = fl_ctx_subtask(ctx);
  *fresh = false;
  if (s < 0 || s >= KAFKA_MAX_SUBTASKS) {
    *rc = fl_ctx_fail(ctx, "too many subtasks");
    return NULL;
  }
  if (!c->subs[s]) {
    if (!(c->subs[s] = calloc(1, size))) {
      *rc = FL_ENOMEM;
      return NULL;
    }
    *fresh = true;
  }
  return c->subs[s];
}

/* The (de)serializer's destroy: frees the subtasks' states and the instance, then
 * releases the shared state. */
static void kconn_destroy(void *opaque) {
  kconn_t *c = opaque;
  for (int i = 0; i < KAFKA_MAX_SUBTASKS; i++) {
    if (!c->subs[i]) continue;
    c->clear_sub(c->subs[i]);
    free(c->subs[i]);
  }
  sql_shared_t *sh = c->sh;
  free(c);
  sql_shared_unref(sh);
}

typedef struct ksrc_sub {
  sql_json_state_t js;
  sql_rb_t rb, mb;
  sql_rowfin_state_t fin;
} ksrc_sub_t;

typedef struct ksrc {
  kconn_t c; /* first */
  const sql_table_t *t;
  sql_json_fmt_t fmt;
  sql_phys_t phys;
  sql_rowfin_t fin;
} ksrc_t;

static int ksrc_deserialize(fl_context_t *ctx, const fl_kafka_message_t *msg, fl_record_t *out,
                            void *opaque) {
  ksrc_t *k = opaque;
  bool fresh;
  int rc;
  ksrc_sub_t *sub = kconn_sub(&k->c, ctx, sizeof *sub, &fresh, &rc);
  if (!sub) return rc;
  if (fresh) sql_rowfin_state_init(&sub->fin, &k->fin);
  if (!msg->value) return 0; /* tombstones carry no row */
  const sql_table_t *t = k->t;
  const uint8_t *row;
  size_t len;
  char err[256];
  rc = sql_json_table_row(t, &k->fmt, &k->phys, &sub->js, &sub->rb, msg->value, msg->value_len,
                          &row, &len, err, sizeof err);
  if (rc == FL_EPARSE) {
    if (k->fmt.ignore_parse_errors) {
      fl_ctx_counter_add(ctx, "json-parse-errors-skipped", 1);
      return 0;
    }
    return fl_ctx_fail(ctx, "table '%s': %s", t->name, err);
  }
  if (rc) return rc;
  /* metadata */
  bool has_meta = false;
  for (int i = 0; i < t->ncols; i++) has_meta = has_meta || t->cols[i].kind == SQL_COL_METADATA;
  if (has_meta) {
    sql_rb_begin(&sub->mb, t->ncols);
    for (int i = 0; i < t->ncols; i++) {
      const sql_column_t *c = &t->cols[i];
      sql_val_t v = {0};
      if (c->kind == SQL_COL_METADATA) {
        if (!strcmp(c->meta_key, "topic")) {
          v.s.p = msg->topic;
          v.s.n = msg->topic ? strlen(msg->topic) : 0;
          v.null = msg->topic == NULL;
        } else if (!strcmp(c->meta_key, "partition")) {
          v.i = msg->partition;
        } else if (!strcmp(c->meta_key, "offset")) {
          v.i = msg->offset;
        } else {
          v.i = msg->timestamp;
          v.null = msg->timestamp == FL_TS_NONE;
        }
      } else {
        sql_read_col(row, t->ncols, i, c->type, &v);
      }
      sql_write_col(&sub->mb, i, c->type, &v);
    }
    row = sql_rb_finish(&sub->mb, &len);
    if (!row) return FL_ENOMEM;
  }
  int64_t ts;
  const uint8_t *fr;
  size_t fl;
  rc = sql_rowfin_apply(&k->fin, &sub->fin, ctx, row, len, &fr, &fl, &ts);
  if (rc)
    return fl_ctx_fail(ctx, "table '%s': %s", t->name,
                       sub->fin.ev.err[0] ? sub->fin.ev.err : fl_strerror(rc));
  out->key = NULL;
  out->key_len = 0;
  out->value = fr;
  out->value_len = fl;
  out->timestamp = ts != FL_TS_NONE ? ts : msg->timestamp;
  return 1;
}

static void ksrc_sub_clear(void *p) {
  ksrc_sub_t *sub = p;
  sql_json_state_free(&sub->js);
  sql_rb_free(&sub->rb);
  sql_rb_free(&sub->mb);
  sql_rowfin_state_free(&sub->fin);
}

static fl_stream_t *kafka_source(sql_exec_t *x, const sql_table_t *t) {
  ksrc_t *k = calloc(1, sizeof *k);
  if (!k) return NULL;
  kconn_init(&k->c, x, ksrc_sub_clear);
  k->t = t;
  if (sql_table_phys(x->a, t, &k->phys) != FL_OK || sql_rowfin_init(x, t, &k->fin) != FL_OK ||
      sql_json_fmt_of(x->a, t, &k->phys, x->sess, &k->fmt, x->err, x->err_size) != FL_OK) {
    if (!x->rc) x->rc = FL_EINVAL;
    kconn_destroy(k);
    return NULL;
  }
  fl_kafka_source_opts_t o = {.version = FL_KAFKA_SOURCE_OPTS_VERSION};
  o.brokers = sql_table_option(t, "properties.bootstrap.servers");
  const char *topic = sql_table_option(t, "topic");
  if (topic) {
    char *c = sql_arena_strdup(x->a, topic);
    for (char *p = c; p && *p; p++)
      if (*p == ';') *p = ',';
    o.topics = c;
  } else {
    const char *pat = sql_table_option(t, "topic-pattern");
    o.topics = pat[0] == '^' ? pat : sql_arena_printf(x->a, "^%s", pat);
  }
  o.group_id = sql_table_option(t, "properties.group.id");
  const char *mode = sql_table_option(t, "scan.startup.mode");
  const char *reset = sql_table_option(t, "properties.auto.offset.reset");
  o.fallback = reset && !strcmp(reset, "latest") ? FL_KAFKA_START_LATEST : FL_KAFKA_START_EARLIEST;
  if (!mode || !strcmp(mode, "group-offsets"))
    o.start = FL_KAFKA_START_COMMITTED;
  else if (!strcmp(mode, "earliest-offset"))
    o.start = FL_KAFKA_START_EARLIEST;
  else if (!strcmp(mode, "latest-offset"))
    o.start = FL_KAFKA_START_LATEST;
  else {
    o.start = FL_KAFKA_START_TIMESTAMP;
    o.start_timestamp_ms = strtoll(sql_table_option(t, "scan.startup.timestamp-millis"), NULL, 10);
  }
  const char *bounded = sql_table_option(t, "scan.bounded.mode");
  o.bounded = bounded && !strcmp(bounded, "latest-offset");
  o.props = kafka_props(x->a, t);
  fl_watermark_strategy_t ws;
  if (t->rowtime >= 0 && t->wm == SQL_WM_BOUNDED) {
    /* the deserializer stamped the record with its row time */
    sql_table_watermarks(x, t, &ws);
    o.watermarks = &ws;
  }
  o.deserialize = ksrc_deserialize;
  o.deserialize_opaque = k;
  o.deserialize_destroy = kconn_destroy;
  o.on_error = FL_KAFKA_ON_ERROR_FAIL;
  return fl_source_kafka(x->env, sql_exec_name(x, t->name), &o);
}

/* ---------------------------------------------------------------------------------- */
/* Sink                                                                               */

typedef struct ksink_sub {
  sql_strbuf_t value, key;
} ksink_sub_t;

typedef struct ksink {
  kconn_t c; /* first */
  sql_json_fmt_t fmt, key_fmt;
  int *key_cols; /* physical column index of each key field */
} ksink_t;

static int ksink_serialize(fl_context_t *ctx, const fl_record_t *in, fl_kafka_message_t *out,
                           void *opaque) {
  ksink_t *k = opaque;
  bool fresh;
  int rc;
  ksink_sub_t *sub = kconn_sub(&k->c, ctx, sizeof *sub, &fresh, &rc);
  if (!sub) return rc;
  sub->value.n = 0;
  sql_json_write(&k->fmt, in->value, &sub->value);
  if (sub->value.failed) return FL_ENOMEM;
  memset(out, 0, sizeof *out);
  out->partition = -1;
  out->timestamp = in->timestamp;
  out->value = sub->value.p;
  out->value_len = sub->value.n;
  if (k->key_fmt.n) {
    sub->key.n = 0;
    sql_sb_putc(&sub->key, '{');
    for (int i = 0; i < k->key_fmt.n; i++) {
      if (i) sql_sb_putc(&sub->key, ',');
      sql_json_write_string(&sub->key, k->key_fmt.names[i], strlen(k->key_fmt.names[i]));
      sql_sb_putc(&sub->key, ':');
      sql_val_t v;
      sql_read_col(in->value, k->fmt.n, k->key_cols[i], k->key_fmt.types[i], &v);
      sql_json_write_value(&k->fmt, k->key_fmt.types[i], &v, &sub->key);
    }
    sql_sb_putc(&sub->key, '}');
    if (sub->key.failed) return FL_ENOMEM;
    out->key = sub->key.p;
    out->key_len = sub->key.n;
  }
  return 1;
}

static void ksink_sub_clear(void *p) {
  ksink_sub_t *sub = p;
  sql_sb_free(&sub->value);
  sql_sb_free(&sub->key);
}

static int kafka_sink(sql_exec_t *x, const sql_table_t *t, fl_stream_t *rows) {
  ksink_t *k = calloc(1, sizeof *k);
  if (!k) return FL_ENOMEM;
  kconn_init(&k->c, x, ksink_sub_clear);
  sql_phys_t phys;
  if (sql_table_phys(x->a, t, &phys) != FL_OK ||
      sql_json_fmt_of(x->a, t, &phys, x->sess, &k->fmt, x->err, x->err_size) != FL_OK) {
    kconn_destroy(k);
    return x->rc = FL_EINVAL;
  }
  /* key fields: key.fields, else the primary key */
  const char *kf = sql_table_option(t, "key.fields");
  int nk = 0;
  const char **kn = sql_arena_alloc(x->a, sizeof(char *) * (size_t)(phys.n + 1));
  const sql_type_t **kt = sql_arena_alloc(x->a, sizeof(sql_type_t *) * (size_t)(phys.n + 1));
  k->key_cols = sql_arena_alloc(x->a, sizeof(int) * (size_t)(phys.n + 1));
  if (!kn || !kt || !k->key_cols) {
    kconn_destroy(k);
    return FL_ENOMEM;
  }
  for (int i = 0; i < phys.n; i++) {
    bool is_key = false;
    if (kf) {
      char *list = sql_arena_strdup(x->a, kf), *save = NULL;
      for (char *tok = strtok_r(list, ";", &save); tok; tok = strtok_r(NULL, ";", &save))
        if (!strcmp(tok, phys.names[i])) is_key = true;
    } else {
      for (int p = 0; p < t->npk; p++)
        if (t->pk[p] == phys.cols[i]) is_key = true;
    }
    if (is_key) {
      kn[nk] = phys.names[i];
      kt[nk] = phys.types[i];
      k->key_cols[nk] = i;
      nk++;
    }
  }
  k->key_fmt = k->fmt;
  k->key_fmt.n = nk;
  k->key_fmt.names = kn;
  k->key_fmt.types = kt;
  fl_kafka_sink_opts_t o = {.version = FL_KAFKA_SINK_OPTS_VERSION};
  o.brokers = sql_table_option(t, "properties.bootstrap.servers");
  o.topic = sql_table_option(t, "topic");
  const char *g = sql_table_option(t, "sink.delivery-guarantee");
  o.guarantee = !g || !strcmp(g, "at-least-once") ? FL_KAFKA_AT_LEAST_ONCE
                : !strcmp(g, "exactly-once")      ? FL_KAFKA_EXACTLY_ONCE
                                                  : FL_KAFKA_NO_GUARANTEE;
  o.transactional_id_prefix = sql_table_option(t, "sink.transactional-id-prefix");
  o.props = kafka_props(x->a, t);
  o.serialize = ksink_serialize;
  o.serialize_opaque = k;
  o.serialize_destroy = kconn_destroy;
  return fl_stream_sink_kafka(rows, sql_exec_name(x, t->name), &o);
}

const sql_connector_t sql_conn_kafka = {.name = "kafka",
                                        .options = kafka_options,
                                        .check = kafka_check,
                                        .source = kafka_source,
                                        .sink = kafka_sink};
