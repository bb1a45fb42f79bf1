/* The timer service: order, deduplication, deletion, domains, and a randomised comparison
 * against a sorted-array model. Run under ASan to check that every timer is freed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "state/timers.h"

#define EV FL_EVENT_TIME
#define PT FL_PROCESSING_TIME

/* Registers a timer with a NUL-terminated key and an empty namespace. */
static void reg(fl_timers_t *t, fl_time_domain_t d, uint16_t kg, const char *key, int64_t ts) {
  assert_int_equal(fl_timers_register(t, d, kg, key, strlen(key), NULL, 0, ts), 0);
}

static void del(fl_timers_t *t, fl_time_domain_t d, uint16_t kg, const char *key, int64_t ts) {
  assert_int_equal(fl_timers_delete(t, d, kg, key, strlen(key), NULL, 0, ts), 0);
}

/* Pops the next timer and checks it is (ts, kg, key) with an empty namespace. */
static void pop_is(fl_timers_t *t, fl_time_domain_t d, int64_t upto, int64_t ts, uint16_t kg,
                   const char *key) {
  fl_timer_t out;
  memset(&out, 0xab, sizeof out);
  assert_int_equal(fl_timers_pop(t, d, upto, &out), 1);
  assert_true(out.ts == ts);
  assert_int_equal(out.kg, kg);
  assert_int_equal(out.key_len, strlen(key));
  assert_memory_equal(out.key, key, strlen(key));
  assert_int_equal(out.ns_len, 0);
}

static void pop_none(fl_timers_t *t, fl_time_domain_t d, int64_t upto) {
  fl_timer_t out;
  assert_int_equal(fl_timers_pop(t, d, upto, &out), 0);
}

static void pops_in_timestamp_order_across_key_groups(void **state) {
  (void)state;
  fl_timers_t *t = fl_timers_new(10, 4);
  assert_non_null(t);
  reg(t, EV, 12, "c", 30);
  reg(t, EV, 10, "a", 10);
  reg(t, EV, 11, "b", 20);
  reg(t, EV, 13, "d", 5);
  reg(t, EV, 10, "e", -7);
  reg(t, EV, 12, "f", 25);
  assert_int_equal(fl_timers_count(t, EV), 6);
  int64_t ts = 0;
  assert_int_equal(fl_timers_peek(t, EV, &ts), 1);
  assert_true(ts == -7);
  pop_is(t, EV, INT64_MAX, -7, 10, "e");
  pop_is(t, EV, INT64_MAX, 5, 13, "d");
  pop_is(t, EV, INT64_MAX, 10, 10, "a");
  pop_is(t, EV, INT64_MAX, 20, 11, "b");
  pop_is(t, EV, INT64_MAX, 25, 12, "f");
  pop_is(t, EV, INT64_MAX, 30, 12, "c");
  pop_none(t, EV, INT64_MAX);
  assert_int_equal(fl_timers_count(t, EV), 0);
  fl_timers_destroy(t);
}

static void equal_timestamps_pop_in_registration_order(void **state) {
  (void)state;
  fl_timers_t *t = fl_timers_new(0, 8);
  assert_non_null(t);
  const char *keys[] = {"k0", "k1", "k2", "k3", "k4", "k5", "k6", "k7", "k8", "k9"};
  const uint16_t kgs[] = {7, 3, 3, 0, 5, 7, 1, 3, 0, 6};
  for (int i = 0; i < 10; i++) reg(t, EV, kgs[i], keys[i], 100);
  reg(t, EV, 2, "late-earlier", 99);
  pop_is(t, EV, 100, 99, 2, "late-earlier");
  for (int i = 0; i < 10; i++) pop_is(t, EV, 100, 100, kgs[i], keys[i]);
  pop_none(t, EV, INT64_MAX);
  fl_timers_destroy(t);
}

