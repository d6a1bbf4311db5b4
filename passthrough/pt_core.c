/* pt_core.c - the pass-through core's session: creating and destroying the
 * core over the source directory descriptor, INIT (what the core asks of
 * the kernel and why), the mount options it needs, libfuse's log, and the
 * operations table.  The top of the core's files: see pt_i.h. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <unistd.h>

#include "pt_i.h"

/* What the core asks of the kernel:
 *  - POSIX ACLs evaluated by the kernel in its own permission checks (it
 *    fetches system.posix_acl_* through getxattr; this also turns on
 *    default_permissions) and umask left to us (DONT_MASK): the source
 *    applies the caller's umask only where it has no default ACL;
 *  - HANDLE_KILLPRIV: the source clears setuid/setgid bits on write,
 *    truncate and chown itself, for the caller who does it (the kernel's
 *    own way is a chmod that a non-owner may not make);
 *  - no writeback cache (writes reach the source, as the writer, at once);
 *  - AUTO_INVAL_DATA, READDIRPLUS, ioctl on directories (chattr/lsattr);
 *  - symlink targets kept in the kernel's page cache (CACHE_SYMLINKS): a
 *    symlink's target never changes in place, only the entry naming it
 *    (which pt_kernel_changed drops), so nothing can go stale. */
/* Kernel passthrough (Linux 6.9, libfuse 3.16): asked for when the
 * configuration wants it; backing files may not be on a stacked file
 * system, so that overlayfs (Docker, containerd) can stack over the
 * mount.  One log line and cfg.passthrough_active say what came of it. */
static void init_passthrough(struct pt_fs *fs, struct fuse_conn_info *conn)
{
	/* Off by choice is news (info); off for want of support, a warning. */
	const char *why = NULL;
	enum ylog_level level = YLOG_WARN;
	fs->passthrough = false;
	if (!fs->cfg.passthrough || fs->cfg.force_direct_io) {
		why = fs->cfg.passthrough ? "off (direct_io on every open)" : "off (not asked for)";
		level = YLOG_INFO;
	}
#ifdef HAVE_FUSE_PASSTHROUGH
	else if (!(conn->capable & FUSE_CAP_PASSTHROUGH))
		why = "off: the kernel has none (Linux >= 6.9 with CONFIG_FUSE_PASSTHROUGH)";
	else {
		conn->want |= FUSE_CAP_PASSTHROUGH;
		conn->max_backing_stack_depth = FUSE_BACKING_STACKED_UNDER;
		fs->passthrough = true;
	}
#else
	else
		why = "off: built against libfuse " YOLO_FUSE_VERSION " (passthrough needs >= 3.16)";
#endif
	if (fs->cfg.passthrough_active)
		atomic_store(fs->cfg.passthrough_active, fs->passthrough);
	/* Once a process: yolofs --host has a session (an INIT) a layer. */
	static atomic_bool said_on;
	if (fs->passthrough)
		ylog(atomic_exchange(&said_on, true) ? YLOG_DEBUG : YLOG_INFO,
		     "kernel passthrough: on (opens no hook serves are read by the kernel)");
	else
		ylog(level, "kernel passthrough: %s", why);
}

static void pt_init(void *userdata, struct fuse_conn_info *conn)
{
	struct pt_fs *fs = userdata;
	unsigned splice = FUSE_CAP_SPLICE_WRITE | FUSE_CAP_SPLICE_MOVE | FUSE_CAP_SPLICE_READ;
	if (fs->cfg.splice)
		conn->want |= conn->capable & (FUSE_CAP_SPLICE_WRITE | FUSE_CAP_SPLICE_MOVE);
	else
		conn->want &= ~splice;
	conn->want &= ~FUSE_CAP_WRITEBACK_CACHE;
	conn->want |= conn->capable & (FUSE_CAP_AUTO_INVAL_DATA | FUSE_CAP_READDIRPLUS |
				       FUSE_CAP_POSIX_ACL | FUSE_CAP_DONT_MASK |
				       FUSE_CAP_HANDLE_KILLPRIV | FUSE_CAP_IOCTL_DIR |
				       FUSE_CAP_CACHE_SYMLINKS);
	if (!(conn->capable & FUSE_CAP_POSIX_ACL))
		ylog(YLOG_WARN, "the kernel cannot check POSIX ACLs of a FUSE mount: only mode "
		     "bits are checked before the source decides");
	conn->max_readahead = fs->cfg.max_readahead;
	conn->max_read = PT_MAX_READ;    /* as pt_mount_args says */
	init_passthrough(fs, conn);
	ylog(YLOG_DEBUG, "init: proto %u.%u max_write %u max_readahead %u want 0x%x",
	     conn->proto_major, conn->proto_minor, conn->max_write, conn->max_readahead,
	     conn->want);
}

int pt_mount_args(struct fuse_args *args)
{
	char opt[64];
	snprintf(opt, sizeof(opt), "-omax_read=%u,default_permissions", PT_MAX_READ);
	return fuse_opt_add_arg(args, opt) == 0 ? 0 : -ENOMEM;
}

/* libfuse writes one line in several calls (e.g. "unknown option(s): `",
 * "-o ", "name'\n"): collect the pieces per thread up to the newline. */
