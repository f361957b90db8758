/* Allocation-failure injection: see failalloc.h. */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <jansson.h>

#include "failalloc.h"

static struct {
	unsigned long fail_at; /* 0: off */
	bool sticky;
	unsigned long count, failed;
	long live;
	unsigned paused;
} fa;

/* Count one allocation attempt; true if it is to fail. */
static bool injected(void)
{
	if (fa.paused)
		return false;
	fa.count++;
	if (!fa.fail_at || fa.count < fa.fail_at || (fa.count > fa.fail_at && !fa.sticky))
		return false;
	fa.failed++;
	errno = ENOMEM;
	return true;
}

void *__wrap_malloc(size_t size)
{
	void *p = injected() ? NULL : __real_malloc(size);

	fa.live += p != NULL;
	return p;
}

void *__wrap_calloc(size_t n, size_t size)
{
	void *p = injected() ? NULL : __real_calloc(n, size);

	fa.live += p != NULL;
	return p;
}

void *__wrap_realloc(void *p, size_t size)
{
	if (!size) { /* not an allocation: glibc frees p */
		fa.live -= p != NULL;
		return __real_realloc(p, size);
	}
	if (injected())
		return NULL; /* p is untouched */
	void *q = __real_realloc(p, size);
	fa.live += !p && q;
	return q;
}

void *__wrap_aligned_alloc(size_t align, size_t size)
{
	void *p = injected() ? NULL : __real_aligned_alloc(align, size);

	fa.live += p != NULL;
	return p;
}

char *__wrap_strdup(const char *s)
{
	char *p = injected() ? NULL : __real_strdup(s);

	fa.live += p != NULL;
	return p;
}

void __wrap_free(void *p)
{
	fa.live -= p != NULL;
	__real_free(p);
}

void dg_failalloc_install(void)
{
	json_set_alloc_funcs(__wrap_malloc, __wrap_free);
	event_set_mem_functions(__wrap_malloc, __wrap_realloc, __wrap_free);
}

void dg_failalloc_arm(unsigned long fail_at, bool sticky)
{
	fa.fail_at = fail_at;
	fa.sticky = sticky;
	fa.count = fa.failed = 0;
}

void dg_failalloc_disarm(void)
{
	fa.fail_at = 0;
}

unsigned long dg_failalloc_count(void)
{
	return fa.count;
}

unsigned long dg_failalloc_failed(void)
{
	return fa.failed;
}

long dg_failalloc_live(void)
{
	return fa.live;
}

void dg_failalloc_pause(void)
{
	fa.paused++;
}

void dg_failalloc_resume(void)
{
	fa.paused--;
}
