/*
 * feature_pipeline - the real-time ML feature job the library exists for, and what
 * `make demo` runs.
 *
 * An e-commerce site's recommendation model needs about 50 features per user, updated
 * on every interaction. This program generates the interactions and runs the job:
 *
 *   generator --JSON--> raw.events --> job --> features.user            (every event)
 *                                          --> features.user_session    (every session)
 *                                          --> features.user_5min_spend (every window)
 *                                          --> events.late, events.dlq
 *
 * The job (parallelism 2, RocksDB state, incremental checkpoints every 10 s, exactly-once
 * Kafka output) computes for every event the user's feature vector: counts and amounts
 * per event type over the last minute, 5 minutes and hour, the current session, category
 * affinity, price sensitivity, cart-abandonment risk and lifetime figures (57 features,
 * each defined in docs/feature-pipeline.md). While it runs, one status line shows events
 * in and features out per second, consumer lag, watermark lag, the last checkpoint, the
 * state size and the latency from an event's produce time to its feature's produce time;
 * at the end a report gives totals, latency percentiles, checkpoint statistics and three
 * feature vectors.
 *
 * Kafka: without --brokers, librdkafka's mock cluster inside this process (everything
 * ends with the process); with --brokers, that cluster (a real one, or
 * tools/flink-kafka-local for a local one that outlives the job). Topics are created with
 * their partition counts where the cluster allows it.
 *
 * Resume: the job sets state.checkpoints.restore-latest, so running it again with the
 * same --checkpoint-dir (and a cluster that kept the topics) goes on from the newest
 * complete checkpoint after Ctrl-C or SIGKILL, with exactly the same features.
 *
 * Usage: feature_pipeline [options]   (--help lists them)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <ftw.h>
#include <inttypes.h>
#include <jansson.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "feature_pipeline.h"
#include "lib/example_util.h"

static _Atomic int g_stop; /* Ctrl-C or SIGTERM */
static _Atomic int g_halt; /* g_stop, or the job of this run ended */
static fl_env_t *_Atomic g_env;
static fp_gen_t *_Atomic g_gen;

static void on_signal(int sig) {
  (void)sig;
  atomic_store(&g_stop, 1);
  atomic_store(&g_halt, 1);
  fl_env_t *env = atomic_load(&g_env);
  if (env) fl_env_stop(env);
  fp_gen_t *g = atomic_load(&g_gen);
  if (g) fp_gen_stop(g);
}

/* ---------------------------------------------------------------------------------- */
/* Options                                                                            */

static int usage(const char *fmt, const char *arg) {
  if (fmt) {
    fputs("feature_pipeline: ", stderr);
    fprintf(stderr, fmt, arg);
    fputc('\n', stderr);
    fputs("(feature_pipeline --help lists the options)\n", stderr);
    return 2;
  }
  fputs(
      "usage: feature_pipeline [options]\n"
      "Generates shop interactions into raw.events and runs the per-user feature job on\n"
      "them; prints a live status line and, at the end, a report.\n"
      "\n"
      "Kafka\n"
      "  --brokers LIST          a cluster's bootstrap servers (default: a mock cluster\n"
      "                          inside this process)\n"
      "  --partitions N          partitions of raw.events (default 4)\n"
      "  --out-partitions N      partitions of features.user (default 4)\n"
      "Generator\n"
      "  --rate N                events per second (default 20000)\n"
      "  --users N               users (default 100000)\n"
      "  --seconds S             how long to generate (default 30; 0: until Ctrl-C)\n"
      "  --time-scale X          event time runs X times faster than the clock (default 60)\n"
      "  --flash-sale            3x the rate, one category on sale, 40-60 % into the run\n"
      "  --seed N                of the generator (default 1)\n"
      "Job\n"
      "  --parallelism N         worker threads (default 2)\n"
      "  --checkpoint-interval D e.g. 10s (default), 500ms, 1min\n"
      "  --checkpoint-dir DIR    checkpoints (default: a temporary directory, removed);\n"
      "                          a run with the same DIR resumes from its newest checkpoint\n"
      "  --state-dir DIR         RocksDB working directory (default: /tmp)\n"
      "  --guarantee G           of the Kafka output: exactly-once (default) or\n"
      "                          at-least-once\n"
      "  --dashboard-port N      the job's web dashboard, REST API and /metrics on\n"
      "                          127.0.0.1:N (default 0: any free port, printed; -1: none)\n"
      "  --set KEY=VALUE         any library configuration key (docs/configuration.md)\n"
      "Roles\n"
      "  --generate-only         only generate (another process runs the job)\n"
      "  --no-generate           only run the job, on what raw.events holds and receives\n"
      "  --bounded               the job stops at the end of what raw.events held when it\n"
      "                          started (every window and session is then closed)\n"
      "  --quiet                 no live status line\n"
      "Benchmark\n"
      "  --bench R1,R2,...       one run of --bench-seconds per rate, then a table of the\n"
      "                          rates that keep consumer lag bounded with p99 < 85 ms\n"
      "  --bench-seconds S       per rate (default 20)\n"
      "  --preload-bytes N       create about N bytes of state for every user before\n"
      "                          generating (the large-state run); generating starts\n"
      "                          once RocksDB has compacted it\n",
      stdout);
  return 0;
}

static int parse_long(const char *v, long lo, long hi, long *out) {
  char *end;
  errno = 0;
  long x = strtol(v, &end, 10);
  if (errno || *end || end == v || x < lo || x > hi) return -1;
  *out = x;
  return 0;
}

