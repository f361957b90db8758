/* The tftp plugin served to clients nobody here wrote: curl (tftp://) and
 * tftp-hpa's tftp, on the shipped conf/examples/tftp.json (bound to port 0,
 * root the fixture's) with its ACL, amplification factor and rate limit.
 * Files of 0, 511, 512, 513 bytes and 5 MiB come back identical with both;
 * blksize 1428 is negotiated (and used: the DATA count says so); 20
 * transfers run at once; block numbers roll over past 65535; a missing
 * file, a path out of root and a write request get their TFTP errors.
 * Skipped (exit 77) when either client is missing. */
#include "config.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <CUnit/Basic.h>

#include "tftp_fixture.h"

static char curl[4096], tftp[4096];
static char port[16];

/* name's path in PATH, or false. */
static bool find_tool(const char *name, char *out, size_t len)
{
	const char *path = getenv("PATH") ? getenv("PATH") : "/usr/bin:/bin";

	for (const char *p = path; *p;) {
		size_t n = strcspn(p, ":");
		snprintf(out, len, "%.*s/%s", (int)n, p, name);
		if (n && access(out, X_OK) == 0)
			return true;
		p += n + (p[n] == ':');
	}
	return false;
}

static void start(struct dg_daemon *d, const char *const *repl)
{
	tftp_start(d, repl);
	snprintf(port, sizeof(port), "%u",
	         ntohs(((const struct sockaddr_in *)&d->addr[0])->sin_port));
}

/* curl [blksize] tftp://127.0.0.1:PORT/remote -o local; its exit status. */
static int run_curl(const char *remote, const char *local, const char *blksize, char *err,
                    size_t errlen)
{
	char url[256], out[256];
	const char *argv[14];
	int n = 0;

	snprintf(url, sizeof(url), "tftp://127.0.0.1:%s/%s", port, remote);
	argv[n++] = curl;
	argv[n++] = "-sS";
	argv[n++] = "--path-as-is"; /* send "..": curl would remove it */
	argv[n++] = "--max-time";
	argv[n++] = "120";
	if (blksize) {
		argv[n++] = "--tftp-blksize";
		argv[n++] = blksize;
	}
	argv[n++] = "-o";
	argv[n++] = local;
	argv[n++] = url;
	argv[n] = NULL;
	return dg_run(argv, NULL, out, sizeof(out), err, errlen, 150000);
}

/* tftp -m binary 127.0.0.1 PORT -c get|put a b; its output (both streams). */
static int run_tftp(const char *verb, const char *a, const char *b, char *out, size_t len)
{
	const char *argv[] = { tftp, "-m", "binary", "127.0.0.1", port, "-c", verb, a, b, NULL };
	char err[1024];

	int rc = dg_run(argv, NULL, out, len, err, sizeof(err), 150000);
	size_t n = strlen(out);
	snprintf(out + n, len - n, "%s", err);
	return rc;
}

static const char *const sizes[] = { "f0", "f511", "f512", "f513", "big", NULL };

static void test_curl_files(void)
{
	struct dg_daemon d;
	char err[1024], out[64];

	start(&d, NULL);
	for (const char *const *f = sizes; *f; f++) {
		snprintf(out, sizeof(out), "curl-%s", *f);
		int rc = run_curl(*f, tftp_out_path(out), NULL, err, sizeof(err));
		if (rc)
			fprintf(stderr, "curl %s: %d %s\n", *f, rc, err);
		CU_ASSERT_EQUAL(rc, 0);
		CU_ASSERT(tftp_same_file(tftp_root_path(*f), tftp_out_path(out)));
	}
	CU_ASSERT(tftp_wait_metric(&d, "dgramd_plugin_tftp_completed_total", 5, 5000));
	CU_ASSERT(tftp_wait_metric(&d, "dgramd_plugin_tftp_active", 0, 5000));
	dg_daemon_stop_checked(&d, "tftp");
}

