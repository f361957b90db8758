/* echo: replies with the decoded packet, re-encoded by the listener's codec.
 *
 * config (all optional; declared in echo_options, checked by the host):
 *   "prefix": "text"     bytes packets: reply with text + packet
 *   "wrap": "key"        JSON packets: reply with {"key": packet}
 *   "error_reply": true  undecodable datagrams get {"error": reason,
 *                        "offset": n} back (JSON text, whatever the payload),
 *                        and requests past handler_timeout_ms {"error": "timeout"}
 *   "delay_ms": n        reply n ms later from a timer (a deferred reply)
 *   "reply": false       do not reply at all (a sink: counts are the server's)
 *   "repeat": n          reply n times to each packet (default 1; see
 *                        max_replies_per_request)
 *
 * A reply the amplification guard refuses (DG_EAGAIN) is counted by the
 * server (tx_drop_amplification) and is not a handler error.
 */
#define _POSIX_C_SOURCE 200809L /* plugins build without config.h */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <dgramd/plugin.h>
#include <dgramd/plugin-util.h>

struct delayed;

/* The config, filled in by the host (host->options). */
struct echo_opts {
	const char *prefix, *wrap; /* NULL: not given */
	bool error_reply, reply;
	int64_t delay_ms, repeat;
};

#define O(field) offsetof(struct echo_opts, field)
static const struct dg_option echo_options[] = {
	{ .name = "prefix", .type = DG_OPT_STRING, .offset = O(prefix),
	  .help = "bytes packets: reply with this text + the packet" },
	{ .name = "wrap", .type = DG_OPT_STRING, .offset = O(wrap),
	  .help = "JSON packets: reply with {\"wrap\": packet}" },
	{ .name = "error_reply", .type = DG_OPT_BOOL, .offset = O(error_reply), .def = "false",
	  .help = "answer undecodable datagrams and timeouts with {\"error\": ...}" },
	{ .name = "delay_ms", .type = DG_OPT_INT, .offset = O(delay_ms), .def = "0",
	  .min = 0, .max = 3600000, .help = "reply this many ms later, from a timer" },
	{ .name = "reply", .type = DG_OPT_BOOL, .offset = O(reply), .def = "true",
	  .help = "false: reply to nothing (a sink)" },
	{ .name = "repeat", .type = DG_OPT_INT, .offset = O(repeat), .def = "1",
	  .min = 1, .max = 65536, .help = "replies to each packet" },
	{ .name = NULL },
};
#undef O

struct echo {
	const struct dg_host *host;
	struct dg_instance *self;
	const char *prefix;        /* the host's copies, valid until fini */
	size_t prefix_len;
	const char *wrap;
	bool error_reply;
	bool silent;
	unsigned delay_ms;
	unsigned repeat;
};

/* A reply waiting for its timer: the request's data slot holds it, so the
 * host hands it back on timeout (on_expire) and frees it (delayed_free)
 * however the request ends. */
struct delayed {
	struct echo *e;
	struct dg_timer *timer;
	dg_req_t req;
	json_t *json;
	size_t len;
	unsigned char data[];
};

static void echo_fini(void *state)
{
	struct echo *e = state;

	if (!e)
		return;
	/* Delayed replies were freed with their requests (delayed_free). */
	free(e);
}

static int echo_init(struct dg_instance *self, const struct dg_host *host,
                     const json_t *config, void **state)
{
	const struct echo_opts *o = dg_util_options(self, host);
	struct echo *e;
	(void)config; /* checked and filled in by the host: o */

	*state = NULL;
	if (!o)
		return DG_EINVAL;
	if (!(e = malloc(sizeof(*e))))
		return DG_ENOMEM;
	*e = (struct echo){
		.host = host, .self = self,
		.prefix = o->prefix, .prefix_len = o->prefix ? strlen(o->prefix) : 0,
		.wrap = o->wrap, .error_reply = o->error_reply, .silent = !o->reply,
		.delay_ms = (unsigned)o->delay_ms, .repeat = (unsigned)o->repeat,
	};
	*state = e;
	return DG_OK;
}

