/* Config parser: good configs and every error kind, with its message. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <dgramd/codec.h>

#include "conf.h"
#include "testutil.h"

/* A listeners array with one listener: bind value, handler value, more keys. */
#define BODY3(bind, handler, extra) \
	"\"listeners\": [{\"name\": \"a\", \"bind\": " bind ", \"handler\": " handler extra "}]"
#define BODY(extra) BODY3("\"127.0.0.1:0\"", "\"echo\"", extra)
#define LISTENER(extra) "{" BODY(extra) "}"
#define WITH_BIND(bind) "{" BODY3(bind, "\"echo\"", "") "}"
#define WITH_HANDLER(h) "{" BODY3("\"127.0.0.1:0\"", h, "") "}"

/* config text -> NULL (valid) or a substring the error must contain. */
static const struct {
	const char *text;
	const char *error;
} vectors[] = {
	{ LISTENER(""), NULL },
	{ "// comment\n# another\n" LISTENER("") " // trailing\n", NULL },
	{ LISTENER(", \"codec\": \"length-prefixed\""), NULL },
	{ LISTENER(", \"codec\": {\"framing\": \"length-prefixed\", \"width\": 4, \"payload\": \"json\"}"), NULL },
	{ WITH_BIND("[\"127.0.0.1:0\", \"[::1]:0\"]"), NULL },
	{ "{\"log\": {\"level\": \"debug\"}, \"listeners\": [{\"name\": \"dns-1.main_v4\", "
	  "\"bind\": \"0.0.0.0:53\", \"handler\": {\"plugin\": \"./p.so\", \"config\": {\"k\": \"http://x#y//z\"}}}]}", NULL },
	/* syntax errors name line and column */
	{ "{\n  \"listeners\": [\n    {\"name\": \"a\",,}\n  ]\n}", "t.json: line 3, column" },
	{ "", "t.json: line 1, column 0" },
	{ "{\"listeners\": [], \"listeners\": []}", "duplicate object key" },
	/* unknown keys, with the path and a suggestion */
	{ "{\"listners\": []}", "t.json: listners: unknown key (did you mean 'listeners'?)" },
	{ LISTENER(", \"max_datagrm\": 5"), "listeners[0].max_datagrm: unknown key (did you mean 'max_datagram'?)" },
	{ LISTENER(", \"zzzzzzz\": 5"), "listeners[0].zzzzzzz: unknown key" },
	{ "{\"log\": {\"lvl\": \"info\"}, " BODY("") "}", "log.lvl: unknown key" },
	/* wrong types and ranges */
	{ LISTENER(", \"max_datagram\": \"big\""), "listeners[0].max_datagram: expected an integer from 1 to 65507" },
	{ LISTENER(", \"max_datagram\": 70000"), "listeners[0].max_datagram: expected an integer from 1 to 65507" },
	{ "{\"memory_budget\": 1000, " BODY("") "}", "t.json: memory_budget: expected a number of bytes from 1048576 to 1099511627776" },
	{ "{\"memory_budget\": \"64M\", " BODY("") "}", "t.json: memory_budget: expected a number of bytes from" },
	{ "{\"memory_budget\": 1048576, " BODY("") "}", NULL },
	{ LISTENER(", \"reuseport\": 1"), "listeners[0].reuseport: no longer a setting: every socket "
	  "has SO_REUSEPORT (delete the key)" },
	{ LISTENER(", \"reuseport\": true"), "listeners[0].reuseport: no longer a setting: every "
	  "socket has SO_REUSEPORT (delete the key)" },
	{ LISTENER(", \"peer_concurrency\": 0"), "listeners[0].peer_concurrency: expected an integer from 1 to 65536" },
	{ LISTENER(", \"peer_concurrency\": 65536"), NULL },
	{ "{\"log\": {\"level\": \"loud\"}, " BODY("") "}", "log.level: expected \"error\"" },
	{ "{\"listeners\": {}}", "listeners: expected a non-empty array" },
	{ "[]", "(top level): expected an object" },
	/* codec specs */
	{ LISTENER(", \"codec\": {\"framing\": \"length-prefixed\", \"width\": 3}"), "listeners[0].codec.width: expected 1, 2 or 4" },
	{ LISTENER(", \"codec\": \"yaml\""), "listeners[0].codec: unknown codec 'yaml'" },
	{ LISTENER(", \"codec\": {\"payload\": \"json\", \"width\": 2}"), "listeners[0].codec.width: unknown key" },
	{ LISTENER(", \"codec\": {\"payload\": \"json\", \"max_depth\": 0}"), "listeners[0].codec.max_depth: expected an integer" },
	{ LISTENER(", \"codec\": {\"framing\": \"length-prefixed\", \"endian\": \"middle\"}"), "listeners[0].codec.endian: expected \"big\" or \"little\"" },
	{ LISTENER(", \"codec\": 7"), "listeners[0].codec: expected a codec name or an object" },
	/* required keys, addresses, uniqueness */
	{ "{\"listeners\": [{\"name\": \"a\", \"bind\": \"127.0.0.1:0\"}]}", "listeners[0].handler: missing (required)" },
	{ "{\"log\": {}}", "listeners: missing (required)" },
	{ WITH_BIND("[\"127.0.0.1:0\", \"localhost:53\"]"), "listeners[0].bind[1]: expected a numeric" },
	{ WITH_BIND("\"127.0.0.1:65536\""), "listeners[0].bind: expected a numeric" },
	{ WITH_BIND("\"::1:53\""), "listeners[0].bind: expected a numeric" },
	{ WITH_BIND("[]"), "listeners[0].bind: expected \"host:port\"" },
	{ "{\"listeners\": [{\"name\": \"a\", \"bind\": \"127.0.0.1:0\", \"handler\": \"echo\"},"
	  "{\"name\": \"a\", \"bind\": \"127.0.0.1:0\", \"handler\": \"echo\"}]}", "listeners[1].name: listener name 'a' is already used by listeners[0]" },
	{ "{\"listeners\": [{\"name\": \"a\", \"bind\": \"127.0.0.1:99\", \"handler\": \"echo\"},"
	  "{\"name\": \"b\", \"bind\": \"127.0.0.1:99\", \"handler\": \"echo\"}]}", "listeners[1].bind: '127.0.0.1:99' is already bound by listeners[0]" },
	/* the same address twice in one listener, or a wildcard over another's port */
	{ WITH_BIND("[\"127.0.0.1:99\", \"[::1]:99\", \"127.0.0.1:99\"]"),
	  "listeners[0].bind[2]: '127.0.0.1:99' is already bound by bind[0] of this listener" },
	{ WITH_BIND("[\"[::1]:99\", \"[::]:99\"]"),
	  "listeners[0].bind[1]: '[::]:99' is already bound by bind[0] of this listener (as '[::1]:99')" },
	{ WITH_BIND("[\"127.0.0.1:0\", \"127.0.0.1:0\", \"0.0.0.0:0\"]"), NULL }, /* port 0: fresh ports */
	{ WITH_BIND("[\"127.0.0.1:99\", \"127.0.0.2:99\", \"[::]:99\"]"), NULL },
	{ "{\"listeners\": [{\"name\": \"a\", \"bind\": \"0.0.0.0:98\", \"handler\": \"echo\"},"
	  "{\"name\": \"b\", \"bind\": [\"127.0.0.1:97\", \"127.0.0.9:98\"], \"handler\": \"echo\"}]}",
	  "listeners[1].bind[1]: '127.0.0.9:98' is already bound by listeners[0] (as '0.0.0.0:98')" },
	/* listener names cannot forge log or stats lines */
	{ "{\"listeners\": [{\"name\": \"a\\nb\", \"bind\": \"127.0.0.1:0\", \"handler\": \"echo\"}]}",
	  "listeners[0].name: expected 1 to 64 letters, digits, '_', '.' or '-', got 'a\\x0ab'" },
	{ "{\"listeners\": [{\"name\": \"t rx=5\", \"bind\": \"127.0.0.1:0\", \"handler\": \"echo\"}]}",
	  "listeners[0].name: expected 1 to 64 letters" },
	{ "{\"listeners\": [{\"name\": \"\", \"bind\": \"127.0.0.1:0\", \"handler\": \"echo\"}]}",
	  "listeners[0].name: expected 1 to 64 letters" },
	{ "{\"listeners\": [{\"name\": \"x_______________________________________________________________1\", "
	  "\"bind\": \"127.0.0.1:0\", \"handler\": \"echo\"}]}", "listeners[0].name: expected 1 to 64 letters" },
	{ "{\"listeners\": [{\"name\": 7, \"bind\": \"127.0.0.1:0\", \"handler\": \"echo\"}]}",
	  "listeners[0].name: expected 1 to 64 letters, digits, '_', '.' or '-'" },
	{ WITH_HANDLER("{\"plugin\": \"\"}"), "listeners[0].handler.plugin: expected a non-empty string" },
	{ WITH_HANDLER("{\"plugin\": \"echo\", \"config\": []}"), "listeners[0].handler.config: expected an object" },
};

