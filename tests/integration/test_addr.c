/* Integration: the reply source address on wildcard binds (IP_PKTINFO /
 * IPV6_PKTINFO), sessions keyed by (peer, local address), and datagrams
 * the kernel drops made visible (SO_RXQ_OVFL, rx_kernel_drops). */
#include "config.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testutil.h"

#define ECHO(bind, extra) "{\"listeners\": [{\"name\": \"t\", \"bind\": \"" bind "\", " \
                          "\"codec\": \"raw\", " extra "\"handler\": \"echo\"}]}"

/* The daemon with up to two environment variables set for it alone. */
static bool start(struct dg_daemon *d, const char *conf, const char *const env[4])
{
	for (int i = 0; env && i < 4 && env[i]; i += 2)
		setenv(env[i], env[i + 1], 1);
	bool ok = dg_daemon_start(d, conf, NULL);
	for (int i = 0; env && i < 4 && env[i]; i += 2)
		unsetenv(env[i]);
	return ok;
}

/* addr with the daemon's (wildcard) port. */
static struct sockaddr_storage at(const struct dg_daemon *d, int family, const char *addr)
{
	struct sockaddr_storage ss = { 0 };

	if (family == AF_INET) {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
		s4->sin_family = AF_INET;
		s4->sin_port = ((const struct sockaddr_in *)&d->addr[0])->sin_port;
		inet_pton(AF_INET, addr, &s4->sin_addr);
	} else {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
		s6->sin6_family = AF_INET6;
		s6->sin6_port = ((const struct sockaddr_in6 *)&d->addr[0])->sin6_port;
		inet_pton(AF_INET6, addr, &s6->sin6_addr);
	}
	return ss;
}

static socklen_t len_of(const struct sockaddr_storage *ss)
{
	return ss->ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
}

/* Same address and port. */
static bool same(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
	if (a->ss_family != b->ss_family)
		return false;
	if (a->ss_family == AF_INET6) {
		const struct sockaddr_in6 *x = (const void *)a, *y = (const void *)b;
		return x->sin6_port == y->sin6_port && !memcmp(&x->sin6_addr, &y->sin6_addr, 16);
	}
	const struct sockaddr_in *x = (const void *)a, *y = (const void *)b;
	return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
}

/* Over a socket connected to `to` (which only accepts datagrams from
 * `to`, as dgramc's does): the reply arrives, and from `to`. */
static void ask_connected(const struct sockaddr_storage *to, const char *msg)
{
	struct sockaddr_storage from;
	socklen_t fromlen = sizeof(from);
	char buf[64];

	int fd = dg_udp_client(to, 3000);
	CU_ASSERT_FATAL(fd >= 0);
	CU_ASSERT_EQUAL_FATAL(connect(fd, (const struct sockaddr *)to, len_of(to)), 0);
	CU_ASSERT_EQUAL(send(fd, msg, strlen(msg), 0), (ssize_t)strlen(msg));
	ssize_t n = recvfrom(fd, buf, sizeof(buf), 0, (struct sockaddr *)&from, &fromlen);
	CU_ASSERT_EQUAL(n, (ssize_t)strlen(msg));
	CU_ASSERT(n > 0 && !memcmp(buf, msg, strlen(msg)));
	CU_ASSERT(n > 0 && same(&from, to));
	if (n < 0)
		fprintf(stderr, "no reply to '%s' over a connected socket\n", msg);
	close(fd);
}

/* One unconnected socket (one peer address and port) asks both local
 * addresses: each reply comes from the address asked. */
static void ask_both_from_one_port(const struct sockaddr_storage to[2])
{
	int fd = dg_udp_client(&to[0], 3000);
	char buf[64];

	CU_ASSERT_FATAL(fd >= 0);
	for (int i = 0; i < 2; i++) {
		struct sockaddr_storage from;
		socklen_t fromlen = sizeof(from);
		char msg[16];
		snprintf(msg, sizeof(msg), "one-port-%d", i);
		CU_ASSERT_EQUAL(sendto(fd, msg, strlen(msg), 0, (const struct sockaddr *)&to[i],
		                       len_of(&to[i])), (ssize_t)strlen(msg));
		ssize_t n = recvfrom(fd, buf, sizeof(buf), 0, (struct sockaddr *)&from, &fromlen);
		CU_ASSERT_EQUAL(n, (ssize_t)strlen(msg));
		CU_ASSERT(n > 0 && same(&from, &to[i]));
	}
	close(fd);
}

