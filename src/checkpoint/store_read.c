/*
 * Checkpoint storage, part 3 of 4: opening a checkpoint or savepoint (verifying its
 * manifest and every byte of its files), finding the newest usable checkpoint under a
 * root with fallback past damaged ones, and reading files whole or as verified streams.
 */
#define _GNU_SOURCE /* GNU strerror_r (thread-safe, returns the message) */

#include "checkpoint/store_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/crc32c.h"
#include "util/fs.h"

/* ---------------------------------------------------------------------------------- */
/* Reader                                                                               */

static void ckpt_free(fl_ckpt_t *c) {
  if (!c) return;
  if (c->paths) {
    for (size_t i = 0; i < c->n; i++) free(c->paths[i]);
  }
  free(c->paths);
  free(c->files);
  fl_cs_manifest_free(&c->m);
  free(c->dir);
  free(c->root_real);
  free(c);
}

void fl_ckpt_close(fl_ckpt_t *c) {
  if (!c) return;
  if (c->registered) {
    pthread_mutex_lock(&fl_cs_reg_mu);
    fl_cs_reg_reader_remove(c);
    pthread_mutex_unlock(&fl_cs_reg_mu);
  }
  ckpt_free(c);
}

/* Opens and verifies dir. expect_id >= 0: the manifest must be a checkpoint with that id
 * (open_latest). The full message ("checkpoint <dir> is unusable: <reason>") goes to
 * err. */
static int open_dir(fl_ckpt_t **out, const char *path, int64_t expect_id, char *err,
                    size_t err_size) {
  int rc = FL_OK;
  char why[1024] = "";
  fl_ckpt_t *c = calloc(1, sizeof *c);
  char *parent = NULL, *shared = NULL;
  unsigned char *buf = NULL;
  *out = NULL;
  if (!c || !(c->dir = fl_cs_normalize_path(path))) {
    rc = fl_cs_fail(why, sizeof why, FL_ENOMEM, "out of memory");
    goto done;
  }
  if ((rc = fl_cs_manifest_read(c->dir, &c->m, why, sizeof why))) goto done;
  if (expect_id >= 0 && (c->m.kind != FL_CKPT_CHECKPOINT || c->m.id != expect_id)) {
    rc = fl_cs_fail(why, sizeof why, FL_EPARSE,
                    "_manifest: it describes %s %" PRId64 ", not checkpoint %" PRId64,
                    fl_cs_kind_str(c->m.kind), c->m.id, expect_id);
    goto done;
  }
  c->kind = c->m.kind;
  c->id = c->m.id;
  c->created_ms = c->m.created_ms;
  c->meta = c->m.meta;
  c->n = c->m.n;
  c->files = calloc(c->n ? c->n : 1, sizeof *c->files);
  c->paths = calloc(c->n ? c->n : 1, sizeof *c->paths);
  parent = fl_path_parent(c->dir);
  shared = parent ? fl_cs_join(parent, SHARED_DIR) : NULL;
  /* A buffer no larger than the largest file: small checkpoints are opened often (the
   * newest first, then older ones on fallback). */
  size_t cap = 1;
  for (size_t i = 0; i < c->n; i++) {
    if (c->m.files[i].size >= IO_CHUNK) {
      cap = IO_CHUNK;
      break;
    }
    if (c->m.files[i].size + 1 > cap) cap = (size_t)c->m.files[i].size + 1;
  }
  buf = malloc(cap);
  if (!c->files || !c->paths || !shared || !buf) {
    rc = fl_cs_fail(why, sizeof why, FL_ENOMEM, "out of memory");
    goto done;
  }
  for (size_t i = 0; i < c->n; i++) {
    const mfile_t *f = &c->m.files[i];
    c->paths[i] = f->shared ? fl_cs_join(shared, f->key) : fl_cs_join(c->dir, f->name);
    if (!c->paths[i]) {
      rc = fl_cs_fail(why, sizeof why, FL_ENOMEM, "out of memory");
      goto done;
    }
    c->files[i] = (fl_ckpt_file_t){f->name, c->paths[i], f->size, f->crc, f->shared, f->key};
  }
  /* A checkpoint in a chk-<id> directory is registered before its files are read, so
   * that retain, from now on, keeps it and what it references. */
  int64_t dir_id;
  if (c->kind == FL_CKPT_CHECKPOINT && fl_cs_parse_chk_name(fl_cs_base_of(c->dir), &dir_id)) {
    c->root_real = realpath(parent, NULL);
    if (c->root_real) {
      pthread_mutex_lock(&fl_cs_reg_mu);
      c->reg_next = fl_cs_readers;
      fl_cs_readers = c;
      c->registered = true;
      pthread_mutex_unlock(&fl_cs_reg_mu);
    }
  }
  for (size_t i = 0; i < c->n; i++) {
    const fl_ckpt_file_t *f = &c->files[i];
    rc = fl_cs_verify_file(f->name, f->path, f->shared, f->size, f->crc32c, buf, cap, why,
                           sizeof why);
    if (rc) goto done;
  }
done:
  free(parent);
  free(shared);
  free(buf);
  if (rc) {
    fl_cs_fail(err, err_size, rc, "%s %s is unusable: %s",
               c && c->m.meta ? fl_cs_kind_str(c->m.kind) : "checkpoint",
               c && c->dir ? c->dir : path, why);
    fl_ckpt_close(c);
    return rc;
  }
  *out = c;
  return FL_OK;
}

