/* Integration: the real dgramd on 127.0.0.1 / ::1, real sockets, port 0. */
#include "config.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testutil.h"
#include "waitfor.h"

#define LOCAL "\"127.0.0.1:0\""

/* A config with one listener "t": bind (a JSON value), codec (JSON), the
 * echo plugin's config (JSON or NULL) and extra listener keys. */
static char *config(const char *bind, const char *codec, const char *handler_config,
                    const char *extra)
{
	static char buf[4096];

	snprintf(buf, sizeof(buf),
	         "{ \"log\": {\"level\": \"info\"}, \"shutdown_timeout_ms\": 3000,\n"
	         "  \"listeners\": [{ \"name\": \"t\", \"bind\": %s, \"codec\": %s,\n"
	         "    \"handler\": {\"plugin\": \"echo\", \"config\": %s} %s }] }\n",
	         bind, codec, handler_config ? handler_config : "{}", extra ? extra : "");
	return buf;
}


static ssize_t ask(struct dg_daemon *d, int fd, const void *req, size_t len, char *buf, size_t cap)
{
	return dg_udp_ask(fd, &d->addr[0], d->addrlen[0], req, len, buf, cap);
}

static void test_json_echo(void)
{
	struct dg_daemon d;
	char buf[256];

	CU_ASSERT_FATAL(dg_daemon_start(&d, config(LOCAL, "\"json\"", NULL, NULL), NULL));
	int fd = dg_udp_client(&d.addr[0], 2000);
	ssize_t n = ask(&d, fd, "{\"a\": 1}", 8, buf, sizeof(buf));
	CU_ASSERT_EQUAL(n, 7);
	CU_ASSERT_EQUAL(memcmp(buf, "{\"a\":1}", 7), 0);
	n = ask(&d, fd, "[1, \"x\", null]", 14, buf, sizeof(buf));
	CU_ASSERT_EQUAL(n, 12);
	CU_ASSERT_EQUAL(memcmp(buf, "[1,\"x\",null]", 12), 0);
	close(fd);
	dg_daemon_stop_checked(&d, "t");
	CU_ASSERT_EQUAL(dg_daemon_stat(&d, "t", "rx"), 2);
	CU_ASSERT_EQUAL(dg_daemon_stat(&d, "t", "tx"), 2);
}

static void test_ipv6_and_two_binds(void)
{
	struct dg_daemon d;
	char buf[64];

	if (!dg_have_ipv6()) {
		fprintf(stderr, "::1 is not available here: IPv6 case not run\n");
		CU_PASS("no IPv6 loopback");
		return;
	}
	CU_ASSERT_FATAL(dg_daemon_start(&d, config("[\"127.0.0.1:0\", \"[::1]:0\"]", "\"raw\"",
	                                           "{\"prefix\": \"re:\"}", NULL), NULL));
	CU_ASSERT_EQUAL_FATAL(d.n_addr, 2);
	CU_ASSERT_EQUAL(d.addr[1].ss_family, AF_INET6);
	for (unsigned i = 0; i < 2; i++) {
		int fd = dg_udp_client(&d.addr[i], 2000);
		ssize_t n = dg_udp_ask(fd, &d.addr[i], d.addrlen[i], "hi", 2, buf, sizeof(buf));
		CU_ASSERT_EQUAL(n, 5);
		CU_ASSERT_EQUAL(memcmp(buf, "re:hi", 5), 0);
		close(fd);
	}
	dg_daemon_stop_checked(&d, "t");
}

/* 10,000 bad datagrams, then a good one: answered, a bounded number of log
 * lines about the bad ones, decode_errors = 10,000. A good request every
 * 200 bad ones acts as a barrier so the kernel's receive buffer never
 * overflows (a loss would make the count flaky, not the server wrong). */
