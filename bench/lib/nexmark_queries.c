/*
 * Nexmark queries q0, q1, q2, q5, q7, q11, q12, q17, q18 and q19 with the public API of
 * flink.h, the JSON form of their results, and the suite's table (which also lists q3,
 * q4 and q8 of nexmark_joins.c). What each query emits is documented in nexmark.h; the
 * comments here say how it is computed.
 *
 * Conventions of this file: bids are selected with one filter (the first byte of an
 * event is its kind); ids are keyed by the 8 bytes inside the value; a key made of
 * computed fields (q7's window, q17's (auction, day)) lives in a thread-local buffer,
 * which flink.h allows ("memory that stays valid until the selector is called again on
 * the same thread"). User functions fail the job with fl_ctx_fail() naming the query and
 * what was wrong with the record.
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/nexmark.h"

#define MS_PER_DAY INT64_C(86400000)
#define Q5_SIZE_MS 10000
#define Q5_SLIDE_MS 2000
#define Q7_SIZE_MS 10000
#define Q7_BUCKETS 1024
#define Q11_GAP_MS 10000
#define Q12_SIZE_MS 10000
#define Q19_TOP 10

/* ---------------------------------------------------------------------------------- */
/* Shared pieces                                                                        */

/* Bids keyed by key (with its opaque pointer) into a keyed process named name, whose
 * descriptor a is a value state named state. */
static fl_stream_t *bids_with_value_state(fl_env_t *env, fl_stream_t *events, fl_key_fn key,
                                          void *key_opaque, const char *state, const char *name,
                                          const fl_process_fn_t *fn) {
  nx_descs_t *d = nx_descs_new(fl_state_value(env, state), NULL);
  if (!d) return NULL;
  fl_keyed_stream_t *k = fl_stream_key_by(nx_events_of(events, NX_BID), key, key_opaque);
  return fl_keyed_process(k, name, fn, d);
}

/* Decodes a bid or fails the job naming the query. */
static int need_bid(fl_context_t *ctx, const char *query, const fl_record_t *in, nx_bid_t *b) {
  if (nx_decode_bid(in->value, in->value_len, b) != 0)
    return fl_ctx_fail(ctx, "%s: malformed bid of %zu bytes", query, in->value_len);
  return 0;
}

/* The projection of q0, q1 and q7: auction, bidder, price, dateTime, extra. */
static size_t project_bid(nx_bid_t *b, void *out) {
  b->channel.len = 0;
  b->url.len = 0;
  return nx_encode_bid(b, out, NX_MAX_EVENT_BYTES);
}

/* A COUNT(*) aggregate: the accumulator is an int64. */
static void count_init(void *acc, void *opaque) { memset(acc, 0, sizeof(int64_t)); }

static int count_add(fl_context_t *ctx, void *acc, const fl_record_t *in, void *opaque) {
  int64_t n = nx_i64(acc) + 1;
  memcpy(acc, &n, sizeof n);
  return 0;
}

static void count_merge(void *acc, const void *other, void *opaque) {
  int64_t n = nx_i64(acc) + nx_i64(other);
  memcpy(acc, &n, sizeof n);
}

/* The function table of a COUNT(*) with this result function. */
#define COUNT_FN(result_fn)                                                              \
  {                                                                                      \
    .version = FL_AGGREGATE_FN_VERSION, .acc_size = sizeof(int64_t), .init = count_init, \
    .add = count_add, .merge = count_merge, .result = (result_fn)                        \
  }

/* Result JSON helpers */
static int need_size(const fl_record_t *rec, size_t n, void *out) {
  if (rec->value_len != n) return FL_EPARSE;
  memcpy(out, rec->value, n);
  return 0;
}

/* ---------------------------------------------------------------------------------- */
/* q0, q1: pass-through and currency conversion                                         */

static int q0_project(fl_context_t *ctx, const fl_record_t *in, void *opaque) {
  nx_bid_t b;
  uint8_t buf[NX_MAX_EVENT_BYTES];
  int rc = need_bid(ctx, "q0", in, &b);
  if (rc < 0) return rc;
  size_t len = project_bid(&b, buf);
  return fl_emit(ctx, NULL, 0, buf, len, in->timestamp);
}