/* 0.0.0.0: requests to 127.0.0.2 and 127.0.0.3 are answered from those.
 * Four sessions: two connected clients, and one port talking to both
 * addresses (a session per local address). */
static void wildcard_v4(const char *const env[4])
{
	struct dg_daemon d;

	CU_ASSERT_FATAL(start(&d, ECHO("0.0.0.0:0", ""), env));
	struct sockaddr_storage to[2] = { at(&d, AF_INET, "127.0.0.2"), at(&d, AF_INET, "127.0.0.3") };
	for (int round = 0; round < 2; round++) {
		ask_connected(&to[0], "to-127.0.0.2");
		ask_connected(&to[1], "to-127.0.0.3");
	}
	ask_both_from_one_port(to);
	dg_daemon_stop_checked(&d, "t");
	CU_ASSERT_EQUAL(dg_daemon_stat(&d, "t", "rx"), 6);
	CU_ASSERT_EQUAL(dg_daemon_stat(&d, "t", "tx"), 6);
	CU_ASSERT_EQUAL(dg_daemon_stat(&d, "t", "sessions"), 6);
}

static void test_wildcard_v4(void)
{
	wildcard_v4(NULL);
}

static void test_wildcard_v4_no_mmsg(void)
{
	const char *const env[4] = { "DGRAMD_NO_MMSG", "1", NULL, NULL };
	wildcard_v4(env);
}

/* Every send fails with EAGAIN once: each reply waits in the send queue
 * and leaves from EV_WRITE, still from the right address. */
static void test_wildcard_v4_send_queue(void)
{
	const char *const env[4] = { "DGRAMD_FAULT_SEND", "1", NULL, NULL };
	struct dg_daemon d;

	wildcard_v4(env);
	CU_ASSERT_FATAL(start(&d, ECHO("0.0.0.0:0", ""), env));
	struct sockaddr_storage to = at(&d, AF_INET, "127.0.0.3");
	ask_connected(&to, "queued");
	dg_daemon_stop_checked(&d, "t");
	CU_ASSERT_EQUAL(dg_daemon_stat(&d, "t", "tx_queued"), 1);
	CU_ASSERT_EQUAL(dg_daemon_stat(&d, "t", "tx"), 1);
}

static void test_wildcard_v4_no_mmsg_send_queue(void)
{
	const char *const env[4] = { "DGRAMD_NO_MMSG", "1", "DGRAMD_FAULT_SEND", "1" };
	wildcard_v4(env);
}

/* A deferred reply (from a timer, after the request's batch is gone)
 * still leaves from the request's local address. */
static void test_wildcard_deferred_reply(void)
{
	struct dg_daemon d;

	CU_ASSERT_FATAL(dg_daemon_start(&d, "{\"listeners\": [{\"name\": \"t\", \"bind\": \"0.0.0.0:0\", "
	        "\"codec\": \"raw\", \"handler\": {\"plugin\": \"echo\", \"config\": {\"delay_ms\": 20}}}]}",
	        NULL));
	struct sockaddr_storage to = at(&d, AF_INET, "127.0.0.3");
	ask_connected(&to, "later");
	dg_daemon_stop_checked(&d, "t");
	CU_ASSERT_EQUAL(dg_daemon_stat(&d, "t", "tx"), 1);
}

static void wildcard_v6(const char *const env[4])
{
	struct dg_daemon d;

	if (!dg_have_ipv6()) {
		fprintf(stderr, "::1 is not available here: IPv6 case not run\n");
		CU_PASS("no IPv6 loopback");
		return;
	}
	CU_ASSERT_FATAL(start(&d, ECHO("[::]:0", ""), env));
	struct sockaddr_storage to = at(&d, AF_INET6, "::1");
	ask_connected(&to, "to-::1");
	ask_connected(&to, "to-::1 again");
	dg_daemon_stop_checked(&d, "t");
	CU_ASSERT_EQUAL(dg_daemon_stat(&d, "t", "tx"), 2);
}

static void test_wildcard_v6(void)
{
	wildcard_v6(NULL);
}

static void test_wildcard_v6_no_mmsg(void)
{
	const char *const env[4] = { "DGRAMD_NO_MMSG", "1", "DGRAMD_FAULT_SEND", "2" };
	wildcard_v6(env);
}

