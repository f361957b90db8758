/* The syslog plugin in the real daemon: util-linux logger sends RFC 3164
 * and RFC 5424 (structured data, non-ASCII text, oversized messages) over
 * UDP, and each message must be the expected JSON line in the file (read
 * back with jansson). Also: a flood at a stated rate loses nothing, an
 * unpaced burst is accounted for by the counters, hostile messages stay
 * one valid line each, write errors are counted, SIGUSR1 reopens the file.
 * Built twice: test_syslog_logger (-DDG_SYSLOG_LOGGER) runs the logger
 * tests, and is skipped (exit 77) when logger is not installed (Debian
 * bsdutils); test_syslog_python (-DDG_SYSLOG_PYTHON) sends with Python's
 * logging.handlers.SysLogHandler, skipped when python3 is not installed;
 * test_syslog runs the rest. */
#include "config.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/resource.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include <jansson.h>

#include "testutil.h"
#include "waitfor.h"

#define BODY (1 << 20)
#define LOGGER "/usr/bin/logger"
#define PYTHON "/usr/bin/python3"

#ifdef DG_SYSLOG_LOGGER
static bool have_logger(void)
{
	if (access(LOGGER, X_OK) == 0)
		return true;
	printf("SKIP: %s is not installed (apt-get install bsdutils)\n", LOGGER);
	return false;
}
#endif

static char path_buf[4096];

/* A fresh output file's path under the test's temporary directory. */
static const char *out_path(const char *name)
{
	snprintf(path_buf, sizeof(path_buf), "%s/%s", dg_test_tmpdir(), name);
	unlink(path_buf);
	return path_buf;
}

/* Start dgramd with one raw listener "s" writing to file; listener_extra
 * and plugin_extra are JSON members (each with a trailing comma, or ""). */
static bool start(struct dg_daemon *d, const char *file, const char *listener_extra,
                  const char *plugin_extra)
{
	char conf[8192];

	snprintf(conf, sizeof(conf),
	         "{ \"metrics\": { \"bind\": \"127.0.0.1:0\" }, \"listeners\": [ { \"name\": \"s\", "
	         "\"bind\": \"127.0.0.1:0\", \"codec\": \"raw\", %s \"handler\": { \"plugin\": "
	         "\"syslog\", \"config\": { %s \"file\": \"%s\" } } } ] }",
	         listener_extra, plugin_extra, file);
	return dg_daemon_start(d, conf, NULL);
}


/* The file's content (malloc'd, NUL-terminated; *len its size). */
static char *slurp(const char *file, size_t *len)
{
	FILE *f = fopen(file, "rb");
	char *buf = NULL;
	size_t cap = 0, n = 0;

	*len = 0;
	if (!f)
		return NULL;
	for (;;) {
		if (cap - n < 65536) {
			char *nb = realloc(buf, cap = cap * 2 + 65536 + 1);
			if (!nb) {
				free(buf);
				fclose(f);
				return NULL;
			}
			buf = nb;
		}
		size_t r = fread(buf + n, 1, cap - n - 1, f);
		n += r;
		if (r == 0)
			break;
	}
	fclose(f);
	buf[n] = '\0';
	*len = n;
	return buf;
}

static size_t lines_in(const char *file)
{
	size_t len, k = 0;
	char *s = slurp(file, &len);

	for (size_t i = 0; s && i < len; i++)
		k += s[i] == '\n';
	free(s);
	return k;
}

/* Wait (bounded; woken by inotify as the file grows) until the file holds
 * at least n lines; the count. */
static size_t wait_lines(const char *file, size_t n, unsigned timeout_ms)
{
	if (n)
		(void)dg_wait_file(file, "\n", (unsigned)n, 0, timeout_ms);
	return lines_in(file);
}

/* Line i (from 0) of the file, decoded; every line must be one valid JSON
 * object (no duplicate keys). NULL if not. */
static json_t *line_at(const char *file, size_t i)
{
	size_t len;
	char *s = slurp(file, &len), *p = s;
	json_t *j = NULL;

	for (size_t k = 0; p && k < i; k++) {
		p = memchr(p, '\n', len - (size_t)(p - s));
		p = p ? p + 1 : NULL;
	}
	char *e = p ? memchr(p, '\n', len - (size_t)(p - s)) : NULL;
	if (e) {
		json_error_t je;
		j = json_loadb(p, (size_t)(e - p), JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &je);
		if (!j)
			printf("\n  line %zu is not JSON: %s", i, je.text);
	}
	free(s);
	return j;
}

/* wait_lines, and if they do not come, fail and stop the daemon (the
 * caller returns). */
static bool expect_lines(struct dg_daemon *d, const char *file, size_t n)
{
	size_t k = wait_lines(file, n, 10000);

	CU_ASSERT_EQUAL(k, n);
	if (k == n)
		return true;
	dg_daemon_stop(d);
	return false;
}

static const char *str(json_t *j, const char *k)
{
	json_t *v = json_object_get(j, k);
	return json_is_string(v) ? json_string_value(v) : json_is_null(v) ? "(null)" : "(absent)";
}


/* A counter of listener "s" from /stats: the core's (rx, ...) or, with
 * plugin set, the syslog plugin's. -1 if absent. */
/* Counter key of listener "s" (the plugin's if plugin), live. */
static long long stat_of(const struct dg_daemon *d, const char *key, bool plugin)
{
	char k[64];

	snprintf(k, sizeof(k), "%s%s", plugin ? "plugin." : "", key);
	return dg_daemon_live(d, "s", k);
}

