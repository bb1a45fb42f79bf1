/*
 * Line-oriented source and sink (fl_source_lines[_opts], fl_stream_sink_lines).
 *
 * Both are built on the public fl_source / fl_stream_sink function tables, so they run
 * like any user connector and need nothing from the runtime's internals.
 *
 * Source: one reader (parallel = 0) in file order. Reads go into one buffer in large
 * chunks (at least FL_LINES_READ_MIN bytes per read(2)); complete lines are emitted
 * straight out of the buffer, so there is no per-line allocation. The buffer grows only
 * for lines longer than it, up to the line limit (max_line_bytes). A line that outgrows
 * the limit is never held whole: unless the policy is to fail, the reader keeps its
 * first bytes for a dead letter and then reads and discards up to its end, so memory
 * stays bounded by the limit whatever the input. Files that are not regular (stdin,
 * pipes, sockets) are polled before each read so that a worker never blocks on them:
 * when nothing is readable the source hands the fd to the worker loop and returns
 * FL_SOURCE_WAIT.
 *
 * A line that is too long, or that the parse function fails, follows the error policy
 * like a message the Kafka source cannot deserialize: the job fails naming the input
 * and the line number, or the line is skipped, or it becomes a dead letter on a side
 * output. Either way the position a checkpoint records moves past it once it has been
 * handled, so a job restored from a later checkpoint does not meet it again.
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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "flink.h"
#include "runtime/connector.h"

#define FL_LINES_MAX_LINE ((size_t)16 << 20)      /* default line limit, without EOL */
#define FL_LINES_MAX_LINE_LIMIT ((size_t)1 << 30) /* the largest limit one may set */
#define FL_LINES_READ_MIN ((size_t)256 << 10)     /* smallest read(2) request */
#define FL_LINES_BUF_INIT ((size_t)1 << 20)
#define FL_LINES_HEAD_DEFAULT ((size_t)4096) /* bytes of an over-long line a dead letter keeps */

/* A dead letter's key: this header, then the error text and a NUL. */
#define FL_LINES_DL_MAGIC 0x4c44464cu /* "FLDL" */
typedef struct lines_dl_hdr {
  uint32_t magic;
  uint32_t error_len; /* without the NUL */
  uint64_t line_no;
  uint64_t offset;
  uint64_t line_len;
} lines_dl_hdr_t;

#define FL_SINK_FLUSH_AT ((size_t)64 << 10) /* write the buffer once it holds this much */
#define FL_SINK_BUF_CAP ((size_t)128 << 10)

static const char *lines_strerror(int err, char *buf, size_t size) {
  return strerror_r(err, buf, size);
}

/* ---------------------------------------------------------------------------------- */
/* Source                                                                             */

typedef struct lines_src_conf {
  char *path;
  const char *shown; /* the path in messages: "stdin" for "-" */
  size_t max_line;
  size_t head_max;
  fl_lines_parse_fn parse;
  void *parse_opaque;
  void (*parse_destroy)(void *opaque);
  fl_lines_error_policy_t on_error;
  const fl_output_tag_t *dead_letter;
} lines_src_conf_t;

typedef struct lines_reader {
  const lines_src_conf_t *conf; /* outlives every instance */
  int fd;
  bool own_fd;     /* false for stdin */
  bool poll_first; /* not a regular file: reads could block */
  bool eof;
  uint8_t *buf;
  size_t cap;
  size_t buf_max;   /* a line at the limit plus "\r\n", with room for one more full read */
  size_t start;     /* first byte of the next line */
  size_t scan;      /* bytes in [start, scan) hold no '\n' */
  size_t end;       /* end of the data read so far */
  uint64_t line_no; /* lines handled so far (emitted, dropped or bad) */
  uint64_t base;    /* file offset of buf[0] */
  /* An over-long line being discarded: where it began, how long it is so far, whether
   * its last byte so far is '\r', and its first bytes for the dead letter. */
  bool discarding;
  uint64_t long_offset;
  uint64_t long_len;
  bool long_cr;
  uint8_t *head;
  size_t head_len;
  uint8_t *dl_key; /* a dead letter's key, reused */
  size_t dl_key_cap;
} lines_reader_t;

