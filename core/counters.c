/* The counters' names: one table for the stats line, /metrics and /stats. */
#include "config.h"

#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "counters.h"
#include "log.h"

const char *const dg_drop_names[DG_DROP__COUNT] = {
	"too_large", "truncated", "plugin", "busy", "peers_full", "peer_queue", "shutdown",
	"memory", "acl", "rate_limited", "integrity", "corrupt", "decoded_size",
};

const char *const dg_txdrop_names[DG_TXDROP__COUNT] = {
	"queue_full", "send_error", "too_big", "shutdown", "amplification", "too_many",
};

#define F(field, help) { #field, offsetof(struct dg_counters, field), help }
const struct dg_counter_field dg_counter_fields[] = {
	F(rx, "Datagrams received"),
	F(rx_bytes, "Bytes received in datagrams"),
	F(rx_kernel_drops, "Datagrams the kernel dropped before dgramd read them (SO_RXQ_OVFL; outside rx)"),
	F(handled, "Datagrams whose frames went to the handler"),
	F(decode_errors, "Datagrams that failed framing or payload decoding"),
	F(packets, "Frames delivered to on_packet"),
	F(handler_errors, "Plugin callbacks that returned an error"),
	F(timeouts, "Requests past handler_timeout_ms"),
	F(queued, "Datagrams that waited in a peer queue"),
	F(sessions, "Peer sessions created"),
	F(sessions_idle, "Sessions closed after session_idle_ms"),
	F(sessions_evicted, "Sessions closed to make room (max_peers)"),
	F(tx, "Reply datagrams sent"),
	F(tx_bytes, "Bytes sent in replies"),
	F(tx_queued, "Replies that waited in the send queue"),
	F(stale_calls, "Plugin calls with a request or session that has ended"),
	F(tx_push, "Datagrams pushed to a peer outside a request (session_send); also in tx when sent"),
	F(handovers, "Conversations a reload left to finish in the old worker on a socket connected to the peer"),
	F(handover_failures, "Conversations a reload cancelled because they could not get such a socket"),
	F(rx_proven, "Datagrams whose source address the plugin proved (a DNS server cookie): past the per-source rate limit and the amplification guard"),
	{ NULL, 0, NULL },
};
#undef F

void dg_counters_add(struct dg_counters *sum, const struct dg_counters *c)
{
	/* Up to the plugins' metrics the struct is all uint64_t counters. */
	uint64_t *d = (uint64_t *)sum;
	const uint64_t *v = (const uint64_t *)c;

	for (size_t i = 0; i < offsetof(struct dg_counters, plugin) / sizeof(uint64_t); i++)
		d[i] += v[i];
}

void dg_counters_add_plugin(struct dg_counters *sum, const struct dg_counters *c, bool gauges)
{
	for (unsigned i = 0; i < DG_PLUGIN_METRICS_MAX; i++) {
		const struct dg_plugin_metric *pm = &c->plugin[i];
		bool counter = pm->kind == DG_METRIC_COUNTER;
		struct dg_plugin_metric *to = NULL;
		if (!pm->name[0] || (!counter && !gauges))
			continue;
		for (unsigned j = 0; j < DG_PLUGIN_METRICS_MAX && !to; j++)
			if (!strcmp(sum->plugin[j].name, pm->name))
				to = &sum->plugin[j];
		for (unsigned j = 0; j < DG_PLUGIN_METRICS_MAX && !to; j++)
			if (!sum->plugin[j].name[0]) {
				to = &sum->plugin[j];
				*to = *pm;
				to->value = 0;
			}
		if (to && to->kind == pm->kind)
			to->value = counter ? to->value + pm->value : pm->value;
	}
}

const char *dg_counters_format(const struct dg_counters *c, char *line, size_t len)
{
	size_t n = 0;

	if (!len)
		return line;
	line[0] = '\0';
	/* snprintf never writes past the end; n may pass it, then the line
	 * is cut (and the log marks it). */
#define ADD(...) (n += (size_t)snprintf(line + (n < len ? n : len), n < len ? len - n : 0, \
	                                 __VA_ARGS__))
	for (const struct dg_counter_field *f = dg_counter_fields; f->name; f++) {
		ADD(" %s=%llu", f->name, (unsigned long long)*(const uint64_t *)((const char *)c + f->off));
		if (f->off == offsetof(struct dg_counters, decode_errors))
			for (int d = 0; d < DG_DROP__COUNT; d++)
				ADD(" drop_%s=%llu", dg_drop_names[d], (unsigned long long)c->drop[d]);
	}
	for (int d = 0; d < DG_TXDROP__COUNT; d++)
		ADD(" tx_drop_%s=%llu", dg_txdrop_names[d], (unsigned long long)c->tx_drop[d]);
#undef ADD
	return line;
}

void dg_counters_log(const char *label, const struct dg_counters *c)
{
	char line[2048];

	dg_counters_format(c, line, sizeof(line));
	/* At every log.level: the counters are the account of the run. */
	dg_log_always(DG_LOG_INFO, "stats %s%s log_dropped=%lu", label, line, dg_log_dropped());
}
