/*
 * dgramd return codes: one set for the whole API (the plugin ABI, codecs,
 * the client library, the test harness), as nginx has NGX_OK, NGX_AGAIN...
 * 0 is success, errors are negative. <dgramd/plugin.h> and
 * <dgramd/codec.h> (so <dgramd/client.h> too) include it; include it alone
 * where only the codes are needed. Part of the ABI: values never change,
 * new codes are appended.
 */
#ifndef DGRAMD_RC_H
#define DGRAMD_RC_H

#ifdef __cplusplus
extern "C" {
#endif

enum dg_rc {
	DG_OK = 0,
	DG_ERROR = -1,  /* generic failure, already reported */
	DG_EINVAL = -2, /* invalid argument or input */
	DG_ENOMEM = -3, /* allocation failed */
	DG_ESTALE = -4, /* a request or session handle that is dead (completed, closed) */
	DG_E2BIG = -5,  /* does not fit the buffer or limit */
	DG_EAGAIN = -6, /* try again later */
	DG_ETIMEDOUT = -7, /* no answer in time (client) */
	DG_EPARSE = -8,    /* a datagram could not be decoded (client) */
	DG_ENET = -9,      /* a network error: resolve, send, ICMP (client) */
	DG_ECANCELED = -10, /* the request was cancelled (client shut down, server stopping) */
	DG_EBUSY = -11,     /* already in use (a second await on one session) */
};

#ifdef __cplusplus
}
#endif
#endif /* DGRAMD_RC_H */
