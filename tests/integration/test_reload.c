/* Integration: reload on SIGHUP. A bad config keeps the old one serving; a
 * good one changes plugin configs, codecs and limits, adds and removes
 * listeners (workers: 1 and 2); a closed-loop client loses nothing while
 * the daemon reloads ten times. Every wait is for a log line, a ready file
 * or an answer, with a deadline. */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conf.h"
#include "testutil.h"
#include "waitfor.h"

/* Wait up to 15 s until the log has at least n lines containing needle. */
static bool wait_log(const struct dg_daemon *d, const char *needle, unsigned n)
{
	double deadline = dg_now_ms() + 15000;

	do {
		char *log = dg_daemon_log(d);
		unsigned have = log ? dg_count_lines(log, needle) : 0;
		free(log);
		if (have >= n)
			return true;
		poll(NULL, 0, 10);
	} while (dg_now_ms() < deadline);
	fprintf(stderr, "no %u lines with '%s' in the log\n", n, needle);
	return false;
}

/* The address of listener name in the ready file; false if absent. */
static bool ready_addr(const struct dg_daemon *d, const char *name, struct sockaddr_storage *ss,
                       socklen_t *len)
{
	FILE *f = fopen(d->ready, "r");
	char line[512];
	size_t nl = strlen(name);
	bool found = false;

	while (f && !found && fgets(line, sizeof(line), f)) {
		struct dg_addr a;
		line[strcspn(line, "\n")] = '\0';
		if (strncmp(line, name, nl) || line[nl] != ' ' || !dg_addr_parse(line + nl + 1, &a))
			continue;
		*ss = a.ss;
		*len = a.len;
		found = true;
	}
	if (f)
		fclose(f);
	return found;
}

/* Ask listener name one question; the answer, or "" after timeout_ms. */
static const char *ask(const struct dg_daemon *d, const char *name, const char *req,
                       unsigned timeout_ms)
{
	static char buf[2048];
	struct sockaddr_storage ss;
	socklen_t len;

	buf[0] = '\0';
	if (!ready_addr(d, name, &ss, &len))
		return "(not in the ready file)";
	int fd = dg_udp_client(&ss, timeout_ms);
	ssize_t n = dg_udp_ask(fd, &ss, len, req, strlen(req), buf, sizeof(buf) - 1);
	buf[n > 0 ? n : 0] = '\0';
	close(fd);
	return buf;
}

static void write_conf(const char *path, const char *text)
{
	char tmp[4200];

	/* Atomically, as an operator's editor or config tool would. */
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	FILE *f = fopen(tmp, "w");
	CU_ASSERT_FATAL(f != NULL);
	fputs(text, f);
	CU_ASSERT_FATAL(fclose(f) == 0 && rename(tmp, path) == 0);
}

static bool start(struct dg_daemon *d, char *path, size_t len, const char *name, const char *text)
{
	snprintf(path, len, "%s", dg_test_write(name, text));
	const char *args[] = { "-c", path, NULL }; /* the last -c wins */
	return dg_daemon_start(d, text, args);
}

/* A bad config is logged with its file and key path, and the old one keeps
 * serving: a dgramd key first, then a plugin's. */
