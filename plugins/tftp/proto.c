/* TFTP packets: see proto.h. Everything is bounded by the packet: one pass,
 * no allocation, no recursion. */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "proto.h"

static const struct {
	const char *name;
	int mode;
} modes[] = {
	{ "octet", TFTP_MODE_OCTET },
	{ "netascii", TFTP_MODE_NETASCII },
	{ "mail", TFTP_MODE_MAIL },
};

/* The known options: name, bit, and the range of a valid value. */
static const struct {
	const char *name;
	unsigned bit;
	uint64_t min, max;
} options[] = {
	{ "blksize", TFTP_OPT_BLKSIZE, TFTP_BLKSIZE_MIN, TFTP_BLKSIZE_MAX },
	{ "timeout", TFTP_OPT_TIMEOUT, TFTP_TIMEOUT_MIN, TFTP_TIMEOUT_MAX },
	/* Files up to 2^53: tsize is a decimal string of any length in the
	 * RFC; no file this serves is near the bound. */
	{ "tsize", TFTP_OPT_TSIZE, 0, (uint64_t)1 << 53 },
};

#define N(a) (sizeof(a) / sizeof((a)[0]))

static uint16_t get16(const unsigned char *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static void put16(unsigned char *p, unsigned v)
{
	p[0] = (unsigned char)(v >> 8);
	p[1] = (unsigned char)v;
}

/* The NUL-terminated string at p[*at], inside len; advances *at past its
 * NUL. NULL if no NUL before the end. */
static const char *next_string(const unsigned char *p, size_t len, size_t *at, size_t *slen)
{
	const unsigned char *nul = *at < len ? memchr(p + *at, '\0', len - *at) : NULL;

	if (!nul)
		return NULL;
	const char *s = (const char *)p + *at;
	*slen = (size_t)(nul - (p + *at));
	*at += *slen + 1;
	return s;
}

/* A decimal number of at most 19 digits, nothing else: "0", "512". */
static bool parse_decimal(const char *s, size_t len, uint64_t *v)
{
	if (len == 0 || len > 19)
		return false;
	*v = 0;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		*v = *v * 10 + (uint64_t)(s[i] - '0');
	}
	return true;
}

/* One option pair. A valid value of a known option sets its bit and field;
 * an invalid one is left out (not accepted); a second of the same name is
 * an error whether or not the first was valid (seen holds the names). */
static int take_option(struct tftp_msg *m, unsigned *seen, const char *name, size_t name_len,
                       const char *value, size_t value_len, const char **why)
{
	for (size_t i = 0; i < N(options); i++) {
		if (strlen(options[i].name) != name_len ||
		    strncasecmp(options[i].name, name, name_len))
			continue;
		if (*seen & options[i].bit) {
			*why = "duplicate option";
			return TFTP_EBADOP;
		}
		*seen |= options[i].bit;
		uint64_t v;
		if (!parse_decimal(value, value_len, &v) || v < options[i].min || v > options[i].max)
			return 0;
		m->opts |= options[i].bit;
		if (options[i].bit == TFTP_OPT_BLKSIZE)
			m->blksize = (unsigned)v;
		else if (options[i].bit == TFTP_OPT_TIMEOUT)
			m->timeout = (unsigned)v;
		else
			m->tsize = v;
		return 0;
	}
	return 0; /* unknown options are ignored (RFC 2347) */
}

static int parse_request(const unsigned char *p, size_t len, struct tftp_msg *m, const char **why)
{
	size_t at = 2, mode_len, name_len, value_len;
	const char *mode, *name, *value;
	unsigned seen = 0;

	m->file = next_string(p, len, &at, &m->file_len);
	mode = m->file ? next_string(p, len, &at, &mode_len) : NULL;
	if (!mode) {
		*why = "request without a NUL-terminated file name and mode";
		return TFTP_EBADOP;
	}
	if (m->file_len == 0) {
		*why = "empty file name";
		return TFTP_EBADOP;
	}
	for (size_t i = 0; i < N(modes); i++)
		if (strlen(modes[i].name) == mode_len && !strncasecmp(modes[i].name, mode, mode_len))
			m->mode = modes[i].mode;
	if (!m->mode) {
		*why = "unknown transfer mode";
		return TFTP_EBADOP;
	}
	while (at < len) {
		if (m->n_options == TFTP_MAX_OPTIONS) {
			*why = "too many options";
			return TFTP_EBADOP;
		}
		name = next_string(p, len, &at, &name_len);
		value = name ? next_string(p, len, &at, &value_len) : NULL;
		if (!value || name_len == 0) {
			*why = "option without a NUL-terminated name and value";
			return TFTP_EBADOP;
		}
		m->n_options++;
		int rc = take_option(m, &seen, name, name_len, value, value_len, why);
		if (rc)
			return rc;
	}
	return 0;
}

