/* One JSON line per syslog message, written into a buffer the caller sized
 * with dg_syslog_line_max(): no allocation, and nothing a sender puts in a
 * message can end the line early or make it invalid JSON. */
#define _POSIX_C_SOURCE 200809L /* strnlen; plugins build without config.h */

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "parse.h"

struct out {
	char *p;
	size_t sd_left; /* what the SD's values may still write */
	bool sd_cut;    /* a value was cut at it */
};

static void put(struct out *o, const char *s, size_t n)
{
	memcpy(o->p, s, n);
	o->p += n;
}

#define PUTS(o, lit) put((o), (lit), sizeof(lit) - 1)

static void put_u(struct out *o, unsigned long long v)
{
	char tmp[24];
	int n = snprintf(tmp, sizeof(tmp), "%llu", v);
	put(o, tmp, (size_t)n);
}

/* Length of the valid UTF-8 sequence at s (at most n bytes), 0 if none:
 * no overlong forms, no surrogates, nothing past U+10FFFF (RFC 3629). */
static size_t utf8_len(const unsigned char *s, size_t n)
{
	unsigned char c = s[0];
	size_t len;
	uint32_t cp, min;

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf)
		len = 2, cp = c & 0x1f, min = 0x80;
	else if (c >= 0xe0 && c <= 0xef)
		len = 3, cp = c & 0x0f, min = 0x800;
	else if (c >= 0xf0 && c <= 0xf4)
		len = 4, cp = c & 0x07, min = 0x10000;
	else
		return 0;
	if (n < len)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (s[i] & 0x3f);
	}
	if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return len;
}

/* Bytes as the inside of a JSON string: '"', '\' and control bytes
 * escaped, invalid UTF-8 as U+FFFD, one per byte. sd: a PARAM-VALUE, whose
 * \" \\ \] stand for the second byte (RFC 5424 6.3.3). At most 6 bytes
 * out per byte in, and at most limit bytes out (SIZE_MAX: no limit): a
 * character whose escape or UTF-8 sequence does not fit is not begun.
 * Returns how many bytes of s were written (n if all). */
static size_t escape(struct out *o, const unsigned char *s, size_t n, bool sd, size_t limit)
{
	static const char hex[] = "0123456789abcdef";
	size_t i = 0;

	while (i < n) {
		unsigned char c = s[i];
		size_t in = 1, len = 2;
		char u[6] = { '\\', (char)c };
		const char *e = u;
		if (sd && c == '\\' && i + 1 < n && (s[i + 1] == '"' || s[i + 1] == '\\' || s[i + 1] == ']'))
			c = s[i + 1], u[1] = (char)c, in = 2;
		if (c == '"' || c == '\\')
			;
		else if (c == '\n')
			e = "\\n";
		else if (c == '\t')
			e = "\\t";
		else if (c == '\r')
			e = "\\r";
		else if (c < 0x20 || c == 0x7f)
			u[1] = 'u', u[2] = '0', u[3] = '0', u[4] = hex[c >> 4], u[5] = hex[c & 15], len = 6;
		else if (c < 0x80)
			e = (const char *)s + i + in - 1, len = 1;
		else if ((len = in = utf8_len(s + i, n - i)) != 0)
			e = (const char *)s + i;
		else
			e = "\\ufffd", len = 6, in = 1;
		if (len > limit)
			break;
		put(o, e, len);
		limit -= len;
		i += in;
	}
	return i;
}

static void string(struct out *o, const struct dg_syslog_str *s)
{
	if (!s->p) {
		PUTS(o, "null");
		return;
	}
	*o->p++ = '"';
	escape(o, s->p, s->len, false, SIZE_MAX);
	*o->p++ = '"';
}

/* s as a JSON string of at most max bytes inside its quotes (0: no
 * limit); sets *truncated if it was cut. */
static void string_cut(struct out *o, const struct dg_syslog_str *s, size_t max, bool *truncated)
{
	if (!s->p) {
		PUTS(o, "null");
		return;
	}
	*o->p++ = '"';
	if (escape(o, s->p, s->len, false, max ? max : SIZE_MAX) < s->len)
		*truncated = true;
	*o->p++ = '"';
}

static void key(struct out *o, const char *k)
{
	*o->p++ = ',';
	*o->p++ = '"';
	put(o, k, strlen(k));
	*o->p++ = '"';
	*o->p++ = ':';
}

static bool same(const struct dg_syslog_str *a, const struct dg_syslog_str *b)
{
	return a->len == b->len && !memcmp(a->p, b->p, a->len);
}

/* The parameters of SD-ID group g (elements with equal SD-IDs are one
 * object), each name once: a repeated name's values as an array. At most
 * DG_SYSLOG_MAX_PARAMS^2 comparisons of names of at most 32 bytes. */
