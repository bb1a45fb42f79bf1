/*
 * The typed state layer (src/state/state.c) on any backend (kv_contract.h), with
 * fl_sref_t built by hand and a manual processing time (r.now): every state kind,
 * namespace merging, Flink's TTL (update type x visibility, per-item / per-entry
 * expiry, incremental cleanup), and, where the backend drops expired state by itself,
 * that it does so for the state layer's TTL layouts.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "kv_contract.h"
#include "state/state.h"

typedef struct sfx {
  kvc_fx_t *base; /* the store and its table "t" */
  fl_kv_t *kv;
  struct fl_state_desc desc;
  fl_state_scratch_t *s;
  fl_ttl_cleanup_t cl;
  fl_sref_t r;
  int calls; /* reduce / aggregate calls */
  int inits;
} sfx_t;

static const char KEY[] = "user-1";

static int setup(void **state) {
  if (kvc_setup(state)) return -1;
  kvc_fx_t *base = *state;
  sfx_t *f = calloc(1, sizeof *f);
  if (!f || !(f->s = fl_state_scratch_new())) {
    free(f);
    return kvc_teardown(state) - 1;
  }
  f->base = base;
  f->kv = &base->kv;
  f->desc.name = "s";
  f->desc.opaque = f;
  f->r.kv = f->kv;
  f->r.desc = &f->desc;
  f->r.k.kg = 3;
  f->r.k.key = KEY;
  f->r.k.key_len = strlen(KEY);
  f->r.k.ns = "";
  f->r.k.ns_len = 0;
  f->r.cleanup = &f->cl;
  f->r.scratch = f->s;
  f->r.table = base->t;
  *state = f;
  return 0;
}

static int teardown(void **state) {
  sfx_t *f = *state;
  fl_state_scratch_destroy(f->s);
  void *base = f->base;
  free(f);
  return kvc_teardown(&base);
}

static size_t cells(sfx_t *f) { return f->kv->ops->count(f->kv->self, f->r.table); }

static void at_key(sfx_t *f, const char *key) {
  f->r.k.key = key;
  f->r.k.key_len = strlen(key);
}

static void at_ns(sfx_t *f, const char *ns) {
  f->r.k.ns = ns;
  f->r.k.ns_len = strlen(ns);
}

/* Gives the descriptor (its kind already set) a TTL and, like the runtime does when it
 * opens the table, tells a backend that can drop expired state where the timestamps are. */
static void with_ttl(sfx_t *f, int64_t ttl_ms, fl_ttl_update_t u, fl_ttl_visibility_t v) {
  fl_ttl_config_t t = {FL_TTL_CONFIG_VERSION, ttl_ms, u, v, 0, 0};
  assert_int_equal(fl_state_desc_set_ttl(&f->desc, &t), FL_OK);
  if (!f->kv->ops->set_table_ttl) return;
  int layout = f->desc.kind == FL_STATE_LIST  ? FL_KV_TTL_LIST
               : f->desc.kind == FL_STATE_MAP ? FL_KV_TTL_MAP
                                              : FL_KV_TTL_VALUE;
  assert_int_equal(f->kv->ops->set_table_ttl(f->kv->self, f->r.table, layout, ttl_ms), FL_OK);
}

/* The fixture, its state of the given kind. */
static sfx_t *kind_case(void **state, fl_state_kind_t kind) {
  sfx_t *f = *state;
  f->desc.kind = kind;
  return f;
}

/* The fixture of a TTL case: kind, a 10 ms TTL with update type u and visibility v. */
static sfx_t *ttl_case(void **state, fl_state_kind_t kind, fl_ttl_update_t u,
                       fl_ttl_visibility_t v) {
  sfx_t *f = kind_case(state, kind);
  with_ttl(f, 10, u, v);
  return f;
}

/* ---------------------------------------------------------------------------------- */
/* User functions                                                                       */

static int sum_reduce(fl_context_t *ctx, const void *a, size_t al, const void *b, size_t bl,
                      fl_buf_t *out, void *opaque) {
  assert_int_equal(al, 8);
  assert_int_equal(bl, 8);
  int64_t x, y;
  memcpy(&x, a, 8);
  memcpy(&y, b, 8);
  x += y;
  ((sfx_t *)opaque)->calls++;
  return fl_buf_set(out, &x, 8);
}

static int concat_reduce(fl_context_t *ctx, const void *a, size_t al, const void *b, size_t bl,
                         fl_buf_t *out, void *opaque) {
  ((sfx_t *)opaque)->calls++;
  int rc = fl_buf_set(out, a, al);
  return rc ? rc : fl_buf_append(out, b, bl);
}

static int failing_reduce(fl_context_t *ctx, const void *a, size_t al, const void *b, size_t bl,
                          fl_buf_t *out, void *opaque) {
  return 5; /* positive: not an fl_err_t */
}

typedef struct avg {
  int64_t sum;
  int64_t count;
} avg_t;

static void avg_init(void *acc, void *opaque) {
  avg_t *a = acc;
  assert_int_equal((uintptr_t)acc % 8, 0);
  assert_int_equal(a->sum, 0);
  a->count = 0;
  ((sfx_t *)opaque)->inits++;
}

