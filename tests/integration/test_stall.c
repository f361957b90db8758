/* Integration: the event loop keeps answering while many sessions and
 * requests time out, expire and get evicted at once.
 * Many peers come from distinct 127.x.y.z sources: one client socket sets
 * each datagram's source address with IP_PKTINFO. Not a speed test (that is
 * bench/stall.sh): the bound on the probe's round trip is generous, and the
 * counters must show the mechanism at work. */
#include "config.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testutil.h"

enum {
	BUSY = 50000,     /* sessions with a request pending for the whole test */
	IDLE = 10000,     /* sessions that go idle at once and expire */
	NEWCOMERS = 2000, /* peers that arrive when the table is full */
	TIMEOUTS = 64000, /* requests that pass handler_timeout_ms */
	TIMEOUT_PEERS = 16,
	BURST = 256,      /* datagrams between two probes */
	IDLE_MS = 1500,   /* session_idle_ms and handler_timeout_ms */
	PROBE_LIMIT_MS = 2000,
};

/* The probe listener, then "s" (sessions) and "t" (timeouts). The echo of
 * "s" and "t" holds every request for an hour: only the server's deadline
 * or shutdown ends them. */
static const char config[] =
	"{\"max_pending\": 131072, \"shutdown_timeout_ms\": 0, \"listeners\": ["
	" {\"name\": \"probe\", \"bind\": \"127.0.0.1:0\", \"codec\": \"raw\", \"handler\": \"echo\"},"
	" {\"name\": \"s\", \"bind\": \"127.0.0.1:0\", \"codec\": \"json\", \"rcvbuf\": 4194304,"
	"  \"max_peers\": 60000, \"session_idle_ms\": 1500, \"handler_timeout_ms\": 0,"
	"  \"handler\": {\"plugin\": \"echo\", \"config\": {\"delay_ms\": 3600000}}},"
	" {\"name\": \"t\", \"bind\": \"127.0.0.1:0\", \"codec\": \"raw\", \"rcvbuf\": 4194304,"
	"  \"ordering\": \"none\", \"handler_timeout_ms\": 1500,"
	"  \"handler\": {\"plugin\": \"echo\", \"config\": {\"delay_ms\": 3600000}}}]}";

struct load {
	struct dg_daemon d;
	int src;     /* bound to 0.0.0.0: sends from any 127.x.y.z */
	int probe;   /* a plain client of the probe listener */
	double max_rtt_ms;
	unsigned probes, lost;
	unsigned since_probe;
	unsigned send_errors;
};

/* Send one datagram to listener i from host address src_host. */
static void send_from(struct load *ld, unsigned i, uint32_t src_host, const char *data)
{
	char cbuf[CMSG_SPACE(sizeof(struct in_pktinfo))] = { 0 };
	struct iovec iov = { .iov_base = (void *)data, .iov_len = strlen(data) };
	struct msghdr m = {
		.msg_name = &ld->d.addr[i], .msg_namelen = ld->d.addrlen[i],
		.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof(cbuf),
	};
	struct cmsghdr *c = CMSG_FIRSTHDR(&m);
	struct in_pktinfo pi = { .ipi_spec_dst.s_addr = htonl(src_host) };

	c->cmsg_level = IPPROTO_IP;
	c->cmsg_type = IP_PKTINFO;
	c->cmsg_len = CMSG_LEN(sizeof(pi));
	memcpy(CMSG_DATA(c), &pi, sizeof(pi));
	if (sendmsg(ld->src, &m, 0) != (ssize_t)iov.iov_len)
		ld->send_errors++;
}

/* One probe round trip; its time goes into max_rtt_ms. On loopback every
 * datagram sent before it is already in the daemon's socket buffers, so
 * probing after each burst also keeps those buffers from overflowing. */
static void probe(struct load *ld)
{
	char buf[64];
	double t0 = dg_now_ms();
	ssize_t n = dg_udp_ask(ld->probe, &ld->d.addr[0], ld->d.addrlen[0], "ping", 4, buf, sizeof(buf));
	double rtt = dg_now_ms() - t0;

	ld->probes++;
	if (n != 4)
		ld->lost++;
	if (rtt > ld->max_rtt_ms)
		ld->max_rtt_ms = rtt;
	ld->since_probe = 0;
}

