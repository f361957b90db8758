/* Batched datagram I/O: recvmmsg/sendmmsg on Linux, one recvmsg/sendmsg
 * per datagram elsewhere or when the kernel says ENOSYS. */
#ifndef DG_IO_H
#define DG_IO_H

#include <stdbool.h>
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
 * batched send stops half-way and the call after it fails with EAGAIN, as a
 * full socket buffer would. Loopback never fills one. 0: off. */
extern unsigned dg_io_fault_send;

/* Receive up to n datagrams without blocking, with MSG_TRUNC so msg_len is
 * the datagram's real length. Returns the count, or -1 with errno (EAGAIN
 * when there was nothing to read). */
int dg_io_recv(int fd, dg_mmsg *m, unsigned n);

/* Send up to n datagrams without blocking. Returns how many went out
 * (a prefix of m), or -1 with errno if the first one failed. */
int dg_io_send(int fd, dg_mmsg *m, unsigned n);

#endif
