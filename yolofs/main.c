/* main.c - the yolofs daemon's wiring: the command line (options.h) is
 * checked before anything else, so a bad one prints one line and exits
 * non-zero with nothing mounted (so do a missing source or images= path;
 * a bad image file is refused alone by the image set and the others
 * serve); SOURCE is opened before mounting, so MOUNTPOINT may be SOURCE
 * itself; then the image set, the pass-through session and the mount, the
 * threads, the multithreaded session loop, SIGHUP image reloads on their
 * own thread, and a clean unmount on SIGTERM/SIGINT.  Instead of mounting,
 * it takes over a session a predecessor left (takeover.h): started by an
 * upgrade, or restarted by systemd after a crash; and it starts its
 * successor when `yolofs --upgrade` asks. */
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
#include <sys/mount.h>
#include <sys/resource.h>
#include <unistd.h>

#include "background.h"
#include "blocksrc.h"
#include "detach.h"
#include "imageset.h"
#include "learn.h"
#include "log.h"
#include "mount.h"
#include "namespace.h"
#include "options.h"
#include "passthrough.h"
#include "sdnotify.h"
#include "stats.h"
#include "takeover.h"
#include "util.h"

/* The SIGHUP thread: re-reads images= and hands the list to the image
 * set, so a reload never runs in a signal handler or a FUSE worker. */