static fl_stream_t *q0_build(fl_env_t *env, fl_stream_t *events) {
  return fl_stream_map(nx_events_of(events, NX_BID), "q0-project", q0_project, NULL);
}

/* The JSON of a projected bid (q0, q1, q7): q1's price in euros, and q7 adds the end of
 * the bid's window (its timestamp + 1). */
enum {
  PLAIN = 0,
  EURO = 1,
  WINDOW_END = 2
};

static int json_projected_bid(const fl_record_t *rec, char *out, size_t cap, int how) {
  nx_bid_t b;
  if (nx_decode_bid(rec->value, rec->value_len, &b) != 0) return FL_EPARSE;
  nx_json_t w;
  nx_json_begin(&w, out, cap);
  nx_json_i64(&w, "auction", b.auction);
  nx_json_i64(&w, "bidder", b.bidder);
  if (how & EURO) {
    char num[48];
    long long v = (long long)b.price;
    snprintf(num, sizeof num, "%s%lld.%03lld", v < 0 ? "-" : "", llabs(v / 1000), llabs(v % 1000));
    nx_json_number(&w, "price", num);
  } else {
    nx_json_i64(&w, "price", b.price);
  }
  nx_json_i64(&w, "dateTime", b.date_time);
  nx_json_str(&w, "extra", b.extra.p, b.extra.len);
  if (how & WINDOW_END) nx_json_i64(&w, "window_end", rec->timestamp + 1);
  return nx_json_end(&w);
}

static int q0_json(const fl_record_t *rec, char *out, size_t cap) {
  return json_projected_bid(rec, out, cap, PLAIN);
}

static int q1_convert(fl_context_t *ctx, const fl_record_t *in, void *opaque) {
  nx_bid_t b;
  uint8_t buf[NX_MAX_EVENT_BYTES];
  int rc = need_bid(ctx, "q1", in, &b);
  if (rc < 0) return rc;
  b.price *= 908; /* thousandths of a euro: 0.908 * price, exact */
  size_t len = project_bid(&b, buf);
  return fl_emit(ctx, NULL, 0, buf, len, in->timestamp);
}

static fl_stream_t *q1_build(fl_env_t *env, fl_stream_t *events) {
  return fl_stream_map(nx_events_of(events, NX_BID), "q1-convert", q1_convert, NULL);
}

static int q1_json(const fl_record_t *rec, char *out, size_t cap) {
  return json_projected_bid(rec, out, cap, EURO);
}

/* ---------------------------------------------------------------------------------- */
/* q2: selection                                                                        */

static int q2_select(fl_context_t *ctx, const fl_record_t *in, void *opaque) {
  return nx_kind_of(in->value, in->value_len) == NX_BID &&
         nx_i64((const uint8_t *)in->value + offsetof(nx_bid_wire_t, auction)) % 123 == 0;
}

static int q2_project(fl_context_t *ctx, const fl_record_t *in, void *opaque) {
  const uint8_t *v = in->value;
  nx_q2_t r = {nx_i64(v + offsetof(nx_bid_wire_t, auction)),
               nx_i64(v + offsetof(nx_bid_wire_t, price))};
  return fl_emit(ctx, NULL, 0, &r, sizeof r, in->timestamp);
}

static fl_stream_t *q2_build(fl_env_t *env, fl_stream_t *events) {
  fl_stream_t *s = fl_stream_filter(events, "q2-select", q2_select, NULL);
  return fl_stream_map(s, "q2-project", q2_project, NULL);
}

static int q2_json(const fl_record_t *rec, char *out, size_t cap) {
  static const char *const fields[] = {"auction", "price"};
  _Static_assert(sizeof(nx_q2_t) == sizeof fields / sizeof *fields * 8, "int64 fields");
  return nx_i64_fields_json(rec, out, cap, fields, 2);
}

