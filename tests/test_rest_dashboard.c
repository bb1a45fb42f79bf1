/* The dashboard in headless Chromium (Debian's package) while a job runs: the page
 * fetches the REST API and renders the job graph, live rates, the checkpoint history
 * and the latency chart; the DOM Chromium dumps must hold them with live numbers.
 * FL_DASHBOARD_SCREENSHOT=<file.png> also saves a screenshot of it (docs/dashboard.png
 * is made so). */
#include <curl/curl.h> /* linked: the build scans this file for it */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <sys/stat.h>
// clang-format off
#include <cmocka.h>
// clang-format on

#include "rest_test_util.h"

/* Runs Chromium on url with extra (e.g. --dump-dom); its output in out_file. */
static int chromium(const char *bin, const char *profile, const char *url, const char *extra,
                    const char *out_file) {
  char ud[4300];
  snprintf(ud, sizeof ud, "--user-data-dir=%s", profile);
  char *argv[] = {(char *)bin,
                  "--headless",
                  "--no-sandbox",
                  "--disable-gpu",
                  "--disable-background-networking",
                  "--disable-component-update",
                  "--disable-sync",
                  "--no-first-run",
                  "--disable-dev-shm-usage",
                  "--window-size=1400,1100",
                  "--virtual-time-budget=4000",
                  ud,
                  (char *)extra,
                  (char *)url,
                  NULL};
  pid_t pid = rt_spawn(argv, out_file);
  if (pid < 0) return -1;
  return rt_wait(pid, 90 * timeout_scale());
}

/* The number in attribute attr of the element that has marker, or -1. */
static double attr_after(const char *dom, const char *marker, const char *attr) {
  const char *p = strstr(dom, marker);
  if (!p) return -1;
  const char *tag = p;
  while (tag > dom && *tag != '<') tag--;
  const char *end = strchr(p, '>');
  char pat[64];
  snprintf(pat, sizeof pat, "%s=\"", attr);
  const char *a = strstr(tag, pat);
  if (!a || (end && a > end)) return -1;
  return atof(a + strlen(pat));
}

static void dashboard_renders_graph_rates_and_checkpoints_live(void **state) {
  const char *bin = rt_which("chromium");
  if (!bin) bin = rt_which("chromium-browser");
  if (!bin) {
    print_message("SKIPPED: no chromium binary (scripts/install-deps.sh installs it)\n");
    skip();
  }
  const char *dir = g_tmpdir;
  char profile[4200], out[4200];
  snprintf(profile, sizeof profile, "%s/profile", dir);
  snprintf(out, sizeof out, "%s/dom.html", dir);
  rt_job_t j;
  rt_job_start(&j, "300ms");
  assert_true(j.port > 0);
  /* wait for live numbers: a rate (after the first second) and a checkpoint */
  char url[128];
  snprintf(url, sizeof url, "http://127.0.0.1:%d/", j.port);
  double deadline = mono_s() + 20 * timeout_scale();
  while (mono_s() < deadline) {
    char murl[160];
    snprintf(murl, sizeof murl, "http://127.0.0.1:%d/metrics", j.port);
    char *m = rt_get(murl);
    char *c = m ? strstr(m, "flink_jobmanager_job_numberOfCompletedCheckpoints{") : NULL;
    char *r = m ? strstr(m, "flink_taskmanager_job_task_operator_numRecordsOutPerSecond{") : NULL;
    bool ready = c && r && atof(strchr(c, '}') + 1) >= 1 && atof(strchr(r, '}') + 1) > 0;
    free(m);
    if (ready) break;
    pause_ms(100);
  }
  int rc = chromium(bin, profile, url, "--dump-dom", out);
  const char *shot = getenv("FL_DASHBOARD_SCREENSHOT");
  if (shot && *shot) {
    char arg[600];
    snprintf(arg, sizeof arg, "--screenshot=%s", shot);
    chromium(bin, profile, url, arg, NULL);
  }
  rt_job_stop(&j);
  char *dom = read_text(out, NULL);
  if (rc != 0 || !dom) fail_msg("chromium failed (%d): %s", rc, dom ? dom : "(no output)");
  if (!strstr(dom, "data-name=\"clicks\"")) fail_msg("no job graph in:\n%s", dom);
  /* the job graph: every operator, in tasks, with edges */
  assert_non_null(strstr(dom, "data-name=\"clicks-per-second\""));
  assert_non_null(strstr(dom, "data-name=\"feature-store\""));
  assert_non_null(strstr(dom, "class=\"task\""));
  assert_non_null(strstr(dom, "<path "));
  assert_non_null(strstr(dom, ">HASH<"));
  /* live rates: the source makes 2000 records a second */
  double rate = attr_after(dom, "data-name=\"clicks\"", "data-out-rate");
  if (!(rate > 500 && rate < 4000)) fail_msg("source rate %g in the graph", rate);
  /* the checkpoint history */
  double id = attr_after(dom, "class=\"ckpt\"", "data-id");
  assert_true(id >= 1);
  assert_non_null(strstr(dom, ">completed<"));
  /* refreshed at least once, no error shown, and the latency chart drawn */
  const char *u = strstr(dom, "id=\"updates\">");
  assert_non_null(u);
  assert_true(atoi(u + strlen("id=\"updates\">")) >= 1);
  assert_non_null(strstr(dom, "id=\"error\"></span>"));
  assert_non_null(strstr(dom, "<polyline"));
  assert_non_null(strstr(dom, ">RUNNING<"));
  free(dom);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(dashboard_renders_graph_rates_and_checkpoints_live),
  };
  return cmocka_run_group_tests(tests, rt_group_setup, rt_group_teardown);
}
