/* The redis plugin against a real redis-server (Debian package redis-server)
 * started by the test on a free loopback port: every op and its checks,
 * TTLs read back from Redis, incr shared by two workers and by two dgramd
 * instances, and Redis killed, restarted and stopped (slow) under the
 * plugin; config errors by key path (dgramd -t) and every option with its
 * default (-T). Skipped (exit 77) when redis-server or the plugin (hiredis) is
 * missing. */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "redisutil.h"
#include "waitfor.h"

static struct redis_server rs;

#define DG_REPEAT_16 "0123456789abcdef"
#define DG_REPEAT_256 DG_REPEAT_16 DG_REPEAT_16 DG_REPEAT_16 DG_REPEAT_16 DG_REPEAT_16 \
	DG_REPEAT_16 DG_REPEAT_16 DG_REPEAT_16 DG_REPEAT_16 DG_REPEAT_16 DG_REPEAT_16 \
	DG_REPEAT_16 DG_REPEAT_16 DG_REPEAT_16 DG_REPEAT_16 DG_REPEAT_16
#define DG_REPEAT_257 DG_REPEAT_256 "x"

static char *conf(unsigned workers, const char *listener_extra, const char *plugin_extra)
{
	static char buf[2048];

	/* debug: the plugin logs each reconnection attempt, which the tests
	 * wait for */
	snprintf(buf, sizeof(buf), "{\"workers\": %u, \"shutdown_timeout_ms\": 2000, "
	         "\"log\": {\"level\": \"debug\"}, "
	         "\"metrics\": {\"bind\": \"127.0.0.1:0\"}, \"listeners\": [{\"name\": \"r\", "
	         "\"bind\": \"127.0.0.1:0\", \"codec\": \"json\"%s, \"handler\": {\"plugin\": \"redis\", "
	         "\"config\": {\"server\": \"127.0.0.1:%u\"%s}}}]}", workers, listener_extra, rs.port,
	         plugin_extra);
	return buf;
}

/* Wait until the daemon's log holds text count times (woken by inotify as
 * it grows): the plugin logs "connected to redis" at each connection and
 * "reconnecting to redis" at each attempt. */
static bool wait_log(const struct dg_daemon *d, const char *text, unsigned count)
{
	return dg_wait_file(d->log, text, count, d->pid, 15000) == DG_WAIT_OK;
}

static bool start(struct dg_daemon *d, const char *text)
{
	if (!dg_daemon_start(d, text, NULL))
		return false;
	return wait_log(d, "connected to redis", 1);
}

/* Ask and compare the whole reply. */
static void expect(int fd, const struct dg_daemon *d, const char *req, const char *want)
{
	char buf[8192];

	CU_ASSERT_FATAL(redis_ask(fd, d, req, buf, sizeof(buf), NULL));
	if (strcmp(buf, want))
		fprintf(stderr, "%s: expected %s, got %s\n", req, want, buf);
	CU_ASSERT_STRING_EQUAL(buf, want);
}

static void expect_redis(const char *want, int argc, const char *const *argv)
{
	char out[8192];

	CU_ASSERT_FATAL(redis_cmd(rs.port, out, sizeof(out), argc, argv));
	if (strcmp(out, want))
		fprintf(stderr, "redis %s: expected %s, got %s\n", argv[0], want, out);
	CU_ASSERT_STRING_EQUAL(out, want);
}

