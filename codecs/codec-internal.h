/* Private to the codec library: built-in layers and option helpers. */
#ifndef DG_CODEC_INTERNAL_H
#define DG_CODEC_INTERNAL_H

#include <stdbool.h>
#include <jansson.h>

#include <dgramd/codec.h>

extern const struct dg_framing_ops dg_framing_raw;
extern const struct dg_framing_ops dg_framing_lp;
extern const struct dg_payload_ops dg_payload_bytes;
extern const struct dg_payload_ops dg_payload_json;
extern const struct dg_payload_ops dg_payload_msgpack;
extern const struct dg_payload_ops dg_payload_cbor;

/* A transform between framing and payload (base64, zlib, bz2): bytes to
 * bytes, applied to each frame, wire-side first when decoding and in the
 * reverse order when encoding. Built in only (not part of the module ABI).
 *
 * create(): options of one "transforms" entry (an object, or NULL for a bare
 *   name); errors as ".key: ..." relative to the entry. def_max_decoded is
 *   the default of a max_decoded option (dg_codec_new_sized).
 * decode(): in[0..len) -> out[0..cap), *outlen bytes. On error *reason
 *   (static, or the state's own buffer) and the class of the failure, which
 *   decides the codec's fault (dg_codec_fault): DG_TRANSFORM_EMISMATCH
 *   (a checksum or signature does not match, or is missing), DG_E2BIG (would
 *   decode to more than cap or the transform's own bound: a bomb),
 *   DG_ENOMEM (the library ran out of memory), DG_EINVAL (anything else: a
 *   corrupt or truncated stream, bad base64).
 * encode(): in[0..len) -> out[0..cap). DG_E2BIG when it does not fit.
 * max_decoded(): the most bytes decode() may produce (0: no bound of its
 *   own, at most 3/4 of its input); sizes the codec's scratch buffers.
 * describe(): a new object {"name": .., every option with its value};
 *   NULL when out of memory. */
struct dg_transform_ops {
	const char *name;
	const char *const *keys;
	int (*create)(const json_t *spec, size_t def_max_decoded, void **state, char *err,
	              size_t errlen);
	void (*destroy)(void *state);
	int (*decode)(void *state, const unsigned char *in, size_t len, unsigned char *out,
	              size_t cap, size_t *outlen, const char **reason);
	int (*encode)(void *state, const unsigned char *in, size_t len, unsigned char *out,
	              size_t cap, size_t *outlen);
	size_t (*max_decoded)(void *state);
	/* The entry's options with every default filled in, for a config
	 * dump (spec as given to create()); never a key, only its file. */
	json_t *(*describe)(void *state, const json_t *spec);
};

extern const struct dg_transform_ops dg_transform_base64;
extern const struct dg_transform_ops dg_transform_zlib;
extern const struct dg_transform_ops dg_transform_bz2;

/* A transform's decode(): the frame's checksum or signature is wrong. */
#define DG_TRANSFORM_EMISMATCH (-100)

/* Default (dg_codec_new) and largest max_decoded of the compression
 * transforms; dg_codec_new_sized() derives the default from max_datagram. */
#define DG_TRANSFORM_MAX_DECODED_DEFAULT 65536u
#define DG_TRANSFORM_MAX_DECODED_MAX (16u << 20)

/* Read an optional integer option of spec (NULL spec: the default) into
 * *out, checking lo <= value <= hi. On error fill err as ".key: ..." and
 * return DG_EINVAL. */
int dg_opt_uint(const json_t *spec, const char *key, unsigned def,
                      unsigned lo, unsigned hi, unsigned *out, char *err, size_t errlen);

/* Same for a boolean option. */
int dg_opt_bool(const json_t *spec, const char *key, bool def, bool *out,
                      char *err, size_t errlen);

/* Same for a string option that must be one of choices (NULL-terminated);
 * *out gets the index of the choice. */
int dg_opt_enum(const json_t *spec, const char *key, const char *const *choices,
                      unsigned def, unsigned *out, char *err, size_t errlen);

/* Encode a packet's payload as is: JSON compact if pkt->json, else the bytes.
 * Shared by the bytes and json payloads (a JSON listener may send text a
 * plugin built itself; a bytes listener may send a JSON value). */
int dg_payload_encode_any(void *state, const struct dg_packet *pkt,
                          unsigned char *buf, size_t cap, size_t *len);

#endif