static int parse_double(const char *v, double lo, double hi, double *out) {
  char *end;
  double x = strtod(v, &end);
  if (*end || end == v || !(x >= lo && x <= hi)) return -1;
  *out = x;
  return 0;
}

static int parse_args(int argc, char **argv, fp_options_t *o) {
  *o = (fp_options_t){.rate = 20000,
                      .users = 100000,
                      .seconds = 30,
                      .time_scale = 60,
                      .seed = 1,
                      .parallelism = 2,
                      .checkpoint_interval_ms = 10000,
                      .partitions = 4,
                      .out_partitions = 4,
                      .generate = true,
                      .run_job = true,
                      .drain = true,
                      .bench_seconds = 20,
                      .dashboard_port = 0};
  const ex_flag_t flags[] = {{"--flash-sale", &o->flash_sale, true},
                             {"--generate-only", &o->run_job, false},
                             {"--no-generate", &o->generate, false},
                             {"--bounded", &o->bounded, true},
                             {"--quiet", &o->quiet, true}};
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    long l;
    if (strcmp(a, "--help") == 0) return usage(NULL, NULL) ? 2 : -1;
    if (ex_flag_option(flags, sizeof flags / sizeof flags[0], a)) continue;
    const char *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!v || strncmp(v, "--", 2) == 0) return usage("option %s needs a value (or is unknown)", a);
    i++;
    if (strcmp(a, "--brokers") == 0) {
      o->brokers = v;
    } else if (strcmp(a, "--rate") == 0) {
      if (parse_long(v, 1, 10000000, &o->rate))
        return usage("--rate '%s' is not in 1..10000000", v);
    } else if (strcmp(a, "--users") == 0) {
      if (parse_long(v, 1, 100000000, &o->users))
        return usage("--users '%s' is not in 1..100000000", v);
    } else if (strcmp(a, "--seconds") == 0) {
      if (parse_double(v, 0, 1e7, &o->seconds))
        return usage("--seconds '%s' is not a duration in seconds", v);
    } else if (strcmp(a, "--time-scale") == 0) {
      if (parse_double(v, 0.001, 1e6, &o->time_scale))
        return usage("--time-scale '%s' is not a factor in 0.001..1000000", v);
    } else if (strcmp(a, "--seed") == 0) {
      if (parse_long(v, 0, INT32_MAX, &l)) return usage("--seed '%s' is not a number", v);
      o->seed = (uint64_t)l;
    } else if (strcmp(a, "--parallelism") == 0) {
      if (parse_long(v, 1, 256, &l)) return usage("--parallelism '%s' is not in 1..256", v);
      o->parallelism = (int)l;
    } else if (strcmp(a, "--checkpoint-interval") == 0) {
      if (fl_parse_duration(v, &o->checkpoint_interval_ms) || o->checkpoint_interval_ms < 10)
        return usage("--checkpoint-interval '%s' is not a duration of 10ms or more (e.g. 10s)", v);
    } else if (strcmp(a, "--checkpoint-dir") == 0) {
      o->checkpoint_dir = v;
    } else if (strcmp(a, "--dashboard-port") == 0) {
      if (parse_long(v, -1, 65535, &l))
        return usage("--dashboard-port '%s' is not a port (0: any free one, -1: none)", v);
      o->dashboard_port = (int)l;
    } else if (strcmp(a, "--state-dir") == 0) {
      o->state_dir = v;
    } else if (strcmp(a, "--partitions") == 0) {
      if (parse_long(v, 1, 1024, &l)) return usage("--partitions '%s' is not in 1..1024", v);
      o->partitions = (int)l;
    } else if (strcmp(a, "--out-partitions") == 0) {
      if (parse_long(v, 1, 1024, &l)) return usage("--out-partitions '%s' is not in 1..1024", v);
      o->out_partitions = (int)l;
    } else if (strcmp(a, "--guarantee") == 0) {
      if (strcmp(v, "exactly-once") == 0)
        o->at_least_once = false;
      else if (strcmp(v, "at-least-once") == 0)
        o->at_least_once = true;
      else
        return usage("--guarantee '%s' is neither exactly-once nor at-least-once", v);
    } else if (strcmp(a, "--set") == 0) {
      if (o->n_set == (int)(sizeof o->set / sizeof o->set[0]))
        return usage("too many --set (%s)", v);
      o->set[o->n_set++] = v;
    } else if (strcmp(a, "--bench") == 0) {
      o->bench = v;
      char *copy = strdup(v), *save = NULL;
      for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        if (o->n_bench_rates == 16 || parse_long(t, 1, 10000000, &l)) {
          free(copy);
          return usage("--bench '%s' is not a list of at most 16 rates", v);
        }
        o->bench_rates[o->n_bench_rates++] = l;
      }
      free(copy);
      if (o->n_bench_rates == 0) return usage("--bench '%s' names no rate", v);
    } else if (strcmp(a, "--bench-seconds") == 0) {
      if (parse_double(v, 1, 1e6, &o->bench_seconds))
        return usage("--bench-seconds '%s' is not a number of seconds", v);
    } else if (strcmp(a, "--preload-bytes") == 0) {
      if (parse_long(v, 0, 1 << 24, &o->preload_bytes))
        return usage("--preload-bytes '%s' is not in 0..16777216", v);
    } else {
      return usage("unknown option '%s'", a);
    }
  }
  if (!o->generate && !o->run_job)
    return usage("%s", "--generate-only and --no-generate exclude each other");
  if (o->bounded && o->generate && o->run_job)
    return usage("%s", "--bounded needs --no-generate (the generator and a bounded job race)");
  return 0;
}

