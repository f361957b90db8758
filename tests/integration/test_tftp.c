/* The tftp plugin packet by packet, from a scripted UDP client, on the
 * shipped conf/examples/tftp.json (bound to port 0, root the fixture's) with
 * short timeouts: a whole transfer, a lost DATA, duplicate and old ACKs (no
 * Sorcerer's Apprentice resend, and they do not postpone the resend either),
 * a client that stops ACKing (retries, then the transfer, its file and its
 * session are released), option negotiation, errors (missing file, path
 * escapes, symbolic links out of root, write requests, bad packets), the
 * amplification guard, max_transfers and eviction, a flood of requests that
 * never acknowledge, what a spoofed request draws, and a blind spoofer's
 * guessed ACK 0 (the places it holds, what its victims receive). Real clients:
 * test_tftp_clients. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tftp_fixture.h"

#define TIMEOUT_MS 200
#define RETRIES 2

/* Short timeouts, so lost packets cost little time. */
static const char *const fast[] = {
	"\"timeout_ms\": 1000", "\"timeout_ms\": 200",
	"\"retries\": 5", "\"retries\": 2",
	"\"session_idle_ms\": 5000", "\"session_idle_ms\": 300",
	NULL,
};

static unsigned char file_bytes[TFTP_BIG_SIZE];

/* The first len bytes of a root file (static buffer). */
static const unsigned char *contents(const char *name, size_t *len)
{
	FILE *f = fopen(tftp_root_path(name), "rb");

	CU_ASSERT_PTR_NOT_NULL_FATAL(f);
	*len = fread(file_bytes, 1, sizeof(file_bytes), f);
	fclose(f);
	return file_bytes;
}

/* Expect DATA block with bytes [off, off + n) of the file. */
static void expect_data(const unsigned char *pkt, ssize_t got, unsigned block,
                        const unsigned char *file, size_t off, size_t n)
{
	CU_ASSERT_EQUAL_FATAL(got, (ssize_t)(4 + n));
	CU_ASSERT_EQUAL(tftp_op(pkt), 3);
	CU_ASSERT_EQUAL(tftp_num(pkt), block);
	CU_ASSERT(n == 0 || !memcmp(pkt + 4, file + off, n));
}

static void rrq(int fd, const struct dg_daemon *d, const char *file, const char *const *opts)
{
	unsigned char req[512];

	tftp_send(fd, d, req, tftp_rrq(req, sizeof(req), 1, file, "octet", opts));
}

/* A whole transfer of f1100 (512 + 512 + 76) with no option. */
static void test_transfer(void)
{
	struct dg_daemon d;
	unsigned char pkt[2048];
	size_t len;
	const unsigned char *file = contents("f1100", &len);

	tftp_start(&d, fast);
	int fd = tftp_socket(NULL);
	rrq(fd, &d, "f1100", NULL);
	for (unsigned b = 1; b <= 3; b++) {
		ssize_t n = tftp_recv(fd, pkt, sizeof(pkt), 2000);
		expect_data(pkt, n, b, file, (b - 1) * 512, b < 3 ? 512 : 76);
		tftp_ack(fd, &d, (uint16_t)b);
	}
	CU_ASSERT(tftp_wait_metric(&d, "dgramd_plugin_tftp_completed_total", 1, 5000));
	CU_ASSERT(tftp_wait_metric(&d, "dgramd_plugin_tftp_active", 0, 5000));
	CU_ASSERT_EQUAL(tftp_metric(&d, "dgramd_plugin_tftp_bytes_total"), 1100);
	CU_ASSERT_EQUAL(tftp_metric(&d, "dgramd_plugin_tftp_retransmits_total"), 0);
	/* Nothing after the last ACK. */
	CU_ASSERT_EQUAL(tftp_recv(fd, pkt, sizeof(pkt), 2 * TIMEOUT_MS), -1);
	close(fd);
	dg_daemon_stop_checked(&d, "tftp");
}

/* DATA 1 lost: the client sends its RRQ again (as tftp-hpa does), which
 * has DATA 1 again at once (before the first ACK only a datagram in makes
 * one go out: the timeout resends nothing). Then DATA 2 lost: sent again
 * after the timeout. */
static void test_lost_data(void)
{
	struct dg_daemon d;
	unsigned char pkt[2048];
	size_t len;
	const unsigned char *file = contents("f1100", &len);

	tftp_start(&d, fast);
	int fd = tftp_socket(NULL);
	rrq(fd, &d, "f1100", NULL);
	expect_data(pkt, tftp_recv(fd, pkt, sizeof(pkt), 2000), 1, file, 0, 512);
	rrq(fd, &d, "f1100", NULL);
	expect_data(pkt, tftp_recv(fd, pkt, sizeof(pkt), 2000), 1, file, 0, 512);
	/* The wait is timed from before the datagram that starts the
	 * server's timer: the server may read it (and start the timer)
	 * before this process runs again after sendto. */
	double t0 = dg_now_ms();
	tftp_ack(fd, &d, 1);
	expect_data(pkt, tftp_recv(fd, pkt, sizeof(pkt), 2000), 2, file, 512, 512);
	expect_data(pkt, tftp_recv(fd, pkt, sizeof(pkt), 5000), 2, file, 512, 512);
	CU_ASSERT(dg_now_ms() - t0 >= TIMEOUT_MS - 10);
	tftp_ack(fd, &d, 2);
	expect_data(pkt, tftp_recv(fd, pkt, sizeof(pkt), 2000), 3, file, 1024, 76);
	tftp_ack(fd, &d, 3);
	CU_ASSERT(tftp_wait_metric(&d, "dgramd_plugin_tftp_completed_total", 1, 5000));
	CU_ASSERT_EQUAL(tftp_metric(&d, "dgramd_plugin_tftp_retransmits_total"), 2);
	close(fd);
	dg_daemon_stop_checked(&d, "tftp");
}

