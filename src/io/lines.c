/*
 * Line-oriented source and sink (fl_source_lines, fl_stream_sink_lines).
 *
 * Both are built on the public fl_source / fl_stream_sink function tables, so they run
 * like any user connector and need nothing from the runtime's internals.
 *
 * Source: one reader (parallel = 0) in file order. Reads go into one buffer in large
 * chunks (at least FL_LINES_READ_MIN bytes per read(2)); complete lines are emitted
 * straight out of the buffer, so there is no per-line allocation. The buffer grows only
 * for lines longer than it, up to the 16 MiB line limit. Files that are not regular
 * (stdin, pipes, sockets) are polled before each read so that a worker never blocks on
 * them: when nothing is readable the source hands the fd to the worker loop and returns
 * FL_SOURCE_WAIT.
 *
 * Sink: each subtask fills its own buffer with "value\n" and writes whole buffers under
 * a mutex shared by the sink's subtasks, so lines of different subtasks never
 * interleave inside one line, while the common path (appending to the buffer) takes no
 * lock. Sinks writing to stdout share one process-wide mutex for the same reason.
 */
#define _GNU_SOURCE /* GNU strerror_r: thread-safe, returns the message */

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "flink.h"
#include "runtime/connector.h"

#define FL_LINES_MAX_LINE ((size_t)16 << 20)  /* longest accepted line, without EOL */
#define FL_LINES_READ_MIN ((size_t)256 << 10) /* smallest read(2) request */
#define FL_LINES_BUF_INIT ((size_t)1 << 20)
/* A line at the limit plus "\r\n" must fit, with room for one more full read. */
#define FL_LINES_BUF_MAX (FL_LINES_MAX_LINE + 2 + FL_LINES_READ_MIN)

#define FL_SINK_FLUSH_AT ((size_t)64 << 10) /* write the buffer once it holds this much */
#define FL_SINK_BUF_CAP ((size_t)128 << 10)

static const char *lines_strerror(int err, char *buf, size_t size) {
  return strerror_r(err, buf, size);
}

/* ---------------------------------------------------------------------------------- */
/* Source                                                                             */

typedef struct lines_src_conf {
  char *path;
} lines_src_conf_t;

typedef struct lines_reader {
  const char *path; /* borrowed from the conf, which outlives every instance */
  int fd;
  bool own_fd;     /* false for stdin */
  bool poll_first; /* not a regular file: reads could block */
  bool eof;
  uint8_t *buf;
  size_t cap;
  size_t start;   /* first byte of the next line */
  size_t scan;    /* bytes in [start, scan) hold no '\n' */
  size_t end;     /* end of the data read so far */
  size_t line_no; /* lines emitted so far */
  uint64_t base;  /* file offset of buf[0] */
} lines_reader_t;

static void lines_src_close(void *instance) {
  lines_reader_t *r = instance;
  if (r == NULL) return;
  if (r->own_fd && r->fd >= 0) close(r->fd);
  free(r->buf);
  free(r);
}

static int lines_src_open(fl_context_t *ctx, void *opaque, void **instance) {
  const lines_src_conf_t *conf = opaque;
  lines_reader_t *r = NULL;
  char ebuf[128];
  struct stat st;
  int rc = FL_OK;

  r = calloc(1, sizeof(*r));
  if (r == NULL) {
    rc = FL_ENOMEM;
    goto done;
  }
  r->fd = -1;
  r->path = conf->path;
  if (strcmp(conf->path, "-") == 0) {
    r->fd = STDIN_FILENO;
  } else {
    do {
      r->fd = open(conf->path, O_RDONLY | O_CLOEXEC);
    } while (r->fd < 0 && errno == EINTR);
    if (r->fd < 0) {
      int e = errno;
      fl_ctx_fail(ctx, "cannot open %s: %s", conf->path, lines_strerror(e, ebuf, sizeof(ebuf)));
      rc = FL_EIO;
      goto done;
    }
    r->own_fd = true;
  }
  if (fstat(r->fd, &st) != 0) {
    int e = errno;
    fl_ctx_fail(ctx, "cannot stat %s: %s", conf->path, lines_strerror(e, ebuf, sizeof(ebuf)));
    rc = FL_EIO;
    goto done;
  }
  if (S_ISDIR(st.st_mode)) {
    fl_ctx_fail(ctx, "cannot read %s: %s", conf->path, lines_strerror(EISDIR, ebuf, sizeof(ebuf)));
    rc = FL_EIO;
    goto done;
  }
  r->poll_first = !S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode);
  r->cap = FL_LINES_BUF_INIT;
  r->buf = malloc(r->cap);
  if (r->buf == NULL) {
    rc = FL_ENOMEM;
    goto done;
  }
  *instance = r;
  r = NULL;
