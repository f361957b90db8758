/* The host functions plugins reach through struct dg_host (the table at
 * the end of this file): logging, replies and completion, per-request data,
 * conversations, push, timers, the clock, sessions and addresses. Each
 * finds its server from its arguments: the instance, the session, or (the
 * 1.0 calls that get a bare handle) the server id in the handle, through
 * the registry of live servers below. They call into dispatch and tx, never
 * the other way, and post the work those leave (dg_server_post_work): a
 * plugin calls from its own events too, where no server event is on the
 * stack. */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "addr.h"
#include "dispatch.h"
#include "host.h"
#include "log.h"
#include "options.h"
#include "pmetrics.h"
#include "ptimer.h"
#include "ratelimit.h"
#include "server.h"
#include "tx.h"

#define REQ(srv, idx) (&(srv)->rt.reqs[(idx)])

/* ---- the servers alive in this process ----------------------------------
 * A daemon process has one; the <dgramd/testing.h> harness may run several.
 * Indexed by the id every request handle carries: O(1) per call. */

#define DG_SERVERS_MAX 256
static struct dg_server *servers[DG_SERVERS_MAX];

int dg_host_register(struct dg_server *srv)
{
	for (unsigned i = 0; i < DG_SERVERS_MAX; i++) {
		if (servers[i])
			continue;
		servers[i] = srv;
		srv->id = (uint8_t)i;
		return DG_OK;
	}
	dg_log(DG_LOG_ERROR, "cannot start a server: %d are running in this process already",
	       DG_SERVERS_MAX);
	return DG_ERROR;
}

void dg_host_unregister(struct dg_server *srv)
{
	if (servers[srv->id] == srv)
		servers[srv->id] = NULL;
}

static struct dg_server *handle_server(dg_req_t h)
{
	return servers[dg_reqtab_handle_id(h)];
}

/* ---- host functions ----------------------------------------------------
 * A plugin's mistakes (a dead handle, a NULL, its state where the instance
 * belongs) cost an error code, a counter and a rate-limited line, never the
 * server. */

static struct dg_ratelimit rl_misuse = DG_RATELIMIT_INIT(5, 10);

DG_PRINTF(1, 2)
static void log_misuse(const char *fmt, ...)
{
	unsigned long sup;
	char msg[512];
	va_list ap;

	if (!dg_ratelimit_allow(&rl_misuse, time(NULL), &sup))
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (sup)
		dg_log(DG_LOG_WARN, "%lu more plugin API misuses were not logged", sup);
	dg_log(DG_LOG_WARN, "%s", msg);
}

/* self from a plugin: the instance init() was given, or NULL. */
struct dg_listener *dg_host_instance(struct dg_instance *self, const char *fn)
{
	if (self && self->magic == DG_INSTANCE_MAGIC)
		return self->l;
	log_misuse("a plugin called host->%s with %s instead of the struct dg_instance * from init() "
	           "(keep that pointer in your state)", fn, self ? "something" : "NULL");
	return NULL;
}

/* A call with a handle that is dead: counted as stale_calls on the
 * listener the handle names, logged at a limited rate with the listener
 * and plugin. */
static void stale_count(struct dg_listener *l, const char *what, uint64_t h)
{
	unsigned long sup;

	l->c->stale_calls++;
	if (!dg_ratelimit_allow(&l->rl_stale, l->srv->now, &sup))
		return;
	if (sup)
		dg_log(DG_LOG_WARN, "listener '%s': plugin '%s': %lu more calls with dead request "
		       "or session handles were not logged (see stale_calls)", l->conf->name,
		       l->plugin->name, sup);
	dg_log(DG_LOG_WARN, "listener '%s': plugin '%s' %s (handle %#llx)", l->conf->name,
	       l->plugin->name, what, (unsigned long long)h);
}

/* A call with a request handle that is dead (or never was). */
static int stale_call(struct dg_server *srv, dg_req_t h, const char *what)
{
	unsigned tag = dg_reqtab_handle_tag(h);
	struct dg_listener *l = srv && tag < srv->n_listeners ? &srv->listeners[tag] : NULL;

	if (!l) {
		log_misuse("a plugin %s a request handle no listener made (%#llx)", what,
		           (unsigned long long)h);
		return DG_ESTALE;
	}
	stale_count(l, what, h);
	return DG_ESTALE;
}

