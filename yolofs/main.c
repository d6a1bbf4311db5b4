/* main.c - the yolofs daemon's wiring for one mount (session.h) or, with
 * --host, many (host.h): the command line (options.h) is checked before
 * anything else, so a bad one prints one line and exits non-zero with
 * nothing mounted (so do a missing source or images= path; a bad image
 * file is refused alone by the image set and the others serve); then what
 * the session shares (the background worker, the inotify hub, the memory
 * pool), the session and its mount, daemonizing, the threads, the session
 * loop, SIGHUP image reloads on their own thread, and a clean unmount on
 * SIGTERM/SIGINT.  Instead of mounting, it takes over a session a
 * predecessor left (takeover.h): started by an upgrade, or restarted by
 * systemd after a crash; and it starts its successor when `yolofs
 * --upgrade` asks. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "background.h"
#include "host.h"
#include "imageset.h"
#include "learn.h"
#include "log.h"
#include "mount.h"
#include "namespace.h"
#include "passthrough.h"
#include "sdnotify.h"
#include "session.h"
#include "stats.h"
#include "takeover.h"
#include "util.h"

/* The SIGHUP thread: re-reads images=, so a reload never runs in a signal
 * handler or a FUSE worker. */
struct reloader {
	struct session *s;
	atomic_bool quit;
	pthread_t thread;
	bool running;
};

/* Ask the reload thread for a reload, as SIGHUP does (learn.h). */
static void reload_now(void *ctx)
{
	struct reloader *r = ctx;
	if (r->running)
		pthread_kill(r->thread, SIGHUP);
}

static void *reload_main(void *arg)
{
	struct reloader *r = arg;
	sigset_t hup;
	sigemptyset(&hup);
	sigaddset(&hup, SIGHUP);
	for (;;) {
		int sig;
		if (sigwait(&hup, &sig) != 0)
			continue;
		if (atomic_load(&r->quit))
			return NULL;
		if (!r->s->set) {
			session_reload(r->s);    /* says there is nothing to reload */
			continue;
		}
		sdn_reloading();
		size_t errors = session_reload(r->s);
		sdn_notifyf("READY=1\nSTATUS=reloaded %zu boot images, %zu errors",
			    iset_count(r->s->set), errors);
	}
}

/* Raise the soft descriptor limit to the hard one: a service gets 1024 by
 * default, and every boot image, open file and listing holds one (the
 * core's inode descriptors are bounded by the limit it finds). */
static void raise_fd_limit(void)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur >= rl.rlim_max)
		return;
	rlim_t was = rl.rlim_cur;
	rl.rlim_cur = rl.rlim_max;
	if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
		ylog(YLOG_WARN, "cannot raise the descriptor limit from %ju: %s", (uintmax_t)was,
		     strerror(errno));
}

/* What the daemon holds beyond its session: set up in order by main()'s
 * steps, each of which says what went wrong on stderr; freed by
 * teardown(), whatever was made. */
struct daemon {
	struct session s;
	struct session_shared sh;
	struct reloader reloader;
	char **argv;                     /* as started: the successor's */
	char exe[PATH_MAX];              /* the binary's path at start: what an upgrade execs */
	int cwd_fd;                      /* the directory started in: argv's relative paths */
	pthread_t main_thread;
	_Atomic int upgrade_conn;        /* an upgrade asked for (its connection), or -1 */
};

/* What one session shares with no other here: the worker, the inotify
 * hub (with images= or learn=, unless no_namespace) and the memory pool.
 * @return 0 or -1. */
static int create_shared(struct daemon *d)
{
	struct yolofs_opts *o = &d->s.o;
	struct iset_pool_config pc = {
		.memory = o->memory, .memlimit = o->memlimit_bytes, .dedup = !o->no_dedup,
	};
	if (bg_create(&d->sh.bg) < 0 || iset_pool_create(&d->sh.pool, &pc) < 0) {
		fprintf(stderr, "yolofs: out of memory\n");
		return -1;
	}
	int r;
	/* learn= alone serves images too: its own, once learnt. */
	if ((o->images || o->learn) && !o->no_namespace && (r = ns_hub_create(&d->sh.hub)) < 0)
		fprintf(stderr, "yolofs: warning: no namespace answers from memory: inotify: "
			"%s (see /proc/sys/fs/inotify/max_user_instances)\n", strerror(-r));
	return 0;
}

/* Mount (or take a session over) with libfuse's SIGINT/SIGTERM handlers,
 * and daemonize unless -f.  @return 0 or -1. */