done:
  lines_src_close(r);
  return rc;
}

static int lines_too_long(fl_context_t *ctx, const lines_reader_t *r) {
  return fl_ctx_fail(ctx, "%s: line %zu is longer than %zu bytes (16 MiB)", r->path, r->line_no + 1,
                     FL_LINES_MAX_LINE);
}

/* Makes room for at least FL_LINES_READ_MIN bytes after r->end: first by moving the
 * pending partial line to the front, then by growing the buffer. */
static int lines_make_room(lines_reader_t *r) {
  if (r->cap - r->end >= FL_LINES_READ_MIN) return FL_OK;
  if (r->start > 0) {
    size_t pending = r->end - r->start;
    memmove(r->buf, r->buf + r->start, pending);
    r->base += r->start;
    r->scan -= r->start;
    r->end = pending;
    r->start = 0;
  }
  if (r->cap - r->end < FL_LINES_READ_MIN) {
    size_t ncap = r->cap * 2;
    uint8_t *nb;
    if (ncap > FL_LINES_BUF_MAX) ncap = FL_LINES_BUF_MAX;
    /* The caller checked the line limit, so the pending bytes plus one read fit. */
    assert(ncap - r->end >= FL_LINES_READ_MIN);
    nb = realloc(r->buf, ncap);
    if (nb == NULL) return FL_ENOMEM;
    r->buf = nb;
    r->cap = ncap;
  }
  return FL_OK;
}

/* One read(2). Returns 1 when bytes (or EOF) arrived, 0 when a non-regular file has
 * nothing to read now, or a negative error. */
static int lines_fill(fl_context_t *ctx, lines_reader_t *r) {
  char ebuf[128];
  ssize_t n;
  int rc;

  if (r->poll_first) {
    struct pollfd pfd = {.fd = r->fd, .events = POLLIN};
    do {
      rc = poll(&pfd, 1, 0);
    } while (rc < 0 && errno == EINTR);
    if (rc < 0) {
      int e = errno;
      return fl_ctx_fail(ctx, "cannot poll %s: %s", r->path, lines_strerror(e, ebuf, sizeof(ebuf)));
    }
    if (rc == 0) return 0;
  }
  rc = lines_make_room(r);
  if (rc != FL_OK) return rc;
  do {
    n = read(r->fd, r->buf + r->end, r->cap - r->end);
  } while (n < 0 && errno == EINTR);
  if (n < 0) {
    int e = errno;
    if (e == EAGAIN || e == EWOULDBLOCK) return 0;
    fl_ctx_fail(ctx, "cannot read %s: %s", r->path, lines_strerror(e, ebuf, sizeof(ebuf)));
    return FL_EIO;
  }
  if (n == 0) r->eof = true;
  r->end += (size_t)n;
  return 1;
}

static int lines_emit(fl_context_t *ctx, lines_reader_t *r, size_t len) {
  int rc = fl_emit(ctx, "", 0, r->buf + r->start, len, FL_TS_NONE);
  r->line_no++;
  return rc;
}

