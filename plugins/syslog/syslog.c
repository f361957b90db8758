/* syslog: receives RFC 5424 and RFC 3164 messages (raw codec, no replies)
 * and appends each as one JSON line to a file.
 *
 * config:
 *   "file": "/var/log/dgramd/syslog.jsonl"  required; opened O_APPEND
 *   "flush_bytes": 65536  write the buffer once it holds this much
 *   "flush_ms": 100       ... or this long after its first line (0: write
 *                         each datagram's line at once)
 *   "fsync_ms": 0         fdatasync this long after a write (0: never; the
 *                         kernel writes the page cache back)
 *   "max_msg_bytes": 0    cut msg (or raw) after this many bytes and add
 *                         "truncated": original length (0: never cut)
 *
 * Every datagram ends as one line in the file or in a counter: written
 * (lines in the file), dropped (lines lost while the file could not be
 * written), parse_errors (written raw), truncated, write_errors (failed
 * write calls). SIGUSR1 reopens the file (after logrotate has moved it).
 * Several workers, or listeners, may append to one file: each write holds
 * whole lines, and O_APPEND keeps them apart.
 */
#define _POSIX_C_SOURCE 200809L /* strdup, fdatasync; plugins build without config.h */

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <jansson.h>
#include <dgramd/plugin.h>

#include "parse.h"

#define SL_MAX_DATAGRAM 65535 /* a UDP payload can be no larger */
#define SL_RETRY_MS 1000      /* after a failed write, with flush_ms 0 */
#define SL_ERR_LOG_SECS 10    /* at most one write error line per this */

struct sl_options {
	long long flush_bytes, flush_ms, fsync_ms, max_msg_bytes;
};

enum sl_metric { SL_WRITTEN, SL_PARSE_ERRORS, SL_TRUNCATED, SL_WRITE_ERRORS, SL_DROPPED, SL_NMETRICS };

static const struct {
	const char *name, *help;
} sl_metrics[SL_NMETRICS] = {
	[SL_WRITTEN] = { "written", "Lines written to the file" },
	[SL_PARSE_ERRORS] = { "parse_errors", "Messages that were neither RFC 5424 nor RFC 3164 (written raw)" },
	[SL_TRUNCATED] = { "truncated", "Lines whose msg was cut at max_msg_bytes" },
	[SL_WRITE_ERRORS] = { "write_errors", "Failed write calls (the lines stay buffered)" },
	[SL_DROPPED] = { "dropped", "Lines lost: the buffer was full of lines the file did not take" },
};

struct sl {
	const struct dg_host *host;
	struct dg_instance *self;
	struct sl_options opt;
	char *path;
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
	time_t err_logged; /* when a write error was last logged */
	unsigned long long err_quiet; /* errors since, not logged */
	time_t stamp_sec;  /* the second stamp[] holds */
	char stamp[32];    /* "2026-11-23T13:42:14" */
	struct dg_syslog_msg msg; /* ~5 KiB: here, not on the stack */
};

static const struct {
	const char *name;
	size_t off;
	long long min, max, def;
} sl_int_opts[] = {
	{ "flush_bytes", offsetof(struct sl_options, flush_bytes), 1, 16777216, 65536 },
	{ "flush_ms", offsetof(struct sl_options, flush_ms), 0, 60000, 100 },
	{ "fsync_ms", offsetof(struct sl_options, fsync_ms), 0, 3600000, 0 },
	{ "max_msg_bytes", offsetof(struct sl_options, max_msg_bytes), 0, SL_MAX_DATAGRAM, 0 },
};
#define SL_N_INT_OPTS (sizeof(sl_int_opts) / sizeof(sl_int_opts[0]))

static void sl_count(struct sl *s, enum sl_metric m, int64_t n)
{
	s->host->metric_add(s->metric[m], n);
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
	time_t now = time(NULL);

	sl_count(s, SL_WRITE_ERRORS, 1);
	if (s->err_logged && now - s->err_logged < SL_ERR_LOG_SECS) {
		s->err_quiet++;
		return;
	}
	s->host->log(s->self, DG_LOG_ERROR, "cannot write '%s': %s (%zu bytes kept to retry; "
	             "%llu more errors since the last report)", s->path, strerror(err), s->len,
	             s->err_quiet);
	s->err_logged = now;
	s->err_quiet = 0;
}

static void sl_sync(void *arg)
{
	struct sl *s = arg;

	s->sync_timer = NULL;
	if (s->unsynced && fdatasync(s->fd) < 0)
		sl_write_error(s, errno);
	s->unsynced = false;
}

