/*
 * The timer service of one keyed operator subtask: event-time and processing-time
 * timers, each addressed by (key group, key, namespace, timestamp) and deduplicated on
 * that address. Two kinds of service implement the calls below:
 *  - the heap (fl_timers_new): every timer in memory, in one binary min-heap per key
 *    group (so they can be snapshotted and moved with their key group), and a small
 *    heap over the key groups' earliest timers gives the global minimum in O(1) and
 *    pops in O(log n). Order: by timestamp, then by registration sequence (FIFO among
 *    equal timestamps).
 *  - RocksDB (fl_timers_new_rocksdb, timers_rocksdb.c): every timer in a column family
 *    of the operator's store, ordered by (key group, timestamp, key, namespace) as
 *    Flink's RocksDB timer service orders them, with the earliest few of each key group
 *    cached in memory, so memory does not grow with the number of timers. Order: by
 *    timestamp, then key group, then key (its length, then its bytes), then namespace
 *    bytes: deterministic, whatever the registration order (Flink too orders timers of
 *    equal timestamp by key, not by registration).
 * Both delete exactly, and registering an existing timer changes nothing.
 *
 * Threading: owned by one worker thread.
 */
#ifndef FL_STATE_TIMERS_H
#define FL_STATE_TIMERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "flink.h"
#include "state/kv.h"

typedef struct fl_timers fl_timers_t;

/* A timer as returned by pop. key and ns are borrowed from the service until its next
 * fl_timers_pop() or fl_timers_destroy(); an on_timer callback may register and delete
 * timers, passing them, while using them. */
typedef struct fl_timer {
  int64_t ts;
  uint16_t kg;
  const void *key;
  size_t key_len;
  const void *ns;
  size_t ns_len;
} fl_timer_t;

/* Timers for key groups [kg_first, kg_first + kg_count). NULL on ENOMEM or when the
 * range exceeds the uint16_t key groups. */
fl_timers_t *fl_timers_new(uint32_t kg_first, uint32_t kg_count);
/* Timers for key groups [kg_first, kg_first + kg_count) kept in the RocksDB store kv
 * (which must outlive the service; NULL if kv is not a RocksDB store). cache: timers
 * held in memory per (domain, key group), 0 for the default (128, Flink's). A store
 * opened from a native copy that held timers has them again. NULL on failure, with the
 * cause in err. */
fl_timers_t *fl_timers_new_rocksdb(fl_kv_t *kv, uint32_t kg_first, uint32_t kg_count, size_t cache,
                                   char *err, size_t err_size);
void fl_timers_destroy(fl_timers_t *t);

/* Registers a timer; registering an existing one changes nothing. 0 or FL_ENOMEM,
 * FL_EINVAL for a key group outside the range. */
int fl_timers_register(fl_timers_t *t, fl_time_domain_t d, uint16_t kg, const void *key,
                       size_t key_len, const void *ns, size_t ns_len, int64_t ts);
/* Deletes a timer; 0 whether or not it existed. */
int fl_timers_delete(fl_timers_t *t, fl_time_domain_t d, uint16_t kg, const void *key,
                     size_t key_len, const void *ns, size_t ns_len, int64_t ts);
/* The earliest timestamp in the domain: 1 and *ts, or 0 when there is no timer. */
int fl_timers_peek(const fl_timers_t *t, fl_time_domain_t d, int64_t *ts);
/* Pops the earliest timer of the domain if its ts <= upto: 1 and *out, else 0; a
 * negative error when the store failed (RocksDB; fl_timers_errmsg says why). */
int fl_timers_pop(fl_timers_t *t, fl_time_domain_t d, int64_t upto, fl_timer_t *out);
/* Calls cb for every timer of the domain, in no particular order, with its registration
 * sequence number (the FIFO order among equal timestamps). Stops at and returns cb's
 * first non-zero result. cb must not change the service. For snapshots. */
int fl_timers_foreach(const fl_timers_t *t, fl_time_domain_t d,
                      int (*cb)(const fl_timer_t *tm, uint64_t seq, void *arg), void *arg);
/* Calls cb for every timer of the domain in the order a restore registers them to keep
 * the service's tie order: the heap's firing order (ts, then registration; it sorts an
 * index of 24 bytes a timer for the walk), a RocksDB service's stored order (key
 * group, then firing order). Same contract as fl_timers_foreach otherwise. */
int fl_timers_foreach_ordered(const fl_timers_t *t, fl_time_domain_t d,
                              int (*cb)(const fl_timer_t *tm, uint64_t seq, void *arg), void *arg);
/* Number of timers in the domain (RocksDB: a walk of the stored timers, for tests). */
size_t fl_timers_count(const fl_timers_t *t, fl_time_domain_t d);
/* Timers held in memory: all of them for the heap, the cached ones for RocksDB. */
size_t fl_timers_in_memory(const fl_timers_t *t);
/* True when the timers live in their RocksDB store, so a native copy of the store holds
 * them (incremental checkpoints need not write them). */
bool fl_timers_in_store(const fl_timers_t *t);
/* The message of the last failed store call; "" for the heap or when none failed. */
const char *fl_timers_errmsg(const fl_timers_t *t);

#endif
