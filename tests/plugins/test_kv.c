/* The kv plugin: on the harness (<dgramd/testing.h>) for its protocol, its
 * metrics and its cookies under the amplification guard; and loaded
 * against a host table of its own, where jansson allocates through the
 * daemon's counting allocator, so the store's real memory is measured. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <dgramd/testing.h>

#include "loader.h"
#include "membudget.h"
#include "options.h"
#include "testutil.h"

static json_t *last_reply; /* the plugin's last reply (a reference) */

static void host_log(struct dg_instance *self, int level, const char *fmt, ...)
{
	(void)self, (void)level, (void)fmt;
}

static int host_reply(dg_req_t req, const struct dg_packet *pkt)
{
	(void)req;
	json_decref(last_reply);
	last_reply = json_incref(pkt->json);
	return DG_OK;
}

static int host_request_reply(struct dg_instance *self, dg_req_t req, const struct dg_packet *pkt)
{
	(void)self;
	return host_reply(req, pkt);
}

/* kv's options, checked and filled in as the daemon does before init(). */
static struct dg_options *opts;

static const void *host_options(struct dg_instance *self)
{
	(void)self;
	return dg_options_data(opts);
}

static const struct dg_host host = {
	.size = sizeof(struct dg_host),
	.abi_major = DG_PLUGIN_ABI_MAJOR,
	.abi_minor = DG_PLUGIN_ABI_MINOR,
	.log = host_log,
	.reply = host_reply,
	.request_reply = host_request_reply,
	.options = host_options,
};

struct kv_fixture {
	struct dg_loader ld;
	const struct dg_plugin *p;
	void *state;
};

static bool kv_start(struct kv_fixture *f, const char *config)
{
	char path[4096], err[1024];
	static char self[16]; /* opaque to the plugin: only handed back to host->log */

	memset(f, 0, sizeof(*f));
	snprintf(path, sizeof(path), "%s/plugins/.libs/kv.so", dg_test_builddir());
	if (dg_loader_load(&f->ld, path, &f->p, err, sizeof(err))) {
		fprintf(stderr, "%s\n", err);
		return false;
	}
	json_t *conf = json_loads(config, 0, NULL);
	size_t size;
	const struct dg_option *table = dg_plugin_options(f->p, &size);
	int rc = table ? dg_options_new(table, size, conf, "config", &opts, err, sizeof(err)) : DG_EINVAL;
	if (rc)
		fprintf(stderr, "%s\n", table ? err : "kv declares no options");
	else
		rc = f->p->init((struct dg_instance *)(void *)self, &host, conf, &f->state);
	json_decref(conf);
	return rc == DG_OK;
}

static void kv_stop(struct kv_fixture *f)
{
	if (f->p && f->p->fini && f->state)
		f->p->fini(f->state);
	dg_options_free(opts);
	opts = NULL;
	dg_loader_release(&f->ld);
	json_decref(last_reply);
	last_reply = NULL;
}

/* Send one request (consumed); the reply's "error" text, or NULL if ok. */
static const char *kv_ask(struct kv_fixture *f, json_t *req)
{
	static char error[256];
	struct dg_request rq = { .handle = 1, .packet = { .json = req } };

	json_decref(last_reply);
	last_reply = NULL;
	CU_ASSERT_EQUAL(f->p->on_packet(f->state, &rq), DG_DONE);
	json_decref(req);
	if (!last_reply)
		return "no reply";
	if (json_is_true(json_object_get(last_reply, "ok")))
		return NULL;
	snprintf(error, sizeof(error), "%s", json_string_value(json_object_get(last_reply, "error")));
	return error;
}

/* A JSON text of about len bytes whose tree is large: [{},{},...]. */
static json_t *wide_value(size_t len)
{
	char *text = malloc(len + 4);
	size_t n = 0;

	text[n++] = '[';
	while (n + 4 < len) {
		memcpy(text + n, "{},", 3);
		n += 3;
	}
	memcpy(text + n, "{}]", 4);
	json_t *v = json_loads(text, 0, NULL);
	free(text);
	return v;
}

static json_t *set_req(const char *key, json_t *value)
{
	return json_pack("{sssssO}", "op", "set", "key", key, "value", value);
}

/* max_value_bytes bounds what one value takes in memory, not only its
 * text: a 4,000-byte [{},...] is 1,333 objects, ~360 kB as a tree. */
