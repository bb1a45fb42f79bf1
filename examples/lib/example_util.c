/* What the example programs share; see example_util.h. */
#define _GNU_SOURCE
#include "example_util.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define EX_BAD_LINES_SHOWN 5
#define EX_CHECKPOINT_INTERVAL "1s"
#define EX_CHECKPOINTS_RETAINED "2"

/* ---------------------------------------------------------------------------------- */
/* --set and -X                                                                       */

int ex_extra_option(ex_extra_t *x, const char *prog, bool allow_x, int argc, char **argv, int *i) {
  const char *arg = argv[*i];
  if (strcmp(arg, "--set") == 0 || strncmp(arg, "--set=", 6) == 0) {
    const char *kv = arg[5] == '=' ? arg + 6 : *i + 1 < argc ? argv[++*i] : NULL;
    if (kv == NULL || kv[0] == '=' || strchr(kv, '=') == NULL) {
      fprintf(stderr, "%s: --set takes KEY=VALUE (a configuration key), not '%s'\n", prog,
              kv != NULL ? kv : "");
      return -1;
    }
    if (x->n_sets == EX_MAX_REPEATED) {
      fprintf(stderr, "%s: more than %d --set options\n", prog, EX_MAX_REPEATED);
      return -1;
    }
    x->sets[x->n_sets++] = kv;
    /* Checked now against a throwaway configuration, so that a typo stops the program
     * before it does anything (the library's message says what is wrong). */
    fl_config_t *conf = fl_config_new();
    ex_extra_t one = {.sets = {kv}, .n_sets = 1};
    int rc = conf != NULL ? ex_extra_apply(&one, prog, conf) : 0;
    fl_config_destroy(conf);
    return rc == 0 ? 1 : -1;
  }
  if (allow_x && strncmp(arg, "-X", 2) == 0) {
    char *kv = arg[2] != '\0' ? argv[*i] + 2 : *i + 1 < argc ? argv[++*i] : NULL;
    char *eq = kv != NULL ? strchr(kv, '=') : NULL;
    if (eq == NULL || eq == kv) {
      fprintf(stderr, "%s: -X takes KEY=VALUE (a librdkafka property); argument %d has no %s\n",
              prog, *i, eq == kv && kv != NULL ? "key" : "'='");
      return -1;
    }
    if (x->n_props == 2 * EX_MAX_REPEATED) {
      fprintf(stderr, "%s: more than %d -X options\n", prog, EX_MAX_REPEATED);
      return -1;
    }
    *eq = '\0';
    x->props[x->n_props++] = kv;
    x->props[x->n_props++] = eq + 1;
    x->props[x->n_props] = NULL;
    return 1;
  }
  return 0;
}

int ex_extra_apply(const ex_extra_t *x, const char *prog, fl_config_t *conf) {
  char err[512];
  for (int k = 0; k < x->n_sets; k++) {
    const char *eq = strchr(x->sets[k], '=');
    char *key = strndup(x->sets[k], (size_t)(eq - x->sets[k]));
    int rc = key != NULL ? fl_config_set(conf, key, eq + 1, err, sizeof err) : FL_ENOMEM;
    free(key);
    if (rc != 0) {
      fprintf(stderr, "%s: --set: %s\n", prog, rc == FL_ENOMEM ? "out of memory" : err);
      return -1;
    }
  }
  return 0;
}

const char *const *ex_extra_props(const ex_extra_t *x) { return x->n_props > 0 ? x->props : NULL; }

/* ---------------------------------------------------------------------------------- */
/* Common options                                                                     */

void ex_opts_init(ex_opts_t *o, const char *prog) {
  memset(o, 0, sizeof *o);
  o->prog = prog;
  o->parallelism = 2;
  o->out_of_orderness_ms = 5000;
}

const char *ex_option_value(int argc, char **argv, int *i, const char *name) {
  size_t n = strlen(name);
  if (strncmp(argv[*i], name, n) != 0) return NULL;
  if (argv[*i][n] == '=') return argv[*i] + n + 1;
  if (argv[*i][n] == '\0' && *i + 1 < argc) return argv[++*i];
  return NULL;
}

