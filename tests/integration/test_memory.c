/* Integration: memory_budget. Large JSON datagrams that decode into
 * megabytes stay pending from many peers; queued datagrams wait behind a
 * busy peer. What does not fit is dropped as drop_memory, the counters add
 * up, the daemon keeps answering, and (outside ASan, whose quarantine keeps
 * freed memory resident) its peak resident memory stays within the budget
 * plus a fixed overhead. */
#include "config.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "membudget.h"
#include "testutil.h"

#if defined(__SANITIZE_ADDRESS__)
#define DG_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define DG_ASAN 1
#endif
#endif

#define FLOOD 12
#define BIG_LEN 60000

/* [{},{},...] of len bytes: ~90 bytes of jansson tree per source byte. */
static char *wide_json(size_t len)
{
	char *text = malloc(len + 4);
	size_t n = 0;

	text[n++] = '[';
	while (n + 4 < len) {
		memcpy(text + n, "{},", 3);
		n += 3;
	}
	memcpy(text + n, "{}]", 4);
	return text;
}

/* What the daemon's decode of text holds, measured with the same counting
 * allocator. */
static size_t decoded_bytes(const char *text)
{
	size_t before = dg_membudget_json_live();
	json_t *v = json_loads(text, 0, NULL);
	size_t used = dg_membudget_json_live() - before;

	json_decref(v);
	return used;
}

/* A UDP socket bound to 127.0.x.y (a peer of its own). */
static int peer_socket(unsigned i, unsigned timeout_ms)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	struct timeval tv = { .tv_sec = timeout_ms / 1000, .tv_usec = (timeout_ms % 1000) * 1000 };
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	int buf = 1 << 20;

	a.sin_addr.s_addr = htonl(0x7f000000u | (2u << 16) | (1u + i / 250) << 8 | (1u + i % 250));
	if (fd < 0)
		return -1;
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &buf, sizeof(buf));
	if (bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/* kB of "VmHWM:" (peak) or "VmRSS:" in /proc/PID/status; -1 if absent. */
static long proc_kb(pid_t pid, const char *key)
{
	char path[64], line[256];
	long kb = -1;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, key, strlen(key)))
			kb = strtol(line + strlen(key), NULL, 10);
	fclose(f);
	return kb;
}

/* FLOOD peers each send one large JSON datagram that stays pending
 * (echo delay_ms); the budget holds two and a half of them. */
static void test_pending_flood(void)
{
	struct dg_daemon d;
	char *big = wide_json(BIG_LEN), conf[2048], buf[256];
	size_t per = decoded_bytes(big);
	size_t budget = per * 5 / 2;
	int fds[FLOOD];

	CU_ASSERT_FATAL(per > 1u << 20);
	snprintf(conf, sizeof(conf),
	         "{\"memory_budget\": %zu, \"shutdown_timeout_ms\": 0, \"listeners\": ["
	         " {\"name\": \"big\", \"bind\": \"127.0.0.1:0\", \"rcvbuf\": 4194304,"
	         "  \"handler\": {\"plugin\": \"echo\", \"config\": {\"delay_ms\": 2000}}},"
	         " {\"name\": \"probe\", \"bind\": \"127.0.0.1:0\", \"handler\": \"echo\"}]}",
	         budget);
	CU_ASSERT_FATAL(dg_daemon_start(&d, conf, NULL));
	pid_t worker = dg_daemon_worker(&d); /* it holds the requests, not the master */
	CU_ASSERT(worker > 0);
	long rss0 = proc_kb(worker, "VmRSS:");
	for (unsigned i = 0; i < FLOOD; i++) {
		fds[i] = peer_socket(i, 10000);
		CU_ASSERT_FATAL(fds[i] >= 0);
		CU_ASSERT(sendto(fds[i], big, strlen(big), 0, (struct sockaddr *)&d.addr[0],
		                 d.addrlen[0]) == (ssize_t)strlen(big));
	}
	/* While memory is held, another listener of the worker still answers. */
	int probe = dg_udp_client(&d.addr[1], 20000);
	CU_ASSERT_EQUAL(dg_udp_ask(probe, &d.addr[1], d.addrlen[1], "{\"p\":1}", 7, buf, sizeof(buf)), 7);
	/* A probe through the flooded socket answers once the datagrams before
	 * it were handled (it waits delay_ms like them). */
	int late = peer_socket(FLOOD, 20000);
	CU_ASSERT_EQUAL(dg_udp_ask(late, &d.addr[0], d.addrlen[0], "{\"p\":2}", 7, buf, sizeof(buf)), 7);
	long hwm = proc_kb(worker, "VmHWM:");
	dg_daemon_stop_checked(&d, "big");
	long long rx = dg_daemon_stat(&d, "big", "rx"), handled = dg_daemon_stat(&d, "big", "handled");
	long long dropped = dg_daemon_stat(&d, "big", "drop_memory");
	/* At most budget / per pending at once (plus the small probe); the
	 * first completes 2 s after it came, long after the last arrived. */
	CU_ASSERT(handled >= 2 && (size_t)(handled - 1) <= budget / per);
	CU_ASSERT(dropped >= 1 && rx == handled + dropped);
	fprintf(stderr, "pending flood: %zu bytes decoded per datagram, budget %zu: rx %lld, handled "
	        "%lld, drop_memory %lld; RSS %ld kB at start, peak %ld kB\n", per, budget, rx, handled,
	        dropped, rss0, hwm);
#ifndef DG_ASAN
	CU_ASSERT(rss0 > 0 && hwm > 0 && (size_t)(hwm - rss0) * 1024 <= budget + (16u << 20));
	/* and it is the process that held them: two or more decoded at once */
	CU_ASSERT(hwm > rss0 && (size_t)(hwm - rss0) * 1024 >= per);
#endif
	for (unsigned i = 0; i < FLOOD; i++)
		close(fds[i]);
	close(probe);
	close(late);
	free(big);
}