static int avg_add(fl_context_t *ctx, void *acc, const fl_record_t *in, void *opaque) {
  avg_t *a = acc;
  int64_t v;
  assert_int_equal(in->value_len, 8);
  memcpy(&v, in->value, 8);
  if (v < 0) return FL_EUSER;
  a->sum += v;
  a->count++;
  ((sfx_t *)opaque)->calls++;
  return 0;
}

static void avg_merge(void *acc, const void *other, void *opaque) {
  avg_t *a = acc;
  const avg_t *o = other;
  a->sum += o->sum;
  a->count += o->count;
}

static void use_reduce(sfx_t *f, fl_reduce_fn fn) {
  f->desc.kind = FL_STATE_REDUCING;
  f->desc.reduce = fn;
}

static void use_avg(sfx_t *f) {
  f->desc.kind = FL_STATE_AGGREGATING;
  f->desc.agg = (fl_aggregate_fn_t){
      FL_AGGREGATE_FN_VERSION, sizeof(avg_t), avg_init, avg_add, avg_merge, NULL, NULL};
}

static fl_record_t rec_i64(const int64_t *v) {
  fl_record_t r = {NULL, 0, v, 8, FL_TS_NONE};
  return r;
}

/* ---------------------------------------------------------------------------------- */
/* Assertions                                                                           */

static void value_is(sfx_t *f, const char *want) {
  const void *v = NULL;
  size_t n = 0;
  int rc = fl_st_value_get(&f->r, &v, &n);
  kvc_assert_found(rc, v, n, want);
}

/* items: "a,b,c" ("" for none) */
static void list_is(sfx_t *f, const char *want) {
  const fl_bytes_t *items = NULL;
  size_t n = 99;
  int rc = fl_st_list_get(&f->r, &items, &n);
  assert_true(rc >= 0);
  char got[512] = "";
  size_t gl = 0;
  for (size_t i = 0; i < n; i++) {
    assert_int_equal((uintptr_t)items[i].data % 8, 0);
    if (i) got[gl++] = ',';
    memcpy(got + gl, items[i].data, items[i].len);
    gl += items[i].len;
  }
  got[gl] = 0;
  assert_string_equal(got, want);
  assert_int_equal(rc, n > 0 ? 1 : 0);
}

static void map_is(sfx_t *f, const char *uk, const char *want) {
  const void *v = NULL;
  size_t n = 0;
  int rc = fl_st_map_get(&f->r, uk, strlen(uk), &v, &n);
  kvc_assert_found(rc, v, n, want);
}

static void reduced_is(sfx_t *f, int64_t want) {
  const void *v;
  size_t n;
  int64_t got;
  assert_int_equal(fl_st_reducing_get(&f->r, &v, &n), 1);
  assert_int_equal(n, 8);
  memcpy(&got, v, 8);
  assert_int_equal(got, want);
}

static void avg_is(sfx_t *f, int64_t sum, int64_t count) {
  const void *acc;
  assert_int_equal(fl_st_aggregating_get(&f->r, &acc), 1);
  const avg_t *a = acc;
  assert_int_equal(a->sum, sum);
  assert_int_equal(a->count, count);
}

static int add_i64(sfx_t *f, int64_t v) { return fl_st_reducing_add(&f->r, &v, 8); }

static int agg_i64(sfx_t *f, int64_t v) {
  fl_record_t in = rec_i64(&v);
  return fl_st_aggregating_add(&f->r, &in);
}

/* f at processing time now (for the calls that take it: at(f, 105)). */
static sfx_t *at(sfx_t *f, int64_t now) {
  f->r.now = now;
  return f;
}

static void value_set(sfx_t *f, const char *v) {
  assert_int_equal(fl_st_value_set(&f->r, v, strlen(v)), FL_OK);
}

static void list_add(sfx_t *f, const char *item) {
  assert_int_equal(fl_st_list_add(&f->r, item, strlen(item)), FL_OK);
}

static void map_put(sfx_t *f, const char *uk, const char *v) {
  assert_int_equal(fl_st_map_put(&f->r, uk, strlen(uk), v, strlen(v)), FL_OK);
}

/* ---------------------------------------------------------------------------------- */
/* Value                                                                                */

static void value_set_then_get_returns_the_last_value(void **state) {
  sfx_t *f = kind_case(state, FL_STATE_VALUE);
  value_is(f, NULL);
  assert_int_equal(fl_st_value_set(&f->r, "hello", 5), FL_OK);
  value_is(f, "hello");
  assert_int_equal(fl_st_value_set(&f->r, "bye", 3), FL_OK);
  value_is(f, "bye");
  at_key(f, "user-2");
  value_is(f, NULL);
  at_key(f, KEY);
  assert_int_equal(fl_st_clear(&f->r), FL_OK);
  value_is(f, NULL);
  assert_int_equal(cells(f), 0);
}

/* The bytes get returned, written back in part: without TTL (the backend's own value)
 * and with it (the state layer's unwrapped copy). */
static void value_set_accepts_a_pointer_from_get(void **state) {
  sfx_t *f = kind_case(state, FL_STATE_VALUE);
  const void *v;
  size_t n;
  assert_int_equal(fl_st_value_set(&f->r, "hello", 5), FL_OK);
  assert_int_equal(fl_st_value_get(&f->r, &v, &n), 1);
  assert_int_equal(fl_st_value_set(&f->r, (const char *)v + 1, 3), FL_OK);
  value_is(f, "ell");
  assert_int_equal(fl_st_clear(&f->r), FL_OK);
  with_ttl(f, 100, FL_TTL_ON_READ_AND_WRITE, FL_TTL_NEVER_RETURN_EXPIRED);
  assert_int_equal(fl_st_value_set(&f->r, "abcdef", 6), FL_OK);
  assert_int_equal(fl_st_value_get(&f->r, &v, &n), 1);
  assert_int_equal(fl_st_value_set(&f->r, (const char *)v + 2, 4), FL_OK);
  value_is(f, "cdef");
}

