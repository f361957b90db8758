/* tftp: a read-only TFTP server (RFC 1350, octet mode) with options
 * (RFC 2347 OACK, 2348 blksize, 2349 timeout and tsize), on a listener with
 * codec "raw".
 *
 * One transfer is one request that converses (host->request_await): the
 * read request (RRQ) starts it; each DATA block (or the OACK) is sent and
 * the request waits for the same peer's next packet with the transfer's
 * timeout. The ACK of the block sends the next one; on a timeout the block
 * is sent again, then the transfer is abandoned when it has no resend
 * left. All of that once the client has acknowledged a block (or the
 * OACK): it is then validated. Before, the source may be spoofed, so a
 * timeout sends nothing: the first packet goes out once, and again only
 * for the RRQ again (one datagram out per datagram in), and the transfer
 * ends after the server's timeout_ms (the client's timeout option applies
 * from its first ACK on).
 * An ACK proves little either: the server's TID is the listener's port and
 * block numbers are predictable, so a blind spoofer can send RRQ then ACK
 * 0 (the OACK's number). So resends are earned: each new ACK earns one
 * (a transfer holds at most retries), each resend after a timeout spends
 * one, and a timeout with none left abandons the transfer. A transfer
 * never sends more than two datagrams per datagram its peer sent: the
 * answer to it and at most one resend. The client's timeout option is
 * granted up to max_client_timeout_ms (10 s: curl asks 6, U-Boot 5), else
 * left out of the OACK (RFC 2349) and timeout_ms applies.
 * Duplicate and old ACKs are ignored and the wait goes on for what remains
 * of the timeout: a block is never resent because of a duplicate ACK (the
 * Sorcerer's Apprentice bug, RFC 1123 4.2.3.1). The ACK of the last block
 * (shorter than blksize) completes the request. The client's TID is its
 * source port, so each transfer is its own session; the server's TID is
 * the listener's port.
 *
 * Memory per transfer: the struct and one block buffer (blksize + 4
 * bytes), and one open file, read block by block; max_transfers bounds how
 * many exist at once. The request's data slot owns them: the host frees
 * them however the request ends.
 *
 * Places: transfers not validated yet are on a list, oldest first, and on
 * their source address's list (a source table keyed by address, an IPv6
 * one by its /64, with a random hash key); validated ones are on two other
 * lists, ordered by their last new ACK (each new ACK moves the transfer
 * last). A validated transfer with no new ACK for the server's timeout_ms
 * (it waits on a resend, whatever the client's timeout) is stalled. When a
 * new RRQ needs a place (its source holds max_transfers_per_source, or
 * max_unvalidated_transfers or max_transfers are reached) it evicts,
 * silently, the oldest unacknowledged transfer (of its source first), else
 * the longest-stalled acknowledged one; a request is refused ("server
 * busy", "too many transfers from this address") only when every place it
 * could take is acknowledged and progressing. So a flood that never
 * acknowledges holds at most max_unvalidated_transfers places, each for
 * timeout_ms, and a spoofer's guessed ACK 0 holds a place for timeout_ms
 * unless it guesses the next ACK each timeout_ms: holding places costs one
 * datagram per place per timeout_ms, not one per 25 minutes. A client that
 * ACKs within timeout_ms is never evicted. All of it O(1) per request.
 *
 * Confinement: a name with a ".." component, an absolute name or a control
 * character is refused before any lookup (ERROR 2). The lookup is relative
 * to the root directory's descriptor, with openat2(RESOLVE_BENEATH |
 * RESOLVE_NO_MAGICLINKS) by default ("symlinks": "beneath": a symbolic link
 * is followed only while it stays beneath root), or one component at a time
 * with O_NOFOLLOW ("symlinks": "refuse", and where openat2 is missing: no
 * symbolic link is followed at all). Only regular files are served (opened
 * O_NONBLOCK, so a FIFO never blocks the loop, then checked with fstat).
 *
 * Write requests get ERROR 2; netascii and mail mode ERROR 0 (only octet is
 * served: a netascii client would get wrong line ends otherwise). Malformed
 * packets get ERROR 4, packets of no transfer ERROR 5, ERROR packets are
 * never answered.
 *
 * Amplification: an RRQ without options gets DATA 1 at once (516 bytes for
 * ~20), which the listener's amplification guard refuses below a factor of
 * about 516 / the RRQ's size: then the client gets a short ERROR 0 asking
 * for options. An RRQ with options gets an OACK (smaller than the RRQ), and
 * its ACK 0 marks the peer validated (host->peer_validate) before the first
 * DATA; without options the ACK of DATA 1 does. With no resend before
 * that, a spoofed RRQ draws one datagram: DATA 1 (at most 516 bytes) or
 * the OACK, whatever its own size or the credit it earns; a guessed ACK
 * draws at most two (the next block and one resend). docs/operating.md,
 * "Replies larger than requests", says what this proves and what it does not. */
#define _GNU_SOURCE /* O_PATH, syscall; plugins build without config.h */

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#if defined(__has_include)
#if __has_include(<linux/openat2.h>)
#include <linux/openat2.h>
#define TFTP_HAVE_OPENAT2 1
#endif
#endif

