/* Configuration: the key table is the one source of every key's parsing, destination,
 * default and documentation; values in Flink's formats; errors that give the reason first
 * and survive small buffers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "api/config.h"
#include "flink.h"
#include "run_util.h"

/* Every default in the table parses, and resolving an empty configuration stores each
 * one into a field of the width its type needs. */
static void every_default_parses_into_its_field(void **st) {
  (void)st;
  size_t n;
  const fl_config_key_t *keys = fl_config_keys(&n);
  assert_true(n >= 29);
  fl_config_t *conf = fl_config_new();
  char err[256];
  for (size_t i = 0; i < n; i++) {
    const fl_config_key_t *k = &keys[i];
    assert_non_null(k->doc);
    assert_true(strlen(k->doc) > 5);
    switch (k->type) {
    case FL_CONF_INT: assert_true(k->size == 1 || k->size == 4 || k->size == 8); break;
    case FL_CONF_DURATION: assert_int_equal(k->size, sizeof(int64_t)); break;
    case FL_CONF_SIZE: assert_int_equal(k->size, sizeof(size_t)); break;
    case FL_CONF_DOUBLE: assert_int_equal(k->size, sizeof(double)); break;
    case FL_CONF_BOOL:
    case FL_CONF_ENUM: assert_true(k->size == 1 || k->size == 4); break;
    case FL_CONF_STRING: assert_int_equal(k->size, sizeof(const char *)); break;
    }
    assert_true(k->offset + k->size <= sizeof(fl_env_conf_t));
    /* Setting the default explicitly is accepted. */
    if (fl_config_set(conf, k->key, k->def, err, sizeof err)) fail_msg("%s: %s", k->key, err);
  }
  fl_env_conf_t a, b;
  assert_int_equal(fl_config_resolve(NULL, &a, err, sizeof err), 0);
  assert_int_equal(fl_config_resolve(conf, &b, err, sizeof err), 0);
  assert_int_equal(a.parallelism, 1);
  assert_int_equal(a.max_parallelism, 128);
  assert_int_equal(a.watermark_interval_ms, 200);
  assert_int_equal(a.batch_size, 1024);
  assert_int_equal(a.channel_capacity, 16);
  assert_false(a.rocksdb);
  assert_int_equal(a.rocksdb_opts.block_cache_bytes, 64 << 20);
  assert_int_equal(a.rocksdb_opts.compression, FL_KV_RDB_SNAPPY);
  assert_int_equal(a.rocksdb_opts.partitioned_index_filters, 1);
  assert_int_equal(a.rocksdb_opts.low_priority_compactions, 0);
  assert_int_equal(a.ckpt_timeout_ms, 600000);
  assert_int_equal(a.restart.kind, FL_RESTART_NONE);
  assert_int_equal(a.restart.exp_attempts, 2147483647);
  assert_true(a.restart.exp_multiplier == 2.0);
  assert_int_equal(a.restart.rate_interval_ms, 60000);
  assert_int_equal(b.parallelism, a.parallelism);
  assert_int_equal(b.restart.fixed_delay_ms, a.restart.fixed_delay_ms);
  fl_config_destroy(conf);
}

