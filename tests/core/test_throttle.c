/* Rate limits: token refill and burst with a synthetic clock, what counts
 * as one source, the total bucket, the bounded table under a spoofed flood,
 * and the "rate_limit" config keys with their error messages. */
#include "config.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf.h"
#include "testutil.h"
#include "throttle.h"

static struct sockaddr_storage src(const char *text, unsigned port)
{
	struct sockaddr_storage ss;

	memset(&ss, 0, sizeof(ss));
	if (strchr(text, ':')) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons((uint16_t)port);
		CU_ASSERT_FATAL(inet_pton(AF_INET6, text, &s6->sin6_addr) == 1);
	} else {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
		s4->sin_family = AF_INET;
		s4->sin_port = htons((uint16_t)port);
		CU_ASSERT_FATAL(inet_pton(AF_INET, text, &s4->sin_addr) == 1);
	}
	return ss;
}

/* How many of n datagrams from text pass at now_ms. */
static unsigned offer(struct dg_throttle *t, const char *text, unsigned n, uint64_t now_ms)
{
	struct sockaddr_storage ss = src(text, 1000 + n);
	unsigned ok = 0;

	for (unsigned i = 0; i < n; i++)
		ok += dg_throttle_allow(t, (struct sockaddr *)&ss, now_ms);
	return ok;
}

static struct dg_throttle_conf per_source(uint64_t rate_u, unsigned burst)
{
	return (struct dg_throttle_conf){
		.per_source = { .rate_u = rate_u, .burst = burst },
		.ipv6_prefix = DG_DEFAULT_IPV6_PREFIX, .table_size = 64,
	};
}

/* clock (ms) -> datagrams offered -> how many pass, one source, in order. */
static void test_refill_burst(void)
{
	static const struct {
		uint64_t rate_u; /* rate per second x 1000 */
		unsigned burst;
		struct { uint64_t at_ms; unsigned offered, pass; } steps[6];
	} cases[] = {
		/* 10/s, burst 5: a token every 100 ms, never more than 5 */
		{ 10000, 5, { { 1000, 8, 5 }, { 1099, 1, 0 }, { 1100, 2, 1 }, { 1350, 5, 2 },
		              { 60000, 9, 5 }, { 60000, 1, 0 } } },
		/* 0.5/s, burst 1: one every two seconds */
		{ 500, 1, { { 5000, 3, 1 }, { 6999, 1, 0 }, { 7000, 1, 1 }, { 8000, 1, 0 },
		            { 9000, 2, 1 }, { 9000, 1, 0 } } },
		/* the largest values: no overflow after a long idle time */
		{ 100000000000ull, 1000000, { { 1, 1000001, 1000000 }, { 2, 1000001, 100000 },
		                              { 864000001, 1000001, 1000000 }, { 864000001, 1, 0 },
		                              { 864000011, 1000001, 1000000 }, { 864000011, 1, 0 } } },
		/* the clock standing still or stepping back gives nothing */
		{ 1000, 2, { { 10000, 3, 2 }, { 9000, 1, 0 }, { 10999, 1, 0 }, { 11000, 1, 1 },
		             { 11000, 1, 0 }, { 0, 0, 0 } } },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct dg_throttle_conf conf = per_source(cases[i].rate_u, cases[i].burst);
		struct dg_throttle t;
		CU_ASSERT_FATAL(dg_throttle_init(&t, &conf, 0) == 0);
		for (size_t s = 0; s < 6 && cases[i].steps[s].offered; s++) {
			unsigned got = offer(&t, "192.0.2.1", cases[i].steps[s].offered, cases[i].steps[s].at_ms);
			if (got != cases[i].steps[s].pass)
				fprintf(stderr, "case %zu step %zu: %u passed, want %u\n", i, s, got,
				        cases[i].steps[s].pass);
			CU_ASSERT_EQUAL(got, cases[i].steps[s].pass);
		}
		dg_throttle_release(&t);
	}
}

/* Ports never matter; IPv6 sources are their first ipv6_prefix bits; an
 * IPv4-mapped source is the IPv4 one. */
