/* "length-prefixed" framing: a datagram carries 1..max_frames frames, each a
 * 1-, 2- or 4-byte length (big-endian unless endian is "little") and then
 * that many bytes. The whole datagram is validated before any frame is
 * returned, so a handler never sees half of a broken datagram. */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "codec-internal.h"

struct lp {
	unsigned width;      /* 1, 2 or 4 */
	bool little;         /* little-endian lengths */
	unsigned max_frame;  /* largest frame body */
	unsigned max_frames; /* most frames per datagram */
	char reason[96];     /* last parse error */
};

static const char *const lp_keys[] = { "width", "endian", "max_frame", "max_frames", NULL };
static const char *const endians[] = { "big", "little", NULL };

static int lp_create(const json_t *spec, void **state, char *err, size_t errlen)
{
	unsigned endian, width;
	struct lp *lp;

	if (dg_opt_uint(spec, "width", 2, 1, 4, &width, err, errlen) || width == 3) {
		snprintf(err, errlen, ".width: expected 1, 2 or 4");
		return DG_EINVAL;
	}
	if (dg_opt_enum(spec, "endian", endians, 0, &endian, err, errlen))
		return DG_EINVAL;
	lp = calloc(1, sizeof(*lp));
	if (!lp) {
		snprintf(err, errlen, ": out of memory");
		return DG_ENOMEM;
	}
	lp->width = width;
	lp->little = endian == 1;
	unsigned width_max = width == 1 ? 0xff : width == 2 ? 0xffff : 0x7fffffff;
	if (dg_opt_uint(spec, "max_frame", width_max, 0, width_max, &lp->max_frame, err, errlen) ||
	    dg_opt_uint(spec, "max_frames", 64, 1, DG_CODEC_MAX_FRAMES, &lp->max_frames, err, errlen)) {
		free(lp);
		return DG_EINVAL;
	}
	*state = lp;
	return DG_OK;
}

static void lp_destroy(void *state)
{
	free(state);
}

static size_t read_len(const struct lp *lp, const unsigned char *p)
{
	size_t n = 0;

	for (unsigned i = 0; i < lp->width; i++) {
		unsigned shift = lp->little ? 8 * i : 8 * (lp->width - 1 - i);
		n |= (size_t)p[i] << shift;
	}
	return n;
}

__attribute__((format(printf, 5, 6)))
static int lp_fail(struct lp *lp, struct dg_parse_error *perr, size_t off, unsigned frame,
                   const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(lp->reason, sizeof(lp->reason), fmt, ap);
	va_end(ap);
	perr->reason = lp->reason;
	perr->offset = off;
	perr->frame = frame;
	return DG_EINVAL;
}

static int lp_split(void *state, const unsigned char *dgram, size_t len,
                    struct dg_frame *frames, unsigned *n, struct dg_parse_error *perr)
{
	struct lp *lp = state;
	unsigned cap = *n < lp->max_frames ? *n : lp->max_frames;
	unsigned count = 0;
	size_t off = 0;

	if (len == 0)
		return lp_fail(lp, perr, 0, 0, "empty datagram: expected at least one frame");
	while (off < len) {
		if (count == cap)
			return lp_fail(lp, perr, off, count, "more than %u frames", cap);
		if (len - off < lp->width)
			return lp_fail(lp, perr, off, count, "truncated length: %zu of %u bytes",
			               len - off, lp->width);
		size_t flen = read_len(lp, dgram + off);
		if (flen > lp->max_frame)
			return lp_fail(lp, perr, off, count, "frame of %zu bytes over max_frame %u",
			               flen, lp->max_frame);
		if (flen > len - off - lp->width)
			return lp_fail(lp, perr, off, count, "frame of %zu bytes runs past the end "
			               "(%zu bytes left)", flen, len - off - lp->width);
		frames[count].data = dgram + off + lp->width;
		frames[count].len = flen;
		count++;
		off += lp->width + flen;
	}
	*n = count;
	return DG_OK;
}

static void lp_bounds(void *state, size_t *head, size_t *tail)
{
	*head = ((struct lp *)state)->width;
	*tail = 0;
}

static int lp_seal(void *state, unsigned char *hdr, size_t len)
{
	struct lp *lp = state;

	if (len > lp->max_frame)
		return DG_E2BIG;
	for (unsigned i = 0; i < lp->width; i++) {
		unsigned shift = lp->little ? 8 * i : 8 * (lp->width - 1 - i);
		hdr[i] = (unsigned char)(len >> shift);
	}
	return DG_OK;
}

static unsigned lp_max_frames(void *state)
{
	return ((struct lp *)state)->max_frames;
}

const struct dg_framing_ops dg_framing_lp = {
	.size = sizeof(struct dg_framing_ops),
	.name = "length-prefixed",
	.keys = lp_keys,
	.create = lp_create,
	.destroy = lp_destroy,
	.split = lp_split,
	.bounds = lp_bounds,
	.seal = lp_seal,
	.max_frames = lp_max_frames,
};