static int mount_and_daemonize(struct daemon *d)
{
	struct yolofs_opts *o = &d->s.o;
	/* SIGINT/SIGTERM always unmount, even when started in the background
	 * of a shell that ignores SIGINT (libfuse keeps ignored signals). */
	signal(SIGINT, SIG_DFL);
	signal(SIGTERM, SIG_DFL);
	if (fuse_set_signal_handlers(d->s.se) != 0) {
		fprintf(stderr, "yolofs: cannot install signal handlers\n");
		return -1;
	}
	if (session_mount(&d->s) < 0)
		return -1;
	if (!o->cmd.foreground)
		ylog_to_syslog();
	/* A successor is the daemon already (same process as its predecessor). */
	if (d->s.tko.present)
		return 0;
	return fuse_daemonize(o->cmd.foreground) != 0 ? -1 : 0;
}

/* The control thread: an upgrade was asked for (on `conn`).  The session
 * loop stops; main() then starts the successor (upgrade()). */
static void control_asked(void *ctx, enum tko_request what, int conn)
{
	struct daemon *d = ctx;
	int none = -1;
	if (what == TKO_RELOAD) {
		if (!d->s.o.images) {
			tko_reply(conn, "error: started without images=, nothing to reload");
			return;
		}
		if (!d->reloader.running) {
			tko_reply(conn, "error: this yolofs has no reload thread; nothing reloaded");
			return;
		}
		reload_now(&d->reloader);
		tko_reply(conn, "ok: reload of images=%s queued", d->s.o.images);
		return;
	}
	if (!atomic_compare_exchange_strong(&d->upgrade_conn, &none, conn)) {
		tko_reply(conn, "error: an upgrade is already under way");
		return;
	}
	/* While still serving: the sessions' images are written (their source
	 * reads need no request of ours, but a boot's reads may), and the
	 * successor loads them. */
	learn_end_sessions(d->s.learn);
	fuse_session_exit(d->s.se);
	pthread_kill(d->main_thread, SIGUSR2);   /* out of its wait for the loop */
}

static void wake_only(int sig)
{
	(void)sig;
}

/* The counters are kept in the session record at each metrics write, so
 * they continue after a crash too. */
static void keep_stats(struct daemon *d)
{
	d->s.stats.keep = pt_record_user(d->s.fs);
	d->s.stats.keep_size = PT_RECORD_USER_MAX;
}

/* In the process that serves: the statistics, inotify, background, pager,
 * reload, learning and control threads.  A thread that cannot start is
 * logged; the daemon serves without it. */
static void start_threads(struct daemon *d)
{
	struct session *s = &d->s;
	/* SIGUSR1 is taken by the stats thread and SIGHUP by the reload
	 * thread only (libfuse's SIGHUP handler, which would unmount, never
	 * runs: the signal stays blocked everywhere else). */
	sigset_t sigs;
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGUSR1);
	sigaddset(&sigs, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	keep_stats(d);
	int r = stats_start(&s->stats, s->o.metrics, s->o.metrics_interval);
	if (r < 0)
		ylog(YLOG_WARN, "no statistics thread: %s", strerror(-r));
	/* Without the reader, reports stay queued and nothing is answered
	 * after the first change (namespace.c: settled). */
	if (d->sh.hub && (r = ns_hub_start(d->sh.hub)) < 0)
		ylog(YLOG_WARN, "no inotify reader (namespace answers stop at the first change "
		     "in the source): %s", strerror(-r));
	if ((r = bg_start(d->sh.bg)) < 0)
		ylog(YLOG_WARN, "no background thread (changed files are not compared, so not "
		     "served): %s", strerror(-r));
	if ((r = iset_pool_start(d->sh.pool)) < 0)
		ylog(YLOG_WARN, "no pager thread (memlimit placement stays as at start): %s",
		       strerror(-r));
	struct reloader *rl = &d->reloader;
	rl->s = s;
	if ((r = pthread_create(&rl->thread, NULL, reload_main, rl)) != 0)
		ylog(YLOG_WARN, "no reload thread (SIGHUP ignored): %s", strerror(r));
	rl->running = r == 0;
	session_start(s);
	if (s->mount_dev && (r = tko_listen(s->mount_dev, control_asked, d)) < 0)
		ylog(YLOG_WARN, "no control socket (yolofs --upgrade cannot reach this daemon): %s",
		     strerror(-r));
}

