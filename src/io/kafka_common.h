/*
 * Helpers shared by the Kafka source and sink (private): copying and validating the
 * librdkafka property pairs of the options, applying them to a conf without ever
 * showing a secret value, and formatting librdkafka errors.
 */
#ifndef FL_IO_KAFKA_COMMON_H
#define FL_IO_KAFKA_COMMON_H

#include <stdbool.h>
#include <stddef.h>

#include <librdkafka/rdkafka.h>

/* Whether the value of property `name` must never be shown: names containing
 * "password", "secret", "token" or "key", except paths ending in ".location". */
bool fl_kafka_prop_is_secret(const char *name);

/* Copies a NULL-terminated key, value array (NULL props: an empty one) into *out (a
 * NULL-terminated array of strdup'ed strings; free with fl_kafka_props_free). Returns 0,
 * FL_EINVAL (a key without value, or an empty key; err says which pair) or FL_ENOMEM. */
int fl_kafka_props_copy(const char *const *props, char ***out, char *err, size_t err_size);
void fl_kafka_props_free(char **props);

/* rd_kafka_conf_set with an error message that names the property and, for secrets,
 * hides librdkafka's text (which quotes the value). Returns 0 or FL_EINVAL. */
int fl_kafka_conf_set(rd_kafka_conf_t *conf, const char *name, const char *value, char *err,
                      size_t err_size);
/* Applies every pair of a copied array (fl_kafka_props_copy) in order. */
int fl_kafka_conf_apply(rd_kafka_conf_t *conf, char *const *props, char *err, size_t err_size);
/* The same, leaving out librdkafka's producer-only properties: for the consumers a sink
 * makes with its producer's properties (the connection and security ones apply). */
int fl_kafka_conf_apply_consumer(rd_kafka_conf_t *conf, char *const *props, char *err,
                                 size_t err_size);
/* Checks the pairs against a throwaway conf, so that a job never starts with a property
 * librdkafka rejects. Returns 0 or FL_EINVAL (err names the property), FL_ENOMEM. */
int fl_kafka_props_validate(char *const *props, char *err, size_t err_size);

#endif
