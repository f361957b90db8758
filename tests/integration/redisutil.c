#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "redisutil.h"
#include "waitfor.h"

static bool in_path(const char *prog)
{
	const char *path = getenv("PATH");
	char buf[4096];

	for (const char *p = path ? path : "/usr/bin:/bin"; p && *p;) {
		const char *end = strchr(p, ':');
		size_t n = end ? (size_t)(end - p) : strlen(p);
		snprintf(buf, sizeof(buf), "%.*s/%s", (int)n, p, prog);
		if (access(buf, X_OK) == 0)
			return true;
		p = end ? end + 1 : NULL;
	}
	return false;
}

const char *redis_missing(void)
{
	static char why[4096];
	struct stat st;

	if (!in_path("redis-server"))
		return "redis-server is not installed (apt-get install redis-server)";
	snprintf(why, sizeof(why), "%s/plugins/.libs/redis.so", dg_test_builddir());
	if (stat(why, &st) != 0) {
		snprintf(why, sizeof(why), "the redis plugin was not built (configure found no hiredis: "
		         "apt-get install libhiredis-dev)");
		return why;
	}
	return NULL;
}

bool redis_server_start(struct redis_server *rs, unsigned port)
{
	char portbuf[16], out[64];
	const char *ping[] = { "PING" };

	rs->port = port ? port : dg_free_port(SOCK_STREAM);
	snprintf(rs->log, sizeof(rs->log), "%s/redis-%u.log", dg_test_tmpdir(), rs->port);
	snprintf(portbuf, sizeof(portbuf), "%u", rs->port);
	unsigned ready_before = dg_file_count(rs->log, "Ready to accept connections");
	rs->pid = fork();
	if (rs->pid < 0)
		return false;
	if (rs->pid == 0) {
		int fd = open(rs->log, O_WRONLY | O_CREAT | O_APPEND, 0644);
		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		execlp("redis-server", "redis-server", "--port", portbuf, "--bind", "127.0.0.1",
		       "--save", "", "--appendonly", "no", "--daemonize", "no", "--dir",
		       dg_test_tmpdir(), (char *)NULL);
		_exit(127);
	}
	/* Ready once it logs so (the log is appended to by a restart on the
	 * same port: one line more than before), woken by inotify; then it
	 * answers PING. */
	if (dg_wait_file(rs->log, "Ready to accept connections", ready_before + 1, rs->pid, 10000) ==
	        DG_WAIT_OK &&
	    redis_cmd(rs->port, out, sizeof(out), 1, ping) && !strcmp(out, "+PONG"))
		return true;
	if (waitpid(rs->pid, NULL, WNOHANG) == rs->pid) {
		rs->pid = 0;
		return false;
	}
	redis_server_signal(rs, SIGKILL);
	return false;
}

void redis_server_signal(struct redis_server *rs, int sig)
{
	if (rs->pid <= 0)
		return;
	kill(rs->pid, sig);
	if (sig == SIGSTOP || sig == SIGCONT)
		return;
	waitpid(rs->pid, NULL, 0);
	rs->pid = 0;
}

static bool write_all(int fd, const char *p, size_t n)
{
	while (n) {
		ssize_t w = write(fd, p, n);
		if (w <= 0)
			return false;
		p += w;
		n -= (size_t)w;
	}
	return true;
}

/* A connection to 127.0.0.1:port with argv sent as one command (5 s
 * receive timeout); the fd, or -1. */
static int redis_send(unsigned port, int argc, const char *const *argv)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	struct timeval tv = { .tv_sec = 5 };
	char buf[8192];
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	size_t n;

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0)
		return -1;
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0)
		goto out_close;
	n = (size_t)snprintf(buf, sizeof(buf), "*%d\r\n", argc);
	for (int i = 0; i < argc && n < sizeof(buf); i++)
		n += (size_t)snprintf(buf + n, sizeof(buf) - n, "$%zu\r\n%s\r\n", strlen(argv[i]), argv[i]);
	if (n < sizeof(buf) && write_all(fd, buf, n))
		return fd;
out_close:
	close(fd);
	return -1;
}

int redis_subscribe(unsigned port, const char *channel)
{
	char out[64];

	if (!redis_cmd(port, out, sizeof(out), 4,
	               (const char *[]){ "CONFIG", "SET", "notify-keyspace-events", "Ex" }) ||
	    strcmp(out, "+OK"))
		return -1;
	int fd = redis_send(port, 2, (const char *[]){ "SUBSCRIBE", channel });
	/* its confirmation: ["subscribe", channel, 1] */
	if (fd >= 0 && !redis_await(fd, ":1\r\n", 5000)) {
		close(fd);
		fd = -1;
	}
	return fd;
}

