/* Config loading: comments, syntax errors with line and column, and
 * directive tables (directive.h) whose types parse each value, report
 * errors with the key path and dump it back for -T. */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <libgen.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <dgramd/codec.h>

#include "addr.h"
#include "conf.h"
#include "directive.h"
#include "jsonload.h"
#include "log.h"
#include "privs.h"

/* Integers in [d->lo, d->hi]: t_uint into an unsigned, t_int an int,
 * t_size a size_t (a number of bytes). */
static const struct dg_directive_type t_uint, t_int, t_size;

static int set_integer(struct dg_directive_ctx *c, json_t *v, void *obj,
                       const struct dg_directive *d)
{
	json_int_t n = json_is_integer(v) ? json_integer_value(v) : 0;
	void *f = dg_directive_field(obj, d);

	if (!json_is_integer(v) || n < d->lo || n > d->hi)
		return dg_directive_fail(c, "expected %s from %lld to %lld",
		                         d->type == &t_size ? "a number of bytes" : "an integer",
		                         d->lo, d->hi);
	if (d->type == &t_size)
		*(size_t *)f = (size_t)n;
	else if (d->type == &t_int)
		*(int *)f = (int)n;
	else
		*(unsigned *)f = (unsigned)n;
	return DG_OK;
}

static json_t *get_integer(struct dg_directive_ctx *c, const void *obj,
                           const struct dg_directive *d)
{
	const void *f = dg_directive_cfield(obj, d);
	(void)c;

	if (d->type == &t_size)
		return json_integer((json_int_t)*(const size_t *)f);
	return json_integer(d->type == &t_int ? *(const int *)f : (json_int_t)*(const unsigned *)f);
}

static const struct dg_directive_type t_uint = { set_integer, get_integer };
static const struct dg_directive_type t_int = { set_integer, get_integer };
static const struct dg_directive_type t_size = { set_integer, get_integer };

static int set_string(struct dg_directive_ctx *c, json_t *v, void *obj,
                      const struct dg_directive *d)
{
	char **dst = (char **)((char *)obj + d->off);

	if (!json_is_string(v) || json_string_length(v) == 0)
		return dg_directive_fail(c, "expected a non-empty string");
	if (strlen(json_string_value(v)) != json_string_length(v))
		return dg_directive_fail(c, "NUL byte in string");
	free(*dst);
	*dst = strdup(json_string_value(v));
	if (!*dst)
		return dg_directive_fail(c, "out of memory");
	return DG_OK;
}

static json_t *get_string(struct dg_directive_ctx *c, const void *obj, const struct dg_directive *d)
{
	(void)c;
	const char *s = *(char *const *)((const char *)obj + d->off);
	return s ? json_string(s) : json_null();
}

static const struct dg_directive_type t_string = { set_string, get_string };

static int set_level(struct dg_directive_ctx *c, json_t *v, void *obj,
                     const struct dg_directive *d)
{
	int lvl = json_is_string(v) ? dg_log_level_parse(json_string_value(v)) : -1;

	if (lvl < 0)
		return dg_directive_fail(c, "expected \"error\", \"warn\", \"info\" or \"debug\"");
	*(int *)((char *)obj + d->off) = lvl;
	return DG_OK;
}

static json_t *get_level(struct dg_directive_ctx *c, const void *obj, const struct dg_directive *d)
{
	(void)c;
	static const char *const names[] = { "error", "warn", "info", "debug" };
	int lvl = *(const int *)((const char *)obj + d->off);
	return json_string(names[lvl >= 0 && lvl <= 3 ? lvl : 2]);
}

static const struct dg_directive_type t_level = { set_level, get_level };

/* A string from a fixed list, stored as its index (d->lo is unused). */
static int set_choice(struct dg_directive_ctx *c, json_t *v, void *obj,
                    const struct dg_directive *d,
                      const char *const *choices)
{
	for (unsigned i = 0; json_is_string(v) && choices[i]; i++) {
		if (!strcmp(json_string_value(v), choices[i])) {
			*(unsigned *)((char *)obj + d->off) = i;
			return DG_OK;
		}
	}
	return dg_directive_fail(c, "expected \"%s\" or \"%s\"", choices[0], choices[1]);
}

static int set_ordering(struct dg_directive_ctx *c, json_t *v, void *obj,
                        const struct dg_directive *d)
{
	static const char *const choices[] = { "none", "peer", NULL };
	unsigned i;
	struct dg_directive tmp = *d;

	tmp.off = 0;
	int rc = set_choice(c, v, &i, &tmp, choices);
	if (!rc)
		*(bool *)((char *)obj + d->off) = i == 1;
	return rc;
}

static json_t *get_ordering(struct dg_directive_ctx *c, const void *obj,
                            const struct dg_directive *d)
{
	(void)c;
	return json_string(*(const bool *)((const char *)obj + d->off) ? "peer" : "none");
}

static const struct dg_directive_type t_ordering = { set_ordering, get_ordering };

static int set_drop_policy(struct dg_directive_ctx *c, json_t *v, void *obj,
                           const struct dg_directive *d)
{
	static const char *const choices[] = { "drop-newest", "drop-oldest", NULL };
	return set_choice(c, v, obj, d, choices);
}

static json_t *get_drop_policy(struct dg_directive_ctx *c, const void *obj,
                               const struct dg_directive *d)
{
	(void)c;
	return json_string(*(const unsigned *)((const char *)obj + d->off) ? "drop-oldest"
	                                                                  : "drop-newest");
}

static const struct dg_directive_type t_drop_policy = { set_drop_policy, get_drop_policy };