static void registering_twice_fires_once_and_keeps_first_position(void **state) {
  (void)state;
  fl_timers_t *t = fl_timers_new(0, 2);
  assert_non_null(t);
  reg(t, EV, 0, "a", 10);
  reg(t, EV, 1, "b", 10);
  reg(t, EV, 0, "a", 10); /* no-op: must not move "a" behind "b" */
  reg(t, EV, 1, "b", 10);
  assert_int_equal(fl_timers_count(t, EV), 2);
  pop_is(t, EV, 10, 10, 0, "a");
  pop_is(t, EV, 10, 10, 1, "b");
  pop_none(t, EV, INT64_MAX);
  /* Once fired, the same address can be registered again. */
  reg(t, EV, 0, "a", 10);
  assert_int_equal(fl_timers_count(t, EV), 1);
  pop_is(t, EV, 10, 10, 0, "a");
  fl_timers_destroy(t);
}

static void timers_differing_in_any_field_are_distinct(void **state) {
  (void)state;
  fl_timers_t *t = fl_timers_new(0, 2);
  assert_non_null(t);
  assert_int_equal(fl_timers_register(t, EV, 0, "ab", 2, "", 0, 5), 0);
  assert_int_equal(fl_timers_register(t, EV, 0, "a", 1, "b", 1, 5), 0);   /* other split */
  assert_int_equal(fl_timers_register(t, EV, 1, "ab", 2, "", 0, 5), 0);   /* other kg */
  assert_int_equal(fl_timers_register(t, EV, 0, "ab", 2, "", 0, 6), 0);   /* other ts */
  assert_int_equal(fl_timers_register(t, EV, 0, "ab", 2, "x", 1, 5), 0);  /* other ns */
  assert_int_equal(fl_timers_register(t, EV, 0, "ab\0", 3, "", 0, 5), 0); /* longer key */
  assert_int_equal(fl_timers_register(t, PT, 0, "ab", 2, "", 0, 5), 0);   /* other domain */
  assert_int_equal(fl_timers_count(t, EV), 6);
  assert_int_equal(fl_timers_count(t, PT), 1);
  /* And each of them is found again by an identical registration. */
  assert_int_equal(fl_timers_register(t, EV, 0, "a", 1, "b", 1, 5), 0);
  assert_int_equal(fl_timers_register(t, EV, 0, "ab\0", 3, NULL, 0, 5), 0);
  assert_int_equal(fl_timers_count(t, EV), 6);
  fl_timers_destroy(t);
}

static void delete_of_existing_absent_head_and_middle(void **state) {
  (void)state;
  fl_timers_t *t = fl_timers_new(0, 1);
  assert_non_null(t);
  char key[16];
  for (int i = 0; i < 20; i++) {
    snprintf(key, sizeof key, "k%02d", i);
    /* Registered out of order so the heap has real structure. */
    reg(t, EV, 0, key, (int64_t)((i * 7) % 20));
  }
  assert_int_equal(fl_timers_count(t, EV), 20);
  del(t, EV, 0, "nope", 3); /* absent key */
  del(t, EV, 0, "k01", 8);  /* existing key, wrong ts: absent */
  del(t, PT, 0, "k01", 7);  /* other domain: absent */
  assert_int_equal(fl_timers_count(t, EV), 20);
  del(t, EV, 0, "k00", 0);  /* the head */
  del(t, EV, 0, "k10", 10); /* middle */
  del(t, EV, 0, "k17", 19); /* the largest */
  del(t, EV, 0, "k05", 15); /* middle */
  del(t, EV, 0, "k05", 15); /* twice: no-op */
  assert_int_equal(fl_timers_count(t, EV), 16);
  int64_t ts = -1;
  assert_int_equal(fl_timers_peek(t, EV, &ts), 1);
  assert_true(ts == 1);
  for (int64_t want = 1; want < 20; want++) {
    if (want == 10 || want == 15 || want == 19) continue;
    int i = 0;
    while ((i * 7) % 20 != want) i++;
    snprintf(key, sizeof key, "k%02d", i);
    pop_is(t, EV, INT64_MAX, want, 0, key);
  }
  pop_none(t, EV, INT64_MAX);
  assert_int_equal(fl_timers_count(t, EV), 0);
  fl_timers_destroy(t);
}

