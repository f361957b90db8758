/* The echo plugin: on the harness (<dgramd/testing.h>: the daemon's own
 * dispatch with a fake clock) for what it answers and when, and against a
 * fake host for the cost of 64,000 timeouts, each handed its own data
 * back (the request's data slot, on_expire). */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>
#include <dgramd/testing.h>

#include "loader.h"
#include "options.h"
#include "testutil.h"

enum { N = 64000 };

/* A timer of the fake host, remembering the request it was started for. */
struct fake_timer {
	void (*cb)(void *arg);
	void *arg;
	dg_req_t req;
	bool live;
};

/* A request's data slot in the fake host. */
struct fake_slot {
	void *data;
	void (*free_fn)(void *data);
};

static struct {
	struct fake_timer *timers; /* by request number */
	struct fake_slot *slots;   /* by request number */
	dg_req_t current;          /* the request being handled */
	unsigned replies, wrong_replies, completes, cancels, wrong_cancels;
} fake;

static unsigned number_of(dg_req_t h)
{
	return (unsigned)(h & 0xffffffffu) - 1;
}

/* Handles as the server makes them: a generation over an index + 1. */
static dg_req_t handle_of(unsigned i)
{
	return ((dg_req_t)(7 + i % 5) << 32) | (i + 1);
}

