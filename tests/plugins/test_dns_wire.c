/* The dns plugin's zone loader and wire code (plugins/dns/zone.c, wire.c,
 * linked in): config errors name their key path, hostile queries get
 * FORMERR or nothing, payload sizes are bounded, answers are compressed,
 * and the owner-name table finds every name of a large zone. Real clients
 * and NSD are in tests/integration/dns_clients.py and dns_nsd.py. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <dgramd/codec.h>

#include "../../plugins/dns/dns.h"
#include "testutil.h"

#define SOA "\"soa\": {\"mname\": \"ns1\", \"rname\": \"h\", \"serial\": 1, \"refresh\": 2, " \
	    "\"retry\": 3, \"expire\": 4, \"minimum\": 5}"
#define ZONE(recs) "[{\"origin\": \"example.com.\", " SOA ", \"records\": [" recs "]}]"
#define REC(n, t, d) "{\"name\": \"" n "\", \"type\": \"" t "\", \"data\": " d "}"

static int load(struct dns_db *db, const char *text, char *err, size_t errlen)
{
	json_error_t je;
	json_t *z = json_loads(text, 0, &je);

	CU_ASSERT_PTR_NOT_NULL_FATAL(z);
	int rc = dns_db_load(db, z, err, errlen);
	json_decref(z);
	return rc;
}

static const struct {
	const char *zones, *error;
} bad_configs[] = {
	{ "[]", "config.zones: expected a non-empty array of zones" },
	{ "[1]", "config.zones[0]: expected an object" },
	{ "[{\"origin\": \"example.com\", " SOA ", \"serial\": 1}]", "config.zones[0].serial: unknown key (known: origin, ttl, soa, records)" },
	{ "[{\"origin\": \"exa mple.com\", " SOA "}]", "config.zones[0].origin: 'exa mple.com': labels may hold letters, digits, '-' and '_' only" },
	{ "[{\"origin\": \"a..b\", " SOA "}]", "config.zones[0].origin: 'a..b': empty label" },
	{ "[{\"origin\": \"example.com\"}]", "config.zones[0].soa: missing (every zone has one)" },
	{ "[{\"origin\": \"example.com\", \"soa\": {\"mname\": \"ns1\", \"rname\": \"h\"}}]", "config.zones[0].soa.serial: expected an integer from 0 to 4294967295" },
	{ "[{\"origin\": \"example.com\", \"ttl\": -1, " SOA "}]", "config.zones[0].ttl: expected an integer from 0 to 2147483647" },
	{ ZONE(REC("www", "A", "\"1.2.3\"")), "config.zones[0].records[0].data: expected an IPv4 address (\"192.0.2.1\")" },
	{ ZONE(REC("www", "AAAA", "\"1.2.3.4\"")), "config.zones[0].records[0].data: expected an IPv6 address" },
	{ ZONE(REC("www", "A", "\"1.2.3.4\"") "," REC("www", "SRV", "\"x\"")), "config.zones[0].records[1].type: expected one of A, AAAA, CNAME, MX, TXT, NS" },
	{ ZONE(REC("@", "SOA", "\"x\"")), "config.zones[0].records[0].type: expected one of" },
	{ ZONE(REC("www.example.org.", "A", "\"1.2.3.4\"")), "config.zones[0].records[0].name: 'www.example.org.' is not inside the zone" },
	{ ZONE(REC("*.www", "A", "\"1.2.3.4\"")), "config.zones[0].records[0].name: '*.www': wildcards are not supported" },
	{ ZONE(REC("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "A", "\"1.2.3.4\"")), "records[0].name: 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa': label longer than 63 bytes" },
	{ ZONE(REC("www", "A", "\"1.2.3.4\"") "," REC("www", "CNAME", "\"x\"")), "config.zones[0]: 'www.example.com.' has a CNAME and other data" },
	{ ZONE(REC("@", "CNAME", "\"x\"")), "config.zones[0]: 'example.com.' has a CNAME and other data" },
	{ ZONE(REC("w", "CNAME", "\"x\"") "," REC("w", "CNAME", "\"y\"")), "config.zones[0].records[1]: 'w.example.com.' has more than one CNAME record" },
	{ ZONE(REC("w", "A", "\"1.2.3.4\"") "," REC("W", "A", "\"1.2.3.4\"")), "config.zones[0].records[1].data: duplicate 'w.example.com.' A record" },
	{ ZONE(REC("w", "A", "\"1.2.3.4\"") ", {\"name\": \"w\", \"type\": \"A\", \"data\": \"1.2.3.5\", \"ttl\": 60}"), "config.zones[0].records[1].ttl: 60 differs from the 3600 of the other 'w.example.com.' A records" },
	{ ZONE(REC("@", "MX", "\"10 mail\"")), "config.zones[0].records[0].data: expected {\"preference\": 0..65535, \"exchange\": NAME}" },
	{ ZONE(REC("@", "MX", "{\"preference\": 70000, \"exchange\": \"m\"}")), "records[0].data: expected {\"preference\"" },
	{ ZONE(REC("t", "TXT", "[]")), "config.zones[0].records[0].data: expected a string or a non-empty array of strings" },
	{ ZONE(REC("t", "TXT", "[1]")), "records[0].data: expected a string or a non-empty array of strings" },
	{ ZONE("{\"name\": \"w\", \"type\": \"A\"}"), "config.zones[0].records[0].data: missing" },
	{ ZONE("{\"name\": \"w\", \"type\": \"A\", \"data\": \"1.2.3.4\", \"class\": \"IN\"}"), "config.zones[0].records[0].class: unknown key (known: name, type, ttl, data)" },
	{ "[{\"origin\": \"example.com\", " SOA "}, {\"origin\": \"sub.example.com\", " SOA "}]", "config.zones[1].origin: 'sub.example.com' overlaps zones[0] 'example.com.' (zones may not nest)" },
	{ "[{\"origin\": \"sub.example.com\", " SOA "}, {\"origin\": \"EXAMPLE.com.\", " SOA "}]", "config.zones[1].origin: 'EXAMPLE.com.' overlaps zones[0]" },
};

static void test_config_errors(void)
{
	char err[512];
	struct dns_db db;

	for (size_t i = 0; i < sizeof(bad_configs) / sizeof(bad_configs[0]); i++) {
		err[0] = 0;
		int rc = load(&db, bad_configs[i].zones, err, sizeof(err));
		if (rc == DG_OK || !strstr(err, bad_configs[i].error))
			fprintf(stderr, "case %zu: rc %d, '%s', want '%s'\n", i, rc, err, bad_configs[i].error);
		CU_ASSERT_EQUAL(rc, DG_EINVAL);
		CU_ASSERT_PTR_NOT_NULL(strstr(err, bad_configs[i].error));
		CU_ASSERT_PTR_NULL(db.slot); /* freed on failure */
		dns_db_free(&db);
	}
	/* A long TXT string, built here (over 255 bytes). */
	char text[1024] = ZONE("{\"name\": \"t\", \"type\": \"TXT\", \"data\": \"");
	size_t n = strlen(text) - 3; /* before "]}]" */
	memset(text + n, 'x', 256);
	strcpy(text + n + 256, "\"}]}]");
	CU_ASSERT_EQUAL(load(&db, text, err, sizeof(err)), DG_EINVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "records[0].data: a TXT string is longer than 255 bytes"));
}

