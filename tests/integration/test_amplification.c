/* Integration: the amplification guard and max_replies_per_request, on the
 * real daemon over loopback, with exact counters. Sources are simulated
 * from many 127.x.y.z addresses (Linux routes all of 127.0.0.0/8 to lo).
 *
 * Synchronisation: a datagram from A, then a request from a barrier peer B
 * that is answered. The daemon reads its socket in order and replies in
 * order, so once B's answer is in, A's datagram was handled and A's reply
 * (if any) is already in A's receive buffer. */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testutil.h"

/* One raw listener "t" on 127.0.0.1 answered by echo with handler_config,
 * plus extra listener keys. */
static char *config(const char *handler_config, const char *extra)
{
	static char buf[4096];

	snprintf(buf, sizeof(buf),
	         "{ \"shutdown_timeout_ms\": 3000, \"listeners\": [{ \"name\": \"t\",\n"
	         "  \"bind\": \"127.0.0.1:0\", \"codec\": \"raw\",\n"
	         "  \"handler\": {\"plugin\": \"echo\", \"config\": %s} %s }] }\n",
	         handler_config, extra ? extra : "");
	return buf;
}

/* A UDP socket bound to ip (any port), with a receive timeout. */
static int client_from(const char *ip, unsigned timeout_ms)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	struct timeval tv = { .tv_sec = timeout_ms / 1000, .tv_usec = (timeout_ms % 1000) * 1000 };
	int fd = socket(AF_INET, SOCK_DGRAM, 0);

	if (fd < 0)
		return -1;
	if (inet_pton(AF_INET, ip, &a.sin_addr) != 1 ||
	    bind(fd, (struct sockaddr *)&a, sizeof(a)) ||
	    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv))) {
		close(fd);
		return -1;
	}
	return fd;
}

/* Replies waiting on fd now (never blocks): count and bytes. */
static unsigned drain(int fd, size_t *bytes)
{
	char buf[2048];
	unsigned n = 0;
	ssize_t got;

	while ((got = recv(fd, buf, sizeof(buf), MSG_DONTWAIT)) >= 0) {
		n++;
		*bytes += (size_t)got;
	}
	return n;
}

/* B's barrier request: once its own answer (the reply that ends with this
 * request's bytes) is in, every earlier datagram was handled. */
static bool barrier(struct dg_daemon *d, int b)
{
	static unsigned seq;
	char req[100], buf[2048];
	ssize_t n;

	memset(req, 'b', sizeof(req));
	snprintf(req, sizeof(req), "%u", ++seq);
	if (sendto(b, req, sizeof(req), 0, (struct sockaddr *)&d->addr[0], d->addrlen[0]) < 0)
		return false;
	while ((n = recv(b, buf, sizeof(buf), 0)) >= 0) /* up to the receive timeout */
		if ((size_t)n >= sizeof(req) && !memcmp(buf + n - sizeof(req), req, sizeof(req)))
			return true;
	return false;
}

#define PREFIX90 "\"" \
	"pppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppp" "\""

/* n requests of 10 bytes from A (127.0.0.1), each answered with 100 bytes
 * (a 90-byte prefix), a barrier after each; returns the replies A got. */
static unsigned ten_byte_requests(struct dg_daemon *d, unsigned n, size_t *bytes)
{
	int a = client_from("127.0.0.1", 2000), b = client_from("127.0.0.2", 2000);
	unsigned got = 0, barriers = 0;

	*bytes = 0;
	CU_ASSERT_FATAL(a >= 0 && b >= 0);
	for (unsigned i = 0; i < n; i++) {
		CU_ASSERT_EQUAL(sendto(a, "0123456789", 10, 0, (struct sockaddr *)&d->addr[0],
		                       d->addrlen[0]), 10);
		barriers += barrier(d, b);
		got += drain(a, bytes);
	}
	CU_ASSERT_EQUAL(barriers, n);
	close(a);
	close(b);
	return got;
}

/* Default factor 3, counted on the wire (payload + 28 bytes of IPv4 and
 * UDP headers): A sends 30 x 10 bytes (30 x 38 on the wire) and gets 26
 * replies of 100 bytes (26 x 128 = 3,328 <= 3 x 1,140): one whenever its
 * credit (114 per request, less what it already got) reaches 128. */
