/*
 * A bump allocator for everything a SQL statement's compilation makes: tokens, syntax
 * trees, types, plans and compiled expressions. They are built once, read by the job's
 * operators for as long as it runs, and freed together with the SQL environment, so
 * individual frees would only add bookkeeping. Blocks grow geometrically; an allocation
 * larger than a block gets a block of its own. Not thread-safe: compilation runs on the
 * thread that owns the environment, and operators only read what it made.
 */
#ifndef FL_SQL_ARENA_H
#define FL_SQL_ARENA_H

#include <stddef.h>
#include <stdint.h>

typedef struct sql_arena_block sql_arena_block_t;
typedef struct sql_arena_cleanup sql_arena_cleanup_t;

typedef struct sql_arena {
  sql_arena_block_t *head;
  sql_arena_cleanup_t *cleanups;
  size_t next_size;
  int failed; /* an allocation failed: the compilation reports FL_ENOMEM */
} sql_arena_t;

void sql_arena_init(sql_arena_t *a);
void sql_arena_free(sql_arena_t *a);
/* Zeroed, 16-byte aligned memory; NULL (and a->failed set) when out of memory. */
void *sql_arena_alloc(sql_arena_t *a, size_t n);
/* Calls fn(p) when the arena is freed (for what lives in arena memory but owns more,
 * such as a compiled regular expression). 0 or FL_ENOMEM (then fn(p) is called now). */
int sql_arena_on_free(sql_arena_t *a, void (*fn)(void *p), void *p);
/* A NUL-terminated copy of s[0..n). */
char *sql_arena_strndup(sql_arena_t *a, const char *s, size_t n);
char *sql_arena_strdup(sql_arena_t *a, const char *s);
/* printf into arena memory. */
char *sql_arena_printf(sql_arena_t *a, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* Growable arrays in an arena: the old storage stays behind until the arena goes.
 *
 *   if (SQL_ARENA_ROOM(L->a, L->v, L->n, L->cap)) return FL_ENOMEM;
 *   L->v[L->n++] = tok;
 *
 * Makes room for one more element of arr[0..n): the capacity doubles (from 8) into new
 * arena memory that the n elements are copied to. 0, or FL_ENOMEM with arr and cap as
 * they were. */
#define SQL_ARENA_ROOM(a, arr, n, cap) \
  ((n) < (cap) ? 0 : sql_arena_grow((a), &(arr), (n), &(cap), sizeof *(arr)))
/* SQL_ARENA_ROOM's work; *arrp is the array's first element, of any object pointer type. */
int sql_arena_grow(sql_arena_t *a, void *arrp, size_t n, size_t *cap, size_t elem);

typedef struct sql_ptrvec {
  void **v;
  size_t n, cap;
} sql_ptrvec_t;
int sql_ptrvec_push(sql_arena_t *a, sql_ptrvec_t *pv, void *p);

#endif
