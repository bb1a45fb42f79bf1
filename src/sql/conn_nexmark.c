/*
 * The nexmark connector: the Nexmark generator (nexmark_gen.h) as a table, with the
 * Nexmark repository's option names ('first-event.rate', 'next-event.rate',
 * 'events.num', 'person.proportion', ...) so that its ddl_gen.sql runs unchanged.
 *
 * Columns are matched by name: event_type INT (0 person, 1 auction, 2 bid) and the ROW
 * columns person, auction and bid with any subset of the events' fields (id, name,
 * emailAddress, creditCard, city, state, dateTime, extra; id, itemName, description,
 * initialBid, reserve, dateTime, expires, seller, category, extra; auction, bidder,
 * price, channel, url, dateTime, extra), of which the row of the event's kind is set and
 * the others are NULL. Subtask s of P makes events s, s + P, ... (every parallelism makes
 * the same events), in order.
 *
 * Departures: the generator's proportions (1:3:46), hot ratios and average sizes are
 * fixed, so other values of those options are refused; the rate is the event-time rate
 * of the generator (events are made as fast as the job takes them, as with Nexmark's
 * default 'rate.limited' = 'false'); event time starts at 2024-01-01T00:00:00Z rather than
 * the wall clock, so runs are reproducible; 'events.num' = '0' (unbounded) makes 2^50
 * events.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sql/exec.h"
#include "sql/nexmark_gen.h"

static const char *const nx_options[] = {"first-event.rate",
                                         "next-event.rate",
                                         "events.num",
                                         "person.proportion",
                                         "auction.proportion",
                                         "bid.proportion",
                                         "rate.shape",
                                         "rate.period",
                                         "rate.limited",
                                         "person.avg-size",
                                         "auction.avg-size",
                                         "bid.avg-size",
                                         "bid.hot-ratio.auctions",
                                         "bid.hot-ratio.bidders",
                                         "auction.hot-ratio.sellers",
                                         "keep-alive",
                                         "stop-at",
                                         "max-emit-speed",
                                         "generator.seed",
                                         NULL};

static const char *const person_fields[] = {
    "id", "name", "emailAddress", "creditCard", "city", "state", "dateTime", "extra", NULL};
static const char *const auction_fields[] = {"id",       "itemName", "description", "initialBid",
                                             "reserve",  "dateTime", "expires",     "seller",
                                             "category", "extra",    NULL};
static const char *const bid_fields[] = {"auction", "bidder",   "price", "channel",
                                         "url",     "dateTime", "extra", NULL};
/* 'n' number, 's' string, 't' time */
static const char person_kinds[] = "nssssstS";
static const char auction_kinds[] = "nssnnttnnS";
static const char bid_kinds[] = "nnnssts";

static int field_index(const char *const *names, const char *name) {
  for (int i = 0; names[i]; i++)
    if (!strcmp(names[i], name)) return i;
  return -1;
}

static bool kind_ok(char k, const sql_type_t *t) {
  switch (k) {
  case 'n': return sql_type_is_integer(t);
  case 't': return sql_type_is_timestamp(t);
  default: return sql_type_is_string(t);
  }
}

static int nfail(char *err, size_t n, const sql_table_t *t, const char *what) {
  if (err) snprintf(err, n, "table '%s': %s", t->name, what);
  return FL_ENOTSUP;
}

static int nx_check(sql_catalog_t *cat, const sql_table_t *t, bool source, char *err, size_t n) {
  static const struct {
    const char *key, *value;
  } fixed[] = {{"person.proportion", "1"},     {"auction.proportion", "3"},
               {"bid.proportion", "46"},       {"bid.hot-ratio.auctions", "2"},
               {"bid.hot-ratio.bidders", "4"}, {"auction.hot-ratio.sellers", "4"},
               {"rate.limited", "false"},      {"person.avg-size", "200b"},
               {"auction.avg-size", "500b"},   {"bid.avg-size", "100b"}};
  char msg[256];
  for (size_t i = 0; i < sizeof fixed / sizeof *fixed; i++) {
    const char *v = sql_table_option(t, fixed[i].key);
    if (v && strcmp(v, fixed[i].value)) {
      snprintf(msg, sizeof msg, "'%s' = '%s' is not supported: this generator's is fixed at '%s'",
               fixed[i].key, v, fixed[i].value);
      return nfail(err, n, t, msg);
    }
  }
  const char *r1 = sql_table_option(t, "first-event.rate"),
             *r2 = sql_table_option(t, "next-event.rate");
  if (r1 && r2 && strcmp(r1, r2))
    return nfail(err, n, t, "first-event.rate and next-event.rate must be equal");
  if (r1 && strtoll(r1, NULL, 10) < 1) return nfail(err, n, t, "first-event.rate must be positive");
  for (int i = 0; i < t->ncols; i++) {
    const sql_column_t *c = &t->cols[i];
    if (c->kind != SQL_COL_PHYSICAL) continue;
    const char *const *names = NULL;
    const char *kinds = NULL;
    if (!strcmp(c->name, "event_type")) {
      if (!sql_type_is_integer(c->type)) return nfail(err, n, t, "event_type must be an integer");
      continue;
    }
    if (!strcmp(c->name, "person"))
      names = person_fields, kinds = person_kinds;
    else if (!strcmp(c->name, "auction"))
      names = auction_fields, kinds = auction_kinds;
    else if (!strcmp(c->name, "bid"))
      names = bid_fields, kinds = bid_kinds;
    if (!names || c->type->kind != T_ROW) {
      snprintf(msg, sizeof msg,
               "column '%s' is not a nexmark column (event_type INT, person, auction, bid ROWs)",
               c->name);
      return nfail(err, n, t, msg);
    }
    for (int f = 0; f < c->type->n_fields; f++) {
      int k = field_index(names, c->type->field_names[f]);
      if (k < 0) {
        snprintf(msg, sizeof msg, "%s has no field '%s'", c->name, c->type->field_names[f]);
        return nfail(err, n, t, msg);
      }
      if (!kind_ok(kinds[k] == 'S' ? 's' : kinds[k], c->type->field_types[f])) {
        snprintf(msg, sizeof msg, "%s.%s has an unsuitable type", c->name, c->type->field_names[f]);
        return nfail(err, n, t, msg);
      }
    }
  }
  return FL_OK;
}

