/* dns cookie: server cookies as RFC 9018 makes them (interoperable with
 * NSD, BIND, Knot and Unbound given the same secret): 16 bytes, version 1,
 * three reserved bytes, a 32-bit Unix timestamp, and SipHash-2-4 over the
 * client cookie, those 8 bytes and the client's address, keyed with the
 * server secret. Nothing is kept per client: a cookie checks itself. */
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>

#include "../siphash.h"
#include "dns.h"

bool dns_cookies_peer(struct dns_cookies *ck, const struct sockaddr *sa)
{
	if (sa->sa_family == AF_INET) {
		ck->ip = (const uint8_t *)&((const struct sockaddr_in *)sa)->sin_addr;
		ck->iplen = 4;
		return true;
	}
	if (sa->sa_family == AF_INET6) {
		ck->ip = ((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr;
		ck->iplen = 16;
		return true;
	}
	return false;
}

void dns_cookie_make(const struct dns_cookies *ck, const uint8_t *client, uint32_t ts, uint8_t *out)
{
	uint8_t in[DNS_COOKIE_CLIENT + 8 + 16];
	size_t n = DNS_COOKIE_CLIENT + 8;

	out[0] = 1; /* version */
	out[1] = out[2] = out[3] = 0;
	out[4] = (uint8_t)(ts >> 24);
	out[5] = (uint8_t)(ts >> 16);
	out[6] = (uint8_t)(ts >> 8);
	out[7] = (uint8_t)ts;
	memcpy(in, client, DNS_COOKIE_CLIENT);
	memcpy(in + DNS_COOKIE_CLIENT, out, 8);
	memcpy(in + n, ck->ip, ck->iplen);
	dg_siphash24_le(ck->secret, in, n + ck->iplen, out + 8);
}

bool dns_cookie_valid(const struct dns_cookies *ck, const uint8_t *cookie, size_t len)
{
	const uint8_t *server = cookie + DNS_COOKIE_CLIENT;
	uint8_t want[DNS_COOKIE_SERVER], diff = 0;

	if (len != DNS_COOKIE_LEN || server[0] != 1 || server[1] || server[2] || server[3])
		return false;
	uint32_t ts = (uint32_t)server[4] << 24 | (uint32_t)server[5] << 16 |
	              (uint32_t)server[6] << 8 | server[7];
	int32_t age = (int32_t)(ck->now - ts); /* RFC 1982: the clock may wrap */
	if (age > DNS_COOKIE_MAX_AGE || age < -DNS_COOKIE_MAX_AHEAD)
		return false;
	dns_cookie_make(ck, cookie, ts, want);
	/* Constant time: how many hash bytes match must not show in timing. */
	for (size_t i = 8; i < DNS_COOKIE_SERVER; i++)
		diff |= (uint8_t)(want[i] ^ server[i]);
	return diff == 0;
}
