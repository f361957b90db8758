/* Integration: the batched paths and worker processes. Functional, not
 * timed: speed lives in bench/. */
#include "config.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "testutil.h"

#define RAW_ECHO "{\"listeners\": [{\"name\": \"t\", \"bind\": \"127.0.0.1:0\", " \
                 "\"codec\": \"raw\", \"handler\": \"echo\"}]}"


/* One receive batch holding datagrams from several peers, good, bad and
 * oversized: the daemon is stopped while they queue up, so it reads them
 * together. Every good one is answered to its own peer. */
static void test_mixed_batch(void)
{
	struct dg_daemon d;
	char big[200], buf[256];
	int fd[3];

	memset(big, '[', sizeof(big));
	CU_ASSERT_FATAL(dg_daemon_start(&d, "{\"listeners\": [{\"name\": \"t\", \"bind\": \"127.0.0.1:0\", "
	        "\"codec\": \"json\", \"max_datagram\": 100, \"handler\": \"echo\"}]}", NULL));
	for (int i = 0; i < 3; i++)
		fd[i] = dg_udp_client(&d.addr[0], 2000);
	CU_ASSERT(dg_daemon_pause(&d));
	for (int round = 0; round < 5; round++) {
		for (int i = 0; i < 3; i++) {
			snprintf(buf, sizeof(buf), "{\"peer\":%d,\"n\":%d}", i, round);
			sendto(fd[i], buf, strlen(buf), 0, (struct sockaddr *)&d.addr[0], d.addrlen[0]);
		}
		sendto(fd[0], "{bad", 4, 0, (struct sockaddr *)&d.addr[0], d.addrlen[0]);
		sendto(fd[1], big, sizeof(big), 0, (struct sockaddr *)&d.addr[0], d.addrlen[0]);
	}
	CU_ASSERT(dg_daemon_resume(&d));
	for (int i = 0; i < 3; i++) {
		for (int round = 0; round < 5; round++) {
			char want[64];
			ssize_t n = recv(fd[i], buf, sizeof(buf) - 1, 0);
			buf[n > 0 ? n : 0] = '\0';
			snprintf(want, sizeof(want), "{\"peer\":%d,\"n\":%d}", i, round);
			CU_ASSERT_STRING_EQUAL(buf, want);
		}
		close(fd[i]);
	}
	dg_daemon_stop_checked(&d, "t");
	CU_ASSERT_EQUAL(dg_daemon_stat(&d, "t", "rx"), 25);
	CU_ASSERT_EQUAL(dg_daemon_stat(&d, "t", "handled"), 15);
	CU_ASSERT_EQUAL(dg_daemon_stat(&d, "t", "decode_errors"), 5);
	CU_ASSERT_EQUAL(dg_daemon_stat(&d, "t", "drop_too_large"), 5);
	CU_ASSERT_EQUAL(dg_daemon_stat(&d, "t", "tx"), 15);
}

/* Regression: replies are coalesced per request, never across requests.
 * Many peers' multi-frame datagrams in one receive batch (the first one of
 * the daemon's life, where a stale coalescing check once merged them): each
 * peer gets exactly its own frames back. */
static void test_coalescing_per_request(void)
{
	struct dg_daemon d;
	int fd[16];
	char buf[512];

	CU_ASSERT_FATAL(dg_daemon_start(&d, "{\"listeners\": [{\"name\": \"t\", \"bind\": \"127.0.0.1:0\", "
	        "\"codec\": {\"framing\": \"length-prefixed\", \"width\": 1}, \"handler\": \"echo\"}]}", NULL));
	CU_ASSERT(dg_daemon_pause(&d));
	for (int i = 0; i < 16; i++) {
		fd[i] = dg_udp_client(&d.addr[0], 2000);
		unsigned char dg[16];
		for (int f = 0; f < 4; f++) {
			dg[f * 3] = 2;
			dg[f * 3 + 1] = (unsigned char)('a' + i);
			dg[f * 3 + 2] = (unsigned char)('0' + f);
		}
		sendto(fd[i], dg, 12, 0, (struct sockaddr *)&d.addr[0], d.addrlen[0]);
	}
	CU_ASSERT(dg_daemon_resume(&d));
	for (int i = 0; i < 16; i++) {
		ssize_t n = recv(fd[i], buf, sizeof(buf), 0);
		CU_ASSERT_EQUAL(n, 12);
		for (int f = 0; n == 12 && f < 4; f++) {
			CU_ASSERT_EQUAL(buf[f * 3 + 1], 'a' + i);
			CU_ASSERT_EQUAL(buf[f * 3 + 2], '0' + f);
		}
		close(fd[i]);
	}
	dg_daemon_stop_checked(&d, "t");
	CU_ASSERT_EQUAL(dg_daemon_stat(&d, "t", "tx"), 16);
}

