/*
 * What the four parts of the checkpoint store share (store_manifest.c, store_write.c,
 * store_read.c, store_retain.c). Private to src/checkpoint/store*.c: store.h is the
 * module's contract, this is its wiring. Everything here is named fl_cs_* because the
 * static library exports every non-static symbol.
 */
#ifndef FL_CHECKPOINT_STORE_INTERNAL_H
#define FL_CHECKPOINT_STORE_INTERNAL_H

#include <jansson.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "checkpoint/store.h"

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
/* Errors and paths (store_manifest.c)                                                  */

/* Writes the message into err (when err is not NULL) and returns code. */
int fl_cs_fail(char *err, size_t err_size, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* strerror text of e; uses buf. */
const char *fl_cs_etext(int e, char *buf, size_t n);
/* FL_EIO with "<what> <path>: <strerror(e)>". */
int fl_cs_fail_sys(char *err, size_t err_size, int e, const char *what, const char *path);
/* malloc'd printf; NULL on ENOMEM. */
char *fl_cs_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* "a/b", malloc'd; NULL on ENOMEM. */
char *fl_cs_join(const char *a, const char *b);
/* A copy of path without trailing slashes ("/" stays "/"). */
char *fl_cs_normalize_path(const char *path);
/* The last component of path (borrowed from it). */
const char *fl_cs_base_of(const char *path);

/* Validates a file name (path_ok: '/'-separated components) or a shared key. */
int fl_cs_check_name(const char *name, bool path_ok, const char *what, char *err, size_t err_size);
/* "chk-<id>": decimal, no sign, no leading zero, at most INT64_MAX. */
bool fl_cs_parse_chk_name(const char *s, int64_t *id);

/* ---------------------------------------------------------------------------------- */
/* String map and key tables (store_manifest.c)                                         */

/* Open addressing with linear probing from a string to an index; the strings are
 * borrowed (their owners outlive the map). Kept at most half full. */
typedef struct strmap {
  const char **keys;
  size_t *vals;
  size_t cap, n;
} strmap_t;

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

bool fl_cs_strmap_get(const strmap_t *m, const char *key, size_t *val);
/* Inserts a key known to be absent. */
int fl_cs_strmap_put(strmap_t *m, const char *key, size_t val);
void fl_cs_strmap_free(strmap_t *m);
kent_t *fl_cs_keytab_find(keytab_t *t, const char *key);
/* Adds key if absent. *out (optional) points at its entry until the next add. */
int fl_cs_keytab_add(keytab_t *t, const char *key, kent_t **out);
void fl_cs_keytab_free(keytab_t *t);

/* ---------------------------------------------------------------------------------- */
/* Files and manifests (store_manifest.c)                                               */

/* Calls the kill hook of crash tests, if one is set (fl_ckpt_set_kill_hook). */
void fl_cs_kill_point(const char *point);
/* Reads fd from where it stands to its end, or to max + 1 bytes, into a malloc'd
 * NUL-terminated buffer (*out, *len bytes: *len > max tells that there is more than
 * max); the first allocation holds hint bytes (the size the caller expects). FL_EIO or
 * FL_ENOMEM with the reason, naming path, in err. */
int fl_cs_read_fd(int fd, const char *path, size_t hint, size_t max, char **out, size_t *len,
                  char *err, size_t err_size);
/* Checks that the file at path has the size and CRC32C the manifest recorded for name,
 * reading it through buf (cap bytes). FL_EPARSE for a mismatch or a missing file, with
 * the reason in why. */
int fl_cs_verify_file(const char *name, const char *path, bool shared, uint64_t size, uint32_t crc,
                      unsigned char *buf, size_t cap, char *why, size_t why_size);
/* Lists the chk-<id> directories of root, ids ascending. FL_ENOTFOUND when root does
 * not exist. */
int fl_cs_list_chk_ids(const char *root, int64_t **ids, size_t *n, char *err, size_t err_size);
void fl_cs_manifest_free(manifest_t *m);
const char *fl_cs_kind_str(fl_ckpt_kind_t k);
/* Serializes a manifest: JSON, then the checksum line. *out is malloc'd. */
int fl_cs_manifest_encode(fl_ckpt_kind_t kind, int64_t id, json_t *meta, mfile_t *const *files,
                          size_t n, char **out, size_t *len);
/* Reads and decodes dir/_manifest. FL_ENOTFOUND without one; the reason goes to why. */
int fl_cs_manifest_read(const char *dir, manifest_t *m, char *why, size_t why_size);
/* A line for the caller's log, or stderr when log is NULL. */
void fl_cs_log_line(fl_ckpt_log_fn log, void *arg, const char *line);

/* ---------------------------------------------------------------------------------- */
/* Writers and open checkpoints, and their registry (store_write.c)                     */

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
  /* fl_ckpt_out_defer: pieces written at close, in order */
  struct out_piece {
    const void *data;
    size_t len;
    void (*release)(void *);
    void *arg;
  } * defer;
  size_t n_defer, cap_defer;
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
extern pthread_mutex_t fl_cs_reg_mu;
extern fl_ckpt_writer_t *fl_cs_writers;
extern fl_ckpt_t *fl_cs_readers;

/* The writer registered on root_real, or NULL. Under fl_cs_reg_mu. */
fl_ckpt_writer_t *fl_cs_reg_writer_on(const char *root_real);
/* Unlink from the registry lists; under fl_cs_reg_mu. */
void fl_cs_reg_writer_remove(fl_ckpt_writer_t *w);
void fl_cs_reg_reader_remove(fl_ckpt_t *c);
/* Adds the shared keys of every complete, valid checkpoint manifest under root to t
 * (with size and crc; the first manifest seen wins for a key). Manifests that cannot be
 * read or are corrupt are skipped. Only FL_ENOMEM is an error. */
int fl_cs_collect_manifest_keys(const char *root, keytab_t *t);

#endif
