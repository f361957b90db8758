/* Intrusive lists: the links live in the elements, a list is its head and
 * tail. Nothing allocates, every operation is O(1) and static inline (the
 * hot path pays no call). Stand-alone: includes nothing of the server.
 *
 * Four kinds, one shape (push at the tail, take from the head):
 *   dg_fifo   singly linked, by pointer (struct dg_slink in the element):
 *             queues and ready lists
 *   dg_dlist  doubly linked, by pointer (struct dg_dlink): lists an
 *             element leaves from the middle (session LRU lists, timers)
 *   dg_ififo  singly linked, by index (a uint32_t in the element) and
 *   dg_idlist doubly linked, by index (struct dg_ilink): lists over an
 *             array that may move when it grows (the request table), so
 *             they hold index + 1 (0: none) and are given the array at
 *             each call (DG_IARRAY)
 * An element on no list has NULL / 0 links only where a kind says so
 * (dg_idlist_linked). Which list an element is on, and whether it is on
 * one at all, is its owner's business (a flag, or the list it belongs on).
 *
 * Not lists of this kind, and left as they are: hash chains (session.c's
 * buckets: unordered, searched by key), the timer heap (timer.h), and the
 * stacks built at (re)load and walked whole, newest first, never on a
 * datagram's path (loader.c's modules and codec layers, master.c's
 * retiring generations): a next pointer says all there is. */
#ifndef DG_LIST_H
#define DG_LIST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The element holding `link` (its member `member`), or NULL for a NULL
 * link; link is evaluated once. */
#define dg_list_entry(link, type, member) ((type *)dg_list_entry_((link), offsetof(type, member)))

static inline void *dg_list_entry_(const void *link, size_t off)
{
	return link ? (void *)((uintptr_t)link - off) : NULL;
}

/* ---- dg_fifo ------------------------------------------------------------ */

struct dg_slink {
	struct dg_slink *next;
};

struct dg_fifo {
	struct dg_slink *head, *tail;
};

static inline void dg_fifo_init(struct dg_fifo *f)
{
	f->head = f->tail = NULL;
}

static inline bool dg_fifo_empty(const struct dg_fifo *f)
{
	return !f->head;
}

/* The oldest element's link, or NULL. */
static inline struct dg_slink *dg_fifo_first(const struct dg_fifo *f)
{
	return f->head;
}

static inline void dg_fifo_push(struct dg_fifo *f, struct dg_slink *e)
{
	e->next = NULL;
	if (f->tail)
		f->tail->next = e;
	else
		f->head = e;
	f->tail = e;
}

/* Take the oldest element off (its link is left NULL); NULL if empty. */
static inline struct dg_slink *dg_fifo_pop(struct dg_fifo *f)
{
	struct dg_slink *e = f->head;

	if (!e)
		return NULL;
	f->head = e->next;
	if (!f->head)
		f->tail = NULL;
	e->next = NULL;
	return e;
}

/* ---- dg_dlist ----------------------------------------------------------- */

struct dg_dlink {
	struct dg_dlink *prev, *next;
};

struct dg_dlist {
	struct dg_dlink *head, *tail;
};

static inline void dg_dlist_init(struct dg_dlist *l)
{
	l->head = l->tail = NULL;
}

static inline struct dg_dlink *dg_dlist_first(const struct dg_dlist *l)
{
	return l->head;
}

static inline struct dg_dlink *dg_dlist_last(const struct dg_dlist *l)
{
	return l->tail;
}

static inline void dg_dlist_push(struct dg_dlist *l, struct dg_dlink *e)
{
	e->prev = l->tail;
	e->next = NULL;
	if (l->tail)
		l->tail->next = e;
	else
		l->head = e;
	l->tail = e;
}

/* e must be on l; its links are left NULL. */
static inline void dg_dlist_unlink(struct dg_dlist *l, struct dg_dlink *e)
{
	if (e->prev)
		e->prev->next = e->next;
	else
		l->head = e->next;
	if (e->next)
		e->next->prev = e->prev;
	else
		l->tail = e->prev;
	e->prev = e->next = NULL;
}

/* ---- lists by index: dg_ififo, dg_idlist -------------------------------- */

