/* Integration: deferred handlers over loopback. Per-peer ordering, queue
 * overflow, deadlines, relay to a second dgramd, kv, and docs/plugins.md's
 * deferred-reply example. Every test checks that the counters add up. */
#include "config.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "testutil.h"

#define LOCAL "\"127.0.0.1:0\""

/* One listener "t": codec, handler object, extra listener keys. */
static char *listener(const char *codec, const char *handler, const char *extra)
{
	static char buf[8192];
	snprintf(buf, sizeof(buf),
	         "{\"shutdown_timeout_ms\": 2000, \"listeners\": [{\"name\": \"t\", \"bind\": " LOCAL
	         ", \"codec\": %s, \"handler\": %s %s}]}", codec, handler, extra ? extra : "");
	return buf;
}

static long long stat_of(struct dg_daemon *d, const char *l, const char *k)
{
	return dg_daemon_stat(d, l, k);
}



static void send_to(int fd, struct dg_daemon *d, const char *s)
{
	CU_ASSERT_EQUAL(sendto(fd, s, strlen(s), 0, (struct sockaddr *)&d->addr[0], d->addrlen[0]),
	                (ssize_t)strlen(s));
}

/* (1) One peer's 5 requests come back in order; another peer is answered
 * in between, not after them. */
static void test_ordering(void)
{
	struct dg_daemon d;
	char buf[64], got[8][4];
	int order_b = -1, n_a = 0;

	CU_ASSERT_FATAL(dg_daemon_start(&d, listener("\"raw\"", "{\"plugin\": \"echo\", \"config\": {\"delay_ms\": 150}}", NULL), NULL));
	int a = dg_udp_client(&d.addr[0], 3000), b = dg_udp_client(&d.addr[0], 3000);
	for (int i = 1; i <= 5; i++) {
		snprintf(buf, sizeof(buf), "a%d", i);
		send_to(a, &d, buf);
	}
	send_to(b, &d, "b1"); /* behind a's five in the socket, not behind a2..a5 */
	double deadline = dg_now_ms() + 5000;
	while ((n_a < 5 || order_b < 0) && dg_now_ms() < deadline) {
		struct pollfd p[2] = { { .fd = a, .events = POLLIN }, { .fd = b, .events = POLLIN } };
		if (poll(p, 2, 100) <= 0)
			continue;
		if (p[1].revents & POLLIN && recv(b, buf, sizeof(buf), 0) == 2)
			order_b = n_a;
		if (p[0].revents & POLLIN) {
			ssize_t n = recv(a, buf, sizeof(buf), 0);
			if (n == 2 && n_a < 8)
				memcpy(got[n_a++], buf, 2);
		}
	}
	CU_ASSERT_EQUAL(n_a, 5);
	for (int i = 0; i < n_a; i++) {
		CU_ASSERT_EQUAL(got[i][0], 'a');
		CU_ASSERT_EQUAL(got[i][1], '1' + i);
	}
	/* b1 is served while a2..a5 wait their turn: answered before a3. */
	fprintf(stderr, "b1 answered after %d of a's 5 replies\n", order_b);
	CU_ASSERT(order_b >= 0 && order_b <= 2);
	close(a);
	close(b);
	dg_daemon_stop_checked(&d, "t");
	CU_ASSERT_EQUAL(stat_of(&d, "t", "queued"), 4);
	CU_ASSERT_EQUAL(stat_of(&d, "t", "sessions"), 2);
}

/* (1b) peer_concurrency 4: of 8 datagrams sent at once by one peer, 4 are
 * in progress at once and the rest wait in its queue (as many as
 * peer_queue holds); each completion starts the oldest waiting one. So the
 * first 4 replies are c1..c4 (in any order), the next ones c5.. */