struct reloader {
	struct imageset *set;            /* NULL: started without images= */
	struct stats *stats;
	const char *spec;
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
		if (!r->set) {
			ylog(YLOG_INFO, "SIGHUP: started without images=, nothing to reload");
			continue;
		}
		sdn_reloading();
		struct opts_paths pl = { 0 };
		struct yolo_err err = { { 0 } };
		size_t errors = 0;
		if (opts_collect_images(r->spec, &pl, &err) < 0) {
			ylog(YLOG_ERR, "reload: %s; keeping the current images", err.msg);
			stats_add(&r->stats->reload_errors, 1);
			stats_add(&r->stats->reloads, 1);
			errors = 1;
		} else {
			errors = iset_reload(r->set, (const char *const *)pl.v, pl.n);
		}
		sdn_notifyf("READY=1\nSTATUS=reloaded %zu boot images, %zu errors", pl.n, errors);
		opts_paths_free(&pl);
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

/* What the daemon holds: set up in order by main()'s steps, each of which
 * says what went wrong on stderr; freed by teardown(), whatever was made. */
struct daemon {
	struct yolofs_opts o;
	struct fuse_args args;
	struct opts_paths images;        /* images= as expanded at start */
	struct stats stats;
	int source_fd;                   /* until the pass-through core takes it */
	struct learn *learn;             /* learn= */
	struct bg *bg;
	struct ns_hub *hub;              /* what keeps ns fresh */
	struct ns *ns;
	struct iset_pool *pool;          /* the memory the set's images share */
	struct imageset *set;            /* NULL: started without images= */
	struct bs *bs;
	struct pt_fs *fs;
	struct fuse_session *se;
	bool mounted;
	struct reloader reloader;
	/* Taking over and handing over the session (takeover.h). */
	struct tko_inherited tko;        /* what a predecessor left */
	char **argv;                     /* as started: the successor's */
	char exe[PATH_MAX];              /* the binary's path at start: what an upgrade execs */
	int cwd_fd;                      /* the directory started in: argv's relative paths */
	pthread_t main_thread;
	_Atomic int upgrade_conn;        /* an upgrade asked for (its connection), or -1 */
	dev_t mount_dev;
};

/* Open SOURCE before mounting (after the mount it may be hidden), and set
 * up learning mode on it.  @return 0 or -1. */
static int open_source(struct daemon *d)
{
	struct yolofs_opts *o = &d->o;
	int r = d->tko.present ? 0 : mount_clear_stale(o->cmd.mountpoint, tko_live);
	if (r == -EBUSY) {
		fprintf(stderr, "yolofs: %s: a running yolofs is mounted here already\n",
			o->cmd.mountpoint);
		return -1;
	}
	if (r < 0)
		fprintf(stderr, "yolofs: warning: %s: cannot clear a stale yolofs mount: %s\n",
			o->cmd.mountpoint, strerror(-r));
	/* Taking over: the predecessor's, which is the source under the mount
	 * even when mounted over it. */
	d->source_fd = d->tko.present ? d->tko.source_fd :
		       open(o->source, O_PATH | O_DIRECTORY | O_CLOEXEC);
	d->tko.source_fd = -1;
	if (d->source_fd < 0) {
		fprintf(stderr, "yolofs: source %s: %s\n", o->source, strerror(errno));
		return -1;
	}
	if (!o->learn)
		return 0;
	struct yolo_err err = { { 0 } };
	struct learn_config lcfg = {
		.dir = o->learn, .source = o->source, .mountpoint = o->cmd.mountpoint,
		.source_fd = d->source_fd, .by_mount = o->learn_by_mount,
		.window_s = o->learn_window, .idle_s = o->learn_idle, .max_bytes = o->learn_max_bytes,
		.check_trust = !o->insecure_images, .stats = &d->stats,
		.reload = reload_now, .reload_ctx = &d->reloader,
	};
	r = learn_create(&d->learn, &lcfg, &err);
	if (r < 0) {
		fprintf(stderr, "yolofs: learn=%s: %s\n", o->learn,
			err.msg[0] ? err.msg : strerror(-r));
		return -1;
	}
	/* Its images are loaded (and reloaded) with the others. */
	char *spec;
	if (asprintf(&spec, "%s%s%s", o->images ? o->images : "", o->images ? ":" : "",
		     learn_images_dir(d->learn)) < 0)
		return -1;
	free(o->images);
	o->images = spec;
	return 0;
}

/* With images=: open the images, with the background worker, the
 * namespace answers and the block source over them.  @return 0 or -1. */
static int build_image_set(struct daemon *d)
{
	struct yolofs_opts *o = &d->o;
	struct yolo_err err = { { 0 } };
	int r;
	if (!o->images)
		return 0;
	if (opts_collect_images(o->images, &d->images, &err) < 0) {
		fprintf(stderr, "yolofs: %s\n", err.msg);
		return -1;
	}
	if (bg_create(&d->bg) < 0) {
		fprintf(stderr, "yolofs: out of memory\n");
		return -1;
	}
	/* Without inotify everything is asked of the source: slower, not wrong. */
	if (o->no_namespace)
		ylog(YLOG_INFO, "no namespace answers from memory (no_namespace): no inotify instance");
	else if ((r = ns_hub_create(&d->hub)) < 0 ||
		 (r = ns_create(&d->ns, d->hub, d->source_fd, &d->stats)) < 0) {
		fprintf(stderr, "yolofs: warning: no namespace answers from memory: inotify: "
			"%s (see /proc/sys/fs/inotify/max_user_instances)\n", strerror(-r));
		ns_hub_destroy(d->hub);
		d->hub = NULL;
	}
	struct iset_pool_config pc = {
		.memory = o->memory, .memlimit = o->memlimit_bytes, .dedup = !o->no_dedup,
	};
	if (iset_pool_create(&d->pool, &pc) < 0) {
		fprintf(stderr, "yolofs: out of memory\n");
		return -1;
	}
	struct iset_config ic = {
		.pool = d->pool, .paths = (const char *const *)d->images.v, .npaths = d->images.n,
		.source_fd = d->source_fd, .bg = d->bg, .ns = d->ns, .trust_all = o->insecure_images,
	};
	r = iset_create(&d->set, &ic, &d->stats, &err);
	if (r < 0) {
		fprintf(stderr, "yolofs: %s\n", err.msg[0] ? err.msg : strerror(-r));
		return -1;
	}
	if (bs_create(&d->bs, d->set, d->learn, &d->stats, !o->no_prefill) < 0) {
		fprintf(stderr, "yolofs: out of memory\n");
		return -1;
	}
	return 0;
}

/* The namespace answers' reader drops the kernel's copy of an answer. */
static void kernel_changed(void *ctx, dev_t dev, ino_t ino, const char *name)
{
	pt_kernel_changed(ctx, dev, ino, name);
}

/* The pass-through core over the source (it takes source_fd) and its
 * session, with yolofs's hooks and signal handlers.  @return 0 or -1. */
static int create_session(struct daemon *d)
{
	struct yolofs_opts *o = &d->o;
	struct pt_config pc = {
		.source_fd = d->source_fd, .timeout = o->timeout, .splice = o->splice,
		.answer_timeout = o->answer_timeout,
		.keep_cache = !o->no_keep_cache, .force_direct_io = o->direct_io,
		.max_readahead = (uint32_t)o->readahead_bytes,
		.passthrough = !o->no_passthrough,
		.passthrough_active = &d->stats.kernel_passthrough,
		.passthrough_opens = &d->stats.kernel_passthrough_opens,
	};
	int r;
	if (d->bs)
		pc.hooks = bs_hooks(d->bs);
	if (d->ns)
		pc.ns = ns_hooks(d->ns);
	if (d->learn)
		pc.ns_rec = learn_recorder(d->learn);
	if (o->detach_when_emptied && (r = detach_init(d->source_fd, o->cmd.mountpoint)) < 0) {
		fprintf(stderr, "yolofs: detach_when_emptied: %s\n", strerror(-r));
		return -1;
	}
	if ((r = pt_create(&d->fs, &pc)) < 0) {
		fprintf(stderr, "yolofs: source %s: %s\n", o->source, strerror(-r));
		return -1;
	}
	d->source_fd = -1;               /* owned by fs now */
	if (mount_add_args(&d->args, o->source) < 0) {
		fprintf(stderr, "yolofs: out of memory\n");
		return -1;
	}
	d->se = fuse_session_new(&d->args, o->detach_when_emptied ? detach_ops(pt_ops()) : pt_ops(),
				 sizeof(struct fuse_lowlevel_ops), d->fs);
	if (!d->se)
		return -1;               /* libfuse printed why (e.g. an unknown option) */
	pt_set_session(d->fs, d->se);
	if (d->ns)
		ns_set_kernel(d->ns, kernel_changed, d->fs);
	/* SIGINT/SIGTERM always unmount, even when started in the background
	 * of a shell that ignores SIGINT (libfuse keeps ignored signals). */
	signal(SIGINT, SIG_DFL);
	signal(SIGTERM, SIG_DFL);
	if (fuse_set_signal_handlers(d->se) != 0) {
		fprintf(stderr, "yolofs: cannot install signal handlers\n");
		return -1;
	}
	return 0;
}

/* Take the predecessor's session over instead of mounting.  A successor
 * that cannot (another record version, another INIT answer) says why and
 * leaves without touching the session: its predecessor serves on.
 * @return 0 or -1. */
static int take_over(struct daemon *d)
{
	struct tko_inherited *t = &d->tko;
	struct yolo_err err = { { 0 } };
	if (pt_resume(d->fs, d->se, t->record_fd, t->fuse_fd, t->by_upgrade, &err) == 0) {
		t->record_fd = -1;       /* the core's now */
		stats_add(&d->stats.takeovers, 1);
		stats_restore(&d->stats, pt_record_user(d->fs), PT_RECORD_USER_MAX);
		return 0;
	}
	ylog(YLOG_ERR, "cannot take the session at %s over: %s", d->o.cmd.mountpoint, err.msg);
	if (t->by_upgrade) {
		/* Nothing of ours may close what the predecessor still uses
		 * (passthrough backing ids): leave at once. */
		tko_report_refused(t, err.msg);
		_exit(1);
	}
	return -1;
}

/* Mount (or take a session over), set the readahead window, and
 * daemonize unless -f.  @return 0 or -1. */
static int mount_and_daemonize(struct daemon *d)
{
	struct yolofs_opts *o = &d->o;
	if (d->tko.present) {
		if (take_over(d) < 0)
			return -1;
		if (o->detach_when_emptied)
			detach_mounted();
	} else {
		if (fuse_session_mount(d->se, o->cmd.mountpoint) != 0)
			return -1;       /* libfuse printed why */
		d->mounted = true;
		if (pt_session_io(d->fs, d->se, fuse_session_fd(d->se)) < 0) {
			fprintf(stderr, "yolofs: cannot serve the session's descriptor\n");
			return -1;
		}
		if (o->detach_when_emptied)
			detach_mounted();
		/* Without this the window stays at the kernel's 128 KiB whatever
		 * readahead= says: 8x more READs and cold sequential reads at
		 * about half the speed (bench-results/bench.md, steady state). */
		int r = mount_set_readahead(o->cmd.mountpoint, (uint32_t)o->readahead_bytes);
		if (r < 0)
			ylog(YLOG_INFO, "readahead window left at the kernel default: %s",
			     strerror(-r));
	}
	if (mount_top_id(o->cmd.mountpoint, true, &d->mount_dev) < 0)
		d->mount_dev = 0;
	if (!o->cmd.foreground)
		ylog_to_syslog();
	/* A successor is the daemon already (same process as its predecessor). */
	if (d->tko.present)
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
		if (!d->o.images) {
			tko_reply(conn, "error: started without images=, nothing to reload");
			return;
		}
		if (!d->reloader.running) {
			tko_reply(conn, "error: this yolofs has no reload thread; nothing reloaded");
			return;
		}
		reload_now(&d->reloader);
		tko_reply(conn, "ok: reload of images=%s queued", d->o.images);
		return;
	}
	if (!atomic_compare_exchange_strong(&d->upgrade_conn, &none, conn)) {
		tko_reply(conn, "error: an upgrade is already under way");
		return;
	}
	/* While still serving: the sessions' images are written (their source
	 * reads need no request of ours, but a boot's reads may), and the
	 * successor loads them. */
	learn_end_sessions(d->learn);
	fuse_session_exit(d->se);
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
	d->stats.keep = pt_record_user(d->fs);
	d->stats.keep_size = PT_RECORD_USER_MAX;
}