static void test_value_memory(void)
{
	struct kv_fixture f;

	CU_ASSERT_FATAL(kv_start(&f, "{\"max_value_bytes\": 4096}"));
	json_t *v = wide_value(4000);
	size_t before = dg_membudget_json_live();
	CU_ASSERT_PTR_NULL(kv_ask(&f, set_req("k", v)));
	json_decref(last_reply);
	last_reply = NULL;
	size_t grown = dg_membudget_json_live() - before;
	if (grown > 4096 + 512)
		fprintf(stderr, "one 4000-byte value took %zu bytes\n", grown);
	CU_ASSERT(grown <= 4096 + 512);

	/* what was stored comes back unchanged */
	CU_ASSERT_PTR_NULL(kv_ask(&f, json_pack("{ssss}", "op", "get", "key", "k")));
	CU_ASSERT(json_equal(json_object_get(last_reply, "value"), v));
	json_t *big = wide_value(5000);
	CU_ASSERT_STRING_EQUAL(kv_ask(&f, set_req("k2", big)), "value too large (max_value_bytes)");
	json_decref(big);
	json_decref(v);
	kv_stop(&f);
}

/* max_bytes bounds the whole store: sets are refused with an error reply
 * once it is full, and the store's real memory stays under it; a del makes
 * room again. */
static void test_store_bytes(void)
{
	struct kv_fixture f;
	const size_t max_bytes = 1 << 20;
	char key[32];
	unsigned ok = 0;
	const char *err = NULL;

	CU_ASSERT_FATAL(kv_start(&f, "{\"max_bytes\": 1048576, \"max_keys\": 100000}"));
	json_t *v = wide_value(4000);
	size_t before = dg_membudget_json_live();
	for (unsigned i = 0; i < 1000 && !err; i++) {
		snprintf(key, sizeof(key), "key%u", i);
		err = kv_ask(&f, set_req(key, v));
		ok += !err;
	}
	json_decref(last_reply);
	last_reply = NULL;
	size_t grown = dg_membudget_json_live() - before;
	CU_ASSERT_STRING_EQUAL(err ? err : "", "store full (max_bytes)");
	/* every entry costs 4000 + key + overhead: near max_bytes, not far under */
	CU_ASSERT(ok >= max_bytes / (4000 + 16 + 256) - 1 && ok <= max_bytes / 4000);
	if (grown > max_bytes)
		fprintf(stderr, "%u entries took %zu bytes, max_bytes %zu\n", ok, grown, max_bytes);
	CU_ASSERT(grown <= max_bytes);
	CU_ASSERT_PTR_NULL(kv_ask(&f, json_pack("{ssss}", "op", "del", "key", "key0")));
	CU_ASSERT_PTR_NULL(kv_ask(&f, set_req("again", v)));
	CU_ASSERT_STRING_EQUAL(kv_ask(&f, set_req("more", v)), "store full (max_bytes)");
	/* replacing a key charges only the difference */
	CU_ASSERT_PTR_NULL(kv_ask(&f, set_req("again", v)));
	json_decref(v);
	kv_stop(&f);
}

static void test_bad_max_bytes(void)
{
	struct kv_fixture f;

	CU_ASSERT_FALSE(kv_start(&f, "{\"max_bytes\": 0}"));
	kv_stop(&f);
}

/* ---- on the harness ---------------------------------------------------- */

static struct dg_harness *kv_on(const char *keys, const char *config)
{
	char text[2048], err[512];

	snprintf(text, sizeof(text), "{\"codec\": \"json\", %s%s\"handler\": {\"plugin\": "
	         "\"%s/plugins/.libs/kv.so\", \"config\": %s}}", keys, keys[0] ? ", " : "",
	         dg_test_builddir(), config);
	struct dg_harness *h = dg_harness_new(text, NULL, err, sizeof(err));
	if (!h)
		fprintf(stderr, "kv harness: %s\n", err);
	CU_ASSERT_PTR_NOT_NULL(h);
	return h;
}

/* Reply i decoded (a new reference), or JSON null if there is none. */
static json_t *reply_json(const struct dg_harness *h, size_t i)
{
	const struct dg_harness_reply *r = dg_harness_reply(h, i);
	json_t *j = r ? json_loadb((const char *)r->data, r->len, 0, NULL) : NULL;

	return j ? j : json_null();
}

/* Ask and decode the answer (a new reference). */
static json_t *ask(struct dg_harness *h, const char *peer, const char *request)
{
	size_t n = dg_harness_replies(h);

	dg_harness_send_text(h, peer, request);
	CU_ASSERT_EQUAL(dg_harness_replies(h), n + 1);
	return reply_json(h, n);
}

