/*
 * The Nexmark event generator, its parallel source, and the event format (nexmark_gen.h).
 *
 * Randomness: event n draws from splitmix64 started at mix(seed, n), so an event depends
 * on nothing but (seed, n). Strings are slices at random offsets of two texts made once
 * per generator (letters with a space in about 1 of 13 places, as Flink's
 * StringsGenerator, and letters only for the `extra` padding); a numbered channel's name
 * and URL are written from its number and one of 128 base URLs made once. Everything an
 * event reads fits in about 80 KiB, so making one stays in the CPU's caches: a bid costs
 * about eight random draws, one exp(), two small integer formats and a few memcpy()s.
 */
#include <assert.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sql/nexmark_gen.h"

_Static_assert(sizeof(nx_person_wire_t) == 32, "person layout");
_Static_assert(sizeof(nx_auction_wire_t) == 64, "auction layout");
_Static_assert(sizeof(nx_bid_wire_t) == 40, "bid layout");

#define PROPORTION_TOTAL 50 /* 1 person, 3 auctions, 46 bids */
#define AUCTIONS_PER_EPOCH 3
#define NUM_ACTIVE_PEOPLE 1000
#define NUM_IN_FLIGHT_AUCTIONS 100
#define ID_LEAD 10
#define HOT_RATIO_MODULUS 100 /* hot ids are multiples of 100 */
#define HOT_AUCTION_RATIO 2
#define HOT_BIDDER_RATIO 4
#define HOT_SELLER_RATIO 4
#define HOT_CHANNEL_RATIO 2
#define NUM_CHANNELS 10000
#define AVG_PERSON_BYTES 200
#define AVG_AUCTION_BYTES 500
#define AVG_BID_BYTES 100

/* The texts strings are cut from: TEXT_BYTES of offsets, TEXT_SLACK more bytes so that a
 * slice of up to TEXT_SLACK bytes starting at any offset stays inside. */
#define TEXT_BYTES 32768
#define TEXT_SLACK 1024
/* Base URLs of numbered channels: channel k uses base_url[k % BASE_URLS]. */
#define BASE_URLS 128

static const char *const FIRST_NAMES[] = {"Peter", "Paul",  "Luke",  "John",   "Saul",  "Vicky",
                                          "Kate",  "Julie", "Sarah", "Deiter", "Walter"};
static const char *const LAST_NAMES[] = {"Shultz", "Abrams", "Spencer", "White", "Bartels",
                                         "Walton", "Smith",  "Jones",   "Noris"};
static const char *const STATES[] = {"AZ", "CA", "ID", "OR", "WA", "WY"};
static const char *const CITIES[] = {"Phoenix",  "Los Angeles", "San Francisco", "Boise",
                                     "Portland", "Bend",        "Redmond",       "Seattle",
                                     "Kent",     "Cheyenne"};
static const char HOT_CHANNELS[][16] = {"Google", "Facebook", "Baidu", "Apple"};
static const uint8_t HOT_CHANNEL_LEN[] = {6, 8, 5, 5};
#define N_OF(a) (sizeof(a) / sizeof((a)[0]))

#define MAX_URL 64 /* a base URL: at most 24 + 3 * 5 + 16 = 55 bytes */
#define CHANNEL_ID "&channel_id="

struct nx_gen {
  nx_config_t c;
  char *text;    /* TEXT_BYTES + TEXT_SLACK: letters and spaces */
  char *letters; /* TEXT_BYTES + TEXT_SLACK: letters only */
  char hot_url[N_OF(HOT_CHANNELS)][MAX_URL];
  uint8_t hot_url_len[N_OF(HOT_CHANNELS)];
  char base_url[BASE_URLS][MAX_URL];
  uint8_t base_url_len[BASE_URLS];
};

/* ---------------------------------------------------------------------------------- */
/* Random numbers                                                                       */

static inline uint64_t mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

typedef struct rng {
  uint64_t s;
} rng_t;

static inline uint64_t rng_next(rng_t *r) { return mix64(r->s += 0x9E3779B97F4A7C15ull); }

/* Uniform in [0, n) for n >= 1 (multiply-shift: the bias is below n / 2^64). */
static inline uint64_t rng_below(rng_t *r, uint64_t n) {
  return (uint64_t)(((unsigned __int128)rng_next(r) * n) >> 64);
}

