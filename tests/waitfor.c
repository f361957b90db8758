#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "waitfor.h"

static double mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int pidfd_of(pid_t pid)
{
#ifdef SYS_pidfd_open
	return (int)syscall(SYS_pidfd_open, pid, 0);
#else
	(void)pid;
	errno = ENOSYS;
	return -1;
#endif
}

unsigned dg_file_count(const char *path, const char *text)
{
	FILE *f = fopen(path, "r");
	char *buf = NULL;
	size_t len = 0;
	unsigned n = 0;

	if (!f)
		return 0;
	if (fseek(f, 0, SEEK_END) == 0) {
		long size = ftell(f);
		rewind(f);
		if (size >= 0 && (buf = malloc((size_t)size + 1)))
			len = fread(buf, 1, (size_t)size, f);
	}
	fclose(f);
	if (!buf)
		return 0;
	buf[len] = '\0';
	size_t tl = strlen(text);
	for (const char *p = buf; tl && (p = memmem(p, len - (size_t)(p - buf), text, tl)); p += tl)
		n++;
	free(buf);
	return n;
}

static bool holds(const char *path, const char *text, unsigned count)
{
	if (!text)
		return access(path, F_OK) == 0;
	return dg_file_count(path, text) >= (count ? count : 1);
}

enum dg_wait_result dg_wait_file(const char *path, const char *text, unsigned count, pid_t pid,
                                 unsigned timeout_ms)
{
	char dir[PATH_MAX];
	const char *slash = strrchr(path, '/');
	enum dg_wait_result rc = DG_WAIT_FAILED;
	int pfd = -1;

	if (!slash)
		snprintf(dir, sizeof(dir), ".");
	else
		snprintf(dir, sizeof(dir), "%.*s", slash == path ? 1 : (int)(slash - path), path);
	int in = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
	if (in < 0 || inotify_add_watch(in, dir, IN_CREATE | IN_MOVED_TO | IN_MODIFY |
	                                             IN_CLOSE_WRITE | IN_ATTRIB) < 0)
		goto out;
	if (pid > 0 && (pfd = pidfd_of(pid)) < 0) {
		if (errno == ESRCH)
			rc = holds(path, text, count) ? DG_WAIT_OK : DG_WAIT_EXITED;
		goto out;
	}
	double deadline = mono_ms() + timeout_ms;
	/* The watch is set: a change from now on wakes the poll below. */
	for (;;) {
		if (holds(path, text, count)) {
			rc = DG_WAIT_OK;
			break;
		}
		double left = deadline - mono_ms();
		if (left <= 0) {
			rc = DG_WAIT_TIMEOUT;
			break;
		}
		struct pollfd p[2] = { { .fd = in, .events = POLLIN }, { .fd = pfd, .events = POLLIN } };
		int n = poll(p, pfd >= 0 ? 2 : 1, (int)left + 1);
		if (n < 0 && errno != EINTR)
			break;
		if (n > 0 && pfd >= 0 && (p[1].revents & POLLIN)) {
			rc = holds(path, text, count) ? DG_WAIT_OK : DG_WAIT_EXITED;
			break;
		}
		char ev[4096];
		while (read(in, ev, sizeof(ev)) > 0)
			;
	}
out:
	if (in >= 0)
		close(in);
	if (pfd >= 0)
		close(pfd);
	return rc;
}

bool dg_wait_gone(pid_t pid, unsigned timeout_ms)
{
	int pfd = pidfd_of(pid);

	if (pfd < 0)
		return errno == ESRCH;
	struct pollfd p = { .fd = pfd, .events = POLLIN };
	double deadline = mono_ms() + timeout_ms;
	int n;
	do {
		double left = deadline - mono_ms();
		n = left > 0 ? poll(&p, 1, (int)left + 1) : 0;
	} while (n < 0 && errno == EINTR);
	close(pfd);
	return n > 0;
}
