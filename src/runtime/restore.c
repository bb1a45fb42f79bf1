/*
 * Restore: loading a checkpoint or savepoint (fl_restore_load), and giving each
 * operator instance what it owns of it (fl_rt_restore_op): the cells and timers of its
 * key groups from the snapshots of every subtask of the run that wrote it, and the
 * operator states for the class's restore. Snapshot files are read as streams, straight
 * into the instance's backend (memory holds the largest single value, not a snapshot).
 * A native (incremental RocksDB) snapshot is linked into a temporary store whose cells
 * and timers are copied over, so key groups can move and the backend can change.
 */
#define _GNU_SOURCE
#include "runtime/restore.h"

#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "checkpoint/snapshot.h"
#include "checkpoint/store.h"
#include "util/fs.h"

static void log_line(const char *line, void *arg) { fl_env_log(arg, FL_LOG_WARN, "%s", line); }

int64_t fl_ckpt_root_max_id(const char *root) {
  DIR *d = opendir(root);
  if (!d) return 0;
  int64_t max = 0;
  struct dirent *e;
  while ((e = readdir(d))) {
    char *end = NULL;
    if (strncmp(e->d_name, "chk-", 4) != 0) continue;
    long long v = strtoll(e->d_name + 4, &end, 10);
    if (end && *end == '\0' && v > max) max = v;
  }
  closedir(d);
  return max;
}

void fl_restore_free(fl_restore_t *r) {
  if (!r) return;
  fl_ckpt_close(r->ck);
  free(r);
}

int fl_restore_load(fl_env_t *env, const char *path, fl_restore_t **out, char *msg, size_t size) {
  *out = NULL;
  fl_ckpt_t *c = NULL;
  fl_restore_t *r = NULL;
  json_t *meta = NULL;
  char err[1024];
  int rc = fl_ckpt_open_path(&c, path, log_line, env, err, sizeof err);
  if (rc) {
    snprintf(msg, size, "cannot restore from %s: %s", path, err);
    goto done;
  }
  json_error_t je;
  meta = json_loads(fl_ckpt_meta(c), 0, &je);
  int P = (int)json_integer_value(json_object_get(meta, "parallelism"));
  json_int_t maxp = json_integer_value(json_object_get(meta, "max_parallelism"));
  json_t *ops = json_object_get(meta, "operators");
  if (!meta || P < 1 || !json_is_array(ops)) {
    rc = FL_EPARSE;
    snprintf(msg, size, "cannot restore from %s: its metadata does not describe a job",
             fl_ckpt_dir(c));
    goto done;
  }
  if ((uint32_t)maxp != env->conf.max_parallelism) {
    rc = FL_ESTATE;
    snprintf(msg, size,
             "cannot restore from %s: it was written with pipeline.max-parallelism %lld, the "
             "job has %u (key groups cannot be split differently)",
             fl_ckpt_dir(c), (long long)maxp, env->conf.max_parallelism);
    goto done;
  }
  if (json_array_size(ops) != env->n_nodes) {
    rc = FL_ESTATE;
    snprintf(msg, size,
             "cannot restore from %s: it holds %zu operators, the job has %zu (operators are "
             "matched by position and name)",
             fl_ckpt_dir(c), json_array_size(ops), env->n_nodes);
    goto done;
  }
  for (size_t i = 0; i < env->n_nodes; i++) {
    const char *n = json_string_value(json_array_get(ops, i));
    if (!n || strcmp(n, env->nodes[i]->name) != 0) {
      rc = FL_ESTATE;
      snprintf(msg, size, "cannot restore from %s: operator %zu is '%s' there and '%s' in the job",
               fl_ckpt_dir(c), i, n ? n : "?", env->nodes[i]->name);
      goto done;
    }
  }
  r = calloc(1, sizeof *r);
  if (!r) {
    rc = FL_ENOMEM;
    snprintf(msg, size, "out of memory restoring from %s", fl_ckpt_dir(c));
    goto done;
  }
  r->ck = c;
  r->id = fl_ckpt_id(c);
  r->parallelism = P;
  r->n_nodes = env->n_nodes;
  snprintf(r->path, sizeof r->path, "%s", fl_ckpt_dir(c));
  fl_env_log(env, FL_LOG_INFO, "restoring %s %lld from %s (written at parallelism %d)",
             fl_ckpt_kind(c) == FL_CKPT_SAVEPOINT ? "savepoint" : "checkpoint", (long long)r->id,
             r->path, P);
  *out = r;
  r = NULL;
  c = NULL; /* owned by the restore now */
  rc = FL_OK;
done:
  json_decref(meta);
  if (r) r->ck = NULL;
  fl_restore_free(r);
  fl_ckpt_close(c);
  return rc;
}

