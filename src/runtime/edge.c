/*
 * Edge writers: the sending side of a partitioned edge (keyBy, rebalance, broadcast) on
 * one worker. A record is copied into the open batch of its receiver (by key group,
 * round robin, or every receiver); a full batch is pushed onto the receiver's SPSC ring
 * (channel.h). A batch that does not fit in a full ring waits in the writer's overflow
 * queue: while any edge reachable from an input has overflow, the worker takes no more
 * of that input (worker.c), which is how backpressure travels upstream.
 */
#include <stdlib.h>
#include <string.h>

#include "runtime/job.h"
#include "util/hash.h"

static void ew_ship(fl_edge_writer_t *ew, int t, fl_batch_t *b) {
  fl_job_t *job = ew->w->job;
  atomic_fetch_add(&job->inflight, 1);
  if (!ew->ovf_head[t] && fl_ring_push(ew->rings[t], b)) {
    fl_worker_wake(ew->to[t]);
    return;
  }
  b->next = NULL;
  if (ew->ovf_tail[t])
    ew->ovf_tail[t]->next = b;
  else
    ew->ovf_head[t] = b;
  ew->ovf_tail[t] = b;
  ew->n_overflow++;
  atomic_store(&ew->w->waiting_space, 1);
}

bool fl_rt_ew_retry(fl_edge_writer_t *ew) {
  bool any = false;
  if (!ew->n_overflow) return false;
  for (int t = 0; t < ew->n; t++) {
    while (ew->ovf_head[t]) {
      fl_batch_t *b = ew->ovf_head[t];
      fl_batch_t *next = b->next; /* once pushed, b belongs to the receiver */
      if (!fl_ring_push(ew->rings[t], b)) break;
      ew->ovf_head[t] = next;
      if (!ew->ovf_head[t]) ew->ovf_tail[t] = NULL;
      ew->n_overflow--;
      any = true;
      fl_worker_wake(ew->to[t]);
    }
  }
  return any;
}

bool fl_rt_ew_can_retry(const fl_edge_writer_t *ew) {
  for (int t = 0; t < ew->n; t++)
    if (ew->ovf_head[t] && !fl_ring_full(ew->rings[t])) return true;
  return false;
}

bool fl_rt_ew_flush(fl_edge_writer_t *ew) {
  bool any = false;
  for (int t = 0; t < ew->n; t++) {
    fl_batch_t *b = ew->open[t];
    if (b && b->n) {
      ew->open[t] = NULL;
      ew_ship(ew, t, b);
      any = true;
    }
  }
  return any;
}

bool fl_rt_guards_blocked(fl_edge_writer_t *const *g, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (g[i]->n_overflow) return true;
  return false;
}

/* The data bytes of a batch of the standard size. */
static size_t batch_bytes(const fl_env_conf_t *c) {
  size_t b = c->batch_size * 48;
  return b < 16384 ? 16384 : b;
}

/* ew_batch when the open batch is missing or full: ships it and opens a new one. */
static __attribute__((noinline)) fl_batch_t *ew_batch_new(fl_edge_writer_t *ew, int t,
                                                          size_t bytes) {
  fl_batch_t *b = ew->open[t];
  if (b) {
    ew->open[t] = NULL;
    if (b->n)
      ew_ship(ew, t, b);
    else
      fl_batch_free(b);
  }
  const fl_env_conf_t *c = &ew->w->job->env->conf;
  size_t std = batch_bytes(c), want = std < bytes ? bytes : std;
  if (want > UINT32_MAX) return NULL;
  fl_worker_t *w = ew->w;
  if (want == std && w->spare) { /* a consumed batch of the standard size, again */
    b = w->spare;
    w->spare = b->next;
    w->n_spare--;
    b->next = NULL;
    b->n = b->ctrl_end = b->used = 0;
  } else {
    b = fl_batch_new((uint32_t)c->batch_size, (uint32_t)want);
  }
  ew->open[t] = b;
  return b;
}

void fl_rt_batch_done(fl_worker_t *w, fl_batch_t *b) {
  const fl_env_conf_t *c = &w->job->env->conf;
  if (w->n_spare < FL_SPARE_BATCHES && b->cap == c->batch_size && b->bytes == batch_bytes(c)) {
    b->next = w->spare;
    w->spare = b;
    w->n_spare++;
    return;
  }
  fl_batch_free(b);
}

/* The open batch for receiver t, with room for `bytes` more bytes (a new one when the
 * current one is full). */
static inline fl_batch_t *ew_batch(fl_edge_writer_t *ew, int t, size_t bytes) {
  fl_batch_t *b = ew->open[t];
  if (__builtin_expect(b && fl_batch_fits(b, bytes), 1)) return b;
  return ew_batch_new(ew, t, bytes);
}

