/* CIDR parsing and prefix sets as sorted, merged ranges (see acl.h). */
#include "config.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <dgramd/codec.h>

#include "acl.h"

static uint64_t load_be64(const unsigned char *p)
{
	uint64_t v = 0;

	for (int i = 0; i < 8; i++)
		v = v << 8 | p[i];
	return v;
}

static bool is_v4_mapped(const unsigned char *a)
{
	static const unsigned char prefix[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };

	return !memcmp(a, prefix, sizeof(prefix));
}

/* "8", "128": digits only, no sign, no leading zero (but "0"). */
static bool parse_bits(const char *s, unsigned max, unsigned *bits)
{
	unsigned v = 0;
	size_t n = strlen(s);

	if (n == 0 || n > 3 || (s[0] == '0' && n > 1))
		return false;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		v = v * 10 + (unsigned)(s[i] - '0');
	}
	if (v > max)
		return false;
	*bits = v;
	return true;
}

/* Clear the bits past the prefix; true if any was set. */
static bool mask_host_bits(unsigned char *addr, size_t len, unsigned bits)
{
	bool had = false;

	for (size_t i = 0; i < len; i++) {
		unsigned keep = bits >= (i + 1) * 8 ? 8 : bits > i * 8 ? bits - (unsigned)i * 8 : 0;
		unsigned char m = (unsigned char)(keep ? 0xff << (8 - keep) : 0);
		had |= (addr[i] & ~m) != 0;
		addr[i] &= m;
	}
	return had;
}

int dg_cidr_parse(const char *text, struct dg_cidr *out, char *err, size_t errlen)
{
	char host[INET6_ADDRSTRLEN + 1], shown[INET6_ADDRSTRLEN + 8];
	const char *slash = strchr(text, '/');
	size_t hlen = slash ? (size_t)(slash - text) : strlen(text);

	memset(out, 0, sizeof(*out));
	if (hlen == 0 || hlen >= sizeof(host)) {
		snprintf(err, errlen, "expected an address or address/prefix-length");
		return DG_EINVAL;
	}
	memcpy(host, text, hlen);
	host[hlen] = '\0';
	out->family = memchr(host, ':', hlen) ? AF_INET6 : AF_INET;
	unsigned max = out->family == AF_INET ? 32 : 128;
	if (inet_pton(out->family, host, out->addr) != 1) {
		snprintf(err, errlen, "expected a numeric IPv4 or IPv6 address%s",
		         slash ? " before the '/'" : ", optionally with /prefix-length");
		return DG_EINVAL;
	}
	out->bits = max;
	if (slash && !parse_bits(slash + 1, max, &out->bits)) {
		snprintf(err, errlen, "expected a prefix length from 0 to %u after the '/'", max);
		return DG_EINVAL;
	}
	if (mask_host_bits(out->addr, max / 8, out->bits)) {
		snprintf(err, errlen, "bits set past the prefix length (did you mean '%s'?)",
		         dg_cidr_format(out, shown, sizeof(shown)));
		return DG_EINVAL;
	}
	/* ::ffff:a.b.c.d/96+n is the IPv4 prefix a.b.c.d/n. */
	if (out->family == AF_INET6 && out->bits >= 96 && is_v4_mapped(out->addr)) {
		memmove(out->addr, out->addr + 12, 4);
		memset(out->addr + 4, 0, 12);
		out->family = AF_INET;
		out->bits -= 96;
	}
	return DG_OK;
}

const char *dg_cidr_format(const struct dg_cidr *c, char *buf, size_t len)
{
	char host[INET6_ADDRSTRLEN];

	if (!inet_ntop(c->family, c->addr, host, sizeof(host)))
		snprintf(host, sizeof(host), "?");
	snprintf(buf, len, "%s/%u", host, c->bits);
	return buf;
}

static int add4(struct dg_ipset *set, const struct dg_cidr *c)
{
	if (set->n4 == set->cap4) {
		size_t cap = set->cap4 ? set->cap4 * 2 : 8;
		struct dg_range4 *r = realloc(set->r4, cap * sizeof(*r));
		if (!r)
			return DG_ENOMEM;
		set->r4 = r;
		set->cap4 = cap;
	}
	uint32_t first = (uint32_t)c->addr[0] << 24 | (uint32_t)c->addr[1] << 16 |
	                 (uint32_t)c->addr[2] << 8 | c->addr[3];
	uint32_t host = c->bits == 32 ? 0 : 0xffffffffu >> c->bits;
	set->r4[set->n4++] = (struct dg_range4){ first, first | host };
	return DG_OK;
}

