/* The server's timers: one min-heap keyed on the server's millisecond clock
 * (O(log n) to arm, cancel or fire one). Every timer of the core runs on it
 * (handler deadlines, the idle-session sweep, plugin timers, the shutdown
 * deadline); the event loop drives the heap with a single timer of its own
 * (server.c), and the test harness (testing.c) drives it from a fake clock.
 * Stand-alone: includes nothing of the server. */
#ifndef DG_TIMER_H
#define DG_TIMER_H

#include <stdbool.h>
#include <stdint.h>

struct dg_tm;
typedef void (*dg_tm_fn)(struct dg_tm *tm, void *arg);

/* One timer, embedded in its owner's struct (the heap only points to it):
 * it must stay armed no longer than it lives. */
struct dg_tm {
	uint64_t due_ms;
	uint64_t seq;  /* arming order: ties fire first armed, first fired */
	uint32_t pos;  /* index in the heap + 1; 0: not armed */
	bool reserved; /* has a place kept in the heap (dg_tm_reserve) */
	dg_tm_fn cb;
	void *arg;
};

struct dg_tmheap {
	struct dg_tm **heap;
	uint32_t n, cap;
	uint32_t n_plain;  /* armed timers without a reserved place */
	uint32_t reserved; /* places kept: cap >= n_plain + reserved always */
	uint64_t seq;     /* last seq given out */
	uint64_t wake_ms; /* when the driver was last asked to run us (UINT64_MAX: never) */
	/* The driver: called when the earliest due time moves before wake_ms
	 * (and after each run, with the next due time); NULL: the caller polls
	 * (the harness). */
	void (*wake)(void *arg, uint64_t due_ms);
	void *wake_arg;
};

void dg_tmheap_init(struct dg_tmheap *h, void (*wake)(void *arg, uint64_t due_ms), void *wake_arg);
/* Frees the heap array; the timers are their owners'. */
void dg_tmheap_release(struct dg_tmheap *h);

static inline void dg_tm_init(struct dg_tm *tm, dg_tm_fn cb, void *arg)
{
	*tm = (struct dg_tm){ .cb = cb, .arg = arg };
}

static inline bool dg_tm_armed(const struct dg_tm *tm)
{
	return tm->pos != 0;
}

/* Keep a place in the heap for tm (once initialised), so that arming it
 * never fails however many other timers are armed: for the core's own
 * timers (deadlines, the sweep), whose arming has no way to fail. DG_OK or
 * DG_ENOMEM. dg_tm_unreserve() cancels tm and gives the place back. */
int dg_tm_reserve(struct dg_tmheap *h, struct dg_tm *tm);
void dg_tm_unreserve(struct dg_tmheap *h, struct dg_tm *tm);

/* Fire tm at due_ms (or at the next run if that has passed); an armed tm
 * moves. DG_OK, or DG_ENOMEM when the heap cannot grow (tm unchanged;
 * never for a reserved tm). */
int dg_tm_arm(struct dg_tmheap *h, struct dg_tm *tm, uint64_t due_ms);
/* Disarm tm if armed. */
void dg_tm_cancel(struct dg_tmheap *h, struct dg_tm *tm);

/* The earliest due time, if any timer is armed. */
bool dg_tmheap_next(const struct dg_tmheap *h, uint64_t *due_ms);

/* Fire the timers due at now_ms, earliest first, each disarmed before its
 * callback (which may arm or cancel any timer). Timers armed during this
 * run wait for the next one, so a callback that re-arms itself "now" lets
 * the loop poll its sockets in between. Then tells the driver the next due
 * time. Returns how many fired. */
unsigned dg_tmheap_run(struct dg_tmheap *h, uint64_t now_ms);

#endif
