/*
 * flink-agg: windowed aggregation of JSON lines from the command line.
 *
 *   flink-agg --input PATH|- [--output PATH|-] --key FIELD --time FIELD [--value FIELD]
 *             --agg sum|count|min|max|avg
 *             --window tumbling:SIZE | sliding:SIZE:SLIDE | session:GAP
 *             [--out-of-orderness DUR] [--allowed-lateness DUR] [--late-output PATH]
 *             [--watermark-interval DUR] [--parallelism N]
 *             [--on-error fail|skip|dead-letter:PATH] [--max-line-bytes SIZE]
 *             [--state-backend hashmap|rocksdb]
 *             [--checkpoint-dir DIR [--checkpoint-interval DUR]]
 *             [--savepoint-on-exit PATH] [--from-savepoint PATH]
 *             [--set KEY=VALUE]... [-X KEY=VALUE]...
 *
 * The job:
 *   lines(input, parse function, on-error policy, dead letters: a side output)
 *     -> assign_timestamps (bounded out-of-orderness, the record's timestamp)
 *     -> key_by(record key) -> window (event time) -> aggregate -> lines(output)
 *   window late data -> original line -> lines(late-output)
 *   lines' dead letters -> the bad line as read -> lines(dead-letter path)
 *
 * Records after parse: key = the key field's compact JSON encoding (so "u1" keeps its
 * quotes and 42 stays 42, and two spellings of one string are one key), timestamp = the
 * time field, value = a native double followed by the original line (the line only
 * when --late-output needs it).
 *
 * Durability: --checkpoint-dir takes a checkpoint every --checkpoint-interval (default
 * 1s, the newest 2 kept) and resumes from the newest complete checkpoint found there;
 * --savepoint-on-exit makes SIGINT/SIGTERM take a savepoint (from a helper thread, since
 * fl_env_savepoint() blocks) before stopping; --from-savepoint starts from one. In those
 * modes an output (--output, --late-output, the dead-letter path) that names a directory
 * is written by the exactly-once file sink, so a run killed and resumed, or stopped with
 * a savepoint and started from it, commits exactly the lines of an uninterrupted run.
 *
 * Exit status: 0 on success, 1 when the job fails (or the savepoint on exit failed), 2 on
 * a usage error, 128 + signal number when stopped by SIGINT or SIGTERM (after the
 * savepoint with --savepoint-on-exit).
 */
#define _GNU_SOURCE

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "flink.h"

#define AGG_EXIT_FAILURE 1
#define AGG_EXIT_USAGE 2
#define AGG_CHECKPOINT_INTERVAL "1s"
#define AGG_CHECKPOINTS_RETAINED "2"
#define AGG_MAX_REPEATED 64 /* --set and -X options, each */

typedef enum agg_kind {
  AGG_SUM,
  AGG_COUNT,
  AGG_MIN,
  AGG_MAX,
  AGG_AVG
} agg_kind_t;
typedef enum agg_window_kind {
  WIN_TUMBLING,
  WIN_SLIDING,
  WIN_SESSION
} agg_window_kind_t;
typedef enum agg_on_error {
  ON_ERROR_FAIL,
  ON_ERROR_SKIP,
  ON_ERROR_DEAD_LETTER
} agg_on_error_t;

typedef struct agg_opts {
  const char *input;
  const char *output;
  const char *key;
  const char *time;
  const char *value;
  agg_kind_t agg;
  agg_window_kind_t window;
  int64_t size, slide, gap;
  int64_t out_of_orderness;
  int64_t allowed_lateness;
  const char *late_output;
  const char *watermark_interval; /* normalised to milliseconds */
  char watermark_interval_buf[32];
  const char *parallelism;
  agg_on_error_t on_error;
  const char *dead_letter;
  size_t max_line_bytes;           /* 0: the library's default */
  const char *state_backend;       /* NULL: the library's default */
  const char *checkpoint_dir;      /* NULL: no checkpoints */
  const char *checkpoint_interval; /* normalised to milliseconds */
  char checkpoint_interval_buf[32];
  const char *savepoint_on_exit;
  const char *from_savepoint;
  /* Kafka: an input, output, late output or dead-letter target "kafka:TOPIC" */
  const char *brokers;
  const char *group;       /* consumer group, transactional-id prefix */
  const char *kafka_start; /* earliest (default), latest, committed */
  bool bounded;            /* kafka input: stop at the end offsets seen at start */
  int64_t idle_timeout;    /* kafka input: partition idleness, 0: never */
  bool accept_duplicates;  /* kafka output: start over committed output (see flink.h) */
  const char *input_topic; /* NULL: the input is a file */
  /* Durable mode (checkpoints or savepoints): outputs that name a directory go to the
   * exactly-once file sink. */
  bool output_dir, late_output_dir, dead_letter_dir;
  /* --set KEY=VALUE, applied after the tool's own settings (so they win) */
  const char *sets[AGG_MAX_REPEATED];
  int n_sets;
  /* -X KEY=VALUE: librdkafka properties of every Kafka source and sink, as key, value
   * pairs (split in argv, so that a secret does not show in ps either), NULL-terminated */
  const char *props[2 * AGG_MAX_REPEATED + 1];
  int n_props;
} agg_opts_t;

/* Shared, read-only during the job except for the atomic counter. */
typedef struct agg_job {
  const agg_opts_t *opts;
  int parallelism; /* as configured, after --set */
  bool keep_line;  /* records carry the original line (for --late-output) */
  fl_output_tag_t *dead_tag;
  _Atomic uint64_t cut;        /* dead letters of over-long lines (their first bytes) */
  struct agg_parser *lparser;  /* file input: the lines source's parser */
  struct agg_parser *kparsers; /* kafka input: one parser per subtask */
  int n_kparsers;
} agg_job_t;

/* The window accumulator. */
typedef struct agg_acc {
  double sum, min, max;
  uint64_t count;
} agg_acc_t;

static fl_env_t *volatile agg_env;
static volatile sig_atomic_t agg_signal; /* the first SIGINT/SIGTERM */

/* --savepoint-on-exit: the signal handler wakes this helper thread (sem_post is
 * async-signal-safe; fl_env_savepoint() blocks and is not), which takes the savepoint
 * and then stops the job. */
typedef struct agg_saver {
  fl_env_t *env;
  const char *path;
  sem_t wake;
  pthread_t thread;
  bool started;
  _Atomic bool done;   /* set by main when the job ended: leave without saving */
  _Atomic int signals; /* signals seen; the second one stops at once */
  bool attempted;      /* read by main after the join */
  int rc;
  char err[1024];
} agg_saver_t;

static agg_saver_t agg_saver;

/* ---------------------------------------------------------------------------------- */
/* Command line                                                                       */