static int lines_src_run(fl_context_t *ctx, void *instance) {
  lines_reader_t *r = instance;
  size_t budget = fl_ctx_source_budget(ctx);
  size_t emitted = 0;
  int rc;

  while (emitted < budget) {
    uint8_t *nl = NULL;
    if (r->scan < r->end) nl = memchr(r->buf + r->scan, '\n', r->end - r->scan);
    if (nl != NULL) {
      size_t len = (size_t)(nl - (r->buf + r->start));
      size_t next = len + 1;
      if (len > 0 && r->buf[r->start + len - 1] == '\r') len--;
      if (len > FL_LINES_MAX_LINE) return lines_too_long(ctx, r);
      rc = lines_emit(ctx, r, len);
      if (rc != FL_OK) return rc;
      r->start += next;
      r->scan = r->start;
      emitted++;
      continue;
    }
    r->scan = r->end;
    if (r->eof) {
      size_t len = r->end - r->start;
      if (len == 0) return FL_SOURCE_END;
      if (len > FL_LINES_MAX_LINE) return lines_too_long(ctx, r);
      rc = lines_emit(ctx, r, len);
      if (rc != FL_OK) return rc;
      r->start = r->end;
      r->scan = r->end;
      return FL_SOURCE_END;
    }
    /* The pending bytes may still end with '\r' before a '\n' still to come. */
    if (r->end - r->start > FL_LINES_MAX_LINE + 1) return lines_too_long(ctx, r);
    rc = lines_fill(ctx, r);
    if (rc < 0) return rc;
    if (rc == 0) {
      if (emitted > 0) return FL_SOURCE_MORE;
      rc = fl_ctx_source_wait_fd(ctx, r->fd);
      if (rc != FL_OK) return rc;
      return FL_SOURCE_WAIT;
    }
  }
  return FL_SOURCE_MORE;
}

/* Position: [u64 file offset of the next line][u64 lines emitted]. */
static int lines_src_snapshot(fl_context_t *ctx, void *instance, fl_buf_t *out) {
  lines_reader_t *r = instance;
  uint64_t pos[2] = {r->base + r->start, r->line_no};
  return fl_buf_append(out, pos, sizeof pos);
}

static int lines_src_restore(fl_context_t *ctx, void *instance, const fl_bytes_t *states,
                             size_t n) {
  lines_reader_t *r = instance;
  uint64_t pos[2];
  char ebuf[128];
  if (n != 1 || states[0].len != sizeof pos)
    return fl_ctx_fail(ctx, "%s: the restored position is malformed (%zu bytes)", r->path,
                       n ? states[0].len : 0);
  memcpy(pos, states[0].data, sizeof pos);
  if (r->poll_first)
    return fl_ctx_fail(ctx, "%s: cannot go back to byte %llu of a pipe or terminal", r->path,
                       (unsigned long long)pos[0]);
  if (lseek(r->fd, (off_t)pos[0], SEEK_SET) < 0) {
    int e = errno;
    return fl_ctx_fail(ctx, "%s: cannot seek to byte %llu: %s", r->path, (unsigned long long)pos[0],
                       lines_strerror(e, ebuf, sizeof(ebuf)));
  }
  r->base = pos[0];
  r->line_no = (size_t)pos[1];
  r->start = r->scan = r->end = 0;
  r->eof = false;
  return FL_OK;
}

static void lines_src_destroy(void *opaque) {
  lines_src_conf_t *conf = opaque;
  if (conf == NULL) return;
  free(conf->path);
  free(conf);
}

