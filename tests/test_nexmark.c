/* Nexmark (bench/lib): the generator's determinism, parallel split and distributions, and
 * every query run through the engine at parallelism 1 and 2 and compared with an
 * independent computation over the same generated events, written here with plain loops
 * and sorts. Inputs run at 1000 events per second of event time (one event per
 * millisecond, so timestamps are unique), start 10 s before midnight UTC (q17's days
 * change during the run) and emit a watermark after every record, so windows and timers
 * fire during the run, not only at the end of input. FL_TEST_QUICK=1 uses fewer events
 * (for slow sanitizer builds). */
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>
#include <jansson.h>

#include "fl_test_util.h"
#include "lib/nexmark.h"

#define RATE 1000
#define BASE (NX_DEFAULT_BASE_TIME - 10000)

/* 50 s of event time; 20 s under ThreadSanitizer (ten times slower) or FL_TEST_QUICK. */
static uint64_t n_events(void) {
  const char *q = getenv("FL_TEST_QUICK");
#if defined(__SANITIZE_THREAD__)
  q = "1";
#endif
  return q && *q && strcmp(q, "0") != 0 ? 20000 : 50000;
}

/* ---------------------------------------------------------------------------------- */
/* The generated events, decoded                                                        */

typedef struct events {
  nx_gen_t *g;
  uint64_t n;
  uint8_t *data; /* every event's bytes, back to back */
  size_t *off, *len;
  int64_t *ts;
  nx_bid_t *bids;
  size_t nb;
  nx_person_t *persons;
  size_t np;
  nx_auction_t *auctions;
  size_t na;
} events_t;

static void events_make(events_t *e, uint64_t n, uint64_t rate, int64_t base, uint64_t seed) {
  nx_config_t c;
  memset(e, 0, sizeof *e);
  nx_config_default(&c);
  c.events = n;
  c.rate = rate;
  c.base_time = base;
  c.seed = seed;
  assert_int_equal(nx_gen_new(&e->g, &c), 0);
  e->n = n;
  e->data = malloc(n * NX_MAX_EVENT_BYTES / 2 + NX_MAX_EVENT_BYTES);
  e->off = malloc(n * sizeof *e->off);
  e->len = malloc(n * sizeof *e->len);
  e->ts = malloc(n * sizeof *e->ts);
  e->bids = malloc(n * sizeof *e->bids);
  e->persons = malloc(n * sizeof *e->persons);
  e->auctions = malloc(n * sizeof *e->auctions);
  assert_true(e->data && e->off && e->len && e->ts && e->bids && e->persons && e->auctions);
  size_t at = 0;
  for (uint64_t i = 0; i < n; i++) {
    e->off[i] = at;
    e->len[i] = nx_gen_event(e->g, i, e->data + at, &e->ts[i]);
    assert_true(e->len[i] > 0 && e->len[i] <= NX_MAX_EVENT_BYTES);
    at += e->len[i];
    assert_true(at + NX_MAX_EVENT_BYTES <= n * NX_MAX_EVENT_BYTES / 2 + NX_MAX_EVENT_BYTES);
  }
  /* decode after the buffer is complete: views point into it */
  for (uint64_t i = 0; i < n; i++) {
    nx_event_t ev;
    assert_int_equal(nx_decode(e->data + e->off[i], e->len[i], &ev), 0);
    switch (ev.kind) {
    case NX_PERSON: e->persons[e->np++] = ev.u.person; break;
    case NX_AUCTION: e->auctions[e->na++] = ev.u.auction; break;
    case NX_BID: e->bids[e->nb++] = ev.u.bid; break;
    }
  }
}

static void events_free(events_t *e) {
  nx_gen_destroy(e->g);
  free(e->data);
  free(e->off);
  free(e->len);
  free(e->ts);
  free(e->bids);
  free(e->persons);
  free(e->auctions);
}

static bool str_eq(nx_str_t a, nx_str_t b) {
  return a.len == b.len && (a.len == 0 || memcmp(a.p, b.p, a.len) == 0);
}

/* ---------------------------------------------------------------------------------- */
/* Running a query                                                                      */

static _Atomic int64_t fast_clock_origin;

/* A processing-time clock that runs 1000 times faster than the wall clock, so q12's
 * 10 s windows close every 10 ms. */
static int64_t fast_clock(void *opaque) {
  (void)opaque;
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  int64_t us = (int64_t)t.tv_sec * 1000000 + t.tv_nsec / 1000;
  return atomic_load(&fast_clock_origin) + us;
}

/* Runs query name on e's events at parallelism P; the results go into out, initialized
 * here (the caller frees it). */
static void run_query(const events_t *e, const char *name, int P, collector_t *out) {
  collector_init(out);
  const nx_query_t *q = nx_query_find(name);
  assert_non_null(q);
  fl_env_t *env = env_with(P, "0");
  assert_non_null(env);
  if (strcmp(name, "q12") == 0) assert_int_equal(fl_env_set_clock(env, fast_clock, NULL), 0);
  fl_stream_t *results = q->build(env, nx_source(env, e->g));
  assert_non_null(results);
  assert_int_equal(fl_stream_sink(results, "collect", &collector_sink, out), 0);
  int rc = fl_env_execute(env, name);
  if (rc != 0) fail_msg("%s at parallelism %d: %s", name, P, fl_env_error(env));
  fl_env_destroy(env);
  /* Every result has a JSON form that parses. */
  for (size_t i = 0; i < out->n; i++) {
    char buf[NX_MAX_JSON_BYTES];
    fl_record_t r = {out->r[i].key, out->r[i].key_len, out->r[i].value, out->r[i].value_len,
                     out->r[i].ts};
    int len = q->to_json(&r, buf, sizeof buf);
    assert_true(len > 0 && (size_t)len < sizeof buf);
    json_error_t err;
    json_t *j = json_loads(buf, 0, &err);
    if (!j || !json_is_object(j)) fail_msg("%s: bad JSON %s: %s", name, buf, err.text);
    json_decref(j);
  }
}

static int cmp_i64(int64_t a, int64_t b) { return a < b ? -1 : a > b; }

static int64_t floor_div(int64_t a, int64_t b) { return a / b - (a % b < 0); }

static int by_ts(const void *a, const void *b) {
  const col_rec_t *x = a, *y = b;
  return cmp_i64(x->ts, y->ts);
}

/* ---------------------------------------------------------------------------------- */
/* Generator                                                                            */