#if defined(DG_SYSLOG_LOGGER) || defined(DG_SYSLOG_PYTHON)
static long long num(json_t *j, const char *k)
{
	json_t *v = json_object_get(j, k);
	return json_is_integer(v) ? json_integer_value(v) : -1;
}

static unsigned short port_of(const struct dg_daemon *d)
{
	return ntohs(((const struct sockaddr_in *)&d->addr[0])->sin_port);
}
#endif

#ifdef DG_SYSLOG_PYTHON
/* Python's logging.handlers.SysLogHandler as applications use it (UDP,
 * append_nul on by default: every datagram ends in a NUL); argv[1] is the
 * port. The second message ends in a newline as well, the third has the
 * default formatter (no tag). */
static const char python_sender[] =
	"import logging, logging.handlers, sys\n"
	"h = logging.handlers.SysLogHandler(address=('127.0.0.1', int(sys.argv[1])),\n"
	"    facility=logging.handlers.SysLogHandler.LOG_LOCAL3)\n"
	"h.setFormatter(logging.Formatter('pyapp[%(process)d]: %(message)s'))\n"
	"log = logging.getLogger('dgramd-test')\n"
	"log.addHandler(h)\n"
	"log.warning('h\\u00e9llo from python')\n"
	"log.error('ends in a newline\\n')\n"
	"h.setFormatter(logging.Formatter('%(message)s'))\n"
	"log.critical('plain')\n"
	"h.close()\n";

/* Each message is its text in msg: no "\u0000" (the NUL Python appends)
 * and no trailing newline. */
static void test_python_handler(void)
{
	struct dg_daemon d;
	const char *file = out_path("python.jsonl");
	char port[16], out[4096], err[4096];

	CU_ASSERT_FATAL(start(&d, file, "", "\"flush_ms\": 10,"));
	snprintf(port, sizeof(port), "%u", port_of(&d));
	const char *argv[] = { PYTHON, "-", port, NULL };
	int rc = dg_run(argv, python_sender, out, sizeof(out), err, sizeof(err), 10000);
	if (rc != 0)
		printf("\n  python3: exit %d: %s", rc, err);
	CU_ASSERT_EQUAL(rc, 0);
	if (!expect_lines(&d, file, 3))
		return;
	static const struct {
		const char *msg, *app;
		int severity;
	} want[] = {
		{ "h\xc3\xa9llo from python", "pyapp", 4 },
		{ "ends in a newline", "pyapp", 3 },
		{ "plain", "(null)", 2 },
	};
	for (size_t i = 0; i < 3; i++) {
		json_t *j = line_at(file, i);
		CU_ASSERT_STRING_EQUAL(str(j, "format"), "rfc3164");
		CU_ASSERT_EQUAL(num(j, "facility"), 19);
		CU_ASSERT_EQUAL(num(j, "severity"), want[i].severity);
		CU_ASSERT_STRING_EQUAL(str(j, "app"), want[i].app);
		json_t *msg = json_object_get(j, "msg");
		CU_ASSERT(json_is_string(msg) && json_string_length(msg) == strlen(want[i].msg) &&
		          !strcmp(json_string_value(msg), want[i].msg));
		if (!json_is_string(msg) || json_string_length(msg) != strlen(want[i].msg))
			printf("\n  line %zu: msg of %zu bytes, not \"%s\"", i, json_string_length(msg),
			       want[i].msg);
		json_decref(j);
	}
	json_t *j = line_at(file, 0);
	CU_ASSERT(atoi(str(j, "procid")) > 0); /* python's pid */
	json_decref(j);
	CU_ASSERT_EQUAL(stat_of(&d, "written", true), 3);
	CU_ASSERT_EQUAL(stat_of(&d, "parse_errors", true), 0);
	dg_daemon_stop_checked(&d, "s");
}

#elif defined(DG_SYSLOG_LOGGER)

static int logger(const struct dg_daemon *d, const char *const *opts, const char *msg)
{
	const char *argv[32];
	char port[16], out[4096], err[4096];
	int n = 0;

	snprintf(port, sizeof(port), "%u", port_of(d));
	argv[n++] = LOGGER;
	argv[n++] = "-d";
	argv[n++] = "-n";
	argv[n++] = "127.0.0.1";
	argv[n++] = "-P";
	argv[n++] = port;
	for (; *opts && n < 28; opts++)
		argv[n++] = *opts;
	argv[n++] = "--";
	argv[n++] = msg;
	argv[n] = NULL;
	int rc = dg_run(argv, NULL, out, sizeof(out), err, sizeof(err), 10000);
	if (rc != 0)
		printf("\n  logger: exit %d: %s", rc, err);
	return rc;
}

