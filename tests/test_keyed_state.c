/* Keyed state through the public API: every state kind, wrong-kind and non-keyed access,
 * State TTL (update type, visibility, per-item expiry, incremental cleanup) and the
 * descriptor checks. Each case runs at parallelism 1 and 2 and checks each key's outputs
 * in order (a keyBy keeps per-key order at any parallelism).
 *
 * Records carry commands in their value: "[@T ]op args". "@T" sets the processing-time
 * clock to T ms before the op. The clock is thread-local: every subtask runs on its own
 * worker thread and all records of a key reach one subtask, so each key sees exactly the
 * timeline its records describe; one shared clock would race between two subtasks. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <cmocka.h>
#include <stdatomic.h>

#include "fl_test_util.h"

static _Thread_local int64_t tl_now;

static int64_t test_clock(void *opaque) {
  (void)opaque;
  return tl_now;
}

/* One case: its descriptors (read-only once built) and its process function. */
typedef struct kcase {
  fl_state_desc_t *d[4];
  atomic_int rc[4]; /* return codes recorded by the process function */
} kcase_t;

typedef void (*build_fn)(fl_env_t *env, kcase_t *kc);

/* Parses "[@T ]op rest": sets the clock, copies op, points *rest after it. */
static void parse_cmd(const fl_record_t *in, char *buf, size_t cap, char **op, char **rest) {
  size_t n = in->value_len < cap - 1 ? in->value_len : cap - 1;
  memcpy(buf, in->value, n);
  buf[n] = 0;
  char *p = buf;
  if (*p == '@') {
    tl_now = strtoll(p + 1, &p, 10);
    while (*p == ' ') p++;
  }
  *op = p;
  char *sp = strchr(p, ' ');
  if (sp) {
    *sp = 0;
    *rest = sp + 1;
  } else {
    *rest = p + strlen(p);
  }
}

static int emit_str(fl_context_t *ctx, const fl_record_t *in, const char *s) {
  return fl_emit(ctx, in->key, in->key_len, s, strlen(s), in->timestamp);
}

/* The outputs of one key, in order, joined by '|'. */
static char *outputs_of(const collector_t *c, const char *key) {
  size_t cap = 16;
  for (size_t i = 0; i < c->n; i++) cap += c->r[i].value_len + 1;
  char *s = calloc(1, cap);
  for (size_t i = 0; i < c->n; i++) {
    if (strcmp(c->r[i].key, key) != 0) continue;
    if (*s) strcat(s, "|");
    strcat(s, c->r[i].value);
  }
  return s;
}

/* Runs source(cmds) -> keyBy -> keyed process(fn) -> collector. */
static void run_keyed(int parallelism, const char *const (*cmds)[2], size_t n, build_fn build,
                      int (*process)(fl_context_t *, const fl_record_t *, void *), kcase_t *kc,
                      collector_t *c) {
  fl_env_t *env = env_with(parallelism, NULL);
  assert_non_null(env);
  assert_int_equal(fl_env_set_clock(env, test_clock, NULL), 0);
  memset(kc, 0, sizeof *kc);
  for (int i = 0; i < 4; i++) atomic_init(&kc->rc[i], 12345);
  build(env, kc);
  fl_record_t *recs = calloc(n, sizeof *recs);
  for (size_t i = 0; i < n; i++) recs[i] = rec_str(cmds[i][0], cmds[i][1], (int64_t)i);
  fl_stream_t *s = fl_source_collection(env, "cmds", recs, n);
  free(recs);
  fl_process_fn_t fn = {FL_PROCESS_FN_VERSION, NULL, process, NULL, NULL, NULL};
  s = fl_keyed_process(fl_stream_key_by(s, NULL, NULL), "stateful", &fn, kc);
  sink_into(s, c);
  execute_ok(env, "keyed-state");
  fl_env_destroy(env);
}

static void expect_key(const collector_t *c, const char *key, const char *want) {
  char *got = outputs_of(c, key);
  if (strcmp(got, want) != 0) fprintf(stderr, "key %s: got \"%s\", want \"%s\"\n", key, got, want);
  assert_string_equal(got, want);
  free(got);
}

/* Splits "a; b; ..." (in place) at "; " into at most max non-empty items; returns the
 * count. (A lone ';' is part of an item: the merging outputs hold one.) */
static size_t split(char *s, char **items, size_t max) {
  size_t n = 0;
  for (char *next; s; s = next) {
    next = strstr(s, "; ");
    if (next) {
      *next = 0;
      next += 2;
    }
    if (*s) {
      assert_true(n < max);
      items[n++] = s;
    }
  }
  return n;
}