static void test_ops(void)
{
	struct dg_daemon d;
	int fd = redis_client(0, 5000);

	CU_ASSERT_FATAL(fd >= 0);
	CU_ASSERT_FATAL(start(&d, conf(1, "", ", \"prefix\": \"t1:\"")));
	expect(fd, &d, "{\"op\":\"set\",\"key\":\"k\",\"value\":\"v\",\"id\":\"a\"}", "{\"ok\":true,\"id\":\"a\"}");
	expect_redis("$v", 2, (const char *[]){ "GET", "t1:k" });
	expect(fd, &d, "{\"op\":\"get\",\"key\":\"k\",\"id\":7}", "{\"ok\":true,\"value\":\"v\",\"id\":7}");
	expect(fd, &d, "{\"op\":\"get\",\"key\":\"none\"}", "{\"ok\":true,\"value\":null}");
	expect(fd, &d, "{\"op\":\"incr\",\"key\":\"n\"}", "{\"ok\":true,\"value\":1}");
	expect(fd, &d, "{\"op\":\"incr\",\"key\":\"n\",\"by\":41}", "{\"ok\":true,\"value\":42}");
	expect(fd, &d, "{\"op\":\"incr\",\"key\":\"n\",\"by\":-2}", "{\"ok\":true,\"value\":40}");
	expect_redis("$40", 2, (const char *[]){ "GET", "t1:n" });
	expect(fd, &d, "{\"op\":\"set\",\"key\":\"i\",\"value\":5}", "{\"ok\":true}");
	expect(fd, &d, "{\"op\":\"incr\",\"key\":\"i\"}", "{\"ok\":true,\"value\":6}");
	expect(fd, &d, "{\"op\":\"incr\",\"key\":\"k\"}",
	       "{\"ok\":false,\"error\":\"redis: ERR value is not an integer or out of range\"}");
	expect(fd, &d, "{\"op\":\"del\",\"key\":\"k\"}", "{\"ok\":true,\"value\":1}");
	expect(fd, &d, "{\"op\":\"del\",\"key\":\"k\"}", "{\"ok\":true,\"value\":0}");
	expect_redis(":0", 2, (const char *[]){ "EXISTS", "t1:k" });
	CU_ASSERT_EQUAL(redis_metric(&d, "r", "commands"), 11);
	close(fd);
	dg_daemon_stop_checked(&d, "r");
}

/* Refused before Redis sees them: no command is sent. */
static void test_bad_requests(void)
{
	static const char *const bad[][2] = {
		{ "[1]", "bad request: expected a JSON object" },
		{ "{\"key\":\"k\"}", "bad request: \\\"op\\\" must be get, set, incr or del" },
		{ "{\"op\":\"flushall\",\"key\":\"k\"}", "bad request: \\\"op\\\" must be get, set, incr or del" },
		{ "{\"op\":\"get\"}", "bad request: \\\"key\\\" must be a non-empty string" },
		{ "{\"op\":\"get\",\"key\":\"\"}", "bad request: \\\"key\\\" must be a non-empty string" },
		{ "{\"op\":\"get\",\"key\":7}", "bad request: \\\"key\\\" must be a non-empty string" },
		{ "{\"op\":\"get\",\"key\":\"123456789\"}", "bad request: key too long (max_key)" },
		{ "{\"op\":\"set\",\"key\":\"k\",\"value\":\"12345678901234567\"}",
		  "bad request: value too long (max_value)" },
		{ "{\"op\":\"set\",\"key\":\"k\",\"value\":[1]}",
		  "bad request: \\\"value\\\" must be a string or an integer" },
		{ "{\"op\":\"set\",\"key\":\"k\"}", "bad request: set needs a \\\"value\\\"" },
		{ "{\"op\":\"set\",\"key\":\"k\",\"value\":\"v\",\"ttl_ms\":0}",
		  "bad request: \\\"ttl_ms\\\" must be an integer from 1 to 2^53" },
		{ "{\"op\":\"get\",\"key\":\"k\",\"ttl_ms\":5}", "bad request: a member that this op does not take" },
		{ "{\"op\":\"get\",\"key\":\"k\",\"cmd\":\"FLUSHALL\"}",
		  "bad request: unknown member (known: op, key, value, ttl_ms, by, id)" },
		{ "{\"op\":\"incr\",\"key\":\"k\",\"by\":\"2\"}", "bad request: \\\"by\\\" must be an integer" },
		{ "{\"op\":", "bad request: not JSON" },
	};
	struct dg_daemon d;
	char want[512];
	int fd = redis_client(1, 5000);

	CU_ASSERT_FATAL(fd >= 0);
	/* Errors longer than three times a short request: no amplification guard. */
	CU_ASSERT_FATAL(start(&d, conf(1, ", \"amplification\": {\"factor\": 0}", ", \"max_key\": 8, \"max_value\": 16")));
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(want, sizeof(want), "{\"ok\":false,\"error\":\"%s\"}", bad[i][1]);
		expect(fd, &d, bad[i][0], want);
	}
	CU_ASSERT_EQUAL(redis_metric(&d, "r", "commands"), 0);
	CU_ASSERT_EQUAL(redis_metric(&d, "r", "errors"), (long long)(sizeof(bad) / sizeof(bad[0])));
	close(fd);
	dg_daemon_stop_checked(&d, "r");
}

