/* The client library against a loopback socket this test controls, and the
 * asynchronous client against the real dgramd. */
#include "config.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <jansson.h>
#include <dgramd/client.h>

#include "testutil.h"

/* A UDP socket on 127.0.0.1 with a free port, playing the server. */
static int server(char *hostport, size_t len)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t alen = sizeof(a);
	int fd = socket(AF_INET, SOCK_DGRAM, 0);
	struct timeval tv = { .tv_sec = 2 };

	if (fd < 0 || bind(fd, (struct sockaddr *)&a, alen) || getsockname(fd, (struct sockaddr *)&a, &alen))
		return -1;
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	snprintf(hostport, len, "127.0.0.1:%u", ntohs(a.sin_port));
	return fd;
}


/* How many datagrams wait on fd right now. */
static unsigned drain(int fd)
{
	char buf[2048];
	unsigned n = 0;

	while (recv(fd, buf, sizeof(buf), MSG_DONTWAIT) >= 0)
		n++;
	return n;
}

static void test_timeout_and_retries(void)
{
	char hp[64];
	int s = server(hp, sizeof(hp));
	struct dg_client_opts o = { .timeout_ms = 100, .retries = 2 };
	struct dg_client *c;
	struct dg_client_error e;
	struct dg_packet req = { .data = "q", .len = 1 }, reply;

	CU_ASSERT_EQUAL_FATAL(dg_client_open(hp, "raw", &o, &c, &e), 0);
	double t0 = dg_now_ms();
	CU_ASSERT_EQUAL(dg_client_request(c, &req, &reply, &e), DG_ETIMEDOUT);
	double took = dg_now_ms() - t0;
	CU_ASSERT(took >= 290 && took < 1500);
	CU_ASSERT_EQUAL(e.code, DG_ETIMEDOUT);
	CU_ASSERT_PTR_NOT_NULL(strstr(e.message, "after 3 attempts of 100 ms"));
	usleep(20000);
	CU_ASSERT_EQUAL(drain(s), 3); /* the first send and two retries */
	/* recv with 0 waits for nothing. */
	CU_ASSERT_EQUAL(dg_client_recv(c, &reply, 0, &e), DG_ETIMEDOUT);
	dg_client_close(c);
	close(s);
}

static void test_parse_error_then_good(void)
{
	char hp[64], buf[64];
	struct sockaddr_storage from;
	socklen_t flen = sizeof(from);
	int s = server(hp, sizeof(hp));
	struct dg_client *c;
	struct dg_client_error e;
	struct dg_packet req = { .json = json_integer(1) }, reply;

	CU_ASSERT_EQUAL_FATAL(dg_client_open(hp, "json", NULL, &c, &e), 0);
	CU_ASSERT_EQUAL(dg_client_send(c, &req, 1, &e), 0);
	CU_ASSERT_EQUAL(recvfrom(s, buf, sizeof(buf), 0, (struct sockaddr *)&from, &flen), 1);
	CU_ASSERT_EQUAL(buf[0], '1');
	sendto(s, "{\"a\":", 5, 0, (struct sockaddr *)&from, flen);
	sendto(s, "{\"a\":2}", 7, 0, (struct sockaddr *)&from, flen);
	CU_ASSERT_EQUAL(dg_client_recv(c, &reply, 1000, &e), DG_EPARSE);
	CU_ASSERT_EQUAL(e.offset, 5);
	CU_ASSERT_PTR_NOT_NULL(strstr(e.message, hp));
	CU_ASSERT_EQUAL(dg_client_recv(c, &reply, 1000, &e), DG_OK);
	CU_ASSERT_EQUAL(json_integer_value(json_object_get(reply.json, "a")), 2);
	json_decref(req.json);
	dg_client_close(c);
	close(s);
}

/* ICMP port unreachable: reported once, promptly, and the client works
 * when something listens again. */
