/*
 * <dgramd/plugin-util.h>: small helpers for handler plugins, the pieces the
 * shipped plugins (echo, kv, relay, redis, syslog) would otherwise each
 * write again: an intrusive list, the options and metrics of an older host,
 * JSON error replies with the request's "id" echoed, what a refused reply
 * means for on_packet's result, and a log rate limit on the server's clock.
 *
 * Static inline only: nothing here is a dgramd symbol, so a plugin still
 * never links against dgramd, and the ABI (plugin.h) is unchanged. Every
 * helper that calls the host does it through the struct dg_host * it is
 * given, on the event-loop thread, under plugin.h's rules.
 *
 * The JSON helpers (dg_util_error, dg_util_request_id, dg_util_reply_json)
 * are defined only when <jansson.h> is included before this header; the
 * rest needs nothing but <dgramd/plugin.h>.
 *
 *     #include <jansson.h>
 *     #include <dgramd/plugin.h>
 *     #include <dgramd/plugin-util.h>
 */
#ifndef DGRAMD_PLUGIN_UTIL_H
#define DGRAMD_PLUGIN_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <dgramd/plugin.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- an intrusive doubly linked list ------------------------------------
 * Embed a struct dg_util_link in your struct and get the struct back with
 * DG_UTIL_ENTRY. The list owns nothing: it links the caller's structs and
 * never allocates or frees; an entry is on one list at a time, and must be
 * unlinked before it is freed. Every operation is O(1). */

struct dg_util_link {
	struct dg_util_link *prev, *next;
};

/* A ring through a sentinel: call dg_util_list_init() before use (all
 * zeroes is not an empty list). */
struct dg_util_list {
	struct dg_util_link ring; /* ring.next: the oldest entry; ring.prev: the newest */
	size_t len;               /* entries linked */
};

/* The struct of type whose member (a struct dg_util_link) is at link. */
#define DG_UTIL_ENTRY(link, type, member)                                      \
	((type *)(void *)((char *)(link) - offsetof(type, member)))

static inline void dg_util_list_init(struct dg_util_list *list)
{
	list->ring.prev = list->ring.next = &list->ring;
	list->len = 0;
}

/* The oldest entry (the first pushed and not yet unlinked), or NULL. */
static inline struct dg_util_link *dg_util_list_first(const struct dg_util_list *list)
{
	return list->len ? list->ring.next : NULL;
}

/* Link n (not on any list) as the newest entry. */
static inline void dg_util_list_push(struct dg_util_list *list, struct dg_util_link *n)
{
	n->next = &list->ring;
	n->prev = list->ring.prev;
	n->prev->next = n->next->prev = n;
	list->len++;
}

/* Unlink n, which is on list; its links are left NULL. */
static inline void dg_util_list_unlink(struct dg_util_list *list, struct dg_util_link *n)
{
	n->prev->next = n->next;
	n->next->prev = n->prev;
	n->prev = n->next = NULL;
	list->len--;
}

/* Unlink and return the oldest entry, or NULL if the list is empty. */
static inline struct dg_util_link *dg_util_list_pop(struct dg_util_list *list)
{
	struct dg_util_link *n = dg_util_list_first(list);

	if (n)
		dg_util_list_unlink(list, n);
	return n;
}

/* ---- the host table ------------------------------------------------------ */

/* For init() of a plugin that declares options (dg_plugin.options): the
 * struct the host filled in (host-owned, valid until fini()), or NULL after
 * logging why through host->log (a 1.0 host, which fills in none: return
 * DG_EINVAL from init then). */
static inline const void *dg_util_options(struct dg_instance *self, const struct dg_host *host)
{
	const void *o = DG_HOST_HAS(host, options) && host->options ? host->options(self) : NULL;

	if (!o)
		host->log(self, DG_LOG_ERROR, "this dgramd fills in no options (host->options)");
	return o;
}

/* host->metric_new where the host has it; NULL on a 1.0 host or when the
 * host refuses (see metric_new). name and help are copied by the host. The
 * metric helpers below take NULL as "no metric", so a plugin needs no
 * test of its own before each count. */
