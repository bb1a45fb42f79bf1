/*
 * The per-user feature function: a KeyedProcessFunction keyed by user_id that, for every
 * event it is given, updates the user's state and emits the user's feature vector to
 * features.user. docs/feature-pipeline.md defines every feature; this file is the
 * implementation, in the order the features are listed there.
 *
 * State of one user (all keyed state, so RocksDB holds it and checkpoints carry it):
 *   profile        ValueState   lifetime counters, the price statistics of the last 20
 *                               browsing events, the pending session timer, the largest
 *                               event time seen
 *   session        ValueState   the open session (start, last event, events, its distinct
 *                  TTL 24 h     categories) and its cart (lines, last add, checkout)
 *   recent         ListState    the events of the last hour (16 bytes each), appended,
 *                               rewritten without the expired ones now and then
 *   browse_prices  ListState    the prices of the last browsing (view) events, appended,
 *                               cut back to the last 20 when it holds 40
 *
 * The function only sees events that are not behind their partition's watermark (the
 * lateness step before it decides that, see feature_pipeline_job.c), so an event-time
 * timer never fires for a time an event still to come could fall before. That makes the
 * output the same on every run over the same input, with or without a restore in between:
 * a session closed by its timer and one closed by the user's next event (30 minutes or
 * more later) are closed in the same way, with the same record.
 */
#define _GNU_SOURCE
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "feature_pipeline.h"

static const int64_t RANGES[3] = {60000, 300000, 3600000}; /* 1 min, 5 min, 1 h */
static const char *const RANGE_NAMES[3] = {"1m", "5m", "1h"};

typedef struct profile {
  int64_t purchases, spend_cents;
  int64_t last_purchase_ts; /* 0: never */
  int64_t sessions, abandoned;
  int64_t timer_ts; /* the session timer registered, 0: none */
  int64_t max_ts;   /* the largest event time of the user's events */
  int64_t price_n, price_min, price_max;
  double price_mean, price_std;
} profile_t;

typedef struct session {
  int64_t start, last, events;
  int64_t last_add_ts; /* 0: no add in this session */
  int64_t spend_cents;
  int32_t purchases, checkout_started;
  int32_t n_cats, n_cart;
  /* followed by int32_t cats[n_cats] (sorted) and cart_line_t cart[n_cart] */
} session_t;

typedef struct cart_line {
  int32_t product, qty;
  int64_t price_cents;
} cart_line_t;

/* An entry of `recent`. */
typedef struct recent {
  int64_t ts;
  int32_t amount_cents; /* price x quantity */
  uint32_t cat_type;    /* category << 3 | type */
} recent_t;

struct fp_features {
  fl_state_desc_t *profile, *session, *recent, *prices;
  long preload_bytes;
};

typedef struct inst {
  const fp_features_t *f;
  /* the open session, decoded */
  session_t s;
  bool has_session;
  int32_t *cats;
  size_t cats_cap;
  cart_line_t *cart;
  size_t cart_cap;
  uint8_t *sbuf; /* the session's encoding */
  size_t sbuf_cap;
  recent_t *rec; /* `recent` entries, copied */
  size_t rec_cap;
  int32_t *fcats; /* categories in the last hour, for the affinity */
  size_t fcats_cap;
  int32_t *ftmp; /* the other half of their sort */
  size_t ftmp_cap;
  char *out; /* the record being built */
  size_t out_len, out_cap;
  bool oom;          /* building it ran out of memory */
  fl_bytes_t *views; /* a list to write, as views of rec */
  size_t views_cap;
} inst_t;

fp_features_t *fp_features_new(fl_env_t *env, long preload_bytes) {
  fp_features_t *f = calloc(1, sizeof *f);
  if (!f) return NULL;
  f->profile = fl_state_value(env, "profile");
  f->session = fl_state_value(env, "session");
  f->recent = fl_state_list(env, "recent");
  f->prices = fl_state_list(env, "browse_prices");
  f->preload_bytes = preload_bytes;
  fl_ttl_config_t ttl = {.version = FL_TTL_CONFIG_VERSION,
                         .ttl_ms = FP_SESSION_TTL_MS,
                         .update = FL_TTL_ON_CREATE_AND_WRITE,
                         .visibility = FL_TTL_NEVER_RETURN_EXPIRED};
  if (fl_state_desc_set_ttl(f->session, &ttl)) {
    free(f);
    return NULL;
  }
  return f;
}

/* ---------------------------------------------------------------------------------- */
/* Growing scratch arrays and the output                                              */

