/* Allocation-failure injection (tests/failalloc.h), as SQLite does it: each
 * area below is run once to count its allocations, then again with
 * allocation N failing, for every N until a run makes no more allocations
 * than N - 1 (that last run must succeed). Every run must either succeed
 * with the right result or report the error (an error code and a message),
 * never crash, and free every block it allocated (counted by the wrappers
 * in every build; LeakSanitizer checks the same in the sanitizer build).
 * "sticky" runs fail every allocation from N on, as when memory is really
 * exhausted, so that error paths that themselves allocate are run too. */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <dgramd/codec.h>

#include "conf.h"
#include "failalloc.h"
#include "loader.h"
#include "log.h"
#include "membudget.h"
#include "server.h"
#include "session.h"
#include "testutil.h"

/* The area and N of the run in progress, for messages. */
static const char *cur_area;
static unsigned long cur_n;

/* A CUnit assertion that names the run it failed in. */
#define CHECK(cond)                                                              \
	do {                                                                     \
		bool ok_ = (cond);                                               \
		if (!ok_)                                                        \
			fprintf(stderr, "%s: allocation %lu failing: check failed: %s\n", \
			        cur_area, cur_n, #cond);                         \
		CU_ASSERT(ok_);                                                  \
	} while (0)

/* Run `run` (true: it succeeded, false: it reported an error) with every
 * allocation failing in turn. */
static void fail_each(const char *area, bool (*run)(void), bool sticky)
{
	unsigned long total, n, survived = 0, short_runs = 0;
	long live;

	/* DG_FAILALLOC_ONLY=AREA runs that area only (to debug it). */
	if (getenv("DG_FAILALLOC_ONLY") && strcmp(getenv("DG_FAILALLOC_ONLY"), area))
		return;
	cur_area = area;
	cur_n = 0;
	dg_failalloc_arm(0, false);
	CHECK(run()); /* warm-up: one-time set-up in libraries is not a leak */
	live = dg_failalloc_live();
	dg_failalloc_arm(0, false);
	CHECK(run());
	total = dg_failalloc_count();
	CHECK(dg_failalloc_live() == live);
	CHECK(total > 0);
	/* DG_FAILALLOC_FROM=N starts at allocation N (to debug one run). */
	n = getenv("DG_FAILALLOC_FROM") ? strtoul(getenv("DG_FAILALLOC_FROM"), NULL, 10) : 1;
	for (; n <= total + 1000; n++) {
		cur_n = n;
		live = dg_failalloc_live();
		dg_failalloc_arm(n, sticky);
		double t0 = dg_now_ms();
		bool ok = run();
		if (getenv("DG_FAILALLOC_VERBOSE"))
			fprintf(stderr, "%s: %lu: %s in %.1f ms\n", area, n, ok ? "ok" : "error", dg_now_ms() - t0);
		unsigned long failed = dg_failalloc_failed();
		dg_failalloc_disarm();
		if (dg_failalloc_live() != live)
			fprintf(stderr, "%s: allocation %lu failing: %ld blocks leaked\n", area, n,
			        dg_failalloc_live() - live);
		CU_ASSERT_EQUAL(dg_failalloc_live(), live);
		if (!failed) { /* past this run's last allocation: a clean run */
			CHECK(ok);
			if (n > total)
				break;
			/* A daemon run's count can differ by one or two with timing
			 * (how the datagrams fall into reads and loop passes): go on
			 * to total, so that every allocation the counted run made is
			 * still made to fail once. */
			short_runs++;
			continue;
		}
		survived += ok;
	}
	/* The runs covered every allocation a successful run makes. */
	CHECK(n > total);
	printf("%s%s: %lu allocations in a successful run, %lu runs with a failure, "
	       "%lu of them succeeded anyway, %lu made fewer allocations\n", area,
	       sticky ? " (sticky)" : "", total, n - 1, survived, short_runs);
	cur_area = NULL;
}

/* ---- config load -------------------------------------------------------- */

/* No JSON string in this file's inputs is 14, 30 or 62 characters long: a
 * failed allocation saving such a string's closing quote makes jansson 2.14
 * overrun its token buffer (codecs/jsonload.h), a bug only jansson can fix. */

static const char config_text[] =
	"# every kind of directive\n"
	"{\n"
	"  \"log\": {\"level\": \"warn\"},\n"
	"  \"max_pending\": 100, \"shutdown_timeout_ms\": 50,\n"
	"  \"codec_modules\": [\"lines\"],\n"
	"  \"listeners\": [\n"
	"    {\"name\": \"j\", \"bind\": \"127.0.0.1:0\", \"codec\": \"json\", // json echo\n"
	"     \"handler\": {\"plugin\": \"echo\", \"config\": {\"delay_ms\": 1, \"wrap\": \"w\"}},\n"
	"     \"ordering\": \"peer\", \"drop_policy\": \"drop-oldest\", \"peer_queue\": 4},\n"
	"    {\"name\": \"lp\", \"bind\": [\"127.0.0.1:0\", \"127.0.0.2:0\"],\n"
	"     \"codec\": {\"framing\": \"length-prefixed\", \"width\": 1, \"payload\": \"json\"},\n"
	"     \"handler\": \"echo\", \"max_datagram\": 1000},\n"
	"    {\"name\": \"st\", \"bind\": \"127.0.0.1:0\",\n"
	"     \"codec\": {\"framing\": \"lines\", \"max_lines\": 8}, \"handler\": \"echo\"}\n"
	"  ]\n"
	"}\n";

static char config_path[4096];
static char plugin_dir[2048];

static bool run_config(void)
{
	struct dg_config *cfg = (struct dg_config *)1;
	char err[1024] = "";

	int rc = dg_config_load(config_path, plugin_dir, &cfg, err, sizeof(err));
	if (rc) {
		CHECK(rc < 0);
		CHECK(cfg == NULL);
		CHECK(err[0] != '\0');
		CHECK(strstr(err, config_path) != NULL);
		return false;
	}
	CHECK(cfg->n_listeners == 3);
	CHECK(cfg->log_level == DG_LOG_WARN);
	CHECK(cfg->max_pending == 100);
	if (cfg->n_listeners == 3) {
		CHECK(!strcmp(cfg->listeners[0].name, "j"));
		CHECK(!strcmp(cfg->listeners[0].plugin, "echo"));
		CHECK(json_integer_value(json_object_get(cfg->listeners[0].plugin_config,
		                                         "delay_ms")) == 1);
		CHECK(cfg->listeners[0].drop_policy == DG_DROP_OLDEST);
		CHECK(cfg->listeners[1].n_binds == 2);
		CHECK(cfg->listeners[1].max_datagram == 1000);
		CHECK(!strcmp(cfg->listeners[2].name, "st"));
		CHECK(json_is_object(cfg->listeners[2].codec));
	}
	dg_config_free(cfg);
	return true;
}

static void config_setup(void)
{
	snprintf(plugin_dir, sizeof(plugin_dir), "%s/plugins/.libs", dg_test_builddir());
	snprintf(config_path, sizeof(config_path), "%s", dg_test_write("failalloc.json", config_text));
}

static void test_config(void)
{
	config_setup();
	fail_each("config load", run_config, false);
	fail_each("config load", run_config, true);
}

/* ---- plugin load -------------------------------------------------------- */

static bool run_loader(void)
{
	struct dg_loader ld = { 0 };
	const struct dg_plugin *p = NULL, *again = NULL;
	char path[4096], err[1024] = "";
	bool ok = true;

	snprintf(path, sizeof(path), "%s/echo.so", plugin_dir);
	int rc = dg_loader_load(&ld, path, &p, err, sizeof(err));
	if (rc) {
		CHECK(rc < 0);
		CHECK(strstr(err, "out of memory") != NULL);
		ok = false;
	} else {
		CHECK(p && !strcmp(p->name, "echo"));
		CHECK(dg_loader_load(&ld, path, &again, err, sizeof(err)) == DG_OK);
		CHECK(again == p);
	}
	snprintf(path, sizeof(path), "%s/lines.so", plugin_dir);
	err[0] = '\0';
	rc = dg_loader_load_codec(&ld, path, err, sizeof(err));
	if (rc) {
		CHECK(rc < 0);
		CHECK(strstr(err, "out of memory") != NULL);
		ok = false;
	}
	dg_loader_release(&ld);
	return ok;
}

static void test_loader(void)
{
	config_setup();
	fail_each("plugin load", run_loader, false);
	fail_each("plugin load", run_loader, true);
}

/* ---- codecs: decode every frame and encode it back ----------------------- */

/* The lines example module, linked into this program (codecs/examples/lines.c)
 * so that its own allocations are wrapped too. */
extern const struct dg_codec_module dgramd_codec;

static const struct {
	const char *spec;
	const char *dgram; /* valid, and encoded back to the same bytes */
	size_t len;
} codec_cases[] = {
#define S(s) s, sizeof(s) - 1
	{ "\"raw\"", S("hello\0world") },
	{ "\"length-prefixed\"", S("\0\3abc\0\0\0\2de") },
	{ "\"json\"", S("{\"a\":[1,2.5,{\"b\":\"c\"}],\"d\":null,\"e\":true}") },
	{ "{\"framing\": \"length-prefixed\", \"width\": 1, \"payload\": \"json\"}",
	  S("\x07{\"a\":1}\x05[2,3]\x03\"x\"") },
	{ "{\"framing\": \"lines\"}", S("a:1|c\nb:2|g\n") },
	{ "{\"framing\": \"lines\", \"payload\": \"json\", \"separator\": \";\"}",
	  S("{\"k\":[1]};2;\"s\";") },
#undef S
};

static bool run_codec_case(size_t i)
{
	struct dg_frame frames[DG_CODEC_MAX_FRAMES];
	struct dg_packet pkts[DG_CODEC_MAX_FRAMES];
	struct dg_parse_error pe = { 0 };
	unsigned char out[512];
	struct dg_outdgram od = { .buf = out, .cap = sizeof(out) };
	struct dg_codec *c = NULL;
	char err[256] = "";
	unsigned nf = 0, decoded = 0;
	bool ok = true;

	dg_failalloc_pause();
	json_t *spec = json_loads(codec_cases[i].spec, JSON_DECODE_ANY, NULL);
	dg_failalloc_resume();
	int rc = dg_codec_new(spec, &c, err, sizeof(err));
	if (rc) {
		CHECK(rc == DG_ENOMEM);
		CHECK(strstr(err, "out of memory") != NULL);
		CHECK(c == NULL);
		ok = false;
		goto out;
	}
	const unsigned char *dg = (const unsigned char *)codec_cases[i].dgram;
	rc = dg_codec_split(c, dg, codec_cases[i].len, frames, &nf, &pe);
	CHECK(rc == DG_OK);
	if (rc)
		goto out;
	for (; decoded < nf; decoded++) {
		rc = dg_codec_decode(c, frames[decoded].data, frames[decoded].len, &pkts[decoded], &pe);
		if (rc) {
			CHECK(rc < 0);
			CHECK(pe.reason && pe.reason[0]);
			CHECK(pkts[decoded].json == NULL);
			ok = false;
			break;
		}
	}
	for (unsigned f = 0; ok && f < nf; f++) {
		size_t before = od.used;
		rc = dg_codec_append(c, &pkts[f], &od);
		if (rc) {
			CHECK(rc < 0);
			CHECK(od.used == before); /* nothing half-written */
			ok = false;
		}
	}
	if (ok) {
		CHECK(od.frames == nf);
		CHECK(od.used == codec_cases[i].len && !memcmp(out, dg, od.used));
	}
out:
	while (decoded--)
		dg_codec_release(c, &pkts[decoded]);
	dg_codec_free(c);
	dg_failalloc_pause();
	json_decref(spec);
	dg_failalloc_resume();
	return ok;
}

static bool run_codecs(void)
{
	bool ok = true;

	for (size_t i = 0; i < sizeof(codec_cases) / sizeof(codec_cases[0]); i++)
		ok &= run_codec_case(i);
	return ok;
}

static void test_codecs(void)
{
	char err[256];

	CU_ASSERT_EQUAL_FATAL(dg_codec_register(&dgramd_codec, err, sizeof(err)), DG_OK);
	fail_each("codecs", run_codecs, false);
	fail_each("codecs", run_codecs, true);
	dg_codec_registry_reset();
}

/* ---- sessions: create (the table grows), queue, dequeue, free ------------ */

static struct sockaddr_in peer_addr(uint32_t i)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)(1000 + i)) };
	a.sin_addr.s_addr = htonl(0x7f000001 + (i >> 8));
	return a;
}

