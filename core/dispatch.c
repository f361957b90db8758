/* The path of one datagram: size checks, accept(), the peer's session and
 * queue, framing, payload decode, the request table, the handler call,
 * completion and deadlines. The host functions plugins call are in host.c. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "server.h"

#define REQ(srv, idx) (&(srv)->rt.reqs[(idx)])

static void log_parse_error(struct dg_listener *l, const struct sockaddr *peer, size_t len,
                            const struct dg_parse_error *pe);
static void session_done(struct dg_server *srv, struct dg_listener *l, struct dg_session *sess);

/* ---- deadlines: a list per listener in the order requests went pending,
 * which is deadline order since every request of a listener has the same
 * timeout. One timer per listener fires for the head. ---------------------- */

static void deadline_unlink(struct dg_server *srv, uint32_t idx)
{
	struct dg_req *r = REQ(srv, idx);
	struct dg_listener *l = r->l;

	if (!r->on_deadline)
		return;
	if (r->dl_prev)
		REQ(srv, r->dl_prev - 1)->dl_next = r->dl_next;
	else
		l->dl_head = r->dl_next;
	if (r->dl_next)
		REQ(srv, r->dl_next - 1)->dl_prev = r->dl_prev;
	else
		l->dl_tail = r->dl_prev;
	r->dl_prev = r->dl_next = 0;
	r->on_deadline = false;
}

static void deadline_arm(struct dg_listener *l, uint64_t in_ms)
{
	struct timeval tv = { .tv_sec = (time_t)(in_ms / 1000), .tv_usec = (suseconds_t)(in_ms % 1000) * 1000 };

	evtimer_add(l->ev_deadline, &tv);
}

static void deadline_link(struct dg_server *srv, uint32_t idx)
{
	struct dg_req *r = REQ(srv, idx);
	struct dg_listener *l = r->l;

	if (!l->conf->handler_timeout_ms || !l->ev_deadline)
		return;
	r->deadline_ms = srv->now_ms + l->conf->handler_timeout_ms;
	r->on_deadline = true;
	r->dl_next = 0;
	r->dl_prev = l->dl_tail;
	if (l->dl_tail)
		REQ(srv, l->dl_tail - 1)->dl_next = idx + 1;
	else
		l->dl_head = idx + 1;
	l->dl_tail = idx + 1;
	if (!evtimer_pending(l->ev_deadline, NULL))
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
	dg_reqtab_free(&srv->rt, idx);
	if (sess) {
		dg_session_req_done(&r->l->sessions, sess, srv->now_ms);
		session_done(srv, r->l, sess);
	}
}

static void make_ready(struct dg_server *srv, uint32_t idx)
{
	REQ(srv, idx)->next = 0;
	if (srv->ready_tail)
		REQ(srv, srv->ready_tail - 1)->next = idx + 1;
	else
		srv->ready_head = idx + 1;
	srv->ready_tail = idx + 1;
	dg_server_post(srv);
}

/* A pending frame is done (complete(), a timeout): the frames after it run
 * from the post event, never inside the plugin's own call. */
