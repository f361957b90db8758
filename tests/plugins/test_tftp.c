/* The tftp plugin's state machine on the harness (<dgramd/testing.h>): the
 * plugin's .so on a root directory of files made here, fed packets from
 * chosen peers, its timeouts on the fake clock (it measures what is left of
 * a wait with host->now_ms). Every DATA packet is checked byte for byte
 * against the file, with its block number, its destination and the time it
 * left: whole transfers, a lost DATA (the same block again after the
 * timeout, retries times, then the transfer is abandoned and released), a
 * request never acknowledged (one packet, no resend, ended after timeout_ms
 * whatever timeout it asked), a flood of them (evicted; a real client gets
 * in, acknowledged transfers stay), the per-source cap, a guessed ACK 0
 * (stalled after timeout_ms, then evicted), the timeout option's cap,
 * resends earned by new ACKs (two datagrams per datagram at most), a
 * duplicate or late ACK (never a resend: the Sorcerer's Apprentice bug), a
 * lost ACK, ACKs of wrong blocks, option negotiation (OACK, ACK 0), the
 * block number's wrap past 65535, errors, refused names and other peers'
 * packets. The same plugin against the daemon and real clients:
 * tests/integration/test_tftp*. */
#include "config.h"

#include <dirent.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <dgramd/testing.h>

#include "testutil.h"

#define TIMEOUT_MS 1000 /* the config's timeout_ms */
#define RETRIES 3
#define IDLE_MS 5000 /* session_idle_ms */
#define CLIENT "127.0.0.1:5000"
#define OTHER "127.0.0.1:5001"  /* the same host, another TID */
#define FAR "127.0.0.2:5000"    /* another host, the same port */

/* A PXE client's first request: its MAC address under pxelinux.cfg/. */
#define PXE "pxelinux.cfg/01-52-54-00-12-34-56"

enum { OP_RRQ = 1, OP_WRQ = 2, OP_DATA = 3, OP_ACK = 4, OP_ERROR = 5, OP_OACK = 6 };

/* ---- the root directory ------------------------------------------------ */

/* The files served, with pseudo-random contents kept here to compare. wrap's
 * last block (blksize 8) is block 65536, sent as block 0. */
static struct {
	const char *name;
	size_t size;
	unsigned char *data;
} files[] = {
	{ "f0", 0, NULL }, { "f511", 511, NULL }, { "f512", 512, NULL },
	{ "f513", 513, NULL }, { "f1100", 1100, NULL }, { "sub/g", 100, NULL },
	{ "roll", 600000, NULL }, { "wrap", 65535 * 8 + 3, NULL },
	{ PXE, 1100, NULL },
};
#define N_FILES (sizeof(files) / sizeof(files[0]))

static char root[4096];

static void free_files(void)
{
	for (size_t i = 0; i < N_FILES; i++) {
		free(files[i].data);
		files[i].data = NULL;
	}
}

static void write_file(const char *path, const unsigned char *data, size_t size)
{
	FILE *f = fopen(path, "wb");

	CU_ASSERT_PTR_NOT_NULL_FATAL(f);
	CU_ASSERT_FATAL(fwrite(data, 1, size, f) == size || size == 0);
	CU_ASSERT_FATAL(fclose(f) == 0);
}

/* Make (once) root: the files, sub/, link_in -> f513, link_out ->
 * ../outside/secret, and a secret outside root. */
static const char *tftp_root(void)
{
	char path[8192];

	if (root[0])
		return root;
	snprintf(root, sizeof(root), "%s/root", dg_test_tmpdir());
	snprintf(path, sizeof(path), "%s/outside", dg_test_tmpdir());
	CU_ASSERT_FATAL(mkdir(root, 0755) == 0 && mkdir(path, 0755) == 0);
	snprintf(path, sizeof(path), "%s/outside/secret", dg_test_tmpdir());
	write_file(path, (const unsigned char *)"secret", 6);
	snprintf(path, sizeof(path), "%s/sub", root);
	CU_ASSERT_FATAL(mkdir(path, 0755) == 0);
	snprintf(path, sizeof(path), "%s/pxelinux.cfg", root);
	CU_ASSERT_FATAL(mkdir(path, 0755) == 0);
	atexit(free_files);
	for (size_t i = 0; i < N_FILES; i++) {
		uint32_t x = (uint32_t)(i + 1) * 2654435761u;
		files[i].data = malloc(files[i].size ? files[i].size : 1);
		CU_ASSERT_PTR_NOT_NULL_FATAL(files[i].data);
		for (size_t b = 0; b < files[i].size; b++) {
			x ^= x << 13;
			x ^= x >> 17;
			x ^= x << 5;
			files[i].data[b] = (unsigned char)x;
		}
		snprintf(path, sizeof(path), "%s/%s", root, files[i].name);
		write_file(path, files[i].data, files[i].size);
	}
	snprintf(path, sizeof(path), "%s/link_in", root);
	CU_ASSERT_FATAL(symlink("f513", path) == 0);
	snprintf(path, sizeof(path), "%s/link_out", root);
	CU_ASSERT_FATAL(symlink("../outside/secret", path) == 0);
	return root;
}

static const unsigned char *file_data(const char *name, size_t *size)
{
	tftp_root();
	for (size_t i = 0; i < N_FILES; i++)
		if (!strcmp(files[i].name, name)) {
			*size = files[i].size;
			return files[i].data;
		}
	CU_FAIL_FATAL("no such test file");
	return NULL;
}

/* Descriptors open in this process: the plugin's files are among them. */
static int open_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	int n = 0;

	if (!d)
		return -1;
	while (readdir(d))
		n++;
	closedir(d);
	return n;
}

/* ---- the harness ------------------------------------------------------- */

/* A tftp listener on the root; listener and config: more keys (each "" or
 * starting with ", "). The amplification guard is off unless listener
 * sets it (test_guard). */
static struct dg_harness *tftp_on(const char *listener, const char *config)
{
	char text[8192], err[512];

	snprintf(text, sizeof(text),
	         "{\"codec\": \"raw\", \"max_datagram\": 1472, \"session_idle_ms\": %d%s, "
	         "\"handler\": {\"plugin\": \"%s/plugins/.libs/tftp.so\", \"config\": {"
	         "\"root\": \"%s\", \"timeout_ms\": %d, \"retries\": %d%s}}}",
	         IDLE_MS, listener[0] ? listener : ", \"amplification\": {\"factor\": 0}",
	         dg_test_builddir(), tftp_root(), TIMEOUT_MS, RETRIES, config);
	struct dg_harness *h = dg_harness_new(text, NULL, err, sizeof(err));
	if (!h)
		fprintf(stderr, "tftp harness: %s\n", err);
	CU_ASSERT_PTR_NOT_NULL_FATAL(h);
	return h;
}

/* A plugin metric or a listener counter. */
#define COUNT(h, name) dg_harness_counter((h), (name))

/* ---- packets from the client ------------------------------------------- */

/* An RRQ or WRQ for file in mode, with "name", "value" option pairs
 * (NULL-terminated, or NULL), built by hand (not with the plugin's own
 * proto.c). */
static size_t request_mode(struct dg_harness *h, const char *peer, int opcode, const char *file,
                           const char *mode, const char *const *opts)
{
	unsigned char buf[1024];
	size_t n = 2;

	buf[0] = 0;
	buf[1] = (unsigned char)opcode;
	for (const char *const *s = (const char *const[]){ file, mode, NULL }; *s; s++) {
		memcpy(buf + n, *s, strlen(*s) + 1);
		n += strlen(*s) + 1;
	}
	for (const char *const *o = opts; o && *o; o++) {
		memcpy(buf + n, *o, strlen(*o) + 1);
		n += strlen(*o) + 1;
	}
	CU_ASSERT_EQUAL(dg_harness_send(h, peer, buf, n), DG_OK);
	return n;
}