static void test_bad_config(void)
{
	struct dg_daemon d;
	char path[4096];

	CU_ASSERT_FATAL(start(&d, path, sizeof(path), "bad.json", "{\"listeners\": [{\"name\": \"e\", "
	        "\"bind\": \"127.0.0.1:0\", \"codec\": \"json\", \"handler\": {\"plugin\": \"echo\", "
	        "\"config\": {\"wrap\": \"a\"}}}]}"));
	CU_ASSERT_STRING_EQUAL(ask(&d, "e", "{\"x\":1}", 5000), "{\"a\":{\"x\":1}}");

	write_conf(path, "{\"listeners\": [{\"name\": \"e\", \"bind\": \"127.0.0.1:0\", "
	           "\"max_datagram\": -5, \"handler\": \"echo\"}]}");
	kill(d.pid, SIGHUP);
	CU_ASSERT(wait_log(&d, "reload: failed; generation 1 keeps serving", 1));
	char *log = dg_daemon_log(&d);
	CU_ASSERT_PTR_NOT_NULL(strstr(log, "bad.json: listeners[0].max_datagram:"));
	free(log);
	CU_ASSERT_STRING_EQUAL(ask(&d, "e", "{\"x\":2}", 5000), "{\"a\":{\"x\":2}}");

	write_conf(path, "{\"listeners\": [{\"name\": \"e\", \"bind\": \"127.0.0.1:0\", "
	           "\"handler\": {\"plugin\": \"echo\", \"config\": {\"prefixx\": \"b\"}}}]}");
	kill(d.pid, SIGHUP);
	CU_ASSERT(wait_log(&d, "reload: failed; generation 1 keeps serving", 2));
	log = dg_daemon_log(&d);
	CU_ASSERT_PTR_NOT_NULL(strstr(log, "bad.json: listeners[0].handler.config.prefixx: unknown key "
	                                   "(did you mean 'prefix'?)"));
	free(log);
	CU_ASSERT_STRING_EQUAL(ask(&d, "e", "{\"x\":3}", 5000), "{\"a\":{\"x\":3}}");
	dg_daemon_stop_checked(&d, "e");
	CU_ASSERT_EQUAL(dg_daemon_stat(&d, "e", "handled"), 3);
}

/* Listener e's plugin config changes, c's codec (json to raw), m's limit
 * (max_datagram 64 to 8); f is added, g removed. */
