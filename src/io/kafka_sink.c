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
 * Restore: for each transaction of the restored states this subtask owns (old subtask
 * i with i % P == s), after init_transactions() of its transactional.id (our own at
 * open; an old id no current subtask uses, i >= P, is fenced by a short-lived
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
#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>

#include "io/kafka_common.h"
#include "io/kafka_sink.h"
#include "runtime/connector.h"
#include "util/fs.h"

#define END_ID INT64_MAX
#define STATE_MAGIC 0x314b4c46u /* "FLK1" */
#define LOG_COMPACT_LINES 1000
#define LOG_KEEP_LINES 100
#define HDR_TXN "fl.txn"

/* ---------------------------------------------------------------------------------- */
/* Kill hook (tests)                                                                    */

static _Atomic(void (*)(const char *, void *)) g_hook;
static _Atomic(void *) g_hook_arg;

void fl_kafka_sink_set_kill_hook(void (*hook)(const char *point, void *arg), void *arg) {
  atomic_store(&g_hook_arg, arg);
  atomic_store(&g_hook, hook);
}

static void kill_point(const char *point) {
  void (*h)(const char *, void *) = atomic_load(&g_hook);
  if (h) h(point, atomic_load(&g_hook_arg));
}

/* ---------------------------------------------------------------------------------- */
/* Configuration                                                                        */

typedef struct ksink {
  char *name;
  char *brokers;
  char *topic; /* NULL: the serializer names one */
  fl_kafka_guarantee_t guarantee;
  char *prefix;  /* EXACTLY_ONCE: transactional.id prefix */
  char *log_dir; /* EXACTLY_ONCE */
  char **props;  /* NULL-terminated pairs */
  fl_kafka_serialize_fn serialize;
  void *serialize_opaque;
  void (*serialize_destroy)(void *);
  int timeout_ms;
} ksink_t;

/* ---------------------------------------------------------------------------------- */
/* The write-ahead buffer                                                               */
/*
 * Entry: [u32 topic_len][u32 key_len|NONE][u32 value_len|NONE][u32 n_headers]
 *        [i32 partition][i64 offset][i64 timestamp] topic key value
 *        n_headers x ([u32 name_len][u32 value_len|NONE] name value)
 * Little-endian native layout (checkpoints are read by the same build).
 */
#define LEN_NONE UINT32_MAX
#define ENT_FIXED (4 * 4 + 4 + 8 + 8)
#define ENT_OFF_PART 16
#define ENT_OFF_OFFSET 20

typedef struct txbuf {
  uint8_t *data;
  size_t len, cap;
  size_t *idx; /* entry start offsets */
  size_t n, cap_idx;
  size_t n_prod; /* entries [0, n_prod) were produced into the transaction */
} txbuf_t;

typedef struct entry {
  const char *topic;
  uint32_t topic_len;
  const void *key, *value; /* NULL: none */
  uint32_t key_len, value_len;
  uint32_t n_headers;
  const uint8_t *headers; /* encoded */
  int32_t partition;
  int64_t offset, ts;
} entry_t;

static void txbuf_free(txbuf_t *b) {
  free(b->data);
  free(b->idx);
  memset(b, 0, sizeof *b);
}

/* Room for one more entry start in the index. */
static int txbuf_grow_idx(txbuf_t *b) {
  if (b->n < b->cap_idx) return FL_OK;
  size_t cap = b->cap_idx ? b->cap_idx * 2 : 256;
  size_t *x = realloc(b->idx, cap * sizeof *x);
  if (!x) return FL_ENOMEM;
  b->idx = x;
  b->cap_idx = cap;
  return FL_OK;
}

static int txbuf_reserve(txbuf_t *b, size_t more) {
  if (b->len + more > b->cap) {
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + more) cap *= 2;
    uint8_t *d = realloc(b->data, cap);
    if (!d) return FL_ENOMEM;
    b->data = d;
    b->cap = cap;
  }
  return txbuf_grow_idx(b);
}

static void put32(uint8_t **p, uint32_t v) {
  memcpy(*p, &v, 4);
  *p += 4;
}