/* TTLs as Redis holds them, then an expiry seen through the plugin. */
static void test_ttl(void)
{
	struct dg_daemon d;
	int fd = redis_client(2, 5000);
	char buf[512];

	CU_ASSERT_FATAL(fd >= 0);
	CU_ASSERT_FATAL(start(&d, conf(1, "", ", \"prefix\": \"t2:\"")));
	expect(fd, &d, "{\"op\":\"set\",\"key\":\"long\",\"value\":\"v\",\"ttl_ms\":60000}", "{\"ok\":true}");
	long long pttl = redis_int(rs.port, 2, (const char *[]){ "PTTL", "t2:long" });
	fprintf(stderr, "ttl_ms 60000: PTTL %lld\n", pttl);
	CU_ASSERT(pttl > 50000 && pttl <= 60000);
	expect(fd, &d, "{\"op\":\"set\",\"key\":\"long\",\"value\":\"w\"}", "{\"ok\":true}");
	CU_ASSERT_EQUAL(redis_int(rs.port, 2, (const char *[]){ "PTTL", "t2:long" }), -1);
	/* Redis says when it expires the key (a keyspace event): no waiting on
	 * the clock. */
	int events = redis_subscribe(rs.port, "__keyevent@0__:expired");
	CU_ASSERT_FATAL(events >= 0);
	expect(fd, &d, "{\"op\":\"set\",\"key\":\"short\",\"value\":\"v\",\"ttl_ms\":50}", "{\"ok\":true}");
	pttl = redis_int(rs.port, 2, (const char *[]){ "PTTL", "t2:short" });
	CU_ASSERT(pttl == -2 || (pttl >= 0 && pttl <= 50)); /* -2: already gone */
	CU_ASSERT(redis_await(events, "t2:short", 5000));
	close(events);
	CU_ASSERT_FATAL(redis_ask(fd, &d, "{\"op\":\"get\",\"key\":\"short\"}", buf, sizeof(buf), NULL));
	bool gone = !strcmp(buf, "{\"ok\":true,\"value\":null}");
	CU_ASSERT(gone);
	close(fd);
	dg_daemon_stop_checked(&d, "r");
}

/* clients peers (one address each) send rounds incr each, one at a time,
 * client c to daemon (c + round) % n: the replies that said ok. */
static unsigned run_incr(struct dg_daemon *const *d, unsigned n, unsigned clients, unsigned rounds,
                         const char *key, unsigned *errors)
{
	int fd[64];
	unsigned sent[64] = { 0 }, ok = 0, done = 0;
	char req[128], buf[512];

	CU_ASSERT_FATAL(clients <= 64);
	snprintf(req, sizeof(req), "{\"op\":\"incr\",\"key\":\"%s\"}", key);
	for (unsigned c = 0; c < clients; c++) {
		fd[c] = redis_client(10 + c, 5000);
		CU_ASSERT_FATAL(fd[c] >= 0);
	}
	for (unsigned c = 0; c < clients; c++, sent[c - 1]++) {
		const struct dg_daemon *to = d[c % n];
		CU_ASSERT(sendto(fd[c], req, strlen(req), 0, (const struct sockaddr *)&to->addr[0],
		                 to->addrlen[0]) > 0);
	}
	double deadline = dg_now_ms() + 60000;
	while (done < clients && dg_now_ms() < deadline) {
		struct pollfd p[64];
		for (unsigned c = 0; c < clients; c++)
			p[c] = (struct pollfd){ .fd = fd[c], .events = POLLIN };
		if (poll(p, clients, 1000) <= 0)
			continue;
		for (unsigned c = 0; c < clients; c++) {
			if (!(p[c].revents & POLLIN))
				continue;
			ssize_t len = recv(fd[c], buf, sizeof(buf) - 1, 0);
			if (len < 0)
				continue;
			buf[len] = '\0';
			if (!strncmp(buf, "{\"ok\":true,\"value\":", 19))
				ok++;
			else
				(*errors)++;
			if (sent[c] == rounds) {
				done++;
				continue;
			}
			const struct dg_daemon *to = d[(c + sent[c]) % n];
			CU_ASSERT(sendto(fd[c], req, strlen(req), 0, (const struct sockaddr *)&to->addr[0],
			                 to->addrlen[0]) > 0);
			sent[c]++;
		}
	}
	for (unsigned c = 0; c < clients; c++)
		close(fd[c]);
	return ok;
}

