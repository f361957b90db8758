/* Batched datagram I/O: recvmmsg/sendmmsg on Linux, one recvmsg/sendmsg
 * per datagram elsewhere or when the kernel says ENOSYS. */
#ifndef DG_IO_H
#define DG_IO_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#ifdef HAVE_RECVMMSG
typedef struct mmsghdr dg_mmsg;
#else
typedef struct {
	struct msghdr msg_hdr;
	unsigned int msg_len;
} dg_mmsg;
#endif

/* Use the one-datagram-per-call path even where batching works (tests and
 * troubleshooting; also set by the environment variable DGRAMD_NO_MMSG=1). */
extern bool dg_io_no_mmsg;

/* Fault injection for tests (environment DGRAMD_FAULT_SEND=N): every Nth
 * send stops half-way (a batch) or fails with EAGAIN (a single datagram),
 * and a batch cut short is followed by a call that fails with EAGAIN, as a
 * full socket buffer would; the call after an injected EAGAIN goes through
 * (the buffer drained). Loopback never fills one. 0: off. */
extern unsigned dg_io_fault_send;

/* Receive up to n datagrams without blocking, with MSG_TRUNC so msg_len is
 * the datagram's real length. Returns the count, or -1 with errno (EAGAIN
 * when there was nothing to read). */
int dg_io_recv(int fd, dg_mmsg *m, unsigned n);

/* Send up to n datagrams without blocking. Returns how many went out
 * (a prefix of m), or -1 with errno if the first one failed. */
int dg_io_send(int fd, dg_mmsg *m, unsigned n);

/* Room for the control messages of one received datagram: the socket's
 * drop counter (SO_RXQ_OVFL) and, on a wildcard bind, its destination
 * (IP_PKTINFO / IPV6_PKTINFO). */
union dg_rx_cmsg {
	unsigned char buf[CMSG_SPACE(sizeof(uint32_t)) + CMSG_SPACE(sizeof(struct in6_pktinfo))];
	struct cmsghdr align;
};

/* Room for the source address of one datagram sent (IP_PKTINFO /
 * IPV6_PKTINFO). */
union dg_tx_cmsg {
	unsigned char buf[CMSG_SPACE(sizeof(struct in6_pktinfo))];
	struct cmsghdr align;
};

/* Ask the kernel for the control messages dg_io_rx_cmsg reads: the drop
 * counter, and with pktinfo each datagram's destination address (only
 * worth it on a wildcard bind). Returns 0, or -1 with errno and *what
 * naming the option that failed. */
int dg_io_want_cmsg(int fd, int family, bool pktinfo, const char **what);

/* The kernel's count of datagrams dropped on fd so far (what SO_RXQ_OVFL
 * reports with each datagram), from SO_MEMINFO; -1 with errno if unknown. */
int dg_io_drops(int fd, uint32_t *drops);

/* Read a received datagram's control messages. The drop counter, if the
 * datagram carries one, goes to *ovfl (Linux sends it only once it is
 * non-zero). The destination address, if present, replaces the address
 * in *local (same family; the port stays). */
void dg_io_rx_cmsg(struct msghdr *h, uint32_t *ovfl, struct sockaddr *local);

/* Set h's control message so the datagram leaves from the address of
 * `from` (AF_INET or AF_INET6; its port is ignored: the socket's is used).
 * buf must live until the send. */
void dg_io_tx_srcaddr(struct msghdr *h, union dg_tx_cmsg *buf, const struct sockaddr *from);

#endif