static const char good[] = ZONE(
	REC("@", "NS", "\"ns1\"") "," REC("@", "MX", "{\"preference\": 10, \"exchange\": \"mail\"}") ","
	REC("ns1", "A", "\"192.0.2.53\"") "," REC("mail", "A", "\"192.0.2.25\"") ","
	REC("www", "A", "\"192.0.2.1\"") "," REC("www", "A", "\"192.0.2.2\"") ","
	REC("alias", "CNAME", "\"www\"") "," REC("loop1", "CNAME", "\"loop2\"") ","
	REC("loop2", "CNAME", "\"loop1\"") "," REC("h.deep", "TXT", "[\"a\", \"b\"]") ","
	REC("big", "TXT", "\"" "0123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789" "\"") ","
	REC("big", "TXT", "\"" "1123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789" "\"") ","
	REC("big", "TXT", "\"" "2123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789" "\""));

static struct dns_db db;
static uint8_t out[65536];

static size_t mkquery(uint8_t *q, const char *name, uint16_t type, int edns, uint16_t payload)
{
	size_t n = 12;

	memset(q, 0, 12);
	q[0] = 0xab, q[1] = 0xcd, q[2] = 0x01, q[5] = 1, q[11] = edns ? 1 : 0;
	for (const char *p = name; *p;) {
		size_t l = strcspn(p, ".");
		q[n++] = (uint8_t)l;
		memcpy(q + n, p, l);
		n += l;
		p += l + (p[l] == '.');
	}
	q[n++] = 0;
	q[n++] = (uint8_t)(type >> 8), q[n++] = (uint8_t)type, q[n++] = 0, q[n++] = 1;
	if (edns) {
		const uint8_t opt[11] = { 0, 0, 41, (uint8_t)(payload >> 8), (uint8_t)payload };
		memcpy(q + n, opt, 11);
		n += 11;
	}
	return n;
}

