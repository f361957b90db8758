/* Codec registry, codec specs and the framing x payload composition. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec-internal.h"

#define DG_CODEC_MAX_MODULE_LAYERS 32
#define DG_CODEC_MAX_TRANSFORMS 8
/* Scratch room for a transformed frame when no transform bounds it: the
 * largest datagram (and so the largest wire frame) rounded up. */
#define DG_CODEC_SCRATCH_MIN 65536u

struct dg_codec {
	const struct dg_framing_ops *fops;
	void *fstate;
	const struct dg_payload_ops *pops;
	void *pstate;
	size_t head, tail; /* framing bytes around each payload */
	unsigned max_frames;
	unsigned nt; /* transforms, wire side first */
	const struct dg_transform_ops *tops[DG_CODEC_MAX_TRANSFORMS];
	void *tstate[DG_CODEC_MAX_TRANSFORMS];
	unsigned char *scratch[2]; /* ping-pong buffers of scratch_cap bytes */
	size_t scratch_cap;
	enum dg_codec_fault fault; /* of the last decode */
	char name[160];
};

static const struct dg_transform_ops *const builtin_transforms[] = {
	&dg_transform_base64, &dg_transform_zlib, &dg_transform_bz2, NULL,
};

static const struct dg_framing_ops *const builtin_framings[] = {
	&dg_framing_raw, &dg_framing_lp, NULL,
};
static const struct dg_payload_ops *const builtin_payloads[] = {
	&dg_payload_bytes, &dg_payload_json, &dg_payload_msgpack, &dg_payload_cbor, NULL,
};

/* Layers registered from codec modules; only touched at config time. */
static const struct dg_framing_ops *mod_framings[DG_CODEC_MAX_MODULE_LAYERS];
static const struct dg_payload_ops *mod_payloads[DG_CODEC_MAX_MODULE_LAYERS];
static unsigned n_mod_framings, n_mod_payloads;

/* The short forms: a name that stands for a framing and payload pair. */
static const struct {
	const char *name, *framing, *payload;
} short_forms[] = {
	{ "json", "raw", "json" },
	{ "msgpack", "raw", "msgpack" },
	{ "cbor", "raw", "cbor" },
	{ "raw", "raw", "bytes" },
	{ "bytes", "raw", "bytes" },
	{ "length-prefixed", "length-prefixed", "bytes" },
};

static const struct dg_framing_ops *find_framing(const char *name)
{
	for (unsigned i = 0; builtin_framings[i]; i++)
		if (!strcmp(builtin_framings[i]->name, name))
			return builtin_framings[i];
	for (unsigned i = 0; i < n_mod_framings; i++)
		if (!strcmp(mod_framings[i]->name, name))
			return mod_framings[i];
	return NULL;
}

static const struct dg_payload_ops *find_payload(const char *name)
{
	for (unsigned i = 0; builtin_payloads[i]; i++)
		if (!strcmp(builtin_payloads[i]->name, name))
			return builtin_payloads[i];
	for (unsigned i = 0; i < n_mod_payloads; i++)
		if (!strcmp(mod_payloads[i]->name, name))
			return mod_payloads[i];
	return NULL;
}

static bool key_in(const char *const *keys, const char *key)
{
	for (; keys && *keys; keys++)
		if (!strcmp(*keys, key))
			return true;
	return false;
}

