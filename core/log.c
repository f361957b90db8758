#include "config.h"

#include <stdio.h>
#include <string.h>
#include <sys/time.h>

#include "log.h"

static int log_level = DG_LOG_INFO;
static const char *log_prefix = "";

static const char *const level_names[] = { "error", "warn", "info", "debug" };

void dg_log_set_prefix(const char *prefix)
{
	log_prefix = prefix ? prefix : "";
}

void dg_log_set_level(int level)
{
	log_level = level;
}

int dg_log_get_level(void)
{
	return log_level;
}

int dg_log_level_parse(const char *name)
{
	for (int i = 0; i < (int)(sizeof(level_names) / sizeof(level_names[0])); i++)
		if (!strcmp(name, level_names[i]))
			return i;
	return -1;
}

void dg_vlog(int level, const char *fmt, va_list ap)
{
	struct timeval tv;
	struct tm tm;
	char ts[32];

	if (level > log_level)
		return;
	if (level < 0)
		level = 0;
	if (level > DG_LOG_DEBUG)
		level = DG_LOG_DEBUG;
	gettimeofday(&tv, NULL);
	localtime_r(&tv.tv_sec, &tm);
	strftime(ts, sizeof(ts), "%Y-%m-%d %H:%M:%S", &tm);
	/* One fprintf per line: stderr is unbuffered, so a line is one write. */
	char line[2048];
	int n = vsnprintf(line, sizeof(line), fmt, ap);
	if (n < 0)
		return;
	fprintf(stderr, "%s.%03ld dgramd[%s]: %s%s%s\n", ts, (long)tv.tv_usec / 1000,
	        level_names[level], log_prefix, line, (size_t)n >= sizeof(line) ? "..." : "");
}

void dg_log(int level, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	dg_vlog(level, fmt, ap);
	va_end(ap);
}

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
