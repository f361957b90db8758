/*
 * dgramd client library (libdgramd): talk to a dgramd service in packets,
 * with the same codecs as the server (see <dgramd/codec.h> for specs).
 *
 * Blocking client:
 *
 *     struct dg_client *c;
 *     struct dg_client_error e;
 *     if (dg_client_open("127.0.0.1:5300", "json", NULL, &c, &e))
 *             errx(1, "%s", e.message);
 *     json_t *req = json_pack("{ss}", "op", "ping");
 *     struct dg_packet out = { .json = req }, in;
 *     if (dg_client_request(c, &out, &in, &e) == DG_OK)
 *             puts(json_dumps(in.json, 0));     // in is valid until the next call
 *     dg_client_close(c);
 *
 * Errors are values: every call returns DG_OK or a negative enum dg_rc and
 * fills a struct dg_client_error when given one:
 *   DG_ETIMEDOUT  nothing arrived in time;
 *   DG_EPARSE     a datagram arrived but does not decode (reason, offset),
 *                 or a transform's checksum or signature does not match
 *                 ("refused (frame N): <reason>", offset 0); the next
 *                 receive works normally. Codec transforms' max_decoded
 *                 defaults to 16 x max_datagram (dg_codec_new_sized);
 *   DG_ENET       resolution, socket or send failure, or an ICMP error
 *                 such as port unreachable (reported once; the client
 *                 stays usable for the next send).
 *
 * Threading: a client is used by one thread at a time. The asynchronous
 * client runs on the caller's libevent event_base and calls back on it.
 */
#ifndef DGRAMD_CLIENT_H
#define DGRAMD_CLIENT_H

#include <stdbool.h>
#include <stddef.h>

#include <dgramd/codec.h>