/* Resolve a spec to its two layer names; checks the object's keys. */
static int resolve(const json_t *spec, const struct dg_framing_ops **f,
                   const struct dg_payload_ops **p, char *err, size_t errlen)
{
	const char *fname = "raw", *pname = "bytes";

	if (json_is_string(spec)) {
		const char *s = json_string_value(spec);
		for (size_t i = 0; i < sizeof(short_forms) / sizeof(short_forms[0]); i++) {
			if (!strcmp(s, short_forms[i].name)) {
				fname = short_forms[i].framing;
				pname = short_forms[i].payload;
				goto found;
			}
		}
		if (find_payload(s))
			pname = s;
		else if (find_framing(s))
			fname = s;
		else {
			snprintf(err, errlen, ": unknown codec '%s' (known: json, raw, "
			         "length-prefixed, or an object {\"framing\", \"payload\"})", s);
			return DG_EINVAL;
		}
		goto found;
	}
	if (!json_is_object(spec)) {
		snprintf(err, errlen, ": expected a codec name or an object");
		return DG_EINVAL;
	}
	json_t *v = json_object_get(spec, "framing");
	if (v && !json_is_string(v)) {
		snprintf(err, errlen, ".framing: expected a string");
		return DG_EINVAL;
	}
	if (v)
		fname = json_string_value(v);
	v = json_object_get(spec, "payload");
	if (v && !json_is_string(v)) {
		snprintf(err, errlen, ".payload: expected a string");
		return DG_EINVAL;
	}
	if (v)
		pname = json_string_value(v);
found:
	*f = find_framing(fname);
	if (!*f) {
		snprintf(err, errlen, ".framing: unknown framing '%s' (known: raw, length-prefixed)", fname);
		return DG_EINVAL;
	}
	*p = find_payload(pname);
	if (!*p) {
		snprintf(err, errlen, ".payload: unknown payload '%s' (known: bytes, json, msgpack, cbor)", pname);
		return DG_EINVAL;
	}
	if (json_is_object(spec)) {
		const char *key;
		json_t *val;
		json_object_foreach((json_t *)spec, key, val) {
			if (!strcmp(key, "framing") || !strcmp(key, "payload") ||
			    !strcmp(key, "transforms") ||
			    key_in((*f)->keys, key) || key_in((*p)->keys, key))
				continue;
			snprintf(err, errlen, ".%s: unknown key for framing '%s' with payload '%s'",
			         key, (*f)->name, (*p)->name);
			return DG_EINVAL;
		}
	}
	return DG_OK;
}

static const struct dg_transform_ops *find_transform(const char *name)
{
	for (unsigned i = 0; builtin_transforms[i]; i++)
		if (!strcmp(builtin_transforms[i]->name, name))
			return builtin_transforms[i];
	return NULL;
}

/* Build c's transforms from spec's "transforms" (absent: none). */
static int transforms_new(struct dg_codec *c, const json_t *spec, size_t def_max_decoded,
                          char *err, size_t errlen)
{
	json_t *arr = spec ? json_object_get(spec, "transforms") : NULL;
	size_t i;
	json_t *t;
	char sub[256];

	if (!arr)
		return DG_OK;
	if (!json_is_array(arr) || json_array_size(arr) > DG_CODEC_MAX_TRANSFORMS) {
		snprintf(err, errlen, ".transforms: expected an array of at most %d transforms "
		         "(base64, zlib, bz2)", DG_CODEC_MAX_TRANSFORMS);
		return DG_EINVAL;
	}
	c->scratch_cap = DG_CODEC_SCRATCH_MIN;
	json_array_foreach(arr, i, t) {
		const json_t *opts = json_is_object(t) ? t : NULL;
		json_t *name = opts ? json_object_get(t, "name") : t;
		if (!json_is_string(name)) {
			snprintf(err, errlen, ".transforms[%zu]%s: expected a transform name "
			         "(base64, zlib, bz2)", i, opts ? ".name" : "");
			return DG_EINVAL;
		}
		const struct dg_transform_ops *ops = find_transform(json_string_value(name));
		if (!ops) {
			snprintf(err, errlen, ".transforms[%zu]%s: unknown transform '%s' (known: "
			         "base64, zlib, bz2)", i, opts ? ".name" : "", json_string_value(name));
			return DG_EINVAL;
		}
		const char *key;
		json_t *val;
		json_object_foreach((json_t *)opts, key, val) {
			if (strcmp(key, "name") && !key_in(ops->keys, key)) {
				snprintf(err, errlen, ".transforms[%zu].%s: unknown key for transform '%s'",
				         i, key, ops->name);
				return DG_EINVAL;
			}
		}
		sub[0] = '\0';
		int rc = ops->create(opts, def_max_decoded, &c->tstate[c->nt], sub, sizeof(sub));
		if (rc) {
			snprintf(err, errlen, ".transforms[%zu]%s", i, sub);
			return rc;
		}
		c->tops[c->nt++] = ops;
		size_t m = ops->max_decoded(c->tstate[c->nt - 1]);
		if (m > c->scratch_cap)
			c->scratch_cap = m;
	}
	for (unsigned k = 0; k < 2 && c->nt; k++) {
		c->scratch[k] = malloc(c->scratch_cap);
		if (!c->scratch[k]) {
			snprintf(err, errlen, ".transforms: out of memory");
			return DG_ENOMEM;
		}
	}
	return DG_OK;
}

