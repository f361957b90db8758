/* log.target: a file (reopened on SIGUSR1, as logrotate expects) and
 * syslog (datagrams to a socket, here a fake syslogd of the test's). */
#include "config.h"

#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "testutil.h"

static char *slurp_file(const char *path)
{
	FILE *f = fopen(path, "r");
	char *buf = calloc(1, 1 << 20);
	if (f && buf)
		buf[fread(buf, 1, (1 << 20) - 1, f)] = '\0';
	if (f)
		fclose(f);
	return buf;
}

/* Until path holds needle (bounded): a signal's effect shows in the log. */
static bool wait_for_text(const char *path, const char *needle)
{
	double until = dg_now_ms() + 10000;
	while (dg_now_ms() < until) {
		char *t = slurp_file(path);
		bool found = t && strstr(t, needle);
		free(t);
		if (found)
			return true;
		struct pollfd none;
		poll(&none, 0, 5); /* polling the file, not waiting for time */
	}
	return false;
}

static void probe(const struct dg_daemon *d)
{
	char buf[64];
	int fd = dg_udp_client(&d->addr[0], 5000);
	CU_ASSERT(dg_udp_ask(fd, &d->addr[0], d->addrlen[0], "[1]", 3, buf, sizeof(buf)) == 3);
	close(fd);
}

static void check_rotation(unsigned workers)
{
	char path[512], moved[520], conf[1024];
	struct dg_daemon d;

	snprintf(path, sizeof(path), "%s/dgramd-%u.log", dg_test_tmpdir(), workers);
	snprintf(moved, sizeof(moved), "%s.1", path);
	if (workers > 1)
		snprintf(conf, sizeof(conf), "{ \"workers\": %u, \"log\": { \"target\": \"%s\" }, \"listeners\": [ "
		         "{ \"name\": \"e\", \"bind\": \"127.0.0.1:%u\", \"handler\": \"echo\" } ] }",
		         workers, path, dg_free_udp_port());
	else
		snprintf(conf, sizeof(conf), "{ \"log\": { \"target\": \"%s\" }, \"listeners\": [ "
		         "{ \"name\": \"e\", \"bind\": \"127.0.0.1:0\", \"handler\": \"echo\" } ] }", path);
	CU_ASSERT_FATAL(dg_daemon_start(&d, conf, NULL));
	probe(&d);
	CU_ASSERT(wait_for_text(path, "listening on"));
	CU_ASSERT_EQUAL_FATAL(rename(path, moved), 0);
	CU_ASSERT_EQUAL(kill(d.pid, SIGUSR1), 0);
	CU_ASSERT(wait_for_text(path, "signal USR1: log reopened"));
	probe(&d);
	CU_ASSERT_EQUAL(dg_daemon_stop(&d), 0);
	char *now = slurp_file(path), *old = slurp_file(moved);
	CU_ASSERT_FATAL(now && old);
	/* The stats go to the new file; the old one has the start. */
	CU_ASSERT(strstr(now, "stats listener=e rx=2 ") != NULL);
	CU_ASSERT(strstr(old, "stats listener=") == NULL);
	CU_ASSERT(strstr(old, "listening on") != NULL);
	if (workers > 1) {
		CU_ASSERT(strstr(now, "stats worker=1 listener=e") != NULL);
		CU_ASSERT(strstr(now, "stats worker=2 listener=e") != NULL);
	}
	char *err = dg_daemon_log(&d); /* stderr: nothing once the file is open */
	CU_ASSERT(err && !strstr(err, "stats "));
	free(err);
	free(now);
	free(old);
}

static void test_file_rotation(void)
{
	check_rotation(1);
}

static void test_file_rotation_workers(void)
{
	check_rotation(2);
}

static void test_syslog(void)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	char path[200], conf[1024], msg[2048];
	struct dg_daemon d;
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	bool listening = false, stats = false;

	snprintf(path, sizeof(path), "%s/log.sock", dg_test_tmpdir());
	CU_ASSERT_FATAL(strlen(path) < sizeof(sun.sun_path));
	memcpy(sun.sun_path, path, strlen(path) + 1);
	CU_ASSERT_FATAL(fd >= 0 && bind(fd, (struct sockaddr *)&sun, sizeof(sun)) == 0);
	snprintf(conf, sizeof(conf), "{ \"log\": { \"target\": \"syslog\", \"syslog_socket\": \"%s\" }, "
	         "\"listeners\": [ { \"name\": \"e\", \"bind\": \"127.0.0.1:0\", \"handler\": \"echo\" } ] }",
	         path);
	CU_ASSERT_FATAL(dg_daemon_start(&d, conf, NULL));
	probe(&d);
	CU_ASSERT_EQUAL(dg_daemon_stop(&d), 0);
	for (;;) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		if (poll(&p, 1, 0) != 1)
			break;
		ssize_t n = recv(fd, msg, sizeof(msg) - 1, 0);
		if (n <= 0)
			break;
		msg[n] = '\0';
		/* facility daemon (3 * 8) + severity info (6) */
		CU_ASSERT(!strncmp(msg, "<", 1) && strstr(msg, " dgramd[") != NULL);
		CU_ASSERT(strchr(msg, '\n') == NULL);
		listening |= !strncmp(msg, "<30>", 4) && strstr(msg, "listening on") != NULL;
		stats |= !strncmp(msg, "<30>", 4) && strstr(msg, "stats listener=e rx=1 ") != NULL;
	}
	CU_ASSERT(listening);
	CU_ASSERT(stats);
	close(fd);
	unlink(path);
}

static void test_bad_target(void)
{
	char bin[4096], conf[4096], out[512], err[4096];

	snprintf(conf, sizeof(conf), "%s", dg_test_write("target.json",
	         "{ \"log\": { \"target\": \"relative.log\" }, \"listeners\": [ { \"name\": \"e\", "
	         "\"bind\": \"127.0.0.1:0\", \"handler\": \"echo\" } ] }"));
	snprintf(bin, sizeof(bin), "%s/dgramd", dg_test_builddir());
	const char *argv[] = { bin, "-t", "-c", conf, NULL };
	CU_ASSERT_EQUAL(dg_run(argv, NULL, out, sizeof(out), err, sizeof(err), 20000), 1);
	CU_ASSERT(strstr(err, "log.target: expected \"stderr\", \"syslog\" or an absolute file path") != NULL);
}

static const struct dg_test tests[] = {
	{ "file: SIGUSR1 reopens it after a rename", test_file_rotation },
	{ "file with two workers: every process reopens", test_file_rotation_workers },
	{ "syslog: datagrams with priority and pid", test_syslog },
	{ "a relative path is a config error", test_bad_target },
	{ NULL, NULL },
};

DG_TEST_MAIN("log target", tests)
