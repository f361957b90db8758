/*
 * <dgramd/testing.h>: unit-test a dgramd plugin in-process, with no sockets.
 *
 * A harness is one dgramd server with one listener, built from the same core
 * code as the daemon (the dispatch path, sessions, request table, timers,
 * codecs, counters), with three things swapped out:
 *  - datagrams come from the test (dg_harness_send*) instead of recvmmsg;
 *  - replies end in a capture list (dg_harness_reply) instead of sendmmsg;
 *  - the clock is fake: it moves only with dg_harness_advance(), which fires
 *    the timers that fall due, in order (handler deadlines, idle sessions,
 *    plugin timers from host->timer_start, conversation timeouts); the
 *    plugin reads it with host->now_ms (ABI 1.2).
 * So DG_ESTALE, timeouts, per-peer ordering, reply coalescing, limits and
 * counters behave as in the daemon.
 *
 * Link with libdgramd-testing (pkg-config dgramd-testing). The CUnit
 * helpers at the end need <CUnit/CUnit.h> (or <CUnit/Basic.h>) included
 * first; the library itself does not use CUnit.
 *
 * Several harnesses may live in one process (one per test, say). Every
 * function runs on the calling thread, which must be the one that made the
 * harness; one harness is not for two threads at once. Process-wide, as in
 * the daemon: the log (stderr, at dgramd's default level) and the codec
 * registry (so at most one harness at a time may use "codec_modules").
 * Where the harness differs from the daemon: memory_budget does not count
 * the decoded packets' jansson memory (dgramd counts it with its own
 * jansson allocator, which a library cannot install for the test), and
 * the capture sink never refuses a reply (no send queue, no send errors).
 *
 * A test:
 *
 *     struct dg_harness *h = dg_harness_new(
 *             "{\"codec\": \"json\", \"handler\": {\"plugin\": \"./echo.so\"},"
 *             " \"handler_timeout_ms\": 100}", NULL, err, sizeof(err));
 *     dg_harness_send_text(h, "127.0.0.1:5000", "{\"a\": 1}");
 *     DG_TEST_ASSERT_REPLY(h, 0, "{\"a\": 1}");
 *     dg_harness_advance(h, 100);          // deadlines fire
 *     DG_TEST_ASSERT_COUNTER(h, "timeouts", 0);
 *     dg_harness_free(h);
 */
#ifndef DGRAMD_TESTING_H
#define DGRAMD_TESTING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include <dgramd/plugin.h>

