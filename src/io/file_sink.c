/*
 * The exactly-once file sink (fl_stream_sink_files): Flink's FileSink with two-phase
 * commit, one directory, one file per subtask and checkpoint.
 *
 * Files of subtask s in dir:
 *   .part-<s>-<n>.inprogress  records written since the last barrier (n: a counter)
 *   .part-<s>-<id>.pending    closed and fsync'ed at barrier `id` (pre-committed)
 *   part-<s>-<id>             committed when checkpoint `id` completed
 *   .part-<s>-end.pending / part-<s>-end   what was written after the last barrier
 * The sink's checkpoint state lists its pending files. Commit is a rename, so it is
 * idempotent: a restore commits the pending files of the restored checkpoint (one new
 * subtask per old subtask: i % parallelism == s) and deletes every other in-progress
 * or pending file of those old subtasks, which belongs to an attempt after it.
 *
 * Taking back: a job that starts from checkpoint R (or from nothing, R = 0) will write
 * again everything after R, so the committed files of later checkpoints, and "end"
 * files that R's state does not list, are output it is about to repeat: each subtask
 * deletes those of the old subtasks it stands for (s % parallelism == subtask) and
 * logs it (at open for a fresh start, in restore otherwise). This happens
 * when a restore falls back past a damaged newest checkpoint, or starts over after the
 * checkpoint directory was deleted; the files then hold every record once. The
 * directory belongs to the sink: files named part-* there are taken for its own.
 *
 * The last file: when the input ends, the in-progress file becomes ".part-<s>-end.pending"
 * and is committed only by a checkpoint triggered after that (the final checkpoint,
 * which every worker waits for): one triggered before could be restored and would
 * replay those records. Without checkpoints it is committed when the whole job ended
 * well (the runtime's notification with id INT64_MAX): a failed job commits nothing.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "runtime/connector.h"
#include "util/fs.h"
#include "util/vec.h"

#define END_ID INT64_MAX

typedef struct pending {
  int64_t id; /* END_ID: the last file */
} pending_t;

typedef struct fsink {
  char *dir;
} fsink_t;

typedef struct finst {
  const fsink_t *cfg;
  int subtask, parallelism;
  FILE *f;        /* the in-progress file, or NULL */
  char cur[4096]; /* its path */
  uint64_t seq;
  pending_t *pend;
  size_t n_pend, cap_pend;
  int64_t end_after; /* the last file waits for a checkpoint above this id */
  bool ended;
} finst_t;

static int sys_fail(fl_context_t *ctx, const char *what, const char *path) {
  return fl_ctx_fail(ctx, "file sink: %s %s: %s", what, path, strerror(errno));
}

static void name_pending(const finst_t *in, int s, int64_t id, char *buf, size_t n) {
  if (id == END_ID)
    snprintf(buf, n, "%s/.part-%d-end.pending", in->cfg->dir, s);
  else
    snprintf(buf, n, "%s/.part-%d-%lld.pending", in->cfg->dir, s, (long long)id);
}

static void name_final(const finst_t *in, int s, int64_t id, char *buf, size_t n) {
  if (id == END_ID)
    snprintf(buf, n, "%s/part-%d-end", in->cfg->dir, s);
  else
    snprintf(buf, n, "%s/part-%d-%lld", in->cfg->dir, s, (long long)id);
}

static int sync_dir(fl_context_t *ctx, const char *dir) {
  char why[600];
  return fl_fsync_dir(dir, why, sizeof why) ? fl_ctx_fail(ctx, "file sink: %s", why) : FL_OK;
}

/* Commits the pending file of subtask s at id: rename to the final name. A file already
 * committed (by an earlier attempt at the same restore) is fine. */
static int commit_one(fl_context_t *ctx, finst_t *in, int s, int64_t id) {
  char from[4200], to[4200];
  name_pending(in, s, id, from, sizeof from);
  name_final(in, s, id, to, sizeof to);
  if (rename(from, to) == 0) return FL_OK;
  if (errno == ENOENT && access(to, F_OK) == 0) return FL_OK;
  return sys_fail(ctx, "cannot commit", from);
}

