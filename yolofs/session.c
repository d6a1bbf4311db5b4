/* session.c - one yolofs mount (see session.h): the source opened before
 * mounting (so MOUNTPOINT may be SOURCE itself), learning, the image set
 * with its answers and block source, the pass-through core and its FUSE
 * session, the mount or the taking over of a predecessor's session, and
 * the loop.  What is the process's (daemonizing, signals, the statistics
 * thread, the control socket, upgrades) is its owner's: main.c, host.c. */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <unistd.h>

#include "background.h"
#include "blocksrc.h"
#include "detach.h"
#include "imageset.h"
#include "learn.h"
#include "log.h"
#include "mount.h"
#include "namespace.h"
#include "passthrough.h"
#include "session.h"

enum opts_result session_parse(struct session *s, int argc, char *argv[])
{
	*s = (struct session){
		.source_fd = -1, .mnt_id = -1,
		.tko = { .record_fd = -1, .fuse_fd = -1, .source_fd = -1, .status_fd = -1 },
	};
	s->args = (struct fuse_args)FUSE_ARGS_INIT(argc, argv);
	stats_init(&s->stats);
	return opts_parse(&s->o, &s->args, argv[0]);
}

/* The source, and learning mode on it.  @return 0 or -1. */
static int open_source(struct session *s)
{
	struct yolofs_opts *o = &s->o;
	int r = s->tko.present ? 0 : mount_clear_stale(o->cmd.mountpoint, tko_live);
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
	s->source_fd = s->tko.present ? s->tko.source_fd :
		       open(o->source, O_PATH | O_DIRECTORY | O_CLOEXEC);
	s->tko.source_fd = -1;
	if (s->source_fd < 0) {
		fprintf(stderr, "yolofs: source %s: %s\n", o->source, strerror(errno));
		return -1;
	}
	if (!o->learn)
		return 0;
	struct yolo_err err = { { 0 } };
	struct learn_config lcfg = {
		.dir = o->learn, .source = o->source, .mountpoint = o->cmd.mountpoint,
		.source_fd = s->source_fd, .by_mount = o->learn_by_mount,
		.window_s = o->learn_window, .idle_s = o->learn_idle, .max_bytes = o->learn_max_bytes,
		.check_trust = !o->insecure_images, .stats = &s->stats,
		.reload = s->reload, .reload_ctx = s->reload_ctx,
	};
	r = learn_create(&s->learn, &lcfg, &err);
	if (r < 0) {
		fprintf(stderr, "yolofs: learn=%s: %s\n", o->learn,
			err.msg[0] ? err.msg : strerror(-r));
		return -1;
	}
	/* Its images are loaded (and reloaded) with the others. */
	char *spec;
	if (asprintf(&spec, "%s%s%s", o->images ? o->images : "", o->images ? ":" : "",
		     learn_images_dir(s->learn)) < 0)
		return -1;
	free(o->images);
	o->images = spec;
	return 0;
}

/* With images=: open the images, with the namespace answers and the block
 * source over them.  @return 0 or -1. */
