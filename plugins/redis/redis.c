/* redis: JSON operations on a Redis server, shared by every worker and every
 * dgramd instance that talks to it.
 *
 * Requests (JSON objects; an "id" member is echoed back in the reply):
 *   {"op": "get", "key": K}                  -> {"ok": true, "value": "V"} or
 *                                               {"ok": true, "value": null}
 *   {"op": "set", "key": K, "value": V}      -> {"ok": true}
 *       V a string or an integer; "ttl_ms": N (1 .. 2^53) expires the key
 *   {"op": "incr", "key": K}                 -> {"ok": true, "value": N}
 *       "by": N (an integer, default 1): INCRBY, atomic in Redis
 *   {"op": "del", "key": K}                  -> {"ok": true, "value": 0|1}
 * Errors are {"ok": false, "error": "..."}: "bad request: ..." (the request
 * is refused before Redis sees it), "busy" (max_inflight commands are at
 * Redis already), "redis unavailable" (not connected: answered at once),
 * "redis connection lost" (the connection dropped with the command on it),
 * "redis timeout" (no answer within timeout_ms), "timeout" (the listener's
 * handler_timeout_ms passed first), "redis: MESSAGE" (Redis refused the
 * command, e.g. incr on a value that is not an integer).
 *
 * config (redis_options, checked and filled in by the host):
 *   "server": "a.b.c.d:port" or "[ipv6]:port" ("127.0.0.1:6379")
 *   "prefix": prepended to every key ("dgramd:"; up to 256 bytes)
 *   "max_key": key bytes, without the prefix (256; 1 .. 4096)
 *   "max_value": value bytes (4096; 1 .. 65000)
 *   "max_inflight": commands at Redis at once per instance (1024;
 *                   1 .. 65536); beyond it requests get "busy" at once
 *   "timeout_ms": how long a command may wait for Redis (1000; 1 ..
 *                 3600000); keep it below the listener's handler_timeout_ms
 *   "reconnect_min_ms", "reconnect_max_ms": reconnection backoff (100,
 *                 5000; 1 .. 600000, max not below min)
 *
 * Connection. One connection per instance (per listener per worker),
 * through hiredis's libevent adapter on the worker's event base: commands
 * are pipelined on it and every request stays pending (DG_PENDING) until
 * its reply comes back. When the connection cannot be made or drops, the
 * commands on it are answered with errors, and the next attempt is made
 * after reconnect_min_ms, doubling after each failed attempt up to
 * reconnect_max_ms (a successful connect starts again from the minimum);
 * meanwhile requests are answered "redis unavailable" without waiting.
 * Redis answers in order, so the oldest command waiting is the first to
 * pass timeout_ms: when it does, Redis is stuck or too slow, and the
 * connection is dropped (its commands answered "redis timeout") and made
 * again. A request is never left waiting past timeout_ms, nor past the
 * listener's handler_timeout_ms (on_expire answers it "timeout").
 * timeout_ms and the backoff run on the server's timers and clock
 * (host->timer_start, host->now_ms): one timer for the oldest command, one
 * for the next attempt; the harness's fake clock drives them in tests.
 *
 * A request and its command. Each command at Redis has a slot, and a
 * request waiting for one holds its slot in its data slot
 * (host->request_set_data): on_expire gets it back, and the free function
 * (cmd_detach) only cuts the slot loose from the request, however the
 * request ends. The slot itself stays taken until hiredis calls back with
 * the reply (or with NULL when the connection goes), which always happens,
 * even for a request that ended long before: so hiredis's callback never
 * finds freed memory, a late reply goes nowhere, and a slot is never
 * reused while hiredis still owes it an answer. Nothing is searched for by
 * handle.
 *
 * Memory: max_inflight command slots are allocated at init; hiredis
 * allocates each command's buffer and reply. */
#define _POSIX_C_SOURCE 200809L

#include <arpa/inet.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <hiredis/hiredis.h>
#include <hiredis/async.h>
#include <hiredis/adapters/libevent.h>
#include <jansson.h>
#include <dgramd/plugin.h>
#include <dgramd/plugin-util.h>

#define REDIS_MAX_PREFIX 256
#define REDIS_MAX_KEY 4096
#define REDIS_MAX_TTL_MS (INT64_C(1) << 53)

struct redis;

/* One command at Redis, and the data slot of the request waiting for it.
 * The slot is taken until hiredis calls back, even if its request ended
 * first (req 0, cut loose by cmd_detach): the connection still owes its
 * reply. */