/* A duplicate ACK (and an old one) never makes the server send again: DATA
 * 2 comes a second time only when its own timeout runs out, counted from
 * when it was first sent, not from the duplicate. (The Sorcerer's
 * Apprentice bug would answer the duplicate with DATA 2 at once.) */
static void test_duplicate_ack(void)
{
	struct dg_daemon d;
	unsigned char pkt[2048];
	size_t len;
	const unsigned char *file = contents("f1100", &len);

	tftp_start(&d, fast);
	int fd = tftp_socket(NULL);
	rrq(fd, &d, "f1100", NULL);
	expect_data(pkt, tftp_recv(fd, pkt, sizeof(pkt), 2000), 1, file, 0, 512);
	tftp_ack(fd, &d, 1);
	expect_data(pkt, tftp_recv(fd, pkt, sizeof(pkt), 2000), 2, file, 512, 512);
	double t0 = dg_now_ms();
	tftp_ack(fd, &d, 1); /* duplicate */
	tftp_ack(fd, &d, 0); /* old */
	tftp_ack(fd, &d, 7); /* from nowhere */
	/* The only DATA 2 that comes is the timeout's resend. */
	expect_data(pkt, tftp_recv(fd, pkt, sizeof(pkt), 5000), 2, file, 512, 512);
	CU_ASSERT(dg_now_ms() - t0 >= TIMEOUT_MS - 20);
	tftp_ack(fd, &d, 2);
	expect_data(pkt, tftp_recv(fd, pkt, sizeof(pkt), 2000), 3, file, 1024, 76);
	tftp_ack(fd, &d, 3);
	CU_ASSERT(tftp_wait_metric(&d, "dgramd_plugin_tftp_completed_total", 1, 5000));
	CU_ASSERT_EQUAL(tftp_metric(&d, "dgramd_plugin_tftp_retransmits_total"), 1);
	CU_ASSERT_EQUAL(tftp_recv(fd, pkt, sizeof(pkt), 2 * TIMEOUT_MS), -1);
	close(fd);
	dg_daemon_stop_checked(&d, "tftp");
}

/* A client that repeats its old ACK more often than the server's timeout
 * (as clients do when their DATA is lost) still gets the resend: each
 * duplicate waits only for what is left of the timeout. */
static void test_duplicates_do_not_postpone(void)
{
	struct dg_daemon d;
	unsigned char pkt[2048];
	size_t len;
	const unsigned char *file = contents("f1100", &len);
	ssize_t n = -1;

	tftp_start(&d, fast);
	int fd = tftp_socket(NULL);
	rrq(fd, &d, "f1100", NULL);
	expect_data(pkt, tftp_recv(fd, pkt, sizeof(pkt), 2000), 1, file, 0, 512);
	double t0 = dg_now_ms();
	tftp_ack(fd, &d, 1);
	expect_data(pkt, tftp_recv(fd, pkt, sizeof(pkt), 2000), 2, file, 512, 512);
	/* DATA 2 "lost" to the client: ACK 1 every 50 ms (4 per timeout). */
	for (int i = 0; i < 40 && n < 0; i++) {
		tftp_ack(fd, &d, 1);
		n = tftp_recv(fd, pkt, sizeof(pkt), TIMEOUT_MS / 4);
	}
	expect_data(pkt, n, 2, file, 512, 512);
	CU_ASSERT(dg_now_ms() - t0 < 3 * TIMEOUT_MS + 500);
	close(fd);
	dg_daemon_stop_checked(&d, "tftp");
}

/* A client that stops ACKing after two new ACKs (they earn the two
 * resends, as many as retries): the block is sent 1 + retries times, then the
 * transfer ends; its file is closed, the gauge is back to 0 and the session
 * closes after session_idle_ms like any idle one. Before the peer's first
 * ACK (not validated) nothing is resent at all, whatever the amplification
 * credit: a spoofed source gets DATA 1 once and the transfer ends after
 * timeout_ms. */
static void test_client_stops_acking(void)
{
	static const char *const amp = "dgramd_tx_drops_total{reason=\"amplification\"}";
	struct dg_daemon d;
	unsigned char pkt[2048];
	size_t len;
	const unsigned char *file = contents("big", &len);

	tftp_start(&d, fast);
	long long idle = tftp_metric(&d, "dgramd_sessions_idle_total");
	/* The worker closes its end of the ready pipe just after it reports
	 * ready, so the ready file can come first: count its descriptors once
	 * it has answered a request (a missing file: nothing stays open). */
	int probe = tftp_socket(NULL);
	rrq(probe, &d, "no-such-file", NULL);
	ssize_t pn = tftp_recv(probe, pkt, sizeof(pkt), 2000);
	CU_ASSERT(pn >= 4 && tftp_op(pkt) == 5 && tftp_num(pkt) == 1);
	close(probe);
	int fds = tftp_worker_fds(&d);
	CU_ASSERT(fds > 0 && idle >= 0);
	for (int round = 0; round < 4; round++) {
		bool validate = round > 0;
		int fd = tftp_socket(NULL);
		rrq(fd, &d, "big", NULL);
		expect_data(pkt, tftp_recv(fd, pkt, sizeof(pkt), 2000), 1, file, 0, 512);
		if (validate) { /* two new ACKs: two resends earned */
			tftp_ack(fd, &d, 1);
			expect_data(pkt, tftp_recv(fd, pkt, sizeof(pkt), 2000), 2, file, 512, 512);
			tftp_ack(fd, &d, 2);
		}
		unsigned copies = 0;
		ssize_t n;
		while ((n = tftp_recv(fd, pkt, sizeof(pkt), 4 * TIMEOUT_MS)) > 0) {
			expect_data(pkt, n, 3, file, 1024, 512);
			copies++;
		}
		CU_ASSERT_EQUAL(copies, validate ? 1 + RETRIES : 0);
		close(fd);
	}
	CU_ASSERT(tftp_wait_metric(&d, "dgramd_plugin_tftp_abandoned_total", 4, 5000));
	CU_ASSERT(tftp_wait_metric(&d, "dgramd_plugin_tftp_active", 0, 5000));
	CU_ASSERT_EQUAL(tftp_metric(&d, "dgramd_plugin_tftp_retransmits_total"), 3 * RETRIES);
	CU_ASSERT_EQUAL(tftp_metric(&d, amp), 0);
	/* The probe's session and the four transfers'. */
	CU_ASSERT(tftp_wait_metric(&d, "dgramd_sessions_idle_total", idle + 5, 5000));
	CU_ASSERT_EQUAL(tftp_worker_fds(&d), fds); /* the files are closed */
	dg_daemon_stop_checked(&d, "tftp");
}

