/*
 * The event generator: realistic shop interactions to raw.events.
 *
 * Users are chosen by a Zipf law (exponent 0.9 over --users: a few users are very
 * active, most rarely). A chosen user acts only when ready: after each event they dwell
 * 2-30 s (event time) before the next, and after a session they are away for 31-50
 * minutes, longer than the job's 30-minute session gap; new users arrive over the first
 * 50 minutes. When the Zipf draws find no ready user, the next ready user in id order is
 * taken, and when there is none the next user in id order acts anyway (the rate wins over
 * the model, spread evenly over the users; the report counts those events).
 *
 * A session is a funnel: views (mostly in the user's three preferred categories), adds to
 * the cart (the product last viewed), removes, a checkout (price = the cart's value), one
 * purchase per cart line, or leaving (abandoning the cart). --flash-sale multiplies the
 * rate by 3 between 40 % and 60 % of the run, sends most views to one category, halves
 * its prices and raises the conversion.
 *
 * Event time: a clock that runs --time-scale times faster than the wall clock (60 by
 * default: the 30-second demo covers half an hour of shopping, so 5-minute windows close
 * and sessions time out). 2 % of events carry a time up to 3 s before the clock
 * (out of order), 0.1 % one 6 to 20 minutes before it (later than the allowed
 * lateness), and 0.01 % are malformed (cut short, not JSON, a field of the wrong type,
 * an unknown event type, a missing field, a zero quantity).
 *
 * Messages are keyed by user_id (all of a user's events in one partition, in order) and
 * carry the producer's time as their Kafka timestamp, which the latency figures start
 * from.
 */
#define _GNU_SOURCE
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "feature_pipeline.h"

#define ZIPF_S 0.9
#define N_PRODUCTS 20000
#define N_CATEGORIES 300
#define CART_MAX 4
#define DWELL_MIN_MS 2000 /* between a user's events in a session */
#define DWELL_MAX_MS 30000
#define AWAY_MIN_MS (31 * 60000) /* after a session: longer than the session gap */
#define AWAY_MAX_MS (50 * 60000)
#define SCAN 512 /* users looked at for a ready one when the draws find none */

typedef struct user {
  int64_t ready_at; /* event time the user may act again */
  int32_t last_view;
  int32_t cart[CART_MAX];
  uint8_t qty[CART_MAX];
  uint8_t n_cart;
  uint8_t stage; /* 0 away or new, 1 browsing, 2 paying (purchases follow a checkout) */
} user_t;

typedef struct product {
  int32_t category;
  int64_t price_cents;
} product_t;

struct fp_gen {
  fp_options_t o;
  rd_kafka_t *rk;
  uint64_t rng;
  double *user_cdf; /* Zipf over user ranks */
  double cat_cdf[N_CATEGORIES];
  product_t *products;
  int32_t *by_category; /* product ids sorted by category */
  int32_t cat_first[N_CATEGORIES + 1];
  user_t *users;
  int64_t start_ts, clock;
  int sale_category;
  long cursor;
  bool sale_on;
  _Atomic int stop;
  fp_gen_stats_t st;
};

static uint64_t next_u64(uint64_t *s) {
  /* xorshift64* */
  uint64_t x = *s;
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  *s = x;
  return x * 0x2545F4914F6CDD1DULL;
}

static double next_unit(uint64_t *s) { return (double)(next_u64(s) >> 11) * 0x1.0p-53; }

static int64_t uniform(uint64_t *s, int64_t lo, int64_t hi) {
  return lo + (int64_t)(next_u64(s) % (uint64_t)(hi - lo + 1));
}

static size_t draw_cdf(const double *cdf, size_t n, double u) {
  size_t lo = 0, hi = n - 1;
  while (lo < hi) {
    size_t mid = (lo + hi) / 2;
    if (cdf[mid] < u)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo;
}

static void zipf_cdf(double *cdf, size_t n, double s) {
  double sum = 0;
  for (size_t k = 0; k < n; k++) sum += pow((double)(k + 1), -s);
  double acc = 0;
  for (size_t k = 0; k < n; k++) {
    acc += pow((double)(k + 1), -s) / sum;
    cdf[k] = acc;
  }
  cdf[n - 1] = 1.0;
}

static int cmp_by_category(const void *a, const void *b, void *arg) {
  const product_t *p = arg;
  int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
  if (p[x].category != p[y].category) return p[x].category < p[y].category ? -1 : 1;
  return x < y ? -1 : x > y;
}

static void dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque) {
  fp_gen_t *g = opaque;
  (void)rk;
  if (m->err)
    atomic_fetch_add(&g->st.failed, 1);
  else
    atomic_fetch_add(&g->st.delivered, 1);
}