DG_PRINTF(3, 4)
static void fake_log(struct dg_instance *self, int level, const char *fmt, ...)
{
	va_list ap;
	(void)self, (void)level;

	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

static int fake_reply(dg_req_t req, const struct dg_packet *pkt)
{
	char want[16];

	snprintf(want, sizeof(want), "%u", number_of(req));
	fake.replies++;
	if (pkt->len != strlen(want) || memcmp(pkt->data, want, pkt->len))
		fake.wrong_replies++;
	return DG_OK;
}

static int fake_request_reply(struct dg_instance *self, dg_req_t req, const struct dg_packet *pkt)
{
	(void)self;
	return fake_reply(req, pkt);
}

/* The request ends: its slot is freed, as the host does. */
static void slot_end(dg_req_t req)
{
	struct fake_slot *sl = &fake.slots[number_of(req)];
	void (*free_fn)(void *) = sl->free_fn;
	void *data = sl->data;

	sl->free_fn = NULL;
	sl->data = NULL;
	if (free_fn)
		free_fn(data);
}

static int fake_complete(dg_req_t req)
{
	fake.completes++;
	slot_end(req);
	return DG_OK;
}

static int fake_request_complete(struct dg_instance *self, dg_req_t req)
{
	(void)self;
	return fake_complete(req);
}

static int fake_set_data(struct dg_instance *self, dg_req_t req, void *data,
                         void (*free_fn)(void *data))
{
	(void)self;
	slot_end(req);
	fake.slots[number_of(req)] = (struct fake_slot){ data, free_fn };
	return DG_OK;
}

static struct dg_timer *fake_timer_start(struct dg_instance *self, unsigned ms,
                                         void (*cb)(void *arg), void *arg)
{
	struct fake_timer *t = &fake.timers[number_of(fake.current)];
	(void)self, (void)ms;

	t->cb = cb;
	t->arg = arg;
	t->req = fake.current;
	t->live = true;
	return (struct dg_timer *)t;
}

static void fake_timer_cancel(struct dg_timer *timer)
{
	struct fake_timer *t = (struct fake_timer *)timer;

	fake.cancels++;
	if (!t->live || t->req != fake.current)
		fake.wrong_cancels++;
	t->live = false;
}

/* The plugin's options, checked and filled in as the daemon does before
 * init(). */
static struct dg_options *fake_opts;

static const void *fake_options(struct dg_instance *self)
{
	(void)self;
	return dg_options_data(fake_opts);
}

static int options_fill(const struct dg_plugin *p, const json_t *config)
{
	char err[512];
	size_t size;
	const struct dg_option *table = dg_plugin_options(p, &size);
	int rc = table ? dg_options_new(table, size, config, "config", &fake_opts, err, sizeof(err))
	               : DG_EINVAL;

	if (rc)
		fprintf(stderr, "%s\n", table ? err : "echo declares no options");
	return rc;
}

static const struct dg_host fake_host = {
	.size = sizeof(struct dg_host),
	.abi_major = DG_PLUGIN_ABI_MAJOR,
	.abi_minor = DG_PLUGIN_ABI_MINOR,
	.log = fake_log,
	.reply = fake_reply,
	.complete = fake_complete,
	.timer_start = fake_timer_start,
	.timer_cancel = fake_timer_cancel,
	.request_reply = fake_request_reply,
	.request_complete = fake_request_complete,
	.request_set_data = fake_set_data,
	.options = fake_options,
};

static double cpu_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* 64,000 delayed replies; every eighth fires, then the rest time out,
 * oldest first (on_expire, then the slot's free_fn, as the host does).
 * Each timeout must cancel its own request's timer, and cost O(1): the old
 * list scan took seconds of CPU here, this takes milliseconds;
 * the bound leaves a wide margin for slow builds. */
static void test_timeouts_by_handle(void)
{
	struct dg_loader ld = { 0 };
	const struct dg_plugin *p;
	char path[4096], err[512], text[16];
	void *state = NULL;

	snprintf(path, sizeof(path), "%s/plugins/.libs/echo.so", dg_test_builddir());
	CU_ASSERT_EQUAL_FATAL(dg_loader_load(&ld, path, &p, err, sizeof(err)), 0);
	json_t *config = json_pack("{si}", "delay_ms", 1000);
	CU_ASSERT_EQUAL_FATAL(options_fill(p, config), DG_OK);
	CU_ASSERT_EQUAL_FATAL(p->init((struct dg_instance *)&fake, &fake_host, config, &state), DG_OK);
	json_decref(config);
	fake.timers = calloc(N, sizeof(*fake.timers));
	fake.slots = calloc(N, sizeof(*fake.slots));
	CU_ASSERT_PTR_NOT_NULL_FATAL(fake.timers);
	CU_ASSERT_PTR_NOT_NULL_FATAL(fake.slots);

	for (unsigned i = 0; i < N; i++) {
		struct dg_request rq = { .handle = handle_of(i), .frames = 1 };
		snprintf(text, sizeof(text), "%u", i);
		rq.packet.data = (const unsigned char *)text;
		rq.packet.len = strlen(text);
		fake.current = rq.handle;
		CU_ASSERT_EQUAL(p->on_packet(state, &rq), DG_PENDING);
	}
	for (unsigned i = 0; i < N; i += 8) {
		fake.timers[i].live = false;
		fake.timers[i].cb(fake.timers[i].arg);
	}
	CU_ASSERT_EQUAL(fake.replies, N / 8);
	CU_ASSERT_EQUAL(fake.completes, N / 8);

	double t0 = cpu_ms();
	for (unsigned i = 0; i < N; i++) {
		if (i % 8 == 0)
			continue; /* complete: the host would not time it out */
		fake.current = handle_of(i);
		p->on_expire(state, fake.current, fake.slots[i].data);
		slot_end(fake.current);
	}
	double spent = cpu_ms() - t0;
	printf("\n  %u timeouts: %.1f ms of CPU\n", N, spent);
	CU_ASSERT(spent < 500);
	CU_ASSERT_EQUAL(fake.cancels, N - N / 8);
	CU_ASSERT_EQUAL(fake.wrong_cancels, 0);
	CU_ASSERT_EQUAL(fake.wrong_replies, 0);
	p->fini(state);
	dg_options_free(fake_opts);
	fake_opts = NULL;
	free(fake.timers);
	free(fake.slots);
	dg_loader_release(&ld);
}

/* Requests abandoned at shutdown (their slots freed by the host, in any
 * order), then fini: nothing leaks (ASan checks). */
static void test_fini_with_pending(void)
{
	struct dg_loader ld = { 0 };
	const struct dg_plugin *p;
	char path[4096], err[512];
	void *state = NULL;

	snprintf(path, sizeof(path), "%s/plugins/.libs/echo.so", dg_test_builddir());
	CU_ASSERT_EQUAL_FATAL(dg_loader_load(&ld, path, &p, err, sizeof(err)), 0);
	json_t *config = json_pack("{si}", "delay_ms", 5);
	CU_ASSERT_EQUAL_FATAL(options_fill(p, config), DG_OK);
	CU_ASSERT_EQUAL_FATAL(p->init((struct dg_instance *)&fake, &fake_host, config, &state), DG_OK);
	json_decref(config);
	fake.timers = calloc(1000, sizeof(*fake.timers));
	fake.slots = calloc(1000, sizeof(*fake.slots));
	CU_ASSERT_PTR_NOT_NULL_FATAL(fake.timers);
	CU_ASSERT_PTR_NOT_NULL_FATAL(fake.slots);
	for (unsigned i = 0; i < 1000; i++) {
		struct dg_request rq = { .handle = handle_of(999 - i), .frames = 1 };
		rq.packet.data = (const unsigned char *)"x";
		rq.packet.len = 1;
		fake.current = rq.handle;
		CU_ASSERT_EQUAL(p->on_packet(state, &rq), DG_PENDING);
	}
	for (unsigned i = 0; i < 1000; i++) {
		fake.current = handle_of(i);
		slot_end(fake.current);
	}
	CU_ASSERT_EQUAL(fake.wrong_cancels, 0);
	p->fini(state);
	dg_options_free(fake_opts);
	fake_opts = NULL;
	free(fake.timers);
	free(fake.slots);
	dg_loader_release(&ld);
}

/* A reply's time and length; UINT64_MAX / SIZE_MAX if there is none. */
static uint64_t reply_at(const struct dg_harness *h, size_t i)
{
	const struct dg_harness_reply *r = dg_harness_reply(h, i);

	return r ? r->at_ms : UINT64_MAX;
}

static size_t reply_len(const struct dg_harness *h, size_t i)
{
	const struct dg_harness_reply *r = dg_harness_reply(h, i);

	return r ? r->len : SIZE_MAX;
}

/* ---- on the harness ---------------------------------------------------- */

/* A harness on echo.so with the given codec, listener keys and plugin
 * config. */
static struct dg_harness *echo_on(const char *codec, const char *keys, const char *config)
{
	char text[2048], err[512];

	snprintf(text, sizeof(text), "{\"codec\": %s, %s%s\"handler\": {\"plugin\": "
	         "\"%s/plugins/.libs/echo.so\", \"config\": %s}}", codec, keys, keys[0] ? ", " : "",
	         dg_test_builddir(), config);
	struct dg_harness *h = dg_harness_new(text, NULL, err, sizeof(err));
	if (!h)
		fprintf(stderr, "echo harness: %s\n", err);
	CU_ASSERT_PTR_NOT_NULL(h);
	return h;
}

static void test_h_wrap_prefix(void)
{
	struct dg_harness *j = echo_on("\"json\"", "", "{\"wrap\": \"echo\"}");
	struct dg_harness *b = echo_on("\"raw\"", "", "{\"prefix\": \">> \"}");
	CU_ASSERT_PTR_NOT_NULL_FATAL(j);
	CU_ASSERT_PTR_NOT_NULL_FATAL(b);

	dg_harness_send_text(j, "127.0.0.1:4000", "{\"n\": 1, \"s\": \"x\"}");
	DG_TEST_ASSERT_REPLY_TO(j, 0, "127.0.0.1:4000", "{\"echo\":{\"n\":1,\"s\":\"x\"}}");
	dg_harness_send_text(b, "127.0.0.2:4000", "abc");
	DG_TEST_ASSERT_REPLY_TO(b, 0, "127.0.0.2:4000", ">> abc");
	dg_harness_free(j);
	dg_harness_free(b);
}

/* error_reply: a datagram that does not decode and a request past
 * handler_timeout_ms each get an error reply, the latter at exactly the
 * deadline; the delayed reply never goes out after it. */
static void test_h_error_reply(void)
{
	struct dg_harness *h = echo_on("\"json\"", "\"handler_timeout_ms\": 250",
	                               "{\"error_reply\": true, \"delay_ms\": 1000}");
	CU_ASSERT_PTR_NOT_NULL_FATAL(h);

	dg_harness_send_text(h, "127.0.0.1:4000", "{\"open\": [1, 2, 3, 4, 5, 6, 7, 8, 9]");
	DG_TEST_ASSERT_REPLIES(h, 1);
	const struct dg_harness_reply *r = dg_harness_reply(h, 0);
	CU_ASSERT_TRUE(r && r->len > 10 && !memcmp(r->data, "{\"error\":", 9));
	DG_TEST_ASSERT_COUNTER(h, "decode_errors", 1);
	dg_harness_send_text(h, "127.0.0.1:4000", "{\"slow\": true}");
	dg_harness_advance(h, 249);
	DG_TEST_ASSERT_REPLIES(h, 1);
	dg_harness_advance(h, 1);
	DG_TEST_ASSERT_REPLY(h, 1, "{\"error\":\"timeout\"}");
	CU_ASSERT_EQUAL(reply_at(h, 1), 250);
	dg_harness_advance(h, 5000);
	DG_TEST_ASSERT_REPLIES(h, 2);
	DG_TEST_ASSERT_COUNTER(h, "timeouts", 1);
	DG_TEST_ASSERT_COUNTER(h, "stale_calls", 0);
	dg_harness_free(h);
}

/* delay_ms: the reply leaves at exactly the delay; meanwhile the peer's
 * next datagram waits its turn (ordering "peer"). */
static void test_h_delay(void)
{
	struct dg_harness *h = echo_on("\"raw\"", "", "{\"delay_ms\": 40}");
	CU_ASSERT_PTR_NOT_NULL_FATAL(h);

	dg_harness_send_text(h, "127.0.0.1:4000", "one");
	dg_harness_send_text(h, "127.0.0.1:4000", "two");
	dg_harness_advance(h, 39);
	DG_TEST_ASSERT_REPLIES(h, 0);
	dg_harness_advance(h, 100);
	DG_TEST_ASSERT_REPLIES(h, 2);
	DG_TEST_ASSERT_REPLY(h, 0, "one");
	DG_TEST_ASSERT_REPLY(h, 1, "two");
	CU_ASSERT_EQUAL(reply_at(h, 0), 40);
	CU_ASSERT_EQUAL(reply_at(h, 1), 80);
	DG_TEST_ASSERT_COUNTER(h, "queued", 1);
	dg_harness_free(h);
}

/* 2,000 delayed requests from 20 peers time out together: each timeout
 * cancels its own request's timer, so no reply goes out later and no call
 * is made with a dead handle (a timer left running would reply to it:
 * stale_calls). */
static void test_h_timeouts_cancel(void)
{
	struct dg_harness *h = echo_on("\"raw\"", "\"handler_timeout_ms\": 300, \"ordering\": \"none\"",
	                               "{\"delay_ms\": 1000}");
	char peer[32], text[16];
	CU_ASSERT_PTR_NOT_NULL_FATAL(h);

	dg_harness_batch_begin(h);
	for (unsigned i = 0; i < 2000; i++) {
		snprintf(peer, sizeof(peer), "127.0.0.%u:%u", 1 + i % 20, 4000 + i % 7);
		snprintf(text, sizeof(text), "%u", i);
		dg_harness_send_text(h, peer, text);
	}
	dg_harness_batch_end(h);
	CU_ASSERT_EQUAL(dg_harness_pending(h), 2000);
	dg_harness_advance(h, 300);
	DG_TEST_ASSERT_COUNTER(h, "timeouts", 2000);
	CU_ASSERT_EQUAL(dg_harness_pending(h), 0);
	dg_harness_advance(h, 5000);
	DG_TEST_ASSERT_REPLIES(h, 0);
	DG_TEST_ASSERT_COUNTER(h, "stale_calls", 0);
	dg_harness_free(h);
}

/* repeat past max_replies_per_request: the extra replies are refused and
 * counted; with length-prefixed framing the allowed ones share a datagram. */
static void test_h_repeat(void)
{
	struct dg_harness *raw = echo_on("\"raw\"", "\"max_replies_per_request\": 2", "{\"repeat\": 3}");
	struct dg_harness *lp = echo_on("{\"framing\": \"length-prefixed\", \"width\": 1}",
	                                "\"max_replies_per_request\": 2", "{\"repeat\": 3}");
	CU_ASSERT_PTR_NOT_NULL_FATAL(raw);
	CU_ASSERT_PTR_NOT_NULL_FATAL(lp);

	dg_harness_send_text(raw, "127.0.0.1:4000", "hi");
	DG_TEST_ASSERT_REPLIES(raw, 2);
	DG_TEST_ASSERT_COUNTER(raw, "tx_drop_too_many", 1);
	dg_harness_send(lp, "127.0.0.1:4000", "\002hi", 3);
	DG_TEST_ASSERT_REPLIES(lp, 1);
	CU_ASSERT_EQUAL(reply_len(lp, 0), 6);
	CU_ASSERT_TRUE(reply_len(lp, 0) == 6 && !memcmp(dg_harness_reply(lp, 0)->data, "\002hi\002hi", 6));
	DG_TEST_ASSERT_COUNTER(lp, "tx_drop_too_many", 1);
	dg_harness_free(raw);
	dg_harness_free(lp);
}

static void test_h_silent_and_bad_config(void)
{
	struct dg_harness *h = echo_on("\"raw\"", "", "{\"reply\": false}");
	char text[2048], err[512];
	CU_ASSERT_PTR_NOT_NULL_FATAL(h);

	dg_harness_send_text(h, "127.0.0.1:4000", "into the void");
	DG_TEST_ASSERT_REPLIES(h, 0);
	DG_TEST_ASSERT_COUNTER(h, "handled", 1);
	dg_harness_free(h);
	snprintf(text, sizeof(text), "{\"codec\": \"raw\", \"handler\": {\"plugin\": "
	         "\"%s/plugins/.libs/echo.so\", \"config\": {\"delay_ms\": -1}}}", dg_test_builddir());
	CU_ASSERT_PTR_NULL(dg_harness_new(text, NULL, err, sizeof(err)));
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "listeners[0].handler.config.delay_ms"));
}

static const struct dg_test echo_tests[] = {
	{ "wrap and prefix", test_h_wrap_prefix },
	{ "error replies: undecodable, timed out", test_h_error_reply },
	{ "delay_ms, and the peer's next datagram waits", test_h_delay },
	{ "2,000 timeouts cancel their timers", test_h_timeouts_cancel },
	{ "repeat past max_replies_per_request", test_h_repeat },
	{ "reply false; a bad config refused", test_h_silent_and_bad_config },
	{ "timeouts found by handle (fake host)", test_timeouts_by_handle },
	{ "fini with replies pending (fake host)", test_fini_with_pending },
	{ NULL, NULL },
};

DG_TEST_MAIN("echo", echo_tests)
