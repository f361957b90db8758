/* Access control: CIDR parsing, prefix sets, precedence, and the "allow" /
 * "deny" config keys with their error messages. */
#include "config.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "acl.h"
#include "conf.h"
#include "testutil.h"

/* text -> canonical form, or NULL and a substring of the error. */
static const struct {
	const char *text;
	const char *canon;
	const char *error;
} cidr_vectors[] = {
	{ "10.0.0.0/8", "10.0.0.0/8", NULL },
	{ "192.0.2.1", "192.0.2.1/32", NULL },
	{ "0.0.0.0/0", "0.0.0.0/0", NULL },
	{ "::1", "::1/128", NULL },
	{ "2001:db8::/32", "2001:db8::/32", NULL },
	{ "::/0", "::/0", NULL },
	{ "::ffff:10.0.0.0/104", "10.0.0.0/8", NULL },  /* IPv4-mapped: the IPv4 prefix */
	{ "::ffff:192.0.2.7", "192.0.2.7/32", NULL },
	{ "::ffff:0:0/96", "0.0.0.0/0", NULL },
	{ "fe80::/10", "fe80::/10", NULL },
	{ "x", NULL, "expected a numeric IPv4 or IPv6 address" },
	{ "", NULL, "expected an address" },
	{ "/8", NULL, "expected an address" },
	{ "10.0.0.0/", NULL, "prefix length from 0 to 32" },
	{ "10.0.0.0/33", NULL, "prefix length from 0 to 32" },
	{ "10.0.0.0/-1", NULL, "prefix length from 0 to 32" },
	{ "10.0.0.0/+8", NULL, "prefix length from 0 to 32" },
	{ "10.0.0.0/08", NULL, "prefix length from 0 to 32" },
	{ "10.0.0.0/8x", NULL, "prefix length from 0 to 32" },
	{ "10.0.0.0/8/8", NULL, "prefix length from 0 to 32" },
	{ "10.0.0.0 /8", NULL, "expected a numeric" },
	{ "2001:db8::/129", NULL, "prefix length from 0 to 128" },
	{ "10.0.0.1/8", NULL, "bits set past the prefix length (did you mean '10.0.0.0/8'?)" },
	{ "2001:db8::1/32", NULL, "did you mean '2001:db8::/32'?" },
	{ "10.0.0", NULL, "expected a numeric" },
	{ "256.0.0.0/8", NULL, "expected a numeric" },
	{ "[::1]", NULL, "expected a numeric" },
	{ "example.com", NULL, "expected a numeric" },
	{ "1:2:3:4:5:6:7:8:9", NULL, "expected a numeric" },
};

static void test_cidr_parse(void)
{
	char err[256], buf[64];
	struct dg_cidr c;

	for (size_t i = 0; i < sizeof(cidr_vectors) / sizeof(cidr_vectors[0]); i++) {
		err[0] = '\0';
		int rc = dg_cidr_parse(cidr_vectors[i].text, &c, err, sizeof(err));
		if (cidr_vectors[i].canon) {
			if (rc)
				fprintf(stderr, "cidr '%s': unexpected error: %s\n", cidr_vectors[i].text, err);
			CU_ASSERT_EQUAL(rc, 0);
			if (!rc)
				CU_ASSERT_STRING_EQUAL(dg_cidr_format(&c, buf, sizeof(buf)), cidr_vectors[i].canon);
		} else {
			if (!rc || !strstr(err, cidr_vectors[i].error))
				fprintf(stderr, "cidr '%s': want error '%s', got rc %d '%s'\n",
				        cidr_vectors[i].text, cidr_vectors[i].error, rc, err);
			CU_ASSERT_NOT_EQUAL(rc, 0);
			CU_ASSERT_PTR_NOT_NULL(strstr(err, cidr_vectors[i].error));
		}
	}
}

static struct sockaddr_storage addr(const char *text)
{
	struct sockaddr_storage ss;

	memset(&ss, 0, sizeof(ss));
	if (strchr(text, ':')) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
		s6->sin6_family = AF_INET6;
		CU_ASSERT_FATAL(inet_pton(AF_INET6, text, &s6->sin6_addr) == 1);
	} else {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
		s4->sin_family = AF_INET;
		s4->sin_port = htons(53);
		CU_ASSERT_FATAL(inet_pton(AF_INET, text, &s4->sin_addr) == 1);
	}
	return ss;
}

static void fill(struct dg_ipset *set, const char *const *cidrs)
{
	char err[128];
	struct dg_cidr c;

	for (; *cidrs; cidrs++) {
		CU_ASSERT_FATAL(dg_cidr_parse(*cidrs, &c, err, sizeof(err)) == 0);
		CU_ASSERT_FATAL(dg_ipset_add(set, &c) == 0);
	}
}