static void transforms_free(struct dg_codec *c)
{
	for (unsigned i = 0; i < c->nt; i++)
		c->tops[i]->destroy(c->tstate[i]);
	c->nt = 0;
	free(c->scratch[0]);
	free(c->scratch[1]);
}

int dg_codec_new(const json_t *spec, struct dg_codec **out, char *err, size_t errlen)
{
	return dg_codec_new_sized(spec, 0, out, err, errlen);
}

int dg_codec_new_sized(const json_t *spec, size_t max_datagram, struct dg_codec **out,
                       char *err, size_t errlen)
{
	size_t def_max_decoded = DG_TRANSFORM_MAX_DECODED_DEFAULT;
	const struct dg_framing_ops *f;
	const struct dg_payload_ops *p;
	const json_t *opts = json_is_object(spec) ? spec : NULL;
	int rc;

	if (max_datagram)
		def_max_decoded = max_datagram > DG_TRANSFORM_MAX_DECODED_MAX / DG_CODEC_DECODED_PER_DATAGRAM
		                          ? DG_TRANSFORM_MAX_DECODED_MAX
		                          : max_datagram * DG_CODEC_DECODED_PER_DATAGRAM;
	*out = NULL;
	rc = resolve(spec, &f, &p, err, errlen);
	if (rc)
		return rc;
	struct dg_codec *c = calloc(1, sizeof(*c));
	if (!c) {
		snprintf(err, errlen, ": out of memory");
		return DG_ENOMEM;
	}
	c->fops = f;
	c->pops = p;
	rc = f->create(opts, &c->fstate, err, errlen);
	if (rc)
		goto out_free;
	rc = p->create(opts, &c->pstate, err, errlen);
	if (rc)
		goto out_fdestroy;
	rc = transforms_new(c, opts, def_max_decoded, err, errlen);
	if (rc)
		goto out_tfree;
	f->bounds(c->fstate, &c->head, &c->tail);
	c->max_frames = f->max_frames(c->fstate);
	if (c->max_frames == 0 || c->max_frames > DG_CODEC_MAX_FRAMES)
		c->max_frames = DG_CODEC_MAX_FRAMES;
	int n = snprintf(c->name, sizeof(c->name), "%s", f->name);
	for (unsigned i = 0; i < c->nt && n > 0 && (size_t)n < sizeof(c->name); i++)
		n += snprintf(c->name + n, sizeof(c->name) - (size_t)n, "+%s", c->tops[i]->name);
	if (n > 0 && (size_t)n < sizeof(c->name))
		snprintf(c->name + n, sizeof(c->name) - (size_t)n, "+%s", p->name);
	*out = c;
	return DG_OK;

out_tfree:
	transforms_free(c);
	p->destroy(c->pstate);
out_fdestroy:
	f->destroy(c->fstate);
out_free:
	free(c);
	return rc;
}