/* In the process that serves: the statistics, inotify, background, pager,
 * reload, learning and control threads.  A thread that cannot start is logged; the
 * daemon serves without it. */
static void start_threads(struct daemon *d)
{
	/* SIGUSR1 is taken by the stats thread and SIGHUP by the reload
	 * thread only (libfuse's SIGHUP handler, which would unmount, never
	 * runs: the signal stays blocked everywhere else). */
	sigset_t sigs;
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGUSR1);
	sigaddset(&sigs, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	keep_stats(d);
	int r = stats_start(&d->stats, d->o.metrics, d->o.metrics_interval);
	if (r < 0)
		ylog(YLOG_WARN, "no statistics thread: %s", strerror(-r));
	/* Without the reader, reports stay queued and nothing is answered
	 * after the first change (namespace.c: settled). */
	if (d->ns && (r = ns_hub_start(d->hub)) < 0)
		ylog(YLOG_WARN, "no inotify reader (namespace answers stop at the first change "
		     "in the source): %s", strerror(-r));
	if (d->ns && (r = ns_start(d->ns)) < 0)
		ylog(YLOG_WARN, "no namespace answers from memory: %s", strerror(-r));
	if (d->bg && (r = bg_start(d->bg)) < 0)
		ylog(YLOG_WARN, "no background thread (changed files are not compared, so not "
		     "served): %s", strerror(-r));
	if (d->pool && (r = iset_pool_start(d->pool)) < 0)
		ylog(YLOG_WARN, "no pager thread (memlimit placement stays as at start): %s",
		       strerror(-r));
	struct reloader *rl = &d->reloader;
	rl->set = d->set;
	rl->stats = &d->stats;
	rl->spec = d->o.images;
	if ((r = pthread_create(&rl->thread, NULL, reload_main, rl)) != 0)
		ylog(YLOG_WARN, "no reload thread (SIGHUP ignored): %s", strerror(r));
	rl->running = r == 0;
	if (d->learn && (r = learn_start(d->learn)) < 0)
		ylog(YLOG_WARN, "no learning thread (nothing is learnt): %s", strerror(-r));
	if (d->mount_dev && (r = tko_listen(d->mount_dev, control_asked, d)) < 0)
		ylog(YLOG_WARN, "no control socket (yolofs --upgrade cannot reach this daemon): %s",
		     strerror(-r));
}

