/* The tftp plugin's test fixture: see tftp_fixture.h. */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tftp_fixture.h"

static char root[1024];

static void make_file(const char *path, size_t size, uint32_t seed)
{
	FILE *f = fopen(path, "wb");
	uint32_t x = seed * 2654435761u + 1;

	CU_ASSERT_PTR_NOT_NULL_FATAL(f);
	for (size_t i = 0; i < size; i++) {
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		putc((int)(x & 0xff), f);
	}
	CU_ASSERT_FATAL(fclose(f) == 0);
}

const char *tftp_root_path(const char *name)
{
	static char path[4096];

	snprintf(path, sizeof(path), "%s/%s", tftp_root(), name);
	return path;
}

const char *tftp_out_path(const char *name)
{
	static char path[4096];

	snprintf(path, sizeof(path), "%s/out", dg_test_tmpdir());
	mkdir(path, 0700);
	snprintf(path, sizeof(path), "%s/out/%s", dg_test_tmpdir(), name);
	return path;
}

const char *tftp_root(void)
{
	static const struct {
		const char *name;
		size_t size;
	} files[] = {
		{ "f0", 0 }, { "f511", 511 }, { "f512", 512 }, { "f513", 513 }, { "f1100", 1100 },
		{ "big", TFTP_BIG_SIZE }, { "sub/g", 100 }, { "mid", 262144 + 77 },
		{ "roll", 600000 }, { "pxelinux.cfg/01-52-54-00-12-34-56", 1100 },
	};
	char outside[4096], path[8192];

	if (root[0])
		return root;
	snprintf(root, sizeof(root), "%s/root", dg_test_tmpdir());
	snprintf(outside, sizeof(outside), "%s/outside", dg_test_tmpdir());
	CU_ASSERT_FATAL(mkdir(root, 0755) == 0 && mkdir(outside, 0755) == 0);
	snprintf(path, sizeof(path), "%s/sub", root);
	CU_ASSERT_FATAL(mkdir(path, 0755) == 0);
	snprintf(path, sizeof(path), "%s/pxelinux.cfg", root);
	CU_ASSERT_FATAL(mkdir(path, 0755) == 0);
	snprintf(path, sizeof(path), "%s/secret-dir", root);
	CU_ASSERT_FATAL(mkdir(path, 0755) == 0);
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", root, files[i].name);
		make_file(path, files[i].size, (uint32_t)i + 1);
	}
	snprintf(path, sizeof(path), "%s/secret", outside);
	make_file(path, 64, 99);
	snprintf(path, sizeof(path), "%s/link_in", root);
	CU_ASSERT_FATAL(symlink("f513", path) == 0);
	snprintf(path, sizeof(path), "%s/link_out", root);
	CU_ASSERT_FATAL(symlink("../outside/secret", path) == 0);
	snprintf(path, sizeof(path), "%s/dir_out", root);
	CU_ASSERT_FATAL(symlink("../outside", path) == 0);
	char target[4200];
	snprintf(target, sizeof(target), "%s/secret", outside);
	snprintf(path, sizeof(path), "%s/abs_out", root);
	CU_ASSERT_FATAL(symlink(target, path) == 0);
	snprintf(path, sizeof(path), "%s/fifo", root);
	CU_ASSERT_FATAL(mkfifo(path, 0644) == 0);
	return root;
}

bool tftp_same_file(const char *a, const char *b)
{
	FILE *fa = fopen(a, "rb"), *fb = fopen(b, "rb");
	bool same = fa && fb;

	while (same) {
		int ca = getc(fa), cb = getc(fb);
		if (ca != cb)
			same = false;
		if (ca == EOF || cb == EOF)
			break;
	}
	if (fa)
		fclose(fa);
	if (fb)
		fclose(fb);
	return same;
}

/* Replace the first from in text (cap bytes) with to; false if absent. */
static bool replace(char *text, size_t cap, const char *from, const char *to)
{
	char *p = strstr(text, from);
	size_t fl = strlen(from), tl = strlen(to), n = strlen(text);

	if (!p || n - fl + tl >= cap)
		return false;
	memmove(p + tl, p + fl, n - (size_t)(p - text) - fl + 1);
	memcpy(p, to, tl);
	return true;
}

const char *tftp_config(const char *const *repl)
{
	static char text[16384];
	char path[4096], quoted[4200];

	snprintf(path, sizeof(path), "%s/conf/examples/tftp.json", dg_test_srcdir());
	FILE *f = fopen(path, "r");
	CU_ASSERT_PTR_NOT_NULL_FATAL(f);
	size_t n = fread(text, 1, sizeof(text) - 1, f);
	fclose(f);
	text[n] = '\0';
	snprintf(quoted, sizeof(quoted), "\"%s\"", tftp_root());
	CU_ASSERT_FATAL(replace(text, sizeof(text), "\"127.0.0.1:6969\"", "\"127.0.0.1:0\""));
	CU_ASSERT_FATAL(replace(text, sizeof(text), "\"/srv/tftp\"", quoted));
	CU_ASSERT_FATAL(replace(text, sizeof(text), "\"listeners\": [",
	                        "\"metrics\": {\"bind\": \"127.0.0.1:0\"}, \"listeners\": ["));
	for (; repl && repl[0]; repl += 2) {
		bool ok = replace(text, sizeof(text), repl[0], repl[1]);
		if (!ok)
			fprintf(stderr, "tftp_config: '%s' not in the example\n", repl[0]);
		CU_ASSERT_FATAL(ok);
	}
	return text;
}

