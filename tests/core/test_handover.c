/* The master's side of a reload's hand-over (core/handover.c): a socket
 * made for a worker's conversation joins the listener's SO_REUSEPORT group,
 * gets its peer's datagrams and no one else's, and the master refuses to
 * bind anything but the asking worker's own listener address. IPv4 and,
 * where the host has it, IPv6 (each family has its own socket filter). */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <string.h>
#include <unistd.h>

#include "handover.h"
#include "testutil.h"

/* A UDP socket bound to host:port (0: any port); its address into *a. */
static int udp(int family, bool reuseport, unsigned port, struct dg_addr *a)
{
	int one = 1, fd = socket(family, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	CU_ASSERT_FATAL(fd >= 0);
	memset(a, 0, sizeof(*a));
	if (family == AF_INET6) {
		struct sockaddr_in6 *s = (struct sockaddr_in6 *)&a->ss;
		s->sin6_family = AF_INET6;
		s->sin6_addr = in6addr_loopback;
		s->sin6_port = htons((uint16_t)port);
		a->len = sizeof(*s);
		CU_ASSERT_FATAL(setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) == 0);
	} else {
		struct sockaddr_in *s = (struct sockaddr_in *)&a->ss;
		s->sin_family = AF_INET;
		s->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		s->sin_port = htons((uint16_t)port);
		a->len = sizeof(*s);
	}
	if (reuseport)
		CU_ASSERT_FATAL(setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) == 0);
	CU_ASSERT_FATAL(bind(fd, (struct sockaddr *)&a->ss, a->len) == 0);
	CU_ASSERT_FATAL(getsockname(fd, (struct sockaddr *)&a->ss, &a->len) == 0);
	return fd;
}

static unsigned port_of(const struct dg_addr *a)
{
	if (a->ss.ss_family == AF_INET6)
		return ntohs(((const struct sockaddr_in6 *)&a->ss)->sin6_port);
	return ntohs(((const struct sockaddr_in *)&a->ss)->sin_port);
}

/* Ask the master's side for a socket (served in this process: the answer
 * waits in the pair); the fd, or -1 with errno the master's answer. */
static int ask(const struct dg_config *cfg, const struct dg_addr *bound, unsigned listener,
               const struct dg_addr *local, const struct dg_addr *peer)
{
	struct dg_ho_msg req = { .type = DG_HO_SOCKET, .listener = listener,
	                         .locallen = local->len, .peerlen = peer->len };
	struct dg_ho_msg ans;
	const char *why;
	int sv[2], got;

	memcpy(&req.local, &local->ss, local->len);
	memcpy(&req.peer, &peer->ss, peer->len);
	CU_ASSERT_FATAL(dg_ho_pair(sv) == 0);
	CU_ASSERT_EQUAL(dg_ho_serve(sv[0], &req, cfg, bound, &why), 0);
	CU_ASSERT_EQUAL(dg_ho_recv(sv[1], &ans, &got, 1000), 0);
	close(sv[0]);
	close(sv[1]);
	CU_ASSERT_EQUAL(ans.type, DG_HO_SOCKET);
	CU_ASSERT_EQUAL(ans.err == 0, got >= 0);
	CU_ASSERT_EQUAL(*why == '\0', got >= 0);
	errno = ans.err;
	return got;
}

/* A datagram on fd within 5 s: true if it is text. */
static bool receives(int fd, const char *text)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	char buf[64];

	if (poll(&p, 1, 5000) != 1)
		return false;
	ssize_t n = recv(fd, buf, sizeof(buf), 0);
	return n == (ssize_t)strlen(text) && !memcmp(buf, text, (size_t)n);
}

static void send_to(int fd, const struct dg_addr *to, const char *text)
{
	CU_ASSERT_EQUAL(sendto(fd, text, strlen(text), 0, (const struct sockaddr *)&to->ss, to->len),
	                (ssize_t)strlen(text));
}

static void check_family(int family)
{
	struct dg_addr lst, a, b, other;
	int l = udp(family, true, 0, &lst);
	int pa = udp(family, false, 0, &a), pb = udp(family, false, 0, &b);
	struct dg_listener_conf lc = { .name = (char *)"l", .binds = &lst, .n_binds = 1 };
	struct dg_config cfg = { .listeners = &lc, .n_listeners = 1 };

	int c = ask(&cfg, &lst, 0, &lst, &a);
	CU_ASSERT_FATAL(c >= 0);
	CU_ASSERT(fcntl(c, F_GETFD) & FD_CLOEXEC);
	/* a's datagrams go to its socket, b's to the listener's. */
	send_to(pb, &lst, "from b");
	send_to(pa, &lst, "from a");
	CU_ASSERT(receives(c, "from a"));
	CU_ASSERT(receives(l, "from b"));
	char buf[16];
	CU_ASSERT(recv(c, buf, sizeof(buf), MSG_DONTWAIT) < 0 && errno == EAGAIN);
	CU_ASSERT(recv(l, buf, sizeof(buf), MSG_DONTWAIT) < 0 && errno == EAGAIN);
	/* Replies from it leave from the listener's address. */
	CU_ASSERT_EQUAL(send(c, "back", 4, 0), 4);
	struct sockaddr_storage from;
	socklen_t fromlen = sizeof(from);
	struct pollfd p = { .fd = pa, .events = POLLIN };
	CU_ASSERT(poll(&p, 1, 5000) == 1 &&
	          recvfrom(pa, buf, sizeof(buf), 0, (struct sockaddr *)&from, &fromlen) == 4);
	CU_ASSERT(fromlen == lst.len && !memcmp(&from, &lst.ss, lst.len));

	/* Refused: another port, another listener, a wildcard peer. */
	int o = udp(family, false, 0, &other);
	CU_ASSERT(ask(&cfg, &lst, 0, &other, &a) < 0 && errno == EPERM);
	CU_ASSERT(ask(&cfg, &lst, 1, &lst, &a) < 0 && errno == EPERM);
	struct dg_addr any = lst;
	if (family == AF_INET6)
		((struct sockaddr_in6 *)&any.ss)->sin6_addr = in6addr_any;
	else
		((struct sockaddr_in *)&any.ss)->sin_addr.s_addr = htonl(INADDR_ANY);
	CU_ASSERT(ask(&cfg, &lst, 0, &lst, &any) < 0 && errno == EPERM);
	CU_ASSERT(port_of(&other) != port_of(&lst));
	close(o);
	close(c);
	close(l);
	close(pa);
	close(pb);
}

static void test_ipv4(void)
{
	check_family(AF_INET);
}

static void test_ipv6(void)
{
	if (!dg_have_ipv6()) {
		printf("\n  SKIPPED: no IPv6 here\n");
		return;
	}
	check_family(AF_INET6);
}

static const struct dg_test tests[] = {
	{ "IPv4: the peer's datagrams and no one else's; refusals", test_ipv4 },
	{ "IPv6: the same", test_ipv6 },
	{ NULL, NULL },
};

DG_TEST_MAIN("handover", tests)