static void calls_with_a_descriptor_of_another_kind_return_estate(void **state) {
  sfx_t *f = *state;
  const void *v;
  size_t n;
  const fl_bytes_t *items;
  int64_t x = 1;
  fl_record_t in = rec_i64(&x);
  f->desc.kind = FL_STATE_LIST;
  assert_int_equal(fl_st_value_get(&f->r, &v, &n), FL_ESTATE);
  assert_int_equal(fl_st_value_set(&f->r, "x", 1), FL_ESTATE);
  assert_int_equal(fl_st_map_get(&f->r, "k", 1, &v, &n), FL_ESTATE);
  assert_int_equal(fl_st_map_put(&f->r, "k", 1, "v", 1), FL_ESTATE);
  assert_int_equal(fl_st_map_remove(&f->r, "k", 1), FL_ESTATE);
  assert_int_equal(fl_st_reducing_add(&f->r, &x, 8), FL_ESTATE);
  assert_int_equal(fl_st_reducing_get(&f->r, &v, &n), FL_ESTATE);
  assert_int_equal(fl_st_aggregating_add(&f->r, &in), FL_ESTATE);
  assert_int_equal(fl_st_aggregating_get(&f->r, &v), FL_ESTATE);
  f->desc.kind = FL_STATE_VALUE;
  assert_int_equal(fl_st_list_add(&f->r, "x", 1), FL_ESTATE);
  assert_int_equal(fl_st_list_get(&f->r, &items, &n), FL_ESTATE);
  assert_int_equal(fl_st_list_update(&f->r, NULL, 0), FL_ESTATE);
  assert_int_equal(fl_st_merge_namespace(&f->r, "w", 1), FL_ESTATE);
  f->desc.kind = FL_STATE_MAP;
  assert_int_equal(fl_st_merge_namespace(&f->r, "w", 1), FL_ESTATE);
  assert_int_equal(cells(f), 0);
}

/* ---------------------------------------------------------------------------------- */
/* List                                                                                 */

static void list_add_then_get_returns_items_in_order(void **state) {
  sfx_t *f = kind_case(state, FL_STATE_LIST);
  list_is(f, "");
  list_add(f, "a");
  list_add(f, "");
  list_add(f, "ccc");
  list_add(f, "0123456789abcdefg");
  list_is(f, "a,,ccc,0123456789abcdefg");
  at_ns(f, "w");
  list_is(f, "");
}

static void list_update_replaces_and_an_empty_update_clears(void **state) {
  sfx_t *f = kind_case(state, FL_STATE_LIST);
  list_add(f, "old");
  fl_bytes_t items[] = {{"x", 1}, {"yy", 2}, {"zzz", 3}};
  assert_int_equal(fl_st_list_update(&f->r, items, 3), FL_OK);
  list_is(f, "x,yy,zzz");
  assert_int_equal(fl_st_list_update(&f->r, NULL, 0), FL_OK);
  list_is(f, "");
  assert_int_equal(cells(f), 0);
  fl_bytes_t bad = {NULL, 3};
  assert_int_equal(fl_st_list_update(&f->r, &bad, 1), FL_EINVAL);
}

static void list_update_accepts_the_views_list_get_returned(void **state) {
  sfx_t *f = kind_case(state, FL_STATE_LIST);
  list_add(f, "one");
  list_add(f, "two");
  list_add(f, "three");
  const fl_bytes_t *items;
  size_t n;
  assert_int_equal(fl_st_list_get(&f->r, &items, &n), 1);
  fl_bytes_t rev[3] = {items[2], items[1], items[0]};
  assert_int_equal(fl_st_list_update(&f->r, rev, 3), FL_OK);
  list_is(f, "three,two,one");
}

/* ---------------------------------------------------------------------------------- */
/* Map                                                                                  */

typedef struct collect {
  char buf[256];
  int stop_at; /* stop (returning 42) at this call, 0: never */
  int n;
} collect_t;

static int collect_cb(const void *uk, size_t ukl, const void *v, size_t vl, void *arg) {
  collect_t *c = arg;
  size_t l = strlen(c->buf);
  snprintf(c->buf + l, sizeof c->buf - l, "%s%.*s=%.*s", l ? "," : "", (int)ukl, (const char *)uk,
           (int)vl, (const char *)v);
  return ++c->n == c->stop_at ? 42 : 0;
}

/* The map's entries, "k=v,k=v" sorted by key: as the backend walks them if it walks in
 * order (KVC_ORDERED), else sorted here. */
