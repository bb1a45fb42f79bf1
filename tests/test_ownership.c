/*
 * The ownership rule of every builder that takes an opaque pointer with a destroy
 * function: one the graph keeps is released exactly once, when the environment is
 * destroyed; one it does not keep (NULL input, a call after execute, an invalid
 * function table) is released before the call returns.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "flink.h"

static int g_released;
static void count_release(void *opaque) {
  assert_ptr_equal(opaque, &g_released);
  g_released++;
}

static int src_run(fl_context_t *ctx, void *inst) { return FL_SOURCE_END; }
static int proc(fl_context_t *ctx, const fl_record_t *in, void *inst) { return 0; }
static int write_rec(fl_context_t *ctx, const fl_record_t *in, void *inst) { return 0; }
static void acc_init(void *acc, void *opaque) { memset(acc, 0, 8); }
static int acc_add(fl_context_t *ctx, void *acc, const fl_record_t *in, void *opaque) { return 0; }
static int acc_result(fl_context_t *ctx, const fl_window_t *w, const void *acc, void *opaque) {
  return 0;
}
static int key_all(fl_context_t *ctx, const fl_record_t *in, const void **key, size_t *len,
                   void *opaque) {
  *key = "k";
  *len = 1;
  return 0;
}

static const fl_source_fn_t src_fn = {
    .version = FL_SOURCE_FN_VERSION, .run = src_run, .destroy = count_release};
static const fl_source_fn_t src_bad = {.version = 99, .run = src_run, .destroy = count_release};
static const fl_process_fn_t proc_fn = {
    .version = FL_PROCESS_FN_VERSION, .process = proc, .destroy = count_release};
static const fl_process_fn_t proc_bad = {.version = FL_PROCESS_FN_VERSION,
                                         .destroy = count_release};
static const fl_sink_fn_t sink_fn = {
    .version = FL_SINK_FN_VERSION, .write = write_rec, .destroy = count_release};
static const fl_sink_fn_t sink_bad = {.version = FL_SINK_FN_VERSION, .destroy = count_release};
static const fl_aggregate_fn_t agg_fn = {.version = FL_AGGREGATE_FN_VERSION,
                                         .acc_size = 8,
                                         .init = acc_init,
                                         .add = acc_add,
                                         .result = acc_result,
                                         .destroy = count_release};
static const fl_aggregate_fn_t agg_bad = {.version = FL_AGGREGATE_FN_VERSION,
                                          .acc_size = 0,
                                          .init = acc_init,
                                          .add = acc_add,
                                          .result = acc_result,
                                          .destroy = count_release};
static const fl_co_process_fn_t co_fn = {.version = FL_CO_PROCESS_FN_VERSION,
                                         .process1 = proc,
                                         .process2 = proc,
                                         .destroy = count_release};
static const fl_co_process_fn_t co_bad = {
    .version = FL_CO_PROCESS_FN_VERSION, .process1 = proc, .destroy = count_release};
static const fl_broadcast_process_fn_t bc_fn = {.version = FL_BROADCAST_PROCESS_FN_VERSION,
                                                .process = proc,
                                                .process_broadcast = proc,
                                                .destroy = count_release};
static const fl_broadcast_process_fn_t bc_bad = {
    .version = FL_BROADCAST_PROCESS_FN_VERSION, .process = proc, .destroy = count_release};

/* The ways a builder can be called; each test runs its builder in all of them. */
typedef enum {
  KEPT,
  NULL_INPUT,
  AFTER_EXECUTE,
  BAD_TABLE
} how_t;

typedef struct {
  fl_env_t *env;
  fl_stream_t *s;       /* a source's stream */
  fl_keyed_stream_t *k; /* keyed by key_all */
} graph_t;

static void graph_new(graph_t *g, how_t how) {
  memset(g, 0, sizeof *g);
  assert_int_equal(fl_env_new(&g->env, NULL, NULL, 0), 0);
  fl_record_t r = {"k", 1, "v", 1, 1};
  g->s = fl_source_collection(g->env, "in", &r, 1);
  g->k = fl_stream_key_by(g->s, key_all, NULL);
  if (how == AFTER_EXECUTE) {
    /* a job needs a sink; it runs once, then the graph cannot change */
    static const fl_sink_fn_t plain = {.version = FL_SINK_FN_VERSION, .write = write_rec};
    assert_int_equal(fl_stream_sink(g->s, "end", &plain, NULL), 0);
    assert_int_equal(fl_env_execute(g->env, "ownership"), 0);
  }
}

