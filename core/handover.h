/* The master's control channel to each worker (an AF_UNIX SOCK_SEQPACKET
 * socketpair made at fork), and the sockets it carries on a reload.
 *
 * On SIGHUP the master starts the new generation paused (its workers do
 * not read the listener sockets yet), then tells each old worker to retire
 * (DG_HO_RETIRE). A retiring worker stops reading the listener sockets it
 * shares with the new generation and, for each conversation waiting for a
 * peer (host->request_await), asks the master for a socket bound to the
 * listener's address and port and connected to that peer (DG_HO_SOCKET):
 * Linux delivers a peer's datagrams to the connected socket of its
 * SO_REUSEPORT group that matches it (compute_score ranks a connected
 * socket above the group's unconnected ones; since 5.7 a group with
 * connected sockets falls back to scoring), so the old worker alone gets
 * that peer's next datagrams. The master makes them (root, when "user" is
 * set, owns the group: a socket may only join a group of its own uid, and
 * a port below 1024 needs root) and only for the addresses of the
 * asking worker's own listeners. The worker then reads what is left in the
 * listener sockets, says it is done (DG_HO_RETIRED), and the master lets
 * the new generation read (DG_HO_GO).
 *
 * A stand-alone helper: it includes its own header and conf.h (addresses,
 * listener configs) and never logs; callers say what failed. */
#ifndef DG_HANDOVER_H
#define DG_HANDOVER_H

#include <stdint.h>
#include <sys/socket.h>

#include "conf.h"

enum dg_ho_type {
	DG_HO_GO = 1,      /* master -> new worker: read the listener sockets */
	DG_HO_RETIRE = 2,  /* master -> old worker: hand over, stop reading them */
	DG_HO_RETIRED = 3, /* old worker -> master: done (no more DG_HO_SOCKET) */
	DG_HO_SOCKET = 4,  /* old worker -> master: a connected socket, please;
	                      master -> worker: the answer (the fd, or err) */
};

struct dg_ho_msg {
	uint32_t type;      /* enum dg_ho_type */
	int32_t err;        /* an answer's errno, 0 when it carries the socket */
	uint32_t listener;  /* DG_HO_SOCKET: index in the worker's config */
	uint32_t bind;      /* and the index of the bind in that listener */
	uint32_t locallen, peerlen;
	struct sockaddr_storage local; /* the listener's address the peer sent to */
	struct sockaddr_storage peer;
};

/* A control socketpair (close-on-exec): sv[0] for the master, sv[1] for
 * the worker. 0, or -1 with errno. */
int dg_ho_pair(int sv[2]);

/* Send a message without a descriptor. 0, or -1 with errno. */
int dg_ho_send(int fd, enum dg_ho_type type);

/* Receive one message (waiting at most timeout_ms; -1: for ever) and the
 * descriptor it carries, if any (*passed, -1 if none; the caller owns it).
 * 0; -1 with errno (ETIMEDOUT, EPROTO for a malformed message, EMFILE when
 * a descriptor could not be received); 1 when the other end is gone. */
int dg_ho_recv(int fd, struct dg_ho_msg *msg, int *passed, int timeout_ms);

/* Worker side: a socket bound to local (an address of bind `bind` of
 * listener `listener`) and connected to peer, from the master over fd
 * within timeout_ms. The descriptor (close-on-exec, non-blocking), or -1
 * with errno (the master's, when it refused or failed). */
int dg_ho_connect(int fd, unsigned listener, unsigned bind, const struct sockaddr *local,
                  socklen_t locallen, const struct sockaddr *peer, socklen_t peerlen,
                  unsigned timeout_ms);

/* Master side: answer a DG_HO_SOCKET request of a worker that serves cfg,
 * whose sockets are bound to bound[] (one per bind of every listener, in
 * config order: the real ports). The local address must be the bind's
 * own (for a wildcard bind: any address of its family, the bind's port),
 * the peer one of the same family. The socket is made (SO_REUSEPORT,
 * joining the listener's group; a filter that lets only the peer's
 * datagrams in, so that nothing else lands in it before connect()) and
 * sent back, or the errno of the refusal or failure. 0 when the answer
 * went out (whatever it said), -1 with errno if it could not be sent.
 * *why: what was refused or failed (a static string), "" when it worked. */
int dg_ho_serve(int fd, const struct dg_ho_msg *req, const struct dg_config *cfg,
                const struct dg_addr *bound, const char **why);

#endif