static int rcode(const uint8_t *r)
{
	return r[3] & 0xF;
}

static unsigned cnt(const uint8_t *r, int sec)
{
	return (unsigned)(r[4 + 2 * sec] << 8 | r[5 + 2 * sec]); /* 0 QD, 1 AN, 2 NS, 3 AR */
}

static void setup_db(void)
{
	char err[512];

	if (!db.slot)
		CU_ASSERT_EQUAL_FATAL(load(&db, good, err, sizeof(err)), DG_OK);
}

/* Hostile or malformed queries: FORMERR (a header alone), NOTIMP, or no
 * reply at all; never followed. */
static void test_hostile(void)
{
	static const struct {
		const char *what;
		const char *bytes;
		size_t len;
		int rcode; /* -1: no reply */
	} v[] = {
#define H(qd, an, ns, ar) "\xab\xcd\x01\x00\x00" qd "\x00" an "\x00" ns "\x00" ar
		{ "pointer loop", H("\1", "\0", "\0", "\0") "\xc0\x0c\x00\x01\x00\x01", 18, DNS_FORMERR },
		{ "pointer after a label", H("\1", "\0", "\0", "\0") "\x03www\xc0\x0c\x00\x01\x00\x01", 22, DNS_FORMERR },
		{ "label past the end", H("\1", "\0", "\0", "\0") "\x3fwww", 16, DNS_FORMERR },
		{ "no root label", H("\1", "\0", "\0", "\0") "\x03www", 16, DNS_FORMERR },
		{ "extended label type", H("\1", "\0", "\0", "\0") "\x41\x00\x00\x01\x00\x01", 18, DNS_FORMERR },
		{ "qdcount 0", H("\0", "\0", "\0", "\0") "\x00\x00\x01\x00\x01", 17, DNS_FORMERR },
		{ "qdcount 2", H("\2", "\0", "\0", "\0") "\x00\x00\x01\x00\x01\x00\x00\x01\x00\x01", 22, DNS_FORMERR },
		{ "ancount lies", H("\1", "\1", "\0", "\0") "\x00\x00\x01\x00\x01", 17, DNS_FORMERR },
		{ "nscount lies", H("\1", "\0", "\1", "\0") "\x00\x00\x01\x00\x01", 17, DNS_FORMERR },
		{ "arcount lies", H("\1", "\0", "\0", "\1") "\x00\x00\x01\x00\x01", 17, DNS_FORMERR },
		{ "arcount 2", H("\1", "\0", "\0", "\2") "\x00\x00\x01\x00\x01" "\0\0\x29\x02\0\0\0\0\0\0\0" "\0\0\x29\x02\0\0\0\0\0\0\0", 39, DNS_FORMERR },
		{ "trailing bytes", H("\1", "\0", "\0", "\0") "\x00\x00\x01\x00\x01junk", 21, DNS_FORMERR },
		{ "question cut short", H("\1", "\0", "\0", "\0") "\x00\x00\x01", 15, DNS_FORMERR },
		{ "OPT option past its rdata", H("\1", "\0", "\0", "\1") "\x00\x00\x01\x00\x01" "\0\0\x29\x02\0\0\0\0\0\0\x04\0\x0a\0\x08", 32, DNS_FORMERR },
		{ "OPT rdata past the end", H("\1", "\0", "\0", "\1") "\x00\x00\x01\x00\x01" "\0\0\x29\x02\0\0\0\0\0\0\x40", 28, DNS_FORMERR },
		{ "OPT owner not the root", H("\1", "\0", "\0", "\1") "\x00\x00\x01\x00\x01" "\1a\0\0\x29\x02\0\0\0\0\0\0\0", 30, DNS_FORMERR },
		{ "additional record not OPT", H("\1", "\0", "\0", "\1") "\x00\x00\x01\x00\x01" "\0\0\x01\x00\x01\0\0\0\0\0\0", 28, DNS_FORMERR },
		{ "opcode NOTIFY", "\xab\xcd\x20\x00\x00\x01\0\0\0\0\0\0" "\x00\x00\x06\x00\x01", 17, DNS_NOTIMP },
		{ "a response", "\xab\xcd\x81\x00\x00\x01\0\0\0\0\0\0" "\x00\x00\x06\x00\x01", 17, -1 },
		{ "11 bytes", "\xab\xcd\x01\x00\x00\x01\0\0\0\0\0", 11, -1 },
		{ "empty", "", 0, -1 },
#undef H
	};
	struct dns_result res;

	setup_db();
	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		uint8_t *q = malloc(v[i].len + 1); /* exactly sized: ASan sees overreads */
		memcpy(q, v[i].bytes, v[i].len);
		size_t len = dns_answer(&db, q, v[i].len, out, 1232, NULL, &res);
		if (v[i].rcode < 0) {
			CU_ASSERT_EQUAL(len, 0);
			CU_ASSERT_EQUAL(res.rcode, -1);
		} else {
			if (len != 12 || rcode(out) != v[i].rcode)
				fprintf(stderr, "%s: len %zu rcode %d\n", v[i].what, len, len ? rcode(out) : -1);
			CU_ASSERT_EQUAL(len, 12);
			CU_ASSERT_EQUAL(rcode(out), v[i].rcode);
			CU_ASSERT_EQUAL(res.rcode, v[i].rcode);
			CU_ASSERT(out[0] == 0xab && out[1] == 0xcd && (out[2] & 0x80));
		}
		free(q);
	}
	/* A name of 256 bytes. */
	uint8_t q[400];
	size_t n = 12;
	memcpy(q, "\xab\xcd\x01\x00\x00\x01\0\0\0\0\0\0", 12);
	for (int l = 0; l < 4; l++) {
		q[n++] = 63;
		memset(q + n, 'a', 63);
		n += 63;
	}
	memcpy(q + n, "\x03" "abc\0\0\1\0\1", 9);
	CU_ASSERT_EQUAL(dns_answer(&db, q, n + 9, out, 1232, NULL, &res), 12);
	CU_ASSERT_EQUAL(rcode(out), DNS_FORMERR);
}

