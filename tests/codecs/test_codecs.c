/* Codec vectors: every framing x payload combination, good and hostile. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include <jansson.h>
#include <dgramd/codec.h>

#include "loader.h"
#include "sha256.h"
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
		{ "\"msgpack\"", "raw+msgpack" }, { "\"cbor\"", "raw+cbor" },
		{ "{\"framing\": \"length-prefixed\", \"payload\": \"cbor\"}", "length-prefixed+cbor" },
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

/* msgpack and cbor: the tree each input decodes to (as JSON text) and the
 * bytes it encodes back to (NULL: the input itself), or the error. */
struct bvector {
	const char *spec;
	const char *input;
	size_t len;         /* input length (0: strlen) */
	const char *json;   /* expected tree, or NULL for an error */
	const char *reenc;  /* expected re-encoding (NULL: the input) */
	size_t reenc_len;   /* its length (0: strlen) */
	size_t offset;      /* error offset */
	const char *reason; /* substring of the error reason */
};

#define M "\"msgpack\""
#define MD3 "{\"payload\": \"msgpack\", \"max_depth\": 3}"
#define MOBJ "{\"payload\": \"msgpack\", \"objects_only\": true}"
#define MNUL "{\"payload\": \"msgpack\", \"allow_nul\": true}"
#define C "\"cbor\""
#define CD3 "{\"payload\": \"cbor\", \"max_depth\": 3}"
#define OK(s, in, n, j) { s, in, n, j, NULL, 0, 0, NULL }
#define RE(s, in, n, j, re, rn) { s, in, n, j, re, rn, 0, NULL }
#define BAD(s, in, n, off, why) { s, in, n, NULL, NULL, 0, off, why }
#define NEST33 "\x91\x91\x91\x91\x91\x91\x91\x91\x91\x91\x91\x91\x91\x91\x91\x91" \
               "\x91\x91\x91\x91\x91\x91\x91\x91\x91\x91\x91\x91\x91\x91\x91\x91\x90"