static void good_config(unsigned workers)
{
	struct dg_daemon d;
	char path[4096], text[2048], name[32];

	snprintf(name, sizeof(name), "good%u.json", workers);
	snprintf(text, sizeof(text), "{\"workers\": %u, \"listeners\": ["
	         "{\"name\": \"e\", \"bind\": \"127.0.0.1:0\", \"codec\": \"json\", \"handler\": \"echo\"},"
	         "{\"name\": \"c\", \"bind\": \"127.0.0.1:0\", \"codec\": \"json\", \"handler\": \"echo\"},"
	         "{\"name\": \"m\", \"bind\": \"127.0.0.1:0\", \"codec\": \"raw\", \"max_datagram\": 64, \"handler\": \"echo\"},"
	         "{\"name\": \"g\", \"bind\": \"127.0.0.1:0\", \"codec\": \"raw\", \"handler\": \"echo\"}]}", workers);
	CU_ASSERT_FATAL(start(&d, path, sizeof(path), name, text));
	CU_ASSERT_STRING_EQUAL(ask(&d, "e", "{\"x\":1}", 5000), "{\"x\":1}");
	CU_ASSERT_STRING_EQUAL(ask(&d, "c", "not json", 300), "");
	CU_ASSERT_STRING_EQUAL(ask(&d, "m", "0123456789", 5000), "0123456789");
	CU_ASSERT_STRING_EQUAL(ask(&d, "g", "g", 5000), "g");
	struct sockaddr_storage g_addr, e_before, e_after, other;
	socklen_t g_len, e_len, o_len;
	CU_ASSERT_FATAL(ready_addr(&d, "g", &g_addr, &g_len));
	CU_ASSERT_FATAL(ready_addr(&d, "e", &e_before, &e_len));

	snprintf(text, sizeof(text), "{\"workers\": %u, \"listeners\": ["
	         "{\"name\": \"e\", \"bind\": \"127.0.0.1:0\", \"codec\": \"json\", "
	         "\"handler\": {\"plugin\": \"echo\", \"config\": {\"wrap\": \"r\"}}},"
	         "{\"name\": \"c\", \"bind\": \"127.0.0.1:0\", \"codec\": \"raw\", \"handler\": \"echo\"},"
	         "{\"name\": \"m\", \"bind\": \"127.0.0.1:0\", \"codec\": \"raw\", \"max_datagram\": 8, \"handler\": \"echo\"},"
	         "{\"name\": \"f\", \"bind\": \"127.0.0.1:0\", \"codec\": \"raw\", \"handler\": \"echo\"}]}", workers);
	write_conf(path, text);
	kill(d.pid, SIGHUP);
	CU_ASSERT_FATAL(wait_log(&d, "reload: generation 2 serving", 1));
	/* Until generation 1 has seen its SIGTERM, it may read a datagram
	 * too (with the old config); after this line only 2 reads. */
	CU_ASSERT_FATAL(wait_log(&d, "reload: generation 1 has exited", 1));
	/* The ready file is rewritten before that line is logged. */
	CU_ASSERT(ready_addr(&d, "f", &other, &o_len) && !ready_addr(&d, "g", &other, &o_len));
	CU_ASSERT(ready_addr(&d, "e", &e_after, &e_len) && !memcmp(&e_before, &e_after, e_len));
	CU_ASSERT_STRING_EQUAL(ask(&d, "e", "{\"x\":2}", 5000), "{\"r\":{\"x\":2}}");
	CU_ASSERT_STRING_EQUAL(ask(&d, "c", "not json", 5000), "not json");
	CU_ASSERT_STRING_EQUAL(ask(&d, "m", "0123456789", 300), "");
	CU_ASSERT_STRING_EQUAL(ask(&d, "m", "01234567", 5000), "01234567");
	CU_ASSERT_STRING_EQUAL(ask(&d, "f", "f", 5000), "f");
	/* g's sockets were closed once generation 1 was gone. */
	int fd = dg_udp_client(&g_addr, 300);
	char buf[64];
	CU_ASSERT(dg_udp_ask(fd, &g_addr, g_len, "g", 1, buf, sizeof(buf)) < 0);
	close(fd);
	dg_daemon_stop_checked(&d, "e");
	CU_ASSERT_EQUAL(dg_daemon_stat(&d, "e", "handled"), 2); /* counts continue */
	CU_ASSERT_EQUAL(dg_daemon_stat(&d, "m", "drop_too_large"), 1);
	CU_ASSERT_EQUAL(dg_daemon_stat(&d, "c", "decode_errors"), 1);
	CU_ASSERT_EQUAL(dg_daemon_stat(&d, "f", "handled"), 1);
	CU_ASSERT_EQUAL(dg_daemon_stat(&d, "g", "rx"), -1);
}

static void test_good_config_1(void)
{
	good_config(1);
}

static void test_good_config_2(void)
{
	good_config(2);
}

enum { WINDOW = 64, RELOADS = 10, MIN_REQUESTS = 20000, MAX_REQUESTS = 2000000 };

struct loadgen {
	int fd;
	struct sockaddr_storage to;
	socklen_t tolen;
	unsigned sent, answered, dups, bad;
	unsigned char *seen; /* one byte per request id */
};

static void send_one(struct loadgen *g)
{
	char req[48];
	int n = snprintf(req, sizeof(req), "{\"id\":%u}", g->sent);

	if (sendto(g->fd, req, (size_t)n, 0, (struct sockaddr *)&g->to, g->tolen) == n)
		g->sent++;
}

/* Read every reply waiting; each must name an id sent and not yet answered. */
static void read_replies(struct loadgen *g)
{
	char buf[128];
	ssize_t n;

	while ((n = recv(g->fd, buf, sizeof(buf) - 1, MSG_DONTWAIT)) > 0) {
		buf[n] = '\0';
		unsigned long id = strncmp(buf, "{\"id\":", 6) ? ~0ul : strtoul(buf + 6, NULL, 10);
		if (id >= g->sent) {
			g->bad++;
		} else if (g->seen[id]++) {
			g->dups++;
		} else {
			g->answered++;
		}
	}
}

