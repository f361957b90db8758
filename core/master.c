/* The master process. It checks the config, binds every listener socket
 * (one SO_REUSEPORT socket per address per worker slot) and forks a
 * generation of workers that inherit them; it restarts a worker that dies,
 * forwards SIGTERM/SIGINT, and exits when every worker is gone, logging the
 * counters of all workers added up (they live in shared memory, so a
 * restarted worker keeps counting where its predecessor stopped).
 *
 * SIGHUP reloads (the nginx model): the new config is checked as -t does;
 * if good, a new generation is forked on the same sockets (kept by address
 * and slot; new addresses bound, removed ones closed once unused), paused.
 * Once it is ready the old generation is told to retire over each worker's
 * control channel (handover.h): it stops reading, its conversations get
 * sockets connected to their peers (made here), it finishes its requests
 * within shutdown_timeout_ms and exits; then the new one reads. No socket
 * is closed while a generation may still read it, so datagrams waiting in
 * a socket buffer are read by the new generation.
 *
 * No libevent here: after fork() a child would share the master's epoll
 * instance. Signals are blocked (from the start of main()) and taken with
 * sigtimedwait(); a worker keeps them blocked until its handlers are in. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/stat.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "addr.h"
#include "handover.h"
#include "log.h"
#include "master.h"
#include "metrics.h"
#include "notify.h"
#include "privs.h"
#include "server.h"
#include "sock.h"

struct worker {
	pid_t pid;
	unsigned restarts;
	struct timespec started;
	struct timespec restart_at; /* after a quick death: restart later */
	bool waiting;
	int ctl; /* the control channel (handover.h), -1 while not running */
	char prefix[48];
};

/* One config and the workers serving it. */
struct gen {
	unsigned id;
	struct dg_config *cfg;    /* owned unless it is the one main() loaded */
	bool owns_cfg;
	unsigned n;               /* workers */
	unsigned n_binds;         /* binds of all listeners */
	int *fds;                 /* n * n_binds: slot i's socket for bind k */
	struct dg_addr *bound;    /* n_binds: real addresses (ports of port 0) */
	struct worker *w;
	struct dg_counters *shm;  /* n * n_listeners, shared with the workers */
	size_t shm_size;
	int ready_pipe[2];
	bool paused;              /* its workers start without reading (a reload) */
	struct gen *next;         /* older generations, still finishing */
};

struct master {
	const char *plugin_dir;
	const char *ready_file;
	struct dg_pidfile *pidfile; /* -p, claimed by main(); NULL without */
	int log_level;            /* -1, or the command line's */
	struct gen *cur;
	struct gen *old;          /* retiring generations, newest first */
	/* Exited generations' counts, per listener of cur and worker slot:
	 * base[l * slots + w]; slots is the most workers any generation had. */
	struct dg_counters *base;
	unsigned slots;
	unsigned last_id;
	int metrics_fd;           /* metrics.bind, listening; -1 without */
	pid_t metrics_pid;        /* the process serving it */
	int metrics_gone;         /* EOF once that process no longer accepts; -1 */
	struct timespec metrics_started;
	struct dg_counters *mx_view; /* in the metrics process: what it serves */
	bool stopping;
	bool worker_failed;       /* a worker died while stopping: exit 1 */
	sigset_t sigs;
	pid_t pid; /* the master's */
};

static double since(const struct timespec *t)
{
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	return (double)(now.tv_sec - t->tv_sec) + (double)(now.tv_nsec - t->tv_nsec) / 1e9;
}

static void close_fds(int *fds, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (fds[i] >= 0) {
			close(fds[i]);
			fds[i] = -1;
		}
}

static void close_ctls(struct gen *g)
{
	for (unsigned i = 0; g && i < g->n; i++)
		if (g->w[i].ctl >= 0) {
			close(g->w[i].ctl);
			g->w[i].ctl = -1;
		}
}

/* In a child: close what is the master's alone (every worker's control
 * channel and every generation's sockets). */
static void child_close_master(struct master *m)
{
	for (struct gen *o = m->old; o; o = o->next) {
		close_fds(o->fds, (size_t)o->n * o->n_binds);
		close_ctls(o);
	}
	close_ctls(m->cur);
	dg_pidfile_forget(m->pidfile);
}

/* In the child: keep only slot i's sockets of generation g. */
static void child_close_others(struct master *m, struct gen *g, unsigned i)
{
	child_close_master(m);
	close_ctls(g); /* g may not be m->cur yet */
	if (m->cur != g)
		close_fds(m->cur->fds, (size_t)m->cur->n * m->cur->n_binds);
	for (unsigned s = 0; s < g->n; s++)
		if (s != i)
			close_fds(&g->fds[(size_t)s * g->n_binds], g->n_binds);
	if (g->ready_pipe[0] >= 0)
		close(g->ready_pipe[0]);
}

static void gen_free(struct gen *g);

/* In a worker, before it exits: free the master's state it inherited
 * (every generation, each one's config, the counters' base), so that a
 * leak check of the worker (valgrind follows the fork) sees nothing but
 * the worker's own. The first generation's config is main()'s: freed here
 * too, since the worker never returns to main(). */
