/* Operations: systemd's notify protocol (a fake $NOTIFY_SOCKET), the
 * pidfile, --version. */
#include "config.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
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
	{ "notify READY and STOPPING, one worker", test_notify_single },
	{ "notify READY and STOPPING, two workers", test_notify_workers },
	{ "pidfile written once bound, removed at exit", test_pidfile },
	{ "--version shows both ABI versions", test_version },
	{ NULL, NULL },
};

DG_TEST_MAIN("ops", tests)
