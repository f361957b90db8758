/* Declarative plugin options (core/options.c): a table with every type,
 * configs checked against it (each error with its key path), defaults,
 * malformed tables, the -T view, and descriptors too old to have a table. */
#include "config.h"

#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "options.h"
#include "testutil.h"

#define WHERE "t.json: listeners[1].handler.config"

struct all {
	bool flag;
	int64_t delay_ms;
	int64_t any;
	const char *name;
	const char *note;
	int mode;
	struct dg_option_addr up;
	struct dg_option_addr back;
	const json_t *extra;
};

#define O(f) offsetof(struct all, f)
static const struct dg_option all_table[] = {
	{ .name = "flag", .type = DG_OPT_BOOL, .offset = O(flag), .def = "true" },
	{ .name = "delay_ms", .type = DG_OPT_INT, .offset = O(delay_ms), .def = "100",
	  .min = 0, .max = 600000 },
	{ .name = "any", .type = DG_OPT_INT, .offset = O(any) },
	{ .name = "name", .type = DG_OPT_STRING, .offset = O(name), .def = "\"anon\"",
	  .min = 1, .max = 8 },
	{ .name = "note", .type = DG_OPT_STRING, .offset = O(note) },
	{ .name = "mode", .type = DG_OPT_ENUM, .offset = O(mode), .def = "\"peer\"",
	  .choices = "none|peer|all" },
	{ .name = "upstream", .type = DG_OPT_ADDR, .offset = O(up), .flags = DG_OPT_REQUIRED },
	{ .name = "backup", .type = DG_OPT_ADDR, .offset = O(back) },
	{ .name = "extra", .type = DG_OPT_JSON, .offset = O(extra), .def = "{\"a\": [1, 2]}" },
	{ .name = NULL },
};

static struct dg_options *load(const char *text, char *err, size_t errlen, int *rc)
{
	struct dg_options *o = NULL;
	json_t *config = json_loads(text, JSON_ALLOW_NUL, NULL);

	CU_ASSERT_PTR_NOT_NULL_FATAL(config);
	err[0] = '\0';
	*rc = dg_options_new(all_table, sizeof(struct all), config, WHERE, &o, err, errlen);
	json_decref(config); /* the options keep their own reference */
	return o;
}

static void test_table_ok(void)
{
	char err[512] = "";

	CU_ASSERT_EQUAL(dg_options_check(all_table, sizeof(struct all), err, sizeof(err)), DG_OK);
	CU_ASSERT_STRING_EQUAL(err, "");
}

/* Only upstream given: every other field holds its default (or zero). */
static void test_defaults(void)
{
	char err[512];
	int rc;
	struct dg_options *o = load("{\"upstream\": \"127.0.0.1:53\"}", err, sizeof(err), &rc);

	CU_ASSERT_EQUAL_FATAL(rc, DG_OK);
	const struct all *a = dg_options_data(o);
	CU_ASSERT_EQUAL((uintptr_t)a % _Alignof(max_align_t), 0);
	CU_ASSERT(a->flag);
	CU_ASSERT_EQUAL(a->delay_ms, 100);
	CU_ASSERT_EQUAL(a->any, 0);
	CU_ASSERT_STRING_EQUAL(a->name, "anon");
	CU_ASSERT_PTR_NULL(a->note);
	CU_ASSERT_EQUAL(a->mode, 1);
	CU_ASSERT_EQUAL(a->up.len, sizeof(struct sockaddr_in));
	CU_ASSERT_EQUAL(((const struct sockaddr_in *)&a->up.addr)->sin_port, htons(53));
	CU_ASSERT_EQUAL(a->back.len, 0);
	CU_ASSERT_EQUAL(json_integer_value(json_array_get(json_object_get(a->extra, "a"), 1)), 2);
	dg_options_free(o);
}

/* Given values win; strings are the host's (in its reference to the
 * config), valid after the caller's config is gone. */
