/* "zlib" transform: each frame is one zlib stream (RFC 1950), as Python's
 * zlib.compress() and EasyNetwork's ZlibCompressorSerializer write it.
 * Decoding stops at max_decoded bytes: a frame that would inflate to more
 * (a decompression bomb) costs at most max_decoded bytes of output and the
 * CPU to produce them, then is refused. Trailing bytes after the stream and
 * a stream cut short are refused too. One inflate and one deflate state per
 * codec, reset per frame: nothing is allocated per datagram. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <zlib.h>

#include "codec-internal.h"

struct zl {
	z_stream in, out;
	bool in_ok, out_ok;
	unsigned level, max_decoded;
};

static const char *const zl_keys[] = { "level", "max_decoded", NULL };

static void zl_destroy(void *state)
{
	struct zl *z = state;

	if (!z)
		return;
	if (z->in_ok)
		inflateEnd(&z->in);
	if (z->out_ok)
		deflateEnd(&z->out);
	free(z);
}

static int zl_create(const json_t *spec, size_t def_max_decoded, void **state, char *err,
                     size_t errlen)
{
	unsigned level, max;

	if (dg_opt_uint(spec, "level", 9, 0, 9, &level, err, errlen) ||
	    dg_opt_uint(spec, "max_decoded", (unsigned)def_max_decoded, 1,
	                DG_TRANSFORM_MAX_DECODED_MAX, &max, err, errlen))
		return DG_EINVAL;
	struct zl *z = calloc(1, sizeof(*z));
	if (!z) {
		snprintf(err, errlen, ": out of memory");
		return DG_ENOMEM;
	}
	z->max_decoded = max;
	z->level = level;
	z->in_ok = inflateInit(&z->in) == Z_OK;
	z->out_ok = z->in_ok && deflateInit(&z->out, (int)level) == Z_OK;
	if (!z->out_ok) {
		snprintf(err, errlen, ": cannot set up zlib (out of memory)");
		zl_destroy(z);
		return DG_ENOMEM;
	}
	*state = z;
	return DG_OK;
}

static int zl_decode(void *state, const unsigned char *in, size_t len, unsigned char *out,
                     size_t cap, size_t *outlen, const char **reason)
{
	struct zl *z = state;
	size_t room = cap < z->max_decoded ? cap : z->max_decoded;

	if (inflateReset(&z->in) != Z_OK) {
		*reason = "zlib: cannot reset the inflate state";
		return DG_ENOMEM;
	}
	z->in.next_in = (unsigned char *)in;
	z->in.avail_in = (uInt)len;
	z->in.next_out = out;
	z->in.avail_out = (uInt)room;
	int rc = inflate(&z->in, Z_FINISH);
	if (rc == Z_STREAM_END) {
		if (z->in.avail_in) {
			*reason = "zlib: trailing bytes after the stream";
			return DG_EINVAL;
		}
		*outlen = room - z->in.avail_out;
		return DG_OK;
	}
	if (rc == Z_MEM_ERROR) {
		*reason = "zlib: out of memory";
		return DG_ENOMEM;
	}
	if (rc == Z_DATA_ERROR || rc == Z_NEED_DICT) {
		*reason = "zlib: corrupt stream";
		return DG_EINVAL;
	}
	if (z->in.avail_out == 0) {
		*reason = "zlib: decoded size over max_decoded";
		return DG_E2BIG;
	}
	*reason = "zlib: truncated stream";
	return DG_EINVAL;
}

static int zl_encode(void *state, const unsigned char *in, size_t len, unsigned char *out,
                     size_t cap, size_t *outlen)
{
	struct zl *z = state;

	if (deflateReset(&z->out) != Z_OK)
		return DG_ENOMEM;
	z->out.next_in = (unsigned char *)in;
	z->out.avail_in = (uInt)len;
	z->out.next_out = out;
	z->out.avail_out = (uInt)cap;
	if (deflate(&z->out, Z_FINISH) != Z_STREAM_END)
		return DG_E2BIG;
	*outlen = cap - z->out.avail_out;
	return DG_OK;
}

static size_t zl_max_decoded(void *state)
{
	return ((struct zl *)state)->max_decoded;
}

static json_t *zl_describe(void *state, const json_t *spec)
{
	const struct zl *z = state;
	(void)spec;

	return json_pack("{sssIsI}", "name", "zlib", "level", (json_int_t)z->level, "max_decoded",
	                 (json_int_t)z->max_decoded);
}

const struct dg_transform_ops dg_transform_zlib = {
	.name = "zlib",
	.keys = zl_keys,
	.describe = zl_describe,
	.create = zl_create,
	.destroy = zl_destroy,
	.decode = zl_decode,
	.encode = zl_encode,
	.max_decoded = zl_max_decoded,
};
