/* The canonical snapshot (checkpoint/snapshot.c) on its own: written from one backend
 * and its timers and read into the other (hashmap <-> RocksDB, heap <-> RocksDB
 * timers), split by key group as a rescale does, read back in tiny pieces, corrupted
 * input rejected with a message naming the subtask and the byte, and a snapshot of
 * tens of MB written through a buffer that never grows. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "checkpoint/snapshot.h"
#include "state/kv.h"
#include "state/rocksdb.h"
#include "state/timers.h"
#include "util/buf.h"
#include "util/fs.h"

#include "rocksdb_dir.h"
#include "run_util.h"

#define NODE 7
#define KGS 128

typedef struct fixture {
  rocks_dir_t rd; /* first: the fixture is a rocks_fixture_new() */
  int n_db;
} fixture_t;

static int setup(void **state) {
  *state = rocks_fixture_new(sizeof(fixture_t), "fl-test-snapshot");
  return *state ? 0 : -1;
}

static int teardown(void **state) {
  rocks_fixture_free(*state);
  return 0;
}

/* A backend, and a timer service of the same kind over kg range [first, first + n). */
typedef struct side {
  fl_kv_t kv;
  fl_timers_t *timers;
  uint32_t kg_first, kg_count;
} side_t;

static void side_open(fixture_t *f, side_t *s, bool rocksdb, uint32_t first, uint32_t n) {
  char err[512], db[300];
  s->kg_first = first;
  s->kg_count = n;
  if (rocksdb) {
    snprintf(db, sizeof db, "%s/db%d", f->rd.dir, f->n_db++);
    assert_int_equal(fl_kv_rocksdb_new(f->rd.sh, db, NULL, &s->kv, err, sizeof err), 0);
    s->timers = fl_timers_new_rocksdb(&s->kv, first, n, 4, err, sizeof err);
  } else {
    assert_int_equal(fl_kv_hashmap_new(&s->kv), 0);
    s->timers = fl_timers_new(first, n);
  }
  assert_non_null(s->timers);
}

static void side_close(side_t *s) {
  fl_timers_destroy(s->timers);
  fl_kv_destroy(&s->kv);
}

static fl_snapshot_target_t target(side_t *s) {
  return (fl_snapshot_target_t){&s->kv, s->timers, NODE, s->kg_first, s->kg_count};
}

static uint32_t table(side_t *s, const char *name) {
  uint32_t id;
  assert_int_equal(s->kv.ops->open_table(s->kv.self, name, &id), 0);
  return id;
}

/* Fills s with value cells, map cells and timers over every key group, and a table of
 * another operator that a snapshot of NODE must leave out. */
static void fill(side_t *s, int keys) {
  uint32_t val = table(s, "7/value"), map = table(s, "7/map"), other = table(s, "8/value");
  for (int i = 0; i < keys; i++) {
    char key[16], v[32];
    int kl = snprintf(key, sizeof key, "k%d", i);
    fl_kkey_t k = {(uint16_t)(i % KGS), key, (size_t)kl, "ns", (size_t)(i % 3 ? 2 : 0)};
    int vl = snprintf(v, sizeof v, "value-%d", i * 7);
    assert_int_equal(s->kv.ops->put(s->kv.self, val, &k, v, (size_t)vl), 0);
    assert_int_equal(s->kv.ops->put(s->kv.self, other, &k, "x", 1), 0);
    for (int j = 0; j < i % 4; j++) {
      char uk[16];
      int ul = snprintf(uk, sizeof uk, "u%d", j);
      assert_int_equal(s->kv.ops->map_put(s->kv.self, map, &k, uk, (size_t)ul, v, (size_t)vl), 0);
    }
    assert_int_equal(fl_timers_register(s->timers, i % 5 ? FL_EVENT_TIME : FL_PROCESSING_TIME, k.kg,
                                        key, (size_t)kl, "w", 1, 1000 + i % 17),
                     0);
  }
}

/* Every cell and timer of s in key groups [first, first + n), as sorted lines
 * (run_util.h's). */
static void add_line(lines_t *l, const char *fmt, ...) {
  char buf[512];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  assert_true(n >= 0 && (size_t)n < sizeof buf);
  lines_push(l, buf, (size_t)n);
}

