/* dns: internal interface of the authoritative DNS plugin (not installed).
 *
 * zone.c loads the zones of the plugin's config into a read-only database
 * (dns_db): one hash table of owner names, every record pre-encoded in wire
 * form. wire.c parses a query and writes the answer into a caller's buffer,
 * with no allocation. dns.c is the plugin glue. The fuzz harness and the
 * unit tests link zone.c and wire.c directly.
 */
#ifndef DG_PLUGIN_DNS_H
#define DG_PLUGIN_DNS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct json_t;

#define DNS_NAME_MAX 255  /* wire form, with the root label */
#define DNS_HEADER 12
#define DNS_CHAIN_MAX 8   /* CNAMEs followed in one answer */
#define DNS_UDP_MIN 512   /* RFC 1035 payload, and the EDNS floor */

enum dns_rcode {
	DNS_NOERROR = 0,
	DNS_FORMERR = 1,
	DNS_SERVFAIL = 2,
	DNS_NXDOMAIN = 3,
	DNS_NOTIMP = 4,
	DNS_REFUSED = 5,
	DNS_BADVERS = 16, /* extended: OPT TTL high byte 1, header rcode 0 */
	DNS_BADCOOKIE = 23, /* extended: OPT TTL high byte 1, header rcode 7 (RFC 7873) */
};

enum dns_type {
	DNS_T_A = 1,
	DNS_T_NS = 2,
	DNS_T_CNAME = 5,
	DNS_T_SOA = 6,
	DNS_T_MX = 15,
	DNS_T_TXT = 16,
	DNS_T_AAAA = 28,
	DNS_T_OPT = 41,
	DNS_T_DS = 43,
	DNS_T_IXFR = 251,
	DNS_T_AXFR = 252,
	DNS_T_ANY = 255,
};

/* The record types a zone may hold, as indexes into dns_node.set. */
enum dns_kind { DNS_K_A, DNS_K_AAAA, DNS_K_CNAME, DNS_K_MX, DNS_K_TXT, DNS_K_NS, DNS_K_SOA, DNS_K_COUNT };

struct dns_node;

/* One record: its rdata in wire form (names uncompressed, lowercase as
 * written in the config). target: for CNAME, MX and NS, the node of the
 * name it points to when that name exists in the same zone (else NULL). */
struct dns_rr {
	uint8_t *rdata;
	uint16_t rdlen;
	bool in_zone; /* the name it points to is under the zone's origin */
	struct dns_node *target;
};

struct dns_rrset {
	uint16_t type; /* enum dns_type */
	uint32_t ttl;
	unsigned n, cap;
	struct dns_rr *rr;
};

struct dns_zone;

/* An owner name, or an empty non-terminal (a name with no records of its
 * own but with names below it: NODATA, not NXDOMAIN). cut: the closest
 * delegation (NS below the apex) at or above this name, or NULL. */
struct dns_node {
	uint8_t name[DNS_NAME_MAX]; /* wire form, lowercase */
	uint8_t len;
	uint64_t hash;
	struct dns_zone *zone;
	struct dns_node *cut;
	struct dns_rrset *set[DNS_K_COUNT];
};

struct dns_zone {
	struct dns_node *apex;
	uint32_t neg_ttl; /* RFC 2308: min(SOA TTL, SOA minimum) */
};

/* The zones of one plugin instance. Read-only after dns_db_load(). */
struct dns_db {
	struct dns_node **slot; /* open addressing, linear probing, <= half full */
	size_t mask;
	size_t nodes;
	struct dns_zone *zones;
	size_t nzones;
};

/* Load and check the "zones" array of a config. On error write
 * "zones[i].records[j].data: what is wrong" into err and return a negative
 * dg_rc (the db is then empty; dns_db_free is still safe). */
int dns_db_load(struct dns_db *db, const struct json_t *zones, char *err, size_t errlen);
void dns_db_free(struct dns_db *db);

/* The node of a wire-form lowercase name, or NULL. */
struct dns_node *dns_db_find(const struct dns_db *db, const uint8_t *name, size_t len);
uint64_t dns_name_hash(const uint8_t *name, size_t len);
int dns_kind_of(uint16_t type); /* enum dns_kind, or -1 */

/* ---- DNS Cookies (RFC 7873), server cookies as RFC 9018 makes them ---- */

