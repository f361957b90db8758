/* The syslog plugin's parsers and line writer (plugins/syslog/parse.c,
 * format.c, linked in): table-driven vectors from RFC 5424 and RFC 3164,
 * what logger and rsyslog send, and hostile input. Every line is read back
 * with jansson (duplicate keys rejected) and checked field by field. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "../../plugins/syslog/parse.h"
#include "testutil.h"

static struct dg_syslog_msg msg;

static size_t last_len; /* the length of line_of's last line */

/* Parse and format d; the line, decoded (NULL if it is not one valid JSON
 * object ending in its only '\n'). */
static json_t *line_of(const void *d, size_t len, size_t max_msg, bool *truncated)
{
	size_t cap = dg_syslog_line_max(len, max_msg);
	char *buf = malloc(dg_syslog_line_max(len, 0) + 1);
	bool t;

	CU_ASSERT_FATAL(buf != NULL);
	dg_syslog_parse(d, len, &msg);
	struct dg_syslog_line l = {
		.m = &msg, .raw = d, .raw_len = len, .received = "2026-11-23T13:42:14.000001Z",
		.peer = "127.0.0.1:5514", .max_msg = max_msg,
	};
	size_t n = dg_syslog_format(&l, buf, truncated ? truncated : &t);
	last_len = n;
	CU_ASSERT(n <= cap);
	CU_ASSERT(n > 0 && buf[n - 1] == '\n');
	CU_ASSERT_PTR_NULL(memchr(buf, '\n', n - 1));
	CU_ASSERT_PTR_NULL(memchr(buf, '\0', n));
	json_error_t je;
	json_t *j = json_loadb(buf, n, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &je);
	if (!j)
		printf("\n  not JSON (%s): %.*s", je.text, (int)n, buf);
	free(buf);
	return j;
}

/* The string field k of j, "(null)" for JSON null, "(absent)". */
static const char *field(json_t *j, const char *k)
{
	json_t *v = json_object_get(j, k);
	return !v ? "(absent)" : json_is_null(v) ? "(null)" : json_is_string(v) ? json_string_value(v) : "(other)";
}

static long long num(json_t *j, const char *k)
{
	json_t *v = json_object_get(j, k);
	return json_is_integer(v) ? json_integer_value(v) : -1;
}

struct vector {
	const char *in;
	const char *format; /* "rfc5424", "rfc3164" or "(null)": unparsed */
	int facility, severity;
	const char *timestamp, *hostname, *app, *procid, *msgid, *msg;
	const char *sd; /* compact JSON of "sd", or "(null)" */
};

