/* main.c - the yolofs daemon: command line (one options struct, a fuse_opt
 * table, unknown options rejected), start-up checks that either succeed or
 * print one line and exit non-zero with nothing mounted (bad options, a
 * missing source or images= path; a bad image file is refused alone by the
 * image set and the others serve), the mount (SOURCE
 * is opened before mounting, so MOUNTPOINT may be SOURCE itself), the
 * multithreaded session loop, SIGHUP image reloads on their own thread, and
 * a clean unmount on SIGTERM/SIGINT. */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
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
#include "sdnotify.h"
#include "stats.h"

struct yolofs_opts {
	char *images;                    /* images=PATH[:PATH...] */
	char *serve;                     /* serve=memory|ssd */
	char *memlimit;                  /* memlimit=SIZE */
	char *readahead;                 /* readahead=SIZE */
	char *metrics;                   /* metrics=FILE */
	unsigned metrics_interval;       /* metrics_interval=SECONDS */
	double timeout;                  /* timeout=SECONDS (entry/attr cache) */
	int splice;                      /* splice: splice replies for source reads */
	int no_keep_cache;               /* no_keep_cache: drop the page cache at every open */
	int no_prefill;                  /* no_prefill: do not push image blocks into the page cache */
	int no_dedup;                    /* no_dedup: hold identical blocks of different images twice */
	int direct_io;                   /* direct_io: bypass the page cache (testing) */
	int insecure_images;             /* insecure_images: load images anyone could have written (tests) */
	int detach_when_emptied;         /* detach_when_emptied: see detach.h */
	char *learn;                     /* learn=DIR: see learn.h */
	char *learn_by;                  /* learn_by=file|mount */
	double learn_window;             /* learn_window=SECONDS */
	double learn_idle;               /* learn_idle=SECONDS */
	char *learn_max;                 /* learn_max=SIZE */
	char *source;                    /* first non-option argument */
};

#define YOPT(t, f, v) { t, offsetof(struct yolofs_opts, f), v }
static const struct fuse_opt yolofs_opt_table[] = {
	YOPT("images=%s", images, 0),
	YOPT("serve=%s", serve, 0),
	YOPT("memlimit=%s", memlimit, 0),
	YOPT("readahead=%s", readahead, 0),
	YOPT("metrics=%s", metrics, 0),
	YOPT("metrics_interval=%u", metrics_interval, 0),
	YOPT("timeout=%lf", timeout, 0),
	YOPT("splice", splice, 1),
	YOPT("no_keep_cache", no_keep_cache, 1),
	YOPT("no_prefill", no_prefill, 1),
	YOPT("no_dedup", no_dedup, 1),
	YOPT("direct_io", direct_io, 1),
	YOPT("insecure_images", insecure_images, 1),
	YOPT("detach_when_emptied", detach_when_emptied, 1),
	YOPT("learn=%s", learn, 0),
	YOPT("learn_by=%s", learn_by, 0),
	YOPT("learn_window=%lf", learn_window, 0),
	YOPT("learn_idle=%lf", learn_idle, 0),
	YOPT("learn_max=%s", learn_max, 0),
	FUSE_OPT_END
};

