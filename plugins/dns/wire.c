/* dns wire: parse one query, write its answer (RFC 1035, 2181, 2308, 6891).
 *
 * The parser takes nothing on trust: exactly one question, no answer or
 * authority records, at most one additional record (OPT), nothing after
 * it. A name in a query may not use compression (a query has no earlier
 * name to point at), so pointer loops and forward pointers cannot be
 * followed: they are FORMERR, as are labels past the end, extended label
 * types and names over 255 bytes. No allocation: the reply is written into
 * the caller's buffer, with a bounded compression table on the stack. */
#include <string.h>

#include "dns.h"

#define OPT_LEN 11   /* root name, type, class, TTL, rdlength 0 */
#define EDE_LEN 6    /* an Extended DNS Error option with its info code */
#define COOKIE_OPT_LEN (4 + DNS_COOKIE_LEN) /* the COOKIE option we send */
#define EDE_NOT_AUTHORITATIVE 20 /* RFC 8914 */
#define COMP_MAX 64  /* names remembered for compression per reply */
#define EXTRA_MAX 32 /* names whose addresses go in the additional section */

struct query {
	uint16_t id;
	uint8_t flags;   /* header byte 2 */
	uint8_t cdflag;  /* header byte 3 & CD */
	size_t qend;     /* end of the question */
	uint8_t qname[DNS_NAME_MAX]; /* lowercase */
	size_t qnlen;
	uint16_t qtype, qclass;
	bool edns, dobit;
	uint8_t version;
	uint16_t payload;
	bool cookies;          /* read COOKIE options (else ignored) */
	const uint8_t *cookie; /* the COOKIE option's data, in the query */
	size_t cookielen;
};

struct comp {
	const uint8_t *name; /* lowercase wire suffix; lives as long as the reply */
	uint16_t len, off;
};

/* The reply being written. cap: where the sections must end (the limit
 * less room for the OPT record). */
struct writer {
	uint8_t *p;
	size_t len, cap;
	uint16_t count[3]; /* answer, authority, additional */
	struct comp comp[COMP_MAX];
	unsigned ncomp;
	const struct dns_node *extra[EXTRA_MAX];
	unsigned nextra;
	const struct dns_rrset *answer; /* the data the answer ends with */
};

enum { AN, NS, AR };

