/* Worker lifecycle: build everything that can fail before binding, bind,
 * run, stop on a signal after pending requests finish, report, free.
 *
 * The top of server -> dispatch -> tx: the loop's events call dispatch and
 * tx, post the work they leave (dg_server_post_work), and the post event
 * runs it and sends the batch (dg_server_after_events: the one flush point). */
#include "config.h"

#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "addr.h"
#include "dispatch.h"
#include "handover.h"
#include "host.h"
#include "log.h"
#include "notify.h"
#include "options.h"
#include "privs.h"
#include "ptimer.h"
#include "ratelimit.h"
#include "server.h"
#include "sock.h"
#include "tx.h"

uint64_t dg_server_clock_monotonic(void *arg)
{
	struct timespec ts;
	(void)arg;

	/* A vDSO clock: no system call. Rate limits only need seconds. */
	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

void dg_server_clock(struct dg_server *srv)
{
	uint64_t ms = srv->clock(srv->clock_arg);

	if (ms > srv->now_ms)
		srv->now_ms = ms;
	srv->now = (time_t)(srv->now_ms / 1000);
}

/* The heap's earliest due time moved: one libevent timer, re-armed. The
 * delay is taken from the cached clock, as the due time was. */
static void timers_wake(void *arg, uint64_t due_ms)
{
	struct dg_server *srv = arg;
	uint64_t in = due_ms > srv->now_ms ? due_ms - srv->now_ms : 0;
	struct timeval tv = { .tv_sec = (time_t)(in / 1000), .tv_usec = (suseconds_t)(in % 1000) * 1000 };

	if (srv->ev_timers)
		evtimer_add(srv->ev_timers, &tv);
}

static void on_timers(evutil_socket_t fd, short what, void *arg)
{
	struct dg_server *srv = arg;
	(void)fd, (void)what;

	dg_server_clock(srv);
	/* libevent fired at or after the time asked for; the coarse clock
	 * may not show it yet (it lags by up to a tick). */
	if (srv->timers.wake_ms != UINT64_MAX && srv->now_ms < srv->timers.wake_ms) {
		srv->now_ms = srv->timers.wake_ms;
		srv->now = (time_t)(srv->now_ms / 1000);
	}
	dg_tmheap_run(&srv->timers, srv->now_ms);
	dg_server_post_work(srv);
}

static unsigned rx_read(struct dg_sock *s, unsigned budget);

/* Back into the event loop: the sockets taken out of it while their
 * replies went out (on_readable). */
static void unpark(struct dg_server *srv, struct dg_sock *s)
{
	if (!srv->stopping && event_add(s->ev_read, NULL)) {
		char a[64];
		dg_log(DG_LOG_ERROR, "listener '%s': cannot register '%s' with the event loop again",
		       s->l->conf->name, dg_addr_format((struct sockaddr *)&s->bound.ss, a, sizeof(a)));
	}
}

/* A parked socket is read again right after its replies went out, as long
 * as it has datagrams waiting, budget left and nothing queued to send:
 * under load no readiness round trip (epoll_wait, and the wakeup each sent
 * datagram costs while the socket is in epoll's set) per batch. Returns
 * whether anything was read. */
static bool reread(struct dg_server *srv)
{
	struct dg_fifo again;
	struct dg_slink *e;
	bool any = false;

	if (dg_fifo_empty(&srv->parked))
		return false;
	dg_server_clock(srv); /* sessions and deadlines see the time of this batch */
	dg_fifo_init(&again);
	while ((e = dg_fifo_pop(&srv->parked))) {
		struct dg_sock *s = dg_list_entry(e, struct dg_sock, park_link);
		unsigned n = 0;

		if (!srv->stopping && s->rx_left && !s->q_len)
			n = rx_read(s, s->rx_left);
		if (n) {
			s->rx_left -= n;
			dg_fifo_push(&again, &s->park_link);
			any = true;
		} else {
			unpark(srv, s);
		}
	}
	srv->parked = again;
	return any;
}

void dg_server_after_events(struct dg_server *srv)
{
	srv->posted = false;
	/* After a plugin's own callback, say: deadlines start from now. */
	dg_server_clock(srv);
	do {
		dg_dispatch_run_ready(srv);
		dg_tx_flush(srv);
	} while (reread(srv));
	/* Work made while it ran (a frame completed from there): next time. */
	dg_server_post_work(srv);
	dg_server_check_drained(srv);
}

static void on_post(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	dg_server_after_events(arg);
}

static void on_writable(evutil_socket_t fd, short what, void *arg)
{
	struct dg_sock *s = arg;
	(void)fd, (void)what;

	dg_tx_send_queued(s);
	dg_server_check_drained(s->l->srv);
}

/* One received datagram: its control messages, then dispatch. Without
 * pktinfo (a specific bind) the local address is the socket's own. */
static void rx_one(struct dg_sock *s, dg_mmsg *m, uint32_t *ovfl)
{
	struct msghdr *h = &m->msg_hdr;
	const struct sockaddr *local = (const struct sockaddr *)&s->bound.ss;
	union dg_sockaddr dst;

	if (h->msg_controllen) {
		memcpy(&dst, &s->bound.ss, s->bound.len < sizeof(dst) ? s->bound.len : sizeof(dst));
		dg_io_rx_cmsg(h, ovfl, &dst.sa);
		local = &dst.sa;
	}
	dg_dispatch(s->home, h->msg_iov->iov_base, m->msg_len, h->msg_flags, h->msg_name,
	            h->msg_namelen, local, s->bound.len);
}

/* Up to budget datagrams from s, in batches while they come full; each
 * is dispatched. Returns how many were read. */
static unsigned rx_read(struct dg_sock *s, unsigned budget)
{
	struct dg_listener *l = s->l;
	struct dg_server *srv = l->srv;
	uint32_t ovfl = s->rxq_ovfl;
	unsigned got = 0;

	/* Stopping, a worker reads only the sockets a reload's hand-over
	 * connected to its conversations' peers, and the listener sockets
	 * once more while it hands over. */
	while (got < budget && (!srv->stopping || s->home != s || srv->ho_open)) {
		unsigned want = budget - got < DG_RX_BATCH ? budget - got : DG_RX_BATCH;
		/* The kernel wrote namelen and flags only in the entries it
		 * filled; reset those, and every length when the listener's
		 * max_datagram differs from the last one's. */
		unsigned reset = srv->rx_len == l->conf->max_datagram ? srv->rx_used : DG_RX_BATCH;
		srv->rx_len = l->conf->max_datagram;
		for (unsigned i = 0; i < reset; i++) {
			srv->rx_iov[i].iov_len = srv->rx_len;
			srv->rx_msgs[i].msg_hdr.msg_namelen = sizeof(srv->rx_addr[i]);
			srv->rx_msgs[i].msg_hdr.msg_controllen = sizeof(srv->rx_cmsg[i]);
			srv->rx_msgs[i].msg_hdr.msg_flags = 0;
		}
		int n = dg_io_recv(s->fd, srv->rx_msgs, want);
		srv->rx_used = n > 0 ? (unsigned)n : 0;
		if (n < 0) {
			unsigned long sup;
			char a[64];
			if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR &&
			    dg_ratelimit_allow(&l->rl_rx, srv->now, &sup))
				dg_log(DG_LOG_WARN, "listener '%s': receive on '%s': %s", l->conf->name,
				       dg_addr_format((struct sockaddr *)&s->bound.ss, a, sizeof(a)),
				       strerror(errno));
			break;
		}
		for (int i = 0; i < n; i++)
			rx_one(s, &srv->rx_msgs[i], &ovfl);
		got += (unsigned)n;
		if ((unsigned)n < want)
			break;
	}
	/* The kernel's counter is cumulative per socket (and wraps). */
	l->c->rx_kernel_drops += (uint32_t)(ovfl - s->rxq_ovfl);
	s->rxq_ovfl = ovfl;
	return got;
}

