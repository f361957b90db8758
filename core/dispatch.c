/* The path of one datagram: size checks, accept(), framing, payload decode,
 * the request table, the handler call, completion; and the host functions
 * plugins reach through struct dg_host. */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "server.h"

struct dg_server *dg_srv;

/* ---- request table ---------------------------------------------------- */

static inline dg_req_t handle_of(const struct dg_server *srv, uint32_t idx)
{
	return ((uint64_t)srv->reqs[idx].gen << 32) | (idx + 1);
}

/* The request a handle names, or NULL if it is stale. */
static struct dg_req *lookup(struct dg_server *srv, dg_req_t h, uint32_t *idx)
{
	uint32_t i = (uint32_t)(h & 0xffffffffu);

	if (!srv || i == 0 || i > srv->n_reqs)
		return NULL;
	struct dg_req *r = &srv->reqs[i - 1];
	if (!r->active || r->gen != (uint32_t)(h >> 32))
		return NULL;
	*idx = i - 1;
	return r;
}

int dg_reqs_init(struct dg_server *srv)
{
	srv->max_reqs = srv->cfg->max_pending;
	srv->n_reqs = srv->max_reqs < DG_REQS_INITIAL ? srv->max_reqs : DG_REQS_INITIAL;
	srv->reqs = calloc(srv->n_reqs, sizeof(*srv->reqs));
	if (!srv->reqs)
		return DG_ENOMEM;
	for (uint32_t i = 0; i < srv->n_reqs; i++)
		srv->reqs[i].next = i + 2 <= srv->n_reqs ? i + 2 : 0;
	srv->free_head = 1;
	return DG_OK;
}

/* Take a free request slot; the table doubles up to max_pending. Slots are
 * addressed by index, so moving the table does not break handles. */
static bool req_alloc(struct dg_server *srv, uint32_t *idx)
{
	if (!srv->free_head) {
		if (srv->n_reqs >= srv->max_reqs)
			return false;
		uint32_t n = srv->n_reqs * 2 < srv->max_reqs ? srv->n_reqs * 2 : srv->max_reqs;
		struct dg_req *t = realloc(srv->reqs, n * sizeof(*t));
		if (!t)
			return false;
		memset(t + srv->n_reqs, 0, (n - srv->n_reqs) * sizeof(*t));
		for (uint32_t i = srv->n_reqs; i < n; i++)
			t[i].next = i + 2 <= n ? i + 2 : 0;
		srv->free_head = srv->n_reqs + 1;
		srv->reqs = t;
		srv->n_reqs = n;
	}
	*idx = srv->free_head - 1;
	struct dg_req *r = &srv->reqs[*idx];
	srv->free_head = r->next;
	uint32_t gen = r->gen;
	memset(r, 0, sizeof(*r));
	r->gen = gen + 1;
	r->active = true;
	return true;
}

static void req_free(struct dg_server *srv, uint32_t idx)
{
	struct dg_req *r = &srv->reqs[idx];

	if (r->rest) {
		for (unsigned i = r->frame; i < r->frames; i++)
			dg_codec_release(r->l->codec, &r->rest[i]);
		free(r->rest);
	}
	free(r->copy);
	r->rest = NULL;
	r->copy = NULL;
	r->active = false;
	r->gen++;
	r->next = srv->free_head;
	srv->free_head = idx + 1;
}

/* ---- calling the handler ---------------------------------------------- */

static void log_parse_error(struct dg_listener *l, const struct sockaddr *peer, size_t len,
                            const struct dg_parse_error *pe);

static void handler_failed(struct dg_listener *l, const struct dg_req *r, int rc)
{
	unsigned long sup;
	char peer[64];

	l->c.handler_errors++;
	if (!dg_ratelimit_allow(&l->rl_handler, l->srv->now, &sup))
		return;
	dg_log(DG_LOG_WARN, "listener '%s': plugin '%s' failed a request from %s (rc %d)%s",
	       l->conf->name, l->plugin->name,
	       dg_addr_format((const struct sockaddr *)&r->peer, peer, sizeof(peer)), rc,
	       sup ? " (and more, not logged)" : "");
}

/* Keep the frames after the current one past the end of this call: they
 * borrow the receive buffer, which the next batch reuses. */
static int keep_rest(struct dg_req *r, const struct dg_packet *pkts,
                     const unsigned char *dgram, size_t len)
{
	r->copy = malloc(len ? len : 1);
	r->rest = calloc(r->frames, sizeof(*r->rest));
	if (!r->copy || !r->rest)
		return DG_ENOMEM;
	memcpy(r->copy, dgram, len);
	for (unsigned i = r->frame + 1; i < r->frames; i++) {
		r->rest[i] = pkts[i];
		r->rest[i].data = r->copy + ((const unsigned char *)pkts[i].data - dgram);
	}
	return DG_OK;
}

/* Deliver frames from r->frame on, until one stays pending or all are done.
 * pkts[] holds the decoded packets by frame index; dgram/len is where their
 * bytes live (only needed if a frame stays pending with frames after it). */
