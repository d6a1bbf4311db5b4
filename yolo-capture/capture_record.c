/* capture_record.c - the recording session of yolo-capture.
 *
 * Mounts the pass-through core in record mode over SOURCE (in place unless
 * --mountpoint is given), with direct_io on every open so no read is hidden
 * by the kernel page cache, runs COMMAND, and logs every read (file, offset,
 * length, time, reader) to a trace until COMMAND exits, --until-file
 * appears, --timeout passes or SIGINT/SIGTERM arrives.  Then it stops the
 * command, unmounts, and builds the boot image from the trace and SOURCE. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "capture.h"
#include "passthrough.h"
#include "util.h"

struct rec_opts {
	const char *image;
	const char *trace;               /* keep the raw trace here (else a temp file) */
	const char *mountpoint;          /* default: SOURCE itself */
	const char *until_file;
	double timeout;                  /* seconds, 0 = none */
	struct yolo_writer_opts wo;
	bool quiet;
};

/* Per-inode state: the trace's id for the file, assigned on first read. */
struct rec_file {
	char *relpath;
	struct yolo_file_ident ident;
	uint32_t trace_id;               /* UINT32_MAX until the first read; protected by rec.lock */
};

struct recorder {
	pthread_mutex_t lock;            /* protects tw, the counters, and rec_file.trace_id */
	struct yolo_trace_writer *tw;
	uint64_t start_ns;
	uint64_t reads, bytes;
	uint64_t ns_questions;
	int error;                       /* first trace write error (-errno) */
	struct yolo_err err;
};

static volatile sig_atomic_t stop_signal;

static int rec_open(void *ctx, const struct pt_open_info *info, void **ipriv,
		    struct fuse_file_info *fi)
{
	(void)ctx;
	fi->direct_io = 1;               /* every read must reach us */
	fi->keep_cache = 0;
	if (!info->first || !info->relpath)
		return 0;
	struct rec_file *f = calloc(1, sizeof(*f));
	if (!f || !(f->relpath = strdup(info->relpath))) {
		free(f);
		return -ENOMEM;
	}
	f->ident = yolo_ident_from_stat(info->st);
	f->trace_id = UINT32_MAX;
	*ipriv = f;
	return 0;
}

static void rec_release(void *ctx, void **ipriv, bool last)
{
	(void)ctx;
	if (!last || !*ipriv)
		return;
	struct rec_file *f = *ipriv;
	free(f->relpath);
	free(f);
	*ipriv = NULL;
}

static int rec_read(void *ctx, void *ipriv, struct pt_file *file, uint64_t off, size_t size,
		    struct pt_readbuf *out)
{
	(void)file;
	(void)out;
	struct recorder *r = ctx;
	struct rec_file *f = ipriv;
	if (!f)
		return PT_READ_PASS;     /* unlinked before open: not part of the image */
	struct yolo_trace_read rd = {
		.t_ns = yolo_now_ns() - r->start_ns, .offset = off, .length = (uint32_t)size,
		.pid = (uint32_t)pt_current_pid(),
	};
	pthread_mutex_lock(&r->lock);
	int ret = 0;
	if (f->trace_id == UINT32_MAX)
		ret = yolo_trace_add_file(r->tw, f->relpath, &f->ident, &f->trace_id, &r->err);
	if (ret == 0) {
		rd.file_id = f->trace_id;
		ret = yolo_trace_add_read(r->tw, &rd, &r->err);
	}
	if (ret < 0 && !r->error)
		r->error = ret;
	r->reads++;
	r->bytes += size;
	pthread_mutex_unlock(&r->lock);
	return PT_READ_PASS;
}

/* A namespace question the source answered (lookup, listing, symlink,
 * xattrs): the boot image keeps it, so the server can answer it from
 * memory (yolofs/namespace.c). */
