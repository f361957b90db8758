/* Allocation-failure injection for tests, as SQLite does it: the test
 * program is linked with -Wl,--wrap= for malloc, calloc, realloc,
 * aligned_alloc, strdup and free, so every allocation of the code linked
 * into it (the core and codec libraries, the test's own objects) goes
 * through the wrappers below; dg_failalloc_install() routes jansson's and
 * libevent's allocations through them as well. Works the same in the plain
 * and the sanitizer builds (the wrappers call the real, or ASan's,
 * allocator).
 *
 * Not covered: allocations made by shared objects calling malloc directly
 * (libc internals, dlopen, plugins' own malloc calls). Single-threaded. */
#ifndef DG_FAILALLOC_H
#define DG_FAILALLOC_H

#include <stdbool.h>
#include <stddef.h>

/* Route jansson's and libevent's allocators through the wrappers. Call
 * before any other libevent or jansson function. */
void dg_failalloc_install(void);

/* Start counting allocations from zero; allocation number fail_at (1-based)
 * fails, and with sticky every one after it too. fail_at 0: none fails. */
void dg_failalloc_arm(unsigned long fail_at, bool sticky);

/* Stop failing (counting goes on). */
void dg_failalloc_disarm(void);

/* Allocations attempted since dg_failalloc_arm(), and how many failed. */
unsigned long dg_failalloc_count(void);
unsigned long dg_failalloc_failed(void);

/* Blocks allocated through the wrappers and not yet freed. Compare before
 * and after a run to find a leak in every build. */
long dg_failalloc_live(void);

/* While paused (nestable), allocations are neither counted nor failed: for
 * the test's own scaffolding inside a run. */
void dg_failalloc_pause(void);
void dg_failalloc_resume(void);

/* The wrappers (the linker sends malloc etc. here). */
void *__wrap_malloc(size_t size);
void *__wrap_calloc(size_t n, size_t size);
void *__wrap_realloc(void *p, size_t size);
void *__wrap_aligned_alloc(size_t align, size_t size);
char *__wrap_strdup(const char *s);
void __wrap_free(void *p);
void *__real_malloc(size_t size);
void *__real_calloc(size_t n, size_t size);
void *__real_realloc(void *p, size_t size);
void *__real_aligned_alloc(size_t align, size_t size);
char *__real_strdup(const char *s);
void __real_free(void *p);

#endif
