/* The scraper of bench_scrape.h: one thread, libcurl, the body discarded. */
#include "bench_scrape.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

struct bench_scrape {
  fl_env_t *env;
  int interval_ms;
  pthread_t t;
  _Atomic int stop;
  long ok;
};

static size_t discard(char *p, size_t size, size_t n, void *arg) {
  (void)p, (void)arg;
  return size * n;
}

static void *scrape_main(void *arg) {
  bench_scrape_t *s = arg;
  CURL *c = curl_easy_init();
  while (c && !atomic_load(&s->stop)) {
    int port = fl_env_rest_port(s->env);
    if (port > 0) {
      char url[64];
      snprintf(url, sizeof url, "http://127.0.0.1:%d/metrics", port);
      curl_easy_setopt(c, CURLOPT_URL, url);
      curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard);
      curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
      curl_easy_setopt(c, CURLOPT_TIMEOUT, 5L);
      long status = 0;
      if (curl_easy_perform(c) == CURLE_OK &&
          curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status) == CURLE_OK && status == 200)
        s->ok++;
    }
    /* sleep the interval in short steps, so that stop is prompt */
    for (int waited = 0; waited < s->interval_ms && !atomic_load(&s->stop); waited += 10) {
      struct timespec ts = {0, 10 * 1000000L};
      nanosleep(&ts, NULL);
    }
  }
  if (c) curl_easy_cleanup(c);
  return NULL;
}

bench_scrape_t *bench_scrape_start(fl_env_t *env, int interval_ms) {
  if (interval_ms <= 0) return NULL;
  bench_scrape_t *s = calloc(1, sizeof *s);
  if (!s) return NULL;
  s->env = env;
  s->interval_ms = interval_ms;
  if (pthread_create(&s->t, NULL, scrape_main, s) != 0) {
    free(s);
    return NULL;
  }
  return s;
}

long bench_scrape_stop(bench_scrape_t *s) {
  if (!s) return 0;
  atomic_store(&s->stop, 1);
  pthread_join(s->t, NULL);
  long ok = s->ok;
  free(s);
  return ok;
}