static void test_bad_flood(void)
{
	struct dg_daemon d;
	char buf[64];
	unsigned answered = 0, barriers = 0;

	CU_ASSERT_FATAL(dg_daemon_start(&d, config(LOCAL, "\"json\"", NULL, NULL), NULL));
	int fd = dg_udp_client(&d.addr[0], 3000);
	for (int i = 1; i <= 10000; i++) {
		sendto(fd, "{bad", 4, 0, (struct sockaddr *)&d.addr[0], d.addrlen[0]);
		if (i % 200 == 0) {
			barriers++;
			answered += ask(&d, fd, "1", 1, buf, sizeof(buf)) == 1;
		}
	}
	ssize_t n = ask(&d, fd, "{\"ok\":true}", 11, buf, sizeof(buf));
	CU_ASSERT_EQUAL(n, 11);
	CU_ASSERT_EQUAL(answered, barriers);
	close(fd);
	dg_daemon_stop_checked(&d, "t");
	CU_ASSERT_EQUAL(dg_daemon_stat(&d, "t", "decode_errors"), 10000);
	CU_ASSERT_EQUAL(dg_daemon_stat(&d, "t", "handled"), barriers + 1);
	char *log = dg_daemon_log(&d);
	unsigned lines = dg_count_lines(log, "cannot decode datagram");
	fprintf(stderr, "log lines about 10000 bad datagrams: %u\n", lines);
	CU_ASSERT(lines >= 1 && lines <= 40);
	free(log);
}

static void test_error_reply(void)
{
	struct dg_daemon d;
	char buf[256];

	/* The error reply is 10 times the bad datagram: no amplification
	 * guard here (it has its own tests, test_amplification). */
	CU_ASSERT_FATAL(dg_daemon_start(&d, config(LOCAL, "\"json\"", "{\"error_reply\": true}",
	                                           ", \"amplification\": {\"factor\": 0}"), NULL));
	int fd = dg_udp_client(&d.addr[0], 2000);
	ssize_t n = ask(&d, fd, "{\"a\":", 5, buf, sizeof(buf) - 1);
	CU_ASSERT_FATAL(n > 0);
	buf[n] = '\0';
	CU_ASSERT_PTR_NOT_NULL(strstr(buf, "\"error\":"));
	CU_ASSERT_PTR_NOT_NULL(strstr(buf, "\"offset\":5"));
	close(fd);
	dg_daemon_stop_checked(&d, "t");
	CU_ASSERT_EQUAL(dg_daemon_stat(&d, "t", "decode_errors"), 1);
	char *log = dg_daemon_log(&d);
	CU_ASSERT_EQUAL(dg_count_lines(log, "cannot decode"), 0); /* the plugin handled it */
	free(log);
}

static void test_too_large(void)
{
	struct dg_daemon d;
	char big[300], buf[400];

	memset(big, 'x', sizeof(big));
	CU_ASSERT_FATAL(dg_daemon_start(&d, config(LOCAL, "\"raw\"", NULL, ", \"max_datagram\": 100"), NULL));
	int fd = dg_udp_client(&d.addr[0], 300);
	CU_ASSERT_EQUAL(ask(&d, fd, big, 101, buf, sizeof(buf)), -1); /* dropped: no reply */
	CU_ASSERT_EQUAL(ask(&d, fd, big, 100, buf, sizeof(buf)), 100);
	close(fd);
	dg_daemon_stop_checked(&d, "t");
	CU_ASSERT_EQUAL(dg_daemon_stat(&d, "t", "drop_too_large"), 1);
	CU_ASSERT_EQUAL(dg_daemon_stat(&d, "t", "handled"), 1);
}

/* A reply that cannot fit max_datagram even alone: counted, reported to the
 * handler (echo turns it into a handler error), never truncated. */
static void test_reply_too_big(void)
{
	struct dg_daemon d;
	char buf[64];

	CU_ASSERT_FATAL(dg_daemon_start(&d, config(LOCAL, "\"raw\"", "{\"prefix\": \"0123456789\"}",
	                                           ", \"max_datagram\": 12, "
	                                           "\"amplification\": {\"factor\": 0}"), NULL));
	int fd = dg_udp_client(&d.addr[0], 300);
	CU_ASSERT_EQUAL(ask(&d, fd, "ab", 2, buf, sizeof(buf)), 12);
	CU_ASSERT_EQUAL(ask(&d, fd, "abc", 3, buf, sizeof(buf)), -1);
	close(fd);
	dg_daemon_stop_checked(&d, "t");
	CU_ASSERT_EQUAL(dg_daemon_stat(&d, "t", "tx_drop_too_big"), 1);
	CU_ASSERT_EQUAL(dg_daemon_stat(&d, "t", "handler_errors"), 1);
	CU_ASSERT_EQUAL(dg_daemon_stat(&d, "t", "tx"), 1);
}

