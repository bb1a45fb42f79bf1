/*
 * The canonical operator snapshot (snapshot.h has the format), written and read as a
 * stream so that neither a checkpoint nor a restore holds a snapshot in memory.
 *
 * Writing goes through one buffer of FL_SNAPSHOT_BUF bytes. The two records whose count
 * comes before their entries (a timer section, a map cell) are written as chunks: the
 * header and a zero count go into the buffer, entries follow, and when the buffer is
 * full the count is patched in, the buffer handed to the write function, and the same
 * header starts the next chunk. The format lets sections and map cells repeat, so a
 * reader needs no change for it. A value larger than the buffer goes to the write
 * function as it is.
 *
 * Reading keeps a window over the stream that grows only to hold the largest single
 * item (a value, a key); the key and namespace of a cell are copied aside before its
 * value is read, as reading may move the window.
 */
#include "checkpoint/snapshot.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "state/timers_rocksdb.h"
#include "util/buf.h"
#include "util/vec.h"

#define MAGIC "FLSNAP01"
#define SEC_END 0
#define SEC_OPSTATE 1
#define SEC_TABLE 2
#define SEC_TIMERS 3
#define SEC_NATIVE 4
#define CELL_END 0
#define CELL_VALUE 1
#define CELL_MAP 2
/* Cells visited per walk step: the map cells among them are remembered (their keys)
 * until their entries are written after the step. */
#define WALK_BATCH 256

/* ---------------------------------------------------------------------------------- */
/* The writer                                                                           */

typedef struct sw {
  fl_snapshot_write_fn write;
  void *arg;
  unsigned char buf[FL_SNAPSHOT_BUF];
  size_t len;
  int err;
  char *msg;
  size_t msg_size;
  uint64_t bytes;
  size_t maps_cap; /* the map cells remembered by the current walk step */
  size_t peak;     /* the most memory held at once: buf, head, the walk step's list */
  /* the open chunk */
  bool in_chunk;
  fl_buf_t head;   /* its header, written again at the start of every piece */
  size_t count_at; /* offset of its count in buf */
  int count_width; /* 4 (map cell) or 8 (timers) */
  uint64_t count;
} sw_t;

static void sw_mem(sw_t *w) {
  size_t now = sizeof w->buf + w->head.cap + w->maps_cap;
  if (now > w->peak) w->peak = now;
}

static int sw_out(sw_t *w, const void *p, size_t n) {
  if (w->err || n == 0) return w->err;
  int rc = w->write(w->arg, p, n, w->msg, w->msg_size);
  if (rc) return w->err = rc;
  w->bytes += n;
  return FL_OK;
}

static int sw_flush(sw_t *w) {
  int rc = sw_out(w, w->buf, w->len);
  w->len = 0;
  return rc;
}

/* Appends bytes outside a chunk. */
static int sw_put(sw_t *w, const void *p, size_t n) {
  if (w->err) return w->err;
  if (n > sizeof w->buf - w->len) {
    if (sw_flush(w)) return w->err;
    if (n >= sizeof w->buf) return sw_out(w, p, n);
  }
  if (n) memcpy(w->buf + w->len, p, n);
  w->len += n;
  return FL_OK;
}

static int sw_u8(sw_t *w, uint8_t v) { return sw_put(w, &v, 1); }
static int sw_u32(sw_t *w, uint32_t v) { return sw_put(w, &v, 4); }
static int sw_u64(sw_t *w, uint64_t v) { return sw_put(w, &v, 8); }
static int sw_bytes(sw_t *w, const void *p, size_t n) {
  if (n > UINT32_MAX) return w->err = FL_EINVAL;
  sw_u32(w, (uint32_t)n);
  return sw_put(w, p, n);
}

/* Starts a piece of the open chunk: its header and a zero count. */
static int sw_piece(sw_t *w) {
  size_t need = w->head.len + (size_t)w->count_width;
  if (need > sizeof w->buf - w->len && sw_flush(w)) return w->err;
  memcpy(w->buf + w->len, w->head.data, w->head.len);
  w->len += w->head.len;
  w->count_at = w->len;
  memset(w->buf + w->len, 0, (size_t)w->count_width);
  w->len += (size_t)w->count_width;
  w->count = 0;
  return FL_OK;
}

