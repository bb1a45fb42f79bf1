/*
 * Checkpoint storage, part 1 of 4 (store.h is the manual; store_internal.h lists what
 * the parts share): the helpers every part uses, and the manifest. Errors with their
 * messages, file names and chk-<id> directory names, the string map and shared-key
 * tables, the kill points of crash tests, reading and verifying a file against what
 * a manifest recorded, listing a root, and the manifest's encoding, decoding and
 * reading. The writer (store_write.c), the reader (store_read.c) and retention
 * (store_retain.c) all stand on these.
 *
 * Everything that must survive a crash is made durable in the order readers rely on:
 * file data (fsync) before its final name (rename), every name of a checkpoint
 * (directory fsync) before the manifest, the manifest (fsync) before its final name,
 * and that name (directory fsync) before the caller hears of success.
 */
#define _GNU_SOURCE /* GNU strerror_r (thread-safe, returns the message) */

#include "checkpoint/store_internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/clock.h"
#include "util/crc32c.h"
#include "util/fs.h"
#include "util/hash.h"
#include "util/vec.h"

/* ---------------------------------------------------------------------------------- */
/* Errors                                                                               */

int fl_cs_fail(char *err, size_t err_size, int code, const char *fmt, ...) {
  if (err && err_size > 0) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, err_size, fmt, ap);
    va_end(ap);
  }
  return code;
}

/* strerror text of e; uses buf. */
const char *fl_cs_etext(int e, char *buf, size_t n) { return strerror_r(e, buf, n); }

/* FL_EIO with "<what> <path>: <strerror(e)>". */
int fl_cs_fail_sys(char *err, size_t err_size, int e, const char *what, const char *path) {
  char eb[128];
  return fl_cs_fail(err, err_size, FL_EIO, "%s %s: %s", what, path, fl_cs_etext(e, eb, sizeof eb));
}

/* malloc'd printf; NULL on ENOMEM. */
char *fl_cs_printf(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  if (n < 0) return NULL;
  char *s = malloc((size_t)n + 1);
  if (!s) return NULL;
  va_start(ap, fmt);
  vsnprintf(s, (size_t)n + 1, fmt, ap);
  va_end(ap);
  return s;
}

char *fl_cs_join(const char *a, const char *b) { return fl_cs_printf("%s/%s", a, b); }

/* A copy of path without trailing slashes ("/" stays "/"). */
char *fl_cs_normalize_path(const char *path) {
  size_t n = strlen(path);
  while (n > 1 && path[n - 1] == '/') n--;
  char *s = malloc(n + 1);
  if (!s) return NULL;
  memcpy(s, path, n);
  s[n] = 0;
  return s;
}

const char *fl_cs_base_of(const char *path) {
  const char *slash = strrchr(path, '/');
  return slash ? slash + 1 : path;
}

/* ---------------------------------------------------------------------------------- */
/* Names                                                                                */

static bool name_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
         c == '_' || c == '+' || c == '=' || c == ',' || c == '@' || c == '-';
}

/* The reason a component is invalid, or NULL. */
static const char *component_problem(const char *s, size_t len) {
  if (len == 0) return "an empty path component";
  if (len > MAX_COMPONENT) return "a component longer than 255 bytes";
  if (s[0] == '.' || s[0] == '_') return "a component starting with '.' or '_' (reserved)";
  if (len >= 4 && memcmp(s + len - 4, ".tmp", 4) == 0)
    return "a component ending with \".tmp\" (reserved)";
  for (size_t i = 0; i < len; i++) {
    if (!name_char(s[i])) return "a character outside [A-Za-z0-9._+=,@-]";
  }
  return NULL;
}

/* Validates a file name (path_ok: '/'-separated components) or a shared key. */
int fl_cs_check_name(const char *name, bool path_ok, const char *what, char *err, size_t err_size) {
  if (!name) return fl_cs_fail(err, err_size, FL_EINVAL, "%s is NULL", what);
  size_t n = strlen(name);
  if (n == 0 || n > MAX_NAME)
    return fl_cs_fail(err, err_size, FL_EINVAL, "%s \"%.64s\" must be 1..%d bytes", what, name,
                      MAX_NAME);
  const char *p = name;
  for (;;) {
    const char *slash = strchr(p, '/');
    size_t len = slash ? (size_t)(slash - p) : strlen(p);
    if (slash && !path_ok)
      return fl_cs_fail(err, err_size, FL_EINVAL, "%s \"%s\" must not contain '/'", what, name);
    const char *why = component_problem(p, len);
    if (why)
      return fl_cs_fail(err, err_size, FL_EINVAL, "%s \"%s\" is invalid: %s", what, name, why);
    if (!slash) break;
    p = slash + 1;
  }
  return FL_OK;
}

