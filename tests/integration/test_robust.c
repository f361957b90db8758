/* Integration: promises kept under abuse: the stats add up at
 * exit at every log level, logging never kills or stalls the server,
 * misbehaving plugins cost counters and bounded log lines, signals never
 * kill a starting process, network bytes reach the log escaped. */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <dgramd/plugin.h>

#include "testutil.h"

static unsigned free_port(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_DGRAM, 0);

	bind(fd, (struct sockaddr *)&a, len);
	getsockname(fd, (struct sockaddr *)&a, &len);
	close(fd);
	return ntohs(a.sin_port);
}

/* One echo listener "t" (raw codec): workers, port (0 with one worker),
 * log level, the echo config and extra top-level keys. */
static char *echo_config(unsigned workers, const char *level, const char *echo, const char *top)
{
	static char buf[1024];

	snprintf(buf, sizeof(buf),
	         "{\"workers\": %u, \"log\": {\"level\": \"%s\"}%s, \"listeners\": [{\"name\": \"t\", "
	         "\"bind\": \"127.0.0.1:%u\", \"codec\": \"raw\", \"handler\": {\"plugin\": \"echo\", "
	         "\"config\": %s}}]}", workers, level, top ? top : "", workers > 1 ? free_port() : 0,
	         echo ? echo : "{}");
	return buf;
}

static char *misbehave_config(const char *codec)
{
	static char buf[2048];

	snprintf(buf, sizeof(buf),
	         "{\"listeners\": [{\"name\": \"e\", \"bind\": \"127.0.0.1:0\", \"handler\": \"echo\"},"
	         " {\"name\": \"m\", \"bind\": \"127.0.0.1:0\", \"codec\": \"%s\", \"handler\": "
	         "{\"plugin\": \"%s/tests/fixtures/.libs/misbehave.so\"}}]}", codec, dg_test_builddir());
	return buf;
}

static bool ask_text(struct dg_daemon *d, unsigned i, const char *req, const char *expect)
{
	int fd = dg_udp_client(&d->addr[i], 3000);
	char buf[256];
	ssize_t n = dg_udp_ask(fd, &d->addr[i], d->addrlen[i], req, strlen(req), buf, sizeof(buf) - 1);

	close(fd);
	buf[n > 0 ? n : 0] = '\0';
	if (strcmp(buf, expect))
		fprintf(stderr, "asked '%s': expected '%s', got '%s'\n", req, expect, buf);
	return !strcmp(buf, expect);
}

/* Item 3. Datagrams still queued when the shutdown deadline passes are
 * counted before the stats line is logged, so it adds up. */
static void test_stats_count_shutdown_drops(void)
{
	struct dg_daemon d;
	char buf[16];

	CU_ASSERT_FATAL(dg_daemon_start(&d, echo_config(1, "info", "{\"delay_ms\": 500}",
	                                                ", \"shutdown_timeout_ms\": 100"), NULL));
	int a = dg_udp_client(&d.addr[0], 3000), b = dg_udp_client(&d.addr[0], 3000);
	for (int i = 0; i < 6; i++) /* one pending, five waiting behind it */
		sendto(a, "a", 1, 0, (struct sockaddr *)&d.addr[0], d.addrlen[0]);
	/* b's answer (after 500 ms) says a's six were received before it. */
	CU_ASSERT_EQUAL(dg_udp_ask(b, &d.addr[0], d.addrlen[0], "b", 1, buf, sizeof(buf)), 1);
	close(a);
	close(b);
	dg_daemon_stop_checked(&d, "t");
	long long dropped = dg_daemon_stat(&d, "t", "drop_shutdown");
	fprintf(stderr, "abandoned at shutdown: drop_shutdown=%lld\n", dropped);
	CU_ASSERT(dropped >= 1 && dropped <= 5);
	CU_ASSERT_EQUAL(dg_daemon_stat(&d, "t", "rx"), 7);
}

/* Item 3. The counters are logged whatever log.level says. */
static void test_stats_at_every_level(void)
{
	static const char *const levels[] = { "error", "warn" };

	for (int i = 0; i < 2; i++) {
		struct dg_daemon d;
		CU_ASSERT_FATAL(dg_daemon_start(&d, echo_config(1, levels[i], NULL, NULL), NULL));
		CU_ASSERT(ask_text(&d, 0, "x", "x"));
		dg_daemon_stop_checked(&d, "t");
		CU_ASSERT_EQUAL(dg_daemon_stat(&d, "t", "handled"), 1);
		char *log = dg_daemon_log(&d);
		CU_ASSERT_PTR_NULL(strstr(log, "listening on")); /* info lines stay hidden */
		free(log);
	}
	struct dg_daemon d; /* the master's totals too */
	CU_ASSERT_FATAL(dg_daemon_start(&d, echo_config(2, "error", NULL, NULL), NULL));
	CU_ASSERT(ask_text(&d, 0, "x", "x"));
	dg_daemon_stop_checked(&d, "t");
	CU_ASSERT_EQUAL(dg_daemon_stat(&d, "t", "handled"), 1);
}

