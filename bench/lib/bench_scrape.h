/* A Prometheus-like scraper for benchmarks: GET /metrics of a job's HTTP endpoint at a
 * fixed interval while it runs, to measure what metrics cost under scraping. */
#ifndef BENCH_SCRAPE_H
#define BENCH_SCRAPE_H

#include "flink.h"

typedef struct bench_scrape bench_scrape_t;

/* Starts scraping env's endpoint (rest.port must be set) every interval_ms once it
 * listens; NULL when interval_ms is 0 or on failure. */
bench_scrape_t *bench_scrape_start(fl_env_t *env, int interval_ms);
/* Stops and frees; returns the number of successful scrapes (0 for NULL). */
long bench_scrape_stop(bench_scrape_t *s);

#endif
