/* See jsonload.h. The watcher is installed once around whatever allocator
 * jansson has then; a thread-local flag records a failure. */
#include "config.h"

#include <pthread.h>
#include <stdio.h>

#include "jsonload.h"

static json_malloc_t outer_malloc;
static pthread_once_t watch_once = PTHREAD_ONCE_INIT;
static _Thread_local bool alloc_failed;

static void *watch_malloc(size_t size)
{
	void *p = outer_malloc(size);

	if (!p)
		alloc_failed = true;
	return p;
}

static void watch_install(void)
{
	json_free_t outer_free;

	json_get_alloc_funcs(&outer_malloc, &outer_free);
	json_set_alloc_funcs(watch_malloc, outer_free);
}

json_t *dg_json_load(const char *buf, size_t len, size_t flags, json_error_t *je, bool *oom)
{
	pthread_once(&watch_once, watch_install);
	alloc_failed = false;
	json_t *v = json_loadb(buf, len, flags, je);
	*oom = alloc_failed;
	if (*oom) {
		json_decref(v);
		snprintf(je->text, sizeof(je->text), "out of memory");
		return NULL;
	}
	return v;
}