static void concurrency(unsigned peer_queue)
{
	const unsigned delay = 300, sent = 8, limit = 4;
	unsigned waited = peer_queue < sent - limit ? peer_queue : sent - limit;
	unsigned seen = 0, got = 0;
	struct dg_daemon d;
	char extra[128], buf[16];

	snprintf(extra, sizeof(extra), ", \"peer_concurrency\": %u, \"peer_queue\": %u", limit,
	         peer_queue);
	CU_ASSERT_FATAL(dg_daemon_start(&d, listener("\"raw\"",
	        "{\"plugin\": \"echo\", \"config\": {\"delay_ms\": 300}}", extra), NULL));
	int fd = dg_udp_client(&d.addr[0], 5000);
	double t0 = dg_now_ms();
	for (unsigned i = 1; i <= sent; i++) {
		snprintf(buf, sizeof(buf), "c%u", i);
		send_to(fd, &d, buf);
	}
	for (; got < limit + waited; got++) {
		ssize_t n = recv(fd, buf, sizeof(buf), 0);
		if (n != 2 || buf[0] != 'c' || buf[1] < '1' || buf[1] > '0' + (int)sent)
			break;
		unsigned k = (unsigned)(buf[1] - '0');
		/* c1..c4 before any later one; each reply once. */
		CU_ASSERT(got < limit ? k <= limit : k > limit && k <= limit + waited);
		CU_ASSERT_FALSE(seen & (1u << k));
		seen |= (1u << k);
	}
	double took = dg_now_ms() - t0;
	fprintf(stderr, "peer_concurrency %u, peer_queue %u: %u replies in %.0f ms (delay %u ms)\n",
	        limit, peer_queue, got, took, delay);
	CU_ASSERT_EQUAL(got, limit + waited);
	CU_ASSERT(took >= 2 * delay - 50); /* c5.. started when one of c1..c4 completed */
	close(fd);
	dg_daemon_stop_checked(&d, "t");
	CU_ASSERT_EQUAL(stat_of(&d, "t", "queued"), waited);
	CU_ASSERT_EQUAL(stat_of(&d, "t", "drop_peer_queue"), sent - limit - waited);
	CU_ASSERT_EQUAL(stat_of(&d, "t", "handled"), limit + waited);
	CU_ASSERT_EQUAL(stat_of(&d, "t", "tx"), limit + waited);
	CU_ASSERT_EQUAL(stat_of(&d, "t", "sessions"), 1);
}

static void test_concurrency(void)
{
	concurrency(16);
}

static void test_concurrency_queue_full(void)
{
	concurrency(2);
}

/* (2) Queue overflow: exact drops, for both policies. */
static void overflow(const char *policy, const char *const *expect)
{
	struct dg_daemon d;
	char extra[128], buf[16];

	snprintf(extra, sizeof(extra), ", \"peer_queue\": 2, \"drop_policy\": \"%s\"", policy);
	CU_ASSERT_FATAL(dg_daemon_start(&d, listener("\"raw\"", "{\"plugin\": \"echo\", \"config\": {\"delay_ms\": 100}}", extra), NULL));
	int fd = dg_udp_client(&d.addr[0], 1000);
	for (int i = 1; i <= 6; i++) {
		snprintf(buf, sizeof(buf), "d%d", i);
		send_to(fd, &d, buf);
	}
	for (int i = 0; i < 3; i++) {
		ssize_t n = recv(fd, buf, sizeof(buf), 0);
		CU_ASSERT_EQUAL(n, 2);
		CU_ASSERT_EQUAL(memcmp(buf, expect[i], 2), 0);
	}
	struct timeval tv = { .tv_usec = 300000 };
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	CU_ASSERT_EQUAL(recv(fd, buf, sizeof(buf), 0), -1); /* nothing more */
	close(fd);
	dg_daemon_stop_checked(&d, "t");
	CU_ASSERT_EQUAL(stat_of(&d, "t", "drop_peer_queue"), 3);
	CU_ASSERT_EQUAL(stat_of(&d, "t", "handled"), 3);
	CU_ASSERT_EQUAL(stat_of(&d, "t", "tx"), 3);
}

static void test_overflow_newest(void)
{
	static const char *const expect[] = { "d1", "d2", "d3" };
	overflow("drop-newest", expect);
}

static void test_overflow_oldest(void)
{
	static const char *const expect[] = { "d1", "d5", "d6" };
	overflow("drop-oldest", expect);
}

/* (3) A handler that does not complete in time: on_timeout replies, the
 * server completes it and counts it; the late timer never replies. */
