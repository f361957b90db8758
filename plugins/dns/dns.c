/* dns: an authoritative DNS server for the zones in its config (UDP, the
 * "raw" codec). See docs/protocols.md, "dns", for the config format.
 *
 * config (dns_options, checked by the host; the zones by zone.c):
 *   "zones": [ZONE, ...]      required; ZONE: {"origin", "ttl", "soa", "records"}
 *   "max_payload": n          512..65535 (default 1232): the largest reply,
 *                             whatever a query's EDNS payload size asks for
 *   "cookies": bool           DNS Cookies (RFC 7873, 9018), default true
 *   "cookie_secret": "hex"    the server secret, 32 hex digits (NSD's
 *                             cookie-secret); default: derived from
 *                             host->secret, which every worker shares
 *
 * Each query is answered from the instance's zone database into the
 * instance's reply buffer: no allocation, no log line per query. A reply
 * the host refuses (over the listener's max_datagram, DG_E2BIG, or over an
 * unvalidated peer's amplification credit, DG_EAGAIN) goes out truncated
 * instead: header and question with TC=1, which is what a DNS client
 * expects of a reply too large for UDP; a query with a DNS cookie gets
 * BADCOOKIE with our server cookie instead (RFC 7873 5.2.3), so that it
 * asks again with it. A query with a valid server cookie proves its source
 * address (proves_source): the host exempts it from the per-source rate
 * limit and the amplification guard, so a spoofer flooding "from" a
 * client's address cannot use up that client's budget.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>
#include <dgramd/plugin.h>
#include <dgramd/plugin-util.h>

#include "../siphash.h"
#include "dns.h"

/* Counters published at /metrics, by outcome. */
enum dns_counter { C_NOERROR, C_NXDOMAIN, C_REFUSED, C_FORMERR, C_NOTIMP, C_BADVERS,
	           C_TRUNCATED, C_DROPPED, C_COOKIE_VALID, C_COOKIE_NEW, C_BADCOOKIE, C_COUNT };

static const struct {
	const char *name, *help;
} counters[C_COUNT] = {
	[C_NOERROR] = { "noerror", "Answers with rcode NOERROR (data, NODATA, referrals)" },
	[C_NXDOMAIN] = { "nxdomain", "Answers with rcode NXDOMAIN" },
	[C_REFUSED] = { "refused", "Queries refused: not in a zone served, class not IN, zone transfer" },
	[C_FORMERR] = { "formerr", "Malformed queries answered FORMERR" },
	[C_NOTIMP] = { "notimp", "Queries with an opcode other than QUERY" },
	[C_BADVERS] = { "badvers", "Queries with an EDNS version other than 0" },
	[C_TRUNCATED] = { "truncated", "Replies sent truncated (TC=1)" },
	[C_DROPPED] = { "dropped", "Datagrams not answered: responses, shorter than a header" },
	[C_COOKIE_VALID] = { "cookie_valid", "Queries with a valid server cookie (their source is proven)" },
	[C_COOKIE_NEW] = { "cookie_new", "Queries with a client cookie alone or an invalid server cookie: given a new one" },
	[C_BADCOOKIE] = { "badcookie", "BADCOOKIE answers: the full answer was over the amplification credit" },
};

/* The config, filled in by the host (host->options). */
struct dns_opts {
	int64_t max_payload;
	const json_t *zones; /* borrowed until fini */
	bool cookies;
	const char *cookie_secret; /* NULL: derived from host->secret */
};

