/*
 * Checkpoint storage, part 2 of 4: the process-wide registry of writers and open
 * checkpoints, and the writer (begin, files, shared files, commit, abort). The
 * registry is what lets retention (store_retain.c) run beside a writer and readers
 * without deleting what they use; the writer is the only code that creates files under
 * a root, in the crash-safe order store_manifest.c's comment gives.
 */
#define _GNU_SOURCE /* GNU strerror_r (thread-safe, returns the message) */

#include "checkpoint/store_internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/crc32c.h"
#include "util/fs.h"
#include "util/vec.h"

/* Guards the lists below, every writer's `keys`, and retain's whole scan-and-delete, so
 * that a shared file is never deleted between a writer deciding to reuse it and the
 * writer's manifest referencing it. */
pthread_mutex_t fl_cs_reg_mu = PTHREAD_MUTEX_INITIALIZER;
fl_ckpt_writer_t *fl_cs_writers;
fl_ckpt_t *fl_cs_readers;

fl_ckpt_writer_t *fl_cs_reg_writer_on(const char *root_real) {
  for (fl_ckpt_writer_t *w = fl_cs_writers; w; w = w->reg_next) {
    if (strcmp(w->root_real, root_real) == 0) return w;
  }
  return NULL;
}

void fl_cs_reg_writer_remove(fl_ckpt_writer_t *w) {
  for (fl_ckpt_writer_t **p = &fl_cs_writers; *p; p = &(*p)->reg_next) {
    if (*p == w) {
      *p = w->reg_next;
      break;
    }
  }
  w->registered = false;
}

void fl_cs_reg_reader_remove(fl_ckpt_t *c) {
  for (fl_ckpt_t **p = &fl_cs_readers; *p; p = &(*p)->reg_next) {
    if (*p == c) {
      *p = c->reg_next;
      break;
    }
  }
  c->registered = false;
}

/* Adds the shared keys of every complete, valid checkpoint manifest under root to t
 * (with size and crc; the first manifest seen wins for a key). Manifests that cannot be
 * read or are corrupt are skipped. Only FL_ENOMEM is an error. */
int fl_cs_collect_manifest_keys(const char *root, keytab_t *t) {
  int64_t *ids = NULL;
  size_t n = 0;
  int rc = fl_cs_list_chk_ids(root, &ids, &n, NULL, 0);
  if (rc) return rc == FL_ENOMEM ? rc : FL_OK;
  for (size_t i = n; i-- > 0 && rc == FL_OK;) {
    char name[32];
    snprintf(name, sizeof name, "chk-%" PRId64, ids[i]);
    char *dir = fl_cs_join(root, name);
    manifest_t m;
    if (!dir) {
      rc = FL_ENOMEM;
      break;
    }
    int r = fl_cs_manifest_read(dir, &m, NULL, 0);
    free(dir);
    if (r == FL_ENOMEM) rc = r;
    if (r != FL_OK) continue;
    for (size_t j = 0; j < m.n && rc == FL_OK; j++) {
      if (!m.files[j].shared || fl_cs_keytab_find(t, m.files[j].key)) continue;
      kent_t *e;
      rc = fl_cs_keytab_add(t, m.files[j].key, &e);
      if (rc == FL_OK) {
        e->size = m.files[j].size;
        e->crc = m.files[j].crc;
        e->sized = e->done = true;
      }
    }
    fl_cs_manifest_free(&m);
  }
  free(ids);
  return rc;
}

/* ---------------------------------------------------------------------------------- */
/* Writer                                                                               */

static void writer_free(fl_ckpt_writer_t *w) {
  for (size_t i = 0; i < w->n; i++) {
    free(w->e[i].f.name);
    free(w->e[i].f.key);
  }
  free(w->e);
  fl_cs_strmap_free(&w->names);
  fl_cs_keytab_free(&w->old_keys);
  fl_cs_keytab_free(&w->keys);
  free(w->dir);
  free(w->parent);
  free(w->shared_dir);
  free(w->root_real);
  pthread_mutex_destroy(&w->mu);
  free(w);
}

/* Deletes what an aborted writer wrote: its directory, and the shared files it brought
 * in that no complete checkpoint references. Best effort. */
