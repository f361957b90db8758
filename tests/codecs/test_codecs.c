/* Codec vectors: every framing x payload combination, good and hostile. */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <dgramd/codec.h>

#include "loader.h"
#include "testutil.h"

struct vector {
	const char *spec;   /* JSON codec spec */
	const char *input;  /* datagram bytes (C escapes) */
	size_t len;         /* input length (0: strlen) */
	int frames;         /* frames delivered, or -1 for a parse error */
	size_t offset;      /* error offset in the datagram */
	const char *reason; /* substring of the error reason */
};

#define LP1 "{\"framing\": \"length-prefixed\", \"width\": 1}"
#define LP2 "{\"framing\": \"length-prefixed\"}"
#define LP2LE "{\"framing\": \"length-prefixed\", \"endian\": \"little\"}"
#define LP4 "{\"framing\": \"length-prefixed\", \"width\": 4}"
#define LP2J "{\"framing\": \"length-prefixed\", \"payload\": \"json\"}"
#define LPMAX "{\"framing\": \"length-prefixed\", \"width\": 1, \"max_frame\": 3, \"max_frames\": 2}"
#define J "\"json\""
#define JOBJ "{\"payload\": \"json\", \"objects_only\": true}"
#define JD3 "{\"payload\": \"json\", \"max_depth\": 3}"
#define JNUL "{\"payload\": \"json\", \"allow_nul\": true}"

static const struct vector vectors[] = {
	/* raw + bytes: anything is one frame, even empty */
	{ "\"raw\"", "hello", 0, 1, 0, NULL },
	{ "\"raw\"", "", 0, 1, 0, NULL },
	{ "\"raw\"", "\0\xff\x01", 3, 1, 0, NULL },
	/* raw + json */
	{ J, "{\"a\":1}", 0, 1, 0, NULL },
	{ J, "[1,2,3]", 0, 1, 0, NULL },
	{ J, "42", 0, 1, 0, NULL },
	{ J, "", 0, -1, 0, "" },
	{ J, "{\"a\":", 0, -1, 5, "" },
	{ J, "{\"a\":1} x", 0, -1, 9, "end of file expected" },
	{ J, "{\"a\":1}{}", 0, -1, 8, "end of file expected" },
	{ J, "\"\xc3\x28\"", 0, -1, 1, "unable to decode byte 0xc3" }, /* invalid UTF-8 */
	{ J, "\"\xff\"", 0, -1, 1, "unable to decode byte 0xff" },
	{ J, "{\"a\":\"x\0y\"}", 11, -1, 7, "control character 0x0" },
	{ J, "\"\\u0000\"", 0, -1, 8, "is not allowed" },
	{ JNUL, "\"\\u0000\"", 0, 1, 0, NULL },
	{ J, "{\"a\":1,\"a\":2}", 0, -1, 10, "duplicate object key" },
	{ J, "99999999999999999999", 0, -1, 20, "too big integer" },
	{ J, "1e999", 0, -1, 5, "real number overflow" },
	{ J, "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[", 0, -1, 32, "max_depth" },
	{ JD3, "[[[1]]]", 0, 1, 0, NULL },
	{ JD3, "[[[[1]]]]", 0, -1, 3, "max_depth 3" },
	{ JD3, "[\"[[[[[[\"]", 0, 1, 0, NULL },  /* brackets in strings do not nest */
	{ JD3, "[\"\\\"[[[[\"]", 0, 1, 0, NULL }, /* nor after an escaped quote */
	{ JD3, "[[1],[2],{\"a\":[3]},[[4]]]", 0, 1, 0, NULL }, /* 7 brackets, depth 3 */
	{ JD3, "[[1],[2],[[[3]]]]", 0, -1, 11, "max_depth 3" }, /* the 4th level, not bracket */
	{ JOBJ, "{}", 0, 1, 0, NULL },
	{ JOBJ, "[]", 0, -1, 0, "objects_only" },
	{ JOBJ, "\"s\"", 0, -1, 0, "objects_only" },
	/* length-prefixed, width 2 big-endian (the default) */
	{ LP2, "\0\3abc", 5, 1, 0, NULL },
	{ LP2, "\0\3abc\0\0\0\1z", 10, 3, 0, NULL },
	{ LP2, "\0\0", 2, 1, 0, NULL }, /* a zero-length frame */
	{ LP2, "", 0, -1, 0, "empty datagram" },
	{ LP2, "\0", 1, -1, 0, "truncated length" },
	{ LP2, "\0\3ab", 4, -1, 0, "runs past the end" },
	{ LP2, "\0\1a\0", 4, -1, 3, "truncated length" },   /* trailing byte */
	{ LP2, "\0\1a\0\5xy", 7, -1, 3, "runs past the end" },
	{ LP2LE, "\3\0abc", 5, 1, 0, NULL },
	{ LP2LE, "\0\3abc", 5, -1, 0, "runs past the end" },
	/* width 1 and 4 */
	{ LP1, "\3abc\1d", 6, 2, 0, NULL },
	{ LP1, "\4abc", 4, -1, 0, "runs past the end" },
	{ LP4, "\0\0\0\2hi", 6, 1, 0, NULL },
	{ LP4, "\0\0\2hi", 5, -1, 0, "runs past the end" }, /* 0x00000268 */
	{ LP4, "\0\0\0", 3, -1, 0, "truncated length: 3 of 4" },
	{ LP4, "\xff\xff\xff\xff", 4, -1, 0, "over max_frame" },
	/* limits */
	{ LPMAX, "\3abc\3def", 8, 2, 0, NULL },
	{ LPMAX, "\4abcd", 5, -1, 0, "over max_frame 3" },
	{ LPMAX, "\1a\1b\1c", 6, -1, 4, "more than 2 frames" },
	/* length-prefixed + json: a bad third frame rejects the whole datagram */
	{ LP2J, "\0\2{}\0\2[]\0\0011", 11, 3, 0, NULL },
	{ LP2J, "\0\2{}\0\2[]\0\1{", 11, -1, 11, "expected near end of file" },
	{ LP2J, "\0\2{}\0\0", 6, -1, 6, "" }, /* an empty frame is not JSON */
};