/* Overlapping, nested, adjacent and edge-of-space prefixes, merged. */
static void test_ipset(void)
{
	static const char *const cidrs[] = {
		"10.0.0.0/8", "10.1.0.0/16", "11.0.0.0/8", "192.0.2.0/25", "192.0.2.128/25",
		"255.255.255.255", "0.0.0.0/32", "203.0.113.7", "2001:db8::/32", "2001:db8:1::/48",
		"::1", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/128", "fe80::/64", NULL,
	};
	static const struct {
		const char *a;
		bool in;
	} probes[] = {
		{ "10.0.0.0", true }, { "10.255.255.255", true }, { "11.200.0.1", true },
		{ "12.0.0.0", false }, { "9.255.255.255", false }, { "192.0.2.0", true },
		{ "192.0.2.255", true }, { "192.0.3.0", false }, { "192.0.1.255", false },
		{ "255.255.255.255", true }, { "255.255.255.254", false }, { "0.0.0.0", true },
		{ "0.0.0.1", false }, { "203.0.113.7", true }, { "203.0.113.8", false },
		{ "::ffff:10.2.3.4", true },  /* IPv4-mapped source, IPv4 rule */
		{ "::ffff:12.0.0.1", false }, { "2001:db8::1", true }, { "2001:db8:ffff::1", true },
		{ "2001:db9::", false }, { "2001:db7:ffff:ffff:ffff:ffff:ffff:ffff", false },
		{ "::1", true }, { "::2", false }, { "::", false },
		{ "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", true }, { "fe80::1", true },
		{ "fe80:0:0:1::1", false },
	};
	struct dg_ipset set = { 0 };

	fill(&set, cidrs);
	dg_ipset_build(&set);
	/* 0.0.0.0, 10-11 (10.1/16 folded in), 192.0.2/24, 203.0.113.7, 255.255.255.255 */
	CU_ASSERT_EQUAL(set.n4, 5);
	for (size_t i = 0; i < sizeof(probes) / sizeof(probes[0]); i++) {
		struct sockaddr_storage ss = addr(probes[i].a);
		bool in = dg_ipset_contains(&set, (struct sockaddr *)&ss);
		if (in != probes[i].in)
			fprintf(stderr, "ipset: %s: want %d\n", probes[i].a, probes[i].in);
		CU_ASSERT_EQUAL(in, probes[i].in);
	}
	dg_ipset_release(&set);
	struct sockaddr_storage ss = addr("10.0.0.1");
	CU_ASSERT_FALSE(dg_ipset_contains(&set, (struct sockaddr *)&ss));
}

/* A large set against a linear scan of the same prefixes. */
static void test_ipset_random(void)
{
	struct dg_ipset set = { 0 };
	uint32_t first[300], last[300];
	unsigned seed = 12345;

	for (int i = 0; i < 300; i++) {
		seed = seed * 1103515245 + 12345;
		unsigned bits = 8 + seed % 25;
		seed = seed * 1103515245 + 12345;
		uint32_t a = (seed ^ (seed << 13)) & (bits == 32 ? ~0u : ~(~0u >> bits));
		struct dg_cidr c = { .family = AF_INET, .bits = bits };
		uint32_t be = htonl(a);
		memcpy(c.addr, &be, 4);
		CU_ASSERT_FATAL(dg_ipset_add(&set, &c) == 0);
		first[i] = a;
		last[i] = a | (bits == 32 ? 0 : ~0u >> bits);
	}
	dg_ipset_build(&set);
	for (int p = 0; p < 20000; p++) {
		seed = seed * 1103515245 + 12345;
		uint32_t a = p % 2 ? seed : first[p % 300] + (seed % 3) - 1;
		bool want = false;
		for (int i = 0; i < 300; i++)
			want |= a >= first[i] && a <= last[i];
		struct sockaddr_in s4 = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(a) };
		CU_ASSERT_EQUAL(dg_ipset_contains(&set, (struct sockaddr *)&s4), want);
	}
	dg_ipset_release(&set);
}