typedef struct dump {
  lines_t *l;
  const char *table;
  fl_kkey_t maps[4096];
  char keys[4096][40];
  size_t n_maps;
  uint32_t first, count;
} dump_t;

static bool in_range(const dump_t *d, uint16_t kg) {
  return kg >= d->first && kg < d->first + d->count;
}

static int dump_cell(const fl_kkey_t *k, const void *val, size_t len, void *arg) {
  dump_t *d = arg;
  if (!in_range(d, k->kg)) return FL_KV_NEXT;
  if (val) {
    add_line(d->l, "%s|%u|%.*s|%.*s|%.*s", d->table, k->kg, (int)k->key_len, (const char *)k->key,
             (int)k->ns_len, (const char *)k->ns, (int)len, (const char *)val);
  } else {
    assert_true(d->n_maps < 4096);
    snprintf(d->keys[d->n_maps], 40, "%.*s", (int)k->key_len, (const char *)k->key);
    d->maps[d->n_maps] = *k;
    d->maps[d->n_maps].key = d->keys[d->n_maps];
    d->maps[d->n_maps].ns = k->ns_len ? "ns" : "";
    d->n_maps++;
  }
  return FL_KV_NEXT;
}

typedef struct dmap {
  lines_t *l;
  const char *table;
  const fl_kkey_t *k;
} dmap_t;

static int dump_entry(const void *uk, size_t ukl, const void *v, size_t vl, void *arg) {
  dmap_t *m = arg;
  add_line(m->l, "%s|%u|%.*s|%.*s|%.*s=%.*s", m->table, m->k->kg, (int)m->k->key_len,
           (const char *)m->k->key, (int)m->k->ns_len, (const char *)m->k->ns, (int)ukl,
           (const char *)uk, (int)vl, (const char *)v);
  return FL_KV_NEXT;
}

static int dump_timer(const fl_timer_t *t, uint64_t seq, void *arg) {
  dump_t *d = arg;
  (void)seq;
  if (in_range(d, t->kg))
    add_line(d->l, "%s|%u|%.*s|%.*s|%lld", d->table, t->kg, (int)t->key_len, (const char *)t->key,
             (int)t->ns_len, (const char *)t->ns, (long long)t->ts);
  return 0;
}

static lines_t dump_side(side_t *s, uint32_t first, uint32_t count) {
  lines_t l = {0};
  static dump_t d;
  const char *names[] = {"7/value", "7/map"};
  for (int i = 0; i < 2; i++) {
    memset(&d, 0, sizeof d);
    d.l = &l;
    d.table = names[i];
    d.first = first;
    d.count = count;
    uint32_t t = table(s, names[i]);
    uint64_t cur = 0;
    do {
      assert_int_equal(s->kv.ops->iterate(s->kv.self, t, &cur, 100000, dump_cell, &d), 0);
    } while (cur);
    for (size_t j = 0; j < d.n_maps; j++) {
      dmap_t m = {&l, names[i], &d.maps[j]};
      assert_int_equal(s->kv.ops->map_iter(s->kv.self, t, &d.maps[j], dump_entry, &m), 0);
    }
  }
  memset(&d, 0, sizeof d);
  d.l = &l;
  d.first = first;
  d.count = count;
  d.table = "event-timer";
  assert_int_equal(fl_timers_foreach(s->timers, FL_EVENT_TIME, dump_timer, &d), 0);
  d.table = "processing-timer";
  assert_int_equal(fl_timers_foreach(s->timers, FL_PROCESSING_TIME, dump_timer, &d), 0);
  lines_sort(&l);
  return l;
}

static void assert_same(lines_t *a, lines_t *b) {
  assert_int_equal(a->n, b->n);
  for (size_t i = 0; i < a->n; i++) assert_string_equal(a->v[i], b->v[i]);
}

static fl_buf_t snapshot_of(side_t *s, const char *op_state) {
  fl_buf_t b;
  char msg[512];
  fl_buf_init(&b);
  fl_snapshot_target_t t = target(s);
  assert_int_equal(
      fl_snapshot_write_buf(&t, op_state, op_state ? strlen(op_state) : 0, &b, msg, sizeof msg), 0);
  return b;
}

/* ---------------------------------------------------------------------------------- */