/* Ends the piece: patches its count in, or takes an empty piece back. */
static void sw_piece_end(sw_t *w) {
  if (w->count == 0) {
    w->len = w->count_at - w->head.len;
  } else if (w->count_width == 4) {
    uint32_t c = (uint32_t)w->count;
    memcpy(w->buf + w->count_at, &c, 4);
  } else {
    memcpy(w->buf + w->count_at, &w->count, 8);
  }
}

static int sw_chunk_begin(sw_t *w, int count_width) {
  if (w->err) return w->err;
  /* a header never exceeds the buffer: keys and namespaces of map cells are bounded by
   * the checks of the caller */
  w->in_chunk = true;
  w->count_width = count_width;
  sw_mem(w);
  return sw_piece(w);
}

static int sw_chunk_end(sw_t *w) {
  if (w->in_chunk && !w->err) sw_piece_end(w);
  w->in_chunk = false;
  w->head.len = 0;
  return w->err;
}

/* One entry of the open chunk, given as n pieces. A count of UINT32_MAX entries, or an
 * entry too large for the buffer, gets a piece of its own. */
static int sw_entry(sw_t *w, const void *const *p, const size_t *len, size_t n) {
  if (w->err) return w->err;
  size_t need = 0;
  for (size_t i = 0; i < n; i++) need += len[i];
  bool full = w->count_width == 4 && w->count == UINT32_MAX;
  if (need > sizeof w->buf - w->len || full) {
    sw_piece_end(w);
    if (sw_flush(w) || sw_piece(w)) return w->err;
    if (need > sizeof w->buf - w->len) {
      /* alone in a piece, passed through */
      w->count = 1;
      sw_piece_end(w);
      if (sw_flush(w)) return w->err;
      for (size_t i = 0; i < n; i++)
        if (sw_out(w, p[i], len[i])) return w->err;
      return sw_piece(w);
    }
  }
  for (size_t i = 0; i < n; i++) {
    if (len[i]) memcpy(w->buf + w->len, p[i], len[i]);
    w->len += len[i];
  }
  w->count++;
  return FL_OK;
}

/* ---------------------------------------------------------------------------------- */
/* Tables                                                                               */

typedef struct walk {
  sw_t *w;
  fl_buf_t maps; /* [u16 kg][u32 klen][key][u32 nslen][ns] per map cell of this step */
  int err;
} walk_t;

/* Appends a map cell's address to b: [u16 kg][u32 klen][key][u32 nslen][ns], as a step's
 * list of map cells (next_map) and the head of a map cell's chunks hold it. */
static int put_map_addr(fl_buf_t *b, const fl_kkey_t *k) {
  uint32_t kl = (uint32_t)k->key_len, nl = (uint32_t)k->ns_len;
  int rc = fl_buf_append(b, &k->kg, 2);
  if (!rc) rc = fl_buf_append(b, &kl, 4);
  if (!rc) rc = fl_buf_append(b, k->key, k->key_len);
  if (!rc) rc = fl_buf_append(b, &nl, 4);
  if (!rc) rc = fl_buf_append(b, k->ns, k->ns_len);
  return rc;
}

static int cell_cb(const fl_kkey_t *k, const void *val, size_t len, void *arg) {
  walk_t *wk = arg;
  int rc;
  if (k->key_len > UINT32_MAX || k->ns_len > UINT32_MAX) {
    rc = FL_EINVAL;
  } else if (val) {
    sw_t *w = wk->w;
    sw_u8(w, CELL_VALUE);
    sw_put(w, &k->kg, 2);
    sw_bytes(w, k->key, k->key_len);
    sw_bytes(w, k->ns, k->ns_len);
    rc = sw_bytes(w, val, len);
  } else {
    rc = put_map_addr(&wk->maps, k);
  }
  if (rc) {
    wk->err = rc;
    return FL_KV_STOP;
  }
  return FL_KV_NEXT;
}

/* Takes the next map cell address of a step's list apart. */
static void next_map(const fl_buf_t *maps, size_t *off, fl_kkey_t *k) {
  uint32_t l;
  memcpy(&k->kg, maps->data + *off, 2);
  memcpy(&l, maps->data + *off + 2, 4);
  k->key = maps->data + *off + 6;
  k->key_len = l;
  *off += 6 + l;
  memcpy(&l, maps->data + *off, 4);
  k->ns = maps->data + *off + 4;
  k->ns_len = l;
  *off += 4 + l;
}

