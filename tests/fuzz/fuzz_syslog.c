/* libFuzzer harness for the syslog plugin's parsers (plugins/syslog): every
 * input goes through the RFC 5424 parser, the RFC 3164 parser and the
 * choice between them, and each result through the line writer. Properties
 * checked (abort on violation):
 *   - parsing and writing never crash or read out of bounds (ASan, UBSan);
 *   - every field the parser returns lies inside the input;
 *   - the line fits dg_syslog_line_max() (with max_msg, bounded by it,
 *     whatever the input: 2 * max_msg + DG_SYSLOG_LINE_FIXED), ends with its only '\n', and is
 *     one JSON object that jansson reads back (duplicate keys rejected).
 * tests/fuzz/replay.c runs it over tests/fuzz/corpus/syslog in every build. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "../../plugins/syslog/parse.h"

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

static void inside(const struct dg_syslog_str *s, const unsigned char *d, size_t n)
{
	if (s->p && (s->p < d || s->p + s->len > d + n))
		fprintf(stderr, "field outside the input\n"), abort();
}

static void check(const unsigned char *d, size_t n, struct dg_syslog_msg *m, char *buf)
{
	const struct dg_syslog_str *f[] = { &m->timestamp, &m->hostname, &m->app, &m->procid,
	                                     &m->msgid, &m->msg };
	bool truncated;

	for (size_t i = 0; i < sizeof(f) / sizeof(f[0]); i++)
		inside(f[i], d, n);
	for (unsigned i = 0; m->format == DG_SYSLOG_5424 && i < m->n_params; i++) {
		inside(&m->params[i].name, d, n);
		inside(&m->params[i].value, d, n);
		if (m->params[i].sd >= m->n_sd)
			fprintf(stderr, "param of no element\n"), abort();
	}
	struct dg_syslog_line l = {
		.m = m, .raw = d, .raw_len = n, .received = "2026-11-23T13:42:14.000001Z",
		.peer = "[::1]:514", .max_msg = n % 3 == 0 ? n / 3 : n % 3 == 1 ? 0 : 5 + n % 40,
	};
	size_t len = dg_syslog_format(&l, buf, &truncated);
	if (len > dg_syslog_line_max(n, l.max_msg) || len == 0 || buf[len - 1] != '\n' ||
	    memchr(buf, '\n', len - 1))
		fprintf(stderr, "line of %zu bytes for %zu: not one line\n", len, n), abort();
	json_error_t je;
	json_t *j = json_loadb(buf, len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &je);
	if (!json_is_object(j))
		fprintf(stderr, "not JSON: %s: %.*s\n", je.text, (int)len, buf), abort();
	json_decref(j);
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
	static struct dg_syslog_msg m;
	/* An exact-size copy: ASan sees a read past the end of the input. */
	unsigned char *d = malloc(size ? size : 1);
	char *buf = malloc(dg_syslog_line_max(size, 0));

	if (!d || !buf)
		abort();
	if (size)
		memcpy(d, data, size);
	dg_syslog_parse_5424(d, size, &m);
	check(d, size, &m, buf);
	dg_syslog_parse_3164(d, size, &m);
	check(d, size, &m, buf);
	dg_syslog_parse(d, size, &m);
	check(d, size, &m, buf);
	free(buf);
	free(d);
	return 0;
}