static void moves_between_backends(fixture_t *f, bool from_rocks) {
  side_t a, b;
  side_open(f, &a, from_rocks, 0, KGS);
  side_open(f, &b, !from_rocks, 0, KGS);
  fill(&a, 3000);
  fl_buf_t snap = snapshot_of(&a, "position-42");
  fl_bytes_t blob = {snap.data, snap.len}, op_state;
  char msg[512];
  fl_snapshot_target_t t = target(&b);
  assert_int_equal(fl_snapshot_restore(&t, &blob, 1, &op_state, NULL, NULL, msg, sizeof msg), 0);
  assert_int_equal(op_state.len, 11);
  assert_memory_equal(op_state.data, "position-42", 11);
  free((void *)op_state.data);
  lines_t la = dump_side(&a, 0, KGS), lb = dump_side(&b, 0, KGS);
  assert_true(la.n > 6000);
  assert_same(&la, &lb);
  /* the other operator's table stayed behind */
  uint32_t other;
  assert_int_equal(b.kv.ops->open_table(b.kv.self, "8/value", &other), 0);
  assert_int_equal(b.kv.ops->count(b.kv.self, other), 0);
  lines_free(&la);
  lines_free(&lb);
  fl_buf_free(&snap);
  side_close(&a);
  side_close(&b);
}

static void hashmap_to_rocksdb(void **state) { moves_between_backends(*state, false); }
static void rocksdb_to_hashmap(void **state) { moves_between_backends(*state, true); }

/* Two subtasks' snapshots restored at parallelism 3: each new subtask keeps its key
 * groups, and together they hold everything once. */
static void rescale_keeps_each_key_group_once(void **state) {
  fixture_t *f = *state;
  side_t old[2], now[3];
  fl_buf_t snaps[2];
  fl_bytes_t blobs[2], ops[2];
  char msg[512];
  side_open(f, &old[0], false, 0, KGS);
  side_open(f, &old[1], true, 0, KGS);
  fill(&old[0], 1000);
  /* the second old subtask: different keys */
  uint32_t val = table(&old[1], "7/value");
  for (int i = 0; i < 500; i++) {
    char key[16];
    int kl = snprintf(key, sizeof key, "other%d", i);
    fl_kkey_t k = {(uint16_t)((i * 31) % KGS), key, (size_t)kl, NULL, 0};
    assert_int_equal(old[1].kv.ops->put(old[1].kv.self, val, &k, "v", 1), 0);
    assert_int_equal(
        fl_timers_register(old[1].timers, FL_EVENT_TIME, k.kg, key, (size_t)kl, NULL, 0, i), 0);
  }
  for (int i = 0; i < 2; i++) {
    snaps[i] = snapshot_of(&old[i], NULL);
    blobs[i] = (fl_bytes_t){snaps[i].data, snaps[i].len};
  }
  lines_t all = {0};
  for (int i = 0; i < 2; i++) {
    lines_t l = dump_side(&old[i], 0, KGS);
    for (size_t j = 0; j < l.n; j++) lines_push(&all, l.v[j], strlen(l.v[j]));
    lines_free(&l);
  }
  lines_sort(&all);
  uint32_t bounds[4] = {0, 43, 86, KGS};
  lines_t got = {0};
  for (int p = 0; p < 3; p++) {
    side_open(f, &now[p], p == 1, bounds[p], bounds[p + 1] - bounds[p]);
    fl_snapshot_target_t t = target(&now[p]);
    assert_int_equal(fl_snapshot_restore(&t, blobs, 2, ops, NULL, NULL, msg, sizeof msg), 0);
    assert_null(ops[0].data);
    lines_t everything = dump_side(&now[p], 0, KGS),
            mine = dump_side(&now[p], bounds[p], bounds[p + 1] - bounds[p]);
    assert_same(&everything, &mine); /* nothing outside its key groups */
    for (size_t j = 0; j < mine.n; j++) lines_push(&got, mine.v[j], strlen(mine.v[j]));
    lines_free(&everything);
    lines_free(&mine);
    side_close(&now[p]);
  }
  lines_sort(&got);
  assert_same(&all, &got);
  lines_free(&all);
  lines_free(&got);
  for (int i = 0; i < 2; i++) {
    fl_buf_free(&snaps[i]);
    side_close(&old[i]);
  }
}