static inline double rng_unit(rng_t *r) { return (double)(rng_next(r) >> 11) * 0x1.0p-53; }

static rng_t event_rng(const nx_gen_t *g, uint64_t n) {
  rng_t r = {mix64(g->c.seed ^ 0x6E65786D61726Bull) ^ mix64(n + 0x632BE59BD9B4E019ull)};
  return r;
}

/* ---------------------------------------------------------------------------------- */
/* Ids, times, prices                                                                   */

nx_kind_t nx_event_kind(uint64_t n) {
  uint64_t off = n % PROPORTION_TOTAL;
  return off == 0 ? NX_PERSON : off <= AUCTIONS_PER_EPOCH ? NX_AUCTION : NX_BID;
}

int64_t nx_event_time(const nx_gen_t *g, uint64_t n) {
  /* n < 2^51 (nx_gen_new), so n * 1000 fits in 64 bits */
  return g->c.base_time + (int64_t)(n * 1000u / g->c.rate);
}

/* The last person id (base 0) made at or before event n. */
static int64_t last_person(uint64_t n) { return (int64_t)(n / PROPORTION_TOTAL); }

/* The last auction id (base 0) made at or before event n; -1 before the first. */
static int64_t last_auction(uint64_t n) {
  int64_t epoch = (int64_t)(n / PROPORTION_TOTAL);
  int64_t off = (int64_t)(n % PROPORTION_TOTAL);
  if (off == 0) return epoch * AUCTIONS_PER_EPOCH - 1;
  if (off > AUCTIONS_PER_EPOCH) return epoch * AUCTIONS_PER_EPOCH + AUCTIONS_PER_EPOCH - 1;
  return epoch * AUCTIONS_PER_EPOCH + off - 1;
}

/* A non-hot person: uniform over the last NUM_ACTIVE_PEOPLE persons and ID_LEAD ahead. */
static int64_t some_person(rng_t *r, uint64_t n) {
  int64_t people = last_person(n) + 1;
  int64_t active = people < NUM_ACTIVE_PEOPLE ? people : NUM_ACTIVE_PEOPLE;
  return people - active + (int64_t)rng_below(r, (uint64_t)(active + ID_LEAD));
}

static int64_t next_price(rng_t *r) {
  /* round(10^(6u) * 100), 10^x computed as e^(x ln 10) */
  return llround(exp(rng_unit(r) * 6.0 * 2.302585092994045684) * 100.0);
}

/* Flink's nextExtra: padding so that the event averages avg bytes, +-20%. */
static size_t extra_len(rng_t *r, size_t current, size_t avg) {
  if (current > avg) return 0;
  size_t d = avg - current;
  size_t delta = (d * 2 + 5) / 10; /* round(d * 0.2) */
  if (delta == 0) return d;
  return d - delta + (size_t)rng_below(r, 2 * delta);
}

/* ---------------------------------------------------------------------------------- */
/* Writing an event                                                                     */

typedef struct writer {
  uint8_t *p;
} writer_t;

static inline void put(writer_t *w, const void *s, size_t len) {
  memcpy(w->p, s, len);
  w->p += len;
}

/* put() for short strings in 16-byte steps: may read up to 15 bytes past s + len (the
 * texts have TEXT_SLACK after every offset, URLs are in MAX_URL arrays) and write up to
 * 15 past the end (event buffers have NX_MAX_EVENT_BYTES, 300 more than the largest
 * event). A generic memcpy of a length known only at run time costs more than the
 * copy itself at these sizes. */
static inline void put16(writer_t *w, const char *s, size_t len) {
  for (size_t i = 0; i < len; i += 16) memcpy(w->p + i, s + i, 16);
  w->p += len;
}

/* A random slice of len bytes of text (len <= TEXT_SLACK). */
/* Writes v in decimal; returns the number of digits. */
static inline size_t put_u32(writer_t *w, uint32_t v) {
  size_t n = 1;
  for (uint32_t t = v; t >= 10; t /= 10) n++;
  for (size_t i = n; i-- > 0; v /= 10) w->p[i] = (uint8_t)('0' + v % 10);
  w->p += n;
  return n;
}