#define N "(null)"
static const struct vector vectors[] = {
	/* RFC 5424 section 6.5, examples 1 to 4 (example 2's BOM as sent). */
	{ "<34>1 2003-10-11T22:14:15.003Z mymachine.example.com su - ID47 - \xef\xbb\xbf'su root' failed for lonvick on /dev/pts/8",
	  "rfc5424", 4, 2, "2003-10-11T22:14:15.003Z", "mymachine.example.com", "su", N, "ID47",
	  "'su root' failed for lonvick on /dev/pts/8", N },
	{ "<165>1 2003-08-24T05:14:15.000003-07:00 192.0.2.1 myproc 8710 - - %% It's time to make the do-nuts.",
	  "rfc5424", 20, 5, "2003-08-24T05:14:15.000003-07:00", "192.0.2.1", "myproc", "8710", N,
	  "%% It's time to make the do-nuts.", N },
	{ "<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 [exampleSDID@32473 iut=\"3\" eventSource=\"Application\" eventID=\"1011\"] \xef\xbb\xbf" "An application event log entry...",
	  "rfc5424", 20, 5, "2003-10-11T22:14:15.003Z", "mymachine.example.com", "evntslog", N, "ID47",
	  "An application event log entry...",
	  "{\"exampleSDID@32473\":{\"iut\":\"3\",\"eventSource\":\"Application\",\"eventID\":\"1011\"}}" },
	{ "<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 [exampleSDID@32473 iut=\"3\" eventSource=\"Application\" eventID=\"1011\"][examplePriority@32473 class=\"high\"]",
	  "rfc5424", 20, 5, "2003-10-11T22:14:15.003Z", "mymachine.example.com", "evntslog", N, "ID47", N,
	  "{\"exampleSDID@32473\":{\"iut\":\"3\",\"eventSource\":\"Application\",\"eventID\":\"1011\"},"
	  "\"examplePriority@32473\":{\"class\":\"high\"}}" },
	/* What logger --rfc5424 sends: escaped quote, ']' and backslash in values. */
	{ "<13>1 2026-11-23T13:42:14.317717+00:00 vm root - ID7 [timeQuality tzKnown=\"1\" isSynced=\"0\"][ex@32473 a=\"1\" b=\"x\\\"y\\]z\\\\w\\n\"] h\xc3\xa9llo",
	  "rfc5424", 1, 5, "2026-11-23T13:42:14.317717+00:00", "vm", "root", N, "ID7", "h\xc3\xa9llo",
	  "{\"timeQuality\":{\"tzKnown\":\"1\",\"isSynced\":\"0\"},\"ex@32473\":{\"a\":\"1\",\"b\":\"x\\\"y]z\\\\w\\\\n\"}}" },
	{ "<13>1 - - - - - -", "rfc5424", 1, 5, N, N, N, N, N, N, N },
	{ "<13>1 - - - - - - ", "rfc5424", 1, 5, N, N, N, N, N, "", N },
	/* A repeated PARAM-NAME is an array; a repeated SD-ID one object. */
	{ "<13>1 - h a p m [o@1 ip=\"1.2.3.4\" ip=\"5.6.7.8\" x=\"y\"][o@1 ip=\"9\"] m",
	  "rfc5424", 1, 5, N, "h", "a", "p", "m", "m",
	  "{\"o@1\":{\"ip\":[\"1.2.3.4\",\"5.6.7.8\",\"9\"],\"x\":\"y\"}}" },
	{ "<0>1 - - - - - [a]", "rfc5424", 0, 0, N, N, N, N, N, N, "{\"a\":{}}" },
	{ "<191>999 - - - - - -", "rfc5424", 23, 7, N, N, N, N, N, N, N },
	/* RFC 3164 section 5.4 examples. */
	{ "<34>Oct 11 22:14:15 mymachine su: 'su root' failed for lonvick on /dev/pts/8",
	  "rfc3164", 4, 2, "Oct 11 22:14:15", "mymachine", "su", N, N,
	  "'su root' failed for lonvick on /dev/pts/8", N },
	{ "<13>Feb  5 17:32:18 10.0.0.99 Use the BFG!", "rfc3164", 1, 5, "Feb  5 17:32:18", "10.0.0.99",
	  N, N, N, "Use the BFG!", N },
	/* logger --rfc3164, with -i. */
	{ "<13>Nov 23 13:42:14 vm mytag[15456]: h\xc3\xa9llo w\xc3\xb6rld", "rfc3164", 1, 5,
	  "Nov 23 13:42:14", "vm", "mytag", "15456", N, "h\xc3\xa9llo w\xc3\xb6rld", N },
	/* No hostname (as local senders to /dev/log write), a tag with a pid. */
	{ "<30>Nov  3 01:02:03 sshd[42]: Accepted key", "rfc3164", 3, 6, "Nov  3 01:02:03", N, "sshd", "42",
	  N, "Accepted key", N },
	/* rsyslog's forwarding format: an RFC 3339 time. */
	{ "<86>2026-11-23T13:42:14.123+01:00 host app[7]: text", "rfc3164", 10, 6,
	  "2026-11-23T13:42:14.123+01:00", "host", "app", "7", N, "text", N },
	/* No timestamp: all CONTENT; a tag still found. */
	{ "<13>kernel: oops", "rfc3164", 1, 5, N, N, "kernel", N, N, "oops", N },
	{ "<13>just words", "rfc3164", 1, 5, N, N, N, N, N, "just words", N },
	{ "<13>", "rfc3164", 1, 5, N, N, N, N, N, "", N },
	/* 5424-looking but broken: parsed as neither. */
	{ "<13>1 2003-13-11T22:14:15Z h a p m - x", N, 0, 0, N, N, N, N, N, N, N },
	{ "<13>1 - h a p m [unterminated x=\"y\"", N, 0, 0, N, N, N, N, N, N, N },
	{ "<13>1 - h a p m [id x=\"y]", N, 0, 0, N, N, N, N, N, N, N },
	{ "<13>1 - h a p m [id x=y]", N, 0, 0, N, N, N, N, N, N, N },
	{ "<13>1 - h a p m -x", N, 0, 0, N, N, N, N, N, N, N },
	{ "<13>1 - h\x01 a p m -", N, 0, 0, N, N, N, N, N, N, N },
	{ "<192>Oct 11 22:14:15 h t: m", N, 0, 0, N, N, N, N, N, N, N },
	{ "no pri at all", N, 0, 0, N, N, N, N, N, N, N },
	{ "<13", N, 0, 0, N, N, N, N, N, N, N },
	{ "", N, 0, 0, N, N, N, N, N, N, N },
	{ NULL, NULL, 0, 0, NULL, NULL, NULL, NULL, NULL, NULL, NULL },
};
#undef N

