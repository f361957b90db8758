/* The kv plugin, loaded as the daemon loads it, against a host table of its
 * own; jansson allocates through the daemon's counting allocator, so the
 * store's real memory is measured, not estimated. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

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

static const struct dg_test kv_tests[] = {
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
