/* The tests' wait (tests/waitfor.c): a file that appears, a text that
 * reaches its count, a process that ends first, a timeout. */
#include "config.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testutil.h"
#include "waitfor.h"

/* A child that appends "line\n" to path n times, one each time the parent
 * writes a byte to the pipe, then exits. */
static pid_t writer(const char *path, unsigned n, int *go)
{
	int p[2];

	CU_ASSERT_FATAL(pipe(p) == 0);
	pid_t pid = fork();
	CU_ASSERT_FATAL(pid >= 0);
	if (pid == 0) {
		char c;
		close(p[1]);
		for (unsigned i = 0; i < n && read(p[0], &c, 1) == 1; i++) {
			FILE *f = fopen(path, "a");
			if (!f)
				_exit(1);
			fputs("line\n", f);
			fclose(f);
		}
		_exit(0);
	}
	close(p[0]);
	*go = p[1];
	return pid;
}

static void test_text_count(void)
{
	char path[512];
	int go;

	snprintf(path, sizeof(path), "%s/w1", dg_test_tmpdir());
	pid_t pid = writer(path, 3, &go);
	CU_ASSERT(write(go, "abc", 3) == 3);
	CU_ASSERT_EQUAL(dg_wait_file(path, "line", 3, pid, 10000), DG_WAIT_OK);
	CU_ASSERT_EQUAL(dg_file_count(path, "line"), 3);
	close(go);
	CU_ASSERT(waitpid(pid, NULL, 0) == pid);
	/* already there: no wait */
	CU_ASSERT_EQUAL(dg_wait_file(path, NULL, 1, 0, 0), DG_WAIT_OK);
}

static void test_exited_first(void)
{
	char path[512];
	int go;

	snprintf(path, sizeof(path), "%s/w2", dg_test_tmpdir());
	pid_t pid = writer(path, 1, &go);
	close(go); /* it exits without writing */
	CU_ASSERT_EQUAL(dg_wait_file(path, NULL, 1, pid, 10000), DG_WAIT_EXITED);
	CU_ASSERT(waitpid(pid, NULL, 0) == pid);
}

static void test_timeout_and_gone(void)
{
	char path[512];
	int go;

	snprintf(path, sizeof(path), "%s/w3", dg_test_tmpdir());
	CU_ASSERT_EQUAL(dg_wait_file(path, NULL, 1, 0, 20), DG_WAIT_TIMEOUT);
	pid_t pid = writer(path, 1, &go);
	CU_ASSERT_FALSE(dg_wait_gone(pid, 20)); /* blocked on its pipe */
	CU_ASSERT(kill(pid, SIGKILL) == 0);
	CU_ASSERT_TRUE(dg_wait_gone(pid, 10000));
	close(go);
	CU_ASSERT(waitpid(pid, NULL, 0) == pid);
}

static const struct dg_test tests[] = {
	{ "a text reaches its count", test_text_count },
	{ "the process ends first", test_exited_first },
	{ "timeout, and a process's end", test_timeout_and_gone },
	{ NULL, NULL },
};

DG_TEST_MAIN("waitfor", tests)
