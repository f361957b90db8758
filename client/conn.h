/* Private to libdgramd: what the blocking and the asynchronous client
 * share: resolving, the socket, encoding and decoding. */
#ifndef DG_CLIENT_CONN_H
#define DG_CLIENT_CONN_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include <dgramd/client.h>

struct dg_conn {
	int fd;
	bool connected;
	int mode;             /* as given to dg_conn_open */
	int rcvbuf;
	bool want_recverr;
	bool recverr;         /* IP_RECVERR on: ICMP errors queue with what they answer */
	size_t last_len;      /* bytes of the last datagram sent (in txbuf) */
	struct sockaddr_storage peer;
	socklen_t peerlen;
	struct dg_codec *codec;
	size_t max_datagram;
	unsigned char *rxbuf; /* max_datagram + 1 */
	unsigned char *txbuf; /* max_datagram */
	char name[300];       /* "host:port" as given, for messages */
	struct dg_frame frames[DG_CODEC_MAX_FRAMES];
	struct dg_packet pkts[DG_CODEC_MAX_FRAMES]; /* decoded frames of the last datagram */
	unsigned n, next;
};

/* Fill *err (may be NULL); returns code. */
int dg_conn_fail(struct dg_client_error *err, int code, int sys_errno, size_t offset,
                 const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* A caller's options struct (its first member the size_t it was built
 * with; see client.h), of which this library knows `known` bytes: DG_OK,
 * or DG_EINVAL with err naming `what` when its size is 0 or over
 * DG_CONN_OPTS_MAX (not initialised with `init`) or when a byte past
 * `known` is set (an option of a newer libdgramd). */
#define DG_CONN_OPTS_MAX 4096
int dg_conn_opts_check(const void *opts, size_t known, const char *what, const char *init,
                       struct dg_client_error *err);

/* dst->field = src->field if the caller's struct (of type) has the whole
 * field; dst keeps its default otherwise. */
#define DG_CONN_OPT(dst, src, type, field)                                     \
	do {                                                                   \
		if ((src)->size >= offsetof(type, field) + sizeof((src)->field)) \
			(dst)->field = (src)->field;                           \
	} while (0)

/* mode: 0 connect, 1 unconnected, 2 bind hostport; | DG_CONN_RECVERR to
 * queue ICMP errors (IP_RECVERR; read them with dg_conn_read_error, or
 * poll() keeps reporting POLLERR). */
#define DG_CONN_RECVERR 4
int dg_conn_open(struct dg_conn *c, const char *hostport, const char *spec, size_t max_datagram,
                 int mode, int rcvbuf, struct dg_client_error *err);
void dg_conn_close(struct dg_conn *c);

int dg_conn_send(struct dg_conn *c, const struct dg_packet *pkts, size_t n,
                 struct dg_client_error *err);

/* Read one datagram without blocking and decode all of its frames into
 * c->pkts (c->n, c->next = 0). DG_OK, DG_EAGAIN (nothing there),
 * DG_EPARSE, DG_ENET. Releases the previous datagram's packets first. */
int dg_conn_read(struct dg_conn *c, struct dg_client_error *err);

/* Release the decoded packets. */
void dg_conn_release(struct dg_conn *c);

/* Discard what has arrived and not been read: decoded packets, queued
 * datagrams, a pending socket error and queued ICMP errors. They answer
 * earlier datagrams. Bounded: at most 4096 datagrams per call. */
void dg_conn_drain(struct dg_conn *c);

/* Move to a fresh socket (a new source port; the new one is opened before
 * the old is closed, so the port differs): whatever answers a datagram sent
 * from the old one never arrives here. keep_fd: the new socket takes the
 * old descriptor number (dup2), for callers that poll() it. Not for a
 * bound (mode 2) connection. DG_OK, or DG_ENET with err filled (the old
 * socket is kept). */
int dg_conn_renew(struct dg_conn *c, bool keep_fd, struct dg_client_error *err);

/* Read one queued ICMP error (IP_RECVERR): DG_OK with *e filled and the
 * start of the datagram it answers in c->rxbuf (*quoted bytes), DG_EAGAIN
 * when there is none. */
int dg_conn_read_error(struct dg_conn *c, size_t *quoted, struct dg_client_error *e);

/* JSON id matching (id_field), shared by both clients. The id of a JSON
 * object packet as compact JSON text (malloc'd; NULL if it has none or
 * out of memory). */
char *dg_conn_id_of(const char *field, const struct dg_packet *pkt);

/* The request as it will be sent with an id: *send is a copy with a fresh
 * integer id (++*next) if req is an object without one, else NULL (send
 * req); *key its id text (malloc'd), NULL if req is not an object.
 * DG_OK or DG_ENOMEM. */
int dg_conn_tag(const char *field, long long *next, const struct dg_packet *req,
                struct json_t **send, char **key);

/* FNV-1a, for hashing ids and datagram starts. */
uint32_t dg_conn_hash(const void *data, size_t len);

#endif