/* ---------------------------------------------------------------------------------- */
/* Streams                                                                              */

typedef struct drip {
  const unsigned char *p;
  size_t left, piece;
} drip_t;

/* Hands out at most `piece` bytes a call. */
static int drip_read(void *arg, void *buf, size_t cap, size_t *got, char *msg, size_t size) {
  drip_t *d = arg;
  (void)msg, (void)size;
  size_t n = d->piece < cap ? d->piece : cap;
  if (n > d->left) n = d->left;
  memcpy(buf, d->p, n);
  d->p += n;
  d->left -= n;
  *got = n;
  return 0;
}

typedef struct sink {
  fl_buf_t all;
  size_t calls, largest;
} sink_t;

static int sink_write(void *arg, const void *data, size_t len, char *msg, size_t size) {
  sink_t *s = arg;
  (void)msg, (void)size;
  s->calls++;
  if (len > s->largest) s->largest = len;
  return fl_buf_append(&s->all, data, len);
}

/* About 40 MB of state, a map cell of 100,000 entries, a 1 MB value and 200,000 timers:
 * the writer never holds more than its buffer and a few keys, hands every piece but the
 * big value over in at most FL_SNAPSHOT_BUF bytes, and the stream reads back whole even
 * when it arrives 7 bytes at a time. */
static void big_snapshots_go_through_a_bounded_buffer(void **state) {
  fixture_t *f = *state;
  side_t a, b;
  side_open(f, &a, true, 0, KGS);
  side_open(f, &b, false, 0, KGS);
  uint32_t val = table(&a, "7/value"), map = table(&a, "7/map");
  char *v = malloc(1 << 20);
  memset(v, 'v', 1 << 20);
  for (int i = 0; i < 40000; i++) {
    char key[16];
    int kl = snprintf(key, sizeof key, "big%d", i);
    fl_kkey_t k = {(uint16_t)(i % KGS), key, (size_t)kl, NULL, 0};
    assert_int_equal(a.kv.ops->put(a.kv.self, val, &k, v, 1000), 0);
  }
  fl_kkey_t big = {3, "huge", 4, NULL, 0};
  assert_int_equal(a.kv.ops->put(a.kv.self, val, &big, v, 1 << 20), 0);
  fl_kkey_t wide = {5, "wide", 4, NULL, 0};
  for (int i = 0; i < 100000; i++) {
    char uk[16];
    int ul = snprintf(uk, sizeof uk, "e%06d", i);
    assert_int_equal(a.kv.ops->map_put(a.kv.self, map, &wide, uk, (size_t)ul, v, 20), 0);
  }
  for (int i = 0; i < 200000; i++) {
    char key[16];
    int kl = snprintf(key, sizeof key, "t%d", i);
    assert_int_equal(fl_timers_register(a.timers, FL_EVENT_TIME, (uint16_t)(i % KGS), key,
                                        (size_t)kl, NULL, 0, i),
                     0);
  }
  sink_t s = {0};
  fl_buf_init(&s.all);
  fl_snapshot_stats_t st;
  char msg[512];
  fl_snapshot_target_t ta = target(&a);
  assert_int_equal(
      fl_snapshot_write(&ta, NULL, 0, NULL, 0, NULL, 0, sink_write, &s, &st, msg, sizeof msg), 0);
  assert_true(st.bytes == s.all.len);
  assert_true(st.bytes > 40u << 20);
  assert_true(st.peak_memory <= FL_SNAPSHOT_BUF + (8u << 10));
  assert_true(s.largest == 1u << 20); /* the big value alone, passed through */
  assert_true(s.calls > (st.bytes - (1u << 20)) / FL_SNAPSHOT_BUF);

  drip_t d = {s.all.data, s.all.len, 7};
  fl_bytes_t op_state;
  fl_snapshot_target_t tb = target(&b);
  assert_int_equal(fl_snapshot_restore_stream(&tb, 0, drip_read, &d, s.all.len, &op_state, NULL,
                                              NULL, msg, sizeof msg),
                   0);
  assert_null(op_state.data);
  uint32_t bval = table(&b, "7/value"), bmap = table(&b, "7/map");
  assert_int_equal(b.kv.ops->count(b.kv.self, bval), 40001);
  const void *got;
  size_t len;
  assert_int_equal(b.kv.ops->get(b.kv.self, bval, &big, &got, &len), 1);
  assert_int_equal(len, 1 << 20);
  size_t n_entries = 0;
  assert_int_equal(b.kv.ops->map_get(b.kv.self, bmap, &wide, "e099999", 7, &got, &len), 1);
  assert_int_equal(len, 20);
  (void)n_entries;
  assert_int_equal(fl_timers_count(b.timers, FL_EVENT_TIME), 200000);
  fl_buf_free(&s.all);
  free(v);
  side_close(&a);
  side_close(&b);
}