struct cmd {
	struct redis *r;
	dg_req_t req;              /* 0: nobody waits for the reply any more */
	json_t *id;                /* the request's "id", echoed; owned */
	uint64_t deadline_ms;      /* on the server's clock (host->now_ms) */
	struct dg_util_link link;  /* on r->sent (at Redis, oldest first) or r->free */
};

enum redis_state {
	REDIS_DOWN = 0,       /* waiting for the backoff timer */
	REDIS_CONNECTING = 1, /* commands queue on the connection */
	REDIS_UP = 2,
};

struct redis {
	const struct dg_host *host;
	struct dg_instance *self;
	struct event_base *base;
	char addr[INET6_ADDRSTRLEN];
	int port;
	char prefix[REDIS_MAX_PREFIX + 1];
	size_t prefix_len;
	unsigned max_key, max_value, max_inflight, timeout_ms;
	unsigned reconnect_min_ms, reconnect_max_ms, backoff_ms;

	redisAsyncContext *ac;     /* NULL when down */
	enum redis_state state;
	const char *lost;          /* the error for commands answered NULL */
	/* On the server's timers (the harness's fake clock in tests); the
	 * host frees each after its callback, and all of them before fini. */
	struct dg_timer *retry;    /* the next attempt, while down */
	struct dg_timer *deadline; /* the head's timeout_ms (may outlive the head) */

	struct cmd *cmds;          /* max_inflight slots */
	struct dg_util_list free;  /* slots not at Redis */
	struct dg_util_list sent;  /* at Redis, oldest first */

	struct dg_metric *m_commands, *m_errors, *m_busy, *m_reconnects, *m_connected, *m_inflight;
	struct dg_util_ratelimit warn;
};

/* The server's clock, which its timers run on. */
static uint64_t now_ms(const struct redis *r)
{
	return r->host->now_ms(r->self);
}

/* Text from Redis or hiredis, printable ASCII only, for the log. */
static const char *escape(const char *s, char *buf, size_t len)
{
	size_t o = 0;

	for (; s && *s && o + 5 < len; s++) {
		unsigned char c = (unsigned char)*s;
		if (c >= 0x20 && c < 0x7f && c != '\\')
			buf[o++] = (char)c;
		else
			o += (size_t)snprintf(buf + o, len - o, "\\x%02x", c);
	}
	buf[o] = '\0';
	return buf;
}

/* Connection trouble: one warning per second at most. */
static void warn_limited(struct redis *r, const char *what, const char *errstr)
{
	unsigned long long quiet;
	char esc[256];

	if (dg_util_ratelimit_allow(&r->warn, now_ms(r), 1000, &quiet))
		r->host->log(r->self, DG_LOG_WARN, "redis %s:%d: %s: %s (%llu similar warnings "
		             "suppressed)", r->addr, r->port, what, escape(errstr, esc, sizeof(esc)), quiet);
}

static void set_state(struct redis *r, enum redis_state s)
{
	r->state = s;
	dg_util_metric_set(r->host, r->m_connected, s == REDIS_UP);
}

/* ---- command slots ------------------------------------------------------ */

static void on_deadline(void *arg);

/* Watch the oldest command: wake in ms. The timer is left to run out when
 * the commands are answered first (on_deadline then finds none), so a
 * steady stream of commands starts one timer per timeout_ms, not one per
 * command. */
static void deadline_arm(struct redis *r, unsigned ms)
{
	r->deadline = r->host->timer_start(r->self, ms, on_deadline, r);
	if (!r->deadline) /* out of memory: handler_timeout_ms still ends requests */
		warn_limited(r, "cannot start a timer", "timeout_ms is not enforced for now");
}

static struct cmd *cmd_take(struct redis *r)
{
	struct dg_util_link *n = dg_util_list_pop(&r->free);

	return n ? DG_UTIL_ENTRY(n, struct cmd, link) : NULL;
}

/* Queue a sent command (the oldest waits longest: the deadline timer only
 * needs to watch the head). */
static void cmd_queue(struct redis *r, struct cmd *c)
{
	c->deadline_ms = now_ms(r) + r->timeout_ms;
	dg_util_list_push(&r->sent, &c->link);
	if (!r->deadline)
		deadline_arm(r, r->timeout_ms);
	dg_util_metric_set(r->host, r->m_inflight, (int64_t)r->sent.len);
}

