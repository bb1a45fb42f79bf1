/*
 * The RocksDB backend's native copies (rocksdb.c describes the design): a checkpoint
 * of the whole store (memtables flushed, SST files hard-linked), deleting the key
 * groups a subtask no longer owns with range tombstones, and filling a new store's
 * directory from such a copy (SST files linked, the small files copied).
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

int fl_rdb_checkpoint(void *self, const char *dir) {
  rdb_t *r = self;
  if (!r || !dir || !*dir) return FL_EINVAL;
  if (r->before_copy) {
    int rc = r->before_copy(r->before_copy_arg);
    if (rc) {
      snprintf(r->err, sizeof r->err,
               "rocksdb state: writing the timers before a checkpoint of '%s' failed", r->dir);
      return rc;
    }
  }
  char *e = NULL;
  rocksdb_checkpoint_t *cp = rocksdb_checkpoint_object_create(r->db, &e);
  if (e || !cp) {
    if (cp) rocksdb_checkpoint_object_destroy(cp);
    return fl_rdb_fail(r, e, "creating a checkpoint object", NULL);
  }
  /* 0: always flush the memtables first (the WAL is off, so they are not in it). */
  rocksdb_checkpoint_create(cp, dir, 0, &e);
  rocksdb_checkpoint_object_destroy(cp);
  if (e) {
    size_t n = strlen(dir);
    char what[128];
    snprintf(what, sizeof what, "checkpoint into '%.*s%s'", n > 96 ? 96 : (int)n, dir,
             n > 96 ? "..." : "");
    return fl_rdb_fail(r, e, what, NULL);
  }
  return FL_OK;
}

/* Deletes key groups [a, b) of table t (a < b <= RDB_KG_END) with one range tombstone:
 * from kg(a) (or the empty key) to kg(b) (or, for the last key group, just past the
 * table's last key, as no finite key is greater than every key of key group 0xffff). */
static int delete_kgs(rdb_t *r, rdb_table_t *t, uint32_t a, uint32_t b) {
  unsigned char lo[2] = {(unsigned char)(a >> 8), (unsigned char)a};
  unsigned char hi2[2] = {(unsigned char)(b >> 8), (unsigned char)b};
  const char *hi = (const char *)hi2;
  size_t hi_len = 2;
  int rc = FL_OK;
  if (b >= RDB_KG_END) {
    rocksdb_iterator_t *it = fl_rdb_table_iter(r, t, false);
    rocksdb_iter_seek_to_last(it);
    if (rocksdb_iter_valid(it)) {
      size_t kl;
      const char *k = rocksdb_iter_key(it, &kl);
      if (fl_buf_reserve(&r->kb, kl + 1)) {
        rc = FL_ENOMEM;
      } else {
        memcpy(r->kb.data, k, kl);
        r->kb.data[kl] = 0;
        hi_len = kl + 1;
        hi = (const char *)r->kb.data;
      }
    } else {
      hi_len = 0; /* empty table */
    }
    int irc = fl_rdb_iter_end(r, it, "finding the last key", t);
    if (rc == FL_OK) rc = irc;
    if (rc || hi_len == 0) return rc;
    /* The last key lies below kg(a): nothing to delete. */
    if (a > 0 && memcmp(hi, lo, hi_len < 2 ? hi_len : 2) < 0) return FL_OK;
  }
  char *e = NULL;
  rocksdb_delete_range_cf(r->db, r->wo, t->cf, (const char *)lo, a ? 2 : 0, hi, hi_len, &e);
  return e ? fl_rdb_fail(r, e, "deleting key groups", t) : FL_OK;
}

int fl_rdb_retain_key_groups(void *self, uint32_t kg_first, uint32_t kg_count) {
  rdb_t *r = self;
  if (!r) return FL_EINVAL;
  uint64_t end64 = (uint64_t)kg_first + kg_count;
  uint32_t first = kg_first < RDB_KG_END ? kg_first : RDB_KG_END;
  uint32_t end = end64 < RDB_KG_END ? (uint32_t)end64 : RDB_KG_END;
  for (size_t i = 0; i < r->n_tables; i++) {
    rdb_table_t *t = r->tables[i];
    int rc = FL_OK;
    if (first > 0) rc = delete_kgs(r, t, 0, first);
    if (rc == FL_OK && end < RDB_KG_END) rc = delete_kgs(r, t, end, RDB_KG_END);
    if (rc) return rc;
  }
  return FL_OK;
}
/* ---------------------------------------------------------------------------------- */
/* Directories                                                                          */

/* mkdir -p */
int fl_rdb_make_dirs(const char *dir, char *err, size_t es) {
  char why[600];
  int rc = fl_mkdir_p(dir, false, why, sizeof why);
  if (rc) fl_rdb_set_err(err, es, "rocksdb state: %s", why);
  return rc;
}