int fl_ckpt_open(fl_ckpt_t **out, const char *path, char *err, size_t err_size) {
  if (out) *out = NULL;
  if (!out || !path || !*path)
    return fl_cs_fail(err, err_size, FL_EINVAL, "open: out and path are required");
  return open_dir(out, path, -1, err, err_size);
}

int fl_ckpt_open_latest(fl_ckpt_t **out, const char *root, fl_ckpt_log_fn log, void *log_arg,
                        char *err, size_t err_size) {
  int rc = FL_OK;
  int64_t *ids = NULL;
  size_t n = 0, tried = 0;
  char *norm = NULL, *real = NULL;
  char msg[2048];
  if (out) *out = NULL;
  if (!out || !root || !*root)
    return fl_cs_fail(err, err_size, FL_EINVAL, "open_latest: out and root are required");
  if (!(norm = fl_cs_normalize_path(root)))
    return fl_cs_fail(err, err_size, FL_ENOMEM, "out of memory");
  rc = fl_cs_list_chk_ids(norm, &ids, &n, err, err_size);
  if (rc == FL_ENOTFOUND) {
    rc = fl_cs_fail(err, err_size, FL_ENOTFOUND,
                    "no checkpoint under %s: the directory does not "
                    "exist",
                    norm);
    goto done;
  }
  if (rc) goto done;
  real = realpath(norm, NULL);
  for (size_t i = n; i-- > 0;) {
    int64_t id = ids[i];
    bool writing = false;
    if (real) {
      pthread_mutex_lock(&fl_cs_reg_mu);
      fl_ckpt_writer_t *w = fl_cs_reg_writer_on(real);
      writing = w && w->id == id;
      pthread_mutex_unlock(&fl_cs_reg_mu);
    }
    if (writing) continue;
    char name[32];
    snprintf(name, sizeof name, "chk-%" PRId64, id);
    char *dir = fl_cs_join(norm, name);
    if (!dir) {
      rc = fl_cs_fail(err, err_size, FL_ENOMEM, "out of memory");
      goto done;
    }
    tried++;
    rc = open_dir(out, dir, id, msg, sizeof msg);
    free(dir);
    if (rc == FL_OK) goto done;
    if (rc == FL_ENOMEM) {
      fl_cs_fail(err, err_size, rc, "%s", msg);
      goto done;
    }
    size_t ml = strlen(msg);
    snprintf(msg + ml, sizeof msg - ml, "; %s",
             i > 0 ? "falling back to an older one" : "no older checkpoint is left");
    fl_cs_log_line(log, log_arg, msg);
  }
  rc = fl_cs_fail(err, err_size, FL_ENOTFOUND, "no usable checkpoint under %s (%zu tried)", norm,
                  tried);
done:
  free(ids);
  free(norm);
  free(real);
  return rc;
}

