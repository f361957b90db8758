/* Live metrics: /metrics (Prometheus text) and /stats (JSON) scraped while
 * traffic flows, and equal to the exit stats once it stops; with one
 * process and with workers (served by the master's metrics process from
 * the workers' shared counters). */
#include "config.h"

#include <arpa/inet.h>
#include <dirent.h>
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

static unsigned open_fds(pid_t pid)
{
	char path[64];
	unsigned n = 0;

	snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
	DIR *dir = opendir(path);
	for (struct dirent *e; dir && (e = readdir(dir));)
		n += e->d_name[0] != '.';
	if (dir)
		closedir(dir);
	return n;
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
		unsigned n = open_fds(pid);
		*most = n > *most ? n : *most;
		if (poll(p, SLOW, 50) > 0)
			return true;
	} while (dg_now_ms() < deadline);
	return false;
}

static void slow_close(int *fds)
{
	for (unsigned i = 0; i < SLOW; i++)
		close(fds[i]);
}

/* Slow connections (they connect and send nothing) and a metrics process
 * at its descriptor limit. Connections are capped (a first wave of at most
 * DG_METRICS_MAX_CONNS is accepted, and closed after the idle timeout);
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

	/* The cap: one wave of at most DG_METRICS_MAX_CONNS is accepted and
	 * times out; the others wait in the backlog. */
	unsigned base = open_fds(pid), most;
	slow_open(&d, fds);
	CU_ASSERT(slow_wait_closed(fds, pid, &most));
	fprintf(stderr, "slow: at most %u of %d open at once (cap %d)\n", most - base, SLOW,
	        DG_METRICS_MAX_CONNS);
	CU_ASSERT(most > base && most <= base + DG_METRICS_MAX_CONNS);
	slow_close(fds);
	CU_ASSERT_EQUAL(dg_http_get(&d, "/metrics", text, BODY), 200);

	/* At the descriptor limit: a few descriptors to spare. */
	struct rlimit old, low;
	CU_ASSERT(prlimit(pid, RLIMIT_NOFILE, NULL, &old) == 0);
	low = old;
	low.rlim_cur = open_fds(pid) + 3;
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
	l->inst.magic = DG_INSTANCE_MAGIC;
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
	{ NULL, NULL },
};

DG_TEST_MAIN("metrics", tests)