/* After a builder call: kept opaques are released only by fl_env_destroy, unkept ones
 * already. */
static void check(graph_t *g, how_t how) {
  assert_int_equal(g_released, how == KEPT ? 0 : 1);
  fl_env_destroy(g->env);
  assert_int_equal(g_released, 1);
  g_released = 0;
}

#define FOR_EACH_HOW(body)                           \
  for (int how_ = KEPT; how_ <= BAD_TABLE; how_++) { \
    how_t how = (how_t)how_;                         \
    graph_t g;                                       \
    graph_new(&g, how);                              \
    body;                                            \
    check(&g, how);                                  \
  }

static void source_releases_what_it_does_not_keep(void **state) {
  FOR_EACH_HOW({
    fl_env_t *env = how == NULL_INPUT ? NULL : g.env;
    fl_source(env, "s", how == BAD_TABLE ? &src_bad : &src_fn, &g_released, 1);
  });
}

static void process_releases_what_it_does_not_keep(void **state) {
  FOR_EACH_HOW({
    fl_stream_process(how == NULL_INPUT ? NULL : g.s, "p", how == BAD_TABLE ? &proc_bad : &proc_fn,
                      &g_released);
  });
}

static void keyed_process_releases_what_it_does_not_keep(void **state) {
  FOR_EACH_HOW({
    fl_keyed_process(how == NULL_INPUT ? NULL : g.k, "kp", how == BAD_TABLE ? &proc_bad : &proc_fn,
                     &g_released);
  });
}

static void sink_releases_what_it_does_not_keep(void **state) {
  FOR_EACH_HOW({
    fl_stream_sink(how == NULL_INPUT ? NULL : g.s, "sink", how == BAD_TABLE ? &sink_bad : &sink_fn,
                   &g_released);
  });
}

static void window_aggregate_releases_what_it_does_not_keep(void **state) {
  FOR_EACH_HOW({
    fl_windowed_stream_t *w =
        how == NULL_INPUT ? NULL : fl_window_tumbling(g.k, FL_EVENT_TIME, 10, 0);
    fl_window_aggregate(w, "agg", how == BAD_TABLE ? &agg_bad : &agg_fn, &g_released);
  });
}

static void aggregating_state_releases_what_it_does_not_keep(void **state) {
  FOR_EACH_HOW({
    fl_state_aggregating(how == NULL_INPUT ? NULL : g.env, "acc",
                         how == BAD_TABLE ? &agg_bad : &agg_fn, &g_released);
  });
}

static void connect_releases_what_it_does_not_keep(void **state) {
  FOR_EACH_HOW({
    fl_connect_process(how == NULL_INPUT ? NULL : g.s, g.s, "co",
                       how == BAD_TABLE ? &co_bad : &co_fn, &g_released);
  });
}

static void keyed_connect_releases_what_it_does_not_keep(void **state) {
  FOR_EACH_HOW({
    fl_keyed_connect_process(how == NULL_INPUT ? NULL : g.k, g.k, "kco",
                             how == BAD_TABLE ? &co_bad : &co_fn, &g_released);
  });
}

static void broadcast_releases_what_it_does_not_keep(void **state) {
  FOR_EACH_HOW({
    fl_keyed_broadcast_process(how == NULL_INPUT ? NULL : g.k, g.s, "bc",
                               how == BAD_TABLE ? &bc_bad : &bc_fn, &g_released);
  });
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(source_releases_what_it_does_not_keep),
      cmocka_unit_test(process_releases_what_it_does_not_keep),
      cmocka_unit_test(keyed_process_releases_what_it_does_not_keep),
      cmocka_unit_test(sink_releases_what_it_does_not_keep),
      cmocka_unit_test(window_aggregate_releases_what_it_does_not_keep),
      cmocka_unit_test(aggregating_state_releases_what_it_does_not_keep),
      cmocka_unit_test(connect_releases_what_it_does_not_keep),
      cmocka_unit_test(keyed_connect_releases_what_it_does_not_keep),
      cmocka_unit_test(broadcast_releases_what_it_does_not_keep),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
