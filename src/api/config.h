/* Configuration objects (fl_config_t of flink.h) and their resolution into an
 * environment's settings. */
#ifndef FL_API_CONFIG_H
#define FL_API_CONFIG_H
#include "graph/env.h"
/* Fills out from conf (NULL: defaults). Values were validated when set; this checks
 * the relations between keys. */
int fl_config_resolve(const fl_config_t *conf, fl_env_conf_t *out, char *errstr,
                      size_t errstr_size);
/* A copy of conf (NULL: an empty one); NULL on ENOMEM. */
fl_config_t *fl_config_copy(const fl_config_t *conf);
#endif