#define LPJSON "{\"framing\": \"length-prefixed\", \"width\": 2, \"payload\": \"json\"}"

static void test_length_prefixed_json(void)
{
	static const char three[] = "\0\7{\"a\":1}\0\3[2]\0\3\"c\"";
	static const char broken[] = "\0\7{\"a\":1}\0\3[2]\0\3\"c";
	struct dg_daemon d;
	char buf[256];

	CU_ASSERT_FATAL(dg_daemon_start(&d, config(LOCAL, LPJSON, NULL, NULL), NULL));
	int fd = dg_udp_client(&d.addr[0], 500);
	/* Three frames in: three frames back, coalesced in one datagram. */
	ssize_t n = ask(&d, fd, three, sizeof(three) - 1, buf, sizeof(buf));
	CU_ASSERT_EQUAL(n, (ssize_t)sizeof(three) - 1);
	CU_ASSERT_EQUAL(memcmp(buf, three, sizeof(three) - 1), 0);
	/* A broken third frame: nothing is delivered, one decode error. */
	CU_ASSERT_EQUAL(ask(&d, fd, broken, sizeof(broken) - 1, buf, sizeof(buf)), -1);
	close(fd);
	dg_daemon_stop_checked(&d, "t");
	CU_ASSERT_EQUAL(dg_daemon_stat(&d, "t", "handled"), 1);
	CU_ASSERT_EQUAL(dg_daemon_stat(&d, "t", "packets"), 3);
	CU_ASSERT_EQUAL(dg_daemon_stat(&d, "t", "decode_errors"), 1);
	CU_ASSERT_EQUAL(dg_daemon_stat(&d, "t", "tx"), 1);
}

/* A codec loaded from a .so named in the config serves a listener. */
static void test_codec_module(void)
{
	static const char conf[] =
		"{\"codec_modules\": [\"lines\"], \"listeners\": [{\"name\": \"t\", \"bind\": " LOCAL ","
		" \"codec\": {\"framing\": \"lines\", \"payload\": \"json\"}, \"handler\": \"echo\"}]}";
	struct dg_daemon d;
	char buf[128];

	CU_ASSERT_FATAL(dg_daemon_start(&d, conf, NULL));
	int fd = dg_udp_client(&d.addr[0], 2000);
	ssize_t n = ask(&d, fd, "{\"a\": 1}\n[2, 3]", 15, buf, sizeof(buf));
	CU_ASSERT_EQUAL(n, 14);
	CU_ASSERT_EQUAL(memcmp(buf, "{\"a\":1}\n[2,3]\n", 14), 0);
	close(fd);
	dg_daemon_stop_checked(&d, "t");
	CU_ASSERT_EQUAL(dg_daemon_stat(&d, "t", "packets"), 2);
}

/* Deferred replies from a timer; SIGTERM waits for them. */
static void test_deferred_and_shutdown(void)
{
	struct dg_daemon d;
	char buf[64];

	CU_ASSERT_FATAL(dg_daemon_start(&d, "{\"shutdown_timeout_ms\": 3000, \"metrics\": {\"bind\": "
	        "\"127.0.0.1:0\"}, \"listeners\": [{\"name\": \"t\", \"bind\": " LOCAL ", \"codec\": "
	        "\"raw\", \"handler\": {\"plugin\": \"echo\", \"config\": {\"delay_ms\": 300}}}]}", NULL));
	int fd = dg_udp_client(&d.addr[0], 3000);
	CU_ASSERT_EQUAL(ask(&d, fd, "one", 3, buf, sizeof(buf)), 3);
	CU_ASSERT_EQUAL(sendto(fd, "two", 3, 0, (struct sockaddr *)&d.addr[0], d.addrlen[0]), 3);
	/* "two" is read (and pending 300 ms): the counter says so */
	CU_ASSERT_EQUAL(dg_daemon_wait_live(&d, "t", "rx", 2, 10000), 2);
	kill(d.pid, SIGTERM); /* "two" is pending: its reply must still come */
	ssize_t n = recv(fd, buf, sizeof(buf), 0);
	CU_ASSERT_EQUAL(n, 3);
	CU_ASSERT_EQUAL(memcmp(buf, "two", 3), 0);
	close(fd);
	dg_daemon_stop_checked(&d, "t");
	char *log = dg_daemon_log(&d);
	CU_ASSERT_PTR_NOT_NULL(strstr(log, "stopping (1 requests pending)"));
	free(log);
	CU_ASSERT_EQUAL(dg_daemon_stat(&d, "t", "tx"), 2);
}