static void test_default_factor(void)
{
	struct dg_daemon d;
	size_t bytes;

	CU_ASSERT_FATAL(dg_daemon_start(&d, config("{\"prefix\": " PREFIX90 "}", NULL), NULL));
	unsigned got = ten_byte_requests(&d, 30, &bytes);
	CU_ASSERT_EQUAL(got, 26);
	CU_ASSERT_EQUAL(bytes, 2600);
	dg_daemon_stop_checked(&d, "t");
	CU_ASSERT_EQUAL(dg_daemon_stat(&d, "t", "tx_drop_amplification"), 4);
	CU_ASSERT_EQUAL(dg_daemon_stat(&d, "t", "tx"), 26 + 30); /* A's, B's */
	/* The drops are said in the log once (a minute), with the remedy. */
	char *log = dg_daemon_log(&d);
	CU_ASSERT_PTR_NOT_NULL_FATAL(log);
	CU_ASSERT_EQUAL(dg_count_lines(log, "listener 't': a reply of 128 bytes to 127.0.0.1:"), 1);
	CU_ASSERT_EQUAL(dg_count_lines(log, "(host->peer_validate) or raise amplification.factor"), 1);
	free(log);
	CU_ASSERT_EQUAL(dg_daemon_stat(&d, "t", "handler_errors"), 0);
}

/* factor 10: a 10-byte request buys a 100-byte reply, every time. */
static void test_custom_factor(void)
{
	struct dg_daemon d;
	size_t bytes;

	CU_ASSERT_FATAL(dg_daemon_start(&d, config("{\"prefix\": " PREFIX90 "}",
	                                           ", \"amplification\": {\"factor\": 10}"), NULL));
	CU_ASSERT_EQUAL(ten_byte_requests(&d, 30, &bytes), 30);
	CU_ASSERT_EQUAL(bytes, 3000);
	dg_daemon_stop_checked(&d, "t");
	CU_ASSERT_EQUAL(dg_daemon_stat(&d, "t", "tx_drop_amplification"), 0);
}

/* factor 0: no guard. */
static void test_disabled(void)
{
	struct dg_daemon d;
	size_t bytes;

	CU_ASSERT_FATAL(dg_daemon_start(&d, config("{\"prefix\": " PREFIX90 "}",
	                                           ", \"amplification\": {\"factor\": 0}"), NULL));
	CU_ASSERT_EQUAL(ten_byte_requests(&d, 30, &bytes), 30);
	CU_ASSERT_EQUAL(bytes, 3000);
	dg_daemon_stop_checked(&d, "t");
	CU_ASSERT_EQUAL(dg_daemon_stat(&d, "t", "tx_drop_amplification"), 0);
	CU_ASSERT_EQUAL(dg_daemon_stat(&d, "t", "tx"), 60);
}

/* 50 "spoofed" sources, one 10-byte datagram each: none is answered with
 * 100 bytes (each earned 3 x 38 = 114 wire bytes; the reply is 128). */
static void test_many_sources(void)
{
	struct dg_daemon d;
	size_t bytes = 0;
	unsigned got = 0, barriers = 0;
	char ip[32];

	CU_ASSERT_FATAL(dg_daemon_start(&d, config("{\"prefix\": " PREFIX90 "}", NULL), NULL));
	int b = client_from("127.0.0.2", 2000);
	CU_ASSERT_FATAL(b >= 0);
	for (unsigned i = 1; i <= 50; i++) {
		snprintf(ip, sizeof(ip), "127.0.%u.%u", 1 + i / 200, i % 200 + 1);
		int s = client_from(ip, 2000);
		CU_ASSERT_FATAL(s >= 0);
		CU_ASSERT_EQUAL(sendto(s, "0123456789", 10, 0, (struct sockaddr *)&d.addr[0],
		                       d.addrlen[0]), 10);
		barriers += barrier(&d, b);
		got += drain(s, &bytes);
		close(s);
	}
	close(b);
	CU_ASSERT_EQUAL(barriers, 50);
	CU_ASSERT_EQUAL(got, 0);
	dg_daemon_stop_checked(&d, "t");
	CU_ASSERT_EQUAL(dg_daemon_stat(&d, "t", "tx_drop_amplification"), 50);
	CU_ASSERT_EQUAL(dg_daemon_stat(&d, "t", "sessions"), 51);
	CU_ASSERT_EQUAL(dg_daemon_stat(&d, "t", "tx"), 50);
}

