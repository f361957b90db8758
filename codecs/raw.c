/* "raw" framing: one datagram is one frame. */
#include "config.h"

#include "codec-internal.h"

static int raw_create(const json_t *spec, void **state, char *err, size_t errlen)
{
	(void)spec, (void)err, (void)errlen;
	*state = NULL;
	return DG_OK;
}

static void raw_destroy(void *state)
{
	(void)state;
}

static int raw_split(void *state, const unsigned char *dgram, size_t len,
                     struct dg_frame *frames, unsigned *n, struct dg_parse_error *perr)
{
	(void)state, (void)perr;
	frames[0].data = dgram;
	frames[0].len = len;
	*n = 1;
	return DG_OK;
}

static void raw_bounds(void *state, size_t *head, size_t *tail)
{
	(void)state;
	*head = *tail = 0;
}

static int raw_seal(void *state, unsigned char *frame, size_t len)
{
	(void)state, (void)frame, (void)len;
	return DG_OK;
}

static unsigned raw_max_frames(void *state)
{
	(void)state;
	return 1;
}

const struct dg_framing_ops dg_framing_raw = {
	.size = sizeof(struct dg_framing_ops),
	.name = "raw",
	.keys = NULL,
	.create = raw_create,
	.destroy = raw_destroy,
	.split = raw_split,
	.bounds = raw_bounds,
	.seal = raw_seal,
	.max_frames = raw_max_frames,
};