static void delete_of_key_group_head_updates_global_minimum(void **state) {
  (void)state;
  fl_timers_t *t = fl_timers_new(0, 3);
  assert_non_null(t);
  reg(t, EV, 0, "a", 10);
  reg(t, EV, 0, "b", 40);
  reg(t, EV, 1, "c", 20);
  reg(t, EV, 2, "d", 30);
  int64_t ts = 0;
  del(t, EV, 0, "a", 10); /* kg 0's head: kg 0 now sorts after kg 1 and 2 */
  assert_int_equal(fl_timers_peek(t, EV, &ts), 1);
  assert_true(ts == 20);
  del(t, EV, 1, "c", 20); /* empties kg 1 */
  assert_int_equal(fl_timers_peek(t, EV, &ts), 1);
  assert_true(ts == 30);
  reg(t, EV, 1, "e", 35); /* kg 1 comes back */
  pop_is(t, EV, INT64_MAX, 30, 2, "d");
  pop_is(t, EV, INT64_MAX, 35, 1, "e");
  pop_is(t, EV, INT64_MAX, 40, 0, "b");
  pop_none(t, EV, INT64_MAX);
  fl_timers_destroy(t);
}

static void domains_are_independent(void **state) {
  (void)state;
  fl_timers_t *t = fl_timers_new(0, 2);
  assert_non_null(t);
  reg(t, EV, 0, "a", 100);
  reg(t, PT, 0, "a", 100); /* same address, other domain: a second timer */
  reg(t, PT, 1, "b", 50);
  assert_int_equal(fl_timers_count(t, EV), 1);
  assert_int_equal(fl_timers_count(t, PT), 2);
  int64_t ts = 0;
  assert_int_equal(fl_timers_peek(t, EV, &ts), 1);
  assert_true(ts == 100);
  assert_int_equal(fl_timers_peek(t, PT, &ts), 1);
  assert_true(ts == 50);
  del(t, PT, 0, "a", 100);
  assert_int_equal(fl_timers_count(t, EV), 1);
  pop_none(t, EV, 99);
  pop_is(t, PT, INT64_MAX, 50, 1, "b");
  pop_none(t, PT, INT64_MAX);
  pop_is(t, EV, 100, 100, 0, "a");
  fl_timers_destroy(t);
}

static void pop_respects_upto_including_extreme_timestamps(void **state) {
  (void)state;
  fl_timers_t *t = fl_timers_new(0, 1);
  assert_non_null(t);
  reg(t, EV, 0, "max", INT64_MAX);
  reg(t, EV, 0, "min", INT64_MIN + 1);
  reg(t, EV, 0, "zero", 0);
  reg(t, EV, 0, "neg", -1);
  pop_none(t, EV, INT64_MIN);
  pop_is(t, EV, INT64_MIN + 1, INT64_MIN + 1, 0, "min"); /* ts == upto fires */
  pop_none(t, EV, INT64_MIN + 1);
  pop_none(t, EV, -2);
  pop_is(t, EV, 0, -1, 0, "neg");
  pop_is(t, EV, 0, 0, 0, "zero");
  pop_none(t, EV, 0);
  pop_none(t, EV, INT64_MAX - 1);
  int64_t ts = 0;
  assert_int_equal(fl_timers_peek(t, EV, &ts), 1);
  assert_true(ts == INT64_MAX);
  pop_is(t, EV, INT64_MAX, INT64_MAX, 0, "max");
  pop_none(t, EV, INT64_MAX);
  fl_timers_destroy(t);
}

static void peek_and_pop_on_empty_service_return_zero(void **state) {
  (void)state;
  fl_timers_t *t = fl_timers_new(0, 4);
  assert_non_null(t);
  int64_t ts = 1234;
  assert_int_equal(fl_timers_peek(t, EV, &ts), 0);
  assert_int_equal(fl_timers_peek(t, PT, &ts), 0);
  assert_true(ts == 1234);
  pop_none(t, EV, INT64_MAX);
  pop_none(t, PT, INT64_MAX);
  assert_int_equal(fl_timers_count(t, EV), 0);
  reg(t, EV, 1, "x", 1);
  pop_is(t, EV, 1, 1, 1, "x");
  assert_int_equal(fl_timers_peek(t, EV, &ts), 0);
  fl_timers_destroy(t);
}