static const char agg_usage_text[] =
    "usage: flink-agg --input PATH|- [--output PATH|-] --key FIELD --time FIELD\n"
    "                 [--value FIELD] --agg sum|count|min|max|avg\n"
    "                 --window tumbling:SIZE | sliding:SIZE:SLIDE | session:GAP\n"
    "                 [--out-of-orderness DUR] [--allowed-lateness DUR]\n"
    "                 [--late-output PATH] [--watermark-interval DUR]\n"
    "                 [--parallelism N] [--on-error fail|skip|dead-letter:PATH]\n"
    "                 [--max-line-bytes SIZE]\n"
    "                 [--state-backend hashmap|rocksdb]\n"
    "                 [--checkpoint-dir DIR [--checkpoint-interval DUR]]\n"
    "                 [--savepoint-on-exit PATH] [--from-savepoint PATH]\n"
    "                 [--brokers LIST] [--group ID] [--kafka-start earliest|latest|committed]\n"
    "                 [--bounded true|false] [--idle-timeout DUR]\n"
    "                 [--accept-duplicates true|false]\n"
    "                 [--set KEY=VALUE]... [-X KEY=VALUE]...\n"
    "DUR: 250, 250ms, 5s, 5m, 1h; SIZE: 4096, 64kb, 16mb\n"
    "PATH may be kafka:TOPIC for --input, --output, --late-output and dead-letter: (needs\n"
    "--brokers). A Kafka input runs until stopped (SIGINT/SIGTERM) unless --bounded true;\n"
    "a Kafka output is transactional (exactly once) with --checkpoint-dir, and a start that\n"
    "would commit output again (a restore past a damaged checkpoint, a deleted checkpoint\n"
    "directory) fails unless --accept-duplicates true.\n"
    "--set sets any configuration key (docs/configuration.md) over the tool's own choice;\n"
    "-X sets a librdkafka property (e.g. security.protocol=SASL_SSL) of every Kafka client.\n"
    "With --checkpoint-dir, --savepoint-on-exit or --from-savepoint, an output path that\n"
    "is a directory (existing, or ending in '/') receives exactly-once part-* files.\n";