static bool run_sessions(void)
{
	struct sockaddr_in local = { .sin_family = AF_INET, .sin_port = htons(5300),
	                             .sin_addr.s_addr = htonl(0x7f000001) };
	const struct sockaddr *lsa = (const struct sockaddr *)&local;
	struct dg_sessions t;
	struct dg_session *s[300] = { 0 };
	unsigned made = 0, queued_n = 0;
	bool ok = true, queued;

	if (dg_sessions_init(&t, 1000)) {
		CHECK(t.buckets == NULL);
		return false;
	}
	for (uint32_t i = 0; i < 300; i++) {
		struct sockaddr_in a = peer_addr(i);
		s[i] = dg_session_create(&t, (struct sockaddr *)&a, sizeof(a), lsa, sizeof(local), i);
		made += s[i] != NULL;
		ok &= s[i] != NULL;
	}
	CHECK(t.count == made);
	for (uint32_t i = 0; i < 300; i++) { /* every one made is found, no other */
		struct sockaddr_in a = peer_addr(i);
		CHECK(dg_session_find(&t, (struct sockaddr *)&a, lsa) == s[i]);
	}
	for (unsigned q = 0; s[0] && q < 5; q++) {
		unsigned char d[3] = { 'd', (unsigned char)('0' + q), 0 };
		unsigned dropped = dg_session_enqueue(&t, s[0], NULL, d, sizeof(d), 16, 1 << 20,
		                                      DG_DROP_NEWEST, &queued);
		CHECK(dropped == (queued ? 0u : 1u));
		queued_n += queued;
		ok &= queued;
	}
	if (s[0]) {
		CHECK(s[0]->q_len == queued_n);
		CHECK(t.q_bytes == queued_n * (3 + DG_QITEM_OVERHEAD));
		struct dg_qitem *it = dg_session_dequeue(&t, s[0]);
		CHECK(!queued_n || (it && it->len == 3 && it->data[0] == 'd'));
		free(it);
	}
	for (uint32_t i = 0; i < 300; i += 2) /* half freed one by one (with their queues) */
		if (s[i])
			dg_session_free(&t, s[i], NULL);
	dg_sessions_release(&t);
	return ok;
}

