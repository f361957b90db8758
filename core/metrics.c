#include "config.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/bufferevent.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>
#include <jansson.h>

#include "addr.h"
#include "list.h"
#include "log.h"
#include "metrics.h"
#include "ratelimit.h"

/* After an accept error (EMFILE, ENFILE, ENOBUFS...) the connection stays
 * in the backlog and the socket stays readable: accepting again at once
 * would spin. Stop for this long, as nginx does. */
#define ACCEPT_PAUSE_MS 500

#define STR_(x) #x
#define STR(x) STR_(x)

/* A connection, from accept to close: a slot of its server's. */
struct conn {
	struct dg_metrics *m;
	/* Fresh (accepted, not adopted yet): its bufferevent, held by a
	 * reference; then NULL. */
	struct bufferevent *bev;
	struct evhttp_connection *evcon; /* adopted and open; else NULL */
	struct event *life;              /* its end, DG_METRICS_LIFE_S after adoption */
	struct dg_dlink link;            /* on live (oldest first) or spare */
};

struct dg_metrics {
	int fd;
	char addr[64];
	struct evhttp *http;
	struct evconnlistener *lev; /* NULL once evhttp_free has freed it */
	struct event *resume;       /* the end of an accept pause */
	struct event *adopt;        /* close callbacks for new connections */
	const struct timeval *life; /* DG_METRICS_LIFE_S, a common timeout */
	struct conn slot[DG_METRICS_MAX_CONNS];
	struct dg_dlist live;       /* the slots in use, in accept order */
	struct dg_dlist spare;
	/* Accepted, close callback not set yet: evhttp makes the connection
	 * after it asked us for the bufferevent. */
	struct conn *fresh[DG_METRICS_MAX_CONNS];
	unsigned n_fresh;
	unsigned conns;             /* open connections, fresh included */
	bool paused;                /* resume is pending */
	bool stopping;              /* dg_metrics_stop: no more accepts */
	void (*drained)(void *arg);
	void *drained_arg;
	struct dg_ratelimit rl_accept;
	struct dg_ratelimit rl_cut;  /* closed by age or pushed out */
	struct dg_metrics_src src;
	struct dg_metrics *next;
};

/* The servers of this process (one, in practice). libevent 2.1 calls a
 * listener's error callback with the accept callback's argument, which
 * evhttp_bind_listener made its evhttp: the error callback finds its
 * server by that. */
static struct dg_metrics *servers;

static struct dg_metrics *by_http(const void *http)
{
	struct dg_metrics *m = servers;

	while (m && m->http != http)
		m = m->next;
	return m;
}

int dg_metrics_listen(const struct dg_addr *addr, char *err, size_t errlen)
{
	const struct sockaddr *sa = (const struct sockaddr *)&addr->ss;
	char a[64];
	int one = 1;
	int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	dg_addr_format(sa, a, sizeof(a));
	/* "[::]" means IPv6 only, as for the UDP listeners (server.c): the
	 * Linux default (net.ipv6.bindv6only=0) would serve every IPv4
	 * address on that port too, a surprise for a metrics port. */
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    (sa->sa_family == AF_INET6 &&
	     setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) < 0) ||
	    bind(fd, sa, addr->len) < 0 || listen(fd, 64) < 0) {
		snprintf(err, errlen, "cannot listen on '%s' (metrics.bind): %s", a, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

const char *dg_metrics_addr(int fd, char *buf, size_t len)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);

	if (getsockname(fd, (struct sockaddr *)&ss, &sl) < 0)
		return snprintf(buf, len, "?"), buf;
	return dg_addr_format((struct sockaddr *)&ss, buf, len);
}

int dg_metrics_fd(const struct dg_metrics *m)
{
	return m->fd;
}