static void test_deadline(void)
{
	struct dg_daemon d;
	char buf[128];

	CU_ASSERT_FATAL(dg_daemon_start(&d, listener("\"json\"",
	        "{\"plugin\": \"echo\", \"config\": {\"delay_ms\": 60000, \"error_reply\": true}}",
	        ", \"handler_timeout_ms\": 200"), NULL));
	int fd = dg_udp_client(&d.addr[0], 3000);
	double t0 = dg_now_ms();
	ssize_t n = dg_udp_ask(fd, &d.addr[0], d.addrlen[0], "{\"q\":1}", 7, buf, sizeof(buf) - 1);
	double took = dg_now_ms() - t0;
	CU_ASSERT_FATAL(n > 0);
	buf[n] = '\0';
	CU_ASSERT_STRING_EQUAL(buf, "{\"error\":\"timeout\"}");
	fprintf(stderr, "timeout reply after %.0f ms (handler_timeout_ms 200)\n", took);
	CU_ASSERT(took >= 150 && took < 2000);
	/* The peer is free again: the next request is taken at once. */
	n = dg_udp_ask(fd, &d.addr[0], d.addrlen[0], "{\"q\":2}", 7, buf, sizeof(buf) - 1);
	CU_ASSERT(n > 0);
	close(fd);
	double t1 = dg_now_ms();
	dg_daemon_stop_checked(&d, "t");
	CU_ASSERT_EQUAL(stat_of(&d, "t", "timeouts"), 2);
	CU_ASSERT(dg_now_ms() - t1 < 3000); /* nothing left pending to wait for */
}

/* Send n JSON requests from each of `clients` sockets, `window` in flight
 * per socket, and check every reply equals its request. Returns matched. */
static unsigned exchange(struct dg_daemon *d, unsigned clients, unsigned per_client, unsigned window,
                         const char *expect_error)
{
	int fds[16];
	unsigned sent[16] = { 0 }, got[16] = { 0 }, matched = 0;
	char buf[256], want[256];

	for (unsigned c = 0; c < clients; c++)
		fds[c] = dg_udp_client(&d->addr[0], 1000);
	double deadline = dg_now_ms() + 20000;
	for (;;) {
		unsigned done = 0;
		for (unsigned c = 0; c < clients; c++) {
			while (sent[c] < per_client && sent[c] - got[c] < window) {
				snprintf(buf, sizeof(buf), "{\"c\":%u,\"n\":%u}", c, sent[c]++);
				send_to(fds[c], d, buf);
			}
			done += got[c] == per_client;
		}
		if (done == clients || dg_now_ms() > deadline)
			break;
		struct pollfd p[16];
		for (unsigned c = 0; c < clients; c++)
			p[c] = (struct pollfd){ .fd = fds[c], .events = POLLIN };
		if (poll(p, clients, 200) <= 0)
			continue;
		for (unsigned c = 0; c < clients; c++) {
			if (!(p[c].revents & POLLIN))
				continue;
			ssize_t n = recv(fds[c], buf, sizeof(buf) - 1, 0);
			if (n <= 0)
				continue;
			buf[n] = '\0';
			if (expect_error)
				snprintf(want, sizeof(want), "%s", expect_error);
			else
				snprintf(want, sizeof(want), "{\"c\":%u,\"n\":%u}", c, got[c]);
			matched += strcmp(buf, want) == 0;
			if (strcmp(buf, want))
				fprintf(stderr, "client %u: expected %s, got %s\n", c, want, buf);
			got[c]++;
		}
	}
	for (unsigned c = 0; c < clients; c++)
		close(fds[c]);
	return matched;
}

static char *relay_conf(const struct sockaddr_storage *up, unsigned timeout_ms)
{
	static char buf[1024];
	char host[64];
	const struct sockaddr_in *s4 = (const struct sockaddr_in *)up;

	inet_ntop(AF_INET, &s4->sin_addr, host, sizeof(host));
	snprintf(buf, sizeof(buf), "{\"shutdown_timeout_ms\": 2000, \"listeners\": [{\"name\": \"t\", "
	         "\"bind\": " LOCAL ", \"codec\": \"json\", \"handler\": {\"plugin\": \"relay\", "
	         "\"config\": {\"upstream\": \"%s:%u\", \"timeout_ms\": %u}}}]}",
	         host, ntohs(s4->sin_port), timeout_ms);
	return buf;
}

/* (4) dgramd relaying to a second dgramd (echo): 1,000 requests from 10
 * sockets, 5 in flight each, every reply matched to its request. */