struct refusal {
	int opcode;
	const char *file, *mode;
	unsigned code; /* ERROR code expected */
};

/* Each from its own port (a session of its own). */
static void expect_error(const struct dg_daemon *d, const struct refusal *r)
{
	unsigned char req[512], pkt[2048];
	int fd = tftp_socket(NULL);

	tftp_send(fd, d, req, tftp_rrq(req, sizeof(req), r->opcode, r->file, r->mode, NULL));
	ssize_t n = tftp_recv(fd, pkt, sizeof(pkt), 2000);
	CU_ASSERT_FATAL(n >= 5);
	if (tftp_op(pkt) != 5 || tftp_num(pkt) != r->code || pkt[n - 1] != '\0')
		fprintf(stderr, "%s: op %u code %u, expected ERROR %u\n", r->file, tftp_op(pkt),
		        tftp_num(pkt), r->code);
	CU_ASSERT_EQUAL(tftp_op(pkt), 5);
	CU_ASSERT_EQUAL(tftp_num(pkt), r->code);
	CU_ASSERT_EQUAL(pkt[n - 1], '\0');
	close(fd);
}

static const struct refusal refusals[] = {
	{ 1, "missing", "octet", 1 },
	{ 1, "sub/missing", "octet", 1 },
	{ 1, "../outside/secret", "octet", 2 },
	{ 1, "sub/../../outside/secret", "octet", 2 },
	{ 1, "sub/../f513", "octet", 2 },       /* any "..", even one that stays inside */
	{ 1, "..", "octet", 2 },
	{ 1, "/etc/passwd", "octet", 2 },
	{ 1, "link_out", "octet", 2 },          /* a relative link leading out */
	{ 1, "abs_out", "octet", 2 },           /* an absolute one */
	{ 1, "dir_out/secret", "octet", 2 },    /* through a directory link */
	{ 1, "fifo", "octet", 2 },              /* not a regular file (and no hang) */
	{ 1, "secret-dir", "octet", 2 },
	{ 1, "sub/", "octet", 2 },
	{ 1, "a\033b", "octet", 2 },
	{ 2, "upload", "octet", 2 },            /* write requests */
	{ 2, "f513", "octet", 2 },
	{ 1, "f513", "netascii", 0 },           /* only octet */
	{ 1, "f513", "mail", 0 },
	{ 0, NULL, NULL, 0 },
};

static void test_refusals(void)
{
	struct dg_daemon d;

	tftp_start(&d, fast);
	for (const struct refusal *r = refusals; r->file; r++)
		expect_error(&d, r);
	/* Served afterwards (the FIFO blocked nothing): a link inside root. */
	size_t len;
	unsigned char pkt[2048];
	const unsigned char *file = contents("f513", &len);
	int fd = tftp_socket(NULL);
	rrq(fd, &d, "link_in", NULL);
	expect_data(pkt, tftp_recv(fd, pkt, sizeof(pkt), 2000), 1, file, 0, 512);
	close(fd);
	dg_daemon_stop_checked(&d, "tftp");
}

/* "symlinks": "refuse": no link is followed, not even inside root. */
static void test_symlinks_refuse(void)
{
	static const char *const repl[] = {
		"\"max_transfers\": 256", "\"max_transfers\": 256, \"symlinks\": \"refuse\"", NULL,
	};
	static const struct refusal refused[] = {
		{ 1, "link_in", "octet", 2 }, { 1, "link_out", "octet", 2 },
		{ 1, "dir_out/secret", "octet", 2 }, { 1, "abs_out", "octet", 2 },
		{ 1, "missing", "octet", 1 }, { 1, "fifo", "octet", 2 }, { 0, NULL, NULL, 0 },
	};
	struct dg_daemon d;
	unsigned char pkt[2048];
	size_t len;

	tftp_start(&d, repl);
	for (const struct refusal *r = refused; r->file; r++)
		expect_error(&d, r);
	const unsigned char *file = contents("sub/g", &len);
	int fd = tftp_socket(NULL);
	rrq(fd, &d, "sub/g", NULL);
	expect_data(pkt, tftp_recv(fd, pkt, sizeof(pkt), 2000), 1, file, 0, 100);
	close(fd);
	dg_daemon_stop_checked(&d, "tftp");
}

/* Packets that are no request: ERROR 4 (malformed), 5 (no transfer), none
 * for an ERROR. */
