/*
 * The hashmap backend's entry allocator (hashmap_internal.h, hm_pool): slabs of one
 * size class each, instead of a malloc and a free per cell.
 *
 * Why: a window's contents are one cell per (key, window), created by the window's
 * first element for the key and removed when the window fires. At a million keys that
 * is a million mallocs and frees per window, about 400 instructions per (key, window)
 * in glibc, and the cells of one window end up spread over the heap. Here a cell is
 * popped from its class's free list or carved from the end of a slab (a few dozen
 * instructions), and cells created one after the other sit next to each other.
 *
 * Memory stays bounded by what is live: a slab whose last cell is freed goes back to
 * malloc at once, except one empty slab per class kept as a spare, so that a class
 * whose only slab empties and refills (a window firing, the next one starting) does
 * not return and fetch it each time. So after a burst of windows fires, what the pool
 * holds is the slabs of the cells still alive plus at most one empty slab per class.
 * The price is fragmentation: a slab with one live cell is held whole (64 KiB); a
 * free cell is reused before a slab is carved, and frees go to the slab they came
 * from, so slabs of a class that shrinks empty out in the order their cells die.
 *
 * Entries larger than the largest class (long lists, big values) use malloc as before.
 * Under AddressSanitizer free cells are poisoned, so a use after free is still caught.
 *
 * A large pool's slabs come from 2 MiB arenas (HM_ARENA_AFTER): a million window cells
 * spread over 64 MiB took a TLB miss for nearly every lookup in 4 KiB pages; in huge
 * pages (where the kernel grants them: transparent_hugepage "madvise" or "always")
 * the window benchmark at 1,000,000 keys runs some 20 % faster. A slab given back to
 * an arena that still has others in use gives its memory back (MADV_DONTNEED), so
 * what the pool holds still follows what is live; an arena whose slabs are all back
 * is unmapped.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "state/hashmap_internal.h"

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#define POOL_POISON(p, n) ASAN_POISON_MEMORY_REGION((p), (n))
#define POOL_UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#else
#define POOL_POISON(p, n) ((void)(p), (void)(n))
#define POOL_UNPOISON(p, n) ((void)(p), (void)(n))
#endif

/* A slab: HM_SLAB_BYTES aligned to its size, so that a cell finds its slab by masking
 * its address. Its header is followed by cells of one class. */
struct hm_slab {
  hm_slab_t *prev, *next; /* in its class's list of slabs with room */
  void *free;             /* freed cells, linked through their first word */
  uint32_t live;          /* cells handed out */
  uint32_t bump;          /* offset of the first never-used cell */
  uint32_t cell;          /* the class's cell size */
  bool listed;            /* in the class's list (it has room) */
};

#define SLAB_HEAD ((sizeof(hm_slab_t) + 63) & ~(size_t)63)

static inline hm_slab_t *slab_of(const void *p) {
  return (hm_slab_t *)((uintptr_t)p & ~(uintptr_t)(HM_SLAB_BYTES - 1));
}

static inline bool slab_has_room(const hm_slab_t *s) {
  return s->free || s->bump + s->cell <= HM_SLAB_BYTES;
}

static void slab_link(hm_pool_class_t *c, hm_slab_t *s) {
  s->prev = NULL;
  s->next = c->room;
  if (c->room) c->room->prev = s;
  c->room = s;
  s->listed = true;
}

static void slab_unlink(hm_pool_class_t *c, hm_slab_t *s) {
  if (s->prev)
    s->prev->next = s->next;
  else
    c->room = s->next;
  if (s->next) s->next->prev = s->prev;
  s->prev = s->next = NULL;
  s->listed = false;
}

static void slab_reset(hm_slab_t *s, uint32_t cell) {
  memset(s, 0, sizeof *s);
  s->bump = (uint32_t)SLAB_HEAD;
  s->cell = cell;
  POOL_POISON((char *)s + SLAB_HEAD, HM_SLAB_BYTES - SLAB_HEAD);
}

static hm_arena_t *arena_of(hm_pool_t *p, const void *s) {
  char *base = (char *)((uintptr_t)s & ~(uintptr_t)(HM_ARENA_BYTES - 1));
  for (size_t i = 0; i < p->n_arenas; i++)
    if (p->arenas[i].base == base) return &p->arenas[i];
  return NULL;
}