typedef struct nx_col {
  int table_col;
  int what; /* 0 event_type, 1 person, 2 auction, 3 bid */
  const sql_type_t *type;
  int *src; /* per ROW field: index into the event's fields */
} nx_col_t;

typedef struct nx_op {
  sql_opbase_t base;
  const sql_table_t *t;
  nx_gen_t *gen;
  nx_col_t *cols;
  int ncols;
} nx_op_t;

typedef struct nx_inst {
  const nx_op_t *op;
  uint64_t next, step;
  sql_rb_t rb, sub;
  uint8_t buf[NX_MAX_EVENT_BYTES];
} nx_inst_t;

static int nx_open(fl_context_t *ctx, void *opaque, void **instance) {
  nx_inst_t *ni = calloc(1, sizeof *ni);
  if (!ni) return FL_ENOMEM;
  ni->op = opaque;
  ni->next = (uint64_t)fl_ctx_subtask(ctx);
  ni->step = (uint64_t)fl_ctx_parallelism(ctx);
  *instance = ni;
  return FL_OK;
}

static void nx_close(void *instance) {
  nx_inst_t *ni = instance;
  sql_rb_free(&ni->rb);
  sql_rb_free(&ni->sub);
  free(ni);
}

static void set_str(sql_val_t *v, nx_str_t s) {
  v->null = false;
  v->s.p = s.p;
  v->s.n = s.len;
}

static void set_num(sql_val_t *v, int64_t i) {
  v->null = false;
  v->i = i;
}

/* The values of an event's fields, in the order of the field name tables. */
static int event_values(const nx_event_t *e, sql_val_t *v) {
  switch (e->kind) {
  case NX_PERSON: {
    const nx_person_t *p = &e->u.person;
    set_num(&v[0], p->id);
    set_str(&v[1], p->name);
    set_str(&v[2], p->email_address);
    set_str(&v[3], p->credit_card);
    set_str(&v[4], p->city);
    set_str(&v[5], p->state);
    set_num(&v[6], p->date_time);
    set_str(&v[7], p->extra);
    return 1;
  }
  case NX_AUCTION: {
    const nx_auction_t *a = &e->u.auction;
    set_num(&v[0], a->id);
    set_str(&v[1], a->item_name);
    set_str(&v[2], a->description);
    set_num(&v[3], a->initial_bid);
    set_num(&v[4], a->reserve);
    set_num(&v[5], a->date_time);
    set_num(&v[6], a->expires);
    set_num(&v[7], a->seller);
    set_num(&v[8], a->category);
    set_str(&v[9], a->extra);
    return 2;
  }
  default: {
    const nx_bid_t *b = &e->u.bid;
    set_num(&v[0], b->auction);
    set_num(&v[1], b->bidder);
    set_num(&v[2], b->price);
    set_str(&v[3], b->channel);
    set_str(&v[4], b->url);
    set_num(&v[5], b->date_time);
    set_str(&v[6], b->extra);
    return 3;
  }
  }
}