static void test_relay(void)
{
	struct dg_daemon up, r;

	CU_ASSERT_FATAL(dg_daemon_start(&up, "{\"listeners\": [{\"name\": \"up\", \"bind\": "
	        LOCAL ", \"codec\": \"json\", \"handler\": {\"plugin\": \"echo\", \"config\": "
	        "{\"delay_ms\": 1}}}]}", NULL));
	CU_ASSERT_FATAL(dg_daemon_start(&r, relay_conf(&up.addr[0], 2000), NULL));
	double t0 = dg_now_ms();
	unsigned matched = exchange(&r, 10, 100, 5, NULL);
	fprintf(stderr, "relay: %u of 1000 replies matched in %.0f ms\n", matched, dg_now_ms() - t0);
	CU_ASSERT_EQUAL(matched, 1000);
	dg_daemon_stop_checked(&r, "t");
	dg_daemon_stop_checked(&up, "up");
	CU_ASSERT_EQUAL(stat_of(&r, "t", "tx"), 1000);
	CU_ASSERT_EQUAL(stat_of(&up, "up", "tx"), 1000);
}

/* conf/examples/relay.json as shipped, bound to port 0 and relaying to
 * up. */
static char *relay_example(const struct sockaddr_storage *up)
{
	static char text[8192];
	char path[4096], to[96], host[64];
	const struct sockaddr_in *s4 = (const struct sockaddr_in *)up;
	static const struct {
		const char *from, *to;
	} subst[] = { { "\"127.0.0.1:5302\"", "\"127.0.0.1:0\"" }, { "\"127.0.0.1:5300\"", NULL } };

	inet_ntop(AF_INET, &s4->sin_addr, host, sizeof(host));
	snprintf(to, sizeof(to), "\"%s:%u\"", host, ntohs(s4->sin_port));
	snprintf(path, sizeof(path), "%s/conf/examples/relay.json", dg_test_srcdir());
	FILE *f = fopen(path, "r");
	CU_ASSERT_PTR_NOT_NULL_FATAL(f);
	size_t n = fread(text, 1, sizeof(text) - 1, f);
	fclose(f);
	text[n] = '\0';
	for (size_t i = 0; i < sizeof(subst) / sizeof(subst[0]); i++) {
		const char *with = subst[i].to ? subst[i].to : to;
		char *p = strstr(text, subst[i].from);
		CU_ASSERT_PTR_NOT_NULL_FATAL(p);
		size_t from = strlen(subst[i].from), len = strlen(with);
		CU_ASSERT_FATAL(n - from + len < sizeof(text));
		memmove(p + len, p + from, strlen(p + from) + 1);
		memcpy(p, with, len);
		n = n - from + len;
	}
	return text;
}

/* A pipelined client through the shipped relay example: 100 requests sent
 * at once, before any answer, all answered (at the defaults, one in
 * progress and 16 queued, most of them were dropped). */
static void test_relay_pipelined(void)
{
	enum { N = 100 };
	struct dg_daemon up, r;
	unsigned char seen[N] = { 0 };
	unsigned got = 0;
	char buf[64];

	CU_ASSERT_FATAL(dg_daemon_start(&up, "{\"listeners\": [{\"name\": \"up\", \"bind\": "
	        LOCAL ", \"codec\": \"json\", \"handler\": \"echo\"}]}", NULL));
	CU_ASSERT_FATAL(dg_daemon_start(&r, relay_example(&up.addr[0]), NULL));
	int fd = dg_udp_client(&r.addr[0], 5000);
	for (unsigned i = 0; i < N; i++) {
		snprintf(buf, sizeof(buf), "{\"n\":%u}", i);
		send_to(fd, &r, buf);
	}
	for (; got < N; got++) {
		unsigned k;
		ssize_t n = recv(fd, buf, sizeof(buf) - 1, 0);
		if (n <= 0)
			break;
		buf[n] = '\0';
		CU_ASSERT_FATAL(sscanf(buf, "{\"n\":%u}", &k) == 1 && k < N);
		CU_ASSERT_EQUAL(seen[k]++, 0);
	}
	fprintf(stderr, "pipelined relay: %u of %d answered\n", got, N);
	CU_ASSERT_EQUAL(got, N);
	close(fd);
	dg_daemon_stop_checked(&r, "relay");
	dg_daemon_stop_checked(&up, "up");
	CU_ASSERT_EQUAL(stat_of(&r, "relay", "handled"), N);
	CU_ASSERT_EQUAL(stat_of(&r, "relay", "tx"), N);
	CU_ASSERT_EQUAL(stat_of(&r, "relay", "drop_peer_queue"), 0);
	CU_ASSERT_EQUAL(stat_of(&up, "up", "tx"), N);
}

