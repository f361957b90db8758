/* The master process for workers > 1. It binds nothing and runs no plugin
 * code after the start-up check: it forks the workers (each binds its own
 * SO_REUSEPORT sockets and runs its own event loop), restarts a worker that
 * dies, forwards SIGTERM/SIGINT/SIGHUP, and exits when every worker is gone,
 * logging the counters of all workers added up (they live in shared memory,
 * so a restarted worker keeps counting where its predecessor stopped).
 *
 * No libevent here: after fork() a child would share the master's epoll
 * instance. Signals are blocked (from the start of main()) and taken with
 * sigtimedwait(); a worker keeps them blocked until its handlers are in. */
#include "config.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "master.h"
#include "notify.h"
#include "privs.h"
#include "server.h"

struct worker {
	pid_t pid;
	unsigned restarts;
	struct timespec started;
	struct timespec restart_at; /* after a quick death: restart later */
	bool waiting;
	char prefix[32];
};

struct master {
	struct dg_config *cfg;
	const char *plugin_dir;
	unsigned n;
	struct worker *w;
	struct dg_counters *shm; /* n * n_listeners, shared with the workers */
	size_t shm_size;
	int ready_pipe[2];
	int metrics_fd;      /* metrics.bind, listening; -1 without */
	pid_t metrics_pid;   /* the process serving it */
	struct timespec metrics_started;
	bool stopping;
	sigset_t sigs;
	pid_t pid; /* the master's */
};

static double since(const struct timespec *t)
{
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	return (double)(now.tv_sec - t->tv_sec) + (double)(now.tv_nsec - t->tv_nsec) / 1e9;
}

/* In the child: become worker i and never return. */
static void worker_main(struct master *m, unsigned i)
{
	struct dg_server srv;
	static char stats_label[32];

	/* Stop with the master, even if it is killed outright (a SIGTERM
	 * that comes early waits, blocked, for the loop's handler). */
	prctl(PR_SET_PDEATHSIG, SIGTERM);
	if (getppid() != m->pid)
		_exit(1); /* the master died before prctl */
	/* SIGINT, SIGTERM and SIGHUP stay blocked, as they were across
	 * fork(), until dg_server_run() has installed their handlers: a
	 * signal forwarded to a starting worker must not kill it. */
	sigset_t chld;
	sigemptyset(&chld);
	sigaddset(&chld, SIGCHLD);
	sigprocmask(SIG_UNBLOCK, &chld, NULL);
	unsetenv("NOTIFY_SOCKET"); /* the master speaks for the service */
	close(m->ready_pipe[0]);
	if (m->metrics_fd >= 0)
		close(m->metrics_fd); /* the metrics process serves it */
	dg_log_set_prefix(m->w[i].prefix);
	snprintf(stats_label, sizeof(stats_label), "worker=%u ", i + 1);
	int rc = dg_server_init(&srv, m->cfg, m->plugin_dir, false,
	                        &m->shm[(size_t)i * m->cfg->n_listeners]);
	srv.stats_label = stats_label;
	if (rc == DG_OK) {
		/* Only the first generation reports; restarted workers find
		 * the pipe closed (-1). */
		if (m->ready_pipe[1] >= 0 && write(m->ready_pipe[1], "r", 1) != 1)
			dg_log(DG_LOG_WARN, "cannot tell the master it is ready: %s", strerror(errno));
		if (m->ready_pipe[1] >= 0)
			close(m->ready_pipe[1]);
		rc = dg_server_run(&srv, NULL);  /* drops privileges once bound */
		dg_server_finish(&srv);
		dg_log_set_patience(DG_LOG_EXIT_PATIENCE_MS);
		dg_server_log_stats(&srv);
	}
	dg_server_release(&srv);
	_exit(rc == DG_OK ? 0 : 1);
}

static const struct dg_counters *shm_counters(void *arg, unsigned w, unsigned l)
{
	const struct master *m = arg;
	return &m->shm[(size_t)w * m->cfg->n_listeners + l];
}

static void metrics_stop(evutil_socket_t sig, short what, void *arg)
{
	(void)what;
	if (sig == SIGUSR1)
		dg_log_reopen();
	else
		event_base_loopbreak(arg);
}