#include <dgramd/plugin.h>
#include <dgramd/plugin-util.h>

#include "proto.h"

enum tftp_symlinks { TFTP_SYMLINKS_BENEATH = 0, TFTP_SYMLINKS_REFUSE = 1 };

struct tftp_options {
	const char *root;
	int64_t max_blksize;
	int64_t timeout_ms;
	int64_t max_client_timeout_ms;
	int64_t retries;
	int64_t max_transfers;
	int64_t max_unvalidated;  /* max_unvalidated_transfers */
	int64_t max_per_source;   /* max_transfers_per_source */
	int symlinks; /* enum tftp_symlinks */
};

/* Checked and filled in by the host before init (host->options). */
#define OPT(field) offsetof(struct tftp_options, field)
static const struct dg_option tftp_option_table[] = {
	{ .name = "root", .type = DG_OPT_STRING, .offset = OPT(root), .min = 1,
	  .max = PATH_MAX - 1, .flags = DG_OPT_REQUIRED, .help = "the directory served, read-only" },
	{ .name = "max_blksize", .type = DG_OPT_INT, .offset = OPT(max_blksize), .def = "1468",
	  .min = TFTP_BLKSIZE_DEFAULT, .max = TFTP_BLKSIZE_MAX,
	  .help = "largest blksize granted (RFC 2348); at most the listener's max_datagram - 4" },
	{ .name = "timeout_ms", .type = DG_OPT_INT, .offset = OPT(timeout_ms), .def = "1000",
	  .min = 10, .max = 255000,
	  .help = "wait for an ACK before sending again (a client's timeout option wins once "
	          "it has acknowledged a block); before its first ACK, the transfer's whole life; "
	          "an acknowledged transfer with no new ACK for this long is stalled: evictable" },
	{ .name = "max_client_timeout_ms", .type = DG_OPT_INT, .offset = OPT(max_client_timeout_ms),
	  .def = "10000", .min = 0, .max = 255000,
	  .help = "largest timeout option granted (RFC 2349); a larger one is left out of the "
	          "OACK and timeout_ms applies" },
	{ .name = "retries", .type = DG_OPT_INT, .offset = OPT(retries), .def = "5", .min = 0,
	  .max = 100, .help = "times one packet is sent again before the transfer is abandoned "
	  "(once the client has acknowledged a block); each resend spends one that a new ACK "
	  "earned, so resends never outnumber the client's new ACKs" },
	{ .name = "max_transfers", .type = DG_OPT_INT, .offset = OPT(max_transfers), .def = "256",
	  .min = 1, .max = 65536, .help = "transfers at once, each with an open file and a block buffer" },
	{ .name = "max_unvalidated_transfers", .type = DG_OPT_INT, .offset = OPT(max_unvalidated),
	  .def = "128", .min = 1, .max = 65536,
	  .help = "transfers whose client has not acknowledged a block yet; a new request "
	          "evicts the oldest of them (at most max_transfers)" },
	{ .name = "max_transfers_per_source", .type = DG_OPT_INT, .offset = OPT(max_per_source),
	  .def = "16", .min = 1, .max = 65536,
	  .help = "transfers of one source address (an IPv6 one by its /64)" },
	{ .name = "symlinks", .type = DG_OPT_ENUM, .offset = OPT(symlinks), .def = "\"beneath\"",
	  .choices = "beneath|refuse",
	  .help = "beneath: follow symbolic links that stay inside root; refuse: follow none" },
	{ .name = NULL },
};
#undef OPT

/* Plugin metrics, by index; names and help in metric_defs. */
enum {
	M_TRANSFERS, M_COMPLETED, M_ABANDONED, M_RETRANSMITS, M_ERRORS, M_BYTES, M_ACTIVE,
	M_UNVALIDATED, M_EVICTED, M_EVICTED_STALLED, M__COUNT
};

static const struct {
	const char *name, *help;
	int kind;
} metric_defs[M__COUNT] = {
	[M_TRANSFERS] = { "transfers", "Read requests that started a transfer", DG_METRIC_COUNTER },
	[M_COMPLETED] = { "completed", "Transfers whose last block was acknowledged", DG_METRIC_COUNTER },
	[M_ABANDONED] = { "abandoned", "Transfers ended by timeouts: the retries (or the resends "
	                  "its ACKs earned) of an acknowledged one spent, or the first wait of one "
	                  "never acknowledged", DG_METRIC_COUNTER },
	[M_RETRANSMITS] = { "retransmits", "Packets sent again: after a timeout, or for the RRQ "
	                    "again before the first ACK", DG_METRIC_COUNTER },
	[M_ERRORS] = { "errors", "ERROR packets sent", DG_METRIC_COUNTER },
	[M_BYTES] = { "bytes", "File bytes acknowledged by clients", DG_METRIC_COUNTER },
	[M_ACTIVE] = { "active", "Transfers in progress", DG_METRIC_GAUGE },
	[M_UNVALIDATED] = { "unvalidated", "Transfers whose client has not acknowledged a block yet",
	                    DG_METRIC_GAUGE },
	[M_EVICTED] = { "evicted", "Unacknowledged transfers ended to make room for a new request",
	                DG_METRIC_COUNTER },
	[M_EVICTED_STALLED] = { "evicted_stalled", "Acknowledged transfers with no new ACK for "
	                        "timeout_ms ended to make room for a new request",
	                        DG_METRIC_COUNTER },
};

