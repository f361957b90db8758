/* The blocking client. */
#include "config.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "conn.h"

struct dg_client {
	struct dg_conn conn;
	unsigned timeout_ms;
	unsigned retries;
};

int dg_client_open(const char *hostport, const char *codec_spec,
                   const struct dg_client_opts *opts, struct dg_client **out,
                   struct dg_client_error *err)
{
	struct dg_client_opts none = { 0 };
	struct dg_client *c = calloc(1, sizeof(*c));

	*out = NULL;
	if (!opts)
		opts = &none;
	if (!c)
		return dg_conn_fail(err, DG_ENOMEM, 0, 0, "out of memory");
	int rc = dg_conn_open(&c->conn, hostport, codec_spec, opts->max_datagram,
	                      opts->bind ? 2 : opts->unconnected ? 1 : 0, opts->rcvbuf, err);
	if (rc) {
		free(c);
		return rc;
	}
	c->timeout_ms = opts->timeout_ms ? opts->timeout_ms : 1000;
	c->retries = opts->retries;
	*out = c;
	return DG_OK;
}

void dg_client_close(struct dg_client *c)
{
	if (!c)
		return;
	dg_conn_close(&c->conn);
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

int dg_client_request(struct dg_client *c, const struct dg_packet *req,
                      struct dg_packet *reply, struct dg_client_error *err)
{
	int rc = DG_ETIMEDOUT;

	/* Whatever arrived before this request is not its answer. */
	dg_conn_release(&c->conn);
	for (unsigned attempt = 0; attempt <= c->retries; attempt++) {
		rc = dg_conn_send(&c->conn, req, 1, err);
		if (rc)
			return rc;
		rc = dg_client_recv(c, reply, -1, err);
		if (rc != DG_ETIMEDOUT)
			return rc;
	}
	if (c->retries)
		dg_conn_fail(err, DG_ETIMEDOUT, 0, 0, "no reply from %s after %u attempts of %u ms",
		             c->conn.name, c->retries + 1, c->timeout_ms);
	return rc;
}