/* "stderr", "syslog" or an absolute file path. */
static int set_log_target(struct dg_directive_ctx *c, json_t *v, void *obj,
                          const struct dg_directive *d)
{
	const char *t = json_is_string(v) ? json_string_value(v) : "";
	char **dst = (char **)((char *)obj + d->off);

	if (strcmp(t, "stderr") && strcmp(t, "syslog") && t[0] != '/')
		return dg_directive_fail(c, "expected \"stderr\", \"syslog\" or an absolute file path");
	free(*dst);
	*dst = strcmp(t, "stderr") ? strdup(t) : NULL;
	if (strcmp(t, "stderr") && !*dst)
		return dg_directive_fail(c, "out of memory");
	return DG_OK;
}

static json_t *get_log_target(struct dg_directive_ctx *c, const void *obj,
                              const struct dg_directive *d)
{
	const struct dg_config *cfg = obj;
	(void)c, (void)d;
	return json_string(cfg->log_target ? cfg->log_target : "stderr");
}

static const struct dg_directive_type t_log_target = { set_log_target, get_log_target };

static const struct dg_directive log_directives[] = {
	{ "level", &t_level, offsetof(struct dg_config, log_level), 0, 0, false, NULL },
	{ "target", &t_log_target, offsetof(struct dg_config, log_target), 0, 0, false, NULL },
	{ "syslog_socket", &t_string, offsetof(struct dg_config, log_syslog_socket), 0, 0, false, NULL },
	{ NULL, NULL, 0, 0, 0, false, NULL },
};

static int set_binds(struct dg_directive_ctx *c, json_t *v, void *obj,
                     const struct dg_directive *d)
{
	struct dg_listener_conf *l = obj;
	size_t n = json_is_array(v) ? json_array_size(v) : 1;
	(void)d;

	if (!json_is_string(v) && !(json_is_array(v) && n > 0))
		return dg_directive_fail(c, "expected \"host:port\" or a non-empty array of them");
	if (n > 64)
		return dg_directive_fail(c, "at most 64 addresses per listener");
	l->binds = calloc(n, sizeof(*l->binds));
	if (!l->binds)
		return dg_directive_fail(c, "out of memory");
	for (size_t i = 0; i < n; i++) {
		json_t *a = json_is_array(v) ? json_array_get(v, i) : v;
		size_t saved = json_is_array(v) ? dg_directive_push_index(c, i) : c->plen;
		if (!json_is_string(a) || !dg_addr_parse(json_string_value(a), &l->binds[i]))
			return dg_directive_fail(c, "expected a numeric \"a.b.c.d:port\" or \"[ipv6]:port\"%s%s%s",
			                         json_is_string(a) ? ", got '" : "",
			                         json_is_string(a) ? json_string_value(a) : "",
			                         json_is_string(a) ? "'" : "");
		l->n_binds++;
		dg_directive_pop(c, saved);
	}
	return DG_OK;
}

/* A JSON array of n values, the i-th from at(c, obj, i); NULL if one is. */
static json_t *dump_array(struct dg_directive_ctx *c, const void *obj, unsigned n,
                         json_t *(*at)(struct dg_directive_ctx *c, const void *obj, unsigned i))
{
	json_t *a = json_array();

	for (unsigned i = 0; a && i < n; i++)
		if (json_array_append_new(a, at(c, obj, i))) {
			json_decref(a);
			return NULL;
		}
	return a;
}

static json_t *bind_at(struct dg_directive_ctx *c, const void *obj, unsigned i)
{
	const struct dg_listener_conf *l = obj;
	char buf[64];
	(void)c;

	return json_string(dg_addr_format((const struct sockaddr *)&l->binds[i].ss, buf, sizeof(buf)));
}

static json_t *get_binds(struct dg_directive_ctx *c, const void *obj, const struct dg_directive *d)
{
	const struct dg_listener_conf *l = obj;
	(void)d;
	return dump_array(c, l, l->n_binds, bind_at);
}

static const struct dg_directive_type t_binds = { set_binds, get_binds };

static int set_codec(struct dg_directive_ctx *c, json_t *v, void *obj,
                     const struct dg_directive *d)
{
	struct dg_listener_conf *l = obj;
	struct dg_codec *codec;
	char err[256];
	(void)d;

	/* Build it once to validate every option; the server builds its own. */
	if (dg_codec_new(v, &codec, err, sizeof(err))) {
		snprintf(c->err, c->errlen, "%s: %s%s", c->where, c->path, err);
		return DG_EINVAL;
	}
	dg_codec_free(codec);
	json_decref(l->codec);
	l->codec = json_incref(v);
	return DG_OK;
}

static json_t *get_codec(struct dg_directive_ctx *c, const void *obj, const struct dg_directive *d)
{
	const struct dg_listener_conf *l = obj;
	struct dg_codec *codec;
	char err[256];
	(void)c;
	(void)d;

	/* The transforms with their defaults, as the server builds them (for
	 * max_datagram); a spec that no longer builds (a key file gone since
	 * it was read) is shown as written. */
	if (!json_is_object(l->codec) || !json_object_get(l->codec, "transforms") ||
	    dg_codec_new_sized(l->codec, l->max_datagram, &codec, err, sizeof(err)))
		return json_deep_copy(l->codec);
	json_t *out = dg_codec_describe(codec, l->codec);
	dg_codec_free(codec);
	return out;
}

static const struct dg_directive_type t_codec = { set_codec, get_codec };

static int set_plugin_config(struct dg_directive_ctx *c, json_t *v, void *obj,
                             const struct dg_directive *d)
{
	struct dg_listener_conf *l = obj;
	(void)d;

	if (!json_is_object(v))
		return dg_directive_fail(c, "expected an object (the plugin's own settings)");
	json_decref(l->plugin_config);
	l->plugin_config = json_incref(v);
	return DG_OK;
}

/* What the plugin got (every option it declares, defaults filled in) if the
 * check has filled plugin_shown, else as given, else {}. */