static void from_libfuse(enum fuse_log_level level, const char *fmt, va_list ap)
{
	static __thread char line[900];
	static __thread size_t len;
	enum ylog_level l = level <= FUSE_LOG_ERR ? YLOG_ERR :
			    level == FUSE_LOG_WARNING ? YLOG_WARN :
			    level <= FUSE_LOG_INFO ? YLOG_INFO : YLOG_DEBUG;
	int n = vsnprintf(line + len, sizeof(line) - len, fmt, ap);
	if (n > 0)
		len = len + (size_t)n < sizeof(line) ? len + (size_t)n : sizeof(line) - 1;
	if (len == 0 || (line[len - 1] != '\n' && len < sizeof(line) - 1))
		return;
	while (len && line[len - 1] == '\n')
		line[--len] = '\0';
	ylog(l, "%s", line);
	len = 0;
}

void pt_log_to_ylog(void)
{
	fuse_set_log_func(from_libfuse);
}

/* How many inode descriptors may stay open while unused: a quarter of the
 * descriptor limit (open files, images and listings need the rest), so
 * that a walk of a tree of any size never runs out. */
static size_t fds_to_keep(void)
{
	struct rlimit rl;
	size_t n = getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY ?
		   (size_t)rl.rlim_cur / 4 : 16384;
	return n < 16 ? 16 : n > 16384 ? 16384 : n;
}

int pt_create(struct pt_fs **out, const struct pt_config *cfg)
{
	struct pt_fs *fs = calloc(1, sizeof(*fs));
	struct stat st;
	char pp[64];
	if (!fs)
		return -ENOMEM;
	fs->cfg = *cfg;
	if (fstat(cfg->source_fd, &st) < 0) {
		int saverr = errno;
		free(fs);
		return -saverr;
	}
	if (!S_ISDIR(st.st_mode)) {
		free(fs);
		return -ENOTDIR;
	}
	pt_proc_path(pp, sizeof(pp), cfg->source_fd);
	ssize_t n = readlink(pp, fs->root_path, sizeof(fs->root_path) - 1);
	if (n <= 0) {
		int saverr = n < 0 ? errno : EINVAL;
		free(fs);
		return -saverr;
	}
	fs->root_path[n] = '\0';
	fs->root_len = (size_t)n;
	/* open_by_handle_at needs a descriptor that is not O_PATH. */
	fs->mount_fd = openat(cfg->source_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fs->mount_fd < 0) {
		int saverr = errno;
		free(fs);
		return -saverr;
	}
	fs->root.fd = cfg->source_fd;
	fs->root.fd_kept = true;
	fs->root.dev = st.st_dev;
	fs->root.ino = st.st_ino;
	fs->root.type = S_IFDIR;
	fs->root.nodeid = FUSE_ROOT_ID;
	fs->root.slot = PT_NO_SLOT;      /* the root is never recorded: it is always there */
	fs->next_nodeid = FUSE_ROOT_ID;
	fs->root.nlookup = 2;
	fs->root.fhid = pt_fhid_of_fd(cfg->source_fd);
	if (pt_stat_fd(cfg->source_fd, &st, &fs->source_mnt) < 0)
		fs->source_mnt = UINT64_MAX;
	pthread_mutex_init(&fs->root.mu, NULL);
	pthread_mutex_init(&fs->itable_lock, NULL);
	pthread_mutex_init(&fs->fd_lock, NULL);
	pthread_mutex_init(&fs->handles_lock, NULL);
	fs->fds_max = fds_to_keep();
	fs->fuse_fd = -1;
	int ret = pt_record_open(fs, -1);
	if (ret < 0) {
		close(fs->mount_fd);     /* the source's descriptor stays the caller's */
		free(fs->root.fhid);
		free(fs);
		return ret;
	}
	*out = fs;
	return 0;
}

void pt_set_session(struct pt_fs *fs, struct fuse_session *se)
{
	fs->se = se;
}

int pt_source_fd(const struct pt_fs *fs)
{
	return fs->root.fd;
}

void pt_destroy(struct pt_fs *fs)
{
	if (!fs)
		return;
	fs->se = NULL;                   /* destroyed: its backing ids went with it */
	pt_close_handles(fs);
	pt_free_inodes(fs);
	close(fs->root.fd);
	close(fs->mount_fd);
	free(fs->root.fhid);
	pthread_mutex_destroy(&fs->root.mu);
	pthread_mutex_destroy(&fs->itable_lock);
	pthread_mutex_destroy(&fs->fd_lock);
	pthread_mutex_destroy(&fs->handles_lock);
	pt_record_close(fs);
	free(fs);
}

static const struct fuse_lowlevel_ops pt_lowlevel_ops = {
	.init = pt_init,
	.lookup = pt_lookup,
	.forget = pt_forget,
	.forget_multi = pt_forget_multi,
	.getattr = pt_getattr,
	.setattr = pt_setattr,
	.readlink = pt_readlink,
	.mknod = pt_mknod,
	.mkdir = pt_mkdir,
	.symlink = pt_symlink,
	.link = pt_link,
	.unlink = pt_unlink,
	.rmdir = pt_rmdir,
	.rename = pt_rename,
	.opendir = pt_opendir,
	.readdir = pt_readdir,
	.readdirplus = pt_readdirplus,
	.releasedir = pt_releasedir,
	.fsyncdir = pt_fsyncdir,
	.open = pt_open,
	.create = pt_create_file,
	.read = pt_read,
	.write = pt_write,
	.flush = pt_flush,
	.release = pt_release,
	.fsync = pt_fsync,
	.fallocate = pt_fallocate,
	.copy_file_range = pt_copy_file_range,
	.lseek = pt_lseek,
	.ioctl = pt_ioctl,
	.statfs = pt_statfs,
	.access = pt_access,
	.getxattr = pt_getxattr,
	.listxattr = pt_listxattr,
	.setxattr = pt_setxattr,
	.removexattr = pt_removexattr,
};

const struct fuse_lowlevel_ops *pt_ops(void)
{
	return &pt_lowlevel_ops;
}
