/* State descriptors: declared on the environment at build time, owned by it, and
 * addressed at run time by their dense id (the index in env->descs). Names are unique
 * per environment; names starting with "__" are reserved for the descriptors
 * operators create for themselves (fl_env_internal_desc), so they never clash with
 * a user's. */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/builder.h"
#include "util/vec.h"

#define FL_INTERNAL_PREFIX "__"
#define FL_ACC_SIZE_MAX 65536u

static bool is_internal_name(const char *name) {
  return strncmp(name, FL_INTERNAL_PREFIX, sizeof FL_INTERNAL_PREFIX - 1) == 0;
}

static struct fl_state_desc *find_desc(const fl_env_t *env, const char *name) {
  for (size_t i = 0; i < env->n_descs; i++) {
    if (strcmp(env->descs[i]->name, name) == 0) return env->descs[i];
  }
  return NULL;
}

/* Appends a descriptor that takes ownership of `name` (freed on failure). */
static struct fl_state_desc *add_desc(fl_env_t *env, char *name, fl_state_kind_t kind) {
  struct fl_state_desc *d = NULL;
  if (env->n_descs >= UINT32_MAX) goto fail;
  if (FL_VEC_RESERVE(env->descs, env->cap_descs, env->n_descs + 1)) goto fail;
  d = calloc(1, sizeof *d);
  if (!d) goto fail;
  d->id = (uint32_t)env->n_descs;
  d->name = name;
  d->kind = kind;
  env->descs[env->n_descs++] = d;
  return d;
fail:
  free(name);
  fl_env_fail(env, FL_ENOMEM, "out of memory declaring state");
  return NULL;
}

static const char *kind_name(fl_state_kind_t kind) {
  switch (kind) {
  case FL_STATE_VALUE: return "value";
  case FL_STATE_LIST: return "list";
  case FL_STATE_MAP: return "map";
  case FL_STATE_REDUCING: return "reducing";
  case FL_STATE_AGGREGATING: return "aggregating";
  }
  return "?";
}

/* Checks what every user descriptor needs and appends it; NULL with the sticky error
 * set otherwise. */
static struct fl_state_desc *user_desc(fl_env_t *env, const char *name, fl_state_kind_t kind) {
  if (!env) return NULL;
  if (atomic_load(&env->state) != 0) {
    fl_env_fail(env, FL_EINVAL, "%s state '%s': declared after execute", kind_name(kind),
                name ? name : "");
    return NULL;
  }
  if (!name || !*name) {
    fl_env_fail(env, FL_EINVAL, "%s state: the name is empty", kind_name(kind));
    return NULL;
  }
  if (is_internal_name(name)) {
    fl_env_fail(env, FL_EINVAL, "%s state '%s': names starting with \"__\" are reserved",
                kind_name(kind), name);
    return NULL;
  }
  if (find_desc(env, name)) {
    fl_env_fail(env, FL_EINVAL, "%s state '%s': another state has this name", kind_name(kind),
                name);
    return NULL;
  }
  char *copy = strdup(name);
  if (!copy) {
    fl_env_fail(env, FL_ENOMEM, "out of memory declaring state");
    return NULL;
  }
  return add_desc(env, copy, kind);
}

fl_state_desc_t *fl_state_value(fl_env_t *env, const char *name) {
  return user_desc(env, name, FL_STATE_VALUE);
}

fl_state_desc_t *fl_state_list(fl_env_t *env, const char *name) {
  return user_desc(env, name, FL_STATE_LIST);
}

fl_state_desc_t *fl_state_map(fl_env_t *env, const char *name) {
  return user_desc(env, name, FL_STATE_MAP);
}

fl_state_desc_t *fl_state_reducing(fl_env_t *env, const char *name, fl_reduce_fn fn, void *opaque) {
  if (!env) return NULL;
  if (!fn) {
    fl_env_fail(env, FL_EINVAL, "reducing state '%s': reduce function is NULL", name ? name : "");
    return NULL;
  }
  struct fl_state_desc *d = user_desc(env, name, FL_STATE_REDUCING);
  if (d) {
    d->reduce = fn;
    d->opaque = opaque;
  }
  return d;
}

fl_state_desc_t *fl_state_aggregating(fl_env_t *env, const char *name, const fl_aggregate_fn_t *fn,
                                      void *opaque) {
  if (!env) {
    fl_release_unkept(fn ? fn->destroy : NULL, opaque);
    return NULL;
  }
  struct fl_state_desc *d = NULL;
  if (!fn || fn->version != FL_AGGREGATE_FN_VERSION || !fn->init || !fn->add) {
    fl_env_fail(env, FL_EINVAL,
                "aggregating state '%s': function table is NULL, of another version or "
                "lacks init/add",
                name ? name : "");
  } else if (fn->acc_size < 1 || fn->acc_size > FL_ACC_SIZE_MAX) {
    fl_env_fail(env, FL_EINVAL, "aggregating state '%s': acc_size %zu is not in 1..%u",
                name ? name : "", fn->acc_size, FL_ACC_SIZE_MAX);
  } else {
    d = user_desc(env, name, FL_STATE_AGGREGATING);
  }
  if (d) {
    d->agg = *fn;
    d->opaque = opaque;
  } else {
    fl_release_unkept(fn ? fn->destroy : NULL, opaque); /* not kept */
  }
  return d;
}

int fl_state_desc_set_ttl(fl_state_desc_t *desc, const fl_ttl_config_t *ttl) {
  if (!desc || !ttl || ttl->version != FL_TTL_CONFIG_VERSION || ttl->ttl_ms <= 0) return FL_EINVAL;
  if (ttl->update != FL_TTL_ON_CREATE_AND_WRITE && ttl->update != FL_TTL_ON_READ_AND_WRITE)
    return FL_EINVAL;
  if (ttl->visibility != FL_TTL_NEVER_RETURN_EXPIRED &&
      ttl->visibility != FL_TTL_RETURN_EXPIRED_IF_NOT_CLEANED_UP)
    return FL_EINVAL;
  desc->ttl = *ttl;
  desc->has_ttl = 1;
  return FL_OK;
}

struct fl_state_desc *fl_env_internal_desc(fl_env_t *env, const char *name, fl_state_kind_t kind) {
  if (!env) return NULL;
  if (!name || !*name) {
    fl_env_fail(env, FL_EINVAL, "internal %s state: the name is empty", kind_name(kind));
    return NULL;
  }
  /* Several operators may ask for the same name: the id keeps each one distinct. */
  size_t len = strlen(name) + sizeof FL_INTERNAL_PREFIX + 24;
  char *full = malloc(len);
  if (!full) {
    fl_env_fail(env, FL_ENOMEM, "out of memory declaring state");
    return NULL;
  }
  snprintf(full, len, FL_INTERNAL_PREFIX "%s", name);
  for (size_t n = env->n_descs; find_desc(env, full); n++)
    snprintf(full, len, FL_INTERNAL_PREFIX "%s.%zu", name, n);
  return add_desc(env, full, kind);
}

void fl_state_descs_free(fl_env_t *env) {
  if (!env) return;
  for (size_t i = 0; i < env->n_descs; i++) {
    struct fl_state_desc *d = env->descs[i];
    /* Internal descriptors borrow the opaque of their operator, which releases it. */
    if (d->kind == FL_STATE_AGGREGATING && !is_internal_name(d->name) && d->agg.destroy)
      d->agg.destroy(d->opaque);
    free(d->name);
    free(d);
  }
  free(env->descs);
  env->descs = NULL;
  env->n_descs = 0;
}
