/* The plugin ABI stays what released plugins were built against: every
 * offset and constant the frozen headers (tests/fixtures/abi-1.0, 1.1,
 * 1.2) had is the same in the current <dgramd/plugin.h>, struct dg_packet
 * (embedded in struct dg_request) has its 1.0 size, and append-only
 * structs only grew. The frozen side is compiled from the same rows
 * (tests/fixtures/abi_layout.h) by tests/fixtures/abi_layout.c. */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include <dgramd/plugin.h>

#include "fixtures/abi_layout.h"
#include "testutil.h"

static const struct dg_layout_row current[] = {
	DG_LAYOUT_1_0(DG_LAYOUT_ROW)
	DG_LAYOUT_1_1(DG_LAYOUT_ROW)
	DG_LAYOUT_1_2(DG_LAYOUT_ROW)
	{ NULL, 0, 0 },
};

/* Every row of a frozen version's table against the current header. */
static void compare(const char *version, const struct dg_layout_row *old)
{
	size_t n = 0;

	for (; old[n].expr; n++) {
		const struct dg_layout_row *now = &current[n];
		CU_ASSERT_FATAL(now->expr != NULL);
		CU_ASSERT_STRING_EQUAL_FATAL(now->expr, old[n].expr);
		int ok = old[n].kind == DG_LAYOUT_EQ ? now->value == old[n].value
		                                     : now->value >= old[n].value;
		if (!ok)
			fprintf(stderr, "ABI %s: %s was %zu, now %zu (%s)\n", version, old[n].expr,
			        old[n].value, now->value,
			        old[n].kind == DG_LAYOUT_EQ ? "must not change" : "may only grow");
		CU_ASSERT(ok);
	}
	CU_ASSERT(n > 0);
}

static void test_abi10(void)
{
	compare("1.0", dg_layout_abi10);
}

static void test_abi11(void)
{
	compare("1.1", dg_layout_abi11);
}

static void test_abi12(void)
{
	compare("1.2", dg_layout_abi12);
}

/* The packet and the request members after it, by value: the values the
 * header's _Static_asserts hold the current header to, on this machine. */
static void test_packet_frozen(void)
{
	const struct dg_layout_row *old = dg_layout_abi10;

	for (; old->expr; old++)
		if (!strcmp(old->expr, "sizeof(struct dg_packet)"))
			CU_ASSERT_EQUAL(sizeof(struct dg_packet), old->value);
	CU_ASSERT_EQUAL(offsetof(struct dg_request, peer),
	                offsetof(struct dg_request, packet) + sizeof(struct dg_packet));
}

static const struct dg_test tests[] = {
	{ "the ABI 1.0 header's layout holds", test_abi10 },
	{ "the ABI 1.1 header's layout holds", test_abi11 },
	{ "the ABI 1.2 header's layout holds", test_abi12 },
	{ "struct dg_packet keeps its 1.0 size", test_packet_frozen },
	{ NULL, NULL },
};

DG_TEST_MAIN("abi_layout", tests)