/* A lent tail (a connector's write-ahead copy, fl_ctx_snapshot_lend) follows the
 * operator state in the snapshot as if it had been appended to it: passed through
 * whole when larger than the buffer, and also alone. */
static void a_lent_tail_follows_the_operator_state(void **state) {
  fixture_t *f = *state;
  side_t a, b;
  side_open(f, &a, true, 0, KGS);
  side_open(f, &b, false, 0, KGS);
  fill(&a, 100);
  size_t tl = 3 * FL_SNAPSHOT_BUF + 7;
  unsigned char *tail = malloc(tl);
  assert_non_null(tail);
  for (size_t i = 0; i < tl; i++) tail[i] = (unsigned char)(i * 31 + 7);
  for (int head = 0; head < 2; head++) {
    sink_t s = {0};
    fl_buf_init(&s.all);
    char msg[512];
    fl_snapshot_target_t ta = target(&a);
    assert_int_equal(fl_snapshot_write(&ta, head ? "head:" : NULL, head ? 5 : 0, tail, tl, NULL, 0,
                                       sink_write, &s, NULL, msg, sizeof msg),
                     0);
    assert_true(s.largest == tl); /* passed through, not copied into the buffer */
    fl_bytes_t blob = {s.all.data, s.all.len}, op_state;
    fl_snapshot_target_t tb = target(&b);
    assert_int_equal(fl_snapshot_restore(&tb, &blob, 1, &op_state, NULL, NULL, msg, sizeof msg), 0);
    size_t hl = head ? 5 : 0;
    assert_int_equal(op_state.len, hl + tl);
    if (head) assert_memory_equal(op_state.data, "head:", 5);
    assert_memory_equal((const unsigned char *)op_state.data + hl, tail, tl);
    free((void *)op_state.data);
    fl_buf_free(&s.all);
  }
  lines_t la = dump_side(&a, 0, KGS), lb = dump_side(&b, 0, KGS);
  assert_same(&la, &lb); /* the tables came along as ever */
  lines_free(&la);
  lines_free(&lb);
  free(tail);
  side_close(&a);
  side_close(&b);
}

/* The snapshot of an operator without keyed state or timers, written as a head, then
 * its lent tail, then the end (the tail written later, off the worker), is the same
 * bytes as the whole one, and restores the same operator state. */
static void a_snapshot_split_around_its_tail_is_the_whole_snapshot(void **state) {
  (void)state;
  size_t tl = 2 * FL_SNAPSHOT_BUF + 3;
  unsigned char *tail = malloc(tl);
  assert_non_null(tail);
  for (size_t i = 0; i < tl; i++) tail[i] = (unsigned char)(i * 13 + 1);
  fl_snapshot_target_t none = {NULL, NULL, NODE, 0, KGS};
  for (int head = 0; head < 2; head++) {
    sink_t whole = {0}, split = {0};
    fl_buf_init(&whole.all);
    fl_buf_init(&split.all);
    char msg[512];
    const char *os = head ? "state" : NULL;
    size_t ol = head ? 5 : 0;
    assert_int_equal(fl_snapshot_write(&none, os, ol, tail, tl, NULL, 0, sink_write, &whole, NULL,
                                       msg, sizeof msg),
                     0);
    uint8_t end[FL_SNAPSHOT_END_MAX];
    size_t end_len = 0;
    assert_int_equal(
        fl_snapshot_write_head(os, ol, tl, sink_write, &split, end, &end_len, msg, sizeof msg), 0);
    assert_true(end_len > 0 && end_len <= FL_SNAPSHOT_END_MAX);
    assert_int_equal(fl_buf_append(&split.all, tail, tl), 0);
    assert_int_equal(fl_buf_append(&split.all, end, end_len), 0);
    assert_int_equal(split.all.len, whole.all.len);
    assert_memory_equal(split.all.data, whole.all.data, whole.all.len);
    fl_bytes_t blob = {split.all.data, split.all.len}, op_state;
    assert_int_equal(fl_snapshot_restore(&none, &blob, 1, &op_state, NULL, NULL, msg, sizeof msg),
                     0);
    assert_int_equal(op_state.len, ol + tl);
    assert_memory_equal((const unsigned char *)op_state.data + ol, tail, tl);
    free((void *)op_state.data);
    fl_buf_free(&whole.all);
    fl_buf_free(&split.all);
  }
  free(tail);
}

