/* The master process: binds the sockets, supervises generations of worker
 * processes, reloads on SIGHUP. */
#ifndef DG_MASTER_H
#define DG_MASTER_H

#include "conf.h"
#include "pidfile.h"

/* Bind cfg's sockets, fork cfg->workers workers on them and supervise them
 * until SIGTERM/SIGINT and every worker has exited; SIGHUP reloads cfg->path.
 * The config must have passed dg_server_init's check already; it stays the
 * caller's (configs loaded on reload are the master's). ready_file (may be
 * NULL) is written once all are ready, and again after each reload.
 * pidfile (may be NULL; claimed, the caller's): written once all are ready,
 * before the ready file; the workers do not keep it open.
 * log_level: -1, or the level that wins over log.level of reloaded configs.
 * DG_OK, or DG_ERROR if the workers could not be started. */
int dg_master_run(struct dg_config *cfg, const char *plugin_dir, const char *ready_file,
                  struct dg_pidfile *pidfile, int log_level);

#endif