static void entries_are(sfx_t *f, const char *want) {
  collect_t c = {"", 0, 0};
  assert_int_equal(fl_st_map_foreach(&f->r, collect_cb, &c), 0);
  if (f->base->b->flags & KVC_ORDERED) {
    assert_string_equal(c.buf, want);
    return;
  }
  /* sort the comma-separated parts (few, short) */
  char *parts[16];
  int np = 0;
  for (char *p = strtok(c.buf, ","); p && np < 16; p = strtok(NULL, ",")) parts[np++] = p;
  for (int i = 0; i < np; i++)
    for (int j = i + 1; j < np; j++)
      if (strcmp(parts[j], parts[i]) < 0) {
        char *t = parts[i];
        parts[i] = parts[j];
        parts[j] = t;
      }
  char got[256] = "";
  for (int i = 0; i < np; i++) {
    if (i) strcat(got, ",");
    strcat(got, parts[i]);
  }
  assert_string_equal(got, want);
}

static void map_put_get_remove_and_foreach(void **state) {
  sfx_t *f = kind_case(state, FL_STATE_MAP);
  map_is(f, "a", NULL);
  map_put(f, "a", "1");
  map_put(f, "b", "2");
  map_put(f, "a", "11");
  map_is(f, "a", "11");
  map_is(f, "b", "2");
  entries_are(f, "a=11,b=2");
  collect_t c = {"", 1, 0};
  assert_int_equal(fl_st_map_foreach(&f->r, collect_cb, &c), 42);
  assert_int_equal(c.n, 1);
  assert_int_equal(fl_st_map_remove(&f->r, "a", 1), FL_OK);
  map_is(f, "a", NULL);
  entries_are(f, "b=2");
  assert_int_equal(fl_st_clear(&f->r), FL_OK);
  entries_are(f, "");
  assert_int_equal(cells(f), 0);
}

/* ---------------------------------------------------------------------------------- */
/* Reducing and aggregating                                                             */

static void reducing_add_folds_with_the_reduce_function(void **state) {
  sfx_t *f = *state;
  use_reduce(f, sum_reduce);
  const void *v;
  size_t n;
  assert_int_equal(fl_st_reducing_get(&f->r, &v, &n), 0);
  assert_int_equal(add_i64(f, 5), FL_OK);
  assert_int_equal(f->calls, 0); /* the first value is stored as is */
  assert_int_equal(add_i64(f, 7), FL_OK);
  assert_int_equal(add_i64(f, -2), FL_OK);
  reduced_is(f, 10);
  assert_int_equal(f->calls, 2);
}

static void reducing_add_reports_a_failing_reduce_and_keeps_the_value(void **state) {
  sfx_t *f = *state;
  use_reduce(f, sum_reduce);
  assert_int_equal(add_i64(f, 5), FL_OK);
  f->desc.reduce = failing_reduce;
  assert_int_equal(add_i64(f, 7), FL_EUSER);
  reduced_is(f, 5);
}

static void aggregating_add_inits_once_then_adds(void **state) {
  sfx_t *f = *state;
  use_avg(f);
  const void *acc;
  assert_int_equal(fl_st_aggregating_get(&f->r, &acc), 0);
  assert_int_equal(agg_i64(f, 1), FL_OK);
  assert_int_equal(agg_i64(f, 2), FL_OK);
  assert_int_equal(agg_i64(f, 3), FL_OK);
  avg_is(f, 6, 3);
  assert_int_equal(f->inits, 1);
  assert_int_equal(fl_st_aggregating_get(&f->r, &acc), 1);
  assert_int_equal((uintptr_t)acc % 16, 0);
  /* a failing add changes nothing */
  assert_int_equal(agg_i64(f, -1), FL_EUSER);
  avg_is(f, 6, 3);
}

/* A window's result read as its contents go (fl_st_take): one call on a backend that
 * can (kv ops take), FL_ENOTSUP and nothing changed on one that cannot, and with TTL. */
static void take_reads_the_result_and_removes_the_cell(void **state) {
  sfx_t *f = *state;
  bool can = f->kv->ops->version >= 5 && f->kv->ops->take;
  use_avg(f);
  assert_int_equal(agg_i64(f, 4), FL_OK);
  assert_int_equal(agg_i64(f, 6), FL_OK);
  at_key(f, "user-2");
  assert_int_equal(agg_i64(f, 1), FL_OK);
  at_key(f, KEY);
  const void *acc = NULL;
  size_t n = 0;
  int rc = fl_st_take(&f->r, &acc, &n);
  if (!can) {
    assert_int_equal(rc, FL_ENOTSUP);
    avg_is(f, 10, 2);
    return;
  }
  assert_int_equal(rc, 1);
  assert_int_equal(n, sizeof(avg_t));
  assert_int_equal(((const avg_t *)acc)->sum, 10);
  assert_int_equal(((const avg_t *)acc)->count, 2);
  assert_int_equal(fl_st_aggregating_get(&f->r, &acc), 0);
  assert_int_equal(cells(f), 1);
  assert_int_equal(fl_st_take(&f->r, &acc, &n), 0);
  at_key(f, "user-2");
  avg_is(f, 1, 1);
  /* reducing state: its value */
  f->desc.kind = FL_STATE_REDUCING;
  f->desc.reduce = sum_reduce;
  at_key(f, "user-3");
  assert_int_equal(add_i64(f, 5), FL_OK);
  assert_int_equal(add_i64(f, 7), FL_OK);
  assert_int_equal(fl_st_take(&f->r, &acc, &n), 1);
  int64_t got;
  assert_int_equal(n, 8);
  memcpy(&got, acc, 8);
  assert_int_equal(got, 12);
  const void *v;
  assert_int_equal(fl_st_reducing_get(&f->r, &v, &n), 0);
  /* other kinds are not results */
  f->desc.kind = FL_STATE_VALUE;
  assert_int_equal(fl_st_take(&f->r, &acc, &n), FL_ESTATE);
  assert_int_equal(fl_st_take(NULL, &acc, &n), FL_EINVAL);
}

