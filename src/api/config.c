/* Configuration objects: string key/value pairs, validated when set so that a bad key or
 * value is reported where it was written, naming the key.
 *
 * Every key is one row of KEYS below: its name, how its value is parsed, where the
 * parsed value goes in fl_env_conf_t, its default and a one-line description. Setting
 * (fl_config_set), resolving into an environment's settings (fl_config_resolve) and the
 * documented key lists (flink.h, docs/configuration.md, checked by tests/test_config.c)
 * all come from that one table, as librdkafka's configuration does. */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "api/config.h"
#include "state/cache.h"
#include "util/vec.h"

struct fl_config {
  struct fl_config_entry {
    char *key, *val;
  } * e; /* in the order they were first set */
  size_t n, cap;
};

/* A field of fl_env_conf_t: where a key's parsed value is stored, and its width. */
#define F(field) offsetof(fl_env_conf_t, field), sizeof(((fl_env_conf_t *)0)->field)
/* A switch for one of RocksDB's native metrics of every state. */
/* What the block-cache-* counts, on by default, cost together (docs/metrics.md). */
#define BLOCK_CACHE_COST \
  " (on by default; the four block-cache-* counts cost about 3 % of a RocksDB-bound run together)"
#define KV_STAT(key, stat, def, doc) \
  { key, FL_CONF_BOOL, F(kv_stats[stat]), 0, 0, NULL, def, doc }

