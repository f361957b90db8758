/* syslog: receives RFC 5424 and RFC 3164 messages (raw codec, no replies)
 * and appends each as one JSON line to a file.
 *
 * config (declared in sl_options, checked by the host):
 *   "file": "/var/log/dgramd/syslog.jsonl"  required; opened O_APPEND
 *   "flush_bytes": 65536  write the buffer once it holds this much
 *   "flush_ms": 100       ... or this long after its first line (0: write
 *                         each datagram's line at once)
 *   "fsync_ms": 0         fdatasync this long after a write (0: never; the
 *                         kernel writes the page cache back)
 *   "max_msg_bytes": 8192 the most msg (or raw) takes in the line, escaped;
 *                         cut between characters, with "truncated":
 *                         original length; the SD's values share as much
 *                         ("sd_truncated": true) (0: no limit)
 *
 * Every datagram ends as one line in the file or in a counter: written
 * (lines in the file), dropped (lines lost while the file could not be
 * written), parse_errors (written raw), truncated, write_errors (failed
 * write calls). SIGUSR1 reopens the file (after logrotate has moved it).
 * No line is left half-written: part of a line the file took (a full
 * disk) is taken back, and the rest of a line a file ends in when it is
 * opened (a writer killed mid-write) is cut off.
 * Several workers, or listeners, may append to one file: each write holds
 * whole lines, and O_APPEND keeps them apart.
 */
#define _POSIX_C_SOURCE 200809L /* fdatasync, gmtime_r; plugins build without config.h */

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <jansson.h>
#include <dgramd/plugin.h>
#include <dgramd/plugin-util.h>

#include "parse.h"

#define SL_MAX_DATAGRAM 65535 /* a UDP payload can be no larger */
#define SL_RETRY_MS 1000      /* after a failed write, with flush_ms 0 */
#define SL_ERR_LOG_MS 10000   /* at most one write error line per this */
#define SL_FRAGMENT_MAX (1 << 20) /* how far back to look for a line's start */

/* The config, checked and filled in by the host (host->options). */
struct sl_options {
	const char *file;
	int64_t flush_bytes, flush_ms, fsync_ms, max_msg_bytes;
};

#define O(field) offsetof(struct sl_options, field)
static const struct dg_option sl_options[] = {
	{ .name = "file", .type = DG_OPT_STRING, .offset = O(file), .min = 1, .max = 4095,
	  .flags = DG_OPT_REQUIRED, .help = "the JSON lines file (opened O_APPEND, created 0640)" },
	{ .name = "flush_bytes", .type = DG_OPT_INT, .offset = O(flush_bytes), .def = "65536",
	  .min = 1, .max = 16777216, .help = "write the buffer once it holds this many bytes" },
	{ .name = "flush_ms", .type = DG_OPT_INT, .offset = O(flush_ms), .def = "100", .min = 0,
	  .max = 60000, .help = "... or this long after its first line (0: each line at once)" },
	{ .name = "fsync_ms", .type = DG_OPT_INT, .offset = O(fsync_ms), .def = "0", .min = 0,
	  .max = 3600000, .help = "fdatasync this long after a write (0: never)" },
	{ .name = "max_msg_bytes", .type = DG_OPT_INT, .offset = O(max_msg_bytes), .def = "8192",
	  .min = 0, .max = 6 * SL_MAX_DATAGRAM,
	  .help = "msg (or raw), escaped, cut at this many bytes, marked \"truncated\"; the SD's "
	          "values as well (0: no limit)" },
	{ .name = NULL },
};
#undef O

enum sl_metric { SL_WRITTEN, SL_PARSE_ERRORS, SL_TRUNCATED, SL_WRITE_ERRORS, SL_DROPPED, SL_NMETRICS };

