/* Replies: encoded straight into the worker's send batch, coalesced per
 * request while the batch is open, sent with one sendmmsg per socket run.
 * What the kernel cannot take now (EAGAIN, ENOBUFS) waits in a bounded
 * per-socket queue flushed on EV_WRITE; nothing is dropped uncounted.
 *
 * The bottom of server -> dispatch -> tx (host.c, the plugins' way in,
 * calls dispatch and tx too): tx calls neither dispatch nor the server. It
 * fills the batch; the server sends it at the end of each loop event
 * (dg_server_after_events, its one flush point), except that a full batch
 * is sent here to make room (slot_open). */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "addr.h"
#include "log.h"
#include "ratelimit.h"
#include "server.h"
#include "tx.h"

static void tx_log(struct dg_listener *l, const struct sockaddr *to, const char *what, int err)
{
	unsigned long sup;
	char peer[64];

	if (!dg_ratelimit_allow(&l->rl_tx, l->srv->now, &sup))
		return;
	dg_log(DG_LOG_WARN, "listener '%s': reply to %s %s%s%s%s", l->conf->name,
	       dg_addr_format(to, peer, sizeof(peer)), what, err ? ": " : "",
	       err ? strerror(err) : "", sup ? " (and more, not logged)" : "");
}

/* The amplification guard counts bytes on the wire: a datagram's payload
 * and its IP and UDP headers, so that an empty datagram costs what it
 * costs the network (a flood of empty replies is a flood all the same). */
static size_t wire_bytes(const struct dg_session *sess, size_t payload)
{
	return payload + (sess->peer.sa.sa_family == AF_INET6 ? DG_WIRE_HDR_IPV6 : DG_WIRE_HDR_IPV4);
}

/* An unvalidated session earns amp_factor bytes of replies per byte it
 * sends (dg_tx_credit) and each reply spends its size (frames, framing and
 * the headers of the datagram that carries them), over the session's
 * life. */
void dg_tx_credit(const struct dg_listener *l, struct dg_session *sess, size_t len)
{
	uint64_t c = sess->amp_credit + (uint64_t)l->conf->amp_factor * wire_bytes(sess, len);

	sess->amp_credit = c > UINT32_MAX ? UINT32_MAX : (uint32_t)c;
}

/* A refused reply is silent to the peer: say it in the log, at most once
 * a minute per listener, with what to do about it. */
static void amp_log(struct dg_listener *l, const struct dg_session *sess, size_t bytes)
{
	unsigned long sup;
	char peer[64];

	if (!dg_ratelimit_allow(&l->rl_amp, l->srv->now, &sup))
		return;
	dg_log(DG_LOG_WARN, "listener '%s': a reply of %zu bytes to %s is over what the peer may "
	       "receive before it is validated (amplification.factor %u, %u bytes left): dropped "
	       "and counted in tx_drop_amplification%s; validate the peer in the plugin "
	       "(host->peer_validate) or raise amplification.factor", l->conf->name, bytes,
	       dg_addr_format(&sess->peer.sa, peer, sizeof(peer)), l->conf->amp_factor,
	       sess->amp_credit, sup ? " (more since the last line)" : "");
}

/* May bytes more go to sess? Spends them if so; counts the drop if not. */
static bool amp_spend(struct dg_listener *l, struct dg_session *sess, size_t bytes)
{
	if (!l->conf->amp_factor || sess->validated)
		return true;
	if (bytes > sess->amp_credit) {
		l->c->tx_drop[DG_TXDROP_AMPLIFICATION]++;
		amp_log(l, sess, bytes);
		return false;
	}
	sess->amp_credit -= (uint32_t)bytes;
	return true;
}

/* Append pkt to out, within the session's amplification credit: the
 * frame's bytes, and the datagram's headers with its first frame. */
static int append(struct dg_listener *l, struct dg_session *sess, const struct dg_packet *pkt,
                  struct dg_outdgram *out)
{
	size_t used = out->used;
	int rc = dg_codec_append(l->codec, pkt, out);

	if (rc)
		return rc;
	size_t cost = out->used - used;
	if (!amp_spend(l, sess, out->frames == 1 ? wire_bytes(sess, cost) : cost)) {
		out->used = used;
		out->frames--;
		return DG_EAGAIN;
	}
	return DG_OK;
}

static int slot_open(struct dg_listener *l, struct dg_sock *s, struct dg_session *sess,
                     const struct dg_packet *pkt, uint64_t owner);

