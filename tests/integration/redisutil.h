/* Test support for the redis plugin: a real redis-server (Debian package
 * redis-server) on a loopback port, started and stopped by the test (never
 * the system service), a minimal RESP client to read what the plugin
 * wrote, and the redis plugin's metrics read from /metrics. */
#ifndef DG_REDISUTIL_H
#define DG_REDISUTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "testutil.h"

struct redis_server {
	pid_t pid;
	unsigned port;
	char log[4096];
};

/* Why the redis tests cannot run here (redis-server missing, the plugin
 * not built), or NULL. */
const char *redis_missing(void);

/* Start redis-server on 127.0.0.1:port (no persistence, foreground) and
 * wait up to 10 s until it answers PING. */
bool redis_server_start(struct redis_server *rs, unsigned port);
/* The main() of a test program with a redis-server of its own: SKIP (77) when
 * redis_missing() or also_missing (may be NULL) names a missing tool; else
 * SIGPIPE ignored, *rs started on a free port, the suites run, then
 * cleanup (may be NULL) and the server killed (woken first, should a test
 * have stopped it). Returns main()'s status. */
int redis_test_main(const struct dg_suite *suites, struct redis_server *rs,
                    const char *(*also_missing)(void), void (*cleanup)(void));

/* Send sig (SIGKILL, SIGTERM) and reap it; SIGSTOP/SIGCONT only signal. */
void redis_server_signal(struct redis_server *rs, int sig);

/* One command; the reply's first line into out: "+OK", ":5", "$text" (a
 * bulk string, its bytes), "$-1" (nil), "-ERR ...". False on an I/O error. */
bool redis_cmd(unsigned port, char *out, size_t len, int argc, const char *const *argv);

/* A connection subscribed to channel, after turning on the keyspace
 * events of expired keys (so "__keyevent@0__:expired" carries each key
 * Redis expires); -1 on an error. */
int redis_subscribe(unsigned port, const char *channel);

/* Read fd until text has come (true) or timeout_ms passed (false). */
bool redis_await(int fd, const char *text, unsigned timeout_ms);

/* The integer reply of a command, or LLONG_MIN. */
long long redis_int(unsigned port, int argc, const char *const *argv);

/* The sum over workers of the redis plugin's metric name (without
 * _total) of listener, from /metrics; -1 if absent. */
long long redis_metric(const struct dg_daemon *d, const char *listener, const char *name);

/* A UDP socket bound to 127.0.(1 + n / 250).(1 + n % 250): client n is a
 * peer of its own (SO_REUSEPORT spreads peers over workers). */
int redis_client(unsigned n, unsigned timeout_ms);

/* Send one request from fd to addr and wait for its reply (up to the
 * socket timeout) into buf; the time it took into *ms (may be NULL). */
bool redis_ask(int fd, const struct dg_daemon *d, const char *req, char *buf, size_t len, double *ms);

#endif