static void test_vectors(void)
{
	char err[1024];

	for (size_t i = 0; i < sizeof(vectors) / sizeof(vectors[0]); i++) {
		struct dg_config *cfg = NULL;
		err[0] = '\0';
		int rc = dg_config_parse(vectors[i].text, strlen(vectors[i].text), "t.json", "/etc", "/nonexistent",
		                         &cfg, err, sizeof(err));
		if (!vectors[i].error) {
			if (rc != 0)
				fprintf(stderr, "vector %zu: unexpected error: %s\n", i, err);
			CU_ASSERT_EQUAL(rc, 0);
			CU_ASSERT_PTR_NOT_NULL(cfg);
		} else {
			if (rc == 0 || !strstr(err, vectors[i].error))
				fprintf(stderr, "vector %zu: expected '%s', got rc %d '%s'\n", i,
				        vectors[i].error, rc, err);
			CU_ASSERT_NOT_EQUAL(rc, 0);
			CU_ASSERT_PTR_NULL(cfg);
			CU_ASSERT_PTR_NOT_NULL(strstr(err, vectors[i].error));
		}
		dg_config_free(cfg);
	}
}

static void test_values(void)
{
	static const char text[] =
		"{\"max_pending\": 10, \"listeners\": [{\"name\": \"x\", \"bind\": [\"127.0.0.1:7\", \"[::1]:8\"],"
		" \"handler\": {\"plugin\": \"echo\", \"config\": {\"prefix\": \">\"}},"
		" \"max_datagram\": 512, \"rcvbuf\": 65536}]}";
	struct dg_config *cfg;
	char err[512], buf[64];

	CU_ASSERT_EQUAL_FATAL(dg_config_parse(text, sizeof(text) - 1, "t", "/d", "/p", &cfg, err, sizeof(err)), 0);
	CU_ASSERT_EQUAL(cfg->max_pending, 10);
	CU_ASSERT_EQUAL(cfg->shutdown_timeout_ms, DG_DEFAULT_SHUTDOWN_MS);
	CU_ASSERT_EQUAL(cfg->memory_budget, DG_DEFAULT_MEMORY_BUDGET);
	CU_ASSERT_EQUAL(cfg->n_listeners, 1);
	struct dg_listener_conf *l = &cfg->listeners[0];
	CU_ASSERT_STRING_EQUAL(l->name, "x");
	CU_ASSERT_EQUAL(l->n_binds, 2);
	CU_ASSERT_STRING_EQUAL(dg_addr_format((struct sockaddr *)&l->binds[0].ss, buf, sizeof(buf)), "127.0.0.1:7");
	CU_ASSERT_STRING_EQUAL(dg_addr_format((struct sockaddr *)&l->binds[1].ss, buf, sizeof(buf)), "[::1]:8");
	CU_ASSERT_EQUAL(l->max_datagram, 512);
	CU_ASSERT_EQUAL(l->send_queue, DG_DEFAULT_SEND_QUEUE);
	CU_ASSERT_EQUAL(l->rcvbuf, 65536);
	CU_ASSERT_STRING_EQUAL(l->plugin, "echo");
	CU_ASSERT_STRING_EQUAL(json_string_value(l->codec), "json"); /* the default */
	CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(l->plugin_config, "prefix")), ">");
	dg_config_free(cfg);
}