static json_t *get_plugin_config(struct dg_directive_ctx *c, const void *obj,
                                 const struct dg_directive *d)
{
	const struct dg_listener_conf *l = obj;
	(void)c, (void)d;

	if (l->plugin_shown || l->plugin_config)
		return json_deep_copy(l->plugin_shown ? l->plugin_shown : l->plugin_config);
	return json_object();
}

static const struct dg_directive_type t_plugin_config = { set_plugin_config, get_plugin_config };

static const struct dg_directive handler_directives[] = {
	{ "plugin", &t_string, offsetof(struct dg_listener_conf, plugin), 0, 0, true, NULL },
	{ "config", &t_plugin_config, 0, 0, 0, false, NULL },
	{ NULL, NULL, 0, 0, 0, false, NULL },
};

static int set_handler(struct dg_directive_ctx *c, json_t *v, void *obj,
                       const struct dg_directive *d)
{
	(void)d;
	if (json_is_string(v)) /* "handler": "echo" is short for {"plugin": "echo"} */
		return set_string(c, v, obj, &handler_directives[0]);
	return dg_directive_apply(c, v, obj, handler_directives);
}

static json_t *get_handler(struct dg_directive_ctx *c, const void *obj,
                           const struct dg_directive *d)
{
	(void)d;
	return dg_directive_dump(c, obj, handler_directives);
}

static const struct dg_directive_type t_handler = { set_handler, get_handler };

/* "allow" / "deny": a non-empty array of CIDRs, into the dg_ipset at d->off. */
static int set_cidrs(struct dg_directive_ctx *c, json_t *v, void *obj,
                     const struct dg_directive *d)
{
	struct dg_ipset *set = (struct dg_ipset *)((char *)obj + d->off);
	char why[128];
	struct dg_cidr cidr;

	if (!json_is_array(v) || json_array_size(v) == 0)
		return dg_directive_fail(c, "expected a non-empty array of CIDRs (\"10.0.0.0/8\", \"2001:db8::/32\", "
		                         "\"192.0.2.1\")");
	if (json_array_size(v) > (size_t)d->hi)
		return dg_directive_fail(c, "at most %lld CIDRs", d->hi);
	for (size_t i = 0; i < json_array_size(v); i++) {
		json_t *e = json_array_get(v, i);
		size_t saved = dg_directive_push_index(c, i);
		if (!json_is_string(e))
			return dg_directive_fail(c, "expected a CIDR string");
		/* jansson refuses \u0000 in strings (no JSON_ALLOW_NUL) */
		if (dg_cidr_parse(json_string_value(e), &cidr, why, sizeof(why)))
			return dg_directive_fail(c, "'%.64s' is not a CIDR: %s", json_string_value(e), why);
		if (dg_ipset_add(set, &cidr))
			return dg_directive_fail(c, "out of memory");
		dg_directive_pop(c, saved);
	}
	/* The lists as written, for -T (the set keeps merged ranges). */
	struct dg_listener_conf *l = obj;
	json_t **spec = d->off == offsetof(struct dg_listener_conf, acl.allow) ? &l->allow_spec
	                                                                       : &l->deny_spec;
	json_decref(*spec);
	*spec = json_incref(v);
	return DG_OK;
}

static json_t *get_cidrs(struct dg_directive_ctx *c, const void *obj, const struct dg_directive *d)
{
	const struct dg_listener_conf *l = obj;
	json_t *spec = d->off == offsetof(struct dg_listener_conf, acl.allow) ? l->allow_spec
	                                                                     : l->deny_spec;
	(void)c;
	return spec ? json_deep_copy(spec) : json_null();
}

static const struct dg_directive_type t_cidrs = { set_cidrs, get_cidrs };

/* Datagrams per second, an integer or a real (0.5: one every two seconds),
 * stored as tokens per millisecond (see throttle.h). */
static int set_rate(struct dg_directive_ctx *c, json_t *v, void *obj,
                    const struct dg_directive *d)
{
	double r = json_number_value(v);

	if (!json_is_number(v) || !(r >= 0.001 && r <= (double)d->hi))
		return dg_directive_fail(c, "expected datagrams per second, from 0.001 to %lld", d->hi);
	*(uint64_t *)((char *)obj + d->off) = (uint64_t)(r * 1000.0 + 0.5);
	return DG_OK;
}

static json_t *get_rate(struct dg_directive_ctx *c, const void *obj, const struct dg_directive *d)
{
	(void)c;
	return json_real((double)*(const uint64_t *)((const char *)obj + d->off) / 1000.0);
}

static const struct dg_directive_type t_rate = { set_rate, get_rate };

static int set_pow2(struct dg_directive_ctx *c, json_t *v, void *obj,
                    const struct dg_directive *d)
{
	json_int_t n = json_is_integer(v) ? json_integer_value(v) : 0;

	if (n < d->lo || n > d->hi || (n & (n - 1)))
		return dg_directive_fail(c, "expected a power of two from %lld to %lld", d->lo, d->hi);
	*(unsigned *)((char *)obj + d->off) = (unsigned)n;
	return DG_OK;
}

static const struct dg_directive_type t_pow2 = { set_pow2, get_integer };

#define T(field) offsetof(struct dg_throttle_conf, field)
static const struct dg_directive per_source_directives[] = {
	{ "rate", &t_rate, T(per_source.rate_u), 0, 100000000, true, NULL },
	{ "burst", &t_uint, T(per_source.burst), 1, 1000000, true, NULL },
	{ "ipv6_prefix", &t_uint, T(ipv6_prefix), 1, 128, false, NULL },
	{ "table_size", &t_pow2, T(table_size), 16, 1 << 24, false, NULL },
	{ NULL, NULL, 0, 0, 0, false, NULL },
};

static const struct dg_directive total_directives[] = {
	{ "rate", &t_rate, T(total.rate_u), 0, 100000000, true, NULL },
	{ "burst", &t_uint, T(total.burst), 1, 1000000, true, NULL },
	{ NULL, NULL, 0, 0, 0, false, NULL },
};
#undef T