static void generator_is_deterministic_by_seed_and_event_number(void **state) {
  (void)state;
  nx_config_t c;
  nx_config_default(&c);
  c.events = 5000;
  nx_gen_t *a, *b, *other;
  assert_int_equal(nx_gen_new(&a, &c), 0);
  assert_int_equal(nx_gen_new(&b, &c), 0);
  c.seed++;
  assert_int_equal(nx_gen_new(&other, &c), 0);
  uint8_t x[NX_MAX_EVENT_BYTES], y[NX_MAX_EVENT_BYTES];
  size_t differ = 0;
  for (uint64_t n = 0; n < c.events; n++) {
    int64_t tx, ty;
    size_t lx = nx_gen_event(a, n, x, &tx);
    size_t ly = nx_gen_event(b, n, y, &ty);
    assert_int_equal(lx, ly);
    assert_memory_equal(x, y, lx);
    assert_int_equal(tx, ty);
    /* out of order, from another generator: the same event */
    uint64_t m = c.events - 1 - n;
    lx = nx_gen_event(a, m, x, NULL);
    ly = nx_gen_event(b, m, y, NULL);
    assert_int_equal(lx, ly);
    assert_memory_equal(x, y, lx);
    ly = nx_gen_event(other, n, y, NULL);
    lx = nx_gen_event(a, n, x, NULL);
    differ += lx != ly || memcmp(x, y, lx) != 0;
  }
  assert_true(differ > c.events * 9 / 10);
  nx_gen_destroy(a);
  nx_gen_destroy(b);
  nx_gen_destroy(other);
}

typedef struct ts_hash {
  int64_t ts;
  uint64_t h;
} ts_hash_t;

static int cmp_ts_hash(const void *a, const void *b) {
  const ts_hash_t *x = a, *y = b;
  int c = cmp_i64(x->ts, y->ts);
  return c ? c : (x->h > y->h) - (x->h < y->h);
}

/* The engine's parallel source at P = 1, 2, 3 makes the multiset of events that
 * nx_gen_event makes for 0..N-1, each subtask in time order. */
static void parallel_source_makes_the_same_events_for_any_parallelism(void **state) {
  (void)state;
  const uint64_t N = 30000;
  nx_config_t c;
  nx_config_default(&c);
  c.events = N;
  nx_gen_t *g;
  assert_int_equal(nx_gen_new(&g, &c), 0);
  ts_hash_t *want = malloc(N * sizeof *want), *got = malloc(N * sizeof *got);
  uint8_t buf[NX_MAX_EVENT_BYTES];
  for (uint64_t n = 0; n < N; n++) {
    size_t len = nx_gen_event(g, n, buf, &want[n].ts);
    want[n].h = nx_hash_bytes(buf, len, 1);
  }
  qsort(want, N, sizeof *want, cmp_ts_hash);
  for (int P = 1; P <= 3; P++) {
    collector_t col;
    collector_init(&col);
    fl_env_t *env = env_with(P, NULL);
    assert_int_equal(fl_stream_sink(nx_source(env, g), "collect", &collector_sink, &col), 0);
    assert_int_equal(fl_env_execute(env, "source"), 0);
    fl_env_destroy(env);
    assert_int_equal(col.n, N);
    int64_t last[3] = {INT64_MIN, INT64_MIN, INT64_MIN};
    for (size_t i = 0; i < N; i++) {
      assert_true(col.r[i].ts >= last[col.r[i].subtask]);
      last[col.r[i].subtask] = col.r[i].ts;
      got[i].ts = col.r[i].ts;
      got[i].h = nx_hash_bytes(col.r[i].value, col.r[i].value_len, 1);
    }
    qsort(got, N, sizeof *got, cmp_ts_hash);
    assert_memory_equal(got, want, N * sizeof *got);
    collector_free(&col);
  }
  free(want);
  free(got);
  nx_gen_destroy(g);
}

static void generator_proportions_ids_and_distributions(void **state) {
  (void)state;
  events_t e;
  events_make(&e, 100000, NX_DEFAULT_RATE, NX_DEFAULT_BASE_TIME, 7);
  /* 1:3:46, interleaved by n % 50 */
  assert_int_equal(e.np, 2000);
  assert_int_equal(e.na, 6000);
  assert_int_equal(e.nb, 92000);
  /* event time: base + n * 1000 / rate */
  assert_int_equal(e.ts[0], NX_DEFAULT_BASE_TIME);
  assert_int_equal(e.ts[99999], NX_DEFAULT_BASE_TIME + 99999 / 10000);
  /* persons and auctions get consecutive ids from 1000 */
  for (size_t i = 0; i < e.np; i++) assert_int_equal(e.persons[i].id, 1000 + (int64_t)i);
  for (size_t i = 0; i < e.na; i++) assert_int_equal(e.auctions[i].id, 1000 + (int64_t)i);
  /* bids: walk in event order, knowing the last person / auction made so far */
  size_t hot_auction = 0, hot_bidder = 0, low_price = 0, hot_channel = 0, bi = 0;
  size_t bid_bytes = 0, person_bytes = 0, auction_bytes = 0;
  int64_t last_p = -1, last_a = -1;
  for (uint64_t n = 0; n < e.n; n++) {
    nx_kind_t k = nx_event_kind(n);
    if (k == NX_PERSON) {
      last_p++;
      continue;
    }
    if (k == NX_AUCTION) {
      last_a++;
      continue;
    }
    const nx_bid_t *b = &e.bids[bi++];
    assert_true(b->auction >= 1000 && b->auction <= 1000 + last_a + 10);
    assert_true(b->auction >= 1000 + last_a - 100);
    assert_true(b->bidder >= 1000 && b->bidder <= 1000 + last_p + 10);
    hot_auction += b->auction == 1000 + last_a / 100 * 100;
    hot_bidder += b->bidder == 1000 + last_p / 100 * 100 + 1;
    assert_true(b->price >= 100 && b->price <= 100000000);
    low_price += b->price < 10000; /* 10^(6u) * 100 < 10^4 iff u < 1/3 */
    static const char *hot[] = {"Google", "Facebook", "Baidu", "Apple"};
    for (int i = 0; i < 4; i++)
      if (b->channel.len == strlen(hot[i]) && memcmp(b->channel.p, hot[i], b->channel.len) == 0)
        hot_channel++;
    assert_true(b->url.len > 30 && memcmp(b->url.p, "https://www.nexmark.com/", 24) == 0);
    assert_int_equal(b->date_time, e.ts[n]);
    bid_bytes += 32 + b->extra.len;
  }
  for (size_t i = 0; i < e.na; i++) {
    const nx_auction_t *a = &e.auctions[i];
    assert_true(a->category >= 10 && a->category <= 14);
    assert_true(a->expires > a->date_time);
    assert_true(a->reserve > a->initial_bid);
    assert_true(a->seller >= 1000);
    auction_bytes += 8 + a->item_name.len + a->description.len + 40 + a->extra.len;
  }
  static const char *states[] = {"AZ", "CA", "ID", "OR", "WA", "WY"};
  for (size_t i = 0; i < e.np; i++) {
    const nx_person_t *p = &e.persons[i];
    bool ok = false;
    for (int s = 0; s < 6; s++) ok |= p->state.len == 2 && memcmp(p->state.p, states[s], 2) == 0;
    assert_true(ok);
    assert_int_equal(p->credit_card.len, 19);
    person_bytes += 8 + p->name.len + p->email_address.len + p->credit_card.len + p->city.len +
                    p->state.len + p->extra.len;
  }
  double nb = (double)e.nb;
  /* half the bids on the hot auction (plus the non-hot ones that hit it), 3/4 by the hot
   * bidder, log-uniform prices, half on the four hot channels */
  assert_true(hot_auction > nb * 0.49 && hot_auction < nb * 0.53);
  assert_true(hot_bidder > nb * 0.74 && hot_bidder < nb * 0.77);
  assert_true(low_price > nb * 0.32 && low_price < nb * 0.35);
  assert_true(hot_channel > nb * 0.49 && hot_channel < nb * 0.51);
  /* average sizes as Flink counts them: 100 / 500 / 200 bytes */
  assert_true(bid_bytes / e.nb >= 98 && bid_bytes / e.nb <= 102);
  assert_true(auction_bytes / e.na >= 490 && auction_bytes / e.na <= 510);
  assert_true(person_bytes / e.np >= 195 && person_bytes / e.np <= 205);
  events_free(&e);
}

