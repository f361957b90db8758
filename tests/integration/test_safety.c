/* Integration: access control and rate limits on the real daemon, with
 * sources simulated from many 127.x.y.z addresses (all of 127.0.0.0/8 is
 * local on Linux) and ::1; exact counters. */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "testutil.h"

/* A UDP socket bound to address src ("127.0.3.4" or "::1"), any port. */
static int sock_from(const char *src)
{
	struct sockaddr_storage ss = { 0 };
	socklen_t len;

	if (strchr(src, ':')) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
		s6->sin6_family = AF_INET6;
		inet_pton(AF_INET6, src, &s6->sin6_addr);
		len = sizeof(*s6);
	} else {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
		s4->sin_family = AF_INET;
		inet_pton(AF_INET, src, &s4->sin_addr);
		len = sizeof(*s4);
	}
	int fd = socket(ss.ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	CU_ASSERT_FATAL(fd >= 0);
	CU_ASSERT_FATAL(bind(fd, (struct sockaddr *)&ss, len) == 0);
	return fd;
}

static void send_n(int fd, const struct dg_daemon *d, unsigned idx, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		CU_ASSERT_EQUAL(sendto(fd, "ping", 4, 0, (const struct sockaddr *)&d->addr[idx],
		                       d->addrlen[idx]), 4);
}

/* Replies waiting on fd, without blocking (call once the daemon is gone:
 * every reply it made is queued by then, loopback delivers at once). */
static unsigned replies(int fd)
{
	char buf[64];
	unsigned n = 0;

	while (recv(fd, buf, sizeof(buf), MSG_DONTWAIT) > 0)
		n++;
	return n;
}

/* An address as /proc/net/udp{,6} shows it: 32-bit words in host order,
 * in hex, then ":PORT". */
