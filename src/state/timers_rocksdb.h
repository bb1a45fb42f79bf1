/*
 * The timer service kept in a RocksDB store (src/state/timers_rocksdb.c): what
 * timers.c dispatches to when a service was made by fl_timers_new_rocksdb(). The calls
 * mean what the fl_timers_* calls of timers.h mean, except that the order among timers
 * of equal timestamp is (key group, key length, key bytes, namespace bytes), that pop
 * may also return a negative error (a failed RocksDB call; fl_rtimers_errmsg says which),
 * and that count walks the stored timers. Threading: the store's thread.
 */
#ifndef FL_STATE_TIMERS_ROCKSDB_H
#define FL_STATE_TIMERS_ROCKSDB_H

#include <stddef.h>
#include <stdint.h>

#include "state/kv.h"
#include "state/timers.h"

/* Timers kept in memory per (domain, key group) by default: Flink's cache size. */
#define FL_RTIMERS_CACHE 128

typedef struct fl_rtimers fl_rtimers_t;

int fl_rtimers_new(fl_kv_t *kv, uint32_t kg_first, uint32_t kg_count, size_t cache,
                   fl_rtimers_t **out, char *err, size_t err_size);
void fl_rtimers_destroy(fl_rtimers_t *t);
int fl_rtimers_register(fl_rtimers_t *t, fl_time_domain_t d, uint16_t kg, const void *key,
                        size_t key_len, const void *ns, size_t ns_len, int64_t ts);
int fl_rtimers_delete(fl_rtimers_t *t, fl_time_domain_t d, uint16_t kg, const void *key,
                      size_t key_len, const void *ns, size_t ns_len, int64_t ts);
int fl_rtimers_peek(const fl_rtimers_t *t, fl_time_domain_t d, int64_t *ts);
int fl_rtimers_pop(fl_rtimers_t *t, fl_time_domain_t d, int64_t upto, fl_timer_t *out);
int fl_rtimers_foreach(fl_rtimers_t *t, fl_time_domain_t d,
                       int (*cb)(const fl_timer_t *tm, uint64_t seq, void *arg), void *arg);
size_t fl_rtimers_count(fl_rtimers_t *t, fl_time_domain_t d);
size_t fl_rtimers_cached(const fl_rtimers_t *t);
const char *fl_rtimers_errmsg(const fl_rtimers_t *t);
/* Registers into dst the timers of key groups [kg_first, kg_first + kg_count) that the
 * RocksDB store src keeps (a store opened from a native copy). 0 when it has none. */
int fl_rtimers_copy(fl_kv_t *src, uint32_t kg_first, uint32_t kg_count, fl_timers_t *dst);

#endif
