/*
 * The exactly-once sink's transaction log (kafka_sink_int.h): one file per
 * transactional.id, <log_dir>/<transactional.id>.log, of lines
 *   intent <N> <tag>[ replaces <old tag> at <topic> <partition> <offset>]
 *   committed <N> <tag>[ replaces <old tag>]
 *   start <R>
 * appended with fsync around each commit (kafka_sink_producer.c) and read on restore
 * (kafka_sink_eos.c). "start R" marks a start that went on although it writes committed
 * output again (accept_duplicates; R the restored checkpoint, 0 for none): checkpoint
 * ids before it belong to an earlier history. A log is compacted to its last
 * LOG_KEEP_LINES lines once it exceeds LOG_COMPACT_LINES.
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "io/kafka_sink_int.h"
#include "util/fs.h"

#define LOG_COMPACT_LINES 1000
#define LOG_KEEP_LINES 100

void fl_ksink_log_path(const kinst_t *in, const char *txid, char *buf, size_t n) {
  snprintf(buf, n, "%s/%s.log", in->cfg->log_dir, txid);
}

/* Reads the whole log (NUL-terminated; "" if it does not exist). */
int fl_ksink_log_read(fl_context_t *ctx, kinst_t *in, const char *path, char **out) {
  *out = NULL;
  FILE *f = fopen(path, "r");
  if (!f) {
    if (errno != ENOENT) return fl_ksink_fail(ctx, in, "cannot open %s: %s", path, strerror(errno));
    *out = strdup("");
    return *out ? FL_OK : FL_ENOMEM;
  }
  size_t cap = 4096, len = 0;
  char *s = malloc(cap);
  int rc = FL_OK;
  while (s) {
    if (cap - len < 4096) {
      char *t = realloc(s, cap * 2);
      if (!t) {
        free(s);
        s = NULL;
        break;
      }
      s = t;
      cap *= 2;
    }
    size_t r = fread(s + len, 1, cap - len - 1, f);
    len += r;
    if (r == 0) break;
  }
  if (!s)
    rc = FL_ENOMEM;
  else if (ferror(f)) {
    rc = fl_ksink_fail(ctx, in, "cannot read %s: %s", path, strerror(errno));
    free(s);
  } else {
    s[len] = 0;
    *out = s;
  }
  fclose(f);
  return rc;
}

/* Rewrites the log keeping its last LOG_KEEP_LINES lines (temp + fsync + rename). */
static int log_compact(fl_context_t *ctx, kinst_t *in, const char *path) {
  char *s = NULL;
  int rc = fl_ksink_log_read(ctx, in, path, &s);
  if (rc) return rc;
  size_t len = strlen(s), lines = 0;
  const char *start = s + len;
  while (start > s) {
    const char *p = start - 1;
    if (p > s && *p == '\n') p--;
    while (p > s && p[-1] != '\n') p--;
    if (++lines > LOG_KEEP_LINES) break;
    start = p;
  }
  char why[600];
  if (fl_file_replace(path, start, strlen(start), why, sizeof why))
    rc = fl_ksink_fail(ctx, in, "cannot rewrite the transaction log: %s", why);
  if (!rc && strcmp(path, in->log_path) == 0)
    in->log_lines = lines > LOG_KEEP_LINES ? LOG_KEEP_LINES : lines;
  free(s);
  return rc;
}

/* Appends one line durably. */
int fl_ksink_log_append(fl_context_t *ctx, kinst_t *in, const char *path, const char *line) {
  int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) return fl_ksink_fail(ctx, in, "cannot open %s: %s", path, strerror(errno));
  size_t n = strlen(line);
  int rc = FL_OK;
  if (write(fd, line, n) != (ssize_t)n || fsync(fd) != 0)
    rc = fl_ksink_fail(ctx, in, "cannot append to %s: %s", path, strerror(errno));
  close(fd);
  if (rc) return rc;
  if (strcmp(path, in->log_path) == 0 && ++in->log_lines > LOG_COMPACT_LINES)
    rc = log_compact(ctx, in, path);
  return rc;
}

