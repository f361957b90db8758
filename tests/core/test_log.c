/* The log's escaping helper: network bytes in, printable ASCII out. */
#include "config.h"

#include <string.h>

#include "log.h"
#include "testutil.h"

static void test_escape(void)
{
	static const struct {
		const char *in;
		size_t len;
		size_t cap;
		const char *out;
	} v[] = {
		{ "plain text", 10, 64, "plain text" },
		{ "a\nb", 3, 64, "a\\x0ab" },
		{ "\x1b[31m", 5, 64, "\\x1b[31m" },
		{ "back\\slash", 10, 64, "back\\x5cslash" },
		{ "\x00\x7f\x80\xff", 4, 64, "\\x00\\x7f\\x80\\xff" },
		{ "", 0, 64, "" },
		{ "abcdefgh", 8, 9, "abcdefgh" },      /* fits exactly */
		{ "abcdefghij", 10, 9, "abcde..." },   /* cut, and says so */
		{ "\n\n\n\n", 4, 9, "\\x0a..." },      /* never half an escape */
		{ "abc", 3, 1, "" },
	};
	char buf[64];

	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		const char *r = dg_log_escape(v[i].in, v[i].len, buf, v[i].cap);
		CU_ASSERT_PTR_EQUAL(r, buf);
		if (strcmp(buf, v[i].out))
			fprintf(stderr, "vector %zu: expected '%s', got '%s'\n", i, v[i].out, buf);
		CU_ASSERT_STRING_EQUAL(buf, v[i].out);
		CU_ASSERT(strlen(buf) < v[i].cap);
	}
}

static const struct dg_test log_tests[] = {
	{ "escape", test_escape },
	{ NULL, NULL },
};

DG_TEST_MAIN("log", log_tests)