/* ---------------------------------------------------------------------------------- */
/* Merging namespaces                                                                   */

static void merge_namespace_appends_the_source_list_after_the_target(void **state) {
  sfx_t *f = kind_case(state, FL_STATE_LIST);
  at_ns(f, "w2");
  list_add(f, "b");
  list_add(f, "c");
  at_ns(f, "w1");
  list_add(f, "a");
  assert_int_equal(fl_st_merge_namespace(&f->r, "w2", 2), FL_OK);
  list_is(f, "a,b,c");
  at_ns(f, "w2");
  list_is(f, "");
  assert_int_equal(cells(f), 1);
  /* into an absent target; from an absent source */
  at_ns(f, "w3");
  assert_int_equal(fl_st_merge_namespace(&f->r, "w1", 2), FL_OK);
  list_is(f, "a,b,c");
  assert_int_equal(fl_st_merge_namespace(&f->r, "w9", 2), FL_OK);
  list_is(f, "a,b,c");
  assert_int_equal(fl_st_merge_namespace(&f->r, "w3", 2), FL_OK); /* itself: no-op */
  list_is(f, "a,b,c");
  assert_int_equal(cells(f), 1);
}

static void merge_namespace_reduces_target_then_source(void **state) {
  sfx_t *f = *state;
  use_reduce(f, concat_reduce);
  at_ns(f, "w2");
  assert_int_equal(fl_st_reducing_add(&f->r, "src", 3), FL_OK);
  at_ns(f, "w1");
  assert_int_equal(fl_st_reducing_add(&f->r, "dst", 3), FL_OK);
  assert_int_equal(fl_st_merge_namespace(&f->r, "w2", 2), FL_OK);
  const void *v;
  size_t n;
  assert_int_equal(fl_st_reducing_get(&f->r, &v, &n), 1);
  assert_int_equal(n, 6);
  assert_memory_equal(v, "dstsrc", 6);
  assert_int_equal(cells(f), 1);
  at_ns(f, "w0");
  assert_int_equal(fl_st_merge_namespace(&f->r, "w1", 2), FL_OK); /* target absent */
  assert_int_equal(fl_st_reducing_get(&f->r, &v, &n), 1);
  assert_int_equal(n, 6);
  assert_memory_equal(v, "dstsrc", 6);
  assert_int_equal(f->calls, 1);
  assert_int_equal(cells(f), 1);
}

static void merge_namespace_merges_accumulators(void **state) {
  sfx_t *f = *state;
  use_avg(f);
  at_ns(f, "w2");
  assert_int_equal(agg_i64(f, 10), FL_OK);
  assert_int_equal(agg_i64(f, 20), FL_OK);
  at_ns(f, "w1");
  assert_int_equal(agg_i64(f, 1), FL_OK);
  assert_int_equal(fl_st_merge_namespace(&f->r, "w2", 2), FL_OK);
  avg_is(f, 31, 3);
  at_ns(f, "w2");
  const void *acc;
  assert_int_equal(fl_st_aggregating_get(&f->r, &acc), 0);
  assert_int_equal(cells(f), 1);
  /* without a merge function two accumulators cannot be merged */
  assert_int_equal(agg_i64(f, 5), FL_OK);
  at_ns(f, "w1");
  f->desc.agg.merge = NULL;
  assert_int_equal(fl_st_merge_namespace(&f->r, "w2", 2), FL_EINVAL);
  avg_is(f, 31, 3);
}

/* ---------------------------------------------------------------------------------- */
/* TTL on value cells: update type x visibility                                         */

static void ttl_create_and_write_never_return_expired(void **state) {
  sfx_t *f =
      ttl_case(state, FL_STATE_VALUE, FL_TTL_ON_CREATE_AND_WRITE, FL_TTL_NEVER_RETURN_EXPIRED);
  value_set(at(f, 100), "v");
  value_is(at(f, 105), "v"); /* a read does not extend the life */
  value_is(at(f, 109), "v");
  value_is(at(f, 110), NULL);
  assert_int_equal(cells(f), 0); /* removed when read */
  /* a write does */
  value_set(at(f, 200), "v");
  value_set(at(f, 205), "w");
  value_is(at(f, 214), "w");
  value_is(at(f, 215), NULL);
}

static void ttl_read_and_write_never_return_expired(void **state) {
  sfx_t *f = ttl_case(state, FL_STATE_VALUE, FL_TTL_ON_READ_AND_WRITE, FL_TTL_NEVER_RETURN_EXPIRED);
  value_set(at(f, 100), "v");
  value_is(at(f, 109), "v"); /* now lives until 119 */
  value_is(at(f, 118), "v"); /* until 128 */
  value_is(at(f, 128), NULL);
  assert_int_equal(cells(f), 0);
}

