/*
 * flink-sql: runs a Flink SQL script as one streaming job.
 *
 *   flink-sql [-f FILE | -e SQL] [--set KEY=VALUE]... [--format table|json]
 *             [--savepoint-on-exit PATH] [--from-savepoint PATH] [--job-name NAME]
 *
 * The script comes from -f FILE, -e SQL, or stdin. Its CREATE TABLE / CREATE VIEW / SET
 * statements set up the catalog and the configuration, and its INSERT INTO statements
 * (and bare queries) become one job, run until its sources end or the tool is stopped.
 * A query that is not INSERTed prints its rows on stdout: a table on a terminal, JSON
 * lines otherwise (--format chooses).
 *
 * --set KEY=VALUE sets any configuration key (as SET does): parallelism,
 * execution.checkpointing.interval, state.checkpoints.dir, state.backend, ...
 * SIGINT/SIGTERM stop the job; with --savepoint-on-exit PATH the first one takes a
 * savepoint into PATH first (from a helper thread: fl_env_savepoint() blocks), and a
 * second one stops at once. --from-savepoint PATH starts from a savepoint or checkpoint.
 *
 * Exit status: 0 when the job ended (or the script built no job), 1 when it failed or
 * the savepoint could not be written, 2 for usage errors and scripts that do not compile
 * (the message names the line, the column and the cause), 128 + N when stopped by signal
 * N.
 */
#define _GNU_SOURCE

#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "flink.h"
#include "util/tsan_c11_threads.h" /* librdkafka threads under TSan builds */

#define EXIT_JOB 1
#define EXIT_USAGE 2

static void usage(FILE *f) {
  fprintf(f,
          "usage: flink-sql [-f FILE | -e SQL] [--set KEY=VALUE]... [--format table|json]\n"
          "                 [--savepoint-on-exit PATH] [--from-savepoint PATH] [--job-name NAME]\n"
          "Runs a Flink SQL script (from FILE, SQL, or stdin) as one streaming job.\n");
}

static char *read_all(FILE *f) {
  size_t cap = 1 << 16, n = 0;
  char *buf = malloc(cap);
  if (!buf) return NULL;
  for (;;) {
    if (n + 1 >= cap) {
      char *nb = realloc(buf, cap * 2);
      if (!nb) {
        free(buf);
        return NULL;
      }
      buf = nb;
      cap *= 2;
    }
    size_t k = fread(buf + n, 1, cap - n - 1, f);
    n += k;
    if (k == 0) break;
  }
  buf[n] = 0;
  return buf;
}

/* ---------------------------------------------------------------------------------- */
/* Printing rows                                                                      */

typedef struct printer {
  pthread_mutex_t mu;
  bool table;
  const fl_sql_schema_t *last;
  int *widths;
  int ncols;
  uint64_t rows;
} printer_t;

/* Column widths by the type's name (the first prefix that matches), for table output. */
static const struct {
  const char *prefix;
  int width;
} type_widths[] = {{"BOOLEAN", 5},    {"TINYINT", 6}, {"SMALLINT", 6}, {"INT", 11},
                   {"BIGINT", 20},    {"DOUBLE", 22}, {"FLOAT", 22},   {"DECIMAL", 24},
                   {"TIMESTAMP", 23}, {"DATE", 10},   {"TIME", 12}};

static int type_width(const char *type, const char *name) {
  int w = 30;
  for (size_t i = 0; i < sizeof type_widths / sizeof *type_widths; i++) {
    if (!strncmp(type, type_widths[i].prefix, strlen(type_widths[i].prefix))) {
      w = type_widths[i].width;
      break;
    }
  }
  int n = (int)strlen(name);
  return n > w ? n : w;
}

static void rule(printer_t *p) {
  fputs("+----", stdout);
  for (int i = 0; i < p->ncols; i++) {
    putchar('+');
    for (int k = 0; k < p->widths[i] + 2; k++) putchar('-');
  }
  puts("+");
}

static void header(printer_t *p, const fl_sql_schema_t *schema) {
  if (p->last) rule(p);
  free(p->widths);
  p->ncols = fl_sql_schema_columns(schema);
  p->widths = calloc((size_t)p->ncols + 1, sizeof(int));
  for (int i = 0; i < p->ncols; i++)
    p->widths[i] = type_width(fl_sql_schema_type(schema, i), fl_sql_schema_name(schema, i));
  rule(p);
  fputs("| op ", stdout);
  for (int i = 0; i < p->ncols; i++) printf("| %*s ", p->widths[i], fl_sql_schema_name(schema, i));
  puts("|");
  rule(p);
  p->last = schema;
}