static void test_given(void)
{
	char err[512];
	int rc;
	struct dg_options *o = load("{\"upstream\": \"[::1]:5300\", \"flag\": false, \"delay_ms\": 600000,"
	                            " \"any\": -9223372036854775807, \"name\": \"12345678\", \"note\": \"\","
	                            " \"mode\": \"all\", \"backup\": \"10.0.0.1:1\", \"extra\": [true]}",
	                            err, sizeof(err), &rc);

	CU_ASSERT_EQUAL_FATAL(rc, DG_OK);
	const struct all *a = dg_options_data(o);
	CU_ASSERT_FALSE(a->flag);
	CU_ASSERT_EQUAL(a->delay_ms, 600000);
	CU_ASSERT_EQUAL(a->any, -9223372036854775807LL);
	CU_ASSERT_STRING_EQUAL(a->name, "12345678");
	CU_ASSERT_STRING_EQUAL(a->note, "");
	CU_ASSERT_EQUAL(a->mode, 2);
	CU_ASSERT_EQUAL(a->up.len, sizeof(struct sockaddr_in6));
	CU_ASSERT_EQUAL(a->up.addr.ss_family, AF_INET6);
	CU_ASSERT_EQUAL(a->back.addr.ss_family, AF_INET);
	CU_ASSERT(json_is_true(json_array_get(a->extra, 0)));
	dg_options_free(o);
}

/* config -> the whole message. */
static const struct {
	const char *config;
	const char *error;
} bad_configs[] = {
	{ "{\"upstream\": \"1.2.3.4:5\", \"delay_ms\": -5}",
	  WHERE ".delay_ms: must be 0 .. 600000 (got -5)" },
	{ "{\"upstream\": \"1.2.3.4:5\", \"delay_ms\": 600001}",
	  WHERE ".delay_ms: must be 0 .. 600000 (got 600001)" },
	{ "{\"upstream\": \"1.2.3.4:5\", \"delay_ms\": \"5\"}",
	  WHERE ".delay_ms: expected an integer (0 .. 600000), got a string" },
	{ "{\"upstream\": \"1.2.3.4:5\", \"delay_ms\": 1.5}",
	  WHERE ".delay_ms: expected an integer (0 .. 600000), got a real number" },
	{ "{\"upstream\": \"1.2.3.4:5\", \"any\": null}",
	  WHERE ".any: expected an integer, got null" },
	{ "{\"upstream\": \"1.2.3.4:5\", \"flag\": 1}",
	  WHERE ".flag: expected true or false, got an integer" },
	{ "{\"upstream\": \"1.2.3.4:5\", \"name\": \"\"}",
	  WHERE ".name: must be 1 .. 8 bytes long (got 0)" },
	{ "{\"upstream\": \"1.2.3.4:5\", \"name\": \"123456789\"}",
	  WHERE ".name: must be 1 .. 8 bytes long (got 9)" },
	{ "{\"upstream\": \"1.2.3.4:5\", \"name\": [\"x\"]}",
	  WHERE ".name: expected a string, got an array" },
	{ "{\"upstream\": \"1.2.3.4:5\", \"note\": \"a\\u0000b\"}",
	  WHERE ".note: NUL byte in string" },
	{ "{\"upstream\": \"1.2.3.4:5\", \"mode\": \"pear\"}",
	  WHERE ".mode: must be \"none\", \"peer\" or \"all\" (got \"pear\"; did you mean \"peer\"?)" },
	{ "{\"upstream\": \"1.2.3.4:5\", \"mode\": \"everything\"}",
	  WHERE ".mode: must be \"none\", \"peer\" or \"all\" (got \"everything\")" },
	{ "{\"upstream\": \"1.2.3.4:5\", \"mode\": 2}",
	  WHERE ".mode: expected \"none\", \"peer\" or \"all\", got an integer" },
	{ "{\"upstream\": \"localhost:53\"}",
	  WHERE ".upstream: expected a numeric \"a.b.c.d:port\" or \"[ipv6]:port\" (got \"localhost:53\")" },
	{ "{\"upstream\": \"1.2.3.4:5\", \"backup\": \"1.2.3.4\\u001b[2J:5\"}",
	  WHERE ".backup: expected a numeric \"a.b.c.d:port\" or \"[ipv6]:port\" (got \"1.2.3.4\\x1b[2J:5\")" },
	{ "{\"upstream\": 53}",
	  WHERE ".upstream: expected a numeric \"a.b.c.d:port\" or \"[ipv6]:port\", got an integer" },
	{ "{}", WHERE ".upstream: missing (required)" },
	{ "{\"upstream\": \"1.2.3.4:5\", \"dealy_ms\": 5}",
	  WHERE ".dealy_ms: unknown key (did you mean 'delay_ms'?)" },
	{ "{\"upstream\": \"1.2.3.4:5\", \"timeout\": 5}",
	  WHERE ".timeout: unknown key (known: flag, delay_ms, any, name, note, mode, upstream, "
	  "backup, extra)" },
};