/* "chk-<id>": decimal, no sign, no leading zero, at most INT64_MAX. */
bool fl_cs_parse_chk_name(const char *s, int64_t *id) {
  if (strncmp(s, "chk-", 4) != 0) return false;
  s += 4;
  if (!*s || (s[0] == '0' && s[1])) return false;
  uint64_t v = 0;
  for (; *s; s++) {
    if (*s < '0' || *s > '9') return false;
    if (v > ((uint64_t)INT64_MAX - (uint64_t)(*s - '0')) / 10) return false;
    v = v * 10 + (uint64_t)(*s - '0');
  }
  *id = (int64_t)v;
  return true;
}

/* ---------------------------------------------------------------------------------- */
/* String map and key tables                                                            */

static size_t str_hash(const char *s) { return (size_t)fl_hash64(s, strlen(s), 0x636b7074); }

bool fl_cs_strmap_get(const strmap_t *m, const char *key, size_t *val) {
  if (m->cap == 0) return false;
  for (size_t i = str_hash(key) & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
    if (!m->keys[i]) return false;
    if (strcmp(m->keys[i], key) == 0) {
      if (val) *val = m->vals[i];
      return true;
    }
  }
}

static void strmap_insert_raw(strmap_t *m, const char *key, size_t val) {
  size_t i = str_hash(key) & (m->cap - 1);
  while (m->keys[i]) i = (i + 1) & (m->cap - 1);
  m->keys[i] = key;
  m->vals[i] = val;
  m->n++;
}

/* Inserts a key known to be absent. */
int fl_cs_strmap_put(strmap_t *m, const char *key, size_t val) {
  if ((m->n + 1) * 2 > m->cap) {
    size_t nc = m->cap ? m->cap * 2 : 16;
    strmap_t g = {calloc(nc, sizeof *g.keys), calloc(nc, sizeof *g.vals), nc, 0};
    if (!g.keys || !g.vals) {
      free(g.keys);
      free(g.vals);
      return FL_ENOMEM;
    }
    for (size_t i = 0; i < m->cap; i++) {
      if (m->keys[i]) strmap_insert_raw(&g, m->keys[i], m->vals[i]);
    }
    free(m->keys);
    free(m->vals);
    *m = g;
  }
  strmap_insert_raw(m, key, val);
  return FL_OK;
}

void fl_cs_strmap_free(strmap_t *m) {
  free(m->keys);
  free(m->vals);
  memset(m, 0, sizeof *m);
}

kent_t *fl_cs_keytab_find(keytab_t *t, const char *key) {
  size_t i;
  return fl_cs_strmap_get(&t->map, key, &i) ? &t->v[i] : NULL;
}

/* Adds key if absent. *out (optional) points at its entry until the next add. */
int fl_cs_keytab_add(keytab_t *t, const char *key, kent_t **out) {
  kent_t *e = fl_cs_keytab_find(t, key);
  if (!e) {
    if (FL_VEC_RESERVE(t->v, t->cap, t->n + 1)) return FL_ENOMEM;
    char *k = strdup(key);
    if (!k) return FL_ENOMEM;
    if (fl_cs_strmap_put(&t->map, k, t->n) != FL_OK) {
      free(k);
      return FL_ENOMEM;
    }
    e = &t->v[t->n++];
    memset(e, 0, sizeof *e);
    e->key = k;
  }
  if (out) *out = e;
  return FL_OK;
}

void fl_cs_keytab_free(keytab_t *t) {
  for (size_t i = 0; i < t->n; i++) free(t->v[i].key);
  free(t->v);
  fl_cs_strmap_free(&t->map);
  memset(t, 0, sizeof *t);
}

/* ---------------------------------------------------------------------------------- */
/* File system helpers                                                                  */

static void (*g_kill_hook)(const char *point, void *arg);
static void *g_kill_arg;