void fl_ksink_log_scan(char *s, const char *tag, logscan_t *r) {
  memset(r, 0, sizeof *r);
  char *save = NULL; /* subtasks restore concurrently: strtok_r */
  for (char *line = strtok_r(s, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
    char kind[16], t[700], rep[16] = "", old[700] = "", at[8] = "", topic[256] = "";
    long long n, part = -1, off = -1;
    int k = sscanf(line, "%15s %lld %699s %15s %699s %7s %255s %lld %lld", kind, &n, t, rep, old,
                   at, topic, &part, &off);
    if (k < 3) continue;
    bool mine = strcmp(t, tag) == 0 && k == 3;
    bool replaces = k >= 5 && strcmp(rep, "replaces") == 0 && strcmp(old, tag) == 0;
    if (strcmp(kind, "committed") == 0) {
      if (mine || replaces) r->committed = true;
      if (replaces && strcmp(r->rtag, t) == 0) r->rtag[0] = 0;
    } else if (strcmp(kind, "intent") == 0) {
      if (mine) r->intent = true;
      if (replaces && k == 9) {
        snprintf(r->rtag, sizeof r->rtag, "%s", t);
        snprintf(r->rtopic, sizeof r->rtopic, "%s", topic);
        r->rpart = (int32_t)part;
        r->roff = off;
      }
    }
  }
}

/* The transactional.id of a tag: what precedes its last two '/'. */
bool fl_ksink_tag_txid(const char *tag, char *out, size_t n) {
  const char *a = strrchr(tag, '/');
  if (!a) return false;
  const char *b = a - 1;
  while (b > tag && *b != '/') b--;
  if (b <= tag) return false;
  snprintf(out, n, "%.*s", (int)(b - tag), tag);
  return true;
}
/* ---------------------------------------------------------------------------------- */
/* Which logs say what was committed                                                   */

static int cmp_str(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

void fl_ksink_paths_free(char **paths) {
  for (size_t i = 0; paths && paths[i]; i++) free(paths[i]);
  free(paths);
}

/* Whether name is "<prefix>-<n>.log"; n in *sub. */
static bool log_name(const char *name, const char *prefix, long *sub) {
  size_t pl = strlen(prefix), nl = strlen(name);
  if (nl < pl + 6 || strncmp(name, prefix, pl) != 0 || name[pl] != '-') return false;
  if (strcmp(name + nl - 4, ".log") != 0) return false;
  long v = 0;
  for (const char *p = name + pl + 1; p < name + nl - 4; p++) {
    if (!isdigit((unsigned char)*p) || v > 100000000) return false;
    v = v * 10 + (*p - '0');
  }
  *sub = v;
  return true;
}

int fl_ksink_log_share(fl_context_t *ctx, kinst_t *in, char ***out) {
  *out = NULL;
  DIR *d = opendir(in->cfg->log_dir);
  if (!d) {
    if (errno == ENOENT) return (*out = calloc(1, sizeof **out)) ? FL_OK : FL_ENOMEM;
    return fl_ksink_fail(ctx, in, "cannot list %s: %s", in->cfg->log_dir, strerror(errno));
  }
  char **v = NULL;
  size_t n = 0;
  int rc = FL_OK;
  struct dirent *e;
  while ((e = readdir(d))) {
    long sub;
    if (!log_name(e->d_name, in->cfg->prefix, &sub) || sub % in->parallelism != in->subtask)
      continue;
    char **nv = realloc(v, (n + 2) * sizeof *nv);
    if (!nv) {
      rc = FL_ENOMEM;
      break;
    }
    v = nv;
    size_t l = strlen(in->cfg->log_dir) + strlen(e->d_name) + 2;
    if (!(v[n] = malloc(l))) {
      rc = FL_ENOMEM;
      break;
    }
    snprintf(v[n++], l, "%s/%s", in->cfg->log_dir, e->d_name);
    v[n] = NULL;
  }
  closedir(d);
  if (rc) {
    if (v) v[n] = NULL;
    fl_ksink_paths_free(v);
    return rc;
  }
  if (!v && !(v = calloc(1, sizeof *v))) return FL_ENOMEM;
  qsort(v, n, sizeof *v, cmp_str);
  *out = v;
  return FL_OK;
}

/* Adds id to the smallest distinct ids kept in c->later. */
static void add_later(fl_ksink_commits_t *c, int64_t id) {
  if (id > c->max_later) c->max_later = id;
  size_t k = 0;
  while (k < c->n_later && c->later[k] < id) k++;
  if (k < c->n_later && c->later[k] == id) return;
  if (k == FL_KSINK_LATER_SHOWN) {
    c->more = true;
    return;
  }
  if (c->n_later == FL_KSINK_LATER_SHOWN)
    c->more = true; /* the largest one drops out */
  else
    c->n_later++;
  memmove(&c->later[k + 1], &c->later[k], (c->n_later - 1 - k) * sizeof *c->later);
  c->later[k] = id;
}

void fl_ksink_log_commits(const char *text, int64_t after, fl_ksink_commits_t *c) {
  /* the history that counts for `later` begins after the last start line */
  const char *from = text;
  for (const char *p = text; (p = strstr(p, "start ")) != NULL; p++)
    if (p == text || p[-1] == '\n') from = p;
  for (const char *line = text; line && *line;) {
    const char *nl = strchr(line, '\n');
    char kind[16];
    long long id;
    if (sscanf(line, "%15s %lld", kind, &id) == 2 &&
        (strcmp(kind, "intent") == 0 || strcmp(kind, "committed") == 0)) {
      if (id > c->newest) c->newest = id;
      if (line >= from && id > after) add_later(c, id);
    }
    line = nl ? nl + 1 : NULL;
  }
}

int fl_ksink_log_touch(fl_context_t *ctx, kinst_t *in) {
  int fd = open(in->log_path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) return fl_ksink_fail(ctx, in, "cannot create %s: %s", in->log_path, strerror(errno));
  close(fd);
  return FL_OK;
}