/* ---------------------------------------------------------------------------------- */
/* Kafka                                                                              */

typedef struct topic_spec {
  const char *name;
  int partitions;
} topic_spec_t;

static int topic_specs(const fp_options_t *o, topic_spec_t *t) {
  t[0] = (topic_spec_t){FP_TOPIC_EVENTS, o->partitions};
  t[1] = (topic_spec_t){FP_TOPIC_FEATURES, o->out_partitions};
  t[2] = (topic_spec_t){FP_TOPIC_SESSIONS, 4};
  t[3] = (topic_spec_t){FP_TOPIC_SPEND, 4};
  t[4] = (topic_spec_t){FP_TOPIC_LATE, 2};
  t[5] = (topic_spec_t){FP_TOPIC_DLQ, 1};
  return 6;
}

/* Creates the topics a cluster lacks (CreateTopics, with their partition counts); a topic
 * that exists is kept as it is. A cluster that cannot create topics (flink-kafka-local)
 * must already have them. */
static int ensure_topics(const fp_options_t *o, const char *brokers) {
  topic_spec_t t[8];
  int n = topic_specs(o, t), rc = 0;
  static const char *const kv[] = {"allow.auto.create.topics", "false", NULL};
  rd_kafka_t *rk = fp_kafka_client(RD_KAFKA_CONSUMER, brokers, kv);
  if (!rk) return -1;
  const struct rd_kafka_metadata *md = NULL;
  rd_kafka_resp_err_t e = rd_kafka_metadata(rk, 1, NULL, &md, 10000);
  if (e) {
    fprintf(stderr, "feature_pipeline: cannot reach the Kafka cluster at %s: %s\n", brokers,
            rd_kafka_err2str(e));
    rd_kafka_destroy(rk);
    return -1;
  }
  rd_kafka_NewTopic_t *nt[8];
  const topic_spec_t *spec[8];
  int missing = 0;
  char err[512];
  for (int i = 0; i < n; i++) {
    bool found = false;
    for (int k = 0; k < md->topic_cnt; k++)
      found |= strcmp(md->topics[k].topic, t[i].name) == 0 && md->topics[k].err == 0;
    if (found) continue;
    spec[missing] = &t[i];
    nt[missing++] = rd_kafka_NewTopic_new(t[i].name, t[i].partitions, -1, err, sizeof err);
  }
  rd_kafka_metadata_destroy(md);
  if (missing == 0) {
    rd_kafka_destroy(rk);
    return 0;
  }
  rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
  rd_kafka_AdminOptions_t *ao = rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_CREATETOPICS);
  rd_kafka_AdminOptions_set_request_timeout(ao, 10000, err, sizeof err);
  rd_kafka_CreateTopics(rk, nt, (size_t)missing, ao, q);
  rd_kafka_event_t *ev = rd_kafka_queue_poll(q, 15000);
  const rd_kafka_CreateTopics_result_t *res = ev ? rd_kafka_event_CreateTopics_result(ev) : NULL;
  size_t cnt = 0;
  const rd_kafka_topic_result_t **tr = res ? rd_kafka_CreateTopics_result_topics(res, &cnt) : NULL;
  for (int i = 0; i < missing; i++) {
    const char *name = spec[i]->name;
    rd_kafka_resp_err_t te = RD_KAFKA_RESP_ERR__TIMED_OUT;
    const char *msg =
        ev && rd_kafka_event_error(ev) ? rd_kafka_event_error_string(ev) : "no answer";
    for (size_t k = 0; k < cnt; k++) {
      if (strcmp(rd_kafka_topic_result_name(tr[k]), name) == 0) {
        te = rd_kafka_topic_result_error(tr[k]);
        msg = rd_kafka_topic_result_error_string(tr[k]);
      }
    }
    if (te == RD_KAFKA_RESP_ERR_NO_ERROR) {
      printf("created topic %s with %d partitions\n", name, spec[i]->partitions);
    } else if (te != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) {
      fprintf(stderr,
              "feature_pipeline: topic %s does not exist and cannot be created (%s); create it, "
              "e.g. flink-kafka-local --topic %s:%d\n",
              name, msg ? msg : rd_kafka_err2str(te), name, spec[i]->partitions);
      rc = -1;
    }
  }
  if (ev) rd_kafka_event_destroy(ev);
  rd_kafka_AdminOptions_destroy(ao);
  rd_kafka_queue_destroy(q);
  for (int i = 0; i < missing; i++) rd_kafka_NewTopic_destroy(nt[i]);
  rd_kafka_destroy(rk);
  return rc;
}

typedef struct cluster {
  rd_kafka_t *rk;
  rd_kafka_mock_cluster_t *mc;
  char brokers[1024];
} cluster_t;

