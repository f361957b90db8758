/* dns: an authoritative DNS server for the zones in its config (UDP, the
 * "raw" codec). See README.md, "Shipped plugins", for the config format.
 *
 * config:
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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <dgramd/plugin.h>

#include "dns.h"

#define DEFAULT_PAYLOAD 1232 /* the DNS flag day 2020 size: no IP fragments */

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

static int dns_configure(struct dns *d, const json_t *config)
{
	char err[512];
	const char *key;
	json_t *v;
	int rc;

	json_object_foreach((json_t *)config, key, v) {
		if (!strcmp(key, "max_payload")) {
			if (!json_is_integer(v) || json_integer_value(v) < DNS_UDP_MIN ||
			    json_integer_value(v) > 65535) {
				d->host->log(d->self, DG_LOG_ERROR, "config.max_payload: expected an integer from 512 to 65535");
				return DG_EINVAL;
			}
			d->max_payload = (size_t)json_integer_value(v);
		} else if (strcmp(key, "zones")) {
			d->host->log(d->self, DG_LOG_ERROR, "config.%s: unknown key (known: zones, max_payload)", key);
			return DG_EINVAL;
		}
	}
	if (!json_object_get(config, "zones")) {
		d->host->log(d->self, DG_LOG_ERROR, "config.zones: missing (the zones to serve)");
		return DG_EINVAL;
	}
	if ((rc = dns_db_load(&d->db, json_object_get(config, "zones"), err, sizeof(err)))) {
		d->host->log(d->self, DG_LOG_ERROR, "%s", err);
		return rc;
	}
	return DG_OK;
}

static int dns_init(struct dg_instance *self, const struct dg_host *host, const json_t *config,
                    void **state)
{
	struct dns *d = calloc(1, sizeof(*d));
	int rc;

	*state = NULL;
	if (!d)
		return DG_ENOMEM;
	d->self = self;
	d->host = host;
	d->max_payload = DEFAULT_PAYLOAD;
	if (!json_is_object(config)) {
		host->log(self, DG_LOG_ERROR, "config: expected an object with \"zones\"");
		free(d);
		return DG_EINVAL;
	}
	if ((rc = dns_configure(d, config)) || !(d->out = malloc(d->max_payload))) {
		dns_fini(d);
		return rc ? rc : DG_ENOMEM;
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
};
