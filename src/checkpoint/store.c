/*
 * Checkpoint storage (store.h is the manual): directory layout, atomic writes with
 * CRC32C, verification, fallback to an older checkpoint, shared immutable files and
 * retention.
 *
 * Everything that must survive a crash is made durable in the order readers rely on:
 * file data (fsync) before its final name (rename), every name of a checkpoint
 * (directory fsync) before the manifest, the manifest (fsync) before its final name,
 * and that name (directory fsync) before the caller hears of success.
 */
#define _GNU_SOURCE /* GNU strerror_r (thread-safe, returns the message) */

#include "checkpoint/store.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include "util/clock.h"
#include "util/crc32c.h"
#include "util/fs.h"
#include "util/hash.h"

#define MANIFEST "_manifest"
#define MANIFEST_TMP "_manifest.tmp"
#define SHARED_DIR "shared"
#define FORMAT_VERSION 1
#define MAX_NAME 1024
#define MAX_COMPONENT 255
/* A manifest is a few hundred bytes per file; anything this large is not one. */
#define MAX_MANIFEST_BYTES ((size_t)256 << 20)
#define IO_CHUNK ((size_t)1 << 20)
#define OUT_BUF ((size_t)64 << 10)

/* ---------------------------------------------------------------------------------- */
/* Errors                                                                               */

static int fail(char *err, size_t err_size, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int fail(char *err, size_t err_size, int code, const char *fmt, ...) {
  if (err && err_size > 0) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, err_size, fmt, ap);
    va_end(ap);
  }
  return code;
}

/* strerror text of e; uses buf. */
static const char *etext(int e, char *buf, size_t n) { return strerror_r(e, buf, n); }

/* FL_EIO with "<what> <path>: <strerror(e)>". */
static int fail_sys(char *err, size_t err_size, int e, const char *what, const char *path) {
  char eb[128];
  return fail(err, err_size, FL_EIO, "%s %s: %s", what, path, etext(e, eb, sizeof eb));
}