static void ttl_create_and_write_return_expired_if_not_cleaned_up(void **state) {
  sfx_t *f = ttl_case(state, FL_STATE_VALUE, FL_TTL_ON_CREATE_AND_WRITE,
                      FL_TTL_RETURN_EXPIRED_IF_NOT_CLEANED_UP);
  value_set(at(f, 100), "v");
  value_is(at(f, 105), "v");
  value_is(at(f, 110), "v"); /* expired, but still stored: returned, and cleaned up */
  assert_int_equal(cells(f), 0);
  value_is(f, NULL);
}

static void ttl_read_and_write_return_expired_if_not_cleaned_up(void **state) {
  sfx_t *f = ttl_case(state, FL_STATE_VALUE, FL_TTL_ON_READ_AND_WRITE,
                      FL_TTL_RETURN_EXPIRED_IF_NOT_CLEANED_UP);
  value_set(at(f, 100), "v");
  value_is(at(f, 109), "v"); /* refreshed to 109 */
  value_is(at(f, 118), "v"); /* refreshed to 118 */
  assert_int_equal(cells(f), 1);
  value_is(at(f, 128), "v"); /* expired: returned once */
  assert_int_equal(cells(f), 0);
  value_is(f, NULL);
}

static void ttl_reducing_drops_an_expired_value_before_folding(void **state) {
  sfx_t *f = *state;
  use_reduce(f, sum_reduce);
  with_ttl(f, 10, FL_TTL_ON_CREATE_AND_WRITE, FL_TTL_NEVER_RETURN_EXPIRED);
  assert_int_equal(add_i64(at(f, 0), 5), FL_OK);
  assert_int_equal(add_i64(at(f, 9), 1), FL_OK); /* 6, stamped 9 */
  reduced_is(f, 6);
  assert_int_equal(add_i64(at(f, 19), 7), FL_OK);
  reduced_is(f, 7);
  assert_int_equal(f->calls, 1);
}

static void ttl_reducing_folds_an_expired_value_while_visible(void **state) {
  sfx_t *f = *state;
  use_reduce(f, sum_reduce);
  with_ttl(f, 10, FL_TTL_ON_CREATE_AND_WRITE, FL_TTL_RETURN_EXPIRED_IF_NOT_CLEANED_UP);
  assert_int_equal(add_i64(at(f, 0), 5), FL_OK);
  assert_int_equal(add_i64(at(f, 10), 7), FL_OK); /* stamped 10 */
  f->r.now = 19;
  reduced_is(f, 12);
}

/* The fixture's aggregating state averaging 4 (at 0) and 6 with a TTL of 10, written on
 * creation and write, never returned once expired; the time is 9, its last live instant. */
static sfx_t *avg_of_4_and_6_expiring_at_10(void **state) {
  sfx_t *f = *state;
  use_avg(f);
  with_ttl(f, 10, FL_TTL_ON_CREATE_AND_WRITE, FL_TTL_NEVER_RETURN_EXPIRED);
  assert_int_equal(agg_i64(at(f, 0), 4), FL_OK);
  assert_int_equal(agg_i64(f, 6), FL_OK);
  f->r.now = 9;
  avg_is(f, 10, 2);
  return f;
}

static void ttl_aggregating_restarts_an_expired_accumulator(void **state) {
  sfx_t *f = avg_of_4_and_6_expiring_at_10(state);
  assert_int_equal(agg_i64(at(f, 10), 1), FL_OK);
  avg_is(f, 1, 1);
  assert_int_equal(f->inits, 2);
  const void *acc;
  f->r.now = 20;
  assert_int_equal(fl_st_aggregating_get(&f->r, &acc), 0);
}

static void take_with_ttl_is_left_to_get_and_clear(void **state) {
  sfx_t *f = avg_of_4_and_6_expiring_at_10(state);
  const void *acc;
  size_t n;
  assert_int_equal(fl_st_take(&f->r, &acc, &n), FL_ENOTSUP);
  avg_is(f, 10, 2);
}

/* ---------------------------------------------------------------------------------- */
/* TTL of list items and map entries                                                    */

static void ttl_list_items_expire_one_by_one(void **state) {
  sfx_t *f =
      ttl_case(state, FL_STATE_LIST, FL_TTL_ON_CREATE_AND_WRITE, FL_TTL_NEVER_RETURN_EXPIRED);
  list_add(at(f, 0), "a");
  list_add(at(f, 5), "b");
  list_is(at(f, 9), "a,b");
  list_is(at(f, 10), "b");
  list_is(f, "b");
  list_is(at(f, 15), "");
  assert_int_equal(cells(f), 0);
}

static void ttl_list_returns_expired_items_once_while_visible(void **state) {
  sfx_t *f = ttl_case(state, FL_STATE_LIST, FL_TTL_ON_CREATE_AND_WRITE,
                      FL_TTL_RETURN_EXPIRED_IF_NOT_CLEANED_UP);
  list_add(at(f, 0), "a");
  list_add(at(f, 5), "b");
  list_is(at(f, 10), "a,b");
  list_is(f, "b");
}

static void ttl_list_read_refreshes_live_items(void **state) {
  sfx_t *f = ttl_case(state, FL_STATE_LIST, FL_TTL_ON_READ_AND_WRITE, FL_TTL_NEVER_RETURN_EXPIRED);
  list_add(at(f, 0), "a");
  list_is(at(f, 9), "a"); /* until 19 */
  list_add(at(f, 18), "b");
  list_is(f, "a,b"); /* both until 28 */
  list_is(at(f, 28), "");
  assert_int_equal(cells(f), 0);
}