/* The live session a plugin's session handle names, or NULL: h is NULL,
 * or its session has closed (counted and logged as a stale call, "called
 * host->FN ..."), or no listener made it. Never dereferences h. */
static struct dg_session *handle_session(const struct dg_session *h, const char *fn)
{
	struct dg_server *srv = h ? servers[dg_session_handle_id(h)] : NULL;
	unsigned tag = dg_session_handle_tag(h);
	char what[80];

	if (!h)
		return NULL;
	if (!srv || tag >= srv->n_listeners) {
		log_misuse("a plugin called host->%s with a session handle no listener made (%p)",
		           fn, (const void *)h);
		return NULL;
	}
	struct dg_session *s = dg_session_lookup(&srv->listeners[tag].sessions, h);
	if (!s) {
		snprintf(what, sizeof(what), "called host->%s with a session that has closed", fn);
		stale_count(&srv->listeners[tag], what, (uint64_t)(uintptr_t)h);
	}
	return s;
}

static int req_reply(struct dg_server *srv, dg_req_t h, const struct dg_packet *pkt)
{
	uint32_t idx;

	if (!srv || !dg_reqtab_lookup(&srv->rt, h, &idx))
		return stale_call(srv, h, "replied to a completed request");
	if (!pkt) {
		struct dg_listener *l = REQ(srv, idx)->l;
		log_misuse("listener '%s': plugin '%s' replied with a NULL packet", l->conf->name,
		           l->plugin->name);
		return DG_EINVAL;
	}
	int rc = dg_tx_reply(srv, idx, pkt);
	dg_server_post_work(srv);
	return rc;
}

static int req_complete(struct dg_server *srv, dg_req_t h)
{
	uint32_t idx;

	if (!srv || !dg_reqtab_lookup(&srv->rt, h, &idx) || dg_dispatch_complete(srv, idx))
		return stale_call(srv, h, "completed a request twice or too late");
	dg_server_post_work(srv);
	return DG_OK;
}

/* ABI 1.0: a bare handle; the server is the one its id names. */
static int host_reply(dg_req_t h, const struct dg_packet *pkt)
{
	return req_reply(handle_server(h), h, pkt);
}

static int host_complete(dg_req_t h)
{
	return req_complete(handle_server(h), h);
}

/* The server of self, if h was made by self's listener: else NULL after a
 * misuse line (*rc DG_EINVAL) or a stale call (*rc DG_ESTALE). */
static struct dg_server *self_request(struct dg_instance *self, dg_req_t h, const char *fn,
                                      uint32_t *idx, int *rc)
{
	struct dg_listener *l = dg_host_instance(self, fn);

	*rc = DG_EINVAL;
	if (!l)
		return NULL;
	if (!dg_reqtab_lookup(&l->srv->rt, h, idx)) {
		*rc = stale_call(l->srv, h, "used a request handle that is complete");
		return NULL;
	}
	if (REQ(l->srv, *idx)->l != l) {
		log_misuse("listener '%s': plugin '%s' called host->%s with another listener's "
		           "request", l->conf->name, l->plugin->name, fn);
		return NULL;
	}
	return l->srv;
}

static int host_request_reply(struct dg_instance *self, dg_req_t h, const struct dg_packet *pkt)
{
	struct dg_listener *l = dg_host_instance(self, "request_reply");

	if (!l)
		return DG_EINVAL;
	if (dg_reqtab_handle_id(h) != l->srv->id)
		return stale_call(l->srv, h, "replied with a request handle of another server");
	return req_reply(l->srv, h, pkt);
}

static int host_request_complete(struct dg_instance *self, dg_req_t h)
{
	struct dg_listener *l = dg_host_instance(self, "request_complete");

	if (!l)
		return DG_EINVAL;
	if (dg_reqtab_handle_id(h) != l->srv->id)
		return stale_call(l->srv, h, "completed a request handle of another server");
	return req_complete(l->srv, h);
}