/* ---------------------------------------------------------------------------------- */
/* q5: hot items                                                                        */
/*
 * Counting every bid in the 5 sliding windows that contain it costs 5 window-state
 * updates and 5 timers per bid. As Flink's window aggregation does ("slicing"), bids are
 * instead counted per auction in tumbling 2 s panes (one update per bid), and each pane's
 * count goes to the 5 windows that contain the pane:
 *  1. bids keyed by auction -> tumbling 2 s windows, COUNT(*); the result of a pane is
 *     one record (auction, count) per window that contains the pane, keyed by the
 *     window's end, at the pane's end - 1;
 *  2. keyed by window end, a KeyedProcessFunction adds the counts per auction in a
 *     MapState and registers an event-time timer at end - 1, which scans the map once
 *     for the largest count and emits the auctions that have it, then clears the map.
 * The timer fires only after every count of its window arrived: the window operator
 * emits a pane's result before it forwards the watermark that fired it, and the
 * watermark of the next operator is the minimum over its inputs. The results are those
 * of a sliding-window COUNT(*) per auction followed by a maximum per window. Per bid: one
 * window-state update; per (auction, pane): 5 map updates.
 */

typedef struct q5_count {
  int64_t auction, count, window_end;
} q5_count_t;

static int q5_pane_result(fl_context_t *ctx, const fl_window_t *w, const void *acc, void *opaque) {
  size_t key_len;
  const void *key = fl_ctx_key(ctx, &key_len);
  if (key_len != sizeof(int64_t)) return fl_ctx_fail(ctx, "q5: key of %zu bytes", key_len);
  /* the windows [s, s + size) that contain the pane [start, start + slide) */
  for (int64_t s = w->start; s > w->start - Q5_SIZE_MS; s -= Q5_SLIDE_MS) {
    q5_count_t c = {nx_i64(key), nx_i64(acc), s + Q5_SIZE_MS};
    int rc = fl_emit(ctx, &c.window_end, sizeof c.window_end, &c, sizeof c, w->end - 1);
    if (rc < 0) return rc;
  }
  return 0;
}

/* Per subtask: the auctions with the largest count, found by one scan of a window. */
typedef struct q5_max {
  const fl_state_desc_t *counts; /* MapState: auction -> count */
  int64_t max;
  int64_t *hot;
  size_t n, cap;
  bool nomem;
} q5_max_t;

static int q5_max_open(fl_context_t *ctx, void *opaque, void **instance) {
  const nx_descs_t *d = opaque;
  q5_max_t *m = calloc(1, sizeof *m);
  if (!m) return fl_ctx_fail(ctx, "q5: out of memory");
  m->counts = d->a;
  *instance = m;
  return 0;
}

static void q5_max_close(void *instance) {
  q5_max_t *m = instance;
  free(m->hot);
  free(m);
}

static int q5_max_process(fl_context_t *ctx, const fl_record_t *in, void *instance) {
  q5_max_t *m = instance;
  q5_count_t c;
  if (in->value_len != sizeof c)
    return fl_ctx_fail(ctx, "q5: count record of %zu bytes", in->value_len);
  memcpy(&c, in->value, sizeof c);
  const void *v;
  size_t len;
  int rc = fl_map_get(ctx, m->counts, &c.auction, sizeof c.auction, &v, &len);
  if (rc < 0) return rc;
  if (rc == 1) c.count += nx_i64(v);
  if ((rc = fl_map_put(ctx, m->counts, &c.auction, sizeof c.auction, &c.count, sizeof c.count)) < 0)
    return rc;
  return fl_timer_register(ctx, FL_EVENT_TIME, c.window_end - 1);
}

static int q5_scan(const void *ukey, size_t ukey_len, const void *value, size_t len, void *arg) {
  q5_max_t *m = arg;
  int64_t count = nx_i64(value);
  if (count < m->max) return 0;
  if (count > m->max) {
    m->max = count;
    m->n = 0;
  }
  if (m->n == m->cap) {
    size_t cap = m->cap ? m->cap * 2 : 16;
    int64_t *p = realloc(m->hot, cap * sizeof *p);
    if (!p) {
      m->nomem = true;
      return 1;
    }
    m->hot = p;
    m->cap = cap;
  }
  m->hot[m->n++] = nx_i64(ukey);
  return 0;
}

