/* The request table (core/reqtab.c) and a request's life cycle: the
 * transition table against the life cycle written out edge by edge, every
 * state reachable and none a dead end, a conversation's walk through the
 * states on a real slot, handles dying with the slot, and an illegal
 * transition stopping a debug build. */
#include "config.h"

#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "reqtab.h"
#include "testutil.h"

#define N DG_REQ__STATES

/* The life cycle as core/reqtab.h describes it, one edge a line. */
static const struct {
	enum dg_req_state from, to;
} edges[] = {
	{ DG_REQ_FREE, DG_REQ_READY },             /* dg_reqtab_alloc */
	{ DG_REQ_READY, DG_REQ_IN_CALL },          /* a frame to on_packet / on_error */
	{ DG_REQ_READY, DG_REQ_FREE },             /* no frame left */
	{ DG_REQ_IN_CALL, DG_REQ_DONE_IN_CALL },   /* complete() inside the call */
	{ DG_REQ_IN_CALL, DG_REQ_READY },          /* returned done (handle retired) */
	{ DG_REQ_IN_CALL, DG_REQ_PENDING },        /* returned DG_PENDING */
	{ DG_REQ_IN_CALL, DG_REQ_AWAITING },       /* ... with a step armed in the call */
	{ DG_REQ_DONE_IN_CALL, DG_REQ_READY },     /* the call returned */
	{ DG_REQ_PENDING, DG_REQ_IN_CALL },        /* on_expire */
	{ DG_REQ_PENDING, DG_REQ_READY },          /* complete() */
	{ DG_REQ_PENDING, DG_REQ_AWAITING },       /* a step armed from outside a call */
	{ DG_REQ_PENDING, DG_REQ_FREE },           /* abandoned at shutdown */
	{ DG_REQ_AWAITING, DG_REQ_IN_CALL },       /* the step's callback */
	{ DG_REQ_AWAITING, DG_REQ_READY },         /* complete() */
	{ DG_REQ_AWAITING, DG_REQ_FREE },          /* abandoned at shutdown */
};

static bool listed(unsigned from, unsigned to)
{
	for (size_t i = 0; i < sizeof(edges) / sizeof(edges[0]); i++)
		if (edges[i].from == from && edges[i].to == to)
			return true;
	return false;
}

static void test_table(void)
{
	unsigned legal = 0;

	for (unsigned f = 0; f < N; f++)
		for (unsigned t = 0; t < N; t++) {
			CU_ASSERT_EQUAL(dg_req_legal(f, t), listed(f, t));
			if (dg_req_legal(f, t) != listed(f, t))
				fprintf(stderr, "transition %u -> %u: table %d, life cycle %d\n", f, t,
				        dg_req_legal(f, t), listed(f, t));
			legal += dg_req_legal(f, t);
		}
	CU_ASSERT_EQUAL(legal, sizeof(edges) / sizeof(edges[0]));
	/* Out of range either way is never legal. */
	CU_ASSERT_FALSE(dg_req_legal(N, DG_REQ_READY));
	CU_ASSERT_FALSE(dg_req_legal(DG_REQ_FREE, N));
	for (unsigned s = 0; s < N; s++)
		CU_ASSERT_FALSE(dg_req_legal(s, s)); /* a transition changes the state */
}

/* The states reachable from `from` (a bit each). */
static unsigned reach(unsigned from)
{
	unsigned seen = 1u << from;

	for (;;) {
		unsigned more = seen;
		for (unsigned f = 0; f < N; f++)
			if (seen >> f & 1u)
				more |= dg_req_next[f];
		if (more == seen)
			return seen;
		seen = more;
	}
}