static void child_release(struct master *m)
{
	struct gen *cur = m->cur;

	m->cur = NULL; /* gen_free re-registers the current config's codecs */
	while (m->old) {
		struct gen *o = m->old;
		m->old = o->next;
		o->owns_cfg = true;
		gen_free(o);
	}
	if (cur) {
		cur->owns_cfg = true;
		gen_free(cur);
	}
	free(m->base);
	m->base = NULL;
}

/* In the child: become worker i of generation g, with ctl its end of the
 * control channel, and never return. */
static void worker_main(struct master *m, struct gen *g, unsigned i, int ctl)
{
	struct dg_server srv;
	static char stats_label[32];

	/* Stop with the master, even if it is killed outright (a SIGTERM
	 * that comes early waits, blocked, for the loop's handler). */
	prctl(PR_SET_PDEATHSIG, SIGTERM);
	if (getppid() != m->pid)
		_exit(1); /* the master died before prctl */
	prctl(PR_SET_NAME, "dgramd-worker"); /* ps, top, pgrep: which is which */
	/* SIGINT, SIGTERM and SIGHUP stay blocked, as they were across
	 * fork(), until dg_server_run() has installed their handlers: a
	 * signal forwarded to a starting worker must not kill it. */
	sigset_t chld;
	sigemptyset(&chld);
	sigaddset(&chld, SIGCHLD);
	sigprocmask(SIG_UNBLOCK, &chld, NULL);
	unsetenv("NOTIFY_SOCKET"); /* the master speaks for the service */
	if (m->metrics_fd >= 0)
		close(m->metrics_fd); /* the metrics process serves it */
	if (m->metrics_gone >= 0)
		close(m->metrics_gone);
	child_close_others(m, g, i);
	dg_log_set_prefix(g->w[i].prefix);
	snprintf(stats_label, sizeof(stats_label), "worker=%u ", i + 1);
	int rc = dg_server_init(&srv, g->cfg, m->plugin_dir, false,
	                        &g->shm[(size_t)i * g->cfg->n_listeners],
	                        &g->fds[(size_t)i * g->n_binds]);
	srv.stats_label = stats_label;
	if (rc == DG_OK)
		rc = dg_server_control(&srv, ctl, g->paused);
	else
		close(ctl);
	if (rc == DG_OK) {
		/* Only the first start of a generation reports; restarted
		 * workers find the pipe closed (-1). */
		if (g->ready_pipe[1] >= 0 && write(g->ready_pipe[1], "r", 1) != 1)
			dg_log(DG_LOG_WARN, "cannot tell the master it is ready: %s", strerror(errno));
		if (g->ready_pipe[1] >= 0)
			close(g->ready_pipe[1]);
		rc = dg_server_run(&srv);  /* drops privileges once bound */
		dg_server_finish(&srv);
		dg_log_set_patience(DG_LOG_EXIT_PATIENCE_MS);
		dg_server_log_stats(&srv);
	}
	dg_server_release(&srv);
	child_release(m);
	_exit(rc == DG_OK ? 0 : 1);
}

static int listener_index(const struct dg_config *cfg, const char *name);

/* What slot w of g counted for listener name; NULL if g has neither. */
static const struct dg_counters *gen_counters(const struct gen *g, unsigned w, const char *name)
{
	int l = listener_index(g->cfg, name);

	return l < 0 || w >= g->n ? NULL : &g->shm[(size_t)w * g->cfg->n_listeners + (unsigned)l];
}

/* Before each scrape, per listener of cur and worker slot: what exited
 * generations counted (base) plus what every live generation counts now,
 * the retiring ones included (a generation's counts are only in its
 * shared memory until it has exited and been folded into base, and the
 * metrics process restarted). So no series goes down across a reload. */
static void shm_snapshot(void *arg)
{
	const struct master *m = arg;
	const struct dg_config *cfg = m->cur->cfg;

	for (unsigned l = 0; l < cfg->n_listeners; l++)
		for (unsigned w = 0; w < m->slots; w++) {
			const char *name = cfg->listeners[l].name;
			struct dg_counters *v = &m->mx_view[(size_t)l * m->slots + w];
			const struct dg_counters *c = gen_counters(m->cur, w, name);
			*v = m->base[(size_t)l * m->slots + w];
			if (c) {
				dg_counters_add(v, c);
				dg_counters_add_plugin(v, c, true); /* gauges: the current generation's */
			}
			for (const struct gen *o = m->old; o; o = o->next)
				if ((c = gen_counters(o, w, name))) {
					dg_counters_add(v, c);
					dg_counters_add_plugin(v, c, false);
				}
		}
}

static const struct dg_counters *shm_counters(void *arg, unsigned w, unsigned l)
{
	const struct master *m = arg;

	return &m->mx_view[(size_t)l * m->slots + w];
}

/* The metrics process, for its signal handlers. */
struct mx_proc {
	struct event_base *base;
	struct dg_metrics *mx;
	struct event *deadline;
	int gone; /* closed once it no longer accepts: the next one may */
};