static void on_readable(evutil_socket_t fd, short what, void *arg)
{
	struct dg_sock *s = arg;
	struct dg_server *srv = s->l->srv;
	unsigned got;
	(void)fd, (void)what;

	dg_server_clock(srv);
	got = rx_read(s, DG_RX_BUDGET);
	/* A busy socket leaves epoll's set while its replies go out: there,
	 * every datagram sent would wake epoll's callback for nothing (an
	 * EPOLLOUT nobody asked for, under a lock with interrupts off). It is
	 * read again after the flush, or put back (reread). A parked socket
	 * gets no readiness, so it never comes here twice. */
	if (got >= DG_RX_PARK_MIN && !srv->stopping && event_del(s->ev_read) == 0) {
		s->rx_left = DG_RX_BUDGET - got;
		dg_fifo_push(&srv->parked, &s->park_link);
	}
	dg_server_post_work(srv); /* the replies go out from there, with other sockets' */
}

/* fd: a bound socket to adopt (from the master), or -1 to bind here. */
static int sock_open(struct dg_listener *l, struct dg_sock *s, const struct dg_addr *addr, int fd)
{
	char a[64];

	s->l = l;
	s->home = s;
	s->fd = fd >= 0 ? fd : dg_sock_bind(l->conf, addr, true, &s->bound);
	if (s->fd < 0)
		return DG_ERROR;
	if (fd >= 0) {
		s->bound.len = sizeof(s->bound.ss);
		if (getsockname(s->fd, (struct sockaddr *)&s->bound.ss, &s->bound.len) < 0) {
			dg_log(DG_LOG_ERROR, "listener '%s': getsockname on '%s': %s", l->conf->name,
			       dg_addr_format((const struct sockaddr *)&addr->ss, a, sizeof(a)),
			       strerror(errno));
			return DG_ERROR;
		}
	}
	s->pktinfo = dg_sock_is_wildcard((const struct sockaddr *)&addr->ss);
	dg_addr_format((struct sockaddr *)&s->bound.ss, a, sizeof(a));
	/* An adopted socket may have dropped datagrams before (a restarted
	 * worker's, an older generation's): the kernel's counter is
	 * cumulative, so count from where it stands now. */
	if (fd >= 0 && dg_io_drops(s->fd, &s->rxq_ovfl) < 0)
		dg_log(DG_LOG_WARN, "listener '%s': cannot read the kernel's drop count on '%s' "
		       "(SO_MEMINFO): %s; rx_kernel_drops may count its earlier drops again",
		       l->conf->name, a, strerror(errno));
	s->ev_read = event_new(l->srv->base, s->fd, EV_READ | EV_PERSIST, on_readable, s);
	s->ev_write = event_new(l->srv->base, s->fd, EV_WRITE | EV_PERSIST, on_writable, s);
	if (!s->ev_read || !s->ev_write || event_add(s->ev_read, NULL)) {
		dg_log(DG_LOG_ERROR, "listener '%s': cannot register '%s' with the event loop",
		       l->conf->name, a);
		return DG_ERROR;
	}
	dg_log(DG_LOG_INFO, "listener '%s': listening on %s (codec %s, handler %s %s)",
	       l->conf->name, a, dg_codec_name(l->codec), l->plugin->name,
	       l->plugin->version ? l->plugin->version : "");
	return DG_OK;
}

