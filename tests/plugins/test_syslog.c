/* The syslog plugin itself (plugins/.libs/syslog.so) on the harness
 * (<dgramd/testing.h>): RFC 5424 and RFC 3164 datagrams from chosen peers
 * end as JSON lines in a file in a temporary directory, read back with
 * jansson and checked field by field against the messages sent. The flush
 * by time runs on the fake clock (nothing is written before flush_ms,
 * everything at it), the flush by bytes with no clock at all; unparsable
 * datagrams are written raw with their error and counted; SIGUSR1 (raised
 * in the process, dispatched by dg_harness_poll) reopens the file after a
 * rename, hands the lines a failing file kept to the new one, takes back
 * part of a line the old file got (and writes it whole to the new one),
 * and keeps the old file when the path cannot be opened; a full disk
 * (RLIMIT_FSIZE) leaves whole lines only, across a stop and a new
 * instance, and a file that ends inside a line is cut at open; a file
 * that refuses writes
 * keeps the lines and retries on the clock; stopping writes what is
 * buffered. The parsers and the line writer
 * alone are tests/plugins/test_syslog_parse; logger and the daemon are
 * tests/integration/test_syslog. */
#include "config.h"

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>
#include <dgramd/testing.h>

#include "testutil.h"

#define LINES_MAX 64

/* RFC 5424 6.5 example 1 (with its BOM before MSG), and RFC 3164 5.4's. */
#define M5424 "<34>1 2003-10-11T22:14:15.003Z mymachine.example.com su - ID47 - " \
	      "\xef\xbb\xbf'su root' failed for lonvick on /dev/pts/8"
#define M3164 "<13>Nov 23 13:42:14 vm mytag[15456]: h\xc3\xa9llo w\xc3\xb6rld"

static unsigned file_no;

/* A fresh file name in the test's temporary directory. */
static const char *new_path(char *buf, size_t len)
{
	snprintf(buf, len, "%s/syslog-%u.jsonl", dg_test_tmpdir(), file_no++);
	return buf;
}

/* A harness writing to path, with extra plugin config keys (a JSON
 * object's members, may be ""). */
static struct dg_harness *sl_on(const char *path, const char *keys)
{
	char text[8192], err[512];

	snprintf(text, sizeof(text), "{\"codec\": \"raw\", \"handler\": {\"plugin\": "
	         "\"%s/plugins/.libs/syslog.so\", \"config\": {\"file\": \"%s\"%s%s}}}",
	         dg_test_builddir(), path, keys[0] ? ", " : "", keys);
	struct dg_harness *h = dg_harness_new(text, NULL, err, sizeof(err));
	if (!h)
		fprintf(stderr, "syslog harness: %s\n", err);
	CU_ASSERT_PTR_NOT_NULL_FATAL(h);
	return h;
}

/* The file's size; -1 if it does not exist. */
static long long size_of(const char *path)
{
	struct stat st;

	return stat(path, &st) ? -1 : (long long)st.st_size;
}

/* What the plugin logs (to stderr, in-process), caught in a file. */
struct capture {
	int fd, saved;
};

static void capture_start(struct capture *c)
{
	char path[4200];

	snprintf(path, sizeof(path), "%s/log-%u.txt", dg_test_tmpdir(), file_no++);
	c->fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	c->saved = dup(STDERR_FILENO);
	CU_ASSERT_FATAL(c->fd >= 0 && c->saved >= 0);
	fflush(stderr);
	CU_ASSERT_FATAL(dup2(c->fd, STDERR_FILENO) == STDERR_FILENO);
}

/* Back to the real stderr; what was logged meanwhile into said. */
static void capture_stop(struct capture *c, char *said, size_t len)
{
	fflush(stderr);
	CU_ASSERT_FATAL(dup2(c->saved, STDERR_FILENO) == STDERR_FILENO);
	close(c->saved);
	ssize_t got = pread(c->fd, said, len - 1, 0);
	close(c->fd);
	said[got > 0 ? got : 0] = '\0';
	fputs(said, stderr); /* still in the test's log */
}

/* The file's lines, each parsed (duplicate keys rejected) into line[]:
 * how many; -1 if the file cannot be read, does not end with '\n', or a
 * line is not one JSON object. len[i]: line i's length with its '\n'. */
