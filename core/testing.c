/* The plugin test harness (<dgramd/testing.h>): a server of the core with
 * the fake clock, the capture sink and no sockets (dg_server_init_hooked),
 * fed by the test the way on_readable() feeds the daemon's. */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <dgramd/testing.h>

#include "addr.h"
#include "dispatch.h"
#include "log.h"
#include "server.h"

/* The fake clock starts here rather than at 0, as a monotonic clock does
 * (nothing in the core may take 0 for "never"). */
#define DG_HARNESS_EPOCH_MS 1000000u

struct dg_harness {
	struct dg_server srv;
	struct dg_config *cfg;
	uint64_t now_ms;   /* the fake clock, absolute */
	bool in_batch;
	struct dg_harness_reply *replies;
	size_t n_replies, cap_replies;
};

static void set_err(char *err, size_t errlen, const char *fmt, ...) DG_PRINTF(3, 4);
static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (!err || !errlen)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

static uint64_t fake_clock(void *arg)
{
	const struct dg_harness *h = arg;

	return h->now_ms;
}

/* The harness's server (every host function finds its server from its
 * arguments: no process global to point anywhere). */
static struct dg_server *enter(struct dg_harness *h)
{
	return &h->srv;
}

/* The local address a datagram leaves from: its IP_PKTINFO / IPV6_PKTINFO
 * control message on a wildcard bind, else the socket's own. */
static void reply_source(const struct dg_sock *s, struct msghdr *mh, struct dg_harness_reply *r)
{
	memcpy(&r->from, &s->bound.ss, s->bound.len);
	r->fromlen = s->bound.len;
	for (struct cmsghdr *c = mh->msg_controllen ? CMSG_FIRSTHDR(mh) : NULL; c;
	     c = CMSG_NXTHDR(mh, c)) {
		if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_PKTINFO) {
			struct in_pktinfo pi;
			memcpy(&pi, CMSG_DATA(c), sizeof(pi));
			((struct sockaddr_in *)&r->from)->sin_addr = pi.ipi_spec_dst;
		} else if (c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_PKTINFO) {
			struct in6_pktinfo pi;
			memcpy(&pi, CMSG_DATA(c), sizeof(pi));
			((struct sockaddr_in6 *)&r->from)->sin6_addr = pi.ipi6_addr;
		}
	}
}

/* The capture sink, where the daemon calls sendmmsg: every datagram is
 * taken (a copy), so the counters see a send that worked. */
static int capture(void *arg, struct dg_sock *s, dg_mmsg *m, unsigned n)
{
	struct dg_harness *h = arg;

	for (unsigned i = 0; i < n; i++) {
		struct msghdr *mh = &m[i].msg_hdr;
		if (h->n_replies == h->cap_replies) {
			size_t cap = h->cap_replies ? 2 * h->cap_replies : 16;
			struct dg_harness_reply *r = realloc(h->replies, cap * sizeof(*r));
			if (!r)
				goto out_nomem;
			h->replies = r;
			h->cap_replies = cap;
		}
		struct dg_harness_reply *r = &h->replies[h->n_replies];
		unsigned char *data = malloc(mh->msg_iov->iov_len ? mh->msg_iov->iov_len : 1);
		if (!data)
			goto out_nomem;
		memset(r, 0, sizeof(*r));
		memcpy(data, mh->msg_iov->iov_base, mh->msg_iov->iov_len);
		r->data = data;
		r->len = mh->msg_iov->iov_len;
		memcpy(&r->to, mh->msg_name, mh->msg_namelen);
		r->tolen = mh->msg_namelen;
		reply_source(s, mh, r);
		r->at_ms = h->now_ms - DG_HARNESS_EPOCH_MS;
		dg_addr_format((const struct sockaddr *)&r->to, r->to_text, sizeof(r->to_text));
		h->n_replies++;
		continue;
out_nomem:
		/* As a kernel refusing the datagram: counted as send_error. */
		if (i)
			return (int)i;
		errno = ENOMEM;
		return -1;
	}
	return (int)n;
}

/* What the daemon's loop runs once the current callbacks return: the post
 * event (queued datagrams, frames after a completed one, the flush) and
 * any event of the plugin's own that is ready now. */