static int host_request_set_data(struct dg_instance *self, dg_req_t h, void *data,
                                 void (*free_fn)(void *data))
{
	uint32_t idx;
	int rc;
	struct dg_server *srv = self_request(self, h, "request_set_data", &idx, &rc);

	if (!srv)
		return rc;
	struct dg_req *r = REQ(srv, idx);
	void *old = r->data;
	void (*old_free)(void *) = r->data_free;
	r->data = data;
	r->data_free = free_fn;
	if (old_free && old != data)
		old_free(old);
	return DG_OK;
}

static void *host_request_data(struct dg_instance *self, dg_req_t h)
{
	uint32_t idx;
	int rc;
	struct dg_server *srv = self_request(self, h, "request_data", &idx, &rc);

	return srv ? REQ(srv, idx)->data : NULL;
}

#define DG_AWAIT_MAX_MS 3600000u

static int host_request_await(struct dg_instance *self, dg_req_t h, unsigned timeout_ms,
                              dg_await_fn cb, void *arg)
{
	uint32_t idx;
	int rc;
	struct dg_server *srv = self_request(self, h, "request_await", &idx, &rc);

	if (!srv)
		return rc;
	if (!cb || !timeout_ms || timeout_ms > DG_AWAIT_MAX_MS) {
		struct dg_listener *l = REQ(srv, idx)->l;
		log_misuse("listener '%s': plugin '%s' called host->request_await with %s",
		           l->conf->name, l->plugin->name,
		           cb ? "a timeout out of 1 .. 3600000 ms" : "no callback");
		return DG_EINVAL;
	}
	/* From the plugin's own callbacks too: the cached clock may be old. */
	dg_server_clock(srv);
	rc = dg_dispatch_await(srv, idx, timeout_ms, cb, arg);
	dg_server_post_work(srv);
	if (rc == DG_ESTALE)
		return stale_call(srv, h, "awaited with a request that is complete");
	return rc;
}

static int host_session_send(struct dg_instance *self, struct dg_session *h,
                             const struct dg_packet *pkt)
{
	struct dg_listener *l = dg_host_instance(self, "session_send");

	if (!l)
		return DG_EINVAL;
	struct dg_session *sess = handle_session(h, "session_send");
	if (h && !sess)
		return DG_ESTALE;
	if (!sess || !pkt || sess->table != &l->sessions) {
		log_misuse("listener '%s': plugin '%s' called host->session_send with %s",
		           l->conf->name, l->plugin->name,
		           !pkt ? "a NULL packet" : !sess ? "a NULL session" :
		           "a session not of its listener");
		return DG_EINVAL;
	}
	int rc = dg_tx_push(l, sess, pkt);
	dg_server_post_work(l->srv);
	return rc;
}

DG_PRINTF(3, 4)
static void host_log(struct dg_instance *self, int level, const char *fmt, ...)
{
	struct dg_listener *l = dg_host_instance(self, "log");
	char msg[1024];
	va_list ap;

	if (!l || !fmt || !dg_log_enabled(level))
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	dg_log(level, "listener '%s': plugin '%s': %s", l->conf->name, l->plugin->name, msg);
}

static struct event_base *host_event_base(struct dg_instance *self)
{
	struct dg_listener *l = dg_host_instance(self, "event_base");

	return l ? l->srv->base : NULL;
}

static struct dg_timer *host_timer_start(struct dg_instance *self, unsigned ms,
                                         void (*cb)(void *arg), void *arg)
{
	struct dg_listener *l = dg_host_instance(self, "timer_start");

	if (!l)
		return NULL;
	if (!cb) {
		log_misuse("listener '%s': plugin '%s' started a timer without a callback",
		           l->conf->name, l->plugin->name);
		return NULL;
	}
	/* From the plugin's own callbacks too: the cached clock may be old. */
	dg_server_clock(l->srv);
	return dg_ptimer_start(l, ms, cb, arg);
}

static void host_timer_cancel(struct dg_timer *t)
{
	dg_ptimer_cancel(t);
}

