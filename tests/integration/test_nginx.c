/* Past one machine: two dgramd instances behind nginx's stream module (UDP
 * load balancing, Debian packages nginx and libnginx-mod-stream), sharing
 * state through the redis plugin and a real redis-server. The test runs its
 * own nginx (foreground, its own prefix, config and error log in a temporary
 * directory) and redis-server on free loopback ports, and shows that:
 *  - clients get their replies through nginx, from both instances;
 *  - after one instance is killed the other keeps serving: requests that
 *    nginx still sends to the dead one get no reply, the client retries,
 *    and nginx's passive health check (max_fails, fail_timeout) sends the
 *    rest to the live one;
 *  - the count kept in Redis equals the increments that were made.
 * Skipped (exit 77) when nginx, its stream module, redis-server or the
 * redis plugin is missing. */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "redisutil.h"
#include "waitfor.h"

#define STREAM_MODULE "/usr/lib/nginx/modules/ngx_stream_module.so"
#define CLIENTS 20
#define ROUNDS 10
#define RETRY_MS 4000 /* above the shipped proxy_timeout (3 s) */

static struct redis_server rs;
static char nginx_bin[256];
struct nginx;
static struct nginx *running; /* stopped by main() if a test failed first */
static void nginx_stop(struct nginx *n);

static const char *nginx_missing(void)
{
	static const char *const paths[] = { "/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/bin/nginx" };
	struct stat st;

	for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]) && !nginx_bin[0]; i++)
		if (access(paths[i], X_OK) == 0)
			snprintf(nginx_bin, sizeof(nginx_bin), "%s", paths[i]);
	if (!nginx_bin[0])
		return "nginx is not installed (apt-get install nginx libnginx-mod-stream)";
	if (stat(STREAM_MODULE, &st) != 0)
		return "nginx's stream module is not installed (apt-get install libnginx-mod-stream)";
	return NULL;
}

static char *dgramd_conf(void)
{
	static char buf[1024];

	snprintf(buf, sizeof(buf), "{\"shutdown_timeout_ms\": 2000, \"metrics\": {\"bind\": \"127.0.0.1:0\"}, "
	         "\"listeners\": [{\"name\": \"r\", \"bind\": \"127.0.0.1:0\", \"codec\": \"json\", "
	         "\"handler_timeout_ms\": 2000, \"handler\": {\"plugin\": \"redis\", \"config\": "
	         "{\"server\": \"127.0.0.1:%u\", \"prefix\": \"lb:\", \"timeout_ms\": 1000}}}]}", rs.port);
	return buf;
}

static unsigned port_of(const struct dg_daemon *d)
{
	return ntohs(((const struct sockaddr_in *)&d->addr[0])->sin_port);
}

struct nginx {
	pid_t pid;
	unsigned port;
	char log[4096];
	struct dg_daemon front; /* only addr[0]: where clients send */
};

/* Replace the first `from` in buf (of size len) with `to`. */
static bool replace(char *buf, size_t len, const char *from, const char *to)
{
	char *p = strstr(buf, from);
	size_t tail;

	if (!p)
		return false;
	tail = strlen(p + strlen(from));
	if (strlen(buf) - strlen(from) + strlen(to) >= len)
		return false;
	memmove(p + strlen(to), p + strlen(from), tail + 1);
	memcpy(p, to, strlen(to));
	return true;
}

/* conf/examples/nginx-dgramd.conf as shipped, on this test's ports, in the
 * foreground, its pid file and error log in the temporary directory. */
static bool nginx_conf(char *conf, size_t len, const struct nginx *n, const struct dg_daemon *a,
                       const struct dg_daemon *b)
{
	char path[4096], addr[64];
	FILE *f;
	size_t got;
	bool ok = true;

	snprintf(path, sizeof(path), "%s/conf/examples/nginx-dgramd.conf", dg_test_srcdir());
	int head = snprintf(conf, len, "daemon off;\npid %s/nginx.pid;\nerror_log %s info;\n",
	                    dg_test_tmpdir(), n->log);
	if (head < 0 || (size_t)head >= len || !(f = fopen(path, "r")))
		return false;
	got = fread(conf + head, 1, len - (size_t)head - 1, f);
	fclose(f);
	conf[head + got] = '\0';
	ok &= replace(conf, len, "load_module modules/", "load_module /usr/lib/nginx/modules/");
	ok &= replace(conf, len, "worker_processes auto;", "worker_processes 2;");
	snprintf(addr, sizeof(addr), "127.0.0.1:%u", port_of(a));
	ok &= replace(conf, len, "10.0.0.1:5303", addr);
	snprintf(addr, sizeof(addr), "127.0.0.1:%u", port_of(b));
	ok &= replace(conf, len, "10.0.0.2:5303", addr);
	snprintf(addr, sizeof(addr), "listen 127.0.0.1:%u udp", n->port);
	ok &= replace(conf, len, "listen 5303 udp", addr);
	return ok;
}

