/* The dns plugin itself (plugins/.libs/dns.so) on the harness
 * (<dgramd/testing.h>: the daemon's own dispatch, a fake clock, a capture
 * sink): wire-format queries built here from chosen peers, the captured
 * replies parsed back and checked against the zone this test configures
 * (ids, flags, rcodes, sections, the OPT record), the plugin's counters by
 * name, hostile queries, and what the plugin does when the host refuses a
 * reply (over max_datagram, over the amplification credit): it sends the
 * truncated form. The parser and writer alone are tests/plugins/test_dns_wire;
 * real clients and NSD are tests/integration/dns_clients.py, dns_nsd.py. */
#include "config.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <dgramd/testing.h>

#include "testutil.h"

enum { T_A = 1, T_NS = 2, T_CNAME = 5, T_SOA = 6, T_MX = 15, T_TXT = 16, T_AAAA = 28, T_OPT = 41,
       T_AXFR = 252 };
enum { NOERROR = 0, FORMERR = 1, NXDOMAIN = 3, NOTIMP = 4, REFUSED = 5, BADVERS = 16 };
enum { QR = 0x80, AA = 0x04, TC = 0x02, RD = 0x01 }; /* header byte 2 */
enum { QD, AN, NS, AR };

#define PEER "127.0.0.1:40000"
#define TXT_LEN 250 /* the string of each of big.example.com's 3 TXT records */

/* ---- the zone ---------------------------------------------------------- */

/* The zone every test serves: what the replies are checked against. */
static json_t *zones(void)
{
	char txt[3][TXT_LEN + 1];

	for (int i = 0; i < 3; i++) {
		memset(txt[i], 'a' + i, TXT_LEN);
		txt[i][TXT_LEN] = 0;
	}
	return json_pack(
		"[{ss si s{ssss si si si si si} s["
		"{ssssss} {ssssss} {ssssss} {ssssss} {ssssss} {ssssss}"
		"{sssss{siss}} {ssssss} {ssssss} {ssssss} {sssss[s]} {ssssss} {ssssss} {ssssss}]}]",
		"origin", "example.com.", "ttl", 3600,
		"soa", "mname", "ns1", "rname", "hostmaster", "serial", 2026112301, "refresh", 7200,
		"retry", 3600, "expire", 1209600, "minimum", 300,
		"records",
		"name", "@", "type", "NS", "data", "ns1",
		"name", "ns1", "type", "A", "data", "192.0.2.53",
		"name", "www", "type", "A", "data", "192.0.2.1",
		"name", "www", "type", "A", "data", "192.0.2.2",
		"name", "www", "type", "AAAA", "data", "2001:db8::1",
		"name", "mail", "type", "A", "data", "192.0.2.25",
		"name", "@", "type", "MX", "data", "preference", 10, "exchange", "mail",
		"name", "alias", "type", "CNAME", "data", "www",
		"name", "sub", "type", "NS", "data", "ns.sub",
		"name", "ns.sub", "type", "A", "data", "192.0.2.99",
		"name", "txt", "type", "TXT", "data", "hello",
		"name", "big", "type", "TXT", "data", txt[0],
		"name", "big", "type", "TXT", "data", txt[1],
		"name", "big", "type", "TXT", "data", txt[2]);
}

/* A harness serving zones() with extra listener keys (may be "") and
 * max_payload (0: the plugin's default). */
static struct dg_harness *dns_on_cfg(const char *keys, unsigned max_payload, const char *extra);

static struct dg_harness *dns_on(const char *keys, unsigned max_payload)
{
	return dns_on_cfg(keys, max_payload, "{}");
}

/* As dns_on(), with extra plugin config keys (a JSON object). */
static struct dg_harness *dns_on_cfg(const char *keys, unsigned max_payload, const char *extra)
{
	char plugin[4096], err[512];
	json_t *conf = json_loads(keys[0] ? keys : "{}", 0, NULL);
	json_t *cfg = json_loads(extra, 0, NULL);

	CU_ASSERT_PTR_NOT_NULL_FATAL(cfg);
	json_object_set_new(cfg, "zones", zones());

	CU_ASSERT_PTR_NOT_NULL_FATAL(conf);
	CU_ASSERT_PTR_NOT_NULL_FATAL(cfg);
	if (max_payload)
		json_object_set_new(cfg, "max_payload", json_integer(max_payload));
	snprintf(plugin, sizeof(plugin), "%s/plugins/.libs/dns.so", dg_test_builddir());
	json_object_set_new(conf, "codec", json_string("raw"));
	json_object_set_new(conf, "handler", json_pack("{ssso}", "plugin", plugin, "config", cfg));
	char *text = json_dumps(conf, JSON_COMPACT);
	json_decref(conf);
	CU_ASSERT_PTR_NOT_NULL_FATAL(text);
	struct dg_harness *h = dg_harness_new(text, NULL, err, sizeof(err));
	if (!h)
		fprintf(stderr, "dns harness: %s\n", err);
	free(text);
	CU_ASSERT_PTR_NOT_NULL_FATAL(h);
	return h;
}

/* ---- building queries --------------------------------------------------- */

struct qb {
	uint8_t b[1024];
	size_t n;
};

static void qb_u8(struct qb *q, unsigned v)
{
	if (q->n < sizeof(q->b))
		q->b[q->n++] = (uint8_t)v;
}

static void qb_u16(struct qb *q, unsigned v)
{
	qb_u8(q, v >> 8);
	qb_u8(q, v & 0xff);
}

static void qb_header(struct qb *q, unsigned id, unsigned flags, unsigned qd, unsigned an,
                      unsigned ns, unsigned ar)
{
	q->n = 0;
	qb_u16(q, id);
	qb_u16(q, flags);
	qb_u16(q, qd);
	qb_u16(q, an);
	qb_u16(q, ns);
	qb_u16(q, ar);
}

/* "www.example.com" as labels and the root label, case kept. */
static void qb_name(struct qb *q, const char *name)
{
	for (const char *p = name; *p;) {
		size_t l = strcspn(p, ".");
		qb_u8(q, (unsigned)l);
		for (size_t i = 0; i < l; i++)
			qb_u8(q, (unsigned char)p[i]);
		p += l + (p[l] == '.');
	}
	qb_u8(q, 0);
}

