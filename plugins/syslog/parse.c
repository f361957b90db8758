/* Syslog parsers: RFC 5424 strictly (it is a grammar), RFC 3164 the way
 * receivers read it in practice (it only describes what senders did): the
 * PRI is required, the rest is taken as far as it looks like a timestamp,
 * a hostname and a tag, and whatever remains is the message. */
#include <string.h>

#include "parse.h"

#define SP ' '

static const char *const months[12] = {
	"Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
};

struct cursor {
	const unsigned char *d;
	size_t len, pos;
	struct dg_syslog_msg *m;
};

static int fail(struct cursor *c, const char *why)
{
	c->m->format = DG_SYSLOG_NONE;
	c->m->error = why;
	c->m->error_offset = c->pos;
	return DG_SYSLOG_NONE;
}

static bool at(const struct cursor *c, unsigned char ch)
{
	return c->pos < c->len && c->d[c->pos] == ch;
}

static bool digit_at(const struct cursor *c, size_t i)
{
	return i < c->len && c->d[i] >= '0' && c->d[i] <= '9';
}

/* n digits at the cursor (moved past them); -1 if not. */
static int digits(struct cursor *c, unsigned n)
{
	int v = 0;

	for (unsigned i = 0; i < n; i++) {
		if (!digit_at(c, c->pos + i))
			return -1;
		v = v * 10 + (c->d[c->pos + i] - '0');
	}
	c->pos += n;
	return v;
}

/* "<PRI>": 1 to 3 digits, 0 .. 191. */
static bool parse_pri(struct cursor *c)
{
	unsigned v = 0, n = 0;

	if (!at(c, '<'))
		return fail(c, "expected '<' and a PRI"), false;
	c->pos++;
	while (n < 3 && digit_at(c, c->pos)) {
		v = v * 10 + (unsigned)(c->d[c->pos++] - '0');
		n++;
	}
	if (n == 0 || v > 191)
		return fail(c, "PRI is not a number from 0 to 191"), false;
	if (!at(c, '>'))
		return fail(c, "expected '>' after the PRI"), false;
	c->pos++;
	c->m->facility = (int)(v >> 3);
	c->m->severity = (int)(v & 7);
	return true;
}

static void reset(struct dg_syslog_msg *m)
{
	m->format = DG_SYSLOG_NONE;
	m->facility = m->severity = m->version = 0;
	m->timestamp = m->hostname = m->app = m->procid = m->msgid = m->msg =
		(struct dg_syslog_str){ NULL, 0 };
	m->bom = false;
	m->n_sd = m->n_params = 0;
	m->error = NULL;
	m->error_offset = 0;
}

static bool is_print(unsigned char ch)
{
	return ch >= 33 && ch <= 126;
}

/* ---- RFC 5424 ---------------------------------------------------------- */

/* A header field: 1 to max PRINTUSASCII, then SP; "-" is NILVALUE. */
static bool field(struct cursor *c, size_t max, struct dg_syslog_str *out, const char *why)
{
	size_t start = c->pos;

	while (c->pos < c->len && is_print(c->d[c->pos]) && c->pos - start <= max)
		c->pos++;
	if (c->pos == start || c->pos - start > max || !at(c, SP))
		return fail(c, why), false;
	if (c->pos - start == 1 && c->d[start] == '-')
		*out = (struct dg_syslog_str){ NULL, 0 };
	else
		*out = (struct dg_syslog_str){ c->d + start, c->pos - start };
	c->pos++;
	return true;
}

/* TIME-SECFRAC and TIME-OFFSET of an RFC 3339 time, after "hh:mm:ss". */
static bool time_tail(struct cursor *c)
{
	if (at(c, '.')) {
		size_t start = ++c->pos;
		while (digit_at(c, c->pos) && c->pos - start < 9)
			c->pos++;
		if (c->pos == start)
			return false;
	}
	if (at(c, 'Z')) {
		c->pos++;
		return true;
	}
	if (!at(c, '+') && !at(c, '-'))
		return false;
	c->pos++;
	int h = digits(c, 2);
	if (h < 0 || h > 23 || !at(c, ':'))
		return false;
	c->pos++;
	int mi = digits(c, 2);
	return mi >= 0 && mi <= 59;
}