/* A client socket with room for many replies. */
static int big_client(struct dg_daemon *d)
{
	int fd = dg_udp_client(&d->addr[0], 2000), big = 1 << 20;

	setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &big, sizeof(big));
	return fd;
}

/* Send requests "0" .. "n-1". */
static void send_numbers(int fd, struct dg_daemon *d, unsigned n)
{
	char buf[16];

	for (unsigned i = 0; i < n; i++) {
		snprintf(buf, sizeof(buf), "%u", i);
		sendto(fd, buf, strlen(buf), 0, (struct sockaddr *)&d->addr[0], d->addrlen[0]);
	}
}

/* Read n replies; how many are "0" .. "n-1" in order. */
static unsigned recv_numbers(int fd, unsigned n)
{
	char buf[64], want[16];
	unsigned ok = 0;

	for (unsigned i = 0; i < n; i++) {
		ssize_t r = recv(fd, buf, sizeof(buf) - 1, 0);
		if (r <= 0)
			break;
		buf[r] = '\0';
		snprintf(want, sizeof(want), "%u", i);
		ok += strcmp(buf, want) == 0;
	}
	return ok;
}

static unsigned burst(struct dg_daemon *d, unsigned n)
{
	int fd = big_client(d);

	send_numbers(fd, d, n);
	unsigned ok = recv_numbers(fd, n);
	close(fd);
	return ok;
}

/* EAGAIN in the middle of a batch (injected: loopback never fills a send
 * buffer): the rest waits in the send queue and goes out on EV_WRITE, in
 * order, none lost. */
static void test_send_eagain(void)
{
	struct dg_daemon d;

	CU_ASSERT_FATAL(dg_daemon_start_env(&d, RAW_ECHO, "DGRAMD_FAULT_SEND", "2"));
	CU_ASSERT(dg_daemon_pause(&d)); /* 200 requests in one go: replies leave in batches */
	int fd = big_client(&d);
	send_numbers(fd, &d, 200);
	CU_ASSERT(dg_daemon_resume(&d));
	unsigned ok = recv_numbers(fd, 200);
	close(fd);
	CU_ASSERT_EQUAL(ok, 200);
	CU_ASSERT_EQUAL(burst(&d, 50), 50);
	dg_daemon_stop_checked(&d, "t");
	long long queued = dg_daemon_stat(&d, "t", "tx_queued");
	fprintf(stderr, "replies that went through the send queue: %lld of 250\n", queued);
	CU_ASSERT(queued > 0);
	CU_ASSERT_EQUAL(dg_daemon_stat(&d, "t", "tx"), 250);
	CU_ASSERT_EQUAL(dg_daemon_stat(&d, "t", "tx_drop_queue_full"), 0);
}

/* The one-datagram-per-call path, forced. */
static void test_no_mmsg(void)
{
	struct dg_daemon d;

	CU_ASSERT_FATAL(dg_daemon_start_env(&d, RAW_ECHO, "DGRAMD_NO_MMSG", "1"));
	CU_ASSERT_EQUAL(burst(&d, 100), 100);
	dg_daemon_stop_checked(&d, "t");
	CU_ASSERT_EQUAL(dg_daemon_stat(&d, "t", "tx"), 100);
}

static pid_t worker_pid(struct dg_daemon *d, unsigned n)
{
	char *log = dg_daemon_log(d), needle[64];
	pid_t pid = 0;

	snprintf(needle, sizeof(needle), "worker %u started (pid ", n);
	char *p = strstr(log, needle);
	if (p)
		pid = (pid_t)atoi(p + strlen(needle));
	free(log);
	return pid;
}

/* workers: 2. A worker killed with SIGSEGV during a stream of requests is
 * restarted, other peers keep being answered, and the log names the signal. */