/* The value of column i as the table shows it: the JSON text, strings unquoted. */
static void cell(const char *json, int i, char *out, size_t cap) {
  /* walk the top-level JSON object to its i-th value */
  const char *s = json + 1;
  int depth = 0, field = 0;
  bool in_str = false;
  const char *start = NULL;
  for (; *s; s++) {
    char c = *s;
    if (in_str) {
      if (c == '\\' && s[1])
        s++;
      else if (c == '"')
        in_str = false;
      continue;
    }
    if (c == '"') {
      in_str = true;
      continue;
    }
    if (c == '{' || c == '[') depth++;
    if (c == '}' || c == ']') {
      if (depth == 0) break;
      depth--;
    }
    if (depth == 0 && c == ':' && !start && field == i) start = s + 1;
    if (depth == 0 && c == ',') {
      if (start) break;
      field++;
    }
  }
  size_t n = start ? (size_t)(s - start) : 0;
  if (start && n >= 2 && start[0] == '"' && start[n - 1] == '"') {
    start++;
    n -= 2;
  }
  if (n >= cap) n = cap - 1;
  if (start) memcpy(out, start, n);
  out[n] = 0;
  if (start && !strcmp(out, "null")) snprintf(out, cap, "<NULL>");
}

static int print_row(fl_context_t *ctx, const fl_sql_schema_t *schema, const fl_record_t *rec,
                     void *opaque) {
  printer_t *p = opaque;
  char stackbuf[4096];
  char *json = stackbuf;
  int n = fl_sql_row_to_json(schema, rec->value, rec->value_len, stackbuf, sizeof stackbuf);
  if (n < 0) return fl_ctx_fail(ctx, "a malformed row");
  if ((size_t)n >= sizeof stackbuf) {
    json = malloc((size_t)n + 1);
    if (!json) return FL_ENOMEM;
    fl_sql_row_to_json(schema, rec->value, rec->value_len, json, (size_t)n + 1);
  }
  pthread_mutex_lock(&p->mu);
  if (!p->table) {
    fputs(json, stdout);
    putchar('\n');
  } else {
    if (p->last != schema) header(p, schema);
    fputs("| +I ", stdout);
    for (int i = 0; i < p->ncols; i++) {
      char v[1024];
      cell(json, i, v, sizeof v);
      int w = p->widths[i];
      if ((int)strlen(v) > w) {
        v[w - 3] = v[w - 2] = v[w - 1] = '.';
        v[w] = 0;
      }
      printf("| %*s ", w, v);
    }
    puts("|");
  }
  p->rows++;
  fflush(stdout);
  pthread_mutex_unlock(&p->mu);
  if (json != stackbuf) free(json);
  return 0;
}

/* ---------------------------------------------------------------------------------- */
/* Signals and the savepoint on exit                                                  */

static fl_env_t *volatile g_env;
static volatile sig_atomic_t g_signal;

typedef struct saver {
  const char *path;
  sem_t wake;
  pthread_t thread;
  bool started;
  _Atomic bool done;
  _Atomic int signals;
  int rc;
  char err[1024];
} saver_t;

static saver_t g_saver;

static void *saver_main(void *arg) {
  saver_t *s = arg;
  while (sem_wait(&s->wake) != 0 && errno == EINTR) {}
  if (atomic_load(&s->done)) return NULL;
  s->rc = fl_env_savepoint(g_env, s->path, s->err, sizeof s->err);
  if (s->rc == 0)
    fprintf(stderr, "flink-sql: savepoint written to %s\n", s->path);
  else
    fprintf(stderr, "flink-sql: no savepoint: %s\n", s->err);
  fl_env_stop(g_env);
  return NULL;
}

static void on_signal(int sig) {
  if (!g_signal) g_signal = sig;
  if (g_saver.started && atomic_fetch_add(&g_saver.signals, 1) == 0) {
    sem_post(&g_saver.wake);
  } else if (g_env) {
    fl_env_stop(g_env);
  }
}

