/* Live metrics: /metrics (Prometheus text) and /stats (JSON) scraped while
 * traffic flows, and equal to the exit stats once it stops; with one
 * process and with workers (served by the master's metrics process from
 * the workers' shared counters). */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include <jansson.h>

#include "metrics.h"
#include "pmetrics.h"
#include "server.h"
#include "testutil.h"

#define BODY (1 << 20)

/* The sum over workers of dgramd_NAME_total{listener="e",...} in text. */
static long long prom_sum(const char *text, const char *name)
{
	char prefix[128];
	long long sum = -1;

	snprintf(prefix, sizeof(prefix), "dgramd_%s_total{listener=\"e\"", name);
	for (const char *p = text; (p = strstr(p, prefix)); p++) {
		const char *sp = strchr(p, ' ');
		if (!sp || (p != text && p[-1] != '\n'))
			continue;
		sum = (sum < 0 ? 0 : sum) + strtoll(sp + 1, NULL, 10);
	}
	return sum;
}

static long long stats_total(const char *json, const char *key)
{
	json_error_t je;
	json_t *j = json_loads(json, 0, &je);
	json_t *v = json_object_get(json_object_get(json_object_get(json_object_get(j, "listeners"), "e"),
	                                            "total"), key);
	long long r = json_is_integer(v) ? json_integer_value(v) : -1;
	json_decref(j);
	return r;
}

static void ask_n(const struct dg_daemon *d, unsigned n)
{
	char buf[64];
	int fd = dg_udp_client(&d->addr[0], 5000);

	CU_ASSERT_FATAL(fd >= 0);
	for (unsigned i = 0; i < n; i++)
		CU_ASSERT_EQUAL(dg_udp_ask(fd, &d->addr[0], d->addrlen[0], "[1]", 3, buf, sizeof(buf)), 3);
	close(fd);
}

static void check(const char *conf)
{
	struct dg_daemon d;
	char *text = malloc(BODY), *json = malloc(BODY);
	static const char *const keys[] = { "rx", "rx_bytes", "handled", "packets", "tx", "tx_bytes", NULL };

	CU_ASSERT_FATAL(text && json);
	CU_ASSERT_FATAL(dg_daemon_start(&d, conf, NULL));
	CU_ASSERT_FATAL(d.metricslen > 0);
	ask_n(&d, 200);
	/* While traffic flows: what is answered is counted. */
	CU_ASSERT_EQUAL(dg_http_get(&d, "/metrics", text, BODY), 200);
	CU_ASSERT(prom_sum(text, "rx") >= 200);
	CU_ASSERT(strstr(text, "# TYPE dgramd_rx_total counter") != NULL);
	CU_ASSERT(strstr(text, "dgramd_drops_total{listener=\"e\",worker=\"1\",reason=\"too_large\"} 0") != NULL);
	ask_n(&d, 300);
	/* A worker counts a reply once sendmmsg returns, which may be just
	 * after the client has it: scrape until the last one is counted. */
	double until = dg_now_ms() + 10000;
	do {
		CU_ASSERT_EQUAL(dg_http_get(&d, "/metrics", text, BODY), 200);
	} while (prom_sum(text, "tx") < 500 && dg_now_ms() < until);
	CU_ASSERT_EQUAL(dg_http_get(&d, "/stats", json, BODY), 200);
	CU_ASSERT_EQUAL(dg_http_get(&d, "/nothing", json + BODY / 2, BODY / 2), 404);
	dg_daemon_stop_checked(&d, "e");
	/* Once traffic stopped, the scrape equals the exit stats. */
	for (unsigned i = 0; keys[i]; i++) {
		long long exit_v = dg_daemon_stat(&d, "e", keys[i]);
		CU_ASSERT(exit_v >= 500);
		CU_ASSERT_EQUAL(prom_sum(text, keys[i]), exit_v);
		CU_ASSERT_EQUAL(stats_total(json, keys[i]), exit_v);
		if (prom_sum(text, keys[i]) != exit_v || stats_total(json, keys[i]) != exit_v)
			printf("  %s: metrics %lld, stats %lld, exit %lld\n", keys[i],
			       prom_sum(text, keys[i]), stats_total(json, keys[i]), exit_v);
	}
	free(text);
	free(json);
}

