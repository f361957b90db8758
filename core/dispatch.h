/* Dispatch: a datagram's way from the receive batch to the plugin (checks,
 * session, peer queue, decode, on_packet), the requests' life cycle and
 * conversations. The middle of server -> dispatch -> tx: called by the
 * loop's events (server.c), the host table (host.c) and the harness
 * (testing.c); it calls tx and never the server: the work it leaves on the
 * server's ready lists is posted by its caller (dg_server_post_work). */
#ifndef DG_DISPATCH_H
#define DG_DISPATCH_H

#include <stdint.h>
#include <sys/socket.h>

#include "server.h"

/* local: the address the datagram was sent to (the socket's own on a
 * specific bind); the session key and the source of the replies. */
void dg_dispatch(struct dg_sock *s, unsigned char *buf, size_t len, int flags,
                 const struct sockaddr *peer, socklen_t peerlen,
                 const struct sockaddr *local, socklen_t locallen);
void dg_dispatch_run_ready(struct dg_server *srv);
void dg_dispatch_abort_all(struct dg_server *srv);
/* host->request_complete for an active request: DG_OK (its handle dies;
 * inside one of its callbacks the frame ends when the call returns), or
 * DG_ESTALE (not in progress). */
int dg_dispatch_complete(struct dg_server *srv, uint32_t idx);
/* host->request_await for an active request: DG_OK, DG_ESTALE (not in
 * progress), DG_EBUSY, DG_ECANCELED (stopping), DG_ENOMEM. */
int dg_dispatch_await(struct dg_server *srv, uint32_t idx, unsigned timeout_ms, dg_await_fn cb,
                      void *arg);
/* Stopping: every waiting conversation step gets DG_ECANCELED and its
 * request is completed. */
void dg_dispatch_cancel_awaits(struct dg_server *srv);
/* A reload retires this worker (srv->ho_open): every waiting conversation
 * step's peer gets a socket connected to it (srv->conv), or the step gets
 * DG_ECANCELED as at a shutdown (counted and logged). */
void dg_dispatch_handover(struct dg_server *srv);
/* A listener's session table and its two timers (idle sweep, handler
 * deadline), after its plugin's init(): DG_OK or DG_ENOMEM. */
int dg_dispatch_sessions_init(struct dg_listener *l);
/* Shutdown: every session closes (the plugin is told, reason
 * DG_CLOSE_SHUTDOWN), queued datagrams are dropped and counted. */
void dg_dispatch_sessions_close(struct dg_listener *l, int reason);

#endif