static int agg_usage(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int agg_usage(const char *fmt, ...) {
  va_list ap;
  fputs("flink-agg: ", stderr);
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fputc('\n', stderr);
  fputs(agg_usage_text, stderr);
  return AGG_EXIT_USAGE;
}

static int agg_duration(const char *opt, const char *s, int64_t *out) {
  if (fl_parse_duration(s, out) != FL_OK)
    return agg_usage("invalid duration for %s: '%s' (expected e.g. 250, 250ms, 5s, 5m, 1h)", opt,
                     s);
  return 0;
}

/* A size in bytes: digits with an optional unit b, k/kb, m/mb, g/gb (powers of 1024, any
 * case), at most max. */
static int agg_size(const char *opt, const char *s, size_t max, size_t *out) {
  static const char *const units[] = {"b", "k", "kb", "m", "mb", "g", "gb"};
  static const int shifts[] = {0, 10, 10, 20, 20, 30, 30};
  char *end = NULL;
  unsigned long long v;
  int shift = -1;
  errno = 0;
  v = strtoull(s, &end, 10);
  if (errno == 0 && end != s && s[0] >= '0' && s[0] <= '9') {
    if (*end == '\0') shift = 0;
    for (size_t u = 0; shift < 0 && u < sizeof(units) / sizeof(units[0]); u++)
      if (strcasecmp(end, units[u]) == 0) shift = shifts[u];
  }
  if (shift < 0 || v == 0 || v > (unsigned long long)(max >> shift))
    return agg_usage("invalid value for %s: '%s' (expected 1 to %zu bytes, e.g. 4096, 64kb, 16mb)",
                     opt, s, max);
  *out = (size_t)(v << shift);
  return 0;
}

/* SIZE[:SLIDE] after the window kind's prefix: positive durations. */
static int agg_window_spec(const char *spec, agg_opts_t *o) {
  char buf[128];
  char *colon;
  int64_t a = 0, b = 0;

  if (strlen(spec) >= sizeof(buf)) return agg_usage("invalid value for --window: '%s'", spec);
  if (strncmp(spec, "tumbling:", 9) == 0) {
    o->window = WIN_TUMBLING;
    if (fl_parse_duration(spec + 9, &a) != FL_OK || a <= 0)
      return agg_usage("invalid value for --window: '%s' (SIZE must be a positive duration)", spec);
    o->size = a;
  } else if (strncmp(spec, "sliding:", 8) == 0) {
    o->window = WIN_SLIDING;
    strcpy(buf, spec + 8);
    colon = strchr(buf, ':');
    if (colon == NULL)
      return agg_usage("invalid value for --window: '%s' (expected sliding:SIZE:SLIDE)", spec);
    *colon = '\0';
    if (fl_parse_duration(buf, &a) != FL_OK || a <= 0 ||
        fl_parse_duration(colon + 1, &b) != FL_OK || b <= 0)
      return agg_usage(
          "invalid value for --window: '%s' (SIZE and SLIDE must be positive "
          "durations)",
          spec);
    o->size = a;
    o->slide = b;
  } else if (strncmp(spec, "session:", 8) == 0) {
    o->window = WIN_SESSION;
    if (fl_parse_duration(spec + 8, &a) != FL_OK || a <= 0)
      return agg_usage("invalid value for --window: '%s' (GAP must be a positive duration)", spec);
    o->gap = a;
  } else {
    return agg_usage(
        "invalid value for --window: '%s' (expected tumbling:SIZE, "
        "sliding:SIZE:SLIDE or session:GAP)",
        spec);
  }
  return 0;
}

/* An output path names a directory: an existing one, or a path ending in '/'. */
static bool agg_is_dir(const char *path) {
  struct stat st;
  size_t n = strlen(path);
  if (strcmp(path, "-") == 0) return false;
  return (n > 0 && path[n - 1] == '/') || (stat(path, &st) == 0 && S_ISDIR(st.st_mode));
}

/* True when path does not exist or is an empty directory. */
static bool agg_empty_or_missing(const char *path) {
  struct stat st;
  if (stat(path, &st) != 0) return errno == ENOENT;
  if (!S_ISDIR(st.st_mode)) return false;
  DIR *d = opendir(path);
  struct dirent *e;
  bool empty = true;
  if (d == NULL) return false;
  while (empty && (e = readdir(d)) != NULL)
    empty = strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0;
  closedir(d);
  return empty;
}

static int agg_parse_args(int argc, char **argv, agg_opts_t *o) {
  static const char *const names[] = {"--input",
                                      "--output",
                                      "--key",
                                      "--time",
                                      "--value",
                                      "--agg",
                                      "--window",
                                      "--out-of-orderness",
                                      "--allowed-lateness",
                                      "--late-output",
                                      "--watermark-interval",
                                      "--parallelism",
                                      "--on-error",
                                      "--state-backend",
                                      "--checkpoint-dir",
                                      "--checkpoint-interval",
                                      "--savepoint-on-exit",
                                      "--from-savepoint",
                                      "--brokers",
                                      "--group",
                                      "--kafka-start",
                                      "--bounded",
                                      "--idle-timeout",
                                      "--max-line-bytes",
                                      "--accept-duplicates"};
  enum {
    N_OPTS = sizeof(names) / sizeof(names[0])
  };
  const char *vals[N_OPTS] = {0};
  const char *sets[AGG_MAX_REPEATED];
  char *xs[AGG_MAX_REPEATED];
  int n_sets = 0, n_xs = 0;
  int64_t ms;
  int rc;

  for (int i = 1; i < argc; i++) {
    const char *arg = argv[i];
    const char *val = NULL;
    size_t name_len;
    int k;

    if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
      fputs(agg_usage_text, stdout);
      return -1;
    }
    /* Repeatable: --set KEY=VALUE (or --set=KEY=VALUE) and -X KEY=VALUE (or -XKEY=VALUE). */
    if (strcmp(arg, "--set") == 0 || strncmp(arg, "--set=", 6) == 0) {
      const char *kv = arg[5] == '=' ? arg + 6 : i + 1 < argc ? argv[++i] : NULL;
      if (kv == NULL) return agg_usage("option --set needs KEY=VALUE (a configuration key)");
      if (kv[0] == '=' || strchr(kv, '=') == NULL)
        return agg_usage("--set takes KEY=VALUE (a configuration key), not '%s'", kv);
      if (n_sets == AGG_MAX_REPEATED)
        return agg_usage("more than %d --set options", AGG_MAX_REPEATED);
      sets[n_sets++] = kv;
      continue;
    }
    if (strncmp(arg, "-X", 2) == 0) {
      char *kv = arg[2] != '\0' ? argv[i] + 2 : i + 1 < argc ? argv[++i] : NULL;
      if (kv == NULL) return agg_usage("option -X needs KEY=VALUE (a librdkafka property)");
      /* Not quoted: a property without '=' may still be a secret. */
      if (kv[0] == '=' || strchr(kv, '=') == NULL)
        return agg_usage("-X takes KEY=VALUE (a librdkafka property); argument %d has no %s", i,
                         kv[0] == '=' ? "key" : "'='");
      if (n_xs == AGG_MAX_REPEATED) return agg_usage("more than %d -X options", AGG_MAX_REPEATED);
      xs[n_xs++] = kv;
      continue;
    }
    if (strncmp(arg, "--", 2) != 0) return agg_usage("unexpected argument '%s'", arg);
    name_len = strcspn(arg, "=");
    for (k = 0; k < N_OPTS; k++)
      if (strlen(names[k]) == name_len && strncmp(arg, names[k], name_len) == 0) break;
    if (k == N_OPTS) return agg_usage("unknown option '%.*s'", (int)name_len, arg);
    if (arg[name_len] == '=') {
      val = arg + name_len + 1;
    } else {
      if (i + 1 >= argc) return agg_usage("option %s needs a value", names[k]);
      val = argv[++i];
    }
    if (vals[k] != NULL)
      return agg_usage("option %s given twice ('%s' and '%s')", names[k], vals[k], val);
    if (val[0] == '\0') return agg_usage("empty value for %s", names[k]);
    vals[k] = val;
  }

  memset(o, 0, sizeof(*o));
  for (int k = 0; k < n_sets; k++) o->sets[o->n_sets++] = sets[k];
  for (int k = 0; k < n_xs; k++) {
    char *eq = strchr(xs[k], '=');
    *eq = '\0';
    o->props[o->n_props++] = xs[k];
    o->props[o->n_props++] = eq + 1;
  }
  o->props[o->n_props] = NULL;
  o->input = vals[0];
  o->output = vals[1] != NULL ? vals[1] : "-";
  o->key = vals[2];
  o->time = vals[3];
  o->value = vals[4];
  if (o->input == NULL) return agg_usage("missing required option --input");
  if (o->key == NULL) return agg_usage("missing required option --key");
  if (o->time == NULL) return agg_usage("missing required option --time");
  if (vals[5] == NULL) return agg_usage("missing required option --agg");
  if (vals[6] == NULL) return agg_usage("missing required option --window");

  if (strcmp(vals[5], "sum") == 0)
    o->agg = AGG_SUM;
  else if (strcmp(vals[5], "count") == 0)
    o->agg = AGG_COUNT;
  else if (strcmp(vals[5], "min") == 0)
    o->agg = AGG_MIN;
  else if (strcmp(vals[5], "max") == 0)
    o->agg = AGG_MAX;
  else if (strcmp(vals[5], "avg") == 0)
    o->agg = AGG_AVG;
  else
    return agg_usage("invalid value for --agg: '%s' (expected sum, count, min, max or avg)",
                     vals[5]);
  if (o->value == NULL && o->agg != AGG_COUNT)
    return agg_usage("--agg %s needs --value FIELD", vals[5]);

  if ((rc = agg_window_spec(vals[6], o)) != 0) return rc;
  if (vals[7] != NULL &&
      (rc = agg_duration("--out-of-orderness", vals[7], &o->out_of_orderness)) != 0)
    return rc;
  if (vals[8] != NULL &&
      (rc = agg_duration("--allowed-lateness", vals[8], &o->allowed_lateness)) != 0)
    return rc;
  o->late_output = vals[9];
  if (vals[10] != NULL) {
    if ((rc = agg_duration("--watermark-interval", vals[10], &ms)) != 0) return rc;
    snprintf(o->watermark_interval_buf, sizeof(o->watermark_interval_buf), "%" PRId64, ms);
    o->watermark_interval = o->watermark_interval_buf;
  }
  if (vals[11] != NULL) {
    char *end = NULL;
    long p;
    errno = 0;
    p = strtol(vals[11], &end, 10);
    if (errno != 0 || end == vals[11] || *end != '\0' || p < 1 || p > 256)
      return agg_usage("invalid value for --parallelism: '%s' (expected 1..256)", vals[11]);
    o->parallelism = vals[11];
  }
  if (vals[12] == NULL || strcmp(vals[12], "fail") == 0) {
    o->on_error = ON_ERROR_FAIL;
  } else if (strcmp(vals[12], "skip") == 0) {
    o->on_error = ON_ERROR_SKIP;
  } else if (strncmp(vals[12], "dead-letter:", 12) == 0 && vals[12][12] != '\0') {
    o->on_error = ON_ERROR_DEAD_LETTER;
    o->dead_letter = vals[12] + 12;
  } else {
    return agg_usage(
        "invalid value for --on-error: '%s' (expected fail, skip or "
        "dead-letter:PATH)",
        vals[12]);
  }

  if (vals[13] != NULL) {
    if (strcmp(vals[13], "hashmap") != 0 && strcmp(vals[13], "rocksdb") != 0)
      return agg_usage("invalid value for --state-backend: '%s' (expected hashmap or rocksdb)",
                       vals[13]);
    o->state_backend = vals[13];
  }
  o->checkpoint_dir = vals[14];
  if (vals[15] != NULL) {
    if (o->checkpoint_dir == NULL) return agg_usage("--checkpoint-interval needs --checkpoint-dir");
    if ((rc = agg_duration("--checkpoint-interval", vals[15], &ms)) != 0) return rc;
    if (ms <= 0)
      return agg_usage("invalid value for --checkpoint-interval: '%s' (must be positive)",
                       vals[15]);
    snprintf(o->checkpoint_interval_buf, sizeof(o->checkpoint_interval_buf), "%" PRId64, ms);
    o->checkpoint_interval = o->checkpoint_interval_buf;
  }
  o->savepoint_on_exit = vals[16];
  o->from_savepoint = vals[17];
  o->brokers = vals[18];
  o->group = vals[19] != NULL ? vals[19] : "flink-agg";
  o->kafka_start = vals[20] != NULL ? vals[20] : "earliest";
  if (strcmp(o->kafka_start, "earliest") != 0 && strcmp(o->kafka_start, "latest") != 0 &&
      strcmp(o->kafka_start, "committed") != 0)
    return agg_usage(
        "invalid value for --kafka-start: '%s' (expected earliest, latest or "
        "committed)",
        o->kafka_start);
  if (vals[21] != NULL) {
    if (strcmp(vals[21], "true") != 0 && strcmp(vals[21], "false") != 0)
      return agg_usage("invalid value for --bounded: '%s' (expected true or false)", vals[21]);
    o->bounded = strcmp(vals[21], "true") == 0;
  }
  if (vals[22] != NULL && (rc = agg_duration("--idle-timeout", vals[22], &o->idle_timeout)) != 0)
    return rc;
  if (vals[23] != NULL &&
      (rc = agg_size("--max-line-bytes", vals[23], (size_t)1 << 30, &o->max_line_bytes)) != 0)
    return rc;
  if (vals[24] != NULL) {
    if (strcmp(vals[24], "true") != 0 && strcmp(vals[24], "false") != 0)
      return agg_usage("invalid value for --accept-duplicates: '%s' (expected true or false)",
                       vals[24]);
    o->accept_duplicates = strcmp(vals[24], "true") == 0;
  }
  {
    const char *targets[4] = {o->input, o->output, o->late_output, o->dead_letter};
    const char *what[4] = {"--input", "--output", "--late-output", "--on-error dead-letter"};
    bool any = false;
    for (int t = 0; t < 4; t++) {
      if (targets[t] == NULL || strncmp(targets[t], "kafka:", 6) != 0) continue;
      any = true;
      if (targets[t][6] == '\0')
        return agg_usage("%s kafka: needs a topic name (kafka:TOPIC)", what[t]);
    }
    if (any && o->brokers == NULL)
      return agg_usage("kafka: inputs and outputs need --brokers LIST (bootstrap servers)");
    if (!any && o->n_props > 0)
      return agg_usage(
          "-X (librdkafka properties) applies to kafka:TOPIC inputs and outputs, "
          "and none is given");
    if (!any && o->brokers != NULL)
      return agg_usage("--brokers is given but no input or output is kafka:TOPIC");
    if (strncmp(o->input, "kafka:", 6) == 0) {
      o->input_topic = o->input + 6;
      if (o->dead_letter != NULL && strncmp(o->dead_letter, "kafka:", 6) != 0)
        return agg_usage(
            "with a Kafka input, dead letters go to a topic: --on-error "
            "dead-letter:kafka:TOPIC, not '%s'",
            o->dead_letter);
      if (vals[23] != NULL)
        return agg_usage("--max-line-bytes applies to a file input, not to kafka:%s",
                         o->input_topic);
    } else if (vals[20] != NULL || vals[21] != NULL || vals[22] != NULL) {
      return agg_usage(
          "--kafka-start, --bounded and --idle-timeout apply to a Kafka input "
          "(--input kafka:TOPIC)");
    }
    if (!any && vals[19] != NULL)
      return agg_usage("--group applies to kafka:TOPIC inputs and outputs, and none is given");
    if (vals[24] != NULL &&
        (o->output == NULL || strncmp(o->output, "kafka:", 6) != 0 || o->checkpoint_dir == NULL))
      return agg_usage(
          "--accept-duplicates applies to an exactly-once Kafka output (--output kafka:TOPIC "
          "with --checkpoint-dir)");
  }
  if (o->savepoint_on_exit != NULL && !agg_empty_or_missing(o->savepoint_on_exit))
    return agg_usage("--savepoint-on-exit: '%s' must be a new or empty directory",
                     o->savepoint_on_exit);
  if (o->checkpoint_dir != NULL || o->savepoint_on_exit != NULL || o->from_savepoint != NULL) {
    o->output_dir = agg_is_dir(o->output);
    o->late_output_dir = o->late_output != NULL && agg_is_dir(o->late_output);
    o->dead_letter_dir = o->dead_letter != NULL && agg_is_dir(o->dead_letter);
  }

  /* Two sinks truncating one file (or committing into one directory) would destroy
   * each other's output. */
  {
    const char *paths[3] = {o->output, o->late_output, o->dead_letter};
    const char *what[3] = {"--output", "--late-output", "--on-error dead-letter"};
    for (int a = 0; a < 3; a++)
      for (int b = a + 1; b < 3; b++)
        if (paths[a] != NULL && paths[b] != NULL && strcmp(paths[a], "-") != 0 &&
            strcmp(paths[a], paths[b]) == 0)
          return agg_usage("%s and %s name the same file '%s'", what[a], what[b], paths[a]);
  }
  return 0;
}