static inline struct dg_metric *dg_util_metric_new(const struct dg_host *host,
                                                   struct dg_instance *self, const char *name,
                                                   const char *help, int kind)
{
	if (!DG_HOST_HAS(host, metric_new) || !host->metric_new)
		return NULL;
	return host->metric_new(self, name, help, kind);
}

/* host->metric_add and metric_set, no-ops for a NULL metric (which is all a
 * host without metrics ever gives). */
static inline void dg_util_metric_add(const struct dg_host *host, struct dg_metric *m, int64_t delta)
{
	if (m)
		host->metric_add(m, delta);
}

static inline void dg_util_metric_set(const struct dg_host *host, struct dg_metric *m, int64_t value)
{
	if (m)
		host->metric_set(m, value);
}

/* ---- replies --------------------------------------------------------------- */

/* What on_packet() or on_error() returns after its reply got rc: DG_DONE,
 * or rc when it is a failure of the request. DG_EAGAIN is not one: the
 * amplification guard refused the reply (the peer has not proven its
 * address), the server counted it as tx_drop_amplification, and the
 * request was handled; counting it again as a handler error would be
 * wrong. */
static inline int dg_util_verdict(int rc)
{
	return rc < 0 && rc != DG_EAGAIN ? rc : DG_DONE;
}

#ifdef JANSSON_H

/* A new error reply: {"error": msg}, or {"ok": false, "error": msg} when
 * ok_member is true (the form of the plugins whose answers carry "ok").
 * msg is copied. A new reference (the caller's), or NULL when out of
 * memory; dg_util_reply_json() takes either. */
static inline json_t *dg_util_error(const char *msg, bool ok_member)
{
	return ok_member ? json_pack("{sbss}", "ok", 0, "error", msg) : json_pack("{ss}", "error", msg);
}

/* The "id" member of a JSON request (the value a client sets to match an
 * answer to its question), or NULL if request is NULL, not an object or has
 * none. Borrowed from request: json_incref() it to keep it past the call. */
static inline json_t *dg_util_request_id(const json_t *request)
{
	return json_is_object(request) ? json_object_get(request, "id") : NULL;
}

/* Reply to req with reply, with id (may be NULL) set as its "id" member
 * first, then drop reply. reply is consumed: the caller's reference is
 * released whatever happens (so json_pack() can be passed directly); id
 * is borrowed (the reply takes its own reference). Returns
 * host->request_reply()'s code (see dg_util_verdict() for DG_EAGAIN), or
 * DG_ENOMEM, nothing sent, if reply is NULL or id cannot be added. */
static inline int dg_util_reply_json(const struct dg_host *host, struct dg_instance *self,
                                     dg_req_t req, json_t *reply, json_t *id)
{
	struct dg_packet out = { .json = reply };
	int rc;

	if (!reply)
		return DG_ENOMEM;
	if (id && json_object_set(reply, "id", id)) {
		json_decref(reply);
		return DG_ENOMEM;
	}
	rc = host->request_reply(self, req, &out);
	json_decref(reply);
	return rc;
}

#endif /* JANSSON_H */

/* ---- a log rate limit ------------------------------------------------------ */

/* At most one line per interval, on the server's clock (host->now_ms: the
 * harness's fake clock in tests), the others counted and said in the next.
 * Zero-initialise it: struct dg_util_ratelimit rl = { 0 }. */
struct dg_util_ratelimit {
	uint64_t last_ms;              /* when the last line was allowed */
	unsigned long long suppressed; /* refused since */
	bool started;                  /* a line was allowed once */
};

/* Whether a line may be logged at now_ms. If so, *suppressed gets how many
 * were refused since the last one (then starts again from 0); if not, this
 * one is counted. */
static inline bool dg_util_ratelimit_allow(struct dg_util_ratelimit *rl, uint64_t now_ms,
                                           uint64_t interval_ms, unsigned long long *suppressed)
{
	if (rl->started && now_ms - rl->last_ms < interval_ms) {
		rl->suppressed++;
		return false;
	}
	*suppressed = rl->suppressed;
	rl->suppressed = 0;
	rl->last_ms = now_ms;
	rl->started = true;
	return true;
}

#ifdef __cplusplus
}
#endif
#endif /* DGRAMD_PLUGIN_UTIL_H */