#ifdef __cplusplus
extern "C" {
#endif

struct event_base;

struct dg_client;

struct dg_client_error {
	int code;          /* the dg_rc returned */
	int sys_errno;     /* errno for DG_ENET, else 0 */
	size_t offset;     /* byte offset for DG_EPARSE */
	char message[256]; /* what happened, naming the peer */
};

/* Options structs (struct dg_client_opts, struct dg_aclient_opts) are
 * caller-allocated and append-only: a new libdgramd 2.x adds members at
 * the end, never moves one. The first member, size, says how much of the
 * struct the caller was built with: initialise every options struct with
 * its DG_*_OPTS_INIT, which sets it to the caller's sizeof, then set the
 * members you want (0 is each one's default):
 *
 *     struct dg_client_opts o = DG_CLIENT_OPTS_INIT;
 *     o.timeout_ms = 500;
 *
 * The library reads only the members that lie wholly within size, and
 * takes the default for the rest, so a program built against an older
 * <dgramd/client.h> keeps working with a newer libdgramd.so.2. A size
 * beyond the library's own struct (a program built against a newer
 * header) is accepted when the bytes the library does not know are all 0,
 * and refused with DG_EINVAL otherwise (an option this library cannot
 * honour), as is a size of 0 (not initialised) or over 4096. (libdgramd 1
 * had no size member: its soname is libdgramd.so.1.) */
struct dg_client_opts {
	size_t size;           /* sizeof(struct dg_client_opts): DG_CLIENT_OPTS_INIT */
	unsigned timeout_ms;   /* per attempt; 0 = 1000 */
	unsigned retries;      /* resends after a timeout in dg_client_request */
	size_t max_datagram;   /* 0 = 65507 */
	int rcvbuf;            /* socket receive buffer bytes (0: the kernel's default) */
	bool unconnected;      /* accept replies from any address (broadcast);
	                          ICMP errors are then not reported */
	bool bind;             /* bind host:port and receive from anyone (a
	                          sink: dgramc --listen); implies unconnected */
	/* JSON payloads: the member that carries a request id ("id"), or NULL.
	 * dg_client_request then adds a unique integer id to an object that
	 * has none, and skips replies whose id is another one (answers to
	 * earlier requests). Replies without the member are taken as they
	 * come. */
	const char *id_field;
};

#define DG_CLIENT_OPTS_INIT { .size = sizeof(struct dg_client_opts) }

/* Open a client for "host:port" ("127.0.0.1:5300", "[::1]:5300",
 * "localhost:5300"; names are resolved once, with getaddrinfo) and a codec
 * spec: a name ("json", "raw", "length-prefixed") or a JSON object text
 * ('{"framing": "length-prefixed", "payload": "json"}'). opts may be NULL
 * (every default); it is only read during the call. DG_EINVAL if its size
 * is not one the library can read (see above). *out is owned by the
 * caller: dg_client_close(). */
int dg_client_open(const char *hostport, const char *codec_spec,
                   const struct dg_client_opts *opts, struct dg_client **out,
                   struct dg_client_error *err);

/* Close and free; NULL is a no-op. Packets it returned become invalid. */
void dg_client_close(struct dg_client *c);

/* The codec's name, "FRAMING+PAYLOAD" ("raw+json"); static storage of c. */
const char *dg_client_codec_name(const struct dg_client *c);

/* The socket, for poll(); readable means dg_client_recv has something.
 * The number stays the same for the life of the client, but after a timed-
 * out request it may name a fresh socket: an epoll set must re-add it. */
int dg_client_fd(const struct dg_client *c);

/* Send packets: pkts[0..n) are encoded and coalesced into as few datagrams
 * as the framing and max_datagram allow (one per packet for raw framing).
 * The packets are only read. */
int dg_client_send(struct dg_client *c, const struct dg_packet *pkts, size_t n,
                   struct dg_client_error *err);

/* Receive the next packet, waiting up to timeout_ms (0: only what has
 * already arrived, negative: the client's timeout). Frames of one datagram
 * are returned one by one, in order. *pkt is owned by the client and valid
 * until the next receive, request or close; json_incref or copy to keep. */
int dg_client_recv(struct dg_client *c, struct dg_packet *pkt, int timeout_ms,
                   struct dg_client_error *err);

/* Send one packet and wait for one reply, resending up to opts.retries
 * times on a timeout (a reply to any attempt is the answer). A DG_EPARSE
 * or DG_ENET answer ends it at once. *reply as for dg_client_recv.
 *
 * A reply is never taken for another request's answer:
 *   - what arrived before the request (late or extra replies, a pending
 *     ICMP error) is discarded before it is sent;
 *   - after a request times out, the next one first moves the client to a
 *     fresh socket (a new source port, the same descriptor number), so
 *     the timed-out request's answer, whenever it comes, never reaches it.
 *     The server then sees a new peer address. (A bound client, opts.bind,
 *     keeps its socket.)
 *   - with opts.id_field, a reply carrying another id is skipped.
 * What only ids can catch: an answered request's second reply (a server
 * that answers twice) that arrives after the next request was sent.
 * dg_client_send and dg_client_recv match nothing: they are the raw
 * layer. */
int dg_client_request(struct dg_client *c, const struct dg_packet *req,
                      struct dg_packet *reply, struct dg_client_error *err);

/* ---- asynchronous client ------------------------------------------------ */

struct dg_aclient;

/* Append-only, with its size first, as struct dg_client_opts: initialise
 * it with DG_ACLIENT_OPTS_INIT. */
struct dg_aclient_opts {
	size_t size;          /* sizeof(struct dg_aclient_opts): DG_ACLIENT_OPTS_INIT */
	unsigned timeout_ms;  /* per request; 0 = 1000 */
	size_t max_datagram;  /* 0 = 65507 */
	int rcvbuf;           /* socket receive buffer bytes (0: the kernel's default);
	                         size it for the replies that may arrive at once */
	/* JSON payloads: the member that carries a request id ("id"). A reply
	 * goes to the request with the same id; a request without one gets a
	 * unique integer. A reply with an id no request in flight has, or with
	 * none, or that does not decode, answers nothing and is dropped (its
	 * request, if any, times out): an answer is never guessed.
	 *
	 * NULL: arrival order. A reply goes to the oldest request in flight on
	 * the client's socket. That is right only for a server that answers
	 * each request once and in order (dgramd with "ordering": "peer" and
	 * "peer_concurrency": 1, the defaults; above 1, use ids). It
	 * never takes a timed-out request's answer for another's: a timeout
	 * moves the client to a fresh socket (a new source port) for the
	 * requests that follow, and the old socket is closed with whatever
	 * would still arrive on it, so requests sent before the timeout and
	 * still in flight end with DG_ETIMEDOUT even if the server answers
	 * them. A reply that does not decode is the oldest request's
	 * DG_EPARSE. */
	const char *id_field;
};

#define DG_ACLIENT_OPTS_INIT { .size = sizeof(struct dg_aclient_opts) }

/* Called once per request, on the event base: status DG_OK with the reply
 * (borrowed for the call), or DG_ETIMEDOUT, DG_EPARSE, DG_ENET,
 * DG_ECANCELED (dg_aclient_free) with reply NULL and err filled.
 *
 * Each outcome is the request's own. An ICMP error (port unreachable)
 * answers one datagram: Linux reports it once on the socket, which does not
 * say for which datagram, and also queues it with the start of that
 * datagram (IP_RECVERR); the request whose datagram starts with the same
 * 256 bytes gets DG_ENET (of identical datagrams, the oldest). A send is
 * never failed for an earlier datagram's error. Where the error queue is
 * not available, ICMP errors are not reported and requests time out. */
typedef void (*dg_aclient_cb)(void *arg, int status, const struct dg_packet *reply,
                              const struct dg_client_error *err);

/* As dg_client_open, on base (borrowed; must outlive the client). */
int dg_aclient_new(struct event_base *base, const char *hostport, const char *codec_spec,
                   const struct dg_aclient_opts *opts, struct dg_aclient **out,
                   struct dg_client_error *err);

/* Send req (only read) and call cb(arg, ...) once with its outcome. Many
 * requests may be in flight. DG_OK, or an error (cb is not called). */
int dg_aclient_request(struct dg_aclient *ac, const struct dg_packet *req,
                       dg_aclient_cb cb, void *arg, struct dg_client_error *err);

/* Requests in flight. */
size_t dg_aclient_pending(const struct dg_aclient *ac);

/* Free; requests still in flight get DG_ECANCELED. NULL is a no-op. */
void dg_aclient_free(struct dg_aclient *ac);

#ifdef __cplusplus
}
#endif
#endif /* DGRAMD_CLIENT_H */