/* Runs the commands "key:cmd; key:cmd; ..." (each cmd as parse_cmd reads it) through
 * build and process at parallelism 1 and 2, and checks every key's outputs in order:
 * want is "key=out|out|...; key=...". extra, if not NULL, checks the case after each
 * run. */
static void check_keyed_with(build_fn build,
                             int (*process)(fl_context_t *, const fl_record_t *, void *),
                             const char *cmds, const char *want, void (*extra)(kcase_t *kc)) {
  enum {
    MAX = 128
  };
  char *cmd_text = strdup(cmds), *want_text = strdup(want), *items[MAX], *wants[MAX];
  const char *pairs[MAX][2];
  assert_true(cmd_text && want_text);
  size_t n = split(cmd_text, items, MAX), nw = split(want_text, wants, MAX);
  for (size_t i = 0; i < n; i++) {
    char *colon = strchr(items[i], ':');
    assert_non_null(colon);
    *colon = 0;
    pairs[i][0] = items[i];
    pairs[i][1] = colon + 1;
  }
  for (int p = 1; p <= 2; p++) {
    kcase_t kc;
    collector_t c;
    run_keyed(p, pairs, n, build, process, &kc, &c);
    for (size_t i = 0; i < nw; i++) {
      char key[64];
      const char *eq = strchr(wants[i], '=');
      assert_true(eq && (size_t)(eq - wants[i]) < sizeof key);
      snprintf(key, sizeof key, "%.*s", (int)(eq - wants[i]), wants[i]);
      expect_key(&c, key, eq + 1);
    }
    if (extra) extra(&kc);
    collector_free(&c);
  }
  free(cmd_text);
  free(want_text);
}

static void check_keyed(build_fn build, int (*process)(fl_context_t *, const fl_record_t *, void *),
                        const char *cmds, const char *want) {
  check_keyed_with(build, process, cmds, want, NULL);
}

/* ---------------------------------------------------------------------------------- */
/* ValueState                                                                           */

static int64_t value_i64(const void *v) {
  int64_t x;
  memcpy(&x, v, sizeof x);
  return x;
}

static void build_counter(fl_env_t *env, kcase_t *kc) {
  kc->d[0] = fl_state_value(env, "count");
  assert_non_null(kc->d[0]);
}

/* "inc": count += 1, emits it; "clear": clears, emits "cleared:<get rc>". */
static int counter_process(fl_context_t *ctx, const fl_record_t *in, void *inst) {
  kcase_t *kc = inst;
  char buf[64], out[64], *op, *rest;
  parse_cmd(in, buf, sizeof buf, &op, &rest);
  const void *v;
  size_t len;
  if (strcmp(op, "clear") == 0) {
    if (fl_state_clear(ctx, kc->d[0]) != 0) return fl_ctx_fail(ctx, "clear failed");
    snprintf(out, sizeof out, "cleared:%d", fl_value_get(ctx, kc->d[0], &v, &len));
    return emit_str(ctx, in, out);
  }
  int rc = fl_value_get(ctx, kc->d[0], &v, &len);
  if (rc < 0 || (rc == 1 && len != sizeof(int64_t))) return fl_ctx_fail(ctx, "get %d", rc);
  int64_t n = rc == 1 ? value_i64(v) + 1 : 1;
  if (fl_value_set(ctx, kc->d[0], &n, sizeof n) != 0) return fl_ctx_fail(ctx, "set");
  snprintf(out, sizeof out, "%lld", (long long)n);
  return emit_str(ctx, in, out);
}

static void value_state_counts_per_key_and_clear_resets_it(void **state) {
  check_keyed(build_counter, counter_process,
              "a:inc; b:inc; a:inc; a:inc; b:inc; a:clear; b:inc; a:inc",
              "a=1|2|3|cleared:0|1; b=1|2|3");
}