static void check_vector(size_t i, const struct vector *v)
{
	json_error_t je;
	json_t *spec = json_loads(v->spec, JSON_DECODE_ANY, &je);
	struct dg_codec *c;
	struct dg_frame frames[DG_CODEC_MAX_FRAMES];
	struct dg_packet pkts[DG_CODEC_MAX_FRAMES];
	struct dg_parse_error pe = { 0 };
	char err[256];
	unsigned n = 0, f;
	int rc;
	size_t len = v->len ? v->len : strlen(v->input);

	CU_ASSERT_PTR_NOT_NULL_FATAL(spec);
	CU_ASSERT_EQUAL_FATAL(dg_codec_new(spec, &c, err, sizeof(err)), 0);
	rc = dg_codec_split(c, (const unsigned char *)v->input, len, frames, &n, &pe);
	for (f = 0; rc == 0 && f < n; f++) {
		rc = dg_codec_decode(c, frames[f].data, frames[f].len, &pkts[f], &pe);
		if (rc) {
			pe.offset += (size_t)(frames[f].data - (const unsigned char *)v->input);
			while (f--)
				dg_codec_release(c, &pkts[f]);
		}
	}
	if (v->frames >= 0) {
		if (rc)
			fprintf(stderr, "vector %zu: unexpected error '%s' at %zu\n", i, pe.reason, pe.offset);
		CU_ASSERT_EQUAL(rc, 0);
		CU_ASSERT_EQUAL(n, (unsigned)v->frames);
		for (f = 0; rc == 0 && f < n; f++)
			dg_codec_release(c, &pkts[f]);
	} else {
		bool reason_ok = rc && pe.reason && strstr(pe.reason, v->reason);
		if (!rc || !reason_ok || pe.offset != v->offset)
			fprintf(stderr, "vector %zu: expected error '%s' at %zu, got rc %d '%s' at %zu\n", i,
			        v->reason, v->offset, rc, rc ? pe.reason : "", pe.offset);
		CU_ASSERT_EQUAL(rc, DG_EINVAL);
		CU_ASSERT(reason_ok);
		if (v->reason[0] || v->offset)
			CU_ASSERT_EQUAL(pe.offset, v->offset);
	}
	dg_codec_free(c);
	json_decref(spec);
}

static void test_vectors(void)
{
	for (size_t i = 0; i < sizeof(vectors) / sizeof(vectors[0]); i++)
		check_vector(i, &vectors[i]);
}

static struct dg_codec *codec(const char *spec_text)
{
	json_t *spec = json_loads(spec_text, JSON_DECODE_ANY, NULL);
	struct dg_codec *c = NULL;
	char err[256];

	if (dg_codec_new(spec, &c, err, sizeof(err)))
		fprintf(stderr, "codec %s: %s\n", spec_text, err);
	json_decref(spec);
	return c;
}

