/* The plugin test harness (<dgramd/testing.h>) itself: a probe plugin linked
 * into this program runs on the dispatch code of the daemon, fed datagrams
 * from chosen peers, with a fake clock: replies and their destinations,
 * per-peer ordering, handler deadlines and DG_ESTALE, coalescing, idle
 * sessions, plugin timers in due order, config errors, and two harnesses
 * in one process. */
#include "config.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <dgramd/testing.h>

#include "conf.h"
#include "testutil.h"

/* ---- the probe plugin: what it does is the packet's text ---------------- */

#define PROBE_HELD 64

struct probe {
	struct dg_instance *self;
	const struct dg_host *host;
	dg_req_t held[PROBE_HELD]; /* "hold" requests, in arrival order */
	unsigned n_held;
	unsigned timeouts;
	unsigned closed[3]; /* on_session_close by reason */
	char fired[256];    /* "timer" callbacks, in firing order */
	uint64_t fired_now; /* host->now_ms in the last timer callback */
};

struct probe_timer {
	struct probe *p;
	dg_req_t req;
	unsigned ms;
};

static int probe_init(struct dg_instance *self, const struct dg_host *host,
                      const struct json_t *config, void **state)
{
	struct probe *p = calloc(1, sizeof(*p));
	(void)config;

	if (!p)
		return DG_ENOMEM;
	p->self = self;
	p->host = host;
	*state = p;
	return DG_OK;
}

static void probe_fini(void *state)
{
	free(state);
}

static int say(struct probe *p, dg_req_t req, const char *text)
{
	struct dg_packet pkt = { .data = (const unsigned char *)text, .len = strlen(text) };

	return p->host->reply(req, &pkt);
}

static void probe_fire(void *arg)
{
	struct probe_timer *t = arg;
	char msg[32];
	size_t n = strlen(t->p->fired);

	snprintf(t->p->fired + n, sizeof(t->p->fired) - n, "%s%u", n ? "," : "", t->ms);
	t->p->fired_now = t->p->host->now_ms(t->p->self);
	snprintf(msg, sizeof(msg), "fired %u", t->ms);
	say(t->p, t->req, msg);
	t->p->host->complete(t->req);
	free(t);
}

static int probe_packet(void *state, const struct dg_request *req)
{
	struct probe *p = state;
	char text[64];
	unsigned ms;

	snprintf(text, sizeof(text), "%.*s", (int)req->packet.len, (const char *)req->packet.data);
	if (!strcmp(text, "hold")) {
		if (p->n_held < PROBE_HELD)
			p->held[p->n_held++] = req->handle;
		return DG_PENDING;
	}
	if (!strcmp(text, "now")) {
		snprintf(text, sizeof(text), "%llu", (unsigned long long)p->host->now_ms(p->self));
		say(p, req->handle, text);
		return DG_DONE;
	}
	if (!strcmp(text, "two")) {
		say(p, req->handle, "a");
		say(p, req->handle, "b");
		return DG_DONE;
	}
	if (sscanf(text, "timer %u", &ms) == 1) {
		struct probe_timer *t = calloc(1, sizeof(*t));
		if (!t)
			return DG_ENOMEM;
		*t = (struct probe_timer){ .p = p, .req = req->handle, .ms = ms };
		if (!p->host->timer_start(p->self, ms, probe_fire, t)) {
			free(t);
			return DG_ERROR;
		}
		return DG_PENDING;
	}
	say(p, req->handle, text);
	return DG_DONE;
}

static void probe_timeout(void *state, dg_req_t req)
{
	struct probe *p = state;

	p->timeouts++;
	say(p, req, "late");
}

static void probe_close(void *state, struct dg_session *session, int reason)
{
	struct probe *p = state;
	(void)session;

	if (reason >= 0 && reason < 3)
		p->closed[reason]++;
}

static const struct dg_plugin probe = {
	DG_PLUGIN_HEADER, .name = "probe", .version = "1",
	.init = probe_init, .fini = probe_fini, .on_packet = probe_packet,
	.on_timeout = probe_timeout, .on_session_close = probe_close,
};