/* Returns the request's size. */
static size_t rrq(struct dg_harness *h, const char *peer, const char *file,
                  const char *const *opts)
{
	return request_mode(h, peer, OP_RRQ, file, "octet", opts);
}

static void ack(struct dg_harness *h, const char *peer, unsigned block)
{
	unsigned char p[4] = { 0, OP_ACK, (unsigned char)(block >> 8), (unsigned char)block };

	CU_ASSERT_EQUAL(dg_harness_send(h, peer, p, sizeof(p)), DG_OK);
}

static void send_bytes(struct dg_harness *h, const char *peer, const char *bytes, size_t len)
{
	CU_ASSERT_EQUAL(dg_harness_send(h, peer, bytes, len), DG_OK);
}
#define SEND_LIT(h, peer, lit) send_bytes((h), (peer), (lit), sizeof(lit) - 1)

/* ---- what the server sent ---------------------------------------------- */

/* Reply i is exactly want (len bytes) and goes to peer; says why not. */
static bool reply_equals(const struct dg_harness *h, size_t i, const char *peer,
                         const unsigned char *want, size_t len, const char *what)
{
	const struct dg_harness_reply *r = dg_harness_reply(h, i);

	if (!r) {
		fprintf(stderr, "%s: no reply %zu (%zu replies)\n", what, i, dg_harness_replies(h));
		return false;
	}
	if (strcmp(r->to_text, peer)) {
		fprintf(stderr, "%s: reply %zu goes to %s, not %s\n", what, i, r->to_text, peer);
		return false;
	}
	if (r->len != len || memcmp(r->data, want, len)) {
		size_t at = 0;
		while (at < len && at < r->len && r->data[at] == want[at])
			at++;
		fprintf(stderr, "%s: reply %zu is %zu bytes (opcode %u, number %u), expected %zu; "
		        "first difference at byte %zu\n", what, i, r->len,
		        r->len >= 2 ? r->data[1] : 0u,
		        r->len >= 4 ? (unsigned)(r->data[2] << 8 | r->data[3]) : 0u, len, at);
		return false;
	}
	return true;
}

/* Reply i is DATA block (mod 65536) with bytes [off, off + n) of data. */
static bool is_data(const struct dg_harness *h, size_t i, const char *peer, unsigned block,
                    const unsigned char *data, size_t off, size_t n)
{
	static unsigned char want[4 + 65536];
	char what[64];

	want[0] = 0;
	want[1] = OP_DATA;
	want[2] = (unsigned char)(block >> 8);
	want[3] = (unsigned char)block;
	if (n)
		memcpy(want + 4, data + off, n);
	snprintf(what, sizeof(what), "DATA %u", block & 0xffff);
	return reply_equals(h, i, peer, want, 4 + n, what);
}

/* Reply i is block (1-based, unwrapped) of file name at blksize. */
static bool is_block(const struct dg_harness *h, size_t i, const char *peer, const char *name,
                     unsigned blksize, unsigned block)
{
	size_t size;
	const unsigned char *data = file_data(name, &size);
	size_t off = (size_t)(block - 1) * blksize;
	size_t n = off >= size ? 0 : size - off < blksize ? size - off : blksize;

	return is_data(h, i, peer, block, data, off, n);
}

/* Reply i is ERROR code with message msg (NULL: any text). */
static bool is_error(const struct dg_harness *h, size_t i, const char *peer, unsigned code,
                     const char *msg)
{
	const struct dg_harness_reply *r = dg_harness_reply(h, i);
	unsigned char want[256] = { 0, OP_ERROR, 0, (unsigned char)code };
	size_t n;

	if (!msg) {
		if (r && r->len >= 5 && r->len < sizeof(want)) {
			memcpy(want + 4, r->data + 4, r->len - 4);
			want[r->len - 1] = 0; /* its text, NUL-terminated */
			return reply_equals(h, i, peer, want, r->len, "ERROR");
		}
		return reply_equals(h, i, peer, want, 5, "ERROR");
	}
	n = strlen(msg);
	memcpy(want + 4, msg, n + 1);
	return reply_equals(h, i, peer, want, 4 + n + 1, "ERROR");
}

/* Reply i is an OACK of exactly the option pairs given (NULL-terminated). */
static bool is_oack(const struct dg_harness *h, size_t i, const char *peer, ...)
{
	unsigned char want[512] = { 0, OP_OACK };
	size_t n = 2;
	va_list ap;

	va_start(ap, peer);
	for (const char *s = va_arg(ap, const char *); s; s = va_arg(ap, const char *)) {
		memcpy(want + n, s, strlen(s) + 1);
		n += strlen(s) + 1;
	}
	va_end(ap);
	return reply_equals(h, i, peer, want, n, "OACK");
}

static uint64_t sent_at(const struct dg_harness *h, size_t i)
{
	const struct dg_harness_reply *r = dg_harness_reply(h, i);

	return r ? r->at_ms : UINT64_MAX;
}

/* ---- tests ------------------------------------------------------------- */

/* RRQ -> DATA 1, ACK n -> DATA n + 1, and the ACK of the short last block
 * (empty when the size is a multiple of 512) ends the transfer: the
 * request completes and nothing more is sent. */
static void test_whole_files(void)
{
	static const char *const names[] = { "f0", "f511", "f512", "f513", "f1100" };
	struct dg_harness *h = tftp_on("", "");
	size_t total = 0;

	for (size_t f = 0; f < sizeof(names) / sizeof(names[0]); f++) {
		char peer[32];
		size_t size;
		file_data(names[f], &size);
		unsigned blocks = (unsigned)(size / 512) + 1;

		snprintf(peer, sizeof(peer), "127.0.0.1:%zu", 6000 + f);
		dg_harness_clear(h);
		rrq(h, peer, names[f], NULL);
		for (unsigned b = 1; b <= blocks; b++) {
			CU_ASSERT_EQUAL_FATAL(dg_harness_replies(h), b);
			CU_ASSERT(is_block(h, b - 1, peer, names[f], 512, b));
			CU_ASSERT_EQUAL(dg_harness_pending(h), 1); /* still in progress */
			ack(h, peer, b);
		}
		CU_ASSERT_EQUAL(dg_harness_replies(h), blocks);
		CU_ASSERT_EQUAL(dg_harness_pending(h), 0);
		total += size;
	}
	dg_harness_advance(h, 10 * TIMEOUT_MS); /* nothing is resent */
	CU_ASSERT_EQUAL(dg_harness_replies(h), 3);
	CU_ASSERT_EQUAL(COUNT(h, "transfers"), 5);
	CU_ASSERT_EQUAL(COUNT(h, "completed"), 5);
	CU_ASSERT_EQUAL(COUNT(h, "bytes"), total);
	CU_ASSERT_EQUAL(COUNT(h, "active"), 0);
	CU_ASSERT_EQUAL(COUNT(h, "retransmits"), 0);
	CU_ASSERT_EQUAL(COUNT(h, "abandoned"), 0);
	CU_ASSERT_EQUAL(COUNT(h, "errors"), 0);
	dg_harness_free(h);
}

/* Once the client has acknowledged a block, a DATA that gets no ACK is
 * sent again, the same bytes, exactly one timeout after it was sent; the
 * ACK then moves on (and earns the next resend). */
