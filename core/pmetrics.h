/* Plugin metrics: host->metric_new, metric_add and metric_set (counters
 * and gauges a plugin declares, served with the listener's own). */
#ifndef DG_PMETRICS_H
#define DG_PMETRICS_H

#include <stdint.h>

#include <dgramd/plugin.h>

/* NULL (and a rate-limited misuse line) unless self is an instance. */
struct dg_metric *dg_pmetric_new(struct dg_instance *self, const char *name, const char *help,
                                 int kind);
void dg_pmetric_add(struct dg_metric *metric, int64_t delta);
void dg_pmetric_set(struct dg_metric *metric, int64_t value);

#endif
