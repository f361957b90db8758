/* The plugin loader against deliberately broken plugins. */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "loader.h"
#include "testutil.h"

static void fixture(const char *name, char *buf, size_t len)
{
	snprintf(buf, len, "%s/tests/fixtures/.libs/%s.so", dg_test_builddir(), name);
}

#define STR_(x) #x
#define STR(x) STR_(x)
#define HOST_ABI STR(DG_PLUGIN_ABI_MAJOR) "." STR(DG_PLUGIN_ABI_MINOR)

/* fixture -> NULL (loads) or what the error must say besides the path. */
static const struct {
	const char *fixture;
	const char *error;
} cases[] = {
	{ "good", NULL },
	{ "abi10", NULL }, /* built against the ABI 1.0 header */
	{ "bad_magic", "wrong magic 0xdeadbeef (expected 0x64675031): not a dgramd plugin" },
	{ "bad_abi", "built for plugin ABI 2.0, this dgramd provides ABI " HOST_ABI " (major versions differ)" },
	{ "newer_minor", "built for plugin ABI 1.99, newer than this dgramd's " HOST_ABI },
	{ "small_struct", "descriptor is 16 bytes, ABI 1.0 needs at least" },
	{ "tiny_symbol", "symbol 'dgramd_plugin' is 8 bytes, too small for a plugin header" },
	{ "no_symbol", "no symbol 'dgramd_plugin': not a dgramd plugin" },
	{ "no_on_packet", "descriptor has no on_packet callback" },
	{ "bad_options", "option 'delay_ms': default '-5': must be 0 .. 600000 (got -5)" },
	{ "bad_option_size", "option_size 8 is not " },
	{ "abi11", NULL }, /* its option table has the 1.1 stride */
};

static void test_fixtures(void)
{
	char path[4096], err[1024], expect[4200];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct dg_loader ld = { 0 };
		const struct dg_plugin *p = NULL;
		fixture(cases[i].fixture, path, sizeof(path));
		err[0] = '\0';
		int rc = dg_loader_load(&ld, path, &p, err, sizeof(err));
		if (!cases[i].error) {
			CU_ASSERT_EQUAL(rc, 0);
			CU_ASSERT_PTR_NOT_NULL(p);
		} else {
			snprintf(expect, sizeof(expect), "plugin '%s': %s", path, cases[i].error);
			if (rc == 0 || strncmp(err, expect, strlen(expect)))
				fprintf(stderr, "%s: expected \"%s\"\n  got \"%s\"\n", cases[i].fixture, expect, err);
			CU_ASSERT_NOT_EQUAL(rc, 0);
			CU_ASSERT_EQUAL(strncmp(err, expect, strlen(expect)), 0);
		}
		dg_loader_release(&ld);
	}
}

/* The host reads nothing of a descriptor past its declared size: a 1.0
 * plugin's descriptor may be followed by anything. */
static void test_fields_past_size(void)
{
	struct dg_loader ld = { 0 };
	const struct dg_plugin *p = NULL;
	char path[4096], err[1024] = "";

	fixture("short_desc", path, sizeof(path));
	CU_ASSERT_EQUAL_FATAL(dg_loader_load(&ld, path, &p, err, sizeof(err)), 0);
	CU_ASSERT_PTR_NOT_NULL(p->on_packet);
	CU_ASSERT_PTR_NULL(p->on_error);
	CU_ASSERT_PTR_NULL(p->on_timeout);
	CU_ASSERT_PTR_NULL(p->on_session_close);
	dg_loader_release(&ld);
}

static void test_not_a_shared_object(void)
{
	struct dg_loader ld = { 0 };
	const struct dg_plugin *p;
	char path[4096], err[1024];

	snprintf(path, sizeof(path), "%s/tests/fixtures/not_a_plugin.txt", dg_test_srcdir());
	CU_ASSERT_NOT_EQUAL(dg_loader_load(&ld, path, &p, err, sizeof(err)), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "cannot load:"));
	CU_ASSERT_PTR_NOT_NULL(strstr(err, path));
	CU_ASSERT_EQUAL(dg_loader_load(&ld, "/nonexistent/x.so", &p, err, sizeof(err)), DG_EINVAL);
	CU_ASSERT_STRING_EQUAL(err, "plugin '/nonexistent/x.so': No such file or directory");
	CU_ASSERT_NOT_EQUAL(dg_loader_load(&ld, "/tmp", &p, err, sizeof(err)), 0);
	CU_ASSERT_STRING_EQUAL(err, "plugin '/tmp': not a regular file");
	dg_loader_release(&ld);
}

static void test_duplicate_name(void)
{
	struct dg_loader ld = { 0 };
	const struct dg_plugin *p1, *p2;
	char echo[4096], dup[4096], err[1024];

	snprintf(echo, sizeof(echo), "%s/plugins/.libs/echo.so", dg_test_builddir());
	fixture("dup_name", dup, sizeof(dup));
	CU_ASSERT_EQUAL_FATAL(dg_loader_load(&ld, echo, &p1, err, sizeof(err)), 0);
	CU_ASSERT_STRING_EQUAL(p1->name, "echo");
	/* The same file twice is one module. */
	CU_ASSERT_EQUAL(dg_loader_load(&ld, echo, &p2, err, sizeof(err)), 0);
	CU_ASSERT_PTR_EQUAL(p1, p2);
	CU_ASSERT_NOT_EQUAL(dg_loader_load(&ld, dup, &p2, err, sizeof(err)), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "plugin name 'echo' is already taken by"));
	dg_loader_release(&ld);
}

static void test_plugin_path(void)
{
	char buf[256];

	dg_plugin_path("echo", "/usr/lib/dgramd", "/etc/dgramd", buf, sizeof(buf));
	CU_ASSERT_STRING_EQUAL(buf, "/usr/lib/dgramd/echo.so");
	dg_plugin_path("./x/p.so", "/usr/lib/dgramd", "/etc/dgramd", buf, sizeof(buf));
	CU_ASSERT_STRING_EQUAL(buf, "/etc/dgramd/./x/p.so");
	dg_plugin_path("/opt/p.so", "/usr/lib/dgramd", "/etc/dgramd", buf, sizeof(buf));
	CU_ASSERT_STRING_EQUAL(buf, "/opt/p.so");
}

static const struct dg_test loader_tests[] = {
	{ "broken fixtures", test_fixtures },
	{ "fields past the declared size are not read", test_fields_past_size },
	{ "not a shared object", test_not_a_shared_object },
	{ "duplicate name", test_duplicate_name },
	{ "plugin path", test_plugin_path },
	{ NULL, NULL },
};

DG_TEST_MAIN("loader", loader_tests)
