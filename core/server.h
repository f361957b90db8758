/* The worker: one event base, its listeners and sockets, the request table
 * and the batched receive and send paths. Host functions reach their server
 * from their arguments (the instance, the session); the 1.0 calls that get a
 * bare request handle find it by the server id in the handle, in a small
 * registry of the servers alive in the process (host.h).
 *
 * This header holds the worker's structures (shared by server.c,
 * dispatch.c, tx.c, host.c and the harness) and server.c's functions;
 * each of the others declares its own (dispatch.h, tx.h, host.h).
 *
 * Calls go one way: server.c (the loop's events) and host.c (the plugins'
 * calls) -> dispatch.c -> tx.c. Dispatch and tx never call the server:
 * they leave work on the server's ready lists and in the send batch, and
 * the entry point that called them posts it (dg_server_post_work); the
 * post event runs it and sends the batch (dg_server_after_events, the one
 * flush point; tx flushes a full batch itself to make room). */
#ifndef DG_SERVER_H
#define DG_SERVER_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include <event2/event.h>
#include <dgramd/plugin.h>

#include "conf.h"
#include "counters.h"
#include "io.h"
#include "loader.h"
#include "membudget.h"
#include "ratelimit.h"
#include "reqtab.h"
#include "session.h"
#include "throttle.h"
#include "timer.h"

#define DG_RX_BATCH 64   /* datagrams per recvmmsg */
#define DG_RX_BUDGET 1024 /* datagrams per readiness (its first read and the rereads
                             after each flush), so no socket starves the rest */
#define DG_TX_BATCH 64   /* reply datagrams per sendmmsg */
#define DG_RX_PARK_MIN 4 /* datagrams in a readiness's first read from which the
                           socket is parked (bench: a gain from batches of 4 up) */
#define DG_REQS_INITIAL 256

struct dg_listener;
struct dg_options;

/* What init() gets as self. The magic lets host functions tell it from a
 * plugin's own state passed by mistake (DG_EINVAL / NULL, not a crash). */
#define DG_INSTANCE_MAGIC 0x64674931u /* "dgI1" */
struct dg_instance {
	uint32_t magic;
	struct dg_listener *l;
};

/* A reply waiting for the socket to become writable. */
struct dg_txq_item {
	struct dg_slink link; /* the socket's queue */
	struct sockaddr_storage to;
	socklen_t tolen;
	union dg_sockaddr from; /* the source to send from (wildcard binds) */
	socklen_t fromlen;      /* 0: the socket's own address */
	size_t len;
	unsigned char data[];
};

struct dg_sock {
	struct dg_listener *l;
	struct dg_sock *home; /* the listener socket whose datagrams these are: itself, or for a
	                         socket connected to one peer (a reload's hand-over) the
	                         listener's; dispatch, sessions and replies use the home */
	int fd;
	struct event *ev_read;
	struct event *ev_write;
	struct dg_addr bound; /* with the real port */
	bool pktinfo;         /* a wildcard bind: each datagram says its local address */
	uint32_t rxq_ovfl;    /* the kernel's drop counter, as last seen (SO_RXQ_OVFL) */
	struct dg_fifo q; /* struct dg_txq_item, oldest first */
	unsigned q_len;
	struct dg_slink park_link; /* the server's parked sockets (out of the event loop
	                              while their replies go out) */
	unsigned rx_left;          /* parked: datagrams it may still read before going back */
};

struct dg_listener {
	struct dg_instance inst;
	struct dg_server *srv;
	const struct dg_listener_conf *conf;
	struct dg_codec *codec;
	const struct dg_plugin *plugin;
	struct dg_options *options; /* the plugin's, filled before init(); NULL: no table */
	void *state;
	bool inited;
	struct dg_sock *socks;
	unsigned n_socks;
	struct dg_dlist timers;     /* plugin timers (ptimer.c) */
	bool timers_stopped;        /* shutdown: timers disarmed, kept until after fini() */
	struct dg_sessions sessions;
	struct dg_slink ready_link; /* the server's list of listeners with sessions to run */
	bool on_ready;
	struct dg_tm sweep;        /* idle session expiry, every tick */
	struct dg_tm deadline;     /* handler_timeout_ms: the oldest pending request's */
	struct dg_idlist dl;       /* pending requests by deadline (struct dg_req dl) */
	struct dg_counters *c;     /* &own_c, or this worker's slot in shared memory */
	struct dg_counters own_c;
	/* Ask the plugin's proves_source (zero past a pre-1.3 descriptor)
	 * about each datagram: only when a proof lifts a limit (a per-source
	 * rate limit, the amplification guard), or the dns plugin would parse
	 * every query twice for nothing. */
	bool prove;
	struct dg_ratelimit rl_parse, rl_handler, rl_tx, rl_rx, rl_stale, rl_amp, rl_handover;
	struct dg_throttle throttle; /* rate_limit */
};

