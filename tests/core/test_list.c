/* The list helper (core/list.h): each kind against a plain array model
 * under random operations (push, pop, unlink from anywhere), the links an
 * element is left with, dg_list_entry on NULL, and the index lists staying
 * right across a realloc that moves their array. */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "list.h"
#include "testutil.h"

#define N 64
#define ROUNDS 20000

struct item {
	int id;
	struct dg_slink s;
	struct dg_dlink d;
};

struct slot {
	uint64_t pad;
	uint32_t next;      /* dg_ififo */
	struct dg_ilink dl; /* dg_idlist */
};

/* The model: ids in list order. */
struct model {
	int ids[N];
	unsigned n;
};

static void model_push(struct model *m, int id)
{
	m->ids[m->n++] = id;
}

static int model_pop(struct model *m)
{
	int id = m->ids[0];

	memmove(m->ids, m->ids + 1, --m->n * sizeof(m->ids[0]));
	return id;
}

static bool model_remove(struct model *m, int id)
{
	for (unsigned i = 0; i < m->n; i++)
		if (m->ids[i] == id) {
			memmove(m->ids + i, m->ids + i + 1, (m->n - i - 1) * sizeof(m->ids[0]));
			m->n--;
			return true;
		}
	return false;
}

static void test_entry(void)
{
	struct item it = { .id = 7 };

	CU_ASSERT_PTR_EQUAL(dg_list_entry(&it.d, struct item, d), &it);
	CU_ASSERT_PTR_EQUAL(dg_list_entry(&it.s, struct item, s), &it);
	CU_ASSERT_PTR_NULL(dg_list_entry((struct dg_slink *)NULL, struct item, s));
}

static bool fifo_matches(const struct dg_fifo *f, const struct model *m)
{
	unsigned i = 0;

	for (struct dg_slink *e = dg_fifo_first(f); e; e = e->next, i++)
		if (i >= m->n || dg_list_entry(e, struct item, s)->id != m->ids[i])
			return false;
	return i == m->n && (m->n ? f->tail != NULL && f->tail->next == NULL : f->tail == NULL);
}

static void test_fifo(void)
{
	struct item items[N];
	struct dg_fifo f;
	struct model m = { .n = 0 };
	bool on[N] = { false };

	srand(1);
	dg_fifo_init(&f);
	CU_ASSERT_TRUE(dg_fifo_empty(&f));
	CU_ASSERT_PTR_NULL(dg_fifo_pop(&f));
	for (int i = 0; i < N; i++)
		items[i].id = i;
	for (int r = 0; r < ROUNDS; r++) {
		int i = rand() % N;
		if (!on[i] && rand() % 2) {
			dg_fifo_push(&f, &items[i].s);
			model_push(&m, i);
			on[i] = true;
		} else if (m.n) {
			struct item *it = dg_list_entry(dg_fifo_pop(&f), struct item, s);
			int want = model_pop(&m);
			CU_ASSERT_PTR_NOT_NULL_FATAL(it);
			CU_ASSERT_EQUAL(it->id, want);
			CU_ASSERT_PTR_NULL(it->s.next);
			on[it->id] = false;
		}
		CU_ASSERT_EQUAL(dg_fifo_empty(&f), m.n == 0);
		if (!fifo_matches(&f, &m)) {
			CU_FAIL("fifo and model differ");
			return;
		}
	}
}

static bool dlist_matches(const struct dg_dlist *l, const struct model *m)
{
	const struct dg_dlink *prev = NULL;
	unsigned i = 0;

	for (struct dg_dlink *e = dg_dlist_first(l); e; prev = e, e = e->next, i++)
		if (i >= m->n || e->prev != prev || dg_list_entry(e, struct item, d)->id != m->ids[i])
			return false;
	return i == m->n && dg_dlist_last(l) == prev;
}

static void test_dlist(void)
{
	struct item items[N];
	struct dg_dlist l;
	struct model m = { .n = 0 };
	bool on[N] = { false };

	srand(2);
	dg_dlist_init(&l);
	CU_ASSERT_PTR_NULL(dg_dlist_first(&l));
	for (int i = 0; i < N; i++)
		items[i].id = i;
	for (int r = 0; r < ROUNDS; r++) {
		int i = rand() % N;
		if (!on[i]) {
			dg_dlist_push(&l, &items[i].d);
			model_push(&m, i);
		} else {
			dg_dlist_unlink(&l, &items[i].d); /* head, middle or tail */
			CU_ASSERT_TRUE(model_remove(&m, i));
			CU_ASSERT_PTR_NULL(items[i].d.prev);
			CU_ASSERT_PTR_NULL(items[i].d.next);
		}
		on[i] = !on[i];
		if (!dlist_matches(&l, &m)) {
			CU_FAIL("dlist and model differ");
			return;
		}
	}
}