/* Build the reply for pkt and send it. */
static int send_one(struct echo *e, dg_req_t req, const struct dg_packet *pkt)
{
	int rc;

	if (pkt->json && e->wrap)
		return dg_util_reply_json(e->host, e->self, req, json_pack("{sO}", e->wrap, pkt->json), NULL);
	if (!pkt->json && e->prefix) {
		unsigned char *buf = malloc(e->prefix_len + pkt->len + 1);
		if (!buf)
			return DG_ENOMEM;
		memcpy(buf, e->prefix, e->prefix_len);
		if (pkt->len)
			memcpy(buf + e->prefix_len, pkt->data, pkt->len);
		struct dg_packet out = { .data = buf, .len = e->prefix_len + pkt->len };
		rc = e->host->request_reply(e->self, req, &out);
		free(buf);
		return rc;
	}
	return e->host->request_reply(e->self, req, pkt);
}

/* The reply, repeat times. A reply refused by the amplification guard is the
 * server's to count, not a failure of this request (dg_util_verdict); the
 * repeats would be refused too. */
static int send_echo(struct echo *e, dg_req_t req, const struct dg_packet *pkt)
{
	for (unsigned i = 0; i < e->repeat; i++) {
		int rc = send_one(e, req, pkt);
		if (rc == DG_EAGAIN)
			return DG_OK;
		if (rc)
			return rc;
	}
	return DG_OK;
}

/* The request's data slot is freed (completed, timed out, abandoned). */
static void delayed_free(void *data)
{
	struct delayed *d = data;

	if (d->timer)
		d->e->host->timer_cancel(d->timer);
	json_decref(d->json);
	free(d);
}

static void delayed_fire(void *arg)
{
	struct delayed *d = arg;
	struct echo *e = d->e;
	struct dg_packet pkt = { .data = d->data, .len = d->len, .json = d->json };

	d->timer = NULL; /* dead once it fired */
	/* Completing frees d (delayed_free). DG_ESTALE cannot happen: a request
	 * that ends otherwise cancels this timer first. */
	if (send_echo(e, d->req, &pkt) != DG_ESTALE)
		e->host->request_complete(e->self, d->req);
}

static int echo_later(struct echo *e, const struct dg_request *req)
{
	struct delayed *d = malloc(sizeof(*d) + req->packet.len);
	if (!d)
		return DG_ENOMEM;
	d->e = e;
	d->req = req->handle;
	d->timer = NULL;
	d->json = req->packet.json ? json_incref(req->packet.json) : NULL;
	d->len = req->packet.len;
	if (req->packet.len)
		memcpy(d->data, req->packet.data, req->packet.len);
	/* The data slot owns d from here: delayed_free runs once, however the
	 * request ends (a DG_ERROR below included). */
	if (e->host->request_set_data(e->self, req->handle, d, delayed_free)) {
		delayed_free(d);
		return DG_ERROR;
	}
	d->timer = e->host->timer_start(e->self, e->delay_ms, delayed_fire, d);
	return d->timer ? DG_PENDING : DG_ERROR;
}

static int echo_on_packet(void *state, const struct dg_request *req)
{
	struct echo *e = state;

	if (e->silent)
		return DG_DONE;
	if (e->delay_ms)
		return echo_later(e, req);
	return dg_util_verdict(send_echo(e, req->handle, &req->packet));
}

static int echo_on_error(void *state, const struct dg_request *req, const struct dg_parse_error *err)
{
	struct echo *e = state;

	if (!e->error_reply)
		return DG_DECLINED; /* the server counts and logs it */
	json_t *j = json_pack("{sssI}", "error", err->reason, "offset", (json_int_t)err->offset);
	return dg_util_verdict(dg_util_reply_json(e->host, e->self, req->handle, j, NULL));
}

/* The server gives up on a delayed reply (the host frees it after this
 * call, with its timer): maybe say why. */
static void echo_on_expire(void *state, dg_req_t req, void *data)
{
	struct echo *e = state;

	(void)data;
	if (e->error_reply)
		dg_util_reply_json(e->host, e->self, req, dg_util_error("timeout", false), NULL);
}

DG_PLUGIN_EXPORT const struct dg_plugin dgramd_plugin = {
	DG_PLUGIN_HEADER,
	.name = "echo",
	.version = "1.0",
	.init = echo_init,
	.fini = echo_fini,
	.on_packet = echo_on_packet,
	.on_error = echo_on_error,
	.on_expire = echo_on_expire,
	.options = echo_options,
	.options_size = sizeof(struct echo_opts),
};