static void usage(const char *prog)
{
	printf("usage: %s [options] SOURCE MOUNTPOINT\n"
	       "\n"
	       "Serve SOURCE (a directory of qcow2 backing files or an overlay2 lowerdir) at\n"
	       "MOUNTPOINT, answering reads of captured blocks from boot images.  MOUNTPOINT\n"
	       "may be SOURCE itself.\n"
	       "\n"
	       "yolofs options:\n"
	       "    -o images=PATH[:PATH...]  boot images (*.yolo files or directories of them,\n"
	       "                              absolute paths; a directory may be empty until a\n"
	       "                              reload).  Only images that nobody but root (or\n"
	       "                              the daemon's user) can change are loaded\n"
	       "    -o serve=memory|ssd       hold images in pinned memory (default) or read\n"
	       "                              blocks from the image files\n"
	       "    -o memlimit=SIZE          most bytes of images in memory (K/M/G/T suffixes):\n"
	       "                              the most recently used images that fit stay in\n"
	       "                              memory, the others are read from their files\n"
	       "    -o no_dedup               do not share identical blocks between images\n"
	       "    -o metrics=FILE           write Prometheus text metrics to FILE\n"
	       "    -o metrics_interval=N     rewrite it every N seconds (default 2)\n"
	       "    -o timeout=SECONDS        kernel entry/attribute cache timeout (default 1)\n"
	       "    -o no_keep_cache          drop the kernel page cache at every open\n"
	       "    -o no_prefill             do not push a file's image blocks into the kernel\n"
	       "                              page cache when it is first opened\n"
	       "    -o readahead=SIZE         kernel readahead window (default 1M, 0 disables)\n"
	       "    -o splice                 splice replies for source reads (slower here)\n"
	       "    -o direct_io              bypass the kernel page cache entirely\n"
	       "    -o insecure_images        also load images that users other than root could\n"
	       "                              have written (for tests only: such an image\n"
	       "                              decides what guests boot)\n"
	       "    -o detach_when_emptied    detach the mount when the last entry of SOURCE is\n"
	       "                              removed through it (a container engine removing\n"
	       "                              the layer); exit when nothing holds it any more\n"
	       "    -o learn=DIR              learn boot images: record what boots read from\n"
	       "                              SOURCE and write images to DIR/KEY/ (KEY names\n"
	       "                              SOURCE), loaded at once and extended by later\n"
	       "                              boots.  DIR must be trusted like images\n"
	       "    -o learn_by=file|mount    one image per file (default; nova's _base) or one\n"
	       "                              for the whole mount (a container layer)\n"
	       "    -o learn_window=SECONDS   a boot lasts at most this long (default 300)\n"
	       "    -o learn_idle=SECONDS     ...or until nothing is read from SOURCE for this\n"
	       "                              long (default 15)\n"
	       "    -o learn_max=SIZE         most bytes of images in DIR (the least recently\n"
	       "                              learnt of this mount's are removed)\n"
	       "\n"
	       "SIGHUP re-reads images= (new and replaced images serve new opens; files\n"
	       "already open keep theirs); SIGUSR1 prints serving statistics to the log;\n"
	       "SIGTERM/SIGINT unmount.\n"
	       "\n", prog);
}

static int opt_proc(void *data, const char *arg, int key, struct fuse_args *outargs)
{
	struct yolofs_opts *o = data;
	if (key == FUSE_OPT_KEY_NONOPT && !o->source) {
		o->source = strdup(arg);
		return o->source ? 0 : -1;
	}
	return 1;
}

/* Parse SIZE with an optional K/M/G/T (binary) suffix.  @return 0 or -EINVAL. */
static int parse_size(const char *s, uint64_t *out)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || end == s || s[0] == '-')
		return -EINVAL;
	unsigned shift = 0;
	switch (*end) {
	case '\0': break;
	case 'k': case 'K': shift = 10; break;
	case 'm': case 'M': shift = 20; break;
	case 'g': case 'G': shift = 30; break;
	case 't': case 'T': shift = 40; break;
	default: return -EINVAL;
	}
	if (*end && end[1] && strcmp(end + 1, "iB") != 0 && strcmp(end + 1, "B") != 0)
		return -EINVAL;
	if (shift && v > (UINT64_MAX >> shift))
		return -EINVAL;
	*out = (uint64_t)v << shift;
	return 0;
}

/* A growable list of image paths. */
struct pathlist {
	char **v;
	size_t n, cap;
};