/* Deletes everything inside dir. */
int fl_rdb_empty_dir(const char *dir, char *err, size_t es) {
  int e = fl_empty_dir(dir);
  if (!e) return FL_OK;
  fl_rdb_set_err(err, es, "rocksdb state: cannot empty the directory '%s': %s", dir, strerror(-e));
  return FL_EIO;
}

static int copy_file(const char *src, const char *dst, char *err, size_t es) {
  int in = -1, out = -1, rc = FL_OK;
  char buf[1 << 16];
  in = open(src, O_RDONLY | O_CLOEXEC);
  if (in < 0) {
    fl_rdb_set_err(err, es, "rocksdb state: cannot open '%s': %s", src, strerror(errno));
    return FL_EIO;
  }
  out = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (out < 0) {
    fl_rdb_set_err(err, es, "rocksdb state: cannot create '%s': %s", dst, strerror(errno));
    rc = FL_EIO;
    goto done;
  }
  for (;;) {
    ssize_t n = read(in, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      fl_rdb_set_err(err, es, "rocksdb state: cannot read '%s': %s", src, strerror(errno));
      rc = FL_EIO;
      goto done;
    }
    if (n == 0) break;
    for (ssize_t w = 0; w < n;) {
      ssize_t m = write(out, buf + w, (size_t)(n - w));
      if (m < 0 && errno == EINTR) continue;
      if (m < 0) {
        fl_rdb_set_err(err, es, "rocksdb state: cannot write '%s': %s", dst, strerror(errno));
        rc = FL_EIO;
        goto done;
      }
      w += m;
    }
  }
done:
  if (in >= 0) close(in);
  if (out >= 0 && close(out) != 0 && rc == FL_OK) {
    fl_rdb_set_err(err, es, "rocksdb state: cannot write '%s': %s", dst, strerror(errno));
    rc = FL_EIO;
  }
  return rc;
}

static bool ends_with(const char *s, const char *suffix) {
  size_t n = strlen(s), m = strlen(suffix);
  return n >= m && memcmp(s + n - m, suffix, m) == 0;
}

/* Fills the empty dir with the files of the checkpoint directory from: SST files
 * (immutable) hard-linked when both lie on one file system, everything else (small:
 * MANIFEST, CURRENT, OPTIONS, empty logs) copied, since the new DB writes to those.
 * from is only read. */
int fl_rdb_restore_files(const char *from, const char *dir, char *err, size_t es) {
  DIR *d = opendir(from);
  int rc = FL_OK;
  char *src = NULL, *dst = NULL;
  if (!d) {
    fl_rdb_set_err(err, es, "rocksdb state: cannot open the restore directory '%s': %s", from,
                   strerror(errno));
    return FL_EIO;
  }
  size_t fl = strlen(from), dl = strlen(dir);
  size_t found = 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
    size_t nl = strlen(e->d_name);
    free(src);
    free(dst);
    src = malloc(fl + nl + 2);
    dst = malloc(dl + nl + 2);
    if (!src || !dst) {
      rc = FL_ENOMEM;
      break;
    }
    snprintf(src, fl + nl + 2, "%s/%s", from, e->d_name);
    snprintf(dst, dl + nl + 2, "%s/%s", dir, e->d_name);
    struct stat st;
    if (stat(src, &st) != 0) {
      fl_rdb_set_err(err, es, "rocksdb state: cannot read '%s': %s", src, strerror(errno));
      rc = FL_EIO;
      break;
    }
    if (!S_ISREG(st.st_mode)) {
      fl_rdb_set_err(err, es,
                     "rocksdb state: '%s' is not a checkpoint directory: '%s' is not a file", from,
                     src);
      rc = FL_EINVAL;
      break;
    }
    found++;
    if (ends_with(e->d_name, ".sst") && link(src, dst) == 0) continue;
    rc = copy_file(src, dst, err, es);
    if (rc) break;
  }
  closedir(d);
  free(src);
  free(dst);
  if (rc == FL_OK && found == 0) {
    fl_rdb_set_err(err, es, "rocksdb state: the restore directory '%s' is empty", from);
    rc = FL_EINVAL;
  }
  return rc;
}

/* restore_from must be neither dir nor inside it: dir is emptied first. */
int fl_rdb_check_restore_path(const char *dir, const char *from, char *err, size_t es) {
  char *rd = realpath(dir, NULL), *rf = realpath(from, NULL);
  int rc = FL_OK;
  if (!rf) {
    fl_rdb_set_err(err, es, "rocksdb state: cannot open the restore directory '%s': %s", from,
                   strerror(errno));
    rc = FL_EIO;
  } else if (rd) {
    size_t n = strlen(rd);
    if (strcmp(rd, rf) == 0 || (strncmp(rd, rf, n) == 0 && rf[n] == '/')) {
      fl_rdb_set_err(err, es,
                     "rocksdb state: the restore directory '%s' lies in the store directory '%s', "
                     "which is emptied first",
                     from, dir);
      rc = FL_EINVAL;
    }
  }
  free(rd);
  free(rf);
  return rc;
}
