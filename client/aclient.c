/* The asynchronous client: requests in flight on a libevent base, replies
 * matched by an id member (JSON) or in arrival order.
 *
 * What each outcome is attributed to:
 *   - a reply: by id (an unknown id, or none, is dropped), or in arrival
 *     order to the oldest request sent on the current socket;
 *   - an ICMP error: Linux queues each one (IP_RECVERR) with the start of
 *     the datagram it answers; the request whose datagram starts with the
 *     same bytes gets it. The socket's single pending error says nothing
 *     about which datagram it was for and is only cleared.
 *   - a timeout: the request's own timer. In arrival order a timeout also
 *     moves the client to a fresh socket: the timed-out request's answer
 *     may still come, and in arrival order it would be taken for the next
 *     one's. Requests still in flight on the old socket can no longer be
 *     told from it, so their answers are dropped with the socket and they
 *     end with their own timeouts. */
#include "config.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>
#include <jansson.h>

#include "conn.h"

#define BUCKETS 1024
/* Bytes of a datagram's start that identify it in an ICMP error (which
 * quotes at least 520 bytes of it over IPv4, 1232 over IPv6). */
#define QUOTE 256

struct pend {
	struct pend *prev, *next; /* in send order */
	struct pend *hnext;       /* id hash chain */
	struct pend *qnext;       /* datagram-start hash chain */
	struct dg_aclient *ac;
	char *key;                /* compact JSON of the id, or NULL */
	uint32_t hash;
	uint32_t qhash;           /* of the first qlen bytes sent */
	size_t qlen;
	unsigned gen;             /* the socket it was sent on */
	dg_aclient_cb cb;
	void *arg;
	struct event *timer;
};

struct dg_aclient {
	struct dg_conn conn;
	struct event_base *base;
	struct event *ev;
	unsigned timeout_ms;
	char *id_field;
	long long next_id;
	struct pend *head, *tail;
	struct pend *fresh;       /* arrival order: oldest sent on this socket */
	unsigned gen;             /* sockets opened so far */
	bool renew_failed;        /* no fresh socket yet: refuse requests */
	size_t pending;
	struct pend *buckets[BUCKETS];
	struct pend *qbuckets[BUCKETS];
	unsigned busy;  /* inside callbacks */
	bool doomed;    /* freed from a callback: free when they return */
};

static void chain_del(struct pend **pp, struct pend *p, size_t link)
{
	while (*pp && *pp != p)
		pp = (struct pend **)((char *)*pp + link);
	if (*pp)
		*pp = *(struct pend **)((char *)p + link);
}

static void unlink_pend(struct dg_aclient *ac, struct pend *p)
{
	if (ac->fresh == p)
		ac->fresh = p->next; /* younger, so on the same socket */
	if (p->prev)
		p->prev->next = p->next;
	else
		ac->head = p->next;
	if (p->next)
		p->next->prev = p->prev;
	else
		ac->tail = p->prev;
	if (p->key)
		chain_del(&ac->buckets[p->hash % BUCKETS], p, offsetof(struct pend, hnext));
	chain_del(&ac->qbuckets[p->qhash % BUCKETS], p, offsetof(struct pend, qnext));
	ac->pending--;
}

static void really_free(struct dg_aclient *ac);

/* Call p's callback once and free p. */
static void finish(struct pend *p, int status, const struct dg_packet *reply,
                   const struct dg_client_error *err)
{
	struct dg_aclient *ac = p->ac;

	unlink_pend(ac, p);
	event_free(p->timer);
	free(p->key);
	ac->busy++;
	p->cb(p->arg, status, reply, err);
	ac->busy--;
	free(p);
}

static void on_readable(evutil_socket_t fd, short what, void *arg);

/* Arrival order after a timeout: a fresh socket for the requests to come;
 * the old one is closed with whatever answers it would still receive. */
static void renew_socket(struct dg_aclient *ac)
{
	ac->fresh = NULL;
	ac->gen++;
	ac->renew_failed = true;
	if (ac->ev)
		event_free(ac->ev); /* before its socket closes */
	ac->ev = NULL;
	if (dg_conn_renew(&ac->conn, false, NULL) != DG_OK)
		return; /* tried again at the next request */
	ac->ev = event_new(ac->base, ac->conn.fd, EV_READ | EV_PERSIST, on_readable, ac);
	if (ac->ev && event_add(ac->ev, NULL) == 0)
		ac->renew_failed = false;
}

