/*
 * sql_spend_alerts: SQL and C in one job. Flink SQL computes each user's spend per
 * minute (a TUMBLE window aggregation over a Kafka topic of JSON purchases); a C
 * KeyedProcessFunction keeps a small state machine per user over those sums (how many
 * windows, how many in a row rose) and writes one JSON line per window to another Kafka
 * topic, exactly once: checkpoints every 200 ms into --checkpoint-dir, transactions
 * committed with them, and a restarted run resumes from the newest checkpoint there.
 *
 *   sql_spend_alerts --brokers HOST:PORT --input TOPIC --output TOPIC
 *                    --checkpoint-dir DIR [--parallelism N] [--window SECONDS]
 *
 * Input messages: {"user_id":"u1","amount_usd":12.5,"event_time":"2024-01-01T00:00:01.000"}
 * Output: {"user_id":"u1","window_end":1704067260000,"total":42.50,"windows":3,"rising":2}
 * (window_end in epoch milliseconds; windows: the user's windows so far; rising: how many
 * windows in a row had a larger total than the one before).
 *
 * Runs until SIGINT or SIGTERM (exit 0 after stopping cleanly); exit 1 when the job
 * fails, 2 on a usage error.
 */
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "flink.h"

static fl_env_t *volatile g_env;

static void on_signal(int sig) {
  (void)sig;
  if (g_env) fl_env_stop(g_env);
}

/* Per user: windows seen, windows in a row whose total rose, the last total. */
typedef struct user_state {
  int64_t windows, rising;
  double last;
} user_state_t;

typedef struct alerts {
  const fl_sql_schema_t *schema;
  const fl_state_desc_t *state;
  int user, end, total;
} alerts_t;

static int alerts_open(fl_context_t *ctx, void *opaque, void **instance) {
  *instance = opaque;
  return 0;
}

static int alerts_process(fl_context_t *ctx, const fl_record_t *in, void *instance) {
  const alerts_t *a = instance;
  fl_sql_value_t user, end, total;
  if (fl_sql_row_get(a->schema, in->value, in->value_len, a->user, &user) ||
      fl_sql_row_get(a->schema, in->value, in->value_len, a->end, &end) ||
      fl_sql_row_get(a->schema, in->value, in->value_len, a->total, &total))
    return fl_ctx_fail(ctx, "not a row of the window sums");
  user_state_t st = {0};
  const void *v;
  size_t len;
  int rc = fl_value_get(ctx, a->state, &v, &len);
  if (rc < 0) return rc;
  if (rc == 1 && len == sizeof st) memcpy(&st, v, sizeof st);
  st.rising = st.windows > 0 && total.d > st.last ? st.rising + 1 : 0;
  st.windows++;
  st.last = total.d;
  if ((rc = fl_value_set(ctx, a->state, &st, sizeof st)) < 0) return rc;
  char line[256];
  int n = snprintf(line, sizeof line,
                   "{\"user_id\":\"%.*s\",\"window_end\":%lld,\"total\":%.2f,\"windows\":%lld,"
                   "\"rising\":%lld}",
                   (int)user.len, user.s, (long long)end.i, total.d, (long long)st.windows,
                   (long long)st.rising);
  return fl_emit(ctx, user.s, user.len, line, (size_t)n, in->timestamp);
}

static const fl_process_fn_t alerts_fn = {
    .version = FL_PROCESS_FN_VERSION, .open = alerts_open, .process = alerts_process};

static int by_user(fl_context_t *ctx, const fl_record_t *in, const void **key, size_t *key_len,
                   void *opaque) {
  const alerts_t *a = opaque;
  fl_sql_value_t user;
  if (fl_sql_row_get(a->schema, in->value, in->value_len, a->user, &user)) return FL_EINVAL;
  *key = user.s;
  *key_len = user.len;
  return 0;
}