/* The harness's socket stand-ins: the configured address, no descriptor. */
static void sock_stub(struct dg_listener *l, struct dg_sock *s, const struct dg_addr *addr)
{
	s->l = l;
	s->home = s;
	s->fd = -1;
	s->bound = *addr;
	s->pktinfo = dg_sock_is_wildcard((const struct sockaddr *)&addr->ss);
}

/* Log an error of server start; the harness also gets the first one. */
DG_PRINTF(2, 3)
static void init_error(const struct dg_server_hooks *hooks, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	dg_log(DG_LOG_ERROR, "%s", msg);
	if (hooks && hooks->err && hooks->errlen && !hooks->err[0])
		snprintf(hooks->err, hooks->errlen, "%s", msg);
}

/* The plugin's declared options, checked against its config and filled in
 * (host->options) before init(). */
static int listener_options(struct dg_server *srv, struct dg_listener *l,
                            const struct dg_listener_conf *lc, const struct dg_server_hooks *hooks)
{
	char where[512], err[1024];
	size_t size;
	const struct dg_option *table = dg_plugin_options(l->plugin, &size);

	if (!table)
		return DG_OK;
	snprintf(where, sizeof(where), "%s: listeners[%u].handler.config", srv->cfg->path,
	         (unsigned)(l - srv->listeners));
	if (dg_options_new(table, size, lc->plugin_config, where, &l->options, err, sizeof(err))) {
		init_error(hooks, "%s", err);
		return DG_ERROR;
	}
	return DG_OK;
}

/* -T shows what the plugin got: every declared option, defaults filled in. */
static int listener_show_options(struct dg_listener *l, struct dg_listener_conf *lc)
{
	if (!l->options)
		return DG_OK;
	json_t *shown = dg_options_dump(l->options);
	if (!shown) {
		dg_log(DG_LOG_ERROR, "listener '%s': out of memory", lc->name);
		return DG_ENOMEM;
	}
	json_decref(lc->plugin_shown);
	lc->plugin_shown = shown;
	return DG_OK;
}

