/* The redis plugin on the harness (<dgramd/testing.h>), against a real
 * redis-server (Debian package redis-server) that this test starts on a
 * free loopback port: the plugin's connection runs on the harness's event
 * loop (dg_harness_run); the handler deadline, the plugin's timeout_ms and
 * its reconnection backoff on the fake clock. Every op, errors while Redis
 * is down, the backoff, "redis timeout" from a stopped (SIGSTOP) Redis,
 * the handler deadline passing while a command is at Redis and its
 * late reply arriving afterwards (the command's slot must outlive the
 * request: under ASan a slot freed with the request is a use after free
 * here), max_inflight, and config errors by key path. Skipped (exit 77)
 * when redis-server or the plugin (hiredis) is missing. */
#include "config.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include <dgramd/testing.h>

#include "integration/redisutil.h"
#include "testutil.h"

static struct redis_server rs;

/* A harness serving the redis plugin (JSON codec) on rs, with listener
 * keys (may be "") and plugin config keys (may be ""); NULL with the
 * reason in err. */
static struct dg_harness *redis_on_port(unsigned port, const char *listener, const char *config,
                                        char *err, size_t errlen)
{
	char text[2048];

	snprintf(text, sizeof(text), "{\"codec\": \"json\", %s%s\"handler\": {\"plugin\": "
	         "\"%s/plugins/.libs/redis.so\", \"config\": {\"server\": \"127.0.0.1:%u\"%s%s}}}",
	         listener, listener[0] ? ", " : "", dg_test_builddir(), port, config[0] ? ", " : "",
	         config);
	return dg_harness_new(text, NULL, err, errlen);
}

static struct dg_harness *redis_on(const char *listener, const char *config)
{
	char err[1024];
	struct dg_harness *h = redis_on_port(rs.port, listener, config, err, sizeof(err));

	if (!h)
		fprintf(stderr, "redis harness: %s\n", err);
	CU_ASSERT_PTR_NOT_NULL(h);
	return h;
}

/* Send req from peer and run the loop until its reply (the next one) has
 * come, within 3 s; then compare it whole. */
static void ask(struct dg_harness *h, const char *peer, const char *req, const char *want)
{
	size_t n = dg_harness_replies(h);

	CU_ASSERT_EQUAL_FATAL(dg_harness_send_text(h, peer, req), DG_OK);
	CU_ASSERT_TRUE(dg_harness_run(h, n + 1, 3000));
	DG_TEST_ASSERT_REPLIES(h, n + 1);
	if (!dg_harness_reply_is(h, n, want))
		fprintf(stderr, "  (the reply to %s)\n", req);
	DG_TEST_ASSERT_REPLY_TO(h, n, peer, want);
}

static void test_ops(void)
{
	struct dg_harness *h = redis_on("", "\"prefix\": \"u1:\"");
	char out[256];
	CU_ASSERT_PTR_NOT_NULL_FATAL(h);

	ask(h, "127.0.0.1:4001", "{\"op\":\"set\",\"key\":\"k\",\"value\":\"v\",\"id\":\"a\"}",
	    "{\"ok\":true,\"id\":\"a\"}");
	CU_ASSERT(redis_cmd(rs.port, out, sizeof(out), 2, (const char *[]){ "GET", "u1:k" }));
	CU_ASSERT_STRING_EQUAL(out, "$v");
	ask(h, "127.0.0.1:4001", "{\"op\":\"get\",\"key\":\"k\",\"id\":7}",
	    "{\"ok\":true,\"value\":\"v\",\"id\":7}");
	ask(h, "127.0.0.1:4001", "{\"op\":\"get\",\"key\":\"none\"}", "{\"ok\":true,\"value\":null}");
	ask(h, "127.0.0.2:4002", "{\"op\":\"incr\",\"key\":\"n\"}", "{\"ok\":true,\"value\":1}");
	ask(h, "127.0.0.2:4002", "{\"op\":\"incr\",\"key\":\"n\",\"by\":41}", "{\"ok\":true,\"value\":42}");
	ask(h, "127.0.0.2:4002", "{\"op\":\"set\",\"key\":\"i\",\"value\":5,\"ttl_ms\":60000}",
	    "{\"ok\":true}");
	long long pttl = redis_int(rs.port, 2, (const char *[]){ "PTTL", "u1:i" });
	CU_ASSERT(pttl > 50000 && pttl <= 60000);
	ask(h, "127.0.0.2:4002", "{\"op\":\"incr\",\"key\":\"k\"}",
	    "{\"ok\":false,\"error\":\"redis: ERR value is not an integer or out of range\"}");
	ask(h, "127.0.0.1:4001", "{\"op\":\"del\",\"key\":\"k\"}", "{\"ok\":true,\"value\":1}");
	ask(h, "127.0.0.1:4001", "{\"op\":\"del\",\"key\":\"k\"}", "{\"ok\":true,\"value\":0}");
	/* refused before Redis sees it: answered at once, no command */
	CU_ASSERT_EQUAL(dg_harness_send_text(h, "127.0.0.1:4001", "{\"op\":\"get\"}"), DG_OK);
	DG_TEST_ASSERT_REPLY(h, dg_harness_replies(h) - 1,
	                     "{\"ok\":false,\"error\":\"bad request: \\\"key\\\" must be a non-empty string\"}");
	DG_TEST_ASSERT_COUNTER(h, "commands", 9);
	DG_TEST_ASSERT_COUNTER(h, "errors", 2);
	DG_TEST_ASSERT_COUNTER(h, "connected", 1);
	DG_TEST_ASSERT_COUNTER(h, "inflight", 0);
	DG_TEST_ASSERT_COUNTER(h, "stale_calls", 0);
	CU_ASSERT_EQUAL(dg_harness_pending(h), 0);
	dg_harness_free(h);
}

