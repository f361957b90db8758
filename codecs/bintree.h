/* Private to the codec library: what the binary payloads (msgpack, cbor)
 * share: their options, the decoder's cursor and checks, and the encoder's
 * output buffer. Both decode into the jansson tree a JSON payload gives and
 * encode a tree back, with the same options as "json". */
#ifndef DG_BINTREE_H
#define DG_BINTREE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

#include <dgramd/codec.h>

/* The state of a binary payload: its options and its error text. */
struct dg_bt {
	bool objects_only;
	bool allow_nul;
	unsigned max_depth;
	char reason[112];
};

extern const char *const dg_bt_keys[];

int dg_bt_create(const json_t *spec, void **state, char *err, size_t errlen);
void dg_bt_destroy(void *state);
void dg_bt_release(void *state, struct dg_packet *pkt);

/* A decode in progress over frame[0..len): off is the next byte. On the
 * first error, why/at say what and where; later errors keep the first. */
struct dg_bt_in {
	const unsigned char *p;
	size_t len, off;
	struct dg_bt *bt;
	unsigned depth;
	const char *why;
	size_t at;
};

/* Record an error at offset at (the first one wins); returns NULL so that
 * decoders can `return dg_bt_fail(...)`. why is static text. */
json_t *dg_bt_fail(struct dg_bt_in *in, size_t at, const char *why);

/* Read an n-byte big-endian unsigned integer (n = 1, 2, 4 or 8); false (and
 * an error) if the frame ends first. */
bool dg_bt_uint(struct dg_bt_in *in, unsigned n, uint64_t *v);

/* A string of n bytes at the cursor: UTF-8 checked, NUL refused unless
 * allow_nul. The cursor moves past it. */
json_t *dg_bt_string(struct dg_bt_in *in, uint64_t n);

/* Enter and leave a container: max_depth is checked on entry. Each element
 * takes at least one byte, so a count larger than what is left is refused
 * before anything is allocated. */
bool dg_bt_enter(struct dg_bt_in *in, size_t at, uint64_t count);

/* Add a decoded key/value pair to obj: the key must be a string without
 * NUL and not already in obj. Takes both references, on error too. */
bool dg_bt_put(struct dg_bt_in *in, json_t *obj, size_t at, json_t *key, json_t *val);

/* An integer in int64 range, or a refusal. neg: the value is -1 - v. */
json_t *dg_bt_int(struct dg_bt_in *in, size_t at, uint64_t v, bool neg);

/* A real: NaN and infinities are refused (a jansson real cannot hold them). */
json_t *dg_bt_real(struct dg_bt_in *in, size_t at, double d);

/* Finish a decode: trailing bytes and objects_only are checked; on success
 * the packet gets v, else perr gets the first error. */
int dg_bt_finish(struct dg_bt_in *in, json_t *v, struct dg_packet *pkt,
                 struct dg_parse_error *perr);

/* The encoder's output: bytes past cap are counted, not written. */
struct dg_bt_out {
	unsigned char *b;
	size_t cap, n;
};

void dg_bt_put_bytes(struct dg_bt_out *o, const void *p, size_t n);
/* Byte t then v as an n-byte big-endian integer. */
void dg_bt_put_be(struct dg_bt_out *o, unsigned t, uint64_t v, unsigned n);

/* Deepest tree the encoders write (a plugin's tree is not bounded by
 * max_depth; this keeps their recursion bounded). */
#define DG_BT_MAX_ENCODE_DEPTH 2048

/* Encode pkt with enc (a tree encoder returning false on a value it cannot
 * write), or copy its bytes when it has no tree. */
int dg_bt_encode(const struct dg_packet *pkt, bool (*enc)(struct dg_bt_out *, const json_t *, unsigned),
                 unsigned char *buf, size_t cap, size_t *len);

#endif
