/* kv: an in-memory JSON key-value store.
 *
 * Requests (JSON objects; an "id" member is echoed back in the reply):
 *   {"op": "set", "key": K, "value": V}  -> {"ok": true}
 *   {"op": "get", "key": K}              -> {"ok": true, "value": V}
 *                                           or {"ok": false, "error": "not found"}
 *   {"op": "del", "key": K}              -> {"ok": true, "deleted": true|false}
 * Anything else gets {"ok": false, "error": "..."}; a datagram that does not
 * decode gets {"ok": false, "error": "bad request: REASON", "offset": N}.
 *
 * config (kv_options, checked by the host): "max_keys" (100000),
 * "max_key_len" (256), "max_value_bytes" (4096, compact JSON size of a
 * value), "max_bytes" (16 MiB: the whole store, each entry counted as key +
 * value + KV_ENTRY_OVERHEAD), "cookie" (true).
 *
 * Values are kept as their compact JSON text, not as a jansson tree: a tree
 * can take a hundred times its text (`[{},{},...]`: ~250 bytes per `{}`),
 * so a bound on the text would not bound memory. A get parses the text
 * again (at most max_value_bytes).
 *
 * Cookies (peer validation, as DNS cookies and QUIC's Retry do it): when the
 * server's amplification guard refuses a reply to a peer that has not
 * proven its address (host->reply returns DG_EAGAIN: a 4 kB value asked for
 * by a 22-byte get), kv answers {"ok": false, "error": "cookie", "cookie":
 * C} instead, which is small. C is a keyed hash (SipHash-2-4, a random key
 * per instance) of the peer's address and port: only a client that receives
 * what is sent to that address learns it. A request carrying "cookie": C
 * makes kv call host->peer_validate() on the session before it is handled,
 * so the reply goes out whole, and so do later ones while the session
 * lasts. "cookie": false turns this off (refused replies are dropped).
 *
 * State is per instance: one store per listener per worker process. With
 * workers > 1 each worker has its own store (a peer always reaches the same
 * worker, other peers may not see its keys): shared state belongs in an
 * external store. */
#define _POSIX_C_SOURCE 200809L

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <sys/random.h>

#include <jansson.h>
#include <dgramd/plugin.h>
#include <dgramd/plugin-util.h>

#include "../siphash.h"

struct kv {
	const struct dg_host *host;
	struct dg_instance *self;
	json_t *store;           /* key -> JSON string holding the value's compact text */
	size_t bytes;            /* charged for the entries in store */
	unsigned long refused;   /* sets refused by max_bytes */
	size_t max_keys, max_key_len, max_value_bytes, max_bytes;
	bool cookie;
	unsigned char key[16]; /* cookie key (SipHash-2-4) */
	struct dg_metric *m_keys, *m_bytes, *m_refused; /* in /metrics; NULL on old hosts */
};

/* The config, filled in by the host (host->options). */
struct kv_opts {
	int64_t max_keys, max_key_len, max_value_bytes, max_bytes;
	bool cookie;
};

#define O(field) offsetof(struct kv_opts, field)
static const struct dg_option kv_options[] = {
	{ .name = "max_keys", .type = DG_OPT_INT, .offset = O(max_keys), .def = "100000",
	  .min = 1, .max = 100000000, .help = "keys in the store" },
	{ .name = "max_key_len", .type = DG_OPT_INT, .offset = O(max_key_len), .def = "256",
	  .min = 1, .max = 65536, .help = "bytes of a key" },
	{ .name = "max_value_bytes", .type = DG_OPT_INT, .offset = O(max_value_bytes), .def = "4096",
	  .min = 1, .max = 1 << 20, .help = "bytes of a value's compact JSON text" },
	{ .name = "max_bytes", .type = DG_OPT_INT, .offset = O(max_bytes), .def = "16777216",
	  .min = 1, .max = (int64_t)1 << 40, .help = "bytes of the whole store (keys, values, overhead)" },
	{ .name = "cookie", .type = DG_OPT_BOOL, .offset = O(cookie), .def = "true",
	  .help = "validate peers with cookies when the amplification guard refuses a reply" },
	{ .name = NULL },
};
#undef O

/* What one entry costs beyond its key and value text: jansson's hash pair
 * and bucket, the string value's struct, malloc's headers (measured with
 * the daemon's counting allocator: tests/plugins/test_kv.c). */
#define KV_ENTRY_OVERHEAD 256