/* Workers of the metric name with a value above 0, from /metrics. */
static unsigned busy_workers(const struct dg_daemon *d, const char *name)
{
	char *buf = malloc(1 << 20), prefix[128];
	unsigned n = 0;

	CU_ASSERT_FATAL(buf != NULL);
	snprintf(prefix, sizeof(prefix), "dgramd_plugin_redis_%s{", name);
	if (dg_http_get(d, "/metrics", buf, 1 << 20) == 200)
		for (char *p = strstr(buf, prefix); p; p = strstr(p + 1, prefix))
			n += atoll(strchr(p, ' ') + 1) > 0;
	free(buf);
	return n;
}

static void test_two_workers(void)
{
	enum { CLIENTS = 40, ROUNDS = 25 };
	struct dg_daemon d;
	struct dg_daemon *ds[] = { &d };
	unsigned errors = 0;

	CU_ASSERT_FATAL(start(&d, conf(2, "", ", \"prefix\": \"t3:\"")));
	CU_ASSERT_FATAL(wait_log(&d, "connected to redis", 2)); /* both workers */
	double t0 = dg_now_ms();
	unsigned ok = run_incr(ds, 1, CLIENTS, ROUNDS, "w", &errors);
	double ms = dg_now_ms() - t0;
	long long final = redis_int(rs.port, 3, (const char *[]){ "INCRBY", "t3:w", "0" });
	unsigned workers = busy_workers(&d, "commands_total");
	fprintf(stderr, "two workers: %u incr ok, %u errors, final %lld, %u workers used, %.0f ms "
	        "(%.0f incr/s)\n", ok, errors, final, workers, ms, ok * 1000.0 / ms);
	CU_ASSERT_EQUAL(ok, CLIENTS * ROUNDS);
	CU_ASSERT_EQUAL(errors, 0);
	CU_ASSERT_EQUAL(final, CLIENTS * ROUNDS);
	CU_ASSERT_EQUAL(workers, 2);
	CU_ASSERT_EQUAL(redis_metric(&d, "r", "commands"), CLIENTS * ROUNDS);
	dg_daemon_stop_checked(&d, "r");
}

static void test_two_instances(void)
{
	enum { CLIENTS = 40, ROUNDS = 25 };
	struct dg_daemon a, b;
	struct dg_daemon *ds[] = { &a, &b };
	unsigned errors = 0;

	CU_ASSERT_FATAL(start(&a, conf(1, "", ", \"prefix\": \"t4:\"")));
	CU_ASSERT_FATAL(start(&b, conf(1, "", ", \"prefix\": \"t4:\"")));
	unsigned ok = run_incr(ds, 2, CLIENTS, ROUNDS, "i", &errors);
	long long final = redis_int(rs.port, 3, (const char *[]){ "INCRBY", "t4:i", "0" });
	long long ca = redis_metric(&a, "r", "commands"), cb = redis_metric(&b, "r", "commands");
	fprintf(stderr, "two instances: %u incr ok, %u errors, final %lld (%lld + %lld commands)\n",
	        ok, errors, final, ca, cb);
	CU_ASSERT_EQUAL(ok, CLIENTS * ROUNDS);
	CU_ASSERT_EQUAL(final, CLIENTS * ROUNDS);
	CU_ASSERT_EQUAL(ca, CLIENTS * ROUNDS / 2);
	CU_ASSERT_EQUAL(cb, CLIENTS * ROUNDS / 2);
	dg_daemon_stop_checked(&a, "r");
	dg_daemon_stop_checked(&b, "r");
}

