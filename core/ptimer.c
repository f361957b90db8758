/* Plugin timers (host->timer_start / timer_cancel): one-shot, on the
 * server's timer heap, each on its listener's list so that a shutdown can
 * stop them all and free what the plugin left. */
#include "config.h"

#include <stdlib.h>

#include "ptimer.h"
#include "server.h"

struct dg_timer {
	struct dg_dlink link; /* the listener's timers */
	struct dg_listener *l;
	struct dg_tm tm;
	void (*cb)(void *arg);
	void *arg;
};

static void timer_unlink(struct dg_timer *t)
{
	dg_dlist_unlink(&t->l->timers, &t->link);
	dg_tm_cancel(&t->l->srv->timers, &t->tm);
	free(t);
}

static void timer_fire(struct dg_tm *tm, void *arg)
{
	struct dg_timer *t = arg;
	void (*cb)(void *) = t->cb;
	void *cbarg = t->arg;
	(void)tm;

	timer_unlink(t);
	cb(cbarg);
}

struct dg_timer *dg_ptimer_start(struct dg_listener *l, unsigned ms, void (*cb)(void *arg),
                                 void *arg)
{
	if (l->timers_stopped) /* shutdown: it could never fire */
		return NULL;
	struct dg_timer *t = calloc(1, sizeof(*t));
	if (!t)
		return NULL;
	dg_tm_init(&t->tm, timer_fire, t);
	if (dg_tm_arm(&l->srv->timers, &t->tm, l->srv->now_ms + ms)) {
		free(t);
		return NULL;
	}
	t->l = l;
	t->cb = cb;
	t->arg = arg;
	dg_dlist_push(&l->timers, &t->link);
	return t;
}

void dg_ptimer_cancel(struct dg_timer *t)
{
	if (t)
		timer_unlink(t);
}

void dg_ptimer_cancel_all(struct dg_listener *l)
{
	l->timers_stopped = true;
	for (struct dg_dlink *t = dg_dlist_first(&l->timers); t; t = t->next)
		dg_tm_cancel(&l->srv->timers, &dg_list_entry(t, struct dg_timer, link)->tm);
}

void dg_ptimer_free_all(struct dg_listener *l)
{
	struct dg_dlink *t;

	while ((t = dg_dlist_first(&l->timers)))
		timer_unlink(dg_list_entry(t, struct dg_timer, link));
}
