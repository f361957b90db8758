/* TFTP packets (RFC 1350) with options (RFC 2347, 2348, 2349): parsing and
 * building, no I/O and no allocation. Shared by the tftp plugin and its
 * fuzz harness (tests/fuzz/fuzz_tftp.c). */
#ifndef DG_TFTP_PROTO_H
#define DG_TFTP_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum tftp_opcode {
	TFTP_RRQ = 1,
	TFTP_WRQ = 2,
	TFTP_DATA = 3,
	TFTP_ACK = 4,
	TFTP_ERROR = 5,
	TFTP_OACK = 6,
};

/* Error codes of an ERROR packet (RFC 1350, 2347). */
enum tftp_error {
	TFTP_EUNDEF = 0,    /* not defined, see the message */
	TFTP_ENOTFOUND = 1, /* file not found */
	TFTP_EACCESS = 2,   /* access violation */
	TFTP_ENOSPACE = 3,
	TFTP_EBADOP = 4,    /* illegal TFTP operation */
	TFTP_EBADID = 5,    /* unknown transfer ID */
	TFTP_EEXISTS = 6,
	TFTP_ENOUSER = 7,
	TFTP_EOPTNEG = 8,   /* option negotiation refused */
};

enum tftp_mode {
	TFTP_MODE_OCTET = 1,
	TFTP_MODE_NETASCII = 2,
	TFTP_MODE_MAIL = 3,
};

#define TFTP_HEADER 4            /* opcode + block number */
#define TFTP_BLKSIZE_DEFAULT 512 /* RFC 1350 */
#define TFTP_BLKSIZE_MIN 8       /* RFC 2348 */
#define TFTP_BLKSIZE_MAX 65464   /* RFC 2348 */
#define TFTP_TIMEOUT_MIN 1       /* RFC 2349, seconds */
#define TFTP_TIMEOUT_MAX 255

/* The options this server knows, as bits of tftp_msg.opts. An option that
 * is absent, or whose value is not a valid one (not a decimal number, out
 * of its RFC's range), is not set: RFC 2347 lets a server leave out of its
 * OACK any option it does not accept. */
enum tftp_opt {
	TFTP_OPT_BLKSIZE = 1u << 0,
	TFTP_OPT_TIMEOUT = 1u << 1,
	TFTP_OPT_TSIZE = 1u << 2,
};

/* A parsed packet. The strings point into the packet (which holds their
 * terminating NULs): valid while it is. */
struct tftp_msg {
	int opcode;          /* enum tftp_opcode */
	/* RRQ, WRQ */
	const char *file;    /* NUL-terminated inside the packet */
	size_t file_len;
	int mode;            /* enum tftp_mode */
	unsigned opts;       /* enum tftp_opt bits: the valid known options */
	unsigned blksize;    /* TFTP_OPT_BLKSIZE: 8 .. 65464 */
	unsigned timeout;    /* TFTP_OPT_TIMEOUT: 1 .. 255 seconds */
	uint64_t tsize;      /* TFTP_OPT_TSIZE */
	unsigned n_options;  /* option pairs in the packet, known or not */
	/* DATA, ACK */
	uint16_t block;
	/* DATA */
	const unsigned char *data;
	size_t data_len;
	/* ERROR */
	uint16_t error;
	const char *message; /* NUL-terminated inside the packet */
};

/* Parse len bytes at p into *m. Returns 0, or the TFTP error code to answer
 * with (TFTP_EBADOP: malformed or unknown opcode) and sets *why to a static
 * reason. Checks: the opcode is known; strings end with a NUL inside the
 * packet; RRQ/WRQ have a non-empty file name and a known mode (any case),
 * options come in name/value pairs, a known option appears at most once
 * (names compared in any case: RFC 2347), at most TFTP_MAX_OPTIONS pairs;
 * DATA/ACK carry a block number (ACK nothing after it); ERROR a message. */
int tftp_parse(const unsigned char *p, size_t len, struct tftp_msg *m, const char **why);

#define TFTP_MAX_OPTIONS 32

/* Build packets into buf (cap bytes). Each returns the length, or 0 when it
 * does not fit. */
size_t tftp_build_error(unsigned char *buf, size_t cap, unsigned code, const char *message);
size_t tftp_build_ack(unsigned char *buf, size_t cap, uint16_t block);

/* An OACK with the options of o (opts bits, blksize, timeout, tsize). */
size_t tftp_build_oack(unsigned char *buf, size_t cap, const struct tftp_msg *o);

/* An RRQ/WRQ of m's fields (file, mode, options in opts): the inverse of
 * tftp_parse, for tests and the fuzz harness. */
size_t tftp_build_request(unsigned char *buf, size_t cap, const struct tftp_msg *m);

/* Is file a name this server may look up beneath its root? Refused: empty,
 * absolute ("/..."), with a ".." component, or with a control character
 * (bytes 1..31 and 127). Returns NULL if acceptable, else a static reason.
 * Symbolic links are the lookup's business (plugins/tftp/tftp.c). */
const char *tftp_path_refusal(const char *file, size_t len);

#endif