static void paced_send(struct load *ld, unsigned i, uint32_t src_host, const char *data)
{
	send_from(ld, i, src_host, data);
	if (++ld->since_probe == BURST)
		probe(ld);
}

static int bind_any(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_ANY) };
	int fd = socket(AF_INET, SOCK_DGRAM, 0);

	if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
		close(fd);
		fd = -1;
	}
	return fd;
}

/* 50,000 busy sessions are the least recently used; 10,000 idle ones come
 * after them. Newcomers must evict idle sessions (the old eviction looked
 * at the 64 least recently used only, all busy, and dropped them), idle
 * sessions expire without walking the busy ones each time, and 64,000
 * timeouts cost echo O(1) each; through all of it, probes are answered. */
static void test_stall_under_load(void)
{
	struct load ld = { .max_rtt_ms = 0 };

	CU_ASSERT_FATAL(dg_daemon_start(&ld.d, config, NULL));
	CU_ASSERT_FATAL(ld.d.n_addr == 3);
	ld.src = bind_any();
	ld.probe = dg_udp_client(&ld.d.addr[0], 20000);
	CU_ASSERT_FATAL(ld.src >= 0 && ld.probe >= 0);
	probe(&ld);

	for (uint32_t i = 0; i < BUSY; i++)
		paced_send(&ld, 1, 0x7f010000 + i, "{\"busy\":1}");
	for (uint32_t i = 0; i < IDLE; i++)
		paced_send(&ld, 1, 0x7f020000 + i, "not json");
	for (uint32_t i = 0; i < NEWCOMERS; i++)
		paced_send(&ld, 1, 0x7f030000 + i, "not json");
	probe(&ld);
	double idle_since = dg_now_ms();
	for (uint32_t i = 0; i < TIMEOUTS; i++)
		paced_send(&ld, 2, 0x7f040000 + i % TIMEOUT_PEERS, "t");
	probe(&ld);
	double sent = dg_now_ms();

	/* Probe while the sweep (every IDLE_MS / 4) and the deadlines fire:
	 * until all are due, then two more round trips, so every timer due
	 * before them has run. */
	double due = idle_since + IDLE_MS + IDLE_MS / 4;
	if (sent + IDLE_MS > due)
		due = sent + IDLE_MS;
	while (dg_now_ms() < due + 250)
		probe(&ld);
	probe(&ld);
	probe(&ld);

	close(ld.src);
	close(ld.probe);
	dg_daemon_stop_checked(&ld.d, "s");
	printf("\n  %u probes, %u lost, longest round trip %.1f ms\n", ld.probes, ld.lost,
	       ld.max_rtt_ms);
	CU_ASSERT_EQUAL(ld.send_errors, 0);
	CU_ASSERT_EQUAL(ld.lost, 0);
	CU_ASSERT(ld.max_rtt_ms < PROBE_LIMIT_MS);
	/* Every datagram arrived, and the mechanism did what it should. */
	CU_ASSERT_EQUAL(dg_daemon_stat(&ld.d, "s", "rx"), BUSY + IDLE + NEWCOMERS);
	CU_ASSERT_EQUAL(dg_daemon_stat(&ld.d, "s", "sessions"), BUSY + IDLE + NEWCOMERS);
	CU_ASSERT_EQUAL(dg_daemon_stat(&ld.d, "s", "drop_peers_full"), 0);
	CU_ASSERT_EQUAL(dg_daemon_stat(&ld.d, "s", "sessions_evicted"), NEWCOMERS);
	CU_ASSERT_EQUAL(dg_daemon_stat(&ld.d, "s", "sessions_idle"), IDLE);
	CU_ASSERT_EQUAL(dg_daemon_stat(&ld.d, "t", "rx"), TIMEOUTS);
	CU_ASSERT_EQUAL(dg_daemon_stat(&ld.d, "t", "timeouts"), TIMEOUTS);
	CU_ASSERT_EQUAL(dg_daemon_stat(&ld.d, "probe", "tx"), ld.probes);
}

static const struct dg_test stall_tests[] = {
	{ "probe answered while sessions expire, evict and time out", test_stall_under_load },
	{ NULL, NULL },
};

DG_TEST_MAIN("stall", stall_tests)
