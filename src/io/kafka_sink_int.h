/*
 * The Kafka sink's files and what they share (private to src/io/kafka_sink*.c,
 * kafka_txbuf.c and kafka_txn_log.c):
 *
 *   kafka_sink.c           the options and the sink functions the runtime calls (the
 *                          design is described there)
 *   kafka_txbuf.c          the write-ahead buffer of a transaction, which is also its
 *                          checkpoint format
 *   kafka_sink_producer.c  producing, delivery reports, and transactions with their
 *                          logged commit
 *   kafka_txn_log.c        the transaction log: reading, appending, compacting, scanning
 *   kafka_sink_eos.c       exactly-once recovery when the job restores
 *
 * Everything here runs on the instance's worker thread.
 */
#ifndef FL_IO_KAFKA_SINK_INT_H
#define FL_IO_KAFKA_SINK_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <pthread.h>

#include <librdkafka/rdkafka.h>

#include "flink.h"
#include "io/kafka_health.h"

#define FL_KSINK_END_ID INT64_MAX        /* the commit after the end of a job without checkpoints */
#define FL_KSINK_STATE_MAGIC 0x314b4c46u /* "FLK1" */
#define FL_KSINK_HDR_TXN "fl.txn"

/* The options, copied by the builder; immutable while the job runs. */
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
  bool accept_duplicates; /* EXACTLY_ONCE: a start that writes committed output again goes on */
} ksink_t;

/* ---------------------------------------------------------------------------------- */
/* The write-ahead buffer (kafka_txbuf.c)                                              */
/*
 * Entry: [u32 topic_len][u32 key_len|NONE][u32 value_len|NONE][u32 n_headers]
 *        [i32 partition][i64 offset][i64 timestamp] topic key value
 *        n_headers x ([u32 name_len][u32 value_len|NONE] name value)
 * Little-endian native layout (checkpoints are read by the same build).
 */
#define FL_KSINK_LEN_NONE UINT32_MAX
#define FL_KSINK_ENT_OFF_PART 16
#define FL_KSINK_ENT_OFF_OFFSET 20

/* data lives in a block that a checkpoint may share while it writes the block's first
 * bytes on another thread (fl_ksink_txbuf_share): while it is shared, the buffer
 * changes none of the bytes it had when it was shared, and moves to a block of its own
 * before it grows or drops entries. */
