/* relay: forwards each packet to an upstream UDP server and replies to the
 * original peer with the upstream's answer: a handler that waits for
 * another service without blocking the loop.
 *
 * config (relay_options, checked by the host):
 *   "upstream": "a.b.c.d:port" or "[ipv6]:port" (required)
 *   "timeout_ms": how long to wait for the upstream (1000); keep it below
 *                 the listener's handler_timeout_ms
 *   "max_inflight": requests at the upstream at once (256); more wait in a
 *                 FIFO of the same size, beyond that they get an error
 *   "linger_ms": how long the socket of a finished request stays bound
 *                 (5000), so stray datagrams for it are discarded
 *
 * Matching. UDP answers carry nothing that names their request, whatever
 * the upstream's protocol, except the port they are sent to. So every
 * request gets a socket of its own, opened for it (a fresh source port),
 * and the first datagram that socket receives is the answer; the socket is
 * never used for another request. After the request ends (answered, timed
 * out, refused, or abandoned by the server) the socket stays bound but
 * unread for linger_ms, so a duplicate, a second datagram of the answer or
 * a late answer is dropped with it instead of reaching a closed port that
 * the kernel might hand to a new request at once. At most max_inflight
 * sockets linger (the oldest is closed first), so the relay holds at most
 * 2 * max_inflight sockets. Only a datagram that arrives after its socket
 * was closed, and to a port the kernel has since picked again for a new
 * request (the kernel picks ports at random), could be taken for that
 * request's answer.
 *
 * Errors are JSON replies {"error": "upstream timeout" | "upstream
 * refused" | ...}: for a bytes payload the same text is sent.
 *
 * Each request in progress keeps its slot or its place in the FIFO in its
 * data slot (host->request_set_data): the host hands it back and frees it
 * (entry_end) however the request ends, answered, refused, timed out or
 * abandoned, so nothing is searched for by handle. */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <stddef.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>
#include <jansson.h>
#include <dgramd/plugin.h>
#include <dgramd/plugin-util.h>

struct relay;

/* A request's data slot: its upstream slot or its place in the FIFO. */
struct entry {
	dg_req_t req;
	struct relay *r;
	bool waiting;
	bool taken;               /* waiting: already off the FIFO */
};

/* A request at the upstream, on a socket of its own. */
struct slot {
	struct entry e;           /* first: a slot is its entry */
	struct relay *r;
	int fd;                   /* -1 when free */
	struct event *ev_read;    /* made once, assigned to each new socket */
	uint64_t deadline_ms;     /* at the upstream: when timeout_ms passes */
	struct dg_util_link link; /* on r->inflight or r->free */
};

/* A request waiting for a free slot. */
struct waiting {
	struct entry e;           /* first */
	struct dg_util_link link; /* on r->fifo until taken */
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
	unsigned linger_ms;
	struct slot *slots;
	unsigned n_slots;            /* slots set up so far (lazily) */
	struct dg_util_list free;    /* slots set up and unused */
	struct dg_util_list inflight; /* slots at the upstream, oldest (first due) first */
	struct dg_util_list fifo;    /* struct waiting, oldest first */
	/* On the server's timers and clock (host->timer_start, host->now_ms),
	 * so the harness's fake clock drives them: one for the oldest request
	 * at the upstream, one for the oldest lingering socket. The host frees
	 * each after its callback, and all of them before fini. */
	struct dg_timer *deadline;
	struct dg_timer *linger_timer;
	bool expiring;               /* in on_deadline: it arms the next one */
	/* Sockets of finished requests, oldest first (a ring of max_inflight). */
	int *linger_fd;
	uint64_t *linger_until;      /* host->now_ms */
	unsigned l_head, l_len;
	struct dg_util_ratelimit warn;
};

static void on_answer(evutil_socket_t fd, short what, void *arg);
static void entry_end(void *data);

static uint64_t now_ms(const struct relay *r)
{
	return r->host->now_ms(r->self);
}

/* One warning per second at most; the others are counted in the next. */
static void warn_limited(struct relay *r, const char *what, int err)
{
	unsigned long long quiet;

	if (dg_util_ratelimit_allow(&r->warn, now_ms(r), 1000, &quiet))
		r->host->log(r->self, DG_LOG_WARN, "%s: %s (%llu similar warnings suppressed)", what,
		             strerror(err), quiet);
}

/* ---- lingering sockets -------------------------------------------------- */