static void test_reachable(void)
{
	/* Every state can be reached from FREE and leads back to it: no
	 * request is stuck (FREE is where its slot is reused). */
	CU_ASSERT_EQUAL(reach(DG_REQ_FREE), (1u << N) - 1);
	for (unsigned s = 0; s < N; s++)
		CU_ASSERT_TRUE(reach(s) >> DG_REQ_FREE & 1u);
	/* Only READY ends a request in the normal course; PENDING and
	 * AWAITING only at shutdown; a call never frees its own request. */
	CU_ASSERT_FALSE(dg_req_legal(DG_REQ_IN_CALL, DG_REQ_FREE));
	CU_ASSERT_FALSE(dg_req_legal(DG_REQ_DONE_IN_CALL, DG_REQ_FREE));
}

static void test_walk(void)
{
	struct dg_reqtab t;
	uint32_t idx, again;

	CU_ASSERT_EQUAL_FATAL(dg_reqtab_init(&t, 4, 8), DG_OK);
	t.id = 3;
	CU_ASSERT_FATAL(dg_reqtab_alloc(&t, &idx));
	struct dg_req *r = &t.reqs[idx];
	CU_ASSERT_EQUAL(r->state, DG_REQ_READY);
	r->tag = 2;
	dg_req_t h = dg_reqtab_handle(&t, idx);
	CU_ASSERT_PTR_EQUAL(dg_reqtab_lookup(&t, h, &again), r);
	CU_ASSERT_EQUAL(again, idx);
	CU_ASSERT_EQUAL(dg_reqtab_handle_tag(h), 2);
	CU_ASSERT_EQUAL(dg_reqtab_handle_id(h), 3);
	/* A conversation: on_packet arms a step and returns DG_PENDING, the
	 * step's callback completes inside the call. */
	static const enum dg_req_state walk[] = {
		DG_REQ_IN_CALL, DG_REQ_AWAITING, DG_REQ_IN_CALL, DG_REQ_PENDING, DG_REQ_AWAITING,
		DG_REQ_IN_CALL, DG_REQ_DONE_IN_CALL, DG_REQ_READY,
	};
	for (size_t i = 0; i < sizeof(walk) / sizeof(walk[0]); i++) {
		dg_req_set(r, walk[i]);
		CU_ASSERT_EQUAL(r->state, walk[i]);
		CU_ASSERT_PTR_EQUAL(dg_reqtab_lookup(&t, h, &again), r); /* the table's handle lives */
	}
	dg_reqtab_free(&t, idx);
	CU_ASSERT_EQUAL(r->state, DG_REQ_FREE);
	CU_ASSERT_PTR_NULL(dg_reqtab_lookup(&t, h, &again));
	CU_ASSERT_EQUAL(t.used, 0);
	/* The slot comes back READY with a new generation: the old handle
	 * stays dead. */
	CU_ASSERT_FATAL(dg_reqtab_alloc(&t, &again));
	CU_ASSERT_EQUAL(again, idx);
	CU_ASSERT_EQUAL(t.reqs[idx].state, DG_REQ_READY);
	CU_ASSERT_PTR_NULL(dg_reqtab_lookup(&t, h, &again));
	dg_reqtab_release(&t);
}

static void test_illegal_aborts(void)
{
#ifdef NDEBUG
	CU_PASS("NDEBUG build: transitions are not checked");
#else
	struct dg_req r = { 0 };
	pid_t pid = fork();
	int status;

	CU_ASSERT_FATAL(pid >= 0);
	if (pid == 0) {
		/* A FREE slot cannot go PENDING without running. */
		dg_req_set(&r, DG_REQ_PENDING);
		_exit(0);
	}
	CU_ASSERT_EQUAL_FATAL(waitpid(pid, &status, 0), pid);
	CU_ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT);
#endif
}

static const struct dg_test tests[] = {
	{ "the transition table is the documented life cycle", test_table },
	{ "every state reachable, none a dead end", test_reachable },
	{ "a conversation's walk on a real slot; handles die with it", test_walk },
	{ "an illegal transition aborts a debug build", test_illegal_aborts },
	{ NULL, NULL },
};

DG_TEST_MAIN("reqtab", tests)