/* The same descriptor in two operators gives each its own state. */
static void a_descriptor_used_by_two_operators_keeps_separate_state(void **state) {
  (void)state;
  static const char *const cmds[][2] = {{"a", "inc"}, {"b", "inc"}, {"a", "inc"}, {"a", "inc"}};
  for (int p = 1; p <= 2; p++) {
    fl_env_t *env = env_with(p, NULL);
    kcase_t kc;
    memset(&kc, 0, sizeof kc);
    build_counter(env, &kc);
    fl_record_t recs[4];
    for (int i = 0; i < 4; i++) recs[i] = rec_str(cmds[i][0], cmds[i][1], i);
    fl_stream_t *s = fl_source_collection(env, "cmds", recs, 4);
    fl_process_fn_t fn = {FL_PROCESS_FN_VERSION, NULL, counter_process, NULL, NULL, NULL};
    s = fl_keyed_process(fl_stream_key_by(s, NULL, NULL), "first", &fn, &kc);
    /* The first operator's output ("1", "2", ...) is an "inc" for the second one too:
     * anything but "clear" increments. */
    s = fl_keyed_process(fl_stream_key_by(s, NULL, NULL), "second", &fn, &kc);
    collector_t c;
    sink_into(s, &c);
    execute_ok(env, "two-ops");
    /* Shared state would count 2, 4, 6. */
    expect_key(&c, "a", "1|2|3");
    expect_key(&c, "b", "1");
    collector_free(&c);
    fl_env_destroy(env);
  }
}

/* ---------------------------------------------------------------------------------- */
/* ListState                                                                            */

static void build_list(fl_env_t *env, kcase_t *kc) {
  kc->d[0] = fl_state_list(env, "items");
  assert_non_null(kc->d[0]);
}

/* Emits the current items joined by ',' ("-" when none), after checking the get's
 * return value agrees with the count. */
static int emit_list(fl_context_t *ctx, const fl_record_t *in, const fl_state_desc_t *d) {
  const fl_bytes_t *items = NULL;
  size_t n = 99;
  int rc = fl_list_get(ctx, d, &items, &n);
  if (rc < 0 || rc != (n > 0)) return fl_ctx_fail(ctx, "list_get rc %d n %zu", rc, n);
  char out[256] = "";
  size_t o = 0;
  for (size_t i = 0; i < n; i++) {
    o += (size_t)snprintf(out + o, sizeof out - o, "%s%.*s", i ? "," : "", (int)items[i].len,
                          (const char *)items[i].data);
  }
  return emit_str(ctx, in, n ? out : "-");
}

/* "add X", "upd X,Y,..." (replace), "clear", "get"; each emits the list after. */
static int list_process(fl_context_t *ctx, const fl_record_t *in, void *inst) {
  kcase_t *kc = inst;
  char buf[128], *op, *rest;
  parse_cmd(in, buf, sizeof buf, &op, &rest);
  int rc = 0;
  if (strcmp(op, "add") == 0) {
    rc = fl_list_add(ctx, kc->d[0], rest, strlen(rest));
  } else if (strcmp(op, "upd") == 0) {
    fl_bytes_t items[8];
    size_t n = 0;
    for (char *t = strtok(rest, ","); t && n < 8; t = strtok(NULL, ","))
      items[n++] = (fl_bytes_t){t, strlen(t)};
    rc = fl_list_update(ctx, kc->d[0], items, n);
  } else if (strcmp(op, "clear") == 0) {
    rc = fl_state_clear(ctx, kc->d[0]);
  }
  if (rc) return fl_ctx_fail(ctx, "%s: %d", op, rc);
  return emit_list(ctx, in, kc->d[0]);
}

static void list_state_adds_in_order_updates_and_clears(void **state) {
  check_keyed(build_list, list_process,
              "a:add x; b:add p; a:add y; a:add z; b:add q; a:upd u,v; a:add w; "
              "b:clear; a:upd; a:add k; b:get",
              "a=x|x,y|x,y,z|u,v|u,v,w|-|k; b=p|p,q|-|-");
}

/* ---------------------------------------------------------------------------------- */
/* MapState                                                                             */

static void build_map(fl_env_t *env, kcase_t *kc) {
  kc->d[0] = fl_state_map(env, "m");
  assert_non_null(kc->d[0]);
}

typedef struct {
  long count;
  int64_t sum;
} map_tally_t;

static int tally_cb(const void *uk, size_t ukl, const void *v, size_t len, void *arg) {
  map_tally_t *t = arg;
  (void)uk;
  (void)ukl;
  if (len != sizeof(int64_t)) return -100;
  t->count++;
  t->sum += value_i64(v);
  return 0;
}

static int stop_cb(const void *uk, size_t ukl, const void *v, size_t len, void *arg) {
  (void)uk, (void)ukl, (void)v, (void)len;
  ++*(int *)arg;
  return 7;
}

/* "put K V", "rm K": emit count/sum; "get K": the value or "absent:<rc>";
 * "stop": foreach whose callback stops at once: "stop:<rc>/<calls>". */
