/* "lines": an example codec module, built the way a third-party one would
 * be (only <dgramd/codec.h> and jansson, one exported symbol).
 *
 * A framing for text protocols that put several records in one datagram,
 * one per line, as statsd does ("a:1|c\nb:2|g\n"). Options:
 *   "separator": a one-character string (default "\n")
 *   "max_lines": most frames per datagram (default 64, at most 1024)
 *   "skip_empty": ignore empty lines (default true)
 * A final separator is optional on input and always written on output. A
 * payload that contains the separator cannot be framed (DG_EINVAL). */
#define _POSIX_C_SOURCE 200809L

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <dgramd/codec.h>

struct lines {
	unsigned char sep;
	unsigned max_lines;
	bool skip_empty;
	char reason[64];
};

static const char *const lines_keys[] = { "separator", "max_lines", "skip_empty", NULL };

static int lines_create(const json_t *spec, void **state, char *err, size_t errlen)
{
	json_t *sep = spec ? json_object_get(spec, "separator") : NULL;
	json_t *max = spec ? json_object_get(spec, "max_lines") : NULL;
	json_t *skip = spec ? json_object_get(spec, "skip_empty") : NULL;
	struct lines *l;

	if (sep && (!json_is_string(sep) || json_string_length(sep) != 1)) {
		snprintf(err, errlen, ".separator: expected a one-character string");
		return DG_EINVAL;
	}
	if (max && (!json_is_integer(max) || json_integer_value(max) < 1 ||
	            json_integer_value(max) > DG_CODEC_MAX_FRAMES)) {
		snprintf(err, errlen, ".max_lines: expected an integer from 1 to %d", DG_CODEC_MAX_FRAMES);
		return DG_EINVAL;
	}
	if (skip && !json_is_boolean(skip)) {
		snprintf(err, errlen, ".skip_empty: expected true or false");
		return DG_EINVAL;
	}
	l = calloc(1, sizeof(*l));
	if (!l) {
		snprintf(err, errlen, ": out of memory");
		return DG_ENOMEM;
	}
	l->sep = sep ? (unsigned char)json_string_value(sep)[0] : '\n';
	l->max_lines = max ? (unsigned)json_integer_value(max) : 64;
	l->skip_empty = skip ? json_is_true(skip) : true;
	*state = l;
	return DG_OK;
}

static void lines_destroy(void *state)
{
	free(state);
}

static int lines_split(void *state, const unsigned char *dgram, size_t len,
                       struct dg_frame *frames, unsigned *n, struct dg_parse_error *perr)
{
	struct lines *l = state;
	unsigned cap = *n < l->max_lines ? *n : l->max_lines, count = 0;
	size_t off = 0;

	while (off < len) {
		const unsigned char *end = memchr(dgram + off, l->sep, len - off);
		size_t flen = end ? (size_t)(end - (dgram + off)) : len - off;
		if (flen || !l->skip_empty) {
			if (count == cap) {
				snprintf(l->reason, sizeof(l->reason), "more than %u lines", cap);
				perr->reason = l->reason;
				perr->offset = off;
				perr->frame = count;
				return DG_EINVAL;
			}
			frames[count].data = dgram + off;
			frames[count++].len = flen;
		}
		off += flen + (end ? 1 : 0);
	}
	if (count == 0) {
		perr->reason = "no line in the datagram";
		perr->offset = 0;
		perr->frame = 0;
		return DG_EINVAL;
	}
	*n = count;
	return DG_OK;
}

static void lines_bounds(void *state, size_t *head, size_t *tail)
{
	(void)state;
	*head = 0;
	*tail = 1;
}

static int lines_seal(void *state, unsigned char *frame, size_t len)
{
	struct lines *l = state;

	if (memchr(frame, l->sep, len))
		return DG_EINVAL;
	frame[len] = l->sep;
	return DG_OK;
}

static unsigned lines_max_frames(void *state)
{
	return ((struct lines *)state)->max_lines;
}

static const struct dg_framing_ops lines_framing = {
	.size = sizeof(struct dg_framing_ops),
	.name = "lines",
	.keys = lines_keys,
	.create = lines_create,
	.destroy = lines_destroy,
	.split = lines_split,
	.bounds = lines_bounds,
	.seal = lines_seal,
	.max_frames = lines_max_frames,
};

DG_CODEC_EXPORT const struct dg_codec_module dgramd_codec = {
	DG_CODEC_MODULE_INIT,
	.framing = &lines_framing,
};
