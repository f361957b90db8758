#include "config.h"

#include <errno.h>
#include <stddef.h>

#include "io.h"

bool dg_io_no_mmsg;

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