bool ex_flag_option(const ex_flag_t *flags, size_t n, const char *arg) {
  for (size_t i = 0; i < n; i++)
    if (strcmp(arg, flags[i].name) == 0) {
      *flags[i].field = flags[i].value;
      return true;
    }
  return false;
}

int ex_duration(const char *prog, const char *name, const char *v, int64_t *out, bool positive) {
  if (fl_parse_duration(v, out) != 0 || (positive && *out <= 0)) {
    fprintf(stderr, "%s: bad %s '%s'\n", prog, name, v);
    return -1;
  }
  return 0;
}

int ex_common_option(ex_opts_t *o, int argc, char **argv, int *i, void (*usage)(FILE *)) {
  const char *v;
  int64_t ms;
  int rc = ex_extra_option(&o->extra, o->prog, false, argc, argv, i);
  if (rc != 0) return rc;
  if (strcmp(argv[*i], "--demo") == 0) {
    o->demo = true;
  } else if (strcmp(argv[*i], "--help") == 0 || strcmp(argv[*i], "-h") == 0) {
    usage(stdout);
    exit(0);
  } else if ((v = ex_option_value(argc, argv, i, "--input"))) {
    o->input = v;
  } else if ((v = ex_option_value(argc, argv, i, "--output"))) {
    o->output = v;
  } else if ((v = ex_option_value(argc, argv, i, "--parallelism"))) {
    char *end;
    long p = strtol(v, &end, 10);
    if (*end || p < 1 || p > 256) {
      fprintf(stderr, "%s: --parallelism must be 1..256, got '%s'\n", o->prog, v);
      return -1;
    }
    o->parallelism = (int)p;
  } else if ((v = ex_option_value(argc, argv, i, "--out-of-orderness"))) {
    return ex_duration(o->prog, "--out-of-orderness", v, &o->out_of_orderness_ms, false) ? -1 : 1;
  } else if ((v = ex_option_value(argc, argv, i, "--watermark-interval"))) {
    o->watermark_interval = v;
  } else if ((v = ex_option_value(argc, argv, i, "--state-backend"))) {
    if (strcmp(v, "hashmap") != 0 && strcmp(v, "rocksdb") != 0) {
      fprintf(stderr, "%s: --state-backend must be hashmap or rocksdb, got '%s'\n", o->prog, v);
      return -1;
    }
    o->state_backend = v;
  } else if ((v = ex_option_value(argc, argv, i, "--checkpoint-dir"))) {
    if (!*v) {
      fprintf(stderr, "%s: --checkpoint-dir is empty\n", o->prog);
      return -1;
    }
    o->checkpoint_dir = v;
  } else if ((v = ex_option_value(argc, argv, i, "--checkpoint-interval"))) {
    if (ex_duration(o->prog, "--checkpoint-interval", v, &ms, true) != 0) return -1;
    o->checkpoint_interval = v;
  } else {
    return 0;
  }
  return 1;
}

int ex_parse_args(ex_opts_t *o, int argc, char **argv, void (*usage)(FILE *),
                  const ex_duration_opt_t *durations, size_t n, const char *what) {
  for (int i = 1; i < argc; i++) {
    const char *v = NULL;
    int rc = ex_common_option(o, argc, argv, &i, usage);
    if (rc < 0) return -1;
    if (rc > 0) continue;
    size_t d = 0;
    while (d < n && !(v = ex_option_value(argc, argv, &i, durations[d].name))) d++;
    if (d == n) {
      fprintf(stderr, "%s: unknown or incomplete option '%s'\n", o->prog, argv[i]);
      usage(stderr);
      return -1;
    }
    if (ex_duration(o->prog, durations[d].name, v, durations[d].field, true) != 0) return -1;
  }
  return ex_opts_check(o, what);
}

