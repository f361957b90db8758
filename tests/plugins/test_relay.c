/* The relay plugin on the harness (<dgramd/testing.h>): its requests go
 * to a real upstream socket this test holds on loopback, and its answers
 * come back through the harness's event loop (dg_harness_run); the handler
 * deadline runs on the fake clock, and so do relay's own timeout_ms and
 * linger_ms (host timers and host->now_ms, not libevent's). */
#include "config.h"

#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <dgramd/testing.h>

#include "testutil.h"

/* A UDP socket on 127.0.0.1 with a port of its own; its address in *a. */
static int upstream(struct sockaddr_in *a)
{
	socklen_t len = sizeof(*a);
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	memset(a, 0, sizeof(*a));
	a->sin_family = AF_INET;
	a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0 || bind(fd, (struct sockaddr *)a, sizeof(*a)) < 0 ||
	    getsockname(fd, (struct sockaddr *)a, &len) < 0) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

/* keys: the listener's, config: relay's besides "upstream" (each "" or
 * "\"key\": value, ..."). */
static struct dg_harness *relay_with(const struct sockaddr_in *up, const char *keys,
                                     const char *config)
{
	char text[2048], err[512];

	snprintf(text, sizeof(text), "{\"codec\": \"raw\", %s%s\"handler\": {\"plugin\": "
	         "\"%s/plugins/.libs/relay.so\", \"config\": {%s%s\"upstream\": \"127.0.0.1:%u\"}}}",
	         keys, keys[0] ? ", " : "", dg_test_builddir(), config, config[0] ? ", " : "",
	         ntohs(up->sin_port));
	struct dg_harness *h = dg_harness_new(text, NULL, err, sizeof(err));
	if (!h)
		fprintf(stderr, "relay harness: %s\n", err);
	CU_ASSERT_PTR_NOT_NULL(h);
	return h;
}

static struct dg_harness *relay_on(const struct sockaddr_in *up, const char *keys)
{
	return relay_with(up, keys, "");
}

/* One datagram at the upstream within 3 s (relay sends it from on_packet),
 * with the address it came from. */
static ssize_t upstream_take(int fd, char *buf, size_t len, struct sockaddr_storage *from,
                             socklen_t *fromlen)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };

	if (poll(&p, 1, 3000) != 1)
		return -1;
	*fromlen = sizeof(*from);
	return recvfrom(fd, buf, len - 1, 0, (struct sockaddr *)from, fromlen);
}

/* Two peers, answered out of order: each answer reaches its own peer. */
static void test_answers_to_their_peers(void)
{
	struct sockaddr_in up;
	int fd = upstream(&up);
	struct sockaddr_storage from[2];
	socklen_t fromlen[2];
	char buf[2][64], ans[80];
	CU_ASSERT_FATAL(fd >= 0);
	struct dg_harness *h = relay_on(&up, "");
	CU_ASSERT_PTR_NOT_NULL_FATAL(h);

	dg_harness_send_text(h, "127.0.0.1:4001", "question one");
	dg_harness_send_text(h, "127.0.0.2:4002", "question two");
	for (int i = 0; i < 2; i++) {
		ssize_t n = upstream_take(fd, buf[i], sizeof(buf[i]), &from[i], &fromlen[i]);
		CU_ASSERT_FATAL(n > 0);
		buf[i][n] = '\0';
	}
	CU_ASSERT_STRING_EQUAL(buf[0], "question one");
	CU_ASSERT_STRING_EQUAL(buf[1], "question two");
	for (int i = 1; i >= 0; i--) {
		snprintf(ans, sizeof(ans), "answer to %s", buf[i]);
		CU_ASSERT(sendto(fd, ans, strlen(ans), 0, (struct sockaddr *)&from[i], fromlen[i]) > 0);
	}
	CU_ASSERT_TRUE(dg_harness_run(h, 2, 3000));
	DG_TEST_ASSERT_REPLIES(h, 2);
	DG_TEST_ASSERT_REPLY_TO(h, 0, "127.0.0.2:4002", "answer to question two");
	DG_TEST_ASSERT_REPLY_TO(h, 1, "127.0.0.1:4001", "answer to question one");
	DG_TEST_ASSERT_COUNTER(h, "stale_calls", 0);
	dg_harness_free(h);
	close(fd);
}

/* handler_timeout_ms passes on the fake clock while relay waits: the
 * request ends (counted), and the upstream's late answer goes nowhere. */
