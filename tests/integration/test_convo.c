/* Integration: conversations (host->request_await), the request's data
 * slot and push (host->session_send), through the real daemon on loopback
 * with the tests/fixtures/convo.c plugin. The codec is length-prefixed
 * (1-byte lengths) bytes, so one datagram can carry several frames. Every
 * test checks that the counters add up and that each conversation's data
 * was freed exactly once (the plugin logs "freed conversation ID"). */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testutil.h"

#define CODEC "{\"framing\": \"length-prefixed\", \"width\": 1, \"payload\": \"bytes\"}"

static char *config(const char *extra)
{
	static char buf[4096];

	snprintf(buf, sizeof(buf),
	         "{\"shutdown_timeout_ms\": 5000, \"listeners\": [{\"name\": \"c\", "
	         "\"bind\": \"127.0.0.1:0\", \"codec\": " CODEC ", \"handler\": {\"plugin\": "
	         "\"%s/tests/fixtures/.libs/convo.so\"}%s}]}",
	         dg_test_builddir(), extra ? extra : ", \"amplification\": {\"factor\": 0}");
	return buf;
}

/* A client: its socket and the frames of the last datagram not read yet. */
struct client {
	int fd;
	struct dg_daemon *d;
	unsigned char buf[2048];
	size_t len, off;
};

static void client_open(struct client *c, struct dg_daemon *d)
{
	memset(c, 0, sizeof(*c));
	c->d = d;
	c->fd = dg_udp_client(&d->addr[0], 3000);
	CU_ASSERT_FATAL(c->fd >= 0);
}

/* One datagram of the NULL-terminated frames. */
static void sendv(struct client *c, const char *first, ...)
{
	unsigned char out[1024];
	size_t n = 0;
	va_list ap;

	va_start(ap, first);
	for (const char *f = first; f; f = va_arg(ap, const char *)) {
		size_t l = strlen(f);
		out[n++] = (unsigned char)l;
		memcpy(out + n, f, l);
		n += l;
	}
	va_end(ap);
	CU_ASSERT_EQUAL(sendto(c->fd, out, n, 0, (struct sockaddr *)&c->d->addr[0],
	                       c->d->addrlen[0]), (ssize_t)n);
}

#define SEND(c, ...) sendv((c), __VA_ARGS__, (const char *)NULL)

/* The next frame from the daemon (replies coalesce: a datagram may hold
 * several), as a string; "" after the socket's timeout. */
static const char *next_frame(struct client *c)
{
	static char frame[300];

	if (c->off >= c->len) {
		ssize_t n = recv(c->fd, c->buf, sizeof(c->buf), 0);
		c->off = 0;
		c->len = n > 0 ? (size_t)n : 0;
		if (n <= 0)
			return "";
	}
	size_t l = c->buf[c->off++];
	if (l > c->len - c->off)
		l = c->len - c->off;
	memcpy(frame, c->buf + c->off, l);
	frame[l] = '\0';
	c->off += l;
	return frame;
}

#define EXPECT(c, text) CU_ASSERT_STRING_EQUAL(next_frame(c), text)

/* Stop the daemon; the counters add up; n conversations were freed once
 * each and `canceled` got DG_ECANCELED. */
static void stop(struct dg_daemon *d, unsigned n, unsigned canceled)
{
	dg_daemon_stop_checked(d, "c");
	char *log = dg_daemon_log(d);
	CU_ASSERT_PTR_NOT_NULL_FATAL(log);
	CU_ASSERT_EQUAL(dg_count_lines(log, "freed conversation"), n);
	CU_ASSERT_EQUAL(dg_count_lines(log, "canceled conversation"), canceled);
	for (unsigned i = 1; i <= n; i++) {
		char line[64];
		snprintf(line, sizeof(line), "freed conversation %u", i);
		CU_ASSERT_EQUAL(dg_count_lines(log, line), 1);
	}
	free(log);
}