static bool nginx_start(struct nginx *n, const struct dg_daemon *a, const struct dg_daemon *b)
{
	char conf[16384], path[4096];
	const char *tmp = dg_test_tmpdir();

	n->port = dg_free_udp_port();
	snprintf(n->log, sizeof(n->log), "%s/nginx-error.log", tmp);
	if (!nginx_conf(conf, sizeof(conf), n, a, b))
		return false;
	snprintf(path, sizeof(path), "%s", dg_test_write("nginx.conf", conf));
	n->pid = fork();
	if (n->pid < 0)
		return false;
	if (n->pid == 0) {
		int fd = open(n->log, O_WRONLY | O_CREAT | O_APPEND, 0644);
		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		execl(nginx_bin, "nginx", "-p", tmp, "-c", path, "-e", n->log, (char *)NULL);
		_exit(127);
	}
	running = n;
	struct sockaddr_in *s = (struct sockaddr_in *)&n->front.addr[0];
	*s = (struct sockaddr_in){ .sin_family = AF_INET, .sin_port = htons((uint16_t)n->port) };
	s->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	n->front.addrlen[0] = sizeof(*s);
	return true;
}

static void nginx_stop(struct nginx *n)
{
	if (n->pid <= 0)
		return;
	kill(n->pid, SIGQUIT); /* graceful: the workers finish and exit */
	waitpid(n->pid, NULL, 0);
	n->pid = 0;
	running = NULL;
}

/* Probe through nginx until a reply comes (nginx is up and proxying). */
static bool nginx_wait(struct nginx *n)
{
	int fd = redis_client(0, 200);
	char buf[512];
	bool ok = false;
	double deadline = dg_now_ms() + 15000;

	while (fd >= 0 && !ok && dg_now_ms() < deadline) {
		if (waitpid(n->pid, NULL, WNOHANG) == n->pid) {
			n->pid = 0;
			break;
		}
		ok = redis_ask(fd, &n->front, "{\"op\":\"get\",\"key\":\"probe\"}", buf, sizeof(buf), NULL) &&
		     !strcmp(buf, "{\"ok\":true,\"value\":null}");
		/* no sleep: redis_ask waited up to 200 ms for a reply */
	}
	if (fd >= 0)
		close(fd);
	return ok;
}

struct lb_run {
	unsigned ok, errors, retries, empty;
	double worst_ms; /* the longest a client waited for an answer, retries included */
};

/* CLIENTS peers send ROUNDS incr each through nginx, one at a time; a
 * request without a reply after RETRY_MS is sent again. */
static void lb_incr(struct nginx *n, struct lb_run *run)
{
	const char *req = "{\"op\":\"incr\",\"key\":\"total\"}";
	int fd[CLIENTS];
	unsigned answered[CLIENTS] = { 0 }, done = 0;
	double sent_at[CLIENTS], first_at[CLIENTS];
	char buf[512];

	for (unsigned c = 0; c < CLIENTS; c++) {
		fd[c] = redis_client(20 + c, 1000);
		CU_ASSERT_FATAL(fd[c] >= 0);
		CU_ASSERT(sendto(fd[c], req, strlen(req), 0, (struct sockaddr *)&n->front.addr[0],
		                 n->front.addrlen[0]) > 0);
		sent_at[c] = first_at[c] = dg_now_ms();
	}
	double deadline = dg_now_ms() + 60000;
	while (done < CLIENTS && dg_now_ms() < deadline) {
		struct pollfd p[CLIENTS];
		for (unsigned c = 0; c < CLIENTS; c++)
			p[c] = (struct pollfd){ .fd = answered[c] < ROUNDS ? fd[c] : -1, .events = POLLIN };
		poll(p, CLIENTS, 100);
		double now = dg_now_ms();
		for (unsigned c = 0; c < CLIENTS; c++) {
			if (answered[c] == ROUNDS)
				continue;
			bool resend = false;
			if (p[c].revents & POLLIN) {
				ssize_t len = recv(fd[c], buf, sizeof(buf) - 1, 0);
				if (len < 0)
					continue;
				buf[len] = '\0';
				if (len == 0) {
					/* nginx's answer when the upstream refused (ICMP port
					 * unreachable): an empty datagram. Ask again. */
					run->empty++;
					run->retries++;
					resend = true;
				} else if (!strncmp(buf, "{\"ok\":true,\"value\":", 19)) {
					run->ok++;
				} else {
					fprintf(stderr, "client %u: %s\n", c, buf);
					run->errors++;
				}
				if (len > 0 && now - first_at[c] > run->worst_ms)
					run->worst_ms = now - first_at[c];
				if (len > 0 && ++answered[c] == ROUNDS) {
					done++;
					continue;
				}
				if (len > 0)
					first_at[c] = now;
				resend = true;
			} else if (now - sent_at[c] > RETRY_MS) {
				run->retries++;
				resend = true;
			}
			if (resend) {
				CU_ASSERT(sendto(fd[c], req, strlen(req), 0, (struct sockaddr *)&n->front.addr[0],
				                 n->front.addrlen[0]) > 0);
				sent_at[c] = now;
			}
		}
	}
	for (unsigned c = 0; c < CLIENTS; c++)
		close(fd[c]);
}