static void codec_round_trips_and_rejects_malformed_values(void **state) {
  (void)state;
  events_t e;
  events_make(&e, 200, RATE, BASE, 3);
  uint8_t buf[NX_MAX_EVENT_BYTES];
  for (uint64_t n = 0; n < e.n; n++) {
    nx_event_t ev;
    const uint8_t *v = e.data + e.off[n];
    assert_int_equal(nx_decode(v, e.len[n], &ev), 0);
    assert_int_equal(nx_encoded_size(v, e.len[n]), e.len[n]);
    assert_int_equal(nx_encode(&ev, buf, sizeof buf), e.len[n]);
    assert_memory_equal(buf, v, e.len[n]);
    assert_int_equal(nx_decode(v, e.len[n] - 1, &ev), FL_EPARSE);
    assert_int_equal(nx_encode(&ev, buf, e.len[n] - 1), 0);
  }
  uint8_t junk[64] = {7};
  nx_event_t ev;
  assert_int_equal(nx_kind_of(junk, sizeof junk), -1);
  assert_int_equal(nx_decode(junk, sizeof junk, &ev), FL_EPARSE);
  nx_bid_t b;
  assert_int_equal(nx_decode_bid(e.data + e.off[0], e.len[0], &b), FL_EPARSE); /* a person */
  char day[64];
  nx_day_string(nx_day_of(NX_DEFAULT_BASE_TIME), day, sizeof day);
  assert_string_equal(day, "2024-01-01");
  nx_day_string(nx_day_of(NX_DEFAULT_BASE_TIME - 1), day, sizeof day);
  assert_string_equal(day, "2023-12-31");
  nx_day_string(nx_day_of(951782400000), day, sizeof day); /* 2000-02-29 */
  assert_string_equal(day, "2000-02-29");
  events_free(&e);
}

/* ---------------------------------------------------------------------------------- */
/* q0, q1, q2                                                                           */

static void check_projection(const events_t *e, int P, const char *q, int64_t factor) {
  collector_t col;
  run_query(e, q, P, &col);
  assert_int_equal(col.n, e->nb);
  qsort(col.r, col.n, sizeof *col.r, by_ts);
  for (size_t i = 0; i < col.n; i++) {
    nx_bid_t got;
    const nx_bid_t *want = &e->bids[i];
    assert_int_equal(nx_decode_bid(col.r[i].value, col.r[i].value_len, &got), 0);
    assert_int_equal(got.auction, want->auction);
    assert_int_equal(got.bidder, want->bidder);
    assert_int_equal(got.price, want->price * factor);
    assert_int_equal(got.date_time, want->date_time);
    assert_int_equal(col.r[i].ts, want->date_time);
    assert_true(str_eq(got.extra, want->extra));
    assert_int_equal(got.channel.len + got.url.len, 0);
  }
  collector_free(&col);
}

static void q0_q1_every_bid_projected_and_converted(void **state) {
  events_t *e = *state;
  for (int P = 1; P <= 2; P++) {
    check_projection(e, P, "q0", 1);
    check_projection(e, P, "q1", 908);
  }
}

static void q2_bids_of_every_123rd_auction(void **state) {
  events_t *e = *state;
  for (int P = 1; P <= 2; P++) {
    collector_t col;
    run_query(e, "q2", P, &col);
    qsort(col.r, col.n, sizeof *col.r, by_ts);
    size_t j = 0;
    for (size_t i = 0; i < e->nb; i++) {
      if (e->bids[i].auction % 123 != 0) continue;
      assert_true(j < col.n);
      nx_q2_t r;
      assert_int_equal(col.r[j].value_len, sizeof r);
      memcpy(&r, col.r[j].value, sizeof r);
      assert_int_equal(r.auction, e->bids[i].auction);
      assert_int_equal(r.price, e->bids[i].price);
      assert_int_equal(col.r[j].ts, e->bids[i].date_time);
      j++;
    }
    assert_true(j > 0);
    assert_int_equal(j, col.n);
    collector_free(&col);
  }
}

/* ---------------------------------------------------------------------------------- */
/* q3, q4, q8: two inputs                                                               */

static int by_first_i64(const void *a, const void *b) {
  const col_rec_t *x = a, *y = b;
  return cmp_i64(nx_i64(x->value), nx_i64(y->value));
}