/* Frames of one datagram, coalesced into one reply datagram: each frame's
 * reply spends its bytes with its framing, the first also the datagram's
 * 28 bytes of headers; one over the credit is left out of the datagram,
 * the others still go. factor 1, replies one byte longer than the frames
 * ("x" prefix), 2-byte length prefixes. */
static void test_coalesced_frames(void)
{
	static const char dgram[] = "\0\x0a" "0123456789" "\0\x0a" "abcdefghij";
	struct dg_daemon d;
	char buf[256];

	CU_ASSERT_FATAL(dg_daemon_start(&d,
	        "{ \"listeners\": [{ \"name\": \"t\", \"bind\": \"127.0.0.1:0\",\n"
	        "  \"codec\": {\"framing\": \"length-prefixed\", \"width\": 2, \"payload\": \"bytes\"},\n"
	        "  \"amplification\": {\"factor\": 1},\n"
	        "  \"handler\": {\"plugin\": \"echo\", \"config\": {\"prefix\": \"x\"}} }] }\n", NULL));
	int fd = dg_udp_client(&d.addr[0], 2000);
	/* Credit 24 + 28: the first reply frame (13 + 28) fits, the second
	 * (13) does not. */
	CU_ASSERT_EQUAL(dg_udp_ask(fd, &d.addr[0], d.addrlen[0], dgram, 24, buf, sizeof(buf)), 13);
	CU_ASSERT_EQUAL(memcmp(buf, "\0\x0bx0123456789", 13), 0);
	/* Credit 11 + 52: both fit (41 + 13), in one datagram. */
	CU_ASSERT_EQUAL(dg_udp_ask(fd, &d.addr[0], d.addrlen[0], dgram, 24, buf, sizeof(buf)), 26);
	CU_ASSERT_EQUAL(memcmp(buf, "\0\x0bx0123456789\0\x0bxabcdefghij", 26), 0);
	close(fd);
	dg_daemon_stop_checked(&d, "t");
	CU_ASSERT_EQUAL(dg_daemon_stat(&d, "t", "tx_drop_amplification"), 1);
	CU_ASSERT_EQUAL(dg_daemon_stat(&d, "t", "tx"), 2);
	CU_ASSERT_EQUAL(dg_daemon_stat(&d, "t", "tx_bytes"), 13 + 26);
}

/* echo replies 5 times; max_replies_per_request 3: the 4th reply call of
 * each request fails with DG_E2BIG (echo stops there: a handler error).
 * Each 1-byte request gets 3 replies of 1 byte: exactly its amplification
 * credit (3 x 29 bytes on the wire). */
static void test_max_replies(void)
{
	struct dg_daemon d;
	size_t bytes = 0;
	unsigned got = 0, barriers = 0;

	CU_ASSERT_FATAL(dg_daemon_start(&d, config("{\"repeat\": 5}",
	                                           ", \"max_replies_per_request\": 3"), NULL));
	int a = client_from("127.0.0.1", 2000), b = client_from("127.0.0.2", 2000);
	CU_ASSERT_FATAL(a >= 0 && b >= 0);
	for (unsigned i = 0; i < 4; i++) {
		CU_ASSERT_EQUAL(sendto(a, "x", 1, 0, (struct sockaddr *)&d.addr[0], d.addrlen[0]), 1);
		barriers += barrier(&d, b);
		got += drain(a, &bytes);
	}
	close(a);
	close(b);
	CU_ASSERT_EQUAL(barriers, 4);
	CU_ASSERT_EQUAL(got, 12);
	CU_ASSERT_EQUAL(bytes, 12);
	dg_daemon_stop_checked(&d, "t");
	CU_ASSERT_EQUAL(dg_daemon_stat(&d, "t", "tx_drop_too_many"), 4 + 4); /* A's and B's */
	CU_ASSERT_EQUAL(dg_daemon_stat(&d, "t", "handler_errors"), 8);
	CU_ASSERT_EQUAL(dg_daemon_stat(&d, "t", "tx_drop_amplification"), 0);
}

/* The default is 64 replies per request. */
static void test_max_replies_default(void)
{
	struct dg_daemon d;
	size_t bytes = 0;

	CU_ASSERT_FATAL(dg_daemon_start(&d, config("{\"repeat\": 70}",
	                                           ", \"amplification\": {\"factor\": 0}"), NULL));
	int a = client_from("127.0.0.1", 2000), b = client_from("127.0.0.2", 2000);
	CU_ASSERT_FATAL(a >= 0 && b >= 0);
	CU_ASSERT_EQUAL(sendto(a, "x", 1, 0, (struct sockaddr *)&d.addr[0], d.addrlen[0]), 1);
	CU_ASSERT(barrier(&d, b));
	CU_ASSERT_EQUAL(drain(a, &bytes), 64);
	close(a);
	close(b);
	dg_daemon_stop_checked(&d, "t");
	CU_ASSERT_EQUAL(dg_daemon_stat(&d, "t", "tx_drop_too_many"), 2);
}

