/* Replies and pushes: encoded into the worker's send batch, sent with
 * sendmmsg at the flush, queued per socket when the kernel cannot take
 * them now. The bottom of server -> dispatch -> tx: it calls neither. */
#ifndef DG_TX_H
#define DG_TX_H

#include <stddef.h>
#include <stdint.h>

#include <dgramd/plugin.h>

#include "server.h"

/* A reply: DG_OK, DG_E2BIG (over max_datagram or max_replies_per_request),
 * DG_EAGAIN (over the amplification credit), DG_EINVAL; drops counted. */
int dg_tx_reply(struct dg_server *srv, uint32_t idx, const struct dg_packet *pkt);
/* The amplification guard counts a datagram's bytes on the wire: its
 * payload and the IP and UDP headers (IPv4 20 + 8, IPv6 40 + 8). */
#define DG_WIRE_HDR_IPV4 28
#define DG_WIRE_HDR_IPV6 48
/* A datagram of len bytes arrived for sess: amplification credit. */
void dg_tx_credit(const struct dg_listener *l, struct dg_session *sess, size_t len);
/* A push to sess's peer outside any request (host->session_send): DG_OK,
 * DG_EAGAIN (amplification), DG_E2BIG, DG_EINVAL; counted. */
int dg_tx_push(struct dg_listener *l, struct dg_session *sess, const struct dg_packet *pkt);
/* Send the batch: only dg_server_after_events, and tx itself when the
 * batch is full. */
void dg_tx_flush(struct dg_server *srv);
/* The socket is writable (EV_WRITE): send what waits in its queue. */
void dg_tx_send_queued(struct dg_sock *s);
void dg_tx_queue_free(struct dg_sock *s);

#endif
