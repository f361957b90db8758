/* Operations: systemd's notify protocol (a fake $NOTIFY_SOCKET), the
 * pidfile, --version. */
#include "config.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <jansson.h>

#include "testutil.h"

static const char *const conf_single =
	"{ \"listeners\": [ { \"name\": \"e\", \"bind\": \"127.0.0.1:0\", \"handler\": \"echo\" } ] }";
static const char *const conf_workers =
	"{ \"workers\": 2, \"listeners\": [ { \"name\": \"e\", \"bind\": \"127.0.0.1:%u\", "
	"\"handler\": \"echo\" } ] }";

/* A fake systemd: an AF_UNIX datagram socket in the test's tmpdir. */
static int notify_socket(char *path, size_t len)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	snprintf(path, len, "%s/notify.%d", dg_test_tmpdir(), (int)getpid());
	if (strlen(path) >= sizeof(sun.sun_path))
		return -1;
	memcpy(sun.sun_path, path, strlen(path) + 1);
	unlink(path);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0)
		return -1;
	return fd;
}

/* The next notification, or "" after timeout_ms. */
static void next_msg(int fd, char *buf, size_t len, int timeout_ms)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	buf[0] = '\0';
	if (poll(&p, 1, timeout_ms) == 1) {
		ssize_t n = recv(fd, buf, len - 1, 0);
		buf[n > 0 ? n : 0] = '\0';
	}
}

static void check_notify(const char *conf)
{
	char path[200], msg[256];
	struct dg_daemon d;
	int fd = notify_socket(path, sizeof(path));

	CU_ASSERT_FATAL(fd >= 0);
	CU_ASSERT_FATAL(dg_daemon_start_env(&d, conf, "NOTIFY_SOCKET", path));
	next_msg(fd, msg, sizeof(msg), 10000);
	CU_ASSERT(strstr(msg, "READY=1") != NULL);
	CU_ASSERT_EQUAL(kill(d.pid, SIGTERM), 0);
	next_msg(fd, msg, sizeof(msg), 10000);
	CU_ASSERT(strstr(msg, "STOPPING=1") != NULL);
	dg_daemon_stop_checked(&d, "e");
	/* Exactly one READY and one STOPPING: workers never speak for the
	 * service. */
	next_msg(fd, msg, sizeof(msg), 0);
	CU_ASSERT_STRING_EQUAL(msg, "");
	close(fd);
	unlink(path);
}

static void test_notify_single(void)
{
	check_notify(conf_single);
}

static void test_notify_workers(void)
{
	char conf[512];

	/* Workers cannot use port 0 (each would get its own). */
	snprintf(conf, sizeof(conf), conf_workers, dg_free_udp_port());
	check_notify(conf);
}

static void test_pidfile(void)
{
	char pidfile[300], buf[32] = "";
	struct dg_daemon d;
	FILE *f;

	snprintf(pidfile, sizeof(pidfile), "%s/dgramd.pid", dg_test_tmpdir());
	const char *args[] = { "-p", pidfile, NULL };
	CU_ASSERT_FATAL(dg_daemon_start(&d, conf_single, args));
	f = fopen(pidfile, "r");
	CU_ASSERT_FATAL(f != NULL);
	CU_ASSERT(fgets(buf, sizeof(buf), f) != NULL);
	fclose(f);
	CU_ASSERT_EQUAL(strtol(buf, NULL, 10), (long)d.pid);
	dg_daemon_stop_checked(&d, "e");
	CU_ASSERT(access(pidfile, F_OK) != 0); /* removed at exit */
}

/* The pid a file holds, 0 if none. */
static long pid_in(const char *path)
{
	char buf[32] = "";
	FILE *f = fopen(path, "r");

	if (!f)
		return 0;
	if (!fgets(buf, sizeof(buf), f))
		buf[0] = '\0';
	fclose(f);
	return strtol(buf, NULL, 10);
}

/* A second dgramd on the same pidfile and the same address (the first's
 * real port): refused before it binds, and the first's pidfile is left
 * alone. Then the file's text is lost: the lock alone still refuses. */
