/* Binding a listener's first socket: with SO_REUSEPORT set before the bind,
 * a port-0 bind may be given a port that another process of the same user
 * holds through SO_REUSEPORT (the kernel's search counts such a port as
 * free), and datagrams for one then go to the other. The test holds 4,000
 * ports of 127.0.77.1 that way (as other dgramd instances would) and binds
 * port 0 there 400 times: with the old order about 14% of binds landed on
 * one of them (400 tries: certain); none may. */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "conf.h"
#include "sock.h"
#include "testutil.h"

enum { HELD = 4000, TRIES = 400 };

static struct sockaddr_in at(unsigned port)
{
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	inet_pton(AF_INET, "127.0.77.1", &sin.sin_addr);
	return sin;
}

static void test_port0_never_shared(void)
{
	static int held[HELD];
	static unsigned char is_held[65536];
	struct rlimit rl;
	unsigned n = 0, shared = 0, bound = 0;
	int one = 1;

	CU_ASSERT_FATAL(getrlimit(RLIMIT_NOFILE, &rl) == 0);
	if (rl.rlim_cur < HELD + 256 && rl.rlim_max >= HELD + 256) {
		rl.rlim_cur = HELD + 256;
		CU_ASSERT(setrlimit(RLIMIT_NOFILE, &rl) == 0);
	}
	unsigned want = rl.rlim_cur > HELD + 256 ? HELD : (unsigned)rl.rlim_cur - 256;
	for (; n < want; n++) {
		struct sockaddr_in sin = at(0);
		socklen_t len = sizeof(sin);
		held[n] = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
		CU_ASSERT_FATAL(held[n] >= 0);
		CU_ASSERT_FATAL(setsockopt(held[n], SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) == 0);
		if (bind(held[n], (struct sockaddr *)&sin, sizeof(sin)) < 0 ||
		    getsockname(held[n], (struct sockaddr *)&sin, &len) < 0) {
			close(held[n]);
			break;
		}
		is_held[ntohs(sin.sin_port)] = 1;
	}
	fprintf(stderr, "port 0: %u ports of 127.0.77.1 held with SO_REUSEPORT\n", n);
	CU_ASSERT(n >= 1000);

	struct dg_listener_conf lc = { .name = "t" };
	for (unsigned i = 0; i < TRIES; i++) {
		struct dg_addr addr = { .len = sizeof(struct sockaddr_in) }, got;
		struct sockaddr_in sin = at(0);
		memcpy(&addr.ss, &sin, sizeof(sin));
		int fd = dg_sock_bind(&lc, &addr, true, &got);
		if (fd < 0)
			continue;
		bound++;
		shared += is_held[ntohs(((struct sockaddr_in *)&got.ss)->sin_port)];
		close(fd);
	}
	fprintf(stderr, "port 0: %u binds, %u of them on a port held by another socket\n", bound,
	        shared);
	CU_ASSERT_EQUAL(bound, TRIES);
	CU_ASSERT_EQUAL(shared, 0);
	for (unsigned i = 0; i < n; i++)
		close(held[i]);
}

/* The first socket of an address takes SO_REUSEPORT after its bind: later
 * sockets (other worker slots) still join it on the same port, and an
 * explicit port someone holds is refused. */
static void test_group_and_refusal(void)
{
	struct dg_listener_conf lc = { .name = "t" };
	struct dg_addr addr = { .len = sizeof(struct sockaddr_in) }, first, second;
	struct sockaddr_in sin = at(0);
	int one = 1;

	memcpy(&addr.ss, &sin, sizeof(sin));
	int a = dg_sock_bind(&lc, &addr, true, &first);
	CU_ASSERT_FATAL(a >= 0);
	int b = dg_sock_bind(&lc, &first, false, &second);
	CU_ASSERT(b >= 0);
	CU_ASSERT_EQUAL(memcmp(&first.ss, &second.ss, sizeof(struct sockaddr_in)), 0);
	/* someone else's socket on a port: an exclusive bind there fails */
	int other = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in o = at(0);
	socklen_t olen = sizeof(o);
	CU_ASSERT_FATAL(other >= 0);
	setsockopt(other, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
	CU_ASSERT_FATAL(bind(other, (struct sockaddr *)&o, sizeof(o)) == 0 &&
	                getsockname(other, (struct sockaddr *)&o, &olen) == 0);
	struct dg_addr taken = { .len = sizeof(o) }, got;
	memcpy(&taken.ss, &o, sizeof(o));
	int c = dg_sock_bind(&lc, &taken, true, &got);
	CU_ASSERT_EQUAL(c, -1);
	if (c >= 0)
		close(c);
	close(other);
	close(a);
	if (b >= 0)
		close(b);
}

static const struct dg_test tests[] = {
	{ "port 0 never shares another process's port", test_port0_never_shared },
	{ "first socket: group and refusal", test_group_and_refusal },
	{ NULL, NULL },
};

DG_TEST_MAIN("bind", tests)