static int lines_of(const char *path, json_t **line, size_t *len)
{
	FILE *f = fopen(path, "rb");
	static char buf[1 << 20];
	size_t n;
	int k = 0;

	if (!f)
		return -1;
	n = fread(buf, 1, sizeof(buf), f);
	fclose(f);
	if (n && buf[n - 1] != '\n')
		return -1;
	for (size_t at = 0; at < n && k < LINES_MAX; k++) {
		char *nl = memchr(buf + at, '\n', n - at);
		json_error_t je;
		line[k] = json_loadb(buf + at, (size_t)(nl - (buf + at)), JSON_REJECT_DUPLICATES, &je);
		if (!json_is_object(line[k])) {
			fprintf(stderr, "%s: line %d: %s\n", path, k + 1, je.text);
			json_decref(line[k]);
			while (k--)
				json_decref(line[k]);
			return -1;
		}
		if (len)
			len[k] = (size_t)(nl - (buf + at)) + 1;
		at = (size_t)(nl - buf) + 1;
	}
	return k;
}

static void lines_free(json_t **line, int n)
{
	for (int i = 0; i < n; i++)
		json_decref(line[i]);
}

/* Field k of j as text: the string, "(null)" for JSON null, "(absent)",
 * or "(other)". */
static const char *str(const json_t *j, const char *k)
{
	json_t *v = json_object_get(j, k);

	return !v ? "(absent)" : json_is_null(v) ? "(null)" :
	       json_is_string(v) ? json_string_value(v) : "(other)";
}

static long long num(const json_t *j, const char *k)
{
	json_t *v = json_object_get(j, k);

	return json_is_integer(v) ? json_integer_value(v) : -1;
}

/* "2026-11-23T13:42:14.272077Z": a UTC time to the microsecond. */
static bool is_stamp(const char *s)
{
	static const char shape[] = "dddd-dd-ddTdd:dd:dd.ddddddZ";

	if (strlen(s) != sizeof(shape) - 1)
		return false;
	for (size_t i = 0; shape[i]; i++)
		if (shape[i] == 'd' ? !(s[i] >= '0' && s[i] <= '9') : s[i] != shape[i])
			return false;
	return true;
}

/* The line of M5424 from peer. */
static void assert_5424(const json_t *j, const char *peer)
{
	CU_ASSERT_STRING_EQUAL(str(j, "peer"), peer);
	CU_ASSERT_TRUE(is_stamp(str(j, "received")));
	CU_ASSERT_STRING_EQUAL(str(j, "format"), "rfc5424");
	CU_ASSERT_EQUAL(num(j, "facility"), 34 >> 3);
	CU_ASSERT_EQUAL(num(j, "severity"), 34 & 7);
	CU_ASSERT_EQUAL(num(j, "version"), 1);
	CU_ASSERT_STRING_EQUAL(str(j, "timestamp"), "2003-10-11T22:14:15.003Z");
	CU_ASSERT_STRING_EQUAL(str(j, "hostname"), "mymachine.example.com");
	CU_ASSERT_STRING_EQUAL(str(j, "app"), "su");
	CU_ASSERT_STRING_EQUAL(str(j, "procid"), "(null)");
	CU_ASSERT_STRING_EQUAL(str(j, "msgid"), "ID47");
	CU_ASSERT_STRING_EQUAL(str(j, "sd"), "(null)");
	CU_ASSERT_STRING_EQUAL(str(j, "msg"), "'su root' failed for lonvick on /dev/pts/8");
	CU_ASSERT_PTR_NULL(json_object_get(j, "error"));
	CU_ASSERT_PTR_NULL(json_object_get(j, "truncated"));
}

/* The line of M3164 from peer. */
static void assert_3164(const json_t *j, const char *peer)
{
	CU_ASSERT_STRING_EQUAL(str(j, "peer"), peer);
	CU_ASSERT_TRUE(is_stamp(str(j, "received")));
	CU_ASSERT_STRING_EQUAL(str(j, "format"), "rfc3164");
	CU_ASSERT_EQUAL(num(j, "facility"), 13 >> 3);
	CU_ASSERT_EQUAL(num(j, "severity"), 13 & 7);
	CU_ASSERT_STRING_EQUAL(str(j, "version"), "(null)");
	CU_ASSERT_STRING_EQUAL(str(j, "timestamp"), "Nov 23 13:42:14");
	CU_ASSERT_STRING_EQUAL(str(j, "hostname"), "vm");
	CU_ASSERT_STRING_EQUAL(str(j, "app"), "mytag");
	CU_ASSERT_STRING_EQUAL(str(j, "procid"), "15456");
	CU_ASSERT_STRING_EQUAL(str(j, "msgid"), "(null)");
	CU_ASSERT_STRING_EQUAL(str(j, "msg"), "h\xc3\xa9llo w\xc3\xb6rld");
}