/* The workers' counters of listener l added up; plugin metrics by name. */
static void sum(const struct dg_metrics_src *s, unsigned l, struct dg_counters *out)
{
	memset(out, 0, sizeof(*out));
	for (unsigned w = 0; w < s->n_workers; w++) {
		const struct dg_counters *c = s->counters(s->arg, w, l);
		if (!c)
			continue;
		dg_counters_add(out, c);
		for (unsigned i = 0; i < DG_PLUGIN_METRICS_MAX; i++) {
			const struct dg_plugin_metric *pm = &c->plugin[i];
			unsigned j = 0;
			while (j < DG_PLUGIN_METRICS_MAX && out->plugin[j].name[0] &&
			       strcmp(out->plugin[j].name, pm->name))
				j++;
			if (!pm->name[0] || j == DG_PLUGIN_METRICS_MAX)
				continue;
			if (!out->plugin[j].name[0])
				out->plugin[j] = *pm;
			else
				out->plugin[j].value += pm->value;
		}
	}
}

/* One metric family: HELP, TYPE, then a sample per listener and worker. */
static int prom_family(const struct dg_metrics_src *s, struct evbuffer *out,
                       const struct dg_counter_field *f, int reason)
{
	const char *name = f ? f->name : reason >= 0 ? "drops" : "tx_drops";
	const char *help = f ? f->help : reason >= 0
	        ? "Datagrams dropped, by reason (rx = handled + decode_errors + drops)"
	        : "Replies dropped, by reason";
	int rc = evbuffer_add_printf(out, "# HELP dgramd_%s_total %s.\n# TYPE dgramd_%s_total counter\n",
	                             name, help, name) < 0;
	unsigned nr = f ? 1 : reason >= 0 ? DG_DROP__COUNT : DG_TXDROP__COUNT;

	for (unsigned l = 0; l < s->n_listeners; l++)
		for (unsigned w = 0; w < s->n_workers; w++) {
			const struct dg_counters *c = s->counters(s->arg, w, l);
			for (unsigned r = 0; c && r < nr; r++) {
				uint64_t v = f ? *(const uint64_t *)((const char *)c + f->off)
				               : reason >= 0 ? c->drop[r] : c->tx_drop[r];
				rc |= evbuffer_add_printf(out, "dgramd_%s_total{listener=\"%s\",worker=\"%u\"%s%s%s} %llu\n",
				        name, s->cfg->listeners[l].name, w + 1, f ? "" : ",reason=\"",
				        f ? "" : reason >= 0 ? dg_drop_names[r] : dg_txdrop_names[r], f ? "" : "\"",
				        (unsigned long long)v) < 0;
			}
		}
	return rc ? -1 : 0;
}

/* A plugin's part of its metrics' names: the handler's file name without
 * directory and ".so", in [a-z0-9_]. */