static void invalid_arguments_are_rejected(void **state) {
  (void)state;
  fl_timers_t *t = fl_timers_new(16, 16);
  assert_non_null(t);
  assert_int_equal(fl_timers_register(t, EV, 15, "a", 1, NULL, 0, 1), FL_EINVAL);
  assert_int_equal(fl_timers_register(t, EV, 32, "a", 1, NULL, 0, 1), FL_EINVAL);
  assert_int_equal(fl_timers_register(t, EV, 0, "a", 1, NULL, 0, 1), FL_EINVAL);
  assert_int_equal(fl_timers_register(t, EV, 16, NULL, 1, NULL, 0, 1), FL_EINVAL);
  assert_int_equal(fl_timers_register(t, EV, 16, "a", 1, NULL, 1, 1), FL_EINVAL);
  assert_int_equal(fl_timers_register(t, (fl_time_domain_t)2, 16, "a", 1, NULL, 0, 1), FL_EINVAL);
  assert_int_equal(fl_timers_register(NULL, EV, 16, "a", 1, NULL, 0, 1), FL_EINVAL);
  assert_int_equal(fl_timers_delete(t, EV, 32, "a", 1, NULL, 0, 1), FL_EINVAL);
  assert_int_equal(fl_timers_count(t, EV), 0);
  /* The bounds themselves are valid. */
  assert_int_equal(fl_timers_register(t, EV, 16, "a", 1, NULL, 0, 1), 0);
  assert_int_equal(fl_timers_register(t, EV, 31, "a", 1, NULL, 0, 1), 0);
  assert_int_equal(fl_timers_count(t, EV), 2);
  int64_t ts;
  assert_int_equal(fl_timers_peek(NULL, EV, &ts), 0);
  assert_int_equal(fl_timers_count(NULL, EV), 0);
  fl_timers_destroy(t);
  fl_timers_destroy(NULL);

  /* A subtask without key groups (parallelism > max parallelism) has an empty range. */
  t = fl_timers_new(5, 0);
  assert_non_null(t);
  assert_int_equal(fl_timers_register(t, EV, 5, "a", 1, NULL, 0, 1), FL_EINVAL);
  pop_none(t, EV, INT64_MAX);
  fl_timers_destroy(t);
  /* The full uint16 range is allowed, beyond it is not. */
  t = fl_timers_new(0, 65536);
  assert_non_null(t);
  assert_int_equal(fl_timers_register(t, EV, 65535, "a", 1, NULL, 0, 1), 0);
  pop_is(t, EV, 1, 1, 65535, "a");
  fl_timers_destroy(t);
  assert_null(fl_timers_new(1, 65536));
}

static void key_and_namespace_bytes_are_returned_exactly(void **state) {
  (void)state;
  fl_timers_t *t = fl_timers_new(0, 1);
  assert_non_null(t);
  const unsigned char bin_key[] = {0, 1, 0, 0xff, 0};
  const unsigned char win_ns[16] = {1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2};
  unsigned char big_key[300], big_ns[200];
  for (size_t i = 0; i < sizeof big_key; i++) big_key[i] = (unsigned char)(i * 31);
  for (size_t i = 0; i < sizeof big_ns; i++) big_ns[i] = (unsigned char)(i * 17 + 1);

  assert_int_equal(fl_timers_register(t, EV, 0, bin_key, sizeof bin_key, NULL, 0, 1), 0);
  assert_int_equal(fl_timers_register(t, EV, 0, bin_key, sizeof bin_key, win_ns, 16, 2), 0);
  assert_int_equal(fl_timers_register(t, EV, 0, NULL, 0, win_ns, 16, 3), 0);
  assert_int_equal(fl_timers_register(t, EV, 0, NULL, 0, NULL, 0, 4), 0);
  assert_int_equal(fl_timers_register(t, EV, 0, big_key, sizeof big_key, big_ns, sizeof big_ns, 5),
                   0);

  fl_timer_t out;
  assert_int_equal(fl_timers_pop(t, EV, INT64_MAX, &out), 1);
  assert_true(out.ts == 1);
  assert_int_equal(out.key_len, sizeof bin_key);
  assert_memory_equal(out.key, bin_key, sizeof bin_key);
  assert_int_equal(out.ns_len, 0);

  assert_int_equal(fl_timers_pop(t, EV, INT64_MAX, &out), 1);
  assert_true(out.ts == 2);
  assert_int_equal(out.key_len, sizeof bin_key);
  assert_memory_equal(out.key, bin_key, sizeof bin_key);
  assert_int_equal(out.ns_len, 16);
  assert_memory_equal(out.ns, win_ns, 16);

  assert_int_equal(fl_timers_pop(t, EV, INT64_MAX, &out), 1);
  assert_true(out.ts == 3);
  assert_int_equal(out.key_len, 0);
  assert_int_equal(out.ns_len, 16);
  assert_memory_equal(out.ns, win_ns, 16);

  assert_int_equal(fl_timers_pop(t, EV, INT64_MAX, &out), 1);
  assert_true(out.ts == 4);
  assert_int_equal(out.key_len, 0);
  assert_int_equal(out.ns_len, 0);

  assert_int_equal(fl_timers_pop(t, EV, INT64_MAX, &out), 1);
  assert_true(out.ts == 5);
  assert_int_equal(out.key_len, sizeof big_key);
  assert_memory_equal(out.key, big_key, sizeof big_key);
  assert_int_equal(out.ns_len, sizeof big_ns);
  assert_memory_equal(out.ns, big_ns, sizeof big_ns);
  pop_none(t, EV, INT64_MAX);
  fl_timers_destroy(t);
}

