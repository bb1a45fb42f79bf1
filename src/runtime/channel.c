#include <stdlib.h>

#include "runtime/channel.h"

fl_batch_t *fl_batch_new(uint32_t cap, uint32_t bytes) {
  size_t size = sizeof(fl_batch_t) + (size_t)cap * sizeof(fl_entry_t) + bytes;
  fl_batch_t *b = malloc(size);
  if (!b) return NULL;
  b->next = NULL;
  b->n = 0;
  b->ctrl_end = 0;
  b->cap = cap;
  b->used = 0;
  b->bytes = bytes;
  b->e = (fl_entry_t *)(b + 1);
  b->data = (uint8_t *)(b->e + cap);
  return b;
}

fl_ring_t *fl_ring_new(size_t capacity) {
  size_t cap = 2;
  while (cap < capacity) cap <<= 1;
  fl_ring_t *r = calloc(1, sizeof *r);
  if (!r) return NULL;
  r->slots = calloc(cap, sizeof *r->slots);
  if (!r->slots) {
    free(r);
    return NULL;
  }
  r->mask = cap - 1;
  atomic_init(&r->head, 0);
  atomic_init(&r->tail, 0);
  return r;
}

void fl_ring_destroy(fl_ring_t *r) {
  if (!r) return;
  size_t h = atomic_load(&r->head), t = atomic_load(&r->tail);
  for (; h != t; h++) fl_batch_free(r->slots[h & r->mask]);
  free(r->slots);
  free(r);
}

bool fl_ring_push(fl_ring_t *r, fl_batch_t *b) {
  size_t t = atomic_load_explicit(&r->tail, memory_order_relaxed);
  size_t h = atomic_load_explicit(&r->head, memory_order_acquire);
  if (t - h > r->mask) return false;
  r->slots[t & r->mask] = b;
  /* seq_cst: pairs with the consumer's "sleeping" flag (see worker.c) */
  atomic_store_explicit(&r->tail, t + 1, memory_order_seq_cst);
  return true;
}

fl_batch_t *fl_ring_pop(fl_ring_t *r, bool *was_full) {
  size_t h = atomic_load_explicit(&r->head, memory_order_relaxed);
  size_t t = atomic_load_explicit(&r->tail, memory_order_acquire);
  if (h == t) return NULL;
  fl_batch_t *b = r->slots[h & r->mask];
  if (was_full) *was_full = (t - h) > r->mask;
  atomic_store_explicit(&r->head, h + 1, memory_order_seq_cst);
  return b;
}