/* A rate limit part (per_source, total): its keys (arg) on the throttle
 * conf; shown only if it is on (the dg_limit_conf at d->off has a rate). */
static int set_limit(struct dg_directive_ctx *c, json_t *v, void *obj,
                     const struct dg_directive *d)
{
	return dg_directive_apply(c, v, obj, d->arg);
}

static json_t *get_limit(struct dg_directive_ctx *c, const void *obj, const struct dg_directive *d)
{
	const struct dg_limit_conf *lc = dg_directive_cfield(obj, d);
	return lc->rate_u ? dg_directive_dump(c, obj, d->arg) : json_null();
}

static const struct dg_directive_type t_limit = { set_limit, get_limit };

static const struct dg_directive rate_limit_directives[] = {
	{ "per_source", &t_limit, offsetof(struct dg_throttle_conf, per_source), 0, 0, false,
	  per_source_directives },
	{ "total", &t_limit, offsetof(struct dg_throttle_conf, total), 0, 0, false, total_directives },
	{ NULL, NULL, 0, 0, 0, false, NULL },
};

static int set_rate_limit(struct dg_directive_ctx *c, json_t *v, void *obj,
                          const struct dg_directive *d)
{
	struct dg_throttle_conf *t = (struct dg_throttle_conf *)((char *)obj + d->off);
	int rc = dg_directive_apply(c, v, t, rate_limit_directives);

	if (!rc && !dg_throttle_conf_active(t))
		return dg_directive_fail(c, "expected \"per_source\", \"total\" or both");
	return rc;
}

static json_t *get_rate_limit(struct dg_directive_ctx *c, const void *obj,
                              const struct dg_directive *d)
{
	const struct dg_throttle_conf *t = (const void *)((const char *)obj + d->off);
	return dg_throttle_conf_active(t) ? dg_directive_dump(c, t, rate_limit_directives) : json_null();
}

static const struct dg_directive_type t_rate_limit = { set_rate_limit, get_rate_limit };

/* A listener name goes into every log and stats line about it: letters,
 * digits, '_', '.', '-' only, so it can forge neither a line nor a
 * key=value pair. */
static int set_name(struct dg_directive_ctx *c, json_t *v, void *obj,
                    const struct dg_directive *d)
{
	const char *s = json_is_string(v) ? json_string_value(v) : NULL;
	size_t len = s ? json_string_length(v) : 0;
	char shown[64];

	if (s && len <= DG_LISTENER_NAME_MAX && strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
	    "abcdefghijklmnopqrstuvwxyz0123456789_.-") == len && len > 0)
		return set_string(c, v, obj, d);
	return dg_directive_fail(c, "expected 1 to %d letters, digits, '_', '.' or '-'%s%s%s",
	                         DG_LISTENER_NAME_MAX, s ? ", got '" : "",
	                         s ? dg_log_escape(s, len, shown, sizeof(shown)) : "", s ? "'" : "");
}

static const struct dg_directive_type t_name = { set_name, get_string };

/* A key that was a setting once: refused with what replaced it, so that an
 * old config says what to delete rather than "unknown key". */
static int set_gone_reuseport(struct dg_directive_ctx *c, json_t *v, void *obj,
                              const struct dg_directive *d)
{
	(void)v, (void)obj, (void)d;
	return dg_directive_fail(c, "no longer a setting: every socket has SO_REUSEPORT (delete the key)");
}

/* A refused key (set_gone_*) has nothing to show. */
static json_t *get_gone(struct dg_directive_ctx *c, const void *obj, const struct dg_directive *d)
{
	(void)c, (void)obj, (void)d;
	return json_null();
}

static const struct dg_directive_type t_gone_reuseport = { set_gone_reuseport, get_gone };

#define L(field) offsetof(struct dg_listener_conf, field)
static const struct dg_directive amplification_directives[] = {
	{ "factor", &t_uint, L(amp_factor), 0, 1000000, false, NULL },
	{ NULL, NULL, 0, 0, 0, false, NULL },
};

static const struct dg_directive listener_directives[] = {
	{ "name", &t_name, L(name), 0, 0, true, NULL },
	{ "bind", &t_binds, 0, 0, 0, true, NULL },
	{ "codec", &t_codec, 0, 0, 0, false, NULL },
	{ "handler", &t_handler, 0, 0, 0, true, NULL },
	{ "max_datagram", &t_uint, L(max_datagram), 1, 65507, false, NULL },
	{ "send_queue", &t_uint, L(send_queue), 0, 1 << 20, false, NULL },
	{ "rcvbuf", &t_int, L(rcvbuf), 0, 1 << 30, false, NULL },
	{ "sndbuf", &t_int, L(sndbuf), 0, 1 << 30, false, NULL },
	{ "reuseport", &t_gone_reuseport, 0, 0, 0, false, NULL },
	{ "ordering", &t_ordering, L(ordering), 0, 0, false, NULL },
	{ "peer_queue", &t_uint, L(peer_queue), 0, 65536, false, NULL },
	{ "peer_concurrency", &t_uint, L(peer_concurrency), 1, 65536, false, NULL },
	{ "drop_policy", &t_drop_policy, L(drop_policy), 0, 0, false, NULL },
	{ "queue_bytes", &t_uint, L(queue_bytes), 0, 1u << 30, false, NULL },
	{ "max_peers", &t_uint, L(max_peers), 1, 1 << 24, false, NULL },
	{ "max_unvalidated_peers", &t_uint, L(max_unvalidated_peers), 1, 1 << 24, false, NULL },
	{ "session_idle_ms", &t_uint, L(session_idle_ms), 10, 86400000, false, NULL },
	{ "handler_timeout_ms", &t_uint, L(handler_timeout_ms), 0, 3600000, false, NULL },
	{ "amplification", &dg_directive_object, 0, 0, 0, false, amplification_directives },
	{ "max_replies_per_request", &t_uint, L(max_replies), 1, 1 << 20, false, NULL },
	{ "allow", &t_cidrs, L(acl.allow), 0, 1 << 20, false, NULL },
	{ "deny", &t_cidrs, L(acl.deny), 0, 1 << 20, false, NULL },
	{ "rate_limit", &t_rate_limit, L(rate_limit), 0, 0, false, NULL },
	{ NULL, NULL, 0, 0, 0, false, NULL },
};
#undef L

