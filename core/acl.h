/* Access control: a listener's "allow" and "deny" lists of CIDRs, looked
 * up per datagram before anything else is done with it.
 *
 * Each list is kept as sorted, disjoint address ranges per family (the
 * CIDRs merged), so one lookup is one binary search: O(log n) for n CIDRs,
 * whatever their prefix lengths. IPv4-mapped IPv6 addresses
 * (::ffff:a.b.c.d) are IPv4 addresses here, as sources and in the lists.
 *
 * Precedence: a source in "deny" is refused; otherwise, if "allow" is not
 * empty, only a source in "allow" passes; with neither list, all pass.
 * Nothing here logs or allocates after dg_acl_build(). */
#ifndef DG_ACL_H
#define DG_ACL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* One prefix: an IPv4 one is kept as family AF_INET (also when written as
 * ::ffff:a.b.c.d/96+n). addr is in network order; bits beyond the prefix
 * are zero. */
struct dg_cidr {
	int family;
	unsigned bits;
	unsigned char addr[16];
};

/* Inclusive address ranges, in host order (IPv6 as two 64-bit halves). */
struct dg_range4 {
	uint32_t first, last;
};
struct dg_range6 {
	uint64_t first_hi, first_lo, last_hi, last_lo;
};

/* A set of prefixes: while being built, ranges in any order (n, cap);
 * after dg_ipset_build(), sorted and merged. */
struct dg_ipset {
	struct dg_range4 *r4;
	struct dg_range6 *r6;
	size_t n4, n6, cap4, cap6;
};

struct dg_acl {
	struct dg_ipset allow, deny;
	bool active; /* false: no rule at all, every source passes */
};

/* Parse "a.b.c.d/n", "ipv6/n" or a bare address (a host: /32 or /128).
 * Returns DG_OK, or DG_EINVAL with the reason in err ("host bits set",
 * "prefix length over 32", ...). Bits beyond the prefix must be zero. */
int dg_cidr_parse(const char *text, struct dg_cidr *out, char *err, size_t errlen);

/* Format a CIDR as "10.0.0.0/8" or "2001:db8::/32" (always terminated). */
const char *dg_cidr_format(const struct dg_cidr *c, char *buf, size_t len);

/* Add a prefix to a set being built. DG_OK or DG_ENOMEM. */
int dg_ipset_add(struct dg_ipset *set, const struct dg_cidr *c);

/* Sort and merge the ranges: lookups may start. */
void dg_ipset_build(struct dg_ipset *set);

/* Whether a set (built) holds the address of sa (AF_INET or AF_INET6;
 * any other family is in no set). */
bool dg_ipset_contains(const struct dg_ipset *set, const struct sockaddr *sa);

/* Free a set's ranges; the set is empty again. */
void dg_ipset_release(struct dg_ipset *set);

/* Build both lists of an ACL filled with dg_ipset_add(). */
void dg_acl_build(struct dg_acl *acl);

/* Whether the source address sa may pass (see the precedence above). */
static inline bool dg_acl_allows(const struct dg_acl *acl, const struct sockaddr *sa)
{
	if (!acl->active)
		return true;
	if (dg_ipset_contains(&acl->deny, sa))
		return false;
	return !(acl->allow.n4 || acl->allow.n6) || dg_ipset_contains(&acl->allow, sa);
}

void dg_acl_release(struct dg_acl *acl);

#endif