static void proc_addr(const struct sockaddr *sa, char *buf, size_t len)
{
	const unsigned char *a = sa->sa_family == AF_INET6
	        ? ((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr
	        : (const unsigned char *)&((const struct sockaddr_in *)sa)->sin_addr;
	unsigned words = sa->sa_family == AF_INET6 ? 4 : 1, port = ntohs(((const struct sockaddr_in *)sa)->sin_port);
	size_t n = 0;

	for (unsigned w = 0; w < words; w++) {
		uint32_t v;
		memcpy(&v, a + 4 * w, 4);
		n += (size_t)snprintf(buf + n, len - n, "%08X", v);
	}
	snprintf(buf + n, len - n, ":%04X", port);
}

/* Wait (up to 10 s) until the daemon has read everything queued on its
 * socket idx: its receive queue in /proc/net/udp{,6} is empty. What it
 * read is handled before it looks at a signal, so a stop after this
 * counts all of it. */
static bool wait_read(const struct dg_daemon *d, unsigned idx)
{
	const struct sockaddr *sa = (const struct sockaddr *)&d->addr[idx];
	const char *path = sa->sa_family == AF_INET6 ? "/proc/net/udp6" : "/proc/net/udp";
	double deadline = dg_now_ms() + 10000;
	char want[64];

	proc_addr(sa, want, sizeof(want));

	while (dg_now_ms() < deadline) {
		FILE *f = fopen(path, "r");
		char line[512];
		long rxq = -1;
		if (!f)
			return false;
		while (fgets(line, sizeof(line), f)) {
			char local[64], rem[64], queues[64];
			unsigned st;
			if (sscanf(line, " %*s %63s %63s %x %63s", local, rem, &st, queues) != 4)
				continue;
			char *qc = strchr(queues, ':');
			if (qc && !strcmp(local, want))
				rxq = strtol(qc + 1, NULL, 16);
		}
		fclose(f);
		if (rxq == 0)
			return true;
		poll(NULL, 0, 5); /* bounded polling of the kernel's view */
	}
	return false;
}

struct source {
	const char *addr;
	unsigned sent;
	unsigned want; /* replies expected */
	int fd;
};

/* Send from each source, wait until the daemon has read it all, stop it
 * (checking that its counters add up), then count replies per source. */
static void run_sources(struct dg_daemon *d, unsigned idx, struct source *src, size_t n,
                        const char *listener)
{
	for (size_t i = 0; i < n; i++) {
		src[i].fd = sock_from(src[i].addr);
		send_n(src[i].fd, d, idx, src[i].sent);
	}
	CU_ASSERT(wait_read(d, idx));
	dg_daemon_stop_checked(d, listener);
	for (size_t i = 0; i < n; i++) {
		unsigned got = replies(src[i].fd);
		if (got != src[i].want)
			fprintf(stderr, "source %s: %u replies, want %u\n", src[i].addr, got, src[i].want);
		CU_ASSERT_EQUAL(got, src[i].want);
		close(src[i].fd);
	}
}

#define ECHO(name, bind, extra) \
	"{\"name\": \"" name "\", \"bind\": " bind ", \"codec\": \"raw\", \"handler\": \"echo\"" extra "}"

/* allow with a deny carved out of it: deny wins; outside allow, nothing
 * passes. Refused sources get no session and no reply. */
static void test_acl_v4(void)
{
	struct source src[] = {
		{ "127.0.0.1", 3, 3, -1 }, { "127.0.0.2", 2, 2, -1 }, { "127.0.0.9", 4, 0, -1 },
		{ "127.0.200.7", 1, 1, -1 }, { "127.0.5.1", 3, 0, -1 }, { "127.0.5.254", 2, 0, -1 },
		{ "127.1.0.1", 5, 0, -1 }, { "127.255.0.1", 1, 0, -1 }, { "127.0.6.1", 2, 2, -1 },
	};
	struct dg_daemon d;

	CU_ASSERT_FATAL(dg_daemon_start(&d, "{\"listeners\": [" ECHO("t", "\"127.0.0.1:0\"",
	        ", \"allow\": [\"127.0.0.0/16\", \"::1\"], \"deny\": [\"127.0.5.0/24\", \"127.0.0.9\"]") "]}",
	        NULL));
	run_sources(&d, 0, src, sizeof(src) / sizeof(src[0]), "t");
	CU_ASSERT_EQUAL(dg_daemon_stat(&d, "t", "rx"), 23);
	CU_ASSERT_EQUAL(dg_daemon_stat(&d, "t", "handled"), 8);
	CU_ASSERT_EQUAL(dg_daemon_stat(&d, "t", "drop_acl"), 15);
	CU_ASSERT_EQUAL(dg_daemon_stat(&d, "t", "tx"), 8);
	CU_ASSERT_EQUAL(dg_daemon_stat(&d, "t", "sessions"), 4);
	char *log = dg_daemon_log(&d);
	CU_ASSERT_EQUAL(dg_count_lines(log, "127.0.5."), 0); /* refusals are counted, not logged */
	free(log);
}

/* One listener on 127.0.0.1 and ::1 that allows only ::1, one that denies
 * only ::1 (and its IPv4-mapped twin's rule covers nothing else). */
static void test_acl_v6(void)
{
	struct dg_daemon d;

	if (!dg_have_ipv6()) {
		fprintf(stderr, "no IPv6 loopback: test skipped\n");
		return;
	}
	CU_ASSERT_FATAL(dg_daemon_start(&d, "{\"listeners\": ["
	        ECHO("only6", "[\"127.0.0.1:0\", \"[::1]:0\"]", ", \"allow\": [\"::1/128\"]") ","
	        ECHO("not6", "[\"127.0.0.1:0\", \"[::1]:0\"]", ", \"deny\": [\"::1\", \"::ffff:127.0.0.2\"]")
	        "]}", NULL));
	CU_ASSERT_FATAL(d.n_addr == 4);
	int v4 = sock_from("127.0.0.1"), v4b = sock_from("127.0.0.2"), v6 = sock_from("::1");
	send_n(v4, &d, 0, 3);  /* only6 over IPv4: refused */
	send_n(v6, &d, 1, 4);  /* only6 over IPv6: passes */
	send_n(v4, &d, 2, 5);  /* not6 over IPv4: passes */
	send_n(v4b, &d, 2, 1); /* not6 from 127.0.0.2: denied by its mapped rule */
	send_n(v6, &d, 3, 6);  /* not6 over IPv6: denied */
	for (unsigned i = 0; i < 4; i++)
		CU_ASSERT(wait_read(&d, i));
	dg_daemon_stop_checked(&d, "only6");
	CU_ASSERT_EQUAL(dg_daemon_stat(&d, "not6", "rx"), 12);
	CU_ASSERT_EQUAL(replies(v4), 5);
	CU_ASSERT_EQUAL(replies(v4b), 0);
	CU_ASSERT_EQUAL(replies(v6), 4);
	CU_ASSERT_EQUAL(dg_daemon_stat(&d, "only6", "handled"), 4);
	CU_ASSERT_EQUAL(dg_daemon_stat(&d, "only6", "drop_acl"), 3);
	CU_ASSERT_EQUAL(dg_daemon_stat(&d, "not6", "handled"), 5);
	CU_ASSERT_EQUAL(dg_daemon_stat(&d, "not6", "drop_acl"), 7);
	close(v4);
	close(v4b);
	close(v6);
}

/* A rate this low (one datagram per 1000 s) adds nothing while a test
 * runs: exactly `burst` datagrams pass per source. */
#define SLOW "\"rate\": 0.001"

/* One source over its rate is limited, from any of its ports; the others
 * are not. */
static void test_per_source(void)
{
	struct source src[] = {
		{ "127.0.1.1", 12, 5, -1 }, /* over: 5 of 12 */
		{ "127.0.1.1", 6, 0, -1 },  /* the same source from another port: nothing left */
		{ "127.0.1.2", 5, 5, -1 }, { "127.0.1.3", 4, 4, -1 }, { "127.0.1.4", 5, 5, -1 },
		{ "127.0.2.1", 1, 1, -1 }, { "127.0.2.2", 7, 5, -1 },
	};
	struct dg_daemon d;

	CU_ASSERT_FATAL(dg_daemon_start(&d, "{\"listeners\": [" ECHO("t", "\"127.0.0.1:0\"",
	        ", \"rate_limit\": {\"per_source\": {" SLOW ", \"burst\": 5}}") "]}", NULL));
	run_sources(&d, 0, src, sizeof(src) / sizeof(src[0]), "t");
	CU_ASSERT_EQUAL(dg_daemon_stat(&d, "t", "rx"), 40);
	CU_ASSERT_EQUAL(dg_daemon_stat(&d, "t", "handled"), 25);
	CU_ASSERT_EQUAL(dg_daemon_stat(&d, "t", "drop_rate_limited"), 15);
	CU_ASSERT_EQUAL(dg_daemon_stat(&d, "t", "tx"), 25);
}

/* The total bucket: the first 30 datagrams pass, whoever sends them; the
 * per-source limit still applies under it. */
static void test_total(void)
{
	struct source src[20];
	char addrs[20][32];
	struct dg_daemon d;

	CU_ASSERT_FATAL(dg_daemon_start(&d, "{\"listeners\": [" ECHO("t", "\"127.0.0.1:0\"",
	        ", \"rate_limit\": {\"total\": {" SLOW ", \"burst\": 30},"
	        " \"per_source\": {" SLOW ", \"burst\": 4}}") "]}", NULL));
	/* one at a time, so that which ones pass is known: 10 sources x 3,
	 * then 10 more that find the total empty */
	for (unsigned i = 0; i < 20; i++) {
		snprintf(addrs[i], sizeof(addrs[i]), "127.0.%u.%u", 10 + i / 5, 1 + i % 5);
		src[i] = (struct source){ addrs[i], i < 10 ? 3 : 2, i < 10 ? 3 : 0, -1 };
	}
	src[0].sent = 6; /* 4 pass: its own limit; 2 refused */
	src[0].want = 4;
	src[9].sent = 2; /* leaves 30 - 4 - 8*3 - 2 = 0 */
	src[9].want = 2;
	run_sources(&d, 0, src, 20, "t");
	CU_ASSERT_EQUAL(dg_daemon_stat(&d, "t", "rx"), 6 + 8 * 3 + 2 + 10 * 2);
	CU_ASSERT_EQUAL(dg_daemon_stat(&d, "t", "handled"), 30);
	CU_ASSERT_EQUAL(dg_daemon_stat(&d, "t", "drop_rate_limited"), 2 + 20);
}

static long rss_kib(pid_t pid)
{
	char path[64], line[256];
	long kib = -1;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, "VmRSS:", 6))
			kib = strtol(line + 6, NULL, 10);
	fclose(f);
	return kib;
}