static void on_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct pend *p = arg;
	struct dg_aclient *ac = p->ac;
	struct dg_client_error e;
	bool rotate = !ac->id_field && p->gen == ac->gen;
	(void)fd, (void)what;

	dg_conn_fail(&e, DG_ETIMEDOUT, 0, 0, "no reply from %s within %u ms", ac->conn.name, ac->timeout_ms);
	if (rotate)
		renew_socket(ac);
	finish(p, DG_ETIMEDOUT, NULL, &e);
	if (ac->doomed && !ac->busy)
		really_free(ac);
}

/* The request a reply answers, or NULL: by id if the client matches ids
 * (a reply without one, or with an unknown one, answers nothing in flight),
 * else the oldest sent on this socket. */
static struct pend *match(struct dg_aclient *ac, const struct dg_packet *pkt)
{
	if (!ac->id_field)
		return ac->fresh;
	char *key = dg_conn_id_of(ac->id_field, pkt);
	struct pend *p = NULL;
	if (key) {
		uint32_t h = dg_conn_hash(key, strlen(key));
		for (p = ac->buckets[h % BUCKETS]; p; p = p->hnext)
			if (p->hash == h && !strcmp(p->key, key))
				break;
		free(key);
	}
	return p;
}

/* The oldest request whose datagram starts with these bytes. */
static struct pend *match_quote(struct dg_aclient *ac, const unsigned char *data, size_t len)
{
	size_t qlen = len < QUOTE ? len : QUOTE;
	uint32_t h = dg_conn_hash(data, qlen);
	struct pend *found = NULL;

	for (struct pend *p = ac->qbuckets[h % BUCKETS]; p; p = p->qnext)
		if (p->qhash == h && p->qlen == qlen && p->gen == ac->gen)
			found = p; /* chains are newest first: keep the last */
	return found;
}

/* Queued ICMP errors, each to the request whose datagram it quotes. */
static void read_errors(struct dg_aclient *ac)
{
	struct dg_client_error e;
	size_t quoted;

	while (!ac->doomed && dg_conn_read_error(&ac->conn, &quoted, &e) == DG_OK) {
		struct pend *p = match_quote(ac, ac->conn.rxbuf, quoted);
		if (p)
			finish(p, DG_ENET, NULL, &e);
	}
}

static void on_readable(evutil_socket_t fd, short what, void *arg)
{
	struct dg_aclient *ac = arg;
	struct dg_client_error e;
	(void)fd, (void)what;

	ac->busy++;
	for (int budget = 0; budget < 256 && !ac->doomed; budget++) {
		if (ac->conn.recverr)
			read_errors(ac);
		if (ac->doomed)
			break;
		int rc = dg_conn_read(&ac->conn, &e);
		if (rc == DG_EAGAIN)
			break;
		if (rc == DG_ENET)
			continue; /* the socket's pending error: see read_errors */
		if (rc == DG_EPARSE) {
			/* Whose? In arrival order, the oldest's; with ids, unknown. */
			if (!ac->id_field && ac->fresh)
				finish(ac->fresh, DG_EPARSE, NULL, &e);
			continue;
		}
		for (unsigned i = 0; i < ac->conn.n && !ac->doomed; i++) {
			struct pend *p = match(ac, &ac->conn.pkts[i]);
			if (p)
				finish(p, DG_OK, &ac->conn.pkts[i], NULL);
		}
	}
	ac->busy--;
	if (ac->doomed && !ac->busy)
		really_free(ac);
}

/* The caller's options as this library reads them (client.h): the
 * members wholly within in->size, the defaults (0) for the rest. */
static int read_opts(const struct dg_aclient_opts *in, struct dg_aclient_opts *o,
                     struct dg_client_error *err)
{
	*o = (struct dg_aclient_opts)DG_ACLIENT_OPTS_INIT;
	if (!in)
		return DG_OK;
	int rc = dg_conn_opts_check(in, sizeof(*in), "dg_aclient_opts", "DG_ACLIENT_OPTS_INIT", err);
	if (rc)
		return rc;
	DG_CONN_OPT(o, in, struct dg_aclient_opts, timeout_ms);
	DG_CONN_OPT(o, in, struct dg_aclient_opts, max_datagram);
	DG_CONN_OPT(o, in, struct dg_aclient_opts, rcvbuf);
	DG_CONN_OPT(o, in, struct dg_aclient_opts, id_field);
	return DG_OK;
}

int dg_aclient_new(struct event_base *base, const char *hostport, const char *codec_spec,
                   const struct dg_aclient_opts *opts, struct dg_aclient **out,
                   struct dg_client_error *err)
{
	struct dg_aclient_opts o;
	struct dg_aclient *ac;

