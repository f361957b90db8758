/* Live metrics over HTTP (libevent's evhttp): the Prometheus text format at
 * /metrics and the same figures as JSON at /stats. The figures are read
 * where the workers keep them (the counters, in shared memory when there
 * are workers) at each request; nothing is done per datagram. */
#ifndef DG_METRICS_H
#define DG_METRICS_H

#include <stddef.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "conf.h"
#include "counters.h"

/* Where the figures come from: worker w (0-based) and listener l. */
struct dg_metrics_src {
	unsigned n_workers;   /* 1 without a master */
	unsigned n_listeners;
	const struct dg_config *cfg; /* listener names */
	const struct dg_counters *(*counters)(void *arg, unsigned w, unsigned l);
	/* Called once before each request's figures are read (may be NULL):
	 * a source that adds several up takes its snapshot here. */
	void (*snapshot)(void *arg);
	void *arg;
};

/* Connections served at once: at this many, a new one closes the oldest
 * (a slowloris cannot hold them all; a scrape is answered in milliseconds,
 * so it is not the oldest for long). */
#define DG_METRICS_MAX_CONNS 16
/* A connection idle (no byte read or written) this long is closed. */
#define DG_METRICS_TIMEOUT_S 5
/* A connection is closed this long after it was accepted, whatever it is
 * doing (reading a request, writing an answer, idle between requests): a
 * scrape takes milliseconds, and one that trickles bytes is never idle (a
 * slowloris). */
#define DG_METRICS_LIFE_S 5

struct dg_metrics;

/* A listening TCP socket for addr (the config's address syntax), so that a
 * bad metrics.bind fails the start. Returns the fd, or -1 after writing
 * "cannot listen on 'ADDR': reason" into err. */
int dg_metrics_listen(const struct dg_addr *addr, char *err, size_t errlen);

/* The address fd is bound to (the real port for port 0), formatted. */
const char *dg_metrics_addr(int fd, char *buf, size_t len);

/* Serve src on fd (taken over) from base. NULL on failure (logged). src is
 * copied; what it points to must outlive the server. At most
 * DG_METRICS_MAX_CONNS connections (a new one closes the oldest), each
 * closed DG_METRICS_LIFE_S after accept, or DG_METRICS_TIMEOUT_S idle (such
 * closes are logged at a limited rate); an accept error (EMFILE...) pauses
 * accepting for a moment (logged at a limited rate) instead of retrying at
 * once. */
struct dg_metrics *dg_metrics_new(struct event_base *base, int fd, const struct dg_metrics_src *src);

/* Stop accepting; the connections open are answered (their replies say
 * "Connection: close"), and drained(arg) is called once none is left (at
 * once if none is open). drained may be NULL. */
void dg_metrics_stop(struct dg_metrics *m, void (*drained)(void *arg), void *arg);
void dg_metrics_free(struct dg_metrics *m);

/* The fd it serves on. */
int dg_metrics_fd(const struct dg_metrics *m);

/* The two bodies, appended to out. 0 or -1 (out of memory). */
int dg_metrics_prometheus(const struct dg_metrics_src *src, struct evbuffer *out);
int dg_metrics_json(const struct dg_metrics_src *src, struct evbuffer *out);

#endif