/* Requests while Redis is dead: every one answered with an error, at once. */
static void ask_while_down(int fd, const struct dg_daemon *d, unsigned n, double *worst)
{
	char buf[512];
	double ms;

	for (unsigned i = 0; i < n; i++) {
		CU_ASSERT_FATAL(redis_ask(fd, d, "{\"op\":\"incr\",\"key\":\"down\"}", buf, sizeof(buf), &ms));
		CU_ASSERT(!strcmp(buf, "{\"ok\":false,\"error\":\"redis connection lost\"}") ||
		          !strcmp(buf, "{\"ok\":false,\"error\":\"redis unavailable\"}"));
		if (ms > *worst)
			*worst = ms;
	}
}

/* Probe until Redis answers through the plugin again: after each failed
 * probe, wait for the plugin's next connection (its log line). */
static bool wait_served(int fd, const struct dg_daemon *d)
{
	char buf[512];
	double deadline = dg_now_ms() + 15000;

	while (dg_now_ms() < deadline) {
		unsigned seen = dg_file_count(d->log, "connected to redis");
		if (redis_ask(fd, d, "{\"op\":\"get\",\"key\":\"probe\"}", buf, sizeof(buf), NULL) &&
		    !strcmp(buf, "{\"ok\":true,\"value\":null}"))
			return true;
		if (!wait_log(d, "connected to redis", seen + 1))
			return false;
	}
	return false;
}

static void test_redis_killed(void)
{
	struct dg_daemon d;
	int fd = redis_client(3, 3000);
	double worst = 0;

	CU_ASSERT_FATAL(fd >= 0);
	CU_ASSERT_FATAL(start(&d, conf(1, ", \"handler_timeout_ms\": 1000",
	                               ", \"timeout_ms\": 300, \"reconnect_min_ms\": 20, "
	                               "\"reconnect_max_ms\": 200")));
	expect(fd, &d, "{\"op\":\"incr\",\"key\":\"down\"}", "{\"ok\":true,\"value\":1}");
	redis_server_signal(&rs, SIGKILL);
	ask_while_down(fd, &d, 20, &worst);
	CU_ASSERT(wait_log(&d, "reconnecting to redis", 3)); /* it keeps trying, with backoff */
	CU_ASSERT(redis_metric(&d, "r", "reconnects") >= 3);
	ask_while_down(fd, &d, 20, &worst);
	fprintf(stderr, "redis killed: 40 error replies, the slowest in %.1f ms\n", worst);
	CU_ASSERT(worst < 1000); /* handler_timeout_ms */
	CU_ASSERT_EQUAL(redis_metric(&d, "r", "connected"), 0);
	long long before = redis_metric(&d, "r", "reconnects");
	CU_ASSERT_FATAL(redis_server_start(&rs, rs.port));
	double t0 = dg_now_ms();
	CU_ASSERT(wait_served(fd, &d));
	fprintf(stderr, "redis restarted: served again after %.0f ms (backoff at most 200 ms), "
	        "%lld reconnection attempts while down\n", dg_now_ms() - t0, before);
	CU_ASSERT_EQUAL(redis_metric(&d, "r", "connected"), 1);
	expect(fd, &d, "{\"op\":\"incr\",\"key\":\"down\"}", "{\"ok\":true,\"value\":1}"); /* a new, empty Redis */
	close(fd);
	dg_daemon_stop_checked(&d, "r");
}

/* Redis stopped (SIGSTOP): connected but silent. Commands beyond
 * max_inflight are "busy" at once; the others get "redis timeout" after
 * timeout_ms, within handler_timeout_ms; then it resumes and is used again. */