/* Item 4. stderr is a pipe whose reader is gone before dgramd starts: log
 * lines are lost (EPIPE), never the process (SIGPIPE), with or without
 * workers. */
static void test_log_reader_gone(void)
{
	for (unsigned workers = 1; workers <= 2; workers++) {
		struct dg_daemon d;
		int p[2];
		char bad[64];

		CU_ASSERT_FATAL(pipe(p) == 0);
		close(p[0]);
		bool spawned = dg_daemon_spawn(&d, echo_config(workers, "debug", NULL, NULL), NULL, p[1]);
		close(p[1]);
		CU_ASSERT_FATAL(spawned);
		bool ready = dg_daemon_wait_ready(&d, 10000);
		CU_ASSERT(ready);
		if (ready) {
			/* Warnings (an oversized datagram is not one; a HUP is). */
			kill(d.pid, SIGHUP);
			for (int i = 0; i < 20; i++) {
				snprintf(bad, sizeof(bad), "probe%d", i);
				CU_ASSERT(ask_text(&d, 0, bad, bad));
			}
		}
		int st = dg_daemon_stop(&d);
		if (st != 0)
			fprintf(stderr, "workers %u: dgramd exited with %d (141 = SIGPIPE)\n", workers, st);
		CU_ASSERT_EQUAL(st, 0);
	}
}

/* Read what the pipe holds until EOF (every writer gone) or 15 s. */
static char *drain(int fd, size_t *len)
{
	size_t cap = 1 << 20, n = 0;
	char *buf = malloc(cap + 1);
	double deadline = dg_now_ms() + 15000;

	while (buf && dg_now_ms() < deadline) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		if (poll(&p, 1, 100) <= 0)
			continue;
		ssize_t got = read(fd, buf + n, cap - n);
		if (got <= 0)
			break;
		n += (size_t)got;
		if (n == cap)
			break;
	}
	if (buf)
		buf[n] = '\0';
	*len = n;
	return buf;
}

/* Item 4. stderr is a pipe nobody reads, full from the start: dgramd
 * starts, answers every probe promptly while its warnings cannot be
 * written, counts what it dropped, and says so once the reader is back. */
static void test_log_reader_stalled(void)
{
	struct dg_daemon d;
	int p[2];

	CU_ASSERT_FATAL(pipe(p) == 0);
	int size = fcntl(p[1], F_GETPIPE_SZ);
	CU_ASSERT_FATAL(size > 0);
	char *fill = malloc((size_t)size);
	CU_ASSERT_FATAL(fill != NULL);
	memset(fill, 'F', (size_t)size);
	/* A blocking write of exactly the capacity into the empty pipe. */
	CU_ASSERT_FATAL(write(p[1], fill, (size_t)size) == size);
	free(fill);
	bool spawned = dg_daemon_spawn(&d, echo_config(1, "info", NULL, NULL), NULL, p[1]);
	close(p[1]);
	CU_ASSERT_FATAL(spawned);
	bool ready = dg_daemon_wait_ready(&d, 10000);
	CU_ASSERT(ready);
	double worst = 0;
	unsigned answered = 0;
	/* SIGHUP to the worker (the master would reload): a warning each. */
	char cpath[64];
	long worker = -1;
	snprintf(cpath, sizeof(cpath), "/proc/%d/task/%d/children", (int)d.pid, (int)d.pid);
	FILE *cf = fopen(cpath, "r");
	if (cf) {
		if (fscanf(cf, "%ld", &worker) != 1)
			worker = -1;
		fclose(cf);
	}
	CU_ASSERT(worker > 0);
	if (ready && worker > 0) {
		int fd = dg_udp_client(&d.addr[0], 1000);
		char buf[64];
		for (int round = 0; round < 50; round++) {
			kill((pid_t)worker, SIGHUP); /* a warning each: all dropped */
			double t0 = dg_now_ms();
			answered += dg_udp_ask(fd, &d.addr[0], d.addrlen[0], "p", 1, buf, sizeof(buf)) == 1;
			if (dg_now_ms() - t0 > worst)
				worst = dg_now_ms() - t0;
		}
		close(fd);
	}
	fprintf(stderr, "stalled log: %u of 50 probes answered, slowest %.1f ms\n", answered, worst);
	CU_ASSERT_EQUAL(answered, 50);
	CU_ASSERT(worst < 1000);
	kill(d.pid, SIGTERM);
	size_t len;
	char *out = drain(p[0], &len); /* the reader is back: the last lines get through */
	close(p[0]);
	int st = dg_daemon_stop(&d);
	CU_ASSERT_EQUAL(st, 0);
	CU_ASSERT_FATAL(out != NULL);
	const char *text = out + strspn(out, "F");
	const char *stats = strstr(text, "stats worker=1 listener=t ");
	const char *ld = stats ? strstr(stats, " log_dropped=") : NULL;
	long long dropped = ld ? strtoll(ld + 13, NULL, 10) : -1;
	fprintf(stderr, "log_dropped=%lld\n", dropped);
	CU_ASSERT(dropped >= 50);
	CU_ASSERT_PTR_NOT_NULL(strstr(text, "lines were dropped"));
	free(out);
}