/* An OPT record: payload size, version, the DO bit. */
static void qb_opt(struct qb *q, unsigned payload, unsigned version, bool dobit)
{
	qb_u8(q, 0);
	qb_u16(q, T_OPT);
	qb_u16(q, payload);
	qb_u8(q, 0);
	qb_u8(q, version);
	qb_u16(q, dobit ? 0x8000 : 0);
	qb_u16(q, 0);
}

/* A standard query with RD; edns: the OPT's payload size, 0: no OPT. */
static void query(struct qb *q, unsigned id, const char *name, unsigned type, unsigned edns)
{
	qb_header(q, id, RD << 8, 1, 0, 0, edns ? 1 : 0);
	qb_name(q, name);
	qb_u16(q, type);
	qb_u16(q, 1);
	if (edns)
		qb_opt(q, edns, 0, false);
}

/* ---- reading replies ---------------------------------------------------- */

struct rr {
	char owner[300]; /* "www.example.com." */
	uint16_t type, cls;
	uint32_t ttl;
	const uint8_t *rdata;
	uint16_t rdlen;
	size_t rdoff; /* where the rdata starts in the message */
};

struct reply {
	const uint8_t *m;
	size_t len;
	uint16_t id;
	uint8_t f2, f3;
	uint16_t count[4];
	char qname[300];
	uint16_t qtype, qclass;
	size_t qend;
	struct rr rr[64]; /* answer, authority, additional in order */
	unsigned nrr;
	int opt; /* index of the OPT record in rr, -1: none */
};

static uint16_t get16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

/* A (possibly compressed) name at *pos as dotted lowercase text; pointers
 * must go backwards (so a loop ends). false if malformed. */
static bool name_get(const uint8_t *m, size_t len, size_t *pos, char *out, size_t outlen)
{
	size_t i = *pos, o = 0, end = 0;
	unsigned hops = 0;

	for (;;) {
		if (i >= len)
			return false;
		uint8_t l = m[i];
		if ((l & 0xC0) == 0xC0) {
			if (i + 1 >= len || hops++ > 32)
				return false;
			size_t to = (size_t)(l & 0x3F) << 8 | m[i + 1];
			if (!end)
				end = i + 2;
			if (to >= i)
				return false;
			i = to;
			continue;
		}
		if (l & 0xC0 || i + 1 + l > len || o + l + 2 > outlen)
			return false;
		if (!l)
			break;
		for (unsigned j = 1; j <= l; j++) {
			char c = (char)m[i + j];
			out[o++] = c >= 'A' && c <= 'Z' ? (char)(c + 32) : c;
		}
		out[o++] = '.';
		i += 1u + l;
	}
	if (!o)
		out[o++] = '.';
	out[o] = 0;
	*pos = end ? end : i + 1;
	return true;
}

/* Parse reply i of h into *r; every section must fill the message exactly. */
static bool reply_parse(const struct dg_harness *h, size_t i, struct reply *r)
{
	const struct dg_harness_reply *hr = dg_harness_reply(h, i);
	size_t pos = 12;

	memset(r, 0, sizeof(*r));
	r->opt = -1;
	if (!hr || hr->len < 12)
		return false;
	r->m = hr->data;
	r->len = hr->len;
	r->id = get16(r->m);
	r->f2 = r->m[2];
	r->f3 = r->m[3];
	for (int s = 0; s < 4; s++)
		r->count[s] = get16(r->m + 4 + 2 * s);
	if (r->count[QD] > 1)
		return false;
	if (r->count[QD]) {
		if (!name_get(r->m, r->len, &pos, r->qname, sizeof(r->qname)) || r->len - pos < 4)
			return false;
		r->qtype = get16(r->m + pos);
		r->qclass = get16(r->m + pos + 2);
		pos += 4;
	}
	r->qend = pos;
	unsigned total = (unsigned)r->count[AN] + r->count[NS] + r->count[AR];
	if (total > sizeof(r->rr) / sizeof(r->rr[0]))
		return false;
	for (unsigned k = 0; k < total; k++) {
		struct rr *x = &r->rr[k];
		if (!name_get(r->m, r->len, &pos, x->owner, sizeof(x->owner)) || r->len - pos < 10)
			return false;
		x->type = get16(r->m + pos);
		x->cls = get16(r->m + pos + 2);
		x->ttl = (uint32_t)get16(r->m + pos + 4) << 16 | get16(r->m + pos + 6);
		x->rdlen = get16(r->m + pos + 8);
		pos += 10;
		if (r->len - pos < x->rdlen)
			return false;
		x->rdata = r->m + pos;
		x->rdoff = pos;
		pos += x->rdlen;
		if (x->type == T_OPT)
			r->opt = (int)k;
	}
	r->nrr = total;
	return pos == r->len;
}

/* Send q from peer, expect exactly one new reply to peer, parse it. */
static bool ask(struct dg_harness *h, const char *peer, const struct qb *q, struct reply *r)
{
	size_t before = dg_harness_replies(h);

	CU_ASSERT_EQUAL(dg_harness_send(h, peer, q->b, q->n), DG_OK);
	CU_ASSERT_EQUAL_FATAL(dg_harness_replies(h), before + 1);
	CU_ASSERT_STRING_EQUAL(dg_harness_reply(h, before)->to_text, peer);
	bool ok = reply_parse(h, before, r);
	CU_ASSERT_TRUE(ok);
	return ok;
}

/* The rdata of record k as an A or AAAA address text. */
static const char *addr_of(const struct rr *x, char *buf, size_t len)
{
	if ((x->type == T_A && x->rdlen == 4) || (x->type == T_AAAA && x->rdlen == 16))
		return inet_ntop(x->type == T_A ? AF_INET : AF_INET6, x->rdata, buf, (socklen_t)len);
	return "(not an address)";
}

/* The name in record x's rdata at offset skip (MX: 2). */
static const char *rdname_of(const struct reply *r, const struct rr *x, size_t skip, char *buf,
                             size_t len)
{
	size_t pos = x->rdoff + skip;

	if (!name_get(r->m, r->len, &pos, buf, len) || pos != x->rdoff + x->rdlen)
		return "(bad name)";
	return buf;
}