/* A closed-loop client (WINDOW requests in flight, unique ids, nothing
 * resent) while the daemon reloads RELOADS times, each after the previous
 * one is done: every request gets exactly one reply. */
static void no_loss(unsigned workers)
{
	struct dg_daemon d;
	struct loadgen g = { .seen = calloc(MAX_REQUESTS, 1) };
	char path[4096], text[512], name[32], line[64];
	unsigned reloads = 0, polls = 0;
	bool hup = false;

	snprintf(name, sizeof(name), "loss%u.json", workers);
	snprintf(text, sizeof(text), "{\"workers\": %u, \"listeners\": [{\"name\": \"e\", "
	         "\"bind\": \"127.0.0.1:0\", \"codec\": \"json\", \"handler\": \"echo\"}]}", workers);
	CU_ASSERT_FATAL(g.seen != NULL);
	CU_ASSERT_FATAL(start(&d, path, sizeof(path), name, text));
	CU_ASSERT_FATAL(ready_addr(&d, "e", &g.to, &g.tolen));
	g.fd = dg_udp_client(&g.to, 1000);
	int big = 1 << 20;
	setsockopt(g.fd, SOL_SOCKET, SO_RCVBUF, &big, sizeof(big));
	double deadline = dg_now_ms() + 60000;
	while (dg_now_ms() < deadline) {
		bool more = g.sent < MAX_REQUESTS && (reloads < RELOADS || hup || g.sent < MIN_REQUESTS);
		while (more && g.sent - g.answered - g.dups < WINDOW && g.sent < MAX_REQUESTS)
			send_one(&g);
		if (!more && g.answered == g.sent)
			break;
		struct pollfd p = { .fd = g.fd, .events = POLLIN };
		if (poll(&p, 1, 100) > 0)
			read_replies(&g);
		/* One reload at a time, every 2000 answers, each once the
		 * last one has logged that it is done. */
		if (reloads < RELOADS && !hup && g.answered >= 2000u * (reloads + 1)) {
			kill(d.pid, SIGHUP);
			hup = true;
		} else if (hup && (++polls % 64 == 0 || p.revents == 0)) {
			snprintf(line, sizeof(line), "reload: generation %u serving", reloads + 2);
			char *log = dg_daemon_log(&d);
			if (log && strstr(log, line)) {
				reloads++;
				hup = false;
			}
			free(log);
		}
	}
	fprintf(stderr, "workers %u: %u reloads, %u sent, %u answered, %u duplicates, %u bad\n",
	        workers, reloads, g.sent, g.answered, g.dups, g.bad);
	CU_ASSERT_EQUAL(reloads, RELOADS);
	CU_ASSERT(g.sent >= MIN_REQUESTS);
	CU_ASSERT_EQUAL(g.answered, g.sent);
	CU_ASSERT_EQUAL(g.dups, 0);
	CU_ASSERT_EQUAL(g.bad, 0);
	close(g.fd);
	dg_daemon_stop_checked(&d, "e");
	CU_ASSERT_EQUAL(dg_daemon_stat(&d, "e", "rx"), g.sent);
	CU_ASSERT_EQUAL(dg_daemon_stat(&d, "e", "handled"), g.sent);
	CU_ASSERT_EQUAL(dg_daemon_stat(&d, "e", "tx"), g.sent);
	free(g.seen);
}

static void test_no_loss_1(void)
{
	no_loss(1);
}

static void test_no_loss_2(void)
{
	no_loss(2);
}

/* rx + rx_kernel_drops of listener "t", live; -1 if unreadable. */
static long long accounted(const struct dg_daemon *d)
{
	long long rx = dg_daemon_live(d, "t", "rx"), kd = dg_daemon_live(d, "t", "rx_kernel_drops");

	return rx < 0 || kd < 0 ? -1 : rx + kd;
}

/* Wait (bounded, each read a /stats round trip) until accounted() reaches
 * want; the last value read. */