static void test_answers(void)
{
	uint8_t q[512];
	struct dns_result res;
	size_t len;

	setup_db();
	len = dns_answer(&db, q, mkquery(q, "www.example.com", DNS_T_A, 0, 0), out, 1232, NULL, &res);
	CU_ASSERT(rcode(out) == DNS_NOERROR && (out[2] & 0x04) && cnt(out, 1) == 2 && cnt(out, 2) == 1);
	/* Compressed: "example" is written once, in the question. */
	for (size_t i = 12 + 17; i + 7 <= len; i++)
		CU_ASSERT(memcmp(out + i, "example", 7) != 0);
	len = dns_answer(&db, q, mkquery(q, "nx.example.com", DNS_T_A, 1, 1232), out, 1232, NULL, &res);
	CU_ASSERT(rcode(out) == DNS_NXDOMAIN && cnt(out, 1) == 0 && cnt(out, 2) == 1 && cnt(out, 3) == 1);
	len = dns_answer(&db, q, mkquery(q, "deep.example.com", DNS_T_A, 0, 0), out, 1232, NULL, &res);
	CU_ASSERT(rcode(out) == DNS_NOERROR && cnt(out, 1) == 0 && cnt(out, 2) == 1); /* empty non-terminal */
	len = dns_answer(&db, q, mkquery(q, "www.example.net", DNS_T_A, 0, 0), out, 1232, NULL, &res);
	CU_ASSERT(rcode(out) == DNS_REFUSED && !(out[2] & 0x04) && len == 33);
	/* A CNAME loop stops after DNS_CHAIN_MAX records. */
	len = dns_answer(&db, q, mkquery(q, "loop1.example.com", DNS_T_A, 0, 0), out, 1232, NULL, &res);
	CU_ASSERT(rcode(out) == DNS_NOERROR && cnt(out, 1) == DNS_CHAIN_MAX);
	/* EDNS version 1: BADVERS (16) in the OPT record's extended rcode. */
	len = mkquery(q, "www.example.com", DNS_T_A, 1, 1232);
	q[len - 5] = 1;
	len = dns_answer(&db, q, len, out, 1232, NULL, &res);
	CU_ASSERT(res.rcode == DNS_BADVERS && rcode(out) == 0 && cnt(out, 3) == 1 && out[len - 6] == 1);
	(void)len;
}