/* The answer's header: a reply to query id, opcode QUERY, RD copied. */
static void assert_header(const struct reply *r, unsigned id, int rcode, bool aa, bool tc)
{
	CU_ASSERT_EQUAL(r->id, id);
	CU_ASSERT(r->f2 & QR);
	CU_ASSERT_EQUAL((r->f2 >> 3) & 0xF, 0);
	CU_ASSERT_EQUAL((r->f2 & AA) != 0, aa);
	CU_ASSERT_EQUAL((r->f2 & TC) != 0, tc);
	CU_ASSERT(r->f2 & RD);
	CU_ASSERT_EQUAL(r->f3 & 0x80, 0); /* RA: not a resolver */
	CU_ASSERT_EQUAL(r->f3 & 0xF, rcode & 0xF);
	CU_ASSERT_EQUAL(r->count[QD], 1);
}

static void assert_counts(const struct reply *r, unsigned an, unsigned ns, unsigned ar)
{
	if (r->count[AN] != an || r->count[NS] != ns || r->count[AR] != ar)
		fprintf(stderr, "sections %u/%u/%u, want %u/%u/%u\n", r->count[AN], r->count[NS],
		        r->count[AR], an, ns, ar);
	CU_ASSERT_EQUAL(r->count[AN], an);
	CU_ASSERT_EQUAL(r->count[NS], ns);
	CU_ASSERT_EQUAL(r->count[AR], ar);
}

/* The question comes back as asked, byte for byte (case too). */
static void assert_question(const struct reply *r, const struct qb *q, size_t qend)
{
	CU_ASSERT(r->qend == qend && r->len >= qend && !memcmp(r->m + 12, q->b + 12, qend - 12));
}

/* Record k: owner, type, TTL. */
static void assert_rr(const struct reply *r, unsigned k, const char *owner, unsigned type,
                      uint32_t ttl)
{
	CU_ASSERT_FATAL(k < r->nrr);
	const struct rr *x = &r->rr[k];
	if (strcmp(x->owner, owner) || x->type != type || x->ttl != ttl || x->cls != 1)
		fprintf(stderr, "record %u: %s type %u class %u ttl %u, want %s type %u ttl %u\n", k,
		        x->owner, x->type, x->cls, x->ttl, owner, type, ttl);
	CU_ASSERT_STRING_EQUAL(x->owner, owner);
	CU_ASSERT_EQUAL(x->type, type);
	CU_ASSERT_EQUAL(x->cls, 1);
	CU_ASSERT_EQUAL(x->ttl, ttl);
}

/* The end of the question of a query built by query() without EDNS. */
static size_t qend_of(const struct qb *q, unsigned edns)
{
	return q->n - (edns ? 11 : 0);
}

/* ---- the tests ---------------------------------------------------------- */

/* Data: A (two records), AAAA, MX with its exchange's address, a CNAME
 * followed into the zone; the question comes back as asked (0x20 case). */
static void test_data(void)
{
	struct dg_harness *h = dns_on("{\"amplification\": {\"factor\": 0}}", 0);
	struct qb q;
	struct reply r;
	char a[64], n[300];

	query(&q, 0x1234, "WwW.ExAmPle.CoM", T_A, 0);
	if (ask(h, PEER, &q, &r)) {
		assert_header(&r, 0x1234, NOERROR, true, false);
		assert_question(&r, &q, q.n);
		CU_ASSERT_EQUAL(r.qtype, T_A);
		assert_counts(&r, 2, 1, 1);
		assert_rr(&r, 0, "www.example.com.", T_A, 3600);
		assert_rr(&r, 1, "www.example.com.", T_A, 3600);
		CU_ASSERT_STRING_EQUAL(addr_of(&r.rr[0], a, sizeof(a)), "192.0.2.1");
		CU_ASSERT_STRING_EQUAL(addr_of(&r.rr[1], a, sizeof(a)), "192.0.2.2");
		assert_rr(&r, 2, "example.com.", T_NS, 3600);
		CU_ASSERT_STRING_EQUAL(rdname_of(&r, &r.rr[2], 0, n, sizeof(n)), "ns1.example.com.");
		assert_rr(&r, 3, "ns1.example.com.", T_A, 3600);
		CU_ASSERT_STRING_EQUAL(addr_of(&r.rr[3], a, sizeof(a)), "192.0.2.53");
		/* Compressed: "example" is written once, in the question. */
		for (size_t i = q.n; i + 7 <= r.len; i++)
			CU_ASSERT(memcmp(r.m + i, "example", 7) != 0);
	}
	query(&q, 2, "www.example.com", T_AAAA, 0);
	if (ask(h, PEER, &q, &r)) {
		assert_header(&r, 2, NOERROR, true, false);
		assert_counts(&r, 1, 1, 1);
		assert_rr(&r, 0, "www.example.com.", T_AAAA, 3600);
		CU_ASSERT_STRING_EQUAL(addr_of(&r.rr[0], a, sizeof(a)), "2001:db8::1");
	}
	query(&q, 3, "example.com", T_MX, 0);
	if (ask(h, PEER, &q, &r)) {
		assert_header(&r, 3, NOERROR, true, false);
		assert_counts(&r, 1, 1, 2); /* mail's and ns1's addresses */
		assert_rr(&r, 0, "example.com.", T_MX, 3600);
		CU_ASSERT(r.rr[0].rdlen >= 2 && get16(r.rr[0].rdata) == 10);
		CU_ASSERT_STRING_EQUAL(rdname_of(&r, &r.rr[0], 2, n, sizeof(n)), "mail.example.com.");
		assert_rr(&r, 2, "mail.example.com.", T_A, 3600);
		CU_ASSERT_STRING_EQUAL(addr_of(&r.rr[2], a, sizeof(a)), "192.0.2.25");
	}
	query(&q, 4, "alias.example.com", T_A, 0);
	if (ask(h, PEER, &q, &r)) {
		assert_header(&r, 4, NOERROR, true, false);
		CU_ASSERT_EQUAL(r.count[AN], 3);
		assert_rr(&r, 0, "alias.example.com.", T_CNAME, 3600);
		CU_ASSERT_STRING_EQUAL(rdname_of(&r, &r.rr[0], 0, n, sizeof(n)), "www.example.com.");
		assert_rr(&r, 1, "www.example.com.", T_A, 3600);
		assert_rr(&r, 2, "www.example.com.", T_A, 3600);
	}
	query(&q, 5, "txt.example.com", T_TXT, 0);
	if (ask(h, PEER, &q, &r)) {
		assert_counts(&r, 1, 1, 1);
		assert_rr(&r, 0, "txt.example.com.", T_TXT, 3600);
		CU_ASSERT(r.rr[0].rdlen == 6 && !memcmp(r.rr[0].rdata, "\5hello", 6));
	}
	DG_TEST_ASSERT_COUNTER(h, "noerror", 5);
	DG_TEST_ASSERT_COUNTER(h, "handled", 5);
	DG_TEST_ASSERT_COUNTER(h, "tx", 5);
	dg_harness_free(h);
}

