/*
 * Private to the Kafka sink and its tests: a hook called at the steps of an
 * exactly-once commit, so that a test can kill the process between them.
 */
#ifndef FL_IO_KAFKA_SINK_H
#define FL_IO_KAFKA_SINK_H

/* Sets (hook NULL: clears) the function called, on the committing worker thread, at
 * each step of a transaction's commit, with point one of:
 *   "before-intent"       the transaction is flushed, the intent is not yet logged
 *   "after-intent"        the intent line is durable, the commit not yet sent
 *   "after-commit"        the broker acknowledged the commit, not yet logged
 *   "after-committed-log" the committed line is durable
 * Commits made while resolving a restored transaction pass through the same points.
 * Set it before fl_env_execute(); it is process-wide. */
void fl_kafka_sink_set_kill_hook(void (*hook)(const char *point, void *arg), void *arg);

#endif