/* ---------------------------------------------------------------------------------- */
/* Parse: JSON line -> keyed, timestamped record                                      */

/* One per reader (the lines source, or each Kafka subtask): only it touches it. */
typedef struct agg_parser {
  agg_job_t *job;
  char *key; /* the key's JSON encoding */
  size_t key_cap;
  uint8_t *val; /* double + line */
  size_t val_cap;
} agg_parser_t;

static int agg_grow(void *pptr, size_t *cap, size_t need) {
  void **pp = pptr;
  size_t ncap = *cap ? *cap : 256;
  void *n;
  if (need <= *cap) return FL_OK;
  while (ncap < need) ncap *= 2;
  n = realloc(*pp, ncap);
  if (n == NULL) return FL_ENOMEM;
  *pp = n;
  *cap = ncap;
  return FL_OK;
}

static bool agg_blank(const char *s, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r') return false;
  return true;
}

/* Parses one JSON event into p's buffers: returns AGG_PARSED with *out set (key: the
 * key field's JSON encoding; value: the number, then the event itself when keep_line;
 * timestamp: the time field), AGG_BLANK for a blank line, AGG_BAD with the sentence in
 * problem, or FL_ENOMEM. */
enum {
  AGG_BLANK = 0,
  AGG_PARSED = 1,
  AGG_BAD = 2
};
static int agg_parse_bytes(agg_parser_t *p, const void *data, size_t len, fl_record_t *out,
                           char *problem, size_t problem_size) {
  const agg_opts_t *o = p->job->opts;
  json_t *root = NULL;
  json_t *jk, *jt, *jv;
  json_error_t jerr;
  double value = 0;
  size_t key_len, val_len;
  int rc = AGG_PARSED;

  problem[0] = '\0';
  /* Blank lines (a trailing empty line, say) carry no event; they are not errors. */
  if (agg_blank(data, len)) return AGG_BLANK;
  root = json_loadb(data, len, 0, &jerr);
  if (root == NULL) {
    snprintf(problem, problem_size, "malformed JSON at column %d: %s", jerr.column, jerr.text);
    return AGG_BAD;
  }
  if (!json_is_object(root)) {
    snprintf(problem, problem_size, "not a JSON object");
    rc = AGG_BAD;
    goto done;
  }
  jk = json_object_get(root, o->key);
  jt = json_object_get(root, o->time);
  jv = o->value != NULL ? json_object_get(root, o->value) : NULL;
  if (jk == NULL) {
    snprintf(problem, problem_size, "missing key field \"%s\"", o->key);
  } else if (!json_is_string(jk) && !json_is_integer(jk) && !json_is_boolean(jk)) {
    snprintf(problem, problem_size, "key field \"%s\" is not a string, an integer or a boolean",
             o->key);
  } else if (jt == NULL) {
    snprintf(problem, problem_size, "missing time field \"%s\"", o->time);
  } else if (!json_is_integer(jt)) {
    snprintf(problem, problem_size, "time field \"%s\" is not an integer (epoch ms)", o->time);
  } else if ((int64_t)json_integer_value(jt) == FL_TS_NONE) {
    /* The library's "no timestamp": as an event time it would be lost further down. */
    snprintf(problem, problem_size,
             "time field \"%s\" is %" PRId64
             ", which is not an event time (it means \"no "
             "timestamp\")",
             o->time, (int64_t)json_integer_value(jt));
  } else if (o->value != NULL && o->agg != AGG_COUNT && jv == NULL) {
    snprintf(problem, problem_size, "missing value field \"%s\"", o->value);
  } else if (o->value != NULL && o->agg != AGG_COUNT && !json_is_number(jv)) {
    snprintf(problem, problem_size, "value field \"%s\" is not a number", o->value);
  }
  if (problem[0] != '\0') {
    rc = AGG_BAD;
    goto done;
  }
  if (o->agg != AGG_COUNT) value = json_number_value(jv);

  key_len = json_dumpb(jk, p->key, p->key_cap, JSON_ENCODE_ANY | JSON_COMPACT);
  if (key_len == 0) {
    snprintf(problem, problem_size, "cannot encode the key");
    rc = AGG_BAD;
    goto done;
  }
  if (key_len > p->key_cap) {
    if (agg_grow(&p->key, &p->key_cap, key_len) != FL_OK) {
      rc = FL_ENOMEM;
      goto done;
    }
    key_len = json_dumpb(jk, p->key, p->key_cap, JSON_ENCODE_ANY | JSON_COMPACT);
  }
  val_len = sizeof(double) + (p->job->keep_line ? len : 0);
  if (agg_grow(&p->val, &p->val_cap, val_len) != FL_OK) {
    rc = FL_ENOMEM;
    goto done;
  }
  memcpy(p->val, &value, sizeof(double));
  if (p->job->keep_line && len > 0) memcpy(p->val + sizeof(double), data, len);
  *out = (fl_record_t){.key = p->key,
                       .key_len = key_len,
                       .value = p->val,
                       .value_len = val_len,
                       .timestamp = (int64_t)json_integer_value(jt)};
done:
  json_decref(root);
  return rc;
}