/* A reply's time and length; UINT64_MAX / SIZE_MAX if there is none. */
static uint64_t reply_at(const struct dg_harness *h, size_t i)
{
	const struct dg_harness_reply *r = dg_harness_reply(h, i);

	return r ? r->at_ms : UINT64_MAX;
}

static size_t reply_len(const struct dg_harness *h, size_t i)
{
	const struct dg_harness_reply *r = dg_harness_reply(h, i);

	return r ? r->len : SIZE_MAX;
}

/* ---- tests --------------------------------------------------------------- */

static struct dg_harness *start(const char *listener)
{
	char err[512];
	struct dg_harness *h = dg_harness_new(listener, &probe, err, sizeof(err));

	if (!h)
		fprintf(stderr, "harness: %s\n", err);
	CU_ASSERT_PTR_NOT_NULL(h);
	return h;
}

static void test_reply_destination(void)
{
	struct dg_harness *h = start("{\"codec\": \"raw\", \"bind\": \"127.0.0.1:5353\"}");
	CU_ASSERT_PTR_NOT_NULL_FATAL(h);

	CU_ASSERT_EQUAL(dg_harness_send_text(h, "127.0.0.1:5000", "hello"), DG_OK);
	CU_ASSERT_EQUAL(dg_harness_send_text(h, "127.0.0.7:6000", "there"), DG_OK);
	CU_ASSERT_EQUAL(dg_harness_send_text(h, "not an address", "x"), DG_EINVAL);
	DG_TEST_ASSERT_REPLIES(h, 2);
	DG_TEST_ASSERT_REPLY_TO(h, 0, "127.0.0.1:5000", "hello");
	DG_TEST_ASSERT_REPLY_TO(h, 1, "127.0.0.7:6000", "there");
	const struct dg_harness_reply *r = dg_harness_reply(h, 0);
	char a[64];
	CU_ASSERT_STRING_EQUAL(dg_addr_format((const struct sockaddr *)&r->from, a, sizeof(a)),
	                       "127.0.0.1:5353");
	CU_ASSERT_PTR_NULL(dg_harness_reply(h, 2));
	CU_ASSERT_FALSE(dg_harness_reply_is(h, 0, "hell"));
	DG_TEST_ASSERT_COUNTER(h, "rx", 2);
	DG_TEST_ASSERT_COUNTER(h, "tx", 2);
	DG_TEST_ASSERT_COUNTER(h, "tx_bytes", 10);
	DG_TEST_ASSERT_COUNTER(h, "sessions", 2);
	CU_ASSERT_EQUAL(dg_harness_counter(h, "no_such_counter"), UINT64_MAX);
	dg_harness_clear(h);
	DG_TEST_ASSERT_REPLIES(h, 0);
	dg_harness_free(h);
}

/* On a wildcard bind the reply leaves from the address the datagram was
 * sent to (IP_PKTINFO in the daemon), and sessions are per (peer, local). */
static void test_wildcard_local(void)
{
	struct dg_harness *h = start("{\"codec\": \"raw\", \"bind\": \"0.0.0.0:53\"}");
	struct sockaddr_in peer = { .sin_family = AF_INET, .sin_port = htons(4000) };
	struct sockaddr_in local = { .sin_family = AF_INET, .sin_port = htons(53) };
	char a[64];
	CU_ASSERT_PTR_NOT_NULL_FATAL(h);

	inet_pton(AF_INET, "127.0.0.9", &peer.sin_addr);
	inet_pton(AF_INET, "127.0.0.53", &local.sin_addr);
	CU_ASSERT_EQUAL(dg_harness_send_addr(h, (struct sockaddr *)&peer, sizeof(peer),
	                                     (struct sockaddr *)&local, sizeof(local), "q", 1), DG_OK);
	inet_pton(AF_INET, "127.0.0.54", &local.sin_addr);
	CU_ASSERT_EQUAL(dg_harness_send_addr(h, (struct sockaddr *)&peer, sizeof(peer),
	                                     (struct sockaddr *)&local, sizeof(local), "r", 1), DG_OK);
	DG_TEST_ASSERT_REPLIES(h, 2);
	CU_ASSERT_STRING_EQUAL(dg_addr_format((const struct sockaddr *)&dg_harness_reply(h, 0)->from,
	                                      a, sizeof(a)), "127.0.0.53:53");
	CU_ASSERT_STRING_EQUAL(dg_addr_format((const struct sockaddr *)&dg_harness_reply(h, 1)->from,
	                                      a, sizeof(a)), "127.0.0.54:53");
	DG_TEST_ASSERT_COUNTER(h, "sessions", 2);
	dg_harness_free(h);
}

