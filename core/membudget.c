/* A counting allocator for jansson: each block carries its charge in a
 * header, so a free subtracts exactly what its malloc added.
 *
 * Small blocks come in size classes and are kept on a free list per class
 * when jansson frees them (up to cache_cap bytes in all), so a datagram's
 * 70-odd allocations and frees mostly never reach glibc: a JSON echo spent
 * an eighth of its user time in malloc and free. The classes are chosen so
 * that the charge stays what glibc's malloc uses for the request, cached or
 * not: a class's block is malloc(16c + 8) bytes, which glibc lays out in
 * exactly 16c + 16 (its size word, no padding), the same as charge_of()
 * says for every request of that class. */
#include "config.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "membudget.h"

/* max_align_t's alignment on the platforms we build for: what malloc
 * promises, and so what the block after the header must keep. */
#define HDR 16

/* Blocks whose charge is at most this are pooled: 32 classes, 32 to 528
 * bytes (index charge / 16). */
#define POOL_MAX_CHARGE 528
#define N_CLASSES (POOL_MAX_CHARGE / 16)

/* The header: the charge, and the next free block while on a free list. */
struct hdr {
	size_t charge;
	struct hdr *next;
};

_Static_assert(sizeof(struct hdr) <= HDR, "header larger than its room");

/* AddressSanitizer finds a use after free only while the block waits in
 * its quarantine: no reuse under it. */
#if defined(__SANITIZE_ADDRESS__)
#define DG_MEMBUDGET_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define DG_MEMBUDGET_ASAN 1
#endif
#endif
#ifdef DG_MEMBUDGET_ASAN
#define CACHE_SERVING 0
#else
#define CACHE_SERVING DG_MEMBUDGET_CACHE
#endif

static size_t live;
static size_t cached, cache_cap; /* 0 until a server runs */
static struct hdr *free_list[N_CLASSES + 1];

/* What glibc's malloc uses for n bytes: a size word, 16-byte granules,
 * 32 bytes at least. */
static size_t charge_of(size_t n)
{
	size_t c = (n + HDR + sizeof(size_t) + 15) & ~(size_t)15;
	return c < 32 ? 32 : c;
}

static void *counting_malloc(size_t n)
{
	if (n > SIZE_MAX / 2)
		return NULL;
	size_t charge = charge_of(n);
	struct hdr *h;

	if (charge <= POOL_MAX_CHARGE) {
		struct hdr **head = &free_list[charge / 16];
		h = *head;
		if (h) {
			*head = h->next;
			cached -= charge;
		} else {
			/* charge - 8: what glibc lays out in exactly charge bytes. */
			h = malloc(charge - sizeof(size_t));
			if (!h)
				return NULL;
		}
	} else {
		h = malloc(HDR + n);
		if (!h)
			return NULL;
	}
	h->charge = charge;
	live += charge;
	return (unsigned char *)h + HDR;
}

static void counting_free(void *ptr)
{
	if (!ptr)
		return;
	struct hdr *h = (struct hdr *)((unsigned char *)ptr - HDR);
	size_t charge = h->charge;

	live -= charge;
	if (charge <= POOL_MAX_CHARGE && cached + charge <= cache_cap) {
		struct hdr **head = &free_list[charge / 16];
		h->next = *head;
		*head = h;
		cached += charge;
		return;
	}
	free(h);
}

void dg_membudget_install(void)
{
	json_set_alloc_funcs(counting_malloc, counting_free);
}

size_t dg_membudget_json_live(void)
{
	return live;
}

size_t dg_membudget_cached(void)
{
	return cached;
}

void dg_membudget_set_cache(size_t bytes)
{
	cache_cap = bytes;
	for (unsigned c = 0; c <= N_CLASSES && cached > cache_cap; c++) {
		while (free_list[c] && cached > cache_cap) {
			struct hdr *h = free_list[c];
			free_list[c] = h->next;
			cached -= h->charge;
			free(h);
		}
	}
}

void dg_membudget_serving(bool on)
{
	dg_membudget_set_cache(on ? CACHE_SERVING : 0);
}
