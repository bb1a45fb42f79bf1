/*
 * What the user sees while the job runs, and what the report and the benchmark measure.
 *
 * Event-to-feature latency: a consumer of features.user (read_uncommitted, so it sees a
 * record when it was produced, not when its transaction commits) takes, for every
 * feature record, its Kafka timestamp (the sink's produce time) minus its header
 * source.timestamp (the input event's Kafka timestamp, the generator's produce time), into
 * a histogram of whole milliseconds, as Kafka timestamps are.
 *
 * Everything else comes from fl_env_metrics_json(): events in (the source's
 * records-consumed), features out (the feature function's records), consumer lag (the
 * sum of the source's records-lag.<topic>.<partition> gauges), the watermark (the feature
 * function's input watermark; its lag is the newest event time seen in features.user
 * minus it) and the checkpoints; the state size is what the RocksDB working directory
 * holds on disk.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <ftw.h>
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "feature_pipeline.h"

#define N_SLOTS 256
#define SLOT_BYTES 4000
#define WARMUP_MS 5000

/* ---------------------------------------------------------------------------------- */
/* Histogram                                                                          */

static size_t hist_index(int64_t ms) {
  if (ms < 10000) return (size_t)ms;
  if (ms < 600000) return 10000 + (size_t)((ms - 10000) / 10);
  if (ms < 7200000) return 69000 + (size_t)((ms - 600000) / 1000);
  return FP_HIST_BUCKETS - 1;
}

/* The smallest latency bucket i holds. */
static int64_t hist_value(size_t i) {
  if (i < 10000) return (int64_t)i;
  if (i < 69000) return 10000 + (int64_t)(i - 10000) * 10;
  return 600000 + (int64_t)(i - 69000) * 1000;
}

int fp_hist_init(fp_hist_t *h) {
  h->counts = calloc(FP_HIST_BUCKETS, sizeof *h->counts);
  h->n = h->max = 0;
  return h->counts ? 0 : -1;
}

void fp_hist_add(fp_hist_t *h, int64_t ms) {
  if (ms < 0) ms = 0;
  h->counts[hist_index(ms)]++;
  h->n++;
  if (ms > h->max) h->max = ms;
}

void fp_hist_merge(fp_hist_t *into, const fp_hist_t *from) {
  for (size_t i = 0; i < FP_HIST_BUCKETS; i++) into->counts[i] += from->counts[i];
  into->n += from->n;
  if (from->max > into->max) into->max = from->max;
}

void fp_hist_reset(fp_hist_t *h) {
  memset(h->counts, 0, FP_HIST_BUCKETS * sizeof *h->counts);
  h->n = h->max = 0;
}

/* The smallest value v such that at least pct % of the samples are <= v (to the bucket's
 * precision); -1 if empty. */
int64_t fp_hist_pct(const fp_hist_t *h, double pct) {
  if (h->n == 0) return -1;
  int64_t want = (int64_t)ceil((double)h->n * pct / 100), acc = 0;
  if (want < 1) want = 1;
  for (size_t i = 0; i < FP_HIST_BUCKETS; i++) {
    acc += h->counts[i];
    if (acc >= want) {
      int64_t v = i == FP_HIST_BUCKETS - 1 ? h->max : hist_value(i);
      return v < h->max ? v : h->max;
    }
  }
  return h->max;
}

void fp_hist_free(fp_hist_t *h) {
  free(h->counts);
  h->counts = NULL;
}

/* ---------------------------------------------------------------------------------- */
/* Helpers                                                                            */

int64_t fp_wall_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t fp_mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

rd_kafka_t *fp_kafka_client(rd_kafka_type_t type, const char *brokers, const char *const *kv) {
  char err[512];
  rd_kafka_conf_t *c = rd_kafka_conf_new();
  rd_kafka_conf_set(c, "bootstrap.servers", brokers, NULL, 0);
  rd_kafka_conf_set(c, "log_level", "3", NULL, 0);
  for (; kv && kv[0]; kv += 2) {
    if (rd_kafka_conf_set(c, kv[0], kv[1], err, sizeof err) != RD_KAFKA_CONF_OK) {
      fprintf(stderr, "feature_pipeline: %s\n", err);
      rd_kafka_conf_destroy(c);
      return NULL;
    }
  }
  rd_kafka_t *rk = rd_kafka_new(type, c, err, sizeof err);
  if (!rk) {
    fprintf(stderr, "feature_pipeline: %s\n", err);
    rd_kafka_conf_destroy(c);
  }
  return rk;
}