/* The reply fits the requestor's EDNS size (at least 512), bounded by
 * max_payload; what does not fit is TC=1 with the question alone. */
static void test_sizes(void)
{
	static const struct {
		int edns;
		uint16_t payload;
		size_t max;
		bool tc;
	} v[] = {
		{ 0, 0, 1232, true },       /* 512 without EDNS: 3 x 270 bytes do not fit */
		{ 1, 100, 1232, true },     /* under 512 counts as 512 */
		{ 1, 1232, 1232, false },
		{ 1, 65535, 700, true },    /* max_payload wins */
		{ 1, 65535, 4096, false },
	};
	uint8_t q[512];
	struct dns_result res;

	setup_db();
	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		size_t ql = mkquery(q, "big.example.com", DNS_T_TXT, v[i].edns, v[i].payload);
		size_t len = dns_answer(&db, q, ql, out, v[i].max, NULL, &res);
		size_t limit = v[i].edns && v[i].payload > 512 ? v[i].payload : 512;
		CU_ASSERT(len <= (limit < v[i].max ? limit : v[i].max));
		CU_ASSERT_EQUAL(res.truncated, v[i].tc);
		CU_ASSERT_EQUAL((out[2] & 0x02) != 0, v[i].tc);
		CU_ASSERT_EQUAL(cnt(out, 1), v[i].tc ? 0u : 3u);
		/* Truncated: the OPT record alone; whole: OPT and ns1's address. */
		CU_ASSERT_EQUAL(cnt(out, 3), (v[i].edns ? 1u : 0u) + (v[i].tc ? 0u : 1u));
		/* The truncated form the plugin sends when the host refuses the whole. */
		size_t tl = dns_truncate(out, len, &res);
		CU_ASSERT(tl == ql && (out[2] & 0x02) && cnt(out, 1) == 0 && cnt(out, 2) == 0 &&
		          cnt(out, 3) == (v[i].edns ? 1u : 0u));
	}
}

/* Every name of a 20,000-record zone is found through the hash table;
 * names not in it are not. */
static void test_many_names(void)
{
	enum { N = 20000 };
	struct dns_db big;
	char err[512], name[64];
	json_t *zones = json_loads(ZONE(""), 0, NULL), *recs = json_object_get(json_array_get(zones, 0), "records");
	uint8_t wire[DNS_NAME_MAX];

	for (int i = 0; i < N; i++) {
		snprintf(name, sizeof(name), "h%d.n%d", i, i % 97);
		json_array_append_new(recs, json_pack("{sssss[s]}", "name", name, "type", "TXT", "data", "x"));
	}
	CU_ASSERT_EQUAL_FATAL(dns_db_load(&big, zones, err, sizeof(err)), DG_OK);
	json_decref(zones);
	CU_ASSERT_EQUAL(big.nodes, N + 97 + 1);
	CU_ASSERT(big.nodes * 2 <= big.mask + 1);
	for (int i = 0; i < N + 10; i++) {
		int l = snprintf(name + 1, sizeof(name) - 1, "h%d", i);
		size_t n = 0;
		wire[n++] = (uint8_t)l;
		memcpy(wire + n, name + 1, (size_t)l);
		n += (size_t)l;
		l = snprintf(name, sizeof(name), "n%d", i % 97);
		wire[n++] = (uint8_t)l;
		memcpy(wire + n, name, (size_t)l);
		n += (size_t)l;
		memcpy(wire + n, "\7example\3com", 13);
		n += 13;
		const struct dns_node *node = dns_db_find(&big, wire, n);
		CU_ASSERT_EQUAL(node != NULL, i < N);
		if (node && i < N)
			CU_ASSERT_PTR_NOT_NULL(node->set[DNS_K_TXT]);
	}
	dns_db_free(&big);
}

static void test_cleanup(void)
{
	dns_db_free(&db);
	CU_ASSERT_PTR_NULL(db.slot);
}


/* ---- DNS Cookies ---- */

