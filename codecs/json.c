/* "json" payload: one JSON text per frame, with jansson.
 *
 * Defined outcomes for hostile input (all are parse errors with an offset):
 * invalid UTF-8, "\u0000" in a string (unless allow_nul), duplicate keys in
 * an object (rejected: a last-wins parse hides what the sender meant),
 * integers outside int64 and reals outside double, nesting deeper than
 * max_depth (checked on the bytes before jansson allocates anything),
 * trailing data after the value, and a non-object top level when
 * objects_only is set. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec-internal.h"
#include "jsonload.h"

struct jp {
	bool objects_only;
	bool allow_nul;
	unsigned max_depth;
	size_t flags;
	char reason[JSON_ERROR_TEXT_LENGTH + 32];
};

static const char *const json_keys[] = { "objects_only", "max_depth", "allow_nul", NULL };

static int json_create(const json_t *spec, void **state, char *err, size_t errlen)
{
	struct jp *jp = calloc(1, sizeof(*jp));

	if (!jp) {
		snprintf(err, errlen, ": out of memory");
		return DG_ENOMEM;
	}
	if (dg_opt_bool(spec, "objects_only", false, &jp->objects_only, err, errlen) ||
	    dg_opt_bool(spec, "allow_nul", false, &jp->allow_nul, err, errlen) ||
	    dg_opt_uint(spec, "max_depth", 32, 1, JSON_PARSER_MAX_DEPTH, &jp->max_depth, err, errlen)) {
		free(jp);
		return DG_EINVAL;
	}
	jp->flags = JSON_REJECT_DUPLICATES | JSON_DECODE_ANY | (jp->allow_nul ? JSON_ALLOW_NUL : 0);
	*state = jp;
	return DG_OK;
}

static void json_destroy(void *state)
{
	free(state);
}

static int fail(struct jp *jp, struct dg_parse_error *perr, size_t off, const char *what)
{
	snprintf(jp->reason, sizeof(jp->reason), "%s", what);
	perr->reason = jp->reason;
	perr->offset = off;
	return DG_EINVAL;
}

/* Offset of the first byte that nests deeper than max, or len if none.
 * Brackets inside strings do not count; escapes are skipped. */
static size_t depth_violation(const unsigned char *p, size_t len, unsigned max)
{
	unsigned depth = 0;
	bool in_str = false;

	for (size_t i = 0; i < len; i++) {
		unsigned char c = p[i];
		if (in_str) {
			if (c == '\\')
				i++;
			else if (c == '"')
				in_str = false;
		} else if (c == '"') {
			in_str = true;
		} else if (c == '[' || c == '{') {
			if (++depth > max)
				return i;
		} else if ((c == ']' || c == '}') && depth > 0) {
			depth--;
		}
	}
	return len;
}

/* Could p nest deeper than max? Not if it has at most max brackets that
 * open: two memchr passes (vectorised in libc) instead of the byte loop,
 * which runs only for a text with more. */
static bool may_nest_deeper(const unsigned char *p, size_t len, unsigned max)
{
	static const unsigned char open[2] = { '[', '{' };
	unsigned n = 0;

	for (unsigned k = 0; k < 2; k++) {
		const unsigned char *q = p, *end = p + len;
		while (q < end && (q = memchr(q, open[k], (size_t)(end - q)))) {
			if (++n > max)
				return true;
			q++;
		}
	}
	return false;
}

static int json_decode(void *state, const unsigned char *frame, size_t len,
                       struct dg_packet *pkt, struct dg_parse_error *perr)
{
	struct jp *jp = state;
	json_error_t je;
	size_t bad;

	bad = may_nest_deeper(frame, len, jp->max_depth) ?
	      depth_violation(frame, len, jp->max_depth) : len;
	if (bad < len) {
		char msg[64];
		snprintf(msg, sizeof(msg), "nesting deeper than max_depth %u", jp->max_depth);
		return fail(jp, perr, bad, msg);
	}
	bool oom;
	json_t *v = dg_json_load((const char *)frame, len, jp->flags, &je, &oom);
	if (!v)
		return fail(jp, perr, oom || je.position < 0 ? 0 : (size_t)je.position, je.text);
	if (jp->objects_only && !json_is_object(v)) {
		json_decref(v);
		return fail(jp, perr, 0, "top-level value is not an object (objects_only)");
	}
	pkt->data = frame;
	pkt->len = len;
	pkt->json = v;
	return DG_OK;
}

static void json_release(void *state, struct dg_packet *pkt)
{
	(void)state;
	json_decref(pkt->json);
}

const struct dg_payload_ops dg_payload_json = {
	.size = sizeof(struct dg_payload_ops),
	.name = "json",
	.keys = json_keys,
	.create = json_create,
	.destroy = json_destroy,
	.decode = json_decode,
	.encode = dg_payload_encode_any,
	.release = json_release,
};