static void q3_category_10_auctions_of_sellers_in_or_id_ca(void **state) {
  events_t *e = *state;
  size_t nw = 0;
  const nx_auction_t **want = malloc(e->na * sizeof *want);
  for (size_t i = 0; i < e->na; i++) { /* auctions are in id order */
    const nx_auction_t *a = &e->auctions[i];
    int64_t p = a->seller - 1000;
    if (a->category != 10 || p < 0 || (size_t)p >= e->np) continue;
    nx_str_t st = e->persons[p].state;
    if (st.len == 2 && (!memcmp(st.p, "OR", 2) || !memcmp(st.p, "ID", 2) || !memcmp(st.p, "CA", 2)))
      want[nw++] = a;
  }
  assert_true(nw > 50);
  for (int P = 1; P <= 2; P++) {
    collector_t col;
    run_query(e, "q3", P, &col);
    qsort(col.r, col.n, sizeof *col.r, by_first_i64);
    assert_int_equal(col.n, nw);
    for (size_t i = 0; i < nw; i++) {
      const nx_person_t *p = &e->persons[want[i]->seller - 1000];
      nx_q3_wire_t h;
      assert_true(col.r[i].value_len >= sizeof h);
      memcpy(&h, col.r[i].value, sizeof h);
      const char *str = col.r[i].value + sizeof h;
      assert_int_equal(h.auction, want[i]->id);
      assert_int_equal(col.r[i].value_len, sizeof h + p->name.len + p->city.len + p->state.len);
      assert_true(h.name_len == p->name.len && !memcmp(str, p->name.p, p->name.len));
      str += h.name_len;
      assert_true(h.city_len == p->city.len && !memcmp(str, p->city.p, p->city.len));
      str += h.city_len;
      assert_true(h.state_len == p->state.len && !memcmp(str, p->state.p, p->state.len));
      int64_t later = p->date_time > want[i]->date_time ? p->date_time : want[i]->date_time;
      assert_int_equal(col.r[i].ts, later);
    }
    collector_free(&col);
  }
  free(want);
}

typedef struct cat_price {
  int64_t category, price;
} cat_price_t;

static int cmp_cat_price(const void *a, const void *b) {
  const cat_price_t *x = a, *y = b;
  int c = cmp_i64(x->category, y->category);
  return c ? c : cmp_i64(x->price, y->price);
}

static int cmp_q4_rows(const void *a, const void *b) {
  const nx_q4_t *x = a, *y = b;
  int c = cmp_i64(x->category, y->category);
  return c ? c : cmp_i64(x->auctions, y->auctions);
}

static void q4_average_winning_price_per_category(void **state) {
  events_t *e = *state;
  /* winning price per auction: the highest bid in [start, expires] */
  int64_t *best = malloc(e->na * sizeof *best);
  for (size_t i = 0; i < e->na; i++) best[i] = INT64_MIN;
  for (size_t i = 0; i < e->nb; i++) {
    const nx_bid_t *b = &e->bids[i];
    int64_t a = b->auction - 1000;
    if (a < 0 || (size_t)a >= e->na) continue;
    const nx_auction_t *au = &e->auctions[a];
    if (b->date_time >= au->date_time && b->date_time <= au->expires && b->price > best[a])
      best[a] = b->price;
  }
  cat_price_t *wins = malloc(e->na * sizeof *wins);
  size_t nw = 0;
  for (size_t i = 0; i < e->na; i++)
    if (best[i] != INT64_MIN) wins[nw++] = (cat_price_t){e->auctions[i].category, best[i]};
  qsort(wins, nw, sizeof *wins, cmp_cat_price);
  assert_true(nw > 100 && nw < e->na);
  for (int P = 1; P <= 2; P++) {
    collector_t col;
    run_query(e, "q4", P, &col);
    assert_int_equal(col.n, nw);
    nx_q4_t *rows = malloc(col.n * sizeof *rows);
    for (size_t i = 0; i < col.n; i++) {
      assert_int_equal(col.r[i].value_len, sizeof *rows);
      memcpy(&rows[i], col.r[i].value, sizeof *rows);
      assert_int_equal(rows[i].avg_price, rows[i].sum_price / rows[i].auctions);
    }
    /* Per category the rows count 1..n, and what each adds to the sum is one auction's
     * winning price: in any closing order, the increments are the winning prices. */
    qsort(rows, col.n, sizeof *rows, cmp_q4_rows);
    cat_price_t *inc = malloc(col.n * sizeof *inc);
    for (size_t i = 0; i < col.n; i++) {
      bool first = i == 0 || rows[i].category != rows[i - 1].category;
      assert_int_equal(rows[i].auctions, first ? 1 : rows[i - 1].auctions + 1);
      inc[i] =
          (cat_price_t){rows[i].category, rows[i].sum_price - (first ? 0 : rows[i - 1].sum_price)};
    }
    qsort(inc, col.n, sizeof *inc, cmp_cat_price);
    assert_memory_equal(inc, wins, nw * sizeof *inc);
    free(inc);
    free(rows);
    collector_free(&col);
  }
  free(best);
  free(wins);
}

typedef struct seller_window {
  int64_t seller, window;
} seller_window_t;

static int cmp_seller_window(const void *a, const void *b) {
  const seller_window_t *x = a, *y = b;
  int c = cmp_i64(x->seller, y->seller);
  return c ? c : cmp_i64(x->window, y->window);
}

static void q8_persons_who_opened_auctions_in_their_window(void **state) {
  events_t *e = *state;
  seller_window_t *sw = malloc(e->na * sizeof *sw);
  for (size_t i = 0; i < e->na; i++)
    sw[i] = (seller_window_t){e->auctions[i].seller, floor_div(e->auctions[i].date_time, 10000)};
  qsort(sw, e->na, sizeof *sw, cmp_seller_window);
  const nx_person_t **want = malloc(e->np * sizeof *want); /* persons are in id order */
  size_t nw = 0;
  for (size_t i = 0; i < e->np; i++) {
    seller_window_t k = {e->persons[i].id, floor_div(e->persons[i].date_time, 10000)};
    if (bsearch(&k, sw, e->na, sizeof *sw, cmp_seller_window)) want[nw++] = &e->persons[i];
  }
  assert_true(nw > 20);
  for (int P = 1; P <= 2; P++) {
    collector_t col;
    run_query(e, "q8", P, &col);
    qsort(col.r, col.n, sizeof *col.r, by_first_i64);
    assert_int_equal(col.n, nw);
    for (size_t i = 0; i < nw; i++) {
      nx_q8_wire_t h;
      assert_true(col.r[i].value_len >= sizeof h);
      memcpy(&h, col.r[i].value, sizeof h);
      int64_t start = floor_div(want[i]->date_time, 10000) * 10000;
      assert_int_equal(h.id, want[i]->id);
      assert_int_equal(h.start_time, start);
      assert_int_equal(col.r[i].ts, start + 9999);
      assert_int_equal(col.r[i].value_len, sizeof h + want[i]->name.len);
      assert_memory_equal(col.r[i].value + sizeof h, want[i]->name.p, want[i]->name.len);
    }
    collector_free(&col);
  }
  free(sw);
  free(want);
}

/* ---------------------------------------------------------------------------------- */
/* q5: hot items                                                                        */

typedef struct win_auction {
  int64_t start, auction;
} win_auction_t;

static int cmp_win_auction(const void *a, const void *b) {
  const win_auction_t *x = a, *y = b;
  int c = cmp_i64(x->start, y->start);
  return c ? c : cmp_i64(x->auction, y->auction);
}