#define P(s) s, sizeof(s) - 1
static void test_bad_packets(void)
{
	static const struct {
		const char *bytes;
		size_t len;
		int code; /* -1: no answer */
	} cases[] = {
		{ P("\0\1f513"), 4 },                 /* no NUL */
		{ P("\0\1f513\0octet"), 4 },         /* mode without NUL */
		{ P("\0\1\0octet\0"), 4 },            /* empty name */
		{ P("\0\1f513\0octet\0blksize\0"), 4 }, /* an option without value */
		{ P("\0\1f513\0octet\0blksize\0" "512\0BlkSize\0" "512\0"), 4 }, /* twice */
		{ P("\0\11"), 4 },                    /* unknown opcode */
		{ P("\1"), 4 },
		{ P("\0\6blksize\0" "8\0"), 4 },     /* OACK to a server */
		{ P("\0\4\0\1"), 5 },                 /* ACK of no transfer */
		{ P("\0\3\0\1xyz"), 5 },              /* DATA of no transfer */
		{ P("\0\5\0\1bye\0"), -1 },           /* ERROR: never answered */
	};
	struct dg_daemon d;
	unsigned char pkt[2048];

	tftp_start(&d, fast);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int fd = tftp_socket(NULL);
		tftp_send(fd, &d, cases[i].bytes, cases[i].len);
		ssize_t n = tftp_recv(fd, pkt, sizeof(pkt), cases[i].code < 0 ? 300 : 2000);
		if (cases[i].code < 0) {
			CU_ASSERT_EQUAL(n, -1);
		} else {
			CU_ASSERT_FATAL(n >= 5);
			CU_ASSERT_EQUAL(tftp_op(pkt), 5);
			CU_ASSERT_EQUAL(tftp_num(pkt), (unsigned)cases[i].code);
			if (tftp_num(pkt) != (unsigned)cases[i].code)
				fprintf(stderr, "bad packet %zu: code %u\n", i, tftp_num(pkt));
		}
		close(fd);
	}
	/* A transfer's peer that sends garbage ends its transfer (ERROR 4). */
	int fd = tftp_socket(NULL);
	rrq(fd, &d, "big", NULL);
	CU_ASSERT_EQUAL(tftp_recv(fd, pkt, sizeof(pkt), 2000), 516);
	tftp_send(fd, &d, "\0\2x\0octet\0", 10);
	ssize_t n = tftp_recv(fd, pkt, sizeof(pkt), 2000);
	CU_ASSERT(n >= 5 && tftp_op(pkt) == 5 && tftp_num(pkt) == 4);
	CU_ASSERT(tftp_wait_metric(&d, "dgramd_plugin_tftp_active", 0, 5000));
	/* A client's ERROR ends its transfer silently. */
	close(fd);
	fd = tftp_socket(NULL);
	rrq(fd, &d, "big", NULL);
	CU_ASSERT_EQUAL(tftp_recv(fd, pkt, sizeof(pkt), 2000), 516);
	tftp_send(fd, &d, "\0\5\0\0stop\0", 9);
	CU_ASSERT(tftp_wait_metric(&d, "dgramd_plugin_tftp_active", 0, 5000));
	CU_ASSERT_EQUAL(tftp_recv(fd, pkt, sizeof(pkt), 3 * TIMEOUT_MS), -1);
	close(fd);
	dg_daemon_stop_checked(&d, "tftp");
}

/* Find option name in an OACK; its value or NULL. */
static const char *oack_get(const unsigned char *p, ssize_t n, const char *name)
{
	for (ssize_t at = 2; at < n;) {
		const char *k = (const char *)p + at;
		const char *v = k + strlen(k) + 1;
		if (!strcmp(k, name))
			return v;
		at = (v - (const char *)p) + (ssize_t)strlen(v) + 1;
	}
	return NULL;
}

/* blksize capped at max_blksize, tsize the file's, timeout echoed; ACK 0
 * starts the data; the transfer uses the granted size. */
static void test_options(void)
{
	static const char *const opts[] = { "blksize", "2000", "tsize", "0", "timeout", "1",
	                                    "windowsize", "4", NULL };
	struct dg_daemon d;
	unsigned char pkt[4096];
	size_t len;
	const unsigned char *file = contents("big", &len);

	tftp_start(&d, fast);
	int fd = tftp_socket(NULL);
	rrq(fd, &d, "big", opts);
	ssize_t n = tftp_recv(fd, pkt, sizeof(pkt), 2000);
	CU_ASSERT_FATAL(n > 2 && pkt[n - 1] == '\0');
	CU_ASSERT_EQUAL(tftp_op(pkt), 6);
	char size[32];
	snprintf(size, sizeof(size), "%u", TFTP_BIG_SIZE);
	CU_ASSERT_STRING_EQUAL(oack_get(pkt, n, "blksize"), "1468");
	CU_ASSERT_STRING_EQUAL(oack_get(pkt, n, "tsize"), size);
	CU_ASSERT_STRING_EQUAL(oack_get(pkt, n, "timeout"), "1");
	CU_ASSERT_PTR_NULL(oack_get(pkt, n, "windowsize")); /* unknown: left out */
	tftp_ack(fd, &d, 0);
	expect_data(pkt, tftp_recv(fd, pkt, sizeof(pkt), 2000), 1, file, 0, 1468);
	tftp_ack(fd, &d, 1);
	expect_data(pkt, tftp_recv(fd, pkt, sizeof(pkt), 2000), 2, file, 1468, 1468);
	tftp_send(fd, &d, "\0\5\0\0done\0", 9);
	close(fd);

	/* Invalid values are left out: no OACK at all when nothing is left. */
	static const char *const bad[] = { "blksize", "65465", "timeout", "0", "tsize", "x", NULL };
	fd = tftp_socket(NULL);
	rrq(fd, &d, "f513", bad);
	file = contents("f513", &len);
	expect_data(pkt, tftp_recv(fd, pkt, sizeof(pkt), 2000), 1, file, 0, 512);
	close(fd);

	/* An empty file: tsize left out of the OACK (curl refuses tsize 0). */
	static const char *const sized[] = { "tsize", "0", "blksize", "512", NULL };
	fd = tftp_socket(NULL);
	rrq(fd, &d, "f0", sized);
	n = tftp_recv(fd, pkt, sizeof(pkt), 2000);
	CU_ASSERT_EQUAL_FATAL(tftp_op(pkt), 6);
	CU_ASSERT_STRING_EQUAL(oack_get(pkt, n, "blksize"), "512");
	CU_ASSERT_PTR_NULL(oack_get(pkt, n, "tsize"));
	tftp_ack(fd, &d, 0);
	expect_data(pkt, tftp_recv(fd, pkt, sizeof(pkt), 2000), 1, file, 0, 0);
	tftp_ack(fd, &d, 1);
	close(fd);

	/* The smallest blksize, and the timeout option: 1 s, not 200 ms. */
	static const char *const tiny[] = { "blksize", "8", "timeout", "1", NULL };
	fd = tftp_socket(NULL);
	rrq(fd, &d, "f513", tiny);
	n = tftp_recv(fd, pkt, sizeof(pkt), 2000);
	CU_ASSERT_EQUAL_FATAL(tftp_op(pkt), 6);
	CU_ASSERT_STRING_EQUAL(oack_get(pkt, n, "blksize"), "8");
	tftp_ack(fd, &d, 0);
	expect_data(pkt, tftp_recv(fd, pkt, sizeof(pkt), 2000), 1, file, 0, 8);
	double t0 = dg_now_ms();
	expect_data(pkt, tftp_recv(fd, pkt, sizeof(pkt), 5000), 1, file, 0, 8);
	CU_ASSERT(dg_now_ms() - t0 >= 900);
	close(fd);
	dg_daemon_stop_checked(&d, "tftp");
}