static void writer_cleanup(fl_ckpt_writer_t *w) {
  if (w->kind == FL_CKPT_SAVEPOINT) {
    if (w->created_dir)
      fl_rm_tree(w->dir);
    else
      fl_empty_dir(w->dir);
    return;
  }
  /* The manifest first: what a crash leaves is then an incomplete checkpoint. */
  char *mp = fl_cs_join(w->dir, MANIFEST);
  if (mp) {
    unlink(mp);
    free(mp);
  }
  fl_rm_tree(w->dir);
  pthread_mutex_lock(&fl_cs_reg_mu);
  bool any = false;
  for (size_t i = 0; i < w->keys.n; i++) any |= w->keys.v[i].created;
  keytab_t refs = {0};
  if (any && fl_cs_collect_manifest_keys(w->parent, &refs) == FL_OK) {
    for (size_t i = 0; i < w->keys.n; i++) {
      if (!w->keys.v[i].created || fl_cs_keytab_find(&refs, w->keys.v[i].key)) continue;
      char *p = fl_cs_join(w->shared_dir, w->keys.v[i].key);
      if (p) unlink(p);
      free(p);
    }
  }
  fl_cs_keytab_free(&refs);
  if (w->registered) fl_cs_reg_writer_remove(w);
  pthread_mutex_unlock(&fl_cs_reg_mu);
}

/* Drops one reference; the last one cleans up an aborted writer and frees it. */
static void writer_release(fl_ckpt_writer_t *w) {
  pthread_mutex_lock(&w->mu);
  bool last = --w->refs == 0;
  int state = w->state;
  pthread_mutex_unlock(&w->mu);
  if (!last) return;
  if (state != W_DONE) writer_cleanup(w);
  if (w->registered) {
    pthread_mutex_lock(&fl_cs_reg_mu);
    fl_cs_reg_writer_remove(w);
    pthread_mutex_unlock(&fl_cs_reg_mu);
  }
  writer_free(w);
}

int fl_ckpt_writer_begin(fl_ckpt_writer_t **out, const char *path, int64_t id, fl_ckpt_kind_t kind,
                         char *err, size_t err_size) {
  int rc = FL_OK;
  fl_ckpt_writer_t *w = NULL;
  char *norm = NULL, eb[128];
  bool made_dir = false;
  if (out) *out = NULL;
  if (!out || !path || !*path)
    return fl_cs_fail(err, err_size, FL_EINVAL, "checkpoint writer: out and path are required");
  if (id < 0)
    return fl_cs_fail(err, err_size, FL_EINVAL, "checkpoint id %" PRId64 " is negative", id);
  if (kind != FL_CKPT_CHECKPOINT && kind != FL_CKPT_SAVEPOINT)
    return fl_cs_fail(err, err_size, FL_EINVAL, "unknown checkpoint kind %d", (int)kind);
  w = calloc(1, sizeof *w);
  norm = fl_cs_normalize_path(path);
  if (!w || !norm) {
    free(w);
    free(norm);
    return fl_cs_fail(err, err_size, FL_ENOMEM, "out of memory");
  }
  pthread_mutex_init(&w->mu, NULL);
  w->kind = kind;
  w->id = id;
  w->refs = 1;
  w->state = W_OPEN;

  if (kind == FL_CKPT_SAVEPOINT) {
    w->dir = norm;
    norm = NULL;
    if (!(w->parent = fl_path_parent(w->dir))) {
      rc = fl_cs_fail(err, err_size, FL_ENOMEM, "out of memory");
      goto done;
    }
    struct stat st;
    if (stat(w->dir, &st) == 0) {
      DIR *d = S_ISDIR(st.st_mode) ? opendir(w->dir) : NULL;
      if (!d) {
        rc = fl_cs_fail(err, err_size, FL_EINVAL,
                        "savepoint directory %s exists and is not a usable "
                        "directory",
                        w->dir);
        goto done;
      }
      struct dirent *de;
      bool empty = true;
      while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0) empty = false;
      }
      closedir(d);
      if (!empty) {
        rc = fl_cs_fail(err, err_size, FL_EINVAL, "savepoint directory %s is not empty", w->dir);
        goto done;
      }
    } else if (errno != ENOENT) {
      rc = fl_cs_fail_sys(err, err_size, errno, "stat", w->dir);
      goto done;
    } else {
      if ((rc = fl_mkdir_p(w->dir, true, err, err_size))) goto done;
      w->created_dir = true;
    }
    goto done;
  }

  /* Checkpoint under root R = norm. */
  w->parent = norm;
  norm = NULL;
  char chk[32];
  snprintf(chk, sizeof chk, "chk-%" PRId64, id);
  w->dir = fl_cs_join(w->parent, chk);
  w->shared_dir = fl_cs_join(w->parent, SHARED_DIR);
  if (!w->dir || !w->shared_dir) {
    rc = fl_cs_fail(err, err_size, FL_ENOMEM, "out of memory");
    goto done;
  }
  if ((rc = fl_mkdir_p(w->shared_dir, true, err, err_size))) goto done;
  if (!(w->root_real = realpath(w->parent, NULL))) {
    rc = fl_cs_fail_sys(err, err_size, errno, "resolve", w->parent);
    goto done;
  }
  /* Registered before the directory exists, so that retain never takes it for an
   * abandoned incomplete checkpoint. */
  pthread_mutex_lock(&fl_cs_reg_mu);
  fl_ckpt_writer_t *other = fl_cs_reg_writer_on(w->root_real);
  int64_t other_id = other ? other->id : -1;
  if (!other) {
    w->reg_next = fl_cs_writers;
    fl_cs_writers = w;
    w->registered = true;
  }
  pthread_mutex_unlock(&fl_cs_reg_mu);
  if (other) {
    rc = fl_cs_fail(err, err_size, FL_ESTATE,
                    "checkpoint %" PRId64 " of %s: checkpoint %" PRId64
                    " of that root is still being written",
                    id, w->parent, other_id);
    goto done;
  }
  char *mp = fl_cs_join(w->dir, MANIFEST);
  if (!mp) {
    rc = fl_cs_fail(err, err_size, FL_ENOMEM, "out of memory");
    goto done;
  }
  struct stat st;
  int sr = lstat(mp, &st), se = errno;
  free(mp);
  if (sr == 0) {
    rc = fl_cs_fail(err, err_size, FL_ESTATE,
                    "checkpoint %s already exists and is complete; use a "
                    "new id (fl_ckpt_max_id() + 1)",
                    w->dir);
    goto done;
  }
  if (se != ENOENT && se != ENOTDIR) {
    rc = fl_cs_fail_sys(err, err_size, se, "stat manifest of", w->dir);
    goto done;
  }
  int r = fl_rm_tree(w->dir); /* an incomplete leftover of the same id */
  if (r) {
    rc = fl_cs_fail(err, err_size, FL_EIO, "remove incomplete %s: %s", w->dir,
                    fl_cs_etext(-r, eb, sizeof eb));
    goto done;
  }
  if (mkdir(w->dir, 0755) != 0) {
    rc = fl_cs_fail_sys(err, err_size, errno, "create directory", w->dir);
    goto done;
  }
  made_dir = true;
  if (fl_cs_collect_manifest_keys(w->parent, &w->old_keys) != FL_OK) {
    rc = fl_cs_fail(err, err_size, FL_ENOMEM, "out of memory reading the manifests of %s",
                    w->parent);
    goto done;
  }