/* hiredis has called back: the slot is free again. */
static void cmd_release(struct redis *r, struct cmd *c)
{
	dg_util_list_unlink(&r->sent, &c->link);
	json_decref(c->id); /* NULL unless the request never got its data slot */
	c->id = NULL;
	c->req = 0;
	dg_util_list_push(&r->free, &c->link);
	dg_util_metric_set(r->host, r->m_inflight, (int64_t)r->sent.len);
}

/* The oldest command at Redis, or NULL. */
static struct cmd *cmd_oldest(const struct redis *r)
{
	struct dg_util_link *n = dg_util_list_first(&r->sent);

	return n ? DG_UTIL_ENTRY(n, struct cmd, link) : NULL;
}

/* ---- replies ---------------------------------------------------------- */

/* Send reply (consumed) with id (borrowed, may be NULL). A reply the
 * amplification guard refuses (a large value for a peer that has not been
 * validated) is replaced by a small error. */
static void send_json(struct redis *r, dg_req_t req, json_t *reply, json_t *id)
{
	if (json_is_false(json_object_get(reply, "ok")))
		dg_util_metric_add(r->host, r->m_errors, 1);
	if (dg_util_reply_json(r->host, r->self, req, reply, id) == DG_EAGAIN)
		dg_util_reply_json(r->host, r->self, req,
		                   dg_util_error("reply over the amplification limit", true), id);
}

static json_t *fail(const char *msg)
{
	return dg_util_error(msg, true);
}

/* Redis's answer as our JSON reply. */
static json_t *from_redis(const struct redis *r, const redisReply *rep)
{
	json_t *v;
	char msg[256];

	if (!rep)
		return fail(r->lost);
	switch (rep->type) {
	case REDIS_REPLY_STATUS:
		return json_pack("{sb}", "ok", 1);
	case REDIS_REPLY_NIL:
		return json_pack("{sbsn}", "ok", 1, "value");
	case REDIS_REPLY_INTEGER:
		return json_pack("{sbsI}", "ok", 1, "value", (json_int_t)rep->integer);
	case REDIS_REPLY_STRING:
		v = json_stringn(rep->str, rep->len);
		if (!v)
			return fail("value is not UTF-8 text");
		return json_pack("{sbso}", "ok", 1, "value", v);
	case REDIS_REPLY_ERROR:
		snprintf(msg, sizeof(msg), "redis: %.*s", (int)rep->len, rep->str);
		return fail(msg);
	default:
		return fail("unexpected redis reply");
	}
}

/* The request ended, however (its data slot's free function): the command
 * stays at Redis, its slot taken until hiredis calls back. */
static void cmd_detach(void *data)
{
	struct cmd *c = data;

	c->req = 0;
	json_decref(c->id);
	c->id = NULL;
}

/* hiredis calls back exactly once per command: with Redis's reply, or NULL
 * when the connection goes (r->lost says why). The slot is always still
 * taken here, whether or not its request is still waiting. */
static void on_reply(redisAsyncContext *ac, void *reply, void *privdata)
{
	struct cmd *c = privdata;
	struct redis *r = c->r;
	(void)ac;

	if (c->req) {
		dg_req_t req = c->req;
		send_json(r, req, from_redis(r, reply), c->id);
		r->host->request_complete(r->self, req); /* runs cmd_detach */
	}
	cmd_release(r, c);
}

/* ---- the connection ------------------------------------------------------ */

static void conn_start(struct redis *r);

static void on_retry(void *arg);

/* Down: the next attempt in backoff_ms. If no timer can be had (out of
 * memory), the next request makes the attempt (redis_on_packet). */
static void retry_later(struct redis *r)
{
	set_state(r, REDIS_DOWN);
	r->retry = r->host->timer_start(r->self, r->backoff_ms, on_retry, r);
	if (!r->retry)
		warn_limited(r, "cannot start a timer", "reconnecting at the next request");
	r->backoff_ms = r->backoff_ms > r->reconnect_max_ms / 2 ? r->reconnect_max_ms : r->backoff_ms * 2;
}

static void on_retry(void *arg)
{
	struct redis *r = arg;

	r->retry = NULL; /* the host frees it after this call */
	dg_util_metric_add(r->host, r->m_reconnects, 1);
	/* debug only: one line per backoff interval while Redis is down */
	r->host->log(r->self, DG_LOG_DEBUG, "reconnecting to redis %s:%d", r->addr, r->port);
	conn_start(r);
}

