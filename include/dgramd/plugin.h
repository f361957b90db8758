/*
 * dgramd handler plugin ABI, version 1.
 *
 * A plugin is a shared object that exports exactly one data symbol,
 * DG_PLUGIN_SYMBOL ("dgramd_plugin"), of type `const struct dg_plugin`.
 * dgramd loads it with dlopen(RTLD_NOW | RTLD_LOCAL) and checks magic, ABI
 * major/minor and struct size before it calls anything. Build plugins with
 * -fvisibility=hidden and mark only that symbol with DG_PLUGIN_EXPORT.
 *
 * Plugins never link against dgramd: every server function they may call is
 * in the host table (struct dg_host) handed to init(). The table is
 * append-only: a field present in ABI 1.N is present, at the same offset, in
 * every 1.M with M >= N. A plugin built for minor N is refused by a host
 * whose minor is lower. A plugin that wants to load on older hosts too sets
 * .abi_minor to the oldest minor it supports (instead of DG_PLUGIN_HEADER's)
 * and tests DG_HOST_HAS(host, field) before calling a newer host function.
 *
 * History: 1.0 the first; 1.1 appended host->peer_validate, the local
 * address to struct dg_peer, host->metric_new/metric_add/metric_set, and
 * the context-carrying request API: dg_request.self, per-request data,
 * conversations (host->request_await), push (host->session_send),
 * declarative options (dg_plugin.options) and dg_plugin.on_expire; 1.2
 * appended host->now_ms (the server's clock, the harness's fake one in
 * tests); 1.3 appended dg_plugin.proves_source (a datagram that proves its
 * source address is exempt from the per-source rate limit and the
 * amplification guard), host->secret (a random key every worker of one
 * dgramd shares) and dg_plugin.option_size (the stride of the options
 * table: struct dg_option may grow).
 *
 * Context. Every 1.1 host function reaches its server from its arguments:
 * the instance (struct dg_instance *, also in dg_request.self) or the
 * session. The 1.0 functions reply() and complete(), which take a bare
 * handle, keep working; new code uses request_reply() and
 * request_complete(), which also work when several servers share a process
 * (the <dgramd/testing.h> harness).
 *
 * Threading: every callback runs on the worker's event loop thread, the one
 * that owns host->event_base(). Host functions may only be called from that
 * thread. One instance (init .. fini) exists per listener per worker.
 *
 * Requests. on_packet() receives one decoded packet. The plugin replies zero
 * or more times with host->request_reply(req->self, req->handle, pkt) and
 * then either returns DG_DONE, or returns DG_PENDING and later calls
 * host->request_complete() from any callback on the same event loop (a
 * timer, its own socket, ...). That is how a handler waits for another
 * service without blocking the loop. request_complete() may also be called
 * inside on_packet() itself (after a failed start, say): the handle is dead
 * at once (later calls return DG_ESTALE), the data slot's free_fn runs,
 * and the frame ends when on_packet() returns, whatever it returns then
 * (DG_DONE and DG_PENDING alike; a negative code still counts as a handler
 * error). A request handle is a
 * generation-checked value: replying to or completing a request that has
 * already completed (or timed out, or whose listener shut down) returns
 * DG_ESTALE and touches nothing. What the plugin keeps for a pending
 * request goes in its data slot (host->request_set_data): the host calls
 * its free_fn exactly once however the request ends (completed,
 * handler_timeout_ms, shutdown) and hands it to on_expire() on a timeout,
 * so the plugin keeps no list of pending requests. (The ABI 1.0 calls
 * host->reply(handle, pkt) and host->complete(handle) still work, for
 * plugins built against older headers: the ABI is append-only.)
 *
 * Keep the instance (self) and the host table in your own state, as the
 * guide's example does; host functions that take an instance check it (anything
 * else, your state for one, gets NULL or DG_EINVAL and a rate-limited log
 * line, not a crash).
 *
 * A complete deferred-reply handler (a timer where a real one would start
 * I/O on host->event_base()), with its option table and an answer on
 * timeout, is in the plugin guide ("Writing a handler plugin"):
 * docs/plugins.md in dgramd's source, installed as DOCDIR/plugins.md (/usr/share/doc/dgramd/plugins.md from the
 * Debian package); dgramd's tests build and run it as printed there. The
 * shipped plugins (echo, kv, relay, tftp, dns, syslog, redis) are the
 * larger examples.
 */