/* Send probes with increasing ids until one is answered; the probe
 * answered is the last datagram sent, so the kernel's drop count it
 * carries covers everything sent before it. Returns datagrams sent. */
static unsigned probe(int fd, const struct dg_daemon *d)
{
	unsigned sent = 0;
	double deadline = dg_now_ms() + 10000;

	for (unsigned id = 0; dg_now_ms() < deadline; id++) {
		char msg[32], buf[64];
		int len = snprintf(msg, sizeof(msg), "probe-%u", id);
		sendto(fd, msg, (size_t)len, 0, (const struct sockaddr *)&d->addr[0], d->addrlen[0]);
		sent++;
		struct pollfd p = { .fd = fd, .events = POLLIN };
		while (poll(&p, 1, 300) == 1) {
			ssize_t n = recv(fd, buf, sizeof(buf), 0);
			if (n == len && !memcmp(buf, msg, (size_t)len))
				return sent;
		}
	}
	CU_FAIL("no probe was answered");
	return sent;
}

/* A small receive buffer flooded while the daemon is stopped: the kernel
 * drops most, and the drops are counted outside rx, exactly. */
static void kernel_drops(const char *const env[4], const char *bind)
{
	char conf[512];
	struct dg_daemon d;

	snprintf(conf, sizeof(conf), "{\"listeners\": [{\"name\": \"t\", \"bind\": \"%s\", "
	         "\"codec\": \"raw\", \"rcvbuf\": 4096, \"handler\": \"echo\"}]}", bind);
	CU_ASSERT_FATAL(start(&d, conf, env));
	struct sockaddr_storage to = d.addr[0];
	if (to.ss_family == AF_INET && ((struct sockaddr_in *)&to)->sin_addr.s_addr == 0)
		to = at(&d, AF_INET, "127.0.0.1");
	d.addr[0] = to;
	int fd = dg_udp_client(&to, 3000);
	int big = 1 << 20;
	setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &big, sizeof(big));
	CU_ASSERT(dg_daemon_pause(&d));
	unsigned flood = 300;
	for (unsigned i = 0; i < flood; i++)
		sendto(fd, "flood-datagram-flood-datagram", 29, 0, (struct sockaddr *)&to, len_of(&to));
	CU_ASSERT(dg_daemon_resume(&d));
	unsigned sent = flood + probe(fd, &d);
	close(fd);
	dg_daemon_stop_checked(&d, "t");
	long long rx = dg_daemon_stat(&d, "t", "rx"), drops = dg_daemon_stat(&d, "t", "rx_kernel_drops");
	fprintf(stderr, "%s: sent %u, rx %lld, rx_kernel_drops %lld\n", bind, sent, rx, drops);
	CU_ASSERT(drops > 0);
	CU_ASSERT(rx > 0);
	CU_ASSERT_EQUAL(rx + drops, (long long)sent);
}

static void test_kernel_drops(void)
{
	kernel_drops(NULL, "127.0.0.1:0");
}

static void test_kernel_drops_no_mmsg(void)
{
	const char *const env[4] = { "DGRAMD_NO_MMSG", "1", NULL, NULL };
	kernel_drops(env, "127.0.0.1:0");
}

static void test_kernel_drops_wildcard(void)
{
	kernel_drops(NULL, "0.0.0.0:0");
}

static const struct dg_test tests[] = {
	{ "wildcard 0.0.0.0 replies from the address asked", test_wildcard_v4 },
	{ "wildcard 0.0.0.0, one datagram per call", test_wildcard_v4_no_mmsg },
	{ "wildcard 0.0.0.0 through the send queue", test_wildcard_v4_send_queue },
	{ "wildcard 0.0.0.0, one per call, send queue", test_wildcard_v4_no_mmsg_send_queue },
	{ "wildcard deferred reply", test_wildcard_deferred_reply },
	{ "wildcard :: replies from ::1", test_wildcard_v6 },
	{ "wildcard ::, one per call, send queue", test_wildcard_v6_no_mmsg },
	{ "kernel drops are counted", test_kernel_drops },
	{ "kernel drops, one datagram per call", test_kernel_drops_no_mmsg },
	{ "kernel drops on a wildcard bind", test_kernel_drops_wildcard },
	{ NULL, NULL },
};

DG_TEST_MAIN("addr", tests)
