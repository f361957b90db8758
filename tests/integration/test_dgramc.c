/* dgramc against the real dgramd: every codec, stdin, batches, listen, and
 * the documented exit codes (0 ok, 2 usage, 3 timeout, 4 parse, 5 network). */
#include "config.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdarg.h>
#include <sys/wait.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "testutil.h"

static char out[8192], err[8192];

static char *port_of(const struct dg_daemon *d, unsigned i)
{
	static char buf[4][64];
	const struct sockaddr_in *a = (const struct sockaddr_in *)&d->addr[i];
	snprintf(buf[i], sizeof(buf[i]), "127.0.0.1:%u", ntohs(a->sin_port));
	return buf[i];
}

/* dgramc ARGS... (NULL-terminated), stdin from in. */
static int dgramc(const char *in, ...)
{
	char bin[4096];
	const char *argv[32];
	unsigned n = 0;
	va_list ap;

	snprintf(bin, sizeof(bin), "%s/dgramc", dg_test_builddir());
	argv[n++] = bin;
	va_start(ap, in);
	for (const char *a; n < 31 && (a = va_arg(ap, const char *)); )
		argv[n++] = a;
	va_end(ap);
	argv[n] = NULL;
	int rc = dg_run(argv, in, out, sizeof(out), err, sizeof(err), 20000);
	if (err[0])
		fprintf(stderr, "  dgramc stderr: %s", err);
	return rc;
}

#define LPJ "{\"framing\": \"length-prefixed\", \"payload\": \"json\"}"

static const char config[] =
	"{\"listeners\": ["
	" {\"name\": \"json\", \"bind\": \"127.0.0.1:0\", \"codec\": \"json\", \"handler\": \"echo\"},"
	/* "re:1" is four times "1": more than the amplification guard allows
	 * an unvalidated peer by default (3). */
	" {\"name\": \"raw\", \"bind\": \"127.0.0.1:0\", \"codec\": \"raw\","
	"  \"amplification\": {\"factor\": 4},"
	"  \"handler\": {\"plugin\": \"echo\", \"config\": {\"prefix\": \"re:\"}}},"
	" {\"name\": \"lp\", \"bind\": \"127.0.0.1:0\", \"codec\": " LPJ ", \"handler\": "
	"  {\"plugin\": \"echo\", \"config\": {\"wrap\": \"echo\"}}}"
	"]}";

static struct dg_daemon d;

static void test_json(void)
{
	CU_ASSERT_EQUAL(dgramc(NULL, "--codec", "json", port_of(&d, 0), "{\"op\":\"ping\"}", NULL), 0);
	CU_ASSERT_STRING_EQUAL(out, "{\"op\":\"ping\"}\n");
	CU_ASSERT_EQUAL(dgramc(NULL, "--pretty", port_of(&d, 0), "{\"a\":[1]}", NULL), 0);
	CU_ASSERT_STRING_EQUAL(out, "{\n  \"a\": [\n    1\n  ]\n}\n");
	/* Packets from stdin, one per line; blank lines are skipped. */
	CU_ASSERT_EQUAL(dgramc("{\"a\":1}\n\n[2]\n\"x\"\n", port_of(&d, 0), NULL), 0);
	CU_ASSERT_STRING_EQUAL(out, "{\"a\":1}\n[2]\n\"x\"\n");
	/* --id: each request gets an id, the echo carries it back. */
	CU_ASSERT_EQUAL(dgramc("{\"a\":1}\n{\"a\":2,\"id\":\"x\"}\n", "--id", "id", port_of(&d, 0), NULL), 0);
	CU_ASSERT_STRING_EQUAL(out, "{\"a\":1,\"id\":1}\n{\"a\":2,\"id\":\"x\"}\n");
	/* A bad packet is a usage error, the good ones still go. */
	CU_ASSERT_EQUAL(dgramc("1\n{bad\n2\n", port_of(&d, 0), NULL), 2);
	CU_ASSERT_STRING_EQUAL(out, "1\n2\n");
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "stdin line 2: not JSON"));
}