static int map_process(fl_context_t *ctx, const fl_record_t *in, void *inst) {
  kcase_t *kc = inst;
  const fl_state_desc_t *d = kc->d[0];
  char buf[128], out[64], *op, *rest;
  parse_cmd(in, buf, sizeof buf, &op, &rest);
  char *uk = rest, *val = strchr(rest, ' ');
  if (val) *val++ = 0;
  int rc = 0;
  if (strcmp(op, "get") == 0) {
    const void *v = NULL;
    size_t len = 0;
    rc = fl_map_get(ctx, d, uk, strlen(uk), &v, &len);
    if (rc == 1 && len == sizeof(int64_t))
      snprintf(out, sizeof out, "%lld", (long long)value_i64(v));
    else
      snprintf(out, sizeof out, "absent:%d", rc);
    return emit_str(ctx, in, out);
  }
  if (strcmp(op, "stop") == 0) {
    int calls = 0;
    rc = fl_map_foreach(ctx, d, stop_cb, &calls);
    snprintf(out, sizeof out, "stop:%d/%d", rc, calls);
    return emit_str(ctx, in, out);
  }
  if (strcmp(op, "put") == 0) {
    int64_t x = val ? strtoll(val, NULL, 10) : 0;
    rc = fl_map_put(ctx, d, uk, strlen(uk), &x, sizeof x);
  } else if (strcmp(op, "rm") == 0) {
    rc = fl_map_remove(ctx, d, uk, strlen(uk));
  }
  if (rc < 0) return fl_ctx_fail(ctx, "%s: %d", op, rc);
  map_tally_t t = {0, 0};
  rc = fl_map_foreach(ctx, d, tally_cb, &t);
  if (rc) return fl_ctx_fail(ctx, "foreach: %d", rc);
  snprintf(out, sizeof out, "%ld/%lld", t.count, (long long)t.sum);
  return emit_str(ctx, in, out);
}

static void map_state_puts_gets_removes_and_iterates(void **state) {
  check_keyed(
      build_map, map_process,
      "a:put x 1; b:put x 100; a:put y 5; a:put x 10; a:get x; a:get z; "
      "a:stop; a:rm x; a:get x; a:rm nope; b:get y; b:rm x; b:stop",
      "a=1/1|2/6|2/15|10|absent:0|stop:7/1|1/5|absent:0|1/5; b=1/100|absent:0|0/0|stop:0/0");
}

/* ---------------------------------------------------------------------------------- */
/* ReducingState and AggregatingState                                                   */

static int concat(fl_context_t *ctx, const void *a, size_t al, const void *b, size_t bl,
                  fl_buf_t *out, void *opaque) {
  (void)ctx;
  (void)opaque;
  int rc = fl_buf_set(out, a, al);
  return rc ? rc : fl_buf_append(out, b, bl);
}

typedef struct {
  double sum;
  long n;
} avg_acc_t;

static void avg_init(void *acc, void *opaque) {
  (void)opaque;
  avg_acc_t *a = acc;
  a->sum = 0;
  a->n = 0;
}

/* The number is the last word of the record's value. */
static int avg_add(fl_context_t *ctx, void *acc, const fl_record_t *in, void *opaque) {
  (void)ctx;
  (void)opaque;
  char buf[64];
  size_t n = in->value_len < 63 ? in->value_len : 63;
  memcpy(buf, in->value, n);
  buf[n] = 0;
  const char *sp = strrchr(buf, ' ');
  avg_acc_t *a = acc;
  a->sum += atof(sp ? sp + 1 : buf);
  a->n++;
  return 0;
}

static const fl_aggregate_fn_t avg_fn = {
    FL_AGGREGATE_FN_VERSION, sizeof(avg_acc_t), avg_init, avg_add, NULL, NULL, NULL};

static void build_merging(fl_env_t *env, kcase_t *kc) {
  kc->d[0] = fl_state_reducing(env, "concat", concat, NULL);
  kc->d[1] = fl_state_aggregating(env, "avg", &avg_fn, NULL);
  assert_non_null(kc->d[0]);
  assert_non_null(kc->d[1]);
}

static int fmt_merging(fl_context_t *ctx, const kcase_t *kc, char *out, size_t cap) {
  const void *v = NULL, *acc = NULL;
  size_t len = 0;
  int r1 = fl_reducing_get(ctx, kc->d[0], &v, &len);
  if (r1 < 0) return r1;
  int o = r1 ? snprintf(out, cap, "%.*s", (int)len, (const char *)v) : snprintf(out, cap, "none");
  int r2 = fl_aggregating_get(ctx, kc->d[1], &acc);
  if (r2 < 0) return r2;
  if (r2) {
    const avg_acc_t *a = acc;
    snprintf(out + o, cap - (size_t)o, ";%g/%ld=%g", a->sum, a->n, a->sum / (double)a->n);
  } else {
    snprintf(out + o, cap - (size_t)o, ";none");
  }
  return 0;
}