static void sl_flush_timer(void *arg);

/* Write the buffer. What the file does not take stays, for the next
 * flush (a timer retries). */
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
	if (off) {
		sl_count(s, SL_WRITTEN, (int64_t)count_lines(s->buf, off));
		s->mid_line = s->buf[off - 1] != '\n';
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

static int sl_open(struct sl *s)
{
	int fd = open(s->path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);

	if (fd < 0) {
		s->host->log(s->self, DG_LOG_ERROR, "config.file: cannot open '%s': %s", s->path,
		             strerror(errno));
		return DG_ERROR;
	}
	if (s->fd >= 0)
		close(s->fd);
	s->fd = fd;
	return DG_OK;
}

/* SIGUSR1: logrotate moved the file; write what is buffered to the old
 * one, then open the path again. A line the old file got only part of is
 * not finished in the new one: it is dropped. */
static void sl_reopen(evutil_socket_t sig, short what, void *arg)
{
	struct sl *s = arg;

	(void)sig, (void)what;
	sl_flush(s);
	if (sl_open(s))
		return;
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
	free(s->path);
	free(s);
}

static int sl_int_option(struct sl *s, const char *key, const json_t *v)
{
	for (size_t i = 0; i < SL_N_INT_OPTS; i++) {
		if (strcmp(key, sl_int_opts[i].name))
			continue;
		long long *dst = (long long *)(void *)((char *)&s->opt + sl_int_opts[i].off);
		if (!json_is_integer(v) || json_integer_value(v) < sl_int_opts[i].min ||
		    json_integer_value(v) > sl_int_opts[i].max) {
			s->host->log(s->self, DG_LOG_ERROR, "config.%s: expected an integer from %lld to %lld",
			             key, sl_int_opts[i].min, sl_int_opts[i].max);
			return DG_EINVAL;
		}
		*dst = json_integer_value(v);
		return DG_OK;
	}
	s->host->log(s->self, DG_LOG_ERROR, "config.%s: unknown key (known: file, flush_bytes, "
	             "flush_ms, fsync_ms, max_msg_bytes)", key);
	return DG_EINVAL;
}

static int sl_configure(struct sl *s, const json_t *config)
{
	const char *key;
	json_t *v;

	for (size_t i = 0; i < SL_N_INT_OPTS; i++)
		*(long long *)(void *)((char *)&s->opt + sl_int_opts[i].off) = sl_int_opts[i].def;
	if (!json_is_object(config)) {
		s->host->log(s->self, DG_LOG_ERROR, "config: expected an object with \"file\"");
		return DG_EINVAL;
	}
	json_object_foreach((json_t *)config, key, v) {
		if (!strcmp(key, "file")) {
			if (!json_is_string(v) || !json_string_length(v) ||
			    strlen(json_string_value(v)) != json_string_length(v)) {
				s->host->log(s->self, DG_LOG_ERROR, "config.file: expected a path");
				return DG_EINVAL;
			}
			free(s->path);
			if (!(s->path = strdup(json_string_value(v))))
				return DG_ENOMEM;
		} else if (sl_int_option(s, key, v)) {
			return DG_EINVAL;
		}
	}
	if (!s->path) {
		s->host->log(s->self, DG_LOG_ERROR, "config.file: required (the JSON lines file)");
		return DG_EINVAL;
	}
	return DG_OK;
}

static int sl_init(struct dg_instance *self, const struct dg_host *host, const json_t *config,
                   void **state)
{
	struct sl *s = calloc(1, sizeof(*s));
	int rc;

	*state = NULL;
	if (!s)
		return DG_ENOMEM;
	s->host = host;
	s->self = self;
	s->fd = -1;
	if ((rc = sl_configure(s, config)) || (rc = sl_open(s)))
		goto fail;
	/* Room for flush_bytes and the longest line one datagram can make. */
	s->cap = (size_t)s->opt.flush_bytes + dg_syslog_line_max(SL_MAX_DATAGRAM);
	rc = DG_ENOMEM;
	if (!(s->buf = malloc(s->cap)))
		goto fail;
	for (int m = 0; m < SL_NMETRICS; m++)
		if (DG_HOST_HAS(host, metric_new))
			s->metric[m] = host->metric_new(self, sl_metrics[m].name, sl_metrics[m].help,
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
	char received[48], peer[80];
	bool truncated;

	/* While writes fail, the retry timer writes: not every datagram. */
	if (s->cap - s->len < dg_syslog_line_max(n) && !s->failing)
		sl_flush(s);
	if (s->cap - s->len < dg_syslog_line_max(n)) {
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
};