#ifndef DGRAMD_PLUGIN_H
#define DGRAMD_PLUGIN_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include <dgramd/rc.h>
#include <dgramd/codec.h>

#ifdef __cplusplus
extern "C" {
#endif

struct event_base; /* libevent */

#define DG_PLUGIN_MAGIC 0x64675031u /* "dgP1" */
#define DG_PLUGIN_ABI_MAJOR 1
#define DG_PLUGIN_ABI_MINOR 3
#define DG_PLUGIN_SYMBOL "dgramd_plugin"

#if defined(__GNUC__)
#define DG_PLUGIN_EXPORT __attribute__((visibility("default")))
#define DG_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define DG_PLUGIN_EXPORT
#define DG_PRINTF(f, a)
#endif

/* What on_packet() returns when it does not fail. Any negative dg_rc is a
 * handler error: it is counted, logged at a limited rate, and the request is
 * completed by the server (replies already sent stay sent). The codes are
 * in <dgramd/rc.h>; <dgramd/plugin-util.h> has helpers most plugins want
 * (dg_util_verdict: a reply refused with DG_EAGAIN is not an error). */
enum dg_verdict {
	DG_DONE = 0,    /* the request is complete */
	DG_PENDING = 1, /* the plugin will call host->request_complete() later
	                   (if it did already, inside on_packet: as DG_DONE) */
	DG_DECLINED = 2, /* on_error: not handled, the server logs the parse
	                    error; from on_packet it means DG_DONE (nothing logged) */
};

enum dg_log_level {
	DG_LOG_ERROR = 0,
	DG_LOG_WARN = 1,
	DG_LOG_INFO = 2,
	DG_LOG_DEBUG = 3,
};

/* A request handle: a value, safe to copy and keep. 0 is never valid. */
typedef uint64_t dg_req_t;

/* Opaque server objects handed to plugins. */
struct dg_instance; /* this plugin instance; lives from init() to fini() */
struct dg_session;  /* per-peer session, as a handle: a value the host checks,
                       never dereferenced (see on_session_close()); after the
                       session closes, calls with it fail with DG_ESTALE
                       (counted as stale_calls), session_get returns NULL */
struct dg_timer;    /* a one-shot timer started with host->timer_start() */
struct dg_metric;   /* a plugin's counter or gauge (host->metric_new) */
struct dg_request;

/* The peer a datagram came from. Borrowed, with everything it points to,
 * for the duration of a call: copy what you keep. Fields are appended
 * only: those of ABI 1.N are filled in by every host whose abi_minor is
 * >= N (check host->abi_minor before reading them on an older host). */
struct dg_peer {
	const struct sockaddr *addr; /* AF_INET or AF_INET6 */
	socklen_t addrlen;
	const char *listener; /* listener name from the config */

	/* ABI 1.1: the local address and port the datagram was sent to, which
	 * replies come from. On a wildcard bind (0.0.0.0, ::) it is the
	 * datagram's destination address; otherwise the bound address.
	 * Sessions are per (addr, local) pair. Same family as addr. */
	const struct sockaddr *local;
	socklen_t locallen;
};

/* One request: one decoded packet (one frame of a datagram).
 * Everything it points to is borrowed until the callback returns; the
 * handle is a value and may be kept until the request completes. */
struct dg_request {
	dg_req_t handle;
	struct dg_packet packet; /* the decoded packet; see dg_packet ownership */
	const struct dg_peer *peer;
	struct dg_session *session; /* the peer's handle; live until on_session_close() */
	unsigned frame;             /* index of this frame in its datagram */
	unsigned frames;            /* frames in the datagram */

	/* ABI 1.1: the instance the request was delivered to (the self of
	 * init()); the first argument of the 1.1 host functions. */
	struct dg_instance *self;
};

/* packet is embedded by value, so struct dg_packet never grows (see
 * <dgramd/codec.h>): the members after it stay where ABI 1.0 put them.
 * Packet-level additions come as a pointer member appended here. */
DG_STATIC_ASSERT(offsetof(struct dg_request, packet) == sizeof(dg_req_t) &&
                         offsetof(struct dg_request, peer) ==
                                 offsetof(struct dg_request, packet) + sizeof(struct dg_packet) &&
                         offsetof(struct dg_request, session) ==
                                 offsetof(struct dg_request, peer) + sizeof(void *) &&
                         offsetof(struct dg_request, frame) ==
                                 offsetof(struct dg_request, session) + sizeof(void *) &&
                         offsetof(struct dg_request, frames) ==
                                 offsetof(struct dg_request, frame) + sizeof(unsigned),
                 "struct dg_request: the members after packet never move");

/* A conversation step (host->request_await). Called once per await, on the
 * event loop, never from inside request_await() itself:
 *  - status DG_OK: the peer's next packet arrived. next is borrowed for
 *    the call (next->handle == req, next->packet the decoded packet, the
 *    frame fields those of its datagram); it counts as handled.
 *  - status DG_ETIMEDOUT: timeout_ms passed with nothing from the peer;
 *    next is NULL.
 *  - status DG_ECANCELED: the session is closing or the server stopping
 *    (a shutdown; after a reload, the old generation's shutdown_timeout_ms,
 *    or no socket for the hand-over: see request_await); next is NULL,
 *    and the host completes the request after the call.
 * With DG_OK or DG_ETIMEDOUT the request is still in progress: the callback
 * may reply, await again, complete it, or leave it pending (then
 * handler_timeout_ms runs again from the end of the call). A request that
 * completes (or returns DG_DONE from on_packet, or times out) while an await
 * is set drops the await: cb is not called. */
typedef void (*dg_await_fn)(void *arg, dg_req_t req, const struct dg_request *next, int status);

/* Why a session ends (on_session_close). */
enum dg_session_close {
	DG_CLOSE_IDLE = 0,     /* no datagram for session_idle_ms */
	DG_CLOSE_EVICTED = 1,  /* max_peers reached; it was the least recently used */
	DG_CLOSE_SHUTDOWN = 2, /* the server is stopping */
};

/* Server functions for plugins; see the top of this file for the rules. */
struct dg_host {
	uint32_t size; /* sizeof(struct dg_host) in the running server */
	uint16_t abi_major;
	uint16_t abi_minor;

	/* Log a message at level, prefixed with the listener and plugin name.
	 * self is the instance from init(). */
	void (*log)(struct dg_instance *self, int level, const char *fmt, ...) DG_PRINTF(3, 4);

	/* Encode pkt with the listener's codec and queue it to the request's
	 * peer. pkt is only read during the call. Replies to the frames of one
	 * datagram made during one event-loop turn are coalesced into as few
	 * datagrams as the framing allows. Returns DG_OK, DG_ESTALE (request
	 * complete; counted as stale_calls), DG_E2BIG (does not fit
	 * max_datagram, or the request already made max_replies_per_request
	 * replies; counted, nothing sent), DG_EAGAIN (the peer is not
	 * validated and the reply is over its amplification credit: counted
	 * as tx_drop_amplification, nothing sent; the credit grows with the
	 * peer's next datagrams), DG_EINVAL (pkt NULL, or a packet of the
	 * wrong form for the codec). */
	int (*reply)(dg_req_t req, const struct dg_packet *pkt);

	/* Complete a request that on_packet() left DG_PENDING. DG_OK or
	 * DG_ESTALE (counted as stale_calls). After this the handle is dead. */
	int (*complete)(dg_req_t req);

	/* The worker's event base, for the plugin's own libevent I/O. Owned by
	 * the server; valid from init() to fini(). */
	struct event_base *(*event_base)(struct dg_instance *self);

	/* Call cb(arg) once, after ms milliseconds, on the event loop. Returns
	 * NULL on failure, and from the start of a shutdown on (see fini()). The
	 * timer is owned by the server: it is freed after cb returns, or by
	 * timer_cancel(); the pointer is dead after either. At shutdown, timers
	 * still pending are stopped (cb is never called) before
	 * on_session_close(DG_CLOSE_SHUTDOWN) and fini(), but stay valid
	 * handles until fini() returns: cancelling them there is allowed (and
	 * frees them); the host frees the rest after fini(). */
	struct dg_timer *(*timer_start)(struct dg_instance *self, unsigned ms,
	                                void (*cb)(void *arg), void *arg);
	void (*timer_cancel)(struct dg_timer *timer);

	/* Format a peer as "1.2.3.4:53" or "[::1]:53" into buf (always
	 * NUL-terminated). Returns buf. */
	const char *(*peer_format)(const struct dg_peer *peer, char *buf, size_t len);

	/* The data the plugin attached to a session, or NULL (also when the
	 * session has closed: a stale call, counted). */
	void *(*session_get)(struct dg_session *session);

	/* Attach data to a session, replacing (and freeing with its free_fn)
	 * what was there. free_fn (may be NULL) is called with data when the
	 * session closes, after on_session_close(), or when replaced. If the
	 * session has closed already (a stale call, counted), free_fn(data) is
	 * called at once. */
	void (*session_set)(struct dg_session *session, void *data, void (*free_fn)(void *data));

	/* Parse a numeric "a.b.c.d:port" or "[ipv6]:port" into *ss (the
	 * config file's address syntax). DG_OK or DG_EINVAL. */
	int (*addr_parse)(const char *text, struct sockaddr_storage *ss, socklen_t *len);

	/* ---- ABI 1.1 ---- */

	/* Mark the session's peer validated: it has proven that it receives
	 * what is sent to its address (it echoed a cookie the plugin sent
	 * there, say). A validated peer is no longer held to the listener's
	 * amplification factor, for the rest of its session (a new session
	 * starts unvalidated). DG_OK, DG_EINVAL if session is NULL, DG_ESTALE
	 * if it has closed. */
	int (*peer_validate)(struct dg_session *session);

	/* Publish a counter or gauge of this instance (enum dg_metric_kind):
	 * served at /metrics as dgramd_plugin_PLUGIN_NAME (counters with
	 * _total) labelled by listener and worker, and at /stats. name is
	 * [a-z0-9_], 1 to 47 characters; help one line (both copied). The
	 * handle stays valid until fini(); calling metric_new again with the
	 * same name returns the same metric (a restarted worker's counters
	 * go on from where its predecessor stopped). NULL if self is not an
	 * instance (a rate-limited log line, as for every call that takes
	 * self), name is invalid, used with another kind, or the listener
	 * already has DG_METRICS_MAX plugin metrics. */
	struct dg_metric *(*metric_new)(struct dg_instance *self, const char *name,
	                                const char *help, int kind);

	/* Counters: add delta (negative deltas are ignored); gauges: add
	 * delta. O(1), no system call: fine per packet. NULL: no-op. */
	void (*metric_add)(struct dg_metric *metric, int64_t delta);

	/* Gauges: set the value. NULL: no-op. */
	void (*metric_set)(struct dg_metric *metric, int64_t value);

	/* ABI 1.1, requests with their instance. Every function below checks
	 * self (DG_EINVAL and a rate-limited log line for anything else) and
	 * the handle (DG_ESTALE, counted as stale_calls, once the request has
	 * completed or timed out). */

	/* As reply() and complete(), reaching the server through self. */
	int (*request_reply)(struct dg_instance *self, dg_req_t req, const struct dg_packet *pkt);
	int (*request_complete)(struct dg_instance *self, dg_req_t req);

	/* The request's data slot: data is the plugin's, and free_fn(data)
	 * (may be NULL) is called once, by the host, when the request ends
	 * however it ends (completed, timed out, abandoned at shutdown) or
	 * when the slot is set again. request_data() returns it (NULL if
	 * unset or the request is gone); on_expire() receives it. */
	int (*request_set_data)(struct dg_instance *self, dg_req_t req, void *data,
	                        void (*free_fn)(void *data));
	void *(*request_data)(struct dg_instance *self, dg_req_t req);

	/* Conversations: wait for the same peer's next packet, at most
	 * timeout_ms (1 .. 3600000, independent of handler_timeout_ms, which
	 * is suspended while the request waits), then call cb(arg, ...) (see
	 * dg_await_fn). Any number of steps. The peer's next packet goes to
	 * the waiting request instead of on_packet(): one await per session
	 * at a time (DG_EBUSY otherwise). Packets of the peer that arrived
	 * while the request was pending and not waiting stayed in the peer's
	 * queue (peer_queue bounds it) and are delivered, in order, to the
	 * next await; frames of one datagram go to successive steps in order,
	 * and those left when the request ends go to on_packet. The frames
	 * after the request's own (of its own datagram) run after it, as for
	 * any pending request. max_replies_per_request counts per step.
	 * DG_OK, DG_ESTALE, DG_EBUSY, DG_EINVAL (cb NULL, timeout out of
	 * range), DG_ECANCELED (the server is stopping), DG_ENOMEM.
	 * On a reload a waiting conversation goes on in the old generation
	 * (its peer's datagrams keep coming to it, on a socket connected to
	 * the peer) until it ends or shutdown_timeout_ms passes, when the
	 * waiting step gets DG_ECANCELED; a shutdown (SIGTERM, SIGINT)
	 * cancels it at once. */
	int (*request_await)(struct dg_instance *self, dg_req_t req, unsigned timeout_ms,
	                     dg_await_fn cb, void *arg);

	/* Push: encode pkt with the listener's codec and send it to the
	 * session's peer, outside any request, as long as the session lives
	 * (until on_session_close()). Counted in tx and tx_push; goes through
	 * the amplification guard. pkt is only read during the call. DG_OK,
	 * DG_EAGAIN (over the amplification credit), DG_E2BIG, DG_EINVAL,
	 * DG_ESTALE (the session has closed: counted as stale_calls). */
	int (*session_send)(struct dg_instance *self, struct dg_session *session,
	                    const struct dg_packet *pkt);

	/* The plugin's options (dg_plugin.options), validated and filled in by
	 * the host: a struct of dg_plugin.options_size bytes, owned by the
	 * host, valid from init() to fini(). NULL if the plugin declares no
	 * options. */
	const void *(*options)(struct dg_instance *self);

	/* ---- ABI 1.2 ---- */

	/* The server's clock, in milliseconds: the monotonic clock that its
	 * timers (timer_start), handler deadlines (handler_timeout_ms) and
	 * conversation steps (request_await) run on. A plugin that measures
	 * what remains of a wait (a retransmission deadline, say) reads this
	 * one, not its own: under the <dgramd/testing.h> harness it is the
	 * fake clock, which moves only with dg_harness_advance(). Never goes
	 * back; its origin is arbitrary (differences alone mean something);
	 * in dgramd it is CLOCK_MONOTONIC_COARSE (a resolution of a few ms,
	 * no system call), read afresh at each call. 0 if self is not an
	 * instance (a rate-limited log line). A plugin that declares an older
	 * .abi_minor tests DG_HOST_HAS(host, now_ms) before calling it. */
	uint64_t (*now_ms)(struct dg_instance *self);

	/* ---- ABI 1.3 ---- */

	/* 32 random bytes made once when dgramd starts, before it forks any
	 * worker: the same in every worker of that dgramd, in workers the
	 * master restarts and in new generations after a reload. A key for
	 * values one worker makes and another checks (with SO_REUSEPORT a
	 * peer's next datagram may reach another worker): derive your own key
	 * from it (a keyed hash of a label of yours), do not use it as is.
	 * Other dgramd processes have other bytes: a key that several servers
	 * must agree on comes from the config. Owned by the host, valid until
	 * fini(). NULL if self is not an instance. Under the <dgramd/testing.h>
	 * harness: random per process. */
	const unsigned char *(*secret)(struct dg_instance *self);
};

/* Declarative options (dg_plugin.options), as nginx directives are: the host
 * checks the handler's "config" object against the table before init()
 * (unknown keys, types, ranges; errors name the key path, and dgramd -t
 * reports them), fills in a struct of options_size bytes with defaults and
 * given values, and -T prints it. init() still gets the raw config. */
enum dg_option_type {
	DG_OPT_BOOL = 1,   /* bool */
	DG_OPT_INT = 2,    /* int64_t, in [min, max] unless both are 0 */
	DG_OPT_STRING = 3, /* const char *, host-owned; length in [min, max] unless both 0 */
	DG_OPT_ENUM = 4,   /* int: index of the value in choices ("a|b|c") */
	DG_OPT_ADDR = 5,   /* struct dg_option_addr: "a.b.c.d:port" or "[v6]:port" */
	DG_OPT_JSON = 6,   /* const struct json_t *, borrowed until fini(); any JSON,
	                      the plugin checks it in init() */
};

struct dg_option_addr {
	struct sockaddr_storage addr;
	socklen_t len;
};

#define DG_OPT_REQUIRED 1u /* no default: the key must be given */

/* One option. Fields are appended only: the host walks a table with the
 * descriptor's option_size as the stride (ABI 1.3; before it, the 1.1
 * struct) and reads each entry into a zeroed struct of its own, so a field
 * appended later reads 0 for a plugin built before it: its 0 must mean
 * what older plugins meant. */
struct dg_option {
	const char *name;    /* the key; NULL ends the table */
	int type;            /* enum dg_option_type */
	size_t offset;       /* offsetof(your options struct, field) */
	const char *def;     /* default as JSON text ("100", "true", "\"x\""); NULL: zero */
	int64_t min, max;    /* DG_OPT_INT: value range; DG_OPT_STRING: length */
	const char *choices; /* DG_OPT_ENUM: "first|second|..." */
	unsigned flags;      /* DG_OPT_REQUIRED */
	const char *help;    /* one line, for -T and the docs */
};

enum dg_metric_kind {
	DG_METRIC_COUNTER = 0, /* only grows */
	DG_METRIC_GAUGE = 1,   /* goes up and down */
};
#define DG_METRICS_MAX 32 /* plugin metrics per listener */

/* Does the running host offer this struct dg_host member? A plugin that
 * declares an older .abi_minor checks this before calling a newer one:
 *     if (DG_HOST_HAS(host, peer_validate)) host->peer_validate(s); */
#define DG_HOST_HAS(host, member)                                              \
	((host)->size >= offsetof(struct dg_host, member) + sizeof((host)->member))

/* The plugin descriptor: the one exported symbol. Optional callbacks may be
 * NULL, and callbacks beyond the descriptor's own size are treated as NULL.
 * Every callback runs on the worker's event-loop thread; make and free
 * jansson values there only (dgramd counts jansson's memory without locks).
 *
 * init(): called once per listener per worker with the handler's "config"
 *   object from the server config (NULL if absent; borrowed, valid during
 *   the call only; copy or json_incref what you keep). host and self stay
 *   valid until fini(). Store your state in *state. Return DG_OK, or a
 *   negative dg_rc after logging what is wrong with the config: the server
 *   then refuses to start (dgramd -t reports it too). After a failed init
 *   fini() is not called: free what you allocated before returning.
 * fini(): release state. At shutdown the host has, in this order, abandoned
 *   the requests still in progress (each data slot's free_fn has run;
 *   waiting conversation steps got DG_ECANCELED first), stopped the
 *   plugin's timers, and closed every session (on_session_close with
 *   DG_CLOSE_SHUTDOWN). Host calls allowed in fini(): log, timer_cancel
 *   (the handles of stopped timers are still live: this frees one; never
 *   needed, the host frees the rest after fini), metric_add / metric_set,
 *   options, event_base (to free the plugin's own events), now_ms,
 *   peer_format, addr_parse. timer_start returns NULL; request and session
 *   calls find nothing alive (DG_ESTALE, NULL). After a failed init()
 *   fini() is not called.
 * accept(): optional, before decoding: return 0 to go on, non-zero to drop
 *   the datagram unparsed (counted as dropped by the plugin).
 * on_packet(): required; see enum dg_verdict.
 * on_error(): optional; a datagram could not be decoded. req->packet holds
 *   the raw datagram bytes (json NULL); the plugin may reply (for example
 *   with an error packet). Return DG_DONE, or DG_DECLINED to have the
 *   server log it as if there were no hook. Parse errors are always
 *   counted; without the hook (or on DG_DECLINED) they are also logged at
 *   a limited rate. A datagram a codec transform refused (a checksum or
 *   signature that does not match, a corrupt stream, a decompression bomb:
 *   dg_codec_fault) never comes here: the server drops it before any
 *   plugin code (drop_integrity, drop_corrupt, drop_decoded_size).
 * on_timeout(): optional; a pending request passed the listener's
 *   handler_timeout_ms. The handle is still valid during the call, so the
 *   plugin may reply (an error, say); afterwards the server completes it
 *   (counted as a timeout) and the handle is dead: a later reply or
 *   complete returns DG_ESTALE. Release what you kept for the request.
 * on_session_close(): optional; the peer's session ends (enum
 *   dg_session_close). Never called while the session has a request in
 *   progress, except at shutdown, after those requests were abandoned. At
 *   shutdown (DG_CLOSE_SHUTDOWN) the plugin's timers have been stopped:
 *   timer_cancel on a timer kept for the session is allowed (it frees
 *   it), timer_start returns NULL, request calls return DG_ESTALE; log,
 *   session_get and session_set work as in any close. The
 *   session handle is dead after the call: host calls with it return
 *   DG_ESTALE (session_send, peer_validate) or NULL (session_get), and
 *   session_set frees the data it is given; none touches freed memory.
 * proves_source(): optional (ABI 1.3); see the member. */
struct dg_plugin {
	uint32_t magic;     /* DG_PLUGIN_MAGIC */
	uint16_t abi_major; /* DG_PLUGIN_ABI_MAJOR */
	uint16_t abi_minor; /* DG_PLUGIN_ABI_MINOR */
	uint32_t size;      /* sizeof(struct dg_plugin) at build time */
	const char *name;   /* unique among loaded plugins; static */
	const char *version;

	int (*init)(struct dg_instance *self, const struct dg_host *host,
	            const struct json_t *config, void **state);
	void (*fini)(void *state);
	int (*accept)(void *state, const struct dg_peer *peer);
	int (*on_packet)(void *state, const struct dg_request *req);
	int (*on_error)(void *state, const struct dg_request *req,
	                const struct dg_parse_error *err);
	void (*on_timeout)(void *state, dg_req_t req);
	void (*on_session_close)(void *state, struct dg_session *session, int reason);

	/* ---- ABI 1.1 ---- */
	const struct dg_option *options; /* static table, NULL-name terminated; may be NULL */
	size_t options_size;             /* sizeof the struct it fills */
	/* on_expire(): optional; called instead of on_timeout() when set: as
	 * on_timeout(), with the request's data slot (host->request_set_data)
	 * handed back. The slot's free_fn still runs after the call. */
	void (*on_expire)(void *state, dg_req_t req, void *data);

	/* ---- ABI 1.3 ---- */
	/* proves_source(): optional; does this datagram prove that its source
	 * address is real (it carries a token the plugin sent to that address
	 * earlier and that only a host there could have seen: a valid, fresh
	 * DNS server cookie, say)? Called, when the listener has something a
	 * proof lifts (a per-source rate limit or the amplification guard),
	 * for every datagram its ACL lets in that fits the listener's
	 * max_datagram (a larger one is dropped as too large unasked), before
	 * the rate limit, accept(), the session lookup and decoding: data/len
	 * is the datagram as received (before framing and transforms, so any
	 * bytes at all, 0 to max_datagram of them), peer its source; both
	 * borrowed for the call. Return non-zero for
	 * "proven", 0 otherwise. A proven datagram skips the per-source rate
	 * limit (rate_limit.total still applies: it is the listener's
	 * capacity), and its session is marked validated as by
	 * host->peer_validate, so the amplification guard does not hold its
	 * replies. It runs for a flood's datagrams too: keep it cheap and
	 * bounded (no allocation, no log line, no host call but now_ms), and
	 * never return non-zero for something a spoofer can forge. */
	int (*proves_source)(void *state, const struct dg_peer *peer, const void *data, size_t len);
	/* sizeof(struct dg_option) at build time (DG_PLUGIN_HEADER fills it
	 * in): the stride of the options table, so that struct dg_option can
	 * gain fields. The host reads each entry into a zeroed struct
	 * dg_option of its own: a field the plugin's headers did not have
	 * reads as 0. Absent (a descriptor built before 1.3) or 0: the 1.1
	 * layout. */
	uint32_t option_size;
};

/* Fills the fixed header fields of a struct dg_plugin initializer. */
#define DG_PLUGIN_HEADER                                                       \
	.magic = DG_PLUGIN_MAGIC, .abi_major = DG_PLUGIN_ABI_MAJOR,            \
	.abi_minor = DG_PLUGIN_ABI_MINOR, .size = sizeof(struct dg_plugin),     \
	.option_size = sizeof(struct dg_option)

#ifdef __cplusplus
}
#endif
#endif /* DGRAMD_PLUGIN_H */
