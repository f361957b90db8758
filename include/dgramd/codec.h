/*
 * dgramd codec interface: protocol objects that turn datagrams into packets
 * and packets back into datagrams.
 *
 * A codec has two layers:
 *   - framing: splits one datagram into 1..N frames, and appends frames to an
 *     outgoing datagram ("raw": one datagram = one frame; "length-prefixed").
 *   - payload: turns one frame into a packet and back ("bytes", "json",
 *     "msgpack", "cbor": the last three give the same JSON tree).
 *
 * The same code serves the daemon and the client library; it holds no daemon
 * state and never logs: every error is returned with a message in the
 * caller's buffer.
 *
 * Threading: a struct dg_codec may be used by one thread at a time.
 */
#ifndef DGRAMD_CODEC_H
#define DGRAMD_CODEC_H

#include <stddef.h>
#include <stdint.h>

#include <dgramd/rc.h>

#ifdef __cplusplus
extern "C" {
#endif

struct json_t; /* jansson */

/* One decoded packet.
 *
 * Exactly one of the two forms is used, by the codec's payload layer:
 *   - bytes payload: data/len, json == NULL.
 *   - json, msgpack and cbor payloads: json != NULL; data/len point at the
 *     frame it came from.
 *
 * Ownership: a packet handed to a handler borrows everything it points to
 * for the duration of the call. A handler that keeps the JSON takes a
 * reference (json_incref) and a handler that keeps the bytes copies them.
 * A packet passed to dg_codec_encode() or to a reply function is only read. */
struct dg_packet {
	const void *data;     /* bytes; borrowed */
	size_t len;           /* number of bytes at data */
	struct json_t *json;  /* JSON value or NULL; borrowed */
};

/* Compile-time checks of the installed headers' layout (C11, C++11). */
#if defined(__cplusplus) && __cplusplus >= 201103L
#define DG_STATIC_ASSERT(expr, msg) static_assert(expr, msg)
#elif defined(__STDC_VERSION__) && __STDC_VERSION__ >= 201112L
#define DG_STATIC_ASSERT(expr, msg) _Static_assert(expr, msg)
#else /* C99: a negative array size fails the same way */
#define DG_STATIC_ASSERT(expr, msg) extern char dg_static_assert_[(expr) ? 1 : -1]
#endif

/* struct dg_packet is frozen: it never grows and its fields never move.
 * It is embedded by value in struct dg_request (<dgramd/plugin.h>), so a
 * field appended to it would move every dg_request member after it in
 * every plugin built before; and the host reads the packets plugins pass
 * to request_reply, reply and session_send through a pointer, so it would
 * read past an older plugin's packet. What packets need later comes as a
 * new struct beside it: a pointer member appended to struct dg_request
 * (NULL from a host that does not fill it, read after checking
 * host->abi_minor) and, for replies, new host functions that take it next
 * to the packet. */
DG_STATIC_ASSERT(sizeof(struct dg_packet) ==
                         sizeof(const void *) + sizeof(size_t) + sizeof(struct json_t *),
                 "struct dg_packet is frozen (embedded in struct dg_request)");
DG_STATIC_ASSERT(offsetof(struct dg_packet, len) == sizeof(const void *) &&
                         offsetof(struct dg_packet, json) == sizeof(const void *) + sizeof(size_t),
                 "struct dg_packet's fields never move");

/* Why a datagram could not be decoded. reason points at a string that lives
 * at least as long as the codec (usually static, or the codec's own buffer,
 * overwritten by the next decode call). offset is the byte offset in the
 * datagram where the problem was found; frame is the 0-based frame index. */
struct dg_parse_error {
	const char *reason;
	size_t offset;
	unsigned frame;
};

/* One frame inside a datagram: a slice of the datagram (borrowed). */
struct dg_frame {
	const unsigned char *data;
	size_t len;
};

/* The framing layer vtable. Built-ins and modules define it as a const table.
 *
 * create(): validate the options in spec (the long-form codec object, or NULL
 *   for the short form) and build a state. Only keys listed in `keys` are
 *   the layer's own; on error write "KEY: what is wrong" into err and return
 *   a negative dg_rc.
 * split(): validate the whole datagram before returning any frame. On
 *   success fill frames[0..*n) (slices of dgram, *n on entry is the capacity)
 *   and return DG_OK; on error fill *perr and return DG_EINVAL.
 * bounds(): bytes the framing writes before (*head) and after (*tail) each
 *   frame's payload: 0/0 for raw, width/0 for length-prefixed.
 * seal(): the payload (len bytes) is at frame + head; write the head before
 *   it and the tail after it. DG_E2BIG if len cannot be framed (over the
 *   width or max_frame), DG_EINVAL if the payload cannot be (a separator
 *   inside a separated frame).
 * max_frames(): frames per datagram, in and out (1 for raw). */
struct dg_framing_ops {
	uint32_t size; /* sizeof(struct dg_framing_ops) at build time */
	const char *name;
	const char *const *keys; /* NULL-terminated option keys of this layer */
	int (*create)(const struct json_t *spec, void **state, char *err, size_t errlen);
	void (*destroy)(void *state);
	int (*split)(void *state, const unsigned char *dgram, size_t len,
	             struct dg_frame *frames, unsigned *n, struct dg_parse_error *perr);
	void (*bounds)(void *state, size_t *head, size_t *tail);
	int (*seal)(void *state, unsigned char *frame, size_t len);
	unsigned (*max_frames)(void *state);
};

/* The payload layer vtable.
 *
 * decode(): frame -> packet. On success the packet may own resources (a
 *   JSON value) that release() frees. On error fill *perr (offset relative
 *   to the frame), return DG_EINVAL and own nothing.
 * encode(): packet -> frame bytes in buf[0..cap); *len gets the size.
 *   DG_E2BIG if it does not fit, DG_EINVAL if the packet is of the wrong form.
 * release(): free what decode() allocated (may be NULL if nothing is). */
struct dg_payload_ops {
	uint32_t size; /* sizeof(struct dg_payload_ops) at build time */
	const char *name;
	const char *const *keys;
	int (*create)(const struct json_t *spec, void **state, char *err, size_t errlen);
	void (*destroy)(void *state);
	int (*decode)(void *state, const unsigned char *frame, size_t len,
	              struct dg_packet *pkt, struct dg_parse_error *perr);
	int (*encode)(void *state, const struct dg_packet *pkt,
	              unsigned char *buf, size_t cap, size_t *len);
	void (*release)(void *state, struct dg_packet *pkt);
};

/* A codec module: what a codec .so exports as the data symbol
 * DG_CODEC_SYMBOL. Either layer may be NULL. Checked before any call:
 * magic, abi_major == DG_CODEC_ABI_MAJOR, abi_minor <= the host's, size. */
#define DG_CODEC_MAGIC 0x64674331u /* "dgC1" */
#define DG_CODEC_ABI_MAJOR 1
#define DG_CODEC_ABI_MINOR 0
#define DG_CODEC_SYMBOL "dgramd_codec"

struct dg_codec_module {
	uint32_t magic;
	uint16_t abi_major;
	uint16_t abi_minor;
	uint32_t size; /* sizeof(struct dg_codec_module) at build time */
	const struct dg_framing_ops *framing; /* static, or NULL */
	const struct dg_payload_ops *payload; /* static, or NULL */
};

#if defined(__GNUC__)
#define DG_CODEC_EXPORT __attribute__((visibility("default")))
#else
#define DG_CODEC_EXPORT
#endif

#define DG_CODEC_MODULE_INIT                                                   \
	.magic = DG_CODEC_MAGIC, .abi_major = DG_CODEC_ABI_MAJOR,              \
	.abi_minor = DG_CODEC_ABI_MINOR, .size = sizeof(struct dg_codec_module)

/* A codec instance: one framing and one payload layer with their options. */
struct dg_codec;

/* Largest number of frames a datagram may carry, whatever the options say. */
#define DG_CODEC_MAX_FRAMES 1024

/* Build a codec from a spec: a JSON string ("json", "msgpack", "cbor", "raw",
 * "length-prefixed") or an object {"framing": .., "payload": .., options}.
 * spec is only read. On error return a negative dg_rc and write the problem
 * into err as a path relative to the spec and a message: ".width: expected
 * 1, 2 or 4" or ": unknown codec 'x'", so that the caller can print its own
 * path of the spec in front ("listeners[0].codec" + err). *out is owned by the
 * caller; free it with dg_codec_free(). */
int dg_codec_new(const struct json_t *spec, struct dg_codec **out, char *err, size_t errlen);

/* dg_codec_new() for a listener or a client whose datagrams are at most
 * max_datagram bytes: the default max_decoded of the compression transforms
 * (zlib, bz2) is DG_CODEC_DECODED_PER_DATAGRAM x max_datagram, at most
 * 16 MiB (dg_codec_new: 65536). */
#define DG_CODEC_DECODED_PER_DATAGRAM 16u
int dg_codec_new_sized(const struct json_t *spec, size_t max_datagram, struct dg_codec **out,
                       char *err, size_t errlen);

/* The spec codec was built from (by dg_codec_new or dg_codec_new_sized)
 * with every option of its transforms filled in, as a configuration dump
 * shows it: "transforms": ["zlib"] becomes [{"name": "zlib", "level": 9,
 * "max_decoded": 1048112}]; base64 shows its key_file, never the key. A
 * new reference; NULL when out of memory. */
struct json_t *dg_codec_describe(const struct dg_codec *codec, const struct json_t *spec);

/* Free a codec; NULL is a no-op. */
void dg_codec_free(struct dg_codec *codec);

/* "raw+json" style name of the codec; static storage of the codec. */
const char *dg_codec_name(const struct dg_codec *codec);

/* Maximum frames per datagram this codec accepts (1 for raw framing). */
unsigned dg_codec_max_frames(const struct dg_codec *codec);

/* Split a datagram into frames (see dg_framing_ops.split). frames[] must
 * have room for dg_codec_max_frames() entries; the frames borrow dgram. */
int dg_codec_split(struct dg_codec *codec, const unsigned char *dgram, size_t len,
                   struct dg_frame *frames, unsigned *n, struct dg_parse_error *perr);

/* Decode one frame into a packet; release it with dg_codec_release(). The
 * packet may borrow frame (bytes payload): keep frame alive while it is used.
 * perr->offset is relative to the frame. */
int dg_codec_decode(struct dg_codec *codec, const unsigned char *frame, size_t len,
                    struct dg_packet *pkt, struct dg_parse_error *perr);

/* What made the last dg_codec_decode() on codec fail. A transform's
 * failure means the frame is not what its sender wrote (or not from a
 * sender with the key): the daemon drops it before any plugin code sees it
 * and counts it under its own drop reason; only DG_FAULT_PAYLOAD (the
 * payload layer refused bytes that passed every transform) goes to a
 * plugin's on_error. This is a function rather than a return code or a
 * struct dg_parse_error field so that neither changes for code built
 * against ABI 1.0: dg_codec_decode still returns DG_EINVAL for all of them,
 * and a struct dg_parse_error allocated by such code is no larger. */
enum dg_codec_fault {
	DG_FAULT_NONE,      /* the last decode succeeded (or none yet) */
	DG_FAULT_PAYLOAD,   /* the payload layer: bad JSON, msgpack, ... */
	DG_FAULT_INTEGRITY, /* a checksum or signature missing or wrong */
	DG_FAULT_CORRUPT,   /* a corrupt, truncated or trailing stream, bad base64 */
	DG_FAULT_SIZE,      /* would decode to more than max_decoded (a bomb) */
	DG_FAULT_MEMORY,    /* out of memory while undoing the transforms */
};
enum dg_codec_fault dg_codec_fault(const struct dg_codec *codec);

/* Free what dg_codec_decode() allocated for pkt; the packet is zeroed. */
void dg_codec_release(struct dg_codec *codec, struct dg_packet *pkt);

/* An outgoing datagram being built: frames are appended to buf[0..used). */
struct dg_outdgram {
	unsigned char *buf; /* owned by the caller */
	size_t cap;
	size_t used;
	unsigned frames;
};

/* Encode pkt as one frame and append it to out. DG_E2BIG when the frame
 * does not fit in what is left (out unchanged): the caller may send out and
 * try again with an empty one; if it does not fit in an empty one either,
 * it never will. DG_EINVAL when the packet is of the wrong form. */
int dg_codec_append(struct dg_codec *codec, const struct dg_packet *pkt,
                    struct dg_outdgram *out);

/* Register a codec module's layers under their names. mod must stay valid
 * (and loaded) until dg_codec_registry_reset(). DG_EINVAL when the module
 * fails its checks or a name is taken; err says which. */
int dg_codec_register(const struct dg_codec_module *mod, char *err, size_t errlen);

/* Forget every registered (non built-in) layer. */
void dg_codec_registry_reset(void);

#ifdef __cplusplus
}
#endif
#endif /* DGRAMD_CODEC_H */
