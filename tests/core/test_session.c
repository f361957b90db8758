/* Session table, per-peer queues and request handles, without sockets. */
#include "config.h"

#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>

#include "reqtab.h"
#include "session.h"
#include "testutil.h"

static struct sockaddr_in v4(uint32_t host, uint16_t port)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port) };
	a.sin_addr.s_addr = htonl(host);
	return a;
}

#define SA(a) ((struct sockaddr *)&(a))

/* The listener's address, of the peer's family (a specific bind). */
static const struct sockaddr *local_of(const struct sockaddr *peer)
{
	static struct sockaddr_in l4;
	static struct sockaddr_in6 l6 = { .sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT };

	l4 = v4(0x7f000001, 53);
	l6.sin6_port = htons(53);
	return peer->sa_family == AF_INET6 ? SA(l6) : SA(l4);
}

static struct dg_session *find(struct dg_sessions *t, const struct sockaddr *sa)
{
	return dg_session_find(t, sa, local_of(sa));
}

static struct dg_session *create(struct dg_sessions *t, const struct sockaddr *sa, socklen_t len,
                                 uint64_t now_ms)
{
	const struct sockaddr *l = local_of(sa);

	return dg_session_create(t, sa, len, l, l->sa_family == AF_INET6 ?
	                         sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in), now_ms);
}

static void test_create_lookup(void)
{
	struct dg_sessions t;
	struct sockaddr_in a = v4(0x7f000001, 1000), b = v4(0x7f000001, 1001);
	struct sockaddr_in6 c = { .sin6_family = AF_INET6, .sin6_port = htons(1000),
	                          .sin6_addr = IN6ADDR_LOOPBACK_INIT };

	CU_ASSERT_EQUAL_FATAL(dg_sessions_init(&t, 100000), 0);
	CU_ASSERT_PTR_NULL(find(&t, SA(a)));
	struct dg_session *sa = create(&t, SA(a), sizeof(a), 5);
	struct dg_session *sc = create(&t, SA(c), sizeof(c), 5);
	CU_ASSERT_PTR_EQUAL(find(&t, SA(a)), sa);
	CU_ASSERT_PTR_EQUAL(find(&t, SA(c)), sc);
	CU_ASSERT_PTR_NULL(find(&t, SA(b))); /* another port */
	CU_ASSERT_EQUAL(t.count, 2);
	/* Many peers: the table grows and every one is still found. */
	for (uint32_t i = 0; i < 50000; i++) {
		struct sockaddr_in p = v4(0x0a000000 + i, (uint16_t)(i * 7));
		CU_ASSERT_PTR_NOT_NULL_FATAL(create(&t, SA(p), sizeof(p), 6));
	}
	CU_ASSERT(t.mask + 1 >= 32768);
	unsigned found = 0;
	for (uint32_t i = 0; i < 50000; i++) {
		struct sockaddr_in p = v4(0x0a000000 + i, (uint16_t)(i * 7));
		struct dg_session *s = find(&t, SA(p));
		found += s && s->peer.in.sin_addr.s_addr == p.sin_addr.s_addr;
	}
	CU_ASSERT_EQUAL(found, 50000);
	dg_session_free(&t, sa, NULL);
	CU_ASSERT_PTR_NULL(find(&t, SA(a)));
	CU_ASSERT_EQUAL(t.count, 50001);
	dg_sessions_release(&t);
}

/* On a wildcard bind one peer (address and port) may talk to several local
 * addresses: each pair is its own session, and replies leave from its
 * local address. */