/* flush_ms on the fake clock: nothing in the file until flush_ms after the
 * first buffered line, then exactly the lines sent, in order; the next
 * line starts a new wait. */
static void test_flush_by_time(void)
{
	char path[4096];
	json_t *line[LINES_MAX];
	struct dg_harness *h = sl_on(new_path(path, sizeof(path)), "\"flush_ms\": 100");

	CU_ASSERT_EQUAL(size_of(path), 0); /* created at init */
	dg_harness_send_text(h, "127.0.0.1:5514", M5424);
	dg_harness_advance(h, 40);
	dg_harness_send_text(h, "127.0.0.2:514", M3164);
	CU_ASSERT_EQUAL(dg_harness_replies(h), 0); /* syslog never answers */
	dg_harness_advance(h, 59);
	CU_ASSERT_EQUAL(size_of(path), 0);
	DG_TEST_ASSERT_COUNTER(h, "written", 0);
	dg_harness_advance(h, 1); /* 100 ms after the first line */
	int n = lines_of(path, line, NULL);
	CU_ASSERT_EQUAL_FATAL(n, 2);
	assert_5424(line[0], "127.0.0.1:5514");
	assert_3164(line[1], "127.0.0.2:514");
	lines_free(line, n);
	DG_TEST_ASSERT_COUNTER(h, "written", 2);
	DG_TEST_ASSERT_COUNTER(h, "parse_errors", 0);
	DG_TEST_ASSERT_COUNTER(h, "handled", 2);

	long long before = size_of(path);
	dg_harness_send_text(h, "127.0.0.9:514", M3164);
	dg_harness_advance(h, 99);
	CU_ASSERT_EQUAL(size_of(path), before);
	dg_harness_advance(h, 1);
	n = lines_of(path, line, NULL);
	CU_ASSERT_EQUAL_FATAL(n, 3);
	assert_3164(line[2], "127.0.0.9:514");
	lines_free(line, n);
	DG_TEST_ASSERT_COUNTER(h, "written", 3);
	dg_harness_free(h);
}

/* flush_bytes: the buffer is written as soon as it holds that much, with
 * no clock; below it, nothing is written until flush_ms. flush_ms 0: each
 * line at once. */
static void test_flush_by_bytes(void)
{
	char path[4096], msg[700];
	json_t *line[LINES_MAX];
	size_t len[LINES_MAX];
	struct dg_harness *h = sl_on(new_path(path, sizeof(path)),
	                             "\"flush_bytes\": 1000, \"flush_ms\": 60000");

	/* A 600-byte msg: one line is under 1000 bytes, two are over. */
	snprintf(msg, sizeof(msg), "<14>1 - host app - - - %0600d", 7);
	dg_harness_send_text(h, "127.0.0.1:5514", msg);
	CU_ASSERT_EQUAL(size_of(path), 0);
	dg_harness_send_text(h, "127.0.0.1:5514", msg);
	int n = lines_of(path, line, len);
	CU_ASSERT_EQUAL_FATAL(n, 2);
	CU_ASSERT(len[0] < 1000 && len[0] + len[1] >= 1000);
	for (int i = 0; i < n; i++)
		CU_ASSERT_EQUAL(json_string_length(json_object_get(line[i], "msg")), 600);
	lines_free(line, n);
	DG_TEST_ASSERT_COUNTER(h, "written", 2);
	/* The third waits for the clock. */
	long long before = size_of(path);
	dg_harness_send_text(h, "127.0.0.1:5514", msg);
	CU_ASSERT_EQUAL(size_of(path), before);
	dg_harness_advance(h, 60000);
	n = lines_of(path, line, NULL);
	CU_ASSERT_EQUAL(n, 3);
	lines_free(line, n);
	dg_harness_free(h);

	h = sl_on(new_path(path, sizeof(path)), "\"flush_ms\": 0");
	for (int i = 1; i <= 3; i++) {
		dg_harness_send_text(h, "127.0.0.1:5514", M5424);
		n = lines_of(path, line, NULL);
		CU_ASSERT_EQUAL(n, i);
		lines_free(line, n);
		DG_TEST_ASSERT_COUNTER(h, "written", i);
	}
	dg_harness_free(h);
}