/* malloc'd printf; NULL on ENOMEM. */
static char *str_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *str_printf(const char *fmt, ...) {
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

static char *join(const char *a, const char *b) { return str_printf("%s/%s", a, b); }

/* A copy of path without trailing slashes ("/" stays "/"). */
static char *normalize_path(const char *path) {
  size_t n = strlen(path);
  while (n > 1 && path[n - 1] == '/') n--;
  char *s = malloc(n + 1);
  if (!s) return NULL;
  memcpy(s, path, n);
  s[n] = 0;
  return s;
}

static const char *base_of(const char *path) {
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
static int check_name(const char *name, bool path_ok, const char *what, char *err,
                      size_t err_size) {
  if (!name) return fail(err, err_size, FL_EINVAL, "%s is NULL", what);
  size_t n = strlen(name);
  if (n == 0 || n > MAX_NAME)
    return fail(err, err_size, FL_EINVAL, "%s \"%.64s\" must be 1..%d bytes", what, name, MAX_NAME);
  const char *p = name;
  for (;;) {
    const char *slash = strchr(p, '/');
    size_t len = slash ? (size_t)(slash - p) : strlen(p);
    if (slash && !path_ok)
      return fail(err, err_size, FL_EINVAL, "%s \"%s\" must not contain '/'", what, name);
    const char *why = component_problem(p, len);
    if (why) return fail(err, err_size, FL_EINVAL, "%s \"%s\" is invalid: %s", what, name, why);
    if (!slash) break;
    p = slash + 1;
  }
  return FL_OK;
}

/* "chk-<id>": decimal, no sign, no leading zero, at most INT64_MAX. */
static bool parse_chk_name(const char *s, int64_t *id) {
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

/* Open addressing with linear probing from a string to an index; the strings are
 * borrowed (their owners outlive the map). Kept at most half full. */
typedef struct strmap {
  const char **keys;
  size_t *vals;
  size_t cap, n;
} strmap_t;

static size_t str_hash(const char *s) { return (size_t)fl_hash64(s, strlen(s), 0x636b7074); }

static bool strmap_get(const strmap_t *m, const char *key, size_t *val) {
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
static int strmap_put(strmap_t *m, const char *key, size_t val) {
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

static void strmap_free(strmap_t *m) {
  free(m->keys);
  free(m->vals);
  memset(m, 0, sizeof *m);
}

/* Shared keys with what is known of them. */
typedef struct kent {
  char *key;
  uint64_t size;
  uint32_t crc;
  bool sized;   /* size is known */
  bool done;    /* size and crc are final */
  bool created; /* this writer put the file into R/shared */
} kent_t;

typedef struct keytab {
  kent_t *v;
  size_t n, cap;
  strmap_t map;
} keytab_t;

static kent_t *keytab_find(keytab_t *t, const char *key) {
  size_t i;
  return strmap_get(&t->map, key, &i) ? &t->v[i] : NULL;
}

/* Adds key if absent. *out (optional) points at its entry until the next add. */
static int keytab_add(keytab_t *t, const char *key, kent_t **out) {
  kent_t *e = keytab_find(t, key);
  if (!e) {
    if (t->n == t->cap) {
      size_t nc = t->cap ? t->cap * 2 : 16;
      kent_t *v = realloc(t->v, nc * sizeof *v);
      if (!v) return FL_ENOMEM;
      t->v = v;
      t->cap = nc;
    }
    char *k = strdup(key);
    if (!k) return FL_ENOMEM;
    if (strmap_put(&t->map, k, t->n) != FL_OK) {
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

static void keytab_free(keytab_t *t) {
  for (size_t i = 0; i < t->n; i++) free(t->v[i].key);
  free(t->v);
  strmap_free(&t->map);
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

static void kill_point(const char *point) {
  if (g_kill_hook) g_kill_hook(point, g_kill_arg);
}

/* Reads a whole file (at most max bytes) into a malloc'd NUL-terminated buffer.
 * FL_ENOTFOUND if it does not exist, FL_EIO otherwise (message in err). */
static int read_whole(const char *path, size_t max, char **out, size_t *len, char *err,
                      size_t err_size) {
  int rc = FL_OK;
  char *buf = NULL;
  size_t n = 0, cap = 0;
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return fail(err, err_size, FL_ENOTFOUND, "%s does not exist", path);
    return fail_sys(err, err_size, errno, "open", path);
  }
  for (;;) {
    if (n == cap) {
      if (cap > max) {
        rc = fail(err, err_size, FL_EPARSE, "%s is larger than %zu bytes", path, max);
        goto done;
      }
      size_t nc = cap ? cap * 2 : 4096;
      char *b = realloc(buf, nc + 1);
      if (!b) {
        rc = fail(err, err_size, FL_ENOMEM, "out of memory reading %s", path);
        goto done;
      }
      buf = b;
      cap = nc;
    }
    ssize_t r = fl_read_some(fd, buf + n, cap - n);
    if (r < 0) {
      rc = fail_sys(err, err_size, (int)-r, "read", path);
      goto done;
    }
    if (r == 0) break;
    n += (size_t)r;
  }
  if (n > max) {
    rc = fail(err, err_size, FL_EPARSE, "%s is larger than %zu bytes", path, max);
    goto done;
  }
  if (!buf && !(buf = malloc(1))) {
    rc = fail(err, err_size, FL_ENOMEM, "out of memory reading %s", path);
    goto done;
  }
  buf[n] = 0;
  *out = buf;
  *len = n;
  buf = NULL;
done:
  close(fd);
  free(buf);
  return rc;
}

/* Stats a checkpoint file for verification. */
static int verify_file(const char *name, const char *path, bool shared, uint64_t size, uint32_t crc,
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
    return fail(why, why_size, e == ENOENT ? FL_EPARSE : FL_EIO, "%s: open %s: %s", label, path,
                etext(e, eb, sizeof eb));
  }
  struct stat st;
  if (fstat(fd, &st) != 0) {
    rc = fail(why, why_size, FL_EIO, "%s: stat %s: %s", label, path, etext(errno, eb, sizeof eb));
    goto done;
  }
  if (!S_ISREG(st.st_mode)) {
    rc = fail(why, why_size, FL_EPARSE, "%s: %s is not a regular file", label, path);
    goto done;
  }
  if ((uint64_t)st.st_size != size) {
    rc = fail(why, why_size, FL_EPARSE, "%s: size %" PRIu64 " bytes, the manifest says %" PRIu64,
              label, (uint64_t)st.st_size, size);
    goto done;
  }
  uint32_t c = 0;
  uint64_t total = 0;
  for (;;) {
    ssize_t r = fl_read_some(fd, buf, cap);
    if (r < 0) {
      rc = fail(why, why_size, FL_EIO, "%s: read %s: %s", label, path,
                etext((int)-r, eb, sizeof eb));
      goto done;
    }
    if (r == 0) break;
    c = fl_crc32c_extend(c, buf, (size_t)r);
    total += (uint64_t)r;
  }
  if (total != size) {
    rc = fail(why, why_size, FL_EPARSE, "%s: %" PRIu64 " bytes read, the manifest says %" PRIu64,
              label, total, size);
    goto done;
  }
  if (c != crc)
    rc = fail(why, why_size, FL_EPARSE,
              "%s: CRC32C mismatch (stored 0x%08" PRIx32 ", computed 0x%08" PRIx32 ")", label, crc,
              c);
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

static int list_chk_ids(const char *root, int64_t **ids, size_t *n, char *err, size_t err_size) {
  int rc = FL_OK;
  int64_t *v = NULL;
  size_t cnt = 0, cap = 0;
  DIR *d = opendir(root);
  if (!d) {
    if (errno == ENOENT) return fail(err, err_size, FL_ENOTFOUND, "%s does not exist", root);
    return fail_sys(err, err_size, errno, "list directory", root);
  }
  for (;;) {
    errno = 0;
    struct dirent *de = readdir(d);
    if (!de) {
      if (errno) rc = fail_sys(err, err_size, errno, "list directory", root);
      break;
    }
    int64_t id;
    if (!parse_chk_name(de->d_name, &id)) continue;
    if (de->d_type != DT_DIR) {
      if (de->d_type != DT_UNKNOWN) continue;
      struct stat st;
      if (fstatat(dirfd(d), de->d_name, &st, 0) != 0 || !S_ISDIR(st.st_mode)) continue;
    }
    if (cnt == cap) {
      size_t nc = cap ? cap * 2 : 16;
      int64_t *nv = realloc(v, nc * sizeof *nv);
      if (!nv) {
        rc = fail(err, err_size, FL_ENOMEM, "out of memory listing %s", root);
        break;
      }
      v = nv;
      cap = nc;
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

typedef struct mfile {
  char *name;
  char *key; /* shared only */
  uint64_t size;
  uint32_t crc;
  bool shared;
} mfile_t;

typedef struct manifest {
  fl_ckpt_kind_t kind;
  int64_t id;
  int64_t created_ms;
  char *meta; /* compact JSON */
  mfile_t *files;
  size_t n;
} manifest_t;

static void manifest_free(manifest_t *m) {
  for (size_t i = 0; i < m->n; i++) {
    free(m->files[i].name);
    free(m->files[i].key);
  }
  free(m->files);
  free(m->meta);
  memset(m, 0, sizeof *m);
}

static const char *kind_str(fl_ckpt_kind_t k) {
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
static int manifest_encode(fl_ckpt_kind_t kind, int64_t id, json_t *meta, mfile_t *const *files,
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
      json_object_set_new(root, "kind", json_string(kind_str(kind))) ||
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
    rc = fail(why, why_size, FL_EPARSE,
              "_manifest: the checksum line is missing or malformed "
              "(truncated?)");
    goto done;
  }
  char hex[9];
  memcpy(hex, text + len - 9, 8);
  hex[8] = 0;
  uint32_t stored, computed = fl_crc32c(text, len - 16);
  if (!parse_hex32(hex, &stored)) {
    rc = fail(why, why_size, FL_EPARSE, "_manifest: the checksum line is malformed");
    goto done;
  }
  if (stored != computed) {
    rc = fail(why, why_size, FL_EPARSE,
              "_manifest: CRC32C mismatch (stored 0x%08" PRIx32 ", computed 0x%08" PRIx32 ")",
              stored, computed);
    goto done;
  }
  json_error_t je;
  root = json_loadb(text, len - 16, JSON_REJECT_DUPLICATES, &je);
  if (!root) {
    rc = fail(why, why_size, FL_EPARSE, "_manifest: invalid JSON at line %d: %s", je.line, je.text);
    goto done;
  }
  json_t *fmt = json_object_get(root, "format");
  if (!json_is_integer(fmt)) {
    rc = fail(why, why_size, FL_EPARSE, "_manifest: no integer \"format\"");
    goto done;
  }
  if (json_integer_value(fmt) != FORMAT_VERSION) {
    rc = fail(why, why_size, FL_ENOTSUP,
              "_manifest: format %" JSON_INTEGER_FORMAT " (this library reads %d)",
              json_integer_value(fmt), FORMAT_VERSION);
    goto done;
  }
  const char *kind = json_string_value(json_object_get(root, "kind"));
  json_t *id = json_object_get(root, "id"), *created = json_object_get(root, "created_ms");
  json_t *meta = json_object_get(root, "meta"), *files = json_object_get(root, "files");
  if (!kind || (strcmp(kind, "checkpoint") != 0 && strcmp(kind, "savepoint") != 0)) {
    rc = fail(why, why_size, FL_EPARSE,
              "_manifest: \"kind\" is not \"checkpoint\" or \"savepoint\"");
    goto done;
  }
  if (!json_is_integer(id) || json_integer_value(id) < 0 || !json_is_integer(created) ||
      !json_is_object(meta) || !json_is_array(files)) {
    rc = fail(why, why_size, FL_EPARSE,
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
    rc = fail(why, why_size, FL_ENOMEM, "out of memory");
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
        check_name(name, true, "name", NULL, 0) != FL_OK) {
      rc = fail(why, why_size, FL_EPARSE, "_manifest: entry %zu of \"files\" is malformed", i);
      goto done;
    }
    f->shared = json_is_true(shared);
    if (f->shared != (key != NULL) ||
        (f->shared && (!json_is_string(key) ||
                       check_name(json_string_value(key), false, "key", NULL, 0) != FL_OK))) {
      rc = fail(why, why_size, FL_EPARSE, "_manifest: entry %zu (%s) has a malformed shared key", i,
                name);
      goto done;
    }
    if (f->shared && m->kind == FL_CKPT_SAVEPOINT) {
      rc = fail(why, why_size, FL_EPARSE, "_manifest: a savepoint references shared file %s", name);
      goto done;
    }
    f->size = (uint64_t)json_integer_value(size);
    f->name = strdup(name);
    f->key = f->shared ? strdup(json_string_value(key)) : NULL;
    m->n++;
    if (!f->name || (f->shared && !f->key)) {
      rc = fail(why, why_size, FL_ENOMEM, "out of memory");
      goto done;
    }
    if (i > 0 && strcmp(m->files[i - 1].name, name) >= 0) {
      rc = fail(why, why_size, FL_EPARSE, "_manifest: files are not sorted by name at %s", name);
      goto done;
    }
  }
  rc = FL_OK;
done:
  json_decref(root);
  if (rc) manifest_free(m);
  return rc;
}

/* Reads and decodes dir/_manifest. FL_ENOTFOUND without one; the reason goes to why. */
static int manifest_read(const char *dir, manifest_t *m, char *why, size_t why_size) {
  char *path = join(dir, MANIFEST), *text = NULL;
  size_t len = 0;
  int rc;
  if (!path) return fail(why, why_size, FL_ENOMEM, "out of memory");
  rc = read_whole(path, MAX_MANIFEST_BYTES, &text, &len, why, why_size);
  if (rc == FL_ENOTFOUND)
    rc = fail(why, why_size, FL_ENOTFOUND, "_manifest is missing (an incomplete checkpoint)");
  else if (rc == FL_EPARSE)
    rc = fail(why, why_size, FL_EPARSE, "_manifest: larger than %zu bytes", MAX_MANIFEST_BYTES);
  else if (rc == FL_EIO) {
    char tmp[512];
    snprintf(tmp, sizeof tmp, "%s", why);
    rc = fail(why, why_size, FL_EIO, "_manifest: %s", tmp);
  }
  if (rc == FL_OK) rc = manifest_decode(text, len, m, why, why_size);
  free(text);
  free(path);
  return rc;
}

/* ---------------------------------------------------------------------------------- */
/* Process-wide registry of writers and open checkpoints                                */

struct fl_ckpt {
  char *dir;
  char *root_real; /* registered checkpoints only */
  fl_ckpt_kind_t kind;
  int64_t id;
  int64_t created_ms;
  char *meta;
  fl_ckpt_file_t *files;
  size_t n;
  manifest_t m; /* owns names and keys */
  char **paths;
  struct fl_ckpt *reg_next;
  bool registered;
};

enum {
  W_OPEN,
  W_COMMITTING,
  W_ABORTED,
  W_DONE
};
enum {
  E_PENDING,
  E_DONE,
  E_FAILED
};

typedef struct wentry {
  mfile_t f;
  int st;
} wentry_t;

struct fl_ckpt_writer {
  pthread_mutex_t mu;
  fl_ckpt_kind_t kind;
  int64_t id;
  char *dir;        /* chk dir or savepoint dir */
  char *parent;     /* R, or the savepoint's parent */
  char *shared_dir; /* checkpoints: R/shared */
  char *root_real;  /* checkpoints: realpath(R), the registry key */
  bool created_dir; /* savepoints: begin created dir */
  /* under mu */
  int state;
  int refs; /* the owner's, plus one per open file or running add */
  wentry_t *e;
  size_t n, cap;
  strmap_t names;
  uint64_t seq;
  bool shared_written;
  bool any_failed;
  /* immutable after begin: shared keys of the complete checkpoints */
  keytab_t old_keys;
  /* under g_reg_mu: shared keys this writer references */
  keytab_t keys;
  struct fl_ckpt_writer *reg_next;
  bool registered;
};

struct fl_ckpt_out {
  fl_ckpt_writer_t *w;
  size_t idx;
  int fd;
  char *tmp, *final;
  uint64_t size;
  uint32_t crc;
  int err; /* sticky */
  char errmsg[256];
  unsigned char *buf;
  size_t len;
};

struct fl_ckpt_in {
  int fd;
  char *path, *name;
  uint64_t size, got;
  uint32_t want, crc;
};

/* Guards the lists below, every writer's `keys`, and retain's whole scan-and-delete, so
 * that a shared file is never deleted between a writer deciding to reuse it and the
 * writer's manifest referencing it. */
static pthread_mutex_t g_reg_mu = PTHREAD_MUTEX_INITIALIZER;
static fl_ckpt_writer_t *g_writers;
static fl_ckpt_t *g_readers;

static fl_ckpt_writer_t *reg_writer_on(const char *root_real) {
  for (fl_ckpt_writer_t *w = g_writers; w; w = w->reg_next) {
    if (strcmp(w->root_real, root_real) == 0) return w;
  }
  return NULL;
}

static void reg_writer_remove(fl_ckpt_writer_t *w) {
  for (fl_ckpt_writer_t **p = &g_writers; *p; p = &(*p)->reg_next) {
    if (*p == w) {
      *p = w->reg_next;
      break;
    }
  }
  w->registered = false;
}

static void reg_reader_remove(fl_ckpt_t *c) {
  for (fl_ckpt_t **p = &g_readers; *p; p = &(*p)->reg_next) {
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
static int collect_manifest_keys(const char *root, keytab_t *t) {
  int64_t *ids = NULL;
  size_t n = 0;
  int rc = list_chk_ids(root, &ids, &n, NULL, 0);
  if (rc) return rc == FL_ENOMEM ? rc : FL_OK;
  for (size_t i = n; i-- > 0 && rc == FL_OK;) {
    char name[32];
    snprintf(name, sizeof name, "chk-%" PRId64, ids[i]);
    char *dir = join(root, name);
    manifest_t m;
    if (!dir) {
      rc = FL_ENOMEM;
      break;
    }
    int r = manifest_read(dir, &m, NULL, 0);
    free(dir);
    if (r == FL_ENOMEM) rc = r;
    if (r != FL_OK) continue;
    for (size_t j = 0; j < m.n && rc == FL_OK; j++) {
      if (!m.files[j].shared || keytab_find(t, m.files[j].key)) continue;
      kent_t *e;
      rc = keytab_add(t, m.files[j].key, &e);
      if (rc == FL_OK) {
        e->size = m.files[j].size;
        e->crc = m.files[j].crc;
        e->sized = e->done = true;
      }
    }
    manifest_free(&m);
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
  strmap_free(&w->names);
  keytab_free(&w->old_keys);
  keytab_free(&w->keys);
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
  char *mp = join(w->dir, MANIFEST);
  if (mp) {
    unlink(mp);
    free(mp);
  }
  fl_rm_tree(w->dir);
  pthread_mutex_lock(&g_reg_mu);
  bool any = false;
  for (size_t i = 0; i < w->keys.n; i++) any |= w->keys.v[i].created;
  keytab_t refs = {0};
  if (any && collect_manifest_keys(w->parent, &refs) == FL_OK) {
    for (size_t i = 0; i < w->keys.n; i++) {
      if (!w->keys.v[i].created || keytab_find(&refs, w->keys.v[i].key)) continue;
      char *p = join(w->shared_dir, w->keys.v[i].key);
      if (p) unlink(p);
      free(p);
    }
  }
  keytab_free(&refs);
  if (w->registered) reg_writer_remove(w);
  pthread_mutex_unlock(&g_reg_mu);
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
    pthread_mutex_lock(&g_reg_mu);
    reg_writer_remove(w);
    pthread_mutex_unlock(&g_reg_mu);
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
    return fail(err, err_size, FL_EINVAL, "checkpoint writer: out and path are required");
  if (id < 0) return fail(err, err_size, FL_EINVAL, "checkpoint id %" PRId64 " is negative", id);
  if (kind != FL_CKPT_CHECKPOINT && kind != FL_CKPT_SAVEPOINT)
    return fail(err, err_size, FL_EINVAL, "unknown checkpoint kind %d", (int)kind);
  w = calloc(1, sizeof *w);
  norm = normalize_path(path);
  if (!w || !norm) {
    free(w);
    free(norm);
    return fail(err, err_size, FL_ENOMEM, "out of memory");
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
      rc = fail(err, err_size, FL_ENOMEM, "out of memory");
      goto done;
    }
    struct stat st;
    if (stat(w->dir, &st) == 0) {
      DIR *d = S_ISDIR(st.st_mode) ? opendir(w->dir) : NULL;
      if (!d) {
        rc = fail(err, err_size, FL_EINVAL,
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
        rc = fail(err, err_size, FL_EINVAL, "savepoint directory %s is not empty", w->dir);
        goto done;
      }
    } else if (errno != ENOENT) {
      rc = fail_sys(err, err_size, errno, "stat", w->dir);
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
  w->dir = join(w->parent, chk);
  w->shared_dir = join(w->parent, SHARED_DIR);
  if (!w->dir || !w->shared_dir) {
    rc = fail(err, err_size, FL_ENOMEM, "out of memory");
    goto done;
  }
  if ((rc = fl_mkdir_p(w->shared_dir, true, err, err_size))) goto done;
  if (!(w->root_real = realpath(w->parent, NULL))) {
    rc = fail_sys(err, err_size, errno, "resolve", w->parent);
    goto done;
  }
  /* Registered before the directory exists, so that retain never takes it for an
   * abandoned incomplete checkpoint. */
  pthread_mutex_lock(&g_reg_mu);
  fl_ckpt_writer_t *other = reg_writer_on(w->root_real);
  int64_t other_id = other ? other->id : -1;
  if (!other) {
    w->reg_next = g_writers;
    g_writers = w;
    w->registered = true;
  }
  pthread_mutex_unlock(&g_reg_mu);
  if (other) {
    rc = fail(err, err_size, FL_ESTATE,
              "checkpoint %" PRId64 " of %s: checkpoint %" PRId64
              " of that root is still being written",
              id, w->parent, other_id);
    goto done;
  }
  char *mp = join(w->dir, MANIFEST);
  if (!mp) {
    rc = fail(err, err_size, FL_ENOMEM, "out of memory");
    goto done;
  }
  struct stat st;
  int sr = lstat(mp, &st), se = errno;
  free(mp);
  if (sr == 0) {
    rc = fail(err, err_size, FL_ESTATE,
              "checkpoint %s already exists and is complete; use a "
              "new id (fl_ckpt_max_id() + 1)",
              w->dir);
    goto done;
  }
  if (se != ENOENT && se != ENOTDIR) {
    rc = fail_sys(err, err_size, se, "stat manifest of", w->dir);
    goto done;
  }
  int r = fl_rm_tree(w->dir); /* an incomplete leftover of the same id */
  if (r) {
    rc = fail(err, err_size, FL_EIO, "remove incomplete %s: %s", w->dir, etext(-r, eb, sizeof eb));
    goto done;
  }
  if (mkdir(w->dir, 0755) != 0) {
    rc = fail_sys(err, err_size, errno, "create directory", w->dir);
    goto done;
  }
  made_dir = true;
  if (collect_manifest_keys(w->parent, &w->old_keys) != FL_OK) {
    rc = fail(err, err_size, FL_ENOMEM, "out of memory reading the manifests of %s", w->parent);
    goto done;
  }
done:
  free(norm);
  if (rc) {
    if (made_dir) fl_rm_tree(w->dir);
    if (w->created_dir) fl_rm_tree(w->dir);
    if (w->registered) {
      pthread_mutex_lock(&g_reg_mu);
      reg_writer_remove(w);
      pthread_mutex_unlock(&g_reg_mu);
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
  if (!copy) return fail(err, err_size, FL_ENOMEM, "out of memory");
  pthread_mutex_lock(&w->mu);
  if (w->state != W_OPEN) {
    rc = fail(err, err_size, FL_ESTATE,
              "%s: the checkpoint is no longer open (committed or "
              "aborted)",
              w->dir);
    goto done;
  }
  if (strmap_get(&w->names, name, NULL)) {
    rc = fail(err, err_size, FL_EINVAL, "%s: file %s was already added", w->dir, name);
    goto done;
  }
  if (w->n == w->cap) {
    size_t nc = w->cap ? w->cap * 2 : 32;
    wentry_t *e = realloc(w->e, nc * sizeof *e);
    if (!e) {
      rc = fail(err, err_size, FL_ENOMEM, "out of memory");
      goto done;
    }
    w->e = e;
    w->cap = nc;
  }
  if (strmap_put(&w->names, copy, w->n) != FL_OK) {
    rc = fail(err, err_size, FL_ENOMEM, "out of memory");
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
  if (!w || !out) return fail(err, err_size, FL_EINVAL, "open_file: writer and out are required");
  if ((rc = check_name(name, true, "file name", err, err_size))) return rc;
  if ((rc = writer_reserve(w, name, &idx, err, err_size))) return rc;
  o = calloc(1, sizeof *o);
  if (o) {
    o->fd = -1;
    o->w = w;
    o->idx = idx;
    o->final = join(w->dir, name);
    o->tmp = o->final ? str_printf("%s.tmp", o->final) : NULL;
    o->buf = malloc(OUT_BUF);
  }
  if (!o || !o->final || !o->tmp || !o->buf) {
    rc = fail(err, err_size, FL_ENOMEM, "out of memory");
    goto done;
  }
  o->fd = open(o->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (o->fd < 0 && errno == ENOENT && strchr(name, '/')) {
    /* First file of a subdirectory. */
    char *pd = fl_path_parent(o->final);
    if (!pd) {
      rc = fail(err, err_size, FL_ENOMEM, "out of memory");
      goto done;
    }
    rc = fl_mkdir_p(pd, true, err, err_size);
    free(pd);
    if (rc) goto done;
    o->fd = open(o->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  }
  if (o->fd < 0) rc = fail_sys(err, err_size, errno, "create", o->tmp);
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
    snprintf(o->errmsg, sizeof o->errmsg, "write %s: %s", o->tmp, etext(-r, eb, sizeof eb));
  }
  return o->err;
}

int fl_ckpt_out_write(fl_ckpt_out_t *o, const void *data, size_t len, char *err, size_t err_size) {
  if (!o || (!data && len)) return fail(err, err_size, FL_EINVAL, "out_write: bad arguments");
  if (o->err) return fail(err, err_size, o->err, "%s", o->errmsg);
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
      snprintf(o->errmsg, sizeof o->errmsg, "write %s: %s", o->tmp, etext(-r, eb, sizeof eb));
    }
  } else if (!o->err) {
    memcpy(o->buf, data, len);
    o->len = len;
  }
  if (o->err) return fail(err, err_size, o->err, "%s", o->errmsg);
  return FL_OK;
}

static void out_free(fl_ckpt_out_t *o) {
  if (o->fd >= 0) close(o->fd);
  free(o->tmp);
  free(o->final);
  free(o->buf);
  free(o);
}

int fl_ckpt_out_close(fl_ckpt_out_t *o, uint64_t *size, uint32_t *crc32c, char *err,
                      size_t err_size) {
  if (!o) return fail(err, err_size, FL_EINVAL, "out_close: out is NULL");
  fl_ckpt_writer_t *w = o->w;
  int rc = FL_OK;
  if (out_flush(o)) {
    rc = fail(err, err_size, o->err, "%s", o->errmsg);
    goto done;
  }
  kill_point("file.written");
  if (fsync(o->fd) != 0) {
    rc = fail_sys(err, err_size, errno, "fsync", o->tmp);
    goto done;
  }
  int fd = o->fd;
  o->fd = -1;
  if (close(fd) != 0) {
    rc = fail_sys(err, err_size, errno, "close", o->tmp);
    goto done;
  }
  pthread_mutex_lock(&w->mu);
  bool open = w->state == W_OPEN;
  pthread_mutex_unlock(&w->mu);
  if (!open) {
    rc = fail(err, err_size, FL_ESTATE,
              "close %s: the checkpoint was aborted while the file "
              "was open",
              o->final);
    goto done;
  }
  if (rename(o->tmp, o->final) != 0) {
    rc = fail_sys(err, err_size, errno, "rename to its final name", o->tmp);
    goto done;
  }
  kill_point("file.renamed");
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
  if (!data && len) return fail(err, err_size, FL_EINVAL, "put %s: data is NULL", name ? name : "");
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
    return fail(err, err_size, FL_EINVAL, "add_file: writer and src_path are required");
  if ((rc = check_name(name, true, "file name", err, err_size))) return rc;
  fd = open(src_path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return fail_sys(err, err_size, errno, "open", src_path);
  if (!(buf = malloc(IO_CHUNK))) {
    rc = fail(err, err_size, FL_ENOMEM, "out of memory");
    goto done;
  }
  if ((rc = fl_ckpt_writer_open_file(w, name, &o, err, err_size))) goto done;
  for (;;) {
    ssize_t r = fl_read_some(fd, buf, IO_CHUNK);
    if (r < 0) {
      rc = fail_sys(err, err_size, (int)-r, "read", src_path);
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
  if (!buf) return fail(err, err_size, FL_ENOMEM, "out of memory");
  /* AT_SYMLINK_FOLLOW: a symbolic link src is linked to its target, not copied as a
   * link (which would point outside R). */
  linked = linkat(AT_FDCWD, src, AT_FDCWD, dst, AT_SYMLINK_FOLLOW) == 0;
  if (linked) {
    /* Read back through the link for the CRC; fsync makes sure the data, which
     * whoever wrote src may not have synced, is durable. */
    outfd = open(dst, O_RDONLY | O_CLOEXEC);
    if (outfd < 0) {
      rc = fail_sys(err, err_size, errno, "open", dst);
      goto done;
    }
    in = outfd;
  } else {
    in = open(src, O_RDONLY | O_CLOEXEC);
    if (in < 0) {
      rc = fail_sys(err, err_size, errno, "open", src);
      goto done;
    }
    outfd = open(dst, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (outfd < 0) {
      rc = fail_sys(err, err_size, errno, "create", dst);
      goto done;
    }
  }
  for (;;) {
    ssize_t r = fl_read_some(in, buf, IO_CHUNK);
    if (r < 0) {
      rc = fail_sys(err, err_size, (int)-r, "read", linked ? dst : src);
      goto done;
    }
    if (r == 0) break;
    c = fl_crc32c_extend(c, buf, (size_t)r);
    total += (uint64_t)r;
    if (!linked) {
      int wr = fl_write_all(outfd, buf, (size_t)r);
      if (wr) {
        rc = fail_sys(err, err_size, -wr, "write", dst);
        goto done;
      }
    }
  }
  if (total != size) {
    rc = fail(err, err_size, FL_EIO,
              "%s changed while being added (%" PRIu64 " bytes, then %" PRIu64
              "); shared files must be immutable",
              src, size, total);
    goto done;
  }
  if (fsync(outfd) != 0) {
    rc = fail_sys(err, err_size, errno, "fsync", dst);
    goto done;
  }
  *crc = c;
done:
  if (in >= 0 && in != outfd) close(in);
  if (outfd >= 0 && close(outfd) != 0 && !rc) rc = fail_sys(err, err_size, errno, "close", dst);
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
    return fail(err, err_size, FL_EINVAL, "add_shared: writer and src_path are required");
  if ((rc = check_name(name, true, "file name", err, err_size))) return rc;
  if ((rc = check_name(shared_key, false, "shared key", err, err_size))) return rc;
  if (w->kind == FL_CKPT_SAVEPOINT)
    return fl_ckpt_writer_add_file(w, name, src_path, err, err_size);

  struct stat st;
  if (stat(src_path, &st) != 0) return fail_sys(err, err_size, errno, "stat", src_path);
  if (!S_ISREG(st.st_mode))
    return fail(err, err_size, FL_EINVAL, "add_shared: %s is not a regular file", src_path);
  uint64_t size = (uint64_t)st.st_size;
  if ((rc = writer_reserve(w, name, &idx, err, err_size))) return rc;
  if (!(key = strdup(shared_key)) || !(dst = join(w->shared_dir, shared_key))) {
    rc = fail(err, err_size, FL_ENOMEM, "out of memory");
    goto done;
  }

  /* Announce the key before looking at R/shared: from here on retain keeps the file. */
  pthread_mutex_lock(&g_reg_mu);
  kent_t *k;
  rc = keytab_add(&w->keys, shared_key, &k);
  if (rc == FL_ENOMEM) {
    rc = fail(err, err_size, FL_ENOMEM, "out of memory");
  } else if (k->sized && k->size != size) {
    rc = fail(err, err_size, FL_ESTATE,
              "%s: shared key %s added twice with sizes %" PRIu64 " and %" PRIu64, w->dir,
              shared_key, k->size, size);
  } else if (k->done) {
    crc = k->crc;
    reused = true;
  } else {
    k->size = size;
    k->sized = true;
  }
  pthread_mutex_unlock(&g_reg_mu);
  if (rc || reused) goto done;

  kent_t *old = keytab_find(&w->old_keys, shared_key);
  if (old && old->size != size) {
    rc = fail(err, err_size, FL_ESTATE,
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
  if (!(tmp = str_printf("%s/_shared.%" PRIu64 ".tmp", w->dir, seq))) {
    rc = fail(err, err_size, FL_ENOMEM, "out of memory");
    goto done;
  }
  if ((rc = link_or_copy(src_path, tmp, size, &crc, err, err_size))) goto done;
  if (rename(tmp, dst) != 0) {
    rc = fail(err, err_size, FL_EIO, "rename %s to %s: %s", tmp, dst, etext(errno, eb, sizeof eb));
    unlink(tmp);
    goto done;
  }
  /* rename() between two links of one inode (the same src linked twice) succeeds
   * without removing the old name. */
  unlink(tmp);
  created = true;
  kill_point("shared.renamed");
  pthread_mutex_lock(&w->mu);
  w->shared_written = true;
  pthread_mutex_unlock(&w->mu);
done:
  if (rc == FL_OK && !reused) {
    pthread_mutex_lock(&g_reg_mu);
    kent_t *k2 = keytab_find(&w->keys, shared_key);
    if (k2) {
      k2->done = true;
      k2->crc = crc;
      k2->created |= created;
    }
    pthread_mutex_unlock(&g_reg_mu);
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
  if (!dirs) return fail(err, err_size, FL_ENOMEM, "out of memory");
  for (size_t i = 0; i < w->n; i++) {
    if (w->e[i].f.shared || !strchr(w->e[i].f.name, '/')) continue;
    char *p = join(w->dir, w->e[i].f.name);
    if (!p) {
      rc = fail(err, err_size, FL_ENOMEM, "out of memory");
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

int fl_ckpt_writer_commit(fl_ckpt_writer_t *w, const char *meta_json, char *err, size_t err_size) {
  int rc = FL_OK, fd = -1;
  json_t *meta = NULL;
  mfile_t **files = NULL;
  char *text = NULL, *tmp = NULL, *final = NULL;
  size_t len = 0;
  if (!w) return fail(err, err_size, FL_EINVAL, "commit: writer is NULL");
  pthread_mutex_lock(&w->mu);
  int refs = w->refs, state = w->state;
  bool failed = w->any_failed;
  if (state == W_OPEN) w->state = (refs == 1 && !failed) ? W_COMMITTING : W_ABORTED;
  pthread_mutex_unlock(&w->mu);
  if (state != W_OPEN) {
    rc = fail(err, err_size, FL_ESTATE, "commit %s: the writer was already committed or aborted",
              w->dir);
    goto done;
  }
  if (refs != 1) {
    rc = fail(err, err_size, FL_ESTATE,
              "commit %s: %d file(s) still open or being added; "
              "the checkpoint is aborted",
              w->dir, refs - 1);
    goto done;
  }
  if (failed) {
    rc = fail(err, err_size, FL_ESTATE,
              "commit %s: a file of the checkpoint failed to be "
              "written; the checkpoint is aborted",
              w->dir);
    goto done;
  }
  if (meta_json) {
    json_error_t je;
    meta = json_loads(meta_json, JSON_REJECT_DUPLICATES, &je);
    if (!json_is_object(meta)) {
      rc = fail(err, err_size, FL_EINVAL, "commit %s: meta is not a JSON object%s%s", w->dir,
                meta ? "" : ": ", meta ? "" : je.text);
      goto done;
    }
  } else if (!(meta = json_object())) {
    rc = fail(err, err_size, FL_ENOMEM, "out of memory");
    goto done;
  }
  /* No other thread touches w any more: entries are read without the lock. */
  files = malloc((w->n ? w->n : 1) * sizeof *files);
  if (!files) {
    rc = fail(err, err_size, FL_ENOMEM, "out of memory");
    goto done;
  }
  for (size_t i = 0; i < w->n; i++) files[i] = &w->e[i].f;
  if (w->n) qsort(files, w->n, sizeof *files, cmp_mfile_ptr);
  if ((rc = fsync_tree(w, err, err_size))) goto done;
  if (w->shared_written && (rc = fl_fsync_dir(w->shared_dir, err, err_size))) goto done;
  if (manifest_encode(w->kind, w->id, meta, files, w->n, &text, &len) != FL_OK) {
    rc = fail(err, err_size, FL_ENOMEM, "out of memory encoding the manifest of %s", w->dir);
    goto done;
  }
  tmp = join(w->dir, MANIFEST_TMP);
  final = join(w->dir, MANIFEST);
  if (!tmp || !final) {
    rc = fail(err, err_size, FL_ENOMEM, "out of memory");
    goto done;
  }
  fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    rc = fail_sys(err, err_size, errno, "create", tmp);
    goto done;
  }
  int wr = fl_write_all(fd, text, len);
  if (wr) {
    rc = fail_sys(err, err_size, -wr, "write", tmp);
    goto done;
  }
  if (fsync(fd) != 0) {
    rc = fail_sys(err, err_size, errno, "fsync", tmp);
    goto done;
  }
  int cfd = fd;
  fd = -1;
  if (close(cfd) != 0) {
    rc = fail_sys(err, err_size, errno, "close", tmp);
    goto done;
  }
  kill_point("manifest.tmp");
  if (rename(tmp, final) != 0) {
    rc = fail_sys(err, err_size, errno, "rename to _manifest:", tmp);
    goto done;
  }
  kill_point("manifest.renamed");
  if ((rc = fl_fsync_dir(w->dir, err, err_size))) goto done;
  rc = fl_fsync_dir(w->parent, err, err_size);
done:
  if (fd >= 0) close(fd);
  if (rc && tmp) unlink(tmp);
  json_decref(meta);
  free(files);
  free(text);
  free(tmp);
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

/* ---------------------------------------------------------------------------------- */
/* Reader                                                                               */

static void ckpt_free(fl_ckpt_t *c) {
  if (!c) return;
  if (c->paths) {
    for (size_t i = 0; i < c->n; i++) free(c->paths[i]);
  }
  free(c->paths);
  free(c->files);
  manifest_free(&c->m);
  free(c->dir);
  free(c->root_real);
  free(c);
}

void fl_ckpt_close(fl_ckpt_t *c) {
  if (!c) return;
  if (c->registered) {
    pthread_mutex_lock(&g_reg_mu);
    reg_reader_remove(c);
    pthread_mutex_unlock(&g_reg_mu);
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
  if (!c || !(c->dir = normalize_path(path))) {
    rc = fail(why, sizeof why, FL_ENOMEM, "out of memory");
    goto done;
  }
  if ((rc = manifest_read(c->dir, &c->m, why, sizeof why))) goto done;
  if (expect_id >= 0 && (c->m.kind != FL_CKPT_CHECKPOINT || c->m.id != expect_id)) {
    rc = fail(why, sizeof why, FL_EPARSE,
              "_manifest: it describes %s %" PRId64 ", not checkpoint %" PRId64,
              kind_str(c->m.kind), c->m.id, expect_id);
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
  shared = parent ? join(parent, SHARED_DIR) : NULL;
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
    rc = fail(why, sizeof why, FL_ENOMEM, "out of memory");
    goto done;
  }
  for (size_t i = 0; i < c->n; i++) {
    const mfile_t *f = &c->m.files[i];
    c->paths[i] = f->shared ? join(shared, f->key) : join(c->dir, f->name);
    if (!c->paths[i]) {
      rc = fail(why, sizeof why, FL_ENOMEM, "out of memory");
      goto done;
    }
    c->files[i] = (fl_ckpt_file_t){f->name, c->paths[i], f->size, f->crc, f->shared, f->key};
  }
  /* A checkpoint in a chk-<id> directory is registered before its files are read, so
   * that retain, from now on, keeps it and what it references. */
  int64_t dir_id;
  if (c->kind == FL_CKPT_CHECKPOINT && parse_chk_name(base_of(c->dir), &dir_id)) {
    c->root_real = realpath(parent, NULL);
    if (c->root_real) {
      pthread_mutex_lock(&g_reg_mu);
      c->reg_next = g_readers;
      g_readers = c;
      c->registered = true;
      pthread_mutex_unlock(&g_reg_mu);
    }
  }
  for (size_t i = 0; i < c->n; i++) {
    const fl_ckpt_file_t *f = &c->files[i];
    rc = verify_file(f->name, f->path, f->shared, f->size, f->crc32c, buf, cap, why, sizeof why);
    if (rc) goto done;
  }
done:
  free(parent);
  free(shared);
  free(buf);
  if (rc) {
    fail(err, err_size, rc, "%s %s is unusable: %s",
         c && c->m.meta ? kind_str(c->m.kind) : "checkpoint", c && c->dir ? c->dir : path, why);
    fl_ckpt_close(c);
    return rc;
  }
  *out = c;
  return FL_OK;
}

int fl_ckpt_open(fl_ckpt_t **out, const char *path, char *err, size_t err_size) {
  if (out) *out = NULL;
  if (!out || !path || !*path)
    return fail(err, err_size, FL_EINVAL, "open: out and path are required");
  return open_dir(out, path, -1, err, err_size);
}

static void log_line(fl_ckpt_log_fn log, void *arg, const char *line) {
  if (log)
    log(line, arg);
  else
    fprintf(stderr, "flink: %s\n", line);
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
    return fail(err, err_size, FL_EINVAL, "open_latest: out and root are required");
  if (!(norm = normalize_path(root))) return fail(err, err_size, FL_ENOMEM, "out of memory");
  rc = list_chk_ids(norm, &ids, &n, err, err_size);
  if (rc == FL_ENOTFOUND) {
    rc = fail(err, err_size, FL_ENOTFOUND,
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
      pthread_mutex_lock(&g_reg_mu);
      fl_ckpt_writer_t *w = reg_writer_on(real);
      writing = w && w->id == id;
      pthread_mutex_unlock(&g_reg_mu);
    }
    if (writing) continue;
    char name[32];
    snprintf(name, sizeof name, "chk-%" PRId64, id);
    char *dir = join(norm, name);
    if (!dir) {
      rc = fail(err, err_size, FL_ENOMEM, "out of memory");
      goto done;
    }
    tried++;
    rc = open_dir(out, dir, id, msg, sizeof msg);
    free(dir);
    if (rc == FL_OK) goto done;
    if (rc == FL_ENOMEM) {
      fail(err, err_size, rc, "%s", msg);
      goto done;
    }
    size_t ml = strlen(msg);
    snprintf(msg + ml, sizeof msg - ml, "; %s",
             i > 0 ? "falling back to an older one" : "no older checkpoint is left");
    log_line(log, log_arg, msg);
  }
  rc = fail(err, err_size, FL_ENOTFOUND, "no usable checkpoint under %s (%zu tried)", norm, tried);
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
    return fail(err, err_size, FL_EINVAL, "open: out and path are required");
  char *mp = join(path, MANIFEST);
  if (!mp) return fail(err, err_size, FL_ENOMEM, "out of memory");
  struct stat st;
  bool is_ckpt = lstat(mp, &st) == 0;
  free(mp);
  return is_ckpt ? fl_ckpt_open(out, path, err, err_size)
                 : fl_ckpt_open_latest(out, path, log, log_arg, err, err_size);
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
  unsigned char *buf = NULL;
  char eb[128];
  if (!c || !name || !data || !len)
    return fail(err, err_size, FL_EINVAL, "read_file: bad arguments");
  const fl_ckpt_file_t *f = fl_ckpt_file_find(c, name);
  if (!f) return fail(err, err_size, FL_ENOTFOUND, "%s has no file %s", c->dir, name);
  if (f->size > (uint64_t)SIZE_MAX - 1)
    return fail(err, err_size, FL_ENOMEM, "%s: %" PRIu64 " bytes do not fit in memory", f->path,
                f->size);
  fd = open(f->path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    int e = errno;
    return fail(err, err_size, e == ENOENT ? FL_EPARSE : FL_EIO, "%s: file %s: open %s: %s", c->dir,
                name, f->path, etext(e, eb, sizeof eb));
  }
  size_t n = (size_t)f->size, got = 0;
  if (!(buf = malloc(n + 1))) {
    rc = fail(err, err_size, FL_ENOMEM, "out of memory reading %s", f->path);
    goto done;
  }
  while (got <= n) {
    /* One byte of slack detects a file that grew. */
    ssize_t r = fl_read_some(fd, buf + got, n + 1 - got);
    if (r < 0) {
      rc = fail_sys(err, err_size, (int)-r, "read", f->path);
      goto done;
    }
    if (r == 0) break;
    got += (size_t)r;
  }
  if (got != n) {
    rc = fail(err, err_size, FL_EPARSE, "%s: file %s: size %s %" PRIu64 " bytes", c->dir, name,
              got > n ? "exceeds" : "is below", f->size);
    goto done;
  }
  uint32_t crc = fl_crc32c(buf, n);
  if (crc != f->crc32c) {
    rc = fail(err, err_size, FL_EPARSE,
              "%s: file %s: CRC32C mismatch (stored 0x%08" PRIx32 ", computed 0x%08" PRIx32 ")",
              c->dir, name, f->crc32c, crc);
    goto done;
  }
  buf[n] = 0;
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
  if (!c || !name || !out) return fail(err, err_size, FL_EINVAL, "in_open: bad arguments");
  const fl_ckpt_file_t *f = fl_ckpt_file_find(c, name);
  if (!f) return fail(err, err_size, FL_ENOTFOUND, "%s has no file %s", c->dir, name);
  fl_ckpt_in_t *in = calloc(1, sizeof *in);
  if (!in || !(in->path = strdup(f->path)) || !(in->name = strdup(name))) {
    if (in) {
      free(in->path);
      free(in);
    }
    return fail(err, err_size, FL_ENOMEM, "out of memory");
  }
  in->size = f->size;
  in->want = f->crc32c;
  in->fd = open(f->path, O_RDONLY | O_CLOEXEC);
  if (in->fd < 0) {
    int e = errno;
    fl_ckpt_in_close(in);
    return fail(err, err_size, e == ENOENT ? FL_EPARSE : FL_EIO, "%s: file %s: open %s: %s", c->dir,
                name, f->path, etext(e, eb, sizeof eb));
  }
  *out = in;
  return FL_OK;
}

int fl_ckpt_in_read(fl_ckpt_in_t *in, void *buf, size_t cap, size_t *got, char *err,
                    size_t err_size) {
  if (!in || !got || (!buf && cap)) return fail(err, err_size, FL_EINVAL, "in_read: bad arguments");
  *got = 0;
  if (cap == 0) return FL_OK;
  ssize_t r = fl_read_some(in->fd, buf, cap);
  if (r < 0) return fail_sys(err, err_size, (int)-r, "read", in->path);
  if (r == 0) {
    if (in->got != in->size)
      return fail(err, err_size, FL_EPARSE,
                  "file %s (%s): %" PRIu64 " bytes, the manifest says %" PRIu64, in->name, in->path,
                  in->got, in->size);
    if (in->crc != in->want)
      return fail(err, err_size, FL_EPARSE,
                  "file %s (%s): CRC32C mismatch (stored 0x%08" PRIx32 ", computed 0x%08" PRIx32
                  ")",
                  in->name, in->path, in->want, in->crc);
    return FL_OK;
  }
  if (in->got + (uint64_t)r > in->size)
    return fail(err, err_size, FL_EPARSE,
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
  if (l->n == l->cap) {
    size_t nc = l->cap ? l->cap * 2 : 8;
    char **v = realloc(l->v, nc * sizeof *v);
    if (!v) {
      free(s);
      return;
    }
    l->v = v;
    l->cap = nc;
  }
  l->v[l->n++] = s;
}

static int add_manifest_keys(keytab_t *t, const manifest_t *m) {
  for (size_t j = 0; j < m->n; j++) {
    if (m->files[j].shared && keytab_add(t, m->files[j].key, NULL)) return FL_ENOMEM;
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
  if (!root || !*root) return fail(err, err_size, FL_EINVAL, "retain: root is required");
  if (n < 1) return fail(err, err_size, FL_EINVAL, "retain %s: n must be at least 1", root);
  if (!(norm = normalize_path(root)) || !(shared = join(norm, SHARED_DIR))) {
    rc = fail(err, err_size, FL_ENOMEM, "out of memory");
    goto done;
  }
  if (!(real = realpath(norm, NULL))) {
    if (errno != ENOENT) rc = fail_sys(err, err_size, errno, "resolve", norm);
    goto done;
  }
  pthread_mutex_lock(&g_reg_mu);
  locked = true;
  rc = list_chk_ids(norm, &ids, &nids, err, err_size);
  if (rc == FL_ENOTFOUND) {
    rc = FL_OK;
    goto done;
  }
  if (rc) goto done;
  cs = calloc(nids ? nids : 1, sizeof *cs);
  if (!cs) {
    rc = fail(err, err_size, FL_ENOMEM, "out of memory");
    goto done;
  }
  fl_ckpt_writer_t *w = reg_writer_on(real);
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
    char *dir = join(norm, name);
    if (!dir) {
      rc = fail(err, err_size, FL_ENOMEM, "out of memory");
      goto done;
    }
    c->status = manifest_read(dir, &c->m, c->why, sizeof c->why);
    if (c->status == FL_OK && (c->m.kind != FL_CKPT_CHECKPOINT || c->m.id != c->id)) {
      snprintf(c->why, sizeof c->why, "_manifest: it describes %s %" PRId64, kind_str(c->m.kind),
               c->m.id);
      manifest_free(&c->m);
      c->status = FL_EPARSE;
    }
    if (c->status == FL_EIO || c->status == FL_ENOMEM || c->status == FL_ENOTSUP) {
      rc = fail(err, err_size, c->status, "retain %s: %s: %s; nothing deleted", norm, dir, c->why);
      free(dir);
      goto done;
    }
    free(dir);
    if (c->status == FL_OK && valid < n) {
      c->keep = true;
      valid++;
    }
    for (fl_ckpt_t *r = g_readers; r; r = r->reg_next) {
      if (r->id == c->id && strcmp(r->root_real, real) == 0) c->keep = true;
    }
  }
  /* Delete the others, each manifest first. */
  for (size_t k = 0; k < nids; k++) {
    rchk_t *c = &cs[k];
    if (c->keep) {
      if (c->status == FL_OK && add_manifest_keys(&refs, &c->m)) {
        rc = fail(err, err_size, FL_ENOMEM, "out of memory");
        goto done;
      }
      continue;
    }
    char name[32];
    snprintf(name, sizeof name, "chk-%" PRId64, c->id);
    char *dir = join(norm, name), *mp = dir ? join(dir, MANIFEST) : NULL;
    if (!mp) {
      free(dir);
      rc = fail(err, err_size, FL_ENOMEM, "out of memory");
      goto done;
    }
    if (c->status != FL_OK)
      lines_add(&lines, str_printf("checkpoint %s is unusable: %s; deleting it", dir, c->why));
    if (unlink(mp) != 0 && errno != ENOENT) {
      /* Still complete-looking: keep honouring what it references. */
      if (!rc) rc = fail_sys(err, err_size, errno, "retain: delete", mp);
      if (c->status == FL_OK && add_manifest_keys(&refs, &c->m)) {
        free(mp);
        free(dir);
        rc = fail(err, err_size, FL_ENOMEM, "out of memory");
        goto done;
      }
    } else {
      int r = fl_rm_tree(dir);
      if (r && !rc)
        rc = fail(err, err_size, FL_EIO, "retain: delete %s: %s", dir, etext(-r, eb, sizeof eb));
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
      if (keytab_add(&refs, w->keys.v[i].key, NULL)) {
        rc = fail(err, err_size, FL_ENOMEM, "out of memory");
        goto done;
      }
    }
  }
  for (fl_ckpt_t *r = g_readers; r; r = r->reg_next) {
    if (strcmp(r->root_real, real) != 0) continue;
    if (add_manifest_keys(&refs, &r->m)) {
      rc = fail(err, err_size, FL_ENOMEM, "out of memory");
      goto done;
    }
  }
  DIR *d = opendir(shared);
  if (!d) {
    if (errno != ENOENT && !rc) rc = fail_sys(err, err_size, errno, "list directory", shared);
    goto done;
  }
  bool deleted = false;
  struct dirent *de;
  while ((de = readdir(d)) != NULL) {
    if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0) continue;
    if (keytab_find(&refs, de->d_name)) continue;
    struct stat st;
    if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 || S_ISDIR(st.st_mode))
      continue;
    if (unlinkat(dirfd(d), de->d_name, 0) != 0) {
      if (errno != ENOENT && !rc) {
        char *p = join(shared, de->d_name);
        rc = fail_sys(err, err_size, errno, "retain: delete", p ? p : de->d_name);
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
  if (locked) pthread_mutex_unlock(&g_reg_mu);
  for (size_t i = 0; i < lines.n; i++) {
    log_line(log, log_arg, lines.v[i]);
    free(lines.v[i]);
  }
  free(lines.v);
  if (cs) {
    for (size_t k = 0; k < nids; k++) manifest_free(&cs[k].m);
  }
  free(cs);
  free(ids);
  keytab_free(&refs);
  free(norm);
  free(real);
  free(shared);
  return rc;
}

int fl_ckpt_max_id(const char *root, int64_t *id, char *err, size_t err_size) {
  int64_t *ids = NULL;
  size_t n = 0;
  if (!root || !id) return fail(err, err_size, FL_EINVAL, "max_id: root and id are required");
  *id = -1;
  char *norm = normalize_path(root);
  if (!norm) return fail(err, err_size, FL_ENOMEM, "out of memory");
  int rc = list_chk_ids(norm, &ids, &n, err, err_size);
  free(norm);
  if (rc == FL_ENOTFOUND) return FL_OK;
  if (rc) return rc;
  if (n) *id = ids[n - 1];
  free(ids);
  return FL_OK;
}