static void test_sources(void)
{
	static const struct {
		unsigned prefix;
		const char *a, *b;
		bool same;
	} cases[] = {
		{ 64, "192.0.2.1", "192.0.2.2", false },
		{ 64, "192.0.2.1", "::ffff:192.0.2.1", true },
		{ 64, "2001:db8::1", "2001:db8::2", true },
		{ 64, "2001:db8::1", "2001:db8:0:0:ffff:ffff:ffff:ffff", true },
		{ 64, "2001:db8::1", "2001:db8:0:1::1", false },
		{ 128, "2001:db8::1", "2001:db8::2", false },
		{ 48, "2001:db8:0:1::1", "2001:db8:0:2::1", true },
		{ 48, "2001:db8:1::1", "2001:db8:2::1", false },
		{ 1, "::1", "7fff::", true },
		{ 1, "::1", "8000::", false },
		{ 64, "::1", "::2", true },
		{ 64, "::", "::ffff:0.0.0.0", false },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct dg_throttle_conf conf = per_source(1, 3);
		struct dg_throttle t;
		conf.ipv6_prefix = cases[i].prefix;
		CU_ASSERT_FATAL(dg_throttle_init(&t, &conf, 0) == 0);
		CU_ASSERT_EQUAL(offer(&t, cases[i].a, 3, 100), 3); /* a's bucket is empty now */
		unsigned b = offer(&t, cases[i].b, 1, 100);
		if (b != !cases[i].same)
			fprintf(stderr, "sources case %zu: %s and %s should%s be one source\n", i,
			        cases[i].a, cases[i].b, cases[i].same ? "" : " not");
		CU_ASSERT_EQUAL(b, !cases[i].same);
		dg_throttle_release(&t);
	}
	struct dg_throttle_conf conf = per_source(1, 1);
	struct dg_throttle t;
	struct sockaddr other = { .sa_family = AF_UNIX };
	CU_ASSERT_FATAL(dg_throttle_init(&t, &conf, 0) == 0);
	CU_ASSERT_TRUE(dg_throttle_allow(&t, &other, 1)); /* no address: no per-source bucket */
	CU_ASSERT_TRUE(dg_throttle_allow(&t, &other, 1));
	dg_throttle_release(&t);
}

/* The total bucket alone, and with per-source buckets: a datagram the
 * total refuses costs its source nothing. */
static void test_total(void)
{
	struct dg_throttle_conf conf = { .total = { .rate_u = 1000, .burst = 3 } };
	struct dg_throttle t;

	CU_ASSERT_FATAL(dg_throttle_init(&t, &conf, 0) == 0);
	CU_ASSERT_PTR_NULL(t.table);
	CU_ASSERT_EQUAL(dg_throttle_table_bytes(&conf), 0);
	CU_ASSERT_EQUAL(offer(&t, "192.0.2.1", 2, 10) + offer(&t, "192.0.2.2", 2, 10) +
	                offer(&t, "2001:db8::1", 2, 10), 3);
	CU_ASSERT_EQUAL(offer(&t, "192.0.2.3", 2, 1010), 1);
	dg_throttle_release(&t);

	conf = per_source(1, 2); /* per source: 2, no refill to speak of */
	conf.total = (struct dg_limit_conf){ .rate_u = 1000, .burst = 2 };
	CU_ASSERT_FATAL(dg_throttle_init(&t, &conf, 0) == 0);
	CU_ASSERT_EQUAL(offer(&t, "192.0.2.1", 1, 10), 1);
	CU_ASSERT_EQUAL(offer(&t, "192.0.2.2", 1, 10), 1);
	CU_ASSERT_EQUAL(offer(&t, "192.0.2.1", 3, 10), 0); /* total empty: .1 keeps its token */
	CU_ASSERT_EQUAL(offer(&t, "192.0.2.1", 1, 1010), 1); /* a total token: .1's last one */
	CU_ASSERT_EQUAL(offer(&t, "192.0.2.1", 1, 3010), 0); /* total has 2 again; .1 has none */
	CU_ASSERT_EQUAL(offer(&t, "192.0.2.3", 3, 3010), 2);
	dg_throttle_release(&t);
}

static void ip4(struct sockaddr_in *s4, uint32_t a)
{
	memset(s4, 0, sizeof(*s4));
	s4->sin_family = AF_INET;
	s4->sin_addr.s_addr = htonl(a);
}

