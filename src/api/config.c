/* Configuration objects: string key/value pairs, validated when set so that a bad key or
 * value is reported where it was written, naming the key. */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/config.h"

struct fl_config {
  char **keys;
  char **vals;
  size_t n, cap;
};

typedef enum {
  K_INT,
  K_DURATION,
  K_ENUM,
  K_STRING,
  K_SIZE,
  K_DOUBLE
} kind_t;
typedef struct {
  const char *key;
  kind_t kind;
  long long lo, hi;        /* K_INT bounds */
  const char *enum_values; /* K_ENUM: '|'-separated */
  const char *def;
} key_spec_t;

static const key_spec_t SPECS[] = {
    {"parallelism", K_INT, 1, 256, NULL, "1"},
    {"pipeline.max-parallelism", K_INT, 1, 32768, NULL, "128"},
    {"pipeline.auto-watermark-interval", K_DURATION, 0, 0, NULL, "200ms"},
    {"execution.batch-size", K_INT, 1, 65536, NULL, "1024"},
    {"execution.channel-capacity", K_INT, 2, 4096, NULL, "16"},
    {"state.backend", K_ENUM, 0, 0, "hashmap|rocksdb", "hashmap"},
    {"state.backend.rocksdb.localdir", K_STRING, 0, 0, NULL, ""},
    {"state.backend.incremental", K_ENUM, 0, 0, "true|false", "false"},
    {"state.backend.rocksdb.block-cache-size", K_SIZE, 1 << 20, 0, NULL, "64mb"},
    {"state.backend.rocksdb.writebuffer.size", K_SIZE, 64 << 10, 0, NULL, "16mb"},
    {"state.backend.rocksdb.writebuffer.count", K_INT, 1, 64, NULL, "2"},
    {"state.checkpoints.dir", K_STRING, 0, 0, NULL, ""},
    {"state.checkpoints.num-retained", K_INT, 1, 1000, NULL, "1"},
    {"execution.checkpointing.interval", K_DURATION, 0, 0, NULL, "0"},
    {"execution.checkpointing.min-pause", K_DURATION, 0, 0, NULL, "0"},
    {"execution.checkpointing.timeout", K_DURATION, 0, 0, NULL, "10min"},
    {"execution.checkpointing.tolerable-failed-checkpoints", K_INT, 0, 1000000, NULL, "0"},
    {"execution.savepoint.path", K_STRING, 0, 0, NULL, ""},
    {"restart-strategy.type", K_ENUM, 0, 0, "none|fixed-delay|exponential-delay|failure-rate",
     "none"},
    {"restart-strategy.fixed-delay.attempts", K_INT, 0, INT_MAX, NULL, "3"},
    {"restart-strategy.fixed-delay.delay", K_DURATION, 0, 0, NULL, "1s"},
    {"restart-strategy.exponential-delay.initial-backoff", K_DURATION, 0, 0, NULL, "1s"},
    {"restart-strategy.exponential-delay.max-backoff", K_DURATION, 0, 0, NULL, "5min"},
    {"restart-strategy.exponential-delay.backoff-multiplier", K_DOUBLE, 1, 0, NULL, "2.0"},
    {"restart-strategy.exponential-delay.reset-backoff-threshold", K_DURATION, 0, 0, NULL, "1h"},
    {"restart-strategy.exponential-delay.attempts", K_INT, 0, INT_MAX, NULL, "2147483647"},
    {"restart-strategy.failure-rate.max-failures-per-interval", K_INT, 1, INT_MAX, NULL, "1"},
    {"restart-strategy.failure-rate.failure-rate-interval", K_DURATION, 1, 0, NULL, "1min"},
    {"restart-strategy.failure-rate.delay", K_DURATION, 0, 0, NULL, "1s"},
};