static void on_linger(void *arg);

static void linger_pop(struct relay *r)
{
	close(r->linger_fd[r->l_head]);
	r->l_head = (r->l_head + 1) % r->max_inflight;
	r->l_len--;
}

/* A host timer calling cb(r) at due (host->now_ms), or NULL after a
 * warning naming what it was for (out of memory). */
static struct dg_timer *timer_at(struct relay *r, uint64_t now, uint64_t due,
                                 void (*cb)(void *), const char *what)
{
	struct dg_timer *t = r->host->timer_start(r->self, due > now ? (unsigned)(due - now) : 0, cb, r);

	if (!t)
		warn_limited(r, what, ENOMEM);
	return t;
}

/* Wake when the oldest lingering socket is due. Without a timer (out of
 * memory) sockets linger until pushed out by newer ones: still bounded. */
static void linger_arm(struct relay *r, uint64_t now)
{
	r->linger_timer = timer_at(r, now, r->linger_until[r->l_head], on_linger,
	                           "cannot start a timer for linger_ms");
}

static void on_linger(void *arg)
{
	struct relay *r = arg;
	uint64_t now = now_ms(r);

	r->linger_timer = NULL; /* the host frees a timer that fired */
	while (r->l_len && r->linger_until[r->l_head] <= now)
		linger_pop(r);
	if (r->l_len)
		linger_arm(r, now);
}

/* The socket's request is over: keep it bound, unread, for linger_ms. */
static void linger_push(struct relay *r, int fd)
{
	uint64_t now = now_ms(r);

	if (!r->linger_ms) {
		close(fd);
		return;
	}
	if (r->l_len == r->max_inflight)
		linger_pop(r); /* the oldest goes early */
	unsigned i = (r->l_head + r->l_len) % r->max_inflight;
	r->linger_fd[i] = fd;
	r->linger_until[i] = now + r->linger_ms;
	r->l_len++;
	if (!r->linger_timer)
		linger_arm(r, now);
}

/* ---- requests ------------------------------------------------------------ */

/* Answer req {"error": msg} and complete it (entry_end runs). */
static void error_reply(struct relay *r, dg_req_t req, const char *msg)
{
	dg_util_reply_json(r->host, r->self, req, dg_util_error(msg, false), NULL);
	r->host->request_complete(r->self, req);
}

static void on_deadline(void *arg);

/* Watch the oldest request at the upstream (the first due: every request
 * waits timeout_ms). One timer for them all: O(1) per request, and a timer
 * is started per timeout_ms at most, not per request. Without a timer (out
 * of memory), handler_timeout_ms still ends requests. */
static void deadline_watch(struct relay *r)
{
	struct dg_util_link *n = dg_util_list_first(&r->inflight);

	if (!r->deadline && !r->expiring && n)
		r->deadline = timer_at(r, now_ms(r), DG_UTIL_ENTRY(n, struct slot, link)->deadline_ms,
		                       on_deadline, "cannot start a timer for timeout_ms");
}

/* Requests that waited timeout_ms for the upstream are answered "upstream
 * timeout" (entry_end finishes each slot, which may start a waiting
 * request: it goes to the tail). */
static void on_deadline(void *arg)
{
	struct relay *r = arg;
	uint64_t now = now_ms(r);
	struct dg_util_link *n;

	r->deadline = NULL; /* the host frees a timer that fired */
	r->expiring = true;
	while ((n = dg_util_list_first(&r->inflight))) {
		struct slot *s = DG_UTIL_ENTRY(n, struct slot, link);
		if (s->deadline_ms > now)
			break;
		error_reply(r, s->e.req, "upstream timeout");
	}
	r->expiring = false;
	deadline_watch(r);
}

