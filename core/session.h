/* Per-peer sessions of one listener: a keyed hash table (the key is the
 * peer address, chosen by whoever sends, and the local address it sent to:
 * on a wildcard bind one peer may talk to several), three lists, and each
 * session's bounded queue of datagrams waiting while the peer has as many
 * requests in progress as it may (the listener's peer_concurrency, which
 * the caller applies: this file only counts `active`). Nothing here logs
 * or touches sockets.
 *
 * Every session is on exactly one list. A session is busy while it has a
 * request in progress or datagrams queued (or waits on the ready list to
 * run them), and then it is on the busy list (unordered).
 * Otherwise it is idle, and on one of two idle lists, by whether its peer
 * was validated (the plugin called host->peer_validate), each in the order
 * its sessions were last used: a datagram, or becoming idle (its last
 * request completed with nothing queued, or its queue drained). So the
 * least recently used idle sessions are the heads of the idle lists: idle
 * expiry and eviction take them in O(1) and never walk past busy sessions,
 * and eviction can prefer unvalidated peers (spoofed sources cost nothing
 * to make) to validated ones. Only this file moves sessions between the
 * lists: callers report each change with dg_session_touch,
 * dg_session_req_start, dg_session_req_done, dg_session_enqueue,
 * dg_session_dequeue, dg_session_ready_push, dg_session_ready_pop and
 * dg_session_validate, and never write `active`, `q_len`, `ready` or
 * `validated`.
 *
 * Which list a session goes on is decided in one place (list_for in
 * session.c). */
#ifndef DG_SESSION_H
#define DG_SESSION_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "list.h"

union dg_sockaddr {
	struct sockaddr sa;
	struct sockaddr_in in;
	struct sockaddr_in6 in6;
};

struct dg_sock;

/* A datagram waiting in a session's queue (undecoded). */
struct dg_qitem {
	struct dg_slink link; /* the session's queue */
	struct dg_sock *s; /* the socket it arrived on */
	size_t len;
	unsigned char data[];
};

/* What a queued datagram costs against queue_bytes besides its own bytes:
 * its entry, so that empty datagrams are bounded by bytes too. */
#define DG_QITEM_OVERHEAD sizeof(struct dg_qitem)

struct dg_session;

/* The lists of a table (struct dg_sessions.lists), by index. */
enum dg_session_list_id {
	DG_SESSIONS_BUSY = 0, /* requests in progress or datagrams queued */
	DG_SESSIONS_IDLE = 1, /* validated peers, least recently used first */
	DG_SESSIONS_UNVALIDATED = 2, /* idle, not validated, least recently used first */
	DG_SESSIONS__LISTS
};

struct dg_session {
	struct dg_session *hnext;            /* hash chain */
	uint32_t slot;                       /* its place in the table's slots (handles) */
	uint32_t gen;                        /* its slot's generation (handles) */
	struct dg_dlink lru;                 /* on its table's lists[list], oldest first */
	struct dg_slink ready_link;          /* the table's ready list */
	union dg_sockaddr peer;
	socklen_t peerlen;
	union dg_sockaddr local;             /* where the peer sent to; replies leave from it */
	socklen_t locallen;
	bool ready;                          /* on the table's ready list */
	uint8_t list;                        /* enum dg_session_list_id */
	bool validated;                      /* the plugin said the peer owns its address */
	struct dg_sessions *table;           /* the table it is in (host functions given only
	                                        the session reach their listener through it) */
	struct dg_sock *sock;                /* the caller's: the socket of its last datagram */
	struct dg_sock *conv;                /* the caller's: a socket connected to the peer, from a
	                                        reload's hand-over (NULL: none) */
	uint32_t waiter;                     /* the caller's: the request waiting for its next
	                                        datagram (host->request_await), index + 1 */
	uint32_t active;                     /* requests in progress */
	uint32_t q_len;
	uint32_t amp_credit;                 /* reply bytes it may still get unvalidated */
	struct dg_fifo q;                    /* struct dg_qitem, oldest first */
	uint64_t last_ms;                    /* last datagram, or when it last became idle */
	void *data;                          /* the plugin's */
	void (*data_free)(void *data);
};

enum dg_drop_policy { DG_DROP_NEWEST, DG_DROP_OLDEST };

/* Handles. Plugins are given a session as a handle, never a pointer (the
 * struct dg_session * of <dgramd/plugin.h> is opaque to them): a plugin may
 * keep one after on_session_close() by mistake, and its next host call must
 * then fail (DG_ESTALE), not write through freed memory. A handle is
 * (server id << 56) | (gen mod 2^24 << 32) | (tag << 24) | (slot + 1), as
 * request handles are (reqtab.h): the server id and the tag (the
 * listener's index) find the table, the slot and its generation the
 * session; a slot's generation changes when its session is freed, so a
 * stale handle never matches (until the slot has been reused 2^24 times;
 * freed slots are reused oldest first, so that takes 2^24 times the
 * number of free slots). Slots are indices: the array may move when it
 * grows. */
#define DG_SESSION_GEN_MASK 0xffffffu
#define DG_SESSION_TAG_SHIFT 24
#define DG_SESSION_ID_SHIFT 56
_Static_assert(sizeof(uintptr_t) >= 8, "session handles are 64-bit values held in a pointer");

struct dg_session_slot {
	struct dg_session *s; /* NULL while free */
	uint32_t gen;
	uint32_t next;        /* the free list (index + 1) */
};