done:
  free(norm);
  if (rc) {
    if (made_dir) fl_rm_tree(w->dir);
    if (w->created_dir) fl_rm_tree(w->dir);
    if (w->registered) {
      pthread_mutex_lock(&fl_cs_reg_mu);
      fl_cs_reg_writer_remove(w);
      pthread_mutex_unlock(&fl_cs_reg_mu);
    }
    writer_free(w);
    return rc;
  }
  *out = w;
  return FL_OK;
}

const char *fl_ckpt_writer_dir(const fl_ckpt_writer_t *w) { return w ? w->dir : NULL; }

/* Reserves name in w (an entry in state E_PENDING) and takes a reference. */
static int writer_reserve(fl_ckpt_writer_t *w, const char *name, size_t *idx, char *err,
                          size_t err_size) {
  int rc = FL_OK;
  char *copy = strdup(name);
  if (!copy) return fl_cs_fail(err, err_size, FL_ENOMEM, "out of memory");
  pthread_mutex_lock(&w->mu);
  if (w->state != W_OPEN) {
    rc = fl_cs_fail(err, err_size, FL_ESTATE,
                    "%s: the checkpoint is no longer open (committed or "
                    "aborted)",
                    w->dir);
    goto done;
  }
  if (fl_cs_strmap_get(&w->names, name, NULL)) {
    rc = fl_cs_fail(err, err_size, FL_EINVAL, "%s: file %s was already added", w->dir, name);
    goto done;
  }
  if (FL_VEC_RESERVE(w->e, w->cap, w->n + 1)) {
    rc = fl_cs_fail(err, err_size, FL_ENOMEM, "out of memory");
    goto done;
  }
  if (fl_cs_strmap_put(&w->names, copy, w->n) != FL_OK) {
    rc = fl_cs_fail(err, err_size, FL_ENOMEM, "out of memory");
    goto done;
  }
  memset(&w->e[w->n], 0, sizeof w->e[w->n]);
  w->e[w->n].f.name = copy;
  w->e[w->n].st = E_PENDING;
  *idx = w->n++;
  copy = NULL;
  w->refs++;
done:
  pthread_mutex_unlock(&w->mu);
  free(copy);
  return rc;
}

/* Settles a reserved entry (done with size/crc/key, or failed) and drops the reference. */
static void writer_settle(fl_ckpt_writer_t *w, size_t idx, bool ok, uint64_t size, uint32_t crc,
                          char *key) {
  pthread_mutex_lock(&w->mu);
  wentry_t *e = &w->e[idx];
  if (ok) {
    e->st = E_DONE;
    e->f.size = size;
    e->f.crc = crc;
    e->f.shared = key != NULL;
    e->f.key = key;
    key = NULL;
  } else {
    e->st = E_FAILED;
    w->any_failed = true;
  }
  pthread_mutex_unlock(&w->mu);
  free(key);
  writer_release(w);
}