/* One request of a peer at a time: the next waits in its queue, undecoded,
 * until the first times out at handler_timeout_ms; the plugin's later
 * reply to the dead handle is DG_ESTALE and counted. */
static void test_order_deadline_stale(void)
{
	struct dg_harness *h = start("{\"codec\": \"raw\", \"handler_timeout_ms\": 300}");
	CU_ASSERT_PTR_NOT_NULL_FATAL(h);
	struct probe *p = dg_harness_state(h);

	dg_harness_send_text(h, "127.0.0.1:5000", "hold");
	dg_harness_send_text(h, "127.0.0.1:5000", "after");
	dg_harness_send_text(h, "127.0.0.1:5001", "other peer");
	DG_TEST_ASSERT_REPLIES(h, 1);
	DG_TEST_ASSERT_REPLY_TO(h, 0, "127.0.0.1:5001", "other peer");
	DG_TEST_ASSERT_COUNTER(h, "queued", 1);
	CU_ASSERT_EQUAL(dg_harness_pending(h), 1);

	dg_harness_advance(h, 299);
	CU_ASSERT_EQUAL(p->timeouts, 0);
	DG_TEST_ASSERT_REPLIES(h, 1);
	dg_harness_advance(h, 1);
	CU_ASSERT_EQUAL(p->timeouts, 1);
	DG_TEST_ASSERT_COUNTER(h, "timeouts", 1);
	/* on_timeout's reply, then the queued datagram's turn. */
	DG_TEST_ASSERT_REPLIES(h, 3);
	DG_TEST_ASSERT_REPLY_TO(h, 1, "127.0.0.1:5000", "late");
	DG_TEST_ASSERT_REPLY_TO(h, 2, "127.0.0.1:5000", "after");
	CU_ASSERT_EQUAL(reply_at(h, 2), 300);

	struct dg_packet pkt = { .data = (const unsigned char *)"x", .len = 1 };
	CU_ASSERT_EQUAL(p->host->reply(p->held[0], &pkt), DG_ESTALE);
	CU_ASSERT_EQUAL(p->host->complete(p->held[0]), DG_ESTALE);
	DG_TEST_ASSERT_COUNTER(h, "stale_calls", 2);
	DG_TEST_ASSERT_REPLIES(h, 3);
	CU_ASSERT_EQUAL(dg_harness_pending(h), 0);
	dg_harness_free(h);
}

/* A full peer queue drops per drop_policy, counted as drop_peer_queue. */
static void test_peer_queue(void)
{
	struct dg_harness *h = start("{\"codec\": \"raw\", \"peer_queue\": 2}");
	CU_ASSERT_PTR_NOT_NULL_FATAL(h);
	struct probe *p = dg_harness_state(h);

	dg_harness_send_text(h, "127.0.0.1:5000", "hold");
	for (int i = 0; i < 5; i++)
		dg_harness_send_text(h, "127.0.0.1:5000", i == 0 ? "one" : i == 1 ? "two" : "x");
	DG_TEST_ASSERT_COUNTER(h, "drop_peer_queue", 3);
	CU_ASSERT_EQUAL(p->host->complete(p->held[0]), DG_OK);
	dg_harness_advance(h, 0);
	/* "one", then "two" (a, b). */
	DG_TEST_ASSERT_REPLIES(h, 3);
	DG_TEST_ASSERT_REPLY(h, 0, "one");
	DG_TEST_ASSERT_COUNTER(h, "handled", 3);
	DG_TEST_ASSERT_COUNTER(h, "rx", 6);
	dg_harness_free(h);
}