static void test_comments(void)
{
	char text[] = "{\"a\": \"x // y # z\", // c1\n# c2\n\"b\": \"\\\"#\"} # end";
	dg_config_strip_comments(text, strlen(text));
	CU_ASSERT_STRING_EQUAL(text, "{\"a\": \"x // y # z\",      \n    \n\"b\": \"\\\"#\"}      ");
}

/* -T shows each transform with every option, defaults filled in (zlib and
 * bz2's max_decoded from the listener's max_datagram), and base64's
 * key_file, never the key. */
static void test_dump_transforms(void)
{
	/* A 32-byte key, url-safe base64: "key" x 10 + "ke" */
	static const char key[] = "a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2U=";
	char kf[4096];

	snprintf(kf, sizeof(kf), "%s", dg_test_write("dump.key", key));
	char text[8192], err[512];
	struct dg_config *cfg;

	snprintf(text, sizeof(text),
	         "{\"listeners\": [{\"name\": \"a\", \"bind\": \"127.0.0.1:0\", \"handler\": \"echo\","
	         " \"max_datagram\": 1000, \"codec\": {\"payload\": \"msgpack\", \"transforms\": [\"base64\","
	         " {\"name\": \"zlib\", \"level\": 6}, \"bz2\"]}},"
	         " {\"name\": \"b\", \"bind\": \"127.0.0.1:0\", \"handler\": \"echo\", \"codec\":"
	         " {\"payload\": \"json\", \"transforms\": [{\"name\": \"base64\", \"alphabet\": \"standard\","
	         " \"checksum\": \"hmac-sha256\", \"key_file\": \"%s\"}, \"zlib\"]}},"
	         " {\"name\": \"c\", \"bind\": \"127.0.0.1:0\", \"handler\": \"echo\", \"codec\": \"cbor\"}]}", kf);
	CU_ASSERT_EQUAL_FATAL(dg_config_parse(text, strlen(text), "t", "/d", "/p", &cfg, err, sizeof(err)), 0);
	json_t *j = dg_config_dump(cfg, err, sizeof(err));
	CU_ASSERT_PTR_NOT_NULL_FATAL(j);
	json_t *ls = json_object_get(j, "listeners");
	char *a = json_dumps(json_object_get(json_array_get(ls, 0), "codec"), JSON_COMPACT | JSON_SORT_KEYS);
	char *b = json_dumps(json_object_get(json_array_get(ls, 1), "codec"), JSON_COMPACT | JSON_SORT_KEYS);
	char *c = json_dumps(json_object_get(json_array_get(ls, 2), "codec"), JSON_COMPACT | JSON_ENCODE_ANY);
	char *all = json_dumps(j, JSON_COMPACT);
	CU_ASSERT_STRING_EQUAL(a, "{\"payload\":\"msgpack\",\"transforms\":["
	                          "{\"alphabet\":\"urlsafe\",\"checksum\":\"none\",\"name\":\"base64\"},"
	                          "{\"level\":6,\"max_decoded\":16000,\"name\":\"zlib\"},"
	                          "{\"level\":9,\"max_decoded\":16000,\"name\":\"bz2\"}]}");
	char want[8192];
	snprintf(want, sizeof(want), "{\"payload\":\"json\",\"transforms\":["
	         "{\"alphabet\":\"standard\",\"checksum\":\"hmac-sha256\",\"key_file\":\"%s\",\"name\":\"base64\"},"
	         "{\"level\":9,\"max_decoded\":%u,\"name\":\"zlib\"}]}",
	         kf, (unsigned)DG_DEFAULT_MAX_DATAGRAM * DG_CODEC_DECODED_PER_DATAGRAM);
	CU_ASSERT_STRING_EQUAL(b, want);
	CU_ASSERT_STRING_EQUAL(c, "\"cbor\""); /* no transforms: as written */
	CU_ASSERT_PTR_NULL(strstr(all, "a2V5a2V5")); /* the key itself, never */
	free(a);
	free(b);
	free(c);
	free(all);
	json_decref(j);
	dg_config_free(cfg);
}

