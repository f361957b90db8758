/* The pidfile: one dgramd per file, written once bound. A POSIX record
 * lock (fcntl F_SETLK) marks the file as taken: it belongs to the master
 * alone (a fork does not inherit it) and the kernel drops it when the
 * master dies, however it dies. The master must not open the file a
 * second time: closing any descriptor of it would drop the lock. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <dgramd/codec.h>

#include "log.h"
#include "pidfile.h"

struct dg_pidfile {
	int fd;
	char path[];
};

/* The pid the file holds: 0 if none (empty, not a number, not one line). */
static long read_pid(int fd)
{
	char buf[32], *end;
	ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);

	if (n <= 0)
		return 0;
	buf[n] = '\0';
	errno = 0;
	long pid = strtol(buf, &end, 10);
	if (errno || end == buf || pid <= 0 || pid > INT_MAX || (*end && strcmp(end, "\n")))
		return 0;
	return pid;
}

/* The name of process pid (/proc/PID/comm), escaped into buf; false if it
 * cannot be read. */
static bool proc_comm(long pid, char *buf, size_t len)
{
	char path[64], raw[64];
	snprintf(path, sizeof(path), "/proc/%ld/comm", pid);
	FILE *f = fopen(path, "re");
	if (!f)
		return false;
	size_t n = fread(raw, 1, sizeof(raw), f);
	fclose(f);
	while (n && raw[n - 1] == '\n')
		n--;
	dg_log_escape(raw, n, buf, len);
	return n > 0;
}

static bool is_dgramd(const char *comm)
{
	char self[128];
	return !strcmp(comm, "dgramd") || (proc_comm((long)getpid(), self, sizeof(self)) &&
	                                   !strcmp(comm, self));
}

/* Another process has the file: pid, or 0 if unknown. A pid whose name
 * cannot be read is taken for a dgramd. */
static void refuse(const char *path, long pid)
{
	char comm[128];

	if (pid > 0 && proc_comm(pid, comm, sizeof(comm)) && !is_dgramd(comm))
		dg_log(DG_LOG_ERROR, "pidfile '%s' is locked by pid %ld ('%s'): not starting", path, pid,
		       comm);
	else if (pid > 0)
		dg_log(DG_LOG_ERROR, "pidfile '%s' belongs to a running dgramd (pid %ld): not starting "
		       "another one on it (stop that one, or give this one its own -p)", path, pid);
	else
		dg_log(DG_LOG_ERROR, "pidfile '%s' is locked by another process: not starting", path);
}

/* The locked file holds what another process left: a live dgramd's pid
 * (refuse: true) or something stale (emptied, logged: false). */
static bool taken(struct dg_pidfile *p)
{
	char comm[128];
	long pid = read_pid(p->fd);
	struct stat st;

	if (pid > 0 && pid != (long)getpid() && (kill((pid_t)pid, 0) == 0 || errno == EPERM)) {
		if (!proc_comm(pid, comm, sizeof(comm)) || is_dgramd(comm)) {
			refuse(p->path, pid);
			return true;
		}
		dg_log(DG_LOG_WARN, "pidfile '%s' names pid %ld, which is '%s', not a dgramd: replacing it",
		       p->path, pid, comm);
	} else if (pid > 0) {
		dg_log(DG_LOG_WARN, "pidfile '%s' names pid %ld, which is not running: replacing it",
		       p->path, pid);
	} else if (fstat(p->fd, &st) == 0 && st.st_size > 0) {
		dg_log(DG_LOG_WARN, "pidfile '%s' holds no process id: replacing it", p->path);
	}
	if (ftruncate(p->fd, 0) < 0)
		dg_log(DG_LOG_WARN, "cannot empty pidfile '%s': %s", p->path, strerror(errno));
	return false;
}