static void test_sessions(void)
{
	fail_each("sessions", run_sessions, false);
	fail_each("sessions", run_sessions, true);
}

/* ---- an in-process daemon: start, requests over loopback, stop --------- */

static const char daemon_text[] =
	"{\"shutdown_timeout_ms\": 2000, \"listeners\": [\n"
	" {\"name\": \"j\", \"bind\": \"127.0.0.1:0\", \"codec\": \"json\", \"handler_timeout_ms\": 2000,\n"
	"  \"handler\": {\"plugin\": \"echo\", \"config\": {\"delay_ms\": 1}}},\n"
	" {\"name\": \"lp\", \"bind\": \"127.0.0.1:0\", \"handler_timeout_ms\": 2000,\n"
	"  \"codec\": {\"framing\": \"length-prefixed\", \"payload\": \"json\"},\n"
	"  \"handler\": {\"plugin\": \"echo\", \"config\": {\"delay_ms\": 1}}},\n"
	" {\"name\": \"raw\", \"bind\": \"127.0.0.1:0\", \"codec\": \"raw\",\n"
	"  \"allow\": [\"127.0.0.0/8\", \"::1\"], \"deny\": [\"127.0.0.9\"],\n"
	"  \"rate_limit\": {\"per_source\": {\"rate\": 1000, \"burst\": 100, \"table_size\": 16},\n"
	"                 \"total\": {\"rate\": 10000, \"burst\": 1000}},\n"
	"  \"handler\": {\"plugin\": \"echo\", \"config\": {\"prefix\": \"re:\"}}}\n"
	"]}\n";