static int grow(void **p, size_t *cap, size_t need, size_t elem) {
  if (need <= *cap) return 0;
  size_t nc = *cap ? *cap : 16;
  while (nc < need) nc *= 2;
  void *q = realloc(*p, nc * elem);
  if (!q) return FL_ENOMEM;
  *p = q;
  *cap = nc;
  return 0;
}

/* The writers below note a failed allocation in in->oom; the record is then not emitted
 * and the job fails with FL_ENOMEM (out_end). */
static bool out_reserve(inst_t *in, size_t more) {
  if (in->out_len + more <= in->out_cap) return true;
  size_t nc = in->out_cap * 2;
  while (nc < in->out_len + more) nc *= 2;
  char *q = in->oom ? NULL : realloc(in->out, nc);
  if (!q) {
    in->oom = true;
    return false;
  }
  in->out = q;
  in->out_cap = nc;
  return true;
}

static void out_raw(inst_t *in, const char *s, size_t n) {
  if (!out_reserve(in, n)) return;
  memcpy(in->out + in->out_len, s, n);
  in->out_len += n;
}

static void out_str(inst_t *in, const char *s) { out_raw(in, s, strlen(s)); }

static void out_i64(inst_t *in, int64_t v) {
  char b[24];
  int i = 24;
  uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
  do {
    b[--i] = (char)('0' + u % 10);
    u /= 10;
  } while (u);
  if (v < 0) b[--i] = '-';
  out_raw(in, b + i, (size_t)(24 - i));
}

/* Cents as a decimal amount with two places. */
static void out_cents(inst_t *in, int64_t c) {
  if (c == 0) {
    out_raw(in, "0", 1);
    return;
  }
  if (c < 0) {
    out_raw(in, "-", 1);
    c = -c;
  }
  out_i64(in, c / 100);
  char b[3] = {'.', (char)('0' + c % 100 / 10), (char)('0' + c % 10)};
  out_raw(in, b, 3);
}

/* A double with at most 4 decimals (rounded, trailing zeros dropped); null when it is not
 * finite. */
static void out_f4(inst_t *in, double x) {
  if (!isfinite(x) || fabs(x) > 1e14) {
    if (!isfinite(x)) {
      out_raw(in, "null", 4);
      return;
    }
    char b[32];
    out_raw(in, b, (size_t)snprintf(b, sizeof b, "%.17g", x));
    return;
  }
  int64_t v = llround(x * 10000);
  if (v < 0) {
    out_raw(in, "-", 1);
    v = -v;
  }
  out_i64(in, v / 10000);
  int frac = (int)(v % 10000);
  if (frac) {
    char b[5] = {'.', (char)('0' + frac / 1000), (char)('0' + frac / 100 % 10),
                 (char)('0' + frac / 10 % 10), (char)('0' + frac % 10)};
    size_t n = 5;
    while (b[n - 1] == '0') n--;
    out_raw(in, b, n);
  }
}

static void out_key(inst_t *in, const char *name) {
  out_raw(in, ",\"", 2);
  out_str(in, name);
  out_raw(in, "\":", 2);
}

/* ,"name":[v0,v1,...], each value written by put */
static void out_i64_array(inst_t *in, const char *name, const int64_t *v, int n,
                          void (*put)(inst_t *, int64_t)) {
  out_key(in, name);
  out_raw(in, "[", 1);
  for (int i = 0; i < n; i++) {
    if (i) out_raw(in, ",", 1);
    put(in, v[i]);
  }
  out_raw(in, "]", 1);
}

/* ,"name":<v> */
static void out_i64_field(inst_t *in, const char *name, int64_t v) {
  out_key(in, name);
  out_i64(in, v);
}
static void out_cents_field(inst_t *in, const char *name, int64_t c) {
  out_key(in, name);
  out_cents(in, c);
}
static void out_f4_field(inst_t *in, const char *name, double x) {
  out_key(in, name);
  out_f4(in, x);
}

/* Starts a record: the wire header, then the JSON follows. */
static void out_begin(inst_t *in, char tag, const fp_wire_hdr_t *src) {
  fp_wire_hdr_t h = {.tag = (uint8_t)tag, .partition = -1, .offset = -1, .produced_ms = 0};
  if (src) {
    h.partition = src->partition;
    h.offset = src->offset;
    h.produced_ms = src->produced_ms;
  }
  in->out_len = 0;
  in->oom = false;
  out_raw(in, (const char *)&h, sizeof h);
}