static int cluster_start(const fp_options_t *o, cluster_t *c, bool say) {
  memset(c, 0, sizeof *c);
  if (o->brokers) {
    snprintf(c->brokers, sizeof c->brokers, "%s", o->brokers);
    return ensure_topics(o, o->brokers);
  }
  char err[256];
  rd_kafka_conf_t *conf = rd_kafka_conf_new();
  rd_kafka_conf_set(conf, "log_level", "3", NULL, 0);
  c->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
  if (!c->rk) {
    rd_kafka_conf_destroy(conf);
    fprintf(stderr, "feature_pipeline: %s\n", err);
    return -1;
  }
  c->mc = rd_kafka_mock_cluster_new(c->rk, 1);
  topic_spec_t t[8];
  int n = topic_specs(o, t);
  for (int i = 0; c->mc && i < n; i++) {
    if (rd_kafka_mock_topic_create(c->mc, t[i].name, t[i].partitions, 1)) {
      fprintf(stderr, "feature_pipeline: cannot create topic %s on the mock cluster\n", t[i].name);
      return -1;
    }
  }
  if (!c->mc) {
    fprintf(stderr, "feature_pipeline: cannot start the mock Kafka cluster\n");
    return -1;
  }
  snprintf(c->brokers, sizeof c->brokers, "%s", rd_kafka_mock_cluster_bootstraps(c->mc));
  if (say)
    printf("Kafka: a mock cluster in this process at %s (--brokers for another)\n", c->brokers);
  return 0;
}

static void cluster_stop(cluster_t *c) {
  if (c->mc) rd_kafka_mock_cluster_destroy(c->mc);
  if (c->rk) rd_kafka_destroy(c->rk);
  memset(c, 0, sizeof *c);
}

/* ---------------------------------------------------------------------------------- */
/* One run                                                                            */

static int remove_one(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
  (void)st;
  (void)flag;
  (void)ftw;
  return remove(path);
}

static void remove_tree(const char *path) {
  if (nftw(path, remove_one, 16, FTW_DEPTH | FTW_PHYS) != 0 && errno != ENOENT)
    fprintf(stderr, "feature_pipeline: could not remove %s: %s\n", path, strerror(errno));
}

typedef struct run {
  const fp_options_t *o;
  fp_gen_t *gen;
  fp_job_t *job;
  fp_monitor_t *mon;
  const char *ckpt_dir;
  pthread_t gen_thread, ctl_thread;
  bool gen_started, ctl_started;
  _Atomic bool drained; /* the controller stopped the job with everything committed */
} run_t;

/* Waits until RocksDB has compacted the preloaded state: no compaction pending or
 * running in any subtask's store, twice in a row a second apart. A preload writes
 * gigabytes in a few minutes in random key order, and RocksDB goes on compacting them
 * for minutes after the last write (about 0.4 of the 2 cores at 1M users); events
 * generated meanwhile would measure the job against the bulk load's compaction, where
 * a deployment's state was built up long before, or restored from compacted files. */
static void wait_compacted(run_t *r) {
  fl_env_t *env = fp_job_env(r->job);
  int64_t t0 = fp_mono_ms(), next = t0 + 10000;
  int quiet = 0;
  while (quiet < 2 && !atomic_load(&g_halt)) {
    int64_t pending = fp_monitor_rocksdb(env, "features", "estimate-pending-compaction-bytes");
    int64_t running = fp_monitor_rocksdb(env, "features", "num-running-compactions");
    if ((pending < 0 || running < 0) && fp_mono_ms() - t0 > 30000) {
      printf("no compaction metrics shown by the job: generating without waiting\n");
      return;
    }
    quiet = pending == 0 && running == 0 ? quiet + 1 : 0;
    if (fp_mono_ms() >= next) {
      printf("compacting the preloaded state: %.0f MB pending, %" PRId64 " running (%.0f s)\n",
             pending > 0 ? (double)pending / 1e6 : 0, running > 0 ? running : 0,
             (double)(fp_mono_ms() - t0) / 1000);
      fflush(stdout);
      next += 10000;
    }
    struct timespec ts = {1, 0};
    nanosleep(&ts, NULL);
  }
  printf("compactions done %.1f s after the preload\n", (double)(fp_mono_ms() - t0) / 1000);
}

/* Waits for the first checkpoint triggered after the preload: its barrier came after the
 * last preloaded record, so by its end the state cache has written the preload's dirty
 * cells to RocksDB, as a deployment restored from a checkpoint starts. Without the wait
 * a state cache of gigabytes would hand the whole preload to the first checkpoint of
 * the measured run (1M users, state.backend.rocksdb.cache.size=2gb: a 42 s checkpoint,
 * records held 40 s at its barrier). */
static void wait_checkpointed(run_t *r) {
  fl_env_t *env = fp_job_env(r->job);
  int64_t t0 = fp_mono_ms(), next = t0 + 10000, dur = 0;
  int64_t seen = fp_monitor_last_checkpoint(env, &dur);
  while (!atomic_load(&g_halt)) {
    int64_t id = fp_monitor_last_checkpoint(env, &dur);
    if (id != seen && fp_mono_ms() - dur > t0 + 200) break; /* seen within 100 ms */
    seen = id;
    if (fp_mono_ms() >= next) {
      printf("waiting for a checkpoint of the preloaded state (%.0f s)\n",
             (double)(fp_mono_ms() - t0) / 1000);
      fflush(stdout);
      next += 10000;
    }
    struct timespec ts = {0, 100000000};
    nanosleep(&ts, NULL);
  }
  printf("preloaded state checkpointed %.1f s after the preload\n",
         (double)(fp_mono_ms() - t0) / 1000);
}