int main(int argc, char **argv) {
  const char *file = NULL, *inline_sql = NULL, *format = NULL, *sp_exit = NULL,
             *job_name = "flink-sql";
  const char **sets = calloc((size_t)argc + 1, sizeof(char *));
  int nsets = 0, status = 0;
  char err[2048];
  char *script = NULL;
  fl_sql_env_t *s = NULL;
  printer_t pr = {.mu = PTHREAD_MUTEX_INITIALIZER};
  if (!sets) return EXIT_JOB;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    const char *val = NULL;
    const char *eq = strchr(a, '=');
    char opt[64];
    if (!strncmp(a, "--", 2) && eq && (size_t)(eq - a) < sizeof opt) {
      memcpy(opt, a, (size_t)(eq - a));
      opt[eq - a] = 0;
      val = eq + 1;
      a = opt;
    }
#define NEXT()                                                     \
  do {                                                             \
    if (!val) {                                                    \
      if (i + 1 >= argc) {                                         \
        fprintf(stderr, "flink-sql: %s needs a value\n", argv[i]); \
        status = EXIT_USAGE;                                       \
        goto done;                                                 \
      }                                                            \
      val = argv[++i];                                             \
    }                                                              \
  } while (0)
    if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
      usage(stdout);
      goto done;
    } else if (!strcmp(a, "-f") || !strcmp(a, "--file")) {
      NEXT();
      file = val;
    } else if (!strcmp(a, "-e") || !strcmp(a, "--execute")) {
      NEXT();
      inline_sql = val;
    } else if (!strcmp(a, "--set") || !strcmp(a, "-s")) {
      NEXT();
      if (!strchr(val, '=')) {
        fprintf(stderr, "flink-sql: --set needs KEY=VALUE, not '%s'\n", val);
        status = EXIT_USAGE;
        goto done;
      }
      sets[nsets++] = val;
    } else if (!strcmp(a, "--format")) {
      NEXT();
      if (strcmp(val, "table") && strcmp(val, "json")) {
        fprintf(stderr, "flink-sql: --format must be table or json, not '%s'\n", val);
        status = EXIT_USAGE;
        goto done;
      }
      format = val;
    } else if (!strcmp(a, "--savepoint-on-exit")) {
      NEXT();
      sp_exit = val;
    } else if (!strcmp(a, "--from-savepoint")) {
      NEXT();
      static char buf[4096];
      snprintf(buf, sizeof buf, "execution.savepoint.path=%s", val);
      sets[nsets++] = buf;
    } else if (!strcmp(a, "--job-name")) {
      NEXT();
      job_name = val;
    } else {
      fprintf(stderr, "flink-sql: unknown option '%s'\n", argv[i]);
      usage(stderr);
      status = EXIT_USAGE;
      goto done;
    }
#undef NEXT
  }
  if (file && inline_sql) {
    fprintf(stderr, "flink-sql: -f and -e exclude each other\n");
    status = EXIT_USAGE;
    goto done;
  }
  if (inline_sql) {
    script = strdup(inline_sql);
  } else {
    FILE *f = file && strcmp(file, "-") ? fopen(file, "rb") : stdin;
    if (!f) {
      fprintf(stderr, "flink-sql: cannot open %s: %s\n", file, strerror(errno));
      status = EXIT_USAGE;
      goto done;
    }
    script = read_all(f);
    if (f != stdin) fclose(f);
  }
  if (!script) {
    fprintf(stderr, "flink-sql: out of memory reading the script\n");
    status = EXIT_JOB;
    goto done;
  }
  if (fl_sql_env_new(&s, err, sizeof err)) {
    fprintf(stderr, "flink-sql: %s\n", err);
    status = EXIT_JOB;
    goto done;
  }
  for (int i = 0; i < nsets; i++) {
    char key[512];
    const char *eq = strchr(sets[i], '=');
    snprintf(key, sizeof key, "%.*s", (int)(eq - sets[i]), sets[i]);
    if (fl_sql_set(s, key, eq + 1, err, sizeof err)) {
      fprintf(stderr, "flink-sql: --set %s: %s\n", sets[i], err);
      status = EXIT_USAGE;
      goto done;
    }
  }
  pr.table = format ? !strcmp(format, "table") : isatty(STDOUT_FILENO);
  fl_sql_on_select(s, print_row, &pr);
  if (fl_sql_execute(s, script, err, sizeof err)) {
    fprintf(stderr, "flink-sql: %s\n", err);
    status = EXIT_USAGE;
    goto done;
  }
  if (!fl_sql_has_job(s)) goto done;
  fl_env_t *env = fl_sql_env_env(s, err, sizeof err);
  if (!env) {
    fprintf(stderr, "flink-sql: %s\n", err);
    status = EXIT_USAGE;
    goto done;
  }
  g_env = env;
  if (sp_exit) {
    g_saver.path = sp_exit;
    sem_init(&g_saver.wake, 0, 0);
    if (pthread_create(&g_saver.thread, NULL, saver_main, &g_saver) == 0) g_saver.started = true;
  }
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
  int rc = fl_env_execute(
      env, fl_sql_get(s, "pipeline.name") ? fl_sql_get(s, "pipeline.name") : job_name);
  if (g_saver.started) {
    atomic_store(&g_saver.done, true);
    sem_post(&g_saver.wake);
    pthread_join(g_saver.thread, NULL);
    sem_destroy(&g_saver.wake);
  }
  if (pr.table && pr.rows) {
    rule(&pr);
    printf("Received a total of %llu row%s\n", (unsigned long long)pr.rows,
           pr.rows == 1 ? "" : "s");
  }
  fflush(stdout);
  if (g_signal) {
    status = 128 + g_signal;
    if (g_saver.started && atomic_load(&g_saver.signals) > 0 && g_saver.rc != 0) status = EXIT_JOB;
  } else if (rc != 0) {
    fprintf(stderr, "flink-sql: the job failed: %s\n", fl_env_error(env));
    status = EXIT_JOB;
  }
done:
  g_env = NULL;
  fl_sql_env_destroy(s);
  free(pr.widths);
  free(script);
  free(sets);
  return status;
}
