/* The tftp plugin's test fixture: a root directory with the files the tests
 * fetch (and the traps they must not), configs made from the shipped
 * conf/examples/tftp.json, the plugin's and listener's metrics, and a raw
 * TFTP client that speaks packet by packet. Shared by test_tftp (raw
 * client) and test_tftp_clients (curl, tftp-hpa). */
#ifndef DG_TFTP_FIXTURE_H
#define DG_TFTP_FIXTURE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "testutil.h"

#define TFTP_BIG_SIZE (5u * 1024 * 1024)

/* Make (once) and return the root: f0, f511, f512, f513, f1100, big (5 MiB),
 * sub/g (100 bytes), mid (256 KiB + 77), roll (600,000),
 * pxelinux.cfg/01-52-54-00-12-34-56 (1,100: a PXE client's path), link_in -> f513, link_out -> a file outside root,
 * dir_out -> a directory outside root (holding secret), abs_out -> that
 * file by its absolute path, fifo (a FIFO), secret-dir (a directory). The
 * files hold pseudo-random bytes. */
const char *tftp_root(void);

/* The path of name (beneath root), or of name in the scratch directory
 * for downloads. Static buffers, one per function. */
const char *tftp_root_path(const char *name);
const char *tftp_out_path(const char *name);

/* Are the two files equal, byte for byte? */
bool tftp_same_file(const char *a, const char *b);

/* conf/examples/tftp.json as shipped, with: bind 127.0.0.1:0, root the
 * fixture's, /metrics on 127.0.0.1:0, then each (from, to) pair of repl
 * (NULL-terminated, may be NULL) replaced once (a missing 'from' fails the
 * test). Returns a static buffer. */
const char *tftp_config(const char *const *repl);

/* Start a daemon on tftp_config(repl) (CUnit-fatal on failure). */
void tftp_start(struct dg_daemon *d, const char *const *repl);

/* The sum over workers of a metric of listener "tftp" at /metrics:
 * name is the full name ("dgramd_plugin_tftp_active",
 * "dgramd_tx_total"), with an optional label to match
 * ("dgramd_tx_drops_total{reason=\"amplification\"}"). -1 if absent or
 * unreachable. */
long long tftp_metric(const struct dg_daemon *d, const char *name);

/* Poll the metric until it equals want, up to timeout_ms. */
bool tftp_wait_metric(const struct dg_daemon *d, const char *name, long long want,
                      unsigned timeout_ms);

/* Open file descriptors of the daemon's worker, -1 if unknown. */
int tftp_worker_fds(const struct dg_daemon *d);

/* ---- raw client ---- */

/* A UDP socket on 127.0.0.1 (src NULL) or src, connected to nothing. */
int tftp_socket(const char *src);

/* Send bytes to the daemon's listener. */
void tftp_send(int fd, const struct dg_daemon *d, const void *p, size_t len);

/* An RRQ for file in mode with "name", "value" option pairs (NULL-ended). */
size_t tftp_rrq(unsigned char *buf, size_t cap, int opcode, const char *file, const char *mode,
                const char *const *opts);

/* Receive one packet within timeout_ms: its length, or -1 on timeout. */
ssize_t tftp_recv(int fd, unsigned char *buf, size_t cap, unsigned timeout_ms);

/* An ACK of block. */
void tftp_ack(int fd, const struct dg_daemon *d, uint16_t block);

/* Opcode and block/error code of a received packet. */
unsigned tftp_op(const unsigned char *p);
unsigned tftp_num(const unsigned char *p);

#endif