/* Relay to a closed port: ICMP port unreachable, answered as an error;
 * to a black hole: answered with a timeout error. */
static void test_relay_dead_upstream(void)
{
	struct sockaddr_storage ss = { 0 };
	struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
	socklen_t len = sizeof(*s4);
	struct dg_daemon r;

	/* A port that was free a moment ago (closed), and one that never reads. */
	int hole = socket(AF_INET, SOCK_DGRAM, 0), closed = socket(AF_INET, SOCK_DGRAM, 0);
	s4->sin_family = AF_INET;
	s4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	CU_ASSERT_FATAL(bind(closed, (struct sockaddr *)s4, len) == 0);
	CU_ASSERT_FATAL(getsockname(closed, (struct sockaddr *)&ss, &len) == 0);
	close(closed);
	CU_ASSERT_FATAL(dg_daemon_start(&r, relay_conf(&ss, 300), NULL));
	CU_ASSERT_EQUAL(exchange(&r, 2, 5, 1, "{\"error\":\"upstream refused\"}"), 10);
	dg_daemon_stop_checked(&r, "t");

	s4->sin_port = 0;
	len = sizeof(*s4);
	CU_ASSERT_FATAL(bind(hole, (struct sockaddr *)s4, len) == 0);
	CU_ASSERT_FATAL(getsockname(hole, (struct sockaddr *)&ss, &len) == 0);
	CU_ASSERT_FATAL(dg_daemon_start(&r, relay_conf(&ss, 300), NULL));
	double t0 = dg_now_ms();
	CU_ASSERT_EQUAL(exchange(&r, 3, 2, 1, "{\"error\":\"upstream timeout\"}"), 6);
	fprintf(stderr, "6 timeouts (300 ms each, 2 in a row per peer) in %.0f ms\n", dg_now_ms() - t0);
	dg_daemon_stop_checked(&r, "t");
	close(hole);
}

/* (5) kv: round trips and errors. */
static void test_kv(void)
{
	static const struct {
		const char *req, *reply;
	} steps[] = {
		{ "{\"op\":\"get\",\"key\":\"a\"}", "{\"ok\":false,\"error\":\"not found\"}" },
		{ "{\"op\":\"set\",\"key\":\"a\",\"value\":{\"x\":[1,2]},\"id\":7}", "{\"ok\":true,\"id\":7}" },
		{ "{\"op\":\"get\",\"key\":\"a\"}", "{\"ok\":true,\"value\":{\"x\":[1,2]}}" },
		{ "{\"op\":\"set\",\"key\":\"a\",\"value\":\"y\"}", "{\"ok\":true}" },
		{ "{\"op\":\"get\",\"key\":\"a\",\"id\":\"q\"}", "{\"ok\":true,\"value\":\"y\",\"id\":\"q\"}" },
		{ "{\"op\":\"del\",\"key\":\"a\"}", "{\"ok\":true,\"deleted\":true}" },
		{ "{\"op\":\"del\",\"key\":\"a\"}", "{\"ok\":true,\"deleted\":false}" },
		{ "{\"op\":\"set\",\"key\":\"b\"}", "{\"ok\":false,\"error\":\"set needs a value\"}" },
		{ "{\"op\":\"set\",\"key\":\"c\",\"value\":1}", "{\"ok\":true}" },
		{ "{\"op\":\"set\",\"key\":\"d\",\"value\":1}", "{\"ok\":false,\"error\":\"store full (max_keys)\"}" },
		{ "{\"op\":\"set\",\"key\":\"c\",\"value\":\"0123456789abc\"}", "{\"ok\":false,\"error\":\"value too large (max_value_bytes)\"}" },
		{ "{\"op\":\"frob\",\"key\":\"a\"}", "{\"ok\":false,\"error\":\"unknown op (set, get, del)\"}" },
		{ "{\"key\":\"a\"}", "{\"ok\":false,\"error\":\"missing \\\"op\\\" (set, get, del)\"}" },
		{ "{\"op\":\"get\",\"key\":3}", "{\"ok\":false,\"error\":\"\\\"key\\\" must be a non-empty string without NUL\"}" },
		{ "[1]", "{\"ok\":false,\"error\":\"expected a JSON object\"}" },
		{ "{\"op\":", "{\"ok\":false,\"error\":\"bad request: unexpected token near end of file\",\"offset\":6}" },
	};
	struct dg_daemon d;
	char buf[512];

	CU_ASSERT_FATAL(dg_daemon_start(&d, listener("\"json\"",
	        "{\"plugin\": \"kv\", \"config\": {\"max_keys\": 1, \"max_value_bytes\": 12}}", NULL), NULL));
	int fd = dg_udp_client(&d.addr[0], 2000);
	for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
		ssize_t n = dg_udp_ask(fd, &d.addr[0], d.addrlen[0], steps[i].req, strlen(steps[i].req),
		                       buf, sizeof(buf) - 1);
		buf[n > 0 ? n : 0] = '\0';
		if (strcmp(buf, steps[i].reply))
			fprintf(stderr, "kv step %zu: %s\n  expected %s\n  got      %s\n", i, steps[i].req,
			        steps[i].reply, buf);
		CU_ASSERT_STRING_EQUAL(buf, steps[i].reply);
	}
	close(fd);
	dg_daemon_stop_checked(&d, "t");
	CU_ASSERT_EQUAL(stat_of(&d, "t", "decode_errors"), 1);
}

