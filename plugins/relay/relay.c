/* relay: forwards each packet to an upstream UDP server and replies to the
 * original peer with the upstream's answer: a handler that waits for
 * another service without blocking the loop.
 *
 * config:
 *   "upstream": "a.b.c.d:port" or "[ipv6]:port" (required)
 *   "timeout_ms": how long to wait for the upstream (1000); keep it below
 *                 the listener's handler_timeout_ms
 *   "max_inflight": requests at the upstream at once (256); more wait in a
 *                 FIFO of the same size, beyond that they get an error
 *
 * Matching: every in-flight request has its own connected socket (its own
 * source port), so an answer on socket i answers request i, whatever the
 * protocol. After a timeout the socket is replaced, so a late answer can
 * never be taken for the next request's. Errors are JSON replies
 * {"error": "upstream timeout" | "upstream refused" | ...}: for a bytes
 * payload the same text is sent. */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>
#include <jansson.h>
#include <dgramd/plugin.h>

struct relay;

struct slot {
	struct relay *r;
	int fd;
	struct event *ev_read;
	struct event *ev_timeout;
	dg_req_t req; /* 0: free */
	struct slot *next_free;
};

/* A request waiting for a free slot. */
struct waiting {
	struct waiting *next;
	dg_req_t req;
	size_t len;
	unsigned char data[];
};

struct relay {
	const struct dg_host *host;
	struct dg_instance *self;
	struct event_base *base;
	struct sockaddr_storage up;
	socklen_t uplen;
	unsigned timeout_ms;
	unsigned max_inflight;
	struct slot *slots;
	unsigned n_slots; /* slots created so far (lazily) */
	struct slot *free;
	struct waiting *w_head, *w_tail;
	unsigned w_len;
};

static void on_answer(evutil_socket_t fd, short what, void *arg);
static void on_slot_timeout(evutil_socket_t fd, short what, void *arg);

static void error_reply(struct relay *r, dg_req_t req, const char *msg)
{
	json_t *j = json_pack("{ss}", "error", msg);
	struct dg_packet out = { .json = j };

	if (j)
		r->host->reply(req, &out);
	json_decref(j);
	r->host->complete(req);
}

/* A fresh connected socket for a slot (a new source port). */
static int slot_open(struct slot *s)
{
	struct relay *r = s->r;

	s->fd = socket(r->up.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (s->fd < 0)
		return DG_ERROR;
	if (connect(s->fd, (struct sockaddr *)&r->up, r->uplen) < 0)
		goto out_close;
	s->ev_read = event_new(r->base, s->fd, EV_READ | EV_PERSIST, on_answer, s);
	if (!s->ev_read || event_add(s->ev_read, NULL))
		goto out_close;
	return DG_OK;

out_close:
	if (s->ev_read)
		event_free(s->ev_read);
	s->ev_read = NULL;
	close(s->fd);
	s->fd = -1;
	return DG_ERROR;
}

static void slot_close(struct slot *s)
{
	if (s->ev_read)
		event_free(s->ev_read);
	if (s->fd >= 0)
		close(s->fd);
	s->ev_read = NULL;
	s->fd = -1;
}

static void start(struct relay *r, struct slot *s, dg_req_t req, const void *data, size_t len);

/* The slot's request is done: give the slot to the next waiting request. */
static void slot_release(struct slot *s)
{
	struct relay *r = s->r;

	event_del(s->ev_timeout);
	s->req = 0;
	if (s->fd < 0 && slot_open(s) != DG_OK) {
		r->host->log(r->self, DG_LOG_WARN, "cannot reopen an upstream socket: %s", strerror(errno));
		return; /* the slot stays out of use */
	}
	if (r->w_head) {
		struct waiting *w = r->w_head;
		r->w_head = w->next;
		if (!r->w_head)
			r->w_tail = NULL;
		r->w_len--;
		start(r, s, w->req, w->data, w->len);
		free(w);
		return;
	}
	s->next_free = r->free;
	r->free = s;
}

static void start(struct relay *r, struct slot *s, dg_req_t req, const void *data, size_t len)
{
	struct timeval tv = { .tv_sec = r->timeout_ms / 1000, .tv_usec = (r->timeout_ms % 1000) * 1000 };

	s->req = req;
	if (send(s->fd, data, len, 0) < 0) {
		/* ECONNREFUSED here is an ICMP error left by an earlier send. */
		error_reply(r, req, errno == ECONNREFUSED ? "upstream refused" : "upstream send failed");
		slot_release(s);
		return;
	}
	event_add(s->ev_timeout, &tv);
}

static void on_answer(evutil_socket_t fd, short what, void *arg)
{
	struct slot *s = arg;
	struct relay *r = s->r;
	unsigned char buf[65536];
	(void)what;

	ssize_t n = recv(fd, buf, sizeof(buf), 0);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (!s->req)
		return; /* no request waits on this socket: a stray datagram */
	dg_req_t req = s->req;
	if (n < 0) {
		error_reply(r, req, errno == ECONNREFUSED ? "upstream refused" : "upstream receive failed");
	} else {
		struct dg_packet out = { .data = buf, .len = (size_t)n };
		r->host->reply(req, &out);
		r->host->complete(req);
	}
	slot_release(s);
}

static void on_slot_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct slot *s = arg;
	(void)fd, (void)what;

	error_reply(s->r, s->req, "upstream timeout");
	slot_close(s); /* a late answer must not reach the next request */
	slot_release(s);
}