int ex_opts_check(const ex_opts_t *o, const char *what) {
  struct stat st;
  if (o->checkpoint_interval && !o->checkpoint_dir) {
    fprintf(stderr, "%s: --checkpoint-interval needs --checkpoint-dir\n", o->prog);
    return -1;
  }
  if (!o->checkpoint_dir) return 0;
  if (!o->output || strcmp(o->output, "-") == 0) {
    fprintf(stderr,
            "%s: --checkpoint-dir needs --output DIR, the directory the %s are committed to\n",
            o->prog, what);
    return -1;
  }
  if (stat(o->output, &st) == 0 && !S_ISDIR(st.st_mode)) {
    fprintf(stderr, "%s: with --checkpoint-dir, --output must be a directory; '%s' is not one\n",
            o->prog, o->output);
    return -1;
  }
  return 0;
}

void ex_usage_common(FILE *f, const char *what) {
  fprintf(f,
          "  --output PATH|-       %s (default: stdout); with --checkpoint-dir a\n"
          "                        directory (required), see below\n"
          "  --parallelism N       worker threads (default 2)\n"
          "  --out-of-orderness D  how late events may arrive (default 5s)\n"
          "  --watermark-interval D  periodic watermark interval (default: library's)\n"
          "  --state-backend B     hashmap (default) or rocksdb\n"
          "  --checkpoint-dir DIR  checkpoint every --checkpoint-interval D (default 1s),\n"
          "                        keeping the newest 2; if DIR holds a complete checkpoint,\n"
          "                        resume from the newest one. The %s are then committed\n"
          "                        exactly once as part-* files in the --output directory\n"
          "                        (created if missing; files starting with '.' are not\n"
          "                        committed yet). Resuming needs --input to be a regular\n"
          "                        file and the same options as the run that wrote DIR.\n"
          "  --set KEY=VALUE       any configuration key (docs/configuration.md), over the\n"
          "                        options above; may be repeated\n"
          "Durations: 250, 250ms, 5s, 5m, 1h, 1d.\n",
          what, what);
}

/* ---------------------------------------------------------------------------------- */
/* Configuration                                                                      */

fl_config_t *ex_config(const ex_opts_t *o) {
  fl_config_t *conf = fl_config_new();
  char err[512] = "", par[16];
  if (!conf) {
    fprintf(stderr, "%s: out of memory\n", o->prog);
    return NULL;
  }
  snprintf(par, sizeof par, "%d", o->parallelism);
  if (fl_config_set(conf, "parallelism", par, err, sizeof err) != 0 ||
      (o->watermark_interval && fl_config_set(conf, "pipeline.auto-watermark-interval",
                                              o->watermark_interval, err, sizeof err) != 0) ||
      (o->state_backend &&
       fl_config_set(conf, "state.backend", o->state_backend, err, sizeof err) != 0))
    goto fail;
  if (o->checkpoint_dir) {
    const char *interval = o->checkpoint_interval ? o->checkpoint_interval : EX_CHECKPOINT_INTERVAL;
    if (fl_config_set(conf, "state.checkpoints.dir", o->checkpoint_dir, err, sizeof err) != 0 ||
        fl_config_set(conf, "state.checkpoints.num-retained", EX_CHECKPOINTS_RETAINED, err,
                      sizeof err) != 0 ||
        fl_config_set(conf, "execution.checkpointing.interval", interval, err, sizeof err) != 0 ||
        /* the newest complete checkpoint there, if any, is where the job starts */
        fl_config_set(conf, "state.checkpoints.restore-latest", "true", err, sizeof err) != 0)
      goto fail;
  }
  if (ex_extra_apply(&o->extra, o->prog, conf) != 0) {
    fl_config_destroy(conf);
    return NULL;
  }
  return conf;
fail:
  fprintf(stderr, "%s: %s\n", o->prog, err);
  fl_config_destroy(conf);
  return NULL;
}

/* ---------------------------------------------------------------------------------- */
/* Bad lines                                                                          */

static int bad_line_write(fl_context_t *ctx, const fl_record_t *in, void *instance) {
  ex_bad_lines_t *b = instance;
  fl_lines_dead_letter_t dl;
  if (fl_lines_dead_letter_read(in, &dl) != 0)
    return fl_ctx_fail(ctx, "a record of %zu bytes is not a dead letter", in->value_len);
  pthread_mutex_lock(&b->mu);
  if (++b->n <= EX_BAD_LINES_SHOWN)
    fprintf(stderr, "%s: skipping line %" PRIu64 ": %s\n", b->prog, dl.line_no, dl.error);
  pthread_mutex_unlock(&b->mu);
  return 0;
}