static int cmp_q5(const void *a, const void *b) {
  const col_rec_t *x = a, *y = b;
  nx_q5_t p, q;
  memcpy(&p, x->value, sizeof p);
  memcpy(&q, y->value, sizeof q);
  int c = cmp_i64(p.window_end, q.window_end);
  return c ? c : cmp_i64(p.auction, q.auction);
}

static void q5_auctions_with_the_most_bids_per_sliding_window(void **state) {
  events_t *e = *state;
  /* every (window start, auction) a bid counts for: 5 windows of 10 s every 2 s */
  win_auction_t *wa = malloc(e->nb * 5 * sizeof *wa);
  size_t n = 0;
  for (size_t i = 0; i < e->nb; i++) {
    int64_t last_start = floor_div(e->bids[i].date_time, 2000) * 2000;
    for (int64_t s = last_start; s > e->bids[i].date_time - 10000; s -= 2000)
      wa[n++] = (win_auction_t){s, e->bids[i].auction};
  }
  qsort(wa, n, sizeof *wa, cmp_win_auction);
  /* counts per (window, auction), then the maximum per window */
  nx_q5_t *want = malloc(n * sizeof *want);
  size_t nw = 0;
  for (size_t i = 0; i < n;) {
    size_t w_end = i;
    while (w_end < n && wa[w_end].start == wa[i].start) w_end++;
    int64_t max = 0;
    for (size_t j = i; j < w_end;) {
      size_t k = j;
      while (k < w_end && wa[k].auction == wa[j].auction) k++;
      if ((int64_t)(k - j) > max) max = (int64_t)(k - j);
      j = k;
    }
    for (size_t j = i; j < w_end;) {
      size_t k = j;
      while (k < w_end && wa[k].auction == wa[j].auction) k++;
      if ((int64_t)(k - j) == max)
        want[nw++] = (nx_q5_t){wa[j].auction, max, wa[i].start, wa[i].start + 10000};
      j = k;
    }
    i = w_end;
  }
  assert_true(nw >= 10); /* 5 per 10 s of input, plus ties */
  for (int P = 1; P <= 2; P++) {
    collector_t col;
    run_query(e, "q5", P, &col);
    for (size_t i = 0; i < col.n; i++) assert_int_equal(col.r[i].value_len, sizeof(nx_q5_t));
    qsort(col.r, col.n, sizeof *col.r, cmp_q5);
    assert_int_equal(col.n, nw);
    for (size_t i = 0; i < nw; i++) {
      nx_q5_t got;
      memcpy(&got, col.r[i].value, sizeof got);
      assert_memory_equal(&got, &want[i], sizeof got);
      assert_int_equal(col.r[i].ts, want[i].window_end - 1);
    }
    collector_free(&col);
  }
  free(wa);
  free(want);
}

/* ---------------------------------------------------------------------------------- */
/* q7: highest bid                                                                      */

static void q7_bids_with_the_highest_price_per_window(void **state) {
  events_t *e = *state;
  /* bids are in time order: one pass per window */
  size_t *want = malloc(e->nb * sizeof *want), nw = 0;
  int64_t *want_end = malloc(e->nb * sizeof *want_end);
  for (size_t i = 0; i < e->nb;) {
    int64_t start = floor_div(e->bids[i].date_time, 10000) * 10000;
    size_t j = i;
    int64_t max = INT64_MIN;
    while (j < e->nb && e->bids[j].date_time < start + 10000) {
      if (e->bids[j].price > max) max = e->bids[j].price;
      j++;
    }
    for (size_t k = i; k < j; k++)
      if (e->bids[k].price == max) {
        want_end[nw] = start + 10000;
        want[nw++] = k;
      }
    i = j;
  }
  assert_true(nw >= 2);
  for (int P = 1; P <= 2; P++) {
    collector_t col;
    run_query(e, "q7", P, &col);
    assert_int_equal(col.n, nw);
    /* order by the bid's dateTime (unique) */
    nx_bid_t *got = malloc(col.n * sizeof *got);
    for (size_t i = 0; i < col.n; i++)
      assert_int_equal(nx_decode_bid(col.r[i].value, col.r[i].value_len, &got[i]), 0);
    for (size_t i = 0; i < nw; i++) {
      size_t k = 0;
      while (k < col.n && got[k].date_time != e->bids[want[i]].date_time) k++;
      assert_true(k < col.n);
      const nx_bid_t *b = &e->bids[want[i]];
      assert_int_equal(got[k].auction, b->auction);
      assert_int_equal(got[k].bidder, b->bidder);
      assert_int_equal(got[k].price, b->price);
      assert_true(str_eq(got[k].extra, b->extra));
      assert_int_equal(col.r[k].ts, want_end[i] - 1);
    }
    free(got);
    collector_free(&col);
  }
  free(want);
  free(want_end);
}

/* ---------------------------------------------------------------------------------- */
/* Ties, on hand-made bids (the generator's hot auction makes them rare)                */

/* Runs a query on the given bids, as a single-reader source with the same watermarks
 * as nx_source(); the results go into out, initialized here (the caller frees it). */
static void run_on_bids(const char *name, int P, const nx_bid_t *bids, size_t n, collector_t *out) {
  collector_init(out);
  static const fl_watermark_strategy_t ws = {
      FL_WATERMARK_STRATEGY_VERSION, FL_WATERMARKS_BOUNDED, NX_OUT_OF_ORDERNESS_MS, 0, NULL, NULL};
  uint8_t(*buf)[NX_MAX_EVENT_BYTES] = malloc(n * sizeof *buf);
  fl_record_t *recs = calloc(n, sizeof *recs);
  for (size_t i = 0; i < n; i++) {
    recs[i].value = buf[i];
    recs[i].value_len = nx_encode_bid(&bids[i], buf[i], sizeof buf[i]);
    recs[i].timestamp = bids[i].date_time;
  }
  fl_env_t *env = env_with(P, "0");
  fl_stream_t *events =
      fl_stream_assign_timestamps(fl_source_collection(env, "bids", recs, n), "watermarks", &ws);
  fl_stream_t *results = nx_query_find(name)->build(env, events);
  assert_int_equal(fl_stream_sink(results, "collect", &collector_sink, out), 0);
  int rc = fl_env_execute(env, name);
  if (rc != 0) fail_msg("%s: %s", name, fl_env_error(env));
  fl_env_destroy(env);
  free(buf);
  free(recs);
}

static nx_bid_t hand_bid(int64_t auction, int64_t price, int64_t ts) {
  nx_bid_t b = {auction, 1001, price, ts, {"Apple", 5}, {"https://a", 9}, {"x", 1}};
  return b;
}