int fp_topic_partitions(rd_kafka_t *rk, const char *topic) {
  const struct rd_kafka_metadata *md = NULL;
  rd_kafka_topic_t *t = rd_kafka_topic_new(rk, topic, NULL);
  int n = -1;
  if (t && rd_kafka_metadata(rk, 0, t, &md, 10000) == RD_KAFKA_RESP_ERR_NO_ERROR &&
      md->topic_cnt == 1 && md->topics[0].err == RD_KAFKA_RESP_ERR_NO_ERROR)
    n = md->topics[0].partition_cnt;
  if (md) rd_kafka_metadata_destroy(md);
  if (t) rd_kafka_topic_destroy(t);
  return n;
}

static _Thread_local int64_t g_du;
static int du_one(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
  (void)path;
  (void)ftw;
  if (flag == FTW_F) g_du += (int64_t)st->st_blocks * 512;
  return 0;
}

int64_t fp_dir_bytes(const char *path) {
  g_du = 0;
  if (!path || nftw(path, du_one, 32, FTW_PHYS) != 0) return g_du;
  return g_du;
}

static int64_t rss_max_kb(void) {
  FILE *f = fopen("/proc/self/status", "r");
  char line[256];
  int64_t kb = 0;
  if (!f) return 0;
  while (fgets(line, sizeof line, f))
    if (strncmp(line, "VmHWM:", 6) == 0) kb = atoll(line + 6);
  fclose(f);
  return kb;
}

/* ---------------------------------------------------------------------------------- */
/* The monitor                                                                        */

typedef struct slot {
  char user[FP_USER_MAX + 1];
  size_t len;
  char *json;
} slot_t;

typedef struct sample {
  int64_t mono;
  int64_t events_in, features_out, lag, late, dlq, spend, behind;
  int64_t wm; /* INT64_MIN: none */
  int64_t ckpt_id, ckpt_ms, ckpt_size, ckpt_new, completed, failed;
  int64_t sync_ns; /* the largest checkpoint_sync_ns over the operator subtasks */
} sample_t;

struct fp_monitor {
  fp_options_t o;
  fp_job_t *job;
  fl_env_t *env;
  fp_gen_stats_t *gen;
  char state_dir[4096];
  char ckpt_dir[4096];
  rd_kafka_t *reader;
  pthread_t thread;
  _Atomic int stop;
  pthread_mutex_t mu; /* everything below */
  fp_hist_t total, steady, second;
  int64_t features_read, max_event_ts;
  slot_t slots[N_SLOTS];
  sample_t last, prev;
  bool have_last;
  int64_t t0;
  int64_t lag_max, lag_at_gen_end, state_bytes, state_max;
  /* samples 2 s apart in which RocksDB stopped the writes of some subtask (the
   * is-write-stopped metric, asked for in large-state runs); -1: no such metric */
  int64_t write_stopped_samples;
  bool gen_end_seen;
  /* checkpoints: durations seen, and when each id was first seen (for the drain) */
  int64_t ck_seen_id, ck_seen_mono, ck_min, ck_max, ck_sum, ck_n, ck_max_new;
  int64_t ck_sync_max_ns; /* the largest checkpoint_sync_ns of any operator subtask seen */
  int64_t ck_preload_id;  /* the last checkpoint completed before the first event */
  bool tty;
  int64_t last_plain;
};

static bool is_tty(void) { return isatty(STDOUT_FILENO) == 1; }

static int64_t counter(json_t *op, const char *name) {
  json_t *v = json_object_get(json_object_get(op, "metrics"), name);
  return json_is_integer(v) ? (int64_t)json_integer_value(v) : 0;
}