static const fl_config_key_t KEYS[] = {
    {"parallelism", FL_CONF_INT, F(parallelism), 1, 256, NULL, "1",
     "worker threads; every worker runs one subtask of every operator"},
    {"pipeline.max-parallelism", FL_CONF_INT, F(max_parallelism), 1, 32768, NULL, "128",
     "key groups (the unit of state redistribution), >= parallelism"},
    {"pipeline.auto-watermark-interval", FL_CONF_DURATION, F(watermark_interval_ms), 0, 0, NULL,
     "200ms", "periodic watermark emission in processing time; 0: after every record"},
    {"execution.batch-size", FL_CONF_INT, F(batch_size), 1, 65536, NULL, "1024",
     "records per channel batch"},
    {"execution.channel-capacity", FL_CONF_INT, F(channel_capacity), 2, 4096, NULL, "16",
     "batches a channel holds before its sender is back-pressured"},
    {"state.backend", FL_CONF_ENUM, F(rocksdb), 0, 0, "hashmap|rocksdb", "hashmap",
     "hashmap: state in memory; rocksdb: state in RocksDB on local disk"},
    {"state.backend.rocksdb.localdir", FL_CONF_STRING, F(rocksdb_dir), 0, 0, NULL, "",
     "where RocksDB instances work (\"\": /tmp); one locked directory per job attempt"},
    {"state.backend.incremental", FL_CONF_BOOL, F(incremental), 0, 0, NULL, "false",
     "RocksDB: a checkpoint stores only the files earlier retained checkpoints lack"},
    {"state.backend.rocksdb.block-cache-size", FL_CONF_SIZE, F(rocksdb_opts.block_cache_bytes),
     1 << 20, 0, NULL, "64mb", "RocksDB block cache shared by all workers"},
    {"state.backend.rocksdb.writebuffer.size", FL_CONF_SIZE, F(rocksdb_opts.write_buffer_bytes),
     64 << 10, 0, NULL, "16mb", "RocksDB memtable size per state (column family)"},
    {"state.backend.rocksdb.writebuffer.count", FL_CONF_INT, F(rocksdb_opts.max_write_buffers), 1,
     64, NULL, "2", "RocksDB memtables per state before writes stall"},
    {"state.backend.rocksdb.compression.per.level", FL_CONF_ENUM, F(rocksdb_opts.compression), 0, 0,
     "SNAPPY_COMPRESSION|NO_COMPRESSION|LZ4_COMPRESSION|ZSTD_COMPRESSION", "SNAPPY_COMPRESSION",
     "RocksDB table file compression, every level; NO_COMPRESSION: files read through mmap, a "
     "third less CPU per cold read, 2.5-3x the disk"},
    {"state.backend.rocksdb.memory.partitioned-index-filters", FL_CONF_BOOL,
     F(rocksdb_opts.partitioned_index_filters), 0, 0, NULL, "true",
     "RocksDB: index and filter blocks in 4 KiB partitions; false: whole, ~15% less CPU "
     "per cold read while the stores' indexes and filters fit the block cache, far more "
     "once they do not"},
    {"state.backend.rocksdb.compaction.low-priority", FL_CONF_BOOL,
     F(rocksdb_opts.low_priority_compactions), 0, 0, NULL, "false",
     "RocksDB: compaction threads at the lowest CPU priority (nice 19), so that they take "
     "the time workers leave; process-wide, for the process's life"},
    {"state.backend.rocksdb.cache.size", FL_CONF_SIZE, F(rocksdb_cache_bytes), 0, 0, NULL, "64mb",
     "RocksDB: write-back cache of state cells per worker in front of its stores; 0: none"},
    {"state.backend.rocksdb.cache.dirty-target", FL_CONF_SIZE, F(rocksdb_cache_dirty_target), 0, 0,
     NULL, "0",
     "RocksDB: a worker with nothing else to do writes dirty cells of its state cache to "
     "RocksDB, in key order, down to this, ahead of the next checkpoint barrier; 0: never"},
    {"state.backend.rocksdb.cache.dirty-limit", FL_CONF_SIZE, F(rocksdb_cache_dirty_limit), 0, 0,
     NULL, "0",
     "RocksDB: a bound on a worker's dirty state cache bytes, kept as cells are written (busy "
     "or not), so a checkpoint barrier writes at most about this; 0: none but cache.size"},
    {"state.backend.rocksdb.timer-service.factory", FL_CONF_ENUM, F(rocksdb_timers), 0, 0,
     "HEAP|ROCKSDB", "ROCKSDB",
     "RocksDB: where timers live: ROCKSDB in the store (earliest 128 per key group cached), HEAP "
     "all in memory"},
    {"state.checkpoints.dir", FL_CONF_STRING, F(ckpt_dir), 0, 0, NULL, "",
     "where checkpoints are written (\"\": none)"},
    {"state.checkpoints.num-retained", FL_CONF_INT, F(ckpt_retained), 1, 1000, NULL, "1",
     "complete checkpoints kept"},
    {"state.checkpoints.restore-latest", FL_CONF_BOOL, F(restore_latest), 0, 0, NULL, "false",
     "at start, restore the newest complete checkpoint under state.checkpoints.dir, if any"},
    {"execution.checkpointing.interval", FL_CONF_DURATION, F(ckpt_interval_ms), 0, 0, NULL, "0",
     "time between periodic checkpoints; 0: none"},
    {"execution.checkpointing.min-pause", FL_CONF_DURATION, F(ckpt_min_pause_ms), 0, 0, NULL, "0",
     "least time between the end of one checkpoint and the start of the next"},
    {"execution.checkpointing.timeout", FL_CONF_DURATION, F(ckpt_timeout_ms), 0, 0, NULL, "10min",
     "a checkpoint that takes longer is aborted"},
    {"execution.checkpointing.tolerable-failed-checkpoints", FL_CONF_INT, F(ckpt_tolerable), 0,
     1000000, NULL, "0", "consecutive failed checkpoints before the job fails"},
    {"execution.savepoint.path", FL_CONF_STRING, F(restore_path), 0, 0, NULL, "",
     "start from this checkpoint or savepoint, or the newest usable checkpoint under a root"},
    {"restart-strategy.type", FL_CONF_ENUM, F(restart.kind), 0, 0,
     "none|fixed-delay|exponential-delay|failure-rate", "none",
     "what a failure does: none fails the job, the others restore in-process and go on"},
    {"restart-strategy.fixed-delay.attempts", FL_CONF_INT, F(restart.fixed_attempts), 0, INT_MAX,
     NULL, "3", "restarts before the job fails"},
    {"restart-strategy.fixed-delay.delay", FL_CONF_DURATION, F(restart.fixed_delay_ms), 0, 0, NULL,
     "1s", "wait before each restart"},
    {"restart-strategy.exponential-delay.initial-backoff", FL_CONF_DURATION,
     F(restart.exp_initial_ms), 0, 0, NULL, "1s", "wait before the first restart"},
    {"restart-strategy.exponential-delay.max-backoff", FL_CONF_DURATION, F(restart.exp_max_ms), 0,
     0, NULL, "5min", "longest wait"},
    {"restart-strategy.exponential-delay.backoff-multiplier", FL_CONF_DOUBLE,
     F(restart.exp_multiplier), 1, 0, NULL, "2.0", "factor from one wait to the next"},
    {"restart-strategy.exponential-delay.reset-backoff-threshold", FL_CONF_DURATION,
     F(restart.exp_reset_ms), 0, 0, NULL, "1h", "a run this long resets the wait"},
    {"restart-strategy.exponential-delay.attempts", FL_CONF_INT, F(restart.exp_attempts), 0,
     INT_MAX, NULL, "2147483647", "restarts before the job fails"},
    {"restart-strategy.failure-rate.max-failures-per-interval", FL_CONF_INT, F(restart.rate_max), 1,
     INT_MAX, NULL, "1", "failures tolerated within one interval"},
    {"restart-strategy.failure-rate.failure-rate-interval", FL_CONF_DURATION,
     F(restart.rate_interval_ms), 1, 0, NULL, "1min", "the interval failures are counted in"},
    {"restart-strategy.failure-rate.delay", FL_CONF_DURATION, F(restart.rate_delay_ms), 0, 0, NULL,
     "1s", "wait before each restart"},
    {"metrics.latency.interval", FL_CONF_DURATION, F(latency_interval_ms), 0, 0, NULL, "0",
     "sources send latency markers this often; 0: off"},
    {"rest.port", FL_CONF_INT, F(rest_port), -1, 65535, NULL, "-1",
     "HTTP endpoint (/metrics, REST API, dashboard); -1: off, 0: any free port"},
    {"rest.address", FL_CONF_STRING, F(rest_address), 0, 0, NULL, "127.0.0.1",
     "address the HTTP endpoint listens on"},
    {"rest.allow-control", FL_CONF_BOOL, F(rest_allow_control), 0, 0, NULL, "false",
     "allow POST savepoints and PATCH cancel over HTTP"},
    {"rest.max-connections", FL_CONF_INT, F(rest_max_connections), 1, 1024, NULL, "16",
     "HTTP connections served at once; more are refused"},
    {"metrics.reporter.prom.port", FL_CONF_INT, F(prom_port), -1, 65535, NULL, "-1",
     "a second listener serving only /metrics; -1: off, 0: any free port"},
    KV_STAT("state.backend.rocksdb.metrics.block-cache-usage", FL_KV_STAT_BLOCK_CACHE_USAGE,
            "false", "bytes in the RocksDB block cache"),
    KV_STAT("state.backend.rocksdb.metrics.block-cache-hit", FL_KV_STAT_BLOCK_CACHE_HIT, "true",
            "RocksDB block cache hits" BLOCK_CACHE_COST),
    KV_STAT("state.backend.rocksdb.metrics.block-cache-miss", FL_KV_STAT_BLOCK_CACHE_MISS, "true",
            "RocksDB block cache misses" BLOCK_CACHE_COST),
    KV_STAT("state.backend.rocksdb.metrics.block-cache-index-miss",
            FL_KV_STAT_BLOCK_CACHE_INDEX_MISS, "true",
            "RocksDB block cache misses of index blocks" BLOCK_CACHE_COST),
    KV_STAT("state.backend.rocksdb.metrics.block-cache-filter-miss",
            FL_KV_STAT_BLOCK_CACHE_FILTER_MISS, "true",
            "RocksDB block cache misses of filter blocks" BLOCK_CACHE_COST),
    KV_STAT("state.backend.rocksdb.metrics.estimate-num-keys", FL_KV_STAT_ESTIMATE_NUM_KEYS,
            "false", "RocksDB estimate of the keys a store holds"),
    KV_STAT("state.backend.rocksdb.metrics.cur-size-all-mem-tables",
            FL_KV_STAT_CUR_SIZE_ALL_MEM_TABLES, "false", "bytes in RocksDB memtables"),
    KV_STAT("state.backend.rocksdb.metrics.estimate-pending-compaction-bytes",
            FL_KV_STAT_ESTIMATE_PENDING_COMPACTION_BYTES, "false",
            "bytes RocksDB compaction has to rewrite"),
    KV_STAT("state.backend.rocksdb.metrics.num-running-compactions",
            FL_KV_STAT_NUM_RUNNING_COMPACTIONS, "false", "RocksDB compactions running"),
    KV_STAT("state.backend.rocksdb.metrics.total-sst-files-size", FL_KV_STAT_TOTAL_SST_FILES_SIZE,
            "false", "bytes of all RocksDB SST files"),
    KV_STAT("state.backend.rocksdb.metrics.is-write-stopped", FL_KV_STAT_IS_WRITE_STOPPED, "false",
            "1 while RocksDB stops writes (too many level-0 files or memtables, or too much "
            "compaction pending), else 0"),
    KV_STAT("state.backend.rocksdb.metrics.actual-delayed-write-rate",
            FL_KV_STAT_ACTUAL_DELAYED_WRITE_RATE, "false",
            "bytes/s RocksDB slows writes to while compaction falls behind; 0: not slowed"),
    KV_STAT("state.backend.rocksdb.metrics.cache-hit", FL_KV_STAT_CACHE_HIT, "true",
            "state cache: reads it answered (cheap: on by default)"),
    KV_STAT("state.backend.rocksdb.metrics.cache-miss", FL_KV_STAT_CACHE_MISS, "true",
            "state cache: reads that went to RocksDB (cheap: on by default)"),
    KV_STAT("state.backend.rocksdb.metrics.cache-usage", FL_KV_STAT_CACHE_USAGE, "true",
            "state cache: bytes it holds for this store (cheap: on by default)"),
    KV_STAT("state.backend.rocksdb.metrics.cache-dirty-bytes", FL_KV_STAT_CACHE_DIRTY_BYTES, "true",
            "state cache: bytes of cells not yet written to RocksDB (cheap: on by default)"),
    KV_STAT("state.backend.rocksdb.metrics.cache-evictions", FL_KV_STAT_CACHE_EVICTIONS, "true",
            "state cache: cells evicted (cheap: on by default)"),
    KV_STAT("state.backend.rocksdb.metrics.cache-flush-us", FL_KV_STAT_CACHE_FLUSH_US, "true",
            "state cache: microseconds the last flush at a checkpoint barrier took (cheap: on by "
            "default)"),
    KV_STAT("state.backend.rocksdb.metrics.cache-written-ahead", FL_KV_STAT_CACHE_WRITTEN_AHEAD,
            "true",
            "state cache: cells written to RocksDB ahead of a barrier, down to "
            "cache.dirty-target or under cache.dirty-limit (cheap: on by default)"),
};
#undef KV_STAT
#undef F

