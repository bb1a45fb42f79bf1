/* The timer service kept in a RocksDB store (state/timers_rocksdb.c): order among equal
 * timestamps, deduplication, deletion, a randomised comparison against a sorted-array
 * model with a tiny cache (so that evictions, refills and blind writes all happen), the
 * bound on timers held in memory, and timers surviving a native copy of the store. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "state/kv.h"
#include "state/rocksdb.h"
#include "state/timers.h"
#include "state/timers_rocksdb.h"
#include "util/fs.h"

#include "rocksdb_dir.h"

#define EV FL_EVENT_TIME
#define PT FL_PROCESSING_TIME

typedef struct fixture {
  rocks_dir_t rd; /* first: the fixture is a rocks_fixture_new() */
  fl_kv_t kv;
} fixture_t;

static int setup(void **state) {
  fixture_t *f = rocks_fixture_new(sizeof *f, "fl-test-rtimers");
  char err[512], db[300];
  if (!f) return -1;
  snprintf(db, sizeof db, "%s/db", f->rd.dir);
  if (fl_kv_rocksdb_new(f->rd.sh, db, NULL, &f->kv, err, sizeof err)) {
    fprintf(stderr, "fl_kv_rocksdb_new: %s\n", err);
    rocks_fixture_free(f);
    return -1;
  }
  *state = f;
  return 0;
}

static int teardown(void **state) {
  fixture_t *f = *state;
  fl_kv_destroy(&f->kv);
  rocks_fixture_free(f);
  return 0;
}

static fl_timers_t *service(fixture_t *f, uint32_t kg_first, uint32_t kg_count, size_t cache) {
  char err[512] = "";
  fl_timers_t *t = fl_timers_new_rocksdb(&f->kv, kg_first, kg_count, cache, err, sizeof err);
  if (!t) fprintf(stderr, "fl_timers_new_rocksdb: %s\n", err);
  assert_non_null(t);
  return t;
}

static void reg(fl_timers_t *t, fl_time_domain_t d, uint16_t kg, const char *key, const char *ns,
                int64_t ts) {
  assert_int_equal(fl_timers_register(t, d, kg, key, strlen(key), ns, strlen(ns), ts), 0);
}

static void pop_is(fl_timers_t *t, fl_time_domain_t d, int64_t upto, int64_t ts, uint16_t kg,
                   const char *key, const char *ns) {
  fl_timer_t out;
  assert_int_equal(fl_timers_pop(t, d, upto, &out), 1);
  assert_true(out.ts == ts);
  assert_int_equal(out.kg, kg);
  assert_int_equal(out.key_len, strlen(key));
  assert_memory_equal(out.key, key, strlen(key));
  assert_int_equal(out.ns_len, strlen(ns));
  if (out.ns_len) assert_memory_equal(out.ns, ns, strlen(ns));
}

static void ties_go_by_key_group_then_key_then_namespace(void **state) {
  fixture_t *f = *state;
  fl_timers_t *t = service(f, 4, 4, 0);
  reg(t, EV, 6, "b", "", 10);
  reg(t, EV, 5, "zz", "", 10);
  reg(t, EV, 5, "c", "y", 10);
  reg(t, EV, 5, "c", "x", 10);
  reg(t, EV, 7, "a", "", 3);
  reg(t, EV, 5, "c", "x", 10); /* again: nothing changes */
  reg(t, PT, 5, "p", "", 1);
  assert_int_equal(fl_timers_count(t, EV), 5);
  assert_int_equal(fl_timers_count(t, PT), 1);
  int64_t ts;
  assert_int_equal(fl_timers_peek(t, EV, &ts), 1);
  assert_true(ts == 3);
  pop_is(t, EV, 100, 3, 7, "a", "");
  /* Equal timestamps: key group 5 before 6; in 5, the shorter key, then the namespace. */
  pop_is(t, EV, 100, 10, 5, "c", "x");
  pop_is(t, EV, 100, 10, 5, "c", "y");
  pop_is(t, EV, 100, 10, 5, "zz", "");
  pop_is(t, EV, 100, 10, 6, "b", "");
  fl_timer_t out;
  assert_int_equal(fl_timers_pop(t, EV, 100, &out), 0);
  pop_is(t, PT, 1, 1, 5, "p", "");
  assert_int_equal(fl_timers_register(t, EV, 3, "k", 1, NULL, 0, 1), FL_EINVAL);
  assert_int_equal(fl_timers_register(t, EV, 8, "k", 1, NULL, 0, 1), FL_EINVAL);
  fl_timers_destroy(t);
}