static void test_vectors(void)
{
	for (const struct vector *v = vectors; v->in; v++) {
		json_t *j = line_of(v->in, strlen(v->in), 0, NULL);
		CU_ASSERT_PTR_NOT_NULL(j);
		if (!j)
			continue;
		const char *sd_text = "(null)";
		char *sd_dump = NULL;
		json_t *sd = json_object_get(j, "sd");
		if (sd && !json_is_null(sd))
			sd_text = sd_dump = json_dumps(sd, JSON_COMPACT | JSON_PRESERVE_ORDER);
		bool ok = !strcmp(field(j, "format"), v->format) && !strcmp(field(j, "peer"), "127.0.0.1:5514") &&
		          !strcmp(field(j, "received"), "2026-11-23T13:42:14.000001Z");
		if (!strcmp(v->format, "(null)")) {
			ok = ok && !strcmp(field(j, "raw"), v->in) && strcmp(field(j, "error"), "(absent)") &&
			     num(j, "error_offset") >= 0 && num(j, "error_offset") <= (long long)strlen(v->in);
		} else {
			ok = ok && num(j, "facility") == v->facility && num(j, "severity") == v->severity &&
			     !strcmp(field(j, "timestamp"), v->timestamp) &&
			     !strcmp(field(j, "hostname"), v->hostname) && !strcmp(field(j, "app"), v->app) &&
			     !strcmp(field(j, "procid"), v->procid) && !strcmp(field(j, "msgid"), v->msgid) &&
			     !strcmp(field(j, "msg"), v->msg) && !strcmp(sd_text, v->sd);
		}
		if (!ok) {
			char *all = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER);
			printf("\n  %s\n  -> %s", v->in, all);
			free(all);
		}
		CU_ASSERT(ok);
		free(sd_dump);
		json_decref(j);
	}
}

/* RFC 5424 VERSION is kept; 3164 has none. */
static void test_version(void)
{
	json_t *j = line_of("<13>1 - - - - - -", 17, 0, NULL);
	CU_ASSERT_EQUAL(num(j, "version"), 1);
	json_decref(j);
	j = line_of("<13>Oct 11 22:14:15 h t: m", 26, 0, NULL);
	CU_ASSERT(json_is_null(json_object_get(j, "version")));
	json_decref(j);
}

/* Hostile bytes anywhere come out as one valid JSON line, with the text
 * they carried (control bytes escaped, invalid UTF-8 as U+FFFD). */
static void test_hostile(void)
{
	static const struct {
		const char *in;
		size_t len;
		const char *field, *want;
		size_t want_len;
	} cases[] = {
#define C(in, f, want) { in, sizeof(in) - 1, f, want, sizeof(want) - 1 }
		C("<13>1 - h a - - - line1\nline2\r\n{\"x\":1}\n", "msg", "line1\nline2\r\n{\"x\":1}"),
		C("<13>1 - h a - - - nul\0inside", "msg", "nul\0inside"),
		/* What senders append: one NUL (Python's SysLogHandler), then
		 * newlines; dropped as rsyslog and syslog-ng drop them. */
		C("<14>myapp: python says hi\0", "msg", "python says hi"),
		C("<13>1 - h a - - - m\r\n\n\0", "msg", "m"),
		C("<13>1 - h a - - - two nuls\0\0", "msg", "two nuls\0"),
		C("<13>1 - h a - - - nul, then text\0\n", "msg", "nul, then text\0"),
		C("<13>Oct 11 22:14:15 h t: \"quoted\" \\back\\ \x01\x1f\x7f", "msg",
		  "\"quoted\" \\back\\ \x01\x1f\x7f"),
		C("<13>1 - h a - - - bad \xff\xfe utf8 \xc3", "msg",
		  "bad \xef\xbf\xbd\xef\xbf\xbd utf8 \xef\xbf\xbd"),
		C("<13>1 - h a - - - overlong \xc0\xaf surrogate \xed\xa0\x80", "msg",
		  "overlong \xef\xbf\xbd\xef\xbf\xbd surrogate \xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"),
		C("junk\n\"}{\0\xff", "raw", "junk\n\"}{\0\xef\xbf\xbd"),
		C("<13>1 - h a - - [i k=\"\n\x01\xff\\\"\"] m", "sd", "\n\x01\xef\xbf\xbd\""),
#undef C
		{ NULL, 0, NULL, NULL, 0 },
	};

	for (unsigned i = 0; cases[i].in; i++) {
		json_t *j = line_of(cases[i].in, cases[i].len, 0, NULL);
		CU_ASSERT_PTR_NOT_NULL(j);
		json_t *v = json_object_get(j, cases[i].field);
		if (!strcmp(cases[i].field, "sd")) /* SD-ID "i", PARAM-NAME "k" */
			v = json_object_get(json_object_get(v, "i"), "k");
		CU_ASSERT(json_is_string(v) && json_string_length(v) == cases[i].want_len &&
		          !memcmp(json_string_value(v), cases[i].want, cases[i].want_len));
		json_decref(j);
	}
}

