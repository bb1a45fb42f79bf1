/*
 * The Nexmark event generator and the binary form of its events: a library connector
 * ('connector' = 'nexmark' in SQL) and the source of the Nexmark benchmark
 * (bench/flink-bench.c) and its DataStream queries (bench/lib/nexmark_queries.c). The
 * authority for the generator parameters is the Nexmark suite (nexmark/nexmark,
 * GeneratorConfig defaults), summarised below.
 *
 * Threading: an nx_gen_t is read-only after nx_gen_new() and may be shared by any number
 * of threads.
 */
#ifndef FL_SQL_NEXMARK_GEN_H
#define FL_SQL_NEXMARK_GEN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "flink.h"

/* ---------------------------------------------------------------------------------- */
/* Events                                                                             */
/*
 * An event is one record: empty key, timestamp = the event's dateTime (ms), and a value
 * that is a fixed C struct (native endian, no padding) followed by its strings, in the
 * order the struct lists their lengths, without terminators. The first byte is the
 * kind. Values handed to user functions are not aligned: nx_decode() copies the fixed
 * part out and points the strings into the value. Ids are native int64 inside the value,
 * so a key selector can return the 8 bytes in place (offsetof(nx_bid_wire_t, auction)
 * etc.); every query keys ids that way, so equal ids are equal keys on both inputs of a
 * join.
 */

typedef enum nx_kind {
  NX_PERSON = 0,
  NX_AUCTION = 1,
  NX_BID = 2
} nx_kind_t;

typedef struct nx_person_wire {
  uint8_t kind; /* NX_PERSON */
  uint8_t reserved;
  uint16_t name_len, email_len, credit_card_len, city_len, state_len, extra_len;
  uint16_t reserved2;
  int64_t id;
  int64_t date_time;
  /* name, email_address, credit_card, city, state, extra */
} nx_person_wire_t;

typedef struct nx_auction_wire {
  uint8_t kind; /* NX_AUCTION */
  uint8_t reserved;
  uint16_t item_name_len, description_len, extra_len;
  int64_t id;
  int64_t initial_bid;
  int64_t reserve;
  int64_t date_time;
  int64_t expires;
  int64_t seller; /* a person id */
  int64_t category;
  /* item_name, description, extra */
} nx_auction_wire_t;

typedef struct nx_bid_wire {
  uint8_t kind; /* NX_BID */
  uint8_t reserved;
  uint16_t channel_len, url_len, extra_len;
  int64_t auction; /* an auction id */
  int64_t bidder;  /* a person id */
  int64_t price;
  int64_t date_time;
  /* channel, url, extra */
} nx_bid_wire_t;

/* Decoded views: the numbers copied out, the strings pointing into the value (valid as
 * long as the value is). */
typedef struct nx_str {
  const char *p;
  size_t len;
} nx_str_t;

typedef struct nx_person {
  int64_t id, date_time;
  nx_str_t name, email_address, credit_card, city, state, extra;
} nx_person_t;

typedef struct nx_auction {
  int64_t id, initial_bid, reserve, date_time, expires, seller, category;
  nx_str_t item_name, description, extra;
} nx_auction_t;

typedef struct nx_bid {
  int64_t auction, bidder, price, date_time;
  nx_str_t channel, url, extra;
} nx_bid_t;

typedef struct nx_event {
  nx_kind_t kind;
  union {
    nx_person_t person;
    nx_auction_t auction;
    nx_bid_t bid;
  } u;
} nx_event_t;

/* The largest encoded event the generator makes (its strings are bounded). Encoders
 * accept longer strings up to 65535 bytes each. */
#define NX_MAX_EVENT_BYTES 1024

/* The kind of an encoded event, or -1 when the value is too short or of no known kind.
 * O(1). */
int nx_kind_of(const void *value, size_t len);

/* The length of the encoded event at the start of value (events may be concatenated),
 * or 0 when it is malformed or longer than len. O(1). */
size_t nx_encoded_size(const void *value, size_t len);

/* Decodes an event; FL_EPARSE (negative) when the value is too short for its fixed part
 * or its string lengths, longer than them, or of an unknown kind. */
int nx_decode(const void *value, size_t len, nx_event_t *out);
/* The same for one kind: FL_EPARSE also when the value is of another kind. */
int nx_decode_bid(const void *value, size_t len, nx_bid_t *out);
int nx_decode_person(const void *value, size_t len, nx_person_t *out);
int nx_decode_auction(const void *value, size_t len, nx_auction_t *out);

/* Encodes into out (cap bytes). Returns the length, or 0 when it does not fit or a
 * string is longer than 65535 bytes. */
size_t nx_encode(const nx_event_t *e, void *out, size_t cap);
size_t nx_encode_bid(const nx_bid_t *b, void *out, size_t cap);

/* A small JSON object writer into a fixed buffer, snprintf style: len counts what
 * would have been written, the text is cut (and terminated) at cap. */
typedef struct nx_json {
  char *p;
  size_t cap, len;
  int fields;
} nx_json_t;
void nx_json_begin(nx_json_t *w, char *out, size_t cap);
void nx_json_i64(nx_json_t *w, const char *name, int64_t v);
/* A field whose value is the given JSON number text. */
void nx_json_number(nx_json_t *w, const char *name, const char *text);
void nx_json_str(nx_json_t *w, const char *name, const char *s, size_t len);
void nx_json_raw(nx_json_t *w, const char *s, size_t n);
/* The bid's fields (auction, bidder, price, channel, url, dateTime, extra). */
void nx_json_bid_fields(nx_json_t *w, const nx_bid_t *b);
/* Closes the object and returns the length it needs (without the terminator). */
int nx_json_end(nx_json_t *w);