/* Replies of one request coalesce into one datagram when the framing
 * carries several frames; with raw framing each is its own datagram. */
static void test_coalescing(void)
{
	struct dg_harness *lp = start("{\"codec\": {\"framing\": \"length-prefixed\", \"width\": 1, "
	                              "\"payload\": \"bytes\"}}");
	struct dg_harness *raw = start("{\"codec\": \"raw\"}");
	CU_ASSERT_PTR_NOT_NULL_FATAL(lp);
	CU_ASSERT_PTR_NOT_NULL_FATAL(raw);

	CU_ASSERT_EQUAL(dg_harness_send(lp, "127.0.0.1:5000", "\003two", 4), DG_OK);
	DG_TEST_ASSERT_REPLIES(lp, 1);
	CU_ASSERT_EQUAL(reply_len(lp, 0), 4);
	CU_ASSERT_TRUE(reply_len(lp, 0) == 4 && !memcmp(dg_harness_reply(lp, 0)->data, "\001a\001b", 4));
	DG_TEST_ASSERT_COUNTER(lp, "tx", 1);
	/* A packet encoded by the listener's own codec. */
	struct dg_packet pkt = { .data = (const unsigned char *)"echo me", .len = 7 };
	CU_ASSERT_EQUAL(dg_harness_send_packet(lp, "127.0.0.1:5000", &pkt), DG_OK);
	CU_ASSERT_EQUAL(reply_len(lp, 1), 8);
	CU_ASSERT_TRUE(reply_len(lp, 1) == 8 && !memcmp(dg_harness_reply(lp, 1)->data, "\007echo me", 8));

	dg_harness_send_text(raw, "127.0.0.1:5000", "two");
	DG_TEST_ASSERT_REPLIES(raw, 2);
	DG_TEST_ASSERT_REPLY(raw, 0, "a");
	DG_TEST_ASSERT_REPLY(raw, 1, "b");
	DG_TEST_ASSERT_COUNTER(raw, "tx", 2);
	/* The two harnesses are apart. */
	DG_TEST_ASSERT_COUNTER(lp, "rx", 2);
	DG_TEST_ASSERT_COUNTER(raw, "rx", 1);
	dg_harness_free(lp);
	dg_harness_free(raw);
}

/* Plugin timers fire at their own times in due order, whatever order they
 * were started in. */
static void test_timers(void)
{
	struct dg_harness *h = start("{\"codec\": \"raw\", \"ordering\": \"none\"}");
	CU_ASSERT_PTR_NOT_NULL_FATAL(h);
	struct probe *p = dg_harness_state(h);

	dg_harness_send_text(h, "127.0.0.1:5000", "timer 500");
	dg_harness_send_text(h, "127.0.0.1:5000", "timer 20");
	dg_harness_advance(h, 100);
	dg_harness_send_text(h, "127.0.0.1:5000", "timer 150"); /* due at 250 */
	DG_TEST_ASSERT_REPLIES(h, 1);
	dg_harness_advance(h, 1000);
	CU_ASSERT_STRING_EQUAL(p->fired, "20,150,500");
	DG_TEST_ASSERT_REPLIES(h, 3);
	CU_ASSERT_EQUAL(reply_at(h, 0), 20);
	CU_ASSERT_EQUAL(reply_at(h, 1), 250);
	CU_ASSERT_EQUAL(reply_at(h, 2), 500);
	CU_ASSERT_EQUAL(dg_harness_now(h), 1100);
	dg_harness_free(h);
}