static void test_worker_crash(void)
{
	struct dg_daemon d;
	char conf[512];
	int fd[10];
	unsigned answered = 0, after_kill = 0, sent = 0;
	char buf[16];

	snprintf(conf, sizeof(conf), "{\"workers\": 2, \"listeners\": [{\"name\": \"t\", "
	         "\"bind\": \"127.0.0.1:%u\", \"codec\": \"raw\", \"handler\": \"echo\"}]}", dg_free_udp_port());
	/* Under ASan the sanitizer would catch the SEGV itself and exit(1):
	 * let the signal through, as in a plain build. */
	const char *asan = getenv("ASAN_OPTIONS");
	char opts[512];
	snprintf(opts, sizeof(opts), "%s%shandle_segv=0", asan ? asan : "", asan ? ":" : "");
	CU_ASSERT_FATAL(dg_daemon_start_env(&d, conf, "ASAN_OPTIONS", opts));
	pid_t w1 = worker_pid(&d, 1);
	CU_ASSERT_FATAL(w1 > 0);
	for (int i = 0; i < 10; i++)
		fd[i] = dg_udp_client(&d.addr[0], 200);
	double t0 = dg_now_ms(), killed_at = 0;
	while (dg_now_ms() - t0 < 1500) {
		if (!killed_at && dg_now_ms() - t0 > 500) {
			kill(w1, SIGSEGV);
			killed_at = dg_now_ms();
		}
		for (int i = 0; i < 10; i++) {
			sent++;
			if (dg_udp_ask(fd[i], &d.addr[0], d.addrlen[0], "x", 1, buf, sizeof(buf)) == 1) {
				answered++;
				after_kill += killed_at && dg_now_ms() - killed_at > 200;
			}
		}
	}
	for (int i = 0; i < 10; i++)
		close(fd[i]);
	fprintf(stderr, "workers: %u of %u answered, %u of them after the kill\n", answered, sent, after_kill);
	CU_ASSERT(answered >= sent * 9 / 10);
	CU_ASSERT(after_kill > 0);
	char *log = dg_daemon_log(&d);
	CU_ASSERT_PTR_NOT_NULL(strstr(log, "killed by signal 11 (SIGSEGV)"));
	CU_ASSERT_EQUAL(dg_count_lines(log, "worker 1 started"), 2);
	free(log);
	dg_daemon_stop_checked(&d, "t");
	/* The master's totals cover every worker, the dead one included. A
	 * worker counts a batch after sendmmsg returns: a kill between the two
	 * loses at most one batch (64) from the count, not from the wire. */
	long long tx = dg_daemon_stat(&d, "t", "tx") + 64;
	if (tx < answered) {
		char *all = dg_daemon_log(&d);
		fprintf(stderr, "tx %lld < answered %u; log:\n%s\n", tx, answered, all);
		free(all);
	}
	CU_ASSERT(tx >= answered);
}

static void test_workers_bad_count(void)
{
	char out[2048], err[2048], bin[4096], path[4096];

	snprintf(bin, sizeof(bin), "%s/dgramd", dg_test_builddir());
	/* Port 0 with workers works now that the master binds every
	 * worker's socket: test_reload runs it. */
	const char *argv[] = { bin, "-t", "-c", path, NULL };
	snprintf(path, sizeof(path), "%s", dg_test_write("w1.json", "{\"workers\": \"many\", \"listeners\": "
	         "[{\"name\": \"t\", \"bind\": \"127.0.0.1:1\", \"handler\": \"echo\"}]}"));
	CU_ASSERT_EQUAL(dg_run(argv, NULL, out, sizeof(out), err, sizeof(err), 10000), 1);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "workers: expected an integer from 1 to 1024, or \"auto\""));
}

/* A good request to every listener of test_hostile_flood, on a socket of
 * its own (the hostile one's replies may fill its buffer). */
static void barrier(struct dg_daemon *d, unsigned *sent, unsigned *answered)
{
	static const char *const good[4] = { "[1]", "\x03[1]", "{\"op\":\"get\",\"key\":\"a\"}", "[1]\n" };
	int c = dg_udp_client(&d->addr[0], 5000);
	char reply[256];

	for (int i = 0; i < 4; i++) {
		(*sent)++;
		*answered += dg_udp_ask(c, &d->addr[i], d->addrlen[i], good[i], strlen(good[i]),
		                        reply, sizeof(reply)) > 0;
	}
	close(c);
}

/* Hostile input through the whole daemon path (the fuzzers cover the codecs
 * alone): 20,000 random datagrams, random sizes up to 2 KiB, at listeners of
 * every codec and at kv; the daemon keeps answering and every counter adds
 * up. Random but reproducible (a fixed seed). */