static void test_logger_3164(void)
{
	struct dg_daemon d;
	const char *file = out_path("3164.jsonl");

	CU_ASSERT_FATAL(start(&d, file, "", "\"flush_ms\": 10,"));
	CU_ASSERT_EQUAL(logger(&d, (const char *[]){ "--rfc3164", "-t", "mytag", "-i", "-p",
	                                             "local3.err", NULL }, "h\xc3\xa9llo w\xc3\xb6rld \xe6\x97\xa5\xe6\x9c\xac"), 0);
	CU_ASSERT_EQUAL(logger(&d, (const char *[]){ "--rfc3164", "-p", "auth.notice", NULL },
	                       "second \"quoted\" message"), 0);
	if (!expect_lines(&d, file, 2))
		return;
	json_t *j = line_at(file, 0);
	CU_ASSERT_STRING_EQUAL(str(j, "format"), "rfc3164");
	CU_ASSERT_EQUAL(num(j, "facility"), 19);
	CU_ASSERT_EQUAL(num(j, "severity"), 3);
	CU_ASSERT_STRING_EQUAL(str(j, "app"), "mytag");
	CU_ASSERT(atoi(str(j, "procid")) > 0); /* logger's pid */
	CU_ASSERT_STRING_EQUAL(str(j, "msg"), "h\xc3\xa9llo w\xc3\xb6rld \xe6\x97\xa5\xe6\x9c\xac");
	CU_ASSERT_EQUAL(strlen(str(j, "timestamp")), 15); /* "Nov 23 13:42:14" */
	CU_ASSERT(strcmp(str(j, "hostname"), "(null)") && strcmp(str(j, "hostname"), "(absent)"));
	CU_ASSERT_EQUAL(strncmp(str(j, "peer"), "127.0.0.1:", 10), 0);
	CU_ASSERT_EQUAL(strlen(str(j, "received")), 27);
	json_decref(j);
	j = line_at(file, 1);
	CU_ASSERT_EQUAL(num(j, "facility"), 4);
	CU_ASSERT_EQUAL(num(j, "severity"), 5);
	CU_ASSERT_STRING_EQUAL(str(j, "msg"), "second \"quoted\" message");
	json_decref(j);
	CU_ASSERT_EQUAL(stat_of(&d, "written", true), 2);
	CU_ASSERT_EQUAL(stat_of(&d, "parse_errors", true), 0);
	dg_daemon_stop_checked(&d, "s");
}

static void test_logger_5424(void)
{
	struct dg_daemon d;
	const char *file = out_path("5424.jsonl");
	const char *text = "Gr\xc3\xbc\xc3\x9f" "e \xe6\x97\xa5\xe6\x9c\xac tab\there";

	CU_ASSERT_FATAL(start(&d, file, "", "\"flush_ms\": 10,"));
	CU_ASSERT_EQUAL(logger(&d, (const char *[]){ "--rfc5424", "-t", "app1", "--msgid", "ID7",
	                                             "--sd-id", "ex@32473", "--sd-param", "a=\"1\"",
	                                             "--sd-param", "b=\"x\\\"y\\]\"", "-p", "local7.debug",
	                                             NULL }, text), 0);
	CU_ASSERT_EQUAL(logger(&d, (const char *[]){ "--rfc5424=notq,nohost", NULL }, "plain"), 0);
	if (!expect_lines(&d, file, 2))
		return;
	json_t *j = line_at(file, 0);
	CU_ASSERT_STRING_EQUAL(str(j, "format"), "rfc5424");
	CU_ASSERT_EQUAL(num(j, "version"), 1);
	CU_ASSERT_EQUAL(num(j, "facility"), 23);
	CU_ASSERT_EQUAL(num(j, "severity"), 7);
	CU_ASSERT_STRING_EQUAL(str(j, "app"), "app1");
	CU_ASSERT_STRING_EQUAL(str(j, "msgid"), "ID7");
	CU_ASSERT_STRING_EQUAL(str(j, "msg"), text);
	CU_ASSERT_EQUAL(strncmp(str(j, "timestamp"), "20", 2), 0);
	json_t *sd = json_object_get(j, "sd");
	CU_ASSERT_STRING_EQUAL(str(json_object_get(sd, "ex@32473"), "a"), "1");
	CU_ASSERT_STRING_EQUAL(str(json_object_get(sd, "ex@32473"), "b"), "x\"y]");
	CU_ASSERT_PTR_NOT_NULL(json_object_get(json_object_get(sd, "timeQuality"), "tzKnown"));
	json_decref(j);
	j = line_at(file, 1);
	CU_ASSERT_STRING_EQUAL(str(j, "hostname"), "(null)");
	CU_ASSERT(json_is_null(json_object_get(j, "sd")));
	CU_ASSERT_STRING_EQUAL(str(j, "msg"), "plain");
	json_decref(j);
	dg_daemon_stop_checked(&d, "s");
}

/* logger --size: a 10,000-byte message is written whole, a 50,000-byte one
 * cut at max_msg_bytes (20,000) and marked, a datagram past the listener's
 * max_datagram (60,000) dropped by the server and counted there. */
static void test_logger_oversized(void)
{
	struct dg_daemon d;
	const char *file = out_path("big.jsonl");
	char *big = malloc(62001);

	CU_ASSERT_FATAL(big != NULL);
	CU_ASSERT_FATAL(start(&d, file, "\"max_datagram\": 60000,", "\"flush_ms\": 10, \"max_msg_bytes\": 20000,"));
	const char *opts[] = { "--rfc5424", "--size", "65000", NULL };
	for (size_t i = 0; i < 62000; i++)
		big[i] = (char)('a' + i % 26);
	big[10000] = '\0';
	CU_ASSERT_EQUAL(logger(&d, opts, big), 0);
	big[10000] = 'a' + 10000 % 26;
	big[50000] = '\0';
	CU_ASSERT_EQUAL(logger(&d, opts, big), 0);
	big[50000] = 'a' + 50000 % 26;
	big[62000] = '\0';
	CU_ASSERT_EQUAL(logger(&d, opts, big), 0);
	CU_ASSERT_EQUAL(logger(&d, opts, "last"), 0);
	if (!expect_lines(&d, file, 3))
		return;
	json_t *j = line_at(file, 0);
	CU_ASSERT_EQUAL(strlen(str(j, "msg")), 10000);
	CU_ASSERT_PTR_NULL(json_object_get(j, "truncated"));
	json_decref(j);
	j = line_at(file, 1);
	CU_ASSERT_EQUAL(strlen(str(j, "msg")), 20000);
	CU_ASSERT_EQUAL(strncmp(str(j, "msg"), big, 20000), 0);
	CU_ASSERT_EQUAL(num(j, "truncated"), 50000);
	json_decref(j);
	j = line_at(file, 2);
	CU_ASSERT_STRING_EQUAL(str(j, "msg"), "last");
	json_decref(j);
	CU_ASSERT_EQUAL(stat_of(&d, "truncated", true), 1);
	CU_ASSERT_EQUAL(stat_of(&d, "written", true), 3);
	dg_daemon_stop_checked(&d, "s");
	CU_ASSERT_EQUAL(dg_daemon_stat(&d, "s", "drop_too_large"), 1);
	CU_ASSERT_EQUAL(lines_in(file), 3);
	free(big);
}