int dg_tx_reply(struct dg_server *srv, uint32_t idx, const struct dg_packet *pkt)
{
	struct dg_req *r = &srv->rt.reqs[idx];
	struct dg_listener *l = r->l;
	int rc;

	if (r->replies++ >= l->conf->max_replies) {
		l->c->tx_drop[DG_TXDROP_TOO_MANY]++;
		return DG_E2BIG;
	}
	/* Coalesce with this request's open datagram while the batch is open.
	 * Slots are owned by request serial, never reused: a slot another
	 * request left in the batch (even one with this slot index in the
	 * request table) never takes these frames. */
	if (r->tx_slot < srv->tx_n && srv->tx[r->tx_slot].owner == r->serial) {
		rc = append(l, r->sess, pkt, &srv->tx[r->tx_slot].out);
		if (rc != DG_E2BIG)
			return rc;
	}
	rc = slot_open(l, r->s, r->sess, pkt, r->serial);
	if (rc == DG_OK)
		r->tx_slot = srv->tx_n - 1;
	return rc;
}

/* A datagram of its own in the batch for pkt, to sess's peer through s;
 * owner: the request serial that may coalesce into it (0: none). */
static int slot_open(struct dg_listener *l, struct dg_sock *s, struct dg_session *sess,
                     const struct dg_packet *pkt, uint64_t owner)
{
	struct dg_server *srv = l->srv;
	int rc;

	if (srv->tx_n == DG_TX_BATCH)
		dg_tx_flush(srv); /* full: the one flush not at the end of an event */
	struct dg_txslot *t = &srv->tx[srv->tx_n];
	t->out.buf = srv->tx_buf + (size_t)srv->tx_n * srv->bufsize;
	t->out.cap = l->conf->max_datagram;
	t->out.used = 0;
	t->out.frames = 0;
	rc = append(l, sess, pkt, &t->out);
	if (rc == DG_E2BIG) {
		l->c->tx_drop[DG_TXDROP_TOO_BIG]++;
		tx_log(l, &sess->peer.sa, "does not fit max_datagram", 0);
		return rc;
	}
	if (rc)
		return rc;
	t->s = s;
	memcpy(&t->to, &sess->peer, sess->peerlen);
	t->tolen = sess->peerlen;
	/* Copied, not pointed to: the session may close before the flush. */
	t->fromlen = s->pktinfo ? sess->locallen : 0;
	if (t->fromlen)
		memcpy(&t->from, &sess->local, t->fromlen);
	t->owner = owner;
	srv->tx_n++;
	return DG_OK;
}

/* A push leaves from the socket the peer last sent to, in a datagram of
 * its own (serial 0 is no request's, so nothing coalesces into it). */
int dg_tx_push(struct dg_listener *l, struct dg_session *sess, const struct dg_packet *pkt)
{
	int rc = slot_open(l, sess->sock, sess, pkt, 0);

	if (rc == DG_OK)
		l->c->tx_push++;
	return rc;
}

static void enqueue(struct dg_sock *s, const struct dg_txslot *t)
{
	struct dg_listener *l = s->l;
	const struct sockaddr_storage *to = &t->to;

	if (s->q_len >= l->conf->send_queue) {
		l->c->tx_drop[DG_TXDROP_QUEUE_FULL]++;
		tx_log(l, (const struct sockaddr *)to, "dropped: send queue full", 0);
		return;
	}
	struct dg_txq_item *it = malloc(sizeof(*it) + t->out.used);
	if (!it) {
		l->c->tx_drop[DG_TXDROP_QUEUE_FULL]++;
		tx_log(l, (const struct sockaddr *)to, "dropped: out of memory for the send queue", 0);
		return;
	}
	memcpy(&it->to, to, t->tolen);
	it->tolen = t->tolen;
	it->from = t->from;
	it->fromlen = t->fromlen;
	it->len = t->out.used;
	memcpy(it->data, t->out.buf, t->out.used);
	dg_fifo_push(&s->q, &it->link);
	if (s->q_len++ == 0)
		event_add(s->ev_write, NULL);
	l->c->tx_queued++;
}

static bool transient(int err)
{
	return err == EAGAIN || err == EWOULDBLOCK || err == ENOBUFS || err == EINTR;
}

