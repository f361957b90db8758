#include "config.h"

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include <dgramd/codec.h>

#include "session.h"

int dg_sessions_init(struct dg_sessions *t, uint32_t max)
{
	memset(t, 0, sizeof(*t));
	t->max = max;
	t->mask = 63;
	t->buckets = calloc(t->mask + 1, sizeof(*t->buckets));
	if (!t->buckets)
		return DG_ENOMEM;
	/* A random key: peers choose their addresses, so a fixed hash
	 * would let them aim at one chain. */
	if (getrandom(t->seed, sizeof(t->seed), GRND_NONBLOCK) != sizeof(t->seed)) {
		struct timespec ts;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		t->seed[0] = (uint64_t)ts.tv_nsec * 0x9e3779b97f4a7c15ull ^ (uint64_t)getpid();
		t->seed[1] = (uint64_t)ts.tv_sec * 0xc2b2ae3d27d4eb4full ^ (uintptr_t)t;
	}
	return DG_OK;
}

void dg_sessions_release(struct dg_sessions *t)
{
	struct dg_session *s;

	while ((s = dg_session_any(t)))
		dg_session_free(t, s, NULL);
	free(t->buckets);
	free(t->slots);
	memset(t, 0, sizeof(*t));
}

/* The address and port bytes that identify a peer. */
static size_t key_of(const struct sockaddr *sa, const unsigned char **p, uint16_t *port)
{
	if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;
		*p = s6->sin6_addr.s6_addr;
		*port = s6->sin6_port;
		return 16;
	}
	const struct sockaddr_in *s4 = (const struct sockaddr_in *)sa;
	*p = (const unsigned char *)&s4->sin_addr;
	*port = s4->sin_port;
	return 4;
}

static uint64_t mix(uint64_t h)
{
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdull;
	h ^= h >> 33;
	h *= 0xc4ceb9fe1a85ec53ull;
	return h ^ (h >> 33);
}

static uint64_t hash_addr(const struct dg_sessions *t, uint64_t h, const struct sockaddr *sa)
{
	const unsigned char *p;
	uint16_t port;
	size_t n = key_of(sa, &p, &port);

	h ^= port;
	for (size_t i = 0; i < n; i += 8) {
		uint64_t w = 0;
		memcpy(&w, p + i, n - i < 8 ? n - i : 8);
		h = mix(h ^ w ^ t->seed[1]);
	}
	return h;
}

/* A keyed hash over at most 36 bytes (peer, then local address); the
 * random key makes collisions unpredictable to peers. */
static uint32_t hash(const struct dg_sessions *t, const struct sockaddr *sa,
                     const struct sockaddr *local)
{
	return (uint32_t)mix(hash_addr(t, hash_addr(t, t->seed[0], sa), local));
}

static bool same_addr(const struct sockaddr *x, const struct sockaddr *y)
{
	const unsigned char *a, *b;
	uint16_t pa, pb;

	if (x->sa_family != y->sa_family)
		return false;
	size_t n = key_of(x, &a, &pa);
	key_of(y, &b, &pb);
	return pa == pb && !memcmp(a, b, n);
}

static bool same_key(const struct dg_session *s, const struct sockaddr *sa,
                     const struct sockaddr *local)
{
	return same_addr(&s->peer.sa, sa) && same_addr(&s->local.sa, local);
}

struct dg_session *dg_session_find(struct dg_sessions *t, const struct sockaddr *sa,
                                   const struct sockaddr *local)
{
	if (t->last && same_key(t->last, sa, local))
		return t->last;
	for (struct dg_session *s = t->buckets[hash(t, sa, local) & t->mask]; s; s = s->hnext)
		if (same_key(s, sa, local))
			return t->last = s;
	return NULL;
}

static struct dg_session *lru_entry(struct dg_dlink *link)
{
	return dg_list_entry(link, struct dg_session, lru);
}

/* The least recently used session of a list, or NULL. */
static struct dg_session *lru_head(struct dg_sessions *t, enum dg_session_list_id id)
{
	return lru_entry(dg_dlist_first(&t->lists[id]));
}

static void list_unlink(struct dg_sessions *t, struct dg_session *s)
{
	dg_dlist_unlink(&t->lists[s->list], &s->lru);
}

static void list_append(struct dg_sessions *t, struct dg_session *s, enum dg_session_list_id id)
{
	dg_dlist_push(&t->lists[id], &s->lru);
	s->list = (uint8_t)id;
}

/* A session on the ready list is busy too: freeing it there (say
 * drop-oldest emptied its queue) would leave the list a dead pointer. */
static bool idle(const struct dg_session *s)
{
	return s->active == 0 && s->q_len == 0 && !s->ready;
}

/* The one place that says which list a session belongs on. */
static enum dg_session_list_id list_for(const struct dg_session *s)
{
	if (!idle(s))
		return DG_SESSIONS_BUSY;
	return s->validated ? DG_SESSIONS_IDLE : DG_SESSIONS_UNVALIDATED;
}