/* The transfers of one source address (an IPv6 one by its /64): an entry of
 * the source table while it has any. */
struct source {
	struct source *next, **pprev; /* hash chain */
	uint32_t key[3];              /* family (4, 6), address words */
	unsigned transfers;
	struct dg_util_list unvalidated; /* its unacknowledged transfers (xfer.slink) */
	struct dg_util_list acked;       /* its acknowledged ones, by their last new ACK
	                                    (xfer.slink) */
};

struct tftp {
	const struct dg_host *host;
	struct dg_instance *self;
	const struct tftp_options *opt; /* the host's (host->options), until fini */
	int rootfd;                  /* O_PATH directory, -1 while root is missing */
	bool beneath;                /* openat2 in use */
	bool warned_e2big;
	unsigned active;             /* transfers in progress */
	unsigned max_unvalidated;    /* the option, at most max_transfers */
	struct dg_util_list unvalidated; /* transfers not acknowledged yet, oldest first
	                                    (xfer.ulink) */
	struct dg_util_list acked;   /* acknowledged transfers, the longest without a new
	                                ACK first (xfer.ulink) */
	struct source **buckets;     /* the source table: 2^bits chains */
	unsigned bits;
	uint64_t hkey[4];            /* its random hash key */
	struct dg_metric *m[M__COUNT];
};

/* One transfer: the request's data slot (xfer_free). */
struct xfer {
	struct tftp *t;
	dg_req_t req;
	struct dg_session *session;
	struct source *src;
	struct dg_util_link ulink; /* on t->unvalidated while not validated, then t->acked */
	struct dg_util_link slink; /* likewise on src->unvalidated, then src->acked */
	int fd;
	uint16_t block;      /* of the packet in pkt: DATA's number (it wraps to 0
	                        after 65535), 0 for an OACK */
	bool oack;           /* pkt is the OACK, not a DATA block */
	bool last;           /* pkt is the last DATA block */
	bool validated;      /* the client acknowledged a block (or the OACK) */
	unsigned blksize;
	unsigned timeout_ms; /* the wait for an ACK now */
	unsigned granted_ms; /* the wait once validated: the client's timeout
	                        option, or timeout_ms */
	unsigned credit;     /* resends earned: one per new ACK, at most retries */
	uint64_t progress;   /* ms (host->now_ms) of the last new ACK */
	uint64_t deadline;   /* ms (host->now_ms) when the wait for pkt's ACK ends */
	size_t len;          /* bytes of pkt to send */
	unsigned char pkt[]; /* TFTP_HEADER + blksize */
};

static void metric_add(struct tftp *t, int m, int64_t v)
{
	dg_util_metric_add(t->host, t->m[m], v);
}

/* The clock the host runs await steps on (the harness's fake one in
 * tests/plugins/test_tftp), so that what remains of a wait is measured on
 * it too. */
static uint64_t now_ms(const struct tftp *t)
{
	return t->host->now_ms(t->self);
}

/* ---- the file system ---- */

/* Open root as a directory handle; a missing root is not fatal (see init). */
static int root_open(struct tftp *t)
{
	if (t->rootfd >= 0)
		return 0;
	t->rootfd = open(t->opt->root, O_PATH | O_DIRECTORY | O_CLOEXEC);
	return t->rootfd < 0 ? -errno : 0;
}

#ifdef TFTP_HAVE_OPENAT2
static int open_beneath(int rootfd, const char *file)
{
	struct open_how how = {
		.flags = O_RDONLY | O_NOCTTY | O_NONBLOCK | O_CLOEXEC,
		.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS,
	};

	return (int)syscall(SYS_openat2, rootfd, file, &how, sizeof(how));
}
#endif

/* One component at a time, never following a symbolic link: O_NOFOLLOW
 * on the last, O_PATH | O_DIRECTORY | O_NOFOLLOW on the others (a link
 * there fails with ENOTDIR, told apart from a file by fstatat). */