static void test_lost_data(void)
{
	struct dg_harness *h = tftp_on("", "");

	rrq(h, CLIENT, "f1100", NULL);
	CU_ASSERT(is_block(h, 0, CLIENT, "f1100", 512, 1));
	ack(h, CLIENT, 1);
	CU_ASSERT(is_block(h, 1, CLIENT, "f1100", 512, 2));
	dg_harness_advance(h, TIMEOUT_MS - 1);
	CU_ASSERT_EQUAL(dg_harness_replies(h), 2);
	dg_harness_advance(h, 1);
	CU_ASSERT_EQUAL_FATAL(dg_harness_replies(h), 3);
	CU_ASSERT(is_block(h, 2, CLIENT, "f1100", 512, 2));
	CU_ASSERT_EQUAL(sent_at(h, 2), TIMEOUT_MS);
	ack(h, CLIENT, 2);
	CU_ASSERT(is_block(h, 3, CLIENT, "f1100", 512, 3));
	dg_harness_advance(h, TIMEOUT_MS); /* DATA 3 lost too */
	CU_ASSERT(is_block(h, 4, CLIENT, "f1100", 512, 3));
	CU_ASSERT_EQUAL(sent_at(h, 4), 2 * TIMEOUT_MS);
	ack(h, CLIENT, 3);
	CU_ASSERT_EQUAL(dg_harness_replies(h), 5);
	CU_ASSERT_EQUAL(COUNT(h, "retransmits"), 2);
	CU_ASSERT_EQUAL(COUNT(h, "completed"), 1);
	CU_ASSERT_EQUAL(COUNT(h, "bytes"), 1100);
	dg_harness_free(h);
}

/* A client that stops ACKing after block 3 (its three new ACKs earned
 * three resends, as many as retries): DATA 4 goes out 1 + retries times,
 * one timeout apart; one timeout after the last the transfer is abandoned,
 * its request completed and its file closed; a late ACK finds no transfer
 * (ERROR 5); the session closes when idle. */
static void test_retries_then_abandoned(void)
{
	int fds = open_fds();
	struct dg_harness *h = tftp_on("", "");
	int with_harness = open_fds();

	rrq(h, CLIENT, "roll", NULL);
	CU_ASSERT_EQUAL(open_fds(), with_harness + 1); /* the file */
	for (unsigned b = 1; b <= RETRIES; b++)
		ack(h, CLIENT, b);
	CU_ASSERT_EQUAL_FATAL(dg_harness_replies(h), 1 + RETRIES);
	CU_ASSERT(is_block(h, RETRIES, CLIENT, "roll", 512, RETRIES + 1));
	dg_harness_clear(h);
	for (unsigned r = 1; r <= RETRIES; r++) {
		dg_harness_advance(h, TIMEOUT_MS);
		CU_ASSERT_EQUAL_FATAL(dg_harness_replies(h), r);
		CU_ASSERT(is_block(h, r - 1, CLIENT, "roll", 512, RETRIES + 1));
		CU_ASSERT_EQUAL(sent_at(h, r - 1), r * TIMEOUT_MS);
	}
	dg_harness_advance(h, TIMEOUT_MS - 1);
	CU_ASSERT_EQUAL(dg_harness_pending(h), 1);
	CU_ASSERT_EQUAL(COUNT(h, "active"), 1);
	dg_harness_advance(h, 1);
	CU_ASSERT_EQUAL(dg_harness_replies(h), RETRIES);
	CU_ASSERT_EQUAL(dg_harness_pending(h), 0);
	CU_ASSERT_EQUAL(COUNT(h, "abandoned"), 1);
	CU_ASSERT_EQUAL(COUNT(h, "retransmits"), RETRIES);
	CU_ASSERT_EQUAL(COUNT(h, "active"), 0);
	CU_ASSERT_EQUAL(COUNT(h, "completed"), 0);
	CU_ASSERT_EQUAL(COUNT(h, "bytes"), RETRIES * 512);
	CU_ASSERT_EQUAL(open_fds(), with_harness);
	ack(h, CLIENT, RETRIES + 1);
	CU_ASSERT(is_error(h, RETRIES, CLIENT, 5, "unknown transfer ID"));
	CU_ASSERT_EQUAL(dg_harness_sessions(h), 1);
	dg_harness_advance(h, IDLE_MS + IDLE_MS / 4);
	CU_ASSERT_EQUAL(dg_harness_sessions(h), 0);
	CU_ASSERT_EQUAL(COUNT(h, "sessions_idle"), 1);
	dg_harness_free(h);
	CU_ASSERT_EQUAL(open_fds(), fds);
}

/* Bytes of all replies so far to peer. */
static size_t bytes_to(const struct dg_harness *h, const char *peer, size_t *packets)
{
	size_t sum = 0;

	*packets = 0;
	for (size_t i = 0; i < dg_harness_replies(h); i++) {
		const struct dg_harness_reply *r = dg_harness_reply(h, i);
		if (!strcmp(r->to_text, peer)) {
			sum += r->len;
			(*packets)++;
		}
	}
	return sum;
}

/* Before the client's first ACK nothing is sent on a timeout: a request
 * that never acknowledges draws its first packet once (DATA 1 or the
 * OACK), and after timeout_ms (not the client's timeout option: that
 * applies once it has acknowledged) the transfer is abandoned and its file
 * closed (timeout 255 is above max_client_timeout_ms: the OACK leaves it
 * out). Under factor 52 (the example's before the guard counted the
 * headers), which alone let a 58-byte RRQ
 * padded with an unknown option draw DATA 1 five times (2,580 bytes) and
 * a 42-byte PXE path four times: 516 bytes each, one datagram. */
static void test_unacked_no_resend(void)
{
	static const char *const pad[] = { "x-padding", "012345678901234567890123456789012", NULL };
	static const char *const slow[] = { "timeout", "255", "blksize", "1468", NULL };
	static const struct {
		const char *peer, *file;
		const char *const *opts;
		size_t in, out;
	} cases[] = {
		{ "127.0.0.1:6000", "f1100", pad, 58, 516 },
		{ "127.0.0.1:6001", PXE, NULL, 42, 516 },
		{ "127.0.0.1:6002", "f1100", slow, 39, 15 }, /* the OACK: blksize only */
	};
	int fds = open_fds();
	struct dg_harness *h = tftp_on(", \"amplification\": {\"factor\": 52}", "");

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		size_t packets;
		dg_harness_clear(h);
		CU_ASSERT_EQUAL(rrq(h, cases[i].peer, cases[i].file, cases[i].opts), cases[i].in);
		dg_harness_advance(h, TIMEOUT_MS - 1);
		CU_ASSERT_EQUAL(dg_harness_pending(h), 1);
		dg_harness_advance(h, 1);
		CU_ASSERT_EQUAL(dg_harness_pending(h), 0); /* 1 s, not the client's 255 */
		dg_harness_advance(h, 300 * TIMEOUT_MS);
		size_t out = bytes_to(h, cases[i].peer, &packets);
		if (out != cases[i].out || packets != 1)
			fprintf(stderr, "%s: %zu bytes in %zu packets for %zu\n", cases[i].file, out,
			        packets, cases[i].in);
		CU_ASSERT_EQUAL(out, cases[i].out);
		CU_ASSERT_EQUAL(packets, 1);
		ack(h, cases[i].peer, i < 2 ? 1 : 0); /* too late: no transfer */
		CU_ASSERT(is_error(h, 1, cases[i].peer, 5, "unknown transfer ID"));
	}
	CU_ASSERT_EQUAL(COUNT(h, "abandoned"), 3);
	CU_ASSERT_EQUAL(COUNT(h, "retransmits"), 0);
	CU_ASSERT_EQUAL(COUNT(h, "tx_drop_amplification"), 0);
	CU_ASSERT_EQUAL(COUNT(h, "active"), 0);
	CU_ASSERT_EQUAL(COUNT(h, "unvalidated"), 0);
	dg_harness_free(h);
	CU_ASSERT_EQUAL(open_fds(), fds);
}