/* Copies a key or value into a batch: most are a few words, for which a libc call
 * costs more than the copy. */
static inline void copy_in(uint8_t *dst, const void *src, size_t n) {
  const uint8_t *s = src;
  uint64_t a, b;
  if (n == 8) { /* ids, timestamps, doubles */
    memcpy(&a, s, 8);
    memcpy(dst, &a, 8);
  } else if (n >= 8 && n <= 16) {
    memcpy(&a, s, 8);
    memcpy(&b, s + n - 8, 8);
    memcpy(dst, &a, 8);
    memcpy(dst + n - 8, &b, 8);
  } else if (n >= 4 && n < 8) {
    uint32_t x, y;
    memcpy(&x, s, 4);
    memcpy(&y, s + n - 4, 4);
    memcpy(dst, &x, 4);
    memcpy(dst + n - 4, &y, 4);
  } else if (n > 16) {
    memcpy(dst, s, n);
  } else if (n) { /* 1 to 3 bytes: these three cover them */
    dst[0] = s[0];
    dst[n / 2] = s[n / 2];
    dst[n - 1] = s[n - 1];
  }
}

/* The slow ends of ew_append, out of line. */
static __attribute__((noinline, cold)) bool ew_no_batch(fl_edge_writer_t *ew, size_t bytes) {
  fl_op_fail(ew->producer, FL_ENOMEM, "out of memory for a channel batch of %zu bytes", bytes);
  return false;
}

static __attribute__((noinline)) int ew_ship_open(fl_edge_writer_t *ew, int t) {
  fl_batch_t *b = ew->open[t];
  ew->open[t] = NULL;
  ew_ship(ew, t, b);
  return FL_OK;
}

/* Appends one record to b, which has room for it. True when b is full now. The
 * record's and the batch's fields are read once, before the copies (which the compiler
 * must otherwise assume to change them). */
static inline bool ew_put(fl_batch_t *b, const void *key, size_t key_len, const fl_record_t *in,
                          uint16_t kg, uint64_t hash) {
  const void *value = in->value;
  size_t value_len = in->value_len;
  int64_t ts = in->timestamp;
  uint32_t n = b->n, used = b->used;
  fl_entry_t *e = &b->e[n];
  uint8_t *d = b->data + used;
  e->type = FL_E_RECORD;
  e->kg = kg;
  e->key_len = (uint32_t)key_len;
  e->value_len = (uint32_t)value_len;
  e->off = used;
  e->ts = ts;
  e->hash = hash;
  b->n = n + 1;
  b->used = used + (uint32_t)(key_len + value_len);
  bool full = n + 1 == b->cap;
  copy_in(d, key, key_len);
  copy_in(d + key_len, value, value_len);
  return full;
}

/* Appends one record for receiver t. false after a failure. */
static inline bool ew_append(fl_edge_writer_t *ew, int t, const void *key, size_t key_len,
                             const fl_record_t *in, uint16_t kg, uint64_t hash) {
  size_t bytes = key_len + in->value_len;
  fl_batch_t *b = ew_batch(ew, t, bytes);
  if (__builtin_expect(!b, 0)) return ew_no_batch(ew, bytes);
  if (__builtin_expect(ew_put(b, key, key_len, in, kg, hash), 0)) ew_ship_open(ew, t);
  return true;
}

/* fl_rt_ew_record's record when receiver t's batch is missing or full. */
static __attribute__((noinline)) int ew_record_new_batch(fl_edge_writer_t *ew, int t,
                                                         const fl_record_t *in, uint16_t kg,
                                                         uint64_t hash) {
  ew_append(ew, t, in->key, in->key_len, in, kg, hash);
  return FL_OK;
}

