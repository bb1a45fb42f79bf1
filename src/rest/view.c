/* What the Prometheus text, the REST API and the dashboard share: ids and task names
 * in Flink's forms, the names of connector metrics, and which configuration keys are
 * secret. */
#include <ctype.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "graph/metrics.h"
#include "rest/rest.h"
#include "util/hash.h"

bool fl_rest_printf(fl_buf_t *b, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  char small[256];
  int n = vsnprintf(small, sizeof small, fmt, ap);
  va_end(ap);
  if (n < 0) return false;
  if ((size_t)n < sizeof small) return fl_buf_append(b, small, (size_t)n) == FL_OK;
  if (fl_buf_reserve(b, b->len + (size_t)n + 1)) return false;
  va_start(ap, fmt);
  vsnprintf((char *)b->data + b->len, (size_t)n + 1, fmt, ap);
  va_end(ap);
  b->len += (size_t)n;
  return true;
}

size_t fl_rest_utf8_len(const unsigned char *p) {
  if (p[0] < 0x80) return 1;
  size_t n = p[0] >= 0xc2 && p[0] <= 0xdf   ? 2
             : p[0] >= 0xe0 && p[0] <= 0xef ? 3
             : p[0] >= 0xf0 && p[0] <= 0xf4 ? 4
                                            : 0;
  for (size_t i = 1; i < n; i++)
    if ((p[i] & 0xc0) != 0x80) return 0;
  /* no overlong forms, surrogates or code points past U+10FFFF */
  if ((p[0] == 0xe0 && p[1] < 0xa0) || (p[0] == 0xed && p[1] > 0x9f) ||
      (p[0] == 0xf0 && p[1] < 0x90) || (p[0] == 0xf4 && p[1] > 0x8f))
    return 0;
  return n;
}

char *fl_rest_utf8_dup(const char *s) {
  size_t len = strlen(s);
  char *out = malloc(len * 3 + 1); /* an invalid byte becomes 3 */
  if (!out) return NULL;
  size_t o = 0;
  for (const unsigned char *p = (const unsigned char *)s; *p;) {
    size_t n = fl_rest_utf8_len(p);
    if (n) {
      memcpy(out + o, p, n);
      o += n;
      p += n;
    } else {
      memcpy(out + o, "\xef\xbf\xbd", 3);
      o += 3;
      p++;
    }
  }
  out[o] = '\0';
  return out;
}

json_t *fl_rest_json_text(const char *s) {
  char *c = fl_rest_utf8_dup(s ? s : "");
  json_t *j = c ? json_string(c) : NULL;
  free(c);
  return j;
}

bool fl_rest_json_str(fl_buf_t *b, const char *s) {
  bool ok = fl_buf_append(b, "\"", 1) == FL_OK;
  for (const unsigned char *p = (const unsigned char *)s; ok && *p;) {
    size_t n = fl_rest_utf8_len(p);
    if (*p == '"' || *p == '\\')
      ok = fl_rest_printf(b, "\\%c", *p);
    else if (*p < 0x20 || *p == 0x7f)
      ok = fl_rest_printf(b, "\\u%04x", *p);
    else if (n == 0)
      ok = fl_rest_printf(b, "\\ufffd");
    else
      ok = fl_buf_append(b, p, n) == FL_OK;
    p += n ? n : 1;
  }
  return ok && fl_buf_append(b, "\"", 1) == FL_OK;
}

void fl_rest_node_id(const fl_node_t *n, char out[33]) {
  uint64_t a = fl_hash64(n->name, strlen(n->name), n->id);
  uint64_t b = fl_hash64(&n->id, sizeof n->id, a);
  snprintf(out, 33, "%016llx%016llx", (unsigned long long)a, (unsigned long long)b);
}

void fl_rest_task_name(const fl_env_t *env, const fl_node_t *head, char *out, size_t size) {
  size_t at = 0;
  out[0] = '\0';
  for (size_t i = 0; i < env->n_nodes && at + 1 < size; i++) {
    const fl_node_t *n = env->nodes[i];
    if (fl_node_task_head(n) != head) continue;
    int w = snprintf(out + at, size - at, "%s%s", at ? " -> " : "", n->name);
    if (w < 0) break;
    at += (size_t)w;
  }
  if (at >= size) at = size - 1;
  out[at] = '\0';
}

/* Case-insensitive substring. */
static bool has(const char *s, const char *sub) {
  size_t n = strlen(sub);
  for (; *s; s++)
    if (strncasecmp(s, sub, n) == 0) return true;
  return false;
}

bool fl_rest_secret_key(const char *key) {
  if (has(key, "password") || has(key, "secret") || has(key, "token") || has(key, "credential"))
    return true;
  if (strncasecmp(key, "sasl.", 5) == 0) return true;
  if (strncasecmp(key, "ssl.", 4) == 0 && has(key + 4, "key")) return true;
  return false;
}

void fl_rest_prom_sanitize(char *s) {
  for (; *s; s++)
    if (!isalnum((unsigned char)*s) && *s != '_' && *s != ':') *s = '_';
}

/* "<prefix><topic>.<partition>": the topic may hold dots, the partition is the digits
 * after the last one. */
static bool topic_partition(const char *name, const char *prefix, fl_rest_metric_name_t *out,
                            const char *metric) {
  size_t pl = strlen(prefix);
  if (strncmp(name, prefix, pl) != 0) return false;
  const char *tp = name + pl;
  const char *dot = strrchr(tp, '.');
  if (!dot || dot == tp || !dot[1]) return false;
  for (const char *d = dot + 1; *d; d++)
    if (!isdigit((unsigned char)*d)) return false;
  snprintf(out->name, sizeof out->name, "KafkaSourceReader_topic_partition_%s", metric);
  out->label_k[0] = "topic";
  out->label_k[1] = "partition";
  snprintf(out->label_v[0], sizeof out->label_v[0], "%.*s", (int)(dot - tp), tp);
  snprintf(out->label_v[1], sizeof out->label_v[1], "%s", dot + 1);
  out->n_labels = 2;
  return true;
}

void fl_rest_map_user_metric(const char *name, fl_rest_metric_name_t *out) {
  memset(out, 0, sizeof *out);
  /* The Kafka source's metrics (flink.h: fl_source_kafka) under the names of Flink's
   * KafkaSource: its reader group, the consumer's own metrics, per-partition groups. */
  static const struct {
    const char *ours, *flink;
  } fixed[] = {
      {"records-lag-max", "KafkaSourceReader_KafkaConsumer_records_lag_max"},
      {"records-consumed", "KafkaSourceReader_KafkaConsumer_records_consumed_total"},
      {"commits-succeeded", "KafkaSourceReader_commitsSucceeded"},
      {"commits-failed", "KafkaSourceReader_commitsFailed"},
      {"deserialize-errors-skipped", "numRecordsInErrors"},
  };
  for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++) {
    if (strcmp(name, fixed[i].ours) == 0) {
      snprintf(out->name, sizeof out->name, "%s", fixed[i].flink);
      return;
    }
  }
  if (topic_partition(name, "records-lag.", out, "recordsLag") ||
      topic_partition(name, "current-offset.", out, "currentOffset") ||
      topic_partition(name, "committed-offset.", out, "committedOffset"))
    return;
  snprintf(out->name, sizeof out->name, "%s", name);
  fl_rest_prom_sanitize(out->name);
}