/* Reads the job's metrics into s. */
static void take_sample(fp_monitor_t *m, sample_t *s) {
  memset(s, 0, sizeof *s);
  s->mono = fp_mono_ms();
  s->wm = INT64_MIN;
  char *text = fl_env_metrics_json(m->env);
  json_t *root = text ? json_loads(text, 0, NULL) : NULL;
  fl_free(text);
  if (!root) return;
  size_t i;
  json_t *op;
  json_array_foreach(json_object_get(root, "operators"), i, op) {
    const char *name = json_string_value(json_object_get(op, "name"));
    if (!name) continue;
    size_t k;
    json_t *sub;
    json_array_foreach(json_object_get(op, "subtasks"), k, sub) {
      json_t *v = json_object_get(sub, "checkpoint_sync_ns");
      if (json_is_integer(v) && json_integer_value(v) > s->sync_ns)
        s->sync_ns = (int64_t)json_integer_value(v);
    }
    if (strcmp(name, "raw.events") == 0) {
      s->events_in = counter(op, "records-consumed");
      s->dlq = counter(op, "dead-lettered");
      const char *k;
      json_t *v;
      json_object_foreach(json_object_get(op, "metrics"), k, v) {
        if (strncmp(k, "records-lag.", 12) == 0 && json_is_integer(v))
          s->lag += (int64_t)json_integer_value(v);
      }
    } else if (strcmp(name, "lateness") == 0) {
      s->late = counter(op, "late");
    } else if (strcmp(name, "features") == 0) {
      s->features_out = (int64_t)json_integer_value(json_object_get(op, "records_out"));
      s->behind = counter(op, "events-behind-watermark");
      json_t *wm = json_object_get(op, "current_input_watermark");
      if (json_is_integer(wm)) s->wm = (int64_t)json_integer_value(wm);
    } else if (strcmp(name, "user_5min_spend") == 0) {
      s->spend = (int64_t)json_integer_value(json_object_get(op, "records_out"));
    }
  }
  json_t *ck = json_object_get(root, "checkpoints");
  s->completed = (int64_t)json_integer_value(json_object_get(ck, "completed"));
  s->failed = (int64_t)json_integer_value(json_object_get(ck, "failed"));
  s->ckpt_id = (int64_t)json_integer_value(json_object_get(ck, "last_id"));
  s->ckpt_ms = (int64_t)json_integer_value(json_object_get(ck, "last_duration_ms"));
  s->ckpt_size = (int64_t)json_integer_value(json_object_get(ck, "last_size_bytes"));
  s->ckpt_new = (int64_t)json_integer_value(json_object_get(ck, "last_new_bytes"));
  json_decref(root);
}

/* Folds a new sample into the statistics (m->mu held). */
static void note_sample(fp_monitor_t *m, const sample_t *s) {
  /* A large-state run's checkpoint figures start with its events: the checkpoints until
   * then wrote the preload, not what the job does (their ids are left out). */
  if (m->o.preload_bytes > 0 && m->gen && atomic_load(&m->gen->produced) == 0)
    m->ck_preload_id = s->ckpt_id;
  bool counted = s->ckpt_id > m->ck_preload_id;
  if (s->ckpt_id != m->ck_seen_id && s->ckpt_id > 0) {
    m->ck_seen_id = s->ckpt_id;
    m->ck_seen_mono = s->mono;
    if (counted) {
      if (m->ck_n == 0 || s->ckpt_ms < m->ck_min) m->ck_min = s->ckpt_ms;
      if (s->ckpt_ms > m->ck_max) m->ck_max = s->ckpt_ms;
      if (s->ckpt_new > m->ck_max_new) m->ck_max_new = s->ckpt_new;
      m->ck_sum += s->ckpt_ms;
      m->ck_n++;
    }
  }
  if (counted && s->sync_ns > m->ck_sync_max_ns) m->ck_sync_max_ns = s->sync_ns;
  if (s->mono - m->t0 >= WARMUP_MS && s->lag > m->lag_max) m->lag_max = s->lag;
  if (m->gen && atomic_load(&m->gen->done) && !m->gen_end_seen) {
    m->gen_end_seen = true;
    m->lag_at_gen_end = s->lag;
  }
  m->prev = m->last;
  m->last = *s;
  m->have_last = true;
}

static void human_bytes(int64_t b, char *out, size_t n) {
  if (b >= (int64_t)1 << 30)
    snprintf(out, n, "%.2f GB", (double)b / (1 << 30));
  else if (b >= 1 << 20)
    snprintf(out, n, "%.1f MB", (double)b / (1 << 20));
  else
    snprintf(out, n, "%.0f KB", (double)b / 1024);
}