int fl_ckpt_writer_open_file(fl_ckpt_writer_t *w, const char *name, fl_ckpt_out_t **out, char *err,
                             size_t err_size) {
  int rc;
  size_t idx;
  fl_ckpt_out_t *o = NULL;
  if (out) *out = NULL;
  if (!w || !out)
    return fl_cs_fail(err, err_size, FL_EINVAL, "open_file: writer and out are required");
  if ((rc = fl_cs_check_name(name, true, "file name", err, err_size))) return rc;
  if ((rc = writer_reserve(w, name, &idx, err, err_size))) return rc;
  o = calloc(1, sizeof *o);
  if (o) {
    o->fd = -1;
    o->w = w;
    o->idx = idx;
    o->final = fl_cs_join(w->dir, name);
    o->tmp = o->final ? fl_cs_printf("%s.tmp", o->final) : NULL;
    o->buf = malloc(OUT_BUF);
  }
  if (!o || !o->final || !o->tmp || !o->buf) {
    rc = fl_cs_fail(err, err_size, FL_ENOMEM, "out of memory");
    goto done;
  }
  o->fd = open(o->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (o->fd < 0 && errno == ENOENT && strchr(name, '/')) {
    /* First file of a subdirectory. */
    char *pd = fl_path_parent(o->final);
    if (!pd) {
      rc = fl_cs_fail(err, err_size, FL_ENOMEM, "out of memory");
      goto done;
    }
    rc = fl_mkdir_p(pd, true, err, err_size);
    free(pd);
    if (rc) goto done;
    o->fd = open(o->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  }
  if (o->fd < 0) rc = fl_cs_fail_sys(err, err_size, errno, "create", o->tmp);
done:
  if (rc) {
    if (o) {
      free(o->final);
      free(o->tmp);
      free(o->buf);
      free(o);
    }
    writer_settle(w, idx, false, 0, 0, NULL);
    return rc;
  }
  *out = o;
  return FL_OK;
}

static int out_flush(fl_ckpt_out_t *o) {
  if (o->len == 0) return FL_OK;
  int r = fl_write_all(o->fd, o->buf, o->len);
  o->len = 0;
  if (r) {
    char eb[128];
    o->err = FL_EIO;
    snprintf(o->errmsg, sizeof o->errmsg, "write %s: %s", o->tmp, fl_cs_etext(-r, eb, sizeof eb));
  }
  return o->err;
}

/* fl_ckpt_out_write without the checks: also how close writes the deferred pieces. */
static int out_append(fl_ckpt_out_t *o, const void *data, size_t len, char *err, size_t err_size) {
  if (o->err) return fl_cs_fail(err, err_size, o->err, "%s", o->errmsg);
  if (len == 0) return FL_OK;
  o->crc = fl_crc32c_extend(o->crc, data, len);
  o->size += len;
  if (o->len + len <= OUT_BUF) {
    memcpy(o->buf + o->len, data, len);
    o->len += len;
    return FL_OK;
  }
  if (out_flush(o) == FL_OK && len >= OUT_BUF) {
    int r = fl_write_all(o->fd, data, len);
    if (r) {
      char eb[128];
      o->err = FL_EIO;
      snprintf(o->errmsg, sizeof o->errmsg, "write %s: %s", o->tmp, fl_cs_etext(-r, eb, sizeof eb));
    }
  } else if (!o->err) {
    memcpy(o->buf, data, len);
    o->len = len;
  }
  if (o->err) return fl_cs_fail(err, err_size, o->err, "%s", o->errmsg);
  return FL_OK;
}

int fl_ckpt_out_write(fl_ckpt_out_t *o, const void *data, size_t len, char *err, size_t err_size) {
  if (!o || (!data && len)) return fl_cs_fail(err, err_size, FL_EINVAL, "out_write: bad arguments");
  if (o->n_defer)
    return fl_cs_fail(err, err_size, FL_EINVAL, "out_write: %s has deferred pieces", o->tmp);
  return out_append(o, data, len, err, err_size);
}

/* Releases the deferred pieces from i on (a copied piece is freed). */
static void out_release(fl_ckpt_out_t *o, size_t i) {
  for (; i < o->n_defer; i++) {
    struct out_piece *p = &o->defer[i];
    if (p->release)
      p->release(p->arg);
    else
      free((void *)p->data);
  }
  o->n_defer = 0;
}

int fl_ckpt_out_defer(fl_ckpt_out_t *o, const void *data, size_t len, void (*release)(void *),
                      void *arg, char *err, size_t err_size) {
  void *copy = NULL;
  int rc = FL_OK;
  if (!o || (!data && len)) {
    rc = fl_cs_fail(err, err_size, FL_EINVAL, "out_defer: bad arguments");
  } else if (o->err) {
    rc = fl_cs_fail(err, err_size, o->err, "%s", o->errmsg);
  } else if (FL_VEC_RESERVE(o->defer, o->cap_defer, o->n_defer + 1) ||
             (!release && !(copy = malloc(len ? len : 1)))) {
    o->err = FL_ENOMEM;
    snprintf(o->errmsg, sizeof o->errmsg, "%s: out of memory", o->tmp);
    rc = fl_cs_fail(err, err_size, FL_ENOMEM, "%s", o->errmsg);
  }
  if (rc) {
    if (release) release(arg);
    return rc;
  }
  if (copy && len) memcpy(copy, data, len);
  o->defer[o->n_defer++] = (struct out_piece){copy ? copy : data, len, release, arg};
  return FL_OK;
}

static void out_free(fl_ckpt_out_t *o) {
  out_release(o, 0);
  free(o->defer);
  if (o->fd >= 0) close(o->fd);
  free(o->tmp);
  free(o->final);
  free(o->buf);
  free(o);
}

int fl_ckpt_out_close(fl_ckpt_out_t *o, uint64_t *size, uint32_t *crc32c, char *err,
                      size_t err_size) {
  if (!o) return fl_cs_fail(err, err_size, FL_EINVAL, "out_close: out is NULL");
  fl_ckpt_writer_t *w = o->w;
  int rc = FL_OK;
  /* the deferred pieces, each released as soon as it is written */
  for (size_t i = 0; i < o->n_defer; i++) {
    struct out_piece *p = &o->defer[i];
    rc = out_append(o, p->data, p->len, err, err_size);
    if (p->release)
      p->release(p->arg);
    else
      free((void *)p->data);
    if (rc) {
      out_release(o, i + 1);
      goto done;
    }
  }
  o->n_defer = 0;
  if (out_flush(o)) {
    rc = fl_cs_fail(err, err_size, o->err, "%s", o->errmsg);
    goto done;
  }
  fl_cs_kill_point("file.written");
  if (fsync(o->fd) != 0) {
    rc = fl_cs_fail_sys(err, err_size, errno, "fsync", o->tmp);
    goto done;
  }
  int fd = o->fd;
  o->fd = -1;
  if (close(fd) != 0) {
    rc = fl_cs_fail_sys(err, err_size, errno, "close", o->tmp);
    goto done;
  }
  pthread_mutex_lock(&w->mu);
  bool open = w->state == W_OPEN;
  pthread_mutex_unlock(&w->mu);
  if (!open) {
    rc = fl_cs_fail(err, err_size, FL_ESTATE,
                    "close %s: the checkpoint was aborted while the file "
                    "was open",
                    o->final);
    goto done;
  }
  if (rename(o->tmp, o->final) != 0) {
    rc = fl_cs_fail_sys(err, err_size, errno, "rename to its final name", o->tmp);
    goto done;
  }
  fl_cs_kill_point("file.renamed");
  if (size) *size = o->size;
  if (crc32c) *crc32c = o->crc;
done:
  if (rc) unlink(o->tmp);
  size_t idx = o->idx;
  uint64_t sz = o->size;
  uint32_t c = o->crc;
  out_free(o);
  writer_settle(w, idx, rc == FL_OK, sz, c, NULL);
  return rc;
}

void fl_ckpt_out_discard(fl_ckpt_out_t *o) {
  if (!o) return;
  fl_ckpt_writer_t *w = o->w;
  size_t idx = o->idx;
  unlink(o->tmp);
  out_free(o);
  writer_settle(w, idx, false, 0, 0, NULL);
}

int fl_ckpt_writer_put(fl_ckpt_writer_t *w, const char *name, const void *data, size_t len,
                       char *err, size_t err_size) {
  fl_ckpt_out_t *o;
  if (!data && len)
    return fl_cs_fail(err, err_size, FL_EINVAL, "put %s: data is NULL", name ? name : "");
  int rc = fl_ckpt_writer_open_file(w, name, &o, err, err_size);
  if (rc) return rc;
  if ((rc = fl_ckpt_out_write(o, data, len, err, err_size))) {
    fl_ckpt_out_discard(o);
    return rc;
  }
  return fl_ckpt_out_close(o, NULL, NULL, err, err_size);
}

int fl_ckpt_writer_add_file(fl_ckpt_writer_t *w, const char *name, const char *src_path, char *err,
                            size_t err_size) {
  int rc = FL_OK, fd = -1;
  fl_ckpt_out_t *o = NULL;
  unsigned char *buf = NULL;
  if (!w || !src_path)
    return fl_cs_fail(err, err_size, FL_EINVAL, "add_file: writer and src_path are required");
  if ((rc = fl_cs_check_name(name, true, "file name", err, err_size))) return rc;
  fd = open(src_path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return fl_cs_fail_sys(err, err_size, errno, "open", src_path);
  if (!(buf = malloc(IO_CHUNK))) {
    rc = fl_cs_fail(err, err_size, FL_ENOMEM, "out of memory");
    goto done;
  }
  if ((rc = fl_ckpt_writer_open_file(w, name, &o, err, err_size))) goto done;
  for (;;) {
    ssize_t r = fl_read_some(fd, buf, IO_CHUNK);
    if (r < 0) {
      rc = fl_cs_fail_sys(err, err_size, (int)-r, "read", src_path);
      goto done;
    }
    if (r == 0) break;
    if ((rc = fl_ckpt_out_write(o, buf, (size_t)r, err, err_size))) goto done;
  }
  rc = fl_ckpt_out_close(o, NULL, NULL, err, err_size);
  o = NULL;
done:
  if (o) fl_ckpt_out_discard(o);
  free(buf);
  close(fd);
  return rc;
}

/* Hard-links (when possible) or copies src into the new file dst, computes its CRC32C
 * and fsyncs it. The size must stay `size` (src is immutable). dst is removed on error. */
static int link_or_copy(const char *src, const char *dst, uint64_t size, uint32_t *crc, char *err,
                        size_t err_size) {
  int rc = FL_OK, in = -1, outfd = -1;
  unsigned char *buf = malloc(IO_CHUNK);
  uint32_t c = 0;
  uint64_t total = 0;
  bool linked;
  if (!buf) return fl_cs_fail(err, err_size, FL_ENOMEM, "out of memory");
  /* AT_SYMLINK_FOLLOW: a symbolic link src is linked to its target, not copied as a
   * link (which would point outside R). */
  linked = linkat(AT_FDCWD, src, AT_FDCWD, dst, AT_SYMLINK_FOLLOW) == 0;
  if (linked) {
    /* Read back through the link for the CRC; fsync makes sure the data, which
     * whoever wrote src may not have synced, is durable. */
    outfd = open(dst, O_RDONLY | O_CLOEXEC);
    if (outfd < 0) {
      rc = fl_cs_fail_sys(err, err_size, errno, "open", dst);
      goto done;
    }
    in = outfd;
  } else {
    in = open(src, O_RDONLY | O_CLOEXEC);
    if (in < 0) {
      rc = fl_cs_fail_sys(err, err_size, errno, "open", src);
      goto done;
    }
    outfd = open(dst, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (outfd < 0) {
      rc = fl_cs_fail_sys(err, err_size, errno, "create", dst);
      goto done;
    }
  }
  for (;;) {
    ssize_t r = fl_read_some(in, buf, IO_CHUNK);
    if (r < 0) {
      rc = fl_cs_fail_sys(err, err_size, (int)-r, "read", linked ? dst : src);
      goto done;
    }
    if (r == 0) break;
    c = fl_crc32c_extend(c, buf, (size_t)r);
    total += (uint64_t)r;
    if (!linked) {
      int wr = fl_write_all(outfd, buf, (size_t)r);
      if (wr) {
        rc = fl_cs_fail_sys(err, err_size, -wr, "write", dst);
        goto done;
      }
    }
  }
  if (total != size) {
    rc = fl_cs_fail(err, err_size, FL_EIO,
                    "%s changed while being added (%" PRIu64 " bytes, then %" PRIu64
                    "); shared files must be immutable",
                    src, size, total);
    goto done;
  }
  if (fsync(outfd) != 0) {
    rc = fl_cs_fail_sys(err, err_size, errno, "fsync", dst);
    goto done;
  }
  *crc = c;
done:
  if (in >= 0 && in != outfd) close(in);
  if (outfd >= 0 && close(outfd) != 0 && !rc)
    rc = fl_cs_fail_sys(err, err_size, errno, "close", dst);
  if (rc) unlink(dst);
  free(buf);
  return rc;
}

int fl_ckpt_writer_add_shared(fl_ckpt_writer_t *w, const char *name, const char *src_path,
                              const char *shared_key, char *err, size_t err_size) {
  int rc;
  size_t idx;
  char *key = NULL, *tmp = NULL, *dst = NULL, eb[128];
  uint32_t crc = 0;
  bool created = false, reused = false;
  if (!w || !src_path)
    return fl_cs_fail(err, err_size, FL_EINVAL, "add_shared: writer and src_path are required");
  if ((rc = fl_cs_check_name(name, true, "file name", err, err_size))) return rc;
  if ((rc = fl_cs_check_name(shared_key, false, "shared key", err, err_size))) return rc;
  if (w->kind == FL_CKPT_SAVEPOINT)
    return fl_ckpt_writer_add_file(w, name, src_path, err, err_size);

  struct stat st;
  if (stat(src_path, &st) != 0) return fl_cs_fail_sys(err, err_size, errno, "stat", src_path);
  if (!S_ISREG(st.st_mode))
    return fl_cs_fail(err, err_size, FL_EINVAL, "add_shared: %s is not a regular file", src_path);
  uint64_t size = (uint64_t)st.st_size;
  if ((rc = writer_reserve(w, name, &idx, err, err_size))) return rc;
  if (!(key = strdup(shared_key)) || !(dst = fl_cs_join(w->shared_dir, shared_key))) {
    rc = fl_cs_fail(err, err_size, FL_ENOMEM, "out of memory");
    goto done;
  }

  /* Announce the key before looking at R/shared: from here on retain keeps the file. */
  pthread_mutex_lock(&fl_cs_reg_mu);
  kent_t *k;
  rc = fl_cs_keytab_add(&w->keys, shared_key, &k);
  if (rc == FL_ENOMEM) {
    rc = fl_cs_fail(err, err_size, FL_ENOMEM, "out of memory");
  } else if (k->sized && k->size != size) {
    rc = fl_cs_fail(err, err_size, FL_ESTATE,
                    "%s: shared key %s added twice with sizes %" PRIu64 " and %" PRIu64, w->dir,
                    shared_key, k->size, size);
  } else if (k->done) {
    crc = k->crc;
    reused = true;
  } else {
    k->size = size;
    k->sized = true;
  }
  pthread_mutex_unlock(&fl_cs_reg_mu);
  if (rc || reused) goto done;

  kent_t *old = fl_cs_keytab_find(&w->old_keys, shared_key);
  if (old && old->size != size) {
    rc = fl_cs_fail(err, err_size, FL_ESTATE,
                    "shared key %s: a complete checkpoint of %s recorded %" PRIu64
                    " bytes, %s has %" PRIu64
                    "; a shared key must always name the same "
                    "content",
                    shared_key, w->parent, old->size, src_path, size);
    goto done;
  }
  struct stat ds;
  if (old && stat(dst, &ds) == 0 && S_ISREG(ds.st_mode) && (uint64_t)ds.st_size == size) {
    crc = old->crc;
    goto done;
  }
  pthread_mutex_lock(&w->mu);
  uint64_t seq = w->seq++;
  pthread_mutex_unlock(&w->mu);
  if (!(tmp = fl_cs_printf("%s/_shared.%" PRIu64 ".tmp", w->dir, seq))) {
    rc = fl_cs_fail(err, err_size, FL_ENOMEM, "out of memory");
    goto done;
  }
  if ((rc = link_or_copy(src_path, tmp, size, &crc, err, err_size))) goto done;
  if (rename(tmp, dst) != 0) {
    rc = fl_cs_fail(err, err_size, FL_EIO, "rename %s to %s: %s", tmp, dst,
                    fl_cs_etext(errno, eb, sizeof eb));
    unlink(tmp);
    goto done;
  }
  /* rename() between two links of one inode (the same src linked twice) succeeds
   * without removing the old name. */
  unlink(tmp);
  created = true;
  fl_cs_kill_point("shared.renamed");
  pthread_mutex_lock(&w->mu);
  w->shared_written = true;
  pthread_mutex_unlock(&w->mu);
done:
  if (rc == FL_OK && !reused) {
    pthread_mutex_lock(&fl_cs_reg_mu);
    kent_t *k2 = fl_cs_keytab_find(&w->keys, shared_key);
    if (k2) {
      k2->done = true;
      k2->crc = crc;
      k2->created |= created;
    }
    pthread_mutex_unlock(&fl_cs_reg_mu);
  }
  free(tmp);
  free(dst);
  writer_settle(w, idx, rc == FL_OK, size, crc, rc == FL_OK ? key : NULL);
  if (rc) free(key);
  return rc;
}

static int cmp_mfile_ptr(const void *a, const void *b) {
  return strcmp((*(mfile_t *const *)a)->name, (*(mfile_t *const *)b)->name);
}

static int cmp_str_ptr(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

/* fsyncs the directories that hold the writer's own files, then the checkpoint directory
 * itself. Intermediate directories were made durable in their parents when mkdir_p
 * created them, so each file's immediate directory is enough. O(n log n). */
static int fsync_tree(fl_ckpt_writer_t *w, char *err, size_t err_size) {
  int rc = FL_OK;
  char **dirs = calloc(w->n ? w->n : 1, sizeof *dirs);
  size_t nd = 0;
  if (!dirs) return fl_cs_fail(err, err_size, FL_ENOMEM, "out of memory");
  for (size_t i = 0; i < w->n; i++) {
    if (w->e[i].f.shared || !strchr(w->e[i].f.name, '/')) continue;
    char *p = fl_cs_join(w->dir, w->e[i].f.name);
    if (!p) {
      rc = fl_cs_fail(err, err_size, FL_ENOMEM, "out of memory");
      goto done;
    }
    *strrchr(p, '/') = 0;
    dirs[nd++] = p;
  }
  if (nd) qsort(dirs, nd, sizeof *dirs, cmp_str_ptr);
  for (size_t i = 0; i < nd; i++) {
    if (i > 0 && strcmp(dirs[i], dirs[i - 1]) == 0) continue;
    if ((rc = fl_fsync_dir(dirs[i], err, err_size))) goto done;
  }
  rc = fl_fsync_dir(w->dir, err, err_size);
done:
  for (size_t i = 0; i < nd; i++) free(dirs[i]);
  free(dirs);
  return rc;
}

/* The crash tests' kill points between the manifest's steps. */
static void manifest_stage(const char *point, void *arg) {
  (void)arg;
  fl_cs_kill_point(strcmp(point, "tmp") == 0 ? "manifest.tmp" : "manifest.renamed");
}

int fl_ckpt_writer_commit(fl_ckpt_writer_t *w, const char *meta_json, char *err, size_t err_size) {
  int rc = FL_OK;
  json_t *meta = NULL;
  mfile_t **files = NULL;
  char *text = NULL, *final = NULL;
  size_t len = 0;
  if (!w) return fl_cs_fail(err, err_size, FL_EINVAL, "commit: writer is NULL");
  pthread_mutex_lock(&w->mu);
  int refs = w->refs, state = w->state;
  bool failed = w->any_failed;
  if (state == W_OPEN) w->state = (refs == 1 && !failed) ? W_COMMITTING : W_ABORTED;
  pthread_mutex_unlock(&w->mu);
  if (state != W_OPEN) {
    rc = fl_cs_fail(err, err_size, FL_ESTATE,
                    "commit %s: the writer was already committed or aborted", w->dir);
    goto done;
  }
  if (refs != 1) {
    rc = fl_cs_fail(err, err_size, FL_ESTATE,
                    "commit %s: %d file(s) still open or being added; "
                    "the checkpoint is aborted",
                    w->dir, refs - 1);
    goto done;
  }
  if (failed) {
    rc = fl_cs_fail(err, err_size, FL_ESTATE,
                    "commit %s: a file of the checkpoint failed to be "
                    "written; the checkpoint is aborted",
                    w->dir);
    goto done;
  }
  if (meta_json) {
    json_error_t je;
    meta = json_loads(meta_json, JSON_REJECT_DUPLICATES, &je);
    if (!json_is_object(meta)) {
      rc = fl_cs_fail(err, err_size, FL_EINVAL, "commit %s: meta is not a JSON object%s%s", w->dir,
                      meta ? "" : ": ", meta ? "" : je.text);
      goto done;
    }
  } else if (!(meta = json_object())) {
    rc = fl_cs_fail(err, err_size, FL_ENOMEM, "out of memory");
    goto done;
  }
  /* No other thread touches w any more: entries are read without the lock. */
  files = malloc((w->n ? w->n : 1) * sizeof *files);
  if (!files) {
    rc = fl_cs_fail(err, err_size, FL_ENOMEM, "out of memory");
    goto done;
  }
  for (size_t i = 0; i < w->n; i++) files[i] = &w->e[i].f;
  if (w->n) qsort(files, w->n, sizeof *files, cmp_mfile_ptr);
  if ((rc = fsync_tree(w, err, err_size))) goto done;
  if (w->shared_written && (rc = fl_fsync_dir(w->shared_dir, err, err_size))) goto done;
  if (fl_cs_manifest_encode(w->kind, w->id, meta, files, w->n, &text, &len) != FL_OK) {
    rc = fl_cs_fail(err, err_size, FL_ENOMEM, "out of memory encoding the manifest of %s", w->dir);
    goto done;
  }
  final = fl_cs_join(w->dir, MANIFEST);
  if (!final) {
    rc = fl_cs_fail(err, err_size, FL_ENOMEM, "out of memory");
    goto done;
  }
  /* _manifest.tmp, fsync'd, renamed to _manifest, the directory fsync'd */
  if ((rc = fl_file_replace_staged(final, text, len, manifest_stage, NULL, err, err_size)))
    goto done;
  rc = fl_fsync_dir(w->parent, err, err_size);
done:
  json_decref(meta);
  free(files);
  free(text);
  free(final);
  pthread_mutex_lock(&w->mu);
  if (w->state == W_COMMITTING) w->state = rc ? W_ABORTED : W_DONE;
  pthread_mutex_unlock(&w->mu);
  if (state == W_OPEN) writer_release(w);
  return rc;
}

void fl_ckpt_writer_abort(fl_ckpt_writer_t *w) {
  if (!w) return;
  pthread_mutex_lock(&w->mu);
  int state = w->state;
  if (state == W_OPEN) w->state = W_ABORTED;
  pthread_mutex_unlock(&w->mu);
  if (state == W_OPEN) writer_release(w);
}