static void popped_bytes_survive_registers_that_grow_the_buffer(void **state) {
  (void)state;
  /* An on_timer callback keeps using the popped key (ctx.key) after registering timers,
   * and passes it back to register: the bytes must stay valid across registers, even
   * ones with larger keys/namespaces than any before. */
  fl_timers_t *t = fl_timers_new(0, 1);
  assert_non_null(t);
  static unsigned char big1[1000], big2[5000];
  memset(big1, 0x11, sizeof big1);
  memset(big2, 0x22, sizeof big2);
  assert_int_equal(fl_timers_register(t, EV, 0, "key\0x", 5, "ns", 2, 1), 0);
  fl_timer_t out;
  assert_int_equal(fl_timers_pop(t, EV, 1, &out), 1);
  assert_int_equal(fl_timers_register(t, EV, 0, out.key, out.key_len, big1, sizeof big1, 2), 0);
  assert_int_equal(fl_timers_register(t, EV, 0, out.key, out.key_len, big2, sizeof big2, 3), 0);
  assert_int_equal(fl_timers_register(t, PT, 0, out.key, out.key_len, out.ns, out.ns_len, 4), 0);
  assert_int_equal(out.key_len, 5);
  assert_memory_equal(out.key, "key\0x", 5);
  assert_int_equal(out.ns_len, 2);
  assert_memory_equal(out.ns, "ns", 2);

  assert_int_equal(fl_timers_pop(t, EV, INT64_MAX, &out), 1);
  assert_true(out.ts == 2);
  assert_memory_equal(out.key, "key\0x", 5);
  assert_int_equal(out.ns_len, sizeof big1);
  assert_memory_equal(out.ns, big1, sizeof big1);
  assert_int_equal(fl_timers_pop(t, EV, INT64_MAX, &out), 1);
  assert_true(out.ts == 3);
  assert_memory_equal(out.key, "key\0x", 5);
  assert_int_equal(out.ns_len, sizeof big2);
  assert_memory_equal(out.ns, big2, sizeof big2);
  assert_int_equal(fl_timers_pop(t, PT, INT64_MAX, &out), 1);
  assert_true(out.ts == 4);
  assert_memory_equal(out.key, "key\0x", 5);
  assert_memory_equal(out.ns, "ns", 2);
  fl_timers_destroy(t);
}

static void timer_registered_during_pop_loop_fires_in_same_loop(void **state) {
  (void)state;
  fl_timers_t *t = fl_timers_new(0, 4);
  assert_non_null(t);
  reg(t, EV, 0, "a", 10);
  reg(t, EV, 1, "b", 20);
  reg(t, EV, 2, "c", 40);
  const int64_t upto = 30;
  int64_t seen[8];
  int n = 0;
  fl_timer_t out;
  while (fl_timers_pop(t, EV, upto, &out) == 1) {
    assert_true(n < 8);
    seen[n++] = out.ts;
    /* Like an on_timer callback: the first firing registers a timer before "b" and one
     * after the loop's bound; "b"'s firing registers one at exactly the bound. */
    if (out.ts == 10) {
      reg(t, EV, 3, "d", 15);
      reg(t, EV, 3, "e", 31);
    } else if (out.ts == 20) {
      reg(t, EV, 0, "f", 30);
    }
  }
  assert_int_equal(n, 4);
  assert_true(seen[0] == 10 && seen[1] == 15 && seen[2] == 20 && seen[3] == 30);
  assert_int_equal(fl_timers_count(t, EV), 2);
  pop_is(t, EV, INT64_MAX, 31, 3, "e");
  pop_is(t, EV, INT64_MAX, 40, 2, "c");
  fl_timers_destroy(t);
}