int main(int argc, char **argv) {
  const char *brokers = NULL, *input = NULL, *output = NULL, *ckpt = NULL, *par = "1",
             *window = "60";
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!strcmp(argv[i], "--brokers"))
      brokers = argv[i + 1];
    else if (!strcmp(argv[i], "--input"))
      input = argv[i + 1];
    else if (!strcmp(argv[i], "--output"))
      output = argv[i + 1];
    else if (!strcmp(argv[i], "--checkpoint-dir"))
      ckpt = argv[i + 1];
    else if (!strcmp(argv[i], "--parallelism"))
      par = argv[i + 1];
    else if (!strcmp(argv[i], "--window"))
      window = argv[i + 1];
    else {
      fprintf(stderr, "sql_spend_alerts: unknown option %s\n", argv[i]);
      return 2;
    }
  }
  if (!brokers || !input || !output || !ckpt) {
    fprintf(stderr,
            "usage: sql_spend_alerts --brokers HOST:PORT --input TOPIC --output TOPIC "
            "--checkpoint-dir DIR [--parallelism N] [--window SECONDS]\n");
    return 2;
  }
  char err[2048];
  fl_config_t *conf = fl_config_new();
  int rc = fl_config_set(conf, "parallelism", par, err, sizeof err);
  if (!rc) rc = fl_config_set(conf, "state.checkpoints.dir", ckpt, err, sizeof err);
  if (!rc) rc = fl_config_set(conf, "execution.checkpointing.interval", "200ms", err, sizeof err);
  if (!rc) rc = fl_config_set(conf, "state.checkpoints.num-retained", "2", err, sizeof err);
  /* a run again with the same directory resumes from its newest complete checkpoint */
  if (!rc) rc = fl_config_set(conf, "state.checkpoints.restore-latest", "true", err, sizeof err);
  fl_env_t *env = NULL;
  if (!rc) rc = fl_env_new(&env, conf, err, sizeof err);
  fl_config_destroy(conf);
  if (rc) {
    fprintf(stderr, "sql_spend_alerts: %s\n", err);
    return 2;
  }
  fl_sql_env_t *sql = NULL;
  int status = 1;
  char *ddl = NULL;
  if (fl_sql_env_wrap(&sql, env, err, sizeof err)) goto fail;
  /* the SQL half: per-user spend per window */
  if (asprintf(
          &ddl,
          "CREATE TABLE purchases (user_id STRING, amount_usd DOUBLE, event_time TIMESTAMP(3),\n"
          "  WATERMARK FOR event_time AS event_time - INTERVAL '5' SECOND)\n"
          "WITH ('connector' = 'kafka', 'topic' = '%s', 'properties.bootstrap.servers' = '%s',\n"
          "  'properties.group.id' = 'sql-spend-alerts', 'scan.startup.mode' = 'earliest-offset',\n"
          "  'format' = 'json', 'json.timestamp-format.standard' = 'ISO-8601')",
          input, brokers) < 0)
    goto fail;
  if (fl_sql_execute(sql, ddl, err, sizeof err)) goto fail;
  char query[512];
  snprintf(
      query, sizeof query,
      "SELECT user_id, window_end, SUM(amount_usd) AS total FROM TABLE(TUMBLE(TABLE purchases, "
      "DESCRIPTOR(event_time), INTERVAL '%s' SECOND)) GROUP BY user_id, window_start, window_end",
      window);
  const fl_sql_schema_t *schema;
  fl_stream_t *sums = fl_sql_query(sql, query, &schema, err, sizeof err);
  if (!sums) goto fail;
  /* the C half: a state machine per user */
  alerts_t a = {schema, fl_state_value(env, "user-state"), fl_sql_schema_find(schema, "user_id"),
                fl_sql_schema_find(schema, "window_end"), fl_sql_schema_find(schema, "total")};
  fl_stream_t *out =
      fl_keyed_process(fl_stream_key_by(sums, by_user, &a), "alerts", &alerts_fn, &a);
  fl_kafka_sink_opts_t so = {.version = FL_KAFKA_SINK_OPTS_VERSION,
                             .brokers = brokers,
                             .topic = output,
                             .guarantee = FL_KAFKA_EXACTLY_ONCE,
                             .transactional_id_prefix = "sql-spend-alerts"};
  if (fl_stream_sink_kafka(out, "alerts-out", &so)) {
    snprintf(err, sizeof err, "cannot build the Kafka sink");
    goto fail;
  }
  g_env = env;
  signal(SIGINT, on_signal);
  signal(SIGTERM, on_signal);
  rc = fl_env_execute(env, "sql-spend-alerts");
  g_env = NULL;
  if (rc == 0 || rc == FL_ECANCELED) {
    status = 0;
  } else {
    fprintf(stderr, "sql_spend_alerts: %s\n", fl_env_error(env));
  }
  goto done;
fail:
  fprintf(stderr, "sql_spend_alerts: %s\n", err);
done:
  free(ddl);
  fl_sql_env_destroy(sql);
  fl_env_destroy(env);
  return status;
}
