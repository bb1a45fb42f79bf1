/*
 * Nexmark queries with two inputs: q3 and q4 with fl_keyed_connect_process (a
 * KeyedCoProcessFunction: a regular keyed join written with state and timers) and q8 with
 * fl_window_join. What each emits is documented in nexmark.h.
 */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "lib/nexmark.h"

#define Q8_SIZE_MS 10000

/* ---------------------------------------------------------------------------------- */
/* q3: local item suggestion                                                            */
/*
 * Persons keyed by id and auctions of category 10 keyed by seller, connected. Per seller
 * (a person id, unique per person event):
 *  - ValueState "seller": the person as [u8 1][nx_q3_wire_t lengths][name city state]
 *    when the state is OR, ID or CA, else [u8 0] (no auction of this seller matches);
 *  - ListState "waiting": ids and times of auctions that arrived before their seller.
 * A person emits a result per waiting auction and clears the list; an auction emits one
 * when its seller is known and matches, and waits otherwise. Results carry the later of
 * the two event times, so they do not depend on which input arrived first.
 */

typedef struct q3_waiting {
  int64_t auction, ts;
} q3_waiting_t;

/* The stored seller: this header, then (when it matches) an nx_q3_wire_t and the
 * strings of the result, ready to be emitted with the auction id filled in. */
typedef struct q3_seller {
  int64_t ts;
  int64_t matches;
} q3_seller_t;

/* Results are a few dozen bytes; persons with longer fields fail the job. */
#define Q3_MAX_RESULT 1024

static bool q3_state_matches(nx_str_t s) {
  return s.len == 2 &&
         (memcmp(s.p, "OR", 2) == 0 || memcmp(s.p, "ID", 2) == 0 || memcmp(s.p, "CA", 2) == 0);
}

/* Emits the result in a stored matching seller (len bytes) for auction w. */
static int q3_emit(fl_context_t *ctx, const void *seller, size_t len, const q3_waiting_t *w) {
  q3_seller_t s;
  nx_q3_wire_t h;
  uint8_t buf[Q3_MAX_RESULT];
  if (len < sizeof s + sizeof h || len - sizeof s > sizeof buf)
    return fl_ctx_fail(ctx, "q3: stored seller of %zu bytes", len);
  memcpy(&s, seller, sizeof s);
  memcpy(buf, (const uint8_t *)seller + sizeof s, len - sizeof s);
  memcpy(&h, buf, sizeof h);
  h.auction = w->auction;
  memcpy(buf, &h, sizeof h);
  return fl_emit(ctx, NULL, 0, buf, len - sizeof s, s.ts > w->ts ? s.ts : w->ts);
}

static int q3_person(fl_context_t *ctx, const fl_record_t *in, void *instance) {
  const nx_descs_t *d = instance; /* a: seller, b: waiting */
  nx_person_t p;
  if (nx_decode_person(in->value, in->value_len, &p) != 0)
    return fl_ctx_fail(ctx, "q3: malformed person of %zu bytes", in->value_len);
  uint8_t buf[sizeof(q3_seller_t) + Q3_MAX_RESULT];
  q3_seller_t s = {p.date_time, q3_state_matches(p.state)};
  size_t len = sizeof s;
  if (s.matches) {
    nx_q3_wire_t h = {0, (uint16_t)p.name.len, (uint16_t)p.city.len, (uint16_t)p.state.len, 0};
    if (sizeof h + p.name.len + p.city.len + p.state.len > Q3_MAX_RESULT)
      return fl_ctx_fail(ctx, "q3: person %lld has fields longer than %d bytes", (long long)p.id,
                         Q3_MAX_RESULT);
    memcpy(buf + len, &h, sizeof h);
    len += sizeof h;
    memcpy(buf + len, p.name.p, p.name.len);
    len += p.name.len;
    memcpy(buf + len, p.city.p, p.city.len);
    len += p.city.len;
    memcpy(buf + len, p.state.p, p.state.len);
    len += p.state.len;
  }
  memcpy(buf, &s, sizeof s);
  int rc = fl_value_set(ctx, d->a, buf, len);
  const fl_bytes_t *items;
  size_t n = 0;
  if (rc >= 0) rc = fl_list_get(ctx, d->b, &items, &n);
  for (size_t i = 0; rc >= 0 && s.matches && i < n; i++) {
    q3_waiting_t w;
    if (items[i].len != sizeof w) return fl_ctx_fail(ctx, "q3: corrupt waiting list");
    memcpy(&w, items[i].data, sizeof w);
    rc = q3_emit(ctx, buf, len, &w);
  }
  if (rc >= 0 && n > 0) rc = fl_state_clear(ctx, d->b);
  return rc < 0 ? rc : 0;
}