fp_gen_t *fp_gen_new(const fp_options_t *o, const char *brokers, int64_t start_ts) {
  fp_gen_t *g = calloc(1, sizeof *g);
  if (!g) return NULL;
  g->o = *o;
  g->rng = o->seed * 0x9E3779B97F4A7C15ULL + 1;
  g->start_ts = g->clock = start_ts;
  atomic_store(&g->st.max_event_ts, start_ts);
  g->user_cdf = malloc((size_t)o->users * sizeof *g->user_cdf);
  g->users = calloc((size_t)o->users, sizeof *g->users);
  g->products = calloc(N_PRODUCTS, sizeof *g->products);
  g->by_category = calloc(N_PRODUCTS, sizeof *g->by_category);
  if (!g->user_cdf || !g->users || !g->products || !g->by_category) {
    fprintf(stderr, "feature_pipeline: out of memory for %ld users\n", o->users);
    fp_gen_free(g);
    return NULL;
  }
  zipf_cdf(g->user_cdf, (size_t)o->users, ZIPF_S);
  zipf_cdf(g->cat_cdf, N_CATEGORIES, 1.1);
  for (int i = 0; i < N_PRODUCTS; i++) {
    product_t *p = &g->products[i];
    p->category = (int32_t)draw_cdf(g->cat_cdf, N_CATEGORIES, next_unit(&g->rng));
    /* log-normal prices: median about 25.00, clamped to [1.00, 5000.00] */
    double u1 = next_unit(&g->rng) + 1e-12, u2 = next_unit(&g->rng);
    double z = sqrt(-2 * log(u1)) * cos(2 * M_PI * u2);
    double dollars = exp(3.2 + 1.0 * z);
    if (dollars < 1) dollars = 1;
    if (dollars > 5000) dollars = 5000;
    p->price_cents = llround(dollars) * 100 - 1; /* shop prices end in .99 */
    if (p->price_cents < 99) p->price_cents = 99;
    g->by_category[i] = i;
  }
  qsort_r(g->by_category, N_PRODUCTS, sizeof *g->by_category, cmp_by_category, g->products);
  for (int c = 0, i = 0; c <= N_CATEGORIES; c++) {
    while (i < N_PRODUCTS && g->products[g->by_category[i]].category < c) i++;
    g->cat_first[c] = i;
  }
  g->sale_category = (int)draw_cdf(g->cat_cdf, N_CATEGORIES, 0.05);
  /* New users become ready at random moments of the first minutes. */
  for (long i = 0; i < o->users; i++) {
    g->users[i].ready_at = start_ts + uniform(&g->rng, 0, AWAY_MAX_MS);
    g->users[i].last_view = -1;
  }
  rd_kafka_conf_t *c = rd_kafka_conf_new();
  char err[512];
  static const char *const kv[] = {"linger.ms",
                                   "5",
                                   "enable.idempotence",
                                   "true",
                                   "queue.buffering.max.messages",
                                   "1000000",
                                   "queue.buffering.max.kbytes",
                                   "1048576",
                                   NULL};
  rd_kafka_conf_set(c, "bootstrap.servers", brokers, NULL, 0);
  for (const char *const *p = kv; *p; p += 2) rd_kafka_conf_set(c, p[0], p[1], NULL, 0);
  rd_kafka_conf_set_dr_msg_cb(c, dr_cb);
  rd_kafka_conf_set_opaque(c, g);
  g->rk = rd_kafka_new(RD_KAFKA_PRODUCER, c, err, sizeof err);
  if (!g->rk) {
    rd_kafka_conf_destroy(c);
    fprintf(stderr, "feature_pipeline: generator producer: %s\n", err);
    fp_gen_free(g);
    return NULL;
  }
  return g;
}

fp_gen_stats_t *fp_gen_stats(fp_gen_t *g) { return &g->st; }
void fp_gen_stop(fp_gen_t *g) { atomic_store(&g->stop, 1); }

void fp_gen_free(fp_gen_t *g) {
  if (!g) return;
  if (g->rk) rd_kafka_destroy(g->rk);
  free(g->user_cdf);
  free(g->users);
  free(g->products);
  free(g->by_category);
  free(g);
}