static uint32_t reverse_bits(uint32_t v) {
  v = ((v >> 1) & 0x55555555u) | ((v & 0x55555555u) << 1);
  v = ((v >> 2) & 0x33333333u) | ((v & 0x33333333u) << 2);
  v = ((v >> 4) & 0x0F0F0F0Fu) | ((v & 0x0F0F0F0Fu) << 4);
  v = ((v >> 8) & 0x00FF00FFu) | ((v & 0x00FF00FFu) << 8);
  return (v >> 16) | (v << 16);
}

static inline const char *slice(rng_t *r, const char *text, size_t len) {
  assert(len <= TEXT_SLACK);
  (void)len;
  return text + rng_below(r, TEXT_BYTES);
}

static size_t make_person(const nx_gen_t *g, uint64_t n, int64_t ts, rng_t *r, uint8_t *buf) {
  nx_person_wire_t h = {.kind = NX_PERSON};
  h.id = NX_FIRST_PERSON_ID + last_person(n);
  h.date_time = ts;
  const char *first = FIRST_NAMES[rng_below(r, N_OF(FIRST_NAMES))];
  const char *last = LAST_NAMES[rng_below(r, N_OF(LAST_NAMES))];
  size_t fl = strlen(first), ll = strlen(last);
  size_t user_len = 3 + rng_below(r, 4), host_len = 3 + rng_below(r, 2);
  const char *user = slice(r, g->letters, user_len), *host = slice(r, g->letters, host_len);
  char cc[19];
  for (int i = 0; i < 4; i++) {
    unsigned v = (unsigned)rng_below(r, 10000);
    char *q = cc + i * 5;
    q[0] = (char)('0' + v / 1000);
    q[1] = (char)('0' + v / 100 % 10);
    q[2] = (char)('0' + v / 10 % 10);
    q[3] = (char)('0' + v % 10);
    if (i < 3) q[4] = ' ';
  }
  const char *city = CITIES[rng_below(r, N_OF(CITIES))];
  const char *state = STATES[rng_below(r, N_OF(STATES))];
  h.name_len = (uint16_t)(fl + 1 + ll);
  h.email_len = (uint16_t)(user_len + 1 + host_len + 4);
  h.credit_card_len = sizeof cc;
  h.city_len = (uint16_t)strlen(city);
  h.state_len = (uint16_t)strlen(state);
  size_t current =
      8 + (size_t)h.name_len + h.email_len + h.credit_card_len + h.city_len + h.state_len;
  h.extra_len = (uint16_t)extra_len(r, current, AVG_PERSON_BYTES);
  writer_t w = {buf};
  put(&w, &h, sizeof h);
  put(&w, first, fl);
  put(&w, " ", 1);
  put(&w, last, ll);
  put(&w, user, user_len);
  put(&w, "@", 1);
  put(&w, host, host_len);
  put(&w, ".com", 4);
  put(&w, cc, sizeof cc);
  put(&w, city, h.city_len);
  put(&w, state, h.state_len);
  put16(&w, slice(r, g->letters, h.extra_len), h.extra_len);
  return (size_t)(w.p - buf);
}

static size_t make_auction(const nx_gen_t *g, uint64_t n, int64_t ts, rng_t *r, uint8_t *buf) {
  nx_auction_wire_t h = {.kind = NX_AUCTION};
  h.id = NX_FIRST_AUCTION_ID + last_auction(n);
  if (rng_below(r, HOT_SELLER_RATIO) > 0)
    h.seller = last_person(n) / HOT_RATIO_MODULUS * HOT_RATIO_MODULUS;
  else
    h.seller = some_person(r, n);
  h.seller += NX_FIRST_PERSON_ID;
  h.category = NX_FIRST_CATEGORY + (int64_t)rng_below(r, NX_CATEGORIES);
  h.initial_bid = next_price(r);
  /* The auction runs on average as long as the generator takes for
   * NUM_IN_FLIGHT_AUCTIONS more auctions. */
  uint64_t ahead = (uint64_t)NUM_IN_FLIGHT_AUCTIONS * PROPORTION_TOTAL / AUCTIONS_PER_EPOCH;
  int64_t horizon = nx_event_time(g, n + ahead) - ts;
  h.expires = ts + 1 + (int64_t)rng_below(r, (uint64_t)(horizon * 2 > 1 ? horizon * 2 : 1));
  h.date_time = ts;
  h.item_name_len = (uint16_t)(3 + rng_below(r, 17));
  h.description_len = (uint16_t)(3 + rng_below(r, 97));
  const char *name = slice(r, g->text, h.item_name_len);
  const char *desc = slice(r, g->text, h.description_len);
  h.reserve = h.initial_bid + next_price(r);
  size_t current = 8 + (size_t)h.item_name_len + h.description_len + 5 * 8;
  h.extra_len = (uint16_t)extra_len(r, current, AVG_AUCTION_BYTES);
  writer_t w = {buf};
  put(&w, &h, sizeof h);
  put16(&w, name, h.item_name_len);
  put16(&w, desc, h.description_len);
  put16(&w, slice(r, g->letters, h.extra_len), h.extra_len);
  return (size_t)(w.p - buf);
}