static void metrics_drained(void *arg)
{
	event_base_loopbreak(arg);
}

static void metrics_deadline(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	event_base_loopbreak(arg);
}

static void metrics_stop(evutil_socket_t sig, short what, void *arg)
{
	static const struct timeval grace = { 2, 0 };
	struct mx_proc *p = arg;

	(void)what;
	if (sig == SIGUSR1) {
		dg_log_reopen();
		return;
	}
	/* Accept no more; answer the connections open, for at most 2 s. */
	if (!p->mx || event_add(p->deadline, &grace)) {
		event_base_loopbreak(p->base);
		return;
	}
	dg_metrics_stop(p->mx, metrics_drained, p->base);
	if (p->gone >= 0)
		close(p->gone);
	p->gone = -1;
}

/* Until the process before (fd: the read end of its pipe) no longer
 * accepts, or 2 s (a process stopped by SIGSTOP): else a scrape it took
 * after one this process took could show less. */
static void metrics_wait_previous(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	char c;

	if (fd < 0)
		return;
	while (poll(&p, 1, 2000) == 1 && read(fd, &c, 1) > 0)
		;
	close(fd);
}

/* In the child: serve /metrics and /stats from the workers' shared
 * counters on an event loop of its own (the master has none: after fork a
 * child would share its epoll instance). Runs no plugin code. previous:
 * see metrics_wait_previous; gone: this process's end of the next one's. */
static void metrics_main(struct master *m, int previous, int gone)
{
	struct dg_metrics_src src = {
		.n_workers = m->slots, .n_listeners = m->cur->cfg->n_listeners, .cfg = m->cur->cfg,
		.counters = shm_counters, .snapshot = shm_snapshot, .arg = m,
	};
	struct mx_proc p = { .gone = gone };
	struct event *ev[3] = { NULL, NULL, NULL };
	int rc = 1;

	prctl(PR_SET_PDEATHSIG, SIGTERM);
	prctl(PR_SET_NAME, "dgramd-metrics");
	unsetenv("NOTIFY_SOCKET");
	child_close_master(m);
	close_fds(m->cur->fds, (size_t)m->cur->n * m->cur->n_binds);
	dg_log_set_prefix("metrics: ");
	p.base = event_base_new();
	if (p.base) {
		ev[0] = evsignal_new(p.base, SIGTERM, metrics_stop, &p);
		ev[1] = evsignal_new(p.base, SIGINT, metrics_stop, &p);
		ev[2] = evsignal_new(p.base, SIGUSR1, metrics_stop, &p);
		p.deadline = evtimer_new(p.base, metrics_deadline, p.base);
	}
	/* Handlers first, then unblock what the master blocked. */
	if (!ev[0] || !ev[1] || !ev[2] || !p.deadline || evsignal_add(ev[0], NULL) ||
	    evsignal_add(ev[1], NULL) || evsignal_add(ev[2], NULL)) {
		dg_log(DG_LOG_ERROR, "cannot set up the metrics process");
		goto out;
	}
	sigprocmask(SIG_UNBLOCK, &m->sigs, NULL);
	metrics_wait_previous(previous);
	m->mx_view = calloc((size_t)m->slots * m->cur->cfg->n_listeners + 1, sizeof(*m->mx_view));
	p.mx = m->mx_view ? dg_metrics_new(p.base, m->metrics_fd, &src) : NULL;
	m->metrics_fd = -1;
	if (!p.mx || (m->cur->cfg->user && dg_privs_drop(m->cur->cfg->user, m->cur->cfg->group)))
		goto out;
	rc = event_base_dispatch(p.base) < 0;
out:
	dg_metrics_free(p.mx);
	free(m->mx_view);
	for (int i = 0; i < 3; i++)
		if (ev[i])
			event_free(ev[i]);
	if (p.deadline)
		event_free(p.deadline);
	if (p.base)
		event_base_free(p.base);
	_exit(rc);
}

/* A new metrics process; it starts accepting once the one before it has
 * stopped (a pipe: the write end is the new process's alone, the read end
 * goes to the process after it). */
static int spawn_metrics(struct master *m)
{
	int gone[2];
	pid_t pid;

	if (pipe2(gone, O_CLOEXEC) < 0) {
		dg_log(DG_LOG_ERROR, "cannot start the metrics process: pipe: %s", strerror(errno));
		return DG_ERROR;
	}
	pid = fork();
	if (pid < 0) {
		dg_log(DG_LOG_ERROR, "cannot fork the metrics process: %s", strerror(errno));
		close(gone[0]);
		close(gone[1]);
		return DG_ERROR;
	}
	if (pid == 0) {
		close(gone[0]);
		metrics_main(m, m->metrics_gone, gone[1]);
	}
	close(gone[1]);
	if (m->metrics_gone >= 0)
		close(m->metrics_gone);
	m->metrics_gone = gone[0];
	m->metrics_pid = pid;
	clock_gettime(CLOCK_MONOTONIC, &m->metrics_started);
	return DG_OK;
}

/* After a reload or a generation's exit: a metrics process with the new
 * layout and totals (the old one is told to stop; reap ignores it). */
