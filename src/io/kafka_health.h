/*
 * Whether the brokers a Kafka client needs answer (private to src/io/kafka_*), told
 * from librdkafka's statistics: its own view of each broker, every
 * statistics.interval.ms (1000 here unless the properties set it; 0 turns this off).
 *
 * A broker does not answer when its connection is not up while the client has
 * partitions on it or requests for it (down, refused, being retried), or when it is up
 * with a request waiting and nothing has come from it for the stall time: five
 * intervals, and for a consumer at least its fetch.wait.max.ms plus two intervals (a
 * fetch waits that long for data on a healthy broker). That is what a frozen broker
 * (SIGSTOP, a hung disk, a partition of the network) looks like before librdkafka's own
 * request timeouts, which take a minute. When a silence has lasted the stall time, a
 * warning names the brokers, how long, the client's last error and the messages it holds
 * back; it comes again every thirty intervals while the silence lasts, and an info line
 * says when the brokers answer again. librdkafka retries all along: the log line is the
 * news, not a failure.
 *
 * A tracker belongs to one client and is used by one thread at a time (the thread that
 * serves the client's statistics and error callbacks).
 */
#ifndef FL_IO_KAFKA_HEALTH_H
#define FL_IO_KAFKA_HEALTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <librdkafka/rdkafka.h>

#include "flink.h"

typedef struct fl_kafka_health {
  int64_t interval_ms; /* statistics.interval.ms; 0: off */
  int64_t stall_ms;    /* silence that counts as not answering */
  int64_t since_ms;    /* monotonic start of the current silence, 0: none */
  int64_t logged_ms;   /* when it was last logged, 0: not yet */
  char last_error[300];
} fl_kafka_health_t;

/* Sets statistics.interval.ms on conf (after the properties were applied) unless props
 * name it, and h's thresholds; consumer: the client fetches (fetch.wait.max.ms counts).
 * Returns 0 or FL_EINVAL (err says why). */
int fl_kafka_health_init(fl_kafka_health_t *h, rd_kafka_conf_t *conf, char *const *props,
                         bool consumer, char *err, size_t err_size);

/* The client's latest error event (a retriable one: connection refused, all brokers
 * down, ...), quoted by the next warning. */
void fl_kafka_health_error(fl_kafka_health_t *h, const char *text);

/* One statistics document (the JSON of a stats callback or event). Logs through
 * fl_ctx_log(ctx, ...) prefixed with `who` ("kafka source 'in'"); ctx is only used for
 * that, and fl_ctx_log may be called from the client's own thread. */
void fl_kafka_health_stats(fl_kafka_health_t *h, const fl_context_t *ctx, const char *who,
                           const char *json, size_t len);

#endif
