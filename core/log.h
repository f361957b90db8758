/* Logging to stderr with levels, and a rate limiter for per-datagram
 * messages (one bad datagram per line would let a flood fill the disk).
 * Logging never kills or blocks the process: SIGPIPE is ignored and a line
 * the log reader cannot take at once is dropped and counted. */
#ifndef DG_LOG_H
#define DG_LOG_H

#include <stdarg.h>
#include <stdbool.h>
#include <time.h>

#include <dgramd/plugin.h> /* enum dg_log_level */

/* Once, first thing in main(): ignore SIGPIPE and make the log writes
 * non-blocking (a pipe or terminal on stderr is reopened non-blocking via
 * /proc/self/fd/2, so the shared description keeps its flags; a socket is
 * written with MSG_DONTWAIT). DG_OK, or DG_ERROR if SIGPIPE cannot be
 * ignored. */
int dg_log_init(void);

/* From now on a line the reader cannot take at once may wait up to ms
 * (in total per line) before it is dropped: for the last lines at exit,
 * when no datagram is waiting for the loop. 0 (the default): never wait. */
void dg_log_set_patience(unsigned ms);

/* log.target: "stderr" (or NULL: nothing changes), "syslog" (datagrams to
 * syslog_socket, facility daemon, never waiting), or a file path (appended,
 * created 0640). DG_OK, or DG_ERROR with "cannot open the log ..." in err;
 * the log stays where it was. */
int dg_log_open(const char *target, const char *syslog_socket, char *err, size_t errlen);

/* Open the file (or connect to the syslog socket) again, on the same
 * descriptor: SIGUSR1, after logrotate moved the file. DG_OK, or DG_ERROR
 * (logged) and the old one stays in use. */
int dg_log_reopen(void);
#define DG_LOG_EXIT_PATIENCE_MS 2000

/* Lines dropped so far because the log could not take them. */
unsigned long dg_log_dropped(void);

void dg_log_set_level(int level);

/* Put text (e.g. "worker 2: ") before every message; NULL for none. The
 * string must stay valid. */
void dg_log_set_prefix(const char *prefix);
int dg_log_get_level(void);

/* "error", "warn", "info", "debug" -> level; -1 if unknown. */
int dg_log_level_parse(const char *name);

void dg_log(int level, const char *fmt, ...) DG_PRINTF(2, 3);
void dg_vlog(int level, const char *fmt, va_list ap) DG_PRINTF(2, 0);

/* dg_log() whatever the level set: for the counters at exit, which are
 * logged at every log.level. */
void dg_log_always(int level, const char *fmt, ...) DG_PRINTF(2, 3);

/* Copy len bytes of text (from the network: not trusted, not terminated)
 * into buf, cap bytes, always terminated: printable ASCII as is, every
 * other byte and '\\' as \xHH; "..." marks a cut. Returns buf. The one
 * way network bytes reach the log. */
const char *dg_log_escape(const void *text, size_t len, char *buf, size_t cap);

#define dg_log_enabled(level) ((level) <= dg_log_get_level())

#endif
