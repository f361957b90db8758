/* Test support: CUnit suites from tables, and helpers that start the real
 * dgramd on loopback and talk to it over real sockets. */
#ifndef DG_TESTUTIL_H
#define DG_TESTUTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/types.h>

#include <CUnit/CUnit.h>

struct dg_test {
	const char *name;
	void (*fn)(void);
};

struct dg_suite {
	const char *name;
	const struct dg_test *tests; /* ends with { NULL, NULL } */
};

/* Run the suites (NULL-terminated by name); prints "DG-RESULT passed=N
 * failed=M" for dev.sh and returns the exit status for automake. */
int dg_test_main(const struct dg_suite *suites);

/* main() for a test program with one suite. */
#define DG_TEST_MAIN(suite_name, test_table)                                  \
	int main(void)                                                          \
	{                                                                       \
		static const struct dg_suite suites_[] = {                      \
			{ suite_name, test_table },                             \
			{ NULL, NULL },                                         \
		};                                                              \
		return dg_test_main(suites_);                                   \
	}

/* A monotonic clock in milliseconds. */
double dg_now_ms(void);

/* Paths from the test environment (Makefile: DG_BUILDDIR, DG_SRCDIR). */
const char *dg_test_builddir(void);
const char *dg_test_srcdir(void);

/* A fresh temporary directory for this process (removed at exit). */
const char *dg_test_tmpdir(void);

/* Write text to tmpdir/name; returns the path (static buffer per call site
 * is not kept: copy it if needed). */
char *dg_test_write(const char *name, const char *text);

/* A running daemon. */
struct dg_daemon {
	pid_t pid;
	char log[4096];    /* its stderr */
	char ready[4096];  /* its --ready-file */
	struct sockaddr_storage addr[8]; /* bound addresses, in ready-file order */
	socklen_t addrlen[8];
	unsigned n_addr;
	struct sockaddr_storage metrics; /* the "@metrics" line, if any (TCP) */
	socklen_t metricslen;
};

/* GET path from the daemon's metrics address over HTTP/1.0; the body (after
 * the headers) into buf. Returns the HTTP status, or -1. */
int dg_http_get(const struct dg_daemon *d, const char *path, char *buf, size_t len);

/* Counter key of listener, live from the daemon's /stats (its config must
 * set metrics.bind): the total over its workers; "plugin.NAME" for a
 * plugin's counter. -1 if absent or unreachable. */
long long dg_daemon_live(const struct dg_daemon *d, const char *listener, const char *key);

/* Wait for a counter: read it again and again (each read a /stats round
 * trip to the daemon, no sleep) until it reaches min or timeout_ms
 * passes; the last value read. */
long long dg_daemon_wait_live(const struct dg_daemon *d, const char *listener, const char *key,
                              long long min, unsigned timeout_ms);

/* Start dgramd on config text (written to a file) with extra args (NULL-
 * terminated, may be NULL); wait up to 10 s for its ready file. */
bool dg_daemon_start(struct dg_daemon *d, const char *config_text, const char *const *args);

/* The two halves of dg_daemon_start. spawn: fork and exec dgramd, its
 * stderr on stderr_fd (-1: the file d->log); returns once dgramd runs (its
 * exec succeeded). wait_ready: up to timeout_ms for the ready file; false
 * if it exited or the time ran out (it is left running: stop it). */
bool dg_daemon_spawn(struct dg_daemon *d, const char *config_text, const char *const *args,
                     int stderr_fd);
bool dg_daemon_wait_ready(struct dg_daemon *d, unsigned timeout_ms);

/* dg_daemon_start with the environment variable name set to value for the
 * daemon only (the test's own environment is restored). */
bool dg_daemon_start_env(struct dg_daemon *d, const char *config_text, const char *name,
                         const char *value);

/* SIGTERM, wait up to 10 s (then SIGKILL); returns the exit status as from
 * waitpid's WEXITSTATUS, 128+signal if killed, -1 on a wait error. */
int dg_daemon_stop(struct dg_daemon *d);

/* Stop the daemon and check, with CUnit assertions, that it exited 0, that
 * its log has no sanitizer report, and that the counters of `listener` add
 * up: rx = handled + decode_errors + every drop. The log is printed when a
 * check fails. */
void dg_daemon_stop_checked(struct dg_daemon *d, const char *listener);

/* Stop (SIGSTOP) the daemon's master and every process it started (the
 * workers, which read the sockets, and the metrics process), and return
 * once each is stopped, so datagrams sent meanwhile queue in the kernel;
 * resume (SIGCONT) them all. False if a process could not be stopped or
 * resumed within 10 s. */
bool dg_daemon_pause(struct dg_daemon *d);
bool dg_daemon_resume(struct dg_daemon *d);

/* The pid of a worker of the daemon (a child named "dgramd-worker"), 0 if
 * none is found. With several workers, any one of them. */
pid_t dg_daemon_worker(const struct dg_daemon *d);

/* The pid of a child of the daemon named name ("dgramd-metrics"), 0 if
 * none is found. */
pid_t dg_daemon_child(const struct dg_daemon *d, const char *name);

/* The descriptors process pid has open (/proc/PID/fd), -1 if it cannot be
 * read (the process is gone). */
int dg_proc_fds(pid_t pid);

/* Read the daemon's log into a malloc'd string (caller frees). */
char *dg_daemon_log(const struct dg_daemon *d);

/* Counter `key` from the "stats listener=NAME" line of the log; -1 if absent. */
long long dg_daemon_stat(const struct dg_daemon *d, const char *listener, const char *key);

/* Can a UDP socket bind [::1] here (IPv6 tests skip their IPv6 part if not)? */
bool dg_have_ipv6(void);

/* A UDP port on 127.0.0.1 that was free a moment ago (for configs that
 * cannot use port 0: workers), or 0. */
unsigned dg_free_udp_port(void);
/* The same for a socket type (SOCK_DGRAM, SOCK_STREAM: a TCP server the
 * test starts, Redis say). */
unsigned dg_free_port(int type);

/* A UDP client socket for the family of addr, with a receive timeout. */
int dg_udp_client(const struct sockaddr_storage *addr, unsigned timeout_ms);

/* Send and wait for one reply (up to the socket timeout). Returns the reply
 * length or -1. */
ssize_t dg_udp_ask(int fd, const struct sockaddr_storage *to, socklen_t tolen,
                   const void *req, size_t reqlen, void *buf, size_t buflen);

/* Run argv (argv[0] a path) with stdin_text (may be NULL) on its standard
 * input; capture stdout and stderr (each up to len - 1 bytes, terminated).
 * Killed after timeout_ms. Returns the exit status, 128 + signal if
 * killed, -1 if it could not run. */
int dg_run(const char *const *argv, const char *stdin_text, char *out, size_t outlen,
           char *err, size_t errlen, unsigned timeout_ms);

/* Count lines in s containing needle. */
unsigned dg_count_lines(const char *s, const char *needle);

#endif
