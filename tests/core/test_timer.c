/* The timer heap (core/timer.c): firing order against a sorted reference
 * under random arm/move/cancel, ties in arming order, callbacks that arm
 * and cancel, a timer re-armed "now" waiting for the next run, and the
 * driver told only when the earliest due time moves earlier. */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "testutil.h"
#include "timer.h"

#define N 2000

struct rec {
	unsigned fired[N];
	uint64_t at[N];
	unsigned n;
};

struct tmx {
	struct dg_tm tm;
	unsigned id;
	struct rec *rec;
};

static void note(struct dg_tm *tm, void *arg)
{
	struct tmx *x = arg;

	x->rec->at[x->rec->n] = tm->due_ms;
	x->rec->fired[x->rec->n++] = x->id;
}

static void test_random_order(void)
{
	static struct tmx t[N];
	static uint64_t due[N];
	static bool armed[N];
	struct rec rec = { .n = 0 };
	struct dg_tmheap h;
	unsigned expect = 0;

	srand(12345);
	dg_tmheap_init(&h, NULL, NULL);
	for (unsigned i = 0; i < N; i++) {
		t[i] = (struct tmx){ .id = i, .rec = &rec };
		dg_tm_init(&t[i].tm, note, &t[i]);
	}
	for (unsigned k = 0; k < 4 * N; k++) {
		unsigned i = (unsigned)rand() % N;
		if (rand() % 4 == 0) {
			dg_tm_cancel(&h, &t[i].tm);
			armed[i] = false;
		} else {
			due[i] = 1000 + (unsigned)rand() % 5000;
			CU_ASSERT_EQUAL_FATAL(dg_tm_arm(&h, &t[i].tm, due[i]), 0);
			armed[i] = true;
		}
	}
	for (unsigned i = 0; i < N; i++) {
		CU_ASSERT_EQUAL(dg_tm_armed(&t[i].tm), armed[i]);
		expect += armed[i];
	}
	/* In steps of 7 ms: each timer fires in the run of its due time. */
	for (uint64_t now = 0; now <= 6000; now += 7)
		dg_tmheap_run(&h, now);
	CU_ASSERT_EQUAL(rec.n, expect);
	for (unsigned k = 0; k < rec.n; k++) {
		CU_ASSERT_TRUE(armed[rec.fired[k]]);
		CU_ASSERT_EQUAL(rec.at[k], due[rec.fired[k]]);
		if (k)
			CU_ASSERT_TRUE(rec.at[k - 1] <= rec.at[k]);
		CU_ASSERT_FALSE(dg_tm_armed(&t[rec.fired[k]].tm));
	}
	CU_ASSERT_FALSE(dg_tmheap_next(&h, &(uint64_t){ 0 }));
	dg_tmheap_release(&h);
}

static void test_ties(void)
{
	struct tmx t[5];
	struct rec rec = { .n = 0 };
	struct dg_tmheap h;
	static const unsigned order[] = { 3, 1, 4, 0, 2 };

	dg_tmheap_init(&h, NULL, NULL);
	for (unsigned i = 0; i < 5; i++) {
		t[order[i]] = (struct tmx){ .id = order[i], .rec = &rec };
		dg_tm_init(&t[order[i]].tm, note, &t[order[i]]);
		CU_ASSERT_EQUAL(dg_tm_arm(&h, &t[order[i]].tm, 50), 0);
	}
	CU_ASSERT_EQUAL(dg_tmheap_run(&h, 49), 0);
	CU_ASSERT_EQUAL(dg_tmheap_run(&h, 50), 5);
	for (unsigned i = 0; i < 5; i++)
		CU_ASSERT_EQUAL(rec.fired[i], order[i]);
	dg_tmheap_release(&h);
}

struct chain {
	struct dg_tm tm;
	struct dg_tmheap *h;
	struct dg_tm *victim;
	unsigned runs;
};

static void rearm_now(struct dg_tm *tm, void *arg)
{
	struct chain *c = arg;

	c->runs++;
	if (c->victim)
		dg_tm_cancel(c->h, c->victim);
	if (c->runs < 3)
		dg_tm_arm(c->h, tm, 100); /* "now": the next run */
}