static void status_line(fp_monitor_t *m) {
  const sample_t *s = &m->last, *p = &m->prev;
  double dt = (double)(s->mono - p->mono) / 1000;
  if (dt <= 0 || !p->mono) return;
  char st[32], ck[32], wml[32];
  human_bytes(m->state_bytes, st, sizeof st);
  human_bytes(s->ckpt_size, ck, sizeof ck);
  /* the newest event time: the generator's clock when it runs here, else the newest seen
   * in features.user (which the sink holds back while a checkpoint is in flight) */
  int64_t newest = m->max_event_ts;
  if (m->gen && atomic_load(&m->gen->max_event_ts) > newest)
    newest = atomic_load(&m->gen->max_event_ts);
  if (s->wm != INT64_MIN && newest > 0)
    snprintf(wml, sizeof wml, "%.1fs", (double)(newest - s->wm) / 1000);
  else
    snprintf(wml, sizeof wml, "-");
  char line[512];
  int64_t p50 = fp_hist_pct(&m->second, 50), p99 = fp_hist_pct(&m->second, 99);
  snprintf(line, sizeof line,
           "[%3.0fs] in %6.0f/s  out %6.0f/s  lag %6" PRId64 "  wm lag %s  ckpt #%" PRId64
           " %.2fs %s  state %s  p50 %" PRId64 "ms p99 %" PRId64 "ms",
           (double)(s->mono - m->t0) / 1000, (double)(s->events_in - p->events_in) / dt,
           (double)(s->features_out - p->features_out) / dt, s->lag, wml, s->ckpt_id,
           (double)s->ckpt_ms / 1000, ck, st, p50 < 0 ? 0 : p50, p99 < 0 ? 0 : p99);
  if (m->tty) {
    printf("\r\033[K%s", line);
    fflush(stdout);
  } else if (s->mono - m->last_plain >= 5000) {
    m->last_plain = s->mono;
    printf("%s\n", line);
    fflush(stdout);
  }
}

static int64_t header_i64(rd_kafka_headers_t *h, const char *name) {
  const void *v;
  size_t n;
  char buf[32];
  if (!h || rd_kafka_header_get_last(h, name, &v, &n) != RD_KAFKA_RESP_ERR_NO_ERROR || !v ||
      n >= sizeof buf)
    return -1;
  memcpy(buf, v, n);
  buf[n] = '\0';
  return atoll(buf);
}

static void on_feature(fp_monitor_t *m, rd_kafka_message_t *msg) {
  rd_kafka_headers_t *h = NULL;
  rd_kafka_message_headers(msg, &h);
  int64_t src = header_i64(h, "source.timestamp");
  rd_kafka_timestamp_type_t tt;
  int64_t ts = rd_kafka_message_timestamp(msg, &tt);
  m->features_read++;
  if (src > 0 && ts > 0) {
    int64_t lat = ts - src;
    fp_hist_add(&m->total, lat);
    fp_hist_add(&m->second, lat);
    if (fp_mono_ms() - m->t0 >= WARMUP_MS) fp_hist_add(&m->steady, lat);
  }
  /* the newest event time, for the watermark lag */
  const char *p = msg->payload;
  size_t n = msg->len < 120 ? msg->len : 120;
  const char *k = p ? memmem(p, n, "\"event_time_ms\":", 16) : NULL;
  if (k) {
    int64_t et = atoll(k + 16);
    if (et > m->max_event_ts) m->max_event_ts = et;
  }
  /* a sample of the latest vectors of a few users */
  if (msg->key && msg->key_len <= FP_USER_MAX && msg->len < SLOT_BYTES) {
    uint64_t x = 1469598103934665603ULL;
    for (size_t i = 0; i < msg->key_len; i++)
      x = (x ^ ((const uint8_t *)msg->key)[i]) * 1099511628211ULL;
    slot_t *s = &m->slots[x % N_SLOTS];
    memcpy(s->user, msg->key, msg->key_len);
    s->user[msg->key_len] = '\0';
    memcpy(s->json, msg->payload, msg->len);
    s->json[msg->len] = '\0';
    s->len = msg->len;
  }
}