/* The one way out for every datagram the server sends: the batch and the
 * send queue alike end here, in dg_io_send or the harness's sink. How many
 * of m[0..n) went out (a prefix), or -1 with errno. */
static int tx_send(struct dg_server *srv, struct dg_sock *s, dg_mmsg *m, unsigned n)
{
	return srv->send ? srv->send(srv->send_arg, s, m, n) : dg_io_send(s->fd, m, n);
}

/* Send slots [from, to) of the batch, all on socket s. */
static void send_run(struct dg_server *srv, struct dg_sock *s, unsigned from, unsigned to)
{
	struct dg_listener *l = s->l;

	if (s->q_len) /* keep order behind what already waits */
		goto queue_rest;
	for (unsigned i = from; i < to; i++) {
		struct dg_txslot *t = &srv->tx[i];
		srv->tx_iov[i].iov_base = t->out.buf;
		srv->tx_iov[i].iov_len = t->out.used;
		memset(&srv->tx_msgs[i].msg_hdr, 0, sizeof(srv->tx_msgs[i].msg_hdr));
		srv->tx_msgs[i].msg_hdr.msg_name = &t->to;
		srv->tx_msgs[i].msg_hdr.msg_namelen = t->tolen;
		srv->tx_msgs[i].msg_hdr.msg_iov = &srv->tx_iov[i];
		srv->tx_msgs[i].msg_hdr.msg_iovlen = 1;
		if (t->fromlen)
			dg_io_tx_srcaddr(&srv->tx_msgs[i].msg_hdr, &srv->tx_cmsg[i], &t->from.sa);
	}
	while (from < to) {
		int n = tx_send(srv, s, &srv->tx_msgs[from], to - from);
		if (n > 0) {
			for (unsigned i = from; i < from + (unsigned)n; i++)
				l->c->tx_bytes += srv->tx[i].out.used;
			l->c->tx += (unsigned)n;
			from += (unsigned)n;
			continue;
		}
		if (errno == EINTR)
			continue;
		if (transient(errno))
			break;
		/* This one datagram is refused (ICMP error, EPERM from a
		 * firewall, ...); the rest of the batch still goes out. */
		l->c->tx_drop[DG_TXDROP_SEND_ERROR]++;
		tx_log(l, (const struct sockaddr *)&srv->tx[from].to, "failed", errno);
		from++;
	}
queue_rest:
	for (; from < to; from++)
		enqueue(s, &srv->tx[from]);
}

void dg_tx_flush(struct dg_server *srv)
{
	unsigned i = 0;

	while (i < srv->tx_n) {
		struct dg_sock *s = srv->tx[i].s;
		unsigned j = i + 1;
		while (j < srv->tx_n && srv->tx[j].s == s)
			j++;
		send_run(srv, s, i, j);
		i = j;
	}
	srv->tx_n = 0;
}

void dg_tx_send_queued(struct dg_sock *s)
{
	struct dg_listener *l = s->l;
	struct dg_txq_item *it;

	while ((it = dg_list_entry(dg_fifo_first(&s->q), struct dg_txq_item, link))) {
		union dg_tx_cmsg cmsg;
		struct iovec iov = { .iov_base = it->data, .iov_len = it->len };
		dg_mmsg m = { .msg_hdr = {
			.msg_name = &it->to, .msg_namelen = it->tolen, .msg_iov = &iov, .msg_iovlen = 1,
		} };
		if (it->fromlen)
			dg_io_tx_srcaddr(&m.msg_hdr, &cmsg, &it->from.sa);
		int n = tx_send(l->srv, s, &m, 1);
		if (n == 0 || (n < 0 && transient(errno)))
			return; /* EV_WRITE stays armed */
		if (n < 0) {
			l->c->tx_drop[DG_TXDROP_SEND_ERROR]++;
			tx_log(l, (const struct sockaddr *)&it->to, "failed", errno);
		} else {
			l->c->tx++;
			l->c->tx_bytes += it->len;
		}
		dg_fifo_pop(&s->q);
		s->q_len--;
		free(it);
	}
	event_del(s->ev_write);
}

void dg_tx_queue_free(struct dg_sock *s)
{
	struct dg_txq_item *it;

	while ((it = dg_list_entry(dg_fifo_pop(&s->q), struct dg_txq_item, link))) {
		s->l->c->tx_drop[DG_TXDROP_SHUTDOWN]++;
		free(it);
	}
	s->q_len = 0;
}