/* Negative answers and refusals: NXDOMAIN and NODATA with the SOA at the
 * negative TTL (min(3600, minimum 300)), a referral (no AA, glue),
 * REFUSED outside the zone, for class CH and for AXFR (with the EDE
 * "Not Authoritative" in the OPT when the query has one). */
static void test_negative(void)
{
	struct dg_harness *h = dns_on("{\"amplification\": {\"factor\": 0}}", 0);
	struct qb q;
	struct reply r;
	char n[300], a[64];

	query(&q, 0xbeef, "nx.example.com", T_A, 0);
	if (ask(h, PEER, &q, &r)) {
		assert_header(&r, 0xbeef, NXDOMAIN, true, false);
		assert_question(&r, &q, q.n);
		assert_counts(&r, 0, 1, 0);
		assert_rr(&r, 0, "example.com.", T_SOA, 300);
		size_t pos = r.rr[0].rdoff;
		CU_ASSERT(name_get(r.m, r.len, &pos, n, sizeof(n)) && !strcmp(n, "ns1.example.com."));
		CU_ASSERT(name_get(r.m, r.len, &pos, n, sizeof(n)) && !strcmp(n, "hostmaster.example.com."));
		CU_ASSERT(pos + 20 == r.rr[0].rdoff + r.rr[0].rdlen);
		CU_ASSERT(pos + 20 <= r.len && get16(r.m + pos) == 2026112301u >> 16 &&
		          get16(r.m + pos + 2) == (2026112301u & 0xffff));
	}
	query(&q, 7, "www.example.com", T_MX, 0); /* NODATA */
	if (ask(h, PEER, &q, &r)) {
		assert_header(&r, 7, NOERROR, true, false);
		assert_counts(&r, 0, 1, 0);
		assert_rr(&r, 0, "example.com.", T_SOA, 300);
	}
	query(&q, 8, "host.sub.example.com", T_A, 0); /* referral */
	if (ask(h, PEER, &q, &r)) {
		assert_header(&r, 8, NOERROR, false, false);
		assert_counts(&r, 0, 1, 1);
		assert_rr(&r, 0, "sub.example.com.", T_NS, 3600);
		CU_ASSERT_STRING_EQUAL(rdname_of(&r, &r.rr[0], 0, n, sizeof(n)), "ns.sub.example.com.");
		assert_rr(&r, 1, "ns.sub.example.com.", T_A, 3600);
		CU_ASSERT_STRING_EQUAL(addr_of(&r.rr[1], a, sizeof(a)), "192.0.2.99");
	}
	query(&q, 9, "www.example.net", T_A, 0);
	if (ask(h, PEER, &q, &r)) {
		assert_header(&r, 9, REFUSED, false, false);
		assert_counts(&r, 0, 0, 0);
		CU_ASSERT_EQUAL(r.len, q.n);
	}
	query(&q, 10, "www.example.net", T_A, 1232);
	if (ask(h, PEER, &q, &r)) {
		assert_header(&r, 10, REFUSED, false, false);
		assert_counts(&r, 0, 0, 1);
		CU_ASSERT_EQUAL_FATAL(r.opt, 0);
		const struct rr *o = &r.rr[0];
		/* One option: EDE (15), 2 bytes, info code 20. */
		CU_ASSERT(o->rdlen == 6 && get16(o->rdata) == 15 && get16(o->rdata + 2) == 2 &&
		          get16(o->rdata + 4) == 20);
	}
	query(&q, 11, "www.example.com", T_A, 0);
	q.b[q.n - 1] = 3; /* class CH */
	if (ask(h, PEER, &q, &r))
		assert_header(&r, 11, REFUSED, false, false);
	query(&q, 12, "example.com", T_AXFR, 0);
	if (ask(h, PEER, &q, &r)) {
		assert_header(&r, 12, REFUSED, false, false);
		assert_counts(&r, 0, 0, 0);
	}
	DG_TEST_ASSERT_COUNTER(h, "nxdomain", 1);
	DG_TEST_ASSERT_COUNTER(h, "noerror", 2);
	DG_TEST_ASSERT_COUNTER(h, "refused", 4);
	DG_TEST_ASSERT_COUNTER(h, "formerr", 0);
	dg_harness_free(h);
}

/* EDNS: the OPT record comes last, with max_payload as our size and the DO
 * bit copied; version 1 gets BADVERS (16: 1 in the OPT's extended rcode
 * byte, 0 in the header). */
static void test_edns(void)
{
	struct dg_harness *h = dns_on("{\"amplification\": {\"factor\": 0}}", 1400);
	struct qb q;
	struct reply r;

	query(&q, 21, "www.example.com", T_A, 1232);
	if (ask(h, PEER, &q, &r)) {
		assert_header(&r, 21, NOERROR, true, false);
		assert_question(&r, &q, qend_of(&q, 1232));
		assert_counts(&r, 2, 1, 2);
		CU_ASSERT_EQUAL_FATAL(r.opt, (int)r.nrr - 1);
		const struct rr *o = &r.rr[r.opt];
		CU_ASSERT_STRING_EQUAL(o->owner, ".");
		CU_ASSERT_EQUAL(o->cls, 1400); /* the payload size field */
		CU_ASSERT_EQUAL(o->ttl, 0);    /* extended rcode, version, DO: 0 */
		CU_ASSERT_EQUAL(o->rdlen, 0);
	}
	qb_header(&q, 22, RD << 8, 1, 0, 0, 1);
	qb_name(&q, "www.example.com");
	qb_u16(&q, T_A);
	qb_u16(&q, 1);
	qb_opt(&q, 4096, 0, true);
	if (ask(h, PEER, &q, &r)) {
		CU_ASSERT_FATAL(r.opt >= 0);
		CU_ASSERT_EQUAL(r.rr[r.opt].ttl, 0x8000); /* DO copied */
		CU_ASSERT_EQUAL(r.rr[r.opt].cls, 1400);
	}
	qb_header(&q, 23, RD << 8, 1, 0, 0, 1);
	qb_name(&q, "www.example.com");
	qb_u16(&q, T_A);
	qb_u16(&q, 1);
	qb_opt(&q, 1232, 1, false);
	if (ask(h, PEER, &q, &r)) {
		assert_header(&r, 23, BADVERS, false, false);
		assert_counts(&r, 0, 0, 1);
		CU_ASSERT_FATAL(r.opt == 0);
		CU_ASSERT_EQUAL(r.rr[0].ttl >> 24, BADVERS >> 4);
		CU_ASSERT_EQUAL(r.f3 & 0xF, 0);
	}
	DG_TEST_ASSERT_COUNTER(h, "noerror", 2);
	DG_TEST_ASSERT_COUNTER(h, "badvers", 1);
	dg_harness_free(h);
}