void dg_dispatch_finish_pending(struct dg_server *srv, uint32_t idx)
{
	struct dg_req *r = REQ(srv, idx);

	r->pending = false;
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
			.session = r->sess, .frame = f, .frames = r->frames,
		};
		int v;

		r->replies = 0;
		r->in_call = true;
		if (perr)
			v = l->plugin->on_error(l->state, &rq, perr);
		else
			v = l->plugin->on_packet(l->state, &rq);
		r = REQ(srv, idx);
		r->in_call = false;
		if (!perr)
			dg_codec_release(l->codec, &pkts[f]);
		if (v < 0)
			handler_failed(l, r, v);
		else if (v == DG_DECLINED && perr)
			log_parse_error(l, &r->sess->peer.sa, pkts[f].len, perr);
		if (v == DG_PENDING && !r->done_in_call) {
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
			r->pending = true;
			srv->pending++;
			deadline_link(srv, idx);
			return;
		}
		if (!r->done_in_call)
			r->gen++;
		r->done_in_call = false;
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
		REQ(srv, idx)->parse_error = true;
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
static void process(struct dg_sock *s, struct dg_session *sess, unsigned char *buf, size_t len)
{
	struct dg_listener *l = s->l;
	struct dg_server *srv = l->srv;
	struct dg_parse_error pe = { 0 };
	size_t room = dg_membudget_room(&srv->mem), used;
	unsigned nf;
	uint32_t idx;

	if (!room)
		return drop(l, DG_DROP_MEMORY);
	if (dg_codec_split(l->codec, buf, len, srv->frames, &nf, &pe))
		return parse_failed(s, sess, buf, len, &pe);
	size_t reserve = nf > 1 ? rest_bytes(nf, len) : 0;
	if (reserve >= room)
		return drop(l, DG_DROP_MEMORY);
	/* Every frame is decoded before any is delivered: a handler never sees
	 * half of a datagram that turns out to be broken. */
	int rc = decode_all(l, buf, nf, room - reserve, &used, &pe);
	if (rc == DG_ENOMEM)
		return drop(l, DG_DROP_MEMORY);
	if (rc)
		return parse_failed(s, sess, buf, len, &pe);
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

static void close_session(struct dg_listener *l, struct dg_session *sess, int reason)
{
	unsigned dropped = 0;

	if (l->plugin->on_session_close)
		l->plugin->on_session_close(l->state, sess, reason);
	if (sess->data_free)
		sess->data_free(sess->data);
	size_t qbytes = l->sessions.q_bytes;
	l->srv->queued -= sess->q_len;
	dg_session_free(&l->sessions, sess, &dropped);
	l->srv->mem.queued -= qbytes - l->sessions.q_bytes;
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
	/* For host_peer_validate, which gets the session alone (the config
	 * allows at most 256 listeners). */
	sess->owner = (uint8_t)(l - l->srv->listeners);
	l->c->sessions++;
	return sess;
}

void dg_dispatch(struct dg_sock *s, unsigned char *buf, size_t len, int flags,
                 const struct sockaddr *peer, socklen_t peerlen,
                 const struct sockaddr *local, socklen_t locallen)
{
	struct dg_listener *l = s->l;

	l->c->rx++;
	l->c->rx_bytes += len;
	if (!dg_acl_allows(&l->conf->acl, peer))
		return drop(l, DG_DROP_ACL);
	if (!dg_throttle_allow(&l->throttle, peer, l->srv->now_ms))
		return drop(l, DG_DROP_RATE_LIMITED);
	if (len > l->conf->max_datagram)
		return drop(l, DG_DROP_TOO_LARGE);
	if (flags & MSG_TRUNC)
		return drop(l, DG_DROP_TRUNCATED);
	if (l->plugin->accept) {
		struct dg_peer p = { .addr = peer, .addrlen = peerlen, .listener = l->conf->name,
		                     .local = local, .locallen = locallen };
		if (l->plugin->accept(l->state, &p))
			return drop(l, DG_DROP_PLUGIN);
	}
	struct dg_session *sess = session_for(l, peer, peerlen, local, locallen);
	if (!sess)
		return drop(l, DG_DROP_PEERS_FULL);
	dg_tx_credit(l, sess, len);
	/* Per-peer order: while the peer has peer_concurrency requests in
	 * progress (or older datagrams waiting), this one waits too, undecoded. */
	if (sess->active >= peer_limit(l) || sess->q_len) {
		uint32_t before = sess->q_len;
		size_t qbytes = l->sessions.q_bytes;
		bool queued;
		if (len + sizeof(struct dg_qitem) > dg_membudget_room(&l->srv->mem))
			return drop(l, DG_DROP_MEMORY);
		l->c->drop[DG_DROP_PEER_QUEUE] += dg_session_enqueue(&l->sessions, sess, s, buf, len,
		        l->conf->peer_queue, l->conf->queue_bytes,
		        (enum dg_drop_policy)l->conf->drop_policy, &queued);
		l->c->queued += queued;
		l->srv->queued += sess->q_len;
		l->srv->queued -= before;
		l->srv->mem.queued += l->sessions.q_bytes - qbytes; /* size_t: a fall wraps right */
		return;
	}
	process(s, sess, buf, len);
}

/* ---- work that runs after callbacks return ---------------------------- */

/* The listener's ready sessions run from the post event; the server keeps
 * a list of the listeners that have some. */
static void session_done(struct dg_server *srv, struct dg_listener *l, struct dg_session *sess)
{
	if (sess->active >= peer_limit(l) || !sess->q_len || sess->ready)
		return;
	dg_session_ready_push(&l->sessions, sess);
	if (!l->on_ready) {
		l->on_ready = true;
		l->ready_next = NULL;
		if (srv->lready_tail)
			srv->lready_tail->ready_next = l;
		else
			srv->lready_head = l;
		srv->lready_tail = l;
	}
	dg_server_post(srv);
}

/* A session's queued datagrams, in arrival order, until peer_concurrency
 * requests are in progress. */
static void run_session(struct dg_server *srv, struct dg_listener *l, struct dg_session *sess)
{
	uint32_t limit = peer_limit(l);

	while (sess->active < limit && sess->q_len) {
		struct dg_sock *s = sess->q_head->s;
		size_t qbytes = s->l->sessions.q_bytes;
		struct dg_qitem *it = dg_session_dequeue(&s->l->sessions, sess);
		srv->queued--;
		srv->mem.queued -= qbytes - s->l->sessions.q_bytes;
		process(s, sess, it->data, it->len);
		free(it);
	}
}

void dg_dispatch_run_ready(struct dg_server *srv)
{
	while (srv->ready_head) {
		uint32_t idx = srv->ready_head - 1;
		struct dg_req *r = REQ(srv, idx);
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
	while (srv->lready_head) {
		struct dg_listener *l = srv->lready_head;
		struct dg_session *sess;
		srv->lready_head = l->ready_next;
		if (!srv->lready_head)
			srv->lready_tail = NULL;
		l->on_ready = false;
		while ((sess = dg_session_ready_pop(&l->sessions)))
			run_session(srv, l, sess);
	}
}

/* Timeouts handled per callback before the loop gets a turn. */
#define DG_DEADLINE_BATCH 1024

static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
	struct dg_listener *l = arg;
	struct dg_server *srv = l->srv;
	unsigned n = 0;
	(void)fd, (void)what;

	dg_server_clock(srv);
	while (l->dl_head) {
		uint32_t idx = l->dl_head - 1;
		struct dg_req *r = REQ(srv, idx);
		if (r->deadline_ms > srv->now_ms) {
			deadline_arm(l, r->deadline_ms - srv->now_ms);
			break;
		}
		if (n++ == DG_DEADLINE_BATCH) {
			/* Many at once: the rest after the loop has polled the
			 * sockets, so datagrams are not kept waiting meanwhile. */
			deadline_arm(l, 0);
			break;
		}
		deadline_unlink(srv, idx);
		l->c->timeouts++;
		if (l->plugin->on_timeout) {
			r->in_call = true;
			l->plugin->on_timeout(l->state, dg_reqtab_handle(&srv->rt, idx));
			r = REQ(srv, idx);
			r->in_call = false;
		}
		if (!r->done_in_call)
			r->gen++; /* the plugin's handle dies here */
		r->done_in_call = false;
		dg_dispatch_finish_pending(srv, idx);
	}
}

/* Idle sessions, oldest first; a bounded number per tick keeps the loop
 * responsive when many expire at once. */
static void on_sweep(evutil_socket_t fd, short what, void *arg)
{
	struct dg_listener *l = arg;
	struct dg_session *sess;
	unsigned n = 0;
	(void)fd, (void)what;

	dg_server_clock(l->srv);
	while (n++ < 10000 &&
	       (sess = dg_session_expired(&l->sessions, l->srv->now_ms, l->conf->session_idle_ms))) {
		l->c->sessions_idle++;
		close_session(l, sess, DG_CLOSE_IDLE);
	}
}

int dg_listener_sessions_init(struct dg_listener *l)
{
	unsigned idle = l->conf->session_idle_ms;
	unsigned tick = idle / 4 < 1000 ? idle / 4 : 1000;
	struct timeval tv = { .tv_sec = tick / 1000, .tv_usec = (tick % 1000) * 1000 };

	if (dg_sessions_init(&l->sessions, l->conf->max_peers))
		return DG_ENOMEM;
	l->ev_sweep = event_new(l->srv->base, -1, EV_PERSIST, on_sweep, l);
	l->ev_deadline = evtimer_new(l->srv->base, on_deadline, l);
	if (!l->ev_sweep || !l->ev_deadline || event_add(l->ev_sweep, &tv))
		return DG_ENOMEM;
	return DG_OK;
}

/* Shutdown: every session closes (the plugin is told), queued datagrams
 * are dropped and counted. */
void dg_listener_sessions_close(struct dg_listener *l, int reason)
{
	struct dg_session *sess;

	while ((sess = dg_session_any(&l->sessions)))
		close_session(l, sess, reason);
	dg_sessions_release(&l->sessions);
	if (l->ev_sweep)
		event_free(l->ev_sweep);
	if (l->ev_deadline)
		event_free(l->ev_deadline);
	l->ev_sweep = l->ev_deadline = NULL;
}

/* Shutdown: every request still in flight is abandoned without a reply. */
void dg_dispatch_abort_all(struct dg_server *srv)
{
	srv->ready_head = srv->ready_tail = 0;
	srv->lready_head = srv->lready_tail = NULL;
	for (uint32_t i = 0; i < srv->rt.n; i++) {
		struct dg_req *r = REQ(srv, i);
		if (!r->active)
			continue;
		if (r->pending)
			srv->pending--;
		/* On the ready list (never run now), so req_free queues no more work. */
		dg_session_ready_push(&r->l->sessions, r->sess);
		req_free(srv, i);
	}
}