/* "add S N": reducing-add S, aggregating-add the record (N); "get": read only. Each
 * emits "<reduced>;<sum>/<n>=<avg>". */
static int merging_process(fl_context_t *ctx, const fl_record_t *in, void *inst) {
  kcase_t *kc = inst;
  char buf[64], out[128], *op, *rest;
  parse_cmd(in, buf, sizeof buf, &op, &rest);
  if (strcmp(op, "add") == 0) {
    char *sp = strchr(rest, ' ');
    size_t sl = sp ? (size_t)(sp - rest) : strlen(rest);
    int rc = fl_reducing_add(ctx, kc->d[0], rest, sl);
    if (!rc) rc = fl_aggregating_add(ctx, kc->d[1], in);
    if (rc) return fl_ctx_fail(ctx, "add: %d", rc);
  } else if (strcmp(op, "clear") == 0) {
    if (fl_state_clear(ctx, kc->d[0]) || fl_state_clear(ctx, kc->d[1]))
      return fl_ctx_fail(ctx, "clear");
  }
  int rc = fmt_merging(ctx, kc, out, sizeof out);
  if (rc) return fl_ctx_fail(ctx, "get: %d", rc);
  return emit_str(ctx, in, out);
}

static void reducing_and_aggregating_state_fold_each_value_in_order(void **state) {
  check_keyed(build_merging, merging_process,
              "a:get; a:add x 2; b:add p 10; a:add y 4; a:add z 9; b:add q 1; "
              "a:clear; a:add w 3",
              "a=none;none|x;2/1=2|xy;6/2=3|xyz;15/3=5|none;none|w;3/1=3; b=p;10/1=10|pq;11/2=5.5");
}

/* ---------------------------------------------------------------------------------- */
/* Wrong kind and non-keyed access                                                      */

static void build_value_and_list(fl_env_t *env, kcase_t *kc) {
  kc->d[0] = fl_state_value(env, "v");
  kc->d[1] = fl_state_list(env, "l");
  assert_non_null(kc->d[0]);
  assert_non_null(kc->d[1]);
}

/* Misuses the descriptors, records the codes, then counts with the value state to show
 * the misuse left the state intact. */
static int wrong_kind_process(fl_context_t *ctx, const fl_record_t *in, void *inst) {
  kcase_t *kc = inst;
  const void *v;
  size_t len;
  const fl_bytes_t *items;
  atomic_store(&kc->rc[0], fl_list_add(ctx, kc->d[0], "x", 1));
  atomic_store(&kc->rc[1], fl_value_get(ctx, kc->d[1], &v, &len));
  atomic_store(&kc->rc[2], fl_list_get(ctx, kc->d[0], &items, &len));
  atomic_store(&kc->rc[3], fl_map_put(ctx, kc->d[1], "k", 1, "v", 1));
  return counter_process(ctx, in, inst);
}

static void every_misuse_returned_estate(kcase_t *kc) {
  for (int i = 0; i < 4; i++) assert_int_equal(atomic_load(&kc->rc[i]), FL_ESTATE);
}

static void wrong_kind_descriptor_returns_estate(void **state) {
  check_keyed_with(build_value_and_list, wrong_kind_process, "a:inc; b:inc; a:inc", "a=1|2; b=1",
                   every_misuse_returned_estate);
}

static int non_keyed_process(fl_context_t *ctx, const fl_record_t *in, void *inst) {
  kcase_t *kc = inst;
  const void *v;
  size_t len;
  atomic_store(&kc->rc[0], fl_value_get(ctx, kc->d[0], &v, &len));
  atomic_store(&kc->rc[1], fl_value_set(ctx, kc->d[0], "x", 1));
  atomic_store(&kc->rc[2], fl_list_add(ctx, kc->d[1], "x", 1));
  atomic_store(&kc->rc[3], fl_state_clear(ctx, kc->d[0]));
  return fl_emit_record(ctx, in);
}