static void plugin_prefix(const struct dg_metrics_src *s, unsigned l, char *buf, size_t len)
{
	const char *p = s->cfg->listeners[l].plugin, *slash = strrchr(p, '/');
	size_t n = 0;

	for (p = slash ? slash + 1 : p; *p && strcmp(p, ".so") && n + 1 < len; p++)
		buf[n++] = (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ? *p
		           : (*p >= 'A' && *p <= 'Z') ? (char)(*p - 'A' + 'a') : '_';
	buf[n] = '\0';
}

static bool seen_before(const struct dg_metrics_src *s, unsigned l0, unsigned w0, unsigned i0,
                        const char *prefix, const struct dg_plugin_metric *pm)
{
	char other[64];

	for (unsigned l = 0; l <= l0; l++) {
		plugin_prefix(s, l, other, sizeof(other));
		if (strcmp(other, prefix))
			continue;
		for (unsigned w = 0; w < s->n_workers && (l < l0 || w <= w0); w++) {
			const struct dg_counters *c = s->counters(s->arg, w, l);
			for (unsigned i = 0; c && i < DG_PLUGIN_METRICS_MAX; i++) {
				if (l == l0 && w == w0 && i >= i0)
					break;
				if (!strcmp(c->plugin[i].name, pm->name))
					return true;
			}
		}
	}
	return false;
}

/* Plugins' metrics: a family per (plugin, name), first seen first, with a
 * sample for every listener and worker that has it. */
static int prom_plugins(const struct dg_metrics_src *s, struct evbuffer *out)
{
	char prefix[64], other[64];
	int rc = 0;

	for (unsigned l = 0; l < s->n_listeners; l++) {
		plugin_prefix(s, l, prefix, sizeof(prefix));
		for (unsigned w = 0; w < s->n_workers; w++) {
			const struct dg_counters *c = s->counters(s->arg, w, l);
			for (unsigned i = 0; c && i < DG_PLUGIN_METRICS_MAX; i++) {
				const struct dg_plugin_metric *pm = &c->plugin[i];
				if (!pm->name[0] || seen_before(s, l, w, i, prefix, pm))
					continue;
				bool counter = pm->kind == DG_METRIC_COUNTER;
				const char *sfx = counter ? "_total" : "";
				rc |= evbuffer_add_printf(out, "# HELP dgramd_plugin_%s_%s%s %s\n"
				        "# TYPE dgramd_plugin_%s_%s%s %s\n", prefix, pm->name, sfx,
				        pm->help[0] ? pm->help : "Published by the plugin.", prefix, pm->name, sfx,
				        counter ? "counter" : "gauge") < 0;
				for (unsigned l2 = l; l2 < s->n_listeners; l2++) {
					plugin_prefix(s, l2, other, sizeof(other));
					for (unsigned w2 = 0; !strcmp(other, prefix) && w2 < s->n_workers; w2++) {
						const struct dg_counters *c2 = s->counters(s->arg, w2, l2);
						for (unsigned j = 0; c2 && j < DG_PLUGIN_METRICS_MAX; j++)
							if (!strcmp(c2->plugin[j].name, pm->name))
								rc |= evbuffer_add_printf(out, "dgramd_plugin_%s_%s%s{listener=\"%s\","
								        "worker=\"%u\"} %lld\n", prefix, pm->name, sfx,
								        s->cfg->listeners[l2].name, w2 + 1,
								        (long long)c2->plugin[j].value) < 0;
					}
				}
			}
		}
	}
	return rc ? -1 : 0;
}

int dg_metrics_prometheus(const struct dg_metrics_src *s, struct evbuffer *out)
{
	int rc = 0;

	for (const struct dg_counter_field *f = dg_counter_fields; f->name; f++)
		rc |= prom_family(s, out, f, 0);
	rc |= prom_family(s, out, NULL, 0);
	rc |= prom_family(s, out, NULL, -1);
	rc |= prom_plugins(s, out);
	return rc ? -1 : 0;
}

/* The counters of c as an object; plugin metrics under "plugin". */
static json_t *counters_json(const struct dg_counters *c)
{
	json_t *o = json_object(), *d = json_object(), *t = json_object(), *p = json_object();
	/* set_new takes the reference even when it fails: d, t and p go with o. */
	int rc = !o || json_object_set_new(o, "drops", d) || json_object_set_new(o, "tx_drops", t) ||
	         json_object_set_new(o, "plugin", p) || !d || !t || !p;

	for (const struct dg_counter_field *f = dg_counter_fields; !rc && f->name; f++)
		rc |= json_object_set_new(o, f->name,
		        json_integer((json_int_t)*(const uint64_t *)((const char *)c + f->off)));
	for (unsigned r = 0; !rc && r < DG_DROP__COUNT; r++)
		rc |= json_object_set_new(d, dg_drop_names[r], json_integer((json_int_t)c->drop[r]));
	for (unsigned r = 0; !rc && r < DG_TXDROP__COUNT; r++)
		rc |= json_object_set_new(t, dg_txdrop_names[r], json_integer((json_int_t)c->tx_drop[r]));
	for (unsigned i = 0; !rc && i < DG_PLUGIN_METRICS_MAX; i++)
		if (c->plugin[i].name[0])
			rc |= json_object_set_new(p, c->plugin[i].name, json_integer((json_int_t)c->plugin[i].value));
	if (!rc)
		return o;
	json_decref(o);
	return NULL;
}

static int to_evbuffer(const char *buf, size_t size, void *data)
{
	return evbuffer_add(data, buf, size);
}

int dg_metrics_json(const struct dg_metrics_src *s, struct evbuffer *out)
{
	json_t *root = json_object(), *ls = json_object();
	int rc = !root || !ls || json_object_set_new(root, "listeners", ls);

	for (unsigned l = 0; !rc && l < s->n_listeners; l++) {
		struct dg_counters total;
		json_t *workers = json_array(), *one;
		sum(s, l, &total);
		one = json_pack("{s:o, s:o}", "total", counters_json(&total), "workers", workers);
		rc = !one || json_object_set_new(ls, s->cfg->listeners[l].name, one);
		for (unsigned w = 0; !rc && w < s->n_workers; w++) {
			const struct dg_counters *c = s->counters(s->arg, w, l);
			rc = json_array_append_new(workers, c ? counters_json(c) : json_null());
		}
	}
	/* Straight into the reply: json_dumps' string would come from
	 * jansson's allocator (the daemon's counting one), not malloc. */
	rc = rc || json_dump_callback(root, to_evbuffer, out, JSON_COMPACT) ||
	     evbuffer_add(out, "\n", 1);
	json_decref(root);
	return rc ? -1 : 0;
}

static void on_request(struct evhttp_request *req, void *arg)
{
	struct dg_metrics *m = arg;
	const char *path = evhttp_uri_get_path(evhttp_request_get_evhttp_uri(req));
	struct evbuffer *out = evbuffer_new();
	int rc = -1;
	const char *type = NULL;

	if (!out) {
		evhttp_send_error(req, HTTP_INTERNAL, NULL);
		return;
	}
	/* Stopping: this answer is the connection's last (keep-alive ends). */
	if (m->stopping)
		evhttp_add_header(evhttp_request_get_output_headers(req), "Connection", "close");
	if (evhttp_request_get_command(req) != EVHTTP_REQ_GET &&
	    evhttp_request_get_command(req) != EVHTTP_REQ_HEAD) {
		evhttp_send_error(req, 405, "Method Not Allowed");
		evbuffer_free(out);
		return;
	}
	if (m->src.snapshot)
		m->src.snapshot(m->src.arg);
	if (path && !strcmp(path, "/metrics")) {
		rc = dg_metrics_prometheus(&m->src, out);
		type = "text/plain; version=0.0.4; charset=utf-8";
	} else if (path && !strcmp(path, "/stats")) {
		rc = dg_metrics_json(&m->src, out);
		type = "application/json";
	} else {
		evhttp_send_error(req, HTTP_NOTFOUND, "Try /metrics or /stats");
		evbuffer_free(out);
		return;
	}
	if (rc) {
		evhttp_send_error(req, HTTP_INTERNAL, NULL);
	} else {
		evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", type);
		evhttp_send_reply(req, HTTP_OK, "OK", out);
	}
	evbuffer_free(out);
}

/* Accepting is on unless paused or stopping, and while a connection could
 * be pushed out to make room: at the cap, one that is not fresh. */
static void accept_update(struct dg_metrics *m)
{
	if (!m->lev)
		return;
	if (m->paused || m->stopping || m->n_fresh >= DG_METRICS_MAX_CONNS)
		evconnlistener_disable(m->lev);
	else
		evconnlistener_enable(m->lev);
}

/* c's connection is gone (or was never made): its slot is free. */
static void conn_release(struct conn *c)
{
	struct dg_metrics *m = c->m;

	event_del(c->life);
	c->evcon = NULL;
	dg_dlist_unlink(&m->live, &c->link);
	dg_dlist_push(&m->spare, &c->link);
	m->conns--;
	accept_update(m);
	if (m->stopping && !m->conns && m->drained)
		m->drained(m->drained_arg);
}

static void on_close(struct evhttp_connection *evcon, void *arg)
{
	(void)evcon;
	conn_release(arg);
}

/* Close c's connection now (its close callback frees the slot); why says
 * why, in the rate-limited log line. */
static void conn_cut(struct conn *c, const char *why)
{
	struct dg_metrics *m = c->m;
	unsigned long sup;
	char *host = NULL;
	ev_uint16_t port = 0;

	if (dg_ratelimit_allow(&m->rl_cut, time(NULL), &sup)) {
		/* evhttp's numeric host (getnameinfo): no byte of the peer's. */
		evhttp_connection_get_peer(c->evcon, &host, &port);
		dg_log(DG_LOG_INFO, "metrics on '%s': closed the connection from '%s:%u': %s%s", m->addr,
		       host ? host : "?", port, why, sup ? " (more such closes were not logged)" : "");
	}
	evhttp_connection_free(c->evcon);
}

static void on_life_end(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	conn_cut(arg, "open for " STR(DG_METRICS_LIFE_S) " s");
}

/* evhttp asks for a new connection's bufferevent just after accept(): the
 * one place that sees every connection (libevent 2.1 has no
 * evhttp_set_max_connections and no new-connection callback). At the cap
 * the oldest connection makes room (accepting is off while all are fresh),
 * so that connections that are never idle (a slowloris) cannot hold every
 * slot. The close callback is set by on_adopt once the connection exists. */
static struct bufferevent *on_connection(struct event_base *base, void *arg)
{
	struct dg_metrics *m = arg;
	struct conn *c;

	if (m->conns == DG_METRICS_MAX_CONNS) {
		c = dg_list_entry(dg_dlist_first(&m->live), struct conn, link);
		if (c && c->evcon) /* never fresh: accepting stops when all are */
			conn_cut(c, STR(DG_METRICS_MAX_CONNS) " open, the oldest makes room");
	}
	c = dg_list_entry(dg_dlist_first(&m->spare), struct conn, link);
	if (!c)
		return NULL; /* not reached: a slot was freed above */
	c->bev = bufferevent_socket_new(base, -1, 0); /* as evhttp's own: it closes the fd */
	if (!c->bev)
		return NULL;
	bufferevent_incref(c->bev);
	dg_dlist_unlink(&m->spare, &c->link);
	dg_dlist_push(&m->live, &c->link);
	m->fresh[m->n_fresh++] = c;
	m->conns++;
	/* Disabled inside the accept loop's callback: the loop stops. */
	accept_update(m);
	event_active(m->adopt, EV_TIMEOUT, 1);
	return c->bev;
}

/* The connections made since the last call get their close callback and
 * their end. evhttp sets a connection's bufferevent callbacks with the
 * connection as their argument; a bufferevent that evhttp has freed (setup
 * failed) has none, and our reference kept its memory until now. */
static void on_adopt(evutil_socket_t fd, short what, void *arg)
{
	struct dg_metrics *m = arg;
	unsigned n = m->n_fresh;

	(void)fd;
	(void)what;
	m->n_fresh = 0;
	accept_update(m);
	for (unsigned i = 0; i < n; i++) {
		struct conn *c = m->fresh[i];
		void *evcon = NULL;
		bufferevent_getcb(c->bev, NULL, NULL, NULL, &evcon);
		bufferevent_decref(c->bev);
		c->bev = NULL;
		c->evcon = evcon;
		if (!evcon)
			conn_release(c);
		else
			evhttp_connection_set_closecb(evcon, on_close, c);
		if (evcon && event_add(c->life, m->life))
			conn_cut(c, "cannot time its end");
	}
}

static void on_accept_error(struct evconnlistener *lev, void *arg)
{
	static const struct timeval pause = { 0, ACCEPT_PAUSE_MS * 1000 };
	struct dg_metrics *m = by_http(arg);
	int e = EVUTIL_SOCKET_ERROR();
	unsigned long sup;

	evconnlistener_disable(lev);
	if (!m)
		return; /* not ours: stays off */
	m->paused = event_add(m->resume, &pause) == 0;
	if (!m->paused)
		accept_update(m); /* no timer: try again, at worst a busy loop */
	if (dg_ratelimit_allow(&m->rl_accept, time(NULL), &sup))
		dg_log(DG_LOG_WARN, "metrics on '%s': cannot accept a connection: %s; not accepting "
		       "for %u ms (%u open)%s", m->addr, evutil_socket_error_to_string(e), ACCEPT_PAUSE_MS,
		       m->conns, sup ? " (more such errors were not logged)" : "");
}

static void on_resume(evutil_socket_t fd, short what, void *arg)
{
	struct dg_metrics *m = arg;

	(void)fd;
	(void)what;
	m->paused = false;
	accept_update(m);
}

/* The slots, spare, each with its timer for its end. */
static int conns_init(struct dg_metrics *m, struct event_base *base)
{
	static const struct timeval life = { DG_METRICS_LIFE_S, 0 };

	dg_dlist_init(&m->live);
	dg_dlist_init(&m->spare);
	/* One duration for all: libevent queues them in O(1), not in its heap. */
	m->life = event_base_init_common_timeout(base, &life);
	if (!m->life)
		m->life = &life;
	for (unsigned i = 0; i < DG_METRICS_MAX_CONNS; i++) {
		struct conn *c = &m->slot[i];
		c->m = m;
		if (!(c->life = evtimer_new(base, on_life_end, c)))
			return -1;
		dg_dlist_push(&m->spare, &c->link);
	}
	return 0;
}

struct dg_metrics *dg_metrics_new(struct event_base *base, int fd, const struct dg_metrics_src *src)
{
	struct dg_metrics *m = calloc(1, sizeof(*m));
	struct evconnlistener *lev = NULL;

	if (!m || !(m->http = evhttp_new(base)) || conns_init(m, base) ||
	    !(m->resume = evtimer_new(base, on_resume, m)) ||
	    !(m->adopt = event_new(base, -1, 0, on_adopt, m)) ||
	    !(lev = evconnlistener_new(base, NULL, NULL, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC,
	                               0, fd))) {
		dg_log(DG_LOG_ERROR, "cannot serve metrics: out of memory");
		goto fail;
	}
	fd = -1; /* the listener's now */
	if (!evhttp_bind_listener(m->http, lev)) {
		dg_log(DG_LOG_ERROR, "cannot serve metrics: out of memory");
		evconnlistener_free(lev);
		goto fail;
	}
	m->lev = lev;
	m->src = *src;
	m->fd = evconnlistener_get_fd(lev);
	dg_metrics_addr(m->fd, m->addr, sizeof(m->addr));
	m->rl_accept = (struct dg_ratelimit)DG_RATELIMIT_INIT(10, 3);
	m->rl_cut = (struct dg_ratelimit)DG_RATELIMIT_INIT(10, 3);
	evconnlistener_set_error_cb(lev, on_accept_error);
	evhttp_set_bevcb(m->http, on_connection, m);
	/* Scrapes are small; a slow or stuck client must not hold memory
	 * or one of the few connections for long. */
	evhttp_set_timeout(m->http, DG_METRICS_TIMEOUT_S);
	evhttp_set_max_headers_size(m->http, 8192);
	evhttp_set_max_body_size(m->http, 0);
	evhttp_set_allowed_methods(m->http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD);
	evhttp_set_gencb(m->http, on_request, m);
	m->next = servers;
	servers = m;
	return m;
fail:
	if (fd >= 0)
		close(fd); /* not taken over */
	dg_metrics_free(m);
	return NULL;
}

void dg_metrics_stop(struct dg_metrics *m, void (*drained)(void *arg), void *arg)
{
	m->stopping = true;
	m->drained = drained;
	m->drained_arg = arg;
	accept_update(m);
	if (!m->conns && drained)
		drained(arg);
}

void dg_metrics_free(struct dg_metrics *m)
{
	if (!m)
		return;
	for (struct dg_metrics **p = &servers; *p; p = &(*p)->next)
		if (*p == m) {
			*p = m->next;
			break;
		}
	m->lev = NULL; /* evhttp_free frees it first, then the connections */
	m->drained = NULL;
	if (m->http)
		evhttp_free(m->http);
	for (unsigned i = 0; i < m->n_fresh; i++)
		bufferevent_decref(m->fresh[i]->bev);
	for (unsigned i = 0; i < DG_METRICS_MAX_CONNS; i++)
		if (m->slot[i].life)
			event_free(m->slot[i].life);
	if (m->resume)
		event_free(m->resume);
	if (m->adopt)
		event_free(m->adopt);
	free(m);
}