/* ---------------------------------------------------------------------------------- */
/* Bad input                                                                            */

static int restore_blob(side_t *s, const void *p, size_t n, char *msg, size_t size) {
  fl_bytes_t blob = {p, n}, op;
  fl_snapshot_target_t t = target(s);
  int rc = fl_snapshot_restore(&t, &blob, 1, &op, NULL, NULL, msg, size);
  free((void *)op.data);
  return rc;
}

static void corrupted_snapshots_are_rejected_with_the_place(void **state) {
  fixture_t *f = *state;
  side_t a, b;
  side_open(f, &a, false, 0, KGS);
  fill(&a, 200);
  fl_buf_t snap = snapshot_of(&a, "state");
  char msg[512];
  side_open(f, &b, false, 0, KGS);

  /* not a snapshot at all */
  assert_int_equal(restore_blob(&b, "NOTASNAPSHOT", 12, msg, sizeof msg), FL_EPARSE);
  assert_non_null(strstr(msg, "subtask 0 is not a snapshot (bad magic)"));

  /* cut anywhere: every prefix fails, naming the byte where it ran out */
  for (size_t cut = 8; cut < snap.len; cut += 37) {
    msg[0] = 0;
    assert_int_equal(restore_blob(&b, snap.data, cut, msg, sizeof msg), FL_EPARSE);
    assert_non_null(strstr(msg, "snapshot of subtask 0 is malformed at byte"));
  }

  /* an unknown section */
  unsigned char *bad = malloc(snap.len);
  memcpy(bad, snap.data, snap.len);
  bad[8] = 9; /* the first section's tag */
  assert_int_equal(restore_blob(&b, bad, snap.len, msg, sizeof msg), FL_EPARSE);
  assert_non_null(strstr(msg, "malformed at byte 9"));

  /* a length beyond the end is refused before anything that large is allocated */
  memcpy(bad, snap.data, snap.len);
  uint64_t huge = UINT64_C(1) << 60;
  memcpy(bad + 9, &huge, 8); /* the operator state's length */
  assert_int_equal(restore_blob(&b, bad, snap.len, msg, sizeof msg), FL_EPARSE);
  assert_non_null(strstr(msg, "malformed at byte 17"));

  /* a native section where none can be */
  const unsigned char native[] = {'F', 'L', 'S', 'N', 'A', 'P', '0', '1', 4, 1, 0, 0,   0, 0,
                                  0,   0,   0,   1,   0,   0,   0,   1,   0, 0, 0, 'x', 0};
  assert_int_equal(restore_blob(&b, native, sizeof native, msg, sizeof msg), FL_EPARSE);
  assert_non_null(strstr(msg, "native"));
  free(bad);
  fl_buf_free(&snap);
  side_close(&a);
  side_close(&b);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(hashmap_to_rocksdb, setup, teardown),
      cmocka_unit_test_setup_teardown(rocksdb_to_hashmap, setup, teardown),
      cmocka_unit_test_setup_teardown(rescale_keeps_each_key_group_once, setup, teardown),
      cmocka_unit_test_setup_teardown(big_snapshots_go_through_a_bounded_buffer, setup, teardown),
      cmocka_unit_test_setup_teardown(a_lent_tail_follows_the_operator_state, setup, teardown),
      cmocka_unit_test(a_snapshot_split_around_its_tail_is_the_whole_snapshot),
      cmocka_unit_test_setup_teardown(corrupted_snapshots_are_rejected_with_the_place, setup,
                                      teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
