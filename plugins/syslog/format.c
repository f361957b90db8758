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
 * out per byte in. */
static void escape(struct out *o, const unsigned char *s, size_t n, bool sd)
{
	static const char hex[] = "0123456789abcdef";

	for (size_t i = 0; i < n;) {
		unsigned char c = s[i];
		if (sd && c == '\\' && i + 1 < n && (s[i + 1] == '"' || s[i + 1] == '\\' || s[i + 1] == ']'))
			c = s[++i];
		if (c == '"' || c == '\\') {
			*o->p++ = '\\';
			*o->p++ = (char)c;
		} else if (c == '\n') {
			PUTS(o, "\\n");
		} else if (c == '\t') {
			PUTS(o, "\\t");
		} else if (c == '\r') {
			PUTS(o, "\\r");
		} else if (c < 0x20 || c == 0x7f) {
			char u[6] = { '\\', 'u', '0', '0', hex[c >> 4], hex[c & 15] };
			put(o, u, 6);
		} else {
			size_t len = utf8_len(s + i, n - i);
			if (len == 0) {
				PUTS(o, "\\ufffd");
				len = 1;
			} else {
				put(o, (const char *)s + i, len);
			}
			i += len;
			continue;
		}
		i++;
	}
}

static void string(struct out *o, const struct dg_syslog_str *s)
{
	if (!s->p) {
		PUTS(o, "null");
		return;
	}
	*o->p++ = '"';
	escape(o, s->p, s->len, false);
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
			escape(o, q->value.p, q->value.len, true);
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

/* s cut to at most max bytes (0: no limit), not inside a UTF-8 sequence. */
static struct dg_syslog_str cut(struct dg_syslog_str s, size_t max, bool *truncated)
{
	if (!max || !s.p || s.len <= max)
		return s;
	size_t n = max;
	for (size_t back = 0; back < 3 && n > 0 && (s.p[n] & 0xc0) == 0x80; back++)
		n--;
	if ((s.p[n] & 0xc0) == 0x80)
		n = max; /* not UTF-8 anyway: cut where asked */
	*truncated = true;
	return (struct dg_syslog_str){ s.p, n };
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
	sd(o, m);
	key(o, "msg");
	struct dg_syslog_str msg = cut(m->msg, l->max_msg, truncated);
	string(o, &msg);
	if (*truncated) {
		key(o, "truncated");
		put_u(o, m->msg.len);
	}
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
	escape(o, (const unsigned char *)why, strnlen(why, 128), false);
	*o->p++ = '"';
	key(o, "error_offset");
	put_u(o, m->error_offset);
	key(o, "raw");
	raw = cut(raw, l->max_msg, truncated);
	string(o, &raw);
	if (*truncated) {
		key(o, "truncated");
		put_u(o, l->raw_len);
	}
}

size_t dg_syslog_line_max(size_t len)
{
	/* Escaping: 6 bytes per byte. Keys, punctuation, numbers, received,
	 * peer and the error text: under 1024. SD punctuation: under 2 bytes
	 * per byte of the SD it stands for ("[a]", " a=\"\""). */
	return 8 * len + 1024;
}

size_t dg_syslog_format(const struct dg_syslog_line *l, char *buf, bool *truncated)
{
	struct out o = { buf };

	*truncated = false;
	header(&o, l);
	if (l->m->format == DG_SYSLOG_NONE)
		unparsed(&o, l->m, l, truncated);
	else
		parsed(&o, l->m, l, truncated);
	PUTS(&o, "}\n");
	return (size_t)(o.p - buf);
}