static void *monitor_main(void *arg) {
  fp_monitor_t *m = arg;
  int64_t next_sample = fp_mono_ms() + 1000, next_du = 0;
  while (!atomic_load(&m->stop)) {
    rd_kafka_message_t *msg = m->reader ? rd_kafka_consumer_poll(m->reader, 50) : NULL;
    if (!m->reader) {
      struct timespec ts = {0, 50000000};
      nanosleep(&ts, NULL);
    }
    if (msg) {
      pthread_mutex_lock(&m->mu);
      if (!msg->err) on_feature(m, msg);
      pthread_mutex_unlock(&m->mu);
      rd_kafka_message_destroy(msg);
    }
    int64_t now = fp_mono_ms();
    if (now >= next_du) {
      int64_t b = fp_dir_bytes(m->state_dir);
      int64_t stopped =
          m->o.preload_bytes > 0 ? fp_monitor_rocksdb(m->env, "features", "is-write-stopped") : -1;
      pthread_mutex_lock(&m->mu);
      m->state_bytes = b;
      if (b > m->state_max) m->state_max = b;
      if (stopped >= 0)
        m->write_stopped_samples =
            (m->write_stopped_samples < 0 ? 0 : m->write_stopped_samples) + (stopped > 0);
      pthread_mutex_unlock(&m->mu);
      next_du = now + 2000;
    }
    if (now >= next_sample) {
      sample_t s;
      take_sample(m, &s);
      pthread_mutex_lock(&m->mu);
      note_sample(m, &s);
      if (!m->o.quiet) status_line(m);
      fp_hist_reset(&m->second);
      pthread_mutex_unlock(&m->mu);
      next_sample = now + 1000;
    }
  }
  return NULL;
}

fp_monitor_t *fp_monitor_start(const fp_options_t *o, const char *brokers, fp_job_t *job,
                               fp_gen_stats_t *gen, const char *state_dir) {
  fp_monitor_t *m = calloc(1, sizeof *m);
  if (!m) return NULL;
  m->o = *o;
  m->job = job;
  m->env = fp_job_env(job);
  m->write_stopped_samples = -1;
  m->gen = gen;
  m->tty = is_tty();
  m->t0 = fp_mono_ms();
  snprintf(m->state_dir, sizeof m->state_dir, "%s", state_dir ? state_dir : "");
  pthread_mutex_init(&m->mu, NULL);
  if (fp_hist_init(&m->total) || fp_hist_init(&m->steady) || fp_hist_init(&m->second)) goto fail;
  for (int i = 0; i < N_SLOTS; i++)
    if (!(m->slots[i].json = malloc(SLOT_BYTES))) goto fail;
  static const char *const kv[] = {"group.id",
                                   "feature_pipeline.latency",
                                   "enable.auto.commit",
                                   "false",
                                   "isolation.level",
                                   "read_uncommitted",
                                   "fetch.wait.max.ms",
                                   "5",
                                   "enable.partition.eof",
                                   "false",
                                   NULL};
  m->reader = fp_kafka_client(RD_KAFKA_CONSUMER, brokers, kv);
  if (!m->reader) goto fail;
  int parts = fp_topic_partitions(m->reader, FP_TOPIC_FEATURES);
  if (parts < 1) {
    fprintf(stderr, "feature_pipeline: cannot read the partitions of %s\n", FP_TOPIC_FEATURES);
    goto fail;
  }
  rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(parts);
  for (int p = 0; p < parts; p++)
    rd_kafka_topic_partition_list_add(l, FP_TOPIC_FEATURES, p)->offset = RD_KAFKA_OFFSET_END;
  rd_kafka_resp_err_t e = rd_kafka_assign(m->reader, l);
  rd_kafka_topic_partition_list_destroy(l);
  if (e) {
    fprintf(stderr, "feature_pipeline: reading %s: %s\n", FP_TOPIC_FEATURES, rd_kafka_err2str(e));
    goto fail;
  }
  if (pthread_create(&m->thread, NULL, monitor_main, m) != 0) goto fail;
  return m;
fail:
  fprintf(stderr, "feature_pipeline: cannot start the monitor\n");
  if (m->reader) rd_kafka_destroy(m->reader);
  for (int i = 0; i < N_SLOTS; i++) free(m->slots[i].json);
  fp_hist_free(&m->total);
  fp_hist_free(&m->steady);
  fp_hist_free(&m->second);
  free(m);
  return NULL;
}

static bool sleep_or_stop(int ms, _Atomic int *stop_flag) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
  return stop_flag && atomic_load(stop_flag);
}

/* Whether every transaction log under <dir>/kafka-txn ends settled (no "intent" line
 * waiting for its "committed"). */