/* Idle sessions expire; a full table evicts the least recently used. */
static void test_sessions(void)
{
	struct dg_daemon d;
	char buf[16];

	CU_ASSERT_FATAL(dg_daemon_start(&d, "{\"shutdown_timeout_ms\": 2000, \"metrics\": {\"bind\": "
	        "\"127.0.0.1:0\"}, \"listeners\": [{\"name\": \"t\", \"bind\": " LOCAL ", \"codec\": "
	        "\"raw\", \"handler\": \"echo\", \"max_peers\": 2, \"session_idle_ms\": 200}]}", NULL));
	int fd[3];
	for (int i = 0; i < 3; i++) {
		fd[i] = dg_udp_client(&d.addr[0], 2000);
		CU_ASSERT_EQUAL(dg_udp_ask(fd[i], &d.addr[0], d.addrlen[0], "x", 1, buf, sizeof(buf)), 1);
	}
	/* the two left expire: wait for the counter */
	CU_ASSERT_EQUAL(dg_daemon_wait_live(&d, "t", "sessions_idle", 2, 10000), 2);
	for (int i = 0; i < 3; i++)
		close(fd[i]);
	dg_daemon_stop_checked(&d, "t");
	CU_ASSERT_EQUAL(stat_of(&d, "t", "sessions"), 3);
	CU_ASSERT_EQUAL(stat_of(&d, "t", "sessions_evicted"), 1);
	CU_ASSERT_EQUAL(stat_of(&d, "t", "sessions_idle"), 2);
}

/* The deferred-reply example of docs/plugins.md, built from the page itself:
 * a listener on it with the plugin config `config` and `extra` listener keys. */
static char *readme_config(const char *config, const char *extra)
{
	static char conf[8192];
	char so[4096];

	snprintf(so, sizeof(so), "%s/tests/plugins/.libs/readme_example.so", dg_test_builddir());
	snprintf(conf, sizeof(conf), "{\"shutdown_timeout_ms\": 200, \"metrics\": {\"bind\": "
	         "\"127.0.0.1:0\"}, \"listeners\": [{\"name\": \"t\", \"bind\": " LOCAL ", \"codec\": "
	         "\"raw\", \"handler\": {\"plugin\": \"%s\", \"config\": %s}%s}]}", so, config, extra);
	return conf;
}

/* Start the example with its config and extra listener keys, ask "ping":
 * the answer must be want, no sooner than min_ms; dgramd stopped after. */
