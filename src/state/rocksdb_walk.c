/*
 * The RocksDB backend's walks (rocksdb.c describes the design): iterate, resumable
 * through cursor tokens that name a slot holding the key where the walk goes on, and
 * count, a full scan that counts a map cell once.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <dirent.h>
#include <unistd.h>

#include <rocksdb/c.h>

#include "state/rocksdb_internal.h"
#include "util/fs.h"

/* ---------------------------------------------------------------------------------- */
/* Walks                                                                                */

/* The slot of a paused walk's token (the slot index is in the token's low bits). */
static rdb_cursor_t *cursor_find(rdb_t *r, uint64_t token, uint32_t table) {
  if (token == 0 || !r->cursors) return NULL;
  rdb_cursor_t *c = &r->cursors[token & (RDB_CURSORS - 1)];
  return c->token == token && c->table == table ? c : NULL;
}

/* A slot for a walk that pauses: a free one, else the least recently used (O(slots),
 * only when all are taken). NULL when out of memory. */
static rdb_cursor_t *cursor_new(rdb_t *r, uint32_t table) {
  if (!r->cursors && !(r->cursors = calloc(RDB_CURSORS, sizeof *r->cursors))) return NULL;
  size_t idx;
  if (r->n_free) {
    idx = r->free_slots[--r->n_free];
  } else if (r->n_cursors < RDB_CURSORS) {
    idx = r->n_cursors++;
  } else {
    idx = 0;
    for (size_t i = 1; i < RDB_CURSORS; i++)
      if (r->cursors[i].used < r->cursors[idx].used) idx = i;
  }
  rdb_cursor_t *c = &r->cursors[idx];
  c->token = ++r->next_gen << RDB_CURSOR_BITS | idx;
  c->table = table;
  c->len = 0;
  return c;
}

static void cursor_free(rdb_t *r, rdb_cursor_t *c) {
  c->token = 0;
  r->free_slots[r->n_free++] = (uint16_t)(c - r->cursors);
}

/* Sets the walk position w to key (or, with successor, the smallest key after it). */
static int pos_set(rdb_cursor_t *w, const void *key, size_t len, bool successor) {
  size_t need = len + (successor ? 1 : 0);
  if (need > w->cap) {
    unsigned char *p = realloc(w->key, need);
    if (!p) return FL_ENOMEM;
    w->key = p;
    w->cap = need;
  }
  copy_bytes(w->key, key, len);
  if (successor) w->key[len] = 0;
  w->len = need;
  return FL_OK;
}

/* The position after the cell of stored key (kl bytes, decoded in d): a value cell's
 * immediate successor; past every entry of a map cell. */
static int pos_after(rdb_cursor_t *w, const char *key, size_t kl, const rdb_dkey_t *d) {
  if (d->rest_len == 0) return pos_set(w, key, kl, true);
  int rc = pos_set(w, key, d->plen + 1, false);
  if (rc == FL_OK) w->key[d->plen] = RDB_MAP_TAG + 1;
  return rc;
}

static void pos_swap(rdb_cursor_t *a, rdb_cursor_t *b) {
  unsigned char *k = a->key;
  size_t len = a->len, cap = a->cap;
  a->key = b->key;
  a->len = b->len;
  a->cap = b->cap;
  b->key = k;
  b->len = len;
  b->cap = cap;
}