static int map_entry_cb(const void *uk, size_t ukl, const void *v, size_t vl, void *arg) {
  sw_t *w = arg;
  if (ukl > UINT32_MAX || vl > UINT32_MAX) return FL_EINVAL;
  uint32_t a = (uint32_t)ukl, b = (uint32_t)vl;
  const void *p[4] = {&a, uk, &b, v};
  size_t len[4] = {4, ukl, 4, vl};
  int rc = sw_entry(w, p, len, 4);
  return rc ? rc : FL_KV_NEXT;
}

static int write_table(fl_kv_t *kv, const char *name, sw_t *w) {
  uint32_t table;
  int rc = kv->ops->open_table(kv->self, name, &table);
  if (rc) return rc;
  walk_t wk = {.w = w};
  fl_buf_init(&wk.maps);
  sw_u8(w, SEC_TABLE);
  rc = sw_bytes(w, name, strlen(name));
  uint64_t cursor = 0;
  do {
    wk.maps.len = 0;
    if (!rc) rc = kv->ops->iterate(kv->self, table, &cursor, WALK_BATCH, cell_cb, &wk);
    if (!rc) rc = wk.err ? wk.err : w->err;
    w->maps_cap = wk.maps.cap;
    sw_mem(w);
    /* the entries of this step's map cells, in chunks */
    for (size_t off = 0; !rc && off < wk.maps.len;) {
      fl_kkey_t k;
      next_map(&wk.maps, &off, &k);
      uint8_t tag = CELL_MAP;
      if (6 + 2 * 4 + k.key_len + k.ns_len > FL_SNAPSHOT_BUF / 2) {
        rc = FL_EINVAL; /* a map cell address larger than half the buffer */
        break;
      }
      w->head.len = 0;
      rc = fl_buf_append(&w->head, &tag, 1);
      if (!rc) rc = put_map_addr(&w->head, &k);
      if (!rc) rc = sw_chunk_begin(w, 4);
      if (!rc) rc = kv->ops->map_iter(kv->self, table, &k, map_entry_cb, w);
      int erc = sw_chunk_end(w);
      if (!rc) rc = erc;
    }
  } while (!rc && cursor != 0);
  if (!rc) rc = sw_u8(w, CELL_END);
  fl_buf_free(&wk.maps);
  w->maps_cap = 0;
  return rc;
}

typedef struct names {
  char **v;
  size_t n, cap;
  const char *prefix;
  size_t prefix_len;
} names_t;

static int collect_name(const char *name, void *arg) {
  names_t *nm = arg;
  if (strncmp(name, nm->prefix, nm->prefix_len) != 0) return 0;
  if (FL_VEC_RESERVE(nm->v, nm->cap, nm->n + 1)) return FL_ENOMEM;
  nm->v[nm->n] = strdup(name);
  if (!nm->v[nm->n]) return FL_ENOMEM;
  nm->n++;
  return 0;
}

static void names_free(names_t *nm) {
  for (size_t i = 0; i < nm->n; i++) free(nm->v[i]);
  free(nm->v);
}

static int table_names(fl_kv_t *kv, const char *prefix, names_t *nm) {
  if (!kv->ops->list_tables) return FL_ENOTSUP;
  nm->prefix = prefix;
  nm->prefix_len = strlen(prefix);
  return kv->ops->list_tables(kv->self, collect_name, nm);
}

/* ---------------------------------------------------------------------------------- */
/* Timers, native sections, the whole                                                   */

static int timer_cb(const fl_timer_t *tm, uint64_t seq, void *arg) {
  sw_t *w = arg;
  (void)seq;
  if (tm->key_len > UINT32_MAX || tm->ns_len > UINT32_MAX) return FL_EINVAL;
  uint32_t kl = (uint32_t)tm->key_len, nl = (uint32_t)tm->ns_len;
  const void *p[6] = {&tm->kg, &tm->ts, &kl, tm->key, &nl, tm->ns};
  size_t len[6] = {2, 8, 4, tm->key_len, 4, tm->ns_len};
  return sw_entry(w, p, len, 6);
}

static int write_timers(fl_timers_t *t, fl_time_domain_t d, sw_t *w) {
  uint8_t head[2] = {SEC_TIMERS, (uint8_t)d};
  w->head.len = 0;
  int rc = fl_buf_append(&w->head, head, 2);
  if (!rc) rc = sw_chunk_begin(w, 8);
  if (!rc) rc = fl_timers_foreach_ordered(t, d, timer_cb, w);
  int erc = sw_chunk_end(w);
  return rc ? rc : erc;
}