/* Any record: a key selector, broadcast, round robin, checks of the sizes. */
static __attribute__((noinline)) int ew_record_any(fl_edge_writer_t *ew, const fl_record_t *in) {
  fl_op_t *prod = ew->producer;
  fl_job_t *job = ew->w->job;
  const void *key = in->key;
  size_t key_len = in->key_len;
  if (ew->part == FL_PART_HASH && ew->key_fn) {
    int rc = ew->key_fn(&prod->ctx, in, &key, &key_len, ew->key_opaque);
    if (rc < 0) {
      fl_op_user_failed(prod, rc, "key selector");
      return FL_OK;
    }
    if (!key && key_len) {
      fl_op_fail(prod, FL_EINVAL, "key selector returned NULL key bytes of length %zu", key_len);
      return FL_OK;
    }
  }
  if (key_len > UINT32_MAX / 2 || in->value_len > UINT32_MAX / 2) {
    fl_op_fail(prod, FL_EINVAL, "record too large to cross a channel (key %zu, value %zu bytes)",
               key_len, in->value_len);
    return FL_OK;
  }
  int t;
  uint16_t kg = 0;
  uint64_t hash = 0;
  if (ew->part == FL_PART_BROADCAST) {
    for (t = 0; t < ew->n; t++)
      if (!ew_append(ew, t, key, key_len, in, 0, 0)) return FL_OK;
    return FL_OK;
  }
  if (ew->part == FL_PART_HASH) {
    hash = fl_hash64_inline(key, key_len, 0);
    if (ew->maxp_shift >= 0) {
      /* max parallelism 2^s: the same key group and subtask without dividing */
      kg = (uint16_t)(hash & (((uint64_t)1 << ew->maxp_shift) - 1));
      t = (int)(((uint32_t)kg * (uint32_t)ew->n) >> ew->maxp_shift);
    } else {
      uint32_t maxp = job->env->conf.max_parallelism;
      kg = (uint16_t)fl_key_group(hash, maxp);
      t = fl_key_group_subtask(kg, maxp, ew->n);
    }
  } else {
    t = (int)(ew->rr++ % (uint32_t)ew->n);
  }
  ew_append(ew, t, key, key_len, in, kg, hash);
  return FL_OK;
}

/* fl_rt_ew_record's common case once the key is hashed: room in the open batch. The
 * rest are tail calls, so neither caller needs a stack frame. */
static inline __attribute__((always_inline)) int ew_record_hashed(fl_edge_writer_t *ew,
                                                                  const fl_record_t *in,
                                                                  uint64_t hash) {
  uint16_t kg = (uint16_t)(hash & ew->kg_mask);
  int t = ew->n == 1 ? 0 : (int)(((uint32_t)kg * (uint32_t)ew->n) >> ew->maxp_shift);
  fl_batch_t *b = ew->open[t];
  if (__builtin_expect(!b || !fl_batch_fits(b, in->key_len + in->value_len), 0))
    return ew_record_new_batch(ew, t, in, kg, hash);
  if (__builtin_expect(ew_put(b, in->key, in->key_len, in, kg, hash), 0))
    return ew_ship_open(ew, t);
  return FL_OK;
}

/* ew_record_hashed for an 8-byte key and an 8-byte value (ids, counts, timestamps,
 * doubles): the lengths as constants leave the compiler registers for the rest. */
static inline __attribute__((always_inline)) int ew_record_8_8(fl_edge_writer_t *ew,
                                                               const fl_record_t *in) {
  const void *key = in->key, *value = in->value;
  int64_t ts = in->timestamp;
  uint64_t hash = fl_hash64_inline(key, 8, 0);
  uint16_t kg = (uint16_t)(hash & ew->kg_mask);
  int t = ew->n == 1 ? 0 : (int)(((uint32_t)kg * (uint32_t)ew->n) >> ew->maxp_shift);
  fl_batch_t *b = ew->open[t];
  if (__builtin_expect(!b || !fl_batch_fits(b, 16), 0))
    return ew_record_new_batch(ew, t, in, kg, hash);
  uint32_t n = b->n, used = b->used;
  fl_entry_t *e = &b->e[n];
  uint8_t *d = b->data + used;
  e->type = FL_E_RECORD;
  e->kg = kg;
  e->key_len = 8;
  e->value_len = 8;
  e->off = used;
  e->ts = ts;
  e->hash = hash;
  b->n = n + 1;
  b->used = used + 16;
  uint64_t k, v;
  memcpy(&k, key, 8);
  memcpy(&v, value, 8);
  memcpy(d, &k, 8);
  memcpy(d + 8, &v, 8);
  if (__builtin_expect(n + 1 == b->cap, 0)) return ew_ship_open(ew, t);
  return FL_OK;
}

/* Keys of other lengths than 8, out of line. */
static __attribute__((noinline)) int ew_record_key(fl_edge_writer_t *ew, const fl_record_t *in) {
  return ew_record_hashed(ew, in, fl_hash64_inline(in->key, in->key_len, 0));
}

/* 8-byte keys with values of other lengths up to 16 bytes, out of line. 8-byte keys
 * (ids) get the hash's code for that length, the same value. */
static __attribute__((noinline)) int ew_record_key8(fl_edge_writer_t *ew, const fl_record_t *in) {
  return ew_record_hashed(ew, in, fl_hash64_inline(in->key, 8, 0));
}

/* Always FL_OK: a failure fails the producer (fl_op_fail). The value lets the emit
 * that ends in this call make it a tail call. The common case inline: hash
 * partitioning by the record's key with a power-of-two max parallelism, and an 8-byte
 * key and value (ids, counts, timestamps); the others are tail calls, so that this
 * case keeps the registers the rest would need saved. */