static void test_rearm_in_callback(void)
{
	struct dg_tmheap h;
	struct chain c = { .h = &h };
	struct tmx v;
	struct rec rec = { .n = 0 };

	dg_tmheap_init(&h, NULL, NULL);
	v = (struct tmx){ .id = 7, .rec = &rec };
	dg_tm_init(&v.tm, note, &v);
	dg_tm_init(&c.tm, rearm_now, &c);
	c.victim = &v.tm;
	dg_tm_arm(&h, &c.tm, 100);
	dg_tm_arm(&h, &v.tm, 100); /* armed after: cancelled by the first callback */
	CU_ASSERT_EQUAL(dg_tmheap_run(&h, 100), 1);
	CU_ASSERT_EQUAL(rec.n, 0);
	CU_ASSERT_EQUAL(dg_tmheap_run(&h, 100), 1);
	CU_ASSERT_EQUAL(dg_tmheap_run(&h, 100), 1);
	CU_ASSERT_EQUAL(dg_tmheap_run(&h, 100), 0);
	CU_ASSERT_EQUAL(c.runs, 3);
	dg_tmheap_release(&h);
}

struct wakes {
	uint64_t due[16];
	unsigned n;
};

static void on_wake(void *arg, uint64_t due_ms)
{
	struct wakes *w = arg;

	if (w->n < 16)
		w->due[w->n++] = due_ms;
}

static void nop(struct dg_tm *tm, void *arg)
{
	(void)tm, (void)arg;
}

static void test_driver(void)
{
	struct wakes w = { .n = 0 };
	struct dg_tmheap h;
	struct dg_tm a, b, c;

	dg_tmheap_init(&h, on_wake, &w);
	dg_tm_init(&a, nop, NULL);
	dg_tm_init(&b, nop, NULL);
	dg_tm_init(&c, nop, NULL);
	dg_tm_arm(&h, &a, 500);
	dg_tm_arm(&h, &b, 800); /* later: the driver is not told */
	dg_tm_arm(&h, &c, 200);
	CU_ASSERT_EQUAL(w.n, 2);
	CU_ASSERT_EQUAL(w.due[0], 500);
	CU_ASSERT_EQUAL(w.due[1], 200);
	dg_tmheap_run(&h, 300); /* c fires; the next is a at 500 */
	CU_ASSERT_EQUAL(w.n, 3);
	CU_ASSERT_EQUAL(w.due[2], 500);
	dg_tm_cancel(&h, &a);
	dg_tmheap_run(&h, 400); /* early: nothing due, told of b */
	CU_ASSERT_EQUAL(w.n, 4);
	CU_ASSERT_EQUAL(w.due[3], 800);
	dg_tmheap_release(&h);
	CU_ASSERT_FALSE(dg_tm_armed(&b));
}

/* A reserved timer keeps its place: after any number of plain timers the
 * heap always has room to arm it without growing. */
static void test_reserved(void)
{
	static struct dg_tm plain[100];
	struct dg_tmheap h;
	struct dg_tm a, b;

	dg_tmheap_init(&h, NULL, NULL);
	dg_tm_init(&a, nop, NULL);
	dg_tm_init(&b, nop, NULL);
	CU_ASSERT_EQUAL(dg_tm_reserve(&h, &a), 0);
	CU_ASSERT_EQUAL(dg_tm_reserve(&h, &a), 0); /* once only */
	CU_ASSERT_EQUAL(dg_tm_reserve(&h, &b), 0);
	CU_ASSERT_EQUAL(h.reserved, 2);
	for (unsigned i = 0; i < 100; i++) {
		dg_tm_init(&plain[i], nop, NULL);
		CU_ASSERT_EQUAL(dg_tm_arm(&h, &plain[i], 10 + i), 0);
		CU_ASSERT_TRUE(h.cap >= h.n_plain + h.reserved);
	}
	uint32_t cap = h.cap;
	CU_ASSERT_EQUAL(dg_tm_arm(&h, &a, 5), 0);
	CU_ASSERT_EQUAL(dg_tm_arm(&h, &b, 6), 0);
	CU_ASSERT_EQUAL(h.cap, cap); /* no growth: their places were kept */
	CU_ASSERT_EQUAL(h.n, 102);
	CU_ASSERT_EQUAL(h.n_plain, 100);
	dg_tm_unreserve(&h, &a);
	CU_ASSERT_FALSE(dg_tm_armed(&a));
	CU_ASSERT_EQUAL(h.reserved, 1);
	CU_ASSERT_EQUAL(dg_tmheap_run(&h, 1000), 101);
	CU_ASSERT_EQUAL(h.n_plain, 0);
	dg_tmheap_release(&h);
}

static const struct dg_test tests[] = {
	{ "reserved places", test_reserved },
	{ "random arm, move, cancel: fired in due order", test_random_order },
	{ "ties fire in arming order", test_ties },
	{ "a callback re-arming now waits for the next run", test_rearm_in_callback },
	{ "the driver hears of earlier due times only", test_driver },
	{ NULL, NULL },
};

DG_TEST_MAIN("timer", tests)