int fl_restore_load_latest(fl_env_t *env, fl_restore_t **out, char *msg, size_t size) {
  const char *root = env->conf.ckpt_dir, *sp = env->conf.restore_path;
  char then[4200];
  if (sp[0])
    snprintf(then, sizeof then, "the job starts from %s (execution.savepoint.path)", sp);
  else
    snprintf(then, sizeof then, "the job starts fresh");
  *out = NULL;
  int64_t max = fl_ckpt_root_max_id(root);
  if (max == 0) {
    fl_env_log(env, FL_LOG_INFO, "no checkpoint under %s: %s", root, then);
    return FL_OK;
  }
  /* A run started from a savepoint writes checkpoints with larger ids than the
   * savepoint's: a checkpoint older than the savepoint is of a run before it (say, the
   * one that was stopped with that savepoint), and the savepoint is where to start. The
   * newest one's manifest tells without verifying its files. */
  int64_t sp_id = 0, max_id = 0;
  char why[512], newest[4200];
  bool have_sp = false;
  if (sp[0]) {
    int src = fl_ckpt_manifest_id(sp, &sp_id, why, sizeof why);
    have_sp = src == FL_OK;
    /* a checkpoint root has no manifest of its own and is no savepoint to compare */
    if (access(sp, F_OK) != 0)
      fl_env_log(env, FL_LOG_WARN,
                 "execution.savepoint.path %s does not exist; the job resumes from the "
                 "checkpoints under %s",
                 sp, root);
    else if (src != FL_OK && src != FL_ENOTFOUND)
      fl_env_log(env, FL_LOG_WARN,
                 "execution.savepoint.path %s cannot be read (%s); the job resumes from the "
                 "checkpoints under %s",
                 sp, why, root);
  }
  snprintf(newest, sizeof newest, "%s/chk-%lld", root, (long long)max);
  if (have_sp && fl_ckpt_manifest_id(newest, &max_id, why, sizeof why) == FL_OK && sp_id > max_id) {
    fl_env_log(env, FL_LOG_INFO,
               "the newest checkpoint under %s (%lld) is older than %s (id %lld): the job "
               "starts from the savepoint",
               root, (long long)max_id, sp, (long long)sp_id);
    return FL_OK;
  }
  /* A checkpoint root: the newest usable checkpoint, every one skipped logged. */
  int rc = fl_restore_load(env, root, out, msg, size);
  if (rc == FL_ENOTFOUND) {
    fl_env_log(env, FL_LOG_WARN, "%s; %s", msg, then);
    msg[0] = '\0';
    return FL_OK;
  }
  /* the same when the newest ones were damaged and an older one was restored */
  if (rc == FL_OK && have_sp && sp_id > (*out)->id) {
    fl_env_log(env, FL_LOG_INFO,
               "checkpoint %lld under %s is older than %s (id %lld): the job starts from the "
               "savepoint instead",
               (long long)(*out)->id, root, sp, (long long)sp_id);
    fl_restore_free(*out);
    *out = NULL;
  }
  return rc;
}

/* ---------------------------------------------------------------------------------- */
/* Giving an instance its part                                                          */

typedef struct native_arg {
  fl_op_t *op;
  const fl_restore_t *r;
  const fl_snapshot_target_t *t;
} native_arg_t;

/* A native (incremental) snapshot of old subtask `subtask`: its RocksDB files are linked
 * into a temporary store, whose cells are restored like a canonical snapshot. */