/* Say that the mount serves, in the log and to a Type=notify unit. */
static void announce(struct daemon *d)
{
	ylog(YLOG_INFO, "serving %s at %s (%zu of %zu images)", d->o.source, d->o.cmd.mountpoint,
	     d->set ? iset_count(d->set) : 0, d->images.n);
	if (d->o.images && !d->images.n && !d->learn)
		ylog(YLOG_WARN, "images=%s holds no boot images yet; add some and send SIGHUP",
		       d->o.images);
	/* The mount is live (requests queue until the loop runs).  Daemonized,
	 * this is a new process: name it. */
	int r;
	if (d->o.cmd.foreground)
		r = sdn_notifyf("READY=1\nSTATUS=serving %zu boot images", d->images.n);
	else
		r = sdn_notifyf("READY=1\nMAINPID=%ld\nSTATUS=serving %zu boot images",
				(long)getpid(), d->images.n);
	if (r < 0)
		ylog(YLOG_WARN, "cannot notify systemd: %s", strerror(-r));
	tko_store(pt_record_fd(d->fs), fuse_session_fd(d->se), pt_source_fd(d->fs));
}

/* Drop everything the kernel keeps of the source: what changed while no
 * daemon watched it (between the predecessor's stop and this one's
 * start) must not be served from the kernel's copy.  On a thread of its
 * own once the loop serves (the kernel may wait for a request to finish
 * before it drops an entry). */