/* Nothing listens on the port: the command queued while connecting fails
 * with the connection, and the next ones are answered at once, without
 * the loop running. */
static void test_down(void)
{
	const char *want = "{\"ok\":false,\"error\":\"redis unavailable\",\"id\":1}";
	char err[1024];
	struct dg_harness *h = redis_on_port(dg_free_port(SOCK_STREAM), "",
	                                     "\"reconnect_min_ms\": 60000, \"reconnect_max_ms\": 60000",
	                                     err, sizeof(err));
	CU_ASSERT_PTR_NOT_NULL_FATAL(h);

	ask(h, "127.0.0.1:4001", "{\"op\":\"get\",\"key\":\"k\",\"id\":1}", want);
	for (int i = 0; i < 3; i++) {
		size_t n = dg_harness_replies(h);
		CU_ASSERT_EQUAL(dg_harness_send_text(h, "127.0.0.1:4001",
		                                     "{\"op\":\"get\",\"key\":\"k\",\"id\":1}"), DG_OK);
		DG_TEST_ASSERT_REPLIES(h, n + 1);
		DG_TEST_ASSERT_REPLY(h, n, want);
	}
	DG_TEST_ASSERT_COUNTER(h, "connected", 0);
	DG_TEST_ASSERT_COUNTER(h, "errors", 4);
	DG_TEST_ASSERT_COUNTER(h, "commands", 1);
	CU_ASSERT_EQUAL(dg_harness_pending(h), 0);
	dg_harness_free(h);
}

/* Connect (a first command answered), then stop Redis: it keeps the
 * connection but answers nothing. */
static struct dg_harness *stopped(const char *listener, const char *config)
{
	struct dg_harness *h = redis_on(listener, config);

	if (h) {
		ask(h, "127.0.0.9:4009", "{\"op\":\"get\",\"key\":\"probe\"}", "{\"ok\":true,\"value\":null}");
		redis_server_signal(&rs, SIGSTOP);
		dg_harness_clear(h);
	}
	return h;
}

/* Redis stopped: the command gets "redis timeout" when timeout_ms has
 * passed on the fake clock, long before the handler deadline, and the
 * connection is dropped; reconnect_min_ms later a new one is made, and
 * serves once Redis resumes. A second command sent later times out at its
 * own time, not the first one's. */