/* The reply to "now": host->now_ms as the plugin read it; 0 if none. */
static uint64_t probe_now(struct dg_harness *h)
{
	size_t i = dg_harness_replies(h);
	const struct dg_harness_reply *r;
	char text[32];

	dg_harness_send_text(h, "127.0.0.1:5000", "now");
	r = dg_harness_reply(h, i);
	if (!r || r->len >= sizeof(text))
		return 0;
	memcpy(text, r->data, r->len);
	text[r->len] = '\0';
	return strtoull(text, NULL, 10);
}

/* host->now_ms is the fake clock: it moves by exactly what
 * dg_harness_advance() moves, and a plugin timer of ms fires when it
 * reads ms more than when it was started. */
static void test_host_clock(void)
{
	struct dg_harness *h = start("{\"codec\": \"raw\"}");
	CU_ASSERT_PTR_NOT_NULL_FATAL(h);
	struct probe *p = dg_harness_state(h);

	CU_ASSERT_TRUE(DG_HOST_HAS(p->host, now_ms));
	uint64_t t0 = probe_now(h);
	CU_ASSERT(t0 > 0);
	CU_ASSERT_EQUAL(probe_now(h), t0); /* no time passes by itself */
	dg_harness_advance(h, 1234);
	CU_ASSERT_EQUAL(probe_now(h), t0 + 1234);
	dg_harness_send_text(h, "127.0.0.1:5000", "timer 500");
	dg_harness_advance(h, 499);
	CU_ASSERT_EQUAL(p->fired_now, 0);
	dg_harness_advance(h, 10);
	CU_ASSERT_EQUAL(p->fired_now, t0 + 1234 + 500);
	CU_ASSERT_EQUAL(probe_now(h), t0 + 1234 + 509);
	CU_ASSERT_EQUAL(probe_now(h) - dg_harness_now(h), t0);
	/* not an instance: 0, a log line, no crash */
	CU_ASSERT_EQUAL(p->host->now_ms(NULL), 0);
	dg_harness_free(h);
}

/* Idle sessions close after session_idle_ms (by the sweep, a quarter of
 * it at most late), busy ones never. */
static void test_idle_sessions(void)
{
	struct dg_harness *h = start("{\"codec\": \"raw\", \"session_idle_ms\": 1000, "
	                             "\"handler_timeout_ms\": 0}");
	CU_ASSERT_PTR_NOT_NULL_FATAL(h);
	struct probe *p = dg_harness_state(h);

	dg_harness_send_text(h, "127.0.0.1:5000", "ping");
	dg_harness_send_text(h, "127.0.0.1:5001", "hold");
	CU_ASSERT_EQUAL(dg_harness_sessions(h), 2);
	dg_harness_advance(h, 999);
	CU_ASSERT_EQUAL(dg_harness_sessions(h), 2);
	dg_harness_advance(h, 251);
	CU_ASSERT_EQUAL(dg_harness_sessions(h), 1);
	CU_ASSERT_EQUAL(p->closed[DG_CLOSE_IDLE], 1);
	DG_TEST_ASSERT_COUNTER(h, "sessions_idle", 1);
	dg_harness_advance(h, 60000);
	CU_ASSERT_EQUAL(dg_harness_sessions(h), 1); /* busy: never expires */
	dg_harness_free(h);
}

/* Datagrams of one batch: the queue and flush run once, at its end. */
static void test_batch(void)
{
	struct dg_harness *h = start("{\"codec\": \"raw\"}");
	CU_ASSERT_PTR_NOT_NULL_FATAL(h);

	dg_harness_batch_begin(h);
	dg_harness_send_text(h, "127.0.0.1:5000", "one");
	dg_harness_send_text(h, "127.0.0.1:5001", "two");
	DG_TEST_ASSERT_REPLIES(h, 0); /* not flushed yet */
	dg_harness_batch_end(h);
	DG_TEST_ASSERT_REPLIES(h, 3);
	dg_harness_free(h);
}

