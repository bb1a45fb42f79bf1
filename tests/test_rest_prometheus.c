/* A real Prometheus (Debian's package) scrapes GET /metrics of a running job on
 * loopback, and the values are read back through Prometheus's own query API: the text
 * parses (up is 1), the names and labels are Flink's, the values are the job's. */
#include <curl/curl.h> /* linked: the build scans this file for it */
#include <jansson.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <sys/stat.h>
// clang-format off
#include <cmocka.h>
// clang-format on

#include "rest_test_util.h"

/* The value of the first series the instant query returns, or NAN; *labels gets the
 * series' labels (a new reference) when not NULL. */
static double query(int pport, const char *promql, json_t **labels) {
  CURL *c = curl_easy_init();
  char *q = curl_easy_escape(c, promql, 0);
  char url[2048];
  snprintf(url, sizeof url, "http://127.0.0.1:%d/api/v1/query?query=%s", pport, q);
  curl_free(q);
  curl_easy_cleanup(c);
  char *body = rt_get(url);
  if (!body) return NAN;
  json_t *j = json_loads(body, 0, NULL);
  free(body);
  json_t *r0 = json_array_get(json_object_get(json_object_get(j, "data"), "result"), 0);
  double v = NAN;
  if (r0) {
    v = atof(json_string_value(json_array_get(json_object_get(r0, "value"), 1)));
    if (labels) *labels = json_incref(json_object_get(r0, "metric"));
  }
  json_decref(j);
  return v;
}

static void prometheus_scrapes_the_endpoint_with_flinks_names(void **state) {
  const char *prom = rt_which("prometheus");
  if (!prom) {
    print_message("SKIPPED: no prometheus binary (scripts/install-deps.sh installs it)\n");
    skip();
  }
  const char *dir = g_tmpdir;
  rt_job_t j;
  rt_job_start(&j, "200ms");
  assert_true(j.port > 0);
  int pport = rt_free_port();
  char conf[4200], data[4200], listen[64], log[4200];
  snprintf(conf, sizeof conf, "%s/prometheus.yml", dir);
  snprintf(data, sizeof data, "--storage.tsdb.path=%s/data", dir);
  snprintf(listen, sizeof listen, "--web.listen-address=127.0.0.1:%d", pport);
  snprintf(log, sizeof log, "%s/prometheus.log", dir);
  FILE *f = fopen(conf, "w");
  assert_non_null(f);
  fprintf(f,
          "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
          "scrape_configs:\n  - job_name: libflink\n    scrape_interval: 500ms\n"
          "    scrape_timeout: 400ms\n    static_configs:\n"
          "      - targets: ['127.0.0.1:%d']\n",
          j.port);
  fclose(f);
  char cfarg[4300];
  snprintf(cfarg, sizeof cfarg, "--config.file=%s", conf);
  char *argv[] = {(char *)prom, cfarg, data, listen, "--log.level=warn", NULL};
  pid_t pid = rt_spawn(argv, log);
  assert_true(pid > 0);

  /* up: the scrape parsed; then the job's counters, read back through PromQL */
  double deadline = mono_s() + 30 * timeout_scale(), up = NAN, out = NAN;
  while (mono_s() < deadline) {
    up = query(pport, "up{job=\"libflink\"}", NULL);
    out = query(
        pport, "flink_taskmanager_job_task_operator_numRecordsOut{operator_name=\"clicks\"}", NULL);
    if (up == 1 && out > 0) break;
    pause_ms(200);
  }
  json_t *labels = NULL;
  double rate = query(pport,
                      "flink_taskmanager_job_task_operator_numRecordsOutPerSecond{operator_name="
                      "\"clicks\"}",
                      &labels);
  double restarts =
      query(pport, "flink_jobmanager_job_numRestarts{job_name=\"dashboard-job\"}", NULL);
  double busy = query(pport,
                      "flink_taskmanager_job_task_busyTimeMsPerSecond{task_name="
                      "\"clicks-per-second -> feature-store\"}",
                      NULL);
  double ckpts = NAN;
  while (mono_s() < deadline &&
         !((ckpts = query(pport, "flink_jobmanager_job_numberOfCompletedCheckpoints", NULL)) >= 1))
    pause_ms(200);
  double lat = NAN;
  while (mono_s() < deadline &&
         isnan(lat = query(pport,
                           "flink_taskmanager_job_latency_source_id_operator_id_operator_"
                           "subtask_index_latency{quantile=\"0.99\"}",
                           NULL)))
    pause_ms(200);
  double hist = query(pport, "flink_taskmanager_job_task_operator_value_bytes_count", NULL);
  kill(pid, SIGTERM);
  int st = rt_wait(pid, 20);
  rt_job_stop(&j);
  if (up != 1 || !(out > 0)) {
    char cmd[4300];
    snprintf(cmd, sizeof cmd, "cat %s", log);
    if (system(cmd)) {}
    fail_msg("up %g, numRecordsOut %g", up, out);
  }
  assert_true(rate > 1000 && rate < 3000); /* the source makes 2000 a second */
  assert_string_equal(json_string_value(json_object_get(labels, "job_name")), "dashboard-job");
  assert_string_equal(json_string_value(json_object_get(labels, "subtask_index")), "0");
  assert_string_equal(json_string_value(json_object_get(labels, "task_name")), "clicks");
  assert_int_equal(strlen(json_string_value(json_object_get(labels, "job_id"))), 32);
  json_decref(labels);
  assert_true(restarts == 0);
  assert_true(busy >= 0 && busy <= 1000);
  assert_true(ckpts >= 1);
  assert_true(lat >= 0);
  assert_true(hist >= 1);
  assert_int_equal(st, 0); /* Prometheus ended cleanly on SIGTERM */
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(prometheus_scrapes_the_endpoint_with_flinks_names),
  };
  return cmocka_run_group_tests(tests, rt_group_setup, rt_group_teardown);
}