static void unhex(const char *hex, uint8_t *bytes)
{
	for (size_t i = 0; hex[2 * i]; i++) {
		unsigned v;
		CU_ASSERT_FATAL(sscanf(hex + 2 * i, "%2x", &v) == 1);
		bytes[i] = (uint8_t)v;
	}
}

/* RFC 9018 appendix A: server cookies NSD, BIND, Knot and Unbound make
 * from the same inputs. */
static void test_cookie_vectors(void)
{
	static const struct {
		const char *secret, *client, *ip, *want;
		uint32_t ts;
	} v[] = {
		{ "e5e973e5a6b2a43f48e7dc849e37bfcf", "2464c4abcf10c957", "c6336464",
		  "010000005cf79f111f8130c3eee29480", 1559731985 },
		{ "e5e973e5a6b2a43f48e7dc849e37bfcf", "2464c4abcf10c957", "c6336464",
		  "010000005cf7a871d4a564a1442aca77", 1559734385 },
	};
	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		uint8_t secret[16], ip[16], cookie[DNS_COOKIE_LEN], want[DNS_COOKIE_SERVER];
		unhex(v[i].secret, secret);
		unhex(v[i].ip, ip);
		unhex(v[i].client, cookie);
		unhex(v[i].want, want);
		struct dns_cookies ck = { .secret = secret, .now = v[i].ts, .ip = ip, .iplen = strlen(v[i].ip) / 2 };
		dns_cookie_make(&ck, cookie, v[i].ts, cookie + DNS_COOKIE_CLIENT);
		CU_ASSERT(memcmp(cookie + DNS_COOKIE_CLIENT, want, DNS_COOKIE_SERVER) == 0);
		CU_ASSERT(dns_cookie_valid(&ck, cookie, DNS_COOKIE_LEN));
	}
}

static const uint8_t ck_secret[16] = "0123456789abcdef";
static const uint8_t ck_ip[4] = { 192, 0, 2, 7 };
#define CK_NOW 1700000000u

/* A cookie made at ts for client "clientck", checked at now: valid? */
static bool valid_at(uint32_t ts, uint32_t now, const uint8_t *ip, size_t iplen, int flip)
{
	struct dns_cookies ck = { .secret = ck_secret, .now = now, .ip = ck_ip, .iplen = 4 };
	uint8_t c[DNS_COOKIE_LEN];

	memcpy(c, "clientck", 8);
	dns_cookie_make(&ck, c, ts, c + 8);
	if (flip >= 0)
		c[flip] ^= 1;
	ck.ip = ip;
	ck.iplen = iplen;
	return dns_cookie_valid(&ck, c, sizeof(c));
}

/* Valid for an hour, up to 5 minutes ahead (RFC 9018 4.3), bound to the
 * client's address and cookie, every byte checked. */
static void test_cookie_valid(void)
{
	static const uint8_t other[4] = { 192, 0, 2, 8 };
	static const uint8_t v6[16] = { 0x20, 0x01, 0x0d, 0xb8, [15] = 7 };

	CU_ASSERT(valid_at(CK_NOW, CK_NOW, ck_ip, 4, -1));
	CU_ASSERT(valid_at(CK_NOW, CK_NOW + DNS_COOKIE_MAX_AGE, ck_ip, 4, -1));
	CU_ASSERT(!valid_at(CK_NOW, CK_NOW + DNS_COOKIE_MAX_AGE + 1, ck_ip, 4, -1));
	CU_ASSERT(valid_at(CK_NOW + DNS_COOKIE_MAX_AHEAD, CK_NOW, ck_ip, 4, -1));
	CU_ASSERT(!valid_at(CK_NOW + DNS_COOKIE_MAX_AHEAD + 1, CK_NOW, ck_ip, 4, -1));
	CU_ASSERT(valid_at(0xfffffff0u, 10, ck_ip, 4, -1)); /* the clock wraps (RFC 1982) */
	CU_ASSERT(!valid_at(CK_NOW, CK_NOW, other, 4, -1));
	CU_ASSERT(!valid_at(CK_NOW, CK_NOW, v6, 16, -1));
	for (int b = 0; b < DNS_COOKIE_LEN; b++)
		CU_ASSERT(!valid_at(CK_NOW, CK_NOW, ck_ip, 4, b)); /* client cookie, version, reserved, ts, hash */
	struct dns_cookies ck = { .secret = ck_secret, .now = CK_NOW, .ip = ck_ip, .iplen = 4 };
	uint8_t c[40] = "clientck";
	dns_cookie_make(&ck, c, CK_NOW, c + 8);
	CU_ASSERT(dns_cookie_valid(&ck, c, 24));
	CU_ASSERT(!dns_cookie_valid(&ck, c, 8));
	CU_ASSERT(!dns_cookie_valid(&ck, c, 16));
	CU_ASSERT(!dns_cookie_valid(&ck, c, 32));
}