/* Datagrams that are neither RFC 5424 nor 3164: written raw (bytes as
 * sent, escaped), with the error and its offset, and counted; max_msg_bytes
 * cuts msg and raw and counts it. */
static void test_unparsable(void)
{
	static const struct {
		const char *in;
		size_t len;
	} bad[] = {
		{ "no pri at all", 13 },
		{ "<192>Oct 11 22:14:15 h t: m", 27 },
		{ "<13>1 - h a p m [id x=y]", 24 },
		{ "junk\n\"}{", 8 },
	};
	char path[4096];
	json_t *line[LINES_MAX];
	struct dg_harness *h = sl_on(new_path(path, sizeof(path)), "\"flush_ms\": 0, \"max_msg_bytes\": 20");
	size_t nbad = sizeof(bad) / sizeof(bad[0]);

	for (size_t i = 0; i < nbad; i++)
		dg_harness_send(h, "127.0.0.3:600", bad[i].in, bad[i].len);
	dg_harness_send_text(h, "127.0.0.3:600", M5424);
	int n = lines_of(path, line, NULL);
	CU_ASSERT_EQUAL_FATAL(n, (int)nbad + 1);
	for (size_t i = 0; i < nbad; i++) {
		json_t *j = line[i];
		json_t *raw = json_object_get(j, "raw");
		size_t keep = bad[i].len > 20 ? 20 : bad[i].len;
		CU_ASSERT_STRING_EQUAL(str(j, "format"), "(null)");
		CU_ASSERT(json_is_string(json_object_get(j, "error")) && strlen(str(j, "error")) > 0);
		CU_ASSERT(num(j, "error_offset") >= 0 && num(j, "error_offset") <= (long long)bad[i].len);
		CU_ASSERT(json_is_string(raw) && json_string_length(raw) == keep &&
		          !memcmp(json_string_value(raw), bad[i].in, keep));
		CU_ASSERT_EQUAL(num(j, "truncated"), bad[i].len > 20 ? (long long)bad[i].len : -1);
		CU_ASSERT_STRING_EQUAL(str(j, "peer"), "127.0.0.3:600");
	}
	/* The good one, its msg cut at 20 bytes. */
	CU_ASSERT_STRING_EQUAL(str(line[nbad], "msg"), "'su root' failed for");
	CU_ASSERT_EQUAL(num(line[nbad], "truncated"), 42);
	lines_free(line, n);
	DG_TEST_ASSERT_COUNTER(h, "parse_errors", nbad);
	DG_TEST_ASSERT_COUNTER(h, "truncated", 3);
	DG_TEST_ASSERT_COUNTER(h, "written", nbad + 1);
	DG_TEST_ASSERT_COUNTER(h, "decode_errors", 0);
	DG_TEST_ASSERT_COUNTER(h, "handled", nbad + 1);
	dg_harness_free(h);
}

/* SIGUSR1 after logrotate moved the file: what is buffered goes to the old
 * file, later lines to a new one at the path. */
static void test_reopen(void)
{
	char path[4096], moved[4200];
	json_t *line[LINES_MAX];
	struct dg_harness *h = sl_on(new_path(path, sizeof(path)), "\"flush_ms\": 100");
	int n;

	snprintf(moved, sizeof(moved), "%s.1", path);
	dg_harness_send_text(h, "127.0.0.1:5514", M5424);
	dg_harness_advance(h, 100);
	dg_harness_send_text(h, "127.0.0.2:514", M3164); /* buffered */
	CU_ASSERT_EQUAL_FATAL(rename(path, moved), 0);
	CU_ASSERT_EQUAL(raise(SIGUSR1), 0);
	dg_harness_poll(h);
	n = lines_of(moved, line, NULL);
	CU_ASSERT_EQUAL_FATAL(n, 2);
	assert_5424(line[0], "127.0.0.1:5514");
	assert_3164(line[1], "127.0.0.2:514");
	lines_free(line, n);
	CU_ASSERT_EQUAL(size_of(path), 0); /* a new file */
	dg_harness_send_text(h, "127.0.0.4:514", M3164);
	dg_harness_advance(h, 100);
	n = lines_of(path, line, NULL);
	CU_ASSERT_EQUAL_FATAL(n, 1);
	assert_3164(line[0], "127.0.0.4:514");
	lines_free(line, n);
	CU_ASSERT_EQUAL(lines_of(moved, line, NULL), 2);
	lines_free(line, 2);
	DG_TEST_ASSERT_COUNTER(h, "written", 3);
	DG_TEST_ASSERT_COUNTER(h, "dropped", 0);
	dg_harness_free(h);
}