/* A worker killed while it finishes its requests at shutdown: the daemon
 * exits 1, not 0 (requests may have been lost). */
static void test_worker_killed_while_stopping(void)
{
	struct dg_daemon d;
	int st = 0;

	CU_ASSERT_FATAL(dg_daemon_start(&d, "{\"shutdown_timeout_ms\": 60000, \"metrics\": {\"bind\": "
	        "\"127.0.0.1:0\"}, \"listeners\": [{\"name\": \"t\", \"bind\": " LOCAL ", \"codec\": "
	        "\"raw\", \"handler\": {\"plugin\": \"echo\", \"config\": {\"delay_ms\": 60000}}}]}", NULL));
	int fd = dg_udp_client(&d.addr[0], 3000);
	CU_ASSERT_EQUAL(sendto(fd, "one", 3, 0, (struct sockaddr *)&d.addr[0], d.addrlen[0]), 3);
	CU_ASSERT_EQUAL(dg_daemon_wait_live(&d, "t", "rx", 1, 10000), 1); /* read, pending */
	pid_t w = dg_daemon_worker(&d);
	CU_ASSERT_FATAL(w > 0);
	kill(d.pid, SIGTERM);
	CU_ASSERT_EQUAL(dg_wait_file(d.log, "stopping (1 requests pending)", 1, d.pid, 10000),
	                DG_WAIT_OK);
	kill(w, SIGKILL);
	CU_ASSERT_EQUAL(waitpid(d.pid, &st, 0), d.pid);
	CU_ASSERT(WIFEXITED(st) && WEXITSTATUS(st) == 1);
	close(fd);
	char *log = dg_daemon_log(&d);
	CU_ASSERT_PTR_NOT_NULL_FATAL(log);
	CU_ASSERT_PTR_NOT_NULL(strstr(log, "killed by signal 9 (SIGKILL)"));
	CU_ASSERT_PTR_NOT_NULL(strstr(log, "a worker did not finish its shutdown (see above): "
	                                   "exiting with status 1"));
	free(log);
}