/* A flood of distinct (spoofed) sources: the table stays the size it was
 * made, every new source gets a fresh bucket, and sources being limited
 * are not the ones forgotten to make room. */
static void test_flood_bounded(void)
{
	struct dg_throttle_conf conf = per_source(1, 2); /* 0.001/s, burst 2 */
	struct dg_throttle t;
	struct sockaddr_in s4;
	unsigned passed = 0;

	conf.table_size = 4096;
	CU_ASSERT_EQUAL(dg_throttle_table_bytes(&conf), 4096 * DG_THROTTLE_ENTRY_BYTES);
	CU_ASSERT_EQUAL(DG_THROTTLE_ENTRY_BYTES, 32);
	CU_ASSERT_FATAL(dg_throttle_init(&t, &conf, 0) == 0);
	const struct dg_throttle_entry *table = t.table;
	/* 16 sources over their limit (few enough that no set of 4 is likely
	 * to hold all of them: then one would be forgotten, by design) */
	for (uint32_t i = 0; i < 16; i++) {
		ip4(&s4, 0x0a000000 + i);
		for (int k = 0; k < 3; k++)
			passed += dg_throttle_allow(&t, (struct sockaddr *)&s4, 5);
	}
	CU_ASSERT_EQUAL(passed, 32);
	/* 200,000 distinct sources, one datagram each: each is new, so passes */
	passed = 0;
	for (uint32_t i = 0; i < 200000; i++) {
		ip4(&s4, 0xc0000000 + i);
		passed += dg_throttle_allow(&t, (struct sockaddr *)&s4, 10 + i / 1000);
	}
	CU_ASSERT_EQUAL(passed, 200000);
	CU_ASSERT_PTR_EQUAL(t.table, table);
	/* the limited sources are still limited (a set keeps its emptiest) */
	passed = 0;
	for (uint32_t i = 0; i < 16; i++) {
		ip4(&s4, 0x0a000000 + i);
		passed += dg_throttle_allow(&t, (struct sockaddr *)&s4, 300);
	}
	CU_ASSERT_EQUAL(passed, 0);
	dg_throttle_release(&t);
}

#define LISTENER(extra) "{\"listeners\": [{\"name\": \"a\", \"bind\": \"127.0.0.1:0\", " \
	"\"handler\": \"echo\"" extra "}]}"
#define RL(json) LISTENER(", \"rate_limit\": " json)

static const struct {
	const char *text;
	const char *error; /* NULL: valid */
} conf_vectors[] = {
	{ RL("{\"per_source\": {\"rate\": 100, \"burst\": 200}}"), NULL },
	{ RL("{\"total\": {\"rate\": 0.5, \"burst\": 1}}"), NULL },
	{ RL("{\"per_source\": {\"rate\": 1, \"burst\": 1, \"ipv6_prefix\": 128, \"table_size\": 16},"
	     " \"total\": {\"rate\": 100000000, \"burst\": 1000000}}"), NULL },
	{ RL("{}"), "listeners[0].rate_limit: expected \"per_source\", \"total\" or both" },
	{ RL("[]"), "listeners[0].rate_limit: expected an object" },
	{ RL("{\"per_source\": {\"burst\": 2}}"), "listeners[0].rate_limit.per_source.rate: missing (required)" },
	{ RL("{\"per_source\": {\"rate\": 2}}"), "listeners[0].rate_limit.per_source.burst: missing (required)" },
	{ RL("{\"per_source\": {\"rate\": 0, \"burst\": 2}}"),
	  "listeners[0].rate_limit.per_source.rate: expected datagrams per second, from 0.001 to 100000000" },
	{ RL("{\"per_source\": {\"rate\": \"10\", \"burst\": 2}}"), "rate_limit.per_source.rate: expected datagrams per second" },
	{ RL("{\"total\": {\"rate\": 100000001, \"burst\": 2}}"), "rate_limit.total.rate: expected datagrams per second" },
	{ RL("{\"total\": {\"rate\": 1, \"burst\": 0}}"), "listeners[0].rate_limit.total.burst: expected an integer from 1 to 1000000" },
	{ RL("{\"total\": {\"rate\": 1, \"burst\": 1.5}}"), "rate_limit.total.burst: expected an integer" },
	{ RL("{\"total\": {\"rate\": 1, \"burst\": 1, \"table_size\": 16}}"),
	  "listeners[0].rate_limit.total.table_size: unknown key" },
	{ RL("{\"per_source\": {\"rate\": 1, \"burst\": 1, \"table_size\": 1000}}"),
	  "listeners[0].rate_limit.per_source.table_size: expected a power of two from 16 to 16777216" },
	{ RL("{\"per_source\": {\"rate\": 1, \"burst\": 1, \"table_size\": 8}}"), "table_size: expected a power of two" },
	{ RL("{\"per_source\": {\"rate\": 1, \"burst\": 1, \"ipv6_prefix\": 0}}"),
	  "listeners[0].rate_limit.per_source.ipv6_prefix: expected an integer from 1 to 128" },
	{ RL("{\"per_sorce\": {}}"), "listeners[0].rate_limit.per_sorce: unknown key (did you mean 'per_source'?)" },
};