static void test_redis_timeout(void)
{
	struct dg_harness *h = stopped("\"handler_timeout_ms\": 60000",
	                               "\"timeout_ms\": 100, \"reconnect_min_ms\": 50");
	CU_ASSERT_PTR_NOT_NULL_FATAL(h);

	CU_ASSERT_EQUAL(dg_harness_send_text(h, "127.0.0.1:4001", "{\"op\":\"get\",\"key\":\"k\",\"id\":3}"),
	                DG_OK);
	dg_harness_advance(h, 40);
	CU_ASSERT_EQUAL(dg_harness_send_text(h, "127.0.0.2:4002", "{\"op\":\"get\",\"key\":\"k\",\"id\":4}"),
	                DG_OK);
	dg_harness_advance(h, 59);
	DG_TEST_ASSERT_REPLIES(h, 0);
	DG_TEST_ASSERT_COUNTER(h, "inflight", 2);
	dg_harness_advance(h, 1); /* the first has waited 100 ms: the connection goes */
	DG_TEST_ASSERT_REPLIES(h, 2);
	DG_TEST_ASSERT_REPLY_TO(h, 0, "127.0.0.1:4001", "{\"ok\":false,\"error\":\"redis timeout\",\"id\":3}");
	DG_TEST_ASSERT_REPLY_TO(h, 1, "127.0.0.2:4002", "{\"ok\":false,\"error\":\"redis timeout\",\"id\":4}");
	DG_TEST_ASSERT_COUNTER(h, "timeouts", 0);
	DG_TEST_ASSERT_COUNTER(h, "inflight", 0);
	DG_TEST_ASSERT_COUNTER(h, "connected", 0);
	CU_ASSERT_EQUAL(dg_harness_pending(h), 0);
	/* down: answered at once until the backoff timer makes a new attempt */
	ask(h, "127.0.0.1:4001", "{\"op\":\"get\",\"key\":\"k\"}", "{\"ok\":false,\"error\":\"redis unavailable\"}");
	dg_harness_advance(h, 49);
	DG_TEST_ASSERT_COUNTER(h, "reconnects", 0);
	dg_harness_advance(h, 1);
	DG_TEST_ASSERT_COUNTER(h, "reconnects", 1);
	/* queued on the new connection, served once Redis resumes */
	CU_ASSERT_EQUAL(dg_harness_send_text(h, "127.0.0.1:4001", "{\"op\":\"get\",\"key\":\"k\",\"id\":5}"),
	                DG_OK);
	redis_server_signal(&rs, SIGCONT);
	CU_ASSERT_TRUE(dg_harness_run(h, 4, 3000));
	DG_TEST_ASSERT_REPLY(h, 3, "{\"ok\":true,\"value\":null,\"id\":5}");
	DG_TEST_ASSERT_COUNTER(h, "connected", 1);
	/* a command sent later times out timeout_ms after it was sent, though
	 * the timer started with the last one (due in 40 ms) fires first */
	dg_harness_advance(h, 60);
	redis_server_signal(&rs, SIGSTOP);
	dg_harness_clear(h);
	CU_ASSERT_EQUAL(dg_harness_send_text(h, "127.0.0.1:4001", "{\"op\":\"get\",\"key\":\"k\"}"), DG_OK);
	dg_harness_advance(h, 99);
	DG_TEST_ASSERT_REPLIES(h, 0);
	dg_harness_advance(h, 1);
	DG_TEST_ASSERT_REPLY(h, 0, "{\"ok\":false,\"error\":\"redis timeout\"}");
	redis_server_signal(&rs, SIGCONT);
	dg_harness_free(h);
}

/* Nothing listens on the port: each failed attempt doubles the wait before
 * the next (reconnect_min_ms, up to reconnect_max_ms), on the fake clock;
 * once a Redis listens there, the next attempt connects and serves. */
static void test_backoff(void)
{
	const char *down = "{\"ok\":false,\"error\":\"redis unavailable\"}";
	struct redis_server other;
	unsigned port = dg_free_port(SOCK_STREAM);
	char err[1024];
	struct dg_harness *h = redis_on_port(port, "", "\"reconnect_min_ms\": 100, \"reconnect_max_ms\": 250",
	                                     err, sizeof(err));
	CU_ASSERT_PTR_NOT_NULL_FATAL(h);
	static const unsigned waits[] = { 100, 200, 250 };

	ask(h, "127.0.0.1:4001", "{\"op\":\"get\",\"key\":\"k\"}", down); /* the first attempt failed */
	for (unsigned i = 0; i < 3; i++) {
		dg_harness_advance(h, waits[i] - 1);
		DG_TEST_ASSERT_COUNTER(h, "reconnects", i);
		dg_harness_advance(h, 1);
		DG_TEST_ASSERT_COUNTER(h, "reconnects", i + 1);
		/* this attempt's failure (the request waits on the attempt) */
		ask(h, "127.0.0.1:4001", "{\"op\":\"get\",\"key\":\"k\"}", down);
	}
	/* a Redis listens there now: the next attempt, at the longest wait,
	 * connects */
	CU_ASSERT_FATAL(redis_server_start(&other, port));
	dg_harness_advance(h, 249);
	DG_TEST_ASSERT_COUNTER(h, "reconnects", 3);
	DG_TEST_ASSERT_COUNTER(h, "connected", 0);
	dg_harness_advance(h, 1);
	DG_TEST_ASSERT_COUNTER(h, "reconnects", 4);
	ask(h, "127.0.0.1:4001", "{\"op\":\"get\",\"key\":\"k\"}", "{\"ok\":true,\"value\":null}");
	DG_TEST_ASSERT_COUNTER(h, "connected", 1);
	dg_harness_free(h);
	redis_server_signal(&other, SIGKILL);
}