/* One query from peer, hostile or malformed (bytes in q): FORMERR or
 * NOTIMP as a 12-byte header with the id and opcode echoed and no
 * sections, or nothing (rcode -1). */
static void expect_bare(struct dg_harness *h, const char *what, const struct qb *q, int rcode)
{
	size_t before = dg_harness_replies(h);
	struct reply r;

	CU_ASSERT_EQUAL(dg_harness_send(h, PEER, q->b, q->n), DG_OK);
	if (rcode < 0) {
		if (dg_harness_replies(h) != before)
			fprintf(stderr, "%s: answered\n", what);
		CU_ASSERT_EQUAL(dg_harness_replies(h), before);
		return;
	}
	CU_ASSERT_EQUAL_FATAL(dg_harness_replies(h), before + 1);
	CU_ASSERT_TRUE(reply_parse(h, before, &r));
	if (r.len != 12 || (r.f3 & 0xF) != rcode)
		fprintf(stderr, "%s: %zu bytes, rcode %d (want 12 bytes, rcode %d)\n", what, r.len,
		        r.f3 & 0xF, rcode);
	CU_ASSERT_EQUAL(r.len, 12);
	CU_ASSERT_EQUAL(r.id, get16(q->b));
	CU_ASSERT(r.f2 & QR);
	CU_ASSERT_EQUAL(r.f2 & 0x78, q->b[2] & 0x78); /* the opcode asked */
	CU_ASSERT_EQUAL(r.f3 & 0xF, rcode);
	CU_ASSERT(!r.count[QD] && !r.count[AN] && !r.count[NS] && !r.count[AR]);
}

/* A query for a name of exactly len bytes in wire form (root label
 * included) under example.com: labels of 63 bytes, then one shorter. */
static void long_query(struct qb *q, unsigned id, size_t len)
{
	size_t left = len - 13; /* \7example\3com\0 */

	qb_header(q, id, RD << 8, 1, 0, 0, 0);
	while (left) {
		size_t l = left - 1 > 63 ? 63 : left - 1;
		qb_u8(q, (unsigned)l);
		for (size_t i = 0; i < l; i++)
			qb_u8(q, 'a');
		left -= l + 1;
	}
	qb_name(q, "example.com");
	qb_u16(q, T_A);
	qb_u16(q, 1);
}

/* Hostile and malformed queries: FORMERR (compression pointer loops,
 * labels past the end, a 256-byte name, lying counts, an OPT that runs
 * past its end...), NOTIMP for other opcodes, nothing for responses and
 * runts; each counted by name, and the plugin answers normally after. */
static void test_hostile(void)
{
	struct dg_harness *h = dns_on("{\"amplification\": {\"factor\": 0}}", 0);
	struct qb q;
	unsigned formerr = 0, id = 0x100;

#define BAD(what, build, rcode)                                               \
	do {                                                                    \
		build;                                                          \
		expect_bare(h, what, &q, rcode);                                \
		formerr += (rcode) == FORMERR;                                  \
		id++;                                                           \
	} while (0)
	/* A name that is a pointer to itself (offset 12). */
	BAD("pointer loop", (qb_header(&q, id, 0x100, 1, 0, 0, 0), qb_u16(&q, 0xC00C),
	                     qb_u16(&q, T_A), qb_u16(&q, 1)), FORMERR);
	/* Two pointers to each other. */
	BAD("two-pointer loop", (qb_header(&q, id, 0x100, 1, 0, 0, 0), qb_u8(&q, 1), qb_u8(&q, 'a'),
	                         qb_u16(&q, 0xC00C), qb_u16(&q, T_A), qb_u16(&q, 1)), FORMERR);
	BAD("forward pointer", (qb_header(&q, id, 0x100, 1, 0, 0, 0), qb_u16(&q, 0xC010),
	                        qb_u16(&q, T_A), qb_u16(&q, 1), qb_u8(&q, 0)), FORMERR);
	BAD("label past the end", (qb_header(&q, id, 0x100, 1, 0, 0, 0), qb_u8(&q, 63),
	                           qb_u8(&q, 'w'), qb_u8(&q, 'w')), FORMERR);
	BAD("no root label", (qb_header(&q, id, 0x100, 1, 0, 0, 0), qb_u8(&q, 3), qb_u8(&q, 'w'),
	                      qb_u8(&q, 'w'), qb_u8(&q, 'w')), FORMERR);
	BAD("extended label type", (qb_header(&q, id, 0x100, 1, 0, 0, 0), qb_u8(&q, 0x41),
	                            qb_u8(&q, 0), qb_u16(&q, T_A), qb_u16(&q, 1)), FORMERR);
	BAD("256-byte name", (long_query(&q, id, 256)), FORMERR);
	BAD("qdcount 0", (qb_header(&q, id, 0x100, 0, 0, 0, 0), qb_name(&q, "www.example.com"),
	                  qb_u16(&q, T_A), qb_u16(&q, 1)), FORMERR);
	BAD("qdcount 2", (qb_header(&q, id, 0x100, 2, 0, 0, 0), qb_name(&q, "www.example.com"),
	                  qb_u16(&q, T_A), qb_u16(&q, 1), qb_name(&q, "www.example.com"),
	                  qb_u16(&q, T_A), qb_u16(&q, 1)), FORMERR);
	BAD("ancount 1", (qb_header(&q, id, 0x100, 1, 1, 0, 0), qb_name(&q, "www.example.com"),
	                  qb_u16(&q, T_A), qb_u16(&q, 1)), FORMERR);
	BAD("arcount 1, no OPT", (qb_header(&q, id, 0x100, 1, 0, 0, 1), qb_name(&q, "www.example.com"),
	                          qb_u16(&q, T_A), qb_u16(&q, 1)), FORMERR);
	BAD("trailing bytes", (query(&q, id, "www.example.com", T_A, 0), qb_u16(&q, 0xdead)), FORMERR);
	BAD("question cut short", (query(&q, id, "www.example.com", T_A, 0), q.n -= 2), FORMERR);
	BAD("OPT rdata past the end", (query(&q, id, "www.example.com", T_A, 1232),
	                               q.b[q.n - 1] = 0x40), FORMERR);
	BAD("OPT option past its rdata", (query(&q, id, "www.example.com", T_A, 1232),
	                                  q.b[q.n - 1] = 4, qb_u16(&q, 10), qb_u16(&q, 8)), FORMERR);
	BAD("opcode STATUS", (query(&q, id, "www.example.com", T_A, 0), q.b[2] |= 2 << 3), NOTIMP);
	BAD("opcode NOTIFY", (query(&q, id, "example.com", T_SOA, 0), q.b[2] |= 4 << 3), NOTIMP);
	BAD("a response", (query(&q, id, "www.example.com", T_A, 0), q.b[2] |= QR), -1);
	BAD("11 bytes", (query(&q, id, "www.example.com", T_A, 0), q.n = 11), -1);
#undef BAD
	DG_TEST_ASSERT_COUNTER(h, "formerr", formerr);
	DG_TEST_ASSERT_COUNTER(h, "notimp", 2);
	DG_TEST_ASSERT_COUNTER(h, "dropped", 2);
	DG_TEST_ASSERT_COUNTER(h, "noerror", 0);
	/* Still serving; a name of 255 bytes, the most there can be, is one. */
	struct reply r;
	long_query(&q, 0x7776, 255);
	if (ask(h, PEER, &q, &r)) {
		assert_header(&r, 0x7776, NXDOMAIN, true, false);
		assert_question(&r, &q, q.n);
		CU_ASSERT_EQUAL(strlen(r.qname), 254); /* dotted: no length byte, a final dot */
	}
	query(&q, 0x7777, "www.example.com", T_A, 0);
	if (ask(h, PEER, &q, &r)) {
		assert_header(&r, 0x7777, NOERROR, true, false);
		assert_counts(&r, 2, 1, 1);
	}
	dg_harness_free(h);
}