struct dg_sessions {
	struct dg_session **buckets;
	uint32_t mask;  /* buckets - 1, a power of two minus one */
	uint32_t count;
	uint32_t max;
	uint32_t unvalidated;        /* sessions of peers not validated (busy or idle) */
	struct dg_dlist lists[DG_SESSIONS__LISTS];
	struct dg_fifo ready;         /* sessions with queued datagrams to run */
	uint64_t now_ms;              /* the latest time the table was given */
	uint64_t seed[2];            /* hash key, random per table */
	struct dg_session *last;     /* the last session found: bursts skip the hash */
	size_t q_bytes;              /* queued in all sessions: len + DG_QITEM_OVERHEAD each */
	/* Totals over several tables (a server's listeners: srv->queued and its
	 * memory budget's queued bytes), kept here with q_bytes on every
	 * enqueue and dequeue, so nobody mirrors them by hand; NULL: none. */
	unsigned long *total_len;    /* datagrams queued */
	size_t *total_bytes;         /* as q_bytes */
	struct dg_session_slot *slots; /* handles: n_slots, growing by doubling up to max */
	uint32_t n_slots;
	struct dg_ififo free_slots;   /* oldest freed first */
	uint8_t id, tag;              /* the caller's: in every handle */
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

/* A datagram from s arrived now: if idle, it moves to the most recently
 * used end of the idle list. now_ms never goes back (a monotonic clock). */
void dg_session_touch(struct dg_sessions *t, struct dg_session *s, uint64_t now_ms);

/* A request of s starts: s is busy until its last request is done. */
void dg_session_req_start(struct dg_sessions *t, struct dg_session *s);

/* A request of s is done (now_ms): with no other request and nothing
 * queued, s becomes idle, at the most recently used end. */
void dg_session_req_done(struct dg_sessions *t, struct dg_session *s, uint64_t now_ms);

/* s has datagrams queued and room for another request (fewer in progress
 * than the caller's limit): it joins the end of
 * the ready list (if not on it already), whose sessions the caller runs
 * after the current callback. While on it, s is busy. A session on the
 * ready list is only freed at shutdown, with the table. */
void dg_session_ready_push(struct dg_sessions *t, struct dg_session *s);

/* The first session of the ready list, taken off it (idle again if it
 * has nothing queued and no request), or NULL if the list is empty. */
struct dg_session *dg_session_ready_pop(struct dg_sessions *t);

/* The idle session (no request in progress, nothing queued) to evict
 * first: the least recently used unvalidated one, else the least recently
 * used validated one; NULL if every session is busy. O(1). */
struct dg_session *dg_session_lru_idle(struct dg_sessions *t);

/* The least recently used idle unvalidated session, or NULL. O(1). */
struct dg_session *dg_session_lru_unvalidated(struct dg_sessions *t);

/* The plugin validated s's peer (sessions start unvalidated): it leaves
 * the unvalidated count, and its idle list. */
void dg_session_validate(struct dg_sessions *t, struct dg_session *s);

/* The least recently used idle session, validated or not, if it was last
 * used at or before now_ms - idle_ms, else NULL. O(1). */
struct dg_session *dg_session_expired(struct dg_sessions *t, uint64_t now_ms, uint64_t idle_ms);

/* Some session, idle or busy, or NULL when the table is empty (to close
 * them all at shutdown). */
struct dg_session *dg_session_any(struct dg_sessions *t);

/* Remove s from the table and free it with its queue (queued datagrams
 * are counted into *dropped if not NULL). The caller has already told the
 * plugin and freed s->data. */
void dg_session_free(struct dg_sessions *t, struct dg_session *s, unsigned *dropped);

/* Queue a copy of a datagram. limit: most datagrams in this session's
 * queue; byte_cap: most bytes queued in the whole table, each datagram
 * counting len + DG_QITEM_OVERHEAD. When either is
 * reached the policy decides: DG_DROP_NEWEST drops this datagram,
 * DG_DROP_OLDEST drops the session's oldest ones to make room (if that is
 * not enough, this one too). Returns how many datagrams were dropped, old
 * or new; *queued says whether this one was queued. */
unsigned dg_session_enqueue(struct dg_sessions *t, struct dg_session *s, struct dg_sock *sock,
                            const unsigned char *data, size_t len, uint32_t limit,
                            size_t byte_cap, enum dg_drop_policy policy, bool *queued);

/* Take the oldest queued datagram (the caller frees it with free()). A
 * session left with no request and nothing queued becomes idle. */
struct dg_qitem *dg_session_dequeue(struct dg_sessions *t, struct dg_session *s);

/* The handle of s that plugins are given (see "Handles" above). */
static inline struct dg_session *dg_session_handle(const struct dg_session *s)
{
	const struct dg_sessions *t = s->table;

	return (struct dg_session *)(uintptr_t)(((uint64_t)t->id << DG_SESSION_ID_SHIFT) |
	        ((uint64_t)(s->gen & DG_SESSION_GEN_MASK) << 32) |
	        ((uint64_t)t->tag << DG_SESSION_TAG_SHIFT) | ((uint64_t)s->slot + 1));
}

/* The server id and the tag a handle was made with (any value: they are
 * only read out of it, the handle is never dereferenced). */
static inline unsigned dg_session_handle_id(const struct dg_session *h)
{
	return (unsigned)((uint64_t)(uintptr_t)h >> DG_SESSION_ID_SHIFT);
}

static inline unsigned dg_session_handle_tag(const struct dg_session *h)
{
	return (unsigned)((uint64_t)(uintptr_t)h >> DG_SESSION_TAG_SHIFT) & 0xffu;
}

/* The live session of t a handle names, or NULL if it is stale (its
 * session was freed) or not one of t's. O(1); h is never dereferenced. */
struct dg_session *dg_session_lookup(const struct dg_sessions *t, const struct dg_session *h);

/* The oldest queued datagram of s, left in the queue, or NULL. */
static inline struct dg_qitem *dg_session_q_first(const struct dg_session *s)
{
	return dg_list_entry(dg_fifo_first(&s->q), struct dg_qitem, link);
}

#endif
