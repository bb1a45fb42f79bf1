/*
 * The fixture of the tests of what sits on RocksDB stores (test_snapshot.c,
 * test_timers_rocksdb.c, test_kv_rocksdb*.c): a new temporary directory for the stores and the shared RocksDB
 * resources (fl_kv_rocksdb_shared_t with default options) they open with.
 */
#ifndef FL_ROCKSDB_DIR_H
#define FL_ROCKSDB_DIR_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "state/rocksdb.h"
#include "util/fs.h"

/* base/name, a new string (the test aborts when out of memory). */
static inline char *rocks_path_in(const char *base, const char *name) {
  size_t n = strlen(base) + strlen(name) + 2;
  char *p = malloc(n);
  if (!p) abort();
  snprintf(p, n, "%s/%s", base, name);
  return p;
}

typedef struct rocks_dir {
  char dir[256];
  fl_kv_rocksdb_shared_t *sh;
} rocks_dir_t;

/* Makes /tmp/<prefix>-XXXXXX and the shared resources: 0, or -1 with nothing left to
 * release (the reason printed). */
static inline int rocks_dir_open(rocks_dir_t *r, const char *prefix) {
  char err[512];
  r->sh = NULL;
  snprintf(r->dir, sizeof r->dir, "/tmp/%s-XXXXXX", prefix);
  if (!mkdtemp(r->dir)) {
    perror(r->dir);
    return -1;
  }
  if (fl_kv_rocksdb_shared_new(NULL, &r->sh, err, sizeof err) == 0) return 0;
  fprintf(stderr, "fl_kv_rocksdb_shared_new: %s\n", err);
  fl_rm_tree(r->dir);
  return -1;
}

/* Releases the shared resources (after every store that uses them) and removes the
 * directory with what it holds. */
static inline void rocks_dir_close(rocks_dir_t *r) {
  fl_kv_rocksdb_shared_destroy(r->sh);
  fl_rm_tree(r->dir);
}

/* A cmocka fixture of size bytes (zeroed) whose first member is a rocks_dir_t, opened
 * with prefix; NULL on failure. */
static inline void *rocks_fixture_new(size_t size, const char *prefix) {
  rocks_dir_t *r = calloc(1, size);
  if (r && rocks_dir_open(r, prefix) == 0) return r;
  free(r);
  return NULL;
}

/* Closes the fixture's rocks_dir_t and frees it. */
static inline void rocks_fixture_free(void *fixture) {
  rocks_dir_close(fixture);
  free(fixture);
}

#endif