static const struct {
	const char *name, *help;
} sl_metrics[SL_NMETRICS] = {
	[SL_WRITTEN] = { "written", "Lines written to the file" },
	[SL_PARSE_ERRORS] = { "parse_errors", "Messages that were neither RFC 5424 nor RFC 3164 (written raw)" },
	[SL_TRUNCATED] = { "truncated", "Lines whose msg (or raw) or SD values were cut at max_msg_bytes" },
	[SL_WRITE_ERRORS] = { "write_errors", "Failed write calls (the lines stay buffered)" },
	[SL_DROPPED] = { "dropped", "Lines lost: the buffer was full of lines the file did not take" },
};

struct sl {
	const struct dg_host *host;
	struct dg_instance *self;
	struct sl_options opt;  /* a copy of the host's */
	const char *path;       /* opt.file */
	int fd;
	char *buf; /* whole lines, but buf[0] may continue a line partly written */
	size_t len, cap;
	bool mid_line;  /* the file ends inside buf's first line */
	bool unsynced;  /* written since the last fdatasync */
	bool closing;   /* in fini: start no timer */
	bool failing;   /* the last write failed: only the retry timer writes */
	struct dg_timer *flush_timer, *sync_timer;
	struct event *ev_reopen;
	struct dg_metric *metric[SL_NMETRICS];
	struct dg_util_ratelimit err_rl; /* write error lines, on host->now_ms */
	time_t stamp_sec;  /* the second stamp[] holds */
	char stamp[32];    /* "2026-11-23T13:42:14" */
	struct dg_syslog_msg msg; /* ~5 KiB: here, not on the stack */
};

static void sl_count(struct sl *s, enum sl_metric m, int64_t n)
{
	dg_util_metric_add(s->host, s->metric[m], n);
}

static size_t count_lines(const char *p, size_t n)
{
	size_t k = 0;

	for (const char *e = p + n; (p = memchr(p, '\n', (size_t)(e - p))); p++)
		k++;
	return k;
}

static void sl_write_error(struct sl *s, int err)
{
	unsigned long long quiet;

	sl_count(s, SL_WRITE_ERRORS, 1);
	if (dg_util_ratelimit_allow(&s->err_rl, s->host->now_ms(s->self), SL_ERR_LOG_MS, &quiet))
		s->host->log(s->self, DG_LOG_ERROR, "cannot write '%s': %s (%zu bytes kept to retry; "
		             "%llu more errors since the last report)", s->path, strerror(err), s->len,
		             quiet);
}

static void sl_sync(void *arg)
{
	struct sl *s = arg;

	s->sync_timer = NULL;
	if (s->unsynced && fdatasync(s->fd) < 0)
		sl_write_error(s, errno);
	s->unsynced = false;
}

/* Whether the file (a regular one) still ends with the n bytes at p, its
 * size then in *size; read back in pieces, at most a line's worth. */
static bool sl_ends_with(struct sl *s, const char *p, size_t n, off_t *size)
{
	struct stat st;
	char piece[4096];

	if (fstat(s->fd, &st) || !S_ISREG(st.st_mode) || st.st_size < (off_t)n)
		return false;
	for (size_t at = 0; at < n;) {
		size_t k = n - at < sizeof(piece) ? n - at : sizeof(piece);
		if (pread(s->fd, piece, k, st.st_size - (off_t)(n - at)) != (ssize_t)k ||
		    memcmp(piece, p + at, k))
			return false;
		at += k;
	}
	*size = st.st_size;
	return true;
}

/* The file took the first n bytes of the line at p and no more (a write
 * cut short by ENOSPC, or EFBIG at RLIMIT_FSIZE): take them back, so the
 * file ends with a whole line and this one is written whole later, here or
 * to the next file (a reopen, the next generation). Only if the file still
 * ends with exactly those bytes, no other writer having appended since;
 * false if not (the line is then finished here, or dropped: mid_line). */
static bool sl_take_back(struct sl *s, const char *p, size_t n)
{
	off_t size;

	return sl_ends_with(s, p, n, &size) && ftruncate(s->fd, size - (off_t)n) == 0;
}

/* After a write of off bytes: the lines the file took whole are counted
 * written; a line it took part of is taken back if it can be (then off
 * shrinks to the whole lines). Returns the bytes written for good. */