/* A conversation step (host->request_await) of one request slot: made at
 * the slot's first await and kept across its reuse (no allocation per
 * step), freed with the server. */
struct dg_await {
	struct dg_server *srv;
	uint32_t idx;            /* its request slot */
	struct dg_tm tm;         /* the step's timeout, on the server's timer heap */
	dg_await_fn cb;
	void *arg;
	struct dg_slink link;    /* the server's list of awaits with frames to deliver */
	bool posted;             /* on that list */
	/* The frames after the first of a datagram of several, delivered one
	 * per step; what is left when the request ends goes to on_packet. */
	struct dg_packet *pkts;  /* by frame index */
	unsigned char *copy;     /* the datagram bytes pkts[] borrow */
	unsigned frame, frames;
	size_t mem;              /* charged to the memory budget while held */
};

struct dg_txslot {
	struct dg_sock *s;
	struct sockaddr_storage to;
	socklen_t tolen;
	union dg_sockaddr from; /* source address on a wildcard bind */
	socklen_t fromlen;      /* 0: the socket's own address */
	uint64_t owner; /* serial of the request that opened the slot */
	struct dg_outdgram out;
};

struct dg_server {
	struct event_base *base;
	struct dg_config *cfg;
	struct dg_loader loader;
	struct dg_listener *listeners;
	unsigned n_listeners;
	size_t bufsize; /* largest max_datagram */
	time_t now;     /* cached clock (s), for rate limits: now_ms / 1000 */
	uint64_t now_ms; /* cached monotonic clock (ms), for sessions and deadlines */
	/* Where now_ms comes from (dg_server_clock): the monotonic clock, or
	 * the harness's fake one. */
	uint64_t (*clock)(void *arg);
	void *clock_arg;
	struct dg_tmheap timers; /* every timer of the core, on now_ms */
	struct event *ev_timers; /* drives the heap from the event loop (NULL: the harness does) */

	dg_mmsg rx_msgs[DG_RX_BATCH];
	struct iovec rx_iov[DG_RX_BATCH];
	struct sockaddr_storage rx_addr[DG_RX_BATCH];
	union dg_rx_cmsg rx_cmsg[DG_RX_BATCH];
	unsigned char *rx_buf; /* DG_RX_BATCH * bufsize */
	unsigned rx_used;      /* entries the last receive filled (to reset) */
	size_t rx_len;         /* iov_len the entries are set to */
	struct dg_frame frames[DG_CODEC_MAX_FRAMES];
	struct dg_packet pkts[DG_CODEC_MAX_FRAMES];

	struct dg_reqtab rt;
	struct dg_ififo ready;   /* requests with frames to run or to free (struct dg_req next) */
	struct dg_fifo lready;   /* listeners with sessions to run */
	struct dg_fifo aready;   /* awaits with frames to deliver */
	struct dg_fifo parked;   /* sockets out of the event loop until the flush */
	unsigned pending;
	unsigned long queued; /* datagrams in peer queues, all listeners */
	struct dg_membudget mem; /* bytes of requests in progress and queues */

	struct dg_txslot tx[DG_TX_BATCH];
	unsigned tx_n;
	uint64_t req_serial;     /* last request serial given out (0 is never one) */
	unsigned char *tx_buf; /* DG_TX_BATCH * bufsize */
	dg_mmsg tx_msgs[DG_TX_BATCH];
	struct iovec tx_iov[DG_TX_BATCH];
	union dg_tx_cmsg tx_cmsg[DG_TX_BATCH];
	struct event *ev_post; /* run after callbacks: continuations, tx flush */
	bool posted;           /* ev_post is active (dg_server_post_work) */

	const char *stats_label; /* "worker=N " in a worker, else "" */
#define DG_SERVER_NSIGS 4 /* INT, TERM, HUP, USR1 */
	struct event *ev_sig[DG_SERVER_NSIGS];
	struct dg_tm shutdown; /* shutdown_timeout_ms after INT/TERM */
	/* Where the tx path ends: dg_io_send (NULL), or the harness's sink. */
	int (*send)(void *arg, struct dg_sock *s, dg_mmsg *m, unsigned n);
	void *send_arg;
	bool stopping;
	bool aborting;  /* dg_dispatch_abort_all: no new awaits */
	/* A reload's hand-over (handover.h): the master's control channel (-1:
	 * none), whether the listener sockets are not read yet (a new
	 * generation until DG_HO_GO), whether conversations may get sockets of
	 * their own now (during DG_HO_RETIRE) or have got them (retired: a
	 * first SIGTERM/SIGINT still cancels them), and those sockets. */
	int ctl;
	struct event *ev_ctl;
	bool paused;
	bool ho_open;
	bool retired;
	struct dg_sock *conv;  /* reload_conversations of them, allocated on DG_HO_RETIRE */
	unsigned n_conv;       /* in use (each with an fd) */
	unsigned n_conv_ev;    /* of those, registered with the event loop */
	uint8_t id;     /* its place in host.c's registry (in every request handle) */
};