static void ttl_map_entries_expire_one_by_one(void **state) {
  sfx_t *f = ttl_case(state, FL_STATE_MAP, FL_TTL_ON_CREATE_AND_WRITE, FL_TTL_NEVER_RETURN_EXPIRED);
  map_put(at(f, 0), "k1", "v1");
  map_put(at(f, 5), "k2", "v2");
  entries_are(at(f, 9), "k1=v1,k2=v2");
  map_is(at(f, 10), "k1", NULL);
  map_is(f, "k2", "v2");
  entries_are(f, "k2=v2");
  entries_are(at(f, 15), "");
  assert_int_equal(cells(f), 0); /* the expired entries were removed while iterating */
}

static void ttl_map_read_refreshes_and_visible_expired_entries_go_after_one_read(void **state) {
  sfx_t *f = ttl_case(state, FL_STATE_MAP, FL_TTL_ON_READ_AND_WRITE,
                      FL_TTL_RETURN_EXPIRED_IF_NOT_CLEANED_UP);
  map_put(at(f, 0), "k1", "v1");
  map_put(f, "k2", "v2");
  map_is(at(f, 9), "k1", "v1");          /* k1 until 19 */
  entries_are(at(f, 12), "k1=v1,k2=v2"); /* k2 expired: returned, removed; k1 until 22 */
  entries_are(f, "k1=v1");
  map_is(at(f, 21), "k1", "v1");
  map_is(at(f, 31), "k1", "v1"); /* expired, returned once */
  map_is(f, "k1", NULL);
  assert_int_equal(cells(f), 0);
}

/* ---------------------------------------------------------------------------------- */
/* Incremental TTL cleanup                                                              */

static void put_values_at(sfx_t *f, int first, int n, int64_t now) {
  f->r.now = now;
  for (int i = first; i < first + n; i++) {
    char key[16];
    snprintf(key, sizeof key, "k%d", i);
    at_key(f, key);
    assert_int_equal(fl_st_value_set(&f->r, "v", 1), FL_OK);
  }
  at_key(f, KEY);
}

static void ttl_cleanup_step_checks_n_cells_per_call(void **state) {
  sfx_t *f =
      ttl_case(state, FL_STATE_VALUE, FL_TTL_ON_CREATE_AND_WRITE, FL_TTL_NEVER_RETURN_EXPIRED);
  put_values_at(f, 0, 20, 0);
  f->r.now = 9;
  assert_int_equal(fl_st_ttl_cleanup_step(&f->r, 100), FL_OK);
  assert_int_equal(cells(f), 20);
  f->r.now = 10;
  assert_int_equal(fl_st_ttl_cleanup_step(&f->r, 5), FL_OK);
  assert_int_equal(cells(f), 15);
  assert_int_not_equal(f->cl.cursor, 0);
  assert_int_equal(fl_st_ttl_cleanup_step(&f->r, 5), FL_OK);
  assert_int_equal(cells(f), 10);
  assert_int_equal(fl_st_ttl_cleanup_step(&f->r, 100), FL_OK);
  assert_int_equal(cells(f), 0);
  assert_int_equal(f->cl.cursor, 0);
}

static void ttl_cleanup_keeps_live_cells(void **state) {
  sfx_t *f = kind_case(state, FL_STATE_AGGREGATING);
  use_avg(f);
  with_ttl(f, 10, FL_TTL_ON_CREATE_AND_WRITE, FL_TTL_NEVER_RETURN_EXPIRED);
  for (int i = 0; i < 20; i++) {
    char key[16];
    snprintf(key, sizeof key, "k%d", i);
    at_key(f, key);
    assert_int_equal(agg_i64(at(f, i % 2 ? 50 : 0), i), FL_OK);
  }
  f->r.now = 55;
  assert_int_equal(fl_st_ttl_cleanup_step(&f->r, 1000), FL_OK);
  assert_int_equal(cells(f), 10);
  for (int i = 0; i < 20; i++) {
    char key[16];
    snprintf(key, sizeof key, "k%d", i);
    at_key(f, key);
    const void *acc;
    assert_int_equal(fl_st_aggregating_get(&f->r, &acc), i % 2);
  }
}

static int raw_list_items(sfx_t *f) {
  const void *v;
  size_t n;
  int rc = f->kv->ops->get(f->kv->self, f->r.table, &f->r.k, &v, &n);
  if (rc <= 0) return rc;
  assert_int_equal(n % 24, 0); /* each item [len][0][ts] + 1..8 bytes */
  return (int)(n / 24);
}

static void ttl_cleanup_removes_expired_list_items(void **state) {
  sfx_t *f =
      ttl_case(state, FL_STATE_LIST, FL_TTL_ON_CREATE_AND_WRITE, FL_TTL_NEVER_RETURN_EXPIRED);
  f->r.now = 0;
  at_key(f, "mixed");
  list_add(f, "old1");
  list_add(f, "old2");
  at_key(f, "dead");
  list_add(f, "old");
  f->r.now = 8;
  at_key(f, "mixed");
  list_add(f, "new");
  assert_int_equal(raw_list_items(f), 3);
  f->r.now = 10;
  assert_int_equal(fl_st_ttl_cleanup_step(&f->r, 10), FL_OK);
  assert_int_equal(cells(f), 1);
  assert_int_equal(raw_list_items(f), 1); /* rewritten by the cleanup, not a read */
  list_is(f, "new");
}