static int open_refusing_links(int rootfd, const char *file)
{
	char comp[NAME_MAX + 1];
	int dir = rootfd, fd, err;

	for (const char *p = file;;) {
		const char *slash = strchr(p, '/');
		size_t n = slash ? (size_t)(slash - p) : strlen(p);
		struct stat st;

		if (n > NAME_MAX) {
			fd = -1;
			err = ENAMETOOLONG;
			break;
		}
		memcpy(comp, p, n);
		comp[n] = '\0';
		if (!slash) {
			fd = openat(dir, n ? comp : ".", O_RDONLY | O_NOCTTY | O_NONBLOCK | O_CLOEXEC |
			            O_NOFOLLOW);
			err = errno;
			break;
		}
		p = slash + 1;
		if (n == 0 || !strcmp(comp, "."))
			continue;
		fd = openat(dir, comp, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		err = errno;
		if (fd < 0 && err == ENOTDIR && !fstatat(dir, comp, &st, AT_SYMLINK_NOFOLLOW) &&
		    S_ISLNK(st.st_mode))
			err = ELOOP;
		if (fd < 0)
			break;
		if (dir != rootfd)
			close(dir);
		dir = fd;
	}
	if (dir != rootfd)
		close(dir);
	errno = err;
	return fd;
}

/* The TFTP error for a failed lookup (errno). */
static void open_error(int err, unsigned *code, const char **msg)
{
	static const struct {
		int err;
		unsigned code;
		const char *msg;
	} map[] = {
		{ ENOENT, TFTP_ENOTFOUND, "file not found" },
		{ ENOTDIR, TFTP_ENOTFOUND, "file not found" },
		{ ENAMETOOLONG, TFTP_ENOTFOUND, "file not found" },
		{ EXDEV, TFTP_EACCESS, "path leads out of root" },
		{ ELOOP, TFTP_EACCESS, "symbolic link refused" },
		{ EACCES, TFTP_EACCESS, "access violation" },
		{ EPERM, TFTP_EACCESS, "access violation" },
		{ EMFILE, TFTP_EUNDEF, "server busy" },
		{ ENFILE, TFTP_EUNDEF, "server busy" },
	};

	for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++) {
		if (map[i].err == err) {
			*code = map[i].code;
			*msg = map[i].msg;
			return;
		}
	}
	*code = TFTP_EUNDEF;
	*msg = "cannot open file";
}

/* Open file beneath root for reading: a regular file only. Returns the
 * descriptor, or -1 with the TFTP error in *code and *msg. */
static int file_open(struct tftp *t, const char *file, off_t *size, unsigned *code,
                     const char **msg)
{
	struct stat st;
	int fd, err;

	if ((err = -root_open(t))) {
		*code = TFTP_EUNDEF;
		*msg = "root directory unavailable";
		return -1;
	}
#ifdef TFTP_HAVE_OPENAT2
	if (t->beneath)
		fd = open_beneath(t->rootfd, file);
	else
#endif
		fd = open_refusing_links(t->rootfd, file);
	if (fd < 0) {
		open_error(errno, code, msg);
		return -1;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		*code = TFTP_EACCESS;
		*msg = "not a regular file";
		return -1;
	}
	*size = st.st_size;
	return fd;
}

/* ---- the source table ---- */

/* The key of a source address: an IPv4 one (an IPv4-mapped IPv6 one too)
 * whole, an IPv6 one by its /64 (a host or a site usually holds a whole
 * /64: counting its addresses apart would count nothing). */
static void source_key(const struct sockaddr *sa, uint32_t key[3])
{
	key[0] = key[1] = key[2] = 0;
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const void *)sa;
		key[0] = 4;
		memcpy(&key[1], &in->sin_addr, 4);
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const void *)sa;
		bool mapped = IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr);
		key[0] = mapped ? 4 : 6;
		memcpy(&key[1], in6->sin6_addr.s6_addr + (mapped ? 12 : 0), mapped ? 4 : 8);
	}
}

/* Multilinear hashing under a random key (strongly universal in its top
 * bits: Lemire and Kaser, "Strongly universal string hashing is fast",
 * 2014): chains stay short whatever addresses a flood claims. */
static struct source **source_chain(const struct tftp *t, const uint32_t key[3])
{
	uint64_t h = t->hkey[0] + t->hkey[1] * key[0] + t->hkey[2] * key[1] + t->hkey[3] * key[2];

	return &t->buckets[h >> (64 - t->bits)];
}

/* The entry of sa's source, or NULL if it has no transfer. */
static struct source *source_find(const struct tftp *t, const struct sockaddr *sa)
{
	uint32_t key[3];

	source_key(sa, key);
	for (struct source *s = *source_chain(t, key); s; s = s->next)
		if (!memcmp(s->key, key, sizeof(key)))
			return s;
	return NULL;
}

/* As source_find, making the entry if there is none; NULL if out of
 * memory. An entry with no transfer is freed by source_put. */
static struct source *source_get(struct tftp *t, const struct sockaddr *sa)
{
	struct source *s = source_find(t, sa);

	if (s || !(s = calloc(1, sizeof(*s))))
		return s;
	source_key(sa, s->key);
	dg_util_list_init(&s->unvalidated);
	dg_util_list_init(&s->acked);
	struct source **chain = source_chain(t, s->key);
	s->next = *chain;
	if (s->next)
		s->next->pprev = &s->next;
	s->pprev = chain;
	*chain = s;
	return s;
}

static void source_put(struct source *s)
{
	if (s->transfers)
		return;
	*s->pprev = s->next;
	if (s->next)
		s->next->pprev = s->pprev;
	free(s);
}

/* A table of at least max_transfers chains (one per source at most), its
 * key from getrandom. */
static int source_table_init(struct tftp *t)
{
	uint64_t n = 2;

	t->bits = 1;
	while (n < (uint64_t)t->opt->max_transfers) {
		n <<= 1;
		t->bits++;
	}
	ssize_t got = getrandom(t->hkey, sizeof(t->hkey), 0);
	if (got != (ssize_t)sizeof(t->hkey)) {
		t->host->log(t->self, DG_LOG_ERROR, "cannot key the source table: getrandom: %s",
		             got < 0 ? strerror(errno) : "short read");
		return DG_ERROR;
	}
	if (!(t->buckets = calloc(n, sizeof(*t->buckets))))
		return DG_ENOMEM;
	return DG_OK;
}

