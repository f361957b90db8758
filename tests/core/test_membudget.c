/* The daemon's counting allocator for jansson (core/membudget.c): each
 * block is charged what glibc's malloc lays out for it, cached or not; freed
 * small blocks are reused within a bounded cache; everything charged comes
 * back on free. */
#include "config.h"

#include <malloc.h>
#include <stdint.h>
#include <string.h>

#include <jansson.h>

#include "membudget.h"
#include "testutil.h"

#if defined(__SANITIZE_ADDRESS__)
#define DG_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define DG_ASAN 1
#endif
#endif

static json_malloc_t m;
static json_free_t f;

static void install(size_t cache)
{
	dg_membudget_install();
	json_get_alloc_funcs(&m, &f);
	dg_membudget_set_cache(cache);
}

/* For every size up to past the largest class: the charge is glibc's chunk
 * (usable size + its size word), the block is aligned and usable to its
 * end, and a free gives the charge back. */
static void charges_exact(size_t cache)
{
	install(cache);
	size_t start = dg_membudget_json_live();
	for (size_t n = 0; n <= 1100; n++) {
		unsigned char *p = m(n);
		CU_ASSERT_PTR_NOT_NULL_FATAL(p);
		size_t charge = dg_membudget_json_live() - start;
		CU_ASSERT_EQUAL((uintptr_t)p % 16, 0);
		CU_ASSERT(charge >= n + 24 && charge % 16 == 0 && charge < n + 24 + 16 + 16);
#ifndef DG_ASAN
		/* 16 bytes of header before p; glibc's size word before that */
		CU_ASSERT_EQUAL(malloc_usable_size(p - 16) + sizeof(size_t), charge);
#endif
		memset(p, 0xa5, n);
		f(p);
		CU_ASSERT_EQUAL(dg_membudget_json_live(), start);
	}
	dg_membudget_set_cache(0);
}

static void test_charges_uncached(void)
{
	charges_exact(0);
}

static void test_charges_cached(void)
{
	charges_exact(DG_MEMBUDGET_CACHE);
}

/* The same sizes charge the same with and without reuse. */
static void test_same_charge(void)
{
	static const size_t sizes[] = { 0, 1, 8, 9, 24, 40, 41, 100, 496, 504, 505, 512, 4000 };
	size_t cold[sizeof(sizes) / sizeof(sizes[0])];

	for (int pass = 0; pass < 2; pass++) {
		install(pass ? DG_MEMBUDGET_CACHE : 0);
		for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
			/* twice: the second comes from the cache when it is on */
			for (int k = 0; k < 2; k++) {
				size_t before = dg_membudget_json_live();
				void *p = m(sizes[i]);
				CU_ASSERT_PTR_NOT_NULL_FATAL(p);
				size_t charge = dg_membudget_json_live() - before;
				if (pass == 0 && k == 0)
					cold[i] = charge;
				CU_ASSERT_EQUAL(charge, cold[i]);
				f(p);
				CU_ASSERT_EQUAL(dg_membudget_json_live(), before);
			}
		}
	}
	dg_membudget_set_cache(0);
}

/* A freed small block is the next one of its class; the cache holds what it
 * says and never more than its cap; 0 empties it. */
static void test_reuse_bounded(void)
{
	enum { N = 1000 };
	static void *blocks[N];

	install(4096);
	CU_ASSERT_EQUAL(dg_membudget_cached(), 0);
	void *a = m(40);
	size_t live = dg_membudget_json_live();
	f(a);
	CU_ASSERT_EQUAL(dg_membudget_cached(), 64); /* charge of 40 bytes */
	void *b = m(33); /* same class */
	CU_ASSERT_PTR_EQUAL(a, b);
	CU_ASSERT_EQUAL(dg_membudget_cached(), 0);
	CU_ASSERT_EQUAL(dg_membudget_json_live(), live);
	f(b);
	/* large blocks are never cached */
	void *big = m(4000);
	f(big);
	CU_ASSERT_EQUAL(dg_membudget_cached(), 64);
	for (int i = 0; i < N; i++) {
		blocks[i] = m(100);
		CU_ASSERT_PTR_NOT_NULL_FATAL(blocks[i]);
	}
	for (int i = 0; i < N; i++)
		f(blocks[i]);
	CU_ASSERT(dg_membudget_cached() <= 4096);
	CU_ASSERT(dg_membudget_cached() > 4096 - 128);
	dg_membudget_set_cache(1000);
	CU_ASSERT(dg_membudget_cached() <= 1000);
	dg_membudget_set_cache(0);
	CU_ASSERT_EQUAL(dg_membudget_cached(), 0);
	CU_ASSERT_EQUAL(dg_membudget_json_live(), live - 64);
}

/* A server keeps the cache while it runs and empties it when released
 * (so a worker that exits has freed every block, as valgrind checks). */
static void test_serving(void)
{
	install(0);
	dg_membudget_serving(true);
	f(m(40));
#ifdef DG_ASAN
	CU_ASSERT_EQUAL(dg_membudget_cached(), 0); /* no reuse under ASan */
#else
	CU_ASSERT_EQUAL(dg_membudget_cached(), 64);
#endif
	dg_membudget_serving(false);
	CU_ASSERT_EQUAL(dg_membudget_cached(), 0);
	f(m(40));
	CU_ASSERT_EQUAL(dg_membudget_cached(), 0);
}

/* jansson's own values through it: a parse charges, a decref gives back. */
static void test_jansson_values(void)
{
	install(DG_MEMBUDGET_CACHE);
	size_t start = dg_membudget_json_live();
	for (int i = 0; i < 3; i++) {
		json_t *v = json_loads("{\"a\":[1,2.5,\"three\"],\"b\":{\"c\":null}}", 0, NULL);
		CU_ASSERT_PTR_NOT_NULL_FATAL(v);
		CU_ASSERT(dg_membudget_json_live() > start);
		json_decref(v);
		CU_ASSERT_EQUAL(dg_membudget_json_live(), start);
	}
	dg_membudget_set_cache(0);
}

static const struct dg_test tests[] = {
	{ "charges are glibc's layout, without the cache", test_charges_uncached },
	{ "charges are glibc's layout, with the cache", test_charges_cached },
	{ "same charge with and without reuse", test_same_charge },
	{ "reuse within a bounded cache", test_reuse_bounded },
	{ "cache while serving, empty after", test_serving },
	{ "jansson values charge and give back", test_jansson_values },
	{ NULL, NULL },
};

DG_TEST_MAIN("membudget", tests)