/* The generator's thread: waits for a preload first (the benchmark's large state). */
static void *gen_main(void *arg) {
  run_t *r = arg;
  if (r->o->preload_bytes > 0 && r->job) {
    int64_t t0 = fp_mono_ms(), next = t0;
    for (;;) {
      int64_t done = fp_monitor_counter(fp_job_env(r->job), "features", "preloaded");
      if (done >= r->o->users || atomic_load(&g_halt)) break;
      if (fp_mono_ms() >= next) {
        printf("preloading state: %" PRId64 " of %ld users (%.0f s)\n", done, r->o->users,
               (double)(fp_mono_ms() - t0) / 1000);
        fflush(stdout);
        next += 10000;
      }
      struct timespec ts = {0, 200000000};
      nanosleep(&ts, NULL);
    }
    printf("preloaded %ld users in %.1f s\n", r->o->users, (double)(fp_mono_ms() - t0) / 1000);
    wait_checkpointed(r);
    wait_compacted(r);
    printf("generating\n");
    fflush(stdout);
  }
  /* the job's consumers are assigned before the first event, so that the latency
   * figures do not start with the job's start-up */
  for (int i = 0; i < 300 && r->job && !atomic_load(&g_halt); i++) {
    if (fp_monitor_has_metric(fp_job_env(r->job), "raw.events", "records-lag-max")) break;
    struct timespec ts = {0, 20000000};
    nanosleep(&ts, NULL);
  }
  if (!atomic_load(&g_halt)) fp_gen_run(r->gen);
  atomic_store(&fp_gen_stats(r->gen)->done, 1);
  return NULL;
}

/* Ends a run whose generator finished: waits until everything it produced is in
 * committed output (or, for the benchmark, only until it finished), then stops the job. */
static void *ctl_main(void *arg) {
  run_t *r = arg;
  fp_gen_stats_t *st = fp_gen_stats(r->gen);
  while (!atomic_load(&st->done) && !atomic_load(&g_halt)) {
    struct timespec ts = {0, 20000000};
    nanosleep(&ts, NULL);
  }
  if (!atomic_load(&g_halt) && r->o->drain) {
    if (!r->o->quiet) {
      printf("%sgenerator done; waiting for the job to take everything and commit it\n",
             isatty(STDOUT_FILENO) ? "\n" : "");
      fflush(stdout);
    }
    /* a checkpoint interval and some for the job to catch up; a job that cannot keep up
     * is stopped (what it wrote after its last checkpoint is then not committed, and a
     * run with the same --checkpoint-dir would go on from there) */
    int64_t wait = r->o->checkpoint_interval_ms * 2 + 10000;
    if (wait > 70000) wait = 70000;
    if (fp_monitor_wait_drained(r->mon, &g_halt, r->ckpt_dir, wait) == 0)
      atomic_store(&r->drained, true);
    else if (!atomic_load(&g_halt))
      printf("the job did not catch up within %.0f s: stopping it\n", (double)wait / 1000);
  }
  fl_env_stop(fp_job_env(r->job));
  return NULL;
}

static void print_report(const fp_options_t *o, const fp_result_t *res, fp_gen_stats_t *gs, int rc,
                         bool drained);

static double cpu_diff(const struct timeval *a, const struct timeval *b) {
  return (double)(b->tv_sec - a->tv_sec) + (double)(b->tv_usec - a->tv_usec) / 1e6;
}