/* Where the links are: the array (as it is now), its element size and the
 * offset of the link member in an element. */
struct dg_iarray {
	char *base;
	size_t size, off;
};

#define DG_IARRAY(arr, type, member) \
	((struct dg_iarray){ (char *)(arr), sizeof(type), offsetof(type, member) })

/* The link member of element i1 - 1 (i1: index + 1, never 0). */
static inline void *dg_iarray_link(struct dg_iarray a, uint32_t i1)
{
	return a.base + (size_t)(i1 - 1) * a.size + a.off;
}

/* Singly linked by a uint32_t member (index + 1 of the next, 0: end). */
struct dg_ififo {
	uint32_t head, tail; /* index + 1; 0: empty */
};

static inline void dg_ififo_init(struct dg_ififo *f)
{
	f->head = f->tail = 0;
}

static inline bool dg_ififo_empty(const struct dg_ififo *f)
{
	return !f->head;
}

static inline uint32_t *dg_ififo_next_(struct dg_iarray a, uint32_t i1)
{
	return (uint32_t *)dg_iarray_link(a, i1);
}

static inline void dg_ififo_push(struct dg_ififo *f, struct dg_iarray a, uint32_t idx)
{
	*dg_ififo_next_(a, idx + 1) = 0;
	if (f->tail)
		*dg_ififo_next_(a, f->tail) = idx + 1;
	else
		f->head = idx + 1;
	f->tail = idx + 1;
}

/* At the head instead: taken first (a stack, as a free list wants). */
static inline void dg_ififo_push_head(struct dg_ififo *f, struct dg_iarray a, uint32_t idx)
{
	*dg_ififo_next_(a, idx + 1) = f->head;
	f->head = idx + 1;
	if (!f->tail)
		f->tail = idx + 1;
}

/* Take the head off into *idx (its link is left 0); false if empty. */
static inline bool dg_ififo_pop(struct dg_ififo *f, struct dg_iarray a, uint32_t *idx)
{
	uint32_t h = f->head;

	if (!h)
		return false;
	uint32_t *next = dg_ififo_next_(a, h);
	f->head = *next;
	if (!f->head)
		f->tail = 0;
	*next = 0;
	*idx = h - 1;
	return true;
}

/* Doubly linked by a struct dg_ilink member. An element on no list has
 * both links 0 (zeroed, or left so by dg_idlist_unlink). */
struct dg_ilink {
	uint32_t prev, next; /* index + 1; 0: none */
};

struct dg_idlist {
	uint32_t head, tail; /* index + 1; 0: empty */
};

static inline void dg_idlist_init(struct dg_idlist *l)
{
	l->head = l->tail = 0;
}

/* The head's index + 1, or 0 if empty. */
static inline uint32_t dg_idlist_first(const struct dg_idlist *l)
{
	return l->head;
}

static inline struct dg_ilink *dg_ilink_at_(struct dg_iarray a, uint32_t i1)
{
	return (struct dg_ilink *)dg_iarray_link(a, i1);
}

/* Is element idx on l? (It is on l or on no list of this kind.) */
static inline bool dg_idlist_linked(const struct dg_idlist *l, struct dg_iarray a, uint32_t idx)
{
	return dg_ilink_at_(a, idx + 1)->prev || l->head == idx + 1;
}

static inline void dg_idlist_push(struct dg_idlist *l, struct dg_iarray a, uint32_t idx)
{
	struct dg_ilink *e = dg_ilink_at_(a, idx + 1);

	e->next = 0;
	e->prev = l->tail;
	if (l->tail)
		dg_ilink_at_(a, l->tail)->next = idx + 1;
	else
		l->head = idx + 1;
	l->tail = idx + 1;
}

/* idx must be on l; its links are left 0. */
static inline void dg_idlist_unlink(struct dg_idlist *l, struct dg_iarray a, uint32_t idx)
{
	struct dg_ilink *e = dg_ilink_at_(a, idx + 1);

	if (e->prev)
		dg_ilink_at_(a, e->prev)->next = e->next;
	else
		l->head = e->next;
	if (e->next)
		dg_ilink_at_(a, e->next)->prev = e->prev;
	else
		l->tail = e->prev;
	e->prev = e->next = 0;
}

#endif