static int q3_auction(fl_context_t *ctx, const fl_record_t *in, void *instance) {
  const nx_descs_t *d = instance;
  const uint8_t *v = in->value;
  if (nx_i64(v + offsetof(nx_auction_wire_t, category)) != 10) return 0;
  q3_waiting_t w = {nx_i64(v + offsetof(nx_auction_wire_t, id)),
                    nx_i64(v + offsetof(nx_auction_wire_t, date_time))};
  const void *seller;
  size_t len;
  int found = fl_value_get(ctx, d->a, &seller, &len);
  if (found < 0) return found;
  if (!found) return fl_list_add(ctx, d->b, &w, sizeof w);
  q3_seller_t s;
  if (len < sizeof s) return fl_ctx_fail(ctx, "q3: stored seller of %zu bytes", len);
  memcpy(&s, seller, sizeof s);
  return s.matches ? q3_emit(ctx, seller, len, &w) : 0;
}

static fl_stream_t *q3_build(fl_env_t *env, fl_stream_t *events) {
  static const fl_co_process_fn_t fn = NX_CO_PROCESS_FN(q3_person, q3_auction, NULL);
  nx_descs_t *d = nx_descs_new(fl_state_value(env, "q3-seller"), fl_state_list(env, "q3-waiting"));
  if (!d) return NULL;
  fl_keyed_stream_t *persons = nx_keyed_by(events, NX_PERSON, NX_AT(nx_person_wire_t, id));
  fl_keyed_stream_t *auctions = nx_keyed_by(events, NX_AUCTION, NX_AT(nx_auction_wire_t, seller));
  return fl_keyed_connect_process(persons, auctions, "q3-join", &fn, d);
}

static int q3_json(const fl_record_t *rec, char *out, size_t cap) {
  nx_q3_wire_t h;
  if (rec->value_len < sizeof h) return FL_EPARSE;
  memcpy(&h, rec->value, sizeof h);
  const char *s = (const char *)rec->value + sizeof h;
  if (rec->value_len != sizeof h + (size_t)h.name_len + h.city_len + h.state_len) return FL_EPARSE;
  nx_json_t w;
  nx_json_begin(&w, out, cap);
  nx_json_str(&w, "name", s, h.name_len);
  nx_json_str(&w, "city", s + h.name_len, h.city_len);
  nx_json_str(&w, "state", s + h.name_len + h.city_len, h.state_len);
  nx_json_i64(&w, "id", h.auction);
  return nx_json_end(&w);
}

const nx_query_t nx_q3_query = {"q3", "local item suggestion", q3_build, q3_json};

/* ---------------------------------------------------------------------------------- */
/* q4: average price per category                                                       */
/*
 * Stage 1, auctions keyed by id connected with bids keyed by auction:
 *  - ValueState "auction": category, start, expires and the best valid price so far;
 *  - ListState "early": (price, time) of bids that arrived before their auction.
 * An auction folds in its early bids and registers an event-time timer at expires. A bid
 * of a known auction raises the best price if its time is in [start, expires]; a bid of
 * an unknown one waits in "early" with a timer at its own time: once the watermark
 * passes it, every auction that could have started by then has arrived (no event comes
 * behind the watermark), so a bid still waiting cannot join and is dropped. At expires
 * the auction closes: its winning price, if any, goes on keyed by category, and its
 * state is cleared.
 * Stage 2, keyed by category: a ValueState (count, sum) per category, updated and
 * emitted for every winning price.
 */

typedef struct q4_auction {
  int64_t category, start, expires, best;
  int64_t has_best;
} q4_auction_t;

typedef struct q4_bid {
  int64_t price, ts;
} q4_bid_t;

typedef struct q4_win {
  int64_t category, price;
} q4_win_t;

static void q4_offer(q4_auction_t *a, const q4_bid_t *b) {
  if (b->ts < a->start || b->ts > a->expires) return;
  if (!a->has_best || b->price > a->best) {
    a->best = b->price;
    a->has_best = 1;
  }
}

static int q4_auction_in(fl_context_t *ctx, const fl_record_t *in, void *instance) {
  const nx_descs_t *d = instance; /* a: auction, b: early bids */
  const uint8_t *v = in->value;
  q4_auction_t a = {nx_i64(v + offsetof(nx_auction_wire_t, category)),
                    nx_i64(v + offsetof(nx_auction_wire_t, date_time)),
                    nx_i64(v + offsetof(nx_auction_wire_t, expires)), 0, 0};
  const fl_bytes_t *items;
  size_t n;
  int rc = fl_list_get(ctx, d->b, &items, &n);
  for (size_t i = 0; rc >= 0 && i < n; i++) {
    q4_bid_t b;
    if (items[i].len != sizeof b) return fl_ctx_fail(ctx, "q4: corrupt early bids");
    memcpy(&b, items[i].data, sizeof b);
    q4_offer(&a, &b);
  }
  if (rc >= 0 && n > 0) rc = fl_state_clear(ctx, d->b);
  if (rc >= 0) rc = fl_value_set(ctx, d->a, &a, sizeof a);
  if (rc >= 0) rc = fl_timer_register(ctx, FL_EVENT_TIME, a.expires);
  return rc < 0 ? rc : 0;
}

