/* The client library against a loopback socket this test controls, and the
 * asynchronous client against the real dgramd. */
#include "config.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/wait.h>
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
	struct dg_client_opts o = { .size = sizeof(o), .timeout_ms = 100, .retries = 2 };
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
	/* The first send and two retries, and nothing more. */
	char buf[64];
	for (int i = 0; i < 3; i++)
		CU_ASSERT_EQUAL(recv(s, buf, sizeof(buf), 0), 1); /* SO_RCVTIMEO bounds the wait */
	CU_ASSERT_EQUAL(drain(s), 0);
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

/* A reply whose HMAC does not match is reported as refused with the
 * reason, not as a syntax error at some byte; the next good one is read. */
static void test_signature_mismatch(void)
{
	static const char bad[] = "eyJvayI6MX3MvcaHu4dEZWJgABY1vU25mj8JfLMIGTfk0YNV8IphWw==";
	static const char good[] = "eyJvayI6MX3NvcaHu4dEZWJgABY1vU25mj8JfLMIGTfk0YNV8IphWw==";
	char hp[64], buf[256], spec[4400], kf[4096];
	struct sockaddr_storage from;
	socklen_t flen = sizeof(from);
	int s = server(hp, sizeof(hp));
	struct dg_client *c;
	struct dg_client_error e;
	struct dg_packet req = { .json = json_integer(1) }, reply;

	/* bytes 3..34, as Base64EncoderSerializer.generate_key() writes a key */
	snprintf(kf, sizeof(kf), "%s", dg_test_write("client.key", "AwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISI="));
	snprintf(spec, sizeof(spec), "{\"payload\": \"json\", \"transforms\": [{\"name\": \"base64\", "
	         "\"checksum\": \"hmac-sha256\", \"key_file\": \"%s\"}]}", kf);
	CU_ASSERT_EQUAL_FATAL(dg_client_open(hp, spec, NULL, &c, &e), 0);
	CU_ASSERT_EQUAL(dg_client_send(c, &req, 1, &e), 0);
	CU_ASSERT(recvfrom(s, buf, sizeof(buf), 0, (struct sockaddr *)&from, &flen) > 0);
	sendto(s, bad, sizeof(bad) - 1, 0, (struct sockaddr *)&from, flen);
	sendto(s, good, sizeof(good) - 1, 0, (struct sockaddr *)&from, flen);
	CU_ASSERT_EQUAL(dg_client_recv(c, &reply, 1000, &e), DG_EPARSE);
	CU_ASSERT_PTR_NOT_NULL(strstr(e.message, hp));
	CU_ASSERT_PTR_NOT_NULL(strstr(e.message, "refused (frame 0): base64: hmac-sha256 signature mismatch"));
	CU_ASSERT_PTR_NULL(strstr(e.message, "at byte"));
	CU_ASSERT_EQUAL(dg_client_recv(c, &reply, 1000, &e), DG_OK);
	CU_ASSERT_EQUAL(json_integer_value(json_object_get(reply.json, "ok")), 1);
	json_decref(req.json);
	dg_client_close(c);
	close(s);
}

/* zlib's max_decoded follows the client's max_datagram (16 x 1000): a
 * reply inflating to 20002 bytes is refused, one of 10002 is read. */