/* kv answers a reply the guard refuses with a cookie; the peer that echoes
 * its own cookie is validated and gets everything from then on, for the
 * rest of its session. A cookie is bound to the address it was sent to. */
/* A shipped config with its fixed ports made 0 (the IPv6 one dropped). */
static char *shipped(const char *file, const char *port)
{
	static char text[8192];
	char path[4096], *p;
	size_t n;

	snprintf(path, sizeof(path), "%s/%s", dg_test_srcdir(), file);
	FILE *f = fopen(path, "r");
	CU_ASSERT_PTR_NOT_NULL_FATAL(f);
	n = fread(text, 1, sizeof(text) - 1, f);
	fclose(f);
	text[n] = '\0';
	while ((p = strstr(text, ", \"[::1]:")))
		memmove(p, strchr(p + 3, '"') + 1, strlen(strchr(p + 3, '"') + 1) + 1);
	while ((p = strstr(text, port))) {
		memmove(p + 1, p + strlen(port), strlen(p + strlen(port)) + 1);
		*p = '0';
	}
	return text;
}

/* Run on conf/examples/kv.json as shipped (ports aside). */
static void test_kv_cookie(void)
{
	const char *conf = shipped("conf/examples/kv.json", "5301");
	static const char get[] = "{\"op\":\"get\",\"key\":\"big\"}";
	/* What the replies are, and so their sizes. */
	const ssize_t cookie_len = sizeof("{\"ok\":false,\"error\":\"cookie\",\"cookie\":\"\"}") - 1 + 16;
	const ssize_t value_len = sizeof("{\"ok\":true,\"value\":\"\"}") - 1 + 2000;
	struct dg_daemon d;
	char set[2100], req[256], buf[4096], cookie[17] = "", other[17] = "";
	ssize_t n;

	CU_ASSERT_FATAL(dg_daemon_start(&d, conf, NULL));
	int s = client_from("127.0.0.3", 2000), a = client_from("127.0.0.4", 2000);
	int c = client_from("127.0.0.5", 2000);
	CU_ASSERT_FATAL(s >= 0 && a >= 0 && c >= 0);
	/* A 2000-byte value: the set request is larger than its reply. */
	n = snprintf(set, sizeof(set), "{\"op\":\"set\",\"key\":\"big\",\"value\":\"%02000d\"}", 7);
	CU_ASSERT_EQUAL(dg_udp_ask(s, &d.addr[0], d.addrlen[0], set, (size_t)n, buf, sizeof(buf)), 11);

	/* Unvalidated: 24 bytes in, the 2022-byte value refused, the 57-byte
	 * cookie reply sent (under 3 x 24). */
	n = dg_udp_ask(a, &d.addr[0], d.addrlen[0], get, strlen(get), buf, sizeof(buf) - 1);
	CU_ASSERT_EQUAL_FATAL(n, cookie_len);
	buf[n] = '\0';
	CU_ASSERT_EQUAL(sscanf(buf, "{\"ok\":false,\"error\":\"cookie\",\"cookie\":\"%16[0-9a-f]\"}", cookie), 1);
	CU_ASSERT_EQUAL(strlen(cookie), 16);

	/* Echoing it: validated, the whole value. */
	n = snprintf(req, sizeof(req), "{\"op\":\"get\",\"key\":\"big\",\"cookie\":\"%s\"}", cookie);
	n = dg_udp_ask(a, &d.addr[0], d.addrlen[0], req, (size_t)n, buf, sizeof(buf));
	CU_ASSERT_EQUAL(n, value_len);
	/* And later requests without it too. */
	CU_ASSERT_EQUAL(dg_udp_ask(a, &d.addr[0], d.addrlen[0], get, strlen(get), buf, sizeof(buf)), value_len);

	/* A's cookie from another address validates nothing. */
	n = dg_udp_ask(c, &d.addr[0], d.addrlen[0], req, strlen(req), buf, sizeof(buf) - 1);
	CU_ASSERT_EQUAL_FATAL(n, cookie_len);
	buf[n] = '\0';
	CU_ASSERT_EQUAL(sscanf(buf, "{\"ok\":false,\"error\":\"cookie\",\"cookie\":\"%16[0-9a-f]\"}", other), 1);
	CU_ASSERT(strcmp(cookie, other) != 0);
	close(s);
	close(a);
	close(c);
	dg_daemon_stop_checked(&d, "kv");
	CU_ASSERT_EQUAL(dg_daemon_stat(&d, "kv", "tx_drop_amplification"), 2);
	CU_ASSERT_EQUAL(dg_daemon_stat(&d, "kv", "tx"), 5);
	CU_ASSERT_EQUAL(dg_daemon_stat(&d, "kv", "tx_bytes"), 11 + 2 * cookie_len + 2 * value_len);
	CU_ASSERT_EQUAL(dg_daemon_stat(&d, "kv", "handler_errors"), 0);
}