static void test_huge_sd(void)
{
	size_t cap = 65536, n;
	char *d = malloc(cap);

	CU_ASSERT_FATAL(d != NULL);
	for (unsigned params = 128; params <= 129; params++) {
		n = (size_t)snprintf(d, cap, "<13>1 - h a - - [big@1");
		for (unsigned i = 0; i < params; i++)
			n += (size_t)snprintf(d + n, cap - n, " p%u=\"v\\\"%u\"", i % 100, i);
		n += (size_t)snprintf(d + n, cap - n, "] m");
		json_t *j = line_of(d, n, 0, NULL);
		CU_ASSERT_PTR_NOT_NULL_FATAL(j);
		if (params == 128) {
			json_t *big = json_object_get(json_object_get(j, "sd"), "big@1");
			CU_ASSERT_EQUAL(json_object_size(big), 100);
			CU_ASSERT_EQUAL(json_array_size(json_object_get(big, "p0")), 2);
			CU_ASSERT_STRING_EQUAL(json_string_value(json_array_get(json_object_get(big, "p0"), 1)),
			                       "v\"100");
		} else {
			CU_ASSERT_STRING_EQUAL(field(j, "error"), "more than 128 SD-PARAMs");
			CU_ASSERT_EQUAL(json_string_length(json_object_get(j, "raw")), n);
		}
		json_decref(j);
	}
	/* 33 elements: too many. */
	n = (size_t)snprintf(d, cap, "<13>1 - h a - - ");
	for (unsigned i = 0; i < 33; i++)
		n += (size_t)snprintf(d + n, cap - n, "[e%u]", i);
	json_t *j = line_of(d, n, 0, NULL);
	CU_ASSERT_STRING_EQUAL(field(j, "error"), "more than 32 SD-ELEMENTs");
	json_decref(j);
	free(d);
}

/* The worst case for the line's length: every byte escaped to six. */
static void test_line_max(void)
{
	unsigned char d[4096];

	memcpy(d, "<13>1 - h a - - - ", 18);
	for (size_t i = 18; i < sizeof(d); i++)
		d[i] = (unsigned char)(i % 2 ? 0x01 : 0xff);
	json_t *j = line_of(d, sizeof(d), 0, NULL); /* line_of checks n <= dg_syslog_line_max */
	CU_ASSERT_PTR_NOT_NULL(j);
	json_decref(j);
	memset(d, 0x01, sizeof(d)); /* unparsed: all raw */
	j = line_of(d, sizeof(d), 0, NULL);
	CU_ASSERT_PTR_NOT_NULL(j);
	json_decref(j);
}

/* A 65,018-byte datagram of control bytes: each is six bytes escaped, so
 * the line was six times the datagram (390,215 bytes). max_msg_bytes
 * (8192 by default) bounds the escaped msg; the line is then 0.13 bytes
 * per byte received. The same bytes in SD values are bounded too. */