#define N_KEYS (sizeof KEYS / sizeof KEYS[0])

const fl_config_key_t *fl_config_keys(size_t *n) {
  *n = N_KEYS;
  return KEYS;
}

/* ---------------------------------------------------------------------------------- */
/* Value formats                                                                      */

/* Skips blanks; Flink allows them between a number and its unit. */
static const char *skip_blanks(const char *p) {
  while (*p == ' ' || *p == '\t') p++;
  return p;
}

/* True when unit (len bytes) is one of the '|'-separated labels, ignoring case. */
static bool unit_is(const char *unit, size_t len, const char *labels) {
  for (const char *p = labels; *p;) {
    const char *bar = strchr(p, '|');
    size_t n = bar ? (size_t)(bar - p) : strlen(p);
    if (n == len && strncasecmp(unit, p, n) == 0) return true;
    if (!bar) break;
    p = bar + 1;
  }
  return false;
}

/* Splits "<digits>[blanks]<unit>" into its number and unit (the unit may be empty);
 * blanks around the whole are ignored, as Flink trims the text first. */
static int split_number(const char *s, unsigned long long *v, const char **unit, size_t *len) {
  if (!s) return FL_EINVAL;
  s = skip_blanks(s);
  if (*s < '0' || *s > '9') return FL_EINVAL; /* no sign */
  errno = 0;
  char *end = NULL;
  *v = strtoull(s, &end, 10);
  if (errno == ERANGE || end == s) return FL_EINVAL;
  const char *u = skip_blanks(end);
  size_t n = strlen(u);
  while (n && (u[n - 1] == ' ' || u[n - 1] == '\t')) n--;
  *unit = u;
  *len = n;
  return FL_OK;
}