static void test_missing_file(void)
{
	struct dg_config *cfg;
	char err[512];

	CU_ASSERT_NOT_EQUAL(dg_config_load("/nonexistent/dgramd.json", "/p", &cfg, err, sizeof(err)), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "cannot open config '/nonexistent/dgramd.json': No such file"));
}

static void test_load_file(void)
{
	struct dg_config *cfg;
	char err[512], path[4096];

	snprintf(path, sizeof(path), "%s/conf/dgramd.json", dg_test_srcdir());
	CU_ASSERT_EQUAL_FATAL(dg_config_load(path, "/p", &cfg, err, sizeof(err)), 0);
	CU_ASSERT_STRING_EQUAL(cfg->listeners[0].name, "echo");
	dg_config_free(cfg);
}

static void test_addr_parse(void)
{
	static const struct {
		const char *in;
		bool ok;
	} v[] = {
		{ "127.0.0.1:53", true }, { "0.0.0.0:0", true }, { "[::1]:5300", true },
		{ "[::]:1", true }, { "[fe80::1]:65535", true }, { "1.2.3.4", false },
		{ "1.2.3.4:", false }, { "1.2.3.4:x", false }, { "1.2.3.4:-1", false },
		{ "1.2.3:53", false }, { "[::1]53", false }, { "[::1:53", false },
		{ "::1:53", false }, { ":53", false }, { "[]:53", false }, { "1.2.3.4:99999", false },
		{ "example.com:53", false }, { "[1.2.3.4]:53", false }, { "1.2.3.4:53 ", false },
	};
	struct dg_addr a;
	char buf[64];

	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		bool ok = dg_addr_parse(v[i].in, &a);
		if (ok != v[i].ok)
			fprintf(stderr, "addr '%s': expected %d\n", v[i].in, v[i].ok);
		CU_ASSERT_EQUAL(ok, v[i].ok);
		if (ok)
			CU_ASSERT_STRING_EQUAL(dg_addr_format((struct sockaddr *)&a.ss, buf, sizeof(buf)), v[i].in);
	}
}