/* Send one datagram from each of n addresses 127.1.0.1 + first.. through one
 * socket (IP_PKTINFO picks the source), then read the n echoes: a closed
 * loop, so nothing is lost in a socket buffer. Returns the echoes read. */
static unsigned spoof(int fd, const struct dg_daemon *d, uint32_t first, unsigned n, const char *payload)
{
	char buf[64];
	unsigned got = 0;

	for (unsigned i = 0; i < n; i++) {
		union {
			char buf[CMSG_SPACE(sizeof(struct in_pktinfo))];
			struct cmsghdr align;
		} cm = { 0 };
		struct iovec iov = { .iov_base = (void *)payload, .iov_len = strlen(payload) };
		struct msghdr mh = {
			.msg_name = (void *)&d->addr[0], .msg_namelen = d->addrlen[0],
			.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cm.buf, .msg_controllen = sizeof(cm.buf),
		};
		struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = IPPROTO_IP;
		c->cmsg_type = IP_PKTINFO;
		c->cmsg_len = CMSG_LEN(sizeof(struct in_pktinfo));
		struct in_pktinfo pi = { .ipi_spec_dst.s_addr = htonl(0x7f010001 + first + i) };
		memcpy(CMSG_DATA(c), &pi, sizeof(pi));
		if (sendmsg(fd, &mh, 0) != (ssize_t)strlen(payload))
			break;
	}
	while (got < n && recv(fd, buf, sizeof(buf), 0) > 0)
		got++;
	return got;
}

