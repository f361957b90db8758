/* Listener sockets: created, optioned and bound here, for a worker that
 * binds its own (server.c) and for the master that binds them for its
 * workers (master.c). Registering them with the event loop is server.c's. */
#include "config.h"

#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <unistd.h>

#include "addr.h"
#include "io.h"
#include "log.h"
#include "sock.h"

static void set_bufsize(const struct dg_listener_conf *lc, int fd, const struct dg_addr *addr,
                        int opt, int want, const char *name)
{
	int got = 0;
	socklen_t len = sizeof(got);
	char a[64];

	if (!want)
		return;
	if (setsockopt(fd, SOL_SOCKET, opt, &want, sizeof(want)) < 0 ||
	    getsockopt(fd, SOL_SOCKET, opt, &got, &len) < 0) {
		dg_log(DG_LOG_WARN, "listener '%s': cannot set %s on '%s': %s", lc->name, name,
		       dg_addr_format((const struct sockaddr *)&addr->ss, a, sizeof(a)), strerror(errno));
		return;
	}
	/* Linux reports twice what it grants, and caps requests at
	 * net.core.rmem_max / wmem_max without an error; a privileged process
	 * may go past the cap with the FORCE options (as rsyslog does). */
	if (got / 2 < want &&
	    setsockopt(fd, SOL_SOCKET, opt == SO_RCVBUF ? SO_RCVBUFFORCE : SO_SNDBUFFORCE,
	               &want, sizeof(want)) == 0)
		getsockopt(fd, SOL_SOCKET, opt, &got, &len);
	if (got / 2 < want)
		dg_log(DG_LOG_WARN, "listener '%s': %s on '%s': asked for %d bytes, the kernel granted %d "
		       "(raise net.core.%s)", lc->name, name,
		       dg_addr_format((const struct sockaddr *)&addr->ss, a, sizeof(a)), want, got / 2,
		       opt == SO_RCVBUF ? "rmem_max" : "wmem_max");
}

bool dg_sock_is_wildcard(const struct sockaddr *sa)
{
	if (sa->sa_family == AF_INET6)
		return IN6_IS_ADDR_UNSPECIFIED(&((const struct sockaddr_in6 *)sa)->sin6_addr);
	return ((const struct sockaddr_in *)sa)->sin_addr.s_addr == htonl(INADDR_ANY);
}

void dg_sock_opts(const struct dg_listener_conf *lc, int fd, const struct dg_addr *addr)
{
	set_bufsize(lc, fd, addr, SO_RCVBUF, lc->rcvbuf, "rcvbuf");
	set_bufsize(lc, fd, addr, SO_SNDBUF, lc->sndbuf, "sndbuf");
}

int dg_sock_bind(const struct dg_listener_conf *lc, const struct dg_addr *addr,
                 bool exclusive, struct dg_addr *bound)
{
	const struct sockaddr *sa = (const struct sockaddr *)&addr->ss;
	const char *opt;
	int one = 1;
	char a[64];

	dg_addr_format(sa, a, sizeof(a));
	int fd = socket(sa->sa_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		dg_log(DG_LOG_ERROR, "listener '%s': cannot create a socket for '%s': %s",
		       lc->name, a, strerror(errno));
		return -1;
	}
	/* SO_REUSEPORT on every socket: a reload may add workers, each with a
	 * socket of its own on the same port, while the old ones still serve.
	 * But the first socket of an address (exclusive) binds without it and
	 * takes it on after the bind: a socket with SO_REUSEPORT may share a
	 * port that another process of the same user holds with it, and its
	 * port-0 search even picks such ports (then a datagram for us can go
	 * to the other process). Bound plainly, it gets EADDRINUSE, or a port
	 * nobody holds; later sockets bind to that port and join its group. */
	if ((sa->sa_family == AF_INET6 &&
	     setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) < 0) ||
	    (!exclusive && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0)) {
		dg_log(DG_LOG_ERROR, "listener '%s': cannot set socket options on '%s': %s",
		       lc->name, a, strerror(errno));
		goto out_close;
	}
	/* Only a wildcard bind needs each datagram's destination: a specific
	 * one has a single local address and pays nothing. */
	if (dg_io_want_cmsg(fd, sa->sa_family, dg_sock_is_wildcard(sa), &opt) < 0) {
		dg_log(DG_LOG_ERROR, "listener '%s': cannot set %s on '%s': %s", lc->name, opt, a,
		       strerror(errno));
		goto out_close;
	}
	dg_sock_opts(lc, fd, addr);
	if (bind(fd, sa, addr->len) < 0) {
		dg_log(DG_LOG_ERROR, "listener '%s': cannot bind '%s': %s", lc->name, a,
		       strerror(errno));
		goto out_close;
	}
	if (exclusive && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0) {
		dg_log(DG_LOG_ERROR, "listener '%s': cannot set SO_REUSEPORT on '%s': %s", lc->name,
		       a, strerror(errno));
		goto out_close;
	}
	bound->len = sizeof(bound->ss);
	if (getsockname(fd, (struct sockaddr *)&bound->ss, &bound->len) < 0) {
		dg_log(DG_LOG_ERROR, "listener '%s': getsockname on '%s': %s", lc->name, a,
		       strerror(errno));
		goto out_close;
	}
	return fd;

out_close:
	close(fd);
	return -1;
}