static void test_pidfile_second(void)
{
	char pidfile[300], conf[512], bin[4096], pdir[4096], out[512], err[4096], want[512];
	struct dg_daemon d;

	snprintf(pidfile, sizeof(pidfile), "%s/second.pid", dg_test_tmpdir());
	const char *args[] = { "-p", pidfile, NULL };
	CU_ASSERT_FATAL(dg_daemon_start(&d, conf_single, args));
	CU_ASSERT_EQUAL(pid_in(pidfile), (long)d.pid);
	snprintf(want, sizeof(want),
	         "{ \"listeners\": [ { \"name\": \"e\", \"bind\": \"127.0.0.1:%u\", \"handler\": \"echo\" } ] }",
	         ntohs(((struct sockaddr_in *)&d.addr[0])->sin_port));
	snprintf(conf, sizeof(conf), "%s", dg_test_write("second.json", want));
	snprintf(bin, sizeof(bin), "%s/dgramd", dg_test_builddir());
	snprintf(pdir, sizeof(pdir), "%s/plugins/.libs", dg_test_builddir());
	const char *argv[] = { bin, "-c", conf, "-P", pdir, "-p", pidfile, NULL };
	CU_ASSERT_EQUAL(dg_run(argv, NULL, out, sizeof(out), err, sizeof(err), 10000), 1);
	snprintf(want, sizeof(want), "pidfile '%s' belongs to a running dgramd (pid %ld)", pidfile,
	         (long)d.pid);
	CU_ASSERT(strstr(err, want) != NULL);
	CU_ASSERT(strstr(err, "cannot bind") == NULL); /* refused before binding */
	CU_ASSERT_EQUAL(pid_in(pidfile), (long)d.pid);

	/* The text overwritten: the lock names the holder. */
	FILE *f = fopen(pidfile, "w");
	CU_ASSERT_FATAL(f != NULL);
	fputs("garbage\n", f);
	fclose(f);
	CU_ASSERT_EQUAL(dg_run(argv, NULL, out, sizeof(out), err, sizeof(err), 10000), 1);
	CU_ASSERT(strstr(err, want) != NULL);
	if (!strstr(err, want))
		fprintf(stderr, "second dgramd said:\n%s\n", err);

	/* The first still serves. */
	char reply[64];
	int fd = dg_udp_client(&d.addr[0], 5000);
	CU_ASSERT(dg_udp_ask(fd, &d.addr[0], d.addrlen[0], "{\"a\":1}", 7, reply, sizeof(reply)) == 7);
	close(fd);
	dg_daemon_stop_checked(&d, "e");
	CU_ASSERT(access(pidfile, F_OK) != 0);
}

/* A pidfile another program holds locked (this test, whose pid is not in
 * it): refused, naming that program. */
static void test_pidfile_locked(void)
{
	char pidfile[300], conf[4096], bin[4096], pdir[4096], out[512], err[4096], want[512];
	struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET };

	snprintf(pidfile, sizeof(pidfile), "%s/locked.pid", dg_test_tmpdir());
	int fd = open(pidfile, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	CU_ASSERT_FATAL(fd >= 0);
	CU_ASSERT_FATAL(fcntl(fd, F_SETLK, &fl) == 0);
	snprintf(conf, sizeof(conf), "%s", dg_test_write("locked.json", conf_single));
	snprintf(bin, sizeof(bin), "%s/dgramd", dg_test_builddir());
	snprintf(pdir, sizeof(pdir), "%s/plugins/.libs", dg_test_builddir());
	const char *argv[] = { bin, "-c", conf, "-P", pdir, "-p", pidfile, NULL };
	CU_ASSERT_EQUAL(dg_run(argv, NULL, out, sizeof(out), err, sizeof(err), 10000), 1);
	snprintf(want, sizeof(want), "pidfile '%s' is locked by pid %ld (", pidfile, (long)getpid());
	CU_ASSERT(strstr(err, want) != NULL);
	if (!strstr(err, want))
		fprintf(stderr, "dgramd said:\n%s\n", err);
	close(fd);
	unlink(pidfile);
}

/* A pidfile left by a process that is gone, by one that is not a dgramd
 * (this test), or holding no pid, is replaced and the log says so. */