/* A set value lands in its field, for every type. */
static void values_reach_their_fields(void **st) {
  (void)st;
  fl_config_t *conf = fl_config_new();
  char err[256];
  static const char *const kv[][2] = {
      {"parallelism", "4"},
      {"pipeline.max-parallelism", "4096"},
      {"execution.batch-size", "100"},
      {"state.backend", "rocksdb"},
      {"state.backend.incremental", "true"},
      {"state.backend.rocksdb.block-cache-size", "2 MB"},
      {"state.backend.rocksdb.compression.per.level", "LZ4_COMPRESSION"},
      {"state.backend.rocksdb.memory.partitioned-index-filters", "false"},
      {"state.backend.rocksdb.compaction.low-priority", "true"},
      {"state.checkpoints.dir", "/tmp/x"},
      {"execution.checkpointing.interval", "2 min"},
      {"restart-strategy.type", "failure-rate"},
      {"restart-strategy.exponential-delay.backoff-multiplier", "1.5"},
  };
  for (size_t i = 0; i < sizeof kv / sizeof kv[0]; i++)
    if (fl_config_set(conf, kv[i][0], kv[i][1], err, sizeof err)) fail_msg("%s", err);
  fl_env_conf_t c;
  assert_int_equal(fl_config_resolve(conf, &c, err, sizeof err), 0);
  assert_int_equal(c.parallelism, 4);
  assert_int_equal(c.max_parallelism, 4096);
  assert_int_equal(c.batch_size, 100);
  assert_true(c.rocksdb);
  assert_true(c.incremental);
  assert_int_equal(c.rocksdb_opts.block_cache_bytes, 2 << 20);
  assert_int_equal(c.rocksdb_opts.compression, FL_KV_RDB_LZ4);
  assert_int_equal(c.rocksdb_opts.partitioned_index_filters, 0);
  assert_int_equal(c.rocksdb_opts.low_priority_compactions, 1);
  /* one compression for every level: Flink's list of several is refused, naming the key */
  assert_int_equal(fl_config_set(conf, "state.backend.rocksdb.compression.per.level",
                                 "NO_COMPRESSION;SNAPPY_COMPRESSION", err, sizeof err),
                   FL_ECONFIG);
  assert_non_null(strstr(err, "state.backend.rocksdb.compression.per.level"));
  assert_string_equal(c.ckpt_dir, "/tmp/x");
  assert_int_equal(c.ckpt_interval_ms, 120000);
  assert_int_equal(c.restart.kind, FL_RESTART_FAILURE_RATE);
  assert_true(c.restart.exp_multiplier == 1.5);
  /* whole index and filter blocks do not go with uncompressed, mapped files */
  assert_int_equal(fl_config_set(conf, "state.backend.rocksdb.compression.per.level",
                                 "NO_COMPRESSION", err, sizeof err),
                   0);
  assert_int_equal(fl_config_resolve(conf, &c, err, sizeof err), FL_ECONFIG);
  assert_non_null(strstr(err, "\"state.backend.rocksdb.memory.partitioned-index-filters\": false"));
  assert_non_null(strstr(err, "\"state.backend.rocksdb.compression.per.level\": NO_COMPRESSION"));
  /* incremental means nothing without RocksDB */
  assert_int_equal(fl_config_set(conf, "state.backend", "hashmap", err, sizeof err), 0);
  assert_int_equal(fl_config_resolve(conf, &c, err, sizeof err), 0);
  assert_false(c.incremental);
  fl_config_destroy(conf);
}

