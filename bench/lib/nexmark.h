/*
 * Nexmark for libflink: the event generator, the queries (written with flink.h only, as
 * a user of the library would write them), and the binary formats of their events and
 * results. docs/nexmark.md gives the generator parameters and the meaning of the queries;
 * where a query departs from Flink's Nexmark SQL, its comment below says how.
 *
 * Threading: an nx_gen_t is read-only after nx_gen_new() and may be shared by any number
 * of threads (the parallel source, test threads, the baseline). Query builders follow
 * flink.h: call them on the thread that owns the environment, before fl_env_execute().
 */
#ifndef NEXMARK_H
#define NEXMARK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "flink.h"
#include "sql/nexmark_gen.h"

/* ---------------------------------------------------------------------------------- */
/* Query results                                                                      */
/*
 * What each query emits: record values are the structs below (native endian), keys are
 * empty, timestamps as listed. The event-time queries emit the same set of records for
 * any parallelism and any timing, in an order that may differ; the changelog queries
 * (q4, q17, q18, q19) emit the same final row per key, while the rows before it follow
 * the order in which the records of different source subtasks arrive (fixed at
 * parallelism 1).
 *
 * q0  pass-through. Every bid, projected to (auction, bidder, price, dateTime, extra):
 *     an nx_bid_wire_t value with empty channel and url. ts: the bid's.
 * q1  currency conversion. As q0 with price in thousandths of a euro:
 *     price * 908 (Flink: 0.908 * price as DECIMAL(23,3); this is the same number,
 *     exact). ts: the bid's.
 * q2  selection. nx_q2_t for every bid with auction % 123 == 0. ts: the bid's.
 * q3  local item suggestion. nx_q3 (nx_q3_wire_t + name, city, state) for every pair
 *     of an auction of category 10 and its seller when the seller's state is OR, ID or
 *     CA, emitted when the second of the two arrives (a regular inner join). ts: the
 *     later of the two events' times. Departure: the state keeps per person only the
 *     result's fields (or a "no match" mark for other states), and an auction only
 *     until its seller arrives; Flink's SQL join keeps both inputs whole, with the same
 *     output.
 * q4  average price per category. When an auction closes (the watermark passes its
 *     expires), its winning bid is the highest price among its bids with dateTime in
 *     [dateTime, expires] of the auction; auctions without such a bid have none. For
 *     each winning bid: nx_q4_t with the category's running count, sum and
 *     avg = sum / count (integer division, as SQL AVG over BIGINT). ts: the auction's
 *     expires. Departure: Flink's SQL q4 updates the maximum with every bid and never
 *     closes an auction; this is Nexmark's original meaning (docs/nexmark.md).
 * q5  hot items. Sliding windows of 10 s every 2 s on bids; per window, nx_q5_t for
 *     every auction whose bid count equals the window's largest count (ties: all of
 *     them, as Flink's `num >= maxn` join). ts: window end - 1.
 * q7  highest bid. Tumbling 10 s windows on bids; every bid whose price equals the
 *     window's maximum, projected as in q0. ts: window end - 1 (the bid keeps its
 *     dateTime). Departure: a bid belongs to the window [start, end) that contains it;
 *     Flink's SQL compares dateTime BETWEEN end - 10 s AND end, so a bid at exactly
 *     `end` with the maximum price of the previous window would match that one too.
 * q8  monitor new users. nx_q8 (nx_q8_wire_t + name) for every person who opened at
 *     least one auction in the same 10 s tumbling window as the person event (a window
 *     join on person id = seller), once per (person, window) as Flink's GROUP BY.
 *     start_time: the window start. ts: window end - 1.
 * q11 user sessions. nx_window_count_t (bidder, bid_count, start, end) per bidder and
 *     event-time session of 10 s gap. ts: end - 1.
 * q12 processing-time windows. nx_window_count_t per bidder and 10 s tumbling window of
 *     processing time (the environment's clock); start and end are processing times.
 *     ts: end - 1. At the end of the input every open window fires.
 * q17 auction statistics. Per (auction, day of dateTime in UTC), after every bid, the
 *     updated nx_q17_t (an unbounded group aggregation's changelog, as Flink emits it:
 *     one row per input; rank1: price < 10,000, rank2: [10,000, 1,000,000), rank3:
 *     >= 1,000,000; avg = sum / count). ts: the bid's. The state of a day is dropped
 *     when the watermark passes the day's end (no bid of that day can arrive later).
 * q18 last bid. Per (bidder, auction), every bid whose dateTime is >= that of the last
 *     one emitted for the pair (Flink's keep-last-row deduplication on dateTime), as a
 *     full nx_bid_wire_t value. ts: the bid's. The last record per pair is the pair's
 *     latest bid (among bids with equal dateTime, the last to arrive). State: 8 bytes
 *     per pair, kept for good (as Flink's SQL without a state TTL).
 * q19 top 10 bids per auction by price. For every bid that enters its auction's top 10
 *     when it arrives: nx_q19_wire_t (its rank 1..10 at that moment) followed by the
 *     full bid. ts: the bid's. A bid ranks after earlier bids of equal price. Departure:
 *     Flink's Rank operator also re-emits the rows that move down a rank or out; here
 *     the current top 10 of an auction is the 10 highest prices emitted for it so far.
 *     State: the 10 prices per auction (88 bytes), kept for good.
 */

typedef struct nx_q2 {
  int64_t auction, price;
} nx_q2_t;