static void test_raw(void)
{
	CU_ASSERT_EQUAL(dgramc(NULL, "-c", "raw", port_of(&d, 1), "hello", NULL), 0);
	CU_ASSERT_STRING_EQUAL(out, "re:hello\n");
	CU_ASSERT_EQUAL(dgramc(NULL, "-c", "raw", "--hex", port_of(&d, 1), "00ff", NULL), 0);
	CU_ASSERT_STRING_EQUAL(out, "72653a00ff\n");
	CU_ASSERT_EQUAL(dgramc(NULL, "-c", "raw", "--base64", port_of(&d, 1), "aGk=", NULL), 0);
	CU_ASSERT_STRING_EQUAL(out, "cmU6aGk=\n");
	CU_ASSERT_EQUAL(dgramc(NULL, "-c", "raw", "--hex", port_of(&d, 1), "0g", NULL), 2);
}

/* A length-prefixed JSON exchange in one command line. */
static void test_length_prefixed(void)
{
	CU_ASSERT_EQUAL(dgramc(NULL, "-c", LPJ, "--batch", port_of(&d, 2), "{\"a\":1}", "[2]", "\"c\"", NULL), 0);
	CU_ASSERT_STRING_EQUAL(out, "{\"echo\":{\"a\":1}}\n{\"echo\":[2]}\n{\"echo\":\"c\"}\n");
	CU_ASSERT_EQUAL(dgramc(NULL, "-c", LPJ, port_of(&d, 2), "{\"b\":2}", NULL), 0);
	CU_ASSERT_STRING_EQUAL(out, "{\"echo\":{\"b\":2}}\n");
}


static void test_exit_codes(void)
{
	/* 5: nothing listens (ICMP port unreachable), well within the timeout. */
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t alen = sizeof(a);
	int fd = socket(AF_INET, SOCK_DGRAM, 0);
	char closed[64], hole[64];
	bind(fd, (struct sockaddr *)&a, alen);
	getsockname(fd, (struct sockaddr *)&a, &alen);
	snprintf(closed, sizeof(closed), "127.0.0.1:%u", ntohs(a.sin_port));
	close(fd);
	double t0 = dg_now_ms();
	CU_ASSERT_EQUAL(dgramc(NULL, "-t", "15000", closed, "{\"op\":\"ping\"}", NULL), 5);
	CU_ASSERT(dg_now_ms() - t0 < 10000); /* the ICMP error, not the timeout */
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "port unreachable"));
	/* 3: a socket that never answers; with retries the attempts add up. */
	fd = socket(AF_INET, SOCK_DGRAM, 0);
	a.sin_port = 0;
	bind(fd, (struct sockaddr *)&a, sizeof(a));
	alen = sizeof(a);
	getsockname(fd, (struct sockaddr *)&a, &alen);
	snprintf(hole, sizeof(hole), "127.0.0.1:%u", ntohs(a.sin_port));
	t0 = dg_now_ms();
	CU_ASSERT_EQUAL(dgramc(NULL, "-t", "100", "-r", "2", hole, "1", NULL), 3);
	CU_ASSERT(dg_now_ms() - t0 >= 300);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "after 3 attempts"));
	close(fd);
	/* 4: the reply does not decode ("re:1" from the raw listener is not JSON). */
	CU_ASSERT_EQUAL(dgramc(NULL, "-c", "json", port_of(&d, 1), "1", NULL), 4);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "invalid token"));
	/* 2: usage. */
	CU_ASSERT_EQUAL(dgramc(NULL, NULL), 2);
	CU_ASSERT_EQUAL(dgramc(NULL, "-c", "yaml", port_of(&d, 0), "1", NULL), 2);
	CU_ASSERT_EQUAL(dgramc(NULL, "-t", "x", port_of(&d, 0), NULL), 2);
	CU_ASSERT_EQUAL(dgramc(NULL, "127.0.0.1", "1", NULL), 2);
	/* 5: resolution. */
	CU_ASSERT_EQUAL(dgramc(NULL, "no.such.host.invalid:53", "1", NULL), 5);
	/* --help says all of this. */
	CU_ASSERT_EQUAL(dgramc(NULL, "--help", NULL), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "Exit status: 0 ok, 2 usage error, 3 timeout, 4 parse error"));
}