static int q4_bid_in(fl_context_t *ctx, const fl_record_t *in, void *instance) {
  const nx_descs_t *d = instance;
  const uint8_t *v = in->value;
  q4_bid_t b = {nx_i64(v + offsetof(nx_bid_wire_t, price)),
                nx_i64(v + offsetof(nx_bid_wire_t, date_time))};
  q4_auction_t a;
  int found = nx_value_read(ctx, d->a, &a, sizeof a, "q4");
  if (found < 0) return found;
  if (found) {
    if (b.ts < a.start || b.ts > a.expires || (a.has_best && b.price <= a.best)) return 0;
    q4_offer(&a, &b);
    return fl_value_set(ctx, d->a, &a, sizeof a);
  }
  int rc = fl_list_add(ctx, d->b, &b, sizeof b);
  return rc < 0 ? rc : fl_timer_register(ctx, FL_EVENT_TIME, b.ts);
}

/* The timer of an auction's expiry closes it; the timer of an early bid drops the early
 * bids up to its time if their auction has not come. */
static int q4_timer(fl_context_t *ctx, int64_t ts, fl_time_domain_t domain, void *instance) {
  const nx_descs_t *d = instance;
  q4_auction_t a;
  int found = nx_value_read(ctx, d->a, &a, sizeof a, "q4");
  if (found < 0) return found;
  if (found) {
    if (ts < a.expires) return 0; /* an early bid's timer; its list was folded in */
    int rc = fl_state_clear(ctx, d->a);
    if (rc < 0 || !a.has_best) return rc < 0 ? rc : 0;
    q4_win_t w = {a.category, a.best};
    return fl_emit(ctx, &w.category, sizeof w.category, &w, sizeof w, ts);
  }
  const fl_bytes_t *items;
  size_t n;
  int rc = fl_list_get(ctx, d->b, &items, &n);
  if (rc < 0 || n == 0) return rc < 0 ? rc : 0;
  /* copied out: the views end with the next state call, which is the update */
  q4_bid_t *keep = malloc(n * sizeof *keep);
  fl_bytes_t *views = malloc(n * sizeof *views);
  size_t k = 0;
  if (!keep || !views) {
    rc = fl_ctx_fail(ctx, "q4: out of memory");
    goto done;
  }
  for (size_t i = 0; i < n; i++) {
    if (items[i].len != sizeof *keep) {
      rc = fl_ctx_fail(ctx, "q4: corrupt early bids");
      goto done;
    }
    memcpy(&keep[k], items[i].data, sizeof *keep);
    if (keep[k].ts > ts) {
      views[k].data = &keep[k];
      views[k].len = sizeof *keep;
      k++;
    }
  }
  rc = k == n ? 0 : k == 0 ? fl_state_clear(ctx, d->b) : fl_list_update(ctx, d->b, views, k);
done:
  free(keep);
  free(views);
  return rc < 0 ? rc : 0;
}

static int q4_average(fl_context_t *ctx, const fl_record_t *in, void *instance) {
  const nx_descs_t *d = instance; /* a: (count, sum) */
  q4_win_t w;
  if (in->value_len != sizeof w)
    return fl_ctx_fail(ctx, "q4: winning bid of %zu bytes", in->value_len);
  memcpy(&w, in->value, sizeof w);
  int64_t acc[2] = {0, 0};
  int found = nx_value_read(ctx, d->a, acc, sizeof acc, "q4");
  if (found < 0) return found;
  acc[0]++;
  acc[1] += w.price;
  int rc = fl_value_set(ctx, d->a, acc, sizeof acc);
  if (rc < 0) return rc;
  nx_q4_t r = {w.category, acc[1] / acc[0], acc[0], acc[1]};
  return fl_emit(ctx, NULL, 0, &r, sizeof r, in->timestamp);
}

static fl_stream_t *q4_build(fl_env_t *env, fl_stream_t *events) {
  static const fl_co_process_fn_t winning = NX_CO_PROCESS_FN(q4_auction_in, q4_bid_in, q4_timer);
  static const fl_process_fn_t average = NX_PROCESS_FN(q4_average, NULL);
  nx_descs_t *dw = nx_descs_new(fl_state_value(env, "q4-auction"), fl_state_list(env, "q4-early"));
  nx_descs_t *da = nx_descs_new(fl_state_value(env, "q4-category"), NULL);
  if (!dw || !da) {
    free(dw);
    free(da);
    return NULL;
  }
  fl_keyed_stream_t *auctions = nx_keyed_by(events, NX_AUCTION, NX_AT(nx_auction_wire_t, id));
  fl_keyed_stream_t *bids = nx_keyed_by(events, NX_BID, NX_AT(nx_bid_wire_t, auction));
  fl_stream_t *wins = fl_keyed_connect_process(auctions, bids, "q4-winning-bids", &winning, dw);
  return fl_keyed_process(fl_stream_key_by(wins, NULL, NULL), "q4-average", &average, da);
}