/* Flink's memory sizes: units with or without b, any case, blanks, up to tb. */
static void memory_sizes_in_flinks_units(void **st) {
  (void)st;
  static const struct {
    const char *s;
    uint64_t v;
  } ok[] = {
      {"1048576", 1048576}, {"512kb", 512 << 10}, {"512k", 512 << 10}, {"64 mb", 64ull << 20},
      {"64M", 64ull << 20}, {"1g", 1ull << 30},   {"1GB", 1ull << 30}, {"2tb", 2ull << 40},
      {"1t", 1ull << 40},   {"100 bytes", 100},   {"7b", 7},           {"3 mebibytes", 3ull << 20}};
  for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
    uint64_t v = 0;
    if (fl_parse_size(ok[i].s, &v)) fail_msg("\"%s\" refused", ok[i].s);
    assert_int_equal(v, ok[i].v);
  }
  static const char *const bad[] = {"",
                                    "mb",
                                    "-1",
                                    "1.5gb",
                                    "1pb",
                                    "1 m b",
                                    "1mbb",
                                    "1 2",
                                    "99999999999999999999",
                                    "17179869184tb"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    uint64_t v;
    if (fl_parse_size(bad[i], &v) == 0) fail_msg("\"%s\" accepted", bad[i]);
  }
  /* 1tb was refused as "not a memory size" before; now only a size beyond this machine's
   * memory is refused, and the message says so. */
  char err[256];
  fl_config_t *conf = fl_config_new();
  assert_int_equal(
      fl_config_set(conf, "state.backend.rocksdb.block-cache-size", "256mb", err, sizeof err), 0);
  uint64_t phys = (uint64_t)sysconf(_SC_PHYS_PAGES) * (uint64_t)sysconf(_SC_PAGESIZE);
  char big[64];
  snprintf(big, sizeof big, "%llugb", (unsigned long long)(phys >> 30) + 2);
  assert_int_equal(
      fl_config_set(conf, "state.backend.rocksdb.block-cache-size", big, err, sizeof err),
      FL_ECONFIG);
  assert_non_null(strstr(err, "state.backend.rocksdb.block-cache-size"));
  assert_non_null(strstr(err, "physical memory"));
  assert_int_equal(
      fl_config_set(conf, "state.backend.rocksdb.block-cache-size", "100000gb", err, sizeof err),
      FL_ECONFIG);
  assert_int_equal(
      fl_config_set(conf, "state.backend.rocksdb.block-cache-size", "1tb", err, sizeof err),
      phys >= (1ull << 40) ? 0 : FL_ECONFIG);
  if (phys < (1ull << 40)) assert_non_null(strstr(err, "physical memory"));
  assert_int_equal(
      fl_config_set(conf, "state.backend.rocksdb.block-cache-size", "512kb", err, sizeof err),
      FL_ECONFIG);
  assert_non_null(strstr(err, "least"));
  fl_config_destroy(conf);
}

/* Flink's durations: units singular or plural, any case, blanks. */
static void durations_in_flinks_units(void **st) {
  (void)st;
  static const struct {
    const char *s;
    int64_t ms;
  } ok[] = {{"250", 250},          {"250ms", 250},        {"250 ms", 250},
            {"5s", 5000},          {"5 sec", 5000},       {"5 seconds", 5000},
            {"10 min", 600000},    {"10m", 600000},       {"2 MINUTES", 120000},
            {"1h", 3600000},       {"3 hours", 10800000}, {"1d", 86400000},
            {"2 days", 172800000}, {"7 millis", 7},       {"0", 0},
            {" 5 s ", 5000}};
  for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
    int64_t ms = -1;
    if (fl_parse_duration(ok[i].s, &ms)) fail_msg("\"%s\" refused", ok[i].s);
    assert_int_equal(ms, ok[i].ms);
  }
  static const char *const bad[] = {
      "", "s", "-5s", "5 5", "5x", "1.5s", "5 us", "5ns", "999999999999999999999d"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    int64_t ms;
    if (fl_parse_duration(bad[i], &ms) == 0) fail_msg("\"%s\" accepted", bad[i]);
  }
}

/* A 120 KB value: the message gives the reason and the key, quotes a short prefix with
 * the length, and fits a 200-byte buffer. */
static void long_values_are_quoted_short_reason_first(void **st) {
  (void)st;
  size_t len = 120 * 1024;
  char *v = malloc(len + 1);
  assert_non_null(v);
  memset(v, '9', len);
  v[len] = '\0';
  fl_config_t *conf = fl_config_new();
  char err[200];
  assert_int_equal(fl_config_set(conf, "execution.checkpointing.interval", v, err, sizeof err),
                   FL_ECONFIG);
  assert_non_null(strstr(err, "execution.checkpointing.interval"));
  assert_non_null(strstr(err, "not a duration"));
  assert_non_null(strstr(err, "(122880 bytes)"));
  assert_true(strlen(err) < 199);
  assert_int_equal(fl_config_set(conf, "parallelism", v, err, sizeof err), FL_ECONFIG);
  assert_non_null(strstr(err, "not an integer in [1, 256]"));
  assert_non_null(strstr(err, "(122880 bytes)"));
  /* a long unknown key too */
  v[200] = '\0';
  assert_int_equal(fl_config_set(conf, v, "1", err, sizeof err), FL_ECONFIG);
  assert_non_null(strstr(err, "unknown configuration key"));
  assert_non_null(strstr(err, "(200 bytes)"));
  free(v);
  fl_config_destroy(conf);
}