/* Duplicate ACKs of the previous block never make the server send again
 * (the Sorcerer's Apprentice bug would answer each with the next block),
 * and do not postpone the resend: it comes one timeout after the block was
 * sent, measured on the host's clock. */
static void test_duplicate_ack(void)
{
	struct dg_harness *h = tftp_on("", "");

	rrq(h, CLIENT, "f1100", NULL);
	ack(h, CLIENT, 1);
	CU_ASSERT_EQUAL_FATAL(dg_harness_replies(h), 2);
	CU_ASSERT(is_block(h, 1, CLIENT, "f1100", 512, 2));
	for (int i = 0; i < 3; i++) {
		dg_harness_advance(h, 300);
		ack(h, CLIENT, 1);
		CU_ASSERT_EQUAL(dg_harness_replies(h), 2);
	}
	dg_harness_advance(h, TIMEOUT_MS - 900 - 1);
	CU_ASSERT_EQUAL(dg_harness_replies(h), 2);
	dg_harness_advance(h, 1);
	CU_ASSERT_EQUAL_FATAL(dg_harness_replies(h), 3);
	CU_ASSERT(is_block(h, 2, CLIENT, "f1100", 512, 2));
	CU_ASSERT_EQUAL(sent_at(h, 2), TIMEOUT_MS);
	ack(h, CLIENT, 2);
	CU_ASSERT(is_block(h, 3, CLIENT, "f1100", 512, 3));
	ack(h, CLIENT, 2); /* for the resent copy: nothing */
	CU_ASSERT_EQUAL(dg_harness_replies(h), 4);
	ack(h, CLIENT, 3);
	CU_ASSERT_EQUAL(dg_harness_pending(h), 0);
	CU_ASSERT_EQUAL(COUNT(h, "retransmits"), 1);
	CU_ASSERT_EQUAL(COUNT(h, "completed"), 1);
	dg_harness_free(h);
}

/* The ACK of DATA 2 is lost: DATA 2 is resent after the timeout; the late
 * ACK 2 (of the first copy) brings DATA 3 once, and the ACK 2 of the second
 * copy brings nothing. */
static void test_lost_ack(void)
{
	struct dg_harness *h = tftp_on("", "");

	rrq(h, CLIENT, "f1100", NULL);
	ack(h, CLIENT, 1);
	dg_harness_advance(h, 400);
	CU_ASSERT_EQUAL(dg_harness_replies(h), 2);
	dg_harness_advance(h, TIMEOUT_MS - 400);
	CU_ASSERT_EQUAL_FATAL(dg_harness_replies(h), 3);
	CU_ASSERT(is_block(h, 2, CLIENT, "f1100", 512, 2));
	dg_harness_advance(h, 50);
	ack(h, CLIENT, 2); /* late */
	CU_ASSERT_EQUAL_FATAL(dg_harness_replies(h), 4);
	CU_ASSERT(is_block(h, 3, CLIENT, "f1100", 512, 3));
	CU_ASSERT_EQUAL(sent_at(h, 3), TIMEOUT_MS + 50);
	dg_harness_advance(h, 10);
	ack(h, CLIENT, 2); /* of the resent copy */
	dg_harness_advance(h, TIMEOUT_MS - 11);
	CU_ASSERT_EQUAL(dg_harness_replies(h), 4);
	ack(h, CLIENT, 3);
	CU_ASSERT_EQUAL(dg_harness_replies(h), 4);
	CU_ASSERT_EQUAL(COUNT(h, "completed"), 1);
	CU_ASSERT_EQUAL(COUNT(h, "retransmits"), 1);
	CU_ASSERT_EQUAL(COUNT(h, "bytes"), 1100);
	dg_harness_free(h);
}

/* ACKs of blocks not sent yet, or long ago, are ignored: the resend comes
 * at its time, and the right ACK still moves the transfer on. */
static void test_wrong_block_ack(void)
{
	static const unsigned wrong[] = { 3, 7, 65535, 0, 1 };
	struct dg_harness *h = tftp_on("", "");

	rrq(h, CLIENT, "f1100", NULL);
	ack(h, CLIENT, 1);
	for (size_t i = 0; i < sizeof(wrong) / sizeof(wrong[0]); i++) {
		dg_harness_advance(h, 100);
		ack(h, CLIENT, wrong[i]);
	}
	CU_ASSERT_EQUAL(dg_harness_replies(h), 2);
	dg_harness_advance(h, TIMEOUT_MS - 500);
	CU_ASSERT_EQUAL_FATAL(dg_harness_replies(h), 3);
	CU_ASSERT(is_block(h, 2, CLIENT, "f1100", 512, 2));
	CU_ASSERT_EQUAL(sent_at(h, 2), TIMEOUT_MS);
	ack(h, CLIENT, 2);
	CU_ASSERT(is_block(h, 3, CLIENT, "f1100", 512, 3));
	ack(h, CLIENT, 3);
	CU_ASSERT_EQUAL(COUNT(h, "completed"), 1);
	CU_ASSERT_EQUAL(COUNT(h, "errors"), 0);
	dg_harness_free(h);
}

/* Options: the OACK grants blksize, timeout and tsize (the file's size),
 * nothing is sent before its ACK 0; a lost OACK is not resent on a
 * timeout, but the client's RRQ again has it again at once; then blocks of
 * blksize, resent after the client's timeout (granted, and applied from
 * its ACK 0 on); 1100 bytes at blksize 100 end with an empty block 12. */
static void test_oack(void)
{
	static const char *const opts[] = { "blksize", "100", "timeout", "2", "tsize", "0", NULL };
	struct dg_harness *h = tftp_on("", "");

	rrq(h, CLIENT, "f1100", opts);
	CU_ASSERT_EQUAL_FATAL(dg_harness_replies(h), 1);
	CU_ASSERT(is_oack(h, 0, CLIENT, "blksize", "100", "timeout", "2", "tsize", "1100",
	                  (const char *)NULL));
	ack(h, CLIENT, 1); /* not the ACK of the OACK */
	dg_harness_advance(h, TIMEOUT_MS - 1);
	CU_ASSERT_EQUAL(dg_harness_replies(h), 1);
	rrq(h, CLIENT, "f1100", opts); /* the OACK was lost */
	CU_ASSERT_EQUAL_FATAL(dg_harness_replies(h), 2);
	CU_ASSERT(is_oack(h, 1, CLIENT, "blksize", "100", "timeout", "2", "tsize", "1100",
	                  (const char *)NULL));
	CU_ASSERT_EQUAL(sent_at(h, 1), TIMEOUT_MS - 1);
	dg_harness_clear(h);
	ack(h, CLIENT, 0);
	for (unsigned b = 1; b <= 12; b++) {
		CU_ASSERT_EQUAL_FATAL(dg_harness_replies(h), 1);
		CU_ASSERT(is_block(h, 0, CLIENT, "f1100", 100, b));
		if (b == 5) { /* lost: resent after the client's 2 s, not timeout_ms */
			dg_harness_advance(h, 2000 - 1);
			CU_ASSERT_EQUAL(dg_harness_replies(h), 1);
			dg_harness_advance(h, 1);
			CU_ASSERT(is_block(h, 1, CLIENT, "f1100", 100, b));
		}
		dg_harness_clear(h);
		ack(h, CLIENT, b);
	}
	CU_ASSERT_EQUAL(dg_harness_replies(h), 0);
	CU_ASSERT_EQUAL(dg_harness_pending(h), 0);
	CU_ASSERT_EQUAL(COUNT(h, "completed"), 1);
	CU_ASSERT_EQUAL(COUNT(h, "bytes"), 1100);
	CU_ASSERT_EQUAL(COUNT(h, "retransmits"), 2);
	CU_ASSERT_EQUAL(COUNT(h, "transfers"), 1);
	dg_harness_free(h);
}