static void *forget_kernel_copies(void *arg)
{
	pt_kernel_changed(arg, 0, 0, NULL);
	return NULL;
}

/* As a successor: the predecessor told, the kernel's copies dropped, and
 * the requests the predecessor read but never answered sent again. */
static void took_over(struct daemon *d)
{
	double ms = tko_paused_ms(d->tko.stopped_ns);
	if (d->tko.by_upgrade) {
		ylog(YLOG_INFO, "took the session over from the previous yolofs (paused %.1f ms)", ms);
		tko_report_serving(&d->tko, ms);
	} else {
		ylog(YLOG_INFO, "took the session over after a restart");
	}
	pthread_t t;
	if (pthread_create(&t, NULL, forget_kernel_copies, d->fs) == 0)
		pthread_detach(t);
	else
		pt_kernel_changed(d->fs, 0, 0, NULL);
	pt_resend(d->fs);
}

/* Start the binary installed at our own path as the successor, the
 * session loop stopped; once it serves, leave (it is systemd's main
 * process from then on).  Returns only when it did not take over: the
 * caller serves on. */
static void upgrade(struct daemon *d, int conn)
{
	uint64_t stopped = yolo_now_ns();
	ylog(YLOG_INFO, "upgrade: handing the session at %s over to %s", d->o.cmd.mountpoint,
	     d->exe);
	sdn_reloading();
	/* The counters, for the successor to continue. */
	stats_stop();
	d->stats.keep = NULL;
	stats_save(&d->stats, pt_record_user(d->fs), PT_RECORD_USER_MAX);
	int record_fd, source_fd;
	pt_handover(d->fs, true, &record_fd, &source_fd);
	/* Where argv's relative paths are relative to (daemonizing left /). */
	int here = open(".", O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (d->cwd_fd >= 0 && fchdir(d->cwd_fd) < 0)
		ylog(YLOG_WARN, "upgrade: cannot return to the start directory: %s", strerror(errno));
	struct tko_successor s;
	char why[600] = "";
	int r = tko_spawn(&s, d->exe, d->argv, record_fd, fuse_session_fd(d->se), source_fd, stopped);
	if (here >= 0 && fchdir(here) < 0)
		ylog(YLOG_WARN, "cannot return to the working directory: %s", strerror(errno));
	if (here >= 0)
		close(here);
	if (r < 0)
		snprintf(why, sizeof(why), "cannot start %s: %s", d->exe, strerror(-r));
	else
		r = tko_wait(&s, why, sizeof(why));
	if (r == 0) {
		ylog(YLOG_INFO, "upgrade: pid %ld serves the session, paused %.1f ms; leaving",
		     (long)s.pid, s.paused_ms);
		tko_reply(conn, "ok: yolofs (pid %ld) serves, paused %.1f ms", (long)s.pid, s.paused_ms);
		tko_pass_main_pid(s.pid);
		_exit(0);                /* nothing to undo: the session is the successor's */
	}
	pt_handover(d->fs, false, &record_fd, &source_fd);
	/* What the loop read as it stopped was never answered: asked again. */
	pt_resend(d->fs);
	ylog(YLOG_ERR, "upgrade: %s; serving on", why);
	tko_reply(conn, "%s%s; yolofs %s (pid %ld) serves on", strncmp(why, "error: ", 7) ? "error: " : "",
		  why, YOLO_VERSION, (long)getpid());
	keep_stats(d);
	if ((r = stats_start(&d->stats, d->o.metrics, d->o.metrics_interval)) < 0)
		ylog(YLOG_WARN, "no statistics thread: %s", strerror(-r));
	sdn_notify("READY=1");
}

/* The session loop, until unmounted or signalled.  @return its result: a
 * positive value is the signal that ended it (a clean exit). */
static int serve(struct daemon *d)
{
	struct fuse_cmdline_opts *co = &d->o.cmd;
	if (co->singlethread)
		return fuse_session_loop(d->se);
	struct fuse_loop_config *lc = fuse_loop_cfg_create();
	if (!lc) {
		ylog(YLOG_ERR, "out of memory");
		return -ENOMEM;
	}
	fuse_loop_cfg_set_clone_fd(lc, (unsigned)co->clone_fd);
	if (co->max_idle_threads != UINT_MAX)
		fuse_loop_cfg_set_idle_threads(lc, co->max_idle_threads);
	if (co->max_threads)
		fuse_loop_cfg_set_max_threads(lc, co->max_threads);
	int r = fuse_session_loop_mt(d->se, lc);
	fuse_loop_cfg_destroy(lc);
	return r;
}

/* After the loop (`loop`: its result): stop the threads that use the image
 * set and say goodbye. */
static void stop_threads(struct daemon *d, int loop)
{
	stats_stop();
	learn_destroy(d->learn);         /* it asks the reloader for reloads */
	d->learn = NULL;
	struct reloader *rl = &d->reloader;
	if (rl->running) {
		atomic_store(&rl->quit, true);
		pthread_kill(rl->thread, SIGHUP);
		pthread_join(rl->thread, NULL);
	}
	if (loop < 0)
		ylog(YLOG_ERR, "session loop failed: %s", strerror(-loop));
	ylog(YLOG_INFO, "unmounting %s", d->o.cmd.mountpoint);
	sdn_notify("STOPPING=1");
	if (d->set)
		stats_log(&d->stats);
}

/* A session taken over was mounted by a predecessor: libfuse does not
 * know its mount point.  Unmount it if it is still the topmost there. */
static void unmount_taken_over(struct daemon *d)
{
	dev_t dev;
	if (mount_top_id(d->o.cmd.mountpoint, true, &dev) >= 0 && dev == d->mount_dev &&
	    umount2(d->o.cmd.mountpoint, MNT_DETACH) < 0)
		ylog(YLOG_WARN, "cannot unmount %s: %s", d->o.cmd.mountpoint, strerror(errno));
}

/* Free whatever the steps made, the session first. */
static void teardown(struct daemon *d)
{
	if (d->ns)
		ns_stop(d->ns);          /* it tells the core (kernel_changed) until then */
	if (d->se) {
		if (d->mounted)
			fuse_session_unmount(d->se);
		else if (d->tko.present && d->mount_dev)
			unmount_taken_over(d);
		fuse_remove_signal_handlers(d->se);
		fuse_session_destroy(d->se);
	}
	pt_destroy(d->fs);
	int left[] = { d->tko.record_fd, d->tko.status_fd };
	for (size_t i = 0; i < sizeof(left) / sizeof(left[0]); i++)
		if (left[i] >= 0)
			close(left[i]);
	bs_destroy(d->bs);
	learn_destroy(d->learn);
	iset_destroy(d->set);            /* cancels its jobs on bg, which it borrows */
	iset_pool_destroy(d->pool);
	bg_destroy(d->bg);
	ns_destroy(d->ns);
	ns_hub_destroy(d->hub);
	stats_destroy(&d->stats);
	if (d->source_fd >= 0)
		close(d->source_fd);
	opts_paths_free(&d->images);
	opts_free(&d->o);
	fuse_opt_free_args(&d->args);
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
static void remember_exe(struct daemon *d, const char *argv0)
{
	d->exe[0] = '\0';
	if (strchr(argv0, '/')) {
		snprintf(d->exe, sizeof(d->exe), "%s", argv0);  /* relative: to cwd_fd */
		return;
	}
	const char *path = getenv("PATH");
	for (const char *dir = path; dir && *dir;) {
		size_t len = strcspn(dir, ":");
		snprintf(d->exe, sizeof(d->exe), "%.*s/%s", (int)len, dir, argv0);
		if (len && access(d->exe, X_OK) == 0)
			return;
		dir += len + (dir[len] == ':');
	}
	ssize_t n = readlink("/proc/self/exe", d->exe, sizeof(d->exe) - 1);
	d->exe[n > 0 ? n : 0] = '\0';
}

/* Serve until unmounted or signalled, starting a successor when asked.
 * @return the loop's result. */
static int serve_until_done(struct daemon *d)
{
	for (;;) {
		int loop = serve(d);
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
	d.args = (struct fuse_args)FUSE_ARGS_INIT(argc, argv);
	d.argv = argv;
	d.source_fd = -1;
	d.main_thread = pthread_self();
	atomic_init(&d.upgrade_conn, -1);
	ylog_init("yolofs");
	pt_log_to_ylog();
	raise_fd_limit();
	stats_init(&d.stats);
	d.cwd_fd = open(".", O_PATH | O_DIRECTORY | O_CLOEXEC);
	remember_exe(&d, argv[0]);

	enum opts_result parsed = opts_parse(&d.o, &d.args, argv[0]);
	int ret = parsed == OPTS_EXIT_OK ? 0 : 1;
	if (parsed == OPTS_SERVE && tko_inherited(&d.tko) < 0)
		parsed = OPTS_EXIT_FAIL;
	if (parsed == OPTS_SERVE) {
		if (d.o.cmd.debug)
			ylog_set_level(YLOG_DEBUG);
		if (open_source(&d) == 0 && build_image_set(&d) == 0 && create_session(&d) == 0 &&
		    mount_and_daemonize(&d) == 0) {
			/* Before the control thread can send it: its default
			 * action ends the process. */
			struct sigaction sa = { .sa_handler = wake_only };
			sigaction(SIGUSR2, &sa, NULL);
			start_threads(&d);
			if (d.tko.present)
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