/* A product of category c (any product when it has none). */
static int32_t product_in(fp_gen_t *g, int c) {
  int32_t lo = g->cat_first[c], hi = g->cat_first[c + 1];
  if (hi <= lo) return (int32_t)uniform(&g->rng, 0, N_PRODUCTS - 1);
  return g->by_category[uniform(&g->rng, lo, hi - 1)];
}

static int64_t price_of(fp_gen_t *g, int32_t product) {
  const product_t *p = &g->products[product];
  return g->sale_on && p->category == g->sale_category ? (p->price_cents + 1) / 2 : p->price_cents;
}

/* A user's preferred category k (0..2), stable per user. */
static int preferred(fp_gen_t *g, long user, int k) {
  uint64_t h = (uint64_t)user * 0x9E3779B97F4A7C15ULL + (uint64_t)k * 0xBF58476D1CE4E5B9ULL;
  h ^= h >> 31;
  h *= 0x94D049BB133111EBULL;
  h ^= h >> 29;
  return (int)draw_cdf(g->cat_cdf, N_CATEGORIES, (double)(h >> 11) * 0x1.0p-53);
}

/* The user's next action; false when they leave (no event: they go away). */
static bool next_action(fp_gen_t *g, long ui, fp_event_t *ev) {
  user_t *u = &g->users[ui];
  double r = next_unit(&g->rng);
  bool sale = g->sale_on;
  if (u->stage == 0)
    u->stage = 1; /* a new session starts with a view */
  else if (u->stage == 2) {
    if (u->n_cart > 0) {
      /* pay for the last cart line */
      u->n_cart--;
      ev->type = FP_PURCHASE;
      ev->product = u->cart[u->n_cart];
      ev->quantity = u->qty[u->n_cart];
      ev->price_cents = price_of(g, ev->product);
      ev->category = g->products[ev->product].category;
      return true;
    }
    u->stage = 1;
    if (r < 0.5) return false;
    r = next_unit(&g->rng);
  } else if (u->n_cart == 0) {
    double add = sale ? 0.30 : 0.18, leave = 0.07;
    if (r >= 1 - leave) return false;
    if (r >= 1 - leave - add && u->last_view >= 0) {
      ev->type = FP_ADD;
      ev->product = u->last_view;
      ev->quantity = (int32_t)uniform(&g->rng, 1, 3);
      u->cart[0] = ev->product;
      u->qty[0] = (uint8_t)ev->quantity;
      u->n_cart = 1;
      goto product_event;
    }
  } else {
    double checkout = sale ? 0.35 : 0.22;
    if (r < 0.07) return false; /* abandons the cart */
    if (r < 0.07 + checkout) {
      int64_t value = 0;
      int32_t top = u->cart[0];
      for (int i = 0; i < u->n_cart; i++) {
        value += price_of(g, u->cart[i]) * u->qty[i];
        if (price_of(g, u->cart[i]) > price_of(g, top)) top = u->cart[i];
      }
      ev->type = FP_CHECKOUT;
      ev->product = top;
      ev->category = g->products[top].category;
      ev->price_cents = value < FP_PRICE_MAX_CENTS ? value : FP_PRICE_MAX_CENTS;
      ev->quantity = 1;
      u->stage = 2;
      return true;
    }
    if (r < 0.07 + checkout + 0.08) {
      int i = (int)uniform(&g->rng, 0, u->n_cart - 1);
      ev->type = FP_REMOVE;
      ev->product = u->cart[i];
      ev->quantity = u->qty[i];
      u->cart[i] = u->cart[u->n_cart - 1];
      u->qty[i] = u->qty[u->n_cart - 1];
      u->n_cart--;
      goto product_event;
    }
    if (r < 0.07 + checkout + 0.20 && u->n_cart < CART_MAX && u->last_view >= 0) {
      ev->type = FP_ADD;
      ev->product = u->last_view;
      ev->quantity = (int32_t)uniform(&g->rng, 1, 3);
      int i = 0;
      while (i < u->n_cart && u->cart[i] != ev->product) i++;
      if (i == u->n_cart) {
        u->cart[i] = ev->product;
        u->qty[i] = 0;
        u->n_cart++;
      }
      int q = u->qty[i] + ev->quantity;
      u->qty[i] = (uint8_t)(q > 9 ? 9 : q);
      goto product_event;
    }
  }
  /* a view: the sale's category, a preferred one, or anything */
  double pr = next_unit(&g->rng);
  int c = sale && pr < 0.6 ? g->sale_category
          : pr < 0.8       ? preferred(g, ui, (int)uniform(&g->rng, 0, 2))
                           : (int)draw_cdf(g->cat_cdf, N_CATEGORIES, next_unit(&g->rng));
  ev->type = FP_VIEW;
  ev->product = product_in(g, c);
  ev->quantity = 1;
  u->last_view = ev->product;
product_event:
  ev->category = g->products[ev->product].category;
  ev->price_cents = price_of(g, ev->product);
  return true;
}