/* What the OACK leaves out or lowers: blksize above max_blksize gets
 * max_blksize; an unknown option or an invalid value is left out; tsize of
 * an empty file is left out, and with nothing left to acknowledge DATA 1
 * comes at once. */
static void test_oack_limits(void)
{
	static const char *const big[] = { "blksize", "65464", "windowsize", "4", "timeout", "0",
	                                   NULL };
	static const char *const empty[] = { "tsize", "0", NULL };
	struct dg_harness *h = tftp_on("", ", \"max_blksize\": 1000");

	rrq(h, CLIENT, "f1100", big);
	CU_ASSERT(is_oack(h, 0, CLIENT, "blksize", "1000", (const char *)NULL));
	ack(h, CLIENT, 0);
	CU_ASSERT(is_block(h, 1, CLIENT, "f1100", 1000, 1));
	ack(h, CLIENT, 1);
	CU_ASSERT(is_block(h, 2, CLIENT, "f1100", 1000, 2));
	ack(h, CLIENT, 2);
	rrq(h, OTHER, "f0", empty);
	CU_ASSERT(is_block(h, 3, OTHER, "f0", 512, 1));
	ack(h, OTHER, 1);
	CU_ASSERT_EQUAL(dg_harness_replies(h), 4);
	CU_ASSERT_EQUAL(COUNT(h, "completed"), 2);
	dg_harness_free(h);
}

/* Requests refused with an ERROR, each from its own port: the request is
 * done, no transfer started, no file left open. */
static void test_refusals(void)
{
	static const struct {
		int opcode;
		const char *file, *mode;
		unsigned code;
		const char *msg; /* NULL: any text */
	} cases[] = {
		{ OP_RRQ, "missing", "octet", 1, "file not found" },
		{ OP_RRQ, "sub/missing", "octet", 1, "file not found" },
		{ OP_RRQ, "../outside/secret", "octet", 2, "'..' in path" },
		{ OP_RRQ, "sub/../f513", "octet", 2, "'..' in path" },
		{ OP_RRQ, "sub/..", "octet", 2, "'..' in path" },
		{ OP_RRQ, "/etc/passwd", "octet", 2, "absolute path" },
		{ OP_RRQ, "link_out", "octet", 2, NULL }, /* openat2 or not: refused */
		{ OP_RRQ, "sub", "octet", 2, "not a regular file" },
		{ OP_WRQ, "upload", "octet", 2, "write requests are refused" },
		{ OP_WRQ, "f513", "octet", 2, "write requests are refused" },
		{ OP_RRQ, "f513", "netascii", 0, "only octet mode is served" },
	};
	const size_t n = sizeof(cases) / sizeof(cases[0]);
	struct dg_harness *h = tftp_on("", "");
	int fds = open_fds();

	for (size_t i = 0; i < n; i++) {
		char peer[32];
		snprintf(peer, sizeof(peer), "127.0.0.1:%zu", 7000 + i);
		request_mode(h, peer, cases[i].opcode, cases[i].file, cases[i].mode, NULL);
		CU_ASSERT_EQUAL_FATAL(dg_harness_replies(h), i + 1);
		if (!is_error(h, i, peer, cases[i].code, cases[i].msg))
			fprintf(stderr, "for '%s'\n", cases[i].file);
		CU_ASSERT(is_error(h, i, peer, cases[i].code, cases[i].msg));
		CU_ASSERT_EQUAL(dg_harness_pending(h), 0);
	}
	CU_ASSERT_EQUAL(COUNT(h, "errors"), n);
	CU_ASSERT_EQUAL(COUNT(h, "transfers"), 0);
	CU_ASSERT_EQUAL(open_fds(), fds);
	/* a link that stays inside root, and a file in a subdirectory */
	rrq(h, CLIENT, "link_in", NULL);
	CU_ASSERT(is_block(h, n, CLIENT, "f513", 512, 1));
	rrq(h, OTHER, "sub/g", NULL);
	CU_ASSERT(is_block(h, n + 1, OTHER, "sub/g", 512, 1));
	dg_harness_free(h);
}

/* Transfer name at blksize 8 to the end: block numbers go 65535, 0, 1...;
 * every block is checked. Returns the blocks seen. */
static unsigned transfer_small_blocks(struct dg_harness *h, const char *name)
{
	static const char *const opts[] = { "blksize", "8", NULL };
	size_t size;
	unsigned block = 0, blocks;

	file_data(name, &size);
	blocks = (unsigned)(size / 8) + 1;
	rrq(h, CLIENT, name, opts);
	CU_ASSERT_FATAL(is_oack(h, 0, CLIENT, "blksize", "8", (const char *)NULL));
	dg_harness_clear(h);
	ack(h, CLIENT, 0);
	while (dg_harness_replies(h) == 1 && block < blocks) {
		block++;
		if (!is_block(h, 0, CLIENT, name, 8, block)) {
			CU_FAIL("a block of the transfer");
			break;
		}
		dg_harness_clear(h);
		ack(h, CLIENT, block & 0xffff);
	}
	CU_ASSERT_EQUAL(block, blocks);
	CU_ASSERT_EQUAL(dg_harness_replies(h), 0); /* nothing after the last ACK */
	CU_ASSERT_EQUAL(dg_harness_pending(h), 0);
	return block;
}

/* Block numbers wrap from 65535 to 0: 600,000 bytes at blksize 8 are 75,001
 * blocks; a file whose last block is the 65,536th (numbered 0) ends at the
 * ACK 0 of that block; the bytes metric counts every block. */
static void test_rollover(void)
{
	struct dg_harness *h = tftp_on("", "");

	CU_ASSERT_EQUAL(transfer_small_blocks(h, "roll"), 75001);
	CU_ASSERT_EQUAL(COUNT(h, "completed"), 1);
	CU_ASSERT_EQUAL(COUNT(h, "bytes"), 600000);
	CU_ASSERT_EQUAL(transfer_small_blocks(h, "wrap"), 65536);
	CU_ASSERT_EQUAL(COUNT(h, "completed"), 2);
	CU_ASSERT_EQUAL(COUNT(h, "bytes"), 600000 + 65535 * 8 + 3);
	CU_ASSERT_EQUAL(COUNT(h, "retransmits"), 0);
	CU_ASSERT_EQUAL(COUNT(h, "active"), 0);
	dg_harness_free(h);
}

/* Packets from other peers while a transfer waits: another port of the
 * same host or another host with the same port is another TID (ERROR 5 to
 * it, RFC 1350), or a transfer of its own; none of it reaches the
 * transfer, whose resend keeps its time and whose ACK still counts. */