/* File input: the lines source's parse function (the source applies the --on-error
 * policy, naming the line). */
static int agg_lines_parse(fl_context_t *ctx, const void *line, size_t len, uint64_t line_no,
                           fl_record_t *out, void *opaque) {
  char problem[512];
  int rc;
  (void)line_no;
  rc = agg_parse_bytes(opaque, line, len, out, problem, sizeof(problem));
  if (rc == AGG_BAD) return fl_ctx_fail(ctx, "%s", problem);
  return rc; /* AGG_PARSED (1), AGG_BLANK (0: dropped) or an error */
}

/* A dead letter of the lines source -> the bad line as it was read; one longer than
 * --max-line-bytes is cut to its first bytes, and counted. */
static int agg_dead_line(fl_context_t *ctx, const fl_record_t *in, void *opaque) {
  agg_job_t *job = opaque;
  fl_lines_dead_letter_t dl;
  if (fl_lines_dead_letter_read(in, &dl) != FL_OK)
    return fl_ctx_fail(ctx, "a record of %zu bytes is not a dead letter", in->value_len);
  if (dl.kept_len < dl.line_len) atomic_fetch_add_explicit(&job->cut, 1, memory_order_relaxed);
  return fl_emit(ctx, "", 0, dl.line, dl.kept_len, FL_TS_NONE);
}

/* Kafka input: the source's deserializer parses each message (the source applies the
 * --on-error policy, naming topic, partition and offset). */
static int agg_kafka_deserialize(fl_context_t *ctx, const fl_kafka_message_t *msg, fl_record_t *out,
                                 void *opaque) {
  agg_job_t *job = opaque;
  int s = fl_ctx_subtask(ctx);
  char problem[512];
  int rc;
  if (s < 0 || s >= job->n_kparsers) return fl_ctx_fail(ctx, "subtask %d has no parser", s);
  rc =
      agg_parse_bytes(&job->kparsers[s], msg->value, msg->value_len, out, problem, sizeof(problem));
  if (rc == AGG_BAD) return fl_ctx_fail(ctx, "%s", problem);
  return rc; /* AGG_PARSED (1), AGG_BLANK (0: dropped) or an error */
}

/* ---------------------------------------------------------------------------------- */
/* Aggregation                                                                        */