static void delete_removes_exactly_one_timer(void **state) {
  fixture_t *f = *state;
  fl_timers_t *t = service(f, 0, 2, 2); /* a cache of 2: most timers live on disk only */
  for (int i = 0; i < 10; i++) reg(t, EV, 1, "k", "", i * 10);
  assert_int_equal(fl_timers_delete(t, EV, 1, "k", 1, NULL, 0, 0), 0);  /* cached */
  assert_int_equal(fl_timers_delete(t, EV, 1, "k", 1, NULL, 0, 70), 0); /* on disk */
  assert_int_equal(fl_timers_delete(t, EV, 1, "k", 1, NULL, 0, 5), 0);  /* never existed */
  assert_int_equal(fl_timers_delete(t, PT, 1, "k", 1, NULL, 0, 10), 0); /* other domain */
  assert_int_equal(fl_timers_count(t, EV), 8);
  int64_t want[] = {10, 20, 30, 40, 50, 60, 80, 90};
  for (size_t i = 0; i < 8; i++) pop_is(t, EV, INT64_MAX, want[i], 1, "k", "");
  assert_int_equal(fl_timers_count(t, EV), 0);
  fl_timers_destroy(t);
}

/* A popped timer's key stays valid while the caller registers timers with it. */
static void popped_key_survives_registrations(void **state) {
  fixture_t *f = *state;
  fl_timers_t *t = service(f, 0, 1, 1);
  reg(t, EV, 0, "key-one", "ns", 1);
  reg(t, EV, 0, "key-two", "ns", 2);
  fl_timer_t out;
  assert_int_equal(fl_timers_pop(t, EV, 1, &out), 1);
  for (int i = 0; i < 50; i++)
    assert_int_equal(
        fl_timers_register(t, EV, 0, out.key, out.key_len, out.ns, out.ns_len, 100 + i), 0);
  assert_memory_equal(out.key, "key-one", 7);
  assert_memory_equal(out.ns, "ns", 2);
  assert_int_equal(fl_timers_count(t, EV), 51);
  fl_timers_destroy(t);
}

/* ---------------------------------------------------------------------------------- */
/* Against a model                                                                      */

typedef struct mt {
  int d;
  uint16_t kg;
  char key[8];
  char ns[4];
  int64_t ts;
} mt_t;

static int cmp_mt(const mt_t *a, const mt_t *b) {
  if (a->ts != b->ts) return a->ts < b->ts ? -1 : 1;
  if (a->kg != b->kg) return a->kg < b->kg ? -1 : 1;
  size_t al = strlen(a->key), bl = strlen(b->key);
  if (al != bl) return al < bl ? -1 : 1;
  int c = strcmp(a->key, b->key);
  return c ? c : strcmp(a->ns, b->ns);
}

typedef struct model {
  mt_t v[4096];
  size_t n;
} model_t;

static bool same(const mt_t *a, const mt_t *b) { return a->d == b->d && cmp_mt(a, b) == 0; }

static void model_add(model_t *m, const mt_t *x) {
  for (size_t i = 0; i < m->n; i++)
    if (same(&m->v[i], x)) return;
  assert_true(m->n < 4096);
  m->v[m->n++] = *x;
}

static void model_del(model_t *m, const mt_t *x) {
  for (size_t i = 0; i < m->n; i++)
    if (same(&m->v[i], x)) {
      m->v[i] = m->v[--m->n];
      return;
    }
}

/* The earliest timer of domain d with ts <= upto, removed; false when none. */
static bool model_pop(model_t *m, int d, int64_t upto, mt_t *out) {
  size_t best = SIZE_MAX;
  for (size_t i = 0; i < m->n; i++)
    if (m->v[i].d == d && m->v[i].ts <= upto &&
        (best == SIZE_MAX || cmp_mt(&m->v[i], &m->v[best]) < 0))
      best = i;
  if (best == SIZE_MAX) return false;
  *out = m->v[best];
  m->v[best] = m->v[--m->n];
  return true;
}

static size_t model_count(const model_t *m, int d) {
  size_t n = 0;
  for (size_t i = 0; i < m->n; i++) n += m->v[i].d == d;
  return n;
}

