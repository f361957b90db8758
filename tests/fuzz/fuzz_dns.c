/* libFuzzer harness for the dns plugin's query parser and answer writer
 * (plugins/dns/wire.c, over a zone loaded by plugins/dns/zone.c). The first
 * input byte picks max_payload (512, 1232 or 4096); the rest is the query.
 * Properties checked (abort on violation):
 *   - no crash, leak or out-of-bounds access (ASan, UBSan), whatever the
 *     query: pointer loops, labels past the end, lying counts;
 *   - a reply is never longer than max_payload, nor than 512 bytes for a
 *     query without EDNS; it carries the query's ID with QR set;
 *   - a reply parses back strictly: its counts match its records, every
 *     compression pointer points backwards, and the records end exactly
 *     at its end; so does its truncated form (dns_truncate).
 * tests/fuzz/replay.c runs the same function over tests/fuzz/corpus/dns in
 * every build. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "../../plugins/dns/dns.h"

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

static const char zones_json[] =
	"[{\"origin\": \"example.com.\", \"soa\": {\"mname\": \"ns1\", \"rname\": \"host\", \"serial\": 1,"
	" \"refresh\": 2, \"retry\": 3, \"expire\": 4, \"minimum\": 5},"
	" \"records\": ["
	"  {\"name\": \"@\", \"type\": \"NS\", \"data\": \"ns1\"},"
	"  {\"name\": \"@\", \"type\": \"NS\", \"data\": \"ns.example.net.\"},"
	"  {\"name\": \"@\", \"type\": \"MX\", \"data\": {\"preference\": 1, \"exchange\": \"mail\"}},"
	"  {\"name\": \"ns1\", \"type\": \"A\", \"data\": \"192.0.2.1\"},"
	"  {\"name\": \"ns1\", \"type\": \"AAAA\", \"data\": \"2001:db8::1\"},"
	"  {\"name\": \"mail\", \"type\": \"A\", \"data\": \"192.0.2.2\"},"
	"  {\"name\": \"www\", \"type\": \"A\", \"data\": \"192.0.2.3\"},"
	"  {\"name\": \"a\", \"type\": \"CNAME\", \"data\": \"b\"},"
	"  {\"name\": \"b\", \"type\": \"CNAME\", \"data\": \"a\"},"
	"  {\"name\": \"c\", \"type\": \"CNAME\", \"data\": \"www\"},"
	"  {\"name\": \"d\", \"type\": \"CNAME\", \"data\": \"gone\"},"
	"  {\"name\": \"x.y.z\", \"type\": \"TXT\", \"data\": [\"one\", \"two\"]},"
	"  {\"name\": \"sub\", \"type\": \"NS\", \"data\": \"ns.sub\"},"
	"  {\"name\": \"ns.sub\", \"type\": \"A\", \"data\": \"192.0.2.9\"},"
	"  {\"name\": \"big\", \"type\": \"TXT\", \"data\": \"" /* filled by setup() */;

static struct dns_db db;
static uint8_t out[65536];

static void setup(void)
{
	char err[512], *text = malloc(sizeof(zones_json) + 64 * 300);
	size_t n = strlen(zones_json);

	if (!text)
		abort();
	memcpy(text, zones_json, n);
	/* 40 TXT records of 250 bytes: answers that only fit 4096 partly. */
	for (int i = 0; i < 40; i++)
		n += (size_t)sprintf(text + n, "%s%02d%0248d\"}%s", i ? "{\"name\": \"big\", \"type\": \"TXT\", \"data\": \"" : "",
		                     i, 0, i < 39 ? ", " : "]}]");
	json_error_t je;
	json_t *z = json_loads(text, 0, &je);
	if (!z || dns_db_load(&db, z, err, sizeof(err)))
		fprintf(stderr, "zones: %s %s\n", je.text, err), abort();
	json_decref(z);
	free(text);
}

static unsigned get16(const uint8_t *p)
{
	return (unsigned)p[0] << 8 | p[1];
}

/* A name at *pos of a reply: labels, then a root or a pointer that points
 * before the name's own start. */
static void check_name(const uint8_t *m, size_t len, size_t *pos)
{
	size_t start = *pos, i = *pos;

	for (;;) {
		if (i >= len)
			abort();
		uint8_t l = m[i];
		if ((l & 0xC0) == 0xC0) {
			if (i + 2 > len || (get16(m + i) & 0x3FFF) >= start)
				abort();
			i += 2;
			break;
		}
		if (l & 0xC0)
			abort();
		i += 1u + l;
		if (!l)
			break;
	}
	if (i > len)
		abort();
	*pos = i;
}

static void check_reply(const uint8_t *m, size_t len, const uint8_t *q)
{
	size_t pos = DNS_HEADER;

	if (len < DNS_HEADER || memcmp(m, q, 2) || !(m[2] & 0x80))
		abort();
	unsigned qd = get16(m + 4), rr = get16(m + 6) + get16(m + 8) + get16(m + 10);
	for (unsigned i = 0; i < qd; i++) {
		check_name(m, len, &pos);
		if ((pos += 4) > len)
			abort();
	}
	for (unsigned i = 0; i < rr; i++) {
		check_name(m, len, &pos);
		if (pos + 10 > len || pos + 10 + get16(m + pos + 8) > len)
			abort();
		pos += 10 + get16(m + pos + 8);
	}
	if (pos != len)
		abort();
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
	static const size_t payloads[] = { 512, 1232, 4096 };
	static bool ready;
	struct dns_result res;

	if (!ready) {
		setup();
		ready = true;
	}
	if (size < 1)
		return 0;
	size_t max = payloads[data[0] % 3];
	/* Cookies on for data[0] / 3 odd: a fixed secret, address and clock,
	 * so the corpus's cookies (tests/fuzz/corpus/dns/cookie-*) stay valid. */
	static const uint8_t secret[16] = "fuzz dns secret";
	static const uint8_t ip[4] = { 127, 0, 0, 1 };
	const struct dns_cookies ckv = { .secret = secret, .now = 1700000000u, .ip = ip, .iplen = 4 };
	const struct dns_cookies *ck = data[0] / 3 % 2 ? &ckv : NULL;
	/* A copy of exactly the query's size, so ASan sees any overread. */
	uint8_t *q = malloc(size - 1 ? size - 1 : 1);
	if (!q)
		abort();
	memcpy(q, data + 1, size - 1);
	const uint8_t *cookie;
	size_t clen;
	bool proven = dns_query_cookie(q, size - 1, &cookie, &clen) && dns_cookie_valid(&ckv, cookie, clen);
	size_t len = dns_answer(&db, q, size - 1, out, max, ck, &res);
	if (ck && proven != (res.cookie == DNS_CK_VALID))
		abort(); /* proves_source and the answer disagree */
	if (len) {
		if (len > max || (!res.edns && len > DNS_UDP_MIN))
			abort();
		check_reply(out, len, q);
		struct dns_result r2 = res;
		size_t tl = dns_truncate(out, len, &res);
		if (tl > len)
			abort();
		check_reply(out, tl, q);
		size_t bl = dns_badcookie(out, tl, &r2);
		if (bl > tl || (r2.cookie != DNS_CK_NONE && r2.qend > DNS_HEADER && r2.rcode != DNS_BADCOOKIE))
			abort();
		check_reply(out, bl, q);
	} else if (res.rcode != -1) {
		abort();
	}
	free(q);
	return 0;
}