static bool txn_logs_settled(const char *ckpt_dir) {
  char dir[4200];
  snprintf(dir, sizeof dir, "%s/kafka-txn", ckpt_dir);
  DIR *d = opendir(dir);
  if (!d) return true;
  bool settled = true;
  struct dirent *e;
  while (settled && (e = readdir(d))) {
    if (!strstr(e->d_name, ".log")) continue;
    char p[4600], line[1024], last[1024] = "";
    snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
    FILE *f = fopen(p, "r");
    if (!f) continue;
    while (fgets(line, sizeof line, f)) snprintf(last, sizeof last, "%s", line);
    fclose(f);
    settled = strncmp(last, "intent ", 7) != 0;
  }
  closedir(d);
  return settled;
}

int fp_monitor_wait_drained(fp_monitor_t *m, _Atomic int *stop_flag, const char *ckpt_dir,
                            int64_t max_ms) {
  int64_t give_up = fp_mono_ms() + max_ms;
  /* 1. every event produced was consumed: the lag is 0 twice, a second apart, after the
   *    generator flushed; then nothing moves inside the job any more */
  int zero = 0;
  int64_t last_in = -1;
  while (zero < 2) {
    if (sleep_or_stop(250, stop_flag) || fp_mono_ms() > give_up) return -1;
    sample_t s;
    take_sample(m, &s);
    if (s.lag == 0 && s.events_in == last_in && (!m->gen || atomic_load(&m->gen->done)))
      zero++;
    else
      zero = 0;
    last_in = s.events_in;
  }
  int64_t drained = fp_mono_ms();
  /* 2. a checkpoint triggered after that completed: its barrier came after every record,
   *    so its transactions hold everything. Its trigger time is when it was first seen
   *    complete minus its duration (seen within 20 ms). */
  sample_t s;
  take_sample(m, &s);
  int64_t seen_id = s.ckpt_id;
  for (;;) {
    if (sleep_or_stop(20, stop_flag) || fp_mono_ms() > give_up) return -1;
    take_sample(m, &s);
    if (s.ckpt_id == seen_id) continue;
    seen_id = s.ckpt_id;
    if (fp_mono_ms() - s.ckpt_ms > drained + 100) break;
  }
  /* 3. and the sinks committed it (their logs end with "committed") */
  for (int i = 0; i < 100 && !txn_logs_settled(ckpt_dir); i++)
    if (sleep_or_stop(50, stop_flag)) return -1;
  return sleep_or_stop(100, stop_flag) ? -1 : 0;
}

bool fp_monitor_has_metric(fl_env_t *env, const char *op_name, const char *name) {
  char *text = fl_env_metrics_json(env);
  json_t *root = text ? json_loads(text, 0, NULL) : NULL;
  fl_free(text);
  bool has = false;
  size_t i;
  json_t *op;
  json_array_foreach(json_object_get(root, "operators"), i, op) {
    const char *n = json_string_value(json_object_get(op, "name"));
    if (n && strcmp(n, op_name) == 0) has = json_object_get(json_object_get(op, "metrics"), name);
  }
  json_decref(root);
  return has;
}

int64_t fp_monitor_counter(fl_env_t *env, const char *op_name, const char *name) {
  char *text = fl_env_metrics_json(env);
  json_t *root = text ? json_loads(text, 0, NULL) : NULL;
  fl_free(text);
  int64_t v = 0;
  size_t i;
  json_t *op;
  json_array_foreach(json_object_get(root, "operators"), i, op) {
    const char *n = json_string_value(json_object_get(op, "name"));
    if (n && strcmp(n, op_name) == 0) v = counter(op, name);
  }
  json_decref(root);
  return v;
}

int64_t fp_monitor_last_checkpoint(fl_env_t *env, int64_t *duration_ms) {
  char *text = fl_env_metrics_json(env);
  json_t *root = text ? json_loads(text, 0, NULL) : NULL;
  fl_free(text);
  json_t *ck = json_object_get(root, "checkpoints");
  int64_t id = (int64_t)json_integer_value(json_object_get(ck, "last_id"));
  *duration_ms = (int64_t)json_integer_value(json_object_get(ck, "last_duration_ms"));
  json_decref(root);
  return id;
}

