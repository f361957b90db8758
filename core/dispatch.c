/* The path of one datagram: size checks, accept(), the peer's session and
 * queue, framing, payload decode, the request table, the handler call,
 * completion and deadlines. The host functions plugins call are in host.c.
 *
 * The middle of server -> dispatch -> tx: called by the server's loop
 * events and by host.c, it calls tx (and the stand-alone helpers: reqtab,
 * session, timer, list), never the server. Work for after the current
 * callbacks (frames after a completed one, sessions with queued datagrams,
 * frames of an awaited datagram) goes on the server's ready lists, which
 * its caller sees (dg_server_has_work) and the server's post event runs
 * (dg_dispatch_run_ready). */
#include "config.h"

#include <stdint.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "addr.h"
#include "dispatch.h"
#include "handover.h"
#include "log.h"
#include "ratelimit.h"
#include "server.h"
#include "tx.h"

#define REQ(srv, idx) (&(srv)->rt.reqs[(idx)])
/* The request table's links, as the table is now (it moves when it grows). */
#define DL(srv) DG_IARRAY((srv)->rt.reqs, struct dg_req, dl)
#define NEXT(srv) DG_IARRAY((srv)->rt.reqs, struct dg_req, next)

static void log_parse_error(struct dg_listener *l, const struct sockaddr *peer, size_t len,
                            const struct dg_parse_error *pe);
static void session_done(struct dg_server *srv, struct dg_listener *l, struct dg_session *sess);
static void slot_release(struct dg_server *srv, uint32_t idx);
static void await_stop(struct dg_server *srv, uint32_t idx);
static void await_post(struct dg_server *srv, struct dg_await *aw);
static void inbox_handover(struct dg_server *srv, uint32_t idx);
static void deadline_link(struct dg_server *srv, uint32_t idx);
static void retire(struct dg_server *srv, uint32_t idx);

/* A conversation step of the request is armed (host->request_await): the
 * session's waiter, which a callback may set while IN_CALL. */
static bool step_armed(struct dg_server *srv, uint32_t idx)
{
	return REQ(srv, idx)->sess->waiter == idx + 1;
}

/* The callback returned with the request still in progress: it waits for
 * its step (armed in the call), else for complete() under
 * handler_timeout_ms. */
static void wait_after_call(struct dg_server *srv, uint32_t idx)
{
	if (step_armed(srv, idx)) {
		dg_req_set(REQ(srv, idx), DG_REQ_AWAITING);
		return;
	}
	dg_req_set(REQ(srv, idx), DG_REQ_PENDING);
	deadline_link(srv, idx);
}

/* Frames of the last awaited datagram are still to be delivered. */
static bool inbox_busy(struct dg_server *srv, const struct dg_session *sess)
{
	const struct dg_await *aw = srv->rt.reqs[sess->waiter - 1].aw;

	return aw->frame < aw->frames;
}

/* ---- deadlines: a list per listener in the order requests went pending,
 * which is deadline order since every request of a listener has the same
 * timeout. One timer per listener (on the server's heap) fires for the
 * head. --------------------------------------------------------------------- */

static void deadline_unlink(struct dg_server *srv, uint32_t idx)
{
	struct dg_listener *l = REQ(srv, idx)->l;

	if (dg_idlist_linked(&l->dl, DL(srv), idx))
		dg_idlist_unlink(&l->dl, DL(srv), idx);
}

/* The listener's timer is reserved on the heap (sessions_init): arming it
 * cannot fail. */
static void deadline_arm(struct dg_listener *l, uint64_t in_ms)
{
	(void)dg_tm_arm(&l->srv->timers, &l->deadline, l->srv->now_ms + in_ms);
}

static void deadline_link(struct dg_server *srv, uint32_t idx)
{
	struct dg_req *r = REQ(srv, idx);
	struct dg_listener *l = r->l;

	if (!l->conf->handler_timeout_ms || !l->deadline.cb)
		return;
	r->deadline_ms = srv->now_ms + l->conf->handler_timeout_ms;
	dg_idlist_push(&l->dl, DL(srv), idx);
	if (!dg_tm_armed(&l->deadline))
		deadline_arm(l, l->conf->handler_timeout_ms);
}

/* ---- completing requests ------------------------------------------------ */

static void req_free(struct dg_server *srv, uint32_t idx)
{
	struct dg_req *r = REQ(srv, idx);
	struct dg_session *sess = r->sess;

	if (r->rest) {
		for (unsigned i = r->frame; i < r->frames; i++)
			dg_codec_release(r->l->codec, &r->rest[i]);
		free(r->rest);
	}
	free(r->copy);
	r->rest = NULL;
	r->copy = NULL;
	srv->mem.held -= r->mem;
	r->mem = 0;
	deadline_unlink(srv, idx);
	slot_release(srv, idx);
	r = REQ(srv, idx);
	dg_reqtab_free(&srv->rt, idx);
	if (sess) {
		dg_session_req_done(&r->l->sessions, sess, srv->now_ms);
		session_done(srv, r->l, sess);
	}
}

static void make_ready(struct dg_server *srv, uint32_t idx)
{
	dg_ififo_push(&srv->ready, NEXT(srv), idx);
}

/* A pending frame is done (complete(), a timeout): the frames after it run
 * from the post event, never inside the plugin's own call. */
