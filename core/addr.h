/* Numeric socket addresses, as config files and logs write them. */
#ifndef DG_ADDR_H
#define DG_ADDR_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

/* A bind address: numeric IPv4 "a.b.c.d:port" or IPv6 "[addr]:port". */
struct dg_addr {
	struct sockaddr_storage ss;
	socklen_t len;
};

/* Parse "host:port" as above into *addr; false if it is not one. */
bool dg_addr_parse(const char *text, struct dg_addr *addr);

/* Format an address as "1.2.3.4:53" or "[::1]:53" (always terminated). */
const char *dg_addr_format(const struct sockaddr *sa, char *buf, size_t len);

#endif
