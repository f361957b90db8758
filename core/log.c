/* Logging that can neither kill nor block the server: SIGPIPE and SIGXFSZ
 * are ignored (a write past the file size limit fails with EFBIG instead),
 * the log is written without waiting (a pipe or terminal on stderr is
 * reopened non-blocking, a socket or the syslog socket is sent to with
 * MSG_DONTWAIT, a file is appended to), and a line the reader cannot take
 * now is dropped and counted. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "log.h"
#include "ratelimit.h"

enum log_mode {
	LOG_PLAIN,  /* a regular file (or unknown): write(2) never waits on a reader */
	LOG_NONBLOCK, /* our own non-blocking description of a pipe or terminal */
	LOG_SOCKET, /* send(MSG_DONTWAIT) */
	LOG_SYSLOG, /* a datagram to the syslog socket, MSG_DONTWAIT, "<PRI>..." lines */
};

static int log_level = DG_LOG_INFO;
static const char *log_prefix = "";
static int log_fd = STDERR_FILENO;
static enum log_mode log_mode = LOG_PLAIN;
static unsigned long log_dropped;     /* lines lost since start */
static unsigned long log_unreported;  /* lines lost since the last one that was written */
static unsigned log_patience_ms;      /* see dg_log_set_patience() */
static char log_path[4096];           /* log.target: a file, or the syslog socket */

static const char *const level_names[] = { "error", "warn", "info", "debug" };

void dg_log_set_prefix(const char *prefix)
{
	log_prefix = prefix ? prefix : "";
}

void dg_log_set_level(int level)
{
	log_level = level;
}

int dg_log_get_level(void)
{
	return log_level;
}

int dg_log_level_parse(const char *name)
{
	for (int i = 0; i < (int)(sizeof(level_names) / sizeof(level_names[0])); i++)
		if (!strcmp(name, level_names[i]))
			return i;
	return -1;
}

/* libevent's own messages ("Error from accept() call: ..." once per
 * failed accept, say) are lines of ours, at a limited rate: what is held
 * back is counted in log_dropped and said in the next one. */
static void from_libevent(int severity, const char *msg)
{
	static const int levels[] = { DG_LOG_DEBUG, DG_LOG_INFO, DG_LOG_WARN, DG_LOG_ERROR };
	static struct dg_ratelimit rl = DG_RATELIMIT_INIT(10, 10);
	int level = severity >= 0 && severity < 4 ? levels[severity] : DG_LOG_ERROR;
	unsigned long held;

	if (level > log_level)
		return;
	if (!dg_ratelimit_allow(&rl, time(NULL), &held)) {
		log_dropped++;
		return;
	}
	if (held)
		dg_log(level, "libevent: %s (%lu earlier messages of libevent's were not logged)", msg, held);
	else
		dg_log(level, "libevent: %s", msg);
}