static void test_other_peers(void)
{
	struct dg_harness *h = tftp_on("", "");

	rrq(h, CLIENT, "f1100", NULL);
	ack(h, CLIENT, 1);
	dg_harness_clear(h);
	dg_harness_advance(h, 100);
	ack(h, OTHER, 2);
	CU_ASSERT(is_error(h, 0, OTHER, 5, "unknown transfer ID"));
	ack(h, FAR, 2);
	CU_ASSERT(is_error(h, 1, FAR, 5, "unknown transfer ID"));
	SEND_LIT(h, OTHER, "\0\3\0\2data");
	CU_ASSERT(is_error(h, 2, OTHER, 5, "unknown transfer ID"));
	rrq(h, FAR, "f513", NULL);
	CU_ASSERT(is_block(h, 3, FAR, "f513", 512, 1));
	CU_ASSERT_EQUAL(dg_harness_replies(h), 4);
	dg_harness_advance(h, TIMEOUT_MS - 101);
	CU_ASSERT_EQUAL(dg_harness_replies(h), 4);
	dg_harness_advance(h, 1); /* CLIENT's DATA 2, at its own time */
	CU_ASSERT_EQUAL_FATAL(dg_harness_replies(h), 5);
	CU_ASSERT(is_block(h, 4, CLIENT, "f1100", 512, 2));
	CU_ASSERT_EQUAL(sent_at(h, 4), TIMEOUT_MS);
	ack(h, CLIENT, 2);
	CU_ASSERT(is_block(h, 5, CLIENT, "f1100", 512, 3));
	ack(h, FAR, 1);
	CU_ASSERT(is_block(h, 6, FAR, "f513", 512, 2));
	ack(h, CLIENT, 3);
	ack(h, FAR, 2);
	CU_ASSERT_EQUAL(dg_harness_replies(h), 7);
	CU_ASSERT_EQUAL(COUNT(h, "completed"), 2);
	CU_ASSERT_EQUAL(COUNT(h, "bytes"), 1100 + 513);
	CU_ASSERT_EQUAL(COUNT(h, "errors"), 3);
	dg_harness_free(h);
}

/* The client's own packets other than the awaited ACK: its RRQ again
 * before its first ACK has the answer again at once (its wait starts
 * again), after it is ignored; its ERROR ends the transfer without an
 * answer, a malformed packet gets ERROR 4 and ends it, a DATA ERROR 4. */
static void test_client_packets(void)
{
	struct dg_harness *h = tftp_on("", "");

	rrq(h, CLIENT, "f1100", NULL);
	dg_harness_advance(h, 500);
	rrq(h, CLIENT, "f1100", NULL);
	CU_ASSERT_EQUAL_FATAL(dg_harness_replies(h), 2);
	CU_ASSERT(is_block(h, 1, CLIENT, "f1100", 512, 1));
	CU_ASSERT_EQUAL(sent_at(h, 1), 500);
	dg_harness_advance(h, TIMEOUT_MS - 1);
	CU_ASSERT_EQUAL(dg_harness_pending(h), 1);
	ack(h, CLIENT, 1);
	CU_ASSERT(is_block(h, 2, CLIENT, "f1100", 512, 2));
	rrq(h, CLIENT, "f1100", NULL); /* a stale copy now */
	CU_ASSERT_EQUAL(dg_harness_replies(h), 3);
	SEND_LIT(h, CLIENT, "\0\5\0\0gave up\0");
	CU_ASSERT_EQUAL(dg_harness_replies(h), 3);
	CU_ASSERT_EQUAL(dg_harness_pending(h), 0);
	CU_ASSERT_EQUAL(COUNT(h, "active"), 0);
	CU_ASSERT_EQUAL(COUNT(h, "retransmits"), 1);

	dg_harness_clear(h);
	rrq(h, OTHER, "f1100", NULL);
	SEND_LIT(h, OTHER, "\0\4\0"); /* a truncated ACK */
	CU_ASSERT_EQUAL_FATAL(dg_harness_replies(h), 2);
	CU_ASSERT(is_error(h, 1, OTHER, 4, NULL));
	CU_ASSERT_EQUAL(dg_harness_pending(h), 0);

	dg_harness_clear(h);
	rrq(h, FAR, "f1100", NULL);
	SEND_LIT(h, FAR, "\0\3\0\1data");
	CU_ASSERT(is_error(h, 1, FAR, 4, "unexpected packet in a read transfer"));
	CU_ASSERT_EQUAL(dg_harness_pending(h), 0);
	dg_harness_advance(h, 10 * TIMEOUT_MS); /* nothing more */
	CU_ASSERT_EQUAL(dg_harness_replies(h), 2);
	CU_ASSERT_EQUAL(COUNT(h, "transfers"), 3);
	CU_ASSERT_EQUAL(COUNT(h, "completed"), 0);
	CU_ASSERT_EQUAL(COUNT(h, "abandoned"), 0);
	CU_ASSERT_EQUAL(COUNT(h, "active"), 0);
	dg_harness_free(h);
}

/* A peer "a.b.c.d:port" of flood number i: another address for each. */
static const char *flood_peer(unsigned i)
{
	static char peer[32];

	snprintf(peer, sizeof(peer), "127.1.%u.%u:%u", i / 250, i % 250 + 1, 2000 + i);
	return peer;
}

/* Flood requests asking timeout 255 that never acknowledge hold at most
 * max_unvalidated_transfers places, each until timeout_ms at most: every
 * new request evicts the oldest (silently), so a real client still gets
 * in, and once it has acknowledged a block no flood evicts it. Only when
 * every place holds an acknowledged transfer is a request refused (server
 * busy), and no file stays open. */
static void test_flood_evicts_unacked(void)
{
	static const char *const slow[] = { "timeout", "255", NULL };
	int fds = open_fds();
	struct dg_harness *h = tftp_on("", ", \"max_transfers\": 6, "
	                                   "\"max_unvalidated_transfers\": 3");
	int with_harness = open_fds();
	unsigned f = 0;

	for (; f < 300; f++)
		rrq(h, flood_peer(f), "f1100", slow);
	CU_ASSERT_EQUAL(dg_harness_replies(h), 300); /* an OACK each */
	CU_ASSERT_EQUAL(COUNT(h, "active"), 3);
	CU_ASSERT_EQUAL(COUNT(h, "unvalidated"), 3);
	CU_ASSERT_EQUAL(COUNT(h, "evicted"), 297);
	CU_ASSERT_EQUAL(open_fds(), with_harness + 3);
	ack(h, flood_peer(0), 0); /* evicted long ago */
	CU_ASSERT(is_error(h, 300, flood_peer(0), 5, "unknown transfer ID"));

	dg_harness_clear(h);
	rrq(h, CLIENT, "f1100", NULL);
	CU_ASSERT(is_block(h, 0, CLIENT, "f1100", 512, 1));
	ack(h, CLIENT, 1);
	CU_ASSERT(is_block(h, 1, CLIENT, "f1100", 512, 2));
	for (; f < 600; f++)
		rrq(h, flood_peer(f), "f1100", slow);
	CU_ASSERT_EQUAL(COUNT(h, "unvalidated"), 3);
	CU_ASSERT_EQUAL(COUNT(h, "active"), 4);
	dg_harness_clear(h);
	ack(h, CLIENT, 2);
	CU_ASSERT(is_block(h, 0, CLIENT, "f1100", 512, 3));
	ack(h, CLIENT, 3);
	CU_ASSERT_EQUAL(COUNT(h, "completed"), 1);

	/* Six acknowledged transfers: the flood's are evicted, then refused. */
	for (unsigned i = 0; i < 6; i++) {
		char peer[32];
		snprintf(peer, sizeof(peer), "127.0.%u.1:7000", i + 1);
		dg_harness_clear(h);
		rrq(h, peer, "f1100", NULL);
		ack(h, peer, 1);
		CU_ASSERT(is_block(h, 1, peer, "f1100", 512, 2));
	}
	CU_ASSERT_EQUAL(COUNT(h, "unvalidated"), 0);
	CU_ASSERT_EQUAL(COUNT(h, "active"), 6);
	dg_harness_clear(h);
	rrq(h, flood_peer(f), "f1100", slow);
	CU_ASSERT(is_error(h, 0, flood_peer(f), 0, "server busy"));
	CU_ASSERT_EQUAL(COUNT(h, "evicted"), 297 + 300 + 3);
	dg_harness_free(h);
	CU_ASSERT_EQUAL(open_fds(), fds);
}