static int run_once(const fp_options_t *o, fp_result_t *res) {
  cluster_t cl;
  run_t r = {.o = o};
  char ckpt_tmp[] = "/tmp/feature_pipeline_ckpt_XXXXXX";
  char state_tmp[] = "/tmp/feature_pipeline_state_XXXXXX";
  const char *ckpt = o->checkpoint_dir, *state = o->state_dir;
  int rc = 1;
  memset(res, 0, sizeof *res);
  atomic_store(&g_halt, atomic_load(&g_stop));
  if (cluster_start(o, &cl, !o->bench)) goto out;
  if (o->run_job) {
    if (!ckpt && !(ckpt = mkdtemp(ckpt_tmp))) {
      perror("feature_pipeline: mkdtemp");
      goto out;
    }
    if (!state && !(state = mkdtemp(state_tmp))) {
      perror("feature_pipeline: mkdtemp");
      goto out;
    }
  }
  if (o->generate) {
    int64_t start = fp_gen_start_clock(cl.brokers);
    r.gen = fp_gen_new(o, cl.brokers, start);
    if (!r.gen) goto out;
    atomic_store(&g_gen, r.gen);
  }
  if (!o->run_job) {
    printf("generating %ld events/s for %g s to %s (%ld users)\n", o->rate, o->seconds,
           FP_TOPIC_EVENTS, o->users);
    fflush(stdout);
    fp_gen_run(r.gen);
    fp_gen_stats_t *st = fp_gen_stats(r.gen);
    printf("produced %" PRId64 " events (%" PRId64 " delivered, %" PRId64 " failed)\n",
           atomic_load(&st->produced), atomic_load(&st->delivered), atomic_load(&st->failed));
    rc = atomic_load(&st->failed) ? 1 : 0;
    goto out;
  }
  r.job = fp_job_new(o, cl.brokers, ckpt, state);
  r.ckpt_dir = ckpt;
  if (!r.job) goto out;
  if (!o->bench) {
    printf(
        "job: %s -> features (parallelism %d, RocksDB state in %s, incremental checkpoints "
        "every %.3g s in %s, %s output)\n",
        FP_TOPIC_EVENTS, o->parallelism, state, (double)o->checkpoint_interval_ms / 1000, ckpt,
        o->at_least_once ? "at-least-once" : "exactly-once");
    if (o->generate) {
      char span[32] = "until stopped";
      if (o->seconds > 0) snprintf(span, sizeof span, "%g s", o->seconds);
      printf("generator: %ld events/s, %ld users, %s%s, event time %gx the clock\n", o->rate,
             o->users, span, o->flash_sale ? ", with a flash sale" : "", o->time_scale);
    }
    fflush(stdout);
  }
  r.mon = fp_monitor_start(o, cl.brokers, r.job, r.gen ? fp_gen_stats(r.gen) : NULL, state);
  if (!r.mon) goto out;
  atomic_store(&g_env, fp_job_env(r.job));
  if (atomic_load(&g_stop)) fl_env_stop(fp_job_env(r.job));
  if (r.gen) {
    r.gen_started = pthread_create(&r.gen_thread, NULL, gen_main, &r) == 0;
    r.ctl_started = r.gen_started && pthread_create(&r.ctl_thread, NULL, ctl_main, &r) == 0;
    if (!r.ctl_started) {
      fprintf(stderr, "feature_pipeline: cannot start a thread\n");
      fl_env_stop(fp_job_env(r.job));
    }
  }
  struct rusage ru0, ru1;
  getrusage(RUSAGE_SELF, &ru0);
  int jrc = fp_job_run(r.job);
  getrusage(RUSAGE_SELF, &ru1);
  atomic_store(&g_env, NULL);
  /* the job ended: the generator's waits for the preload, its checkpoint and its
   * compactions end too (a job that failed meanwhile never gets there), and the
   * controller */
  atomic_store(&g_halt, 1);
  if (r.gen) fp_gen_stop(r.gen);
  if (r.gen_started) pthread_join(r.gen_thread, NULL);
  if (r.ctl_started) pthread_join(r.ctl_thread, NULL);
  fp_monitor_stop(r.mon, res);
  r.mon = NULL;
  res->cpu_seconds =
      cpu_diff(&ru0.ru_utime, &ru1.ru_utime) + cpu_diff(&ru0.ru_stime, &ru1.ru_stime);
  /* the rate while the generator ran (or over the whole run without one) */
  double secs = r.gen && o->seconds > 0 && o->seconds < res->seconds ? o->seconds : res->seconds;
  res->events_per_s = secs > 0 ? (double)res->events_in / secs : 0;
  if (jrc != FL_OK && jrc != FL_ECANCELED)
    fprintf(stderr, "feature_pipeline: the job failed: %s\n", fl_env_error(fp_job_env(r.job)));
  rc = jrc == FL_OK || jrc == FL_ECANCELED ? 0 : 1;
  if (!o->bench)
    print_report(o, res, r.gen ? fp_gen_stats(r.gen) : NULL, jrc, atomic_load(&r.drained));
out:
  atomic_store(&g_gen, NULL);
  fp_job_free(r.job);
  fp_gen_free(r.gen);
  cluster_stop(&cl);
  if (ckpt == ckpt_tmp) remove_tree(ckpt_tmp);
  if (state == state_tmp) remove_tree(state_tmp);
  return rc;
}

/* ---------------------------------------------------------------------------------- */
/* The report                                                                         */

static void fmt_num(int64_t v, char *out, size_t n) {
  char tmp[32];
  int len = snprintf(tmp, sizeof tmp, "%" PRId64, v < 0 ? -v : v);
  size_t j = 0;
  if (v < 0 && j + 1 < n) out[j++] = '-';
  for (int i = 0; i < len && j + 2 < n; i++) {
    out[j++] = tmp[i];
    if ((len - i - 1) % 3 == 0 && i < len - 1) out[j++] = ',';
  }
  out[j] = '\0';
}

static void fmt_bytes(int64_t b, char *out, size_t n) {
  if (b >= (int64_t)1 << 30)
    snprintf(out, n, "%.2f GB", (double)b / (1 << 30));
  else
    snprintf(out, n, "%.1f MB", (double)b / (1 << 20));
}

static void fmt_ago(json_t *v, char *out, size_t n) {
  if (!json_is_integer(v)) {
    snprintf(out, n, "never");
    return;
  }
  int64_t ms = (int64_t)json_integer_value(v);
  if (ms >= 3600000)
    snprintf(out, n, "%" PRId64 "h %02" PRId64 "m ago", ms / 3600000, ms / 60000 % 60);
  else if (ms >= 60000)
    snprintf(out, n, "%" PRId64 "m %02" PRId64 "s ago", ms / 60000, ms / 1000 % 60);
  else
    snprintf(out, n, "%.1f s ago", (double)ms / 1000);
}

static void print_per_type(json_t *f, const char *key, const char *label, bool money) {
  json_t *a = json_object_get(f, key);
  printf("    %-17s", label);
  for (int t = 0; t < FP_N_TYPES; t++) {
    json_t *v = json_array_get(a, (size_t)t);
    if (money)
      printf(" %s %.2f", fp_type_names[t], json_number_value(v));
    else
      printf(" %s %" JSON_INTEGER_FORMAT, fp_type_names[t], json_integer_value(v));
  }
  printf("\n");
}

