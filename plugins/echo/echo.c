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
	/* Replies waiting for their timer, by request handle: on_timeout
	 * finds one in O(1), however many wait. Open addressing, linear
	 * probing, at most half full; NULL is an empty slot. */
	struct delayed **by_req;
	size_t mask; /* slots - 1 (slots a power of two), or 0 with no table */
	size_t n;
};

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
	/* The host cancelled our timers before fini; free what they carried. */
	for (size_t i = 0; e->by_req && i <= e->mask; i++) {
		struct delayed *d = e->by_req[i];
		if (d) {
			json_decref(d->json);
			free(d);
		}
	}
	free(e->by_req);
	free(e);
}

static int echo_init(struct dg_instance *self, const struct dg_host *host,
                     const json_t *config, void **state)
{
	const struct echo_opts *o = host->options ? host->options(self) : NULL;
	struct echo *e;
	(void)config; /* checked and filled in by the host: o */

	*state = NULL;
	if (!o) {
		host->log(self, DG_LOG_ERROR, "this dgramd fills in no options (host->options)");
		return DG_EINVAL;
	}
	if (!(e = calloc(1, sizeof(*e))))
		return DG_ENOMEM;
	e->host = host;
	e->self = self;
	e->prefix = o->prefix;
	e->prefix_len = o->prefix ? strlen(o->prefix) : 0;
	e->wrap = o->wrap;
	e->error_reply = o->error_reply;
	e->silent = !o->reply;
	e->delay_ms = (unsigned)o->delay_ms;
	e->repeat = (unsigned)o->repeat;
	*state = e;
	return DG_OK;
}

/* Build the reply for pkt and send it. */
static int send_one(struct echo *e, dg_req_t req, const struct dg_packet *pkt)
{
	int rc;

	if (pkt->json && e->wrap) {
		json_t *w = json_pack("{sO}", e->wrap, pkt->json);
		if (!w)
			return DG_ENOMEM;
		struct dg_packet out = { .json = w };
		rc = e->host->reply(req, &out);
		json_decref(w);
		return rc;
	}
	if (!pkt->json && e->prefix) {
		unsigned char *buf = malloc(e->prefix_len + pkt->len + 1);
		if (!buf)
			return DG_ENOMEM;
		memcpy(buf, e->prefix, e->prefix_len);
		if (pkt->len)
			memcpy(buf + e->prefix_len, pkt->data, pkt->len);
		struct dg_packet out = { .data = buf, .len = e->prefix_len + pkt->len };
		rc = e->host->reply(req, &out);
		free(buf);
		return rc;
	}
	return e->host->reply(req, pkt);
}

/* The reply, repeat times. A reply refused by the amplification guard is the
 * server's to count, not a failure of this request. */
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

/* Handles are the host's values, not chosen by peers: a fixed mix is
 * enough to spread them. */
static size_t slot_of(const struct echo *e, dg_req_t h)
{
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdull;
	h ^= h >> 33;
	return (size_t)h & e->mask;
}

static struct delayed **delayed_find(struct echo *e, dg_req_t h)
{
	if (!e->by_req)
		return NULL;
	for (size_t i = slot_of(e, h);; i = (i + 1) & e->mask) {
		if (!e->by_req[i])
			return NULL;
		if (e->by_req[i]->req == h)
			return &e->by_req[i];
	}
}

static void put(struct echo *e, struct delayed *d)
{
	size_t i = slot_of(e, d->req);

	while (e->by_req[i])
		i = (i + 1) & e->mask;
	e->by_req[i] = d;
}

/* Double the table (or make the first one) when it would be over half full. */
static int delayed_reserve(struct echo *e)
{
	size_t slots = e->by_req ? e->mask + 1 : 0;

	if ((e->n + 1) * 2 <= slots)
		return DG_OK;
	size_t n = slots ? slots * 2 : 64;
	struct delayed **old = e->by_req;
	e->by_req = calloc(n, sizeof(*e->by_req));
	if (!e->by_req) {
		e->by_req = old;
		return DG_ENOMEM;
	}
	e->mask = n - 1;
	for (size_t i = 0; i < slots; i++)
		if (old[i])
			put(e, old[i]);
	free(old);
	return DG_OK;
}