/* Item 5. Calls with dead handles: DG_ESTALE, counted exactly on the
 * listener whose handle it was, a bounded number of log lines naming the
 * listener and the plugin. */
static void test_stale_calls(void)
{
	struct dg_daemon d;

	CU_ASSERT_FATAL(dg_daemon_start(&d, misbehave_config("raw"), NULL));
	CU_ASSERT_EQUAL_FATAL(d.n_addr, 2);
	CU_ASSERT(ask_text(&d, 1, "keep", "kept"));
	for (int i = 0; i < 4; i++)
		CU_ASSERT(ask_text(&d, 1, "stale", "stale:1000"));
	CU_ASSERT(ask_text(&d, 0, "\"e\"", "\"e\""));
	dg_daemon_stop_checked(&d, "m");
	CU_ASSERT_EQUAL(dg_daemon_stat(&d, "m", "stale_calls"), 4000);
	CU_ASSERT_EQUAL(dg_daemon_stat(&d, "e", "stale_calls"), 0);
	char *log = dg_daemon_log(&d);
	unsigned lines = dg_count_lines(log, "listener 'm': plugin 'misbehave'");
	fprintf(stderr, "log lines about 4000 stale calls: %u\n", lines);
	CU_ASSERT(lines >= 1 && lines <= 12);
	CU_ASSERT_EQUAL(dg_count_lines(log, "listener 'e'"), 0 + dg_count_lines(log, "listener 'e': listening"));
	free(log);
}

/* Item 9. reply(h, NULL) and an instance that is not one (metric_new
 * included: it used to take the plugin's state as an instance and write
 * through what it found there): error codes and log lines, the server goes
 * on. */
static void test_api_misuse(void)
{
	struct dg_daemon d;
	char expect[32];

	CU_ASSERT_FATAL(dg_daemon_start(&d, misbehave_config("raw"), NULL));
	snprintf(expect, sizeof(expect), "null:%d", DG_EINVAL);
	CU_ASSERT(ask_text(&d, 1, "null", expect));
	CU_ASSERT(ask_text(&d, 1, "misuse", "misuse:ok"));
	CU_ASSERT(ask_text(&d, 1, "still here", "still here"));
	dg_daemon_stop_checked(&d, "m");
	char *log = dg_daemon_log(&d);
	CU_ASSERT_PTR_NOT_NULL(strstr(log, "plugin 'misbehave' replied with a NULL packet"));
	CU_ASSERT_PTR_NOT_NULL(strstr(log, "instead of the struct dg_instance * from init()"));
	CU_ASSERT_PTR_NULL(strstr(log, "not logged:"));
	free(log);
}

/* Item 9. Bytes from the network reach the log escaped: a parse error
 * quoting the datagram, and a plugin logging what it received. No control
 * byte gets through, no line can be forged. */
static void test_log_escaping(void)
{
	static const char evil_json[] = "\x1b[31m\nforged line\x01"; /* jansson: near '<ESC>' */
	static const char evil_log[] = "log:x\nforged line\x1b[0m";
	struct dg_daemon d;

	CU_ASSERT_FATAL(dg_daemon_start(&d, misbehave_config("raw"), NULL));
	int fd = dg_udp_client(&d.addr[0], 300);
	char buf[64];
	CU_ASSERT_EQUAL(dg_udp_ask(fd, &d.addr[0], d.addrlen[0], evil_json, sizeof(evil_json) - 1,
	                           buf, sizeof(buf)), -1); /* undecodable: no reply */
	CU_ASSERT_EQUAL(dg_udp_ask(fd, &d.addr[0], d.addrlen[0], "\x7f\x80\xff", 3, buf, sizeof(buf)), -1);
	close(fd);
	CU_ASSERT(ask_text(&d, 1, evil_log, "logged"));
	dg_daemon_stop_checked(&d, "e");
	char *log = dg_daemon_log(&d);
	CU_ASSERT_EQUAL(dg_count_lines(log, "cannot decode datagram"), 2);
	for (const char *c = log; *c; c++)
		if ((unsigned char)*c < 0x20 && *c != '\n') {
			fprintf(stderr, "control byte %#x in the log:\n%s\n", (unsigned char)*c, log);
			CU_FAIL("control byte in the log");
			break;
		}
	bool forged = false;
	for (const char *line = log; line; line = strchr(line, '\n')) {
		line += *line == '\n';
		forged = forged || !strncmp(line, "forged", 6);
	}
	CU_ASSERT_FALSE(forged);
	CU_ASSERT_PTR_NOT_NULL(strstr(log, "\\x1b")); /* the parse error, escaped readably */
	free(log);
}