static void state_access_outside_a_keyed_context_returns_estate(void **state) {
  (void)state;
  for (int p = 1; p <= 2; p++) {
    fl_env_t *env = env_with(p, NULL);
    kcase_t kc;
    memset(&kc, 0, sizeof kc);
    for (int i = 0; i < 4; i++) atomic_init(&kc.rc[i], 12345);
    build_value_and_list(env, &kc);
    fl_record_t recs[2] = {rec_str("a", "1", 0), rec_str("b", "2", 1)};
    fl_stream_t *s = fl_source_collection(env, "src", recs, 2);
    fl_process_fn_t fn = {FL_PROCESS_FN_VERSION, NULL, non_keyed_process, NULL, NULL, NULL};
    s = fl_stream_process(s, "plain", &fn, &kc);
    collector_t c;
    sink_into(s, &c);
    execute_ok(env, "non-keyed");
    for (int i = 0; i < 4; i++) assert_int_equal(atomic_load(&kc.rc[i]), FL_ESTATE);
    assert_int_equal(c.n, 2);
    collector_free(&c);
    fl_env_destroy(env);
  }
}

/* ---------------------------------------------------------------------------------- */
/* State TTL                                                                            */

static fl_ttl_config_t ttl_cfg(int64_t ms, fl_ttl_update_t up, fl_ttl_visibility_t vis,
                               size_t cleanup, int every_record) {
  fl_ttl_config_t t = {FL_TTL_CONFIG_VERSION, ms, up, vis, cleanup, every_record};
  return t;
}

/* "set V", "get" ("none" or V), "nop" (no state access, emits "nop"). */
static int ttl_value_process(fl_context_t *ctx, const fl_record_t *in, void *inst) {
  kcase_t *kc = inst;
  char buf[64], out[64], *op, *rest;
  parse_cmd(in, buf, sizeof buf, &op, &rest);
  if (strcmp(op, "nop") == 0) return emit_str(ctx, in, "nop");
  if (strcmp(op, "set") == 0) {
    int64_t x = strtoll(rest, NULL, 10);
    int rc = fl_value_set(ctx, kc->d[0], &x, sizeof x);
    if (rc) return fl_ctx_fail(ctx, "set %d", rc);
    return emit_str(ctx, in, "ok");
  }
  const void *v;
  size_t len;
  int rc = fl_value_get(ctx, kc->d[0], &v, &len);
  if (rc < 0 || (rc == 1 && len != sizeof(int64_t))) return fl_ctx_fail(ctx, "get %d", rc);
  if (rc == 0) return emit_str(ctx, in, "none");
  snprintf(out, sizeof out, "%lld", (long long)value_i64(v));
  return emit_str(ctx, in, out);
}

#define TTL_VALUE_BUILDER(fname, ms, up, vis, cleanup, every) \
  static void fname(fl_env_t *env, kcase_t *kc) {             \
    kc->d[0] = fl_state_value(env, "ttl-value");              \
    assert_non_null(kc->d[0]);                                \
    fl_ttl_config_t t = ttl_cfg(ms, up, vis, cleanup, every); \
    assert_int_equal(fl_state_desc_set_ttl(kc->d[0], &t), 0); \
  }

TTL_VALUE_BUILDER(build_ttl_create_never, 100, FL_TTL_ON_CREATE_AND_WRITE,
                  FL_TTL_NEVER_RETURN_EXPIRED, 0, 0)
TTL_VALUE_BUILDER(build_ttl_read_never, 100, FL_TTL_ON_READ_AND_WRITE, FL_TTL_NEVER_RETURN_EXPIRED,
                  0, 0)
TTL_VALUE_BUILDER(build_ttl_create_return, 100, FL_TTL_ON_CREATE_AND_WRITE,
                  FL_TTL_RETURN_EXPIRED_IF_NOT_CLEANED_UP, 0, 0)
TTL_VALUE_BUILDER(build_ttl_create_return_incremental, 100, FL_TTL_ON_CREATE_AND_WRITE,
                  FL_TTL_RETURN_EXPIRED_IF_NOT_CLEANED_UP, 1000, 0)
TTL_VALUE_BUILDER(build_ttl_create_return_every_record, 100, FL_TTL_ON_CREATE_AND_WRITE,
                  FL_TTL_RETURN_EXPIRED_IF_NOT_CLEANED_UP, 1, 1)

static void ttl_on_create_and_write_expires_ttl_after_the_last_write(void **state) {
  /* Expired when last write + ttl <= now (Flink's TtlUtils.expired); b's write at 60
   * restarted its life: alive at 150, gone at 160. */
  check_keyed(build_ttl_create_never, ttl_value_process,
              "a:@0 set 7; b:@0 set 1; a:@50 get; b:@60 set 2; a:@99 get; "
              "a:@100 get; b:@150 get; a:@150 get; b:@160 get",
              "a=ok|7|7|none|none; b=ok|ok|2|none");
}

