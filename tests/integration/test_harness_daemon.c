/* The harness and the daemon agree: the same datagrams, in the same order,
 * from the same number of peers, to the same listener config, give the
 * same stats line (every counter) in dgramd over loopback and in
 * libdgramd-testing with its fake clock. */
#include "config.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <dgramd/testing.h>

#include "testutil.h"

#define PEERS 3

struct step {
	unsigned peer;    /* which client (0 .. PEERS - 1) */
	const char *data; /* NULL: end */
};

struct scenario {
	const char *listener;  /* listener keys besides name and bind; @B@: the build dir */
	struct step steps[16];
	unsigned min_replies;  /* the daemon is done once it sent what the harness did:
	                        * at least this many (so that waiting means something) */
	unsigned advance_ms;   /* the harness's clock moves this far at the end */
};

/* The stats line after "listener=t" without log_dropped, from the log. */
static bool daemon_stats(struct dg_daemon *d, char *out, size_t len)
{
	char *log = dg_daemon_log(d), *line = log ? strstr(log, "stats listener=t ") : NULL;
	bool ok = false;

	if (line) {
		line += strlen("stats listener=t");
		char *end = strstr(line, " log_dropped=");
		if (end) {
			snprintf(out, len, "%.*s", (int)(end - line), line);
			ok = true;
		}
	}
	free(log);
	return ok;
}

static void run(const struct scenario *sc)
{
	char keys[2048], conf[4096], err[512], hstats[2048], dstats[2048], buf[65536], peer[32];
	struct dg_daemon d;
	int fd[PEERS];

	const char *at = strstr(sc->listener, "@B@");
	CU_ASSERT_PTR_NOT_NULL_FATAL(at);
	snprintf(keys, sizeof(keys), "%.*s%s%s", (int)(at - sc->listener), sc->listener,
	         dg_test_builddir(), at + 3);
	/* The harness first: how many replies the daemon should send. */
	snprintf(conf, sizeof(conf), "{%s}", keys);
	struct dg_harness *h = dg_harness_new(conf, NULL, err, sizeof(err));
	if (!h)
		fprintf(stderr, "harness: %s\n", err);
	CU_ASSERT_PTR_NOT_NULL_FATAL(h);
	for (const struct step *s = sc->steps; s->data; s++) {
		snprintf(peer, sizeof(peer), "127.0.0.1:%u", 40000 + s->peer);
		dg_harness_send_text(h, peer, s->data);
	}
	dg_harness_advance(h, sc->advance_ms);
	size_t want = dg_harness_replies(h);
	CU_ASSERT_EQUAL(dg_harness_pending(h), 0); /* nothing left for a stop to abandon */
	dg_harness_stats(h, hstats, sizeof(hstats));
	dg_harness_free(h);
	CU_ASSERT(want >= sc->min_replies);

	snprintf(conf, sizeof(conf), "{\"shutdown_timeout_ms\": 2000, \"listeners\": [{\"name\": "
	         "\"t\", \"bind\": \"127.0.0.1:0\", %s}]}", keys);
	CU_ASSERT_FATAL(dg_daemon_start(&d, conf, NULL));
	for (unsigned i = 0; i < PEERS; i++)
		fd[i] = dg_udp_client(&d.addr[0], 3000);
	for (const struct step *s = sc->steps; s->data; s++)
		CU_ASSERT(sendto(fd[s->peer], s->data, strlen(s->data), 0,
		                 (struct sockaddr *)&d.addr[0], d.addrlen[0]) == (ssize_t)strlen(s->data));
	/* Wait for the replies (bounded), reading every client. */
	size_t got = 0;
	double deadline = dg_now_ms() + 10000;
	while (got < want && dg_now_ms() < deadline) {
		struct pollfd p[PEERS];
		for (unsigned i = 0; i < PEERS; i++)
			p[i] = (struct pollfd){ .fd = fd[i], .events = POLLIN };
		if (poll(p, PEERS, 100) <= 0)
			continue;
		for (unsigned i = 0; i < PEERS; i++)
			if ((p[i].revents & POLLIN) && recv(fd[i], buf, sizeof(buf), 0) >= 0)
				got++;
	}
	CU_ASSERT_EQUAL(got, want);
	CU_ASSERT_EQUAL(dg_daemon_stop(&d), 0);
	CU_ASSERT_FATAL(daemon_stats(&d, dstats, sizeof(dstats)));
	for (unsigned i = 0; i < PEERS; i++)
		close(fd[i]);
	if (strcmp(hstats, dstats))
		fprintf(stderr, "\n  daemon: %s\n  harness:%s\n", dstats, hstats);
	CU_ASSERT_STRING_EQUAL(hstats, dstats);
}

#define ECHO "\"handler\": {\"plugin\": \"@B@/plugins/.libs/echo.so\""
#define KV "\"handler\": {\"plugin\": \"@B@/plugins/.libs/kv.so\""

/* Valid, undecodable and oversized datagrams from three peers. */
static void test_decode_and_limits(void)
{
	static const struct scenario sc = {
		.listener = "\"codec\": \"json\", \"max_datagram\": 40, " ECHO
		            ", \"config\": {\"error_reply\": true}}",
		.steps = {
			{ 0, "{\"a\": 1}" }, { 1, "[1, 2, 3]" }, { 2, "{\"broken\": " },
			{ 0, "{\"this one\": \"is longer than forty bytes, so dropped\"}" },
			{ 1, "\"fine\"" }, { 2, "not json at all, but short" }, { 0, NULL },
		},
		.min_replies = 3, .advance_ms = 0,
	};
	run(&sc);
}

/* One busy peer: a queue of 2, handler deadlines, timeouts answered in
 * turn, the rest dropped; a second peer answered meanwhile. */
static void test_queue_and_deadlines(void)
{
	static const struct scenario sc = {
		.listener = "\"codec\": \"raw\", \"peer_queue\": 2, \"handler_timeout_ms\": 150, "
		            "\"amplification\": {\"factor\": 0}, " ECHO
		            ", \"config\": {\"delay_ms\": 400, \"error_reply\": true}}",
		.steps = {
			{ 0, "1" }, { 0, "2" }, { 0, "3" }, { 0, "4" }, { 0, "5" }, { 1, "other" },
			{ 0, NULL },
		},
		.min_replies = 4, .advance_ms = 2000,
	};
	run(&sc);
}

/* kv: an amplification refusal turned into a cookie reply. */
static void test_amplification(void)
{
	static const struct scenario sc = {
		.listener = "\"codec\": \"json\", " KV ", \"config\": {}}",
		.steps = {
			{ 0, "{\"op\": \"set\", \"key\": \"k\", \"value\": \"................................"
			     "............................................................................"
			     "............................................................................\"}" },
			{ 1, "{\"op\": \"get\", \"key\": \"k\"}" },
			{ 2, "{\"op\": \"get\", \"key\": \"nothing\"}" },
			{ 0, NULL },
		},
		.min_replies = 3, .advance_ms = 0,
	};
	run(&sc);
}

static const struct dg_test tests[] = {
	{ "decode errors and limits", test_decode_and_limits },
	{ "peer queue and deadlines", test_queue_and_deadlines },
	{ "amplification guard", test_amplification },
	{ NULL, NULL },
};

DG_TEST_MAIN("harness_daemon", tests)