static void test_bad_configs(void)
{
	char err[512];
	int rc;

	for (size_t i = 0; i < sizeof(bad_configs) / sizeof(bad_configs[0]); i++) {
		struct dg_options *o = load(bad_configs[i].config, err, sizeof(err), &rc);
		if (rc != DG_EINVAL || strcmp(err, bad_configs[i].error))
			fprintf(stderr, "%s\n  expected: %s\n  got:      %s\n", bad_configs[i].config,
			        bad_configs[i].error, err);
		CU_ASSERT_EQUAL(rc, DG_EINVAL);
		CU_ASSERT_PTR_NULL(o);
		CU_ASSERT_STRING_EQUAL(err, bad_configs[i].error);
	}
}

/* No config at all is {}; a table without required keys accepts it. */
static void test_no_config(void)
{
	static const struct dg_option table[] = {
		{ .name = "n", .type = DG_OPT_INT, .offset = 0, .def = "7" },
		{ .name = NULL },
	};
	struct dg_options *o = NULL;
	char err[256];

	CU_ASSERT_EQUAL_FATAL(dg_options_new(table, sizeof(int64_t), NULL, WHERE, &o, err, sizeof(err)),
	                      DG_OK);
	CU_ASSERT_EQUAL(*(const int64_t *)dg_options_data(o), 7);
	dg_options_free(o);
	CU_ASSERT_EQUAL(dg_options_new(all_table, sizeof(struct all), NULL, WHERE, &o, err, sizeof(err)),
	                DG_EINVAL);
	CU_ASSERT_STRING_EQUAL(err, WHERE ".upstream: missing (required)");
	dg_options_free(NULL);
	CU_ASSERT_PTR_NULL(dg_options_data(NULL));
}

/* What -T prints: every option in table order, defaults filled in, unset
 * strings and addresses left out; and it passes the check again. */
static void test_dump(void)
{
	char err[512];
	int rc;
	struct dg_options *o = load("{\"upstream\": \"127.0.0.1:53\", \"mode\": \"none\"}", err,
	                            sizeof(err), &rc);

	CU_ASSERT_EQUAL_FATAL(rc, DG_OK);
	json_t *j = dg_options_dump(o);
	CU_ASSERT_PTR_NOT_NULL_FATAL(j);
	char *text = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER);
	CU_ASSERT_STRING_EQUAL(text, "{\"flag\":true,\"delay_ms\":100,\"any\":0,\"name\":\"anon\","
	                             "\"mode\":\"none\",\"upstream\":\"127.0.0.1:53\",\"extra\":{\"a\":[1,2]}}");
	free(text);
	struct dg_options *again = NULL;
	CU_ASSERT_EQUAL(dg_options_new(all_table, sizeof(struct all), j, WHERE, &again, err,
	                               sizeof(err)), DG_OK);
	CU_ASSERT_EQUAL(memcmp(dg_options_data(again), dg_options_data(o), offsetof(struct all, name)), 0);
	dg_options_free(again);
	json_decref(j);
	dg_options_free(o);
}

/* Malformed tables: the message names the option and what is wrong. */
struct two {
	int64_t a;
	int64_t b;
};