static void agg_init(void *acc_, void *opaque) {
  agg_acc_t *acc = acc_;
  (void)opaque;
  acc->sum = 0;
  acc->min = INFINITY;
  acc->max = -INFINITY;
  acc->count = 0;
}

static int agg_add(fl_context_t *ctx, void *acc_, const fl_record_t *in, void *opaque) {
  agg_acc_t *acc = acc_;
  double v;
  (void)ctx;
  (void)opaque;
  if (in->value_len < sizeof(double))
    return fl_ctx_fail(ctx, "record of %zu bytes has no value", in->value_len);
  memcpy(&v, in->value, sizeof(double));
  acc->sum += v;
  if (v < acc->min) acc->min = v;
  if (v > acc->max) acc->max = v;
  acc->count++;
  return FL_OK;
}

static void agg_merge(void *acc_, const void *other_, void *opaque) {
  agg_acc_t *acc = acc_;
  const agg_acc_t *other = other_;
  (void)opaque;
  acc->sum += other->sum;
  if (other->min < acc->min) acc->min = other->min;
  if (other->max > acc->max) acc->max = other->max;
  acc->count += other->count;
}

/* Integral values below 2^53 print as integers; others as the shortest %.*g that reads
 * back as the same double. Non-finite values (a sum that overflowed) print as null. */
static void agg_format_number(char *out, size_t size, double v) {
  if (!isfinite(v)) {
    snprintf(out, size, "null");
    return;
  }
  if (v == floor(v) && fabs(v) < 9007199254740992.0) {
    snprintf(out, size, "%lld", (long long)v);
    return;
  }
  for (int prec = 15; prec <= 17; prec++) {
    snprintf(out, size, "%.*g", prec, v);
    if (prec == 17 || strtod(out, NULL) == v) return;
  }
}

static int agg_result(fl_context_t *ctx, const fl_window_t *w, const void *acc_, void *opaque) {
  const agg_job_t *job = opaque;
  const agg_acc_t *acc = acc_;
  const void *key;
  size_t key_len = 0;
  char num[64];
  char small[512];
  char *line = small;
  size_t cap = sizeof(small);
  double v;
  int n, rc;

  if (acc->count == 0) return FL_OK;
  switch (job->opts->agg) {
  case AGG_SUM: v = acc->sum; break;
  case AGG_COUNT: v = (double)acc->count; break;
  case AGG_MIN: v = acc->min; break;
  case AGG_MAX: v = acc->max; break;
  case AGG_AVG:
  default: v = acc->sum / (double)acc->count; break;
  }
  agg_format_number(num, sizeof(num), v);
  key = fl_ctx_key(ctx, &key_len);
  if (key == NULL) return fl_ctx_fail(ctx, "window result without a key");
  if (key_len > INT32_MAX) return fl_ctx_fail(ctx, "key of %zu bytes is too long", key_len);
  for (;;) {
    n = snprintf(line, cap,
                 "{\"key\": %.*s, \"window_start\": %" PRId64 ", \"window_end\": %" PRId64
                 ", \"value\": %s, \"count\": %" PRIu64 "}",
                 (int)key_len, (const char *)key, w->start, w->end, num, acc->count);
    if (n < 0) {
      rc = fl_ctx_fail(ctx, "cannot format a result");
      goto done;
    }
    if ((size_t)n < cap) break;
    cap = (size_t)n + 1;
    line = malloc(cap);
    if (line == NULL) {
      rc = FL_ENOMEM;
      goto done;
    }
  }
  rc = fl_emit(ctx, key, key_len, line, (size_t)n, w->end - 1);
done:
  if (line != small) free(line);
  return rc;
}

/* Late record -> its original line. */
static int agg_late_line(fl_context_t *ctx, const fl_record_t *in, void *opaque) {
  (void)opaque;
  if (in->value_len < sizeof(double))
    return fl_ctx_fail(ctx, "late record of %zu bytes has no line", in->value_len);
  return fl_emit(ctx, "", 0, (const uint8_t *)in->value + sizeof(double),
                 in->value_len - sizeof(double), in->timestamp);
}

/* ---------------------------------------------------------------------------------- */
/* Job                                                                                */

/* Async-signal-safe: fl_env_stop(), sem_post() and lock-free atomics only. */
static void agg_on_signal(int sig) {
  fl_env_t *env = agg_env;
  if (agg_signal == 0) agg_signal = sig;
  /* With --savepoint-on-exit the first signal asks the helper for a savepoint; another
   * one stops at once, without waiting for it. */
  if (agg_saver.started && atomic_fetch_add(&agg_saver.signals, 1) == 0) {
    sem_post(&agg_saver.wake);
    return;
  }
  if (env != NULL) fl_env_stop(env);
}

static void *agg_saver_main(void *arg) {
  agg_saver_t *s = arg;
  while (sem_wait(&s->wake) != 0 && errno == EINTR) {}
  if (atomic_load(&s->done)) return NULL;
  s->attempted = true;
  s->rc = fl_env_savepoint(s->env, s->path, s->err, sizeof(s->err));
  fl_env_stop(s->env);
  return NULL;
}

/* Writes a stream's values as lines: exactly once into a directory (durable mode), else
 * into a file or stdout; or as messages to kafka:TOPIC (key: the aggregation key),
 * transactional with checkpoints, else flushed at the end (at least once). */
static void agg_sink(fl_stream_t *in, const char *name, const char *path, bool dir,
                     const agg_opts_t *o) {
  if (strncmp(path, "kafka:", 6) == 0) {
    char prefix[512];
    snprintf(prefix, sizeof(prefix), "%s.%s", o->group, name);
    fl_kafka_sink_opts_t ko = {
        .version = FL_KAFKA_SINK_OPTS_VERSION,
        .brokers = o->brokers,
        .topic = path + 6,
        .guarantee = o->checkpoint_dir != NULL ? FL_KAFKA_EXACTLY_ONCE : FL_KAFKA_AT_LEAST_ONCE,
        .transactional_id_prefix = prefix,
        .props = o->n_props > 0 ? o->props : NULL,
        .accept_duplicates = o->accept_duplicates,
    };
    fl_stream_sink_kafka(in, name, &ko);
  } else if (dir) {
    fl_stream_sink_files(in, name, path);
  } else {
    fl_stream_sink_lines(in, name, path);
  }
}