static int native_cb_entry(sw_t *w, const char *name) {
  uint32_t n = (uint32_t)strlen(name);
  const void *p[2] = {&n, name};
  size_t len[2] = {4, n};
  return sw_entry(w, p, len, 2);
}

/* The file names of the native copy, as native sections of at most a buffer each. */
static int write_native(const char *dir, uint64_t store_id, sw_t *w) {
  DIR *d = opendir(dir);
  if (!d) return FL_EIO;
  uint8_t tag = SEC_NATIVE;
  w->head.len = 0;
  int rc = fl_buf_append(&w->head, &tag, 1);
  if (!rc) rc = fl_buf_append(&w->head, &store_id, 8);
  if (!rc) rc = sw_chunk_begin(w, 4);
  struct dirent *e;
  while (!rc && (e = readdir(d)))
    if (e->d_name[0] != '.') rc = native_cb_entry(w, e->d_name);
  int erc = sw_chunk_end(w);
  closedir(d);
  return rc ? rc : erc;
}

static sw_t *sw_new(fl_snapshot_write_fn write, void *arg, char *msg, size_t size) {
  sw_t *w = calloc(1, sizeof *w);
  if (!w) {
    snprintf(msg, size, "out of memory");
    return NULL;
  }
  msg[0] = '\0';
  w->write = write;
  w->arg = arg;
  w->msg = msg;
  w->msg_size = size;
  fl_buf_init(&w->head);
  sw_mem(w);
  return w;
}

/* The magic, then the operator state section's header and op_state, which tail_len
 * bytes of tail complete. */
static int sw_head(sw_t *w, const void *op_state, size_t op_state_len, size_t tail_len) {
  int rc = sw_put(w, MAGIC, 8);
  if (!rc && op_state_len + tail_len) {
    sw_u8(w, SEC_OPSTATE);
    sw_u64(w, op_state_len + tail_len);
    rc = sw_put(w, op_state, op_state_len);
  }
  return rc;
}

int fl_snapshot_write_head(const void *op_state, size_t op_state_len, size_t tail_len,
                           fl_snapshot_write_fn write, void *arg, uint8_t *end, size_t *end_len,
                           char *msg, size_t size) {
  sw_t *w = sw_new(write, arg, msg, size);
  if (!w) return FL_ENOMEM;
  int rc = sw_head(w, op_state, op_state_len, tail_len);
  if (!rc) rc = sw_flush(w);
  end[0] = SEC_END;
  *end_len = 1;
  free(w);
  return rc;
}

int fl_snapshot_write(const fl_snapshot_target_t *t, const void *op_state, size_t op_state_len,
                      const void *tail, size_t tail_len, const char *native_dir, uint64_t store_id,
                      fl_snapshot_write_fn write, void *arg, fl_snapshot_stats_t *stats, char *msg,
                      size_t size) {
  char prefix[32];
  const char *what = NULL;
  sw_t *w = sw_new(write, arg, msg, size);
  if (!w) return FL_ENOMEM;
  int rc = sw_head(w, op_state, op_state_len, tail_len);
  if (!rc) rc = sw_put(w, tail, tail_len);
  if (!rc && native_dir) {
    rc = write_native(native_dir, store_id, w);
    if (rc == FL_EIO && !w->err) what = "cannot list the native copy of the state";
  } else if (!rc && t->kv && t->kv->ops) {
    names_t nm = {0};
    snprintf(prefix, sizeof prefix, "%u/", t->node_id);
    rc = table_names(t->kv, prefix, &nm);
    for (size_t i = 0; i < nm.n && !rc; i++) rc = write_table(t->kv, nm.v[i], w);
    names_free(&nm);
    if (rc && rc != FL_ENOMEM && !w->err) what = "reading the keyed state failed";
  }
  bool timers = t->timers && !(native_dir && fl_timers_in_store(t->timers));
  if (!rc && timers) rc = write_timers(t->timers, FL_EVENT_TIME, w);
  if (!rc && timers) rc = write_timers(t->timers, FL_PROCESSING_TIME, w);
  if (rc && rc != FL_ENOMEM && !w->err && !what) what = "reading the timers failed";
  if (!rc) rc = sw_u8(w, SEC_END);
  if (!rc) rc = sw_flush(w);
  if (rc && !w->err) {
    /* not the write function's failure: say what failed */
    const char *detail = t->timers ? fl_timers_errmsg(t->timers) : "";
    snprintf(msg, size, "%s (%s)%s%s", what ? what : "out of memory", fl_strerror(rc),
             *detail ? ": " : "", detail);
  }
  if (stats) *stats = (fl_snapshot_stats_t){w->bytes, w->peak};
  fl_buf_free(&w->head);
  free(w);
  return rc;
}

