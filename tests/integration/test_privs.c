/* Dropping root once bound. Needs root to run (skipped otherwise: exit 77). */
#include "config.h"

#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testutil.h"

static long status_field(pid_t pid, const char *field)
{
	char path[64], line[256];
	long v = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	f = fopen(path, "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, field, strlen(field)))
			sscanf(line + strlen(field), "%*[:\t ]%ld", &v);
	fclose(f);
	return v;
}

static void check_drop(const char *conf)
{
	struct passwd *pw = getpwnam("nobody");
	struct dg_daemon d;
	char buf[64];

	CU_ASSERT_FATAL(pw != NULL);
	CU_ASSERT_FATAL(dg_daemon_start(&d, conf, NULL));
	/* Asked and answered after the drop (READY comes after it). */
	int fd = dg_udp_client(&d.addr[0], 5000);
	CU_ASSERT(dg_udp_ask(fd, &d.addr[0], d.addrlen[0], "{\"a\":1}", 7, buf, sizeof(buf)) == 7);
	close(fd);
	/* The worker drops; the master keeps root to bind on reload. */
	char path[64];
	long worker = -1;
	snprintf(path, sizeof(path), "/proc/%d/task/%d/children", (int)d.pid, (int)d.pid);
	FILE *f = fopen(path, "r");
	if (f) {
		if (fscanf(f, "%ld", &worker) != 1)
			worker = -1;
		fclose(f);
	}
	CU_ASSERT_FATAL(worker > 0);
	CU_ASSERT_EQUAL(status_field((pid_t)worker, "Uid"), (long)pw->pw_uid);
	CU_ASSERT_EQUAL(status_field((pid_t)worker, "Gid"), (long)pw->pw_gid);
	char *log = dg_daemon_log(&d);
	CU_ASSERT(log && strstr(log, "running as user 'nobody'"));
	free(log);
	dg_daemon_stop_checked(&d, "e");
}

static void test_drop_single(void)
{
	check_drop("{ \"user\": \"nobody\", \"listeners\": [ { \"name\": \"e\", "
	           "\"bind\": \"127.0.0.1:0\", \"handler\": \"echo\" } ] }");
}

static void test_root_warning(void)
{
	struct dg_daemon d;

	CU_ASSERT_FATAL(dg_daemon_start(&d, "{ \"listeners\": [ { \"name\": \"e\", "
	                "\"bind\": \"127.0.0.1:0\", \"handler\": \"echo\" } ] }", NULL));
	dg_daemon_stop_checked(&d, "e");
	char *log = dg_daemon_log(&d);
	CU_ASSERT(log && strstr(log, "running as root: set \"user\""));
	free(log);
}

static const struct dg_test tests[] = {
	{ "user: root is dropped once bound", test_drop_single },
	{ "running as root without user is warned about", test_root_warning },
	{ NULL, NULL },
};

int main(void)
{
	static const struct dg_suite suites[] = { { "privs", tests }, { NULL, NULL } };

	if (geteuid() != 0) {
		printf("SKIP: dropping privileges needs root\n");
		return 77;
	}
	return dg_test_main(suites);
}
