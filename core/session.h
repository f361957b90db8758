/* Per-peer sessions of one listener: a keyed hash table (the key is the
 * peer address, chosen by whoever sends, and the local address it sent to:
 * on a wildcard bind one peer may talk to several), an LRU list for eviction and idle
 * expiry, and each session's bounded queue of datagrams waiting while the
 * peer has a request in progress. Nothing here logs or touches sockets. */
#ifndef DG_SESSION_H
#define DG_SESSION_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

union dg_sockaddr {
	struct sockaddr sa;
	struct sockaddr_in in;
	struct sockaddr_in6 in6;
};

struct dg_sock;

/* A datagram waiting in a session's queue (undecoded). */
struct dg_qitem {
	struct dg_qitem *next;
	struct dg_sock *s; /* the socket it arrived on */
	size_t len;
	unsigned char data[];
};

struct dg_session {
	struct dg_session *hnext;            /* hash chain */
	struct dg_session *lru_prev, *lru_next;
	struct dg_session *ready_next;       /* sessions with queued work to run */
	union dg_sockaddr peer;
	socklen_t peerlen;
	union dg_sockaddr local;             /* where the peer sent to; replies leave from it */
	socklen_t locallen;
	bool ready;
	bool validated;                      /* the plugin said the peer owns its address */
	uint32_t active;                     /* requests in progress */
	uint32_t q_len;
	uint32_t amp_credit;                 /* reply bytes it may still get unvalidated */
	struct dg_qitem *q_head, *q_tail;
	uint64_t last_ms;                    /* last datagram or completion */
	void *data;                          /* the plugin's */
	void (*data_free)(void *data);
};

enum dg_drop_policy { DG_DROP_NEWEST, DG_DROP_OLDEST };

struct dg_sessions {
	struct dg_session **buckets;
	uint32_t mask;  /* buckets - 1, a power of two minus one */
	uint32_t count;
	uint32_t max;
	struct dg_session *lru_head; /* least recently used */
	struct dg_session *lru_tail;
	uint64_t seed[2];            /* hash key, random per table */
	struct dg_session *last;     /* the last session found: bursts skip the hash */
	size_t q_bytes;              /* bytes queued in all sessions */
};

/* DG_OK or DG_ENOMEM. max: the most sessions at once. */
int dg_sessions_init(struct dg_sessions *t, uint32_t max);

/* Free every session (the caller closed them first: see dg_session_close). */
void dg_sessions_release(struct dg_sessions *t);

/* The session of peer sa talking to local address `local` (address and
 * port), or NULL. */
struct dg_session *dg_session_find(struct dg_sessions *t, const struct sockaddr *sa,
                                   const struct sockaddr *local);

/* Create a session for a (peer, local) pair not in the table (count < max);
 * both addresses are copied. NULL if out of memory. It starts most recently
 * used. */
struct dg_session *dg_session_create(struct dg_sessions *t, const struct sockaddr *sa,
                                     socklen_t len, const struct sockaddr *local,
                                     socklen_t locallen, uint64_t now_ms);

/* Mark s used now: it moves to the most recently used end. */
void dg_session_touch(struct dg_sessions *t, struct dg_session *s, uint64_t now_ms);

/* The least recently used session with no request in progress and nothing
 * queued, or NULL. Looks at most at `scan` sessions from the LRU end. */
struct dg_session *dg_session_lru_idle(struct dg_sessions *t, unsigned scan);

/* The oldest idle session unused since before now_ms - idle_ms, or NULL. */
struct dg_session *dg_session_expired(struct dg_sessions *t, uint64_t now_ms, uint64_t idle_ms);

/* Remove s from the table and free it with its queue (queued datagrams
 * are counted into *dropped if not NULL). The caller has already told the
 * plugin and freed s->data. */
void dg_session_free(struct dg_sessions *t, struct dg_session *s, unsigned *dropped);

/* Queue a copy of a datagram. limit: most datagrams in this session's
 * queue; byte_cap: most bytes queued in the whole table. When either is
 * reached the policy decides: DG_DROP_NEWEST drops this datagram,
 * DG_DROP_OLDEST drops the session's oldest ones to make room (if that is
 * not enough, this one too). Returns how many datagrams were dropped, old
 * or new; *queued says whether this one was queued. */
unsigned dg_session_enqueue(struct dg_sessions *t, struct dg_session *s, struct dg_sock *sock,
                            const unsigned char *data, size_t len, uint32_t limit,
                            size_t byte_cap, enum dg_drop_policy policy, bool *queued);

/* Take the oldest queued datagram (the caller frees it with free()). */
struct dg_qitem *dg_session_dequeue(struct dg_sessions *t, struct dg_session *s);

#endif