static void test_deadline_then_late_answer(void)
{
	struct sockaddr_in up;
	int fd = upstream(&up);
	struct sockaddr_storage from;
	socklen_t fromlen;
	char buf[64];
	CU_ASSERT_FATAL(fd >= 0);
	struct dg_harness *h = relay_on(&up, "\"handler_timeout_ms\": 200");
	CU_ASSERT_PTR_NOT_NULL_FATAL(h);

	dg_harness_send_text(h, "127.0.0.1:4001", "slow");
	CU_ASSERT_FATAL(upstream_take(fd, buf, sizeof(buf), &from, &fromlen) == 4);
	dg_harness_advance(h, 200);
	DG_TEST_ASSERT_COUNTER(h, "timeouts", 1);
	CU_ASSERT_EQUAL(dg_harness_pending(h), 0);
	size_t before = dg_harness_replies(h); /* relay may say "upstream timeout" */
	CU_ASSERT(sendto(fd, "late", 4, 0, (struct sockaddr *)&from, fromlen) == 4);
	/* The next request's answer comes back; the late one never does. */
	dg_harness_send_text(h, "127.0.0.1:4001", "next");
	CU_ASSERT_FATAL(upstream_take(fd, buf, sizeof(buf), &from, &fromlen) == 4);
	CU_ASSERT(sendto(fd, "fine", 4, 0, (struct sockaddr *)&from, fromlen) == 4);
	CU_ASSERT_TRUE(dg_harness_run(h, before + 1, 3000));
	DG_TEST_ASSERT_REPLIES(h, before + 1);
	DG_TEST_ASSERT_REPLY(h, before, "fine");
	DG_TEST_ASSERT_COUNTER(h, "stale_calls", 0);
	dg_harness_free(h);
	close(fd);
}

/* timeout_ms runs on the server's clock: the harness's fake one moves it.
 * With max_inflight 1 the second request waits for the first's slot, and
 * gets its own timeout_ms from the moment it is sent. */
static void test_upstream_timeout_fake_clock(void)
{
	struct sockaddr_in up;
	int fd = upstream(&up);
	struct sockaddr_storage from;
	socklen_t fromlen;
	char buf[64];
	CU_ASSERT_FATAL(fd >= 0);
	struct dg_harness *h = relay_with(&up, "\"handler_timeout_ms\": 60000",
	                                  "\"timeout_ms\": 300, \"max_inflight\": 1");
	CU_ASSERT_PTR_NOT_NULL_FATAL(h);

	dg_harness_send_text(h, "127.0.0.1:4001", "one");
	dg_harness_send_text(h, "127.0.0.1:4002", "two");
	CU_ASSERT_FATAL(upstream_take(fd, buf, sizeof(buf), &from, &fromlen) == 3);
	dg_harness_advance(h, 299);
	DG_TEST_ASSERT_REPLIES(h, 0);
	dg_harness_advance(h, 1);
	CU_ASSERT_EQUAL_FATAL(dg_harness_replies(h), 1);
	DG_TEST_ASSERT_REPLY_TO(h, 0, "127.0.0.1:4001", "{\"error\":\"upstream timeout\"}");
	/* the slot went to "two", sent now: its timeout_ms starts now */
	CU_ASSERT_FATAL(upstream_take(fd, buf, sizeof(buf), &from, &fromlen) == 3);
	dg_harness_advance(h, 299);
	DG_TEST_ASSERT_REPLIES(h, 1);
	dg_harness_advance(h, 1);
	CU_ASSERT_EQUAL_FATAL(dg_harness_replies(h), 2);
	DG_TEST_ASSERT_REPLY_TO(h, 1, "127.0.0.1:4002", "{\"error\":\"upstream timeout\"}");
	DG_TEST_ASSERT_COUNTER(h, "timeouts", 0);
	DG_TEST_ASSERT_COUNTER(h, "stale_calls", 0);
	CU_ASSERT_EQUAL(dg_harness_pending(h), 0);
	dg_harness_free(h);
	close(fd);
}

static const struct dg_test tests[] = {
	{ "answers reach their own peers", test_answers_to_their_peers },
	{ "handler deadline on the fake clock, then a late answer", test_deadline_then_late_answer },
	{ "upstream timeout_ms on the fake clock", test_upstream_timeout_fake_clock },
	{ NULL, NULL },
};

DG_TEST_MAIN("relay", tests)