void fl_ckpt_set_kill_hook(void (*hook)(const char *point, void *arg), void *arg) {
  g_kill_hook = hook;
  g_kill_arg = arg;
}

void fl_cs_kill_point(const char *point) {
  if (g_kill_hook) g_kill_hook(point, g_kill_arg);
}

int fl_cs_read_fd(int fd, const char *path, size_t hint, size_t max, char **out, size_t *len,
                  char *err, size_t err_size) {
  int rc = FL_OK;
  size_t n = 0, cap = hint < max ? hint + 1 : max + 1;
  char *buf = malloc(cap + 1);
  if (!buf) return fl_cs_fail(err, err_size, FL_ENOMEM, "out of memory reading %s", path);
  for (;;) {
    if (n == cap) {
      if (cap > max) break; /* max + 1 bytes: the caller's "too large" */
      size_t nc = cap * 2 > max + 1 ? max + 1 : cap * 2;
      char *b = realloc(buf, nc + 1);
      if (!b) {
        rc = fl_cs_fail(err, err_size, FL_ENOMEM, "out of memory reading %s", path);
        goto done;
      }
      buf = b;
      cap = nc;
    }
    ssize_t r = fl_read_some(fd, buf + n, cap - n);
    if (r < 0) {
      rc = fl_cs_fail_sys(err, err_size, (int)-r, "read", path);
      goto done;
    }
    if (r == 0) break;
    n += (size_t)r;
  }
  buf[n] = 0;
  *out = buf;
  *len = n;
  buf = NULL;
done:
  free(buf);
  return rc;
}

/* Reads a whole file (at most max bytes) into a malloc'd NUL-terminated buffer.
 * FL_ENOTFOUND if it does not exist, FL_EIO otherwise (message in err). */
static int read_whole(const char *path, size_t max, char **out, size_t *len, char *err,
                      size_t err_size) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return fl_cs_fail(err, err_size, FL_ENOTFOUND, "%s does not exist", path);
    return fl_cs_fail_sys(err, err_size, errno, "open", path);
  }
  int rc = fl_cs_read_fd(fd, path, 4096, max, out, len, err, err_size);
  close(fd);
  if (rc == FL_OK && *len > max) {
    free(*out);
    *out = NULL;
    rc = fl_cs_fail(err, err_size, FL_EPARSE, "%s is larger than %zu bytes", path, max);
  }
  return rc;
}

/* Stats a checkpoint file for verification. */
int fl_cs_verify_file(const char *name, const char *path, bool shared, uint64_t size, uint32_t crc,
                      unsigned char *buf, size_t cap, char *why, size_t why_size) {
  int rc = FL_OK;
  char eb[128];
  char label[MAX_NAME + PATH_MAX + 32];
  if (shared)
    snprintf(label, sizeof label, "file %s (shared %s)", name, path);
  else
    snprintf(label, sizeof label, "file %s", name);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    int e = errno;
    return fl_cs_fail(why, why_size, e == ENOENT ? FL_EPARSE : FL_EIO, "%s: open %s: %s", label,
                      path, fl_cs_etext(e, eb, sizeof eb));
  }
  struct stat st;
  if (fstat(fd, &st) != 0) {
    rc = fl_cs_fail(why, why_size, FL_EIO, "%s: stat %s: %s", label, path,
                    fl_cs_etext(errno, eb, sizeof eb));
    goto done;
  }
  if (!S_ISREG(st.st_mode)) {
    rc = fl_cs_fail(why, why_size, FL_EPARSE, "%s: %s is not a regular file", label, path);
    goto done;
  }
  if ((uint64_t)st.st_size != size) {
    rc = fl_cs_fail(why, why_size, FL_EPARSE,
                    "%s: size %" PRIu64 " bytes, the manifest says %" PRIu64, label,
                    (uint64_t)st.st_size, size);
    goto done;
  }
  uint32_t c = 0;
  uint64_t total = 0;
  for (;;) {
    ssize_t r = fl_read_some(fd, buf, cap);
    if (r < 0) {
      rc = fl_cs_fail(why, why_size, FL_EIO, "%s: read %s: %s", label, path,
                      fl_cs_etext((int)-r, eb, sizeof eb));
      goto done;
    }
    if (r == 0) break;
    c = fl_crc32c_extend(c, buf, (size_t)r);
    total += (uint64_t)r;
  }
  if (total != size) {
    rc = fl_cs_fail(why, why_size, FL_EPARSE,
                    "%s: %" PRIu64 " bytes read, the manifest says %" PRIu64, label, total, size);
    goto done;
  }
  if (c != crc)
    rc = fl_cs_fail(why, why_size, FL_EPARSE,
                    "%s: CRC32C mismatch (stored 0x%08" PRIx32 ", computed 0x%08" PRIx32 ")", label,
                    crc, c);