/* Ask kv for "big" from fd, with the cookie if one is given; the reply's
 * length (value replies are long, cookie replies short). */
static ssize_t kv_get(struct dg_daemon *d, int fd, const char *cookie, char *buf, size_t cap)
{
	char req[256];
	int n = snprintf(req, sizeof(req), "{\"op\":\"get\",\"key\":\"big\"%s%s%s}",
	                 cookie ? ",\"cookie\":\"" : "", cookie ? cookie : "", cookie ? "\"" : "");

	return dg_udp_ask(fd, &d->addr[0], d->addrlen[0], req, (size_t)n, buf, cap);
}

/* max_peers 10, max_unvalidated_peers 5: three validated peers, then 50
 * new sources (a spoofed flood, say). The newcomers only ever take each
 * other's places: the validated sessions survive (they are still
 * validated: the whole value comes back without a cookie). */
static void test_unvalidated_cap(void)
{
	static const char conf[] =
		"{ \"listeners\": [{ \"name\": \"kv\", \"bind\": \"127.0.0.1:0\", \"codec\": \"json\",\n"
		"  \"max_peers\": 10, \"max_unvalidated_peers\": 5, \"handler\": \"kv\" }] }\n";
	struct dg_daemon d;
	char set[2100], buf[4096], cookie[17], ip[32];
	int v[3];
	unsigned answered = 0;

	CU_ASSERT_FATAL(dg_daemon_start(&d, conf, NULL));
	int s = client_from("127.0.0.3", 2000);
	CU_ASSERT_FATAL(s >= 0);
	int n = snprintf(set, sizeof(set), "{\"op\":\"set\",\"key\":\"big\",\"value\":\"%02000d\"}", 7);
	CU_ASSERT_EQUAL(dg_udp_ask(s, &d.addr[0], d.addrlen[0], set, (size_t)n, buf, sizeof(buf)), 11);
	for (unsigned i = 0; i < 3; i++) {
		snprintf(ip, sizeof(ip), "127.0.2.%u", i + 1);
		v[i] = client_from(ip, 2000);
		CU_ASSERT_FATAL(v[i] >= 0);
		ssize_t got = kv_get(&d, v[i], NULL, buf, sizeof(buf) - 1);
		CU_ASSERT_FATAL(got > 0 && got < 100);
		buf[got] = '\0';
		CU_ASSERT_FATAL(sscanf(buf, "{\"ok\":false,\"error\":\"cookie\",\"cookie\":\"%16[0-9a-f]\"}", cookie) == 1);
		CU_ASSERT_EQUAL(kv_get(&d, v[i], cookie, buf, sizeof(buf)), 2022);
	}
	/* 50 sources, one get each: answered with a cookie (small). */
	for (unsigned i = 1; i <= 50; i++) {
		snprintf(ip, sizeof(ip), "127.0.3.%u", i);
		int f = client_from(ip, 2000);
		CU_ASSERT_FATAL(f >= 0);
		answered += kv_get(&d, f, NULL, buf, sizeof(buf)) == 57;
		close(f);
	}
	CU_ASSERT_EQUAL(answered, 50);
	for (unsigned i = 0; i < 3; i++) {
		CU_ASSERT_EQUAL(kv_get(&d, v[i], NULL, buf, sizeof(buf)), 2022);
		close(v[i]);
	}
	close(s);
	dg_daemon_stop_checked(&d, "kv");
	/* s, v[0..2] and 50 newcomers; s and 4 newcomers fill the 5
	 * unvalidated places, each later newcomer evicts one of them. */
	CU_ASSERT_EQUAL(dg_daemon_stat(&d, "kv", "sessions"), 54);
	CU_ASSERT_EQUAL(dg_daemon_stat(&d, "kv", "sessions_evicted"), 46);
	CU_ASSERT_EQUAL(dg_daemon_stat(&d, "kv", "drop_peers_full"), 0);
}