static int agg_build(fl_env_t *env, const agg_opts_t *o, agg_job_t *job) {
  const fl_aggregate_fn_t agg_fn = {
      .version = FL_AGGREGATE_FN_VERSION,
      .acc_size = sizeof(agg_acc_t),
      .init = agg_init,
      .add = agg_add,
      .merge = agg_merge,
      .result = agg_result,
  };
  fl_watermark_strategy_t ws = {
      .version = FL_WATERMARK_STRATEGY_VERSION,
      .kind = FL_WATERMARKS_BOUNDED,
      .max_out_of_orderness_ms = o->out_of_orderness,
  };
  fl_output_tag_t *late_tag = NULL;
  fl_stream_t *lines, *timed, *results;
  fl_keyed_stream_t *keyed;
  fl_windowed_stream_t *win = NULL;

  if (o->on_error == ON_ERROR_DEAD_LETTER && o->input_topic == NULL)
    job->dead_tag = fl_output_tag(env, "dead-letter");
  if (o->late_output != NULL) late_tag = fl_output_tag(env, "late-data");

  if (o->input_topic != NULL) {
    /* Kafka: parsed by the source's deserializer, watermarks per partition. */
    ws.idle_timeout_ms = o->idle_timeout;
    fl_kafka_source_opts_t ko = {
        .version = FL_KAFKA_SOURCE_OPTS_VERSION,
        .brokers = o->brokers,
        .topics = o->input_topic,
        .group_id = o->group,
        .start = strcmp(o->kafka_start, "latest") == 0      ? FL_KAFKA_START_LATEST
                 : strcmp(o->kafka_start, "committed") == 0 ? FL_KAFKA_START_COMMITTED
                                                            : FL_KAFKA_START_EARLIEST,
        .fallback = FL_KAFKA_START_EARLIEST,
        .bounded = o->bounded,
        .props = o->n_props > 0 ? o->props : NULL,
        .watermarks = &ws,
        .deserialize = agg_kafka_deserialize,
        .deserialize_opaque = job,
        .on_error = o->on_error == ON_ERROR_SKIP          ? FL_KAFKA_ON_ERROR_SKIP
                    : o->on_error == ON_ERROR_DEAD_LETTER ? FL_KAFKA_ON_ERROR_DEAD_LETTER
                                                          : FL_KAFKA_ON_ERROR_FAIL,
        .dead_letter_topic = o->dead_letter != NULL ? o->dead_letter + 6 : NULL,
    };
    /* One per subtask: --set parallelism=N may have overridden --parallelism. */
    job->n_kparsers = job->parallelism;
    job->kparsers = calloc((size_t)job->n_kparsers, sizeof(*job->kparsers));
    if (job->kparsers == NULL) return FL_ENOMEM;
    for (int i = 0; i < job->n_kparsers; i++) job->kparsers[i].job = job;
    timed = fl_source_kafka(env, "input", &ko);
  } else {
    /* The single reader parses each line itself, in file order, and applies --on-error
     * with the line's number: skipped or dead-lettered lines are behind the position
     * its checkpoints record, so a resumed run never meets them again. */
    fl_lines_source_opts_t lo = {
        .version = FL_LINES_SOURCE_OPTS_VERSION,
        .path = o->input,
        .max_line_bytes = o->max_line_bytes,
        .parse = agg_lines_parse,
        .on_error = o->on_error == ON_ERROR_SKIP          ? FL_LINES_ON_ERROR_SKIP
                    : o->on_error == ON_ERROR_DEAD_LETTER ? FL_LINES_ON_ERROR_DEAD_LETTER
                                                          : FL_LINES_ON_ERROR_FAIL,
        .dead_letter = job->dead_tag,
    };
    job->lparser = calloc(1, sizeof(*job->lparser));
    if (job->lparser == NULL) return FL_ENOMEM;
    job->lparser->job = job;
    lo.parse_opaque = job->lparser;
    lines = fl_source_lines_opts(env, "input", &lo);
    if (job->dead_tag != NULL)
      agg_sink(fl_stream_map(fl_stream_side_output(lines, job->dead_tag), "dead-letter-line",
                             agg_dead_line, job),
               "dead-letter", o->dead_letter, o->dead_letter_dir, o);
    timed = fl_stream_assign_timestamps(lines, "timestamps", &ws);
  }
  keyed = fl_stream_key_by(timed, NULL, NULL);
  switch (o->window) {
  case WIN_TUMBLING: win = fl_window_tumbling(keyed, FL_EVENT_TIME, o->size, 0); break;
  case WIN_SLIDING: win = fl_window_sliding(keyed, FL_EVENT_TIME, o->size, o->slide, 0); break;
  case WIN_SESSION: win = fl_window_session(keyed, FL_EVENT_TIME, o->gap); break;
  }
  if (win != NULL) {
    fl_window_allowed_lateness(win, o->allowed_lateness);
    if (late_tag != NULL) fl_window_late_output(win, late_tag);
  }
  results = fl_window_aggregate(win, "aggregate", &agg_fn, job);
  agg_sink(results, "output", o->output, o->output_dir, o);
  if (late_tag != NULL)
    agg_sink(
        fl_stream_map(fl_stream_side_output(results, late_tag), "late-line", agg_late_line, NULL),
        "late-output", o->late_output, o->late_output_dir, o);
  /* Builder errors are sticky and reported by fl_env_execute(). */
  return FL_OK;
}

/* ---------------------------------------------------------------------------------- */
/* Durability                                                                         */

/* State backend, checkpoints, and where the job starts from. With --checkpoint-dir the
 * library resumes from the newest complete checkpoint there (falling back past damaged
 * ones), so running the same command again after a crash goes on from where it was,
 * without repeating output; --from-savepoint is where the first run starts: a checkpoint
 * wins over it when it is newer (a run started from the savepoint wrote it). The library
 * logs which one it restores. */
static int agg_configure_durability(fl_config_t *conf, const agg_opts_t *o, char *errstr,
                                    size_t size) {
  if (o->state_backend != NULL &&
      fl_config_set(conf, "state.backend", o->state_backend, errstr, size) != FL_OK)
    return -1;
  if (o->checkpoint_dir != NULL &&
      (fl_config_set(conf, "state.checkpoints.dir", o->checkpoint_dir, errstr, size) != FL_OK ||
       fl_config_set(conf, "state.checkpoints.num-retained", AGG_CHECKPOINTS_RETAINED, errstr,
                     size) != FL_OK ||
       fl_config_set(conf, "state.checkpoints.restore-latest", "true", errstr, size) != FL_OK ||
       fl_config_set(
           conf, "execution.checkpointing.interval",
           o->checkpoint_interval != NULL ? o->checkpoint_interval : AGG_CHECKPOINT_INTERVAL,
           errstr, size) != FL_OK))
    return -1;
  if (o->from_savepoint != NULL &&
      fl_config_set(conf, "execution.savepoint.path", o->from_savepoint, errstr, size) != FL_OK)
    return -1;
  return 0;
}

