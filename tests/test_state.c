/*
 * State descriptors (src/api/state_desc.c): ids, names, validation, TTL configuration
 * and ownership of the opaque pointer. The typed state layer itself (src/state/state.c)
 * is tested on every backend by the state contract (state_contract.c, run by
 * test_kv_hashmap.c and test_kv_rocksdb.c).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "api/builder.h"
#include "fl_test_util.h"
#include "state/state.h"

/* A reduce function to name (descriptors only keep the pointer). */
static int keep_first(fl_context_t *ctx, const void *a, size_t al, const void *b, size_t bl,
                      fl_buf_t *out, void *opaque) {
  return fl_buf_set(out, a, al);
}

/* ---------------------------------------------------------------------------------- */
/* Descriptors                                                                          */

static int destroyed;
static void count_destroy(void *opaque) { destroyed++; }

static void noop_init(void *acc, void *opaque) {}

static int noop_add(fl_context_t *ctx, void *acc, const fl_record_t *in, void *opaque) { return 0; }

static fl_env_t *new_env(void) { return env_of(NULL); }

static void descriptors_get_dense_ids_and_unique_names(void **state) {
  fl_env_t *env = new_env();
  fl_state_desc_t *a = fl_state_value(env, "a");
  fl_state_desc_t *b = fl_state_list(env, "b");
  fl_state_desc_t *c = fl_state_map(env, "c");
  fl_state_desc_t *d = fl_state_reducing(env, "d", keep_first, NULL);
  assert_non_null(a);
  assert_non_null(b);
  assert_non_null(c);
  assert_non_null(d);
  assert_int_equal(a->id, 0);
  assert_int_equal(b->id, 1);
  assert_int_equal(d->id, 3);
  assert_int_equal(c->kind, FL_STATE_MAP);
  assert_ptr_equal(d->reduce, keep_first);
  assert_ptr_equal(env->descs[2], c);
  assert_int_equal(env->error, 0);
  assert_null(fl_state_list(env, "a"));
  assert_int_equal(env->error, FL_EINVAL);
  assert_non_null(strstr(fl_env_error(env), "'a'"));
  assert_int_equal(env->n_descs, 4);
  fl_env_destroy(env);
}

static void descriptor_names_must_be_non_empty_and_not_reserved(void **state) {
  const char *bad[] = {NULL, "", "__x"};
  for (size_t i = 0; i < 3; i++) {
    fl_env_t *env = new_env();
    assert_null(fl_state_value(env, bad[i]));
    assert_int_equal(env->error, FL_EINVAL);
    assert_int_equal(env->n_descs, 0);
    fl_env_destroy(env);
  }
  fl_env_t *env = new_env();
  assert_null(fl_state_reducing(env, "r", NULL, NULL));
  assert_int_equal(env->error, FL_EINVAL);
  fl_env_destroy(env);
  assert_null(fl_state_value(NULL, "x"));
}

static void aggregating_descriptors_validate_the_table_and_destroy_once(void **state) {
  fl_aggregate_fn_t ok = {
      FL_AGGREGATE_FN_VERSION, 16, noop_init, noop_add, NULL, NULL, count_destroy};
  fl_aggregate_fn_t bad[5] = {ok, ok, ok, ok, ok};
  bad[0].version = 2;
  bad[1].acc_size = 0;
  bad[2].acc_size = 65537;
  bad[3].init = NULL;
  bad[4].add = NULL;
  for (size_t i = 0; i < 5; i++) {
    fl_env_t *env = new_env();
    destroyed = 0;
    assert_null(fl_state_aggregating(env, "agg", &bad[i], NULL));
    assert_int_equal(env->error, FL_EINVAL);
    assert_int_equal(destroyed, 1); /* not kept: released at once */
    fl_env_destroy(env);
    assert_int_equal(destroyed, 1);
  }
  fl_env_t *env = new_env();
  destroyed = 0;
  ok.acc_size = 65536;
  fl_state_desc_t *d = fl_state_aggregating(env, "agg", &ok, &ok);
  assert_non_null(d);
  assert_int_equal(d->agg.acc_size, 65536);
  assert_ptr_equal(d->opaque, &ok);
  /* an internal descriptor with the same table does not own the opaque pointer */
  struct fl_state_desc *in = fl_env_internal_desc(env, "contents", FL_STATE_AGGREGATING);
  assert_non_null(in);
  in->agg = ok;
  in->opaque = &ok;
  assert_int_equal(destroyed, 0);
  fl_env_destroy(env);
  assert_int_equal(destroyed, 1);
}

static void set_ttl_validates_the_config(void **state) {
  fl_env_t *env = new_env();
  fl_state_desc_t *d = fl_state_value(env, "v");
  fl_ttl_config_t t = {FL_TTL_CONFIG_VERSION,
                       1000,
                       FL_TTL_ON_READ_AND_WRITE,
                       FL_TTL_RETURN_EXPIRED_IF_NOT_CLEANED_UP,
                       5,
                       1};
  fl_ttl_config_t zero = t, neg = t, ver = t, upd = t;
  zero.ttl_ms = 0;
  neg.ttl_ms = -5;
  ver.version = 7;
  upd.update = (fl_ttl_update_t)9;
  assert_int_equal(fl_state_desc_set_ttl(NULL, &t), FL_EINVAL);
  assert_int_equal(fl_state_desc_set_ttl(d, NULL), FL_EINVAL);
  assert_int_equal(fl_state_desc_set_ttl(d, &zero), FL_EINVAL);
  assert_int_equal(fl_state_desc_set_ttl(d, &neg), FL_EINVAL);
  assert_int_equal(fl_state_desc_set_ttl(d, &ver), FL_EINVAL);
  assert_int_equal(fl_state_desc_set_ttl(d, &upd), FL_EINVAL);
  assert_int_equal(d->has_ttl, 0);
  assert_int_equal(fl_state_desc_set_ttl(d, &t), FL_OK);
  assert_int_equal(d->has_ttl, 1);
  assert_int_equal(d->ttl.ttl_ms, 1000);
  assert_int_equal(d->ttl.incremental_cleanup_size, 5);
  fl_env_destroy(env);
}

static void internal_descriptors_are_prefixed_and_never_clash(void **state) {
  fl_env_t *env = new_env();
  assert_non_null(fl_state_value(env, "x"));
  struct fl_state_desc *a = fl_env_internal_desc(env, "x", FL_STATE_LIST);
  struct fl_state_desc *b = fl_env_internal_desc(env, "x", FL_STATE_VALUE);
  assert_non_null(a);
  assert_non_null(b);
  assert_string_equal(a->name, "__x");
  assert_string_not_equal(b->name, "__x");
  assert_int_equal(strncmp(b->name, "__x", 3), 0);
  assert_int_equal(a->id, 1);
  assert_int_equal(b->id, 2);
  assert_int_equal(a->kind, FL_STATE_LIST);
  assert_int_equal(env->error, 0);
  fl_env_destroy(env);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(descriptors_get_dense_ids_and_unique_names),
      cmocka_unit_test(descriptor_names_must_be_non_empty_and_not_reserved),
      cmocka_unit_test(aggregating_descriptors_validate_the_table_and_destroy_once),
      cmocka_unit_test(set_ttl_validates_the_config),
      cmocka_unit_test(internal_descriptors_are_prefixed_and_never_clash),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