/* Three steps, then the peer's next packet goes to on_packet again. */
static void test_steps(void)
{
	struct dg_daemon d;
	struct client c;

	CU_ASSERT_FATAL(dg_daemon_start(&d, config(NULL), NULL));
	client_open(&c, &d);
	SEND(&c, "count 3 2000 0");
	EXPECT(&c, "start");
	SEND(&c, "x1");
	EXPECT(&c, "got:1:x1");
	SEND(&c, "x2");
	EXPECT(&c, "got:2:x2");
	SEND(&c, "x3");
	EXPECT(&c, "got:3:x3");
	EXPECT(&c, "done");
	SEND(&c, "echo after");
	EXPECT(&c, "after");
	close(c.fd);
	stop(&d, 1, 0);
	CU_ASSERT_EQUAL(dg_daemon_stat(&d, "c", "handled"), 5);
	CU_ASSERT_EQUAL(dg_daemon_stat(&d, "c", "packets"), 5);
	CU_ASSERT_EQUAL(dg_daemon_stat(&d, "c", "timeouts"), 0);
}

/* A step times out (after its own timeout, not handler_timeout_ms), the
 * plugin waits again and the next packet arrives; a second conversation
 * that runs out of retries ends (the plugin completes it). */
static void test_step_timeout(void)
{
	struct dg_daemon d;
	struct client c;

	/* handler_timeout_ms 300 is shorter than the three steps together:
	 * it is suspended while the request waits. */
	CU_ASSERT_FATAL(dg_daemon_start(&d, config(", \"amplification\": {\"factor\": 0}, "
	                                           "\"handler_timeout_ms\": 300"), NULL));
	client_open(&c, &d);
	double t0 = dg_now_ms();
	SEND(&c, "count 1 250 2");
	EXPECT(&c, "start");
	EXPECT(&c, "timeout:1");
	double t1 = dg_now_ms();
	EXPECT(&c, "timeout:2");
	double t2 = dg_now_ms();
	fprintf(stderr, "step timeouts after %.0f and %.0f ms (250 ms each)\n", t1 - t0, t2 - t0);
	CU_ASSERT(t1 - t0 >= 240);
	CU_ASSERT(t2 - t1 >= 240);
	SEND(&c, "y");
	EXPECT(&c, "got:1:y");
	EXPECT(&c, "done");
	SEND(&c, "count 1 150 0");
	EXPECT(&c, "start");
	EXPECT(&c, "gave-up");
	SEND(&c, "echo z");
	EXPECT(&c, "z");
	close(c.fd);
	stop(&d, 2, 0);
	CU_ASSERT_EQUAL(dg_daemon_stat(&d, "c", "timeouts"), 0);
	CU_ASSERT_EQUAL(dg_daemon_stat(&d, "c", "handled"), 4);
}

/* "clock:N" as a number; 0 if it is not one. */
static unsigned long long clock_frame(struct client *c)
{
	unsigned long long v = 0;
	const char *f = next_frame(c);

	if (sscanf(f, "clock:%llu", &v) != 1)
		fprintf(stderr, "expected clock:N, got '%s'\n", f);
	return v;
}

/* host->now_ms in the daemon: the clock the step timeout runs on (at
 * least the step's 200 ms pass on it, no more than the test saw pass),
 * never going back from one request to the next. */
static void test_host_clock(void)
{
	struct dg_daemon d;
	struct client c;

	CU_ASSERT_FATAL(dg_daemon_start(&d, config(NULL), NULL));
	client_open(&c, &d);
	double t0 = dg_now_ms();
	SEND(&c, "clock 200");
	unsigned long long a = clock_frame(&c), b = clock_frame(&c);
	double seen = dg_now_ms() - t0;
	fprintf(stderr, "now_ms moved %llu ms over a 200 ms step (%.0f ms seen)\n", b - a, seen);
	CU_ASSERT(a > 0);
	CU_ASSERT(b >= a + 200);
	CU_ASSERT((double)(b - a) <= seen + 20); /* a coarse clock tick or so */
	SEND(&c, "clock 1");
	unsigned long long a2 = clock_frame(&c), b2 = clock_frame(&c);
	CU_ASSERT(a2 >= b);
	CU_ASSERT(b2 >= a2 + 1);
	close(c.fd);
	stop(&d, 2, 0);
}

/* A second await on the session: DG_EBUSY (-11); the request completed
 * with an await still set frees its data. */