/* Emits the record built since out_begin. */
static int out_end(fl_context_t *ctx, inst_t *in, const void *key, size_t key_len, int64_t ts) {
  if (in->oom) return FL_ENOMEM;
  return fl_emit(ctx, key, key_len, in->out, in->out_len, ts);
}

/* ---------------------------------------------------------------------------------- */
/* State                                                                              */

static int open_inst(fl_context_t *ctx, void *opaque, void **instance) {
  (void)ctx;
  inst_t *in = calloc(1, sizeof *in);
  if (!in) return FL_ENOMEM;
  in->f = opaque;
  in->out_cap = 2048;
  in->out = malloc(in->out_cap);
  if (!in->out) {
    free(in);
    return FL_ENOMEM;
  }
  *instance = in;
  return 0;
}

static void close_inst(void *instance) {
  inst_t *in = instance;
  if (!in) return;
  free(in->cats);
  free(in->cart);
  free(in->sbuf);
  free(in->rec);
  free(in->fcats);
  free(in->ftmp);
  free(in->views);
  free(in->out);
  free(in);
}

static int load_profile(fl_context_t *ctx, inst_t *in, profile_t *p) {
  const void *v;
  size_t n;
  int rc = fl_value_get(ctx, in->f->profile, &v, &n);
  if (rc < 0) return rc;
  memset(p, 0, sizeof *p);
  if (rc == 1) {
    if (n != sizeof *p)
      return fl_ctx_fail(ctx, "profile state of %zu bytes, expected %zu", n, sizeof *p);
    memcpy(p, v, n);
  }
  return 0;
}

static int load_session(fl_context_t *ctx, inst_t *in) {
  const void *v;
  size_t n;
  int rc = fl_value_get(ctx, in->f->session, &v, &n);
  in->has_session = false;
  if (rc <= 0) return rc;
  session_t s;
  if (n < sizeof s) return fl_ctx_fail(ctx, "session state of %zu bytes", n);
  memcpy(&s, v, sizeof s);
  size_t want =
      sizeof s + (size_t)s.n_cats * sizeof(int32_t) + (size_t)s.n_cart * sizeof(cart_line_t);
  if (s.n_cats < 0 || s.n_cart < 0 || n != want)
    return fl_ctx_fail(ctx, "session state of %zu bytes, expected %zu", n, want);
  if (grow((void **)&in->cats, &in->cats_cap, (size_t)s.n_cats + 1, sizeof *in->cats) ||
      grow((void **)&in->cart, &in->cart_cap, (size_t)s.n_cart + 1, sizeof *in->cart))
    return FL_ENOMEM;
  const uint8_t *b = (const uint8_t *)v + sizeof s;
  memcpy(in->cats, b, (size_t)s.n_cats * sizeof(int32_t));
  memcpy(in->cart, b + (size_t)s.n_cats * sizeof(int32_t), (size_t)s.n_cart * sizeof(cart_line_t));
  in->s = s;
  in->has_session = true;
  return 0;
}

static int store_session(fl_context_t *ctx, inst_t *in) {
  const session_t *s = &in->s;
  size_t cl = (size_t)s->n_cats * sizeof(int32_t), kl = (size_t)s->n_cart * sizeof(cart_line_t);
  if (grow((void **)&in->sbuf, &in->sbuf_cap, sizeof *s + cl + kl, 1)) return FL_ENOMEM;
  memcpy(in->sbuf, s, sizeof *s);
  memcpy(in->sbuf + sizeof *s, in->cats, cl);
  memcpy(in->sbuf + sizeof *s + cl, in->cart, kl);
  return fl_value_set(ctx, in->f->session, in->sbuf, sizeof *s + cl + kl);
}

/* ---------------------------------------------------------------------------------- */
/* Sessions                                                                           */

static int64_t cart_items(const inst_t *in) {
  int64_t n = 0;
  for (int i = 0; i < in->s.n_cart; i++) n += in->cart[i].qty;
  return n;
}

static int64_t cart_value(const inst_t *in) {
  int64_t v = 0;
  for (int i = 0; i < in->s.n_cart; i++) v += in->cart[i].qty * in->cart[i].price_cents;
  return v;
}

/* Closes the open session: counts an abandoned cart, emits the session's record to
 * features.user_session and clears the state. The same whether the timer or the next
 * event closes it. */