/* In the child: serve /metrics and /stats from the workers' shared
 * counters on an event loop of its own (the master has none: after fork a
 * child would share its epoll instance). Runs no plugin code. */
static void metrics_main(struct master *m)
{
	struct dg_metrics_src src = {
		.n_workers = m->n, .n_listeners = m->cfg->n_listeners, .cfg = m->cfg,
		.counters = shm_counters, .arg = m,
	};
	struct event_base *base;
	struct event *ev[3] = { NULL, NULL, NULL };
	struct dg_metrics *mx = NULL;
	int rc = 1;

	prctl(PR_SET_PDEATHSIG, SIGTERM);
	unsetenv("NOTIFY_SOCKET");
	if (m->ready_pipe[0] >= 0)
		close(m->ready_pipe[0]);
	if (m->ready_pipe[1] >= 0)
		close(m->ready_pipe[1]);
	dg_log_set_prefix("metrics: ");
	base = event_base_new();
	if (base) {
		ev[0] = evsignal_new(base, SIGTERM, metrics_stop, base);
		ev[1] = evsignal_new(base, SIGINT, metrics_stop, base);
		ev[2] = evsignal_new(base, SIGUSR1, metrics_stop, base);
	}
	/* Handlers first, then unblock what the master blocked. */
	if (!ev[0] || !ev[1] || !ev[2] || evsignal_add(ev[0], NULL) || evsignal_add(ev[1], NULL) ||
	    evsignal_add(ev[2], NULL)) {
		dg_log(DG_LOG_ERROR, "cannot set up the metrics process");
		goto out;
	}
	sigprocmask(SIG_UNBLOCK, &m->sigs, NULL);
	mx = dg_metrics_new(base, m->metrics_fd, &src);
	m->metrics_fd = -1;
	if (!mx || (m->cfg->user && dg_privs_drop(m->cfg->user, m->cfg->group)))
		goto out;
	rc = event_base_dispatch(base) < 0;
out:
	dg_metrics_free(mx);
	for (int i = 0; i < 3; i++)
		if (ev[i])
			event_free(ev[i]);
	if (base)
		event_base_free(base);
	_exit(rc);
}

static int spawn_metrics(struct master *m)
{
	pid_t pid = fork();

	if (pid < 0) {
		dg_log(DG_LOG_ERROR, "cannot fork the metrics process: %s", strerror(errno));
		return DG_ERROR;
	}
	if (pid == 0)
		metrics_main(m);
	m->metrics_pid = pid;
	clock_gettime(CLOCK_MONOTONIC, &m->metrics_started);
	return DG_OK;
}

static int spawn(struct master *m, unsigned i)
{
	struct worker *w = &m->w[i];

	pid_t pid = fork();
	if (pid < 0) {
		dg_log(DG_LOG_ERROR, "cannot fork worker %u: %s", i + 1, strerror(errno));
		return DG_ERROR;
	}
	if (pid == 0)
		worker_main(m, i);
	w->pid = pid;
	w->waiting = false;
	clock_gettime(CLOCK_MONOTONIC, &w->started);
	dg_log(DG_LOG_INFO, "worker %u started (pid %d)", i + 1, (int)pid);
	return DG_OK;
}

static void describe(int status, char *buf, size_t len)
{
	if (WIFSIGNALED(status))
		snprintf(buf, len, "killed by signal %d (SIG%s)%s", WTERMSIG(status),
		         sigabbrev_np(WTERMSIG(status)) ? sigabbrev_np(WTERMSIG(status)) : "?",
		         WCOREDUMP(status) ? ", core dumped" : "");
	else
		snprintf(buf, len, "exited with status %d", WEXITSTATUS(status));
}

/* A worker died: restart it unless stopping; one that dies within a second
 * of starting waits longer each time (up to 5 s) so a crash at start does
 * not turn into a fork loop. */