#else /* !DG_SYSLOG_LOGGER */

/* Wait for counter key (the plugin's if plugin) to reach min. */
static long long wait_stat(const struct dg_daemon *d, const char *key, bool plugin, long long min)
{
	char k[64];

	snprintf(k, sizeof(k), "%s%s", plugin ? "plugin." : "", key);
	return dg_daemon_wait_live(d, "s", k, min, 10000);
}


static int sender(const struct dg_daemon *d)
{
	int fd = dg_udp_client(&d->addr[0], 1000);
	int big = 4 << 20;

	if (fd >= 0)
		setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &big, sizeof(big));
	return fd;
}

/* One message numbered i; its length. */
static size_t numbered(char *buf, size_t len, unsigned i)
{
	return (size_t)snprintf(buf, len, "<134>1 2026-11-23T13:42:14.000001Z host app %u - "
	                        "[seq@1 n=\"%u\"] message number %u", i, i, i);
}

/* Whether the daemon has accounted for n datagrams (read: rx, or dropped
 * by the kernel: rx_kernel_drops) within timeout_ms: the two counters read
 * again and again from /stats, no sleep. */
static bool accounted(const struct dg_daemon *d, unsigned long long n, unsigned timeout_ms)
{
	double end = dg_now_ms() + timeout_ms;
	long long rx, kd;

	do {
		rx = stat_of(d, "rx", false);
		kd = stat_of(d, "rx_kernel_drops", false);
	} while (rx >= 0 && kd >= 0 && (unsigned long long)(rx + kd) < n && dg_now_ms() < end);
	return rx >= 0 && kd >= 0 && (unsigned long long)(rx + kd) >= n;
}

/* Wait until the daemon has read or seen dropped all `sent` datagrams:
 * rx + rx_kernel_drops == sent. The kernel reports drops with the next
 * datagram read, so a probe is sent (and counted) and the counters polled
 * (each read a /stats round trip, no sleep) until they account for it too;
 * another probe only if that one was dropped. The number of probes sent. */
static unsigned settle(const struct dg_daemon *d, int fd, unsigned sent)
{
	char buf[256];
	unsigned probes = 0;
	double deadline = dg_now_ms() + 20000;

	while (dg_now_ms() < deadline) {
		size_t n = numbered(buf, sizeof(buf), 1000000 + probes);
		if (send(fd, buf, n, 0) == (ssize_t)n)
			probes++;
		if (accounted(d, sent + probes, 2000))
			break;
	}
	return probes;
}

/* Check every line is one valid JSON object of a message; the count. */
static size_t check_all_lines(const char *file)
{
	size_t len, k = 0, bad = 0;
	char *s = slurp(file, &len), *p = s;

	while (p && p < s + len) {
		char *e = memchr(p, '\n', len - (size_t)(p - s));
		if (!e)
			break;
		json_t *j = json_loadb(p, (size_t)(e - p), JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, NULL);
		bad += !json_is_object(j);
		json_decref(j);
		k++;
		p = e + 1;
	}
	CU_ASSERT_EQUAL(bad, 0);
	CU_ASSERT_EQUAL(p, s + len); /* no partial line */
	free(s);
	return k;
}

static long rmem_max(void)
{
	FILE *f = fopen("/proc/sys/net/core/rmem_max", "r");
	long v = 0;

	if (f) {
		if (fscanf(f, "%ld", &v) != 1)
			v = 0;
		fclose(f);
	}
	return v;
}

#define RATE_N 20000
#define RATE_WINDOW 1000

/* RATE_N messages as fast as the daemon takes them, paced by its counters
 * rather than the clock: a batch of RATE_WINDOW goes out once the daemon
 * has read all but RATE_WINDOW of those before it (so at most two batches,
 * ~200 kB of messages, wait in its socket): every one is a line in the
 * file, and the counters agree. */