static void settle(struct dg_harness *h)
{
	struct dg_server *srv = enter(h);

	dg_server_after_events(srv);
	for (unsigned i = 0; i < 100000 && event_pending(srv->ev_post, EV_TIMEOUT, NULL); i++)
		event_base_loop(srv->base, EVLOOP_NONBLOCK);
}

/* "listener": one listener object, or a whole config; the config text the
 * core parses, with the harness's defaults filled in. NULL: err says why. */
static char *config_text(const char *listener, const struct dg_plugin *plugin, char *err,
                         size_t errlen)
{
	json_error_t je;
	json_t *root = json_loads(listener ? listener : "{}", 0, &je), *l;
	char *text = NULL;

	if (!root || !json_is_object(root)) {
		set_err(err, errlen, "harness config: line %d, column %d: %s", je.line, je.column,
		        root ? "not a JSON object" : je.text);
		goto out;
	}
	if (!json_object_get(root, "listeners")) {
		json_t *wrap = json_pack("{s:[O]}", "listeners", root);
		json_decref(root);
		root = wrap;
	}
	json_t *ls = root ? json_object_get(root, "listeners") : NULL;
	if (!json_is_array(ls) || json_array_size(ls) != 1 || !json_is_object(json_array_get(ls, 0))) {
		set_err(err, errlen, "harness config: listeners: the harness takes exactly one listener");
		goto out;
	}
	l = json_array_get(ls, 0);
	if (!json_object_get(l, "name"))
		json_object_set_new(l, "name", json_string("test"));
	if (!json_object_get(l, "bind"))
		json_object_set_new(l, "bind", json_string("127.0.0.1:5300"));
	if (plugin && plugin->name) {
		json_t *hd = json_object_get(l, "handler");
		if (!hd)
			json_object_set_new(l, "handler", hd = json_object());
		if (json_is_object(hd) && !json_object_get(hd, "plugin"))
			json_object_set_new(hd, "plugin", json_string(plugin->name));
	}
	/* Not json_dumps(): its buffer comes from jansson's allocator, which
	 * a test may have replaced (as the daemon does). */
	size_t n = json_dumpb(root, NULL, 0, JSON_COMPACT);
	text = n ? malloc(n + 1) : NULL;
	if (text && json_dumpb(root, text, n, JSON_COMPACT) == n)
		text[n] = '\0';
	else {
		free(text);
		text = NULL;
		set_err(err, errlen, "harness config: out of memory");
	}
out:
	json_decref(root);
	return text;
}

struct dg_harness *dg_harness_new(const char *listener, const struct dg_plugin *plugin,
                                  char *err, size_t errlen)
{
	struct dg_harness *h = calloc(1, sizeof(*h));
	char *text = NULL, cerr[512];

	set_err(err, errlen, "%s", "");
	if (!h) {
		set_err(err, errlen, "out of memory");
		return NULL;
	}
	h->now_ms = DG_HARNESS_EPOCH_MS;
	text = config_text(listener, plugin, err, errlen);
	if (!text)
		goto out_free;
	if (dg_config_parse(text, strlen(text), "harness config", ".", DG_PLUGIN_DIR, &h->cfg, cerr,
	                    sizeof(cerr))) {
		set_err(err, errlen, "%s", cerr);
		goto out_free;
	}
	struct dg_server_hooks hooks = {
		.clock = fake_clock, .clock_arg = h, .send = capture, .send_arg = h, .plugin = plugin,
		.err = err, .errlen = errlen,
	};
	if (dg_server_init_hooked(&h->srv, h->cfg, DG_PLUGIN_DIR, &hooks)) {
		if (err && errlen && !err[0])
			set_err(err, errlen, "cannot start the listener (see the log)");
		goto out_free;
	}
	free(text);
	return h;

out_free:
	free(text);
	dg_harness_free(h);
	return NULL;
}

void dg_harness_free(struct dg_harness *h)
{
	if (!h)
		return;
	enter(h);
	dg_server_release(&h->srv);
	dg_config_free(h->cfg);
	dg_harness_clear(h);
	free(h->replies);
	free(h);
}

static int parse_peer(const char *text, struct dg_addr *a)
{
	if (!text || !dg_addr_parse(text, a)) {
		fprintf(stderr, "dg_harness: '%s' is not an address (\"127.0.0.1:5000\", \"[::1]:5000\")\n",
		        text ? text : "(null)");
		return DG_EINVAL;
	}
	return DG_OK;
}