static void test_icmp_refused_then_recovery(void)
{
	char hp[64], buf[64];
	struct sockaddr_storage from;
	socklen_t flen = sizeof(from);
	int s = server(hp, sizeof(hp));
	struct dg_client_opts o = { .timeout_ms = 2000 };
	struct dg_client *c;
	struct dg_client_error e;
	struct dg_packet req = { .data = "ping", .len = 4 }, reply;
	struct sockaddr_in a;
	socklen_t alen = sizeof(a);

	getsockname(s, (struct sockaddr *)&a, &alen);
	close(s); /* nothing listens on the port now */
	CU_ASSERT_EQUAL_FATAL(dg_client_open(hp, "raw", &o, &c, &e), 0);
	double t0 = dg_now_ms();
	CU_ASSERT_EQUAL(dg_client_request(c, &req, &reply, &e), DG_ENET);
	CU_ASSERT(dg_now_ms() - t0 < 1000); /* woken by the ICMP error, not the timeout */
	CU_ASSERT_PTR_NOT_NULL(strstr(e.message, "port unreachable"));
	/* The same port comes back: the same client talks to it. */
	s = socket(AF_INET, SOCK_DGRAM, 0);
	CU_ASSERT_FATAL(bind(s, (struct sockaddr *)&a, alen) == 0);
	CU_ASSERT_EQUAL(dg_client_send(c, &req, 1, &e), 0);
	CU_ASSERT_EQUAL(recvfrom(s, buf, sizeof(buf), 0, (struct sockaddr *)&from, &flen), 4);
	sendto(s, "pong", 4, 0, (struct sockaddr *)&from, flen);
	CU_ASSERT_EQUAL(dg_client_recv(c, &reply, -1, &e), DG_OK);
	CU_ASSERT_EQUAL(reply.len, 4);
	CU_ASSERT_EQUAL(memcmp(reply.data, "pong", 4), 0);
	dg_client_close(c);
	close(s);
}

/* Several packets coalesce into one length-prefixed datagram; the frames
 * of a reply come back one by one. */
static void test_frames(void)
{
	char hp[64], buf[256];
	struct sockaddr_storage from;
	socklen_t flen = sizeof(from);
	int s = server(hp, sizeof(hp));
	struct dg_client *c;
	struct dg_client_error e;
	struct dg_packet pk[3] = { { .json = json_integer(1) }, { .json = json_string("x") },
	                           { .json = json_pack("{si}", "a", 2) } };
	struct dg_packet reply;

	CU_ASSERT_EQUAL_FATAL(dg_client_open(hp, "{\"framing\": \"length-prefixed\", \"payload\": \"json\"}",
	                                     NULL, &c, &e), 0);
	CU_ASSERT_STRING_EQUAL(dg_client_codec_name(c), "length-prefixed+json");
	CU_ASSERT_EQUAL(dg_client_send(c, pk, 3, &e), 0);
	ssize_t n = recvfrom(s, buf, sizeof(buf), 0, (struct sockaddr *)&from, &flen);
	CU_ASSERT_EQUAL(n, 3 + 5 + 9);
	CU_ASSERT_EQUAL(memcmp(buf, "\0\0011\0\3\"x\"\0\7{\"a\":2}", 17), 0);
	CU_ASSERT_EQUAL(drain(s), 0); /* one datagram */
	sendto(s, buf, (size_t)n, 0, (struct sockaddr *)&from, flen);
	CU_ASSERT_EQUAL(dg_client_recv(c, &reply, 1000, &e), 0);
	CU_ASSERT_EQUAL(json_integer_value(reply.json), 1);
	CU_ASSERT_EQUAL(dg_client_recv(c, &reply, 1000, &e), 0);
	CU_ASSERT_STRING_EQUAL(json_string_value(reply.json), "x");
	CU_ASSERT_EQUAL(dg_client_recv(c, &reply, 1000, &e), 0);
	CU_ASSERT_TRUE(json_is_object(reply.json));
	CU_ASSERT_EQUAL(dg_client_recv(c, &reply, 0, &e), DG_ETIMEDOUT);
	/* A broken reply is one parse error, with its offset. */
	sendto(s, "\0\1{\0\5x", 6, 0, (struct sockaddr *)&from, flen);
	CU_ASSERT_EQUAL(dg_client_recv(c, &reply, 1000, &e), DG_EPARSE);
	CU_ASSERT_EQUAL(e.offset, 3);
	for (int i = 0; i < 3; i++)
		json_decref(pk[i].json);
	dg_client_close(c);
	close(s);
}