int dg_log_init(void)
{
	struct stat st;

	event_set_log_callback(from_libevent);

	/* A reader that goes away, or a file at the size limit (RLIMIT_FSIZE:
	 * the log's, or a plugin's such as syslog's), must cost log lines or
	 * a failed write (EFBIG), not the process. Inherited by every child. */
	if (signal(SIGPIPE, SIG_IGN) == SIG_ERR || signal(SIGXFSZ, SIG_IGN) == SIG_ERR)
		return DG_ERROR;
	if (fstat(STDERR_FILENO, &st) < 0)
		return DG_OK; /* no stderr: writes fail and are counted */
	if (S_ISSOCK(st.st_mode)) {
		log_mode = LOG_SOCKET;
		return DG_OK;
	}
	if (!S_ISFIFO(st.st_mode) && !S_ISCHR(st.st_mode))
		return DG_OK;
	/* Linux: opening /proc/self/fd/2 of a pipe or a terminal gives a new
	 * open file description, so O_NONBLOCK stays ours and never reaches
	 * the shell or supervisor that shares the original one. */
	int fd = open("/proc/self/fd/2", O_WRONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
	if (fd >= 0) {
		log_fd = fd;
		log_mode = LOG_NONBLOCK;
		return DG_OK;
	}
	/* No /proc (or a FIFO without a reader): make stderr itself
	 * non-blocking rather than risk stalling the event loop. */
	int fl = fcntl(STDERR_FILENO, F_GETFL);
	if (fl >= 0 && fcntl(STDERR_FILENO, F_SETFL, fl | O_NONBLOCK) == 0)
		log_mode = LOG_NONBLOCK;
	return DG_OK;
}

/* The file or syslog socket of log_path into a new fd (not yet in use). */
static int open_target(enum log_mode mode, int *fd)
{
	if (mode == LOG_PLAIN) {
		*fd = open(log_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY, 0640);
		return *fd < 0 ? -1 : 0;
	}
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	if (strlen(log_path) >= sizeof(sun.sun_path)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	memcpy(sun.sun_path, log_path, strlen(log_path) + 1);
	*fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (*fd < 0)
		return -1;
	if (connect(*fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
		int e = errno;
		close(*fd);
		errno = e;
		return -1;
	}
	return 0;
}

int dg_log_open(const char *target, const char *syslog_socket, char *err, size_t errlen)
{
	enum log_mode mode;
	int fd;

	if (!target || !strcmp(target, "stderr"))
		return DG_OK;
	mode = strcmp(target, "syslog") ? LOG_PLAIN : LOG_SYSLOG;
	snprintf(log_path, sizeof(log_path), "%s", mode == LOG_SYSLOG ? syslog_socket : target);
	if (open_target(mode, &fd)) {
		snprintf(err, errlen, "cannot open the log %s '%s': %s",
		         mode == LOG_SYSLOG ? "socket" : "file", log_path, strerror(errno));
		log_path[0] = '\0';
		return DG_ERROR;
	}
	if (log_fd != STDERR_FILENO)
		close(log_fd);
	log_fd = fd;
	log_mode = mode;
	return DG_OK;
}

int dg_log_reopen(void)
{
	int fd;

	if (!log_path[0])
		return DG_OK; /* stderr: nothing to reopen */
	if (open_target(log_mode, &fd)) {
		int e = errno;
		dg_log(DG_LOG_ERROR, "cannot reopen the log '%s' (still writing to the old one): %s",
		       log_path, strerror(e));
		return DG_ERROR;
	}
	/* dup2 keeps the descriptor number: nothing else needs to know. */
	if (dup2(fd, log_fd) < 0) {
		close(fd);
		return DG_ERROR;
	}
	close(fd);
	return DG_OK;
}

void dg_log_set_patience(unsigned ms)
{
	log_patience_ms = ms;
}

unsigned long dg_log_dropped(void)
{
	return log_dropped;
}

static ssize_t put(const char *buf, size_t len)
{
	if (log_mode == LOG_SYSLOG) {
		ssize_t n = send(log_fd, buf, len, MSG_DONTWAIT | MSG_NOSIGNAL);
		/* syslogd restarted: its socket is new; connect again, once. */
		if (n < 0 && (errno == ECONNREFUSED || errno == ENOTCONN) && dg_log_reopen() == DG_OK)
			n = send(log_fd, buf, len, MSG_DONTWAIT | MSG_NOSIGNAL);
		return n;
	}
	if (log_mode == LOG_SOCKET)
		return send(log_fd, buf, len, MSG_DONTWAIT | MSG_NOSIGNAL);
	return write(log_fd, buf, len);
}

/* One line, one write (lines stay under PIPE_BUF, so a pipe takes all or
 * nothing). Without patience a full pipe drops the line at once. */
static bool write_line(const char *buf, size_t len)
{
	struct timespec start = { 0, 0 }, now;
	bool started = false;

	for (;;) {
		ssize_t n = put(buf, len);
		if (n == (ssize_t)len)
			return true;
		if (n >= 0)
			return false; /* a stream socket took part of it: the rest is lost */
		if (errno == EINTR)
			continue;
		if ((errno != EAGAIN && errno != EWOULDBLOCK) || !log_patience_ms)
			return false;
		clock_gettime(CLOCK_MONOTONIC, &now);
		if (!started) {
			start = now;
			started = true;
		}
		long waited = (now.tv_sec - start.tv_sec) * 1000 + (now.tv_nsec - start.tv_nsec) / 1000000;
		if (waited >= (long)log_patience_ms)
			return false;
		struct pollfd p = { .fd = log_fd, .events = POLLOUT };
		if (poll(&p, 1, (int)(log_patience_ms - (unsigned long)waited)) < 0 && errno != EINTR)
			return false;
	}
}

static int format_line(char *out, size_t cap, int level, const char *msg, bool cut)
{
	/* syslog(3)'s local form: facility daemon (3), severity by level. */
	static const int severity[] = { 3, 4, 6, 7 };
	struct timeval tv;
	struct tm tm;
	char ts[32];

	gettimeofday(&tv, NULL);
	localtime_r(&tv.tv_sec, &tm);
	if (log_mode == LOG_SYSLOG) {
		strftime(ts, sizeof(ts), "%b %e %H:%M:%S", &tm);
		return snprintf(out, cap, "<%d>%s dgramd[%ld]: %s%s%s", 3 * 8 + severity[level], ts,
		                (long)getpid(), log_prefix, msg, cut ? "..." : "");
	}
	strftime(ts, sizeof(ts), "%Y-%m-%d %H:%M:%S", &tm);
	return snprintf(out, cap, "%s.%03ld dgramd[%s]: %s%s%s\n", ts, (long)tv.tv_usec / 1000,
	                level_names[level], log_prefix, msg, cut ? "..." : "");
}

/* Last line of defence, whatever the origin of a message: a control byte
 * (a newline would start a forged line) becomes '?'. Text from the network
 * is escaped readably by its caller with dg_log_escape(). */
static void defuse(char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			*s = '?';
}

DG_PRINTF(2, 0)
static void emit(int level, const char *fmt, va_list ap)
{
	char msg[2048], line[2200];

	if (level < 0)
		level = 0;
	if (level > DG_LOG_DEBUG)
		level = DG_LOG_DEBUG;
	int n = vsnprintf(msg, sizeof(msg), fmt, ap);
	if (n < 0)
		return;
	defuse(msg);
	if (log_unreported) {
		char note[128];
		snprintf(note, sizeof(note), "log: %lu lines were dropped (the log reader was too slow "
		         "or gone)", log_unreported);
		int m = format_line(line, sizeof(line), DG_LOG_WARN, note, false);
		if (m > 0 && write_line(line, (size_t)m))
			log_unreported = 0;
	}
	n = format_line(line, sizeof(line), level, msg, (size_t)n >= sizeof(msg));
	if (n <= 0)
		return;
	if ((size_t)n >= sizeof(line))
		n = (int)sizeof(line) - 1;
	if (!write_line(line, (size_t)n)) {
		log_dropped++;
		log_unreported++;
	}
}

void dg_vlog(int level, const char *fmt, va_list ap)
{
	if (level > log_level)
		return;
	emit(level, fmt, ap);
}

void dg_log(int level, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	dg_vlog(level, fmt, ap);
	va_end(ap);
}

void dg_log_always(int level, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	emit(level, fmt, ap);
	va_end(ap);
}

static bool printable(unsigned char ch)
{
	return ch >= 0x20 && ch < 0x7f && ch != '\\';
}

const char *dg_log_escape(const void *text, size_t len, char *buf, size_t cap)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *s = text;
	size_t o = 0, need = 0;

	if (!cap)
		return buf;
	for (size_t i = 0; i < len; i++)
		need += printable(s[i]) ? 1 : 4;
	/* What does not fit is cut whole-escape, with room kept for "...". */
	size_t room = need < cap ? cap - 1 : (cap > 3 ? cap - 4 : 0);
	for (size_t i = 0; i < len; i++) {
		unsigned char ch = s[i];
		if (o + (printable(ch) ? 1 : 4) > room)
			break;
		if (printable(ch)) {
			buf[o++] = (char)ch;
		} else {
			buf[o++] = '\\';
			buf[o++] = 'x';
			buf[o++] = hex[ch >> 4];
			buf[o++] = hex[ch & 15];
		}
	}
	if (need >= cap && cap > 3) {
		memcpy(buf + o, "...", 3);
		o += 3;
	}
	buf[o] = '\0';
	return buf;
}