static size_t make_bid(const nx_gen_t *g, uint64_t n, int64_t ts, rng_t *r, uint8_t *buf) {
  nx_bid_wire_t h = {.kind = NX_BID};
  int64_t last = last_auction(n);
  if (rng_below(r, HOT_AUCTION_RATIO) > 0) {
    h.auction = last / HOT_RATIO_MODULUS * HOT_RATIO_MODULUS;
  } else {
    int64_t lo = last > NUM_IN_FLIGHT_AUCTIONS ? last - NUM_IN_FLIGHT_AUCTIONS : 0;
    h.auction = lo + (int64_t)rng_below(r, (uint64_t)(last - lo + 1 + ID_LEAD));
  }
  h.auction += NX_FIRST_AUCTION_ID;
  if (rng_below(r, HOT_BIDDER_RATIO) > 0)
    h.bidder = last_person(n) / HOT_RATIO_MODULUS * HOT_RATIO_MODULUS + 1;
  else
    h.bidder = some_person(r, n);
  h.bidder += NX_FIRST_PERSON_ID;
  h.price = next_price(r);
  h.date_time = ts;
  h.extra_len = (uint16_t)extra_len(r, 4 * 8, AVG_BID_BYTES);
  writer_t w = {buf + sizeof h};
  if (rng_below(r, HOT_CHANNEL_RATIO) > 0) {
    size_t i = (size_t)rng_below(r, N_OF(HOT_CHANNELS));
    h.channel_len = HOT_CHANNEL_LEN[i];
    put16(&w, HOT_CHANNELS[i], h.channel_len);
    h.url_len = g->hot_url_len[i];
    put16(&w, g->hot_url[i], h.url_len);
  } else {
    /* "channel-<k>", and its base URL with "&channel_id=<k's bits reversed>" */
    uint32_t k = (uint32_t)rng_below(r, NUM_CHANNELS);
    put(&w, "channel-", 8);
    h.channel_len = (uint16_t)(8 + put_u32(&w, k));
    put16(&w, g->base_url[k % BASE_URLS], g->base_url_len[k % BASE_URLS]);
    put(&w, CHANNEL_ID, sizeof CHANNEL_ID - 1);
    h.url_len = (uint16_t)(g->base_url_len[k % BASE_URLS] + sizeof CHANNEL_ID - 1 +
                           put_u32(&w, reverse_bits(k) & 0x7FFFFFFFu));
  }
  put16(&w, slice(r, g->letters, h.extra_len), h.extra_len);
  memcpy(buf, &h, sizeof h);
  return (size_t)(w.p - buf);
}

size_t nx_gen_event(const nx_gen_t *g, uint64_t n, void *buf, int64_t *ts) {
  int64_t t = nx_event_time(g, n);
  rng_t r = event_rng(g, n);
  if (ts) *ts = t;
  switch (nx_event_kind(n)) {
  case NX_PERSON: return make_person(g, n, t, &r, buf);
  case NX_AUCTION: return make_auction(g, n, t, &r, buf);
  default: return make_bid(g, n, t, &r, buf);
  }
}

/* ---------------------------------------------------------------------------------- */
/* Generator setup                                                                      */

void nx_config_default(nx_config_t *c) {
  memset(c, 0, sizeof *c);
  c->seed = 42;
  c->events = 10000000;
  c->rate = NX_DEFAULT_RATE;
  c->base_time = NX_DEFAULT_BASE_TIME;
}