static uint64_t rnd(uint64_t *s) {
  *s ^= *s << 13;
  *s ^= *s >> 7;
  *s ^= *s << 17;
  return *s;
}

static void random_mt(uint64_t *s, mt_t *x) {
  x->d = (int)(rnd(s) % 2);
  x->kg = (uint16_t)(10 + rnd(s) % 5);
  snprintf(x->key, sizeof x->key, "%.*s", (int)(1 + rnd(s) % 3), "abcdef" + rnd(s) % 3);
  snprintf(x->ns, sizeof x->ns, "%c", (char)('p' + rnd(s) % 3));
  if (rnd(s) % 4 == 0) x->ns[0] = 0;
  x->ts = (int64_t)(rnd(s) % 60) - 10;
}

static void matches_a_sorted_model_with_a_tiny_cache(void **state) {
  fixture_t *f = *state;
  static model_t m;
  m.n = 0;
  fl_timers_t *t = service(f, 10, 5, 3);
  uint64_t s = 0x5eed1234abcdULL;
  int64_t wm[2] = {-20, -20};
  for (int step = 0; step < 10000; step++) {
    mt_t x;
    random_mt(&s, &x);
    if (x.ts < wm[x.d]) x.ts = wm[x.d] + (int64_t)(rnd(&s) % 30); /* mostly ahead of time */
    uint64_t op = rnd(&s) % 10;
    if (op < 5) {
      assert_int_equal(fl_timers_register(t, (fl_time_domain_t)x.d, x.kg, x.key, strlen(x.key),
                                          x.ns, strlen(x.ns), x.ts),
                       0);
      model_add(&m, &x);
    } else if (op < 8) {
      /* delete one that exists, most of the time */
      if (m.n && rnd(&s) % 4) x = m.v[rnd(&s) % m.n];
      assert_int_equal(fl_timers_delete(t, (fl_time_domain_t)x.d, x.kg, x.key, strlen(x.key), x.ns,
                                        strlen(x.ns), x.ts),
                       0);
      model_del(&m, &x);
    } else {
      int d = (int)(rnd(&s) % 2);
      wm[d] += (int64_t)(rnd(&s) % 8);
      mt_t want;
      fl_timer_t got;
      for (;;) {
        bool w = model_pop(&m, d, wm[d], &want);
        int r = fl_timers_pop(t, (fl_time_domain_t)d, wm[d], &got);
        assert_int_equal(r, w ? 1 : 0);
        if (!w) break;
        assert_true(got.ts == want.ts);
        assert_int_equal(got.kg, want.kg);
        assert_int_equal(got.key_len, strlen(want.key));
        assert_memory_equal(got.key, want.key, got.key_len);
        assert_int_equal(got.ns_len, strlen(want.ns));
        if (got.ns_len) assert_memory_equal(got.ns, want.ns, got.ns_len);
      }
    }
    for (int d = 0; d < 2; d++) {
      int64_t ts;
      mt_t probe;
      bool any = false;
      for (size_t i = 0; i < m.n; i++)
        if (m.v[i].d == d && (!any || cmp_mt(&m.v[i], &probe) < 0)) probe = m.v[i], any = true;
      assert_int_equal(fl_timers_peek(t, (fl_time_domain_t)d, &ts), any ? 1 : 0);
      if (any) assert_true(ts == probe.ts);
    }
    assert_true(fl_timers_in_memory(t) <= 2 * 5 * 3);
    if (step % 1000 == 0) {
      assert_int_equal(fl_timers_count(t, EV), model_count(&m, EV));
      assert_int_equal(fl_timers_count(t, PT), model_count(&m, PT));
    }
  }
  fl_timers_destroy(t);
}

/* ---------------------------------------------------------------------------------- */
/* Memory                                                                               */

/* 200,000 timers over 128 key groups (the default max parallelism): memory holds at
 * most the default cache of 128 per key group and domain, and they all fire in order.
 * The heap service (what a RocksDB job used before) holds all 200,000. */