/* Parses a memory size: "1048576", "512kb", "64mb", "1gb" (also k/m/g, case-insensitive). */
static int parse_size(const char *s, uint64_t *out) {
  if (!s || *s < '0' || *s > '9') return FL_EINVAL;
  errno = 0;
  char *end = NULL;
  unsigned long long v = strtoull(s, &end, 10);
  if (errno == ERANGE || end == s) return FL_EINVAL;
  unsigned long long mult = 1;
  if (*end) {
    char u = (char)(*end | 0x20);
    if (u == 'k')
      mult = 1ull << 10;
    else if (u == 'm')
      mult = 1ull << 20;
    else if (u == 'g')
      mult = 1ull << 30;
    else if (u != 'b')
      return FL_EINVAL;
    if (u != 'b') end++;
    if ((*end | 0x20) == 'b') end++;
    if (*end) return FL_EINVAL;
  }
  if (v > UINT64_MAX / mult) return FL_EINVAL;
  *out = v * mult;
  return FL_OK;
}

static void seterr(char *errstr, size_t size, const char *fmt, ...) {
  if (!errstr || size == 0) return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(errstr, size, fmt, ap);
  va_end(ap);
}

int fl_parse_duration(const char *s, int64_t *out_ms) {
  if (!s || !out_ms) return FL_EINVAL;
  const char *p = s;
  if (*p < '0' || *p > '9') return FL_EINVAL; /* no sign, no blanks */
  errno = 0;
  char *end = NULL;
  unsigned long long v = strtoull(p, &end, 10);
  if (errno == ERANGE || end == p) return FL_EINVAL;
  unsigned long long mult;
  if (*end == '\0' || strcmp(end, "ms") == 0)
    mult = 1;
  else if (strcmp(end, "s") == 0)
    mult = 1000ull;
  else if (strcmp(end, "m") == 0 || strcmp(end, "min") == 0)
    mult = 60000ull;
  else if (strcmp(end, "h") == 0)
    mult = 3600000ull;
  else if (strcmp(end, "d") == 0)
    mult = 86400000ull;
  else
    return FL_EINVAL;
  if (v > (unsigned long long)INT64_MAX / mult) return FL_EINVAL;
  *out_ms = (int64_t)(v * mult);
  return FL_OK;
}

static const key_spec_t *find_spec(const char *key) {
  for (size_t i = 0; i < sizeof SPECS / sizeof SPECS[0]; i++)
    if (strcmp(SPECS[i].key, key) == 0) return &SPECS[i];
  return NULL;
}

static int check_value(const key_spec_t *sp, const char *value, char *errstr, size_t size) {
  switch (sp->kind) {
  case K_INT: {
    errno = 0;
    char *end = NULL;
    long long v = strtoll(value, &end, 10);
    if (errno || end == value || *end != '\0' || v < sp->lo || v > sp->hi) {
      seterr(errstr, size, "configuration key \"%s\": \"%s\" is not an integer in [%lld, %lld]",
             sp->key, value, sp->lo, sp->hi);
      return FL_ECONFIG;
    }
    return FL_OK;
  }
  case K_DURATION: {
    int64_t ms;
    if (fl_parse_duration(value, &ms) != FL_OK || ms < sp->lo) {
      seterr(errstr, size,
             "configuration key \"%s\": \"%s\" is not a duration (e.g. 250, 250ms, 5s, 5m, 1h)",
             sp->key, value);
      return FL_ECONFIG;
    }
    return FL_OK;
  }
  case K_STRING: return FL_OK;
  case K_SIZE: {
    uint64_t v;
    if (parse_size(value, &v) != FL_OK || v < (uint64_t)sp->lo) {
      seterr(errstr, size,
             "configuration key \"%s\": \"%s\" is not a memory size of at least %lld bytes "
             "(e.g. 64mb, 1gb)",
             sp->key, value, sp->lo);
      return FL_ECONFIG;
    }
    return FL_OK;
  }
  case K_DOUBLE: {
    errno = 0;
    char *end = NULL;
    double v = strtod(value, &end);
    if (errno || end == value || *end != '\0' || !(v >= (double)sp->lo) || v > 1e9) {
      seterr(errstr, size, "configuration key \"%s\": \"%s\" is not a number >= %lld", sp->key,
             value, sp->lo);
      return FL_ECONFIG;
    }
    return FL_OK;
  }
  case K_ENUM: {
    size_t n = strlen(value);
    const char *p = sp->enum_values;
    while (*p) {
      const char *bar = strchr(p, '|');
      size_t len = bar ? (size_t)(bar - p) : strlen(p);
      if (len == n && strncmp(p, value, n) == 0) return FL_OK;
      if (!bar) break;
      p = bar + 1;
    }
    seterr(errstr, size, "configuration key \"%s\": \"%s\" is not one of %s", sp->key, value,
           sp->enum_values);
    return FL_ECONFIG;
  }
  }
  return FL_ECONFIG;
}