/* "https://www.nexmark.com/<seg>/<seg>/<seg>/item.htm?query=1", segments of 3-4
 * letters. Returns the length. */
static size_t base_url(rng_t *r, const char *letters, char *out, size_t cap) {
  char seg[3][5];
  for (int i = 0; i < 3; i++) {
    size_t len = 3 + (size_t)rng_below(r, 2);
    memcpy(seg[i], letters + rng_below(r, TEXT_BYTES), len);
    seg[i][len] = '\0';
  }
  int len = snprintf(out, cap, "https://www.nexmark.com/%s/%s/%s/item.htm?query=1", seg[0], seg[1],
                     seg[2]);
  return len > 0 && (size_t)len < cap ? (size_t)len : 0;
}

int nx_gen_new(nx_gen_t **out, const nx_config_t *c) {
  nx_gen_t *g = NULL;
  int rc = FL_EINVAL;
  if (!out || !c) return FL_EINVAL;
  *out = NULL;
  /* Event times are computed as n * 1000 / rate: keep every time of the run (and of the
   * look-ahead for auction lengths) within int64. */
  if (c->rate == 0 || c->events > (UINT64_C(1) << 50)) goto done; /* + look-ahead < 2^51 */
  int64_t span = (int64_t)((c->events + 4096) * 1000 / c->rate);
  if (c->base_time > INT64_MAX - span || c->base_time < INT64_MIN / 2) goto done;
  rc = FL_ENOMEM;
  g = calloc(1, sizeof *g);
  if (!g) goto done;
  g->c = *c;
  g->text = malloc(TEXT_BYTES + TEXT_SLACK);
  g->letters = malloc(TEXT_BYTES + TEXT_SLACK);
  if (!g->text || !g->letters) goto done;
  rng_t r = {mix64(c->seed ^ 0x74657874ull)};
  for (size_t i = 0; i < TEXT_BYTES + TEXT_SLACK; i++) {
    uint64_t x = rng_next(&r);
    g->letters[i] = (char)('a' + (x >> 8) % 26);
    g->text[i] = x % 13 == 0 ? ' ' : (char)('a' + (x >> 32) % 26);
  }
  for (size_t i = 0; i < N_OF(HOT_CHANNELS); i++) {
    size_t len = base_url(&r, g->letters, g->hot_url[i], MAX_URL);
    if (!len) goto bad_url;
    g->hot_url_len[i] = (uint8_t)len;
  }
  for (size_t i = 0; i < BASE_URLS; i++) {
    size_t len = base_url(&r, g->letters, g->base_url[i], MAX_URL);
    if (!len) goto bad_url;
    g->base_url_len[i] = (uint8_t)len;
  }
  *out = g;
  g = NULL;
  rc = 0;
  goto done;
bad_url:
  rc = FL_EINVAL; /* cannot happen: base URLs are at most 55 bytes */
done:
  nx_gen_destroy(g);
  return rc;
}

void nx_gen_destroy(nx_gen_t *g) {
  if (!g) return;
  free(g->text);
  free(g->letters);
  free(g);
}

const nx_config_t *nx_gen_config(const nx_gen_t *g) { return &g->c; }

/* ---------------------------------------------------------------------------------- */
/* The parallel source                                                                  */

typedef struct source {
  const nx_gen_t *g;
  uint64_t next, step;
  uint8_t buf[NX_MAX_EVENT_BYTES];
} source_t;

static int source_open(fl_context_t *ctx, void *opaque, void **instance) {
  source_t *s = malloc(sizeof *s);
  if (!s) return fl_ctx_fail(ctx, "nexmark source: out of memory");
  s->g = opaque;
  s->next = (uint64_t)fl_ctx_subtask(ctx);
  s->step = (uint64_t)fl_ctx_parallelism(ctx);
  *instance = s;
  return 0;
}

static int source_run(fl_context_t *ctx, void *instance) {
  source_t *s = instance;
  uint64_t end = s->g->c.events;
  for (size_t budget = fl_ctx_source_budget(ctx); budget > 0 && s->next < end; budget--) {
    int64_t ts;
    size_t len = nx_gen_event(s->g, s->next, s->buf, &ts);
    int rc = fl_emit(ctx, NULL, 0, s->buf, len, ts);
    if (rc < 0) return rc;
    s->next += s->step;
  }
  return s->next < end ? FL_SOURCE_MORE : FL_SOURCE_END;
}