static void test_pidfile_stale(void)
{
	char pidfile[300], text[64], *log;
	struct dg_daemon d;
	pid_t dead = fork();

	if (dead == 0)
		_exit(0);
	CU_ASSERT_FATAL(dead > 0);
	CU_ASSERT_EQUAL_FATAL(waitpid(dead, NULL, 0), dead);
	const struct {
		long pid;
		const char *text, *log;
	} cases[] = {
		{ (long)dead, NULL, "which is not running: replacing it" },
		{ (long)getpid(), NULL, "not a dgramd: replacing it" },
		{ 0, "not a pid\n", "holds no process id: replacing it" },
	};
	snprintf(pidfile, sizeof(pidfile), "%s/stale.pid", dg_test_tmpdir());
	const char *args[] = { "-p", pidfile, NULL };
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		FILE *f = fopen(pidfile, "w");
		CU_ASSERT_FATAL(f != NULL);
		if (cases[i].text)
			snprintf(text, sizeof(text), "%s", cases[i].text);
		else
			snprintf(text, sizeof(text), "%ld\n", cases[i].pid);
		fputs(text, f);
		fclose(f);
		CU_ASSERT_FATAL(dg_daemon_start(&d, conf_single, args));
		CU_ASSERT_EQUAL(pid_in(pidfile), (long)d.pid);
		log = dg_daemon_log(&d);
		CU_ASSERT(log && strstr(log, pidfile) && strstr(log, cases[i].log));
		if (!log || !strstr(log, cases[i].log))
			fprintf(stderr, "case %zu: no '%s' in:\n%s\n", i, cases[i].log, log ? log : "");
		free(log);
		dg_daemon_stop_checked(&d, "e");
		CU_ASSERT(access(pidfile, F_OK) != 0);
	}
}

static void test_version(void)
{
	char bin[4096], out[512], err[512];

	snprintf(bin, sizeof(bin), "%s/dgramd", dg_test_builddir());
	const char *argv[] = { bin, "--version", NULL };
	CU_ASSERT_EQUAL(dg_run(argv, NULL, out, sizeof(out), err, sizeof(err), 10000), 0);
	CU_ASSERT(strstr(out, "plugin ABI 1.") != NULL);
	CU_ASSERT(strstr(out, "codec ABI 1.") != NULL);
}

/* -T prints every key with its default, and what it prints is a config
 * that -t accepts (for a minimal config and one with the nested keys). */
static void check_dump(const char *text)
{
	char bin[4096], pdir[4096], conf[4096], again[4096], *out = malloc(65536), err[4096];

	CU_ASSERT_FATAL(out != NULL);
	snprintf(conf, sizeof(conf), "%s", dg_test_write("dump.json", text));
	snprintf(bin, sizeof(bin), "%s/dgramd", dg_test_builddir());
	snprintf(pdir, sizeof(pdir), "%s/plugins/.libs", dg_test_builddir());
	const char *argv[] = { bin, "-T", "-c", conf, "-P", pdir, NULL };
	CU_ASSERT_EQUAL_FATAL(dg_run(argv, NULL, out, 65536, err, sizeof(err), 20000), 0);
	json_error_t je;
	json_t *j = json_loads(out, 0, &je);
	CU_ASSERT_FATAL(j != NULL);
	json_t *l0 = json_array_get(json_object_get(j, "listeners"), 0);
	CU_ASSERT_EQUAL(json_integer_value(json_object_get(l0, "max_peers")), 65536);
	CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(l0, "ordering")), "peer");
	CU_ASSERT_EQUAL(json_integer_value(json_object_get(j, "shutdown_timeout_ms")), 5000);
	json_decref(j);
	snprintf(again, sizeof(again), "%s", dg_test_write("dump-again.json", out));
	const char *argv2[] = { bin, "-t", "-c", again, "-P", pdir, NULL };
	CU_ASSERT_EQUAL(dg_run(argv2, NULL, out, 65536, err, sizeof(err), 20000), 0);
	free(out);
}

static void test_dump(void)
{
	check_dump(conf_single);
	check_dump("{ \"metrics\": { \"bind\": \"127.0.0.1:0\" }, \"memory_budget\": 8388608, "
	           "\"listeners\": [ { \"name\": \"e\", \"bind\": \"127.0.0.1:0\", \"handler\": \"echo\", "
	           "\"allow\": [\"127.0.0.0/8\", \"::1\"], \"deny\": [\"127.0.0.9\"], "
	           "\"amplification\": { \"factor\": 5 }, "
	           "\"rate_limit\": { \"per_source\": { \"rate\": 0.5, \"burst\": 10 }, "
	           "\"total\": { \"rate\": 1000, \"burst\": 100 } } } ] }");
}