static void test_busy(void)
{
	struct dg_daemon d;
	struct client c;

	CU_ASSERT_FATAL(dg_daemon_start(&d, config(NULL), NULL));
	client_open(&c, &d);
	SEND(&c, "busy");
	EXPECT(&c, "busy:0:-11");
	SEND(&c, "echo next");
	EXPECT(&c, "next");
	close(c.fd);
	stop(&d, 1, 0);
}

/* Datagrams of the peer that arrive while its request is pending but not
 * waiting stay queued and go, in order, to the next awaits: none lost. */
static void test_queued_in_order(void)
{
	struct dg_daemon d;
	struct client c;

	CU_ASSERT_FATAL(dg_daemon_start(&d, config(NULL), NULL));
	client_open(&c, &d);
	SEND(&c, "pause 6 2000 1000");
	EXPECT(&c, "paused");
	for (int i = 1; i <= 6; i++) {
		char q[8];
		snprintf(q, sizeof(q), "q%d", i);
		SEND(&c, q);
	}
	for (int i = 1; i <= 6; i++) {
		char want[16];
		snprintf(want, sizeof(want), "got:%d:q%d", i, i);
		EXPECT(&c, want);
	}
	EXPECT(&c, "done");
	close(c.fd);
	stop(&d, 1, 0);
	/* They waited in the peer queue (sent within the 1 s pause). */
	CU_ASSERT_EQUAL(dg_daemon_stat(&d, "c", "queued"), 6);
	CU_ASSERT_EQUAL(dg_daemon_stat(&d, "c", "handled"), 7);
}

/* The frames of one datagram go to successive steps in order; the one left
 * when the conversation ends goes to on_packet. */
static void test_frames(void)
{
	struct dg_daemon d;
	struct client c;

	CU_ASSERT_FATAL(dg_daemon_start(&d, config(NULL), NULL));
	client_open(&c, &d);
	SEND(&c, "count 3 2000 0");
	EXPECT(&c, "start");
	SEND(&c, "a", "b", "c", "echo d");
	EXPECT(&c, "got:1:a");
	EXPECT(&c, "got:2:b");
	EXPECT(&c, "got:3:c");
	EXPECT(&c, "done");
	EXPECT(&c, "d");
	close(c.fd);
	stop(&d, 1, 0);
	CU_ASSERT_EQUAL(dg_daemon_stat(&d, "c", "handled"), 2);
	CU_ASSERT_EQUAL(dg_daemon_stat(&d, "c", "packets"), 5);
}

/* While peer A's conversation waits, peer B is served at once and has a
 * conversation of its own. */
static void test_other_peers(void)
{
	struct dg_daemon d;
	struct client a, b;

	CU_ASSERT_FATAL(dg_daemon_start(&d, config(NULL), NULL));
	client_open(&a, &d);
	client_open(&b, &d);
	SEND(&a, "count 2 5000 0");
	EXPECT(&a, "start");
	double t0 = dg_now_ms();
	SEND(&b, "echo b");
	EXPECT(&b, "b");
	fprintf(stderr, "peer B answered in %.1f ms while A waits\n", dg_now_ms() - t0);
	CU_ASSERT(dg_now_ms() - t0 < 1000);
	SEND(&b, "count 1 5000 0");
	EXPECT(&b, "start");
	SEND(&a, "a1");
	EXPECT(&a, "got:1:a1");
	SEND(&b, "bb");
	EXPECT(&b, "got:1:bb");
	EXPECT(&b, "done");
	SEND(&a, "a2");
	EXPECT(&a, "got:2:a2");
	EXPECT(&a, "done");
	close(a.fd);
	close(b.fd);
	stop(&d, 2, 0);
	CU_ASSERT_EQUAL(dg_daemon_stat(&d, "c", "sessions"), 2);
}

/* Shutdown while a conversation waits: its step gets DG_ECANCELED, the host
 * completes it, its data is freed once, and the daemon stops at once
 * rather than after the step's 60 s. */
static void test_shutdown_cancels(void)
{
	struct dg_daemon d;
	struct client c;

	CU_ASSERT_FATAL(dg_daemon_start(&d, config(NULL), NULL));
	client_open(&c, &d);
	SEND(&c, "count 5 60000 0");
	EXPECT(&c, "start");
	SEND(&c, "s1");
	EXPECT(&c, "got:1:s1");
	double t0 = dg_now_ms();
	close(c.fd);
	stop(&d, 1, 1);
	fprintf(stderr, "stopped %.0f ms after SIGTERM with a conversation waiting\n",
	        dg_now_ms() - t0);
	CU_ASSERT(dg_now_ms() - t0 < 4000); /* under shutdown_timeout_ms (5000) */
}