#ifdef __cplusplus
extern "C" {
#endif

/* One harness: a server with one listener. Opaque. */
struct dg_harness;

/* A reply the listener sent, as it would have gone out on the wire. Owned
 * by the harness; valid until dg_harness_clear() or dg_harness_free(). */
struct dg_harness_reply {
	const unsigned char *data; /* the encoded datagram (framing included) */
	size_t len;
	struct sockaddr_storage to; /* the peer it is sent to */
	socklen_t tolen;
	struct sockaddr_storage from; /* the local address it leaves from */
	socklen_t fromlen;
	uint64_t at_ms;  /* dg_harness_now() when it was sent */
	char to_text[64]; /* to as "127.0.0.1:5000" or "[::1]:5000" */
};

/* Make a harness. listener is JSON text: either one listener object as in
 * the "listeners" array of a dgramd config file ("codec", "handler",
 * limits such as "handler_timeout_ms", "peer_queue", "max_peers"...), or a
 * whole config file with exactly one listener (for server-wide keys such
 * as "max_pending" or "log"). "name" defaults to "test" and "bind" to
 * "127.0.0.1:5300" (nothing is bound: it is the local address datagrams
 * arrive at). The config is checked as dgramd -t checks it.
 *
 * plugin: a descriptor linked into the test program, used instead of
 * loading handler.plugin (which may then be left out); it is checked as a
 * loaded one is (magic, ABI, size). NULL: load handler.plugin, a path to a
 * .so (relative to the current directory) or a name looked up in dgramd's
 * plugin directory.
 *
 * The plugin's init() runs here. Returns the harness (free it with
 * dg_harness_free), or NULL with the reason in err (always terminated when
 * errlen > 0): a config error with its key path, a plugin that cannot load
 * or whose init() refused its config. */
struct dg_harness *dg_harness_new(const char *listener, const struct dg_plugin *plugin,
                                  char *err, size_t errlen);

/* Stop as dgramd does (requests in flight abandoned, sessions closed with
 * DG_CLOSE_SHUTDOWN, timers cancelled), call the plugin's fini() and free
 * everything, replies included. NULL: no-op. */
void dg_harness_free(struct dg_harness *h);

/* A datagram of len bytes (copied) from peer ("127.0.0.1:5000",
 * "[::1]:5000") to the listener's bind address. It goes through the whole
 * receive path (ACL, rate limits, max_datagram, accept(), the session,
 * the peer queue, framing, decoding, the handler), then the work the
 * daemon does before its next poll runs too (queued datagrams, the frames
 * after a completed one, the reply flush). DG_OK, or DG_EINVAL if peer is
 * not an address (nothing sent). What happened to the datagram shows in
 * the counters and replies. */
int dg_harness_send(struct dg_harness *h, const char *peer, const void *data, size_t len);

/* dg_harness_send() of a NUL-terminated string (without the NUL). */
int dg_harness_send_text(struct dg_harness *h, const char *peer, const char *text);

/* dg_harness_send() from a socket address, to local (the address the
 * datagram was sent to, as on a wildcard bind; NULL: the bind address).
 * Both are copied. DG_OK or DG_EINVAL (a family other than AF_INET and
 * AF_INET6, or a length too short for it). */
int dg_harness_send_addr(struct dg_harness *h, const struct sockaddr *peer, socklen_t peerlen,
                         const struct sockaddr *local, socklen_t locallen,
                         const void *data, size_t len);

/* Encode pkt with the listener's codec into one datagram (pkt is read
 * during the call) and dg_harness_send() it. DG_OK; DG_EINVAL (bad peer,
 * or a packet the codec cannot encode: a json codec needs pkt->json);
 * DG_E2BIG (it does not fit max_datagram). */
int dg_harness_send_packet(struct dg_harness *h, const char *peer, const struct dg_packet *pkt);

/* Between begin and end, datagrams sent are one receive batch of the
 * daemon (one recvmmsg): the flush and the deferred work run once, at
 * dg_harness_batch_end(). Replies of one request coalesce within a batch
 * as the codec's framing allows. Batches do not nest. */
void dg_harness_batch_begin(struct dg_harness *h);
void dg_harness_batch_end(struct dg_harness *h);

/* The fake clock, in ms since the harness was made (it starts at 0).
 * host->now_ms gives the plugin the same clock from another origin: it
 * moves by exactly what this one moves. */
uint64_t dg_harness_now(const struct dg_harness *h);

/* Move the clock ms forward. Every timer due on the way fires at its own
 * time, in due order, with the daemon's deferred work (and the flush) run
 * after each: handler_timeout_ms deadlines (on_timeout / on_expire), the
 * idle-session sweep (session_idle_ms; on_session_close), plugin timers
 * and conversation timeouts. */
void dg_harness_advance(struct dg_harness *h, uint64_t ms);

/* Run the real event loop for up to real_ms of real time, or until at
 * least `replies` replies have been captured in all, whichever is first:
 * for plugins doing their own I/O on host->event_base() (a socket to an
 * upstream service, say). The fake clock does not move. Returns true if
 * the count was reached. */
bool dg_harness_run(struct dg_harness *h, size_t replies, unsigned real_ms);

/* Run the real event loop once without waiting: the events that are ready
 * now run, as the daemon's loop would run them (a signal the test raised
 * with raise(), e.g. SIGUSR1 to a plugin that watches it with evsignal on
 * host->event_base(); a socket of the plugin's own with data waiting), then
 * the deferred work. The fake clock does not move. */
void dg_harness_poll(struct dg_harness *h);

/* Replies captured so far, oldest first. dg_harness_reply() returns NULL
 * past the end; the pointer is the harness's (see struct
 * dg_harness_reply). dg_harness_clear() forgets them all. */
size_t dg_harness_replies(const struct dg_harness *h);
const struct dg_harness_reply *dg_harness_reply(const struct dg_harness *h, size_t i);
void dg_harness_clear(struct dg_harness *h);

/* Does reply i hold exactly text (strlen(text) bytes)? If not (or there is
 * no reply i), says what it holds on stderr and returns false. */
bool dg_harness_reply_is(const struct dg_harness *h, size_t i, const char *text);

/* As dg_harness_reply_is(), and reply i goes to peer ("127.0.0.1:5000"). */
bool dg_harness_reply_is_to(const struct dg_harness *h, size_t i, const char *peer,
                            const char *text);

/* A counter of the listener by the name the daemon's stats line gives it:
 * "rx", "handled", "packets", "timeouts", "tx", "stale_calls",
 * "drop_peer_queue", "tx_drop_too_big"...; or a metric the plugin made
 * with host->metric_new, by its name. UINT64_MAX (and a line on stderr)
 * for a name that is none of those. */
uint64_t dg_harness_counter(const struct dg_harness *h, const char *name);

/* The counters as the daemon's stats line shows them (" rx=1 rx_bytes=4
 * ..."), into buf (always terminated). Returns buf. */
const char *dg_harness_stats(const struct dg_harness *h, char *buf, size_t len);

/* Peer sessions open now, and requests in progress now (pending or with
 * frames left). */
unsigned dg_harness_sessions(const struct dg_harness *h);
unsigned dg_harness_pending(const struct dg_harness *h);

/* The plugin's state (what its init() stored in *state), to look inside
 * in a test; owned by the plugin. */
void *dg_harness_state(const struct dg_harness *h);

/* ---- CUnit helpers (include <CUnit/CUnit.h> before using them) ---- */

/* There are exactly n replies. */
#define DG_TEST_ASSERT_REPLIES(h, n) CU_ASSERT_EQUAL(dg_harness_replies(h), (size_t)(n))

/* Reply i holds exactly text. */
#define DG_TEST_ASSERT_REPLY(h, i, text) CU_ASSERT_TRUE(dg_harness_reply_is((h), (i), (text)))

/* Reply i holds exactly text and goes to peer. */
#define DG_TEST_ASSERT_REPLY_TO(h, i, peer, text)                             \
	CU_ASSERT_TRUE(dg_harness_reply_is_to((h), (i), (peer), (text)))

/* The counter called name equals n. */
#define DG_TEST_ASSERT_COUNTER(h, name, n)                                    \
	CU_ASSERT_EQUAL(dg_harness_counter((h), (name)), (uint64_t)(n))

/* main() for a test program of one suite: runs tests (a CU_TestInfo array
 * ending with CU_TEST_INFO_NULL) with CUnit's basic runner and exits
 * non-zero if any assertion failed. Needs <CUnit/Basic.h>. */
#define DG_TEST_CUNIT_MAIN(suite_name, tests)                                 \
	int main(void)                                                          \
	{                                                                       \
		CU_SuiteInfo suites_[] = {                                      \
			{ suite_name, NULL, NULL, NULL, NULL, tests },          \
			CU_SUITE_INFO_NULL,                                     \
		};                                                              \
		unsigned failed_;                                               \
		if (CU_initialize_registry() != CUE_SUCCESS ||                  \
		    CU_register_suites(suites_) != CUE_SUCCESS)                 \
			return 2;                                               \
		CU_basic_set_mode(CU_BRM_VERBOSE);                              \
		CU_basic_run_tests();                                           \
		failed_ = CU_get_number_of_failures() +                         \
		          CU_get_number_of_tests_failed();                      \
		CU_cleanup_registry();                                          \
		return failed_ ? 1 : 0;                                         \
	}

#ifdef __cplusplus
}
#endif
#endif /* DGRAMD_TESTING_H */