/* Under the default factor 3 a plain RRQ cannot have its 516-byte DATA 1:
 * a short ERROR says to ask with options; with options the OACK goes out,
 * ACK 0 validates the peer and the blocks go out whole. */
static void test_amplification(void)
{
	static const char *const repl[] = {
		"\"factor\": 15", "\"factor\": 3",
		"\"timeout_ms\": 1000", "\"timeout_ms\": 200", NULL,
	};
	static const char *const opts[] = { "blksize", "512", NULL };
	struct dg_daemon d;
	unsigned char pkt[2048];
	size_t len;
	const unsigned char *file = contents("f1100", &len);

	tftp_start(&d, repl);
	int fd = tftp_socket(NULL);
	rrq(fd, &d, "f1100", NULL);
	ssize_t n = tftp_recv(fd, pkt, sizeof(pkt), 2000);
	CU_ASSERT_FATAL(n >= 5);
	CU_ASSERT_EQUAL(tftp_op(pkt), 5);
	CU_ASSERT_EQUAL(tftp_num(pkt), 0);
	CU_ASSERT_STRING_EQUAL((const char *)pkt + 4, "not validated: ask with options");
	close(fd);

	fd = tftp_socket(NULL);
	rrq(fd, &d, "f1100", opts);
	n = tftp_recv(fd, pkt, sizeof(pkt), 2000);
	CU_ASSERT_EQUAL_FATAL(tftp_op(pkt), 6);
	tftp_ack(fd, &d, 0);
	for (unsigned b = 1; b <= 3; b++) {
		expect_data(pkt, tftp_recv(fd, pkt, sizeof(pkt), 2000), b, file, (b - 1) * 512,
		            b < 3 ? 512 : 76);
		tftp_ack(fd, &d, (uint16_t)b);
	}
	CU_ASSERT(tftp_wait_metric(&d, "dgramd_plugin_tftp_completed_total", 1, 5000));
	close(fd);
	dg_daemon_stop_checked(&d, "tftp");
}

/* Past max_transfers: a new request evicts an unacknowledged transfer
 * (silently: its late ACK finds none), never an acknowledged one; with
 * every place acknowledged it gets ERROR 0 "server busy", and a place
 * frees when one ends. */
static void test_max_transfers(void)
{
	static const char *const repl[] = {
		"\"max_transfers\": 256", "\"max_transfers\": 2",
		"\"timeout_ms\": 1000", "\"timeout_ms\": 200", NULL,
	};
	struct dg_daemon d;
	unsigned char pkt[2048];
	int fd[4];

	tftp_start(&d, repl);
	for (int i = 0; i < 4; i++)
		fd[i] = tftp_socket(NULL);
	rrq(fd[0], &d, "big", NULL);
	CU_ASSERT_EQUAL(tftp_recv(fd[0], pkt, sizeof(pkt), 2000), 516);
	tftp_ack(fd[0], &d, 1);
	CU_ASSERT_EQUAL(tftp_recv(fd[0], pkt, sizeof(pkt), 2000), 516);
	rrq(fd[1], &d, "big", NULL); /* never acknowledged */
	CU_ASSERT_EQUAL(tftp_recv(fd[1], pkt, sizeof(pkt), 2000), 516);
	rrq(fd[2], &d, "big", NULL); /* evicts fd[1]'s */
	CU_ASSERT_EQUAL(tftp_recv(fd[2], pkt, sizeof(pkt), 2000), 516);
	tftp_ack(fd[2], &d, 1);
	CU_ASSERT_EQUAL(tftp_recv(fd[2], pkt, sizeof(pkt), 2000), 516);
	CU_ASSERT_EQUAL(tftp_metric(&d, "dgramd_plugin_tftp_evicted_total"), 1);
	tftp_ack(fd[1], &d, 1);
	ssize_t n = tftp_recv(fd[1], pkt, sizeof(pkt), 2000);
	CU_ASSERT(n >= 5 && tftp_op(pkt) == 5 && tftp_num(pkt) == 5);
	rrq(fd[3], &d, "big", NULL);
	n = tftp_recv(fd[3], pkt, sizeof(pkt), 2000);
	CU_ASSERT_EQUAL(n, (ssize_t)(4 + sizeof("server busy")));
	CU_ASSERT_EQUAL(tftp_op(pkt), 5);
	tftp_send(fd[0], &d, "\0\5\0\0stop\0", 9);
	CU_ASSERT(tftp_wait_metric(&d, "dgramd_plugin_tftp_active", 1, 5000));
	rrq(fd[3], &d, "big", NULL);
	CU_ASSERT_EQUAL(tftp_recv(fd[3], pkt, sizeof(pkt), 2000), 516);
	for (int i = 0; i < 4; i++)
		close(fd[i]);
	dg_daemon_stop_checked(&d, "tftp");
}