int fl_rdb_iterate(void *self, uint32_t table, uint64_t *cursor, size_t max_entries,
                   int (*cb)(const fl_kkey_t *k, const void *val, size_t len, void *arg),
                   void *arg) {
  rdb_t *r = self;
  if (!r || !cursor || !cb) return FL_EINVAL;
  rdb_table_t *t = fl_rdb_table_of(r, table);
  if (!t) return FL_EINVAL;
  /* The position moves in a local (a callback may start another walk); a paused walk's
   * slot gets it back at the end. A cursor that is 0, or forgotten, starts a new pass. */
  rdb_cursor_t walk = {0}, *w = &walk;
  rdb_cursor_t *c = cursor_find(r, *cursor, table);
  if (c) pos_swap(c, w);
  rocksdb_iterator_t *it = fl_rdb_table_iter(r, t, true);
  if (w->len)
    rocksdb_iter_seek(it, (const char *)w->key, w->len);
  else
    rocksdb_iter_seek_to_first(it);
  size_t seen = 0;
  bool stop = false;
  int rc = FL_OK;
  while (rocksdb_iter_valid(it) && seen < max_entries && !stop) {
    size_t kl, vl = 0;
    const char *key = rocksdb_iter_key(it, &kl);
    rdb_dkey_t d;
    if (!fl_rdb_dec_key((const unsigned char *)key, kl, &d)) {
      snprintf(r->err, sizeof r->err,
               "rocksdb state: table '%s' in '%s' holds a key this backend did not write", t->name,
               r->dir);
      rc = FL_EPARSE;
      break;
    }
    bool map = d.rest_len > 0;
    const char *v = map ? NULL : rocksdb_iter_value(it, &vl);
    /* One ring buffer: value (aligned) | key | namespace. */
    size_t kn = d.k.key_len + d.k.ns_len;
    unsigned char *p = fl_rdb_ring_take(r, vl + kn);
    if (!p) {
      rc = FL_ENOMEM;
      break;
    }
    copy_bytes(p, v, vl);
    copy_bytes(p + vl, d.k.key, d.k.key_len);
    copy_bytes(p + vl + d.k.key_len, d.k.ns, d.k.ns_len);
    fl_kkey_t k = {d.k.kg, p + vl, d.k.key_len, p + vl + d.k.key_len, d.k.ns_len};
    int x = cb(&k, map ? NULL : p, vl, arg);
    if (x < 0) {
      rc = pos_set(w, key, kl, false); /* the walk resumes on this cell */
      if (rc == FL_OK) rc = x;
      break;
    }
    seen++;
    if (x == FL_KV_DELETE) {
      if (map) {
        rc = fl_rdb_del_map_cell(r, t, (const unsigned char *)key, d.plen);
      } else {
        char *e = NULL;
        rocksdb_delete_cf(r->db, r->wo, t->cf, key, kl, &e);
        if (e) rc = fl_rdb_fail(r, e, "delete", t);
      }
    }
    /* The iterator reads a snapshot: deleting the entry it stands on does not move it,
     * so key is still valid here. */
    if (rc == FL_OK) rc = pos_after(w, key, kl, &d);
    if (rc) break;
    if (x == FL_KV_STOP)
      stop = true;
    else if (map)
      rocksdb_iter_seek(it, (const char *)w->key, w->len); /* past the cell */
    else
      rocksdb_iter_next(it);
  }
  bool more = stop || rc != FL_OK || rocksdb_iter_valid(it);
  int irc = fl_rdb_iter_end(r, it, "iteration", t);
  if (rc == FL_OK) rc = irc;
  if (more && !c && !(c = cursor_new(r, table)) && rc == FL_OK) rc = FL_ENOMEM;
  if (more && c) {
    c->used = ++r->clock;
    pos_swap(c, w);
    *cursor = c->token;
  } else {
    if (c) cursor_free(r, c); /* the pass is over */
    *cursor = 0;
  }
  free(w->key);
  return rc;
}

/* O(cells): see the file comment. */
size_t fl_rdb_count(void *self, uint32_t table) {
  rdb_t *r = self;
  if (!r) return 0;
  rdb_table_t *t = fl_rdb_table_of(r, table);
  if (!t) return 0;
  size_t n = 0;
  rocksdb_iterator_t *it = fl_rdb_table_iter(r, t, false);
  rocksdb_iter_seek_to_first(it);
  while (rocksdb_iter_valid(it)) {
    size_t kl;
    const char *key = rocksdb_iter_key(it, &kl);
    rdb_dkey_t d;
    n++;
    if (!fl_rdb_dec_key((const unsigned char *)key, kl, &d) || d.rest_len == 0) {
      rocksdb_iter_next(it);
      continue;
    }
    /* A map cell counts once: skip to the first key after its entries. */
    if (fl_buf_reserve(&r->kb, d.plen + 1)) {
      rocksdb_iter_next(it);
      continue;
    }
    memcpy(r->kb.data, key, d.plen);
    r->kb.data[d.plen] = RDB_MAP_TAG + 1;
    rocksdb_iter_seek(it, (const char *)r->kb.data, d.plen + 1);
  }
  if (fl_rdb_iter_end(r, it, "count", t)) return 0;
  return n;
}
