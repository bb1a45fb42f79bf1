/*
 * flink-kafka-local: a local Kafka for every user. Starts librdkafka's built-in mock
 * cluster as a long-lived process on loopback, creates the requested topics, prints the
 * bootstrap servers and serves until stopped.
 *
 *   flink-kafka-local [--brokers N] [--topic NAME[:PARTITIONS[:REPLICATION]]]...
 *                     [--port-file PATH] [--stdin-eof] [--quiet]
 *
 * Once every topic exists it prints exactly one line on stdout, flushed:
 *
 *   bootstrap.servers=127.0.0.1:PORT[,127.0.0.1:PORT...]
 *
 * and with --port-file first writes the same string (without the "bootstrap.servers="
 * prefix, with a newline) to PATH atomically (a temporary file in the same directory,
 * then rename), so that a reader sees either no file or the whole string. The file is
 * removed again on a clean shutdown.
 *
 * It serves until SIGINT or SIGTERM, or, with --stdin-eof, until its standard input
 * reaches end of file (a parent that holds the write end of a pipe takes the broker with
 * it when it dies), then destroys the cluster and exits 0.
 *
 * Exit status: 0 after a clean shutdown, 1 when the cluster could not be started or the
 * port file not written, 2 on a usage error (the message names the argument).
 *
 * The mock cluster binds 127.0.0.1 only (an ephemeral port per broker) and keeps
 * everything in memory; its limits are listed in docs/kafka-local.md.
 */
#define _GNU_SOURCE

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include "util/tsan_c11_threads.h" /* librdkafka threads under TSan builds */

#define KL_EXIT_FAILURE 1
#define KL_EXIT_USAGE 2

/* The range librdkafka accepts for test.mock.num.brokers, the other way to start a
 * mock cluster. rd_kafka_mock_cluster_new() itself has no upper bound: each broker is
 * one listening socket polled by the single cluster thread. */
#define KL_MAX_BROKERS 10000
/* Kafka's own limits on topic names. */
#define KL_MAX_TOPIC_NAME 249
/* Partitions live in memory (a small struct each, up to 5 MiB of data each); a bound
 * keeps a typo from exhausting memory. */
#define KL_MAX_PARTITIONS 10000

typedef struct kl_topic {
  const char *arg; /* the --topic argument as given, for messages */
  char *name;
  int partitions;
  int replication; /* 0: the mock's default, min(3, brokers) */
} kl_topic_t;

typedef struct kl_opts {
  int brokers;
  kl_topic_t *topics;
  size_t ntopics;
  const char *port_file;
  bool quiet;
  bool stdin_eof;
} kl_opts_t;

static volatile sig_atomic_t kl_stop_signal = 0;

static void kl_on_signal(int sig) { kl_stop_signal = sig; }

static void kl_usage(FILE *f) {
  fputs(
      "usage: flink-kafka-local [--brokers N] [--topic NAME[:PARTITIONS[:REPLICATION]]]...\n"
      "                         [--port-file PATH] [--stdin-eof] [--quiet]\n"
      "\n"
      "Starts librdkafka's mock Kafka cluster on 127.0.0.1, creates the topics, prints\n"
      "'bootstrap.servers=HOST:PORT[,...]' on stdout and serves until SIGINT/SIGTERM\n"
      "(or end of standard input with --stdin-eof). See docs/kafka-local.md.\n"
      "\n"
      "  --brokers N        number of brokers, 1..10000 (default 1)\n"
      "  --topic SPEC       NAME[:PARTITIONS[:REPLICATION]], repeatable; partitions\n"
      "                     default to 1, replication to min(3, brokers) and may not\n"
      "                     exceed the broker count\n"
      "  --port-file PATH   also write the bootstrap servers to PATH (atomically)\n"
      "  --stdin-eof        stop when standard input reaches end of file\n"
      "  --quiet            no informational messages on stderr\n",
      f);
}