/* Codec, plugin and plugin init for one listener: no socket yet. */
static int listener_init(struct dg_server *srv, struct dg_listener *l,
                         const struct dg_listener_conf *lc, const char *plugin_dir,
                         struct dg_counters *shared, const struct dg_server_hooks *hooks)
{
	char err[512], path[4096];
	int rc;

	l->c = shared ? shared : &l->own_c;
	l->inst.magic = DG_INSTANCE_MAGIC;
	l->inst.l = l;
	l->srv = srv;
	l->conf = lc;
	l->rl_parse = (struct dg_ratelimit)DG_RATELIMIT_INIT(5, 10);
	l->rl_handler = (struct dg_ratelimit)DG_RATELIMIT_INIT(5, 10);
	l->rl_tx = (struct dg_ratelimit)DG_RATELIMIT_INIT(5, 10);
	l->rl_rx = (struct dg_ratelimit)DG_RATELIMIT_INIT(5, 10);
	l->rl_stale = (struct dg_ratelimit)DG_RATELIMIT_INIT(5, 10);
	l->rl_amp = (struct dg_ratelimit)DG_RATELIMIT_INIT(60, 1);
	l->rl_handover = (struct dg_ratelimit)DG_RATELIMIT_INIT(5, 10);
	if (dg_codec_new_sized(lc->codec, lc->max_datagram, &l->codec, err, sizeof(err))) {
		init_error(hooks, "%s: listener '%s': codec%s", srv->cfg->path, lc->name, err);
		return DG_ERROR;
	}
	if (hooks && hooks->plugin) {
		rc = dg_loader_adopt(&srv->loader, hooks->plugin, &l->plugin, err, sizeof(err));
	} else {
		dg_plugin_path(lc->plugin, plugin_dir, srv->cfg->dir, path, sizeof(path));
		rc = dg_loader_load(&srv->loader, path, &l->plugin, err, sizeof(err));
	}
	if (rc) {
		char near[64];
		bool hint = !(hooks && hooks->plugin) && access(path, F_OK) &&
		            dg_plugin_suggest(lc->plugin, plugin_dir, near, sizeof(near));
		init_error(hooks, "%s: listener '%s': %s%s%s%s", srv->cfg->path, lc->name, err,
		           hint ? " (did you mean '" : "", hint ? near : "", hint ? "'?)" : "");
		return DG_ERROR;
	}
	if (listener_options(srv, l, lc, hooks))
		return DG_ERROR;
	if (l->plugin->init &&
	    l->plugin->init(&l->inst, &dg_host_table, lc->plugin_config, &l->state) != DG_OK) {
		init_error(hooks, "%s: listener '%s': plugin '%s' refused its config "
		           "(listeners[].handler.config)", srv->cfg->path, lc->name, l->plugin->name);
		return DG_ERROR;
	}
	l->inited = true;
	l->prove = l->plugin->proves_source &&
	           (lc->amp_factor || lc->rate_limit.per_source.rate_u);
	if (dg_dispatch_sessions_init(l)) {
		init_error(hooks, "listener '%s': out of memory for its session table", lc->name);
		return DG_ENOMEM;
	}
	return DG_OK;
}