static int q5_max_timer(fl_context_t *ctx, int64_t ts, fl_time_domain_t domain, void *instance) {
  q5_max_t *m = instance;
  m->max = 0;
  m->n = 0;
  m->nomem = false;
  int rc = fl_map_foreach(ctx, m->counts, q5_scan, m);
  if (m->nomem) return fl_ctx_fail(ctx, "q5: out of memory");
  if (rc < 0) return rc;
  for (size_t i = 0; i < m->n; i++) {
    nx_q5_t r = {m->hot[i], m->max, ts + 1 - Q5_SIZE_MS, ts + 1};
    if ((rc = fl_emit(ctx, NULL, 0, &r, sizeof r, ts)) < 0) return rc;
  }
  return fl_state_clear(ctx, m->counts);
}

static fl_stream_t *q5_build(fl_env_t *env, fl_stream_t *events) {
  static const fl_aggregate_fn_t count = COUNT_FN(q5_pane_result);
  static const fl_process_fn_t max = {
      .version = FL_PROCESS_FN_VERSION,
      .open = q5_max_open,
      .process = q5_max_process,
      .on_timer = q5_max_timer,
      .close = q5_max_close,
      .destroy = free,
  };
  _Static_assert(Q5_SIZE_MS % Q5_SLIDE_MS == 0, "panes of the slide tile the windows");
  nx_descs_t *d = nx_descs_new(fl_state_map(env, "q5-counts"), NULL);
  if (!d) return NULL;
  fl_keyed_stream_t *by_auction = nx_keyed_by(events, NX_BID, NX_AT(nx_bid_wire_t, auction));
  fl_windowed_stream_t *w = fl_window_tumbling(by_auction, FL_EVENT_TIME, Q5_SLIDE_MS, 0);
  fl_stream_t *counts = fl_window_aggregate(w, "q5-pane-count", &count, NULL);
  return fl_keyed_process(fl_stream_key_by(counts, NULL, NULL), "q5-max", &max, d);
}

static int q5_json(const fl_record_t *rec, char *out, size_t cap) {
  static const char *const fields[] = {"auction", "num", "window_start", "window_end"};
  _Static_assert(sizeof(nx_q5_t) == sizeof fields / sizeof *fields * 8, "int64 fields");
  return nx_i64_fields_json(rec, out, cap, fields, 4);
}

/* ---------------------------------------------------------------------------------- */
/* q7: highest bid                                                                      */
/*
 * The maximum of a window is global, so it is computed in two steps (as Flink's
 * local/global aggregation): bids, projected, are spread over Q7_BUCKETS keys (by
 * price), a tumbling window per bucket reduces them to the set of its bids with the
 * highest price, and a second tumbling window keyed by the window reduces those sets the
 * same way; its one result per window is split into bids. A set is a concatenation of
 * encoded bids of one price, so the reduce is: keep the set with the higher price, or
 * both when the prices are equal. Per bid: one reducing-state update of a small value.
 */

static int q7_bids(fl_context_t *ctx, const fl_record_t *in, void *opaque) {
  nx_bid_t b;
  uint8_t buf[NX_MAX_EVENT_BYTES];
  if (nx_kind_of(in->value, in->value_len) != NX_BID) return 0;
  int rc = need_bid(ctx, "q7", in, &b);
  if (rc < 0) return rc;
  int64_t bucket = b.price % Q7_BUCKETS;
  size_t len = project_bid(&b, buf);
  return fl_emit(ctx, &bucket, sizeof bucket, buf, len, in->timestamp);
}

static int q7_max_set(fl_context_t *ctx, const void *a, size_t a_len, const void *b, size_t b_len,
                      fl_buf_t *out, void *opaque) {
  if (a_len < sizeof(nx_bid_wire_t) || b_len < sizeof(nx_bid_wire_t))
    return fl_ctx_fail(ctx, "q7: bid set of %zu and %zu bytes", a_len, b_len);
  int64_t pa = nx_i64((const uint8_t *)a + offsetof(nx_bid_wire_t, price));
  int64_t pb = nx_i64((const uint8_t *)b + offsetof(nx_bid_wire_t, price));
  if (pa > pb) return fl_buf_set(out, a, a_len);
  if (pb > pa) return fl_buf_set(out, b, b_len);
  int rc = fl_buf_set(out, a, a_len);
  return rc ? rc : fl_buf_append(out, b, b_len);
}

