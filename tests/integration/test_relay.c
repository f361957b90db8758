/* relay against a hostile upstream that lives in this test, on loopback: it
 * answers some requests twice, some with two datagrams, and some only after
 * the relay gave up on them, and it sends every stray datagram to the
 * address the request came from while other requests are in flight. Many
 * clients (each from its own 127.0.1.x address) send distinct payloads; no
 * client may ever see a byte of another request's answer. */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testutil.h"

#define CLIENTS 16
#define ROUNDS 40
#define STALE_MAX 64
#define TIMEOUT_ERR "{\"error\":\"upstream timeout\"}"

/* What the upstream does with request n of a client. */
enum mode { ANSWER_TWICE, TWO_DATAGRAMS, ANSWER_LATE, ANSWER_ONCE };

static enum mode mode_of(unsigned n)
{
	static const enum mode table[10] = {
		ANSWER_TWICE, TWO_DATAGRAMS, ANSWER_TWICE, TWO_DATAGRAMS, ANSWER_TWICE,
		TWO_DATAGRAMS, ANSWER_TWICE, ANSWER_ONCE, TWO_DATAGRAMS, ANSWER_TWICE,
	};
	return n % 20 == 13 ? ANSWER_LATE : table[n % 10];
}

/* A datagram the upstream still owes (or pretends to owe) to an address. */
struct stray {
	struct sockaddr_in to;
	char text[256];
};

struct upstream {
	int fd;
	struct sockaddr_in addr;
	struct stray stale[STALE_MAX]; /* sent before the next request is answered */
	unsigned n_stale;
	struct stray late[CLIENTS];    /* per client: sent once the client saw its timeout */
	bool has_late[CLIENTS];
	unsigned requests, strays_sent;
};

static void up_send(struct upstream *u, const struct sockaddr_in *to, const char *text)
{
	CU_ASSERT_EQUAL(sendto(u->fd, text, strlen(text), 0, (const struct sockaddr *)to, sizeof(*to)),
	                (ssize_t)strlen(text));
}

static void remember(struct upstream *u, const struct sockaddr_in *to, const char *text)
{
	if (u->n_stale == STALE_MAX)
		return;
	u->stale[u->n_stale].to = *to;
	snprintf(u->stale[u->n_stale].text, sizeof(u->stale[0].text), "%s", text);
	u->n_stale++;
}

/* One request arrived: first every stray datagram it owes (to the source
 * ports of earlier requests, which the relay may be reusing right now),
 * then this request's own answer as its mode says. */
static void up_serve(struct upstream *u)
{
	char buf[256], part2[128];
	struct sockaddr_in from;
	socklen_t flen = sizeof(from);
	unsigned c, n;

	ssize_t len = recvfrom(u->fd, buf, sizeof(buf) - 1, MSG_DONTWAIT, (struct sockaddr *)&from, &flen);
	if (len <= 0)
		return;
	buf[len] = '\0';
	u->requests++;
	for (unsigned i = 0; i < u->n_stale; i++)
		up_send(u, &u->stale[i].to, u->stale[i].text);
	u->strays_sent += u->n_stale;
	u->n_stale = 0;
	CU_ASSERT_EQUAL_FATAL(sscanf(buf, "{\"c\":%u,\"n\":%u}", &c, &n), 2);
	CU_ASSERT_FATAL(c < CLIENTS);
	snprintf(part2, sizeof(part2), "{\"c\":%u,\"n\":%u,\"part\":2}", c, n);
	switch (mode_of(n)) {
	case ANSWER_TWICE:
		up_send(u, &from, buf);
		remember(u, &from, buf);
		break;
	case TWO_DATAGRAMS:
		up_send(u, &from, buf);
		up_send(u, &from, part2);
		remember(u, &from, part2);
		break;
	case ANSWER_LATE:
		u->late[c].to = from;
		snprintf(u->late[c].text, sizeof(u->late[c].text), "%s", buf);
		u->has_late[c] = true;
		break;
	case ANSWER_ONCE:
		up_send(u, &from, buf);
		break;
	}
}