static int buf_write(void *arg, const void *data, size_t len, char *msg, size_t size) {
  int rc = fl_buf_append(arg, data, len);
  if (rc) snprintf(msg, size, "out of memory");
  return rc;
}

int fl_snapshot_write_buf(const fl_snapshot_target_t *t, const void *op_state, size_t op_state_len,
                          fl_buf_t *out, char *msg, size_t size) {
  return fl_snapshot_write(t, op_state, op_state_len, NULL, 0, NULL, 0, buf_write, out, NULL, msg,
                           size);
}

/* ---------------------------------------------------------------------------------- */
/* The reader                                                                           */

typedef struct rs {
  fl_snapshot_read_fn read;
  void *arg;
  unsigned char *buf;
  size_t cap, pos, len; /* buf[pos..len) is read and not yet taken */
  uint64_t off;         /* stream offset of buf[0] */
  uint64_t size;        /* the stream's length, or UINT64_MAX */
  bool eof, bad;
  int err; /* the read function's error (msg is set) */
  char *msg;
  size_t msg_size;
} rs_t;

static uint64_t rs_at(const rs_t *r) { return r->off + r->pos; }

/* Makes n bytes available at buf + pos; false (bad or err set) if the stream has fewer. */
static bool rs_need(rs_t *r, size_t n) {
  if (r->bad || r->err) return false;
  if (r->len - r->pos >= n) return true;
  if (r->size != UINT64_MAX && (uint64_t)n > r->size - rs_at(r)) {
    r->bad = true; /* claims more than the stream holds */
    return false;
  }
  if (r->pos) {
    memmove(r->buf, r->buf + r->pos, r->len - r->pos);
    r->len -= r->pos;
    r->off += r->pos;
    r->pos = 0;
  }
  if (n > r->cap) {
    size_t cap = r->cap ? r->cap : FL_SNAPSHOT_BUF;
    while (cap < n) cap = cap > SIZE_MAX / 2 ? n : cap * 2;
    unsigned char *p = realloc(r->buf, cap);
    if (!p) {
      r->err = FL_ENOMEM;
      snprintf(r->msg, r->msg_size, "out of memory reading a snapshot item of %zu bytes", n);
      return false;
    }
    r->buf = p;
    r->cap = cap;
  }
  while (r->len < n && !r->eof) {
    size_t got = 0;
    int rc = r->read(r->arg, r->buf + r->len, r->cap - r->len, &got, r->msg, r->msg_size);
    if (rc) {
      r->err = rc;
      return false;
    }
    if (got == 0) r->eof = true;
    r->len += got;
  }
  if (r->len < n) {
    r->bad = true;
    return false;
  }
  return true;
}

static uint8_t get_u8(rs_t *r) {
  if (!rs_need(r, 1)) return 0;
  return r->buf[r->pos++];
}
static uint16_t get_u16(rs_t *r) {
  uint16_t v = 0;
  if (rs_need(r, 2)) memcpy(&v, r->buf + r->pos, 2), r->pos += 2;
  return v;
}
static uint32_t get_u32(rs_t *r) {
  uint32_t v = 0;
  if (rs_need(r, 4)) memcpy(&v, r->buf + r->pos, 4), r->pos += 4;
  return v;
}
static uint64_t get_u64(rs_t *r) {
  uint64_t v = 0;
  if (rs_need(r, 8)) memcpy(&v, r->buf + r->pos, 8), r->pos += 8;
  return v;
}
/* [u32 len][bytes]: a view valid until the next read. */
static const void *get_bytes(rs_t *r, size_t *len) {
  uint32_t n = get_u32(r);
  *len = n;
  if (!rs_need(r, n)) return NULL;
  const void *p = r->buf + r->pos;
  r->pos += n;
  return p;
}
/* [u32 len][bytes] appended to b (which outlives later reads); its offset in *at. */
static void get_copy(rs_t *r, fl_buf_t *b, size_t *at, size_t *len) {
  size_t n;
  const void *p = get_bytes(r, &n);
  *at = b->len;
  *len = n;
  if (p && fl_buf_append(b, p, n)) {
    r->err = FL_ENOMEM;
    snprintf(r->msg, r->msg_size, "out of memory");
  }
}