static _Thread_local int64_t q7_window_key;

/* The second step's key: the window, from the first step's result timestamp. */
static int q7_key_window(fl_context_t *ctx, const fl_record_t *in, const void **key,
                         size_t *key_len, void *opaque) {
  int64_t ts = in->timestamp;
  q7_window_key = ts / Q7_SIZE_MS - (ts % Q7_SIZE_MS < 0); /* floor */
  *key = &q7_window_key;
  *key_len = sizeof q7_window_key;
  return 0;
}

static int q7_split(fl_context_t *ctx, const fl_record_t *in, void *opaque) {
  const uint8_t *p = in->value;
  size_t left = in->value_len;
  while (left > 0) {
    size_t n = nx_encoded_size(p, left);
    if (n == 0) return fl_ctx_fail(ctx, "q7: malformed bid set (%zu bytes left)", left);
    int rc = fl_emit(ctx, NULL, 0, p, n, in->timestamp);
    if (rc < 0) return rc;
    p += n;
    left -= n;
  }
  return 0;
}

static fl_stream_t *q7_build(fl_env_t *env, fl_stream_t *events) {
  fl_stream_t *bids = fl_stream_flat_map(events, "q7-bids", q7_bids, NULL);
  fl_windowed_stream_t *local =
      fl_window_tumbling(fl_stream_key_by(bids, NULL, NULL), FL_EVENT_TIME, Q7_SIZE_MS, 0);
  fl_stream_t *sets = fl_window_reduce(local, "q7-local-max", q7_max_set, NULL);
  fl_windowed_stream_t *global =
      fl_window_tumbling(fl_stream_key_by(sets, q7_key_window, NULL), FL_EVENT_TIME, Q7_SIZE_MS, 0);
  fl_stream_t *max = fl_window_reduce(global, "q7-max", q7_max_set, NULL);
  return fl_stream_flat_map(max, "q7-split", q7_split, NULL);
}

static int q7_json(const fl_record_t *rec, char *out, size_t cap) {
  return json_projected_bid(rec, out, cap, WINDOW_END);
}

/* ---------------------------------------------------------------------------------- */
/* q11, q12: bids per bidder in session / processing-time windows                      */

static int bidder_count_result(fl_context_t *ctx, const fl_window_t *w, const void *acc,
                               void *opaque) {
  size_t key_len;
  const void *key = fl_ctx_key(ctx, &key_len);
  if (key_len != sizeof(int64_t))
    return fl_ctx_fail(ctx, "%s: key of %zu bytes", (const char *)opaque, key_len);
  nx_window_count_t r = {nx_i64(key), nx_i64(acc), w->start, w->end};
  return fl_emit(ctx, NULL, 0, &r, sizeof r, w->end - 1);
}

static const fl_aggregate_fn_t bidder_count = COUNT_FN(bidder_count_result);

static fl_stream_t *q11_build(fl_env_t *env, fl_stream_t *events) {
  fl_keyed_stream_t *k = nx_keyed_by(events, NX_BID, NX_AT(nx_bid_wire_t, bidder));
  fl_windowed_stream_t *w = fl_window_session(k, FL_EVENT_TIME, Q11_GAP_MS);
  return fl_window_aggregate(w, "q11-sessions", &bidder_count, "q11");
}

static fl_stream_t *q12_build(fl_env_t *env, fl_stream_t *events) {
  fl_keyed_stream_t *k = nx_keyed_by(events, NX_BID, NX_AT(nx_bid_wire_t, bidder));
  fl_windowed_stream_t *w = fl_window_tumbling(k, FL_PROCESSING_TIME, Q12_SIZE_MS, 0);
  return fl_window_aggregate(w, "q12-proctime", &bidder_count, "q12");
}

