/*
 * For programs (tests, tools) that use librdkafka under ThreadSanitizer. Debian's librdkafka
 * starts its threads with C11 thrd_create() and locks with mtx_* and cnd_* functions, which GCC 12's
 * TSan runtime does not intercept: its threads would crash in their first malloc. Under
 * TSan only, this header defines those functions on pthreads (the program's definitions
 * take precedence over libc's), so TSan sees every thread and lock. Include it in
 * exactly one translation unit of a program; without TSan it is empty.
 */
#ifndef FL_TSAN_C11_THREADS_H
#define FL_TSAN_C11_THREADS_H

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>

#if defined(__SANITIZE_THREAD__)
#include <threads.h>

/* librdkafka is not instrumented either: its own reference counts and lock-free hand
 * overs are invisible to TSan, so reports with one of its frames are not ours. Added to
 * the suppressions of TSAN_OPTIONS (scripts/tsan.supp). */
const char *__tsan_default_suppressions(void);
const char *__tsan_default_suppressions(void) { return "race:librdkafka.so\n"; }

typedef struct c11_start {
  thrd_start_t fn;
  void *arg;
} c11_start_t;

static void *c11_trampoline(void *p) {
  c11_start_t s = *(c11_start_t *)p;
  free(p);
  return (void *)(intptr_t)s.fn(s.arg);
}

int thrd_create(thrd_t *thr, thrd_start_t func, void *arg) {
  c11_start_t *s = malloc(sizeof(*s));
  pthread_t t;
  if (s == NULL) return thrd_nomem;
  s->fn = func;
  s->arg = arg;
  if (pthread_create(&t, NULL, c11_trampoline, s) != 0) {
    free(s);
    return thrd_error;
  }
  *thr = (thrd_t)t;
  return thrd_success;
}

int thrd_join(thrd_t thr, int *res) {
  void *r = NULL;
  if (pthread_join((pthread_t)thr, &r) != 0) return thrd_error;
  if (res != NULL) *res = (int)(intptr_t)r;
  return thrd_success;
}

int mtx_init(mtx_t *m, int type) {
  pthread_mutexattr_t a;
  int rc;
  pthread_mutexattr_init(&a);
  if (type & mtx_recursive) pthread_mutexattr_settype(&a, PTHREAD_MUTEX_RECURSIVE);
  rc = pthread_mutex_init((pthread_mutex_t *)m, &a);
  pthread_mutexattr_destroy(&a);
  return rc == 0 ? thrd_success : thrd_error;
}
void mtx_destroy(mtx_t *m) { pthread_mutex_destroy((pthread_mutex_t *)m); }
int mtx_lock(mtx_t *m) {
  return pthread_mutex_lock((pthread_mutex_t *)m) == 0 ? thrd_success : thrd_error;
}
int mtx_unlock(mtx_t *m) {
  return pthread_mutex_unlock((pthread_mutex_t *)m) == 0 ? thrd_success : thrd_error;
}
int cnd_init(cnd_t *c) {
  return pthread_cond_init((pthread_cond_t *)c, NULL) == 0 ? thrd_success : thrd_error;
}
void cnd_destroy(cnd_t *c) { pthread_cond_destroy((pthread_cond_t *)c); }
int cnd_signal(cnd_t *c) {
  return pthread_cond_signal((pthread_cond_t *)c) == 0 ? thrd_success : thrd_error;
}
int cnd_broadcast(cnd_t *c) {
  return pthread_cond_broadcast((pthread_cond_t *)c) == 0 ? thrd_success : thrd_error;
}
int cnd_wait(cnd_t *c, mtx_t *m) {
  return pthread_cond_wait((pthread_cond_t *)c, (pthread_mutex_t *)m) == 0 ? thrd_success
                                                                           : thrd_error;
}
int cnd_timedwait(cnd_t *restrict c, mtx_t *restrict m, const struct timespec *restrict ts) {
  int rc = pthread_cond_timedwait((pthread_cond_t *)c, (pthread_mutex_t *)m, ts);
  return rc == 0 ? thrd_success : rc == ETIMEDOUT ? thrd_timedout : thrd_error;
}
#endif

#endif /* FL_TSAN_C11_THREADS_H */