/* -T shows each handler's config with every option its plugin declares,
 * defaults filled in; a plugin built for ABI 1.0 (no table) shows its
 * config as given. */
static void test_dump_plugin_options(void)
{
	char bin[4096], pdir[4096], conf[4096], text[4096], *out = malloc(65536), err[4096];

	CU_ASSERT_FATAL(out != NULL);
	snprintf(text, sizeof(text),
	         "{ \"listeners\": [ { \"name\": \"e\", \"bind\": \"127.0.0.1:0\", \"handler\": \"echo\" },\n"
	         "  { \"name\": \"k\", \"bind\": \"127.0.0.1:0\", \"handler\": { \"plugin\": \"kv\", "
	         "\"config\": { \"max_keys\": 5 } } },\n"
	         "  { \"name\": \"r\", \"bind\": \"127.0.0.1:0\", \"handler\": { \"plugin\": \"relay\", "
	         "\"config\": { \"upstream\": \"[::1]:53\" } } },\n"
	         "  { \"name\": \"o\", \"bind\": \"127.0.0.1:0\", \"handler\": { \"plugin\": "
	         "\"%s/tests/fixtures/.libs/abi10.so\", \"config\": { \"own\": [1] } } } ] }",
	         dg_test_builddir());
	snprintf(conf, sizeof(conf), "%s", dg_test_write("dump-opts.json", text));
	snprintf(bin, sizeof(bin), "%s/dgramd", dg_test_builddir());
	snprintf(pdir, sizeof(pdir), "%s/plugins/.libs", dg_test_builddir());
	const char *argv[] = { bin, "-T", "-c", conf, "-P", pdir, NULL };
	CU_ASSERT_EQUAL_FATAL(dg_run(argv, NULL, out, 65536, err, sizeof(err), 20000), 0);
	json_t *j = json_loads(out, 0, NULL), *l = json_object_get(j, "listeners");
	CU_ASSERT_FATAL(json_array_size(l) == 4);
	static const char *const want[] = {
		/* unset strings (echo's prefix, wrap) are left out */
		"{\"error_reply\":false,\"delay_ms\":0,\"reply\":true,\"repeat\":1}",
		("{\"max_keys\":5,\"max_key_len\":256,\"max_value_bytes\":4096,\"max_bytes\":16777216,"
		 "\"cookie\":true}"),
		"{\"upstream\":\"[::1]:53\",\"timeout_ms\":1000,\"max_inflight\":256,\"linger_ms\":5000}",
		"{\"own\":[1]}",
	};
	for (size_t i = 0; i < 4; i++) {
		json_t *c = json_object_get(json_object_get(json_array_get(l, i), "handler"), "config");
		char *got = json_dumps(c, JSON_COMPACT | JSON_PRESERVE_ORDER);
		if (!got || strcmp(got, want[i]))
			fprintf(stderr, "listener %zu: expected %s\n  got %s\n", i, want[i], got ? got : "(none)");
		CU_ASSERT(got && !strcmp(got, want[i]));
		free(got);
	}
	json_decref(j);
	/* What -T prints, -t accepts. */
	snprintf(conf, sizeof(conf), "%s", dg_test_write("dump-opts-again.json", out));
	const char *argv2[] = { bin, "-t", "-c", conf, "-P", pdir, NULL };
	CU_ASSERT_EQUAL(dg_run(argv2, NULL, out, 65536, err, sizeof(err), 20000), 0);
	free(out);
}

/* A bad option of a shipped plugin, in the second listener: dgramd -t names
 * the file and the full key path, and exits 1. */