static void test_limits(void)
{
	struct dg_harness *h = start("{\"codec\": \"raw\", \"max_datagram\": 8, "
	                             "\"deny\": [\"127.0.0.66/32\"]}");
	char big[100], stats[2048];
	CU_ASSERT_PTR_NOT_NULL_FATAL(h);

	memset(big, 'x', sizeof(big));
	dg_harness_send(h, "127.0.0.1:5000", big, sizeof(big));
	dg_harness_send_text(h, "127.0.0.66:5000", "denied");
	dg_harness_send_text(h, "127.0.0.1:5000", "ok");
	DG_TEST_ASSERT_REPLIES(h, 1);
	DG_TEST_ASSERT_COUNTER(h, "drop_too_large", 1);
	DG_TEST_ASSERT_COUNTER(h, "drop_acl", 1);
	DG_TEST_ASSERT_COUNTER(h, "rx_bytes", 108);
	dg_harness_stats(h, stats, sizeof(stats));
	CU_ASSERT_PTR_NOT_NULL(strstr(stats, " rx=3 "));
	CU_ASSERT_PTR_NOT_NULL(strstr(stats, " drop_acl=1 "));
	dg_harness_free(h);
}

/* proves_source sees only datagrams that fit max_datagram: the receive
 * buffer holds max_datagram bytes of a larger one, whose length is its
 * own (MSG_TRUNC), so a larger len would have it read past the buffer. */
static size_t prover_longest;
static unsigned prover_calls;

static int prover_proves(void *state, const struct dg_peer *peer, const void *data, size_t len)
{
	(void)state, (void)peer, (void)data;
	prover_calls++;
	if (len > prover_longest)
		prover_longest = len;
	return 0;
}

static const struct dg_plugin prover = {
	DG_PLUGIN_HEADER, .name = "prover", .version = "1",
	.init = probe_init, .fini = probe_fini, .on_packet = probe_packet,
	.proves_source = prover_proves,
};

static void test_proves_source_fits(void)
{
	char err[512], big[40000];
	struct dg_harness *h = dg_harness_new("{\"codec\": \"raw\", \"max_datagram\": 8, "
	                                      "\"amplification\": {\"factor\": 3}}",
	                                      &prover, err, sizeof(err));
	if (!h)
		fprintf(stderr, "harness: %s\n", err);
	CU_ASSERT_PTR_NOT_NULL_FATAL(h);
	memset(big, 'x', sizeof(big));
	prover_longest = 0;
	prover_calls = 0;
	dg_harness_send(h, "127.0.0.1:5000", big, 9);
	dg_harness_send(h, "127.0.0.1:5000", big, sizeof(big));
	dg_harness_send_text(h, "127.0.0.1:5000", "ok");
	DG_TEST_ASSERT_COUNTER(h, "drop_too_large", 2);
	DG_TEST_ASSERT_REPLIES(h, 1);
	CU_ASSERT_EQUAL(prover_calls, 1);
	CU_ASSERT_EQUAL(prover_longest, 2);
	dg_harness_free(h);
}

static void test_config_errors(void)
{
	static const struct { const char *listener; const char *want; } cases[] = {
		{ "{\"codec\": \"nope\"}", "codec" },
		{ "{\"codec\": \"raw\", \"peer_queue\": -1}", "peer_queue" },
		{ "{\"codec\": \"raw\", \"handler\": {\"plugin\": \"/nonexistent/x.so\"}}", "/nonexistent/x.so" },
		{ "[1]", "not a JSON object" },
		{ "{\"listeners\": []}", "exactly one listener" },
	};
	char err[512];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct dg_plugin *pl = strstr(cases[i].listener, "plugin") ? NULL : &probe;
		struct dg_harness *h = dg_harness_new(cases[i].listener, pl, err, sizeof(err));
		CU_ASSERT_PTR_NULL(h);
		if (!strstr(err, cases[i].want))
			fprintf(stderr, "case %zu: '%s' does not say '%s'\n", i, err, cases[i].want);
		CU_ASSERT_PTR_NOT_NULL(strstr(err, cases[i].want));
		dg_harness_free(h);
	}
	/* A descriptor is checked as a loaded plugin is. */
	struct dg_plugin bad = probe;
	bad.abi_major = 9;
	CU_ASSERT_PTR_NULL(dg_harness_new("{\"codec\": \"raw\"}", &bad, err, sizeof(err)));
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "ABI"));
}