int fl_rt_ew_record(fl_edge_writer_t *ew, const fl_record_t *in) {
  size_t key_len = in->key_len, value_len = in->value_len;
  if (__builtin_expect(ew->by_key_pow2 && key_len == 8 && value_len == 8, 1))
    return ew_record_8_8(ew, in);
  /* keys and values of up to 16 bytes are copied without a libc call */
  if (!ew->by_key_pow2 || (key_len | value_len) > 16) return ew_record_any(ew, in);
  if (key_len != 8) return ew_record_key(ew, in);
  return ew_record_key8(ew, in);
}

void fl_rt_ew_control(fl_edge_writer_t *ew, fl_entry_type_t type, int64_t ts) {
  for (int t = 0; t < ew->n; t++) {
    fl_batch_t *b = ew->open[t];
    /* A watermark right after a watermark supersedes it: watermarks only grow. */
    if (type == FL_E_WATERMARK && b && b->n && b->e[b->n - 1].type == FL_E_WATERMARK) {
      b->e[b->n - 1].ts = ts;
      continue;
    }
    b = ew_batch(ew, t, 0);
    if (!b) {
      fl_op_fail(ew->producer, FL_ENOMEM, "out of memory for a channel batch");
      return;
    }
    fl_entry_t *e = &b->e[b->n++];
    memset(e, 0, sizeof *e);
    e->type = (uint8_t)type;
    e->ts = ts;
    b->ctrl_end = b->n;
    if (b->n == b->cap || type == FL_E_END || type == FL_E_BARRIER) {
      ew->open[t] = NULL;
      ew_ship(ew, t, b);
    }
  }
}

void fl_rt_ew_latency(fl_edge_writer_t *ew, int src, int64_t made_ns) {
  int t = (int)(ew->rr++ % (uint32_t)ew->n);
  fl_batch_t *b = ew_batch(ew, t, 0);
  if (!b) {
    fl_op_fail(ew->producer, FL_ENOMEM, "out of memory for a channel batch");
    return;
  }
  fl_entry_t *e = &b->e[b->n++];
  memset(e, 0, sizeof *e);
  e->type = FL_E_LATENCY;
  e->kg = (uint16_t)src;
  e->ts = made_ns;
  b->ctrl_end = b->n;
  if (b->n == b->cap) {
    ew->open[t] = NULL;
    ew_ship(ew, t, b);
  }
}

fl_edge_writer_t *fl_rt_ew_new(fl_worker_t *w, const fl_input_t *in, fl_op_t *producer) {
  int P = w->job->P;
  fl_edge_writer_t *ew = calloc(1, sizeof *ew);
  if (!ew) return NULL;
  ew->w = w;
  ew->part = in->part;
  ew->key_fn = in->key_fn;
  ew->key_opaque = in->key_opaque;
  ew->producer = producer;
  ew->n = P;
  ew->rr = (uint32_t)w->index; /* spread round robin starts */
  uint32_t maxp = w->job->env->conf.max_parallelism;
  ew->maxp_shift = -1;
  for (int s = 0; s < 16; s++)
    if (maxp == (uint32_t)1 << s) ew->maxp_shift = s;
  ew->by_key_pow2 = ew->part == FL_PART_HASH && !ew->key_fn && ew->maxp_shift >= 0;
  if (ew->maxp_shift >= 0) ew->kg_mask = ((uint32_t)1 << ew->maxp_shift) - 1;
  ew->rings = calloc((size_t)P, sizeof *ew->rings);
  ew->to = calloc((size_t)P, sizeof *ew->to);
  ew->open = calloc((size_t)P, sizeof *ew->open);
  ew->ovf_head = calloc((size_t)P, sizeof *ew->ovf_head);
  ew->ovf_tail = calloc((size_t)P, sizeof *ew->ovf_tail);
  if (!ew->rings || !ew->to || !ew->open || !ew->ovf_head || !ew->ovf_tail) goto fail;
  for (int t = 0; t < P; t++) {
    ew->rings[t] = fl_ring_new(w->job->env->conf.channel_capacity);
    if (!ew->rings[t]) goto fail;
    ew->to[t] = &w->job->workers[t];
  }
  return ew;
fail:
  fl_rt_ew_free(ew);
  return NULL;
}

void fl_rt_ew_free(fl_edge_writer_t *ew) {
  if (!ew) return;
  for (int t = 0; t < ew->n; t++) {
    if (ew->rings) fl_ring_destroy(ew->rings[t]);
    if (ew->open) fl_batch_free(ew->open[t]);
    for (fl_batch_t *b = ew->ovf_head ? ew->ovf_head[t] : NULL, *nx; b; b = nx) {
      nx = b->next;
      fl_batch_free(b);
    }
  }
  free(ew->rings);
  free(ew->to);
  free(ew->open);
  free(ew->ovf_head);
  free(ew->ovf_tail);
  free(ew);
}