static struct slot *take_slot(struct relay *r)
{
	struct slot *s = r->free;

	if (s) {
		r->free = s->next_free;
		return s;
	}
	if (r->n_slots == r->max_inflight)
		return NULL;
	s = &r->slots[r->n_slots];
	s->r = r;
	s->fd = -1;
	s->ev_timeout = evtimer_new(r->base, on_slot_timeout, s);
	if (!s->ev_timeout || slot_open(s) != DG_OK) {
		if (s->ev_timeout)
			event_free(s->ev_timeout);
		s->ev_timeout = NULL;
		return NULL;
	}
	r->n_slots++;
	return s;
}

static int relay_on_packet(void *state, const struct dg_request *req)
{
	struct relay *r = state;
	struct slot *s = take_slot(r);

	if (s) {
		start(r, s, req->handle, req->packet.data, req->packet.len);
		return DG_PENDING;
	}
	if (r->w_len >= r->max_inflight) {
		json_t *j = json_pack("{ss}", "error", "relay busy");
		struct dg_packet out = { .json = j };
		if (j)
			r->host->reply(req->handle, &out);
		json_decref(j);
		return DG_DONE;
	}
	struct waiting *w = malloc(sizeof(*w) + req->packet.len);
	if (!w)
		return DG_ENOMEM;
	w->next = NULL;
	w->req = req->handle;
	w->len = req->packet.len;
	memcpy(w->data, req->packet.data, req->packet.len);
	if (r->w_tail)
		r->w_tail->next = w;
	else
		r->w_head = w;
	r->w_tail = w;
	r->w_len++;
	return DG_PENDING;
}

/* The server gave up on a request (handler_timeout_ms): forget it. */
static void relay_on_timeout(void *state, dg_req_t req)
{
	struct relay *r = state;

	for (unsigned i = 0; i < r->n_slots; i++) {
		if (r->slots[i].req == req) {
			slot_close(&r->slots[i]);
			slot_release(&r->slots[i]);
			return;
		}
	}
	for (struct waiting **pp = &r->w_head; *pp; pp = &(*pp)->next) {
		if ((*pp)->req == req) {
			struct waiting *w = *pp;
			*pp = w->next;
			if (r->w_tail == w) {
				r->w_tail = NULL;
				for (struct waiting *x = r->w_head; x; x = x->next)
					r->w_tail = x;
			}
			r->w_len--;
			free(w);
			return;
		}
	}
}

static void relay_fini(void *state)
{
	struct relay *r = state;

	if (!r)
		return;
	for (unsigned i = 0; i < r->n_slots; i++) {
		slot_close(&r->slots[i]);
		event_free(r->slots[i].ev_timeout);
	}
	while (r->w_head) {
		struct waiting *w = r->w_head;
		r->w_head = w->next;
		free(w);
	}
	free(r->slots);
	free(r);
}

static int relay_configure(struct relay *r, const json_t *config)
{
	const char *key;
	json_t *v;

	r->timeout_ms = 1000;
	r->max_inflight = 256;
	json_object_foreach((json_t *)config, key, v) {
		if (!strcmp(key, "upstream")) {
			if (!json_is_string(v) ||
			    r->host->addr_parse(json_string_value(v), &r->up, &r->uplen) != DG_OK) {
				r->host->log(r->self, DG_LOG_ERROR, "config.upstream: expected a numeric "
				             "\"a.b.c.d:port\" or \"[ipv6]:port\"");
				return DG_EINVAL;
			}
		} else if (!strcmp(key, "timeout_ms") && json_is_integer(v) &&
		           json_integer_value(v) >= 1 && json_integer_value(v) <= 3600000) {
			r->timeout_ms = (unsigned)json_integer_value(v);
		} else if (!strcmp(key, "max_inflight") && json_is_integer(v) &&
		           json_integer_value(v) >= 1 && json_integer_value(v) <= 65536) {
			r->max_inflight = (unsigned)json_integer_value(v);
		} else {
			r->host->log(r->self, DG_LOG_ERROR, "config.%s: %s", key,
			             !strcmp(key, "timeout_ms") ? "expected an integer from 1 to 3600000" :
			             !strcmp(key, "max_inflight") ? "expected an integer from 1 to 65536" :
			             "unknown key (known: upstream, timeout_ms, max_inflight)");
			return DG_EINVAL;
		}
	}
	if (!r->uplen) {
		r->host->log(r->self, DG_LOG_ERROR, "config.upstream: missing (required)");
		return DG_EINVAL;
	}
	return DG_OK;
}

static int relay_init(struct dg_instance *self, const struct dg_host *host,
                      const json_t *config, void **state)
{
	struct relay *r = calloc(1, sizeof(*r));

	*state = NULL;
	if (!r)
		return DG_ENOMEM;
	r->host = host;
	r->self = self;
	r->base = host->event_base(self);
	if (relay_configure(r, config) ||
	    !(r->slots = calloc(r->max_inflight, sizeof(*r->slots)))) {
		relay_fini(r);
		return DG_EINVAL;
	}
	*state = r;
	return DG_OK;
}

DG_PLUGIN_EXPORT const struct dg_plugin dgramd_plugin = {
	DG_PLUGIN_HEADER,
	.name = "relay",
	.version = "1.0",
	.init = relay_init,
	.fini = relay_fini,
	.on_packet = relay_on_packet,
	.on_timeout = relay_on_timeout,
};
