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
 *   DG_EPARSE     a datagram arrived but does not decode (reason, offset);
 *                 the next receive works normally;
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

struct dg_client_opts {
	unsigned timeout_ms;   /* per attempt; 0 = 1000 */
	unsigned retries;      /* resends after a timeout in dg_client_request */
	size_t max_datagram;   /* 0 = 65507 */
	int rcvbuf;            /* socket receive buffer bytes (0: the kernel's default) */
	bool unconnected;      /* accept replies from any address (broadcast);
	                          ICMP errors are then not reported */
	bool bind;             /* bind host:port and receive from anyone (a
	                          sink: dgramc --listen); implies unconnected */
};

/* Open a client for "host:port" ("127.0.0.1:5300", "[::1]:5300",
 * "localhost:5300"; names are resolved once, with getaddrinfo) and a codec
 * spec: a name ("json", "raw", "length-prefixed") or a JSON object text
 * ('{"framing": "length-prefixed", "payload": "json"}'). opts may be NULL.
 * *out is owned by the caller: dg_client_close(). */
int dg_client_open(const char *hostport, const char *codec_spec,
                   const struct dg_client_opts *opts, struct dg_client **out,
                   struct dg_client_error *err);

/* Close and free; NULL is a no-op. Packets it returned become invalid. */
void dg_client_close(struct dg_client *c);

/* The codec's name, "FRAMING+PAYLOAD" ("raw+json"); static storage of c. */
const char *dg_client_codec_name(const struct dg_client *c);

/* The socket, for poll(); readable means dg_client_recv has something. */
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
 * times on a timeout. A DG_EPARSE or DG_ENET answer ends it at once.
 * *reply as for dg_client_recv. */
int dg_client_request(struct dg_client *c, const struct dg_packet *req,
                      struct dg_packet *reply, struct dg_client_error *err);

/* ---- asynchronous client ------------------------------------------------ */

struct dg_aclient;

struct dg_aclient_opts {
	unsigned timeout_ms;  /* per request; 0 = 1000 */
	size_t max_datagram;  /* 0 = 65507 */
	int rcvbuf;           /* socket receive buffer bytes (0: the kernel's default);
	                         size it for the replies that may arrive at once */
	/* JSON payloads: the member that carries a request id ("id"). A reply
	 * goes to the request with the same id; a request without one gets a
	 * unique integer. NULL: replies go to requests in arrival order. */
	const char *id_field;
};

/* Called once per request, on the event base: status DG_OK with the reply
 * (borrowed for the call), or DG_ETIMEDOUT, DG_EPARSE, DG_ENET,
 * DG_ECANCELED (dg_aclient_free) with reply NULL and err filled. */
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
