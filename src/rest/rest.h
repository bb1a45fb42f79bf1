/*
 * Observability over HTTP: the Prometheus text of a job's metrics, a subset of Flink's
 * REST API with its JSON field names, and the web dashboard, served by libmicrohttpd
 * (server.c) while fl_env_execute runs, when rest.port (or metrics.reporter.prom.port)
 * is set.
 *
 *   view.c      what the outputs share: ids, task (chain) names, Kafka metric names,
 *               secret-looking keys, a text buffer
 *   prom.c      Prometheus text format 0.0.4 with the names Flink's PrometheusReporter
 *               gives (flink_taskmanager_job_task_operator_numRecordsIn{...})
 *   api.c       /jobs, /jobs/overview, /jobs/{id}, /plan, /checkpoints, /vertices/{vid}/
 *               backpressure and /watermarks, /metrics?get=, /jobmanager/config
 *   server.c    the HTTP server: routing, limits, control calls
 *   dashboard.html  the page at / (compiled in: build/rest_dashboard.c)
 *
 * The api layer installs fl_rest_services in every environment (api/env.c); the runtime
 * starts and stops it through env->services, so no lower layer includes this folder.
 * Every function reads the environment's metrics with relaxed loads from any thread.
 */
#ifndef FL_REST_REST_H
#define FL_REST_REST_H

#include <stdbool.h>
#include <stddef.h>

#include "graph/env.h"
#include "util/buf.h"

extern const fl_env_services_t fl_rest_services;

/* ---- view.c ---- */

/* Appends printf-style text to b; false once an allocation failed (b is then left as
 * it was before the call). */
bool fl_rest_printf(fl_buf_t *b, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
/* Appends s as a JSON string (quotes, escapes; bytes that are not UTF-8 as U+FFFD). */
bool fl_rest_json_str(fl_buf_t *b, const char *s);
/* The length of the well-formed UTF-8 sequence at p (1 to 4), or 0 if there is none:
 * operator and job names are the user's bytes, and Prometheus and JSON want UTF-8. */
size_t fl_rest_utf8_len(const unsigned char *p);
/* A copy of s (malloc; NULL on ENOMEM) in which every byte that is not UTF-8 is U+FFFD. */
char *fl_rest_utf8_dup(const char *s);
/* json_string of that copy: never NULL for a name that is not UTF-8 (jansson refuses
 * those), NULL only on ENOMEM. */
struct json_t;
struct json_t *fl_rest_json_text(const char *s);

/* A node's id as Flink shows operator and vertex ids: 32 hex digits, stable for a
 * given graph (from the node's position and name). */
void fl_rest_node_id(const fl_node_t *n, char out[33]);
/* The name of the task node heads: its chain's names joined by " -> " (Flink's task
 * names). Written into out (truncated to size). */
void fl_rest_task_name(const fl_env_t *env, const fl_node_t *head, char *out, size_t size);
/* Whether a configuration key looks secret (*password*, *secret*, sasl.*, ssl.*key*,
 * any case): its value is never shown. */
bool fl_rest_secret_key(const char *key);

/* A connector's user metric name mapped to Flink's: the metric's name (the part after
 * the operator scope, '_'-separated as Prometheus wants it), and up to two labels, e.g.
 * "records-lag.t.3" -> KafkaSourceReader_topic_partition_recordsLag{topic="t",
 * partition="3"}. Unknown names map to themselves with no labels. */
typedef struct fl_rest_metric_name {
  char name[160];
  const char *label_k[2];
  char label_v[2][96];
  int n_labels;
} fl_rest_metric_name_t;
void fl_rest_map_user_metric(const char *name, fl_rest_metric_name_t *out);

/* Replaces every character Prometheus does not allow in a metric name with '_'. */
void fl_rest_prom_sanitize(char *s);

/* ---- prom.c ---- */

/* Appends the Prometheus text of env's metrics. False on ENOMEM. */
bool fl_rest_prometheus(fl_env_t *env, fl_buf_t *out);

/* ---- api.c ---- */

/* Answers a GET (or the control calls) of the REST API: sets *status and appends the
 * JSON body to out. path is the URL path, get the value of the query parameter "get"
 * (or NULL). False on ENOMEM. */
bool fl_rest_api_get(fl_env_t *env, const char *path, const char *get, int *status, fl_buf_t *out);
/* A JSON error body as Flink's REST API writes them: {"errors":["msg"]}. */
bool fl_rest_error(fl_buf_t *out, const char *msg);

/* ---- the dashboard (generated from dashboard.html) ---- */

extern const char fl_rest_dashboard_html[];
extern const size_t fl_rest_dashboard_html_len;

#endif