/* A new arena, all of its slabs free; NULL if out of memory. */
static hm_arena_t *arena_new(hm_pool_t *p) {
  if (p->n_arenas == p->cap_arenas) {
    size_t cap = p->cap_arenas ? p->cap_arenas * 2 : 8;
    hm_arena_t *a = realloc(p->arenas, cap * sizeof *a);
    if (!a) return NULL;
    p->arenas = a;
    p->cap_arenas = cap;
  }
  /* twice the size, then the unaligned ends unmapped: 2 MiB aligned */
  char *m =
      mmap(NULL, 2 * HM_ARENA_BYTES, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (m == MAP_FAILED) return NULL;
  char *base = (char *)(((uintptr_t)m + HM_ARENA_BYTES - 1) & ~(uintptr_t)(HM_ARENA_BYTES - 1));
  if (base > m) munmap(m, (size_t)(base - m));
  size_t tail = (size_t)(m + 2 * HM_ARENA_BYTES - (base + HM_ARENA_BYTES));
  if (tail) munmap(base + HM_ARENA_BYTES, tail);
  (void)madvise(base, HM_ARENA_BYTES, MADV_HUGEPAGE); /* a hint: refused is fine */
  hm_arena_t *a = &p->arenas[p->n_arenas++];
  a->base = base;
  a->free = (uint32_t)((1ull << HM_ARENA_SLABS) - 1);
  return a;
}

/* A slab's memory: from malloc for a small pool, from an arena for a large one. */
static hm_slab_t *slab_get(hm_pool_t *p) {
  if (p->slabs < HM_ARENA_AFTER) return aligned_alloc(HM_SLAB_BYTES, HM_SLAB_BYTES);
  hm_arena_t *a = NULL;
  for (size_t i = p->n_arenas; i-- > 0 && !a;)
    if (p->arenas[i].free) a = &p->arenas[i];
  if (!a && !(a = arena_new(p))) return NULL;
  int i = __builtin_ctz(a->free);
  a->free &= ~(1u << i);
  return (hm_slab_t *)(a->base + (size_t)i * HM_SLAB_BYTES);
}

static void slab_release(hm_pool_t *p, hm_slab_t *s) {
  POOL_UNPOISON(s, HM_SLAB_BYTES);
  p->slabs--;
  hm_arena_t *a = arena_of(p, s);
  if (!a) {
    free(s);
    return;
  }
  a->free |= 1u << (((uintptr_t)s & (HM_ARENA_BYTES - 1)) / HM_SLAB_BYTES);
  if (a->free == (uint32_t)((1ull << HM_ARENA_SLABS) - 1)) {
    munmap(a->base, HM_ARENA_BYTES);
    *a = p->arenas[--p->n_arenas];
  } else {
    (void)madvise(s, HM_SLAB_BYTES, MADV_DONTNEED); /* its memory back; zeroes if reused */
  }
}

/* A slab with room for class c (cell bytes per cell), listed; NULL if out of memory. */
static __attribute__((noinline)) hm_slab_t *class_refill(hm_pool_t *p, hm_pool_class_t *c,
                                                         uint32_t cell) {
  hm_slab_t *s = c->spare;
  if (s) {
    c->spare = NULL;
  } else {
    s = slab_get(p);
    if (!s) return NULL;
    p->slabs++;
  }
  slab_reset(s, cell);
  slab_link(c, s);
  return s;
}

void *fl_hm_pool_alloc(hm_pool_t *p, size_t bytes) {
  if (bytes > HM_POOL_MAX) return malloc(bytes);
  size_t ci = (bytes + 15) >> 4;
  uint32_t cell = (uint32_t)(ci << 4);
  hm_pool_class_t *c = &p->c[ci];
  hm_slab_t *s = c->room;
  if (__builtin_expect(!s, 0)) {
    s = class_refill(p, c, cell);
    if (!s) return NULL;
  }
  void *cellp;
  if (s->free) {
    cellp = s->free;
    POOL_UNPOISON(cellp, cell);
    memcpy(&s->free, cellp, sizeof s->free);
  } else {
    cellp = (char *)s + s->bump;
    POOL_UNPOISON(cellp, cell);
    s->bump += cell;
  }
  s->live++;
  p->live++;
  if (!slab_has_room(s)) slab_unlink(c, s);
  return cellp;
}

void fl_hm_pool_free(hm_pool_t *p, void *ptr, size_t bytes) {
  if (!ptr) return;
  if (bytes > HM_POOL_MAX) {
    free(ptr);
    return;
  }
  hm_pool_class_t *c = &p->c[(bytes + 15) >> 4];
  hm_slab_t *s = slab_of(ptr);
  memcpy(ptr, &s->free, sizeof s->free);
  POOL_POISON(ptr, s->cell);
  s->free = ptr;
  s->live--;
  p->live--;
  if (s->live == 0) {
    /* Empty: kept as the class's spare if it has none, else given back. */
    if (s->listed) slab_unlink(c, s);
    if (!c->spare)
      c->spare = s;
    else
      slab_release(p, s);
    return;
  }
  if (!s->listed) slab_link(c, s);
}

void fl_hm_pool_destroy(hm_pool_t *p) {
  for (size_t i = 0; i < HM_POOL_CLASSES; i++) {
    hm_pool_class_t *c = &p->c[i];
    while (c->room) {
      hm_slab_t *s = c->room;
      slab_unlink(c, s);
      slab_release(p, s);
    }
    if (c->spare) slab_release(p, c->spare);
    c->spare = NULL;
  }
  free(p->arenas);
  p->arenas = NULL;
  p->n_arenas = p->cap_arenas = 0;
  /* Full slabs are on no list: the entries' owners free their cells before this. */
}

void fl_hm_pool_stats(const hm_pool_t *p, size_t *held_bytes, size_t *live_cells) {
  if (held_bytes) *held_bytes = p->slabs * (size_t)HM_SLAB_BYTES;
  if (live_cells) *live_cells = p->live;
}