static void test_rate(void)
{
	struct dg_daemon d;
	const char *file = out_path("rate.jsonl");
	char buf[256];
	unsigned sent = 0, failed = 0;

	CU_ASSERT_FATAL(start(&d, file, "\"rcvbuf\": 8388608,", "\"flush_ms\": 50, \"fsync_ms\": 200,"));
	int fd = sender(&d);
	CU_ASSERT_FATAL(fd >= 0);
	CU_ASSERT_FATAL(connect(fd, (struct sockaddr *)&d.addr[0], d.addrlen[0]) == 0);
	double t0 = dg_now_ms();
	for (unsigned i = 0; i < RATE_N; i++) {
		if (i % RATE_WINDOW == 0 && i >= 2 * RATE_WINDOW)
			CU_ASSERT(accounted(&d, i - RATE_WINDOW, 10000));
		size_t n = numbered(buf, sizeof(buf), i);
		if (send(fd, buf, n, 0) == (ssize_t)n)
			sent++;
		else
			failed++;
	}
	double secs = (dg_now_ms() - t0) / 1000;
	unsigned probes = settle(&d, fd, sent);
	printf("\n  rate: %u messages in %.2f s (%.0f/s), %u send errors, %u probes; ", sent, secs,
	       sent / secs, failed, probes);
	size_t lines = wait_lines(file, sent + probes, 20000);
	long long kd = stat_of(&d, "rx_kernel_drops", false), rx = stat_of(&d, "rx", false);
	printf("rx %lld, rx_kernel_drops %lld, lines %zu", rx, kd, lines);
	CU_ASSERT_EQUAL(failed, 0);
	CU_ASSERT_EQUAL((long long)lines + kd, (long long)(sent + probes));
	/* Nothing lost needs the 8 MiB receive buffer, which only a privileged
	 * dgramd (SO_RCVBUFFORCE) or a large net.core.rmem_max grants. */
	if (geteuid() == 0 || rmem_max() >= 8388608) {
		CU_ASSERT_EQUAL(kd, 0);
		CU_ASSERT_EQUAL(lines, sent + probes);
	} else {
		printf("\n  (not root, rmem_max below 8 MiB: losses only accounted for)");
	}
	CU_ASSERT_EQUAL(stat_of(&d, "written", true), (long long)lines);
	CU_ASSERT_EQUAL(stat_of(&d, "dropped", true), 0);
	CU_ASSERT_EQUAL(check_all_lines(file), lines);
	/* In order, each once. */
	json_t *j = line_at(file, RATE_N - 1);
	CU_ASSERT_STRING_EQUAL(str(j, "procid"), "19999");
	json_decref(j);
	close(fd);
	dg_daemon_stop_checked(&d, "s");
}

/* As fast as the sender can (a small socket buffer, so the kernel may
 * drop): whatever is not in the file is in rx_kernel_drops. */
static void test_burst_accounted(void)
{
	struct dg_daemon d;
	const char *file = out_path("burst.jsonl");
	char buf[256];
	unsigned sent = 0;

	CU_ASSERT_FATAL(start(&d, file, "\"rcvbuf\": 65536,", ""));
	int fd = sender(&d);
	CU_ASSERT_FATAL(fd >= 0);
	CU_ASSERT_FATAL(connect(fd, (struct sockaddr *)&d.addr[0], d.addrlen[0]) == 0);
	double t0 = dg_now_ms();
	for (unsigned i = 0; i < RATE_N; i++) {
		size_t n = numbered(buf, sizeof(buf), i);
		sent += send(fd, buf, n, 0) == (ssize_t)n;
	}
	double secs = (dg_now_ms() - t0) / 1000;
	unsigned probes = settle(&d, fd, sent);
	long long kd = stat_of(&d, "rx_kernel_drops", false), rx = stat_of(&d, "rx", false);
	size_t lines = wait_lines(file, (size_t)rx, 20000);
	printf("\n  burst: %u messages in %.3f s (%.0f/s): rx %lld, rx_kernel_drops %lld, lines %zu",
	       sent + probes, secs, sent / secs, rx, kd, lines);
	CU_ASSERT_EQUAL((long long)lines + kd, (long long)(sent + probes));
	CU_ASSERT_EQUAL((long long)lines, rx);
	CU_ASSERT_EQUAL(stat_of(&d, "written", true), (long long)lines);
	CU_ASSERT_EQUAL(check_all_lines(file), lines);
	close(fd);
	dg_daemon_stop_checked(&d, "s");
}

/* Hostile datagrams: each becomes one valid JSON line carrying its bytes. */
static void test_hostile(void)
{
	struct dg_daemon d;
	const char *file = out_path("hostile.jsonl");
	static const struct {
		const char *d;
		size_t len;
		bool parses;
	} msgs[] = {
#define M(s, p) { s, sizeof(s) - 1, p }
		M("<13>1 - h a - - - line1\nline2\n{\"forged\":true}\n", true),
		M("<13>Oct 11 22:14:15 h t: \"}\",\"x\":\"\\", true),
		M("<13>1 - h a - - - nul\0inside\0", true),
		M("<13>1 - h a - - - \x01\x02\x1b[31m\x7f", true),
		M("<13>1 - h a - - - bad utf8 \xff\xc3\x28\xed\xa0\x80", true),
		M("<13>1 - h a - - [x k=\"\n\\\"\xff\"] sd", true),
		M("\xff\xfe\n\n\0", false),
		M("<999>1 - - - - - -", false),
		M("<13>1 - h\x7f a - - - m", false),
#undef M
	};
	size_t n_msgs = sizeof(msgs) / sizeof(msgs[0]), sent = 0, bad = 0;

	CU_ASSERT_FATAL(start(&d, file, "", "\"flush_ms\": 10,"));
	int fd = sender(&d);
	CU_ASSERT_FATAL(fd >= 0);
	for (size_t i = 0; i < n_msgs; i++, sent++) {
		CU_ASSERT(sendto(fd, msgs[i].d, msgs[i].len, 0, (struct sockaddr *)&d.addr[0], d.addrlen[0]) ==
		          (ssize_t)msgs[i].len);
		bad += !msgs[i].parses;
	}
	/* A huge SD: 200 parameters (past the bound of 128: written raw). */
	char *huge = malloc(60000);
	size_t n = (size_t)snprintf(huge, 60000, "<13>1 - h a - - [big@1");
	for (unsigned i = 0; i < 200; i++)
		n += (size_t)snprintf(huge + n, 60000 - n, " p%u=\"%s\\\"\\]\"", i, "\n\xff");
	n += (size_t)snprintf(huge + n, 60000 - n, "] tail");
	CU_ASSERT(sendto(fd, huge, n, 0, (struct sockaddr *)&d.addr[0], d.addrlen[0]) == (ssize_t)n);
	sent++, bad++;
	if (!expect_lines(&d, file, sent))
		return;
	CU_ASSERT_EQUAL(check_all_lines(file), sent);
	for (size_t i = 0; i < n_msgs; i++) {
		json_t *j = line_at(file, i);
		json_t *text = json_object_get(j, msgs[i].parses ? "msg" : "raw");
		CU_ASSERT(json_is_string(text));
		if (!msgs[i].parses)
			CU_ASSERT(json_is_string(json_object_get(j, "error")));
		json_decref(j);
	}
	json_t *j = line_at(file, 1);
	CU_ASSERT_STRING_EQUAL(str(j, "msg"), "\"}\",\"x\":\"\\");
	json_decref(j);
	j = line_at(file, 0);
	CU_ASSERT_STRING_EQUAL(str(j, "msg"), "line1\nline2\n{\"forged\":true}"); /* the last \n: a sender's */
	json_decref(j);
	j = line_at(file, n_msgs);
	CU_ASSERT_STRING_EQUAL(str(j, "error"), "more than 128 SD-PARAMs");
	/* Whole, each \xff as U+FFFD (3 bytes). */
	CU_ASSERT_EQUAL(json_string_length(json_object_get(j, "raw")), n + 200 * 2);
	json_decref(j);
	CU_ASSERT_EQUAL(stat_of(&d, "parse_errors", true), (long long)bad);
	free(huge);
	close(fd);
	dg_daemon_stop_checked(&d, "s");
}