#define DATAGRAMS 9
/* Datagrams sent per listener; each valid one comes back as it was sent
 * (raw with "re:" before it; lp one datagram per frame, frames in order). */
static const struct {
	unsigned listener;
	const char *data;
	size_t len;
	bool valid;
} sent[DATAGRAMS] = {
#define S(s) s, sizeof(s) - 1
	{ 0, S("{\"a\":1}"), true },
	{ 0, S("[1,2,3]"), true },
	{ 0, S("{\"b\":"), false },
	{ 0, S("\"text\""), true },
	{ 0, S("{\"c\":{\"d\":[null]}}"), true },
	{ 1, S("\0\7{\"x\":1}\0\5[4,5]\0\3\"y\""), true },
	{ 1, S("\0\7{\"x\":1}\0"), false },
	{ 2, S("bytes\0"), true },
	{ 2, S(""), true },
#undef S
};

static const char *expected_replies[] = {
	"{\"a\":1}", "[1,2,3]", "\"text\"", "{\"c\":{\"d\":[null]}}",
};

struct drive {
	struct dg_server *srv;
	struct event *check;
	double deadline;
	bool stalled;
};

/* Everything sent was received and nothing is in flight: stop as a SIGTERM
 * does. A bounded deadline catches a request that would never finish. */
