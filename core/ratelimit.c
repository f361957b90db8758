#include "config.h"

#include "ratelimit.h"

bool dg_ratelimit_allow(struct dg_ratelimit *rl, time_t now, unsigned long *suppressed)
{
	*suppressed = 0;
	if (now >= rl->start + (time_t)rl->interval) {
		*suppressed = rl->suppressed;
		rl->start = now;
		rl->printed = 0;
		rl->suppressed = 0;
	}
	if (rl->printed < rl->burst) {
		rl->printed++;
		return true;
	}
	rl->suppressed++;
	return false;
}