static bool rs_ok(const rs_t *r) { return !r->bad && !r->err; }

static bool owned(const fl_snapshot_target_t *t, uint16_t kg) {
  return kg >= t->kg_first && kg < t->kg_first + t->kg_count;
}

static int restore_table(const fl_snapshot_target_t *t, rs_t *r, fl_buf_t *scratch) {
  size_t nl;
  const char *name = get_bytes(r, &nl);
  if (!rs_ok(r)) return FL_EPARSE;
  char buf[512];
  if (nl >= sizeof buf) return FL_EPARSE;
  memcpy(buf, name, nl);
  buf[nl] = '\0';
  uint32_t table = 0;
  bool opened = false;
  int rc = FL_OK;
  for (;;) {
    uint8_t type = get_u8(r);
    if (!rs_ok(r)) return FL_EPARSE;
    if (type == CELL_END) break;
    if (type != CELL_VALUE && type != CELL_MAP) return FL_EPARSE;
    fl_kkey_t k;
    size_t ka, na;
    scratch->len = 0;
    k.kg = get_u16(r);
    get_copy(r, scratch, &ka, &k.key_len);
    get_copy(r, scratch, &na, &k.ns_len);
    if (!rs_ok(r)) return FL_EPARSE;
    k.key = scratch->data + ka;
    k.ns = scratch->data + na;
    bool mine = owned(t, k.kg);
    if (mine && !opened) {
      rc = t->kv->ops->open_table(t->kv->self, buf, &table);
      if (rc) return rc;
      opened = true;
    }
    if (type == CELL_VALUE) {
      size_t vl;
      const void *v = get_bytes(r, &vl);
      if (!rs_ok(r)) return FL_EPARSE;
      if (mine) rc = t->kv->ops->put(t->kv->self, table, &k, v, vl);
    } else {
      uint32_t n = get_u32(r);
      size_t base = scratch->len;
      for (uint32_t i = 0; i < n && !rc; i++) {
        size_t ua, ul, vl;
        scratch->len = base;
        get_copy(r, scratch, &ua, &ul);
        const void *v = get_bytes(r, &vl);
        if (!rs_ok(r)) return FL_EPARSE;
        k.key = scratch->data + ka; /* the copy may have moved */
        k.ns = scratch->data + na;
        if (mine) rc = t->kv->ops->map_put(t->kv->self, table, &k, scratch->data + ua, ul, v, vl);
      }
    }
    if (rc) return rc;
  }
  return FL_OK;
}

static int restore_timers(const fl_snapshot_target_t *t, rs_t *r, fl_buf_t *scratch) {
  uint8_t d = get_u8(r);
  uint64_t n = get_u64(r);
  if (!rs_ok(r) || (d != FL_EVENT_TIME && d != FL_PROCESSING_TIME)) return FL_EPARSE;
  for (uint64_t i = 0; i < n; i++) {
    uint16_t kg = get_u16(r);
    int64_t ts = (int64_t)get_u64(r);
    size_t ka, kl, na, nl;
    scratch->len = 0;
    get_copy(r, scratch, &ka, &kl);
    get_copy(r, scratch, &na, &nl);
    if (!rs_ok(r)) return FL_EPARSE;
    if (!owned(t, kg) || !t->timers) continue;
    int rc = fl_timers_register(t->timers, (fl_time_domain_t)d, kg, scratch->data + ka, kl,
                                scratch->data + na, nl, ts);
    if (rc) return rc;
  }
  return FL_OK;
}

/* The names of a native copy, gathered over its consecutive native sections. */
typedef struct natives {
  char **v;
  size_t n, cap;
  uint64_t id;
} natives_t;