static void ttl_on_read_and_write_extends_life_on_every_read(void **state) {
  check_keyed(build_ttl_read_never, ttl_value_process,
              "a:@0 set 7; a:@90 get; a:@150 get; a:@249 get; a:@349 get; "
              "b:@0 set 3; b:@100 get",
              "a=ok|7|7|7|none; b=ok|none");
}

static void ttl_return_expired_if_not_cleaned_up_returns_it_once(void **state) {
  /* The read that finds it expired returns it and removes it (Flink's
   * getWithTtlCheckAndUpdate), so the next read finds nothing. */
  check_keyed(build_ttl_create_return, ttl_value_process,
              "a:@0 set 7; b:@0 set 8; a:@150 get; a:@151 get; b:@40 get", "a=ok|7|none; b=ok|8");
}

static void ttl_incremental_cleanup_removes_expired_state_before_it_is_read(void **state) {
  /* Many keys so that every subtask has state of other keys that are read after the
   * expiry: those reads' cleanup steps (size 1000 > every table) remove "a". Without
   * cleanup the same read returns the expired 7 (the case above). */
  check_keyed(build_ttl_create_return_incremental, ttl_value_process,
              "a:@0 set 7; k0:@0 set 1; k1:@0 set 1; k2:@0 set 1; k3:@0 set 1; "
              "k4:@0 set 1; k5:@0 set 1; k0:@150 get; k1:@150 get; k2:@150 get; "
              "k3:@150 get; k4:@150 get; k5:@150 get; a:@150 get",
              "a=ok|none");
}

/* cleanup_every_record: records that do not touch the state still run a cleanup step.
 * Ten keys expire; forty records of other keys that never access state follow; then
 * each of the ten is read. With a cleanup step (size 1) after each record all ten are
 * gone. Without it, each read's own step removes one entry and the read itself then
 * returns an expired value unless that entry happened to be its own. */
static void ttl_cleanup_every_record_runs_on_records_that_do_not_access_state(void **state) {
  char cmds[2048] = "", want[512] = "";
  size_t c = 0, w = 0;
  for (int i = 0; i < 10; i++)
    c += (size_t)snprintf(cmds + c, sizeof cmds - c, "k%d:@0 set 7; ", i);
  for (int i = 0; i < 40; i++)
    c += (size_t)snprintf(cmds + c, sizeof cmds - c, "f%d:@200 nop; ", i);
  for (int i = 0; i < 10; i++) {
    c += (size_t)snprintf(cmds + c, sizeof cmds - c, "k%d:@200 get; ", i);
    w += (size_t)snprintf(want + w, sizeof want - w, "k%d=ok|none; ", i);
  }
  assert_true(c < sizeof cmds && w < sizeof want);
  check_keyed(build_ttl_create_return_every_record, ttl_value_process, cmds, want);
}

/* Gives the case's first n descriptors a 100 ms TTL (on create and write, never
 * returning expired state). */
static void ttl_100ms(kcase_t *kc, int n) {
  fl_ttl_config_t t = ttl_cfg(100, FL_TTL_ON_CREATE_AND_WRITE, FL_TTL_NEVER_RETURN_EXPIRED, 0, 0);
  for (int i = 0; i < n; i++) assert_int_equal(fl_state_desc_set_ttl(kc->d[i], &t), 0);
}

/* name: the descriptors of build, the first n of them with that TTL. */
#define TTL_100MS_BUILDER(name, build, n)        \
  static void name(fl_env_t *env, kcase_t *kc) { \
    build(env, kc);                              \
    ttl_100ms(kc, n);                            \
  }

TTL_100MS_BUILDER(build_ttl_list, build_list, 1)
TTL_100MS_BUILDER(build_ttl_map, build_map, 1)
TTL_100MS_BUILDER(build_ttl_merging, build_merging, 2)

static void ttl_list_items_expire_one_by_one(void **state) {
  /* b's update stamps every item with its time. */
  check_keyed(build_ttl_list, list_process,
              "a:@0 add x; a:@80 add y; a:@120 get; a:@179 get; a:@180 get; "
              "b:@0 add p; b:@50 upd q,r; b:@149 get; b:@150 get",
              "a=x|x,y|y|y|-; b=p|q,r|q,r|-");
}

static void ttl_map_entries_expire_one_by_one(void **state) {
  /* "list" is no map op: it only tallies. y expired at 180, x (rewritten at 150) at
   * 250. */
  check_keyed(build_ttl_map, map_process,
              "a:@0 put x 1; a:@80 put y 2; a:@120 get x; a:@120 get y; "
              "a:@150 put x 5; a:@185 list; a:@250 get x",
              "a=1/1|2/3|absent:0|2|2/7|1/5|absent:0");
}