static void reap(struct master *m)
{
	int status;
	pid_t pid;
	char what[96];

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		if (pid == m->metrics_pid) {
			m->metrics_pid = 0;
			describe(status, what, sizeof(what));
			if (!m->stopping)
				dg_log(DG_LOG_ERROR, "metrics process (pid %d) %s; restarting it", (int)pid, what);
			continue;
		}
		for (unsigned i = 0; i < m->n; i++) {
			struct worker *w = &m->w[i];
			if (w->pid != pid)
				continue;
			w->pid = 0;
			describe(status, what, sizeof(what));
			if (m->stopping) {
				dg_log(status == 0 ? DG_LOG_INFO : DG_LOG_WARN, "worker %u (pid %d) %s",
				       i + 1, (int)pid, what);
				break;
			}
			double lived = since(&w->started);
			unsigned delay_ms = lived < 1.0 ? 100u << (w->restarts < 6 ? w->restarts : 6) : 0;
			if (delay_ms > 5000)
				delay_ms = 5000;
			w->restarts = lived < 1.0 ? w->restarts + 1 : 0;
			dg_log(DG_LOG_ERROR, "worker %u (pid %d) %s after %.1f s; restarting it%s",
			       i + 1, (int)pid, what, lived, delay_ms ? " after a delay" : "");
			clock_gettime(CLOCK_MONOTONIC, &w->restart_at);
			w->restart_at.tv_sec += delay_ms / 1000;
			w->restart_at.tv_nsec += (long)(delay_ms % 1000) * 1000000;
			w->waiting = true;
			break;
		}
	}
}

static void restart_due(struct master *m)
{
	/* Restarted at most once a second. */
	if (m->metrics_fd >= 0 && !m->metrics_pid && since(&m->metrics_started) >= 1.0)
		spawn_metrics(m);
	for (unsigned i = 0; i < m->n; i++)
		if (m->w[i].waiting && since(&m->w[i].restart_at) >= 0)
			spawn(m, i);
}

static void forward(struct master *m, int sig)
{
	for (unsigned i = 0; i < m->n; i++)
		if (m->w[i].pid > 0)
			kill(m->w[i].pid, sig);
}

static unsigned alive(const struct master *m)
{
	unsigned n = 0;
	for (unsigned i = 0; i < m->n; i++)
		n += m->w[i].pid > 0;
	return n;
}

/* Wait (up to 30 s) until every worker has bound its sockets. A worker
 * that fails exits and closes its end of the pipe: EOF before n bytes. */
static int wait_ready(struct master *m)
{
	unsigned ready = 0;
	char c;

	close(m->ready_pipe[1]);
	m->ready_pipe[1] = -1;
	while (ready < m->n) {
		struct pollfd p = { .fd = m->ready_pipe[0], .events = POLLIN };
		int r = poll(&p, 1, 30000);
		if (r < 0 && errno == EINTR)
			continue;
		if (r == 1 && read(m->ready_pipe[0], &c, 1) == 1) {
			ready++;
			continue;
		}
		dg_log(DG_LOG_ERROR, "%u of %u workers failed to start%s", m->n - ready, m->n,
		       r == 0 ? " within 30 s" : "");
		return DG_ERROR;
	}
	return DG_OK;
}

static int write_ready(const struct master *m, const char *path)
{
	char tmp[4096], a[64];

	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	FILE *f = fopen(tmp, "w");
	if (!f)
		return DG_ERROR;
	for (unsigned i = 0; i < m->cfg->n_listeners; i++)
		for (unsigned b = 0; b < m->cfg->listeners[i].n_binds; b++)
			fprintf(f, "%s %s\n", m->cfg->listeners[i].name,
			        dg_addr_format((const struct sockaddr *)&m->cfg->listeners[i].binds[b].ss,
			                       a, sizeof(a)));
	if (m->metrics_fd >= 0)
		fprintf(f, "@metrics %s\n", dg_metrics_addr(m->metrics_fd, a, sizeof(a)));
	if (fclose(f) || rename(tmp, path)) {
		dg_log(DG_LOG_ERROR, "cannot write ready file '%s': %s", path, strerror(errno));
		return DG_ERROR;
	}
	return DG_OK;
}

static void log_totals(const struct master *m)
{
	char label[300];

	for (unsigned l = 0; l < m->cfg->n_listeners; l++) {
		struct dg_counters sum = { 0 };
		for (unsigned i = 0; i < m->n; i++)
			dg_counters_add(&sum, &m->shm[(size_t)i * m->cfg->n_listeners + l]);
		snprintf(label, sizeof(label), "listener=%s", m->cfg->listeners[l].name);
		dg_counters_log(label, &sum);
	}
}