static int server_init(struct dg_server *srv, struct dg_config *cfg, const char *plugin_dir,
                       bool check_only, struct dg_counters *counters, int *fds,
                       const struct dg_server_hooks *hooks)
{
	memset(srv, 0, sizeof(*srv));
	srv->ctl = -1;
	srv->cfg = cfg;
	srv->mem.budget = cfg->memory_budget;
	srv->clock = hooks ? hooks->clock : dg_server_clock_monotonic;
	srv->clock_arg = hooks ? hooks->clock_arg : NULL;
	srv->send = hooks ? hooks->send : NULL;
	srv->send_arg = hooks ? hooks->send_arg : NULL;
	dg_server_clock(srv);
	dg_tmheap_init(&srv->timers, hooks ? NULL : timers_wake, srv);
	srv->base = event_base_new();
	if (!srv->base) {
		init_error(hooks, "cannot create the event loop");
		return DG_ERROR;
	}
	srv->ev_post = event_new(srv->base, -1, 0, on_post, srv);
	if (!hooks)
		srv->ev_timers = evtimer_new(srv->base, on_timers, srv);
	srv->listeners = calloc(cfg->n_listeners, sizeof(*srv->listeners));
	if (!srv->ev_post || (!hooks && !srv->ev_timers) || !srv->listeners ||
	    dg_reqtab_init(&srv->rt, DG_REQS_INITIAL, cfg->max_pending)) {
		init_error(hooks, "out of memory");
		return DG_ENOMEM;
	}
	if (dg_host_register(srv))
		return DG_ERROR;
	srv->rt.id = srv->id;
	for (unsigned i = 0; i < cfg->n_listeners; i++) {
		srv->n_listeners++;
		if (listener_init(srv, &srv->listeners[i], &cfg->listeners[i],
		                  cfg->plugin_dir ? cfg->plugin_dir : plugin_dir,
		                  counters ? &counters[i] : NULL, hooks))
			return DG_ERROR;
		if (check_only && listener_show_options(&srv->listeners[i], &cfg->listeners[i]))
			return DG_ENOMEM;
		if (cfg->listeners[i].max_datagram > srv->bufsize)
			srv->bufsize = cfg->listeners[i].max_datagram;
	}
	if (check_only)
		return DG_OK;
	dg_membudget_serving(true);
	srv->rx_buf = malloc(DG_RX_BATCH * srv->bufsize);
	srv->tx_buf = malloc(DG_TX_BATCH * srv->bufsize);
	if (!srv->rx_buf || !srv->tx_buf) {
		init_error(hooks, "out of memory for %zu-byte I/O buffers", srv->bufsize);
		return DG_ENOMEM;
	}
	for (unsigned i = 0; i < DG_RX_BATCH; i++) {
		srv->rx_iov[i].iov_base = srv->rx_buf + i * srv->bufsize;
		srv->rx_msgs[i].msg_hdr.msg_iov = &srv->rx_iov[i];
		srv->rx_msgs[i].msg_hdr.msg_iovlen = 1;
		srv->rx_msgs[i].msg_hdr.msg_name = &srv->rx_addr[i];
		srv->rx_msgs[i].msg_hdr.msg_control = srv->rx_cmsg[i].buf;
	}
	for (unsigned i = 0, k = 0; i < srv->n_listeners; i++) {
		struct dg_listener *l = &srv->listeners[i];
		l->socks = calloc(l->conf->n_binds, sizeof(*l->socks));
		if (!l->socks) {
			init_error(hooks, "listener '%s': out of memory for its sockets", l->conf->name);
			return DG_ENOMEM;
		}
		if (dg_throttle_init(&l->throttle, &l->conf->rate_limit, srv->now_ms)) {
			init_error(hooks, "listener '%s': out of memory for the rate_limit table "
			           "(%zu bytes)", l->conf->name,
			           dg_throttle_table_bytes(&l->conf->rate_limit));
			return DG_ENOMEM;
		}
		for (unsigned b = 0; b < l->conf->n_binds; b++, k++) {
			l->socks[b].fd = -1;
			l->n_socks++;
			if (hooks) {
				sock_stub(l, &l->socks[b], &l->conf->binds[b]);
				continue;
			}
			int fd = fds ? fds[k] : -1;
			if (fds)
				fds[k] = -1; /* the socket's now */
			if (sock_open(l, &l->socks[b], &l->conf->binds[b], fd))
				return DG_ERROR;
		}
	}
	return DG_OK;
}

int dg_server_init(struct dg_server *srv, struct dg_config *cfg, const char *plugin_dir,
                   bool check_only, struct dg_counters *counters, int *fds)
{
	return server_init(srv, cfg, plugin_dir, check_only, counters, fds, NULL);
}

int dg_server_init_hooked(struct dg_server *srv, struct dg_config *cfg, const char *plugin_dir,
                          const struct dg_server_hooks *hooks)
{
	return server_init(srv, cfg, plugin_dir, false, NULL, NULL, hooks);
}

static bool drained(const struct dg_server *srv)
{
	if (srv->pending || srv->tx_n || !dg_ififo_empty(&srv->ready) || srv->queued)
		return false;
	for (unsigned i = 0; i < srv->n_listeners; i++)
		for (unsigned b = 0; b < srv->listeners[i].n_socks; b++)
			if (srv->listeners[i].socks[b].q_len)
				return false;
	return true;
}

void dg_server_check_drained(struct dg_server *srv)
{
	if (srv->stopping && drained(srv))
		event_base_loopbreak(srv->base);
}