/* The handler deadline passes (fake clock) while the command is at a
 * stopped Redis: the request is answered "timeout" and ends, but hiredis
 * still holds the command. Redis resumes: the late reply arrives (before
 * the next command's, in order on the connection) and goes nowhere: no
 * reply, no stale call, no freed memory touched; the slot is free again. */
static void test_deadline_then_late_reply(void)
{
	struct dg_harness *h = stopped("\"handler_timeout_ms\": 200", "\"timeout_ms\": 3600000");
	CU_ASSERT_PTR_NOT_NULL_FATAL(h);

	CU_ASSERT_EQUAL(dg_harness_send_text(h, "127.0.0.1:4001",
	                                     "{\"op\":\"incr\",\"key\":\"late\",\"id\":1}"), DG_OK);
	CU_ASSERT_EQUAL(dg_harness_send_text(h, "127.0.0.2:4002",
	                                     "{\"op\":\"incr\",\"key\":\"late\",\"id\":2}"), DG_OK);
	DG_TEST_ASSERT_COUNTER(h, "inflight", 2);
	dg_harness_advance(h, 200);
	DG_TEST_ASSERT_REPLIES(h, 2);
	DG_TEST_ASSERT_REPLY_TO(h, 0, "127.0.0.1:4001", "{\"ok\":false,\"error\":\"timeout\",\"id\":1}");
	DG_TEST_ASSERT_REPLY_TO(h, 1, "127.0.0.2:4002", "{\"ok\":false,\"error\":\"timeout\",\"id\":2}");
	DG_TEST_ASSERT_COUNTER(h, "timeouts", 2);
	CU_ASSERT_EQUAL(dg_harness_pending(h), 0);
	DG_TEST_ASSERT_COUNTER(h, "inflight", 2); /* hiredis still owes both replies */
	redis_server_signal(&rs, SIGCONT);
	ask(h, "127.0.0.3:4003", "{\"op\":\"get\",\"key\":\"late\",\"id\":3}",
	    "{\"ok\":true,\"value\":\"2\",\"id\":3}"); /* both were applied */
	DG_TEST_ASSERT_REPLIES(h, 3);
	DG_TEST_ASSERT_COUNTER(h, "inflight", 0);
	DG_TEST_ASSERT_COUNTER(h, "stale_calls", 0);
	DG_TEST_ASSERT_COUNTER(h, "commands", 4);
	/* the slots are usable again */
	ask(h, "127.0.0.1:4001", "{\"op\":\"del\",\"key\":\"late\"}", "{\"ok\":true,\"value\":1}");
	dg_harness_free(h);
}

/* The server stops (dg_harness_free) with commands at a stopped Redis:
 * the requests are abandoned, then fini drops the connection and hiredis
 * calls back for each command into slots that still exist. */
static void test_shutdown_with_commands(void)
{
	struct dg_harness *h = stopped("", "");
	CU_ASSERT_PTR_NOT_NULL_FATAL(h);

	CU_ASSERT_EQUAL(dg_harness_send_text(h, "127.0.0.1:4001", "{\"op\":\"get\",\"key\":\"k\"}"), DG_OK);
	CU_ASSERT_EQUAL(dg_harness_send_text(h, "127.0.0.2:4002", "{\"op\":\"get\",\"key\":\"k\"}"), DG_OK);
	CU_ASSERT_EQUAL(dg_harness_pending(h), 2);
	DG_TEST_ASSERT_COUNTER(h, "inflight", 2);
	dg_harness_free(h);
	redis_server_signal(&rs, SIGCONT);
}

/* max_inflight commands at a stopped Redis: the next request is "busy" at
 * once; when Redis resumes the others are answered and slots free up. */