fl_config_t *fl_config_new(void) { return calloc(1, sizeof(fl_config_t)); }

void fl_config_destroy(fl_config_t *conf) {
  if (!conf) return;
  for (size_t i = 0; i < conf->n; i++) {
    free(conf->keys[i]);
    free(conf->vals[i]);
  }
  free(conf->keys);
  free(conf->vals);
  free(conf);
}

int fl_config_set(fl_config_t *conf, const char *key, const char *value, char *errstr,
                  size_t errstr_size) {
  if (!conf || !key || !value) {
    seterr(errstr, errstr_size, "fl_config_set: NULL argument");
    return FL_EINVAL;
  }
  const key_spec_t *sp = find_spec(key);
  if (!sp) {
    seterr(errstr, errstr_size, "unknown configuration key \"%s\"", key);
    return FL_ECONFIG;
  }
  int rc = check_value(sp, value, errstr, errstr_size);
  if (rc) return rc;
  char *v = strdup(value);
  if (!v) return FL_ENOMEM;
  for (size_t i = 0; i < conf->n; i++) {
    if (strcmp(conf->keys[i], key) == 0) {
      free(conf->vals[i]);
      conf->vals[i] = v;
      return FL_OK;
    }
  }
  if (conf->n == conf->cap) {
    size_t cap = conf->cap ? conf->cap * 2 : 8;
    char **k = realloc(conf->keys, cap * sizeof *k);
    if (!k) goto nomem;
    conf->keys = k;
    char **vv = realloc(conf->vals, cap * sizeof *vv);
    if (!vv) goto nomem;
    conf->vals = vv;
    conf->cap = cap;
  }
  conf->keys[conf->n] = strdup(key);
  if (!conf->keys[conf->n]) goto nomem;
  conf->vals[conf->n++] = v;
  return FL_OK;
nomem:
  free(v);
  return FL_ENOMEM;
}

fl_config_t *fl_config_copy(const fl_config_t *conf) {
  fl_config_t *c = fl_config_new();
  if (!c || !conf) return c;
  for (size_t i = 0; i < conf->n; i++)
    if (fl_config_set(c, conf->keys[i], conf->vals[i], NULL, 0)) {
      fl_config_destroy(c);
      return NULL;
    }
  return c;
}

const char *fl_config_get(const fl_config_t *conf, const char *key) {
  if (!conf || !key) return NULL;
  for (size_t i = 0; i < conf->n; i++)
    if (strcmp(conf->keys[i], key) == 0) return conf->vals[i];
  return NULL;
}

static const char *value_or_default(const fl_config_t *conf, const char *key) {
  const char *v = fl_config_get(conf, key);
  return v ? v : find_spec(key)->def;
}