/* Read "ADDRESS:PORT" from a ready file; false if it is not there yet. */
static bool read_ready(const char *path, struct sockaddr_in *a)
{
	FILE *f = fopen(path, "r");
	unsigned b[4], port;
	bool ok;

	if (!f)
		return false;
	ok = fscanf(f, "%u.%u.%u.%u:%u", &b[0], &b[1], &b[2], &b[3], &port) == 5 && port;
	fclose(f);
	a->sin_family = AF_INET;
	a->sin_addr.s_addr = htonl(b[0] << 24 | b[1] << 16 | b[2] << 8 | b[3]);
	a->sin_port = htons((uint16_t)port);
	return ok;
}

/* --listen: a sink that prints what arrives, then stops after --count. It
 * binds port 0 and says where in --ready-file; the test sends only then. */
static void test_listen(void)
{
	struct sockaddr_in a = { 0 };
	char bin[4096], ready[4096], path[4096];
	int fd, st;

	snprintf(bin, sizeof(bin), "%s/dgramc", dg_test_builddir());
	snprintf(ready, sizeof(ready), "%s/listen.ready", dg_test_tmpdir());
	pid_t pid = fork();
	if (pid == 0) {
		const char *argv[] = { bin, "--listen", "--count", "2", "-t", "10000", "--ready-file",
		                       ready, "127.0.0.1:0", NULL };
		dg_run(argv, NULL, out, sizeof(out), err, sizeof(err), 20000);
		/* Hand the output back through a file. */
		FILE *f = fopen(dg_test_write("listen.out", out), "w");
		if (f) {
			fputs(out, f);
			fclose(f);
		}
		_exit(0);
	}
	CU_ASSERT_FATAL(pid > 0);
	/* Wait for the ready file (bounded), or for dgramc to give up. */
	double deadline = dg_now_ms() + 10000;
	bool ready_seen = false;
	while (!(ready_seen = read_ready(ready, &a)) && dg_now_ms() < deadline &&
	       waitpid(pid, &st, WNOHANG) == 0)
		poll(NULL, 0, 5);
	CU_ASSERT_FATAL(ready_seen);
	CU_ASSERT_EQUAL(ntohl(a.sin_addr.s_addr), INADDR_LOOPBACK);
	fd = socket(AF_INET, SOCK_DGRAM, 0);
	CU_ASSERT_EQUAL(sendto(fd, "{\"n\":1}", 7, 0, (struct sockaddr *)&a, sizeof(a)), 7);
	CU_ASSERT_EQUAL(sendto(fd, "[2]", 3, 0, (struct sockaddr *)&a, sizeof(a)), 3);
	close(fd);
	CU_ASSERT_EQUAL(waitpid(pid, &st, 0), pid);
	snprintf(path, sizeof(path), "%s/listen.out", dg_test_tmpdir());
	FILE *f = fopen(path, "r");
	size_t n = f ? fread(out, 1, sizeof(out) - 1, f) : 0;
	out[n] = '\0';
	if (f)
		fclose(f);
	CU_ASSERT_STRING_EQUAL(out, "{\"n\":1}\n[2]\n");
	/* --ready-file is for --listen only. */
	CU_ASSERT_EQUAL(dgramc(NULL, "--ready-file", ready, "127.0.0.1:9", "1", NULL), 2);
}