static const struct {
	struct dg_option opt; /* checked after a good "first" at offset 0 */
	size_t size;
	const char *error;
} bad_tables[] = {
	{ { .name = "x", .type = 9, .offset = 8 }, sizeof(struct two), "option 'x': unknown type 9" },
	{ { .name = "x", .type = 0, .offset = 8 }, sizeof(struct two), "option 'x': unknown type 0" },
	{ { .name = "", .type = DG_OPT_INT, .offset = 8 }, sizeof(struct two), "option '': empty name" },
	{ { .name = "x", .type = DG_OPT_INT, .offset = 8, .flags = 4 }, sizeof(struct two),
	  "option 'x': unknown flags 0x4" },
	{ { .name = "x", .type = DG_OPT_INT, .offset = 16 }, sizeof(struct two),
	  "option 'x': offset 16 + 8 bytes is past options_size 16" },
	{ { .name = "x", .type = DG_OPT_INT, .offset = 12 }, 24,
	  "option 'x': offset 12 is not aligned for DG_OPT_INT" },
	{ { .name = "x", .type = DG_OPT_BOOL, .offset = 7 }, sizeof(struct two),
	  "option 'x': field (offset 7) overlaps option 'first' (offset 0)" },
	{ { .name = "first", .type = DG_OPT_INT, .offset = 8 }, sizeof(struct two),
	  "option 'first': declared twice" },
	{ { .name = "x", .type = DG_OPT_INT, .offset = 8, .min = 5, .max = 1 }, sizeof(struct two),
	  "option 'x': min 5 is above max 1" },
	{ { .name = "x", .type = DG_OPT_STRING, .offset = 8, .min = -1, .max = 1 }, sizeof(struct two),
	  "option 'x': length limits -1 .. 1 are not 0 <= min <= max" },
	{ { .name = "x", .type = DG_OPT_ENUM, .offset = 8 }, sizeof(struct two),
	  "option 'x': DG_OPT_ENUM without choices" },
	{ { .name = "x", .type = DG_OPT_ENUM, .offset = 8, .choices = "a||b" }, sizeof(struct two),
	  "option 'x': empty choice in \"a||b\"" },
	{ { .name = "x", .type = DG_OPT_INT, .offset = 8, .def = "-5", .min = 0, .max = 600000 },
	  sizeof(struct two), "option 'x': default '-5': must be 0 .. 600000 (got -5)" },
	{ { .name = "x", .type = DG_OPT_INT, .offset = 8, .def = "\"5\"" }, sizeof(struct two),
	  "option 'x': default '\"5\"': expected an integer, got a string" },
	{ { .name = "x", .type = DG_OPT_STRING, .offset = 8, .def = "anon" }, sizeof(struct two),
	  "option 'x': default 'anon' is not JSON text" },
	{ { .name = "x", .type = DG_OPT_ENUM, .offset = 8, .def = "\"c\"", .choices = "a|b" },
	  sizeof(struct two), "option 'x': default '\"c\"': must be \"a\" or \"b\" (got \"c\")" },
	{ { .name = "x", .type = DG_OPT_ADDR, .offset = 8, .def = "\"here:1\"" }, 8 + sizeof(struct dg_option_addr),
	  "option 'x': default '\"here:1\"': expected a numeric" },
	{ { .name = "x", .type = DG_OPT_INT, .offset = 8, .def = "1", .flags = DG_OPT_REQUIRED },
	  sizeof(struct two), "option 'x': DG_OPT_REQUIRED with a default ('1'): drop one" },
	{ { .name = "x", .type = DG_OPT_INT, .offset = 8, .min = 1, .max = 10 }, sizeof(struct two),
	  "option 'x': no default, and 0 is outside 1 .. 10" },
};

static void test_bad_tables(void)
{
	char err[512];

	for (size_t i = 0; i < sizeof(bad_tables) / sizeof(bad_tables[0]); i++) {
		struct dg_option table[3] = {
			{ .name = "first", .type = DG_OPT_INT, .offset = 0, .def = "1" },
			bad_tables[i].opt,
			{ .name = NULL },
		};
		err[0] = '\0';
		int rc = dg_options_check(table, bad_tables[i].size, err, sizeof(err));
		if (rc == DG_OK || strncmp(err, bad_tables[i].error, strlen(bad_tables[i].error)))
			fprintf(stderr, "table %zu: expected \"%s\"\n  got \"%s\"\n", i, bad_tables[i].error, err);
		CU_ASSERT_EQUAL(rc, DG_EINVAL);
		CU_ASSERT_EQUAL(strncmp(err, bad_tables[i].error, strlen(bad_tables[i].error)), 0);
	}
}

static void test_bad_sizes(void)
{
	static const struct dg_option table[] = { { .name = NULL } };
	char err[256];

	CU_ASSERT_EQUAL(dg_options_check(table, 0, err, sizeof(err)), DG_EINVAL);
	CU_ASSERT_STRING_EQUAL(err, "options_size 0 is not 1 .. 1048576");
	CU_ASSERT_EQUAL(dg_options_check(table, DG_OPTIONS_SIZE_MAX + 1, err, sizeof(err)), DG_EINVAL);
	CU_ASSERT_EQUAL(dg_options_check(table, 8, err, sizeof(err)), DG_OK);
}

/* A table without its { NULL } end runs into whatever follows; the check
 * stops after DG_OPTIONS_MAX entries instead of running on for ever. */
