/* Growable arrays: one growth rule for every `T *arr; size_t n, cap;` in the library.
 *
 *   if (FL_VEC_RESERVE(env->nodes, env->cap_nodes, env->n_nodes + 1)) goto nomem;
 *   env->nodes[env->n_nodes++] = node;
 *
 * The capacity doubles (from 8), so n pushes cost O(n) copies in all. On failure the
 * array and its capacity are unchanged. */
#ifndef FL_UTIL_VEC_H
#define FL_UTIL_VEC_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "flink.h"

/* *arrp is a pointer to the array's first element (any object pointer type: it is read
 * and written through memcpy, never through a void ** alias). */
static inline int fl_vec_grow_(void *arrp, size_t *cap, size_t need, size_t elem) {
  size_t nc = *cap ? *cap : 8;
  while (nc < need) {
    if (nc > SIZE_MAX / 2) return FL_ENOMEM;
    nc *= 2;
  }
  if (nc > SIZE_MAX / elem) return FL_ENOMEM;
  void *old;
  memcpy(&old, arrp, sizeof old);
  void *p = realloc(old, nc * elem);
  if (!p) return FL_ENOMEM;
  memcpy(arrp, &p, sizeof p);
  *cap = nc;
  return FL_OK;
}

/* Makes room for `need` elements: 0 or FL_ENOMEM. */
#define FL_VEC_RESERVE(arr, cap, need) \
  ((size_t)(need) <= (cap) ? FL_OK : fl_vec_grow_(&(arr), &(cap), (size_t)(need), sizeof *(arr)))

/* Appends val: 0 or FL_ENOMEM (nothing appended). */
#define FL_VEC_PUSH(arr, n, cap, val) \
  (FL_VEC_RESERVE(arr, cap, (n) + 1) ? FL_ENOMEM : ((arr)[(n)++] = (val), FL_OK))

#endif
