#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "reqtab.h"

#define TO(s) (1u << (s))

const uint8_t dg_req_next[DG_REQ__STATES] = {
	[DG_REQ_FREE] = TO(DG_REQ_READY),
	[DG_REQ_READY] = TO(DG_REQ_IN_CALL) | TO(DG_REQ_FREE),
	[DG_REQ_IN_CALL] = TO(DG_REQ_DONE_IN_CALL) | TO(DG_REQ_READY) | TO(DG_REQ_PENDING) |
	                   TO(DG_REQ_AWAITING),
	[DG_REQ_DONE_IN_CALL] = TO(DG_REQ_READY),
	[DG_REQ_PENDING] = TO(DG_REQ_IN_CALL) | TO(DG_REQ_READY) | TO(DG_REQ_AWAITING) |
	                   TO(DG_REQ_FREE),
	[DG_REQ_AWAITING] = TO(DG_REQ_IN_CALL) | TO(DG_REQ_READY) | TO(DG_REQ_FREE),
};

#define SLOTS(t) DG_IARRAY((t)->reqs, struct dg_req, next)

/* Slots [from, to) join the free list, taken in index order. */
static void link_free(struct dg_reqtab *t, uint32_t from, uint32_t to)
{
	while (to-- > from)
		dg_ififo_push_head(&t->free, SLOTS(t), to);
}

int dg_reqtab_init(struct dg_reqtab *t, uint32_t initial, uint32_t max)
{
	memset(t, 0, sizeof(*t));
	t->max = max < DG_REQTAB_MAX ? max : DG_REQTAB_MAX;
	initial = initial < t->max ? initial : t->max;
	t->n = initial;
	t->reqs = calloc(t->n, sizeof(*t->reqs));
	if (!t->reqs)
		return DG_ENOMEM;
	link_free(t, 0, t->n);
	return DG_OK;
}

void dg_reqtab_release(struct dg_reqtab *t)
{
	free(t->reqs);
	memset(t, 0, sizeof(*t));
}

/* Doubling keeps handles valid: they are indices, not pointers. */
static bool grow(struct dg_reqtab *t)
{
	if (t->n >= t->max)
		return false;
	uint32_t n = t->n > t->max / 2 ? t->max : (t->n ? t->n * 2 : 16);
	struct dg_req *r = realloc(t->reqs, (size_t)n * sizeof(*r));
	if (!r)
		return false;
	memset(r + t->n, 0, (size_t)(n - t->n) * sizeof(*r));
	t->reqs = r;
	link_free(t, t->n, n);
	t->n = n;
	return true;
}

bool dg_reqtab_alloc(struct dg_reqtab *t, uint32_t *idx)
{
	if (dg_ififo_empty(&t->free) && !grow(t))
		return false;
	dg_ififo_pop(&t->free, SLOTS(t), idx);
	struct dg_req *r = &t->reqs[*idx];
	uint32_t gen = r->gen + 1;
	/* Field by field, not memset: this runs once per datagram. The
	 * caller sets l, s, sess, frames, serial and tag. */
	r->gen = gen ? gen : 1;
	r->dl.prev = r->dl.next = 0; /* on no deadline list (next: 0 since the pop) */
	dg_req_set(r, DG_REQ_READY);
	r->data = NULL;
	r->data_free = NULL;
	r->frame = 0;
	r->rest = NULL;
	r->copy = NULL;
	r->mem = 0;
	r->tx_slot = UINT32_MAX;
	t->used++;
	return true;
}

void dg_reqtab_free(struct dg_reqtab *t, uint32_t idx)
{
	struct dg_req *r = &t->reqs[idx];

	dg_req_set(r, DG_REQ_FREE);
	r->gen++;
	dg_ififo_push_head(&t->free, SLOTS(t), idx);
	t->used--;
}

struct dg_req *dg_reqtab_lookup(struct dg_reqtab *t, dg_req_t h, uint32_t *idx)
{
	uint32_t i = (uint32_t)(h & ((1u << DG_REQTAB_TAG_SHIFT) - 1));

	if (i == 0 || i > t->n)
		return NULL;
	struct dg_req *r = &t->reqs[i - 1];
	if (r->state == DG_REQ_FREE ||
	    (r->gen & DG_REQTAB_GEN_MASK) != ((uint32_t)(h >> 32) & DG_REQTAB_GEN_MASK) ||
	    r->tag != dg_reqtab_handle_tag(h) || t->id != dg_reqtab_handle_id(h))
		return NULL;
	*idx = i - 1;
	return r;
}