#define O(field) offsetof(struct dns_opts, field)
static const struct dg_option dns_options[] = {
	{ .name = "zones", .type = DG_OPT_JSON, .offset = O(zones), .flags = DG_OPT_REQUIRED,
	  .help = "the zones served: [{origin, ttl, soa, records}] (docs/protocols.md, \"dns\")" },
	{ .name = "max_payload", .type = DG_OPT_INT, .offset = O(max_payload), .def = "1232",
	  .min = DNS_UDP_MIN, .max = 65535, .help = "the largest reply in bytes, whatever EDNS asks" },
	{ .name = "cookies", .type = DG_OPT_BOOL, .offset = O(cookies), .def = "true",
	  .help = "DNS Cookies (RFC 7873): answer them, and exempt proven clients from rate_limit" },
	{ .name = "cookie_secret", .type = DG_OPT_STRING, .offset = O(cookie_secret), .min = 32, .max = 32,
	  .help = "server cookie secret, 32 hex digits (as NSD's cookie-secret); default: per dgramd" },
	{ .name = NULL },
};
#undef O

struct dns {
	struct dg_instance *self;
	const struct dg_host *host;
	struct dns_db db;
	size_t max_payload;
	struct dg_metric *metric[C_COUNT]; /* NULL on hosts without metrics */
	uint8_t *out;                      /* max_payload bytes: the reply being built */
	bool cookies;
	uint8_t secret[16];                /* the server cookie secret */
	int64_t epoch_s;                   /* Unix time at host->now_ms() == 0 */
};

static void dns_fini(void *state)
{
	struct dns *d = state;

	if (!d)
		return;
	dns_db_free(&d->db);
	free(d->out);
	free(d);
}