static void test_key_includes_local(void)
{
	struct dg_sessions t;
	struct sockaddr_in p = v4(0x7f000001, 4000);
	struct sockaddr_in l2 = v4(0x7f000002, 53), l3 = v4(0x7f000003, 53);
	struct sockaddr_in l2b = v4(0x7f000002, 54); /* another bind's port */

	CU_ASSERT_EQUAL_FATAL(dg_sessions_init(&t, 10), 0);
	struct dg_session *s2 = dg_session_create(&t, SA(p), sizeof(p), SA(l2), sizeof(l2), 1);
	CU_ASSERT_PTR_NULL(dg_session_find(&t, SA(p), SA(l3)));
	CU_ASSERT_PTR_NULL(dg_session_find(&t, SA(p), SA(l2b)));
	struct dg_session *s3 = dg_session_create(&t, SA(p), sizeof(p), SA(l3), sizeof(l3), 1);
	CU_ASSERT_PTR_NOT_NULL_FATAL(s2);
	CU_ASSERT_PTR_NOT_NULL_FATAL(s3);
	CU_ASSERT_PTR_NOT_EQUAL(s2, s3);
	CU_ASSERT_EQUAL(t.count, 2);
	/* Alternating lookups also defeat the last-found shortcut. */
	for (int i = 0; i < 3; i++) {
		CU_ASSERT_PTR_EQUAL(dg_session_find(&t, SA(p), SA(l2)), s2);
		CU_ASSERT_PTR_EQUAL(dg_session_find(&t, SA(p), SA(l3)), s3);
	}
	CU_ASSERT_EQUAL(s3->locallen, sizeof(l3));
	CU_ASSERT_EQUAL(s3->local.in.sin_addr.s_addr, l3.sin_addr.s_addr);
	CU_ASSERT_EQUAL(s3->local.in.sin_port, l3.sin_port);
	dg_session_free(&t, s2, NULL);
	CU_ASSERT_PTR_NULL(dg_session_find(&t, SA(p), SA(l2)));
	CU_ASSERT_PTR_EQUAL(dg_session_find(&t, SA(p), SA(l3)), s3);
	dg_sessions_release(&t);
}

static void test_lru_and_expiry(void)
{
	struct dg_sessions t;
	struct dg_session *s[4];
	bool queued;

	CU_ASSERT_EQUAL_FATAL(dg_sessions_init(&t, 4), 0);
	for (int i = 0; i < 4; i++) {
		struct sockaddr_in p = v4(0x7f000001, (uint16_t)(2000 + i));
		s[i] = create(&t, SA(p), sizeof(p), 100 + (uint64_t)i);
	}
	/* LRU order is creation order until touched. */
	CU_ASSERT_PTR_EQUAL(dg_session_lru_idle(&t), s[0]);
	dg_session_touch(&t, s[0], 200);
	CU_ASSERT_PTR_EQUAL(dg_session_lru_idle(&t), s[1]);
	/* A session with a request in progress or queued work is not idle. */
	dg_session_req_start(&t, s[1]);
	dg_session_req_start(&t, s[2]);
	CU_ASSERT_EQUAL(dg_session_enqueue(&t, s[2], NULL, (const unsigned char *)"q", 1, 4, 100,
	                                   DG_DROP_NEWEST, &queued), 0);
	dg_session_req_done(&t, s[2], 104); /* done, but a datagram waits */
	CU_ASSERT_PTR_EQUAL(dg_session_lru_idle(&t), s[3]);
	/* Expiry: idle 50 ms at time 160 -> s[3] (used at 103) is expired,
	 * s[1] and s[2] are busy, s[0] was touched at 200. */
	CU_ASSERT_PTR_EQUAL(dg_session_expired(&t, 160, 50), s[3]);
	CU_ASSERT_PTR_NULL(dg_session_expired(&t, 152, 50));
	dg_session_free(&t, s[3], NULL);
	CU_ASSERT_PTR_NULL(dg_session_expired(&t, 160, 50));
	/* The last request done: idle from then on (not from its last datagram). */
	dg_session_req_done(&t, s[1], 210);
	CU_ASSERT_PTR_EQUAL(dg_session_lru_idle(&t), s[0]);
	CU_ASSERT_PTR_NULL(dg_session_expired(&t, 249, 50));
	CU_ASSERT_PTR_EQUAL(dg_session_expired(&t, 250, 50), s[0]);
	dg_session_free(&t, s[0], NULL);
	CU_ASSERT_PTR_NULL(dg_session_expired(&t, 259, 50));
	CU_ASSERT_PTR_EQUAL(dg_session_expired(&t, 260, 50), s[1]);
	/* Its queue drained: idle now (the table's latest time, 210). */
	free(dg_session_dequeue(&t, s[2]));
	CU_ASSERT_EQUAL(s[2]->last_ms, 210);
	CU_ASSERT_PTR_EQUAL(dg_session_lru_idle(&t), s[1]);
	dg_session_free(&t, s[1], NULL);
	CU_ASSERT_PTR_EQUAL(dg_session_lru_idle(&t), s[2]);
	/* Waiting on the ready list counts as busy, even with nothing queued
	 * (drop-oldest can empty a queue); taken off it, idle again. */
	dg_session_ready_push(&t, s[2]);
	dg_session_ready_push(&t, s[2]); /* once only */
	CU_ASSERT_PTR_NULL(dg_session_lru_idle(&t));
	CU_ASSERT_PTR_EQUAL(dg_session_any(&t), s[2]);
	CU_ASSERT_PTR_EQUAL(dg_session_ready_pop(&t), s[2]);
	CU_ASSERT_PTR_NULL(dg_session_ready_pop(&t));
	CU_ASSERT_PTR_EQUAL(dg_session_lru_idle(&t), s[2]);
	dg_sessions_release(&t);
	CU_ASSERT_PTR_NULL(dg_session_any(&t));
}

