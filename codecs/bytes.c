/* "bytes" payload: the frame as it is. */
#include "config.h"

#include "codec-internal.h"

static int bytes_create(const json_t *spec, void **state, char *err, size_t errlen)
{
	(void)spec, (void)err, (void)errlen;
	*state = NULL;
	return DG_OK;
}

static void bytes_destroy(void *state)
{
	(void)state;
}

static int bytes_decode(void *state, const unsigned char *frame, size_t len,
                        struct dg_packet *pkt, struct dg_parse_error *perr)
{
	(void)state, (void)perr;
	pkt->data = frame;
	pkt->len = len;
	pkt->json = NULL;
	return DG_OK;
}

const struct dg_payload_ops dg_payload_bytes = {
	.size = sizeof(struct dg_payload_ops),
	.name = "bytes",
	.keys = NULL,
	.create = bytes_create,
	.destroy = bytes_destroy,
	.decode = bytes_decode,
	.encode = dg_payload_encode_any,
	.release = NULL,
};
