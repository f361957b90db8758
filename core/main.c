/* dgramd: command line, config check, run. */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "host.h"
#include "log.h"
#include "master.h"
#include "pidfile.h"
#include "server.h"

#ifndef DG_DEFAULT_CONFIG
#define DG_DEFAULT_CONFIG "/etc/dgramd/dgramd.json"
#endif
#ifndef DG_PLUGIN_DIR
#define DG_PLUGIN_DIR "/usr/lib/dgramd"
#endif

enum { EXIT_USAGE = 2 };

static void usage(FILE *f)
{
	fprintf(f,
	        "Usage: dgramd [OPTION]...\n"
	        "Serve UDP protocols described by a JSON config: listeners, codecs, handler plugins.\n"
	        "\n"
	        "  -c, --config FILE      config file (default " DG_DEFAULT_CONFIG ")\n"
	        "  -t, --test             check the config, load and initialise its plugins, exit\n"
	        "  -T, --dump             check as -t, then print the effective config (every\n"
	        "                         default filled in, plugin options too) as JSON\n"
	        "                         and exit\n"
	        "  -P, --plugin-dir DIR   where handler names are looked up as DIR/NAME.so\n"
	        "                         (default " DG_PLUGIN_DIR "; the config's plugin_dir wins)\n"
	        "  -l, --log-level LEVEL  error, warn, info or debug (overrides log.level)\n"
	        "  -r, --ready-file FILE  once every socket is bound, write one line per socket,\n"
	        "                         \"LISTENER ADDRESS:PORT\", to FILE (for port 0 binds)\n"
	        "  -p, --pidfile FILE     write the process id to FILE once bound; removed at exit.\n"
	        "                         Locked while it runs: a dgramd whose FILE is held by a\n"
	        "                         running dgramd refuses to start (a stale FILE is replaced)\n"
	        "  -h, --help             show this help and exit\n"
	        "  -V, --version          show the version and the plugin and codec ABI versions\n"
	        "\n"
	        "Runs in the foreground and logs to stderr, never waiting for the log reader: a\n"
	        "line it cannot take at once is dropped and counted (log_dropped). SIGINT or\n"
	        "SIGTERM: stop reading, let pending requests finish (shutdown_timeout_ms), send\n"
	        "queued replies, log the counters of every listener (at every log level) and\n"
	        "exit 0. A master process binds the sockets and supervises \"workers\" worker\n"
	        "processes (SO_REUSEPORT), restarting one that dies.\n"
	        "SIGHUP to the master: reload. The config is re-read and checked as -t does; if bad,\n"
	        "the error is logged and the old config keeps serving; if good, new workers start\n"
	        "on the same sockets and the old ones stop reading, finish their requests\n"
	        "(shutdown_timeout_ms) and exit. No datagram waiting in a socket is lost.\n"
	        "SIGUSR1 reopens the log file (log.target).\n"
	        "Under systemd (Type=notify) it reports READY=1 once serving, RELOADING=1 and\n"
	        "READY=1 around a reload, and STOPPING=1 on SIGTERM to $NOTIFY_SOCKET.\n"
	        "Exit status: 0 ok, 1 config or runtime error, 2 usage error.\n"
	        "Environment: DGRAMD_NO_MMSG=1 uses recvmsg/sendmsg instead of recvmmsg/sendmmsg.\n");
}