static void destroy_frees_pending_timers(void **state) {
  (void)state;
  /* Small (pooled) and large nodes, both domains, some recycled through the pool; ASan's
   * leak checker fails the binary if any is lost. */
  fl_timers_t *t = fl_timers_new(0, 8);
  assert_non_null(t);
  unsigned char big[500] = {0};
  for (int i = 0; i < 5000; i++) {
    char key[16];
    int len = snprintf(key, sizeof key, "key%d", i);
    assert_int_equal(fl_timers_register(t, i % 2 ? EV : PT, (uint16_t)(i % 8), key, (size_t)len,
                                        big, (size_t)(i % 7 == 0 ? 500 : 8), i),
                     0);
  }
  fl_timer_t out;
  for (int i = 0; i < 1000; i++) assert_int_equal(fl_timers_pop(t, EV, INT64_MAX, &out), 1);
  assert_int_equal(fl_timers_count(t, EV), 1500);
  assert_int_equal(fl_timers_count(t, PT), 2500);
  fl_timers_destroy(t);
}

static void key_group_index_stays_ordered_as_key_groups_empty_and_refill(void **state) {
  (void)state;
  /* One timer at most per key group, so every delete and pop empties a key group and
   * every register adds one: exercises removal from the middle of the key-group index,
   * where the moved entry may have to go up as well as down. */
  enum {
    KGS = 64
  };
  fl_timers_t *t = fl_timers_new(0, KGS);
  assert_non_null(t);
  int64_t ref[KGS];
  bool has[KGS] = {false};
  uint64_t x = 12345;
  for (int op = 0; op < 20000; op++) {
    x = x * 6364136223846793005ull + 1442695040888963407ull;
    uint16_t kg = (uint16_t)((x >> 33) % KGS);
    if ((x >> 20) % 8 == 0) {
      /* Pop everything due up to a random bound, checking the order. */
      int64_t upto = (int64_t)((x >> 40) % 1000);
      fl_timer_t out;
      int64_t last = INT64_MIN;
      while (fl_timers_pop(t, EV, upto, &out) == 1) {
        assert_true(has[out.kg] && ref[out.kg] == out.ts && out.ts <= upto && out.ts >= last);
        last = out.ts;
        has[out.kg] = false;
      }
    } else if (has[kg]) {
      assert_int_equal(fl_timers_delete(t, EV, kg, "k", 1, NULL, 0, ref[kg]), 0);
      has[kg] = false;
    } else {
      ref[kg] = (int64_t)((x >> 40) % 1000);
      assert_int_equal(fl_timers_register(t, EV, kg, "k", 1, NULL, 0, ref[kg]), 0);
      has[kg] = true;
    }
    int64_t min = INT64_MAX;
    size_t n = 0;
    for (int i = 0; i < KGS; i++) {
      if (!has[i]) continue;
      n++;
      if (ref[i] < min) min = ref[i];
    }
    assert_int_equal(fl_timers_count(t, EV), n);
    int64_t ts = 0;
    assert_int_equal(fl_timers_peek(t, EV, &ts), n > 0);
    if (n > 0) assert_true(ts == min);
  }
  fl_timers_destroy(t);
}

/* ---------------------------------------------------------------------------------- */
/* Randomised comparison with a model                                                 */

/* A timer's address is drawn from a small universe so that registrations collide with
 * existing timers, deletions hit, and the population stays bounded. */
#define M_KGS 16
#define M_KEYS 4
#define M_NSS 3
#define M_TSS 24
#define M_IDS (2 * M_KGS * M_KEYS * M_NSS * M_TSS)

typedef struct model_timer {
  int64_t ts;
  uint64_t seq;
  int id;
} model_timer_t;

