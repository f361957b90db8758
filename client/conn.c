#include "config.h"

#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "conn.h"

int dg_conn_fail(struct dg_client_error *err, int code, int sys_errno, size_t offset,
                 const char *fmt, ...)
{
	va_list ap;

	if (!err)
		return code;
	err->code = code;
	err->sys_errno = sys_errno;
	err->offset = offset;
	va_start(ap, fmt);
	vsnprintf(err->message, sizeof(err->message), fmt, ap);
	va_end(ap);
	return code;
}

/* "host:port" or "[v6]:port" -> the first address getaddrinfo gives. */
static int resolve(struct dg_conn *c, const char *hostport, struct dg_client_error *err)
{
	char host[256];
	const char *port;
	struct addrinfo hints = { .ai_socktype = SOCK_DGRAM, .ai_flags = AI_NUMERICSERV }, *res;

	if (hostport[0] == '[') {
		const char *close = strchr(hostport, ']');
		if (!close || close[1] != ':' || (size_t)(close - hostport - 1) >= sizeof(host))
			return dg_conn_fail(err, DG_EINVAL, 0, 0, "'%s' is not host:port or [ipv6]:port", hostport);
		memcpy(host, hostport + 1, (size_t)(close - hostport - 1));
		host[close - hostport - 1] = '\0';
		port = close + 2;
	} else {
		const char *colon = strrchr(hostport, ':');
		if (!colon || (size_t)(colon - hostport) >= sizeof(host) || colon == hostport ||
		    memchr(hostport, ':', (size_t)(colon - hostport)))
			return dg_conn_fail(err, DG_EINVAL, 0, 0, "'%s' is not host:port or [ipv6]:port", hostport);
		memcpy(host, hostport, (size_t)(colon - hostport));
		host[colon - hostport] = '\0';
		port = colon + 1;
	}
	int rc = getaddrinfo(host, port, &hints, &res);
	if (rc)
		return dg_conn_fail(err, DG_ENET, 0, 0, "cannot resolve '%s': %s", hostport, gai_strerror(rc));
	memcpy(&c->peer, res->ai_addr, res->ai_addrlen);
	c->peerlen = res->ai_addrlen;
	freeaddrinfo(res);
	return DG_OK;
}

static int make_codec(struct dg_conn *c, const char *spec, struct dg_client_error *err)
{
	json_error_t je;
	char msg[256];
	json_t *j = spec[0] == '{' ? json_loads(spec, 0, &je) : json_string(spec);

	if (!j)
		return dg_conn_fail(err, DG_EINVAL, 0, 0, "codec spec: %s (column %d)",
		                    spec[0] == '{' ? je.text : "out of memory", je.column);
	int rc = dg_codec_new(j, &c->codec, msg, sizeof(msg));
	json_decref(j);
	if (rc)
		return dg_conn_fail(err, DG_EINVAL, 0, 0, "codec spec%s", msg);
	return DG_OK;
}

int dg_conn_open(struct dg_conn *c, const char *hostport, const char *spec, size_t max_datagram,
                 int mode, int rcvbuf, struct dg_client_error *err)
{
	memset(c, 0, sizeof(*c));
	c->fd = -1;
	snprintf(c->name, sizeof(c->name), "%s", hostport);
	c->max_datagram = max_datagram ? max_datagram : 65507;
	if (c->max_datagram > 65507)
		c->max_datagram = 65507;
	if (make_codec(c, spec ? spec : "json", err) || resolve(c, hostport, err))
		goto out_fail;
	c->rxbuf = malloc(c->max_datagram + 1);
	c->txbuf = malloc(c->max_datagram);
	if (!c->rxbuf || !c->txbuf) {
		dg_conn_fail(err, DG_ENOMEM, 0, 0, "out of memory");
		goto out_fail;
	}
	c->fd = socket(c->peer.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c->fd < 0) {
		dg_conn_fail(err, DG_ENET, errno, 0, "socket for '%s': %s", hostport, strerror(errno));
		goto out_fail;
	}
	/* Linux caps SO_RCVBUF at net.core.rmem_max; a privileged process
	 * may go past it with SO_RCVBUFFORCE (as rsyslog does). */
	if (rcvbuf > 0 && setsockopt(c->fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf)) == 0) {
		int got = 0;
		socklen_t gl = sizeof(got);
		if (getsockopt(c->fd, SOL_SOCKET, SO_RCVBUF, &got, &gl) == 0 && got / 2 < rcvbuf)
			(void)setsockopt(c->fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof(rcvbuf));
	}
	/* Connected by default: the kernel drops datagrams from other sources
	 * and reports ICMP errors (port unreachable) to us. */
	if (mode == 0 && connect(c->fd, (struct sockaddr *)&c->peer, c->peerlen) < 0) {
		dg_conn_fail(err, DG_ENET, errno, 0, "connect to '%s': %s", hostport, strerror(errno));
		goto out_fail;
	}
	if (mode == 2 && bind(c->fd, (struct sockaddr *)&c->peer, c->peerlen) < 0) {
		dg_conn_fail(err, DG_ENET, errno, 0, "cannot bind '%s': %s", hostport, strerror(errno));
		goto out_fail;
	}
	c->connected = mode == 0;
	return DG_OK;