/* Many busy sessions older than every idle one: expiry and eviction take
 * the idle ones straight away, never walking the busy ones (the
 * old LRU kept busy sessions at its head, so each expiry walked them and
 * eviction gave up after 64). */
static void test_busy_sessions_off_the_idle_list(void)
{
	enum { BUSY = 50000, IDLE = 10000 };
	struct dg_sessions t;

	CU_ASSERT_EQUAL_FATAL(dg_sessions_init(&t, BUSY + IDLE), 0);
	for (uint32_t i = 0; i < BUSY; i++) {
		struct sockaddr_in p = v4(0x7f000000 + i, 4000);
		struct dg_session *s = create(&t, SA(p), sizeof(p), 10);
		CU_ASSERT_PTR_NOT_NULL_FATAL(s);
		dg_session_req_start(&t, s);
	}
	for (uint32_t i = 0; i < IDLE; i++) {
		struct sockaddr_in p = v4(0x7f000000 + i, 4001);
		CU_ASSERT_PTR_NOT_NULL_FATAL(create(&t, SA(p), sizeof(p), 20 + i / 1000));
	}
	/* The busy ones are the least recently used, and never the idle one. */
	CU_ASSERT_EQUAL(dg_session_lru_idle(&t)->peer.in.sin_port, htons(4001));
	unsigned expired = 0;
	struct dg_session *s;
	while ((s = dg_session_expired(&t, 1000, 100))) {
		CU_ASSERT_EQUAL(s->active, 0);
		CU_ASSERT_EQUAL(s->peer.in.sin_port, htons(4001));
		dg_session_free(&t, s, NULL);
		expired++;
	}
	CU_ASSERT_EQUAL(expired, IDLE);
	CU_ASSERT_PTR_NULL(dg_session_lru_idle(&t));
	/* Every busy session that completes is evictable, oldest completion first. */
	struct sockaddr_in first = v4(0x7f000000 + 7, 4000), second = v4(0x7f000000 + 3, 4000);
	struct dg_session *a = find(&t, SA(first));
	struct dg_session *b = find(&t, SA(second));
	CU_ASSERT_PTR_NOT_NULL_FATAL(a);
	CU_ASSERT_PTR_NOT_NULL_FATAL(b);
	dg_session_req_done(&t, a, 2000);
	dg_session_req_done(&t, b, 2001);
	CU_ASSERT_PTR_EQUAL(dg_session_lru_idle(&t), a);
	CU_ASSERT_PTR_NULL(dg_session_expired(&t, 2099, 100));
	CU_ASSERT_PTR_EQUAL(dg_session_expired(&t, 2100, 100), a);
	CU_ASSERT_EQUAL(t.count, BUSY);
	dg_sessions_release(&t);
}