static void print_sample(const char *json) {
  json_t *f = json_loads(json, 0, NULL);
  if (!f) return;
  char when[64], since_add[64];
  time_t secs = (time_t)(json_integer_value(json_object_get(f, "event_time_ms")) / 1000);
  struct tm tm;
  gmtime_r(&secs, &tm);
  strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S UTC", &tm);
  printf("  %s, after a %s at %s (event time):\n", json_string_value(json_object_get(f, "user_id")),
         json_string_value(json_object_get(f, "event_type")), when);
  print_per_type(f, "count_1m", "events, 1 min:", false);
  print_per_type(f, "count_5m", "events, 5 min:", false);
  print_per_type(f, "count_1h", "events, 1 h:", false);
  print_per_type(f, "amount_1h", "amounts, 1 h:", true);
  printf("    %-17s %" JSON_INTEGER_FORMAT " events over %.1f min, %" JSON_INTEGER_FORMAT
         " categories\n",
         "session:", json_integer_value(json_object_get(f, "session_events")),
         (double)json_integer_value(json_object_get(f, "session_duration_ms")) / 60000,
         json_integer_value(json_object_get(f, "session_categories")));
  printf("    %-17s", "categories, 1 h:");
  json_t *top = json_object_get(f, "top_categories"),
         *sh = json_object_get(f, "top_category_shares");
  for (size_t i = 0; i < json_array_size(top); i++)
    printf(" %" JSON_INTEGER_FORMAT " (%.0f %%)", json_integer_value(json_array_get(top, i)),
           100 * json_number_value(json_array_get(sh, i)));
  printf(", entropy %.2f bits\n", json_number_value(json_object_get(f, "category_entropy")));
  if (json_integer_value(json_object_get(f, "price_n")) > 0)
    printf("    %-17s last %" JSON_INTEGER_FORMAT
           " views: mean %.2f, std %.2f, %.2f..%.2f; this "
           "price %.2fx the mean\n",
           "prices:", json_integer_value(json_object_get(f, "price_n")),
           json_number_value(json_object_get(f, "price_mean")),
           json_number_value(json_object_get(f, "price_std")),
           json_number_value(json_object_get(f, "price_min")),
           json_number_value(json_object_get(f, "price_max")),
           json_number_value(json_object_get(f, "price_vs_mean")));
  fmt_ago(json_object_get(f, "cart_since_last_add_ms"), since_add, sizeof since_add);
  printf("    %-17s %" JSON_INTEGER_FORMAT
         " items worth %.2f, last add %s, checkout %s, "
         "abandonment risk %.2f\n",
         "cart:", json_integer_value(json_object_get(f, "cart_items")),
         json_number_value(json_object_get(f, "cart_value")), since_add,
         json_integer_value(json_object_get(f, "checkout_started")) ? "started" : "not started",
         json_number_value(json_object_get(f, "abandon_risk")));
  char last[64];
  fmt_ago(json_object_get(f, "since_last_purchase_ms"), last, sizeof last);
  printf("    %-17s %" JSON_INTEGER_FORMAT " purchases, %.2f spent, last %s, %" JSON_INTEGER_FORMAT
         " sessions, %" JSON_INTEGER_FORMAT " abandoned carts\n",
         "lifetime:", json_integer_value(json_object_get(f, "lifetime_purchases")),
         json_number_value(json_object_get(f, "lifetime_spend")), last,
         json_integer_value(json_object_get(f, "lifetime_sessions")),
         json_integer_value(json_object_get(f, "abandoned_carts")));
  json_decref(f);
}