static int print_config(const struct dg_config *cfg)
{
	char err[256];
	json_t *j = dg_config_dump(cfg, err, sizeof(err));

	if (!j) {
		dg_log(DG_LOG_ERROR, "%s: %s", cfg->path, err);
		return DG_ERROR;
	}
	int rc = json_dumpf(j, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER) || putchar('\n') == EOF;
	json_decref(j);
	return rc ? DG_ERROR : DG_OK;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "test", no_argument, NULL, 't' },
		{ "dump", no_argument, NULL, 'T' },
		{ "plugin-dir", required_argument, NULL, 'P' },
		{ "log-level", required_argument, NULL, 'l' },
		{ "ready-file", required_argument, NULL, 'r' },
		{ "pidfile", required_argument, NULL, 'p' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	const char *conf_path = DG_DEFAULT_CONFIG, *plugin_dir = DG_PLUGIN_DIR;
	const char *ready_file = NULL, *pidfile = NULL;
	int level = -1, opt;
	bool check_only = false, dump = false;

	/* Before any jansson value exists: decoded packets are measured
	 * against memory_budget. */
	dg_membudget_install();

	if (dg_log_init() || dg_server_block_signals()) {
		fprintf(stderr, "dgramd: cannot set up signals\n");
		return EXIT_FAILURE;
	}
	while ((opt = getopt_long(argc, argv, "c:tTP:l:r:p:hV", opts, NULL)) != -1) {
		switch (opt) {
		case 'c': conf_path = optarg; break;
		case 't': check_only = true; break;
		case 'T': check_only = dump = true; break;
		case 'P': plugin_dir = optarg; break;
		case 'r': ready_file = optarg; break;
		case 'p': pidfile = optarg; break;
		case 'l':
			level = dg_log_level_parse(optarg);
			if (level < 0) {
				fprintf(stderr, "dgramd: --log-level: '%s' is not error, warn, info or debug\n", optarg);
				return EXIT_USAGE;
			}
			break;
		case 'h': usage(stdout); return 0;
		case 'V': printf("dgramd %s (plugin ABI %d.%d, codec ABI %d.%d)\n", PACKAGE_VERSION,
		                 DG_PLUGIN_ABI_MAJOR, DG_PLUGIN_ABI_MINOR,
		                 DG_CODEC_ABI_MAJOR, DG_CODEC_ABI_MINOR); return 0;
		default: usage(stderr); return EXIT_USAGE;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "dgramd: unexpected argument '%s'\n", argv[optind]);
		usage(stderr);
		return EXIT_USAGE;
	}
	const char *env = getenv("DGRAMD_NO_MMSG");
	dg_io_no_mmsg = env && strcmp(env, "0") != 0;
	env = getenv("DGRAMD_FAULT_SEND");
	dg_io_fault_send = env ? (unsigned)strtoul(env, NULL, 10) : 0;

	struct dg_config *cfg;
	char err[1024];
	if (dg_config_load(conf_path, plugin_dir, &cfg, err, sizeof(err))) {
		dg_log(DG_LOG_ERROR, "%s", err);
		return EXIT_FAILURE;
	}
	dg_log_set_level(level >= 0 ? level : cfg->log_level);
	/* -t reports to the terminal; a server writes where log.target says. */
	if (!check_only && dg_log_open(cfg->log_target, cfg->log_syslog_socket ? cfg->log_syslog_socket
	                                                                       : "/dev/log",
	                               err, sizeof(err))) {
		dg_log(DG_LOG_ERROR, "%s: log.target: %s", conf_path, err);
		dg_config_free(cfg);
		return EXIT_FAILURE;
	}
	dg_config_warn_unprotected(cfg);

	/* host->secret: made before the first fork, so all workers share it. */
	if (!check_only && dg_host_secret_init()) {
		dg_log(DG_LOG_ERROR, "cannot get random bytes for the plugins' shared secret: %s",
		       strerror(errno));
		dg_config_free(cfg);
		return EXIT_FAILURE;
	}
	struct dg_server srv;
	/* The master checks everything (plugins load and accept their
	 * config) before anything binds, then runs no plugin code. */
	int rc = dg_server_init(&srv, cfg, plugin_dir, true, NULL, NULL);
	dg_server_release(&srv);
	if (!dump)
		dg_config_drop_shown(cfg);
	/* Claimed before anything binds (a second dgramd on the same pidfile
	 * stops here), written by the master once bound. */
	struct dg_pidfile *pid = NULL;
	if (rc == DG_OK && !check_only && pidfile && !(pid = dg_pidfile_claim(pidfile)))
		rc = DG_ERROR;
	if (rc == DG_OK && dump)
		rc = print_config(cfg);
	else if (rc == DG_OK && check_only)
		printf("dgramd: the configuration file %s syntax is ok and its plugins load\n", conf_path);
	else if (rc == DG_OK)
		rc = dg_master_run(cfg, plugin_dir, ready_file, pid, level);
	dg_pidfile_free(pid);
	dg_config_free(cfg);
	return rc == DG_OK ? EXIT_SUCCESS : EXIT_FAILURE;
}