static void test_max_inflight(void)
{
	struct dg_harness *h = stopped("", "\"max_inflight\": 2");
	CU_ASSERT_PTR_NOT_NULL_FATAL(h);

	CU_ASSERT_EQUAL(dg_harness_send_text(h, "127.0.0.1:4001", "{\"op\":\"incr\",\"key\":\"b\"}"), DG_OK);
	CU_ASSERT_EQUAL(dg_harness_send_text(h, "127.0.0.2:4002", "{\"op\":\"incr\",\"key\":\"b\"}"), DG_OK);
	DG_TEST_ASSERT_REPLIES(h, 0);
	CU_ASSERT_EQUAL(dg_harness_send_text(h, "127.0.0.3:4003", "{\"op\":\"incr\",\"key\":\"b\",\"id\":3}"),
	                DG_OK);
	DG_TEST_ASSERT_REPLIES(h, 1);
	DG_TEST_ASSERT_REPLY_TO(h, 0, "127.0.0.3:4003", "{\"ok\":false,\"error\":\"busy\",\"id\":3}");
	DG_TEST_ASSERT_COUNTER(h, "busy", 1);
	DG_TEST_ASSERT_COUNTER(h, "inflight", 2);
	redis_server_signal(&rs, SIGCONT);
	CU_ASSERT_TRUE(dg_harness_run(h, 3, 3000));
	DG_TEST_ASSERT_REPLY_TO(h, 1, "127.0.0.1:4001", "{\"ok\":true,\"value\":1}");
	DG_TEST_ASSERT_REPLY_TO(h, 2, "127.0.0.2:4002", "{\"ok\":true,\"value\":2}");
	DG_TEST_ASSERT_COUNTER(h, "inflight", 0);
	ask(h, "127.0.0.3:4003", "{\"op\":\"del\",\"key\":\"b\"}", "{\"ok\":true,\"value\":1}");
	dg_harness_free(h);
}

/* The host checks the config against the plugin's table: errors name the
 * key path; the one check across keys is the plugin's own. */
static void test_config_errors(void)
{
	static const struct { const char *config, *want; } cases[] = {
		{ "\"timeout_ms\": 0", "handler.config.timeout_ms: must be 1 .. 3600000 (got 0)" },
		{ "\"max_inflight\": 65537", "handler.config.max_inflight: must be 1 .. 65536 (got 65537)" },
		{ "\"max_key\": \"8\"", "handler.config.max_key: expected an integer (1 .. 4096), got a string" },
		{ "\"prefix\": 1", "handler.config.prefix: expected a string, got an integer" },
		{ "\"timeout_m\": 5", "handler.config.timeout_m: unknown key (did you mean 'timeout_ms'?)" },
		{ "\"host\": \"h\"", "handler.config.host: unknown key (known: server, prefix, max_key, "
		  "max_value, max_inflight, timeout_ms, reconnect_min_ms, reconnect_max_ms)" },
	};
	char err[1024];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct dg_harness *h = redis_on_port(6379, "", cases[i].config, err, sizeof(err));
		CU_ASSERT_PTR_NULL(h);
		if (!strstr(err, cases[i].want))
			fprintf(stderr, "%s: '%s' does not say '%s'\n", cases[i].config, err, cases[i].want);
		CU_ASSERT_PTR_NOT_NULL(strstr(err, cases[i].want));
		dg_harness_free(h);
	}
	struct dg_harness *h = redis_on_port(6379, "", "\"server\": \"localhost:6379\"", err, sizeof(err));
	CU_ASSERT_PTR_NULL(h);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "handler.config.server: expected a numeric \"a.b.c.d:port\" "
	                                   "or \"[ipv6]:port\" (got \"localhost:6379\")"));
	dg_harness_free(h);
	/* init() refuses it (its log line names the key: test_redis checks
	 * that with dgramd -t) */
	h = redis_on_port(6379, "", "\"reconnect_min_ms\": 500, \"reconnect_max_ms\": 100", err,
	                  sizeof(err));
	CU_ASSERT_PTR_NULL(h);
	dg_harness_free(h);
}

static const struct dg_test tests[] = {
	{ "get, set, incr, del, id, prefix", test_ops },
	{ "redis down: errors, at once after the first", test_down },
	{ "redis down: reconnection backoff on the fake clock", test_backoff },
	{ "redis stopped: redis timeout after timeout_ms, then reconnection", test_redis_timeout },
	{ "handler deadline, then the late reply", test_deadline_then_late_reply },
	{ "shutdown with commands at redis", test_shutdown_with_commands },
	{ "max_inflight: busy at once", test_max_inflight },
	{ "config errors by key path", test_config_errors },
	{ NULL, NULL },
};

int main(void)
{
	static const struct dg_suite suites[] = { { "redis", tests }, { NULL, NULL } };

	return redis_test_main(suites, &rs, NULL, NULL);
}
