/* Plugin timers: what host->timer_start and host->timer_cancel do once
 * host.c has checked the call, and their end at shutdown. */
#ifndef DG_PTIMER_H
#define DG_PTIMER_H

#include <dgramd/plugin.h> /* struct dg_timer (opaque to plugins) */

struct dg_listener;

/* A one-shot timer in ms on the listener's server clock (srv->now_ms, which
 * the caller has refreshed): cb(arg) runs once, after which the handle is
 * gone. The handle (owned by the core; the plugin may cancel it), or NULL
 * when out of memory or after dg_ptimer_cancel_all (it could never fire). */
struct dg_timer *dg_ptimer_start(struct dg_listener *l, unsigned ms, void (*cb)(void *arg),
                                 void *arg);
/* Disarm and free a timer that has not fired (NULL: nothing). At shutdown,
 * after dg_ptimer_cancel_all, the timer is stopped already but still the
 * plugin's to cancel. */
void dg_ptimer_cancel(struct dg_timer *t);
/* Shutdown: disarm every timer of l (none fires again) and refuse new ones,
 * but free none: the plugin may still cancel its handles from
 * on_session_close (DG_CLOSE_SHUTDOWN) and fini(), which run after this. */
void dg_ptimer_cancel_all(struct dg_listener *l);
/* After fini(): free the timers the plugin left. */
void dg_ptimer_free_all(struct dg_listener *l);

#endif