/* A plugin built against the ABI 1.0 header (tests/fixtures/abi10.c)
 * loads into this host and answers. */
static void test_abi10_plugin(void)
{
	char conf[8192], buf[64];
	struct dg_daemon d;

	snprintf(conf, sizeof(conf),
	         "{ \"listeners\": [{ \"name\": \"old\", \"bind\": \"127.0.0.1:0\", \"codec\": \"raw\",\n"
	         "  \"handler\": {\"plugin\": \"%s/tests/fixtures/.libs/abi10.so\"} }] }\n",
	         dg_test_builddir());
	CU_ASSERT_FATAL(dg_daemon_start(&d, conf, NULL));
	int fd = dg_udp_client(&d.addr[0], 2000);
	CU_ASSERT_EQUAL(dg_udp_ask(fd, &d.addr[0], d.addrlen[0], "hello", 5, buf, sizeof(buf)), 9);
	CU_ASSERT_EQUAL(memcmp(buf, "1.0:hello", 9), 0);
	close(fd);
	dg_daemon_stop_checked(&d, "old");
	CU_ASSERT_EQUAL(dg_daemon_stat(&d, "old", "tx"), 1);
}

/* A plugin built against the ABI 1.1 header (tests/fixtures/abi11.c), with
 * what 1.1 added (declared options, replies through the instance, the data
 * slot, conversation steps and their timeout), keeps working on this host. */
static void ask_is(int fd, const struct dg_daemon *d, int i, const char *q, const char *want)
{
	char buf[64];
	ssize_t n = dg_udp_ask(fd, &d->addr[i], d->addrlen[i], q, strlen(q), buf, sizeof(buf));

	CU_ASSERT_EQUAL(n, (ssize_t)strlen(want));
	if (n == (ssize_t)strlen(want))
		CU_ASSERT_EQUAL(memcmp(buf, want, (size_t)n), 0);
}

static void test_abi11_plugin(void)
{
	char conf[8192], buf[64], err[4096], out[4096], bin[4096], path[4096];
	struct dg_daemon d;

	snprintf(conf, sizeof(conf),
	         "{ \"listeners\": [{ \"name\": \"talk\", \"bind\": \"127.0.0.1:0\", \"codec\": \"raw\",\n"
	         "  \"handler\": {\"plugin\": \"%s/tests/fixtures/.libs/abi11.so\",\n"
	         "               \"config\": {\"greeting\": \"yo\", \"step_ms\": 60000}} },\n"
	         "  { \"name\": \"quick\", \"bind\": \"127.0.0.1:0\", \"codec\": \"raw\",\n"
	         "  \"handler\": {\"plugin\": \"%s/tests/fixtures/.libs/abi11.so\",\n"
	         "               \"config\": {\"step_ms\": 50}} }] }\n",
	         dg_test_builddir(), dg_test_builddir());
	CU_ASSERT_FATAL(dg_daemon_start(&d, conf, NULL));
	int fd = dg_udp_client(&d.addr[0], 5000);
	CU_ASSERT_FATAL(fd >= 0);
	ask_is(fd, &d, 0, "aaaa", "yo:aaaa"); /* the option given */
	ask_is(fd, &d, 0, "bbbb", "1:bbbb"); /* conversation steps */
	ask_is(fd, &d, 0, "cccc", "2:cccc"); /* steps: 2 by default, then complete */
	ask_is(fd, &d, 0, "freed?", "freed:1");
	ask_is(fd, &d, 1, "xxxxxxxx", "hi:xxxxxxxx"); /* the default greeting */
	/* The step's own 50 ms timeout: the reply comes unasked. */
	ssize_t n = recv(fd, buf, sizeof(buf), 0);
	CU_ASSERT_EQUAL(n, 7);
	CU_ASSERT_EQUAL(memcmp(buf, "timeout", 7), 0);
	ask_is(fd, &d, 1, "freed?", "freed:1");
	close(fd);
	dg_daemon_stop_checked(&d, "talk");
	CU_ASSERT_EQUAL(dg_daemon_stat(&d, "talk", "tx"), 4);
	CU_ASSERT_EQUAL(dg_daemon_stat(&d, "quick", "tx"), 3);

	/* Its option table is checked by the host, by key path. */
	snprintf(conf, sizeof(conf),
	         "{ \"listeners\": [{ \"name\": \"bad\", \"bind\": \"127.0.0.1:0\",\n"
	         "  \"handler\": {\"plugin\": \"%s/tests/fixtures/.libs/abi11.so\",\n"
	         "               \"config\": {\"steps\": 9}} }] }\n",
	         dg_test_builddir());
	snprintf(bin, sizeof(bin), "%s/dgramd", dg_test_builddir());
	snprintf(path, sizeof(path), "%s", dg_test_write("abi11-bad.json", conf));
	const char *argv[] = { bin, "-t", "-c", path, NULL };
	CU_ASSERT_EQUAL(dg_run(argv, NULL, out, sizeof(out), err, sizeof(err), 10000), 1);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "listeners[0].handler.config.steps: must be 1 .. 5 (got 9)"));
}