static int close_session(fl_context_t *ctx, inst_t *in, profile_t *p) {
  const session_t *s = &in->s;
  size_t klen;
  const char *user = fl_ctx_key(ctx, &klen);
  int64_t items = cart_items(in);
  if (items > 0) p->abandoned++;
  out_begin(in, 'E', NULL);
  out_raw(in, "{\"user_id\":\"", 12);
  out_raw(in, user, klen);
  out_raw(in, "\"", 1);
  out_i64_field(in, "session_start_ms", s->start);
  out_i64_field(in, "session_end_ms", s->last);
  out_i64_field(in, "duration_ms", s->last - s->start);
  out_i64_field(in, "events", s->events);
  out_i64_field(in, "categories", s->n_cats);
  out_i64_field(in, "purchases", s->purchases);
  out_cents_field(in, "spend", s->spend_cents);
  out_key(in, "abandoned_cart");
  out_str(in, items > 0 ? "true" : "false");
  out_i64_field(in, "cart_items", items);
  out_cents_field(in, "cart_value", cart_value(in));
  out_raw(in, "}", 1);
  int rc = out_end(ctx, in, user, klen, s->last);
  if (!rc) rc = fl_state_clear(ctx, in->f->session);
  in->has_session = false;
  return rc;
}

static void add_category(inst_t *in, int32_t c) {
  int32_t lo = 0, hi = in->s.n_cats;
  while (lo < hi) {
    int32_t mid = (lo + hi) / 2;
    if (in->cats[mid] < c)
      lo = mid + 1;
    else
      hi = mid;
  }
  if (lo < in->s.n_cats && in->cats[lo] == c) return;
  memmove(in->cats + lo + 1, in->cats + lo, (size_t)(in->s.n_cats - lo) * sizeof *in->cats);
  in->cats[lo] = c;
  in->s.n_cats++;
}

static int cart_find(const inst_t *in, int32_t product) {
  for (int i = 0; i < in->s.n_cart; i++)
    if (in->cart[i].product == product) return i;
  return -1;
}

/* Takes up to qty of product out of the cart. */
static void cart_take(inst_t *in, int32_t product, int32_t qty) {
  int i = cart_find(in, product);
  if (i < 0) return;
  in->cart[i].qty -= qty < in->cart[i].qty ? qty : in->cart[i].qty;
  if (in->cart[i].qty == 0) {
    in->cart[i] = in->cart[in->s.n_cart - 1];
    in->s.n_cart--;
  }
}

/* The session and cart part of an event. */
static int apply_session(fl_context_t *ctx, inst_t *in, profile_t *p, const fp_event_t *ev) {
  int rc;
  if (in->has_session && ev->ts >= in->s.last + FP_SESSION_GAP_MS) {
    rc = close_session(ctx, in, p);
    if (rc) return rc;
  }
  if (!in->has_session) {
    memset(&in->s, 0, sizeof in->s);
    in->s.start = in->s.last = ev->ts;
    in->has_session = true;
    p->sessions++;
  }
  session_t *s = &in->s;
  s->events++;
  if (ev->ts < s->start) s->start = ev->ts;
  if (ev->ts > s->last) s->last = ev->ts;
  if (grow((void **)&in->cats, &in->cats_cap, (size_t)s->n_cats + 1, sizeof *in->cats) ||
      grow((void **)&in->cart, &in->cart_cap, (size_t)s->n_cart + 1, sizeof *in->cart))
    return FL_ENOMEM;
  add_category(in, ev->category);
  int64_t amount = ev->price_cents * ev->quantity;
  switch (ev->type) {
  case FP_ADD: {
    int i = cart_find(in, ev->product);
    if (i < 0 && s->n_cart == FP_CART_MAX_LINES) break; /* a full cart: the add is ignored */
    if (i < 0) {
      i = s->n_cart++;
      in->cart[i] = (cart_line_t){ev->product, 0, ev->price_cents};
    }
    in->cart[i].qty += ev->quantity;
    in->cart[i].price_cents = ev->price_cents; /* the latest price the user saw */
    if (ev->ts > s->last_add_ts) s->last_add_ts = ev->ts;
    break;
  }
  case FP_REMOVE: cart_take(in, ev->product, ev->quantity); break;
  case FP_CHECKOUT: s->checkout_started = 1; break;
  case FP_PURCHASE:
    cart_take(in, ev->product, ev->quantity);
    if (s->n_cart == 0) s->checkout_started = 0; /* the order is complete */
    s->purchases++;
    s->spend_cents += amount;
    p->purchases++;
    p->spend_cents += amount;
    if (ev->ts > p->last_purchase_ts) p->last_purchase_ts = ev->ts;
    break;
  default: break;
  }
  if (s->n_cart == 0) s->last_add_ts = 0;
  /* One timer per user at a time: when it fires for a session that went on, it is set
   * again for the session's new end (fewer timer writes than one per event). */
  if (p->timer_ts == 0) {
    p->timer_ts = s->last + FP_SESSION_GAP_MS;
    rc = fl_timer_register(ctx, FL_EVENT_TIME, p->timer_ts);
    if (rc) return rc;
  }
  return store_session(ctx, in);
}

