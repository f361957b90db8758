/* libFuzzer harnesses for the codecs, one binary per FUZZ_TARGET:
 *   FUZZ_RAW, FUZZ_LP, FUZZ_JSON, FUZZ_LP_JSON, FUZZ_MSGPACK, FUZZ_CBOR,
 *   FUZZ_LINES, FUZZ_TRANSFORMS, FUZZ_CONFIG.
 * The first input byte picks one of the target's option sets; the rest is
 * the datagram. Properties checked (abort on violation):
 *   - decoding never crashes, leaks or reads out of bounds (ASan, UBSan);
 *   - a rejected datagram's error offset lies inside it;
 *   - decode -> encode -> decode -> encode is stable: the second encoding
 *     is byte-for-byte the first (when the first fits in 64 KiB).
 * tests/fuzz/replay.c runs the same function over a corpus in plain builds. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <dgramd/codec.h>

#include "conf.h"

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

#define LP(w, e) "{\"framing\": \"length-prefixed\", \"width\": " #w ", \"endian\": \"" e "\"}"
#define LPJ(w, extra) "{\"framing\": \"length-prefixed\", \"width\": " #w ", \"payload\": \"json\"" extra "}"

#if defined(FUZZ_RAW)
static const char *const specs[] = { "\"raw\"" };
#elif defined(FUZZ_LP)
static const char *const specs[] = {
	LP(1, "big"), LP(2, "big"), LP(4, "big"), LP(1, "little"), LP(2, "little"), LP(4, "little"),
	"{\"framing\": \"length-prefixed\", \"width\": 1, \"max_frame\": 4, \"max_frames\": 3}",
};
#elif defined(FUZZ_JSON)
static const char *const specs[] = {
	"\"json\"", "{\"payload\": \"json\", \"objects_only\": true}",
	"{\"payload\": \"json\", \"max_depth\": 3}", "{\"payload\": \"json\", \"allow_nul\": true}",
};
#elif defined(FUZZ_LP_JSON)
static const char *const specs[] = { LPJ(1, ""), LPJ(2, ""), LPJ(2, ", \"max_depth\": 2, \"max_frames\": 4") };
#elif defined(FUZZ_MSGPACK)
static const char *const specs[] = {
	"\"msgpack\"", "{\"payload\": \"msgpack\", \"objects_only\": true}",
	"{\"payload\": \"msgpack\", \"max_depth\": 3}", "{\"payload\": \"msgpack\", \"allow_nul\": true}",
	"{\"framing\": \"length-prefixed\", \"width\": 1, \"payload\": \"msgpack\", \"max_frames\": 4}",
};
#elif defined(FUZZ_CBOR)
static const char *const specs[] = {
	"\"cbor\"", "{\"payload\": \"cbor\", \"objects_only\": true}",
	"{\"payload\": \"cbor\", \"max_depth\": 3}", "{\"payload\": \"cbor\", \"allow_nul\": true}",
	"{\"framing\": \"length-prefixed\", \"width\": 1, \"payload\": \"cbor\", \"max_frames\": 4}",
};
#elif defined(FUZZ_LINES)
extern const struct dg_codec_module dgramd_codec; /* codecs/examples/lines.c, linked in */
static const char *const specs[] = {
	"{\"framing\": \"lines\"}", "{\"framing\": \"lines\", \"skip_empty\": false, \"max_lines\": 3}",
	"{\"framing\": \"lines\", \"payload\": \"json\", \"separator\": \";\"}",
};
#elif defined(FUZZ_TRANSFORMS)
static const char *const specs[] = {
	"{\"transforms\": [\"base64\"]}",
	"{\"payload\": \"json\", \"transforms\": [{\"name\": \"base64\", \"alphabet\": \"standard\", "
	"\"checksum\": \"sha256\"}]}",
	"{\"transforms\": [{\"name\": \"zlib\", \"max_decoded\": 1024}]}",
	"{\"transforms\": [{\"name\": \"bz2\", \"max_decoded\": 1024, \"level\": 1}]}",
	"{\"framing\": \"length-prefixed\", \"payload\": \"json\", \"transforms\": [\"base64\", "
	"{\"name\": \"zlib\", \"max_decoded\": 2048}]}",
};
#elif defined(FUZZ_CONFIG)
#else
#error "define FUZZ_TARGET"
#endif