/* Run dgramd with args, return its exit status; its stderr goes to out. */
static int run_dgramd(const char *const *args, char *out, size_t outlen)
{
	char bin[4096], plugins[4096], log[4096];
	const char *argv[16];
	unsigned n = 0;

	snprintf(bin, sizeof(bin), "%s/dgramd", dg_test_builddir());
	snprintf(plugins, sizeof(plugins), "%s/plugins/.libs", dg_test_builddir());
	snprintf(log, sizeof(log), "%s/run.log", dg_test_tmpdir());
	argv[n++] = bin;
	argv[n++] = "-P";
	argv[n++] = plugins;
	for (; *args && n < 15; args++)
		argv[n++] = *args;
	argv[n] = NULL;
	pid_t pid = fork();
	if (pid == 0) {
		if (!freopen(log, "w", stderr) || !freopen("/dev/null", "w", stdout))
			_exit(127);
		execv(bin, (char *const *)argv);
		_exit(127);
	}
	int st;
	if (pid < 0 || waitpid(pid, &st, 0) != pid)
		return -1;
	FILE *f = fopen(log, "r");
	size_t got = f ? fread(out, 1, outlen - 1, f) : 0;
	out[got] = '\0';
	if (f)
		fclose(f);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

static void test_check_config(void)
{
	char out[4096], path[4096];

	snprintf(path, sizeof(path), "%s", dg_test_write("typo.json",
	         "{\"listeners\": [{\"name\": \"t\", \"bind\": \"127.0.0.1:0\", \"handler\": \"echo\", \"max_datagarm\": 9}]}"));
	CU_ASSERT_EQUAL(run_dgramd((const char *[]){ "-t", "-c", path, NULL }, out, sizeof(out)), 1);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "typo.json: listeners[0].max_datagarm: unknown key (did you mean 'max_datagram'?)"));

	/* A misspelt plugin name: the nearest plugin in the plugin directory. */
	snprintf(path, sizeof(path), "%s", dg_test_write("plugtypo.json",
	         "{\"listeners\": [{\"name\": \"t\", \"bind\": \"127.0.0.1:0\", \"handler\": \"ehco\"}]}"));
	CU_ASSERT_EQUAL(run_dgramd((const char *[]){ "-t", "-c", path, NULL }, out, sizeof(out)), 1);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "ehco.so': No such file or directory (did you mean 'echo'?)"));
	snprintf(path, sizeof(path), "%s", dg_test_write("plugfar.json",
	         "{\"listeners\": [{\"name\": \"t\", \"bind\": \"127.0.0.1:0\", \"handler\": \"zzzzzz\"}]}"));
	CU_ASSERT_EQUAL(run_dgramd((const char *[]){ "-t", "-c", path, NULL }, out, sizeof(out)), 1);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "zzzzzz.so': No such file or directory"));
	CU_ASSERT_PTR_NULL(strstr(out, "did you mean"));

	snprintf(path, sizeof(path), "%s", dg_test_write("syntax.json", "{\n  \"listeners\": [\n    {,}\n  ]\n}\n"));
	CU_ASSERT_EQUAL(run_dgramd((const char *[]){ "-t", "-c", path, NULL }, out, sizeof(out)), 1);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "syntax.json: line 3, column 6"));

	snprintf(path, sizeof(path), "%s", dg_test_write("good.json", config(LOCAL, "\"json\"", NULL, NULL)));
	CU_ASSERT_EQUAL(run_dgramd((const char *[]){ "-t", "-c", path, NULL }, out, sizeof(out)), 0);

	/* The plugin's own config is checked too (against the options it declares). */
	snprintf(path, sizeof(path), "%s", dg_test_write("plugcfg.json",
	         config(LOCAL, "\"json\"", "{\"delay\": 5}", NULL)));
	CU_ASSERT_EQUAL(run_dgramd((const char *[]){ "-t", "-c", path, NULL }, out, sizeof(out)), 1);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "plugcfg.json: listeners[0].handler.config.delay: unknown key "
	                                   "(known: prefix, wrap, error_reply, delay_ms, reply, repeat)"));

	CU_ASSERT_EQUAL(run_dgramd((const char *[]){ "--bogus", NULL }, out, sizeof(out)), 2);
	CU_ASSERT_EQUAL(run_dgramd((const char *[]){ "-c", "/nonexistent.json", NULL }, out, sizeof(out)), 1);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "cannot open config '/nonexistent.json'"));
}

static void check_shipped(const char *rel, unsigned *n)
{
	char out[4096], path[4096];

	snprintf(path, sizeof(path), "%s/%s", dg_test_srcdir(), rel);
	int rc = run_dgramd((const char *[]){ "-t", "-c", path, NULL }, out, sizeof(out));
	if (rc != 0)
		fprintf(stderr, "%s: %s\n", rel, out);
	CU_ASSERT_EQUAL(rc, 0);
	++*n;
}

/* Optional plugins (redis needs hiredis) are built only when found. */
static bool plugin_built(const char *name)
{
	char so[4096];

	snprintf(so, sizeof(so), "%s/plugins/.libs/%s.so", dg_test_builddir(), name);
	return access(so, R_OK) == 0;
}

/* Every shipped config passes dgramd -t: conf/dgramd.json and whatever
 * conf/examples holds. */
