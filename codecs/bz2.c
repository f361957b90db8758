/* "bz2" transform: each frame is one bzip2 stream, as Python's
 * bz2.compress() and EasyNetwork's BZ2CompressorSerializer write it.
 * Decoding stops at max_decoded bytes (a bomb is refused after at most
 * max_decoded bytes of output and one bzip2 block of work); trailing bytes
 * and a truncated stream are refused. libbz2 has no reset: its work areas
 * come from a small per-codec cache (bzalloc), so a frame reuses the
 * blocks the previous one freed instead of allocating megabytes anew. */
#include "config.h"

#include <bzlib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec-internal.h"

#define BZ_SLOTS 8

struct bz {
	unsigned level, max_decoded;
	struct {
		void *p;
		size_t size;
		bool busy;
	} slot[BZ_SLOTS];
};

static const char *const bz_keys[] = { "level", "max_decoded", NULL };

static void *bz_alloc(void *opaque, int items, int size)
{
	struct bz *b = opaque;
	size_t n = (size_t)items * (size_t)size;
	int empty = -1;

	if (items < 0 || size < 0)
		return NULL;
	for (int i = 0; i < BZ_SLOTS; i++) {
		if (!b->slot[i].busy && b->slot[i].p && b->slot[i].size == n) {
			b->slot[i].busy = true;
			return b->slot[i].p;
		}
		if (!b->slot[i].p && empty < 0)
			empty = i;
	}
	if (empty < 0) /* every slot holds another size: evict a free one */
		for (int i = 0; i < BZ_SLOTS && empty < 0; i++)
			if (!b->slot[i].busy) {
				free(b->slot[i].p);
				b->slot[i].p = NULL;
				empty = i;
			}
	void *p = malloc(n ? n : 1);
	if (p && empty >= 0) {
		b->slot[empty].p = p;
		b->slot[empty].size = n;
		b->slot[empty].busy = true;
	}
	return p;
}

static void bz_free(void *opaque, void *p)
{
	struct bz *b = opaque;

	for (int i = 0; i < BZ_SLOTS; i++) {
		if (b->slot[i].p == p) {
			b->slot[i].busy = false;
			return;
		}
	}
	free(p);
}

static int bz_create(const json_t *spec, size_t def_max_decoded, void **state, char *err,
                     size_t errlen)
{
	unsigned level, max;

	if (dg_opt_uint(spec, "level", 9, 1, 9, &level, err, errlen) ||
	    dg_opt_uint(spec, "max_decoded", (unsigned)def_max_decoded, 1,
	                DG_TRANSFORM_MAX_DECODED_MAX, &max, err, errlen))
		return DG_EINVAL;
	struct bz *b = calloc(1, sizeof(*b));
	if (!b) {
		snprintf(err, errlen, ": out of memory");
		return DG_ENOMEM;
	}
	b->level = level;
	b->max_decoded = max;
	*state = b;
	return DG_OK;
}

static void bz_destroy(void *state)
{
	struct bz *b = state;

	if (!b)
		return;
	for (int i = 0; i < BZ_SLOTS; i++)
		free(b->slot[i].p);
	free(b);
}

static void stream_init(struct bz *b, bz_stream *s)
{
	memset(s, 0, sizeof(*s));
	s->bzalloc = bz_alloc;
	s->bzfree = bz_free;
	s->opaque = b;
}

static int bz_decode(void *state, const unsigned char *in, size_t len, unsigned char *out,
                     size_t cap, size_t *outlen, const char **reason)
{
	struct bz *b = state;
	size_t room = cap < b->max_decoded ? cap : b->max_decoded;
	bz_stream s;

	stream_init(b, &s);
	if (BZ2_bzDecompressInit(&s, 0, 0) != BZ_OK) {
		*reason = "bz2: out of memory";
		return DG_ENOMEM;
	}
	s.next_in = (char *)in;
	s.avail_in = (unsigned)len;
	s.next_out = (char *)out;
	s.avail_out = (unsigned)room;
	int rc;
	unsigned before;
	do {
		before = s.avail_in + s.avail_out;
		rc = BZ2_bzDecompress(&s);
	} while (rc == BZ_OK && s.avail_out && s.avail_in + s.avail_out != before);
	unsigned left_in = s.avail_in, left_out = s.avail_out;
	BZ2_bzDecompressEnd(&s);
	if (rc == BZ_STREAM_END) {
		if (left_in) {
			*reason = "bz2: trailing bytes after the stream";
			return DG_EINVAL;
		}
		*outlen = room - left_out;
		return DG_OK;
	}
	if (rc == BZ_OK && left_out == 0) {
		*reason = "bz2: decoded size over max_decoded";
		return DG_E2BIG;
	}
	if (rc == BZ_MEM_ERROR) {
		*reason = "bz2: out of memory";
		return DG_ENOMEM;
	}
	*reason = rc == BZ_OK ? "bz2: truncated stream" : "bz2: corrupt stream";
	return DG_EINVAL;
}

static int bz_encode(void *state, const unsigned char *in, size_t len, unsigned char *out,
                     size_t cap, size_t *outlen)
{
	struct bz *b = state;
	bz_stream s;

	stream_init(b, &s);
	if (BZ2_bzCompressInit(&s, (int)b->level, 0, 0) != BZ_OK)
		return DG_ENOMEM;
	s.next_in = (char *)in;
	s.avail_in = (unsigned)len;
	s.next_out = (char *)out;
	s.avail_out = (unsigned)cap;
	int rc;
	do
		rc = BZ2_bzCompress(&s, BZ_FINISH);
	while (rc == BZ_FINISH_OK && s.avail_out);
	unsigned left = s.avail_out;
	BZ2_bzCompressEnd(&s);
	if (rc != BZ_STREAM_END)
		return rc == BZ_FINISH_OK ? DG_E2BIG : DG_ENOMEM;
	*outlen = cap - left;
	return DG_OK;
}

static size_t bz_max_decoded(void *state)
{
	return ((struct bz *)state)->max_decoded;
}

static json_t *bz_describe(void *state, const json_t *spec)
{
	const struct bz *b = state;
	(void)spec;

	return json_pack("{sssIsI}", "name", "bz2", "level", (json_int_t)b->level, "max_decoded",
	                 (json_int_t)b->max_decoded);
}

const struct dg_transform_ops dg_transform_bz2 = {
	.name = "bz2",
	.keys = bz_keys,
	.describe = bz_describe,
	.create = bz_create,
	.destroy = bz_destroy,
	.decode = bz_decode,
	.encode = bz_encode,
	.max_decoded = bz_max_decoded,
};