static void test_conf(void)
{
	char err[1024];

	for (size_t i = 0; i < sizeof(conf_vectors) / sizeof(conf_vectors[0]); i++) {
		struct dg_config *cfg = NULL;
		err[0] = '\0';
		int rc = dg_config_parse(conf_vectors[i].text, strlen(conf_vectors[i].text), "t.json", "/etc",
		                         "/nonexistent", &cfg, err, sizeof(err));
		if (!conf_vectors[i].error) {
			if (rc)
				fprintf(stderr, "conf vector %zu: unexpected error: %s\n", i, err);
			CU_ASSERT_EQUAL(rc, 0);
		} else {
			if (!rc || !strstr(err, conf_vectors[i].error))
				fprintf(stderr, "conf vector %zu: want '%s', got '%s'\n", i, conf_vectors[i].error, err);
			CU_ASSERT_NOT_EQUAL(rc, 0);
			CU_ASSERT_PTR_NOT_NULL(strstr(err, conf_vectors[i].error));
		}
		dg_config_free(cfg);
	}
}

static void test_conf_values(void)
{
	static const char text[] = RL("{\"per_source\": {\"rate\": 0.25, \"burst\": 7, \"table_size\": 256},"
	                              " \"total\": {\"rate\": 1000, \"burst\": 50}}");
	static const char none[] = LISTENER("");
	struct dg_config *cfg;
	char err[256];

	CU_ASSERT_FATAL(dg_config_parse(text, strlen(text), "t.json", "/etc", "/nonexistent", &cfg,
	                                err, sizeof(err)) == 0);
	const struct dg_throttle_conf *rl = &cfg->listeners[0].rate_limit;
	CU_ASSERT_EQUAL(rl->per_source.rate_u, 250);
	CU_ASSERT_EQUAL(rl->per_source.burst, 7);
	CU_ASSERT_EQUAL(rl->table_size, 256);
	CU_ASSERT_EQUAL(rl->ipv6_prefix, 64);
	CU_ASSERT_EQUAL(rl->total.rate_u, 1000000);
	CU_ASSERT_EQUAL(rl->total.burst, 50);
	CU_ASSERT_TRUE(dg_throttle_conf_active(rl));
	CU_ASSERT_EQUAL(dg_throttle_table_bytes(rl), 256 * 32);
	dg_config_free(cfg);
	CU_ASSERT_FATAL(dg_config_parse(none, strlen(none), "t.json", "/etc", "/nonexistent", &cfg,
	                                err, sizeof(err)) == 0);
	CU_ASSERT_FALSE(dg_throttle_conf_active(&cfg->listeners[0].rate_limit));
	CU_ASSERT_EQUAL(cfg->listeners[0].rate_limit.table_size, DG_DEFAULT_THROTTLE_TABLE);
	dg_config_free(cfg);
}

static const struct dg_test tests[] = {
	{ "refill and burst", test_refill_burst },
	{ "what one source is", test_sources },
	{ "total", test_total },
	{ "spoofed flood: table bounded", test_flood_bounded },
	{ "config keys and errors", test_conf },
	{ "config values", test_conf_values },
	{ NULL, NULL },
};

DG_TEST_MAIN("throttle", tests)