/* "part-<s>-<id>" or "part-<s>-end" (id END_ID): true with s and id. */
static bool parse_final(const char *name, int *s, int64_t *id) {
  if (strncmp(name, "part-", 5) != 0) return false;
  char *end = NULL;
  long v = strtol(name + 5, &end, 10);
  if (end == name + 5 || *end != '-' || v < 0 || v > INT32_MAX) return false;
  *s = (int)v;
  const char *rest = end + 1;
  if (strcmp(rest, "end") == 0) {
    *id = END_ID;
    return true;
  }
  if (*rest < '0' || *rest > '9') return false;
  long long x = strtoll(rest, &end, 10);
  if (*end) return false;
  *id = x;
  return true;
}

/* Deletes the committed files of this subtask's old subtasks that come after the
 * checkpoint the job starts from (see the file comment). ends_kept(s): whether the
 * restored state lists old subtask s's end file (NULL: none does). */
static int take_back(fl_context_t *ctx, finst_t *in, int64_t restored, const bool *ends_kept,
                     size_t n_kept) {
  DIR *d = opendir(in->cfg->dir);
  if (!d) return sys_fail(ctx, "cannot list", in->cfg->dir);
  int rc = FL_OK;
  size_t n = 0;
  char first[300] = "";
  struct dirent *e;
  while ((e = readdir(d))) {
    int s;
    int64_t id;
    if (!parse_final(e->d_name, &s, &id) || s % in->parallelism != in->subtask) continue;
    if (id <= restored) continue;
    if (id == END_ID && ends_kept && (size_t)s < n_kept && ends_kept[s]) continue;
    char path[4400];
    snprintf(path, sizeof path, "%s/%s", in->cfg->dir, e->d_name);
    if (unlink(path) != 0 && errno != ENOENT) {
      rc = sys_fail(ctx, "cannot delete", path);
      break;
    }
    if (!n++) snprintf(first, sizeof first, "%s", e->d_name);
  }
  closedir(d);
  if (rc || !n) return rc;
  if (restored)
    fl_ctx_log(ctx, FL_LOG_WARN,
               "file sink: deleted %zu committed file(s) of %s (%s%s) written after "
               "checkpoint %lld, from which the job restores: their records are written again",
               n, in->cfg->dir, first, n > 1 ? ", ..." : "", (long long)restored);
  else
    fl_ctx_log(ctx, FL_LOG_WARN,
               "file sink: deleted %zu committed file(s) of %s (%s%s): the job starts without a "
               "checkpoint and writes everything again",
               n, in->cfg->dir, first, n > 1 ? ", ..." : "");
  return sync_dir(ctx, in->cfg->dir);
}

static int fs_open(fl_context_t *ctx, void *opaque, void **instance) {
  finst_t *in = calloc(1, sizeof *in);
  if (!in) return FL_ENOMEM;
  in->cfg = opaque;
  in->subtask = fl_ctx_subtask(ctx);
  in->parallelism = fl_ctx_parallelism(ctx);
  char why[600];
  if (fl_mkdir_p(in->cfg->dir, true, why, sizeof why) != 0) {
    free(in);
    return fl_ctx_fail(ctx, "file sink: %s", why);
  }
  if (!fl_ctx_restored_checkpoint_id(ctx)) { /* a restore takes back in fs_restore */
    int rc = take_back(ctx, in, 0, NULL, 0);
    if (rc) {
      free(in);
      return rc;
    }
  }
  *instance = in;
  return FL_OK;
}

static int ensure_file(fl_context_t *ctx, finst_t *in) {
  if (in->f) return FL_OK;
  snprintf(in->cur, sizeof in->cur, "%s/.part-%d-%llu.inprogress", in->cfg->dir, in->subtask,
           (unsigned long long)in->seq++);
  in->f = fopen(in->cur, "w");
  return in->f ? FL_OK : sys_fail(ctx, "cannot create", in->cur);
}

static int fs_write(fl_context_t *ctx, const fl_record_t *rec, void *instance) {
  finst_t *in = instance;
  if (in->ended) return fl_ctx_fail(ctx, "file sink: write after the end of input");
  int rc = ensure_file(ctx, in);
  if (rc) return rc;
  if ((rec->value_len && fwrite(rec->value, 1, rec->value_len, in->f) != rec->value_len) ||
      fputc('\n', in->f) == EOF)
    return sys_fail(ctx, "cannot write", in->cur);
  return FL_OK;
}

