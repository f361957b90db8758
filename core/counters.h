/* Per-listener counters. Every datagram that enters is counted in exactly
 * one of: handled, decode_errors, drop[reason], once it leaves its peer
 * queue; so at any moment
 *   rx = handled + decode_errors + sum(drop) + (datagrams now queued)
 * and at exit, with the queues empty, rx = handled + decode_errors + drops.
 * rx_kernel_drops stands outside that sum: datagrams the kernel dropped
 * before dgramd could read them (socket buffer full) never reach rx.
 * Replies have their own accounting: tx + sum(tx_drop) = replies made
 * (pushes with host->session_send included; tx_push counts those). */
#ifndef DG_COUNTERS_H
#define DG_COUNTERS_H

#include <stddef.h>
#include <stdbool.h>
#include <stdint.h>

enum dg_drop {
	DG_DROP_TOO_LARGE, /* over the listener's max_datagram */
	DG_DROP_TRUNCATED, /* MSG_TRUNC without a length (non-Linux) */
	DG_DROP_PLUGIN,    /* the plugin's accept() said no */
	DG_DROP_BUSY,      /* max_pending requests already in progress */
	DG_DROP_PEERS_FULL, /* max_peers or max_unvalidated_peers sessions, none idle to evict */
	DG_DROP_PEER_QUEUE, /* the peer's queue was full (either drop_policy) */
	DG_DROP_SHUTDOWN,  /* still queued when the shutdown deadline passed */
	DG_DROP_MEMORY,    /* memory_budget used up by requests in progress and queues */
	DG_DROP_ACL,       /* the source is refused by allow/deny */
	DG_DROP_RATE_LIMITED, /* over rate_limit (per source or total) */
	DG_DROP_INTEGRITY, /* a transform's checksum or signature missing or wrong */
	DG_DROP_CORRUPT,   /* a transform's input corrupt: bad base64, a broken stream */
	DG_DROP_DECODED_SIZE, /* a transform would decode past max_decoded (a bomb) */
	DG_DROP__COUNT
};

enum dg_tx_drop {
	DG_TXDROP_QUEUE_FULL, /* send queue at send_queue */
	DG_TXDROP_SEND_ERROR, /* the kernel refused (ICMP error, EPERM, ...) */
	DG_TXDROP_TOO_BIG,    /* reply does not fit max_datagram */
	DG_TXDROP_SHUTDOWN,   /* still queued when the shutdown deadline passed */
	DG_TXDROP_AMPLIFICATION, /* over an unvalidated peer's amplification credit */
	DG_TXDROP_TOO_MANY,   /* past max_replies_per_request for one request */
	DG_TXDROP__COUNT
};

/* A counter or gauge a plugin publishes (host->metric_new), kept beside
 * the listener's counters so that it is in shared memory with workers and
 * survives a worker restart (metric_new finds it again by name). */
#define DG_PLUGIN_METRICS_MAX 32
struct dg_plugin_metric {
	char name[48];  /* [a-z0-9_]; "" while the slot is free */
	char help[96];
	int64_t value;
	uint32_t kind;  /* enum dg_metric_kind */
	uint32_t pad;
};

struct dg_counters {
	uint64_t rx;            /* datagrams received */
	uint64_t rx_bytes;
	uint64_t rx_kernel_drops; /* dropped by the kernel, never received (SO_RXQ_OVFL) */
	uint64_t handled;       /* datagrams whose frames went to the handler */
	uint64_t decode_errors; /* datagrams that failed framing or payload */
	uint64_t drop[DG_DROP__COUNT];
	uint64_t packets;        /* frames delivered to on_packet */
	uint64_t handler_errors; /* on_packet returned an error */
	uint64_t tx;             /* reply datagrams sent */
	uint64_t tx_bytes;
	uint64_t tx_drop[DG_TXDROP__COUNT];
	uint64_t tx_queued;      /* replies that waited in the send queue */
	uint64_t timeouts;       /* pending requests past handler_timeout_ms */
	uint64_t sessions;       /* sessions created */
	uint64_t sessions_idle;  /* closed after session_idle_ms */
	uint64_t sessions_evicted; /* closed to make room (max_peers) */
	uint64_t queued;         /* datagrams that waited in a peer queue */
	uint64_t stale_calls;    /* reply/complete with a dead request handle */
	uint64_t tx_push;        /* pushes accepted (session_send); sent ones are in tx too */
	uint64_t handovers;      /* conversations a reload left on a socket connected to the peer */
	uint64_t handover_failures; /* conversations a reload cancelled: no such socket */
	uint64_t rx_proven;      /* datagrams whose source the plugin proved (proves_source) */
	/* Not a counter: dg_counters_add stops here. */
	struct dg_plugin_metric plugin[DG_PLUGIN_METRICS_MAX];
};

/* The scalar fields by name (drops and tx drops are by reason, below),
 * for the stats line, /metrics and /stats; ends with a NULL name. A new
 * field gets a row here. */
struct dg_counter_field {
	const char *name;
	size_t off;       /* offsetof(struct dg_counters, field): a uint64_t */
	const char *help; /* one line, no period */
};
extern const struct dg_counter_field dg_counter_fields[];

extern const char *const dg_drop_names[DG_DROP__COUNT];
extern const char *const dg_txdrop_names[DG_TXDROP__COUNT];

/* sum += c, field by field. */
void dg_counters_add(struct dg_counters *sum, const struct dg_counters *c);

/* c's plugin counters added to sum's of the same name (a new name takes a
 * free slot; none left: it is not added); with gauges, c's gauges are
 * copied too (a gauge is a value now, not a sum). */
void dg_counters_add_plugin(struct dg_counters *sum, const struct dg_counters *c, bool gauges);

/* The counters as the stats line shows them (" rx=N rx_bytes=N ...",
 * without the label and log_dropped) into buf, always terminated (cut if
 * len is short). Returns buf. */
const char *dg_counters_format(const struct dg_counters *c, char *buf, size_t len);

/* The stats line of one set of counters (label: "listener=NAME"), logged
 * at every log level, with the process's log_dropped figure. */
void dg_counters_log(const char *label, const struct dg_counters *c);

#endif