static void test_single(void)
{
	check("{ \"metrics\": { \"bind\": \"127.0.0.1:0\" }, \"listeners\": [ { \"name\": \"e\", "
	      "\"bind\": \"127.0.0.1:0\", \"codec\": \"json\", \"handler\": \"echo\" } ] }");
}

static void test_workers(void)
{
	char conf[512];

	snprintf(conf, sizeof(conf), "{ \"workers\": 2, \"metrics\": { \"bind\": \"127.0.0.1:0\" }, "
	         "\"listeners\": [ { \"name\": \"e\", \"bind\": \"127.0.0.1:%u\", \"codec\": \"json\", "
	         "\"handler\": \"echo\" } ] }", dg_free_udp_port());
	check(conf);
}

static void test_bad_bind(void)
{
	struct dg_daemon d;
	/* 192.0.2.1 (TEST-NET-1) is not an address of this machine: bind fails,
	 * and the start with it. */
	CU_ASSERT_FALSE(dg_daemon_start(&d, "{ \"metrics\": { \"bind\": \"192.0.2.1:0\" }, \"listeners\": "
	                "[ { \"name\": \"e\", \"bind\": \"127.0.0.1:0\", \"handler\": \"echo\" } ] }", NULL));
	char *log = dg_daemon_log(&d);
	CU_ASSERT(log && strstr(log, "cannot listen on '192.0.2.1:0' (metrics.bind)"));
	free(log);
}

/* metrics.bind "[::]:0" is IPv6 only, as the UDP listeners on [::] are: a
 * scrape over IPv4 at that port is refused, one over [::1] answered (the
 * socket took IPv4 too). */