static void test_hostile_flood(void)
{
	static const char conf[] =
		"{\"codec_modules\": [\"lines\"], \"listeners\": ["
		" {\"name\": \"t\", \"bind\": \"127.0.0.1:0\", \"codec\": \"json\", \"max_datagram\": 1500, \"rcvbuf\": 4194304,"
		"  \"handler\": {\"plugin\": \"echo\", \"config\": {\"error_reply\": true}}},"
		" {\"name\": \"lp\", \"bind\": \"127.0.0.1:0\", \"rcvbuf\": 4194304, \"codec\": {\"framing\": \"length-prefixed\","
		"  \"width\": 1, \"payload\": \"json\", \"max_frames\": 8}, \"handler\": \"echo\"},"
		" {\"name\": \"kv\", \"bind\": \"127.0.0.1:0\", \"rcvbuf\": 4194304, \"codec\": \"json\", \"handler\": \"kv\"},"
		" {\"name\": \"lines\", \"bind\": \"127.0.0.1:0\", \"rcvbuf\": 4194304, \"codec\": {\"framing\": \"lines\","
		"  \"payload\": \"json\"}, \"handler\": \"echo\"}]}";
	static const char *const seeds[] = {
		"{\"op\":\"set\",\"key\":\"", "[[[[[[", "\"\\u0000\"", "\x02{}\x01[", "\xff\xfe",
		"1e999", "{\"a\":1,\"a\":2}", "\n\n\n", "{\"op\":\"get\",\"key\":\"a\"}",
	};
	struct dg_daemon d;
	unsigned char buf[2048];
	unsigned state = 12345, barriers = 0, answered = 0;

	CU_ASSERT_FATAL(dg_daemon_start(&d, conf, NULL));
	CU_ASSERT_EQUAL_FATAL(d.n_addr, 4);
	int fd = big_client(&d);
	for (unsigned i = 0; i < 20000; i++) {
		state = state * 1103515245u + 12345u;
		size_t len = (state >> 8) % sizeof(buf);
		for (size_t b = 0; b < len; b++) {
			state = state * 1103515245u + 12345u;
			buf[b] = (unsigned char)(state >> 16);
		}
		if (i % 3 == 0) { /* start from something that almost parses */
			const char *s = seeds[(state >> 4) % (sizeof(seeds) / sizeof(seeds[0]))];
			size_t sl = strlen(s);
			memcpy(buf, s, sl < sizeof(buf) ? sl : sizeof(buf));
			len = len > sl ? len / 8 + sl : sl;
		}
		unsigned to = i % 4;
		sendto(fd, buf, len, 0, (struct sockaddr *)&d.addr[to], d.addrlen[to]);
		/* A barrier: a good request to every listener, answered, so at most
		 * 200 hostile datagrams wait at a time (no loss in the kernel) and
		 * every listener still answers. */
		if (i % 200 == 199)
			barrier(&d, &barriers, &answered);
	}
	close(fd);
	barrier(&d, &barriers, &answered);
	CU_ASSERT_EQUAL(answered, barriers);
	const char *names[] = { "t", "lp", "kv", "lines" };
	for (int i = 1; i < 4; i++)
		CU_ASSERT(dg_daemon_stat(&d, names[i], "rx") == -1); /* not stopped yet */
	dg_daemon_stop_checked(&d, "t");
	long long total = 0;
	for (int i = 0; i < 4; i++) {
		long long rx = dg_daemon_stat(&d, names[i], "rx");
		long long sum = dg_daemon_stat(&d, names[i], "handled") + dg_daemon_stat(&d, names[i], "decode_errors") +
		                dg_daemon_stat(&d, names[i], "drop_too_large");
		CU_ASSERT_EQUAL(rx, sum);
		total += rx;
	}
	fprintf(stderr, "hostile flood: %lld of %u datagrams reached the listeners\n", total, 20000 + barriers);
	CU_ASSERT_EQUAL(total, 20000 + barriers);
}

static const struct dg_test scale_tests[] = {
	{ "hostile flood through every codec", test_hostile_flood },
	{ "one batch: several peers, good, bad, oversized", test_mixed_batch },
	{ "replies coalesce per request, never across peers", test_coalescing_per_request },
	{ "EAGAIN mid-batch: queue and flush", test_send_eagain },
	{ "recvmsg/sendmsg fallback forced", test_no_mmsg },
	{ "worker killed with SIGSEGV is restarted", test_worker_crash },
	{ "workers: a bad count", test_workers_bad_count },
	{ NULL, NULL },
};

DG_TEST_MAIN("scale", scale_tests)
