/* The host table plugins get (struct dg_host) and the registry of the
 * servers alive in the process, through which the 1.0 calls that get a bare
 * request handle find theirs. An entry point like server.c's events: it
 * calls dispatch and tx and posts what they leave. */
#ifndef DG_HOST_H
#define DG_HOST_H

#include <dgramd/plugin.h>

#include "server.h"

extern const struct dg_host dg_host_table;

/* Make host->secret's random bytes, once (later calls do nothing): main()
 * calls it before any worker is forked, so they all share them. DG_OK, or
 * DG_ERROR if the kernel gives no random bytes (the caller says so). */
int dg_host_secret_init(void);

/* Enter srv in the registry of live servers (srv->id) at init, leave it at
 * release. DG_OK, or DG_ERROR if 256 servers are alive already. */
int dg_host_register(struct dg_server *srv);
void dg_host_unregister(struct dg_server *srv);
/* The listener of self, a plugin's instance (checked by its magic), or NULL
 * after a rate-limited line saying host->fn was called with something else
 * (the plugin's state, say). */
struct dg_listener *dg_host_instance(struct dg_instance *self, const char *fn);

#endif