static void test_shipped_configs(void)
{
	char dir[4096], rel[512];
	unsigned n = 0;

	check_shipped("conf/dgramd.json", &n);
	snprintf(dir, sizeof(dir), "%s/conf/examples", dg_test_srcdir());
	DIR *dp = opendir(dir);
	CU_ASSERT_PTR_NOT_NULL_FATAL(dp);
	for (struct dirent *e; (e = readdir(dp));) {
		size_t len = strlen(e->d_name);
		if (len < 6 || strcmp(e->d_name + len - 5, ".json"))
			continue;
		snprintf(rel, sizeof(rel), "conf/examples/%s", e->d_name);
		if (!strncmp(e->d_name, "redis", 5) && !plugin_built("redis")) {
			fprintf(stderr, "%s: skipped: the redis plugin was not built (no hiredis)\n", rel);
			continue;
		}
		check_shipped(rel, &n);
	}
	closedir(dp);
	CU_ASSERT(n >= 5);
}

static void test_wrong_abi_plugin(void)
{
	char out[4096], path[4096], conf[8192], so[4096];

	snprintf(so, sizeof(so), "%s/tests/fixtures/.libs/bad_abi.so", dg_test_builddir());
	snprintf(conf, sizeof(conf), "{\"listeners\": [{\"name\": \"t\", \"bind\": \"127.0.0.1:0\", "
	         "\"handler\": {\"plugin\": \"%s\"}}]}", so);
	snprintf(path, sizeof(path), "%s", dg_test_write("abi.json", conf));
	CU_ASSERT_EQUAL(run_dgramd((const char *[]){ "-t", "-c", path, NULL }, out, sizeof(out)), 1);
	char expect[4200];
	snprintf(expect, sizeof(expect), "plugin '%s': built for plugin ABI 2.0", so);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, expect));
	/* Without -t too, and nothing was bound. */
	CU_ASSERT_EQUAL(run_dgramd((const char *[]){ "-c", path, NULL }, out, sizeof(out)), 1);
	CU_ASSERT_PTR_NULL(strstr(out, "listening on"));
}

static void test_bind_conflict(void)
{
	struct dg_daemon a, b;
	char bind[128], host[INET_ADDRSTRLEN];

	CU_ASSERT_FATAL(dg_daemon_start(&a, config(LOCAL, "\"raw\"", NULL, NULL), NULL));
	struct sockaddr_in *s4 = (struct sockaddr_in *)&a.addr[0];
	inet_ntop(AF_INET, &s4->sin_addr, host, sizeof(host));
	snprintf(bind, sizeof(bind), "\"%s:%u\"", host, ntohs(s4->sin_port));
	CU_ASSERT_FALSE(dg_daemon_start(&b, config(bind, "\"raw\"", NULL, NULL), NULL));
	char *log = dg_daemon_log(&b), expect[256];
	snprintf(expect, sizeof(expect), "cannot bind '%s:%u': Address already in use", host,
	         ntohs(s4->sin_port));
	CU_ASSERT_PTR_NOT_NULL(strstr(log, expect));
	free(log);
	dg_daemon_stop_checked(&a, "t");
}

static const struct dg_test daemon_tests[] = {
	{ "worker killed while stopping: exit 1", test_worker_killed_while_stopping },
	{ "json echo", test_json_echo },
	{ "ipv6 and two binds", test_ipv6_and_two_binds },
	{ "10000 bad datagrams then a good one", test_bad_flood },
	{ "on_error reply", test_error_reply },
	{ "too large", test_too_large },
	{ "reply too big", test_reply_too_big },
	{ "length-prefixed json", test_length_prefixed_json },
	{ "codec module", test_codec_module },
	{ "deferred replies and shutdown", test_deferred_and_shutdown },
	{ "dgramd -t", test_check_config },
	{ "shipped configs", test_shipped_configs },
	{ "wrong ABI plugin", test_wrong_abi_plugin },
	{ "bind conflict", test_bind_conflict },
	{ NULL, NULL },
};

int main(void)
{
	static const struct dg_suite suites[] = {
		{ "daemon", daemon_tests },
		{ NULL, NULL },
	};
	signal(SIGPIPE, SIG_IGN);
	return dg_test_main(suites);
}