/* The reply fits 512 bytes without EDNS, the requestor's EDNS size (512
 * at least) with it, bounded by max_payload; what does not fit is the
 * question alone with TC=1 (and the OPT). big.example.com's TXT set is 3
 * strings of 250 bytes: ~790 bytes of answer. */
static void test_sizes(void)
{
	static const struct {
		unsigned max_payload, edns;
		bool tc;
	} v[] = {
		{ 1232, 0, true },     /* 512 without EDNS */
		{ 1232, 400, true },   /* under 512 counts as 512 */
		{ 1232, 1232, false },
		{ 700, 4096, true },   /* max_payload wins */
		{ 4096, 65535, false },
	};
	struct qb q;
	struct reply r;
	unsigned truncated = 0;

	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		struct dg_harness *h = dns_on("{\"amplification\": {\"factor\": 0}}", v[i].max_payload);
		query(&q, 0x5000 + (unsigned)i, "big.example.com", T_TXT, v[i].edns);
		truncated = 0;
		if (ask(h, PEER, &q, &r)) {
			size_t limit = v[i].edns > 512 ? v[i].edns : 512;
			if (limit > v[i].max_payload)
				limit = v[i].max_payload;
			CU_ASSERT(r.len <= limit);
			assert_header(&r, 0x5000 + (unsigned)i, NOERROR, true, v[i].tc);
			assert_question(&r, &q, qend_of(&q, v[i].edns));
			if (v[i].tc) {
				assert_counts(&r, 0, 0, v[i].edns ? 1 : 0);
				CU_ASSERT_EQUAL(r.len, q.n); /* never larger than the query */
				truncated = 1;
			} else {
				assert_counts(&r, 3, 1, v[i].edns ? 2 : 1);
				for (unsigned k = 0; k < 3; k++) {
					assert_rr(&r, k, "big.example.com.", T_TXT, 3600);
					CU_ASSERT(r.rr[k].rdlen == TXT_LEN + 1 && r.rr[k].rdata[0] == TXT_LEN &&
					          r.rr[k].rdata[1] == 'a' + k);
				}
				CU_ASSERT(r.len > 512);
			}
			if (v[i].edns) {
				CU_ASSERT_FATAL(r.opt == (int)r.nrr - 1);
				CU_ASSERT_EQUAL(r.rr[r.opt].cls, v[i].max_payload);
			}
		}
		DG_TEST_ASSERT_COUNTER(h, "truncated", truncated);
		DG_TEST_ASSERT_COUNTER(h, "noerror", 1);
		dg_harness_free(h);
	}
}

/* A reply the host refuses goes out truncated instead: over the
 * listener's max_datagram (host->reply: DG_E2BIG, tx_drop_too_big), and
 * over an unvalidated peer's amplification credit (DG_EAGAIN,
 * tx_drop_amplification; default factor 3); the truncated form is never
 * larger than the query, so the guard lets it through. */
static void test_host_refuses(void)
{
	struct qb q;
	struct reply r;

	struct dg_harness *h = dns_on("{\"max_datagram\": 600, \"amplification\": {\"factor\": 0}}", 1232);
	query(&q, 0x6001, "big.example.com", T_TXT, 1232);
	if (ask(h, PEER, &q, &r)) {
		assert_header(&r, 0x6001, NOERROR, true, true);
		assert_counts(&r, 0, 0, 1);
		CU_ASSERT_EQUAL(r.len, q.n);
		CU_ASSERT_EQUAL(r.opt, 0);
	}
	DG_TEST_ASSERT_COUNTER(h, "tx_drop_too_big", 1);
	DG_TEST_ASSERT_COUNTER(h, "truncated", 1);
	DG_TEST_ASSERT_COUNTER(h, "tx", 1);
	/* A small answer is not touched. */
	query(&q, 0x6002, "www.example.com", T_A, 1232);
	if (ask(h, PEER, &q, &r))
		assert_header(&r, 0x6002, NOERROR, true, false);
	DG_TEST_ASSERT_COUNTER(h, "truncated", 1);
	dg_harness_free(h);

	h = dns_on("", 1232); /* the amplification guard at its default */
	query(&q, 0x6003, "big.example.com", T_TXT, 1232);
	if (ask(h, "127.0.0.7:5353", &q, &r)) {
		assert_header(&r, 0x6003, NOERROR, true, true);
		assert_counts(&r, 0, 0, 1);
		CU_ASSERT_EQUAL(r.len, q.n);
	}
	DG_TEST_ASSERT_COUNTER(h, "tx_drop_amplification", 1);
	DG_TEST_ASSERT_COUNTER(h, "truncated", 1);
	DG_TEST_ASSERT_COUNTER(h, "tx", 1);
	dg_harness_free(h);
}

