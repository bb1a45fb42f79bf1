/*
 * Checkpoint storage (src/checkpoint/store.h): CRC32C, layout and round trips, shared
 * files, savepoints, retention, corruption detection with fallback, aborts and crashes.
 *
 * Expectations come from outside the store: CRC32C vectors from RFC 3720 and the
 * CRC catalogue, file contents regenerated from seeds, manifests checked with the
 * software CRC path, shared files compared by inode and mtime.
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "checkpoint/store.h"
#include "util/crc32c.h"

#include "run_util.h"

/* ---------------------------------------------------------------------------------- */
/* Helpers                                                                              */

static uint64_t rng_next(uint64_t *s) { /* splitmix64 */
  uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

static void fill(unsigned char *p, size_t n, uint64_t seed) {
  uint64_t s = seed;
  for (size_t i = 0; i < n; i++) p[i] = (unsigned char)rng_next(&s);
}

static char *vpathf(const char *fmt, va_list ap) {
  char *s = NULL;
  assert_true(vasprintf(&s, fmt, ap) > 0);
  return s;
}

static char *pathf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *pathf(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  char *s = vpathf(fmt, ap);
  va_end(ap);
  return s;
}

/* The file or directory name under dir: made, written (n bytes of data) or read. */
static void mkdir_at(const char *dir, const char *name) {
  char *p = pathf("%s/%s", dir, name);
  assert_int_equal(mkdir(p, 0755), 0);
  free(p);
}

static void write_at(const char *dir, const char *name, const void *data, size_t n) {
  char *p = pathf("%s/%s", dir, name);
  write_bytes(p, data, n);
  free(p);
}

static unsigned char *read_at(const char *dir, const char *name, size_t *n) {
  char *p = pathf("%s/%s", dir, name);
  unsigned char *data = (unsigned char *)read_text(p, n);
  free(p);
  return data;
}

static bool exists(const char *path) {
  struct stat st;
  return lstat(path, &st) == 0;
}

static bool existsf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static bool existsf(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  char *s = vpathf(fmt, ap);
  va_end(ap);
  bool r = exists(s);
  free(s);
  return r;
}

/* Entries of a directory, "." and ".." aside. */
static size_t countf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static size_t countf(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  char *s = vpathf(fmt, ap);
  va_end(ap);
  size_t n = 0;
  DIR *d = opendir(s);
  free(s);
  if (!d) return 0;
  struct dirent *de;
  while ((de = readdir(d)) != NULL) {
    if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..")) n++;
  }
  closedir(d);
  return n;
}

/* Log lines received through fl_ckpt_log_fn. */
typedef struct logbook {
  char lines[8][2048];
  int n;
} logbook_t;

static void log_cb(const char *line, void *arg) {
  logbook_t *b = arg;
  if (b->n < 8) snprintf(b->lines[b->n], sizeof b->lines[b->n], "%s", line);
  b->n++;
}

static char err[2048];

#define OK(call)                                               \
  do {                                                         \
    err[0] = 0;                                                \
    int rc_ = (call);                                          \
    if (rc_ != 0) print_error("%s: %d %s\n", #call, rc_, err); \
    assert_int_equal(rc_, 0);                                  \
  } while (0)

/* Checks that the newest complete checkpoint under root is id. */
static void latest_is(const char *root, int64_t id) {
  fl_ckpt_t *c;
  OK(fl_ckpt_open_latest(&c, root, NULL, NULL, err, sizeof err));
  assert_int_equal(fl_ckpt_id(c), id);
  fl_ckpt_close(c);
}

/* Checks that the file name of c holds the n bytes fill() makes from seed. */
static void file_is_pattern(fl_ckpt_t *c, const char *name, size_t n, uint64_t seed) {
  void *data;
  size_t len;
  OK(fl_ckpt_read_file(c, name, &data, &len, err, sizeof err));
  unsigned char *want = malloc(n);
  assert_non_null(want);
  fill(want, n, seed);
  assert_int_equal(len, n);
  assert_memory_equal(data, want, n);
  free(want);
  free(data);
}

/* Commits checkpoint id under root with the given own files (name, seed, size) and
 * shared files (name, src, key). */
typedef struct own {
  const char *name;
  uint64_t seed;
  size_t size;
} own_t;
typedef struct shr {
  const char *name;
  const char *src;
  const char *key;
} shr_t;

static void make_ckpt(const char *root, int64_t id, const own_t *own, size_t n_own, const shr_t *sh,
                      size_t n_sh, const char *meta) {
  fl_ckpt_writer_t *w;
  OK(fl_ckpt_writer_begin(&w, root, id, FL_CKPT_CHECKPOINT, err, sizeof err));
  for (size_t i = 0; i < n_own; i++) {
    unsigned char *p = malloc(own[i].size + 1);
    fill(p, own[i].size, own[i].seed);
    OK(fl_ckpt_writer_put(w, own[i].name, p, own[i].size, err, sizeof err));
    free(p);
  }
  for (size_t i = 0; i < n_sh; i++)
    OK(fl_ckpt_writer_add_shared(w, sh[i].name, sh[i].src, sh[i].key, err, sizeof err));
  OK(fl_ckpt_writer_commit(w, meta, err, sizeof err));
}

static void make_src(const char *path, size_t n, uint64_t seed) {
  unsigned char *p = malloc(n + 1);
  fill(p, n, seed);
  write_bytes(path, p, n);
  free(p);
}

/* ---------------------------------------------------------------------------------- */
/* CRC32C                                                                               */

typedef uint32_t (*crc_fn)(uint32_t, const void *, size_t);

static void check_vectors(crc_fn f) {
  unsigned char b[32];
  assert_int_equal(f(0, "123456789", 9), 0xE3069283u);
  assert_int_equal(f(0, "", 0), 0u);
  memset(b, 0, sizeof b);
  assert_int_equal(f(0, b, 32), 0x8A9136AAu);
  memset(b, 0xff, sizeof b); /* RFC 3720 B.4 */
  assert_int_equal(f(0, b, 32), 0x62A8AB43u);
  for (int i = 0; i < 32; i++) b[i] = (unsigned char)i;
  assert_int_equal(f(0, b, 32), 0x46DD794Eu);
  for (int i = 0; i < 32; i++) b[i] = (unsigned char)(31 - i);
  assert_int_equal(f(0, b, 32), 0x113FDB5Cu);
  /* Continuing a finished value equals one pass. */
  assert_int_equal(f(f(0, "1234", 4), "56789", 5), 0xE3069283u);
}

static void crc32c_software_path_matches_known_vectors(void **state) {
  (void)state;
  check_vectors(fl_crc32c_sw_extend);
}

static void crc32c_hardware_path_matches_known_vectors(void **state) {
  (void)state;
  if (!fl_crc32c_hw_available()) skip();
  check_vectors(fl_crc32c_hw_extend);
}

static void crc32c_paths_agree_at_every_alignment_and_split(void **state) {
  (void)state;
  unsigned char buf[4096 + 16];
  fill(buf, sizeof buf, 42);
  for (size_t off = 0; off < 16; off++) {
    for (size_t len = 0; len < 300; len += 7) {
      uint32_t sw = fl_crc32c_sw_extend(0, buf + off, len);
      assert_int_equal(fl_crc32c(buf + off, len), sw);
      if (fl_crc32c_hw_available()) assert_int_equal(fl_crc32c_hw_extend(0, buf + off, len), sw);
      size_t cut = len / 3;
      assert_int_equal(fl_crc32c_extend(fl_crc32c(buf + off, cut), buf + off + cut, len - cut), sw);
    }
  }
  uint32_t whole = fl_crc32c_sw_extend(0, buf, 4096);
  assert_int_equal(fl_crc32c(buf, 4096), whole);
  /* A bit-by-bit reference (the definition) for one buffer. */
  uint32_t c = 0xffffffffu;
  for (size_t i = 0; i < 4096; i++) {
    c ^= buf[i];
    for (int k = 0; k < 8; k++) c = (c >> 1) ^ (0x82F63B78u & (0u - (c & 1)));
  }
  assert_int_equal(~c, whole);
}

/* ---------------------------------------------------------------------------------- */
/* Round trip                                                                           */

#define BIG (3u << 20)

static void round_trip_keeps_files_meta_and_checksums(void **state) {
  (void)state;
  char *t = make_tmpdir("fl-ckpt");
  char *root = pathf("%s/root/", t); /* trailing slash on purpose */
  char *src = pathf("%s/src.bin", t);
  make_src(src, 100000, 7);
  unsigned char *big = malloc(BIG);
  fill(big, BIG, 99);

  fl_ckpt_writer_t *w;
  OK(fl_ckpt_writer_begin(&w, root, 1, FL_CKPT_CHECKPOINT, err, sizeof err));
  OK(fl_ckpt_writer_put(w, "small", "hello", 5, err, sizeof err));
  OK(fl_ckpt_writer_put(w, "empty", NULL, 0, err, sizeof err));
  fl_ckpt_out_t *o;
  OK(fl_ckpt_writer_open_file(w, "big/data.bin", &o, err, sizeof err));
  uint64_t s = 5;
  for (size_t off = 0; off < BIG;) {
    size_t n = 1 + rng_next(&s) % 200000;
    if (n > BIG - off) n = BIG - off;
    OK(fl_ckpt_out_write(o, big + off, n, err, sizeof err));
    off += n;
  }
  uint64_t size;
  uint32_t crc;
  OK(fl_ckpt_out_close(o, &size, &crc, err, sizeof err));
  assert_int_equal(size, BIG);
  assert_int_equal(crc, fl_crc32c_sw_extend(0, big, BIG));
  OK(fl_ckpt_writer_add_file(w, "copied", src, err, sizeof err));
  OK(fl_ckpt_writer_commit(w, "{\"job\":\"x\",\"n\":3,\"nested\":{\"a\":[1,2]}}", err, sizeof err));

  /* The manifest checks itself: its last line is the CRC32C of what precedes it. */
  char *mp = pathf("%s/root/chk-1/_manifest", t);
  size_t ml;
  unsigned char *m = (unsigned char *)read_text(mp, &ml);
  assert_non_null(m);
  m[ml] = 0;
  assert_true(ml > 16);
  char expect[32];
  snprintf(expect, sizeof expect, "crc32c %08x\n", fl_crc32c_sw_extend(0, m, ml - 16));
  assert_string_equal((char *)m + ml - 16, expect);
  assert_non_null(strstr((char *)m, "\"format\": 1"));
  free(m);
  free(mp);
  assert_false(existsf("%s/root/chk-1/_manifest.tmp", t));

  logbook_t lb = {0};
  fl_ckpt_t *c;
  OK(fl_ckpt_open_latest(&c, root, log_cb, &lb, err, sizeof err));
  assert_int_equal(lb.n, 0);
  assert_int_equal(fl_ckpt_id(c), 1);
  assert_int_equal(fl_ckpt_kind(c), FL_CKPT_CHECKPOINT);
  assert_string_equal(fl_ckpt_meta(c), "{\"job\":\"x\",\"n\":3,\"nested\":{\"a\":[1,2]}}");
  assert_true(fl_ckpt_created_ms(c) > 1600000000000ll);
  assert_int_equal(fl_ckpt_file_count(c), 4);
  const char *names[] = {"big/data.bin", "copied", "empty", "small"};
  for (size_t i = 0; i < 4; i++) {
    assert_string_equal(fl_ckpt_file_at(c, i)->name, names[i]);
    assert_false(fl_ckpt_file_at(c, i)->shared);
  }
  assert_null(fl_ckpt_file_at(c, 4));
  assert_null(fl_ckpt_file_find(c, "nope"));
  char *bp = pathf("%s/root/chk-1/big/data.bin", t);
  assert_string_equal(fl_ckpt_file_find(c, "big/data.bin")->path, bp);
  free(bp);
  assert_int_equal(fl_ckpt_file_find(c, "big/data.bin")->crc32c, fl_crc32c_sw_extend(0, big, BIG));

  void *data;
  size_t len;
  OK(fl_ckpt_read_file(c, "small", &data, &len, err, sizeof err));
  assert_int_equal(len, 5);
  assert_memory_equal(data, "hello", 5);
  free(data);
  OK(fl_ckpt_read_file(c, "empty", &data, &len, err, sizeof err));
  assert_int_equal(len, 0);
  free(data);
  file_is_pattern(c, "copied", 100000, 7);
  assert_int_equal(fl_ckpt_read_file(c, "nope", &data, &len, err, sizeof err), FL_ENOTFOUND);

  fl_ckpt_in_t *in;
  OK(fl_ckpt_in_open(c, "big/data.bin", &in, err, sizeof err));
  unsigned char chunk[7777];
  size_t total = 0, got;
  for (;;) {
    OK(fl_ckpt_in_read(in, chunk, sizeof chunk, &got, err, sizeof err));
    if (got == 0) break;
    assert_true(total + got <= BIG);
    assert_memory_equal(chunk, big + total, got);
    total += got;
  }
  assert_int_equal(total, BIG);
  fl_ckpt_in_close(in);
  fl_ckpt_close(c);

  /* The same directory opened directly, and through open_path both ways. */
  char *dir = pathf("%s/root/chk-1", t);
  OK(fl_ckpt_open(&c, dir, err, sizeof err));
  assert_int_equal(fl_ckpt_file_count(c), 4);
  fl_ckpt_close(c);
  OK(fl_ckpt_open_path(&c, dir, NULL, NULL, err, sizeof err));
  assert_int_equal(fl_ckpt_id(c), 1);
  fl_ckpt_close(c);
  OK(fl_ckpt_open_path(&c, root, NULL, NULL, err, sizeof err));
  assert_int_equal(fl_ckpt_id(c), 1);
  fl_ckpt_close(c);
  int64_t max;
  OK(fl_ckpt_max_id(root, &max, err, sizeof err));
  assert_int_equal(max, 1);
  free(dir);

  free(big);
  rm_tree(t);
  free(src);
  free(root);
  free(t);
}

typedef struct thr_arg {
  fl_ckpt_writer_t *w;
  int t;
  int failures;
  const char *dir; /* sources of shared files */
  const char *root;
} thr_arg_t;

static void *writer_thread(void *p) {
  thr_arg_t *a = p;
  char e[512];
  for (int j = 0; j < 8; j++) {
    char name[64];
    snprintf(name, sizeof name, "t%d/f%d", a->t, j);
    size_t n = 1000 + (size_t)(a->t * 8 + j) * 3001;
    unsigned char *buf = malloc(n);
    fill(buf, n, (uint64_t)(a->t * 100 + j));
    fl_ckpt_out_t *o;
    if (fl_ckpt_writer_open_file(a->w, name, &o, e, sizeof e)) {
      a->failures++;
      free(buf);
      continue;
    }
    size_t half = n / 2;
    if (fl_ckpt_out_write(o, buf, half, e, sizeof e) ||
        fl_ckpt_out_write(o, buf + half, n - half, e, sizeof e)) {
      a->failures++;
      fl_ckpt_out_discard(o);
    } else if (fl_ckpt_out_close(o, NULL, NULL, e, sizeof e)) {
      a->failures++;
    }
    free(buf);
  }
  /* Shared files: one reused from chk-1, one of its own, one new key every thread adds. */
  char name[64], src[512], key[32];
  snprintf(name, sizeof name, "t%d/common.sst", a->t);
  snprintf(src, sizeof src, "%s/common.src", a->dir);
  if (fl_ckpt_writer_add_shared(a->w, name, src, "common", e, sizeof e)) a->failures++;
  snprintf(name, sizeof name, "t%d/own.sst", a->t);
  snprintf(src, sizeof src, "%s/own%d.src", a->dir, a->t);
  snprintf(key, sizeof key, "own-%d", a->t);
  if (fl_ckpt_writer_add_shared(a->w, name, src, key, e, sizeof e)) a->failures++;
  snprintf(name, sizeof name, "t%d/fresh.sst", a->t);
  snprintf(src, sizeof src, "%s/fresh.src", a->dir);
  if (fl_ckpt_writer_add_shared(a->w, name, src, "fresh", e, sizeof e)) a->failures++;
  if (a->failures) print_error("thread %d: %s\n", a->t, e);
  return NULL;
}

static void *retain_thread(void *p) {
  thr_arg_t *a = p;
  char e[512];
  for (int i = 0; i < 20; i++) {
    if (fl_ckpt_retain(a->root, 1, NULL, NULL, e, sizeof e)) a->failures++;
  }
  return NULL;
}

static void count_release(void *arg) { (*(int *)arg)++; }

/* Checkpoint id under t with file "d" open: "head" written, then big (BIG bytes of
 * pattern seed) deferred with count_release(released). */
static fl_ckpt_out_t *head_then_deferred(const char *t, int64_t id, fl_ckpt_writer_t **w,
                                         unsigned char *big, uint64_t seed, int *released) {
  fill(big, BIG, seed);
  fl_ckpt_out_t *o;
  OK(fl_ckpt_writer_begin(w, t, id, FL_CKPT_CHECKPOINT, err, sizeof err));
  OK(fl_ckpt_writer_open_file(*w, "d", &o, err, sizeof err));
  OK(fl_ckpt_out_write(o, "head", 4, err, sizeof err));
  OK(fl_ckpt_out_defer(o, big, BIG, count_release, released, err, sizeof err));
  return o;
}

/* Deferred pieces are written at close, after what was written before and in the order
 * they were deferred, each released once; a discarded file releases them unwritten; no
 * write may follow a deferral. */
static void deferred_pieces_are_written_at_close_and_released_once(void **state) {
  (void)state;
  char *t = make_tmpdir("fl-ckpt");
  unsigned char *big = malloc(BIG);
  int released = 0;
  fl_ckpt_writer_t *w;
  fl_ckpt_out_t *o = head_then_deferred(t, 1, &w, big, 3, &released);
  char trailer[2] = {'!', '?'};
  OK(fl_ckpt_out_defer(o, trailer, 2, NULL, NULL, err, sizeof err));
  trailer[0] = 'x'; /* copied when deferred */
  assert_int_equal(fl_ckpt_out_write(o, "late", 4, err, sizeof err), FL_EINVAL);
  assert_int_equal(released, 0);
  uint64_t size;
  OK(fl_ckpt_out_close(o, &size, NULL, err, sizeof err));
  assert_int_equal(released, 1);
  assert_int_equal(size, 4 + BIG + 2);
  /* a discarded file releases what it deferred, without writing it */
  OK(fl_ckpt_writer_open_file(w, "gone", &o, err, sizeof err));
  OK(fl_ckpt_out_defer(o, big, BIG, count_release, &released, err, sizeof err));
  fl_ckpt_out_discard(o);
  assert_int_equal(released, 2);
  assert_int_equal(fl_ckpt_writer_commit(w, "{}", err, sizeof err), FL_ESTATE);

  o = head_then_deferred(t, 2, &w, big, 3, &released);
  OK(fl_ckpt_out_defer(o, "!?", 2, NULL, NULL, err, sizeof err));
  OK(fl_ckpt_out_close(o, NULL, NULL, err, sizeof err));
  assert_int_equal(released, 3);
  OK(fl_ckpt_writer_commit(w, "{}", err, sizeof err));
  fl_ckpt_t *c;
  OK(fl_ckpt_open_latest(&c, t, NULL, NULL, err, sizeof err));
  void *data;
  size_t len;
  OK(fl_ckpt_read_file(c, "d", &data, &len, err, sizeof err));
  assert_int_equal(len, 4 + BIG + 2);
  assert_memory_equal(data, "head", 4);
  assert_memory_equal((unsigned char *)data + 4, big, BIG);
  assert_memory_equal((unsigned char *)data + 4 + BIG, "!?", 2);
  free(data);
  fl_ckpt_close(c);
  free(big);
  rm_tree(t);
  free(t);
}

/* A deferred piece whose write fails (the file may not grow past 1 MiB: EFBIG) fails
 * the close, releases every piece once, and leaves the checkpoint uncommittable. */
static void a_deferred_piece_that_cannot_be_written_fails_the_file(void **state) {
  (void)state;
  char *t = make_tmpdir("fl-ckpt");
  unsigned char *big = malloc(BIG);
  int released = 0;
  fl_ckpt_writer_t *w;
  fl_ckpt_out_t *o = head_then_deferred(t, 1, &w, big, 5, &released);
  OK(fl_ckpt_out_defer(o, big, 10, count_release, &released, err, sizeof err));
  struct rlimit old, small = {1u << 20, 1u << 20};
  assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
  small.rlim_max = old.rlim_max;
  void (*prev)(int) = signal(SIGXFSZ, SIG_IGN);
  assert_int_equal(setrlimit(RLIMIT_FSIZE, &small), 0);
  int rc = fl_ckpt_out_close(o, NULL, NULL, err, sizeof err);
  assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
  signal(SIGXFSZ, prev);
  assert_int_equal(rc, FL_EIO);
  assert_non_null(strstr(err, "write"));
  assert_int_equal(released, 2);
  assert_int_equal(fl_ckpt_writer_commit(w, "{}", err, sizeof err), FL_ESTATE);
  free(big);
  rm_tree(t);
  free(t);
}

static void files_added_from_several_threads_at_once_all_arrive(void **state) {
  (void)state;
  char *t = make_tmpdir("fl-ckpt");
  char *root = pathf("%s/root", t), *common = pathf("%s/common.src", t), *p;
  make_src(common, 7000, 70);
  make_src(p = pathf("%s/fresh.src", t), 9000, 90);
  free(p);
  for (int i = 0; i < 4; i++) {
    make_src(p = pathf("%s/own%d.src", t, i), 3000 + (size_t)i, (uint64_t)(80 + i));
    free(p);
  }
  shr_t sh[] = {{"common.sst", common, "common"}};
  make_ckpt(root, 1, NULL, 0, sh, 1, NULL);
  free(common);

  fl_ckpt_writer_t *w;
  OK(fl_ckpt_writer_begin(&w, root, 2, FL_CKPT_CHECKPOINT, err, sizeof err));
  pthread_t th[5];
  thr_arg_t args[5];
  for (int i = 0; i < 5; i++) {
    args[i] = (thr_arg_t){w, i, 0, t, root};
    void *(*fn)(void *) = i < 4 ? writer_thread : retain_thread;
    assert_int_equal(pthread_create(&th[i], NULL, fn, &args[i]), 0);
  }
  for (int i = 0; i < 5; i++) {
    pthread_join(th[i], NULL);
    assert_int_equal(args[i].failures, 0);
  }
  OK(fl_ckpt_writer_commit(w, NULL, err, sizeof err));
  OK(fl_ckpt_retain(root, 1, NULL, NULL, err, sizeof err));
  assert_false(existsf("%s/chk-1", root));
  assert_int_equal(countf("%s/chk-2", root), 5); /* t0..t3, _manifest: no temporary file */
  /* common (reused), own-0..3, fresh */
  assert_int_equal(countf("%s/shared", root), 6);
  fl_ckpt_t *c;
  OK(fl_ckpt_open_latest(&c, root, NULL, NULL, err, sizeof err));
  assert_int_equal(fl_ckpt_file_count(c), 4 * 8 + 4 * 3);
  assert_string_equal(fl_ckpt_meta(c), "{}");
  for (int i = 0; i < 4; i++) {
    for (int j = 0; j < 8; j++) {
      char name[64];
      snprintf(name, sizeof name, "t%d/f%d", i, j);
      size_t n = 1000 + (size_t)(i * 8 + j) * 3001;
      unsigned char *buf = malloc(n);
      fill(buf, n, (uint64_t)(i * 100 + j));
      void *d;
      size_t len;
      OK(fl_ckpt_read_file(c, name, &d, &len, err, sizeof err));
      assert_int_equal(len, n);
      assert_memory_equal(d, buf, n);
      free(d);
      free(buf);
    }
    char name[64];
    snprintf(name, sizeof name, "t%d/fresh.sst", i);
    const fl_ckpt_file_t *f = fl_ckpt_file_find(c, name);
    assert_non_null(f);
    assert_true(f->shared);
    assert_int_equal(f->size, 9000);
    unsigned char *want = malloc(9000);
    fill(want, 9000, 90);
    assert_int_equal(f->crc32c, fl_crc32c_sw_extend(0, want, 9000));
    free(want);
  }
  fl_ckpt_close(c);
  rm_tree(t);
  free(root);
  free(t);
}

/* ---------------------------------------------------------------------------------- */
/* Shared files and savepoints                                                          */

static void second_checkpoint_reuses_a_shared_file_without_copying(void **state) {
  (void)state;
  char *t = make_tmpdir("fl-ckpt");
  char *root = pathf("%s/root", t), *a = pathf("%s/a.sst", t), *b = pathf("%s/b.sst", t);
  char *cpath = pathf("%s/c.sst", t), *k1 = pathf("%s/root/shared/k1", t);
  make_src(a, 200000, 1);
  make_src(b, 200000, 1); /* same content, another inode */
  make_src(cpath, 5000, 2);
  shr_t s1[] = {{"db/000001.sst", a, "k1"}};
  own_t o1[] = {{"op.state", 10, 100}};
  make_ckpt(root, 1, o1, 1, s1, 1, NULL);
  struct stat st1, st2, sb;
  assert_int_equal(stat(k1, &st1), 0);
  assert_int_equal(stat(b, &sb), 0);
  assert_true(st1.st_ino != sb.st_ino);

  shr_t s2[] = {{"db/000001.sst", b, "k1"}, {"db/000002.sst", cpath, "k2"}};
  make_ckpt(root, 2, o1, 1, s2, 2, "{\"v\":2}");
  assert_int_equal(stat(k1, &st2), 0);
  assert_int_equal(st2.st_ino, st1.st_ino);
  assert_true(st2.st_mtim.tv_sec == st1.st_mtim.tv_sec &&
              st2.st_mtim.tv_nsec == st1.st_mtim.tv_nsec);
  assert_int_equal(countf("%s/root/shared", t), 2);

  fl_ckpt_t *c;
  OK(fl_ckpt_open_latest(&c, root, NULL, NULL, err, sizeof err));
  assert_int_equal(fl_ckpt_id(c), 2);
  const fl_ckpt_file_t *f = fl_ckpt_file_find(c, "db/000001.sst");
  assert_non_null(f);
  assert_true(f->shared);
  assert_string_equal(f->shared_key, "k1");
  assert_string_equal(f->path, k1);
  file_is_pattern(c, "db/000002.sst", 5000, 2);
  fl_ckpt_close(c);

  /* The same key with another size is refused: a key names one content forever. */
  fl_ckpt_writer_t *w;
  OK(fl_ckpt_writer_begin(&w, root, 3, FL_CKPT_CHECKPOINT, err, sizeof err));
  assert_int_equal(fl_ckpt_writer_add_shared(w, "x.sst", cpath, "k1", err, sizeof err), FL_ESTATE);
  assert_non_null(strstr(err, "k1"));
  /* ...and the checkpoint can no longer be committed. */
  assert_int_equal(fl_ckpt_writer_commit(w, NULL, err, sizeof err), FL_ESTATE);
  assert_false(existsf("%s/root/chk-3", t));
  latest_is(root, 2);
  rm_tree(t);
  free(root);
  free(a);
  free(b);
  free(cpath);
  free(k1);
  free(t);
}

static void savepoint_is_self_contained_and_can_be_moved(void **state) {
  (void)state;
  char *t = make_tmpdir("fl-ckpt");
  char *sp = pathf("%s/sp/one", t), *a = pathf("%s/a.sst", t);
  make_src(a, 30000, 3);
  fl_ckpt_writer_t *w;
  OK(fl_ckpt_writer_begin(&w, sp, 5, FL_CKPT_SAVEPOINT, err, sizeof err));
  OK(fl_ckpt_writer_put(w, "ops/op-1", "state", 5, err, sizeof err));
  OK(fl_ckpt_writer_add_shared(w, "db/1.sst", a, "k1", err, sizeof err));
  OK(fl_ckpt_writer_commit(w, "{\"savepoint\":true}", err, sizeof err));
  assert_false(existsf("%s/sp/shared", t));

  char *moved = pathf("%s/elsewhere", t);
  assert_int_equal(mkdir(moved, 0755), 0);
  char *dst = pathf("%s/elsewhere/sp", t);
  assert_int_equal(rename(sp, dst), 0);
  unlink(a); /* nothing outside the savepoint is needed */
  fl_ckpt_t *c;
  OK(fl_ckpt_open(&c, dst, err, sizeof err));
  assert_int_equal(fl_ckpt_kind(c), FL_CKPT_SAVEPOINT);
  assert_int_equal(fl_ckpt_id(c), 5);
  assert_string_equal(fl_ckpt_meta(c), "{\"savepoint\":true}");
  assert_int_equal(fl_ckpt_file_count(c), 2);
  for (size_t i = 0; i < fl_ckpt_file_count(c); i++) {
    const fl_ckpt_file_t *f = fl_ckpt_file_at(c, i);
    assert_false(f->shared);
    assert_null(f->shared_key);
    assert_true(strncmp(f->path, dst, strlen(dst)) == 0);
  }
  file_is_pattern(c, "db/1.sst", 30000, 3);
  fl_ckpt_close(c);

  /* A savepoint never goes into a directory that holds something. */
  assert_int_equal(fl_ckpt_writer_begin(&w, dst, 6, FL_CKPT_SAVEPOINT, err, sizeof err), FL_EINVAL);
  assert_null(w);
  /* Its abort removes the directory it created. */
  char *sp2 = pathf("%s/sp2", t);
  OK(fl_ckpt_writer_begin(&w, sp2, 7, FL_CKPT_SAVEPOINT, err, sizeof err));
  OK(fl_ckpt_writer_put(w, "x", "1", 1, err, sizeof err));
  fl_ckpt_writer_abort(w);
  assert_false(exists(sp2));
  rm_tree(t);
  free(sp);
  free(sp2);
  free(a);
  free(moved);
  free(dst);
  free(t);
}

/* ---------------------------------------------------------------------------------- */
/* Retention                                                                            */

static void retention_keeps_newest_and_shared_files_while_referenced(void **state) {
  (void)state;
  char *t = make_tmpdir("fl-ckpt");
  char *root = pathf("%s/root", t);
  char *src[5];
  for (int i = 1; i <= 4; i++) {
    src[i] = pathf("%s/k%d.src", t, i);
    make_src(src[i], 1000 + (size_t)i, (uint64_t)i);
  }
  own_t own[] = {{"op.state", 1, 10}};
  shr_t c1[] = {{"a", src[1], "k1"}, {"b", src[2], "k2"}};
  shr_t c2[] = {{"b", src[2], "k2"}, {"c", src[3], "k3"}};
  shr_t c3[] = {{"c", src[3], "k3"}, {"d", src[4], "k4"}};
  shr_t c4[] = {{"d", src[4], "k4"}};
  make_ckpt(root, 1, own, 1, c1, 2, NULL);
  make_ckpt(root, 2, own, 1, c2, 2, NULL);
  make_ckpt(root, 3, own, 1, c3, 2, NULL);
  make_ckpt(root, 4, own, 1, c4, 1, NULL);
  /* Debris: an incomplete checkpoint, a corrupt one, a temporary file in shared. */
  char *p;
  mkdir_at(root, "chk-9");
  write_at(root, "chk-9/half", "x", 1);
  mkdir_at(root, "chk-10");
  write_at(root, "chk-10/_manifest", "{\"garbage\"\n", 11);
  write_at(root, "shared/zzz.tmp", "x", 1);

  logbook_t lb = {0};
  OK(fl_ckpt_retain(root, 2, log_cb, &lb, err, sizeof err));
  assert_false(existsf("%s/chk-1", root));
  assert_false(existsf("%s/chk-2", root));
  assert_true(existsf("%s/chk-3/_manifest", root));
  assert_true(existsf("%s/chk-4/_manifest", root));
  assert_false(existsf("%s/chk-9", root));
  assert_false(existsf("%s/chk-10", root));
  /* One line each for the incomplete and the corrupt checkpoint, naming them. */
  assert_int_equal(lb.n, 2);
  bool saw9 = false, saw10 = false;
  for (int i = 0; i < 2; i++) {
    saw10 |= strstr(lb.lines[i], "chk-10") && strstr(lb.lines[i], "_manifest");
    saw9 |= strstr(lb.lines[i], "chk-9 ") != NULL;
  }
  assert_true(saw9 && saw10);
  const char *gone[] = {"k1", "k2", "zzz.tmp"}, *kept[] = {"k3", "k4"};
  for (int i = 0; i < 3; i++) {
    assert_false(existsf("%s/shared/%s", root, gone[i]));
  }
  for (int i = 0; i < 2; i++) {
    assert_true(existsf("%s/shared/%s", root, kept[i]));
  }

  /* A writer in progress reuses k3, referenced only by chk-3: retain(1) deletes chk-3
   * but neither k3 nor the writer's directory. */
  fl_ckpt_writer_t *w;
  OK(fl_ckpt_writer_begin(&w, root, 5, FL_CKPT_CHECKPOINT, err, sizeof err));
  OK(fl_ckpt_writer_add_shared(w, "c", src[3], "k3", err, sizeof err));
  OK(fl_ckpt_writer_put(w, "op.state", "s", 1, err, sizeof err));
  OK(fl_ckpt_retain(root, 1, NULL, NULL, err, sizeof err));
  assert_false(existsf("%s/chk-3", root));
  assert_true(existsf("%s/chk-5/op.state", root));
  assert_true(existsf("%s/shared/k3", root));
  OK(fl_ckpt_writer_commit(w, NULL, err, sizeof err));

  /* A checkpoint held open survives retention, with its shared files. */
  fl_ckpt_t *c;
  OK(fl_ckpt_open(&c, p = pathf("%s/chk-5", root), err, sizeof err));
  free(p);
  make_ckpt(root, 6, own, 1, NULL, 0, NULL);
  OK(fl_ckpt_retain(root, 1, NULL, NULL, err, sizeof err));
  assert_false(existsf("%s/chk-4", root));
  assert_false(existsf("%s/shared/k4", root));
  assert_true(existsf("%s/chk-5/_manifest", root));
  assert_true(existsf("%s/shared/k3", root));
  fl_ckpt_close(c);
  OK(fl_ckpt_retain(root, 1, NULL, NULL, err, sizeof err));
  assert_false(existsf("%s/chk-5", root));
  assert_false(existsf("%s/shared/k3", root));
  assert_int_equal(countf("%s", root), 2); /* chk-6 and shared */
  assert_int_equal(countf("%s/shared", root), 0);

  assert_int_equal(fl_ckpt_retain(root, 0, NULL, NULL, err, sizeof err), FL_EINVAL);
  OK(fl_ckpt_retain(p = pathf("%s/none", t), 1, NULL, NULL, err, sizeof err));
  free(p);
  for (int i = 1; i <= 4; i++) free(src[i]);
  rm_tree(t);
  free(root);
  free(t);
}

/* ---------------------------------------------------------------------------------- */
/* Corruption                                                                           */

enum {
  M_TRUNC_FILE,
  M_FLIP_FILE,
  M_DEL_FILE,
  M_DEL_MANIFEST,
  M_TRUNC_MANIFEST,
  M_FLIP_MANIFEST,
  M_KINDS
};
static const char *const mut_names[] = {"truncate file",     "flip file bit",
                                        "delete file",       "delete manifest",
                                        "truncate manifest", "flip manifest bit"};

typedef struct target {
  char *path;
  const char *label; /* what the log line must name */
  bool shared;
  unsigned char *orig;
  size_t len;
} target_t;

static void pwrite_at(const char *path, const void *data, size_t n, off_t off, int flags) {
  int fd = open(path, O_WRONLY | flags, 0644);
  assert_true(fd >= 0);
  assert_int_equal(pwrite(fd, data, n, off), (ssize_t)n);
  assert_int_equal(close(fd), 0);
}

static void every_mutation_of_the_newest_checkpoint_is_detected_with_fallback(void **state) {
  (void)state;
  char *t = make_tmpdir("fl-ckpt");
  char *root = pathf("%s/root", t), *s1 = pathf("%s/s1.src", t);
  make_src(s1, 2000, 77);
  own_t o1[] = {{"a.state", 1, 1500}, {"b/c.state", 2, 700}};
  own_t o2[] = {{"a.state", 3, 1600}, {"b/c.state", 4, 900}, {"d.state", 5, 1}};
  shr_t sh[] = {{"db/1.sst", s1, "s1"}};
  make_ckpt(root, 1, o1, 2, sh, 1, "{\"c\":1}");
  make_ckpt(root, 2, o2, 3, sh, 1, "{\"c\":2}");

  /* chk-2's own files, the shared file, chk-2's manifest. */
  target_t tg[5] = {{pathf("%s/chk-2/a.state", root), "a.state", false, NULL, 0},
                    {pathf("%s/chk-2/b/c.state", root), "b/c.state", false, NULL, 0},
                    {pathf("%s/chk-2/d.state", root), "d.state", false, NULL, 0},
                    {pathf("%s/shared/s1", root), "s1", true, NULL, 0},
                    {pathf("%s/chk-2/_manifest", root), "_manifest", false, NULL, 0}};
  for (int i = 0; i < 5; i++) {
    tg[i].orig = (unsigned char *)read_text(tg[i].path, &tg[i].len);
    assert_non_null(tg[i].orig);
    assert_true(tg[i].len > 0);
  }

  uint64_t rng = 20240611;
  int detected = 0, per_kind[M_KINDS] = {0}, shared_hits = 0;
  const int N = 2000;
  for (int i = 0; i < N; i++) {
    int kind = (int)(rng_next(&rng) % M_KINDS);
    target_t *x;
    if (kind <= M_DEL_FILE)
      x = &tg[rng_next(&rng) % 4]; /* a quarter of them hit the shared file */
    else
      x = &tg[4];
    per_kind[kind]++;
    char detail[128] = "";
    /* Mutations and their undoing touch as little as possible: rewriting whole files
     * (O_TRUNC) costs milliseconds each on ext4. */
    off_t cut = 0;
    size_t bit = 0;
    switch (kind) {
    case M_TRUNC_FILE:
    case M_TRUNC_MANIFEST:
      cut = (off_t)(rng_next(&rng) % x->len);
      assert_int_equal(truncate(x->path, cut), 0);
      snprintf(detail, sizeof detail, "to %lld of %zu", (long long)cut, x->len);
      break;
    case M_FLIP_FILE:
    case M_FLIP_MANIFEST: {
      bit = (size_t)(rng_next(&rng) % (x->len * 8));
      unsigned char b = x->orig[bit / 8] ^ (unsigned char)(1u << (bit % 8));
      pwrite_at(x->path, &b, 1, (off_t)(bit / 8), 0);
      snprintf(detail, sizeof detail, "bit %zu", bit);
      break;
    }
    default: assert_int_equal(unlink(x->path), 0);
    }

    logbook_t lb = {0};
    fl_ckpt_t *c = NULL;
    int rc = fl_ckpt_open_latest(&c, root, log_cb, &lb, err, sizeof err);
    bool ok;
    if (x->shared) {
      /* Both checkpoints reference it: neither is usable, each is reported. */
      ok = rc == FL_ENOTFOUND && c == NULL && lb.n == 2 && strstr(lb.lines[0], "chk-2") &&
           strstr(lb.lines[0], x->label) && strstr(lb.lines[1], "chk-1") &&
           strstr(lb.lines[1], x->label);
      shared_hits++;
    } else {
      ok = rc == 0 && c && fl_ckpt_id(c) == 1 && lb.n == 1 && strstr(lb.lines[0], "chk-2") &&
           strstr(lb.lines[0], x->label) && strstr(lb.lines[0], "falling back");
      if (ok) assert_string_equal(fl_ckpt_meta(c), "{\"c\":1}");
    }
    if (ok) {
      detected++;
    } else {
      print_error("mutation %d (%s of %s, %s) not handled: rc %d, %d log line(s): %s\n", i,
                  mut_names[kind], x->label, detail, rc, lb.n, lb.n ? lb.lines[0] : "");
    }
    fl_ckpt_close(c);
    if (kind == M_TRUNC_FILE || kind == M_TRUNC_MANIFEST)
      pwrite_at(x->path, x->orig + cut, x->len - (size_t)cut, cut, 0);
    else if (kind == M_FLIP_FILE || kind == M_FLIP_MANIFEST)
      pwrite_at(x->path, x->orig + bit / 8, 1, (off_t)(bit / 8), 0);
    else
      pwrite_at(x->path, x->orig, x->len, 0, O_CREAT | O_EXCL);
    if (i % 250 == 0) { /* the restore really restores */
      lb.n = 0;
      OK(fl_ckpt_open_latest(&c, root, log_cb, &lb, err, sizeof err));
      assert_int_equal(fl_ckpt_id(c), 2);
      assert_int_equal(lb.n, 0);
      fl_ckpt_close(c);
    }
  }
  assert_int_equal(detected, N);
  for (int k = 0; k < M_KINDS; k++) assert_true(per_kind[k] > 200);
  assert_true(shared_hits > 50);

  for (int i = 0; i < 5; i++) {
    free(tg[i].path);
    free(tg[i].orig);
  }
  rm_tree(t);
  free(root);
  free(s1);
  free(t);
}

static void damage_is_reported_with_its_error_code(void **state) {
  (void)state;
  char *t = make_tmpdir("fl-ckpt");
  char *root = pathf("%s/root", t), *p;
  own_t o[] = {{"a.state", 1, 5000}};
  make_ckpt(root, 1, o, 1, NULL, 0, NULL);
  fl_ckpt_t *c;
  char *dir = pathf("%s/chk-1", root);
  /* Opened, then damaged: reads verify again. */
  OK(fl_ckpt_open(&c, dir, err, sizeof err));
  size_t n;
  unsigned char *orig = (unsigned char *)read_text(p = pathf("%s/a.state", dir), &n);
  unsigned char *bad = malloc(n);
  memcpy(bad, orig, n);
  bad[1234] ^= 0x10;
  write_bytes(p, bad, n);
  void *d;
  size_t len;
  assert_int_equal(fl_ckpt_read_file(c, "a.state", &d, &len, err, sizeof err), FL_EPARSE);
  assert_non_null(strstr(err, "CRC32C mismatch"));
  /* A file that grew or shrank since the manifest was written. */
  unsigned char *grown = malloc(n + 1);
  memcpy(grown, orig, n);
  grown[n] = 'x';
  write_bytes(p, grown, n + 1);
  assert_int_equal(fl_ckpt_read_file(c, "a.state", &d, &len, err, sizeof err), FL_EPARSE);
  assert_non_null(strstr(err, "size exceeds"));
  write_bytes(p, orig, n - 1);
  assert_int_equal(fl_ckpt_read_file(c, "a.state", &d, &len, err, sizeof err), FL_EPARSE);
  assert_non_null(strstr(err, "size is below"));
  free(grown);
  write_bytes(p, bad, n);
  fl_ckpt_in_t *in;
  OK(fl_ckpt_in_open(c, "a.state", &in, err, sizeof err));
  unsigned char buf[1000];
  size_t got;
  int rc;
  do rc = fl_ckpt_in_read(in, buf, sizeof buf, &got, err, sizeof err);
  while (rc == 0 && got > 0);
  assert_int_equal(rc, FL_EPARSE);
  fl_ckpt_in_close(in);
  fl_ckpt_close(c);
  /* Direct opens: damaged data, damaged manifest, no manifest. */
  assert_int_equal(fl_ckpt_open(&c, dir, err, sizeof err), FL_EPARSE);
  assert_null(c);
  assert_non_null(strstr(err, "a.state"));
  write_bytes(p, orig, n);
  char *mp = pathf("%s/_manifest", dir);
  size_t ml;
  unsigned char *m = (unsigned char *)read_text(mp, &ml);
  m[10] ^= 1;
  write_bytes(mp, m, ml);
  assert_int_equal(fl_ckpt_open(&c, dir, err, sizeof err), FL_EPARSE);
  assert_non_null(strstr(err, "_manifest"));
  unlink(mp);
  assert_int_equal(fl_ckpt_open(&c, dir, err, sizeof err), FL_ENOTFOUND);
  logbook_t lb = {0};
  assert_int_equal(fl_ckpt_open_latest(&c, root, log_cb, &lb, err, sizeof err), FL_ENOTFOUND);
  assert_int_equal(lb.n, 1);
  char *nothing = pathf("%s/nothing", t);
  assert_int_equal(fl_ckpt_open_latest(&c, nothing, NULL, NULL, err, sizeof err), FL_ENOTFOUND);
  free(nothing);
  free(m);
  free(mp);
  free(orig);
  free(bad);
  free(p);
  free(dir);
  rm_tree(t);
  free(root);
  free(t);
}

/* ---------------------------------------------------------------------------------- */
/* Misuse                                                                               */

static void bad_names_ids_and_call_orders_are_refused(void **state) {
  (void)state;
  char *t = make_tmpdir("fl-ckpt");
  fl_ckpt_writer_t *w, *w2;
  assert_int_equal(fl_ckpt_writer_begin(&w, t, -1, FL_CKPT_CHECKPOINT, err, sizeof err), FL_EINVAL);
  OK(fl_ckpt_writer_begin(&w, t, 1, FL_CKPT_CHECKPOINT, err, sizeof err));
  /* One writer per root. */
  assert_int_equal(fl_ckpt_writer_begin(&w2, t, 2, FL_CKPT_CHECKPOINT, err, sizeof err), FL_ESTATE);
  assert_null(w2);
  const char *bad[] = {"",     "../x", "a//b",   ".hidden", "_manifest", "x.tmp",
                       "a/b/", "/abs", "sp ace", "a/./b",   "a/../b",    "é"};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    int rc = fl_ckpt_writer_put(w, bad[i], "x", 1, err, sizeof err);
    if (rc != FL_EINVAL) print_error("name \"%s\" accepted\n", bad[i]);
    assert_int_equal(rc, FL_EINVAL);
  }
  assert_int_equal(fl_ckpt_writer_add_shared(w, "ok", "/etc/hostname", "a/b", err, sizeof err),
                   FL_EINVAL);
  OK(fl_ckpt_writer_put(w, "dup", "x", 1, err, sizeof err));
  assert_int_equal(fl_ckpt_writer_put(w, "dup", "y", 1, err, sizeof err), FL_EINVAL);
  /* Meta must be an object; the failed commit aborts. */
  assert_int_equal(fl_ckpt_writer_commit(w, "[1]", err, sizeof err), FL_EINVAL);
  char *chk1 = pathf("%s/chk-1", t);
  assert_false(exists(chk1));
  OK(fl_ckpt_writer_begin(&w, t, 1, FL_CKPT_CHECKPOINT, err, sizeof err));
  OK(fl_ckpt_writer_put(w, "f", "x", 1, err, sizeof err));
  OK(fl_ckpt_writer_commit(w, "{}", err, sizeof err));
  /* A complete id is never written again. */
  assert_int_equal(fl_ckpt_writer_begin(&w, t, 1, FL_CKPT_CHECKPOINT, err, sizeof err), FL_ESTATE);
  /* A failed (discarded) file blocks the commit. */
  OK(fl_ckpt_writer_begin(&w, t, 2, FL_CKPT_CHECKPOINT, err, sizeof err));
  fl_ckpt_out_t *o;
  OK(fl_ckpt_writer_open_file(w, "g", &o, err, sizeof err));
  fl_ckpt_out_discard(o);
  assert_int_equal(fl_ckpt_writer_commit(w, NULL, err, sizeof err), FL_ESTATE);
  char *chk2 = pathf("%s/chk-2", t);
  assert_false(exists(chk2));
  /* Commit with a file open: refused, and the deletion waits for the file. */
  OK(fl_ckpt_writer_begin(&w, t, 2, FL_CKPT_CHECKPOINT, err, sizeof err));
  OK(fl_ckpt_writer_open_file(w, "h", &o, err, sizeof err));
  OK(fl_ckpt_out_write(o, "abc", 3, err, sizeof err));
  assert_int_equal(fl_ckpt_writer_commit(w, NULL, err, sizeof err), FL_ESTATE);
  assert_true(exists(chk2));
  assert_int_equal(fl_ckpt_out_close(o, NULL, NULL, err, sizeof err), FL_ESTATE);
  assert_false(exists(chk2));
  int64_t max;
  OK(fl_ckpt_max_id(t, &max, err, sizeof err));
  assert_int_equal(max, 1);
  free(chk1);
  free(chk2);
  rm_tree(t);
  free(t);
}

/* ---------------------------------------------------------------------------------- */
/* Abort, leftovers, crashes                                                            */

static void abort_leaves_no_trace_but_keeps_reused_shared_files(void **state) {
  (void)state;
  char *t = make_tmpdir("fl-ckpt");
  char *root = pathf("%s/root", t), *a = pathf("%s/a", t), *b = pathf("%s/b", t);
  make_src(a, 3000, 1);
  make_src(b, 4000, 2);
  shr_t s1[] = {{"x", a, "ka"}};
  make_ckpt(root, 1, NULL, 0, s1, 1, NULL);
  fl_ckpt_writer_t *w;
  OK(fl_ckpt_writer_begin(&w, root, 2, FL_CKPT_CHECKPOINT, err, sizeof err));
  OK(fl_ckpt_writer_put(w, "sub/dir/f", "abc", 3, err, sizeof err));
  OK(fl_ckpt_writer_add_shared(w, "x", a, "ka", err, sizeof err));
  OK(fl_ckpt_writer_add_shared(w, "y", b, "kb", err, sizeof err));
  assert_true(existsf("%s/shared/kb", root));
  fl_ckpt_writer_abort(w);
  assert_false(existsf("%s/chk-2", root));
  assert_false(existsf("%s/shared/kb", root));
  assert_true(existsf("%s/shared/ka", root));
  assert_int_equal(countf("%s", root), 2);
  assert_int_equal(countf("%s/shared", root), 1);
  latest_is(root, 1);
  rm_tree(t);
  free(root);
  free(a);
  free(b);
  free(t);
}

static void leftover_manifest_tmp_and_partial_directory_are_ignored(void **state) {
  (void)state;
  char *t = make_tmpdir("fl-ckpt");
  char *root = pathf("%s/root", t);
  own_t o[] = {{"a.state", 1, 100}};
  make_ckpt(root, 1, o, 1, NULL, 0, NULL);
  /* chk-2 has files and even a perfectly valid _manifest.tmp, but no _manifest. */
  mkdir_at(root, "chk-2");
  size_t n;
  unsigned char *m = read_at(root, "chk-1/_manifest", &n);
  write_at(root, "chk-2/_manifest.tmp", m, n);
  unsigned char *d = read_at(root, "chk-1/a.state", &n);
  write_at(root, "chk-2/a.state", d, n);
  write_at(root, "chk-2/b.state.tmp", "half", 4);
  /* chk-1 holds a stale _manifest.tmp too, next to its real manifest. */
  write_at(root, "chk-1/_manifest.tmp", "junk", 4);
  logbook_t lb = {0};
  fl_ckpt_t *c;
  OK(fl_ckpt_open_latest(&c, root, log_cb, &lb, err, sizeof err));
  assert_int_equal(fl_ckpt_id(c), 1);
  assert_int_equal(lb.n, 1);
  assert_non_null(strstr(lb.lines[0], "chk-2"));
  assert_non_null(strstr(lb.lines[0], "_manifest is missing"));
  fl_ckpt_close(c);
  lb.n = 0;
  OK(fl_ckpt_retain(root, 3, log_cb, &lb, err, sizeof err));
  assert_int_equal(lb.n, 1);
  assert_non_null(strstr(lb.lines[0], "chk-2"));
  assert_false(existsf("%s/chk-2", root));
  assert_true(existsf("%s/chk-1/_manifest", root));
  /* An id left incomplete is written again. */
  make_ckpt(root, 2, o, 1, NULL, 0, NULL);
  latest_is(root, 2);
  free(m);
  free(d);
  rm_tree(t);
  free(root);
  free(t);
}

/* The child process writes checkpoint 2 and dies at the n-th time it reaches `point`. */
typedef struct kill_at {
  const char *point;
  int n;
} kill_at_t;

static void kill_hook(const char *point, void *arg) {
  kill_at_t *k = arg;
  if (strcmp(point, k->point) == 0 && --k->n == 0) _exit(0);
}

static void crash_at_each_step_leaves_old_or_new_checkpoint(void **state) {
  (void)state;
  static const struct {
    const char *point;
    int n;
    int64_t survivor;
  } cases[] = {
      {"file.written", 1, 1},   {"file.renamed", 1, 1}, {"file.written", 2, 1},
      {"shared.renamed", 1, 1}, {"manifest.tmp", 1, 1}, {"manifest.renamed", 1, 2},
  };
  char *t = make_tmpdir("fl-ckpt");
  char *root = pathf("%s/root", t), *s1 = pathf("%s/s1", t), *s2 = pathf("%s/s2", t), *p;
  make_src(s1, 5000, 11);
  make_src(s2, 6000, 12);
  own_t o[] = {{"a.state", 1, 300}};
  shr_t sh1[] = {{"db/1.sst", s1, "k1"}};
  make_ckpt(root, 1, o, 1, sh1, 1, NULL);
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
      kill_at_t k = {cases[i].point, cases[i].n};
      fl_ckpt_set_kill_hook(kill_hook, &k);
      char e[512];
      fl_ckpt_writer_t *w;
      unsigned char big[20000];
      fill(big, sizeof big, 5);
      if (fl_ckpt_writer_begin(&w, root, 2, FL_CKPT_CHECKPOINT, e, sizeof e) ||
          fl_ckpt_writer_put(w, "a.state", big, sizeof big, e, sizeof e) ||
          fl_ckpt_writer_put(w, "b.state", big, 100, e, sizeof e) ||
          fl_ckpt_writer_add_shared(w, "db/1.sst", s1, "k1", e, sizeof e) ||
          fl_ckpt_writer_add_shared(w, "db/2.sst", s2, "k2", e, sizeof e) ||
          fl_ckpt_writer_commit(w, NULL, e, sizeof e))
        _exit(2);
      _exit(3); /* the kill point was never reached */
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    /* No half-written file under a final name. */
    size_t n;
    unsigned char *d = read_at(root, "chk-2/a.state", &n);
    if (d) {
      assert_int_equal(n, 20000);
      free(d);
    }
    fl_ckpt_t *c;
    logbook_t lb = {0};
    OK(fl_ckpt_open_latest(&c, root, log_cb, &lb, err, sizeof err));
    if (fl_ckpt_id(c) != cases[i].survivor)
      print_error("crash at %s #%d: restored %lld\n", cases[i].point, cases[i].n,
                  (long long)fl_ckpt_id(c));
    assert_int_equal(fl_ckpt_id(c), cases[i].survivor);
    fl_ckpt_close(c);
    /* The next retain clears the debris; then the run is repeated from a clean state. */
    lb.n = 0;
    OK(fl_ckpt_retain(root, 1, log_cb, &lb, err, sizeof err));
    if (cases[i].survivor == 1) {
      assert_int_equal(lb.n, 1);
      assert_non_null(strstr(lb.lines[0], "chk-2"));
      assert_false(existsf("%s/chk-2", root));
      assert_false(existsf("%s/shared/k2", root));
      assert_true(existsf("%s/shared/k1", root));
    } else {
      rm_tree(p = pathf("%s/chk-2", root));
      free(p);
      OK(fl_ckpt_retain(root, 1, NULL, NULL, err, sizeof err));
    }
  }
  /* After a crash that left an unreferenced shared file (hard-linked from its source),
   * the retried checkpoint replaces it; renaming a link over another link of the same
   * inode leaves no temporary name behind. */
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    kill_at_t k = {"shared.renamed", 1};
    fl_ckpt_set_kill_hook(kill_hook, &k);
    char e[512];
    fl_ckpt_writer_t *w;
    if (fl_ckpt_writer_begin(&w, root, 2, FL_CKPT_CHECKPOINT, e, sizeof e) ||
        fl_ckpt_writer_add_shared(w, "db/2.sst", s2, "k2", e, sizeof e))
      _exit(2);
    _exit(3);
  }
  int status;
  assert_int_equal(waitpid(pid, &status, 0), pid);
  assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  assert_true(existsf("%s/shared/k2", root));
  shr_t sh2[] = {{"db/1.sst", s1, "k1"}, {"db/2.sst", s2, "k2"}};
  make_ckpt(root, 2, o, 1, sh2, 2, NULL);
  assert_int_equal(countf("%s/chk-2", root), 2); /* a.state, _manifest */
  latest_is(root, 2);
  rm_tree(t);
  free(root);
  free(s1);
  free(s2);
  free(t);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(crc32c_software_path_matches_known_vectors),
      cmocka_unit_test(crc32c_hardware_path_matches_known_vectors),
      cmocka_unit_test(crc32c_paths_agree_at_every_alignment_and_split),
      cmocka_unit_test(round_trip_keeps_files_meta_and_checksums),
      cmocka_unit_test(deferred_pieces_are_written_at_close_and_released_once),
      cmocka_unit_test(a_deferred_piece_that_cannot_be_written_fails_the_file),
      cmocka_unit_test(files_added_from_several_threads_at_once_all_arrive),
      cmocka_unit_test(second_checkpoint_reuses_a_shared_file_without_copying),
      cmocka_unit_test(savepoint_is_self_contained_and_can_be_moved),
      cmocka_unit_test(retention_keeps_newest_and_shared_files_while_referenced),
      cmocka_unit_test(every_mutation_of_the_newest_checkpoint_is_detected_with_fallback),
      cmocka_unit_test(damage_is_reported_with_its_error_code),
      cmocka_unit_test(bad_names_ids_and_call_orders_are_refused),
      cmocka_unit_test(abort_leaves_no_trace_but_keeps_reused_shared_files),
      cmocka_unit_test(leftover_manifest_tmp_and_partial_directory_are_ignored),
      cmocka_unit_test(crash_at_each_step_leaves_old_or_new_checkpoint),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