/* A ready user: by the Zipf law first; when the draws find none, the next ready one
 * after a cursor that goes round all users; when even that finds none (the rate asks for
 * more than the users do), the user at the cursor, ready or not (*forced), so that the
 * excess spreads evenly instead of piling onto the most active users. */
static long pick_user(fp_gen_t *g, bool *forced) {
  long n = g->o.users;
  *forced = false;
  for (int i = 0; i < 4; i++) {
    size_t rank = draw_cdf(g->user_cdf, (size_t)n, next_unit(&g->rng));
    /* ranks spread over the ids: the most active user is not u0000000 */
    long u = (long)(((uint64_t)rank * 2654435761ULL) % (uint64_t)n);
    if (g->users[u].ready_at <= g->clock) return u;
  }
  long v = g->cursor;
  for (int i = 0; i < SCAN && i < n; i++) {
    v = g->cursor;
    g->cursor = (g->cursor + 1) % n;
    if (g->users[v].ready_at <= g->clock) return v;
  }
  *forced = true;
  return v;
}

/* The JSON of an event of the user of ev with the given type, price and quantity (JSON
 * texts), and ev's time when with_ts: the base of the malformed variants. */
static int event_json_with(const fp_event_t *ev, const char *type, const char *price,
                           const char *quantity, bool with_ts, char *buf, size_t size) {
  char ts[40] = "";
  if (with_ts) snprintf(ts, sizeof ts, ",\"event_time_ms\":%" PRId64, ev->ts);
  return snprintf(buf, size,
                  "{\"user_id\":\"%s\",\"event_type\":\"%s\",\"product_id\":1,"
                  "\"category_id\":1,\"price\":%s,\"quantity\":%s%s}",
                  ev->user, type, price, quantity, ts);
}

/* Writes a malformed variant of the event's JSON. */
static int malformed(fp_gen_t *g, const fp_event_t *ev, char *buf, size_t size) {
  int n = fp_event_json(ev, buf, size);
  switch (uniform(&g->rng, 0, 5)) {
  case 0: return (int)uniform(&g->rng, 1, n - 2); /* cut short */
  case 1: return snprintf(buf, size, "\x01\xff not json at all");
  case 2: return event_json_with(ev, "view", "\"abc\"", "1", true, buf, size);
  case 3: return event_json_with(ev, "teleport", "1.00", "1", true, buf, size);
  case 4: return event_json_with(ev, "view", "1.00", "1", false, buf, size);
  default: return event_json_with(ev, "purchase", "1.00", "0", true, buf, size);
  }
}

/* One event of a ready user; returns false when the user left instead. */
static bool one_event(fp_gen_t *g) {
  bool forced;
  long ui = pick_user(g, &forced);
  user_t *u = &g->users[ui];
  fp_event_t ev = {0};
  if (!next_action(g, ui, &ev)) {
    /* the session ends: away for longer than the session gap, the cart abandoned */
    u->stage = 0;
    u->n_cart = 0;
    u->last_view = -1;
    u->ready_at = g->clock + uniform(&g->rng, AWAY_MIN_MS, AWAY_MAX_MS);
    return false;
  }
  u->ready_at = g->clock + uniform(&g->rng, DWELL_MIN_MS, DWELL_MAX_MS);
  ev.user_len = (size_t)snprintf(ev.user, sizeof ev.user, "u%07ld", ui);
  ev.ts = g->clock;
  double r = next_unit(&g->rng);
  if (r < 0.001) {
    ev.ts -= uniform(&g->rng, 6 * 60000, 20 * 60000);
    atomic_fetch_add(&g->st.late, 1);
  } else if (r < 0.021) {
    ev.ts -= uniform(&g->rng, 1, FP_OUT_OF_ORDERNESS_MS);
    atomic_fetch_add(&g->st.disordered, 1);
  }
  char buf[512];
  int n;
  if (next_unit(&g->rng) < 0.0001) {
    n = malformed(g, &ev, buf, sizeof buf);
    atomic_fetch_add(&g->st.malformed, 1);
  } else {
    n = fp_event_json(&ev, buf, sizeof buf);
  }
  rd_kafka_resp_err_t e;
  while ((e = rd_kafka_producev(
              g->rk, RD_KAFKA_V_TOPIC(FP_TOPIC_EVENTS), RD_KAFKA_V_KEY(ev.user, ev.user_len),
              RD_KAFKA_V_VALUE(buf, (size_t)n), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
              RD_KAFKA_V_END)) == RD_KAFKA_RESP_ERR__QUEUE_FULL &&
         !atomic_load(&g->stop))
    rd_kafka_poll(g->rk, 1);
  if (e) {
    atomic_fetch_add(&g->st.failed, 1);
    return true;
  }
  atomic_fetch_add(&g->st.produced, 1);
  if (forced) atomic_fetch_add(&g->st.forced, 1);
  return true;
}