/* A plugin built against the ABI 1.2 header (tests/fixtures/abi12.c): its
 * descriptor ends before 1.3's proves_source, which the host must take as
 * NULL (not read past the descriptor), and it uses 1.2's now_ms. */
static void test_abi12_plugin(void)
{
	char conf[8192];
	struct dg_daemon d;

	snprintf(conf, sizeof(conf),
	         "{ \"listeners\": [{ \"name\": \"v12\", \"bind\": \"127.0.0.1:0\", \"codec\": \"raw\",\n"
	         "  \"rate_limit\": {\"per_source\": {\"rate\": 1000, \"burst\": 100}},\n"
	         "  \"handler\": {\"plugin\": \"%s/tests/fixtures/.libs/abi12.so\"} }] }\n",
	         dg_test_builddir());
	CU_ASSERT_FATAL(dg_daemon_start(&d, conf, NULL));
	int fd = dg_udp_client(&d.addr[0], 2000);
	CU_ASSERT_FATAL(fd >= 0);
	ask_is(fd, &d, 0, "hello", "1.2:hello");
	ask_is(fd, &d, 0, "elapsed?", "1.2:ok");
	close(fd);
	dg_daemon_stop_checked(&d, "v12");
	CU_ASSERT_EQUAL(dg_daemon_stat(&d, "v12", "tx"), 2);
	CU_ASSERT_EQUAL(dg_daemon_stat(&d, "v12", "rx_proven"), 0);
}

static int run_check(const char *extra, char *out, size_t outlen)
{
	char bin[4096], plugins[4096], path[4096], err[4096];

	snprintf(bin, sizeof(bin), "%s/dgramd", dg_test_builddir());
	snprintf(plugins, sizeof(plugins), "%s/plugins/.libs", dg_test_builddir());
	snprintf(path, sizeof(path), "%s", dg_test_write("check.json", config("{}", extra)));
	const char *argv[] = { bin, "-P", plugins, "-t", "-c", path, NULL };
	int rc = dg_run(argv, NULL, out, outlen, err, sizeof(err), 10000);
	snprintf(out, outlen, "%s", err);
	return rc;
}

static void test_config_errors(void)
{
	char out[4096];

	CU_ASSERT_EQUAL(run_check(", \"amplification\": {\"factro\": 3}", out, sizeof(out)), 1);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "listeners[0].amplification.factro: unknown key "
	                                   "(did you mean 'factor'?)"));
	CU_ASSERT_EQUAL(run_check(", \"amplification\": 3", out, sizeof(out)), 1);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "listeners[0].amplification: expected an object"));
	CU_ASSERT_EQUAL(run_check(", \"amplification\": {\"factor\": -1}", out, sizeof(out)), 1);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "listeners[0].amplification.factor: expected an integer"));
	CU_ASSERT_EQUAL(run_check(", \"max_replies_per_request\": 0", out, sizeof(out)), 1);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "listeners[0].max_replies_per_request: expected an integer"));
	CU_ASSERT_EQUAL(run_check(", \"max_peers\": 10, \"max_unvalidated_peers\": 11", out, sizeof(out)), 1);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "listeners[0].max_unvalidated_peers: 11 is more than max_peers (10)"));
	CU_ASSERT_EQUAL(run_check(", \"amplification\": {\"factor\": 0}, "
	                          "\"max_replies_per_request\": 1", out, sizeof(out)), 0);
}