static size_t sl_written(struct sl *s, size_t off)
{
	size_t start = off;

	if (s->buf[off - 1] != '\n') {
		while (start > 0 && s->buf[start - 1] != '\n')
			start--;
		/* A line begun by an earlier write (mid_line) is not all here. */
		if ((start > 0 || !s->mid_line) && sl_take_back(s, s->buf + start, off - start))
			off = start;
	}
	if (off) {
		sl_count(s, SL_WRITTEN, (int64_t)count_lines(s->buf, off));
		s->mid_line = s->buf[off - 1] != '\n';
	}
	return off;
}

static void sl_flush_timer(void *arg);

/* Write the buffer. What the file does not take stays, for the next
 * flush (a timer retries); a line it takes only part of is taken back. */
static void sl_flush(struct sl *s)
{
	size_t off = 0;
	int err = 0;

	while (off < s->len) {
		ssize_t n = write(s->fd, s->buf + off, s->len - off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			err = n < 0 ? errno : EIO;
			break;
		}
		off += (size_t)n;
	}
	if (off && (off = sl_written(s, off))) {
		memmove(s->buf, s->buf + off, s->len - off);
		s->len -= off;
		s->unsynced = true;
		if (s->opt.fsync_ms && !s->sync_timer && !s->closing)
			s->sync_timer = s->host->timer_start(s->self, (unsigned)s->opt.fsync_ms, sl_sync, s);
	}
	s->failing = err != 0;
	if (err)
		sl_write_error(s, err);
	if (s->len && !s->flush_timer && !s->closing)
		s->flush_timer = s->host->timer_start(s->self, s->opt.flush_ms ? (unsigned)s->opt.flush_ms
		                                                                 : SL_RETRY_MS,
		                                      sl_flush_timer, s);
}

static void sl_flush_timer(void *arg)
{
	struct sl *s = arg;

	s->flush_timer = NULL;
	sl_flush(s);
}

/* Where the line the file ends in began: the offset after the last '\n'
 * within SL_FRAGMENT_MAX bytes of the end (0 if the file begins there),
 * or -1 if there is none that close, or on a read error. */
static off_t sl_last_line_end(int fd, off_t size)
{
	char piece[4096];
	off_t at = size;

	while (at > 0 && size - at < SL_FRAGMENT_MAX) {
		size_t k = at < (off_t)sizeof(piece) ? (size_t)at : sizeof(piece);
		if (pread(fd, piece, k, at - (off_t)k) != (ssize_t)k)
			return -1;
		for (size_t i = k; i > 0; i--)
			if (piece[i - 1] == '\n')
				return at - (off_t)k + (off_t)i;
		at -= (off_t)k;
	}
	return at == 0 ? 0 : -1;
}

/* A file that ends inside a line (its writer was killed in the middle of
 * a write, or could not take back a line a full disk cut short): the first
 * line written here would be glued to it. Cut that rest of a line off; if
 * it cannot be (an append-only file, a line longer than any of ours), end
 * it with a '\n' so that at least the lines from here on are whole. */
static void sl_end_fragment(struct sl *s, int fd)
{
	struct stat st;
	char last;

	if (fstat(fd, &st) || !S_ISREG(st.st_mode) || st.st_size == 0 ||
	    pread(fd, &last, 1, st.st_size - 1) != 1 || last == '\n')
		return;
	off_t end = sl_last_line_end(fd, st.st_size);
	if (end >= 0 && ftruncate(fd, end) == 0) {
		s->host->log(s->self, DG_LOG_WARN, "'%s' ended inside a line (a writer stopped in the "
		             "middle of it): cut the %lld bytes after its last complete line", s->path,
		             (long long)(st.st_size - end));
		return;
	}
	const char *why = end >= 0 ? strerror(errno) : "no newline in its last 1 MiB";
	bool ended = write(fd, "\n", 1) == 1;
	s->host->log(s->self, DG_LOG_ERROR, "'%s' ends inside a line that cannot be cut (%s): %s",
	             s->path, why, ended ? "ended it with a newline"
	                                 : "the next line will be glued to it");
}