/* hiredis frees the context after these two callbacks; callbacks of a
 * context we dropped ourselves (no longer r->ac) are ignored. */
static void on_connect(const redisAsyncContext *ac, int status)
{
	struct redis *r = ac->data;

	if (ac != r->ac)
		return;
	if (status != REDIS_OK) {
		warn_limited(r, "cannot connect", ac->errstr);
		r->ac = NULL;
		r->lost = "redis unavailable"; /* for the commands queued on it */
		retry_later(r);
		return;
	}
	r->host->log(r->self, DG_LOG_INFO, "connected to redis %s:%d", r->addr, r->port);
	r->backoff_ms = r->reconnect_min_ms;
	set_state(r, REDIS_UP);
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
	struct redis *r = ac->data;
	(void)status;

	if (ac != r->ac)
		return;
	warn_limited(r, "connection lost", ac->errstr[0] ? ac->errstr : "closed");
	r->ac = NULL;
	retry_later(r);
}

/* Drop the connection ourselves: its commands are answered `why` now. */
static void conn_drop(struct redis *r, const char *why)
{
	redisAsyncContext *ac = r->ac;

	r->ac = NULL;
	r->lost = why;
	if (ac)
		redisAsyncFree(ac); /* calls on_reply(NULL) for each command */
	r->lost = "redis connection lost";
}

static void conn_start(struct redis *r)
{
	redisAsyncContext *ac = redisAsyncConnect(r->addr, r->port);

	r->lost = "redis connection lost";
	if (!ac || ac->err) {
		warn_limited(r, "cannot connect", ac ? ac->errstr : "out of memory");
		if (ac)
			redisAsyncFree(ac);
		retry_later(r);
		return;
	}
	ac->data = r;
	if (redisLibeventAttach(ac, r->base) != REDIS_OK) {
		warn_limited(r, "cannot connect", "libevent attach failed");
		redisAsyncFree(ac);
		retry_later(r);
		return;
	}
	redisAsyncSetConnectCallback(ac, on_connect);
	redisAsyncSetDisconnectCallback(ac, on_disconnect);
	r->ac = ac;
	set_state(r, REDIS_CONNECTING);
}

/* The oldest command at Redis has waited timeout_ms: Redis is stuck or the
 * network is; start again on a new connection. */
static void on_deadline(void *arg)
{
	struct redis *r = arg;
	uint64_t now = now_ms(r);
	struct cmd *oldest = cmd_oldest(r);

	r->deadline = NULL; /* the host frees it after this call */
	if (!oldest)
		return;
	if (oldest->deadline_ms <= now) {
		warn_limited(r, "no answer", "timeout_ms passed; reconnecting");
		conn_drop(r, "redis timeout");
		retry_later(r);
		return;
	}
	deadline_arm(r, (unsigned)(oldest->deadline_ms - now));
}

/* ---- requests ------------------------------------------------------------ */

enum { F_VALUE = 1u, F_TTL = 2u, F_BY = 4u };

static const struct redis_op {
	const char *name;
	const char *command;
	unsigned fields;   /* allowed besides op, key and id */
	unsigned required;
} redis_ops[] = {
	{ "get", "GET", 0, 0 },
	{ "set", "SET", F_VALUE | F_TTL, F_VALUE },
	{ "incr", "INCRBY", F_BY, 0 },
	{ "del", "DEL", 0, 0 },
};

static const struct {
	const char *name;
	unsigned flag;
} redis_fields[] = {
	{ "op", 0 }, { "key", 0 }, { "id", 0 },
	{ "value", F_VALUE }, { "ttl_ms", F_TTL }, { "by", F_BY },
};

/* A command's arguments, built on the stack of on_packet (hiredis copies
 * them). */
struct args {
	const char *argv[5];
	size_t len[5];
	int argc;
	char key[REDIS_MAX_PREFIX + REDIS_MAX_KEY];
	char num[2][24];
};

static const struct redis_op *find_op(const json_t *req, const char **err)
{
	const char *name = json_string_value(json_object_get(req, "op"));

	if (!name) {
		*err = "bad request: \"op\" must be get, set, incr or del";
		return NULL;
	}
	for (size_t i = 0; i < sizeof(redis_ops) / sizeof(redis_ops[0]); i++)
		if (!strcmp(name, redis_ops[i].name))
			return &redis_ops[i];
	*err = "bad request: \"op\" must be get, set, incr or del";
	return NULL;
}