/* 50,000 distinct sources through a 1024-entry table: each new source gets
 * a fresh bucket, the daemon's memory stays where it was after the first
 * 2,000, and the source over its limit before the flood is still limited
 * after it (a full bucket is forgotten first). */
static void test_spoofed_flood(void)
{
	struct dg_daemon d;
	unsigned echoed = 0;
	/* Under ASan freed memory waits in a quarantine (and shows as resident):
	 * sessions evicted by the flood would look like growth. No quarantine. */
	const char *asan = getenv("ASAN_OPTIONS");
	char opts[512];

	snprintf(opts, sizeof(opts), "%s%squarantine_size_mb=0:thread_local_quarantine_size_kb=0",
	         asan ? asan : "", asan ? ":" : "");
	CU_ASSERT_FATAL(dg_daemon_start_env(&d, "{\"listeners\": [" ECHO("t", "\"127.0.0.1:0\"",
	        ", \"max_peers\": 512, \"rate_limit\": {\"per_source\": {" SLOW ", \"burst\": 2,"
	        " \"table_size\": 1024}}") "]}", "ASAN_OPTIONS", opts));
	int over = sock_from("127.0.0.7");
	send_n(over, &d, 0, 4); /* 2 pass, 2 limited */
	struct sockaddr_in any = { .sin_family = AF_INET };
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	struct timeval tv = { .tv_sec = 5 };
	int big = 1 << 20;
	CU_ASSERT_FATAL(fd >= 0 && bind(fd, (struct sockaddr *)&any, sizeof(any)) == 0);
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &big, sizeof(big));
	/* rounds of 100: well within both sides' default socket buffers */
	for (unsigned i = 0; i < 2000; i += 100)
		echoed += spoof(fd, &d, i, 100, "spoof");
	pid_t worker = dg_daemon_worker(&d); /* it holds the table, not the master */
	CU_ASSERT(worker > 0);
	long before = rss_kib(worker);
	for (unsigned i = 2000; i < 50000; i += 100)
		echoed += spoof(fd, &d, i, 100, "spoof");
	long after = rss_kib(worker);
	send_n(over, &d, 0, 3); /* still over */
	CU_ASSERT(wait_read(&d, 0));
	fprintf(stderr, "spoofed flood: resident %ld KiB after 2,000 sources, %ld KiB after 50,000\n",
	        before, after);
	dg_daemon_stop_checked(&d, "t");
	CU_ASSERT_EQUAL(echoed, 50000);
	CU_ASSERT_EQUAL(replies(over), 2);
	CU_ASSERT(before > 0 && after > 0);
	/* 48,000 more sources in a growing table would take 1.5 MiB at the
	 * least (32 bytes each); the table is fixed, sessions are capped */
	CU_ASSERT(after - before < 512);
	CU_ASSERT_EQUAL(dg_daemon_stat(&d, "t", "rx"), 50007);
	CU_ASSERT_EQUAL(dg_daemon_stat(&d, "t", "handled"), 50002);
	CU_ASSERT_EQUAL(dg_daemon_stat(&d, "t", "drop_rate_limited"), 5);
	close(over);
	close(fd);
}

/* Every control on at once, under a hostile mix: valid peers, undecodable
 * datagrams, a source over its rate, denied sources, 2,000 spoofed
 * sources, and a burst into a small receive buffer while the daemon is
 * stopped (the kernel drops what does not fit its buffer). Every datagram sent is accounted
 * for: rx + rx_kernel_drops = sent, and rx = handled + decode_errors +
 * drops (stop_checked); each control's counter is exact where the traffic
 * makes it so. */