static void rec_ns_asked(void *ctx, enum pt_ns_question q, const char *path, const char *xname)
{
	static const uint16_t flags[] = {
		[PT_NS_Q_LOOKUP] = YOLO_NS_LOOKUP, [PT_NS_Q_READDIR] = YOLO_NS_READDIR,
		[PT_NS_Q_READLINK] = YOLO_NS_READLINK, [PT_NS_Q_LISTXATTR] = YOLO_NS_LISTXATTR,
		[PT_NS_Q_GETXATTR] = 0,
	};
	struct recorder *r = ctx;
	pthread_mutex_lock(&r->lock);
	int ret = yolo_trace_add_ns(r->tw, path, flags[q], q == PT_NS_Q_GETXATTR ? xname : NULL,
				    &r->err);
	if (ret < 0 && !r->error)
		r->error = ret;
	r->ns_questions++;
	pthread_mutex_unlock(&r->lock);
}

/* A file written through the mount during capture no longer matches what
 * was read; its identity will not match at build time and the build will
 * say so.  Nothing to do here beyond letting the write through. */

static void on_stop_signal(int sig)
{
	stop_signal = sig;
}

/* The command runs in its own process group so that stopping it also stops
 * whatever it started (a wrapper script's qemu, a shell's children), which
 * may hold files open on the mount. */