#ifndef FUZZ_CONFIG
#define NSPECS (sizeof(specs) / sizeof(specs[0]))
static struct dg_codec *codecs[NSPECS];

static void setup(void)
{
	char err[256];

#ifdef FUZZ_LINES
	if (dg_codec_register(&dgramd_codec, err, sizeof(err)))
		fprintf(stderr, "lines: %s\n", err), abort();
#endif
	for (size_t i = 0; i < NSPECS; i++) {
		json_t *spec = json_loads(specs[i], JSON_DECODE_ANY, NULL);
		if (!spec || dg_codec_new(spec, &codecs[i], err, sizeof(err)))
			fprintf(stderr, "spec %s: %s\n", specs[i], err), abort();
		json_decref(spec);
	}
}

/* Decode a datagram and encode every packet into out; returns the number
 * of frames, or -1 if it does not decode, -2 if it does not re-encode. */
static int reencode(struct dg_codec *c, const unsigned char *d, size_t len, struct dg_outdgram *out)
{
	static struct dg_frame frames[DG_CODEC_MAX_FRAMES];
	struct dg_parse_error pe = { 0 };
	unsigned n;
	int rc = 0;

	if (dg_codec_split(c, d, len, frames, &n, &pe)) {
		if (pe.offset > len || !pe.reason)
			abort();
		return -1;
	}
	if (n > dg_codec_max_frames(c))
		abort();
	for (unsigned i = 0; i < n; i++) {
		struct dg_packet pkt;
		if (frames[i].data < d || frames[i].data + frames[i].len > d + len)
			abort();
		if (dg_codec_decode(c, frames[i].data, frames[i].len, &pkt, &pe)) {
			if (pe.offset > frames[i].len || !pe.reason)
				abort();
			return -1;
		}
		if (rc == 0 && dg_codec_append(c, &pkt, out))
			rc = -2;
		dg_codec_release(c, &pkt);
	}
	return rc ? rc : (int)n;
}
#endif

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
#ifdef FUZZ_CONFIG
	struct dg_config *cfg;
	char err[1024];

	/* Codec modules would dlopen paths from the input: not fuzzed here. */
	if (memmem(data, size, "codec_modules", 13))
		return 0;
	if (dg_config_parse((const char *)data, size, "fuzz.json", "/nonexistent", "/nonexistent",
	                    &cfg, err, sizeof(err)) == 0)
		dg_config_free(cfg);
	else if (strncmp(err, "fuzz.json: ", 11) != 0)
		abort(); /* every error names the file */
	return 0;
#else
	static unsigned char buf1[65536], buf2[65536];

	if (!codecs[0])
		setup();
	if (size == 0)
		return 0;
	struct dg_codec *c = codecs[data[0] % NSPECS];
	struct dg_outdgram o1 = { .buf = buf1, .cap = sizeof(buf1) };
	struct dg_outdgram o2 = { .buf = buf2, .cap = sizeof(buf2) };
	int n1 = reencode(c, data + 1, size - 1, &o1);
	if (n1 < 0)
		return 0;
	int n2 = reencode(c, buf1, o1.used, &o2);
	if (n2 != n1 || o2.used != o1.used || memcmp(buf1, buf2, o1.used) != 0) {
		fprintf(stderr, "round trip unstable: %d frames -> %d, %zu bytes -> %zu\n",
		        n1, n2, o1.used, o2.used);
		abort();
	}
	return 0;
#endif
}