/* max_transfers_per_source counts the transfers of one address (an IPv6
 * one by its /64), whatever its ports: a new one evicts that address's
 * oldest unacknowledged transfer, not an older one of another address;
 * when all of them are acknowledged it is refused. */
static void test_per_source(void)
{
	struct dg_harness *h = tftp_on("", ", \"max_transfers_per_source\": 2");

	rrq(h, FAR, "f1100", NULL);             /* 127.0.0.2: the oldest of all */
	rrq(h, "127.0.0.1:6000", "f1100", NULL);
	rrq(h, "127.0.0.1:6001", "f1100", NULL);
	rrq(h, "127.0.0.1:6002", "f1100", NULL); /* evicts :6000 */
	CU_ASSERT_EQUAL(COUNT(h, "evicted"), 1);
	CU_ASSERT_EQUAL(COUNT(h, "active"), 3);
	dg_harness_clear(h);
	ack(h, "127.0.0.1:6000", 1);
	CU_ASSERT(is_error(h, 0, "127.0.0.1:6000", 5, "unknown transfer ID"));
	ack(h, FAR, 1);
	CU_ASSERT(is_block(h, 1, FAR, "f1100", 512, 2));
	ack(h, "127.0.0.1:6001", 1);
	ack(h, "127.0.0.1:6002", 1);
	CU_ASSERT_EQUAL(dg_harness_replies(h), 4);
	rrq(h, "127.0.0.1:6003", "f1100", NULL);
	CU_ASSERT(is_error(h, 4, "127.0.0.1:6003", 0, "too many transfers from this address"));
	rrq(h, "127.0.0.3:6003", "f1100", NULL); /* another address */
	CU_ASSERT(is_block(h, 5, "127.0.0.3:6003", "f1100", 512, 1));

	/* IPv6: one /64, two addresses; another /64 apart. */
	dg_harness_clear(h);
	rrq(h, "[2001:db8::1]:5000", "f1100", NULL);
	rrq(h, "[2001:db8::2]:5000", "f1100", NULL);
	ack(h, "[2001:db8::1]:5000", 1);
	ack(h, "[2001:db8::2]:5000", 1);
	rrq(h, "[2001:db8::3]:5000", "f1100", NULL);
	CU_ASSERT(is_error(h, 4, "[2001:db8::3]:5000", 0, "too many transfers from this address"));
	rrq(h, "[2001:db8:0:1::1]:5000", "f1100", NULL);
	CU_ASSERT(is_block(h, 5, "[2001:db8:0:1::1]:5000", "f1100", 512, 1));
	CU_ASSERT_EQUAL(COUNT(h, "evicted"), 1);
	dg_harness_free(h);
}

/* With the amplification guard on (factor 3): DATA 1 to an unvalidated
 * peer is refused, so the client gets a short ERROR 0 asking for options;
 * with options, the OACK fits, its ACK 0 validates the peer and every DATA
 * (and resend) goes out. */
static void test_guard(void)
{
	static const char *const opts[] = { "blksize", "512", NULL };
	struct dg_harness *h = tftp_on(", \"amplification\": {\"factor\": 3}", "");

	rrq(h, CLIENT, "f1100", NULL);
	CU_ASSERT(is_error(h, 0, CLIENT, 0, "not validated: ask with options"));
	CU_ASSERT_EQUAL(COUNT(h, "tx_drop_amplification"), 1);
	CU_ASSERT_EQUAL(dg_harness_pending(h), 0);
	rrq(h, OTHER, "f1100", opts);
	CU_ASSERT(is_oack(h, 1, OTHER, "blksize", "512", (const char *)NULL));
	ack(h, OTHER, 0);
	CU_ASSERT(is_block(h, 2, OTHER, "f1100", 512, 1));
	dg_harness_advance(h, TIMEOUT_MS);
	CU_ASSERT(is_block(h, 3, OTHER, "f1100", 512, 1));
	CU_ASSERT_EQUAL(COUNT(h, "tx_drop_amplification"), 1);
	dg_harness_free(h);
}

/* A blind spoofer's RRQ (timeout 255) then ACK 0 (the OACK is always block
 * 0), then silence: its transfer is acknowledged but stalled once it has
 * had no new ACK for timeout_ms, and a new request evicts it (silently:
 * its late ACK gets ERROR 5) instead of being refused for 6 x 255 s; one
 * that progresses (a new ACK within timeout_ms) is not evicted, and
 * before timeout_ms nothing is. The same for one source's places
 * (max_transfers_per_source). */
static void test_blind_ack_stalled(void)
{
	static const char *const slow[] = { "timeout", "255", "blksize", "512", NULL };
	struct dg_harness *h = tftp_on("", ", \"max_transfers\": 2, "
	                                   "\"max_transfers_per_source\": 2");

	rrq(h, "127.0.9.1:4000", "roll", slow);
	ack(h, "127.0.9.1:4000", 0);
	rrq(h, "127.0.9.2:4000", "roll", slow);
	ack(h, "127.0.9.2:4000", 0);
	CU_ASSERT_EQUAL(COUNT(h, "unvalidated"), 0);
	CU_ASSERT_EQUAL(COUNT(h, "active"), 2);
	dg_harness_clear(h);
	dg_harness_advance(h, TIMEOUT_MS - 1);
	rrq(h, CLIENT, "f1100", NULL);
	CU_ASSERT(is_error(h, 0, CLIENT, 0, "server busy"));
	ack(h, "127.0.9.2:4000", 1); /* progress: not stalled */
	CU_ASSERT(is_block(h, 1, "127.0.9.2:4000", "roll", 512, 2));
	dg_harness_advance(h, 1);    /* 127.0.9.1: no new ACK for timeout_ms */
	dg_harness_clear(h);
	rrq(h, OTHER, "f1100", NULL);
	CU_ASSERT_FATAL(dg_harness_replies(h) >= 1);
	CU_ASSERT(is_block(h, dg_harness_replies(h) - 1, OTHER, "f1100", 512, 1));
	CU_ASSERT_EQUAL(COUNT(h, "evicted_stalled"), 1);
	CU_ASSERT_EQUAL(COUNT(h, "evicted"), 0);
	CU_ASSERT_EQUAL(COUNT(h, "active"), 2);
	dg_harness_clear(h);
	ack(h, "127.0.9.1:4000", 1);
	CU_ASSERT(is_error(h, 0, "127.0.9.1:4000", 5, "unknown transfer ID"));
	ack(h, OTHER, 1);
	CU_ASSERT(is_block(h, 1, OTHER, "f1100", 512, 2));
	dg_harness_free(h);

	/* One source's two places, both guessed ACK 0. */
	h = tftp_on("", ", \"max_transfers_per_source\": 2");
	rrq(h, "127.0.9.3:4000", "roll", slow);
	ack(h, "127.0.9.3:4000", 0);
	rrq(h, "127.0.9.3:4001", "roll", slow);
	ack(h, "127.0.9.3:4001", 0);
	dg_harness_clear(h);
	dg_harness_advance(h, TIMEOUT_MS - 1);
	rrq(h, "127.0.9.3:5000", "f1100", NULL);
	CU_ASSERT(is_error(h, 0, "127.0.9.3:5000", 0, "too many transfers from this address"));
	dg_harness_advance(h, 1);
	dg_harness_clear(h);
	rrq(h, "127.0.9.3:5001", "f1100", NULL);
	CU_ASSERT_FATAL(dg_harness_replies(h) >= 1);
	CU_ASSERT(is_block(h, dg_harness_replies(h) - 1, "127.0.9.3:5001", "f1100", 512, 1));
	CU_ASSERT_EQUAL(COUNT(h, "evicted_stalled"), 1);
	dg_harness_clear(h);
	ack(h, "127.0.9.3:4000", 1); /* the oldest was evicted */
	CU_ASSERT(is_error(h, 0, "127.0.9.3:4000", 5, "unknown transfer ID"));
	dg_harness_free(h);
}