static const struct bvector bvectors[] = {
	OK(M, "\x80", 0, "{}"),
	OK(M, "\x81\xa1" "a\x01", 0, "{\"a\":1}"),
	OK(M, "\x82\xa1" "b\x93\x01\x02\x03\xa1" "a\xc0", 0, "{\"b\":[1,2,3],\"a\":null}"),
	OK(M, "\xc2", 0, "false"), OK(M, "\xc3", 0, "true"),
	OK(M, "\x7f", 0, "127"), OK(M, "\xcc\x80", 0, "128"), OK(M, "\xcd\x01\x00", 3, "256"),
	OK(M, "\xce\x00\x01\x00\x00", 5, "65536"),
	OK(M, "\xcf\x00\x00\x00\x01\x00\x00\x00\x00", 9, "4294967296"),
	OK(M, "\xff", 0, "-1"), OK(M, "\xe0", 0, "-32"), OK(M, "\xd0\xdf", 0, "-33"),
	OK(M, "\xd1\xff\x7f", 0, "-129"), OK(M, "\xd2\xff\xff\x7f\xff", 0, "-32769"),
	OK(M, "\xcf\x7f\xff\xff\xff\xff\xff\xff\xff", 0, "9223372036854775807"),
	OK(M, "\xd3\x80\x00\x00\x00\x00\x00\x00\x00", 9, "-9223372036854775808"),
	BAD(M, "\xcf\x80\x00\x00\x00\x00\x00\x00\x00", 9, 0, "above the int64 range"),
	RE(M, "\xcd\x00\x05", 3, "5", "\x05", 0),      /* not the shortest form: accepted */
	RE(M, "\xd0\x05", 0, "5", "\x05", 0),
	OK(M, "\xcb\x3f\xb9\x99\x99\x99\x99\x99\x9a", 0, "0.1"), /* float 64 kept bit-exact */
	OK(M, "\xcb\x80\x00\x00\x00\x00\x00\x00\x00", 9, "-0.0"),
	RE(M, "\xca\x3f\xc0\x00\x00", 5, "1.5", "\xcb\x3f\xf8\x00\x00\x00\x00\x00\x00", 9),
	BAD(M, "\xcb\x7f\xf8\x00\x00\x00\x00\x00\x00", 9, 0, "NaN or infinite"),
	BAD(M, "\xca\xff\x80\x00\x00", 5, 0, "NaN or infinite"),
	OK(M, "\xa3" "abc", 0, "\"abc\""), OK(M, "\xa0", 0, "\"\""),
	RE(M, "\xd9\x03" "abc", 0, "\"abc\"", "\xa3" "abc", 0),
	OK(M, "\xa4\xf0\x9f\x98\x80", 0, "\"\\ud83d\\ude00\""),
	BAD(M, "\xa2\xc3\x28", 0, 1, "invalid UTF-8"),
	BAD(M, "\xa2\xc0\x80", 0, 1, "invalid UTF-8"),        /* overlong NUL */
	BAD(M, "\xa3\xed\xa0\x80", 0, 1, "invalid UTF-8"),    /* a surrogate */
	BAD(M, "\xa4\xf4\x90\x80\x80", 0, 1, "invalid UTF-8"), /* above U+10FFFF */
	BAD(M, "\xa2" "a\xe2", 0, 2, "invalid UTF-8"),        /* cut sequence */
	BAD(M, "\xa1\x00", 2, 1, "NUL in a string"),
	OK(MNUL, "\xa1\x00", 2, "\"\\u0000\""),
	BAD(MNUL, "\x81\xa1\x00\x01", 4, 1, "NUL in a map key"),
	BAD(M, "\xc4\x01x", 0, 0, "bin (byte string)"),
	BAD(M, "\xd4\x01\x01", 0, 0, "ext types"),
	BAD(M, "\xc7\x01\x01x", 0, 0, "ext types"),
	BAD(M, "\xc1", 0, 0, "0xc1"),
	BAD(M, "\x81\x01\x02", 0, 1, "map key is not a string"),
	BAD(M, "\x81\x90\x02", 0, 1, "map key is not a string"),
	BAD(M, "\x82\xa1" "a\x01\xa1" "a\x02", 0, 4, "duplicate map key"),
	BAD(M, "\xc0\xc0", 0, 1, "trailing bytes"),
	BAD(M, "", 0, 0, "truncated"),
	BAD(M, "\x92\x01", 0, 0, "more elements than bytes"),
	BAD(M, "\x92\x01\xcd\x00", 4, 4, "ends inside a value"),
	BAD(M, "\x81\xa1" "a", 0, 3, "truncated"),
	BAD(M, "\xdd\xff\xff\xff\xff", 0, 0, "more elements than bytes"),
	BAD(M, "\xdf\xff\xff\xff\xff\x01", 0, 0, "more elements than bytes"),
	BAD(M, "\xdb\xff\xff\xff\xff" "abc", 0, 8, "runs past the end"),
	OK(MD3, "\x91\x91\x91\x01", 0, "[[[1]]]"),
	BAD(MD3, "\x91\x91\x91\x91\x01", 0, 3, "max_depth 3"),
	BAD(MD3, "\x81\xa1" "a\x81\xa1" "b\x91\x90", 0, 7, "max_depth 3"),
	BAD(M, NEST33, 0, 32, "max_depth 32"),
	OK(MOBJ, "\x80", 0, "{}"),
	BAD(MOBJ, "\x90", 0, 0, "objects_only"),

	OK(C, "\xa1\x61" "a\x01", 0, "{\"a\":1}"),
	OK(C, "\x83\x01\x02\x03", 0, "[1,2,3]"),
	RE(C, "\x9f\x01\x02\xff", 0, "[1,2]", "\x82\x01\x02", 0), /* indefinite lengths */
	RE(C, "\xbf\x61" "a\x9f\xff\xff", 0, "{\"a\":[]}", "\xa1\x61" "a\x80", 0),
	BAD(C, "\x9f\x01", 0, 2, "truncated"),                  /* no break */
	BAD(C, "\xbf\x61" "a\xff", 0, 3, "break outside"),       /* break in place of a value */
	OK(C, "\xf4", 0, "false"), OK(C, "\xf5", 0, "true"), OK(C, "\xf6", 0, "null"),
	BAD(C, "\xf7", 0, 0, "undefined"),
	BAD(C, "\xe0", 0, 0, "simple value"), BAD(C, "\xf8\x20", 0, 0, "simple value"),
	OK(C, "\x17", 0, "23"), OK(C, "\x18\x18", 0, "24"), OK(C, "\x19\x01\x00", 3, "256"),
	RE(C, "\x18\x05", 0, "5", "\x05", 0),
	OK(C, "\x20", 0, "-1"), OK(C, "\x38\x63", 0, "-100"),
	OK(C, "\x1b\x7f\xff\xff\xff\xff\xff\xff\xff", 0, "9223372036854775807"),
	OK(C, "\x3b\x7f\xff\xff\xff\xff\xff\xff\xff", 0, "-9223372036854775808"),
	BAD(C, "\x1b\x80\x00\x00\x00\x00\x00\x00\x00", 9, 0, "above the int64 range"),
	BAD(C, "\x3b\x80\x00\x00\x00\x00\x00\x00\x00", 9, 0, "below the int64 range"),
	BAD(C, "\x1f", 0, 0, "indefinite length on an integer"),
	RE(C, "\xf9\x3c\x00", 3, "1.0", "\xfb\x3f\xf0\x00\x00\x00\x00\x00\x00", 9), /* half */
	RE(C, "\xf9\x7b\xff", 0, "65504.0", "\xfb\x40\xef\xfc\x00\x00\x00\x00\x00", 9),
	RE(C, "\xf9\x00\x01", 3, "5.9604644775390625e-08", "\xfb\x3e\x70\x00\x00\x00\x00\x00\x00", 9),
	RE(C, "\xf9\xc4\x00", 3, "-4.0", "\xfb\xc0\x10\x00\x00\x00\x00\x00\x00", 9),
	BAD(C, "\xf9\x7c\x00", 3, 0, "NaN or infinite"),
	BAD(C, "\xf9\x7e\x00", 3, 0, "NaN or infinite"),
	RE(C, "\xfa\x47\xc3\x50\x00", 5, "100000.0", "\xfb\x40\xf8\x6a\x00\x00\x00\x00\x00", 9),
	OK(C, "\xfb\x3f\xb9\x99\x99\x99\x99\x99\x9a", 0, "0.1"),
	OK(C, "\x63" "abc", 0, "\"abc\""),
	BAD(C, "\x7f\x61" "a\xff", 0, 0, "indefinite-length text string"),
	BAD(C, "\x42" "ab", 0, 0, "byte string (major type 2)"),
	BAD(C, "\xc0\x61" "a", 0, 0, "tags (major type 6)"),
	BAD(C, "\xd9\xd9\xf7\xf6", 0, 0, "tags (major type 6)"),
	BAD(C, "\x1c", 0, 0, "reserved additional information"),
	BAD(C, "\xfc", 0, 0, "reserved additional information"),
	BAD(C, "\xff", 0, 0, "break outside"),
	BAD(C, "\xa1\x01\x02", 0, 1, "map key is not a string"),
	BAD(C, "\xa2\x61" "a\x01\x61" "a\x02", 0, 4, "duplicate map key"),
	BAD(C, "\xf6\xf6", 0, 1, "trailing bytes"),
	BAD(C, "\x62\xc3\x28", 0, 1, "invalid UTF-8"),
	BAD(C, "\x61\x00", 2, 1, "NUL in a string"),
	BAD(C, "\x9b\xff\xff\xff\xff\xff\xff\xff\xff", 0, 0, "more elements than bytes"),
	BAD(C, "\x7b\xff\xff\xff\xff\xff\xff\xff\xff", 0, 9, "runs past the end"),
	BAD(C, "\x19\x01", 0, 2, "ends inside a value"),
	OK(CD3, "\x81\x81\x81\x01", 0, "[[[1]]]"),
	BAD(CD3, "\x81\x81\x81\x81\x01", 0, 3, "max_depth 3"),
	BAD(CD3, "\x9f\x9f\x9f\x9f\xff\xff\xff\xff", 0, 3, "max_depth 3"),
};