static pid_t start_command(char **argv)
{
	pid_t pid = fork();
	if (pid > 0)
		setpgid(pid, pid);       /* also here, so kill(-pid) works at once */
	if (pid == 0) {
		setpgid(0, 0);
		signal(SIGINT, SIG_DFL);
		signal(SIGTERM, SIG_DFL);
		execvp(argv[0], argv);
		fprintf(stderr, "yolo-capture: cannot run %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	return pid;
}

/* Ask the command to stop, then insist: the mount cannot go while it has
 * files open. */
static int stop_command(pid_t pid, bool exited, int status)
{
	if (!exited && waitpid(pid, &status, WNOHANG) == pid)
		exited = true;
	kill(-pid, SIGTERM);             /* the group: the command's children too */
	for (int i = 0; i < 100 && !exited; i++) {
		if (waitpid(pid, &status, WNOHANG) == pid)
			exited = true;
		else
			usleep(100000);
	}
	kill(-pid, SIGKILL);
	if (!exited)
		waitpid(pid, &status, 0);
	return status;
}

struct session {
	struct fuse_session *se;
	pthread_t thread;
	int loop_ret;
};

static void *session_thread(void *arg)
{
	struct session *s = arg;
	struct fuse_loop_config *lc = fuse_loop_cfg_create();
	if (!lc) {
		s->loop_ret = -ENOMEM;
		return NULL;
	}
	fuse_loop_cfg_set_clone_fd(lc, 0);
	fuse_loop_cfg_set_max_threads(lc, 16);
	s->loop_ret = fuse_session_loop_mt(s->se, lc);
	fuse_loop_cfg_destroy(lc);
	return NULL;
}

static void usage_record_error(const char *msg)
{
	fprintf(stderr, "yolo-capture: %s (try --help)\n", msg);
}

static int parse_record_args(int argc, char **argv, struct rec_opts *o, const char **source,
			     char ***command)
{
	static const struct option longopts[] = {
		{ "output", required_argument, NULL, 'o' }, { "trace", required_argument, NULL, 't' },
		{ "mountpoint", required_argument, NULL, 'm' },
		{ "until-file", required_argument, NULL, 'u' },
		{ "timeout", required_argument, NULL, 'T' }, { "block-size", required_argument, NULL, 'b' },
		{ "zstd", required_argument, NULL, 'z' }, { "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' }, { 0 } };
	int c;
	/* '+' stops at the first non-option so COMMAND's options are left alone. */
	while ((c = getopt_long(argc, argv, "+o:t:m:u:T:b:z:qh", longopts, NULL)) != -1) {
		switch (c) {
		case 'o': o->image = optarg; break;
		case 't': o->trace = optarg; break;
		case 'm': o->mountpoint = optarg; break;
		case 'u': o->until_file = optarg; break;
		case 'T': {
			char *end;
			o->timeout = strtod(optarg, &end);
			if (*end || o->timeout <= 0) {
				usage_record_error("--timeout needs a positive number of seconds");
				return -1;
			}
			break;
		}
		case 'b': case 'z':
			if (capture_image_opt(c, optarg, &o->wo) < 0)
				return -1;
			break;
		case 'q': o->quiet = true; break;
		case 'h': capture_usage(stdout); exit(0);
		default: return -1;
		}
	}
	if (!o->image) {
		usage_record_error("-o IMAGE is required");
		return -1;
	}
	if (optind >= argc) {
		usage_record_error("SOURCE is required");
		return -1;
	}
	*source = argv[optind++];
	if (optind < argc && !strcmp(argv[optind], "--"))
		optind++;
	if (optind >= argc) {
		usage_record_error("a COMMAND to run is required after --");
		return -1;
	}
	*command = &argv[optind];
	return 0;
}

/* One progress report: rewritten in place (`whole_line` false, for a
 * terminal) or as a line of its own. */
static void print_progress(struct recorder *r, bool whole_line)
{
	pthread_mutex_lock(&r->lock);
	uint64_t reads = r->reads, bytes = r->bytes, ns = r->ns_questions;
	pthread_mutex_unlock(&r->lock);
	fprintf(stderr, "%syolo-capture: %llu reads, %.1f MiB, %llu namespace questions "
		"recorded, %.1f s%s", whole_line ? "" : "\r", (unsigned long long)reads,
		bytes / 1048576.0, (unsigned long long)ns, (yolo_now_ns() - r->start_ns) / 1e9,
		whole_line ? "\n" : "   ");
}

/* Wait for the end of the capture; returns the reason as text. */
static const char *wait_for_end(pid_t child, int *status, const struct rec_opts *o,
				struct recorder *r, bool *child_done)
{
	uint64_t deadline = o->timeout > 0 ? r->start_ns + (uint64_t)(o->timeout * 1e9) : 0;
	/* A terminal gets a line rewritten every 2 s, a log a line every 10 s. */
	bool tty = isatty(2);
	uint64_t every = (tty ? 2 : 10) * 1000000000ull;
	uint64_t next_progress = yolo_now_ns() + every;
	for (;;) {
		if (waitpid(child, status, WNOHANG) == child) {
			*child_done = true;
			return "command exited";
		}
		if (stop_signal)
			return "interrupted";
		if (o->until_file && access(o->until_file, F_OK) == 0)
			return "until-file appeared";
		uint64_t now = yolo_now_ns();
		if (deadline && now >= deadline)
			return "timeout";
		if (!o->quiet && now >= next_progress) {
			print_progress(r, !tty);
			next_progress = now + every;
		}
		poll(NULL, 0, 50);
	}
}

int capture_record_main(int argc, char **argv)
{
	struct rec_opts o = { 0 };
	const char *source;
	char **command;
	if (parse_record_args(argc, argv, &o, &source, &command) < 0)
		return 2;
	const char *mnt = o.mountpoint ? o.mountpoint : source;

	/* The source is opened before mounting: with an in-place mount it is
	 * reachable only through this descriptor afterwards. */
	int srcfd = open(source, O_PATH | O_DIRECTORY | O_CLOEXEC);
	int buildfd = open(source, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (srcfd < 0 || buildfd < 0) {
		fprintf(stderr, "yolo-capture: %s: %s\n", source, strerror(errno));
		return 2;
	}
	char tmp_trace[PATH_MAX];
	const char *trace_path = o.trace;
	if (!trace_path) {
		snprintf(tmp_trace, sizeof(tmp_trace), "%s.trace.tmp", o.image);
		trace_path = tmp_trace;
	}
	struct recorder rec = { .lock = PTHREAD_MUTEX_INITIALIZER };
	if (yolo_trace_create(&rec.tw, trace_path, &rec.err) < 0) {
		fprintf(stderr, "yolo-capture: %s\n", rec.err.msg);
		return 2;
	}
	struct pt_config cfg = {
		.source_fd = srcfd, .timeout = 1.0, .force_direct_io = true,
		.hooks = { .ctx = &rec, .open = rec_open, .release = rec_release, .read = rec_read },
		.ns_rec = { .ctx = &rec, .asked = rec_ns_asked },
	};
	struct pt_fs *fs;
	int ret = pt_create(&fs, &cfg);
	if (ret < 0) {
		fprintf(stderr, "yolo-capture: %s\n", strerror(-ret));
		return 2;
	}
	struct fuse_args args = FUSE_ARGS_INIT(0, NULL);
	struct session s = { 0 };
	if (fuse_opt_add_arg(&args, "yolo-capture") == 0 &&
	    fuse_opt_add_arg(&args, "-ofsname=yolo-capture,subtype=yolo-capture,allow_other") == 0 &&
	    pt_mount_args(&args) == 0)
		s.se = fuse_session_new(&args, pt_ops(), sizeof(*pt_ops()), fs);
	fuse_opt_free_args(&args);
	if (!s.se || fuse_session_mount(s.se, mnt) != 0) {
		fprintf(stderr, "yolo-capture: cannot mount on %s\n", mnt);
		if (s.se)
			fuse_session_destroy(s.se);
		pt_destroy(fs);
		yolo_trace_abandon(rec.tw);
		unlink(trace_path);
		return 2;
	}
	pt_set_session(fs, s.se);
	struct sigaction sa = { .sa_handler = on_stop_signal };
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	rec.start_ns = yolo_now_ns();
	pthread_create(&s.thread, NULL, session_thread, &s);

	if (!o.quiet)
		fprintf(stderr, "yolo-capture: recording reads of %s (mounted on %s)\n", source, mnt);
	pid_t child = start_command(command);
	int status = 0;
	bool child_done = false;
	const char *why = child < 0 ? "command could not start" :
			  wait_for_end(child, &status, &o, &rec, &child_done);
	if (child > 0)
		status = stop_command(child, child_done, status);
	if (!o.quiet) {
		print_progress(&rec, true);
		fprintf(stderr, "yolo-capture: stopped: %s\n", why);
	}

	/* Unmount; fuse_session_exit alone would leave the loop blocked in read. */
	fuse_session_exit(s.se);
	fuse_session_unmount(s.se);
	pthread_join(s.thread, NULL);
	fuse_session_destroy(s.se);
	pt_destroy(fs);

	int exit_code = 0;
	if (rec.error < 0 || yolo_trace_close(rec.tw, &rec.err) < 0) {
		fprintf(stderr, "yolo-capture: trace: %s\n", rec.err.msg);
		exit_code = 1;
	} else {
		struct yolo_trace *t;
		struct yolo_err err = { "" };
		if (yolo_trace_load(trace_path, &t, &err) < 0) {
			fprintf(stderr, "yolo-capture: %s\n", err.msg);
			exit_code = 1;
		} else {
			if (t->nreads == 0) {
				fprintf(stderr, "yolo-capture: no reads of %s were recorded; no image written\n",
					source);
				exit_code = 1;
			} else if (capture_write_image(t, buildfd, o.image, &o.wo) < 0) {
				exit_code = 1;
			}
			yolo_trace_free(t);
		}
	}
	if (!o.trace)
		unlink(trace_path);
	close(buildfd);
	if (child_done && (!WIFEXITED(status) || WEXITSTATUS(status) != 0))
		fprintf(stderr, "yolo-capture: note: the command exited with status %d\n",
			WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
	return exit_code;
}