static void finish_pending(struct dg_server *srv, uint32_t idx)
{
	struct dg_req *r = REQ(srv, idx);

	dg_req_set(r, DG_REQ_READY);
	srv->pending--;
	deadline_unlink(srv, idx);
	r->frame++;
	make_ready(srv, idx);
}

static void handler_failed(struct dg_listener *l, const struct dg_req *r, int rc)
{
	unsigned long sup;
	char peer[64];

	l->c->handler_errors++;
	if (!dg_ratelimit_allow(&l->rl_handler, l->srv->now, &sup))
		return;
	dg_log(DG_LOG_WARN, "listener '%s': plugin '%s' failed a request from %s (rc %d)%s",
	       l->conf->name, l->plugin->name, dg_addr_format(&r->sess->peer.sa, peer, sizeof(peer)),
	       rc, sup ? " (and more, not logged)" : "");
}

/* What keep_rest() charges to the memory budget (process() reserves it
 * before decoding a datagram of several frames). */
static size_t rest_bytes(unsigned frames, size_t len)
{
	return len + frames * sizeof(struct dg_packet);
}

/* Keep the frames after the current one past the end of this call: they
 * borrow the receive buffer, which the next batch reuses. */
/* A packet's bytes moved with its datagram: those that point into dgram
 * point into copy afterwards; a packet of a codec with transforms owns its
 * bytes (dg_codec_release frees them) and keeps them where they are. */
static const void *rebase(const void *data, const unsigned char *dgram, size_t len,
                          const unsigned char *copy)
{
	uintptr_t p = (uintptr_t)data, start = (uintptr_t)dgram;

	if (!data || p < start || p - start > len)
		return data;
	return copy + (p - start);
}