/* Stopping (dg_harness_free: fini) writes every buffered line. */
static void test_stop_flushes(void)
{
	char path[4096], peer[32];
	json_t *line[LINES_MAX];
	struct dg_harness *h = sl_on(new_path(path, sizeof(path)), "\"flush_ms\": 60000");

	for (int i = 0; i < 10; i++) {
		snprintf(peer, sizeof(peer), "127.0.0.%d:514", i + 1);
		dg_harness_send_text(h, peer, i % 2 ? M3164 : M5424);
	}
	dg_harness_advance(h, 59999);
	CU_ASSERT_EQUAL(size_of(path), 0);
	DG_TEST_ASSERT_COUNTER(h, "written", 0);
	dg_harness_free(h);
	int n = lines_of(path, line, NULL);
	CU_ASSERT_EQUAL_FATAL(n, 10);
	for (int i = 0; i < n; i++) {
		snprintf(peer, sizeof(peer), "127.0.0.%d:514", i + 1);
		if (i % 2)
			assert_3164(line[i], peer);
		else
			assert_5424(line[i], peer);
	}
	lines_free(line, n);
}

/* A file that takes nothing (/dev/full: ENOSPC): one failed write, the
 * lines kept; no write per datagram while it fails, a retry on the clock
 * (1 s with flush_ms 0); past the buffer, lines are dropped and counted. */
static void test_write_errors(void)
{
	char msg[1100];
	struct dg_harness *h;

	if (access("/dev/full", W_OK)) {
		fprintf(stderr, "no /dev/full: write errors not tested\n");
		return;
	}
	h = sl_on("/dev/full", "\"flush_ms\": 0, \"flush_bytes\": 1");
	dg_harness_send_text(h, "127.0.0.1:5514", M5424);
	DG_TEST_ASSERT_COUNTER(h, "write_errors", 1);
	DG_TEST_ASSERT_COUNTER(h, "written", 0);
	/* The buffer holds flush_bytes and one datagram's longest line
	 * (2 x 8192 + 16384 bytes by default): 1,000-byte datagrams soon fill it. */
	snprintf(msg, sizeof(msg), "<14>1 - host app - - - %01000d", 7);
	for (int i = 0; i < 1000; i++)
		dg_harness_send_text(h, "127.0.0.1:5514", msg);
	DG_TEST_ASSERT_COUNTER(h, "write_errors", 1);
	uint64_t dropped = dg_harness_counter(h, "dropped");
	CU_ASSERT(dropped > 0 && dropped < 1000);
	dg_harness_advance(h, 999);
	DG_TEST_ASSERT_COUNTER(h, "write_errors", 1);
	dg_harness_advance(h, 1);
	DG_TEST_ASSERT_COUNTER(h, "write_errors", 2);
	DG_TEST_ASSERT_COUNTER(h, "written", 0);
	dg_harness_free(h);
}

/* Lines kept while the file refuses writes reach the file SIGUSR1 opens:
 * the path is a symlink to /dev/full, replaced by a regular file (as an
 * administrator would after freeing space), then the signal. Later lines
 * are written at once again (flush_ms 0). */