/* "hh:mm:ss" */
static bool hms(struct cursor *c)
{
	int h = digits(c, 2);
	if (h < 0 || h > 23 || !at(c, ':'))
		return false;
	c->pos++;
	int mi = digits(c, 2);
	if (mi < 0 || mi > 59 || !at(c, ':'))
		return false;
	c->pos++;
	int s = digits(c, 2);
	return s >= 0 && s <= 60; /* leap second */
}

/* An RFC 3339 timestamp: YYYY-MM-DDThh:mm:ss[.frac](Z|+hh:mm). */
static bool rfc3339(struct cursor *c)
{
	if (digits(c, 4) < 0 || !at(c, '-'))
		return false;
	c->pos++;
	int mo = digits(c, 2);
	if (mo < 1 || mo > 12 || !at(c, '-'))
		return false;
	c->pos++;
	int dd = digits(c, 2);
	if (dd < 1 || dd > 31 || !at(c, 'T'))
		return false;
	c->pos++;
	return hms(c) && time_tail(c);
}

static bool timestamp_5424(struct cursor *c)
{
	size_t start = c->pos;

	if (at(c, '-')) {
		c->pos++;
	} else if (!rfc3339(c)) {
		return fail(c, "TIMESTAMP is neither '-' nor an RFC 3339 time"), false;
	} else {
		c->m->timestamp = (struct dg_syslog_str){ c->d + start, c->pos - start };
	}
	if (!at(c, SP))
		return fail(c, "expected a space after TIMESTAMP"), false;
	c->pos++;
	return true;
}

/* SD-NAME: 1 to 32 PRINTUSASCII except '=', SP, ']' and '"'. */
static bool sd_name(struct cursor *c, struct dg_syslog_str *out)
{
	size_t start = c->pos;

	while (c->pos < c->len && c->pos - start <= 32) {
		unsigned char ch = c->d[c->pos];
		if (!is_print(ch) || ch == '=' || ch == ']' || ch == '"')
			break;
		c->pos++;
	}
	if (c->pos == start || c->pos - start > 32)
		return false;
	*out = (struct dg_syslog_str){ c->d + start, c->pos - start };
	return true;
}

/* PARAM-VALUE up to the closing '"' (the cursor is past the opening one);
 * a backslash escapes the next byte. */
static bool sd_value(struct cursor *c, struct dg_syslog_str *out)
{
	size_t start = c->pos;

	while (c->pos < c->len && c->d[c->pos] != '"')
		c->pos += c->d[c->pos] == '\\' && c->pos + 1 < c->len ? 2 : 1;
	if (!at(c, '"'))
		return false;
	*out = (struct dg_syslog_str){ c->d + start, c->pos - start };
	c->pos++;
	return true;
}

static bool sd_param(struct cursor *c)
{
	struct dg_syslog_msg *m = c->m;

	if (m->n_params == DG_SYSLOG_MAX_PARAMS)
		return fail(c, "more than 128 SD-PARAMs"), false;
	struct dg_syslog_param *p = &m->params[m->n_params];
	if (!sd_name(c, &p->name))
		return fail(c, "PARAM-NAME is not 1 to 32 printable characters"), false;
	if (!at(c, '='))
		return fail(c, "expected '=' after PARAM-NAME"), false;
	c->pos++;
	if (!at(c, '"'))
		return fail(c, "expected '\"' before PARAM-VALUE"), false;
	c->pos++;
	if (!sd_value(c, &p->value))
		return fail(c, "PARAM-VALUE has no closing '\"'"), false;
	p->sd = m->n_sd - 1;
	m->n_params++;
	return true;
}

