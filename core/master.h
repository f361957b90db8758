/* workers > 1: a master process supervising worker processes. */
#ifndef DG_MASTER_H
#define DG_MASTER_H

#include "conf.h"

/* Fork cfg->workers workers and supervise them until SIGTERM/SIGINT and
 * every worker has exited. The config must have passed dg_server_init's
 * check already. ready_file (may be NULL) is written once all are bound.
 * DG_OK, or DG_ERROR if the workers could not be started. */
int dg_master_run(struct dg_config *cfg, const char *plugin_dir, const char *ready_file);

#endif