static void test_tftp_hpa_files(void)
{
	struct dg_daemon d;
	char text[4096], out[64];

	start(&d, NULL);
	for (const char *const *f = sizes; *f; f++) {
		snprintf(out, sizeof(out), "hpa-%s", *f);
		int rc = run_tftp("get", *f, tftp_out_path(out), text, sizeof(text));
		if (rc || strstr(text, "rror"))
			fprintf(stderr, "tftp get %s: %d %s\n", *f, rc, text);
		CU_ASSERT_EQUAL(rc, 0);
		CU_ASSERT_PTR_NULL(strstr(text, "rror"));
		CU_ASSERT(tftp_same_file(tftp_root_path(*f), tftp_out_path(out)));
	}
	CU_ASSERT(tftp_wait_metric(&d, "dgramd_plugin_tftp_completed_total", 5, 5000));
	/* tftp-hpa sends no options: 512-byte blocks, DATA packets 1 (f0),
	 * 1 (f511), 2 (f512, the second empty), 2 (f513), and 10240 full ones
	 * and an empty last one for 5 MiB. */
	long long tx = tftp_metric(&d, "dgramd_tx_total");
	long long again = tftp_metric(&d, "dgramd_plugin_tftp_retransmits_total");
	CU_ASSERT_EQUAL(tx - again, 1 + 1 + 2 + 2 + (TFTP_BIG_SIZE / 512 + 1));
	dg_daemon_stop_checked(&d, "tftp");
}

/* curl --tftp-blksize 1428: the OACK grants it and the file comes in 3672
 * DATA packets (5 MiB / 1428, rounded up) after the OACK. */
static void test_curl_blksize(void)
{
	struct dg_daemon d;
	char err[1024];

	start(&d, NULL);
	int rc = run_curl("big", tftp_out_path("curl-1428"), "1428", err, sizeof(err));
	if (rc)
		fprintf(stderr, "curl: %d %s\n", rc, err);
	CU_ASSERT_EQUAL(rc, 0);
	CU_ASSERT(tftp_same_file(tftp_root_path("big"), tftp_out_path("curl-1428")));
	CU_ASSERT(tftp_wait_metric(&d, "dgramd_plugin_tftp_completed_total", 1, 5000));
	long long tx = tftp_metric(&d, "dgramd_tx_total");
	long long again = tftp_metric(&d, "dgramd_plugin_tftp_retransmits_total");
	CU_ASSERT_EQUAL(tx - again, 1 + (TFTP_BIG_SIZE + 1427) / 1428);
	dg_daemon_stop_checked(&d, "tftp");
}

/* More than 65535 blocks: curl with blksize 8 on a 600,000-byte file
 * (75,000 blocks), so the block number rolls over to 0 and goes on. */
static void test_rollover(void)
{
	struct dg_daemon d;
	char err[1024];
	static const char *const repl[] = {
		/* 75,000 ACKs: more than the example's per-source rate allows at once */
		"\"rate\": 10000, \"burst\": 10000", "\"rate\": 1000000, \"burst\": 1000000", NULL,
	};

	start(&d, repl);
	int rc = run_curl("roll", tftp_out_path("curl-roll"), "8", err, sizeof(err));
	if (rc)
		fprintf(stderr, "curl: %d %s\n", rc, err);
	CU_ASSERT_EQUAL(rc, 0);
	CU_ASSERT(tftp_same_file(tftp_root_path("roll"), tftp_out_path("curl-roll")));
	dg_daemon_stop_checked(&d, "tftp");
}

/* 20 transfers at once, 10 by each client, of a 256 KiB file (all from
 * 127.0.0.1: max_transfers_per_source raised from 16 to 20). */