fl_stream_t *fl_source_lines(fl_env_t *env, const char *name, const char *path) {
  static const fl_source_fn_t fn = {
      .version = FL_SOURCE_FN_VERSION,
      .open = lines_src_open,
      .run = lines_src_run,
      .close = lines_src_close,
      .destroy = lines_src_destroy,
      .snapshot = lines_src_snapshot,
      .restore = lines_src_restore,
  };
  lines_src_conf_t *conf = NULL;
  fl_stream_t *s;

  if (env == NULL) return NULL;
  if (name == NULL) name = "lines";
  if (path == NULL || path[0] == '\0') {
    fl_env_builder_fail(env, FL_EINVAL, "%s: the path of a lines source is %s", name,
                        path == NULL ? "NULL" : "empty");
    return NULL;
  }
  conf = calloc(1, sizeof(*conf));
  if (conf == NULL || (conf->path = strdup(path)) == NULL) {
    lines_src_destroy(conf);
    fl_env_builder_fail(env, FL_ENOMEM, "%s: out of memory", name);
    return NULL;
  }
  /* From here on the env owns conf: fl_source() calls destroy even when it fails. */
  s = fl_source(env, name, &fn, conf, 0);
  return s;
}

/* ---------------------------------------------------------------------------------- */
/* Sink                                                                               */

/* Every sink writing to stdout shares this lock, so two sinks of one job (results and
 * late data, say) never interleave inside a line. */
static pthread_mutex_t lines_stdout_mu = PTHREAD_MUTEX_INITIALIZER;

typedef struct lines_sink_shared {
  char *path;
  pthread_mutex_t mu;   /* guards fd, opened, open_errno and the writes */
  pthread_mutex_t *wmu; /* the lock writes take: &mu, or the stdout lock */
  int fd;
  bool is_stdout;
  bool opened; /* the file was opened (or failed to) by the first subtask */
  int open_errno;
} lines_sink_shared_t;

typedef struct lines_sink_inst {
  lines_sink_shared_t *sh;
  uint8_t *buf;
  size_t len;
  size_t cap;
} lines_sink_inst_t;

static int lines_write_all(int fd, const uint8_t *p, size_t n) {
  while (n > 0) {
    ssize_t w = write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    if (w == 0) return EIO;
    p += w;
    n -= (size_t)w;
  }
  return 0;
}

/* Writes the buffer, then (optional) extra bytes and a newline, under the write lock so
 * that all of it stays together. Returns 0 or an errno value. */
static int lines_sink_write_out(lines_sink_inst_t *in, const void *extra, size_t extra_len) {
  lines_sink_shared_t *sh = in->sh;
  int err = 0;

  pthread_mutex_lock(sh->wmu);
  if (in->len > 0) err = lines_write_all(sh->fd, in->buf, in->len);
  if (err == 0 && extra != NULL) {
    err = lines_write_all(sh->fd, extra, extra_len);
    if (err == 0) err = lines_write_all(sh->fd, (const uint8_t *)"\n", 1);
  }
  pthread_mutex_unlock(sh->wmu);
  in->len = 0;
  return err;
}

static int lines_write_failed(fl_context_t *ctx, const lines_sink_shared_t *sh, int err) {
  char ebuf[128];
  fl_ctx_fail(ctx, "cannot write %s: %s", sh->is_stdout ? "stdout" : sh->path,
              lines_strerror(err, ebuf, sizeof(ebuf)));
  return FL_EIO;
}

static void lines_sink_close(void *instance) {
  lines_sink_inst_t *in = instance;
  if (in == NULL) return;
  /* Normally flush() emptied the buffer; after a failure elsewhere in the job this
   * still writes what reached the sink (best effort: nobody to report errors to). */
  if (in->len > 0) (void)lines_sink_write_out(in, NULL, 0);
  free(in->buf);
  free(in);
}