static void ask_example(struct dg_daemon *d, const char *config, const char *extra,
                        const char *want, double min_ms)
{
	char buf[16];

	CU_ASSERT_FATAL(dg_daemon_start(d, readme_config(config, extra), NULL));
	int fd = dg_udp_client(&d->addr[0], 3000);
	double t0 = dg_now_ms();
	CU_ASSERT_EQUAL(dg_udp_ask(fd, &d->addr[0], d->addrlen[0], "ping", 4, buf, sizeof(buf)), 4);
	CU_ASSERT_EQUAL(memcmp(buf, want, 4), 0);
	CU_ASSERT(dg_now_ms() - t0 >= min_ms);
	close(fd);
	dg_daemon_stop_checked(d, "t");
}

/* Its default delay_ms (100, from its option table) and a configured one. */
static void test_readme_example(void)
{
	struct dg_daemon d;

	ask_example(&d, "{}", "", "pong", 90);
	CU_ASSERT_EQUAL(stat_of(&d, "t", "timeouts"), 0);
	ask_example(&d, "{\"delay_ms\": 300}", "", "pong", 290);
}

/* Its on_expire answers "late" at handler_timeout_ms; a request still
 * waiting when dgramd stops is abandoned without a reply and dgramd exits
 * cleanly. (Workers end with _exit, so no leak check runs in them: this
 * checks the reply and the exit, not that forget() ran.) */
static void test_readme_example_expire(void)
{
	struct dg_daemon d;

	ask_example(&d, "{\"delay_ms\": 60000}", ", \"handler_timeout_ms\": 200", "late", 150);
	CU_ASSERT_EQUAL(stat_of(&d, "t", "timeouts"), 1);
	CU_ASSERT_EQUAL(stat_of(&d, "t", "tx"), 1);

	/* handler_timeout_ms 10 s: still waiting past shutdown_timeout_ms. */
	CU_ASSERT_FATAL(dg_daemon_start(&d, readme_config("{\"delay_ms\": 60000}", ""), NULL));
	int fd = dg_udp_client(&d.addr[0], 3000);
	CU_ASSERT_EQUAL(sendto(fd, "ping", 4, 0, (const struct sockaddr *)&d.addr[0], d.addrlen[0]), 4);
	CU_ASSERT_EQUAL(dg_daemon_wait_live(&d, "t", "handled", 1, 5000), 1);
	close(fd);
	dg_daemon_stop_checked(&d, "t");
	CU_ASSERT_EQUAL(stat_of(&d, "t", "timeouts"), 0);
	CU_ASSERT_EQUAL(stat_of(&d, "t", "tx"), 0);
	char *log = dg_daemon_log(&d);
	CU_ASSERT(log && strstr(log, "abandoning 1 pending requests"));
	free(log);
}

/* Its option table: a bad delay_ms is refused by dgramd -t, by key path. */
static void test_readme_example_config(void)
{
	char bin[4096], path[4096], out[256], err[4096];

	snprintf(bin, sizeof(bin), "%s/dgramd", dg_test_builddir());
	snprintf(path, sizeof(path), "%s", dg_test_write("readme.json",
	         readme_config("{\"delay_ms\": -1}", ""))); /* its buffer is reused */
	const char *argv[] = { bin, "-t", "-c", path, NULL };
	CU_ASSERT_EQUAL(dg_run(argv, NULL, out, sizeof(out), err, sizeof(err), 10000), 1);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "listeners[0].handler.config.delay_ms: must be 0 .. "
	                                   "600000 (got -1)"));
}

static const struct dg_test async_tests[] = {
	{ "per-peer ordering", test_ordering },
	{ "peer_concurrency 4", test_concurrency },
	{ "peer_concurrency 4, peer queue full", test_concurrency_queue_full },
	{ "queue overflow, drop-newest", test_overflow_newest },
	{ "queue overflow, drop-oldest", test_overflow_oldest },
	{ "handler deadline", test_deadline },
	{ "relay to a second dgramd", test_relay },
	{ "relay example, a pipelined client", test_relay_pipelined },
	{ "relay to a dead upstream", test_relay_dead_upstream },
	{ "kv", test_kv },
	{ "session expiry and eviction", test_sessions },
	{ "docs/plugins.md example plugin", test_readme_example },
	{ "docs/plugins.md example plugin, on_expire and shutdown", test_readme_example_expire },
	{ "docs/plugins.md example plugin, its option table", test_readme_example_config },
	{ NULL, NULL },
};

DG_TEST_MAIN("async", async_tests)