int tftp_parse(const unsigned char *p, size_t len, struct tftp_msg *m, const char **why)
{
	size_t at = 4, msg_len;

	memset(m, 0, sizeof(*m));
	if (len < 2) {
		*why = "shorter than an opcode";
		return TFTP_EBADOP;
	}
	m->opcode = get16(p);
	switch (m->opcode) {
	case TFTP_RRQ:
	case TFTP_WRQ:
		return parse_request(p, len, m, why);
	case TFTP_DATA:
	case TFTP_ACK:
		if (len < TFTP_HEADER || (m->opcode == TFTP_ACK && len != TFTP_HEADER)) {
			*why = m->opcode == TFTP_ACK ? "ACK not 4 bytes" : "DATA without a block number";
			return TFTP_EBADOP;
		}
		m->block = get16(p + 2);
		m->data = p + TFTP_HEADER;
		m->data_len = len - TFTP_HEADER;
		return 0;
	case TFTP_ERROR:
		m->message = len >= 4 ? next_string(p, len, &at, &msg_len) : NULL;
		if (!m->message) {
			*why = "ERROR without a NUL-terminated message";
			return TFTP_EBADOP;
		}
		m->error = get16(p + 2);
		return 0;
	case TFTP_OACK:
		return 0; /* a server's packet: never valid here, the caller refuses it */
	default:
		*why = "unknown opcode";
		return TFTP_EBADOP;
	}
}

size_t tftp_build_error(unsigned char *buf, size_t cap, unsigned code, const char *message)
{
	size_t n = strlen(message);

	if (cap < TFTP_HEADER + n + 1)
		return 0;
	put16(buf, TFTP_ERROR);
	put16(buf + 2, code);
	memcpy(buf + TFTP_HEADER, message, n + 1);
	return TFTP_HEADER + n + 1;
}

size_t tftp_build_ack(unsigned char *buf, size_t cap, uint16_t block)
{
	if (cap < TFTP_HEADER)
		return 0;
	put16(buf, TFTP_ACK);
	put16(buf + 2, block);
	return TFTP_HEADER;
}

/* Append "name\0value\0" for every option bit of o at buf[n]; 0 if it does
 * not fit. */
static size_t put_options(unsigned char *buf, size_t cap, size_t n, const struct tftp_msg *o)
{
	for (size_t i = 0; i < N(options); i++) {
		if (!(o->opts & options[i].bit))
			continue;
		unsigned long long v = options[i].bit == TFTP_OPT_BLKSIZE ? o->blksize :
		                       options[i].bit == TFTP_OPT_TIMEOUT ? o->timeout : o->tsize;
		char value[24];
		int vl = snprintf(value, sizeof(value), "%llu", v);
		size_t nl = strlen(options[i].name);
		if (vl < 0 || cap - n < nl + 1 + (size_t)vl + 1)
			return 0;
		memcpy(buf + n, options[i].name, nl + 1);
		n += nl + 1;
		memcpy(buf + n, value, (size_t)vl + 1);
		n += (size_t)vl + 1;
	}
	return n;
}

size_t tftp_build_oack(unsigned char *buf, size_t cap, const struct tftp_msg *o)
{
	if (cap < 2)
		return 0;
	put16(buf, TFTP_OACK);
	return put_options(buf, cap, 2, o);
}

size_t tftp_build_request(unsigned char *buf, size_t cap, const struct tftp_msg *m)
{
	const char *mode = NULL;

	for (size_t i = 0; i < N(modes); i++)
		if (modes[i].mode == m->mode)
			mode = modes[i].name;
	if (!mode || !m->file || cap < 2 + m->file_len + 1 + strlen(mode) + 1)
		return 0;
	put16(buf, (unsigned)m->opcode);
	memcpy(buf + 2, m->file, m->file_len);
	buf[2 + m->file_len] = '\0';
	size_t n = 2 + m->file_len + 1;
	memcpy(buf + n, mode, strlen(mode) + 1);
	n += strlen(mode) + 1;
	return put_options(buf, cap, n, m);
}

const char *tftp_path_refusal(const char *file, size_t len)
{
	if (len == 0)
		return "empty file name";
	if (file[0] == '/')
		return "absolute path";
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)file[i] < 0x20 || file[i] == 0x7f)
			return "control character in file name";
	/* A ".." component: at the start or after a '/', followed by the end
	 * or a '/'. */
	for (size_t i = 0; i + 1 < len; i++)
		if (file[i] == '.' && file[i + 1] == '.' && (i == 0 || file[i - 1] == '/') &&
		    (i + 2 == len || file[i + 2] == '/'))
			return "'..' in path";
	return NULL;
}
