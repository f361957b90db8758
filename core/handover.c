/* The master's control channel to its workers and the connected sockets
 * of a reload's hand-over (see handover.h). */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdbool.h>
#include <string.h>
#include <unistd.h>

#include "handover.h"

int dg_ho_pair(int sv[2])
{
	return socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv);
}

static int send_msg(int fd, const struct dg_ho_msg *msg, int passed)
{
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} c;
	struct iovec iov = { .iov_base = (void *)msg, .iov_len = sizeof(*msg) };
	struct msghdr h = { .msg_iov = &iov, .msg_iovlen = 1 };

	if (passed >= 0) {
		memset(&c, 0, sizeof(c));
		h.msg_control = c.buf;
		h.msg_controllen = sizeof(c.buf);
		struct cmsghdr *cm = CMSG_FIRSTHDR(&h);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(cm), &passed, sizeof(int));
	}
	ssize_t n;
	do
		n = sendmsg(fd, &h, MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	return n == (ssize_t)sizeof(*msg) ? 0 : -1;
}

int dg_ho_send(int fd, enum dg_ho_type type)
{
	struct dg_ho_msg msg = { .type = type };

	return send_msg(fd, &msg, -1);
}

int dg_ho_recv(int fd, struct dg_ho_msg *msg, int *passed, int timeout_ms)
{
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} c;
	struct iovec iov = { .iov_base = msg, .iov_len = sizeof(*msg) };
	struct msghdr h = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = c.buf,
	                    .msg_controllen = sizeof(c.buf) };
	struct pollfd p = { .fd = fd, .events = POLLIN };
	ssize_t n;
	int r;

	*passed = -1;
	while ((r = poll(&p, 1, timeout_ms)) < 0 && errno == EINTR)
		;
	if (r < 0)
		return -1;
	if (r == 0) {
		errno = ETIMEDOUT;
		return -1;
	}
	do
		n = recvmsg(fd, &h, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
	while (n < 0 && errno == EINTR);
	if (n == 0)
		return 1;
	if (n < 0)
		return errno == ECONNRESET ? 1 : -1;
	for (struct cmsghdr *cm = CMSG_FIRSTHDR(&h); cm; cm = CMSG_NXTHDR(&h, cm))
		if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS &&
		    cm->cmsg_len == CMSG_LEN(sizeof(int)))
			memcpy(passed, CMSG_DATA(cm), sizeof(int));
	if (n != (ssize_t)sizeof(*msg) || (h.msg_flags & (MSG_TRUNC | MSG_CTRUNC))) {
		int full = (h.msg_flags & MSG_CTRUNC) && n == (ssize_t)sizeof(*msg);
		if (*passed >= 0)
			close(*passed);
		*passed = -1;
		/* Linux: a descriptor the receiver has no room for is dropped
		 * and MSG_CTRUNC set. */
		errno = full ? EMFILE : EPROTO;
		return -1;
	}
	return 0;
}

int dg_ho_connect(int fd, unsigned listener, unsigned bind, const struct sockaddr *local,
                  socklen_t locallen, const struct sockaddr *peer, socklen_t peerlen,
                  unsigned timeout_ms)
{
	struct dg_ho_msg msg = { .type = DG_HO_SOCKET, .listener = listener, .bind = bind,
	                         .locallen = locallen, .peerlen = peerlen };
	int got;

	if (locallen > sizeof(msg.local) || peerlen > sizeof(msg.peer)) {
		errno = EINVAL;
		return -1;
	}
	memcpy(&msg.local, local, locallen);
	memcpy(&msg.peer, peer, peerlen);
	if (send_msg(fd, &msg, -1))
		return -1;
	int r = dg_ho_recv(fd, &msg, &got, (int)timeout_ms);
	if (r == 1)
		errno = EPIPE;
	if (r)
		return -1;
	if (msg.type != DG_HO_SOCKET || (msg.err == 0) != (got >= 0)) {
		if (got >= 0)
			close(got);
		errno = EPROTO;
		return -1;
	}
	if (msg.err) {
		errno = msg.err;
		return -1;
	}
	return got;
}

/* ---- the master's side ---------------------------------------------------- */

static unsigned sa_port(const struct sockaddr *sa)
{
	if (sa->sa_family == AF_INET6)
		return ntohs(((const struct sockaddr_in6 *)sa)->sin6_port);
	return ntohs(((const struct sockaddr_in *)sa)->sin_port);
}

static bool sa_wildcard(const struct sockaddr *sa)
{
	if (sa->sa_family == AF_INET6)
		return IN6_IS_ADDR_UNSPECIFIED(&((const struct sockaddr_in6 *)sa)->sin6_addr);
	return ((const struct sockaddr_in *)sa)->sin_addr.s_addr == htonl(INADDR_ANY);
}