static void metrics_restart(struct master *m)
{
	if (m->metrics_fd < 0)
		return;
	if (m->metrics_pid > 0)
		kill(m->metrics_pid, SIGTERM);
	m->metrics_pid = 0;
	spawn_metrics(m);
}

static int spawn(struct master *m, struct gen *g, unsigned i)
{
	struct worker *w = &g->w[i];
	int sv[2];

	if (dg_ho_pair(sv)) {
		dg_log(DG_LOG_ERROR, "cannot make worker %u's control channel: %s", i + 1, strerror(errno));
		return DG_ERROR;
	}
	pid_t pid = fork();
	if (pid < 0) {
		dg_log(DG_LOG_ERROR, "cannot fork worker %u: %s", i + 1, strerror(errno));
		close(sv[0]);
		close(sv[1]);
		return DG_ERROR;
	}
	if (pid == 0) {
		close(sv[0]);
		worker_main(m, g, i, sv[1]);
	}
	close(sv[1]);
	if (w->ctl >= 0)
		close(w->ctl);
	w->ctl = sv[0];
	w->pid = pid;
	w->waiting = false;
	clock_gettime(CLOCK_MONOTONIC, &w->started);
	dg_log(DG_LOG_INFO, "worker %u started (pid %d, generation %u)", i + 1, (int)pid, g->id);
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

static unsigned gen_alive(const struct gen *g)
{
	unsigned n = 0;
	for (unsigned i = 0; i < g->n; i++)
		n += g->w[i].pid > 0;
	return n;
}

static unsigned alive(const struct master *m)
{
	unsigned n = m->cur ? gen_alive(m->cur) : 0;
	for (const struct gen *o = m->old; o; o = o->next)
		n += gen_alive(o);
	return n;
}

static void gen_signal(struct gen *g, int sig)
{
	for (unsigned i = 0; i < g->n; i++)
		if (g->w[i].pid > 0)
			kill(g->w[i].pid, sig);
}

static void forward(struct master *m, int sig)
{
	if (m->cur)
		gen_signal(m->cur, sig);
	for (struct gen *o = m->old; o; o = o->next)
		gen_signal(o, sig);
}

static unsigned addr_port(const struct dg_addr *a)
{
	if (a->ss.ss_family == AF_INET6)
		return ntohs(((const struct sockaddr_in6 *)&a->ss)->sin6_port);
	return ntohs(((const struct sockaddr_in *)&a->ss)->sin_port);
}

static int listener_index(const struct dg_config *cfg, const char *name)
{
	for (unsigned l = 0; l < cfg->n_listeners; l++)
		if (!strcmp(cfg->listeners[l].name, name))
			return (int)l;
	return -1;
}

/* Add an exited generation's counters to the current listeners of the
 * same name, slot by slot (a removed listener's counts go with it). */
static void gen_fold(struct master *m, const struct gen *g)
{
	if (!m->base || !g->shm)
		return;
	for (unsigned l = 0; l < g->cfg->n_listeners; l++) {
		int to = listener_index(m->cur->cfg, g->cfg->listeners[l].name);
		if (to < 0)
			continue;
		for (unsigned i = 0; i < g->n && i < m->slots; i++) {
			struct dg_counters *b = &m->base[(size_t)to * m->slots + i];
			const struct dg_counters *c = &g->shm[(size_t)i * g->cfg->n_listeners + l];
			dg_counters_add(b, c);
			dg_counters_add_plugin(b, c, false);
		}
	}
}

static void gen_free(struct gen *g)
{
	if (!g)
		return;
	if (g->fds)
		close_fds(g->fds, (size_t)g->n * g->n_binds);
	if (g->w)
		close_ctls(g);
	for (int i = 0; i < 2; i++)
		if (g->ready_pipe[i] >= 0)
			close(g->ready_pipe[i]);
	if (g->shm && g->shm != MAP_FAILED)
		munmap(g->shm, g->shm_size);
	if (g->owns_cfg)
		dg_config_free(g->cfg); /* the codec registry keeps the current config's */
	free(g->fds);
	free(g->bound);
	free(g->w);
	free(g);
}

/* The socket for bind k of listener lc in slot i: a duplicate of prev's
 * socket for the same configured address and slot (for port 0, of the
 * same listener too), else a new one (a
 * slot past the first binds the port the first one got). */
static int gen_sock(struct gen *g, const struct gen *prev, const struct dg_listener_conf *lc,
                    const struct dg_addr *addr, unsigned k, unsigned i)
{
	int *fd = &g->fds[(size_t)i * g->n_binds + k];

	for (unsigned pk = 0, l = 0; prev && l < prev->cfg->n_listeners; l++) {
		const struct dg_listener_conf *pl = &prev->cfg->listeners[l];
		for (unsigned b = 0; b < pl->n_binds; b++, pk++) {
			/* Port 0: the same listener's only (the port it got). */
			if (i >= prev->n || pl->binds[b].len != addr->len ||
			    memcmp(&pl->binds[b].ss, &addr->ss, addr->len) ||
			    (addr_port(addr) == 0 && strcmp(pl->name, lc->name)))
				continue;
			*fd = fcntl(prev->fds[(size_t)i * prev->n_binds + pk], F_DUPFD_CLOEXEC, 0);
			if (*fd < 0) {
				dg_log(DG_LOG_ERROR, "listener '%s': cannot keep its socket: %s", lc->name,
				       strerror(errno));
				return DG_ERROR;
			}
			g->bound[k] = prev->bound[pk];
			dg_sock_opts(lc, *fd, &g->bound[k]);
			return DG_OK;
		}
	}
	struct dg_addr got;
	/* At start nothing of ours holds the port yet: refuse a port in use,
	 * as a bind without SO_REUSEPORT would. Port 0 (a new one: an old
	 * generation's was kept above) is always bound so, else its search
	 * could pick a port another process shares through SO_REUSEPORT. */
	*fd = dg_sock_bind(lc, i ? &g->bound[k] : addr, (!prev || addr_port(addr) == 0) && !i,
	                     &got);
	if (*fd < 0)
		return DG_ERROR;
	if (!i)
		g->bound[k] = got;
	return DG_OK;
}

/* A generation for cfg, its sockets bound or kept from prev (may be NULL),
 * its shared counters zeroed; no worker yet. NULL after logging why. */
static struct gen *gen_new(struct master *m, struct dg_config *cfg, bool owns_cfg,
                           const struct gen *prev)
{
	struct gen *g = calloc(1, sizeof(*g));

	if (!g) {
		dg_log(DG_LOG_ERROR, "out of memory");
		return NULL;
	}
	g->id = ++m->last_id;
	g->cfg = cfg;
	g->owns_cfg = owns_cfg;
	g->n = cfg->workers;
	g->ready_pipe[0] = g->ready_pipe[1] = -1;
	for (unsigned l = 0; l < cfg->n_listeners; l++)
		g->n_binds += cfg->listeners[l].n_binds;
	g->fds = malloc((size_t)g->n * g->n_binds * sizeof(*g->fds) + 1);
	g->bound = calloc(g->n_binds + 1, sizeof(*g->bound));
	g->w = calloc(g->n, sizeof(*g->w));
	g->shm_size = (size_t)g->n * cfg->n_listeners * sizeof(struct dg_counters);
	g->shm = mmap(NULL, g->shm_size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (!g->fds || !g->bound || !g->w || g->shm == MAP_FAILED || pipe2(g->ready_pipe, O_CLOEXEC)) {
		dg_log(DG_LOG_ERROR, "cannot set up the workers: %s", strerror(errno));
		goto fail;
	}
	for (size_t i = 0; i < (size_t)g->n * g->n_binds; i++)
		g->fds[i] = -1;
	for (unsigned i = 0; i < g->n; i++)
		g->w[i].ctl = -1;
	for (unsigned i = 0; i < g->n; i++) {
		snprintf(g->w[i].prefix, sizeof(g->w[i].prefix), "worker %u: ", i + 1);
		for (unsigned l = 0, k = 0; l < cfg->n_listeners; l++)
			for (unsigned b = 0; b < cfg->listeners[l].n_binds; b++, k++)
				if (gen_sock(g, prev, &cfg->listeners[l], &cfg->listeners[l].binds[b], k, i))
					goto fail;
	}
	return g;
fail:
	g->owns_cfg = false; /* the caller's still */
	gen_free(g);
	return NULL;
}

/* A worker died: restart it unless stopping or its generation is retiring;
 * one that dies within a second of starting waits longer each time (up to
 * 5 s) so a crash at start does not turn into a fork loop. */
static void reap_one(struct master *m, struct gen *g, unsigned i, int status)
{
	struct worker *w = &g->w[i];
	pid_t pid = w->pid;
	char what[96];

	w->pid = 0;
	if (w->ctl >= 0)
		close(w->ctl);
	w->ctl = -1;
	describe(status, what, sizeof(what));
	if (m->stopping || g != m->cur) {
		dg_log(status == 0 ? DG_LOG_INFO : DG_LOG_WARN, "worker %u (pid %d, generation %u) %s",
		       i + 1, (int)pid, g->id, what);
		/* A worker that does not finish its shutdown (killed, crashed)
		 * may have lost requests: the daemon's exit says so. */
		if (m->stopping && status != 0)
			m->worker_failed = true;
		return;
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
}

static bool reap_in(struct master *m, struct gen *g, pid_t pid, int status)
{
	for (unsigned i = 0; g && i < g->n; i++)
		if (g->w[i].pid == pid) {
			reap_one(m, g, i, status);
			return true;
		}
	return false;
}

/* Free the retiring generations whose workers have all exited. */
static void retire_done(struct master *m)
{
	for (struct gen **p = &m->old; *p;) {
		struct gen *g = *p;
		if (gen_alive(g)) {
			p = &g->next;
			continue;
		}
		*p = g->next;
		unsigned id = g->id;
		gen_fold(m, g);
		gen_free(g);
		/* Said once its sockets are closed: the line means "released". */
		dg_log(DG_LOG_INFO, "reload: generation %u has exited", id);
		if (!m->stopping)
			metrics_restart(m); /* with the new totals */
	}
}

static void reap(struct master *m)
{
	int status;
	pid_t pid;

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		if (pid == m->metrics_pid) {
			char what[96];
			m->metrics_pid = 0;
			describe(status, what, sizeof(what));
			if (!m->stopping)
				dg_log(DG_LOG_ERROR, "metrics process (pid %d) %s; restarting it", (int)pid, what);
			continue;
		}
		if (reap_in(m, m->cur, pid, status))
			continue;
		for (struct gen *o = m->old; o; o = o->next)
			if (reap_in(m, o, pid, status))
				break;
	}
	retire_done(m);
}

static void restart_due(struct master *m)
{
	/* Restarted at most once a second. */
	if (m->metrics_fd >= 0 && !m->metrics_pid && since(&m->metrics_started) >= 1.0)
		spawn_metrics(m);
	for (unsigned i = 0; i < m->cur->n; i++)
		if (m->cur->w[i].waiting && since(&m->cur->w[i].restart_at) >= 0)
			spawn(m, m->cur, i);
}

/* Wait (up to 30 s) until every worker of g is ready. A worker that fails
 * exits and closes its end of the pipe: EOF before n bytes. */
static int wait_ready(struct gen *g)
{
	unsigned ready = 0;
	char c;

	close(g->ready_pipe[1]);
	g->ready_pipe[1] = -1;
	while (ready < g->n) {
		struct pollfd p = { .fd = g->ready_pipe[0], .events = POLLIN };
		int r = poll(&p, 1, 30000);
		if (r < 0 && errno == EINTR)
			continue;
		if (r == 1 && read(g->ready_pipe[0], &c, 1) == 1) {
			ready++;
			continue;
		}
		dg_log(DG_LOG_ERROR, "%u of %u workers failed to start%s", g->n - ready, g->n,
		       r == 0 ? " within 30 s" : "");
		return DG_ERROR;
	}
	close(g->ready_pipe[0]);
	g->ready_pipe[0] = -1;
	return DG_OK;
}

/* Fork every worker of g and wait until all are ready. */
static int gen_start(struct master *m, struct gen *g)
{
	for (unsigned i = 0; i < g->n; i++)
		if (spawn(m, g, i))
			return DG_ERROR;
	return wait_ready(g);
}

/* A generation that failed to start: stop and wait for its workers. */
static void gen_abort(struct gen *g)
{
	gen_signal(g, SIGKILL);
	for (unsigned i = 0; i < g->n; i++)
		if (g->w[i].pid > 0) {
			waitpid(g->w[i].pid, NULL, 0);
			g->w[i].pid = 0;
		}
}

static int write_ready(const struct master *m)
{
	const struct gen *g = m->cur;
	char tmp[4096], a[64];

	if (!m->ready_file)
		return DG_OK;
	snprintf(tmp, sizeof(tmp), "%s.tmp", m->ready_file);
	FILE *f = fopen(tmp, "w");
	if (!f) {
		dg_log(DG_LOG_ERROR, "cannot write ready file '%s': %s", tmp, strerror(errno));
		return DG_ERROR;
	}
	for (unsigned i = 0, k = 0; i < g->cfg->n_listeners; i++)
		for (unsigned b = 0; b < g->cfg->listeners[i].n_binds; b++, k++)
			fprintf(f, "%s %s\n", g->cfg->listeners[i].name,
			        dg_addr_format((const struct sockaddr *)&g->bound[k].ss, a, sizeof(a)));
	if (m->metrics_fd >= 0)
		fprintf(f, "@metrics %s\n", dg_metrics_addr(m->metrics_fd, a, sizeof(a)));
	if (fclose(f) || rename(tmp, m->ready_file)) {
		dg_log(DG_LOG_ERROR, "cannot write ready file '%s': %s", m->ready_file, strerror(errno));
		unlink(tmp);
		return DG_ERROR;
	}
	return DG_OK;
}

/* Check a config as -t does: plugins loaded and initialised, then
 * released. The log says why not. */
static int check(struct master *m, struct dg_config *cfg)
{
	struct dg_server srv;
	int rc = dg_server_init(&srv, cfg, m->plugin_dir, true, NULL, NULL);

	dg_server_release(&srv);
	dg_config_drop_shown(cfg);
	return rc;
}

/* base, re-indexed by the listeners of next (by name; new ones at 0),
 * with a slot for each of next's workers too. */
static int rebase(struct master *m, const struct dg_config *next)
{
	unsigned slots = next->workers > m->slots ? next->workers : m->slots;
	struct dg_counters *nb = calloc((size_t)next->n_listeners * slots + 1, sizeof(*nb));

	if (!nb) {
		dg_log(DG_LOG_ERROR, "out of memory");
		return DG_ERROR;
	}
	for (unsigned l = 0; l < next->n_listeners; l++) {
		int from = listener_index(m->cur->cfg, next->listeners[l].name);
		for (unsigned w = 0; from >= 0 && w < m->slots; w++)
			nb[(size_t)l * slots + w] = m->base[(size_t)from * m->slots + w];
	}
	free(m->base);
	m->base = nb;
	m->slots = slots;
	return DG_OK;
}

/* Wait (up to DG_RETIRE_MS) until every worker of g has let go of the
 * listener sockets, making the connected sockets they ask for meanwhile.
 * One that cannot be told, or does not answer, is sent SIGTERM (its
 * conversations are then cancelled). */
#define DG_RETIRE_MS 5000

static void retire_serve(struct gen *g, unsigned i, const struct dg_ho_msg *req)
{
	const char *why;
	char peer[64];

	if (dg_ho_serve(g->w[i].ctl, req, g->cfg, g->bound, &why))
		dg_log(DG_LOG_WARN, "reload: cannot answer worker %u (generation %u): %s", i + 1, g->id,
		       strerror(errno));
	else if (*why)
		dg_log(DG_LOG_WARN, "reload: no socket for worker %u's (generation %u) conversation "
		       "with %s: %s: %s", i + 1, g->id,
		       dg_addr_format((const struct sockaddr *)&req->peer, peer, sizeof(peer)), why,
		       strerror(errno));
}

/* One message from worker i: false once it is done (retired, or gone). */
static bool retire_step(struct gen *g, unsigned i)
{
	struct dg_ho_msg msg;
	int passed;
	int rc = dg_ho_recv(g->w[i].ctl, &msg, &passed, 0);

	if (passed >= 0)
		close(passed);
	if (rc == 0 && msg.type == DG_HO_SOCKET) {
		retire_serve(g, i, &msg);
		return true;
	}
	return rc < 0 && (errno == EAGAIN || errno == ETIMEDOUT);
}

static void gen_retire(struct gen *g)
{
	struct pollfd *p = calloc(g->n, sizeof(*p));
	struct timespec start;
	unsigned left = 0;

	clock_gettime(CLOCK_MONOTONIC, &start);
	for (unsigned i = 0; i < g->n; i++) {
		struct worker *w = &g->w[i];
		if (p)
			p[i].fd = -1;
		if (w->pid <= 0)
			continue;
		if (!p || w->ctl < 0 || dg_ho_send(w->ctl, DG_HO_RETIRE)) {
			kill(w->pid, SIGTERM);
			continue;
		}
		p[i] = (struct pollfd){ .fd = w->ctl, .events = POLLIN };
		left++;
	}
	while (left) {
		double ms = DG_RETIRE_MS - since(&start) * 1000;
		int r = ms > 0 ? poll(p, g->n, (int)ms + 1) : 0;
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		for (unsigned i = 0; i < g->n; i++)
			if (p[i].fd >= 0 && p[i].revents && !retire_step(g, i)) {
				p[i].fd = -1;
				left--;
			}
	}
	for (unsigned i = 0; left && i < g->n; i++)
		if (p[i].fd >= 0) {
			dg_log(DG_LOG_WARN, "reload: worker %u (generation %u) did not let go within %u ms; "
			       "stopping it", i + 1, g->id, DG_RETIRE_MS);
			kill(g->w[i].pid, SIGTERM);
		}
	free(p);
}

/* The new generation may read the listener sockets now. */
/* Is the socket fd (the master's copy) one of g's? By inode: g holds
 * duplicates of the sockets it keeps, never the same descriptor. */
static bool gen_has_socket(const struct gen *g, int fd)
{
	struct stat a, b;

	if (fstat(fd, &a))
		return false;
	for (size_t j = 0; j < (size_t)g->n * g->n_binds; j++)
		if (g->fds[j] >= 0 && !fstat(g->fds[j], &b) && a.st_ino == b.st_ino &&
		    a.st_dev == b.st_dev)
			return true;
	return false;
}

/* Before old retires: its sockets that next does not keep (the slots of
 * workers next has no place for, or removed listeners) leave the port's
 * SO_REUSEPORT group. They stay open until old has exited, and the kernel
 * went on putting a share of the port's datagrams there, which nobody read
 * once old had let go (a reload from 3 workers to 1 lost 2 in 3 new
 * peers' datagrams). Connected to its own address, a socket only matches
 * datagrams from itself (Linux scores a connected socket against the
 * source), so the group's other sockets take everything; what it queued
 * before is read by old's last drain (server.c). */
static void gen_detach_unkept(const struct gen *old, const struct gen *next)
{
	for (unsigned i = 0; i < old->n; i++)
		for (unsigned k = 0; k < old->n_binds; k++) {
			int fd = old->fds[(size_t)i * old->n_binds + k];
			struct sockaddr_storage self;
			socklen_t len = sizeof(self);
			char a[64];
			if (fd < 0 || gen_has_socket(next, fd))
				continue;
			if (getsockname(fd, (struct sockaddr *)&self, &len) ||
			    connect(fd, (struct sockaddr *)&self, len))
				dg_log(DG_LOG_WARN, "reload: cannot take worker %u's socket on %s out of its "
				       "port's group (its datagrams until generation %u exits may be lost): %s",
				       i + 1, dg_addr_format((const struct sockaddr *)&old->bound[k].ss, a,
				       sizeof(a)), old->id, strerror(errno));
		}
}

static void gen_go(struct gen *g)
{
	for (unsigned i = 0; i < g->n; i++)
		if (g->w[i].pid > 0 && (g->w[i].ctl < 0 || dg_ho_send(g->w[i].ctl, DG_HO_GO)))
			dg_log(DG_LOG_ERROR, "reload: cannot tell worker %u (generation %u) to start "
			       "reading: %s", i + 1, g->id, strerror(errno));
}

static void reload(struct master *m)
{
	struct gen *cur = m->cur, *g = NULL;
	struct dg_config *cfg = NULL;
	char err[1024];

	dg_log(DG_LOG_INFO, "signal HUP: reloading %s", cur->cfg->path);
	dg_notify("RELOADING=1\nSTATUS=reloading");
	/* The new config's codec modules replace the current one's in the
	 * codec registry (dg_config_load); on failure they come back. */
	if (dg_config_load(cur->cfg->path, m->plugin_dir, &cfg, err, sizeof(err))) {
		dg_log(DG_LOG_ERROR, "reload: %s", err);
		goto fail;
	}
	if (check(m, cfg)) {
		dg_log(DG_LOG_ERROR, "reload: %s has errors (see above)", cfg->path);
		goto fail;
	}
	g = gen_new(m, cfg, true, cur);
	if (!g)
		goto fail;
	g->paused = true;
	if (gen_start(m, g) || rebase(m, cfg)) {
		gen_abort(g);
		goto fail;
	}
	g->paused = false; /* a worker restarted later reads at once */
	m->cur = g;
	cur->next = m->old;
	m->old = cur;
	/* The old generation lets go of the sockets, then the new one reads
	 * them: never both at once, so a conversation's next datagram is
	 * never the new generation's. */
	gen_detach_unkept(cur, g);
	gen_retire(cur);
	gen_go(g);
	write_ready(m);
	dg_log_set_level(m->log_level >= 0 ? m->log_level : cfg->log_level);
	metrics_restart(m);
	dg_log(DG_LOG_INFO, "reload: generation %u serving (%u workers, %u listeners); "
	       "generation %u finishing", g->id, g->n, cfg->n_listeners, cur->id);
	dg_notify("READY=1\nSTATUS=serving");
	retire_done(m);
	return;
fail:
	if (g)
		gen_free(g); /* frees cfg */
	else
		dg_config_free(cfg);
	dg_config_use(cur->cfg);
	dg_log(DG_LOG_ERROR, "reload: failed; generation %u keeps serving the old configuration",
	       cur->id);
	dg_notify("READY=1\nSTATUS=serving (the last reload failed)");
}

static void loop(struct master *m)
{
	while (alive(m) || (!m->stopping && m->cur->n)) {
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
		} else if (sig == SIGHUP && !m->stopping) {
			reload(m);
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

static void log_totals(const struct master *m)
{
	char label[300];

	for (unsigned l = 0; l < m->cur->cfg->n_listeners; l++) {
		struct dg_counters sum;
		memset(&sum, 0, sizeof(sum));
		for (unsigned w = 0; w < m->slots; w++)
			dg_counters_add(&sum, &m->base[(size_t)l * m->slots + w]);
		snprintf(label, sizeof(label), "listener=%s", m->cur->cfg->listeners[l].name);
		dg_counters_log(label, &sum);
	}
}

int dg_master_run(struct dg_config *cfg, const char *plugin_dir, const char *ready_file,
                  struct dg_pidfile *pidfile, int log_level)
{
	struct master m = { .plugin_dir = plugin_dir, .ready_file = ready_file, .pidfile = pidfile,
	                    .log_level = log_level, .metrics_fd = -1, .metrics_gone = -1 };
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
	m.slots = cfg->workers;
	m.base = calloc((size_t)cfg->n_listeners * m.slots + 1, sizeof(*m.base));
	if (!m.base) {
		dg_log(DG_LOG_ERROR, "out of memory");
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
	m.cur = gen_new(&m, cfg, false, NULL);
	if (!m.cur)
		goto out;
	dg_log(DG_LOG_INFO, "master (pid %d) starting %u workers", (int)getpid(), m.cur->n);
	if (gen_start(&m, m.cur) == DG_OK && (m.metrics_fd < 0 || spawn_metrics(&m) == DG_OK) &&
	    (!pidfile || dg_pidfile_write(pidfile) == DG_OK) && write_ready(&m) == DG_OK) {
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
	gen_fold(&m, m.cur);
	dg_log_set_patience(DG_LOG_EXIT_PATIENCE_MS);
	log_totals(&m);
	if (rc == DG_OK && m.worker_failed) {
		dg_log(DG_LOG_ERROR, "a worker did not finish its shutdown (see above): exiting with "
		       "status 1");
		rc = DG_ERROR;
	}
out:
	gen_free(m.cur);
	free(m.base);
	if (m.metrics_fd >= 0)
		close(m.metrics_fd);
	if (m.metrics_gone >= 0)
		close(m.metrics_gone);
	return rc;
}