static void test_h_protocol(void)
{
	struct dg_harness *h = kv_on("\"amplification\": {\"factor\": 0}", "{}");
	json_t *r;
	CU_ASSERT_PTR_NOT_NULL_FATAL(h);

	r = ask(h, "127.0.0.1:4000", "{\"op\": \"set\", \"key\": \"a\", \"value\": [1, {\"b\": 2}], \"id\": 7}");
	CU_ASSERT_TRUE(json_is_true(json_object_get(r, "ok")));
	CU_ASSERT_EQUAL(json_integer_value(json_object_get(r, "id")), 7);
	json_decref(r);
	/* Another peer sees the same store. */
	r = ask(h, "127.0.0.2:4000", "{\"op\": \"get\", \"key\": \"a\"}");
	json_t *want = json_loads("[1, {\"b\": 2}]", 0, NULL);
	CU_ASSERT_TRUE(json_equal(json_object_get(r, "value"), want));
	json_decref(want);
	json_decref(r);
	DG_TEST_ASSERT_COUNTER(h, "keys", 1);
	r = ask(h, "127.0.0.2:4000", "{\"op\": \"del\", \"key\": \"a\"}");
	CU_ASSERT_TRUE(json_is_true(json_object_get(r, "deleted")));
	json_decref(r);
	DG_TEST_ASSERT_COUNTER(h, "keys", 0);
	r = ask(h, "127.0.0.2:4000", "{\"op\": \"get\", \"key\": \"a\"}");
	CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(r, "error")), "not found");
	json_decref(r);
	r = ask(h, "127.0.0.2:4000", "{\"op\": \"get\", \"key\": ");
	CU_ASSERT_PTR_NOT_NULL(strstr(json_string_value(json_object_get(r, "error")), "bad request"));
	CU_ASSERT_TRUE(json_is_integer(json_object_get(r, "offset")));
	json_decref(r);
	DG_TEST_ASSERT_COUNTER(h, "decode_errors", 1);
	DG_TEST_ASSERT_COUNTER(h, "handled", 4);
	dg_harness_free(h);
}

/* A large value asked for by a short get from an unvalidated peer is over
 * the amplification credit: kv answers with a cookie instead (small), and
 * the same get with that cookie validates the peer and gets the value; a
 * request from another address with the same cookie does not. */
static void test_h_cookie(void)
{
	struct dg_harness *h = kv_on("", "{}");
	char big[2100], req[256];
	json_t *r;
	CU_ASSERT_PTR_NOT_NULL_FATAL(h);

	memset(big, 'v', sizeof(big));
	snprintf(big, sizeof(big), "{\"op\": \"set\", \"key\": \"k\", \"value\": \"%2000s\"}", "x");
	/* The set is long: its own small reply is within credit. */
	r = ask(h, "127.0.0.1:4000", big);
	CU_ASSERT_TRUE(json_is_true(json_object_get(r, "ok")));
	json_decref(r);
	r = ask(h, "127.0.0.9:4000", "{\"op\": \"get\", \"key\": \"k\"}");
	CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(r, "error")), "cookie");
	const char *cookie = json_string_value(json_object_get(r, "cookie"));
	CU_ASSERT_PTR_NOT_NULL_FATAL(cookie);
	DG_TEST_ASSERT_COUNTER(h, "tx_drop_amplification", 1);
	snprintf(req, sizeof(req), "{\"op\": \"get\", \"key\": \"k\", \"cookie\": \"%s\"}", cookie);
	json_decref(r);
	r = ask(h, "127.0.0.10:4000", req); /* not the address it was sent to */
	CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(r, "error")), "cookie");
	json_decref(r);
	r = ask(h, "127.0.0.9:4000", req);
	CU_ASSERT_EQUAL(json_string_length(json_object_get(r, "value")), 2000);
	json_decref(r);
	/* Validated for the rest of the session: no cookie needed now. */
	r = ask(h, "127.0.0.9:4000", "{\"op\": \"get\", \"key\": \"k\"}");
	CU_ASSERT_EQUAL(json_string_length(json_object_get(r, "value")), 2000);
	json_decref(r);
	/* Until the session expires: then the peer starts unvalidated again. */
	dg_harness_advance(h, 61000);
	CU_ASSERT_EQUAL(dg_harness_sessions(h), 0);
	r = ask(h, "127.0.0.9:4000", "{\"op\": \"get\", \"key\": \"k\"}");
	CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(r, "error")), "cookie");
	json_decref(r);
	dg_harness_free(h);
}

static const struct dg_test kv_tests[] = {
	{ "protocol on the harness: set, get, del, ids, errors", test_h_protocol },
	{ "cookies under the amplification guard", test_h_cookie },
	{ "max_value_bytes bounds a value's real memory", test_value_memory },
	{ "max_bytes bounds the store, refusals get an error reply", test_store_bytes },
	{ "max_bytes must be positive", test_bad_max_bytes },
	{ NULL, NULL },
};

int main(void)
{
	static const struct dg_suite suites[] = {
		{ "kv", kv_tests },
		{ NULL, NULL },
	};

	/* Before any jansson value exists, as in the daemon. */
	dg_membudget_install();
	return dg_test_main(suites);
}