typedef struct txblk txblk_t;
typedef struct txbuf {
  uint8_t *data; /* blk's bytes */
  txblk_t *blk;
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

void fl_ksink_txbuf_free(txbuf_t *b);
/* Sets b to a copy of data[0, len) with no entries indexed (a restored state);
 * FL_ENOMEM. */
int fl_ksink_txbuf_set(txbuf_t *b, const void *data, size_t len);
/* Shares b's block (NULL when b has none): its bytes [0, b->len) stay as they are until
 * fl_ksink_txbuf_release(the result) is called, from any thread. */
void *fl_ksink_txbuf_share(txbuf_t *b);
void fl_ksink_txbuf_release(void *blk);
/* Appends a message for topic (partition as given, offset -1). FL_EINVAL: a length
 * does not fit the format; FL_ENOMEM. */
int fl_ksink_txbuf_add(txbuf_t *b, const char *topic, const fl_kafka_message_t *m);
/* Decodes the entry at data[0, len) into e; returns its size, 0 if malformed. */
size_t fl_ksink_entry_decode(const uint8_t *data, size_t len, entry_t *e);
/* Rebuilds b's index of n entries from its bytes (a restored state); FL_EPARSE if
 * malformed. */
int fl_ksink_txbuf_index(txbuf_t *b, uint64_t n);
/* Drops the produced entries [0, n_prod), keeping the buffered ones. O(buffered).
 * FL_ENOMEM (nothing dropped) when a shared block could not be left. */
int fl_ksink_txbuf_drop_produced(txbuf_t *b);

/* ---------------------------------------------------------------------------------- */
/* An instance (one subtask)                                                           */

typedef struct kinst {
  const ksink_t *cfg;
  const fl_context_t *ctx; /* the runtime's context of this instance, stable while open */
  int subtask, parallelism;
  rd_kafka_t *rk;
  fl_kafka_health_t health; /* used by the thread that serves the statistics */
  /* AT_LEAST_ONCE and NO_GUARANTEE: librdkafka's background thread serves the delivery
   * reports, errors and statistics (bg_event), so that a delivery that cannot complete
   * fails the job even while no record arrives; the worker reads the outcome under mu. */
  bool bg;
  pthread_mutex_t mu;
  pthread_cond_t cv; /* a delivery report arrived */
  uint64_t produced; /* worker only: messages librdkafka accepted */
  uint64_t reported; /* under mu: delivery reports, failed or not */
  uint64_t lost;     /* under mu: failed delivery reports */
  bool bg_failed;    /* under mu: a failure seen, described in bg_err */
  char bg_err[1024]; /* under mu */
  bool closing;      /* under mu: the purge at close reports no failures */
  char txid[512];
  char log_path[4400];
  /* delivery errors (set by the delivery report callback on this thread, or copied from
   * bg_err) */
  bool failed;
  char err[1024];
  txbuf_t *dr_target; /* the buffer whose entries' offsets delivery reports fill */
  uint64_t writes;
  /* EXACTLY_ONCE */
  txbuf_t tx;
  bool tx_open;    /* begin_transaction was called */
  bool tx_pre;     /* pre-committed: new records are buffered */
  int64_t tx_upto; /* the checkpoint that may commit it (FL_KSINK_END_ID: after the end) */
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

/* ---------------------------------------------------------------------------------- */
/* The producer and its transactions (kafka_sink_producer.c)                           */

/* Fails the job with "kafka sink '<name>': <message>"; returns the error. */
int fl_ksink_fail(fl_context_t *ctx, kinst_t *in, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
/* Fails the job if a delivery report or a fatal error was seen. */
int fl_ksink_check_err(fl_context_t *ctx, kinst_t *in);
/* A producer of the sink's brokers and properties; transactional with txid. With an
 * instance, the one of that instance: exactly-once serves its callbacks on the worker
 * (rd_kafka_poll, flush), the others on librdkafka's background thread (in->bg, set
 * before), with message.timeout.ms = the sink's timeout unless the properties set a
 * delivery timeout. NULL on failure (err says why). */
rd_kafka_t *fl_ksink_new_producer(const ksink_t *c, const char *txid, kinst_t *in, char *err,
                                  size_t errsz);
/* In->bg: waits until every message produced has its delivery report, or until
 * deadline_ms (monotonic); whether they all have. */
bool fl_ksink_wait_reports(kinst_t *in, int64_t deadline_ms);
/* init_transactions of in->rk, retrying retriable errors until the timeout: completes or
 * aborts whatever an earlier producer with the same id left open. */
int fl_ksink_txn_init(fl_context_t *ctx, kinst_t *in);
/* Produces one message (hs: plain headers; enc_hs: n_enc headers encoded as in the
 * write-ahead buffer; tag: the fl.txn header, or NULL), waiting while the local queue
 * is full: back-pressure, not a failure. */
int fl_ksink_produce(fl_context_t *ctx, kinst_t *in, const char *topic, int32_t partition,
                     const void *key, size_t key_len, const void *value, size_t value_len,
                     int64_t ts, const fl_kafka_header_t *hs, size_t nh, const uint8_t *enc_hs,
                     size_t n_enc, const char *tag, void *opaque);
/* Produces entry k of b into the open transaction, to the partition it records. */
int fl_ksink_produce_entry(fl_context_t *ctx, kinst_t *in, txbuf_t *b, size_t k, const char *what);
/* Waits until every message is delivered, or fails the job after the timeout. */
int fl_ksink_flush_all(fl_context_t *ctx, kinst_t *in);
/* Begins a transaction tagged for checkpoint n. */
int fl_ksink_tx_begin(fl_context_t *ctx, kinst_t *in, int64_t n);
/* Produces the buffered entries [n_prod, n) into the open transaction (beginning one if
 * needed). */
int fl_ksink_tx_produce_buffered(fl_context_t *ctx, kinst_t *in);
/* Commits the open transaction with the intent/committed lines around it in the log at
 * path. extra: "" or " replaces <old> at ..." for the intent, cextra for the committed
 * line. */
int fl_ksink_tx_commit_logged(fl_context_t *ctx, kinst_t *in, const char *path, int64_t n,
                              const char *extra, const char *cextra);
/* Commits T (everything produced so far) as checkpoint n, then starts the buffered
 * records in a new transaction. */
int fl_ksink_tx_commit(fl_context_t *ctx, kinst_t *in, int64_t n);
/* Aborts the open transaction, best effort (init_transactions aborts it later). */
void fl_ksink_abort_tx(kinst_t *in);
/* Calls the test hook (kafka_sink.h) at a step of a commit. */
void fl_ksink_kill_point(const char *point);

/* ---------------------------------------------------------------------------------- */
/* The transaction log (kafka_txn_log.c)                                               */

/* <log_dir>/<txid>.log */
void fl_ksink_log_path(const kinst_t *in, const char *txid, char *buf, size_t n);
/* Reads the whole log (NUL-terminated; "" if it does not exist). */
int fl_ksink_log_read(fl_context_t *ctx, kinst_t *in, const char *path, char **out);
/* Appends one line durably (compacting the instance's own log when it grew long). */
int fl_ksink_log_append(fl_context_t *ctx, kinst_t *in, const char *path, const char *line);

typedef struct logscan {
  bool committed; /* the tag, or a replacement of it, is logged committed */
  bool intent;    /* the tag's own intent */
  char rtag[700]; /* the last replacement with an intent but no commit ("": none) */
  char rtopic[256];
  int32_t rpart;
  int64_t roff;
} logscan_t;

/* The logs of this subtask's share of the prefix: <log_dir>/<prefix>-<n>.log with
 * n % parallelism == subtask, sorted; *paths is a NULL-terminated array (free with
 * fl_ksink_paths_free). A log directory that does not exist holds none. */
int fl_ksink_log_share(fl_context_t *ctx, kinst_t *in, char ***paths);
void fl_ksink_paths_free(char **paths);
/* Creates the instance's own log if it does not exist (empty). */
int fl_ksink_log_touch(fl_context_t *ctx, kinst_t *in);

#define FL_KSINK_LATER_SHOWN 8
typedef struct fl_ksink_commits {
  int64_t newest;                      /* the newest checkpoint of an intent or committed
                                           line (0: none) */
  int64_t later[FL_KSINK_LATER_SHOWN]; /* the smallest distinct checkpoints above `after`
                                           since the last start line, ascending */
  size_t n_later;                      /* how many of later[] are set */
  bool more;                           /* more than later[] holds */
  int64_t max_later;                   /* the largest of them */
} fl_ksink_commits_t;
/* Adds what one log's text says about commits to c (zeroed before the first log). An
 * intent counts as a commit: its commit may have reached the broker. */
void fl_ksink_log_commits(const char *text, int64_t after, fl_ksink_commits_t *c);

/* What the log text s (modified) says about transaction tag. */
void fl_ksink_log_scan(char *s, const char *tag, logscan_t *r);
/* The transactional.id of a tag: what precedes its last two '/'. */
bool fl_ksink_tag_txid(const char *tag, char *out, size_t n);

/* ---------------------------------------------------------------------------------- */
/* Recovery (kafka_sink_eos.c)                                                         */

/* At open, before anything is written: whether this start would write again output the
 * sink already committed (see accept_duplicates in flink.h), from the logs of this
 * subtask's share, or, at a start without a checkpoint and without any such log, from
 * the last record of each of its partitions of the sink's topic. Fails the job, or
 * with accept_duplicates logs a warning and marks the logs. */
int fl_ksink_check_repeat(fl_context_t *ctx, kinst_t *in);
/* The sink's restore function: resolves the restored transactions this subtask owns. */
int fl_ksink_restore(fl_context_t *ctx, void *instance, const fl_bytes_t *states, size_t n);

#endif