json_t *dg_codec_describe(const struct dg_codec *c, const json_t *spec)
{
	json_t *arr = json_is_object(spec) ? json_object_get(spec, "transforms") : NULL;

	if (!arr || !c->nt)
		return json_deep_copy(spec);
	json_t *out = json_deep_copy(spec), *ts = json_array();
	if (!out || !ts)
		goto fail;
	for (unsigned i = 0; i < c->nt; i++) {
		json_t *t = json_array_get(arr, i);
		json_t *d = c->tops[i]->describe(c->tstate[i], json_is_object(t) ? t : NULL);
		if (json_array_append_new(ts, d))
			goto fail;
	}
	if (json_object_set_new(out, "transforms", ts) == 0)
		return out;
	ts = NULL;
fail:
	json_decref(ts);
	json_decref(out);
	return NULL;
}

void dg_codec_free(struct dg_codec *c)
{
	if (!c)
		return;
	transforms_free(c);
	c->pops->destroy(c->pstate);
	c->fops->destroy(c->fstate);
	free(c);
}

const char *dg_codec_name(const struct dg_codec *c)
{
	return c->name;
}

unsigned dg_codec_max_frames(const struct dg_codec *c)
{
	return c->max_frames;
}

int dg_codec_split(struct dg_codec *c, const unsigned char *dgram, size_t len,
                   struct dg_frame *frames, unsigned *n, struct dg_parse_error *perr)
{
	*n = c->max_frames;
	perr->frame = 0;
	return c->fops->split(c->fstate, dgram, len, frames, n, perr);
}

/* Undo the transforms of frame (wire side first), then hand the result to
 * the payload in a buffer of its own from jansson's allocator (so the
 * daemon's memory budget counts it): the packet borrows that buffer, which
 * dg_codec_release() frees. */
static int decode_transformed(struct dg_codec *c, const unsigned char *frame, size_t len,
                              struct dg_packet *pkt, struct dg_parse_error *perr)
{
	json_malloc_t jmalloc;
	json_free_t jfree;
	const unsigned char *in = frame;
	size_t n = len;

	for (unsigned i = 0; i < c->nt; i++) {
		unsigned char *o = c->scratch[i & 1];
		size_t m = 0;
		int trc = c->tops[i]->decode(c->tstate[i], in, n, o, c->scratch_cap, &m, &perr->reason);
		if (trc) {
			perr->offset = 0;
			c->fault = trc == DG_TRANSFORM_EMISMATCH ? DG_FAULT_INTEGRITY
			           : trc == DG_E2BIG             ? DG_FAULT_SIZE
			           : trc == DG_ENOMEM            ? DG_FAULT_MEMORY
			                                         : DG_FAULT_CORRUPT;
			return DG_EINVAL;
		}
		in = o;
		n = m;
	}
	json_get_alloc_funcs(&jmalloc, &jfree);
	unsigned char *own = jmalloc(n ? n : 1);
	if (!own) {
		perr->reason = "out of memory for the decoded frame";
		perr->offset = 0;
		c->fault = DG_FAULT_MEMORY;
		return DG_EINVAL;
	}
	memcpy(own, in, n);
	int rc = c->pops->decode(c->pstate, own, n, pkt, perr);
	if (rc) {
		jfree(own);
		perr->offset = 0; /* an offset in decoded bytes means nothing on the wire */
		return rc;
	}
	if (pkt->data != own) {
		/* The packet must point at the frame it was given (the built-in
		 * payloads do) for release to find the buffer. */
		if (c->pops->release)
			c->pops->release(c->pstate, pkt);
		memset(pkt, 0, sizeof(*pkt));
		jfree(own);
		perr->reason = "payload does not point at its frame: it cannot follow transforms";
		perr->offset = 0;
		return DG_EINVAL;
	}
	return DG_OK;
}

int dg_codec_decode(struct dg_codec *c, const unsigned char *frame, size_t len,
                    struct dg_packet *pkt, struct dg_parse_error *perr)
{
	memset(pkt, 0, sizeof(*pkt));
	/* Whatever fails past the transforms is the payload's. */
	c->fault = DG_FAULT_PAYLOAD;
	int rc = c->nt ? decode_transformed(c, frame, len, pkt, perr)
	               : c->pops->decode(c->pstate, frame, len, pkt, perr);
	if (rc == DG_OK)
		c->fault = DG_FAULT_NONE;
	return rc;
}

