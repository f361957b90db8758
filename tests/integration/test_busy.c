/* Integration: a socket that never empties. Under load the worker takes a
 * busy socket out of epoll's set while its replies go out and reads it
 * again right after the flush, without going back to the event loop
 * (core/server.c, reread). That loop is bounded by DG_RX_BUDGET datagrams
 * per readiness: a flooder that keeps one listener's socket full must not
 * starve another listener, the timers, or a SIGTERM.
 *
 * The flooder is a child process sending 64 B datagrams with sendmmsg as
 * fast as it can (faster than the worker echoes them, so the socket stays
 * full and the kernel drops the rest, counted); it runs until killed, with
 * an alarm as a backstop. Probes wait for their answer, never for a time. */
#include "config.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testutil.h"

enum {
	PROBES = 20,
	PROBE_TIMEOUT_MS = 5000,
	FLOOD_BACKSTOP_S = 120,
};

/* "hot" is flooded, and answers each datagram 16 times so that the
 * flooder outruns the worker whatever the machine's load (its socket never
 * empties); "probe" answers at once; "timer" answers from a plugin timer
 * 1 ms later (a deferred reply: the timer heap must run); "quiet" never
 * answers. */
static const char config[] =
	"{\"metrics\": {\"bind\": \"127.0.0.1:0\"}, \"shutdown_timeout_ms\": 2000, \"listeners\": ["
	" {\"name\": \"hot\", \"bind\": \"127.0.0.1:0\", \"codec\": \"raw\", \"rcvbuf\": 4194304,"
	"  \"max_replies_per_request\": 16,"
	"  \"handler\": {\"plugin\": \"echo\", \"config\": {\"repeat\": 16}}},"
	" {\"name\": \"probe\", \"bind\": \"127.0.0.1:0\", \"codec\": \"raw\", \"handler\": \"echo\"},"
	" {\"name\": \"timer\", \"bind\": \"127.0.0.1:0\", \"codec\": \"raw\","
	"  \"handler\": {\"plugin\": \"echo\", \"config\": {\"delay_ms\": 1}}},"
	" {\"name\": \"quiet\", \"bind\": \"127.0.0.1:0\", \"codec\": \"raw\","
	"  \"handler\": {\"plugin\": \"echo\", \"config\": {\"reply\": false}}}]}";

static pid_t flood_start(const struct dg_daemon *d)
{
	pid_t pid = fork();

	if (pid != 0)
		return pid;
	alarm(FLOOD_BACKSTOP_S);
	int fd = socket(d->addr[0].ss_family, SOCK_DGRAM, 0);
	if (fd < 0 || connect(fd, (const struct sockaddr *)&d->addr[0], d->addrlen[0]) < 0)
		_exit(2);
	static char data[64][64];
	struct mmsghdr m[64];
	struct iovec iov[64];
	memset(m, 0, sizeof(m));
	for (unsigned i = 0; i < 64; i++) {
		memset(data[i], 'a' + (int)(i % 26), sizeof(data[i]));
		iov[i] = (struct iovec){ .iov_base = data[i], .iov_len = sizeof(data[i]) };
		m[i].msg_hdr.msg_iov = &iov[i];
		m[i].msg_hdr.msg_iovlen = 1;
	}
	/* The replies are never read: the socket's receive queue fills and
	 * the kernel drops them, which costs the server nothing. */
	for (;;)
		if (sendmmsg(fd, m, 64, 0) < 0 && getppid() == 1)
			_exit(0);
}

static void flood_stop(pid_t pid)
{
	if (pid <= 0)
		return;
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
}

static bool start(struct dg_daemon *d, pid_t *flooder)
{
	*flooder = -1;
	CU_ASSERT_FATAL(dg_daemon_start(d, config, NULL));
	CU_ASSERT_EQUAL_FATAL(d->n_addr, 4);
	*flooder = flood_start(d);
	CU_ASSERT_FATAL(*flooder > 0);
	/* Busy: the worker has echoed a good many and the socket overflows
	 * (the flood outruns the worker). */
	CU_ASSERT(dg_daemon_wait_live(d, "hot", "rx", 20000, 60000) >= 20000);
	CU_ASSERT(dg_daemon_wait_live(d, "hot", "rx_kernel_drops", 1, 60000) >= 1);
	return true;
}

/* One probe of listener i; true if answered with the same bytes. */
static bool ask(const struct dg_daemon *d, unsigned i, unsigned n)
{
	char req[32], buf[64];
	int fd = dg_udp_client(&d->addr[i], PROBE_TIMEOUT_MS);
	int len = snprintf(req, sizeof(req), "probe %u", n);
	ssize_t got = fd < 0 ? -1 : dg_udp_ask(fd, &d->addr[i], d->addrlen[i], req, (size_t)len, buf,
	                                       sizeof(buf));

	if (fd >= 0)
		close(fd);
	return got == len && memcmp(buf, req, (size_t)len) == 0;
}