/* The worst case for the output: a 65,018-byte datagram of control bytes,
 * each escaped to six (a 390,215-byte line before max_msg_bytes had a
 * default). With the default (8192, on the escaped bytes) the line stays
 * under 9 KiB, marked and counted as truncated. */
static void test_worst_case_bounded(void)
{
	struct dg_daemon d;
	const char *file = out_path("worst.jsonl");
	size_t n = 65018;
	char *big = malloc(n);

	CU_ASSERT_FATAL(big != NULL);
	memcpy(big, "<13>1 - h a - - - ", 18);
	memset(big + 18, 0x01, n - 18);
	CU_ASSERT_FATAL(start(&d, file, "", "\"flush_ms\": 10,"));
	int fd = sender(&d);
	CU_ASSERT_FATAL(fd >= 0);
	CU_ASSERT(sendto(fd, big, n, 0, (struct sockaddr *)&d.addr[0], d.addrlen[0]) == (ssize_t)n);
	if (!expect_lines(&d, file, 1)) {
		free(big);
		close(fd);
		return;
	}
	size_t len;
	char *out = slurp(file, &len);
	printf("\n  a %zu-byte datagram of control bytes: a %zu-byte line (%.3f bytes per byte)", n, len,
	       (double)len / (double)n);
	CU_ASSERT(len > 8192 && len < 8192 + 1024);
	free(out);
	json_t *j = line_at(file, 0);
	CU_ASSERT_EQUAL(json_string_length(json_object_get(j, "msg")), 8192 / 6);
	CU_ASSERT_EQUAL(json_integer_value(json_object_get(j, "truncated")), (json_int_t)(n - 18));
	json_decref(j);
	CU_ASSERT_EQUAL(stat_of(&d, "truncated", true), 1);
	free(big);
	close(fd);
	dg_daemon_stop_checked(&d, "s");
}

/* /dev/full: every write fails with ENOSPC. Counted, logged once (rate-
 * limited), the lines kept to retry and counted as dropped at shutdown. */
static void test_write_errors(void)
{
	struct dg_daemon d;
	char buf[256];

	CU_ASSERT_FATAL(start(&d, "/dev/full", "", "\"flush_ms\": 10,"));
	int fd = sender(&d);
	CU_ASSERT_FATAL(fd >= 0);
	for (unsigned i = 0; i < 5; i++) {
		size_t n = numbered(buf, sizeof(buf), i);
		CU_ASSERT(sendto(fd, buf, n, 0, (struct sockaddr *)&d.addr[0], d.addrlen[0]) == (ssize_t)n);
	}
	CU_ASSERT_EQUAL(wait_stat(&d, "rx", false, 5), 5);
	(void)wait_stat(&d, "write_errors", true, 3);
	CU_ASSERT(stat_of(&d, "write_errors", true) >= 3); /* retried: each flush fails again */
	CU_ASSERT_EQUAL(stat_of(&d, "written", true), 0);
	close(fd);
	dg_daemon_stop_checked(&d, "s");
	char *log = dg_daemon_log(&d);
	CU_ASSERT_EQUAL(dg_count_lines(log, "cannot write '/dev/full': No space left on device"), 1);
	CU_ASSERT_EQUAL(dg_count_lines(log, "'/dev/full': 5 lines lost at shutdown"), 1);
	free(log);
}

/* The file size limit (RLIMIT_FSIZE, systemd's LimitFSIZE=): a write past it
 * must fail (EFBIG) and be counted, not kill the worker with SIGXFSZ (its
 * default action), which lost the buffered lines and, restarted, died again
 * at its next flush. The daemon inherits a 64 KiB limit; its own log stays
 * far below it, the syslog file reaches it. */
