/* The canonical operator snapshot: see snapshot.h for the format. */
#include "checkpoint/snapshot.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/buf.h"

#define MAGIC "FLSNAP01"
#define SEC_END 0
#define SEC_OPSTATE 1
#define SEC_TABLE 2
#define SEC_TIMERS 3
#define SEC_NATIVE 4
#define CELL_END 0
#define CELL_VALUE 1
#define CELL_MAP 2

/* ---------------------------------------------------------------------------------- */
/* Writing                                                                              */

static int put_u8(fl_buf_t *b, uint8_t v) { return fl_buf_append(b, &v, 1); }
static int put_u16(fl_buf_t *b, uint16_t v) { return fl_buf_append(b, &v, 2); }
static int put_u32(fl_buf_t *b, uint32_t v) { return fl_buf_append(b, &v, 4); }
static int put_u64(fl_buf_t *b, uint64_t v) { return fl_buf_append(b, &v, 8); }
static int put_bytes(fl_buf_t *b, const void *p, size_t n) {
  if (n > UINT32_MAX) return FL_EINVAL;
  int rc = put_u32(b, (uint32_t)n);
  return rc ? rc : fl_buf_append(b, p, n);
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
  if (nm->n == nm->cap) {
    size_t cap = nm->cap ? nm->cap * 2 : 8;
    char **p = realloc(nm->v, cap * sizeof *p);
    if (!p) return FL_ENOMEM;
    nm->v = p;
    nm->cap = cap;
  }
  nm->v[nm->n] = strdup(name);
  if (!nm->v[nm->n]) return FL_ENOMEM;
  nm->n++;
  return 0;
}

static void names_free(names_t *nm) {
  for (size_t i = 0; i < nm->n; i++) free(nm->v[i]);
  free(nm->v);
}

/* The map cells of a table are visited in a second pass (map_iter while iterate is
 * running would interleave two walks of one store); their addresses are kept here. */
typedef struct walk {
  fl_buf_t *out;
  fl_buf_t maps; /* [u16 kg][u32 klen][key][u32 nslen][ns] per map cell */
  int err;
} walk_t;

static int cell_cb(const fl_kkey_t *k, const void *val, size_t len, void *arg) {
  walk_t *w = arg;
  int rc;
  if (val) {
    rc = put_u8(w->out, CELL_VALUE);
    if (!rc) rc = put_u16(w->out, k->kg);
    if (!rc) rc = put_bytes(w->out, k->key, k->key_len);
    if (!rc) rc = put_bytes(w->out, k->ns, k->ns_len);
    if (!rc) rc = put_bytes(w->out, val, len);
  } else {
    rc = put_u16(&w->maps, k->kg);
    if (!rc) rc = put_bytes(&w->maps, k->key, k->key_len);
    if (!rc) rc = put_bytes(&w->maps, k->ns, k->ns_len);
  }
  if (rc) {
    w->err = rc;
    return FL_KV_STOP;
  }
  return FL_KV_NEXT;
}

typedef struct mapw {
  fl_buf_t *out;
  uint32_t n;
} mapw_t;

static int map_entry_cb(const void *uk, size_t ukl, const void *v, size_t vl, void *arg) {
  mapw_t *m = arg;
  int rc = put_bytes(m->out, uk, ukl);
  if (!rc) rc = put_bytes(m->out, v, vl);
  if (rc) return rc;
  m->n++;
  return FL_KV_NEXT;
}

static int write_table(fl_kv_t *kv, const char *name, fl_buf_t *out) {
  uint32_t table;
  int rc = kv->ops->open_table(kv->self, name, &table);
  if (rc) return rc;
  walk_t w = {.out = out};
  fl_buf_init(&w.maps);
  rc = put_u8(out, SEC_TABLE);
  if (!rc) rc = put_bytes(out, name, strlen(name));
  uint64_t cursor = 0;
  do {
    if (!rc) rc = kv->ops->iterate(kv->self, table, &cursor, 4096, cell_cb, &w);
    if (!rc) rc = w.err;
  } while (!rc && cursor != 0);
  /* map cells: their entries */
  size_t off = 0;
  while (!rc && off < w.maps.len) {
    fl_kkey_t k;
    uint32_t l;
    memcpy(&k.kg, w.maps.data + off, 2);
    off += 2;
    memcpy(&l, w.maps.data + off, 4);
    off += 4;
    k.key = w.maps.data + off;
    k.key_len = l;
    off += l;
    memcpy(&l, w.maps.data + off, 4);
    off += 4;
    k.ns = w.maps.data + off;
    k.ns_len = l;
    off += l;
    rc = put_u8(out, CELL_MAP);
    if (!rc) rc = put_u16(out, k.kg);
    if (!rc) rc = put_bytes(out, k.key, k.key_len);
    if (!rc) rc = put_bytes(out, k.ns, k.ns_len);
    size_t count_at = out->len;
    if (!rc) rc = put_u32(out, 0);
    mapw_t m = {.out = out};
    if (!rc) rc = kv->ops->map_iter(kv->self, table, &k, map_entry_cb, &m);
    if (!rc) memcpy(out->data + count_at, &m.n, 4);
  }
  if (!rc) rc = put_u8(out, CELL_END);
  fl_buf_free(&w.maps);
  return rc;
}