static int kl_usage_error(const char *fmt, ...) {
  va_list ap;
  fputs("flink-kafka-local: ", stderr);
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fputs("\n(run 'flink-kafka-local --help' for usage)\n", stderr);
  return -KL_EXIT_USAGE;
}

/* Parses a whole decimal integer in [lo, hi]; false on anything else. */
static bool kl_parse_int(const char *s, int lo, int hi, int *out) {
  char *end = NULL;
  long v;
  if (s == NULL || *s == '\0' || *s == '+' || *s == '-' || *s == ' ') return false;
  errno = 0;
  v = strtol(s, &end, 10);
  if (errno != 0 || *end != '\0' || v < lo || v > hi) return false;
  *out = (int)v;
  return true;
}

/* Kafka accepts [a-zA-Z0-9._-]{1,249} except "." and ".."; the mock accepts anything,
 * so names are held to Kafka's rule here, or a topic that works locally would fail on a
 * real cluster. */
static bool kl_topic_name_valid(const char *name) {
  size_t n = strlen(name);
  if (n == 0 || n > KL_MAX_TOPIC_NAME || strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
    return false;
  for (size_t i = 0; i < n; i++) {
    char c = name[i];
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
          c == '_' || c == '-'))
      return false;
  }
  return true;
}

/* Parses NAME[:PARTITIONS[:REPLICATION]] into *t (t->name is allocated). Returns 0 or
 * -KL_EXIT_USAGE after printing a message that names the argument. */
static int kl_parse_topic(const char *arg, kl_topic_t *t) {
  int rc = 0;
  char *copy = strdup(arg);
  char *parts = NULL, *repl = NULL;

  memset(t, 0, sizeof(*t));
  t->arg = arg;
  t->partitions = 1;
  if (copy == NULL) {
    fprintf(stderr, "flink-kafka-local: --topic %s: out of memory\n", arg);
    rc = -KL_EXIT_FAILURE;
    goto done;
  }
  if ((parts = strchr(copy, ':')) != NULL) {
    *parts++ = '\0';
    if ((repl = strchr(parts, ':')) != NULL) *repl++ = '\0';
  }
  if (!kl_topic_name_valid(copy)) {
    rc = kl_usage_error(
        "--topic %s: invalid topic name '%s' (1..%d characters of "
        "[a-zA-Z0-9._-], not '.' or '..')",
        arg, copy, KL_MAX_TOPIC_NAME);
    goto done;
  }
  if (parts != NULL && !kl_parse_int(parts, 1, KL_MAX_PARTITIONS, &t->partitions)) {
    rc = kl_usage_error("--topic %s: partition count '%s' is not an integer in 1..%d", arg, parts,
                        KL_MAX_PARTITIONS);
    goto done;
  }
  if (repl != NULL && !kl_parse_int(repl, 1, KL_MAX_BROKERS, &t->replication)) {
    rc = kl_usage_error("--topic %s: replication factor '%s' is not an integer in 1..%d", arg, repl,
                        KL_MAX_BROKERS);
    goto done;
  }
  t->name = copy;
  copy = NULL;

done:
  free(copy);
  return rc;
}

static void kl_opts_free(kl_opts_t *o) {
  for (size_t i = 0; i < o->ntopics; i++) free(o->topics[i].name);
  free(o->topics);
  o->topics = NULL;
  o->ntopics = 0;
}