static void test_concurrent(void)
{
	static const char *const repl[] = {
		"\"max_transfers_per_source\": 16", "\"max_transfers_per_source\": 20", NULL,
	};
	struct dg_daemon d;
	pid_t pid[20];
	char url[256], out[20][4096];

	start(&d, repl);
	snprintf(url, sizeof(url), "tftp://127.0.0.1:%s/mid", port);
	for (int i = 0; i < 20; i++) {
		char name[32];
		snprintf(name, sizeof(name), "mid-%d", i);
		snprintf(out[i], sizeof(out[i]), "%s", tftp_out_path(name));
		pid[i] = fork();
		CU_ASSERT_FATAL(pid[i] >= 0);
		if (pid[i] == 0) {
			int null = open("/dev/null", O_RDWR);
			dup2(null, 0);
			dup2(null, 1);
			if (i % 2)
				execl(curl, curl, "-sS", "--max-time", "120", "-o", out[i], url, (char *)NULL);
			else
				execl(tftp, tftp, "-m", "binary", "127.0.0.1", port, "-c", "get", "mid",
				      out[i], (char *)NULL);
			_exit(127);
		}
	}
	for (int i = 0; i < 20; i++) {
		int st;
		CU_ASSERT_EQUAL(waitpid(pid[i], &st, 0), pid[i]);
		CU_ASSERT(WIFEXITED(st) && WEXITSTATUS(st) == 0);
		CU_ASSERT(tftp_same_file(tftp_root_path("mid"), out[i]));
	}
	CU_ASSERT(tftp_wait_metric(&d, "dgramd_plugin_tftp_completed_total", 20, 5000));
	CU_ASSERT(tftp_wait_metric(&d, "dgramd_plugin_tftp_active", 0, 5000));
	dg_daemon_stop_checked(&d, "tftp");
}

/* Errors as each client reports them: curl's exit codes 68 (TFTP file not
 * found) and 69 (TFTP permission problem), tftp-hpa's "Error code N". */
static void test_errors(void)
{
	static const struct {
		const char *file;
		int curl_rc;
		const char *hpa;
	} cases[] = {
		{ "missing", 68, "Error code 1" },
		{ "link_out", 69, "Error code 2" },
		{ "dir_out/secret", 69, "Error code 2" },
		{ "sub/../../outside/secret", 69, "Error code 2" },
	};
	struct dg_daemon d;
	char text[4096];

	start(&d, NULL);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int rc = run_curl(cases[i].file, tftp_out_path("err"), NULL, text, sizeof(text));
		if (rc != cases[i].curl_rc)
			fprintf(stderr, "curl %s: %d %s\n", cases[i].file, rc, text);
		CU_ASSERT_EQUAL(rc, cases[i].curl_rc);
		run_tftp("get", cases[i].file, tftp_out_path("err"), text, sizeof(text));
		if (!strstr(text, cases[i].hpa))
			fprintf(stderr, "tftp get %s: %s\n", cases[i].file, text);
		CU_ASSERT_PTR_NOT_NULL(strstr(text, cases[i].hpa));
	}
	/* Write requests: refused by both, nothing written. */
	const char *up[] = { curl, "-sS", "--max-time", "60", "-T", tftp_root_path("f513"), "", NULL };
	char url[256], err[1024];
	snprintf(url, sizeof(url), "tftp://127.0.0.1:%s/upload", port);
	up[6] = url;
	CU_ASSERT_EQUAL(dg_run(up, NULL, text, sizeof(text), err, sizeof(err), 60000), 69);
	run_tftp("put", tftp_root_path("f513"), "upload2", text, sizeof(text));
	CU_ASSERT_PTR_NOT_NULL(strstr(text, "Error code 2"));
	struct stat st;
	CU_ASSERT(stat(tftp_root_path("upload"), &st) < 0 && stat(tftp_root_path("upload2"), &st) < 0);
	dg_daemon_stop_checked(&d, "tftp");
}

static const struct dg_test tests[] = {
	{ "curl_files", test_curl_files },
	{ "tftp_hpa_files", test_tftp_hpa_files },
	{ "curl_blksize", test_curl_blksize },
	{ "rollover", test_rollover },
	{ "concurrent", test_concurrent },
	{ "errors", test_errors },
	{ NULL, NULL },
};

int main(void)
{
	static const struct dg_suite suites[] = { { "tftp_clients", tests }, { NULL, NULL } };

	if (!find_tool("curl", curl, sizeof(curl)) || !find_tool("tftp", tftp, sizeof(tftp))) {
		printf("SKIP: needs curl and tftp (Debian packages curl, tftp-hpa)\n");
		return 77;
	}
	return dg_test_main(suites);
}