typedef struct tsnap {
  int64_t ts;
  uint64_t seq;
  size_t off; /* of [u16 kg][i64 ts][key][ns] in the scratch buffer */
} tsnap_t;

typedef struct tcollect {
  fl_buf_t bytes;
  tsnap_t *v;
  size_t n, cap;
} tcollect_t;

static int timer_cb(const fl_timer_t *tm, uint64_t seq, void *arg) {
  tcollect_t *c = arg;
  if (c->n == c->cap) {
    size_t cap = c->cap ? c->cap * 2 : 64;
    tsnap_t *p = realloc(c->v, cap * sizeof *p);
    if (!p) return FL_ENOMEM;
    c->v = p;
    c->cap = cap;
  }
  c->v[c->n] = (tsnap_t){tm->ts, seq, c->bytes.len};
  int rc = put_u16(&c->bytes, tm->kg);
  if (!rc) rc = put_u64(&c->bytes, (uint64_t)tm->ts);
  if (!rc) rc = put_bytes(&c->bytes, tm->key, tm->key_len);
  if (!rc) rc = put_bytes(&c->bytes, tm->ns, tm->ns_len);
  if (rc) return rc;
  c->n++;
  return 0;
}

static int cmp_tsnap(const void *a, const void *b) {
  const tsnap_t *x = a, *y = b;
  if (x->ts != y->ts) return x->ts < y->ts ? -1 : 1;
  return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static int write_timers(fl_timers_t *t, fl_time_domain_t d, fl_buf_t *out) {
  tcollect_t c = {0};
  fl_buf_init(&c.bytes);
  int rc = fl_timers_foreach(t, d, timer_cb, &c);
  if (!rc && c.n) {
    qsort(c.v, c.n, sizeof *c.v, cmp_tsnap);
    rc = put_u8(out, SEC_TIMERS);
    if (!rc) rc = put_u8(out, (uint8_t)d);
    if (!rc) rc = put_u64(out, c.n);
    for (size_t i = 0; i < c.n && !rc; i++) {
      const uint8_t *p = c.bytes.data + c.v[i].off;
      uint32_t kl, nl;
      memcpy(&kl, p + 10, 4);
      memcpy(&nl, p + 14 + kl, 4);
      rc = fl_buf_append(out, p, 18 + (size_t)kl + nl);
    }
  }
  free(c.v);
  fl_buf_free(&c.bytes);
  return rc;
}

int fl_snapshot_write_tables(fl_kv_t *kv, const char *prefix, fl_buf_t *out) {
  names_t nm = {0};
  if (!kv->ops->list_tables) return FL_ENOTSUP;
  nm.prefix = prefix;
  nm.prefix_len = strlen(prefix);
  int rc = kv->ops->list_tables(kv->self, collect_name, &nm);
  for (size_t i = 0; i < nm.n && !rc; i++) rc = write_table(kv, nm.v[i], out);
  names_free(&nm);
  return rc;
}

int fl_snapshot_kv_blob(fl_kv_t *kv, const char *prefix, fl_buf_t *out) {
  int rc = fl_buf_append(out, MAGIC, 8);
  if (!rc) rc = fl_snapshot_write_tables(kv, prefix, out);
  if (!rc) rc = put_u8(out, SEC_END);
  return rc;
}

static int write_native(const char *dir, uint64_t store_id, fl_buf_t *out) {
  DIR *d = opendir(dir);
  if (!d) return FL_EIO;
  int rc = put_u8(out, SEC_NATIVE);
  if (!rc) rc = put_u64(out, store_id);
  size_t count_at = out->len;
  if (!rc) rc = put_u32(out, 0);
  uint32_t n = 0;
  struct dirent *e;
  while (!rc && (e = readdir(d))) {
    if (e->d_name[0] == '.') continue;
    rc = put_bytes(out, e->d_name, strlen(e->d_name));
    n++;
  }
  closedir(d);
  if (!rc) memcpy(out->data + count_at, &n, 4);
  return rc;
}

int fl_snapshot_write(const fl_snapshot_target_t *t, const void *op_state, size_t op_state_len,
                      const char *native_dir, uint64_t store_id, fl_buf_t *out, char *msg,
                      size_t size) {
  char prefix[32];
  const char *what = "out of memory";
  int rc = fl_buf_append(out, MAGIC, 8);
  if (!rc && op_state_len) {
    rc = put_u8(out, SEC_OPSTATE);
    if (!rc) rc = put_u64(out, op_state_len);
    if (!rc) rc = fl_buf_append(out, op_state, op_state_len);
  }
  if (!rc && native_dir) {
    rc = write_native(native_dir, store_id, out);
    if (rc == FL_EIO) what = "cannot list the native copy of the state";
  } else if (!rc && t->kv && t->kv->ops) {
    snprintf(prefix, sizeof prefix, "%u/", t->node_id);
    rc = fl_snapshot_write_tables(t->kv, prefix, out);
    if (rc && rc != FL_ENOMEM) what = "reading the keyed state failed";
  }
  if (!rc && t->timers) rc = write_timers(t->timers, FL_EVENT_TIME, out);
  if (!rc && t->timers) rc = write_timers(t->timers, FL_PROCESSING_TIME, out);
  if (!rc) rc = put_u8(out, SEC_END);
  if (rc) snprintf(msg, size, "%s (%s)", what, fl_strerror(rc));
  return rc;
}

/* ---------------------------------------------------------------------------------- */
/* Reading                                                                              */

typedef struct rd {
  const uint8_t *p, *end;
  bool bad;
} rd_t;

static bool need(rd_t *r, size_t n) {
  if (r->bad || (size_t)(r->end - r->p) < n) {
    r->bad = true;
    return false;
  }
  return true;
}
static uint8_t get_u8(rd_t *r) {
  if (!need(r, 1)) return 0;
  return *r->p++;
}
static uint16_t get_u16(rd_t *r) {
  uint16_t v = 0;
  if (need(r, 2)) memcpy(&v, r->p, 2), r->p += 2;
  return v;
}
static uint32_t get_u32(rd_t *r) {
  uint32_t v = 0;
  if (need(r, 4)) memcpy(&v, r->p, 4), r->p += 4;
  return v;
}
static uint64_t get_u64(rd_t *r) {
  uint64_t v = 0;
  if (need(r, 8)) memcpy(&v, r->p, 8), r->p += 8;
  return v;
}
static const void *get_bytes(rd_t *r, size_t *len) {
  uint32_t n = get_u32(r);
  *len = n;
  if (!need(r, n)) return NULL;
  const void *p = r->p;
  r->p += n;
  return p;
}

static bool owned(const fl_snapshot_target_t *t, uint16_t kg) {
  return kg >= t->kg_first && kg < t->kg_first + t->kg_count;
}

static int restore_table(const fl_snapshot_target_t *t, rd_t *r) {
  size_t nl;
  const char *name = get_bytes(r, &nl);
  if (r->bad) return FL_EPARSE;
  char buf[512];
  if (nl >= sizeof buf) return FL_EPARSE;
  memcpy(buf, name, nl);
  buf[nl] = '\0';
  uint32_t table = 0;
  bool opened = false;
  int rc = FL_OK;
  for (;;) {
    uint8_t type = get_u8(r);
    if (r->bad) return FL_EPARSE;
    if (type == CELL_END) break;
    if (type != CELL_VALUE && type != CELL_MAP) return FL_EPARSE;
    fl_kkey_t k;
    k.kg = get_u16(r);
    k.key = get_bytes(r, &k.key_len);
    k.ns = get_bytes(r, &k.ns_len);
    bool mine = owned(t, k.kg);
    if (mine && !opened) {
      rc = t->kv->ops->open_table(t->kv->self, buf, &table);
      if (rc) return rc;
      opened = true;
    }
    if (type == CELL_VALUE) {
      size_t vl;
      const void *v = get_bytes(r, &vl);
      if (r->bad) return FL_EPARSE;
      if (mine) rc = t->kv->ops->put(t->kv->self, table, &k, v, vl);
    } else {
      uint32_t n = get_u32(r);
      for (uint32_t i = 0; i < n && !rc; i++) {
        size_t ukl, vl;
        const void *uk = get_bytes(r, &ukl);
        const void *v = get_bytes(r, &vl);
        if (r->bad) return FL_EPARSE;
        if (mine) rc = t->kv->ops->map_put(t->kv->self, table, &k, uk, ukl, v, vl);
      }
    }
    if (rc) return rc;
  }
  return FL_OK;
}

static int restore_timers(const fl_snapshot_target_t *t, rd_t *r) {
  uint8_t d = get_u8(r);
  uint64_t n = get_u64(r);
  if (r->bad || (d != FL_EVENT_TIME && d != FL_PROCESSING_TIME)) return FL_EPARSE;
  for (uint64_t i = 0; i < n; i++) {
    uint16_t kg = get_u16(r);
    int64_t ts = (int64_t)get_u64(r);
    size_t kl, nl;
    const void *key = get_bytes(r, &kl);
    const void *ns = get_bytes(r, &nl);
    if (r->bad) return FL_EPARSE;
    if (!owned(t, kg) || !t->timers) continue;
    int rc = fl_timers_register(t->timers, (fl_time_domain_t)d, kg, key, kl, ns, nl, ts);
    if (rc) return rc;
  }
  return FL_OK;
}

static int restore_native(rd_t *r, size_t subtask, fl_native_restore_fn native, void *arg,
                          char *msg, size_t size) {
  uint64_t id = get_u64(r);
  uint32_t n = get_u32(r);
  if (r->bad || n > 1000000) return FL_EPARSE;
  char **names = calloc(n ? n : 1, sizeof *names);
  if (!names) return FL_ENOMEM;
  int rc = FL_OK;
  for (uint32_t i = 0; i < n && !rc; i++) {
    size_t len;
    const char *p = get_bytes(r, &len);
    if (r->bad) {
      rc = FL_EPARSE;
      break;
    }
    names[i] = strndup(p, len);
    if (!names[i]) rc = FL_ENOMEM;
  }
  if (!rc && !native) {
    snprintf(msg, size, "a native snapshot inside a native snapshot");
    rc = FL_EPARSE;
  } else if (!rc) {
    rc = native(arg, subtask, id, (const char *const *)names, n, msg, size);
  }
  for (uint32_t i = 0; i < n; i++) free(names[i]);
  free(names);
  return rc;
}

int fl_snapshot_restore(const fl_snapshot_target_t *t, const fl_bytes_t *blobs, size_t n,
                        fl_bytes_t *op_states, fl_native_restore_fn native, void *native_arg,
                        char *msg, size_t size) {
  int rc = FL_OK;
  msg[0] = '\0';
  for (size_t i = 0; i < n; i++) {
    op_states[i] = (fl_bytes_t){NULL, 0};
    if (blobs[i].len == 0) continue;
    rd_t r = {blobs[i].data, (const uint8_t *)blobs[i].data + blobs[i].len, false};
    if (!need(&r, 8) || memcmp(r.p, MAGIC, 8) != 0) {
      snprintf(msg, size, "snapshot of subtask %zu is not a snapshot (bad magic)", i);
      return FL_EPARSE;
    }
    r.p += 8;
    for (;;) {
      uint8_t sec = get_u8(&r);
      if (r.bad) break;
      if (sec == SEC_END) break;
      if (sec == SEC_OPSTATE) {
        uint64_t len = get_u64(&r);
        if (!need(&r, len)) break;
        op_states[i] = (fl_bytes_t){r.p, (size_t)len};
        r.p += len;
      } else if (sec == SEC_TABLE) {
        if (!t->kv) {
          r.bad = true;
          break;
        }
        rc = restore_table(t, &r);
      } else if (sec == SEC_TIMERS) {
        rc = restore_timers(t, &r);
      } else if (sec == SEC_NATIVE) {
        if (!t->kv) {
          r.bad = true;
          break;
        }
        rc = restore_native(&r, i, native, native_arg, msg, size);
        if (rc) return rc; /* msg is the callback's */
      } else {
        r.bad = true;
      }
      if (rc == FL_EPARSE) r.bad = true;
      if (rc || r.bad) break;
    }
    if (r.bad) {
      snprintf(msg, size, "snapshot of subtask %zu is malformed at byte %zu", i,
               (size_t)(r.p - (const uint8_t *)blobs[i].data));
      return FL_EPARSE;
    }
    if (rc) {
      snprintf(msg, size, "restoring the snapshot of subtask %zu failed: %s", i, fl_strerror(rc));
      return rc;
    }
  }
  return rc;
}