static long long wait_accounted(const struct dg_daemon *d, long long want)
{
	double deadline = dg_now_ms() + 15000;
	long long have;

	while ((have = accounted(d)) < want && dg_now_ms() < deadline)
		poll(NULL, 0, 5);
	return have;
}

/* Ask "t" until it answers (a datagram sent while its socket is still
 * full is dropped too): how many were sent, 0 if none was answered. */
static unsigned ask_until(const struct dg_daemon *d, const char *req)
{
	for (unsigned n = 1; n <= 100; n++)
		if (!strcmp(ask(d, "t", req, 200), req))
			return n;
	return 0;
}

/* The kernel's drop counter is per socket and cumulative. A worker that
 * takes a socket over (a new generation on SIGHUP, a worker restarted
 * after a crash) must count from where the counter stands, or it counts
 * every earlier drop again (it did: rx_kernel_drops doubled on each). */
static void test_drops_counted_once(void)
{
	static const char conf[] =
		"{\"metrics\": {\"bind\": \"127.0.0.1:0\"}, \"listeners\": [{\"name\": \"t\", "
		"\"bind\": \"127.0.0.1:0\", \"codec\": \"raw\", \"rcvbuf\": 65536, \"handler\": \"echo\"}]}";
	enum { N = 20000 };
	struct dg_daemon d;
	struct sockaddr_storage ss;
	socklen_t len;
	char path[4096];

	CU_ASSERT_FATAL(start(&d, path, sizeof(path), "drops.json", conf));
	CU_ASSERT_FATAL(ready_addr(&d, "t", &ss, &len));
	/* N datagrams into a socket nobody reads: most are dropped. */
	CU_ASSERT_FATAL(dg_daemon_pause(&d));
	int fd = socket(ss.ss_family, SOCK_DGRAM | SOCK_NONBLOCK, 0);
	CU_ASSERT_FATAL(fd >= 0);
	unsigned sent = 0;
	for (unsigned i = 0; i < N; i++)
		sent += sendto(fd, "drop me", 7, 0, (struct sockaddr *)&ss, len) == 7;
	close(fd);
	CU_ASSERT_FATAL(dg_daemon_resume(&d));
	CU_ASSERT_EQUAL_FATAL(sent, N);
	/* The kernel reports drops with the next datagram read: more. */
	unsigned asked = ask_until(&d, "after");
	CU_ASSERT_FATAL(asked > 0);
	long long before = wait_accounted(&d, N + asked);
	long long kd = dg_daemon_live(&d, "t", "rx_kernel_drops");
	fprintf(stderr, "drops: %lld of %d dropped by the kernel, %lld accounted\n", kd, N, before);
	CU_ASSERT(kd > 0);
	CU_ASSERT_EQUAL(before, N + asked);

	kill(d.pid, SIGHUP);
	CU_ASSERT_FATAL(wait_log(&d, "reload: generation 2 serving", 1));
	CU_ASSERT_FATAL(wait_log(&d, "reload: generation 1 has exited", 1));
	unsigned asked2 = ask_until(&d, "reloaded");
	CU_ASSERT_FATAL(asked2 > 0);
	CU_ASSERT_EQUAL(wait_accounted(&d, N + asked + asked2), N + asked + asked2);
	CU_ASSERT_EQUAL(dg_daemon_live(&d, "t", "rx_kernel_drops"), kd);

	pid_t w = dg_daemon_worker(&d);
	CU_ASSERT_FATAL(w > 0);
	kill(w, SIGKILL);
	unsigned asked3 = ask_until(&d, "restarted");
	CU_ASSERT_FATAL(asked3 > 0);
	CU_ASSERT_NOT_EQUAL(dg_daemon_worker(&d), w);
	long long total = N + asked + asked2 + asked3;
	CU_ASSERT_EQUAL(wait_accounted(&d, total), total);
	CU_ASSERT_EQUAL(dg_daemon_live(&d, "t", "rx_kernel_drops"), kd);
	dg_daemon_stop(&d);
}