/* deny wins; a non-empty allow admits only its sources; no rule admits all. */
static void test_precedence(void)
{
	static const char *const allow[] = { "10.0.0.0/8", "::1", NULL };
	static const char *const deny[] = { "10.9.0.0/16", "192.0.2.0/24", NULL };
	static const struct {
		bool use_allow, use_deny;
		const char *a;
		bool pass;
	} cases[] = {
		{ false, false, "203.0.113.1", true },
		{ false, false, "2001:db8::1", true },
		{ true, false, "10.1.2.3", true },
		{ true, false, "11.1.2.3", false },
		{ true, false, "::1", true },
		{ true, false, "::2", false },
		{ true, false, "::ffff:10.1.2.3", true },
		{ false, true, "10.9.1.1", false },
		{ false, true, "10.8.1.1", true },
		{ false, true, "::ffff:192.0.2.9", false },
		{ false, true, "2001:db8::1", true },
		{ true, true, "10.9.1.1", false },  /* in both: deny wins */
		{ true, true, "10.8.1.1", true },
		{ true, true, "192.0.2.1", false },
		{ true, true, "203.0.113.1", false },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct dg_acl acl = { 0 };
		if (cases[i].use_allow)
			fill(&acl.allow, allow);
		if (cases[i].use_deny)
			fill(&acl.deny, deny);
		dg_acl_build(&acl);
		CU_ASSERT_EQUAL(acl.active, cases[i].use_allow || cases[i].use_deny);
		struct sockaddr_storage ss = addr(cases[i].a);
		bool pass = dg_acl_allows(&acl, (struct sockaddr *)&ss);
		if (pass != cases[i].pass)
			fprintf(stderr, "precedence case %zu (%s): want %d\n", i, cases[i].a, cases[i].pass);
		CU_ASSERT_EQUAL(pass, cases[i].pass);
		dg_acl_release(&acl);
	}
	struct dg_acl none = { 0 };
	struct sockaddr other = { .sa_family = AF_UNIX };
	CU_ASSERT_TRUE(dg_acl_allows(&none, &other));
}

#define LISTENER(extra) "{\"listeners\": [{\"name\": \"a\", \"bind\": \"127.0.0.1:0\", " \
	"\"handler\": \"echo\"" extra "}, {\"name\": \"b\", \"bind\": \"127.0.0.1:0\", \"handler\": \"echo\"}]}"

static const struct {
	const char *text;
	const char *error; /* NULL: valid */
} conf_vectors[] = {
	{ LISTENER(", \"allow\": [\"10.0.0.0/8\", \"::1\"], \"deny\": [\"10.1.0.0/16\"]"), NULL },
	{ LISTENER(", \"deny\": [\"::ffff:10.0.0.0/104\"]"), NULL },
	{ LISTENER(", \"allow\": [\"10.0.0.0/8\", \"::1\", \"x\"]"),
	  "t.json: listeners[0].allow[2]: 'x' is not a CIDR: expected a numeric IPv4 or IPv6 address" },
	{ LISTENER(", \"deny\": [\"10.0.0.1/8\"]"),
	  "listeners[0].deny[0]: '10.0.0.1/8' is not a CIDR: bits set past the prefix length (did you mean '10.0.0.0/8'?)" },
	{ LISTENER(", \"deny\": [\"10.0.0.0/40\"]"),
	  "listeners[0].deny[0]: '10.0.0.0/40' is not a CIDR: expected a prefix length from 0 to 32" },
	{ LISTENER(", \"allow\": [8]"), "listeners[0].allow[0]: expected a CIDR string" },
	{ LISTENER(", \"allow\": []"), "listeners[0].allow: expected a non-empty array of CIDRs" },
	{ LISTENER(", \"allow\": \"10.0.0.0/8\""), "listeners[0].allow: expected a non-empty array of CIDRs" },
	{ LISTENER(", \"alow\": [\"10.0.0.0/8\"]"), "listeners[0].alow: unknown key (did you mean 'allow'?)" },
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

/* The parsed lists reach the listener, built; the other listener has none. */
static void test_conf_values(void)
{
	static const char text[] = LISTENER(", \"allow\": [\"10.0.0.0/8\", \"::1\"], \"deny\": [\"10.1.0.0/16\"]");
	struct dg_config *cfg;
	char err[256];

	CU_ASSERT_FATAL(dg_config_parse(text, strlen(text), "t.json", "/etc", "/nonexistent", &cfg,
	                                err, sizeof(err)) == 0);
	const struct dg_acl *acl = &cfg->listeners[0].acl;
	CU_ASSERT_TRUE(acl->active);
	CU_ASSERT_FALSE(cfg->listeners[1].acl.active);
	struct sockaddr_storage in = addr("10.2.0.1"), denied = addr("10.1.0.1"), out = addr("11.0.0.1"),
	                        lo6 = addr("::1");
	CU_ASSERT_TRUE(dg_acl_allows(acl, (struct sockaddr *)&in));
	CU_ASSERT_FALSE(dg_acl_allows(acl, (struct sockaddr *)&denied));
	CU_ASSERT_FALSE(dg_acl_allows(acl, (struct sockaddr *)&out));
	CU_ASSERT_TRUE(dg_acl_allows(acl, (struct sockaddr *)&lo6));
	CU_ASSERT_TRUE(dg_acl_allows(&cfg->listeners[1].acl, (struct sockaddr *)&out));
	dg_config_free(cfg);
}

static const struct dg_test tests[] = {
	{ "cidr parse", test_cidr_parse },
	{ "prefix set", test_ipset },
	{ "prefix set against a linear scan", test_ipset_random },
	{ "precedence", test_precedence },
	{ "config keys and errors", test_conf },
	{ "config values", test_conf_values },
	{ NULL, NULL },
};

DG_TEST_MAIN("acl", tests)