static void test_file_size_limit(void)
{
	struct dg_daemon d;
	struct rlimit old, lim;
	char buf[512];

	CU_ASSERT_EQUAL_FATAL(getrlimit(RLIMIT_FSIZE, &old), 0);
	lim = old;
	lim.rlim_cur = 64 * 1024;
	CU_ASSERT_EQUAL_FATAL(setrlimit(RLIMIT_FSIZE, &lim), 0);
	const char *file = out_path("fsize.jsonl");
	bool started = start(&d, file, "", "\"flush_ms\": 10,");
	CU_ASSERT_EQUAL_FATAL(setrlimit(RLIMIT_FSIZE, &old), 0);
	CU_ASSERT_FATAL(started);
	pid_t worker = dg_daemon_worker(&d);
	int fd = sender(&d);
	CU_ASSERT_FATAL(fd >= 0);
	/* 400 lines of about 330 bytes: twice the limit, in batches of 50. */
	for (unsigned i = 0; i < 400; i++) {
		size_t n = numbered(buf, sizeof(buf), i);
		memset(buf + n, 'x', 200);
		n += 200;
		CU_ASSERT(sendto(fd, buf, n, 0, (struct sockaddr *)&d.addr[0], d.addrlen[0]) ==
		          (ssize_t)n);
		if (i % 50 == 49)
			(void)wait_stat(&d, "rx", false, i + 1);
	}
	CU_ASSERT_EQUAL(wait_stat(&d, "rx", false, 400), 400);
	CU_ASSERT(wait_stat(&d, "write_errors", true, 1) >= 1);
	CU_ASSERT_EQUAL(dg_daemon_worker(&d), worker); /* the same worker: not killed */
	long long written = stat_of(&d, "written", true);
	CU_ASSERT(written > 100 && written < 400);
	size_t len;
	char *text = slurp(file, &len);
	CU_ASSERT(text && len > 0 && len <= 64 * 1024 && text[len - 1] == '\n');
	CU_ASSERT_EQUAL(lines_in(file), (size_t)written); /* whole lines only */
	free(text);
	close(fd);
	dg_daemon_stop_checked(&d, "s");
	char *log = dg_daemon_log(&d);
	CU_ASSERT_EQUAL(dg_count_lines(log, "SIGXFSZ"), 0);
	CU_ASSERT_EQUAL(dg_count_lines(log, "File too large"), 1); /* logged once */
	free(log);
}

/* While the file takes nothing, datagrams do not each try a write (with
 * flush_bytes 1 each would): only the retry timer does, after flush_ms. */
static void test_write_errors_no_storm(void)
{
	struct dg_daemon d;
	char buf[256];

	CU_ASSERT_FATAL(start(&d, "/dev/full", "", "\"flush_ms\": 60000, \"flush_bytes\": 1,"));
	int fd = sender(&d);
	CU_ASSERT_FATAL(fd >= 0);
	for (unsigned i = 0; i < 50; i++) {
		size_t n = numbered(buf, sizeof(buf), i);
		CU_ASSERT(sendto(fd, buf, n, 0, (struct sockaddr *)&d.addr[0], d.addrlen[0]) == (ssize_t)n);
	}
	CU_ASSERT_EQUAL(wait_stat(&d, "rx", false, 50), 50);
	CU_ASSERT_EQUAL(stat_of(&d, "write_errors", true), 1);
	close(fd);
	dg_daemon_stop_checked(&d, "s");
	char *log = dg_daemon_log(&d);
	CU_ASSERT_EQUAL(dg_count_lines(log, "'/dev/full': 50 lines lost at shutdown"), 1);
	free(log);
}

/* logrotate: the file is moved; lines go on to the moved file until
 * SIGUSR1, then to a new file at the configured path. */
static void test_reopen(void)
{
	struct dg_daemon d;
	const char *file = out_path("rot.jsonl");
	char moved[4200], buf[256];

	snprintf(moved, sizeof(moved), "%s.1", file);
	unlink(moved);
	CU_ASSERT_FATAL(start(&d, file, "", "\"flush_ms\": 10,"));
	int fd = sender(&d);
	CU_ASSERT_FATAL(fd >= 0);
	unsigned i = 0;
	for (; i < 3; i++)
		sendto(fd, buf, numbered(buf, sizeof(buf), i), 0, (struct sockaddr *)&d.addr[0], d.addrlen[0]);
	if (!expect_lines(&d, file, 3))
		return;
	if (rename(file, moved) != 0) {
		CU_FAIL("rename");
		dg_daemon_stop(&d);
		return;
	}
	for (; i < 5; i++)
		sendto(fd, buf, numbered(buf, sizeof(buf), i), 0, (struct sockaddr *)&d.addr[0], d.addrlen[0]);
	CU_ASSERT_EQUAL(wait_lines(moved, 5, 10000), 5);
	CU_ASSERT_EQUAL(kill(d.pid, SIGUSR1), 0);
	CU_ASSERT_EQUAL(dg_wait_file(d.log, "signal USR1: reopened", 1, d.pid, 10000), DG_WAIT_OK);
	char *log = dg_daemon_log(&d);
	CU_ASSERT_EQUAL(dg_count_lines(log, "signal USR1: reopened"), 1);
	free(log);
	for (; i < 7; i++)
		sendto(fd, buf, numbered(buf, sizeof(buf), i), 0, (struct sockaddr *)&d.addr[0], d.addrlen[0]);
	CU_ASSERT_EQUAL(wait_lines(file, 2, 10000), 2);
	CU_ASSERT_EQUAL(lines_in(moved), 5);
	json_t *j = line_at(file, 0);
	CU_ASSERT_STRING_EQUAL(str(j, "procid"), "5");
	json_decref(j);
	close(fd);
	dg_daemon_stop_checked(&d, "s");
}