/* Queries from many peers, some in one receive batch: each answer goes to
 * the peer that asked, with its id, and each peer has its session. */
static void test_many_peers(void)
{
	enum { PEERS = 300, BATCH = 50 };
	struct dg_harness *h = dns_on("{\"amplification\": {\"factor\": 0}}", 0);
	struct qb q;
	struct reply r;
	char peer[64];
	unsigned wrong = 0;

	for (unsigned i = 0; i < PEERS; i++) {
		if (i % BATCH == 0 && i >= PEERS / 2)
			dg_harness_batch_begin(h);
		snprintf(peer, sizeof(peer), "127.0.%u.%u:%u", i / 200, 1 + i % 200, 1024 + i);
		query(&q, 0x8000 + i, i % 3 ? "www.example.com" : "nx.example.com", T_A, i % 2 ? 1232 : 0);
		CU_ASSERT_EQUAL(dg_harness_send(h, peer, q.b, q.n), DG_OK);
		if (i % BATCH == BATCH - 1 && i >= PEERS / 2)
			dg_harness_batch_end(h);
	}
	CU_ASSERT_EQUAL_FATAL(dg_harness_replies(h), PEERS);
	for (unsigned i = 0; i < PEERS; i++) {
		snprintf(peer, sizeof(peer), "127.0.%u.%u:%u", i / 200, 1 + i % 200, 1024 + i);
		bool ok = reply_parse(h, i, &r) && r.id == 0x8000 + i &&
		          !strcmp(dg_harness_reply(h, i)->to_text, peer) &&
		          (r.f3 & 0xF) == (i % 3 ? NOERROR : NXDOMAIN) && r.count[AN] == (i % 3 ? 2 : 0) &&
		          (r.opt >= 0) == (i % 2 == 1);
		wrong += !ok;
	}
	CU_ASSERT_EQUAL(wrong, 0);
	CU_ASSERT_EQUAL(dg_harness_sessions(h), PEERS);
	DG_TEST_ASSERT_COUNTER(h, "noerror", PEERS - (PEERS + 2) / 3);
	DG_TEST_ASSERT_COUNTER(h, "nxdomain", (PEERS + 2) / 3);
	DG_TEST_ASSERT_COUNTER(h, "tx", PEERS);
	/* Sessions end after session_idle_ms, on the fake clock. */
	dg_harness_advance(h, 61000);
	CU_ASSERT_EQUAL(dg_harness_sessions(h), 0);
	dg_harness_free(h);
}


/* ---- DNS Cookies ---- */

/* A query with EDNS and a COOKIE option of len bytes. */
static void cookie_query(struct qb *q, unsigned id, const char *name, unsigned type,
                         const uint8_t *cookie, size_t len)
{
	query(q, id, name, type, 1232);
	q->b[q->n - 2] = (uint8_t)((len + 4) >> 8);
	q->b[q->n - 1] = (uint8_t)(len + 4);
	qb_u16(q, 10);
	qb_u16(q, (unsigned)len);
	for (size_t i = 0; i < len; i++)
		qb_u8(q, cookie[i]);
}

/* The COOKIE option of r's OPT record: its length, the bytes in c. */
static size_t cookie_of(const struct reply *r, uint8_t *c)
{
	if (r->opt < 0)
		return 0;
	const struct rr *o = &r->rr[r->opt];
	for (size_t i = 0; i + 4 <= o->rdlen; i += 4u + get16(o->rdata + i + 2)) {
		size_t len = get16(o->rdata + i + 2);
		if (get16(o->rdata + i) == 10 && i + 4 + len <= o->rdlen) {
			memcpy(c, o->rdata + i + 4, len);
			return len;
		}
	}
	return 0;
}

#define CK_CONF "{\"rate_limit\": {\"per_source\": {\"rate\": 1, \"burst\": 2}}}"
#define CK_SECRET "{\"cookie_secret\": \"e5e973e5a6b2a43f48e7dc849e37bfcf\"}"

/* The client learns a server cookie; a spoofer "from" its address (another
 * port) then empties its per-source bucket; the client's queries with the
 * cookie are answered all the same, whole (past the amplification guard:
 * a validated session), and counted as proven. Forged, other-address and
 * expired cookies prove nothing; a cookie half an hour old is renewed. */
