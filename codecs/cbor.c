/* "cbor" payload (RFC 8949): one CBOR data item per frame, decoded into the
 * jansson tree a JSON payload gives, and a tree encoded back.
 *
 * Mapping (doc/dgramd.conf.5 "msgpack and cbor payloads"): unsigned and
 * negative integers in int64 range, floats of every width (half, single,
 * double; NaN and infinities refused), text strings (UTF-8 checked, NUL
 * refused unless allow_nul), arrays and maps with text keys, definite or
 * indefinite length, false, true, null. Refused: integers outside int64,
 * byte strings (major type 2), indefinite-length text strings, tags (major
 * type 6), undefined and the other simple values, non-string and duplicate
 * keys, reserved additional information 28..30, a stray break, nesting
 * deeper than max_depth, trailing bytes, a non-map top level with
 * objects_only. Replies use the shortest head for integers and lengths
 * (RFC 8949 preferred serialization), definite lengths, and a double for
 * every real, as cbor2 does by default. */
#include "config.h"

#include <math.h> /* NAN, INFINITY */
#include <string.h>

#include "codec-internal.h"
#include "bintree.h"

#define CBOR_BREAK 0xff

static json_t *cb_value(struct dg_bt_in *in);

/* The argument of a head with additional information ai: ai itself or the
 * 1, 2, 4 or 8 bytes after it (0 for ai 31, indefinite: the caller checks). */
static bool cb_arg(struct dg_bt_in *in, size_t at, unsigned ai, uint64_t *v)
{
	if (ai < 24) {
		*v = ai;
		return true;
	}
	if (ai <= 27)
		return dg_bt_uint(in, 1u << (ai - 24), v);
	if (ai == 31) {
		*v = 0;
		return true;
	}
	dg_bt_fail(in, at, "reserved additional information 28..30");
	return false;
}

/* Is the next byte a break ending an indefinite-length container? */
static bool cb_break(struct dg_bt_in *in)
{
	if (in->off < in->len && in->p[in->off] == CBOR_BREAK) {
		in->off++;
		return true;
	}
	return false;
}

/* Any more elements? n counts down a definite length; an indefinite one
 * ends at a break (a missing break is reported by cb_value as truncated). */
static bool cb_more(struct dg_bt_in *in, uint64_t *n, bool indef)
{
	if (indef)
		return !cb_break(in);
	return (*n)-- > 0;
}

static json_t *cb_array(struct dg_bt_in *in, size_t at, uint64_t n, bool indef)
{
	if (!dg_bt_enter(in, at, indef ? 1 : n))
		return NULL;
	json_t *a = json_array();
	if (!a)
		return dg_bt_fail(in, at, "out of memory");
	while (cb_more(in, &n, indef)) {
		json_t *v = cb_value(in);
		if (!v || json_array_append_new(a, v)) {
			json_decref(a);
			return dg_bt_fail(in, at, "out of memory");
		}
	}
	in->depth--;
	return a;
}

static json_t *cb_map(struct dg_bt_in *in, size_t at, uint64_t n, bool indef)
{
	if (!dg_bt_enter(in, at, indef ? 1 : n))
		return NULL;
	json_t *m = json_object();
	if (!m)
		return dg_bt_fail(in, at, "out of memory");
	while (cb_more(in, &n, indef)) {
		size_t kat = in->off;
		json_t *k = cb_value(in);
		json_t *v = k ? cb_value(in) : NULL;
		if (!v || !dg_bt_put(in, m, kat, k, v)) {
			if (!v)
				json_decref(k);
			json_decref(m);
			return NULL;
		}
	}
	in->depth--;
	return m;
}

/* IEEE 754 half precision (RFC 8949 appendix D), exactly: a subnormal is
 * m * 2^-24, a normal number is rebuilt as a double's bits. */
static double cb_half(unsigned h)
{
	unsigned e = (h >> 10) & 0x1f, m = h & 0x3ff;
	double d;

	if (e == 0) {
		d = m / 16777216.0;
	} else if (e == 31) {
		d = m ? NAN : INFINITY;
	} else {
		uint64_t u = (uint64_t)(e - 15 + 1023) << 52 | (uint64_t)m << 42;
		memcpy(&d, &u, sizeof(d));
	}
	return h & 0x8000 ? -d : d;
}

static json_t *cb_simple(struct dg_bt_in *in, size_t at, unsigned ai)
{
	uint64_t u;

	switch (ai) {
	case 20: return json_false();
	case 21: return json_true();
	case 22: return json_null();
	case 25:
		return dg_bt_uint(in, 2, &u) ? dg_bt_real(in, at, cb_half((unsigned)u)) : NULL;
	case 26: {
		if (!dg_bt_uint(in, 4, &u))
			return NULL;
		uint32_t u32 = (uint32_t)u;
		float f;
		memcpy(&f, &u32, sizeof(f));
		return dg_bt_real(in, at, f);
	}
	case 27: {
		if (!dg_bt_uint(in, 8, &u))
			return NULL;
		double d;
		memcpy(&d, &u, sizeof(d));
		return dg_bt_real(in, at, d);
	}
	case 31: return dg_bt_fail(in, at, "break outside an indefinite-length item");
	case 23: return dg_bt_fail(in, at, "undefined is not supported");
	default:
		if (ai >= 28 && ai <= 30)
			return dg_bt_fail(in, at, "reserved additional information 28..30");
		return dg_bt_fail(in, at, "simple value is not supported");
	}
}

