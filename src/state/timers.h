/*
 * The timer service of one keyed operator subtask: event-time and processing-time
 * timers, each addressed by (key group, key, namespace, timestamp) and deduplicated on
 * that address. Timers are kept in one binary min-heap per key group (so they can be
 * snapshotted and moved with their key group), and a small heap over the key groups'
 * earliest timers gives the global minimum in O(1) and pops in O(log n).
 * Order: by timestamp, then by registration sequence (FIFO among equal timestamps).
 *
 * Threading: owned by one worker thread.
 */
#ifndef FL_STATE_TIMERS_H
#define FL_STATE_TIMERS_H

#include <stddef.h>
#include <stdint.h>

#include "flink.h"

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
/* Pops the earliest timer of the domain if its ts <= upto: 1 and *out, else 0. */
int fl_timers_pop(fl_timers_t *t, fl_time_domain_t d, int64_t upto, fl_timer_t *out);
/* Calls cb for every timer of the domain, in no particular order, with its registration
 * sequence number (the FIFO order among equal timestamps). Stops at and returns cb's
 * first non-zero result. cb must not change the service. For snapshots. */
int fl_timers_foreach(const fl_timers_t *t, fl_time_domain_t d,
                      int (*cb)(const fl_timer_t *tm, uint64_t seq, void *arg), void *arg);
/* Number of timers in the domain. */
size_t fl_timers_count(const fl_timers_t *t, fl_time_domain_t d);

#endif
