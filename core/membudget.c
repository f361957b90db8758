/* A counting allocator for jansson: each block carries its charge in a
 * header, so a free subtracts exactly what its malloc added. */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "membudget.h"

/* max_align_t's alignment on the platforms we build for: what malloc
 * promises, and so what the block after the header must keep. */
#define HDR 16

static size_t live;

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
	unsigned char *p = malloc(HDR + n);
	if (!p)
		return NULL;
	memcpy(p, &charge, sizeof(charge));
	live += charge;
	return p + HDR;
}

static void counting_free(void *ptr)
{
	size_t charge;

	if (!ptr)
		return;
	unsigned char *p = (unsigned char *)ptr - HDR;
	memcpy(&charge, p, sizeof(charge));
	live -= charge;
	free(p);
}

void dg_membudget_install(void)
{
	json_set_alloc_funcs(counting_malloc, counting_free);
}

size_t dg_membudget_json_live(void)
{
	return live;
}