bool redis_await(int fd, const char *text, unsigned timeout_ms)
{
	char buf[8192];
	size_t n = 0;
	double deadline = dg_now_ms() + timeout_ms;

	for (;;) {
		double left = deadline - dg_now_ms();
		struct pollfd p = { .fd = fd, .events = POLLIN };
		if (left <= 0 || poll(&p, 1, (int)left + 1) <= 0)
			return false;
		if (n == sizeof(buf) - 1) { /* keep the tail, where text may start */
			memmove(buf, buf + n / 2, n - n / 2);
			n -= n / 2;
		}
		ssize_t r = read(fd, buf + n, sizeof(buf) - 1 - n);
		if (r <= 0)
			return false;
		n += (size_t)r;
		buf[n] = '\0';
		if (strstr(buf, text))
			return true;
	}
}

bool redis_cmd(unsigned port, char *out, size_t len, int argc, const char *const *argv)
{
	char buf[8192];
	size_t n = 0;
	bool ok = false;
	int fd = redis_send(port, argc, argv);

	if (fd < 0)
		return false;
	/* Read until the reply is whole: one line, or a bulk header and its line. */
	n = 0;
	for (;;) {
		ssize_t r = read(fd, buf + n, sizeof(buf) - 1 - n);
		if (r <= 0)
			goto out_close;
		n += (size_t)r;
		buf[n] = '\0';
		char *eol = strstr(buf, "\r\n");
		if (!eol)
			continue;
		if (buf[0] == '$' && strcmp(buf, "$-1\r\n")) {
			char *eol2 = strstr(eol + 2, "\r\n");
			if (!eol2)
				continue;
			*eol2 = '\0';
			snprintf(out, len, "$%s", eol + 2);
		} else {
			*eol = '\0';
			snprintf(out, len, "%s", buf);
		}
		ok = true;
		break;
	}
out_close:
	close(fd);
	return ok;
}

long long redis_int(unsigned port, int argc, const char *const *argv)
{
	char out[256];

	if (!redis_cmd(port, out, sizeof(out), argc, argv) || out[0] != ':')
		return LLONG_MIN;
	return atoll(out + 1);
}

long long redis_metric(const struct dg_daemon *d, const char *listener, const char *name)
{
	char *buf = malloc(1 << 20), prefix[256];
	long long sum = -1;

	if (!buf)
		return -1;
	for (int suffix = 0; suffix < 2 && sum < 0; suffix++) {
		snprintf(prefix, sizeof(prefix), "dgramd_plugin_redis_%s%s{listener=\"%s\",", name,
		         suffix ? "_total" : "", listener);
		if (dg_http_get(d, "/metrics", buf, 1 << 20) != 200)
			break;
		for (char *p = strstr(buf, prefix); p; p = strstr(p + 1, prefix)) {
			char *v = strchr(p, ' ');
			if (!v)
				break;
			sum = (sum < 0 ? 0 : sum) + atoll(v + 1);
		}
	}
	free(buf);
	return sum;
}

int redis_client(unsigned n, unsigned timeout_ms)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	struct timeval tv = { .tv_sec = timeout_ms / 1000, .tv_usec = (timeout_ms % 1000) * 1000 };
	int fd = socket(AF_INET, SOCK_DGRAM, 0);

	a.sin_addr.s_addr = htonl(0x7f000000u | ((1 + n / 250) << 8) | (1 + n % 250));
	if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
	    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) == 0)
		return fd;
	if (fd >= 0)
		close(fd);
	return -1;
}

bool redis_ask(int fd, const struct dg_daemon *d, const char *req, char *buf, size_t len, double *ms)
{
	double t0 = dg_now_ms();
	ssize_t n = sendto(fd, req, strlen(req), 0, (const struct sockaddr *)&d->addr[0], d->addrlen[0]);

	if (n != (ssize_t)strlen(req))
		return false;
	n = recv(fd, buf, len - 1, 0);
	if (ms)
		*ms = dg_now_ms() - t0;
	if (n < 0)
		return false;
	buf[n] = '\0';
	return true;
}

int redis_test_main(const struct dg_suite *suites, struct redis_server *rs,
                    const char *(*also_missing)(void), void (*cleanup)(void))
{
	const char *why = redis_missing();
	int rc;

	if (!why && also_missing)
		why = also_missing();
	if (why) {
		printf("SKIP: %s\n", why);
		return 77;
	}
	signal(SIGPIPE, SIG_IGN);
	if (!redis_server_start(rs, 0)) {
		printf("FAIL: redis-server did not start (see %s)\n", rs->log);
		return 1;
	}
	rc = dg_test_main(suites);
	if (cleanup)
		cleanup();
	redis_server_signal(rs, SIGCONT);
	redis_server_signal(rs, SIGKILL);
	return rc;
}