/* The members present, as F_* flags; *err if one is unknown. */
static unsigned present_fields(const json_t *req, const char **err)
{
	const char *name;
	json_t *v;
	unsigned flags = 0;

	json_object_foreach((json_t *)req, name, v) {
		size_t i;
		for (i = 0; i < sizeof(redis_fields) / sizeof(redis_fields[0]); i++)
			if (!strcmp(name, redis_fields[i].name))
				break;
		if (i == sizeof(redis_fields) / sizeof(redis_fields[0])) {
			*err = "bad request: unknown member (known: op, key, value, ttl_ms, by, id)";
			return 0;
		}
		flags |= redis_fields[i].flag;
	}
	return flags;
}

static const char *arg_key(const struct redis *r, const json_t *req, struct args *a)
{
	const json_t *key = json_object_get(req, "key");

	if (!json_is_string(key) || json_string_length(key) == 0)
		return "bad request: \"key\" must be a non-empty string";
	if (json_string_length(key) > r->max_key)
		return "bad request: key too long (max_key)";
	memcpy(a->key, r->prefix, r->prefix_len);
	memcpy(a->key + r->prefix_len, json_string_value(key), json_string_length(key));
	a->argv[1] = a->key;
	a->len[1] = r->prefix_len + json_string_length(key);
	a->argc = 2;
	return NULL;
}

static void arg_int(struct args *a, unsigned slot, long long v)
{
	int n = snprintf(a->num[slot], sizeof(a->num[slot]), "%lld", v);

	a->argv[a->argc] = a->num[slot];
	a->len[a->argc++] = (size_t)n;
}

static const char *arg_value(const struct redis *r, const json_t *req, struct args *a)
{
	const json_t *v = json_object_get(req, "value");
	const json_t *ttl = json_object_get(req, "ttl_ms");

	if (json_is_integer(v)) {
		arg_int(a, 0, json_integer_value(v));
	} else if (json_is_string(v)) {
		if (json_string_length(v) > r->max_value)
			return "bad request: value too long (max_value)";
		a->argv[a->argc] = json_string_value(v);
		a->len[a->argc++] = json_string_length(v);
	} else {
		return "bad request: \"value\" must be a string or an integer";
	}
	if (!ttl)
		return NULL;
	if (!json_is_integer(ttl) || json_integer_value(ttl) < 1 ||
	    json_integer_value(ttl) > REDIS_MAX_TTL_MS)
		return "bad request: \"ttl_ms\" must be an integer from 1 to 2^53";
	a->argv[a->argc] = "PX";
	a->len[a->argc++] = 2;
	arg_int(a, 1, json_integer_value(ttl));
	return NULL;
}

/* Check req and build its command in a; NULL or the error to answer. */
static const char *build(const struct redis *r, const json_t *req, struct args *a)
{
	const char *err = NULL;
	const struct redis_op *op;
	unsigned fields;

	if (!json_is_object(req))
		return "bad request: expected a JSON object";
	if (!(op = find_op(req, &err)))
		return err;
	fields = present_fields(req, &err);
	if (err)
		return err;
	if (fields & ~op->fields)
		return "bad request: a member that this op does not take";
	if ((fields & op->required) != op->required)
		return "bad request: set needs a \"value\"";
	if ((err = arg_key(r, req, a)))
		return err;
	a->argv[0] = op->command;
	a->len[0] = strlen(op->command);
	if (op->fields & F_VALUE)
		return arg_value(r, req, a);
	if (op->fields & F_BY) {
		const json_t *by = json_object_get(req, "by");
		if (by && !json_is_integer(by))
			return "bad request: \"by\" must be an integer";
		arg_int(a, 0, by ? json_integer_value(by) : 1);
	}
	return NULL;
}