static int hexval(char c)
{
	return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 :
	       c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/* The cookie secret: cookie_secret's 16 bytes, or a key derived from the
 * host's secret (the same in every worker: a client's next query may
 * reach another one). The clock: RFC 9018's timestamps are Unix time,
 * read here once and then moved on by the host's clock (the harness's
 * fake one in tests), so there is no clock read per query. */
static int cookies_init(struct dns *d, const struct dns_opts *o)
{
	static const unsigned char label[] = "dgramd dns cookie secret";
	const unsigned char *hs;

	d->cookies = o->cookies;
	if (!d->cookies)
		return DG_OK;
	if (o->cookie_secret) {
		for (size_t i = 0; i < 16; i++) {
			int hi = hexval(o->cookie_secret[2 * i]), lo = hexval(o->cookie_secret[2 * i + 1]);
			if (hi < 0 || lo < 0) {
				d->host->log(d->self, DG_LOG_ERROR,
				             "config.cookie_secret: expected 32 hex digits (128 bits)");
				return DG_EINVAL;
			}
			d->secret[i] = (uint8_t)(hi << 4 | lo);
		}
	} else {
		if (!(hs = d->host->secret(d->self)))
			return DG_ERROR;
		dg_siphash24_le(hs, label, sizeof(label) - 1, d->secret);
		dg_siphash24_le(hs + 16, label, sizeof(label) - 1, d->secret + 8);
	}
	d->epoch_s = (int64_t)time(NULL) - (int64_t)(d->host->now_ms(d->self) / 1000);
	return DG_OK;
}

/* The cookie context of a query from peer; NULL when cookies are off (or
 * the address is of neither family). */
static const struct dns_cookies *cookies_for(const struct dns *d, const struct dg_peer *peer,
                                             struct dns_cookies *ck)
{
	if (!d->cookies || !dns_cookies_peer(ck, peer->addr))
		return NULL;
	ck->secret = d->secret;
	ck->now = (uint32_t)(d->epoch_s + (int64_t)(d->host->now_ms(d->self) / 1000));
	return ck;
}

static int dns_init(struct dg_instance *self, const struct dg_host *host, const json_t *config,
                    void **state)
{
	const struct dns_opts *o = dg_util_options(self, host);
	struct dns *d;
	char err[512];
	int rc;
	(void)config; /* checked and filled in by the host: o */

	*state = NULL;
	if (!o)
		return DG_EINVAL; /* logged */
	if (!(d = calloc(1, sizeof(*d))))
		return DG_ENOMEM;
	d->self = self;
	d->host = host;
	d->max_payload = (size_t)o->max_payload;
	if ((rc = cookies_init(d, o))) {
		dns_fini(d);
		return rc;
	}
	if ((rc = dns_db_load(&d->db, o->zones, err, sizeof(err)))) {
		host->log(self, DG_LOG_ERROR, "%s", err);
		dns_fini(d);
		return rc;
	}
	if (!(d->out = malloc(d->max_payload))) {
		dns_fini(d);
		return DG_ENOMEM;
	}
	for (int c = 0; c < C_COUNT; c++)
		d->metric[c] = dg_util_metric_new(host, self, counters[c].name, counters[c].help,
		                                  DG_METRIC_COUNTER);
	*state = d;
	return DG_OK;
}

static void count(struct dns *d, int c)
{
	dg_util_metric_add(d->host, d->metric[c], 1);
}

static int counter_of(int rcode)
{
	switch (rcode) {
	case DNS_NOERROR: return C_NOERROR;
	case DNS_NXDOMAIN: return C_NXDOMAIN;
	case DNS_REFUSED: return C_REFUSED;
	case DNS_FORMERR: return C_FORMERR;
	case DNS_NOTIMP: return C_NOTIMP;
	case DNS_BADVERS: return C_BADVERS;
	default: return C_DROPPED;
	}
}

static int dns_on_packet(void *state, const struct dg_request *req)
{
	struct dns *d = state;
	struct dns_result res;
	struct dns_cookies ckb;
	const struct dns_cookies *ck = cookies_for(d, req->peer, &ckb);
	struct dg_packet out = { .data = d->out };

	out.len = dns_answer(&d->db, req->packet.data, req->packet.len, d->out, d->max_payload, ck, &res);
	if (res.cookie != DNS_CK_NONE)
		count(d, res.cookie == DNS_CK_VALID ? C_COOKIE_VALID : C_COOKIE_NEW);
	if (!out.len) {
		count(d, counter_of(res.rcode));
		return DG_DONE;
	}
	int rc = d->host->request_reply(d->self, req->handle, &out);
	if (rc == DG_EAGAIN && res.cookie != DNS_CK_NONE && res.qend > DNS_HEADER) {
		/* Over an unproven client's credit: the cookie to come back with. */
		out.len = dns_badcookie(d->out, out.len, &res);
		rc = d->host->request_reply(d->self, req->handle, &out);
	} else if ((rc == DG_E2BIG || rc == DG_EAGAIN) && !res.truncated && res.qend > DNS_HEADER) {
		out.len = dns_truncate(d->out, out.len, &res);
		res.truncated = true;
		rc = d->host->request_reply(d->self, req->handle, &out);
	}
	count(d, res.rcode == DNS_BADCOOKIE ? C_BADCOOKIE : counter_of(res.rcode));
	if (res.truncated)
		count(d, C_TRUNCATED);
	/* Refused by the amplification guard even truncated, or too big even
	 * truncated: counted by the host, not a failure of the query. */
	return rc == DG_E2BIG ? DG_DONE : dg_util_verdict(rc);
}

/* A valid, fresh server cookie proves the source (RFC 7873: only a host
 * that receives what is sent to that address could have learnt it). */
static int dns_proves_source(void *state, const struct dg_peer *peer, const void *data, size_t len)
{
	struct dns *d = state;
	struct dns_cookies ckb;
	const struct dns_cookies *ck = cookies_for(d, peer, &ckb);
	const uint8_t *cookie;
	size_t clen;

	return ck && dns_query_cookie(data, len, &cookie, &clen) && dns_cookie_valid(ck, cookie, clen);
}

DG_PLUGIN_EXPORT const struct dg_plugin dgramd_plugin = {
	DG_PLUGIN_HEADER,
	.name = "dns",
	.version = "1.0",
	.init = dns_init,
	.fini = dns_fini,
	.on_packet = dns_on_packet,
	.options = dns_options,
	.options_size = sizeof(struct dns_opts),
	.proves_source = dns_proves_source,
};