static int lines_sink_open(fl_context_t *ctx, void *opaque, void **instance) {
  lines_sink_shared_t *sh = opaque;
  lines_sink_inst_t *in = NULL;
  char ebuf[128];
  int rc = FL_OK;
  int err;

  /* The first subtask creates (truncates) the file; the others share its fd. */
  pthread_mutex_lock(&sh->mu);
  if (!sh->opened) {
    sh->opened = true;
    if (sh->is_stdout) {
      sh->fd = STDOUT_FILENO;
    } else {
      do {
        sh->fd = open(sh->path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
      } while (sh->fd < 0 && errno == EINTR);
      if (sh->fd < 0) sh->open_errno = errno;
    }
  }
  err = sh->open_errno;
  pthread_mutex_unlock(&sh->mu);
  if (err != 0) {
    fl_ctx_fail(ctx, "cannot open %s for writing: %s", sh->path,
                lines_strerror(err, ebuf, sizeof(ebuf)));
    rc = FL_EIO;
    goto done;
  }
  in = calloc(1, sizeof(*in));
  if (in == NULL) {
    rc = FL_ENOMEM;
    goto done;
  }
  in->sh = sh;
  in->cap = FL_SINK_BUF_CAP;
  in->buf = malloc(in->cap);
  if (in->buf == NULL) {
    rc = FL_ENOMEM;
    goto done;
  }
  *instance = in;
  in = NULL;
done:
  lines_sink_close(in);
  return rc;
}

static int lines_sink_write(fl_context_t *ctx, const fl_record_t *rec, void *instance) {
  lines_sink_inst_t *in = instance;
  size_t need = rec->value_len + 1;
  int err;

  if (need > in->cap - in->len) {
    /* A line of more than half the buffer goes out directly behind the buffer;
     * otherwise the buffer is at least half full and is written first. */
    if (need > in->cap / 2) {
      err = lines_sink_write_out(in, rec->value, rec->value_len);
      return err == 0 ? FL_OK : lines_write_failed(ctx, in->sh, err);
    }
    err = lines_sink_write_out(in, NULL, 0);
    if (err != 0) return lines_write_failed(ctx, in->sh, err);
  }
  if (rec->value_len > 0) memcpy(in->buf + in->len, rec->value, rec->value_len);
  in->buf[in->len + rec->value_len] = '\n';
  in->len += need;
  if (in->len >= FL_SINK_FLUSH_AT) {
    err = lines_sink_write_out(in, NULL, 0);
    if (err != 0) return lines_write_failed(ctx, in->sh, err);
  }
  return FL_OK;
}

static int lines_sink_flush(fl_context_t *ctx, void *instance) {
  lines_sink_inst_t *in = instance;
  int err;
  if (in->len == 0) return FL_OK;
  err = lines_sink_write_out(in, NULL, 0);
  return err == 0 ? FL_OK : lines_write_failed(ctx, in->sh, err);
}

static void lines_sink_destroy(void *opaque) {
  lines_sink_shared_t *sh = opaque;
  if (sh == NULL) return;
  if (!sh->is_stdout && sh->fd >= 0) close(sh->fd);
  pthread_mutex_destroy(&sh->mu);
  free(sh->path);
  free(sh);
}

int fl_stream_sink_lines(fl_stream_t *in, const char *name, const char *path) {
  static const fl_sink_fn_t fn = {
      .version = FL_SINK_FN_VERSION,
      .open = lines_sink_open,
      .write = lines_sink_write,
      .flush = lines_sink_flush,
      .close = lines_sink_close,
      .destroy = lines_sink_destroy,
  };
  lines_sink_shared_t *sh = NULL;

  if (in == NULL) return FL_EINVAL;
  if (name == NULL) name = "lines sink";
  if (path == NULL || path[0] == '\0') {
    fl_env_builder_fail(fl_stream_env(in), FL_EINVAL, "%s: the path of a lines sink is %s", name,
                        path == NULL ? "NULL" : "empty");
    return FL_EINVAL;
  }
  sh = calloc(1, sizeof(*sh));
  if (sh == NULL || (sh->path = strdup(path)) == NULL) {
    free(sh);
    fl_env_builder_fail(fl_stream_env(in), FL_ENOMEM, "%s: out of memory", name);
    return FL_ENOMEM;
  }
  sh->fd = -1;
  sh->is_stdout = strcmp(path, "-") == 0;
  pthread_mutex_init(&sh->mu, NULL);
  sh->wmu = sh->is_stdout ? &lines_stdout_mu : &sh->mu;
  /* From here on the env owns sh: fl_stream_sink() calls destroy even when it fails. */
  return fl_stream_sink(in, name, &fn, sh);
}