static void q5_q7_emit_every_tied_maximum(void **state) {
  (void)state;
  const nx_bid_t q5_bids[] = {
      hand_bid(1, 10, 1000), hand_bid(2, 10, 1200), hand_bid(3, 10, 1300), hand_bid(1, 10, 1500),
      hand_bid(2, 10, 1700), hand_bid(3, 10, 9000), hand_bid(3, 10, 9100),
  };
  /* Windows starting -8 s .. -2 s hold the first five bids: auctions 1 and 2 tie at 2.
   * The window from 0 holds all: auction 3 has 3. From 2 s to 8 s: auction 3 alone. */
  const nx_q5_t q5_want[] = {
      {1, 2, -8000, 2000}, {2, 2, -8000, 2000}, {1, 2, -6000, 4000}, {2, 2, -6000, 4000},
      {1, 2, -4000, 6000}, {2, 2, -4000, 6000}, {1, 2, -2000, 8000}, {2, 2, -2000, 8000},
      {3, 3, 0, 10000},    {3, 2, 2000, 12000}, {3, 2, 4000, 14000}, {3, 2, 6000, 16000},
      {3, 2, 8000, 18000},
  };
  const nx_bid_t q7_bids[] = {hand_bid(1, 5, 1000), hand_bid(2, 7, 2000), hand_bid(3, 7, 3000),
                              hand_bid(4, 3, 4000), hand_bid(5, 9, 12000)};
  for (int P = 1; P <= 2; P++) {
    collector_t col;
    run_on_bids("q5", P, q5_bids, sizeof q5_bids / sizeof q5_bids[0], &col);
    qsort(col.r, col.n, sizeof *col.r, cmp_q5);
    assert_int_equal(col.n, sizeof q5_want / sizeof q5_want[0]);
    for (size_t i = 0; i < col.n; i++)
      assert_memory_equal(col.r[i].value, &q5_want[i], sizeof q5_want[i]);
    collector_free(&col);

    run_on_bids("q7", P, q7_bids, sizeof q7_bids / sizeof q7_bids[0], &col);
    qsort(col.r, col.n, sizeof *col.r, by_ts);
    assert_int_equal(col.n, 3);
    int64_t auctions = 0;
    for (size_t i = 0; i < 3; i++) {
      nx_bid_t b;
      assert_int_equal(nx_decode_bid(col.r[i].value, col.r[i].value_len, &b), 0);
      assert_int_equal(b.price, i < 2 ? 7 : 9);
      assert_int_equal(col.r[i].ts, i < 2 ? 9999 : 19999);
      auctions += b.auction << (8 * i);
    }
    assert_true(auctions == (2 | 3 << 8 | 5 << 16) || auctions == (3 | 2 << 8 | 5 << 16));
    collector_free(&col);
  }
}

/* ---------------------------------------------------------------------------------- */
/* q11: sessions                                                                        */

typedef struct bidder_ts {
  int64_t bidder, ts;
} bidder_ts_t;

static int cmp_bidder_ts(const void *a, const void *b) {
  const bidder_ts_t *x = a, *y = b;
  int c = cmp_i64(x->bidder, y->bidder);
  return c ? c : cmp_i64(x->ts, y->ts);
}

static int cmp_window_count(const void *a, const void *b) {
  const nx_window_count_t *x = a, *y = b;
  int c = cmp_i64(x->bidder, y->bidder);
  return c ? c : cmp_i64(x->start, y->start);
}

static nx_window_count_t *results_as_counts(const collector_t *col) {
  nx_window_count_t *r = malloc((col->n + 1) * sizeof *r);
  for (size_t i = 0; i < col->n; i++) {
    assert_int_equal(col->r[i].value_len, sizeof *r);
    memcpy(&r[i], col->r[i].value, sizeof *r);
    assert_int_equal(col->r[i].ts, r[i].end - 1);
  }
  qsort(r, col->n, sizeof *r, cmp_window_count);
  return r;
}

static void q11_bids_per_bidder_session(void **state) {
  events_t *e = *state;
  bidder_ts_t *bt = malloc(e->nb * sizeof *bt);
  for (size_t i = 0; i < e->nb; i++) bt[i] = (bidder_ts_t){e->bids[i].bidder, e->bids[i].date_time};
  qsort(bt, e->nb, sizeof *bt, cmp_bidder_ts);
  /* a session grows while the next bid is at most 10 s after the last (touching
   * windows [ts, ts + gap) merge) */
  nx_window_count_t *want = malloc(e->nb * sizeof *want);
  size_t nw = 0;
  for (size_t i = 0; i < e->nb;) {
    nx_window_count_t s = {bt[i].bidder, 1, bt[i].ts, bt[i].ts + 10000};
    size_t j = i + 1;
    while (j < e->nb && bt[j].bidder == s.bidder && bt[j].ts <= s.end) {
      s.bid_count++;
      s.end = bt[j].ts + 10000;
      j++;
    }
    want[nw++] = s;
    i = j;
  }
  assert_true(nw > 100);
  for (int P = 1; P <= 2; P++) {
    collector_t col;
    run_query(e, "q11", P, &col);
    nx_window_count_t *got = results_as_counts(&col);
    assert_int_equal(col.n, nw);
    assert_memory_equal(got, want, nw * sizeof *got);
    free(got);
    collector_free(&col);
  }
  free(bt);
  free(want);
}

/* q12 counts by processing time: the windows depend on timing, so the check is that
 * every bid is counted exactly once for its bidder, in aligned 10 s windows with at
 * most one result each. */
static void q12_every_bid_counted_once_in_processing_time_windows(void **state) {
  events_t *e = *state;
  bidder_ts_t *bt = malloc(e->nb * sizeof *bt);
  for (size_t i = 0; i < e->nb; i++) bt[i] = (bidder_ts_t){e->bids[i].bidder, 0};
  qsort(bt, e->nb, sizeof *bt, cmp_bidder_ts);
  for (int P = 1; P <= 2; P++) {
    collector_t col;
    atomic_store(&fast_clock_origin, NX_DEFAULT_BASE_TIME);
    run_query(e, "q12", P, &col);
    nx_window_count_t *got = results_as_counts(&col);
    size_t g = 0;
    for (size_t i = 0; i < e->nb;) {
      size_t j = i;
      while (j < e->nb && bt[j].bidder == bt[i].bidder) j++;
      int64_t sum = 0, prev_start = INT64_MIN;
      for (; g < col.n && got[g].bidder == bt[i].bidder; g++) {
        assert_int_equal(got[g].end - got[g].start, 10000);
        assert_int_equal(got[g].start % 10000, 0);
        assert_true(got[g].start > prev_start); /* one result per window */
        assert_true(got[g].bid_count > 0);
        prev_start = got[g].start;
        sum += got[g].bid_count;
      }
      assert_int_equal(sum, (int64_t)(j - i));
      i = j;
    }
    assert_int_equal(g, col.n);
    free(got);
    collector_free(&col);
  }
  free(bt);
}