#define FLOOD_ADDRS 30
#define FLOOD_PORTS 10

/* 300 read requests asking timeout 255 from 300 sockets on 30 addresses
 * (127.0.100.1 .. 127.0.129.1) that never acknowledge, on the shipped
 * config (max_transfers 256): they hold at most max_unvalidated_transfers
 * places, a real client still gets its whole file, and the flood's
 * transfers are gone after timeout_ms (1 s), not 6 x 255 s. */
static void test_flood(void)
{
	static const char *const slow[] = { "timeout", "255", "tsize", "0", NULL };
	static int fl[FLOOD_ADDRS * FLOOD_PORTS];
	struct dg_daemon d;
	unsigned char pkt[2048];
	size_t len;
	unsigned answered = 0;

	tftp_start(&d, NULL);
	for (int a = 0; a < FLOOD_ADDRS; a++) {
		char src[32];
		snprintf(src, sizeof(src), "127.0.%d.1", 100 + a);
		for (int p = 0; p < FLOOD_PORTS; p++)
			fl[a * FLOOD_PORTS + p] = tftp_socket(src);
	}
	/* One address's requests at a time, each answered before the next
	 * ones (asked again if the kernel dropped it on a busy machine). */
	for (int a = 0; a < FLOOD_ADDRS; a++) {
		int *batch = fl + a * FLOOD_PORTS;
		for (int p = 0; p < FLOOD_PORTS; p++)
			rrq(batch[p], &d, "big", slow);
		for (int p = 0; p < FLOOD_PORTS; p++) {
			ssize_t got = -1;
			for (int tries = 0; tries < 5 && got < 0; tries++) {
				if (tries)
					rrq(batch[p], &d, "big", slow);
				got = tftp_recv(batch[p], pkt, sizeof(pkt), 1000);
			}
			answered += got > 2 && tftp_op(pkt) == 6;
		}
	}
	double t0 = dg_now_ms();
	CU_ASSERT_EQUAL(answered, FLOOD_ADDRS * FLOOD_PORTS);
	long long held = tftp_metric(&d, "dgramd_plugin_tftp_active");
	printf("\nflood: %u requests, %lld transfers held, %lld evicted\n", answered, held,
	       tftp_metric(&d, "dgramd_plugin_tftp_evicted_total"));
	CU_ASSERT(held > 0 && held <= 128);

	/* A real client, packet by packet, with options. */
	static const char *const opts[] = { "blksize", "1024", "tsize", "0", NULL };
	const unsigned char *file = contents("f1100", &len);
	int fd = tftp_socket(NULL);
	rrq(fd, &d, "f1100", opts);
	ssize_t n = tftp_recv(fd, pkt, sizeof(pkt), 2000);
	CU_ASSERT_FATAL(n > 2);
	if (tftp_op(pkt) == 5)
		fprintf(stderr, "client refused: %s\n", (const char *)pkt + 4);
	CU_ASSERT_EQUAL_FATAL(tftp_op(pkt), 6);
	tftp_ack(fd, &d, 0);
	expect_data(pkt, tftp_recv(fd, pkt, sizeof(pkt), 2000), 1, file, 0, 1024);
	tftp_ack(fd, &d, 1);
	expect_data(pkt, tftp_recv(fd, pkt, sizeof(pkt), 2000), 2, file, 1024, 76);
	tftp_ack(fd, &d, 2);
	CU_ASSERT(tftp_wait_metric(&d, "dgramd_plugin_tftp_completed_total", 1, 5000));
	close(fd);

	/* The flood's places free after timeout_ms, nothing resent but the
	 * answers to requests asked again. */
	CU_ASSERT(tftp_wait_metric(&d, "dgramd_plugin_tftp_active", 0, 10000));
	printf("flood: all places free %.0f ms after the last request was answered\n",
	       dg_now_ms() - t0);
	long long again = tftp_metric(&d, "dgramd_plugin_tftp_retransmits_total");
	CU_ASSERT(again >= 0 && again < FLOOD_ADDRS * FLOOD_PORTS / 10);
	unsigned more = 0;
	for (size_t i = 0; i < sizeof(fl) / sizeof(fl[0]); i++) {
		more += recv(fl[i], pkt, sizeof(pkt), MSG_DONTWAIT) >= 0;
		close(fl[i]);
	}
	CU_ASSERT_EQUAL(more, 0);
	dg_daemon_stop_checked(&d, "tftp");
}

/* What a spoofed read request draws, on the shipped config (factor 15,
 * retries 5; timeout_ms 200): one datagram, DATA 1 (516 bytes), however
 * large the request; the amplification credit of a large one (15 x (58 +
 * 28) = 1,290 bytes on the wire, 52 x 58 = 3,016 under the factor and
 * accounting of before) used to let the resends out too. Counted until the server
 * has given up on every transfer. */
