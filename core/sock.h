/* Listener sockets: create, set options, bind. */
#ifndef DG_SOCK_H
#define DG_SOCK_H

#include <stdbool.h>
#include <sys/socket.h>

#include "addr.h"
#include "conf.h"

/* A non-blocking socket bound to addr with the listener's options
 * (SO_REUSEPORT, pktinfo on a wildcard, rcvbuf, sndbuf); the real address
 * into *bound. exclusive: the first socket of its address: bound without
 * SO_REUSEPORT (which is set after the bind), so it fails with EADDRINUSE
 * if anyone holds the address, and port 0 gets a port nobody holds
 * (SO_REUSEPORT alone would share it with another process of this user).
 * The fd (close-on-exec), or -1 after logging why. */
int dg_sock_bind(const struct dg_listener_conf *lc, const struct dg_addr *addr,
                 bool exclusive, struct dg_addr *bound);
/* Apply rcvbuf and sndbuf again (a socket kept across a reload). */
void dg_sock_opts(const struct dg_listener_conf *lc, int fd, const struct dg_addr *addr);
/* Whether sa is the wildcard address of its family (0.0.0.0 or ::): such a
 * socket needs each datagram's destination (pktinfo) to answer from it. */
bool dg_sock_is_wildcard(const struct sockaddr *sa);

#endif
