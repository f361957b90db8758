/* "msgpack" payload: one MessagePack value per frame, decoded into the
 * jansson tree a JSON payload gives, and a tree encoded back.
 *
 * Mapping (doc/dgramd.conf.5 "msgpack and cbor payloads"): nil, true,
 * false, int and uint in int64 range, float 32 and 64 (NaN and infinities
 * refused), str (UTF-8 checked, NUL refused unless allow_nul), array, map
 * with str keys. Refused: uint above INT64_MAX, bin, ext, the never-used
 * byte 0xc1, non-string and duplicate keys, nesting deeper than max_depth,
 * trailing bytes, a non-map top level with objects_only. Replies use the
 * shortest form for integers and lengths, and float 64 for every real, as
 * msgpack-python does by default. */
#include "config.h"

#include <string.h>

#include "codec-internal.h"
#include "bintree.h"

static json_t *mp_value(struct dg_bt_in *in);

static json_t *mp_array(struct dg_bt_in *in, size_t at, uint64_t n)
{
	if (!dg_bt_enter(in, at, n))
		return NULL;
	json_t *a = json_array();
	if (!a)
		return dg_bt_fail(in, at, "out of memory");
	for (uint64_t i = 0; i < n; i++) {
		json_t *v = mp_value(in);
		if (!v || json_array_append_new(a, v)) {
			json_decref(a);
			return dg_bt_fail(in, at, "out of memory");
		}
	}
	in->depth--;
	return a;
}