/* Returns 0, -KL_EXIT_USAGE (message printed), or 1 for --help (usage printed). */
static int kl_parse_args(int argc, char **argv, kl_opts_t *o) {
  int rc = 0;

  memset(o, 0, sizeof(*o));
  o->brokers = 1;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    /* Options that take a value accept "--opt VALUE" and "--opt=VALUE". */
    const char *eq = strchr(a, '=');
    size_t alen = eq != NULL && strncmp(a, "--", 2) == 0 ? (size_t)(eq - a) : strlen(a);
    const char *val = eq != NULL && strncmp(a, "--", 2) == 0 ? eq + 1 : NULL;
#define KL_IS(name) (alen == strlen(name) && strncmp(a, name, alen) == 0)
#define KL_VALUE(name)                                  \
  do {                                                  \
    if (val == NULL) {                                  \
      if (i + 1 >= argc) {                              \
        rc = kl_usage_error("%s: missing value", name); \
        goto done;                                      \
      }                                                 \
      val = argv[++i];                                  \
    }                                                   \
  } while (0)

    if (KL_IS("--help") || KL_IS("-h")) {
      kl_usage(stdout);
      rc = 1;
      goto done;
    } else if (KL_IS("--brokers")) {
      KL_VALUE("--brokers");
      if (!kl_parse_int(val, 1, KL_MAX_BROKERS, &o->brokers)) {
        rc = kl_usage_error("--brokers %s: not an integer in 1..%d", val, KL_MAX_BROKERS);
        goto done;
      }
    } else if (KL_IS("--topic")) {
      kl_topic_t *grown;
      KL_VALUE("--topic");
      grown = realloc(o->topics, (o->ntopics + 1) * sizeof(*o->topics));
      if (grown == NULL) {
        fprintf(stderr, "flink-kafka-local: --topic %s: out of memory\n", val);
        rc = -KL_EXIT_FAILURE;
        goto done;
      }
      o->topics = grown;
      if ((rc = kl_parse_topic(val, &o->topics[o->ntopics])) != 0) goto done;
      o->ntopics++;
    } else if (KL_IS("--port-file")) {
      KL_VALUE("--port-file");
      if (*val == '\0') {
        rc = kl_usage_error("--port-file: empty path");
        goto done;
      }
      o->port_file = val;
    } else if (KL_IS("--quiet") && val == NULL) {
      o->quiet = true;
    } else if (KL_IS("--stdin-eof") && val == NULL) {
      o->stdin_eof = true;
    } else if (KL_IS("--no-auto-create")) {
      /* Asked for often enough to deserve its own answer. */
      rc = kl_usage_error(
          "--no-auto-create: not supported: librdkafka's mock cluster "
          "creates a topic whenever a client's metadata request allows "
          "it, and has no switch to refuse (see docs/kafka-local.md)");
      goto done;
    } else {
      rc = kl_usage_error("%s: unknown argument", a);
      goto done;
    }
#undef KL_IS
#undef KL_VALUE
  }

  /* Checked after the loop: --brokers may follow the --topic it constrains. */
  for (size_t i = 0; i < o->ntopics; i++) {
    kl_topic_t *t = &o->topics[i];
    if (t->replication > o->brokers) {
      rc = kl_usage_error(
          "--topic %s: replication factor %d exceeds the broker count %d "
          "(--brokers)",
          t->arg, t->replication, o->brokers);
      goto done;
    }
    for (size_t j = 0; j < i; j++) {
      if (strcmp(o->topics[j].name, t->name) == 0) {
        rc = kl_usage_error("--topic %s: topic '%s' is given twice", t->arg, t->name);
        goto done;
      }
    }
  }

done:
  return rc;
}

/* Writes "<bootstrap>\n" to path through a temporary file in the same directory and
 * rename(), so that a reader never sees a partial file. */