enum { MONO_RELOADS = 40, MONO_SERIES = 512, MONO_MAX_SCRAPES = 20000 };

/* Every sample of one scrape, by its name and labels. */
struct series {
	unsigned n;
	char key[MONO_SERIES][160];
	unsigned long long v[MONO_SERIES];
	bool seen[MONO_SERIES];
};

struct mono {
	struct series last;
	unsigned scrapes, unanswered, decreases;
	char *body;
};

/* One scrape of /metrics: every counter checked against the last value
 * seen for its series (a series that is not in a scrape, a removed
 * listener's, is forgotten: if it comes back, it may start at 0). */
static void mono_scrape(const struct dg_daemon *d, struct mono *m)
{
	m->scrapes++;
	if (dg_http_get(d, "/metrics", m->body, 1 << 20) != 200 || !strstr(m->body, "dgramd_rx_total")) {
		m->unanswered++;
		return;
	}
	for (char *line = m->body, *nl; *line; line = nl + 1) {
		nl = strchr(line, '\n');
		if (!nl)
			break;
		char *sp = memrchr(line, ' ', (size_t)(nl - line));
		size_t kl = sp ? (size_t)(sp - line) : 0;
		if (line[0] == '#' || !sp || kl >= sizeof(m->last.key[0]) || !strstr(line, "_total{"))
			continue;
		unsigned long long v = strtoull(sp + 1, NULL, 10);
		unsigned i = 0;
		while (i < m->last.n && (strncmp(m->last.key[i], line, kl) || m->last.key[i][kl]))
			i++;
		if (i < m->last.n && v < m->last.v[i]) {
			if (m->decreases++ < 5)
				fprintf(stderr, "decrease: %s %llu -> %llu\n", m->last.key[i], m->last.v[i], v);
		}
		if (i == m->last.n && i < MONO_SERIES) {
			memcpy(m->last.key[i], line, kl);
			m->last.key[i][kl] = '\0';
			m->last.n++;
		}
		if (i < MONO_SERIES) {
			m->last.v[i] = v;
			m->last.seen[i] = true;
		}
	}
	unsigned kept = 0;
	for (unsigned i = 0; i < m->last.n; i++)
		if (m->last.seen[i]) {
			if (kept != i) {
				memcpy(m->last.key[kept], m->last.key[i], sizeof(m->last.key[0]));
				m->last.v[kept] = m->last.v[i];
			}
			m->last.seen[kept++] = false;
		}
	m->last.n = kept;
}

/* Scrape until the log holds text (count times), at most `max` scrapes. */
static void mono_until(const struct dg_daemon *d, struct mono *m, const char *text, unsigned count)
{
	for (unsigned i = 0; i < 2000 && m->scrapes < MONO_MAX_SCRAPES; i++) {
		mono_scrape(d, m);
		if (dg_file_count(d->log, text) >= count)
			return;
	}
	CU_FAIL("no such log line while scraping");
	fprintf(stderr, "no %u lines '%s' after %u scrapes\n", count, text, m->scrapes);
}

/* A reload to fewer workers: the sockets of the slots the new generation
 * has no worker for stay open (and in the port's SO_REUSEPORT group) while
 * the old generation finishes; whatever the kernel put there was lost. An
 * old worker held by a conversation (tests/fixtures/convo.c) keeps the old
 * generation alive; 3 workers become 1; 30 questions from 30 fresh ports
 * (2 in 3 of them hashed to a slot that is gone) must all be answered. */
