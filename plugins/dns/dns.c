/* dns: an authoritative DNS server for the zones in its config (UDP, the
 * "raw" codec). See README.md, "Shipped plugins", for the config format.
 *
 * config (dns_options, checked by the host; the zones by zone.c):
 *   "zones": [ZONE, ...]      required; ZONE: {"origin", "ttl", "soa", "records"}
 *   "max_payload": n          512..65535 (default 1232): the largest reply,
 *                             whatever a query's EDNS payload size asks for
 *
 * Each query is answered from the instance's zone database into the
 * instance's reply buffer: no allocation, no log line per query. A reply
 * the host refuses (over the listener's max_datagram, DG_E2BIG, or over an
 * unvalidated peer's amplification credit, DG_EAGAIN) goes out truncated
 * instead: header and question with TC=1, which is what a DNS client
 * expects of a reply too large for UDP.
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <dgramd/plugin.h>

#include "dns.h"

/* Counters published at /metrics, by outcome. */
enum dns_counter { C_NOERROR, C_NXDOMAIN, C_REFUSED, C_FORMERR, C_NOTIMP, C_BADVERS,
	           C_TRUNCATED, C_DROPPED, C_COUNT };

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
};

/* The config, filled in by the host (host->options). */
struct dns_opts {
	int64_t max_payload;
	const json_t *zones; /* borrowed until fini */
};

#define O(field) offsetof(struct dns_opts, field)
static const struct dg_option dns_options[] = {
	{ .name = "zones", .type = DG_OPT_JSON, .offset = O(zones), .flags = DG_OPT_REQUIRED,
	  .help = "the zones served: [{origin, ttl, soa, records}] (README, \"The dns plugin\")" },
	{ .name = "max_payload", .type = DG_OPT_INT, .offset = O(max_payload), .def = "1232",
	  .min = DNS_UDP_MIN, .max = 65535, .help = "the largest reply in bytes, whatever EDNS asks" },
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

static int dns_init(struct dg_instance *self, const struct dg_host *host, const json_t *config,
                    void **state)
{
	/* As echo and kv: the host's size does not cover options yet (core/host.c
	 * moves its cut member by member), but the member is filled in. */
	const struct dns_opts *o = host->options ? host->options(self) : NULL;
	struct dns *d;
	char err[512];
	int rc;
	(void)config; /* checked and filled in by the host: o */

	*state = NULL;
	if (!o) {
		host->log(self, DG_LOG_ERROR, "this dgramd fills in no options (host->options)");
		return DG_EINVAL;
	}
	if (!(d = calloc(1, sizeof(*d))))
		return DG_ENOMEM;
	d->self = self;
	d->host = host;
	d->max_payload = (size_t)o->max_payload;
	if ((rc = dns_db_load(&d->db, o->zones, err, sizeof(err)))) {
		host->log(self, DG_LOG_ERROR, "%s", err);
		dns_fini(d);
		return rc;
	}
	if (!(d->out = malloc(d->max_payload))) {
		dns_fini(d);
		return DG_ENOMEM;
	}
	if (DG_HOST_HAS(host, metric_new) && host->metric_new)
		for (int c = 0; c < C_COUNT; c++)
			d->metric[c] = host->metric_new(self, counters[c].name, counters[c].help, DG_METRIC_COUNTER);
	*state = d;
	return DG_OK;
}

static void count(struct dns *d, int c)
{
	if (d->metric[c])
		d->host->metric_add(d->metric[c], 1);
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
	struct dg_packet out = { .data = d->out };

	out.len = dns_answer(&d->db, req->packet.data, req->packet.len, d->out, d->max_payload, &res);
	count(d, counter_of(res.rcode));
	if (!out.len)
		return DG_DONE;
	int rc = d->host->reply(req->handle, &out);
	if ((rc == DG_E2BIG || rc == DG_EAGAIN) && !res.truncated && res.qend > DNS_HEADER) {
		out.len = dns_truncate(d->out, out.len, &res);
		res.truncated = true;
		rc = d->host->reply(req->handle, &out);
	}
	if (res.truncated)
		count(d, C_TRUNCATED);
	/* Refused by the amplification guard even truncated: counted by the host. */
	return rc < 0 && rc != DG_EAGAIN && rc != DG_E2BIG ? rc : DG_DONE;
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
};