static void test_reopen_after_errors(void)
{
	char path[4096], fresh[4200];
	json_t *line[LINES_MAX];
	struct dg_harness *h;
	int n;

	if (access("/dev/full", W_OK)) {
		fprintf(stderr, "no /dev/full: write errors not tested\n");
		return;
	}
	new_path(path, sizeof(path));
	snprintf(fresh, sizeof(fresh), "%s.new", path);
	CU_ASSERT_EQUAL_FATAL(symlink("/dev/full", path), 0);
	h = sl_on(path, "\"flush_ms\": 0");
	for (int i = 0; i < 3; i++)
		dg_harness_send_text(h, "127.0.0.1:5514", i == 1 ? M3164 : M5424);
	DG_TEST_ASSERT_COUNTER(h, "write_errors", 1);
	DG_TEST_ASSERT_COUNTER(h, "written", 0);
	FILE *f = fopen(fresh, "w");
	CU_ASSERT_PTR_NOT_NULL_FATAL(f);
	fclose(f);
	CU_ASSERT_EQUAL_FATAL(rename(fresh, path), 0);
	CU_ASSERT_EQUAL(raise(SIGUSR1), 0);
	dg_harness_poll(h);
	DG_TEST_ASSERT_COUNTER(h, "write_errors", 2); /* the last try on /dev/full */
	DG_TEST_ASSERT_COUNTER(h, "written", 3);
	dg_harness_send_text(h, "127.0.0.2:514", M3164);
	DG_TEST_ASSERT_COUNTER(h, "written", 4);
	n = lines_of(path, line, NULL);
	CU_ASSERT_EQUAL_FATAL(n, 4);
	assert_5424(line[0], "127.0.0.1:5514");
	assert_3164(line[1], "127.0.0.1:5514");
	assert_5424(line[2], "127.0.0.1:5514");
	assert_3164(line[3], "127.0.0.2:514");
	lines_free(line, n);
	DG_TEST_ASSERT_COUNTER(h, "dropped", 0);
	dg_harness_free(h);
}

/* SIGUSR1 when the path cannot be opened (its directory is gone): the
 * plugin keeps writing to the file it has. */
static void test_reopen_fails(void)
{
	char dir[4096], path[4200], moved[4200];
	json_t *line[LINES_MAX];
	int n;

	snprintf(dir, sizeof(dir), "%s/gone-%u", dg_test_tmpdir(), file_no++);
	snprintf(path, sizeof(path), "%s/out.jsonl", dir);
	snprintf(moved, sizeof(moved), "%s.jsonl", dir);
	CU_ASSERT_EQUAL_FATAL(mkdir(dir, 0700), 0);
	struct dg_harness *h = sl_on(path, "\"flush_ms\": 100");
	dg_harness_send_text(h, "127.0.0.1:5514", M5424);
	CU_ASSERT_EQUAL_FATAL(rename(path, moved), 0);
	CU_ASSERT_EQUAL_FATAL(rmdir(dir), 0);
	struct capture cap;
	char said[1024];
	capture_start(&cap);
	CU_ASSERT_EQUAL(raise(SIGUSR1), 0);
	dg_harness_poll(h); /* logs that it cannot open the path */
	capture_stop(&cap, said, sizeof(said));
	/* The occasion and the file, not a config key: the config was fine. */
	CU_ASSERT_PTR_NOT_NULL(strstr(said, "SIGUSR1: cannot reopen '"));
	CU_ASSERT_PTR_NOT_NULL(strstr(said, "/out.jsonl': No such file or directory; writing on "
	                                    "to the file already open"));
	CU_ASSERT_PTR_NULL(strstr(said, "config.file"));
	dg_harness_send_text(h, "127.0.0.2:514", M3164);
	dg_harness_advance(h, 100);
	n = lines_of(moved, line, NULL);
	CU_ASSERT_EQUAL_FATAL(n, 2);
	assert_5424(line[0], "127.0.0.1:5514");
	assert_3164(line[1], "127.0.0.2:514");
	lines_free(line, n);
	CU_ASSERT_EQUAL(size_of(path), -1);
	DG_TEST_ASSERT_COUNTER(h, "written", 2);
	DG_TEST_ASSERT_COUNTER(h, "write_errors", 0);
	dg_harness_free(h);
}

/* A file system that fills up: the file size limit (RLIMIT_FSIZE) set
 * where a write is cut short, then EFBIG, as ENOSPC does on a full disk.
 * While it holds, writes to the test's log (a file) may fail too: nothing
 * may be buffered for it. limit_start returns the old limit. */
static struct rlimit limit_start(long long size, void (**xfsz)(int))
{
	struct rlimit old, lim;