static void test_v6only(void)
{
	struct dg_daemon d, v4, v6;
	char *text = malloc(BODY);

	if (!dg_have_ipv6()) {
		fprintf(stderr, "no IPv6 loopback: test skipped\n");
		free(text);
		return;
	}
	CU_ASSERT_FATAL(text != NULL);
	CU_ASSERT_FATAL(dg_daemon_start(&d, "{ \"metrics\": { \"bind\": \"[::]:0\" }, \"listeners\": "
	                "[ { \"name\": \"e\", \"bind\": \"127.0.0.1:0\", \"handler\": \"echo\" } ] }", NULL));
	CU_ASSERT_FATAL(d.metrics.ss_family == AF_INET6);
	unsigned short port = ((struct sockaddr_in6 *)&d.metrics)->sin6_port;
	struct sockaddr_in in4 = { .sin_family = AF_INET, .sin_port = port,
	                           .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	struct sockaddr_in6 in6 = { .sin6_family = AF_INET6, .sin6_port = port, .sin6_addr = IN6ADDR_LOOPBACK_INIT };
	v4 = v6 = d;
	memcpy(&v4.metrics, &in4, sizeof(in4));
	v4.metricslen = sizeof(in4);
	memcpy(&v6.metrics, &in6, sizeof(in6));
	v6.metricslen = sizeof(in6);
	CU_ASSERT_EQUAL(dg_http_get(&v6, "/metrics", text, BODY), 200);
	CU_ASSERT_EQUAL(dg_http_get(&v4, "/metrics", text, BODY), -1);
	dg_daemon_stop_checked(&d, "e");
	free(text);
}

enum { SLOW = 40 };

/* utime + stime of pid in clock ticks; -1 if unreadable. */
static long long cpu_ticks(pid_t pid)
{
	char path[64], buf[1024];
	unsigned long long ut, st;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	f = fopen(path, "r");
	size_t n = f ? fread(buf, 1, sizeof(buf) - 1, f) : 0;
	if (f)
		fclose(f);
	buf[n] = '\0';
	const char *p = strrchr(buf, ')'); /* the name may hold spaces */
	if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
		return -1;
	return (long long)(ut + st);
}

/* SLOW connections that send nothing; all asserted open. */
static void slow_open(const struct dg_daemon *d, int *fds)
{
	for (unsigned i = 0; i < SLOW; i++) {
		fds[i] = socket(d->metrics.ss_family, SOCK_STREAM | SOCK_NONBLOCK, 0);
		CU_ASSERT_FATAL(fds[i] >= 0);
		int r = connect(fds[i], (const struct sockaddr *)&d->metrics, d->metricslen);
		CU_ASSERT(r == 0 || errno == EINPROGRESS);
	}
}

/* Wait (up to 30 s) until the server has closed one of them (its idle
 * timeout); meanwhile the most descriptors pid had open, sampled whenever
 * 50 ms pass without that close. False if none was closed. */
static bool slow_wait_closed(const int *fds, pid_t pid, unsigned *most)
{
	struct pollfd p[SLOW];
	double deadline = dg_now_ms() + 30000;

	for (unsigned i = 0; i < SLOW; i++)
		p[i] = (struct pollfd){ .fd = fds[i], .events = POLLIN };
	*most = 0;
	do {
		unsigned n = (unsigned)dg_proc_fds(pid);
		*most = n > *most ? n : *most;
		if (poll(p, SLOW, 50) > 0)
			return true;
	} while (dg_now_ms() < deadline);
	return false;
}

static void slow_close(int *fds)
{
	for (unsigned i = 0; i < SLOW; i++)
		if (fds[i] >= 0)
			close(fds[i]);
}

/* Wait (up to 10 s, polling the clients' sockets) until pid has `want`
 * descriptors; the last count read. */
static unsigned fds_wait(pid_t pid, unsigned want, const int *fds, unsigned n)
{
	struct pollfd p[SLOW];
	double deadline = dg_now_ms() + 10000;
	unsigned have;

	for (unsigned i = 0; i < n; i++)
		p[i] = (struct pollfd){ .fd = fds[i], .events = 0 };
	while ((have = (unsigned)dg_proc_fds(pid)) != want && dg_now_ms() < deadline)
		poll(p, n, 10); /* woken early by nothing: a bounded wait between reads */
	return have;
}

/* Open DG_METRICS_MAX_CONNS + 1 slow connections (SLOW slots in fds, the
 * rest -1), one at a time: each of the first DG_METRICS_MAX_CONNS is held
 * (pid's descriptors base + k), the next closes the first (EOF on it) and
 * pid goes back to base + DG_METRICS_MAX_CONNS. */
static bool cap_holds(const struct dg_daemon *d, pid_t pid, unsigned base, int *fds)
{
	bool ok = true;

	for (unsigned i = 0; i < SLOW; i++)
		fds[i] = -1;
	for (unsigned k = 0; k <= DG_METRICS_MAX_CONNS; k++) {
		fds[k] = socket(d->metrics.ss_family, SOCK_STREAM, 0);
		if (fds[k] < 0 || connect(fds[k], (const struct sockaddr *)&d->metrics, d->metricslen))
			return false;
		if (k < DG_METRICS_MAX_CONNS && fds_wait(pid, base + k + 1, fds, k + 1) != base + k + 1) {
			fprintf(stderr, "cap: connection %u not held\n", k + 1);
			ok = false;
		}
	}
	struct pollfd first = { .fd = fds[0], .events = POLLIN };
	if (poll(&first, 1, 10000) != 1) {
		fprintf(stderr, "cap: connection %d did not close the oldest\n", DG_METRICS_MAX_CONNS + 1);
		ok = false;
	}
	unsigned settled = fds_wait(pid, base + DG_METRICS_MAX_CONNS, fds, DG_METRICS_MAX_CONNS + 1);
	fprintf(stderr, "slow: %d held, the next closed the oldest: %u open after it (cap %d)\n",
	        DG_METRICS_MAX_CONNS, settled - base, DG_METRICS_MAX_CONNS);
	return ok && settled == base + DG_METRICS_MAX_CONNS;
}

/* Slow connections (they connect and send nothing) and a metrics process
 * at its descriptor limit. Connections are capped (at most
 * DG_METRICS_MAX_CONNS open at once: newer ones close the oldest, the last
 * ones are closed by their age or the idle timeout);
 * at EMFILE the process pauses accepting instead of retrying at once (it
 * spun, and libevent wrote "Error from accept() call" to stderr for every
 * try: 787,071 lines in 4 s); once the slow ones go, a scrape is answered. */
static void test_slow_clients(void)
{
	struct dg_daemon d;
	char *text = malloc(BODY);
	int fds[SLOW];

	CU_ASSERT_FATAL(text != NULL);
	CU_ASSERT_FATAL(dg_daemon_start(&d, "{ \"workers\": 1, \"metrics\": { \"bind\": \"127.0.0.1:0\" }, "
	                "\"listeners\": [ { \"name\": \"e\", \"bind\": \"127.0.0.1:0\", \"handler\": \"echo\" } ] }",
	                NULL));
	pid_t pid = dg_daemon_child(&d, "dgramd-metrics");
	CU_ASSERT(pid > 0);
	if (pid <= 0) {
		dg_daemon_stop(&d);
		free(text);
		return;
	}

	/* The cap, one connection at a time: the process holds each of the
	 * first DG_METRICS_MAX_CONNS (its descriptors grow by one), and the
	 * next one closes the oldest instead of growing past the cap. */
	unsigned base = (unsigned)dg_proc_fds(pid), most;
	CU_ASSERT_TRUE(cap_holds(&d, pid, base, fds));
	slow_close(fds);
	CU_ASSERT_EQUAL(dg_http_get(&d, "/metrics", text, BODY), 200);

	/* At the descriptor limit: a few descriptors to spare. */
	struct rlimit old, low;
	CU_ASSERT(prlimit(pid, RLIMIT_NOFILE, NULL, &old) == 0);
	low = old;
	low.rlim_cur = (unsigned)dg_proc_fds(pid) + 3;
	CU_ASSERT(prlimit(pid, RLIMIT_NOFILE, &low, NULL) == 0);
	long long cpu0 = cpu_ticks(pid);
	double t0 = dg_now_ms();
	slow_open(&d, fds);
	CU_ASSERT(slow_wait_closed(fds, pid, &most));
	double wall = (dg_now_ms() - t0) / 1000;
	double cpu = (double)(cpu_ticks(pid) - cpu0) / (double)sysconf(_SC_CLK_TCK);
	char *log = dg_daemon_log(&d);
	unsigned lines = log ? dg_count_lines(log, "accept") : 0;
	fprintf(stderr, "slow at EMFILE: %.2f s CPU in %.2f s, %u log lines about accept, %zu bytes of log\n",
	        cpu, wall, lines, log ? strlen(log) : 0);
	if (lines < 1 || lines > 20)
		fprintf(stderr, "%s", log ? log : "");
	free(log);
	CU_ASSERT(cpu0 >= 0 && cpu < wall / 5);
	CU_ASSERT(lines >= 1 && lines <= 20);
	CU_ASSERT(prlimit(pid, RLIMIT_NOFILE, &old, NULL) == 0);
	slow_close(fds);
	CU_ASSERT_EQUAL(dg_http_get(&d, "/metrics", text, BODY), 200);
	CU_ASSERT(strstr(text, "# TYPE dgramd_rx_total counter") != NULL);
	dg_daemon_stop_checked(&d, "e");
	free(text);
}

enum { LORIS = 24 };

/* A connection that sent a request's first line, as a slowloris does; -1
 * if it could not be opened. */
static int loris_open(const struct dg_daemon *d)
{
	static const char first[] = "GET /metrics HTTP/1.1\r\n";
	int fd = socket(d->metrics.ss_family, SOCK_STREAM | SOCK_NONBLOCK, 0);

	if (fd < 0)
		return -1;
	if ((connect(fd, (const struct sockaddr *)&d->metrics, d->metricslen) < 0 && errno != EINPROGRESS) ||
	    send(fd, first, sizeof(first) - 1, MSG_NOSIGNAL) != (ssize_t)sizeof(first) - 1) {
		close(fd);
		return -1;
	}
	return fd;
}

/* Whether the server has closed fd (it never answers: readable is EOF). */
static bool loris_closed(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };

	return poll(&p, 1, 0) > 0;
}

