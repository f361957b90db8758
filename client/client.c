/* The blocking client. */
#include "config.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "conn.h"

struct dg_client {
	struct dg_conn conn;
	unsigned timeout_ms;
	unsigned retries;
	char *id_field;   /* NULL: no id matching */
	long long next_id;
	bool renew;       /* the last request timed out: a fresh socket first */
};

/* The caller's options as this library reads them (client.h): the
 * members wholly within in->size, the defaults (0) for the rest. */
static int read_opts(const struct dg_client_opts *in, struct dg_client_opts *o,
                     struct dg_client_error *err)
{
	*o = (struct dg_client_opts)DG_CLIENT_OPTS_INIT;
	if (!in)
		return DG_OK;
	int rc = dg_conn_opts_check(in, sizeof(*in), "dg_client_opts", "DG_CLIENT_OPTS_INIT", err);
	if (rc)
		return rc;
	DG_CONN_OPT(o, in, struct dg_client_opts, timeout_ms);
	DG_CONN_OPT(o, in, struct dg_client_opts, retries);
	DG_CONN_OPT(o, in, struct dg_client_opts, max_datagram);
	DG_CONN_OPT(o, in, struct dg_client_opts, rcvbuf);
	DG_CONN_OPT(o, in, struct dg_client_opts, unconnected);
	DG_CONN_OPT(o, in, struct dg_client_opts, bind);
	DG_CONN_OPT(o, in, struct dg_client_opts, id_field);
	return DG_OK;
}

int dg_client_open(const char *hostport, const char *codec_spec,
                   const struct dg_client_opts *opts, struct dg_client **out,
                   struct dg_client_error *err)
{
	struct dg_client_opts o;
	struct dg_client *c;

	*out = NULL;
	int rc = read_opts(opts, &o, err);
	if (rc)
		return rc;
	if (!(c = calloc(1, sizeof(*c))))
		return dg_conn_fail(err, DG_ENOMEM, 0, 0, "out of memory");
	rc = dg_conn_open(&c->conn, hostport, codec_spec, o.max_datagram,
	                  o.bind ? 2 : o.unconnected ? 1 : 0, o.rcvbuf, err);
	if (rc) {
		free(c);
		return rc;
	}
	c->timeout_ms = o.timeout_ms ? o.timeout_ms : 1000;
	c->retries = o.retries;
	if (o.id_field && !(c->id_field = strdup(o.id_field))) {
		dg_client_close(c);
		return dg_conn_fail(err, DG_ENOMEM, 0, 0, "out of memory");
	}
	*out = c;
	return DG_OK;
}

void dg_client_close(struct dg_client *c)
{
	if (!c)
		return;
	dg_conn_close(&c->conn);
	free(c->id_field);
	free(c);
}

const char *dg_client_codec_name(const struct dg_client *c)
{
	return dg_codec_name(c->conn.codec);
}

int dg_client_fd(const struct dg_client *c)
{
	return c->conn.fd;
}

int dg_client_send(struct dg_client *c, const struct dg_packet *pkts, size_t n,
                   struct dg_client_error *err)
{
	return dg_conn_send(&c->conn, pkts, n, err);
}

static long long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int dg_client_recv(struct dg_client *c, struct dg_packet *pkt, int timeout_ms,
                   struct dg_client_error *err)
{
	struct dg_conn *cn = &c->conn;
	long long deadline = now_ms() + (timeout_ms < 0 ? (long long)c->timeout_ms : timeout_ms);

	if (cn->next < cn->n) {
		*pkt = cn->pkts[cn->next++];
		return DG_OK;
	}
	for (;;) {
		int rc = dg_conn_read(cn, err);
		if (rc == DG_OK && cn->n) {
			*pkt = cn->pkts[cn->next++];
			return DG_OK;
		}
		if (rc != DG_EAGAIN && rc != DG_OK)
			return rc;
		long long left = deadline - now_ms();
		if (left <= 0)
			return dg_conn_fail(err, DG_ETIMEDOUT, 0, 0, "no reply from %s within %d ms", cn->name,
			                    timeout_ms < 0 ? (int)c->timeout_ms : timeout_ms);
		struct pollfd p = { .fd = cn->fd, .events = POLLIN };
		if (poll(&p, 1, (int)left) < 0 && errno != EINTR)
			return dg_conn_fail(err, DG_ENET, errno, 0, "poll: %s", strerror(errno));
	}
}

/* Wait for the answer to the request whose id is key (NULL: the first
 * packet that arrives): packets carrying another id answer other requests
 * and are skipped. */
static int recv_answer(struct dg_client *c, const char *key, struct dg_packet *reply,
                       struct dg_client_error *err)
{
	long long deadline = now_ms() + c->timeout_ms;

	for (;;) {
		long long left = deadline - now_ms();
		int rc = dg_client_recv(c, reply, left > 0 ? (int)left : 0, err);
		if (rc == DG_ETIMEDOUT)
			return dg_conn_fail(err, DG_ETIMEDOUT, 0, 0, "no reply from %s within %u ms",
			                    c->conn.name, c->timeout_ms);
		if (rc || !key)
			return rc;
		char *id = dg_conn_id_of(c->id_field, reply);
		bool other = id && strcmp(id, key);
		free(id);
		if (!other)
			return DG_OK;
	}
}

int dg_client_request(struct dg_client *c, const struct dg_packet *req,
                      struct dg_packet *reply, struct dg_client_error *err)
{
	struct dg_client_error mine;
	struct dg_packet out = *req;
	json_t *tagged = NULL;
	char *key = NULL;
	int rc;

	if (!err)
		err = &mine;
	/* The last request timed out: its answer may still come, to the old
	 * socket. A fresh one (a new source port) never receives it. */
	if (c->renew && c->conn.mode != 2) {
		if ((rc = dg_conn_renew(&c->conn, true, err)))
			return rc;
		c->renew = false;
	}
	/* Whatever arrived before this request is not its answer. */
	dg_conn_drain(&c->conn);
	if (c->id_field && dg_conn_tag(c->id_field, &c->next_id, req, &tagged, &key)) {
		rc = dg_conn_fail(err, DG_ENOMEM, 0, 0, "out of memory");
		goto out;
	}
	if (tagged)
		out.json = tagged;
	rc = DG_ETIMEDOUT;
	for (unsigned attempt = 0; attempt <= c->retries && rc == DG_ETIMEDOUT; attempt++) {
		if ((rc = dg_conn_send(&c->conn, &out, 1, err)))
			break;
		/* An answer to any attempt answers this request (the same packet). */
		rc = recv_answer(c, key, reply, err);
	}
	if (rc == DG_ETIMEDOUT) {
		c->renew = true;
		if (c->retries)
			dg_conn_fail(err, DG_ETIMEDOUT, 0, 0, "no reply from %s after %u attempts of %u ms",
			             c->conn.name, c->retries + 1, c->timeout_ms);
	}
out:
	json_decref(tagged);
	free(key);
	return rc;
}