static void test_cookie_spoofer(void)
{
	struct dg_harness *h = dns_on_cfg(CK_CONF, 0, CK_SECRET);
	struct qb q;
	struct reply r;
	uint8_t c[64] = "clientck", got[64];

	cookie_query(&q, 0x7001, "example.com", T_MX, c, 8);
	CU_ASSERT_FATAL(ask(h, PEER, &q, &r));
	CU_ASSERT_EQUAL(cookie_of(&r, c), 24); /* the client's and the server's */
	CU_ASSERT(!memcmp(c, "clientck", 8) && c[8] == 1);
	DG_TEST_ASSERT_COUNTER(h, "cookie_new", 1);
	DG_TEST_ASSERT_COUNTER(h, "rx_proven", 0);
	/* The spoofer: no cookie, a forged one. */
	uint8_t forged[24];
	memcpy(forged, c, 24);
	forged[23] ^= 0x55;
	for (unsigned i = 0; i < 20; i++) {
		if (i % 2)
			cookie_query(&q, 0x7100 + i, "example.com", T_MX, forged, 24);
		else
			query(&q, 0x7100 + i, "example.com", T_MX, 1232);
		CU_ASSERT_EQUAL(dg_harness_send(h, "127.0.0.1:666", q.b, q.n), DG_OK);
	}
	CU_ASSERT(dg_harness_counter(h, "drop_rate_limited") >= 19);
	uint64_t limited = dg_harness_counter(h, "drop_rate_limited");
	for (unsigned i = 0; i < 30; i++) {
		cookie_query(&q, 0x7200 + i, "example.com", T_MX, c, 24);
		if (!ask(h, PEER, &q, &r))
			break;
		assert_header(&r, 0x7200 + i, NOERROR, true, false);
		CU_ASSERT_EQUAL(r.count[AN], 1);
		CU_ASSERT(cookie_of(&r, got) == 24 && !memcmp(got, c, 24)); /* young: echoed */
	}
	DG_TEST_ASSERT_COUNTER(h, "rx_proven", 30);
	DG_TEST_ASSERT_COUNTER(h, "cookie_valid", 30);
	DG_TEST_ASSERT_COUNTER(h, "drop_rate_limited", limited);
	DG_TEST_ASSERT_COUNTER(h, "tx_drop_amplification", 0);
	/* The cookie "from" another address proves nothing: rate-limited there
	 * after its burst, like any spoofed query. */
	size_t before = dg_harness_replies(h);
	for (unsigned i = 0; i < 3; i++) {
		cookie_query(&q, 0x7300 + i, "example.com", T_A, c, 24);
		CU_ASSERT_EQUAL(dg_harness_send(h, "127.0.0.2:5000", q.b, q.n), DG_OK);
	}
	CU_ASSERT_EQUAL(dg_harness_replies(h), before + 2);
	DG_TEST_ASSERT_COUNTER(h, "rx_proven", 30);
	DG_TEST_ASSERT_COUNTER(h, "drop_rate_limited", limited + 1);
	/* 31 minutes on: still valid, and renewed in the answer. */
	dg_harness_advance(h, 31 * 60 * 1000);
	cookie_query(&q, 0x7400, "example.com", T_MX, c, 24);
	if (ask(h, PEER, &q, &r)) {
		CU_ASSERT(cookie_of(&r, got) == 24 && !memcmp(got, c, 8) && memcmp(got + 8, c + 8, 16));
		DG_TEST_ASSERT_COUNTER(h, "rx_proven", 31);
	}
	/* 61 minutes after it was made: expired, a new one in the answer. */
	dg_harness_advance(h, 30 * 60 * 1000);
	cookie_query(&q, 0x7401, "www.example.com", T_A, c, 24);
	if (ask(h, PEER, &q, &r)) {
		assert_header(&r, 0x7401, NOERROR, true, false);
		CU_ASSERT(cookie_of(&r, got) == 24 && memcmp(got + 8, c + 8, 16));
	}
	DG_TEST_ASSERT_COUNTER(h, "rx_proven", 31);
	/* ... which proves the source again. */
	memcpy(c, got, 24);
	cookie_query(&q, 0x7402, "www.example.com", T_A, c, 24);
	if (ask(h, PEER, &q, &r))
		assert_header(&r, 0x7402, NOERROR, true, false);
	DG_TEST_ASSERT_COUNTER(h, "rx_proven", 32);
	dg_harness_free(h);
}

/* Over the amplification credit, a query with a client cookie gets
 * BADCOOKIE and the server cookie (RFC 7873 5.2.3) instead of TC=1; asked
 * again with it, the whole answer. A malformed COOKIE option: FORMERR.
 * "cookies": false: options ignored, no cookie, TC=1 as before. */
static void test_badcookie(void)
{
	struct dg_harness *h = dns_on("", 0); /* factor 3 */
	struct qb q;
	struct reply r;
	uint8_t c[64] = "clientck", got[64];

	cookie_query(&q, 0x7501, "big.example.com", T_TXT, c, 8);
	if (ask(h, PEER, &q, &r)) {
		CU_ASSERT_EQUAL(r.f3 & 0xF, 7); /* BADCOOKIE: 23 = 1 << 4 | 7 */
		CU_ASSERT(r.opt >= 0 && (r.rr[r.opt].ttl >> 24) == 1);
		CU_ASSERT_FALSE(r.f2 & TC);
		assert_counts(&r, 0, 0, 1);
		CU_ASSERT(r.len <= 3 * q.n);
		CU_ASSERT_EQUAL(cookie_of(&r, c), 24);
	}
	DG_TEST_ASSERT_COUNTER(h, "badcookie", 1);
	DG_TEST_ASSERT_COUNTER(h, "truncated", 0);
	cookie_query(&q, 0x7502, "big.example.com", T_TXT, c, 24);
	if (ask(h, "127.0.0.1:40001", &q, &r)) { /* a resolver's next port */
		assert_header(&r, 0x7502, NOERROR, true, false);
		assert_counts(&r, 3, 1, 2);
		CU_ASSERT(r.len > 750 && cookie_of(&r, got) == 24);
	}
	DG_TEST_ASSERT_COUNTER(h, "rx_proven", 1);
	static const unsigned bad[] = { 0, 7, 9, 15, 41 };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		cookie_query(&q, 0x7510, "www.example.com", T_A, c, bad[i]);
		if (ask(h, PEER, &q, &r))
			CU_ASSERT(r.len == 12 && (r.f3 & 0xF) == FORMERR);
	}
	dg_harness_free(h);

	h = dns_on_cfg("", 0, "{\"cookies\": false}");
	cookie_query(&q, 0x7601, "big.example.com", T_TXT, c, 8);
	if (ask(h, PEER, &q, &r)) {
		assert_header(&r, 0x7601, NOERROR, true, true);
		CU_ASSERT_EQUAL(cookie_of(&r, got), 0);
	}
	cookie_query(&q, 0x7602, "www.example.com", T_A, c, 9);
	if (ask(h, PEER, &q, &r))
		assert_header(&r, 0x7602, NOERROR, true, false);
	DG_TEST_ASSERT_COUNTER(h, "rx_proven", 0);
	dg_harness_free(h);
}

static const struct dg_test tests[] = {
	{ "data: A, AAAA, MX, CNAME, TXT, compression, the question as asked", test_data },
	{ "NXDOMAIN, NODATA, referral, REFUSED (EDE), class CH, AXFR", test_negative },
	{ "EDNS: OPT with max_payload, DO copied, BADVERS", test_edns },
	{ "hostile and malformed queries: FORMERR, NOTIMP, dropped, counted", test_hostile },
	{ "sizes: 512, EDNS size, max_payload, TC=1", test_sizes },
	{ "replies the host refuses go out truncated (max_datagram, amplification)", test_host_refuses },
	{ "300 peers, in and out of batches", test_many_peers },
	{ "cookies: a spoofer at the client's address cannot silence it", test_cookie_spoofer },
	{ "cookies: BADCOOKIE over the credit, FORMERR, cookies off", test_badcookie },
	{ NULL, NULL },
};

DG_TEST_MAIN("dns plugin on the harness", tests)