static void on_check(evutil_socket_t fd, short what, void *arg)
{
	struct drive *d = arg;
	struct dg_server *srv = d->srv;
	uint64_t rx = 0;
	(void)fd, (void)what;

	for (unsigned i = 0; i < srv->n_listeners; i++)
		rx += srv->listeners[i].c->rx;
	bool idle = rx == DATAGRAMS && !srv->pending && !srv->queued && !srv->tx_n &&
	            dg_ififo_empty(&srv->ready) && dg_fifo_empty(&srv->lready);
	for (unsigned i = 0; i < srv->n_listeners; i++)
		idle &= srv->listeners[i].socks[0].q_len == 0;
	if (!idle && dg_now_ms() < d->deadline)
		return;
	d->stalled = !idle;
	if (!idle && !dg_failalloc_failed())
		fprintf(stderr, "stalled: rx %llu pending %u queued %lu tx_n %u ready %u lready %p\n",
		        (unsigned long long)rx, srv->pending, srv->queued, srv->tx_n, srv->ready.head,
		        (void *)srv->lready.head);
	dg_failalloc_pause();
	event_del(d->check);
	dg_failalloc_resume();
	raise(SIGTERM);
}

/* stderr goes to a file during a run, so that the log can be checked (and
 * is kept there if the run crashes). */
static char log_path[4096];
static int saved_stderr = -1;

