#include "config.h"

#include <errno.h>
#include <stddef.h>
#include <string.h>
#include <sys/socket.h>

#include <linux/sock_diag.h>

#include "io.h"

bool dg_io_no_mmsg;
unsigned dg_io_fault_send;

/* Returns true when this send must fail with EAGAIN; may shrink *n. The
 * call after an injected EAGAIN always goes through, as a buffer that has
 * drained would take it: the send queue, which sends through here too
 * (EV_WRITE), gets its datagram out. */
static bool fault(unsigned *n)
{
	static unsigned calls;
	static enum { NORMAL, FAIL_NEXT, PASS_NEXT } next;

	if (!dg_io_fault_send)
		return false;
	if (next == FAIL_NEXT) {
		next = PASS_NEXT;
		errno = EAGAIN;
		return true;
	}
	if (next == PASS_NEXT) {
		next = NORMAL;
		return false;
	}
	if (++calls % dg_io_fault_send)
		return false;
	if (*n < 2) {
		next = PASS_NEXT;
		errno = EAGAIN;
		return true;
	}
	*n /= 2;
	next = FAIL_NEXT;
	return false;
}

int dg_io_recv(int fd, dg_mmsg *m, unsigned n)
{
#ifdef HAVE_RECVMMSG
	if (!dg_io_no_mmsg) {
		/* Linux: with MSG_TRUNC, msg_len is the full datagram length. */
		int r = recvmmsg(fd, m, n, MSG_DONTWAIT | MSG_TRUNC, NULL);
		if (r >= 0 || errno != ENOSYS)
			return r;
		dg_io_no_mmsg = true;
	}
#endif
	unsigned i;
	for (i = 0; i < n; i++) {
		ssize_t r = recvmsg(fd, &m[i].msg_hdr, MSG_DONTWAIT | MSG_TRUNC);
		if (r < 0)
			return i ? (int)i : -1;
		m[i].msg_len = (unsigned)r;
	}
	return (int)i;
}

int dg_io_send(int fd, dg_mmsg *m, unsigned n)
{
	if (fault(&n))
		return -1;
#ifdef HAVE_SENDMMSG
	if (!dg_io_no_mmsg) {
		int r = sendmmsg(fd, m, n, MSG_DONTWAIT);
		if (r >= 0 || errno != ENOSYS)
			return r;
		dg_io_no_mmsg = true;
	}
#endif
	unsigned i;
	for (i = 0; i < n; i++) {
		ssize_t r = sendmsg(fd, &m[i].msg_hdr, MSG_DONTWAIT);
		if (r < 0)
			return i ? (int)i : -1;
		m[i].msg_len = (unsigned)r;
	}
	return (int)i;
}

int dg_io_want_cmsg(int fd, int family, bool pktinfo, const char **what)
{
	int one = 1;

#ifdef SO_RXQ_OVFL
	*what = "SO_RXQ_OVFL";
	if (setsockopt(fd, SOL_SOCKET, SO_RXQ_OVFL, &one, sizeof(one)) < 0)
		return -1;
#endif
	if (!pktinfo)
		return 0;
	/* IP_PKTINFO on receive gives the destination; on send it picks the
	 * source (ipi_spec_dst), as IPV6_PKTINFO does for IPv6. */
	*what = family == AF_INET6 ? "IPV6_RECVPKTINFO" : "IP_PKTINFO";
	if (family == AF_INET6)
		return setsockopt(fd, IPPROTO_IPV6, IPV6_RECVPKTINFO, &one, sizeof(one));
	return setsockopt(fd, IPPROTO_IP, IP_PKTINFO, &one, sizeof(one));
}

int dg_io_drops(int fd, uint32_t *drops)
{
#if defined(SO_MEMINFO)
	uint32_t mem[SK_MEMINFO_VARS];
	socklen_t len = sizeof(mem);

	if (getsockopt(fd, SOL_SOCKET, SO_MEMINFO, mem, &len) < 0)
		return -1;
	if (len < (SK_MEMINFO_DROPS + 1) * sizeof(mem[0])) {
		errno = EPROTO;
		return -1;
	}
	*drops = mem[SK_MEMINFO_DROPS];
	return 0;
#else
	(void)fd, (void)drops;
	errno = ENOPROTOOPT;
	return -1;
#endif
}

void dg_io_rx_cmsg(struct msghdr *h, uint32_t *ovfl, struct sockaddr *local)
{
	for (struct cmsghdr *c = CMSG_FIRSTHDR(h); c; c = CMSG_NXTHDR(h, c)) {
#ifdef SO_RXQ_OVFL
		if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SO_RXQ_OVFL)
			memcpy(ovfl, CMSG_DATA(c), sizeof(*ovfl));
#endif
		if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_PKTINFO &&
		    local->sa_family == AF_INET) {
			struct in_pktinfo pi;
			memcpy(&pi, CMSG_DATA(c), sizeof(pi));
			/* ipi_spec_dst: the local address a reply should come
			 * from (the header's destination for unicast). */
			((struct sockaddr_in *)local)->sin_addr = pi.ipi_spec_dst;
		} else if (c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_PKTINFO &&
		           local->sa_family == AF_INET6) {
			struct in6_pktinfo pi;
			struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)local;
			memcpy(&pi, CMSG_DATA(c), sizeof(pi));
			s6->sin6_addr = pi.ipi6_addr;
			/* A link-local address means nothing without its link. */
			s6->sin6_scope_id = IN6_IS_ADDR_LINKLOCAL(&pi.ipi6_addr) ? pi.ipi6_ifindex : 0;
		}
	}
}

void dg_io_tx_srcaddr(struct msghdr *h, union dg_tx_cmsg *buf, const struct sockaddr *from)
{
	memset(buf, 0, sizeof(*buf));
	h->msg_control = buf->buf;
	struct cmsghdr *c = (struct cmsghdr *)buf->buf;
	if (from->sa_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)from;
		struct in6_pktinfo pi = { .ipi6_addr = s6->sin6_addr, .ipi6_ifindex = s6->sin6_scope_id };
		c->cmsg_level = IPPROTO_IPV6;
		c->cmsg_type = IPV6_PKTINFO;
		c->cmsg_len = CMSG_LEN(sizeof(pi));
		memcpy(CMSG_DATA(c), &pi, sizeof(pi));
		h->msg_controllen = CMSG_SPACE(sizeof(pi));
		return;
	}
	/* ipi_ifindex 0: the route decides the interface, the address is
	 * only the source (nginx does the same). */
	struct in_pktinfo pi = { .ipi_spec_dst = ((const struct sockaddr_in *)from)->sin_addr };
	c->cmsg_level = IPPROTO_IP;
	c->cmsg_type = IP_PKTINFO;
	c->cmsg_len = CMSG_LEN(sizeof(pi));
	memcpy(CMSG_DATA(c), &pi, sizeof(pi));
	h->msg_controllen = CMSG_SPACE(sizeof(pi));
}
