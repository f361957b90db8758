/* SipHash-2-4 (Aumasson and Bernstein), for the shipped plugins' keyed
 * hashes: kv's cookies and the dns plugin's DNS Cookies (RFC 9018). Not
 * installed, not part of the ABI: a plugins-internal header, static inline
 * so each plugin that includes it builds its own copy from this one source.
 *
 * The key is 16 bytes, read as two little-endian 64-bit words, and the
 * result is the 64-bit value the reference implementation stores
 * little-endian: the bytes RFC 9018's test vectors show are those of
 * dg_siphash24_le(). */
#ifndef DG_PLUGINS_SIPHASH_H
#define DG_PLUGINS_SIPHASH_H

#include <stddef.h>
#include <stdint.h>

#define DG_SIP_ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))

static inline void dg_sipround(uint64_t v[4])
{
	v[0] += v[1]; v[1] = DG_SIP_ROTL(v[1], 13); v[1] ^= v[0]; v[0] = DG_SIP_ROTL(v[0], 32);
	v[2] += v[3]; v[3] = DG_SIP_ROTL(v[3], 16); v[3] ^= v[2];
	v[0] += v[3]; v[3] = DG_SIP_ROTL(v[3], 21); v[3] ^= v[0];
	v[2] += v[1]; v[1] = DG_SIP_ROTL(v[1], 17); v[1] ^= v[2]; v[2] = DG_SIP_ROTL(v[2], 32);
}

static inline uint64_t dg_sip_le64(const unsigned char *p)
{
	uint64_t m = 0;

	for (int j = 7; j >= 0; j--)
		m = m << 8 | p[j];
	return m;
}

/* SipHash-2-4 of in[0..len) under the 16-byte key. */
static inline uint64_t dg_siphash24(const unsigned char key[16], const unsigned char *in, size_t len)
{
	uint64_t k0 = dg_sip_le64(key), k1 = dg_sip_le64(key + 8);
	uint64_t v[4] = { k0 ^ 0x736f6d6570736575ull, k1 ^ 0x646f72616e646f6dull,
	                  k0 ^ 0x6c7967656e657261ull, k1 ^ 0x7465646279746573ull };
	uint64_t m, b = (uint64_t)len << 56;
	size_t i;

	for (i = 0; i + 8 <= len; i += 8) {
		m = dg_sip_le64(in + i);
		v[3] ^= m;
		dg_sipround(v);
		dg_sipround(v);
		v[0] ^= m;
	}
	for (size_t j = 0; i + j < len; j++)
		b |= (uint64_t)in[i + j] << (8 * j);
	v[3] ^= b;
	dg_sipround(v);
	dg_sipround(v);
	v[0] ^= b;
	v[2] ^= 0xff;
	for (int r = 0; r < 4; r++)
		dg_sipround(v);
	return v[0] ^ v[1] ^ v[2] ^ v[3];
}

/* The hash as the reference implementation writes it: 8 bytes, little-endian. */
static inline void dg_siphash24_le(const unsigned char key[16], const unsigned char *in, size_t len,
                                   unsigned char out[8])
{
	uint64_t h = dg_siphash24(key, in, len);

	for (int j = 0; j < 8; j++)
		out[j] = (unsigned char)(h >> (8 * j));
}

#endif /* DG_PLUGINS_SIPHASH_H */