static int redis_on_packet(void *state, const struct dg_request *req)
{
	struct redis *r = state;
	const json_t *j = req->packet.json;
	json_t *id = dg_util_request_id(j);
	struct args a;
	const char *err = build(r, j, &a);
	struct cmd *c = NULL;

	if (!err && !r->ac && r->state == REDIS_DOWN && !r->retry)
		conn_start(r); /* retry_later found no timer */
	if (!err && !r->ac)
		err = "redis unavailable";
	if (!err && !(c = cmd_take(r))) {
		dg_util_metric_add(r->host, r->m_busy, 1);
		err = "busy";
	}
	if (err) {
		send_json(r, req->handle, fail(err), id);
		return DG_DONE;
	}
	if (redisAsyncCommandArgv(r->ac, on_reply, c, a.argc, a.argv, a.len) != REDIS_OK) {
		dg_util_list_push(&r->free, &c->link);
		send_json(r, req->handle, fail("redis unavailable"), id);
		return DG_DONE;
	}
	c->req = req->handle;
	c->id = json_incref(id);
	cmd_queue(r, c);
	dg_util_metric_add(r->host, r->m_commands, 1);
	/* Cannot fail for the request being delivered; if it did, the reply
	 * would still come to a generation-checked handle (DG_ESTALE). */
	r->host->request_set_data(r->self, req->handle, c, cmd_detach);
	return DG_PENDING;
}

/* The listener's handler_timeout_ms passed first: answer now. cmd_detach
 * runs after the call; the slot stays taken until Redis answers or the
 * connection is dropped. */
static void redis_on_expire(void *state, dg_req_t req, void *data)
{
	struct redis *r = state;
	const struct cmd *c = data;

	send_json(r, req, fail("timeout"), c ? c->id : NULL);
}

static int redis_on_error(void *state, const struct dg_request *req,
                          const struct dg_parse_error *err)
{
	struct redis *r = state;
	(void)err;

	send_json(r, req->handle, fail("bad request: not JSON"), NULL);
	return DG_DONE;
}

/* ---- life cycle ---------------------------------------------------------- */

static void redis_fini(void *state)
{
	struct redis *r = state;

	if (!r)
		return;
	/* The server has ended every request (cmd_detach ran for each) and
	 * cancelled our timers: hiredis calls back with NULL for each command,
	 * which frees its slot. */
	r->retry = r->deadline = NULL;
	conn_drop(r, "redis connection lost");
	free(r->cmds);
	free(r);
}

/* The config, filled in by the host (host->options). */
struct redis_opts {
	struct dg_option_addr server;
	const char *prefix;
	int64_t max_key, max_value, max_inflight, timeout_ms;
	int64_t reconnect_min_ms, reconnect_max_ms;
};

#define O(field) offsetof(struct redis_opts, field)
static const struct dg_option redis_options[] = {
	{ .name = "server", .type = DG_OPT_ADDR, .offset = O(server), .def = "\"127.0.0.1:6379\"",
	  .help = "the Redis server (numeric address and port)" },
	{ .name = "prefix", .type = DG_OPT_STRING, .offset = O(prefix), .def = "\"dgramd:\"",
	  .min = 0, .max = REDIS_MAX_PREFIX, .help = "prepended to every key" },
	{ .name = "max_key", .type = DG_OPT_INT, .offset = O(max_key), .def = "256",
	  .min = 1, .max = REDIS_MAX_KEY, .help = "key bytes, without the prefix" },
	{ .name = "max_value", .type = DG_OPT_INT, .offset = O(max_value), .def = "4096",
	  .min = 1, .max = 65000, .help = "value bytes" },
	{ .name = "max_inflight", .type = DG_OPT_INT, .offset = O(max_inflight), .def = "1024",
	  .min = 1, .max = 65536, .help = "commands at Redis at once (more get \"busy\")" },
	{ .name = "timeout_ms", .type = DG_OPT_INT, .offset = O(timeout_ms), .def = "1000",
	  .min = 1, .max = 3600000, .help = "how long a command may wait for Redis's answer" },
	{ .name = "reconnect_min_ms", .type = DG_OPT_INT, .offset = O(reconnect_min_ms), .def = "100",
	  .min = 1, .max = 600000, .help = "first reconnection delay (doubles per failed attempt)" },
	{ .name = "reconnect_max_ms", .type = DG_OPT_INT, .offset = O(reconnect_max_ms), .def = "5000",
	  .min = 1, .max = 600000, .help = "longest reconnection delay (not below reconnect_min_ms)" },
	{ .name = NULL },
};
#undef O