static void check_bvector(size_t i, const struct bvector *v)
{
	struct dg_codec *c = codec(v->spec);
	size_t len = v->len ? v->len : strlen(v->input);
	struct dg_packet pkt;
	struct dg_parse_error pe = { 0 };
	unsigned char buf[256];
	struct dg_outdgram out = { .buf = buf, .cap = sizeof(buf) };

	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	int rc = dg_codec_decode(c, (const unsigned char *)v->input, len, &pkt, &pe);
	if (!v->json) {
		bool ok = rc == DG_EINVAL && pe.reason && strstr(pe.reason, v->reason) && pe.offset == v->offset;
		if (!ok)
			fprintf(stderr, "bvector %zu: expected '%s' at %zu, got rc %d '%s' at %zu\n", i,
			        v->reason, v->offset, rc, rc ? pe.reason : "", pe.offset);
		CU_ASSERT(ok);
		if (rc == 0)
			dg_codec_release(c, &pkt);
		dg_codec_free(c);
		return;
	}
	json_t *want = json_loads(v->json, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
	CU_ASSERT_PTR_NOT_NULL_FATAL(want);
	if (rc || !json_equal(pkt.json, want))
		fprintf(stderr, "bvector %zu: rc %d '%s', tree differs from %s\n", i, rc,
		        rc ? pe.reason : "", v->json);
	CU_ASSERT_EQUAL(rc, 0);
	if (rc == 0) {
		CU_ASSERT(json_equal(pkt.json, want));
		const char *re = v->reenc ? v->reenc : v->input;
		size_t relen = v->reenc ? (v->reenc_len ? v->reenc_len : strlen(v->reenc)) : len;
		CU_ASSERT_EQUAL(dg_codec_append(c, &pkt, &out), 0);
		if (out.used != relen || memcmp(buf, re, relen))
			fprintf(stderr, "bvector %zu: re-encoding differs (%zu bytes, want %zu)\n", i,
			        out.used, relen);
		CU_ASSERT(out.used == relen && memcmp(buf, re, relen) == 0);
		dg_codec_release(c, &pkt);
	}
	json_decref(want);
	dg_codec_free(c);
}

static void test_binary_vectors(void)
{
	for (size_t i = 0; i < sizeof(bvectors) / sizeof(bvectors[0]); i++)
		check_bvector(i, &bvectors[i]);
}

#define DEEP_TREE 3000 /* deeper than the encoders go (2048) */

/* The length heads at each boundary, a reply that does not fit, a bytes
 * packet passed through, and a tree too deep to encode. */
static void check_head(const char *spec, json_t *v, const char *head, size_t hlen)
{
	struct dg_codec *c = codec(spec);
	static unsigned char buf[300000];
	struct dg_outdgram out = { .buf = buf, .cap = sizeof(buf) };
	struct dg_packet pkt = { .json = v };

	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	CU_ASSERT_EQUAL(dg_codec_append(c, &pkt, &out), 0);
	if (out.used < hlen || memcmp(buf, head, hlen))
		fprintf(stderr, "%s: head %02x.. for %s of size %zu\n", spec, buf[0],
		        json_is_string(v) ? "string" : "array",
		        json_is_string(v) ? json_string_length(v) : json_array_size(v));
	CU_ASSERT(out.used >= hlen && memcmp(buf, head, hlen) == 0);
	/* the same packet one byte short of room */
	struct dg_outdgram small = { .buf = buf, .cap = out.used - 1 };
	CU_ASSERT_EQUAL(dg_codec_append(c, &pkt, &small), DG_E2BIG);
	dg_codec_free(c);
	json_decref(v);
}

static json_t *nulls(size_t n)
{
	json_t *a = json_array();
	for (size_t i = 0; i < n; i++)
		json_array_append_new(a, json_null());
	return a;
}

static json_t *str(size_t n)
{
	static char s[70000];
	memset(s, 'x', sizeof(s));
	return json_stringn(s, n);
}

static void test_binary_encode(void)
{
	check_head(M, nulls(15), "\x9f", 1);
	check_head(M, nulls(16), "\xdc\x00\x10", 3);
	check_head(M, nulls(65536), "\xdd\x00\x01\x00\x00", 5);
	check_head(M, str(31), "\xbf", 1);
	check_head(M, str(32), "\xd9\x20", 2);
	check_head(M, str(256), "\xda\x01\x00", 3);
	check_head(M, str(65536), "\xdb\x00\x01\x00\x00", 5);
	check_head(C, nulls(23), "\x97", 1);
	check_head(C, nulls(24), "\x98\x18", 2);
	check_head(C, nulls(65536), "\x9a\x00\x01\x00\x00", 5);
	check_head(C, str(255), "\x78\xff", 2);
	check_head(C, str(256), "\x79\x01\x00", 3);

	/* A plugin's bytes packet goes out as it is. */
	struct dg_codec *c = codec(C);
	unsigned char buf[64];
	struct dg_outdgram out = { .buf = buf, .cap = sizeof(buf) };
	struct dg_packet raw = { .data = "\xf6", .len = 1 };
	CU_ASSERT_EQUAL(dg_codec_append(c, &raw, &out), 0);
	CU_ASSERT(out.used == 1 && buf[0] == 0xf6);

	/* A tree deeper than the encoders go is refused, not recursed into. */
	json_t *deep = json_array(), *inner = deep;
	for (int i = 0; i < DEEP_TREE; i++) {
		json_t *a = json_array();
		json_array_append_new(inner, a);
		inner = a;
	}
	struct dg_packet dp = { .json = deep };
	static unsigned char big[8192];
	struct dg_outdgram o2 = { .buf = big, .cap = sizeof(big) };
	CU_ASSERT_EQUAL(dg_codec_append(c, &dp, &o2), DG_EINVAL);
	dg_codec_free(c);
	json_decref(deep);
}

static void hex(const unsigned char *d, size_t n, char *out)
{
	for (size_t i = 0; i < n; i++)
		sprintf(out + 2 * i, "%02x", d[i]);
}

/* FIPS 180-4 examples and RFC 4231 test cases 1, 2, 4, 6, 7. */
static void test_sha256(void)
{
	unsigned char d[DG_SHA256_LEN], key[131], data[50];
	char h[65];
	static char million[1000000];

	dg_sha256("abc", 3, d), hex(d, 32, h);
	CU_ASSERT_STRING_EQUAL(h, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	dg_sha256("", 0, d), hex(d, 32, h);
	CU_ASSERT_STRING_EQUAL(h, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
	static const char two[] = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
	dg_sha256(two, sizeof(two) - 1, d), hex(d, 32, h);
	CU_ASSERT_STRING_EQUAL(h, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
	memset(million, 'a', sizeof(million));
	dg_sha256(million, sizeof(million), d), hex(d, 32, h);
	CU_ASSERT_STRING_EQUAL(h, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");

	memset(key, 0x0b, 20);
	dg_hmac_sha256(key, 20, "Hi There", 8, d), hex(d, 32, h);
	CU_ASSERT_STRING_EQUAL(h, "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");
	dg_hmac_sha256("Jefe", 4, "what do ya want for nothing?", 28, d), hex(d, 32, h);
	CU_ASSERT_STRING_EQUAL(h, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
	for (unsigned i = 0; i < 25; i++)
		key[i] = (unsigned char)(i + 1);
	memset(data, 0xcd, sizeof(data));
	dg_hmac_sha256(key, 25, data, 50, d), hex(d, 32, h);
	CU_ASSERT_STRING_EQUAL(h, "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b");
	memset(key, 0xaa, sizeof(key));
	static const char big[] = "Test Using Larger Than Block-Size Key - Hash Key First";
	dg_hmac_sha256(key, 131, big, sizeof(big) - 1, d), hex(d, 32, h);
	CU_ASSERT_STRING_EQUAL(h, "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
	static const char big2[] = "This is a test using a larger than block-size key and a larger "
	                           "than block-size data. The key needs to be hashed before being "
	                           "used by the HMAC algorithm.";
	dg_hmac_sha256(key, 131, big2, sizeof(big2) - 1, d), hex(d, 32, h);
	CU_ASSERT_STRING_EQUAL(h, "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2");
	CU_ASSERT_TRUE(dg_digest_equal(d, d, 32));
	unsigned char e[32];
	memcpy(e, d, 32);
	e[31] ^= 1;
	CU_ASSERT_FALSE(dg_digest_equal(d, e, 32));
}

/* Decode one raw datagram with spec; 0 and the packet's bytes in out, or
 * the error and its reason. */
static int decode1(struct dg_codec *c, const void *in, size_t len, char *out, size_t cap,
                   const char **reason)
{
	struct dg_frame frames[DG_CODEC_MAX_FRAMES];
	struct dg_parse_error pe = { 0 };
	struct dg_packet pkt;
	unsigned n;
	int rc = dg_codec_split(c, in, len, frames, &n, &pe);

	if (!rc)
		rc = dg_codec_decode(c, frames[0].data, frames[0].len, &pkt, &pe);
	*reason = pe.reason;
	if (rc)
		return rc;
	if (pkt.json) {
		char *t = json_dumps(pkt.json, JSON_COMPACT | JSON_ENCODE_ANY);
		snprintf(out, cap, "%s", t);
		free(t);
	} else {
		snprintf(out, cap, "%.*s", (int)pkt.len, (const char *)pkt.data);
	}
	dg_codec_release(c, &pkt);
	return 0;
}

/* Encode a JSON text as one frame; the frame's bytes in buf. */
static size_t encode1(struct dg_codec *c, const char *json, unsigned char *buf, size_t cap)
{
	json_t *j = json_loads(json, JSON_DECODE_ANY, NULL);
	struct dg_packet pkt = { .json = j };
	struct dg_outdgram out = { .buf = buf, .cap = cap };
	int rc = dg_codec_append(c, &pkt, &out);

	json_decref(j);
	CU_ASSERT_EQUAL(rc, 0);
	return rc ? 0 : out.used;
}

static char keyfile[64];

static void make_keyfile(const char *text)
{
	snprintf(keyfile, sizeof(keyfile), "/tmp/dgtest-key-%ld", (long)getpid());
	FILE *f = fopen(keyfile, "w");
	CU_ASSERT_PTR_NOT_NULL_FATAL(f);
	fputs(text, f);
	fclose(f);
}

/* Python: base64.urlsafe_b64encode(d + hashlib.sha256(d).digest()) and
 * d + hmac.digest(key, d, "sha256") with key = bytes(range(32)). */
static void test_base64(void)
{
	static const char d[] = "{\"a\":[1,2]}";
	static const char sha[] = "eyJhIjpbMSwyXX0BUw0WTUec8I4m07Gtm9upJxINl-LQV6bXktt3h4DXIA==";
	static const char mac[] = "eyJhIjpbMSwyXX2GZLIGY7BbpdK96XjREieeocrKY2VBqsMlkWihreBRsQ==";
	unsigned char buf[256];
	char out[256], spec[256];
	const char *why;
	struct dg_codec *c;

	/* No checksum, both alphabets. */
	c = codec("{\"transforms\": [\"base64\"]}");
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	CU_ASSERT_STRING_EQUAL(dg_codec_name(c), "raw+base64+bytes");
	CU_ASSERT_EQUAL(decode1(c, "-__-", 4, out, sizeof(out), &why), 0);
	CU_ASSERT_EQUAL(memcmp(out, "\xfb\xff\xfe", 3), 0);
	CU_ASSERT_NOT_EQUAL(decode1(c, "+//+", 4, out, sizeof(out), &why), 0);
	CU_ASSERT_STRING_EQUAL(why, "base64: character outside the alphabet");
	CU_ASSERT_NOT_EQUAL(decode1(c, "YWJj\n", 5, out, sizeof(out), &why), 0);
	CU_ASSERT_NOT_EQUAL(decode1(c, "YQ=a", 4, out, sizeof(out), &why), 0);
	CU_ASSERT_NOT_EQUAL(decode1(c, "Y===", 4, out, sizeof(out), &why), 0);
	CU_ASSERT_NOT_EQUAL(decode1(c, "YQ==YQ==", 8, out, sizeof(out), &why), 0);
	CU_ASSERT_EQUAL(decode1(c, "", 0, out, sizeof(out), &why), 0);
	CU_ASSERT_STRING_EQUAL(out, "");
	dg_codec_free(c);
	c = codec("{\"transforms\": [{\"name\": \"base64\", \"alphabet\": \"standard\"}]}");
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	CU_ASSERT_EQUAL(decode1(c, "+//+", 4, out, sizeof(out), &why), 0);
	CU_ASSERT_NOT_EQUAL(decode1(c, "-__-", 4, out, sizeof(out), &why), 0);
	dg_codec_free(c);

	/* sha256: Python's bytes both ways; a flipped bit is refused. */
	c = codec("{\"payload\": \"json\", \"transforms\": [{\"name\": \"base64\", \"checksum\": \"sha256\"}]}");
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	CU_ASSERT_EQUAL(decode1(c, sha, strlen(sha), out, sizeof(out), &why), 0);
	CU_ASSERT_STRING_EQUAL(out, d);
	CU_ASSERT_EQUAL(encode1(c, d, buf, sizeof(buf)), strlen(sha));
	CU_ASSERT_EQUAL(memcmp(buf, sha, strlen(sha)), 0);
	char forged[sizeof(sha)];
	memcpy(forged, sha, sizeof(sha));
	forged[3] = 'K'; /* {"a... -> another byte, checksum unchanged */
	CU_ASSERT_NOT_EQUAL(decode1(c, forged, strlen(forged), out, sizeof(out), &why), 0);
	CU_ASSERT_STRING_EQUAL(why, "base64: sha256 checksum mismatch");
	CU_ASSERT_EQUAL(dg_codec_fault(c), DG_FAULT_INTEGRITY);
	CU_ASSERT_NOT_EQUAL(decode1(c, "eyJhIjpbMSwyXX0=", 16, out, sizeof(out), &why), 0);
	CU_ASSERT_STRING_EQUAL(why, "base64: too short for its sha256 checksum");
	CU_ASSERT_EQUAL(dg_codec_fault(c), DG_FAULT_INTEGRITY);
	CU_ASSERT_NOT_EQUAL(decode1(c, "ab*=", 4, out, sizeof(out), &why), 0);
	CU_ASSERT_EQUAL(dg_codec_fault(c), DG_FAULT_CORRUPT);
	CU_ASSERT_EQUAL(decode1(c, sha, strlen(sha), out, sizeof(out), &why), 0);
	CU_ASSERT_EQUAL(dg_codec_fault(c), DG_FAULT_NONE);
	dg_codec_free(c);

	/* hmac-sha256 with the key file EasyNetwork's generate_key() writes. */
	make_keyfile("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n");
	snprintf(spec, sizeof(spec), "{\"payload\": \"json\", \"transforms\": [{\"name\": \"base64\", "
	         "\"checksum\": \"hmac-sha256\", \"key_file\": \"%s\"}]}", keyfile);
	c = codec(spec);
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	CU_ASSERT_EQUAL(decode1(c, mac, strlen(mac), out, sizeof(out), &why), 0);
	CU_ASSERT_STRING_EQUAL(out, d);
	CU_ASSERT_EQUAL(encode1(c, d, buf, sizeof(buf)), strlen(mac));
	CU_ASSERT_EQUAL(memcmp(buf, mac, strlen(mac)), 0);
	/* The sha256 token is a forged signature for this codec. */
	CU_ASSERT_NOT_EQUAL(decode1(c, sha, strlen(sha), out, sizeof(out), &why), 0);
	CU_ASSERT_STRING_EQUAL(why, "base64: hmac-sha256 signature mismatch");
	CU_ASSERT_EQUAL(dg_codec_fault(c), DG_FAULT_INTEGRITY);
	dg_codec_free(c);
	/* A wrong key refuses the right signature. */
	make_keyfile("AQECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=");
	c = codec(spec);
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	CU_ASSERT_NOT_EQUAL(decode1(c, mac, strlen(mac), out, sizeof(out), &why), 0);
	CU_ASSERT_STRING_EQUAL(why, "base64: hmac-sha256 signature mismatch");
	dg_codec_free(c);
	unlink(keyfile);
}

static void test_transform_specs(void)
{
	static const char *const bad[][2] = {
		{ "{\"transforms\": \"zlib\"}", ".transforms: expected an array" },
		{ "{\"transforms\": [\"lzma\"]}", ".transforms[0]: unknown transform 'lzma'" },
		{ "{\"transforms\": [{\"level\": 3}]}", ".transforms[0].name: expected a transform name" },
		{ "{\"transforms\": [\"base64\", {\"name\": \"zlib\", \"level\": 10}]}",
		  ".transforms[1].level: expected an integer from 0 to 9" },
		{ "{\"transforms\": [{\"name\": \"zlib\", \"alphabet\": \"standard\"}]}",
		  ".transforms[0].alphabet: unknown key for transform 'zlib'" },
		{ "{\"transforms\": [{\"name\": \"bz2\", \"max_decoded\": 0}]}",
		  ".transforms[0].max_decoded: expected an integer from 1 to" },
		{ "{\"transforms\": [{\"name\": \"base64\", \"checksum\": \"md5\"}]}",
		  ".transforms[0].checksum: expected \"none\", \"sha256\" or \"hmac-sha256\"" },
		{ "{\"transforms\": [{\"name\": \"base64\", \"checksum\": \"hmac-sha256\"}]}",
		  ".transforms[0].key_file: required with \"checksum\": \"hmac-sha256\"" },
		{ "{\"transforms\": [{\"name\": \"base64\", \"checksum\": \"hmac-sha256\", \"key_file\": "
		  "\"/nonexistent/k\"}]}", ".transforms[0].key_file: cannot open '/nonexistent/k'" },
	};
	char err[256];
	struct dg_codec *c;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		json_t *spec = json_loads(bad[i][0], 0, NULL);
		err[0] = '\0';
		CU_ASSERT_NOT_EQUAL(dg_codec_new(spec, &c, err, sizeof(err)), 0);
		if (strncmp(err, bad[i][1], strlen(bad[i][1])))
			fprintf(stderr, "spec %s: got '%s', want '%s'\n", bad[i][0], err, bad[i][1]);
		CU_ASSERT_EQUAL(strncmp(err, bad[i][1], strlen(bad[i][1])), 0);
		json_decref(spec);
	}
	/* A key file that is not a 32-byte key: its content is never echoed. */
	make_keyfile("c2VjcmV0LXNob3J0LWtleQ==");
	char spec[256];
	snprintf(spec, sizeof(spec), "{\"transforms\": [{\"name\": \"base64\", \"checksum\": "
	         "\"hmac-sha256\", \"key_file\": \"%s\"}]}", keyfile);
	json_t *j = json_loads(spec, 0, NULL);
	CU_ASSERT_NOT_EQUAL(dg_codec_new(j, &c, err, sizeof(err)), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "does not hold a 32-byte key"));
	CU_ASSERT_PTR_NULL(strstr(err, "c2VjcmV0"));
	json_decref(j);
	unlink(keyfile);
}

/* The fault of decoding a well-formed stream (of the codec named by
 * prefix) whose payload is not JSON. */
static enum dg_codec_fault encode_bytes_then_decode_fault(struct dg_codec *c, const char *prefix)
{
	unsigned char buf[256];
	char out[64], spec[96];
	const char *why;

	/* "{bad" compressed by a bytes codec with the same transform. */
	snprintf(spec, sizeof(spec), "{\"payload\": \"bytes\", \"transforms\": [\"%s\"]}", prefix);
	struct dg_codec *b = codec(spec);
	if (!b)
		return DG_FAULT_NONE;
	struct dg_packet p = { .data = "{bad", .len = 4 };
	struct dg_outdgram o = { .buf = buf, .cap = sizeof(buf) };
	int rc = dg_codec_append(b, &p, &o);
	dg_codec_free(b);
	if (rc || decode1(c, buf, o.used, out, sizeof(out), &why) == 0)
		return DG_FAULT_NONE;
	return dg_codec_fault(c);
}

/* zlib and bz2: Python's bytes decode, replies are Python's bytes, a
 * truncated stream, trailing bytes and a bomb are refused. */
static void test_compress(void)
{
	static const char d[] = "{\"a\":[1,2]}";
	static const unsigned char zpy[] = "\x78\xda\xab\x56\x4a\x54\xb2\x8a\x36\xd4\x31\x8a\xad\x05\x00"
	                                   "\x12\x4b\x03\x1f";
	static const unsigned char bpy[] =
		"\x42\x5a\x68\x39\x31\x41\x59\x26\x53\x59\xd5\x42\xd9\x70\x00\x00\x04\x9b\x80\x10"
		"\x04\x30\x10\x00\x0a\x20\x00\x00\x0a\x20\x00\x31\x00\x30\x20\x1a\x7a\x81\xb6\x24"
		"\x13\xdd\xe2\xee\x48\xa7\x0a\x12\x1a\xa8\x5b\x2e\x00";
	static const struct {
		const char *spec;
		const unsigned char *py;
		size_t len;
		const char *prefix;
	} kinds[] = {
		{ "{\"payload\": \"json\", \"transforms\": [\"zlib\"]}", zpy, sizeof(zpy) - 1, "zlib" },
		{ "{\"payload\": \"json\", \"transforms\": [\"bz2\"]}", bpy, sizeof(bpy) - 1, "bz2" },
	};
	unsigned char buf[256], tmp[300];
	char out[256], want[64];
	const char *why;

	for (size_t k = 0; k < 2; k++) {
		struct dg_codec *c = codec(kinds[k].spec);
		CU_ASSERT_PTR_NOT_NULL_FATAL(c);
		CU_ASSERT_EQUAL(decode1(c, kinds[k].py, kinds[k].len, out, sizeof(out), &why), 0);
		CU_ASSERT_STRING_EQUAL(out, d);
		CU_ASSERT_EQUAL(encode1(c, d, buf, sizeof(buf)), kinds[k].len);
		CU_ASSERT_EQUAL(memcmp(buf, kinds[k].py, kinds[k].len), 0);
		/* Truncated. */
		CU_ASSERT_NOT_EQUAL(decode1(c, kinds[k].py, kinds[k].len - 3, out, sizeof(out), &why), 0);
		snprintf(want, sizeof(want), "%s: truncated stream", kinds[k].prefix);
		CU_ASSERT_STRING_EQUAL(why, want);
		CU_ASSERT_EQUAL(dg_codec_fault(c), DG_FAULT_CORRUPT);
		/* Trailing bytes. */
		memcpy(tmp, kinds[k].py, kinds[k].len);
		tmp[kinds[k].len] = 'x';
		CU_ASSERT_NOT_EQUAL(decode1(c, tmp, kinds[k].len + 1, out, sizeof(out), &why), 0);
		snprintf(want, sizeof(want), "%s: trailing bytes after the stream", kinds[k].prefix);
		CU_ASSERT_STRING_EQUAL(why, want);
		/* Corrupt. */
		memcpy(tmp, kinds[k].py, kinds[k].len);
		tmp[kinds[k].len / 2] ^= 0x55;
		CU_ASSERT_NOT_EQUAL(decode1(c, tmp, kinds[k].len, out, sizeof(out), &why), 0);
		CU_ASSERT_EQUAL(dg_codec_fault(c), DG_FAULT_CORRUPT);
		/* A good stream of bad JSON is the payload's error (on_error's). */
		CU_ASSERT_EQUAL(encode_bytes_then_decode_fault(c, kinds[k].prefix), DG_FAULT_PAYLOAD);
		dg_codec_free(c);
	}
}

/* A bomb: 16 MiB of zeros compress to a few KB; decoding stops at
 * max_decoded and is refused. */
static void test_bomb(void)
{
	size_t big = 16u << 20;
	unsigned char *zeros = calloc(1, big);
	uLongf zlen = compressBound(big);
	unsigned char *z = malloc(zlen);
	const char *why;
	char out[64];

	CU_ASSERT_PTR_NOT_NULL_FATAL(zeros);
	CU_ASSERT_PTR_NOT_NULL_FATAL(z);
	CU_ASSERT_EQUAL_FATAL(compress2(z, &zlen, zeros, big, 9), Z_OK);
	CU_ASSERT_TRUE(zlen < 65507);
	struct dg_codec *c = codec("{\"transforms\": [{\"name\": \"zlib\", \"max_decoded\": 1000}]}");
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	CU_ASSERT_NOT_EQUAL(decode1(c, z, zlen, out, sizeof(out), &why), 0);
	CU_ASSERT_STRING_EQUAL(why, "zlib: decoded size over max_decoded");
	CU_ASSERT_EQUAL(dg_codec_fault(c), DG_FAULT_SIZE);
	dg_codec_free(c);
	/* The default sized from max_datagram: 16 x 1000 bytes. */
	json_t *spec = json_loads("{\"transforms\": [\"zlib\"]}", 0, NULL);
	char err[128];
	CU_ASSERT_PTR_NOT_NULL_FATAL(spec);
	CU_ASSERT_EQUAL_FATAL(dg_codec_new_sized(spec, 1000, &c, err, sizeof(err)), 0);
	uLongf fl = compressBound(16001);
	unsigned char *f = malloc(fl);
	CU_ASSERT_PTR_NOT_NULL_FATAL(f);
	for (size_t want = 16000; want <= 16001; want++) {
		uLongf n = fl;
		CU_ASSERT_EQUAL_FATAL(compress2(f, &n, zeros, want, 9), Z_OK);
		struct dg_packet pk;
		struct dg_parse_error pe = { 0 };
		int rc = dg_codec_decode(c, f, n, &pk, &pe);
		CU_ASSERT_EQUAL(rc, want == 16000 ? 0 : DG_EINVAL);
		CU_ASSERT_EQUAL(dg_codec_fault(c), want == 16000 ? DG_FAULT_NONE : DG_FAULT_SIZE);
		if (!rc) {
			CU_ASSERT_EQUAL(pk.len, 16000);
			dg_codec_release(c, &pk);
		}
	}
	free(f);
	dg_codec_free(c);
	/* The largest datagram: 16 x 65507 bytes, and the 16 MiB bomb is one. */
	CU_ASSERT_EQUAL_FATAL(dg_codec_new_sized(spec, 65507, &c, err, sizeof(err)), 0);
	CU_ASSERT_NOT_EQUAL(decode1(c, z, zlen, out, sizeof(out), &why), 0);
	CU_ASSERT_EQUAL(dg_codec_fault(c), DG_FAULT_SIZE);
	dg_codec_free(c);
	/* Capped at 16 MiB: the 16 MiB of NULs fit exactly. */
	CU_ASSERT_EQUAL_FATAL(dg_codec_new_sized(spec, 4u << 20, &c, err, sizeof(err)), 0);
	CU_ASSERT_EQUAL(decode1(c, z, zlen, out, sizeof(out), &why), 0);
	CU_ASSERT_EQUAL(dg_codec_fault(c), DG_FAULT_NONE);
	dg_codec_free(c);
	json_decref(spec);
	/* The default bound, through base64 first. */
	c = codec("{\"transforms\": [\"zlib\"]}");
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	CU_ASSERT_NOT_EQUAL(decode1(c, z, zlen, out, sizeof(out), &why), 0);
	CU_ASSERT_STRING_EQUAL(why, "zlib: decoded size over max_decoded");
	dg_codec_free(c);
	free(z);
	free(zeros);
}

/* Transforms apply to every frame of a length-prefixed datagram. */
static void test_transform_frames(void)
{
	struct dg_codec *c = codec("{\"framing\": \"length-prefixed\", \"payload\": \"json\", "
	                           "\"transforms\": [\"base64\", {\"name\": \"zlib\", \"level\": 1}]}");
	unsigned char buf[512];
	struct dg_outdgram out = { .buf = buf, .cap = sizeof(buf) };
	struct dg_frame frames[DG_CODEC_MAX_FRAMES];
	struct dg_parse_error pe;
	unsigned n;

	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	CU_ASSERT_STRING_EQUAL(dg_codec_name(c), "length-prefixed+base64+zlib+json");
	for (int i = 0; i < 3; i++) {
		json_t *j = json_pack("{s:i,s:s}", "i", i, "s", "hello hello hello hello");
		struct dg_packet p = { .json = j };
		CU_ASSERT_EQUAL(dg_codec_append(c, &p, &out), 0);
		json_decref(j);
	}
	CU_ASSERT_EQUAL_FATAL(dg_codec_split(c, buf, out.used, frames, &n, &pe), 0);
	CU_ASSERT_EQUAL_FATAL(n, 3);
	struct dg_packet pk[3];
	for (unsigned i = 0; i < n; i++) /* all decoded before any is released */
		CU_ASSERT_EQUAL_FATAL(dg_codec_decode(c, frames[i].data, frames[i].len, &pk[i], &pe), 0);
	for (unsigned i = 0; i < n; i++) {
		CU_ASSERT_EQUAL(json_integer_value(json_object_get(pk[i].json, "i")), (json_int_t)i);
		dg_codec_release(c, &pk[i]);
	}
	dg_codec_free(c);
}

static const struct dg_test codec_tests[] = {
	{ "sha256 and hmac vectors", test_sha256 },
	{ "base64 transform", test_base64 },
	{ "transform specs", test_transform_specs },
	{ "zlib and bz2 transforms", test_compress },
	{ "decompression bomb", test_bomb },
	{ "transforms per frame", test_transform_frames },
	{ "lines module", test_lines_module },
	{ "vectors", test_vectors },
	{ "short forms", test_short_forms },
	{ "append coalesces", test_append_coalesce },
	{ "append limits", test_append_limits },
	{ "json round trip", test_json_roundtrip },
	{ "msgpack and cbor vectors", test_binary_vectors },
	{ "msgpack and cbor encoding", test_binary_encode },
	{ "module checks", test_register },
	{ NULL, NULL },
};

DG_TEST_MAIN("codecs", codec_tests)