/* ---------------------------------------------------------------------------------- */
/* q17: statistics per (auction, day)                                                   */

/* (auction, bidder or day, time or index), and the bid's index */
typedef struct pair_ts {
  int64_t auction, bidder, ts;
  size_t i;
} pair_ts_t;

static int cmp_pair_ts(const void *a, const void *b) {
  const pair_ts_t *x = a, *y = b;
  int c = cmp_i64(x->auction, y->auction);
  if (!c) c = cmp_i64(x->bidder, y->bidder);
  if (!c) c = cmp_i64(x->ts, y->ts);
  return c;
}

static int cmp_q17_key(const nx_q17_t *x, const nx_q17_t *y) {
  int c = cmp_i64(x->auction, y->auction);
  return c ? c : cmp_i64(x->day, y->day);
}

static int cmp_q17_rows(const void *a, const void *b) {
  const nx_q17_t *x = a, *y = b;
  int c = cmp_q17_key(x, y);
  return c ? c : cmp_i64(x->total_bids, y->total_bids);
}

static void q17_running_statistics_per_auction_and_day(void **state) {
  events_t *e = *state;
  /* The rows after each bid, in bid order (what parallelism 1 emits in order): the
   * bids grouped by (auction, day) keeping their order, and a running row per group. */
  nx_q17_t *want = malloc(e->nb * sizeof *want);
  pair_ts_t *order = malloc(e->nb * sizeof *order);
  size_t days_seen = 0;
  int64_t prev_day = INT64_MAX;
  for (size_t i = 0; i < e->nb; i++) {
    int64_t day = floor_div(e->bids[i].date_time, 86400000);
    order[i] = (pair_ts_t){e->bids[i].auction, day, (int64_t)i, i};
    if (day != prev_day) {
      days_seen++;
      prev_day = day;
    }
  }
  qsort(order, e->nb, sizeof *order, cmp_pair_ts); /* (auction, day, bid index) */
  nx_q17_t r = {0};
  for (size_t k = 0; k < e->nb; k++) {
    const nx_bid_t *b = &e->bids[order[k].i];
    if (k == 0 || order[k].auction != order[k - 1].auction ||
        order[k].bidder != order[k - 1].bidder)
      r = (nx_q17_t){b->auction, order[k].bidder, 0, 0, 0, 0, INT64_MAX, INT64_MIN, 0, 0};
    r.total_bids++;
    r.rank1_bids += b->price < 10000;
    r.rank2_bids += b->price >= 10000 && b->price < 1000000;
    r.rank3_bids += b->price >= 1000000;
    if (b->price < r.min_price) r.min_price = b->price;
    if (b->price > r.max_price) r.max_price = b->price;
    r.sum_price += b->price;
    r.avg_price = r.sum_price / r.total_bids;
    want[order[k].i] = r;
  }
  free(order);
  assert_int_equal(days_seen, 2); /* the input crosses midnight */
  for (int P = 1; P <= 2; P++) {
    collector_t col;
    run_query(e, "q17", P, &col);
    assert_int_equal(col.n, e->nb);
    nx_q17_t *got = malloc(col.n * sizeof *got);
    for (size_t i = 0; i < col.n; i++) {
      assert_int_equal(col.r[i].value_len, sizeof *got);
      memcpy(&got[i], col.r[i].value, sizeof *got);
    }
    if (P == 1) {
      /* one subtask: the changelog in bid order */
      for (size_t i = 0; i < col.n; i++) {
        assert_memory_equal(&got[i], &want[i], sizeof *got);
        assert_int_equal(col.r[i].ts, e->bids[i].date_time);
      }
    } else {
      /* The order between subtasks is not fixed, but each key's rows come in order
       * 1..n of total_bids and end with the same final row. */
      nx_q17_t *w = malloc(e->nb * sizeof *w);
      memcpy(w, want, e->nb * sizeof *w);
      qsort(w, e->nb, sizeof *w, cmp_q17_rows);
      qsort(got, col.n, sizeof *got, cmp_q17_rows);
      for (size_t i = 0; i < col.n; i++) {
        assert_int_equal(cmp_q17_key(&got[i], &w[i]), 0);
        assert_int_equal(got[i].total_bids, w[i].total_bids);
        bool last = i + 1 == col.n || cmp_q17_key(&got[i], &got[i + 1]) != 0;
        if (last) assert_memory_equal(&got[i], &w[i], sizeof *got);
      }
      free(w);
    }
    free(got);
    collector_free(&col);
  }
  free(want);
}

/* ---------------------------------------------------------------------------------- */
/* q18: last bid per (bidder, auction)                                                  */

static void q18_latest_bid_per_bidder_and_auction(void **state) {
  events_t *e = *state;
  pair_ts_t *all = malloc(e->nb * sizeof *all);
  for (size_t i = 0; i < e->nb; i++)
    all[i] = (pair_ts_t){e->bids[i].auction, e->bids[i].bidder, e->bids[i].date_time, i};
  qsort(all, e->nb, sizeof *all, cmp_pair_ts);
  for (int P = 1; P <= 2; P++) {
    collector_t col;
    run_query(e, "q18", P, &col);
    /* In one subtask every bid is later than the pair's previous one: all are emitted.
     * With two, a bid that arrives after a later one of its pair is not. */
    if (P == 1) assert_int_equal(col.n, e->nb);
    pair_ts_t *got = malloc((col.n + 1) * sizeof *got);
    for (size_t i = 0; i < col.n; i++) {
      nx_bid_t b;
      assert_int_equal(nx_decode_bid(col.r[i].value, col.r[i].value_len, &b), 0);
      got[i] = (pair_ts_t){b.auction, b.bidder, b.date_time, i};
      /* it is one of the generated bids, whole */
      size_t k = (size_t)(b.date_time - BASE); /* one event per ms */
      assert_true(k < e->n);
      assert_int_equal(col.r[i].value_len, e->len[k]);
      assert_memory_equal(col.r[i].value, e->data + e->off[k], e->len[k]);
    }
    /* per pair, in emission order, times increase; the last emitted is the latest */
    qsort(got, col.n, sizeof *got, cmp_pair_ts);
    size_t pairs = 0;
    for (size_t i = 0, j = 0; i < e->nb; i++) {
      bool last_of_pair = i + 1 == e->nb || all[i].auction != all[i + 1].auction ||
                          all[i].bidder != all[i + 1].bidder;
      if (!last_of_pair) continue;
      pairs++;
      size_t prev_i = SIZE_MAX;
      while (j < col.n && got[j].auction == all[i].auction && got[j].bidder == all[i].bidder) {
        assert_true(prev_i == SIZE_MAX || got[j].i > prev_i); /* later in time: emitted later */
        prev_i = got[j].i;
        j++;
      }
      assert_true(j > 0 && got[j - 1].auction == all[i].auction &&
                  got[j - 1].bidder == all[i].bidder);
      assert_int_equal(got[j - 1].ts, all[i].ts);
    }
    assert_true(pairs > 100);
    free(got);
    collector_free(&col);
  }
  free(all);
}

