/*
 * The exactly-once Kafka sink's write-ahead buffer (src/io/kafka_txbuf.c) while a
 * checkpoint shares it: a checkpoint writes the buffer's bytes as of its barrier off
 * the worker, while the sink goes on appending the records after the barrier and, once
 * the transaction commits, drops the committed ones. The bytes the checkpoint shares
 * must stay as they were until it releases them, whatever the buffer does meanwhile.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "io/kafka_sink_int.h"

static void add(txbuf_t *b, uint32_t i) {
  char key[32], value[200];
  int kl = snprintf(key, sizeof key, "k%u", i);
  memset(value, 'a' + (int)(i % 26), sizeof value);
  fl_kafka_message_t m = {.partition = -1,
                          .timestamp = i,
                          .key = key,
                          .key_len = (size_t)kl,
                          .value = value,
                          .value_len = 20 + i % 180};
  assert_int_equal(fl_ksink_txbuf_add(b, "features", &m), 0);
}

/* Entry k of b is the record add() made of i. */
static void check_entry(const txbuf_t *b, size_t k, uint32_t i) {
  entry_t e;
  assert_true(fl_ksink_entry_decode(b->data + b->idx[k], b->len - b->idx[k], &e) > 0);
  char key[32];
  int kl = snprintf(key, sizeof key, "k%u", i);
  assert_int_equal(e.key_len, (uint32_t)kl);
  assert_memory_equal(e.key, key, (size_t)kl);
  assert_int_equal(e.value_len, 20 + i % 180);
  assert_int_equal(e.ts, (int64_t)i);
}

/* What a checkpoint shares of a buffer, and a copy of its bytes then. */
typedef struct shared {
  const uint8_t *bytes;
  unsigned char *copy;
  size_t len;
  void *blk;
} shared_t;

static shared_t share(txbuf_t *b) {
  shared_t s = {b->data, malloc(b->len), b->len, fl_ksink_txbuf_share(b)};
  assert_non_null(s.copy);
  assert_non_null(s.blk);
  memcpy(s.copy, b->data, b->len);
  return s;
}

/* The shared bytes are as they were (and, for ASan, still allocated); then released. */
static void check_and_release(shared_t *s) {
  assert_memory_equal(s->bytes, s->copy, s->len);
  fl_ksink_txbuf_release(s->blk);
  free(s->copy);
}

/* Appends that outgrow the block move the buffer to a new one; the shared bytes stay. */
static void growing_while_shared_leaves_the_shared_bytes(void **state) {
  (void)state;
  txbuf_t b = {0};
  for (uint32_t i = 0; i < 100; i++) add(&b, i);
  shared_t s = share(&b);
  for (uint32_t i = 100; i < 20000; i++) add(&b, i); /* grows many times */
  assert_ptr_not_equal(b.data, s.bytes);
  check_and_release(&s);
  assert_int_equal(b.n, 20000);
  for (uint32_t i = 0; i < 20000; i += 997) check_entry(&b, i, i);
  /* not shared any more: the next growth may move the block in place */
  for (uint32_t i = 20000; i < 40000; i++) add(&b, i);
  check_entry(&b, 39999, 39999);
  fl_ksink_txbuf_free(&b);
}

/* Dropping the committed entries while shared copies the rest out instead of moving
 * them over the shared bytes; unshared, it moves them in place. */
static void dropping_while_shared_leaves_the_shared_bytes(void **state) {
  (void)state;
  txbuf_t b = {0};
  for (uint32_t i = 0; i < 300; i++) add(&b, i);
  shared_t s = share(&b);
  b.n_prod = 200;
  assert_int_equal(fl_ksink_txbuf_drop_produced(&b), 0);
  assert_ptr_not_equal(b.data, s.bytes);
  assert_int_equal(b.n, 100);
  for (uint32_t k = 0; k < 100; k++) check_entry(&b, k, 200 + k);
  check_and_release(&s);
  const uint8_t *own = b.data;
  b.n_prod = 50;
  assert_int_equal(fl_ksink_txbuf_drop_produced(&b), 0);
  assert_ptr_equal(b.data, own);
  assert_int_equal(b.n, 50);
  for (uint32_t k = 0; k < 50; k++) check_entry(&b, k, 250 + k);
  fl_ksink_txbuf_free(&b);
}

/* The buffer can go first: the shared block lives until its last holder lets it go. A
 * restored state is a copy of its bytes. */
static void the_last_holder_frees_the_block(void **state) {
  (void)state;
  txbuf_t b = {0};
  assert_null(fl_ksink_txbuf_share(&b)); /* nothing to share yet */
  for (uint32_t i = 0; i < 10; i++) add(&b, i);
  shared_t s = share(&b);
  fl_ksink_txbuf_free(&b);
  txbuf_t r = {0};
  assert_int_equal(fl_ksink_txbuf_set(&r, s.bytes, s.len), 0);
  check_and_release(&s);
  assert_int_equal(fl_ksink_txbuf_index(&r, 10), 0);
  for (uint32_t k = 0; k < 10; k++) check_entry(&r, k, k);
  fl_ksink_txbuf_free(&r);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(growing_while_shared_leaves_the_shared_bytes),
      cmocka_unit_test(dropping_while_shared_leaves_the_shared_bytes),
      cmocka_unit_test(the_last_holder_frees_the_block),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