static const char *host_peer_format(const struct dg_peer *peer, char *buf, size_t len)
{
	if (!buf || !len)
		return buf;
	if (!peer || !peer->addr) {
		snprintf(buf, len, "(no peer)");
		return buf;
	}
	return dg_addr_format(peer->addr, buf, len);
}

static void *host_session_get(struct dg_session *h)
{
	struct dg_session *sess = handle_session(h, "session_get");

	return sess ? sess->data : NULL;
}

static void host_session_set(struct dg_session *h, void *data, void (*free_fn)(void *))
{
	struct dg_session *sess = handle_session(h, "session_set");

	if (!sess) {
		/* The session is gone: data is freed as if it had closed at once
		 * (the plugin gave it away; nothing could free it later). */
		if (free_fn && data)
			free_fn(data);
		return;
	}
	if (sess->data_free && sess->data != data)
		sess->data_free(sess->data);
	sess->data = data;
	sess->data_free = free_fn;
}

static int host_addr_parse(const char *text, struct sockaddr_storage *ss, socklen_t *len)
{
	struct dg_addr a;

	if (!text || !ss || !len || !dg_addr_parse(text, &a))
		return DG_EINVAL;
	*ss = a.ss;
	*len = a.len;
	return DG_OK;
}

static int host_peer_validate(struct dg_session *h)
{
	struct dg_session *sess = handle_session(h, "peer_validate");

	if (!sess)
		return h ? DG_ESTALE : DG_EINVAL;
	dg_session_validate(sess->table, sess);
	return DG_OK;
}

/* The plugin's declared options, filled in before init() (server.c). */
static const void *host_options(struct dg_instance *self)
{
	struct dg_listener *l = dg_host_instance(self, "options");

	return l ? dg_options_data(l->options) : NULL;
}

/* The clock timers, deadlines and await steps are armed on (refreshed:
 * from a plugin's own callback the cached one may be old). */
static uint64_t host_now_ms(struct dg_instance *self)
{
	struct dg_listener *l = dg_host_instance(self, "now_ms");

	if (!l)
		return 0;
	dg_server_clock(l->srv);
	return l->srv->now_ms;
}

/* host->secret: made in the master before any fork (dg_host_secret_init
 * from main), so every worker inherits the same bytes; the harness makes
 * them on first use. Written once, then only read. */
static unsigned char host_secret_bytes[32];
static bool host_secret_made;

int dg_host_secret_init(void)
{
	if (host_secret_made)
		return DG_OK;
	if (getrandom(host_secret_bytes, sizeof(host_secret_bytes), 0) != sizeof(host_secret_bytes))
		return DG_ERROR;
	host_secret_made = true;
	return DG_OK;
}

static const unsigned char *host_secret(struct dg_instance *self)
{
	if (!dg_host_instance(self, "secret") || dg_host_secret_init())
		return NULL;
	return host_secret_bytes;
}

/* Every member of ABI 1.3 is implemented: the size offered is the whole
 * struct (DG_HOST_HAS() says yes to each). */
const struct dg_host dg_host_table = {
	.size = sizeof(struct dg_host),
	.abi_major = DG_PLUGIN_ABI_MAJOR,
	.abi_minor = DG_PLUGIN_ABI_MINOR,
	.log = host_log,
	.reply = host_reply,
	.complete = host_complete,
	.event_base = host_event_base,
	.timer_start = host_timer_start,
	.timer_cancel = host_timer_cancel,
	.peer_format = host_peer_format,
	.session_get = host_session_get,
	.session_set = host_session_set,
	.addr_parse = host_addr_parse,
	.peer_validate = host_peer_validate,
	.metric_new = dg_pmetric_new,
	.metric_add = dg_pmetric_add,
	.metric_set = dg_pmetric_set,
	.request_reply = host_request_reply,
	.request_complete = host_request_complete,
	.request_set_data = host_request_set_data,
	.request_data = host_request_data,
	.request_await = host_request_await,
	.session_send = host_session_send,
	.options = host_options,
	.now_ms = host_now_ms,
	.secret = host_secret,
};