static int pl_add(struct pathlist *pl, const char *p)
{
	if (pl->n == pl->cap) {
		size_t cap = pl->cap ? pl->cap * 2 : 8;
		char **v = realloc(pl->v, cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		pl->v = v;
		pl->cap = cap;
	}
	if (!(pl->v[pl->n] = strdup(p)))
		return -ENOMEM;
	pl->n++;
	return 0;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void pl_free(struct pathlist *pl)
{
	for (size_t i = 0; i < pl->n; i++)
		free(pl->v[i]);
	free(pl->v);
	*pl = (struct pathlist){ 0 };
}

/* Expand images=A:B:DIR into image files (a directory contributes its *.yolo
 * files in name order, possibly none).  @return 0, or -1 with the problem
 * in why. */
static int collect_images(const char *spec, struct pathlist *pl, char *why, size_t whylen)
{
	char *copy = strdup(spec), *save = NULL;
	if (!copy)
		goto nomem;
	for (char *p = strtok_r(copy, ":", &save); p; p = strtok_r(NULL, ":", &save)) {
		struct stat st;
		if (p[0] != '/') {
			snprintf(why, whylen, "image path %s: must be absolute", p);
			goto fail;
		}
		if (stat(p, &st) < 0) {
			snprintf(why, whylen, "image %s: %s", p, strerror(errno));
			goto fail;
		}
		if (!S_ISDIR(st.st_mode)) {
			if (pl_add(pl, p) < 0)
				goto nomem;
			continue;
		}
		DIR *d = opendir(p);
		if (!d) {
			snprintf(why, whylen, "image directory %s: %s", p, strerror(errno));
			goto fail;
		}
		size_t first = pl->n;
		struct dirent *de;
		while ((de = readdir(d))) {
			if (!yolo_is_image_file_name(de->d_name))
				continue;
			char path[4096];
			snprintf(path, sizeof(path), "%s/%s", p, de->d_name);
			if (pl_add(pl, path) < 0) {
				closedir(d);
				goto nomem;
			}
		}
		closedir(d);
		if (pl->n > first)
			qsort(pl->v + first, pl->n - first, sizeof(char *), cmp_str);
	}
	free(copy);
	return 0;
nomem:
	snprintf(why, whylen, "out of memory");
fail:
	free(copy);
	pl_free(pl);
	return -1;
}

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
		struct pathlist pl = { 0 };
		char why[512];
		size_t errors = 0;
		if (collect_images(r->spec, &pl, why, sizeof(why)) < 0) {
			ylog(YLOG_ERR, "reload: %s; keeping the current images", why);
			stats_add(&r->stats->reload_errors, 1);
			stats_add(&r->stats->reloads, 1);
			errors = 1;
		} else {
			errors = iset_reload(r->set, (const char *const *)pl.v, pl.n);
		}
		sdn_notifyf("READY=1\nSTATUS=reloaded %zu boot images, %zu errors", pl.n, errors);
		pl_free(&pl);
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

int main(int argc, char *argv[])
{
	struct fuse_args args = FUSE_ARGS_INIT(argc, argv);
	struct yolofs_opts o = { .timeout = 1.0, .metrics_interval = 2, .learn_window = 300,
				 .learn_idle = 15 };
	struct fuse_cmdline_opts co = { 0 };
	struct pathlist images = { 0 };
	struct pt_fs *fs = NULL;
	static struct stats stats;
	struct imageset *set = NULL;
	struct bs *bs = NULL;
	struct bg *bg = NULL;
	struct ns *ns = NULL;
	struct learn *learn = NULL;
	struct fuse_session *se = NULL;
	struct fuse_loop_config *lc = NULL;
	static struct reloader reloader;
	int source_fd = -1, ret = 1, r;
	bool mounted = false;

	ylog_init("yolofs");
	pt_log_to_ylog();
	raise_fd_limit();
	stats_init(&stats);
	if (fuse_opt_parse(&args, &o, yolofs_opt_table, opt_proc) < 0)
		goto out;
	if (fuse_parse_cmdline(&args, &co) != 0)
		goto out;
	if (co.show_help) {
		usage(argv[0]);
		fuse_cmdline_help();
		fuse_lowlevel_help();
		ret = 0;
		goto out;
	}
	if (co.show_version) {
		printf("yolofs %s (libfuse %s)\n", YOLO_VERSION, fuse_pkgversion());
		ret = 0;
		goto out;
	}
	if (!o.source || !co.mountpoint) {
		fprintf(stderr, "yolofs: usage: %s [options] SOURCE MOUNTPOINT (see --help)\n",
			argv[0]);
		goto out;
	}
	if (co.debug)
		ylog_set_level(YLOG_DEBUG);

	bool memory = true;
	if (o.serve && strcmp(o.serve, "ssd") == 0)
		memory = false;
	else if (o.serve && strcmp(o.serve, "memory") != 0) {
		fprintf(stderr, "yolofs: serve=%s: expected memory or ssd\n", o.serve);
		goto out;
	}
	uint64_t memlimit = 0;
	if (o.memlimit && parse_size(o.memlimit, &memlimit) < 0) {
		fprintf(stderr, "yolofs: memlimit=%s: expected a size like 512M or 2G\n",
			o.memlimit);
		goto out;
	}
	uint64_t readahead = PT_MAX_READ;
	if (o.readahead && (parse_size(o.readahead, &readahead) < 0 || readahead > PT_MAX_READ)) {
		fprintf(stderr, "yolofs: readahead=%s: expected a size up to 1M\n", o.readahead);
		goto out;
	}
	if (o.timeout < 0) {
		fprintf(stderr, "yolofs: timeout must not be negative\n");
		goto out;
	}

	/* Open the source before mounting: after the mount it may be hidden. */
	source_fd = open(o.source, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (source_fd < 0) {
		fprintf(stderr, "yolofs: source %s: %s\n", o.source, strerror(errno));
		goto out;
	}
	uint64_t learn_max = 0;
	if (o.learn_max && parse_size(o.learn_max, &learn_max) < 0) {
		fprintf(stderr, "yolofs: learn_max=%s: expected a size like 2G\n", o.learn_max);
		goto out;
	}
	if (o.learn_by && strcmp(o.learn_by, "file") && strcmp(o.learn_by, "mount")) {
		fprintf(stderr, "yolofs: learn_by=%s: expected file or mount\n", o.learn_by);
		goto out;
	}
	if (o.learn_window <= 0 || o.learn_idle <= 0) {
		fprintf(stderr, "yolofs: learn_window and learn_idle must be positive\n");
		goto out;
	}
	if (o.learn) {
		char why[512];
		struct learn_config lcfg = {
			.dir = o.learn, .source = o.source, .mountpoint = co.mountpoint,
			.source_fd = source_fd,
			.by_mount = o.learn_by && !strcmp(o.learn_by, "mount"),
			.window_s = o.learn_window, .idle_s = o.learn_idle, .max_bytes = learn_max,
			.check_trust = !o.insecure_images, .stats = &stats,
			.reload = reload_now, .reload_ctx = &reloader,
		};
		if ((r = learn_create(&learn, &lcfg, why, sizeof(why))) < 0) {
			fprintf(stderr, "yolofs: learn=%s: %s\n", o.learn, why[0] ? why : strerror(-r));
			goto out;
		}
		/* Its images are loaded (and reloaded) with the others. */
		char *spec;
		if (asprintf(&spec, "%s%s%s", o.images ? o.images : "", o.images ? ":" : "",
			     learn_images_dir(learn)) < 0)
			goto out;
		free(o.images);
		o.images = spec;
	}
	if (o.images) {
		char why[512];
		if (collect_images(o.images, &images, why, sizeof(why)) < 0) {
			fprintf(stderr, "yolofs: %s\n", why);
			goto out;
		}
		struct yolo_err err = { { 0 } };
		if (bg_create(&bg) < 0) {
			fprintf(stderr, "yolofs: out of memory\n");
			goto out;
		}
		/* Without inotify everything is asked of the source: slower, not wrong. */
		if ((r = ns_create(&ns, source_fd, &stats)) < 0)
			fprintf(stderr, "yolofs: warning: no namespace answers from memory: inotify: "
				"%s (see /proc/sys/fs/inotify/max_user_instances)\n", strerror(-r));
		struct iset_config ic = {
			.paths = (const char *const *)images.v, .npaths = images.n,
			.memory = memory, .memlimit = memlimit, .dedup = !o.no_dedup,
			.source_fd = source_fd, .bg = bg, .ns = ns, .trust_all = o.insecure_images,
		};
		r = iset_create(&set, &ic, &stats, &err);
		if (r < 0) {
			fprintf(stderr, "yolofs: %s\n", err.msg[0] ? err.msg : strerror(-r));
			goto out;
		}
		if (bs_create(&bs, set, learn, &stats, !o.no_prefill) < 0) {
			fprintf(stderr, "yolofs: out of memory\n");
			goto out;
		}
	}
	struct pt_config pc = {
		.source_fd = source_fd, .timeout = o.timeout, .splice = o.splice,
		.keep_cache = !o.no_keep_cache, .force_direct_io = o.direct_io,
		.max_readahead = (uint32_t)readahead,
	};
	if (bs)
		pc.hooks = bs_hooks(bs);
	if (ns)
		pc.ns = ns_hooks(ns);
	if (learn)
		pc.ns_rec = learn_recorder(learn);
	if (o.detach_when_emptied && (r = detach_init(source_fd, co.mountpoint)) < 0) {
		fprintf(stderr, "yolofs: detach_when_emptied: %s\n", strerror(-r));
		goto out;
	}
	r = pt_create(&fs, &pc);
	if (r < 0) {
		fprintf(stderr, "yolofs: source %s: %s\n", o.source, strerror(-r));
		goto out;
	}
	source_fd = -1;                  /* owned by fs now */

	if (mount_add_args(&args, o.source) < 0) {
		fprintf(stderr, "yolofs: out of memory\n");
		goto out;
	}
	se = fuse_session_new(&args, o.detach_when_emptied ? detach_ops(pt_ops()) : pt_ops(),
			      sizeof(struct fuse_lowlevel_ops), fs);
	if (!se)
		goto out;                /* libfuse printed why (e.g. an unknown option) */
	pt_set_session(fs, se);
	/* SIGINT/SIGTERM always unmount, even when started in the background
	 * of a shell that ignores SIGINT (libfuse keeps ignored signals). */
	signal(SIGINT, SIG_DFL);
	signal(SIGTERM, SIG_DFL);
	if (fuse_set_signal_handlers(se) != 0) {
		fprintf(stderr, "yolofs: cannot install signal handlers\n");
		goto out;
	}
	if (fuse_session_mount(se, co.mountpoint) != 0)
		goto out;                /* libfuse printed why */
	mounted = true;
	if (o.detach_when_emptied)
		detach_mounted();
	/* Without this the window stays at the kernel's 128 KiB whatever
	 * readahead= says: 8x more READs and cold sequential reads at about
	 * half the speed (bench-results/bench.md, steady state). */
	r = mount_set_readahead(co.mountpoint, (uint32_t)readahead);
	if (r < 0)
		ylog(YLOG_INFO, "readahead window left at the kernel default: %s",
		       strerror(-r));
	if (!co.foreground)
		ylog_to_syslog();
	if (fuse_daemonize(co.foreground) != 0)
		goto out;

	/* SIGUSR1 is taken by the stats thread and SIGHUP by the reload
	 * thread only (libfuse's SIGHUP handler, which would unmount, never
	 * runs: the signal stays blocked everywhere else). */
	sigset_t sigs;
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGUSR1);
	sigaddset(&sigs, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	r = stats_start(&stats, o.metrics, o.metrics_interval);
	if (r < 0)
		ylog(YLOG_WARN, "no statistics thread: %s", strerror(-r));
	/* Without the reader, reports stay queued and nothing is answered
	 * after the first change (namespace.c: settled). */
	if (ns && (r = ns_start(ns)) < 0)
		ylog(YLOG_WARN, "no inotify reader (namespace answers stop at the first change "
		     "in the source): %s", strerror(-r));
	if (bg && (r = bg_start(bg)) < 0)
		ylog(YLOG_WARN, "no background thread (changed files are not compared, so not "
		     "served): %s", strerror(-r));
	if (set && (r = iset_start(set)) < 0)
		ylog(YLOG_WARN, "no pager thread (memlimit placement stays as at start): %s",
		       strerror(-r));
	reloader.set = set;
	reloader.stats = &stats;
	reloader.spec = o.images;
	if ((r = pthread_create(&reloader.thread, NULL, reload_main, &reloader)) != 0)
		ylog(YLOG_WARN, "no reload thread (SIGHUP ignored): %s", strerror(r));
	reloader.running = r == 0;
	if (learn && (r = learn_start(learn)) < 0)
		ylog(YLOG_WARN, "no learning thread (nothing is learnt): %s", strerror(-r));
	ylog(YLOG_INFO, "serving %s at %s (%zu of %zu images)", o.source, co.mountpoint,
	     set ? iset_count(set) : 0, images.n);
	if (o.images && !images.n && !learn)
		ylog(YLOG_WARN, "images=%s holds no boot images yet; add some and send SIGHUP",
		       o.images);
	/* The mount is live (requests queue until the loop runs): tell a
	 * Type=notify unit.  Daemonized, this is a new process: name it. */
	if (co.foreground)
		r = sdn_notifyf("READY=1\nSTATUS=serving %zu boot images", images.n);
	else
		r = sdn_notifyf("READY=1\nMAINPID=%ld\nSTATUS=serving %zu boot images",
				(long)getpid(), images.n);
	if (r < 0)
		ylog(YLOG_WARN, "cannot notify systemd: %s", strerror(-r));

	if (co.singlethread) {
		r = fuse_session_loop(se);
	} else {
		lc = fuse_loop_cfg_create();
		if (!lc) {
			ylog(YLOG_ERR, "out of memory");
			r = -ENOMEM;
		} else {
			fuse_loop_cfg_set_clone_fd(lc, (unsigned)co.clone_fd);
			if (co.max_idle_threads != UINT_MAX)
				fuse_loop_cfg_set_idle_threads(lc, co.max_idle_threads);
			if (co.max_threads)
				fuse_loop_cfg_set_max_threads(lc, co.max_threads);
			r = fuse_session_loop_mt(se, lc);
		}
	}
	stats_stop();
	learn_destroy(learn);            /* it asks the reloader for reloads */
	learn = NULL;
	if (reloader.running) {
		atomic_store(&reloader.quit, true);
		pthread_kill(reloader.thread, SIGHUP);
		pthread_join(reloader.thread, NULL);
	}
	/* A positive value is the signal that ended the loop: a clean exit. */
	ret = r < 0 ? 1 : 0;
	if (r < 0)
		ylog(YLOG_ERR, "session loop failed: %s", strerror(-r));
	ylog(YLOG_INFO, "unmounting %s", co.mountpoint);
	sdn_notify("STOPPING=1");
	if (set)
		stats_log(&stats);
out:
	if (se) {
		if (mounted)
			fuse_session_unmount(se);
		fuse_remove_signal_handlers(se);
		fuse_session_destroy(se);
	}
	if (lc)
		fuse_loop_cfg_destroy(lc);
	pt_destroy(fs);
	bs_destroy(bs);
	learn_destroy(learn);
	iset_destroy(set);               /* cancels its jobs on bg, which it borrows */
	bg_destroy(bg);
	ns_destroy(ns);
	stats_destroy(&stats);
	if (source_fd >= 0)
		close(source_fd);
	pl_free(&images);
	free(co.mountpoint);
	free(o.images);
	free(o.serve);
	free(o.memlimit);
	free(o.readahead);
	free(o.metrics);
	free(o.learn);
	free(o.learn_by);
	free(o.learn_max);
	free(o.source);
	fuse_opt_free_args(&args);
	return ret;
}