	*out = NULL;
	int rc = read_opts(opts, &o, err);
	if (rc)
		return rc;
	if (!(ac = calloc(1, sizeof(*ac))))
		return dg_conn_fail(err, DG_ENOMEM, 0, 0, "out of memory");
	rc = dg_conn_open(&ac->conn, hostport, codec_spec, o.max_datagram,
	                  0 | DG_CONN_RECVERR, o.rcvbuf, err);
	if (rc) {
		free(ac);
		return rc;
	}
	ac->base = base;
	ac->timeout_ms = o.timeout_ms ? o.timeout_ms : 1000;
	ac->id_field = o.id_field ? strdup(o.id_field) : NULL;
	ac->ev = event_new(base, ac->conn.fd, EV_READ | EV_PERSIST, on_readable, ac);
	if ((o.id_field && !ac->id_field) || !ac->ev || event_add(ac->ev, NULL)) {
		dg_aclient_free(ac);
		return dg_conn_fail(err, DG_ENOMEM, 0, 0, "out of memory");
	}
	*out = ac;
	return DG_OK;
}

/* Put a sent request in the list and the hashes. */
static void track(struct dg_aclient *ac, struct pend *p)
{
	p->ac = ac;
	p->gen = ac->gen;
	p->prev = ac->tail;
	if (ac->tail)
		ac->tail->next = p;
	else
		ac->head = p;
	ac->tail = p;
	if (!ac->fresh)
		ac->fresh = p;
	if (p->key) {
		p->hash = dg_conn_hash(p->key, strlen(p->key));
		p->hnext = ac->buckets[p->hash % BUCKETS];
		ac->buckets[p->hash % BUCKETS] = p;
	}
	p->qlen = ac->conn.last_len < QUOTE ? ac->conn.last_len : QUOTE;
	p->qhash = dg_conn_hash(ac->conn.txbuf, p->qlen);
	p->qnext = ac->qbuckets[p->qhash % BUCKETS];
	ac->qbuckets[p->qhash % BUCKETS] = p;
	ac->pending++;
}

int dg_aclient_request(struct dg_aclient *ac, const struct dg_packet *req,
                       dg_aclient_cb cb, void *arg, struct dg_client_error *err)
{
	struct timeval tv = { .tv_sec = ac->timeout_ms / 1000, .tv_usec = (ac->timeout_ms % 1000) * 1000 };
	struct pend *p;
	json_t *with_id = NULL;
	int rc = DG_ENOMEM;

	if (ac->doomed)
		return dg_conn_fail(err, DG_ECANCELED, 0, 0, "client for %s is closing", ac->conn.name);
	if (ac->renew_failed) {
		renew_socket(ac);
		if (ac->renew_failed)
			return dg_conn_fail(err, DG_ENET, 0, 0, "no fresh socket for %s after a timeout",
			                    ac->conn.name);
	}
	if (!(p = calloc(1, sizeof(*p))))
		goto out_fail;
	if (ac->id_field && dg_conn_tag(ac->id_field, &ac->next_id, req, &with_id, &p->key))
		goto out_fail;
	p->timer = evtimer_new(ac->base, on_timeout, p);
	if (!p->timer || evtimer_add(p->timer, &tv))
		goto out_fail;
	struct dg_packet out = *req;
	if (with_id)
		out.json = with_id;
	rc = dg_conn_send(&ac->conn, &out, 1, err);
	json_decref(with_id);
	with_id = NULL;
	if (rc)
		goto out_free;
	p->cb = cb;
	p->arg = arg;
	track(ac, p);
	return DG_OK;

out_fail:
	dg_conn_fail(err, rc, 0, 0, "out of memory");
out_free:
	json_decref(with_id);
	if (p) {
		if (p->timer)
			event_free(p->timer);
		free(p->key);
		free(p);
	}
	return rc;
}

size_t dg_aclient_pending(const struct dg_aclient *ac)
{
	return ac->pending;
}

static void really_free(struct dg_aclient *ac)
{
	struct dg_client_error e;

	dg_conn_fail(&e, DG_ECANCELED, 0, 0, "client for %s closed", ac->conn.name);
	ac->busy++; /* a callback freeing again is a no-op */
	while (ac->head)
		finish(ac->head, DG_ECANCELED, NULL, &e);
	if (ac->ev)
		event_free(ac->ev);
	dg_conn_close(&ac->conn);
	free(ac->id_field);
	free(ac);
}

void dg_aclient_free(struct dg_aclient *ac)
{
	if (!ac || ac->doomed)
		return;
	ac->doomed = true;
	if (!ac->busy)
		really_free(ac);
}