out_fail:
	dg_conn_close(c);
	return err ? err->code : DG_ERROR;
}

void dg_conn_release(struct dg_conn *c)
{
	for (unsigned i = 0; i < c->n; i++)
		dg_codec_release(c->codec, &c->pkts[i]);
	c->n = c->next = 0;
}

void dg_conn_close(struct dg_conn *c)
{
	if (c->codec)
		dg_conn_release(c);
	if (c->fd >= 0)
		close(c->fd);
	dg_codec_free(c->codec);
	free(c->rxbuf);
	free(c->txbuf);
	memset(c, 0, sizeof(*c));
	c->fd = -1;
}

static int send_one(struct dg_conn *c, const struct dg_outdgram *o, struct dg_client_error *err)
{
	ssize_t n = c->connected ? send(c->fd, o->buf, o->used, 0)
	                         : sendto(c->fd, o->buf, o->used, 0, (struct sockaddr *)&c->peer, c->peerlen);
	if (n < 0) {
		int e = errno;
		return dg_conn_fail(err, DG_ENET, e, 0, "send to %s: %s%s", c->name, strerror(e),
		                    e == ECONNREFUSED ? " (ICMP port unreachable from an earlier datagram)" : "");
	}
	return DG_OK;
}

int dg_conn_send(struct dg_conn *c, const struct dg_packet *pkts, size_t n,
                 struct dg_client_error *err)
{
	struct dg_outdgram o = { .buf = c->txbuf, .cap = c->max_datagram };
	int rc;

	for (size_t i = 0; i < n; i++) {
		rc = dg_codec_append(c->codec, &pkts[i], &o);
		if (rc == DG_E2BIG && o.frames) {
			if ((rc = send_one(c, &o, err)))
				return rc;
			o.used = 0;
			o.frames = 0;
			rc = dg_codec_append(c->codec, &pkts[i], &o);
		}
		if (rc == DG_E2BIG)
			return dg_conn_fail(err, DG_E2BIG, 0, 0, "packet %zu does not fit a datagram of %zu "
			                    "bytes with codec %s", i, c->max_datagram, dg_codec_name(c->codec));
		if (rc)
			return dg_conn_fail(err, rc, 0, 0, "packet %zu cannot be encoded with codec %s",
			                    i, dg_codec_name(c->codec));
	}
	return o.frames ? send_one(c, &o, err) : DG_OK;
}

int dg_conn_read(struct dg_conn *c, struct dg_client_error *err)
{
	struct dg_parse_error pe = { 0 };
	unsigned n;

	dg_conn_release(c);
	ssize_t len = recv(c->fd, c->rxbuf, c->max_datagram + 1, MSG_DONTWAIT | MSG_TRUNC);
	if (len < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
		return DG_EAGAIN;
	if (len < 0) {
		int e = errno;
		/* Linux: an ICMP error for a connected socket is reported once,
		 * here; the socket stays usable. */
		return dg_conn_fail(err, DG_ENET, e, 0, "%s: %s%s", c->name, strerror(e),
		                    e == ECONNREFUSED ? " (ICMP port unreachable: nothing listens there)" : "");
	}
	if ((size_t)len > c->max_datagram)
		return dg_conn_fail(err, DG_EPARSE, 0, c->max_datagram, "reply from %s of %zd bytes is "
		                    "larger than max_datagram %zu", c->name, len, c->max_datagram);
	if (dg_codec_split(c->codec, c->rxbuf, (size_t)len, c->frames, &n, &pe))
		return dg_conn_fail(err, DG_EPARSE, 0, pe.offset, "reply from %s: %s at byte %zu",
		                    c->name, pe.reason, pe.offset);
	for (unsigned i = 0; i < n; i++) {
		if (dg_codec_decode(c->codec, c->frames[i].data, c->frames[i].len, &c->pkts[i], &pe)) {
			size_t off = pe.offset + (size_t)(c->frames[i].data - c->rxbuf);
			c->n = i;
			dg_conn_release(c);
			return dg_conn_fail(err, DG_EPARSE, 0, off, "reply from %s: %s at byte %zu (frame %u)",
			                    c->name, pe.reason, off, i);
		}
	}
	c->n = n;
	c->next = 0;
	return DG_OK;
}