static int txbuf_add(txbuf_t *b, const char *topic, const fl_kafka_message_t *m) {
  size_t tl = strlen(topic);
  size_t need = ENT_FIXED + tl + (m->key ? m->key_len : 0) + (m->value ? m->value_len : 0);
  for (size_t i = 0; i < m->n_headers; i++)
    need += 8 + strlen(m->headers[i].name) + (m->headers[i].value ? m->headers[i].value_len : 0);
  if (tl >= LEN_NONE || m->key_len >= LEN_NONE || m->value_len >= LEN_NONE) return FL_EINVAL;
  int rc = txbuf_reserve(b, need);
  if (rc) return rc;
  uint8_t *p = b->data + b->len;
  put32(&p, (uint32_t)tl);
  put32(&p, m->key ? (uint32_t)m->key_len : LEN_NONE);
  put32(&p, m->value ? (uint32_t)m->value_len : LEN_NONE);
  put32(&p, (uint32_t)m->n_headers);
  int32_t part = m->partition;
  int64_t off = -1, ts = m->timestamp;
  memcpy(p, &part, 4);
  p += 4;
  memcpy(p, &off, 8);
  p += 8;
  memcpy(p, &ts, 8);
  p += 8;
  memcpy(p, topic, tl);
  p += tl;
  if (m->key && m->key_len) {
    memcpy(p, m->key, m->key_len);
    p += m->key_len;
  }
  if (m->value && m->value_len) {
    memcpy(p, m->value, m->value_len);
    p += m->value_len;
  }
  for (size_t i = 0; i < m->n_headers; i++) {
    const fl_kafka_header_t *h = &m->headers[i];
    size_t nl = strlen(h->name);
    put32(&p, (uint32_t)nl);
    put32(&p, h->value ? (uint32_t)h->value_len : LEN_NONE);
    memcpy(p, h->name, nl);
    p += nl;
    if (h->value && h->value_len) {
      memcpy(p, h->value, h->value_len);
      p += h->value_len;
    }
  }
  b->idx[b->n++] = b->len;
  b->len = (size_t)(p - b->data);
  return FL_OK;
}

/* Decodes the entry at data[0, len) into e; returns its size, 0 if malformed. */
static size_t entry_decode(const uint8_t *data, size_t len, entry_t *e) {
  if (len < ENT_FIXED) return 0;
  uint32_t v[4];
  memcpy(v, data, 16);
  memcpy(&e->partition, data + ENT_OFF_PART, 4);
  memcpy(&e->offset, data + ENT_OFF_OFFSET, 8);
  memcpy(&e->ts, data + 28, 8);
  size_t pos = ENT_FIXED;
  e->topic_len = v[0];
  e->n_headers = v[3];
  if (len - pos < v[0]) return 0;
  e->topic = (const char *)data + pos;
  pos += v[0];
  e->key_len = v[1] == LEN_NONE ? 0 : v[1];
  e->value_len = v[2] == LEN_NONE ? 0 : v[2];
  if (len - pos < e->key_len) return 0;
  e->key = v[1] == LEN_NONE ? NULL : data + pos;
  pos += e->key_len;
  if (len - pos < e->value_len) return 0;
  e->value = v[2] == LEN_NONE ? NULL : data + pos;
  pos += e->value_len;
  e->headers = data + pos;
  for (uint32_t i = 0; i < e->n_headers; i++) {
    uint32_t hv[2];
    if (len - pos < 8) return 0;
    memcpy(hv, data + pos, 8);
    pos += 8;
    size_t vl = hv[1] == LEN_NONE ? 0 : hv[1];
    if (len - pos < hv[0] || len - pos - hv[0] < vl) return 0;
    pos += hv[0] + vl;
  }
  return pos;
}

/* Rebuilds b's index from its bytes (a restored state); FL_EPARSE if malformed. */
static int txbuf_index(txbuf_t *b, uint64_t n) {
  size_t pos = 0;
  for (uint64_t k = 0; k < n; k++) {
    entry_t e;
    size_t sz = entry_decode(b->data + pos, b->len - pos, &e);
    if (!sz) return FL_EPARSE;
    if (txbuf_grow_idx(b)) return FL_ENOMEM;
    b->idx[b->n++] = pos;
    pos += sz;
  }
  return pos == b->len ? FL_OK : FL_EPARSE;
}

/* Drops the produced entries [0, n_prod), keeping the buffered ones. O(buffered). */
static void txbuf_drop_produced(txbuf_t *b) {
  if (!b->n_prod) return;
  size_t cut = b->n_prod < b->n ? b->idx[b->n_prod] : b->len;
  memmove(b->data, b->data + cut, b->len - cut);
  b->len -= cut;
  for (size_t i = b->n_prod; i < b->n; i++) b->idx[i - b->n_prod] = b->idx[i] - cut;
  b->n -= b->n_prod;
  b->n_prod = 0;
}

/* ---------------------------------------------------------------------------------- */
/* Instance                                                                             */

typedef struct kinst {
  const ksink_t *cfg;
  int subtask, parallelism;
  rd_kafka_t *rk;
  char txid[512];
  char log_path[4400];
  /* delivery errors (set by the delivery report callback on this thread) */
  bool failed;
  char err[1024];
  txbuf_t *dr_target; /* the buffer whose entries' offsets delivery reports fill */
  uint64_t writes;
  /* EXACTLY_ONCE */
  txbuf_t tx;
  bool tx_open;    /* begin_transaction was called */
  bool tx_pre;     /* pre-committed: new records are buffered */
  int64_t tx_upto; /* the checkpoint that may commit it (END_ID: after the end) */
  char tag[700];
  uint64_t attempt, seq;
  int64_t last_barrier;
  bool ended;
  int64_t end_after;
  bool fatal; /* the producer is unusable: no abort */
  bool keep;  /* periodic checkpoints: keep the write-ahead copy (without them no
                 snapshot needs it, and the one transaction would hold all output) */
  size_t log_lines;
} kinst_t;