static void test_queue_order_and_policies(void)
{
	struct dg_sessions t;
	struct sockaddr_in p = v4(0x7f000001, 3000);
	bool queued;

	CU_ASSERT_EQUAL_FATAL(dg_sessions_init(&t, 10), 0);
	struct dg_session *s = create(&t, SA(p), sizeof(p), 0);
	const char *in[] = { "d1", "d2", "d3", "d4", "d5" };
	unsigned dropped = 0;
	for (int i = 0; i < 5; i++)
		dropped += dg_session_enqueue(&t, s, NULL, (const unsigned char *)in[i], 2, 3, 1 << 20,
		                              DG_DROP_NEWEST, &queued);
	CU_ASSERT_EQUAL(dropped, 2);
	CU_ASSERT_FALSE(queued);
	CU_ASSERT_EQUAL(s->q_len, 3);
	CU_ASSERT_EQUAL(t.q_bytes, 3 * (2 + DG_QITEM_OVERHEAD));
	const char *expect_newest[] = { "d1", "d2", "d3" };
	for (int i = 0; i < 3; i++) {
		struct dg_qitem *it = dg_session_dequeue(&t, s);
		CU_ASSERT_EQUAL(memcmp(it->data, expect_newest[i], 2), 0);
		free(it);
	}
	CU_ASSERT_PTR_NULL(dg_session_dequeue(&t, s));
	CU_ASSERT_EQUAL(t.q_bytes, 0);

	dropped = 0;
	for (int i = 0; i < 5; i++)
		dropped += dg_session_enqueue(&t, s, NULL, (const unsigned char *)in[i], 2, 3, 1 << 20,
		                              DG_DROP_OLDEST, &queued);
	CU_ASSERT_EQUAL(dropped, 2);
	CU_ASSERT_TRUE(queued);
	const char *expect_oldest[] = { "d3", "d4", "d5" };
	for (int i = 0; i < 3; i++) {
		struct dg_qitem *it = dg_session_dequeue(&t, s);
		CU_ASSERT_EQUAL(memcmp(it->data, expect_oldest[i], 2), 0);
		free(it);
	}
	/* The byte cap of the whole table: bytes plus an entry each. */
	size_t cap = 8 + 2 * DG_QITEM_OVERHEAD;
	CU_ASSERT_EQUAL(dg_session_enqueue(&t, s, NULL, (const unsigned char *)"abcdef", 6, 10, cap,
	                                   DG_DROP_NEWEST, &queued), 0);
	CU_ASSERT_EQUAL(dg_session_enqueue(&t, s, NULL, (const unsigned char *)"xyz", 3, 10, cap,
	                                   DG_DROP_NEWEST, &queued), 1);
	CU_ASSERT_EQUAL(dg_session_enqueue(&t, s, NULL, (const unsigned char *)"xy", 2, 10, cap,
	                                   DG_DROP_NEWEST, &queued), 0);
	/* Empty datagrams are bounded by bytes too (their entries). */
	unsigned empties = 0;
	for (int i = 0; i < 100; i++) {
		dg_session_enqueue(&t, s, NULL, (const unsigned char *)"", 0, 1000, cap + 3 * DG_QITEM_OVERHEAD,
		                   DG_DROP_NEWEST, &queued);
		empties += queued;
	}
	CU_ASSERT_EQUAL(empties, 3);
	/* Freeing a session counts what was still queued. */
	dropped = 0;
	dg_session_free(&t, s, &dropped);
	CU_ASSERT_EQUAL(dropped, 5);
	CU_ASSERT_EQUAL(t.q_bytes, 0);
	dg_sessions_release(&t);
}

/* Two tables sharing totals (a server's listeners): every enqueue, drop of
 * the oldest, dequeue and free moves them, so that nobody has to. */
static void test_shared_totals(void)
{
	struct dg_sessions a, b;
	struct sockaddr_in p = v4(0x7f000001, 3000);
	unsigned long n = 0;
	size_t bytes = 0;
	unsigned dropped = 0;
	bool queued;

	CU_ASSERT_EQUAL_FATAL(dg_sessions_init(&a, 10), 0);
	CU_ASSERT_EQUAL_FATAL(dg_sessions_init(&b, 10), 0);
	a.total_len = b.total_len = &n;
	a.total_bytes = b.total_bytes = &bytes;
	struct dg_session *sa = create(&a, SA(p), sizeof(p), 0);
	struct dg_session *sb = create(&b, SA(p), sizeof(p), 0);
	for (int i = 0; i < 3; i++)
		dg_session_enqueue(&a, sa, NULL, (const unsigned char *)"abc", 3, 2, 1 << 20,
		                   DG_DROP_OLDEST, &queued);
	dg_session_enqueue(&b, sb, NULL, (const unsigned char *)"z", 1, 2, 1 << 20, DG_DROP_NEWEST,
	                   &queued);
	CU_ASSERT_EQUAL(n, 3);
	CU_ASSERT_EQUAL(bytes, a.q_bytes + b.q_bytes);
	CU_ASSERT_EQUAL(bytes, 2 * (3 + DG_QITEM_OVERHEAD) + 1 + DG_QITEM_OVERHEAD);
	free(dg_session_dequeue(&a, sa));
	CU_ASSERT_EQUAL(n, 2);
	CU_ASSERT_EQUAL(bytes, a.q_bytes + b.q_bytes);
	dg_session_free(&a, sa, &dropped);
	CU_ASSERT_EQUAL(dropped, 1);
	CU_ASSERT_EQUAL(n, 1);
	CU_ASSERT_EQUAL(bytes, 1 + DG_QITEM_OVERHEAD);
	dg_session_free(&b, sb, NULL);
	CU_ASSERT_EQUAL(n, 0);
	CU_ASSERT_EQUAL(bytes, 0);
	dg_sessions_release(&a);
	dg_sessions_release(&b);
}