static void loop(struct master *m)
{
	while (alive(m) || (!m->stopping && m->n)) {
		struct timespec ts = { .tv_sec = 0, .tv_nsec = 100 * 1000000 };
		siginfo_t si;
		int sig = sigtimedwait(&m->sigs, &si, &ts);
		if (sig == SIGCHLD) {
			reap(m);
		} else if (sig == SIGTERM || sig == SIGINT) {
			if (!m->stopping) {
				dg_log(DG_LOG_INFO, "signal %s: stopping %u workers", sig == SIGINT ? "INT" : "TERM",
				       alive(m));
				dg_notify("STOPPING=1");
			}
			m->stopping = true;
			forward(m, sig);
		} else if (sig == SIGHUP) {
			forward(m, SIGHUP);
		} else if (sig == SIGUSR1) {
			if (dg_log_reopen() == DG_OK)
				dg_log(DG_LOG_INFO, "signal USR1: log reopened");
			forward(m, SIGUSR1);
			if (m->metrics_pid > 0)
				kill(m->metrics_pid, SIGUSR1);
		}
		reap(m); /* SIGCHLD may have coalesced */
		if (!m->stopping)
			restart_due(m);
	}
}

int dg_master_run(struct dg_config *cfg, const char *plugin_dir, const char *ready_file)
{
	struct master m = { .cfg = cfg, .plugin_dir = plugin_dir, .n = cfg->workers,
	                    .ready_pipe = { -1, -1 }, .metrics_fd = -1 };
	char err[300];
	int rc = DG_ERROR;

	sigemptyset(&m.sigs);
	sigaddset(&m.sigs, SIGCHLD);
	sigaddset(&m.sigs, SIGTERM);
	sigaddset(&m.sigs, SIGINT);
	sigaddset(&m.sigs, SIGHUP);
	sigaddset(&m.sigs, SIGUSR1);
	/* main() blocked INT, TERM and HUP already (dg_server_block_signals);
	 * the workers inherit the mask across fork(). */
	sigprocmask(SIG_BLOCK, &m.sigs, NULL);
	m.pid = getpid();
	m.shm_size = (size_t)m.n * cfg->n_listeners * sizeof(struct dg_counters);
	m.shm = mmap(NULL, m.shm_size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	m.w = calloc(m.n, sizeof(*m.w));
	if (m.shm == MAP_FAILED || !m.w || pipe(m.ready_pipe)) {
		dg_log(DG_LOG_ERROR, "cannot set up the workers: %s", strerror(errno));
		goto out;
	}
	if (cfg->metrics) {
		/* Bound here, so that a bad address fails the start. */
		m.metrics_fd = dg_metrics_listen(&cfg->metrics_bind, err, sizeof(err));
		if (m.metrics_fd < 0) {
			dg_log(DG_LOG_ERROR, "%s: %s", cfg->path, err);
			goto out;
		}
	}
	dg_log(DG_LOG_INFO, "master (pid %d) starting %u workers", (int)getpid(), m.n);
	for (unsigned i = 0; i < m.n; i++) {
		snprintf(m.w[i].prefix, sizeof(m.w[i].prefix), "worker %u: ", i + 1);
		if (spawn(&m, i)) {
			m.stopping = true;
			break;
		}
	}
	if (!m.stopping && m.metrics_fd >= 0 && spawn_metrics(&m))
		m.stopping = true;
	if (!m.stopping && wait_ready(&m) == DG_OK && (!ready_file || !write_ready(&m, ready_file))) {
		rc = DG_OK;
		dg_notify("READY=1\nSTATUS=serving");
	}
	if (rc != DG_OK) {
		m.stopping = true;
		forward(&m, SIGTERM);
	}
	loop(&m);
	if (m.metrics_pid > 0) {
		kill(m.metrics_pid, SIGTERM);
		waitpid(m.metrics_pid, NULL, 0);
	}
	dg_log_set_patience(DG_LOG_EXIT_PATIENCE_MS);
	log_totals(&m);
out:
	if (m.metrics_fd >= 0)
		close(m.metrics_fd);
	if (m.ready_pipe[0] >= 0)
		close(m.ready_pipe[0]);
	if (m.ready_pipe[1] >= 0)
		close(m.ready_pipe[1]);
	if (m.shm != MAP_FAILED && m.shm)
		munmap(m.shm, m.shm_size);
	free(m.w);
	return rc;
}