/* An empty datagram costs its headers on the wire (28 bytes over IPv4),
 * both ways: an empty request earns 3 x 28, so of 20 empty replies 3 go
 * out and the 4th is over the credit (echo stops there); all 20 went when
 * empty datagrams cost nothing. B's 100-byte barrier earns 3 replies of
 * 128 bytes, and its 4th is refused too. */
static void test_empty_replies(void)
{
	struct dg_daemon d;
	size_t bytes = 0;

	CU_ASSERT_FATAL(dg_daemon_start(&d, config("{\"repeat\": 20}", NULL), NULL));
	int a = client_from("127.0.0.1", 2000), b = client_from("127.0.0.2", 2000);
	CU_ASSERT_FATAL(a >= 0 && b >= 0);
	CU_ASSERT_EQUAL(sendto(a, "", 0, 0, (struct sockaddr *)&d.addr[0], d.addrlen[0]), 0);
	CU_ASSERT(barrier(&d, b));
	CU_ASSERT_EQUAL(drain(a, &bytes), 3);
	CU_ASSERT_EQUAL(bytes, 0);
	close(a);
	close(b);
	dg_daemon_stop_checked(&d, "t");
	CU_ASSERT_EQUAL(dg_daemon_stat(&d, "t", "tx_drop_amplification"), 2);
}

/* A plugin pushing 20,000 empty datagrams (tests/fixtures/convo.c) to an
 * unvalidated peer that sent one empty request: 3 go out, the rest are
 * over the credit (14,195 went when empty datagrams cost nothing). */
static void test_empty_push_flood(void)
{
	char conf[4096], buf[64];
	struct dg_daemon d;
	size_t bytes = 0;

	snprintf(conf, sizeof(conf),
	         "{ \"listeners\": [{ \"name\": \"t\", \"bind\": \"127.0.0.1:0\", \"codec\": \"raw\",\n"
	         "  \"handler\": {\"plugin\": \"%s/tests/fixtures/.libs/convo.so\"} }] }\n",
	         dg_test_builddir());
	CU_ASSERT_FATAL(dg_daemon_start(&d, conf, NULL));
	int a = client_from("127.0.0.1", 2000), b = client_from("127.0.0.2", 2000);
	CU_ASSERT_FATAL(a >= 0 && b >= 0);
	CU_ASSERT_EQUAL(sendto(a, "", 0, 0, (struct sockaddr *)&d.addr[0], d.addrlen[0]), 0);
	/* B's answer comes after A's pushes: the socket is read in order. */
	CU_ASSERT_EQUAL(dg_udp_ask(b, &d.addr[0], d.addrlen[0], "echo barrier", 12, buf,
	                           sizeof(buf)), 7);
	CU_ASSERT_EQUAL(drain(a, &bytes), 3);
	CU_ASSERT_EQUAL(bytes, 0);
	close(a);
	close(b);
	dg_daemon_stop_checked(&d, "t");
	char *log = dg_daemon_log(&d);
	CU_ASSERT_PTR_NOT_NULL_FATAL(log);
	CU_ASSERT_EQUAL(dg_count_lines(log, "flood: 3 pushed"), 1);
	free(log);
	CU_ASSERT_EQUAL(dg_daemon_stat(&d, "t", "tx_push"), 3);
	CU_ASSERT_EQUAL(dg_daemon_stat(&d, "t", "tx_drop_amplification"), 20000 - 3);
}

static const struct dg_test tests[] = {
	{ "default factor 3: exact bytes", test_default_factor },
	{ "factor 10", test_custom_factor },
	{ "factor 0 disables", test_disabled },
	{ "50 sources, none amplified", test_many_sources },
	{ "frames coalesced in one reply", test_coalesced_frames },
	{ "empty replies cost their headers", test_empty_replies },
	{ "a push flood of empty datagrams", test_empty_push_flood },
	{ "max_replies_per_request", test_max_replies },
	{ "max_replies_per_request default 64", test_max_replies_default },
	{ "kv cookie validates a peer", test_kv_cookie },
	{ "max_unvalidated_peers keeps validated peers", test_unvalidated_cap },
	{ "plugin built for ABI 1.0", test_abi10_plugin },
	{ "plugin built for ABI 1.1", test_abi11_plugin },
	{ "plugin built for ABI 1.2", test_abi12_plugin },
	{ "config errors", test_config_errors },
	{ NULL, NULL },
};

DG_TEST_MAIN("amplification", tests)