static void test_unterminated(void)
{
	struct dg_option *table = calloc(DG_OPTIONS_MAX + 1, sizeof(*table));
	char names[DG_OPTIONS_MAX + 1][8], err[256];

	CU_ASSERT_PTR_NOT_NULL_FATAL(table);
	for (int i = 0; i <= DG_OPTIONS_MAX; i++) {
		snprintf(names[i], sizeof(names[i]), "o%d", i);
		table[i] = (struct dg_option){ .name = names[i], .type = DG_OPT_BOOL, .offset = (size_t)i };
	}
	CU_ASSERT_EQUAL(dg_options_check(table, DG_OPTIONS_MAX + 1, err, sizeof(err)), DG_EINVAL);
	CU_ASSERT(strstr(err, "more than 256 options") != NULL);
	free(table);
}

static int on_packet(void *state, const struct dg_request *req)
{
	(void)state, (void)req;
	return DG_DONE;
}

/* A descriptor whose size field stops before .options (built before 1.1)
 * has no table, whatever follows it in memory. */
static void test_old_descriptor(void)
{
	struct dg_plugin p = {
		DG_PLUGIN_HEADER, .name = "old", .on_packet = on_packet,
		.options = all_table, .options_size = sizeof(struct all),
	};
	size_t size = 99;

	CU_ASSERT_PTR_EQUAL(dg_plugin_options(&p, &size), all_table);
	CU_ASSERT_EQUAL(size, sizeof(struct all));
	p.size = offsetof(struct dg_plugin, options);
	CU_ASSERT_PTR_NULL(dg_plugin_options(&p, &size));
	CU_ASSERT_EQUAL(size, 0);
	p.size = sizeof(p);
	p.options = NULL;
	CU_ASSERT_PTR_NULL(dg_plugin_options(&p, &size));
}

/* An option of a later ABI: struct dg_option with fields appended, which
 * this host does not know. */
struct wide_option {
	struct dg_option o; /* what this host knows, where it expects it */
	uint64_t later;     /* appended after this host */
	const char *later_text;
};

/* all_table again, each entry a struct wide_option apart */
static struct wide_option wide_table[sizeof(all_table) / sizeof(all_table[0])];

/* p's table (all_table's entries, in whatever stride) read, compared with
 * all_table: every field this host knows read, nothing else, and a config
 * checked and filled with it as with all_table. */
static void check_import(const struct dg_plugin *p)
{
	struct dg_option *t = NULL;
	struct dg_options *opts = NULL;
	size_t size = 0, n = sizeof(all_table) / sizeof(all_table[0]);
	char err[512] = "";

	CU_ASSERT_EQUAL_FATAL(dg_options_import(p, &t, &size, err, sizeof(err)), DG_OK);
	CU_ASSERT_PTR_NOT_NULL_FATAL(t);
	CU_ASSERT_EQUAL(size, sizeof(struct all));
	for (size_t i = 0; i < n; i++) {
		const struct dg_option *want = &all_table[i];
		CU_ASSERT_PTR_EQUAL(t[i].name, want->name);
		CU_ASSERT_EQUAL(t[i].type, want->type);
		CU_ASSERT_EQUAL(t[i].offset, want->offset);
		CU_ASSERT_PTR_EQUAL(t[i].def, want->def);
		CU_ASSERT(t[i].min == want->min && t[i].max == want->max);
		CU_ASSERT_PTR_EQUAL(t[i].choices, want->choices);
		CU_ASSERT_EQUAL(t[i].flags, want->flags);
		CU_ASSERT_PTR_EQUAL(t[i].help, want->help);
	}
	CU_ASSERT_EQUAL(dg_options_check(t, size, err, sizeof(err)), DG_OK);
	json_t *config = json_pack("{ss}", "upstream", "10.0.0.1:53");
	CU_ASSERT_PTR_NOT_NULL_FATAL(config);
	CU_ASSERT_EQUAL(dg_options_new(t, size, config, WHERE, &opts, err, sizeof(err)), DG_OK);
	const struct all *a = dg_options_data(opts);
	CU_ASSERT_FATAL(a != NULL);
	CU_ASSERT(a->flag && a->delay_ms == 100 && !strcmp(a->name, "anon") && a->mode == 1);
	CU_ASSERT_EQUAL(a->up.len, sizeof(struct sockaddr_in));
	dg_options_free(opts);
	json_decref(config);
	free(t);
}

/* ABI 1.3: a table's entries are dg_plugin.option_size bytes apart. A
 * plugin built with a larger struct dg_option (a later ABI's, declaring an
 * older .abi_minor) has its table walked with its stride and the fields
 * this host does not know ignored; one built before option_size existed
 * (or that says 0) is walked with the 1.1 struct's size. */