fl_stream_t *ex_source_lines(fl_env_t *env, const char *name, const char *path,
                             fl_lines_parse_fn parse, void *opaque, ex_bad_lines_t *bad) {
  static const fl_sink_fn_t bad_fn = {.version = FL_SINK_FN_VERSION, .write = bad_line_write};
  char tag_name[128];
  snprintf(tag_name, sizeof tag_name, "%s-bad-lines", name);
  fl_output_tag_t *tag = fl_output_tag(env, tag_name);
  fl_lines_source_opts_t o = {
      .version = FL_LINES_SOURCE_OPTS_VERSION,
      .path = path,
      .parse = parse,
      .parse_opaque = opaque,
      .on_error = FL_LINES_ON_ERROR_DEAD_LETTER,
      .dead_letter = tag,
  };
  fl_stream_t *lines = fl_source_lines_opts(env, name, &o);
  fl_stream_sink(fl_stream_side_output(lines, tag), "bad-lines", &bad_fn, bad);
  return lines;
}

fl_keyed_stream_t *ex_events_by_user(fl_env_t *env, const char *name, const char *path,
                                     fl_lines_parse_fn parse, void *opaque, ex_bad_lines_t *bad,
                                     const ex_opts_t *o) {
  fl_watermark_strategy_t ws = {
      .version = FL_WATERMARK_STRATEGY_VERSION,
      .kind = FL_WATERMARKS_BOUNDED,
      .max_out_of_orderness_ms = o->out_of_orderness_ms,
  };
  fl_stream_t *events = ex_source_lines(env, name, path, parse, opaque, bad);
  fl_stream_t *timed = fl_stream_assign_timestamps(events, "event-time", &ws);
  return fl_stream_key_by(timed, NULL, NULL);
}

void ex_bad_lines_init(ex_bad_lines_t *bad, const char *prog) {
  bad->prog = prog;
  bad->n = 0;
  pthread_mutex_init(&bad->mu, NULL);
}

void ex_bad_lines_done(ex_bad_lines_t *bad) { pthread_mutex_destroy(&bad->mu); }

static bool blank(const char *s, size_t len) {
  for (size_t i = 0; i < len; i++)
    if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r') return false;
  return true;
}

json_t *ex_json_event(fl_context_t *ctx, const void *line, size_t len, ex_buf_t *user, int64_t *ts,
                      int *rc) {
  json_error_t jerr;
  json_t *root, *u, *t;
  *rc = 0;
  if (blank(line, len)) return NULL;
  root = json_loadb(line, len, JSON_REJECT_DUPLICATES, &jerr);
  if (!root || !json_is_object(root)) {
    *rc = root ? fl_ctx_fail(ctx, "not a JSON object")
               : fl_ctx_fail(ctx, "not valid JSON (%s at column %d)", jerr.text, jerr.column);
    goto fail;
  }
  u = json_object_get(root, "user");
  t = json_object_get(root, "ts");
  if (!json_is_string(u) || json_string_length(u) == 0) {
    *rc = fl_ctx_fail(ctx, "\"user\" is missing or not a non-empty string");
    goto fail;
  }
  if (!json_is_integer(t) || json_integer_value(t) == FL_TS_NONE) {
    *rc = fl_ctx_fail(ctx, "\"ts\" is missing or not an integer (epoch milliseconds)");
    goto fail;
  }
  *ts = (int64_t)json_integer_value(t);
  if ((*rc = ex_buf_set(user, json_string_value(u), json_string_length(u))) != 0) goto fail;
  return root;
fail:
  json_decref(root);
  return NULL;
}

/* ---------------------------------------------------------------------------------- */
/* Strings                                                                            */

static int buf_reserve(ex_buf_t *b, size_t extra) {
  size_t need = b->len + extra + 1;
  if (need <= b->cap) return 0;
  size_t cap = b->cap ? b->cap : 256;
  while (cap < need) cap *= 2;
  char *p = realloc(b->data, cap);
  if (!p) return FL_ENOMEM;
  b->data = p;
  b->cap = cap;
  return 0;
}