static int on_timer(fl_context_t *ctx, int64_t ts, fl_time_domain_t domain, void *instance) {
  inst_t *in = instance;
  profile_t p;
  int rc = load_profile(ctx, in, &p);
  if (!rc) rc = load_session(ctx, in);
  if (rc || domain != FL_EVENT_TIME || p.timer_ts != ts) return rc;
  p.timer_ts = 0;
  if (in->has_session) {
    if (in->s.last + FP_SESSION_GAP_MS > ts) {
      p.timer_ts = in->s.last + FP_SESSION_GAP_MS;
      rc = fl_timer_register(ctx, FL_EVENT_TIME, p.timer_ts);
    } else {
      rc = close_session(ctx, in, &p);
      if (!rc) rc = fl_ctx_counter_add(ctx, "sessions-closed-by-timer", 1);
    }
  }
  if (!rc) rc = fl_value_set(ctx, in->f->profile, &p, sizeof p);
  return rc;
}

/* ---------------------------------------------------------------------------------- */
/* The last hour and the last 20 prices                                               */

/* Sorts n categories (non-negative, as `recent` stores them) in ascending order, tmp
 * holding as many: a radix sort a byte at a time that skips a byte all of them share, so
 * ids under 65,536 take two passes. qsort's comparison calls over the ~230 entries of
 * the last hour took 8 % of the job's CPU per event. */
static void sort_cats(int32_t *a, int32_t *tmp, size_t n) {
  if (n < 2) return;
  int32_t *src = a, *dst = tmp;
  for (int shift = 0; shift < 32; shift += 8) {
    size_t at[257] = {0};
    for (size_t i = 0; i < n; i++) at[((uint32_t)src[i] >> shift & 255) + 1]++;
    if (at[((uint32_t)src[0] >> shift & 255) + 1] == n) continue;
    for (int b = 0; b < 256; b++) at[b + 1] += at[b];
    for (size_t i = 0; i < n; i++) dst[at[(uint32_t)src[i] >> shift & 255]++] = src[i];
    int32_t *t = src;
    src = dst;
    dst = t;
  }
  if (src != a) memcpy(a, src, n * sizeof *a);
}

typedef struct windows {
  int64_t count[3][FP_N_TYPES], amount[3][FP_N_TYPES];
  int64_t top[3];
  double share[3], entropy;
  int n_top;
  int64_t hour_events;
} windows_t;

/* Appends the event to `recent` (dropping what no future event can reach) and computes
 * the rolling sums and the category affinity over it. */