static void print_report(const fp_options_t *o, const fp_result_t *r, fp_gen_stats_t *gs, int rc,
                         bool drained) {
  char a[32], b[32], c[32], d[32], e[32], f[32];
  /* Generated events the job never read, once it read everything the broker still had:
   * the broker dropped them, past its retention, while the job was behind. */
  int64_t dropped = drained && gs ? atomic_load(&gs->produced) - r->events_in : 0;
  printf("\n=== feature_pipeline report (%s after %.1f s) ===\n",
         rc == FL_OK              ? "the job ended"
         : drained && dropped > 0 ? "everything read was committed; stopped"
         : drained                ? "everything generated was committed; stopped"
         : rc == FL_ECANCELED     ? "stopped"
                                  : "FAILED",
         r->seconds);
  if (gs) {
    fmt_num(atomic_load(&gs->produced), a, sizeof a);
    fmt_num(atomic_load(&gs->disordered), b, sizeof b);
    fmt_num(atomic_load(&gs->late), c, sizeof c);
    fmt_num(atomic_load(&gs->malformed), d, sizeof d);
    fmt_num(atomic_load(&gs->forced), e, sizeof e);
    printf(
        "generated:   %s events (%s out of order by up to 3 s, %s later than the allowed "
        "lateness, %s malformed; %s by users who were not ready)\n",
        a, b, c, d, e);
  }
  fmt_num(r->events_in, a, sizeof a);
  fmt_num(r->features_out, b, sizeof b);
  fmt_num(r->spend_out, c, sizeof c);
  fmt_num(r->late, d, sizeof d);
  fmt_num(r->dlq, e, sizeof e);
  fmt_num(r->behind, f, sizeof f);
  printf(
      "job:         %s events in (%.0f/s); %s records to features.user and "
      "features.user_session; %s spend windows; %s late to events.late; %s malformed to "
      "events.dlq",
      a, r->events_per_s, b, c, d, e);
  if (r->behind) printf("; %s within the allowed lateness (windows only)", f);
  printf("\n");
  if (dropped > 0) {
    fmt_num(dropped, a, sizeof a);
    printf(
        "             %s events generated were never read: the broker no longer had them when "
        "the job got there (it drops what is past its retention%s)\n",
        a, o->brokers ? "" : "; the in-process mock cluster keeps about 5 MiB a partition");
  }
  fmt_num(r->lat_n, a, sizeof a);
  printf(
      "latency:     event produced -> feature produced, %s feature records read back: p50 %" PRId64
      " ms, p90 %" PRId64 " ms, p99 %" PRId64 " ms, p99.9 %" PRId64 " ms, max %" PRId64 " ms\n",
      a, r->lat_p50, r->lat_p90, r->lat_p99, r->lat_p999, r->lat_max);
  if (r->steady_p50 >= 0)
    printf("             after the first 5 s: p50 %" PRId64 " ms, p99 %" PRId64 " ms, max %" PRId64
           " ms\n",
           r->steady_p50, r->steady_p99, r->steady_max);
  fmt_bytes(r->ckpt_last_size, a, sizeof a);
  fmt_bytes(r->ckpt_max_new, b, sizeof b);
  fmt_bytes(r->state_bytes_max, c, sizeof c);
  fmt_num(r->lag_max, d, sizeof d);
  printf("checkpoints: %" PRId64 " completed, %" PRId64
         " failed, every %.3g s;%s duration min %" PRId64 " ms, avg %" PRId64 " ms, max %" PRId64
         " ms; last %s referenced, at most %s written "
         "by one; records held at a barrier up to %.1f ms\n",
         r->ckpt_completed, r->ckpt_failed, (double)o->checkpoint_interval_ms / 1000,
         o->preload_bytes > 0 ? " from the first event on (the preload's left out):" : "",
         r->ckpt_min_ms, r->ckpt_seen ? r->ckpt_sum_ms / r->ckpt_seen : 0, r->ckpt_max_ms, a, b,
         r->ckpt_sync_max_ms);
  printf(
      "resources:   RocksDB state on disk up to %s; consumer lag up to %s events; peak RSS %.0f "
      "MB; %.1f CPU seconds (%.2f cores, generator and Kafka included)\n",
      c, d, (double)r->rss_max_kb / 1024, r->cpu_seconds,
      r->seconds > 0 ? r->cpu_seconds / r->seconds : 0);
  if (r->write_stopped_s >= 0)
    printf("             RocksDB stopped the writes of a subtask for about %" PRId64
           " s (is-write-stopped, sampled every 2 s)\n",
           r->write_stopped_s);
  if (r->n_samples) {
    printf(
        "\nthree feature vectors (features.user, the latest of the most active users seen; "
        "docs/feature-pipeline.md defines each):\n");
    for (int i = 0; i < r->n_samples; i++) print_sample(r->samples[i]);
  }
  fflush(stdout);
}

/* ---------------------------------------------------------------------------------- */
/* The benchmark                                                                      */

static int run_bench(const fp_options_t *base) {
  fp_result_t res[16];
  int n = base->n_bench_rates, best = -1;
  printf(
      "feature_pipeline benchmark: parallelism %d, %ld users, %g s per rate, checkpoints "
      "every %.3g s, a mock Kafka cluster in this process\n",
      base->parallelism, base->users, base->bench_seconds,
      (double)base->checkpoint_interval_ms / 1000);
  printf(
      "sustainable: consumer lag when the generator stops below 0.5 s of events, and p99 "
      "after the first 5 s below 85 ms\n");
  printf("%10s %10s %9s %9s %8s %8s %8s %8s %6s %6s %s\n", "rate/s", "in/s", "lag end", "lag max",
         "p50 ms", "p99 ms", "max ms", "ckpt ms", "ckpts", "cores", "sustainable");
  for (int i = 0; i < n && !atomic_load(&g_stop); i++) {
    fp_options_t o = *base;
    o.rate = base->bench_rates[i];
    o.seconds = base->bench_seconds;
    o.quiet = true;
    o.drain = false;
    fp_result_t *r = &res[i];
    if (run_once(&o, r)) {
      printf("%10ld  the run failed\n", o.rate);
      continue;
    }
    bool ok = r->lag_end < o.rate / 2 && r->steady_p99 >= 0 && r->steady_p99 < 85;
    if (ok && (best < 0 || o.rate > base->bench_rates[best])) best = i;
    printf("%10ld %10.0f %9" PRId64 " %9" PRId64 " %8" PRId64 " %8" PRId64 " %8" PRId64 " %8" PRId64
           " %6" PRId64 " %6.2f %s\n",
           o.rate, (double)r->events_in / (o.seconds > 0 ? o.seconds : 1), r->lag_end, r->lag_max,
           r->steady_p50, r->steady_p99, r->steady_max, r->ckpt_max_ms, r->ckpt_completed,
           r->seconds > 0 ? r->cpu_seconds / r->seconds : 0, ok ? "yes" : "no");
    fflush(stdout);
  }
  if (best >= 0)
    printf("highest sustainable rate among those tried: %ld events/s\n", base->bench_rates[best]);
  else
    printf("none of the rates tried was sustainable\n");
  return 0;
}

int main(int argc, char **argv) {
  fp_options_t o;
  int rc = parse_args(argc, argv, &o);
  if (rc) return rc < 0 ? 0 : rc;
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
  if (o.bench) return run_bench(&o);
  fp_result_t res;
  return run_once(&o, &res);
}