/* RFC 2349: a timeout option above max_client_timeout_ms (10 s by
 * default) is left out of the OACK and timeout_ms applies; up to it, it is
 * granted; max_client_timeout_ms 0 grants none. */
static void test_timeout_cap(void)
{
	static const char *const eleven[] = { "timeout", "11", "blksize", "512", NULL };
	static const char *const ten[] = { "timeout", "10", "blksize", "512", NULL };
	struct dg_harness *h = tftp_on("", "");

	rrq(h, CLIENT, "f1100", eleven);
	CU_ASSERT(is_oack(h, 0, CLIENT, "blksize", "512", (const char *)NULL));
	ack(h, CLIENT, 0);
	CU_ASSERT(is_block(h, 1, CLIENT, "f1100", 512, 1));
	dg_harness_advance(h, TIMEOUT_MS); /* lost: resent after timeout_ms, not 11 s */
	CU_ASSERT_EQUAL_FATAL(dg_harness_replies(h), 3);
	CU_ASSERT(is_block(h, 2, CLIENT, "f1100", 512, 1));
	rrq(h, OTHER, "f1100", ten);
	CU_ASSERT(is_oack(h, 3, OTHER, "blksize", "512", "timeout", "10", (const char *)NULL));
	dg_harness_free(h);

	h = tftp_on("", ", \"max_client_timeout_ms\": 0");
	rrq(h, CLIENT, "f1100", (const char *const[]){ "timeout", "1", "blksize", "512", NULL });
	CU_ASSERT(is_oack(h, 0, CLIENT, "blksize", "512", (const char *)NULL));
	dg_harness_free(h);
}

/* Resends are earned: each new ACK earns one, a timeout resend spends one,
 * a timeout with none abandons the transfer. A blind spoofer's RRQ and ACK
 * 0, then silence, draw the OACK, DATA 1 and one resend (not 1 +
 * retries); one that guesses each next ACK just before the transfer would
 * be abandoned draws at most two datagrams per datagram it sends. Bytes
 * out per spoofed byte are printed (payload and on the wire, 28 bytes of
 * headers each). */
static void test_resends_earned(void)
{
	static const char *const slow[] = { "timeout", "255", "blksize", "1468", NULL };
	const char *spoofed = "127.0.9.1:4000";
	struct dg_harness *h = tftp_on("", ", \"retries\": 5, \"max_blksize\": 1468");
	size_t in = rrq(h, spoofed, "roll", slow), packets;

	ack(h, spoofed, 0);
	in += 4;
	dg_harness_advance(h, 300 * TIMEOUT_MS);
	CU_ASSERT_EQUAL(dg_harness_pending(h), 0);
	size_t out = bytes_to(h, spoofed, &packets);
	printf("\nblind ACK 0: %zu bytes in 2 datagrams drew %zu bytes in %zu: %.1f per byte, "
	       "%.1f on the wire\n", in, out, packets, (double)out / (double)in,
	       (double)(out + 28 * packets) / (double)(in + 2 * 28));
	CU_ASSERT_EQUAL(packets, 3); /* the OACK, DATA 1 twice */
	CU_ASSERT_EQUAL(out, 15 + 2 * 1472);
	CU_ASSERT(is_oack(h, 0, spoofed, "blksize", "1468", (const char *)NULL));
	CU_ASSERT(is_block(h, 1, spoofed, "roll", 1468, 1));
	CU_ASSERT(is_block(h, 2, spoofed, "roll", 1468, 1));
	CU_ASSERT_EQUAL(sent_at(h, 2), TIMEOUT_MS);
	CU_ASSERT_EQUAL(COUNT(h, "abandoned"), 1);
	CU_ASSERT_EQUAL(COUNT(h, "retransmits"), 1);

	/* Paced: each next ACK guessed just before the transfer ends. */
	dg_harness_clear(h);
	spoofed = "127.0.9.2:4000";
	unsigned sent = 1;
	rrq(h, spoofed, "roll", slow);
	for (unsigned b = 0; b < 20; b++, sent++) {
		ack(h, spoofed, b);
		dg_harness_advance(h, 2 * TIMEOUT_MS - 1);
	}
	CU_ASSERT_EQUAL(dg_harness_pending(h), 1);
	dg_harness_advance(h, 300 * TIMEOUT_MS);
	bytes_to(h, spoofed, &packets);
	printf("paced guessed ACKs: %u datagrams drew %zu\n", sent, packets);
	CU_ASSERT(packets <= 2 * sent);
	CU_ASSERT_EQUAL(packets, 1 + 2 * 20);
	dg_harness_free(h);
}

/* Transfers in progress when the server stops: their files are closed. */
static void test_shutdown(void)
{
	int fds = open_fds();
	struct dg_harness *h = tftp_on("", "");

	rrq(h, CLIENT, "f1100", NULL);
	rrq(h, OTHER, "roll", NULL);
	CU_ASSERT_EQUAL(COUNT(h, "active"), 2);
	dg_harness_free(h);
	CU_ASSERT_EQUAL(open_fds(), fds);
}

static const struct dg_test tests[] = {
	{ "RRQ, ACK n -> DATA n + 1, the last block's ACK ends it", test_whole_files },
	{ "lost DATA: the same block after the timeout", test_lost_data },
	{ "no ACK: retries, then abandoned and released", test_retries_then_abandoned },
	{ "never acknowledged: one packet, no resend, timeout_ms only", test_unacked_no_resend },
	{ "duplicate ACK: no resend (Sorcerer's Apprentice)", test_duplicate_ack },
	{ "lost ACK: resend, late ACK, the resent copy's ACK", test_lost_ack },
	{ "ACKs of wrong blocks are ignored", test_wrong_block_ack },
	{ "OACK (blksize, timeout, tsize) and ACK 0", test_oack },
	{ "OACK: max_blksize, unknown and invalid options, empty file", test_oack_limits },
	{ "refusals: missing file, WRQ, '..', absolute, links out", test_refusals },
	{ "block numbers wrap past 65535", test_rollover },
	{ "other peers do not disturb a transfer", test_other_peers },
	{ "the client's RRQ again, ERROR, bad packets", test_client_packets },
	{ "a never-acknowledging flood: evicted, a real client gets in", test_flood_evicts_unacked },
	{ "max_transfers_per_source: by address, IPv6 by /64", test_per_source },
	{ "amplification guard: ERROR 0 without options, OACK validates", test_guard },
	{ "a guessed ACK 0 then silence: stalled, evicted after timeout_ms", test_blind_ack_stalled },
	{ "a timeout option above max_client_timeout_ms is not granted", test_timeout_cap },
	{ "resends are earned by new ACKs: two datagrams per datagram", test_resends_earned },
	{ "shutdown closes the files", test_shutdown },
	{ NULL, NULL },
};

DG_TEST_MAIN("tftp", tests)