static void test_reflection(void)
{
	static const char *const pad[] = { "x-padding", "012345678901234567890123456789012", NULL };
	static const struct {
		const char *file;
		const char *const *opts;
		size_t in;
	} cases[] = {
		{ "f1100", pad, 58 },
		{ "pxelinux.cfg/01-52-54-00-12-34-56", NULL, 42 },
	};
	static const char *const quick[] = { "\"timeout_ms\": 1000", "\"timeout_ms\": 200", NULL };
	struct dg_daemon d;
	unsigned char req[512], pkt[2048];
	int fd[2];

	tftp_start(&d, quick);
	for (int i = 0; i < 2; i++) {
		fd[i] = tftp_socket(NULL);
		size_t n = tftp_rrq(req, sizeof(req), 1, cases[i].file, "octet", cases[i].opts);
		CU_ASSERT_EQUAL(n, cases[i].in);
		tftp_send(fd[i], &d, req, n);
	}
	CU_ASSERT(tftp_wait_metric(&d, "dgramd_plugin_tftp_abandoned_total", 2, 10000));
	for (int i = 0; i < 2; i++) {
		size_t bytes = 0, packets = 0;
		ssize_t n;
		while ((n = recv(fd[i], pkt, sizeof(pkt), MSG_DONTWAIT)) >= 0) {
			bytes += (size_t)n;
			packets++;
		}
		printf("\nreflection: %zu-byte request (%s): %zu bytes in %zu datagrams, %.1f per "
		       "byte\n", cases[i].in, cases[i].file, bytes, packets,
		       (double)bytes / (double)cases[i].in);
		CU_ASSERT_EQUAL(bytes, 516);
		CU_ASSERT_EQUAL(packets, 1);
		close(fd[i]);
	}
	dg_daemon_stop_checked(&d, "tftp");
}

#define LOCK_ADDRS 16
#define LOCK_PORTS 16

/* Read what is waiting on fd (and up to wait_ms for the first packet):
 * adds to *bytes and *packets. */
static void take(int fd, unsigned wait_ms, size_t *bytes, size_t *packets)
{
	unsigned char pkt[2048];
	ssize_t n = wait_ms ? tftp_recv(fd, pkt, sizeof(pkt), wait_ms) : -1;

	if (n < 0)
		n = recv(fd, pkt, sizeof(pkt), MSG_DONTWAIT);
	for (; n >= 0; n = recv(fd, pkt, sizeof(pkt), MSG_DONTWAIT)) {
		*bytes += (size_t)n;
		(*packets)++;
	}
}

/* A real client's RRQ (blksize 1024) from src for f1100, the whole file;
 * on "server busy" (or "too many transfers from this address") it asks
 * again once the oldest spoofed transfer (wake) has sent its resend, that
 * is, once it has had no new ACK for timeout_ms (wpackets counts what wake
 * got: the OACK, DATA 1, then the resend). Returns whether it got
 * the file. */
static bool real_client(const struct dg_daemon *d, const char *src, int wake, size_t *wbytes,
                        size_t *wpackets)
{
	static const char *const opts[] = { "blksize", "1024", NULL };
	unsigned char pkt[2048];
	size_t len;
	const unsigned char *file = contents("f1100", &len);
	int fd = tftp_socket(src);
	ssize_t n = -1;

	for (int tries = 0; tries < 3; tries++) {
		rrq(fd, d, "f1100", opts);
		n = tftp_recv(fd, pkt, sizeof(pkt), 2000);
		if (n > 2 && tftp_op(pkt) == 6)
			break;
		if (n > 4 && tftp_op(pkt) == 5)
			fprintf(stderr, "client %s: ERROR '%s'\n", src, (const char *)pkt + 4);
		/* wake's OACK, DATA 1 and its resend: stalled now. */
		for (int waits = 0; waits < 3 && *wpackets < 3; waits++)
			take(wake, 3000, wbytes, wpackets);
	}
	if (n <= 2 || tftp_op(pkt) != 6) {
		close(fd);
		return false;
	}
	tftp_ack(fd, d, 0);
	expect_data(pkt, tftp_recv(fd, pkt, sizeof(pkt), 2000), 1, file, 0, 1024);
	tftp_ack(fd, d, 1);
	expect_data(pkt, tftp_recv(fd, pkt, sizeof(pkt), 2000), 2, file, 1024, 76);
	tftp_ack(fd, d, 2);
	close(fd);
	return true;
}

/* A blind spoofer on the shipped config: from 16 addresses x 16 ports, an
 * RRQ asking timeout 255 and blksize 1468, then ACK 0 (the OACK's number,
 * guessed; here the OACK is read only to pace the requests): 512 datagrams
 * fill all 256 places with acknowledged transfers. They are stalled after
 * timeout_ms (1 s) without a new ACK: a real client, and a client from one
 * of the spoofed addresses, get their file by evicting them (before: "server
 * busy" and "too many transfers from this address" for 6 x 255 s). What
 * each victim address receives per spoofed byte is counted until the
 * server has let go of every spoofed transfer: the OACK (timeout 255 left
 * out) and DATA 1 at most twice (before: 6 times). */