static uint16_t get16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static void put16(uint8_t *p, unsigned v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

/* An uncompressed name at *pos; lowercase copy in out (may be NULL).
 * false on anything hostile. */
static bool name_read(const uint8_t *m, size_t len, size_t *pos, uint8_t *out, size_t *outlen)
{
	size_t i = *pos, n = 0;

	for (;;) {
		if (i >= len)
			return false; /* label past the end */
		uint8_t l = m[i];
		if (l & 0xC0)
			return false; /* a pointer (or an extended label type) */
		if (n + 1u + l > DNS_NAME_MAX || i + 1u + l > len)
			return false;
		if (out) {
			out[n] = l;
			for (unsigned j = 1; j <= l; j++) {
				uint8_t c = m[i + j];
				out[n + j] = c >= 'A' && c <= 'Z' ? (uint8_t)(c + 32) : c;
			}
		}
		n += 1u + l;
		i += 1u + l;
		if (!l)
			break;
	}
	*pos = i;
	if (outlen)
		*outlen = n;
	return true;
}

/* A COOKIE option's data (RFC 7873 5.2.2): one option, a client cookie
 * of 8 bytes alone or with a server cookie of 8 to 32. */
static bool cookie_read(struct query *q, const uint8_t *data, size_t len)
{
	if (q->cookie || (len != DNS_COOKIE_CLIENT && (len < 16 || len > 40)))
		return false;
	q->cookie = data;
	q->cookielen = len;
	return true;
}

/* The OPT record at *pos (RFC 6891): root owner, type 41, options that
 * fill its rdata exactly. */
static bool opt_read(const uint8_t *m, size_t len, size_t *pos, struct query *q)
{
	size_t i = *pos;

	if (len - i < OPT_LEN || m[i] != 0 || get16(m + i + 1) != DNS_T_OPT)
		return false;
	q->edns = true;
	q->payload = get16(m + i + 3);
	q->version = m[i + 6];
	q->dobit = (m[i + 7] & 0x80) != 0;
	size_t rdlen = get16(m + i + 9);
	i += OPT_LEN;
	if (len - i < rdlen)
		return false;
	for (size_t end = i + rdlen; i < end;) {
		if (end - i < 4 || end - i - 4 < get16(m + i + 2))
			return false;
		if (q->cookies && get16(m + i) == DNS_OPT_COOKIE && !cookie_read(q, m + i + 4, get16(m + i + 2)))
			return false;
		i += 4u + get16(m + i + 2);
	}
	*pos = i;
	return true;
}

/* Parse the query: DNS_NOERROR, an rcode to answer with, or -1 to drop. */
static int query_parse(const uint8_t *m, size_t len, struct query *q)
{
	size_t pos = DNS_HEADER;

	if (len < DNS_HEADER || (m[2] & 0x80))
		return -1; /* no header, or a response: never answer those */
	q->id = get16(m);
	q->flags = m[2];
	q->cdflag = m[3] & 0x10;
	if ((m[2] >> 3 & 0xF) != 0)
		return DNS_NOTIMP;
	if (get16(m + 4) != 1 || get16(m + 6) || get16(m + 8) || get16(m + 10) > 1)
		return DNS_FORMERR;
	if (!name_read(m, len, &pos, q->qname, &q->qnlen) || len - pos < 4)
		return DNS_FORMERR;
	q->qtype = get16(m + pos);
	q->qclass = get16(m + pos + 2);
	q->qend = pos += 4;
	if (get16(m + 10) && !opt_read(m, len, &pos, q))
		return DNS_FORMERR;
	if (pos != len)
		return DNS_FORMERR; /* trailing bytes */
	if (q->edns && q->version != 0)
		return DNS_BADVERS;
	return DNS_NOERROR;
}

bool dns_query_cookie(const uint8_t *m, size_t len, const uint8_t **cookie, size_t *clen)
{
	struct query q = { .cookies = true };
	int rc = query_parse(m, len, &q);

	if ((rc != DNS_NOERROR && rc != DNS_BADVERS) || !q.cookie)
		return false;
	*cookie = q.cookie;
	*clen = q.cookielen;
	return true;
}

/* ---- writing ---- */

static int comp_find(const struct writer *w, const uint8_t *name, size_t len)
{
	for (unsigned i = 0; i < w->ncomp; i++)
		if (w->comp[i].len == len && !memcmp(w->comp[i].name, name, len))
			return w->comp[i].off;
	return -1;
}

static void comp_add(struct writer *w, const uint8_t *name, size_t len, size_t off)
{
	if (w->ncomp < COMP_MAX && off < 0x4000 && len > 1)
		w->comp[w->ncomp++] = (struct comp){ name, (uint16_t)len, (uint16_t)off };
}

/* Write a lowercase wire name, compressed against what the reply holds. */
static bool name_put(struct writer *w, const uint8_t *name, size_t len)
{
	size_t i = 0;
	int ptr = -1;

	while (name[i] && (ptr = comp_find(w, name + i, len - i)) < 0)
		i += name[i] + 1u;
	size_t need = ptr >= 0 ? i + 2 : len;
	if (w->cap - w->len < need)
		return false;
	for (size_t j = 0; j < i; j += name[j] + 1u)
		comp_add(w, name + j, len - j, w->len + j);
	memcpy(w->p + w->len, name, i);
	w->len += i;
	if (ptr >= 0) {
		put16(w->p + w->len, 0xC000u | (unsigned)ptr);
		w->len += 2;
	} else {
		w->p[w->len++] = 0;
	}
	return true;
}

static size_t name_len(const uint8_t *name)
{
	size_t i = 0;

	while (name[i])
		i += name[i] + 1u;
	return i + 1;
}

/* One record; rdata names of CNAME, NS, MX and SOA are compressed. */
static bool rr_put(struct writer *w, const uint8_t *owner, size_t olen, const struct dns_rrset *set,
                   const struct dns_rr *rr, uint32_t ttl)
{
	if (!name_put(w, owner, olen) || w->cap - w->len < 10)
		return false;
	uint8_t *h = w->p + w->len;
	put16(h, set->type);
	put16(h + 2, 1);
	put16(h + 4, ttl >> 16);
	put16(h + 6, ttl & 0xFFFF);
	w->len += 10;
	size_t start = w->len;
	const uint8_t *rd = rr->rdata;
	switch (set->type) {
	case DNS_T_MX:
		if (w->cap - w->len < 2)
			return false;
		memcpy(w->p + w->len, rd, 2);
		w->len += 2;
		rd += 2;
		/* fall through */
	case DNS_T_CNAME:
	case DNS_T_NS:
		if (!name_put(w, rd, name_len(rd)))
			return false;
		break;
	case DNS_T_SOA: {
		size_t l1 = name_len(rd), l2 = name_len(rd + l1);
		if (!name_put(w, rd, l1) || !name_put(w, rd + l1, l2) || w->cap - w->len < 20)
			return false;
		memcpy(w->p + w->len, rd + l1 + l2, 20);
		w->len += 20;
		break;
	}
	default:
		if (w->cap - w->len < rr->rdlen)
			return false;
		memcpy(w->p + w->len, rd, rr->rdlen);
		w->len += rr->rdlen;
	}
	put16(h + 8, (unsigned)(w->len - start));
	return true;
}

/* A whole RRset in section sec, or nothing (false: it does not fit). */
static bool set_put(struct writer *w, int sec, const uint8_t *oname, size_t olen,
                    const struct dns_rrset *set, uint32_t ttl)
{
	size_t len = w->len;
	unsigned ncomp = w->ncomp;

	for (unsigned i = 0; i < set->n; i++) {
		if (!rr_put(w, oname, olen, set, &set->rr[i], ttl)) {
			w->len = len;
			w->ncomp = ncomp;
			return false;
		}
	}
	w->count[sec] = (uint16_t)(w->count[sec] + set->n);
	/* Names whose addresses the additional section gives (RFC 1035 3.7). */
	for (unsigned i = 0; (set->type == DNS_T_MX || set->type == DNS_T_NS) && i < set->n; i++) {
		const struct dns_node *t = set->rr[i].target;
		unsigned j = 0;
		while (t && j < w->nextra && w->extra[j] != t)
			j++;
		if (t && j == w->nextra && w->nextra < EXTRA_MAX)
			w->extra[w->nextra++] = t;
	}
	return true;
}

/* The additional section: every A, then every AAAA, of the names the
 * answer and authority named (as NSD orders them). What does not fit is
 * left out, without TC (RFC 2181 9). */
static void extra_put(struct writer *w)
{
	static const int kinds[] = { DNS_K_A, DNS_K_AAAA };

	for (size_t k = 0; k < 2; k++)
		for (unsigned i = 0; i < w->nextra; i++) {
			const struct dns_node *t = w->extra[i];
			const struct dns_rrset *set = t->set[kinds[k]];
			if (set == w->answer)
				continue; /* already in the answer */
			if (set && !set_put(w, AR, t->name, t->len, set, set->ttl))
				return;
		}
}

/* NXDOMAIN and NODATA: the zone's SOA, with the negative TTL. */
static bool soa_put(struct writer *w, const struct dns_zone *z)
{
	return set_put(w, NS, z->apex->name, z->apex->len, z->apex->set[DNS_K_SOA], z->neg_ttl);
}

static bool referral_put(struct writer *w, const struct dns_node *cut)
{
	if (!set_put(w, NS, cut->name, cut->len, cut->set[DNS_K_NS], cut->set[DNS_K_NS]->ttl))
		return false;
	extra_put(w);
	return true;
}

/* The answer for the zone's node n (the qname, which exists). Returns
 * the rcode, or -1 when the sections do not fit. */
static int data_put(struct writer *w, const struct query *q, const struct dns_node *n)
{
	const uint8_t *oname = q->qname;
	size_t olen = q->qnlen;
	int k = dns_kind_of(q->qtype);

	for (unsigned chain = 0;; chain++) {
		const struct dns_rrset *set = k >= 0 ? n->set[k] : NULL;
		for (int a = 0; q->qtype == DNS_T_ANY && !set && a < DNS_K_COUNT; a++)
			set = n->set[a]; /* ANY: one RRset (RFC 8482) */
		if (set) {
			if (!set_put(w, AN, oname, olen, set, set->ttl))
				return -1;
			w->answer = set;
			const struct dns_node *apex = n->zone->apex;
			const struct dns_rrset *ns = apex->set[DNS_K_NS];
			if (ns && set != ns && !set_put(w, NS, apex->name, apex->len, ns, ns->ttl))
				return -1;
			extra_put(w);
			return DNS_NOERROR;
		}
		const struct dns_rrset *cname = n->set[DNS_K_CNAME];
		if (!cname || q->qtype == DNS_T_CNAME) {
			return soa_put(w, n->zone) ? DNS_NOERROR : -1; /* NODATA */
		}
		if (!set_put(w, AN, oname, olen, cname, cname->ttl))
			return -1;
		const struct dns_rr *rr = &cname->rr[0];
		if (!rr->target || rr->target->cut || chain + 1 >= DNS_CHAIN_MAX) {
			if (rr->in_zone && !rr->target)
				return soa_put(w, n->zone) ? DNS_NXDOMAIN : -1;
			return DNS_NOERROR; /* leaves the zone: the resolver goes on */
		}
		n = rr->target;
		oname = n->name;
		olen = n->len;
	}
}

/* Find the answer for the question. Returns the rcode, -1 if it does not
 * fit; sets *aa. */
static int lookup(const struct dns_db *db, struct writer *w, const struct query *q, bool *aa)
{
	const struct dns_node *n = NULL;
	size_t off = 0;

	*aa = false;
	if (q->qclass != 1)
		return DNS_REFUSED;
	if (q->qtype == DNS_T_AXFR || q->qtype == DNS_T_IXFR)
		return DNS_REFUSED; /* no zone transfers */
	/* The closest encloser: the longest suffix of the qname we hold. */
	for (;;) {
		n = dns_db_find(db, q->qname + off, q->qnlen - off);
		if (n || !q->qname[off])
			break;
		off += q->qname[off] + 1u;
	}
	if (!n)
		return DNS_REFUSED; /* not one of our zones */
	const struct dns_node *cut = n->cut;
	if (cut && !(cut == n && off == 0 && q->qtype == DNS_T_DS))
		return referral_put(w, cut) ? DNS_NOERROR : -1;
	*aa = true;
	if (off)
		return soa_put(w, n->zone) ? DNS_NXDOMAIN : -1;
	return data_put(w, q, n);
}

static void header_put(uint8_t *out, const struct query *q, int rcode, bool aa, bool tc)
{
	put16(out, q->id);
	out[2] = (uint8_t)(0x80 | (q->flags & 0x79) | (aa ? 0x04 : 0) | (tc ? 0x02 : 0)); /* QR, opcode, RD */
	out[3] = (uint8_t)(q->cdflag | (rcode & 0xF));
}

/* The OPT record: with the COOKIE option (cookie: client and server
 * cookie, or NULL); a REFUSED carries the Extended DNS Error "Not
 * Authoritative" (RFC 8914), as NSD's does. Returns its length. */
static size_t opt_put(uint8_t *p, const struct query *q, unsigned payload, int rcode,
                      const uint8_t *cookie)
{
	size_t len = OPT_LEN;

	p[0] = 0;
	put16(p + 1, DNS_T_OPT);
	put16(p + 3, payload);
	p[5] = (uint8_t)(rcode >> 4);
	p[6] = 0;
	p[7] = q->dobit ? 0x80 : 0;
	p[8] = 0;
	if (cookie) {
		put16(p + len, DNS_OPT_COOKIE);
		put16(p + len + 2, DNS_COOKIE_LEN);
		memcpy(p + len + 4, cookie, DNS_COOKIE_LEN);
		len += COOKIE_OPT_LEN;
	}
	if (rcode == DNS_REFUSED) {
		put16(p + len, 15); /* option code: EDE */
		put16(p + len + 2, 2);
		put16(p + len + 4, EDE_NOT_AUTHORITATIVE);
		len += EDE_LEN;
	}
	put16(p + 9, (unsigned)(len - OPT_LEN));
	return len;
}

/* The cookie the reply carries (out: DNS_COOKIE_LEN bytes): the client's,
 * and the query's server cookie if valid and young, else a new one. The
 * query's enum dns_cookie_state. */
static int cookie_answer(const struct dns_cookies *ck, const struct query *q, uint8_t *out)
{
	const uint8_t *server = q->cookie + DNS_COOKIE_CLIENT;
	bool valid = dns_cookie_valid(ck, q->cookie, q->cookielen);

	memcpy(out, q->cookie, DNS_COOKIE_CLIENT);
	if (valid) {
		uint32_t ts = (uint32_t)server[4] << 24 | (uint32_t)server[5] << 16 |
		              (uint32_t)server[6] << 8 | server[7];
		int32_t age = (int32_t)(ck->now - ts);
		/* A little in the future is young too (dns_cookie_valid bounds
		 * it): another server with the same secret, NSD say, whose clock
		 * reads a second ahead of this one's made it. */
		if (age < DNS_COOKIE_RENEW) {
			memcpy(out + DNS_COOKIE_CLIENT, server, DNS_COOKIE_SERVER);
			return DNS_CK_VALID;
		}
	}
	dns_cookie_make(ck, q->cookie, ck->now, out + DNS_COOKIE_CLIENT);
	return valid ? DNS_CK_VALID : DNS_CK_CLIENT;
}

/* A reply without question: FORMERR, NOTIMP. */
static size_t bare_reply(uint8_t *out, const uint8_t *m, struct query *q, int rcode, struct dns_result *res)
{
	q->id = get16(m);
	q->flags = m[2];
	q->cdflag = m[3] & 0x10;
	memset(out, 0, DNS_HEADER);
	header_put(out, q, rcode, false, false);
	res->rcode = rcode;
	res->qend = DNS_HEADER;
	return DNS_HEADER;
}

size_t dns_answer(const struct dns_db *db, const uint8_t *m, size_t len, uint8_t *out,
                  size_t max_payload, const struct dns_cookies *ck, struct dns_result *res)
{
	struct query q = { .cookies = ck != NULL };
	uint8_t cookie[DNS_COOKIE_LEN];
	struct writer w;
	bool aa = false;

	memset(res, 0, sizeof(*res));
	res->rcode = -1;
	int rc = query_parse(m, len, &q);
	if (rc < 0)
		return 0;
	if (rc == DNS_FORMERR || rc == DNS_NOTIMP)
		return bare_reply(out, m, &q, rc, res);
	size_t limit = DNS_UDP_MIN;
	if (q.edns && q.payload > limit)
		limit = q.payload;
	if (limit > max_payload)
		limit = max_payload;
	if (q.cookie)
		res->cookie = cookie_answer(ck, &q, cookie);
	w.p = out;
	w.cap = limit - (q.edns ? OPT_LEN : 0) - (q.cookie ? COOKIE_OPT_LEN : 0);
	w.ncomp = w.nextra = 0;
	w.answer = NULL;
	memset(w.count, 0, sizeof(w.count));
	/* Header and question as asked (its case kept: RFC 1034 4.1, 0x20). */
	memcpy(out, m, q.qend);
	put16(out + 4, 1);
	w.len = q.qend;
	for (size_t i = 0; q.qname[i]; i += q.qname[i] + 1u)
		comp_add(&w, q.qname + i, q.qnlen - i, DNS_HEADER + i);
	if (rc == DNS_NOERROR)
		rc = lookup(db, &w, &q, &aa);
	bool tc = rc < 0;
	if (tc) { /* answer or authority does not fit: the question alone, TC=1 */
		w.len = q.qend;
		memset(w.count, 0, sizeof(w.count));
		rc = DNS_NOERROR;
	}
	if (q.edns) {
		/* A REFUSED has no sections: its EDE fits where they would be. */
		res->optlen = opt_put(out + w.len, &q, (unsigned)max_payload, rc, q.cookie ? cookie : NULL);
		w.len += res->optlen;
		w.count[AR]++;
	}
	header_put(out, &q, rc, aa, tc);
	put16(out + 6, w.count[AN]);
	put16(out + 8, w.count[NS]);
	put16(out + 10, w.count[AR]);
	res->rcode = rc;
	res->truncated = tc;
	res->edns = q.edns;
	res->qend = q.qend;
	return w.len;
}

size_t dns_truncate(uint8_t *out, size_t len, const struct dns_result *res)
{
	if (res->qend <= DNS_HEADER) /* FORMERR, NOTIMP: a header alone */
		return len;
	if (res->edns)
		memmove(out + res->qend, out + len - res->optlen, res->optlen);
	out[2] |= 0x02;
	put16(out + 6, 0);
	put16(out + 8, 0);
	put16(out + 10, res->edns ? 1 : 0);
	return res->qend + (res->edns ? res->optlen : 0);
}

size_t dns_badcookie(uint8_t *out, size_t len, struct dns_result *res)
{
	if (res->cookie == DNS_CK_NONE || res->qend <= DNS_HEADER)
		return len;
	memmove(out + res->qend, out + len - res->optlen, res->optlen);
	out[2] &= (uint8_t)~0x06; /* AA, TC */
	out[3] = (uint8_t)((out[3] & 0xF0) | (DNS_BADCOOKIE & 0xF));
	out[res->qend + 5] = DNS_BADCOOKIE >> 4; /* the OPT's extended rcode */
	put16(out + 6, 0);
	put16(out + 8, 0);
	put16(out + 10, 1);
	res->rcode = DNS_BADCOOKIE;
	res->truncated = false;
	return res->qend + res->optlen;
}