/* One busy peer: datagrams waiting in its queue count against the budget
 * too (queue_bytes alone would let 16 MiB wait). */
static void test_queued_bytes(void)
{
	struct dg_daemon d;
	char *big = malloc(BIG_LEN + 1), *buf = malloc(BIG_LEN + 1);
	int fd = peer_socket(0, 5000);
	ssize_t n = 0;

	CU_ASSERT_FATAL(fd >= 0 && big && buf);
	memset(big, 'a', BIG_LEN);
	big[0] = big[BIG_LEN - 1] = '"';
	big[BIG_LEN] = '\0';
	CU_ASSERT_FATAL(dg_daemon_start(&d,
	        "{\"memory_budget\": 1048576, \"listeners\": ["
	        " {\"name\": \"q\", \"bind\": \"127.0.0.1:0\", \"rcvbuf\": 4194304, \"peer_queue\": 64,"
	        "  \"handler\": {\"plugin\": \"echo\", \"config\": {\"delay_ms\": 100}}}]}", NULL));
	CU_ASSERT(sendto(fd, "{}", 2, 0, (struct sockaddr *)&d.addr[0], d.addrlen[0]) == 2);
	for (unsigned i = 0; i < 30; i++)
		CU_ASSERT(sendto(fd, big, BIG_LEN, 0, (struct sockaddr *)&d.addr[0], d.addrlen[0]) == BIG_LEN);
	/* The peer's datagrams are handled in order: once the last one's reply
	 * is here, every one before it was queued or dropped. */
	CU_ASSERT(sendto(fd, "{\"end\":1}", 9, 0, (struct sockaddr *)&d.addr[0], d.addrlen[0]) == 9);
	double deadline = dg_now_ms() + 10000;
	while (dg_now_ms() < deadline && (n = recv(fd, buf, BIG_LEN + 1, 0)) >= 0)
		if (n == 9 && !memcmp(buf, "{\"end\":1}", 9))
			break;
	CU_ASSERT_EQUAL(n, 9);
	dg_daemon_stop_checked(&d, "q");
	long long queued = dg_daemon_stat(&d, "q", "queued");
	long long dropped = dg_daemon_stat(&d, "q", "drop_memory");
	/* queued counts {"end":1} too */
	CU_ASSERT(dropped >= 1 && queued >= 2);
	CU_ASSERT((unsigned long long)(queued - 1) * BIG_LEN <= 1048576);
	fprintf(stderr, "queued datagrams: queued %lld, drop_memory %lld\n", queued, dropped);
	CU_ASSERT_EQUAL(dg_daemon_stat(&d, "q", "drop_peer_queue"), 0);
	close(fd);
	free(big);
	free(buf);
}

static const struct dg_test memory_tests[] = {
	{ "flood of large pending JSON within memory_budget", test_pending_flood },
	{ "queued datagrams count against memory_budget", test_queued_bytes },
	{ NULL, NULL },
};

int main(void)
{
	static const struct dg_suite suites[] = {
		{ "memory", memory_tests },
		{ NULL, NULL },
	};

	dg_membudget_install();
	return dg_test_main(suites);
}