static void source_close(void *instance) { free(instance); }

fl_stream_t *nx_source(fl_env_t *env, const nx_gen_t *g) {
  static const fl_source_fn_t fn = {
      .version = FL_SOURCE_FN_VERSION,
      .open = source_open,
      .run = source_run,
      .close = source_close,
  };
  static const fl_watermark_strategy_t ws = {
      .version = FL_WATERMARK_STRATEGY_VERSION,
      .kind = FL_WATERMARKS_BOUNDED,
      .max_out_of_orderness_ms = NX_OUT_OF_ORDERNESS_MS,
  };
  fl_stream_t *events = fl_source(env, "nexmark-generator", &fn, (void *)g, 1);
  return fl_stream_assign_timestamps(events, "nexmark-watermarks", &ws);
}

/* ---------------------------------------------------------------------------------- */
/* Event format                                                                         */

int nx_kind_of(const void *value, size_t len) {
  if (!value || len < 1) return -1;
  uint8_t k = *(const uint8_t *)value;
  size_t need = k == NX_PERSON    ? sizeof(nx_person_wire_t)
                : k == NX_AUCTION ? sizeof(nx_auction_wire_t)
                : k == NX_BID     ? sizeof(nx_bid_wire_t)
                                  : SIZE_MAX;
  return len >= need ? (int)k : -1;
}

size_t nx_encoded_size(const void *value, size_t len) {
  size_t total;
  switch (nx_kind_of(value, len)) {
  case NX_PERSON: {
    nx_person_wire_t h;
    memcpy(&h, value, sizeof h);
    total = sizeof h + (size_t)h.name_len + h.email_len + h.credit_card_len + h.city_len +
            h.state_len + h.extra_len;
    break;
  }
  case NX_AUCTION: {
    nx_auction_wire_t h;
    memcpy(&h, value, sizeof h);
    total = sizeof h + (size_t)h.item_name_len + h.description_len + h.extra_len;
    break;
  }
  case NX_BID: {
    nx_bid_wire_t h;
    memcpy(&h, value, sizeof h);
    total = sizeof h + (size_t)h.channel_len + h.url_len + h.extra_len;
    break;
  }
  default: return 0;
  }
  return total <= len ? total : 0;
}

/* Points the views at n consecutive strings starting at p; false unless they end
 * exactly at end. */
static bool take_strings(const uint8_t *p, const uint8_t *end, const uint16_t *lens,
                         nx_str_t *const *out, size_t n) {
  for (size_t i = 0; i < n; i++) {
    if ((size_t)(end - p) < lens[i]) return false;
    out[i]->p = (const char *)p;
    out[i]->len = lens[i];
    p += lens[i];
  }
  return p == end;
}

int nx_decode_person(const void *value, size_t len, nx_person_t *out) {
  nx_person_wire_t h;
  if (nx_kind_of(value, len) != NX_PERSON) return FL_EPARSE;
  memcpy(&h, value, sizeof h);
  out->id = h.id;
  out->date_time = h.date_time;
  const uint16_t lens[] = {h.name_len, h.email_len, h.credit_card_len,
                           h.city_len, h.state_len, h.extra_len};
  nx_str_t *const views[] = {&out->name, &out->email_address, &out->credit_card,
                             &out->city, &out->state,         &out->extra};
  const uint8_t *p = (const uint8_t *)value;
  return take_strings(p + sizeof h, p + len, lens, views, 6) ? 0 : FL_EPARSE;
}

int nx_decode_auction(const void *value, size_t len, nx_auction_t *out) {
  nx_auction_wire_t h;
  if (nx_kind_of(value, len) != NX_AUCTION) return FL_EPARSE;
  memcpy(&h, value, sizeof h);
  out->id = h.id;
  out->initial_bid = h.initial_bid;
  out->reserve = h.reserve;
  out->date_time = h.date_time;
  out->expires = h.expires;
  out->seller = h.seller;
  out->category = h.category;
  const uint16_t lens[] = {h.item_name_len, h.description_len, h.extra_len};
  nx_str_t *const views[] = {&out->item_name, &out->description, &out->extra};
  const uint8_t *p = (const uint8_t *)value;
  return take_strings(p + sizeof h, p + len, lens, views, 3) ? 0 : FL_EPARSE;
}