typedef struct model {
  /* Per domain, in descending (ts, seq) order so that the earliest timer, the one pop
   * takes, is at the end. */
  model_timer_t *sorted[2];
  size_t len[2];
  bool present[M_IDS];
  uint64_t next_seq;
} model_t;

static const model_timer_t *model_first(const model_t *m, int d) {
  return m->len[d] ? &m->sorted[d][m->len[d] - 1] : NULL;
}

static uint64_t rng_state;

static uint64_t rng(void) {
  /* splitmix64: fixed seed, so the run is deterministic */
  uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

static const int64_t m_ts_values[M_TSS] = {INT64_MIN + 1,
                                           INT64_MIN + 2,
                                           -1000000,
                                           -5,
                                           -1,
                                           0,
                                           1,
                                           2,
                                           3,
                                           4,
                                           5,
                                           7,
                                           10,
                                           11,
                                           100,
                                           999,
                                           1000,
                                           1001,
                                           5000,
                                           1 << 30,
                                           INT64_C(1) << 40,
                                           INT64_MAX - 1,
                                           INT64_MAX,
                                           42};

typedef struct addr {
  fl_time_domain_t d;
  uint16_t kg;
  unsigned char key[8];
  size_t key_len;
  unsigned char ns[20];
  size_t ns_len;
  int64_t ts;
} addr_t;

enum {
  M_KG_FIRST = 100
};

static void addr_of(int id, addr_t *a) {
  int ts_i = id % M_TSS;
  id /= M_TSS;
  int ns_i = id % M_NSS;
  id /= M_NSS;
  int key_i = id % M_KEYS;
  id /= M_KEYS;
  int kg_i = id % M_KGS;
  id /= M_KGS;
  memset(a, 0, sizeof *a);
  a->d = id ? PT : EV;
  a->kg = (uint16_t)(M_KG_FIRST + kg_i);
  /* Key 0 is empty; the others are 1..7 bytes, distinct in their first byte, with a NUL
   * second byte. */
  a->key_len = key_i == 0 ? 0 : (size_t)(1 + key_i % 7);
  for (size_t i = 0; i < a->key_len; i++)
    a->key[i] = (unsigned char)(i == 0 ? key_i : i == 1 ? 0 : key_i * 13 + (int)i);
  /* Namespaces: empty, 16 bytes (a window), 1 byte. */
  a->ns_len = ns_i == 0 ? 0 : ns_i == 1 ? 16 : 1;
  for (size_t i = 0; i < a->ns_len; i++) a->ns[i] = (unsigned char)(key_i + i * 3);
  a->ts = m_ts_values[ts_i];
}

static void model_register(model_t *m, int id) {
  if (m->present[id]) return;
  addr_t a;
  addr_of(id, &a);
  m->present[id] = true;
  /* The newest timer pops after every timer with the same or a smaller ts: it goes
   * before them in the descending array. */
  model_timer_t *arr = m->sorted[a.d];
  size_t lo = 0, hi = m->len[a.d];
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (arr[mid].ts > a.ts)
      lo = mid + 1;
    else
      hi = mid;
  }
  for (size_t i = m->len[a.d]; i > lo; i--) arr[i] = arr[i - 1];
  arr[lo] = (model_timer_t){a.ts, m->next_seq++, id};
  m->len[a.d]++;
}

static void model_delete(model_t *m, int id) {
  if (!m->present[id]) return;
  addr_t a;
  addr_of(id, &a);
  m->present[id] = false;
  model_timer_t *arr = m->sorted[a.d];
  size_t i = m->len[a.d] - 1;
  while (arr[i].id != id) i--;
  for (; i + 1 < m->len[a.d]; i++) arr[i] = arr[i + 1];
  m->len[a.d]--;
}

static void check_pop_against_model(fl_timers_t *t, model_t *m, fl_time_domain_t d, int64_t upto) {
  fl_timer_t out;
  int got = fl_timers_pop(t, d, upto, &out);
  addr_t a;
  bool due = false;
  if (m->len[d] > 0) {
    addr_of(model_first(m, d)->id, &a);
    due = a.ts <= upto;
  }
  assert_int_equal(got, due ? 1 : 0);
  if (!due) return;
  assert_true(out.ts == a.ts);
  assert_int_equal(out.kg, a.kg);
  assert_int_equal(out.key_len, a.key_len);
  if (a.key_len) assert_memory_equal(out.key, a.key, a.key_len);
  assert_int_equal(out.ns_len, a.ns_len);
  if (a.ns_len) assert_memory_equal(out.ns, a.ns, a.ns_len);
  model_delete(m, model_first(m, d)->id);
}