enum dg_codec_fault dg_codec_fault(const struct dg_codec *c)
{
	return c->fault;
}

void dg_codec_release(struct dg_codec *c, struct dg_packet *pkt)
{
	void *own = c->nt ? (void *)pkt->data : NULL;

	if (c->pops->release)
		c->pops->release(c->pstate, pkt);
	if (own) {
		json_malloc_t jmalloc;
		json_free_t jfree;
		json_get_alloc_funcs(&jmalloc, &jfree);
		jfree(own);
	}
	memset(pkt, 0, sizeof(*pkt));
}

/* Encode pkt's payload, then the transforms from the payload side out, the
 * last one straight into the frame at dst (cap bytes). */
static int encode_transformed(struct dg_codec *c, const struct dg_packet *pkt,
                              unsigned char *dst, size_t cap, size_t *len)
{
	size_t n;
	unsigned cur = 0;
	int rc = c->pops->encode(c->pstate, pkt, c->scratch[0], c->scratch_cap, &n);

	if (rc)
		return rc;
	for (unsigned i = c->nt; i-- > 0;) {
		unsigned char *o = i == 0 ? dst : c->scratch[cur ^ 1];
		rc = c->tops[i]->encode(c->tstate[i], c->scratch[cur], n, o,
		                        i == 0 ? cap : c->scratch_cap, &n);
		if (rc)
			return rc;
		cur ^= 1;
	}
	*len = n;
	return DG_OK;
}

int dg_codec_append(struct dg_codec *c, const struct dg_packet *pkt, struct dg_outdgram *out)
{
	size_t len;
	int rc;

	if (out->frames >= c->max_frames || out->used + c->head + c->tail > out->cap)
		return DG_E2BIG;
	/* The payload is encoded in place, between room for the framing. */
	unsigned char *frame = out->buf + out->used;
	size_t room = out->cap - out->used - c->head - c->tail;
	if (c->nt)
		rc = encode_transformed(c, pkt, frame + c->head, room, &len);
	else
		rc = c->pops->encode(c->pstate, pkt, frame + c->head, room, &len);
	if (rc)
		return rc;
	rc = c->fops->seal(c->fstate, frame, len);
	if (rc)
		return rc;
	out->used += c->head + len + c->tail;
	out->frames++;
	return DG_OK;
}

static bool framing_ok(const struct dg_framing_ops *f)
{
	return f->size >= sizeof(*f) && f->name && f->create && f->destroy &&
	       f->split && f->bounds && f->seal && f->max_frames;
}

static bool payload_ok(const struct dg_payload_ops *p)
{
	return p->size >= sizeof(*p) && p->name && p->create && p->destroy &&
	       p->decode && p->encode;
}

int dg_codec_register(const struct dg_codec_module *m, char *err, size_t errlen)
{
	if (m->magic != DG_CODEC_MAGIC) {
		snprintf(err, errlen, "bad magic 0x%08x (expected 0x%08x): not a dgramd codec module",
		         (unsigned)m->magic, (unsigned)DG_CODEC_MAGIC);
		return DG_EINVAL;
	}
	if (m->abi_major != DG_CODEC_ABI_MAJOR || m->abi_minor > DG_CODEC_ABI_MINOR) {
		snprintf(err, errlen, "built for codec ABI %u.%u, this dgramd provides %u.%u",
		         m->abi_major, m->abi_minor, DG_CODEC_ABI_MAJOR, DG_CODEC_ABI_MINOR);
		return DG_EINVAL;
	}
	if (m->size < sizeof(*m)) {
		snprintf(err, errlen, "module struct is %u bytes, expected at least %zu",
		         (unsigned)m->size, sizeof(*m));
		return DG_EINVAL;
	}
	if (!m->framing && !m->payload) {
		snprintf(err, errlen, "module has neither a framing nor a payload layer");
		return DG_EINVAL;
	}
	if (m->framing && !framing_ok(m->framing)) {
		snprintf(err, errlen, "framing layer is incomplete (size or a required callback)");
		return DG_EINVAL;
	}
	if (m->payload && !payload_ok(m->payload)) {
		snprintf(err, errlen, "payload layer is incomplete (size or a required callback)");
		return DG_EINVAL;
	}
	if (m->framing && find_framing(m->framing->name)) {
		snprintf(err, errlen, "framing '%s' is already registered", m->framing->name);
		return DG_EINVAL;
	}
	if (m->payload && find_payload(m->payload->name)) {
		snprintf(err, errlen, "payload '%s' is already registered", m->payload->name);
		return DG_EINVAL;
	}
	if ((m->framing && n_mod_framings == DG_CODEC_MAX_MODULE_LAYERS) ||
	    (m->payload && n_mod_payloads == DG_CODEC_MAX_MODULE_LAYERS)) {
		snprintf(err, errlen, "too many codec modules (at most %d)", DG_CODEC_MAX_MODULE_LAYERS);
		return DG_E2BIG;
	}
	if (m->framing)
		mod_framings[n_mod_framings++] = m->framing;
	if (m->payload)
		mod_payloads[n_mod_payloads++] = m->payload;
	return DG_OK;
}