static void ttl_cleanup_removes_expired_map_entries(void **state) {
  sfx_t *f = ttl_case(state, FL_STATE_MAP, FL_TTL_ON_CREATE_AND_WRITE, FL_TTL_NEVER_RETURN_EXPIRED);
  f->r.now = 0;
  at_key(f, "mixed");
  map_put(f, "a", "1");
  at_key(f, "dead");
  map_put(f, "a", "1");
  map_put(f, "b", "2");
  f->r.now = 8;
  at_key(f, "mixed");
  map_put(f, "b", "2");
  f->r.now = 10;
  assert_int_equal(fl_st_ttl_cleanup_step(&f->r, 10), FL_OK);
  assert_int_equal(cells(f), 1);
  const void *v;
  size_t n;
  assert_int_equal(f->kv->ops->map_get(f->kv->self, f->r.table, &f->r.k, "a", 1, &v, &n), 0);
  assert_int_equal(f->kv->ops->map_get(f->kv->self, f->r.table, &f->r.k, "b", 1, &v, &n), 1);
  entries_are(f, "b=2");
}

static void ttl_cleanup_without_ttl_removes_nothing(void **state) {
  sfx_t *f = kind_case(state, FL_STATE_VALUE);
  put_values_at(f, 0, 5, 0);
  f->r.now = INT64_MAX;
  assert_int_equal(fl_st_ttl_cleanup_step(&f->r, 100), FL_OK);
  assert_int_equal(cells(f), 5);
}

/* ---------------------------------------------------------------------------------- */
/* Backends that drop expired state by themselves                                       */

/* With the layout the state layer writes, the backend's own cleanup (RocksDB: its
 * compaction filter) drops an expired accumulator without any read. */
static void settling_drops_an_expired_accumulator(void **state) {
  sfx_t *f = avg_of_4_and_6_expiring_at_10(state);
  assert_int_equal(f->inits, 1);
  f->kv->ops->set_time(f->kv->self, 9);
  assert_int_equal(f->base->b->settle(f->kv), FL_OK);
  assert_int_equal(cells(f), 1);
  f->kv->ops->set_time(f->kv->self, 10);
  assert_int_equal(f->base->b->settle(f->kv), FL_OK);
  assert_int_equal(cells(f), 0);
}

/* ---------------------------------------------------------------------------------- */

static const struct CMUnitTest every_backend[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
    T(value_set_then_get_returns_the_last_value),
    T(value_set_accepts_a_pointer_from_get),
    T(calls_with_a_descriptor_of_another_kind_return_estate),
    T(list_add_then_get_returns_items_in_order),
    T(list_update_replaces_and_an_empty_update_clears),
    T(list_update_accepts_the_views_list_get_returned),
    T(map_put_get_remove_and_foreach),
    T(reducing_add_folds_with_the_reduce_function),
    T(reducing_add_reports_a_failing_reduce_and_keeps_the_value),
    T(aggregating_add_inits_once_then_adds),
    T(take_reads_the_result_and_removes_the_cell),
    T(take_with_ttl_is_left_to_get_and_clear),
    T(merge_namespace_appends_the_source_list_after_the_target),
    T(merge_namespace_reduces_target_then_source),
    T(merge_namespace_merges_accumulators),
    T(ttl_create_and_write_never_return_expired),
    T(ttl_read_and_write_never_return_expired),
    T(ttl_create_and_write_return_expired_if_not_cleaned_up),
    T(ttl_read_and_write_return_expired_if_not_cleaned_up),
    T(ttl_reducing_drops_an_expired_value_before_folding),
    T(ttl_reducing_folds_an_expired_value_while_visible),
    T(ttl_aggregating_restarts_an_expired_accumulator),
    T(ttl_list_items_expire_one_by_one),
    T(ttl_list_returns_expired_items_once_while_visible),
    T(ttl_list_read_refreshes_live_items),
    T(ttl_map_entries_expire_one_by_one),
    T(ttl_map_read_refreshes_and_visible_expired_entries_go_after_one_read),
    T(ttl_cleanup_step_checks_n_cells_per_call),
    T(ttl_cleanup_keeps_live_cells),
    T(ttl_cleanup_removes_expired_list_items),
    T(ttl_cleanup_removes_expired_map_entries),
    T(ttl_cleanup_without_ttl_removes_nothing),
    /* last: only for backends with set_table_ttl, set_time and a settle hook */
    T(settling_drops_an_expired_accumulator),
#undef T
};

int kvc_run_state_suite(const kvc_backend_t *b) {
  fl_kv_t probe;
  void *ctx;
  if (b->open(&probe, &ctx) != FL_OK) {
    fprintf(stderr, "state contract: cannot open a %s store\n", b->name);
    return 1;
  }
  bool drops = probe.ops->set_table_ttl && probe.ops->set_time && b->settle;
  b->close(&probe, ctx);
  enum {
    N = sizeof every_backend / sizeof every_backend[0]
  };
  struct CMUnitTest tests[N];
  memcpy(tests, every_backend, sizeof tests);
  for (size_t i = 0; i < N; i++) tests[i].initial_state = (void *)b;
  char name[64];
  snprintf(name, sizeof name, "state contract: %s", b->name);
  return _cmocka_run_group_tests(name, tests, drops ? N : N - 1, NULL, NULL);
}