static bool is_any(const struct dg_addr *a)
{
	if (a->ss.ss_family == AF_INET6)
		return IN6_IS_ADDR_UNSPECIFIED(&((const struct sockaddr_in6 *)&a->ss)->sin6_addr);
	return ((const struct sockaddr_in *)&a->ss)->sin_addr.s_addr == htonl(INADDR_ANY);
}

/* Would binding both fail (or, with SO_REUSEPORT, silently share the
 * datagrams)? The same family and port, and the same address or one of
 * them the wildcard. Port 0 asks the kernel for a fresh port each time.
 * The port sits at the same offset in sockaddr_in and sockaddr_in6. */
static bool addr_clash(const struct dg_addr *a, const struct dg_addr *b)
{
	in_port_t pa = ((const struct sockaddr_in *)&a->ss)->sin_port;

	if (a->ss.ss_family != b->ss.ss_family || pa == 0 ||
	    pa != ((const struct sockaddr_in *)&b->ss)->sin_port)
		return false;
	return is_any(a) || is_any(b) || (a->len == b->len && !memcmp(&a->ss, &b->ss, a->len));
}

static int bind_clash(struct dg_directive_ctx *c, const struct dg_listener_conf *l, unsigned a,
                      const struct dg_addr *other, const char *where)
{
	const struct dg_addr *mine = &l->binds[a];
	char buf[64], obuf[64];
	bool same = mine->len == other->len && !memcmp(&mine->ss, &other->ss, mine->len);

	dg_directive_push_key(c, "bind");
	if (l->n_binds > 1)
		dg_directive_push_index(c, a);
	dg_addr_format((const struct sockaddr *)&other->ss, obuf, sizeof(obuf));
	return dg_directive_fail(c, "'%s' is already bound by %s%s%s%s",
	                         dg_addr_format((const struct sockaddr *)&mine->ss, buf, sizeof(buf)), where,
	                         same ? "" : " (as '", same ? "" : obuf, same ? "" : "')");
}

/* Names unique, no address bound twice (in one listener or across them). */
static int check_listener(struct dg_directive_ctx *c, struct dg_config *cfg, unsigned idx)
{
	struct dg_listener_conf *l = &cfg->listeners[idx];
	char where[64];

	for (unsigned a = 0; a < l->n_binds; a++)
		for (unsigned b = 0; b < a; b++)
			if (addr_clash(&l->binds[a], &l->binds[b])) {
				snprintf(where, sizeof(where), "bind[%u] of this listener", b);
				return bind_clash(c, l, a, &l->binds[b], where);
			}
	for (unsigned i = 0; i < idx; i++) {
		const struct dg_listener_conf *o = &cfg->listeners[i];
		if (!strcmp(o->name, l->name)) {
			dg_directive_push_key(c, "name");
			return dg_directive_fail(c, "listener name '%s' is already used by listeners[%u]", l->name, i);
		}
		for (unsigned a = 0; a < l->n_binds; a++)
			for (unsigned b = 0; b < o->n_binds; b++)
				if (addr_clash(&l->binds[a], &o->binds[b])) {
					snprintf(where, sizeof(where), "listeners[%u]", i);
					return bind_clash(c, l, a, &o->binds[b], where);
				}
	}
	dg_acl_build(&l->acl);
	if (!l->max_unvalidated_peers)
		l->max_unvalidated_peers = l->max_peers;
	if (l->max_unvalidated_peers > l->max_peers) {
		dg_directive_push_key(c, "max_unvalidated_peers");
		return dg_directive_fail(c, "%u is more than max_peers (%u)", l->max_unvalidated_peers, l->max_peers);
	}
	if (!l->codec)
		l->codec = json_string("json");
	return l->codec ? DG_OK : dg_directive_fail(c, "out of memory");
}

static int set_listeners(struct dg_directive_ctx *c, json_t *v, void *obj,
                         const struct dg_directive *d)
{
	struct dg_config *cfg = obj;
	(void)d;

	if (!json_is_array(v) || json_array_size(v) == 0)
		return dg_directive_fail(c, "expected a non-empty array of listeners");
	if (json_array_size(v) > 256)
		return dg_directive_fail(c, "at most 256 listeners");
	cfg->listeners = calloc(json_array_size(v), sizeof(*cfg->listeners));
	if (!cfg->listeners)
		return dg_directive_fail(c, "out of memory");
	for (size_t i = 0; i < json_array_size(v); i++) {
		struct dg_listener_conf *l = &cfg->listeners[i];
		size_t saved = dg_directive_push_index(c, i);
		l->max_datagram = DG_DEFAULT_MAX_DATAGRAM;
		l->send_queue = DG_DEFAULT_SEND_QUEUE;
		l->ordering = true;
		l->peer_queue = DG_DEFAULT_PEER_QUEUE;
		l->peer_concurrency = DG_DEFAULT_PEER_CONCURRENCY;
		l->queue_bytes = DG_DEFAULT_QUEUE_BYTES;
		l->max_peers = DG_DEFAULT_MAX_PEERS;
		l->session_idle_ms = DG_DEFAULT_IDLE_MS;
		l->handler_timeout_ms = DG_DEFAULT_HANDLER_TIMEOUT_MS;
		l->amp_factor = DG_DEFAULT_AMP_FACTOR;
		l->max_replies = DG_DEFAULT_MAX_REPLIES;
		l->rate_limit.ipv6_prefix = DG_DEFAULT_IPV6_PREFIX;
		l->rate_limit.table_size = DG_DEFAULT_THROTTLE_TABLE;
		cfg->n_listeners++;
		int rc = dg_directive_apply(c, json_array_get(v, i), l, listener_directives);
		if (!rc)
			rc = check_listener(c, cfg, (unsigned)i);
		if (rc)
			return rc;
		dg_directive_pop(c, saved);
	}
	return DG_OK;
}