/* A user metric of the "input" operator from the metrics JSON, or 0. */
static int64_t agg_source_metric(fl_env_t *env, const char *name) {
  char *text = fl_env_metrics_json(env);
  json_t *root = text != NULL ? json_loads(text, 0, NULL) : NULL;
  json_t *ops = json_object_get(root, "operators");
  int64_t v = 0;
  size_t i;
  json_t *op;
  json_array_foreach(ops, i, op) {
    if (json_is_string(json_object_get(op, "name")) &&
        strcmp(json_string_value(json_object_get(op, "name")), "input") == 0)
      v = (int64_t)json_integer_value(json_object_get(json_object_get(op, "metrics"), name));
  }
  json_decref(root);
  fl_free(text);
  return v;
}

int main(int argc, char **argv) {
  agg_opts_t opts;
  agg_job_t job;
  fl_config_t *conf = NULL;
  fl_env_t *env = NULL;
  char errstr[512];
  struct sigaction sa;
  int exit_code = AGG_EXIT_FAILURE;
  int rc;

  rc = agg_parse_args(argc, argv, &opts);
  if (rc != 0) return rc < 0 ? 0 : rc;

  memset(&job, 0, sizeof(job));
  job.opts = &opts;
  job.keep_line = opts.late_output != NULL;
  atomic_init(&job.cut, 0);

  conf = fl_config_new();
  if (conf == NULL) {
    fprintf(stderr, "flink-agg: out of memory\n");
    goto done;
  }
  if (opts.parallelism != NULL &&
      fl_config_set(conf, "parallelism", opts.parallelism, errstr, sizeof(errstr)) != FL_OK) {
    exit_code = agg_usage("invalid value for --parallelism: '%s': %s", opts.parallelism, errstr);
    goto done;
  }
  if (fl_config_set(conf, "pipeline.auto-watermark-interval",
                    opts.watermark_interval != NULL ? opts.watermark_interval : "200ms", errstr,
                    sizeof(errstr)) != FL_OK) {
    exit_code = agg_usage("invalid value for --watermark-interval: %s", errstr);
    goto done;
  }
  if (agg_configure_durability(conf, &opts, errstr, sizeof(errstr)) != 0) {
    fprintf(stderr, "flink-agg: %s\n", errstr);
    goto done;
  }
  for (int k = 0; k < opts.n_sets; k++) {
    const char *eq = strchr(opts.sets[k], '=');
    char *key = strndup(opts.sets[k], (size_t)(eq - opts.sets[k]));
    rc = key != NULL ? fl_config_set(conf, key, eq + 1, errstr, sizeof(errstr)) : FL_ENOMEM;
    free(key);
    if (rc != FL_OK) {
      exit_code = agg_usage("--set: %s", rc == FL_ENOMEM ? "out of memory" : errstr);
      goto done;
    }
  }
  job.parallelism =
      fl_config_get(conf, "parallelism") != NULL ? atoi(fl_config_get(conf, "parallelism")) : 1;
  if (fl_env_new(&env, conf, errstr, sizeof(errstr)) != FL_OK) {
    fprintf(stderr, "flink-agg: %s\n", errstr);
    goto done;
  }
  if (agg_build(env, &opts, &job) != FL_OK) {
    fprintf(stderr, "flink-agg: out of memory\n");
    goto done;
  }

  if (opts.savepoint_on_exit != NULL) {
    agg_saver.env = env;
    agg_saver.path = opts.savepoint_on_exit;
    if (sem_init(&agg_saver.wake, 0, 0) != 0) {
      fprintf(stderr, "flink-agg: sem_init: %s\n", strerror(errno));
      goto done;
    }
    if ((rc = pthread_create(&agg_saver.thread, NULL, agg_saver_main, &agg_saver)) != 0) {
      fprintf(stderr, "flink-agg: cannot start the savepoint thread: %s\n", strerror(rc));
      sem_destroy(&agg_saver.wake);
      goto done;
    }
    agg_saver.started = true;
  }
  agg_env = env;
  memset(&sa, 0, sizeof(sa));
  sa.sa_handler = agg_on_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);

  rc = fl_env_execute(env, "flink-agg");

  sa.sa_handler = SIG_DFL;
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
  agg_env = NULL;
  if (agg_saver.started) {
    /* The helper is waiting for a signal, or has taken the savepoint and stopped the
     * job (which is why execute returned). */
    atomic_store(&agg_saver.done, true);
    sem_post(&agg_saver.wake);
    pthread_join(agg_saver.thread, NULL);
    sem_destroy(&agg_saver.wake);
    agg_saver.started = false;
    if (agg_saver.attempted && agg_saver.rc == FL_OK)
      fprintf(stderr, "flink-agg: savepoint written to %s\n", agg_saver.path);
    else if (agg_saver.attempted)
      fprintf(stderr, "flink-agg: no savepoint: %s\n", agg_saver.err);
  }

  if (opts.on_error == ON_ERROR_SKIP && opts.input_topic != NULL)
    fprintf(stderr, "flink-agg: skipped %" PRId64 " malformed messages\n",
            agg_source_metric(env, "deserialize-errors-skipped"));
  else if (opts.on_error == ON_ERROR_SKIP)
    fprintf(stderr, "flink-agg: skipped %" PRId64 " malformed lines\n",
            agg_source_metric(env, "lines-skipped"));
  if (atomic_load(&job.cut) > 0) {
    size_t max = opts.max_line_bytes > 0 ? opts.max_line_bytes : (size_t)16 << 20;
    fprintf(stderr,
            "flink-agg: %" PRIu64
            " dead-lettered lines were longer than %zu bytes: the dead "
            "letters hold their first %zu bytes\n",
            (uint64_t)atomic_load(&job.cut), max, max < 4096 ? max : (size_t)4096);
  }
  if (rc == FL_OK) {
    exit_code = 0;
  } else if (rc == FL_ECANCELED && agg_signal != 0) {
    fprintf(stderr, "flink-agg: stopped by signal %d\n", (int)agg_signal);
    exit_code = agg_saver.attempted && agg_saver.rc != FL_OK ? AGG_EXIT_FAILURE : 128 + agg_signal;
  } else {
    const char *msg = fl_env_error(env);
    fprintf(stderr, "flink-agg: %s\n", msg[0] != '\0' ? msg : fl_strerror(rc));
    if (strstr(msg, "accept_duplicates") != NULL)
      fprintf(stderr,
              "flink-agg: to start anyway and write that output again, add "
              "--accept-duplicates true\n");
  }
done:
  fl_env_destroy(env);
  fl_config_destroy(conf);
  for (int i = 0; i < job.n_kparsers; i++) {
    free(job.kparsers[i].key);
    free(job.kparsers[i].val);
  }
  free(job.kparsers);
  if (job.lparser != NULL) {
    free(job.lparser->key);
    free(job.lparser->val);
    free(job.lparser);
  }
  return exit_code;
}