#define DNS_OPT_COOKIE 10     /* the EDNS option code */
#define DNS_COOKIE_CLIENT 8   /* a client cookie's bytes */
#define DNS_COOKIE_SERVER 16  /* ours: version 1, reserved, timestamp, hash */
#define DNS_COOKIE_LEN (DNS_COOKIE_CLIENT + DNS_COOKIE_SERVER)
#define DNS_COOKIE_MAX_AGE 3600 /* s: a server cookie older than this is not valid */
#define DNS_COOKIE_MAX_AHEAD 300 /* s: nor one from further in the future */
#define DNS_COOKIE_RENEW 1800 /* s: a valid one older than this is renewed */

/* What checks and makes server cookies for one query. NULL where a
 * function takes it: cookies are off (COOKIE options are ignored, as a
 * server without cookies does). */
struct dns_cookies {
	const uint8_t *secret; /* 16 bytes, the SipHash-2-4 key */
	uint32_t now;          /* seconds, Unix time (RFC 1982 arithmetic) */
	const uint8_t *ip;     /* the client's address: 4 or 16 bytes */
	size_t iplen;
};

/* The client address of sa (AF_INET: 4 bytes, AF_INET6: 16) into ck;
 * false for another family. */
struct sockaddr;
bool dns_cookies_peer(struct dns_cookies *ck, const struct sockaddr *sa);

/* RFC 9018's server cookie for client (8 bytes) at timestamp ts: out gets
 * version 1, three reserved zero bytes, ts big-endian and the 8 bytes of
 * SipHash-2-4(client | 1 0 0 0 | ts | client IP) under ck->secret. */
void dns_cookie_make(const struct dns_cookies *ck, const uint8_t *client, uint32_t ts, uint8_t *out);

/* Is cookie (len bytes: the COOKIE option's data, client cookie then
 * server cookie) one we made for this client address, no more than
 * DNS_COOKIE_MAX_AGE s old and no more than DNS_COOKIE_MAX_AHEAD s ahead
 * of ck->now? Compares the hash in constant time. */
bool dns_cookie_valid(const struct dns_cookies *ck, const uint8_t *cookie, size_t len);

/* The COOKIE option of the query q (qlen bytes) if it is a query we
 * would answer with that option (well-formed, one COOKIE option of a
 * valid length): *cookie points into q. For the plugin's proves_source,
 * before anything else has read the datagram. */
bool dns_query_cookie(const uint8_t *q, size_t qlen, const uint8_t **cookie, size_t *len);

enum dns_cookie_state {
	DNS_CK_NONE,   /* no COOKIE option (or cookies off) */
	DNS_CK_CLIENT, /* a client cookie alone, or a server cookie not valid */
	DNS_CK_VALID,  /* a valid server cookie: the source address is proven */
};

/* What one answer did, for the plugin's counters. */
struct dns_result {
	int rcode;      /* enum dns_rcode of the reply; -1: no reply (dropped) */
	bool truncated; /* TC=1 */
	bool edns;
	int cookie;     /* enum dns_cookie_state of the query */
	size_t qend;   /* where the question ends in the reply */
	size_t optlen; /* bytes of the OPT record that ends it (edns) */
};

/* Answer the query q (qlen bytes) into out (room for DNS_UDP_MIN bytes at
 * least, max_payload at most; the reply never exceeds what the query's
 * EDNS payload size allows, bounded by max_payload). With ck (not NULL),
 * a query's COOKIE option is checked and the reply's OPT carries the
 * client cookie and a server cookie (the query's own if valid and less
 * than DNS_COOKIE_RENEW s old, else a new one); a malformed COOKIE
 * option, or two, is FORMERR (RFC 7873 5.2.2). Returns the reply's
 * length; 0: no reply (a response, or shorter than a header). Never
 * allocates; reads q only within qlen. */
size_t dns_answer(const struct dns_db *db, const uint8_t *q, size_t qlen, uint8_t *out,
                  size_t max_payload, const struct dns_cookies *ck, struct dns_result *res);

/* Rewrite the reply out (len bytes, as dns_answer made it with res, which
 * carries a cookie: res->cookie != DNS_CK_NONE) into BADCOOKIE: header,
 * question and the OPT with the server cookie, no records (RFC 7873
 * 5.2.3: what a client gets when the full answer is refused it, so that it
 * asks again with the cookie). The new length; len unchanged if there is
 * no cookie. */
size_t dns_badcookie(uint8_t *out, size_t len, struct dns_result *res);

/* Rewrite the reply out (len bytes, as dns_answer made it with res) into
 * its truncated form: header, question and OPT, TC=1; the new length. */
size_t dns_truncate(uint8_t *out, size_t len, const struct dns_result *res);

#endif /* DG_PLUGIN_DNS_H */