static bool upstream_open(struct upstream *u)
{
	socklen_t len = sizeof(u->addr);

	memset(u, 0, sizeof(*u));
	u->addr.sin_family = AF_INET;
	u->addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	u->fd = socket(AF_INET, SOCK_DGRAM, 0);
	return u->fd >= 0 && bind(u->fd, (struct sockaddr *)&u->addr, len) == 0 &&
	       getsockname(u->fd, (struct sockaddr *)&u->addr, &len) == 0;
}

/* A client socket bound to 127.0.1.(c + 1): every client is its own peer. */
static int client_open(unsigned c)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	int fd = socket(AF_INET, SOCK_DGRAM, 0);

	a.sin_addr.s_addr = htonl(0x7f000101u + c);
	if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0)
		return fd;
	if (fd >= 0)
		close(fd);
	return -1;
}

static char *relay_conf(const struct upstream *u, unsigned timeout_ms, unsigned max_inflight)
{
	static char buf[1024];

	snprintf(buf, sizeof(buf), "{\"shutdown_timeout_ms\": 2000, \"listeners\": [{\"name\": \"t\", "
	         "\"bind\": \"127.0.0.1:0\", \"codec\": \"json\", \"handler\": {\"plugin\": \"relay\", "
	         "\"config\": {\"upstream\": \"127.0.0.1:%u\", \"timeout_ms\": %u, \"max_inflight\": %u}}}]}",
	         ntohs(u->addr.sin_port), timeout_ms, max_inflight);
	return buf;
}

struct run {
	int fd[CLIENTS];
	unsigned sent[CLIENTS];  /* requests sent so far (the last one is in flight) */
	unsigned got[CLIENTS];   /* replies received */
	unsigned rounds;         /* requests per client */
	unsigned right, wrong, timeouts;
	unsigned slow;           /* answered in time by the upstream, but the
	                            machine was too busy: the relay's timeout
	                            error, not another's data */
};

static void client_send(struct run *run, struct dg_daemon *d, unsigned c)
{
	char text[64];

	snprintf(text, sizeof(text), "{\"c\":%u,\"n\":%u}", c, run->sent[c]);
	CU_ASSERT_EQUAL(sendto(run->fd[c], text, strlen(text), 0, (struct sockaddr *)&d->addr[0],
	                       d->addrlen[0]), (ssize_t)strlen(text));
	run->sent[c]++;
}

/* A reply for client c: it must be the answer to c's request in flight,
 * exactly (or the relay's timeout error for a request answered late). */
static void client_reply(struct run *run, struct upstream *u, struct dg_daemon *d, unsigned c)
{
	char buf[256], want[64];
	ssize_t len = recv(run->fd[c], buf, sizeof(buf) - 1, MSG_DONTWAIT);
	unsigned n = run->sent[c] - 1;

	if (len < 0)
		return;
	buf[len] = '\0';
	if (run->got[c] == run->sent[c]) {
		fprintf(stderr, "client %u: unexpected extra datagram %s\n", c, buf);
		run->wrong++;
		return;
	}
	run->got[c]++;
	bool late = mode_of(n) == ANSWER_LATE && n < run->rounds;
	if (late)
		snprintf(want, sizeof(want), TIMEOUT_ERR);
	else
		snprintf(want, sizeof(want), "{\"c\":%u,\"n\":%u}", c, n);
	if (!strcmp(buf, want)) {
		run->right++;
	} else if (!late && !strcmp(buf, TIMEOUT_ERR)) {
		run->slow++;
	} else {
		fprintf(stderr, "client %u request %u: expected %s, got %s\n", c, n, want, buf);
		run->wrong++;
	}
	if (late && u->has_late[c]) {
		/* The relay gave up on it: now the answer comes, to the port the
		 * request came from. */
		up_send(u, &u->late[c].to, u->late[c].text);
		u->strays_sent++;
		u->has_late[c] = false;
		run->timeouts++;
	}
	if (run->sent[c] <= run->rounds)
		client_send(run, d, c);
}