static void test_redis_slow(void)
{
	enum { INFLIGHT = 4, EXTRA = 3 };
	struct dg_daemon d;
	int fd[INFLIGHT + EXTRA];
	char buf[512];
	const char *req = "{\"op\":\"get\",\"key\":\"slow\"}";
	unsigned timeouts = 0, busy = 0;
	double worst = 0;

	CU_ASSERT_FATAL(start(&d, conf(1, ", \"handler_timeout_ms\": 2000",
	                               ", \"timeout_ms\": 300, \"max_inflight\": 4, \"reconnect_min_ms\": 20, "
	                               "\"reconnect_max_ms\": 200")));
	redis_server_signal(&rs, SIGSTOP);
	double t0 = dg_now_ms();
	for (unsigned c = 0; c < INFLIGHT + EXTRA; c++) {
		fd[c] = redis_client(100 + c, 3000);
		CU_ASSERT_FATAL(fd[c] >= 0);
		CU_ASSERT(sendto(fd[c], req, strlen(req), 0, (const struct sockaddr *)&d.addr[0],
		                 d.addrlen[0]) > 0);
		/* one socket, read in order: the first INFLIGHT take the slots,
		 * the next ones find none */
	}
	for (unsigned c = 0; c < INFLIGHT + EXTRA; c++) {
		ssize_t n = recv(fd[c], buf, sizeof(buf) - 1, 0);
		CU_ASSERT_FATAL(n > 0);
		buf[n] = '\0';
		double ms = dg_now_ms() - t0;
		worst = ms > worst ? ms : worst;
		timeouts += !strcmp(buf, "{\"ok\":false,\"error\":\"redis timeout\"}");
		busy += !strcmp(buf, "{\"ok\":false,\"error\":\"busy\"}");
		close(fd[c]);
	}
	fprintf(stderr, "redis stopped: %u redis timeout, %u busy, all answered within %.0f ms\n",
	        timeouts, busy, worst);
	CU_ASSERT_EQUAL(timeouts, INFLIGHT);
	CU_ASSERT_EQUAL(busy, EXTRA);
	CU_ASSERT(worst < 2000);
	CU_ASSERT_EQUAL(redis_metric(&d, "r", "busy"), EXTRA);
	redis_server_signal(&rs, SIGCONT);
	int probe = redis_client(120, 3000);
	CU_ASSERT_FATAL(probe >= 0);
	CU_ASSERT(wait_served(probe, &d));
	close(probe);
	dg_daemon_stop_checked(&d, "r");
}

/* dgramd -t and -T on a config with the redis plugin: its config as
 * written to path. */
static int run_check(const char *flag, const char *config, char *out, size_t outlen, char *err,
                     size_t errlen)
{
	char text[2048], path[4096], bin[4096], plugins[4096];

	snprintf(bin, sizeof(bin), "%s/dgramd", dg_test_builddir());
	snprintf(plugins, sizeof(plugins), "%s/plugins/.libs", dg_test_builddir());
	snprintf(text, sizeof(text), "{\"listeners\": [{\"name\": \"a\", \"bind\": \"127.0.0.1:0\", "
	         "\"handler\": \"echo\"}, {\"name\": \"r\", \"bind\": \"127.0.0.1:0\", \"codec\": "
	         "\"json\", \"handler\": {\"plugin\": \"redis\", \"config\": %s}}]}", config);
	snprintf(path, sizeof(path), "%s", dg_test_write("redis-check.json", text));
	const char *argv[] = { bin, "-P", plugins, flag, "-c", path, NULL };
	return dg_run(argv, NULL, out, outlen, err, errlen, 10000);
}

/* Config errors name the key path (the host checks the declared options;
 * the plugin the two backoff keys together); -t reports them. */