/* Remove the entry at *pp, then move up the entries of its probe run that
 * hashed at or before the hole (no tombstones: lookups stay short). */
static void delayed_unlink(struct echo *e, struct delayed **pp)
{
	size_t hole = (size_t)(pp - e->by_req);

	e->by_req[hole] = NULL;
	e->n--;
	for (size_t i = (hole + 1) & e->mask; e->by_req[i]; i = (i + 1) & e->mask) {
		size_t home = slot_of(e, e->by_req[i]->req);
		/* Movable when home is not cyclically within (hole, i]. */
		if (((i - home) & e->mask) >= ((i - hole) & e->mask)) {
			e->by_req[hole] = e->by_req[i];
			e->by_req[i] = NULL;
			hole = i;
		}
	}
}

static void delayed_fire(void *arg)
{
	struct delayed *d = arg;
	struct echo *e = d->e;
	struct dg_packet pkt = { .data = d->data, .len = d->len, .json = d->json };

	struct delayed **pp = delayed_find(e, d->req);
	if (pp)
		delayed_unlink(e, pp);
	/* DG_ESTALE here means the server gave up on the request: nothing to do. */
	if (send_echo(e, d->req, &pkt) != DG_ESTALE)
		e->host->complete(d->req);
	json_decref(d->json);
	free(d);
}

static int echo_later(struct echo *e, const struct dg_request *req)
{
	if (delayed_reserve(e))
		return DG_ENOMEM;
	struct delayed *d = malloc(sizeof(*d) + req->packet.len);
	if (!d)
		return DG_ENOMEM;
	d->e = e;
	d->req = req->handle;
	d->json = req->packet.json ? json_incref(req->packet.json) : NULL;
	d->len = req->packet.len;
	if (req->packet.len)
		memcpy(d->data, req->packet.data, req->packet.len);
	d->timer = e->host->timer_start(e->self, e->delay_ms, delayed_fire, d);
	if (!d->timer) {
		json_decref(d->json);
		free(d);
		return DG_ERROR;
	}
	put(e, d);
	e->n++;
	return DG_PENDING;
}

static int echo_on_packet(void *state, const struct dg_request *req)
{
	struct echo *e = state;

	if (e->silent)
		return DG_DONE;
	if (e->delay_ms)
		return echo_later(e, req);
	int rc = send_echo(e, req->handle, &req->packet);
	return rc < 0 ? rc : DG_DONE;
}

static int echo_on_error(void *state, const struct dg_request *req, const struct dg_parse_error *err)
{
	struct echo *e = state;

	if (!e->error_reply)
		return DG_DECLINED; /* the server counts and logs it */
	json_t *j = json_pack("{sssI}", "error", err->reason, "offset", (json_int_t)err->offset);
	if (!j)
		return DG_ENOMEM;
	struct dg_packet out = { .json = j };
	int rc = e->host->reply(req->handle, &out);
	json_decref(j);
	return rc < 0 && rc != DG_EAGAIN ? rc : DG_DONE;
}

/* The server gives up on a delayed reply: drop ours, maybe say why. */
static void echo_on_timeout(void *state, dg_req_t req)
{
	struct echo *e = state;

	struct delayed **pp = delayed_find(e, req);

	if (pp) {
		struct delayed *d = *pp;
		e->host->timer_cancel(d->timer);
		delayed_unlink(e, pp);
		json_decref(d->json);
		free(d);
	}
	if (e->error_reply) {
		json_t *j = json_pack("{ss}", "error", "timeout");
		struct dg_packet out = { .json = j };
		if (j)
			e->host->reply(req, &out);
		json_decref(j);
	}
}

DG_PLUGIN_EXPORT const struct dg_plugin dgramd_plugin = {
	DG_PLUGIN_HEADER,
	.name = "echo",
	.version = "1.0",
	.init = echo_init,
	.fini = echo_fini,
	.on_packet = echo_on_packet,
	.on_error = echo_on_error,
	.on_timeout = echo_on_timeout,
	.options = echo_options,
	.options_size = sizeof(struct echo_opts),
};