/* After active, q_len or ready changed: move s to the list its state
 * calls for. A session that becomes idle is used "now", the table's latest
 * time, so the idle list stays in last_ms order. */
static void relist(struct dg_sessions *t, struct dg_session *s)
{
	enum dg_session_list_id want = list_for(s);

	if (s->list == want)
		return;
	list_unlink(t, s);
	list_append(t, s, want);
	if (want != DG_SESSIONS_BUSY && s->last_ms < t->now_ms)
		s->last_ms = t->now_ms;
}

/* Keep chains short: double the buckets when there are more sessions. */
static void maybe_grow(struct dg_sessions *t)
{
	if (t->count <= t->mask || t->mask >= (1u << 26))
		return;
	uint32_t mask = t->mask * 2 + 1;
	struct dg_session **b = calloc((size_t)mask + 1, sizeof(*b));
	if (!b)
		return; /* longer chains, still correct */
	for (uint32_t i = 0; i <= t->mask; i++) {
		struct dg_session *s = t->buckets[i], *next;
		for (; s; s = next) {
			next = s->hnext;
			uint32_t h = hash(t, &s->peer.sa, &s->local.sa) & mask;
			s->hnext = b[h];
			b[h] = s;
		}
	}
	free(t->buckets);
	t->buckets = b;
	t->mask = mask;
}

#define SLOTS(t) DG_IARRAY((t)->slots, struct dg_session_slot, next)

/* Double the slots (up to max, since count <= max). Indices stay valid. */
static bool slots_grow(struct dg_sessions *t)
{
	if (t->n_slots >= t->max)
		return false;
	uint32_t n = t->n_slots > t->max / 2 ? t->max : (t->n_slots ? t->n_slots * 2 : 16);
	struct dg_session_slot *v = realloc(t->slots, (size_t)n * sizeof(*v));
	if (!v)
		return false;
	memset(v + t->n_slots, 0, (size_t)(n - t->n_slots) * sizeof(*v));
	t->slots = v;
	for (uint32_t i = t->n_slots; i < n; i++)
		dg_ififo_push(&t->free_slots, SLOTS(t), i);
	t->n_slots = n;
	return true;
}

struct dg_session *dg_session_lookup(const struct dg_sessions *t, const struct dg_session *h)
{
	uint64_t v = (uint64_t)(uintptr_t)h;
	uint32_t i1 = (uint32_t)(v & 0xffffffu);

	if (!i1 || i1 > t->n_slots || dg_session_handle_id(h) != t->id ||
	    dg_session_handle_tag(h) != t->tag)
		return NULL;
	const struct dg_session_slot *sl = &t->slots[i1 - 1];
	if (!sl->s || (sl->gen & DG_SESSION_GEN_MASK) != ((v >> 32) & DG_SESSION_GEN_MASK))
		return NULL;
	return sl->s;
}

struct dg_session *dg_session_create(struct dg_sessions *t, const struct sockaddr *sa,
                                     socklen_t len, const struct sockaddr *local,
                                     socklen_t locallen, uint64_t now_ms)
{
	if (dg_ififo_empty(&t->free_slots) && !slots_grow(t))
		return NULL;
	struct dg_session *s = calloc(1, sizeof(*s));

	if (!s)
		return NULL;
	dg_ififo_pop(&t->free_slots, SLOTS(t), &s->slot);
	t->slots[s->slot].s = s;
	s->gen = t->slots[s->slot].gen;
	if (len > sizeof(s->peer))
		len = sizeof(s->peer);
	if (locallen > sizeof(s->local))
		locallen = sizeof(s->local);
	memcpy(&s->peer, sa, len);
	s->peerlen = len;
	memcpy(&s->local, local, locallen);
	s->locallen = locallen;
	s->last_ms = now_ms;
	s->table = t;
	uint32_t h = hash(t, sa, local) & t->mask;
	s->hnext = t->buckets[h];
	t->buckets[h] = s;
	if (now_ms > t->now_ms)
		t->now_ms = now_ms;
	list_append(t, s, list_for(s));
	t->count++;
	t->unvalidated++;
	maybe_grow(t);
	return s;
}

void dg_session_touch(struct dg_sessions *t, struct dg_session *s, uint64_t now_ms)
{
	if (now_ms > t->now_ms)
		t->now_ms = now_ms;
	s->last_ms = now_ms;
	if (s->list != DG_SESSIONS_BUSY && dg_dlist_last(&t->lists[s->list]) != &s->lru) {
		list_unlink(t, s);
		list_append(t, s, s->list);
	}
}

void dg_session_req_start(struct dg_sessions *t, struct dg_session *s)
{
	s->active++;
	relist(t, s);
}