static void capture_begin(void)
{
	fflush(stderr);
	saved_stderr = dup(2);
	int fd = open(log_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	CU_ASSERT_FATAL(saved_stderr >= 0 && fd >= 0);
	dup2(fd, 2);
	close(fd);
}

static void capture_end(char *buf, size_t len)
{
	fflush(stderr);
	dup2(saved_stderr, 2);
	close(saved_stderr);
	int fd = open(log_path, O_RDONLY);
	ssize_t n = fd >= 0 ? read(fd, buf, len - 1) : -1;
	buf[n > 0 ? n : 0] = '\0';
	if (fd >= 0)
		close(fd);
}

/* The replies a client socket holds now (loopback delivers at send). */
/* The replies on fd: at least `want` (the listener's tx) if they come
 * within 5 s, then whatever else is already there. A reply counted as
 * sent can still be in the kernel's loopback backlog when sendmmsg has
 * returned (softirq work deferred on a busy machine): wait for it rather
 * than take the socket's queue as it is at this instant. */
static unsigned collect(int fd, unsigned listener, unsigned *bad, uint64_t want)
{
	unsigned char buf[2048];
	unsigned n = 0, next = 0;
	ssize_t len;

	for (;;) {
		if (n < want) {
			struct pollfd p = { .fd = fd, .events = POLLIN };
			if (poll(&p, 1, 5000) <= 0)
				break;
		}
		if ((len = recv(fd, buf, sizeof(buf), MSG_DONTWAIT)) < 0)
			break;
		n++;
		if (listener == 0) { /* in order, a subsequence of the valid ones */
			while (next < 4 && ((size_t)len != strlen(expected_replies[next]) ||
			                    memcmp(buf, expected_replies[next], (size_t)len)))
				next++;
			*bad += next++ >= 4;
		} else if (listener == 1) { /* one frame of sent[5] */
			static const char *const f[] = { "\0\7{\"x\":1}", "\0\5[4,5]", "\0\3\"y\"" };
			static const size_t fl[] = { 9, 7, 5 };
			bool found = false;
			for (unsigned i = 0; i < 3; i++)
				found |= (size_t)len == fl[i] && !memcmp(buf, f[i], fl[i]);
			*bad += !found;
		} else {
			*bad += !(((size_t)len == 9 && !memcmp(buf, "re:bytes", 9)) ||
			          ((size_t)len == 3 && !memcmp(buf, "re:", 3)));
		}
	}
	return n;
}

static bool run_daemon(void)
{
	struct dg_counters counters[3];
	struct dg_config *cfg;
	struct dg_server srv;
	struct drive d = { .srv = &srv };
	char err[1024], log[65536];
	int fds[3] = { -1, -1, -1 };
	unsigned replies = 0, bad = 0;
	uint64_t tx = 0, tx_queued = 0;

	memset(counters, 0, sizeof(counters));
	/* Every batched send fails with EAGAIN, as from a full socket buffer:
	 * each reply waits in the send queue (an allocation) for EV_WRITE. */
	dg_io_fault_send = 1;
	capture_begin();
	int rc = dg_config_parse(daemon_text, sizeof(daemon_text) - 1, "daemon.json", ".",
	                         plugin_dir, &cfg, err, sizeof(err));
	if (rc) {
		capture_end(log, sizeof(log));
		if (!strstr(err, "out of memory"))
			fprintf(stderr, "daemon: allocation %lu failing: error '%s'\n", cur_n, err);
		CHECK(strstr(err, "out of memory") != NULL);
		return false;
	}
	dg_log_set_level(DG_LOG_WARN);
	rc = dg_server_init(&srv, cfg, plugin_dir, false, counters, NULL);
	if (rc == DG_OK) {
		dg_failalloc_pause();
		for (unsigned i = 0; i < 3; i++) {
			fds[i] = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
			CHECK(fds[i] >= 0);
		}
		for (unsigned i = 0; i < DATAGRAMS; i++) {
			const struct dg_sock *s = &srv.listeners[sent[i].listener].socks[0];
			CHECK(sendto(fds[sent[i].listener], sent[i].data, sent[i].len, 0,
			             (const struct sockaddr *)&s->bound.ss, s->bound.len) ==
			      (ssize_t)sent[i].len);
		}
		struct timeval ms = { 0, 1000 };
		d.deadline = dg_now_ms() + 5000;
		d.check = event_new(srv.base, -1, EV_PERSIST, on_check, &d);
		CU_ASSERT_FATAL(d.check && !event_add(d.check, &ms));
		dg_failalloc_resume();
		rc = dg_server_run(&srv);
		if (rc == DG_OK)
			dg_server_log_stats(&srv);
		dg_failalloc_pause();
		event_free(d.check);
		dg_failalloc_resume();
	}
	dg_server_release(&srv);
	dg_config_free(cfg);
	dg_io_fault_send = 0;
	signal(SIGTERM, SIG_DFL);
	signal(SIGINT, SIG_DFL);
	signal(SIGHUP, SIG_DFL);
	dg_log_set_level(DG_LOG_INFO);
	capture_end(log, sizeof(log));
	if (rc) {
		for (unsigned i = 0; i < 3; i++)
			if (fds[i] >= 0)
				close(fds[i]);
		if (!strstr(log, "dgramd[error]:"))
			fprintf(stderr, "daemon: allocation %lu failing: rc %d, not reported:\n%s", cur_n,
			        rc, log);
		CHECK(strstr(log, "dgramd[error]:") != NULL); /* reported */
		return false;
	}
	CHECK(!d.stalled);
	for (unsigned i = 0; i < 3; i++) {
		const struct dg_counters *c = &counters[i];
		uint64_t drops = 0;
		for (unsigned k = 0; k < DG_DROP__COUNT; k++)
			drops += c->drop[k];
		/* Nothing is lost silently: every datagram is accounted for. */
		CHECK(c->rx == c->handled + c->decode_errors + drops);
		tx_queued += c->tx_queued;
		tx += c->tx;
		replies += collect(fds[i], i, &bad, c->tx);
		close(fds[i]);
	}
	CHECK(bad == 0);
	CHECK(replies == tx); /* every reply counted as sent arrived */
	CHECK(dg_failalloc_failed() || tx_queued > 0); /* the send queue was used */
	if (replies != 4 + 3 + 2 || bad || d.stalled) {
		if (!dg_failalloc_failed()) /* the clean run: show why */
			fprintf(stderr, "%s", log);
		return false;
	}
	return true;
}

static void test_daemon(void)
{
	config_setup();
	snprintf(log_path, sizeof(log_path), "%s/failalloc-run.log", dg_test_tmpdir());
	fprintf(stderr, "daemon runs log to %s\n", log_path);
	fail_each("daemon", run_daemon, false);
	fail_each("daemon", run_daemon, true);
}

static const struct dg_test tests[] = {
	{ "config load", test_config },
	{ "plugin load", test_loader },
	{ "codec decode and encode", test_codecs },
	{ "sessions and peer queues", test_sessions },
	{ "daemon start, requests and stop", test_daemon },
	{ NULL, NULL },
};

int main(void)
{
	static const struct dg_suite suites[] = {
		{ "allocation failures", tests },
		{ NULL, NULL },
	};

	dg_failalloc_install(); /* before any jansson or libevent call */
	dg_membudget_install(); /* as the daemon does; it allocates with malloc */
	return dg_test_main(suites);
}