static void test_blind_ack_lock(void)
{
	static const char *const slow[] = { "timeout", "255", "blksize", "1468", NULL };
	static int v[LOCK_ADDRS * LOCK_PORTS];
	static size_t in[LOCK_ADDRS * LOCK_PORTS], sent[LOCK_ADDRS * LOCK_PORTS];
	static size_t out[LOCK_ADDRS * LOCK_PORTS], got[LOCK_ADDRS * LOCK_PORTS];
	struct dg_daemon d;
	unsigned char req[512], pkt[2048];
	size_t rlen = tftp_rrq(req, sizeof(req), 1, "big", "octet", slow);
	const size_t n_v = LOCK_ADDRS * LOCK_PORTS;

	tftp_start(&d, NULL);
	for (size_t i = 0; i < n_v; i++) {
		char src[32];
		snprintf(src, sizeof(src), "127.0.9.%zu", i / LOCK_PORTS + 1);
		v[i] = tftp_socket(src);
		ssize_t n = -1;
		for (int tries = 0; tries < 5 && n < 0; tries++) {
			tftp_send(v[i], &d, req, rlen);
			in[i] += rlen;
			sent[i]++;
			n = tftp_recv(v[i], pkt, sizeof(pkt), 1000);
		}
		CU_ASSERT_FATAL(n > 2 && tftp_op(pkt) == 6);
		out[i] += (size_t)n;
		got[i]++;
		tftp_ack(v[i], &d, 0);
		in[i] += 4;
		sent[i]++;
	}
	CU_ASSERT(tftp_wait_metric(&d, "dgramd_plugin_tftp_unvalidated", 0, 5000));
	long long held = tftp_metric(&d, "dgramd_plugin_tftp_active");
	printf("\nblind ACK 0: %zu datagrams from %d addresses, %lld places held of 256\n",
	       2 * n_v, LOCK_ADDRS, held);

	CU_ASSERT(real_client(&d, "127.0.0.50", v[0], &out[0], &got[0]));
	CU_ASSERT(real_client(&d, "127.0.9.2", v[LOCK_PORTS], &out[LOCK_PORTS], &got[LOCK_PORTS]));
	CU_ASSERT(tftp_wait_metric(&d, "dgramd_plugin_tftp_completed_total", 2, 5000));
	/* Every spoofed transfer evicted or abandoned (1 + 1 waits of 1 s). */
	CU_ASSERT(tftp_wait_metric(&d, "dgramd_plugin_tftp_active", 0, 10000));
	printf("blind ACK 0: %lld evicted stalled, %lld abandoned\n",
	       tftp_metric(&d, "dgramd_plugin_tftp_evicted_stalled_total"),
	       tftp_metric(&d, "dgramd_plugin_tftp_abandoned_total"));
	size_t all_in = 0, all_out = 0, all_sent = 0, all_got = 0, most = 0;
	for (size_t i = 0; i < n_v; i++) {
		take(v[i], 0, &out[i], &got[i]);
		CU_ASSERT(got[i] <= 2 * sent[i]);
		if (got[i] > most)
			most = got[i];
		all_in += in[i];
		all_out += out[i];
		all_sent += sent[i];
		all_got += got[i];
		close(v[i]);
	}
	printf("blind ACK 0: victims got %zu bytes in %zu datagrams (at most %zu to one) for %zu "
	       "bytes in %zu: %.1f per spoofed byte, %.1f on the wire\n", all_out, all_got, most,
	       all_in, all_sent, (double)all_out / (double)all_in,
	       (double)(all_out + 28 * all_got) / (double)(all_in + 28 * all_sent));
	CU_ASSERT(most <= 3);
	dg_daemon_stop_checked(&d, "tftp");
}

/* dgramd -t on the example with repl: the exit status, and want in its
 * output. */
static void check_t(const char *const *repl, int want_rc, const char *want)
{
	char bin[4096], plugins[4096], conf[4096], out[8192], err[8192];

	snprintf(bin, sizeof(bin), "%s/dgramd", dg_test_builddir());
	snprintf(plugins, sizeof(plugins), "%s/plugins/.libs", dg_test_builddir());
	snprintf(conf, sizeof(conf), "%s", dg_test_write("tftp-t.json", tftp_config(repl)));
	const char *argv[] = { bin, "-P", plugins, "-t", "-c", conf, NULL };
	int rc = dg_run(argv, NULL, out, sizeof(out), err, sizeof(err), 10000);
	bool found = strstr(out, want) || strstr(err, want);
	if (rc != want_rc || !found)
		fprintf(stderr, "dgramd -t: %d, expected %d and '%s':\n%s%s\n", rc, want_rc, want,
		        out, err);
	CU_ASSERT_EQUAL(rc, want_rc);
	CU_ASSERT(found);
}

/* Config errors name their key; a missing root is only a warning (the
 * config can be checked before the directory exists). */
static void test_config(void)
{
	char root[1100], missing[1100], file[1100], with_root[1200];

	snprintf(root, sizeof(root), "\"%s\"", tftp_root());
	snprintf(missing, sizeof(missing), "\"%s/no-such-dir\"", tftp_root());
	snprintf(file, sizeof(file), "\"%s/f513\"", tftp_root());
	snprintf(with_root, sizeof(with_root), "\"root\": %s, ", root);
	check_t(NULL, 0, "");
	check_t((const char *const[]){ root, missing, NULL }, 0, "does not exist (yet)");
	check_t((const char *const[]){ root, file, NULL }, 1, "Not a directory");
	check_t((const char *const[]){ with_root, "", NULL }, 1, "handler.config.root");
	check_t((const char *const[]){ "\"max_blksize\": 1468", "\"max_blksize\": 65465", NULL },
	        1, "handler.config.max_blksize");
	check_t((const char *const[]){ "\"retries\": 5", "\"retries\": 5, \"retry\": 1", NULL }, 1,
	        "handler.config.retry");
	check_t((const char *const[]){ "\"max_transfers\": 256",
	                               "\"max_transfers\": 256, \"symlinks\": \"follow\"", NULL },
	        1, "handler.config.symlinks");
}

static const struct dg_test tests[] = {
	{ "transfer", test_transfer },
	{ "lost_data", test_lost_data },
	{ "duplicate_ack", test_duplicate_ack },
	{ "duplicates_do_not_postpone", test_duplicates_do_not_postpone },
	{ "client_stops_acking", test_client_stops_acking },
	{ "refusals", test_refusals },
	{ "symlinks_refuse", test_symlinks_refuse },
	{ "bad_packets", test_bad_packets },
	{ "options", test_options },
	{ "amplification", test_amplification },
	{ "max_transfers", test_max_transfers },
	{ "flood", test_flood },
	{ "reflection", test_reflection },
	{ "blind_ack_lock", test_blind_ack_lock },
	{ "config", test_config },
	{ NULL, NULL },
};

DG_TEST_MAIN("tftp", tests)