static const struct {
	const char *handler;
	const char *error;
} bad_options[] = {
	{ "{\"plugin\": \"echo\", \"config\": {\"delay_ms\": -5}}",
	  "listeners[1].handler.config.delay_ms: must be 0 .. 3600000 (got -5)" },
	{ "{\"plugin\": \"echo\", \"config\": {\"repeat\": 0}}",
	  "listeners[1].handler.config.repeat: must be 1 .. 65536 (got 0)" },
	{ "{\"plugin\": \"echo\", \"config\": {\"wrap\": true}}",
	  "listeners[1].handler.config.wrap: expected a string, got true" },
	{ "{\"plugin\": \"echo\", \"config\": {\"prefx\": \"a\"}}",
	  "listeners[1].handler.config.prefx: unknown key (did you mean 'prefix'?)" },
	{ "{\"plugin\": \"kv\", \"config\": {\"max_bytes\": 0}}",
	  "listeners[1].handler.config.max_bytes: must be 1 .. 1099511627776 (got 0)" },
	{ "{\"plugin\": \"kv\", \"config\": {\"cookie\": \"yes\"}}",
	  "listeners[1].handler.config.cookie: expected true or false, got a string" },
	{ "{\"plugin\": \"kv\", \"config\": {\"store\": 1}}",
	  "listeners[1].handler.config.store: unknown key (known: max_keys, max_key_len, "
	  "max_value_bytes, max_bytes, cookie)" },
	{ "\"relay\"", "listeners[1].handler.config.upstream: missing (required)" },
	{ "{\"plugin\": \"relay\", \"config\": {\"upstream\": \"example.org:53\"}}",
	  "listeners[1].handler.config.upstream: expected a numeric \"a.b.c.d:port\" or \"[ipv6]:port\" "
	  "(got \"example.org:53\")" },
	{ "{\"plugin\": \"relay\", \"config\": {\"upstream\": \"127.0.0.1:53\", \"timeout_ms\": 0}}",
	  "listeners[1].handler.config.timeout_ms: must be 1 .. 3600000 (got 0)" },
};

static void test_bad_plugin_options(void)
{
	char bin[4096], pdir[4096], conf[4096], text[4096], out[4096], err[4096], want[5200];

	snprintf(bin, sizeof(bin), "%s/dgramd", dg_test_builddir());
	snprintf(pdir, sizeof(pdir), "%s/plugins/.libs", dg_test_builddir());
	for (size_t i = 0; i < sizeof(bad_options) / sizeof(bad_options[0]); i++) {
		snprintf(text, sizeof(text),
		         "{ \"listeners\": [ { \"name\": \"a\", \"bind\": \"127.0.0.1:0\", \"handler\": \"echo\" },\n"
		         "  { \"name\": \"b\", \"bind\": \"127.0.0.1:0\", \"handler\": %s } ] }",
		         bad_options[i].handler);
		snprintf(conf, sizeof(conf), "%s", dg_test_write("badopt.json", text));
		snprintf(want, sizeof(want), "%s: %s\n", conf, bad_options[i].error);
		const char *argv[] = { bin, "-t", "-c", conf, "-P", pdir, NULL };
		CU_ASSERT_EQUAL(dg_run(argv, NULL, out, sizeof(out), err, sizeof(err), 20000), 1);
		if (!strstr(err, want))
			fprintf(stderr, "expected: %s  got: %s\n", want, err);
		CU_ASSERT_PTR_NOT_NULL(strstr(err, want));
	}
}

/* An unknown user is a config error with its key path, before any bind. */
static void test_unknown_user(void)
{
	char bin[4096], conf[4096], out[512], err[4096];

	snprintf(conf, sizeof(conf), "%s", dg_test_write("user.json",
	         "{ \"user\": \"no-such-user-dg\", \"listeners\": [ { \"name\": \"e\", "
	         "\"bind\": \"127.0.0.1:0\", \"handler\": \"echo\" } ] }"));
	snprintf(bin, sizeof(bin), "%s/dgramd", dg_test_builddir());
	const char *argv[] = { bin, "-t", "-c", conf, NULL };
	CU_ASSERT_EQUAL(dg_run(argv, NULL, out, sizeof(out), err, sizeof(err), 20000), 1);
	CU_ASSERT(strstr(err, "user.json: user: no such user 'no-such-user-dg'") != NULL);
}

static const struct dg_test tests[] = {
	{ "unknown user is a config error", test_unknown_user },
	{ "-T prints the effective config, which -t accepts", test_dump },
	{ "-T fills in every plugin option", test_dump_plugin_options },
	{ "-t names a bad plugin option by its key path", test_bad_plugin_options },
	{ "notify READY and STOPPING, one worker", test_notify_single },
	{ "notify READY and STOPPING, two workers", test_notify_workers },
	{ "pidfile written once bound, removed at exit", test_pidfile },
	{ "a second dgramd on a running one's pidfile is refused", test_pidfile_second },
	{ "a stale pidfile is replaced", test_pidfile_stale },
	{ "a pidfile another program has locked is refused", test_pidfile_locked },
	{ "--version shows both ABI versions", test_version },
	{ NULL, NULL },
};

DG_TEST_MAIN("ops", tests)