void dg_codec_registry_reset(void)
{
	n_mod_framings = n_mod_payloads = 0;
}

int dg_opt_uint(const json_t *spec, const char *key, unsigned def,
                      unsigned lo, unsigned hi, unsigned *out, char *err, size_t errlen)
{
	json_t *v = spec ? json_object_get(spec, key) : NULL;

	*out = def;
	if (!v)
		return DG_OK;
	if (!json_is_integer(v) || json_integer_value(v) < (json_int_t)lo ||
	    json_integer_value(v) > (json_int_t)hi) {
		snprintf(err, errlen, ".%s: expected an integer from %u to %u", key, lo, hi);
		return DG_EINVAL;
	}
	*out = (unsigned)json_integer_value(v);
	return DG_OK;
}

int dg_opt_bool(const json_t *spec, const char *key, bool def, bool *out,
                      char *err, size_t errlen)
{
	json_t *v = spec ? json_object_get(spec, key) : NULL;

	*out = def;
	if (!v)
		return DG_OK;
	if (!json_is_boolean(v)) {
		snprintf(err, errlen, ".%s: expected true or false", key);
		return DG_EINVAL;
	}
	*out = json_is_true(v);
	return DG_OK;
}

int dg_opt_enum(const json_t *spec, const char *key, const char *const *choices,
                      unsigned def, unsigned *out, char *err, size_t errlen)
{
	json_t *v = spec ? json_object_get(spec, key) : NULL;

	*out = def;
	if (!v)
		return DG_OK;
	for (unsigned i = 0; json_is_string(v) && choices[i]; i++) {
		if (!strcmp(json_string_value(v), choices[i])) {
			*out = i;
			return DG_OK;
		}
	}
	int n = snprintf(err, errlen, ".%s: expected ", key);
	for (unsigned i = 0; choices[i] && n >= 0 && (size_t)n < errlen; i++)
		n += snprintf(err + n, errlen - (size_t)n, "%s\"%s\"",
		              i == 0 ? "" : choices[i + 1] ? ", " : " or ", choices[i]);
	return DG_EINVAL;
}

int dg_payload_encode_any(void *state, const struct dg_packet *pkt,
                          unsigned char *buf, size_t cap, size_t *len)
{
	(void)state;
	if (pkt->json) {
		size_t n = json_dumpb(pkt->json, (char *)buf, cap, JSON_COMPACT | JSON_ENCODE_ANY);
		if (n == 0)
			return DG_EINVAL; /* jansson could not encode the value */
		if (n > cap)
			return DG_E2BIG;
		*len = n;
		return DG_OK;
	}
	if (pkt->len > cap)
		return DG_E2BIG;
	if (pkt->len && !pkt->data)
		return DG_EINVAL;
	if (pkt->len)
		memcpy(buf, pkt->data, pkt->len);
	*len = pkt->len;
	return DG_OK;
}