static json_t *listener_at(struct dg_directive_ctx *c, const void *obj, unsigned i)
{
	const struct dg_config *cfg = obj;
	return dg_directive_dump(c, &cfg->listeners[i], listener_directives);
}

static json_t *get_listeners(struct dg_directive_ctx *c, const void *obj,
                             const struct dg_directive *d)
{
	const struct dg_config *cfg = obj;
	(void)d;
	return dump_array(c, cfg, cfg->n_listeners, listener_at);
}

static const struct dg_directive_type t_listeners = { set_listeners, get_listeners };

/* Loaded by load_codec_modules() before anything else is read. */
static int set_done(struct dg_directive_ctx *c, json_t *v, void *obj,
                    const struct dg_directive *d)
{
	(void)c, (void)v, (void)obj, (void)d;
	return DG_OK;
}

static json_t *get_codec_modules(struct dg_directive_ctx *c, const void *obj,
                                 const struct dg_directive *d)
{
	(void)c;
	const struct dg_config *cfg = obj;
	(void)d;
	return cfg->codec_module_names ? json_deep_copy(cfg->codec_module_names) : json_array();
}

static const struct dg_directive_type t_done = { set_done, get_codec_modules };

/* The codec registry (process-wide: codecs/codec.c) holds the codec
 * modules of one config, the active one: the config loaded last, or the
 * one given to dg_config_use. Only this file fills it, empties it and
 * refills it; NULL: no config's modules are in it (the built-in codecs
 * always are, and a test may register its own). */
static const struct dg_config *codecs_active;

/* Make cfg's codec modules the registry's (in their load order). */
static void codecs_activate(const struct dg_config *cfg)
{
	dg_loader_register_codecs(&cfg->codec_modules); /* resets first */
	codecs_active = cfg;
}

void dg_config_use(const struct dg_config *cfg)
{
	if (cfg != codecs_active)
		codecs_activate(cfg);
}

/* A config is freed: its modules close (dg_loader_release takes whatever
 * layers they had registered out of the registry, which would otherwise
 * point into unmapped code); the active config's come back if it was not
 * the one freed. */
static void codecs_release(struct dg_config *cfg)
{
	bool had = cfg->codec_modules.codecs != NULL;

	dg_loader_release(&cfg->codec_modules);
	if (cfg == codecs_active)
		codecs_active = NULL;
	else if (had && codecs_active)
		codecs_activate(codecs_active);
}

static int load_codec_modules(struct dg_directive_ctx *c, json_t *root, struct dg_config *cfg,
                              const char *plugin_dir)
{
	json_t *mods = json_is_object(root) ? json_object_get(root, "codec_modules") : NULL;
	json_t *pd = json_is_object(root) ? json_object_get(root, "plugin_dir") : NULL;
	char path[4096], err[600];

	/* The new config becomes the active one: another config's modules
	 * leave the registry, so that their layers' names are free again. */
	if (codecs_active && codecs_active->codec_modules.codecs)
		dg_codec_registry_reset();
	codecs_active = cfg;
	if (!mods)
		return DG_OK;
	size_t saved = dg_directive_push_key(c, "codec_modules");
	if (!json_is_array(mods))
		return dg_directive_fail(c, "expected an array of module names or paths");
	cfg->codec_module_names = json_incref(mods);
	for (size_t i = 0; i < json_array_size(mods); i++) {
		json_t *m = json_array_get(mods, i);
		size_t at = dg_directive_push_index(c, i);
		if (!json_is_string(m) || json_string_length(m) == 0)
			return dg_directive_fail(c, "expected a non-empty string");
		dg_plugin_path(json_string_value(m), json_is_string(pd) ? json_string_value(pd) : plugin_dir,
		               cfg->dir, path, sizeof(path));
		if (dg_loader_load_codec(&cfg->codec_modules, path, err, sizeof(err)))
			return dg_directive_fail(c, "%s", err);
		dg_directive_pop(c, at);
	}
	dg_directive_pop(c, saved);
	return DG_OK;
}

static int set_workers(struct dg_directive_ctx *c, json_t *v, void *obj,
                       const struct dg_directive *d)
{
	unsigned *w = (unsigned *)((char *)obj + d->off);

	if (json_is_string(v) && !strcmp(json_string_value(v), "auto")) {
		long n = sysconf(_SC_NPROCESSORS_ONLN);
		*w = n > 0 && n <= d->hi ? (unsigned)n : 1;
		return DG_OK;
	}
	if (!json_is_integer(v) || json_integer_value(v) < d->lo || json_integer_value(v) > d->hi)
		return dg_directive_fail(c, "expected an integer from %lld to %lld, or \"auto\" (one per CPU)",
		                         d->lo, d->hi);
	*w = (unsigned)json_integer_value(v);
	return DG_OK;
}

static const struct dg_directive_type t_workers = { set_workers, get_integer };

/* "metrics": {"bind": "127.0.0.1:9101"}: a TCP address for /metrics. */
static int set_metrics_bind(struct dg_directive_ctx *c, json_t *v, void *obj,
                            const struct dg_directive *d)
{
	struct dg_config *cfg = obj;
	(void)d;

	if (!json_is_string(v) || !dg_addr_parse(json_string_value(v), &cfg->metrics_bind))
		return dg_directive_fail(c, "expected a numeric \"a.b.c.d:port\" or \"[ipv6]:port\"");
	cfg->metrics = true;
	return DG_OK;
}