static void test_fewer_workers(void)
{
	static const char conf[] = "{\"workers\": %u, \"shutdown_timeout_ms\": 20000, \"listeners\": "
		"[{\"name\": \"c\", \"bind\": \"127.0.0.1:0\", \"codec\": \"raw\", \"handler\": "
		"{\"plugin\": \"%s/tests/fixtures/.libs/convo.so\"}}]}";
	struct dg_daemon d;
	struct sockaddr_storage ss;
	socklen_t len;
	char path[4096], text[1024], buf[64];
	int fds[30];

	snprintf(text, sizeof(text), conf, 3u, dg_test_builddir());
	CU_ASSERT_FATAL(start(&d, path, sizeof(path), "fewer.json", text));
	CU_ASSERT_FATAL(ready_addr(&d, "c", &ss, &len));
	int held = dg_udp_client(&ss, 5000);
	CU_ASSERT_EQUAL(dg_udp_ask(held, &ss, len, "count 1 60000 0", 15, buf, sizeof(buf)), 5);
	snprintf(text, sizeof(text), conf, 1u, dg_test_builddir());
	write_conf(path, text);
	CU_ASSERT_FATAL(kill(d.pid, SIGHUP) == 0);
	CU_ASSERT_FATAL(wait_log(&d, "reload: generation 2 serving", 1));
	for (unsigned i = 0; i < 30; i++) {
		fds[i] = dg_udp_client(&ss, 5000);
		CU_ASSERT_FATAL(fds[i] >= 0);
		snprintf(buf, sizeof(buf), "echo q%u", i);
		CU_ASSERT(sendto(fds[i], buf, strlen(buf), 0, (struct sockaddr *)&ss, len) > 0);
	}
	unsigned answered = 0;
	for (unsigned i = 0; i < 30; i++) {
		char want[16];
		ssize_t n = recv(fds[i], buf, sizeof(buf) - 1, 0);
		buf[n > 0 ? n : 0] = '\0';
		snprintf(want, sizeof(want), "q%u", i);
		answered += !strcmp(buf, want);
		close(fds[i]);
	}
	fprintf(stderr, "3 workers to 1: %u of 30 answered\n", answered);
	CU_ASSERT_EQUAL(answered, 30);
	/* The conversation still ends in the old generation, which then exits. */
	CU_ASSERT_EQUAL(dg_udp_ask(held, &ss, len, "x", 1, buf, sizeof(buf)), 7);
	close(held);
	CU_ASSERT(wait_log(&d, "reload: generation 1 has exited", 1));
	dg_daemon_stop_checked(&d, "c");
}

/* Counters at /metrics never go backwards while the daemon runs, whatever
 * reloads and worker restarts happen, and every scrape is answered: a
 * scraper runs through MONO_RELOADS reloads with traffic (the number of
 * workers changes between 2 and 3, listener "x" comes and goes) and a
 * worker killed. Prometheus takes a decrease for a counter reset. */
static void test_metrics_monotonic(void)
{
	static const char conf[] = "{\"workers\": %u, \"metrics\": {\"bind\": \"127.0.0.1:0\"}, "
		"\"listeners\": [{\"name\": \"e\", \"bind\": \"127.0.0.1:0\", \"codec\": \"json\", "
		"\"handler\": \"echo\"}%s]}";
	static const char x[] = ", {\"name\": \"x\", \"bind\": \"127.0.0.1:0\", \"handler\": \"echo\"}";
	struct mono *m = calloc(1, sizeof(*m));
	struct dg_daemon d;
	char path[4096], text[1024], line[96];

	CU_ASSERT_FATAL(m && (m->body = malloc(1 << 20)));
	snprintf(text, sizeof(text), conf, 2u, x);
	CU_ASSERT_FATAL(start(&d, path, sizeof(path), "mono.json", text));
	for (unsigned r = 0; r < MONO_RELOADS; r++) {
		for (unsigned i = 0; i < 20; i++)
			CU_ASSERT_STRING_EQUAL(ask(&d, "e", "{\"n\":1}", 5000), "{\"n\":1}");
		mono_scrape(&d, m);
		if (r == MONO_RELOADS / 2) {
			unsigned started = dg_file_count(d.log, " started (pid ");
			pid_t w = dg_daemon_worker(&d);
			CU_ASSERT(w > 0);
			if (w > 0)
				kill(w, SIGKILL);
			mono_until(&d, m, "; restarting it", 1);
			mono_until(&d, m, " started (pid ", started + 1);
		}
		snprintf(text, sizeof(text), conf, 2u + r % 2, r % 4 < 2 ? "" : x);
		write_conf(path, text);
		kill(d.pid, SIGHUP);
		snprintf(line, sizeof(line), "reload: generation %u serving", r + 2);
		mono_until(&d, m, line, 1);
		snprintf(line, sizeof(line), "reload: generation %u has exited", r + 1);
		mono_until(&d, m, line, 1);
	}
	for (unsigned i = 0; i < 20; i++)
		mono_scrape(&d, m);
	fprintf(stderr, "monotonic: %u scrapes over %u reloads and a worker killed: %u decreases, "
	        "%u unanswered, %u series\n", m->scrapes, MONO_RELOADS, m->decreases, m->unanswered,
	        m->last.n);
	CU_ASSERT_EQUAL(m->decreases, 0);
	CU_ASSERT_EQUAL(m->unanswered, 0);
	CU_ASSERT(m->scrapes > 2 * MONO_RELOADS);
	dg_daemon_stop_checked(&d, "e");
	free(m->body);
	free(m);
}