static void random_operations_match_sorted_array_model(void **state) {
  (void)state;
  rng_state = 20240611;
  model_t *m = calloc(1, sizeof *m);
  assert_non_null(m);
  m->sorted[0] = calloc(M_IDS, sizeof(model_timer_t));
  m->sorted[1] = calloc(M_IDS, sizeof(model_timer_t));
  assert_non_null(m->sorted[0]);
  assert_non_null(m->sorted[1]);
  fl_timers_t *t = fl_timers_new(M_KG_FIRST, M_KGS);
  assert_non_null(t);
  size_t max_pop = 0;

  for (int op = 0; op < 200000; op++) {
    uint64_t r = rng();
    int id = (int)(r % M_IDS);
    unsigned kind = (unsigned)((r >> 32) % 100);
    addr_t a;
    addr_of(id, &a);
    /* Phases shift the balance so the population grows large, then drains. */
    unsigned reg_pct = (op / 20000) % 2 ? 40 : 65;
    if (kind < reg_pct) {
      assert_int_equal(fl_timers_register(t, a.d, a.kg, a.key, a.key_len, a.ns, a.ns_len, a.ts), 0);
      model_register(m, id);
    } else if (kind < reg_pct + 20) {
      assert_int_equal(fl_timers_delete(t, a.d, a.kg, a.key, a.key_len, a.ns, a.ns_len, a.ts), 0);
      model_delete(m, id);
    } else {
      fl_time_domain_t d = (r >> 40) & 1 ? PT : EV;
      int64_t upto = m_ts_values[(r >> 48) % M_TSS];
      /* Sometimes drain a few at once, as a watermark advance does. */
      int n = (r >> 56) % 4 == 0 ? 8 : 1;
      for (int i = 0; i < n; i++) check_pop_against_model(t, m, d, upto);
    }
    for (int d = 0; d < 2; d++) {
      assert_int_equal(fl_timers_count(t, (fl_time_domain_t)d), m->len[d]);
      int64_t ts = 0;
      int has = fl_timers_peek(t, (fl_time_domain_t)d, &ts);
      assert_int_equal(has, m->len[d] > 0);
      if (has) assert_true(ts == model_first(m, d)->ts);
      if (m->len[d] > max_pop) max_pop = m->len[d];
    }
  }
  /* The universe was well used (otherwise the test would prove little). */
  assert_true(max_pop > 500);
  for (int d = 0; d < 2; d++)
    while (m->len[d] > 0) check_pop_against_model(t, m, (fl_time_domain_t)d, INT64_MAX);
  pop_none(t, EV, INT64_MAX);
  pop_none(t, PT, INT64_MAX);
  fl_timers_destroy(t);
  free(m->sorted[0]);
  free(m->sorted[1]);
  free(m);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(pops_in_timestamp_order_across_key_groups),
      cmocka_unit_test(equal_timestamps_pop_in_registration_order),
      cmocka_unit_test(registering_twice_fires_once_and_keeps_first_position),
      cmocka_unit_test(timers_differing_in_any_field_are_distinct),
      cmocka_unit_test(delete_of_existing_absent_head_and_middle),
      cmocka_unit_test(delete_of_key_group_head_updates_global_minimum),
      cmocka_unit_test(domains_are_independent),
      cmocka_unit_test(pop_respects_upto_including_extreme_timestamps),
      cmocka_unit_test(peek_and_pop_on_empty_service_return_zero),
      cmocka_unit_test(invalid_arguments_are_rejected),
      cmocka_unit_test(key_and_namespace_bytes_are_returned_exactly),
      cmocka_unit_test(popped_bytes_survive_registers_that_grow_the_buffer),
      cmocka_unit_test(timer_registered_during_pop_loop_fires_in_same_loop),
      cmocka_unit_test(destroy_frees_pending_timers),
      cmocka_unit_test(key_group_index_stays_ordered_as_key_groups_empty_and_refill),
      cmocka_unit_test(random_operations_match_sorted_array_model),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