static json_t *mp_map(struct dg_bt_in *in, size_t at, uint64_t n)
{
	if (!dg_bt_enter(in, at, n))
		return NULL;
	json_t *m = json_object();
	if (!m)
		return dg_bt_fail(in, at, "out of memory");
	for (uint64_t i = 0; i < n; i++) {
		size_t kat = in->off;
		json_t *k = mp_value(in);
		json_t *v = k ? mp_value(in) : NULL;
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

/* Width in bytes of the length or value that follows a type byte. */
static unsigned width(unsigned t, unsigned first)
{
	return 1u << (t - first);
}

static json_t *mp_float(struct dg_bt_in *in, size_t at, bool dbl)
{
	uint64_t u;

	if (!dg_bt_uint(in, dbl ? 8 : 4, &u))
		return NULL;
	if (dbl) {
		double d;
		memcpy(&d, &u, sizeof(d));
		return dg_bt_real(in, at, d);
	}
	uint32_t u32 = (uint32_t)u;
	float f;
	memcpy(&f, &u32, sizeof(f));
	return dg_bt_real(in, at, f);
}

static json_t *mp_value(struct dg_bt_in *in)
{
	size_t at = in->off;
	uint64_t n;

	if (in->off >= in->len)
		return dg_bt_fail(in, in->len, "truncated: the frame ends before a value");
	unsigned t = in->p[in->off++];
	if (t <= 0x7f)
		return dg_bt_int(in, at, t, false);
	if (t >= 0xe0)
		return dg_bt_int(in, at, 0xff - t, true);
	if (t <= 0x8f)
		return mp_map(in, at, t & 0x0f);
	if (t <= 0x9f)
		return mp_array(in, at, t & 0x0f);
	if (t <= 0xbf)
		return dg_bt_string(in, t & 0x1f);
	switch (t) {
	case 0xc0: return json_null();
	case 0xc2: return json_false();
	case 0xc3: return json_true();
	case 0xca: return mp_float(in, at, false);
	case 0xcb: return mp_float(in, at, true);
	case 0xcc: case 0xcd: case 0xce: case 0xcf:
		return dg_bt_uint(in, width(t, 0xcc), &n) ? dg_bt_int(in, at, n, false) : NULL;
	case 0xd0: case 0xd1: case 0xd2: case 0xd3: {
		unsigned w = width(t, 0xd0);
		if (!dg_bt_uint(in, w, &n))
			return NULL;
		/* Sign-extend, then store a negative as -1 - v for dg_bt_int. */
		if (w < 8 && n >> (8 * w - 1))
			n |= ~UINT64_C(0) << (8 * w);
		return n >> 63 ? dg_bt_int(in, at, ~n, true) : dg_bt_int(in, at, n, false);
	}
	case 0xd9: case 0xda: case 0xdb:
		return dg_bt_uint(in, width(t, 0xd9), &n) ? dg_bt_string(in, n) : NULL;
	case 0xdc: case 0xdd:
		return dg_bt_uint(in, t == 0xdc ? 2 : 4, &n) ? mp_array(in, at, n) : NULL;
	case 0xde: case 0xdf:
		return dg_bt_uint(in, t == 0xde ? 2 : 4, &n) ? mp_map(in, at, n) : NULL;
	case 0xc4: case 0xc5: case 0xc6:
		return dg_bt_fail(in, at, "bin (byte string) is not supported");
	case 0xc1:
		return dg_bt_fail(in, at, "never-used type byte 0xc1");
	default: /* 0xc7..0xc9, 0xd4..0xd8 */
		return dg_bt_fail(in, at, "ext types are not supported");
	}
}

static int mp_decode(void *state, const unsigned char *frame, size_t len,
                     struct dg_packet *pkt, struct dg_parse_error *perr)
{
	struct dg_bt_in in = { .p = frame, .len = len, .bt = state };

	return dg_bt_finish(&in, mp_value(&in), pkt, perr);
}

/* The shortest header for a length: fix form (when fix_max > 0) or the
 * 8/16/32-bit form starting at t8 (t8 == 0: no 8-bit form). */
static bool mp_len(struct dg_bt_out *o, size_t n, unsigned fix, size_t fix_max, unsigned t8, unsigned t16)
{
	if (n <= fix_max)
		dg_bt_put_be(o, fix | (unsigned)n, 0, 0);
	else if (t8 && n <= 0xff)
		dg_bt_put_be(o, t8, n, 1);
	else if (n <= 0xffff)
		dg_bt_put_be(o, t16, n, 2);
	else if (n <= 0xffffffffu)
		dg_bt_put_be(o, t16 + 1, n, 4);
	else
		return false;
	return true;
}

static void mp_int(struct dg_bt_out *o, json_int_t v)
{
	if (v >= 0) {
		uint64_t u = (uint64_t)v;
		if (u <= 0x7f)
			dg_bt_put_be(o, (unsigned)u, 0, 0);
		else
			dg_bt_put_be(o, u <= 0xff ? 0xcc : u <= 0xffff ? 0xcd : u <= 0xffffffffu ? 0xce : 0xcf,
			             u, u <= 0xff ? 1 : u <= 0xffff ? 2 : u <= 0xffffffffu ? 4 : 8);
	} else if (v >= -32) {
		dg_bt_put_be(o, (unsigned)(v & 0xff), 0, 0);
	} else {
		unsigned w = v >= INT8_MIN ? 1 : v >= INT16_MIN ? 2 : v >= INT32_MIN ? 4 : 8;
		dg_bt_put_be(o, w == 1 ? 0xd0 : w == 2 ? 0xd1 : w == 4 ? 0xd2 : 0xd3, (uint64_t)v, w);
	}
}

static bool mp_enc(struct dg_bt_out *o, const json_t *v, unsigned depth)
{
	if (depth > DG_BT_MAX_ENCODE_DEPTH)
		return false;
	switch (json_typeof(v)) {
	case JSON_OBJECT: {
		const char *k;
		json_t *x;
		if (!mp_len(o, json_object_size(v), 0x80, 15, 0, 0xde))
			return false;
		json_object_foreach((json_t *)v, k, x) {
			size_t kl = strlen(k);
			if (!mp_len(o, kl, 0xa0, 31, 0xd9, 0xda))
				return false;
			dg_bt_put_bytes(o, k, kl);
			if (!mp_enc(o, x, depth + 1))
				return false;
		}
		return true;
	}
	case JSON_ARRAY:
		if (!mp_len(o, json_array_size(v), 0x90, 15, 0, 0xdc))
			return false;
		for (size_t i = 0; i < json_array_size(v); i++)
			if (!mp_enc(o, json_array_get(v, i), depth + 1))
				return false;
		return true;
	case JSON_STRING:
		if (!mp_len(o, json_string_length(v), 0xa0, 31, 0xd9, 0xda))
			return false;
		dg_bt_put_bytes(o, json_string_value(v), json_string_length(v));
		return true;
	case JSON_INTEGER:
		mp_int(o, json_integer_value(v));
		return true;
	case JSON_REAL: {
		double d = json_real_value(v);
		uint64_t u;
		memcpy(&u, &d, sizeof(u));
		dg_bt_put_be(o, 0xcb, u, 8);
		return true;
	}
	case JSON_TRUE: dg_bt_put_be(o, 0xc3, 0, 0); return true;
	case JSON_FALSE: dg_bt_put_be(o, 0xc2, 0, 0); return true;
	case JSON_NULL: dg_bt_put_be(o, 0xc0, 0, 0); return true;
	}
	return false;
}

static int mp_encode(void *state, const struct dg_packet *pkt,
                     unsigned char *buf, size_t cap, size_t *len)
{
	(void)state;
	return dg_bt_encode(pkt, mp_enc, buf, cap, len);
}

const struct dg_payload_ops dg_payload_msgpack = {
	.size = sizeof(struct dg_payload_ops),
	.name = "msgpack",
	.keys = dg_bt_keys,
	.create = dg_bt_create,
	.destroy = dg_bt_destroy,
	.decode = mp_decode,
	.encode = mp_encode,
	.release = dg_bt_release,
};
