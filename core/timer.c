/* A binary min-heap of timers ordered by (due_ms, seq). */
#include "config.h"

#include <stdlib.h>

#include <dgramd/plugin.h>

#include "timer.h"

static bool before(const struct dg_tm *a, const struct dg_tm *b)
{
	return a->due_ms < b->due_ms || (a->due_ms == b->due_ms && a->seq < b->seq);
}

static void place(struct dg_tmheap *h, uint32_t i, struct dg_tm *tm)
{
	h->heap[i] = tm;
	tm->pos = i + 1;
}

static void sift_up(struct dg_tmheap *h, uint32_t i)
{
	struct dg_tm *tm = h->heap[i];

	while (i) {
		uint32_t p = (i - 1) / 2;
		if (!before(tm, h->heap[p]))
			break;
		place(h, i, h->heap[p]);
		i = p;
	}
	place(h, i, tm);
}

static void sift_down(struct dg_tmheap *h, uint32_t i)
{
	struct dg_tm *tm = h->heap[i];

	for (;;) {
		uint32_t c = 2 * i + 1;
		if (c >= h->n)
			break;
		if (c + 1 < h->n && before(h->heap[c + 1], h->heap[c]))
			c++;
		if (!before(h->heap[c], tm))
			break;
		place(h, i, h->heap[c]);
		i = c;
	}
	place(h, i, tm);
}

void dg_tmheap_init(struct dg_tmheap *h, void (*wake)(void *arg, uint64_t due_ms), void *wake_arg)
{
	*h = (struct dg_tmheap){ .wake_ms = UINT64_MAX, .wake = wake, .wake_arg = wake_arg };
}

void dg_tmheap_release(struct dg_tmheap *h)
{
	for (uint32_t i = 0; i < h->n; i++)
		h->heap[i]->pos = 0;
	free(h->heap);
	h->heap = NULL;
	h->n = h->cap = h->n_plain = h->reserved = 0;
}

/* Room for want entries. */
static int grow(struct dg_tmheap *h, uint32_t want)
{
	if (h->cap >= want)
		return DG_OK;
	uint32_t cap = h->cap ? h->cap : 16;
	while (cap < want) {
		if (cap > UINT32_MAX / 2)
			return DG_ENOMEM;
		cap *= 2;
	}
	struct dg_tm **heap = realloc(h->heap, cap * sizeof(*heap));
	if (!heap)
		return DG_ENOMEM;
	h->heap = heap;
	h->cap = cap;
	return DG_OK;
}

static void tell_driver(struct dg_tmheap *h)
{
	uint64_t due = h->n ? h->heap[0]->due_ms : UINT64_MAX;

	if (due < h->wake_ms && h->wake) {
		h->wake_ms = due;
		h->wake(h->wake_arg, due);
	}
}

int dg_tm_reserve(struct dg_tmheap *h, struct dg_tm *tm)
{
	if (tm->reserved)
		return DG_OK;
	/* An armed tm gives up its plain place for the reserved one. */
	if (!tm->pos && grow(h, h->n_plain + h->reserved + 1))
		return DG_ENOMEM;
	if (tm->pos)
		h->n_plain--;
	tm->reserved = true;
	h->reserved++;
	return DG_OK;
}

void dg_tm_unreserve(struct dg_tmheap *h, struct dg_tm *tm)
{
	dg_tm_cancel(h, tm);
	if (tm->reserved) {
		tm->reserved = false;
		h->reserved--;
	}
}

int dg_tm_arm(struct dg_tmheap *h, struct dg_tm *tm, uint64_t due_ms)
{
	if (!tm->pos && !tm->reserved) {
		if (grow(h, h->n_plain + h->reserved + 1))
			return DG_ENOMEM;
		h->n_plain++;
	}
	if (!tm->pos)
		place(h, h->n++, tm);
	tm->due_ms = due_ms;
	tm->seq = ++h->seq;
	/* A moved timer may go either way; each sift is a no-op if not. */
	sift_up(h, tm->pos - 1);
	sift_down(h, tm->pos - 1);
	tell_driver(h);
	return DG_OK;
}

void dg_tm_cancel(struct dg_tmheap *h, struct dg_tm *tm)
{
	uint32_t i;

	if (!tm->pos)
		return;
	i = tm->pos - 1;
	tm->pos = 0;
	if (!tm->reserved)
		h->n_plain--;
	if (i == --h->n)
		return;
	/* The last entry takes the hole; the driver may wake early and find
	 * nothing due, which costs one turn, never a missed timer. */
	struct dg_tm *moved = h->heap[h->n];
	place(h, i, moved);
	sift_up(h, i);
	sift_down(h, moved->pos - 1);
}

bool dg_tmheap_next(const struct dg_tmheap *h, uint64_t *due_ms)
{
	if (!h->n)
		return false;
	*due_ms = h->heap[0]->due_ms;
	return true;
}

unsigned dg_tmheap_run(struct dg_tmheap *h, uint64_t now_ms)
{
	uint64_t last = h->seq;
	unsigned fired = 0;

	while (h->n && h->heap[0]->due_ms <= now_ms && h->heap[0]->seq <= last) {
		struct dg_tm *tm = h->heap[0];
		dg_tm_cancel(h, tm);
		fired++;
		tm->cb(tm, tm->arg);
	}
	h->wake_ms = UINT64_MAX;
	tell_driver(h);
	return fired;
}