	CU_ASSERT_EQUAL_FATAL(getrlimit(RLIMIT_FSIZE, &old), 0);
	fflush(stdout);
	fflush(stderr);
	*xfsz = signal(SIGXFSZ, SIG_IGN);
	lim = old;
	lim.rlim_cur = (rlim_t)size;
	CU_ASSERT_EQUAL_FATAL(setrlimit(RLIMIT_FSIZE, &lim), 0);
	return old;
}

static void limit_stop(const struct rlimit *old, void (*xfsz)(int))
{
	setrlimit(RLIMIT_FSIZE, old);
	signal(SIGXFSZ, xfsz);
}

/* A line of about 8 KiB (the room the log needs while the limit holds). */
static void send_big(struct dg_harness *h)
{
	static char big[8300];

	snprintf(big, sizeof(big), "<14>1 - host app - - - %08000d", 7);
	dg_harness_send_text(h, "127.0.0.1:5514", big);
}

/* A full disk, then the plugin stopped (a reload: the old generation's
 * fini) with lines still buffered, then space again and a new instance on
 * the same file (the new generation). The line the file took part of is
 * taken back at once (the file ends with whole lines), the lines that
 * could not be written are counted and logged at the stop, and the new
 * instance's lines are whole. Before, the file kept the part, the new
 * instance appended its first line to it: one line that was not JSON. */
static void test_full_disk_then_next_writer(void)
{
	char path[4096], said[4096];
	json_t *line[LINES_MAX];
	struct capture cap;
	void (*xfsz)(int);
	struct dg_harness *h = sl_on(new_path(path, sizeof(path)), "\"flush_ms\": 0");

	send_big(h);
	long long one = size_of(path);
	CU_ASSERT_FATAL(one > 8000);
	capture_start(&cap);
	struct rlimit old = limit_start(one + 70, &xfsz);
	dg_harness_send_text(h, "127.0.0.1:5514", M5424); /* 70 bytes taken, then EFBIG */
	long long after_partial = size_of(path);
	dg_harness_send_text(h, "127.0.0.2:514", M3164);  /* kept: the retry timer writes */
	uint64_t written = dg_harness_counter(h, "written"), errors = dg_harness_counter(h, "write_errors");
	dg_harness_free(h); /* one more try, cut short again; two lines lost */
	long long after_stop = size_of(path);
	limit_stop(&old, xfsz);
	capture_stop(&cap, said, sizeof(said));

	CU_ASSERT_EQUAL(after_partial, one);
	CU_ASSERT_EQUAL(after_stop, one);
	CU_ASSERT_EQUAL(written, 1);
	CU_ASSERT_EQUAL(errors, 1);
	CU_ASSERT_PTR_NOT_NULL(strstr(said, "': 2 lines lost at shutdown"));
	CU_ASSERT_PTR_NOT_NULL(strstr(said, "cannot write '"));
	h = sl_on(path, "\"flush_ms\": 0");
	dg_harness_send_text(h, "127.0.0.9:514", M3164);
	int n = lines_of(path, line, NULL);
	CU_ASSERT_EQUAL(n, 2);
	if (n == 2) {
		CU_ASSERT_EQUAL(json_string_length(json_object_get(line[0], "msg")), 8000);
		assert_3164(line[1], "127.0.0.9:514");
	}
	lines_free(line, n);
	DG_TEST_ASSERT_COUNTER(h, "written", 1);
	dg_harness_free(h);
}

/* A file that ends inside a line (its writer killed in the middle of a
 * write): the rest of a line is cut when the plugin opens it, and logged,
 * so that the first line written is not glued to it. Also a file that is
 * nothing but part of a line. */