int fl_snapshot_restore_stream(const fl_snapshot_target_t *t, size_t subtask,
                               fl_snapshot_read_fn read, void *arg, uint64_t size,
                               fl_bytes_t *op_state, fl_native_restore_fn native, void *native_arg,
                               char *msg, size_t msg_size) {
  rs_t r = {.read = read, .arg = arg, .size = size, .msg = msg, .msg_size = msg_size};
  fl_buf_t scratch;
  fl_buf_init(&scratch);
  int rc = FL_OK;
  bool native_done = false;
  msg[0] = '\0';
  *op_state = (fl_bytes_t){NULL, 0};
  if (!rs_need(&r, 8) || memcmp(r.buf, MAGIC, 8) != 0) {
    if (!r.err) {
      snprintf(msg, msg_size, "snapshot of subtask %zu is not a snapshot (bad magic)", subtask);
      rc = FL_EPARSE;
    }
    goto done;
  }
  r.pos = 8;
  for (;;) {
    uint8_t sec = get_u8(&r);
    if (!rs_ok(&r) || sec == SEC_END) break;
    if (sec == SEC_OPSTATE) {
      uint64_t len = get_u64(&r);
      if (!rs_ok(&r)) break;
      if (op_state->data || len > SIZE_MAX || !rs_need(&r, (size_t)len)) {
        r.bad = !r.err;
        break;
      }
      void *copy = malloc(len ? (size_t)len : 1);
      if (!copy) {
        rc = FL_ENOMEM;
        snprintf(msg, msg_size, "out of memory reading the operator state of subtask %zu", subtask);
        break;
      }
      memcpy(copy, r.buf + r.pos, (size_t)len);
      r.pos += (size_t)len;
      *op_state = (fl_bytes_t){copy, (size_t)len};
    } else if (sec == SEC_TABLE && t->kv) {
      rc = restore_table(t, &r, &scratch);
    } else if (sec == SEC_TIMERS) {
      rc = restore_timers(t, &r, &scratch);
    } else if (sec == SEC_NATIVE && t->kv) {
      if (native_done) {
        r.bad = true; /* native sections come together, once */
        break;
      }
      /* the consecutive native sections of the snapshot are read, then restored at once */
      natives_t nv = {0};
      rc = FL_OK;
      for (;;) {
        uint64_t id = get_u64(&r);
        uint32_t n = get_u32(&r);
        if (!rs_ok(&r) || n > 1000000 || (nv.n && id != nv.id)) {
          rc = FL_EPARSE;
          break;
        }
        nv.id = id;
        for (uint32_t i = 0; i < n && !rc; i++) {
          size_t len;
          const char *p = get_bytes(&r, &len);
          if (!rs_ok(&r)) rc = FL_EPARSE;
          if (!rc) rc = FL_VEC_RESERVE(nv.v, nv.cap, nv.n + 1);
          if (!rc && !(nv.v[nv.n] = strndup(p, len))) rc = FL_ENOMEM;
          if (!rc) nv.n++;
        }
        if (rc) break;
        if (!rs_need(&r, 1) || r.buf[r.pos] != SEC_NATIVE) break;
        r.pos++;
      }
      if (!rc && !r.err) {
        if (!native) {
          snprintf(msg, msg_size,
                   "snapshot of subtask %zu holds a native copy of a store, which cannot be "
                   "restored here (a native copy inside a native copy?)",
                   subtask);
          rc = FL_EPARSE;
        } else {
          rc = native(native_arg, subtask, nv.id, (const char *const *)nv.v, nv.n, msg, msg_size);
          if (rc && msg[0]) {
            for (size_t i = 0; i < nv.n; i++) free(nv.v[i]);
            free(nv.v);
            goto done; /* msg is the callback's */
          }
        }
      }
      for (size_t i = 0; i < nv.n; i++) free(nv.v[i]);
      free(nv.v);
      native_done = true;
      if (rc == FL_EPARSE && !msg[0]) r.bad = true;
    } else {
      r.bad = true;
    }
    if (rc == FL_EPARSE && !msg[0]) r.bad = true;
    if (rc || r.bad || r.err) break;
  }
  if (r.err) {
    rc = r.err; /* msg is the read function's */
  } else if (r.bad) {
    snprintf(msg, msg_size, "snapshot of subtask %zu is malformed at byte %llu", subtask,
             (unsigned long long)rs_at(&r));
    rc = FL_EPARSE;
  } else if (rc && !msg[0]) {
    snprintf(msg, msg_size, "restoring the snapshot of subtask %zu failed: %s%s%s", subtask,
             fl_strerror(rc), t->timers && *fl_timers_errmsg(t->timers) ? ": " : "",
             t->timers ? fl_timers_errmsg(t->timers) : "");
  }
done:
  fl_buf_free(&scratch);
  free(r.buf);
  return rc;
}