static json_t *get_metrics_bind(struct dg_directive_ctx *c, const void *obj,
                                const struct dg_directive *d)
{
	const struct dg_config *cfg = obj;
	char buf[64];
	(void)c, (void)d;

	return json_string(dg_addr_format((const struct sockaddr *)&cfg->metrics_bind.ss, buf,
	                                  sizeof(buf)));
}

static const struct dg_directive_type t_metrics_bind = { set_metrics_bind, get_metrics_bind };

static const struct dg_directive metrics_directives[] = {
	{ "bind", &t_metrics_bind, 0, 0, 0, true, NULL },
	{ NULL, NULL, 0, 0, 0, false, NULL },
};

static int set_metrics(struct dg_directive_ctx *c, json_t *v, void *obj,
                       const struct dg_directive *d)
{
	(void)d;
	return dg_directive_apply(c, v, obj, metrics_directives);
}

static json_t *get_metrics(struct dg_directive_ctx *c, const void *obj,
                           const struct dg_directive *d)
{
	const struct dg_config *cfg = obj;
	(void)d;

	return cfg->metrics ? dg_directive_dump(c, obj, metrics_directives) : json_null();
}

static const struct dg_directive_type t_metrics = { set_metrics, get_metrics };

/* The user and group must exist now: a typo is a config error, not a
 * failure after binding. */
static int check_user(struct dg_directive_ctx *c, struct dg_config *cfg)
{
	char err[300];
	uid_t uid;
	gid_t gid;

	if (cfg->group && !cfg->user) {
		dg_directive_push_key(c, "group");
		return dg_directive_fail(c, "needs \"user\" too");
	}
	if (cfg->user && dg_privs_lookup(cfg->user, cfg->group, &uid, &gid, err, sizeof(err))) {
		dg_directive_push_key(c, strstr(err, "group") ? "group" : "user");
		return dg_directive_fail(c, "%s", err);
	}
	return DG_OK;
}

#define C(field) offsetof(struct dg_config, field)
static const struct dg_directive top_directives[] = {
	{ "workers", &t_workers, C(workers), 1, 1024, false, NULL },
	{ "listeners", &t_listeners, 0, 0, 0, true, NULL },
	{ "codec_modules", &t_done, 0, 0, 0, false, NULL },
	{ "log", &dg_directive_object, 0, 0, 0, false, log_directives },
	{ "plugin_dir", &t_string, C(plugin_dir), 0, 0, false, NULL },
	{ "max_pending", &t_uint, C(max_pending), 1, (1 << 24) - 1, false, NULL }, /* DG_REQTAB_MAX */
	{ "shutdown_timeout_ms", &t_uint, C(shutdown_timeout_ms), 0, 3600000, false, NULL },
	{ "reload_conversations", &t_uint, C(reload_conversations), 0, 65536, false, NULL },
	{ "memory_budget", &t_size, C(memory_budget), 1 << 20, 1ll << 40, false, NULL },
	{ "user", &t_string, C(user), 0, 0, false, NULL },
	{ "group", &t_string, C(group), 0, 0, false, NULL },
	{ "metrics", &t_metrics, 0, 0, 0, false, NULL },
	{ NULL, NULL, 0, 0, 0, false, NULL },
};
#undef C

void dg_config_strip_comments(char *s, size_t len)
{
	bool in_str = false;

	for (size_t i = 0; i < len; i++) {
		if (in_str) {
			if (s[i] == '\\' && i + 1 < len)
				i++;
			else if (s[i] == '"')
				in_str = false;
			continue;
		}
		if (s[i] == '"') {
			in_str = true;
		} else if (s[i] == '#' || (s[i] == '/' && i + 1 < len && s[i + 1] == '/')) {
			while (i < len && s[i] != '\n')
				s[i++] = ' ';
		}
	}
}

int dg_config_parse(const char *text, size_t len, const char *name, const char *dir,
                    const char *plugin_dir, struct dg_config **out, char *err, size_t errlen)
{
	struct dg_directive_ctx c = { .where = name, .err = err, .errlen = errlen };
	json_error_t je;
	int rc = DG_ENOMEM;

	*out = NULL;
	char *copy = malloc(len + 1);
	struct dg_config *cfg = calloc(1, sizeof(*cfg));
	if (!copy || !cfg) {
		snprintf(err, errlen, "%s: out of memory", name);
		goto out_free;
	}
	memcpy(copy, text, len);
	copy[len] = '\0';
	dg_config_strip_comments(copy, len);
	cfg->log_level = DG_LOG_INFO;
	cfg->max_pending = DG_DEFAULT_MAX_PENDING;
	cfg->workers = 1;
	cfg->shutdown_timeout_ms = DG_DEFAULT_SHUTDOWN_MS;
	cfg->reload_conversations = DG_DEFAULT_RELOAD_CONVERSATIONS;
	cfg->memory_budget = DG_DEFAULT_MEMORY_BUDGET;
	cfg->path = strdup(name);
	cfg->dir = strdup(dir);
	if (!cfg->path || !cfg->dir) {
		snprintf(err, errlen, "%s: out of memory", name);
		goto out_free;
	}
	bool oom;
	json_t *root = dg_json_load(copy, len, JSON_REJECT_DUPLICATES, &je, &oom);
	if (!root && oom) {
		snprintf(err, errlen, "%s: out of memory", name);
		goto out_free;
	}
	if (!root) {
		snprintf(err, errlen, "%s: line %d, column %d: %s", name, je.line, je.column, je.text);
		rc = DG_EINVAL;
		goto out_free;
	}
	rc = load_codec_modules(&c, root, cfg, plugin_dir);
	if (!rc)
		rc = dg_directive_apply(&c, root, cfg, top_directives);
	if (!rc)
		rc = check_user(&c, cfg);
	json_decref(root);
	if (rc)
		goto out_free;
	free(copy);
	*out = cfg;
	return DG_OK;

out_free:
	free(copy);
	dg_config_free(cfg);
	return rc;
}