static int ifail(fl_context_t *ctx, kinst_t *in, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int ifail(fl_context_t *ctx, kinst_t *in, const char *fmt, ...) {
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
  memcpy(e + ENT_OFF_PART, &part, 4);
  memcpy(e + ENT_OFF_OFFSET, &off, 8);
}

static void error_cb(rd_kafka_t *rk, int err, const char *reason, void *opaque) {
  kinst_t *in = opaque;
  if (err != RD_KAFKA_RESP_ERR__FATAL) return; /* transient: librdkafka retries */
  char buf[512];
  rd_kafka_fatal_error(rk, buf, sizeof buf);
  in->fatal = true;
  if (!in->failed) {
    in->failed = true;
    snprintf(in->err, sizeof in->err, "fatal producer error (topic %s): %s",
             in->cfg->topic ? in->cfg->topic : "(per message)", buf[0] ? buf : reason);
  }
}

static int check_err(fl_context_t *ctx, kinst_t *in) {
  return in->failed ? ifail(ctx, in, "%s", in->err) : FL_OK;
}

/* A producer (txid NULL: not transactional). */
static rd_kafka_t *new_producer(const ksink_t *c, const char *txid, void *opaque, char *err,
                                size_t errsz) {
  rd_kafka_conf_t *conf = rd_kafka_conf_new();
  rd_kafka_t *rk = NULL;
  if (fl_kafka_conf_set(conf, "bootstrap.servers", c->brokers, err, errsz) ||
      fl_kafka_conf_set(conf, "partitioner", "murmur2_random", err, errsz) ||
      (txid && fl_kafka_conf_set(conf, "transactional.id", txid, err, errsz)) ||
      fl_kafka_conf_apply(conf, c->props, err, errsz))
    goto done;
  if (opaque) {
    rd_kafka_conf_set_opaque(conf, opaque);
    rd_kafka_conf_set_dr_msg_cb(conf, dr_cb);
    rd_kafka_conf_set_error_cb(conf, error_cb);
  }
  char e[512];
  rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, e, sizeof e);
  if (!rk)
    snprintf(err, errsz, "cannot create the producer: %s", e);
  else
    conf = NULL; /* owned by rk */
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
      int rc = ifail(ctx, in, "%s of transactional.id %s (topic %s) failed: %s", what, in->txid,
                     in->cfg->topic ? in->cfg->topic : "(per message)", rd_kafka_error_string(e));
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

/* Produces one message, waiting (polling delivery reports) while the local queue is full:
 * back-pressure, not a failure. */
static int produce(fl_context_t *ctx, kinst_t *in, const char *topic, int32_t partition,
                   const void *key, size_t key_len, const void *value, size_t value_len, int64_t ts,
                   const fl_kafka_header_t *hs, size_t nh, const uint8_t *enc_hs, size_t n_enc,
                   const char *tag, void *opaque) {
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
      size_t vl = hv[1] == LEN_NONE ? 0 : hv[1];
      rd_kafka_header_add(hdrs, name, (ssize_t)hv[0], hv[1] == LEN_NONE ? NULL : p, (ssize_t)vl);
      p += vl;
    }
    if (tag) rd_kafka_header_add(hdrs, HDR_TXN, -1, tag, -1);
  }
  for (;;) {
    rd_kafka_resp_err_t err = rd_kafka_producev(
        in->rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_PARTITION(partition),
        RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_KEY(key, key_len),
        RD_KAFKA_V_VALUE((void *)value, value_len), RD_KAFKA_V_TIMESTAMP(ts == FL_TS_NONE ? 0 : ts),
        RD_KAFKA_V_HEADERS(hdrs), RD_KAFKA_V_OPAQUE(opaque), RD_KAFKA_V_END);
    if (err == RD_KAFKA_RESP_ERR_NO_ERROR) return FL_OK;
    if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL && !fl_ctx_job_failing(ctx)) {
      rd_kafka_poll(in->rk, 10);
      if (in->failed) break;
      continue;
    }
    if (hdrs) rd_kafka_headers_destroy(hdrs);
    if (in->failed) return check_err(ctx, in);
    return ifail(ctx, in, "cannot produce to topic %s partition %" PRId32 ": %s", topic, partition,
                 rd_kafka_err2str(err));
  }
  if (hdrs) rd_kafka_headers_destroy(hdrs);
  return check_err(ctx, in);
}