static bool sd_element(struct cursor *c)
{
	struct dg_syslog_msg *m = c->m;

	c->pos++; /* '[' */
	if (m->n_sd == DG_SYSLOG_MAX_SD)
		return fail(c, "more than 32 SD-ELEMENTs"), false;
	if (!sd_name(c, &m->sd_id[m->n_sd]))
		return fail(c, "SD-ID is not 1 to 32 printable characters"), false;
	m->n_sd++;
	while (at(c, SP)) {
		c->pos++;
		if (!sd_param(c))
			return false;
	}
	if (!at(c, ']'))
		return fail(c, "expected ']' or a space and an SD-PARAM"), false;
	c->pos++;
	return true;
}

static bool structured_data(struct cursor *c)
{
	if (at(c, '-')) {
		c->pos++;
		return true;
	}
	if (!at(c, '['))
		return fail(c, "STRUCTURED-DATA is neither '-' nor '['"), false;
	while (at(c, '['))
		if (!sd_element(c))
			return false;
	return true;
}

static void msg_5424(struct cursor *c)
{
	static const unsigned char bom[3] = { 0xef, 0xbb, 0xbf };
	struct dg_syslog_msg *m = c->m;

	if (c->len - c->pos >= 3 && !memcmp(c->d + c->pos, bom, 3)) {
		m->bom = true;
		c->pos += 3;
	}
	m->msg = (struct dg_syslog_str){ c->d + c->pos, c->len - c->pos };
}

int dg_syslog_parse_5424(const unsigned char *d, size_t len, struct dg_syslog_msg *m)
{
	struct cursor c = { d, len, 0, m };

	reset(m);
	if (!parse_pri(&c))
		return DG_SYSLOG_NONE;
	/* VERSION: NONZERO-DIGIT 0*2DIGIT, then SP */
	size_t start = c.pos;
	while (digit_at(&c, c.pos) && c.pos - start < 3)
		m->version = m->version * 10 + (d[c.pos++] - '0');
	if (c.pos == start || d[start] == '0' || !at(&c, SP))
		return fail(&c, "VERSION is not a number from 1 to 999 and a space");
	c.pos++;
	if (!timestamp_5424(&c) ||
	    !field(&c, 255, &m->hostname, "HOSTNAME is not 1 to 255 printable characters") ||
	    !field(&c, 48, &m->app, "APP-NAME is not 1 to 48 printable characters") ||
	    !field(&c, 128, &m->procid, "PROCID is not 1 to 128 printable characters") ||
	    !field(&c, 32, &m->msgid, "MSGID is not 1 to 32 printable characters") ||
	    !structured_data(&c))
		return DG_SYSLOG_NONE;
	if (c.pos < len) {
		if (!at(&c, SP))
			return fail(&c, "expected a space after STRUCTURED-DATA");
		c.pos++;
		msg_5424(&c);
	}
	m->format = DG_SYSLOG_5424;
	return m->format;
}

/* ---- RFC 3164 ---------------------------------------------------------- */

/* "Mmm dd hh:mm:ss" (dd space-padded), with fractions of a second as some
 * senders add them. */
static bool bsd_time(struct cursor *c)
{
	size_t i;

	if (c->len - c->pos < 16)
		return false;
	for (i = 0; i < 12 && memcmp(c->d + c->pos, months[i], 3); i++)
		;
	if (i == 12 || c->d[c->pos + 3] != SP)
		return false;
	c->pos += 4;
	if (!(at(c, SP) || (digit_at(c, c->pos) && c->d[c->pos] <= '3')) || !digit_at(c, c->pos + 1))
		return false;
	c->pos += 2;
	if (!at(c, SP))
		return false;
	c->pos++;
	if (!hms(c))
		return false;
	if (at(c, '.')) {
		size_t start = ++c->pos;
		while (digit_at(c, c->pos) && c->pos - start < 9)
			c->pos++;
		if (c->pos == start)
			return false;
	}
	return true;
}

/* A timestamp and its space, BSD or (rsyslog's forwarding format) RFC
 * 3339. Not one: the cursor stays, the message has none. */