/* A fresh connected socket (a new source port) for one request. */
static int slot_open(struct slot *s)
{
	struct relay *r = s->r;

	s->fd = socket(r->up.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (s->fd < 0)
		return DG_ERROR;
	if (connect(s->fd, (struct sockaddr *)&r->up, r->uplen) < 0 ||
	    event_assign(s->ev_read, r->base, s->fd, EV_READ | EV_PERSIST, on_answer, s) ||
	    event_add(s->ev_read, NULL)) {
		int e = errno;
		close(s->fd);
		s->fd = -1;
		errno = e;
		return DG_ERROR;
	}
	return DG_OK;
}

/* Send a request from slot s. False if it ended at once (an error reply
 * was sent and the request completed); the slot is then still s's to give. */
static bool slot_start(struct relay *r, struct slot *s, dg_req_t req, const void *data, size_t len)
{
	if (slot_open(s) != DG_OK) {
		warn_limited(r, "cannot open a socket to the upstream", errno);
		error_reply(r, req, "upstream socket failed");
		return false;
	}
	if (send(s->fd, data, len, 0) < 0) {
		error_reply(r, req, errno == ECONNREFUSED ? "upstream refused" : "upstream send failed");
		event_del(s->ev_read);
		linger_push(r, s->fd);
		s->fd = -1;
		return false;
	}
	s->e.req = req;
	s->deadline_ms = now_ms(r) + r->timeout_ms;
	dg_util_list_push(&r->inflight, &s->link);
	deadline_watch(r);
	return true;
}

static struct waiting *waiting_take(struct relay *r, struct waiting *w)
{
	dg_util_list_unlink(&r->fifo, &w->link);
	w->e.taken = true;
	return w;
}

/* The slot has no request any more: hand it to the waiting requests in
 * order (a loop, not recursion: each may fail at once), or free it. A
 * request that moves from the FIFO to the slot gets the slot as its data
 * (which frees its FIFO entry). */
static void slot_give(struct relay *r, struct slot *s)
{
	struct dg_util_link *n;

	while ((n = dg_util_list_first(&r->fifo))) {
		struct waiting *w = waiting_take(r, DG_UTIL_ENTRY(n, struct waiting, link));
		dg_req_t req = w->e.req;
		if (slot_start(r, s, req, w->data, w->len)) {
			r->host->request_set_data(r->self, req, &s->e, entry_end);
			return;
		}
	}
	dg_util_list_push(&r->free, &s->link);
}

/* The slot's request is over: its socket lingers, the slot moves on. */
static void slot_finish(struct slot *s)
{
	struct relay *r = s->r;

	dg_util_list_unlink(&r->inflight, &s->link);
	event_del(s->ev_read);
	s->e.req = 0;
	linger_push(r, s->fd);
	s->fd = -1;
	slot_give(r, s);
}

/* A request ended, however (the data slot's free_fn): its slot moves on,
 * or its FIFO entry goes. */
static void entry_end(void *data)
{
	struct entry *e = data;

	if (!e->waiting) {
		slot_finish((struct slot *)e);
		return;
	}
	struct waiting *w = (struct waiting *)e;
	if (!w->e.taken)
		waiting_take(e->r, w);
	free(w);
}

static void on_answer(evutil_socket_t fd, short what, void *arg)
{
	struct slot *s = arg;
	struct relay *r = s->r;
	unsigned char buf[65536];
	(void)what;

	ssize_t n = recv(fd, buf, sizeof(buf), 0);
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
		return;
	dg_req_t req = s->e.req;
	/* Completing runs entry_end: the slot finishes there. */
	if (n < 0) {
		error_reply(r, req, errno == ECONNREFUSED ? "upstream refused" : "upstream receive failed");
	} else {
		struct dg_packet out = { .data = buf, .len = (size_t)n };
		r->host->request_reply(r->self, req, &out);
		r->host->request_complete(r->self, req);
	}
}

static struct slot *take_slot(struct relay *r)
{
	struct dg_util_link *n = dg_util_list_pop(&r->free);
	struct slot *s;

	if (n)
		return DG_UTIL_ENTRY(n, struct slot, link);
	if (r->n_slots == r->max_inflight)
		return NULL;
	s = &r->slots[r->n_slots];
	s->r = r;
	s->e.r = r;
	s->fd = -1;
	s->ev_read = event_new(r->base, -1, 0, on_answer, s);
	if (!s->ev_read)
		return NULL;
	r->n_slots++;
	return s;
}

static int relay_on_packet(void *state, const struct dg_request *req)
{
	struct relay *r = state;
	struct slot *s = take_slot(r);

	if (s) {
		if (slot_start(r, s, req->handle, req->packet.data, req->packet.len))
			r->host->request_set_data(r->self, req->handle, &s->e, entry_end);
		else
			slot_give(r, s);
		return DG_PENDING;
	}
	if (r->fifo.len >= r->max_inflight) {
		int rc = dg_util_reply_json(r->host, r->self, req->handle,
		                            dg_util_error("relay busy", false), NULL);
		return dg_util_verdict(rc);
	}
	struct waiting *w = malloc(sizeof(*w) + req->packet.len);
	if (!w)
		return DG_ENOMEM;
	w->e = (struct entry){ .req = req->handle, .r = r, .waiting = true };
	w->len = req->packet.len;
	memcpy(w->data, req->packet.data, req->packet.len);
	dg_util_list_push(&r->fifo, &w->link);
	r->host->request_set_data(r->self, req->handle, &w->e, entry_end);
	return DG_PENDING;
}

static void relay_fini(void *state)
{
	struct relay *r = state;
	struct dg_util_link *n;

	if (!r)
		return;
	/* Every request has ended (entry_end ran for each) and the host has
	 * cancelled our timers (it frees them): what is left is sockets. */
	for (unsigned i = 0; r->slots && i < r->n_slots; i++) {
		struct slot *s = &r->slots[i];
		if (s->fd >= 0) {
			event_del(s->ev_read);
			close(s->fd);
		}
		event_free(s->ev_read);
	}
	while ((n = dg_util_list_pop(&r->fifo)))
		free(DG_UTIL_ENTRY(n, struct waiting, link));
	while (r->l_len)
		linger_pop(r);
	free(r->linger_fd);
	free(r->linger_until);
	free(r->slots);
	free(r);
}

/* The config, filled in by the host (host->options). */
struct relay_opts {
	struct dg_option_addr upstream;
	int64_t timeout_ms, max_inflight, linger_ms;
};

#define O(field) offsetof(struct relay_opts, field)
static const struct dg_option relay_options[] = {
	{ .name = "upstream", .type = DG_OPT_ADDR, .offset = O(upstream), .flags = DG_OPT_REQUIRED,
	  .help = "the UDP server requests are forwarded to" },
	{ .name = "timeout_ms", .type = DG_OPT_INT, .offset = O(timeout_ms), .def = "1000",
	  .min = 1, .max = 3600000, .help = "how long to wait for the upstream's answer" },
	{ .name = "max_inflight", .type = DG_OPT_INT, .offset = O(max_inflight), .def = "256",
	  .min = 1, .max = 65536, .help = "requests at the upstream at once (as many more wait)" },
	{ .name = "linger_ms", .type = DG_OPT_INT, .offset = O(linger_ms), .def = "5000",
	  .min = 0, .max = 3600000, .help = "how long a finished request's socket stays bound" },
	{ .name = NULL },
};
#undef O

/* Tables sized from max_inflight, all allocated once at init. */
static int relay_alloc(struct relay *r)
{
	r->slots = calloc(r->max_inflight, sizeof(*r->slots));
	r->linger_fd = calloc(r->max_inflight, sizeof(*r->linger_fd));
	r->linger_until = calloc(r->max_inflight, sizeof(*r->linger_until));
	if (!r->slots || !r->linger_fd || !r->linger_until) {
		r->host->log(r->self, DG_LOG_ERROR, "out of memory for max_inflight %u", r->max_inflight);
		return DG_ENOMEM;
	}
	return DG_OK;
}

static int relay_init(struct dg_instance *self, const struct dg_host *host,
                      const json_t *config, void **state)
{
	const struct relay_opts *o = dg_util_options(self, host);
	struct relay *r;
	int rc;
	(void)config; /* checked and filled in by the host: o */

	*state = NULL;
	if (!o)
		return DG_EINVAL;
	if (!(r = calloc(1, sizeof(*r))))
		return DG_ENOMEM;
	dg_util_list_init(&r->free);
	dg_util_list_init(&r->inflight);
	dg_util_list_init(&r->fifo);
	r->host = host;
	r->self = self;
	r->base = host->event_base(self);
	r->up = o->upstream.addr;
	r->uplen = o->upstream.len;
	r->timeout_ms = (unsigned)o->timeout_ms;
	r->max_inflight = (unsigned)o->max_inflight;
	r->linger_ms = (unsigned)o->linger_ms;
	if ((rc = relay_alloc(r))) {
		relay_fini(r);
		return rc;
	}
	*state = r;
	return DG_OK;
}

DG_PLUGIN_EXPORT const struct dg_plugin dgramd_plugin = {
	DG_PLUGIN_HEADER,
	.name = "relay",
	.version = "1.1",
	.init = relay_init,
	.fini = relay_fini,
	.on_packet = relay_on_packet,
	.options = relay_options,
	.options_size = sizeof(struct relay_opts),
};