static bool sa_same_host(const struct sockaddr *a, const struct sockaddr *b)
{
	if (a->sa_family != b->sa_family)
		return false;
	if (a->sa_family == AF_INET6)
		return !memcmp(&((const struct sockaddr_in6 *)a)->sin6_addr,
		               &((const struct sockaddr_in6 *)b)->sin6_addr, sizeof(struct in6_addr));
	return ((const struct sockaddr_in *)a)->sin_addr.s_addr ==
	       ((const struct sockaddr_in *)b)->sin_addr.s_addr;
}

/* Is req's local address the worker's own bind, and its peer one it may
 * talk to? NULL, or what is wrong. */
static const char *check_request(const struct dg_ho_msg *req, const struct dg_config *cfg,
                                 const struct dg_addr *bound)
{
	const struct sockaddr *local = (const struct sockaddr *)&req->local;
	const struct sockaddr *peer = (const struct sockaddr *)&req->peer;
	unsigned k = 0;

	if (req->listener >= cfg->n_listeners || req->bind >= cfg->listeners[req->listener].n_binds)
		return "no such listener or bind";
	for (unsigned l = 0; l < req->listener; l++)
		k += cfg->listeners[l].n_binds;
	const struct sockaddr *own = (const struct sockaddr *)&bound[k + req->bind].ss;
	socklen_t len = own->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6) :
	                sizeof(struct sockaddr_in);
	if (req->locallen != len || req->peerlen != len || local->sa_family != own->sa_family ||
	    peer->sa_family != own->sa_family)
		return "not the listener's address family";
	if (sa_port(local) != sa_port(own) || (!sa_wildcard(own) && !sa_same_host(local, own)))
		return "not the listener's address";
	if (sa_wildcard(local) || sa_wildcard(peer) || !sa_port(peer))
		return "a wildcard address or port 0";
	return NULL;
}

/* A socket filter that lets only peer's datagrams in (source address and
 * port). Between bind() and connect() the socket is an unconnected member
 * of the listener's SO_REUSEPORT group and could be picked for anyone's
 * datagram; this drops those (the socket's drop counter, SO_RXQ_OVFL,
 * counts them) rather than deliver them to a worker that does not have
 * their conversations. For UDP the filter sees the UDP header at offset 0
 * and the IP header at SKF_NET_OFF. */
static int set_filter(int fd, const struct sockaddr *peer)
{
	struct sock_filter f[12];
	unsigned n = 0, words = peer->sa_family == AF_INET6 ? 4 : 1;
	uint32_t w[4];

	if (words == 4) {
		memcpy(w, &((const struct sockaddr_in6 *)peer)->sin6_addr, sizeof(w));
	} else {
		memcpy(w, &((const struct sockaddr_in *)peer)->sin_addr, sizeof(w[0]));
	}
	/* Each check jumps to the drop at the end when it fails. */
	for (unsigned i = 0; i < words; i++) {
		f[n++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
		                                      (uint32_t)SKF_NET_OFF + (words == 4 ? 8 : 12) + 4 * i);
		f[n] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, ntohl(w[i]), 0, 0);
		f[n].jf = (uint8_t)(2 * (words - i) + 1); /* to the last RET */
		n++;
	}
	f[n++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_H | BPF_ABS, 0);
	f[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, sa_port(peer), 0, 1);
	f[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, 0xffffffff);
	f[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, 0);
	struct sock_fprog prog = { .len = (unsigned short)n, .filter = f };
	return setsockopt(fd, SOL_SOCKET, SO_ATTACH_FILTER, &prog, sizeof(prog));
}

static int make_socket(const struct dg_ho_msg *req, const char **why)
{
	const struct sockaddr *local = (const struct sockaddr *)&req->local;
	int one = 1;
	int fd = socket(local->sa_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	if (fd < 0) {
		*why = "socket";
		return -1;
	}
	if (local->sa_family == AF_INET6 &&
	    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) < 0)
		*why = "IPV6_V6ONLY";
	else if (set_filter(fd, (const struct sockaddr *)&req->peer) < 0)
		*why = "SO_ATTACH_FILTER";
	else if (setsockopt(fd, SOL_SOCKET, SO_RXQ_OVFL, &one, sizeof(one)) < 0)
		*why = "SO_RXQ_OVFL";
	else if (setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0)
		*why = "SO_REUSEPORT";
	else if (bind(fd, local, req->locallen) < 0)
		*why = "bind";
	else if (connect(fd, (const struct sockaddr *)&req->peer, req->peerlen) < 0)
		*why = "connect";
	else
		return fd;
	int err = errno;
	close(fd);
	errno = err;
	return -1;
}

int dg_ho_serve(int fd, const struct dg_ho_msg *req, const struct dg_config *cfg,
                const struct dg_addr *bound, const char **why)
{
	struct dg_ho_msg ans = { .type = DG_HO_SOCKET };
	int sock = -1;

	*why = check_request(req, cfg, bound);
	if (*why) {
		ans.err = EPERM;
	} else if ((sock = make_socket(req, why)) < 0) {
		ans.err = errno ? errno : EIO;
	} else {
		*why = "";
	}
	int rc = send_msg(fd, &ans, sock);
	if (sock >= 0) {
		int err = errno;
		close(sock);
		errno = err;
	}
	return rc;
}
