#include "lib/bench_ckjob.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/bench_env.h"

/* mkdir -p */
static int mkdir_p(const char *p) {
  char b[1024];
  snprintf(b, sizeof b, "%s", p);
  for (char *c = b + 1; *c; c++)
    if (*c == '/') {
      *c = 0;
      if (mkdir(b, 0777) && errno != EEXIST) return -1;
      *c = '/';
    }
  return mkdir(b, 0777) && errno != EEXIST ? -1 : 0;
}

int bench_ckjob_init(bench_ckjob_t *j, const char *name, const char *dir,
                     const bench_ckjob_conf_t *c) {
  memset(j, 0, sizeof *j);
  j->name = name;
  j->own_dir = dir == NULL;
  if (dir)
    snprintf(j->dir, sizeof j->dir, "%s", dir);
  else
    snprintf(j->dir, sizeof j->dir, "/tmp/flink-bench-%s-%d", name, (int)getpid());
  snprintf(j->ck, sizeof j->ck, "%s/checkpoints", j->dir);
  snprintf(j->rocks, sizeof j->rocks, "%s/rocksdb", j->dir);
  if (mkdir_p(j->dir) || mkdir_p(j->rocks)) {
    fprintf(stderr, "flink-bench: cannot create %s\n", j->dir);
    return 1;
  }
  const char *kv[] = {"parallelism",
                      c->parallelism,
                      "state.backend",
                      c->backend,
                      "state.backend.incremental",
                      c->incremental,
                      "state.backend.rocksdb.localdir",
                      j->rocks,
                      "state.checkpoints.dir",
                      j->ck,
                      "state.checkpoints.num-retained",
                      "1",
                      "execution.checkpointing.interval",
                      c->interval,
                      NULL};
  return bench_make_env_kv(kv, c->sets, c->n_sets, &j->env) != 0 ? 2 : 0;
}

static void *ckjob_main(void *arg) {
  bench_ckjob_t *j = arg;
  char name[64];
  snprintf(name, sizeof name, "bench-%s", j->name);
  j->rc = fl_env_execute(j->env, name);
  atomic_store(&j->ended, 1);
  return NULL;
}

void bench_ckjob_start(bench_ckjob_t *j) { pthread_create(&j->thread, NULL, ckjob_main, j); }

int bench_ckjob_end(bench_ckjob_t *j) {
  fl_env_stop(j->env);
  pthread_join(j->thread, NULL);
  bool ok = j->rc == FL_ECANCELED || j->rc == 0;
  if (!ok)
    fprintf(stderr, "flink-bench: job failed (%s): %s\n", fl_err_name(j->rc), fl_env_error(j->env));
  fl_env_destroy(j->env);
  if (j->own_dir) {
    char cmd[700];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", j->dir);
    if (system(cmd) != 0) fprintf(stderr, "flink-bench: cannot remove %s\n", j->dir);
  }
  return ok ? 0 : 1;
}

int64_t bench_ckpt_metric(fl_env_t *env, const char *name) {
  char *js = fl_env_metrics_json(env);
  json_t *doc = js ? json_loads(js, 0, NULL) : NULL;
  fl_free(js);
  int64_t v =
      (int64_t)json_integer_value(json_object_get(json_object_get(doc, "checkpoints"), name));
  json_decref(doc);
  return v;
}