/* Every client sends rounds requests one after the other, then one more
 * answered normally: a stray datagram still queued for a client would come
 * before that last answer and be caught. */
static void exchange(struct run *run, struct upstream *u, struct dg_daemon *d, double limit_ms)
{
	struct pollfd p[CLIENTS + 1];
	double deadline = dg_now_ms() + limit_ms;
	unsigned done = 0;

	for (unsigned c = 0; c < CLIENTS; c++)
		client_send(run, d, c);
	while (done < CLIENTS && dg_now_ms() < deadline) {
		for (unsigned c = 0; c < CLIENTS; c++)
			p[c] = (struct pollfd){ .fd = run->fd[c], .events = POLLIN };
		p[CLIENTS] = (struct pollfd){ .fd = u->fd, .events = POLLIN };
		if (poll(p, CLIENTS + 1, 200) < 0 && errno != EINTR)
			break;
		if (p[CLIENTS].revents & POLLIN)
			up_serve(u);
		for (unsigned c = 0; c < CLIENTS; c++)
			if (p[c].revents & POLLIN)
				client_reply(run, u, d, c);
		done = 0;
		for (unsigned c = 0; c < CLIENTS; c++)
			done += run->got[c] == run->rounds + 1;
	}
}

static void test_hostile_upstream(void)
{
	struct upstream u;
	struct dg_daemon d;
	struct run run = { .rounds = ROUNDS };

	CU_ASSERT_FATAL(upstream_open(&u));
	/* Eight requests at the upstream at once, the other eight wait: a socket
	 * (or a slot) goes straight from one request to the next. */
	CU_ASSERT_FATAL(dg_daemon_start(&d, relay_conf(&u, 300, CLIENTS / 2), NULL));
	for (unsigned c = 0; c < CLIENTS; c++) {
		run.fd[c] = client_open(c);
		CU_ASSERT_FATAL(run.fd[c] >= 0);
	}
	double t0 = dg_now_ms();
	exchange(&run, &u, &d, 30000);
	fprintf(stderr, "hostile upstream: %u right, %u wrong, %u timed out on a busy machine, %u late "
	        "answers, %u stray datagrams sent, %u requests in %.0f ms\n", run.right, run.wrong,
	        run.slow, run.timeouts, u.strays_sent, u.requests, dg_now_ms() - t0);
	CU_ASSERT_EQUAL(run.wrong, 0);
	CU_ASSERT_EQUAL(run.right + run.slow, CLIENTS * (ROUNDS + 1));
	CU_ASSERT(run.right > CLIENTS * ROUNDS / 2);
	CU_ASSERT(run.timeouts > 0);
	CU_ASSERT(u.strays_sent >= CLIENTS * ROUNDS / 2);
	for (unsigned c = 0; c < CLIENTS; c++)
		close(run.fd[c]);
	dg_daemon_stop_checked(&d, "t");
	CU_ASSERT_EQUAL(dg_daemon_stat(&d, "t", "tx"), CLIENTS * (ROUNDS + 1));
	close(u.fd);
}

/* The server gives up first (handler_timeout_ms below the relay's
 * timeout_ms): on_timeout frees the request's slot, the next requests go
 * out, and the answers to the abandoned ones, sent while the next ones are
 * in flight, reach nobody. */
