/* The request table: slots addressed by index, handles checked by
 * generation. The table may move when it grows (realloc): keep indices and
 * handles, never pointers, across anything that can allocate a request. */
#ifndef DG_REQTAB_H
#define DG_REQTAB_H

#include <assert.h>
#include <stdbool.h>
#include <stdint.h>

#include <dgramd/plugin.h>

#include "list.h"

struct dg_listener;
struct dg_sock;
struct dg_session;
struct dg_await;

/* Handle = (table id << 56) | (gen mod 2^24 << 32) | (tag << 24) |
 * (index + 1); gen changes whenever a frame completes, so a stale handle
 * never matches (until the same slot has been reused 2^24 times). The tag
 * (the listener's index) outlives the request: a call with a dead handle
 * can still be charged to the right listener. The table id names the
 * server (one table each) among those alive in the process, so that the
 * 1.0 host calls that take a bare handle find it. */
#define DG_REQTAB_MAX ((1u << 24) - 1) /* slots: index + 1 fits 24 bits */
#define DG_REQTAB_TAG_SHIFT 24
#define DG_REQTAB_GEN_MASK 0xffffffu
#define DG_REQTAB_ID_SHIFT 56

/* A request's life cycle: what it waits for. Every change goes through
 * dg_req_set(), which checks it against dg_req_next[] in debug builds.
 *
 *   FREE ----alloc----> READY ----(run a frame)----> IN_CALL
 *   READY: frames left to run (from the post event), or none: freed
 *   IN_CALL: inside a plugin callback for the request (on_packet,
 *       on_error, a conversation step's callback, on_expire); when it
 *       returns: DONE_IN_CALL or the handle retired -> READY (the frame is
 *       done), DG_PENDING -> PENDING, or AWAITING if the callback armed a
 *       step (host->request_await)
 *   DONE_IN_CALL: complete() inside the callback; the frame ends when it
 *       returns -> READY
 *   PENDING: waiting for complete() (-> READY), or handler_timeout_ms
 *       (on_expire: -> IN_CALL); a step armed from outside -> AWAITING
 *   AWAITING: a conversation step waits for the peer's next datagram or
 *       its own timeout (the step's callback: -> IN_CALL), or complete()
 *       (-> READY)
 *   PENDING, AWAITING -> FREE: abandoned at shutdown.
 *
 * Facts that are not states: the server counts PENDING and AWAITING
 * requests (and those IN_CALL for a step or on_expire) in srv->pending;
 * whether a step is armed is the session's waiter (a callback may arm one
 * while IN_CALL); whether the request is on its listener's deadline list
 * is that list's link (dg_idlist_linked, dispatch.c). */
enum dg_req_state {
	DG_REQ_FREE = 0,
	DG_REQ_READY,
	DG_REQ_IN_CALL,
	DG_REQ_DONE_IN_CALL,
	DG_REQ_PENDING,
	DG_REQ_AWAITING,
	DG_REQ__STATES
};

/* The legal transitions: bit `to` of dg_req_next[from]. */
extern const uint8_t dg_req_next[DG_REQ__STATES];

static inline bool dg_req_legal(enum dg_req_state from, enum dg_req_state to)
{
	return from < DG_REQ__STATES && to < DG_REQ__STATES && (dg_req_next[from] >> to & 1u);
}

/* A request: one datagram whose frames go to the handler one at a time. */
struct dg_req {
	uint32_t gen;
	uint8_t tag;                /* set by the caller of dg_reqtab_alloc */
	uint8_t state;              /* enum dg_req_state: only dg_req_set() writes it */
	uint32_t next;              /* the table's free list, or the server's ready list
	                               (dg_ififo) */
	struct dg_ilink dl;         /* the listener's deadline list (dg_idlist) */
	uint64_t deadline_ms;
	struct dg_listener *l;
	struct dg_sock *s;
	struct dg_session *sess; /* the peer's session; outlives the request */
	unsigned frame, frames;
	struct dg_packet *rest;  /* deferred multi-frame: packets not yet delivered */
	unsigned char *copy;     /* the datagram bytes rest[] points into */
	uint64_t serial;         /* unique for the worker's life: owns tx slots */
	unsigned tx_slot;        /* reply coalescing: the slot it last wrote, if still its own */
	unsigned replies;        /* reply calls for the current frame (max_replies_per_request) */
	size_t mem;              /* bytes charged to the memory budget until it is freed */
	void *data;              /* the plugin's slot (host->request_set_data) */
	void (*data_free)(void *data);
	struct dg_await *aw;     /* the caller's (dispatch): made at the slot's first await,
	                            kept across reuse, freed with the table by the caller */
};

struct dg_reqtab {
	struct dg_req *reqs;
	uint32_t n;         /* slots allocated */
	uint32_t max;       /* most slots ever */
	struct dg_ififo free; /* a stack: the slot freed last is reused first */
	uint32_t used;
	uint8_t id;         /* the caller's: in every handle (DG_REQTAB_ID_SHIFT) */
};

/* Start with min(initial, max) slots; max is capped at DG_REQTAB_MAX.
 * DG_OK or DG_ENOMEM. */
int dg_reqtab_init(struct dg_reqtab *t, uint32_t initial, uint32_t max);
void dg_reqtab_release(struct dg_reqtab *t);

/* A fresh, zeroed slot (READY) with a new generation; false when max
 * slots are in use (or memory is short). */
bool dg_reqtab_alloc(struct dg_reqtab *t, uint32_t *idx);

/* Return a slot; its generation changes, so every handle to it dies. */
void dg_reqtab_free(struct dg_reqtab *t, uint32_t idx);

static inline dg_req_t dg_reqtab_handle(const struct dg_reqtab *t, uint32_t idx)
{
	return ((uint64_t)t->id << DG_REQTAB_ID_SHIFT) |
	       ((uint64_t)(t->reqs[idx].gen & DG_REQTAB_GEN_MASK) << 32) |
	       ((uint64_t)t->reqs[idx].tag << DG_REQTAB_TAG_SHIFT) | (idx + 1);
}

/* The tag a handle was made with, live or dead. */
static inline unsigned dg_reqtab_handle_tag(dg_req_t h)
{
	return (unsigned)(h >> DG_REQTAB_TAG_SHIFT) & 0xffu;
}

/* The table id a handle was made with. */
static inline unsigned dg_reqtab_handle_id(dg_req_t h)
{
	return (unsigned)(h >> DG_REQTAB_ID_SHIFT);
}

/* The one place a request changes state (assert: a legal transition). */
static inline void dg_req_set(struct dg_req *r, enum dg_req_state to)
{
	assert(dg_req_legal((enum dg_req_state)r->state, to));
	r->state = (uint8_t)to;
}

/* The active request a handle names, or NULL if it is stale or invalid. */
struct dg_req *dg_reqtab_lookup(struct dg_reqtab *t, dg_req_t h, uint32_t *idx);

#endif