static void timers_in_memory_stay_within_the_cache(void **state) {
  fixture_t *f = *state;
  const uint32_t kgs = 128, n = 200000;
  fl_timers_t *t = service(f, 0, kgs, 0);
  uint64_t s = 42;
  for (uint32_t i = 0; i < n; i++) {
    char key[16];
    int kl = snprintf(key, sizeof key, "k%u", i);
    int64_t ts = (int64_t)(rnd(&s) % 1000000);
    assert_int_equal(fl_timers_register(t, EV, (uint16_t)(i % kgs), key, (size_t)kl, "w", 1, ts),
                     0);
    assert_true(fl_timers_in_memory(t) <= (size_t)kgs * FL_RTIMERS_CACHE);
  }
  assert_true(fl_timers_in_memory(t) <= (size_t)kgs * FL_RTIMERS_CACHE);
  assert_int_equal(fl_timers_count(t, EV), n);
  fl_timer_t out;
  int64_t last = INT64_MIN;
  uint32_t popped = 0;
  int r;
  while ((r = fl_timers_pop(t, EV, INT64_MAX, &out)) == 1) {
    assert_true(out.ts >= last);
    last = out.ts;
    popped++;
    assert_true(fl_timers_in_memory(t) <= (size_t)kgs * FL_RTIMERS_CACHE);
  }
  assert_int_equal(r, 0);
  assert_int_equal(popped, n);
  assert_int_equal(fl_timers_in_memory(t), 0);
  fl_timers_destroy(t);
}

/* The largest max parallelism: 32,768 empty key groups cost no arrays and no reads. */
static void many_empty_key_groups_are_cheap(void **state) {
  fixture_t *f = *state;
  fl_timers_t *t = service(f, 0, 32768, 0);
  reg(t, EV, 32767, "last", "", 9);
  reg(t, EV, 0, "first", "", 9);
  assert_int_equal(fl_timers_in_memory(t), 2);
  pop_is(t, EV, 9, 9, 0, "first", "");
  pop_is(t, EV, 9, 9, 32767, "last", "");
  fl_timers_destroy(t);
}

/* ---------------------------------------------------------------------------------- */
/* Native copies                                                                        */

static void timers_travel_with_a_native_copy_of_the_store(void **state) {
  fixture_t *f = *state;
  fl_timers_t *t = service(f, 0, 4, 2);
  for (int i = 0; i < 20; i++) {
    char key[8];
    snprintf(key, sizeof key, "k%d", i);
    reg(t, i % 2 ? PT : EV, (uint16_t)(i % 4), key, "", 100 - i);
  }
  char copy[300], db2[300], err[512];
  snprintf(copy, sizeof copy, "%s/copy", f->rd.dir);
  snprintf(db2, sizeof db2, "%s/db2", f->rd.dir);
  assert_int_equal(f->kv.ops->checkpoint(f->kv.self, copy), 0);
  fl_timers_destroy(t);
  fl_kv_t kv2;
  assert_int_equal(fl_kv_rocksdb_new(f->rd.sh, db2, copy, &kv2, err, sizeof err), 0);
  /* the whole range comes back in the store that reopens the copy */
  fl_timers_t *t2 = fl_timers_new_rocksdb(&kv2, 0, 4, 2, err, sizeof err);
  assert_non_null(t2);
  assert_int_equal(fl_timers_count(t2, EV), 10);
  assert_int_equal(fl_timers_count(t2, PT), 10);
  pop_is(t2, EV, INT64_MAX, 82, 2, "k18", "");
  fl_timers_destroy(t2);
  /* key groups 1..2 of it (less the one popped) copied into a heap service */
  fl_timers_t *h = fl_timers_new(1, 2);
  assert_int_equal(fl_rtimers_copy(&kv2, 1, 2, h), 0);
  assert_int_equal(fl_timers_count(h, EV), 4);
  assert_int_equal(fl_timers_count(h, PT), 5);
  fl_timers_destroy(h);
  fl_kv_destroy(&kv2);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(ties_go_by_key_group_then_key_then_namespace, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(delete_removes_exactly_one_timer, setup, teardown),
      cmocka_unit_test_setup_teardown(popped_key_survives_registrations, setup, teardown),
      cmocka_unit_test_setup_teardown(matches_a_sorted_model_with_a_tiny_cache, setup, teardown),
      cmocka_unit_test_setup_teardown(timers_in_memory_stay_within_the_cache, setup, teardown),
      cmocka_unit_test_setup_teardown(many_empty_key_groups_are_cheap, setup, teardown),
      cmocka_unit_test_setup_teardown(timers_travel_with_a_native_copy_of_the_store, setup,
                                      teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