int64_t fp_monitor_rocksdb(fl_env_t *env, const char *op_name, const char *name) {
  char *text = fl_env_metrics_json(env);
  json_t *root = text ? json_loads(text, 0, NULL) : NULL;
  fl_free(text);
  int64_t v = -1;
  size_t i, k;
  json_t *op, *sub;
  json_array_foreach(json_object_get(root, "operators"), i, op) {
    const char *n = json_string_value(json_object_get(op, "name"));
    if (!n || strcmp(n, op_name) != 0) continue;
    json_array_foreach(json_object_get(op, "subtasks"), k, sub) {
      json_t *x = json_object_get(json_object_get(sub, "rocksdb"), name);
      if (json_is_integer(x)) v = (v < 0 ? 0 : v) + (int64_t)json_integer_value(x);
    }
  }
  json_decref(root);
  return v;
}

static double activity(json_t *f) {
  double a = 0;
  size_t i;
  json_t *v;
  json_array_foreach(json_object_get(f, "count_1h"), i, v) a += json_number_value(v);
  return a + json_number_value(json_object_get(f, "session_events"));
}

void fp_monitor_stop(fp_monitor_t *m, fp_result_t *r) {
  atomic_store(&m->stop, 1);
  pthread_join(m->thread, NULL);
  if (m->tty && !m->o.quiet) printf("\n");
  sample_t s;
  take_sample(m, &s);
  note_sample(m, &s);
  memset(r, 0, sizeof *r);
  r->events_in = s.events_in;
  r->features_out = s.features_out;
  r->spend_out = s.spend;
  r->late = s.late;
  r->dlq = s.dlq;
  r->behind = s.behind;
  r->features_read = m->features_read;
  r->lat_n = m->total.n;
  r->lat_p50 = fp_hist_pct(&m->total, 50);
  r->lat_p90 = fp_hist_pct(&m->total, 90);
  r->lat_p99 = fp_hist_pct(&m->total, 99);
  r->lat_p999 = fp_hist_pct(&m->total, 99.9);
  r->lat_max = m->total.max;
  r->steady_p50 = fp_hist_pct(&m->steady, 50);
  r->steady_p99 = fp_hist_pct(&m->steady, 99);
  r->steady_max = m->steady.max;
  r->ckpt_completed = s.completed;
  r->ckpt_failed = s.failed;
  r->ckpt_min_ms = m->ck_min;
  r->ckpt_max_ms = m->ck_max;
  r->ckpt_sum_ms = m->ck_sum;
  r->ckpt_seen = m->ck_n;
  r->ckpt_last_size = s.ckpt_size;
  r->ckpt_max_new = m->ck_max_new;
  r->ckpt_sync_max_ms = (double)m->ck_sync_max_ns / 1e6;
  r->lag_max = m->lag_max;
  r->lag_end = m->lag_at_gen_end;
  r->state_bytes = m->state_bytes;
  r->state_bytes_max = m->state_max;
  r->write_stopped_s = m->write_stopped_samples < 0 ? -1 : m->write_stopped_samples * 2;
  r->rss_max_kb = rss_max_kb();
  r->seconds = (double)(fp_mono_ms() - m->t0) / 1000;
  /* three samples: the most active users among the vectors kept */
  double best[3] = {-1, -1, -1};
  int pick[3] = {-1, -1, -1};
  for (int i = 0; i < N_SLOTS; i++) {
    if (!m->slots[i].len) continue;
    json_t *f = json_loads(m->slots[i].json, 0, NULL);
    double a = f ? activity(f) : -1;
    json_decref(f);
    for (int k = 0; k < 3; k++) {
      if (a > best[k]) {
        for (int j = 2; j > k; j--) best[j] = best[j - 1], pick[j] = pick[j - 1];
        best[k] = a;
        pick[k] = i;
        break;
      }
    }
  }
  for (int k = 0; k < 3; k++) {
    if (pick[k] < 0) break;
    snprintf(r->samples[k], sizeof r->samples[k], "%s", m->slots[pick[k]].json);
    r->n_samples++;
  }
  rd_kafka_consumer_close(m->reader);
  rd_kafka_destroy(m->reader);
  for (int i = 0; i < N_SLOTS; i++) free(m->slots[i].json);
  fp_hist_free(&m->total);
  fp_hist_free(&m->steady);
  fp_hist_free(&m->second);
  pthread_mutex_destroy(&m->mu);
  free(m);
}
