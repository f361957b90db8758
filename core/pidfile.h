/* The pidfile (-p): claimed before anything binds, written once bound,
 * removed at exit. One dgramd per pidfile. */
#ifndef DG_PIDFILE_H
#define DG_PIDFILE_H

struct dg_pidfile;

/* Open path (creating it, mode 0644) and take a write lock on it (fcntl:
 * held by this process only, not by the workers it forks, and released by
 * the kernel if it dies). Refused, with an error naming the file and the
 * pid, when another process holds the lock or the file names a live dgramd
 * (a process whose /proc/PID/comm is "dgramd" or this program's name). A
 * file that names a process that is gone or not a dgramd, or no pid, is
 * replaced, and a line logged says so. The file is not written yet.
 * Returns the claim (the caller frees it with dg_pidfile_free), or NULL
 * (logged). */
struct dg_pidfile *dg_pidfile_claim(const char *path);

/* Write this process's id into the claimed file: DG_OK or DG_ERROR
 * (logged). */
int dg_pidfile_write(struct dg_pidfile *p);

/* In a process forked after the claim (a worker): close the descriptor
 * (so that plugin code cannot write to the file) and leave the file and
 * the master's lock alone. NULL is a no-op. */
void dg_pidfile_forget(struct dg_pidfile *p);

/* Remove the file (it is this process's: it holds the lock), close it and
 * free p. NULL is a no-op. Only the process that claimed it may call it. */
void dg_pidfile_free(struct dg_pidfile *p);

#endif
