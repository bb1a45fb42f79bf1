/*
 * The SQL layer's bump allocator (arena.h).
 */
#include "sql/arena.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "flink.h"

#define ARENA_FIRST_BLOCK ((size_t)16 << 10)
#define ARENA_MAX_BLOCK ((size_t)4 << 20)

struct sql_arena_block {
  sql_arena_block_t *next;
  size_t size, used;
  _Alignas(16) unsigned char data[];
};

void sql_arena_init(sql_arena_t *a) {
  memset(a, 0, sizeof *a);
  a->next_size = ARENA_FIRST_BLOCK;
}

struct sql_arena_cleanup {
  sql_arena_cleanup_t *next;
  void (*fn)(void *p);
  void *p;
};

int sql_arena_on_free(sql_arena_t *a, void (*fn)(void *p), void *p) {
  sql_arena_cleanup_t *c = sql_arena_alloc(a, sizeof *c);
  if (!c) {
    fn(p);
    return FL_ENOMEM;
  }
  c->fn = fn;
  c->p = p;
  c->next = a->cleanups;
  a->cleanups = c;
  return FL_OK;
}

void sql_arena_free(sql_arena_t *a) {
  for (sql_arena_cleanup_t *c = a->cleanups; c; c = c->next) c->fn(c->p);
  a->cleanups = NULL;
  sql_arena_block_t *b = a->head;
  while (b) {
    sql_arena_block_t *next = b->next;
    free(b);
    b = next;
  }
  a->head = NULL;
}

void *sql_arena_alloc(sql_arena_t *a, size_t n) {
  n = (n + 15) & ~(size_t)15;
  if (n == 0) n = 16;
  sql_arena_block_t *b = a->head;
  if (!b || b->size - b->used < n) {
    size_t size = a->next_size;
    if (size < n) size = n;
    b = malloc(sizeof *b + size);
    if (!b) {
      a->failed = 1;
      return NULL;
    }
    b->size = size;
    b->used = 0;
    /* A block made for one large allocation goes behind the head, so the head's free
     * space stays in use. */
    if (a->head && size > a->next_size) {
      b->next = a->head->next;
      a->head->next = b;
    } else {
      b->next = a->head;
      a->head = b;
      if (a->next_size < ARENA_MAX_BLOCK) a->next_size *= 2;
    }
  }
  void *p = b->data + b->used;
  b->used += n;
  memset(p, 0, n);
  return p;
}

char *sql_arena_strndup(sql_arena_t *a, const char *s, size_t n) {
  char *p = sql_arena_alloc(a, n + 1);
  if (!p) return NULL;
  if (n) memcpy(p, s, n);
  p[n] = 0;
  return p;
}

char *sql_arena_strdup(sql_arena_t *a, const char *s) { return sql_arena_strndup(a, s, strlen(s)); }

char *sql_arena_printf(sql_arena_t *a, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  if (n < 0) return NULL;
  char *p = sql_arena_alloc(a, (size_t)n + 1);
  if (!p) return NULL;
  va_start(ap, fmt);
  vsnprintf(p, (size_t)n + 1, fmt, ap);
  va_end(ap);
  return p;
}

int sql_arena_grow(sql_arena_t *a, void *arrp, size_t n, size_t *cap, size_t elem) {
  size_t nc = *cap ? *cap * 2 : 8;
  if (nc < *cap || nc > SIZE_MAX / elem) return FL_ENOMEM;
  void *old, *nv = sql_arena_alloc(a, nc * elem);
  if (!nv) return FL_ENOMEM;
  memcpy(&old, arrp, sizeof old);
  if (n) memcpy(nv, old, n * elem);
  memcpy(arrp, &nv, sizeof nv);
  *cap = nc;
  return FL_OK;
}

int sql_ptrvec_push(sql_arena_t *a, sql_ptrvec_t *pv, void *p) {
  if (SQL_ARENA_ROOM(a, pv->v, pv->n, pv->cap)) return FL_ENOMEM;
  pv->v[pv->n++] = p;
  return FL_OK;
}