static void lines_src_close(void *instance) {
  lines_reader_t *r = instance;
  if (r == NULL) return;
  if (r->own_fd && r->fd >= 0) close(r->fd);
  free(r->buf);
  free(r->head);
  free(r->dl_key);
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
  r->conf = conf;
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
    fl_ctx_fail(ctx, "cannot stat %s: %s", conf->shown, lines_strerror(e, ebuf, sizeof(ebuf)));
    rc = FL_EIO;
    goto done;
  }
  if (S_ISDIR(st.st_mode)) {
    fl_ctx_fail(ctx, "cannot read %s: %s", conf->shown, lines_strerror(EISDIR, ebuf, sizeof(ebuf)));
    rc = FL_EIO;
    goto done;
  }
  r->poll_first = !S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode);
  r->buf_max = conf->max_line + 2 + FL_LINES_READ_MIN;
  r->cap = FL_LINES_BUF_INIT < r->buf_max ? FL_LINES_BUF_INIT : r->buf_max;
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
    if (ncap > r->buf_max) ncap = r->buf_max;
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
      return fl_ctx_fail(ctx, "cannot poll %s: %s", r->conf->shown,
                         lines_strerror(e, ebuf, sizeof(ebuf)));
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
    fl_ctx_fail(ctx, "cannot read %s: %s", r->conf->shown, lines_strerror(e, ebuf, sizeof(ebuf)));
    return FL_EIO;
  }
  if (n == 0) r->eof = true;
  r->end += (size_t)n;
  return 1;
}

/* A bad line (line_no, starting at byte offset, line_len bytes long, of which the
 * first kept are at data) under the error policy; why is the sentence for it. */
static int lines_bad(fl_context_t *ctx, lines_reader_t *r, const void *data, size_t kept,
                     uint64_t line_len, uint64_t line_no, uint64_t offset, const char *why) {
  const lines_src_conf_t *c = r->conf;
  lines_dl_hdr_t h;
  size_t why_len, need;
  fl_record_t dl;
  int rc;

  switch (c->on_error) {
  case FL_LINES_ON_ERROR_SKIP:
    /* A counter that cannot be registered (64 names) is not worth failing for. */
    (void)fl_ctx_counter_add(ctx, "lines-skipped", 1);
    return FL_OK;
  case FL_LINES_ON_ERROR_DEAD_LETTER:
    why_len = strlen(why);
    need = sizeof(h) + why_len + 1;
    if (need > r->dl_key_cap) {
      uint8_t *k = realloc(r->dl_key, need);
      if (k == NULL) return FL_ENOMEM;
      r->dl_key = k;
      r->dl_key_cap = need;
    }
    h = (lines_dl_hdr_t){.magic = FL_LINES_DL_MAGIC,
                         .error_len = (uint32_t)why_len,
                         .line_no = line_no,
                         .offset = offset,
                         .line_len = line_len};
    memcpy(r->dl_key, &h, sizeof(h));
    memcpy(r->dl_key + sizeof(h), why, why_len + 1);
    dl = (fl_record_t){.key = r->dl_key,
                       .key_len = need,
                       .value = kept > 0 ? data : "",
                       .value_len = kept,
                       .timestamp = FL_TS_NONE};
    rc = fl_emit_side(ctx, c->dead_letter, &dl);
    if (rc == FL_OK) (void)fl_ctx_counter_add(ctx, "lines-dead-lettered", 1);
    return rc;
  case FL_LINES_ON_ERROR_FAIL:
  default: return fl_ctx_fail(ctx, "%s: line %llu: %s", c->shown, (unsigned long long)line_no, why);
  }
}

static int lines_too_long_fail(fl_context_t *ctx, const lines_reader_t *r) {
  return fl_ctx_fail(ctx, "%s: line %llu is longer than %zu bytes (max_line_bytes)", r->conf->shown,
                     (unsigned long long)r->line_no + 1, r->conf->max_line);
}

static int lines_too_long(fl_context_t *ctx, lines_reader_t *r, const void *data, size_t kept,
                          uint64_t line_len, uint64_t offset) {
  char why[128];
  snprintf(why, sizeof(why), "longer than %zu bytes (%llu bytes)", r->conf->max_line,
           (unsigned long long)line_len);
  return lines_bad(ctx, r, data, kept, line_len, r->line_no + 1, offset, why);
}