/* ---- transfers ---- */

static void gauge_set(struct tftp *t, int m, unsigned v)
{
	if (t->m[m])
		t->host->metric_set(t->m[m], v);
}

/* x joins (or leaves) the unacknowledged transfers, the oldest first, of
 * the instance and of its source: what a new request may evict. */
static void unvalidated_link(struct xfer *x)
{
	struct tftp *t = x->t;

	dg_util_list_push(&t->unvalidated, &x->ulink);
	dg_util_list_push(&x->src->unvalidated, &x->slink);
	gauge_set(t, M_UNVALIDATED, (int64_t)t->unvalidated.len);
}

/* x leaves whichever lists it is on: the unacknowledged ones, or the
 * acknowledged ones. */
static void xfer_unlink(struct xfer *x)
{
	struct tftp *t = x->t;

	if (x->validated) {
		dg_util_list_unlink(&t->acked, &x->ulink);
		dg_util_list_unlink(&x->src->acked, &x->slink);
		return;
	}
	dg_util_list_unlink(&t->unvalidated, &x->ulink);
	dg_util_list_unlink(&x->src->unvalidated, &x->slink);
	gauge_set(t, M_UNVALIDATED, (int64_t)t->unvalidated.len);
}

/* x, acknowledged, made progress now: it goes last on the acknowledged
 * lists, which so stay ordered by the last new ACK (the host's clock does
 * not go back), the longest stalled first. */
static void acked_push(struct xfer *x)
{
	x->progress = now_ms(x->t);
	dg_util_list_push(&x->t->acked, &x->ulink);
	dg_util_list_push(&x->src->acked, &x->slink);
}

static void xfer_free(void *data)
{
	struct xfer *x = data;
	struct tftp *t = x->t;

	xfer_unlink(x);
	x->src->transfers--;
	source_put(x->src);
	close(x->fd);
	gauge_set(t, M_ACTIVE, --t->active);
	free(x);
}

/* Send a one-off ERROR on req (not a transfer's packet). */
static void send_error(struct tftp *t, dg_req_t req, unsigned code, const char *msg)
{
	unsigned char buf[TFTP_HEADER + 64];
	struct dg_packet out = { .data = buf };

	out.len = tftp_build_error(buf, sizeof(buf), code, msg);
	if (out.len && t->host->request_reply(t->self, req, &out) == DG_OK)
		metric_add(t, M_ERRORS, 1);
}