int fl_config_resolve(const fl_config_t *conf, fl_env_conf_t *out, char *errstr,
                      size_t errstr_size) {
  memset(out, 0, sizeof *out);
  out->parallelism = atoi(value_or_default(conf, "parallelism"));
  out->max_parallelism = (uint32_t)atoi(value_or_default(conf, "pipeline.max-parallelism"));
  if (fl_parse_duration(value_or_default(conf, "pipeline.auto-watermark-interval"),
                        &out->watermark_interval_ms) != FL_OK)
    return FL_ECONFIG;
  out->batch_size = (size_t)atoi(value_or_default(conf, "execution.batch-size"));
  out->channel_capacity = (size_t)atoi(value_or_default(conf, "execution.channel-capacity"));
  out->rocksdb = strcmp(value_or_default(conf, "state.backend"), "rocksdb") == 0;
  out->rocksdb_dir = value_or_default(conf, "state.backend.rocksdb.localdir");
  out->incremental =
      out->rocksdb && strcmp(value_or_default(conf, "state.backend.incremental"), "true") == 0;
  uint64_t sz = 0;
  parse_size(value_or_default(conf, "state.backend.rocksdb.block-cache-size"), &sz);
  out->rocksdb_opts.block_cache_bytes = (size_t)sz;
  parse_size(value_or_default(conf, "state.backend.rocksdb.writebuffer.size"), &sz);
  out->rocksdb_opts.write_buffer_bytes = (size_t)sz;
  out->rocksdb_opts.max_write_buffers =
      atoi(value_or_default(conf, "state.backend.rocksdb.writebuffer.count"));
  out->ckpt_dir = value_or_default(conf, "state.checkpoints.dir");
  out->ckpt_retained = atoi(value_or_default(conf, "state.checkpoints.num-retained"));
  fl_parse_duration(value_or_default(conf, "execution.checkpointing.interval"),
                    &out->ckpt_interval_ms);
  fl_parse_duration(value_or_default(conf, "execution.checkpointing.min-pause"),
                    &out->ckpt_min_pause_ms);
  fl_parse_duration(value_or_default(conf, "execution.checkpointing.timeout"),
                    &out->ckpt_timeout_ms);
  out->ckpt_tolerable =
      atoi(value_or_default(conf, "execution.checkpointing.tolerable-failed-checkpoints"));
  out->restore_path = value_or_default(conf, "execution.savepoint.path");
  const char *rs = value_or_default(conf, "restart-strategy.type");
  fl_restart_conf_t *r = &out->restart;
  r->kind = strcmp(rs, "fixed-delay") == 0         ? FL_RESTART_FIXED
            : strcmp(rs, "exponential-delay") == 0 ? FL_RESTART_EXPONENTIAL
            : strcmp(rs, "failure-rate") == 0      ? FL_RESTART_FAILURE_RATE
                                                   : FL_RESTART_NONE;
  r->fixed_attempts = atoi(value_or_default(conf, "restart-strategy.fixed-delay.attempts"));
  fl_parse_duration(value_or_default(conf, "restart-strategy.fixed-delay.delay"),
                    &r->fixed_delay_ms);
  fl_parse_duration(value_or_default(conf, "restart-strategy.exponential-delay.initial-backoff"),
                    &r->exp_initial_ms);
  fl_parse_duration(value_or_default(conf, "restart-strategy.exponential-delay.max-backoff"),
                    &r->exp_max_ms);
  r->exp_multiplier =
      strtod(value_or_default(conf, "restart-strategy.exponential-delay.backoff-multiplier"), NULL);
  fl_parse_duration(
      value_or_default(conf, "restart-strategy.exponential-delay.reset-backoff-threshold"),
      &r->exp_reset_ms);
  r->exp_attempts = atoi(value_or_default(conf, "restart-strategy.exponential-delay.attempts"));
  r->rate_max =
      atoi(value_or_default(conf, "restart-strategy.failure-rate.max-failures-per-interval"));
  fl_parse_duration(value_or_default(conf, "restart-strategy.failure-rate.failure-rate-interval"),
                    &r->rate_interval_ms);
  fl_parse_duration(value_or_default(conf, "restart-strategy.failure-rate.delay"),
                    &r->rate_delay_ms);
  if (out->ckpt_interval_ms > 0 && !*out->ckpt_dir) {
    seterr(errstr, errstr_size,
           "configuration key \"execution.checkpointing.interval\": checkpoints need "
           "\"state.checkpoints.dir\"");
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
