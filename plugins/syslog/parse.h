/* Syslog messages (RFC 5424 and RFC 3164/BSD) parsed in place, and written
 * as one JSON line each. Used by plugins/syslog/syslog.c, the unit tests
 * and the fuzz harness; no allocation, no system call.
 *
 * Ownership: every struct dg_syslog_str points into the datagram handed
 * to the parser, which must outlive the struct dg_syslog_msg. */
#ifndef DG_SYSLOG_PARSE_H
#define DG_SYSLOG_PARSE_H

#include <stdbool.h>
#include <stddef.h>

#define DG_SYSLOG_MAX_SD 32      /* SD-ELEMENTs per message */
#define DG_SYSLOG_MAX_PARAMS 128 /* SD-PARAMs per message, all elements */

enum dg_syslog_format {
	DG_SYSLOG_NONE = 0, /* parsed as neither: written raw with "error" */
	DG_SYSLOG_5424 = 1,
	DG_SYSLOG_3164 = 2,
};

/* A byte range of the datagram; p NULL: absent (RFC 5424's "-"). */
struct dg_syslog_str {
	const unsigned char *p;
	size_t len;
};

struct dg_syslog_param {
	struct dg_syslog_str name;
	struct dg_syslog_str value; /* as sent: \" \\ \] still escaped */
	unsigned sd;                /* index of its element in sd_id[] */
};

struct dg_syslog_msg {
	int format; /* enum dg_syslog_format */
	int facility, severity;
	int version; /* RFC 5424 only */
	struct dg_syslog_str timestamp, hostname, app, procid, msgid, msg;
	bool bom; /* RFC 5424: MSG began with the UTF-8 BOM (not in msg) */
	unsigned n_sd, n_params;
	struct dg_syslog_str sd_id[DG_SYSLOG_MAX_SD];
	struct dg_syslog_param params[DG_SYSLOG_MAX_PARAMS];
	/* DG_SYSLOG_NONE: why (static text) and where, for the "error" field. */
	const char *error;
	size_t error_offset;
};

/* Parse datagram d as RFC 5424 if it has a VERSION after its PRI, else as
 * RFC 3164. One trailing NUL and then trailing CRs and LFs are not part of
 * the message (Python's SysLogHandler appends a NUL, many senders a
 * newline; rsyslog and syslog-ng drop them too). Fills *m; returns
 * m->format (DG_SYSLOG_NONE: m->error says why, the message is then
 * written raw, as sent). */
int dg_syslog_parse(const unsigned char *d, size_t len, struct dg_syslog_msg *m);

/* One format only (the fuzz harness runs each on every input). */
int dg_syslog_parse_5424(const unsigned char *d, size_t len, struct dg_syslog_msg *m);
int dg_syslog_parse_3164(const unsigned char *d, size_t len, struct dg_syslog_msg *m);

/* What the line writer needs besides the message. */
struct dg_syslog_line {
	const struct dg_syslog_msg *m;
	const unsigned char *raw; /* the datagram: written as "raw" when unparsed */
	size_t raw_len;
	const char *received; /* "2026-11-23T13:42:14.272077Z" (ASCII, not escaped) */
	const char *peer;     /* "127.0.0.1:5514" (ASCII, not escaped) */
	size_t max_msg;       /* bytes msg (or raw), and the SD's values together,
	                       * may take in the line, escaped (0: no limit) */
};

/* What a line holds besides msg (or raw) and the SD's values, at most:
 * received and peer (64 each), keys and numbers, the header fields as
 * RFC 5424 bounds them (escaped: printable ASCII, at most 2 bytes each),
 * up to 32 SD-IDs and 128 PARAM-NAMEs of 32 bytes with their punctuation,
 * the error text: about 13.1 KiB. */
#define DG_SYSLOG_LINE_FIXED 16384

/* The most bytes dg_syslog_format() writes for a datagram of len bytes
 * with l->max_msg max_msg: every byte escaped to six, plus the keys and
 * punctuation; with max_msg (not 0) no more than 2 * max_msg +
 * DG_SYSLOG_LINE_FIXED. */
size_t dg_syslog_line_max(size_t len, size_t max_msg);

/* Write l as one JSON object and a '\n' into out, which has room for
 * dg_syslog_line_max(raw_len, l->max_msg) bytes. Every string is escaped;
 * bytes that are not UTF-8 become U+FFFD; no raw control byte is written,
 * so the only '\n' is the last. With max_msg, msg (or raw) is cut where
 * its escaped form would pass max_msg bytes, between characters (never
 * inside an escape or a UTF-8 sequence), and the line gets "truncated":
 * its length in the datagram; the SD's values share another max_msg bytes,
 * and a value cut there (later ones empty) gives "sd_truncated": true.
 * Sets *truncated if anything was cut. Returns the line's length. */
size_t dg_syslog_format(const struct dg_syslog_line *l, char *out, bool *truncated);

#endif