/* A query with an OPT holding the given options (raw bytes). */
static size_t ckquery(uint8_t *q, const char *name, uint16_t type, const uint8_t *opts, size_t olen)
{
	size_t n = mkquery(q, name, type, 1, 1232);

	q[n - 2] = (uint8_t)(olen >> 8);
	q[n - 1] = (uint8_t)olen;
	memcpy(q + n, opts, olen);
	return n + olen;
}

static size_t cookie_opt(uint8_t *o, const uint8_t *cookie, size_t len)
{
	o[0] = 0, o[1] = DNS_OPT_COOKIE, o[2] = (uint8_t)(len >> 8), o[3] = (uint8_t)len;
	memcpy(o + 4, cookie, len);
	return 4 + len;
}

/* The COOKIE option of reply r (len), or NULL. */
static const uint8_t *reply_cookie(const uint8_t *r, size_t len)
{
	for (size_t i = len; i >= 4 + DNS_COOKIE_LEN; i--)
		if (r[i - 28] == 0 && r[i - 27] == DNS_OPT_COOKIE && r[i - 26] == 0 && r[i - 25] == DNS_COOKIE_LEN)
			return r + i - 24;
	return NULL;
}

/* Malformed COOKIE options are FORMERR (RFC 7873 5.2.2), ignored with
 * cookies off; answers carry the client cookie and a server cookie: the
 * query's own while valid and young, a new one once half an hour old, a
 * new one for an invalid one; BADCOOKIE keeps header, question and OPT. */
