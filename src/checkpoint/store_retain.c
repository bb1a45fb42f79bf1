/*
 * Checkpoint storage, part 4 of 4: retention (keeping the newest n complete
 * checkpoints, deleting the rest and the shared files nothing references any more) and
 * the highest checkpoint id under a root. Runs under the registry lock of
 * store_write.c, so it never deletes what a writer or an open checkpoint uses.
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

#include "util/fs.h"
#include "util/vec.h"

/* ---------------------------------------------------------------------------------- */
/* Retention                                                                            */

typedef struct rchk {
  int64_t id;
  int status; /* 0 valid, FL_ENOTFOUND incomplete, FL_EPARSE/FL_ENOTSUP corrupt */
  bool keep;
  manifest_t m;
  char why[512];
} rchk_t;

typedef struct lines {
  char **v;
  size_t n, cap;
} lines_t;

static void lines_add(lines_t *l, char *s) {
  if (!s) return;
  if (FL_VEC_RESERVE(l->v, l->cap, l->n + 1)) {
    free(s);
    return;
  }
  l->v[l->n++] = s;
}

static int add_manifest_keys(keytab_t *t, const manifest_t *m) {
  for (size_t j = 0; j < m->n; j++) {
    if (m->files[j].shared && fl_cs_keytab_add(t, m->files[j].key, NULL)) return FL_ENOMEM;
  }
  return FL_OK;
}