/* Several requests from stdin to a server that answers request 1 only
 * after it timed out, while requests 2 and 3 are in flight: every line
 * gets its own answer or its own timeout. The server is a child process
 * on loopback. */
static void test_stdin_late_replies(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t alen = sizeof(a);
	struct timeval tv = { .tv_sec = 10 };
	int s = socket(AF_INET, SOCK_DGRAM, 0);
	char where[64];

	CU_ASSERT_FATAL(s >= 0 && bind(s, (struct sockaddr *)&a, alen) == 0 &&
	                getsockname(s, (struct sockaddr *)&a, &alen) == 0);
	setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	snprintf(where, sizeof(where), "127.0.0.1:%u", ntohs(a.sin_port));
	pid_t pid = fork();
	if (pid == 0) {
		struct sockaddr_in from[4];
		char buf[64], ans[96];
		for (int i = 0; i < 3; i++) {
			socklen_t flen = sizeof(from[0]);
			ssize_t n = recvfrom(s, buf, sizeof(buf) - 1, 0, (struct sockaddr *)&from[i], &flen);
			if (n <= 0)
				_exit(1);
			buf[n] = '\0';
			snprintf(ans, sizeof(ans), "answer to %s", buf);
			/* Request 1's answer, late, to where it came from, while
			 * request 2 (then 3) is in flight. */
			if (i >= 1)
				sendto(s, "answer to 1", 11, 0, (struct sockaddr *)&from[0], sizeof(from[0]));
			if (i >= 1)
				sendto(s, ans, strlen(ans), 0, (struct sockaddr *)&from[i], sizeof(from[i]));
		}
		_exit(0);
	}
	CU_ASSERT_EQUAL(dgramc("1\n2\n3\n", "-c", "raw", "-t", "1000", where, NULL), 3);
	if (strcmp(out, "answer to 2\nanswer to 3\n"))
		fprintf(stderr, "  dgramc stdout: %s", out);
	CU_ASSERT_STRING_EQUAL(out, "answer to 2\nanswer to 3\n");
	CU_ASSERT_EQUAL(dg_count_lines(err, "no reply"), 1);
	int st;
	CU_ASSERT_EQUAL(waitpid(pid, &st, 0), pid);
	CU_ASSERT(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	close(s);
}

/* The C example of docs/client.md works as printed. */
static void test_readme_client(void)
{
	char bin[4096];

	snprintf(bin, sizeof(bin), "%s/tests/client/readme_client", dg_test_builddir());
	const char *argv[] = { bin, port_of(&d, 0), NULL };
	CU_ASSERT_EQUAL(dg_run(argv, NULL, out, sizeof(out), err, sizeof(err), 10000), 0);
	CU_ASSERT_STRING_EQUAL(out, "{\"op\":\"ping\"}\n");
	const char *dead[] = { bin, "127.0.0.1:9", NULL };
	CU_ASSERT_EQUAL(dg_run(dead, NULL, out, sizeof(out), err, sizeof(err), 10000), 1);
}

static void test_start(void)
{
	CU_ASSERT_FATAL(dg_daemon_start(&d, config, NULL));
	CU_ASSERT_EQUAL(d.n_addr, 3);
}

static void test_stop(void)
{
	CU_ASSERT_EQUAL(dg_daemon_stop(&d), 0);
}

static const struct dg_test dgramc_tests[] = {
	{ "start dgramd", test_start },
	{ "json", test_json },
	{ "raw, hex, base64", test_raw },
	{ "length-prefixed json in one command line", test_length_prefixed },
	{ "exit codes", test_exit_codes },
	{ "listen", test_listen },
	{ "stdin: a late answer goes to nobody else", test_stdin_late_replies },
	{ "docs/client.md example", test_readme_client },
	{ "stop dgramd", test_stop },
	{ NULL, NULL },
};

DG_TEST_MAIN("dgramc", dgramc_tests)