/* A push after the request ended reaches a validated peer (counted in tx
 * and tx_push); to an unvalidated peer it is over the amplification credit
 * (a 200-byte push for an 8-byte request, factor 3): DG_EAGAIN (-6),
 * counted as tx_drop_amplification. */
static void test_push(void)
{
	struct dg_daemon d;
	struct client u, v;

	CU_ASSERT_FATAL(dg_daemon_start(&d, config(", \"amplification\": {\"factor\": 3}"), NULL));
	client_open(&u, &d);
	client_open(&v, &d);
	SEND(&v, "pushv");
	EXPECT(&v, "p");
	const char *f = next_frame(&v); /* 20 ms after "p": the request is over */
	CU_ASSERT_EQUAL(strlen(f), 200);
	CU_ASSERT_EQUAL(strncmp(f, "pushed", 6), 0);
	SEND(&u, "pushnow");
	EXPECT(&u, "pushrc:-6");
	close(u.fd);
	close(v.fd);
	stop(&d, 0, 0);
	CU_ASSERT_EQUAL(dg_daemon_stat(&d, "c", "tx_push"), 1);
	CU_ASSERT_EQUAL(dg_daemon_stat(&d, "c", "tx_drop_amplification"), 1);
	CU_ASSERT_EQUAL(dg_daemon_stat(&d, "c", "tx"), 3); /* "p", "pushrc:-6", the push */
}

/* After the request is done its handle is dead for every 1.1 call. */
static void test_stale(void)
{
	struct dg_daemon d;
	struct client c;

	CU_ASSERT_FATAL(dg_daemon_start(&d, config(NULL), NULL));
	client_open(&c, &d);
	SEND(&c, "keep");
	EXPECT(&c, "kept");
	SEND(&c, "stale");
	EXPECT(&c, "stale:-4:-4:-4");
	close(c.fd);
	stop(&d, 0, 0);
	CU_ASSERT_EQUAL(dg_daemon_stat(&d, "c", "stale_calls"), 3);
}

/* A session handle kept after its session closed (evicted: max_peers 1,
 * another peer arrives) is dead for every host call: session_send and
 * peer_validate return DG_ESTALE (-4), session_get NULL; never a write
 * through freed memory (it was a use after free under ASan). */
static void test_stale_session(void)
{
	struct dg_daemon d;
	struct client u, v;

	CU_ASSERT_FATAL(dg_daemon_start(&d, config(", \"max_peers\": 1"), NULL));
	client_open(&u, &d);
	client_open(&v, &d);
	SEND(&u, "keepsess");
	EXPECT(&u, "keptsess");
	SEND(&v, "stalesess"); /* v's session evicts u's */
	EXPECT(&v, "stalesess:-4:-4:null");
	SEND(&v, "echo still here");
	EXPECT(&v, "still here");
	close(u.fd);
	close(v.fd);
	stop(&d, 0, 0);
	CU_ASSERT_EQUAL(dg_daemon_stat(&d, "c", "sessions_evicted"), 1);
	CU_ASSERT_EQUAL(dg_daemon_stat(&d, "c", "stale_calls"), 3);
	CU_ASSERT_EQUAL(dg_daemon_stat(&d, "c", "tx_push"), 0);
}

static const struct dg_test tests[] = {
	{ "several steps", test_steps },
	{ "step timeout, await again, give up", test_step_timeout },
	{ "second await: DG_EBUSY", test_busy },
	{ "queued while pending, delivered in order", test_queued_in_order },
	{ "frames of one datagram in order", test_frames },
	{ "other peers meanwhile", test_other_peers },
	{ "shutdown: DG_ECANCELED, data freed once", test_shutdown_cancels },
	{ "push: tx_push and the amplification guard", test_push },
	{ "stale handle: DG_ESTALE", test_stale },
	{ "stale session handle: DG_ESTALE", test_stale_session },
	{ "host->now_ms: the server's clock", test_host_clock },
	{ NULL, NULL },
};

DG_TEST_MAIN("convo", tests)