static void send_payload(int fd, const struct dg_daemon *d, const char *p, unsigned n, unsigned *sent)
{
	for (unsigned i = 0; i < n; i++)
		if (sendto(fd, p, strlen(p), 0, (const struct sockaddr *)&d->addr[0], d->addrlen[0]) ==
		    (ssize_t)strlen(p))
			(*sent)++;
}

static void test_hostile_all_controls(void)
{
	struct dg_daemon d;
	unsigned sent = 0;
	char src[32], buf[256];

	CU_ASSERT_FATAL(dg_daemon_start(&d, "{\"listeners\": [{\"name\": \"h\", \"bind\": \"127.0.0.1:0\", "
	        "\"codec\": \"json\", \"handler\": {\"plugin\": \"echo\", \"config\": {\"error_reply\": true}}, "
	        "\"max_peers\": 256, \"rcvbuf\": 65536, "
	        "\"allow\": [\"127.0.0.0/8\"], \"deny\": [\"127.0.9.0/24\"], "
	        "\"rate_limit\": {\"per_source\": {" SLOW ", \"burst\": 5, \"table_size\": 1024}, "
	        "\"total\": {\"rate\": 100000, \"burst\": 100000}}, "
	        "\"amplification\": {\"factor\": 3}}]}", NULL));
	/* valid: 20 peers, 3 each, answered */
	int valid[20];
	for (unsigned i = 0; i < 20; i++) {
		snprintf(src, sizeof(src), "127.0.1.%u", i + 1);
		valid[i] = sock_from(src);
		send_payload(valid[i], &d, "{\"a\":1}", 3, &sent);
	}
	/* undecodable: 10 peers, 3 each; the error replies (62 bytes + 28 of
	 * headers for "{") outgrow what they sent (3 x (1 + 28)) */
	for (unsigned i = 0; i < 10; i++) {
		snprintf(src, sizeof(src), "127.0.2.%u", i + 1);
		int fd = sock_from(src);
		send_payload(fd, &d, "{", 3, &sent);
		close(fd);
	}
	/* one source far over its rate */
	int over = sock_from("127.0.3.1");
	send_payload(over, &d, "{\"o\":1}", 50, &sent);
	/* denied */
	for (unsigned i = 0; i < 5; i++) {
		snprintf(src, sizeof(src), "127.0.9.%u", i + 1);
		int fd = sock_from(src);
		send_payload(fd, &d, "{\"x\":1}", 3, &sent);
		close(fd);
	}
	CU_ASSERT(wait_read(&d, 0));
	/* spoofed: 2,000 sources, one datagram each, through one socket */
	struct sockaddr_in any = { .sin_family = AF_INET };
	int sp = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	struct timeval tv = { .tv_sec = 5 };
	int big = 1 << 20;
	CU_ASSERT_FATAL(sp >= 0 && bind(sp, (struct sockaddr *)&any, sizeof(any)) == 0);
	setsockopt(sp, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(sp, SOL_SOCKET, SO_RCVBUF, &big, sizeof(big));
	for (unsigned i = 0; i < 2000; i += 100) {
		unsigned got = spoof(sp, &d, i, 100, "{\"s\":1}");
		CU_ASSERT_EQUAL(got, 100);
		sent += 100;
	}
	/* a burst that overflows the receive buffer while the daemon is stopped */
	CU_ASSERT(dg_daemon_pause(&d));
	int burst = sock_from("127.0.4.1");
	send_payload(burst, &d, "{\"burst\":\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"}", 5000, &sent);
	CU_ASSERT(dg_daemon_resume(&d));
	CU_ASSERT(wait_read(&d, 0));
	/* still serving: a new peer is answered */
	int probe = sock_from("127.0.5.1");
	setsockopt(probe, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	send_payload(probe, &d, "[1]", 1, &sent);
	CU_ASSERT_EQUAL(recv(probe, buf, sizeof(buf), 0), 3);
	dg_daemon_stop_checked(&d, "h");
	long long rx = dg_daemon_stat(&d, "h", "rx"), kd = dg_daemon_stat(&d, "h", "rx_kernel_drops");
	fprintf(stderr, "hostile, every control on: sent %u, rx %lld, kernel drops %lld, acl %lld, "
	        "rate limited %lld, decode errors %lld, tx_drop_amplification %lld\n", sent, rx, kd,
	        dg_daemon_stat(&d, "h", "drop_acl"), dg_daemon_stat(&d, "h", "drop_rate_limited"),
	        dg_daemon_stat(&d, "h", "decode_errors"), dg_daemon_stat(&d, "h", "tx_drop_amplification"));
	CU_ASSERT_EQUAL(rx + kd, (long long)sent);
	CU_ASSERT(kd > 0);
	CU_ASSERT_EQUAL(dg_daemon_stat(&d, "h", "drop_acl"), 15);
	CU_ASSERT_EQUAL(dg_daemon_stat(&d, "h", "decode_errors"), 30);
	/* 45 of the source over its rate, and what of the burst got through
	 * the kernel past its 5 tokens */
	CU_ASSERT(dg_daemon_stat(&d, "h", "drop_rate_limited") >= 45);
	CU_ASSERT(dg_daemon_stat(&d, "h", "tx_drop_amplification") > 0);
	for (unsigned i = 0; i < 20; i++) {
		CU_ASSERT_EQUAL(replies(valid[i]), 3);
		close(valid[i]);
	}
	CU_ASSERT_EQUAL(replies(over), 5);
	close(over);
	close(burst);
	close(probe);
	close(sp);
}

#define NO_AMP ", \"amplification\": {\"factor\": 0}"

/* One warning per listener on a non-loopback address with nothing against
 * abuse; none for loopback or a guarded listener (checked with -t: nothing
 * binds). */
static void test_startup_warning(void)
{
	static const char conf[] = "{\"listeners\": ["
		ECHO("open", "\"0.0.0.0:0\"", NO_AMP) ","
		ECHO("open6", "[\"127.0.0.1:0\", \"[::]:0\"]", NO_AMP) ","
		ECHO("acl", "\"0.0.0.0:0\"", NO_AMP ", \"deny\": [\"192.0.2.0/24\"]") ","
		ECHO("limited", "\"[::]:0\"", NO_AMP ", \"rate_limit\": {\"total\": {\"rate\": 1000, \"burst\": 100}}") ","
		ECHO("amp", "\"0.0.0.0:0\"", "") "," /* the guard is on by default */
		ECHO("lo", "[\"127.0.0.2:0\", \"[::1]:0\"]", NO_AMP) "]}";
	char bin[4096], plugins[4096], path[4096], out[4096], err[8192];

	snprintf(path, sizeof(path), "%s", dg_test_write("warn.json", conf));
	snprintf(bin, sizeof(bin), "%s/dgramd", dg_test_builddir());
	snprintf(plugins, sizeof(plugins), "%s/plugins/.libs", dg_test_builddir());
	const char *argv[] = { bin, "-t", "-c", path, "-P", plugins, NULL };

	CU_ASSERT_EQUAL(dg_run(argv, NULL, out, sizeof(out), err, sizeof(err), 10000), 0);
	CU_ASSERT_EQUAL(dg_count_lines(err, "not a loopback address"), 2);
	CU_ASSERT_EQUAL(dg_count_lines(err, "listener 'open': bound to '0.0.0.0:0', not a loopback "
	                                    "address, with no access control (allow/deny)"), 1);
	CU_ASSERT_EQUAL(dg_count_lines(err, "listener 'open6': bound to '[::]:0'"), 1);
	CU_ASSERT_EQUAL(dg_count_lines(err, "'acl'"), 0);
	CU_ASSERT_EQUAL(dg_count_lines(err, "'limited'"), 0);
	CU_ASSERT_EQUAL(dg_count_lines(err, "'amp'"), 0);
	CU_ASSERT_EQUAL(dg_count_lines(err, "no rate_limit and the amplification guard off"), 2);
	CU_ASSERT_EQUAL(dg_count_lines(err, "'lo'"), 0);
	if (dg_count_lines(err, "not a loopback address") != 2)
		fprintf(stderr, "dgramd -t said:\n%s\n", err);
}

static const struct dg_test tests[] = {
	{ "acl: allow, deny, precedence (IPv4)", test_acl_v4 },
	{ "acl: ::1 and IPv4 on one listener", test_acl_v6 },
	{ "rate limit per source", test_per_source },
	{ "rate limit total", test_total },
	{ "spoofed flood: table and memory bounded", test_spoofed_flood },
	{ "hostile mix with every control on: every datagram accounted for", test_hostile_all_controls },
	{ "start-up warning", test_startup_warning },
	{ NULL, NULL },
};

DG_TEST_MAIN("safety", tests)
