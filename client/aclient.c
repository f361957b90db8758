/* The asynchronous client: requests in flight on a libevent base, replies
 * matched by an id member (JSON) or in arrival order. */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <jansson.h>

#include "conn.h"

#define BUCKETS 1024

struct pend {
	struct pend *prev, *next; /* in send order */
	struct pend *hnext;       /* id hash chain */
	struct dg_aclient *ac;
	char *key;                /* compact JSON of the id, or NULL */
	uint32_t hash;
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
	json_int_t next_id;
	struct pend *head, *tail;
	size_t pending;
	struct pend *buckets[BUCKETS];
	unsigned busy;  /* inside callbacks */
	bool doomed;    /* freed from a callback: free when they return */
};

static uint32_t hash_key(const char *s)
{
	uint32_t h = 2166136261u;
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 16777619u;
	return h;
}

static void unlink_pend(struct dg_aclient *ac, struct pend *p)
{
	if (p->prev)
		p->prev->next = p->next;
	else
		ac->head = p->next;
	if (p->next)
		p->next->prev = p->prev;
	else
		ac->tail = p->prev;
	if (p->key) {
		struct pend **pp = &ac->buckets[p->hash % BUCKETS];
		while (*pp && *pp != p)
			pp = &(*pp)->hnext;
		if (*pp)
			*pp = p->hnext;
	}
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

static void on_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct pend *p = arg;
	struct dg_aclient *ac = p->ac;
	struct dg_client_error e;
	(void)fd, (void)what;

	dg_conn_fail(&e, DG_ETIMEDOUT, 0, 0, "no reply from %s within %u ms", ac->conn.name, ac->timeout_ms);
	finish(p, DG_ETIMEDOUT, NULL, &e);
	if (ac->doomed && !ac->busy)
		really_free(ac);
}

/* The request a reply answers: by id if the client matches ids and the
 * reply carries one, else the oldest. */
static struct pend *match(struct dg_aclient *ac, const struct dg_packet *pkt)
{
	json_t *id = ac->id_field && json_is_object(pkt->json) ? json_object_get(pkt->json, ac->id_field) : NULL;

	if (!id)
		return ac->head;
	char *key = json_dumps(id, JSON_COMPACT | JSON_ENCODE_ANY);
	struct pend *p = NULL;
	if (key) {
		uint32_t h = hash_key(key);
		for (p = ac->buckets[h % BUCKETS]; p; p = p->hnext)
			if (p->hash == h && !strcmp(p->key, key))
				break;
		free(key);
	}
	return p;
}

static void on_readable(evutil_socket_t fd, short what, void *arg)
{
	struct dg_aclient *ac = arg;
	struct dg_client_error e;
	(void)fd, (void)what;

	ac->busy++;
	for (int budget = 0; budget < 256 && !ac->doomed; budget++) {
		int rc = dg_conn_read(&ac->conn, &e);
		if (rc == DG_EAGAIN)
			break;
		if (rc == DG_ENET) {
			/* ICMP port unreachable: nobody will answer any of them. */
			while (ac->head && !ac->doomed)
				finish(ac->head, DG_ENET, NULL, &e);
			continue;
		}
		if (rc == DG_EPARSE) {
			if (ac->head)
				finish(ac->head, DG_EPARSE, NULL, &e);
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

int dg_aclient_new(struct event_base *base, const char *hostport, const char *codec_spec,
                   const struct dg_aclient_opts *opts, struct dg_aclient **out,
                   struct dg_client_error *err)
{
	struct dg_aclient_opts none = { 0 };
	struct dg_aclient *ac = calloc(1, sizeof(*ac));

	*out = NULL;
	if (!opts)
		opts = &none;
	if (!ac)
		return dg_conn_fail(err, DG_ENOMEM, 0, 0, "out of memory");
	int rc = dg_conn_open(&ac->conn, hostport, codec_spec, opts->max_datagram, 0, opts->rcvbuf, err);
	if (rc) {
		free(ac);
		return rc;
	}
	ac->base = base;
	ac->timeout_ms = opts->timeout_ms ? opts->timeout_ms : 1000;
	ac->id_field = opts->id_field ? strdup(opts->id_field) : NULL;
	ac->ev = event_new(base, ac->conn.fd, EV_READ | EV_PERSIST, on_readable, ac);
	if ((opts->id_field && !ac->id_field) || !ac->ev || event_add(ac->ev, NULL)) {
		dg_aclient_free(ac);
		return dg_conn_fail(err, DG_ENOMEM, 0, 0, "out of memory");
	}
	*out = ac;
	return DG_OK;
}

/* With id matching, the request's id (added if missing) as compact JSON;
 * *send is what to send (a new reference). */
static int request_id(struct dg_aclient *ac, const struct dg_packet *req, json_t **send, char **key)
{
	*send = NULL;
	*key = NULL;
	if (!ac->id_field || !json_is_object(req->json))
		return DG_OK;
	json_t *id = json_object_get(req->json, ac->id_field);
	if (!id) {
		*send = json_copy(req->json);
		if (!*send || json_object_set_new(*send, ac->id_field, json_integer(++ac->next_id)))
			return DG_ENOMEM;
		id = json_object_get(*send, ac->id_field);
	}
	*key = json_dumps(id, JSON_COMPACT | JSON_ENCODE_ANY);
	return *key ? DG_OK : DG_ENOMEM;
}

int dg_aclient_request(struct dg_aclient *ac, const struct dg_packet *req,
                       dg_aclient_cb cb, void *arg, struct dg_client_error *err)
{
	struct timeval tv = { .tv_sec = ac->timeout_ms / 1000, .tv_usec = (ac->timeout_ms % 1000) * 1000 };
	struct pend *p = calloc(1, sizeof(*p));
	json_t *with_id = NULL;
	int rc = DG_ENOMEM;

	if (ac->doomed) {
		free(p);
		return dg_conn_fail(err, DG_ECANCELED, 0, 0, "client for %s is closing", ac->conn.name);
	}
	if (!p || request_id(ac, req, &with_id, &p->key))
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
	p->ac = ac;
	p->cb = cb;
	p->arg = arg;
	p->prev = ac->tail;
	if (ac->tail)
		ac->tail->next = p;
	else
		ac->head = p;
	ac->tail = p;
	if (p->key) {
		p->hash = hash_key(p->key);
		p->hnext = ac->buckets[p->hash % BUCKETS];
		ac->buckets[p->hash % BUCKETS] = p;
	}
	ac->pending++;
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