done:
  close(fd);
  return rc;
}

/* Lists the chk-<id> directories of root, ids ascending. FL_ENOTFOUND when root does
 * not exist. */
static int cmp_i64(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return (x > y) - (x < y);
}

int fl_cs_list_chk_ids(const char *root, int64_t **ids, size_t *n, char *err, size_t err_size) {
  int rc = FL_OK;
  int64_t *v = NULL;
  size_t cnt = 0, cap = 0;
  DIR *d = opendir(root);
  if (!d) {
    if (errno == ENOENT) return fl_cs_fail(err, err_size, FL_ENOTFOUND, "%s does not exist", root);
    return fl_cs_fail_sys(err, err_size, errno, "list directory", root);
  }
  for (;;) {
    errno = 0;
    struct dirent *de = readdir(d);
    if (!de) {
      if (errno) rc = fl_cs_fail_sys(err, err_size, errno, "list directory", root);
      break;
    }
    int64_t id;
    if (!fl_cs_parse_chk_name(de->d_name, &id)) continue;
    if (de->d_type != DT_DIR) {
      if (de->d_type != DT_UNKNOWN) continue;
      struct stat st;
      if (fstatat(dirfd(d), de->d_name, &st, 0) != 0 || !S_ISDIR(st.st_mode)) continue;
    }
    if (FL_VEC_RESERVE(v, cap, cnt + 1)) {
      rc = fl_cs_fail(err, err_size, FL_ENOMEM, "out of memory listing %s", root);
      break;
    }
    v[cnt++] = id;
  }
  closedir(d);
  if (rc) {
    free(v);
    return rc;
  }
  if (cnt) qsort(v, cnt, sizeof *v, cmp_i64);
  *ids = v;
  *n = cnt;
  return FL_OK;
}

/* ---------------------------------------------------------------------------------- */
/* Manifests                                                                            */

void fl_cs_manifest_free(manifest_t *m) {
  for (size_t i = 0; i < m->n; i++) {
    free(m->files[i].name);
    free(m->files[i].key);
  }
  free(m->files);
  free(m->meta);
  memset(m, 0, sizeof *m);
}

const char *fl_cs_kind_str(fl_ckpt_kind_t k) {
  return k == FL_CKPT_SAVEPOINT ? "savepoint" : "checkpoint";
}

static bool parse_hex32(const char *s, uint32_t *out) {
  if (strlen(s) != 8) return false;
  uint32_t v = 0;
  for (int i = 0; i < 8; i++) {
    char c = s[i];
    int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
    if (d < 0) return false;
    v = (v << 4) | (uint32_t)d;
  }
  *out = v;
  return true;
}

/* Serializes a manifest: JSON, then the checksum line. *out is malloc'd. */
int fl_cs_manifest_encode(fl_ckpt_kind_t kind, int64_t id, json_t *meta, mfile_t *const *files,
                          size_t n, char **out, size_t *len) {
  int rc = FL_ENOMEM;
  char *body = NULL;
  json_t *root = json_object();
  json_t *arr = json_array();
  if (!root || !arr) goto done;
  for (size_t i = 0; i < n; i++) {
    const mfile_t *f = files[i];
    char hex[9];
    snprintf(hex, sizeof hex, "%08" PRIx32, f->crc);
    json_t *o = json_object();
    if (!o || json_array_append_new(arr, o)) goto done;
    if (json_object_set_new(o, "name", json_string(f->name)) ||
        json_object_set_new(o, "size", json_integer((json_int_t)f->size)) ||
        json_object_set_new(o, "crc32c", json_string(hex)) ||
        json_object_set_new(o, "shared", json_boolean(f->shared)))
      goto done;
    if (f->shared && json_object_set_new(o, "key", json_string(f->key))) goto done;
  }
  if (json_object_set_new(root, "format", json_integer(FORMAT_VERSION)) ||
      json_object_set_new(root, "kind", json_string(fl_cs_kind_str(kind))) ||
      json_object_set_new(root, "id", json_integer(id)) ||
      json_object_set_new(root, "created_ms", json_integer(fl_wall_ms())) ||
      json_object_set(root, "meta", meta))
    goto done;
  if (json_object_set_new(root, "files", arr)) {
    arr = NULL;
    goto done;
  }
  arr = NULL;
  body = json_dumps(root, JSON_INDENT(1) | JSON_PRESERVE_ORDER);
  if (!body) goto done;
  size_t bl = strlen(body);
  char *s = malloc(bl + 1 + 16 + 1);
  if (!s) goto done;
  memcpy(s, body, bl);
  s[bl++] = '\n';
  uint32_t crc = fl_crc32c(s, bl);
  snprintf(s + bl, 17, "crc32c %08" PRIx32 "\n", crc);
  *out = s;
  *len = bl + 16;
  rc = FL_OK;
done:
  free(body);
  json_decref(arr);
  json_decref(root);
  return rc;
}