static void test_short_forms(void)
{
	static const char *const v[][2] = {
		{ "\"json\"", "raw+json" }, { "\"raw\"", "raw+bytes" }, { "\"bytes\"", "raw+bytes" },
		{ "\"length-prefixed\"", "length-prefixed+bytes" }, { LP2J, "length-prefixed+json" },
		{ "{}", "raw+bytes" }, { "{\"payload\": \"json\"}", "raw+json" },
	};
	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		struct dg_codec *c = codec(v[i][0]);
		CU_ASSERT_PTR_NOT_NULL_FATAL(c);
		CU_ASSERT_STRING_EQUAL(dg_codec_name(c), v[i][1]);
		dg_codec_free(c);
	}
}

/* Replies: frames are coalesced until the datagram is full. */
static void test_append_coalesce(void)
{
	struct dg_codec *c = codec(LP2);
	unsigned char buf[16];
	struct dg_outdgram out = { .buf = buf, .cap = sizeof(buf) };
	struct dg_packet p = { .data = "abcd", .len = 4 };

	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	CU_ASSERT_EQUAL(dg_codec_append(c, &p, &out), 0);
	CU_ASSERT_EQUAL(dg_codec_append(c, &p, &out), 0);
	CU_ASSERT_EQUAL(out.used, 12);
	CU_ASSERT_EQUAL(out.frames, 2);
	CU_ASSERT_EQUAL(memcmp(buf, "\0\4abcd\0\4abcd", 12), 0);
	CU_ASSERT_EQUAL(dg_codec_append(c, &p, &out), DG_E2BIG); /* 6 more do not fit in 4 */
	CU_ASSERT_EQUAL(out.used, 12);
	struct dg_packet small = { .data = "x", .len = 1 };
	CU_ASSERT_EQUAL(dg_codec_append(c, &small, &out), 0);
	CU_ASSERT_EQUAL(out.used, 15);
	dg_codec_free(c);
}

static void test_append_limits(void)
{
	struct dg_codec *raw = codec("\"raw\""), *lp1 = codec(LP1), *lpmax = codec(LPMAX);
	unsigned char buf[600];
	char big[300];
	struct dg_outdgram out = { .buf = buf, .cap = sizeof(buf) };
	struct dg_packet p = { .data = "ab", .len = 2 };

	memset(big, 'x', sizeof(big));
	CU_ASSERT_EQUAL(dg_codec_append(raw, &p, &out), 0);
	CU_ASSERT_EQUAL(dg_codec_append(raw, &p, &out), DG_E2BIG); /* raw: one frame per datagram */
	out.used = 0, out.frames = 0;
	struct dg_packet b = { .data = big, .len = 256 };
	CU_ASSERT_EQUAL(dg_codec_append(lp1, &b, &out), DG_E2BIG); /* 256 > width 1 */
	b.len = 255;
	CU_ASSERT_EQUAL(dg_codec_append(lp1, &b, &out), 0);
	out.used = 0, out.frames = 0;
	CU_ASSERT_EQUAL(dg_codec_append(lpmax, &p, &out), 0);
	CU_ASSERT_EQUAL(dg_codec_append(lpmax, &p, &out), 0);
	CU_ASSERT_EQUAL(dg_codec_append(lpmax, &p, &out), DG_E2BIG); /* max_frames 2 */
	out.used = 0, out.frames = 0;
	b.len = 4;
	CU_ASSERT_EQUAL(dg_codec_append(lpmax, &b, &out), DG_E2BIG); /* max_frame 3 */
	out.used = 0, out.frames = 0, out.cap = 1;
	CU_ASSERT_EQUAL(dg_codec_append(raw, &p, &out), DG_E2BIG); /* the buffer */
	dg_codec_free(raw);
	dg_codec_free(lp1);
	dg_codec_free(lpmax);
}

static void test_json_roundtrip(void)
{
	struct dg_codec *c = codec(LP2J);
	static const char in[] = "\0\x0d{\"a\": [1, 2]}\0\x03\"x\"";
	struct dg_frame frames[DG_CODEC_MAX_FRAMES];
	struct dg_packet pkt;
	struct dg_parse_error pe;
	unsigned char buf[64];
	struct dg_outdgram out = { .buf = buf, .cap = sizeof(buf) };
	unsigned n;

	CU_ASSERT_EQUAL_FATAL(dg_codec_split(c, (const unsigned char *)in, sizeof(in) - 1, frames, &n, &pe), 0);
	CU_ASSERT_EQUAL_FATAL(n, 2);
	for (unsigned i = 0; i < n; i++) {
		CU_ASSERT_EQUAL_FATAL(dg_codec_decode(c, frames[i].data, frames[i].len, &pkt, &pe), 0);
		CU_ASSERT_EQUAL(dg_codec_append(c, &pkt, &out), 0);
		dg_codec_release(c, &pkt);
	}
	/* Replies are compact. */
	CU_ASSERT_EQUAL(out.used, 2 + 11 + 2 + 3);
	CU_ASSERT_EQUAL(memcmp(buf, "\0\x0b{\"a\":[1,2]}\0\x03\"x\"", out.used), 0);
	dg_codec_free(c);
}