/* A memory size as Flink writes it (MemorySize.parse): bytes with an optional unit
 * b|bytes, k|kb|kibibytes, m|mb|mebibytes, g|gb|gibibytes, t|tb|tebibytes, any case,
 * blanks allowed before it; units are powers of 1024. */
int fl_parse_size(const char *s, uint64_t *out) {
  unsigned long long v;
  const char *u;
  size_t n;
  if (split_number(s, &v, &u, &n)) return FL_EINVAL;
  unsigned shift;
  if (n == 0 || unit_is(u, n, "b|bytes"))
    shift = 0;
  else if (unit_is(u, n, "k|kb|kibibytes"))
    shift = 10;
  else if (unit_is(u, n, "m|mb|mebibytes"))
    shift = 20;
  else if (unit_is(u, n, "g|gb|gibibytes"))
    shift = 30;
  else if (unit_is(u, n, "t|tb|tebibytes"))
    shift = 40;
  else
    return FL_EINVAL;
  if (v > (UINT64_MAX >> shift)) return FL_EINVAL;
  *out = (uint64_t)v << shift;
  return FL_OK;
}

/* A duration as Flink writes it (TimeUtils.parseDuration), in whole milliseconds: a
 * number with an optional unit, blanks allowed before it, any case. */
int fl_parse_duration(const char *s, int64_t *out_ms) {
  if (!out_ms) return FL_EINVAL;
  unsigned long long v;
  const char *u;
  size_t n;
  if (split_number(s, &v, &u, &n)) return FL_EINVAL;
  unsigned long long mult;
  if (n == 0 || unit_is(u, n, "ms|milli|millis|millisecond|milliseconds"))
    mult = 1;
  else if (unit_is(u, n, "s|sec|secs|second|seconds"))
    mult = 1000ull;
  else if (unit_is(u, n, "m|min|mins|minute|minutes"))
    mult = 60000ull;
  else if (unit_is(u, n, "h|hour|hours"))
    mult = 3600000ull;
  else if (unit_is(u, n, "d|day|days"))
    mult = 86400000ull;
  else
    return FL_EINVAL;
  if (v > (unsigned long long)INT64_MAX / mult) return FL_EINVAL;
  *out_ms = (int64_t)(v * mult);
  return FL_OK;
}