/* Read the next block (x->block + 1) into pkt. */
static int read_block(struct xfer *x)
{
	size_t got = 0;

	while (got < x->blksize) {
		ssize_t n = read(x->fd, x->pkt + TFTP_HEADER + got, x->blksize - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		if (n == 0)
			break;
		got += (size_t)n;
	}
	x->block++;
	x->pkt[0] = 0;
	x->pkt[1] = TFTP_DATA;
	x->pkt[2] = (unsigned char)(x->block >> 8);
	x->pkt[3] = (unsigned char)x->block;
	x->len = TFTP_HEADER + got;
	x->oack = false;
	x->last = got < x->blksize;
	return 0;
}

/* Send pkt and wait for its ACK: the whole timeout when it is sent (first
 * or again), what remains of it after an ignored packet. The guard refusing
 * a send (DG_EAGAIN) costs that try only, except the transfer's first
 * (xfer_send returns -2: see tftp_start). */
static int xfer_send(struct xfer *x, bool first);
static int xfer_wait(struct xfer *x);

static void xfer_finish(struct xfer *x, int metric)
{
	struct tftp *t = x->t;

	metric_add(t, metric, 1);
	t->host->request_complete(t->self, x->req); /* frees x (xfer_free) */
}

/* The peer answered x's packet with this ACK. */
static void xfer_acked(struct xfer *x)
{
	struct tftp *t = x->t;

	/* Progress: off the lists, then last on the acknowledged ones. */
	xfer_unlink(x);
	if (!x->validated) {
		/* It received what was sent to its address, or guessed (see the
		 * top): from here its own timeout and the earned resends apply. */
		if (DG_HOST_HAS(t->host, peer_validate))
			t->host->peer_validate(x->session);
		x->validated = true;
		x->timeout_ms = x->granted_ms;
	}
	acked_push(x);
	if (x->credit < t->opt->retries)
		x->credit++;
	/* Not x->block: the 65536th DATA block is numbered 0 too. */
	if (!x->oack)
		metric_add(t, M_BYTES, (int64_t)(x->len - TFTP_HEADER));
	if (!x->oack && x->last) {
		xfer_finish(x, M_COMPLETED);
		return;
	}
	if (read_block(x) < 0) {
		send_error(t, x->req, TFTP_EUNDEF, "read error");
		t->host->request_complete(t->self, x->req);
		return;
	}
	if (xfer_send(x, false) < 0)
		t->host->request_complete(t->self, x->req);
}

/* The peer's next packet while x waits for an ACK. */
static void xfer_packet(struct xfer *x, const struct dg_packet *pkt)
{
	struct tftp *t = x->t;
	struct tftp_msg m;
	const char *why = NULL;
	int rc = pkt->json ? TFTP_EBADOP : tftp_parse(pkt->data, pkt->len, &m, &why);

	if (rc) {
		send_error(t, x->req, (unsigned)rc, why ? why : "not a TFTP packet");
		t->host->request_complete(t->self, x->req);
		return;
	}
	switch (m.opcode) {
	case TFTP_ACK:
		if (m.block == x->block) {
			xfer_acked(x);
			return;
		}
		break; /* an old or duplicate ACK: never a resend */
	case TFTP_RRQ:
		/* The RRQ again: before the first ACK its answer was lost (the
		 * only resend then, one per datagram in: see the top); after, it
		 * is a stale copy. */
		if (x->validated)
			break;
		metric_add(t, M_RETRANSMITS, 1);
		if (xfer_send(x, false) < 0)
			t->host->request_complete(t->self, x->req);
		return;
	case TFTP_ERROR:
		t->host->request_complete(t->self, x->req); /* the client gave up */
		return;
	default:
		send_error(t, x->req, TFTP_EBADOP, "unexpected packet in a read transfer");
		t->host->request_complete(t->self, x->req);
		return;
	}
	if (xfer_wait(x) < 0)
		t->host->request_complete(t->self, x->req);
}

static void xfer_step(void *arg, dg_req_t req, const struct dg_request *next, int status)
{
	struct xfer *x = arg;
	struct tftp *t = x->t;

	(void)req;
	if (status == DG_OK && next) {
		xfer_packet(x, &next->packet);
	} else if (status == DG_ETIMEDOUT) {
		if (!x->validated || !x->credit) {
			xfer_finish(x, M_ABANDONED);
			return;
		}
		x->credit--;
		metric_add(t, M_RETRANSMITS, 1);
		if (xfer_send(x, false) < 0)
			t->host->request_complete(t->self, x->req);
	}
	/* DG_ECANCELED: the host completes the request and frees x. */
}

static int xfer_wait(struct xfer *x)
{
	struct tftp *t = x->t;
	uint64_t now = now_ms(t);
	uint64_t left = x->deadline > now ? x->deadline - now : 1;

	if (left > x->timeout_ms) /* never: the host's clock does not go back */
		left = x->timeout_ms;
	return t->host->request_await(t->self, x->req, (unsigned)left, xfer_step, x) ? -1 : 0;
}

static int xfer_send(struct xfer *x, bool first)
{
	struct tftp *t = x->t;
	struct dg_packet out = { .data = x->pkt, .len = x->len };
	int rc = t->host->request_reply(t->self, x->req, &out);

	if (rc == DG_E2BIG && !t->warned_e2big) {
		t->warned_e2big = true;
		t->host->log(t->self, DG_LOG_WARN, "a %zu-byte packet does not fit the listener's "
		             "max_datagram: lower config.max_blksize", x->len);
	}
	if (rc == DG_E2BIG || rc == DG_ESTALE || rc == DG_EINVAL)
		return -1;
	if (rc == DG_EAGAIN && first)
		return -2; /* the guard refused a first send: see tftp_start */
	x->deadline = now_ms(t) + x->timeout_ms;
	return xfer_wait(x);
}

/* What blksize, timeout and tsize the OACK grants (RFC 2347: only what the
 * client asked for, blksize at most max_blksize, tsize the file's size).
 * Returns whether there is anything to acknowledge. */
static bool negotiate(const struct tftp *t, const struct tftp_msg *rq, off_t size,
                      struct tftp_msg *oack)
{
	memset(oack, 0, sizeof(*oack));
	oack->opts = rq->opts;
	oack->blksize = rq->blksize < t->opt->max_blksize ? rq->blksize : (unsigned)t->opt->max_blksize;
	oack->timeout = rq->timeout;
	oack->tsize = (uint64_t)size;
	/* RFC 2349: the server grants the value asked or leaves the option
	 * out; above max_client_timeout_ms, out (timeout_ms applies). */
	if ((uint64_t)rq->timeout * 1000 > (uint64_t)t->opt->max_client_timeout_ms)
		oack->opts &= ~(unsigned)TFTP_OPT_TIMEOUT;
	/* curl (7.88) fails a transfer whose OACK says tsize 0; RFC 2347 lets
	 * the server leave any option out. */
	if (size == 0)
		oack->opts &= ~(unsigned)TFTP_OPT_TSIZE;
	return oack->opts != 0;
}

/* The transfer a new request may evict from these lists (the instance's,
 * member ulink, or a source's, slink): the oldest unacknowledged one, else
 * the acknowledged one longest without a new ACK if that is timeout_ms or
 * more (stalled: waiting on a resend, whatever the client's timeout);
 * NULL if none. A client that ACKs within timeout_ms is never chosen. */
static struct xfer *victim(const struct tftp *t, const struct dg_util_list *unvalidated,
                           const struct dg_util_list *acked, size_t member)
{
	struct dg_util_link *l = dg_util_list_first(unvalidated);

	if (!l && (l = dg_util_list_first(acked))) {
		struct xfer *x = (struct xfer *)(void *)((char *)l - member);
		return now_ms(t) - x->progress >= (uint64_t)t->opt->timeout_ms ? x : NULL;
	}
	return l ? (struct xfer *)(void *)((char *)l - member) : NULL;
}

static struct xfer *source_victim(const struct tftp *t, const struct source *src)
{
	return victim(t, &src->unvalidated, &src->acked, offsetof(struct xfer, slink));
}

static struct xfer *any_victim(const struct tftp *t)
{
	return victim(t, &t->unvalidated, &t->acked, offsetof(struct xfer, ulink));
}

/* Can a request from src (NULL: a source with no transfer) have a place?
 * NULL if so (perhaps by evicting, see make_room), else why not. */
static const char *room_refusal(const struct tftp *t, const struct source *src)
{
	if (src && src->transfers >= t->opt->max_per_source && !source_victim(t, src))
		return "too many transfers from this address";
	if (t->active >= t->opt->max_transfers && !any_victim(t))
		return "server busy";
	return NULL;
}

/* Evicting ends a transfer silently: nothing is sent to a peer that never
 * proved its address (see the top); a stalled client's next ACK gets
 * ERROR 5. */
static void evict(struct xfer *x)
{
	xfer_finish(x, x->validated ? M_EVICTED_STALLED : M_EVICTED);
}

/* Make the place room_refusal promised: the source's victim when it is at
 * max_transfers_per_source, then the oldest unacknowledged transfer of all
 * when max_unvalidated_transfers are reached, or the instance's victim at
 * max_transfers. src may be freed. */
static void make_room(struct tftp *t, struct source *src)
{
	struct xfer *x;

	if (src && src->transfers >= t->opt->max_per_source && (x = source_victim(t, src)))
		evict(x);
	if (t->unvalidated.len >= t->max_unvalidated)
		evict(DG_UTIL_ENTRY(dg_util_list_first(&t->unvalidated), struct xfer, ulink));
	else if (t->active >= t->opt->max_transfers && (x = any_victim(t)))
		evict(x);
}

/* A new transfer of the file at fd for req: NULL if out of memory (fd is
 * left open). Counted in active and unvalidated from here on; the data
 * slot frees it (xfer_free). */
static struct xfer *xfer_new(struct tftp *t, const struct dg_request *req, int fd,
                             unsigned blksize, const struct tftp_msg *oack)
{
	struct source *src = source_get(t, req->peer->addr);
	/* The block, or the OACK (at most ~50 bytes) when blksize is tiny. */
	struct xfer *x = src ? malloc(sizeof(*x) + TFTP_HEADER + (blksize > 64 ? blksize : 64))
	                     : NULL;

	if (!x) {
		if (src)
			source_put(src);
		return NULL;
	}
	*x = (struct xfer){ .t = t, .req = req->handle, .session = req->session, .src = src,
	                    .fd = fd, .blksize = blksize,
	                    .timeout_ms = (unsigned)t->opt->timeout_ms,
	                    .granted_ms = (unsigned)t->opt->timeout_ms };
	/* The client's timeout only once it has acknowledged a block. */
	if (oack->opts & TFTP_OPT_TIMEOUT)
		x->granted_ms = oack->timeout * 1000u;
	if (t->host->request_set_data(t->self, req->handle, x, xfer_free)) {
		source_put(src);
		free(x);
		return NULL;
	}
	src->transfers++; /* from here xfer_free counts it all down */
	unvalidated_link(x);
	gauge_set(t, M_ACTIVE, ++t->active);
	metric_add(t, M_TRANSFERS, 1);
	return x;
}

static int tftp_start(struct tftp *t, const struct dg_request *req, const struct tftp_msg *rq)
{
	const char *msg;
	unsigned code;
	off_t size;
	struct tftp_msg oack;

	if (rq->mode != TFTP_MODE_OCTET) {
		send_error(t, req->handle, TFTP_EUNDEF, "only octet mode is served");
		return DG_DONE;
	}
	if ((msg = tftp_path_refusal(rq->file, rq->file_len))) {
		send_error(t, req->handle, TFTP_EACCESS, msg);
		return DG_DONE;
	}
	struct source *src = source_find(t, req->peer->addr);
	if ((msg = room_refusal(t, src))) {
		send_error(t, req->handle, TFTP_EUNDEF, msg);
		return DG_DONE;
	}
	int fd = file_open(t, rq->file, &size, &code, &msg);
	if (fd < 0) {
		send_error(t, req->handle, code, msg);
		return DG_DONE;
	}
	make_room(t, src); /* after the open: a refused request evicts nothing */
	bool options = negotiate(t, rq, size, &oack);
	unsigned blksize = oack.opts & TFTP_OPT_BLKSIZE ? oack.blksize : TFTP_BLKSIZE_DEFAULT;
	struct xfer *x = xfer_new(t, req, fd, blksize, &oack);
	if (!x) {
		close(fd);
		return DG_ENOMEM;
	}
	if (options) {
		x->len = tftp_build_oack(x->pkt, TFTP_HEADER + (blksize > 64 ? blksize : 64), &oack);
		x->oack = true;
	} else if (read_block(x) < 0) {
		send_error(t, req->handle, TFTP_EUNDEF, "read error");
		return DG_DONE;
	}
	int rc = xfer_send(x, true);
	if (rc == -2) {
		/* Over the amplification credit of an unvalidated peer: a short
		 * answer it can act on (see docs/operating.md, "Amplification"). */
		send_error(t, req->handle, TFTP_EUNDEF, "not validated: ask with options");
		return DG_DONE;
	}
	return rc < 0 ? DG_DONE : DG_PENDING;
}

static int tftp_on_packet(void *state, const struct dg_request *req)
{
	struct tftp *t = state;
	struct tftp_msg m;
	const char *why = NULL;

	if (req->packet.json)
		return DG_EINVAL; /* the listener's codec must be "raw" */
	int rc = tftp_parse(req->packet.data, req->packet.len, &m, &why);
	if (rc) {
		send_error(t, req->handle, (unsigned)rc, why);
		return DG_DONE;
	}
	switch (m.opcode) {
	case TFTP_RRQ:
		return tftp_start(t, req, &m);
	case TFTP_WRQ:
		send_error(t, req->handle, TFTP_EACCESS, "write requests are refused");
		return DG_DONE;
	case TFTP_ERROR:
		return DG_DONE; /* never answered (RFC 1350) */
	case TFTP_OACK:
		send_error(t, req->handle, TFTP_EBADOP, "OACK to a server");
		return DG_DONE;
	default: /* DATA, ACK of no transfer in progress */
		send_error(t, req->handle, TFTP_EBADID, "unknown transfer ID");
		return DG_DONE;
	}
}

/* ---- life cycle ---- */

static void tftp_fini(void *state)
{
	struct tftp *t = state;

	if (!t)
		return;
	if (t->rootfd >= 0)
		close(t->rootfd);
	free(t->buckets); /* every source freed with its last transfer */
	free(t);
}

/* openat2 where the kernel has it (Linux 5.6); else links are refused. */
static void choose_lookup(struct tftp *t)
{
	t->beneath = false;
	if (t->opt->symlinks != TFTP_SYMLINKS_BENEATH)
		return;
#ifdef TFTP_HAVE_OPENAT2
	struct open_how how = { .flags = O_PATH | O_CLOEXEC, .resolve = RESOLVE_BENEATH };
	int fd = (int)syscall(SYS_openat2, AT_FDCWD, "/", &how, sizeof(how));
	if (fd >= 0 || errno != ENOSYS) {
		if (fd >= 0)
			close(fd);
		t->beneath = true;
		return;
	}
#endif
	t->host->log(t->self, DG_LOG_WARN, "config.symlinks: openat2 is not available: "
	             "no symbolic link is followed (as with \"refuse\")");
}

static int tftp_init(struct dg_instance *self, const struct dg_host *host,
                     const struct json_t *config, void **state)
{
	struct tftp *t;
	int rc = DG_EINVAL;

	(void)config; /* checked and filled in by the host: host->options */
	*state = NULL;
	if (!DG_HOST_HAS(host, now_ms) || !host->options(self)) {
		host->log(self, DG_LOG_ERROR, "needs a host with conversations, declared "
		          "options and its clock (plugin ABI 1.2); this one offers %u bytes of "
		          "host table", host->size);
		return DG_EINVAL;
	}
	if (!(t = calloc(1, sizeof(*t))))
		return DG_ENOMEM;
	t->host = host;
	t->self = self;
	t->rootfd = -1;
	dg_util_list_init(&t->unvalidated);
	dg_util_list_init(&t->acked);
	t->opt = host->options(self);
	int err = -root_open(t);
	if (err == ENOENT) {
		/* Checked configs (dgramd -t) need not have their directory yet. */
		host->log(self, DG_LOG_WARN, "config.root: '%s' does not exist (yet): read "
		          "requests get an error until it does", t->opt->root);
	} else if (err) {
		host->log(self, DG_LOG_ERROR, "config.root: cannot open '%s': %s", t->opt->root,
		          strerror(err));
		goto out_free;
	}
	choose_lookup(t);
	t->max_unvalidated = t->opt->max_unvalidated < t->opt->max_transfers ?
	                     (unsigned)t->opt->max_unvalidated : (unsigned)t->opt->max_transfers;
	if ((rc = source_table_init(t)))
		goto out_free;
	for (int i = 0; i < M__COUNT; i++)
		t->m[i] = dg_util_metric_new(host, self, metric_defs[i].name, metric_defs[i].help,
		                             metric_defs[i].kind);
	*state = t;
	return DG_OK;
out_free:
	tftp_fini(t);
	return rc;
}

DG_PLUGIN_EXPORT const struct dg_plugin dgramd_plugin = {
	DG_PLUGIN_HEADER,
	.name = "tftp",
	.version = "1.0",
	.init = tftp_init,
	.fini = tftp_fini,
	.on_packet = tftp_on_packet,
	.options = tftp_option_table,
	.options_size = sizeof(struct tftp_options),
};
