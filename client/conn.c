#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/errqueue.h>
#include <netinet/in.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
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

int dg_conn_opts_check(const void *opts, size_t known, const char *what, const char *init,
                       struct dg_client_error *err)
{
	const unsigned char *bytes = opts;
	size_t size;

	memcpy(&size, opts, sizeof(size));
	if (size < sizeof(size) || size > DG_CONN_OPTS_MAX)
		return dg_conn_fail(err, DG_EINVAL, 0, 0,
		                    "struct %s: size %zu is not %zu .. %d (initialise it with %s)",
		                    what, size, sizeof(size), DG_CONN_OPTS_MAX, init);
	for (size_t i = known; i < size; i++)
		if (bytes[i])
			return dg_conn_fail(err, DG_EINVAL, 0, 0,
			                    "struct %s: byte %zu is set, past the %zu bytes this libdgramd "
			                    "knows: an option of a newer libdgramd", what, i, known);
	return DG_OK;
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
	/* zlib and bz2's max_decoded follow the datagrams this client takes. */
	int rc = dg_codec_new_sized(j, c->max_datagram, &c->codec, msg, sizeof(msg));
	json_decref(j);
	if (rc)
		return dg_conn_fail(err, DG_EINVAL, 0, 0, "codec spec%s", msg);
	return DG_OK;
}

/* A socket for c->mode: connected (0), unconnected (1) or bound (2).
 * Returns the descriptor, or -1 with err filled. */