/* The machine's physical memory in bytes, 0 if unknown. */
static uint64_t physical_memory(void) {
  long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
  return pages > 0 && page > 0 ? (uint64_t)pages * (uint64_t)page : 0;
}

/* ---------------------------------------------------------------------------------- */
/* Errors                                                                             */

/* At most this many bytes of a user's value or key are quoted in a message, so that the
 * reason, which comes first, always fits a small error buffer. */
#define QUOTE_MAX 48

/* Writes s into buf (size > QUOTE_MAX + 32) as a quoted string, shortened when long:
 * "abc..." (120000 bytes). Control characters are shown as '?'. */
static const char *quote(char *buf, size_t size, const char *s) {
  size_t len = strlen(s), n = len > QUOTE_MAX ? QUOTE_MAX : len, o = 0;
  buf[o++] = '"';
  for (size_t i = 0; i < n && o + 2 < size; i++)
    buf[o++] = (unsigned char)s[i] < 0x20 || s[i] == 0x7f ? '?' : s[i];
  if (n < len)
    snprintf(buf + o, size - o, "...\" (%zu bytes)", len);
  else
    snprintf(buf + o, size - o, "\"");
  return buf;
}

static void seterr(char *errstr, size_t size, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
static void seterr(char *errstr, size_t size, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  if (errstr && size) vsnprintf(errstr, size, fmt, ap);
  va_end(ap);
}

/* Edit distance of two short strings, for "did you mean"; large when either is long. */
static size_t distance(const char *a, const char *b) {
  size_t la = strlen(a), lb = strlen(b);
  if (la > 80 || lb > 80) return SIZE_MAX;
  size_t row[81];
  for (size_t j = 0; j <= lb; j++) row[j] = j;
  for (size_t i = 1; i <= la; i++) {
    size_t diag = row[0];
    row[0] = i;
    for (size_t j = 1; j <= lb; j++) {
      size_t up = row[j];
      size_t best = diag + (a[i - 1] != b[j - 1]);
      if (row[j] + 1 < best) best = row[j] + 1;
      if (row[j - 1] + 1 < best) best = row[j - 1] + 1;
      row[j] = best;
      diag = up;
    }
  }
  return row[lb];
}

static const fl_config_key_t *find_key(const char *key) {
  for (size_t i = 0; i < N_KEYS; i++)
    if (strcmp(KEYS[i].key, key) == 0) return &KEYS[i];
  return NULL;
}

static void unknown_key(const char *key, char *errstr, size_t size) {
  const fl_config_key_t *best = NULL;
  size_t best_d = SIZE_MAX;
  for (size_t i = 0; i < N_KEYS; i++) {
    size_t d = distance(key, KEYS[i].key);
    if (d < best_d) best_d = d, best = &KEYS[i];
  }
  char q[QUOTE_MAX + 40];
  if (best && best_d <= 3)
    seterr(errstr, size, "unknown configuration key %s (did you mean \"%s\"?)",
           quote(q, sizeof q, key), best->key);
  else
    seterr(errstr, size, "unknown configuration key %s", quote(q, sizeof q, key));
}

/* ---------------------------------------------------------------------------------- */
/* Parsing a value into its destination                                               */

/* Stores a non-negative integer into a field of 1, 4 or 8 bytes (bool, int/uint32_t,
 * int64_t/size_t): the bounds in KEYS keep every value representable in its field. */
static void store_int(void *dst, size_t size, long long v) {
  if (size == 1) {
    uint8_t b = (uint8_t)v;
    memcpy(dst, &b, 1);
  } else if (size == 4) {
    int32_t i = (int32_t)v;
    memcpy(dst, &i, 4);
  } else {
    int64_t i = (int64_t)v;
    memcpy(dst, &i, 8);
  }
}

/* Parses value for k. With dst (the start of an fl_env_conf_t) the result is stored in
 * k's field; a string field points at value itself. */
static int parse_value(const fl_config_key_t *k, const char *value, void *conf, char *errstr,
                       size_t size) {
  char q[QUOTE_MAX + 40];
  void *dst = conf ? (char *)conf + k->offset : NULL;
  switch (k->type) {
  case FL_CONF_INT: {
    errno = 0;
    char *end = NULL;
    long long v = strtoll(value, &end, 10);
    if (errno || end == value || *end != '\0' || v < k->lo || v > k->hi) {
      seterr(errstr, size, "configuration key \"%s\": not an integer in [%lld, %lld]: %s", k->key,
             k->lo, k->hi, quote(q, sizeof q, value));
      return FL_ECONFIG;
    }
    if (dst) store_int(dst, k->size, v);
    return FL_OK;
  }
  case FL_CONF_DURATION: {
    int64_t ms;
    if (fl_parse_duration(value, &ms) != FL_OK || ms < k->lo) {
      seterr(errstr, size,
             "configuration key \"%s\": not a duration (e.g. 250, 250ms, 5 s, 10 min, 1h): %s",
             k->key, quote(q, sizeof q, value));
      return FL_ECONFIG;
    }
    if (dst) memcpy(dst, &ms, sizeof ms);
    return FL_OK;
  }
  case FL_CONF_SIZE: {
    uint64_t v;
    if (fl_parse_size(value, &v) != FL_OK) {
      seterr(errstr, size,
             "configuration key \"%s\": not a memory size (e.g. 1048576, 512kb, 64 mb, 1g, "
             "2tb): %s",
             k->key, quote(q, sizeof q, value));
      return FL_ECONFIG;
    }
    if (v < (uint64_t)k->lo) {
      seterr(errstr, size, "configuration key \"%s\": %s is less than the least size, %lld bytes",
             k->key, quote(q, sizeof q, value), k->lo);
      return FL_ECONFIG;
    }
    uint64_t phys = physical_memory();
    if (phys && v > phys) {
      seterr(errstr, size,
             "configuration key \"%s\": %s is more than this machine's physical memory "
             "(%llu MiB)",
             k->key, quote(q, sizeof q, value), (unsigned long long)(phys >> 20));
      return FL_ECONFIG;
    }
    if (dst) {
      size_t b = (size_t)v;
      memcpy(dst, &b, sizeof b);
    }
    return FL_OK;
  }
  case FL_CONF_DOUBLE: {
    errno = 0;
    char *end = NULL;
    double v = strtod(value, &end);
    if (errno || end == value || *end != '\0' || !(v >= (double)k->lo) || v > 1e9) {
      seterr(errstr, size, "configuration key \"%s\": not a number in [%lld, 1e9]: %s", k->key,
             k->lo, quote(q, sizeof q, value));
      return FL_ECONFIG;
    }
    if (dst) memcpy(dst, &v, sizeof v);
    return FL_OK;
  }
  case FL_CONF_BOOL:
  case FL_CONF_ENUM: {
    const char *values = k->type == FL_CONF_BOOL ? "false|true" : k->values;
    size_t n = strlen(value);
    long long index = 0;
    for (const char *p = values; *p; index++) {
      const char *bar = strchr(p, '|');
      size_t len = bar ? (size_t)(bar - p) : strlen(p);
      if (len == n && strncmp(p, value, n) == 0) {
        if (dst) store_int(dst, k->size, index);
        return FL_OK;
      }
      if (!bar) break;
      p = bar + 1;
    }
    seterr(errstr, size, "configuration key \"%s\": not one of %s: %s", k->key, values,
           quote(q, sizeof q, value));
    return FL_ECONFIG;
  }
  case FL_CONF_STRING:
    if (dst) memcpy(dst, &value, sizeof value);
    return FL_OK;
  }
  return FL_ECONFIG;
}

/* ---------------------------------------------------------------------------------- */
/* Configuration objects                                                              */

fl_config_t *fl_config_new(void) { return calloc(1, sizeof(fl_config_t)); }

void fl_config_destroy(fl_config_t *conf) {
  if (!conf) return;
  for (size_t i = 0; i < conf->n; i++) {
    free(conf->e[i].key);
    free(conf->e[i].val);
  }
  free(conf->e);
  free(conf);
}

int fl_config_set(fl_config_t *conf, const char *key, const char *value, char *errstr,
                  size_t errstr_size) {
  if (!conf || !key || !value) {
    seterr(errstr, errstr_size, "fl_config_set: NULL argument");
    return FL_EINVAL;
  }
  const fl_config_key_t *k = find_key(key);
  if (!k) {
    unknown_key(key, errstr, errstr_size);
    return FL_ECONFIG;
  }
  int rc = parse_value(k, value, NULL, errstr, errstr_size);
  if (rc) return rc;
  char *v = strdup(value);
  if (!v) return FL_ENOMEM;
  for (size_t i = 0; i < conf->n; i++) {
    if (strcmp(conf->e[i].key, key) == 0) {
      free(conf->e[i].val);
      conf->e[i].val = v;
      return FL_OK;
    }
  }
  if (FL_VEC_RESERVE(conf->e, conf->cap, conf->n + 1)) goto nomem;
  conf->e[conf->n].key = strdup(key);
  if (!conf->e[conf->n].key) goto nomem;
  conf->e[conf->n++].val = v;
  return FL_OK;
nomem:
  free(v);
  return FL_ENOMEM;
}

fl_config_t *fl_config_copy(const fl_config_t *conf) {
  fl_config_t *c = fl_config_new();
  if (!c || !conf) return c;
  for (size_t i = 0; i < conf->n; i++)
    if (fl_config_set(c, conf->e[i].key, conf->e[i].val, NULL, 0)) {
      fl_config_destroy(c);
      return NULL;
    }
  return c;
}

const char *fl_config_get(const fl_config_t *conf, const char *key) {
  if (!conf || !key) return NULL;
  for (size_t i = 0; i < conf->n; i++)
    if (strcmp(conf->e[i].key, key) == 0) return conf->e[i].val;
  return NULL;
}

int fl_config_entry(const fl_config_t *conf, size_t i, const char **key, const char **value) {
  if (!conf || !key || !value) return FL_EINVAL;
  if (i >= conf->n) return FL_ENOTFOUND;
  *key = conf->e[i].key;
  *value = conf->e[i].val;
  return FL_OK;
}

int fl_config_resolve(const fl_config_t *conf, fl_env_conf_t *out, char *errstr,
                      size_t errstr_size) {
  memset(out, 0, sizeof *out);
  for (size_t i = 0; i < N_KEYS; i++) {
    const char *v = fl_config_get(conf, KEYS[i].key);
    int rc = parse_value(&KEYS[i], v ? v : KEYS[i].def, out, errstr, errstr_size);
    if (rc) return rc; /* a set value was checked when set; a default is checked by tests */
  }
  /* Relations between keys. */
  out->incremental = out->incremental && out->rocksdb;
  out->rocksdb_timers = out->rocksdb_timers && out->rocksdb;
  if (out->rocksdb_cache_bytes && out->rocksdb_cache_bytes < FL_KV_CACHE_MIN_BYTES) {
    seterr(errstr, errstr_size,
           "configuration key \"state.backend.rocksdb.cache.size\": %zu bytes is less than the "
           "least size, %u bytes (0 turns the cache off)",
           out->rocksdb_cache_bytes, FL_KV_CACHE_MIN_BYTES);
    return FL_ECONFIG;
  }
  if (out->rocksdb && !out->rocksdb_opts.partitioned_index_filters &&
      out->rocksdb_opts.compression == FL_KV_RDB_NO_COMPRESSION) {
    seterr(errstr, errstr_size,
           "configuration keys \"state.backend.rocksdb.memory.partitioned-index-filters\": "
           "false and \"state.backend.rocksdb.compression.per.level\": NO_COMPRESSION do not go "
           "together: RocksDB then reads every whole index and filter block again for each get "
           "of uncompressed, mapped table files (20 times slower); keep the blocks partitioned "
           "or compress the files");
    return FL_ECONFIG;
  }
  if (out->ckpt_interval_ms > 0 && !*out->ckpt_dir) {
    seterr(errstr, errstr_size,
           "configuration key \"execution.checkpointing.interval\": checkpoints need "
           "\"state.checkpoints.dir\"");
    return FL_ECONFIG;
  }
  if (out->restore_latest && !*out->ckpt_dir) {
    seterr(errstr, errstr_size,
           "configuration key \"state.checkpoints.restore-latest\": it restores from "
           "\"state.checkpoints.dir\", which is not set");
    return FL_ECONFIG;
  }
  if ((uint32_t)out->parallelism > out->max_parallelism) {
    seterr(errstr, errstr_size,
           "configuration key \"parallelism\": %d is larger than pipeline.max-parallelism %u",
           out->parallelism, out->max_parallelism);
    return FL_ECONFIG;
  }
  return FL_OK;
}
