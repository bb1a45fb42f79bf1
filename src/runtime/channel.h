/*
 * Batches and bounded single-producer/single-consumer rings: the only way data crosses
 * threads. A batch holds records and in-band control elements (watermarks, idleness
 * changes, end of input) in order; a ring holds a bounded number of batches. A full
 * ring is the backpressure: the sender stops pulling input until the receiver frees a
 * slot (src/runtime/edge.c and worker.c).
 */
#ifndef FL_RUNTIME_CHANNEL_H
#define FL_RUNTIME_CHANNEL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "flink.h"

typedef enum fl_entry_type {
  FL_E_RECORD = 0,
  FL_E_WATERMARK = 1,
  FL_E_IDLE = 2,    /* the sender's output became idle */
  FL_E_ACTIVE = 3,  /* ... and active again */
  FL_E_END = 4,     /* end of input from this sender */
  FL_E_BARRIER = 5, /* checkpoint barrier; ts is the checkpoint id */
  FL_E_LATENCY = 6  /* latency marker: kg is the source's ordinal, ts its monotonic ns */
} fl_entry_type_t;

typedef struct fl_entry {
  uint8_t type;
  uint16_t kg; /* key group of a record on a hash edge */
  uint32_t key_len;
  uint32_t value_len;
  uint32_t off;  /* key at data + off, value right after it */
  int64_t ts;    /* record timestamp or watermark */
  uint64_t hash; /* fl_hash64(key) of a record on a hash edge: the receiver's state reuses it */
} fl_entry_t;

typedef struct fl_batch {
  struct fl_batch *next; /* overflow queue link (sender side) */
  uint32_t n, cap;       /* entries */
  uint32_t used, bytes;  /* data */
  uint32_t ctrl_end;     /* one past the last control entry: records only from there on */
  fl_entry_t *e;
  uint8_t *data;
} fl_batch_t;

/* A batch for cap entries and `bytes` bytes of keys and values, in one allocation. */
fl_batch_t *fl_batch_new(uint32_t cap, uint32_t bytes);
static inline void fl_batch_free(fl_batch_t *b) { free(b); }
static inline bool fl_batch_fits(const fl_batch_t *b, size_t bytes) {
  return b->n < b->cap && (size_t)b->bytes - b->used >= bytes;
}

typedef struct fl_ring {
  _Atomic size_t head; /* next slot to read (consumer) */
  char pad1[64 - sizeof(size_t)];
  _Atomic size_t tail; /* next slot to write (producer) */
  char pad2[64 - sizeof(size_t)];
  size_t mask;
  fl_batch_t **slots;
} fl_ring_t;

fl_ring_t *fl_ring_new(size_t capacity); /* rounded up to a power of two */
/* Frees the ring and every batch still in it. */
void fl_ring_destroy(fl_ring_t *r);
/* Producer: false when full. */
bool fl_ring_push(fl_ring_t *r, fl_batch_t *b);
/* Consumer: NULL when empty; *was_full tells whether the ring was full before. */
fl_batch_t *fl_ring_pop(fl_ring_t *r, bool *was_full);
static inline bool fl_ring_empty(fl_ring_t *r) {
  return atomic_load_explicit(&r->head, memory_order_relaxed) ==
         atomic_load_explicit(&r->tail, memory_order_seq_cst);
}
static inline bool fl_ring_full(fl_ring_t *r) {
  return atomic_load_explicit(&r->tail, memory_order_relaxed) -
             atomic_load_explicit(&r->head, memory_order_seq_cst) >
         r->mask;
}

#endif