/* Emits the line buf[start, start + len) (a whole line within the limit) through the
 * parse function, if any. Counts it, whatever became of it. */
static int lines_emit(fl_context_t *ctx, lines_reader_t *r, size_t len) {
  const lines_src_conf_t *c = r->conf;
  const uint8_t *line = r->buf + r->start;
  uint64_t line_no = ++r->line_no;
  fl_record_t out = {
      .key = "", .key_len = 0, .value = line, .value_len = len, .timestamp = FL_TS_NONE};
  char *why;
  int rc;

  if (c->parse == NULL) return fl_emit_record(ctx, &out);
  rc = c->parse(ctx, line, len, line_no, &out, c->parse_opaque);
  if (rc > 0) return fl_emit_record(ctx, &out);
  if (rc == 0) return FL_OK;
  why = fl_ctx_take_failure(ctx);
  if (c->on_error == FL_LINES_ON_ERROR_FAIL) {
    fl_ctx_fail(ctx, "%s: line %llu: %s", c->shown, (unsigned long long)line_no,
                why != NULL ? why : fl_strerror(rc));
  } else {
    rc = lines_bad(ctx, r, line, len, len, line_no, r->base + r->start,
                   why != NULL ? why : fl_strerror(rc));
  }
  free(why);
  return rc;
}

/* Starts discarding the pending bytes of a line over the limit (the policy is not to
 * fail): they are counted and the first ones kept for the dead letter. */
static int lines_start_discard(lines_reader_t *r) {
  if (r->head == NULL && r->conf->on_error == FL_LINES_ON_ERROR_DEAD_LETTER &&
      r->conf->head_max > 0) {
    r->head = malloc(r->conf->head_max);
    if (r->head == NULL) return FL_ENOMEM;
  }
  r->discarding = true;
  r->long_offset = r->base + r->start;
  r->long_len = 0;
  r->long_cr = false;
  r->head_len = 0;
  return FL_OK;
}

/* Discards buf[start, upto) of the over-long line. */
static void lines_discard(lines_reader_t *r, size_t upto) {
  size_t n = upto - r->start;
  if (n == 0) return;
  if (r->head != NULL && r->head_len < r->conf->head_max) {
    size_t k = r->conf->head_max - r->head_len;
    if (k > n) k = n;
    memcpy(r->head + r->head_len, r->buf + r->start, k);
    r->head_len += k;
  }
  r->long_len += n;
  r->long_cr = r->buf[upto - 1] == '\r';
  r->start = r->scan = upto;
}

/* The over-long line ended (at a '\n' when terminated, else at the end of the input). */
static int lines_end_discard(fl_context_t *ctx, lines_reader_t *r, bool terminated) {
  uint64_t len = r->long_len;
  size_t kept = r->head_len;
  int rc;
  if (terminated && r->long_cr) len--;
  if (kept > len) kept = (size_t)len;
  rc = lines_too_long(ctx, r, r->head, kept, len, r->long_offset);
  r->line_no++;
  r->discarding = false;
  return rc;
}

/* A whole line of len bytes at r->start: emitted, or, longer than max, handled by the
 * error policy (read whole in one go: it is in the buffer, which bounds it anyway). */
static int lines_complete(fl_context_t *ctx, lines_reader_t *r, size_t len, size_t max) {
  if (len <= max) return lines_emit(ctx, r, len);
  if (r->conf->on_error == FL_LINES_ON_ERROR_FAIL) return lines_too_long_fail(ctx, r);
  int rc =
      lines_too_long(ctx, r, r->buf + r->start, len < r->conf->head_max ? len : r->conf->head_max,
                     len, r->base + r->start);
  r->line_no++;
  return rc;
}