/* Produces entry k of b into the open transaction, to the partition it records (the one
 * the serializer chose, or the one the broker gave it when it is written again). */
static int produce_entry(fl_context_t *ctx, kinst_t *in, txbuf_t *b, size_t k, const char *what) {
  entry_t e;
  if (!entry_decode(b->data + b->idx[k], b->len - b->idx[k], &e))
    return ifail(ctx, in, "%s: record %zu cannot be decoded", what, k);
  char topic[256];
  snprintf(topic, sizeof topic, "%.*s", (int)e.topic_len, e.topic);
  return produce(ctx, in, topic, e.partition, e.key, e.key_len, e.value, e.value_len, e.ts, NULL, 0,
                 e.headers, e.n_headers, in->tag, (void *)(uintptr_t)(k + 1));
}

static int flush_all(fl_context_t *ctx, kinst_t *in) {
  rd_kafka_resp_err_t err = rd_kafka_flush(in->rk, in->cfg->timeout_ms);
  int rc = check_err(ctx, in);
  if (rc) return rc;
  if (err)
    return ifail(ctx, in, "flush (topic %s): %d messages not delivered within %d ms: %s",
                 in->cfg->topic ? in->cfg->topic : "(per message)", rd_kafka_outq_len(in->rk),
                 in->cfg->timeout_ms, rd_kafka_err2str(err));
  return FL_OK;
}

/* ---------------------------------------------------------------------------------- */
/* The transaction log                                                                  */

static void log_path(const kinst_t *in, const char *txid, char *buf, size_t n) {
  snprintf(buf, n, "%s/%s.log", in->cfg->log_dir, txid);
}

/* Reads the whole log (NUL-terminated; "" if it does not exist). */
static int log_read(fl_context_t *ctx, kinst_t *in, const char *path, char **out) {
  *out = NULL;
  FILE *f = fopen(path, "r");
  if (!f) {
    if (errno != ENOENT) return ifail(ctx, in, "cannot open %s: %s", path, strerror(errno));
    *out = strdup("");
    return *out ? FL_OK : FL_ENOMEM;
  }
  size_t cap = 4096, len = 0;
  char *s = malloc(cap);
  int rc = FL_OK;
  while (s) {
    if (cap - len < 4096) {
      char *t = realloc(s, cap * 2);
      if (!t) {
        free(s);
        s = NULL;
        break;
      }
      s = t;
      cap *= 2;
    }
    size_t r = fread(s + len, 1, cap - len - 1, f);
    len += r;
    if (r == 0) break;
  }
  if (!s)
    rc = FL_ENOMEM;
  else if (ferror(f)) {
    rc = ifail(ctx, in, "cannot read %s: %s", path, strerror(errno));
    free(s);
  } else {
    s[len] = 0;
    *out = s;
  }
  fclose(f);
  return rc;
}

/* Rewrites the log keeping its last LOG_KEEP_LINES lines (temp + fsync + rename). */
static int log_compact(fl_context_t *ctx, kinst_t *in, const char *path) {
  char *s = NULL;
  int rc = log_read(ctx, in, path, &s);
  if (rc) return rc;
  size_t len = strlen(s), lines = 0;
  const char *start = s + len;
  while (start > s) {
    const char *p = start - 1;
    if (p > s && *p == '\n') p--;
    while (p > s && p[-1] != '\n') p--;
    if (++lines > LOG_KEEP_LINES) break;
    start = p;
  }
  char why[600];
  if (fl_file_replace(path, start, strlen(start), why, sizeof why))
    rc = ifail(ctx, in, "cannot rewrite the transaction log: %s", why);
  if (!rc && strcmp(path, in->log_path) == 0)
    in->log_lines = lines > LOG_KEEP_LINES ? LOG_KEEP_LINES : lines;
  free(s);
  return rc;
}

/* Appends one line durably. */
static int log_append(fl_context_t *ctx, kinst_t *in, const char *path, const char *line) {
  int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) return ifail(ctx, in, "cannot open %s: %s", path, strerror(errno));
  size_t n = strlen(line);
  int rc = FL_OK;
  if (write(fd, line, n) != (ssize_t)n || fsync(fd) != 0)
    rc = ifail(ctx, in, "cannot append to %s: %s", path, strerror(errno));
  close(fd);
  if (rc) return rc;
  if (strcmp(path, in->log_path) == 0 && ++in->log_lines > LOG_COMPACT_LINES)
    rc = log_compact(ctx, in, path);
  return rc;
}

/* ---------------------------------------------------------------------------------- */
/* Transactions                                                                         */

static void new_tag(kinst_t *in, int64_t n) {
  snprintf(in->tag, sizeof in->tag, "%s/%" PRId64 "/%016" PRIx64, in->txid, n,
           in->attempt + in->seq++);
}