void dg_session_req_done(struct dg_sessions *t, struct dg_session *s, uint64_t now_ms)
{
	if (now_ms > t->now_ms)
		t->now_ms = now_ms;
	s->active--;
	s->last_ms = now_ms;
	relist(t, s);
}

void dg_session_ready_push(struct dg_sessions *t, struct dg_session *s)
{
	if (s->ready)
		return;
	s->ready = true;
	dg_fifo_push(&t->ready, &s->ready_link);
	relist(t, s);
}

struct dg_session *dg_session_ready_pop(struct dg_sessions *t)
{
	struct dg_session *s = dg_list_entry(dg_fifo_pop(&t->ready), struct dg_session, ready_link);

	if (!s)
		return NULL;
	s->ready = false;
	relist(t, s);
	return s;
}

struct dg_session *dg_session_lru_idle(struct dg_sessions *t)
{
	struct dg_session *s = lru_head(t, DG_SESSIONS_UNVALIDATED);

	return s ? s : lru_head(t, DG_SESSIONS_IDLE);
}

struct dg_session *dg_session_lru_unvalidated(struct dg_sessions *t)
{
	return lru_head(t, DG_SESSIONS_UNVALIDATED);
}

void dg_session_validate(struct dg_sessions *t, struct dg_session *s)
{
	if (s->validated)
		return;
	s->validated = true;
	t->unvalidated--;
	relist(t, s);
}

struct dg_session *dg_session_expired(struct dg_sessions *t, uint64_t now_ms, uint64_t idle_ms)
{
	struct dg_session *v = lru_head(t, DG_SESSIONS_IDLE);
	struct dg_session *u = lru_head(t, DG_SESSIONS_UNVALIDATED);
	/* Each list is in last_ms order: the older head is the oldest. */
	struct dg_session *s = !v || (u && u->last_ms < v->last_ms) ? u : v;

	return s && s->last_ms + idle_ms <= now_ms ? s : NULL;
}

struct dg_session *dg_session_any(struct dg_sessions *t)
{
	for (unsigned i = 0; i < DG_SESSIONS__LISTS; i++)
		if (lru_head(t, i))
			return lru_head(t, i);
	return NULL;
}

/* The oldest queued datagram, off the queue (lists untouched). */
static struct dg_qitem *take(struct dg_sessions *t, struct dg_session *s)
{
	struct dg_qitem *it = dg_list_entry(dg_fifo_pop(&s->q), struct dg_qitem, link);

	if (!it)
		return NULL;
	s->q_len--;
	t->q_bytes -= it->len + DG_QITEM_OVERHEAD;
	if (t->total_len) {
		(*t->total_len)--;
		*t->total_bytes -= it->len + DG_QITEM_OVERHEAD;
	}
	return it;
}

void dg_session_free(struct dg_sessions *t, struct dg_session *s, unsigned *dropped)
{
	struct dg_session **pp = &t->buckets[hash(t, &s->peer.sa, &s->local.sa) & t->mask];

	while (*pp && *pp != s)
		pp = &(*pp)->hnext;
	if (*pp)
		*pp = s->hnext;
	if (t->last == s)
		t->last = NULL;
	list_unlink(t, s);
	t->unvalidated -= !s->validated;
	while (!dg_fifo_empty(&s->q)) {
		struct dg_qitem *it = take(t, s);
		if (dropped)
			(*dropped)++;
		free(it);
	}
	struct dg_session_slot *sl = &t->slots[s->slot];
	sl->s = NULL;
	sl->gen++; /* every handle to it dies */
	dg_ififo_push(&t->free_slots, SLOTS(t), s->slot);
	t->count--;
	free(s);
}

unsigned dg_session_enqueue(struct dg_sessions *t, struct dg_session *s, struct dg_sock *sock,
                            const unsigned char *data, size_t len, uint32_t limit,
                            size_t byte_cap, enum dg_drop_policy policy, bool *queued)
{
	unsigned dropped = 0;

	*queued = false;
	while (s->q_len >= limit || t->q_bytes + len + DG_QITEM_OVERHEAD > byte_cap) {
		if (policy == DG_DROP_NEWEST || dg_fifo_empty(&s->q))
			return dropped + 1;
		free(dg_session_dequeue(t, s));
		dropped++;
	}
	struct dg_qitem *it = malloc(sizeof(*it) + len);
	if (!it)
		return dropped + 1;
	it->s = sock;
	it->len = len;
	memcpy(it->data, data, len);
	dg_fifo_push(&s->q, &it->link);
	s->q_len++;
	t->q_bytes += len + DG_QITEM_OVERHEAD;
	if (t->total_len) {
		(*t->total_len)++;
		*t->total_bytes += len + DG_QITEM_OVERHEAD;
	}
	relist(t, s);
	*queued = true;
	return dropped;
}

struct dg_qitem *dg_session_dequeue(struct dg_sessions *t, struct dg_session *s)
{
	struct dg_qitem *it = take(t, s);

	if (it)
		relist(t, s);
	return it;
}