void fp_gen_run(fp_gen_t *g) {
  const fp_options_t *o = &g->o;
  int64_t t0 = fp_mono_ms(), last = t0;
  double due = 0; /* events owed so far */
  int64_t made = 0;
  for (;;) {
    int64_t now = fp_mono_ms();
    double elapsed = (double)(now - t0) / 1000;
    if (atomic_load(&g->stop) || (o->seconds > 0 && elapsed >= o->seconds)) break;
    g->sale_on = o->flash_sale && elapsed >= 0.4 * o->seconds && elapsed < 0.6 * o->seconds;
    g->clock = g->start_ts + (int64_t)(elapsed * 1000 * o->time_scale);
    if (g->clock > atomic_load(&g->st.max_event_ts)) atomic_store(&g->st.max_event_ts, g->clock);
    due += (double)(now - last) / 1000 * (double)o->rate * (g->sale_on ? 3 : 1);
    last = now;
    /* at most 50 ms of events at once, so that a slow broker does not make a burst */
    if (due - (double)made > (double)o->rate * 0.05 * 3) made = (int64_t)due - o->rate / 20 * 3;
    int guard = 0;
    while ((double)made < due && !atomic_load(&g->stop)) {
      if (one_event(g))
        made++;
      else if (++guard > 1000000)
        break;
    }
    rd_kafka_poll(g->rk, 0);
    struct timespec ts = {0, 1000000};
    nanosleep(&ts, NULL);
  }
  rd_kafka_flush(g->rk, 30000);
  atomic_store(&g->st.done, 1);
}

/* ---------------------------------------------------------------------------------- */
/* Where a resumed run's clock starts                                                 */

int64_t fp_gen_start_clock(const char *brokers) {
  static const char *const kv[] = {"group.id", "feature_pipeline.clock", "enable.auto.commit",
                                   "false", NULL};
  int64_t best = 0;
  rd_kafka_t *c = fp_kafka_client(RD_KAFKA_CONSUMER, brokers, kv);
  if (!c) return fp_wall_ms();
  int parts = fp_topic_partitions(c, FP_TOPIC_EVENTS);
  rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(parts > 0 ? parts : 1);
  int want = 0;
  for (int p = 0; p < parts; p++) {
    int64_t lo = 0, hi = 0;
    if (rd_kafka_query_watermark_offsets(c, FP_TOPIC_EVENTS, p, &lo, &hi, 5000) || hi <= lo)
      continue;
    rd_kafka_topic_partition_list_add(l, FP_TOPIC_EVENTS, p)->offset = hi - 1;
    want++;
  }
  if (want > 0 && rd_kafka_assign(c, l) == RD_KAFKA_RESP_ERR_NO_ERROR) {
    int64_t deadline = fp_mono_ms() + 10000;
    for (int got = 0; got < want && fp_mono_ms() < deadline;) {
      rd_kafka_message_t *m = rd_kafka_consumer_poll(c, 200);
      if (!m) continue;
      if (!m->err) {
        fp_event_t ev;
        char err[128];
        if (fp_event_parse(m->payload, m->len, &ev, err, sizeof err) == 0 && ev.ts > best)
          best = ev.ts;
        got++;
      }
      rd_kafka_message_destroy(m);
    }
  }
  rd_kafka_topic_partition_list_destroy(l);
  rd_kafka_consumer_close(c);
  rd_kafka_destroy(c);
  return best > 0 ? best + 1000 : fp_wall_ms();
}
