/* <dgramd/plugin-util.h>, the helpers the shipped plugins share, against a
 * fake host table: the intrusive list, options and metrics on an older
 * host, JSON error replies with the request's id, what DG_EAGAIN means for
 * on_packet's result, and the log rate limit. */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <dgramd/plugin.h>
#include <dgramd/plugin-util.h>

#include "testutil.h"

/* ---- a fake host: records what the helpers ask of it -------------------- */

static struct {
	char logged[256];
	char replied[256];
	int reply_rc;   /* what request_reply returns */
	int replies;
	dg_req_t req;
	int64_t metric; /* what metric_add / metric_set did to the one metric */
} fake;

static struct dg_metric *const the_metric = (struct dg_metric *)&fake.metric;

DG_PRINTF(3, 4)
static void fake_log(struct dg_instance *self, int level, const char *fmt, ...)
{
	va_list ap;
	(void)self, (void)level;

	va_start(ap, fmt);
	vsnprintf(fake.logged, sizeof(fake.logged), fmt, ap);
	va_end(ap);
}

static int fake_request_reply(struct dg_instance *self, dg_req_t req, const struct dg_packet *pkt)
{
	char *text = json_dumps(pkt->json, JSON_COMPACT);
	(void)self;

	snprintf(fake.replied, sizeof(fake.replied), "%s", text ? text : "(null)");
	free(text);
	fake.req = req;
	fake.replies++;
	return fake.reply_rc;
}

static struct dg_metric *fake_metric_new(struct dg_instance *self, const char *name,
                                         const char *help, int kind)
{
	(void)self, (void)name, (void)help, (void)kind;
	return the_metric;
}

static void fake_metric_add(struct dg_metric *m, int64_t delta)
{
	*(int64_t *)(void *)m += delta;
}

static void fake_metric_set(struct dg_metric *m, int64_t value)
{
	*(int64_t *)(void *)m = value;
}

static const int the_options = 42;

static const void *fake_options(struct dg_instance *self)
{
	(void)self;
	return &the_options;
}

static const struct dg_host host = {
	.size = sizeof(struct dg_host), .log = fake_log, .options = fake_options,
	.metric_new = fake_metric_new, .metric_add = fake_metric_add, .metric_set = fake_metric_set,
	.request_reply = fake_request_reply,
};

/* ---- tests ---------------------------------------------------------------- */

struct item {
	int value;
	struct dg_util_link link;
};

static void test_list(void)
{
	struct dg_util_list list;
	struct item it[4] = { { .value = 0 }, { .value = 1 }, { .value = 2 }, { .value = 3 } };
	struct dg_util_link *n;

	dg_util_list_init(&list);
	CU_ASSERT_PTR_NULL(dg_util_list_first(&list));
	CU_ASSERT_PTR_NULL(dg_util_list_pop(&list));
	for (int i = 0; i < 4; i++)
		dg_util_list_push(&list, &it[i].link);
	CU_ASSERT_EQUAL(list.len, 4);
	/* unlink the middle, the tail, then the head: order kept, ends right */
	dg_util_list_unlink(&list, &it[1].link);
	dg_util_list_unlink(&list, &it[3].link);
	CU_ASSERT_PTR_EQUAL(list.ring.prev, &it[2].link);
	CU_ASSERT_PTR_EQUAL(DG_UTIL_ENTRY(dg_util_list_first(&list), struct item, link), &it[0]);
	dg_util_list_push(&list, &it[1].link); /* an unlinked entry goes back */
	int order[3], k = 0;
	while ((n = dg_util_list_pop(&list)) && k < 3)
		order[k++] = DG_UTIL_ENTRY(n, struct item, link)->value;
	CU_ASSERT_EQUAL(k, 3);
	CU_ASSERT(order[0] == 0 && order[1] == 2 && order[2] == 1);
	CU_ASSERT_EQUAL(list.len, 0);
	CU_ASSERT_PTR_EQUAL(list.ring.next, &list.ring);
	CU_ASSERT_PTR_EQUAL(list.ring.prev, &list.ring);
}