/* A config with the example codec module "lines" and a listener on it. */
static int parse_lines(const char *tail, struct dg_config **cfg, char *err, size_t errlen)
{
	char text[8192];

	snprintf(text, sizeof(text), "{\"codec_modules\": [\"%s/plugins/.libs/lines.so\"], "
	         BODY(", \"codec\": {\"framing\": \"lines\"}") "%s}", dg_test_builddir(), tail);
	return dg_config_parse(text, strlen(text), "t.json", "/etc", "/nonexistent", cfg, err, errlen);
}

static bool lines_registered(void)
{
	char err[256];
	struct dg_codec *c;
	json_t *spec = json_pack("{s:s}", "framing", "lines");
	int rc = spec ? dg_codec_new(spec, &c, err, sizeof(err)) : DG_ENOMEM;

	json_decref(spec);
	if (rc == DG_OK)
		dg_codec_free(c);
	return rc == DG_OK;
}

/* The codec registry holds the active config's modules: a second config
 * with the same module loads while the first lives (a reload), freeing the
 * older one keeps the newer one's, a failed load leaves none until
 * dg_config_use, freeing the active one leaves none. */
static void test_codec_registry(void)
{
	struct dg_config *a, *b, *c;
	char err[1024];

	CU_ASSERT_EQUAL_FATAL(parse_lines("", &a, err, sizeof(err)), DG_OK);
	CU_ASSERT_TRUE(lines_registered());
	int rc = parse_lines("", &b, err, sizeof(err));
	if (rc)
		fprintf(stderr, "second config: %s\n", err);
	CU_ASSERT_EQUAL_FATAL(rc, DG_OK);
	dg_config_free(a);
	CU_ASSERT_TRUE(lines_registered());
	CU_ASSERT_NOT_EQUAL(parse_lines(", \"workers\": \"many\"", &c, err, sizeof(err)), DG_OK);
	CU_ASSERT_FALSE(lines_registered());
	dg_config_use(b);
	CU_ASSERT_TRUE(lines_registered());
	dg_config_free(b);
	CU_ASSERT_FALSE(lines_registered());
}

static const struct dg_test conf_tests[] = {
	{ "vectors", test_vectors },
	{ "values", test_values },
	{ "comments", test_comments },
	{ "-T shows the transforms with their defaults, never the key", test_dump_transforms },
	{ "missing file", test_missing_file },
	{ "shipped config", test_load_file },
	{ "addresses", test_addr_parse },
	{ "the codec registry holds the active config's modules", test_codec_registry },
	{ NULL, NULL },
};

DG_TEST_MAIN("config", conf_tests)