static int lines_src_run(fl_context_t *ctx, void *instance) {
  lines_reader_t *r = instance;
  const size_t max = r->conf->max_line;
  size_t budget = fl_ctx_source_budget(ctx);
  size_t emitted = 0;
  int rc;

  while (emitted < budget) {
    uint8_t *nl = NULL;
    if (r->scan < r->end) nl = memchr(r->buf + r->scan, '\n', r->end - r->scan);
    if (r->discarding) {
      if (nl != NULL) {
        lines_discard(r, (size_t)(nl - r->buf));
        r->start = r->scan = r->start + 1;
        rc = lines_end_discard(ctx, r, true);
        if (rc != FL_OK) return rc;
        emitted++;
        continue;
      }
      lines_discard(r, r->end);
      if (r->eof) {
        rc = lines_end_discard(ctx, r, false);
        return rc != FL_OK ? rc : FL_SOURCE_END;
      }
    } else if (nl != NULL) {
      size_t len = (size_t)(nl - (r->buf + r->start));
      size_t next = len + 1;
      if (len > 0 && r->buf[r->start + len - 1] == '\r') len--;
      rc = lines_complete(ctx, r, len, max);
      if (rc != FL_OK) return rc;
      r->start += next;
      r->scan = r->start;
      emitted++;
      continue;
    } else {
      r->scan = r->end;
      if (r->eof) {
        size_t len = r->end - r->start;
        if (len == 0) return FL_SOURCE_END;
        rc = lines_complete(ctx, r, len, max);
        if (rc != FL_OK) return rc;
        r->start = r->end;
        r->scan = r->end;
        return FL_SOURCE_END;
      }
      /* The pending bytes may still end with '\r' before a '\n' still to come. */
      if (r->end - r->start > max + 1) {
        if (r->conf->on_error == FL_LINES_ON_ERROR_FAIL) return lines_too_long_fail(ctx, r);
        rc = lines_start_discard(r);
        if (rc != FL_OK) return rc;
        continue;
      }
    }
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

/* Position: [u64 file offset of the next line][u64 lines handled]. In the middle of an
 * over-long line that is its start: a restore reads it again and handles it then. */
static int lines_src_snapshot(fl_context_t *ctx, void *instance, fl_buf_t *out) {
  lines_reader_t *r = instance;
  uint64_t pos[2] = {r->discarding ? r->long_offset : r->base + r->start, r->line_no};
  (void)ctx;
  return fl_buf_append(out, pos, sizeof pos);
}

static int lines_src_restore(fl_context_t *ctx, void *instance, const fl_bytes_t *states,
                             size_t n) {
  lines_reader_t *r = instance;
  const char *shown = r->conf->shown;
  uint64_t pos[2];
  char ebuf[128];
  if (n != 1 || states[0].len != sizeof pos)
    return fl_ctx_fail(ctx, "%s: the restored position is malformed (%zu bytes)", shown,
                       n ? states[0].len : 0);
  memcpy(pos, states[0].data, sizeof pos);
  if (r->poll_first)
    return fl_ctx_fail(ctx, "%s: cannot go back to byte %llu of a pipe or terminal", shown,
                       (unsigned long long)pos[0]);
  if (lseek(r->fd, (off_t)pos[0], SEEK_SET) < 0) {
    int e = errno;
    return fl_ctx_fail(ctx, "%s: cannot seek to byte %llu: %s", shown, (unsigned long long)pos[0],
                       lines_strerror(e, ebuf, sizeof(ebuf)));
  }
  r->base = pos[0];
  r->line_no = pos[1];
  r->start = r->scan = r->end = 0;
  r->eof = false;
  r->discarding = false;
  return FL_OK;
}

static void lines_src_destroy(void *opaque) {
  lines_src_conf_t *conf = opaque;
  if (conf == NULL) return;
  if (conf->parse_destroy != NULL) conf->parse_destroy(conf->parse_opaque);
  free(conf->path);
  free(conf);
}

/* Builder errors of fl_source_lines_opts into msg; 0 when opts is valid. */
static int lines_opts_check(const fl_lines_source_opts_t *opts, char *msg, size_t size) {
  if (opts == NULL) {
    snprintf(msg, size, "opts is NULL");
  } else if (opts->version != FL_LINES_SOURCE_OPTS_VERSION) {
    snprintf(msg, size, "opts.version is %d, expected %d (FL_LINES_SOURCE_OPTS_VERSION)",
             opts->version, FL_LINES_SOURCE_OPTS_VERSION);
  } else if (opts->path == NULL || opts->path[0] == '\0') {
    snprintf(msg, size, "the path of a lines source is %s", opts->path == NULL ? "NULL" : "empty");
  } else if (opts->max_line_bytes > FL_LINES_MAX_LINE_LIMIT) {
    snprintf(msg, size, "max_line_bytes is %zu, more than the largest limit %zu (1 GiB)",
             opts->max_line_bytes, FL_LINES_MAX_LINE_LIMIT);
  } else if ((int)opts->on_error < FL_LINES_ON_ERROR_FAIL ||
             (int)opts->on_error > FL_LINES_ON_ERROR_DEAD_LETTER) {
    snprintf(msg, size, "on_error is %d, not an fl_lines_error_policy_t", (int)opts->on_error);
  } else if (opts->on_error == FL_LINES_ON_ERROR_DEAD_LETTER && opts->dead_letter == NULL) {
    snprintf(msg, size,
             "dead_letter (an output tag) is required with FL_LINES_ON_ERROR_DEAD_LETTER");
  } else {
    return 0;
  }
  return -1;
}

fl_stream_t *fl_source_lines_opts(fl_env_t *env, const char *name,
                                  const fl_lines_source_opts_t *opts) {
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
  char msg[256];

  if (name == NULL) name = "lines";
  if (env == NULL || lines_opts_check(opts, msg, sizeof(msg)) != 0) {
    /* A builder call that keeps nothing destroys the opaque it was given at once. */
    if (opts != NULL && opts->parse_destroy != NULL) opts->parse_destroy(opts->parse_opaque);
    if (env != NULL) fl_env_builder_fail(env, FL_EINVAL, "%s: %s", name, msg);
    return NULL;
  }
  conf = calloc(1, sizeof(*conf));
  if (conf == NULL || (conf->path = strdup(opts->path)) == NULL) {
    free(conf);
    if (opts->parse_destroy != NULL) opts->parse_destroy(opts->parse_opaque);
    fl_env_builder_fail(env, FL_ENOMEM, "%s: out of memory", name);
    return NULL;
  }
  conf->shown = strcmp(conf->path, "-") == 0 ? "stdin" : conf->path;
  conf->max_line = opts->max_line_bytes > 0 ? opts->max_line_bytes : FL_LINES_MAX_LINE;
  conf->head_max =
      opts->dead_letter_head_bytes > 0 ? opts->dead_letter_head_bytes : FL_LINES_HEAD_DEFAULT;
  if (conf->head_max > conf->max_line) conf->head_max = conf->max_line;
  conf->parse = opts->parse;
  conf->parse_opaque = opts->parse_opaque;
  conf->parse_destroy = opts->parse_destroy;
  conf->on_error = opts->on_error;
  conf->dead_letter = opts->dead_letter;
  /* From here on the env owns conf: fl_source() calls destroy even when it fails. */
  return fl_source(env, name, &fn, conf, 0);
}

fl_stream_t *fl_source_lines(fl_env_t *env, const char *name, const char *path) {
  fl_lines_source_opts_t opts = {.version = FL_LINES_SOURCE_OPTS_VERSION, .path = path};
  return fl_source_lines_opts(env, name, &opts);
}

int fl_lines_dead_letter_read(const fl_record_t *rec, fl_lines_dead_letter_t *out) {
  lines_dl_hdr_t h;
  if (rec == NULL || out == NULL || rec->key == NULL || rec->key_len < sizeof(h) + 1)
    return FL_EINVAL;
  memcpy(&h, rec->key, sizeof(h));
  if (h.magic != FL_LINES_DL_MAGIC || rec->key_len != sizeof(h) + h.error_len + 1 ||
      ((const char *)rec->key)[rec->key_len - 1] != '\0' || rec->value_len > h.line_len)
    return FL_EINVAL;
  out->line_no = h.line_no;
  out->offset = h.offset;
  out->line_len = h.line_len;
  out->line = rec->value;
  out->kept_len = rec->value_len;
  out->error = (const char *)rec->key + sizeof(h);
  return FL_OK;
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
  if (in != NULL) {
    in->sh = sh;
    in->cap = FL_SINK_BUF_CAP;
    in->buf = malloc(in->cap);
  }
  if (in == NULL || in->buf == NULL) {
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