static int window_count_json(const fl_record_t *rec, char *out, size_t cap) {
  static const char *const fields[] = {"bidder", "bid_count", "starttime", "endtime"};
  _Static_assert(sizeof(nx_window_count_t) == sizeof fields / sizeof *fields * 8, "int64 fields");
  return nx_i64_fields_json(rec, out, cap, fields, 4);
}

/* ---------------------------------------------------------------------------------- */
/* q17: auction statistics per day                                                      */
/*
 * Keyed by (auction, day); a ValueState holds the row, updated and emitted for every
 * bid (the changelog of Flink's unbounded GROUP BY). An event-time timer at the day's
 * last millisecond drops the row: no bid of that day can arrive after it.
 */

int64_t nx_day_of(int64_t ms) {
  int64_t d = ms / MS_PER_DAY;
  return ms % MS_PER_DAY < 0 ? d - 1 : d;
}

int nx_day_string(int64_t day, char *out, size_t cap) {
  /* days since 1970-01-01 to a civil date (proleptic Gregorian, eras of 400 years) */
  int64_t z = day + 719468;
  int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  int64_t doe = z - era * 146097;
  int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  int64_t y = yoe + era * 400;
  int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  int64_t mp = (5 * doy + 2) / 153;
  int64_t d = doy - (153 * mp + 2) / 5 + 1;
  int64_t m = mp < 10 ? mp + 3 : mp - 9;
  if (m <= 2) y++;
  return snprintf(out, cap, "%04lld-%02lld-%02lld", (long long)y, (long long)m, (long long)d);
}

static _Thread_local int64_t q17_key[2];

static int q17_key_auction_day(fl_context_t *ctx, const fl_record_t *in, const void **key,
                               size_t *key_len, void *opaque) {
  const uint8_t *v = in->value;
  q17_key[0] = nx_i64(v + offsetof(nx_bid_wire_t, auction));
  q17_key[1] = nx_day_of(nx_i64(v + offsetof(nx_bid_wire_t, date_time)));
  *key = q17_key;
  *key_len = sizeof q17_key;
  return 0;
}

static int q17_process(fl_context_t *ctx, const fl_record_t *in, void *instance) {
  const nx_descs_t *d = instance; /* a: the row (nx_q17_t) */
  const uint8_t *v = in->value;
  int64_t price = nx_i64(v + offsetof(nx_bid_wire_t, price));
  nx_q17_t r;
  int found = nx_value_read(ctx, d->a, &r, sizeof r, "q17");
  if (found < 0) return found;
  if (!found) {
    memset(&r, 0, sizeof r);
    r.auction = nx_i64(v + offsetof(nx_bid_wire_t, auction));
    r.day = nx_day_of(nx_i64(v + offsetof(nx_bid_wire_t, date_time)));
    r.min_price = INT64_MAX;
    r.max_price = INT64_MIN;
    int rc = fl_timer_register(ctx, FL_EVENT_TIME, (r.day + 1) * MS_PER_DAY - 1);
    if (rc < 0) return rc;
  }
  r.total_bids++;
  if (price < 10000)
    r.rank1_bids++;
  else if (price < 1000000)
    r.rank2_bids++;
  else
    r.rank3_bids++;
  if (price < r.min_price) r.min_price = price;
  if (price > r.max_price) r.max_price = price;
  r.sum_price += price;
  r.avg_price = r.sum_price / r.total_bids;
  int rc = fl_value_set(ctx, d->a, &r, sizeof r);
  return rc < 0 ? rc : fl_emit(ctx, NULL, 0, &r, sizeof r, in->timestamp);
}

static int q17_day_over(fl_context_t *ctx, int64_t ts, fl_time_domain_t domain, void *instance) {
  const nx_descs_t *d = instance;
  return fl_state_clear(ctx, d->a);
}

static fl_stream_t *q17_build(fl_env_t *env, fl_stream_t *events) {
  static const fl_process_fn_t fn = NX_PROCESS_FN(q17_process, q17_day_over);
  return bids_with_value_state(env, events, q17_key_auction_day, NULL, "q17-row", "q17-stats", &fn);
}