static void test_config_errors(void)
{
	static const struct {
		const char *config, *error;
	} cases[] = {
		{ "{\"server\": \"redis.example:6379\"}",
		  "listeners[1].handler.config.server: expected a numeric \"a.b.c.d:port\" or \"[ipv6]:port\" "
		  "(got \"redis.example:6379\")" },
		{ "{\"prefix\": \"" DG_REPEAT_257 "\"}",
		  "listeners[1].handler.config.prefix: must be 0 .. 256 bytes long (got 257)" },
		{ "{\"max_key\": 0}", "listeners[1].handler.config.max_key: must be 1 .. 4096 (got 0)" },
		{ "{\"max_value\": 65001}", "listeners[1].handler.config.max_value: must be 1 .. 65000 (got 65001)" },
		{ "{\"max_inflight\": 1.5}",
		  "listeners[1].handler.config.max_inflight: expected an integer (1 .. 65536), got a real number" },
		{ "{\"timeout_ms\": 3600001}", "listeners[1].handler.config.timeout_ms: must be 1 .. 3600000 (got 3600001)" },
		{ "{\"reconnect_min_ms\": 0}", "listeners[1].handler.config.reconnect_min_ms: must be 1 .. 600000 (got 0)" },
		{ "{\"reconect_max_ms\": 10}",
		  "listeners[1].handler.config.reconect_max_ms: unknown key (did you mean 'reconnect_max_ms'?)" },
		{ "{\"reconnect_min_ms\": 500, \"reconnect_max_ms\": 100}",
		  "plugin 'redis': config.reconnect_max_ms: 100 is below reconnect_min_ms (500)" },
	};
	char out[8192], err[8192];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		CU_ASSERT_EQUAL(run_check("-t", cases[i].config, out, sizeof(out), err, sizeof(err)), 1);
		if (!strstr(err, cases[i].error))
			fprintf(stderr, "%s: expected %s\n  got %s\n", cases[i].config, cases[i].error, err);
		CU_ASSERT_PTR_NOT_NULL(strstr(err, cases[i].error));
	}
	CU_ASSERT_EQUAL(run_check("-t", "{\"reconnect_min_ms\": 500, \"reconnect_max_ms\": 500}", out,
	                          sizeof(out), err, sizeof(err)), 0);
}

/* -T shows every option, defaults filled in. */
static void test_dump_options(void)
{
	char *out = malloc(65536), err[8192];
	const char *want = "{\"server\":\"[::1]:6380\",\"prefix\":\"dgramd:\",\"max_key\":256,"
	                   "\"max_value\":4096,\"max_inflight\":1024,\"timeout_ms\":1000,"
	                   "\"reconnect_min_ms\":100,\"reconnect_max_ms\":5000}";

	CU_ASSERT_FATAL(out != NULL);
	CU_ASSERT_EQUAL_FATAL(run_check("-T", "{\"server\": \"[::1]:6380\"}", out, 65536, err,
	                                sizeof(err)), 0);
	json_t *j = json_loads(out, 0, NULL);
	json_t *c = json_object_get(json_object_get(json_array_get(json_object_get(j, "listeners"), 1),
	                                            "handler"), "config");
	char *got = json_dumps(c, JSON_COMPACT | JSON_PRESERVE_ORDER);
	if (!got || strcmp(got, want))
		fprintf(stderr, "-T: expected %s\n  got %s\n", want, got ? got : "(none)");
	CU_ASSERT(got && !strcmp(got, want));
	free(got);
	json_decref(j);
	free(out);
}

static const struct dg_test redis_tests[] = {
	{ "get, set, incr, del, id, prefix", test_ops },
	{ "bad requests never reach redis", test_bad_requests },
	{ "ttl_ms read back with PTTL, then expiry", test_ttl },
	{ "incr shared by two workers", test_two_workers },
	{ "incr shared by two dgramd instances", test_two_instances },
	{ "redis killed: errors at once, reconnect after restart", test_redis_killed },
	{ "redis stopped: busy and timeouts within the deadline", test_redis_slow },
	{ "-t names a bad option by its key path", test_config_errors },
	{ "-T shows every option", test_dump_options },
	{ NULL, NULL },
};

int main(void)
{
	static const struct dg_suite suites[] = { { "redis", redis_tests }, { NULL, NULL } };

	return redis_test_main(suites, &rs, NULL, NULL);
}