/* Say that the mount serves, in the log and to a Type=notify unit. */
static void announce(struct daemon *d)
{
	struct session *s = &d->s;
	ylog(YLOG_INFO, "serving %s at %s (%zu of %zu images)", s->o.source, s->o.cmd.mountpoint,
	     s->set ? iset_count(s->set) : 0, s->images.n);
	if (s->o.images && !s->images.n && !s->learn)
		ylog(YLOG_WARN, "images=%s holds no boot images yet; add some and send SIGHUP",
		       s->o.images);
	/* The mount is live (requests queue until the loop runs).  Daemonized,
	 * this is a new process: name it. */
	int r;
	if (s->o.cmd.foreground)
		r = sdn_notifyf("READY=1\nSTATUS=serving %zu boot images", s->images.n);
	else
		r = sdn_notifyf("READY=1\nMAINPID=%ld\nSTATUS=serving %zu boot images",
				(long)getpid(), s->images.n);
	if (r < 0)
		ylog(YLOG_WARN, "cannot notify systemd: %s", strerror(-r));
	tko_store(pt_record_fd(s->fs), fuse_session_fd(s->se), pt_source_fd(s->fs));
}

/* As a successor: the predecessor told, the kernel's copies dropped, and
 * the requests the predecessor read but never answered sent again. */
static void took_over(struct daemon *d)
{
	struct tko_inherited *t = &d->s.tko;
	double ms = tko_paused_ms(t->stopped_ns);
	if (t->by_upgrade) {
		ylog(YLOG_INFO, "took the session over from the previous yolofs (paused %.1f ms)", ms);
		tko_report_serving(t, ms);
	} else {
		ylog(YLOG_INFO, "took the session over after a restart");
	}
	session_took_over(&d->s);
}

/* Start the binary installed at our own path as the successor, the
 * session loop stopped; once it serves, leave (it is systemd's main
 * process from then on).  Returns only when it did not take over: the
 * caller serves on. */
