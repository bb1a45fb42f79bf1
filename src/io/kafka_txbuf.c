/*
 * The write-ahead buffer of an exactly-once transaction (kafka_sink_int.h): every record
 * a transaction holds, encoded once, with the partition and offset the broker gave it
 * filled in by the delivery report. The same bytes are the transaction's checkpoint
 * state, so a restore can write the records again.
 */
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "io/kafka_sink_int.h"
#include "util/vec.h"

#define ENT_FIXED (4 * 4 + 4 + 8 + 8)

struct txblk {
  _Atomic size_t refs;
  size_t pad; /* bytes stay 16-byte aligned */
  uint8_t bytes[];
};

void fl_ksink_txbuf_release(void *blk) {
  txblk_t *k = blk;
  /* acq_rel: the sharer's reads of the bytes happen before the buffer writes them again */
  if (k && atomic_fetch_sub_explicit(&k->refs, 1, memory_order_acq_rel) == 1) free(k);
}

void *fl_ksink_txbuf_share(txbuf_t *b) {
  if (!b->blk) return NULL;
  atomic_fetch_add_explicit(&b->blk->refs, 1, memory_order_relaxed);
  return b->blk;
}

static bool txbuf_shared(const txbuf_t *b) {
  return b->blk && atomic_load_explicit(&b->blk->refs, memory_order_acquire) > 1;
}

/* Moves b to a block of cap bytes holding data[from, len) of the current one (realloc
 * when b is the only holder and from is 0). */
static int txbuf_move(txbuf_t *b, size_t cap, size_t from) {
  txblk_t *k;
  if (!from && !txbuf_shared(b)) {
    if (!(k = realloc(b->blk, sizeof *k + cap))) return FL_ENOMEM;
    if (!b->blk) atomic_init(&k->refs, 1);
  } else {
    if (!(k = malloc(sizeof *k + cap))) return FL_ENOMEM;
    atomic_init(&k->refs, 1);
    if (b->len > from) memcpy(k->bytes, b->data + from, b->len - from);
    fl_ksink_txbuf_release(b->blk);
  }
  b->blk = k;
  b->data = k->bytes;
  b->cap = cap;
  return FL_OK;
}

void fl_ksink_txbuf_free(txbuf_t *b) {
  fl_ksink_txbuf_release(b->blk);
  free(b->idx);
  memset(b, 0, sizeof *b);
}

int fl_ksink_txbuf_set(txbuf_t *b, const void *data, size_t len) {
  fl_ksink_txbuf_free(b);
  if (txbuf_move(b, len ? len : 1, 0)) return FL_ENOMEM;
  if (len) memcpy(b->data, data, len);
  b->len = len;
  return FL_OK;
}

/* Room for one more entry start in the index. */
static int txbuf_grow_idx(txbuf_t *b) { return FL_VEC_RESERVE(b->idx, b->cap_idx, b->n + 1); }

static int txbuf_reserve(txbuf_t *b, size_t more) {
  if (b->len + more > b->cap) {
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + more) cap *= 2;
    if (txbuf_move(b, cap, 0)) return FL_ENOMEM;
  }
  return txbuf_grow_idx(b);
}

static void put32(uint8_t **p, uint32_t v) {
  memcpy(*p, &v, 4);
  *p += 4;
}

