/* Rate limits on datagrams: token buckets per source address and one for
 * the whole listener ("rate_limit" in the config). Not to be confused with
 * ratelimit.h's dg_ratelimit, which limits log lines.
 *
 * A bucket holds up to `burst` datagrams and refills at `rate` per second;
 * a datagram takes one or is dropped. Tokens are counted in millionths of a
 * datagram and time in the caller's cached milliseconds, so the arithmetic
 * is exact and there is no clock read per datagram.
 *
 * Per-source buckets live in a fixed table of table_size entries of
 * DG_THROTTLE_ENTRY_BYTES each, allocated (and touched) once: a flood of
 * spoofed sources cannot grow it. The table is 4-way set associative under
 * a keyed random hash; a new source takes the slot of the fullest bucket of
 * its set (after refill): a full bucket is the same as a fresh one, so the
 * sources being limited are the last to be forgotten. */
#ifndef DG_THROTTLE_H
#define DG_THROTTLE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#define DG_THROTTLE_WAYS 4
#define DG_THROTTLE_UNIT 1000000ull /* tokens per datagram */

/* One limit as configured. rate_u: refill in tokens per millisecond
 * (rate per second x 1000); 0 means no limit. */
struct dg_limit_conf {
	uint64_t rate_u;
	unsigned burst;       /* datagrams */
};

struct dg_throttle_conf {
	struct dg_limit_conf per_source, total;
	unsigned ipv6_prefix; /* bits of an IPv6 source that name it */
	unsigned table_size;  /* per-source entries, a power of two */
};

#define DG_DEFAULT_IPV6_PREFIX 64
#define DG_DEFAULT_THROTTLE_TABLE 65536

struct dg_bucket {
	uint64_t tokens;
	uint64_t last_ms;
};

struct dg_throttle_entry {
	uint64_t key_hi, key_lo; /* the source (IPv4 as ::ffff:a.b.c.d) */
	struct dg_bucket b;
};

#define DG_THROTTLE_ENTRY_BYTES sizeof(struct dg_throttle_entry)

struct dg_throttle {
	const struct dg_throttle_conf *conf;
	struct dg_throttle_entry *table; /* NULL: no per-source limit */
	uint32_t set_mask;               /* sets - 1 */
	uint64_t seed[2];
	uint64_t v6_mask_hi, v6_mask_lo;
	uint64_t cap_src, cap_total;     /* burst in tokens */
	uint64_t full_ms_src, full_ms_total; /* time an empty bucket takes to fill */
	struct dg_bucket total;
	bool active;
};

/* Whether a config limits anything. */
static inline bool dg_throttle_conf_active(const struct dg_throttle_conf *c)
{
	return c->per_source.rate_u || c->total.rate_u;
}

/* Set up for conf (kept by pointer: it must outlive t); allocates and
 * fills the per-source table. DG_OK or DG_ENOMEM. now_ms: the clock the
 * caller will pass to dg_throttle_allow. */
int dg_throttle_init(struct dg_throttle *t, const struct dg_throttle_conf *conf, uint64_t now_ms);

void dg_throttle_release(struct dg_throttle *t);

/* The bytes the per-source table takes. */
size_t dg_throttle_table_bytes(const struct dg_throttle_conf *conf);

/* The work of dg_throttle_allow when a limit is set. */
bool dg_throttle_check(struct dg_throttle *t, const struct sockaddr *src, uint64_t now_ms);

/* The total limit alone: whether a datagram whose source the plugin
 * proved (dg_plugin.proves_source) may pass; takes a token of the
 * listener's total if so. The per-source limit is for sources that may
 * be spoofed; the total is the listener's capacity, and applies to all. */
bool dg_throttle_total(struct dg_throttle *t, uint64_t now_ms);

/* Whether a datagram from src may pass at now_ms (a cached clock that
 * never goes back); takes its token if so. */
static inline bool dg_throttle_allow(struct dg_throttle *t, const struct sockaddr *src,
                                     uint64_t now_ms)
{
	return !t->active || dg_throttle_check(t, src, now_ms);
}

#endif