static json_t *cb_value(struct dg_bt_in *in)
{
	size_t at = in->off;
	uint64_t n;

	if (in->off >= in->len)
		return dg_bt_fail(in, in->len, "truncated: the frame ends before a value");
	unsigned b = in->p[in->off++], major = b >> 5, ai = b & 0x1f;
	if (major == 7)
		return cb_simple(in, at, ai);
	if (!cb_arg(in, at, ai, &n))
		return NULL;
	bool indef = ai == 31;
	switch (major) {
	case 0:
	case 1:
		if (indef)
			return dg_bt_fail(in, at, "indefinite length on an integer");
		return dg_bt_int(in, at, n, major == 1);
	case 2:
		return dg_bt_fail(in, at, "byte string (major type 2) is not supported");
	case 3:
		if (indef)
			return dg_bt_fail(in, at, "indefinite-length text string is not supported");
		return dg_bt_string(in, n);
	case 4:
		return cb_array(in, at, n, indef);
	case 5:
		return cb_map(in, at, n, indef);
	default:
		return dg_bt_fail(in, at, "tags (major type 6) are not supported");
	}
}

static int cb_decode(void *state, const unsigned char *frame, size_t len,
                     struct dg_packet *pkt, struct dg_parse_error *perr)
{
	struct dg_bt_in in = { .p = frame, .len = len, .bt = state };

	return dg_bt_finish(&in, cb_value(&in), pkt, perr);
}

/* The shortest head for major type major and argument v. */
static void cb_head(struct dg_bt_out *o, unsigned major, uint64_t v)
{
	unsigned t = major << 5;

	if (v < 24)
		dg_bt_put_be(o, t | (unsigned)v, 0, 0);
	else if (v <= 0xff)
		dg_bt_put_be(o, t | 24, v, 1);
	else if (v <= 0xffff)
		dg_bt_put_be(o, t | 25, v, 2);
	else if (v <= 0xffffffffu)
		dg_bt_put_be(o, t | 26, v, 4);
	else
		dg_bt_put_be(o, t | 27, v, 8);
}

static bool cb_enc(struct dg_bt_out *o, const json_t *v, unsigned depth)
{
	if (depth > DG_BT_MAX_ENCODE_DEPTH)
		return false;
	switch (json_typeof(v)) {
	case JSON_OBJECT: {
		const char *k;
		json_t *x;
		cb_head(o, 5, json_object_size(v));
		json_object_foreach((json_t *)v, k, x) {
			size_t kl = strlen(k);
			cb_head(o, 3, kl);
			dg_bt_put_bytes(o, k, kl);
			if (!cb_enc(o, x, depth + 1))
				return false;
		}
		return true;
	}
	case JSON_ARRAY:
		cb_head(o, 4, json_array_size(v));
		for (size_t i = 0; i < json_array_size(v); i++)
			if (!cb_enc(o, json_array_get(v, i), depth + 1))
				return false;
		return true;
	case JSON_STRING:
		cb_head(o, 3, json_string_length(v));
		dg_bt_put_bytes(o, json_string_value(v), json_string_length(v));
		return true;
	case JSON_INTEGER: {
		json_int_t i = json_integer_value(v);
		if (i >= 0)
			cb_head(o, 0, (uint64_t)i);
		else
			cb_head(o, 1, (uint64_t)(-1 - i));
		return true;
	}
	case JSON_REAL: {
		double d = json_real_value(v);
		uint64_t u;
		memcpy(&u, &d, sizeof(u));
		dg_bt_put_be(o, 0xfb, u, 8);
		return true;
	}
	case JSON_TRUE: dg_bt_put_be(o, 0xf5, 0, 0); return true;
	case JSON_FALSE: dg_bt_put_be(o, 0xf4, 0, 0); return true;
	case JSON_NULL: dg_bt_put_be(o, 0xf6, 0, 0); return true;
	}
	return false;
}

static int cb_encode(void *state, const struct dg_packet *pkt,
                     unsigned char *buf, size_t cap, size_t *len)
{
	(void)state;
	return dg_bt_encode(pkt, cb_enc, buf, cap, len);
}

const struct dg_payload_ops dg_payload_cbor = {
	.size = sizeof(struct dg_payload_ops),
	.name = "cbor",
	.keys = dg_bt_keys,
	.create = dg_bt_create,
	.destroy = dg_bt_destroy,
	.decode = cb_decode,
	.encode = cb_encode,
	.release = dg_bt_release,
};