static int apply_recent(fl_context_t *ctx, inst_t *in, const profile_t *p, const fp_event_t *ev,
                        windows_t *w) {
  const fl_bytes_t *items;
  size_t n;
  int rc = fl_list_get(ctx, in->f->recent, &items, &n);
  if (rc < 0) return rc;
  if (grow((void **)&in->rec, &in->rec_cap, n + 1, sizeof *in->rec) ||
      grow((void **)&in->fcats, &in->fcats_cap, n + 1, sizeof *in->fcats) ||
      grow((void **)&in->ftmp, &in->ftmp_cap, n + 1, sizeof *in->ftmp))
    return FL_ENOMEM;
  /* A later event of this user is at most FP_OUT_OF_ORDERNESS_MS before the largest time
   * seen, or it would be behind its partition's watermark and not come here. */
  int64_t keep_from = p->max_ts - FP_OUT_OF_ORDERNESS_MS - RANGES[2];
  size_t kept = 0, stale = 0;
  for (size_t i = 0; i < n; i++) {
    if (items[i].len != sizeof(recent_t))
      return fl_ctx_fail(ctx, "recent entry of %zu bytes", items[i].len);
    recent_t r;
    memcpy(&r, items[i].data, sizeof r);
    if (r.ts < keep_from)
      stale++;
    else
      in->rec[kept++] = r;
  }
  recent_t cur = {ev->ts, (int32_t)(ev->price_cents * ev->quantity),
                  (uint32_t)ev->category << 3 | (uint32_t)ev->type};
  in->rec[kept++] = cur;
  if (stale >= 8 && stale * 4 >= n) {
    /* rewrite without the expired entries */
    if (grow((void **)&in->views, &in->views_cap, kept, sizeof *in->views)) return FL_ENOMEM;
    for (size_t i = 0; i < kept; i++) in->views[i] = (fl_bytes_t){&in->rec[i], sizeof(recent_t)};
    rc = fl_list_update(ctx, in->f->recent, in->views, kept);
  } else {
    rc = fl_list_add(ctx, in->f->recent, &cur, sizeof cur);
  }
  if (rc) return rc;
  memset(w, 0, sizeof *w);
  size_t nc = 0;
  for (size_t i = 0; i < kept; i++) {
    const recent_t *r = &in->rec[i];
    if (r->ts > ev->ts) continue; /* after this event: not in its frame */
    int type = (int)(r->cat_type & 7);
    for (int k = 0; k < 3; k++) {
      if (r->ts >= ev->ts - RANGES[k]) {
        w->count[k][type]++;
        w->amount[k][type] += r->amount_cents;
      }
    }
    if (r->ts >= ev->ts - RANGES[2]) in->fcats[nc++] = (int32_t)(r->cat_type >> 3);
  }
  /* category affinity: counts per category, the top 3 (ties: the smaller id), entropy */
  sort_cats(in->fcats, in->ftmp, nc);
  w->hour_events = (int64_t)nc;
  int64_t best[3] = {0, 0, 0};
  for (size_t i = 0; i < nc;) {
    size_t j = i;
    while (j < nc && in->fcats[j] == in->fcats[i]) j++;
    int64_t c = (int64_t)(j - i);
    double q = (double)c / (double)nc;
    w->entropy -= q * log2(q);
    for (int k = 0; k < 3; k++) {
      if (c > best[k]) {
        for (int m = 2; m > k; m--) {
          best[m] = best[m - 1];
          w->top[m] = w->top[m - 1];
        }
        best[k] = c;
        w->top[k] = in->fcats[i];
        break;
      }
    }
    i = j;
  }
  for (int k = 0; k < 3; k++) {
    if (best[k] == 0) break;
    w->share[k] = (double)best[k] / (double)nc;
    w->n_top = k + 1;
  }
  if (w->entropy == 0) w->entropy = 0; /* no -0 */
  return 0;
}

/* The price statistics of the last FP_PRICE_HISTORY browsing events (cached in the
 * profile; recomputed when a view adds a price). */
static int apply_prices(fl_context_t *ctx, inst_t *in, profile_t *p, const fp_event_t *ev) {
  if (ev->type != FP_VIEW) return 0;
  int64_t price = ev->price_cents;
  int rc = fl_list_add(ctx, in->f->prices, &price, sizeof price);
  const fl_bytes_t *items;
  size_t n;
  if (!rc) rc = fl_list_get(ctx, in->f->prices, &items, &n);
  if (rc < 0) return rc;
  rc = 0;
  size_t from = n > FP_PRICE_HISTORY ? n - FP_PRICE_HISTORY : 0;
  int64_t last[FP_PRICE_HISTORY];
  size_t m = 0;
  for (size_t i = from; i < n; i++) {
    if (items[i].len != sizeof(int64_t))
      return fl_ctx_fail(ctx, "price entry of %zu bytes", items[i].len);
    memcpy(&last[m++], items[i].data, sizeof(int64_t));
  }
  double sum = 0;
  p->price_min = INT64_MAX;
  p->price_max = INT64_MIN;
  for (size_t i = 0; i < m; i++) {
    sum += (double)last[i];
    if (last[i] < p->price_min) p->price_min = last[i];
    if (last[i] > p->price_max) p->price_max = last[i];
  }
  double mean = sum / (double)m, var = 0;
  for (size_t i = 0; i < m; i++) var += ((double)last[i] - mean) * ((double)last[i] - mean);
  p->price_n = (int64_t)m;
  p->price_mean = mean / 100;
  p->price_std = sqrt(var / (double)m) / 100;
  if (n >= 2 * FP_PRICE_HISTORY) {
    fl_bytes_t keep[FP_PRICE_HISTORY];
    for (size_t i = 0; i < m; i++) keep[i] = (fl_bytes_t){&last[i], sizeof last[i]};
    rc = fl_list_update(ctx, in->f->prices, keep, m);
  }
  return rc;
}

/* ---------------------------------------------------------------------------------- */
/* The feature vector                                                                 */

static double abandon_risk(int64_t items, int64_t value_cents, double minutes_since_add,
                           int checkout) {
  if (items == 0) return 0;
  double z = -2.0 + 0.35 * (double)(items < 10 ? items : 10) +
             0.4 * log1p((double)value_cents / 100) +
             0.08 * (minutes_since_add < 60 ? minutes_since_add : 60) - 1.5 * checkout;
  return 1 / (1 + exp(-z));
}