static int nx_run(fl_context_t *ctx, void *instance) {
  nx_inst_t *ni = instance;
  const nx_op_t *op = ni->op;
  const sql_table_t *t = op->t;
  uint64_t total = nx_gen_config(op->gen)->events;
  size_t budget = fl_ctx_source_budget(ctx);
  sql_val_t fields[12];
  for (size_t i = 0; i < budget; i++) {
    if (ni->next >= total) return FL_SOURCE_END;
    int64_t ts;
    size_t len = nx_gen_event(op->gen, ni->next, ni->buf, &ts);
    ni->next += ni->step;
    nx_event_t e;
    if (nx_decode(ni->buf, len, &e) != FL_OK) return fl_ctx_fail(ctx, "nexmark: malformed event");
    int what = event_values(&e, fields);
    /* the nested row first: the outer builder then copies it */
    const uint8_t *sub = NULL;
    size_t sub_len = 0;
    for (int c = 0; c < op->ncols; c++) {
      const nx_col_t *col = &op->cols[c];
      if (col->what != what) continue;
      const sql_type_t *rt = col->type;
      sql_rb_begin(&ni->sub, rt->n_fields);
      for (int f = 0; f < rt->n_fields; f++)
        sql_write_col(&ni->sub, f, rt->field_types[f], &fields[col->src[f]]);
      sub = sql_rb_finish(&ni->sub, &sub_len);
      if (!sub) return FL_ENOMEM;
    }
    sql_rb_begin(&ni->rb, t->ncols);
    for (int c = 0; c < t->ncols; c++) sql_rb_set_null(&ni->rb, c);
    for (int c = 0; c < op->ncols; c++) {
      const nx_col_t *col = &op->cols[c];
      if (col->what == 0) {
        ni->rb.buf[2 + col->table_col / 8] &= (uint8_t) ~(1u << (col->table_col % 8));
        sql_rb_set_i64(&ni->rb, col->table_col, (int64_t)e.kind);
      } else if (col->what == what) {
        ni->rb.buf[2 + col->table_col / 8] &= (uint8_t) ~(1u << (col->table_col % 8));
        sql_rb_set_var(&ni->rb, col->table_col, sub, sub_len);
      }
    }
    const uint8_t *row = sql_rb_finish(&ni->rb, &len);
    if (!row) return FL_ENOMEM;
    int rc = fl_emit(ctx, NULL, 0, row, len, ts);
    if (rc) return rc;
  }
  return FL_SOURCE_MORE;
}

static void nx_destroy(void *opaque) {
  nx_op_t *op = opaque;
  nx_gen_destroy(op->gen);
  op->gen = NULL;
  sql_op_release(op);
}

static const fl_source_fn_t nx_fn = {.version = FL_SOURCE_FN_VERSION,
                                     .open = nx_open,
                                     .run = nx_run,
                                     .close = nx_close,
                                     .destroy = nx_destroy};

static fl_stream_t *nx_table_source(sql_exec_t *x, const sql_table_t *t) {
  nx_config_t cfg;
  nx_config_default(&cfg);
  const char *v;
  if ((v = sql_table_option(t, "first-event.rate"))) cfg.rate = strtoull(v, NULL, 10);
  if ((v = sql_table_option(t, "events.num"))) cfg.events = strtoull(v, NULL, 10);
  if (cfg.events == 0) cfg.events = (UINT64_C(1) << 50);
  if ((v = sql_table_option(t, "generator.seed"))) cfg.seed = strtoull(v, NULL, 10);
  nx_op_t *op = sql_op_new(x->sh, sizeof *op);
  if (!op) return NULL;
  op->t = t;
  op->cols = sql_arena_alloc(x->a, sizeof(nx_col_t) * (size_t)(t->ncols + 1));
  if (!op->cols) {
    sql_op_release(op);
    return NULL;
  }
  for (int i = 0; i < t->ncols; i++) {
    const sql_column_t *c = &t->cols[i];
    if (c->kind != SQL_COL_PHYSICAL) continue;
    nx_col_t *col = &op->cols[op->ncols++];
    col->table_col = i;
    col->type = c->type;
    const char *const *names = NULL;
    if (!strcmp(c->name, "event_type")) {
      col->what = 0;
      continue;
    }
    if (!strcmp(c->name, "person"))
      col->what = 1, names = person_fields;
    else if (!strcmp(c->name, "auction"))
      col->what = 2, names = auction_fields;
    else
      col->what = 3, names = bid_fields;
    col->src = sql_arena_alloc(x->a, sizeof(int) * (size_t)(c->type->n_fields + 1));
    if (!col->src) {
      sql_op_release(op);
      return NULL;
    }
    for (int f = 0; f < c->type->n_fields; f++)
      col->src[f] = field_index(names, c->type->field_names[f]);
  }
  if (nx_gen_new(&op->gen, &cfg) != FL_OK) {
    sql_op_release(op);
    sql_exec_fail(x, FL_EINVAL,
                  "table '%s': cannot make the Nexmark generator (rate %llu, %llu events)", t->name,
                  (unsigned long long)cfg.rate, (unsigned long long)cfg.events);
    return NULL;
  }
  fl_stream_t *s = fl_source(x->env, sql_exec_name(x, t->name), &nx_fn, op, 1);
  return sql_table_finish(x, t, s);
}

const sql_connector_t sql_conn_nexmark = {
    .name = "nexmark", .options = nx_options, .check = nx_check, .source = nx_table_source};