static int q17_json(const fl_record_t *rec, char *out, size_t cap) {
  nx_q17_t r;
  char day[64];
  if (need_size(rec, sizeof r, &r)) return FL_EPARSE;
  nx_day_string(r.day, day, sizeof day);
  nx_json_t w;
  nx_json_begin(&w, out, cap);
  nx_json_i64(&w, "auction", r.auction);
  nx_json_str(&w, "day", day, strlen(day));
  nx_json_i64(&w, "total_bids", r.total_bids);
  nx_json_i64(&w, "rank1_bids", r.rank1_bids);
  nx_json_i64(&w, "rank2_bids", r.rank2_bids);
  nx_json_i64(&w, "rank3_bids", r.rank3_bids);
  nx_json_i64(&w, "min_price", r.min_price);
  nx_json_i64(&w, "max_price", r.max_price);
  nx_json_i64(&w, "avg_price", r.avg_price);
  nx_json_i64(&w, "sum_price", r.sum_price);
  return nx_json_end(&w);
}

/* ---------------------------------------------------------------------------------- */
/* q18: last bid per (bidder, auction)                                                  */

/* (auction, bidder) are adjacent in the bid's fixed part: one 16-byte key in place. */
_Static_assert(offsetof(nx_bid_wire_t, bidder) == offsetof(nx_bid_wire_t, auction) + 8,
               "auction and bidder adjacent");

static int q18_key(fl_context_t *ctx, const fl_record_t *in, const void **key, size_t *key_len,
                   void *opaque) {
  *key = (const uint8_t *)in->value + offsetof(nx_bid_wire_t, auction);
  *key_len = 2 * sizeof(int64_t);
  return 0;
}

static int q18_process(fl_context_t *ctx, const fl_record_t *in, void *instance) {
  const nx_descs_t *d = instance; /* a: dateTime of the last bid emitted */
  int64_t t = nx_i64((const uint8_t *)in->value + offsetof(nx_bid_wire_t, date_time)), last;
  int found = nx_value_read(ctx, d->a, &last, sizeof last, "q18");
  if (found < 0) return found;
  if (found && t < last) return 0;
  int rc = fl_value_set(ctx, d->a, &t, sizeof t);
  return rc < 0 ? rc : fl_emit(ctx, NULL, 0, in->value, in->value_len, in->timestamp);
}

static fl_stream_t *q18_build(fl_env_t *env, fl_stream_t *events) {
  static const fl_process_fn_t fn = NX_PROCESS_FN(q18_process, NULL);
  return bids_with_value_state(env, events, q18_key, NULL, "q18-last", "q18-dedup", &fn);
}

static int full_bid_json(const fl_record_t *rec, char *out, size_t cap) {
  nx_bid_t b;
  if (nx_decode_bid(rec->value, rec->value_len, &b) != 0) return FL_EPARSE;
  nx_json_t w;
  nx_json_begin(&w, out, cap);
  nx_json_bid_fields(&w, &b);
  return nx_json_end(&w);
}

/* ---------------------------------------------------------------------------------- */
/* q19: top 10 bids per auction                                                         */
/*
 * A ValueState per auction holds the prices of its current top 10, highest first (88
 * bytes): a bid that does not beat the 10th costs one state read; one that does is
 * inserted after the prices >= its own and emitted with its rank.
 */

typedef struct q19_top {
  int64_t n;
  int64_t price[Q19_TOP];
} q19_top_t;

static int q19_process(fl_context_t *ctx, const fl_record_t *in, void *instance) {
  const nx_descs_t *d = instance; /* a: q19_top_t */
  int64_t price = nx_i64((const uint8_t *)in->value + offsetof(nx_bid_wire_t, price));
  q19_top_t top = {0};
  int found = nx_value_read(ctx, d->a, &top, sizeof top, "q19");
  if (found < 0) return found;
  int64_t rank = 0; /* 0-based */
  while (rank < top.n && top.price[rank] >= price) rank++;
  if (rank >= Q19_TOP) return 0;
  int64_t last = top.n < Q19_TOP ? top.n : Q19_TOP - 1;
  memmove(&top.price[rank + 1], &top.price[rank], (size_t)(last - rank) * sizeof(int64_t));
  top.price[rank] = price;
  if (top.n < Q19_TOP) top.n++;
  int rc = fl_value_set(ctx, d->a, &top, sizeof top);
  if (rc < 0) return rc;
  uint8_t buf[sizeof(nx_q19_wire_t) + NX_MAX_EVENT_BYTES];
  if (in->value_len > NX_MAX_EVENT_BYTES)
    return fl_ctx_fail(ctx, "q19: bid of %zu bytes", in->value_len);
  nx_q19_wire_t h = {rank + 1};
  memcpy(buf, &h, sizeof h);
  memcpy(buf + sizeof h, in->value, in->value_len);
  return fl_emit(ctx, NULL, 0, buf, sizeof h + in->value_len, in->timestamp);
}