/* One more header line on each connection; the ones the server closed are
 * opened again if reopen (the attack goes on), else left at -1. */
static void loris_trickle(const struct dg_daemon *d, int *fds, bool reopen)
{
	static const char line[] = "X-a: b\r\n";

	for (unsigned i = 0; i < LORIS; i++) {
		if (fds[i] >= 0 && loris_closed(fds[i])) {
			close(fds[i]);
			fds[i] = reopen ? loris_open(d) : -1;
		}
		if (fds[i] >= 0 && send(fds[i], line, sizeof(line) - 1, MSG_NOSIGNAL | MSG_DONTWAIT) < 0 &&
		    errno != EAGAIN)
			CU_ASSERT(errno == EPIPE || errno == ECONNRESET);
	}
}

/* One scrape that waits at most ms for its answer (connect included): the
 * HTTP status, or -1. */
static int scrape_within(const struct dg_daemon *d, unsigned ms)
{
	static const char req[] = "GET /metrics HTTP/1.0\r\n\r\n";
	struct timeval tv = { .tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000 };
	char head[64] = "";
	int status = -1, fd = socket(d->metrics.ss_family, SOCK_STREAM, 0);

	if (fd < 0)
		return -1;
	if (!setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) &&
	    !setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) &&
	    !connect(fd, (const struct sockaddr *)&d->metrics, d->metricslen) &&
	    send(fd, req, sizeof(req) - 1, MSG_NOSIGNAL) == (ssize_t)sizeof(req) - 1 &&
	    recv(fd, head, sizeof(head) - 1, MSG_WAITALL) > 0 && sscanf(head, "HTTP/1.%*d %d", &status) != 1)
		status = -1;
	close(fd);
	return status;
}