static void test_import_strides(void)
{
	struct dg_plugin p = {
		DG_PLUGIN_HEADER, .name = "wide", .on_packet = on_packet,
		.options = &wide_table[0].o, .options_size = sizeof(struct all),
	};
	size_t n = sizeof(all_table) / sizeof(all_table[0]), size;
	struct dg_option *t, dummy;
	char err[256] = "";

	p.option_size = sizeof(struct wide_option);
	for (size_t i = 0; i < n; i++)
		wide_table[i] = (struct wide_option){ .o = all_table[i], .later = ~0ull,
		                                      .later_text = "not for this host" };
	check_import(&p);
	/* dg_plugin_options reads only tables in the host's layout */
	CU_ASSERT_PTR_NULL(dg_plugin_options(&p, &size));

	/* built before 1.3: the descriptor ends before option_size */
	p = (struct dg_plugin){ DG_PLUGIN_HEADER, .name = "old", .on_packet = on_packet,
	                        .options = all_table, .options_size = sizeof(struct all) };
	p.option_size = 12345; /* past size: never read */
	p.size = offsetof(struct dg_plugin, option_size);
	check_import(&p);
	p.size = sizeof(p);
	p.option_size = 0; /* 0: the 1.1 struct too */
	check_import(&p);

	/* smaller than the 1.1 struct, or absurdly large: refused */
	p.option_size = 16;
	t = &dummy; /* must be reset */
	CU_ASSERT_EQUAL(dg_options_import(&p, &t, &size, err, sizeof(err)), DG_EINVAL);
	CU_ASSERT_PTR_NULL(t);
	CU_ASSERT(!strncmp(err, "option_size 16 is not ", 22));
	p.option_size = DG_OPTION_SIZE_MAX + 8;
	CU_ASSERT_EQUAL(dg_options_import(&p, &t, &size, err, sizeof(err)), DG_EINVAL);

	/* no table, or a descriptor from before options: nothing, DG_OK */
	p.option_size = sizeof(struct dg_option);
	p.options = NULL;
	CU_ASSERT_EQUAL(dg_options_import(&p, &t, &size, err, sizeof(err)), DG_OK);
	CU_ASSERT_PTR_NULL(t);
	p.options = all_table;
	p.size = offsetof(struct dg_plugin, options);
	CU_ASSERT_EQUAL(dg_options_import(&p, &t, &size, err, sizeof(err)), DG_OK);
	CU_ASSERT_PTR_NULL(t);
	CU_ASSERT_EQUAL(size, 0);
}

/* A wide table without its { NULL } end stops after DG_OPTIONS_MAX. */
static void test_import_unterminated(void)
{
	size_t n = DG_OPTIONS_MAX + 1, size;
	struct wide_option *w = calloc(n, sizeof(*w));
	struct dg_option *t;
	char err[256] = "";

	CU_ASSERT_PTR_NOT_NULL_FATAL(w);
	for (size_t i = 0; i < n; i++)
		w[i].o = (struct dg_option){ .name = "o", .type = DG_OPT_BOOL };
	struct dg_plugin p = { DG_PLUGIN_HEADER, .name = "w", .on_packet = on_packet,
	                       .options = &w[0].o, .options_size = 8 };
	p.option_size = sizeof(*w);
	CU_ASSERT_EQUAL(dg_options_import(&p, &t, &size, err, sizeof(err)), DG_EINVAL);
	CU_ASSERT(strstr(err, "more than 256 options") != NULL);
	free(w);
}

static const struct dg_test tests[] = {
	{ "a table with every type passes the check", test_table_ok },
	{ "defaults fill what the config leaves out", test_defaults },
	{ "given values, copies of strings", test_given },
	{ "bad configs: each error with its key path", test_bad_configs },
	{ "no config object", test_no_config },
	{ "the -T view", test_dump },
	{ "malformed tables are refused", test_bad_tables },
	{ "options_size limits", test_bad_sizes },
	{ "a table without its end", test_unterminated },
	{ "a descriptor from before options", test_old_descriptor },
	{ "tables of a larger and of the 1.1 struct dg_option", test_import_strides },
	{ "a wide table without its end", test_import_unterminated },
	{ NULL, NULL },
};

DG_TEST_MAIN("options", tests)
