/*
 * The contract of a state backend (src/state/kv.h), as cmocka suites that take the
 * backend as a parameter:
 *
 *   kvc_run_kv_suite     what every backend promises through fl_kv_ops_t: value cells,
 *                        appends, deletes, key groups, namespaces, tables, map cells,
 *                        cursor walks with NEXT / DELETE / STOP, and the optional calls
 *                        (retain_key_groups, TTL layouts) where the backend has them;
 *   kvc_run_state_suite  the typed state layer (src/state/state.c) on that backend:
 *                        every state kind, namespace merges, Flink's TTL, cleanup.
 *
 * A backend's test (test_kv_hashmap.c, test_kv_rocksdb.c) fills a kvc_backend_t, runs
 * both suites, then its own cases with the same fixture (kvc_setup / kvc_teardown with
 * the backend as cmocka's initial state). A new backend does the same in its own
 * test_kv_<name>.c. The helpers below are the suites' vocabulary, shared with those
 * backend-specific cases.
 */
#ifndef FL_KV_CONTRACT_H
#define FL_KV_CONTRACT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "flink.h"
#include "state/kv.h"

struct CMUnitTest;

/* Walks (iterate) visit cells in (key group, key, namespace) byte order and map_iter
 * visits user keys in byte order; the suites then check the order too. */
#define KVC_ORDERED 1u

typedef struct kvc_backend {
  const char *name;
  /* Opens a new, empty store into *kv. *ctx is the factory's own (a directory, say),
   * handed back to close. 0 or a negative fl_err_t. */
  int (*open)(fl_kv_t *kv, void **ctx);
  /* Destroys the store (kv->ops may be NULL after a failed reopen) and what open made. */
  void (*close)(fl_kv_t *kv, void *ctx);
  /* Does now what the backend otherwise does in the background: folds appends, drops
   * expired cells of TTL tables (RocksDB: flush and compact). NULL if it has nothing of
   * the kind; the TTL-layout cases need it when the backend has set_table_ttl. */
  int (*settle)(fl_kv_t *kv);
  unsigned flags; /* KVC_* */
  uint32_t many;  /* cells of the largest case (enough to grow the store's structures) */
} kvc_backend_t;

/* Runs the suites on backend b; cmocka's result (the number of failed cases). */
int kvc_run_kv_suite(const kvc_backend_t *b);
int kvc_run_state_suite(const kvc_backend_t *b);
/* Both suites, then the backend's own cases; the number of failed cases. */
int kvc_run_all(const kvc_backend_t *b, const struct CMUnitTest *own, size_t n_own);

/* ---- Fixture: one store of the backend, its table "t" ---- */

typedef struct kvc_fx {
  const kvc_backend_t *b;
  void *ctx; /* the factory's */
  fl_kv_t kv;
  uint32_t t;
} kvc_fx_t;

/* *state is the backend (cmocka_unit_test_prestate_setup_teardown) on entry, the
 * kvc_fx_t after. */
int kvc_setup(void **state);
int kvc_teardown(void **state);
/* A backend's own case on that fixture. */
#define KVC_CASE(fn, backend) \
  cmocka_unit_test_prestate_setup_teardown(fn, kvc_setup, kvc_teardown, (void *)(backend))

/* ---- Cells ---- */

static inline fl_kkey_t kk(uint16_t kg, const void *key, size_t kl, const void *ns, size_t nl) {
  fl_kkey_t k = {kg, key, kl, ns, nl};
  return k;
}

/* ns may be NULL (no namespace). */
static inline fl_kkey_t kstr(uint16_t kg, const char *key, const char *ns) {
  return kk(kg, key, strlen(key), ns, ns ? strlen(ns) : 0);
}

/* The cell of a 4-byte key, in key group key % 128. */
static inline fl_kkey_t knum(const uint32_t *key) {
  return kk((uint16_t)(*key % 128), key, sizeof *key, NULL, 0);
}

int kvc_get(kvc_fx_t *f, uint32_t t, fl_kkey_t k, const void **v, size_t *n);
int kvc_put(kvc_fx_t *f, uint32_t t, fl_kkey_t k, const void *v, size_t n);
int kvc_put_str(kvc_fx_t *f, fl_kkey_t k, const char *v); /* in table f->t */
size_t kvc_count(kvc_fx_t *f, uint32_t t);
/* The cells walks check (kvc_mark_cb): knum(i) holds i * 3 (4 bytes); _nums puts
 * 0..n-1. */
int kvc_put_num(kvc_fx_t *f, uint32_t t, uint32_t i);
void kvc_put_nums(kvc_fx_t *f, uint32_t t, uint32_t n);
void kvc_assert_num(kvc_fx_t *f, uint32_t t, uint32_t i);
/* Map cell k of table f->t: put user key uk = v. */
int kvc_mput(kvc_fx_t *f, fl_kkey_t k, const char *uk, const char *v);

void kvc_assert_value_in(fl_kv_t *kv, uint32_t t, fl_kkey_t k, const void *want, size_t wl);
void kvc_assert_value(kvc_fx_t *f, uint32_t t, fl_kkey_t k, const void *want, size_t wl);
void kvc_assert_str(kvc_fx_t *f, fl_kkey_t k, const char *want); /* in table f->t */
void kvc_assert_absent(kvc_fx_t *f, uint32_t t, fl_kkey_t k);
/* A lookup's result (rc, v, n) is want (NULL: rc is 0, absent). */
void kvc_assert_found(int rc, const void *v, size_t n, const char *want);
/* User key uk of map cell k in table f->t holds want (NULL: absent). */
void kvc_assert_mval(kvc_fx_t *f, fl_kkey_t k, const char *uk, const char *want);

/* ---- Walks over cells written as knum(i) -> i * 3 ---- */

typedef struct kvc_seen {
  uint8_t *bits; /* bits[i]: cell i was visited */
  size_t visits;
  int dup; /* some cell was visited twice */
} kvc_seen_t;

/* An iterate callback for those cells: checks each, marks it in a kvc_seen_t. */
int kvc_mark_cb(const fl_kkey_t *k, const void *v, size_t n, void *arg);

/* ---- Table names ---- */

typedef struct kvc_names {
  char buf[512];  /* "a,b,c" */
  int n, stop_at; /* stop (returning 1) at the stop_at-th name; 0: never */
} kvc_names_t;

int kvc_name_cb(const char *name, void *arg);

#endif