/* Checks the checksum line and parses text (len bytes) into m. The reason of an
 * FL_EPARSE / FL_ENOTSUP goes to why, starting with "_manifest: ". */
static int manifest_decode(const char *text, size_t len, manifest_t *m, char *why,
                           size_t why_size) {
  int rc = FL_EPARSE;
  json_t *root = NULL;
  memset(m, 0, sizeof *m);
  /* The last line is "crc32c <8 hex>\n" (16 bytes); no line of the JSON starts so. */
  if (len < 17 || text[len - 1] != '\n' || text[len - 17] != '\n' ||
      memcmp(text + len - 16, "crc32c ", 7) != 0) {
    rc = fl_cs_fail(why, why_size, FL_EPARSE,
                    "_manifest: the checksum line is missing or malformed "
                    "(truncated?)");
    goto done;
  }
  char hex[9];
  memcpy(hex, text + len - 9, 8);
  hex[8] = 0;
  uint32_t stored, computed = fl_crc32c(text, len - 16);
  if (!parse_hex32(hex, &stored)) {
    rc = fl_cs_fail(why, why_size, FL_EPARSE, "_manifest: the checksum line is malformed");
    goto done;
  }
  if (stored != computed) {
    rc = fl_cs_fail(why, why_size, FL_EPARSE,
                    "_manifest: CRC32C mismatch (stored 0x%08" PRIx32 ", computed 0x%08" PRIx32 ")",
                    stored, computed);
    goto done;
  }
  json_error_t je;
  root = json_loadb(text, len - 16, JSON_REJECT_DUPLICATES, &je);
  if (!root) {
    rc = fl_cs_fail(why, why_size, FL_EPARSE, "_manifest: invalid JSON at line %d: %s", je.line,
                    je.text);
    goto done;
  }
  json_t *fmt = json_object_get(root, "format");
  if (!json_is_integer(fmt)) {
    rc = fl_cs_fail(why, why_size, FL_EPARSE, "_manifest: no integer \"format\"");
    goto done;
  }
  if (json_integer_value(fmt) != FORMAT_VERSION) {
    rc = fl_cs_fail(why, why_size, FL_ENOTSUP,
                    "_manifest: format %" JSON_INTEGER_FORMAT " (this library reads %d)",
                    json_integer_value(fmt), FORMAT_VERSION);
    goto done;
  }
  const char *kind = json_string_value(json_object_get(root, "kind"));
  json_t *id = json_object_get(root, "id"), *created = json_object_get(root, "created_ms");
  json_t *meta = json_object_get(root, "meta"), *files = json_object_get(root, "files");
  if (!kind || (strcmp(kind, "checkpoint") != 0 && strcmp(kind, "savepoint") != 0)) {
    rc = fl_cs_fail(why, why_size, FL_EPARSE,
                    "_manifest: \"kind\" is not \"checkpoint\" or \"savepoint\"");
    goto done;
  }
  if (!json_is_integer(id) || json_integer_value(id) < 0 || !json_is_integer(created) ||
      !json_is_object(meta) || !json_is_array(files)) {
    rc = fl_cs_fail(
        why, why_size, FL_EPARSE,
        "_manifest: \"id\", \"created_ms\", \"meta\" or \"files\" is missing or mistyped");
    goto done;
  }
  m->kind = strcmp(kind, "savepoint") == 0 ? FL_CKPT_SAVEPOINT : FL_CKPT_CHECKPOINT;
  m->id = json_integer_value(id);
  m->created_ms = json_integer_value(created);
  m->meta = json_dumps(meta, JSON_COMPACT | JSON_PRESERVE_ORDER);
  size_t n = json_array_size(files);
  m->files = calloc(n ? n : 1, sizeof *m->files);
  if (!m->meta || !m->files) {
    rc = fl_cs_fail(why, why_size, FL_ENOMEM, "out of memory");
    goto done;
  }
  for (size_t i = 0; i < n; i++) {
    json_t *o = json_array_get(files, i);
    const char *name = json_string_value(json_object_get(o, "name"));
    const char *crc = json_string_value(json_object_get(o, "crc32c"));
    json_t *size = json_object_get(o, "size"), *shared = json_object_get(o, "shared");
    json_t *key = json_object_get(o, "key");
    mfile_t *f = &m->files[m->n];
    if (!name || !crc || !json_is_integer(size) || json_integer_value(size) < 0 ||
        !json_is_boolean(shared) || !parse_hex32(crc, &f->crc) ||
        fl_cs_check_name(name, true, "name", NULL, 0) != FL_OK) {
      rc =
          fl_cs_fail(why, why_size, FL_EPARSE, "_manifest: entry %zu of \"files\" is malformed", i);
      goto done;
    }
    f->shared = json_is_true(shared);
    if (f->shared != (key != NULL) ||
        (f->shared && (!json_is_string(key) ||
                       fl_cs_check_name(json_string_value(key), false, "key", NULL, 0) != FL_OK))) {
      rc = fl_cs_fail(why, why_size, FL_EPARSE,
                      "_manifest: entry %zu (%s) has a malformed shared key", i, name);
      goto done;
    }
    if (f->shared && m->kind == FL_CKPT_SAVEPOINT) {
      rc = fl_cs_fail(why, why_size, FL_EPARSE, "_manifest: a savepoint references shared file %s",
                      name);
      goto done;
    }
    f->size = (uint64_t)json_integer_value(size);
    f->name = strdup(name);
    f->key = f->shared ? strdup(json_string_value(key)) : NULL;
    m->n++;
    if (!f->name || (f->shared && !f->key)) {
      rc = fl_cs_fail(why, why_size, FL_ENOMEM, "out of memory");
      goto done;
    }
    if (i > 0 && strcmp(m->files[i - 1].name, name) >= 0) {
      rc = fl_cs_fail(why, why_size, FL_EPARSE, "_manifest: files are not sorted by name at %s",
                      name);
      goto done;
    }
  }
  rc = FL_OK;
done:
  json_decref(root);
  if (rc) fl_cs_manifest_free(m);
  return rc;
}