static void test_open_errors(void)
{
	struct dg_client *c;
	struct dg_client_error e;

	CU_ASSERT_EQUAL(dg_client_open("127.0.0.1", "json", NULL, &c, &e), DG_EINVAL);
	CU_ASSERT_STRING_EQUAL(e.message, "'127.0.0.1' is not host:port or [ipv6]:port");
	CU_ASSERT_EQUAL(dg_client_open("127.0.0.1:1", "{\"framing\": \"length-prefixed\", \"width\": 3}",
	                               NULL, &c, &e), DG_EINVAL);
	CU_ASSERT_STRING_EQUAL(e.message, "codec spec.width: expected 1, 2 or 4");
	CU_ASSERT_EQUAL(dg_client_open("127.0.0.1:1", "{bad", NULL, &c, &e), DG_EINVAL);
	CU_ASSERT_EQUAL(dg_client_open("host.invalid:1", "json", NULL, &c, &e), DG_ENET);
	CU_ASSERT_PTR_NOT_NULL(strstr(e.message, "cannot resolve 'host.invalid:1'"));
	CU_ASSERT_EQUAL(dg_client_open("localhost:5300", "raw", NULL, &c, &e), DG_OK);
	dg_client_close(c);
}

/* ---- asynchronous client against dgramd -------------------------------- */

struct tally {
	unsigned ok, matched, timeouts, other;
	struct event_base *base;
	unsigned expect;
};

struct call {
	struct tally *t;
	json_int_t n;
};

static void on_reply(void *arg, int status, const struct dg_packet *reply,
                     const struct dg_client_error *err)
{
	struct call *c = arg;
	struct tally *t = c->t;

	(void)err;
	if (status == DG_OK) {
		t->ok++;
		t->matched += json_integer_value(json_object_get(reply->json, "n")) == c->n;
	} else if (status == DG_ETIMEDOUT) {
		t->timeouts++;
	} else {
		t->other++;
	}
	if (t->ok + t->timeouts + t->other == t->expect)
		event_base_loopbreak(t->base);
	free(c);
}

static void run_async(struct dg_daemon *d, const char *id_field, unsigned n, struct tally *t)
{
	char hp[64];
	struct sockaddr_in *a = (struct sockaddr_in *)&d->addr[0];
	/* Up to n replies may arrive before the loop reads: room for them. */
	struct dg_aclient_opts o = { .timeout_ms = 5000, .id_field = id_field, .rcvbuf = 4 << 20 };
	struct dg_aclient *ac;
	struct dg_client_error e;

	snprintf(hp, sizeof(hp), "127.0.0.1:%u", ntohs(a->sin_port));
	memset(t, 0, sizeof(*t));
	t->base = event_base_new();
	t->expect = n;
	CU_ASSERT_EQUAL_FATAL(dg_aclient_new(t->base, hp, "json", &o, &ac, &e), 0);
	for (unsigned i = 0; i < n; i++) {
		struct call *c = malloc(sizeof(*c));
		c->t = t;
		c->n = i;
		json_t *j = json_pack("{sI}", "n", (json_int_t)i);
		struct dg_packet p = { .json = j };
		CU_ASSERT_EQUAL(dg_aclient_request(ac, &p, on_reply, c, &e), 0);
		json_decref(j);
	}
	CU_ASSERT_EQUAL(dg_aclient_pending(ac), n);
	struct timeval limit = { .tv_sec = 20 };
	event_base_loopexit(t->base, &limit);
	event_base_dispatch(t->base);
	dg_aclient_free(ac);
	event_base_free(t->base);
}