static void on_shutdown_deadline(struct dg_tm *tm, void *arg)
{
	struct dg_server *srv = arg;
	(void)tm;

	dg_log(DG_LOG_WARN, "shutdown: after %u ms, abandoning %u pending requests and %lu queued "
	       "datagrams", srv->cfg->shutdown_timeout_ms, srv->pending, srv->queued);
	event_base_loopbreak(srv->base);
}

/* Stop reading the listener sockets (they are the next generation's, or
 * nobody's). */
static void stop_reading(struct dg_server *srv)
{
	srv->stopping = true;
	for (unsigned i = 0; i < srv->n_listeners; i++)
		for (unsigned b = 0; b < srv->listeners[i].n_socks; b++)
			event_del(srv->listeners[i].socks[b].ev_read);
}

/* Stopping: the loop ends once nothing is in flight, or at
 * shutdown_timeout_ms. */
static void stop_within_deadline(struct dg_server *srv)
{
	dg_server_post_work(srv);
	if (drained(srv)) {
		event_base_loopbreak(srv->base);
		return;
	}
	dg_tm_init(&srv->shutdown, on_shutdown_deadline, srv);
	if (dg_tm_arm(&srv->timers, &srv->shutdown, srv->now_ms + srv->cfg->shutdown_timeout_ms))
		event_base_loopbreak(srv->base);
}

/* ---- a reload's hand-over (handover.h) ----------------------------------- */

/* Datagrams a retiring worker reads from each listener socket after its
 * conversations have their sockets: what their peers sent before that is
 * there (and anyone else's, served here as before the reload). Bounded, so
 * that a flood cannot hold the reload; what is left goes to the new
 * generation. */
#define DG_HO_DRAIN_MAX (16 * DG_RX_BUDGET)

static void ho_drain(struct dg_server *srv)
{
	for (unsigned i = 0; i < srv->n_listeners; i++)
		for (unsigned b = 0; b < srv->listeners[i].n_socks; b++) {
			struct dg_sock *s = &srv->listeners[i].socks[b];
			unsigned got, n = 0;
			do {
				got = rx_read(s, DG_RX_BUDGET);
				n += got;
				dg_dispatch_run_ready(srv);
				dg_tx_flush(srv);
			} while (got == DG_RX_BUDGET && n < DG_HO_DRAIN_MAX);
		}
}

/* The handed-over sockets into the event loop. One that cannot be is
 * closed: its conversation ends by its own timeout or the deadline. */
static void ho_register(struct dg_server *srv)
{
	for (; srv->n_conv_ev < srv->n_conv; srv->n_conv_ev++) {
		struct dg_sock *c = &srv->conv[srv->n_conv_ev];
		c->ev_read = event_new(srv->base, c->fd, EV_READ | EV_PERSIST, on_readable, c);
		if (c->ev_read && event_add(c->ev_read, NULL) == 0)
			continue;
		dg_log(DG_LOG_ERROR, "listener '%s': reload: cannot register a conversation's "
		       "socket with the event loop", c->l->conf->name);
	}
}

/* DG_HO_RETIRE: the next generation is ready and waits for this one to let
 * go of the listener sockets. */
static void ho_retire(struct dg_server *srv)
{
	unsigned before = srv->pending;

	stop_reading(srv);
	srv->retired = true;
	if (srv->cfg->reload_conversations) {
		srv->conv = calloc(srv->cfg->reload_conversations, sizeof(*srv->conv));
		if (!srv->conv)
			dg_log(DG_LOG_ERROR, "reload: out of memory for the conversations' sockets");
	}
	srv->ho_open = srv->conv != NULL;
	dg_dispatch_handover(srv);
	ho_drain(srv);
	srv->ho_open = false;
	ho_register(srv);
	if (dg_ho_send(srv->ctl, DG_HO_RETIRED))
		dg_log(DG_LOG_WARN, "reload: cannot tell the master this worker let go: %s",
		       strerror(errno));
	dg_log(DG_LOG_INFO, "reload: stopping (%u requests pending, %u conversations kept on "
	       "sockets of their own)", before, srv->n_conv);
	stop_within_deadline(srv);
}