/* ---------------------------------------------------------------------------------- */
/* q19: top 10 per auction                                                              */

typedef struct auction_price {
  int64_t auction, price;
} auction_price_t;

static int cmp_auction_price_desc(const void *a, const void *b) {
  const auction_price_t *x = a, *y = b;
  int c = cmp_i64(x->auction, y->auction);
  return c ? c : cmp_i64(y->price, x->price);
}

static void q19_bids_entering_the_top_10_of_their_auction(void **state) {
  events_t *e = *state;
  /* What one subtask emits, in bid order: each auction's top prices so far, a new bid
   * ranked after the prices >= its own. */
  typedef struct {
    int64_t auction;
    int64_t n, price[10];
  } top_t;
  top_t *tops = calloc(e->na + 64, sizeof *tops);
  size_t *emitted = malloc(e->nb * sizeof *emitted), ne = 0;
  int64_t *rank_of = malloc(e->nb * sizeof *rank_of);
  for (size_t i = 0; i < e->nb; i++) {
    const nx_bid_t *b = &e->bids[i];
    top_t *t = &tops[b->auction - 1000];
    int64_t r = 0;
    while (r < t->n && t->price[r] >= b->price) r++;
    if (r >= 10) continue;
    for (int64_t k = (t->n < 10 ? t->n : 9); k > r; k--) t->price[k] = t->price[k - 1];
    t->price[r] = b->price;
    if (t->n < 10) t->n++;
    rank_of[ne] = r + 1;
    emitted[ne++] = i;
  }
  /* every auction's 10 highest prices */
  auction_price_t *ap = malloc(e->nb * sizeof *ap);
  for (size_t i = 0; i < e->nb; i++)
    ap[i] = (auction_price_t){e->bids[i].auction, e->bids[i].price};
  qsort(ap, e->nb, sizeof *ap, cmp_auction_price_desc);
  for (int P = 1; P <= 2; P++) {
    collector_t col;
    run_query(e, "q19", P, &col);
    auction_price_t *got = malloc((col.n + 1) * sizeof *got);
    for (size_t i = 0; i < col.n; i++) {
      nx_q19_wire_t h;
      nx_bid_t b;
      assert_true(col.r[i].value_len > sizeof h);
      memcpy(&h, col.r[i].value, sizeof h);
      const uint8_t *bid = (const uint8_t *)col.r[i].value + sizeof h;
      size_t blen = col.r[i].value_len - sizeof h;
      assert_int_equal(nx_decode_bid(bid, blen, &b), 0);
      assert_true(h.rank_number >= 1 && h.rank_number <= 10);
      if (P == 1) {
        assert_true(i < ne);
        const nx_bid_t *w = &e->bids[emitted[i]];
        assert_int_equal(b.date_time, w->date_time);
        assert_int_equal(b.auction, w->auction);
        assert_int_equal(h.rank_number, rank_of[i]);
      }
      got[i] = (auction_price_t){b.auction, b.price};
    }
    if (P == 1) assert_int_equal(col.n, ne);
    /* any arrival order: the 10 highest prices emitted for an auction are its 10
     * highest prices */
    qsort(got, col.n, sizeof *got, cmp_auction_price_desc);
    size_t g = 0, auctions = 0;
    for (size_t i = 0; i < e->nb;) {
      size_t j = i;
      while (j < e->nb && ap[j].auction == ap[i].auction) j++;
      size_t k = g;
      while (k < col.n && got[k].auction == ap[i].auction) k++;
      size_t top = j - i < 10 ? j - i : 10;
      assert_true(k - g >= top);
      for (size_t t = 0; t < top; t++) assert_int_equal(got[g + t].price, ap[i + t].price);
      g = k;
      i = j;
      auctions++;
    }
    assert_int_equal(g, col.n);
    assert_true(auctions > 100);
    free(got);
    collector_free(&col);
  }
  free(tops);
  free(emitted);
  free(rank_of);
  free(ap);
}

/* ---------------------------------------------------------------------------------- */

static int setup_events(void **state) {
  events_t *e = malloc(sizeof *e);
  events_make(e, n_events(), RATE, BASE, 42);
  *state = e;
  return 0;
}

static int teardown_events(void **state) {
  events_free(*state);
  free(*state);
  return 0;
}

int main(void) {
  const struct CMUnitTest generator[] = {
      cmocka_unit_test(generator_is_deterministic_by_seed_and_event_number),
      cmocka_unit_test(parallel_source_makes_the_same_events_for_any_parallelism),
      cmocka_unit_test(generator_proportions_ids_and_distributions),
      cmocka_unit_test(codec_round_trips_and_rejects_malformed_values),
  };
  const struct CMUnitTest queries[] = {
      cmocka_unit_test(q0_q1_every_bid_projected_and_converted),
      cmocka_unit_test(q2_bids_of_every_123rd_auction),
      cmocka_unit_test(q3_category_10_auctions_of_sellers_in_or_id_ca),
      cmocka_unit_test(q4_average_winning_price_per_category),
      cmocka_unit_test(q5_auctions_with_the_most_bids_per_sliding_window),
      cmocka_unit_test(q7_bids_with_the_highest_price_per_window),
      cmocka_unit_test(q5_q7_emit_every_tied_maximum),
      cmocka_unit_test(q8_persons_who_opened_auctions_in_their_window),
      cmocka_unit_test(q11_bids_per_bidder_session),
      cmocka_unit_test(q12_every_bid_counted_once_in_processing_time_windows),
      cmocka_unit_test(q17_running_statistics_per_auction_and_day),
      cmocka_unit_test(q18_latest_bid_per_bidder_and_auction),
      cmocka_unit_test(q19_bids_entering_the_top_10_of_their_auction),
  };
  int failed = cmocka_run_group_tests_name("nexmark generator", generator, NULL, NULL);
  failed += cmocka_run_group_tests_name("nexmark queries", queries, setup_events, teardown_events);
  return failed ? 1 : 0;
}