/* The echo plugin loaded from its .so, as dgramd loads it. */
static void test_so_plugin(void)
{
	char conf[4096], err[512];

	snprintf(conf, sizeof(conf), "{\"codec\": \"json\", \"bind\": \"[::1]:53\", \"handler\": {\"plugin\": "
	         "\"%s/plugins/.libs/echo.so\", \"config\": {\"wrap\": \"got\"}}}",
	         dg_test_builddir());
	struct dg_harness *h = dg_harness_new(conf, NULL, err, sizeof(err));
	if (!h)
		fprintf(stderr, "%s\n", err);
	CU_ASSERT_PTR_NOT_NULL_FATAL(h);
	dg_harness_send_text(h, "[::1]:7000", "{\"a\": [1, 2]}");
	DG_TEST_ASSERT_REPLY_TO(h, 0, "[::1]:7000", "{\"got\":{\"a\":[1,2]}}");
	dg_harness_free(h);
}

/* A conversation's step timeouts run on the fake clock: nothing happens
 * until the clock reaches the step's timeout, then the plugin's retry, then
 * its give-up (the convo fixture: "count N T R"). */
static void test_conversation_clock(void)
{
	char conf[4096], err[512];

	snprintf(conf, sizeof(conf), "{\"codec\": \"raw\", \"handler_timeout_ms\": 50, "
	         "\"handler\": {\"plugin\": \"%s/tests/fixtures/.libs/convo.so\"}}",
	         dg_test_builddir());
	struct dg_harness *h = dg_harness_new(conf, NULL, err, sizeof(err));
	if (!h)
		fprintf(stderr, "%s\n", err);
	CU_ASSERT_PTR_NOT_NULL_FATAL(h);
	dg_harness_send_text(h, "127.0.0.1:7000", "count 2 1000 1");
	DG_TEST_ASSERT_REPLY(h, 0, "start");
	/* handler_timeout_ms (50) is suspended while the request waits */
	dg_harness_advance(h, 999);
	CU_ASSERT_EQUAL(dg_harness_replies(h), 1);
	dg_harness_advance(h, 1);
	CU_ASSERT_EQUAL_FATAL(dg_harness_replies(h), 2);
	DG_TEST_ASSERT_REPLY(h, 1, "timeout:1");
	dg_harness_send_text(h, "127.0.0.1:7000", "a");
	DG_TEST_ASSERT_REPLY(h, 2, "got:1:a");
	dg_harness_advance(h, 2000); /* its one retry was used: give up */
	CU_ASSERT_EQUAL_FATAL(dg_harness_replies(h), 4);
	DG_TEST_ASSERT_REPLY(h, 3, "gave-up");
	DG_TEST_ASSERT_COUNTER(h, "timeouts", 0);
	DG_TEST_ASSERT_COUNTER(h, "handled", 2);
	dg_harness_free(h);
}

/* ---- a plugin that cancels its timers at shutdown ----------------------
 * Each session holds a timer (session data), cancelled in on_session_close;
 * the instance holds one more, cancelled in fini(): as README's Push
 * section suggests. At shutdown the host has stopped every timer before
 * those calls: the handles must still be live (a use after free under
 * ASan if the host freed them first), and a timer started there is
 * refused (it could never fire). */

static struct {
	unsigned closes, cancels, started_late;
} tidy;

struct tidy_state {
	struct dg_instance *self;
	const struct dg_host *host;
	struct dg_timer *timer;
};

static void tidy_never(void *arg)
{
	(void)arg;
	CU_FAIL("a timer fired after shutdown began");
}

static void tidy_session_free(void *data)
{
	free(data);
}