static void test_request_handles(void)
{
	struct dg_reqtab t;
	uint32_t idx, idx2, i;

	CU_ASSERT_EQUAL_FATAL(dg_reqtab_init(&t, 2, 1000), 0);
	CU_ASSERT_TRUE(dg_reqtab_alloc(&t, &idx));
	dg_req_t h = dg_reqtab_handle(&t, idx);
	CU_ASSERT_PTR_EQUAL(dg_reqtab_lookup(&t, h, &i), &t.reqs[idx]);
	CU_ASSERT_EQUAL(i, idx);
	/* A completed request's handle is dead, even when its slot is reused. */
	dg_reqtab_free(&t, idx);
	CU_ASSERT_PTR_NULL(dg_reqtab_lookup(&t, h, &i));
	CU_ASSERT_TRUE(dg_reqtab_alloc(&t, &idx2));
	CU_ASSERT_EQUAL(idx2, idx);
	CU_ASSERT_PTR_NULL(dg_reqtab_lookup(&t, h, &i));
	CU_ASSERT_NOT_EQUAL(dg_reqtab_handle(&t, idx2), h);
	/* Growing (realloc) keeps handles valid: they are indices. */
	dg_req_t keep = dg_reqtab_handle(&t, idx2);
	for (int n = 0; n < 500; n++)
		CU_ASSERT_TRUE(dg_reqtab_alloc(&t, &i));
	CU_ASSERT_PTR_EQUAL(dg_reqtab_lookup(&t, keep, &i), &t.reqs[idx2]);
	/* Invalid handles. */
	CU_ASSERT_PTR_NULL(dg_reqtab_lookup(&t, 0, &i));
	CU_ASSERT_PTR_NULL(dg_reqtab_lookup(&t, 0xffffffffull, &i));
	CU_ASSERT_PTR_NULL(dg_reqtab_lookup(&t, keep + (1ull << 32), &i));
	/* The cap. */
	while (dg_reqtab_alloc(&t, &i))
		;
	CU_ASSERT_EQUAL(t.used, 1000);
	CU_ASSERT_EQUAL(t.n, 1000);
	dg_reqtab_release(&t);
}

/* Validated and unvalidated peers on their own idle lists: eviction takes
 * an unvalidated one first, expiry the oldest of either. */
static void test_unvalidated_list(void)
{
	struct dg_sessions t;
	struct dg_session *s[4];

	CU_ASSERT_EQUAL_FATAL(dg_sessions_init(&t, 16), 0);
	for (uint32_t i = 0; i < 3; i++) {
		struct sockaddr_in p = v4(0x7f000001 + i, 1000);
		s[i] = create(&t, SA(p), sizeof(p), 100 + 10 * i);
		CU_ASSERT_PTR_NOT_NULL_FATAL(s[i]);
	}
	CU_ASSERT_EQUAL(t.unvalidated, 3);
	CU_ASSERT_PTR_EQUAL(dg_session_lru_idle(&t), s[0]);
	dg_session_validate(&t, s[0]);
	dg_session_validate(&t, s[0]); /* twice: counted once */
	CU_ASSERT_EQUAL(t.unvalidated, 2);
	CU_ASSERT_PTR_EQUAL(dg_session_lru_unvalidated(&t), s[1]);
	CU_ASSERT_PTR_EQUAL(dg_session_lru_idle(&t), s[1]); /* unvalidated first */
	dg_session_validate(&t, s[1]);
	dg_session_validate(&t, s[2]);
	CU_ASSERT_EQUAL(t.unvalidated, 0);
	CU_ASSERT_PTR_NULL(dg_session_lru_unvalidated(&t));
	CU_ASSERT_PTR_EQUAL(dg_session_lru_idle(&t), s[0]); /* validated, LRU */
	/* Validated at 120 (the table's latest time): s[0] now counts as used
	 * then; a newer unvalidated s[3] (130) expires after it. */
	struct sockaddr_in p = v4(0x7f000009, 1000);
	s[3] = create(&t, SA(p), sizeof(p), 130);
	CU_ASSERT_EQUAL(t.unvalidated, 1);
	CU_ASSERT_PTR_EQUAL(dg_session_lru_idle(&t), s[3]);
	CU_ASSERT_PTR_NULL(dg_session_expired(&t, 169, 50));
	CU_ASSERT_PTR_EQUAL(dg_session_expired(&t, 170, 50), s[0]);
	dg_session_free(&t, s[0], NULL);
	dg_session_free(&t, s[1], NULL);
	dg_session_free(&t, s[2], NULL);
	CU_ASSERT_PTR_EQUAL(dg_session_expired(&t, 180, 50), s[3]);
	dg_session_free(&t, s[3], NULL);
	CU_ASSERT_EQUAL(t.unvalidated, 0);
	CU_ASSERT_EQUAL(t.count, 0);
	dg_sessions_release(&t);
}