static size_t entry_bytes(size_t key_len, size_t value_len)
{
	return key_len + value_len + KV_ENTRY_OVERHEAD;
}

/* The store's size in /metrics (gauges). */
static void kv_publish(struct kv *kv)
{
	dg_util_metric_set(kv->host, kv->m_keys, (int64_t)json_object_size(kv->store));
	dg_util_metric_set(kv->host, kv->m_bytes, (int64_t)kv->bytes);
}

static void kv_fini(void *state)
{
	struct kv *kv = state;

	if (kv) {
		if (kv->refused)
			kv->host->log(kv->self, DG_LOG_INFO, "%lu sets refused: store full (max_bytes %zu)",
			              kv->refused, kv->max_bytes);
		json_decref(kv->store);
		free(kv);
	}
}

static int kv_init(struct dg_instance *self, const struct dg_host *host,
                   const json_t *config, void **state)
{
	const struct kv_opts *o = dg_util_options(self, host);
	struct kv *kv;
	(void)config; /* checked and filled in by the host: o */

	*state = NULL;
	if (!o)
		return DG_EINVAL;
	if (!(kv = calloc(1, sizeof(*kv))))
		return DG_ENOMEM;
	kv->host = host;
	kv->self = self;
	kv->max_keys = (size_t)o->max_keys;
	kv->max_key_len = (size_t)o->max_key_len;
	kv->max_value_bytes = (size_t)o->max_value_bytes;
	kv->max_bytes = (size_t)o->max_bytes;
	kv->cookie = o->cookie;
	if (kv->cookie && getrandom(kv->key, sizeof(kv->key), 0) != sizeof(kv->key)) {
		host->log(self, DG_LOG_ERROR, "cannot get random bytes for the cookie key");
		kv_fini(kv);
		return DG_ERROR;
	}
	if (!(kv->store = json_object())) {
		kv_fini(kv);
		return DG_ENOMEM;
	}
	kv->m_keys = dg_util_metric_new(host, self, "keys", "Keys in the store", DG_METRIC_GAUGE);
	kv->m_bytes = dg_util_metric_new(host, self, "bytes", "Bytes charged to the store (max_bytes)",
	                                 DG_METRIC_GAUGE);
	kv->m_refused = dg_util_metric_new(host, self, "refused", "Sets refused: store full (max_bytes)",
	                                   DG_METRIC_COUNTER);
	kv_publish(kv);
	*state = kv;
	return DG_OK;
}

/* ---- cookies ---------------------------------------------------------- */

/* The peer's cookie as 16 hex digits (out: 17 bytes). */
static void cookie_of(const struct kv *kv, const struct dg_peer *peer, char *out)
{
	unsigned char key[18];
	size_t n;

	if (peer->addr->sa_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)peer->addr;
		memcpy(key, &s6->sin6_port, 2);
		memcpy(key + 2, &s6->sin6_addr, 16);
		n = 18;
	} else {
		const struct sockaddr_in *s4 = (const struct sockaddr_in *)peer->addr;
		memcpy(key, &s4->sin_port, 2);
		memcpy(key + 2, &s4->sin_addr, 4);
		n = 6;
	}
	snprintf(out, 17, "%016llx", (unsigned long long)dg_siphash24(kv->key, key, n));
}

/* A request carrying the peer's own cookie validates it. */
static void check_cookie(struct kv *kv, const struct dg_request *req)
{
	const char *c = json_string_value(json_object_get(req->packet.json, "cookie"));
	char want[17];

	if (!c || !kv->cookie || !DG_HOST_HAS(kv->host, peer_validate))
		return;
	cookie_of(kv, req->peer, want);
	if (!strcmp(c, want))
		kv->host->peer_validate(req->session);
}

/* Send reply (consumed), with the request's id if it had one. A reply the
 * amplification guard refuses is replaced by the (small) cookie reply. */
static int send_reply(struct kv *kv, const struct dg_request *req, const json_t *request,
                      json_t *reply)
{
	json_t *id = dg_util_request_id(request);
	char cookie[17];

	int rc = dg_util_reply_json(kv->host, kv->self, req->handle, reply, id);
	if (rc == DG_EAGAIN && kv->cookie) {
		cookie_of(kv, req->peer, cookie);
		reply = json_pack("{sbssss}", "ok", 0, "error", "cookie", "cookie", cookie);
		rc = dg_util_reply_json(kv->host, kv->self, req->handle, reply, id);
	}
	return dg_util_verdict(rc);
}

static json_t *fail(const char *msg)
{
	return dg_util_error(msg, true);
}