int fl_ckpt_retain(const char *root, size_t n, fl_ckpt_log_fn log, void *log_arg, char *err,
                   size_t err_size) {
  int rc = FL_OK;
  char *norm = NULL, *real = NULL, *shared = NULL, eb[128];
  int64_t *ids = NULL;
  size_t nids = 0;
  rchk_t *cs = NULL;
  keytab_t refs = {0};
  lines_t lines = {0};
  bool locked = false;
  if (!root || !*root) return fl_cs_fail(err, err_size, FL_EINVAL, "retain: root is required");
  if (n < 1) return fl_cs_fail(err, err_size, FL_EINVAL, "retain %s: n must be at least 1", root);
  if (!(norm = fl_cs_normalize_path(root)) || !(shared = fl_cs_join(norm, SHARED_DIR))) {
    rc = fl_cs_fail(err, err_size, FL_ENOMEM, "out of memory");
    goto done;
  }
  if (!(real = realpath(norm, NULL))) {
    if (errno != ENOENT) rc = fl_cs_fail_sys(err, err_size, errno, "resolve", norm);
    goto done;
  }
  pthread_mutex_lock(&fl_cs_reg_mu);
  locked = true;
  rc = fl_cs_list_chk_ids(norm, &ids, &nids, err, err_size);
  if (rc == FL_ENOTFOUND) {
    rc = FL_OK;
    goto done;
  }
  if (rc) goto done;
  cs = calloc(nids ? nids : 1, sizeof *cs);
  if (!cs) {
    rc = fl_cs_fail(err, err_size, FL_ENOMEM, "out of memory");
    goto done;
  }
  fl_ckpt_writer_t *w = fl_cs_reg_writer_on(real);
  size_t valid = 0;
  /* Newest first; decide what stays. */
  for (size_t k = 0; k < nids; k++) {
    rchk_t *c = &cs[k];
    c->id = ids[nids - 1 - k];
    if (w && w->id == c->id) {
      c->keep = true;
      c->status = -1; /* being written: neither counted nor read */
      continue;
    }
    char name[32];
    snprintf(name, sizeof name, "chk-%" PRId64, c->id);
    char *dir = fl_cs_join(norm, name);
    if (!dir) {
      rc = fl_cs_fail(err, err_size, FL_ENOMEM, "out of memory");
      goto done;
    }
    c->status = fl_cs_manifest_read(dir, &c->m, c->why, sizeof c->why);
    if (c->status == FL_OK && (c->m.kind != FL_CKPT_CHECKPOINT || c->m.id != c->id)) {
      snprintf(c->why, sizeof c->why, "_manifest: it describes %s %" PRId64,
               fl_cs_kind_str(c->m.kind), c->m.id);
      fl_cs_manifest_free(&c->m);
      c->status = FL_EPARSE;
    }
    if (c->status == FL_EIO || c->status == FL_ENOMEM || c->status == FL_ENOTSUP) {
      rc = fl_cs_fail(err, err_size, c->status, "retain %s: %s: %s; nothing deleted", norm, dir,
                      c->why);
      free(dir);
      goto done;
    }
    free(dir);
    if (c->status == FL_OK && valid < n) {
      c->keep = true;
      valid++;
    }
    for (fl_ckpt_t *r = fl_cs_readers; r; r = r->reg_next) {
      if (r->id == c->id && strcmp(r->root_real, real) == 0) c->keep = true;
    }
  }
  /* Delete the others, each manifest first. */
  for (size_t k = 0; k < nids; k++) {
    rchk_t *c = &cs[k];
    if (c->keep) {
      if (c->status == FL_OK && add_manifest_keys(&refs, &c->m)) {
        rc = fl_cs_fail(err, err_size, FL_ENOMEM, "out of memory");
        goto done;
      }
      continue;
    }
    char name[32];
    snprintf(name, sizeof name, "chk-%" PRId64, c->id);
    char *dir = fl_cs_join(norm, name), *mp = dir ? fl_cs_join(dir, MANIFEST) : NULL;
    if (!mp) {
      free(dir);
      rc = fl_cs_fail(err, err_size, FL_ENOMEM, "out of memory");
      goto done;
    }
    if (c->status != FL_OK)
      lines_add(&lines, fl_cs_printf("checkpoint %s is unusable: %s; deleting it", dir, c->why));
    if (unlink(mp) != 0 && errno != ENOENT) {
      /* Still complete-looking: keep honouring what it references. */
      if (!rc) rc = fl_cs_fail_sys(err, err_size, errno, "retain: delete", mp);
      if (c->status == FL_OK && add_manifest_keys(&refs, &c->m)) {
        free(mp);
        free(dir);
        rc = fl_cs_fail(err, err_size, FL_ENOMEM, "out of memory");
        goto done;
      }
    } else {
      int r = fl_rm_tree(dir);
      if (r && !rc)
        rc = fl_cs_fail(err, err_size, FL_EIO, "retain: delete %s: %s", dir,
                        fl_cs_etext(-r, eb, sizeof eb));
    }
    free(mp);
    free(dir);
  }
  int fr = fl_fsync_dir(norm, rc ? NULL : err, err_size);
  if (fr && !rc) rc = fr;
  /* Shared files: referenced by a remaining manifest, a running writer or an open
   * checkpoint, or deleted. */
  if (w) {
    for (size_t i = 0; i < w->keys.n; i++) {
      if (fl_cs_keytab_add(&refs, w->keys.v[i].key, NULL)) {
        rc = fl_cs_fail(err, err_size, FL_ENOMEM, "out of memory");
        goto done;
      }
    }
  }
  for (fl_ckpt_t *r = fl_cs_readers; r; r = r->reg_next) {
    if (strcmp(r->root_real, real) != 0) continue;
    if (add_manifest_keys(&refs, &r->m)) {
      rc = fl_cs_fail(err, err_size, FL_ENOMEM, "out of memory");
      goto done;
    }
  }
  DIR *d = opendir(shared);
  if (!d) {
    if (errno != ENOENT && !rc) rc = fl_cs_fail_sys(err, err_size, errno, "list directory", shared);
    goto done;
  }
  bool deleted = false;
  struct dirent *de;
  while ((de = readdir(d)) != NULL) {
    if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0) continue;
    if (fl_cs_keytab_find(&refs, de->d_name)) continue;
    struct stat st;
    if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 || S_ISDIR(st.st_mode))
      continue;
    if (unlinkat(dirfd(d), de->d_name, 0) != 0) {
      if (errno != ENOENT && !rc) {
        char *p = fl_cs_join(shared, de->d_name);
        rc = fl_cs_fail_sys(err, err_size, errno, "retain: delete", p ? p : de->d_name);
        free(p);
      }
    } else {
      deleted = true;
    }
  }
  closedir(d);
  if (deleted) {
    fr = fl_fsync_dir(shared, rc ? NULL : err, err_size);
    if (fr && !rc) rc = fr;
  }
done:
  if (locked) pthread_mutex_unlock(&fl_cs_reg_mu);
  for (size_t i = 0; i < lines.n; i++) {
    fl_cs_log_line(log, log_arg, lines.v[i]);
    free(lines.v[i]);
  }
  free(lines.v);
  if (cs) {
    for (size_t k = 0; k < nids; k++) fl_cs_manifest_free(&cs[k].m);
  }
  free(cs);
  free(ids);
  fl_cs_keytab_free(&refs);
  free(norm);
  free(real);
  free(shared);
  return rc;
}

int fl_ckpt_max_id(const char *root, int64_t *id, char *err, size_t err_size) {
  int64_t *ids = NULL;
  size_t n = 0;
  if (!root || !id) return fl_cs_fail(err, err_size, FL_EINVAL, "max_id: root and id are required");
  *id = -1;
  char *norm = fl_cs_normalize_path(root);
  if (!norm) return fl_cs_fail(err, err_size, FL_ENOMEM, "out of memory");
  int rc = fl_cs_list_chk_ids(norm, &ids, &n, err, err_size);
  free(norm);
  if (rc == FL_ENOTFOUND) return FL_OK;
  if (rc) return rc;
  if (n) *id = ids[n - 1];
  free(ids);
  return FL_OK;
}