static int kl_write_port_file(const char *path, const char *bootstrap) {
  int rc = -1;
  size_t n = strlen(path) + 32;
  char *tmp = malloc(n);
  FILE *f = NULL;

  if (tmp == NULL) {
    fprintf(stderr, "flink-kafka-local: --port-file %s: out of memory\n", path);
    goto done;
  }
  snprintf(tmp, n, "%s.tmp.%ld", path, (long)getpid());
  if ((f = fopen(tmp, "w")) == NULL) {
    fprintf(stderr, "flink-kafka-local: --port-file %s: cannot create %s: %s\n", path, tmp,
            strerror(errno));
    goto done;
  }
  if (fprintf(f, "%s\n", bootstrap) < 0 || fflush(f) != 0 || fsync(fileno(f)) != 0) {
    fprintf(stderr, "flink-kafka-local: --port-file %s: cannot write %s: %s\n", path, tmp,
            strerror(errno));
    goto done;
  }
  if (fclose(f) != 0) {
    f = NULL;
    fprintf(stderr, "flink-kafka-local: --port-file %s: cannot write %s: %s\n", path, tmp,
            strerror(errno));
    goto done;
  }
  f = NULL;
  if (rename(tmp, path) != 0) {
    fprintf(stderr, "flink-kafka-local: --port-file %s: cannot rename %s into place: %s\n", path,
            tmp, strerror(errno));
    goto done;
  }
  rc = 0;

done:
  if (f != NULL) fclose(f);
  if (rc != 0 && tmp != NULL) unlink(tmp);
  free(tmp);
  return rc;
}

/* Blocks until SIGINT/SIGTERM or, with stdin_eof, end of standard input. The signals
 * are blocked everywhere (librdkafka's threads inherit the mask from main) and unblocked
 * only inside ppoll(), so a signal cannot slip in between the flag check and the wait. */
static int kl_serve(bool stdin_eof, const sigset_t *wait_mask, bool quiet) {
  struct pollfd pfd = {.fd = STDIN_FILENO, .events = POLLIN};
  char buf[4096];

  while (kl_stop_signal == 0) {
    int n = ppoll(&pfd, stdin_eof ? 1 : 0, NULL, wait_mask);
    if (n < 0) {
      if (errno == EINTR) continue;
      fprintf(stderr, "flink-kafka-local: waiting for a stop signal: %s\n", strerror(errno));
      return -1;
    }
    if (stdin_eof && pfd.revents != 0) {
      /* Whatever the parent writes is ignored; only its end of the pipe matters. */
      ssize_t r = read(STDIN_FILENO, buf, sizeof(buf));
      if (r == 0 || (r < 0 && errno != EINTR && errno != EAGAIN)) {
        if (!quiet) fprintf(stderr, "flink-kafka-local: standard input closed, stopping\n");
        return 0;
      }
    }
  }
  if (!quiet)
    fprintf(stderr, "flink-kafka-local: %s, stopping\n",
            kl_stop_signal == SIGINT ? "SIGINT" : "SIGTERM");
  return 0;
}