static void upgrade(struct daemon *d, int conn)
{
	struct session *s = &d->s;
	uint64_t stopped = yolo_now_ns();
	ylog(YLOG_INFO, "upgrade: handing the session at %s over to %s", s->o.cmd.mountpoint,
	     d->exe);
	sdn_reloading();
	/* The counters, for the successor to continue. */
	stats_stop();
	s->stats.keep = NULL;
	stats_save(&s->stats, pt_record_user(s->fs), PT_RECORD_USER_MAX);
	int record_fd, source_fd;
	pt_handover(s->fs, true, &record_fd, &source_fd);
	/* Where argv's relative paths are relative to (daemonizing left /). */
	int here = open(".", O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (d->cwd_fd >= 0 && fchdir(d->cwd_fd) < 0)
		ylog(YLOG_WARN, "upgrade: cannot return to the start directory: %s", strerror(errno));
	struct tko_successor succ;
	char why[600] = "";
	int r = tko_spawn(&succ, d->exe, d->argv, record_fd, fuse_session_fd(s->se), source_fd,
			  stopped);
	if (here >= 0 && fchdir(here) < 0)
		ylog(YLOG_WARN, "cannot return to the working directory: %s", strerror(errno));
	if (here >= 0)
		close(here);
	tko_await(&succ, r, d->exe, conn, "the session", why, sizeof(why));
	pt_handover(s->fs, false, &record_fd, &source_fd);
	/* What the loop read as it stopped was never answered: asked again. */
	pt_resend(s->fs);
	keep_stats(d);
	if ((r = stats_start(&s->stats, s->o.metrics, s->o.metrics_interval)) < 0)
		ylog(YLOG_WARN, "no statistics thread: %s", strerror(-r));
	tko_reply_serving_on(conn, why);
}

/* After the loop (`loop`: its result): stop the threads that use the image
 * set and say goodbye. */
static void stop_threads(struct daemon *d, int loop)
{
	stats_stop();
	session_end(&d->s);
	struct reloader *rl = &d->reloader;
	if (rl->running) {
		atomic_store(&rl->quit, true);
		pthread_kill(rl->thread, SIGHUP);
		pthread_join(rl->thread, NULL);
	}
	if (loop < 0)
		ylog(YLOG_ERR, "session loop failed: %s", strerror(-loop));
	sdn_notify("STOPPING=1");
}

/* Free whatever the steps made, the session first. */
static void teardown(struct daemon *d)
{
	if (d->s.se)
		fuse_remove_signal_handlers(d->s.se);
	session_free(&d->s);
	ns_hub_destroy(d->sh.hub);
	bg_destroy(d->sh.bg);
	iset_pool_destroy(d->sh.pool);
}

/* `yolofs --clear-stale MOUNTPOINT` (the unit's ExecStopPost): a yolofs
 * mount left there that no daemon serves is aborted and unmounted.
 * @return the exit status. */
static int clear_stale_command(const char *mountpoint)
{
	ylog_init("yolofs");
	int r = mount_clear_stale(mountpoint, tko_live);
	if (r == -EBUSY) {
		printf("yolofs: %s: a live yolofs serves it: left alone\n", mountpoint);
		return 0;
	}
	if (r < 0)
		fprintf(stderr, "yolofs: %s: %s\n", mountpoint, strerror(-r));
	return r < 0 ? 1 : 0;
}

/* The path this binary was started by (argv[0], or where $PATH found it),
 * not what it resolves to: what an upgrade execs, where the package
 * manager puts the new binary (a symlink there may point elsewhere now). */
static void remember_exe(char *exe, size_t size, const char *argv0)
{
	exe[0] = '\0';
	if (strchr(argv0, '/')) {
		snprintf(exe, size, "%s", argv0);  /* relative: to the start directory */
		return;
	}
	const char *path = getenv("PATH");
	for (const char *dir = path; dir && *dir;) {
		size_t len = strcspn(dir, ":");
		snprintf(exe, size, "%.*s/%s", (int)len, dir, argv0);
		if (len && access(exe, X_OK) == 0)
			return;
		dir += len + (dir[len] == ':');
	}
	ssize_t n = readlink("/proc/self/exe", exe, size - 1);
	exe[n > 0 ? n : 0] = '\0';
}

/* Serve until unmounted or signalled, starting a successor when asked.
 * @return the loop's result. */
static int serve_until_done(struct daemon *d)
{
	for (;;) {
		int loop = session_serve(&d->s, UINT_MAX);
		int conn = atomic_exchange(&d->upgrade_conn, -1);
		if (conn < 0)
			return loop;
		upgrade(d, conn);
	}
}

int main(int argc, char *argv[])
{
	static struct daemon d;          /* the threads keep pointers into it */
	if (argc == 3 && strcmp(argv[1], "--upgrade") == 0)
		return tko_upgrade_command(argv[2]);
	if (argc == 3 && strcmp(argv[1], "--clear-stale") == 0)
		return clear_stale_command(argv[2]);
	if (argc >= 2 && strcmp(argv[1], "--hostctl") == 0)
		return host_ctl_command(argc, argv);
	ylog_init("yolofs");
	pt_log_to_ylog();
	raise_fd_limit();
	char exe[PATH_MAX];
	remember_exe(exe, sizeof(exe), argv[0]);
	if (argc >= 2 && strcmp(argv[1], "--host") == 0)
		return host_main(argc, argv, exe);
	d.argv = argv;
	d.main_thread = pthread_self();
	atomic_init(&d.upgrade_conn, -1);
	d.cwd_fd = open(".", O_PATH | O_DIRECTORY | O_CLOEXEC);
	memcpy(d.exe, exe, sizeof(exe));

	enum opts_result parsed = session_parse(&d.s, argc, argv);
	d.s.reload = reload_now;         /* session_parse zeroed them */
	d.s.reload_ctx = &d.reloader;
	int ret = parsed == OPTS_EXIT_OK ? 0 : 1;
	if (parsed == OPTS_SERVE && tko_inherited(&d.s.tko) < 0)
		parsed = OPTS_EXIT_FAIL;
	if (parsed == OPTS_SERVE) {
		if (d.s.o.cmd.debug)
			ylog_set_level(YLOG_DEBUG);
		if (create_shared(&d) == 0 && session_open(&d.s, &d.sh) == 0 &&
		    mount_and_daemonize(&d) == 0) {
			/* Before the control thread can send it: its default
			 * action ends the process. */
			struct sigaction sa = { .sa_handler = wake_only };
			sigaction(SIGUSR2, &sa, NULL);
			start_threads(&d);
			if (d.s.tko.present)
				took_over(&d);
			announce(&d);
			int loop = serve_until_done(&d);
			tko_listen_stop();
			tko_store_drop();        /* unmounting: nothing to take over */
			stop_threads(&d, loop);
			ret = loop < 0 ? 1 : 0;
		}
	}
	teardown(&d);
	return ret;
}