/* Open (or, reopen: on SIGUSR1, the old file staying in use if this
 * fails) the output file; an error names the file and the occasion.
 * Opened for reading too if it can be, to check how it ends. */
static int sl_open(struct sl *s, bool reopen)
{
	int fd = open(s->path, O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC, 0640);

	if (fd < 0 && errno == EACCES)
		fd = open(s->path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
	if (fd < 0) {
		if (reopen)
			s->host->log(s->self, DG_LOG_ERROR, "SIGUSR1: cannot reopen '%s': %s; "
			             "writing on to the file already open", s->path, strerror(errno));
		else
			s->host->log(s->self, DG_LOG_ERROR, "config.file: cannot open '%s': %s",
			             s->path, strerror(errno));
		return DG_ERROR;
	}
	sl_end_fragment(s, fd);
	if (s->fd >= 0)
		close(s->fd);
	s->fd = fd;
	return DG_OK;
}

/* SIGUSR1: logrotate moved the file; write what is buffered to the old
 * one, then open the path again. A line the old file got only part of and
 * that could not be taken back (mid_line: not a regular file, or another
 * writer appended) is not finished in the new one: it is dropped. */
static void sl_reopen(evutil_socket_t sig, short what, void *arg)
{
	struct sl *s = arg;

	(void)sig, (void)what;
	sl_flush(s);
	if (sl_open(s, true))
		return;
	/* A new file: whatever failed was the old one's (the retry timer of
	 * its error must not hold back the lines the new one can take). */
	s->failing = false;
	if (s->mid_line) {
		char *nl = memchr(s->buf, '\n', s->len); /* every line in buf ends with one */
		size_t skip = nl ? (size_t)(nl - s->buf) + 1 : s->len;
		memmove(s->buf, s->buf + skip, s->len - skip);
		s->len -= skip;
		s->mid_line = false;
		sl_count(s, SL_DROPPED, 1);
	}
	s->host->log(s->self, DG_LOG_INFO, "signal USR1: reopened '%s'", s->path);
	if (s->len)
		sl_flush(s);
}

static void sl_fini(void *state)
{
	struct sl *s = state;

	if (!s)
		return;
	s->closing = true; /* the host cancelled our timers; start none */
	if (s->fd >= 0) {
		sl_flush(s);
		if (s->len) {
			size_t lost = count_lines(s->buf, s->len);
			s->host->log(s->self, DG_LOG_ERROR, "'%s': %zu lines lost at shutdown", s->path, lost);
			sl_count(s, SL_DROPPED, (int64_t)lost);
		}
		if (s->opt.fsync_ms && s->unsynced && fdatasync(s->fd) < 0)
			s->host->log(s->self, DG_LOG_ERROR, "cannot sync '%s': %s", s->path, strerror(errno));
		close(s->fd);
	}
	if (s->ev_reopen)
		event_free(s->ev_reopen);
	free(s->buf);
	free(s);
}

static int sl_init(struct dg_instance *self, const struct dg_host *host, const json_t *config,
                   void **state)
{
	const struct sl_options *o = dg_util_options(self, host);
	struct sl *s;
	int rc;
	(void)config; /* checked and filled in by the host: o */

	*state = NULL;
	if (!o)
		return DG_EINVAL;
	if (!(s = calloc(1, sizeof(*s))))
		return DG_ENOMEM;
	s->host = host;
	s->self = self;
	s->fd = -1;
	s->opt = *o;
	s->path = o->file;
	if ((rc = sl_open(s, false)))
		goto fail;
	/* Room for flush_bytes and the longest line one datagram can make. */
	s->cap = (size_t)s->opt.flush_bytes + dg_syslog_line_max(SL_MAX_DATAGRAM, (size_t)s->opt.max_msg_bytes);
	rc = DG_ENOMEM;
	if (!(s->buf = malloc(s->cap)))
		goto fail;
	for (int m = 0; m < SL_NMETRICS; m++)
		s->metric[m] = dg_util_metric_new(host, self, sl_metrics[m].name, sl_metrics[m].help,
		                                  DG_METRIC_COUNTER);
	s->ev_reopen = evsignal_new(host->event_base(self), SIGUSR1, sl_reopen, s);
	if (!s->ev_reopen || evsignal_add(s->ev_reopen, NULL)) {
		host->log(self, DG_LOG_ERROR, "cannot watch SIGUSR1 (to reopen '%s')", s->path);
		rc = DG_ERROR;
		goto fail;
	}
	*state = s;
	return DG_OK;
fail:
	sl_fini(s);
	return rc;
}

/* "2026-11-23T13:42:14.272077Z" from the loop's cached clock (no system
 * call); the date part is formatted once per second. */
static const char *sl_received(struct sl *s, char *buf, size_t len)
{
	struct timeval tv;
	struct tm tm;

	if (event_base_gettimeofday_cached(s->host->event_base(s->self), &tv))
		tv = (struct timeval){ 0, 0 };
	if (tv.tv_sec != s->stamp_sec || !s->stamp[0]) {
		s->stamp_sec = tv.tv_sec;
		if (!gmtime_r(&s->stamp_sec, &tm) || !strftime(s->stamp, sizeof(s->stamp), "%Y-%m-%dT%H:%M:%S", &tm))
			snprintf(s->stamp, sizeof(s->stamp), "1970-01-01T00:00:00");
	}
	snprintf(buf, len, "%s.%06ldZ", s->stamp, (long)tv.tv_usec);
	return buf;
}

/* Append the datagram's line; write when the buffer is full enough. */
static int sl_take(struct sl *s, const struct dg_request *req)
{
	const unsigned char *d = req->packet.data;
	size_t n = req->packet.len > SL_MAX_DATAGRAM ? SL_MAX_DATAGRAM : req->packet.len;
	size_t room = dg_syslog_line_max(n, (size_t)s->opt.max_msg_bytes);
	char received[48], peer[80];
	bool truncated;

	/* While writes fail, the retry timer writes: not every datagram. */
	if (s->cap - s->len < room && !s->failing)
		sl_flush(s);
	if (s->cap - s->len < room) {
		sl_count(s, SL_DROPPED, 1); /* the file takes nothing: its error is counted */
		return DG_DONE;
	}
	if (dg_syslog_parse(d, n, &s->msg) == DG_SYSLOG_NONE)
		sl_count(s, SL_PARSE_ERRORS, 1);
	struct dg_syslog_line l = {
		.m = &s->msg, .raw = d, .raw_len = n,
		.received = sl_received(s, received, sizeof(received)),
		.peer = s->host->peer_format(req->peer, peer, sizeof(peer)),
		.max_msg = (size_t)s->opt.max_msg_bytes,
	};
	s->len += dg_syslog_format(&l, s->buf + s->len, &truncated);
	if (truncated)
		sl_count(s, SL_TRUNCATED, 1);
	if ((s->len >= (size_t)s->opt.flush_bytes || !s->opt.flush_ms) && !s->failing)
		sl_flush(s);
	else if (!s->flush_timer)
		s->flush_timer = s->host->timer_start(s->self, (unsigned)s->opt.flush_ms, sl_flush_timer, s);
	return DG_DONE;
}

static int sl_on_packet(void *state, const struct dg_request *req)
{
	return sl_take(state, req);
}

/* The raw codec rejects nothing today; should a datagram come here, it is
 * written all the same (unparsed, with its error). */
static int sl_on_error(void *state, const struct dg_request *req, const struct dg_parse_error *err)
{
	(void)err;
	return sl_take(state, req);
}

DG_PLUGIN_EXPORT const struct dg_plugin dgramd_plugin = {
	DG_PLUGIN_HEADER,
	.name = "syslog",
	.version = "1.0",
	.init = sl_init,
	.fini = sl_fini,
	.on_packet = sl_on_packet,
	.on_error = sl_on_error,
	.options = sl_options,
	.options_size = sizeof(struct sl_options),
};