static void on_ctl(evutil_socket_t fd, short what, void *arg)
{
	struct dg_server *srv = arg;
	struct dg_ho_msg msg;
	int passed;
	(void)fd, (void)what;

	int rc = dg_ho_recv(srv->ctl, &msg, &passed, 0);
	if (passed >= 0)
		close(passed); /* the master sends none unasked */
	if (rc == 1) {
		event_del(srv->ev_ctl); /* the master is gone: PR_SET_PDEATHSIG stops us */
		return;
	}
	if (rc)
		return;
	dg_server_clock(srv);
	if (msg.type == DG_HO_GO && srv->paused) {
		srv->paused = false;
		for (unsigned i = 0; !srv->stopping && i < srv->n_listeners; i++)
			for (unsigned b = 0; b < srv->listeners[i].n_socks; b++)
				unpark(srv, &srv->listeners[i].socks[b]);
	} else if (msg.type == DG_HO_RETIRE && !srv->stopping) {
		ho_retire(srv);
	}
	dg_server_post_work(srv);
}

int dg_server_control(struct dg_server *srv, int ctl, bool paused)
{
	srv->ctl = ctl;
	srv->ev_ctl = event_new(srv->base, ctl, EV_READ | EV_PERSIST, on_ctl, srv);
	if (!srv->ev_ctl || event_add(srv->ev_ctl, NULL)) {
		dg_log(DG_LOG_ERROR, "cannot register the master's control channel with the event loop");
		return DG_ERROR;
	}
	srv->paused = paused;
	for (unsigned i = 0; paused && i < srv->n_listeners; i++)
		for (unsigned b = 0; b < srv->listeners[i].n_socks; b++)
			event_del(srv->listeners[i].socks[b].ev_read);
	return DG_OK;
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
	struct dg_server *srv = arg;

	dg_server_clock(srv);
	if (sig == SIGUSR1) {
		if (dg_log_reopen() == DG_OK)
			dg_log(DG_LOG_INFO, "signal USR1: log reopened");
		return;
	}
	if (sig == SIGHUP) {
		dg_log(DG_LOG_WARN, "signal HUP: ignored by a worker; send it to the master (pid %d) "
		       "to reload the configuration", (int)getppid());
		return;
	}
	(void)what;

	if (srv->retired) {
		/* A shutdown after a reload: the conversations it handed over
		 * end now, as everyone's do; the rest still drains. */
		dg_log(DG_LOG_INFO, "signal %s: stopping (%u requests pending, conversations "
		       "cancelled)", sig == SIGINT ? "INT" : "TERM", srv->pending);
		srv->retired = false;
		dg_dispatch_cancel_awaits(srv);
		dg_server_post_work(srv);
		return;
	}
	if (srv->stopping) {
		dg_log(DG_LOG_WARN, "signal %s again: stopping now", sig == SIGINT ? "INT" : "TERM");
		event_base_loopbreak(srv->base);
		return;
	}
	dg_log(DG_LOG_INFO, "signal %s: stopping (%u requests pending)",
	       sig == SIGINT ? "INT" : "TERM", srv->pending);
	dg_notify("STOPPING=1");
	stop_reading(srv);
	/* Conversations waiting for a peer would hold the shutdown to their
	 * step timeout: they end now (DG_ECANCELED). */
	dg_dispatch_cancel_awaits(srv);
	stop_within_deadline(srv);
}

static const int stop_sigs[DG_SERVER_NSIGS] = { SIGINT, SIGTERM, SIGHUP, SIGUSR1 };

static void stop_sigset(sigset_t *set)
{
	sigemptyset(set);
	for (int i = 0; i < DG_SERVER_NSIGS; i++)
		sigaddset(set, stop_sigs[i]);
}

int dg_server_block_signals(void)
{
	sigset_t set;

	stop_sigset(&set);
	return sigprocmask(SIG_BLOCK, &set, NULL) ? DG_ERROR : DG_OK;
}