static bool ififo_matches(const struct dg_ififo *f, const struct slot *a, const struct model *m)
{
	unsigned i = 0;
	uint32_t last = 0;

	for (uint32_t e = f->head; e; last = e, e = a[e - 1].next, i++)
		if (i >= m->n || (int)e - 1 != m->ids[i])
			return false;
	return i == m->n && f->tail == last;
}

/* The array moves (realloc to a new block) between operations, as the
 * request table does when it grows: indices stay right. */
static struct slot *move(struct slot *a, size_t n)
{
	struct slot *b = malloc(n * sizeof(*b));

	CU_ASSERT_PTR_NOT_NULL_FATAL(b);
	memcpy(b, a, n * sizeof(*b));
	memset(a, 0xa5, n * sizeof(*a));
	free(a);
	return b;
}

static void test_ififo(void)
{
	struct slot *a = calloc(N, sizeof(*a));
	struct dg_ififo f;
	struct model m = { .n = 0 };
	bool on[N] = { false };
	uint32_t idx;

	CU_ASSERT_PTR_NOT_NULL_FATAL(a);
	srand(3);
	dg_ififo_init(&f);
	CU_ASSERT_FALSE(dg_ififo_pop(&f, DG_IARRAY(a, struct slot, next), &idx));
	for (int r = 0; r < ROUNDS; r++) {
		int i = rand() % N, op = rand() % 3;
		if (r % 1000 == 0)
			a = move(a, N);
		if (!on[i] && op == 0) {
			dg_ififo_push(&f, DG_IARRAY(a, struct slot, next), (uint32_t)i);
			model_push(&m, i);
			on[i] = true;
		} else if (!on[i] && op == 1) {
			/* At the head: a stack's push. */
			dg_ififo_push_head(&f, DG_IARRAY(a, struct slot, next), (uint32_t)i);
			memmove(m.ids + 1, m.ids, m.n * sizeof(m.ids[0]));
			m.ids[0] = i;
			m.n++;
			on[i] = true;
		} else if (m.n) {
			CU_ASSERT_TRUE_FATAL(dg_ififo_pop(&f, DG_IARRAY(a, struct slot, next), &idx));
			CU_ASSERT_EQUAL(idx, (uint32_t)model_pop(&m));
			CU_ASSERT_EQUAL(a[idx].next, 0);
			on[idx] = false;
		}
		CU_ASSERT_EQUAL(dg_ififo_empty(&f), m.n == 0);
		if (!ififo_matches(&f, a, &m)) {
			CU_FAIL("ififo and model differ");
			break;
		}
	}
	free(a);
}

static bool idlist_matches(const struct dg_idlist *l, const struct slot *a, const struct model *m)
{
	unsigned i = 0;
	uint32_t prev = 0;

	for (uint32_t e = dg_idlist_first(l); e; prev = e, e = a[e - 1].dl.next, i++)
		if (i >= m->n || a[e - 1].dl.prev != prev || (int)e - 1 != m->ids[i])
			return false;
	return i == m->n && l->tail == prev;
}

static void test_idlist(void)
{
	struct slot *a = calloc(N, sizeof(*a));
	struct dg_idlist l;
	struct model m = { .n = 0 };

	CU_ASSERT_PTR_NOT_NULL_FATAL(a);
	srand(4);
	dg_idlist_init(&l);
	CU_ASSERT_EQUAL(dg_idlist_first(&l), 0);
	for (int r = 0; r < ROUNDS; r++) {
		uint32_t i = (uint32_t)(rand() % N);
		if (r % 1000 == 0)
			a = move(a, N);
		struct dg_iarray at = DG_IARRAY(a, struct slot, dl);
		bool linked = dg_idlist_linked(&l, at, i);
		bool in_model = false;
		for (unsigned k = 0; k < m.n; k++)
			in_model |= m.ids[k] == (int)i;
		CU_ASSERT_EQUAL(linked, in_model); /* what "linked" says is true */
		if (!linked) {
			dg_idlist_push(&l, at, i);
			model_push(&m, (int)i);
		} else {
			dg_idlist_unlink(&l, at, i);
			model_remove(&m, (int)i);
			CU_ASSERT_EQUAL(a[i].dl.prev, 0);
			CU_ASSERT_EQUAL(a[i].dl.next, 0);
			CU_ASSERT_FALSE(dg_idlist_linked(&l, at, i));
		}
		if (!idlist_matches(&l, a, &m)) {
			CU_FAIL("idlist and model differ");
			break;
		}
	}
	free(a);
}

static const struct dg_test tests[] = {
	{ "dg_list_entry, and NULL", test_entry },
	{ "fifo: random push and pop against a model", test_fifo },
	{ "dlist: random push and unlink anywhere against a model", test_dlist },
	{ "ififo: push, push_head, pop across moves of the array", test_ififo },
	{ "idlist: push, unlink, linked across moves of the array", test_idlist },
	{ NULL, NULL },
};

DG_TEST_MAIN("list", tests)