int ex_buf_set(ex_buf_t *b, const void *data, size_t len) {
  b->len = 0;
  if (buf_reserve(b, len) != 0) return FL_ENOMEM;
  if (len) memcpy(b->data, data, len);
  b->data[len] = '\0';
  b->len = len;
  return 0;
}

int ex_buf_printf(ex_buf_t *b, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  if (n < 0 || buf_reserve(b, (size_t)n) != 0) return FL_ENOMEM;
  va_start(ap, fmt);
  vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
  va_end(ap);
  b->len += (size_t)n;
  return 0;
}

int ex_buf_json_string(ex_buf_t *b, const char *s, size_t len) {
  if (buf_reserve(b, len * 6 + 2) != 0) return FL_ENOMEM;
  char *p = b->data + b->len;
  *p++ = '"';
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c == '"' || c == '\\') {
      *p++ = '\\';
      *p++ = (char)c;
    } else if (c < 0x20) {
      p += sprintf(p, "\\u%04x", c);
    } else {
      *p++ = (char)c;
    }
  }
  *p++ = '"';
  *p = '\0';
  b->len = (size_t)(p - b->data);
  return 0;
}

uint64_t ex_splitmix64(uint64_t *state) {
  uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

/* ---------------------------------------------------------------------------------- */
/* Demos                                                                              */

/* A temporary file from template (mkstemp; "...XXXXXX") filled by write(f, arg). 0, or -1
 * with the message printed. */
static int temp_file(const char *prog, char *template, int (*write)(FILE *f, void *arg),
                     void *arg) {
  int fd = mkstemp(template);
  FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
  if (!f) {
    fprintf(stderr, "%s: cannot create a temp file: %s\n", prog, strerror(errno));
    if (fd >= 0) close(fd);
    return -1;
  }
  int wrc = write ? write(f, arg) : 0;
  if (fclose(f) != 0 || wrc != 0) {
    fprintf(stderr, "%s: cannot write %s\n", prog, template);
    unlink(template);
    return -1;
  }
  return 0;
}

static int cmp_lines(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

typedef struct line_list {
  char **v;
  size_t n, cap;
} line_list_t;

static void line_list_free(line_list_t *l) {
  for (size_t i = 0; i < l->n; i++) free(l->v[i]);
  free(l->v);
}

/* Appends the lines of the file at path (without their newlines). 0, or -1 with errno
 * set. */
static int read_lines(const char *path, line_list_t *l) {
  FILE *f = fopen(path, "r");
  char *line = NULL;
  size_t line_cap = 0;
  ssize_t len;
  int rc = -1;
  if (!f) return -1;
  while ((len = getline(&line, &line_cap, f)) >= 0) {
    if (len > 0 && line[len - 1] == '\n') line[len - 1] = '\0';
    if (l->n == l->cap) {
      size_t ncap = l->cap ? l->cap * 2 : 256;
      char **nv = realloc(l->v, ncap * sizeof *nv);
      if (!nv) goto done;
      l->v = nv;
      l->cap = ncap;
    }
    if (!(l->v[l->n] = strdup(line))) goto done;
    l->n++;
  }
  rc = ferror(f) ? -1 : 0;
done:
  free(line);
  fclose(f);
  return rc;
}

/* Reads the output: a file, or (with checkpoints) the committed files of the output
 * directory; names starting with '.' are files in progress or pending a checkpoint. */
static int read_output(const char *path, line_list_t *l) {
  struct stat st;
  if (stat(path, &st) != 0) return -1;
  if (!S_ISDIR(st.st_mode)) return read_lines(path, l);
  DIR *d = opendir(path);
  if (!d) return -1;
  struct dirent *e;
  int rc = 0;
  while (rc == 0 && (e = readdir(d))) {
    char file[4096];
    if (e->d_name[0] == '.') continue;
    snprintf(file, sizeof file, "%s/%s", path, e->d_name);
    rc = read_lines(file, l);
  }
  closedir(d);
  return rc;
}

static void print_first_lines(const char *prog, const char *path, size_t n) {
  line_list_t l = {0};
  if (read_output(path, &l) != 0)
    fprintf(stderr, "%s: cannot read %s: %s\n", prog, path, strerror(errno));
  if (l.n) qsort(l.v, l.n, sizeof *l.v, cmp_lines);
  for (size_t i = 0; i < l.n && i < n; i++) printf("  %s\n", l.v[i]);
  if (l.n > n) printf("  ... (%zu more)\n", l.n - n);
  line_list_free(&l);
}

void ex_print_metrics(const char *metrics) {
  json_error_t err;
  json_t *doc = metrics ? json_loads(metrics, 0, &err) : NULL;
  if (!doc) {
    printf("%s\n", metrics ? metrics : "(no metrics)");
    return;
  }
  char *pretty = json_dumps(doc, JSON_INDENT(2));
  printf("%s\n", pretty ? pretty : metrics);
  free(pretty);
  json_decref(doc);
}

/* ---------------------------------------------------------------------------------- */
/* A run                                                                              */

int ex_run_start(ex_run_t *r, const ex_opts_t *o, int (*write_demo)(FILE *f, void *arg),
                 void *arg) {
  char err[512];
  memset(r, 0, sizeof *r);
  r->o = o;
  r->input = o->input ? o->input : "-";
  r->output = o->output ? o->output : "-";
  if (o->demo && !o->input) {
    snprintf(r->demo_input, sizeof r->demo_input, "/tmp/%s_in_XXXXXX", o->prog);
    if (temp_file(o->prog, r->demo_input, write_demo, arg) != 0) return 1;
    r->demo_input_made = true;
    r->input = r->demo_input;
  }
  if (o->demo && !o->output) {
    snprintf(r->demo_output, sizeof r->demo_output, "/tmp/%s_out_XXXXXX", o->prog);
    if (temp_file(o->prog, r->demo_output, NULL, NULL) != 0) return 1;
    r->demo_output_made = true;
    r->output = r->demo_output;
  }
  if (!(r->conf = ex_config(o))) return 2;
  if (fl_env_new(&r->env, r->conf, err, sizeof err) != 0) {
    fprintf(stderr, "%s: %s\n", o->prog, err);
    return 1;
  }
  return 0;
}

/* Whether the finished job was restored from a checkpoint (its metrics say from which). */
static bool restored(fl_env_t *env) {
  char *text = fl_env_metrics_json(env);
  json_t *root = text ? json_loads(text, 0, NULL) : NULL;
  json_t *id = json_object_get(json_object_get(root, "checkpoints"), "restored_from");
  bool yes = json_is_integer(id) && json_integer_value(id) > 0;
  json_decref(root);
  fl_free(text);
  return yes;
}

int ex_run_execute(ex_run_t *r, const char *job_name) {
  int rc = fl_env_execute(r->env, job_name);
  if (rc != 0) {
    fprintf(stderr, "%s: job failed (%s): %s\n", r->o->prog, fl_err_name(rc), fl_env_error(r->env));
    return 1;
  }
  r->resumed = restored(r->env);
  if (r->o->demo) r->metrics = fl_env_metrics_json(r->env);
  fl_env_destroy(r->env);
  r->env = NULL;
  return 0;
}

void ex_run_print_output(const ex_run_t *r, const char *what, uint64_t emitted) {
  if (strcmp(r->output, "-") == 0) return;
  if (r->resumed)
    printf("first committed %s (sorted); this run emitted %" PRIu64 ":\n", what, emitted);
  else
    printf("first %s (sorted), of %" PRIu64 ":\n", what, emitted);
  print_first_lines(r->o->prog, r->output, 10);
  if (!r->demo_output_made) printf("all %s: %s\n", what, r->output);
}

void ex_run_done(ex_run_t *r) {
  fl_env_destroy(r->env);
  fl_config_destroy(r->conf);
  fl_free(r->metrics);
  if (r->demo_input_made) unlink(r->demo_input);
  if (r->demo_output_made) unlink(r->demo_output);
  memset(r, 0, sizeof *r);
}