int dg_server_run(struct dg_server *srv)
{
	sigset_t set;

	for (int i = 0; i < DG_SERVER_NSIGS; i++) {
		srv->ev_sig[i] = evsignal_new(srv->base, stop_sigs[i], on_signal, srv);
		if (!srv->ev_sig[i] || evsignal_add(srv->ev_sig[i], NULL)) {
			dg_log(DG_LOG_ERROR, "cannot install the signal handlers");
			return DG_ERROR;
		}
	}
	/* Handlers in: what arrived while blocked is delivered now. */
	stop_sigset(&set);
	if (sigprocmask(SIG_UNBLOCK, &set, NULL)) {
		dg_log(DG_LOG_ERROR, "cannot unblock signals: %s", strerror(errno));
		return DG_ERROR;
	}
	/* Sockets bound, plugins initialised: root is not needed any more. */
	if (srv->cfg->user && dg_privs_drop(srv->cfg->user, srv->cfg->group))
		return DG_ERROR;
	if (!srv->cfg->user && geteuid() == 0)
		dg_log(DG_LOG_WARN, "running as root: set \"user\" (and \"group\") in %s to drop "
		       "privileges once the sockets are bound", srv->cfg->path);
	dg_notify("READY=1\nSTATUS=serving");
	int rc = event_base_dispatch(srv->base);
	/* Stopped: a late SIGTERM (a master forwards each one it gets) must
	 * not kill the process while it logs its stats and frees, once
	 * dg_server_release has removed the handlers. */
	sigprocmask(SIG_BLOCK, &set, NULL);
	if (rc < 0) {
		dg_log(DG_LOG_ERROR, "event loop failed");
		return DG_ERROR;
	}
	return DG_OK;
}

void dg_server_log_stats(const struct dg_server *srv)
{
	char label[300];

	for (unsigned i = 0; i < srv->n_listeners; i++) {
		snprintf(label, sizeof(label), "%slistener=%s", srv->stats_label ? srv->stats_label : "",
		         srv->listeners[i].conf->name);
		dg_counters_log(label, srv->listeners[i].c);
	}
}

void dg_server_finish(struct dg_server *srv)
{
	if (srv->rt.reqs)
		dg_dispatch_abort_all(srv);
	for (unsigned i = 0; i < srv->n_listeners; i++) {
		struct dg_listener *l = &srv->listeners[i];
		dg_ptimer_cancel_all(l);
		if (l->inited)
			dg_dispatch_sessions_close(l, DG_CLOSE_SHUTDOWN);
		for (unsigned b = 0; b < l->n_socks; b++)
			dg_tx_queue_free(&l->socks[b]);
	}
}

/* The hand-over's sockets (their drops since the last datagram counted)
 * and the control channel. */
static void ho_release(struct dg_server *srv)
{
	for (unsigned i = 0; i < srv->n_conv; i++) {
		struct dg_sock *c = &srv->conv[i];
		uint32_t drops;
		if (c->ev_read)
			event_free(c->ev_read);
		if (dg_io_drops(c->fd, &drops) == 0)
			c->l->c->rx_kernel_drops += (uint32_t)(drops - c->rxq_ovfl);
		close(c->fd);
	}
	free(srv->conv);
	if (srv->ev_ctl)
		event_free(srv->ev_ctl);
	if (srv->ctl >= 0)
		close(srv->ctl);
}

void dg_server_release(struct dg_server *srv)
{
	dg_server_finish(srv);
	ho_release(srv); /* before the listeners: their counters */
	for (unsigned i = 0; i < srv->n_listeners; i++) {
		struct dg_listener *l = &srv->listeners[i];
		if (l->inited && l->plugin->fini)
			l->plugin->fini(l->state);
		dg_ptimer_free_all(l); /* after fini: it may cancel its own */
		dg_options_free(l->options);
		for (unsigned b = 0; b < l->n_socks; b++) {
			struct dg_sock *s = &l->socks[b];
			if (s->ev_read)
				event_free(s->ev_read);
			if (s->ev_write)
				event_free(s->ev_write);
			if (s->fd >= 0)
				close(s->fd);
		}
		free(l->socks);
		dg_throttle_release(&l->throttle);
		dg_codec_free(l->codec);
	}
	free(srv->listeners);
	for (int i = 0; i < DG_SERVER_NSIGS; i++) {
		if (!srv->ev_sig[i])
			continue;
		/* Freeing the event restores SIG_DFL; a second signal during
		 * this bounded teardown must not cut it short. */
		event_free(srv->ev_sig[i]);
		signal(stop_sigs[i], SIG_IGN);
	}
	dg_tm_cancel(&srv->timers, &srv->shutdown);
	dg_tmheap_release(&srv->timers);
	if (srv->ev_timers)
		event_free(srv->ev_timers);
	if (srv->ev_post)
		event_free(srv->ev_post);
	if (srv->base)
		event_base_free(srv->base);
	dg_loader_release(&srv->loader);
	dg_reqtab_release(&srv->rt);
	free(srv->rx_buf);
	free(srv->tx_buf);
	dg_membudget_serving(false);
	dg_host_unregister(srv);
	memset(srv, 0, sizeof(*srv));
}
