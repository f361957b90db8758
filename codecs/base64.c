/* "base64" transform, EasyNetwork's Base64EncoderSerializer byte for byte:
 * the frame is base64 (RFC 4648, padded) of data || checksum, where the
 * checksum is nothing, SHA-256(data) or HMAC-SHA256(key, data) (32 bytes).
 * The key file holds the 32-byte key url-safe base64 encoded, as
 * Base64EncoderSerializer.generate_key() writes it. Decoding is strict:
 * a character outside the alphabet, a missing or misplaced '=' is refused
 * (Python's decoder discards unknown characters). Digests are compared in
 * constant time. The key is never logged nor kept anywhere but the state. */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec-internal.h"
#include "sha256.h"

enum { CK_NONE, CK_SHA256, CK_HMAC };

struct b64 {
	bool urlsafe;
	unsigned checksum;
	unsigned char key[DG_SHA256_LEN];
	signed char rev[256]; /* -1: not in the alphabet */
	const char *alpha;
};

static const char *const b64_keys[] = { "alphabet", "checksum", "key_file", NULL };
static const char *const alphabets[] = { "urlsafe", "standard", NULL };
static const char *const checksums[] = { "none", "sha256", "hmac-sha256", NULL };
static const char std_alpha[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
static const char url_alpha[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static void set_alphabet(struct b64 *b, const char *alpha)
{
	b->alpha = alpha;
	memset(b->rev, -1, sizeof(b->rev));
	for (int i = 0; i < 64; i++)
		b->rev[(unsigned char)alpha[i]] = (signed char)i;
}

/* Decode text[0..len) (padded) with b's alphabet into out[0..cap). */
static int decode_text(const struct b64 *b, const unsigned char *in, size_t len,
                       unsigned char *out, size_t cap, size_t *outlen, const char **reason)
{
	size_t o = 0;

	if (len % 4) {
		*reason = "base64: length is not a multiple of 4";
		return DG_EINVAL;
	}
	if (len / 4 * 3 > cap + 2) {
		*reason = "base64: decoded frame too large";
		return DG_E2BIG;
	}
	for (size_t i = 0; i < len; i += 4) {
		unsigned pad = 0;
		int v[4];
		for (unsigned j = 0; j < 4; j++) {
			unsigned char ch = in[i + j];
			if (ch == '=' && i + 4 == len && j >= 2) {
				pad++;
				v[j] = 0;
				continue;
			}
			v[j] = b->rev[ch];
			if (v[j] < 0 || pad) {
				*reason = ch == '=' ? "base64: misplaced '=' padding"
				                    : "base64: character outside the alphabet";
				return DG_EINVAL;
			}
		}
		unsigned long w = (unsigned long)v[0] << 18 | (unsigned long)v[1] << 12 |
		                  (unsigned long)v[2] << 6 | (unsigned long)v[3];
		unsigned char three[3] = { (unsigned char)(w >> 16), (unsigned char)(w >> 8),
		                           (unsigned char)w };
		if (o + 3 - pad > cap) {
			*reason = "base64: decoded frame too large";
			return DG_E2BIG;
		}
		memcpy(out + o, three, 3 - pad);
		o += 3 - pad;
	}
	*outlen = o;
	return DG_OK;
}

static int read_key(struct b64 *b, const char *path, char *err, size_t errlen)
{
	unsigned char text[128], key[96];
	struct b64 dec;
	const char *why;
	size_t n, klen;
	FILE *f = fopen(path, "rb");

	if (!f) {
		snprintf(err, errlen, ".key_file: cannot open '%s': %s", path, strerror(errno));
		return DG_EINVAL;
	}
	n = fread(text, 1, sizeof(text), f);
	bool bad = ferror(f) != 0, big = !feof(f) || n == sizeof(text);
	fclose(f);
	if (bad) {
		snprintf(err, errlen, ".key_file: cannot read '%s'", path);
		return DG_EINVAL;
	}
	while (n && (text[n - 1] == '\n' || text[n - 1] == '\r' || text[n - 1] == ' '))
		n--;
	set_alphabet(&dec, url_alpha);
	if (big || decode_text(&dec, text, n, key, sizeof(key), &klen, &why) || klen != DG_SHA256_LEN) {
		snprintf(err, errlen, ".key_file: '%s' does not hold a 32-byte key, url-safe base64 "
		         "encoded (44 characters)", path);
		memset(key, 0, sizeof(key));
		memset(text, 0, sizeof(text));
		return DG_EINVAL;
	}
	memcpy(b->key, key, DG_SHA256_LEN);
	memset(key, 0, sizeof(key));
	memset(text, 0, sizeof(text));
	return DG_OK;
}

static int b64_create(const json_t *spec, size_t def_max_decoded, void **state, char *err,
                      size_t errlen)
{
	(void)def_max_decoded; /* base64 decodes to 3/4 of its input */
	unsigned alpha, ck;
	json_t *kf = spec ? json_object_get(spec, "key_file") : NULL;

	if (dg_opt_enum(spec, "alphabet", alphabets, 0, &alpha, err, errlen) ||
	    dg_opt_enum(spec, "checksum", checksums, CK_NONE, &ck, err, errlen))
		return DG_EINVAL;
	if (ck == CK_HMAC && !kf) {
		snprintf(err, errlen, ".key_file: required with \"checksum\": \"hmac-sha256\"");
		return DG_EINVAL;
	}
	if (ck != CK_HMAC && kf) {
		snprintf(err, errlen, ".key_file: only with \"checksum\": \"hmac-sha256\"");
		return DG_EINVAL;
	}
	if (kf && (!json_is_string(kf) || !*json_string_value(kf))) {
		snprintf(err, errlen, ".key_file: expected a file name");
		return DG_EINVAL;
	}
	struct b64 *b = calloc(1, sizeof(*b));
	if (!b) {
		snprintf(err, errlen, ": out of memory");
		return DG_ENOMEM;
	}
	b->urlsafe = alpha == 0;
	b->checksum = ck;
	set_alphabet(b, b->urlsafe ? url_alpha : std_alpha);
	if (kf && read_key(b, json_string_value(kf), err, errlen)) {
		free(b);
		return DG_EINVAL;
	}
	*state = b;
	return DG_OK;
}

static json_t *b64_describe(void *state, const json_t *spec)
{
	const struct b64 *b = state;
	json_t *kf = spec ? json_object_get(spec, "key_file") : NULL;

	if (kf)
		return json_pack("{sssssssO}", "name", "base64", "alphabet", alphabets[b->urlsafe ? 0 : 1],
		                 "checksum", checksums[b->checksum], "key_file", kf);
	return json_pack("{ssssss}", "name", "base64", "alphabet", alphabets[b->urlsafe ? 0 : 1],
	                 "checksum", checksums[b->checksum]);
}

static void b64_destroy(void *state)
{
	struct b64 *b = state;

	if (b)
		memset(b->key, 0, sizeof(b->key));
	free(b);
}

static void digest(const struct b64 *b, const unsigned char *data, size_t len,
                   unsigned char out[DG_SHA256_LEN])
{
	if (b->checksum == CK_HMAC)
		dg_hmac_sha256(b->key, sizeof(b->key), data, len, out);
	else
		dg_sha256(data, len, out);
}

static int b64_decode(void *state, const unsigned char *in, size_t len, unsigned char *out,
                      size_t cap, size_t *outlen, const char **reason)
{
	struct b64 *b = state;
	unsigned char want[DG_SHA256_LEN];
	size_t n;

	int rc = decode_text(b, in, len, out, cap, &n, reason);
	if (rc)
		return rc;
	if (b->checksum != CK_NONE) {
		if (n < DG_SHA256_LEN) {
			*reason = b->checksum == CK_HMAC ? "base64: too short for its hmac-sha256 signature"
			                                 : "base64: too short for its sha256 checksum";
			return DG_TRANSFORM_EMISMATCH;
		}
		n -= DG_SHA256_LEN;
		digest(b, out, n, want);
		if (!dg_digest_equal(want, out + n, DG_SHA256_LEN)) {
			*reason = b->checksum == CK_HMAC ? "base64: hmac-sha256 signature mismatch"
			                                 : "base64: sha256 checksum mismatch";
			return DG_TRANSFORM_EMISMATCH;
		}
	}
	*outlen = n;
	return DG_OK;
}

static int b64_encode(void *state, const unsigned char *in, size_t len, unsigned char *out,
                      size_t cap, size_t *outlen)
{
	struct b64 *b = state;
	unsigned char tail[DG_SHA256_LEN];
	size_t tlen = b->checksum == CK_NONE ? 0 : DG_SHA256_LEN, total = len + tlen, o = 0;

	if (total > (SIZE_MAX / 4) * 3 - 3 || (total + 2) / 3 * 4 > cap)
		return DG_E2BIG;
	if (tlen)
		digest(b, in, len, tail);
	for (size_t i = 0; i < total; i += 3) {
		unsigned char c[3] = { 0, 0, 0 };
		size_t k = total - i < 3 ? total - i : 3;
		for (size_t j = 0; j < k; j++)
			c[j] = i + j < len ? in[i + j] : tail[i + j - len];
		unsigned long w = (unsigned long)c[0] << 16 | (unsigned long)c[1] << 8 | c[2];
		out[o++] = (unsigned char)b->alpha[(w >> 18) & 63];
		out[o++] = (unsigned char)b->alpha[(w >> 12) & 63];
		out[o++] = k > 1 ? (unsigned char)b->alpha[(w >> 6) & 63] : '=';
		out[o++] = k > 2 ? (unsigned char)b->alpha[w & 63] : '=';
	}
	*outlen = o;
	return DG_OK;
}

static size_t b64_max_decoded(void *state)
{
	(void)state;
	return 0;
}

const struct dg_transform_ops dg_transform_base64 = {
	.name = "base64",
	.keys = b64_keys,
	.describe = b64_describe,
	.create = b64_create,
	.destroy = b64_destroy,
	.decode = b64_decode,
	.encode = b64_encode,
	.max_decoded = b64_max_decoded,
};