static bool addr_ok(const struct sockaddr *sa, socklen_t len)
{
	return sa && ((sa->sa_family == AF_INET && len >= sizeof(struct sockaddr_in)) ||
	              (sa->sa_family == AF_INET6 && len >= sizeof(struct sockaddr_in6)));
}

int dg_harness_send_addr(struct dg_harness *h, const struct sockaddr *peer, socklen_t peerlen,
                         const struct sockaddr *local, socklen_t locallen,
                         const void *data, size_t len)
{
	struct dg_server *srv = enter(h);
	struct dg_listener *l = &srv->listeners[0];
	struct dg_sock *s = &l->socks[0];
	union dg_sockaddr p, loc;

	if (!addr_ok(peer, peerlen) || (local && !addr_ok(local, locallen)) || (!data && len)) {
		fprintf(stderr, "dg_harness: a datagram from or to an address that is not AF_INET or "
		        "AF_INET6\n");
		return DG_EINVAL;
	}
	if (!local) {
		local = (const struct sockaddr *)&s->bound.ss;
		locallen = s->bound.len;
	}
	memset(&p, 0, sizeof(p));
	memset(&loc, 0, sizeof(loc));
	memcpy(&p, peer, peerlen < sizeof(p) ? peerlen : sizeof(p));
	memcpy(&loc, local, locallen < sizeof(loc) ? locallen : sizeof(loc));
	/* As recvmmsg with MSG_TRUNC: at most max_datagram bytes land in
	 * the buffer, the length is the datagram's own. */
	size_t room = l->conf->max_datagram;
	memcpy(srv->rx_buf, data, len < room ? len : room);
	dg_server_clock(srv);
	dg_dispatch(s, srv->rx_buf, len, 0, &p.sa, peerlen, &loc.sa, locallen);
	if (!h->in_batch)
		settle(h);
	return DG_OK;
}

int dg_harness_send(struct dg_harness *h, const char *peer, const void *data, size_t len)
{
	struct dg_addr a;

	if (parse_peer(peer, &a))
		return DG_EINVAL;
	return dg_harness_send_addr(h, (const struct sockaddr *)&a.ss, a.len, NULL, 0, data, len);
}

int dg_harness_send_text(struct dg_harness *h, const char *peer, const char *text)
{
	return dg_harness_send(h, peer, text, text ? strlen(text) : 0);
}

int dg_harness_send_packet(struct dg_harness *h, const char *peer, const struct dg_packet *pkt)
{
	struct dg_listener *l = &enter(h)->listeners[0];
	struct dg_addr a;
	struct dg_outdgram out = { 0 };
	int rc;

	if (parse_peer(peer, &a) || !pkt)
		return DG_EINVAL;
	out.cap = l->conf->max_datagram;
	out.buf = malloc(out.cap);
	if (!out.buf)
		return DG_ENOMEM;
	rc = dg_codec_append(l->codec, pkt, &out);
	if (rc == DG_OK)
		rc = dg_harness_send_addr(h, (const struct sockaddr *)&a.ss, a.len, NULL, 0, out.buf,
		                          out.used);
	free(out.buf);
	return rc;
}

void dg_harness_batch_begin(struct dg_harness *h)
{
	h->in_batch = true;
}

void dg_harness_batch_end(struct dg_harness *h)
{
	h->in_batch = false;
	settle(h);
}

uint64_t dg_harness_now(const struct dg_harness *h)
{
	return h->now_ms - DG_HARNESS_EPOCH_MS;
}

void dg_harness_advance(struct dg_harness *h, uint64_t ms)
{
	struct dg_server *srv = enter(h);
	uint64_t target = h->now_ms + ms, due;

	settle(h);
	while (dg_tmheap_next(&srv->timers, &due) && due <= target) {
		if (due > h->now_ms)
			h->now_ms = due;
		dg_server_clock(srv);
		dg_tmheap_run(&srv->timers, h->now_ms);
		settle(h);
	}
	h->now_ms = target;
	dg_server_clock(srv);
	settle(h);
}

static void on_run_tick(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what, (void)arg;
}