static void test_cookie_answers(void)
{
	struct dns_cookies ck = { .secret = ck_secret, .now = CK_NOW, .ip = ck_ip, .iplen = 4 };
	uint8_t q[512], o[128], c[48] = "clientck";
	struct dns_result res;
	size_t n, len;

	setup_db();
	static const size_t bad[] = { 0, 7, 9, 15, 41 };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		n = ckquery(q, "www.example.com", DNS_T_A, o, cookie_opt(o, c, bad[i]));
		len = dns_answer(&db, q, n, out, 1232, &ck, &res);
		CU_ASSERT(len == 12 && rcode(out) == DNS_FORMERR);
		len = dns_answer(&db, q, n, out, 1232, NULL, &res);
		CU_ASSERT(len > 12 && rcode(out) == DNS_NOERROR && res.cookie == DNS_CK_NONE);
	}
	size_t ol = cookie_opt(o, c, 8);
	ol += cookie_opt(o + ol, c, 8);
	n = ckquery(q, "www.example.com", DNS_T_A, o, ol);
	CU_ASSERT(dns_answer(&db, q, n, out, 1232, &ck, &res) == 12 && rcode(out) == DNS_FORMERR);

	/* A client cookie alone: a new server cookie made now. */
	n = ckquery(q, "www.example.com", DNS_T_A, o, cookie_opt(o, c, 8));
	len = dns_answer(&db, q, n, out, 1232, &ck, &res);
	const uint8_t *rc = reply_cookie(out, len);
	CU_ASSERT(res.cookie == DNS_CK_CLIENT && rcode(out) == DNS_NOERROR && cnt(out, 1) == 2);
	CU_ASSERT_FATAL(rc != NULL);
	CU_ASSERT(dns_cookie_valid(&ck, rc, DNS_COOKIE_LEN) && !memcmp(rc, "clientck", 8));
	memcpy(c, rc, DNS_COOKIE_LEN);
	const uint8_t *cookie;
	size_t clen;
	CU_ASSERT(dns_query_cookie(q, n, &cookie, &clen) && clen == 8);

	/* Sent back 29 minutes later: valid, and echoed as it is. */
	n = ckquery(q, "www.example.com", DNS_T_A, o, cookie_opt(o, c, DNS_COOKIE_LEN));
	CU_ASSERT(dns_query_cookie(q, n, &cookie, &clen) && clen == DNS_COOKIE_LEN);
	ck.now = CK_NOW + 29 * 60;
	len = dns_answer(&db, q, n, out, 1232, &ck, &res);
	CU_ASSERT(res.cookie == DNS_CK_VALID && (rc = reply_cookie(out, len)) && !memcmp(rc, c, DNS_COOKIE_LEN));
	/* Made by a server whose clock is a second ahead (NSD with the same
	 * secret): valid and echoed as it is, not renewed. */
	ck.now = CK_NOW - 1;
	len = dns_answer(&db, q, n, out, 1232, &ck, &res);
	CU_ASSERT(res.cookie == DNS_CK_VALID && (rc = reply_cookie(out, len)) && !memcmp(rc, c, DNS_COOKIE_LEN));
	/* 31 minutes: still valid, renewed. */
	ck.now = CK_NOW + 31 * 60;
	len = dns_answer(&db, q, n, out, 1232, &ck, &res);
	CU_ASSERT(res.cookie == DNS_CK_VALID && (rc = reply_cookie(out, len)) && memcmp(rc, c, DNS_COOKIE_LEN) &&
	          dns_cookie_valid(&ck, rc, DNS_COOKIE_LEN));
	/* 61 minutes: expired; a new one. */
	ck.now = CK_NOW + 61 * 60;
	len = dns_answer(&db, q, n, out, 1232, &ck, &res);
	CU_ASSERT(res.cookie == DNS_CK_CLIENT && rcode(out) == DNS_NOERROR &&
	          (rc = reply_cookie(out, len)) && dns_cookie_valid(&ck, rc, DNS_COOKIE_LEN));
	/* A server cookie of another length (8..32 is well-formed): not ours. */
	ck.now = CK_NOW;
	n = ckquery(q, "www.example.com", DNS_T_A, o, cookie_opt(o, c, 20));
	len = dns_answer(&db, q, n, out, 1232, &ck, &res);
	CU_ASSERT(res.cookie == DNS_CK_CLIENT && rcode(out) == DNS_NOERROR && reply_cookie(out, len));

	/* BADCOOKIE: rcode 23 (7 in the header, 1 in the OPT), no records, the
	 * cookie kept. */
	n = ckquery(q, "example.com", DNS_T_MX, o, cookie_opt(o, c, 8));
	len = dns_answer(&db, q, n, out, 1232, &ck, &res);
	CU_ASSERT(cnt(out, 1) > 0);
	len = dns_badcookie(out, len, &res);
	CU_ASSERT(len == n - 8 + DNS_COOKIE_LEN && res.rcode == DNS_BADCOOKIE);
	CU_ASSERT(rcode(out) == 7 && cnt(out, 1) == 0 && cnt(out, 2) == 0 && cnt(out, 3) == 1);
	CU_ASSERT(out[len - 4 - DNS_COOKIE_LEN - 11 + 5] == 1 && !(out[2] & 0x06));
	CU_ASSERT((rc = reply_cookie(out, len)) && dns_cookie_valid(&ck, rc, DNS_COOKIE_LEN));
	/* No cookie, no BADCOOKIE. */
	n = mkquery(q, "example.com", DNS_T_MX, 1, 1232);
	len = dns_answer(&db, q, n, out, 1232, &ck, &res);
	CU_ASSERT(dns_badcookie(out, len, &res) == len && res.rcode == DNS_NOERROR);
	CU_ASSERT(!dns_query_cookie(q, n, &cookie, &clen));
}

static const struct dg_test tests[] = {
	{ "config errors name their key path, and free what was loaded", test_config_errors },
	{ "hostile queries: FORMERR, NOTIMP or no reply", test_hostile },
	{ "answers: data, NXDOMAIN, NODATA, REFUSED, CNAME loops, BADVERS", test_answers },
	{ "EDNS payload sizes, max_payload, TC=1 and the truncated form", test_sizes },
	{ "20,000 names found through the hash table", test_many_names },
	{ "cookies: RFC 9018's test vectors", test_cookie_vectors },
	{ "cookies: an hour, 5 minutes ahead, the address, every byte", test_cookie_valid },
	{ "cookies: FORMERR, echoed, renewed, expired, BADCOOKIE", test_cookie_answers },
	{ "free", test_cleanup },
	{ NULL, NULL },
};

DG_TEST_MAIN("dns", tests)