static void unknown_keys_suggest_the_nearest(void **st) {
  (void)st;
  fl_config_t *conf = fl_config_new();
  char err[256];
  assert_int_equal(fl_config_set(conf, "paralelism", "2", err, sizeof err), FL_ECONFIG);
  assert_non_null(strstr(err, "did you mean \"parallelism\""));
  assert_int_equal(fl_config_set(conf, "state.backend.incremantal", "true", err, sizeof err),
                   FL_ECONFIG);
  assert_non_null(strstr(err, "did you mean \"state.backend.incremental\""));
  assert_int_equal(fl_config_set(conf, "no.such.thing", "1", err, sizeof err), FL_ECONFIG);
  assert_null(strstr(err, "did you mean"));
  /* a control character in a key is not printed raw */
  assert_int_equal(fl_config_set(conf, "a\nb", "1", err, sizeof err), FL_ECONFIG);
  assert_null(strchr(err, '\n'));
  fl_config_destroy(conf);
}

/* Returns the default documented for key in text, where the key is followed by blanks (or
 * a table cell) and a quoted or back-quoted default; NULL when the key is not there. */
static char *documented_default(const char *text, const char *key, const char *before,
                                const char *between, char quote) {
  char pat[256];
  snprintf(pat, sizeof pat, "%s%s%s%c", before, key, between, quote);
  const char *p = strstr(text, pat);
  if (!p) return NULL;
  p += strlen(pat);
  const char *e = strchr(p, quote);
  if (!e) return NULL;
  return strndup(p, (size_t)(e - p));
}

/* Counts the documented keys: lines that start with the prefix and a dotted name. */
static size_t count_documented(const char *text, const char *prefix) {
  size_t n = 0, plen = strlen(prefix);
  for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
    if (strncmp(p, prefix, plen) != 0) continue;
    const char *q = p + plen;
    if (*q >= 'a' && *q <= 'z') n++;
  }
  return n;
}

/* A document that lists every key with its default: lines "<prefix>key<sep>default"
 * with the default between quote characters. */
typedef struct key_doc {
  const char *path, *prefix, *sep;
  char quote;
} key_doc_t;

/* The document lists exactly the table's keys, with its defaults. */
static void assert_documents_keys(const key_doc_t *d) {
  char *text = read_source_file(d->path);
  size_t n;
  const fl_config_key_t *keys = fl_config_keys(&n);
  for (size_t i = 0; i < n; i++) {
    char *def = documented_default(text, keys[i].key, d->prefix, d->sep, d->quote);
    if (!def) fail_msg("%s does not list %s with its default", d->path, keys[i].key);
    if (strcmp(def, keys[i].def) != 0)
      fail_msg("%s: %s defaults to \"%s\", the table to \"%s\"", d->path, keys[i].key, def,
               keys[i].def);
    free(def);
  }
  /* and nothing more */
  assert_int_equal(count_documented(text, d->prefix), n);
  free(text);
}

/* flink.h and docs/configuration.md list exactly the table's keys, with its defaults. */
static void documented_keys_equal_the_table(void **st) {
  (void)st;
  static const key_doc_t docs[] = {{"include/flink.h", " *   ", " ", '"'},
                                   {"docs/configuration.md", "| `", "` | ", '`'}};
  for (size_t i = 0; i < sizeof docs / sizeof *docs; i++) assert_documents_keys(&docs[i]);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(every_default_parses_into_its_field),
      cmocka_unit_test(values_reach_their_fields),
      cmocka_unit_test(memory_sizes_in_flinks_units),
      cmocka_unit_test(durations_in_flinks_units),
      cmocka_unit_test(long_values_are_quoted_short_reason_first),
      cmocka_unit_test(unknown_keys_suggest_the_nearest),
      cmocka_unit_test(documented_keys_equal_the_table),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