bool dg_harness_run(struct dg_harness *h, size_t replies, unsigned real_ms)
{
	struct dg_server *srv = enter(h);
	struct timeval tick = { 0, 10000 };
	struct event *ev = event_new(srv->base, -1, EV_PERSIST, on_run_tick, NULL);
	double start;
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	start = (double)ts.tv_sec * 1000 + (double)ts.tv_nsec / 1e6;
	/* A 10 ms tick bounds each wait, so the deadline is seen. */
	if (ev)
		event_add(ev, &tick);
	while (h->n_replies < replies) {
		clock_gettime(CLOCK_MONOTONIC, &ts);
		if ((double)ts.tv_sec * 1000 + (double)ts.tv_nsec / 1e6 - start >= real_ms || !ev)
			break;
		event_base_loop(srv->base, EVLOOP_ONCE);
		settle(h);
	}
	if (ev)
		event_free(ev);
	settle(h);
	return h->n_replies >= replies;
}

void dg_harness_poll(struct dg_harness *h)
{
	struct dg_server *srv = enter(h);

	settle(h);
	/* libevent: a raised signal is a byte on its internal socketpair, whose
	 * callback activates the signal's events within this same pass. */
	event_base_loop(srv->base, EVLOOP_NONBLOCK);
	settle(h);
}

size_t dg_harness_replies(const struct dg_harness *h)
{
	return h->n_replies;
}

const struct dg_harness_reply *dg_harness_reply(const struct dg_harness *h, size_t i)
{
	return i < h->n_replies ? &h->replies[i] : NULL;
}

void dg_harness_clear(struct dg_harness *h)
{
	for (size_t i = 0; i < h->n_replies; i++)
		free((void *)h->replies[i].data);
	h->n_replies = 0;
}

bool dg_harness_reply_is_to(const struct dg_harness *h, size_t i, const char *peer,
                            const char *text)
{
	const struct dg_harness_reply *r = dg_harness_reply(h, i);
	char got[256], want[256];
	size_t n = text ? strlen(text) : 0;

	if (!r) {
		fprintf(stderr, "dg_harness: no reply %zu (%zu replies)\n", i, h->n_replies);
		return false;
	}
	if (r->len != n || (n && memcmp(r->data, text, n))) {
		fprintf(stderr, "dg_harness: reply %zu is \"%s\" (%zu bytes), not \"%s\"\n", i,
		        dg_log_escape(r->data, r->len, got, sizeof(got)), r->len,
		        dg_log_escape(text ? text : "", n, want, sizeof(want)));
		return false;
	}
	if (peer && strcmp(peer, r->to_text)) {
		fprintf(stderr, "dg_harness: reply %zu goes to %s, not %s\n", i, r->to_text, peer);
		return false;
	}
	return true;
}

bool dg_harness_reply_is(const struct dg_harness *h, size_t i, const char *text)
{
	return dg_harness_reply_is_to(h, i, NULL, text);
}

uint64_t dg_harness_counter(const struct dg_harness *h, const char *name)
{
	const struct dg_counters *c = h->srv.listeners[0].c;

	if (!name)
		return UINT64_MAX;
	for (const struct dg_counter_field *f = dg_counter_fields; f->name; f++)
		if (!strcmp(name, f->name))
			return *(const uint64_t *)((const char *)c + f->off);
	if (!strncmp(name, "drop_", 5))
		for (int d = 0; d < DG_DROP__COUNT; d++)
			if (!strcmp(name + 5, dg_drop_names[d]))
				return c->drop[d];
	if (!strncmp(name, "tx_drop_", 8))
		for (int d = 0; d < DG_TXDROP__COUNT; d++)
			if (!strcmp(name + 8, dg_txdrop_names[d]))
				return c->tx_drop[d];
	for (int m = 0; m < DG_PLUGIN_METRICS_MAX; m++)
		if (c->plugin[m].name[0] && !strcmp(name, c->plugin[m].name))
			return (uint64_t)c->plugin[m].value;
	fprintf(stderr, "dg_harness: no counter '%s' (the names of the stats line, or a plugin "
	        "metric)\n", name);
	return UINT64_MAX;
}

const char *dg_harness_stats(const struct dg_harness *h, char *buf, size_t len)
{
	return dg_counters_format(h->srv.listeners[0].c, buf, len);
}

unsigned dg_harness_sessions(const struct dg_harness *h)
{
	return h->srv.listeners[0].sessions.count;
}

unsigned dg_harness_pending(const struct dg_harness *h)
{
	return h->srv.rt.used;
}

void *dg_harness_state(const struct dg_harness *h)
{
	return h->srv.listeners[0].state;
}