static int tx_begin(fl_context_t *ctx, kinst_t *in, int64_t n) {
  int rc = txn_call(ctx, in, "begin_transaction", call_begin);
  if (rc) return rc;
  in->tx_open = true;
  in->tx_pre = false;
  new_tag(in, n);
  return FL_OK;
}

/* Produces the buffered entries [n_prod, n) into the open transaction (beginning one if
 * needed). */
static int tx_produce_buffered(fl_context_t *ctx, kinst_t *in) {
  txbuf_t *b = &in->tx;
  if (b->n_prod == b->n) return FL_OK;
  if (!in->tx_open) {
    int rc = tx_begin(ctx, in, in->last_barrier + 1);
    if (rc) return rc;
  }
  for (; b->n_prod < b->n; b->n_prod++) {
    int rc = produce_entry(ctx, in, b, b->n_prod, "internal error: the write-ahead buffer");
    if (rc) return rc;
  }
  return FL_OK;
}

/* Commits the open transaction with the intent/committed log lines around it. `extra`:
 * "" or " replaces <old> at ..." for the intent, cextra for the committed line. */
static int tx_commit_logged(fl_context_t *ctx, kinst_t *in, const char *path, int64_t n,
                            const char *extra, const char *cextra) {
  char line[2400];
  kill_point("before-intent");
  snprintf(line, sizeof line, "intent %" PRId64 " %s%s\n", n, in->tag, extra);
  int rc = log_append(ctx, in, path, line);
  if (rc) return rc;
  kill_point("after-intent");
  rc = txn_call(ctx, in, "commit_transaction", call_commit);
  if (rc) return rc;
  in->tx_open = false;
  in->tx_pre = false;
  kill_point("after-commit");
  snprintf(line, sizeof line, "committed %" PRId64 " %s%s\n", n, in->tag, cextra);
  rc = log_append(ctx, in, path, line);
  if (rc) return rc;
  kill_point("after-committed-log");
  return FL_OK;
}

/* Commits T (everything produced so far) as checkpoint n, then starts the buffered
 * records in a new transaction. */
static int tx_commit(fl_context_t *ctx, kinst_t *in, int64_t n) {
  int rc = flush_all(ctx, in);
  if (rc) return rc;
  rc = tx_commit_logged(ctx, in, in->log_path, n, "", "");
  if (rc) return rc;
  txbuf_drop_produced(&in->tx);
  return tx_produce_buffered(ctx, in);
}

/* ---------------------------------------------------------------------------------- */
/* Sink functions                                                                       */