/* The value's compact text, or NULL with *err set. */
static json_t *value_text(struct kv *kv, const json_t *value, const char **err)
{
	size_t cap = kv->max_value_bytes + 1;
	char *buf = malloc(cap);
	json_t *text = NULL;

	*err = NULL;
	if (!buf)
		return NULL;
	size_t n = json_dumpb(value, buf, cap, JSON_COMPACT | JSON_ENCODE_ANY);
	if (n > kv->max_value_bytes)
		*err = "value too large (max_value_bytes)";
	else if (n > 0)
		text = json_stringn(buf, n);
	free(buf);
	return text;
}

static json_t *kv_set(struct kv *kv, const char *key, json_t *value)
{
	const char *err;

	if (!value)
		return fail("set needs a value");
	json_t *old = json_object_get(kv->store, key);
	if (!old && json_object_size(kv->store) >= kv->max_keys)
		return fail("store full (max_keys)");
	json_t *text = value_text(kv, value, &err);
	if (!text)
		return err ? fail(err) : NULL;
	size_t freed = old ? entry_bytes(strlen(key), json_string_length(old)) : 0;
	size_t cost = entry_bytes(strlen(key), json_string_length(text));
	if (kv->bytes - freed + cost > kv->max_bytes) {
		json_decref(text);
		kv->refused++;
		dg_util_metric_add(kv->host, kv->m_refused, 1);
		return fail("store full (max_bytes)");
	}
	if (json_object_set_new(kv->store, key, text))
		return NULL;
	kv->bytes = kv->bytes - freed + cost;
	kv_publish(kv);
	return json_pack("{sb}", "ok", 1);
}

static json_t *kv_get(struct kv *kv, const char *key)
{
	json_t *text = json_object_get(kv->store, key);

	if (!text)
		return fail("not found");
	json_t *v = json_loadb(json_string_value(text), json_string_length(text),
	                       JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
	return v ? json_pack("{sbso}", "ok", 1, "value", v) : NULL;
}

static json_t *kv_del(struct kv *kv, const char *key)
{
	json_t *text = json_object_get(kv->store, key);
	int deleted = text != NULL;

	if (deleted) {
		kv->bytes -= entry_bytes(strlen(key), json_string_length(text));
		json_object_del(kv->store, key);
		kv_publish(kv);
	}
	return json_pack("{sbsb}", "ok", 1, "deleted", deleted);
}

static json_t *kv_handle(struct kv *kv, const json_t *req)
{
	const char *op, *key;
	json_t *k;

	if (!json_is_object(req))
		return fail("expected a JSON object");
	op = json_string_value(json_object_get(req, "op"));
	k = json_object_get(req, "key");
	if (!op)
		return fail("missing \"op\" (set, get, del)");
	if (!json_is_string(k) || json_string_length(k) == 0 ||
	    json_string_length(k) != strlen(json_string_value(k)))
		return fail("\"key\" must be a non-empty string without NUL");
	if (json_string_length(k) > kv->max_key_len)
		return fail("key too long (max_key_len)");
	key = json_string_value(k);
	if (!strcmp(op, "set"))
		return kv_set(kv, key, json_object_get(req, "value"));
	if (!strcmp(op, "get"))
		return kv_get(kv, key);
	if (!strcmp(op, "del"))
		return kv_del(kv, key);
	return fail("unknown op (set, get, del)");
}

static int kv_on_packet(void *state, const struct dg_request *req)
{
	struct kv *kv = state;

	if (!req->packet.json)
		return send_reply(kv, req, NULL, fail("kv needs a JSON payload codec"));
	check_cookie(kv, req);
	return send_reply(kv, req, req->packet.json, kv_handle(kv, req->packet.json));
}

static int kv_on_error(void *state, const struct dg_request *req, const struct dg_parse_error *err)
{
	struct kv *kv = state;
	char msg[256];

	snprintf(msg, sizeof(msg), "bad request: %s", err->reason);
	return send_reply(kv, req, NULL,
	                  json_pack("{sbsssI}", "ok", 0, "error", msg, "offset", (json_int_t)err->offset));
}

DG_PLUGIN_EXPORT const struct dg_plugin dgramd_plugin = {
	DG_PLUGIN_HEADER,
	.name = "kv",
	.version = "1.0",
	.init = kv_init,
	.fini = kv_fini,
	.on_packet = kv_on_packet,
	.on_error = kv_on_error,
	.options = kv_options,
	.options_size = sizeof(struct kv_opts),
};