/* What nginx logged about the upstreams (its passive health check). */
static void print_upstream_errors(const struct nginx *n)
{
	char line[1024];
	FILE *f = fopen(n->log, "r");
	unsigned shown = 0;

	while (f && fgets(line, sizeof(line), f) && shown < 5)
		if (strstr(line, "[error]") || strstr(line, "[warn]")) {
			fprintf(stderr, "nginx: %s", line);
			shown++;
		}
	if (f)
		fclose(f);
}

/* Kill every process of the daemon (no graceful stop), and return once
 * none is left holding its socket: a datagram still queued on a dying
 * worker's socket would be served by it, or dropped without the ICMP error
 * that tells nginx at once. */
static void kill_daemon(struct dg_daemon *d)
{
	pid_t w = dg_daemon_worker(d);

	CU_ASSERT_FATAL(w > 0);
	kill(d->pid, SIGKILL);
	kill(w, SIGKILL);
	waitpid(d->pid, NULL, 0);
	d->pid = 0;
	CU_ASSERT_FATAL(dg_wait_gone(w, 10000)); /* its pidfd says when it has ended */
}

static void test_two_behind_nginx(void)
{
	struct dg_daemon a, b;
	static struct nginx n; /* main() stops it if an assertion ends the test */
	struct lb_run one = { 0 }, two = { 0 };

	CU_ASSERT_FATAL(dg_daemon_start(&a, dgramd_conf(), NULL));
	CU_ASSERT_FATAL(dg_daemon_start(&b, dgramd_conf(), NULL));
	CU_ASSERT_FATAL(nginx_start(&n, &a, &b));
	if (!nginx_wait(&n)) {
		char cmd[4200];
		snprintf(cmd, sizeof(cmd), "cat %s/nginx.conf %s >&2", dg_test_tmpdir(), n.log);
		CU_ASSERT(system(cmd) == 0);
		CU_FAIL_FATAL("nginx did not proxy within 15 s");
	}

	/* Both up: nginx spreads the requests (round robin). */
	lb_incr(&n, &one);
	long long ca = redis_metric(&a, "r", "commands"), cb = redis_metric(&b, "r", "commands");
	long long total = redis_int(rs.port, 3, (const char *[]){ "INCRBY", "lb:total", "0" });
	fprintf(stderr, "both up: %u ok, %u errors, %u retries; commands %lld on a, %lld on b; "
	        "total %lld; slowest answer %.1f ms\n", one.ok, one.errors, one.retries, ca, cb, total,
	        one.worst_ms);
	CU_ASSERT_EQUAL(one.ok, CLIENTS * ROUNDS);
	CU_ASSERT_EQUAL(one.errors, 0);
	CU_ASSERT(ca > 0 && cb > 0);
	CU_ASSERT_EQUAL(total, CLIENTS * ROUNDS);

	/* a dies: b keeps serving; the count stays exact (a executed nothing
	 * after its death, so a retry never counts twice). */
	long long b_before = redis_metric(&b, "r", "commands");
	kill_daemon(&a);
	lb_incr(&n, &two);
	total = redis_int(rs.port, 3, (const char *[]){ "INCRBY", "lb:total", "0" });
	long long b_after = redis_metric(&b, "r", "commands");
	fprintf(stderr, "a killed: %u ok, %u errors, %u retries (requests nginx sent to the dead "
	        "instance: %u answered by nginx with an empty datagram, %u with nothing), slowest "
	        "answer %.0f ms; b served %lld; total %lld\n", two.ok, two.errors, two.retries,
	        two.empty, two.retries - two.empty, two.worst_ms, b_after - b_before, total);
	print_upstream_errors(&n);
	CU_ASSERT_EQUAL(two.ok, CLIENTS * ROUNDS);
	CU_ASSERT_EQUAL(two.errors, 0);
	CU_ASSERT(two.retries <= CLIENTS); /* max_fails=1: a is marked down at its first failure */
	CU_ASSERT_EQUAL(b_after - b_before, CLIENTS * ROUNDS);
	CU_ASSERT_EQUAL(total, 2 * CLIENTS * ROUNDS);

	nginx_stop(&n);
	dg_daemon_stop_checked(&b, "r");
}

static const struct dg_test nginx_tests[] = {
	{ "two instances behind nginx udp, one killed, counts add up", test_two_behind_nginx },
	{ NULL, NULL },
};

static void stop_nginx(void)
{
	if (running)
		nginx_stop(running);
}

int main(void)
{
	static const struct dg_suite suites[] = { { "nginx", nginx_tests }, { NULL, NULL } };

	return redis_test_main(suites, &rs, nginx_missing, stop_nginx);
}
