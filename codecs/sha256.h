/* SHA-256 (FIPS 180-4) and HMAC-SHA256 (RFC 2104), for the base64
 * transform's checksums. Small, allocation-free, one call per message. */
#ifndef DG_SHA256_H
#define DG_SHA256_H

#include <stdbool.h>
#include <stddef.h>

#define DG_SHA256_LEN 32

/* out = SHA-256(data[0..len)). */
void dg_sha256(const void *data, size_t len, unsigned char out[DG_SHA256_LEN]);

/* out = HMAC-SHA256(key, data). */
void dg_hmac_sha256(const void *key, size_t keylen, const void *data, size_t len,
                    unsigned char out[DG_SHA256_LEN]);

/* a[0..n) == b[0..n), in time that depends on n only. */
bool dg_digest_equal(const unsigned char *a, const unsigned char *b, size_t n);

#endif
