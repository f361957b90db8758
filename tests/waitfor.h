/* Waiting for a signal, never for time: a file that appears or gains a
 * line (inotify on its directory wakes the wait at every change), a
 * process that ends (a pidfd). Used by testutil and by tests/dg-wait, the
 * same wait for the shell and Python tests. */
#ifndef DG_TEST_WAITFOR_H
#define DG_TEST_WAITFOR_H

#include <stdbool.h>
#include <sys/types.h>

enum dg_wait_result {
	DG_WAIT_OK = 0,      /* the file is there (and holds the text count times) */
	DG_WAIT_TIMEOUT = 1, /* timeout_ms passed first */
	DG_WAIT_EXITED = 2,  /* pid ended first */
	DG_WAIT_FAILED = 3,  /* inotify or pidfd could not be set up (errno) */
};

/* Until path exists (text NULL) or holds text at least count times; stop
 * early when pid (> 0; any process, child or not) ends. path's directory
 * must exist. */
enum dg_wait_result dg_wait_file(const char *path, const char *text, unsigned count, pid_t pid,
                                 unsigned timeout_ms);

/* Until pid ends (true), or timeout_ms passes (false). A child that ended
 * is still to be reaped by the caller. */
bool dg_wait_gone(pid_t pid, unsigned timeout_ms);

/* The occurrences of text in the file at path (0 if it cannot be read). */
unsigned dg_file_count(const char *path, const char *text);

#endif
