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