int nx_decode_bid(const void *value, size_t len, nx_bid_t *out) {
  nx_bid_wire_t h;
  if (nx_kind_of(value, len) != NX_BID) return FL_EPARSE;
  memcpy(&h, value, sizeof h);
  out->auction = h.auction;
  out->bidder = h.bidder;
  out->price = h.price;
  out->date_time = h.date_time;
  const uint16_t lens[] = {h.channel_len, h.url_len, h.extra_len};
  nx_str_t *const views[] = {&out->channel, &out->url, &out->extra};
  const uint8_t *p = (const uint8_t *)value;
  return take_strings(p + sizeof h, p + len, lens, views, 3) ? 0 : FL_EPARSE;
}

int nx_decode(const void *value, size_t len, nx_event_t *out) {
  switch (nx_kind_of(value, len)) {
  case NX_PERSON: out->kind = NX_PERSON; return nx_decode_person(value, len, &out->u.person);
  case NX_AUCTION: out->kind = NX_AUCTION; return nx_decode_auction(value, len, &out->u.auction);
  case NX_BID: out->kind = NX_BID; return nx_decode_bid(value, len, &out->u.bid);
  default: return FL_EPARSE;
  }
}

/* Writes the fixed part and the strings; 0 if they do not fit. */
static size_t encode_parts(const void *hdr, size_t hdr_len, const nx_str_t *strs, size_t n,
                           void *out, size_t cap) {
  size_t total = hdr_len;
  for (size_t i = 0; i < n; i++) {
    if (strs[i].len > UINT16_MAX || (strs[i].len && !strs[i].p)) return 0;
    total += strs[i].len;
  }
  if (total > cap) return 0;
  writer_t w = {out};
  put(&w, hdr, hdr_len);
  for (size_t i = 0; i < n; i++)
    if (strs[i].len) put(&w, strs[i].p, strs[i].len);
  return total;
}

size_t nx_encode_bid(const nx_bid_t *b, void *out, size_t cap) {
  nx_bid_wire_t h = {.kind = NX_BID,
                     .channel_len = (uint16_t)b->channel.len,
                     .url_len = (uint16_t)b->url.len,
                     .extra_len = (uint16_t)b->extra.len,
                     .auction = b->auction,
                     .bidder = b->bidder,
                     .price = b->price,
                     .date_time = b->date_time};
  const nx_str_t s[] = {b->channel, b->url, b->extra};
  return encode_parts(&h, sizeof h, s, 3, out, cap);
}

size_t nx_encode(const nx_event_t *e, void *out, size_t cap) {
  switch (e->kind) {
  case NX_PERSON: {
    const nx_person_t *p = &e->u.person;
    nx_person_wire_t h = {.kind = NX_PERSON,
                          .name_len = (uint16_t)p->name.len,
                          .email_len = (uint16_t)p->email_address.len,
                          .credit_card_len = (uint16_t)p->credit_card.len,
                          .city_len = (uint16_t)p->city.len,
                          .state_len = (uint16_t)p->state.len,
                          .extra_len = (uint16_t)p->extra.len,
                          .id = p->id,
                          .date_time = p->date_time};
    const nx_str_t s[] = {p->name, p->email_address, p->credit_card, p->city, p->state, p->extra};
    return encode_parts(&h, sizeof h, s, 6, out, cap);
  }
  case NX_AUCTION: {
    const nx_auction_t *a = &e->u.auction;
    nx_auction_wire_t h = {.kind = NX_AUCTION,
                           .item_name_len = (uint16_t)a->item_name.len,
                           .description_len = (uint16_t)a->description.len,
                           .extra_len = (uint16_t)a->extra.len,
                           .id = a->id,
                           .initial_bid = a->initial_bid,
                           .reserve = a->reserve,
                           .date_time = a->date_time,
                           .expires = a->expires,
                           .seller = a->seller,
                           .category = a->category};
    const nx_str_t s[] = {a->item_name, a->description, a->extra};
    return encode_parts(&h, sizeof h, s, 3, out, cap);
  }
  case NX_BID: return nx_encode_bid(&e->u.bid, out, cap);
  }
  return 0;
}

