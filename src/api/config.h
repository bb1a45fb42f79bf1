/* Configuration objects (fl_config_t of flink.h), the table of every key, and the
 * resolution of a configuration into an environment's settings. */
#ifndef FL_API_CONFIG_H
#define FL_API_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "graph/env.h"

typedef enum fl_conf_type {
  FL_CONF_INT,      /* decimal integer in [lo, hi] */
  FL_CONF_DURATION, /* fl_parse_duration, >= lo ms; stored as int64_t ms */
  FL_CONF_SIZE,     /* fl_parse_size, >= lo bytes and <= physical memory; stored as size_t */
  FL_CONF_DOUBLE,   /* decimal number in [lo, 1e9] */
  FL_CONF_BOOL,     /* "true" | "false"; stored as 0/1 */
  FL_CONF_ENUM,     /* one of values; stored as its index */
  FL_CONF_STRING    /* any text; stored as a pointer into the configuration's copy */
} fl_conf_type_t;

/* One configuration key: the row every use of the key comes from. */
typedef struct fl_config_key {
  const char *key;
  fl_conf_type_t type;
  size_t offset, size; /* the destination field in fl_env_conf_t */
  long long lo, hi;    /* bounds (see the types) */
  const char *values;  /* FL_CONF_ENUM: '|'-separated, in the order of their indexes */
  const char *def;     /* the default, in the same format as a set value */
  const char *doc;     /* one line for people */
} fl_config_key_t;

/* Every key, in documentation order. Static storage. */
const fl_config_key_t *fl_config_keys(size_t *n);

/* Fills out from conf (NULL: defaults), parsing each key's value (or default) into its
 * field. Values were validated when set; this also checks the relations between keys.
 * String fields point into conf, which must outlive out. */
int fl_config_resolve(const fl_config_t *conf, fl_env_conf_t *out, char *errstr,
                      size_t errstr_size);

/* A copy of conf (NULL: an empty one); NULL on ENOMEM. */
fl_config_t *fl_config_copy(const fl_config_t *conf);

/* A memory size as Flink writes it: "1048576", "512kb", "64 mb", "1g", "2TB". */
int fl_parse_size(const char *s, uint64_t *out);

#endif