/* Reads and decodes dir/_manifest. FL_ENOTFOUND without one; the reason goes to why. */
int fl_cs_manifest_read(const char *dir, manifest_t *m, char *why, size_t why_size) {
  char *path = fl_cs_join(dir, MANIFEST), *text = NULL;
  size_t len = 0;
  int rc;
  if (!path) return fl_cs_fail(why, why_size, FL_ENOMEM, "out of memory");
  rc = read_whole(path, MAX_MANIFEST_BYTES, &text, &len, why, why_size);
  if (rc == FL_ENOTFOUND)
    rc = fl_cs_fail(why, why_size, FL_ENOTFOUND, "_manifest is missing (an incomplete checkpoint)");
  else if (rc == FL_EPARSE)
    rc = fl_cs_fail(why, why_size, FL_EPARSE, "_manifest: larger than %zu bytes",
                    MAX_MANIFEST_BYTES);
  else if (rc == FL_EIO) {
    char tmp[512];
    snprintf(tmp, sizeof tmp, "%s", why);
    rc = fl_cs_fail(why, why_size, FL_EIO, "_manifest: %s", tmp);
  }
  if (rc == FL_OK) rc = manifest_decode(text, len, m, why, why_size);
  free(text);
  free(path);
  return rc;
}

void fl_cs_log_line(fl_ckpt_log_fn log, void *arg, const char *line) {
  if (log)
    log(line, arg);
  else
    fprintf(stderr, "flink: %s\n", line);
}