/* One JSON object (no newline) for an event, e.g.
 *   {"type":"bid","auction":1000,"bidder":1001,"price":5321,"channel":"Apple",
 *    "url":"https://...","dateTime":1704067200000,"extra":"..."}
 * Field names are Flink's. Returns the length written (snprintf style: a result >= cap
 * means it did not fit). */
int nx_event_json(const nx_event_t *e, char *out, size_t cap);

/* ---------------------------------------------------------------------------------- */
/* Generator                                                                          */
/*
 * Every event is a function of (seed, event number n) only: its kind is n % 50 (0
 * person, 1..3 auction, 4..49 bid: proportions 1:3:46), its time base_time +
 * n * 1000 / rate ms (the V1 inter-event delay 1e6/rate us), and its fields come from a
 * random generator seeded with (seed, n). So any subset of event numbers can be made by
 * any thread in any order, and P parallel instances that take n = s, s+P, s+2P, ...
 * together make the same events for every P.
 *
 * Fields, as in Flink's Nexmark generator (nexmark/nexmark, GeneratorConfig defaults):
 *  - person n: id 1000 + n/50; name from 11 first and 9 last names; email
 *    "<3-6 letters>@<3-4 letters>.com"; credit card "dddd dddd dddd dddd"; state one of
 *    AZ CA ID OR WA WY; city one of 10; extra padded to an average of 200 bytes.
 *  - auction n: ids from 1000 in order (3 per 50 events); seller: 3 in 4 the hot seller
 *    (the latest person id that is a multiple of 100, plus 1000), else uniform over the
 *    last 1000 persons plus 10 ids ahead; category 10..14; initial bid a price, reserve
 *    initial bid + another price; expires = dateTime + 1 + uniform below twice the time
 *    the generator needs for 100 more auctions; item name < 20 and description < 100
 *    characters; extra padded to an average of 500 bytes.
 *  - bid n: auction: half the bids the hot auction (the latest auction id that is a
 *    multiple of 100), the other half uniform over the last 100 auctions plus 10 ids
 *    ahead (Flink's in-flight auctions and id lead); bidder: 3 in 4 the hot bidder (the
 *    latest multiple-of-100 person id + 1, so hot bidder and hot seller differ), else
 *    like a non-hot seller; price round(10^(6u) * 100) for u uniform in [0, 1), i.e.
 *    log-uniform in [100, 10^8]; channel: half the bids one of Google, Facebook, Baidu,
 *    Apple (each with a fixed URL), the other half "channel-<k>" for k uniform in
 *    [0, 10000) with its own URL; extra padded to an average of 100 bytes (counting 32
 *    bytes for the four numbers, as Flink does).
 * Strings are slices of random texts made once per generator from the seed, so making
 * an event copies bytes and draws a handful of random numbers: no allocation.
 * Departures from Flink's generator: the random numbers (and so the exact events) are
 * this generator's own, and a numbered channel's URL is one of 128 base URLs (chosen by
 * the channel number) followed by "&channel_id=<number with its bits reversed>".
 */

#define NX_FIRST_PERSON_ID 1000
#define NX_FIRST_AUCTION_ID 1000
#define NX_FIRST_CATEGORY 10
#define NX_CATEGORIES 5
#define NX_DEFAULT_RATE UINT64_C(10000000)
/* 2024-01-01T00:00:00Z */
#define NX_DEFAULT_BASE_TIME INT64_C(1704067200000)
/* Bounded out-of-orderness of the event-time watermarks. */
#define NX_OUT_OF_ORDERNESS_MS 4000

typedef struct nx_config {
  uint64_t seed;
  uint64_t events;   /* events 0 .. events-1 */
  uint64_t rate;     /* events per second of event time, >= 1 */
  int64_t base_time; /* ms, the time of event 0 */
} nx_config_t;

typedef struct nx_gen nx_gen_t;

/* Defaults: seed 42, 10,000,000 events, NX_DEFAULT_RATE, NX_DEFAULT_BASE_TIME. */
void nx_config_default(nx_config_t *c);

/* Makes a generator (its random texts and base URLs, about 75 KiB). FL_EINVAL for a
 * zero rate, more than 2^50 events, or when the last event's time would overflow;
 * FL_ENOMEM. */
int nx_gen_new(nx_gen_t **out, const nx_config_t *c);
void nx_gen_destroy(nx_gen_t *g); /* NULL-safe */
const nx_config_t *nx_gen_config(const nx_gen_t *g);

nx_kind_t nx_event_kind(uint64_t n);
int64_t nx_event_time(const nx_gen_t *g, uint64_t n);
/* Writes event n, encoded, into buf (at least NX_MAX_EVENT_BYTES) and returns its
 * length; *ts (optional) gets its time. Thread-safe, O(size of the event). */
size_t nx_gen_event(const nx_gen_t *g, uint64_t n, void *buf, int64_t *ts);

/* The generator as a parallel source followed by bounded out-of-orderness watermarks
 * (NX_OUT_OF_ORDERNESS_MS, the record's own timestamp): subtask s of P emits events
 * s, s+P, ... below config.events, in order, up to fl_ctx_source_budget() per call.
 * g must outlive the job. Returns the timestamped stream (NULL only if env is NULL). */
fl_stream_t *nx_source(fl_env_t *env, const nx_gen_t *g);

#endif
