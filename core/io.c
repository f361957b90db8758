#include "config.h"

#include <errno.h>
#include <stddef.h>

#include "io.h"

bool dg_io_no_mmsg;
unsigned dg_io_fault_send;

/* Returns true when this send must fail with EAGAIN; may shrink *n. */
static bool fault(unsigned *n)
{
	static unsigned calls;
	static bool fail_next;

	if (!dg_io_fault_send)
		return false;
	if (fail_next) {
		fail_next = false;
		errno = EAGAIN;
		return true;
	}
	if (++calls % dg_io_fault_send)
		return false;
	if (*n < 2) {
		errno = EAGAIN;
		return true;
	}
	*n /= 2;
	fail_next = true;
	return false;
}

int dg_io_recv(int fd, dg_mmsg *m, unsigned n)
{
#ifdef HAVE_RECVMMSG
	if (!dg_io_no_mmsg) {
		/* Linux: with MSG_TRUNC, msg_len is the full datagram length. */
		int r = recvmmsg(fd, m, n, MSG_DONTWAIT | MSG_TRUNC, NULL);
		if (r >= 0 || errno != ENOSYS)
			return r;
		dg_io_no_mmsg = true;
	}
#endif
	unsigned i;
	for (i = 0; i < n; i++) {
		ssize_t r = recvmsg(fd, &m[i].msg_hdr, MSG_DONTWAIT | MSG_TRUNC);
		if (r < 0)
			return i ? (int)i : -1;
		m[i].msg_len = (unsigned)r;
	}
	return (int)i;
}

int dg_io_send(int fd, dg_mmsg *m, unsigned n)
{
	if (fault(&n))
		return -1;
#ifdef HAVE_SENDMMSG
	if (!dg_io_no_mmsg) {
		int r = sendmmsg(fd, m, n, MSG_DONTWAIT);
		if (r >= 0 || errno != ENOSYS)
			return r;
		dg_io_no_mmsg = true;
	}
#endif
	unsigned i;
	for (i = 0; i < n; i++) {
		ssize_t r = sendmsg(fd, &m[i].msg_hdr, MSG_DONTWAIT);
		if (r < 0)
			return i ? (int)i : -1;
		m[i].msg_len = (unsigned)r;
	}
	return (int)i;
}