static void timestamp_3164(struct cursor *c)
{
	size_t start = c->pos;

	if ((bsd_time(c) || (c->pos = start, rfc3339(c))) && at(c, SP)) {
		c->m->timestamp = (struct dg_syslog_str){ c->d + start, c->pos - start };
		c->pos++;
		return;
	}
	c->pos = start;
}

/* TAG[PID]: at the cursor, as far as it looks like one: at most 48
 * printable characters up to '[' or ':'. Moves the cursor past the ": "
 * when it finds one. */
static void tag(struct cursor *c)
{
	struct dg_syslog_msg *m = c->m;
	size_t start = c->pos, p = c->pos;

	while (p < c->len && p - start < 48 && is_print(c->d[p]) && c->d[p] != '[' && c->d[p] != ':' &&
	       c->d[p] != ']')
		p++;
	if (p == start || p >= c->len || (c->d[p] != '[' && c->d[p] != ':'))
		return;
	struct dg_syslog_str app = { c->d + start, p - start }, pid = { NULL, 0 };
	if (c->d[p] == '[') {
		size_t q = ++p;
		while (p < c->len && p - q < 128 && is_print(c->d[p]) && c->d[p] != ']')
			p++;
		if (p >= c->len || c->d[p] != ']' || p == q)
			return;
		pid = (struct dg_syslog_str){ c->d + q, p - q };
		p++;
		if (p < c->len && c->d[p] != ':' && c->d[p] != SP)
			return;
	}
	if (p < c->len && c->d[p] == ':')
		p++;
	if (p < c->len && c->d[p] == SP)
		p++;
	m->app = app;
	m->procid = pid;
	c->pos = p;
}

/* A token that is followed by a space and does not look like a tag. */
static void hostname(struct cursor *c)
{
	size_t start = c->pos, p = c->pos;

	while (p < c->len && p - start < 255 && is_print(c->d[p]) && c->d[p] != '[')
		p++;
	if (p == start || p >= c->len || c->d[p] != SP || c->d[p - 1] == ':')
		return;
	c->m->hostname = (struct dg_syslog_str){ c->d + start, p - start };
	c->pos = p + 1;
}

int dg_syslog_parse_3164(const unsigned char *d, size_t len, struct dg_syslog_msg *m)
{
	struct cursor c = { d, len, 0, m };

	reset(m);
	if (!parse_pri(&c))
		return DG_SYSLOG_NONE;
	timestamp_3164(&c);
	/* RFC 3164 4.1.2: a HOSTNAME follows the TIMESTAMP; without one it is
	 * all CONTENT. */
	if (m->timestamp.p)
		hostname(&c);
	tag(&c);
	m->msg = (struct dg_syslog_str){ d + c.pos, len - c.pos };
	m->format = DG_SYSLOG_3164;
	return m->format;
}

/* What senders append after the message: Python's SysLogHandler a NUL
 * (append_nul, on by default), many a newline. rsyslog and syslog-ng drop
 * them; so do we: one NUL, then every CR and LF before it. */
static size_t trim(const unsigned char *d, size_t len)
{
	if (len && d[len - 1] == '\0')
		len--;
	while (len && (d[len - 1] == '\n' || d[len - 1] == '\r'))
		len--;
	return len;
}

int dg_syslog_parse(const unsigned char *d, size_t len, struct dg_syslog_msg *m)
{
	size_t i = 1;

	len = trim(d, len);
	if (len == 0) {
		reset(m);
		m->error = "empty datagram";
		return DG_SYSLOG_NONE;
	}
	/* "<PRI>" then digits and a space: a VERSION, so RFC 5424. */
	while (i < len && i < 5 && d[i] != '>')
		i++;
	size_t v = ++i;
	while (i < len && i - v < 3 && d[i] >= '0' && d[i] <= '9')
		i++;
	if (i > v && i < len && d[i] == SP)
		return dg_syslog_parse_5424(d, len, m);
	return dg_syslog_parse_3164(d, len, m);
}