static int q4_json(const fl_record_t *rec, char *out, size_t cap) {
  static const char *const fields[] = {"category", "avg_price", "auctions", "sum_price"};
  _Static_assert(sizeof(nx_q4_t) == sizeof fields / sizeof *fields * 8, "int64 fields");
  return nx_i64_fields_json(rec, out, cap, fields, 4);
}

const nx_query_t nx_q4_query = {"q4", "average price per category", q4_build, q4_json};

/* ---------------------------------------------------------------------------------- */
/* q8: monitor new users                                                                */
/*
 * Flink's SQL groups auctions by (seller, window) before the join, so a person appears
 * once per window whatever the number of auctions. The same here: auctions become their
 * seller id, keyed by seller, reduced to one per 10 s tumbling window (the result keeps
 * the window: timestamp end - 1), and joined with persons keyed by id in the same
 * tumbling windows. The join function emits the person with the window's start.
 */

static int q8_seller(fl_context_t *ctx, const fl_record_t *in, void *opaque) {
  if (nx_kind_of(in->value, in->value_len) != NX_AUCTION) return 0;
  const uint8_t *seller = (const uint8_t *)in->value + offsetof(nx_auction_wire_t, seller);
  return fl_emit(ctx, seller, sizeof(int64_t), seller, sizeof(int64_t), in->timestamp);
}

static int q8_keep_one(fl_context_t *ctx, const void *a, size_t a_len, const void *b, size_t b_len,
                       fl_buf_t *out, void *opaque) {
  return fl_buf_set(out, a, a_len);
}

static int q8_join(fl_context_t *ctx, const fl_record_t *person, const fl_record_t *seller,
                   void *opaque) {
  nx_person_t p;
  if (nx_decode_person(person->value, person->value_len, &p) != 0)
    return fl_ctx_fail(ctx, "q8: malformed person of %zu bytes", person->value_len);
  int64_t ts = fl_ctx_timestamp(ctx); /* the window's end - 1 */
  nx_q8_wire_t h = {p.id, ts + 1 - Q8_SIZE_MS, (uint16_t)p.name.len, {0, 0, 0}};
  uint8_t buf[sizeof h + 256];
  if (p.name.len > 256)
    return fl_ctx_fail(ctx, "q8: name of person %lld longer than 256 bytes", (long long)p.id);
  memcpy(buf, &h, sizeof h);
  memcpy(buf + sizeof h, p.name.p, p.name.len);
  return fl_emit(ctx, NULL, 0, buf, sizeof h + p.name.len, ts);
}

static fl_stream_t *q8_build(fl_env_t *env, fl_stream_t *events) {
  static const fl_window_assigner_t tumbling = {
      .kind = FL_ASSIGNER_TUMBLING, .domain = FL_EVENT_TIME, .size_ms = Q8_SIZE_MS};
  fl_keyed_stream_t *persons = nx_keyed_by(events, NX_PERSON, NX_AT(nx_person_wire_t, id));
  fl_stream_t *sellers = fl_stream_flat_map(events, "q8-sellers", q8_seller, NULL);
  fl_windowed_stream_t *w =
      fl_window_tumbling(fl_stream_key_by(sellers, NULL, NULL), FL_EVENT_TIME, Q8_SIZE_MS, 0);
  fl_stream_t *active = fl_window_reduce(w, "q8-sellers-per-window", q8_keep_one, NULL);
  return fl_window_join(persons, fl_stream_key_by(active, NULL, NULL), "q8-join", &tumbling,
                        q8_join, NULL);
}

static int q8_json(const fl_record_t *rec, char *out, size_t cap) {
  nx_q8_wire_t h;
  if (rec->value_len < sizeof h) return FL_EPARSE;
  memcpy(&h, rec->value, sizeof h);
  if (rec->value_len != sizeof h + h.name_len) return FL_EPARSE;
  nx_json_t w;
  nx_json_begin(&w, out, cap);
  nx_json_i64(&w, "id", h.id);
  nx_json_str(&w, "name", (const char *)rec->value + sizeof h, h.name_len);
  nx_json_i64(&w, "starttime", h.start_time);
  return nx_json_end(&w);
}

const nx_query_t nx_q8_query = {"q8", "monitor new users", q8_build, q8_json};
