/* Host functions for plugins' own metrics (host->metric_new, metric_add,
 * metric_set): slots in the listener's counters, so the metrics server
 * finds them where it finds the rest. */
#include "config.h"

#include <string.h>

#include "host.h"
#include "log.h"
#include "pmetrics.h"
#include "server.h"

static bool valid_name(const char *name)
{
	size_t n = name ? strlen(name) : 0;

	if (n == 0 || n >= sizeof(((struct dg_plugin_metric *)0)->name))
		return false;
	return strspn(name, "abcdefghijklmnopqrstuvwxyz0123456789_") == n;
}

struct dg_metric *dg_pmetric_new(struct dg_instance *self, const char *name, const char *help,
                                     int kind)
{
	struct dg_listener *l = dg_host_instance(self, "metric_new");
	struct dg_plugin_metric *free_slot = NULL;

	if (!l || !valid_name(name) || (kind != DG_METRIC_COUNTER && kind != DG_METRIC_GAUGE))
		return NULL;
	for (unsigned i = 0; i < DG_PLUGIN_METRICS_MAX; i++) {
		struct dg_plugin_metric *m = &l->c->plugin[i];
		if (!m->name[0]) {
			if (!free_slot)
				free_slot = m;
			continue;
		}
		if (!strcmp(m->name, name))
			return m->kind == (uint32_t)kind ? (struct dg_metric *)m : NULL;
	}
	if (!free_slot)
		return NULL;
	/* Help first: the metrics server takes a slot with a name as filled. */
	snprintf(free_slot->help, sizeof(free_slot->help), "%s", help ? help : "");
	for (char *p = free_slot->help; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == '\\')
			*p = ' ';
	free_slot->kind = (uint32_t)kind;
	free_slot->value = 0;
	memcpy(free_slot->name, name, strlen(name) + 1);
	return (struct dg_metric *)free_slot;
}

void dg_pmetric_add(struct dg_metric *metric, int64_t delta)
{
	struct dg_plugin_metric *m = (struct dg_plugin_metric *)metric;

	if (m && (m->kind == DG_METRIC_GAUGE || delta > 0))
		m->value += delta;
}

void dg_pmetric_set(struct dg_metric *metric, int64_t value)
{
	struct dg_plugin_metric *m = (struct dg_plugin_metric *)metric;

	if (m && m->kind == DG_METRIC_GAUGE)
		m->value = value;
}