static int add6(struct dg_ipset *set, const struct dg_cidr *c)
{
	if (set->n6 == set->cap6) {
		size_t cap = set->cap6 ? set->cap6 * 2 : 8;
		struct dg_range6 *r = realloc(set->r6, cap * sizeof(*r));
		if (!r)
			return DG_ENOMEM;
		set->r6 = r;
		set->cap6 = cap;
	}
	uint64_t hi = load_be64(c->addr), lo = load_be64(c->addr + 8);
	uint64_t host_hi = c->bits >= 64 ? 0 : ~0ull >> c->bits;
	uint64_t host_lo = c->bits <= 64 ? ~0ull : c->bits == 128 ? 0 : ~0ull >> (c->bits - 64);
	set->r6[set->n6++] = (struct dg_range6){ hi, lo, hi | host_hi, lo | host_lo };
	return DG_OK;
}

int dg_ipset_add(struct dg_ipset *set, const struct dg_cidr *c)
{
	return c->family == AF_INET ? add4(set, c) : add6(set, c);
}

static int cmp4(const void *a, const void *b)
{
	const struct dg_range4 *x = a, *y = b;

	return x->first < y->first ? -1 : x->first > y->first;
}

static int cmp128(uint64_t ahi, uint64_t alo, uint64_t bhi, uint64_t blo)
{
	if (ahi != bhi)
		return ahi < bhi ? -1 : 1;
	return alo < blo ? -1 : alo > blo;
}

static int cmp6(const void *a, const void *b)
{
	const struct dg_range6 *x = a, *y = b;

	return cmp128(x->first_hi, x->first_lo, y->first_hi, y->first_lo);
}

/* Ranges sorted by first: fold each one that overlaps or touches the one
 * before into it. */
static size_t merge4(struct dg_range4 *r, size_t n)
{
	size_t out = 0;

	for (size_t i = 1; i < n; i++) {
		if (r[out].last == UINT32_MAX || r[i].first <= r[out].last + 1) {
			if (r[i].last > r[out].last)
				r[out].last = r[i].last;
		} else {
			r[++out] = r[i];
		}
	}
	return n ? out + 1 : 0;
}

static size_t merge6(struct dg_range6 *r, size_t n)
{
	size_t out = 0;

	for (size_t i = 1; i < n; i++) {
		struct dg_range6 *c = &r[out];
		/* next = c->last + 1, unless c->last is the top address */
		uint64_t nlo = c->last_lo + 1, nhi = c->last_hi + (nlo == 0);
		bool top = c->last_hi == UINT64_MAX && c->last_lo == UINT64_MAX;
		if (top || cmp128(r[i].first_hi, r[i].first_lo, nhi, nlo) <= 0) {
			if (cmp128(r[i].last_hi, r[i].last_lo, c->last_hi, c->last_lo) > 0) {
				c->last_hi = r[i].last_hi;
				c->last_lo = r[i].last_lo;
			}
		} else {
			r[++out] = r[i];
		}
	}
	return n ? out + 1 : 0;
}

void dg_ipset_build(struct dg_ipset *set)
{
	if (set->n4)
		qsort(set->r4, set->n4, sizeof(*set->r4), cmp4);
	if (set->n6)
		qsort(set->r6, set->n6, sizeof(*set->r6), cmp6);
	set->n4 = merge4(set->r4, set->n4);
	set->n6 = merge6(set->r6, set->n6);
}

static bool contains4(const struct dg_ipset *set, uint32_t a)
{
	size_t lo = 0, hi = set->n4; /* the first range with first > a is in [lo, hi] */

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (set->r4[mid].first <= a)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo > 0 && a <= set->r4[lo - 1].last;
}

static bool contains6(const struct dg_ipset *set, uint64_t ahi, uint64_t alo)
{
	size_t lo = 0, hi = set->n6;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (cmp128(set->r6[mid].first_hi, set->r6[mid].first_lo, ahi, alo) <= 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo > 0 && cmp128(ahi, alo, set->r6[lo - 1].last_hi, set->r6[lo - 1].last_lo) <= 0;
}

bool dg_ipset_contains(const struct dg_ipset *set, const struct sockaddr *sa)
{
	if (sa->sa_family == AF_INET)
		return contains4(set, ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr));
	if (sa->sa_family != AF_INET6)
		return false;
	const unsigned char *a = ((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr;
	if (is_v4_mapped(a))
		return contains4(set, (uint32_t)a[12] << 24 | (uint32_t)a[13] << 16 |
		                      (uint32_t)a[14] << 8 | a[15]);
	return contains6(set, load_be64(a), load_be64(a + 8));
}

void dg_ipset_release(struct dg_ipset *set)
{
	free(set->r4);
	free(set->r6);
	memset(set, 0, sizeof(*set));
}

void dg_acl_build(struct dg_acl *acl)
{
	dg_ipset_build(&acl->allow);
	dg_ipset_build(&acl->deny);
	acl->active = acl->allow.n4 || acl->allow.n6 || acl->deny.n4 || acl->deny.n6;
}

void dg_acl_release(struct dg_acl *acl)
{
	dg_ipset_release(&acl->allow);
	dg_ipset_release(&acl->deny);
	acl->active = false;
}