static void test_async_1000(void)
{
	struct dg_daemon d;
	struct tally t;

	/* A delayed echo with ordering off: replies come back in any order. */
	CU_ASSERT_FATAL(dg_daemon_start(&d, "{\"listeners\": [{\"name\": \"t\", \"bind\": \"127.0.0.1:0\", "
	        "\"codec\": \"json\", \"ordering\": \"none\", \"rcvbuf\": 4194304, "
	        "\"handler\": {\"plugin\": \"echo\", \"config\": {\"delay_ms\": 20}}}]}", NULL));
	run_async(&d, "id", 1000, &t);
	fprintf(stderr, "async, ids: %u replies, %u matched, %u timeouts, %u other\n",
	        t.ok, t.matched, t.timeouts, t.other);
	CU_ASSERT_EQUAL(t.ok, 1000);
	CU_ASSERT_EQUAL(t.matched, 1000);
	/* Without ids, arrival order: the echo with ordering "peer" keeps it. */
	CU_ASSERT_EQUAL(dg_daemon_stop(&d), 0);
	CU_ASSERT_FATAL(dg_daemon_start(&d, "{\"listeners\": [{\"name\": \"t\", \"bind\": \"127.0.0.1:0\", "
	        "\"codec\": \"json\", \"peer_queue\": 1000, \"rcvbuf\": 4194304, \"handler\": \"echo\"}]}", NULL));
	run_async(&d, NULL, 500, &t);
	CU_ASSERT_EQUAL(t.ok, 500);
	CU_ASSERT_EQUAL(t.matched, 500);
	CU_ASSERT_EQUAL(dg_daemon_stop(&d), 0);
}

static void on_cancel(void *arg, int status, const struct dg_packet *reply,
                      const struct dg_client_error *err)
{
	int *st = arg;
	(void)reply, (void)err;
	*st = status;
}

static void test_async_timeout_and_cancel(void)
{
	char hp[64];
	int s = server(hp, sizeof(hp));
	struct event_base *base = event_base_new();
	struct dg_aclient_opts o = { .timeout_ms = 100 };
	struct dg_aclient *ac;
	struct dg_client_error e;
	struct dg_packet p = { .json = json_integer(5) };
	int st1 = 1, st2 = 1;

	CU_ASSERT_EQUAL_FATAL(dg_aclient_new(base, hp, "json", &o, &ac, &e), 0);
	CU_ASSERT_EQUAL(dg_aclient_request(ac, &p, on_cancel, &st1, &e), 0);
	for (int i = 0; i < 100 && st1 == 1; i++)
		event_base_loop(base, EVLOOP_ONCE); /* bounded: the timer fires after 100 ms */
	CU_ASSERT_EQUAL(st1, DG_ETIMEDOUT);
	CU_ASSERT_EQUAL(dg_aclient_request(ac, &p, on_cancel, &st2, &e), 0);
	dg_aclient_free(ac);
	CU_ASSERT_EQUAL(st2, DG_ECANCELED);
	json_decref(p.json);
	event_base_free(base);
	close(s);
}

static const struct dg_test client_tests[] = {
	{ "timeout and retries", test_timeout_and_retries },
	{ "parse error then a good packet", test_parse_error_then_good },
	{ "ICMP refused then recovery", test_icmp_refused_then_recovery },
	{ "length-prefixed frames", test_frames },
	{ "open errors", test_open_errors },
	{ "async: 1000 in flight", test_async_1000 },
	{ "async: timeout and cancel", test_async_timeout_and_cancel },
	{ NULL, NULL },
};

DG_TEST_MAIN("client", client_tests)