static void test_register(void)
{
	static const struct dg_codec_module bad_magic = { .magic = 1, .abi_major = 1, .size = sizeof(bad_magic) };
	static const struct dg_codec_module bad_abi = { .magic = DG_CODEC_MAGIC, .abi_major = 2, .size = sizeof(bad_abi) };
	static const struct dg_codec_module empty = { DG_CODEC_MODULE_INIT };
	char err[256];

	CU_ASSERT_EQUAL(dg_codec_register(&bad_magic, err, sizeof(err)), DG_EINVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "bad magic"));
	CU_ASSERT_EQUAL(dg_codec_register(&bad_abi, err, sizeof(err)), DG_EINVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "codec ABI 2.0"));
	CU_ASSERT_EQUAL(dg_codec_register(&empty, err, sizeof(err)), DG_EINVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "neither"));
}

/* The example module, loaded as dgramd loads it. */
static void test_lines_module(void)
{
	struct dg_loader ld = { 0 };
	char path[4096], err[512];
	static const char in[] = "a:1|c\n\nb:2|g\n";
	struct dg_frame frames[DG_CODEC_MAX_FRAMES];
	struct dg_parse_error pe;
	unsigned n;

	snprintf(path, sizeof(path), "%s/plugins/.libs/lines.so", dg_test_builddir());
	CU_ASSERT_EQUAL_FATAL(dg_loader_load_codec(&ld, path, err, sizeof(err)), 0);
	/* Registered once: a second load of the same name is refused. */
	CU_ASSERT_NOT_EQUAL(dg_loader_load_codec(&ld, path, err, sizeof(err)), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "framing 'lines' is already registered"));

	struct dg_codec *c = codec("{\"framing\": \"lines\", \"max_lines\": 2}");
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	CU_ASSERT_STRING_EQUAL(dg_codec_name(c), "lines+bytes");
	CU_ASSERT_EQUAL(dg_codec_split(c, (const unsigned char *)in, sizeof(in) - 1, frames, &n, &pe), 0);
	CU_ASSERT_EQUAL(n, 2);
	CU_ASSERT_EQUAL(frames[1].len, 5);
	CU_ASSERT_EQUAL(memcmp(frames[1].data, "b:2|g", 5), 0);
	CU_ASSERT_EQUAL(dg_codec_split(c, (const unsigned char *)"x\ny\nz", 5, frames, &n, &pe), DG_EINVAL);
	CU_ASSERT_STRING_EQUAL(pe.reason, "more than 2 lines");
	CU_ASSERT_EQUAL(pe.offset, 4);
	CU_ASSERT_EQUAL(dg_codec_split(c, (const unsigned char *)"\n\n", 2, frames, &n, &pe), DG_EINVAL);
	unsigned char buf[16];
	struct dg_outdgram out = { .buf = buf, .cap = sizeof(buf) };
	struct dg_packet p = { .data = "ab", .len = 2 }, bad = { .data = "a\nb", .len = 3 };
	CU_ASSERT_EQUAL(dg_codec_append(c, &p, &out), 0);
	CU_ASSERT_EQUAL(dg_codec_append(c, &bad, &out), DG_EINVAL);
	CU_ASSERT_EQUAL(out.used, 3);
	CU_ASSERT_EQUAL(memcmp(buf, "ab\n", 3), 0);
	dg_codec_free(c);
	struct dg_codec *bad_opt = NULL;
	json_t *spec = json_loads("{\"framing\": \"lines\", \"separator\": \"ab\"}", 0, NULL);
	CU_ASSERT_NOT_EQUAL(dg_codec_new(spec, &bad_opt, err, sizeof(err)), 0);
	CU_ASSERT_STRING_EQUAL(err, ".separator: expected a one-character string");
	json_decref(spec);
	dg_loader_release(&ld);
	CU_ASSERT_PTR_NULL(codec("{\"framing\": \"lines\"}")); /* forgotten on release */
}

static const struct dg_test codec_tests[] = {
	{ "lines module", test_lines_module },
	{ "vectors", test_vectors },
	{ "short forms", test_short_forms },
	{ "append coalesces", test_append_coalesce },
	{ "append limits", test_append_limits },
	{ "json round trip", test_json_roundtrip },
	{ "module checks", test_register },
	{ NULL, NULL },
};

DG_TEST_MAIN("codecs", codec_tests)