/* Closes the in-progress file durably as the pending file of id. */
static int seal(fl_context_t *ctx, finst_t *in, int64_t id) {
  if (!in->f) return FL_OK;
  FILE *f = in->f;
  in->f = NULL;
  if (fflush(f) != 0 || fsync(fileno(f)) != 0) {
    fclose(f);
    return sys_fail(ctx, "cannot flush", in->cur);
  }
  if (fclose(f) != 0) return sys_fail(ctx, "cannot close", in->cur);
  char to[4200];
  name_pending(in, in->subtask, id, to, sizeof to);
  if (rename(in->cur, to) != 0) return sys_fail(ctx, "cannot rename", in->cur);
  if (FL_VEC_PUSH(in->pend, in->n_pend, in->cap_pend, (pending_t){id})) return FL_ENOMEM;
  return sync_dir(ctx, in->cfg->dir);
}

/* Commits every pending file that checkpoint `upto` covers. */
static int commit_upto(fl_context_t *ctx, finst_t *in, int64_t upto) {
  size_t keep = 0;
  bool any = false;
  for (size_t i = 0; i < in->n_pend; i++) {
    pending_t p = in->pend[i];
    bool covered = p.id == END_ID ? upto > in->end_after : p.id <= upto;
    if (!covered) {
      in->pend[keep++] = p;
      continue;
    }
    int rc = commit_one(ctx, in, in->subtask, p.id);
    if (rc) return rc;
    any = true;
  }
  in->n_pend = keep;
  return any ? sync_dir(ctx, in->cfg->dir) : FL_OK;
}

static int fs_flush(fl_context_t *ctx, void *instance) {
  finst_t *in = instance;
  /* A failing job keeps its in-progress file uncommitted (a restore deletes it). */
  if (fl_ctx_job_failing(ctx)) {
    if (in->f) fflush(in->f);
    return FL_OK;
  }
  in->ended = true;
  int rc = seal(ctx, in, END_ID);
  if (rc) return rc;
  /* Committed by the first checkpoint triggered after this (the final one), or, without
   * checkpoints, when the whole job has ended well (id INT64_MAX). */
  in->end_after = fl_ctx_checkpoint_triggered(ctx);
  return FL_OK;
}

/* State: [u32 n] n x [i64 id] (pending files of this subtask). */
static int fs_snapshot(fl_context_t *ctx, void *instance, int64_t id, fl_buf_t *out) {
  finst_t *in = instance;
  if (id) {
    int rc = seal(ctx, in, id);
    if (rc) return rc;
  }
  uint32_t n = (uint32_t)in->n_pend;
  int rc = fl_buf_append(out, &n, sizeof n);
  for (size_t i = 0; i < in->n_pend && !rc; i++)
    rc = fl_buf_append(out, &in->pend[i].id, sizeof in->pend[i].id);
  return rc;
}

static int fs_complete(fl_context_t *ctx, void *instance, int64_t id) {
  return commit_upto(ctx, instance, id);
}

/* Deletes the in-progress and pending files of old subtask s. */
static int clean_subtask(fl_context_t *ctx, finst_t *in, int s) {
  DIR *d = opendir(in->cfg->dir);
  if (!d) return sys_fail(ctx, "cannot list", in->cfg->dir);
  char prefix[64];
  int pl = snprintf(prefix, sizeof prefix, ".part-%d-", s);
  struct dirent *e;
  int rc = FL_OK;
  while ((e = readdir(d))) {
    size_t len = strlen(e->d_name);
    if (strncmp(e->d_name, prefix, (size_t)pl) != 0) continue;
    bool tmp = (len > 11 && strcmp(e->d_name + len - 11, ".inprogress") == 0) ||
               (len > 8 && strcmp(e->d_name + len - 8, ".pending") == 0);
    if (!tmp) continue;
    char path[4400];
    snprintf(path, sizeof path, "%s/%s", in->cfg->dir, e->d_name);
    if (unlink(path) != 0 && errno != ENOENT) {
      rc = sys_fail(ctx, "cannot delete", path);
      break;
    }
  }
  closedir(d);
  return rc;
}

