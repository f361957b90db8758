/* Logging to stderr with levels, and a rate limiter for per-datagram
 * messages (one bad datagram per line would let a flood fill the disk). */
#ifndef DG_LOG_H
#define DG_LOG_H

#include <stdarg.h>
#include <stdbool.h>
#include <time.h>

#include <dgramd/plugin.h> /* enum dg_log_level */

void dg_log_set_level(int level);

/* Put text (e.g. "worker 2: ") before every message; NULL for none. The
 * string must stay valid. */
void dg_log_set_prefix(const char *prefix);
int dg_log_get_level(void);

/* "error", "warn", "info", "debug" -> level; -1 if unknown. */
int dg_log_level_parse(const char *name);

void dg_log(int level, const char *fmt, ...) DG_PRINTF(2, 3);
void dg_vlog(int level, const char *fmt, va_list ap) DG_PRINTF(2, 0);

#define dg_log_enabled(level) ((level) <= dg_log_get_level())

/* At most `burst` messages per `interval` seconds. When a new interval
 * opens after messages were held back, dg_ratelimit_allow() reports how
 * many in *suppressed so the caller can say so in the next message. */
struct dg_ratelimit {
	unsigned interval; /* seconds */
	unsigned burst;
	time_t start;
	unsigned printed;
	unsigned long suppressed;
};

#define DG_RATELIMIT_INIT(interval_s, burst_n) { .interval = (interval_s), .burst = (burst_n) }

/* now: a cached clock (the event loop's), so no syscall per call. */
bool dg_ratelimit_allow(struct dg_ratelimit *rl, time_t now, unsigned long *suppressed);

#endif