static int ks_open_inst(fl_context_t *ctx, void *opaque, void **instance) {
  const ksink_t *c = opaque;
  kinst_t *in = calloc(1, sizeof *in);
  int rc = FL_OK;
  char err[1024] = "";
  if (!in) return FL_ENOMEM;
  in->cfg = c;
  in->subtask = fl_ctx_subtask(ctx);
  in->parallelism = fl_ctx_parallelism(ctx);
  in->dr_target = &in->tx;
  in->keep = fl_ctx_checkpoints_enabled(ctx);
  *instance = in;
  bool eo = c->guarantee == FL_KAFKA_EXACTLY_ONCE;
  if (eo) {
    snprintf(in->txid, sizeof in->txid, "%s-%d", c->prefix, in->subtask);
    log_path(in, in->txid, in->log_path, sizeof in->log_path);
    if (getrandom(&in->attempt, sizeof in->attempt, 0) != sizeof in->attempt) {
      struct timespec ts;
      clock_gettime(CLOCK_REALTIME, &ts);
      in->attempt =
          ((uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec) ^ ((uint64_t)getpid() << 32);
    }
    char why[600];
    if (fl_mkdir_p(c->log_dir, true, why, sizeof why))
      return ifail(ctx, in, "cannot create the transaction log directory: %s", why);
    char *s = NULL;
    rc = log_read(ctx, in, in->log_path, &s);
    if (rc) return rc;
    for (char *q = s; *q; q++) in->log_lines += *q == '\n';
    free(s);
  }
  in->rk = new_producer(c, eo ? in->txid : NULL, in, err, sizeof err);
  if (!in->rk) return ifail(ctx, in, "%s", err);
  if (eo) {
    /* Completes or aborts whatever an earlier producer with this id left open. */
    rc = txn_call(ctx, in, "init_transactions", call_init);
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
  if ((++in->writes & 15) == 0) rd_kafka_poll(in->rk, 0);
  int rc = check_err(ctx, in);
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
  if (!topic) return ifail(ctx, in, "the serializer set no topic and the sink has none");
  if (m.partition < -1)
    return ifail(ctx, in, "the serializer set partition %" PRId32 " for topic %s", m.partition,
                 topic);
  if (c->guarantee != FL_KAFKA_EXACTLY_ONCE)
    return produce(ctx, in, topic, m.partition, m.key, m.key ? m.key_len : 0, m.value,
                   m.value ? m.value_len : 0, m.timestamp, m.headers, m.n_headers, NULL, 0, NULL,
                   NULL);
  if (in->ended) return ifail(ctx, in, "write after the end of input");
  if (!in->keep) {
    if (!in->tx_open && (rc = tx_begin(ctx, in, in->last_barrier + 1))) return rc;
    return produce(ctx, in, topic, m.partition, m.key, m.key ? m.key_len : 0, m.value,
                   m.value ? m.value_len : 0, m.timestamp, m.headers, m.n_headers, NULL, 0, in->tag,
                   NULL);
  }
  rc = txbuf_add(&in->tx, topic, &m);
  if (rc == FL_EINVAL) return ifail(ctx, in, "a message for topic %s is too large", topic);
  if (rc) return rc;
  if (in->tx_pre) return FL_OK; /* after a barrier: waits for the commit */
  if (!in->tx_open) {
    rc = tx_begin(ctx, in, in->last_barrier + 1);
    if (rc) return rc;
  }
  size_t k = in->tx.n - 1;
  in->tx.n_prod = in->tx.n;
  return produce(ctx, in, topic, m.partition, m.key, m.key ? m.key_len : 0, m.value,
                 m.value ? m.value_len : 0, m.timestamp, m.headers, m.n_headers, NULL, 0, in->tag,
                 (void *)(uintptr_t)(k + 1));
}

static void abort_tx(kinst_t *in) {
  if (!in || !in->rk || !in->tx_open || in->fatal) return;
  rd_kafka_purge(in->rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
  int t = in->cfg->timeout_ms < 10000 ? in->cfg->timeout_ms : 10000;
  rd_kafka_error_t *e = rd_kafka_abort_transaction(in->rk, t);
  if (e) rd_kafka_error_destroy(e); /* best effort: init_transactions aborts it later */
  in->tx_open = false;
  in->tx_pre = false;
}

static int ks_flush(fl_context_t *ctx, void *instance) {
  kinst_t *in = instance;
  if (!in) return FL_OK; /* open failed; the job is failing */
  bool eo = in->cfg->guarantee == FL_KAFKA_EXACTLY_ONCE;
  if (fl_ctx_job_failing(ctx)) {
    /* failing or stopped: exactly-once commits nothing; the others deliver what they
     * can within a bounded wait (best effort: the job's outcome is decided) */
    if (eo)
      abort_tx(in);
    else
      rd_kafka_flush(in->rk, in->cfg->timeout_ms < 10000 ? in->cfg->timeout_ms : 10000);
    return FL_OK;
  }
  if (!eo) return flush_all(ctx, in);
  in->ended = true;
  /* Committed by a checkpoint triggered after this (the final one), or at INT64_MAX. */
  in->end_after = fl_ctx_checkpoint_triggered(ctx);
  return check_err(ctx, in);
}

/* State: [u32 magic][u32 n_txn] n_txn x ([u32 tag_len] tag [u64 n] [u64 len] entries). */
static int ks_snapshot(fl_context_t *ctx, void *instance, int64_t id, fl_buf_t *out) {
  kinst_t *in = instance;
  int rc = FL_OK;
  if (in->cfg->guarantee != FL_KAFKA_EXACTLY_ONCE) {
    if (in->cfg->guarantee == FL_KAFKA_AT_LEAST_ONCE) rc = flush_all(ctx, in);
    return rc ? rc : check_err(ctx, in);
  }
  if (!in->keep)
    return ifail(ctx, in,
                 "exactly-once needs periodic checkpoints "
                 "(execution.checkpointing.interval) for a savepoint");
  rc = tx_produce_buffered(ctx, in);
  if (!rc) rc = flush_all(ctx, in);
  if (rc) return rc;
  if (id) in->last_barrier = id;
  if (in->tx_open) {
    in->tx_pre = true;
    in->tx_upto = id ? id : END_ID;
  }
  uint32_t hdr[2] = {STATE_MAGIC, in->tx_open ? 1u : 0u};
  rc = fl_buf_append(out, hdr, sizeof hdr);
  if (!rc && in->tx_open) {
    uint32_t tl = (uint32_t)strlen(in->tag);
    uint64_t n = in->tx.n, len = in->tx.len;
    rc = fl_buf_append(out, &tl, 4);
    if (!rc) rc = fl_buf_append(out, in->tag, tl);
    if (!rc) rc = fl_buf_append(out, &n, 8);
    if (!rc) rc = fl_buf_append(out, &len, 8);
    if (!rc) rc = fl_buf_append(out, in->tx.data, in->tx.len);
  }
  return rc;
}

static int ks_complete(fl_context_t *ctx, void *instance, int64_t id) {
  kinst_t *in = instance;
  if (in->cfg->guarantee != FL_KAFKA_EXACTLY_ONCE) return check_err(ctx, in);
  if (id == END_ID) {
    /* the job ended well without periodic checkpoints: everything commits */
    if (!in->ended) return FL_OK;
    int rc = tx_produce_buffered(ctx, in);
    if (rc || !in->tx_open) return rc;
    return tx_commit(ctx, in, id);
  }
  if (!in->tx_open || !in->tx_pre) return check_err(ctx, in);
  bool covered = in->tx_upto == END_ID ? id > in->end_after : in->tx_upto <= id;
  if (!covered) return check_err(ctx, in);
  return tx_commit(ctx, in, id);
}

/* ---------------------------------------------------------------------------------- */
/* Restore                                                                              */

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
    return ifail(ctx, in, "%s", err);
  }
  char e[512];
  rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, e, sizeof e);
  if (!rk) {
    rd_kafka_conf_destroy(conf);
    return ifail(ctx, in, "cannot create a consumer to check transaction %s: %s", tag, e);
  }
  tp = rd_kafka_topic_partition_list_new(1);
  rd_kafka_topic_partition_list_add(tp, topic, part)->offset = offset;
  rd_kafka_resp_err_t aerr = rd_kafka_assign(rk, tp);
  if (aerr) {
    rc = ifail(ctx, in, "cannot read back topic %s partition %" PRId32 ": %s", topic, part,
               rd_kafka_err2str(aerr));
    goto done;
  }
  int64_t deadline = (int64_t)time(NULL) * 1000 + c->timeout_ms;
  rc = -1000;
  while (rc == -1000) {
    if ((int64_t)time(NULL) * 1000 > deadline) {
      rc = ifail(ctx, in,
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
      rc = ifail(ctx, in, "reading back topic %s partition %" PRId32 " offset %" PRId64 ": %s",
                 topic, part, offset, rd_kafka_message_errstr(m));
    } else if (m->offset > offset) {
      rc = 0; /* skipped: aborted */
    } else if (m->offset == offset) {
      rd_kafka_headers_t *h = NULL;
      const void *v = NULL;
      size_t vl = 0;
      rc = rd_kafka_message_headers(m, &h) == 0 &&
                   rd_kafka_header_get_last(h, HDR_TXN, &v, &vl) == 0 && vl == strlen(tag) &&
                   memcmp(v, tag, vl) == 0
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
  rd_kafka_t *rk = new_producer(in->cfg, txid, NULL, err, sizeof err);
  if (!rk) return ifail(ctx, in, "%s", err);
  rd_kafka_error_t *e = rd_kafka_init_transactions(rk, in->cfg->timeout_ms);
  int rc = FL_OK;
  if (e) {
    rc = ifail(ctx, in, "init_transactions of transactional.id %s failed: %s", txid,
               rd_kafka_error_string(e));
    rd_kafka_error_destroy(e);
  }
  rd_kafka_destroy(rk);
  return rc;
}

typedef struct logscan {
  bool committed; /* the tag, or a replacement of it, is logged committed */
  bool intent;    /* the tag's own intent */
  char rtag[700]; /* the last replacement with an intent but no commit ("": none) */
  char rtopic[256];
  int32_t rpart;
  int64_t roff;
} logscan_t;

static void scan_log(char *s, const char *tag, logscan_t *r) {
  memset(r, 0, sizeof *r);
  char *save = NULL; /* subtasks restore concurrently: strtok_r */
  for (char *line = strtok_r(s, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
    char kind[16], t[700], rep[16] = "", old[700] = "", at[8] = "", topic[256] = "";
    long long n, part = -1, off = -1;
    int k = sscanf(line, "%15s %lld %699s %15s %699s %7s %255s %lld %lld", kind, &n, t, rep, old,
                   at, topic, &part, &off);
    if (k < 3) continue;
    bool mine = strcmp(t, tag) == 0 && k == 3;
    bool replaces = k >= 5 && strcmp(rep, "replaces") == 0 && strcmp(old, tag) == 0;
    if (strcmp(kind, "committed") == 0) {
      if (mine || replaces) r->committed = true;
      if (replaces && strcmp(r->rtag, t) == 0) r->rtag[0] = 0;
    } else if (strcmp(kind, "intent") == 0) {
      if (mine) r->intent = true;
      if (replaces && k == 9) {
        snprintf(r->rtag, sizeof r->rtag, "%s", t);
        snprintf(r->rtopic, sizeof r->rtopic, "%s", topic);
        r->rpart = (int32_t)part;
        r->roff = off;
      }
    }
  }
}

/* The transactional.id of a tag: what precedes its last two '/'. */
static bool tag_txid(const char *tag, char *out, size_t n) {
  const char *a = strrchr(tag, '/');
  if (!a) return false;
  const char *b = a - 1;
  while (b > tag && *b != '/') b--;
  if (b <= tag) return false;
  snprintf(out, n, "%.*s", (int)(b - tag), tag);
  return true;
}

/* Resolves one restored transaction (see the top of the file). */
static int resolve(fl_context_t *ctx, kinst_t *in, const char *old_tag, txbuf_t *b) {
  char otx[512], path[4400];
  if (!tag_txid(old_tag, otx, sizeof otx)) return FL_EPARSE;
  log_path(in, otx, path, sizeof path);
  char *s = NULL;
  int rc = log_read(ctx, in, path, &s);
  if (rc) return rc;
  logscan_t r;
  scan_log(s, old_tag, &r);
  free(s);
  if (r.committed || b->n == 0) return FL_OK;
  char line[2400];
  int64_t n = in->last_barrier;
  entry_t e0;
  if (entry_decode(b->data, b->len, &e0) == 0)
    return fl_ctx_fail(ctx, "the checkpoint's records of transaction %s are damaged", old_tag);
  if (r.intent) {
    char topic[256];
    snprintf(topic, sizeof topic, "%.*s", (int)e0.topic_len, e0.topic);
    rc = visible(ctx, in, topic, e0.partition, e0.offset, old_tag);
    if (rc < 0) return rc;
    if (rc == 1) {
      snprintf(line, sizeof line, "committed %" PRId64 " %s\n", n, old_tag);
      return log_append(ctx, in, path, line);
    }
  }
  if (r.rtag[0]) {
    rc = visible(ctx, in, r.rtopic, r.rpart, r.roff, r.rtag);
    if (rc < 0) return rc;
    if (rc == 1) {
      snprintf(line, sizeof line, "committed %" PRId64 " %s replaces %s\n", n, r.rtag, old_tag);
      return log_append(ctx, in, path, line);
    }
  }
  /* Never committed: write its records again in a transaction of this producer. */
  rc = tx_begin(ctx, in, n);
  if (rc) return rc;
  in->dr_target = b;
  for (size_t k = 0; k < b->n && !rc; k++) {
    rc = produce_entry(ctx, in, b, k, "the checkpoint's records of a transaction");
  }
  if (!rc) rc = flush_all(ctx, in);
  in->dr_target = &in->tx;
  if (rc) return rc;
  entry_decode(b->data, b->len, &e0); /* decoded above; offsets updated by delivery */
  char extra[1500], cextra[800];
  snprintf(extra, sizeof extra, " replaces %s at %.*s %" PRId32 " %" PRId64, old_tag,
           (int)e0.topic_len, e0.topic, e0.partition, e0.offset);
  snprintf(cextra, sizeof cextra, " replaces %s", old_tag);
  return tx_commit_logged(ctx, in, path, n, extra, cextra);
}

static int ks_restore(fl_context_t *ctx, void *instance, const fl_bytes_t *states, size_t n) {
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
    if (len < 8 || (memcpy(hdr, p, 8), hdr[0] != STATE_MAGIC)) goto bad;
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
      txbuf_free(&b);
      if (blen && !(b.data = malloc(blen))) {
        rc = FL_ENOMEM;
        break;
      }
      memcpy(b.data, p + pos, blen);
      b.len = b.cap = blen;
      pos += blen;
      rc = txbuf_index(&b, cnt);
      if (rc == FL_EPARSE) goto bad;
      if (!rc) rc = resolve(ctx, in, tag, &b);
    }
    continue;
  bad:
    rc = ifail(ctx, in, "the checkpoint state of subtask %zu is malformed", i);
  }
  txbuf_free(&b);
  return rc;
}

static void ks_close(void *instance) {
  kinst_t *in = instance;
  if (!in) return;
  if (in->rk) {
    abort_tx(in);
    rd_kafka_purge(in->rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
    rd_kafka_destroy(in->rk);
  }
  txbuf_free(&in->tx);
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

int fl_stream_sink_kafka(fl_stream_t *in, const char *name, const fl_kafka_sink_opts_t *opts) {
  /* From a valid opts on, serialize_destroy is called exactly once, even on failure. */
  bool owns = opts && opts->version == FL_KAFKA_SINK_OPTS_VERSION;
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

  if (!opts) {
    snprintf(err, sizeof err, "opts is NULL");
    goto done;
  }
  if (opts->version != FL_KAFKA_SINK_OPTS_VERSION) {
    snprintf(err, sizeof err, "opts.version is %d, expected %d", opts->version,
             FL_KAFKA_SINK_OPTS_VERSION);
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
      snprintf(err, sizeof err, "opts.%s", e);
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
                                  .restore = ks_restore};
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