static int restore_native(void *arg, size_t subtask, uint64_t store_id, const char *const *files,
                          size_t n, char *msg, size_t size) {
  const native_arg_t *na = arg;
  fl_op_t *op = na->op;
  const fl_restore_t *r = na->r;
  fl_job_t *job = op->worker->job;
  static _Atomic int seq;
  char tmp[4200], src[4300], db[4300], err[900];
  snprintf(tmp, sizeof tmp, "%s/restore-%d", job->work.path, atomic_fetch_add(&seq, 1));
  snprintf(src, sizeof src, "%s/files", tmp);
  snprintf(db, sizeof db, "%s/db", tmp);
  fl_kv_rocksdb_shared_t *sh = NULL; /* a cache of its own: several workers read the files */
  fl_kv_t tkv = {0};
  int rc = FL_OK;
  (void)store_id;
  if (mkdir(tmp, 0700) != 0 || mkdir(src, 0700) != 0) {
    snprintf(msg, size, "cannot create %s: %s", src, strerror(errno));
    rc = FL_EIO;
    goto done;
  }
  for (size_t i = 0; i < n; i++) {
    char name[600], to[4700];
    snprintf(name, sizeof name, "op-%u-%zu/%s", op->node->id, subtask, files[i]);
    const fl_ckpt_file_t *f = fl_ckpt_file_find(r->ck, name);
    if (!f) {
      snprintf(msg, size, "checkpoint %s lacks the state file %s", r->path, name);
      rc = FL_EPARSE;
      goto done;
    }
    snprintf(to, sizeof to, "%s/%s", src, files[i]);
    if (link(f->path, to) != 0 && symlink(f->path, to) != 0) {
      snprintf(msg, size, "cannot link %s to %s: %s", f->path, to, strerror(errno));
      rc = FL_EIO;
      goto done;
    }
  }
  rc = fl_kv_rocksdb_shared_new(&job->env->conf.rocksdb_opts, &sh, err, sizeof err);
  if (rc) {
    snprintf(msg, size, "cannot open RocksDB to restore: %s", err);
    goto done;
  }
  rc = fl_kv_rocksdb_new(sh, db, src, &tkv, err, sizeof err);
  if (rc) {
    snprintf(msg, size, "cannot open the restored RocksDB state of subtask %zu: %s", subtask, err);
    goto done;
  }
  char prefix[32];
  snprintf(prefix, sizeof prefix, "%u/", op->node->id);
  rc = fl_snapshot_copy_store(na->t, &tkv, prefix, msg, size);
done:
  fl_kv_destroy(&tkv);
  if (sh) fl_kv_rocksdb_shared_destroy(sh);
  fl_rm_tree(tmp);
  return rc;
}

static int in_read(void *arg, void *buf, size_t cap, size_t *got, char *msg, size_t size) {
  return fl_ckpt_in_read(arg, buf, cap, got, msg, size);
}

void fl_rt_restore_op(fl_op_t *op) {
  const fl_restore_t *r = op->worker->job->restore;
  size_t n = (size_t)r->parallelism;
  fl_bytes_t *states = calloc(n, sizeof *states);
  if (!states) {
    fl_op_fail(op, FL_ENOMEM, "out of memory restoring checkpoint %lld", (long long)r->id);
    return;
  }
  fl_snapshot_target_t t = fl_rt_snapshot_target(op);
  native_arg_t na = {op, r, &t};
  char msg[1024];
  int rc = FL_OK;
  /* the snapshots of every subtask of the run that wrote it, one file at a time */
  for (size_t s = 0; s < n && !rc; s++) {
    char name[64];
    snprintf(name, sizeof name, "op-%u-%zu.snap", op->node->id, s);
    const fl_ckpt_file_t *f = fl_ckpt_file_find(r->ck, name);
    if (!f) continue;
    fl_ckpt_in_t *in = NULL;
    rc = fl_ckpt_in_open(r->ck, name, &in, msg, sizeof msg);
    if (!rc)
      rc = fl_snapshot_restore_stream(&t, s, in_read, in, f->size, &states[s], restore_native, &na,
                                      msg, sizeof msg);
    fl_ckpt_in_close(in);
  }
  if (rc) {
    fl_op_fail(op, rc, "restoring checkpoint %lld: %s", (long long)r->id, msg);
  } else if (op->cls->restore) {
    if (op->is_source && !op->node->parallel) {
      /* a single reader goes on from its own position */
      if (op->subtask == 0) rc = op->cls->restore(op, states, 1);
    } else {
      rc = op->cls->restore(op, states, n);
    }
    fl_rt_op_check(op, rc);
  }
  for (size_t s = 0; s < n; s++) free((void *)states[s].data);
  free(states);
}