static void test_open_after_partial_line(void)
{
	static const struct {
		const char *before, *kept;
		int bytes_cut;
	} cases[] = {
		{ "{\"a\":1}\n{\"received\":\"2026-", "{\"a\":1}\n", 18 },
		{ "{\"received\":", "", 12 },
	};
	char path[4096], said[2048], want[128];
	json_t *line[LINES_MAX];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct capture cap;
		FILE *f = fopen(new_path(path, sizeof(path)), "w");
		CU_ASSERT_PTR_NOT_NULL_FATAL(f);
		fputs(cases[i].before, f);
		fclose(f);
		capture_start(&cap);
		struct dg_harness *h = sl_on(path, "\"flush_ms\": 0");
		capture_stop(&cap, said, sizeof(said));
		snprintf(want, sizeof(want), "' ended inside a line (a writer stopped in the middle of "
		         "it): cut the %d bytes after its last complete line", cases[i].bytes_cut);
		CU_ASSERT_PTR_NOT_NULL(strstr(said, want));
		CU_ASSERT_EQUAL(size_of(path), (long long)strlen(cases[i].kept));
		dg_harness_send_text(h, "127.0.0.2:514", M3164);
		int n = lines_of(path, line, NULL), kept = cases[i].kept[0] ? 1 : 0;
		CU_ASSERT_EQUAL(n, kept + 1);
		if (n == kept + 1)
			assert_3164(line[kept], "127.0.0.2:514");
		lines_free(line, n);
		dg_harness_free(h);
	}
}

/* A file that took part of a line, then SIGUSR1 after a rename: the part
 * was taken back at once, so the old file ends with its whole lines, and
 * the line goes whole to the new file; the new file is written as usual:
 * with flush_ms 0, the next line at once, not at the retry timer of the
 * old file's error (which is what happened before: the plugin still took
 * the new file for the failing one, and held every line back, dropping
 * them past the buffer, until its retry 1 s later). */
static void test_reopen_mid_line(void)
{
	char path[4096], moved[4200];
	json_t *line[LINES_MAX];
	void (*xfsz)(int);
	struct dg_harness *h = sl_on(new_path(path, sizeof(path)), "\"flush_ms\": 0");
	int n;

	snprintf(moved, sizeof(moved), "%s.1", path);
	send_big(h);
	long long one = size_of(path); /* one line, with its '\n' */
	CU_ASSERT_FATAL(one > 8000);
	struct rlimit old = limit_start(one + 70, &xfsz);
	dg_harness_send_text(h, "127.0.0.1:5514", M5424); /* 70 bytes of it, then EFBIG */
	long long partial = size_of(path);
	uint64_t errors = dg_harness_counter(h, "write_errors");
	int renamed = rename(path, moved);
	raise(SIGUSR1);
	dg_harness_poll(h); /* the old file cuts it short again; the new one takes it */
	limit_stop(&old, xfsz);
	dg_harness_send_text(h, "127.0.0.2:514", M3164); /* at once */

	CU_ASSERT_EQUAL(partial, one);
	CU_ASSERT_EQUAL(errors, 1);
	CU_ASSERT_EQUAL(renamed, 0);
	n = lines_of(path, line, NULL);
	CU_ASSERT_EQUAL(n, 2);
	if (n == 2) {
		assert_5424(line[0], "127.0.0.1:5514");
		assert_3164(line[1], "127.0.0.2:514");
	}
	lines_free(line, n);
	CU_ASSERT_EQUAL(size_of(moved), one); /* whole lines only */
	n = lines_of(moved, line, NULL);
	CU_ASSERT_EQUAL(n, 1);
	lines_free(line, n);
	DG_TEST_ASSERT_COUNTER(h, "dropped", 0);
	DG_TEST_ASSERT_COUNTER(h, "written", 3);
	DG_TEST_ASSERT_COUNTER(h, "write_errors", 2);
	dg_harness_free(h);
}

static const struct dg_test tests[] = {
	{ "flush by time on the fake clock, lines field by field", test_flush_by_time },
	{ "flush by bytes, and flush_ms 0", test_flush_by_bytes },
	{ "unparsable datagrams written raw with the error, counted; max_msg_bytes", test_unparsable },
	{ "SIGUSR1 reopens the file after a rename", test_reopen },
	{ "SIGUSR1: lines kept through write errors go to the new file", test_reopen_after_errors },
	{ "SIGUSR1 when the path cannot be opened: the old file goes on", test_reopen_fails },
	{ "SIGUSR1 after a partial line: taken back, written whole to the new file at once", test_reopen_mid_line },
	{ "full disk, stop, space again: whole lines only, the lost ones counted", test_full_disk_then_next_writer },
	{ "a file that ends inside a line: the rest of it cut at open", test_open_after_partial_line },
	{ "stopping writes every buffered line", test_stop_flushes },
	{ "write errors: lines kept, retried on the clock, dropped past the buffer", test_write_errors },
	{ NULL, NULL },
};

DG_TEST_MAIN("syslog plugin on the harness", tests)