static int keep_rest(struct dg_server *srv, struct dg_req *r, const struct dg_packet *pkts,
                     const unsigned char *dgram, size_t len)
{
	r->copy = malloc(len ? len : 1);
	r->rest = calloc(r->frames, sizeof(*r->rest));
	if (!r->copy || !r->rest)
		return DG_ENOMEM;
	r->mem += rest_bytes(r->frames, len);
	srv->mem.held += rest_bytes(r->frames, len);
	memcpy(r->copy, dgram, len);
	for (unsigned i = r->frame + 1; i < r->frames; i++) {
		r->rest[i] = pkts[i];
		r->rest[i].data = rebase(pkts[i].data, dgram, len, r->copy);
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
	struct dg_req *r = REQ(srv, idx);
	struct dg_listener *l = r->l;
	struct dg_peer peer = {
		.addr = &r->sess->peer.sa, .addrlen = r->sess->peerlen, .listener = l->conf->name,
		.local = &r->sess->local.sa, .locallen = r->sess->locallen,
	};

	while (r->frame < r->frames) {
		unsigned f = r->frame;
		struct dg_request rq = {
			.handle = dg_reqtab_handle(&srv->rt, idx), .packet = pkts[f], .peer = &peer,
			.session = dg_session_handle(r->sess), .frame = f, .frames = r->frames,
			.self = &l->inst,
		};
		int v;

		r->replies = 0;
		dg_req_set(r, DG_REQ_IN_CALL);
		if (perr)
			v = l->plugin->on_error(l->state, &rq, perr);
		else
			v = l->plugin->on_packet(l->state, &rq);
		r = REQ(srv, idx);
		if (!perr)
			dg_codec_release(l->codec, &pkts[f]);
		if (v < 0)
			handler_failed(l, r, v);
		else if (v == DG_DECLINED && perr)
			log_parse_error(l, &r->sess->peer.sa, pkts[f].len, perr);
		if (v == DG_PENDING && r->state == DG_REQ_IN_CALL) {
			if (f + 1 < r->frames && !r->rest && keep_rest(srv, r, pkts, dgram, len)) {
				/* Out of memory: the frames after this one are lost
				 * (and released here; req_free frees what keep_rest got). */
				handler_failed(l, r, DG_ENOMEM);
				for (unsigned i = f + 1; i < r->frames; i++)
					dg_codec_release(l->codec, &pkts[i]);
				free(r->rest);
				r->rest = NULL;
				r->frames = f + 1;
			}
			srv->pending++;
			wait_after_call(srv, idx);
			return;
		}
		if (r->state == DG_REQ_IN_CALL)
			retire(srv, idx);
		r = REQ(srv, idx);
		dg_req_set(r, DG_REQ_READY); /* the frame is done */
		r->frame++;
	}
	req_free(srv, idx);
}

/* ---- one datagram ------------------------------------------------------ */

/* How many requests of one peer may be in progress before its next
 * datagrams wait in its queue: peer_concurrency, or no limit with
 * "ordering": "none" (active is bounded by max_pending). */
static uint32_t peer_limit(const struct dg_listener *l)
{
	return l->conf->ordering ? l->conf->peer_concurrency : UINT32_MAX;
}

static void drop(struct dg_listener *l, enum dg_drop why)
{
	l->c->drop[why]++;
}

static void log_parse_error(struct dg_listener *l, const struct sockaddr *peer, size_t len,
                            const struct dg_parse_error *pe)
{
	unsigned long sup;
	char p[64], why[256];

	if (!dg_ratelimit_allow(&l->rl_parse, l->srv->now, &sup))
		return;
	if (sup)
		dg_log(DG_LOG_WARN, "listener '%s': %lu more undecodable datagrams were not logged",
		       l->conf->name, sup);
	/* The reason may quote the datagram (jansson's "near '...'"). */
	dg_log(DG_LOG_WARN, "listener '%s': cannot decode datagram from %s (%zu bytes, codec %s): "
	       "%s at byte %zu (frame %u)", l->conf->name, dg_addr_format(peer, p, sizeof(p)), len,
	       dg_codec_name(l->codec),
	       pe->reason ? dg_log_escape(pe->reason, strlen(pe->reason), why, sizeof(why)) : "?",
	       pe->offset, pe->frame);
}

static bool new_request(struct dg_server *srv, struct dg_sock *s, struct dg_session *sess,
                        unsigned frames, uint32_t *idx)
{
	if (!dg_reqtab_alloc(&srv->rt, idx))
		return false;
	struct dg_req *r = REQ(srv, *idx);
	r->l = s->l;
	r->tag = (uint8_t)(s->l - srv->listeners); /* at most 256 listeners (conf.c) */
	r->s = s;
	r->sess = sess;
	r->frames = frames;
	r->serial = ++srv->req_serial;
	dg_session_req_start(&s->l->sessions, sess);
	return true;
}

static void parse_failed(struct dg_sock *s, struct dg_session *sess, unsigned char *buf,
                         size_t len, const struct dg_parse_error *pe)
{
	struct dg_listener *l = s->l;
	struct dg_server *srv = l->srv;
	uint32_t idx;

	l->c->decode_errors++;
	if (l->plugin->on_error && new_request(srv, s, sess, 1, &idx)) {
		struct dg_packet raw = { .data = buf, .len = len, .json = NULL };
		run_frames(srv, idx, &raw, buf, len, pe);
		return;
	}
	log_parse_error(l, &sess->peer.sa, len, pe);
}

static void release_all(struct dg_listener *l, unsigned n)
{
	while (n--)
		dg_codec_release(l->codec, &l->srv->pkts[n]);
}

/* Decode every frame into srv->pkts, within `room` bytes of decoded
 * packets. DG_OK; DG_EINVAL (a parse error, in *pe); DG_ENOMEM (the packets
 * took more than room). Nothing stays decoded on failure. *used: the bytes
 * the packets hold. */
static int decode_all(struct dg_listener *l, const unsigned char *buf, unsigned nf, size_t room,
                      size_t *used, struct dg_parse_error *pe)
{
	struct dg_server *srv = l->srv;
	size_t start = dg_membudget_json_live();

	for (unsigned i = 0; i < nf; i++) {
		if (dg_codec_decode(l->codec, srv->frames[i].data, srv->frames[i].len,
		                    &srv->pkts[i], pe)) {
			pe->offset += (size_t)(srv->frames[i].data - buf);
			pe->frame = i;
			release_all(l, i);
			return DG_EINVAL;
		}
	}
	*used = dg_membudget_json_live() - start;
	if (*used <= room)
		return DG_OK;
	release_all(l, nf);
	return DG_ENOMEM;
}

/* Decode a datagram of sess and hand its frames to the handler. The memory
 * budget is checked before decoding (is there room at all, and for the
 * datagram copy a multi-frame request may keep) and after (what the
 * packets hold must fit, else they are released and the datagram dropped).
 * So a worker holds at most memory_budget, and for a moment while one
 * datagram decodes, that datagram's packets more. (Failing jansson's
 * allocations mid-parse instead is not safe: jansson 2.14's lexer reads
 * past its buffer when one fails.) */
/* Split and decode a datagram into srv->pkts within the memory budget:
 * true with its frames (*nf) and their decoded bytes (*used); false after
 * counting it dropped (drop_memory) or undecodable (parse_failed). Every
 * frame is decoded before any is delivered: a handler never sees half of a
 * datagram that turns out to be broken. */
static bool decode_datagram(struct dg_sock *s, struct dg_session *sess, unsigned char *buf,
                            size_t len, unsigned *nf, size_t *used)
{
	struct dg_listener *l = s->l;
	struct dg_server *srv = l->srv;
	struct dg_parse_error pe = { 0 };
	size_t room = dg_membudget_room(&srv->mem);

	if (!room) {
		drop(l, DG_DROP_MEMORY);
		return false;
	}
	if (dg_codec_split(l->codec, buf, len, srv->frames, nf, &pe)) {
		parse_failed(s, sess, buf, len, &pe);
		return false;
	}
	size_t reserve = *nf > 1 ? rest_bytes(*nf, len) : 0;
	if (reserve >= room) {
		drop(l, DG_DROP_MEMORY);
		return false;
	}
	int rc = decode_all(l, buf, *nf, room - reserve, used, &pe);
	if (rc == DG_ENOMEM) {
		drop(l, DG_DROP_MEMORY);
	} else if (rc) {
		/* A frame a transform refused (forged, corrupt, a bomb) is not
		 * what its sender wrote: no plugin code sees it, not even
		 * on_error; only the payload's own errors go there. */
		enum dg_codec_fault f = dg_codec_fault(l->codec);
		if (f == DG_FAULT_PAYLOAD) {
			parse_failed(s, sess, buf, len, &pe);
		} else {
			drop(l, f == DG_FAULT_INTEGRITY ? DG_DROP_INTEGRITY
			        : f == DG_FAULT_SIZE    ? DG_DROP_DECODED_SIZE
			        : f == DG_FAULT_MEMORY  ? DG_DROP_MEMORY
			                                : DG_DROP_CORRUPT);
			log_parse_error(l, &sess->peer.sa, len, &pe);
		}
	}
	return rc == DG_OK;
}

static void process(struct dg_sock *s, struct dg_session *sess, unsigned char *buf, size_t len)
{
	struct dg_listener *l = s->l;
	struct dg_server *srv = l->srv;
	size_t used;
	unsigned nf;
	uint32_t idx;

	if (!decode_datagram(s, sess, buf, len, &nf, &used))
		return;
	if (!new_request(srv, s, sess, nf, &idx)) {
		release_all(l, nf);
		return drop(l, DG_DROP_BUSY);
	}
	REQ(srv, idx)->mem = used;
	srv->mem.held += used;
	l->c->handled++;
	l->c->packets += nf;
	run_frames(srv, idx, srv->pkts, buf, len, NULL);
}

/* ---- the request's data slot and its handle ------------------------------ */

/* What a request holds for the plugin ends with its handle: the data
 * slot's free_fn runs (once: the slot is cleared first), a waiting await is
 * dropped, and frames of an awaited datagram not yet delivered go to
 * on_packet as a request of their own. May allocate a request: the table
 * may move. */
static void slot_release(struct dg_server *srv, uint32_t idx)
{
	struct dg_req *r = REQ(srv, idx);
	void *data = r->data;
	void (*data_free)(void *) = r->data_free;
	struct dg_await *aw = r->aw;

	r->data = NULL;
	r->data_free = NULL;
	if (step_armed(srv, idx))
		await_stop(srv, idx);
	if (data_free)
		data_free(data);
	if (aw && aw->frame < aw->frames)
		inbox_handover(srv, idx);
}

/* The request's handle dies (the frame is done): its data slot is freed
 * (free_fn called) and a waiting await cancelled without its callback. */
static void retire(struct dg_server *srv, uint32_t idx)
{
	REQ(srv, idx)->gen++;
	slot_release(srv, idx);
}

int dg_dispatch_complete(struct dg_server *srv, uint32_t idx)
{
	enum dg_req_state st = (enum dg_req_state)REQ(srv, idx)->state;

	if (st != DG_REQ_IN_CALL && st != DG_REQ_PENDING && st != DG_REQ_AWAITING)
		return DG_ESTALE;
	retire(srv, idx); /* the handle is dead from here on */
	if (st == DG_REQ_IN_CALL)
		dg_req_set(REQ(srv, idx), DG_REQ_DONE_IN_CALL); /* the frame ends when it returns */
	else
		finish_pending(srv, idx);
	return DG_OK;
}

/* ---- conversations (host->request_await) ------------------------------- */

static void await_timeout(struct dg_tm *tm, void *arg);

static struct dg_await *await_new(struct dg_server *srv, uint32_t idx)
{
	struct dg_await *aw = calloc(1, sizeof(*aw));

	if (!aw)
		return NULL;
	dg_tm_init(&aw->tm, await_timeout, aw);
	aw->srv = srv;
	aw->idx = idx;
	return aw;
}

static void inbox_free(struct dg_server *srv, struct dg_await *aw)
{
	struct dg_listener *l = REQ(srv, aw->idx)->l;

	for (unsigned i = aw->frame; i < aw->frames; i++)
		dg_codec_release(l->codec, &aw->pkts[i]);
	free(aw->pkts);
	free(aw->copy);
	aw->pkts = NULL;
	aw->copy = NULL;
	aw->frame = aw->frames = 0;
	srv->mem.held -= aw->mem;
	aw->mem = 0;
}

/* The request ended with frames of an awaited datagram undelivered: they
 * go to on_packet, as the frames after a pending one do. */
static void inbox_handover(struct dg_server *srv, uint32_t idx)
{
	struct dg_req *r = REQ(srv, idx);
	struct dg_await *aw = r->aw;
	struct dg_sock *s = r->s;
	struct dg_session *sess = r->sess;
	uint32_t n;

	if (srv->aborting || !new_request(srv, s, sess, aw->frames, &n)) {
		if (!srv->aborting)
			handler_failed(s->l, REQ(srv, idx), DG_EBUSY);
		inbox_free(srv, aw);
		return;
	}
	r = REQ(srv, n);
	r->frame = aw->frame;
	r->rest = aw->pkts;
	r->copy = aw->copy;
	r->mem = aw->mem;
	aw->pkts = NULL;
	aw->copy = NULL;
	aw->frame = aw->frames = 0;
	aw->mem = 0;
	make_ready(srv, n);
}

/* The request stops waiting (its step fired, or it ended). */
static void await_stop(struct dg_server *srv, uint32_t idx)
{
	struct dg_req *r = REQ(srv, idx);

	if (r->sess->waiter == idx + 1)
		r->sess->waiter = 0;
	dg_tm_cancel(&srv->timers, &r->aw->tm);
}

/* One step ends: cb gets the packet (status DG_OK), DG_ETIMEDOUT or
 * DG_ECANCELED. Afterwards: completed inside the call, or waiting again,
 * or pending (handler_timeout_ms runs again), or, after DG_ECANCELED,
 * completed by the host. */
static void await_fire(struct dg_server *srv, uint32_t idx, const struct dg_packet *pkt,
                       unsigned frame, unsigned frames, int status)
{
	struct dg_req *r = REQ(srv, idx);
	struct dg_listener *l = r->l;
	struct dg_session *sess = r->sess;
	dg_await_fn cb = r->aw->cb;
	void *arg = r->aw->arg;
	struct dg_peer peer = {
		.addr = &sess->peer.sa, .addrlen = sess->peerlen, .listener = l->conf->name,
		.local = &sess->local.sa, .locallen = sess->locallen,
	};
	struct dg_request rq = {
		.handle = dg_reqtab_handle(&srv->rt, idx), .peer = &peer,
		.session = dg_session_handle(sess), .frame = frame, .frames = frames, .self = &l->inst,
	};

	if (pkt)
		rq.packet = *pkt;
	await_stop(srv, idx);
	r->replies = 0; /* max_replies_per_request counts per step */
	dg_req_set(r, DG_REQ_IN_CALL);
	cb(arg, rq.handle, pkt ? &rq : NULL, status);
	r = REQ(srv, idx);
	if (r->state == DG_REQ_IN_CALL && status == DG_ECANCELED)
		retire(srv, idx);
	else if (r->state == DG_REQ_IN_CALL)
		return wait_after_call(srv, idx);
	finish_pending(srv, idx);
}

static void await_timeout(struct dg_tm *tm, void *arg)
{
	struct dg_await *aw = arg;
	(void)tm;

	await_fire(aw->srv, aw->idx, NULL, 0, 0, DG_ETIMEDOUT);
}

/* The next frame of the awaited datagram, to the waiting request. */
static void inbox_deliver(struct dg_server *srv, struct dg_await *aw)
{
	struct dg_listener *l = REQ(srv, aw->idx)->l;
	unsigned f = aw->frame++;
	struct dg_packet pkt = aw->pkts[f];

	await_fire(srv, aw->idx, &pkt, f, aw->frames, DG_OK);
	dg_codec_release(l->codec, &pkt);
	aw = REQ(srv, aw->idx)->aw;
	if (aw->frame == aw->frames && aw->pkts)
		inbox_free(srv, aw);
}

/* Deliver from the post event, never inside request_await() itself. */
static void await_post(struct dg_server *srv, struct dg_await *aw)
{
	if (aw->posted)
		return;
	aw->posted = true;
	dg_fifo_push(&srv->aready, &aw->link);
}

/* The frames after the first of an awaited datagram wait in the await,
 * one per step. */
static int inbox_keep(struct dg_server *srv, struct dg_await *aw, unsigned nf,
                      const unsigned char *dgram, size_t len, size_t used)
{
	aw->copy = malloc(len ? len : 1);
	aw->pkts = calloc(nf, sizeof(*aw->pkts));
	if (!aw->copy || !aw->pkts) {
		free(aw->copy);
		free(aw->pkts);
		aw->copy = NULL;
		aw->pkts = NULL;
		return DG_ENOMEM;
	}
	memcpy(aw->copy, dgram, len);
	for (unsigned i = 1; i < nf; i++) {
		aw->pkts[i] = srv->pkts[i];
		aw->pkts[i].data = rebase(srv->pkts[i].data, dgram, len, aw->copy);
	}
	aw->frame = 1;
	aw->frames = nf;
	aw->mem = rest_bytes(nf, len) + used;
	srv->mem.held += aw->mem;
	return DG_OK;
}

/* A datagram of sess while a request waits for it (nothing of the peer's
 * older is queued): decoded as process() does, its first frame to the
 * waiting request. */
static void await_datagram(struct dg_sock *s, struct dg_session *sess, unsigned char *buf,
                           size_t len)
{
	struct dg_listener *l = s->l;
	struct dg_server *srv = l->srv;
	size_t used;
	uint32_t idx = sess->waiter - 1;
	unsigned nf;

	if (!decode_datagram(s, sess, buf, len, &nf, &used))
		return;
	struct dg_await *aw = REQ(srv, idx)->aw;
	if (nf > 1 && inbox_keep(srv, aw, nf, buf, len, used)) {
		release_all(l, nf);
		return drop(l, DG_DROP_MEMORY);
	}
	l->c->handled++;
	l->c->packets += nf;
	await_fire(srv, idx, &srv->pkts[0], 0, nf, DG_OK);
	dg_codec_release(l->codec, &srv->pkts[0]);
	aw = REQ(srv, idx)->aw;
	if (aw->frame == aw->frames && aw->pkts)
		inbox_free(srv, aw);
}

/* How long a retiring worker waits for the master's socket. */
#define DG_HO_TIMEOUT_MS 2000

static void conv_failed(struct dg_listener *l, const struct dg_session *sess, const char *why)
{
	unsigned long sup;
	char peer[64];

	l->c->handover_failures++;
	if (!dg_ratelimit_allow(&l->rl_handover, l->srv->now, &sup))
		return;
	dg_log(DG_LOG_WARN, "listener '%s': reload: the conversation with %s is cancelled: %s%s",
	       l->conf->name, dg_addr_format(&sess->peer.sa, peer, sizeof(peer)), why,
	       sup ? " (and more, not logged)" : "");
}

/* The session's peer gets a socket of its own, bound to the address it
 * sent to and connected to it, from the master (handover.h), so that its
 * next datagrams come to this worker rather than to the next generation.
 * DG_OK (it has one), or DG_ECANCELED: not while a reload hands over, or
 * it failed (counted and logged). */
static int conv_open(struct dg_server *srv, struct dg_session *sess)
{
	struct dg_sock *home = sess->sock; /* its last datagram's: a listener socket */
	struct dg_listener *l = home->l;
	char why[160];

	if (sess->conv)
		return DG_OK;
	if (!srv->ho_open)
		return DG_ECANCELED;
	if (srv->n_conv == srv->cfg->reload_conversations) {
		snprintf(why, sizeof(why), "reload_conversations (%u) have sockets already",
		         srv->cfg->reload_conversations);
		conv_failed(l, sess, why);
		return DG_ECANCELED;
	}
	int fd = dg_ho_connect(srv->ctl, (unsigned)(l - srv->listeners), (unsigned)(home - l->socks),
	                       &sess->local.sa, sess->locallen, &sess->peer.sa, sess->peerlen,
	                       DG_HO_TIMEOUT_MS);
	if (fd < 0) {
		snprintf(why, sizeof(why), "no socket of its own from the master: %s", strerror(errno));
		conv_failed(l, sess, why);
		return DG_ECANCELED;
	}
	struct dg_sock *c = &srv->conv[srv->n_conv++];
	c->l = l;
	c->home = home;
	c->fd = fd;
	memcpy(&c->bound.ss, &sess->local, sess->locallen);
	c->bound.len = sess->locallen;
	sess->conv = c;
	l->c->handovers++;
	return DG_OK;
}

int dg_dispatch_await(struct dg_server *srv, uint32_t idx, unsigned timeout_ms, dg_await_fn cb,
                      void *arg)
{
	struct dg_req *r = REQ(srv, idx);
	struct dg_session *sess = r->sess;
	if (r->state != DG_REQ_IN_CALL && r->state != DG_REQ_PENDING &&
	    r->state != DG_REQ_AWAITING)
		return DG_ESTALE; /* done, its next frame waits to run */
	/* Stopping, only a conversation a reload handed over (or hands over
	 * now) goes on. */
	if (srv->aborting || (srv->stopping && (sess->waiter || conv_open(srv, sess))))
		return DG_ECANCELED;
	if (sess->waiter)
		return DG_EBUSY;
	if (!r->aw && !(r->aw = await_new(srv, idx)))
		return DG_ENOMEM;
	if (dg_tm_arm(&srv->timers, &r->aw->tm, srv->now_ms + timeout_ms))
		return DG_ENOMEM;
	r->aw->cb = cb;
	r->aw->arg = arg;
	sess->waiter = idx + 1;
	if (r->state == DG_REQ_PENDING) /* else IN_CALL: AWAITING when the call returns */
		dg_req_set(r, DG_REQ_AWAITING);
	deadline_unlink(srv, idx); /* handler_timeout_ms is suspended meanwhile */
	if (r->aw->frame < r->aw->frames)
		await_post(srv, r->aw);
	else if (sess->q_len)
		session_done(srv, r->l, sess);
	return DG_OK;
}

/* Awaits with frames of their datagram to deliver (the post event). */
static void run_awaits(struct dg_server *srv)
{
	struct dg_await *aw;

	while ((aw = dg_list_entry(dg_fifo_pop(&srv->aready), struct dg_await, link))) {
		aw->posted = false;
		struct dg_req *r = REQ(srv, aw->idx);
		if (r->state == DG_REQ_AWAITING && aw->frame < aw->frames)
			inbox_deliver(srv, aw);
	}
}

void dg_dispatch_cancel_awaits(struct dg_server *srv)
{
	for (uint32_t i = 0; i < srv->rt.n; i++)
		if (REQ(srv, i)->state == DG_REQ_AWAITING)
			await_fire(srv, i, NULL, 0, 0, DG_ECANCELED);
}

void dg_dispatch_handover(struct dg_server *srv)
{
	for (uint32_t i = 0; i < srv->rt.n; i++)
		if (REQ(srv, i)->state == DG_REQ_AWAITING && conv_open(srv, REQ(srv, i)->sess))
			await_fire(srv, i, NULL, 0, 0, DG_ECANCELED);
}

static void close_session(struct dg_listener *l, struct dg_session *sess, int reason)
{
	unsigned dropped = 0;

	if (l->plugin->on_session_close)
		l->plugin->on_session_close(l->state, dg_session_handle(sess), reason);
	if (sess->data_free)
		sess->data_free(sess->data);
	dg_session_free(&l->sessions, sess, &dropped);
	l->c->drop[DG_DROP_SHUTDOWN] += dropped;
}

/* The session of (peer, local), made (evicting the least recently used
 * idle one if the table is full) if there is none. NULL: drop the datagram. */
static struct dg_session *session_for(struct dg_listener *l, const struct sockaddr *peer,
                                      socklen_t peerlen, const struct sockaddr *local,
                                      socklen_t locallen)
{
	struct dg_sessions *t = &l->sessions;
	struct dg_session *sess = dg_session_find(t, peer, local);

	if (sess) {
		dg_session_touch(t, sess, l->srv->now_ms);
		return sess;
	}
	/* A new peer is unvalidated: at max_unvalidated_peers it may only
	 * take an unvalidated peer's place; at max_peers an unvalidated one's
	 * first. So validated peers keep max_peers - max_unvalidated_peers
	 * places that no flood of new (spoofable) sources can take. Busy
	 * sessions are on neither idle list: this is O(1). */
	if (t->unvalidated >= l->conf->max_unvalidated_peers || t->count >= t->max) {
		struct dg_session *victim = t->unvalidated >= l->conf->max_unvalidated_peers ?
		        dg_session_lru_unvalidated(t) : dg_session_lru_idle(t);
		if (!victim)
			return NULL;
		l->c->sessions_evicted++;
		close_session(l, victim, DG_CLOSE_EVICTED);
	}
	sess = dg_session_create(t, peer, peerlen, local, locallen, l->srv->now_ms);
	if (!sess)
		return NULL;
	l->c->sessions++;
	return sess;
}

void dg_dispatch(struct dg_sock *s, unsigned char *buf, size_t len, int flags,
                 const struct sockaddr *peer, socklen_t peerlen,
                 const struct sockaddr *local, socklen_t locallen)
{
	struct dg_listener *l = s->l;

	struct dg_peer p = { .addr = peer, .addrlen = peerlen, .listener = l->conf->name,
	                     .local = local, .locallen = locallen };
	bool proven = false;

	l->c->rx++;
	l->c->rx_bytes += len;
	if (!dg_acl_allows(&l->conf->acl, peer))
		return drop(l, DG_DROP_ACL);
	/* Before the rate limit: a spoofer flooding "from" a client's address
	 * must not use up that client's per-source budget when the client
	 * proves its address (a DNS server cookie) and the spoofer cannot.
	 * Only a datagram that fits: past max_datagram (MSG_TRUNC) len is the
	 * datagram's, but buf holds max_datagram bytes of it. */
	if (l->prove && len <= l->conf->max_datagram && !(flags & MSG_TRUNC))
		proven = l->plugin->proves_source(l->state, &p, buf, len) != 0;
	if (proven ? !dg_throttle_total(&l->throttle, l->srv->now_ms)
	           : !dg_throttle_allow(&l->throttle, peer, l->srv->now_ms))
		return drop(l, DG_DROP_RATE_LIMITED);
	if (len > l->conf->max_datagram)
		return drop(l, DG_DROP_TOO_LARGE);
	if (flags & MSG_TRUNC)
		return drop(l, DG_DROP_TRUNCATED);
	if (l->plugin->accept && l->plugin->accept(l->state, &p))
		return drop(l, DG_DROP_PLUGIN);
	struct dg_session *sess = session_for(l, peer, peerlen, local, locallen);
	if (!sess)
		return drop(l, DG_DROP_PEERS_FULL);
	if (proven) {
		l->c->rx_proven++;
		dg_session_validate(&l->sessions, sess);
	}
	dg_tx_credit(l, sess, len);
	sess->sock = s;
	/* A conversation waits for this peer: its datagram goes there, unless
	 * older ones (queued, or frames of the last one) go first. */
	if (sess->waiter && !sess->q_len && !inbox_busy(l->srv, sess))
		return await_datagram(s, sess, buf, len);
	/* Per-peer order: while the peer has peer_concurrency requests in
	 * progress (or older datagrams waiting), this one waits too, undecoded. */
	if (sess->active >= peer_limit(l) || sess->q_len || sess->waiter) {
		bool queued;
		if (len + sizeof(struct dg_qitem) > dg_membudget_room(&l->srv->mem))
			return drop(l, DG_DROP_MEMORY);
		l->c->drop[DG_DROP_PEER_QUEUE] += dg_session_enqueue(&l->sessions, sess, s, buf, len,
		        l->conf->peer_queue, l->conf->queue_bytes,
		        (enum dg_drop_policy)l->conf->drop_policy, &queued);
		l->c->queued += queued;
		return;
	}
	process(s, sess, buf, len);
}

/* ---- work that runs after callbacks return ---------------------------- */

/* The listener's ready sessions run from the post event; the server keeps
 * a list of the listeners that have some. */
static void session_done(struct dg_server *srv, struct dg_listener *l, struct dg_session *sess)
{
	if ((sess->active >= peer_limit(l) && !sess->waiter) || !sess->q_len || sess->ready)
		return;
	dg_session_ready_push(&l->sessions, sess);
	if (!l->on_ready) {
		l->on_ready = true;
		dg_fifo_push(&srv->lready, &l->ready_link);
	}
}

/* A session's queued datagrams, in arrival order: to the request waiting
 * for them (a conversation), else as new requests until peer_concurrency
 * are in progress. */
static void run_session(struct dg_server *srv, struct dg_listener *l, struct dg_session *sess)
{
	uint32_t limit = peer_limit(l);

	while (sess->q_len && (sess->waiter ? !inbox_busy(srv, sess) : sess->active < limit)) {
		struct dg_sock *s = dg_session_q_first(sess)->s;
		struct dg_qitem *it = dg_session_dequeue(&s->l->sessions, sess);
		if (sess->waiter)
			await_datagram(s, sess, it->data, it->len);
		else
			process(s, sess, it->data, it->len);
		free(it);
	}
}

void dg_dispatch_run_ready(struct dg_server *srv)
{
	struct dg_listener *l;
	uint32_t idx;

	run_awaits(srv);
	while (dg_ififo_pop(&srv->ready, NEXT(srv), &idx)) {
		struct dg_req *r = REQ(srv, idx);
		if (r->state == DG_REQ_FREE)
			continue;
		if (r->frame < r->frames && r->rest)
			run_frames(srv, idx, r->rest, r->copy, 0, NULL);
		else
			req_free(srv, idx);
	}
	while ((l = dg_list_entry(dg_fifo_pop(&srv->lready), struct dg_listener, ready_link))) {
		struct dg_session *sess;
		l->on_ready = false;
		while ((sess = dg_session_ready_pop(&l->sessions)))
			run_session(srv, l, sess);
	}
}

/* The plugin's on_expire() (with the data slot) or on_timeout(); then
 * the handle dies (the slot's free_fn runs) and the frame is done. */
static void expire(struct dg_server *srv, uint32_t idx)
{
	struct dg_req *r = REQ(srv, idx);
	struct dg_listener *l = r->l;
	dg_req_t h = dg_reqtab_handle(&srv->rt, idx);

	dg_req_set(r, DG_REQ_IN_CALL);
	if (l->plugin->on_expire) /* zero past a 1.0 descriptor (loader.c copies it) */
		l->plugin->on_expire(l->state, h, r->data);
	else if (l->plugin->on_timeout)
		l->plugin->on_timeout(l->state, h);
	if (REQ(srv, idx)->state == DG_REQ_IN_CALL)
		retire(srv, idx); /* the plugin's handle dies here */
	finish_pending(srv, idx);
}

/* Timeouts handled per callback before the loop gets a turn. */
#define DG_DEADLINE_BATCH 1024

static void on_deadline(struct dg_tm *tm, void *arg)
{
	struct dg_listener *l = arg;
	struct dg_server *srv = l->srv;
	unsigned n = 0;
	(void)tm;

	while (dg_idlist_first(&l->dl)) {
		uint32_t idx = dg_idlist_first(&l->dl) - 1;
		struct dg_req *r = REQ(srv, idx);
		if (r->deadline_ms > srv->now_ms) {
			deadline_arm(l, r->deadline_ms - srv->now_ms);
			break;
		}
		if (n++ == DG_DEADLINE_BATCH) {
			/* Many at once: the rest after the loop has polled the
			 * sockets (the heap runs a timer armed now on its next
			 * run), so datagrams are not kept waiting meanwhile. */
			deadline_arm(l, 0);
			break;
		}
		deadline_unlink(srv, idx);
		l->c->timeouts++;
		expire(srv, idx);
	}
}

/* The sweep's period: a quarter of session_idle_ms, at most a second. */
static uint64_t sweep_tick(const struct dg_listener *l)
{
	unsigned idle = l->conf->session_idle_ms;

	return idle / 4 < 1 ? 1 : idle / 4 < 1000 ? idle / 4 : 1000;
}

/* Idle sessions, oldest first; a bounded number per tick keeps the loop
 * responsive when many expire at once. */
static void on_sweep(struct dg_tm *tm, void *arg)
{
	struct dg_listener *l = arg;
	struct dg_session *sess;
	unsigned n = 0;

	(void)dg_tm_arm(&l->srv->timers, tm, l->srv->now_ms + sweep_tick(l)); /* reserved */
	while (n++ < 10000 &&
	       (sess = dg_session_expired(&l->sessions, l->srv->now_ms, l->conf->session_idle_ms))) {
		l->c->sessions_idle++;
		close_session(l, sess, DG_CLOSE_IDLE);
	}
}

int dg_dispatch_sessions_init(struct dg_listener *l)
{
	if (dg_sessions_init(&l->sessions, l->conf->max_peers))
		return DG_ENOMEM;
	l->sessions.id = l->srv->id; /* registered before its listeners (server.c) */
	l->sessions.tag = (uint8_t)(l - l->srv->listeners);
	/* The server's totals of queued datagrams and bytes (the memory
	 * budget) follow every listener's queues: the table keeps them. */
	l->sessions.total_len = &l->srv->queued;
	l->sessions.total_bytes = &l->srv->mem.queued;
	/* Places kept for both timers: arming them later cannot fail. */
	dg_tm_init(&l->sweep, on_sweep, l);
	dg_tm_init(&l->deadline, on_deadline, l);
	if (dg_tm_reserve(&l->srv->timers, &l->sweep) || dg_tm_reserve(&l->srv->timers, &l->deadline))
		return DG_ENOMEM;
	return dg_tm_arm(&l->srv->timers, &l->sweep, l->srv->now_ms + sweep_tick(l));
}

/* Shutdown: every session closes (the plugin is told), queued datagrams
 * are dropped and counted. */
void dg_dispatch_sessions_close(struct dg_listener *l, int reason)
{
	struct dg_session *sess;

	while ((sess = dg_session_any(&l->sessions)))
		close_session(l, sess, reason);
	dg_sessions_release(&l->sessions);
	dg_tm_unreserve(&l->srv->timers, &l->sweep);
	dg_tm_unreserve(&l->srv->timers, &l->deadline);
	l->sweep.cb = l->deadline.cb = NULL;
}

/* Shutdown: every request still in flight is abandoned without a reply. */
void dg_dispatch_abort_all(struct dg_server *srv)
{
	/* Steps still waiting get DG_ECANCELED first (the plugin is there). */
	dg_dispatch_cancel_awaits(srv);
	srv->aborting = true;
	dg_ififo_init(&srv->ready);
	dg_fifo_init(&srv->lready);
	dg_fifo_init(&srv->aready);
	for (uint32_t i = 0; i < srv->rt.n; i++) {
		struct dg_req *r = REQ(srv, i);
		if (r->state == DG_REQ_FREE)
			continue;
		if (r->state == DG_REQ_PENDING || r->state == DG_REQ_AWAITING)
			srv->pending--;
		/* On the ready list (never run now), so req_free queues no more work. */
		dg_session_ready_push(&r->l->sessions, r->sess);
		req_free(srv, i);
	}
	for (uint32_t i = 0; i < srv->rt.n; i++) {
		struct dg_await *aw = REQ(srv, i)->aw;
		if (!aw)
			continue;
		dg_tm_cancel(&srv->timers, &aw->tm);
		free(aw);
		REQ(srv, i)->aw = NULL;
	}
}