static fl_stream_t *q19_build(fl_env_t *env, fl_stream_t *events) {
  static const fl_process_fn_t fn = NX_PROCESS_FN(q19_process, NULL);
  return bids_with_value_state(env, events, nx_key_at, NX_AT(nx_bid_wire_t, auction), "q19-top",
                               "q19-top10", &fn);
}

static int q19_json(const fl_record_t *rec, char *out, size_t cap) {
  nx_q19_wire_t h;
  nx_bid_t b;
  if (rec->value_len < sizeof h) return FL_EPARSE;
  memcpy(&h, rec->value, sizeof h);
  if (nx_decode_bid((const uint8_t *)rec->value + sizeof h, rec->value_len - sizeof h, &b))
    return FL_EPARSE;
  nx_json_t w;
  nx_json_begin(&w, out, cap);
  nx_json_bid_fields(&w, &b);
  nx_json_i64(&w, "rank_number", h.rank_number);
  return nx_json_end(&w);
}

/* ---------------------------------------------------------------------------------- */
/* The suite                                                                            */

static const nx_query_t q0 = {"q0", "pass-through", q0_build, q0_json};
static const nx_query_t q1 = {"q1", "currency conversion", q1_build, q1_json};
static const nx_query_t q2 = {"q2", "selection", q2_build, q2_json};
static const nx_query_t q5 = {"q5", "hot items", q5_build, q5_json};
static const nx_query_t q7 = {"q7", "highest bid", q7_build, q7_json};
static const nx_query_t q11 = {"q11", "user sessions", q11_build, window_count_json};
static const nx_query_t q12 = {"q12", "processing-time windows", q12_build, window_count_json};
static const nx_query_t q17 = {"q17", "auction statistics", q17_build, q17_json};
static const nx_query_t q18 = {"q18", "last bid", q18_build, full_bid_json};
static const nx_query_t q19 = {"q19", "top 10 bids per auction", q19_build, q19_json};

static const nx_query_t *const queries[] = {
    &q0, &q1, &q2, &nx_q3_query, &nx_q4_query, &q5, &q7, &nx_q8_query, &q11, &q12, &q17, &q18, &q19,
};

size_t nx_query_count(void) { return sizeof queries / sizeof queries[0]; }

const nx_query_t *nx_query_at(size_t i) { return i < nx_query_count() ? queries[i] : NULL; }

const nx_query_t *nx_query_find(const char *name) {
  for (size_t i = 0; name && i < nx_query_count(); i++)
    if (strcmp(queries[i]->name, name) == 0) return queries[i];
  return NULL;
}

uint64_t nx_hash_bytes(const void *p, size_t len, uint64_t seed) {
  /* 8 bytes at a time through a multiply-xorshift; enough for checksums of results. */
  const uint8_t *s = p;
  uint64_t h = seed ^ (len * 0x9E3779B97F4A7C15ull);
  while (len >= 8) {
    uint64_t v;
    memcpy(&v, s, 8);
    h = (h ^ (v * 0xBF58476D1CE4E5B9ull)) * 0x94D049BB133111EBull;
    h ^= h >> 29;
    s += 8;
    len -= 8;
  }
  uint64_t v = 0;
  if (len) memcpy(&v, s, len);
  h = (h ^ (v * 0xBF58476D1CE4E5B9ull)) * 0x94D049BB133111EBull;
  h ^= h >> 32;
  h *= 0xD6E8FEB86659FD93ull;
  return h ^ (h >> 32);
}