int main(int argc, char **argv) {
  int exit_code = KL_EXIT_FAILURE;
  kl_opts_t o;
  rd_kafka_conf_t *conf = NULL;
  rd_kafka_t *rk = NULL;
  rd_kafka_mock_cluster_t *mc = NULL;
  bool port_file_written = false;
  sigset_t stop_set, old_mask;
  struct sigaction sa;
  char errstr[512];
  const char *bootstrap;
  int rc;

  rc = kl_parse_args(argc, argv, &o);
  if (rc == 1) {
    exit_code = 0;
    goto done;
  }
  if (rc < 0) {
    exit_code = -rc;
    goto done;
  }

  /* Block the stop signals before librdkafka starts its threads, so that they inherit
   * the mask and the signal is taken by main's ppoll() alone. */
  sigemptyset(&stop_set);
  sigaddset(&stop_set, SIGINT);
  sigaddset(&stop_set, SIGTERM);
  if (sigprocmask(SIG_BLOCK, &stop_set, &old_mask) != 0) {
    fprintf(stderr, "flink-kafka-local: cannot block SIGINT/SIGTERM: %s\n", strerror(errno));
    goto done;
  }
  memset(&sa, 0, sizeof(sa));
  sa.sa_handler = kl_on_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
  sigdelset(&old_mask, SIGINT);
  sigdelset(&old_mask, SIGTERM);
  /* A reader of stdout that goes away must not kill the broker with SIGPIPE. */
  signal(SIGPIPE, SIG_IGN);

  /* The mock cluster needs an rd_kafka_t for its bookkeeping; a producer that is never
   * used is the lightest. Its own logs go to stderr: warnings and errors, errors only
   * with --quiet (its notice that it has no bootstrap.servers is expected here). */
  conf = rd_kafka_conf_new();
  if (rd_kafka_conf_set(conf, "log_level", o.quiet ? "3" : "4", errstr, sizeof(errstr)) !=
          RD_KAFKA_CONF_OK ||
      rd_kafka_conf_set(conf, "client.id", "flink-kafka-local", errstr, sizeof(errstr)) !=
          RD_KAFKA_CONF_OK) {
    fprintf(stderr, "flink-kafka-local: librdkafka configuration: %s\n", errstr);
    goto done;
  }
  rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
  if (rk == NULL) {
    fprintf(stderr, "flink-kafka-local: cannot create the librdkafka handle: %s\n", errstr);
    goto done;
  }
  conf = NULL; /* owned by rk now */

  mc = rd_kafka_mock_cluster_new(rk, o.brokers);
  if (mc == NULL) {
    fprintf(stderr,
            "flink-kafka-local: cannot start a mock cluster of %d broker(s) (listening "
            "sockets on 127.0.0.1; check the open-file limit)\n",
            o.brokers);
    goto done;
  }

  /* rd_kafka_mock_topic_create() waits for the cluster thread to apply it, so every
   * topic exists once this loop ends. The replication factor is passed on, but the mock
   * of librdkafka 2.0.2 places every partition on min(3, brokers) replicas whatever it
   * is asked (docs/kafka-local.md); a different request is therefore reported. */
  for (size_t i = 0; i < o.ntopics; i++) {
    const kl_topic_t *t = &o.topics[i];
    int dflt = o.brokers < 3 ? o.brokers : 3;
    int repl = t->replication > 0 ? t->replication : dflt;
    rd_kafka_resp_err_t err = rd_kafka_mock_topic_create(mc, t->name, t->partitions, repl);
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      fprintf(stderr, "flink-kafka-local: --topic %s: cannot create topic '%s': %s\n", t->arg,
              t->name, rd_kafka_err2str(err));
      goto done;
    }
    if (!o.quiet)
      fprintf(stderr, "flink-kafka-local: topic %s: %d partition(s)\n", t->name, t->partitions);
    if (!o.quiet && repl != dflt)
      fprintf(stderr,
              "flink-kafka-local: --topic %s: replication factor %d requested; the mock "
              "cluster may place the partitions on min(3, brokers) = %d replicas instead\n",
              t->arg, repl, dflt);
  }

  bootstrap = rd_kafka_mock_cluster_bootstraps(mc);
  if (o.port_file != NULL) {
    if (kl_write_port_file(o.port_file, bootstrap) != 0) goto done;
    port_file_written = true;
  }
  /* The port file first: whoever reads this line may look at the file at once. */
  if (printf("bootstrap.servers=%s\n", bootstrap) < 0 || fflush(stdout) != 0) {
    fprintf(stderr, "flink-kafka-local: cannot write the bootstrap line to stdout: %s\n",
            strerror(errno));
    goto done;
  }
  if (!o.quiet)
    fprintf(stderr, "flink-kafka-local: %d broker(s) serving on %s\n", o.brokers, bootstrap);

  if (kl_serve(o.stdin_eof, &old_mask, o.quiet) != 0) goto done;
  exit_code = 0;

done:
  if (mc != NULL) rd_kafka_mock_cluster_destroy(mc);
  if (rk != NULL) rd_kafka_destroy(rk);
  if (conf != NULL) rd_kafka_conf_destroy(conf);
  if (port_file_written && unlink(o.port_file) != 0 && errno != ENOENT)
    fprintf(stderr, "flink-kafka-local: --port-file %s: cannot remove: %s\n", o.port_file,
            strerror(errno));
  kl_opts_free(&o);
  return exit_code;
}