static void test_max_decoded_follows_max_datagram(void)
{
	/* zlib level 9 of a JSON string of 20000 and of 10000 'x' */
	static const unsigned char big[] =
		"\x78\xda\xed\xc1\x21\x01\x00\x00\x00\x02\xa0\x2f\xae\x74\xbe\x37\x0c\x40\x0a\x00\x00\x00"
		"\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\xc0\x85\x0c\x67\xb0\xa1\x61";
	static const unsigned char fits[] =
		"\x78\xda\xed\xc1\x01\x09\x00\x00\x00\x02\xa0\x2f\xad\x6c\x7e\x3f\x42\x4d\x01\x00\x00\x00"
		"\x00\x00\x00\x00\x00\xe0\x40\x06\x82\x62\x50\xd3";
	char hp[64], buf[256];
	struct sockaddr_storage from;
	socklen_t flen = sizeof(from);
	int s = server(hp, sizeof(hp));
	struct dg_client_opts o = { .size = sizeof(o), .max_datagram = 1000 };
	struct dg_client *c;
	struct dg_client_error e;
	struct dg_packet req = { .json = json_integer(1) }, reply;

	CU_ASSERT_EQUAL_FATAL(dg_client_open(hp, "{\"payload\": \"json\", \"transforms\": [\"zlib\"]}", &o, &c, &e), 0);
	CU_ASSERT_EQUAL(dg_client_send(c, &req, 1, &e), 0);
	CU_ASSERT(recvfrom(s, buf, sizeof(buf), 0, (struct sockaddr *)&from, &flen) > 0);
	sendto(s, big, sizeof(big) - 1, 0, (struct sockaddr *)&from, flen);
	sendto(s, fits, sizeof(fits) - 1, 0, (struct sockaddr *)&from, flen);
	CU_ASSERT_EQUAL(dg_client_recv(c, &reply, 1000, &e), DG_EPARSE);
	CU_ASSERT_PTR_NOT_NULL(strstr(e.message, "max_decoded"));
	CU_ASSERT_EQUAL(dg_client_recv(c, &reply, 1000, &e), DG_OK);
	CU_ASSERT_EQUAL(json_string_length(reply.json), 10000);
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
	struct dg_client_opts o = { .size = sizeof(o), .timeout_ms = 2000 };
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

/* Receive one request on the fake server s: its text in buf, its source
 * in *from. */
static ssize_t serve_recv(int s, char *buf, size_t len, struct sockaddr_storage *from)
{
	socklen_t flen = sizeof(*from);
	ssize_t n = recvfrom(s, buf, len - 1, 0, (struct sockaddr *)from, &flen);

	buf[n > 0 ? n : 0] = '\0';
	return n;
}

static void serve_send(int s, const char *text, const struct sockaddr_storage *to)
{
	socklen_t tolen = to->ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
	CU_ASSERT_EQUAL(sendto(s, text, strlen(text), 0, (const struct sockaddr *)to, tolen),
	                (ssize_t)strlen(text));
}

/* The answer to a request that timed out arrives while the next request
 * is in flight, sent where the first request came from: the next request
 * must get its own answer, not that one. */
static void test_late_reply_not_next_answer(void)
{
	char hp[64], buf[64];
	struct sockaddr_storage first, second;
	int s = server(hp, sizeof(hp));
	struct dg_client_opts o = { .size = sizeof(o), .timeout_ms = 1000 };
	struct dg_client *c;
	struct dg_client_error e;
	struct dg_packet a = { .data = "a", .len = 1 }, b = { .data = "b", .len = 1 }, reply;

	CU_ASSERT_EQUAL_FATAL(dg_client_open(hp, "raw", &o, &c, &e), 0);
	int fd = dg_client_fd(c);
	CU_ASSERT_EQUAL(dg_client_request(c, &a, &reply, &e), DG_ETIMEDOUT);
	CU_ASSERT_EQUAL(serve_recv(s, buf, sizeof(buf), &first), 1);
	/* The server sees b, then answers a (late) and b. */
	pid_t pid = fork();
	if (pid == 0) {
		if (serve_recv(s, buf, sizeof(buf), &second) == 1 && buf[0] == 'b') {
			serve_send(s, "answer to a", &first);
			serve_send(s, "answer to b", &second);
		}
		_exit(0);
	}
	CU_ASSERT_EQUAL(dg_client_request(c, &b, &reply, &e), DG_OK);
	CU_ASSERT_EQUAL(reply.len, 11);
	CU_ASSERT_EQUAL(memcmp(reply.data, "answer to b", reply.len < 11 ? reply.len : 11), 0);
	CU_ASSERT_EQUAL(dg_client_fd(c), fd); /* a fresh socket, the same number */
	int st;
	CU_ASSERT_EQUAL(waitpid(pid, &st, 0), pid);
	dg_client_close(c);
	close(s);
}

/* A server that answers twice: the second answer is already there when
 * the next request is sent; it is not that request's answer. */
static void test_second_answer_not_next_answer(void)
{
	char hp[64], buf[64];
	struct sockaddr_storage from;
	int s = server(hp, sizeof(hp));
	struct dg_client *c;
	struct dg_client_error e;
	struct dg_packet a = { .data = "a", .len = 1 }, b = { .data = "b", .len = 1 }, reply;

	struct dg_client_opts o = { .size = sizeof(o), .timeout_ms = 5000 };
	CU_ASSERT_EQUAL_FATAL(dg_client_open(hp, "raw", &o, &c, &e), 0);
	CU_ASSERT_EQUAL(dg_client_send(c, &a, 1, &e), 0);
	CU_ASSERT_EQUAL(serve_recv(s, buf, sizeof(buf), &from), 1);
	serve_send(s, "A", &from);
	serve_send(s, "A", &from);
	CU_ASSERT_EQUAL(dg_client_recv(c, &reply, 1000, &e), 0);
	/* Wait (bounded) until the second one is there too. */
	struct pollfd p = { .fd = dg_client_fd(c), .events = POLLIN };
	CU_ASSERT_EQUAL(poll(&p, 1, 2000), 1);
	pid_t pid = fork();
	if (pid == 0) {
		if (serve_recv(s, buf, sizeof(buf), &from) == 1)
			serve_send(s, "B", &from);
		_exit(0);
	}
	CU_ASSERT_EQUAL(dg_client_request(c, &b, &reply, &e), DG_OK);
	CU_ASSERT_EQUAL(reply.len, 1);
	CU_ASSERT_EQUAL(((const char *)reply.data)[0], 'B');
	int st;
	CU_ASSERT_EQUAL(waitpid(pid, &st, 0), pid);
	dg_client_close(c);
	close(s);
}

/* With id_field, an answer to an earlier request that arrives while the
 * next one is in flight is skipped: only the id decides. */
static void test_ids_skip_other_answers(void)
{
	char hp[64], buf[256];
	struct sockaddr_storage from;
	int s = server(hp, sizeof(hp));
	struct dg_client_opts o = { .size = sizeof(o), .timeout_ms = 5000, .id_field = "id" };
	struct dg_client *c;
	struct dg_client_error e;
	struct dg_packet q1 = { .json = json_pack("{si}", "q", 1) }, q2 = { .json = json_pack("{si}", "q", 2) };
	struct dg_packet reply;

	CU_ASSERT_EQUAL_FATAL(dg_client_open(hp, "json", &o, &c, &e), 0);
	pid_t pid = fork();
	if (pid == 0) {
		char first[256];
		/* Echo q1 (with the id the client added); on q2, echo q1 again
		 * first, then q2. */
		if (serve_recv(s, first, sizeof(first), &from) > 0) {
			serve_send(s, first, &from);
			if (serve_recv(s, buf, sizeof(buf), &from) > 0) {
				serve_send(s, first, &from);
				serve_send(s, buf, &from);
			}
		}
		_exit(0);
	}
	CU_ASSERT_EQUAL(dg_client_request(c, &q1, &reply, &e), DG_OK);
	CU_ASSERT_EQUAL(json_integer_value(json_object_get(reply.json, "q")), 1);
	CU_ASSERT_EQUAL(json_integer_value(json_object_get(reply.json, "id")), 1);
	CU_ASSERT_EQUAL(dg_client_request(c, &q2, &reply, &e), DG_OK);
	CU_ASSERT_EQUAL(json_integer_value(json_object_get(reply.json, "q")), 2);
	CU_ASSERT_EQUAL(json_integer_value(json_object_get(reply.json, "id")), 2);
	int st;
	CU_ASSERT_EQUAL(waitpid(pid, &st, 0), pid);
	json_decref(q1.json);
	json_decref(q2.json);
	dg_client_close(c);
	close(s);
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
	struct dg_aclient_opts o = { .size = sizeof(o), .timeout_ms = 5000, .id_field = id_field,
	                             .rcvbuf = 4 << 20 };
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
	struct dg_aclient_opts o = { .size = sizeof(o), .timeout_ms = 100 };
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

/* ---- options structs of other sizes ---------------------------------------- */

/* A program built against an older <dgramd/client.h>, whose struct ends
 * before id_field (and, the second time, before max_datagram): what its
 * struct lacks is not read (the bytes after it are set here, as whatever
 * follows a caller's struct may be) and has its default. */
static void test_opts_older_caller(void)
{
	char hp[64], buf[256];
	struct sockaddr_storage from;
	int s = server(hp, sizeof(hp));
	struct dg_client_opts o = { .size = offsetof(struct dg_client_opts, id_field),
	                            .timeout_ms = 50, .max_datagram = 8, .id_field = "id" };
	struct dg_client *c;
	struct dg_client_error e;
	struct dg_packet req = { .json = json_pack("{ss}", "q", "a question longer than 8 bytes") };
	struct dg_packet reply;

	CU_ASSERT_FATAL(req.json != NULL);
	CU_ASSERT_EQUAL_FATAL(dg_client_open(hp, "json", &o, &c, &e), DG_OK);
	/* max_datagram (inside the old struct) is 8: the request is too big */
	CU_ASSERT_EQUAL(dg_client_request(c, &req, &reply, &e), DG_E2BIG);
	dg_client_close(c);

	o.size = offsetof(struct dg_client_opts, max_datagram);
	CU_ASSERT_EQUAL_FATAL(dg_client_open(hp, "json", &o, &c, &e), DG_OK);
	/* max_datagram 65507 and no id_field: sent as it is, without an id;
	 * timeout_ms (inside) is 50: no answer, DG_ETIMEDOUT soon */
	CU_ASSERT_EQUAL(dg_client_request(c, &req, &reply, &e), DG_ETIMEDOUT);
	CU_ASSERT(serve_recv(s, buf, sizeof(buf), &from) > 0);
	CU_ASSERT_STRING_EQUAL(buf, "{\"q\":\"a question longer than 8 bytes\"}");
	CU_ASSERT_PTR_NOT_NULL(strstr(e.message, "50 ms"));
	dg_client_close(c);

	/* the whole struct: the id is added */
	o.size = sizeof(o);
	o.max_datagram = 0;
	CU_ASSERT_EQUAL_FATAL(dg_client_open(hp, "json", &o, &c, &e), DG_OK);
	CU_ASSERT_EQUAL(dg_client_request(c, &req, &reply, &e), DG_ETIMEDOUT);
	CU_ASSERT(serve_recv(s, buf, sizeof(buf), &from) > 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(buf, "\"id\":1"));
	dg_client_close(c);
	drain(s);
	json_decref(req.json);
	close(s);
}

/* The asynchronous client's struct, from a program built before id_field:
 * arrival order, no id added. */
static void test_aopts_older_caller(void)
{
	char hp[64], buf[256];
	struct sockaddr_storage from;
	int s = server(hp, sizeof(hp));
	struct event_base *base = event_base_new();
	struct dg_aclient_opts o = { .size = offsetof(struct dg_aclient_opts, id_field),
	                             .timeout_ms = 5000, .id_field = "id" };
	struct dg_aclient *ac;
	struct dg_client_error e;
	struct dg_packet p = { .json = json_pack("{si}", "q", 7) };
	int st = 1;

	CU_ASSERT_FATAL(base && p.json);
	CU_ASSERT_EQUAL_FATAL(dg_aclient_new(base, hp, "json", &o, &ac, &e), DG_OK);
	CU_ASSERT_EQUAL(dg_aclient_request(ac, &p, on_cancel, &st, &e), DG_OK);
	CU_ASSERT(serve_recv(s, buf, sizeof(buf), &from) > 0);
	CU_ASSERT_STRING_EQUAL(buf, "{\"q\":7}");
	serve_send(s, "{\"a\":1}", &from); /* arrival order: this answers it */
	for (int i = 0; i < 100 && st == 1; i++)
		event_base_loop(base, EVLOOP_ONCE); /* bounded: the reply is there */
	CU_ASSERT_EQUAL(st, DG_OK);
	dg_aclient_free(ac);
	json_decref(p.json);
	event_base_free(base);
	close(s);
}

/* Sizes the library cannot read: 0 (not initialised), absurd, or a newer
 * program's struct with an option this library does not know set. A newer
 * struct whose extra bytes are 0 is fine. */
static void test_opts_sizes(void)
{
	struct newer {
		struct dg_client_opts o;
		uint64_t later; /* an option of a later libdgramd */
	} n = { .o = DG_CLIENT_OPTS_INIT, .later = 0 };
	struct dg_aclient_opts ao = DG_ACLIENT_OPTS_INIT;
	struct dg_client_opts zero = { .timeout_ms = 100 };
	struct event_base *base = event_base_new();
	struct dg_aclient *ac;
	struct dg_client *c;
	struct dg_client_error e;

	CU_ASSERT_FATAL(base != NULL);
	CU_ASSERT_EQUAL(ao.size, sizeof(ao));
	CU_ASSERT_EQUAL(dg_client_open("127.0.0.1:9", "json", &zero, &c, &e), DG_EINVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(e.message, "struct dg_client_opts: size 0 is not"));
	CU_ASSERT_PTR_NOT_NULL(strstr(e.message, "DG_CLIENT_OPTS_INIT"));
	zero.size = 1 << 20;
	CU_ASSERT_EQUAL(dg_client_open("127.0.0.1:9", "json", &zero, &c, &e), DG_EINVAL);

	n.o.size = sizeof(n);
	CU_ASSERT_EQUAL(dg_client_open("127.0.0.1:9", "json", &n.o, &c, &e), DG_OK);
	dg_client_close(c);
	n.later = 1;
	CU_ASSERT_EQUAL(dg_client_open("127.0.0.1:9", "json", &n.o, &c, &e), DG_EINVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(e.message, "an option of a newer libdgramd"));

	ao.size = 0;
	CU_ASSERT_EQUAL(dg_aclient_new(base, "127.0.0.1:9", "json", &ao, &ac, &e), DG_EINVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(e.message, "DG_ACLIENT_OPTS_INIT"));
	ao.size = sizeof(ao);
	CU_ASSERT_EQUAL(dg_aclient_new(base, "127.0.0.1:9", "json", &ao, &ac, &e), DG_OK);
	dg_aclient_free(ac);
	event_base_free(base);
}

/* ---- asynchronous client against a fake server --------------------------- */

/* The fake server, on the client's event base. Requests are one letter:
 * it remembers where each came from and answers as the test says. */
struct fake {
	int s;
	struct sockaddr_storage from[8];
	bool seen[8];
	void (*on_request)(struct fake *f, unsigned i);
	unsigned requests;
};

static void fake_readable(evutil_socket_t fd, short what, void *arg)
{
	struct fake *f = arg;
	char buf[256];
	struct sockaddr_storage from;
	(void)fd, (void)what;

	while (recvfrom(f->s, buf, 0, MSG_DONTWAIT | MSG_PEEK, NULL, NULL) >= 0) {
		ssize_t n = serve_recv(f->s, buf, sizeof(buf), &from);
		const char *letter = strchr(buf, '"');
		unsigned i = letter && letter[1] >= 'a' && letter[1] < 'a' + 8 ? (unsigned)(letter[1] - 'a') : 0;
		if (n <= 0)
			break;
		f->from[i] = from;
		f->seen[i] = true;
		f->requests++;
		if (f->on_request)
			f->on_request(f, i);
	}
}

struct outcome {
	int status;          /* 1: not yet */
	char reply[64];
};

static void on_outcome(void *arg, int status, const struct dg_packet *reply,
                       const struct dg_client_error *err)
{
	struct outcome *o = arg;
	(void)err;
	o->status = status;
	if (reply && reply->json)
		json_dumpb(reply->json, o->reply, sizeof(o->reply) - 1, JSON_COMPACT | JSON_ENCODE_ANY);
}

/* Run base until every outcome is in (bounded by limit_ms). */
static void run_until(struct event_base *base, struct outcome *o, unsigned n, unsigned limit_ms)
{
	double deadline = dg_now_ms() + limit_ms;
	for (;;) {
		unsigned done = 0;
		for (unsigned i = 0; i < n; i++)
			done += o[i].status != 1;
		if (done == n || dg_now_ms() > deadline)
			return;
		struct timeval tv = { .tv_sec = 0, .tv_usec = 100000 };
		event_base_loopexit(base, &tv);
		event_base_dispatch(base);
	}
}

static void answer_late_a_then_b(struct fake *f, unsigned i)
{
	if (i != 1)
		return; /* "a" is never answered in time */
	serve_send(f->s, "\"answer to a\"", &f->from[0]);
	serve_send(f->s, "\"answer to b\"", &f->from[1]);
}

/* Arrival order: a times out; its answer comes while b is in flight, to
 * the port a was sent from. b gets its own answer. */
static void test_async_late_reply_arrival(void)
{
	char hp[64];
	struct fake f = { .on_request = answer_late_a_then_b };
	struct event_base *base = event_base_new();
	struct dg_aclient_opts o = { .size = sizeof(o), .timeout_ms = 300 };
	struct dg_aclient *ac;
	struct dg_client_error e;
	struct dg_packet a = { .json = json_string("a") }, b = { .json = json_string("b") };
	struct outcome out[2] = { { .status = 1 }, { .status = 1 } };

	f.s = server(hp, sizeof(hp));
	struct event *ev = event_new(base, f.s, EV_READ | EV_PERSIST, fake_readable, &f);
	event_add(ev, NULL);
	CU_ASSERT_EQUAL_FATAL(dg_aclient_new(base, hp, "json", &o, &ac, &e), 0);
	CU_ASSERT_EQUAL(dg_aclient_request(ac, &a, on_outcome, &out[0], &e), 0);
	run_until(base, out, 1, 5000);
	CU_ASSERT_EQUAL(out[0].status, DG_ETIMEDOUT);
	CU_ASSERT_EQUAL(dg_aclient_request(ac, &b, on_outcome, &out[1], &e), 0);
	run_until(base, out, 2, 5000);
	CU_ASSERT_EQUAL(out[1].status, DG_OK);
	CU_ASSERT_STRING_EQUAL(out[1].reply, "\"answer to b\"");
	dg_aclient_free(ac);
	event_free(ev);
	event_base_free(base);
	json_decref(a.json);
	json_decref(b.json);
	close(f.s);
}

static void answer_after_a_timed_out(struct fake *f, unsigned i)
{
	(void)f, (void)i; /* answers come from the test, once a timed out */
}

/* Arrival order, a and b in flight together; a times out, then the server
 * answers a and b. Whose is which can no longer be told: b must not get
 * a's answer (it ends with its own timeout). */
static void test_async_pipelined_after_timeout(void)
{
	char hp[64];
	struct fake f = { .on_request = answer_after_a_timed_out };
	struct event_base *base = event_base_new();
	struct dg_aclient_opts o = { .size = sizeof(o), .timeout_ms = 300 };
	struct dg_aclient *ac;
	struct dg_client_error e;
	struct dg_packet a = { .json = json_string("a") }, b = { .json = json_string("b") };
	struct outcome out[2] = { { .status = 1 }, { .status = 1 } };
	struct timeval gap = { .tv_sec = 0, .tv_usec = 100000 };

	f.s = server(hp, sizeof(hp));
	struct event *ev = event_new(base, f.s, EV_READ | EV_PERSIST, fake_readable, &f);
	event_add(ev, NULL);
	CU_ASSERT_EQUAL_FATAL(dg_aclient_new(base, hp, "json", &o, &ac, &e), 0);
	CU_ASSERT_EQUAL(dg_aclient_request(ac, &a, on_outcome, &out[0], &e), 0);
	/* b is sent 100 ms after a (the loop runs meanwhile), so it is still
	 * in flight when a times out. */
	event_base_loopexit(base, &gap);
	event_base_dispatch(base);
	CU_ASSERT_EQUAL(dg_aclient_request(ac, &b, on_outcome, &out[1], &e), 0);
	run_until(base, out, 1, 5000);
	CU_ASSERT_EQUAL(out[0].status, DG_ETIMEDOUT);
	CU_ASSERT_EQUAL(f.requests, 2);
	if (out[1].status == 1) {
		serve_send(f.s, "\"answer to a\"", &f.from[0]);
		serve_send(f.s, "\"answer to b\"", &f.from[1]);
	}
	run_until(base, out, 2, 5000);
	CU_ASSERT(out[1].status == DG_ETIMEDOUT || !strcmp(out[1].reply, "\"answer to b\""));
	CU_ASSERT_STRING_NOT_EQUAL(out[1].reply, "\"answer to a\"");
	dg_aclient_free(ac);
	event_free(ev);
	event_base_free(base);
	json_decref(a.json);
	json_decref(b.json);
	close(f.s);
}

static void answer_noise_then_echo(struct fake *f, unsigned i)
{
	(void)i;
	/* A reply without the id member, one with an unknown id, then the
	 * echo of the request (its id included). */
	serve_send(f->s, "{\"n\":\"a\"}", &f->from[0]);
	serve_send(f->s, "{\"n\":\"a\",\"id\":99}", &f->from[0]);
	serve_send(f->s, "{\"n\":\"a\",\"id\":1}", &f->from[0]);
}

/* With ids, only the id decides: a reply without one, or with an unknown
 * one, answers nothing. */
static void test_async_ids_only(void)
{
	char hp[64];
	struct fake f = { .on_request = answer_noise_then_echo };
	struct event_base *base = event_base_new();
	struct dg_aclient_opts o = { .size = sizeof(o), .timeout_ms = 2000, .id_field = "id" };
	struct dg_aclient *ac;
	struct dg_client_error e;
	struct dg_packet a = { .json = json_pack("{ss}", "n", "a") };
	struct outcome out[1] = { { .status = 1 } };

	f.s = server(hp, sizeof(hp));
	struct event *ev = event_new(base, f.s, EV_READ | EV_PERSIST, fake_readable, &f);
	event_add(ev, NULL);
	CU_ASSERT_EQUAL_FATAL(dg_aclient_new(base, hp, "json", &o, &ac, &e), 0);
	CU_ASSERT_EQUAL(dg_aclient_request(ac, &a, on_outcome, &out[0], &e), 0);
	run_until(base, out, 1, 5000);
	CU_ASSERT_EQUAL(out[0].status, DG_OK);
	CU_ASSERT_STRING_EQUAL(out[0].reply, "{\"n\":\"a\",\"id\":1}");
	dg_aclient_free(ac);
	event_free(ev);
	event_base_free(base);
	json_decref(a.json);
	close(f.s);
}

/* 100 requests queued to a closed port: each gets its own ICMP error
 * (DG_ENET), none is refused at send for an earlier one's, none times
 * out. In both matching modes. */
static void closed_port(const char *id_field)
{
	enum { N = 100 };
	char hp[64];
	int s = server(hp, sizeof(hp));
	struct event_base *base = event_base_new();
	struct dg_aclient_opts o = { .size = sizeof(o), .timeout_ms = 5000, .id_field = id_field };
	struct dg_aclient *ac;
	struct dg_client_error e;
	struct outcome out[N];
	unsigned sent = 0, enet = 0, other = 0;

	close(s); /* nothing listens there now */
	CU_ASSERT_EQUAL_FATAL(dg_aclient_new(base, hp, "json", &o, &ac, &e), 0);
	for (unsigned i = 0; i < N; i++) {
		struct dg_packet p = { .json = json_pack("{si}", "n", (int)i) };
		out[i].status = 1;
		if (dg_aclient_request(ac, &p, on_outcome, &out[i], &e) == 0)
			sent++;
		else
			out[i].status = e.code;
		json_decref(p.json);
	}
	run_until(base, out, N, 10000);
	for (unsigned i = 0; i < N; i++) {
		enet += out[i].status == DG_ENET;
		other += out[i].status != DG_ENET;
	}
	fprintf(stderr, "closed port (%s): %u sent, %u DG_ENET, %u other\n",
	        id_field ? "ids" : "arrival order", sent, enet, other);
	CU_ASSERT_EQUAL(sent, N);
	CU_ASSERT_EQUAL(enet, N);
	CU_ASSERT_EQUAL(dg_aclient_pending(ac), 0);
	dg_aclient_free(ac);
	event_base_free(base);
}

static void test_async_closed_port(void)
{
	closed_port(NULL);
	closed_port("id");
}

static const struct dg_test client_tests[] = {
	{ "timeout and retries", test_timeout_and_retries },
	{ "parse error then a good packet", test_parse_error_then_good },
	{ "a signature mismatch is refused by name, then a good packet", test_signature_mismatch },
	{ "zlib's max_decoded follows max_datagram", test_max_decoded_follows_max_datagram },
	{ "ICMP refused then recovery", test_icmp_refused_then_recovery },
	{ "length-prefixed frames", test_frames },
	{ "open errors", test_open_errors },
	{ "async: 1000 in flight", test_async_1000 },
	{ "async: timeout and cancel", test_async_timeout_and_cancel },
	{ "a late reply is not the next request's answer", test_late_reply_not_next_answer },
	{ "a second answer is not the next request's answer", test_second_answer_not_next_answer },
	{ "ids: answers to other requests are skipped", test_ids_skip_other_answers },
	{ "async, arrival order: a late reply is not the next answer", test_async_late_reply_arrival },
	{ "async, arrival order: pipelined requests after a timeout", test_async_pipelined_after_timeout },
	{ "async, ids: only the id decides", test_async_ids_only },
	{ "async: 100 requests to a closed port, each its own error", test_async_closed_port },
	{ "options of an older caller: defaults for what it lacks", test_opts_older_caller },
	{ "async options of an older caller", test_aopts_older_caller },
	{ "options sizes refused and accepted", test_opts_sizes },
	{ NULL, NULL },
};

DG_TEST_MAIN("client", client_tests)