static void sd_params(struct out *o, const struct dg_syslog_msg *m, const unsigned *group, unsigned g)
{
	bool first = true;

	for (unsigned i = 0; i < m->n_params; i++) {
		const struct dg_syslog_param *p = &m->params[i];
		unsigned seen = 0, count = 0;
		if (group[p->sd] != g)
			continue;
		for (unsigned j = 0; j < m->n_params; j++)
			if (group[m->params[j].sd] == g && same(&m->params[j].name, &p->name))
				seen += j < i, count++;
		if (seen)
			continue;
		if (!first)
			*o->p++ = ',';
		first = false;
		string(o, &p->name);
		*o->p++ = ':';
		if (count > 1)
			*o->p++ = '[';
		for (unsigned j = i, k = 0; k < count; j++) {
			const struct dg_syslog_param *q = &m->params[j];
			if (group[q->sd] != g || !same(&q->name, &p->name))
				continue;
			if (k++)
				*o->p++ = ',';
			*o->p++ = '"';
			char *at = o->p;
			if (escape(o, q->value.p, q->value.len, true, o->sd_left) < q->value.len)
				o->sd_cut = true;
			o->sd_left -= (size_t)(o->p - at);
			*o->p++ = '"';
		}
		if (count > 1)
			*o->p++ = ']';
	}
}

/* "sd": {"ID": {"name": "value", ...}, ...} or null. */
static void sd(struct out *o, const struct dg_syslog_msg *m)
{
	unsigned group[DG_SYSLOG_MAX_SD];

	key(o, "sd");
	if (!m->n_sd) {
		PUTS(o, "null");
		return;
	}
	for (unsigned i = 0; i < m->n_sd; i++) {
		group[i] = i;
		for (unsigned j = 0; j < i; j++)
			if (same(&m->sd_id[j], &m->sd_id[i])) {
				group[i] = group[j];
				break;
			}
	}
	*o->p++ = '{';
	for (unsigned i = 0; i < m->n_sd; i++) {
		if (group[i] != i)
			continue;
		if (i)
			*o->p++ = ',';
		string(o, &m->sd_id[i]);
		PUTS(o, ":{");
		sd_params(o, m, group, i);
		*o->p++ = '}';
	}
	*o->p++ = '}';
}

static void header(struct out *o, const struct dg_syslog_line *l)
{
	PUTS(o, "{\"received\":\"");
	put(o, l->received, strnlen(l->received, 64));
	PUTS(o, "\",\"peer\":\"");
	put(o, l->peer, strnlen(l->peer, 64));
	*o->p++ = '"';
}

static void parsed(struct out *o, const struct dg_syslog_msg *m, const struct dg_syslog_line *l,
                   bool *truncated)
{
	key(o, "format");
	if (m->format == DG_SYSLOG_5424)
		PUTS(o, "\"rfc5424\"");
	else
		PUTS(o, "\"rfc3164\"");
	key(o, "facility");
	put_u(o, (unsigned)m->facility);
	key(o, "severity");
	put_u(o, (unsigned)m->severity);
	key(o, "version");
	if (m->format == DG_SYSLOG_5424)
		put_u(o, (unsigned)m->version);
	else
		PUTS(o, "null");
	key(o, "timestamp");
	string(o, &m->timestamp);
	key(o, "hostname");
	string(o, &m->hostname);
	key(o, "app");
	string(o, &m->app);
	key(o, "procid");
	string(o, &m->procid);
	key(o, "msgid");
	string(o, &m->msgid);
	o->sd_left = l->max_msg ? l->max_msg : SIZE_MAX;
	sd(o, m);
	if (o->sd_cut)
		PUTS(o, ",\"sd_truncated\":true");
	key(o, "msg");
	string_cut(o, &m->msg, l->max_msg, truncated);
	if (*truncated) {
		key(o, "truncated");
		put_u(o, m->msg.len);
	}
	*truncated = *truncated || o->sd_cut;
}

static void unparsed(struct out *o, const struct dg_syslog_msg *m, const struct dg_syslog_line *l,
                     bool *truncated)
{
	static const unsigned char empty[1];
	struct dg_syslog_str raw = { l->raw_len ? l->raw : empty, l->raw_len };

	key(o, "format");
	PUTS(o, "null");
	key(o, "error");
	*o->p++ = '"';
	const char *why = m->error ? m->error : "not syslog";
	escape(o, (const unsigned char *)why, strnlen(why, 128), false, SIZE_MAX);
	*o->p++ = '"';
	key(o, "error_offset");
	put_u(o, m->error_offset);
	key(o, "raw");
	string_cut(o, &raw, l->max_msg, truncated);
	if (*truncated) {
		key(o, "truncated");
		put_u(o, l->raw_len);
	}
}

size_t dg_syslog_line_max(size_t len, size_t max_msg)
{
	/* Escaping: 6 bytes per byte. Keys, punctuation, numbers, received,
	 * peer and the error text: under 1024. SD punctuation: under 2 bytes
	 * per byte of the SD it stands for ("[a]", " a=\"\""). */
	size_t all = 8 * len + 1024;

	/* With max_msg, msg (or raw) and the SD's values take at most max_msg
	 * each; the rest is bounded by the grammar (DG_SYSLOG_LINE_FIXED). */
	if (max_msg && max_msg <= (SIZE_MAX - DG_SYSLOG_LINE_FIXED) / 2 &&
	    2 * max_msg + DG_SYSLOG_LINE_FIXED < all)
		return 2 * max_msg + DG_SYSLOG_LINE_FIXED;
	return all;
}

size_t dg_syslog_format(const struct dg_syslog_line *l, char *buf, bool *truncated)
{
	struct out o = { buf, SIZE_MAX, false };

	*truncated = false;
	header(&o, l);
	if (l->m->format == DG_SYSLOG_NONE)
		unparsed(&o, l->m, l, truncated);
	else
		parsed(&o, l->m, l, truncated);
	PUTS(&o, "}\n");
	return (size_t)(o.p - buf);
}