/* A slowloris: LORIS connections, each sending one header line per round,
 * never the blank line that ends a request, and opened again when the
 * server closes one. They were never idle, so the idle timeout never
 * fired, and the 16 held every connection the server takes: no scrape was
 * answered for as long as the attack went on. Now a new connection at the
 * cap pushes out the oldest (the scrape is answered at once) and no
 * connection lives longer than DG_METRICS_LIFE_S (once the attack stops
 * opening new ones, the ones it holds are closed while they trickle).
 * The rounds are paced by the scrape attempts (1 s each at most), then by
 * the server's closes (a round when none came for 1 s). */
static void test_slowloris(void)
{
	struct dg_daemon d;
	int fds[LORIS];
	double t0, answered = -1, all_closed = -1;

	CU_ASSERT_FATAL(dg_daemon_start(&d, "{ \"workers\": 1, \"metrics\": { \"bind\": \"127.0.0.1:0\" }, "
	                "\"listeners\": [ { \"name\": \"e\", \"bind\": \"127.0.0.1:0\", \"handler\": \"echo\" } ] }",
	                NULL));
	for (unsigned i = 0; i < LORIS; i++)
		CU_ASSERT((fds[i] = loris_open(&d)) >= 0);
	t0 = dg_now_ms();
	do {
		loris_trickle(&d, fds, true);
		if (scrape_within(&d, 1000) == 200)
			answered = dg_now_ms() - t0;
	} while (answered < 0 && dg_now_ms() - t0 < 40000);

	/* No more new connections: the ones open are closed by their age. */
	t0 = dg_now_ms();
	while (all_closed < 0 && dg_now_ms() - t0 < 30000) {
		struct pollfd p[LORIS];
		nfds_t n = 0;
		for (unsigned i = 0; i < LORIS; i++)
			if (fds[i] >= 0)
				p[n++] = (struct pollfd){ .fd = fds[i], .events = POLLIN };
		if (!n)
			all_closed = dg_now_ms() - t0;
		else if (poll(p, n, 1000) == 0)
			loris_trickle(&d, fds, false);
		else
			for (unsigned i = 0; i < LORIS; i++)
				if (fds[i] >= 0 && loris_closed(fds[i]))
					close(fds[i]), fds[i] = -1;
	}
	fprintf(stderr, "slowloris (%d connections): scrape answered after %.0f ms; the attack's last "
	        "connections closed %.1f s after it stopped (-1: not answered / not closed)\n", LORIS,
	        answered, all_closed < 0 ? -1 : all_closed / 1000);
	/* Pushing out answers at once; the age limit alone would take
	 * DG_METRICS_LIFE_S (the first ones' end). */
	CU_ASSERT(answered >= 0 && answered < (DG_METRICS_LIFE_S - 1) * 1000);
	CU_ASSERT(all_closed >= 0 && all_closed < 3 * DG_METRICS_LIFE_S * 1000);
	for (unsigned i = 0; i < LORIS; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	char *text = malloc(BODY);
	CU_ASSERT_FATAL(text != NULL);
	CU_ASSERT_EQUAL(dg_http_get(&d, "/metrics", text, BODY), 200);
	free(text);
	dg_daemon_stop_checked(&d, "e");
}

/* A plugin's gauges in /metrics and /stats: kv publishes its store. */
static void test_plugin_metrics(void)
{
	struct dg_daemon d;
	char *text = malloc(BODY), *json = malloc(BODY), buf[256], req[128];

	CU_ASSERT_FATAL(text && json);
	CU_ASSERT_FATAL(dg_daemon_start(&d, "{ \"metrics\": { \"bind\": \"127.0.0.1:0\" }, \"listeners\": "
	                "[ { \"name\": \"e\", \"bind\": \"127.0.0.1:0\", \"handler\": \"kv\" } ] }", NULL));
	int fd = dg_udp_client(&d.addr[0], 5000);
	for (int i = 0; i < 3; i++) {
		int n = snprintf(req, sizeof(req), "{\"op\":\"set\",\"key\":\"k%d\",\"value\":%d}", i, i);
		CU_ASSERT(dg_udp_ask(fd, &d.addr[0], d.addrlen[0], req, (size_t)n, buf, sizeof(buf)) > 0);
	}
	close(fd);
	CU_ASSERT_EQUAL(dg_http_get(&d, "/metrics", text, BODY), 200);
	CU_ASSERT(strstr(text, "# TYPE dgramd_plugin_kv_keys gauge\n") != NULL);
	CU_ASSERT(strstr(text, "\ndgramd_plugin_kv_keys{listener=\"e\",worker=\"1\"} 3\n") != NULL);
	CU_ASSERT(strstr(text, "\ndgramd_plugin_kv_refused_total{listener=\"e\",worker=\"1\"} 0\n") != NULL);
	CU_ASSERT_EQUAL(dg_http_get(&d, "/stats", json, BODY), 200);
	CU_ASSERT(strstr(json, "\"keys\":3") != NULL);
	dg_daemon_stop_checked(&d, "e");
	free(text);
	free(json);
}

/* metric_new: names checked, one metric per name, bounded per listener. */
static void test_metric_new(void)
{
	struct dg_listener *l = calloc(1, sizeof(*l));
	struct dg_counters *c = calloc(1, sizeof(*c));
	char name[16];

	CU_ASSERT_FATAL(l && c);
	l->c = c;
	l->inst.magic = DG_INSTANCE_MAGIC; /* an instance as server.c makes one */
	l->inst.l = l;
	struct dg_instance *self = &l->inst;
	CU_ASSERT_PTR_NULL(dg_pmetric_new(self, "Bad-Name", "", DG_METRIC_GAUGE));
	CU_ASSERT_PTR_NULL(dg_pmetric_new(self, "", "", DG_METRIC_GAUGE));
	CU_ASSERT_PTR_NULL(dg_pmetric_new(self, "ok", "", 7));
	struct dg_metric *a = dg_pmetric_new(self, "a", "help\nwith a newline", DG_METRIC_COUNTER);
	CU_ASSERT_PTR_NOT_NULL(a);
	CU_ASSERT_PTR_EQUAL(dg_pmetric_new(self, "a", "", DG_METRIC_COUNTER), a);
	CU_ASSERT_PTR_NULL(dg_pmetric_new(self, "a", "", DG_METRIC_GAUGE));
	CU_ASSERT_PTR_NULL(strchr(c->plugin[0].help, '\n'));
	dg_pmetric_add(a, 5);
	dg_pmetric_add(a, -3); /* counters only grow */
	dg_pmetric_set(a, 100); /* not a gauge */
	CU_ASSERT_EQUAL(c->plugin[0].value, 5);
	for (int i = 1; i < DG_PLUGIN_METRICS_MAX; i++) {
		snprintf(name, sizeof(name), "m%d", i);
		CU_ASSERT_PTR_NOT_NULL(dg_pmetric_new(self, name, "", DG_METRIC_GAUGE));
	}
	CU_ASSERT_PTR_NULL(dg_pmetric_new(self, "one_too_many", "", DG_METRIC_GAUGE));
	free(c);
	free(l);
}

/* Across generations a plugin's counters add up by name (a new plugin
 * instance starts at 0: served alone, the series would go down); gauges
 * are the newest generation's. */
static void test_add_plugin(void)
{
	struct dg_counters *sum = calloc(1, sizeof(*sum)), *c = calloc(1, sizeof(*c));

	CU_ASSERT_FATAL(sum && c);
	c->plugin[0] = (struct dg_plugin_metric){ .name = "hits", .value = 5, .kind = DG_METRIC_COUNTER };
	c->plugin[1] = (struct dg_plugin_metric){ .name = "keys", .value = 7, .kind = DG_METRIC_GAUGE };
	dg_counters_add_plugin(sum, c, false);
	CU_ASSERT_STRING_EQUAL(sum->plugin[0].name, "hits");
	CU_ASSERT_EQUAL(sum->plugin[0].value, 5);
	CU_ASSERT_EQUAL(sum->plugin[1].name[0], '\0');
	c->plugin[0].value = 2;
	dg_counters_add_plugin(sum, c, true);
	CU_ASSERT_EQUAL(sum->plugin[0].value, 7);
	CU_ASSERT_STRING_EQUAL(sum->plugin[1].name, "keys");
	CU_ASSERT_EQUAL(sum->plugin[1].value, 7);
	c->plugin[1].value = 3;
	dg_counters_add_plugin(sum, c, true);
	CU_ASSERT_EQUAL(sum->plugin[1].value, 3);
	CU_ASSERT_EQUAL(sum->plugin[0].value, 9);
	free(sum);
	free(c);
}

static const struct dg_test tests[] = {
	{ "a plugin's metrics: kv's gauges in /metrics and /stats", test_plugin_metrics },
	{ "metric_new checks names, kinds and the limit", test_metric_new },
	{ "plugin counters add up across generations, gauges do not", test_add_plugin },
	{ "one process: scrape during traffic, equal to exit stats", test_single },
	{ "two workers: summed from shared memory, equal to exit stats", test_workers },
	{ "an address that cannot be bound fails the start", test_bad_bind },
	{ "[::] is IPv6 only: no scrape over IPv4", test_v6only },
	{ "slow clients and EMFILE: capped, paused, quiet, then answered", test_slow_clients },
	{ "a slowloris: a scrape is answered, the attack's connections closed by age", test_slowloris },
	{ NULL, NULL },
};

DG_TEST_MAIN("metrics", tests)
