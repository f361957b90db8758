/* Private to libdgramd: what the blocking and the asynchronous client
 * share: resolving, the socket, encoding and decoding. */
#ifndef DG_CLIENT_CONN_H
#define DG_CLIENT_CONN_H

#include <stdarg.h>
#include <sys/socket.h>

#include <dgramd/client.h>

struct dg_conn {
	int fd;
	bool connected;
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

/* mode: 0 connect, 1 unconnected, 2 bind hostport. */
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

#endif