/* counters: NULL, or one struct per listener (a worker's slots in the
 * master's shared memory), kept across worker restarts.
 * fds: NULL (bind here), or one bound socket per bind of every listener in
 * config order, from dg_sock_bind(); the server takes each one it
 * adopts (the entry becomes -1) and closes it in dg_server_release(). */
int dg_server_init(struct dg_server *srv, struct dg_config *cfg, const char *plugin_dir,
                   bool check_only, struct dg_counters *counters, int *fds);
/* The seams of the plugin test harness (testing.c). */
struct dg_server_hooks {
	uint64_t (*clock)(void *arg); /* srv->clock, from before any plugin init() */
	void *clock_arg;
	/* Instead of sendmmsg: returns how many of m[0..n) it took (a prefix),
	 * or -1 with errno, as dg_io_send. */
	int (*send)(void *arg, struct dg_sock *s, dg_mmsg *m, unsigned n);
	void *send_arg;
	/* A descriptor linked into the program, for every listener instead of
	 * handler.plugin (checked as a loaded one is); NULL: load. */
	const struct dg_plugin *plugin;
	char *err; /* the first error, as dg_harness_new reports it */
	size_t errlen;
};
/* dg_server_init for the harness: no sockets (each listener gets one
 * dg_sock per bind with fd -1 and the configured address as its own), no
 * metrics, no libevent timer (the caller runs srv->timers), and the hooks.
 * DG_OK or an error (logged and in hooks->err). */
int dg_server_init_hooked(struct dg_server *srv, struct dg_config *cfg, const char *plugin_dir,
                          const struct dg_server_hooks *hooks);
/* Block SIGINT, SIGTERM, SIGHUP and SIGUSR1 (first thing in main(), inherited by
 * workers): until dg_server_run() has installed its handlers and unblocks
 * them, a signal waits rather than killing a starting process. */
int dg_server_block_signals(void);
int dg_server_run(struct dg_server *srv);
/* A master's worker: its end of the control channel (handover.h), taken
 * (closed in dg_server_release). paused: do not read the listener sockets
 * until the master says DG_HO_GO (a reload's new generation). DG_OK, or
 * DG_ERROR after logging why. */
int dg_server_control(struct dg_server *srv, int ctl, bool paused);
/* After the loop: abandon what is still in flight (pending requests,
 * queued datagrams and replies, timers, sessions: counted as shutdown
 * drops), so that the stats logged next add up. Idempotent;
 * dg_server_release() calls it too. */
void dg_server_finish(struct dg_server *srv);
void dg_server_release(struct dg_server *srv);
void dg_server_log_stats(const struct dg_server *srv);
/* Stop the loop when stopping and nothing is left in flight. */
void dg_server_check_drained(struct dg_server *srv);
/* The post event's work, once the current callbacks have returned (the
 * harness runs it too): the work dispatch left, then the send batch goes
 * out (the one flush point), then the shutdown check. */
void dg_server_after_events(struct dg_server *srv);

/* Refresh the cached clocks from srv->clock (once per batch or timer, not
 * per datagram); now_ms never goes back. */
void dg_server_clock(struct dg_server *srv);
/* The default srv->clock: CLOCK_MONOTONIC_COARSE in ms (a vDSO read). */
uint64_t dg_server_clock_monotonic(void *arg);

/* Work dispatch left on the ready lists for dg_dispatch_run_ready (O(1),
 * inline on the hot path). */
static inline bool dg_server_has_work(const struct dg_server *srv)
{
	return !dg_ififo_empty(&srv->ready) || !dg_fifo_empty(&srv->lready) ||
	       !dg_fifo_empty(&srv->aready);
}

/* For the entry points (server.c's events, host.c's calls), after calling
 * dispatch or tx: if they left work (ready lists, replies in the batch, a
 * socket parked out of the event loop, which only the post event puts
 * back), the post event runs it once the current callbacks return. Inline, and
 * event_active only when the post event is not active already: a datagram
 * costs no call. */
static inline void dg_server_post_work(struct dg_server *srv)
{
	if (srv->posted ||
	    (!srv->tx_n && !dg_server_has_work(srv) && dg_fifo_empty(&srv->parked)))
		return;
	srv->posted = true;
	event_active(srv->ev_post, EV_TIMEOUT, 0);
}

#endif