/* The options into r; what only the plugin can check (two keys together). */
static int redis_configure(struct redis *r, const struct redis_opts *o)
{
	const struct sockaddr *sa = (const struct sockaddr *)&o->server.addr;
	const void *ip;

	if (o->reconnect_max_ms < o->reconnect_min_ms) {
		r->host->log(r->self, DG_LOG_ERROR, "config.reconnect_max_ms: %lld is below "
		             "reconnect_min_ms (%lld)", (long long)o->reconnect_max_ms,
		             (long long)o->reconnect_min_ms);
		return DG_EINVAL;
	}
	if (sa->sa_family == AF_INET6) {
		ip = &((const struct sockaddr_in6 *)sa)->sin6_addr;
		r->port = ntohs(((const struct sockaddr_in6 *)sa)->sin6_port);
	} else {
		ip = &((const struct sockaddr_in *)sa)->sin_addr;
		r->port = ntohs(((const struct sockaddr_in *)sa)->sin_port);
	}
	inet_ntop(sa->sa_family, ip, r->addr, sizeof(r->addr));
	r->prefix_len = strlen(o->prefix);
	memcpy(r->prefix, o->prefix, r->prefix_len + 1);
	r->max_key = (unsigned)o->max_key;
	r->max_value = (unsigned)o->max_value;
	r->max_inflight = (unsigned)o->max_inflight;
	r->timeout_ms = (unsigned)o->timeout_ms;
	r->reconnect_min_ms = (unsigned)o->reconnect_min_ms;
	r->reconnect_max_ms = (unsigned)o->reconnect_max_ms;
	r->backoff_ms = r->reconnect_min_ms;
	return DG_OK;
}

/* The command slots, all allocated once. */
static int redis_alloc(struct redis *r)
{
	r->cmds = calloc(r->max_inflight, sizeof(*r->cmds));
	if (!r->cmds) {
		r->host->log(r->self, DG_LOG_ERROR, "out of memory for max_inflight %u", r->max_inflight);
		return DG_ENOMEM;
	}
	for (unsigned i = 0; i < r->max_inflight; i++) {
		r->cmds[i].r = r;
		dg_util_list_push(&r->free, &r->cmds[i].link);
	}
	return DG_OK;
}

static const struct {
	const char *name, *help;
	int kind;
	size_t offset;
} redis_metrics[] = {
	{ "commands", "Commands sent to Redis", DG_METRIC_COUNTER, offsetof(struct redis, m_commands) },
	{ "errors", "Error replies (bad requests, busy, Redis down, slow or refusing)",
	  DG_METRIC_COUNTER, offsetof(struct redis, m_errors) },
	{ "busy", "Requests refused: max_inflight commands at Redis", DG_METRIC_COUNTER,
	  offsetof(struct redis, m_busy) },
	{ "reconnects", "Connection attempts after the first", DG_METRIC_COUNTER,
	  offsetof(struct redis, m_reconnects) },
	{ "connected", "1 while connected to Redis", DG_METRIC_GAUGE, offsetof(struct redis, m_connected) },
	{ "inflight", "Commands at Redis", DG_METRIC_GAUGE, offsetof(struct redis, m_inflight) },
};

static void redis_publish(struct redis *r)
{
	for (size_t i = 0; i < sizeof(redis_metrics) / sizeof(redis_metrics[0]); i++)
		*(struct dg_metric **)((char *)r + redis_metrics[i].offset) =
			dg_util_metric_new(r->host, r->self, redis_metrics[i].name, redis_metrics[i].help,
			                   redis_metrics[i].kind);
}

static int redis_init(struct dg_instance *self, const struct dg_host *host,
                      const json_t *config, void **state)
{
	const struct redis_opts *o = dg_util_options(self, host);
	struct redis *r;
	int rc;
	(void)config; /* checked and filled in by the host: o */

	*state = NULL;
	if (!o)
		return DG_EINVAL;
	if (!(r = calloc(1, sizeof(*r))))
		return DG_ENOMEM;
	dg_util_list_init(&r->free);
	dg_util_list_init(&r->sent);
	r->host = host;
	r->self = self;
	r->base = host->event_base(self);
	if ((rc = redis_configure(r, o)) || (rc = redis_alloc(r))) {
		redis_fini(r);
		return rc;
	}
	redis_publish(r);
	conn_start(r);
	*state = r;
	return DG_OK;
}

DG_PLUGIN_EXPORT const struct dg_plugin dgramd_plugin = {
	DG_PLUGIN_HEADER,
	.name = "redis",
	.version = "1.1",
	.init = redis_init,
	.fini = redis_fini,
	.on_packet = redis_on_packet,
	.on_error = redis_on_error,
	.options = redis_options,
	.options_size = sizeof(struct redis_opts),
	.on_expire = redis_on_expire,
};