static int open_socket(struct dg_conn *c, struct dg_client_error *err)
{
	int fd = socket(c->peer.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	int one = 1, rcvbuf = c->rcvbuf;

	if (fd < 0) {
		dg_conn_fail(err, DG_ENET, errno, 0, "socket for '%s': %s", c->name, strerror(errno));
		return -1;
	}
	/* Linux caps SO_RCVBUF at net.core.rmem_max; a privileged process
	 * may go past it with SO_RCVBUFFORCE (as rsyslog does). */
	if (rcvbuf > 0 && setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf)) == 0) {
		int got = 0;
		socklen_t gl = sizeof(got);
		if (getsockopt(fd, SOL_SOCKET, SO_RCVBUF, &got, &gl) == 0 && got / 2 < rcvbuf)
			(void)setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof(rcvbuf));
	}
	/* Linux: with IP_RECVERR every ICMP error is also queued, with the
	 * start of the datagram it answers, so it can be told which request
	 * it belongs to (the plain socket error keeps only the last one). */
	if (c->want_recverr)
		c->recverr = c->peer.ss_family == AF_INET6
		             ? setsockopt(fd, IPPROTO_IPV6, IPV6_RECVERR, &one, sizeof(one)) == 0
		             : setsockopt(fd, IPPROTO_IP, IP_RECVERR, &one, sizeof(one)) == 0;
	/* Connected by default: the kernel drops datagrams from other sources
	 * and reports ICMP errors (port unreachable) to us. */
	if (c->mode == 0 && connect(fd, (struct sockaddr *)&c->peer, c->peerlen) < 0) {
		dg_conn_fail(err, DG_ENET, errno, 0, "connect to '%s': %s", c->name, strerror(errno));
		close(fd);
		return -1;
	}
	if (c->mode == 2 && bind(fd, (struct sockaddr *)&c->peer, c->peerlen) < 0) {
		dg_conn_fail(err, DG_ENET, errno, 0, "cannot bind '%s': %s", c->name, strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

int dg_conn_open(struct dg_conn *c, const char *hostport, const char *spec, size_t max_datagram,
                 int mode, int rcvbuf, struct dg_client_error *err)
{
	memset(c, 0, sizeof(*c));
	c->fd = -1;
	c->mode = mode & 3;
	c->want_recverr = (mode & DG_CONN_RECVERR) != 0;
	c->rcvbuf = rcvbuf;
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
	if ((c->fd = open_socket(c, err)) < 0)
		goto out_fail;
	c->connected = c->mode == 0;
	return DG_OK;

out_fail:
	dg_conn_close(c);
	return err ? err->code : DG_ERROR;
}

int dg_conn_renew(struct dg_conn *c, bool keep_fd, struct dg_client_error *err)
{
	int fd = open_socket(c, err);

	if (fd < 0)
		return DG_ENET;
	dg_conn_release(c);
	if (keep_fd) {
		if (dup2(fd, c->fd) < 0 || fcntl(c->fd, F_SETFD, FD_CLOEXEC) < 0) {
			int e = errno;
			close(fd);
			return dg_conn_fail(err, DG_ENET, e, 0, "socket for '%s': %s", c->name, strerror(e));
		}
		close(fd);
	} else {
		close(c->fd);
		c->fd = fd;
	}
	return DG_OK;
}

void dg_conn_drain(struct dg_conn *c)
{
	size_t quoted;

	dg_conn_release(c);
	for (int i = 0; i < 4096; i++) {
		ssize_t n = recv(c->fd, c->rxbuf, c->max_datagram + 1, MSG_DONTWAIT | MSG_TRUNC);
		/* An error is the pending ICMP error of an earlier datagram:
		 * reading it clears it; go on. */
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
	}
	while (c->recverr && dg_conn_read_error(c, &quoted, NULL) == DG_OK)
		;
}

int dg_conn_read_error(struct dg_conn *c, size_t *quoted, struct dg_client_error *e)
{
	char control[512];
	struct iovec iov = { .iov_base = c->rxbuf, .iov_len = c->max_datagram };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = control,
	                      .msg_controllen = sizeof(control) };
	int code = 0;

	ssize_t n = recvmsg(c->fd, &msg, MSG_ERRQUEUE | MSG_DONTWAIT);
	if (n < 0)
		return DG_EAGAIN;
	for (struct cmsghdr *cm = CMSG_FIRSTHDR(&msg); cm; cm = CMSG_NXTHDR(&msg, cm)) {
		if ((cm->cmsg_level == IPPROTO_IP && cm->cmsg_type == IP_RECVERR) ||
		    (cm->cmsg_level == IPPROTO_IPV6 && cm->cmsg_type == IPV6_RECVERR)) {
			struct sock_extended_err ee;
			memcpy(&ee, CMSG_DATA(cm), sizeof(ee));
			code = (int)ee.ee_errno;
		}
	}
	*quoted = (size_t)n;
	if (!code)
		code = EIO;
	dg_conn_fail(e, DG_ENET, code, 0, "%s: %s%s", c->name, strerror(code),
	             code == ECONNREFUSED ? " (ICMP port unreachable: nothing listens there)" : "");
	return DG_OK;
}

char *dg_conn_id_of(const char *field, const struct dg_packet *pkt)
{
	json_t *id = json_is_object(pkt->json) ? json_object_get(pkt->json, field) : NULL;

	return id ? json_dumps(id, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
}

int dg_conn_tag(const char *field, long long *next, const struct dg_packet *req,
                json_t **send, char **key)
{
	*send = NULL;
	*key = NULL;
	if (!json_is_object(req->json))
		return DG_OK;
	json_t *id = json_object_get(req->json, field);
	if (!id) {
		*send = json_copy(req->json);
		if (!*send || json_object_set_new(*send, field, json_integer(++*next)))
			return DG_ENOMEM;
		id = json_object_get(*send, field);
	}
	*key = json_dumps(id, JSON_COMPACT | JSON_ENCODE_ANY);
	return *key ? DG_OK : DG_ENOMEM;
}

uint32_t dg_conn_hash(const void *data, size_t len)
{
	const unsigned char *p = data;
	uint32_t h = 2166136261u;

	for (size_t i = 0; i < len; i++)
		h = (h ^ p[i]) * 16777619u;
	return h;
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

/* Errors that may be the pending ICMP error of an earlier datagram, which
 * send() reports (and clears) instead of sending. */
static bool maybe_earlier(int e)
{
	return e == ECONNREFUSED || e == EHOSTUNREACH || e == ENETUNREACH || e == EHOSTDOWN;
}

static int send_one(struct dg_conn *c, const struct dg_outdgram *o, struct dg_client_error *err)
{
	ssize_t n = -1;

	/* A pending error belongs to an earlier datagram, not to this one:
	 * the failed call cleared it, so one more try sends this datagram
	 * (and a real error, such as no route, fails again). */
	for (int try = 0; try < 2 && n < 0; try++) {
		n = c->connected ? send(c->fd, o->buf, o->used, 0)
		                 : sendto(c->fd, o->buf, o->used, 0, (struct sockaddr *)&c->peer, c->peerlen);
		if (n < 0 && !maybe_earlier(errno))
			break;
	}
	if (n < 0) {
		int e = errno;
		return dg_conn_fail(err, DG_ENET, e, 0, "send to %s: %s", c->name, strerror(e));
	}
	c->last_len = o->used;
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
			/* Not a syntax error at some byte: the reply is not what the
			 * server signed, or not signed with this key. */
			if (dg_codec_fault(c->codec) == DG_FAULT_INTEGRITY)
				return dg_conn_fail(err, DG_EPARSE, 0, 0, "reply from %s refused (frame %u): %s "
				                    "(forged, corrupted, or another key)", c->name, i, pe.reason);
			return dg_conn_fail(err, DG_EPARSE, 0, off, "reply from %s: %s at byte %zu (frame %u)",
			                    c->name, pe.reason, off, i);
		}
	}
	c->n = n;
	c->next = 0;
	return DG_OK;
}