static int build_image_set(struct session *s, const struct session_shared *sh)
{
	struct yolofs_opts *o = &s->o;
	struct yolo_err err = { { 0 } };
	int r;
	if (!o->images)
		return 0;
	if (opts_collect_images(o->images, &s->images, &err) < 0) {
		fprintf(stderr, "yolofs: %s\n", err.msg);
		return -1;
	}
	/* Without inotify everything is asked of the source: slower, not wrong. */
	if (o->no_namespace || !sh->hub)
		ylog(YLOG_INFO, "%s: no namespace answers from memory%s", o->cmd.mountpoint,
		     o->no_namespace ? " (no_namespace)" : "");
	else if ((r = ns_create(&s->ns, sh->hub, s->source_fd, &s->stats)) < 0)
		fprintf(stderr, "yolofs: warning: no namespace answers from memory: %s\n",
			strerror(-r));
	struct iset_config ic = {
		.paths = (const char *const *)s->images.v, .npaths = s->images.n,
		.pool = sh->pool, .source_fd = s->source_fd, .bg = sh->bg, .ns = s->ns,
		.trust_all = o->insecure_images,
	};
	r = iset_create(&s->set, &ic, &s->stats, &err);
	if (r < 0) {
		fprintf(stderr, "yolofs: %s\n", err.msg[0] ? err.msg : strerror(-r));
		return -1;
	}
	if (bs_create(&s->bs, s->set, s->learn, &s->stats, !o->no_prefill) < 0) {
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
 * session, with yolofs's hooks.  @return 0 or -1. */
static int create_core(struct session *s)
{
	struct yolofs_opts *o = &s->o;
	struct pt_config pc = {
		.source_fd = s->source_fd, .timeout = o->timeout, .splice = o->splice,
		.answer_timeout = o->answer_timeout,
		.keep_cache = !o->no_keep_cache, .force_direct_io = o->direct_io,
		.max_readahead = (uint32_t)o->readahead_bytes,
		.passthrough = !o->no_passthrough,
		.passthrough_active = &s->stats.kernel_passthrough,
		.passthrough_opens = &s->stats.kernel_passthrough_opens,
	};
	struct detach *dt = NULL;
	int r;
	if (s->bs)
		pc.hooks = bs_hooks(s->bs);
	if (s->ns)
		pc.ns = ns_hooks(s->ns);
	if (s->learn)
		pc.ns_rec = learn_recorder(s->learn);
	if (o->detach_when_emptied &&
	    (r = detach_create(&dt, s->source_fd, o->cmd.mountpoint)) < 0) {
		fprintf(stderr, "yolofs: detach_when_emptied: %s\n", strerror(-r));
		return -1;
	}
	if ((r = pt_create(&s->fs, &pc)) < 0) {
		detach_free(dt);
		fprintf(stderr, "yolofs: source %s: %s\n", o->source, strerror(-r));
		return -1;
	}
	s->source_fd = -1;               /* owned by fs now */
	s->detach = dt;
	if (mount_add_args(&s->args, o->source) < 0) {
		fprintf(stderr, "yolofs: out of memory\n");
		return -1;
	}
	s->se = fuse_session_new(&s->args, dt ? detach_ops(dt, s->fs) : pt_ops(),
				 sizeof(struct fuse_lowlevel_ops), s->fs);
	if (!s->se)
		return -1;               /* libfuse printed why (e.g. an unknown option) */
	pt_set_session(s->fs, s->se);
	if (s->ns)
		ns_set_kernel(s->ns, kernel_changed, s->fs);
	return 0;
}

int session_open(struct session *s, const struct session_shared *sh)
{
	return open_source(s) == 0 && build_image_set(s, sh) == 0 && create_core(s) == 0 ? 0 : -1;
}

/* Take the predecessor's session over instead of mounting.  A successor
 * that cannot (another record version, another INIT answer) says why and
 * leaves without touching the session: its predecessor serves on.
 * @return 0 or -1. */
static int take_over(struct session *s)
{
	struct tko_inherited *t = &s->tko;
	struct yolo_err err = { { 0 } };
	if (pt_resume(s->fs, s->se, t->record_fd, t->fuse_fd, t->by_upgrade, &err) == 0) {
		t->record_fd = -1;       /* the core's now */
		stats_add(&s->stats.takeovers, 1);
		stats_restore(&s->stats, pt_record_user(s->fs), PT_RECORD_USER_MAX);
		return 0;
	}
	ylog(YLOG_ERR, "cannot take the session at %s over: %s", s->o.cmd.mountpoint, err.msg);
	if (t->by_upgrade) {
		/* Nothing of ours may close what the predecessor still uses
		 * (passthrough backing ids): leave at once. */
		tko_report_refused(t, err.msg);
		_exit(1);
	}
	return -1;
}

int session_mount(struct session *s)
{
	struct yolofs_opts *o = &s->o;
	if (s->tko.present) {
		if (take_over(s) < 0)
			return -1;
	} else {
		if (fuse_session_mount(s->se, o->cmd.mountpoint) != 0)
			return -1;       /* libfuse printed why */
		s->mounted = true;
		if (pt_session_io(s->fs, s->se, fuse_session_fd(s->se)) < 0) {
			fprintf(stderr, "yolofs: cannot serve the session's descriptor\n");
			return -1;
		}
		/* Without this the window stays at the kernel's 128 KiB whatever
		 * readahead= says: 8x more READs and cold sequential reads at
		 * about half the speed (bench-results/bench.md, steady state). */
		int r = mount_set_readahead(o->cmd.mountpoint, (uint32_t)o->readahead_bytes);
		if (r < 0)
			ylog(YLOG_INFO, "readahead window left at the kernel default: %s",
			     strerror(-r));
	}
	/* One read of the mount table (long on a node with many mounts),
	 * unless the predecessor said. */
	if (!s->tko.present || !s->mount_dev)
		s->mnt_id = mount_top_id(o->cmd.mountpoint, true, &s->mount_dev);
	if (s->mnt_id < 0)
		s->mount_dev = 0;
	if (s->detach)
		detach_mounted(s->detach, s->mnt_id);
	return 0;
}

void session_start(struct session *s)
{
	int r;
	/* Without it, reports are not applied and nothing is answered. */
	if (s->ns && (r = ns_start(s->ns)) < 0)
		ylog(YLOG_WARN, "%s: no namespace answers: %s", s->o.cmd.mountpoint, strerror(-r));
	if (s->learn && (r = learn_start(s->learn)) < 0)
		ylog(YLOG_WARN, "no learning thread (nothing is learnt): %s", strerror(-r));
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

void session_took_over(struct session *s)
{
	pthread_t t;
	if (pthread_create(&t, NULL, forget_kernel_copies, s->fs) == 0)
		pthread_detach(t);
	else
		pt_kernel_changed(s->fs, 0, 0, NULL);
	pt_resend(s->fs);
}

int session_serve(struct session *s, unsigned max_idle)
{
	struct fuse_cmdline_opts *co = &s->o.cmd;
	if (co->singlethread)
		return fuse_session_loop(s->se);
	struct fuse_loop_config *lc = fuse_loop_cfg_create();
	if (!lc) {
		ylog(YLOG_ERR, "out of memory");
		return -ENOMEM;
	}
	fuse_loop_cfg_set_clone_fd(lc, (unsigned)co->clone_fd);
	if (co->max_idle_threads != UINT_MAX)
		fuse_loop_cfg_set_idle_threads(lc, co->max_idle_threads);
	else if (max_idle != UINT_MAX)
		fuse_loop_cfg_set_idle_threads(lc, max_idle);
	if (co->max_threads)
		fuse_loop_cfg_set_max_threads(lc, co->max_threads);
	int r = fuse_session_loop_mt(s->se, lc);
	fuse_loop_cfg_destroy(lc);
	return r;
}

size_t session_reload(struct session *s)
{
	if (!s->set) {
		ylog(YLOG_INFO, "%s: started without images=, nothing to reload", s->o.cmd.mountpoint);
		return 0;
	}
	struct opts_paths pl = { 0 };
	struct yolo_err err = { { 0 } };
	size_t errors;
	if (opts_collect_images(s->o.images, &pl, &err) < 0) {
		ylog(YLOG_ERR, "reload: %s; keeping the current images", err.msg);
		stats_add(&s->stats.reload_errors, 1);
		stats_add(&s->stats.reloads, 1);
		errors = 1;
	} else {
		errors = iset_reload(s->set, (const char *const *)pl.v, pl.n);
	}
	opts_paths_free(&pl);
	return errors;
}

void session_end(struct session *s)
{
	learn_destroy(s->learn);         /* it asks for reloads */
	s->learn = NULL;
	ylog(YLOG_INFO, "unmounting %s", s->o.cmd.mountpoint);
	if (s->set)
		stats_log(&s->stats);
}

bool session_mount_is_ours(const struct session *s)
{
	dev_t dev;
	return s->mount_dev && mount_top_id(s->o.cmd.mountpoint, true, &dev) >= 0 &&
	       dev == s->mount_dev;
}

/* A session taken over was mounted by a predecessor: libfuse does not
 * know its mount point.  Unmount it if it is still the topmost there. */
static void unmount_taken_over(struct session *s)
{
	if (session_mount_is_ours(s) && umount2(s->o.cmd.mountpoint, MNT_DETACH) < 0)
		ylog(YLOG_WARN, "cannot unmount %s: %s", s->o.cmd.mountpoint, strerror(errno));
}

void session_free(struct session *s)
{
	if (s->ns)
		ns_stop(s->ns);          /* it tells the core (kernel_changed) until then */
	if (s->se) {
		if (s->mounted)
			fuse_session_unmount(s->se);
		else if (s->tko.present && s->mount_dev)
			unmount_taken_over(s);
		fuse_session_destroy(s->se);
	}
	pt_destroy(s->fs);
	detach_free(s->detach);
	int left[] = { s->tko.record_fd, s->tko.status_fd };
	for (size_t i = 0; i < sizeof(left) / sizeof(left[0]); i++)
		if (left[i] >= 0)
			close(left[i]);
	bs_destroy(s->bs);
	learn_destroy(s->learn);
	iset_destroy(s->set);            /* cancels its jobs on the shared worker */
	ns_destroy(s->ns);
	stats_destroy(&s->stats);
	if (s->source_fd >= 0)
		close(s->source_fd);
	opts_paths_free(&s->images);
	opts_free(&s->o);
	fuse_opt_free_args(&s->args);
}