static void test_worst_case_bounded(void)
{
	size_t n = 65018, cap = 65536;
	unsigned char *d = malloc(cap);
	bool t;

	CU_ASSERT_FATAL(d != NULL);
	memcpy(d, "<13>1 - h a - - - ", 18);
	memset(d + 18, 0x01, n - 18);
	json_t *j = line_of(d, n, 0, &t);
	size_t unbounded = last_len;
	json_decref(j);
	j = line_of(d, n, 8192, &t);
	printf("\n  %zu bytes of control bytes: a line of %zu bytes unbounded (%.2f per byte), "
	       "%zu with max_msg 8192 (%.3f per byte)", n, unbounded, (double)unbounded / n, last_len,
	       (double)last_len / n);
	CU_ASSERT(t);
	CU_ASSERT(unbounded > 6 * (n - 18));
	CU_ASSERT(last_len < 8192 + 1024);
	CU_ASSERT_EQUAL(json_string_length(json_object_get(j, "msg")), 8192 / 6);
	CU_ASSERT_EQUAL(num(j, "truncated"), (long long)(n - 18));
	json_decref(j);
	/* In SD values: 128 of them, 500 control bytes each. */
	size_t k = (size_t)snprintf((char *)d, cap, "<13>1 - h a - - [x");
	for (unsigned i = 0; i < 128; i++) {
		k += (size_t)snprintf((char *)d + k, cap - k, " p%u=\"", i);
		memset(d + k, 0x02, 500);
		k += 500;
		d[k++] = '"';
	}
	k += (size_t)snprintf((char *)d + k, cap - k, "] m");
	j = line_of(d, k, 8192, &t);
	printf("; SD values: %zu bytes, a line of %zu", k, last_len);
	CU_ASSERT(t);
	CU_ASSERT(last_len < 8192 + 128 * 16 + 1024);
	CU_ASSERT(json_is_true(json_object_get(j, "sd_truncated")));
	CU_ASSERT_PTR_NULL(json_object_get(j, "truncated")); /* msg "m" is whole */
	json_t *x = json_object_get(json_object_get(j, "sd"), "x");
	CU_ASSERT_EQUAL(json_object_size(x), 128);
	CU_ASSERT_EQUAL(json_string_length(json_object_get(x, "p0")), 500);
	CU_ASSERT_EQUAL(json_string_length(json_object_get(x, "p2")), 8192 / 6 - 1000);
	CU_ASSERT_EQUAL(json_string_length(json_object_get(x, "p127")), 0);
	CU_ASSERT_STRING_EQUAL(field(j, "msg"), "m");
	json_decref(j);
	free(d);
}

/* max_msg cuts msg (raw when unparsed) at a character boundary and says so. */
static void test_truncate(void)
{
	const char *in = "<13>1 - h a - - - \xc3\xa9\xc3\xa9\xc3\xa9"; /* msg: 6 bytes */
	bool t;

	json_t *j = line_of(in, strlen(in), 3, &t);
	CU_ASSERT(t);
	CU_ASSERT_STRING_EQUAL(field(j, "msg"), "\xc3\xa9");
	CU_ASSERT_EQUAL(num(j, "truncated"), 6);
	json_decref(j);
	j = line_of(in, strlen(in), 6, &t);
	CU_ASSERT(!t);
	CU_ASSERT_PTR_NULL(json_object_get(j, "truncated"));
	json_decref(j);
	j = line_of("garbage", 7, 4, &t);
	CU_ASSERT(t);
	CU_ASSERT_STRING_EQUAL(field(j, "raw"), "garb");
	CU_ASSERT_EQUAL(num(j, "truncated"), 7);
	json_decref(j);
	/* The bound is on the escaped bytes, and an escape is never split:
	 * "a" (1) and "\u0001" (6) fit in 7, not in 6; "\"" is 2. */
	static const struct {
		const char *msg;
		size_t max;
		const char *want;
	} esc[] = {
		{ "a\x01" "b", 7, "a\x01" },
		{ "a\x01" "b", 6, "a" },
		{ "a\x01" "b", 8, "a\x01" "b" },
		{ "\x01", 5, "" },
		{ "\"\"\"", 5, "\"\"" },
		{ "\xff\xff", 11, "\xef\xbf\xbd" }, /* each \ufffd, six */
		{ "\xe6\x97\xa5\xe6\x97\xa5", 5, "\xe6\x97\xa5" },
		{ "x\n", 2, "x" }, /* trimmed: a sender's newline, not cut */
	};
	char text[64];
	for (size_t i = 0; i < sizeof(esc) / sizeof(esc[0]); i++) {
		int len = snprintf(text, sizeof(text), "<13>1 - h a - - - %s", esc[i].msg);
		j = line_of(text, (size_t)len, esc[i].max, &t);
		bool whole = !strcmp(esc[i].want, esc[i].msg) || esc[i].msg[strlen(esc[i].msg) - 1] == '\n';
		CU_ASSERT_STRING_EQUAL(field(j, "msg"), esc[i].want);
		CU_ASSERT_EQUAL(t, !whole);
		json_decref(j);
	}
}

static const struct dg_test tests[] = {
	{ "RFC 5424, RFC 3164, logger and rsyslog vectors; junk", test_vectors },
	{ "version", test_version },
	{ "hostile bytes: one valid JSON line", test_hostile },
	{ "huge structured data: bounded, written raw past the bound", test_huge_sd },
	{ "line length within dg_syslog_line_max", test_line_max },
	{ "max_msg_bytes truncation, on the escaped bytes", test_truncate },
	{ "a 65,018-byte datagram of control bytes: a bounded line", test_worst_case_bounded },
	{ NULL, NULL },
};

DG_TEST_MAIN("syslog parser and writer", tests)