static void ttl_expired_reducing_and_aggregating_state_starts_over(void **state) {
  check_keyed(build_ttl_merging, merging_process,
              "a:@0 add x 2; a:@50 add y 4; a:@149 get; a:@150 get; a:@200 add z 9",
              "a=x;2/1=2|xy;6/2=3|xy;6/2=3|none;none|z;9/1=9");
}

/* ---------------------------------------------------------------------------------- */
/* Descriptor checks                                                                    */

static void set_ttl_rejects_non_positive_ttl_and_bad_tables(void **state) {
  (void)state;
  fl_env_t *env = env_with(1, NULL);
  fl_state_desc_t *d = fl_state_value(env, "v");
  assert_non_null(d);
  fl_ttl_config_t t = ttl_cfg(0, FL_TTL_ON_CREATE_AND_WRITE, FL_TTL_NEVER_RETURN_EXPIRED, 0, 0);
  assert_int_equal(fl_state_desc_set_ttl(d, &t), FL_EINVAL);
  t.ttl_ms = -5;
  assert_int_equal(fl_state_desc_set_ttl(d, &t), FL_EINVAL);
  t.ttl_ms = 10;
  t.version = 99;
  assert_int_equal(fl_state_desc_set_ttl(d, &t), FL_EINVAL);
  t.version = FL_TTL_CONFIG_VERSION;
  t.update = (fl_ttl_update_t)7;
  assert_int_equal(fl_state_desc_set_ttl(d, &t), FL_EINVAL);
  t.update = FL_TTL_ON_READ_AND_WRITE;
  assert_int_equal(fl_state_desc_set_ttl(NULL, &t), FL_EINVAL);
  assert_int_equal(fl_state_desc_set_ttl(d, NULL), FL_EINVAL);
  assert_int_equal(fl_state_desc_set_ttl(d, &t), 0);
  fl_env_destroy(env);
}

static void duplicate_descriptor_names_fail_execute_naming_the_state(void **state) {
  (void)state;
  fl_env_t *env = env_with(1, NULL);
  kcase_t kc;
  memset(&kc, 0, sizeof kc);
  kc.d[0] = fl_state_value(env, "dup");
  assert_non_null(kc.d[0]);
  /* Same name, another kind: refused at once (NULL) and reported by execute. */
  assert_null(fl_state_list(env, "dup"));
  assert_null(fl_state_value(env, "dup"));
  fl_record_t r = rec_str("a", "inc", 0);
  fl_stream_t *s = fl_source_collection(env, "src", &r, 1);
  fl_process_fn_t fn = {FL_PROCESS_FN_VERSION, NULL, counter_process, NULL, NULL, NULL};
  s = fl_keyed_process(fl_stream_key_by(s, NULL, NULL), "count", &fn, &kc);
  collector_t c;
  sink_into(s, &c);
  execute_fails(env, "dup", FL_EINVAL, "'dup'");
  assert_non_null(strstr(fl_env_error(env), "another state has this name"));
  assert_int_equal(c.n, 0); /* the job never ran */
  collector_free(&c);
  fl_env_destroy(env);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(value_state_counts_per_key_and_clear_resets_it),
      cmocka_unit_test(a_descriptor_used_by_two_operators_keeps_separate_state),
      cmocka_unit_test(list_state_adds_in_order_updates_and_clears),
      cmocka_unit_test(map_state_puts_gets_removes_and_iterates),
      cmocka_unit_test(reducing_and_aggregating_state_fold_each_value_in_order),
      cmocka_unit_test(wrong_kind_descriptor_returns_estate),
      cmocka_unit_test(state_access_outside_a_keyed_context_returns_estate),
      cmocka_unit_test(ttl_on_create_and_write_expires_ttl_after_the_last_write),
      cmocka_unit_test(ttl_on_read_and_write_extends_life_on_every_read),
      cmocka_unit_test(ttl_return_expired_if_not_cleaned_up_returns_it_once),
      cmocka_unit_test(ttl_incremental_cleanup_removes_expired_state_before_it_is_read),
      cmocka_unit_test(ttl_cleanup_every_record_runs_on_records_that_do_not_access_state),
      cmocka_unit_test(ttl_list_items_expire_one_by_one),
      cmocka_unit_test(ttl_map_entries_expire_one_by_one),
      cmocka_unit_test(ttl_expired_reducing_and_aggregating_state_starts_over),
      cmocka_unit_test(set_ttl_rejects_non_positive_ttl_and_bad_tables),
      cmocka_unit_test(duplicate_descriptor_names_fail_execute_naming_the_state),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