int dg_config_load(const char *path, const char *plugin_dir, struct dg_config **out,
                   char *err, size_t errlen)
{
	char *text = NULL, *dcopy = NULL;
	size_t len = 0, cap = 0;
	int rc = DG_ERROR;

	*out = NULL;
	FILE *f = fopen(path, "r");
	if (!f) {
		snprintf(err, errlen, "cannot open config '%s': %s", path, strerror(errno));
		return DG_ERROR;
	}
	for (;;) {
		if (cap - len < 4096) {
			if (cap >= (16u << 20)) {
				snprintf(err, errlen, "%s: larger than 16 MiB", path);
				goto out;
			}
			char *n = realloc(text, cap ? cap * 2 : 8192);
			if (!n) {
				snprintf(err, errlen, "%s: out of memory", path);
				goto out;
			}
			text = n;
			cap = cap ? cap * 2 : 8192;
		}
		size_t got = fread(text + len, 1, cap - len, f);
		len += got;
		if (got == 0)
			break;
	}
	if (ferror(f)) {
		snprintf(err, errlen, "cannot read config '%s': %s", path, strerror(errno));
		goto out;
	}
	dcopy = strdup(path);
	if (!dcopy) {
		snprintf(err, errlen, "%s: out of memory", path);
		goto out;
	}
	rc = dg_config_parse(text, len, path, dirname(dcopy), plugin_dir, out, err, errlen);
out:
	free(dcopy);
	free(text);
	fclose(f);
	return rc;
}

void dg_config_drop_shown(struct dg_config *cfg)
{
	for (unsigned i = 0; i < cfg->n_listeners; i++) {
		json_decref(cfg->listeners[i].plugin_shown);
		cfg->listeners[i].plugin_shown = NULL;
	}
}

void dg_config_free(struct dg_config *cfg)
{
	if (!cfg)
		return;
	for (unsigned i = 0; i < cfg->n_listeners; i++) {
		struct dg_listener_conf *l = &cfg->listeners[i];
		free(l->name);
		free(l->binds);
		free(l->plugin);
		json_decref(l->codec);
		json_decref(l->plugin_config);
		json_decref(l->plugin_shown);
		json_decref(l->allow_spec);
		json_decref(l->deny_spec);
		dg_acl_release(&l->acl);
	}
	free(cfg->listeners);
	codecs_release(cfg);
	json_decref(cfg->codec_module_names);
	free(cfg->plugin_dir);
	free(cfg->user);
	free(cfg->group);
	free(cfg->log_target);
	free(cfg->log_syslog_socket);
	free(cfg->path);
	free(cfg->dir);
	free(cfg);
}

static bool is_loopback(const struct dg_addr *a)
{
	const struct sockaddr *sa = (const struct sockaddr *)&a->ss;

	if (sa->sa_family == AF_INET)
		return (ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr) >> 24) == 127;
	return sa->sa_family == AF_INET6 &&
	       IN6_IS_ADDR_LOOPBACK(&((const struct sockaddr_in6 *)sa)->sin6_addr);
}

static bool has_acl(const struct dg_listener_conf *l)
{
	return l->acl.active;
}

static bool has_rate_limit(const struct dg_listener_conf *l)
{
	return dg_throttle_conf_active(&l->rate_limit);
}

static bool has_amp_guard(const struct dg_listener_conf *l)
{
	return l->amp_factor != 0;
}

/* What keeps a listener on an open network from being a free reflector:
 * any one of them quiets the start-up warning. */
static const struct {
	const char *missing; /* as the warning names it */
	bool (*on)(const struct dg_listener_conf *l);
} guards[] = {
	{ "no access control (allow/deny)", has_acl },
	{ "no rate_limit", has_rate_limit },
	{ "the amplification guard off (amplification.factor 0)", has_amp_guard },
};

void dg_config_warn_unprotected(const struct dg_config *cfg)
{
	const size_t ng = sizeof(guards) / sizeof(guards[0]);

	for (unsigned i = 0; i < cfg->n_listeners; i++) {
		const struct dg_listener_conf *l = &cfg->listeners[i];
		const struct dg_addr *open = NULL;
		char what[256], a[64];
		size_t n = 0;

		for (unsigned b = 0; b < l->n_binds && !open; b++)
			if (!is_loopback(&l->binds[b]))
				open = &l->binds[b];
		for (size_t g = 0; g < ng && open; g++)
			if (guards[g].on(l))
				open = NULL;
		if (!open)
			continue;
		for (size_t g = 0; g < ng; g++)
			n += (size_t)snprintf(what + n, sizeof(what) - n, "%s%s",
			                      !g ? "" : g + 1 < ng ? ", " : " and ", guards[g].missing);
		dg_log(DG_LOG_WARN, "listener '%s': bound to '%s', not a loopback address, with %s: "
		       "any host can make it answer any address it claims to be (see docs/operating.md, \"Safety on an open network\")",
		       l->name, dg_addr_format((const struct sockaddr *)&open->ss, a, sizeof(a)), what);
	}
}

/* ---- the effective config (dgramd -T) ---------------------------------
 * Every directive's value read back from the structs, defaults included,
 * through its type's dump: the table that parsed it. */

json_t *dg_config_dump(const struct dg_config *cfg, char *err, size_t errlen)
{
	struct dg_directive_ctx c = { .where = cfg->path, .err = err, .errlen = errlen };

	snprintf(err, errlen, "out of memory");
	return dg_directive_dump(&c, cfg, top_directives);
}