/* Whether SIGHUP is blocked or caught by pid (/proc/PID/status SigBlk,
 * SigCgt): from then on a SIGHUP must not kill it. */
static bool hup_safe(pid_t pid)
{
	char path[64], line[256];
	bool blocked = false;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	FILE *f = fopen(path, "r");
	while (f && fgets(line, sizeof(line), f))
		if (!strncmp(line, "SigBlk:", 7) || !strncmp(line, "SigCgt:", 7))
			blocked = blocked || (strtoull(line + 7, NULL, 16) & (1ull << (SIGHUP - 1)));
	if (f)
		fclose(f);
	return blocked;
}

/* Item 7. A storm of SIGHUP from the moment dgramd blocks (or catches) it
 * until well after it is ready: no process dies, no worker is restarted,
 * requests are answered. */
static void test_hup_storm(void)
{
	for (unsigned workers = 1; workers <= 2; workers++) {
		struct dg_daemon d;
		unsigned sent = 0;

		CU_ASSERT_FATAL(dg_daemon_spawn(&d, echo_config(workers, "info", NULL, NULL), NULL, -1));
		double deadline = dg_now_ms() + 10000;
		while (!hup_safe(d.pid) && dg_now_ms() < deadline && waitpid(d.pid, NULL, WNOHANG) == 0)
			sched_yield();
		bool ready = false;
		while (!ready && dg_now_ms() < deadline && d.pid > 0) {
			for (int i = 0; i < 50; i++, sent++)
				kill(d.pid, SIGHUP);
			ready = dg_daemon_wait_ready(&d, 1);
		}
		CU_ASSERT(ready);
		for (int i = 0; i < 200 && d.pid > 0; i++, sent++)
			kill(d.pid, SIGHUP);
		unsigned answered = 0;
		for (int i = 0; ready && i < 20; i++)
			answered += ask_text(&d, 0, "hi", "hi");
		fprintf(stderr, "workers %u: %u SIGHUP sent, %u of 20 answered\n", workers, sent, answered);
		CU_ASSERT_EQUAL(answered, 20);
		char *log = dg_daemon_log(&d);
		if (answered != 20)
			fprintf(stderr, "log:\n%s\n", log);
		CU_ASSERT_EQUAL(dg_count_lines(log, "restarting"), 0);
		CU_ASSERT_EQUAL(dg_count_lines(log, "killed by signal"), 0);
		/* Each SIGHUP the master takes reloads (a storm coalesces):
		 * one start per worker per generation, none from a crash. */
		unsigned gens = dg_count_lines(log, " serving (") + 1; /* one may be starting */
		unsigned w1 = dg_count_lines(log, "worker 1 started");
		CU_ASSERT(w1 >= gens && w1 <= gens + 1);
		if (workers > 1) {
			unsigned w2 = dg_count_lines(log, "worker 2 started");
			CU_ASSERT(w2 >= gens && w2 <= gens + 1);
		}
		free(log);
		dg_daemon_stop_checked(&d, "t");
	}
}

static const struct dg_test robust_tests[] = {
	{ "shutdown drops counted before the stats line", test_stats_count_shutdown_drops },
	{ "stats at every log level", test_stats_at_every_level },
	{ "log reader gone", test_log_reader_gone },
	{ "log reader stalled", test_log_reader_stalled },
	{ "stale calls counted, log bounded", test_stale_calls },
	{ "reply NULL, wrong instance", test_api_misuse },
	{ "network bytes escaped in the log", test_log_escaping },
	{ "SIGHUP storm at start", test_hup_storm },
	{ NULL, NULL },
};

int main(void)
{
	static const struct dg_suite suites[] = {
		{ "robust", robust_tests },
		{ NULL, NULL },
	};
	signal(SIGPIPE, SIG_IGN);
	return dg_test_main(suites);
}