static void test_server_timeout(void)
{
	enum { N = 4 };
	struct upstream u;
	struct dg_daemon d;
	struct sockaddr_in first[N];
	int fd[N];
	unsigned asked = 0, right = 0, wrong = 0, answered[N] = { 0 };
	char conf[1024], buf[256], want[64];

	CU_ASSERT_FATAL(upstream_open(&u));
	snprintf(conf, sizeof(conf), "{\"shutdown_timeout_ms\": 2000, \"listeners\": [{\"name\": \"t\", "
	         "\"bind\": \"127.0.0.1:0\", \"codec\": \"json\", \"handler_timeout_ms\": 1000, "
	         "\"handler\": {\"plugin\": \"relay\", \"config\": {\"upstream\": \"127.0.0.1:%u\", "
	         "\"timeout_ms\": 60000, \"max_inflight\": 2}}}]}", ntohs(u.addr.sin_port));
	CU_ASSERT_FATAL(dg_daemon_start(&d, conf, NULL));
	/* Each client sends two requests at once: the second waits in the
	 * server's peer queue until the first has timed out. */
	for (unsigned c = 0; c < N; c++) {
		fd[c] = client_open(c);
		CU_ASSERT_FATAL(fd[c] >= 0);
		for (unsigned n = 0; n < 2; n++) {
			snprintf(buf, sizeof(buf), "{\"c\":%u,\"n\":%u}", c, n);
			CU_ASSERT_EQUAL(sendto(fd[c], buf, strlen(buf), 0, (struct sockaddr *)&d.addr[0],
			                       d.addrlen[0]), (ssize_t)strlen(buf));
		}
	}
	double deadline = dg_now_ms() + 10000;
	while (right + wrong < N && dg_now_ms() < deadline) {
		struct pollfd p[N + 1];
		for (unsigned c = 0; c < N; c++)
			p[c] = (struct pollfd){ .fd = fd[c], .events = POLLIN };
		p[N] = (struct pollfd){ .fd = u.fd, .events = POLLIN };
		if (poll(p, N + 1, 200) <= 0)
			continue;
		struct sockaddr_in from;
		socklen_t flen = sizeof(from);
		ssize_t len = (p[N].revents & POLLIN) ? recvfrom(u.fd, buf, sizeof(buf) - 1, 0,
		                                                 (struct sockaddr *)&from, &flen) : -1;
		unsigned c, n;
		if (len > 0) {
			buf[len] = '\0';
			asked++;
			CU_ASSERT_FATAL(sscanf(buf, "{\"c\":%u,\"n\":%u}", &c, &n) == 2 && c < N && n < 2);
			if (n == 0) {
				first[c] = from; /* never answered in time */
			} else {
				/* The answer to the first request, to its port, now
				 * that the second is in flight; then the second's. */
				snprintf(want, sizeof(want), "{\"c\":%u,\"n\":0}", c);
				up_send(&u, &first[c], want);
				up_send(&u, &from, buf);
			}
		}
		for (c = 0; c < N; c++) {
			if (!(p[c].revents & POLLIN) || (len = recv(fd[c], buf, sizeof(buf) - 1, 0)) < 0)
				continue;
			buf[len] = '\0';
			snprintf(want, sizeof(want), "{\"c\":%u,\"n\":1}", c);
			answered[c]++;
			if (strcmp(buf, want) || answered[c] > 1) {
				fprintf(stderr, "client %u: expected %s once, got %s\n", c, want, buf);
				wrong++;
			} else {
				right++;
			}
		}
	}
	CU_ASSERT_EQUAL(asked, 2 * N);
	CU_ASSERT_EQUAL(right, N);
	CU_ASSERT_EQUAL(wrong, 0);
	for (unsigned c = 0; c < N; c++)
		close(fd[c]);
	dg_daemon_stop_checked(&d, "t");
	CU_ASSERT_EQUAL(dg_daemon_stat(&d, "t", "timeouts"), N);
	CU_ASSERT_EQUAL(dg_daemon_stat(&d, "t", "tx"), N);
	close(u.fd);
}

static const struct dg_test relay_tests[] = {
	{ "hostile upstream: duplicates, split and late answers", test_hostile_upstream },
	{ "server timeouts free the slot, late answers reach nobody", test_server_timeout },
	{ NULL, NULL },
};

DG_TEST_MAIN("relay", relay_tests)