static void emit_arrays(inst_t *in, const windows_t *w) {
  char name[16];
  for (int k = 0; k < 3; k++) {
    snprintf(name, sizeof name, "count_%s", RANGE_NAMES[k]);
    out_i64_array(in, name, w->count[k], FP_N_TYPES, out_i64);
    snprintf(name, sizeof name, "amount_%s", RANGE_NAMES[k]);
    out_i64_array(in, name, w->amount[k], FP_N_TYPES, out_cents);
  }
}

static int emit_features(fl_context_t *ctx, inst_t *in, const fp_wire_hdr_t *h,
                         const fp_event_t *ev, const profile_t *p, const windows_t *w) {
  const session_t *s = &in->s;
  out_begin(in, 'F', h);
  out_raw(in, "{\"user_id\":\"", 12);
  out_raw(in, ev->user, ev->user_len);
  out_raw(in, "\"", 1);
  out_i64_field(in, "event_time_ms", ev->ts);
  out_key(in, "event_type");
  out_raw(in, "\"", 1);
  out_str(in, fp_type_names[ev->type]);
  out_raw(in, "\"", 1);
  emit_arrays(in, w);
  out_i64_field(in, "session_start_ms", s->start);
  out_i64_field(in, "session_duration_ms", s->last - s->start);
  out_i64_field(in, "session_events", s->events);
  out_i64_field(in, "session_categories", s->n_cats);
  out_i64_array(in, "top_categories", w->top, w->n_top, out_i64);
  out_key(in, "top_category_shares");
  out_raw(in, "[", 1);
  for (int k = 0; k < w->n_top; k++) {
    if (k) out_raw(in, ",", 1);
    out_f4(in, w->share[k]);
  }
  out_raw(in, "]", 1);
  out_f4_field(in, "category_entropy", w->entropy);
  out_i64_field(in, "price_n", p->price_n);
  if (p->price_n > 0) {
    out_f4_field(in, "price_mean", p->price_mean);
    out_f4_field(in, "price_std", p->price_std);
    out_cents_field(in, "price_min", p->price_min);
    out_cents_field(in, "price_max", p->price_max);
    out_f4_field(in, "price_vs_mean",
                 p->price_mean > 0 ? (double)ev->price_cents / 100 / p->price_mean : NAN);
  } else {
    out_str(in,
            ",\"price_mean\":null,\"price_std\":null,\"price_min\":null,\"price_max\":null,"
            "\"price_vs_mean\":null");
  }
  int64_t items = cart_items(in), value = cart_value(in);
  int64_t since_add = s->last_add_ts > 0 && ev->ts > s->last_add_ts ? ev->ts - s->last_add_ts : 0;
  out_i64_field(in, "cart_items", items);
  out_cents_field(in, "cart_value", value);
  out_key(in, "cart_since_last_add_ms");
  if (s->last_add_ts > 0)
    out_i64(in, since_add);
  else
    out_raw(in, "null", 4);
  out_i64_field(in, "checkout_started", s->checkout_started);
  out_f4_field(in, "abandon_risk",
               abandon_risk(items, value, (double)since_add / 60000, s->checkout_started));
  out_key(in, "since_last_purchase_ms");
  if (p->last_purchase_ts > 0)
    out_i64(in, ev->ts > p->last_purchase_ts ? ev->ts - p->last_purchase_ts : 0);
  else
    out_raw(in, "null", 4);
  out_i64_field(in, "lifetime_purchases", p->purchases);
  out_cents_field(in, "lifetime_spend", p->spend_cents);
  out_i64_field(in, "lifetime_sessions", p->sessions);
  out_i64_field(in, "abandoned_carts", p->abandoned);
  out_raw(in, "}", 1);
  return out_end(ctx, in, ev->user, ev->user_len, ev->ts);
}

/* ---------------------------------------------------------------------------------- */
/* Preloaded state (the benchmark)                                                    */

