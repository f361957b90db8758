/* Helpers shared by the msgpack and cbor payloads (see bintree.h). */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec-internal.h"
#include "bintree.h"

const char *const dg_bt_keys[] = { "objects_only", "max_depth", "allow_nul", NULL };

int dg_bt_create(const json_t *spec, void **state, char *err, size_t errlen)
{
	struct dg_bt *bt = calloc(1, sizeof(*bt));

	if (!bt) {
		snprintf(err, errlen, ": out of memory");
		return DG_ENOMEM;
	}
	if (dg_opt_bool(spec, "objects_only", false, &bt->objects_only, err, errlen) ||
	    dg_opt_bool(spec, "allow_nul", false, &bt->allow_nul, err, errlen) ||
	    dg_opt_uint(spec, "max_depth", 32, 1, JSON_PARSER_MAX_DEPTH, &bt->max_depth, err, errlen)) {
		free(bt);
		return DG_EINVAL;
	}
	*state = bt;
	return DG_OK;
}

void dg_bt_destroy(void *state)
{
	free(state);
}

void dg_bt_release(void *state, struct dg_packet *pkt)
{
	(void)state;
	json_decref(pkt->json);
}

json_t *dg_bt_fail(struct dg_bt_in *in, size_t at, const char *why)
{
	if (!in->why) {
		in->why = why;
		in->at = at;
	}
	return NULL;
}

bool dg_bt_uint(struct dg_bt_in *in, unsigned n, uint64_t *v)
{
	if (in->len - in->off < n) {
		dg_bt_fail(in, in->len, "truncated: the frame ends inside a value");
		return false;
	}
	uint64_t x = 0;
	for (unsigned i = 0; i < n; i++)
		x = x << 8 | in->p[in->off + i];
	in->off += n;
	*v = x;
	return true;
}

/* Length of the valid UTF-8 sequence at s[0..n) (1..4), or 0: overlong
 * forms, surrogates and code points above U+10FFFF are invalid. */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
	unsigned c = s[0], need, min;
	uint32_t cp;

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf)
		need = 1, min = 0x80, cp = c & 0x1f;
	else if (c >= 0xe0 && c <= 0xef)
		need = 2, min = 0x800, cp = c & 0x0f;
	else if (c >= 0xf0 && c <= 0xf4)
		need = 3, min = 0x10000, cp = c & 0x07;
	else
		return 0;
	if (n < need + 1)
		return 0;
	for (unsigned i = 1; i <= need; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (s[i] & 0x3f);
	}
	if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return need + 1;
}

json_t *dg_bt_string(struct dg_bt_in *in, uint64_t n)
{
	size_t start = in->off;

	if (n > in->len - in->off)
		return dg_bt_fail(in, in->len, "truncated: a string runs past the end of the frame");
	const unsigned char *s = in->p + start;
	for (size_t i = 0; i < n;) {
		size_t k = utf8_seq(s + i, (size_t)n - i);
		if (k == 0)
			return dg_bt_fail(in, start + i, "invalid UTF-8 in a string");
		if (s[i] == 0 && !in->bt->allow_nul)
			return dg_bt_fail(in, start + i, "NUL in a string (allow_nul is off)");
		i += k;
	}
	json_t *v = json_stringn_nocheck((const char *)s, (size_t)n);
	if (!v)
		return dg_bt_fail(in, start, "out of memory");
	in->off += (size_t)n;
	return v;
}

bool dg_bt_enter(struct dg_bt_in *in, size_t at, uint64_t count)
{
	if (in->depth >= in->bt->max_depth) {
		snprintf(in->bt->reason, sizeof(in->bt->reason),
		         "nesting deeper than max_depth %u", in->bt->max_depth);
		dg_bt_fail(in, at, in->bt->reason);
		return false;
	}
	if (count > in->len - in->off) {
		dg_bt_fail(in, at, "truncated: more elements than bytes left in the frame");
		return false;
	}
	in->depth++;
	return true;
}

bool dg_bt_put(struct dg_bt_in *in, json_t *obj, size_t at, json_t *key, json_t *val)
{
	bool ok = false;

	if (!json_is_string(key))
		dg_bt_fail(in, at, "map key is not a string");
	else if (memchr(json_string_value(key), 0, json_string_length(key)))
		dg_bt_fail(in, at, "NUL in a map key");
	else if (json_object_get(obj, json_string_value(key)))
		dg_bt_fail(in, at, "duplicate map key");
	else if (json_object_set_nocheck(obj, json_string_value(key), val))
		dg_bt_fail(in, at, "out of memory");
	else
		ok = true;
	json_decref(key);
	json_decref(val);
	return ok;
}

json_t *dg_bt_int(struct dg_bt_in *in, size_t at, uint64_t v, bool neg)
{
	if (v > (uint64_t)INT64_MAX)
		return dg_bt_fail(in, at, neg ? "integer below the int64 range"
		                              : "integer above the int64 range");
	json_t *j = json_integer(neg ? -1 - (json_int_t)v : (json_int_t)v);
	return j ? j : dg_bt_fail(in, at, "out of memory");
}

json_t *dg_bt_real(struct dg_bt_in *in, size_t at, double d)
{
	if (!isfinite(d))
		return dg_bt_fail(in, at, "NaN or infinite float");
	json_t *j = json_real(d);
	return j ? j : dg_bt_fail(in, at, "out of memory");
}

int dg_bt_finish(struct dg_bt_in *in, json_t *v, struct dg_packet *pkt,
                 struct dg_parse_error *perr)
{
	if (v && in->off < in->len)
		dg_bt_fail(in, in->off, "trailing bytes after the value");
	else if (v && in->bt->objects_only && !json_is_object(v))
		dg_bt_fail(in, 0, "top-level value is not a map (objects_only)");
	else if (v) {
		pkt->data = in->p;
		pkt->len = in->len;
		pkt->json = v;
		return DG_OK;
	}
	json_decref(v);
	if (!in->why)
		dg_bt_fail(in, 0, "cannot decode");
	perr->reason = in->why;
	perr->offset = in->at;
	return DG_EINVAL;
}

void dg_bt_put_bytes(struct dg_bt_out *o, const void *p, size_t n)
{
	if (o->n <= o->cap && n <= o->cap - o->n)
		memcpy(o->b + o->n, p, n);
	o->n = o->n + n < o->n ? SIZE_MAX : o->n + n;
}

void dg_bt_put_be(struct dg_bt_out *o, unsigned t, uint64_t v, unsigned n)
{
	unsigned char b[9];

	b[0] = (unsigned char)t;
	for (unsigned i = 0; i < n; i++)
		b[1 + i] = (unsigned char)(v >> (8 * (n - 1 - i)));
	dg_bt_put_bytes(o, b, 1 + n);
}

int dg_bt_encode(const struct dg_packet *pkt, bool (*enc)(struct dg_bt_out *, const json_t *, unsigned),
                 unsigned char *buf, size_t cap, size_t *len)
{
	if (!pkt->json)
		return dg_payload_encode_any(NULL, pkt, buf, cap, len);
	struct dg_bt_out o = { .b = buf, .cap = cap };
	if (!enc(&o, pkt->json, 0))
		return DG_EINVAL;
	if (o.n > cap)
		return DG_E2BIG;
	*len = o.n;
	return DG_OK;
}