int fl_ksink_txbuf_add(txbuf_t *b, const char *topic, const fl_kafka_message_t *m) {
  size_t tl = strlen(topic);
  size_t need = ENT_FIXED + tl + (m->key ? m->key_len : 0) + (m->value ? m->value_len : 0);
  for (size_t i = 0; i < m->n_headers; i++)
    need += 8 + strlen(m->headers[i].name) + (m->headers[i].value ? m->headers[i].value_len : 0);
  if (tl >= FL_KSINK_LEN_NONE || m->key_len >= FL_KSINK_LEN_NONE ||
      m->value_len >= FL_KSINK_LEN_NONE)
    return FL_EINVAL;
  int rc = txbuf_reserve(b, need);
  if (rc) return rc;
  uint8_t *p = b->data + b->len;
  put32(&p, (uint32_t)tl);
  put32(&p, m->key ? (uint32_t)m->key_len : FL_KSINK_LEN_NONE);
  put32(&p, m->value ? (uint32_t)m->value_len : FL_KSINK_LEN_NONE);
  put32(&p, (uint32_t)m->n_headers);
  int32_t part = m->partition;
  int64_t off = -1, ts = m->timestamp;
  memcpy(p, &part, 4);
  p += 4;
  memcpy(p, &off, 8);
  p += 8;
  memcpy(p, &ts, 8);
  p += 8;
  memcpy(p, topic, tl);
  p += tl;
  if (m->key && m->key_len) {
    memcpy(p, m->key, m->key_len);
    p += m->key_len;
  }
  if (m->value && m->value_len) {
    memcpy(p, m->value, m->value_len);
    p += m->value_len;
  }
  for (size_t i = 0; i < m->n_headers; i++) {
    const fl_kafka_header_t *h = &m->headers[i];
    size_t nl = strlen(h->name);
    put32(&p, (uint32_t)nl);
    put32(&p, h->value ? (uint32_t)h->value_len : FL_KSINK_LEN_NONE);
    memcpy(p, h->name, nl);
    p += nl;
    if (h->value && h->value_len) {
      memcpy(p, h->value, h->value_len);
      p += h->value_len;
    }
  }
  b->idx[b->n++] = b->len;
  b->len = (size_t)(p - b->data);
  return FL_OK;
}

/* Decodes the entry at data[0, len) into e; returns its size, 0 if malformed. */
size_t fl_ksink_entry_decode(const uint8_t *data, size_t len, entry_t *e) {
  if (len < ENT_FIXED) return 0;
  uint32_t v[4];
  memcpy(v, data, 16);
  memcpy(&e->partition, data + FL_KSINK_ENT_OFF_PART, 4);
  memcpy(&e->offset, data + FL_KSINK_ENT_OFF_OFFSET, 8);
  memcpy(&e->ts, data + 28, 8);
  size_t pos = ENT_FIXED;
  e->topic_len = v[0];
  e->n_headers = v[3];
  if (len - pos < v[0]) return 0;
  e->topic = (const char *)data + pos;
  pos += v[0];
  e->key_len = v[1] == FL_KSINK_LEN_NONE ? 0 : v[1];
  e->value_len = v[2] == FL_KSINK_LEN_NONE ? 0 : v[2];
  if (len - pos < e->key_len) return 0;
  e->key = v[1] == FL_KSINK_LEN_NONE ? NULL : data + pos;
  pos += e->key_len;
  if (len - pos < e->value_len) return 0;
  e->value = v[2] == FL_KSINK_LEN_NONE ? NULL : data + pos;
  pos += e->value_len;
  e->headers = data + pos;
  for (uint32_t i = 0; i < e->n_headers; i++) {
    uint32_t hv[2];
    if (len - pos < 8) return 0;
    memcpy(hv, data + pos, 8);
    pos += 8;
    size_t vl = hv[1] == FL_KSINK_LEN_NONE ? 0 : hv[1];
    if (len - pos < hv[0] || len - pos - hv[0] < vl) return 0;
    pos += hv[0] + vl;
  }
  return pos;
}

/* Rebuilds b's index from its bytes (a restored state); FL_EPARSE if malformed. */
int fl_ksink_txbuf_index(txbuf_t *b, uint64_t n) {
  size_t pos = 0;
  for (uint64_t k = 0; k < n; k++) {
    entry_t e;
    size_t sz = fl_ksink_entry_decode(b->data + pos, b->len - pos, &e);
    if (!sz) return FL_EPARSE;
    if (txbuf_grow_idx(b)) return FL_ENOMEM;
    b->idx[b->n++] = pos;
    pos += sz;
  }
  return pos == b->len ? FL_OK : FL_EPARSE;
}

/* Drops the produced entries [0, n_prod), keeping the buffered ones. O(buffered). */
int fl_ksink_txbuf_drop_produced(txbuf_t *b) {
  if (!b->n_prod) return FL_OK;
  size_t cut = b->n_prod < b->n ? b->idx[b->n_prod] : b->len;
  if (txbuf_shared(b)) {
    /* a checkpoint still writes the bytes: the rest moves to a block of its own */
    if (txbuf_move(b, b->cap, cut)) return FL_ENOMEM;
  } else {
    memmove(b->data, b->data + cut, b->len - cut);
  }
  b->len -= cut;
  for (size_t i = b->n_prod; i < b->n; i++) b->idx[i - b->n_prod] = b->idx[i] - cut;
  b->n -= b->n_prod;
  b->n_prod = 0;
  return FL_OK;
}