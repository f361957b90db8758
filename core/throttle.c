/* Token buckets per source and per listener (see throttle.h). */
#include "config.h"

#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include <dgramd/codec.h>

#include "throttle.h"

static uint64_t mix(uint64_t h)
{
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdull;
	h ^= h >> 33;
	h *= 0xc4ceb9fe1a85ec53ull;
	return h ^ (h >> 33);
}

static uint64_t full_ms(uint64_t cap, uint64_t rate_u)
{
	return rate_u ? (cap + rate_u - 1) / rate_u : 0;
}

size_t dg_throttle_table_bytes(const struct dg_throttle_conf *conf)
{
	return conf->per_source.rate_u ? (size_t)conf->table_size * DG_THROTTLE_ENTRY_BYTES : 0;
}

int dg_throttle_init(struct dg_throttle *t, const struct dg_throttle_conf *conf, uint64_t now_ms)
{
	memset(t, 0, sizeof(*t));
	t->conf = conf;
	t->cap_src = conf->per_source.burst * DG_THROTTLE_UNIT;
	t->cap_total = conf->total.burst * DG_THROTTLE_UNIT;
	t->full_ms_src = full_ms(t->cap_src, conf->per_source.rate_u);
	t->full_ms_total = full_ms(t->cap_total, conf->total.rate_u);
	t->total = (struct dg_bucket){ .tokens = t->cap_total, .last_ms = now_ms };
	t->v6_mask_hi = conf->ipv6_prefix >= 64 ? ~0ull : conf->ipv6_prefix ? ~0ull << (64 - conf->ipv6_prefix) : 0;
	t->v6_mask_lo = conf->ipv6_prefix <= 64 ? 0 : ~0ull << (128 - conf->ipv6_prefix);
	t->active = dg_throttle_conf_active(conf);
	if (!conf->per_source.rate_u)
		return 0;
	/* A set is two cache lines. */
	t->table = aligned_alloc(64, dg_throttle_table_bytes(conf));
	if (!t->table)
		return DG_ENOMEM;
	t->set_mask = conf->table_size / DG_THROTTLE_WAYS - 1;
	/* Every slot starts as a full bucket: the same as no bucket, and the
	 * pages are touched now, not by the first flood. */
	for (size_t i = 0; i < conf->table_size; i++)
		t->table[i] = (struct dg_throttle_entry){ .b = { t->cap_src, now_ms } };
	/* Sources choose their addresses: a random key keeps them from aiming
	 * at one set. */
	if (getrandom(t->seed, sizeof(t->seed), GRND_NONBLOCK) != sizeof(t->seed)) {
		struct timespec ts;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		t->seed[0] = (uint64_t)ts.tv_nsec * 0x9e3779b97f4a7c15ull ^ (uint64_t)getpid();
		t->seed[1] = (uint64_t)ts.tv_sec * 0xc2b2ae3d27d4eb4full ^ (uintptr_t)t;
	}
	return 0;
}

void dg_throttle_release(struct dg_throttle *t)
{
	free(t->table);
	memset(t, 0, sizeof(*t));
}

static void refill(struct dg_bucket *b, uint64_t rate_u, uint64_t cap, uint64_t full,
                   uint64_t now_ms)
{
	uint64_t dt = now_ms > b->last_ms ? now_ms - b->last_ms : 0;

	if (!dt)
		return;
	b->last_ms = now_ms;
	/* dt < full keeps dt * rate_u under cap + rate_u: no overflow */
	if (dt >= full || b->tokens + dt * rate_u > cap)
		b->tokens = cap;
	else
		b->tokens += dt * rate_u;
}

static uint64_t load_be64(const unsigned char *p)
{
	uint64_t v = 0;

	for (int i = 0; i < 8; i++)
		v = v << 8 | p[i];
	return v;
}

/* The source's key: IPv4 (and IPv4-mapped) as ::ffff:a.b.c.d, IPv6 cut to
 * ipv6_prefix bits. false for another family. */
static bool source_key(const struct dg_throttle *t, const struct sockaddr *sa,
                       uint64_t *hi, uint64_t *lo)
{
	if (sa->sa_family == AF_INET) {
		*hi = 0;
		*lo = 0xffff00000000ull | ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr);
		return true;
	}
	if (sa->sa_family != AF_INET6)
		return false;
	const unsigned char *a = ((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr;
	*hi = load_be64(a);
	*lo = load_be64(a + 8);
	if (*hi == 0 && *lo >> 32 == 0xffff)
		return true; /* IPv4-mapped: the IPv4 source */
	*hi &= t->v6_mask_hi;
	*lo &= t->v6_mask_lo;
	return true;
}

/* The source's bucket, refilled; a new source takes the fullest slot of
 * its set (refilled too, so "fullest" is as of now). */
static struct dg_bucket *source_bucket(struct dg_throttle *t, uint64_t hi, uint64_t lo,
                                       uint64_t now_ms)
{
	uint64_t h = mix(mix(hi ^ t->seed[0]) ^ lo ^ t->seed[1]);
	struct dg_throttle_entry *set = &t->table[(h & t->set_mask) * DG_THROTTLE_WAYS];
	const struct dg_limit_conf *pc = &t->conf->per_source;
	struct dg_throttle_entry *victim = set;

	for (unsigned w = 0; w < DG_THROTTLE_WAYS; w++) {
		struct dg_throttle_entry *e = &set[w];
		refill(&e->b, pc->rate_u, t->cap_src, t->full_ms_src, now_ms);
		if (e->key_hi == hi && e->key_lo == lo)
			return &e->b;
		if (e->b.tokens > victim->b.tokens)
			victim = e;
	}
	victim->key_hi = hi;
	victim->key_lo = lo;
	victim->b.tokens = t->cap_src;
	return &victim->b;
}

bool dg_throttle_check(struct dg_throttle *t, const struct sockaddr *src, uint64_t now_ms)
{
	struct dg_bucket *b = NULL;
	uint64_t hi, lo;

	if (t->table && source_key(t, src, &hi, &lo)) {
		b = source_bucket(t, hi, lo, now_ms);
		if (b->tokens < DG_THROTTLE_UNIT)
			return false;
		b->tokens -= DG_THROTTLE_UNIT;
	}
	if (!dg_throttle_total(t, now_ms)) {
		if (b) /* not the source's fault: give its token back */
			b->tokens += DG_THROTTLE_UNIT;
		return false;
	}
	return true;
}

bool dg_throttle_total(struct dg_throttle *t, uint64_t now_ms)
{
	if (!t->conf->total.rate_u)
		return true;
	refill(&t->total, t->conf->total.rate_u, t->cap_total, t->full_ms_total, now_ms);
	if (t->total.tokens < DG_THROTTLE_UNIT)
		return false;
	t->total.tokens -= DG_THROTTLE_UNIT;
	return true;
}