/* A host that is older than a member gets no call to it. */
static void test_old_host(void)
{
	struct dg_host old = host;

	CU_ASSERT_PTR_EQUAL(dg_util_options(NULL, &host), &the_options);
	old.size = (uint32_t)offsetof(struct dg_host, peer_validate); /* ABI 1.0 */
	fake.logged[0] = '\0';
	CU_ASSERT_PTR_NULL(dg_util_options(NULL, &old));
	CU_ASSERT_STRING_EQUAL(fake.logged, "this dgramd fills in no options (host->options)");
	CU_ASSERT_PTR_NULL(dg_util_metric_new(&old, NULL, "x", "x", DG_METRIC_COUNTER));
	dg_util_metric_add(&old, NULL, 5); /* no metric: nothing called */

	fake.metric = 0;
	struct dg_metric *m = dg_util_metric_new(&host, NULL, "x", "x", DG_METRIC_GAUGE);
	CU_ASSERT_PTR_EQUAL(m, the_metric);
	dg_util_metric_add(&host, m, 5);
	dg_util_metric_add(&host, m, 2);
	CU_ASSERT_EQUAL(fake.metric, 7);
	dg_util_metric_set(&host, m, 3);
	CU_ASSERT_EQUAL(fake.metric, 3);
}

static void test_verdict(void)
{
	CU_ASSERT_EQUAL(dg_util_verdict(DG_OK), DG_DONE);
	CU_ASSERT_EQUAL(dg_util_verdict(DG_EAGAIN), DG_DONE);
	CU_ASSERT_EQUAL(dg_util_verdict(DG_E2BIG), DG_E2BIG);
	CU_ASSERT_EQUAL(dg_util_verdict(DG_ENOMEM), DG_ENOMEM);
	CU_ASSERT_EQUAL(dg_util_verdict(DG_ESTALE), DG_ESTALE);
}

/* Error replies in both forms, the id echoed, the reply consumed. */
static void test_reply_json(void)
{
	json_t *request = json_loads("{\"op\": \"get\", \"id\": [7, \"x\"]}", 0, NULL);
	json_t *id = dg_util_request_id(request);
	CU_ASSERT_PTR_NOT_NULL_FATAL(id);
	size_t refs = id->refcount;

	fake.reply_rc = DG_OK;
	fake.replies = 0;
	CU_ASSERT_EQUAL(dg_util_reply_json(&host, NULL, 99, dg_util_error("no", true), id), DG_OK);
	CU_ASSERT_STRING_EQUAL(fake.replied, "{\"ok\":false,\"error\":\"no\",\"id\":[7,\"x\"]}");
	CU_ASSERT_EQUAL(fake.req, 99);
	CU_ASSERT_EQUAL(id->refcount, refs); /* the reply took and dropped its own */
	CU_ASSERT_EQUAL(dg_util_reply_json(&host, NULL, 99, dg_util_error("busy", false), NULL), DG_OK);
	CU_ASSERT_STRING_EQUAL(fake.replied, "{\"error\":\"busy\"}");
	fake.reply_rc = DG_EAGAIN; /* refused by the guard: the code comes back */
	CU_ASSERT_EQUAL(dg_util_reply_json(&host, NULL, 99, json_pack("{si}", "a", 1), NULL), DG_EAGAIN);
	/* json_pack failed: DG_ENOMEM, nothing sent */
	CU_ASSERT_EQUAL(dg_util_reply_json(&host, NULL, 99, NULL, id), DG_ENOMEM);
	CU_ASSERT_EQUAL(fake.replies, 3);

	CU_ASSERT_PTR_NULL(dg_util_request_id(NULL));
	json_t *array = json_loads("[1]", 0, NULL);
	CU_ASSERT_PTR_NULL(dg_util_request_id(array));
	json_decref(array);
	json_decref(request);
}

static void test_ratelimit(void)
{
	struct dg_util_ratelimit rl = { 0 };
	unsigned long long quiet = 99;

	/* the first line is allowed at any origin of the clock, 0 included */
	CU_ASSERT_TRUE(dg_util_ratelimit_allow(&rl, 0, 1000, &quiet));
	CU_ASSERT_EQUAL(quiet, 0);
	CU_ASSERT_FALSE(dg_util_ratelimit_allow(&rl, 1, 1000, &quiet));
	CU_ASSERT_FALSE(dg_util_ratelimit_allow(&rl, 999, 1000, &quiet));
	CU_ASSERT_TRUE(dg_util_ratelimit_allow(&rl, 1000, 1000, &quiet));
	CU_ASSERT_EQUAL(quiet, 2);
	CU_ASSERT_TRUE(dg_util_ratelimit_allow(&rl, 5000, 1000, &quiet));
	CU_ASSERT_EQUAL(quiet, 0);
}

static const struct dg_test tests[] = {
	{ "intrusive list", test_list },
	{ "options and metrics on an older host", test_old_host },
	{ "DG_EAGAIN is not a handler error", test_verdict },
	{ "JSON error replies with the id", test_reply_json },
	{ "log rate limit on the server's clock", test_ratelimit },
	{ NULL, NULL },
};

DG_TEST_MAIN("plugin-util", tests)