static void run_frames(struct dg_server *srv, uint32_t idx, struct dg_packet *pkts,
                       const unsigned char *dgram, size_t len,
                       const struct dg_parse_error *perr)
{
	struct dg_req *r = &srv->reqs[idx];
	struct dg_listener *l = r->l;
	struct dg_peer peer = {
		.addr = (const struct sockaddr *)&r->peer, .addrlen = r->peerlen,
		.listener = l->conf->name,
	};

	while (r->frame < r->frames) {
		unsigned f = r->frame;
		struct dg_request rq = {
			.handle = handle_of(srv, idx), .packet = pkts[f], .peer = &peer,
			.session = NULL, .frame = f, .frames = r->frames,
		};
		int v;

		r->in_call = true;
		if (perr)
			v = l->plugin->on_error(l->state, &rq, perr);
		else
			v = l->plugin->on_packet(l->state, &rq);
		r = &srv->reqs[idx];
		r->in_call = false;
		if (!perr)
			dg_codec_release(l->codec, &pkts[f]);
		if (v < 0)
			handler_failed(l, r, v);
		else if (v == DG_DECLINED && perr)
			log_parse_error(l, (const struct sockaddr *)&r->peer, pkts[f].len, perr);
		if (v == DG_PENDING && !r->done_in_call) {
			if (f + 1 < r->frames && !r->rest && keep_rest(r, pkts, dgram, len)) {
				/* Out of memory: the frames after this one are lost. */
				handler_failed(l, r, DG_ENOMEM);
				r->frames = f + 1;
			}
			r->pending = true;
			srv->pending++;
			return;
		}
		if (!r->done_in_call)
			r->gen++;
		r->done_in_call = false;
		r->frame++;
	}
	req_free(srv, idx);
}

/* Frames left after a deferred completion run from the post event, never
 * inside complete(): plugins are not re-entered from their own calls. */
void dg_dispatch_run_ready(struct dg_server *srv)
{
	while (srv->ready_head) {
		uint32_t idx = srv->ready_head - 1;
		struct dg_req *r = &srv->reqs[idx];
		srv->ready_head = r->next;
		if (!srv->ready_head)
			srv->ready_tail = 0;
		r->next = 0;
		if (!r->active)
			continue;
		if (r->frame < r->frames && r->rest)
			run_frames(srv, idx, r->rest, r->copy, 0, NULL);
		else
			req_free(srv, idx);
	}
}

static void make_ready(struct dg_server *srv, uint32_t idx)
{
	srv->reqs[idx].next = 0;
	if (srv->ready_tail)
		srv->reqs[srv->ready_tail - 1].next = idx + 1;
	else
		srv->ready_head = idx + 1;
	srv->ready_tail = idx + 1;
	dg_server_post(srv);
}

/* Shutdown: every request still in flight is completed without a reply. */
void dg_dispatch_abort_all(struct dg_server *srv)
{
	for (uint32_t i = 0; i < srv->n_reqs; i++) {
		struct dg_req *r = &srv->reqs[i];
		if (!r->active)
			continue;
		if (r->pending)
			srv->pending--;
		req_free(srv, i);
	}
	srv->ready_head = srv->ready_tail = 0;
}

/* ---- one datagram ------------------------------------------------------ */

static void drop(struct dg_listener *l, enum dg_drop why)
{
	l->c.drop[why]++;
}

static void log_parse_error(struct dg_listener *l, const struct sockaddr *peer, size_t len,
                            const struct dg_parse_error *pe)
{
	unsigned long sup;
	char p[64];

	if (!dg_ratelimit_allow(&l->rl_parse, l->srv->now, &sup))
		return;
	if (sup)
		dg_log(DG_LOG_WARN, "listener '%s': %lu more undecodable datagrams were not logged",
		       l->conf->name, sup);
	dg_log(DG_LOG_WARN, "listener '%s': cannot decode datagram from %s (%zu bytes, codec %s): "
	       "%s at byte %zu (frame %u)", l->conf->name, dg_addr_format(peer, p, sizeof(p)), len,
	       dg_codec_name(l->codec), pe->reason, pe->offset, pe->frame);
}

static void parse_failed(struct dg_sock *s, unsigned char *buf, size_t len,
                         const struct sockaddr *peer, socklen_t peerlen,
                         const struct dg_parse_error *pe)
{
	struct dg_listener *l = s->l;
	struct dg_server *srv = l->srv;
	uint32_t idx;

	l->c.decode_errors++;
	if (l->plugin->on_error && req_alloc(srv, &idx)) {
		struct dg_req *r = &srv->reqs[idx];
		struct dg_packet raw = { .data = buf, .len = len, .json = NULL };
		r->l = l;
		r->s = s;
		memcpy(&r->peer, peer, peerlen);
		r->peerlen = peerlen;
		r->frames = 1;
		r->parse_error = true;
		run_frames(srv, idx, &raw, buf, len, pe);
		return;
	}
	log_parse_error(l, peer, len, pe);
}