static int fs_restore(fl_context_t *ctx, void *instance, const fl_bytes_t *states, size_t n) {
  finst_t *in = instance;
  bool *ends = calloc(n ? n : 1, sizeof *ends);
  if (!ends) return FL_ENOMEM;
  for (size_t i = 0; i < n; i++) {
    if ((int)(i % (size_t)in->parallelism) != in->subtask || states[i].len < 4) continue;
    uint32_t cnt = 0;
    memcpy(&cnt, states[i].data, 4);
    for (uint32_t k = 0; k < cnt && 4 + ((size_t)k + 1) * 8 <= states[i].len; k++) {
      int64_t id;
      memcpy(&id, (const uint8_t *)states[i].data + 4 + (size_t)k * 8, 8);
      ends[i] |= id == END_ID;
    }
  }
  int trc = take_back(ctx, in, fl_ctx_restored_checkpoint_id(ctx), ends, n);
  free(ends);
  if (trc) return trc;
  for (size_t i = 0; i < n; i++) {
    if ((int)(i % (size_t)in->parallelism) != in->subtask) continue;
    const uint8_t *p = states[i].data;
    size_t len = states[i].len;
    uint32_t cnt = 0;
    if (len >= 4) memcpy(&cnt, p, 4);
    if (len && (len < 4 || len != 4 + (size_t)cnt * 8))
      return fl_ctx_fail(ctx, "file sink: the checkpoint state of subtask %zu is malformed", i);
    for (uint32_t k = 0; k < cnt; k++) {
      int64_t id;
      memcpy(&id, p + 4 + (size_t)k * 8, 8);
      int rc = commit_one(ctx, in, (int)i, id);
      if (rc) return rc;
    }
  }
  /* Whatever else old subtasks left uncommitted came after the restored checkpoint.
   * Subtasks of the old run beyond n may have left files too (a larger parallelism
   * than the checkpoint's): clean every index this subtask is responsible for, up to
   * the largest one present. */
  int max_s = -1;
  DIR *d = opendir(in->cfg->dir);
  if (!d) return sys_fail(ctx, "cannot list", in->cfg->dir);
  struct dirent *e;
  while ((e = readdir(d))) {
    int s;
    if (sscanf(e->d_name, ".part-%d-", &s) == 1 && s > max_s) max_s = s;
  }
  closedir(d);
  for (int s = in->subtask; s <= max_s; s += in->parallelism) {
    int rc = clean_subtask(ctx, in, s);
    if (rc) return rc;
  }
  return sync_dir(ctx, in->cfg->dir);
}

static void fs_close(void *instance) {
  finst_t *in = instance;
  if (!in) return;
  if (in->f) fclose(in->f);
  free(in->pend);
  free(in);
}

static void fs_destroy(void *opaque) {
  fsink_t *c = opaque;
  if (!c) return;
  free(c->dir);
  free(c);
}

int fl_stream_sink_files(fl_stream_t *in, const char *name, const char *dir) {
  if (!in) return FL_EINVAL;
  if (!dir || !*dir) {
    fl_env_builder_fail(fl_stream_env(in), FL_EINVAL, "sink '%s': the directory is empty",
                        name ? name : "files");
    return FL_EINVAL;
  }
  fsink_t *c = calloc(1, sizeof *c);
  if (c) c->dir = strdup(dir);
  if (!c || !c->dir) {
    fs_destroy(c);
    fl_env_builder_fail(fl_stream_env(in), FL_ENOMEM, "out of memory");
    return FL_ENOMEM;
  }
  static const fl_sink_fn_t fn = {.version = FL_SINK_FN_VERSION,
                                  .open = fs_open,
                                  .write = fs_write,
                                  .flush = fs_flush,
                                  .close = fs_close,
                                  .destroy = fs_destroy,
                                  .snapshot = fs_snapshot,
                                  .checkpoint_complete = fs_complete,
                                  .restore = fs_restore};
  return fl_stream_sink(in, name ? name : "files", &fn, c);
}