/* Lock p->fd: 1 locked, 0 held by another (refused, logged), -1 error. */
static int lock(struct dg_pidfile *p)
{
	struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET };

	if (fcntl(p->fd, F_SETLK, &fl) == 0)
		return 1;
	if (errno != EACCES && errno != EAGAIN) {
		dg_log(DG_LOG_ERROR, "cannot lock pidfile '%s': %s", p->path, strerror(errno));
		return -1;
	}
	struct flock q = { .l_type = F_WRLCK, .l_whence = SEEK_SET };
	long holder = fcntl(p->fd, F_GETLK, &q) == 0 && q.l_type != F_UNLCK ? (long)q.l_pid : 0;
	refuse(p->path, holder > 0 ? holder : read_pid(p->fd));
	return 0;
}

/* Is the locked descriptor still the file at p->path (1), or has another
 * master removed it at its exit between our open and our lock (0)? -1 on
 * an error (logged). */
static int still_there(const struct dg_pidfile *p)
{
	struct stat a, b;

	if (fstat(p->fd, &a) < 0) {
		dg_log(DG_LOG_ERROR, "cannot stat pidfile '%s': %s", p->path, strerror(errno));
		return -1;
	}
	if (stat(p->path, &b) < 0) {
		if (errno == ENOENT)
			return 0;
		dg_log(DG_LOG_ERROR, "cannot stat pidfile '%s': %s", p->path, strerror(errno));
		return -1;
	}
	return a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}

/* One attempt: 1 claimed, 0 the file went away meanwhile (try again), -1
 * refused or an error (logged). p->fd is closed unless claimed. */
static int claim_once(struct dg_pidfile *p)
{
	int r;

	p->fd = open(p->path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (p->fd < 0) {
		dg_log(DG_LOG_ERROR, "cannot open pidfile '%s': %s", p->path, strerror(errno));
		return -1;
	}
	r = lock(p) == 1 ? still_there(p) : -1;
	if (r == 1 && taken(p))
		r = -1;
	if (r != 1)
		close(p->fd);
	return r;
}

struct dg_pidfile *dg_pidfile_claim(const char *path)
{
	size_t len = strlen(path) + 1;
	struct dg_pidfile *p = malloc(sizeof(*p) + len);
	int r = 0;

	if (!p) {
		dg_log(DG_LOG_ERROR, "pidfile '%s': out of memory", path);
		return NULL;
	}
	memcpy(p->path, path, len);
	for (int tries = 0; tries < 16 && r == 0; tries++)
		r = claim_once(p);
	if (r == 1)
		return p;
	if (r == 0)
		dg_log(DG_LOG_ERROR, "pidfile '%s' keeps being removed by another process: not starting",
		       path);
	free(p);
	return NULL;
}

int dg_pidfile_write(struct dg_pidfile *p)
{
	char buf[32];
	int n = snprintf(buf, sizeof(buf), "%ld\n", (long)getpid());

	/* The new text first, then the cut: a reader never finds it empty. */
	errno = 0;
	if (pwrite(p->fd, buf, (size_t)n, 0) != n || ftruncate(p->fd, n) < 0) {
		dg_log(DG_LOG_ERROR, "cannot write pidfile '%s': %s", p->path,
		       errno ? strerror(errno) : "short write");
		return DG_ERROR;
	}
	return DG_OK;
}

void dg_pidfile_forget(struct dg_pidfile *p)
{
	if (p && p->fd >= 0) {
		close(p->fd);
		p->fd = -1;
	}
}

void dg_pidfile_free(struct dg_pidfile *p)
{
	if (!p)
		return;
	/* Removed while still locked: a dgramd starting now either finds
	 * the lock or finds the file gone (still_there) and makes a new one. */
	if (unlink(p->path) < 0 && errno != ENOENT)
		dg_log(DG_LOG_WARN, "cannot remove pidfile '%s': %s", p->path, strerror(errno));
	if (p->fd >= 0)
		close(p->fd);
	free(p);
}