/* A codec module across reloads: a good reload loads it again beside the
 * serving config's, a failed one leaves the serving config's registered,
 * so that a worker restarted after it still builds its listener's codec. */
static void test_codec_module(void)
{
#define LINES_CONF(extra) "{\"codec_modules\": [\"lines\"], \"listeners\": [{\"name\": \"l\", " \
	"\"bind\": \"127.0.0.1:0\", \"codec\": {\"framing\": \"lines\"}, \"handler\": \"echo\"" extra "}]}"
	struct dg_daemon d;
	char path[4096];

	CU_ASSERT_FATAL(start(&d, path, sizeof(path), "lines.json", LINES_CONF("")));
	CU_ASSERT_STRING_EQUAL(ask(&d, "l", "a\nb", 5000), "a\nb\n");
	write_conf(path, LINES_CONF(", \"max_datagram\": 600"));
	kill(d.pid, SIGHUP);
	CU_ASSERT(wait_log(&d, "reload: generation 2 serving", 1));
	CU_ASSERT_STRING_EQUAL(ask(&d, "l", "c", 5000), "c\n");
	write_conf(path, LINES_CONF(", \"max_datagram\": -5"));
	kill(d.pid, SIGHUP);
	CU_ASSERT(wait_log(&d, "reload: failed; generation 2 keeps serving", 1));
	pid_t w = dg_daemon_worker(&d);
	CU_ASSERT_FATAL(w > 0);
	kill(w, SIGKILL);
	CU_ASSERT(wait_log(&d, "restarting it", 1));
	CU_ASSERT_STRING_EQUAL(ask(&d, "l", "d", 10000), "d\n");
	char *log = dg_daemon_log(&d);
	CU_ASSERT_PTR_NULL(strstr(log, "unknown framing"));
	free(log);
	dg_daemon_stop_checked(&d, "l");
#undef LINES_CONF
}

static const struct dg_test tests[] = {
	{ "bad config keeps the old one", test_bad_config },
	{ "good config, workers: 1", test_good_config_1 },
	{ "good config, workers: 2", test_good_config_2 },
	{ "no loss over 10 reloads, workers: 1", test_no_loss_1 },
	{ "no loss over 10 reloads, workers: 2", test_no_loss_2 },
	{ "kernel drops counted once across a reload and a worker restart", test_drops_counted_once },
	{ "metrics never go backwards over 40 reloads and a worker kill", test_metrics_monotonic },
	{ "fewer workers: nothing lost in the slots that go", test_fewer_workers },
	{ "a codec module across reloads and a worker restart", test_codec_module },
	{ NULL, NULL },
};

DG_TEST_MAIN("reload", tests)