int fl_ckpt_open_path(fl_ckpt_t **out, const char *path, fl_ckpt_log_fn log, void *log_arg,
                      char *err, size_t err_size) {
  if (out) *out = NULL;
  if (!out || !path || !*path)
    return fl_cs_fail(err, err_size, FL_EINVAL, "open: out and path are required");
  char *mp = fl_cs_join(path, MANIFEST);
  if (!mp) return fl_cs_fail(err, err_size, FL_ENOMEM, "out of memory");
  struct stat st;
  bool is_ckpt = lstat(mp, &st) == 0;
  free(mp);
  return is_ckpt ? fl_ckpt_open(out, path, err, err_size)
                 : fl_ckpt_open_latest(out, path, log, log_arg, err, err_size);
}

int fl_ckpt_manifest_id(const char *dir, int64_t *id, char *err, size_t err_size) {
  manifest_t m = {0};
  int rc = fl_cs_manifest_read(dir, &m, err, err_size);
  if (rc == FL_OK) *id = m.id;
  fl_cs_manifest_free(&m);
  return rc;
}

int64_t fl_ckpt_id(const fl_ckpt_t *c) { return c->id; }
fl_ckpt_kind_t fl_ckpt_kind(const fl_ckpt_t *c) { return c->kind; }
int64_t fl_ckpt_created_ms(const fl_ckpt_t *c) { return c->created_ms; }
const char *fl_ckpt_dir(const fl_ckpt_t *c) { return c->dir; }
const char *fl_ckpt_meta(const fl_ckpt_t *c) { return c->meta; }
size_t fl_ckpt_file_count(const fl_ckpt_t *c) { return c->n; }

const fl_ckpt_file_t *fl_ckpt_file_at(const fl_ckpt_t *c, size_t i) {
  return i < c->n ? &c->files[i] : NULL;
}

const fl_ckpt_file_t *fl_ckpt_file_find(const fl_ckpt_t *c, const char *name) {
  size_t lo = 0, hi = c->n;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    int r = strcmp(c->files[mid].name, name);
    if (r == 0) return &c->files[mid];
    if (r < 0)
      lo = mid + 1;
    else
      hi = mid;
  }
  return NULL;
}

int fl_ckpt_read_file(const fl_ckpt_t *c, const char *name, void **data, size_t *len, char *err,
                      size_t err_size) {
  int rc = FL_OK, fd = -1;
  char *buf = NULL;
  char eb[128];
  if (!c || !name || !data || !len)
    return fl_cs_fail(err, err_size, FL_EINVAL, "read_file: bad arguments");
  const fl_ckpt_file_t *f = fl_ckpt_file_find(c, name);
  if (!f) return fl_cs_fail(err, err_size, FL_ENOTFOUND, "%s has no file %s", c->dir, name);
  if (f->size > (uint64_t)SIZE_MAX - 2)
    return fl_cs_fail(err, err_size, FL_ENOMEM, "%s: %" PRIu64 " bytes do not fit in memory",
                      f->path, f->size);
  fd = open(f->path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    int e = errno;
    return fl_cs_fail(err, err_size, e == ENOENT ? FL_EPARSE : FL_EIO, "%s: file %s: open %s: %s",
                      c->dir, name, f->path, fl_cs_etext(e, eb, sizeof eb));
  }
  size_t n = (size_t)f->size, got = 0;
  /* One byte more than the manifest says detects a file that grew. */
  rc = fl_cs_read_fd(fd, f->path, n, n, &buf, &got, err, err_size);
  if (rc) goto done;
  if (got != n) {
    rc = fl_cs_fail(err, err_size, FL_EPARSE, "%s: file %s: size %s %" PRIu64 " bytes", c->dir,
                    name, got > n ? "exceeds" : "is below", f->size);
    goto done;
  }
  uint32_t crc = fl_crc32c(buf, n);
  if (crc != f->crc32c) {
    rc = fl_cs_fail(err, err_size, FL_EPARSE,
                    "%s: file %s: CRC32C mismatch (stored 0x%08" PRIx32 ", computed 0x%08" PRIx32
                    ")",
                    c->dir, name, f->crc32c, crc);
    goto done;
  }
  *data = buf;
  *len = n;
  buf = NULL;
done:
  close(fd);
  free(buf);
  return rc;
}