void dg_dispatch(struct dg_sock *s, unsigned char *buf, size_t len, int flags,
                 const struct sockaddr *peer, socklen_t peerlen)
{
	struct dg_listener *l = s->l;
	struct dg_server *srv = l->srv;
	struct dg_parse_error pe = { 0 };
	unsigned nf;
	uint32_t idx;

	l->c.rx++;
	l->c.rx_bytes += len;
	if (len > l->conf->max_datagram)
		return drop(l, DG_DROP_TOO_LARGE);
	if (flags & MSG_TRUNC)
		return drop(l, DG_DROP_TRUNCATED);
	if (l->plugin->accept) {
		struct dg_peer p = { .addr = peer, .addrlen = peerlen, .listener = l->conf->name };
		if (l->plugin->accept(l->state, &p))
			return drop(l, DG_DROP_PLUGIN);
	}
	if (dg_codec_split(l->codec, buf, len, srv->frames, &nf, &pe))
		return parse_failed(s, buf, len, peer, peerlen, &pe);
	/* Every frame is decoded before any is delivered: a handler never sees
	 * half of a datagram that turns out to be broken. */
	for (unsigned i = 0; i < nf; i++) {
		if (dg_codec_decode(l->codec, srv->frames[i].data, srv->frames[i].len,
		                    &srv->pkts[i], &pe)) {
			pe.offset += (size_t)(srv->frames[i].data - buf);
			pe.frame = i;
			while (i--)
				dg_codec_release(l->codec, &srv->pkts[i]);
			return parse_failed(s, buf, len, peer, peerlen, &pe);
		}
	}
	if (!req_alloc(srv, &idx)) {
		for (unsigned i = 0; i < nf; i++)
			dg_codec_release(l->codec, &srv->pkts[i]);
		return drop(l, DG_DROP_BUSY);
	}
	l->c.handled++;
	l->c.packets += nf;
	struct dg_req *r = &srv->reqs[idx];
	r->l = l;
	r->s = s;
	memcpy(&r->peer, peer, peerlen);
	r->peerlen = peerlen;
	r->frames = nf;
	run_frames(srv, idx, srv->pkts, buf, len, NULL);
}

/* ---- host functions ---------------------------------------------------- */

static int host_reply(dg_req_t h, const struct dg_packet *pkt)
{
	uint32_t idx;

	if (!lookup(dg_srv, h, &idx)) {
		dg_log(DG_LOG_WARN, "plugin replied to a completed request (handle %#llx)",
		       (unsigned long long)h);
		return DG_ESTALE;
	}
	return dg_tx_reply(dg_srv, idx, pkt);
}

static int host_complete(dg_req_t h)
{
	struct dg_server *srv = dg_srv;
	uint32_t idx;
	struct dg_req *r = lookup(srv, h, &idx);

	if (!r) {
		dg_log(DG_LOG_WARN, "plugin completed a request twice or too late (handle %#llx)",
		       (unsigned long long)h);
		return DG_ESTALE;
	}
	r->gen++; /* the handle is dead from here on */
	if (r->in_call) {
		r->done_in_call = true;
		return DG_OK;
	}
	r->pending = false;
	srv->pending--;
	r->frame++;
	make_ready(srv, idx);
	return DG_OK;
}

DG_PRINTF(3, 4)
static void host_log(struct dg_instance *self, int level, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	if (!dg_log_enabled(level))
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	dg_log(level, "listener '%s': plugin '%s': %s", self->l->conf->name,
	       self->l->plugin->name, msg);
}

static struct event_base *host_event_base(struct dg_instance *self)
{
	return self->l->srv->base;
}

static void timer_unlink(struct dg_timer *t)
{
	if (t->prev)
		t->prev->next = t->next;
	else
		t->l->timers = t->next;
	if (t->next)
		t->next->prev = t->prev;
	event_free(t->ev);
	free(t);
}

static void timer_fire(evutil_socket_t fd, short what, void *arg)
{
	struct dg_timer *t = arg;
	void (*cb)(void *) = t->cb;
	void *cbarg = t->arg;
	(void)fd, (void)what;

	timer_unlink(t);
	cb(cbarg);
}

static struct dg_timer *host_timer_start(struct dg_instance *self, unsigned ms,
                                         void (*cb)(void *arg), void *arg)
{
	struct dg_listener *l = self->l;
	struct dg_timer *t = calloc(1, sizeof(*t));
	struct timeval tv = { .tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000 };

	if (!t)
		return NULL;
	t->ev = evtimer_new(l->srv->base, timer_fire, t);
	if (!t->ev || evtimer_add(t->ev, &tv)) {
		if (t->ev)
			event_free(t->ev);
		free(t);
		return NULL;
	}
	t->l = l;
	t->cb = cb;
	t->arg = arg;
	t->next = l->timers;
	if (t->next)
		t->next->prev = t;
	l->timers = t;
	return t;
}

static void host_timer_cancel(struct dg_timer *t)
{
	if (t)
		timer_unlink(t);
}

void dg_timers_cancel_all(struct dg_listener *l)
{
	while (l->timers)
		timer_unlink(l->timers);
}

static const char *host_peer_format(const struct dg_peer *peer, char *buf, size_t len)
{
	return dg_addr_format(peer->addr, buf, len);
}

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
};
