/* libFuzzer harness for the tftp plugin's packet parser (plugins/tftp/proto.c).
 * The input is one datagram. Properties checked (abort on violation):
 *   - parsing never crashes or reads out of bounds (ASan, UBSan);
 *   - a parsed RRQ/WRQ's file name lies inside the datagram and ends with
 *     its NUL; option values are inside their RFC's ranges; at most
 *     TFTP_MAX_OPTIONS pairs;
 *   - build(parse(d)) parses again to the same file, mode and options, and
 *     building that gives the same bytes (the request round trip);
 *   - an OACK built from the parsed options fits 64 bytes;
 *   - a name tftp_path_refusal accepts has no ".." component, no leading
 *     '/' and no control character.
 * tests/fuzz/replay.c runs the same function over the corpus in plain builds. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto.h"

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

#define CHECK(cond)                                                                     \
	do {                                                                            \
		if (!(cond)) {                                                          \
			fprintf(stderr, "fuzz_tftp: %s:%d: %s\n", __FILE__, __LINE__, #cond); \
			abort();                                                        \
		}                                                                       \
	} while (0)

/* The property of an accepted name, checked the slow way. */
static void check_path(const char *file, size_t len)
{
	if (tftp_path_refusal(file, len))
		return;
	CHECK(len > 0 && file[0] != '/');
	for (size_t i = 0; i < len; i++)
		CHECK((unsigned char)file[i] >= 0x20 && file[i] != 0x7f);
	for (size_t start = 0; start <= len;) {
		const char *slash = memchr(file + start, '/', len - start);
		size_t end = slash ? (size_t)(slash - file) : len;
		CHECK(!(end - start == 2 && file[start] == '.' && file[start + 1] == '.'));
		start = end + 1;
	}
}

static void check_request(const unsigned char *data, size_t size, const struct tftp_msg *m)
{
	unsigned char a[70000], b[70000];
	struct tftp_msg again;
	const char *why;

	CHECK((const unsigned char *)m->file >= data + 2);
	CHECK((const unsigned char *)m->file + m->file_len < data + size);
	CHECK(m->file[m->file_len] == '\0' && strlen(m->file) == m->file_len);
	CHECK(m->mode >= TFTP_MODE_OCTET && m->mode <= TFTP_MODE_MAIL);
	CHECK(m->n_options <= TFTP_MAX_OPTIONS);
	if (m->opts & TFTP_OPT_BLKSIZE)
		CHECK(m->blksize >= TFTP_BLKSIZE_MIN && m->blksize <= TFTP_BLKSIZE_MAX);
	if (m->opts & TFTP_OPT_TIMEOUT)
		CHECK(m->timeout >= TFTP_TIMEOUT_MIN && m->timeout <= TFTP_TIMEOUT_MAX);
	check_path(m->file, m->file_len);

	size_t n = tftp_build_request(a, sizeof(a), m);
	CHECK(n > 0);
	CHECK(tftp_parse(a, n, &again, &why) == 0);
	CHECK(again.opcode == m->opcode && again.mode == m->mode && again.opts == m->opts);
	CHECK(again.file_len == m->file_len && !memcmp(again.file, m->file, m->file_len));
	CHECK(!(m->opts & TFTP_OPT_BLKSIZE) || again.blksize == m->blksize);
	CHECK(!(m->opts & TFTP_OPT_TIMEOUT) || again.timeout == m->timeout);
	CHECK(!(m->opts & TFTP_OPT_TSIZE) || again.tsize == m->tsize);
	CHECK(tftp_build_request(b, sizeof(b), &again) == n && !memcmp(a, b, n));
	CHECK(tftp_build_oack(b, 64, m) > 0 || m->opts == 0);
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
	struct tftp_msg m;
	const char *why = NULL;
	/* A copy of exactly size bytes, so ASan sees any read past the end. */
	unsigned char *copy = malloc(size ? size : 1);

	if (!copy)
		return 0;
	if (size)
		memcpy(copy, data, size);
	int rc = tftp_parse(copy, size, &m, &why);
	if (rc) {
		CHECK(rc == TFTP_EBADOP && why != NULL);
	} else if (m.opcode == TFTP_RRQ || m.opcode == TFTP_WRQ) {
		check_request(copy, size, &m);
	} else if (m.opcode == TFTP_ERROR) {
		CHECK((const unsigned char *)m.message >= copy + 4 &&
		      (const unsigned char *)m.message + strlen(m.message) < copy + size);
	} else if (m.opcode == TFTP_DATA || m.opcode == TFTP_ACK) {
		CHECK(m.data_len == size - TFTP_HEADER);
	} else {
		CHECK(m.opcode == TFTP_OACK);
	}
	free(copy);
	return 0;
}