/* Session handles (what plugins hold): a live session's handle finds it;
 * once freed it finds nothing, also after its slot is reused by another
 * session (whose own handle differs); a handle of another table, server
 * id or listener tag, and values no table made, find nothing. The slots
 * grow past their first 16 and stay valid. */
static void test_session_handles(void)
{
	struct dg_sessions t, u;
	struct dg_session *s[40], *h[40];

	CU_ASSERT_EQUAL_FATAL(dg_sessions_init(&t, 40), 0);
	CU_ASSERT_EQUAL_FATAL(dg_sessions_init(&u, 40), 0);
	t.id = 3, t.tag = 1;
	u.id = 3, u.tag = 2;
	for (unsigned i = 0; i < 40; i++) {
		struct sockaddr_in a = v4(0x7f000001, (uint16_t)(2000 + i));
		s[i] = create(&t, SA(a), sizeof(a), 1);
		CU_ASSERT_PTR_NOT_NULL_FATAL(s[i]);
		h[i] = dg_session_handle(s[i]);
		CU_ASSERT_PTR_NOT_NULL(h[i]);
		CU_ASSERT_PTR_NOT_EQUAL(h[i], s[i]); /* a handle, not the pointer */
	}
	for (unsigned i = 0; i < 40; i++) {
		CU_ASSERT_PTR_EQUAL(dg_session_lookup(&t, h[i]), s[i]);
		CU_ASSERT_PTR_NULL(dg_session_lookup(&u, h[i])); /* another listener's */
		CU_ASSERT_EQUAL(dg_session_handle_id(h[i]), 3);
		CU_ASSERT_EQUAL(dg_session_handle_tag(h[i]), 1);
	}
	uint32_t slot7 = s[7]->slot;
	dg_session_free(&t, s[7], NULL);
	CU_ASSERT_PTR_NULL(dg_session_lookup(&t, h[7]));
	struct sockaddr_in a = v4(0x7f000002, 2007);
	struct dg_session *n = create(&t, SA(a), sizeof(a), 2); /* takes slot 7's place */
	CU_ASSERT_PTR_NOT_NULL_FATAL(n);
	CU_ASSERT_EQUAL(n->slot, slot7); /* the only free one */
	CU_ASSERT_PTR_NULL(dg_session_lookup(&t, h[7]));
	CU_ASSERT_PTR_NOT_EQUAL(dg_session_handle(n), h[7]);
	CU_ASSERT_PTR_EQUAL(dg_session_lookup(&t, dg_session_handle(n)), n);
	static const uintptr_t junk[] = { 0, 1, 0xffffffffffffffffu, 0x0300000001000000u,
	                                  0x0300000001ffffffu, 0x0300000001000029u };
	for (unsigned i = 0; i < sizeof(junk) / sizeof(junk[0]); i++)
		CU_ASSERT_PTR_NULL(dg_session_lookup(&t, (const struct dg_session *)junk[i]));
	dg_sessions_release(&t);
	dg_sessions_release(&u);
}

static const struct dg_test session_tests[] = {
	{ "create and lookup", test_create_lookup },
	{ "the key includes the local address", test_key_includes_local },
	{ "lru and expiry", test_lru_and_expiry },
	{ "busy sessions off the idle list", test_busy_sessions_off_the_idle_list },
	{ "queue order and drop policies", test_queue_order_and_policies },
	{ "queue totals shared by several tables", test_shared_totals },
	{ "request handles", test_request_handles },
	{ "unvalidated peers on their own list", test_unvalidated_list },
	{ "session handles: stale ones find nothing", test_session_handles },
	{ NULL, NULL },
};

DG_TEST_MAIN("sessions", session_tests)