static int tidy_init(struct dg_instance *self, const struct dg_host *host,
                     const struct json_t *config, void **state)
{
	struct tidy_state *t = calloc(1, sizeof(*t));
	(void)config;

	if (!t)
		return DG_ENOMEM;
	*t = (struct tidy_state){ .self = self, .host = host };
	t->timer = host->timer_start(self, 3600000, tidy_never, NULL);
	*state = t;
	return t->timer ? DG_OK : DG_ENOMEM;
}

static void tidy_fini(void *state)
{
	struct tidy_state *t = state;

	t->host->timer_cancel(t->timer);
	tidy.cancels++;
	tidy.started_late += t->host->timer_start(t->self, 1, tidy_never, NULL) != NULL;
	free(t);
}

static int tidy_packet(void *state, const struct dg_request *req)
{
	struct tidy_state *t = state;
	struct dg_timer **st = malloc(sizeof(*st));

	if (!st)
		return DG_ENOMEM;
	*st = t->host->timer_start(req->self, 3600000, tidy_never, NULL);
	t->host->session_set(req->session, st, tidy_session_free);
	return *st ? DG_DONE : DG_ENOMEM;
}

static void tidy_close(void *state, struct dg_session *session, int reason)
{
	struct tidy_state *t = state;
	struct dg_timer **st = t->host->session_get(session);

	CU_ASSERT_EQUAL(reason, DG_CLOSE_SHUTDOWN);
	tidy.closes++;
	if (st && *st) {
		t->host->timer_cancel(*st);
		*st = NULL;
		tidy.cancels++;
	}
	tidy.started_late += t->host->timer_start(t->self, 1, tidy_never, NULL) != NULL;
}

static const struct dg_plugin tidy_plugin = {
	DG_PLUGIN_HEADER, .name = "tidy", .version = "1",
	.init = tidy_init, .fini = tidy_fini, .on_packet = tidy_packet,
	.on_session_close = tidy_close,
};

static void test_cancel_at_shutdown(void)
{
	char err[512];
	struct dg_harness *h = dg_harness_new("{\"codec\": \"raw\"}", &tidy_plugin,
	                                      err, sizeof(err));
	if (!h)
		fprintf(stderr, "%s\n", err);
	CU_ASSERT_PTR_NOT_NULL_FATAL(h);
	memset(&tidy, 0, sizeof(tidy));
	dg_harness_send_text(h, "127.0.0.1:7001", "a");
	dg_harness_send_text(h, "127.0.0.1:7002", "b");
	CU_ASSERT_EQUAL(dg_harness_sessions(h), 2);
	dg_harness_free(h); /* on_session_close x2, then fini: each cancels */
	CU_ASSERT_EQUAL(tidy.closes, 2);
	CU_ASSERT_EQUAL(tidy.cancels, 3);
	CU_ASSERT_EQUAL(tidy.started_late, 0);
}

static const struct dg_test tests[] = {
	{ "replies and their destinations", test_reply_destination },
	{ "wildcard bind: the local address", test_wildcard_local },
	{ "per-peer order, deadline, DG_ESTALE", test_order_deadline_stale },
	{ "peer queue full", test_peer_queue },
	{ "coalescing, two harnesses at once", test_coalescing },
	{ "plugin timers in due order", test_timers },
	{ "host->now_ms is the fake clock", test_host_clock },
	{ "idle sessions expire, busy ones not", test_idle_sessions },
	{ "a receive batch", test_batch },
	{ "limits, ACL and the stats line", test_limits },
	{ "proves_source only for datagrams that fit", test_proves_source_fits },
	{ "config and descriptor errors", test_config_errors },
	{ "a plugin .so", test_so_plugin },
	{ "conversation step timeouts on the fake clock", test_conversation_clock },
	{ "timers cancelled in on_session_close and fini at shutdown", test_cancel_at_shutdown },
	{ NULL, NULL },
};

DG_TEST_MAIN("harness", tests)