/* The daemon of the running test: a test that stops on a fatal assertion
 * leaves it running, so the next start (or the exit) stops it. Only a
 * child not yet reaped is signalled (waitpid says so), never a reused pid. */
static pid_t live;

static void stop_live(void)
{
	int st;

	if (live > 0 && waitpid(live, &st, WNOHANG) == 0) {
		static struct dg_daemon d;
		d.pid = live;
		dg_daemon_stop(&d); /* SIGTERM, then SIGKILL after 10 s */
	}
	live = 0;
}

void tftp_start(struct dg_daemon *d, const char *const *repl)
{
	static bool registered;

	stop_live();
	if (!registered)
		registered = atexit(stop_live) == 0;
	bool ok = dg_daemon_start(d, tftp_config(repl), NULL);
	live = d->pid;

	if (!ok) {
		char *log = dg_daemon_log(d);
		fprintf(stderr, "dgramd did not start:\n%s\n", log ? log : "");
		free(log);
	}
	CU_ASSERT_FATAL(ok);
}

long long tftp_metric(const struct dg_daemon *d, const char *name)
{
	static char text[1 << 18];
	char prefix[160], label[128] = "";
	const char *brace = strchr(name, '{');
	long long sum = -1;

	if (dg_http_get(d, "/metrics", text, sizeof(text)) != 200)
		return -1;
	if (brace) /* name{label="v"}: only the lines with that label */
		snprintf(label, sizeof(label), ",%.*s", (int)(strlen(brace + 1) - 1), brace + 1);
	snprintf(prefix, sizeof(prefix), "\n%.*s{listener=\"tftp\"",
	         (int)(brace ? (size_t)(brace - name) : strlen(name)), name);
	for (const char *p = text; (p = strstr(p, prefix)); p++) {
		const char *sp = strchr(p + 1, ' ');
		const char *l = label[0] ? strstr(p, label) : NULL;
		if (sp && (!label[0] || (l && l < sp)))
			sum = (sum < 0 ? 0 : sum) + strtoll(sp + 1, NULL, 10);
	}
	return sum;
}

bool tftp_wait_metric(const struct dg_daemon *d, const char *name, long long want,
                      unsigned timeout_ms)
{
	double end = dg_now_ms() + timeout_ms;
	long long v;
	struct pollfd none = { .fd = -1 };

	while ((v = tftp_metric(d, name)) != want && dg_now_ms() < end)
		poll(&none, 0, 10); /* a bounded poll of the value, not a wait for it */
	if (v != want)
		fprintf(stderr, "%s: %lld, expected %lld\n", name, v, want);
	return v == want;
}

int tftp_worker_fds(const struct dg_daemon *d)
{
	pid_t pid = dg_daemon_worker(d);

	return pid ? dg_proc_fds(pid) : -1;
}

int tftp_socket(const char *src)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	CU_ASSERT_FATAL(fd >= 0);
	CU_ASSERT_FATAL(inet_pton(AF_INET, src ? src : "127.0.0.1", &a.sin_addr) == 1);
	CU_ASSERT_FATAL(bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0);
	return fd;
}

void tftp_send(int fd, const struct dg_daemon *d, const void *p, size_t len)
{
	CU_ASSERT_EQUAL(sendto(fd, p, len, 0, (const struct sockaddr *)&d->addr[0], d->addrlen[0]),
	                (ssize_t)len);
}

static size_t append(unsigned char *buf, size_t cap, size_t n, const char *s)
{
	size_t l = strlen(s) + 1;

	CU_ASSERT_FATAL(n + l <= cap);
	memcpy(buf + n, s, l);
	return n + l;
}

size_t tftp_rrq(unsigned char *buf, size_t cap, int opcode, const char *file, const char *mode,
                const char *const *opts)
{
	size_t n = 2;

	buf[0] = 0;
	buf[1] = (unsigned char)opcode;
	n = append(buf, cap, n, file);
	n = append(buf, cap, n, mode);
	for (; opts && *opts; opts++)
		n = append(buf, cap, n, *opts);
	return n;
}

ssize_t tftp_recv(int fd, unsigned char *buf, size_t cap, unsigned timeout_ms)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	double end = dg_now_ms() + timeout_ms;

	for (;;) {
		double left = end - dg_now_ms();
		if (left <= 0)
			return -1;
		int r = poll(&p, 1, (int)left + 1);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return -1;
		return recv(fd, buf, cap, 0);
	}
}

void tftp_ack(int fd, const struct dg_daemon *d, uint16_t block)
{
	unsigned char ack[4] = { 0, 4, (unsigned char)(block >> 8), (unsigned char)block };

	tftp_send(fd, d, ack, sizeof(ack));
}

unsigned tftp_op(const unsigned char *p)
{
	return (unsigned)(p[0] << 8 | p[1]);
}

unsigned tftp_num(const unsigned char *p)
{
	return (unsigned)(p[2] << 8 | p[3]);
}
