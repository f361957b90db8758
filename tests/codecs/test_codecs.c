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

static const struct dg_test codec_tests[] = {
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