typedef struct nx_q3_wire {
  int64_t auction; /* the auction id */
  uint16_t name_len, city_len, state_len, reserved;
  /* name, city, state */
} nx_q3_wire_t;

typedef struct nx_q4 {
  int64_t category, avg_price, auctions, sum_price;
} nx_q4_t;

typedef struct nx_q5 {
  int64_t auction, num, window_start, window_end;
} nx_q5_t;

typedef struct nx_q8_wire {
  int64_t id, start_time;
  uint16_t name_len, reserved[3];
  /* name */
} nx_q8_wire_t;

typedef struct nx_window_count {
  int64_t bidder, bid_count, start, end;
} nx_window_count_t;

typedef struct nx_q17 {
  int64_t auction;
  int64_t day; /* days since 1970-01-01 (UTC); JSON: "yyyy-MM-dd" */
  int64_t total_bids, rank1_bids, rank2_bids, rank3_bids;
  int64_t min_price, max_price, avg_price, sum_price;
} nx_q17_t;

typedef struct nx_q19_wire {
  int64_t rank_number;
  /* followed by an nx_bid_wire_t and its strings */
} nx_q19_wire_t;

/* q17's days: 86,400,000 ms, days since the epoch, floor for negative times. */
int64_t nx_day_of(int64_t ms);
/* "yyyy-MM-dd" of a day number (proleptic Gregorian), snprintf style. */
int nx_day_string(int64_t day, char *out, size_t cap);

/* ---------------------------------------------------------------------------------- */
/* Queries                                                                            */

/* Adds a query to env: `events` is nx_source()'s stream; returns the result stream
 * (NULL when a builder call returned NULL; fl_env_execute() then reports why). */
typedef fl_stream_t *(*nx_build_fn)(fl_env_t *env, fl_stream_t *events);
/* One JSON object (no newline) for a result record of the query, snprintf style;
 * negative (FL_EPARSE) for a malformed record. */
typedef int (*nx_json_fn)(const fl_record_t *rec, char *out, size_t cap);

typedef struct nx_query {
  const char *name;  /* "q0" */
  const char *title; /* "pass-through" */
  nx_build_fn build;
  nx_json_fn to_json;
} nx_query_t;

/* ---- Pieces the queries share (nexmark_parts.c) ---- */

/* A native int64 at p (values are not aligned). */
static inline int64_t nx_i64(const void *p) {
  int64_t v;
  memcpy(&v, p, sizeof v);
  return v;
}

/* The events of one kind (the first byte of an event is its kind). */
fl_stream_t *nx_events_of(fl_stream_t *events, nx_kind_t kind);
/* A key selector returning the int64 id in place at the byte offset its opaque pointer
 * holds (NX_AT); the filter of nx_events_of() has checked the fixed part is there. */
int nx_key_at(fl_context_t *ctx, const fl_record_t *in, const void **key, size_t *key_len,
              void *opaque);
#define NX_AT(type, field) ((void *)(uintptr_t)offsetof(type, field))
/* The events of one kind keyed by the id at offset (NX_AT). */
fl_keyed_stream_t *nx_keyed_by(fl_stream_t *events, nx_kind_t kind, void *offset);

/* Descriptors used by a process function, kept by the environment through the function
 * table's opaque pointer and freed by its destroy (free). NULL if out of memory. */
typedef struct nx_descs {
  const fl_state_desc_t *a, *b;
} nx_descs_t;
nx_descs_t *nx_descs_new(const fl_state_desc_t *a, const fl_state_desc_t *b);

/* The function tables of the queries' process functions: their opaque pointer is an
 * nx_descs_t, freed by destroy. */
#define NX_PROCESS_FN(process_fn, on_timer_fn)                                            \
  {                                                                                       \
    .version = FL_PROCESS_FN_VERSION, .process = (process_fn), .on_timer = (on_timer_fn), \
    .destroy = free                                                                       \
  }
#define NX_CO_PROCESS_FN(process1_fn, process2_fn, on_timer_fn)                                \
  {                                                                                            \
    .version = FL_CO_PROCESS_FN_VERSION, .process1 = (process1_fn), .process2 = (process2_fn), \
    .on_timer = (on_timer_fn), .destroy = free                                                 \
  }

/* The JSON of a result that is n int64 fields (at most 8), named names in order;
 * FL_EPARSE for a record of another size. */
int nx_i64_fields_json(const fl_record_t *rec, char *out, size_t cap, const char *const *names,
                       size_t n);

/* Reads the value state d of the current key into out (n bytes): 1, 0 when absent, or a
 * negative error; a stored value of another size fails the job naming query. */
int nx_value_read(fl_context_t *ctx, const fl_state_desc_t *d, void *out, size_t n,
                  const char *query);

/* The two-input queries (nexmark_joins.c). */
extern const nx_query_t nx_q3_query, nx_q4_query, nx_q8_query;

/* Every query, in suite order; nx_query_count() entries. */
size_t nx_query_count(void);
const nx_query_t *nx_query_at(size_t i);
/* By name ("q5"); NULL if unknown. */
const nx_query_t *nx_query_find(const char *name);

/* The largest JSON text a to_json function writes for a result of these queries. */
#define NX_MAX_JSON_BYTES 4096

/* 64-bit hash of bytes, for order-independent checksums of results. */
uint64_t nx_hash_bytes(const void *p, size_t len, uint64_t seed);

#endif