/* ---------------------------------------------------------------------------------- */
/* JSON                                                                                 */

void nx_json_begin(nx_json_t *w, char *out, size_t cap) {
  w->p = out;
  w->cap = cap;
  w->len = 0;
  w->fields = 0;
}

void nx_json_raw(nx_json_t *w, const char *s, size_t n) {
  for (size_t i = 0; i < n; i++, w->len++)
    if (w->len + 1 < w->cap) w->p[w->len] = s[i];
}

/* Writes `{` or `,` and the quoted name with its colon. */
static void field(nx_json_t *w, const char *name) {
  nx_json_raw(w, w->fields++ ? "," : "{", 1);
  nx_json_raw(w, "\"", 1);
  nx_json_raw(w, name, strlen(name));
  nx_json_raw(w, "\":", 2);
}

void nx_json_i64(nx_json_t *w, const char *name, int64_t v) {
  char tmp[32];
  int n = snprintf(tmp, sizeof tmp, "%lld", (long long)v);
  field(w, name);
  nx_json_raw(w, tmp, (size_t)n);
}

void nx_json_number(nx_json_t *w, const char *name, const char *text) {
  field(w, name);
  nx_json_raw(w, text, strlen(text));
}

void nx_json_str(nx_json_t *w, const char *name, const char *s, size_t len) {
  field(w, name);
  nx_json_raw(w, "\"", 1);
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c == '"' || c == '\\') {
      char e[2] = {'\\', (char)c};
      nx_json_raw(w, e, 2);
    } else if (c < 0x20) {
      char e[8];
      snprintf(e, sizeof e, "\\u%04x", c);
      nx_json_raw(w, e, 6);
    } else {
      nx_json_raw(w, (const char *)&s[i], 1);
    }
  }
  nx_json_raw(w, "\"", 1);
}

int nx_json_end(nx_json_t *w) {
  nx_json_raw(w, w->fields ? "}" : "{}", w->fields ? 1 : 2);
  if (w->cap) w->p[w->len < w->cap ? w->len : w->cap - 1] = '\0';
  return (int)w->len;
}

#define JS(w, name, s) nx_json_str(w, name, (s).p, (s).len)

int nx_event_json(const nx_event_t *e, char *out, size_t cap) {
  nx_json_t w;
  nx_json_begin(&w, out, cap);
  switch (e->kind) {
  case NX_PERSON: {
    const nx_person_t *p = &e->u.person;
    nx_json_str(&w, "type", "person", 6);
    nx_json_i64(&w, "id", p->id);
    JS(&w, "name", p->name);
    JS(&w, "emailAddress", p->email_address);
    JS(&w, "creditCard", p->credit_card);
    JS(&w, "city", p->city);
    JS(&w, "state", p->state);
    nx_json_i64(&w, "dateTime", p->date_time);
    JS(&w, "extra", p->extra);
    break;
  }
  case NX_AUCTION: {
    const nx_auction_t *a = &e->u.auction;
    nx_json_str(&w, "type", "auction", 7);
    nx_json_i64(&w, "id", a->id);
    JS(&w, "itemName", a->item_name);
    JS(&w, "description", a->description);
    nx_json_i64(&w, "initialBid", a->initial_bid);
    nx_json_i64(&w, "reserve", a->reserve);
    nx_json_i64(&w, "dateTime", a->date_time);
    nx_json_i64(&w, "expires", a->expires);
    nx_json_i64(&w, "seller", a->seller);
    nx_json_i64(&w, "category", a->category);
    JS(&w, "extra", a->extra);
    break;
  }
  case NX_BID:
    nx_json_str(&w, "type", "bid", 3);
    nx_json_bid_fields(&w, &e->u.bid);
    break;
  default: return FL_EINVAL;
  }
  return nx_json_end(&w);
}

void nx_json_bid_fields(nx_json_t *w, const nx_bid_t *b) {
  nx_json_i64(w, "auction", b->auction);
  nx_json_i64(w, "bidder", b->bidder);
  nx_json_i64(w, "price", b->price);
  JS(w, "channel", b->channel);
  JS(w, "url", b->url);
  nx_json_i64(w, "dateTime", b->date_time);
  JS(w, "extra", b->extra);
}