/* Lines still buffered at SIGTERM are written by fini (flush_ms long). */
static void test_flush_at_stop(void)
{
	struct dg_daemon d;
	const char *file = out_path("stop.jsonl");
	char buf[256];

	CU_ASSERT_FATAL(start(&d, file, "", "\"flush_ms\": 60000, \"flush_bytes\": 16777216,"));
	int fd = sender(&d);
	CU_ASSERT_FATAL(fd >= 0);
	for (unsigned i = 0; i < 10; i++)
		sendto(fd, buf, numbered(buf, sizeof(buf), i), 0, (struct sockaddr *)&d.addr[0], d.addrlen[0]);
	CU_ASSERT_EQUAL(wait_stat(&d, "rx", false, 10), 10);
	CU_ASSERT_EQUAL(lines_in(file), 0); /* buffered: a minute to go */
	close(fd);
	dg_daemon_stop_checked(&d, "s");
	CU_ASSERT_EQUAL(lines_in(file), 10);
	CU_ASSERT_EQUAL(check_all_lines(file), 10);
}

/* Config errors name the key path (the host checks the declared options;
 * the plugin the file); -t reports them. */
static void test_config_errors(void)
{
	static const struct {
		const char *config, *error;
	} cases[] = {
		{ "{}", "listeners[0].handler.config.file: missing (required)" },
		{ "{\"file\": 3}", "listeners[0].handler.config.file: expected a string" },
		{ "{\"file\": \"/tmp/x\", \"flush_ms\": -1}", "listeners[0].handler.config.flush_ms: must be 0 .. 60000" },
		{ "{\"file\": \"/tmp/x\", \"fsync\": 1}", "listeners[0].handler.config.fsync: unknown key" },
		{ "{\"file\": \"/nonexistent/dir/x.jsonl\"}", "config.file: cannot open '/nonexistent/dir/x.jsonl'" },
	};
	char conf[1024], bin[4096], plugins[4096], out[8192], err[8192];

	snprintf(bin, sizeof(bin), "%s/dgramd", dg_test_builddir());
	snprintf(plugins, sizeof(plugins), "%s/plugins/.libs", dg_test_builddir());
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		snprintf(conf, sizeof(conf), "{\"listeners\": [{\"name\": \"s\", \"bind\": \"127.0.0.1:0\", "
		         "\"codec\": \"raw\", \"handler\": {\"plugin\": \"syslog\", \"config\": %s}}]}",
		         cases[i].config);
		char path[4096]; /* dg_run writes its stdin with dg_test_write too */
		snprintf(path, sizeof(path), "%s", dg_test_write("bad.json", conf));
		const char *argv[] = { bin, "-P", plugins, "-t", "-c", path, NULL };
		CU_ASSERT_EQUAL(dg_run(argv, NULL, out, sizeof(out), err, sizeof(err), 10000), 1);
		if (!strstr(err, cases[i].error))
			printf("\n  %s: %s", cases[i].config, err);
		CU_ASSERT_PTR_NOT_NULL(strstr(err, cases[i].error));
	}
}

#endif

#if defined(DG_SYSLOG_PYTHON)
/* test_syslog_python: the same file, Python's SysLogHandler as the sender. */
static const struct dg_test tests[] = {
	{ "Python's SysLogHandler: no trailing NUL or newline in msg", test_python_handler },
	{ NULL, NULL },
};
#elif defined(DG_SYSLOG_LOGGER)
/* test_syslog_logger: the same file, the tests that need logger. */
static const struct dg_test tests[] = {
	{ "logger --rfc3164: fields, non-ASCII", test_logger_3164 },
	{ "logger --rfc5424: structured data, msgid, non-ASCII", test_logger_5424 },
	{ "logger --size: whole, truncated with a marker, too large", test_logger_oversized },
	{ NULL, NULL },
};
#else
static const struct dg_test tests[] = {
	{ "20,000 messages at 20,000/s: every one a line", test_rate },
	{ "unpaced burst: lines + rx_kernel_drops = sent", test_burst_accounted },
	{ "hostile messages: one valid JSON line each", test_hostile },
	{ "a 65,018-byte datagram of control bytes: a line under 9 KiB by default", test_worst_case_bounded },
	{ "write errors (/dev/full): counted, logged once, lines accounted", test_write_errors },
	{ "write errors: no write per datagram while failing", test_write_errors_no_storm },
	{ "the file size limit: write errors, not SIGXFSZ", test_file_size_limit },
	{ "SIGUSR1 reopens a rotated file", test_reopen },
	{ "buffered lines written at stop", test_flush_at_stop },
	{ "config errors name the key", test_config_errors },
	{ NULL, NULL },
};
#endif

int main(void)
{
	static const struct dg_suite suites[] = {
		{ "syslog plugin in the daemon", tests },
		{ NULL, NULL },
	};

	signal(SIGPIPE, SIG_IGN);
#ifdef DG_SYSLOG_LOGGER
	if (!have_logger())
		return 77; /* automake: SKIP */
#endif
#ifdef DG_SYSLOG_PYTHON
	if (access(PYTHON, X_OK) != 0) {
		printf("SKIP: %s is not installed (apt-get install python3)\n", PYTHON);
		return 77; /* automake: SKIP */
	}
#endif
	return dg_test_main(suites);
}
