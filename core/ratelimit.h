/* A limit on log lines: stand-alone, for whoever logs per datagram or per
 * call (listeners, the host table, metrics, log.c itself). The limit on
 * traffic is throttle.h. */
#ifndef DG_RATELIMIT_H
#define DG_RATELIMIT_H

#include <stdbool.h>
#include <time.h>

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