static void test_others_served(void)
{
	struct dg_daemon d;
	pid_t flooder;
	unsigned answered = 0, timer_answered = 0, hot_moved = 0;

	if (!start(&d, &flooder))
		return;
	long long rx = dg_daemon_live(&d, "hot", "rx");
	long long drops0 = dg_daemon_live(&d, "hot", "rx_kernel_drops");
	for (unsigned i = 0; i < PROBES; i++) {
		answered += ask(&d, 1, i);
		timer_answered += ask(&d, 2, i);
		/* and the hot socket is served between the probes too */
		long long now = dg_daemon_live(&d, "hot", "rx");
		hot_moved += now > rx;
		rx = now;
	}
	long long drops1 = dg_daemon_live(&d, "hot", "rx_kernel_drops");
	fprintf(stderr, "busy: %u/%u probes and %u/%u timer probes answered while 'hot' was "
	        "flooded (its rx moved in %u of %u rounds, %lld kernel drops meanwhile)\n",
	        answered, PROBES, timer_answered, PROBES, hot_moved, PROBES, drops1 - drops0);
	CU_ASSERT_EQUAL(answered, PROBES);
	CU_ASSERT_EQUAL(timer_answered, PROBES);
	CU_ASSERT_EQUAL(hot_moved, PROBES);
	CU_ASSERT(drops1 >= drops0);
	flood_stop(flooder);
	/* A reply is counted when the send that carried it returns, which can
	 * be a moment after the client has it: wait for the counter. */
	CU_ASSERT_EQUAL(dg_daemon_wait_live(&d, "probe", "tx", PROBES, 10000), PROBES);
	CU_ASSERT_EQUAL(dg_daemon_wait_live(&d, "timer", "tx", PROBES, 10000), PROBES);
	CU_ASSERT_EQUAL(dg_daemon_stop(&d), 0);
}

/* SIGTERM while the flood goes on: the worker stops reading, finishes and
 * exits (dg_daemon_stop gives it 10 s, then SIGKILL: status 137). */
static void test_stops(void)
{
	struct dg_daemon d;
	pid_t flooder;

	if (!start(&d, &flooder))
		return;
	CU_ASSERT_EQUAL(dg_daemon_stop(&d), 0);
	flood_stop(flooder);
	char *log = dg_daemon_log(&d);
	CU_ASSERT_PTR_NOT_NULL(strstr(log ? log : "", "signal TERM: stopping"));
	free(log);
}

/* Bursts to a listener that never replies: a burst of 4 or more parks the
 * socket, and only the post event puts it back. A batch that leaves no
 * work (no reply, nothing pending) must still post it, or the socket is
 * never read again (the first version of parking stalled here). */
static void test_quiet(void)
{
	struct dg_daemon d;
	char data[32][16];
	struct mmsghdr m[32];
	struct iovec iov[32];
	long long rx = 0;
	unsigned sent = 0;

	CU_ASSERT_FATAL(dg_daemon_start(&d, config, NULL));
	int fd = dg_udp_client(&d.addr[3], 1000);
	CU_ASSERT_FATAL(fd >= 0);
	memset(m, 0, sizeof(m));
	for (unsigned i = 0; i < 32; i++) {
		memset(data[i], 'q', sizeof(data[i]));
		iov[i] = (struct iovec){ .iov_base = data[i], .iov_len = sizeof(data[i]) };
		m[i].msg_hdr.msg_name = &d.addr[3];
		m[i].msg_hdr.msg_namelen = d.addrlen[3];
		m[i].msg_hdr.msg_iov = &iov[i];
		m[i].msg_hdr.msg_iovlen = 1;
	}
	for (unsigned round = 0; round < 50; round++) {
		int n = sendmmsg(fd, m, 32, 0);
		CU_ASSERT_EQUAL(n, 32);
		sent += n > 0 ? (unsigned)n : 0;
		/* each burst read before the next goes out: no kernel drop */
		rx = dg_daemon_wait_live(&d, "quiet", "rx", sent, 10000);
		if (rx != (long long)sent)
			break;
	}
	close(fd);
	CU_ASSERT_EQUAL(rx, sent);
	CU_ASSERT_EQUAL(sent, 50 * 32);
	CU_ASSERT_EQUAL(dg_daemon_live(&d, "quiet", "rx_kernel_drops"), 0);
	CU_ASSERT_EQUAL(dg_daemon_live(&d, "quiet", "tx"), 0);
	CU_ASSERT_EQUAL(dg_daemon_stop(&d), 0);
}

static const struct dg_test tests[] = {
	{ "bursts to a listener that never replies are all read", test_quiet },
	{ "a flooded socket starves no other listener, timer or probe", test_others_served },
	{ "SIGTERM stops the daemon while a socket never empties", test_stops },
	{ NULL, NULL },
};

DG_TEST_MAIN("busy", tests)