typedef struct mem {
  const unsigned char *p;
  size_t left;
} mem_t;

static int mem_read(void *arg, void *buf, size_t cap, size_t *got, char *msg, size_t size) {
  mem_t *m = arg;
  (void)msg, (void)size;
  size_t n = cap < m->left ? cap : m->left;
  if (n) memcpy(buf, m->p, n);
  m->p += n;
  m->left -= n;
  *got = n;
  return FL_OK;
}

int fl_snapshot_restore(const fl_snapshot_target_t *t, const fl_bytes_t *blobs, size_t n,
                        fl_bytes_t *op_states, fl_native_restore_fn native, void *native_arg,
                        char *msg, size_t size) {
  int rc = FL_OK;
  msg[0] = '\0';
  for (size_t i = 0; i < n; i++) op_states[i] = (fl_bytes_t){NULL, 0};
  for (size_t i = 0; i < n && !rc; i++) {
    if (blobs[i].len == 0) continue;
    mem_t m = {blobs[i].data, blobs[i].len};
    rc = fl_snapshot_restore_stream(t, i, mem_read, &m, blobs[i].len, &op_states[i], native,
                                    native_arg, msg, size);
  }
  return rc;
}

/* ---------------------------------------------------------------------------------- */
/* Copying a store                                                                      */

typedef struct cp {
  const fl_snapshot_target_t *t;
  uint32_t table;
  bool opened;
  const char *name;
  fl_buf_t maps;
  int err;
} cp_t;

static int cp_cell(const fl_kkey_t *k, const void *val, size_t len, void *arg) {
  cp_t *c = arg;
  if (!owned(c->t, k->kg)) return FL_KV_NEXT;
  int rc = FL_OK;
  fl_kv_t *kv = c->t->kv;
  if (!c->opened) {
    rc = kv->ops->open_table(kv->self, c->name, &c->table);
    c->opened = rc == FL_OK;
  }
  if (!rc && val) {
    rc = kv->ops->put(kv->self, c->table, k, val, len);
  } else if (!rc) {
    rc = put_map_addr(&c->maps, k);
  }
  if (rc) {
    c->err = rc;
    return FL_KV_STOP;
  }
  return FL_KV_NEXT;
}

typedef struct cpm {
  fl_kv_t *kv;
  uint32_t table;
  const fl_kkey_t *k;
} cpm_t;

static int cp_entry(const void *uk, size_t ukl, const void *v, size_t vl, void *arg) {
  cpm_t *m = arg;
  int rc = m->kv->ops->map_put(m->kv->self, m->table, m->k, uk, ukl, v, vl);
  return rc ? rc : FL_KV_NEXT;
}

int fl_snapshot_copy_store(const fl_snapshot_target_t *t, fl_kv_t *src, const char *prefix,
                           char *msg, size_t size) {
  names_t nm = {0};
  int rc = t->kv ? table_names(src, prefix, &nm) : FL_OK;
  for (size_t i = 0; i < nm.n && !rc; i++) {
    uint32_t table;
    cp_t c = {.t = t, .name = nm.v[i]};
    fl_buf_init(&c.maps);
    rc = src->ops->open_table(src->self, nm.v[i], &table);
    uint64_t cursor = 0;
    while (!rc) {
      c.maps.len = 0;
      rc = src->ops->iterate(src->self, table, &cursor, WALK_BATCH, cp_cell, &c);
      if (!rc) rc = c.err;
      for (size_t off = 0; !rc && off < c.maps.len;) {
        fl_kkey_t k;
        next_map(&c.maps, &off, &k);
        cpm_t m = {t->kv, c.table, &k};
        rc = src->ops->map_iter(src->self, table, &k, cp_entry, &m);
      }
      if (cursor == 0) break;
    }
    fl_buf_free(&c.maps);
  }
  names_free(&nm);
  if (!rc && t->timers && src->ops && strcmp(src->ops->name, "rocksdb") == 0)
    rc = fl_rtimers_copy(src, t->kg_first, t->kg_count, t->timers);
  if (rc)
    snprintf(msg, size, "copying the restored state failed: %s%s%s", fl_strerror(rc),
             t->timers && *fl_timers_errmsg(t->timers) ? ": " : "",
             t->timers ? fl_timers_errmsg(t->timers) : "");
  return rc;
}