static int preload(fl_context_t *ctx, inst_t *in, const fl_record_t *rec, const fp_wire_hdr_t *h) {
  uint64_t x = 1469598103934665603ULL;
  for (size_t i = 0; i < rec->key_len; i++)
    x = (x ^ ((const uint8_t *)rec->key)[i]) * 1099511628211ULL;
  int64_t now = h->produced_ms;
  size_t n =
      in->f->preload_bytes > 400 ? (size_t)(in->f->preload_bytes - 400) / sizeof(recent_t) : 1;
  if (grow((void **)&in->rec, &in->rec_cap, n, sizeof *in->rec)) return FL_ENOMEM;
  fl_bytes_t *list = malloc(n * sizeof *list);
  if (!list) return FL_ENOMEM;
  profile_t p;
  memset(&p, 0, sizeof p);
  for (size_t i = 0; i < n; i++) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    int type = x % 100 < 70   ? FP_VIEW
               : x % 100 < 85 ? FP_ADD
               : x % 100 < 95 ? FP_CHECKOUT
                              : FP_PURCHASE;
    in->rec[i] =
        (recent_t){now - 3600000 + (int64_t)(i * 3600000 / n), (int32_t)(500 + (x >> 20) % 20000),
                   (uint32_t)((x >> 40) % 300) << 3 | (uint32_t)type};
    list[i] = (fl_bytes_t){&in->rec[i], sizeof(recent_t)};
    if (type == FP_PURCHASE) {
      p.purchases++;
      p.spend_cents += in->rec[i].amount_cents;
      p.last_purchase_ts = in->rec[i].ts;
    }
  }
  int rc = fl_list_update(ctx, in->f->recent, list, n);
  free(list);
  int64_t prices[FP_PRICE_HISTORY];
  fl_bytes_t pl[FP_PRICE_HISTORY];
  double sum = 0;
  p.price_min = INT64_MAX;
  p.price_max = INT64_MIN;
  for (int i = 0; i < FP_PRICE_HISTORY; i++) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    prices[i] = 500 + (int64_t)(x % 20000);
    pl[i] = (fl_bytes_t){&prices[i], sizeof prices[i]};
    sum += (double)prices[i];
    if (prices[i] < p.price_min) p.price_min = prices[i];
    if (prices[i] > p.price_max) p.price_max = prices[i];
  }
  double mean = sum / FP_PRICE_HISTORY, var = 0;
  for (int i = 0; i < FP_PRICE_HISTORY; i++)
    var += ((double)prices[i] - mean) * ((double)prices[i] - mean);
  p.price_n = FP_PRICE_HISTORY;
  p.price_mean = mean / 100;
  p.price_std = sqrt(var / FP_PRICE_HISTORY) / 100;
  p.sessions = 1 + (int64_t)(x % 50);
  p.max_ts = now;
  if (!rc) rc = fl_list_update(ctx, in->f->prices, pl, FP_PRICE_HISTORY);
  if (!rc) rc = fl_value_set(ctx, in->f->profile, &p, sizeof p);
  if (!rc) rc = fl_ctx_counter_add(ctx, "preloaded", 1);
  return rc;
}

/* ---------------------------------------------------------------------------------- */
/* The function                                                                       */

static int process(fl_context_t *ctx, const fl_record_t *rec, void *instance) {
  inst_t *in = instance;
  fp_wire_event_t w;
  if (rec->value_len < sizeof w.h) return fl_ctx_fail(ctx, "a record of %zu bytes", rec->value_len);
  memcpy(&w.h, rec->value, sizeof w.h);
  if (w.h.tag == FP_TAG_PRELOAD) return preload(ctx, in, rec, &w.h);
  if (w.h.tag != 'V' || rec->value_len != sizeof w)
    return fl_ctx_fail(ctx, "not an event record (tag %d, %zu bytes)", w.h.tag, rec->value_len);
  memcpy(&w, rec->value, sizeof w);
  if (w.h.behind) return fl_ctx_counter_add(ctx, "events-behind-watermark", 1);
  const fp_event_t *ev = &w.ev;
  profile_t p;
  windows_t win;
  int rc = load_profile(ctx, in, &p);
  if (!rc) rc = load_session(ctx, in);
  if (!rc) rc = apply_session(ctx, in, &p, ev);
  if (rc) return rc;
  if (ev->ts > p.max_ts) p.max_ts = ev->ts;
  rc = apply_recent(ctx, in, &p, ev, &win);
  if (!rc) rc = apply_prices(ctx, in, &p, ev);
  if (!rc) rc = fl_value_set(ctx, in->f->profile, &p, sizeof p);
  if (!rc) rc = emit_features(ctx, in, &w.h, ev, &p, &win);
  return rc;
}

static void destroy(void *opaque) { free(opaque); }

const fl_process_fn_t fp_features_fn = {.version = FL_PROCESS_FN_VERSION,
                                        .open = open_inst,
                                        .process = process,
                                        .on_timer = on_timer,
                                        .close = close_inst,
                                        .destroy = destroy};