int fl_ckpt_in_open(const fl_ckpt_t *c, const char *name, fl_ckpt_in_t **out, char *err,
                    size_t err_size) {
  char eb[128];
  if (out) *out = NULL;
  if (!c || !name || !out) return fl_cs_fail(err, err_size, FL_EINVAL, "in_open: bad arguments");
  const fl_ckpt_file_t *f = fl_ckpt_file_find(c, name);
  if (!f) return fl_cs_fail(err, err_size, FL_ENOTFOUND, "%s has no file %s", c->dir, name);
  fl_ckpt_in_t *in = calloc(1, sizeof *in);
  if (!in || !(in->path = strdup(f->path)) || !(in->name = strdup(name))) {
    if (in) {
      free(in->path);
      free(in);
    }
    return fl_cs_fail(err, err_size, FL_ENOMEM, "out of memory");
  }
  in->size = f->size;
  in->want = f->crc32c;
  in->fd = open(f->path, O_RDONLY | O_CLOEXEC);
  if (in->fd < 0) {
    int e = errno;
    fl_ckpt_in_close(in);
    return fl_cs_fail(err, err_size, e == ENOENT ? FL_EPARSE : FL_EIO, "%s: file %s: open %s: %s",
                      c->dir, name, f->path, fl_cs_etext(e, eb, sizeof eb));
  }
  *out = in;
  return FL_OK;
}

int fl_ckpt_in_read(fl_ckpt_in_t *in, void *buf, size_t cap, size_t *got, char *err,
                    size_t err_size) {
  if (!in || !got || (!buf && cap))
    return fl_cs_fail(err, err_size, FL_EINVAL, "in_read: bad arguments");
  *got = 0;
  if (cap == 0) return FL_OK;
  ssize_t r = fl_read_some(in->fd, buf, cap);
  if (r < 0) return fl_cs_fail_sys(err, err_size, (int)-r, "read", in->path);
  if (r == 0) {
    if (in->got != in->size)
      return fl_cs_fail(err, err_size, FL_EPARSE,
                        "file %s (%s): %" PRIu64 " bytes, the manifest says %" PRIu64, in->name,
                        in->path, in->got, in->size);
    if (in->crc != in->want)
      return fl_cs_fail(err, err_size, FL_EPARSE,
                        "file %s (%s): CRC32C mismatch (stored 0x%08" PRIx32
                        ", computed 0x%08" PRIx32 ")",
                        in->name, in->path, in->want, in->crc);
    return FL_OK;
  }
  if (in->got + (uint64_t)r > in->size)
    return fl_cs_fail(err, err_size, FL_EPARSE,
                      "file %s (%s): longer than the %" PRIu64 " bytes the manifest says", in->name,
                      in->path, in->size);
  in->got += (uint64_t)r;
  in->crc = fl_crc32c_extend(in->crc, buf, (size_t)r);
  *got = (size_t)r;
  return FL_OK;
}

void fl_ckpt_in_close(fl_ckpt_in_t *in) {
  if (!in) return;
  if (in->fd >= 0) close(in->fd);
  free(in->path);
  free(in->name);
  free(in);
}
